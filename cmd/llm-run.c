/* llm-run - batch offline generation: JSONL requests in, JSONL answers out.
 *
 * Design: a thin shell over libllm.  The model, its tokenizer and a backend
 * are opened here; the in-flight batching engine (lib/sched/engine.c) and
 * the streaming batch runner (lib/sched/runner.c) do the work, so the
 * tests exercise the very loop this tool runs.  Answers are appended to the
 * output and flushed line by line instead of being written to a temporary
 * file and renamed: a killed run must keep every answer it finished, which
 * is what --resume builds on.  Request-level problems become error lines
 * and the run goes on; it exits 3 when any request was answered by an
 * error line, 0 when none was, so a script can tell without parsing the
 * output.  Only a model, backend or I/O failure ends the run (exit 1).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "llm/backend.h"
#include "llm/batch.h"
#include "llm/dist.h"
#include "llm/engine.h"
#include "llm/engine_artifact.h"
#include "llm/err.h"
#include "llm/log.h"
#include "llm/model.h"
#include "llm/tokenizer.h"
#include "llm_build_config.h"
#include "tool.h"

static const char usage_text[] =
    "Usage: llm-run [OPTIONS] MODEL [INPUT.jsonl]\n"
    "Generate completions for each request line of INPUT ('-' or absent: standard\n"
    "input) with the model artifact MODEL; one JSON answer line per request.  MODEL\n"
    "may be an engine from llm-build, whose limits are then the defaults.\n"
    "\n"
    "Input and output:\n"
    "  -o, --output FILE          write answers to FILE (default: standard output)\n"
    "      --ordered              answers in input order (default: as they finish)\n"
    "      --resume               skip requests already answered in FILE, append the rest\n"
    "Engine:\n"
    "      --device NAME          auto, cpu or cuda (default: auto)\n"
    "      --no-verify            do not check the model's tensor checksums while loading\n"
    "      --threads N            CPU worker threads (default: the cores no other process\n"
    "                             is busy on)\n"
    "      --kv-cache SIZE|FRAC   KV cache size (2GiB, 512M) or fraction of memory (0.5)\n"
    "      --block-size N         tokens per KV block (default: 32)\n"
    "      --max-batch-tokens N   tokens in one forward step (default: backend's)\n"
    "      --max-seqs N           sequences running at once (default: backend's)\n"
    "      --no-evict             admit a request only when the KV cache holds it and every\n"
    "                             running one at max_tokens: no preemption, no recompute\n"
    "      --max-seq-len N        context length (default: the model's)\n"
    "Defaults for fields a request leaves out (over the model's generation_config):\n"
    "      --max-tokens N         (default: generation_config max_new_tokens, else 256)\n"
    "      --temperature T        (0: greedy; default: greedy unless do_sample)\n"
    "      --top-k K  --top-p P  --min-p P  --repetition-penalty R\n"
    "      --seed N               mixed with each request's id (default: 0)\n"
    "      --ignore-eos           do not stop at the model's end-of-sequence token\n"
    "Other:\n"
    "  -q, --quiet                only errors on standard error\n"
    "  -v, --verbose              debug detail on standard error\n"
    "  -h, --help                 print this help and exit\n"
    "      --version              print the version and exit\n"
    "\n"
    "Exit status: 0 every request answered, 3 every request answered but some with an\n"
    "error line, 1 a fatal error (model, backend, input or output), 2 a usage error.\n";

/* Every line answered, at least one by an error line. */
enum { EXIT_REQUEST_ERRORS = 3 };

enum {
    OPT_ORDERED = 256,
    OPT_RESUME,
    OPT_DEVICE,
    OPT_THREADS,
    OPT_KV,
    OPT_BLOCK,
    OPT_MBT,
    OPT_SEQS,
    OPT_NOEVICT,
    OPT_SEQLEN,
    OPT_MAXTOK,
    OPT_TEMP,
    OPT_TOPK,
    OPT_TOPP,
    OPT_MINP,
    OPT_REP,
    OPT_SEED,
    OPT_IGNORE_EOS,
    OPT_VERSION,
    OPT_NO_VERIFY,
};

struct opts {
    const char *model, *input, *output, *device;
    int ordered, resume, verbosity, no_evict, no_verify;
    long threads, block_size, max_batch_tokens, max_seqs, max_seq_len;
    uint64_t kv_bytes;
    double kv_fraction;
    /* request defaults given on the command line (flag: given) */
    long max_tokens, top_k;
    double temperature, top_p, min_p, rep;
    uint64_t seed;
    int ignore_eos;
    int has_max_tokens, has_top_k, has_temperature, has_top_p, has_min_p, has_rep;
};

/* "0.5", "1" (a plain number up to 1): a fraction; "2GiB", "512M",
 * "1000000": bytes. */
static int parse_kv(const char *s, struct opts *o)
{
    return tool_parse_kv(s, &o->kv_bytes, &o->kv_fraction);
}

/* ---- progress line --------------------------------------------------------- */

struct progress {
    int tty;
    double last;
    int shown;
};

static void fmt_eta(char *buf, size_t cap, double s)
{
    if (!(s >= 0) || s > 1e7) {
        snprintf(buf, cap, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

static int on_progress(void *ctx, const struct llm_run_progress *p)
{
    struct progress *pg = ctx;
    double now = llm_engine_now();
    if (!pg->tty || now - pg->last < 0.25) return 0;
    pg->last = now;
    double tps = p->elapsed > 0 ? (double)p->completion_tokens / p->elapsed : 0;
    char eta[32] = "?";
    if (p->total > 0 && p->done > 0)
        fmt_eta(eta, sizeof(eta), p->elapsed / p->done * (p->total - p->done));
    char total[32];
    if (p->total >= 0)
        snprintf(total, sizeof(total), "%ld", p->total);
    else
        snprintf(total, sizeof(total), "?");
    char kv[32] = "";
    if (p->step && p->step->kv_blocks_total > 0)
        snprintf(kv, sizeof(kv), ", KV %d%%",
                 (int)(100.0 * p->step->kv_blocks_used / p->step->kv_blocks_total));
    fprintf(stderr, "\r\033[K%s: %ld/%s done, %.1f tok/s, ETA %s%s", tool_prog, p->done, total, tps,
            eta, kv);
    fflush(stderr);
    pg->shown = 1;
    return 0;
}

/* ---- main ------------------------------------------------------------------- */

static const char *model_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

/* Open the answers file before anything slow, without truncating it yet:
 * a bad path fails at once, and a failure before the first answer leaves
 * an existing file as it was (the runner truncates it when it starts).
 * *created: the file did not exist (removed again on such a failure). */
static int open_output(const char *path, int append, FILE **fp, int *created)
{
    struct stat st;
    *fp = NULL;
    *created = 0;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return llm_err_set(LLM_EINVAL, "unable to create '%s': it is a folder", path);
    int flags = O_WRONLY | O_CLOEXEC | (append ? O_APPEND : 0);
    int fd = open(path, flags | O_CREAT | O_EXCL, 0666);
    if (fd >= 0)
        *created = 1;
    else if (errno == EEXIST)
        fd = open(path, flags);
    if (fd < 0) return llm_err_set(LLM_EIO, "unable to create '%s': %s", path, strerror(errno));
    *fp = fdopen(fd, append ? "ab" : "wb");
    if (!*fp) {
        close(fd);
        if (*created) unlink(path);
        return llm_err_set(LLM_ENOMEM, "out of memory");
    }
    return 0;
}

/* The ranks of a job (one, unless started by mpirun on a directory of rank
 * files); *agreed: an error every rank has, or none. */
static struct llm_job job;
static int job_agreed;

/* The command line's backend settings over bo's (an engine's limits or the
 * defaults): the same on every rank. */
static void apply_backend_opts(const struct opts *o, struct llm_backend_opts *bo)
{
    if (o->threads) bo->n_threads = (int)o->threads;
    bo->kv_bytes = o->kv_bytes;
    bo->kv_fraction = o->kv_fraction;
    if (o->block_size) bo->block_size = (int)o->block_size;
    if (o->max_batch_tokens) bo->max_batch_tokens = (int)o->max_batch_tokens;
    if (o->max_seqs) bo->max_seqs = (int)o->max_seqs;
    if (o->max_seq_len) bo->max_seq_len = (int)o->max_seq_len;
}

/* mpirun ends the other ranks with SIGTERM when one dies: say so in one
 * line (the answers already written are complete lines). */
static char stop_line[160];
static void on_stop(int sig)
{
    (void)sig;
    ssize_t w = write(STDERR_FILENO, stop_line, strlen(stop_line));
    (void)w;
    _exit(TOOL_EXIT_FAIL);
}

/* A rank other than 0: its part of every step rank 0 announces. */
static int follow(const struct opts *o)
{
    struct llm_model *m = NULL;
    struct llm_backend *be = NULL;
    int rc = llm_job_open_model(&job, o->model, o->no_verify ? LLM_MODEL_NO_VERIFY : 0, &m);
    if (!rc) {
        struct llm_backend_opts bo;
        llm_backend_opts_init(&bo);
        apply_backend_opts(o, &bo);
        rc = llm_job_backend(&job, o->device, m, &bo, &be);
    }
    job_agreed = rc != 0;
    if (!rc && (rc = llm_job_follow(&job, be))) {
        /* rank 0 and the others wait on this rank in the middle of a step */
        tool_fail(rc);
        llm_comm_abort(job.comm, TOOL_EXIT_FAIL);
    }
    llm_backend_destroy(be);
    llm_model_close(m);
    return rc;
}

static int run(const struct opts *o, long *errors)
{
    FILE *in = stdin, *out = NULL;
    const char *in_name = "-";
    int created = 0, started = 0;
    int rc = llm_job_start(&job, o->model);
    if (rc) {
        job_agreed = 1;
        return rc;
    }
    if (job.size > 1) {
        snprintf(stop_line, sizeof stop_line, "llm-run: rank %d: stopped: the job is ending "
                 "(another rank ended or the job was cancelled)\n", job.rank);
        signal(SIGTERM, on_stop);
    }
    if (job.rank != 0) return follow(o);
    if (o->output && strcmp(o->output, "-") &&
        (rc = open_output(o->output, o->resume, &out, &created)))
        return rc;
    struct llm_model *m = NULL;
    struct llm_tokenizer *tok = NULL;
    struct llm_backend *be = NULL;
    struct llm_engine *e = NULL;
    if (o->input && strcmp(o->input, "-")) {
        in = fopen(o->input, "rb");
        if (!in) {
            in = stdin;
            rc = llm_err_set(LLM_EIO, "unable to open '%s': %s", o->input, strerror(errno));
            goto out;
        }
        in_name = o->input;
    }
    rc = llm_job_open_model(&job, o->model, o->no_verify ? LLM_MODEL_NO_VERIFY : 0, &m);
    if (rc) {
        job_agreed = 1;
        goto out;
    }
    if (m->tokenizer_json) {
        rc = llm_tok_load(&tok, m->tokenizer_json, m->tokenizer_config, o->model);
        if (rc) {
            llm_err_wrap(rc, "'%s': tokenizer", o->model);
            goto out;
        }
    } else {
        llm_warn("'%s' holds no tokenizer: only 'input_ids' prompts, no text in answers", o->model);
    }

    struct llm_backend_opts bo;
    llm_backend_opts_init(&bo);
    if (llm_ea_present(m->meta)) { /* an engine's limits are the defaults */
        struct llm_ea_info ei;
        if ((rc = llm_ea_info_from_meta(m->meta, o->model, &ei))) goto out;
        bo.block_size = ei.lim.block_size;
        bo.max_batch_tokens = ei.lim.max_tokens;
        bo.max_seqs = ei.lim.max_batch;
        bo.max_seq_len = ei.lim.max_seq_len;
        llm_ea_info_free(&ei);
    }
    apply_backend_opts(o, &bo);
    rc = llm_job_backend(&job, o->device, m, &bo, &be);
    if (rc) {
        job_agreed = 1;
        goto out;
    }

    struct llm_engine_opts eo;
    llm_engine_opts_init(&eo);
    eo.tok = tok;
    eo.no_evict = o->no_evict;
    rc = llm_engine_create(&e, be, &eo);
    if (rc) goto out;

    struct llm_run_opts ro;
    llm_run_opts_init(&ro);
    ro.in = in;
    ro.in_name = in_name;
    ro.out_path = o->output;
    ro.out = out;
    ro.ordered = o->ordered;
    ro.resume = o->resume;
    llm_jsonl_defaults_init(&ro.defaults, &m->gen);
    struct llm_sampling *s = &ro.defaults.sampling;
    if (o->has_temperature) s->temperature = o->temperature;
    if (o->has_top_k) s->top_k = (int)o->top_k;
    if (o->has_top_p) s->top_p = o->top_p;
    if (o->has_min_p) s->min_p = o->min_p;
    if (o->has_rep) s->repetition_penalty = o->rep;
    if (o->has_max_tokens) ro.defaults.max_tokens = (int)o->max_tokens;
    s->seed = o->seed;
    ro.defaults.ignore_eos = o->ignore_eos;
    ro.fmt.tok = tok;
    ro.fmt.model_name = model_name(o->model);
    const char *sde = getenv("SOURCE_DATE_EPOCH"); /* reproducible "created" */
    ro.fmt.created = sde && *sde ? strtoll(sde, NULL, 10) : (int64_t)time(NULL);
    struct progress pg = {isatty(STDERR_FILENO) && o->verbosity >= 0, 0, 0};
    ro.progress = on_progress;
    ro.ctx = &pg;

    struct llm_run_progress fin;
    started = 1;
    rc = llm_run_jsonl(e, &ro, &fin);
    *errors = fin.errors + fin.skipped_errors;
    if (pg.shown) fputs("\r\033[K", stderr);
    const struct llm_engine_stats *st = llm_engine_get_stats(e);
    llm_info("%ld requests answered (%ld errors, %ld skipped as already answered, %ld of them "
             "errors) in %.1f s; "
             "%llu prompt + %llu generated tokens, %.1f generated tok/s; %llu preemptions, "
             "peak KV %d of %d blocks",
             fin.done, fin.errors, fin.skipped, fin.skipped_errors, fin.elapsed,
             (unsigned long long)fin.prompt_tokens, (unsigned long long)fin.completion_tokens,
             fin.elapsed > 0 ? (double)fin.completion_tokens / fin.elapsed : 0.0,
             (unsigned long long)st->preemptions, st->peak_blocks_used, be->n_blocks);
out:
    if (rc && job.size > 1 && !job_agreed) {
        /* the other ranks may be waiting in the middle of a step: end them now */
        if (out) fclose(out);
        if (created && !started) unlink(o->output);
        tool_fail(rc);
        llm_comm_abort(job.comm, TOOL_EXIT_FAIL);
    }
    llm_engine_free(e);
    llm_backend_destroy(be);
    llm_tok_free(tok);
    llm_model_close(m);
    if (in != stdin) fclose(in);
    if (out && fclose(out) && !rc)
        rc = llm_err_set(LLM_EIO, "'%s': %s", o->output, strerror(errno));
    if (rc && created && !started) unlink(o->output);
    return rc;
}

int main(int argc, char **argv)
{
    tool_init("llm-run");
    struct opts o = {0};
    o.device = "auto";
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"ordered", no_argument, NULL, OPT_ORDERED},
        {"resume", no_argument, NULL, OPT_RESUME},
        {"device", required_argument, NULL, OPT_DEVICE},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"kv-cache", required_argument, NULL, OPT_KV},
        {"block-size", required_argument, NULL, OPT_BLOCK},
        {"max-batch-tokens", required_argument, NULL, OPT_MBT},
        {"max-seqs", required_argument, NULL, OPT_SEQS},
        {"no-evict", no_argument, NULL, OPT_NOEVICT},
        {"max-seq-len", required_argument, NULL, OPT_SEQLEN},
        {"max-tokens", required_argument, NULL, OPT_MAXTOK},
        {"temperature", required_argument, NULL, OPT_TEMP},
        {"top-k", required_argument, NULL, OPT_TOPK},
        {"top-p", required_argument, NULL, OPT_TOPP},
        {"min-p", required_argument, NULL, OPT_MINP},
        {"repetition-penalty", required_argument, NULL, OPT_REP},
        {"seed", required_argument, NULL, OPT_SEED},
        {"ignore-eos", no_argument, NULL, OPT_IGNORE_EOS},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {"no-verify", no_argument, NULL, OPT_NO_VERIFY},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:qvh", longopts, NULL)) != -1) {
        const char *a = optarg;
        switch (c) {
        case 'o':
            o.output = a;
            break;
        case OPT_ORDERED:
            o.ordered = 1;
            break;
        case OPT_RESUME:
            o.resume = 1;
            break;
        case OPT_DEVICE:
            if (strcmp(a, "auto") && strcmp(a, "cpu") && strcmp(a, "cuda"))
                return tool_usage_error("--device '%s': expected auto, cpu or cuda", a);
            o.device = a;
            break;
        case OPT_THREADS:
            if (tool_parse_int(a, 1, 4096, &o.threads))
                return tool_usage_error("--threads '%s': expected 1..4096", a);
            break;
        case OPT_KV:
            if (parse_kv(a, &o))
                return tool_usage_error("--kv-cache '%s': expected a size (2GiB) or a fraction "
                                        "in (0, 1]",
                                        a);
            break;
        case OPT_BLOCK:
            if (tool_parse_int(a, 1, 4096, &o.block_size))
                return tool_usage_error("--block-size '%s': expected 1..4096", a);
            break;
        case OPT_MBT:
            if (tool_parse_int(a, 1, 1 << 24, &o.max_batch_tokens))
                return tool_usage_error("--max-batch-tokens '%s': expected a positive count", a);
            break;
        case OPT_SEQS:
            if (tool_parse_int(a, 1, 1 << 20, &o.max_seqs))
                return tool_usage_error("--max-seqs '%s': expected a positive count", a);
            break;
        case OPT_NOEVICT:
            o.no_evict = 1;
            break;
        case OPT_NO_VERIFY:
            o.no_verify = 1;
            break;
        case OPT_SEQLEN:
            if (tool_parse_int(a, 2, 1 << 30, &o.max_seq_len))
                return tool_usage_error("--max-seq-len '%s': expected 2 or more", a);
            break;
        case OPT_MAXTOK:
            if (tool_parse_int(a, 1, 1 << 30, &o.max_tokens))
                return tool_usage_error("--max-tokens '%s': expected a positive count", a);
            o.has_max_tokens = 1;
            break;
        case OPT_TEMP:
            if (tool_parse_double(a, 0, 1e6, &o.temperature))
                return tool_usage_error("--temperature '%s': expected a number >= 0", a);
            o.has_temperature = 1;
            break;
        case OPT_TOPK:
            if (tool_parse_int(a, 0, 1L << 31, &o.top_k))
                return tool_usage_error("--top-k '%s': expected a count (0: off)", a);
            o.has_top_k = 1;
            break;
        case OPT_TOPP:
            if (tool_parse_double(a, 0, 1, &o.top_p) || o.top_p <= 0)
                return tool_usage_error("--top-p '%s': expected a number in (0, 1]", a);
            o.has_top_p = 1;
            break;
        case OPT_MINP:
            if (tool_parse_double(a, 0, 1, &o.min_p))
                return tool_usage_error("--min-p '%s': expected a number in [0, 1]", a);
            o.has_min_p = 1;
            break;
        case OPT_REP:
            if (tool_parse_double(a, 0, 1e6, &o.rep) || o.rep <= 0)
                return tool_usage_error("--repetition-penalty '%s': expected a number > 0", a);
            o.has_rep = 1;
            break;
        case OPT_SEED: {
            char *end;
            o.seed = strtoull(a, &end, 0);
            if (end == a || *end || *a == '-')
                return tool_usage_error("--seed '%s': expected a non-negative integer", a);
            break;
        }
        case OPT_IGNORE_EOS:
            o.ignore_eos = 1;
            break;
        case 'q':
            o.verbosity = -1;
            break;
        case 'v':
            o.verbosity = o.verbosity < 0 ? 1 : o.verbosity + 1;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return TOOL_EXIT_OK;
        case OPT_VERSION:
            return tool_version();
        case ':':
            return tool_usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            return tool_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    int nargs = argc - optind;
    if (nargs < 1) return tool_usage_error("missing the model artifact");
    if (nargs > 2) return tool_usage_error("one model and one input file at a time");
    o.model = argv[optind];
    o.input = nargs == 2 ? argv[optind + 1] : NULL;
    if (o.resume && (!o.output || !strcmp(o.output, "-")))
        return tool_usage_error("--resume needs an output file (-o FILE)");
    if (o.output && o.input && strcmp(o.output, "-") && !strcmp(o.output, o.input))
        return tool_usage_error("the output file is the input file");
    llm_log_set_level(o.verbosity < 0    ? LLM_LOG_ERROR
                      : o.verbosity == 0 ? LLM_LOG_INFO
                                         : LLM_LOG_DEBUG);
    long errors = 0;
    int rc = run(&o, &errors);
    if (rc) {
        /* an error every rank has is told by rank 0; any other ends the job */
        if (!(job_agreed && llm_job_quiet_error(&job))) tool_fail(rc);
        signal(SIGTERM, SIG_DFL); /* said; mpirun may end this rank quietly now */
        if (job.size > 1 && !job_agreed) llm_comm_abort(job.comm, TOOL_EXIT_FAIL);
        llm_job_close(&job);
        return TOOL_EXIT_FAIL;
    }
    llm_job_close(&job);
    return errors > 0 ? EXIT_REQUEST_ERRORS : TOOL_EXIT_OK;
}
