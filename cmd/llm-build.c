/* llm-build - turn an llm artifact into a deployable engine for one GPU
 * architecture.
 *
 * Design: a thin shell over lib/model/engine_artifact.c (the streaming
 * build) and lib/backend/cuda/cuda_engine.c (device query and GEMM
 * measurement).  The order matters: the input is opened first (its model
 * description decides the default dtype, the limits and the products to
 * measure), then the target is settled - the present GPU, checked against
 * --arch when both are given, or --arch alone on a machine without one -
 * and the products are measured there before a single byte is written, so
 * the engine's metadata is complete when the output is created.  Tensors
 * then stream through one at a time; the output appears only when
 * complete.  The provenance spells every limit out, defaults included, so
 * the engine says exactly what it was built for.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "llm/dtype.h"
#include "llm/engine_artifact.h"
#include "llm/err.h"
#include "llm/io.h"
#include "llm/log.h"
#include "llm/model.h"
#include "llm_build_config.h"
#include "tool.h"

static const char usage_text[] =
    "Usage: llm-build [OPTIONS] ARTIFACT [-o ENGINE]\n"
    "Build a deployable engine from an llm artifact ('-' reads standard input): weights\n"
    "in the compute dtype and the layouts the CUDA kernels use, the limits the engine\n"
    "is built for, and cuBLASLt algorithm choices measured on the GPU.  Without -o the\n"
    "engine goes to standard output, which must not be a terminal.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE           write FILE (temporary name, renamed when complete)\n"
    "      --dtype TYPE            compute dtype: f16, bf16 or f32 (default: the\n"
    "                              artifact's when f16 or bf16, else bf16)\n"
    "      --max-batch N           sequences in one step (default 256)\n"
    "      --max-tokens N          tokens in one forward step (default 8192)\n"
    "      --max-seq-len N         context length (default: the model's maximum)\n"
    "      --kv-dtype TYPE         KV cache element type: auto (the compute dtype)\n"
    "      --block-size N          tokens per KV block (default 32)\n"
    "      --graph-batch-sizes L   decode batch sizes replayed as CUDA graphs, e.g.\n"
    "                              1,2,4,8 (default none: eager launches)\n"
    "      --arch sm_XY            target architecture; required without a GPU,\n"
    "                              checked against the GPU otherwise\n"
    "      --device N              CUDA device to build for and measure on (default 0)\n"
    "      --no-verify             do not check the artifact's tensor checksums\n"
    "  -q, --quiet                 print only errors\n"
    "  -v, --verbose               print each tensor and each GEMM choice\n"
    "  -h, --help                  print this help and exit\n"
    "      --version               print the version and exit\n";

enum {
    OPT_DTYPE = 256,
    OPT_MAX_BATCH,
    OPT_MAX_TOKENS,
    OPT_MAX_SEQ_LEN,
    OPT_KV_DTYPE,
    OPT_BLOCK_SIZE,
    OPT_GRAPHS,
    OPT_ARCH,
    OPT_DEVICE,
    OPT_VERSION,
    OPT_NO_VERIFY,
};

struct opts {
    const char *in, *out, *arch;
    int dtype;                                                   /* -1: default */
    int kv_dtype;                                                /* -1: auto */
    long max_batch, max_tokens, max_seq_len, block_size, device; /* 0: default */
    int graphs_given, n_graph;
    int graph_sizes[LLM_EA_MAX_GRAPHS];
    int verbose; /* -1 quiet, 0, 1 */
    int no_verify;
};

/* "none" or "1,2,4,8": increasing positive sizes. */
static int parse_graphs(const char *s, struct opts *o)
{
    o->graphs_given = 1;
    o->n_graph = 0;
    if (!strcmp(s, "none")) return 0;
    const char *p = s;
    for (;;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > (1 << 20) || o->n_graph == LLM_EA_MAX_GRAPHS ||
            (o->n_graph && v <= o->graph_sizes[o->n_graph - 1]) || (*end && *end != ','))
            return -1;
        o->graph_sizes[o->n_graph++] = (int)v;
        if (!*end) return 0;
        p = end + 1;
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct progress {
    int verbose;
    uint64_t tensors, bytes;
};

static void on_tensor(void *ctx, size_t i, const char *name, int dtype, int ndim,
                      const int64_t *shape, uint64_t nbytes)
{
    struct progress *pg = ctx;
    pg->tensors++;
    pg->bytes += nbytes;
    if (pg->verbose <= 0) return;
    char sh[160];
    llm_info("[%zu] %s %s %s", i + 1, name, llm_dtype_name(dtype),
             tool_shape_str(sh, sizeof sh, ndim, shape));
}

static void add_opt(json_t *argv, const char *opt, const char *val)
{
    json_array_append_new(argv, json_string(opt));
    json_array_append_new(argv, json_string(val));
}

static void add_int(json_t *argv, const char *opt, long v)
{
    char b[32];
    snprintf(b, sizeof b, "%ld", v);
    add_opt(argv, opt, b);
}

/* The provenance entry: every setting that shapes the engine, resolved. */
static json_t *provenance_entry(const struct opts *o, const struct llm_ea_info *e)
{
    json_t *argv = json_array();
    char b[LLM_EA_MAX_GRAPHS * 12 + 8];
    json_array_append_new(argv, json_string("llm-build"));
    add_opt(argv, "--dtype", llm_dtype_name(e->compute_dtype));
    add_int(argv, "--max-batch", e->lim.max_batch);
    add_int(argv, "--max-tokens", e->lim.max_tokens);
    add_int(argv, "--max-seq-len", e->lim.max_seq_len);
    add_opt(argv, "--kv-dtype", llm_dtype_name(e->lim.kv_dtype));
    add_int(argv, "--block-size", e->lim.block_size);
    size_t n = 0;
    b[0] = 0;
    for (int i = 0; i < e->lim.n_graph; i++)
        n += (size_t)snprintf(b + n, sizeof b - n, "%s%d", i ? "," : "", e->lim.graph_sizes[i]);
    add_opt(argv, "--graph-batch-sizes", e->lim.n_graph ? b : "none");
    llm_ea_arch_name(e->cc_major, e->cc_minor, e->arch_suffix, b, sizeof b);
    add_opt(argv, "--arch", b);
    json_array_append_new(argv, json_string(o->in));
    return json_pack("{s:s, s:s, s:s, s:o}", "tool", "llm-build", "version", LLM_VERSION, "commit",
                     LLM_GIT_COMMIT, "argv", argv);
}

/* Settle the target: the GPU (measuring the products there) or --arch. */
static int settle_target(const struct opts *o, const struct llm_model_desc *d,
                         struct llm_ea_info *e)
{
    int maj = 0, min = 0;
    char name[128] = "", have[16], want[16];
    e->gemm_workspace = (uint64_t)32 << 20; /* the cuda backend's GEMM workspace */
    int rc = llm_cuda_device_query((int)o->device, &maj, &min, name, sizeof name);
    if (rc == LLM_EUNSUPPORTED) {
        if (!o->arch)
            return tool_usage_error("%s: give the target architecture with --arch sm_XY",
                                    llm_errmsg());
        llm_err_clear();
        if (o->verbose >= 0)
            llm_info("no GPU here: building for %s with cuBLASLt's heuristic choosing the "
                     "algorithms at run time",
                     o->arch);
        return llm_ea_plan_gemms(d, e->compute_dtype, &e->lim, &e->gemm, &e->n_gemm)
                   ? tool_fail(llm_errcode())
                   : 0;
    }
    if (rc) return tool_fail(rc);
    if (o->arch && (e->cc_major != maj || e->cc_minor != min)) {
        llm_ea_arch_name(e->cc_major, e->cc_minor, e->arch_suffix, want, sizeof want);
        llm_ea_arch_name(maj, min, 0, have, sizeof have);
        return tool_die("--arch %s, but CUDA device %ld is %s (%s); build on a GPU of that "
                        "architecture, or on a machine without one",
                        want, o->device, have, name);
    }
    e->cc_major = maj;
    e->cc_minor = min;
    snprintf(e->device, sizeof e->device, "%s", name);
    if ((rc = llm_ea_plan_gemms(d, e->compute_dtype, &e->lim, &e->gemm, &e->n_gemm)))
        return tool_fail(rc);
    llm_ea_arch_name(maj, min, e->arch_suffix, have, sizeof have);
    if (o->verbose >= 0) llm_info("measuring %d matrix products on %s (%s)", e->n_gemm, name, have);
    double t0 = now();
    if ((rc = llm_cuda_gemm_tune((int)o->device, e->compute_dtype, e->gemm, e->n_gemm,
                                 e->gemm_workspace, &e->cublaslt_version)))
        return tool_fail(rc);
    e->gemm_measured = 1;
    for (int i = 0; i < e->n_gemm && o->verbose > 0; i++) {
        const struct llm_gemm_choice *g = &e->gemm[i];
        llm_info("gemm %-7s m %6d n %6d k %6d: %.1f us (best of %d)", llm_gemm_op_name(g->op), g->m,
                 g->n, g->k, g->time_us, g->candidates);
    }
    if (o->verbose >= 0) llm_info("measured in %.1f s", now() - t0);
    return 0;
}

static int build(const struct opts *o)
{
    struct llm_ea_builder *b = NULL;
    struct llm_ea_info e;
    json_t *prov = NULL;
    llm_ea_info_init(&e);
    int rc = llm_ea_build_open_flags(&b, o->in, o->no_verify ? LLM_MODEL_NO_VERIFY : 0);
    int ret = TOOL_EXIT_OK;
    if (rc) return tool_fail(rc);
    const struct llm_model_desc *d = llm_ea_build_desc(b);
    int dt = o->dtype >= 0                                             ? o->dtype
             : d->dtype == LLM_DTYPE_F16 || d->dtype == LLM_DTYPE_BF16 ? d->dtype
                                                                       : LLM_DTYPE_BF16;
    e.compute_dtype = dt;
    llm_ea_limits_default(d, dt, &e.lim);
    if (o->max_batch) e.lim.max_batch = (int)o->max_batch;
    if (o->max_tokens) e.lim.max_tokens = (int)o->max_tokens;
    if (o->max_seq_len) e.lim.max_seq_len = (int)o->max_seq_len;
    if (o->block_size) e.lim.block_size = (int)o->block_size;
    if (o->kv_dtype >= 0) e.lim.kv_dtype = o->kv_dtype;
    if (o->graphs_given) {
        e.lim.n_graph = o->n_graph;
        memcpy(e.lim.graph_sizes, o->graph_sizes, sizeof o->graph_sizes);
    }
    if (o->arch) /* checked in main */
        llm_ea_parse_arch(o->arch, &e.cc_major, &e.cc_minor, &e.arch_suffix);
    /* option combinations are usage errors; what the model cannot do is a failure */
    if (e.lim.kv_dtype != dt) {
        ret = tool_usage_error("--kv-dtype %s: the KV cache is kept in the compute dtype (%s)",
                               llm_dtype_name(e.lim.kv_dtype), llm_dtype_name(dt));
        goto out;
    }
    if ((rc = llm_ea_limits_check(d, dt, &e.lim))) {
        ret = rc == LLM_EINVAL ? tool_usage_error("%s", llm_errmsg()) : tool_fail(rc);
        goto out;
    }
    if ((ret = settle_target(o, d, &e))) goto out;
    if (!(prov = provenance_entry(o, &e))) {
        ret = tool_fail(llm_err_set(LLM_ENOMEM, "out of memory"));
        goto out;
    }
    struct progress pg = {o->verbose, 0, 0};
    struct llm_ea_build_cb cb = {on_tensor, &pg};
    double t0 = now();
    if ((rc = llm_ea_build_run(b, o->out ? o->out : "-", &e, prov, &cb))) {
        ret = tool_fail(rc);
        goto out;
    }
    if (o->verbose >= 0) {
        char arch[16];
        llm_ea_arch_name(e.cc_major, e.cc_minor, e.arch_suffix, arch, sizeof arch);
        int file = o->out && strcmp(o->out, "-");
        double mb = (double)pg.bytes / 1e6, s = now() - t0;
        llm_info("wrote %s%s%s: engine for %s, %s, %llu tensors, %.*f MB in %.2f s; GEMM "
                 "choices %s",
                 file ? "'" : "", file ? o->out : "standard output", file ? "'" : "", arch,
                 llm_dtype_name(dt), (unsigned long long)pg.tensors, mb < 10 ? 3 : 0, mb, s,
                 e.gemm_measured ? "measured" : "left to the heuristic");
    }
out:
    json_decref(prov);
    llm_ea_info_free(&e);
    llm_ea_build_close(b);
    return ret;
}

static int parse_compute_dtype(const char *s)
{
    int dt = llm_dtype_from_name(s);
    return dt == LLM_DTYPE_F16 || dt == LLM_DTYPE_BF16 || dt == LLM_DTYPE_F32 ? dt : -1;
}

int main(int argc, char **argv)
{
    tool_init("llm-build");
    struct opts o = {.dtype = -1, .kv_dtype = -1};
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"dtype", required_argument, NULL, OPT_DTYPE},
        {"max-batch", required_argument, NULL, OPT_MAX_BATCH},
        {"max-tokens", required_argument, NULL, OPT_MAX_TOKENS},
        {"max-seq-len", required_argument, NULL, OPT_MAX_SEQ_LEN},
        {"kv-dtype", required_argument, NULL, OPT_KV_DTYPE},
        {"block-size", required_argument, NULL, OPT_BLOCK_SIZE},
        {"graph-batch-sizes", required_argument, NULL, OPT_GRAPHS},
        {"arch", required_argument, NULL, OPT_ARCH},
        {"device", required_argument, NULL, OPT_DEVICE},
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
        int maj, min;
        switch (c) {
        case 'o':
            o.out = a;
            break;
        case 'q':
            o.verbose = -1;
            break;
        case 'v':
            o.verbose = 1;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return TOOL_EXIT_OK;
        case OPT_VERSION:
            return tool_version();
        case OPT_DTYPE:
            if ((o.dtype = parse_compute_dtype(a)) < 0)
                return tool_usage_error("--dtype must be f16, bf16 or f32, not '%s'", a);
            break;
        case OPT_KV_DTYPE:
            if (!strcmp(a, "auto"))
                o.kv_dtype = -1;
            else if ((o.kv_dtype = parse_compute_dtype(a)) < 0)
                return tool_usage_error("--kv-dtype must be auto, f16, bf16 or f32, not '%s' "
                                        "(an 8-bit KV cache comes from llm-quantize --kv)",
                                        a);
            break;
        case OPT_MAX_BATCH:
            if (tool_parse_int(a, 1, 1 << 20, &o.max_batch))
                return tool_usage_error("--max-batch '%s': expected 1..%d", a, 1 << 20);
            break;
        case OPT_MAX_TOKENS:
            if (tool_parse_int(a, 1, 1 << 24, &o.max_tokens))
                return tool_usage_error("--max-tokens '%s': expected 1..%d", a, 1 << 24);
            break;
        case OPT_MAX_SEQ_LEN:
            if (tool_parse_int(a, 2, 1 << 30, &o.max_seq_len))
                return tool_usage_error("--max-seq-len '%s': expected 2..%d", a, 1 << 30);
            break;
        case OPT_BLOCK_SIZE:
            if (tool_parse_int(a, 1, 4096, &o.block_size))
                return tool_usage_error("--block-size '%s': expected 1..4096", a);
            break;
        case OPT_GRAPHS:
            if (parse_graphs(a, &o))
                return tool_usage_error("--graph-batch-sizes '%s': expected 'none' or increasing "
                                        "sizes such as 1,2,4,8 (at most %d)",
                                        a, LLM_EA_MAX_GRAPHS);
            break;
        case OPT_ARCH:
            if (llm_ea_parse_arch(a, &maj, &min, NULL))
                return tool_usage_error("--arch '%s': expected sm_XY, e.g. sm_80 or sm_90", a);
            o.arch = a;
            break;
        case OPT_NO_VERIFY:
            o.no_verify = 1;
            break;
        case OPT_DEVICE:
            if (tool_parse_int(a, 0, 1023, &o.device))
                return tool_usage_error("--device '%s': expected a CUDA device number", a);
            break;
        case ':':
            return tool_usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            return tool_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    int npos = argc - optind;
    if (npos == 0) return tool_usage_error("missing the artifact (a file, or '-')");
    if (npos > 1)
        return tool_usage_error("one artifact at a time (got '%s' too)", argv[optind + 1]);
    o.in = argv[optind];
    if ((!o.out || !strcmp(o.out, "-")) && isatty(STDOUT_FILENO))
        return tool_usage_error("refusing to write an engine to a terminal; use -o FILE or "
                                "redirect standard output");
    if (o.verbose < 0) llm_log_set_level(LLM_LOG_ERROR);
    /* the output can be written, before the input is read and measured */
    int rc = llm_out_check(o.out);
    if (rc) return tool_fail(rc);
    return build(&o);
}
