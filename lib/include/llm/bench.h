/* bench.h - the library half of llm-bench: workloads, the cost model and
 * timing wrapper around a backend, device ceilings, the environment
 * fingerprint, statistics over repetitions, result documents (md, csv,
 * json, jsonl) and the baseline comparison used as a CI gate.
 *
 * Design choice: a benchmark result is one JSON document (formats/bench.md)
 * and everything else is a function of it: the tables are rendered from
 * it, a baseline is compared against it, and --replay rebuilds the run from
 * it.  The workload is plain token ids generated or loaded before any
 * timing starts, hashed (XXH3-64 over lengths and ids), and the hash is
 * stored with each result, so two runs can be shown to have run the very
 * same requests.  Random draws use Philox (philox.h) keyed by the seed, so a
 * workload is a pure function of (seed, parameters, vocab).
 *
 * Timing goes through a wrapper backend (struct llm_bench_meter) that the
 * engine drives like any other: it brackets every backend call with the
 * engine's monotonic clock and adds up the bytes moved and FLOPs executed
 * by each forward pass from the batch it was given (the engine itself is
 * not changed).  The CUDA backend's sample call returns tokens to the host,
 * so a step's device work is complete when the wrapper reads the clock.
 * When the backend has a device clock (ops->last_step_time: CUDA events
 * around forward and sample) the wrapper also adds up the device time of
 * every step, and the device-idle figure is taken from it; otherwise the
 * time inside backend calls stands for the device's busy time.
 */
#ifndef LLM_BENCH_H
#define LLM_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

#include "backend.h"
#include "engine.h"
#include "model.h"
#include "sample.h"

#ifdef __cplusplus
extern "C" {
#endif

struct llm_tokenizer;

/* Version of the result document (formats/bench.md). */
#define LLM_BENCH_FORMAT "llm-bench-result"
#define LLM_BENCH_VERSION 1

/* ---- workloads -------------------------------------------------------- */

struct llm_bench_req {
    const int32_t *prompt; /* [n_prompt], into the workload's storage */
    int n_prompt;
    int n_output; /* tokens to generate (exactly, unless EOS is honoured) */
};

struct llm_bench_workload {
    struct llm_bench_req *reqs;
    int n;
    int32_t *ids; /* every prompt, back to back */
    int64_t n_ids;
    int64_t prompt_tokens; /* sum of n_prompt */
    int64_t output_tokens; /* sum of n_output */
    int max_prompt, max_output;
    int skipped; /* dataset entries left out (ShareGPT: fewer than two turns) */
};

/* Synthetic requests.  Lengths: mean when std is 0, else a normal draw
 * (Box-Muller over Philox uniforms) rounded and clamped to [min, max]
 * (max 0 = unbounded, min below 1 counts as 1).  Prompt ids are drawn
 * uniformly from [0, vocab).  Streams: lengths use Philox stream 0 (index
 * 4i .. 4i+3 for request i), the ids of request i stream i + 1. */
struct llm_bench_synth {
    int n_requests;
    double input_mean, input_std;
    int input_min, input_max;
    double output_mean, output_std;
    int output_min, output_max;
    uint64_t seed;
    int64_t vocab;
};
void llm_bench_synth_init(struct llm_bench_synth *s); /* 1 request, 128 in, 128 out, seed 0 */
int llm_bench_workload_synth(struct llm_bench_workload *w, const struct llm_bench_synth *s);

/* A workload from explicit lengths (sweep tests): n requests of n_prompt
 * ids drawn as above from seed, each generating n_output tokens. */
int llm_bench_workload_fixed(struct llm_bench_workload *w, int n, int n_prompt, int n_output,
                             uint64_t seed, int64_t vocab);

enum llm_bench_dataset {
    LLM_BENCH_DS_AUTO = 0,
    LLM_BENCH_DS_TRTLLM,   /* JSONL {"task_id", "prompt" | "input_ids", "output_tokens"} */
    LLM_BENCH_DS_LLMRUN,   /* llm-run JSONL (simple or OpenAI batch lines) */
    LLM_BENCH_DS_SHAREGPT, /* JSON array of {"conversations": [{"from", "value"}, ...]} */
    LLM_BENCH_DS_COUNT
};
const char *llm_bench_dataset_name(int f);      /* "auto", "trtllm", "llm-run", "sharegpt" */
int llm_bench_dataset_from_name(const char *s); /* -1 when unknown */

struct llm_bench_load_opts {
    int format;                      /* enum llm_bench_dataset */
    const struct llm_tokenizer *tok; /* text prompts and ShareGPT replies; NULL: ids only */
    int64_t vocab;                   /* ids must be below it */
    int max_requests;                /* keep the first N (0 = all) */
    int default_output;              /* llm-run lines without max_tokens (0 = 256) */
    int max_context;                 /* ShareGPT: skip conversations whose prompt and
                                        reply exceed this many tokens (0 = keep all) */
};
/* Load a dataset file.  Text is tokenized here (special tokens added as
 * HF's encode does), so the workload is ids only.  A malformed line fails
 * with LLM_EFORMAT "'FILE': line N: what"; *format_found (may be NULL)
 * receives the format used. */
int llm_bench_workload_load(struct llm_bench_workload *w, const char *path,
                            const struct llm_bench_load_opts *o, int *format_found);

/* Write w as a trtllm-bench dataset (one {"task_id", "input_ids",
 * "output_tokens"} line per request) through llm_out ("-" = stdout); loading
 * it back gives a workload with the same hash. */
int llm_bench_workload_save(const struct llm_bench_workload *w, const char *path);

/* XXH3-64 over the request count and, per request, n_prompt, n_output and
 * the ids (little-endian 32-bit). */
uint64_t llm_bench_workload_hash(const struct llm_bench_workload *w);
void llm_bench_workload_free(struct llm_bench_workload *w);

/* XXH3-64 of a whole file (dataset fingerprints). */
int llm_bench_file_hash(const char *path, uint64_t *h);

/* ---- statistics ------------------------------------------------------- */

struct llm_bench_stat {
    size_t n;
    double mean, stddev, min, max; /* stddev with n - 1 (0 for n < 2) */
};
void llm_bench_stat(const double *x, size_t n, struct llm_bench_stat *s);
/* p-th percentile (0..100) with linear interpolation between closest ranks
 * (numpy's default); sorts x in place; NAN for n = 0. */
double llm_bench_percentile(double *x, size_t n, double p);

/* ---- cost model --------------------------------------------------------
 * Bytes and FLOPs of one forward pass, from the model description:
 *   bytes = every linear weight once (layers and lm_head; the embedding
 *           only for the rows gathered) + per sequence the K/V of its whole
 *           context read once and the new tokens' K/V written;
 *   flops = 2 x linear params x tokens (lm_head only for rows with logits)
 *           + 4 x layers x heads x head_dim per (query, key) pair attended.
 * Activations, norms and softmax are left out (small next to the above). */
struct llm_bench_cost {
    double layer_params;       /* linear parameters of all layers run per token */
    double layer_weight_bytes; /* bytes of all layers' linear weights but the experts' */
    int n_experts, experts_per_tok; /* MoE: E and k; 0 when dense */
    double expert_bytes;       /* MoE: one expert's weights summed over the layers */
    double head_params;        /* vocab x hidden */
    double head_bytes;
    double embed_row_bytes; /* one embedding row */
    double kv_token_bytes;  /* K and V of one token over all layers */
    double attn_flops_pair; /* 4 x layers x heads x head_dim */
};
/* weight_elem_bytes: bytes per weight element as the backend holds them;
 * kv_elem_bytes: bytes per K/V element. */
void llm_bench_cost_init(struct llm_bench_cost *c, const struct llm_model_desc *d,
                         double weight_elem_bytes, double kv_elem_bytes);
/* Bytes read and FLOPs of one step.  MoE: the experts read are those the
 * batch's tokens reach, expected under uniform routing
 * (llm_bench_experts_read), per layer. */
void llm_bench_cost_batch(const struct llm_bench_cost *c, const struct llm_batch *b, double *bytes,
                          double *flops);
/* Distinct experts a layer reads for n_tokens tokens (k for one token). */
double llm_bench_experts_read(const struct llm_bench_cost *c, int n_tokens);

/* ---- metering backend --------------------------------------------------
 * A backend that forwards every call to inner and keeps totals.  Hand
 * &meter->be to llm_engine_create; inner stays owned by the caller (the
 * wrapper's destroy does nothing). */
struct llm_bench_meter {
    struct llm_backend be;
    struct llm_backend_ops ops; /* be.ops: the wrapper's calls, under inner's name */
    struct llm_backend *inner;
    struct llm_bench_cost cost;
    /* totals since the last reset */
    double busy;         /* seconds inside backend calls */
    double bytes, flops; /* cost model over every forward */
    uint64_t forwards;
    uint64_t tokens;   /* rows run */
    uint64_t out_rows; /* rows with logits */
    double device_busy; /* device time of the steps (device clock), else = busy */
    int device_clock;   /* inner has last_step_time */
    int step_open;      /* a forward whose device time is not read yet */
};
/* "cuda-events" when the inner backend times steps on the device, else
 * "monotonic" (the engine's host clock). */
const char *llm_bench_meter_timing(const struct llm_bench_meter *m);
/* Read the device time of a step still open (a forward with no sample after
 * it) into the totals; nothing to do without a device clock. */
int llm_bench_meter_settle(struct llm_bench_meter *m);
int llm_bench_meter_init(struct llm_bench_meter *m, struct llm_backend *inner,
                         const struct llm_bench_cost *c);
void llm_bench_meter_reset(struct llm_bench_meter *m);

/* ---- device ceilings ---------------------------------------------------- */

struct llm_bench_ceiling {
    double mem_bw;   /* bytes/s, read + written */
    double flops;    /* FLOP/s */
    char bw_how[96]; /* how it was found: "memcpy 2x64 MiB, 8 threads", "--peak-bw" */
    char flops_how[96];
    double flops_fp8, flops_int8; /* 8-bit products' rates (0: not measured) */
    char fp8_how[96], int8_how[96];
};
/* memcpy between two 64 MiB buffers split over n_threads and the CPU
 * backend's fp32 linear (256 x 1024 x 1024); best of several runs. */
int llm_bench_probe_cpu(struct llm_bench_ceiling *c, int n_threads);
/* cudaMemcpy device to device (1 GiB) and a bf16 8192^3 product through the
 * CUDA backend's cuBLASLt path; LLM_EUNSUPPORTED without CUDA. */
int llm_bench_probe_cuda(struct llm_bench_ceiling *c, int device);

/* Peak memory: CPU = the process's peak resident set (VmHWM, reset through
 * /proc/self/clear_refs); CUDA = device memory in use (total - free).
 * reset returns nonzero when the peak could not be reset. */
int llm_bench_mem_reset(int cuda, int device);
int llm_bench_mem_peak(int cuda, int device, uint64_t *bytes);

/* ---- device telemetry (telemetry.c) -------------------------------------- */

/* One reading of the device; NAN where it has no value. */
struct llm_bench_tele_sample {
    double sm_mhz, mem_mhz, power_w, temp_c;
    uint64_t reasons; /* NVML's clock event reasons: the bits below */
    int have_reasons;
};
#define LLM_TELE_POWER_CAP 0x4ULL /* software power cap */
/* hardware slowdown, software / hardware thermal slowdown, power brake */
#define LLM_TELE_HEAT (0x8ULL | 0x20ULL | 0x40ULL | 0x80ULL)
struct llm_bench_tele_limits {
    double power_limit_w, sm_max_mhz, mem_max_mhz; /* NAN: unknown */
};
/* Where readings come from: NVML, or a script in the tests.  sample and
 * energy return 0, or nonzero when there is no reading; energy (joules,
 * any origin, never decreasing) and limits may be NULL. */
struct llm_bench_tele_source {
    void *ctx;
    int (*sample)(void *ctx, struct llm_bench_tele_sample *s);
    int (*energy)(void *ctx, double *joules);
    int (*limits)(void *ctx, struct llm_bench_tele_limits *l);
    void (*close)(void *ctx);
};
/* NVML (libnvidia-ml.so.1 through dlopen) for CUDA device `device`;
 * LLM_EUNSUPPORTED where there is none.  Close with llm_bench_tele_close. */
int llm_bench_tele_nvml(struct llm_bench_tele_source *src, int device);
void llm_bench_tele_close(struct llm_bench_tele_source *src);

/* A thread reads src once at start, every period_s, and once at stop;
 * stop puts the repetition's figures into f (sm_clock_p10/p50/p90,
 * power_p50/p90, temp_max, power_capped_share, heat_capped_share, energy,
 * power_mean, output_tokens_per_j: each left out without its readings) and
 * frees the sampler (f NULL: figures dropped).  stop(NULL, ...) does
 * nothing. */
struct llm_bench_tele;
int llm_bench_tele_start(struct llm_bench_tele **t, const struct llm_bench_tele_source *src,
                         double period_s);
int llm_bench_tele_stop(struct llm_bench_tele *t, double wall_s, double output_tokens, json_t *f);
/* The reduction stop applies (joules < 0: no energy counter). */
int llm_bench_tele_summary(const struct llm_bench_tele_sample *s, size_t n, double joules,
                           double wall_s, double output_tokens, json_t *f);

/* ---- fingerprint -------------------------------------------------------- */

/* {"host": {cpu_model, cpu_cores, mem_bytes, os}, "gpu": {...} | null,
 *  "build": {version, commit, cuda, compiler}} for the device in use
 * (cuda: 0 = CPU backend). */
json_t *llm_bench_env(int cuda, int device);
/* XXH3-64 over every tensor's name, dtype, shape and stored checksum
 * (cheap: no tensor data is read).  LLM_EUNSUPPORTED for a model that is
 * not a file artifact. */
int llm_bench_model_hash(const struct llm_model *m, uint64_t *h);
/* "0123456789abcdef" */
void llm_bench_hex64(uint64_t h, char out[17]);

/* ---- running a workload ---------------------------------------------- */

struct llm_bench_exec {
    int one_at_a_time; /* latency mode: each request alone, in order */
    int honor_eos;     /* 0: ignore EOS, min_tokens = max_tokens */
    int phases;        /* report T_PP/S_PP/T_TG/S_TG (batched sweep) */
    int count_tokens;  /* report tokens_per_s = rows run / wall (sweep grid) */
    struct llm_sampling sampling;
    int cuda, device;                        /* for peak memory */
    const struct llm_bench_ceiling *ceiling; /* NULL: no fractions */
    /* NULL, or the device's readings during each repetition (clocks, power,
     * energy: llm_bench_tele_start) */
    const struct llm_bench_tele_source *tele;
    /* NULL, or one line a step is written here (llm-bench --step-trace):
     * trace_id, trace_rep, then the step's counts, times and cost model */
    FILE *trace;
    const char *trace_id;
    int trace_rep;
};
void llm_bench_exec_init(struct llm_bench_exec *x);
/* The step trace's first line, naming the columns llm_bench_run_once writes. */
int llm_bench_trace_header(FILE *f);

/* Counts of one repetition: identical between runs of the same workload
 * and engine settings (unless EOS is honoured with sampling). */
struct llm_bench_totals {
    int64_t requests;
    int64_t prompt_tokens; /* of finished requests */
    int64_t output_tokens; /* generated */
    uint64_t rows;         /* token rows run by the backend (recomputation included) */
    uint64_t forwards;     /* forward passes */
    double bytes, flops;   /* cost model over every forward */
    int64_t preemptions;
    int kv_blocks_peak, kv_blocks_total;
};

/* Run w once on e (built over &m->be, with record_token_times set for
 * inter-token latencies) and return the repetition's scalar figures as
 * {name: number} and its counts.  The engine must be idle; it is idle
 * again on success.  A request that does not fit the context fails with
 * LLM_ECAPACITY naming it. */
int llm_bench_run_once(struct llm_engine *e, struct llm_bench_meter *m,
                       const struct llm_bench_workload *w, const struct llm_bench_exec *x,
                       json_t **figures, struct llm_bench_totals *tot);

/* ---- figures over repetitions ----------------------------------------- */

enum llm_bench_better { LLM_BENCH_INFO = 0, LLM_BENCH_HIGHER, LLM_BENCH_LOWER };
struct llm_bench_figdef {
    const char *name;
    const char *unit; /* "tok/s", "s", "B", "B/s", "FLOP/s", "1", ... */
    int better;       /* enum llm_bench_better: what the baseline gate compares */
    const char *what; /* one line for formats/bench.md and the md table */
};
/* The definition of a figure name, or NULL. */
const struct llm_bench_figdef *llm_bench_figdef(const char *name);
const struct llm_bench_figdef *llm_bench_figdefs(size_t *n);
const char *llm_bench_better_name(int better); /* "info", "higher", "lower" */

/* acc: {} to start; each call appends one repetition's figures.  finish
 * turns acc into {name: {unit, better, n, mean, stddev, min, max,
 * samples}} in the order of the definition table. */
int llm_bench_figures_add(json_t *acc, const json_t *rep);
json_t *llm_bench_figures_finish(const json_t *acc);

/* ---- result documents --------------------------------------------------- */

enum llm_bench_fmt {
    LLM_BENCH_MD = 0,
    LLM_BENCH_CSV,
    LLM_BENCH_JSON,
    LLM_BENCH_JSONL,
    LLM_BENCH_FMT_COUNT
};
const char *llm_bench_fmt_name(int f);
int llm_bench_fmt_from_name(const char *s); /* -1 when unknown */

/* Render the document in a format; malloc'd NUL-terminated text. */
char *llm_bench_render(const json_t *doc, int fmt);
/* Read a result written as json or jsonl (the jsonl lines are merged back
 * into one document).  LLM_EFORMAT naming the file when it is not one. */
int llm_bench_doc_load(const char *path, json_t **doc);

/* ---- baseline gate ------------------------------------------------------ */

/* A figure counts as regressed only beyond max(max_pct, K x its measured
 * spread): the spread is 100 x sqrt(stddev_base^2 + stddev_new^2) /
 * mean_base, over each side's repetitions (formats/bench.md). */
#define LLM_BENCH_NOISE_K 3.0

struct llm_bench_cmp {
    char test[160];
    char figure[48];
    int better;
    double base, cur;
    double change_pct; /* positive = worse */
    int regressed;     /* change_pct > threshold_pct */
    int n_base, n_cur; /* repetitions behind each mean */
    double spread_pct; /* measured spread in percent of base; -1 when a side has one
                          repetition (nothing measured: the plain threshold applies) */
    double threshold_pct; /* the bar: max(max_pct, LLM_BENCH_NOISE_K x spread_pct) */
};
/* Compare every gated figure of every result in cur with the result of
 * the same test id in base.  *out (malloc'd, *n entries) lists each
 * comparison; returns the number of regressions (worse by more than
 * threshold_pct percent), or a negative error.  A test compared on the
 * plain threshold because one side has a single repetition is named in a
 * warning on standard error (llm_warn). */
int llm_bench_compare(const json_t *base, const json_t *cur, double max_pct,
                      struct llm_bench_cmp **out, size_t *n);

#ifdef __cplusplus
}
#endif
#endif
