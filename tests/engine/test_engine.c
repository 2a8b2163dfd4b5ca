/* test_engine.c - the scheduler and engine against the mock backend.
 *
 * Reference: every request run alone in a fresh engine with a large pool.
 * Then the same requests run together under many configurations - token
 * budgets down to one token per step (chunked prefill), one to sixteen
 * sequences per step, KV pools so small that requests are preempted and
 * recomputed again and again, block sizes 1 to 16, reversed and shuffled
 * submission, requests arriving while others run - and every choice of
 * every request must come out bit-identical (tokens, finish reason, stop
 * token, logprobs).  Then the stop conditions by hand, n > 1 choice 0
 * against n = 1, token events, and requests rejected at submit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/engine.h"
#include "llm/err.h"
#include "llm/log.h"
#include "llm/tokenizer.h"
#include "lib/sched/sched_internal.h"
#include "mock_backend.h"

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

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int rint_(int lo, int hi)
{
    return lo + (int)(rnd() % (uint64_t)(hi - lo + 1));
}

#define VOCAB 32
#define NREQ 48
#define CTX 512

struct spec {
    int32_t prompt[48];
    int32_t stop_ids[2];
    struct llm_request r;
};

static struct spec specs[NREQ];

static void make_specs(void)
{
    for (int i = 0; i < NREQ; i++) {
        struct spec *s = &specs[i];
        struct llm_request *r = &s->r;
        llm_request_init(r);
        int P = (i % 7 == 0) ? 1 : rint_(2, 40);
        for (int j = 0; j < P; j++)
            s->prompt[j] = (int32_t)rint_(0, VOCAB - 1);
        r->prompt = s->prompt;
        r->n_prompt = P;
        r->max_tokens = rint_(1, 24);
        r->n = (rnd() % 10 < 3) ? rint_(2, 3) : 1;
        struct llm_sampling *p = &r->sampling;
        if (rnd() % 10 >= 4) {
            p->temperature = 0.5 + (double)(rnd() % 100) / 100.0;
            if (rnd() % 3 == 0) p->top_k = rint_(2, 10);
            if (rnd() % 3 == 0) p->top_p = 0.5 + (double)(rnd() % 50) / 100.0;
            if (rnd() % 4 == 0) p->min_p = (double)(rnd() % 20) / 100.0;
        }
        if (rnd() % 4 == 0) p->repetition_penalty = 1.3;
        if (rnd() % 4 == 0) p->presence_penalty = 0.5;
        if (rnd() % 4 == 0) p->frequency_penalty = 0.3;
        p->seed = rnd();
        p->logprobs = (int)(rnd() % 3) == 0 ? -1 : (rnd() % 2 ? 0 : 3);
        if (rnd() % 4 == 0) r->min_tokens = rint_(0, r->max_tokens);
        if (rnd() % 4 == 0) {
            s->stop_ids[0] = (int32_t)rint_(2, VOCAB - 1);
            r->stop_ids = s->stop_ids;
            r->n_stop_ids = 1;
        }
        r->ignore_eos = rnd() % 5 == 0;
        r->user = (void *)(intptr_t)(i + 1);
    }
}

struct cfg {
    const char *name;
    int block_size, n_blocks; /* n_blocks 0: the smallest pool every request fits alone */
    int max_batch_tokens, max_seqs;
    int order;   /* 0 as is, 1 reversed, 2 shuffled */
    int trickle; /* submit this many per step (0: all at once) */
    int expect_preempt; /* 1: preemptions must happen; -1: none may */
    int no_evict;       /* the engine's no-evict admission */
};

static int worst_blocks(const struct llm_request *r, int bs)
{
    int max_len = r->n_prompt + r->max_tokens;
    if (max_len > CTX) max_len = CTX;
    int per = (max_len - 1 + bs - 1) / bs;
    if (r->n == 1) return per;
    int shared = (r->n_prompt - 1) / bs;
    return shared + r->n * (per - shared);
}

static int eq_choice(const struct llm_choice *a, const struct llm_choice *b)
{
    if (a->n_tokens != b->n_tokens || a->finish_reason != b->finish_reason ||
        a->stop_token != b->stop_token)
        return 0;
    if (memcmp(a->tokens, b->tokens, (size_t)a->n_tokens * sizeof(int32_t))) return 0;
    if ((a->logprobs == NULL) != (b->logprobs == NULL) || a->n_top != b->n_top) return 0;
    if (a->logprobs && memcmp(a->logprobs, b->logprobs, (size_t)a->n_tokens * sizeof(float)))
        return 0;
    if (a->n_top && memcmp(a->top_ids, b->top_ids, (size_t)a->n_tokens * a->n_top * 4)) return 0;
    return 1;
}

static struct llm_result *ref[NREQ];

struct run_out {
    struct llm_result *res[NREQ];
    uint64_t preemptions, steps, recomputed;
    int end_blocks;
    int max_chunk, max_rows;
    int events;
};

static void count_event(void *ctx, const struct llm_token_event *ev)
{
    (void)ev;
    ((struct run_out *)ctx)->events++;
}

/* Run the given requests (indices) under cfg; results by request index. */
static int run(const struct cfg *c, const int *idx, int n, struct run_out *ro)
{
    memset(ro, 0, sizeof(*ro));
    struct mock_opts mo;
    mock_opts_init(&mo);
    mo.vocab = VOCAB;
    mo.block_size = c->block_size;
    mo.max_seq_len = CTX;
    int nb = c->n_blocks;
    if (nb == 0)
        for (int i = 0; i < n; i++) {
            int w = worst_blocks(&specs[idx[i]].r, c->block_size);
            if (w > nb) nb = w;
        }
    mo.n_blocks = nb;
    mo.max_batch_tokens = c->max_batch_tokens;
    mo.max_seqs = c->max_seqs;
    struct llm_backend *be;
    if (mock_backend_create(&be, &mo)) return -1;
    struct llm_engine_opts eo;
    llm_engine_opts_init(&eo);
    eo.on_token = count_event;
    eo.ctx = ro;
    eo.no_evict = c->no_evict;
    struct llm_engine *e;
    int rc = llm_engine_create(&e, be, &eo);
    if (rc) {
        fprintf(stderr, "engine create: %s\n", llm_errmsg());
        llm_backend_destroy(be);
        return -1;
    }
    int next = 0, done = 0;
    struct llm_step_stats st = {0};
    while (done < n) {
        int k = c->trickle ? c->trickle : n;
        for (; k > 0 && next < n; k--, next++) {
            rc = llm_engine_submit(e, &specs[idx[next]].r, NULL);
            if (rc) {
                fprintf(stderr, "%s: submit %d: %s\n", c->name, idx[next], llm_errmsg());
                goto out;
            }
        }
        rc = llm_engine_step(e, &st);
        if (rc) {
            fprintf(stderr, "%s: step: %s\n", c->name, llm_errmsg());
            goto out;
        }
        if (st.n_tokens == 0 && next >= n && llm_engine_has_work(e)) {
            fprintf(stderr, "%s: no progress with work left\n", c->name);
            rc = -1;
            goto out;
        }
        struct llm_result *res;
        while ((res = llm_engine_next_result(e))) {
            int i = (int)(intptr_t)res->user - 1;
            ro->res[i] = res;
            done++;
        }
    }
    ro->preemptions = llm_engine_get_stats(e)->preemptions;
    ro->steps = llm_engine_get_stats(e)->steps;
    ro->recomputed = llm_engine_get_stats(e)->recomputed_tokens;
    ro->end_blocks = st.kv_blocks_used;
    ro->max_chunk = mock_counters(be)->max_chunk_seen;
    ro->max_rows = mock_counters(be)->max_rows_seen;
out:
    llm_engine_free(e);
    llm_backend_destroy(be);
    return rc;
}

static void test_batching_invariance(void)
{
    /* references: each request alone */
    struct cfg alone = {"alone", 4, 512, 256, 16, 0, 0, 0, 0};
    for (int i = 0; i < NREQ; i++) {
        struct run_out ro;
        if (run(&alone, &i, 1, &ro)) {
            CHECK(0, "reference run of request %d failed", i);
            return;
        }
        ref[i] = ro.res[i];
    }
    int total_tokens = 0, stops = 0, lengths = 0;
    for (int i = 0; i < NREQ; i++)
        for (int c = 0; c < ref[i]->n_choices; c++) {
            total_tokens += ref[i]->choices[c].n_tokens;
            stops += ref[i]->choices[c].finish_reason == LLM_FINISH_STOP;
            lengths += ref[i]->choices[c].finish_reason == LLM_FINISH_LENGTH;
        }
    printf("reference: %d requests alone, %d tokens, %d stopped, %d hit the length\n", NREQ,
           total_tokens, stops, lengths);
    CHECK(stops > 3 && lengths > 3, "the mix exercises both finish reasons");

    static const struct cfg cfgs[] = {
        {"big pool, all at once", 4, 512, 256, 16, 0, 0, 0, 0},
        {"budget 7, 3 seqs", 4, 512, 7, 3, 0, 0, 0, 0},
        {"budget 1, 3 seqs", 2, 512, 1, 3, 1, 0, 0, 0},
        {"smallest pool, bs 4", 4, 0, 64, 8, 0, 0, 1, 0},
        {"smallest pool, bs 1, budget 5", 1, 0, 5, 16, 2, 0, 1, 0},
        {"smallest pool, bs 16, budget 13", 16, 0, 13, 16, 1, 0, 1, 0},
        {"smallest pool + 3, bs 2, trickle 2", 2, 0, 32, 16, 2, 2, 1, 0},
        {"smallest pool, budget 9, 5 seqs, trickle 1", 4, 0, 9, 5, 2, 1, 1, 0},
        {"big pool, 16 seqs, shuffled, trickle 3", 8, 512, 48, 16, 2, 3, 0, 0},
        /* the same small pools with no-evict admission: nothing preempted */
        {"smallest pool, bs 4, no-evict", 4, 0, 64, 8, 0, 0, -1, 1},
        {"smallest pool, bs 1, budget 5, no-evict", 1, 0, 5, 16, 2, 0, -1, 1},
        {"smallest pool + 3, bs 2, trickle 2, no-evict", 2, 0, 32, 16, 2, 2, -1, 1},
    };
    int idx[NREQ];
    for (size_t k = 0; k < sizeof(cfgs) / sizeof(cfgs[0]); k++) {
        struct cfg c = cfgs[k];
        if (k == 6 || k == 11) {
            /* minimal pool plus a few blocks */
            int nb = 0;
            for (int i = 0; i < NREQ; i++)
                if (worst_blocks(&specs[i].r, c.block_size) > nb)
                    nb = worst_blocks(&specs[i].r, c.block_size);
            c.n_blocks = nb + 3;
        }
        for (int i = 0; i < NREQ; i++)
            idx[i] = c.order == 1 ? NREQ - 1 - i : i;
        if (c.order == 2)
            for (int i = NREQ - 1; i > 0; i--) {
                int j = (int)(rnd() % (uint64_t)(i + 1)), t = idx[i];
                idx[i] = idx[j];
                idx[j] = t;
            }
        struct run_out ro;
        if (run(&c, idx, NREQ, &ro)) {
            CHECK(0, "%s: run failed", c.name);
            continue;
        }
        int bad = 0;
        for (int i = 0; i < NREQ; i++) {
            struct llm_result *a = ref[i], *b = ro.res[i];
            int same = b && a->n_choices == b->n_choices;
            for (int ch = 0; same && ch < a->n_choices; ch++)
                same = eq_choice(&a->choices[ch], &b->choices[ch]);
            if (!same) {
                if (bad < 3)
                    fprintf(stderr, "  %s: request %d differs from its solo run\n", c.name, i);
                bad++;
            }
            llm_result_free(b);
        }
        CHECK(bad == 0, "%s: %d requests differ", c.name, bad);
        CHECK(ro.end_blocks == 0, "%s: %d KV blocks still used at the end", c.name, ro.end_blocks);
        CHECK(ro.events == total_tokens, "%s: %d token events for %d tokens", c.name, ro.events,
              total_tokens);
        CHECK(ro.max_rows <= c.max_batch_tokens, "%s: a step ran %d rows", c.name, ro.max_rows);
        if (c.expect_preempt > 0)
            CHECK(ro.preemptions > 0, "%s: expected preemptions, saw none", c.name);
        if (c.expect_preempt < 0)
            CHECK(ro.preemptions == 0, "%s: %llu preemptions under no-evict", c.name,
                  (unsigned long long)ro.preemptions);
        printf("%-40s identical; %4llu steps, %3llu preemptions, %4llu rows recomputed, "
               "largest chunk %d\n",
               c.name, (unsigned long long)ro.steps, (unsigned long long)ro.preemptions,
               (unsigned long long)ro.recomputed, ro.max_chunk);
    }
}

/* Chunked prefill: a 40-token prompt under a budget of 6 runs in chunks of
 * at most 6 and gives the same tokens. */
static void test_chunked_prefill(void)
{
    struct spec s;
    llm_request_init(&s.r);
    for (int j = 0; j < 40; j++)
        s.prompt[j] = (int32_t)((j * 7) % VOCAB);
    s.r.prompt = s.prompt;
    s.r.n_prompt = 40;
    s.r.max_tokens = 5;
    s.r.ignore_eos = 1;
    int32_t out[2][5];
    int maxchunk[2];
    uint64_t steps[2];
    for (int k = 0; k < 2; k++) {
        struct mock_opts mo;
        mock_opts_init(&mo);
        mo.vocab = VOCAB;
        mo.max_batch_tokens = k ? 6 : 256;
        struct llm_backend *be;
        mock_backend_create(&be, &mo);
        struct llm_engine *e;
        llm_engine_create(&e, be, NULL);
        llm_engine_submit(e, &s.r, NULL);
        while (llm_engine_has_work(e))
            if (llm_engine_step(e, NULL)) break;
        struct llm_result *res = llm_engine_next_result(e);
        CHECK(res && res->choices[0].n_tokens == 5, "chunked: 5 tokens");
        if (res) memcpy(out[k], res->choices[0].tokens, sizeof(out[k]));
        llm_result_free(res);
        maxchunk[k] = mock_counters(be)->max_chunk_seen;
        steps[k] = llm_engine_get_stats(e)->steps;
        llm_engine_free(e);
        llm_backend_destroy(be);
    }
    CHECK(memcmp(out[0], out[1], sizeof(out[0])) == 0, "chunked prefill changes the output");
    CHECK(maxchunk[0] == 40 && maxchunk[1] == 6, "chunks: %d and %d rows", maxchunk[0],
          maxchunk[1]);
    CHECK(steps[1] == 7 + 4, "40 tokens in chunks of 6 take 7 steps, then 4 decodes: %llu",
          (unsigned long long)steps[1]);
    printf("chunked prefill: 40-token prompt in 7 chunks of <= 6, same tokens\n");
}

/* Run one request on a fresh engine with the given mock options. */
static struct llm_result *solo(const struct llm_request *r, const struct mock_opts *mo,
                               int *submit_rc)
{
    struct llm_backend *be;
    mock_backend_create(&be, mo);
    struct llm_engine *e;
    llm_engine_create(&e, be, NULL);
    *submit_rc = llm_engine_submit(e, r, NULL);
    struct llm_result *res = NULL;
    while (llm_engine_has_work(e))
        if (llm_engine_step(e, NULL)) break;
    res = llm_engine_next_result(e);
    llm_engine_free(e);
    llm_backend_destroy(be);
    return res;
}

static void test_stop_conditions(void)
{
    struct mock_opts mo;
    mock_opts_init(&mo);
    mo.vocab = VOCAB;
    mo.eos = 1;
    mo.eos_bias = 20; /* greedy picks EOS whenever it is allowed */
    int32_t prompt[3] = {5, 6, 7};
    struct llm_request r;
    llm_request_init(&r);
    r.prompt = prompt;
    r.n_prompt = 3;
    r.max_tokens = 10;
    int rc;
    struct llm_result *res = solo(&r, &mo, &rc);
    CHECK(res && res->choices[0].n_tokens == 1 && res->choices[0].tokens[0] == 1 &&
              res->choices[0].finish_reason == LLM_FINISH_STOP && res->choices[0].stop_token == 1,
          "EOS first: stop with [eos]");
    llm_result_free(res);

    r.min_tokens = 4;
    res = solo(&r, &mo, &rc);
    int ok = res && res->choices[0].n_tokens == 5 && res->choices[0].tokens[4] == 1;
    for (int i = 0; ok && i < 4; i++)
        ok = res->choices[0].tokens[i] != 1;
    CHECK(ok, "min_tokens 4: four non-EOS tokens then EOS");
    llm_result_free(res);

    r.min_tokens = 0;
    r.ignore_eos = 1;
    res = solo(&r, &mo, &rc);
    CHECK(res && res->choices[0].n_tokens == 10 &&
              res->choices[0].finish_reason == LLM_FINISH_LENGTH,
          "ignore_eos: runs to max_tokens");
    /* every token of that run was EOS (greedy, biased) */
    int all_eos = res != NULL;
    for (int i = 0; res && i < res->choices[0].n_tokens; i++)
        all_eos &= res->choices[0].tokens[i] == 1;
    CHECK(all_eos, "ignore_eos keeps EOS tokens in the output");
    llm_result_free(res);

    /* stop token ids: take the third token of an unbiased greedy run */
    mo.eos_bias = 0;
    mo.eos = -1;
    r.ignore_eos = 0;
    r.max_tokens = 12;
    struct llm_result *base = solo(&r, &mo, &rc);
    int32_t stop = base->choices[0].tokens[2];
    int first = 0;
    while (base->choices[0].tokens[first] != stop)
        first++;
    r.stop_ids = &stop;
    r.n_stop_ids = 1;
    res = solo(&r, &mo, &rc);
    CHECK(res && res->choices[0].n_tokens == first + 1 &&
              res->choices[0].finish_reason == LLM_FINISH_STOP &&
              res->choices[0].stop_token == stop &&
              !memcmp(res->choices[0].tokens, base->choices[0].tokens,
                      (size_t)(first + 1) * sizeof(int32_t)),
          "stop id %d: output ends at its first occurrence (%d)", stop, first);
    llm_result_free(res);
    /* min_tokens bans the stop id until then */
    r.min_tokens = first + 1;
    res = solo(&r, &mo, &rc);
    ok = res != NULL;
    for (int i = 0; ok && i < first + 1; i++)
        ok = res->choices[0].tokens[i] != stop;
    CHECK(ok, "min_tokens bans stop ids before it");
    llm_result_free(res);
    llm_result_free(base);

    /* the context: 20-token prompt, context 24 -> 4 tokens, "length" */
    mo.max_seq_len = 24;
    int32_t p20[20] = {0};
    llm_request_init(&r);
    r.prompt = p20;
    r.n_prompt = 20;
    r.max_tokens = 100;
    r.ignore_eos = 1;
    res = solo(&r, &mo, &rc);
    CHECK(rc == 0 && res && res->choices[0].n_tokens == 4 &&
              res->choices[0].finish_reason == LLM_FINISH_LENGTH,
          "context 24, prompt 20: 4 tokens then length");
    llm_result_free(res);
    printf("stop conditions: EOS, min_tokens, ignore_eos, stop ids, max_tokens, context\n");
}

/* n > 1: choice 0 is the n = 1 request with the same seed; choices differ. */
static void test_choices(void)
{
    struct mock_opts mo;
    mock_opts_init(&mo);
    mo.vocab = VOCAB;
    mo.eos = -1;
    int32_t prompt[11];
    for (int i = 0; i < 11; i++)
        prompt[i] = (int32_t)(i + 3);
    struct llm_request r;
    llm_request_init(&r);
    r.prompt = prompt;
    r.n_prompt = 11; /* P-1 = 10: two full blocks of 4 shared, a partial one copied */
    r.max_tokens = 12;
    r.sampling.temperature = 1.0;
    r.sampling.seed = 99;
    r.sampling.logprobs = 2;
    int rc;
    struct llm_result *one = solo(&r, &mo, &rc);
    r.n = 4;
    struct llm_result *four = solo(&r, &mo, &rc);
    CHECK(one && four && four->n_choices == 4, "n 4 gives 4 choices");
    if (one && four) {
        CHECK(eq_choice(&one->choices[0], &four->choices[0]),
              "choice 0 of n=4 equals the n=1 request");
        int distinct = 0;
        for (int c = 1; c < 4; c++)
            distinct +=
                memcmp(four->choices[c].tokens, four->choices[0].tokens, 12 * sizeof(int32_t)) != 0;
        CHECK(distinct == 3, "choices draw from different streams (%d of 3 differ)", distinct);
        CHECK(four->completion_tokens == 48, "usage over choices: %d", four->completion_tokens);
        for (int c = 0; c < 4; c++)
            CHECK(four->choices[c].index == c, "choice index");
    }
    llm_result_free(one);
    llm_result_free(four);
    printf("n > 1: choice 0 == n=1, shared prefix with copied partial block\n");
}

static void test_rejections(void)
{
    struct mock_opts mo;
    mock_opts_init(&mo);
    mo.vocab = VOCAB;
    mo.max_seq_len = 64;
    mo.n_blocks = 8;
    mo.block_size = 4;
    mo.max_seqs = 4;
    struct llm_backend *be;
    mock_backend_create(&be, &mo);
    struct llm_engine *e;
    llm_engine_create(&e, be, NULL);
    int32_t p[70] = {0};
    struct llm_request r;
    struct {
        const char *what;
        int rc;
        const char *needle;
    } cases[] = {
        {"prompt longer than the context", LLM_ECAPACITY, "context"},
        {"request larger than the pool", LLM_ECAPACITY, "pool"},
        {"token outside the vocabulary", LLM_EINVAL, "vocabulary"},
        {"n above max_seqs", LLM_EINVAL, "n 5"},
        {"max_tokens 0", LLM_EINVAL, "max_tokens"},
        {"min_tokens above max_tokens", LLM_EINVAL, "min_tokens"},
        {"text without a tokenizer", LLM_EINVAL, "tokenizer"},
        {"stop strings without a tokenizer", LLM_EINVAL, "tokenizer"},
        {"empty prompt", LLM_EINVAL, "empty"},
        {"bad top_p", LLM_EINVAL, "top_p"},
        {"stop id outside the vocabulary", LLM_EINVAL, "stop token"},
    };
    const char *stops[1] = {"x"};
    int32_t bad_stop = VOCAB;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        llm_request_init(&r);
        r.prompt = p;
        r.n_prompt = 4;
        switch (k) {
        case 0:
            r.n_prompt = 64;
            break;
        case 1:
            r.max_tokens = 40;
            break; /* 43 tokens of K/V: 11 blocks > 8 */
        case 2:
            p[2] = VOCAB;
            break;
        case 3:
            r.n = 5;
            break;
        case 4:
            r.max_tokens = 0;
            break;
        case 5:
            r.min_tokens = 17;
            break;
        case 6:
            r.text = "hello";
            r.text_len = 5;
            break;
        case 7:
            r.stop = stops;
            r.n_stop = 1;
            break;
        case 8:
            r.n_prompt = 0;
            break;
        case 9:
            r.sampling.top_p = 0;
            break;
        case 10:
            r.stop_ids = &bad_stop;
            r.n_stop_ids = 1;
            break;
        }
        int rc = llm_engine_submit(e, &r, NULL);
        CHECK(rc == cases[k].rc && strstr(llm_errmsg(), cases[k].needle), "%s: rc %d, message '%s'",
              cases[k].what, rc, llm_errmsg());
        p[2] = 0;
    }
    /* the engine goes on: a good request still runs */
    llm_request_init(&r);
    r.prompt = p;
    r.n_prompt = 4;
    r.max_tokens = 3;
    r.ignore_eos = 1;
    uint64_t id = 0;
    CHECK(llm_engine_submit(e, &r, &id) == 0 && id == 1, "good request after rejections: id %llu",
          (unsigned long long)id);
    while (llm_engine_has_work(e))
        if (llm_engine_step(e, NULL)) break;
    struct llm_result *res = llm_engine_next_result(e);
    CHECK(res && res->choices[0].n_tokens == 3, "good request served");
    llm_result_free(res);
    CHECK(llm_engine_get_stats(e)->rejected == sizeof(cases) / sizeof(cases[0]), "rejected count");
    llm_engine_free(e);
    llm_backend_destroy(be);
    printf("rejections: %zu bad requests refused at submit with a message, the rest served\n",
           sizeof(cases) / sizeof(cases[0]));
}

/* Token times and step statistics as llm-bench reads them. */
static void test_timing(void)
{
    struct mock_opts mo;
    mock_opts_init(&mo);
    mo.vocab = VOCAB;
    mo.eos = -1;
    struct llm_backend *be;
    mock_backend_create(&be, &mo);
    struct llm_engine_opts eo;
    llm_engine_opts_init(&eo);
    eo.record_token_times = 1;
    eo.max_batch_tokens = 16;
    struct llm_engine *e;
    llm_engine_create(&e, be, &eo);
    struct llm_engine_info info;
    llm_engine_get_info(e, &info);
    CHECK(info.n_blocks == 256 && info.block_size == 4 && info.kv_tokens == 1024 &&
              info.max_batch_tokens == 16 && info.max_seqs == 16,
          "engine info");
    int32_t p[30] = {0};
    struct llm_request r;
    llm_request_init(&r);
    r.prompt = p;
    r.n_prompt = 30;
    r.max_tokens = 6;
    for (int i = 0; i < 3; i++)
        llm_engine_submit(e, &r, NULL);
    struct llm_step_stats st;
    int steps = 0, sum_tokens = 0;
    while (llm_engine_has_work(e)) {
        if (llm_engine_step(e, &st)) break;
        steps++;
        sum_tokens += st.n_tokens;
        CHECK(st.n_tokens == st.n_prefill_tokens + st.n_decode_tokens, "step token split");
        CHECK(st.n_tokens <= 16, "budget");
        CHECK(st.kv_blocks_total == 256 && st.kv_blocks_used <= 256, "kv figures");
        CHECK(st.t_end >= st.t_start, "step times");
    }
    CHECK(sum_tokens == 3 * 30 + 3 * 5, "rows: prompts + decodes = %d", sum_tokens);
    for (int i = 0; i < 3; i++) {
        struct llm_result *res = llm_engine_next_result(e);
        CHECK(res != NULL, "result %d", i);
        if (!res) break;
        CHECK(res->t_arrival <= res->t_scheduled && res->t_scheduled <= res->t_first_token &&
                  res->t_first_token <= res->t_finish,
              "arrival <= scheduled <= first token <= finish");
        const struct llm_choice *c = &res->choices[0];
        CHECK(c->token_times && c->token_times[0] == res->t_first_token, "token times");
        for (int t = 1; c->token_times && t < c->n_tokens; t++)
            CHECK(c->token_times[t] >= c->token_times[t - 1], "token times increase");
        llm_result_free(res);
    }
    CHECK(llm_engine_get_stats(e)->steps == (uint64_t)steps, "step count");
    llm_engine_free(e);
    llm_backend_destroy(be);
    printf("timing: arrival/scheduled/first/finish, per-token times, step stats\n");
}

/* Stop strings and text prompts, with a real tokenizer over the mock model
 * (the llama2 fixture's tokenizer: SentencePiece-style BPE, 512 ids). */
static void test_stop_strings(void)
{
    const char *src = getenv("LLM_SRCDIR");
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/tests/fixtures/llama2-f32", src ? src : ".");
    struct llm_tokenizer *tok = NULL;
    if (llm_tok_load_dir(&tok, dir)) {
        printf("stop strings: skipped (no tokenizer in %s: %s)\n", dir, llm_errmsg());
        return;
    }
    struct mock_opts mo;
    mock_opts_init(&mo);
    mo.vocab = (int)llm_tok_vocab_size(tok);
    mo.eos = llm_tok_eos(tok);
    struct llm_backend *be;
    mock_backend_create(&be, &mo);
    struct llm_engine_opts eo;
    llm_engine_opts_init(&eo);
    eo.tok = tok;
    struct llm_engine *e;
    llm_engine_create(&e, be, &eo);

    /* a text prompt is the same request as its ids (BOS added) */
    const char *text = "Hello world, this is a test";
    int32_t *ids = NULL;
    size_t n_ids = 0;
    llm_tok_encode(tok, text, strlen(text), 1, &ids, &n_ids);
    struct llm_request r;
    llm_request_init(&r);
    r.text = text;
    r.text_len = strlen(text);
    r.max_tokens = 40;
    r.ignore_eos = 1;
    llm_engine_submit(e, &r, NULL);
    llm_request_init(&r);
    r.prompt = ids;
    r.n_prompt = (int)n_ids;
    r.max_tokens = 40;
    r.ignore_eos = 1;
    llm_engine_submit(e, &r, NULL);
    while (llm_engine_has_work(e))
        if (llm_engine_step(e, NULL)) break;
    struct llm_result *a = llm_engine_next_result(e), *b = llm_engine_next_result(e);
    CHECK(a && b && a->n_prompt == (int)n_ids && eq_choice(&a->choices[0], &b->choices[0]),
          "text prompt == its ids");
    /* the text is the decode of the ids */
    char *full = NULL;
    size_t full_len = 0;
    if (a)
        llm_tok_decode(tok, a->choices[0].tokens, (size_t)a->choices[0].n_tokens, 1, &full,
                       &full_len);
    CHECK(a && full && a->choices[0].text_len == full_len && !strcmp(a->choices[0].text, full),
          "streamed text equals the full decode");
    /* a stop string from the middle of that text: the answer ends before
     * it, its ids end with the token that completed it */
    char shown[64] = "no stop string tried";
    if (a && full && full_len > 12) {
        size_t at = full_len / 2;
        while (at > 0 && ((unsigned char)full[at] & 0xc0) == 0x80)
            at--;
        char stop[4] = {0};
        memcpy(stop, full + at, 2);
        if (((unsigned char)stop[1] & 0xc0) == 0x80 || (unsigned char)stop[1] >= 0xc0) stop[1] = 0;
        size_t first = (size_t)(strstr(full, stop) - full);
        snprintf(shown, sizeof(shown), "stop '%s' cut at byte %zu of %zu", stop, first, full_len);
        const char *stops[2] = {"\x01never", stop};
        llm_request_init(&r);
        r.prompt = ids;
        r.n_prompt = (int)n_ids;
        r.max_tokens = 40;
        r.ignore_eos = 1;
        r.stop = stops;
        r.n_stop = 2;
        llm_engine_submit(e, &r, NULL);
        while (llm_engine_has_work(e))
            if (llm_engine_step(e, NULL)) break;
        struct llm_result *c = llm_engine_next_result(e);
        CHECK(c && c->choices[0].finish_reason == LLM_FINISH_STOP &&
                  c->choices[0].stop_string == 1 && c->choices[0].text_len == first &&
                  !strncmp(c->choices[0].text, full, first),
              "stop string '%s': text cut at %zu", stop, first);
        /* the ids stop at the first token whose text completes the match */
        if (c) {
            char *pre = NULL;
            size_t pre_len = 0;
            int k = c->choices[0].n_tokens;
            llm_tok_decode(tok, c->choices[0].tokens, (size_t)k - 1, 1, &pre, &pre_len);
            CHECK(k >= 1 && !memcmp(c->choices[0].tokens, a->choices[0].tokens, (size_t)k * 4) &&
                      (!pre || !strstr(pre, stop)),
                  "stop string: %d tokens, the last one completes it", k);
            free(pre);
        }
        llm_result_free(c);
        /* min_tokens past the match: the stop string is not searched before */
        r.min_tokens = 39;
        llm_engine_submit(e, &r, NULL);
        while (llm_engine_has_work(e))
            if (llm_engine_step(e, NULL)) break;
        c = llm_engine_next_result(e);
        CHECK(c && c->choices[0].n_tokens >= 39, "stop strings wait for min_tokens");
        llm_result_free(c);
    }
    long w;
    int which = -1;
    char *const sv[3] = {"cd", "bc", "zz"};
    const size_t sl[3] = {2, 2, 2};
    w = llm_stop_scan("abcdbc", 6, 0, sv, sl, 3, &which);
    CHECK(w == 1 && which == 1, "scan: earliest match wins (%ld, %d)", w, which);
    w = llm_stop_scan("abcdbc", 6, 3, sv, sl, 3, &which);
    CHECK(w == 4 && which == 1, "scan from 3");
    w = llm_stop_scan("abcdbc", 6, 6, sv, sl, 3, &which);
    CHECK(w == -1, "scan past the end");
    free(full);
    free(ids);
    llm_result_free(a);
    llm_result_free(b);
    llm_engine_free(e);
    llm_backend_destroy(be);
    llm_tok_free(tok);
    CHECK(strncmp(shown, "no", 2), "the stop string case ran");
    printf("stop strings: text prompts, streamed text, %s, min_tokens, scanner\n", shown);
}

int main(void)
{
    llm_log_set_level(LLM_LOG_WARN);
    make_specs();
    test_batching_invariance();
    test_chunked_prefill();
    test_stop_conditions();
    test_choices();
    test_rejections();
    test_timing();
    test_stop_strings();
    for (int i = 0; i < NREQ; i++)
        llm_result_free(ref[i]);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("all engine checks passed\n");
    return 0;
}
