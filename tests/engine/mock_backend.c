/* mock_backend.c - see mock_backend.h: a history-hashing stand-in model
 * with a real paged KV pool, strict batch validation, and the reference
 * sampler as its sample op. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "mock_backend.h"

struct slot {
    uint64_t h;
    int32_t tok;
    int32_t pos; /* -1: never written */
};

struct mock {
    struct llm_backend be;
    struct llm_model model;
    struct mock_opts o;
    struct slot *kv; /* [n_blocks * block_size] */
    float *logits;   /* [max_seqs][vocab] */
    int n_logits;
    void *scratch;
    struct mock_counters c;
};

static uint64_t mix(uint64_t h, uint64_t a, uint64_t b)
{
    uint64_t z = h ^ (a * 0x9e3779b97f4a7c15ull) ^ (b * 0xc2b2ae3d27d4eb4full);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#define H0 0x1234567890abcdefull

static void fill_logits(const struct mock *m, uint64_t h, float *out)
{
    for (int v = 0; v < m->o.vocab; v++) {
        uint64_t z = mix(h, (uint64_t)v + 1, 77);
        out[v] = (float)((double)(z >> 40) / 16777216.0 * 6.0 - 3.0);
    }
    if (m->o.eos >= 0 && m->o.eos < m->o.vocab) out[m->o.eos] += m->o.eos_bias;
}

void mock_logits_for(const struct llm_backend *be, const int32_t *tokens, int n, float *logits)
{
    const struct mock *m = be->priv;
    uint64_t h = H0;
    for (int i = 0; i < n; i++)
        h = mix(h, (uint64_t)tokens[i] + 1, (uint64_t)i);
    fill_logits(m, h, logits);
}

static struct slot *slot_at(struct mock *m, const int32_t *bt, int nbt, int p)
{
    int bi = p / m->o.block_size;
    if (bi >= nbt) return NULL;
    int32_t b = bt[bi];
    if (b < 0 || b >= m->o.n_blocks) return NULL;
    return &m->kv[(size_t)b * m->o.block_size + p % m->o.block_size];
}

static int mock_forward(struct llm_backend *be, const struct llm_batch *b)
{
    struct mock *m = be->priv;
    m->c.forwards++;
    if (b->n_tokens <= 0 || b->n_tokens > be->max_batch_tokens)
        return llm_err_set(LLM_EINVAL, "mock: %d tokens in a step (limit %d)", b->n_tokens,
                           be->max_batch_tokens);
    if (b->n_seqs <= 0 || b->n_seqs > be->max_seqs)
        return llm_err_set(LLM_EINVAL, "mock: %d sequences in a step (limit %d)", b->n_seqs,
                           be->max_seqs);
    if (b->n_out < 0 || b->n_out > b->n_seqs)
        return llm_err_set(LLM_EINVAL, "mock: %d out rows for %d sequences", b->n_out, b->n_seqs);
    if (b->seq_start[0] != 0 || b->seq_start[b->n_seqs] != b->n_tokens)
        return llm_err_set(LLM_EINVAL, "mock: seq_start does not cover the rows");
    for (int i = 0; i < b->n_out; i++)
        if (b->out_rows[i] < 0 || b->out_rows[i] >= b->n_tokens ||
            (i > 0 && b->out_rows[i] <= b->out_rows[i - 1]))
            return llm_err_set(LLM_EINVAL, "mock: out_rows not increasing within the batch");
    if (b->n_tokens > m->c.max_rows_seen) m->c.max_rows_seen = b->n_tokens;
    if (b->n_seqs > m->c.max_seqs_seen) m->c.max_seqs_seen = b->n_seqs;
    m->c.rows += (uint64_t)b->n_tokens;
    m->c.out_rows += (uint64_t)b->n_out;

    int oi = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        int r0 = b->seq_start[s], r1 = b->seq_start[s + 1];
        int len = b->seq_len[s];
        const int32_t *bt = b->block_table + (size_t)s * b->bt_stride;
        if (r1 <= r0) return llm_err_set(LLM_EINVAL, "mock: sequence %d has no rows", s);
        if (len > be->max_seq_len)
            return llm_err_set(LLM_EINVAL, "mock: sequence length %d past the context %d", len,
                               be->max_seq_len);
        if (r1 - r0 > m->c.max_chunk_seen) m->c.max_chunk_seen = r1 - r0;
        int first = len - (r1 - r0);
        for (int i = r0; i < r1; i++) {
            int p = first + (i - r0);
            if (b->pos[i] != p)
                return llm_err_set(LLM_EINVAL, "mock: row %d has position %d, expected %d", i,
                                   b->pos[i], p);
            if (b->tokens[i] < 0 || b->tokens[i] >= m->o.vocab)
                return llm_err_set(LLM_EINVAL, "mock: token %d outside the vocabulary",
                                   b->tokens[i]);
            uint64_t prev = H0;
            if (p > 0) {
                struct slot *ps = slot_at(m, bt, b->bt_stride, p - 1);
                if (!ps || ps->pos != p - 1)
                    return llm_err_set(LLM_EINVAL,
                                       "mock: sequence %d position %d: previous K/V missing", s, p);
                prev = ps->h;
            }
            struct slot *sl = slot_at(m, bt, b->bt_stride, p);
            if (!sl)
                return llm_err_set(LLM_EINVAL, "mock: sequence %d position %d has no block", s, p);
            sl->tok = b->tokens[i];
            sl->pos = p;
            sl->h = mix(prev, (uint64_t)b->tokens[i] + 1, (uint64_t)p);
            if (oi < b->n_out && b->out_rows[oi] == i) {
                if (i != r1 - 1)
                    return llm_err_set(LLM_EINVAL, "mock: out row %d is not a sequence's last", i);
                /* re-walk the whole chain: detects K/V clobbered by anyone */
                uint64_t h = H0;
                for (int q = 0; q <= p; q++) {
                    struct slot *x = slot_at(m, bt, b->bt_stride, q);
                    if (!x || x->pos != q)
                        return llm_err_set(LLM_EINVAL, "mock: sequence %d lost K/V at %d", s, q);
                    h = mix(h, (uint64_t)x->tok + 1, (uint64_t)q);
                    if (h != x->h)
                        return llm_err_set(LLM_EINVAL, "mock: sequence %d K/V at %d clobbered", s,
                                           q);
                }
                fill_logits(m, h, m->logits + (size_t)oi * m->o.vocab);
                oi++;
            }
        }
    }
    if (oi != b->n_out) return llm_err_set(LLM_EINVAL, "mock: out rows not all visited");
    m->n_logits = b->n_out;
    return 0;
}

static int mock_get_logits(struct llm_backend *be, float *dst)
{
    struct mock *m = be->priv;
    memcpy(dst, m->logits, (size_t)m->n_logits * m->o.vocab * sizeof(float));
    return 0;
}

static int mock_sample(struct llm_backend *be, const struct llm_sample_row *rows, int n,
                       struct llm_sample_result *out)
{
    struct mock *m = be->priv;
    if (n > m->n_logits)
        return llm_err_set(LLM_EINVAL, "mock: %d rows to sample, %d logits", n, m->n_logits);
    for (int i = 0; i < n; i++) {
        int rc = llm_sample_cpu(m->logits + (size_t)i * m->o.vocab, m->o.vocab, &rows[i], &out[i],
                                m->scratch);
        if (rc) return rc;
    }
    return 0;
}

static int mock_copy_blocks(struct llm_backend *be, const int32_t *src, const int32_t *dst, int n)
{
    struct mock *m = be->priv;
    for (int i = 0; i < n; i++) {
        if (src[i] < 0 || src[i] >= m->o.n_blocks || dst[i] < 0 || dst[i] >= m->o.n_blocks ||
            src[i] == dst[i])
            return llm_err_set(LLM_EINVAL, "mock: copy block %d -> %d", src[i], dst[i]);
        memcpy(m->kv + (size_t)dst[i] * m->o.block_size, m->kv + (size_t)src[i] * m->o.block_size,
               (size_t)m->o.block_size * sizeof(struct slot));
        m->c.copies++;
    }
    return 0;
}

static void mock_destroy(struct llm_backend *be)
{
    struct mock *m = be->priv;
    free(m->kv);
    free(m->logits);
    free(m->scratch);
    free(m);
}

static const struct llm_backend_ops mock_ops = {
    .name = "mock",
    .forward = mock_forward,
    .get_logits = mock_get_logits,
    .sample = mock_sample,
    .copy_blocks = mock_copy_blocks,
    .destroy = mock_destroy,
};

void mock_opts_init(struct mock_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->vocab = 32;
    o->n_blocks = 256;
    o->block_size = 4;
    o->max_batch_tokens = 256;
    o->max_seqs = 16;
    o->max_seq_len = 512;
    o->eos = 1;
}

int mock_backend_create(struct llm_backend **out, const struct mock_opts *o)
{
    struct mock *m = calloc(1, sizeof(*m));
    if (!m) return LLM_ENOMEM;
    m->o = *o;
    m->kv = malloc((size_t)o->n_blocks * o->block_size * sizeof(struct slot));
    m->logits = malloc((size_t)o->max_seqs * o->vocab * sizeof(float));
    m->scratch = malloc(llm_sample_scratch_size(o->vocab));
    if (!m->kv || !m->logits || !m->scratch) {
        mock_destroy(&m->be);
        return LLM_ENOMEM;
    }
    for (size_t i = 0; i < (size_t)o->n_blocks * o->block_size; i++)
        m->kv[i] = (struct slot){0, -1, -1};
    m->model.desc.max_pos = o->max_seq_len;
    m->model.desc.n_eos = o->eos >= 0 ? 1 : 0;
    m->model.desc.eos_ids[0] = o->eos;
    m->model.desc.vocab_size = o->vocab;
    m->be.ops = &mock_ops;
    m->be.model = &m->model;
    m->be.n_blocks = o->n_blocks;
    m->be.block_size = o->block_size;
    m->be.kv_bytes = (uint64_t)o->n_blocks * o->block_size * sizeof(struct slot);
    m->be.max_batch_tokens = o->max_batch_tokens;
    m->be.max_seqs = o->max_seqs;
    m->be.max_seq_len = o->max_seq_len;
    m->be.vocab = o->vocab;
    snprintf(m->be.device_name, sizeof(m->be.device_name), "mock");
    m->be.priv = m;
    *out = &m->be;
    return 0;
}

const struct mock_counters *mock_counters(const struct llm_backend *be)
{
    const struct mock *m = be->priv;
    return &m->c;
}
