/* figures.c - the named figures a benchmark reports, and their statistics
 * over repetitions.
 *
 * Design choice: one table defines every figure (name, unit, which
 * direction is better, one line of meaning).  The runner emits plain
 * {name: value} per repetition; the aggregate, the tables, the baseline
 * gate and formats/bench.md all read the same table, so a figure cannot be
 * reported under one meaning and compared under another.  Only figures
 * that measure speed (throughput-like, higher is better) or delay
 * (latency-like, lower is better) are gated; memory, utilisation and
 * derived ratios are reported as information.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm/bench.h"
#include "llm/err.h"

#define H LLM_BENCH_HIGHER
#define L LLM_BENCH_LOWER
#define I LLM_BENCH_INFO

static const struct llm_bench_figdef defs[] = {
    {"requests_per_s", "req/s", H, "finished requests per second of wall time"},
    {"output_tokens_per_s", "tok/s", H, "generated tokens per second of wall time"},
    {"total_tokens_per_s", "tok/s", H, "prompt plus generated tokens per second of wall time"},
    {"tokens_per_s", "tok/s", H,
     "token rows run by the backend per second (llama-bench t/s: pp, tg and pp+tg tests)"},
    {"per_user_tokens_per_s", "tok/s", H,
     "mean over requests of generated tokens / (finish - arrival)"},
    {"ttft_mean", "s", L, "time to first token (arrival to first token), mean"},
    {"ttft_p50", "s", L, "time to first token, 50th percentile"},
    {"ttft_p90", "s", L, "time to first token, 90th percentile"},
    {"ttft_p95", "s", L, "time to first token, 95th percentile"},
    {"ttft_p99", "s", L, "time to first token, 99th percentile"},
    {"tpot_mean", "s", L,
     "time per output token after the first, (finish - first) / (n - 1), mean"},
    {"tpot_p50", "s", L, "time per output token, 50th percentile"},
    {"tpot_p90", "s", L, "time per output token, 90th percentile"},
    {"tpot_p95", "s", L, "time per output token, 95th percentile"},
    {"tpot_p99", "s", L, "time per output token, 99th percentile"},
    {"itl_mean", "s", L, "inter-token latency (gap between consecutive tokens), mean"},
    {"itl_p50", "s", L, "inter-token latency, 50th percentile"},
    {"itl_p90", "s", L, "inter-token latency, 90th percentile"},
    {"itl_p95", "s", L, "inter-token latency, 95th percentile"},
    {"itl_p99", "s", L, "inter-token latency, 99th percentile"},
    {"e2e_mean", "s", L, "request latency, arrival to last token, mean"},
    {"e2e_p50", "s", L, "request latency, 50th percentile"},
    {"e2e_p90", "s", L, "request latency, 90th percentile"},
    {"e2e_p95", "s", L, "request latency, 95th percentile"},
    {"e2e_p99", "s", L, "request latency, 99th percentile"},
    {"t_pp", "s", L, "batched: start to the step that gave the last request its first token"},
    {"s_pp", "tok/s", H, "batched: prompt tokens / t_pp"},
    {"t_tg", "s", L, "batched: t - t_pp"},
    {"s_tg", "tok/s", H, "batched: generated tokens after each request's first / t_tg"},
    {"t", "s", L, "batched: wall time of the test"},
    {"s", "tok/s", H, "batched: (prompt tokens + generated tokens after each first) / t"},
    {"mem_bw", "B/s", I, "achieved memory traffic: cost-model bytes / wall time"},
    {"mem_bw_fraction", "1", I, "mem_bw / the device's copy bandwidth"},
    {"flops", "FLOP/s", I, "achieved arithmetic: cost-model FLOPs / wall time"},
    {"flops_fraction", "1", I, "flops / the device's matrix-product rate"},
    {"host_overhead_share", "1", I,
     "share of wall time outside backend calls (scheduler and host work; on a GPU the device "
     "is idle then)"},
    {"device_busy_s", "s", I,
     "device time of the steps: CUDA events around forward and sample, else host time inside "
     "backend calls"},
    {"device_idle_share", "1", I,
     "1 - device_busy_s / wall: share of wall time the device waited for the host"},
    {"step_idle_share_max", "1", I, "largest device idle share of a single step"},
    {"peak_mem_bytes", "B", I,
     "peak memory: CPU peak resident set of the process; GPU device memory in use"},
    {"kv_util_peak", "1", I, "most KV blocks in use at once / KV blocks in the pool"},
    {"kv_util_mean", "1", I, "KV blocks in use after each step / pool, mean over steps"},
    {"preemptions", "1", I, "requests preempted (and later recomputed) for KV space"},
    {"wall_s", "s", I, "wall time of the repetition"},
    {"sm_clock_p10", "MHz", I, "GPU SM clock sampled every 100 ms, 10th percentile"},
    {"sm_clock_p50", "MHz", I, "GPU SM clock, 50th percentile"},
    {"sm_clock_p90", "MHz", I, "GPU SM clock, 90th percentile"},
    {"power_p50", "W", I, "GPU board power as the driver reports it, 50th percentile"},
    {"power_p90", "W", I, "GPU board power, 90th percentile"},
    {"power_mean", "W", I, "energy / wall time"},
    {"energy", "J", I, "GPU energy over the repetition (the driver's energy counter)"},
    {"output_tokens_per_j", "tok/J", I, "generated tokens / energy"},
    {"power_capped_share", "1", I, "share of samples with the clocks held by the power cap"},
    {"heat_capped_share", "1", I,
     "share of samples with the clocks held by heat (thermal or hardware slowdown, power "
     "brake)"},
    {"temp_max", "C", I, "hottest GPU temperature sampled"},
};

#undef H
#undef L
#undef I

const struct llm_bench_figdef *llm_bench_figdefs(size_t *n)
{
    *n = sizeof defs / sizeof defs[0];
    return defs;
}

const struct llm_bench_figdef *llm_bench_figdef(const char *name)
{
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        if (!strcmp(defs[i].name, name)) return &defs[i];
    return NULL;
}

const char *llm_bench_better_name(int better)
{
    switch (better) {
    case LLM_BENCH_HIGHER:
        return "higher";
    case LLM_BENCH_LOWER:
        return "lower";
    default:
        return "info";
    }
}

/* ---- statistics ------------------------------------------------------------ */

void llm_bench_stat(const double *x, size_t n, struct llm_bench_stat *s)
{
    memset(s, 0, sizeof(*s));
    s->n = n;
    if (n == 0) {
        s->mean = s->stddev = s->min = s->max = NAN;
        return;
    }
    double sum = 0;
    s->min = s->max = x[0];
    for (size_t i = 0; i < n; i++) {
        sum += x[i];
        if (x[i] < s->min) s->min = x[i];
        if (x[i] > s->max) s->max = x[i];
    }
    s->mean = sum / (double)n;
    if (n > 1) {
        double ss = 0;
        for (size_t i = 0; i < n; i++)
            ss += (x[i] - s->mean) * (x[i] - s->mean);
        s->stddev = sqrt(ss / (double)(n - 1));
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double llm_bench_percentile(double *x, size_t n, double p)
{
    if (n == 0) return NAN;
    qsort(x, n, sizeof(*x), cmp_double);
    if (p <= 0) return x[0];
    if (p >= 100) return x[n - 1];
    double r = p / 100.0 * (double)(n - 1);
    size_t lo = (size_t)floor(r);
    double f = r - (double)lo;
    if (lo + 1 >= n) return x[n - 1];
    return x[lo] + (x[lo + 1] - x[lo]) * f;
}

/* ---- aggregation ------------------------------------------------------------ */

int llm_bench_figures_add(json_t *acc, const json_t *rep)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)rep, k, v)
    {
        if (!json_is_number(v) || !isfinite(json_number_value(v))) continue;
        if (!llm_bench_figdef(k)) return llm_err_set(LLM_EINVAL, "bench: unknown figure '%s'", k);
        json_t *arr = json_object_get(acc, k);
        if (!arr) {
            arr = json_array();
            if (!arr || json_object_set_new(acc, k, arr))
                return llm_err_set(LLM_ENOMEM, "out of memory");
        }
        if (json_array_append_new(arr, json_real(json_number_value(v))))
            return llm_err_set(LLM_ENOMEM, "out of memory");
    }
    return 0;
}

json_t *llm_bench_figures_finish(const json_t *acc)
{
    json_t *out = json_object();
    if (!out) return NULL;
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        json_t *arr = json_object_get(acc, defs[i].name);
        if (!arr || !json_array_size(arr)) continue;
        size_t n = json_array_size(arr);
        double *x = malloc(n * sizeof(*x));
        if (!x) goto fail;
        for (size_t j = 0; j < n; j++)
            x[j] = json_number_value(json_array_get(arr, j));
        struct llm_bench_stat s;
        llm_bench_stat(x, n, &s);
        free(x);
        json_t *f =
            json_pack("{s:s, s:s, s:I, s:f, s:f, s:f, s:f, s:O}", "unit", defs[i].unit, "better",
                      llm_bench_better_name(defs[i].better), "n", (json_int_t)n, "mean", s.mean,
                      "stddev", s.stddev, "min", s.min, "max", s.max, "samples", arr);
        if (!f || json_object_set_new(out, defs[i].name, f)) goto fail;
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}
