/* test_sample.c - the reference sampler against hand-computed cases, a
 * second plain implementation of docs/SAMPLING.md, and loose distribution
 * bounds; plus Philox known-answer vectors (Random123 kat_vectors).
 *
 * Design choice: the comparison implementation below is written the
 * obvious way (qsort with the documented comparator, no radix sort, no
 * top-k shortcut), so agreement on random cases checks the fast paths of
 * lib/sample against the specification rather than against themselves. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "llm/philox.h"
#include "llm/sample.h"

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static struct llm_sample_row row_of(const struct llm_sampling *p, uint32_t stream, uint64_t index)
{
    struct llm_sample_row r;
    memset(&r, 0, sizeof(r));
    r.p = p;
    r.stream = stream;
    r.index = index;
    return r;
}

static int32_t sample1(const float *logits, int64_t v, const struct llm_sample_row *r)
{
    struct llm_sample_result res;
    int rc = llm_sample_cpu(logits, v, r, &res, NULL);
    if (rc) return -100; /* an error (everything banned) */
    return res.token;
}

/* ---- Philox ------------------------------------------------------------ */

static void test_philox(void)
{
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d,
         0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09,
         0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        llm_philox4x32_10(kat[i], kat[i] + 4, out);
        for (int j = 0; j < 4; j++)
            CHECK(out[j] == kat[i][6 + j], "philox kat %d word %d: %08x, expected %08x", i, j,
                  out[j], kat[i][6 + j]);
    }
    /* counter words: (index lo, index hi, stream, 0); key: (seed lo, seed hi) */
    uint32_t a[4], b[4];
    llm_philox_block(0x299f31d0a4093822ull, 0x13198a2e, 0x85a308d3243f6a88ull, a);
    uint32_t ctr[4] = {0x243f6a88, 0x85a308d3, 0x13198a2e, 0}, key[2] = {0xa4093822, 0x299f31d0};
    llm_philox4x32_10(ctr, key, b);
    CHECK(memcmp(a, b, sizeof(a)) == 0, "llm_philox_block word order");
    /* u: top 53 bits of (x0 << 32 | x1) */
    double u0 = llm_philox_uniform(0, 0, 0);
    double want = (double)(((uint64_t)0x6627e8d5 << 32 | 0xe169c58d) >> 11) / 9007199254740992.0;
    CHECK(u0 == want, "uniform(0,0,0) = %.17g, expected %.17g", u0, want);
    /* range and rough mean */
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        double u = llm_philox_uniform(12345, 3, (uint64_t)i);
        CHECK(u >= 0 && u < 1, "uniform out of [0,1): %g", u);
        sum += u;
    }
    CHECK(fabs(sum / 100000 - 0.5) < 0.005, "uniform mean %g", sum / 100000);
    CHECK(llm_philox_uniform(1, 0, 5) != llm_philox_uniform(1, 1, 5), "streams differ");
    CHECK(llm_philox_uniform(1, 0, 5) != llm_philox_uniform(2, 0, 5), "seeds differ");
    CHECK(llm_philox_uniform(1, 0, 5) != llm_philox_uniform(1, 0, 6), "indices differ");
    printf("philox: 3 known-answer vectors, word order, uniform range/mean\n");
}

/* ---- hand-computed cases ----------------------------------------------- */

static void test_greedy_and_logprobs(void)
{
    struct llm_sampling p;
    llm_sampling_init(&p);
    p.logprobs = 3;
    float l[5] = {1.0f, 3.0f, 3.0f, 2.0f, -1.0f};
    struct llm_sample_row r = row_of(&p, 0, 0);
    struct llm_sample_result res;
    CHECK(llm_sample_cpu(l, 5, &r, &res, NULL) == 0, "greedy");
    CHECK(res.token == 1, "greedy tie -> lowest id: got %d", res.token);
    double lse = log(exp(1.0) + 2 * exp(3.0) + exp(2.0) + exp(-1.0));
    CHECK(fabs(res.logprob - (3.0 - lse)) < 1e-6, "logprob %g vs %g", res.logprob, 3.0 - lse);
    CHECK(res.n_top == 3, "n_top %d", res.n_top);
    CHECK(res.top_ids[0] == 1 && res.top_ids[1] == 2 && res.top_ids[2] == 3, "top ids %d %d %d",
          res.top_ids[0], res.top_ids[1], res.top_ids[2]);
    CHECK(fabs(res.top_logprobs[2] - (2.0 - lse)) < 1e-6, "top logprob 2");
    /* top_k 1 is greedy even with temperature */
    p.temperature = 1.5;
    p.top_k = 1;
    CHECK(sample1(l, 5, &r) == 1, "top_k 1 greedy");
    /* banned */
    llm_sampling_init(&p);
    int32_t ban[2] = {1, 7};
    r.banned = ban;
    r.n_banned = 2;
    CHECK(llm_sample_cpu(l, 5, &r, &res, NULL) == 0 && res.token == 2, "banned 1 -> 2, got %d",
          res.token);
    /* the reported logprob is the raw one (bans do not renormalise it) */
    CHECK(fabs(res.logprob - (3.0 - lse)) < 1e-6, "banned: raw logprob");
    int32_t all[5] = {0, 1, 2, 3, 4};
    r.banned = all;
    r.n_banned = 5;
    CHECK(llm_sample_cpu(l, 5, &r, &res, NULL) == LLM_EINVAL, "everything banned is an error");
    /* NaN never wins; +inf is treated as the largest float */
    float nan_l[3] = {NAN, 0.5f, 0.25f};
    r = row_of(&p, 0, 0);
    CHECK(sample1(nan_l, 3, &r) == 1, "NaN skipped");
    float inf_l[3] = {0.0f, INFINITY, 1.0f};
    CHECK(llm_sample_cpu(inf_l, 3, &r, &res, NULL) == 0 && res.token == 1 && res.logprob == 0.0f,
          "+inf: token %d logprob %g", res.token, res.logprob);
    float dead[2] = {-INFINITY, NAN};
    CHECK(llm_sample_cpu(dead, 2, &r, &res, NULL) == LLM_EINVAL, "all -inf/NaN is an error");
    printf("greedy: ties, logprobs top-3, bans, NaN/inf handling\n");
}

static void test_penalties(void)
{
    struct llm_sampling p;
    llm_sampling_init(&p);
    /* repetition 2 over prompt {0} and output {2}: 2.0 -> 1.0, -1 -> -2 */
    p.repetition_penalty = 2.0;
    float l[4] = {2.0f, 1.5f, -1.0f, 0.5f};
    int32_t prompt[2] = {0, 0}, out[1] = {2};
    struct llm_sample_row r = row_of(&p, 0, 0);
    r.prompt = prompt;
    r.n_prompt = 2;
    r.output = out;
    r.n_output = 1;
    CHECK(sample1(l, 4, &r) == 1, "repetition: 2.0/2 = 1.0 < 1.5");
    /* applied once per id, however often it repeats: 2.0/2 = 1.0 > 0.9 */
    float l2[2] = {2.0f, 0.9f};
    CHECK(sample1(l2, 2, &r) == 0, "repetition applied once per distinct id");
    /* negative logits are multiplied: -1 * 2 = -2 < -1.5 */
    float l3[2] = {-1.0f, -1.5f};
    CHECK(sample1(l3, 2, &r) == 1, "repetition on a negative logit multiplies");

    /* frequency 0.5, presence 0.1 over output {0, 0}: 3 - 1.0 - 0.1 = 1.9 < 2.5 */
    llm_sampling_init(&p);
    p.frequency_penalty = 0.5;
    p.presence_penalty = 0.1;
    float l4[3] = {3.0f, 2.5f, 0.0f};
    int32_t out2[2] = {0, 0};
    r = row_of(&p, 0, 0);
    r.output = out2;
    r.n_output = 2;
    CHECK(sample1(l4, 3, &r) == 1, "frequency+presence");
    /* prompt tokens do not count for presence/frequency */
    r.output = NULL;
    r.n_output = 0;
    r.prompt = out2;
    r.n_prompt = 2;
    CHECK(sample1(l4, 3, &r) == 0, "presence/frequency ignore the prompt");
    /* 3 - 2*0.5 - 0.1 = 1.9 vs 1.95: a single occurrence would leave 2.4 */
    float l5[2] = {3.0f, 1.95f};
    r.prompt = NULL;
    r.n_prompt = 0;
    r.output = out2;
    r.n_output = 2;
    CHECK(sample1(l5, 2, &r) == 1, "frequency counts occurrences");
    int32_t out1[1] = {0};
    r.output = out1;
    r.n_output = 1;
    CHECK(sample1(l5, 2, &r) == 0, "one occurrence: 3 - 0.5 - 0.1 = 2.4");
    /* negative penalties encourage */
    p.presence_penalty = -1.0;
    p.frequency_penalty = 0;
    float l6[2] = {1.0f, 1.5f};
    CHECK(sample1(l6, 2, &r) == 0, "negative presence encourages");
    printf("penalties: repetition (HF rule), presence/frequency (OpenAI rule)\n");
}

/* Tokens seen over many draws (indices 0..n-1). */
static unsigned seen_mask(const float *l, int v, const struct llm_sampling *p, int n)
{
    unsigned m = 0;
    for (int i = 0; i < n; i++) {
        struct llm_sample_row r = row_of(p, 0, (uint64_t)i);
        int32_t t = sample1(l, v, &r);
        if (t >= 0) m |= 1u << t;
    }
    return m;
}

static void test_filters(void)
{
    /* relative probabilities 1, 0.6, 0.3, 0.1 (sum 2.0) */
    float l[4];
    const double rel[4] = {1.0, 0.6, 0.3, 0.1};
    for (int i = 0; i < 4; i++)
        l[i] = (float)log(rel[i]);
    struct llm_sampling p;
    llm_sampling_init(&p);
    p.temperature = 1.0;
    CHECK(seen_mask(l, 4, &p, 400) == 0xf, "no filter: all four appear");
    p.top_k = 2;
    CHECK(seen_mask(l, 4, &p, 400) == 0x3, "top_k 2");
    p.top_k = 3;
    CHECK(seen_mask(l, 4, &p, 400) == 0x7, "top_k 3");
    p.top_k = 0;
    p.top_p = 0.79; /* 0.5, 0.8 -> two */
    CHECK(seen_mask(l, 4, &p, 400) == 0x3, "top_p 0.79");
    p.top_p = 0.81; /* 0.95 -> three */
    CHECK(seen_mask(l, 4, &p, 400) == 0x7, "top_p 0.81");
    p.top_p = 0.3; /* the first alone */
    CHECK(seen_mask(l, 4, &p, 400) == 0x1, "top_p 0.3");
    /* top_p is relative to the top_k survivors: with k 3 the mass is 1.9;
     * 0.84 of it is 1.596: 1.6 reaches it, so two survive */
    p.top_k = 3;
    p.top_p = 0.84;
    CHECK(seen_mask(l, 4, &p, 400) == 0x3, "top_p after top_k");
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0.35; /* keeps 1 and 0.6 */
    CHECK(seen_mask(l, 4, &p, 400) == 0x3, "min_p 0.35");
    p.min_p = 0.29; /* 0.3 stays */
    CHECK(seen_mask(l, 4, &p, 400) == 0x7, "min_p 0.29");
    p.min_p = 0.7;
    CHECK(seen_mask(l, 4, &p, 400) == 0x1, "min_p 0.7");
    printf("filters: top_k, top_p (also after top_k), min_p boundaries\n");
}

/* The draw: survivors in sorted order, first whose cumulative mass exceeds
 * u x total.  With equal logits that is floor(u * n) in id order. */
static void test_draw_rule(void)
{
    float l[8] = {0};
    struct llm_sampling p;
    llm_sampling_init(&p);
    p.temperature = 0.7;
    p.seed = 0xfeedbeefcafe1234ull;
    int bad = 0;
    for (int i = 0; i < 2000; i++) {
        struct llm_sample_row r = row_of(&p, 5, (uint64_t)i);
        int32_t t = sample1(l, 8, &r);
        int want = (int)floor(llm_philox_uniform(p.seed, 5, (uint64_t)i) * 8);
        if (t != want) bad++;
    }
    CHECK(bad == 0, "equal logits: token = floor(u * n) in id order (%d mismatches)", bad);
    printf("draw rule: 2000 draws match floor(u * n) on a flat distribution\n");
}

static void test_distribution(void)
{
    const double prob[4] = {0.5, 0.3, 0.15, 0.05};
    float l[4];
    for (int i = 0; i < 4; i++)
        l[i] = (float)log(prob[i]) + 3.0f; /* shift: softmax invariant */
    struct llm_sampling p;
    llm_sampling_init(&p);
    p.temperature = 1.0;
    p.seed = 42;
    const int n = 200000;
    int count[4] = {0};
    for (int i = 0; i < n; i++) {
        struct llm_sample_row r = row_of(&p, 0, (uint64_t)i);
        int32_t t = sample1(l, 4, &r);
        if (t >= 0 && t < 4) count[t]++;
    }
    for (int i = 0; i < 4; i++) {
        double f = (double)count[i] / n;
        CHECK(fabs(f - prob[i]) < 0.006, "T=1 token %d: frequency %.4f, expected %.4f", i, f,
              prob[i]);
    }
    /* temperature 0.5 squares the probabilities */
    p.temperature = 0.5;
    memset(count, 0, sizeof(count));
    double z = 0;
    for (int i = 0; i < 4; i++)
        z += prob[i] * prob[i];
    for (int i = 0; i < n; i++) {
        struct llm_sample_row r = row_of(&p, 1, (uint64_t)i);
        int32_t t = sample1(l, 4, &r);
        if (t >= 0 && t < 4) count[t]++;
    }
    for (int i = 0; i < 4; i++) {
        double f = (double)count[i] / n, e = prob[i] * prob[i] / z;
        CHECK(fabs(f - e) < 0.006, "T=0.5 token %d: frequency %.4f, expected %.4f", i, f, e);
    }
    printf("distribution: 2 x %d draws within 0.006 of the expected frequencies\n", n);
}

static void test_determinism(void)
{
    enum { V = 50, N = 64 };
    float l[V];
    for (int i = 0; i < V; i++)
        l[i] = (float)((i * 37) % 11) * 0.3f;
    struct llm_sampling p;
    llm_sampling_init(&p);
    p.temperature = 1.0;
    p.seed = 7;
    int32_t a[N], b[N], c[N], d[N];
    void *scratch = malloc(llm_sample_scratch_size(V));
    for (int i = 0; i < N; i++) {
        struct llm_sample_row r = row_of(&p, 0, (uint64_t)i);
        struct llm_sample_result res;
        llm_sample_cpu(l, V, &r, &res, scratch);
        a[i] = res.token;
        b[i] = sample1(l, V, &r); /* internal scratch */
        r.stream = 1;
        c[i] = sample1(l, V, &r);
    }
    p.seed = 8;
    for (int i = 0; i < N; i++) {
        struct llm_sample_row r = row_of(&p, 0, (uint64_t)i);
        d[i] = sample1(l, V, &r);
    }
    free(scratch);
    CHECK(memcmp(a, b, sizeof(a)) == 0, "same seed, same tokens (scratch given or not)");
    CHECK(memcmp(a, c, sizeof(a)) != 0, "another stream draws other tokens");
    CHECK(memcmp(a, d, sizeof(a)) != 0, "another seed draws other tokens");
    int distinct = 0;
    for (int i = 1; i < N; i++)
        distinct += a[i] != a[0];
    CHECK(distinct > 0, "different indices give different draws");
    printf("determinism: seed/stream/index\n");
}

/* ---- the specification, written the plain way ------------------------- */

struct cand {
    float w;
    int32_t id;
};

static uint32_t spec_key(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static int cmp_cand(const void *x, const void *y)
{
    const struct cand *a = x, *b = y;
    uint32_t ka = spec_key(a->w), kb = spec_key(b->w);
    if (ka != kb) return ka > kb ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static int32_t spec_sample(const float *logits, int v, const struct llm_sample_row *r)
{
    const struct llm_sampling *p = r->p;
    float *w = malloc(sizeof(float) * (size_t)v);
    for (int i = 0; i < v; i++)
        w[i] = isnan(logits[i]) ? -INFINITY : logits[i];
    for (int i = 0; i < r->n_banned; i++)
        w[r->banned[i]] = -INFINITY;
    if (p->repetition_penalty != 1.0) {
        for (int i = 0; i < v; i++) {
            int present = 0;
            for (int j = 0; j < r->n_prompt; j++)
                present |= r->prompt[j] == i;
            for (int j = 0; j < r->n_output; j++)
                present |= r->output[j] == i;
            if (present && w[i] != -INFINITY)
                w[i] = (float)(w[i] > 0 ? (double)w[i] / p->repetition_penalty
                                        : (double)w[i] * p->repetition_penalty);
        }
    }
    for (int i = 0; i < v; i++) {
        int c = 0;
        for (int j = 0; j < r->n_output; j++)
            c += r->output[j] == i;
        if (c && w[i] != -INFINITY && (p->presence_penalty != 0 || p->frequency_penalty != 0))
            w[i] = (float)((double)w[i] - c * p->frequency_penalty - p->presence_penalty);
    }
    struct cand *c = malloc(sizeof(*c) * (size_t)v);
    int n = 0;
    for (int i = 0; i < v; i++)
        if (w[i] != -INFINITY) c[n++] = (struct cand){w[i], i};
    qsort(c, (size_t)n, sizeof(*c), cmp_cand);
    int32_t tok;
    if (n == 0) {
        tok = -100; /* everything banned: the library reports an error */
    } else if (p->temperature == 0 || p->top_k == 1) {
        tok = c[0].id;
    } else {
        if (p->top_k > 0 && p->top_k < n) n = p->top_k;
        double *pr = malloc(sizeof(double) * (size_t)n);
        for (int j = 0; j < n; j++)
            pr[j] = exp((double)c[j].w / p->temperature - (double)c[0].w / p->temperature);
        if (p->top_p < 1) {
            double s = 0, cum = 0;
            for (int j = 0; j < n; j++)
                s += pr[j];
            for (int j = 0; j < n; j++) {
                cum += pr[j];
                if (cum >= p->top_p * s) {
                    n = j + 1;
                    break;
                }
            }
        }
        if (p->min_p > 0) {
            int j = 1;
            while (j < n && pr[j] >= p->min_p * pr[0])
                j++;
            n = j;
        }
        double total = 0, cum = 0;
        for (int j = 0; j < n; j++)
            total += pr[j];
        double target = llm_philox_uniform(p->seed, r->stream, r->index) * total;
        tok = c[n - 1].id;
        for (int j = 0; j < n; j++) {
            cum += pr[j];
            if (cum > target) {
                tok = c[j].id;
                break;
            }
        }
        free(pr);
    }
    free(c);
    free(w);
    return tok;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void test_against_spec(void)
{
    int cases = 0, bad = 0;
    for (int t = 0; t < 400; t++) {
        int v = 2 + (int)(rnd() % 300);
        float *l = malloc(sizeof(float) * (size_t)v);
        /* coarse values so that ties are common, including at top_k cuts */
        int levels = 2 + (int)(rnd() % 12);
        for (int i = 0; i < v; i++)
            l[i] = (float)((int)(rnd() % (uint64_t)levels) - 4) * 0.5f;
        if (rnd() % 4 == 0) l[rnd() % (uint64_t)v] = -0.0f;
        struct llm_sampling p;
        llm_sampling_init(&p);
        p.seed = rnd();
        p.temperature = (rnd() % 5 == 0) ? 0.0 : 0.2 + (double)(rnd() % 100) / 50.0;
        uint64_t k = rnd() % 4;
        p.top_k = k == 0   ? 0
                  : k == 1 ? 1 + (int)(rnd() % 64)
                  : k == 2 ? 65 + (int)(rnd() % 100)
                           : 0;
        if (rnd() % 2) p.top_p = 0.05 + (double)(rnd() % 95) / 100.0;
        if (rnd() % 3 == 0) p.min_p = (double)(rnd() % 50) / 100.0;
        if (rnd() % 2) p.repetition_penalty = 0.5 + (double)(rnd() % 20) / 10.0;
        if (rnd() % 2) p.presence_penalty = ((double)(rnd() % 40) - 20) / 10.0;
        if (rnd() % 2) p.frequency_penalty = ((double)(rnd() % 40) - 20) / 10.0;
        int32_t prompt[16], out[16], ban[4];
        int np = (int)(rnd() % 16), no = (int)(rnd() % 16), nb = (int)(rnd() % 3);
        for (int i = 0; i < np; i++)
            prompt[i] = (int32_t)(rnd() % (uint64_t)v);
        for (int i = 0; i < no; i++)
            out[i] = (int32_t)(rnd() % (uint64_t)v);
        for (int i = 0; i < nb; i++)
            ban[i] = (int32_t)(rnd() % (uint64_t)v);
        for (int d = 0; d < 8; d++) {
            struct llm_sample_row r = row_of(&p, (uint32_t)(rnd() % 4), rnd() % 1000);
            r.prompt = prompt;
            r.n_prompt = np;
            r.output = out;
            r.n_output = no;
            r.banned = ban;
            r.n_banned = nb;
            int32_t a = sample1(l, v, &r);
            int32_t b = spec_sample(l, v, &r);
            cases++;
            if (a != b) {
                if (bad < 5)
                    fprintf(stderr,
                            "  case %d: v %d T %g k %d p %g minp %g rep %g pres %g freq %g: "
                            "lib %d spec %d\n",
                            t, v, p.temperature, p.top_k, p.top_p, p.min_p, p.repetition_penalty,
                            p.presence_penalty, p.frequency_penalty, a, b);
                bad++;
            }
        }
        free(l);
    }
    CHECK(bad == 0, "%d of %d random cases differ from the plain specification", bad, cases);
    printf("specification: %d random cases (ties, -0, all filters and penalties) agree\n", cases);
}

static void test_check(void)
{
    struct llm_sampling p;
    llm_sampling_init(&p);
    CHECK(llm_sampling_check(&p) == 0, "neutral values are valid");
    p.temperature = -1;
    CHECK(llm_sampling_check(&p) == LLM_EINVAL && strstr(llm_errmsg(), "temperature"),
          "temperature < 0: %s", llm_errmsg());
    llm_sampling_init(&p);
    p.top_p = 0;
    CHECK(llm_sampling_check(&p) == LLM_EINVAL && strstr(llm_errmsg(), "top_p"), "top_p 0");
    llm_sampling_init(&p);
    p.min_p = 1.5;
    CHECK(llm_sampling_check(&p) == LLM_EINVAL, "min_p > 1");
    llm_sampling_init(&p);
    p.repetition_penalty = 0;
    CHECK(llm_sampling_check(&p) == LLM_EINVAL, "repetition_penalty 0");
    llm_sampling_init(&p);
    p.logprobs = LLM_MAX_LOGPROBS + 1;
    CHECK(llm_sampling_check(&p) == LLM_EINVAL, "logprobs too many");
    llm_sampling_init(&p);
    p.temperature = NAN;
    CHECK(llm_sampling_check(&p) == LLM_EINVAL, "temperature NaN");
    CHECK(llm_sample_scratch_size(1000) >= 1000 * 28, "scratch size");
    printf("parameter checks\n");
}

int main(void)
{
    test_philox();
    test_greedy_and_logprobs();
    test_penalties();
    test_filters();
    test_draw_rule();
    test_distribution();
    test_determinism();
    test_against_spec();
    test_check();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("all sampler checks passed\n");
    return 0;
}
