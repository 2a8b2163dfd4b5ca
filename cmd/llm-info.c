/* llm-info - print (and verify) what an llm artifact holds.
 *
 * Design: one pass in file order serves files and pipes alike, so the two
 * print the same report: the metadata sections known at the start (model,
 * generation defaults, tokenizer, quantization, mapping), then the tensor
 * table as records go by, then the provenance chain, which is complete
 * only once the trailer has been read.  Files are listed from their record
 * headers without touching tensor data unless --verify asks for it, and
 * each verified tensor is released at once, so memory stays bounded for
 * any model size.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "llm/artifact.h"
#include "llm/dtype.h"
#include "llm/engine_artifact.h"
#include "llm/err.h"
#include "llm/model.h"
#include "llm_build_config.h"
#include "tool.h"

static const char usage_text[] =
    "Usage: llm-info [OPTIONS] ARTIFACT|-\n"
    "Print an llm artifact's model description, quantization, mapping, tensor table\n"
    "and provenance.  '-' reads standard input (a pipe is read in one pass).\n"
    "\n"
    "Options:\n"
    "      --json        print one JSON object instead of text\n"
    "      --verify      re-hash every tensor; exit 1 naming the first that differs\n"
    "      --tensors     list the tensors (default)\n"
    "      --no-tensors  leave the tensor table out\n"
    "  -h, --help        print this help and exit\n"
    "      --version     print the version and exit\n";

enum { OPT_JSON = 256, OPT_VERIFY, OPT_TENSORS, OPT_NO_TENSORS, OPT_VERSION };

struct opts {
    int json, verify, tensors;
    const char *path;
};

static const char *yesno(int v)
{
    return v ? "yes" : "no";
}

/* ---- text report ---------------------------------------------------------- */

static int print_model(const json_t *meta)
{
    const json_t *mj = json_object_get(meta, "model");
    if (!mj || json_is_null(mj)) {
        printf("model: (none)\n");
        return 0;
    }
    struct llm_model_desc d;
    struct llm_quant q;
    llm_desc_init(&d);
    int rc = llm_desc_from_json(&d, mj);
    if (rc) return rc;
    if (llm_quant_from_json(&q, json_object_get(meta, "quantization"), "metadata")) {
        llm_quant_init(&q);
        llm_err_clear();
    }
    printf("model: %s (%.*s), %s, %lld parameters\n", llm_arch_name(d.arch),
           (int)sizeof(d.hf_arch), d.hf_arch, llm_dtype_name(d.dtype),
           (long long)llm_desc_n_params(&d));
    printf("  layers %d, hidden %lld, heads %d, kv heads %d, head dim %d, intermediate %lld\n",
           d.n_layers, (long long)d.hidden, d.n_heads, d.n_kv_heads, d.head_dim,
           (long long)d.intermediate);
    printf("  vocab %lld, max positions %lld, norm %s (eps %g), act %s%s\n",
           (long long)d.vocab_size, (long long)d.max_pos, llm_norm_name(d.norm), d.norm_eps,
           llm_act_name(d.act), d.gated_mlp ? " (gated)" : "");
    printf("  position %s", llm_pos_name(d.pos));
    if (d.pos == LLM_POS_ROPE)
        printf(" (theta %g, %d dims, %s, scaling %s)", d.rope.theta, d.rope.rot_dims,
               d.rope.neox ? "neox" : "interleaved", llm_rope_scaling_name(d.rope.scaling));
    if (d.pos == LLM_POS_ROPE && d.rope_local_theta > 0) {
        int n = 0;
        for (int i = 0; i < d.n_layers && i < LLM_MAX_LAYERS; i++)
            n += d.layer_local_rope[i];
        printf("; theta %g unscaled on %d local layers", d.rope_local_theta, n);
    }
    int nope = 0;
    for (int i = 0; i < d.n_layers && i < LLM_MAX_LAYERS; i++)
        nope += d.layer_no_rope[i];
    if (d.pos == LLM_POS_ROPE && nope) printf("; none on %d layers", nope);
    printf("\n  parallel residual %s, tied embeddings %s, biases qkv %s o %s mlp %s norm %s\n",
           yesno(d.parallel_residual), yesno(d.tied_embeddings), yesno(d.qkv_bias),
           yesno(d.o_bias), yesno(d.mlp_bias), yesno(d.norm_bias));
    if (d.sliding_window) printf("  sliding window %d\n", d.sliding_window);
    if (d.n_experts) printf("  experts %d, %d per token\n", d.n_experts, d.n_experts_per_tok);
    /* what it needs of a backend beyond a plain Llama-style decoder, and who runs it */
    llm_features f = llm_desc_features(&d);
    printf("  features:");
    for (int i = 0; i < LLM_FEAT_COUNT; i++)
        if (f & LLM_FEAT_BIT(i)) printf("%s %s", f & (LLM_FEAT_BIT(i) - 1) ? "," : "", llm_feature_name(i));
    if (!f) printf(" none beyond the plain decoder");
    printf("\n  runs on:");
    const char *be[2] = {"cpu", "cuda"};
    int any = 0;
    for (int i = 0; i < 2; i++)
        if (!llm_desc_supported(&d, &q, llm_backend_caps_of(be[i]), NULL)) {
            printf("%s %s", any ? "," : "", be[i]);
            any = 1;
        }
    llm_err_clear();
    printf("%s\n", any ? "" : " no backend yet");
    printf("  bos %d, eos", d.bos_id);
    for (int i = 0; i < d.n_eos; i++) printf(" %d", d.eos_ids[i]);
    if (!d.n_eos) printf(" none");
    printf(", pad %d\n", d.pad_id);
    llm_desc_free(&d);
    return 0;
}

static void print_json_inline(const char *label, const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
    printf("%s: %s\n", label, s ? s : "?");
    free(s);
}

static void print_sections(const json_t *meta)
{
    const json_t *gen = json_object_get(meta, "generation");
    if (gen) print_json_inline("generation", gen);
    const json_t *files = json_object_get(json_object_get(meta, "tokenizer"), "files");
    printf("tokenizer:");
    const char *k;
    const json_t *v;
    if (json_object_size(files))
        json_object_foreach((json_t *)files, k, v) printf(" %s", k);
    else
        printf(" (none)");
    printf("\n");
    const json_t *rep = json_object_get(meta, "quantization_report");
    if (rep && !json_is_null(rep)) {
        printf("quantization report: %s text, %lld tokens (windows of %lld): KLD mean %.5f, "
               "p99 %.5f, max %.4f; top-1 agreement %.2f%%; perplexity %.4f (parent %.4f)\n",
               json_string_value(json_object_get(rep, "text")),
               (long long)json_integer_value(json_object_get(rep, "tokens")),
               (long long)json_integer_value(json_object_get(rep, "window")),
               json_number_value(json_object_get(rep, "kld_mean")),
               json_number_value(json_object_get(rep, "kld_p99")),
               json_number_value(json_object_get(rep, "kld_max")),
               100 * json_number_value(json_object_get(rep, "top1_agreement")),
               json_number_value(json_object_get(rep, "ppl_quantized")),
               json_number_value(json_object_get(rep, "ppl_parent")));
    }
    const json_t *q = json_object_get(meta, "quantization");
    const char *qa = json_string_value(json_object_get(q, "quant_algo"));
    const char *kv = json_string_value(json_object_get(q, "kv_cache_quant_algo"));
    if (!qa && !kv)
        printf("quantization: none\n");
    else
        print_json_inline("quantization", q);
    const json_t *m = json_object_get(meta, "mapping");
    if (!json_is_object(m)) return;
    printf("mapping: world size %lld (tp %lld x pp %lld), tp rank %lld, pp rank %lld",
           (long long)json_integer_value(json_object_get(m, "world_size")),
           (long long)json_integer_value(json_object_get(m, "tp_size")),
           (long long)json_integer_value(json_object_get(m, "pp_size")),
           (long long)json_integer_value(json_object_get(m, "tp_rank")),
           (long long)json_integer_value(json_object_get(m, "pp_rank")));
    const json_t *ep = json_object_get(m, "moe_ep_size");
    if (json_is_integer(ep))
        printf(", experts: moe tp %lld x ep %lld",
               (long long)json_integer_value(json_object_get(m, "moe_tp_size")),
               (long long)json_integer_value(ep));
    printf("\n");
}

/* An engine's target, limits, weight layout and GEMM choices (llm-build). */
static int print_engine(const json_t *meta, const char *path)
{
    if (!llm_ea_present(meta)) return 0;
    struct llm_ea_info e;
    int rc = llm_ea_info_from_meta(meta, path, &e);
    if (rc) return rc;
    char arch[16], graphs[LLM_EA_MAX_GRAPHS * 12 + 8] = "none";
    llm_ea_arch_name(e.cc_major, e.cc_minor, e.arch_suffix, arch, sizeof arch);
    size_t n = 0;
    for (int i = 0; i < e.lim.n_graph; i++)
        n += (size_t)snprintf(graphs + n, sizeof graphs - n, "%s%d", i ? "," : "",
                              e.lim.graph_sizes[i]);
    printf("engine: %s (%s), compute %s, engine version %d\n", arch,
           e.device[0] ? e.device : "built without a GPU", llm_dtype_name(e.compute_dtype),
           e.version);
    printf("  limits: batch %d, tokens per step %d, context %d, kv %s, blocks of %d tokens, "
           "graphs %s\n", e.lim.max_batch, e.lim.max_tokens, e.lim.max_seq_len,
           llm_dtype_name(e.lim.kv_dtype), e.lim.block_size, graphs);
    printf("  weights: %s%s, lm_head.bias f32\n", llm_dtype_name(e.compute_dtype),
           e.fused_gate ? ", mlp.fc_gate = mlp.fc rows then mlp.gate rows" : "");
    if (e.gemm_measured)
        printf("  gemm: %d choices measured with cuBLASLt %llu\n", e.n_gemm,
               (unsigned long long)e.cublaslt_version);
    else
        printf("  gemm: %d products, algorithms left to cuBLASLt's heuristic\n", e.n_gemm);
    llm_ea_info_free(&e);
    return 0;
}

static void print_provenance(const json_t *meta)
{
    const json_t *chain = json_object_get(meta, "provenance");
    printf("provenance:%s\n", json_array_size(chain) ? "" : " (none)");
    size_t i;
    const json_t *e;
    json_array_foreach(chain, i, e)
    {
        printf("  %zu. %s %s (commit %s):", i + 1,
               json_string_value(json_object_get(e, "tool")) ?: "?",
               json_string_value(json_object_get(e, "version")) ?: "?",
               json_string_value(json_object_get(e, "commit")) ?: "?");
        size_t j;
        const json_t *a;
        json_array_foreach(json_object_get(e, "argv"), j, a)
            printf(" %s", json_string_value(a) ?: "?");
        printf("\n");
        json_array_foreach(json_object_get(e, "inputs"), j, a)
            printf("     input %s, %lld bytes, xxh3 %s\n",
                   json_string_value(json_object_get(a, "path")) ?: "?",
                   (long long)json_integer_value(json_object_get(a, "size")),
                   json_string_value(json_object_get(a, "xxh3")) ?: "?");
    }
}

/* ---- JSON report ----------------------------------------------------------- */

/* The metadata with the embedded tokenizer files reduced to their names. */
static json_t *meta_for_json(const json_t *meta)
{
    json_t *m = json_copy((json_t *)meta);
    const json_t *files = json_object_get(json_object_get(meta, "tokenizer"), "files");
    if (m && json_is_object(files)) {
        json_t *names = json_array();
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)files, k, v) json_array_append_new(names, json_string(k));
        json_object_set_new(m, "tokenizer", json_pack("{s:o}", "files", names));
    }
    return m;
}

static json_t *tensor_json(const struct llm_tensor *t, uint64_t stored, uint64_t off)
{
    json_t *shape = json_array();
    for (int i = 0; i < t->ndim; i++) json_array_append_new(shape, json_integer(t->shape[i]));
    char h[17];
    snprintf(h, sizeof(h), "%016" PRIx64, t->xxh3);
    return json_pack("{s:s, s:s, s:o, s:I, s:I, s:s, s:I}", "name", t->name, "dtype",
                     llm_dtype_name(t->dtype), "shape", shape, "bytes", (json_int_t)t->nbytes,
                     "stored", (json_int_t)stored, "xxh3", h, "offset", (json_int_t)off);
}

/* ---- main loop -------------------------------------------------------------- */

static int run(const struct opts *o)
{
    struct llm_artifact *a;
    int rc = llm_ar_open(&a, o->path, o->verify ? LLM_AR_VERIFY : 0);
    if (rc) return rc;
    int major, minor;
    llm_ar_version(a, &major, &minor);
    json_t *tensors = o->json ? json_array() : NULL;
    if (!o->json) {
        printf("artifact: '%s' (format %d.%d)\n", llm_ar_path(a), major, minor);
        if ((rc = print_model(llm_ar_meta(a)))) goto out;
        print_sections(llm_ar_meta(a));
        if ((rc = print_engine(llm_ar_meta(a), llm_ar_path(a)))) goto out;
        if (o->tensors)
            printf("tensors:\n  %-7s %-22s %14s %14s %-16s %s\n", "dtype", "shape", "bytes",
                   "stored", "xxh3", "name");
    } else if (json_object_get(llm_ar_meta(a), "model")) {
        struct llm_model_desc d; /* validate as the text report does */
        llm_desc_init(&d);
        rc = llm_desc_from_json(&d, json_object_get(llm_ar_meta(a), "model"));
        llm_desc_free(&d);
        if (rc) goto out;
    }
    uint64_t count = 0, bytes = 0, stored_total = 0;
    int seekable = llm_ar_is_seekable(a);
    for (size_t i = 0;; i++) {
        struct llm_tensor t;
        if (seekable) {
            if (i >= llm_ar_count(a)) break;
            rc = o->verify ? llm_ar_get(a, i, &t) : llm_ar_info(a, i, &t);
        } else {
            rc = llm_ar_next(a, &t);
            if (rc == 0) break;
            rc = rc == 1 ? 0 : rc;
        }
        if (rc) goto out;
        uint64_t stored = llm_ar_stored_size(a, i);
        count++;
        bytes += t.nbytes;
        stored_total += stored;
        if (o->json) {
            json_array_append_new(tensors, tensor_json(&t, stored, llm_ar_offset(a, i)));
        } else if (o->tensors) {
            char sh[256];
            tool_shape_str(sh, sizeof(sh), t.ndim, t.shape);
            printf("  %-7s %-22s %14" PRIu64 " %14" PRIu64 " %016" PRIx64 "  %s\n",
                   llm_dtype_name(t.dtype), sh, t.nbytes, stored, t.xxh3, t.name);
        }
        if (seekable) llm_ar_release(a, i);
    }
    if (o->json) {
        char ver[32];
        snprintf(ver, sizeof(ver), "%d.%d", major, minor);
        json_t *out = json_pack("{s:s, s:s, s:o, s:I, s:I, s:I, s:b, s:o}", "path",
                                llm_ar_path(a), "format", ver, "metadata",
                                meta_for_json(llm_ar_meta(a)), "tensor_count",
                                (json_int_t)count, "bytes", (json_int_t)bytes, "stored_bytes",
                                (json_int_t)stored_total, "verified", o->verify, "tensors",
                                tensors);
        tensors = NULL;
        if (out && !o->tensors) json_object_del(out, "tensors");
        char *s = out ? json_dumps(out, JSON_INDENT(2)) : NULL;
        json_decref(out);
        if (!s) {
            rc = llm_err_set(LLM_ENOMEM, "out of memory");
            goto out;
        }
        printf("%s\n", s);
        free(s);
    } else {
        printf("total: %" PRIu64 " tensors, %" PRIu64 " bytes, %" PRIu64 " stored\n", count,
               bytes, stored_total);
        print_provenance(llm_ar_meta(a));
        if (o->verify) printf("verify: ok, %" PRIu64 " tensors match their checksums\n", count);
    }
out:
    json_decref(tensors);
    llm_ar_close(a);
    if (fflush(stdout) != 0 && !rc) rc = llm_err_set(LLM_EIO, "unable to write standard output");
    return rc;
}

int main(int argc, char **argv)
{
    tool_init("llm-info");
    struct opts o = {.tensors = 1};
    static const struct option longopts[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"verify", no_argument, NULL, OPT_VERIFY},
        {"tensors", no_argument, NULL, OPT_TENSORS},
        {"no-tensors", no_argument, NULL, OPT_NO_TENSORS},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_JSON: o.json = 1; break;
        case OPT_VERIFY: o.verify = 1; break;
        case OPT_TENSORS: o.tensors = 1; break;
        case OPT_NO_TENSORS: o.tensors = 0; break;
        case 'h': fputs(usage_text, stdout); return TOOL_EXIT_OK;
        case OPT_VERSION:
            return tool_version();
        case ':': return tool_usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return tool_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return tool_usage_error(argc - optind ? "one artifact at a time"
                                              : "missing the artifact (a file, or '-')");
    o.path = argv[optind];
    int rc = run(&o);
    return rc ? tool_fail(rc) : TOOL_EXIT_OK;
}
