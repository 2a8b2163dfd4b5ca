/* report.c - how far a quantized model is from its parent, in numbers: the
 * KL divergence of their next-token distributions (mean, 99th percentile,
 * max), how often they agree on the top token, and the perplexity of the
 * text under each.
 *
 * Design: both models run the same windows of real text side by side on
 * backends of the same kind, every row's logits kept; the distributions are
 * compared in double precision from the fp32 logits (log-softmax with the
 * max subtracted).  Each window is one sequence from position 0, so a
 * window is the context every prediction in it sees.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "llm/quantize.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* log-softmax of row z[V] into lp (double). */
static void log_softmax(const float *z, int64_t V, double *lp)
{
    double mx = z[0];
    for (int64_t v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    double s = 0;
    for (int64_t v = 0; v < V; v++) s += exp((double)z[v] - mx);
    double ls = log(s) + mx;
    for (int64_t v = 0; v < V; v++) lp[v] = (double)z[v] - ls;
}

static int64_t argmax(const float *z, int64_t V)
{
    int64_t b = 0;
    for (int64_t v = 1; v < V; v++)
        if (z[v] > z[b]) b = v;
    return b;
}

int llm_q_evaluate(const struct llm_model *parent, const struct llm_model *quant,
                   const int32_t *tokens, long n, int window, const char *backend,
                   const struct llm_backend_opts *o,
                   void (*progress)(void *ctx, long done, long total), void *ctx,
                   struct llm_q_report *r)
{
    memset(r, 0, sizeof *r);
    if (n < 2 || window < 2)
        return llm_err_set(LLM_EINVAL, "evaluation: %ld tokens, window %d: nothing to predict", n,
                           window);
    if (parent->desc.vocab_size != quant->desc.vocab_size)
        return llm_err_set(LLM_EINVAL, "evaluation: vocabularies differ (%lld, %lld)",
                           (long long)parent->desc.vocab_size, (long long)quant->desc.vocab_size);
    const int64_t V = parent->desc.vocab_size;
    struct llm_backend_opts bo = *o;
    bo.max_batch_tokens = window;
    bo.max_seqs = 1;
    bo.max_seq_len = window;
    struct llm_backend *be[2] = {NULL, NULL};
    float *lg[2] = {NULL, NULL};
    double *lp = malloc(sizeof(double) * (size_t)V), *lq = malloc(sizeof(double) * (size_t)V);
    double *kl = malloc(sizeof(double) * (size_t)n);
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)window);
    int32_t *rows = malloc(sizeof(int32_t) * (size_t)window);
    int32_t *bt = NULL;
    int rc = lp && lq && kl && pos && rows ? 0 : llm_err_set(LLM_ENOMEM, "out of memory");
    if (!rc && (rc = llm_backend_create(&be[0], backend, parent, &bo)))
        llm_err_wrap(rc, "evaluation: the parent model");
    if (!rc && (rc = llm_backend_create(&be[1], backend, quant, &bo)))
        llm_err_wrap(rc, "evaluation: the quantized model");
    int nb = 0;
    if (!rc) {
        nb = (window + be[0]->block_size - 1) / be[0]->block_size;
        if (be[0]->n_blocks < nb || be[1]->n_blocks < nb || be[0]->block_size != be[1]->block_size)
            rc = llm_err_set(LLM_ECAPACITY, "evaluation: the KV cache holds fewer than %d tokens",
                             window);
    }
    if (!rc) {
        lg[0] = malloc(sizeof(float) * (size_t)window * (size_t)V);
        lg[1] = malloc(sizeof(float) * (size_t)window * (size_t)V);
        bt = malloc(sizeof(int32_t) * (size_t)nb);
        if (!lg[0] || !lg[1] || !bt) rc = llm_err_set(LLM_ENOMEM, "out of memory for the logits");
    }
    for (int i = 0; !rc && i < window; i++) pos[i] = rows[i] = i;
    for (int i = 0; !rc && i < nb; i++) bt[i] = i;
    double nll_p = 0, nll_q = 0;
    long agree = 0, m = 0;
    for (long w0 = 0; !rc && w0 + 1 < n; w0 += window) {
        int L = n - w0 < window ? (int)(n - w0) : window;
        if (L < 2) break;
        int32_t start[2] = {0, L}, len[1] = {L};
        struct llm_batch b = {L, tokens + w0, pos, 1, start, len, bt, nb, L, rows};
        for (int k = 0; k < 2 && !rc; k++) {
            if ((rc = be[k]->ops->forward(be[k], &b)) || (rc = be[k]->ops->get_logits(be[k], lg[k])))
                llm_err_wrap(rc, "evaluation (%s model, tokens %ld..%ld)", k ? "quantized" : "parent",
                             w0, w0 + L);
        }
        for (int i = 0; !rc && i + 1 < L; i++) {
            const float *zp = lg[0] + (int64_t)i * V, *zq = lg[1] + (int64_t)i * V;
            int32_t next = tokens[w0 + i + 1];
            if (next < 0 || next >= V) {
                rc = llm_err_set(LLM_EINVAL, "evaluation: token %d is outside the vocabulary", next);
                break;
            }
            log_softmax(zp, V, lp);
            log_softmax(zq, V, lq);
            double d = 0;
            for (int64_t v = 0; v < V; v++) d += exp(lp[v]) * (lp[v] - lq[v]);
            kl[m++] = d > 0 ? d : 0; /* rounding can make a true 0 a tiny negative */
            nll_p -= lp[next];
            nll_q -= lq[next];
            agree += argmax(zp, V) == argmax(zq, V);
        }
        if (!rc && progress) progress(ctx, w0 + L, n);
    }
    if (!rc) {
        double s = 0;
        for (long i = 0; i < m; i++) s += kl[i];
        qsort(kl, (size_t)m, sizeof(double), cmp_double);
        r->tokens = m;
        r->kld_mean = s / (double)m;
        long k99 = (long)ceil(0.99 * (double)m) - 1;
        r->kld_p99 = kl[k99 < 0 ? 0 : k99];
        r->kld_max = kl[m - 1];
        r->top1 = (double)agree / (double)m;
        r->ppl_parent = exp(nll_p / (double)m);
        r->ppl_quant = exp(nll_q / (double)m);
    }
    for (int k = 0; k < 2; k++) {
        llm_backend_destroy(be[k]);
        free(lg[k]);
    }
    free(lp);
    free(lq);
    free(kl);
    free(pos);
    free(rows);
    free(bt);
    return rc;
}
