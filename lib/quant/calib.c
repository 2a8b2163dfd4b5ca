/* calib.c - activation statistics of a model's linear layers over
 * calibration text: for each linear weight, the largest |x| of its input
 * over every token (fp8 static activation scales) and per input channel
 * (SmoothQuant's channel statistics), the mean |x| per channel and, when
 * asked, a uniform sample of input rows (AWQ's search measures its error on
 * them).
 *
 * Design: the text runs through a backend in windows, like the report's
 * evaluation, with this file as the backend's statistics sink
 * (llm/backend.h, struct llm_stat_sink): the backend reduces every linear
 * layer's input where it is computed (the CPU on its host rows, the CUDA
 * backend on the device) into the accumulators kept here, and asks here
 * which rows the reservoir sample keeps.  That choice depends only on the
 * row counts and one random sequence, consumed in the order the products
 * run, so the CPU and the CUDA backend keep the same rows.  Only the maxima,
 * sums and the sample are kept, so memory is the model's input widths
 * times the sample size, not its activations.  Only the last row of each
 * window asks for logits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/quantize.h"
#include "llm/weight.h"

static struct llm_q_stat *find_or_add(struct llm_q_stats *s, const struct llm_weight *w)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->stat[i].name, w->name)) return &s->stat[i];
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        struct llm_q_stat *t = realloc(s->stat, sizeof *t * (size_t)cap);
        if (!t) return NULL;
        s->stat = t;
        s->cap = cap;
    }
    struct llm_q_stat *st = &s->stat[s->n];
    memset(st, 0, sizeof *st);
    snprintf(st->name, sizeof st->name, "%s", w->name);
    st->in = w->shape[w->ndim - 1];
    st->chan = calloc((size_t)st->in, sizeof(float));
    st->chan_sum = calloc((size_t)st->in, sizeof(double));
    if (s->keep_rows > 0)
        st->sample = malloc(sizeof(float) * (size_t)s->keep_rows * (size_t)st->in);
    if (!st->chan || !st->chan_sum || (s->keep_rows > 0 && !st->sample)) {
        free(st->chan);
        free(st->chan_sum);
        free(st->sample);
        return NULL;
    }
    s->n++;
    return st;
}

/* The sink's question (llm/backend.h): w's accumulators and the reservoir's
 * choice for its next rows - row number k replaces a kept row with
 * probability keep / (k + 1). */
static int sink_linear(void *ctx, const struct llm_weight *w, int rows, int32_t *slot,
                       struct llm_stat_acc *acc)
{
    struct llm_q_stats *s = ctx;
    if (w->ndim != 2) return 1; /* experts arrive one by one, as 2-D views named <name>#<e> */
    struct llm_q_stat *st = find_or_add(s, w);
    if (!st) return llm_err_set(LLM_ENOMEM, "calibration: out of memory for the statistics");
    for (int t = 0; t < rows; t++) {
        long k = st->rows + t;
        int sl = -1;
        if (s->keep_rows > 0) {
            if (k < s->keep_rows) {
                sl = (int)k;
            } else {
                s->rng = s->rng * 6364136223846793005ull + 1442695040888963407ull;
                uint64_t j = (s->rng >> 33) % (uint64_t)(k + 1);
                if (j < (uint64_t)s->keep_rows) sl = (int)j;
            }
        }
        if (sl >= 0 && st->n_sample < s->keep_rows) st->n_sample++;
        slot[t] = sl;
    }
    st->rows += rows;
    acc->in = st->in;
    acc->chan = st->chan;
    acc->chan_sum = st->chan_sum;
    acc->amax = &st->amax;
    acc->sample = st->sample;
    return 0;
}

const struct llm_q_stat *llm_q_stats_find(const struct llm_q_stats *s, const char *weight_name)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->stat[i].name, weight_name)) return &s->stat[i];
    return NULL;
}

void llm_q_stats_free(struct llm_q_stats *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->stat[i].chan);
        free(s->stat[i].chan_sum);
        free(s->stat[i].sample);
    }
    free(s->stat);
    free(s->kv_amax);
    memset(s, 0, sizeof *s);
}

int llm_q_calibrate(const struct llm_model *m, const int32_t *tokens, long n, int window,
                    int keep_rows, const char *backend, const struct llm_backend_opts *o,
                    void (*progress)(void *ctx, long done, long total), void *ctx,
                    struct llm_q_stats *s)
{
    memset(s, 0, sizeof *s);
    s->keep_rows = keep_rows;
    s->rng = 0x853c49e6748fea9bull;
    s->n_layers = m->desc.n_layers;
    if (!(s->kv_amax = calloc(2 * (size_t)(s->n_layers > 0 ? s->n_layers : 1), sizeof(float))))
        return llm_err_set(LLM_ENOMEM, "out of memory");
    if (n < 1 || window < 1) {
        llm_q_stats_free(s);
        return llm_err_set(LLM_EINVAL, "calibration: no tokens to read");
    }
    s->sink = (struct llm_stat_sink){s, keep_rows, sink_linear, s->kv_amax};
    struct llm_backend_opts bo = *o;
    bo.max_batch_tokens = window;
    bo.max_seqs = 1;
    bo.max_seq_len = window;
    bo.stats = &s->sink;
    struct llm_backend *be = NULL;
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)window), *bt = NULL;
    /* experts are observed one by one on the CPU only (the CUDA backend runs
     * them grouped, and refuses a sink with experts) */
    if (m->desc.n_experts > 0 && (!backend || !strcmp(backend, "auto"))) backend = "cpu";
    int rc = pos ? llm_backend_create(&be, backend, m, &bo)
                 : llm_err_set(LLM_ENOMEM, "out of memory");
    int nb = 0;
    if (!rc) {
        snprintf(s->backend, sizeof s->backend, "%s", be->ops->name);
        snprintf(s->device, sizeof s->device, "%s", be->device_name);
        s->dtype = strcmp(be->ops->name, "cpu") ? bo.compute_dtype : LLM_DTYPE_F32;
        nb = (window + be->block_size - 1) / be->block_size;
        if (be->n_blocks < nb)
            rc = llm_err_set(LLM_ECAPACITY, "calibration: the KV cache holds fewer than %d tokens",
                             window);
        else if (!(bt = malloc(sizeof(int32_t) * (size_t)nb)))
            rc = llm_err_set(LLM_ENOMEM, "out of memory");
    }
    for (int i = 0; !rc && i < window; i++) pos[i] = i;
    for (int i = 0; !rc && i < nb; i++) bt[i] = i;
    for (long w0 = 0; !rc && w0 < n; w0 += window) {
        int L = n - w0 < window ? (int)(n - w0) : window;
        int32_t start[2] = {0, L}, len[1] = {L}, last[1] = {L - 1};
        struct llm_batch b = {L, tokens + w0, pos, 1, start, len, bt, nb, 1, last};
        if ((rc = be->ops->forward(be, &b)))
            llm_err_wrap(rc, "calibration (tokens %ld..%ld)", w0, w0 + L);
        else if (progress)
            progress(ctx, w0 + L, n);
    }
    if (!rc && be->ops->stats_flush && (rc = be->ops->stats_flush(be)))
        llm_err_wrap(rc, "calibration: the device's statistics");
    llm_backend_destroy(be);
    free(pos);
    free(bt);
    if (rc) llm_q_stats_free(s);
    return rc;
}
