/* sample.c - the reference sampler: what a sampled token is, for every
 * backend (docs/SAMPLING.md states the algorithm; the CUDA kernels follow
 * it step for step).
 *
 * Design choice: every ordering is a total order that does not depend on
 * how the work is split.  Candidates are ranked by a 32-bit key made from
 * the float logit (larger first; -0 ranks just below +0), ties broken by the
 * lower token id, and ranked with a stable LSD radix sort - the same order
 * a stable device radix sort (CUB) produces - so a GPU can reproduce the
 * survivor set and its order exactly.  Sums run sequentially in that order
 * in double precision.  Randomness comes from philox.h keyed by the seed
 * with counter (index, stream), so the batch never influences a draw.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "llm/philox.h"
#include "llm/sample.h"

void llm_sampling_init(struct llm_sampling *p)
{
    memset(p, 0, sizeof(*p));
    p->temperature = 0.0;
    p->top_k = 0;
    p->top_p = 1.0;
    p->min_p = 0.0;
    p->repetition_penalty = 1.0;
    p->presence_penalty = 0.0;
    p->frequency_penalty = 0.0;
    p->seed = 0;
    p->logprobs = -1;
}

/* Scratch layout, each array [vocab]: working logits (float), marks
 * (int32), keys and ids plus a second copy of each for the radix sort
 * (uint32/int32), probabilities (double). */
#define SCRATCH_ALIGN 64

uint64_t llm_sample_scratch_size(int64_t vocab)
{
    if (vocab <= 0) return SCRATCH_ALIGN;
    return (uint64_t)vocab *
               (sizeof(float) + sizeof(int32_t) + 4 * sizeof(uint32_t) + sizeof(double)) +
           8 * SCRATCH_ALIGN;
}

/* Order-preserving map of a float to an unsigned key (larger float, larger
 * key; NaN never reaches it). */
static inline uint32_t float_key(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static inline float clean_logit(float l)
{
    if (isnan(l)) return -INFINITY;
    if (l == INFINITY) return FLT_MAX;
    return l;
}

/* Keep the n_keep best (key desc, id asc) of a stream of (key, id) pairs in
 * a small sorted array: best first.  Returns the new count. */
static int topn_insert(uint32_t *keys, int32_t *ids, int count, int n_keep, uint32_t key,
                       int32_t id)
{
    if (count == n_keep && key <= keys[count - 1]) return count; /* ids arrive ascending */
    int j = count < n_keep ? count : n_keep - 1;
    while (j > 0 && keys[j - 1] < key) {
        keys[j] = keys[j - 1];
        ids[j] = ids[j - 1];
        j--;
    }
    keys[j] = key;
    ids[j] = id;
    return count < n_keep ? count + 1 : count;
}

/* Stable LSD radix sort of (key, id) pairs by descending key, 8 bits per
 * pass.  Sorting ~key ascending keeps equal keys in input (id) order. */
static void radix_sort_desc(uint32_t *keys, int32_t *ids, uint32_t *tk, int32_t *ti, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        keys[i] = ~keys[i];
    uint32_t *sk = keys, *dk = tk;
    int32_t *si = ids, *di = ti;
    for (int shift = 0; shift < 32; shift += 8) {
        int64_t count[257] = {0};
        for (int64_t i = 0; i < n; i++)
            count[((sk[i] >> shift) & 0xff) + 1]++;
        if (count[((sk[0] >> shift) & 0xff) + 1] == n) continue; /* one bucket: no-op pass */
        for (int b = 0; b < 256; b++)
            count[b + 1] += count[b];
        for (int64_t i = 0; i < n; i++) {
            int64_t d = count[(sk[i] >> shift) & 0xff]++;
            dk[d] = sk[i];
            di[d] = si[i];
        }
        uint32_t *t = sk;
        sk = dk;
        dk = t;
        int32_t *u = si;
        si = di;
        di = u;
    }
    if (sk != keys) {
        memcpy(keys, sk, (size_t)n * sizeof(*keys));
        memcpy(ids, si, (size_t)n * sizeof(*ids));
    }
    for (int64_t i = 0; i < n; i++)
        keys[i] = ~keys[i];
}

int llm_sampling_check(const struct llm_sampling *p)
{
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return llm_err_set(LLM_EINVAL, "temperature %g: must be a finite number >= 0",
                           p->temperature);
    if (p->top_k < 0) return llm_err_set(LLM_EINVAL, "top_k %d: must be >= 0", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return llm_err_set(LLM_EINVAL, "top_p %g: must be in (0, 1]", p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1))
        return llm_err_set(LLM_EINVAL, "min_p %g: must be in [0, 1]", p->min_p);
    if (!(p->repetition_penalty > 0) || !isfinite(p->repetition_penalty))
        return llm_err_set(LLM_EINVAL, "repetition_penalty %g: must be a finite number > 0",
                           p->repetition_penalty);
    if (!isfinite(p->presence_penalty) || !isfinite(p->frequency_penalty))
        return llm_err_set(LLM_EINVAL, "presence/frequency penalty must be finite");
    if (p->logprobs < -1 || p->logprobs > LLM_MAX_LOGPROBS)
        return llm_err_set(LLM_EINVAL, "logprobs %d: must be in 0..%d", p->logprobs,
                           LLM_MAX_LOGPROBS);
    return 0;
}

/* Step 1: sanitised working logits into w and their log-sum-exp into *lse;
 * -1 when every logit is -inf or NaN. */
static int log_softmax(const float *logits, float *w, size_t v, double *lse)
{
    float m = -INFINITY;
    for (size_t i = 0; i < v; i++) {
        w[i] = clean_logit(logits[i]);
        if (w[i] > m) m = w[i];
    }
    if (m == -INFINITY) return -1;
    double sum = 0;
    for (size_t i = 0; i < v; i++)
        sum += exp((double)w[i] - (double)m);
    *lse = (double)m + log(sum);
    return 0;
}

/* The n_top most likely raw tokens and their log-probabilities into res. */
static void top_logprobs(const float *w, size_t v, double lse, int n_top,
                         struct llm_sample_result *res)
{
    uint32_t tk[LLM_MAX_LOGPROBS];
    int cnt = 0;
    for (size_t i = 0; i < v; i++)
        cnt = topn_insert(tk, res->top_ids, cnt, n_top, float_key(w[i]), (int32_t)i);
    res->n_top = cnt;
    for (int j = 0; j < cnt; j++)
        res->top_logprobs[j] = (float)((double)w[res->top_ids[j]] - lse);
}

/* Step 3: repetition penalty over prompt and output, presence and frequency
 * penalties over the output, each applied once per distinct id. */
static void apply_penalties(float *w, int32_t *mark, int64_t vocab,
                            const struct llm_sample_row *row)
{
    const struct llm_sampling *p = row->p;
    size_t v = (size_t)vocab;
    /* mark bit 30: repetition penalty applied, bit 29: presence and
     * frequency applied, low bits: count in the output */
    const int32_t SEEN = 1 << 30, DONE = 1 << 29, COUNT = (1 << 29) - 1;
    int rep = p->repetition_penalty != 1.0;
    int pf = p->presence_penalty != 0.0 || p->frequency_penalty != 0.0;
    if (!rep && !pf) return;
    memset(mark, 0, v * sizeof(*mark));
    for (int pass = 0; pass < 2 && rep; pass++) {
        const int32_t *tok = pass ? row->output : row->prompt;
        int n = pass ? row->n_output : row->n_prompt;
        for (int i = 0; i < n; i++) {
            int32_t t = tok[i];
            if (t < 0 || t >= vocab || (mark[t] & SEEN)) continue;
            mark[t] |= SEEN;
            if (w[t] == -INFINITY) continue;
            double x = w[t];
            w[t] = (float)(x > 0 ? x / p->repetition_penalty : x * p->repetition_penalty);
        }
    }
    if (pf) {
        for (int i = 0; i < row->n_output; i++) {
            int32_t t = row->output[i];
            if (t >= 0 && t < vocab && (mark[t] & COUNT) < COUNT) mark[t]++;
        }
        for (int i = 0; i < row->n_output; i++) {
            int32_t t = row->output[i];
            if (t < 0 || t >= vocab || (mark[t] & DONE)) continue;
            mark[t] |= DONE;
            if (w[t] == -INFINITY) continue;
            double c = (double)(mark[t] & COUNT);
            w[t] = (float)((double)w[t] - c * p->frequency_penalty - p->presence_penalty);
        }
    }
}

/* Step 4a, greedy: the largest key, lowest id on ties; -1 when none is
 * finite. */
static int32_t pick_greedy(const float *w, size_t v)
{
    int32_t chosen = -1;
    uint32_t best = 0;
    for (size_t i = 0; i < v; i++) {
        if (w[i] == -INFINITY) continue;
        uint32_t k = float_key(w[i]);
        if (chosen < 0 || k > best) {
            best = k;
            chosen = (int32_t)i;
        }
    }
    return chosen;
}

/* Step 4b: rank the candidates (finite working logits) into keys/ids, best
 * first, cut to top_k; returns their count. */
static int64_t rank_candidates(const float *w, size_t v, int64_t k, uint32_t *keys, int32_t *ids,
                               uint32_t *tkeys, int32_t *tids)
{
    int64_t n = 0;
    if (k > 0 && k <= 64) {
        for (size_t i = 0; i < v; i++)
            if (w[i] != -INFINITY)
                n = topn_insert(keys, ids, (int)n, (int)k, float_key(w[i]), (int32_t)i);
    } else {
        for (size_t i = 0; i < v; i++) {
            if (w[i] == -INFINITY) continue;
            keys[n] = float_key(w[i]);
            ids[n++] = (int32_t)i;
        }
        if (n > 0) radix_sort_desc(keys, ids, tkeys, tids, n);
        if (k > 0 && k < n) n = k;
    }
    return n;
}

/* Step 4c: softmax at the temperature over the n ranked candidates, cut by
 * top_p and min_p, then one draw keyed by (seed, stream, index). */
static int32_t draw_token(const float *w, const int32_t *ids, int64_t n, double *prob,
                          const struct llm_sample_row *row)
{
    const struct llm_sampling *p = row->p;
    /* softmax at temperature T, relative to the best candidate */
    double t = p->temperature;
    double z0 = (double)w[ids[0]] / t;
    for (int64_t j = 0; j < n; j++)
        prob[j] = exp((double)w[ids[j]] / t - z0);
    if (p->top_p < 1.0) {
        double s = 0;
        for (int64_t j = 0; j < n; j++)
            s += prob[j];
        double thr = p->top_p * s, cum = 0;
        for (int64_t j = 0; j < n; j++) {
            cum += prob[j];
            if (cum >= thr) {
                n = j + 1;
                break;
            }
        }
    }
    if (p->min_p > 0.0) {
        /* prob[0] is exactly 1, so the bound is min_p itself */
        int64_t j = 1;
        while (j < n && prob[j] >= p->min_p)
            j++;
        n = j;
    }
    double total = 0;
    for (int64_t j = 0; j < n; j++)
        total += prob[j];
    double u = llm_philox_uniform(p->seed, row->stream, row->index);
    double target = u * total, cum = 0;
    int32_t chosen = ids[n - 1];
    for (int64_t j = 0; j < n; j++) {
        cum += prob[j];
        if (cum > target) {
            chosen = ids[j];
            break;
        }
    }
    return chosen;
}

int llm_sample_cpu(const float *logits, int64_t vocab, const struct llm_sample_row *row,
                   struct llm_sample_result *res, void *scratch)
{
    if (!logits || !row || !row->p || !res || vocab <= 0 || vocab > INT32_MAX)
        return llm_err_set(LLM_EINVAL, "llm_sample_cpu: bad arguments (vocab %lld)",
                           (long long)vocab);
    const struct llm_sampling *p = row->p;
    int rc = llm_sampling_check(p);
    if (rc) return rc;

    void *owned = NULL;
    if (!scratch) {
        owned = malloc(llm_sample_scratch_size(vocab));
        if (!owned)
            return llm_err_set(LLM_ENOMEM, "sampler scratch for vocab %lld: out of memory",
                               (long long)vocab);
        scratch = owned;
    }
    /* carve the scratch: doubles first keeps every array aligned */
    uintptr_t base = ((uintptr_t)scratch + SCRATCH_ALIGN - 1) & ~(uintptr_t)(SCRATCH_ALIGN - 1);
    size_t v = (size_t)vocab;
    double *prob = (double *)base;
    float *w = (float *)(prob + v);
    int32_t *mark = (int32_t *)(w + v);
    uint32_t *keys = (uint32_t *)(mark + v);
    uint32_t *tkeys = keys + v;
    int32_t *ids = (int32_t *)(tkeys + v);
    int32_t *tids = ids + v;

    memset(res, 0, sizeof(*res));

    /* 1. raw log-softmax (sanitised: NaN -> -inf, +inf -> FLT_MAX) */
    double lse;
    if (log_softmax(logits, w, v, &lse)) {
        free(owned);
        return llm_err_set(LLM_EINVAL, "every logit is -inf or NaN");
    }
    int n_top = p->logprobs > 0 ? p->logprobs : 0;
    if (n_top > vocab) n_top = (int)vocab;
    if (n_top > 0) top_logprobs(w, v, lse, n_top, res);

    /* 2. banned ids */
    for (int i = 0; i < row->n_banned; i++) {
        int32_t t = row->banned[i];
        if (t >= 0 && t < vocab) w[t] = -INFINITY;
    }

    /* 3. penalties */
    apply_penalties(w, mark, vocab, row);

    /* 4. greedy, or a draw among the ranked candidates */
    int32_t chosen = -1;
    if (p->temperature == 0.0 || p->top_k == 1) {
        chosen = pick_greedy(w, v);
    } else {
        int64_t n = rank_candidates(w, v, p->top_k, keys, ids, tkeys, tids);
        if (n > 0) chosen = draw_token(w, ids, n, prob, row);
    }
    free(owned);
    if (chosen < 0) return llm_err_set(LLM_EINVAL, "no token can be sampled: every id is banned");
    res->token = chosen;
    res->logprob = (float)((double)clean_logit(logits[chosen]) - lse);
    return 0;
}
