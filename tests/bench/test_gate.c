/* test_gate.c - the baseline gate (llm_bench_compare) on synthetic results:
 * a figure regresses only beyond max(threshold, LLM_BENCH_NOISE_K x the
 * spread both documents measured over their repetitions), and falls back
 * to the plain threshold, saying so on standard error, when a side has a
 * single repetition.  The results are written here, so every expectation
 * is exact; the real documents are covered by test_bench.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llm/bench.h"
#include "llm/err.h"

static int fails;
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            printf("ok: " __VA_ARGS__);                                                            \
            printf("\n");                                                                          \
        } else {                                                                                   \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
            fails++;                                                                               \
        }                                                                                          \
    } while (0)

/* {"results": [{"id": id, "figures": {fig: {mean, stddev, n, ...}}}]} with
 * the samples mean +- stddev spread so the figure is self-consistent */
static json_t *doc1(const char *id, const char *fig, double mean, double sd, int n)
{
    json_t *samples = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(samples, json_real(mean + (i % 2 ? sd : -sd)));
    json_t *f = json_pack("{s:s, s:s, s:i, s:f, s:f, s:f, s:f, s:o}", "unit",
                          strstr(fig, "per_s") ? "tok/s" : "s", "better",
                          strstr(fig, "per_s") ? "higher" : "lower", "n", n, "mean", mean,
                          "stddev", n > 1 ? sd : 0.0, "min", mean - sd, "max", mean + sd,
                          "samples", samples);
    return json_pack("{s:[{s:s, s:{s:o}}]}", "results", "id", id, "figures", fig, f);
}

/* compare one figure; stderr of the call in err (NUL-terminated, may be empty) */
static int cmp1(const json_t *base, const json_t *cur, double pct, struct llm_bench_cmp *out,
                char *err, size_t errcap)
{
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    dup2(fileno(tmp), 2);
    struct llm_bench_cmp *c = NULL;
    size_t n = 0;
    int reg = llm_bench_compare(base, cur, pct, &c, &n);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t got = fread(err, 1, errcap - 1, tmp);
    err[got] = 0;
    fclose(tmp);
    if (n == 1) *out = c[0];
    free(c);
    return n == 1 ? reg : -100 - (int)n;
}

static void gate(const char *what, const char *fig, double bm, double bsd, int bn, double cm,
                 double csd, int cn, double pct, int want_reg, double want_thr, int want_note)
{
    json_t *b = doc1("latency in=128 out=128", fig, bm, bsd, bn);
    json_t *c = doc1("latency in=128 out=128", fig, cm, csd, cn);
    struct llm_bench_cmp e;
    char err[1024];
    int reg = cmp1(b, c, pct, &e, err, sizeof err);
    int note = strstr(err, "no spread measured") && strstr(err, "plain");
    CHECK(reg == want_reg && e.regressed == want_reg && fabs(e.threshold_pct - want_thr) < 1e-9 &&
              note == want_note && (want_note ? e.spread_pct == -1 : e.spread_pct >= 0),
          "%s: %s %g (sd %g, n %d) -> %g (sd %g, n %d), %g%%: %s, change %.2f%%, spread %.3g%%, "
          "bar %.3g%%%s%s",
          what, fig, bm, bsd, bn, cm, csd, cn, pct, reg > 0 ? "regressed" : "passes",
          e.change_pct, e.spread_pct, e.threshold_pct, note ? ", stderr: " : "",
          note ? strtok(err, "\n") : "");
    json_decref(b);
    json_decref(c);
}

int main(void)
{
    double k = LLM_BENCH_NOISE_K;
    printf("noise factor K = %g\n", k);
    /* the flake: itl_p95 of two identical CPU runs, 8% apart with a 4% stddev
     * per repetition: noise, not a regression (spread 5.66%, bar 17%) */
    gate("noise within the spread passes", "itl_p95", 0.0100, 0.0004, 3, 0.0108, 0.0004, 3, 5,
         0, k * sqrt(2) * 4.0, 0);
    /* the same change between quiet runs is a regression */
    gate("the same change with a small spread fails", "itl_p95", 0.0100, 0.00005, 3, 0.0108,
         0.00005, 3, 5, 1, 5, 0);
    /* a real regression beyond a wide spread still fails */
    gate("a regression beyond the spread fails", "itl_p99", 0.0100, 0.0004, 5, 0.0130, 0.0004, 5,
         5, 1, k * sqrt(2) * 4.0, 0);
    /* throughput (higher is better): 10% slower, 1% spread per side */
    gate("throughput 10% lower, 1.4% spread: fails", "output_tokens_per_s", 1000, 10, 3, 900, 10,
         3, 5, 1, 5, 0);
    gate("throughput 3% lower within a 5% threshold passes", "output_tokens_per_s", 1000, 10, 3,
         970, 10, 3, 5, 0, 5, 0);
    /* an improvement is never a regression, however noisy */
    gate("an improvement passes", "ttft_p99", 0.100, 0.02, 3, 0.050, 0.02, 3, 5, 0,
         k * sqrt(0.02 * 0.02 * 2) / 0.100 * 100, 0);
    /* one repetition on either side: nothing measured, the plain threshold, said on stderr */
    gate("single repetition: plain threshold, 8% > 5% fails", "itl_p95", 0.0100, 0.0004, 1, 0.0108,
         0, 1, 5, 1, 5, 1);
    gate("single repetition in the new run only: plain threshold", "itl_p95", 0.0100, 0.0004, 5,
         0.0108, 0, 1, 5, 1, 5, 1);
    gate("single repetition in the baseline only: plain threshold, 4% passes", "itl_p95", 0.0100,
         0, 1, 0.0104, 0.0004, 3, 5, 0, 5, 1);
    /* a document without n or stddev (older or hand-written): one repetition */
    json_t *b = json_pack("{s:[{s:s, s:{s:{s:f}}}]}", "results", "id", "t", "figures", "tpot_p50",
                          "mean", 1.0);
    json_t *c = json_pack("{s:[{s:s, s:{s:{s:f}}}]}", "results", "id", "t", "figures", "tpot_p50",
                          "mean", 1.06);
    struct llm_bench_cmp e;
    char err[1024];
    int reg = cmp1(b, c, 5, &e, err, sizeof err);
    CHECK(reg == 1 && e.n_base == 1 && e.n_cur == 1 && e.spread_pct == -1 &&
              e.threshold_pct == 5 && strstr(err, "no spread measured"),
          "figures without n/stddev count as one repetition: plain threshold, 6%% > 5%% fails");
    json_decref(b);
    json_decref(c);
    printf(fails ? "%d FAILED\n" : "all passed\n", fails);
    return fails ? 1 : 0;
}
