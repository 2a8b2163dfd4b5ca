/* llm-bench - reproducible benchmark runs of the engine, usable as a CI gate.
 *
 * Modes: throughput (every request submitted at once), latency (one request
 * at a time), sweep (llama-bench's pp/tg/pp+tg grid and llama-batched-
 * bench's PP x TG x B table, every combination of list-valued options) and
 * compare (a result against a baseline, no model needed).
 *
 * Design: the tool parses options, builds the workloads and the engines,
 * runs warm-ups and repetitions and writes one result document; the
 * workloads, timing, figures, rendering and the baseline gate live in
 * libllm (llm/bench.h).  Every option that shapes the run is recorded in
 * the document's "run" object in the same form it is read back, so
 * --replay RESULT.json re-runs exactly that: the same parameters, a check
 * that the model hash matches, and a check that each test's workload hash
 * (its token ids and lengths) is the recorded one.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llm/backend.h"
#include "llm/bench.h"
#include "llm/dist.h"
#include "llm/dtype.h"
#include "llm/engine.h"
#include "llm/err.h"
#include "llm/io.h"
#include "llm/log.h"
#include "llm/model.h"
#include "llm/tokenizer.h"
#include "llm_build_config.h"
#include "tool.h"

enum { EXIT_REGRESSION = 3 };

static const char usage_text[] =
    "Usage: llm-bench [OPTIONS] throughput|latency|sweep MODEL\n"
    "       llm-bench [OPTIONS] --replay RESULT.json [MODEL]\n"
    "       llm-bench compare RESULT.json --baseline OLD.json [--max-regression PCT]\n"
    "       llm-bench show RESULT.json [-f md|csv|json|jsonl] [-o FILE]\n"
    "Benchmark the engine on the model artifact MODEL and write one result\n"
    "(Markdown table by default; -f json keeps everything needed to replay it).\n"
    "\n"
    "Modes:\n"
    "  throughput                 every request submitted at once (offline batch)\n"
    "  latency                    one request at a time\n"
    "  sweep                      pp/tg grid (-p, -n, --pg) and batched table (--npp, --ntg,\n"
    "                             --npl); list options run every combination\n"
    "  compare                    compare RESULT.json with --baseline and exit 0 or 3\n"
    "  show                       print RESULT.json (json or jsonl) in another format\n"
    "Workload (throughput, latency):\n"
    "      --num-requests N       requests (synthetic: default 128 throughput, 16 latency;\n"
    "                             dataset: the first N)\n"
    "      --input-len N          synthetic prompt length (default 128)\n"
    "      --output-len N         synthetic output length (default 128)\n"
    "      --input-std S          normally distributed prompt lengths (default 0: fixed)\n"
    "      --output-std S         normally distributed output lengths (default 0: fixed)\n"
    "      --dataset FILE         requests from FILE: trtllm-bench JSONL, llm-run JSONL or\n"
    "                             ShareGPT JSON\n"
    "      --dataset-format F     auto, trtllm, llm-run or sharegpt (default auto)\n"
    "      --tokenizer DIR        tokenizer.json for text prompts (default: the model's)\n"
    "      --seed N               seed of the token ids, lengths and sampling (default 0)\n"
    "      --honor-eos            stop at EOS (default: output lengths are forced)\n"
    "      --save-workload FILE   write the requests as a trtllm-bench dataset (ids)\n"
    "      --step-trace FILE      one tab-separated line a forward step of the timed runs:\n"
    "                             rows, prompt rows, sequences, wall and device ms\n"
    "      --temperature T  --top-k K  --top-p P   sampling (default greedy)\n"
    "Sweep:\n"
    "  -p, --n-prompt LIST        prompt-processing tests ppN (default 512)\n"
    "  -n, --n-gen LIST           generation tests tgN (default 128)\n"
    "      --pg PP,TG             a pp+tg test (repeatable)\n"
    "      --npp LIST --ntg LIST --npl LIST   batched tests: B requests of PP prompt tokens\n"
    "                             generating TG tokens each\n"
    "Method:\n"
    "  -r, --repetitions N        timed repetitions (default 3)\n"
    "  -w, --warmup N             untimed warm-up runs before them (default 1)\n"
    "      --warmup-requests N    requests in a throughput/latency warm-up run (default 4)\n"
    "Engine (LIST: comma-separated, every value is run):\n"
    "      --device NAME          auto, cpu or cuda (default auto)\n"
    "      --no-verify            do not check the model's tensor checksums while loading\n"
    "  -t, --threads LIST         CPU worker threads (default: the cores no other process\n"
    "                             is busy on)\n"
    "  -b, --max-batch-tokens LIST  tokens in one forward step (default: backend's)\n"
    "      --max-seqs LIST        sequences running at once (default: backend's)\n"
    "      --no-evict             admit a request only when the KV cache holds it and every\n"
    "                             running one at full length: no preemption\n"
    "      --kv-cache SIZE|FRAC   KV cache size (2GiB) or fraction of memory (0.5)\n"
    "      --block-size N         tokens per KV block (default 32)\n"
    "      --max-seq-len N        context length (default: the model's)\n"
    "Ceilings (fractions of peak):\n"
    "      --peak-bw RATE         copy bandwidth in bytes/s (2.97T) instead of the probe\n"
    "      --peak-flops RATE      matrix-product rate in FLOP/s (774T) instead of the probe\n"
    "      --no-probe             no probe: fractions only for rates given above\n"
    "Output and gate:\n"
    "  -o, --output FILE          write to FILE (default: standard output)\n"
    "  -f, --format F             md, csv, json or jsonl (default: from FILE's extension\n"
    "                             .md, .csv, .json, .jsonl, else md)\n"
    "      --replay RESULT.json   run the run recorded in RESULT.json again\n"
    "      --baseline OLD.json    compare with OLD.json; exit 3 if a figure regressed\n"
    "      --max-regression PCT   allowed loss in percent (default 5)\n"
    "  -q, --quiet                only errors on standard error\n"
    "  -v, --verbose              debug detail on standard error\n"
    "  -h, --help                 print this help and exit\n"
    "      --version              print the version and exit\n";

enum {
    OPT_NUMREQ = 256,
    OPT_INLEN,
    OPT_OUTLEN,
    OPT_INSTD,
    OPT_OUTSTD,
    OPT_DATASET,
    OPT_DSFMT,
    OPT_TOKENIZER,
    OPT_SEED,
    OPT_HONOR_EOS,
    OPT_TEMP,
    OPT_TOPK,
    OPT_TOPP,
    OPT_PG,
    OPT_NPP,
    OPT_NTG,
    OPT_NPL,
    OPT_WARMREQ,
    OPT_DEVICE,
    OPT_SEQS,
    OPT_NOEVICT,
    OPT_KV,
    OPT_BLOCK,
    OPT_SEQLEN,
    OPT_PEAKBW,
    OPT_PEAKFL,
    OPT_NOPROBE,
    OPT_REPLAY,
    OPT_BASELINE,
    OPT_MAXREG,
    OPT_SAVE_WL,
    OPT_TRACE,
    OPT_VERSION,
    OPT_NO_VERIFY,
};

enum mode { MODE_THROUGHPUT = 0, MODE_LATENCY, MODE_SWEEP, MODE_COMPARE, MODE_SHOW, MODE_COUNT };
static const char *const mode_names[MODE_COUNT] = {"throughput", "latency", "sweep", "compare",
                                                   "show"};

#define LIST_MAX 32
struct ilist {
    long v[LIST_MAX];
    int n;
};

/* Everything that shapes a run (recorded in "run" and read back by --replay). */
struct runopts {
    int mode;
    /* workload */
    long num_requests; /* -1: mode default */
    double input_len, output_len, input_std, output_std;
    char *dataset;
    int ds_format;
    char *tokenizer;
    uint64_t seed;
    int honor_eos;
    double temperature, top_p;
    long top_k;
    /* sweep */
    struct ilist p, n, npp, ntg, npl;
    long pg[LIST_MAX][2];
    int n_pg;
    /* method */
    long repetitions, warmup, warmup_requests;
    /* engine */
    char *device;
    struct ilist threads, mbt, seqs;
    char *kv_cache; /* as given, NULL: backend default */
    long block_size, max_seq_len;
    int no_evict;   /* the engine's no-evict admission */
};

struct opts {
    struct runopts r;
    const char *model, *result_in;
    int fmt; /* -1: from the output file's extension, else md */
    const char *out_path, *replay, *baseline, *save_workload, *step_trace;
    double max_regression;
    double peak_bw, peak_flops;
    int no_probe;
    int no_verify;
    int verbosity;
    char **argv;
    int argc;
};

static void runopts_init(struct runopts *r)
{
    memset(r, 0, sizeof(*r));
    r->mode = -1;
    r->num_requests = -1;
    r->input_len = 128;
    r->output_len = 128;
    r->repetitions = 3;
    r->warmup = 1;
    r->warmup_requests = 4;
    r->block_size = 0;
    r->top_p = 1.0;
}

static void runopts_free(struct runopts *r)
{
    free(r->dataset);
    free(r->tokenizer);
    free(r->device);
    free(r->kv_cache);
}

static char *dup_or_die(const char *s)
{
    char *d = strdup(s);
    if (!d) {
        fprintf(stderr, "%s: out of memory\n", tool_prog);
        exit(TOOL_EXIT_FAIL);
    }
    return d;
}

static void set_str(char **dst, const char *s)
{
    free(*dst);
    *dst = s ? dup_or_die(s) : NULL;
}

/* ---- option values ------------------------------------------------------------ */

/* Appends to l, so that a list option may be given several times. */
static int parse_list(const char *s, long lo, long hi, struct ilist *l)
{
    int n;
    if (tool_parse_list(s, lo, hi, l->v + l->n, LIST_MAX - l->n, &n)) return -1;
    l->n += n;
    return 0;
}

/* "2.97T", "774e12", "900G": a rate, decimal multiples. */
static int parse_rate(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v > 0)) return -1;
    static const char sfx[] = "KMGTP";
    const char *k = *end ? strchr(sfx, *end) : NULL;
    if (*end && !k) return -1;
    if (k) {
        v *= pow(1e3, (double)(k - sfx + 1));
        end++;
    }
    if (*end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

static int mode_from_name(const char *s)
{
    for (int i = 0; i < MODE_COUNT; i++)
        if (!strcmp(s, mode_names[i])) return i;
    return -1;
}

/* ---- run options <-> JSON ------------------------------------------------------- */

static json_t *ilist_json(const struct ilist *l)
{
    json_t *a = json_array();
    for (int i = 0; i < l->n; i++)
        json_array_append_new(a, json_integer(l->v[i]));
    return a;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *runopts_json(const struct runopts *r, const char *ds_hash, int ds_format_found)
{
    json_t *wl;
    if (r->dataset)
        wl = json_pack("{s:s, s:s, s:s, s:o, s:o, s:I}", "kind", "dataset", "path", r->dataset,
                       "format", llm_bench_dataset_name(ds_format_found), "hash",
                       str_or_null(ds_hash), "tokenizer", str_or_null(r->tokenizer), "num_requests",
                       (json_int_t)r->num_requests);
    else
        wl = json_pack("{s:s, s:I, s:f, s:f, s:f, s:f, s:o}", "kind", "synthetic", "num_requests",
                       (json_int_t)r->num_requests, "input_len", r->input_len, "input_std",
                       r->input_std, "output_len", r->output_len, "output_std", r->output_std,
                       "tokenizer", str_or_null(r->tokenizer));
    json_t *pg = json_array();
    for (int i = 0; i < r->n_pg; i++)
        json_array_append_new(pg,
                              json_pack("[I,I]", (json_int_t)r->pg[i][0], (json_int_t)r->pg[i][1]));
    json_t *sweep = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "n_prompt", ilist_json(&r->p),
                              "n_gen", ilist_json(&r->n), "pg", pg, "npp", ilist_json(&r->npp),
                              "ntg", ilist_json(&r->ntg), "npl", ilist_json(&r->npl));
    json_t *eng = json_pack("{s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:b}", "device",
                            str_or_null(r->device), "threads", ilist_json(&r->threads),
                            "max_batch_tokens", ilist_json(&r->mbt), "max_seqs",
                            ilist_json(&r->seqs), "kv_cache", str_or_null(r->kv_cache),
                            "block_size", (json_int_t)r->block_size, "max_seq_len",
                            (json_int_t)r->max_seq_len, "no_evict", r->no_evict);
    json_t *samp = json_pack("{s:f, s:I, s:f}", "temperature", r->temperature, "top_k",
                             (json_int_t)r->top_k, "top_p", r->top_p);
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:b, s:o, s:o, s:o, s:o}", "mode",
                     mode_names[r->mode], "seed", (json_int_t)r->seed, "repetitions",
                     (json_int_t)r->repetitions, "warmup", (json_int_t)r->warmup, "warmup_requests",
                     (json_int_t)r->warmup_requests, "honor_eos", r->honor_eos, "sampling", samp,
                     "workload", wl, "sweep", sweep, "engine", eng);
}

/* Read back what runopts_json wrote; the messages name the field. */
static int get_int(const json_t *o, const char *k, long lo, long hi, long *v, const char *src)
{
    json_t *x = json_object_get(o, k);
    if (!json_is_integer(x) || json_integer_value(x) < lo || json_integer_value(x) > hi)
        return llm_err_set(LLM_EFORMAT, "'%s': run field '%s' missing or out of range", src, k);
    *v = (long)json_integer_value(x);
    return 0;
}

static int get_num(const json_t *o, const char *k, double *v, const char *src)
{
    json_t *x = json_object_get(o, k);
    if (!json_is_number(x))
        return llm_err_set(LLM_EFORMAT, "'%s': run field '%s' missing or not a number", src, k);
    *v = json_number_value(x);
    return 0;
}

static int get_strn(const json_t *o, const char *k, char **v, const char *src)
{
    json_t *x = json_object_get(o, k);
    if (json_is_null(x) || !x) {
        set_str(v, NULL);
        return 0;
    }
    if (!json_is_string(x))
        return llm_err_set(LLM_EFORMAT, "'%s': run field '%s' is not a string", src, k);
    set_str(v, json_string_value(x));
    return 0;
}

static int get_list(const json_t *o, const char *k, struct ilist *l, const char *src)
{
    json_t *a = json_object_get(o, k);
    l->n = 0;
    if (!json_is_array(a) || json_array_size(a) > LIST_MAX)
        return llm_err_set(LLM_EFORMAT, "'%s': run field '%s' is not a list", src, k);
    size_t i;
    json_t *x;
    json_array_foreach(a, i, x)
    {
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > INT32_MAX)
            return llm_err_set(LLM_EFORMAT, "'%s': run field '%s'[%zu] is not a count", src, k, i);
        l->v[l->n++] = (long)json_integer_value(x);
    }
    return 0;
}

static int runopts_from_json(struct runopts *r, const json_t *run, const char *src)
{
    if (!json_is_object(run)) return llm_err_set(LLM_EFORMAT, "'%s': no \"run\" object", src);
    const char *m = json_string_value(json_object_get(run, "mode"));
    r->mode = m ? mode_from_name(m) : -1;
    if (r->mode < 0 || r->mode >= MODE_COMPARE)
        return llm_err_set(LLM_EFORMAT, "'%s': run mode '%s' cannot be replayed", src, m ? m : "?");
    long seed, v;
    int rc;
    json_t *js = json_object_get(run, "seed");
    if (!json_is_integer(js)) return llm_err_set(LLM_EFORMAT, "'%s': run field 'seed'", src);
    seed = (long)json_integer_value(js);
    r->seed = (uint64_t)seed;
    if ((rc = get_int(run, "repetitions", 1, 1000000, &r->repetitions, src)) ||
        (rc = get_int(run, "warmup", 0, 1000000, &r->warmup, src)) ||
        (rc = get_int(run, "warmup_requests", 1, INT32_MAX, &r->warmup_requests, src)))
        return rc;
    r->honor_eos = json_is_true(json_object_get(run, "honor_eos"));
    const json_t *s = json_object_get(run, "sampling");
    if ((rc = get_num(s, "temperature", &r->temperature, src)) ||
        (rc = get_int(s, "top_k", 0, INT32_MAX, &r->top_k, src)) ||
        (rc = get_num(s, "top_p", &r->top_p, src)))
        return rc;
    const json_t *w = json_object_get(run, "workload");
    const char *kind = json_string_value(json_object_get(w, "kind"));
    if (!kind) return llm_err_set(LLM_EFORMAT, "'%s': run field 'workload.kind'", src);
    if ((rc = get_int(w, "num_requests", -1, INT32_MAX, &r->num_requests, src)) ||
        (rc = get_strn(w, "tokenizer", &r->tokenizer, src)))
        return rc;
    if (!strcmp(kind, "dataset")) {
        if ((rc = get_strn(w, "path", &r->dataset, src))) return rc;
        const char *f = json_string_value(json_object_get(w, "format"));
        r->ds_format = f ? llm_bench_dataset_from_name(f) : -1;
        if (!r->dataset || r->ds_format < 0)
            return llm_err_set(LLM_EFORMAT, "'%s': run field 'workload' names no dataset", src);
    } else {
        if ((rc = get_num(w, "input_len", &r->input_len, src)) ||
            (rc = get_num(w, "output_len", &r->output_len, src)) ||
            (rc = get_num(w, "input_std", &r->input_std, src)) ||
            (rc = get_num(w, "output_std", &r->output_std, src)))
            return rc;
    }
    const json_t *sw = json_object_get(run, "sweep");
    if ((rc = get_list(sw, "n_prompt", &r->p, src)) || (rc = get_list(sw, "n_gen", &r->n, src)) ||
        (rc = get_list(sw, "npp", &r->npp, src)) || (rc = get_list(sw, "ntg", &r->ntg, src)) ||
        (rc = get_list(sw, "npl", &r->npl, src)))
        return rc;
    const json_t *pg = json_object_get(sw, "pg");
    r->n_pg = 0;
    if (!json_is_array(pg) || json_array_size(pg) > LIST_MAX)
        return llm_err_set(LLM_EFORMAT, "'%s': run field 'sweep.pg'", src);
    for (size_t i = 0; i < json_array_size(pg); i++) {
        json_t *p = json_array_get(pg, i);
        if (!json_is_integer(json_array_get(p, 0)) || !json_is_integer(json_array_get(p, 1)))
            return llm_err_set(LLM_EFORMAT, "'%s': run field 'sweep.pg'[%zu]", src, i);
        r->pg[r->n_pg][0] = (long)json_integer_value(json_array_get(p, 0));
        r->pg[r->n_pg][1] = (long)json_integer_value(json_array_get(p, 1));
        r->n_pg++;
    }
    const json_t *e = json_object_get(run, "engine");
    if ((rc = get_strn(e, "device", &r->device, src)) ||
        (rc = get_list(e, "threads", &r->threads, src)) ||
        (rc = get_list(e, "max_batch_tokens", &r->mbt, src)) ||
        (rc = get_list(e, "max_seqs", &r->seqs, src)) ||
        (rc = get_strn(e, "kv_cache", &r->kv_cache, src)) ||
        (rc = get_int(e, "block_size", 0, 1 << 20, &r->block_size, src)) ||
        (rc = get_int(e, "max_seq_len", 0, INT32_MAX, &v, src)))
        return rc;
    r->max_seq_len = v;
    r->no_evict = json_is_true(json_object_get(e, "no_evict")); /* absent in older results */
    return 0;
}

/* ---- tests ------------------------------------------------------------------------ */

enum kind { KIND_THROUGHPUT = 0, KIND_LATENCY, KIND_GRID, KIND_BATCHED };
static const char *const kind_names[] = {"throughput", "latency", "grid", "batched"};

struct test {
    int kind;
    char name[96];  /* without the engine suffix */
    long pp, tg, b; /* grid and batched */
};

/* The tests of a run, in the order they run for one engine setting. */
static int make_tests(const struct runopts *r, struct test **out, int *n)
{
    int cap = 8 + r->p.n + r->n.n + r->n_pg + r->npp.n * r->ntg.n * r->npl.n;
    struct test *t = calloc((size_t)cap, sizeof(*t));
    if (!t) return llm_err_set(LLM_ENOMEM, "out of memory");
    int k = 0;
    if (r->mode == MODE_THROUGHPUT || r->mode == MODE_LATENCY) {
        t[k].kind = r->mode == MODE_THROUGHPUT ? KIND_THROUGHPUT : KIND_LATENCY;
        snprintf(t[k].name, sizeof t[k].name, "%s", mode_names[r->mode]);
        k++;
    } else {
        for (int i = 0; i < r->p.n; i++)
            if (r->p.v[i] > 0) {
                t[k] = (struct test){.kind = KIND_GRID, .pp = r->p.v[i], .tg = 0, .b = 1};
                snprintf(t[k].name, sizeof t[k].name, "pp%ld", r->p.v[i]);
                k++;
            }
        for (int i = 0; i < r->n.n; i++)
            if (r->n.v[i] > 0) {
                t[k] = (struct test){.kind = KIND_GRID, .pp = 0, .tg = r->n.v[i], .b = 1};
                snprintf(t[k].name, sizeof t[k].name, "tg%ld", r->n.v[i]);
                k++;
            }
        for (int i = 0; i < r->n_pg; i++) {
            t[k] = (struct test){.kind = KIND_GRID, .pp = r->pg[i][0], .tg = r->pg[i][1], .b = 1};
            snprintf(t[k].name, sizeof t[k].name, "pp%ld+tg%ld", r->pg[i][0], r->pg[i][1]);
            k++;
        }
        for (int a = 0; a < r->npp.n; a++)
            for (int c = 0; c < r->ntg.n; c++)
                for (int d = 0; d < r->npl.n; d++) {
                    t[k] = (struct test){.kind = KIND_BATCHED,
                                         .pp = r->npp.v[a],
                                         .tg = r->ntg.v[c],
                                         .b = r->npl.v[d]};
                    snprintf(t[k].name, sizeof t[k].name, "batched pp=%ld tg=%ld b=%ld",
                             r->npp.v[a], r->ntg.v[c], r->npl.v[d]);
                    k++;
                }
    }
    *out = t;
    *n = k;
    return 0;
}

/* Workload of a sweep test: pp N = one prompt of N tokens, one token out;
 * tg N = a one-token prompt and N single-token steps; pp+tg and batched =
 * PP prompt tokens then TG decode steps (TG + 1 tokens out: the first
 * comes with the prompt), as llama-bench and llama-batched-bench count. */
static int sweep_workload(const struct test *t, uint64_t seed, int64_t vocab,
                          struct llm_bench_workload *w)
{
    if (t->tg == 0) return llm_bench_workload_fixed(w, 1, (int)t->pp, 1, seed, vocab);
    if (t->pp == 0) return llm_bench_workload_fixed(w, 1, 1, (int)t->tg, seed, vocab);
    return llm_bench_workload_fixed(w, (int)t->b, (int)t->pp, (int)t->tg + 1, seed, vocab);
}

/* ---- the run ---------------------------------------------------------------------- */

struct ctx {
    const struct opts *o;
    const struct runopts *r;
    struct llm_model *m;
    struct llm_tokenizer *tok;
    struct llm_bench_workload base; /* throughput/latency workload */
    struct llm_bench_ceiling ceil;
    int have_ceil;
    int cuda;
    const json_t *replay_doc;
    json_t *results;
    FILE *trace;                       /* --step-trace */
    struct llm_bench_tele_source tele; /* NVML on a GPU: clocks, power, energy */
    int tele_state;                    /* 0 not tried, 1 open, -1 none */
};

static int quiet(const struct ctx *c)
{
    return c->o->verbosity < 0;
}

static void engine_suffix(const struct runopts *r, long th, long mbt, long seqs, char *buf,
                          size_t cap)
{
    size_t k = 0;
    buf[0] = 0;
    if (r->threads.n) k += (size_t)snprintf(buf + k, cap - k, " threads=%ld", th);
    if (r->mbt.n && k < cap) k += (size_t)snprintf(buf + k, cap - k, " mbt=%ld", mbt);
    if (r->seqs.n && k < cap) snprintf(buf + k, cap - k, " seqs=%ld", seqs);
}

static const json_t *replay_result(const struct ctx *c, const char *id)
{
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(c->replay_doc, "results"), i, r)
    {
        const char *x = json_string_value(json_object_get(r, "id"));
        if (x && !strcmp(x, id)) return r;
    }
    return NULL;
}

static int totals_equal(const struct llm_bench_totals *a, const struct llm_bench_totals *b)
{
    return a->requests == b->requests && a->prompt_tokens == b->prompt_tokens &&
           a->output_tokens == b->output_tokens && a->rows == b->rows &&
           a->forwards == b->forwards && a->preemptions == b->preemptions &&
           a->kv_blocks_peak == b->kv_blocks_peak;
}

static int run_test(struct ctx *c, struct llm_engine *e, struct llm_bench_meter *mt,
                    const struct test *t, const char *suffix, const json_t *eng_json)
{
    const struct runopts *r = c->r;
    struct llm_bench_workload own = {0};
    const struct llm_bench_workload *w = &c->base;
    int rc;
    if (t->kind == KIND_GRID || t->kind == KIND_BATCHED) {
        if ((rc = sweep_workload(t, r->seed, c->m->desc.vocab_size, &own))) return rc;
        w = &own;
    }
    char id[192], hex[17];
    snprintf(id, sizeof id, "%s%s", t->name, suffix);
    uint64_t wh = llm_bench_workload_hash(w);
    llm_bench_hex64(wh, hex);
    if (c->replay_doc) {
        const json_t *pr = replay_result(c, id);
        const char *rh =
            json_string_value(json_object_get(json_object_get(pr, "workload"), "hash"));
        if (!pr) {
            rc = llm_err_set(LLM_EINVAL, "replay: test '%s' is not in '%s'", id, c->o->replay);
            goto out;
        }
        if (!rh || strcmp(rh, hex)) {
            rc = llm_err_set(LLM_EINVAL, "replay: test '%s': workload hash %s, recorded %s", id,
                             hex, rh ? rh : "none");
            goto out;
        }
    }

    struct llm_bench_exec x;
    llm_bench_exec_init(&x);
    x.one_at_a_time = t->kind == KIND_LATENCY;
    x.honor_eos = r->honor_eos;
    x.phases = t->kind == KIND_BATCHED;
    x.count_tokens = t->kind == KIND_GRID;
    x.sampling.temperature = r->temperature;
    x.sampling.top_k = (int)r->top_k;
    x.sampling.top_p = r->top_p;
    x.sampling.seed = r->seed;
    x.cuda = c->cuda;
    x.ceiling = c->have_ceil ? &c->ceil : NULL;
    x.tele = c->tele_state > 0 ? &c->tele : NULL;
    x.trace_id = id;

    /* warm-up: the same kind of run, shortened for throughput and latency */
    struct llm_bench_workload ww = *w;
    if (t->kind == KIND_THROUGHPUT || t->kind == KIND_LATENCY)
        if (ww.n > r->warmup_requests) ww.n = (int)r->warmup_requests;
    struct llm_bench_totals tot, tot0 = {0};
    for (long i = 0; i < r->warmup; i++) {
        json_t *f = NULL;
        rc = llm_bench_run_once(e, mt, &ww, &x, &f, &tot);
        json_decref(f);
        if (rc) goto out;
    }
    json_t *acc = json_object();
    if (!acc) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
        goto out;
    }
    int same = 1;
    for (long i = 0; i < r->repetitions; i++) {
        json_t *f = NULL;
        x.trace = c->trace; /* timed repetitions only */
        x.trace_rep = (int)i + 1;
        rc = llm_bench_run_once(e, mt, w, &x, &f, &tot);
        if (!rc) rc = llm_bench_figures_add(acc, f);
        json_decref(f);
        if (rc) {
            json_decref(acc);
            goto out;
        }
        if (i == 0)
            tot0 = tot;
        else
            same &= totals_equal(&tot0, &tot);
        if (!quiet(c) && llm_log_get_level() >= LLM_LOG_DEBUG)
            fprintf(stderr, "%s: %s: repetition %ld done\n", tool_prog, id, i + 1);
    }
    json_t *figs = llm_bench_figures_finish(acc);
    json_decref(acc);
    if (!figs) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
        goto out;
    }
    json_t *params = json_object();
    if (t->kind == KIND_GRID || t->kind == KIND_BATCHED) {
        json_object_set_new(params, "pp", json_integer(t->pp));
        json_object_set_new(params, "tg", json_integer(t->tg));
        json_object_set_new(params, "b", json_integer(t->b));
    }
    json_t *wl = json_pack("{s:s, s:i, s:I, s:I, s:i, s:i, s:i}", "hash", hex, "requests", w->n,
                           "prompt_tokens", (json_int_t)w->prompt_tokens, "output_tokens",
                           (json_int_t)w->output_tokens, "max_prompt", w->max_prompt, "max_output",
                           w->max_output, "skipped", w->skipped);
    json_t *totals =
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:i, s:i, s:b}", "requests",
                  (json_int_t)tot0.requests, "prompt_tokens", (json_int_t)tot0.prompt_tokens,
                  "output_tokens", (json_int_t)tot0.output_tokens, "rows", (json_int_t)tot0.rows,
                  "forwards", (json_int_t)tot0.forwards, "bytes", tot0.bytes, "flops", tot0.flops,
                  "preemptions", (json_int_t)tot0.preemptions, "kv_blocks_peak",
                  tot0.kv_blocks_peak, "kv_blocks_total", tot0.kv_blocks_total, "identical", same);
    json_t *res = json_pack("{s:s, s:s, s:s, s:o, s:O, s:o, s:o, s:o}", "id", id, "kind",
                            kind_names[t->kind], "test", t->name, "params", params, "engine",
                            eng_json, "workload", wl, "totals", totals, "figures", figs);
    if (!res || json_array_append_new(c->results, res)) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
        goto out;
    }
    if (!quiet(c)) {
        static const char *const head[] = {"output_tokens_per_s", "output_tokens_per_s",
                                           "tokens_per_s", "s"};
        json_t *hf = json_object_get(figs, head[t->kind]);
        fprintf(stderr, "%s: %s: %s %.2f ± %.2f (%ld repetitions)\n", tool_prog, id,
                t->kind == KIND_BATCHED ? "S t/s" : "tok/s",
                json_number_value(json_object_get(hf, "mean")),
                json_number_value(json_object_get(hf, "stddev")), r->repetitions);
    }
out:
    llm_bench_workload_free(&own);
    return rc;
}

static int parse_kv_opt(const struct runopts *r, struct llm_backend_opts *bo)
{
    if (!r->kv_cache) return 0;
    if (tool_parse_kv(r->kv_cache, &bo->kv_bytes, &bo->kv_fraction))
        return llm_err_set(LLM_EINVAL, "bad KV cache size '%s'", r->kv_cache);
    return 0;
}

/* The ranks of the job (one unless mpirun started several on a directory of
 * rank files): every rank runs this program's settings in the same order;
 * rank 0 drives each one's steps, the others follow them.  job_agreed: an
 * error every rank has (rank 0 tells it). */
static struct llm_job job;
static int job_agreed;

/* One engine setting: backend, meter, engine, then every test. */
static int run_setting(struct ctx *c, const struct test *tests, int n_tests, long th, long mbt,
                       long seqs)
{
    const struct runopts *r = c->r;
    struct llm_backend_opts bo;
    llm_backend_opts_init(&bo);
    bo.n_threads = (int)th;
    bo.max_batch_tokens = (int)mbt;
    bo.max_seqs = (int)seqs;
    if (r->block_size) bo.block_size = (int)r->block_size;
    bo.max_seq_len = (int)r->max_seq_len;
    int rc = parse_kv_opt(r, &bo);
    if (rc) return rc;
    struct llm_backend *be = NULL;
    struct llm_engine *e = NULL;
    rc = llm_job_backend(&job, r->device ? r->device : "auto", c->m, &bo, &be);
    if (rc) {
        job_agreed = 1;
        return rc;
    }
    if (job.rank != 0) { /* this rank's part of every step rank 0 runs in this setting */
        rc = llm_job_follow(&job, be);
        llm_backend_destroy(be);
        return rc;
    }
    int cuda = be->ops->name && !strcmp(be->ops->name, "cuda");
    c->cuda = cuda;
    if (cuda && !c->tele_state) { /* no NVML: the figures without telemetry */
        c->tele_state = llm_bench_tele_nvml(&c->tele, bo.device) ? -1 : 1;
        if (c->tele_state < 0) llm_err_clear();
    }
    if (!c->have_ceil && !c->o->no_probe) {
        if (cuda) { /* the probe needs device memory the KV pool would hold */
            llm_backend_destroy(be);
            be = NULL;
            rc = llm_bench_probe_cuda(&c->ceil, bo.device);
            if (!rc) rc = llm_backend_create(&be, "cuda", c->m, &bo);
        } else {
            rc = llm_bench_probe_cpu(&c->ceil, 0);
        }
        if (rc) goto out;
        c->have_ceil = 1;
        /* models with 8-bit activations: their products' own rate is the ceiling (W4A8:
         * the fp8 tensor cores take its products of many rows) */
        int qa = c->m->quant.algo;
        int fp8 = qa == LLM_QUANT_FP8 || qa == LLM_QUANT_FP8_PC_PT || qa == LLM_QUANT_W4A8_AWQ;
        int i8 = qa == LLM_QUANT_W8A8_SQ_PC || qa == LLM_QUANT_W8A8_SQ_PC_PT;
        if ((fp8 && c->ceil.flops_fp8 > 0) || (i8 && c->ceil.flops_int8 > 0)) {
            c->ceil.flops = fp8 ? c->ceil.flops_fp8 : c->ceil.flops_int8;
            snprintf(c->ceil.flops_how, sizeof c->ceil.flops_how, "%s",
                     fp8 ? c->ceil.fp8_how : c->ceil.int8_how);
        }
        if (c->o->peak_bw > 0) {
            c->ceil.mem_bw = c->o->peak_bw;
            snprintf(c->ceil.bw_how, sizeof c->ceil.bw_how, "--peak-bw");
        }
        if (c->o->peak_flops > 0) {
            c->ceil.flops = c->o->peak_flops;
            snprintf(c->ceil.flops_how, sizeof c->ceil.flops_how, "--peak-flops");
        }
        if (!quiet(c))
            fprintf(stderr, "%s: ceilings: copy %.2f GB/s (%s), matrix product %.2f GFLOP/s (%s)\n",
                    tool_prog, c->ceil.mem_bw * 1e-9, c->ceil.bw_how, c->ceil.flops * 1e-9,
                    c->ceil.flops_how);
    }
    const struct llm_model_desc *d = &c->m->desc;
    double welem =
        cuda ? (bo.compute_dtype == LLM_DTYPE_F32 ? 4 : 2) : llm_dtype_bits(d->dtype) / 8.0;
    double kv_tok_elems = 2.0 * d->n_layers * d->n_kv_heads * d->head_dim;
    double kvelem = be->n_blocks > 0 ? (double)be->kv_bytes /
                                           ((double)be->n_blocks * be->block_size * kv_tok_elems)
                                     : 4;
    struct llm_bench_cost cost;
    llm_bench_cost_init(&cost, d, welem, kvelem);
    /* quantized linears are read in their stored width (8 or 4 bits; scales and
     * the dense layers llm-quantize leaves, as the lm_head, not counted apart) */
    double qelem = llm_quant_weight_bits(c->m->quant.algo) / 8.0;
    if (qelem > 0) {
        cost.layer_weight_bytes *= qelem / welem;
        cost.expert_bytes *= qelem / welem;
    }
    struct llm_bench_meter *mt = calloc(1, sizeof(*mt));
    if (!mt) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = llm_bench_meter_init(mt, be, &cost))) goto out_mt;
    struct llm_engine_opts eo;
    llm_engine_opts_init(&eo);
    eo.tok = c->tok;
    eo.max_batch_tokens = (int)mbt;
    eo.max_seqs = (int)seqs;
    eo.no_evict = r->no_evict;
    eo.record_token_times = 1;
    if ((rc = llm_engine_create(&e, &mt->be, &eo))) goto out_mt;
    struct llm_engine_info info;
    llm_engine_get_info(e, &info);
    json_t *eng = json_pack(
        "{s:s, s:s, s:s, s:I, s:i, s:i, s:I, s:I, s:i, s:i, s:i, s:i, s:f, s:f, s:f}", "backend",
        be->ops->name, "device", be->device_name, "timing", llm_bench_meter_timing(mt), "threads",
        (json_int_t)th, "n_blocks", info.n_blocks, "block_size", info.block_size, "kv_tokens",
        (json_int_t)info.kv_tokens, "kv_bytes", (json_int_t)info.kv_bytes, "max_batch_tokens",
        info.max_batch_tokens, "max_seqs", info.max_seqs, "max_seq_len", info.max_seq_len,
        "watermark_blocks", info.watermark_blocks, "weight_elem_bytes", welem, "kv_elem_bytes",
        kvelem, "weight_bytes",
        cost.layer_weight_bytes + cost.head_bytes + cost.n_experts * cost.expert_bytes);
    if (!eng || json_object_set_new(eng, "no_evict", json_boolean(r->no_evict))) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
        goto out_e;
    }
    char suffix[96];
    engine_suffix(r, th, mbt, seqs, suffix, sizeof suffix);
    for (int i = 0; i < n_tests && !rc; i++)
        rc = run_test(c, e, mt, &tests[i], suffix, eng);
    json_decref(eng);
out_e:
    llm_engine_free(e);
out_mt:
    free(mt);
out:
    llm_backend_destroy(be);
    return rc;
}

static json_t *model_json(const struct ctx *c, const char *hash)
{
    const struct llm_model_desc *d = &c->m->desc;
    const char *qa = llm_quant_algo_name(c->m->quant.algo),
               *kv = llm_kv_quant_name(c->m->quant.kv_algo);
    return json_pack(
        "{s:s, s:o, s:s, s:s, s:s, s:o, s:o, s:I, s:I, s:I, s:i, s:i, s:i, s:i, s:I, s:I}", "path",
        c->o->model, "hash", str_or_null(hash), "arch", llm_arch_name(d->arch), "hf_arch",
        d->hf_arch, "dtype", llm_dtype_name(d->dtype), "quant_algo", str_or_null(qa),
        "kv_cache_quant_algo", str_or_null(kv), "n_params", (json_int_t)llm_desc_n_params(d),
        "vocab_size", (json_int_t)d->vocab_size, "hidden", (json_int_t)d->hidden, "n_layers",
        d->n_layers, "n_heads", d->n_heads, "n_kv_heads", d->n_kv_heads, "head_dim", d->head_dim,
        "intermediate", (json_int_t)d->intermediate, "max_pos", (json_int_t)d->max_pos);
}

static int write_text(const char *path, const char *text)
{
    struct llm_out out;
    int rc = llm_out_open(&out, path);
    if (rc) return rc;
    rc = llm_out_write(&out, text, strlen(text));
    if (!rc)
        rc = llm_out_commit(&out);
    else
        llm_out_abort(&out);
    return rc;
}

/* Compare doc with the baseline file; prints every regression.  Returns the
 * exit code (0, 3) or a negative error. */
static int gate(const struct opts *o, const json_t *doc)
{
    json_t *base = NULL;
    int rc = llm_bench_doc_load(o->baseline, &base);
    if (rc) return rc;
    struct llm_bench_cmp *cmp = NULL;
    size_t n = 0;
    int reg = llm_bench_compare(base, doc, o->max_regression, &cmp, &n);
    json_decref(base);
    if (reg < 0) return reg;
    if (n == 0) {
        free(cmp);
        return llm_err_set(LLM_ENOTFOUND, "'%s': no test of this run is in the baseline",
                           o->baseline);
    }
    for (size_t i = 0; i < n; i++) {
        if (!cmp[i].regressed) continue;
        fprintf(stderr, "%s: regression: %s: %s %.6g -> %.6g (%s is better), %.1f%% worse > %g%%\n",
                tool_prog, cmp[i].test, cmp[i].figure, cmp[i].base, cmp[i].cur,
                llm_bench_better_name(cmp[i].better), cmp[i].change_pct, o->max_regression);
    }
    if (o->verbosity >= 0)
        fprintf(stderr, "%s: baseline '%s': %zu figures compared, %d regressed by more than %g%%\n",
                tool_prog, o->baseline, n, reg, o->max_regression);
    free(cmp);
    return reg > 0 ? EXIT_REGRESSION : 0;
}

static void iso_now(char *buf, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int bench(struct opts *o, int *exit_code)
{
    struct runopts *r = &o->r;
    struct ctx c = {.o = o, .r = r};
    json_t *doc = NULL, *replay = NULL;
    struct test *tests = NULL;
    int n_tests = 0, rc;
    char mhex[17], dhex[17];
    int have_mhash = 0, have_dhash = 0, ds_found = r->ds_format;

    if (o->replay) {
        if ((rc = llm_bench_doc_load(o->replay, &replay))) return rc;
        c.replay_doc = replay;
        int fmt = o->fmt;
        if ((rc = runopts_from_json(r, json_object_get(replay, "run"), o->replay))) goto out;
        o->fmt = fmt;
        if (!o->model)
            o->model = json_string_value(json_object_get(json_object_get(replay, "model"), "path"));
        if (!o->model) {
            rc = llm_err_set(LLM_EFORMAT, "'%s': no model path; name the MODEL", o->replay);
            goto out;
        }
    }
    if ((rc = llm_job_start(&job, o->model)) ||
        (rc = llm_job_open_model(&job, o->model, o->no_verify ? LLM_MODEL_NO_VERIFY : 0, &c.m))) {
        job_agreed = 1;
        goto out;
    }
    uint64_t mh;
    if (llm_bench_model_hash(c.m, &mh) == 0) {
        llm_bench_hex64(mh, mhex);
        have_mhash = 1;
    }
    llm_err_clear();
    if (replay) {
        const char *rh =
            json_string_value(json_object_get(json_object_get(replay, "model"), "hash"));
        if (rh && (!have_mhash || strcmp(rh, mhex))) {
            rc = llm_err_set(LLM_EINVAL, "replay: model '%s' has hash %s, '%s' recorded %s",
                             o->model, have_mhash ? mhex : "none", o->replay, rh);
            goto out;
        }
    }
    if (r->tokenizer) {
        if ((rc = llm_tok_load_dir(&c.tok, r->tokenizer))) goto out;
    } else if (c.m->tokenizer_json) {
        if ((rc = llm_tok_load(&c.tok, c.m->tokenizer_json, c.m->tokenizer_config, o->model)))
            goto out;
    }
    int64_t vocab = c.m->desc.vocab_size;

    if (r->mode == MODE_THROUGHPUT || r->mode == MODE_LATENCY) {
        if (r->num_requests < 0 && !r->dataset)
            r->num_requests = r->mode == MODE_THROUGHPUT ? 128 : 16;
        if (r->dataset) {
            uint64_t h;
            if ((rc = llm_bench_file_hash(r->dataset, &h))) goto out;
            llm_bench_hex64(h, dhex);
            have_dhash = 1;
            if (replay) {
                const char *rh = json_string_value(json_object_get(
                    json_object_get(json_object_get(replay, "run"), "workload"), "hash"));
                if (rh && strcmp(rh, dhex)) {
                    rc = llm_err_set(LLM_EINVAL, "replay: dataset '%s' has hash %s, recorded %s",
                                     r->dataset, dhex, rh);
                    goto out;
                }
            }
            struct llm_bench_load_opts lo = {
                .format = r->ds_format,
                .tok = c.tok,
                .vocab = vocab,
                .max_requests = r->num_requests > 0 ? (int)r->num_requests : 0,
                .default_output = (int)r->output_len,
                .max_context = r->max_seq_len > 0 ? (int)r->max_seq_len : (int)c.m->desc.max_pos};
            if ((rc = llm_bench_workload_load(&c.base, r->dataset, &lo, &ds_found))) goto out;
            if (c.base.skipped && !quiet(&c))
                fprintf(stderr,
                        "%s: '%s': %d entries skipped (fewer than two turns, empty, or "
                        "longer than the context)\n",
                        tool_prog, r->dataset, c.base.skipped);
        } else {
            struct llm_bench_synth s;
            llm_bench_synth_init(&s);
            s.n_requests = (int)r->num_requests;
            s.input_mean = r->input_len;
            s.input_std = r->input_std;
            s.output_mean = r->output_len;
            s.output_std = r->output_std;
            s.seed = r->seed;
            s.vocab = vocab;
            if ((rc = llm_bench_workload_synth(&c.base, &s))) goto out;
        }
    }
    if (o->save_workload) {
        if (r->mode == MODE_SWEEP) {
            rc = llm_err_set(LLM_EINVAL, "--save-workload: the sweep mode has no single workload");
            goto out;
        }
        if ((rc = llm_bench_workload_save(&c.base, o->save_workload))) goto out;
    }
    if ((rc = make_tests(r, &tests, &n_tests))) goto out;
    if (n_tests == 0) {
        rc = llm_err_set(LLM_EINVAL, "sweep: no tests (every length is 0)");
        goto out;
    }
    c.results = json_array();
    if (!c.results) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
        goto out;
    }
    c.have_ceil = 0;
    if (o->no_probe && (o->peak_bw > 0 || o->peak_flops > 0)) {
        c.ceil.mem_bw = o->peak_bw;
        c.ceil.flops = o->peak_flops;
        snprintf(c.ceil.bw_how, sizeof c.ceil.bw_how, "%s", o->peak_bw > 0 ? "--peak-bw" : "");
        snprintf(c.ceil.flops_how, sizeof c.ceil.flops_how, "%s",
                 o->peak_flops > 0 ? "--peak-flops" : "");
        c.have_ceil = 1;
    }
    if (o->step_trace && job.rank == 0) { /* rank 0 runs the steps; the others follow */
        if (!(c.trace = fopen(o->step_trace, "w"))) {
            rc = llm_err_set(LLM_EIO, "%s: %s", o->step_trace, strerror(errno));
            goto out;
        }
        if ((rc = llm_bench_trace_header(c.trace))) goto out;
    }
    struct ilist one = {.v = {0}, .n = 1};
    const struct ilist *th = r->threads.n ? &r->threads : &one;
    const struct ilist *mb = r->mbt.n ? &r->mbt : &one;
    const struct ilist *sq = r->seqs.n ? &r->seqs : &one;
    for (int a = 0; a < th->n && !rc; a++)
        for (int b = 0; b < mb->n && !rc; b++)
            for (int d = 0; d < sq->n && !rc; d++)
                rc = run_setting(&c, tests, n_tests, th->v[a], mb->v[b], sq->v[d]);
    if (rc || job.rank != 0) goto out; /* rank 0 writes the results */

    char created[32];
    iso_now(created, sizeof created);
    json_t *argv = json_array();
    for (int i = 0; i < o->argc; i++)
        json_array_append_new(argv, json_string(o->argv[i]));
    json_t *ceil = c.have_ceil ? json_pack("{s:f, s:f, s:s, s:s}", "mem_bw", c.ceil.mem_bw, "flops",
                                           c.ceil.flops, "bw_how", c.ceil.bw_how, "flops_how",
                                           c.ceil.flops_how)
                               : json_null();
    doc = json_pack("{s:s, s:i, s:s, s:o, s:o, s:o, s:o, s:o, s:O}", "format", LLM_BENCH_FORMAT,
                    "version", LLM_BENCH_VERSION, "created", created, "argv", argv, "env",
                    llm_bench_env(c.cuda, 0), "model", model_json(&c, have_mhash ? mhex : NULL),
                    "run", runopts_json(r, have_dhash ? dhex : NULL, ds_found), "ceilings", ceil,
                    "results", c.results);
    if (!doc) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory (result document)");
        goto out;
    }
    json_t *gpu = json_object_get(json_object_get(doc, "env"), "gpu");
    if (json_is_object(gpu) && c.tele_state) {
        struct llm_bench_tele_limits lim = {NAN, NAN, NAN};
        if (c.tele_state > 0 && c.tele.limits) c.tele.limits(c.tele.ctx, &lim);
        json_object_set_new(gpu, "telemetry", json_string(c.tele_state > 0 ? "nvml" : "none"));
        if (isfinite(lim.power_limit_w))
            json_object_set_new(gpu, "power_limit_w", json_real(lim.power_limit_w));
        if (isfinite(lim.sm_max_mhz))
            json_object_set_new(gpu, "sm_clock_max_mhz", json_real(lim.sm_max_mhz));
        if (isfinite(lim.mem_max_mhz))
            json_object_set_new(gpu, "mem_clock_max_mhz", json_real(lim.mem_max_mhz));
    }
    char *text = llm_bench_render(doc, o->fmt);
    if (!text) {
        rc = llm_errcode() ? llm_errcode() : LLM_ENOMEM;
        goto out;
    }
    rc = write_text(o->out_path, text);
    free(text);
    if (rc) goto out;
    if (o->baseline) {
        int g = gate(o, doc);
        if (g < 0)
            rc = g;
        else
            *exit_code = g;
    }
out:
    if (c.trace) {
        int bad = ferror(c.trace);
        if (fclose(c.trace)) bad = 1;
        if (bad && !rc)
            rc = llm_err_set(LLM_EIO, "%s: writing the step trace failed", o->step_trace);
    }
    if (c.tele_state > 0) llm_bench_tele_close(&c.tele);
    free(tests);
    json_decref(doc);
    json_decref(c.results);
    json_decref(replay);
    llm_bench_workload_free(&c.base);
    llm_tok_free(c.tok);
    llm_model_close(c.m);
    return rc;
}

/* ---- main ----------------------------------------------------------------------------- */

/* The format a file name's extension names (.md, .csv, .json, .jsonl), else md. */
static int fmt_for_path(const char *path)
{
    const char *dot = path ? strrchr(path, '.') : NULL;
    if (!dot || strchr(dot, '/')) return LLM_BENCH_MD;
    int f = llm_bench_fmt_from_name(dot + 1);
    return f >= 0 ? f : LLM_BENCH_MD;
}

static int usage_list(const char *opt, const char *arg)
{
    return tool_usage_error("%s: bad value '%s' (a comma-separated list of counts)", opt, arg);
}

int main(int argc, char **argv)
{
    tool_init("llm-bench");
    struct opts o;
    memset(&o, 0, sizeof o);
    runopts_init(&o.r);
    o.fmt = -1;
    o.max_regression = 5.0;
    o.argv = argv;
    o.argc = argc;
    static const struct option lo[] = {
        {"num-requests", required_argument, NULL, OPT_NUMREQ},
        {"input-len", required_argument, NULL, OPT_INLEN},
        {"output-len", required_argument, NULL, OPT_OUTLEN},
        {"input-std", required_argument, NULL, OPT_INSTD},
        {"output-std", required_argument, NULL, OPT_OUTSTD},
        {"dataset", required_argument, NULL, OPT_DATASET},
        {"dataset-format", required_argument, NULL, OPT_DSFMT},
        {"tokenizer", required_argument, NULL, OPT_TOKENIZER},
        {"seed", required_argument, NULL, OPT_SEED},
        {"honor-eos", no_argument, NULL, OPT_HONOR_EOS},
        {"temperature", required_argument, NULL, OPT_TEMP},
        {"top-k", required_argument, NULL, OPT_TOPK},
        {"top-p", required_argument, NULL, OPT_TOPP},
        {"n-prompt", required_argument, NULL, 'p'},
        {"n-gen", required_argument, NULL, 'n'},
        {"pg", required_argument, NULL, OPT_PG},
        {"npp", required_argument, NULL, OPT_NPP},
        {"ntg", required_argument, NULL, OPT_NTG},
        {"npl", required_argument, NULL, OPT_NPL},
        {"repetitions", required_argument, NULL, 'r'},
        {"warmup", required_argument, NULL, 'w'},
        {"warmup-requests", required_argument, NULL, OPT_WARMREQ},
        {"device", required_argument, NULL, OPT_DEVICE},
        {"threads", required_argument, NULL, 't'},
        {"max-batch-tokens", required_argument, NULL, 'b'},
        {"max-seqs", required_argument, NULL, OPT_SEQS},
        {"no-evict", no_argument, NULL, OPT_NOEVICT},
        {"kv-cache", required_argument, NULL, OPT_KV},
        {"block-size", required_argument, NULL, OPT_BLOCK},
        {"max-seq-len", required_argument, NULL, OPT_SEQLEN},
        {"peak-bw", required_argument, NULL, OPT_PEAKBW},
        {"peak-flops", required_argument, NULL, OPT_PEAKFL},
        {"no-probe", no_argument, NULL, OPT_NOPROBE},
        {"format", required_argument, NULL, 'f'},
        {"output-format", required_argument, NULL, 'f'}, /* the older name */
        {"output", required_argument, NULL, 'o'},
        {"replay", required_argument, NULL, OPT_REPLAY},
        {"baseline", required_argument, NULL, OPT_BASELINE},
        {"max-regression", required_argument, NULL, OPT_MAXREG},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"save-workload", required_argument, NULL, OPT_SAVE_WL},
        {"step-trace", required_argument, NULL, OPT_TRACE},
        {"version", no_argument, NULL, OPT_VERSION},
        {"no-verify", no_argument, NULL, OPT_NO_VERIFY},
        {NULL, 0, NULL, 0},
    };
    struct runopts *r = &o.r;
    int ch;
    long v;
    double d;
    uint64_t u;
    while ((ch = getopt_long(argc, argv, "p:n:r:w:t:b:f:o:O:qvh", lo, NULL)) != -1) {
        switch (ch) {
        case OPT_NUMREQ:
            if (tool_parse_int(optarg, 1, INT32_MAX, &r->num_requests))
                return tool_usage_error("--num-requests: bad count '%s'", optarg);
            break;
        case OPT_INLEN:
        case OPT_OUTLEN:
            if (tool_parse_int(optarg, 1, 1 << 24, &v))
                return tool_usage_error("%s: bad length '%s'",
                                        ch == OPT_INLEN ? "--input-len" : "--output-len", optarg);
            *(ch == OPT_INLEN ? &r->input_len : &r->output_len) = (double)v;
            break;
        case OPT_INSTD:
        case OPT_OUTSTD:
            if (tool_parse_double(optarg, 0, 1 << 24, &d))
                return tool_usage_error("%s: bad standard deviation '%s'",
                                        ch == OPT_INSTD ? "--input-std" : "--output-std", optarg);
            *(ch == OPT_INSTD ? &r->input_std : &r->output_std) = d;
            break;
        case OPT_DATASET:
            set_str(&r->dataset, optarg);
            break;
        case OPT_DSFMT:
            if ((r->ds_format = llm_bench_dataset_from_name(optarg)) < 0)
                return tool_usage_error("--dataset-format: unknown format '%s' (auto, trtllm, "
                                        "llm-run, sharegpt)",
                                        optarg);
            break;
        case OPT_TOKENIZER:
            set_str(&r->tokenizer, optarg);
            break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(optarg, &end, 10);
            if (end == optarg || *end || errno || optarg[0] == '-' || s > INT64_MAX)
                return tool_usage_error("--seed: bad seed '%s'", optarg);
            r->seed = s;
            break;
        }
        case OPT_HONOR_EOS:
            r->honor_eos = 1;
            break;
        case OPT_NOEVICT:
            r->no_evict = 1;
            break;
        case OPT_TEMP:
            if (tool_parse_double(optarg, 0, 100, &r->temperature))
                return tool_usage_error("--temperature: bad value '%s'", optarg);
            break;
        case OPT_TOPK:
            if (tool_parse_int(optarg, 0, INT32_MAX, &r->top_k))
                return tool_usage_error("--top-k: bad value '%s'", optarg);
            break;
        case OPT_TOPP:
            if (tool_parse_double(optarg, 1e-9, 1, &r->top_p))
                return tool_usage_error("--top-p: bad value '%s'", optarg);
            break;
        case 'p':
            if (parse_list(optarg, 0, 1 << 24, &r->p)) return usage_list("-p", optarg);
            break;
        case 'n':
            if (parse_list(optarg, 0, 1 << 24, &r->n)) return usage_list("-n", optarg);
            break;
        case OPT_PG: {
            struct ilist pair = {.n = 0};
            if (parse_list(optarg, 1, 1 << 24, &pair) || pair.n != 2 || r->n_pg == LIST_MAX)
                return tool_usage_error("--pg: bad value '%s' (PP,TG)", optarg);
            r->pg[r->n_pg][0] = pair.v[0];
            r->pg[r->n_pg][1] = pair.v[1];
            r->n_pg++;
            break;
        }
        case OPT_NPP:
            if (parse_list(optarg, 1, 1 << 24, &r->npp)) return usage_list("--npp", optarg);
            break;
        case OPT_NTG:
            if (parse_list(optarg, 1, 1 << 24, &r->ntg)) return usage_list("--ntg", optarg);
            break;
        case OPT_NPL:
            if (parse_list(optarg, 1, 1 << 20, &r->npl)) return usage_list("--npl", optarg);
            break;
        case 'r':
            if (tool_parse_int(optarg, 1, 1000000, &r->repetitions))
                return tool_usage_error("-r: bad count '%s'", optarg);
            break;
        case 'w':
            if (tool_parse_int(optarg, 0, 1000000, &r->warmup))
                return tool_usage_error("-w: bad count '%s'", optarg);
            break;
        case OPT_WARMREQ:
            if (tool_parse_int(optarg, 1, INT32_MAX, &r->warmup_requests))
                return tool_usage_error("--warmup-requests: bad count '%s'", optarg);
            break;
        case OPT_DEVICE:
            if (strcmp(optarg, "auto") && strcmp(optarg, "cpu") && strcmp(optarg, "cuda"))
                return tool_usage_error("--device: unknown device '%s' (auto, cpu, cuda)", optarg);
            set_str(&r->device, optarg);
            break;
        case 't':
            if (parse_list(optarg, 1, 4096, &r->threads)) return usage_list("-t", optarg);
            break;
        case 'b':
            if (parse_list(optarg, 1, 1 << 24, &r->mbt)) return usage_list("-b", optarg);
            break;
        case OPT_SEQS:
            if (parse_list(optarg, 1, 1 << 20, &r->seqs)) return usage_list("--max-seqs", optarg);
            break;
        case OPT_KV: {
            double f;
            if (tool_parse_kv(optarg, &u, &f))
                return tool_usage_error("--kv-cache: bad size '%s' (2GiB, 512M or a fraction "
                                        "such as 0.5)",
                                        optarg);
            set_str(&r->kv_cache, optarg);
            break;
        }
        case OPT_BLOCK:
            if (tool_parse_int(optarg, 1, 1 << 16, &r->block_size))
                return tool_usage_error("--block-size: bad value '%s'", optarg);
            break;
        case OPT_SEQLEN:
            if (tool_parse_int(optarg, 1, INT32_MAX, &r->max_seq_len))
                return tool_usage_error("--max-seq-len: bad value '%s'", optarg);
            break;
        case OPT_PEAKBW:
            if (parse_rate(optarg, &o.peak_bw))
                return tool_usage_error("--peak-bw: bad rate '%s' (e.g. 2.97T)", optarg);
            break;
        case OPT_PEAKFL:
            if (parse_rate(optarg, &o.peak_flops))
                return tool_usage_error("--peak-flops: bad rate '%s' (e.g. 774T)", optarg);
            break;
        case OPT_NOPROBE:
            o.no_probe = 1;
            break;
        case OPT_NO_VERIFY:
            o.no_verify = 1;
            break;
        case 'f':
            if ((o.fmt = llm_bench_fmt_from_name(optarg)) < 0)
                return tool_usage_error("-f: unknown format '%s' (md, csv, json, jsonl)", optarg);
            break;
        case 'o':
            /* -o was the format once: a bare format name is refused rather
             * than taken as a file name */
            if (llm_bench_fmt_from_name(optarg) >= 0)
                return tool_usage_error("-o '%s': -o names the output file; the format is "
                                        "-f %s (a file of that name: -o ./%s)",
                                        optarg, optarg, optarg);
            o.out_path = optarg;
            break;
        case 'O': /* the older spelling of -o */
            o.out_path = optarg;
            break;
        case OPT_REPLAY:
            o.replay = optarg;
            break;
        case OPT_SAVE_WL:
            o.save_workload = optarg;
            break;
        case OPT_TRACE:
            o.step_trace = optarg;
            break;
        case OPT_BASELINE:
            o.baseline = optarg;
            break;
        case OPT_MAXREG:
            if (tool_parse_double(optarg, 0, 1e9, &o.max_regression))
                return tool_usage_error("--max-regression: bad percentage '%s'", optarg);
            break;
        case 'q':
            o.verbosity = -1;
            break;
        case 'v':
            o.verbosity = 1;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return TOOL_EXIT_OK;
        case OPT_VERSION:
            return tool_version();
        default:
            return tool_usage_error("unknown or incomplete option");
        }
    }
    llm_log_set_level(o.verbosity < 0   ? LLM_LOG_ERROR
                      : o.verbosity > 0 ? LLM_LOG_DEBUG
                                        : LLM_LOG_WARN);
    if (o.fmt < 0) o.fmt = fmt_for_path(o.out_path);
    if (o.out_path && o.save_workload && strcmp(o.out_path, "-") &&
        !strcmp(o.out_path, o.save_workload))
        return tool_usage_error("-o and --save-workload name the same file '%s'", o.out_path);
    /* every output can be written before anything is loaded or run */
    int crc = llm_out_check(o.out_path);
    if (!crc) crc = llm_out_check(o.save_workload);
    if (!crc) crc = llm_out_check(o.step_trace);
    if (crc) return tool_fail(crc);
    int npos = argc - optind;
    char **pos = argv + optind;
    int exit_code = TOOL_EXIT_OK;
    if (npos >= 1 && !strcmp(pos[0], "compare")) {
        if (npos != 2) return tool_usage_error("compare: expected one RESULT.json");
        if (!o.baseline) return tool_usage_error("compare: --baseline OLD.json is required");
        json_t *doc = NULL;
        int rc = llm_bench_doc_load(pos[1], &doc);
        if (!rc) {
            rc = gate(&o, doc);
            json_decref(doc);
        }
        return rc < 0 ? tool_fail(rc) : rc;
    }
    if (npos >= 1 && !strcmp(pos[0], "show")) {
        if (npos != 2) return tool_usage_error("show: expected one RESULT.json");
        json_t *doc = NULL;
        int rc = llm_bench_doc_load(pos[1], &doc);
        char *text = NULL;
        if (!rc) {
            text = llm_bench_render(doc, o.fmt);
            rc = text ? write_text(o.out_path, text) : LLM_ENOMEM;
        }
        free(text);
        json_decref(doc);
        return rc ? tool_fail(rc) : TOOL_EXIT_OK;
    }
    if (o.replay) {
        if (npos > 1) return tool_usage_error("--replay takes at most one MODEL");
        o.model = npos == 1 ? pos[0] : NULL;
    } else {
        if (npos == 0) return tool_usage_error("missing mode (throughput, latency or sweep)");
        r->mode = mode_from_name(pos[0]);
        if (r->mode < 0 || r->mode >= MODE_COMPARE)
            return tool_usage_error("unknown mode '%s' (throughput, latency, sweep, compare, show)",
                                    pos[0]);
        if (npos != 2) return tool_usage_error("%s: expected one MODEL", pos[0]);
        o.model = pos[1];
        if (r->mode == MODE_SWEEP) {
            int batched = r->npp.n || r->ntg.n || r->npl.n;
            if (batched) {
                if (!r->npp.n) r->npp.v[r->npp.n++] = 128;
                if (!r->ntg.n) r->ntg.v[r->ntg.n++] = 128;
                if (!r->npl.n) r->npl.v[r->npl.n++] = 1;
            }
            if (!r->p.n && !r->n.n && !r->n_pg && !batched) {
                r->p.v[r->p.n++] = 512;
                r->n.v[r->n.n++] = 128;
            }
            if ((size_t)r->npp.n * r->ntg.n * r->npl.n > 4096)
                return tool_usage_error("sweep: more than 4096 batched tests");
        } else if (r->p.n || r->n.n || r->n_pg || r->npp.n || r->ntg.n || r->npl.n) {
            return tool_usage_error("-p, -n, --pg, --npp, --ntg, --npl are for the sweep mode");
        }
        if ((r->dataset || o.save_workload) && r->mode == MODE_SWEEP)
            return tool_usage_error("--dataset and --save-workload are for the throughput and "
                                    "latency modes");
    }
    int rc = bench(&o, &exit_code);
    runopts_free(r);
    if (rc) {
        if (!(job_agreed && llm_job_quiet_error(&job))) tool_fail(rc);
        /* an error of one rank mid-run: the others may wait in a step */
        if (job.size > 1 && !job_agreed) llm_comm_abort(job.comm, TOOL_EXIT_FAIL);
        llm_job_close(&job);
        return TOOL_EXIT_FAIL;
    }
    llm_job_close(&job);
    return exit_code;
}
