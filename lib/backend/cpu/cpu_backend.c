/* cpu_backend.c - the CPU backend: llm_backend_ops over the reference ops.
 *
 * Design: the forward pass is the model definition's (llm/graph.h); this
 * file only says how each step runs here (cpu_step), on fp32 activations
 * with the reference ops of cpu_ops.h.  Weights come from the shared
 * binding (llm/weight.h) and are never copied: the ops read them in their
 * stored dtype (an engine's stacked mlp.fc_gate as its fc and gate
 * halves).  What this backend runs is stated in llm_cpu_caps
 * (lib/backend/caps.c) and checked before anything is allocated.
 *
 * The KV pool is one allocation, layer-major: for layer l, K then V, each
 * [n_blocks][n_kv_heads][block_size][head_dim], so a block id indexes every
 * layer the same way and copy_blocks copies 2 x n_layers slices.  Each step
 * runs the whole ragged batch through each op at once (all tokens of all
 * sequences in one matrix product, so a weight row is read once per step);
 * only attention and rotary embedding look at sequence boundaries (a
 * pipeline stage cuts the batch into micro-batches of whole sequences, so
 * the stages overlap: see run_micro).  A
 * projection that accumulates into the residual is computed whole and then
 * added (residual + output, in fp32), in Hugging Face's order.
 *
 * Threads: OpenMP inside the ops.  By default as many as the cores this
 * process may use that no other process is busy on (llm_cpu_threads_for),
 * so a loaded machine is not made slower by threads spinning at barriers
 * for cores they do not get.
 */
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "llm/backend.h"
#include "llm/comm.h"
#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/graph.h"
#include "llm/sample.h"
#include "llm/weight.h"
#include "cpu_ops.h"

#define DEFAULT_BLOCK_SIZE 32
#define DEFAULT_MAX_BATCH_TOKENS 2048
#define DEFAULT_MAX_SEQS 256
#define DEFAULT_KV_FRACTION 0.25
#define DEFAULT_KV_CAP (8ull << 30)

/* Activation buffers: the graph's, plus the gate half of the MLP, a
 * scratch for projections added into a buffer (and the embeddings before
 * project_in), and an expert's gathered input rows. */
enum { BUF_H2 = LLM_BUF_COUNT, BUF_TMP, BUF_MOE_X, BUF_N };

struct cpu_be {
    struct llm_backend pub;
    const struct llm_model_desc *d;
    struct llm_weights w;
    struct llm_graph g;
    struct llm_comm *comm;
    int own_comm;         /* comm is ours (one rank) */
    struct llm_comm *tp_comm; /* this stage's tensor-parallel ranks (comm when one stage) */
    struct llm_rope rope; /* desc's rope with rot_dims resolved */
    struct llm_rope rope_local; /* the local layers' (Gemma 3): base rope_local_theta, unscaled */
    int n_threads;
    float *alibi;         /* [n_heads] or NULL */
    float *sinks;                      /* [n_heads]: a layer's attention sinks as fp32, or NULL */
    const struct llm_stat_sink *stats; /* calibration statistics, or NULL */
    int32_t *stat_slot;                /* [cap_slot]: the sink's kept-row choice */
    int cap_slot;
    int kv_quant;     /* enum llm_kv_quant: K and V rounded as stored */
    float *kv_scale;  /* [n_layers][2]: K, V scales */

    void *kv_mem;
    struct llm_cpu_kv *kv; /* [n_layers] */

    /* activations, grown to the largest batch seen (<= max_batch_tokens);
     * buf[] are the rows of the micro-batch being run inside mem[] */
    int cap_tokens, cap_out;
    float *mem[BUF_N];
    float *buf[BUF_N];
    float *gather;         /* vocab-parallel logits of every rank [tp][n_out][vocab_part] */
    int32_t *pos_tmp;      /* positions + pos_offset */
    const struct llm_batch *b; /* the step being run */
    int n_out;             /* rows of logits from the last forward; -1 = none */
    void *sample_scratch;
    int n_micro;           /* pipeline micro-batches per step (opts.pp_micro) */
    void **pend;           /* pipeline transfers in flight during a step */
    int n_pend, cap_pend;
};

static struct cpu_be *cpu_of(struct llm_backend *be)
{
    return (struct cpu_be *)be->priv;
}

/* ---- creation ------------------------------------------------------------ */

int llm_cpu_threads_for(int cores, int running_others)
{
    int n = cores - (running_others > 0 ? running_others : 0);
    return n < 1 ? 1 : n > cores ? cores : n;
}

/* Cores this process may run on, less those other processes keep busy
 * right now (/proc/loadavg's runnable count, this process excluded). */
static int default_threads(void)
{
    int cores = 1;
#ifdef _OPENMP
    cores = omp_get_num_procs();
#endif
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0 &&
        CPU_COUNT(&set) < cores)
        cores = CPU_COUNT(&set);
    int running = 0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        double a, b2, c2;
        int total;
        if (fscanf(f, "%lf %lf %lf %d/%d", &a, &b2, &c2, &running, &total) != 5) running = 0;
        fclose(f);
    }
    return llm_cpu_threads_for(cores, running - 1);
}

static uint64_t phys_ram(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    return pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : (4ull << 30);
}

static void cpu_destroy(struct llm_backend *be);

static int load_kv_scales(struct cpu_be *c, struct llm_model *m)
{
    if (!(c->kv_scale = malloc(sizeof(float) * 2 * (size_t)c->d->n_layers)))
        return llm_err_set(LLM_ENOMEM, "cpu backend: out of memory");
    c->kv_quant = m->quant.kv_algo;
    return llm_model_kv_scales(m, c->kv_scale);
}
static const struct llm_backend_ops cpu_ops_table;

static void set_limits(struct cpu_be *c, const struct llm_backend_opts *o)
{
    const struct llm_model_desc *d = c->d;
    struct llm_backend *be = &c->pub;
    be->block_size = o->block_size > 0 ? o->block_size : DEFAULT_BLOCK_SIZE;
    be->max_batch_tokens = o->max_batch_tokens > 0 ? o->max_batch_tokens : DEFAULT_MAX_BATCH_TOKENS;
    be->max_seqs = o->max_seqs > 0 ? o->max_seqs : DEFAULT_MAX_SEQS;
    be->max_seq_len =
        o->max_seq_len > 0 ? o->max_seq_len : (int)(d->max_pos > 0 ? d->max_pos : 4096);
    be->vocab = d->vocab_size;
    if (d->pos == LLM_POS_LEARNED && be->max_seq_len > d->max_pos)
        be->max_seq_len = (int)d->max_pos;
    c->n_threads = o->n_threads > 0 ? o->n_threads : default_threads();
#ifndef _OPENMP
    c->n_threads = 1;
#endif
    snprintf(be->device_name, sizeof be->device_name, "cpu (%d thread%s, %s)", c->n_threads,
             c->n_threads == 1 ? "" : "s", llm_cpu_isa());
}

static int make_kv_pool(struct cpu_be *c, const struct llm_backend_opts *o)
{
    const struct llm_model_desc *d = c->d;
    struct llm_backend *be = &c->pub;
    int kv_dt = o->kv_dtype;
    if (!llm_cpu_dtype_ok(kv_dt))
        return llm_err_set(LLM_EUNSUPPORTED, "cpu backend: kv dtype %s (f32, f16 or bf16)",
                           llm_dtype_name(kv_dt));
    struct llm_cpu_kv proto = {NULL, NULL, kv_dt, 0, be->block_size, d->n_kv_heads, d->head_dim};
    int n_mine = 0; /* this pipeline stage's layers */
    for (int l = 0; l < d->n_layers; l++)
        n_mine += llm_part_has_layer(d, l);
    uint64_t per_block = llm_cpu_kv_block_bytes(&proto) * 2u * (uint64_t)n_mine;
    uint64_t want = o->kv_bytes;
    if (!want) {
        double f = o->kv_fraction > 0.0 ? o->kv_fraction : DEFAULT_KV_FRACTION;
        want = (uint64_t)(f * (double)phys_ram());
        if (o->kv_fraction <= 0.0 && want > DEFAULT_KV_CAP) want = DEFAULT_KV_CAP;
        /* no point in more than every sequence at full length */
        uint64_t useful = (uint64_t)be->max_seqs *
                          (uint64_t)((be->max_seq_len + be->block_size - 1) / be->block_size) *
                          per_block;
        if (want > useful) want = useful;
    }
    uint64_t nb = want / per_block;
    if (nb > 0x7fffffffu) nb = 0x7fffffffu;
    if (nb < 1)
        return llm_err_set(LLM_ECAPACITY,
                           "cpu backend: kv pool of %llu bytes holds no block of %llu bytes",
                           (unsigned long long)want, (unsigned long long)per_block);
    be->n_blocks = (int)nb;
    be->kv_bytes = nb * per_block;
    c->kv_mem = calloc(1, be->kv_bytes);
    c->kv = calloc((size_t)d->n_layers, sizeof *c->kv);
    if (!c->kv_mem || !c->kv)
        return llm_err_set(LLM_ENOMEM, "cpu backend: cannot allocate a %llu-byte kv pool",
                           (unsigned long long)be->kv_bytes);
    uint64_t layer_bytes = nb * llm_cpu_kv_block_bytes(&proto);
    for (int l = 0, i = 0; l < d->n_layers; l++) {
        c->kv[l] = proto;
        c->kv[l].n_blocks = be->n_blocks;
        if (!llm_part_has_layer(d, l)) continue;
        c->kv[l].k = (char *)c->kv_mem + (uint64_t)(2 * i) * layer_bytes;
        c->kv[l].v = (char *)c->kv_mem + (uint64_t)(2 * i + 1) * layer_bytes;
        i++;
    }
    return 0;
}

int llm_backend_cpu_create(struct llm_backend **out, const struct llm_model *m,
                           const struct llm_backend_opts *o)
{
    *out = NULL;
    struct llm_backend_opts defaults;
    if (!o) {
        llm_backend_opts_init(&defaults);
        o = &defaults;
    }
    int rc = llm_model_supported(m, &llm_cpu_caps);
    if (rc) return rc;
    const struct llm_model_desc *d = &m->desc;
    struct cpu_be *c = calloc(1, sizeof *c);
    if (!c) return llm_err_set(LLM_ENOMEM, "cpu backend: out of memory");
    c->pub.ops = &cpu_ops_table;
    c->pub.model = m;
    c->pub.priv = c;
    c->d = d;
    c->n_out = -1;
    c->stats = o->stats;
    llm_model_host_data((struct llm_model *)m); /* random weights: made here, kept by m */
    if ((rc = llm_weights_bind(&c->w, (struct llm_model *)m))) goto fail;
    struct llm_graph_opts go = {0, o->reduce_steps};
    if ((rc = llm_graph_build(&c->g, d, &go))) goto fail;
    if (o->comm) {
        c->comm = o->comm;
    } else if (llm_part_tp(d) > 1 || llm_part_pp(d) > 1) {
        rc = llm_err_set(LLM_EINVAL, "'%s' is rank %d of %d: run every rank (mpirun)",
                         m->path ? m->path : "model", m->mapping.pp_rank * m->mapping.tp_size +
                         m->mapping.tp_rank, m->mapping.world_size);
        goto fail;
    } else {
        if ((rc = llm_comm_single(&c->comm))) goto fail;
        c->own_comm = 1;
    }
    /* the tensor-parallel group of a stage is split off at the first step,
     * when every rank is known to be there */
    if (!(llm_part_pp(d) > 1 && llm_part_tp(d) > 1)) c->tp_comm = c->comm;

    c->rope = d->rope;
    if (d->pos == LLM_POS_ROPE) {
        if (c->rope.rot_dims == 0) c->rope.rot_dims = d->head_dim;
        float inv[512], ms;
        if ((rc = llm_cpu_rope_freqs(&c->rope, d->max_pos, 1, inv, &ms))) goto fail;
        struct llm_rope *lr = &c->rope_local;
        memset(lr, 0, sizeof(*lr));
        lr->theta = d->rope_local_theta;
        lr->rot_dims = c->rope.rot_dims;
        lr->neox = c->rope.neox;
        lr->scaling = LLM_ROPE_SCALING_NONE;
        if (d->rope_local_theta > 0 &&
            (rc = llm_cpu_rope_freqs(lr, d->max_pos, 1, inv, &ms)))
            goto fail;
    }
    if (d->pos == LLM_POS_ALIBI) {
        if (!(c->alibi = malloc(sizeof(float) * (size_t)d->n_heads))) {
            rc = llm_err_set(LLM_ENOMEM, "cpu backend: out of memory");
            goto fail;
        }
        llm_desc_alibi_slopes(d, c->alibi);
    }
    if (d->attn_sinks && !(c->sinks = malloc(sizeof(float) * (size_t)d->n_heads))) {
        rc = llm_err_set(LLM_ENOMEM, "cpu backend: out of memory");
        goto fail;
    }
    if (m->quant.kv_algo && (rc = load_kv_scales(c, (struct llm_model *)m))) goto fail;
    set_limits(c, o);
    c->n_micro = o->pp_micro > 0 ? o->pp_micro : llm_part_pp(d);
    if ((rc = make_kv_pool(c, o))) goto fail;
    *out = &c->pub;
    return 0;
fail:
    cpu_destroy(&c->pub);
    return rc;
}

static void cpu_destroy(struct llm_backend *be)
{
    if (!be) return;
    struct cpu_be *c = cpu_of(be);
    llm_weights_free(&c->w);
    if (c->tp_comm && c->tp_comm != c->comm) llm_comm_destroy(c->tp_comm);
    if (c->own_comm) llm_comm_destroy(c->comm);
    free(c->gather);
    free(c->alibi);
    free(c->sinks);
    free(c->kv_scale);
    free(c->kv_mem);
    free(c->kv);
    for (int i = 0; i < BUF_N; i++)
        free(c->mem[i]);
    free(c->pend);
    free(c->pos_tmp);
    free(c->sample_scratch);
    free(c->stat_slot);
    free(c);
}

/* ---- buffers ------------------------------------------------------------- */

static int grow(float **p, size_t n)
{
    float *q = realloc(*p, (n ? n : 1) * sizeof(float));
    if (!q) return llm_err_set(LLM_ENOMEM, "cpu backend: out of memory for %zu activations", n);
    *p = q;
    return 0;
}

/* Width of a buffer's rows (floats). */
static int64_t buf_width(const struct cpu_be *c, int b)
{
    const struct llm_model_desc *d = c->d;
    int64_t wide = d->embed_dim > d->hidden ? d->embed_dim : d->hidden;
    switch (b) {
    case LLM_BUF_QKV: return (int64_t)(d->n_heads + 2 * d->n_kv_heads) * d->head_dim;
    case LLM_BUF_ATT: return (int64_t)d->n_heads * d->head_dim;
    case LLM_BUF_H:
    case BUF_H2: { /* the MLP's inner rows, a shared expert's (Qwen2-MoE: wider) or a dense
                    * layer's among expert layers (DeepSeek) */
        int64_t w = d->shared_expert_inter > d->intermediate ? d->shared_expert_inter
                                                             : d->intermediate;
        return d->moe_first_layer > 0 && d->dense_inter > w ? d->dense_inter : w;
    }
    case LLM_BUF_LOGITS: return d->vocab_size;
    case LLM_BUF_FIN:
    case LLM_BUF_FIN2: /* project_out's output too */
    case BUF_TMP: return wide;
    default: return d->hidden;
    }
}

/* Floats a buffer's row takes: its width, except the logits, which first
 * hold every rank's padded vocab slices. */
static int64_t alloc_width(const struct cpu_be *c, int b)
{
    int64_t w = buf_width(c, b);
    if (b == LLM_BUF_LOGITS && c->d->part.vocab_part * llm_part_tp(c->d) > w)
        w = c->d->part.vocab_part * llm_part_tp(c->d);
    return w;
}

static int out_rows_buf(int b)
{
    return b == LLM_BUF_FIN || b == LLM_BUF_FIN2 || b == LLM_BUF_LOGITS;
}

static int ensure(struct cpu_be *c, int n, int n_out)
{
    int rc;
    if (n > c->cap_tokens) {
        for (int b = 0; b < BUF_N; b++)
            if (!out_rows_buf(b) && (rc = grow(&c->mem[b], (size_t)n * (size_t)alloc_width(c, b))))
                return rc;
        int32_t *p = realloc(c->pos_tmp, sizeof(int32_t) * (size_t)n);
        if (!p) return llm_err_set(LLM_ENOMEM, "cpu backend: out of memory");
        c->pos_tmp = p;
        c->cap_tokens = n;
    }
    if (n_out > c->cap_out) {
        for (int b = 0; b < BUF_N; b++)
            if (out_rows_buf(b) && (rc = grow(&c->mem[b], (size_t)n_out * (size_t)alloc_width(c, b))))
                return rc;
        if (llm_part_tp(c->d) > 1 &&
            (rc = grow(&c->gather, (size_t)n_out * (size_t)alloc_width(c, LLM_BUF_LOGITS))))
            return rc;
        c->cap_out = n_out;
    }
    return 0;
}

/* Point the step buffers at a micro-batch's rows: its tokens' from row0,
 * its logits' (and their inputs') from out0.  Rows a micro-batch still
 * sends on or receives into are then not touched by the next one. */
static void set_views(struct cpu_be *c, int row0, int out0)
{
    for (int b = 0; b < BUF_N; b++) {
        int64_t first = out_rows_buf(b) ? out0 : row0;
        c->buf[b] = c->mem[b] ? c->mem[b] + first * buf_width(c, b) : NULL;
    }
}

/* ---- the steps ------------------------------------------------------------ */

static const struct llm_weight *W(const struct cpu_be *c, int slot, int layer)
{
    return llm_weights_get(&c->w, slot, layer);
}

static int step_norm(struct cpu_be *c, const struct llm_step *s, int layer, int n)
{
    const struct llm_model_desc *d = c->d;
    const struct llm_weight *w = W(c, s->slot, layer);
    float *out = c->buf[s->out], *in = c->buf[s->in];
    float *x = s->add != LLM_BUF_NONE ? c->buf[s->add] : in;
    float *res = s->add != LLM_BUF_NONE ? in : NULL;
    if (d->norm == LLM_NORM_RMS)
        llm_cpu_rmsnorm_off(out, x, res, w->data, w->dtype, n, d->hidden, (float)d->norm_eps,
                            (float)d->norm_offset);
    else
        llm_cpu_layernorm_off(out, x, res, w->data, w->dtype, w->bias, w->bias_dtype, n, d->hidden,
                              (float)d->norm_eps, (float)d->norm_offset);
    return 0;
}

/* Calibration: the sink's choice of rows, then the reference reduction of
 * the product's input x [n][in] into its accumulators. */
static int observe(struct cpu_be *c, const float *x, int n, const struct llm_weight *w)
{
    if (n > c->cap_slot) {
        int32_t *p = realloc(c->stat_slot, sizeof(int32_t) * (size_t)n);
        if (!p) return llm_err_set(LLM_ENOMEM, "cpu backend: out of memory");
        c->stat_slot = p;
        c->cap_slot = n;
    }
    struct llm_stat_acc a;
    int rc = c->stats->linear(c->stats->ctx, w, n, c->stat_slot, &a);
    if (rc) return rc < 0 ? rc : 0;
    llm_cpu_col_stats(x, n, a.in, a.in, a.sample ? c->stat_slot : NULL, a.chan, a.chan_sum, a.amax,
                      a.sample);
    return 0;
}

static int linear(struct cpu_be *c, float *y, const float *x, int n, const struct llm_weight *w)
{
    int rc = c->stats ? observe(c, x, n, w) : 0;
    return rc ? rc : llm_cpu_linear_w(y, x, n, w);
}

/* The gated product act(fc) * gate, or GPT-OSS's clamped form of it. */
static void gated(const struct llm_model_desc *d, float *out, const float *fc, const float *g,
                  int64_t n, int act)
{
    if (act == LLM_ACT_SWIGLU_OAI)
        llm_cpu_gated_oai(out, fc, g, n, d->swiglu_alpha, d->swiglu_limit);
    else
        llm_cpu_gated(out, fc, g, n, act);
}

static int step_linear(struct cpu_be *c, const struct llm_step *s, int layer, int n)
{
    const struct llm_weight *w = W(c, s->slot, layer);
    float *x = c->buf[s->in], *y = s->accumulate ? c->buf[BUF_TMP] : c->buf[s->out];
    int rc = linear(c, y, x, n, w);
    if (rc) return rc;
    int64_t m = (int64_t)n * w->shape[0];
    if (s->gated) {
        float *g = c->buf[BUF_H2];
        if ((rc = linear(c, g, x, n, W(c, LLM_W_MLP_GATE, layer)))) return rc;
        gated(c->d, y, y, g, m, s->act);
    } else if (s->act >= 0) {
        llm_cpu_act(y, m, s->act);
    }
    if (s->accumulate) llm_cpu_add(c->buf[s->out], y, m);
    return 0;
}

/* Per-head norms of q and k inside QKV (Qwen3: RMSNorm with one weight of
 * head_dim for every head; StableLM: a LayerNorm per head, weight
 * [heads][head_dim]). */
static int step_qk_norm(struct cpu_be *c, int layer, int n)
{
    const struct llm_model_desc *d = c->d;
    int nh = d->n_heads, nkv = d->n_kv_heads, hd = d->head_dim;
    int64_t qkv_w = (int64_t)(nh + 2 * nkv) * hd;
    const struct llm_weight *wq = W(c, LLM_W_Q_NORM, layer), *wk = W(c, LLM_W_K_NORM, layer);
    float eps = (float)d->norm_eps;
    for (int t = 0; t < n; t++) {
        float *q = c->buf[LLM_BUF_QKV] + (int64_t)t * qkv_w, *k = q + (int64_t)nh * hd;
        if (d->qk_norm == LLM_QK_NORM_RMS) {
            llm_cpu_rmsnorm_off(q, q, NULL, wq->data, wq->dtype, nh, hd, eps, (float)d->norm_offset);
            llm_cpu_rmsnorm_off(k, k, NULL, wk->data, wk->dtype, nkv, hd, eps, (float)d->norm_offset);
            continue;
        }
        if (d->qk_norm == LLM_QK_NORM_RMS_ALL) { /* one row of every head (OLMo 2) */
            llm_cpu_rmsnorm_off(q, q, NULL, wq->data, wq->dtype, 1, nh * hd, eps,
                                (float)d->norm_offset);
            llm_cpu_rmsnorm_off(k, k, NULL, wk->data, wk->dtype, 1, nkv * hd, eps,
                                (float)d->norm_offset);
            continue;
        }
        uint64_t esz;
        llm_dtype_nbytes(wq->dtype, (uint64_t)hd, &esz);
        for (int h = 0; h < nh + nkv; h++) {
            const struct llm_weight *w = h < nh ? wq : wk;
            int hh = h < nh ? h : h - nh;
            llm_cpu_layernorm(q + (int64_t)h * hd, q + (int64_t)h * hd, NULL,
                              (const char *)w->data + (uint64_t)hh * esz, w->dtype, NULL, 0, 1, hd,
                              eps);
        }
    }
    return 0;
}

/* A dense layer among expert layers (DeepSeek's first_k_dense_replace):
 * its MLP where the experts would be, into out (added when accumulating). */
static int step_dense_mlp(struct cpu_be *c, const struct llm_step *s, int layer, int n)
{
    const struct llm_model_desc *d = c->d;
    const struct llm_weight *fc = W(c, LLM_W_MLP_FC, layer);
    float *x = c->buf[s->in], *h = c->buf[LLM_BUF_H], *g = c->buf[BUF_H2];
    float *y = s->accumulate ? c->buf[BUF_TMP] : c->buf[s->out];
    int rc = linear(c, h, x, n, fc);
    const int64_t m = (int64_t)n * fc->shape[0];
    if (!rc && d->gated_mlp) {
        if (!(rc = linear(c, g, x, n, W(c, LLM_W_MLP_GATE, layer))))
            gated(d, h, h, g, m, d->act);
    } else if (!rc) {
        llm_cpu_act(h, m, d->act);
    }
    if (!rc) rc = linear(c, y, h, n, W(c, LLM_W_MLP_OUT, layer));
    if (!rc && s->accumulate) llm_cpu_add(c->buf[s->out], y, (int64_t)n * d->hidden);
    return rc;
}

/* p[0..E) = softmax(p) in fp32, the sum in double. */
static void softmax_row(float *p, int E)
{
    float mx = p[0];
    for (int e = 1; e < E; e++)
        mx = p[e] > mx ? p[e] : mx;
    double sum = 0.0;
    for (int e = 0; e < E; e++)
        sum += (p[e] = expf(p[e] - mx));
    for (int e = 0; e < E; e++)
        p[e] = (float)(p[e] / sum);
}

/* A grouped choice for one row (p: the router's logits, replaced by the
 * scores).  DeepSeek V3: p = sigmoid(logits), the groups scored by the sum
 * of their two best p + bias; V2 (LLM_ROUTER_SOFTMAX_GROUPS): p =
 * softmax(logits), the groups scored by their best p.  The best topk_groups
 * groups kept; among their experts the top k by p (+ bias), the lower index
 * first on a tie, weighted by p. */
static void route_groups(const struct llm_model_desc *d, float *p, const float *bias, int *chosen,
                         float *cw, float *choice)
{
    const int E = d->n_experts, K = d->n_experts_per_tok, G = d->moe_groups;
    const int per = E / G, TG = d->moe_topk_groups;
    const int sig = d->moe_router == LLM_ROUTER_SIGMOID_GROUPS;
    float gs[4096];
    unsigned char keep[4096];
    if (sig) {
        for (int e = 0; e < E; e++)
            p[e] = 1.0f / (1.0f + expf(-p[e]));
    } else {
        softmax_row(p, E);
    }
    for (int e = 0; e < E; e++)
        choice[e] = p[e] + (bias ? bias[e] : 0.0f);
    for (int gi = 0; gi < G; gi++) { /* the two best of each group */
        float a = -INFINITY, b = -INFINITY;
        for (int e = gi * per; e < (gi + 1) * per; e++) {
            if (choice[e] > a) b = a, a = choice[e];
            else if (choice[e] > b) b = choice[e];
        }
        gs[gi] = sig ? a + b : a;
        keep[gi] = 0;
    }
    for (int k = 0; k < TG; k++) {
        int best = -1;
        for (int gi = 0; gi < G; gi++)
            if (!keep[gi] && (best < 0 || gs[gi] > gs[best])) best = gi;
        keep[best] = 1;
    }
    for (int k = 0; k < K; k++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            if (!keep[e / per] || choice[e] == -INFINITY) continue;
            if (best < 0 || choice[e] > choice[best]) best = e;
        }
        chosen[k] = best;
        cw[k] = p[best];
        choice[best] = -INFINITY; /* taken */
    }
}

/* Mixture of experts, HF semantics (Mixtral, Qwen3-MoE): router logits,
 * softmax over every expert in fp32, the top k (the lower index first on
 * a tie), renormalised to sum 1 when moe_norm_topk (or a grouped choice:
 * route_groups), times moe_scale; then expert by expert
 * in index order, the rows routed to it through its MLP, scaled by their
 * weight and added to the output.  A rank of an expert-parallel job scores
 * every expert the same way but runs only those it holds (desc.part): the
 * rows routed elsewhere get nothing here, and the sum over the ranks after
 * the block adds the other groups' experts. */
static int step_moe(struct cpu_be *c, const struct llm_step *s, int layer, int n)
{
    const struct llm_model_desc *d = c->d;
    if (layer < d->moe_first_layer) return step_dense_mlp(c, s, layer, n);
    const int E = d->n_experts, K = d->n_experts_per_tok;
    const int64_t H = d->hidden;
    float *x = c->buf[s->in], *out = c->buf[s->out];
    float *probs = malloc(sizeof(float) * (size_t)n * (size_t)E);
    int *chosen = malloc(sizeof(int) * (size_t)n * (size_t)K);
    float *cw = malloc(sizeof(float) * (size_t)n * (size_t)K);
    int32_t *rows = malloc(sizeof(int32_t) * (size_t)n);
    float *rw = malloc(sizeof(float) * (size_t)n);
    int rc = 0;
    if (!probs || !chosen || !cw || !rows || !rw) {
        rc = llm_err_set(LLM_ENOMEM, "cpu backend: out of memory for the router");
        goto out;
    }
    if ((rc = linear(c, probs, x, n, W(c, LLM_W_ROUTER, layer)))) goto out;
    if (d->moe_router != LLM_ROUTER_SOFTMAX) {
        const struct llm_weight *cb = W(c, LLM_W_ROUTER_CORR, layer);
        float bias[4096], choice[4096];
        if (cb->present) llm_cpu_to_f32(bias, cb->data, cb->dtype, 0, E);
        for (int t = 0; t < n; t++) {
            float *cwt = cw + t * K, tot = 0.0f;
            route_groups(d, probs + (int64_t)t * E, cb->present ? bias : NULL, chosen + t * K,
                         cwt, choice);
            for (int k = 0; k < K; k++)
                tot += cwt[k];
            for (int k = 0; d->moe_norm_topk && k < K; k++)
                cwt[k] /= tot + 1e-20f;
        }
    }
    for (int t = 0; t < n && d->moe_router == LLM_ROUTER_SOFTMAX; t++) {
        float *p = probs + (int64_t)t * E;
        softmax_row(p, E);
        float tot = 0.0f;
        for (int k = 0; k < K; k++) {
            int best = -1;
            for (int e = 0; e < E; e++) {
                int taken = 0;
                for (int j = 0; j < k; j++)
                    taken |= chosen[t * K + j] == e;
                if (!taken && (best < 0 || p[e] > p[best])) best = e;
            }
            chosen[t * K + k] = best;
            cw[t * K + k] = p[best];
            tot += p[best];
        }
        if (d->moe_norm_topk)
            for (int k = 0; k < K; k++)
                cw[t * K + k] /= tot;
    }
    if (d->moe_scale > 0.0 && d->moe_scale != 1.0) /* DeepSeek's routed_scaling_factor */
        for (int64_t i = 0; i < (int64_t)n * K; i++)
            cw[i] *= (float)d->moe_scale;
    if (!s->accumulate) memset(out, 0, sizeof(float) * (size_t)n * (size_t)H);
    const struct llm_weight *fc = W(c, LLM_W_MLP_FC, layer), *gate = W(c, LLM_W_MLP_GATE, layer),
                            *down = W(c, LLM_W_MLP_OUT, layer);
    float *xe = c->buf[BUF_MOE_X], *h = c->buf[LLM_BUF_H], *g = c->buf[BUF_H2],
          *y = c->buf[BUF_TMP];
    int e0, ne = llm_part_experts(d, &e0);
    for (int e = e0; e < e0 + ne; e++) {
        int m = 0;
        for (int t = 0; t < n; t++)
            for (int k = 0; k < K; k++)
                if (chosen[t * K + k] == e) {
                    rows[m] = t;
                    rw[m++] = cw[t * K + k];
                }
        if (!m) continue;
        for (int i = 0; i < m; i++)
            memcpy(xe + (int64_t)i * H, x + (int64_t)rows[i] * H, sizeof(float) * (size_t)H);
        struct llm_weight wf = llm_weight_expert(fc, e - e0), wd = llm_weight_expert(down, e - e0);
        if ((rc = linear(c, h, xe, m, &wf))) goto out;
        int64_t hm = (int64_t)m * wf.shape[0];
        if (d->gated_mlp) {
            struct llm_weight wg = llm_weight_expert(gate, e - e0);
            if ((rc = linear(c, g, xe, m, &wg))) goto out;
            gated(d, h, h, g, hm, d->act);
        } else {
            llm_cpu_act(h, hm, d->act);
        }
        if ((rc = linear(c, y, h, m, &wd))) goto out;
        for (int i = 0; i < m; i++) {
            float *o = out + (int64_t)rows[i] * H, *yi = y + (int64_t)i * H;
            for (int64_t j = 0; j < H; j++)
                o[j] += yi[j] * rw[i];
        }
    }
    if (d->shared_expert_inter > 0) {
        /* the shared expert over every row, times sigmoid(x . w) per row when gated
         * (Qwen2-MoE), added after the routed experts' sum */
        if ((rc = linear(c, h, x, n, W(c, LLM_W_SHARED_FC, layer)))) goto out;
        const int64_t hm = (int64_t)n * d->shared_expert_inter;
        if (d->gated_mlp) {
            if ((rc = linear(c, g, x, n, W(c, LLM_W_SHARED_GATE, layer)))) goto out;
            gated(d, h, h, g, hm, d->act);
        } else {
            llm_cpu_act(h, hm, d->act);
        }
        if ((rc = linear(c, y, h, n, W(c, LLM_W_SHARED_OUT, layer)))) goto out;
        if (d->shared_expert_gate && (rc = linear(c, rw, x, n, W(c, LLM_W_SHARED_ROUTER, layer))))
            goto out;
        for (int t = 0; t < n; t++) {
            const float sg =
                d->shared_expert_gate ? (float)(1.0 / (1.0 + exp(-(double)rw[t]))) : 1.0f;
            float *o = out + (int64_t)t * H, *yt = y + (int64_t)t * H;
            for (int64_t j = 0; j < H; j++)
                o[j] += yt[j] * sg;
        }
    }
out:
    free(probs), free(chosen), free(cw), free(rows), free(rw);
    return rc;
}

static int step_rope_kv(struct cpu_be *c, int layer)
{
    const struct llm_model_desc *d = c->d;
    const struct llm_batch *b = c->b;
    int nh = d->n_heads, nkv = d->n_kv_heads;
    int64_t hd = d->head_dim, qkv_w = (int64_t)(nh + 2 * nkv) * hd;
    float *qkv = c->buf[LLM_BUF_QKV];
    int rc;
    const struct llm_rope *rope = d->layer_local_rope[layer] ? &c->rope_local : &c->rope;
    if (d->pos == LLM_POS_ROPE && !d->layer_no_rope[layer] &&
        (rc = llm_cpu_rope_batch(qkv, qkv_w, nh, nkv, (int)hd, rope, d->max_pos, b)))
        return rc;
    float *k = qkv + (int64_t)nh * hd, *v = qkv + (int64_t)(nh + nkv) * hd;
    if (c->stats && c->stats->kv_amax) {
        llm_cpu_rows_amax(k, b->n_tokens, qkv_w, nkv * hd, &c->stats->kv_amax[2 * layer]);
        llm_cpu_rows_amax(v, b->n_tokens, qkv_w, nkv * hd, &c->stats->kv_amax[2 * layer + 1]);
    }
    if (c->kv_quant) /* stored as q = round(x / scale), read as q * scale */
        for (int t = 0; t < b->n_tokens; t++)
            for (int j = 0; j < 2; j++) {
                float *x = (j ? v : k) + (int64_t)t * qkv_w, sc = c->kv_scale[2 * layer + j];
                if (c->kv_quant == LLM_KV_QUANT_FP8) llm_cpu_quant_act_fp8(x, 1, nkv * hd, sc);
                else llm_cpu_quant_act_int8(x, 1, nkv * hd, sc);
            }
    llm_cpu_kv_append(&c->kv[layer], k, v, qkv_w, b);
    return 0;
}

/* Latent attention's q, k and v (DeepSeek V2 / V3) into QKV in the layout
 * the other models use, so that rotary, the cache and attention are the
 * same steps: per head, q as [q_rope | q_nope], k as [k_rope | k_nope]
 * (the order of a head's dims does not change q . k, and the rotary dims
 * come first as with partial rotary), v zero-padded to head_dim.  The
 * q_a and kv_a norms are RMS norms of transformers' default epsilon, 1e-6. */
static int step_mla(struct cpu_be *c, const struct llm_step *s, int layer, int n)
{
    const struct llm_model_desc *d = c->d;
    const int64_t nh = d->n_heads, hd = d->head_dim, rot = d->rope.rot_dims, nope = hd - rot;
    const int64_t vd = d->v_head_dim > 0 ? d->v_head_dim : hd, R = d->kv_lora_rank;
    const int64_t QL = d->q_lora_rank, kvb_w = nh * (nope + vd), qkv_w = 3 * nh * hd;
    const float eps = 1e-6f;
    const float *x = c->buf[s->in];
    float *qkv = c->buf[LLM_BUF_QKV];
    size_t need = (size_t)n * (size_t)((QL > 0 ? QL : 0) + nh * hd + (R + rot) + R + kvb_w);
    float *mem = malloc(sizeof(float) * (need ? need : 1));
    if (!mem) return llm_err_set(LLM_ENOMEM, "cpu backend: out of memory for latent attention");
    float *qa = mem, *q = qa + (QL > 0 ? n * QL : 0), *kva = q + n * nh * hd;
    float *cn = kva + n * (R + rot), *kvb = cn + n * R;
    int rc = 0;
    if (QL > 0) {
        const struct llm_weight *qn = W(c, LLM_W_Q_A_NORM, layer);
        if (!(rc = linear(c, qa, x, n, W(c, LLM_W_Q_A, layer))))
            llm_cpu_rmsnorm_off(qa, qa, NULL, qn->data, qn->dtype, n, QL, eps, 0.0f);
        if (!rc) rc = linear(c, q, qa, n, W(c, LLM_W_Q_B, layer));
    } else {
        rc = linear(c, q, x, n, W(c, LLM_W_Q_B, layer));
    }
    if (!rc) rc = linear(c, kva, x, n, W(c, LLM_W_KV_A, layer));
    if (!rc) {
        const struct llm_weight *kn = W(c, LLM_W_KV_A_NORM, layer);
        for (int t = 0; t < n; t++)
            llm_cpu_rmsnorm_off(cn + t * R, kva + t * (R + rot), NULL, kn->data, kn->dtype, 1, R,
                                eps, 0.0f);
        rc = linear(c, kvb, cn, n, W(c, LLM_W_KV_B, layer));
    }
    for (int t = 0; !rc && t < n; t++) {
        float *row = qkv + t * qkv_w;
        const float *kr = kva + t * (R + rot) + R; /* the rotary key every head shares */
        for (int64_t h = 0; h < nh; h++) {
            const float *qh = q + (t * nh + h) * hd, *kv = kvb + t * kvb_w + h * (nope + vd);
            float *qo = row + h * hd, *ko = row + (nh + h) * hd, *vo = row + (2 * nh + h) * hd;
            memcpy(qo, qh + nope, sizeof(float) * (size_t)rot);
            memcpy(qo + rot, qh, sizeof(float) * (size_t)nope);
            memcpy(ko, kr, sizeof(float) * (size_t)rot);
            memcpy(ko + rot, kv, sizeof(float) * (size_t)nope);
            memcpy(vo, kv + nope, sizeof(float) * (size_t)vd);
            memset(vo + vd, 0, sizeof(float) * (size_t)(hd - vd));
        }
    }
    free(mem);
    return rc;
}

static int step_attn(struct cpu_be *c, int layer)
{
    const struct llm_model_desc *d = c->d;
    int nh = d->n_heads, nkv = d->n_kv_heads;
    int64_t hd = d->head_dim, qkv_w = (int64_t)(nh + 2 * nkv) * hd;
    struct llm_cpu_attn a = {
        .n_heads = nh,
        .scale = (float)llm_desc_attn_scale(d),
        .window = d->sliding_window > 0 && d->layer_window[layer] ? d->sliding_window : 0,
        .softcap = (float)d->attn_softcap,
        .alibi = c->alibi,
        .qscale_beta = (float)d->attn_qscale_beta,
        .qscale_len = d->rope.orig_max_pos,
    };
    if (d->attn_sinks) { /* the rank's heads' sink logits, widened */
        const struct llm_weight *w = W(c, LLM_W_ATTN_SINKS, layer);
        llm_cpu_to_f32(c->sinks, w->data, w->dtype, 0, nh);
        a.sinks = c->sinks;
    }
    float *att = c->buf[LLM_BUF_ATT];
    int rc = llm_cpu_attention(att, (int64_t)nh * hd, c->buf[LLM_BUF_QKV], qkv_w, &c->kv[layer],
                               c->b, &a);
    const int64_t vd = d->v_head_dim;
    if (!rc && vd > 0 && vd < hd) /* MLA: each head's values lead its zero-padded row */
        for (int64_t r = 0; r < (int64_t)c->b->n_tokens * nh; r++)
            memmove(att + r * vd, att + r * hd, sizeof(float) * (size_t)vd);
    return rc;
}

static int step_embed(struct cpu_be *c, int n)
{
    const struct llm_model_desc *d = c->d;
    const struct llm_batch *b = c->b;
    const struct llm_weight *e = W(c, LLM_W_EMBED, -1);
    float esc = d->embed_scale > 0.0 ? (float)d->embed_scale : 1.0f;
    float *x = c->buf[LLM_BUF_X];
    int proj = d->embed_dim > 0 && d->embed_dim != d->hidden;
    int rc = llm_cpu_embed(proj ? c->buf[BUF_TMP] : x, b->tokens, n, e->data, e->dtype,
                           d->vocab_size, proj ? d->embed_dim : d->hidden, esc);
    if (!rc && proj) rc = linear(c, x, c->buf[BUF_TMP], n, W(c, LLM_W_PROJ_IN, -1));
    if (rc || d->pos != LLM_POS_LEARNED) return rc;
    const struct llm_weight *p = W(c, LLM_W_POS_EMBED, -1);
    const int32_t *pos = b->pos;
    if (d->pos_offset) {
        for (int i = 0; i < n; i++)
            c->pos_tmp[i] = b->pos[i] + d->pos_offset;
        pos = c->pos_tmp;
    }
    return llm_cpu_add_rows(x, pos, n, p->data, p->dtype, p->shape[0], d->hidden);
}

/* Vocab-parallel logits: each rank's LINEAR wrote [n][vocab_part]; the
 * gathered [tp][n][vocab_part] become [n][vocab] (the padding dropped). */
static int step_allgather(struct cpu_be *c, const struct llm_step *s, int n)
{
    const int tp = llm_part_tp(c->d);
    const int64_t vp = c->d->part.vocab_part, V = c->d->vocab_size;
    if (tp == 1) return 0;
    float *out = c->buf[s->out];
    int rc = c->tp_comm->ops->all_gather(c->tp_comm, out, c->gather, (size_t)n * (size_t)vp,
                                      LLM_DTYPE_F32, NULL);
    if (rc) return rc;
    for (int r = 0; r < tp; r++) {
        int64_t lo = (int64_t)r * vp, cnt = lo >= V ? 0 : (V - lo < vp ? V - lo : vp);
        for (int i = 0; i < n && cnt > 0; i++)
            memcpy(out + (int64_t)i * V + lo, c->gather + ((int64_t)r * n + i) * vp,
                   sizeof(float) * (size_t)cnt);
    }
    return 0;
}

/* ---- pipeline transfers ---------------------------------------------------------
 * A stage waits for the residual stream it starts from; what it sends on,
 * and the logits rank 0 receives (read only after the step), travel while
 * the next micro-batch runs: posted here, let move on between steps
 * (poke), finished at the end of the step (finish_transfers). */

static int step_p2p(struct cpu_be *c, const struct llm_step *s, int n)
{
    struct llm_comm *m = c->comm;
    void *buf = c->buf[s->out];
    size_t bytes = sizeof(float) * (size_t)n * (size_t)buf_width(c, s->out);
    int send = s->op == LLM_OP_SEND;
    if (!m->ops->isend || (!send && s->out != LLM_BUF_LOGITS))
        return send ? m->ops->send(m, buf, bytes, s->peer, NULL)
                    : m->ops->recv(m, buf, bytes, s->peer, NULL);
    if (c->n_pend == c->cap_pend) {
        int cap = c->cap_pend ? 2 * c->cap_pend : 8;
        void **p = realloc(c->pend, sizeof *p * (size_t)cap);
        if (!p) return llm_err_set(LLM_ENOMEM, "cpu backend: out of memory");
        c->pend = p;
        c->cap_pend = cap;
    }
    int rc = send ? m->ops->isend(m, buf, bytes, s->peer, &c->pend[c->n_pend])
                  : m->ops->irecv(m, buf, bytes, s->peer, &c->pend[c->n_pend]);
    if (!rc) c->n_pend++;
    return rc;
}

/* MPI moves a long message only while its ranks are inside MPI: between
 * steps, let the transfers in flight go on. */
static int poke(struct cpu_be *c)
{
    for (int i = 0; i < c->n_pend; i++) {
        int done, rc = c->comm->ops->test(c->comm, c->pend[i], &done);
        if (rc) return rc;
    }
    return 0;
}

/* The end of a step: every transfer finished (given up after an error). */
static int finish_transfers(struct cpu_be *c, int rc)
{
    for (int i = 0; i < c->n_pend; i++)
        if (!rc) rc = c->comm->ops->wait(c->comm, c->pend[i]);
        else c->comm->ops->cancel(c->comm, c->pend[i]);
    c->n_pend = 0;
    return rc;
}

static int cpu_step(void *ctx, const struct llm_step *s, int layer)
{
    struct cpu_be *c = ctx;
    const struct llm_batch *b = c->b;
    int n = s->rows == LLM_ROWS_OUT ? b->n_out : b->n_tokens;
    int rc = c->n_pend ? poke(c) : 0;
    if (rc || n == 0) return rc;
    switch (s->op) {
    case LLM_OP_EMBED: return step_embed(c, n);
    case LLM_OP_NORM: return step_norm(c, s, layer, n);
    case LLM_OP_LINEAR: return step_linear(c, s, layer, n);
    case LLM_OP_QK_NORM: return step_qk_norm(c, layer, n);
    case LLM_OP_CLIP:
        llm_cpu_clamp(c->buf[s->out], (int64_t)n * buf_width(c, s->out), (float)c->d->clip_qkv);
        return 0;
    case LLM_OP_MOE: return step_moe(c, s, layer, n);
    case LLM_OP_SOFTCAP:
        llm_cpu_softcap(c->buf[s->out], (int64_t)n * buf_width(c, s->out),
                        (float)c->d->final_softcap);
        return 0;
    case LLM_OP_SCALE:
    case LLM_OP_RSCALE: {
        float *x = c->buf[s->out];
        float k = (float)(s->op == LLM_OP_SCALE ? c->d->logit_scale : c->d->residual_scale);
        for (int64_t i = 0, m = (int64_t)n * buf_width(c, s->out); i < m; i++)
            x[i] *= k;
        return 0;
    }
    case LLM_OP_ROPE_KV: return step_rope_kv(c, layer);
    case LLM_OP_ATTN: return step_attn(c, layer);
    case LLM_OP_MLA: return step_mla(c, s, layer, n);
    case LLM_OP_ADD:
        llm_cpu_add(c->buf[s->out], c->buf[s->in], (int64_t)n * buf_width(c, s->out));
        return 0;
    case LLM_OP_GATHER: {
        int64_t H = c->d->hidden;
        for (int i = 0; i < n; i++)
            memcpy(c->buf[s->out] + i * H, c->buf[s->in] + (int64_t)b->out_rows[i] * H,
                   sizeof(float) * (size_t)H);
        return 0;
    }
    case LLM_OP_ALLREDUCE:
        return c->tp_comm->ops->all_reduce(c->tp_comm, c->buf[s->out],
                                        (size_t)n * (size_t)buf_width(c, s->out), LLM_DTYPE_F32,
                                        NULL);
    case LLM_OP_ALLGATHER: return step_allgather(c, s, n);
    case LLM_OP_SEND:
    case LLM_OP_RECV: return step_p2p(c, s, n);
    default:
        return llm_err_set(LLM_EUNSUPPORTED, "cpu backend: no %s step", llm_op_name(s->op));
    }
}

/* ---- micro-batches ---------------------------------------------------------------
 * Pipeline stages overlap: a step's sequences are cut into micro-batches,
 * each stage runs them in order and passes each on as soon as it is done,
 * so stage s + 1 computes micro-batch j while stage s computes j + 1.
 * Every rank cuts the step the same way (the tensor-parallel ranks of a
 * stage run the same micro-batch together).  Each micro-batch keeps its
 * rows of the buffers (set_views), and its logits land in its rows of
 * rank 0's, so the step's result is the whole batch's: the kernels compute
 * every row on its own. */

/* Cut b into at most m runs of whole sequences of about equal tokens:
 * micro-batch j has sequences [first[j], first[j + 1]).  Returns the count. */
static int split_micro(const struct llm_batch *b, int m, int *first)
{
    if (m > b->n_seqs) m = b->n_seqs;
    if (m < 1) m = 1;
    first[0] = 0;
    for (int j = 1; j < m; j++) {
        int64_t target = (int64_t)b->n_tokens * j / m;
        int lo = first[j - 1] + 1, hi = b->n_seqs - (m - j), q = lo;
        while (q < hi && b->seq_start[q] < target)
            q++;
        if (q > lo && target - b->seq_start[q - 1] < b->seq_start[q] - target) q--;
        first[j] = q;
    }
    first[m] = b->n_seqs;
    return m;
}

/* Sequences [s0, s1) of b as a batch of their own (idx: room for its
 * seq_start and out_rows, re-based); *row0 and *out0 get where its token
 * rows and out rows start in b. */
static void micro_batch(const struct llm_batch *b, int s0, int s1, int32_t *idx,
                        struct llm_batch *mb, int *row0, int *out0)
{
    int t0 = b->seq_start[s0], t1 = b->seq_start[s1], o0 = 0, o1;
    while (o0 < b->n_out && b->out_rows[o0] < t0)
        o0++;
    for (int q = s0; q <= s1; q++)
        idx[q - s0] = b->seq_start[q] - t0;
    int32_t *out = idx + (s1 - s0) + 1;
    for (o1 = o0; o1 < b->n_out && b->out_rows[o1] < t1; o1++)
        out[o1 - o0] = b->out_rows[o1] - t0;
    *mb = *b;
    mb->n_tokens = t1 - t0;
    mb->tokens = b->tokens + t0;
    mb->pos = b->pos + t0;
    mb->n_seqs = s1 - s0;
    mb->seq_start = idx;
    mb->seq_len = b->seq_len + s0;
    mb->block_table = b->block_table + (size_t)s0 * (size_t)b->bt_stride;
    mb->n_out = o1 - o0;
    mb->out_rows = out;
    *row0 = t0;
    *out0 = o0;
}

static int run_micro(struct cpu_be *c, const struct llm_batch *b)
{
    int m = llm_part_pp(c->d) > 1 && b->n_seqs > 1 ? c->n_micro : 1;
    if (m > b->n_seqs && m > 1) m = b->n_seqs;
    int *first = malloc(sizeof(int) * (size_t)(m + 1));
    int32_t *idx = malloc(sizeof(int32_t) * ((size_t)b->n_seqs + 1 + (size_t)b->n_out));
    int rc = 0;
    if (!first || !idx) rc = llm_err_set(LLM_ENOMEM, "cpu backend: out of memory");
    if (!rc) m = split_micro(b, m, first);
    const struct llm_exec x = {cpu_step, c};
    for (int j = 0; j < m && !rc; j++) {
        struct llm_batch mb;
        int row0 = 0, out0 = 0;
        if (m > 1) micro_batch(b, first[j], first[j + 1], idx, &mb, &row0, &out0);
        set_views(c, row0, out0);
        c->b = m > 1 ? &mb : b;
        rc = llm_graph_run(&c->g, &x);
    }
    rc = finish_transfers(c, rc);
    set_views(c, 0, 0);
    c->b = NULL;
    free(first);
    free(idx);
    return rc;
}

static int cpu_forward(struct llm_backend *be, const struct llm_batch *b)
{
    struct cpu_be *c = cpu_of(be);
    c->n_out = -1;
    int rc = llm_batch_check(&c->pub, b);
    if (rc) return rc;
    if ((rc = ensure(c, b->n_tokens, b->n_out))) return rc;
#ifdef _OPENMP
    omp_set_num_threads(c->n_threads);
#endif
    if (!c->tp_comm &&
        (rc = c->comm->ops->split(c->comm, c->d->part.pp_rank, c->d->part.tp_rank, &c->tp_comm))) {
        c->tp_comm = NULL;
        return rc;
    }
    if ((rc = run_micro(c, b))) return rc;
    c->n_out = b->n_out;
    return 0;
}

/* ---- results ------------------------------------------------------------- */

static int cpu_get_logits(struct llm_backend *be, float *dst)
{
    struct cpu_be *c = cpu_of(be);
    if (c->n_out < 0) return llm_err_set(LLM_EINVAL, "get_logits: no successful forward step");
    memcpy(dst, c->buf[LLM_BUF_LOGITS], sizeof(float) * (size_t)c->n_out * (size_t)c->d->vocab_size);
    return 0;
}

static int cpu_sample(struct llm_backend *be, const struct llm_sample_row *rows, int n,
                      struct llm_sample_result *out)
{
    struct cpu_be *c = cpu_of(be);
    if (c->n_out < 0) return llm_err_set(LLM_EINVAL, "sample: no successful forward step");
    if (n != c->n_out)
        return llm_err_set(LLM_EINVAL, "sample: %d rows given, the last step kept %d", n, c->n_out);
    if (!c->sample_scratch && n > 0) {
        c->sample_scratch = malloc(llm_sample_scratch_size(c->d->vocab_size));
        if (!c->sample_scratch) return llm_err_set(LLM_ENOMEM, "sample: out of memory");
    }
    for (int i = 0; i < n; i++) {
        int rc = llm_sample_cpu(c->buf[LLM_BUF_LOGITS] + (int64_t)i * c->d->vocab_size,
                                c->d->vocab_size, &rows[i], &out[i], c->sample_scratch);
        if (rc) return llm_err_wrap(rc, "sample: row %d", i);
    }
    return 0;
}

static int cpu_copy_blocks(struct llm_backend *be, const int32_t *src, const int32_t *dst, int n)
{
    struct cpu_be *c = cpu_of(be);
    for (int i = 0; i < n; i++)
        if (src[i] < 0 || src[i] >= be->n_blocks || dst[i] < 0 || dst[i] >= be->n_blocks)
            return llm_err_set(LLM_EINVAL,
                               "copy_blocks: pair %d (%d -> %d) outside the pool of %d blocks", i,
                               src[i], dst[i], be->n_blocks);
    uint64_t bb = llm_cpu_kv_block_bytes(&c->kv[0]);
    for (int l = 0; l < c->d->n_layers; l++) {
        const struct llm_cpu_kv *kv = &c->kv[l];
        if (!kv->k) continue; /* another pipeline stage's layer */
        for (int i = 0; i < n; i++) {
            if (src[i] == dst[i]) continue;
            memcpy((char *)kv->k + (uint64_t)dst[i] * bb, (char *)kv->k + (uint64_t)src[i] * bb,
                   bb);
            memcpy((char *)kv->v + (uint64_t)dst[i] * bb, (char *)kv->v + (uint64_t)src[i] * bb,
                   bb);
        }
    }
    return 0;
}

static const struct llm_backend_ops cpu_ops_table = {
    .name = "cpu",
    .forward = cpu_forward,
    .get_logits = cpu_get_logits,
    .sample = cpu_sample,
    .copy_blocks = cpu_copy_blocks,
    .last_step_time = NULL, /* no device clock: callers time steps on the host */
    .destroy = cpu_destroy,
};
