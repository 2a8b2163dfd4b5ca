/* engine.c - the in-flight batching engine: requests in, steps run,
 * results out.  What each step runs is decided by schedule.c (the policy,
 * docs/SCHEDULER.md); the state both share is engine_internal.h.
 *
 * Design choice: a sequence is just "tokens so far" plus "how many of them
 * have K/V in the pool" (kv_len).  Everything the scheduler does - prefill,
 * chunked prefill, decode, recompute after preemption - is the same action:
 * run the next tokens [kv_len, kv_len + chunk) of a sequence, and when the
 * chunk reaches the end of the sequence, sample the next token from the
 * last row.  Preemption therefore only frees blocks and sets kv_len to 0;
 * the sampled tokens, the detokenizer state and the RNG position (the
 * token index) are kept, so a resumed request continues exactly where it
 * was.
 *
 * n > 1 choices share their prompt: a "prefix" sequence computes tokens
 * [0, P-1) once, then each choice takes the full blocks by reference and a
 * private copy of the partial last block (backend copy_blocks), and runs
 * the last prompt token itself, so each choice has its own out row and
 * samples its first token from stream c.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llm/engine.h"
#include "llm/err.h"
#include "llm/log.h"
#include "llm/tokenizer.h"
#include "engine_internal.h"

const char *llm_finish_name(int finish)
{
    static const char *const names[LLM_FINISH_COUNT] = {"", "stop", "length"};
    if (finish < 0 || finish >= LLM_FINISH_COUNT) return "";
    return names[finish];
}

double llm_engine_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void llm_request_init(struct llm_request *r)
{
    memset(r, 0, sizeof(*r));
    llm_sampling_init(&r->sampling);
    r->max_tokens = 16;
    r->n = 1;
}

void llm_engine_opts_init(struct llm_engine_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->watermark = -1;
    o->n_eos = -1;
}

/* ---- sequences ------------------------------------------------------------ */

static inline int32_t seq_token(const struct seq *s, int i)
{
    return i < s->r->P ? s->r->prompt[i] : s->out[i - s->r->P];
}

static void seq_free(struct seq *s)
{
    free(s->bt);
    free(s->out);
    free(s->lp);
    free(s->top_ids);
    free(s->top_lp);
    free(s->times);
    free(s->text);
    if (s->ds) llm_tok_stream_free(s->ds);
}

static void req_free(struct req *r)
{
    if (!r) return;
    free(r->prompt);
    free(r->stop_ids);
    for (int i = 0; i < r->n_stop; i++)
        free(r->stop ? r->stop[i] : NULL);
    free(r->stop);
    free(r->stop_len);
    free(r->banned);
    seq_free(&r->prefix);
    if (r->ch)
        for (int c = 0; c < r->n; c++)
            seq_free(&r->ch[c]);
    free(r->ch);
    free(r);
}

/* ---- creation --------------------------------------------------------------- */

int llm_engine_create(struct llm_engine **out, struct llm_backend *be,
                      const struct llm_engine_opts *o)
{
    *out = NULL;
    struct llm_engine_opts defo;
    if (!o) {
        llm_engine_opts_init(&defo);
        o = &defo;
    }
    if (!be || !be->ops || !be->ops->forward || !be->ops->sample)
        return llm_err_set(LLM_EINVAL, "engine: backend without forward/sample");
    if (be->n_blocks <= 0 || be->block_size <= 0 || be->vocab <= 0 || be->vocab > INT32_MAX ||
        be->max_batch_tokens <= 0 || be->max_seqs <= 0)
        return llm_err_set(LLM_EINVAL,
                           "engine: backend '%s' reports %d KV blocks of %d tokens, vocab %lld, "
                           "%d tokens and %d sequences per step",
                           be->ops->name ? be->ops->name : "?", be->n_blocks, be->block_size,
                           (long long)be->vocab, be->max_batch_tokens, be->max_seqs);
    struct llm_engine *e = calloc(1, sizeof(*e));
    if (!e) return llm_err_set(LLM_ENOMEM, "engine: out of memory");
    e->be = be;
    e->tok = o->tok;
    e->bs = be->block_size;
    e->vocab = be->vocab;
    e->max_batch_tokens = be->max_batch_tokens;
    if (o->max_batch_tokens > 0 && o->max_batch_tokens < e->max_batch_tokens)
        e->max_batch_tokens = o->max_batch_tokens;
    e->max_seqs = be->max_seqs;
    if (o->max_seqs > 0 && o->max_seqs < e->max_seqs) e->max_seqs = o->max_seqs;
    e->max_seq_len = be->max_seq_len;
    if (e->max_seq_len <= 0 && be->model && be->model->desc.max_pos > 0)
        e->max_seq_len =
            be->model->desc.max_pos > INT_MAX / 2 ? INT_MAX / 2 : (int)be->model->desc.max_pos;
    if (e->max_seq_len <= 0) e->max_seq_len = INT_MAX / 2;
    double wm = o->watermark < 0 ? 0.01 : o->watermark;
    if (wm > 0.5) wm = 0.5;
    e->watermark = (int)ceil(wm * be->n_blocks);
    e->no_evict = o->no_evict;
    e->record_times = o->record_token_times;
    e->on_token = o->on_token;
    e->ctx = o->ctx;
    e->next_id = 1;

    int rc = llm_kvpool_init(&e->pool, be->n_blocks, be->block_size);
    if (rc) {
        free(e);
        return rc;
    }
    /* EOS ids: given, else the model's, else the tokenizer's */
    const int32_t *eos = o->eos_ids;
    int n_eos = o->n_eos;
    int32_t tok_eos;
    if (n_eos < 0) {
        n_eos = 0;
        if (be->model && be->model->desc.n_eos > 0) {
            eos = be->model->desc.eos_ids;
            n_eos = be->model->desc.n_eos;
        } else if (e->tok && (tok_eos = llm_tok_eos(e->tok)) >= 0) {
            eos = &tok_eos;
            n_eos = 1;
        }
    }
    if (n_eos > 0) {
        e->eos = malloc((size_t)n_eos * sizeof(*e->eos));
        if (!e->eos) {
            llm_engine_free(e);
            return llm_err_set(LLM_ENOMEM, "engine: out of memory");
        }
        for (int i = 0; i < n_eos; i++)
            if (eos[i] >= 0 && eos[i] < e->vocab) e->eos[e->n_eos++] = eos[i];
    }
    double mib = (double)be->kv_bytes / (1024.0 * 1024.0);
    llm_info("kv cache: %d blocks x %d tokens = %lld tokens (%.1f MiB) on %s; "
             "%d tokens and %d sequences per step",
             be->n_blocks, be->block_size, (long long)be->n_blocks * be->block_size, mib,
             be->device_name[0] ? be->device_name : (be->ops->name ? be->ops->name : "?"),
             e->max_batch_tokens, e->max_seqs);
    *out = e;
    return 0;
}

void llm_engine_clear(struct llm_engine *e)
{
    struct req *r;
    while ((r = e->running.head)) {
        seq_drop_blocks(e, &r->prefix);
        for (int c = 0; c < r->n; c++)
            if (!r->ch[c].finished) seq_drop_blocks(e, &r->ch[c]);
        list_remove(&e->running, r);
        req_free(r);
    }
    while ((r = e->waiting.head)) {
        list_remove(&e->waiting, r);
        req_free(r);
    }
    e->run_slots = 0;
    struct llm_result *res;
    while ((res = llm_engine_next_result(e)))
        llm_result_free(res);
}

void llm_engine_free(struct llm_engine *e)
{
    if (!e) return;
    llm_engine_clear(e);
    free(e->res);
    llm_kvpool_release(&e->pool);
    free(e->eos);
    free(e->ent);
    free(e->tokens);
    free(e->pos);
    free(e->seq_start);
    free(e->seq_len);
    free(e->btab);
    free(e->out_rows);
    free(e->rows);
    free(e->sres);
    free(e->out_seq);
    free(e);
}

void llm_engine_get_info(const struct llm_engine *e, struct llm_engine_info *info)
{
    memset(info, 0, sizeof(*info));
    info->n_blocks = e->pool.n_blocks;
    info->block_size = e->bs;
    info->kv_tokens = (int64_t)e->pool.n_blocks * e->bs;
    info->kv_bytes = e->be->kv_bytes;
    info->max_batch_tokens = e->max_batch_tokens;
    info->max_seqs = e->max_seqs;
    info->max_seq_len = e->max_seq_len;
    info->vocab = e->vocab;
    info->watermark_blocks = e->watermark;
    info->backend = e->be->ops->name ? e->be->ops->name : "";
    info->device = e->be->device_name;
}

const struct llm_engine_stats *llm_engine_get_stats(const struct llm_engine *e)
{
    return &e->stats;
}

int llm_engine_n_waiting(const struct llm_engine *e)
{
    return e->waiting.n;
}

int llm_engine_n_running(const struct llm_engine *e)
{
    return e->running.n;
}

int llm_engine_has_work(const struct llm_engine *e)
{
    return e->waiting.n + e->running.n > 0;
}

/* ---- submit -------------------------------------------------------------- */

static int is_eos(const struct llm_engine *e, int32_t t)
{
    for (int i = 0; i < e->n_eos; i++)
        if (e->eos[i] == t) return 1;
    return 0;
}

/* Most blocks a request can ever hold at once: its longest choices, all
 * alive, each with K/V for max_len - 1 tokens (the last token sampled is
 * never run), sharing the prompt's full blocks. */
static long worst_blocks(const struct llm_engine *e, const struct req *r)
{
    int bs = e->bs;
    long per = blocks_for(r->max_len - 1, bs);
    if (r->n == 1) return per;
    long shared = (r->P - 1) / bs;
    return shared + (long)r->n * (per - shared);
}

static int copy_string_list(struct req *r, const char *const *stop, int n)
{
    if (n <= 0) return 0;
    r->stop = calloc((size_t)n, sizeof(*r->stop));
    r->stop_len = calloc((size_t)n, sizeof(*r->stop_len));
    if (!r->stop || !r->stop_len) return llm_err_set(LLM_ENOMEM, "engine: out of memory");
    r->n_stop = n;
    for (int i = 0; i < n; i++) {
        if (!stop[i] || !stop[i][0]) return llm_err_set(LLM_EINVAL, "stop string %d is empty", i);
        r->stop[i] = strdup(stop[i]);
        if (!r->stop[i]) return llm_err_set(LLM_ENOMEM, "engine: out of memory");
        r->stop_len[i] = strlen(stop[i]);
        if (r->stop_len[i] > r->max_stop) r->max_stop = r->stop_len[i];
    }
    return 0;
}

static int build_request(struct llm_engine *e, const struct llm_request *q, struct req *r)
{
    int rc = llm_sampling_check(&q->sampling);
    if (rc) return rc;
    r->sp = q->sampling;
    if (q->n < 1 || q->n > e->max_seqs)
        return llm_err_set(LLM_EINVAL, "n %d: must be in 1..%d (sequences per step)", q->n,
                           e->max_seqs);
    if (q->max_tokens < 1)
        return llm_err_set(LLM_EINVAL, "max_tokens %d: must be >= 1", q->max_tokens);
    if (q->min_tokens < 0 || q->min_tokens > q->max_tokens)
        return llm_err_set(LLM_EINVAL, "min_tokens %d: must be in 0..max_tokens (%d)",
                           q->min_tokens, q->max_tokens);
    r->n = q->n;
    r->max_tokens = q->max_tokens;
    r->min_tokens = q->min_tokens;
    r->ignore_eos = q->ignore_eos != 0;
    r->user = q->user;

    /* prompt */
    if (q->text) {
        if (!e->tok)
            return llm_err_set(LLM_EINVAL, "a text prompt needs a tokenizer (give input_ids)");
        size_t n = 0;
        rc = llm_tok_encode(e->tok, q->text, q->text_len, 1, &r->prompt, &n);
        if (rc) return llm_err_wrap(rc, "prompt");
        if (n > INT_MAX / 2) return llm_err_set(LLM_ECAPACITY, "prompt too long (%zu tokens)", n);
        r->P = (int)n;
    } else {
        if (q->n_prompt < 0 || (q->n_prompt > 0 && !q->prompt))
            return llm_err_set(LLM_EINVAL, "prompt: %d ids without an array", q->n_prompt);
        if (q->n_prompt > 0) {
            r->prompt = malloc((size_t)q->n_prompt * sizeof(int32_t));
            if (!r->prompt) return llm_err_set(LLM_ENOMEM, "engine: out of memory");
            memcpy(r->prompt, q->prompt, (size_t)q->n_prompt * sizeof(int32_t));
        }
        r->P = q->n_prompt;
        for (int i = 0; i < r->P; i++)
            if (r->prompt[i] < 0 || r->prompt[i] >= e->vocab)
                return llm_err_set(LLM_EINVAL,
                                   "prompt token %d (id %d) outside the vocabulary "
                                   "(0..%lld)",
                                   i, r->prompt[i], (long long)e->vocab - 1);
    }
    if (r->P == 0) return llm_err_set(LLM_EINVAL, "prompt is empty");
    if (r->P >= e->max_seq_len)
        return llm_err_set(LLM_ECAPACITY, "prompt has %d tokens; the context holds %d", r->P,
                           e->max_seq_len);
    long ml = (long)r->P + r->max_tokens;
    r->max_len = ml > e->max_seq_len ? e->max_seq_len : (int)ml;

    /* stops */
    if (q->n_stop_ids < 0 || (q->n_stop_ids > 0 && !q->stop_ids))
        return llm_err_set(LLM_EINVAL, "stop_token_ids: bad list");
    if (q->n_stop_ids > 0) {
        r->stop_ids = malloc((size_t)q->n_stop_ids * sizeof(int32_t));
        if (!r->stop_ids) return llm_err_set(LLM_ENOMEM, "engine: out of memory");
        for (int i = 0; i < q->n_stop_ids; i++) {
            if (q->stop_ids[i] < 0 || q->stop_ids[i] >= e->vocab)
                return llm_err_set(LLM_EINVAL, "stop token id %d outside the vocabulary (0..%lld)",
                                   q->stop_ids[i], (long long)e->vocab - 1);
            r->stop_ids[i] = q->stop_ids[i];
        }
        r->n_stop_ids = q->n_stop_ids;
    }
    if (q->n_stop < 0 || (q->n_stop > 0 && !q->stop))
        return llm_err_set(LLM_EINVAL, "stop: bad list");
    if (q->n_stop > 0 && !e->tok) return llm_err_set(LLM_EINVAL, "stop strings need a tokenizer");
    rc = copy_string_list(r, q->stop, q->n_stop);
    if (rc) return rc;

    /* banned before min_tokens: stop ids, and EOS unless ignored */
    int nb = r->n_stop_ids + (r->ignore_eos ? 0 : e->n_eos);
    if (r->min_tokens > 0 && nb > 0) {
        r->banned = malloc((size_t)nb * sizeof(int32_t));
        if (!r->banned) return llm_err_set(LLM_ENOMEM, "engine: out of memory");
        if (r->n_stop_ids > 0)
            memcpy(r->banned, r->stop_ids, (size_t)r->n_stop_ids * sizeof(int32_t));
        if (!r->ignore_eos && e->n_eos > 0)
            memcpy(r->banned + r->n_stop_ids, e->eos, (size_t)e->n_eos * sizeof(int32_t));
        r->n_banned = nb;
        if (nb >= e->vocab) {
            /* every id banned? count the distinct ones */
            unsigned char *m = calloc((size_t)e->vocab, 1);
            if (!m) return llm_err_set(LLM_ENOMEM, "engine: out of memory");
            int64_t distinct = 0;
            for (int i = 0; i < nb; i++)
                if (!m[r->banned[i]]++) distinct++;
            free(m);
            if (distinct >= e->vocab)
                return llm_err_set(LLM_EINVAL, "min_tokens: every token id is a stop id");
        }
    }

    r->ch = calloc((size_t)r->n, sizeof(*r->ch));
    if (!r->ch) return llm_err_set(LLM_ENOMEM, "engine: out of memory");
    for (int c = 0; c < r->n; c++) {
        r->ch[c].r = r;
        r->ch[c].choice = c;
        r->ch[c].stop_token = -1;
        r->ch[c].stop_string = -1;
    }
    r->prefix.r = r;
    r->prefix.choice = -1;
    r->n_active = r->n;
    r->forked = r->n == 1;

    long worst = worst_blocks(e, r);
    if (worst > e->pool.n_blocks)
        return llm_err_set(LLM_ECAPACITY,
                           "request needs up to %ld KV blocks (%d prompt tokens + %d new, n %d); "
                           "the pool has %d",
                           worst, r->P, r->max_len - r->P, r->n, e->pool.n_blocks);
    return 0;
}

int llm_engine_submit(struct llm_engine *e, const struct llm_request *q, uint64_t *id)
{
    if (id) *id = 0;
    if (e->failed) return llm_err_set(LLM_EINVAL, "engine: unusable after a backend failure");
    struct req *r = calloc(1, sizeof(*r));
    if (!r) return llm_err_set(LLM_ENOMEM, "engine: out of memory");
    int rc = build_request(e, q, r);
    if (rc) {
        req_free(r);
        e->stats.rejected++;
        return rc;
    }
    r->id = e->next_id++;
    r->t_arrival = q->arrival > 0 ? q->arrival : llm_engine_now();
    list_push_back(&e->waiting, r);
    e->stats.submitted++;
    if (id) *id = r->id;
    return 0;
}

/* ---- stepping -------------------------------------------------------------- */

static int text_append(struct seq *s, const char *t, size_t n)
{
    if (grow(&s->text, &s->text_cap, s->text_len + n + 1, 1)) return LLM_ENOMEM;
    memcpy(s->text + s->text_len, t, n);
    s->text_len += n;
    s->text[s->text_len] = 0;
    return 0;
}

static int detok_push(struct llm_engine *e, struct seq *s, int32_t t, int flush)
{
    int rc;
    if (!s->ds) {
        rc = llm_tok_stream_new(&s->ds, e->tok, 1);
        if (rc) return rc;
    }
    char *piece = NULL;
    size_t n = 0;
    rc =
        flush ? llm_tok_stream_flush(s->ds, &piece, &n) : llm_tok_stream_push(s->ds, t, &piece, &n);
    if (rc) return rc;
    if (n > 0) rc = text_append(s, piece, n);
    free(piece);
    if (!rc && !s->text) rc = text_append(s, "", 0);
    return rc;
}

long llm_stop_scan(const char *text, size_t len, size_t from, char *const *stop,
                   const size_t *stop_len, int n_stop, int *which)
{
    long best = -1;
    for (int k = 0; k < n_stop; k++) {
        if (stop_len[k] == 0 || from >= len) continue;
        const char *hit = memmem(text + from, len - from, stop[k], stop_len[k]);
        if (hit && (best < 0 || hit - text < best)) {
            best = hit - text;
            *which = k;
        }
    }
    return best;
}

static void seq_finish(struct llm_engine *e, struct seq *s, int reason);

/* Record the sampled token of choice s and apply the stop conditions. */
static int take_token(struct llm_engine *e, struct seq *s, const struct llm_sample_result *res,
                      double now)
{
    struct req *r = s->r;
    int32_t t = res->token;
    size_t need = (size_t)s->n_out + 1, cap = (size_t)s->cap_out;
    if (need > cap) {
        size_t nc = cap ? cap * 2 : 16;
        int32_t *o = realloc(s->out, nc * sizeof(*o));
        if (!o) return llm_err_set(LLM_ENOMEM, "engine: out of memory");
        s->out = o;
        if (r->sp.logprobs >= 0) {
            float *lp = realloc(s->lp, nc * sizeof(*lp));
            if (lp) s->lp = lp;
            int nt = r->sp.logprobs;
            if (nt > 0) {
                int32_t *ti = realloc(s->top_ids, nc * (size_t)nt * sizeof(*ti));
                if (ti) s->top_ids = ti;
                float *tl = realloc(s->top_lp, nc * (size_t)nt * sizeof(*tl));
                if (tl) s->top_lp = tl;
                if (!ti || !tl) return llm_err_set(LLM_ENOMEM, "engine: out of memory");
            }
            if (!lp) return llm_err_set(LLM_ENOMEM, "engine: out of memory");
        }
        if (e->record_times) {
            double *tm = realloc(s->times, nc * sizeof(*tm));
            if (!tm) return llm_err_set(LLM_ENOMEM, "engine: out of memory");
            s->times = tm;
        }
        s->cap_out = (int)nc;
    }
    int idx = s->n_out;
    s->out[idx] = t;
    if (r->sp.logprobs >= 0) {
        s->lp[idx] = res->logprob;
        int nt = r->sp.logprobs;
        for (int j = 0; j < nt; j++) {
            int ok = j < res->n_top;
            s->top_ids[(size_t)idx * nt + j] = ok ? res->top_ids[j] : -1;
            s->top_lp[(size_t)idx * nt + j] = ok ? res->top_logprobs[j] : -INFINITY;
        }
    }
    if (e->record_times) s->times[idx] = now;
    s->n_out++;
    if (r->t_first == 0) r->t_first = now;
    e->stats.generated_tokens++;

    int finish = 0, rc;
    if (!r->ignore_eos && is_eos(e, t)) {
        finish = LLM_FINISH_STOP;
        s->stop_token = t;
    } else {
        for (int i = 0; i < r->n_stop_ids; i++)
            if (r->stop_ids[i] == t) {
                finish = LLM_FINISH_STOP;
                s->stop_token = t;
                break;
            }
    }
    if (!finish && e->tok) {
        size_t before = s->text_len;
        rc = detok_push(e, s, t, 0);
        if (rc) return rc;
        if (r->n_stop > 0 && s->n_out >= r->min_tokens) {
            size_t from = before > r->max_stop - 1 ? before - (r->max_stop - 1) : 0;
            int which = -1;
            long at =
                llm_stop_scan(s->text, s->text_len, from, r->stop, r->stop_len, r->n_stop, &which);
            if (at >= 0) {
                s->text_len = (size_t)at;
                s->text[at] = 0;
                s->stop_string = which;
                finish = LLM_FINISH_STOP;
            }
        }
    }
    if (!finish && r->P + s->n_out >= r->max_len) finish = LLM_FINISH_LENGTH;
    if (finish && e->tok && s->stop_string < 0) {
        rc = detok_push(e, s, -1, 1);
        if (rc) return rc;
    }
    if (e->on_token) {
        struct llm_token_event ev = {r->id, r->user, s->choice, idx, t, res->logprob, now, finish};
        e->on_token(e->ctx, &ev);
    }
    if (finish) seq_finish(e, s, finish);
    return 0;
}

static int push_result(struct llm_engine *e, struct llm_result *res)
{
    if (e->res_n == e->res_cap) {
        size_t nc = e->res_cap ? e->res_cap * 2 : 16;
        struct llm_result **nr = malloc(nc * sizeof(*nr));
        if (!nr) return llm_err_set(LLM_ENOMEM, "engine: out of memory");
        for (size_t i = 0; i < e->res_n; i++)
            nr[i] = e->res[(e->res_head + i) % e->res_cap];
        free(e->res);
        e->res = nr;
        e->res_head = 0;
        e->res_cap = nc;
    }
    e->res[(e->res_head + e->res_n) % e->res_cap] = res;
    e->res_n++;
    return 0;
}

/* All choices done: hand the request's outputs over to a result. */
static int complete(struct llm_engine *e, struct req *r, double now)
{
    struct llm_result *res = calloc(1, sizeof(*res));
    struct llm_choice *ch = res ? calloc((size_t)r->n, sizeof(*ch)) : NULL;
    if (!ch) {
        free(res);
        return llm_err_set(LLM_ENOMEM, "engine: out of memory");
    }
    res->id = r->id;
    res->user = r->user;
    res->n_prompt = r->P;
    res->n_choices = r->n;
    res->choices = ch;
    res->t_arrival = r->t_arrival;
    res->t_scheduled = r->t_sched;
    res->t_first_token = r->t_first;
    res->t_finish = now;
    res->n_preemptions = r->n_preempt;
    for (int c = 0; c < r->n; c++) {
        struct seq *s = &r->ch[c];
        struct llm_choice *o = &ch[c];
        o->index = c;
        o->tokens = s->out;
        o->n_tokens = s->n_out;
        o->text = s->text;
        o->text_len = s->text_len;
        if (e->tok && !o->text) o->text = calloc(1, 1);
        o->finish_reason = s->finish_reason;
        o->stop_token = s->stop_token;
        o->stop_string = s->stop_string;
        o->logprobs = s->lp;
        o->n_top = r->sp.logprobs > 0 ? r->sp.logprobs : 0;
        o->top_ids = s->top_ids;
        o->top_logprobs = s->top_lp;
        o->token_times = s->times;
        s->out = NULL;
        s->text = NULL;
        s->lp = NULL;
        s->top_ids = NULL;
        s->top_lp = NULL;
        s->times = NULL;
        res->completion_tokens += o->n_tokens;
    }
    list_remove(&e->running, r);
    e->stats.finished++;
    e->stats.prompt_tokens += (uint64_t)r->P;
    e->st.n_finished++;
    req_free(r);
    return push_result(e, res);
}

static void seq_finish(struct llm_engine *e, struct seq *s, int reason)
{
    s->finished = 1;
    s->finish_reason = reason;
    seq_drop_blocks(e, s);
    s->r->n_active--;
    e->run_slots--;
}

static int ensure_batch_arrays(struct llm_engine *e, int n_tokens, int n_seqs, int stride)
{
    if ((size_t)n_tokens > e->cap_tokens) {
        size_t c = e->cap_tokens ? e->cap_tokens : 64;
        while (c < (size_t)n_tokens)
            c *= 2;
        int32_t *t = realloc(e->tokens, c * sizeof(int32_t));
        if (t) e->tokens = t;
        int32_t *p = realloc(e->pos, c * sizeof(int32_t));
        if (p) e->pos = p;
        if (!t || !p) return llm_err_set(LLM_ENOMEM, "engine: out of memory");
        e->cap_tokens = c;
    }
    if ((size_t)n_seqs + 1 > e->cap_seqs) {
        size_t c = e->cap_seqs ? e->cap_seqs : 16;
        while (c < (size_t)n_seqs + 1)
            c *= 2;
        int32_t *a = realloc(e->seq_start, c * sizeof(int32_t));
        if (a) e->seq_start = a;
        int32_t *b = realloc(e->seq_len, c * sizeof(int32_t));
        if (b) e->seq_len = b;
        int32_t *o = realloc(e->out_rows, c * sizeof(int32_t));
        if (o) e->out_rows = o;
        struct llm_sample_row *rw = realloc(e->rows, c * sizeof(*rw));
        if (rw) e->rows = rw;
        struct llm_sample_result *sr = realloc(e->sres, c * sizeof(*sr));
        if (sr) e->sres = sr;
        struct seq **os = realloc(e->out_seq, c * sizeof(*os));
        if (os) e->out_seq = os;
        if (!a || !b || !o || !rw || !sr || !os)
            return llm_err_set(LLM_ENOMEM, "engine: out of memory");
        e->cap_seqs = c;
    }
    size_t nb = (size_t)n_seqs * (size_t)stride;
    if (grow(&e->btab, &e->cap_btab, nb, sizeof(int32_t))) return LLM_ENOMEM;
    return 0;
}

int llm_engine_step(struct llm_engine *e, struct llm_step_stats *st_out)
{
    if (e->failed) return llm_err_set(LLM_EINVAL, "engine: unusable after a backend failure");
    memset(&e->st, 0, sizeof(e->st));
    e->st.t_start = llm_engine_now();
    int rc = llm_sched_plan(e);
    if (rc) goto fail;

    /* compact away the entries of preempted requests */
    int n = 0, n_tokens = 0, stride = 1;
    for (int i = 0; i < e->n_ent; i++) {
        if (!e->ent[i].s) continue;
        e->ent[n++] = e->ent[i];
        n_tokens += e->ent[i].ntok;
        if (e->ent[i].s->n_bt > stride) stride = e->ent[i].s->n_bt;
    }
    e->n_ent = n;
    int n_out = 0;
    if (n > 0) {
        rc = ensure_batch_arrays(e, n_tokens, n, stride);
        if (rc) goto fail;
        int row = 0;
        for (int i = 0; i < n; i++) {
            struct seq *s = e->ent[i].s;
            int nt = e->ent[i].ntok;
            e->seq_start[i] = row;
            for (int j = 0; j < nt; j++) {
                e->tokens[row] = seq_token(s, s->kv_len + j);
                e->pos[row] = s->kv_len + j;
                row++;
            }
            e->seq_len[i] = s->kv_len + nt;
            int32_t *bt = e->btab + (size_t)i * stride;
            memcpy(bt, s->bt, (size_t)s->n_bt * sizeof(int32_t));
            for (int j = s->n_bt; j < stride; j++)
                bt[j] = -1;
            if (nt == 1 && s->choice >= 0 && s->kv_len + 1 == seq_target(s))
                e->st.n_decode_tokens += 1;
            else
                e->st.n_prefill_tokens += nt;
            if (s->kv_len < s->hw)
                e->stats.recomputed_tokens +=
                    (uint64_t)(s->hw - s->kv_len < nt ? s->hw - s->kv_len : nt);
            if (s->choice >= 0 && s->kv_len + nt == seq_target(s)) {
                struct req *r = s->r;
                e->out_rows[n_out] = row - 1;
                e->out_seq[n_out] = s;
                struct llm_sample_row *sr = &e->rows[n_out];
                sr->p = &r->sp;
                sr->stream = (uint32_t)s->choice;
                sr->index = (uint64_t)s->n_out;
                sr->prompt = r->prompt;
                sr->n_prompt = r->P;
                sr->output = s->out;
                sr->n_output = s->n_out;
                int banned = s->n_out < r->min_tokens;
                sr->banned = banned ? r->banned : NULL;
                sr->n_banned = banned ? r->n_banned : 0;
                n_out++;
            }
        }
        e->seq_start[n] = row;
        struct llm_batch b = {
            .n_tokens = n_tokens,
            .tokens = e->tokens,
            .pos = e->pos,
            .n_seqs = n,
            .seq_start = e->seq_start,
            .seq_len = e->seq_len,
            .block_table = e->btab,
            .bt_stride = stride,
            .n_out = n_out,
            .out_rows = e->out_rows,
        };
        rc = e->be->ops->forward(e->be, &b);
        if (rc) {
            llm_err_wrap(rc, "backend '%s' forward", e->be->ops->name);
            goto fail;
        }
        if (n_out > 0) {
            rc = e->be->ops->sample(e->be, e->rows, n_out, e->sres);
            if (rc) {
                llm_err_wrap(rc, "backend '%s' sample", e->be->ops->name);
                goto fail;
            }
        }
        for (int i = 0; i < n; i++) {
            struct seq *s = e->ent[i].s;
            s->kv_len += e->ent[i].ntok;
            if (s->kv_len > s->hw) s->hw = s->kv_len;
            s->in_step = 0;
        }
        e->stats.computed_tokens += (uint64_t)n_tokens;
    }
    double now = llm_engine_now();
    for (int i = 0; i < n_out; i++) {
        rc = take_token(e, e->out_seq[i], &e->sres[i], now);
        if (rc) goto fail;
    }
    /* requests whose last choice finished leave now */
    for (struct req *r = e->running.head, *nx; r; r = nx) {
        nx = r->next;
        if (r->n_active == 0) {
            rc = complete(e, r, now);
            if (rc) goto fail;
        }
    }
    /* a step may run nothing once (every runnable request preempted); twice
     * in a row with work left would loop forever: report it instead */
    e->idle_steps = (n == 0 && llm_engine_has_work(e)) ? e->idle_steps + 1 : 0;
    if (e->idle_steps > 2) {
        rc = llm_err_set(LLM_ECAPACITY,
                         "engine: no request can make progress (%d waiting, "
                         "%d running, %d of %d KV blocks free)",
                         e->waiting.n, e->running.n, e->pool.n_free, e->pool.n_blocks);
        goto fail;
    }
    e->st.step = ++e->stats.steps;
    e->st.n_tokens = n_tokens;
    e->st.n_seqs = n;
    e->st.n_sampled = n_out;
    e->st.n_running = e->running.n;
    e->st.n_waiting = e->waiting.n;
    e->st.kv_blocks_used = llm_kvpool_used(&e->pool);
    e->st.kv_blocks_total = e->pool.n_blocks;
    if (e->st.kv_blocks_used > e->stats.peak_blocks_used)
        e->stats.peak_blocks_used = e->st.kv_blocks_used;
    e->st.t_end = llm_engine_now();
    e->stats.busy_time += e->st.t_end - e->st.t_start;
    if (st_out) *st_out = e->st;
    return 0;
fail:
    e->failed = 1;
    return rc;
}

struct llm_result *llm_engine_next_result(struct llm_engine *e)
{
    if (e->res_n == 0) return NULL;
    struct llm_result *r = e->res[e->res_head];
    e->res_head = (e->res_head + 1) % e->res_cap;
    e->res_n--;
    return r;
}

void llm_result_free(struct llm_result *r)
{
    if (!r) return;
    for (int c = 0; c < r->n_choices; c++) {
        struct llm_choice *o = &r->choices[c];
        free(o->tokens);
        free(o->text);
        free(o->logprobs);
        free(o->top_ids);
        free(o->top_logprobs);
        free(o->token_times);
    }
    free(r->choices);
    free(r);
}
