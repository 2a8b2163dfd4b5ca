/* engine_artifact.c - the deployable engine (llm/engine_artifact.h): its
 * "engine" metadata member, the architecture check, build limits, the list
 * of matrix products worth an algorithm choice, and the streaming build
 * that turns an artifact into an engine.
 *
 * Design: an engine is an artifact, so the build is a filter over the
 * artifact reader and writer.  Tensors are taken in file order (the only
 * order a pipe offers, and the same for a file, so both give the same
 * engine), converted to the compute dtype one at a time and written before
 * the next is read; the one exception is a gated MLP's fc and gate, which
 * become one fused tensor written when the second of the two arrives (the
 * first waits, already converted, in the fused buffer).  A regular input
 * file is also hashed for the provenance as the build passes over it (a
 * frontier one record behind the reader, its pages dropped as it goes), so
 * memory stays near the largest tensor.  Nothing here depends on time or
 * place, so an engine built without a GPU is byte-identical from run to
 * run; measured GEMM choices (made by the caller) are the only varying part.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "llm/artifact.h"
#include "llm/dtype.h"
#include "llm/engine_artifact.h"
#include "llm/err.h"
#include "llm/io.h"
#include "llm/log.h"
#include "llm/model.h"
#include "../core/text_internal.h"

/* ---- names and small helpers ------------------------------------------------ */

static const char *const gemm_op_names[] = {"qkv", "dense", "fc", "proj", "lm_head"};
_Static_assert(sizeof gemm_op_names / sizeof gemm_op_names[0] == LLM_GEMM_OP_COUNT,
               "one name per GEMM op");

const char *llm_gemm_op_name(int op)
{
    return op >= 0 && op < LLM_GEMM_OP_COUNT ? gemm_op_names[op] : "?";
}

static int gemm_op_from_name(const char *s)
{
    for (int i = 0; i < LLM_GEMM_OP_COUNT; i++)
        if (s && !strcmp(s, gemm_op_names[i])) return i;
    return -1;
}

static int compute_dtype_ok(int dt)
{
    return dt == LLM_DTYPE_F16 || dt == LLM_DTYPE_BF16 || dt == LLM_DTYPE_F32;
}

void llm_ea_info_init(struct llm_ea_info *e)
{
    memset(e, 0, sizeof *e);
    e->version = LLM_EA_VERSION;
    e->compute_dtype = LLM_DTYPE_BF16;
    e->lim.kv_dtype = LLM_DTYPE_BF16;
}

void llm_ea_info_free(struct llm_ea_info *e)
{
    if (!e) return;
    free(e->gemm);
    e->gemm = NULL;
    e->n_gemm = 0;
}

int llm_ea_parse_arch(const char *s, int *major, int *minor, char *suffix)
{
    const char *p = s;
    long maj, min;
    char sfx = 0;
    char *end;
    if (!s || !*s)
        return llm_err_set(LLM_EINVAL, "empty architecture (expected sm_XY, e.g. sm_90)");
    if (!strncmp(p, "sm_", 3)) {
        p += 3;
        size_t nd = strspn(p, "0123456789");
        /* sm_90, sm_90a, sm_100, sm_100f: the last digit is the minor version */
        if (nd < 2 || nd > 3 || (p[nd] && (p[nd + 1] || (p[nd] != 'a' && p[nd] != 'f'))))
            return llm_err_set(LLM_EINVAL,
                               "architecture '%s': expected sm_XY (e.g. sm_80, sm_90, "
                               "sm_100)",
                               s);
        char b[4] = {0};
        memcpy(b, p, nd - 1);
        maj = strtol(b, NULL, 10);
        min = p[nd - 1] - '0';
        sfx = p[nd];
    } else {
        if (!isdigit((unsigned char)*p))
            return llm_err_set(LLM_EINVAL,
                               "architecture '%s': expected sm_XY (e.g. sm_90) or a "
                               "compute capability (9.0)",
                               s);
        maj = strtol(p, &end, 10);
        if (*end != '.' || !isdigit((unsigned char)end[1]))
            return llm_err_set(LLM_EINVAL,
                               "architecture '%s': expected sm_XY (e.g. sm_90) or a "
                               "compute capability (9.0)",
                               s);
        min = strtol(end + 1, &end, 10);
        if (*end)
            return llm_err_set(LLM_EINVAL,
                               "architecture '%s': expected sm_XY (e.g. sm_90) or a "
                               "compute capability (9.0)",
                               s);
    }
    if (maj < 1 || maj > 99 || min < 0 || min > 9)
        return llm_err_set(LLM_EINVAL,
                           "architecture '%s': compute capability %ld.%ld is out of "
                           "range",
                           s, maj, min);
    *major = (int)maj;
    *minor = (int)min;
    if (suffix) *suffix = sfx;
    return 0;
}

void llm_ea_arch_name(int major, int minor, char suffix, char *buf, size_t cap)
{
    snprintf(buf, cap, "sm_%d%d%.*s", major, minor, suffix ? 1 : 0, &suffix);
}

int llm_ea_check_arch(const struct llm_ea_info *e, const char *path, int major, int minor,
                      const char *gpu_name)
{
    if (e->cc_major == major && e->cc_minor == minor) return 0;
    char want[16], have[16];
    llm_ea_arch_name(e->cc_major, e->cc_minor, e->arch_suffix, want, sizeof want);
    llm_ea_arch_name(major, minor, 0, have, sizeof have);
    return llm_err_set(LLM_EINVAL,
                       "'%s': built for %s, this GPU is %s%s%s%s; rebuild it with "
                       "llm-build",
                       path ? path : "-", want, have, gpu_name ? " (" : "",
                       gpu_name ? gpu_name : "", gpu_name ? ")" : "");
}

/* ---- limits ------------------------------------------------------------------ */

#define DEFAULT_MAX_BATCH 256
#define DEFAULT_MAX_TOKENS 8192
#define DEFAULT_BLOCK_SIZE 32

void llm_ea_limits_default(const struct llm_model_desc *d, int compute_dtype,
                           struct llm_ea_limits *lim)
{
    memset(lim, 0, sizeof *lim);
    lim->max_batch = DEFAULT_MAX_BATCH;
    lim->max_tokens = DEFAULT_MAX_TOKENS;
    lim->max_seq_len = d->max_pos > 0 && d->max_pos <= (1 << 30) ? (int)d->max_pos : 4096;
    lim->kv_dtype = compute_dtype;
    lim->block_size = DEFAULT_BLOCK_SIZE;
    lim->n_graph = 0;
}

int llm_ea_limits_check(const struct llm_model_desc *d, int compute_dtype,
                        const struct llm_ea_limits *lim)
{
    if (!compute_dtype_ok(compute_dtype))
        return llm_err_set(LLM_EINVAL,
                           "--dtype %s: the engine's compute dtype must be f16, bf16 "
                           "or f32",
                           llm_dtype_name(compute_dtype));
    if (lim->max_batch < 1 || lim->max_batch > (1 << 20))
        return llm_err_set(LLM_EINVAL, "--max-batch %d: expected 1..%d", lim->max_batch, 1 << 20);
    if (lim->max_tokens < 1 || lim->max_tokens > (1 << 24))
        return llm_err_set(LLM_EINVAL, "--max-tokens %d: expected 1..%d", lim->max_tokens, 1 << 24);
    if (lim->max_batch > lim->max_tokens)
        return llm_err_set(LLM_EINVAL,
                           "--max-batch %d is more than --max-tokens %d (each "
                           "sequence of a step brings at least one token)",
                           lim->max_batch, lim->max_tokens);
    if (lim->max_seq_len < 2 || lim->max_seq_len > (1 << 30))
        return llm_err_set(LLM_EINVAL, "--max-seq-len %d: expected 2..%d", lim->max_seq_len,
                           1 << 30);
    if (d->max_pos > 0 && lim->max_seq_len > d->max_pos &&
        (d->pos == LLM_POS_LEARNED ||
         (d->pos == LLM_POS_ROPE && d->rope.scaling == LLM_ROPE_SCALING_DYNAMIC)))
        return llm_err_set(LLM_EINVAL, "--max-seq-len %d: this model has %s positions up to %lld",
                           lim->max_seq_len, d->pos == LLM_POS_LEARNED ? "learned" : "dynamic rope",
                           (long long)d->max_pos);
    if (lim->block_size < 1 || lim->block_size > 4096)
        return llm_err_set(LLM_EINVAL, "--block-size %d: expected 1..4096", lim->block_size);
    if (lim->kv_dtype != compute_dtype)
        return llm_err_set(LLM_EUNSUPPORTED,
                           "--kv-dtype %s: the cuda backend keeps the KV cache "
                           "in the compute dtype (%s)",
                           llm_dtype_name(lim->kv_dtype), llm_dtype_name(compute_dtype));
    if (lim->n_graph < 0 || lim->n_graph > LLM_EA_MAX_GRAPHS)
        return llm_err_set(LLM_EINVAL, "--graph-batch-sizes: at most %d sizes", LLM_EA_MAX_GRAPHS);
    for (int i = 0; i < lim->n_graph; i++) {
        int s = lim->graph_sizes[i];
        if (s < 1 || s > lim->max_batch || (i && s <= lim->graph_sizes[i - 1]))
            return llm_err_set(LLM_EINVAL,
                               "--graph-batch-sizes: %d must be increasing sizes in "
                               "1..%d (--max-batch)",
                               s, lim->max_batch);
    }
    /* what the cuda backend can run (its check_desc) */
    if (d->n_experts > 0)
        return llm_err_set(LLM_EUNSUPPORTED, "model: mixture of experts is not supported by the "
                                             "cuda backend yet");
    if (d->hidden % 8 || d->head_dim % 8 || d->intermediate % 8 || d->hidden > 32768 ||
        d->vocab_size > INT32_MAX || d->intermediate > INT32_MAX / 2)
        return llm_err_set(LLM_EUNSUPPORTED,
                           "model: hidden %lld, head_dim %d and intermediate "
                           "%lld must be multiples of 8 for the cuda backend (hidden <= 32768)",
                           (long long)d->hidden, d->head_dim, (long long)d->intermediate);
    return 0;
}

/* ---- GEMM plan ------------------------------------------------------------------ */

/* Row counts worth a choice: 1, then powers of 4 below the limit, then the
 * limit itself and the decode batch, increasing and unique. */
static int row_counts(int limit, int batch, int *out)
{
    int n = 0;
    out[n++] = 1;
    for (int m = 4; m < limit; m *= 4)
        out[n++] = m;
    if (batch > 1 && batch < limit) out[n++] = batch;
    if (limit > 1) out[n++] = limit;
    /* sort (batch may land anywhere) and drop duplicates */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
            int t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!k || out[k - 1] != out[i]) out[k++] = out[i];
    return k;
}

int llm_ea_plan_gemms(const struct llm_model_desc *d, int compute_dtype,
                      const struct llm_ea_limits *lim, struct llm_gemm_choice **out, int *n_out)
{
    *out = NULL;
    *n_out = 0;
    int H = (int)d->hidden, I = (int)d->intermediate, V = (int)d->vocab_size;
    int qkv = (d->n_heads + 2 * d->n_kv_heads) * d->head_dim, att = d->n_heads * d->head_dim;
    int mlp_w = d->gated_mlp ? 2 * I : I;
    struct {
        int op, n, k, ldx, ldy, out, bias, acc;
    } shapes[LLM_GEMM_OP_COUNT] = {
        {LLM_GEMM_QKV, qkv, H, H, qkv, compute_dtype, d->qkv_bias, 0},
        {LLM_GEMM_DENSE, H, att, att, H, compute_dtype, d->o_bias, 1},
        {LLM_GEMM_FC, mlp_w, H, H, mlp_w, compute_dtype, d->mlp_bias, 0},
        {LLM_GEMM_PROJ, H, I, mlp_w, H, compute_dtype, d->mlp_bias, 1},
        {LLM_GEMM_LM_HEAD, V, H, H, V, LLM_DTYPE_F32, d->lm_head_bias, 0},
    };
    int rows[64], rows_lm[64];
    int nr = row_counts(lim->max_tokens, lim->max_batch, rows);
    int nl = row_counts(lim->max_batch, lim->max_batch, rows_lm);
    struct llm_gemm_choice *c = calloc((size_t)(4 * nr + nl), sizeof *c);
    if (!c) return llm_err_set(LLM_ENOMEM, "out of memory");
    int k = 0;
    for (int s = 0; s < LLM_GEMM_OP_COUNT; s++) {
        int lm = shapes[s].op == LLM_GEMM_LM_HEAD;
        for (int i = 0; i < (lm ? nl : nr); i++) {
            struct llm_gemm_choice *g = &c[k++];
            g->op = shapes[s].op;
            g->m = lm ? rows_lm[i] : rows[i];
            g->n = shapes[s].n;
            g->k = shapes[s].k;
            g->ldx = shapes[s].ldx;
            g->ldy = shapes[s].ldy;
            g->out_dtype = shapes[s].out;
            g->bias = shapes[s].bias != 0;
            g->accumulate = shapes[s].acc;
        }
    }
    *out = c;
    *n_out = k;
    return 0;
}

const struct llm_gemm_choice *llm_ea_gemm_find(const struct llm_gemm_choice *c, int n_c, int m,
                                               int n, int k, int ldx, int ldy, int out_dtype,
                                               int bias, int accumulate)
{
    const struct llm_gemm_choice *above = NULL, *largest = NULL;
    for (int i = 0; i < n_c; i++) {
        const struct llm_gemm_choice *g = &c[i];
        if (g->n != n || g->k != k || g->ldx != ldx || g->ldy != ldy || g->out_dtype != out_dtype ||
            g->bias != (bias != 0) || g->accumulate != (accumulate != 0))
            continue;
        if (g->m >= m && (!above || g->m < above->m)) above = g;
        if (!largest || g->m > largest->m) largest = g;
    }
    return above ? above : largest;
}

/* ---- JSON form ---------------------------------------------------------------------- */

static void hex_algo(char out[129], const uint64_t a[8])
{
    for (int i = 0; i < 8; i++)
        snprintf(out + 16 * i, 17, "%016llx", (unsigned long long)a[i]);
}

static int unhex_algo(const char *s, uint64_t a[8])
{
    if (!s || strlen(s) != 128 || strspn(s, "0123456789abcdef") != 128) return -1;
    for (int i = 0; i < 8; i++) {
        char b[17];
        memcpy(b, s + 16 * i, 16);
        b[16] = 0;
        a[i] = strtoull(b, NULL, 16);
    }
    return 0;
}

json_t *llm_ea_info_to_json(const struct llm_ea_info *e)
{
    char arch[16], cc[16];
    llm_ea_arch_name(e->cc_major, e->cc_minor, e->arch_suffix, arch, sizeof arch);
    snprintf(cc, sizeof cc, "%d.%d", e->cc_major, e->cc_minor);
    json_t *graphs = json_array(), *choices = json_array(), *fused = json_object();
    json_t *f32 = json_array();
    if (!graphs || !choices || !fused || !f32) goto fail;
    for (int i = 0; i < e->lim.n_graph; i++)
        if (json_array_append_new(graphs, json_integer(e->lim.graph_sizes[i]))) goto fail;
    if (e->fused_gate &&
        json_object_set_new(fused, "mlp.fc_gate", json_pack("[s, s]", "mlp.fc", "mlp.gate")))
        goto fail;
    if (json_array_append_new(f32, json_string("lm_head.bias"))) goto fail;
    for (int i = 0; i < e->n_gemm; i++) {
        const struct llm_gemm_choice *g = &e->gemm[i];
        json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:s, s:b, s:b}", "op",
                              llm_gemm_op_name(g->op), "m", g->m, "n", g->n, "k", g->k, "ldx",
                              g->ldx, "ldy", g->ldy, "out", llm_dtype_name(g->out_dtype), "bias",
                              g->bias, "accumulate", g->accumulate);
        if (!o || json_array_append_new(choices, o)) goto fail;
        if (g->measured) {
            char h[129];
            hex_algo(h, g->algo);
            if (json_object_set_new(o, "source", json_string("measured")) ||
                json_object_set_new(o, "algo", json_string(h)) ||
                json_object_set_new(o, "time_us", json_real(g->time_us)) ||
                json_object_set_new(o, "candidates", json_integer(g->candidates)))
                goto fail;
        } else if (json_object_set_new(o, "source", json_string("heuristic"))) {
            goto fail;
        }
    }
    // clang-format off
    json_t *j = json_pack(
        "{s:i, s:{s:s, s:s, s:o}, s:s,"
        " s:{s:i, s:i, s:i, s:s, s:i, s:o},"
        " s:{s:s, s:s, s:o, s:o},"
        " s:{s:s, s:s, s:o, s:I, s:o}}",
        "version", e->version,
        "target", "arch", arch, "compute_capability", cc,
            "device", e->device[0] ? json_string(e->device) : json_null(),
        "compute_dtype", llm_dtype_name(e->compute_dtype),
        "limits", "max_batch", e->lim.max_batch, "max_tokens", e->lim.max_tokens,
            "max_seq_len", e->lim.max_seq_len, "kv_dtype", llm_dtype_name(e->lim.kv_dtype),
            "block_size", e->lim.block_size, "graph_batch_sizes", graphs,
        "weights", "dtype", llm_dtype_name(e->compute_dtype),
            "layout", "row-major (out_features, in_features)", "fused", fused, "f32", f32,
        "gemm", "library", "cublasLt", "source", e->gemm_measured ? "measured" : "heuristic",
            "cublaslt_version",
            e->cublaslt_version ? json_integer((json_int_t)e->cublaslt_version) : json_null(),
            "workspace", (json_int_t)e->gemm_workspace, "choices", choices);
    // clang-format on
    return j;
fail:
    json_decref(graphs);
    json_decref(choices);
    json_decref(fused);
    json_decref(f32);
    return NULL;
}

int llm_ea_present(const json_t *meta)
{
    return json_is_object(json_object_get(meta, "engine"));
}

static int get_int(const json_t *o, const char *key, const char *path, const char *field, long lo,
                   long hi, int *out)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return llm_err_set(LLM_EFORMAT, "'%s': engine field '%s' must be an integer in %ld..%ld",
                           path, field, lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

static int get_dtype(const json_t *o, const char *key, const char *path, const char *field,
                     int *out)
{
    const char *s = json_string_value(json_object_get(o, key));
    int dt = s ? llm_dtype_from_name(s) : -1;
    if (dt < 0)
        return llm_err_set(LLM_EFORMAT, "'%s': engine field '%s' is not a dtype name", path, field);
    *out = dt;
    return 0;
}

static int choice_from_json(const json_t *o, const char *path, int i, struct llm_gemm_choice *g)
{
    char f[48];
    int rc = 0;
    if (!json_is_object(o))
        return llm_err_set(LLM_EFORMAT, "'%s': engine field 'gemm.choices[%d]' is not an object",
                           path, i);
    g->op = gemm_op_from_name(json_string_value(json_object_get(o, "op")));
    if (g->op < 0)
        return llm_err_set(LLM_EFORMAT,
                           "'%s': engine field 'gemm.choices[%d].op' is not one of "
                           "qkv, dense, fc, proj, lm_head",
                           path, i);
    static const char *const keys[] = {"m", "n", "k", "ldx", "ldy"};
    int *dst[] = {&g->m, &g->n, &g->k, &g->ldx, &g->ldy};
    for (int j = 0; j < 5 && !rc; j++) {
        snprintf(f, sizeof f, "gemm.choices[%d].%s", i, keys[j]);
        rc = get_int(o, keys[j], path, f, 1, INT32_MAX, dst[j]);
    }
    snprintf(f, sizeof f, "gemm.choices[%d].out", i);
    if (!rc) rc = get_dtype(o, "out", path, f, &g->out_dtype);
    if (rc) return rc;
    const json_t *b = json_object_get(o, "bias"), *a = json_object_get(o, "accumulate");
    if (!json_is_boolean(b) || !json_is_boolean(a))
        return llm_err_set(LLM_EFORMAT,
                           "'%s': engine field 'gemm.choices[%d]': bias and "
                           "accumulate must be true or false",
                           path, i);
    g->bias = json_is_true(b);
    g->accumulate = json_is_true(a);
    const char *src = json_string_value(json_object_get(o, "source"));
    if (src && !strcmp(src, "heuristic")) return 0;
    if (!src || strcmp(src, "measured"))
        return llm_err_set(LLM_EFORMAT,
                           "'%s': engine field 'gemm.choices[%d].source' must be "
                           "\"measured\" or \"heuristic\"",
                           path, i);
    g->measured = 1;
    if (unhex_algo(json_string_value(json_object_get(o, "algo")), g->algo))
        return llm_err_set(LLM_EFORMAT,
                           "'%s': engine field 'gemm.choices[%d].algo' must be 128 "
                           "lower-case hex digits",
                           path, i);
    const json_t *t = json_object_get(o, "time_us");
    g->time_us = json_is_number(t) ? json_number_value(t) : 0.0;
    snprintf(f, sizeof f, "gemm.choices[%d].candidates", i);
    return get_int(o, "candidates", path, f, 0, 1 << 20, &g->candidates);
}

int llm_ea_info_from_meta(const json_t *meta, const char *path, struct llm_ea_info *e)
{
    llm_ea_info_init(e);
    path = path ? path : "-";
    const json_t *j = json_object_get(meta, "engine");
    if (!j) return llm_err_set(LLM_ENOTFOUND, "'%s': not an engine (no \"engine\" metadata)", path);
    if (!json_is_object(j))
        return llm_err_set(LLM_EFORMAT, "'%s': \"engine\" metadata is not an object", path);
    int rc = get_int(j, "version", path, "version", 1, INT32_MAX, &e->version);
    if (rc) return rc;
    if (e->version > LLM_EA_VERSION)
        return llm_err_set(LLM_EVERSION,
                           "'%s': engine version %d is newer than this reader (%d); "
                           "upgrade llm",
                           path, e->version, LLM_EA_VERSION);
    const json_t *t = json_object_get(j, "target");
    const char *arch = json_string_value(json_object_get(t, "arch"));
    if (!arch || llm_ea_parse_arch(arch, &e->cc_major, &e->cc_minor, &e->arch_suffix))
        return llm_err_set(LLM_EFORMAT, "'%s': engine field 'target.arch' must be sm_XY", path);
    const char *dev = json_string_value(json_object_get(t, "device"));
    snprintf(e->device, sizeof e->device, "%s", dev ? dev : "");
    if ((rc = get_dtype(j, "compute_dtype", path, "compute_dtype", &e->compute_dtype))) return rc;
    if (!compute_dtype_ok(e->compute_dtype))
        return llm_err_set(LLM_EFORMAT,
                           "'%s': engine field 'compute_dtype' must be f16, bf16 or "
                           "f32",
                           path);
    const json_t *l = json_object_get(j, "limits");
    if ((rc = get_int(l, "max_batch", path, "limits.max_batch", 1, 1 << 20, &e->lim.max_batch)) ||
        (rc =
             get_int(l, "max_tokens", path, "limits.max_tokens", 1, 1 << 24, &e->lim.max_tokens)) ||
        (rc = get_int(l, "max_seq_len", path, "limits.max_seq_len", 2, 1 << 30,
                      &e->lim.max_seq_len)) ||
        (rc = get_int(l, "block_size", path, "limits.block_size", 1, 4096, &e->lim.block_size)) ||
        (rc = get_dtype(l, "kv_dtype", path, "limits.kv_dtype", &e->lim.kv_dtype)))
        return rc;
    const json_t *gs = json_object_get(l, "graph_batch_sizes");
    if (!json_is_array(gs) || json_array_size(gs) > LLM_EA_MAX_GRAPHS)
        return llm_err_set(LLM_EFORMAT,
                           "'%s': engine field 'limits.graph_batch_sizes' must be a "
                           "list of at most %d sizes",
                           path, LLM_EA_MAX_GRAPHS);
    size_t i;
    const json_t *v;
    json_array_foreach(gs, i, v)
    {
        json_int_t s = json_is_integer(v) ? json_integer_value(v) : 0;
        if (s < 1 || s > e->lim.max_batch || (i && s <= e->lim.graph_sizes[i - 1]))
            return llm_err_set(LLM_EFORMAT,
                               "'%s': engine field 'limits.graph_batch_sizes' must "
                               "be increasing sizes in 1..max_batch",
                               path);
        e->lim.graph_sizes[i] = (int)s;
    }
    e->lim.n_graph = (int)json_array_size(gs);
    const json_t *w = json_object_get(j, "weights");
    const json_t *fused = json_object_get(w, "fused");
    if (!json_is_object(fused))
        return llm_err_set(LLM_EFORMAT, "'%s': engine field 'weights.fused' is not an object",
                           path);
    e->fused_gate = json_object_get(fused, "mlp.fc_gate") != NULL;

    const json_t *g = json_object_get(j, "gemm");
    const json_t *ch = json_object_get(g, "choices");
    if (!json_is_object(g) || !json_is_array(ch))
        return llm_err_set(LLM_EFORMAT, "'%s': engine field 'gemm.choices' is not a list", path);
    const json_t *ver = json_object_get(g, "cublaslt_version");
    e->cublaslt_version =
        json_is_integer(ver) && json_integer_value(ver) > 0 ? (uint64_t)json_integer_value(ver) : 0;
    const json_t *ws = json_object_get(g, "workspace");
    if (!json_is_integer(ws) || json_integer_value(ws) < 0)
        return llm_err_set(LLM_EFORMAT, "'%s': engine field 'gemm.workspace' must be a byte count",
                           path);
    e->gemm_workspace = (uint64_t)json_integer_value(ws);
    size_t nc = json_array_size(ch);
    if (nc > 1 << 16)
        return llm_err_set(LLM_EFORMAT, "'%s': engine field 'gemm.choices' has %zu entries", path,
                           nc);
    if (nc && !(e->gemm = calloc(nc, sizeof *e->gemm)))
        return llm_err_set(LLM_ENOMEM, "out of memory");
    e->n_gemm = (int)nc;
    int all = nc > 0;
    json_array_foreach(ch, i, v)
    {
        if ((rc = choice_from_json(v, path, (int)i, &e->gemm[i]))) {
            llm_ea_info_free(e);
            return rc;
        }
        all &= e->gemm[i].measured;
    }
    e->gemm_measured = all;
    return 0;
}

/* ---- building -------------------------------------------------------------------------- */

struct pending {
    int layer, is_bias, have[2];
    int ndim;
    int64_t shape[LLM_MAX_DIMS]; /* of one half */
    uint64_t half;               /* bytes of one half in the compute dtype */
    uint8_t *buf;                /* both halves */
};

struct llm_ea_builder {
    char *path;
    struct llm_artifact *ar;
    json_t *meta0; /* the metadata at open (a pipe's trailer comes later) */
    struct llm_model_desc d;
    /* hashing a regular input file behind the reader */
    struct llm_map map;
    int mapped;
    XXH3_state_t *xs;
    uint64_t hashed;
};

static void hash_upto(struct llm_ea_builder *b, uint64_t end)
{
    const uint64_t chunk = (uint64_t)32 << 20;
    if (!b->mapped || end > b->map.len) return;
    while (b->hashed < end) {
        uint64_t n = end - b->hashed < chunk ? end - b->hashed : chunk;
        XXH3_64bits_update(b->xs, (const uint8_t *)b->map.data + b->hashed, (size_t)n);
        llm_map_release(&b->map, b->hashed, n);
        b->hashed += n;
    }
}

int llm_ea_build_open(struct llm_ea_builder **out, const char *in_path)
{
    return llm_ea_build_open_flags(out, in_path, 0);
}

int llm_ea_build_open_flags(struct llm_ea_builder **out, const char *in_path, unsigned flags)
{
    *out = NULL;
    struct llm_ea_builder *b = calloc(1, sizeof *b);
    if (!b) return llm_err_set(LLM_ENOMEM, "out of memory");
    llm_desc_init(&b->d);
    b->map.fd = -1;
    b->path = strdup(in_path ? in_path : "-");
    int rc = b->path ? 0 : llm_err_set(LLM_ENOMEM, "out of memory");
    int verify = !(flags & LLM_MODEL_NO_VERIFY);
    if (!rc) rc = llm_ar_open(&b->ar, b->path, verify ? LLM_AR_VERIFY : 0);
    if (rc) goto fail;
    /* a file is checked whole before anything is written, one tensor at a
     * time (pages dropped after each); a pipe tensor by tensor as it arrives */
    for (size_t i = 0; verify && llm_ar_is_seekable(b->ar) && i < llm_ar_count(b->ar); i++) {
        struct llm_tensor t;
        if ((rc = llm_ar_get(b->ar, i, &t))) goto fail;
        llm_ar_release(b->ar, i);
    }
    const char *p = llm_ar_path(b->ar);
    const json_t *meta = llm_ar_meta(b->ar);
    if (!(b->meta0 = json_deep_copy(meta))) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
        goto fail;
    }
    if (llm_ea_present(meta)) {
        rc = llm_err_set(LLM_EINVAL,
                         "'%s': already an engine (built by llm-build); build from "
                         "the artifact it was made from",
                         p);
        goto fail;
    }
    const json_t *model = json_object_get(meta, "model");
    if (!json_is_object(model)) {
        rc = llm_err_set(LLM_EFORMAT, "'%s': metadata has no \"model\" description", p);
        goto fail;
    }
    if ((rc = llm_desc_from_json(&b->d, model))) {
        llm_err_wrap(rc, "'%s': model description", p);
        goto fail;
    }
    struct llm_quant q;
    if ((rc = llm_quant_from_json(&q, json_object_get(meta, "quantization"), p))) goto fail;
    /* an engine is for the CUDA backend: refuse what it cannot run, by name */
    if ((rc = llm_desc_supported(&b->d, &q, &llm_cuda_caps, p))) goto fail;
    const json_t *ws = json_object_get(json_object_get(meta, "mapping"), "world_size");
    if (json_is_integer(ws) && json_integer_value(ws) != 1) {
        rc = llm_err_set(LLM_EUNSUPPORTED,
                         "'%s': one rank of a %lld-way split model; llm-build "
                         "takes whole models only",
                         p, (long long)json_integer_value(ws));
        goto fail;
    }
    if (llm_ar_is_seekable(b->ar) && strcmp(b->path, "-")) {
        if ((rc = llm_map_file(b->path, &b->map))) goto fail;
        b->mapped = 1;
        if (!(b->xs = XXH3_createState())) {
            rc = llm_err_set(LLM_ENOMEM, "out of memory");
            goto fail;
        }
        XXH3_64bits_reset(b->xs);
    }
    *out = b;
    return 0;
fail:
    llm_ea_build_close(b);
    return rc;
}

const struct llm_model_desc *llm_ea_build_desc(const struct llm_ea_builder *b)
{
    return &b->d;
}

void llm_ea_build_close(struct llm_ea_builder *b)
{
    if (!b) return;
    if (b->mapped) llm_unmap(&b->map);
    if (b->xs) XXH3_freeState(b->xs);
    llm_ar_close(b->ar);
    json_decref(b->meta0);
    llm_desc_free(&b->d);
    free(b->path);
    free(b);
}

/* Convert n elements into dst (dst_dt) a chunk at a time. */
static int convert_into(void *dst, int dst_dt, const struct llm_tensor *t, uint64_t n,
                        const char *path)
{
    const uint64_t chunk = (uint64_t)1 << 22;
    int sbits = llm_dtype_bits(t->dtype), dbits = llm_dtype_bits(dst_dt);
    for (uint64_t off = 0; off < n; off += chunk) {
        uint64_t c = n - off < chunk ? n - off : chunk;
        int rc =
            llm_convert((uint8_t *)dst + off * (uint64_t)dbits / 8, dst_dt,
                        (const uint8_t *)t->data + off * (uint64_t)sbits / 8, t->dtype, (size_t)c);
        if (rc)
            return llm_err_set(rc, "'%s': tensor '%s': cannot convert %s to %s", path, t->name,
                               llm_dtype_name(t->dtype), llm_dtype_name(dst_dt));
    }
    return 0;
}

/* Names the description says the model has, sorted, with a seen flag each. */
struct expected {
    char (*names)[LLM_NAME_MAX];
    size_t n;
    unsigned char *seen;
};

static int cmp_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void expect_mark(struct expected *x, const char *name)
{
    char(*hit)[LLM_NAME_MAX] = bsearch(name, x->names, x->n, LLM_NAME_MAX, cmp_name);
    if (hit) x->seen[hit - x->names] = 1;
}

/* The output's metadata: the input's members, the model description with
 * the compute dtype, the engine member, and the chain with our entry. */
static json_t *engine_meta(const struct llm_ea_builder *b, const struct llm_ea_info *e,
                           const json_t *prov_entry)
{
    struct llm_model_desc d2 = b->d;
    d2.dtype = e->compute_dtype;
    json_t *model = llm_desc_to_json(&d2); /* shares the longrope arrays: only read */
    json_t *eng = llm_ea_info_to_json(e);
    json_t *m = json_object(), *chain = json_array();
    int bad = !model || !eng || !m || !chain;
    const char *k;
    json_t *v;
    json_object_foreach(b->meta0, k, v)
    {
        if (bad) break;
        if (!strcmp(k, "format") || !strcmp(k, "engine")) continue;
        if (!strcmp(k, "provenance")) {
            if (json_is_array(v)) bad |= json_array_extend(chain, v) != 0;
            bad |= json_object_set(m, k, chain) != 0;
        } else if (!strcmp(k, "model")) {
            bad |= json_object_set(m, k, model) != 0;
        } else {
            bad |= json_object_set(m, k, v) != 0;
        }
    }
    if (!bad && !json_object_get(m, "provenance")) bad |= json_object_set(m, "provenance", chain);
    json_t *entry = json_deep_copy(prov_entry);
    if (!bad && entry) json_object_del(entry, "inputs");
    bad |= !entry || json_array_append_new(chain, entry);
    bad |= json_object_set(m, "engine", eng) != 0;
    json_decref(model);
    json_decref(eng);
    json_decref(chain);
    if (bad) {
        json_decref(m);
        return NULL;
    }
    return m;
}

/* The trailer: the complete chain (the input's, with its trailer read) plus
 * our entry with the input's name, size and hash; and any other member a
 * pipe's trailer changed. */
static json_t *engine_trailer(const struct llm_ea_builder *b, const json_t *prov_entry)
{
    const json_t *fin = llm_ar_meta(b->ar);
    json_t *t = json_object(), *chain = json_array();
    json_t *entry = json_deep_copy(prov_entry);
    json_t *input = b->mapped ? json_pack("{s:s, s:I, s:s}", "path", b->path, "size",
                                          (json_int_t)b->map.len, "xxh3", "")
                              : json_pack("{s:s}", "path", b->path);
    int bad = !t || !chain || !entry || !input;
    if (!bad && b->mapped) {
        char h[17];
        snprintf(h, sizeof h, "%016llx", (unsigned long long)XXH3_64bits_digest(b->xs));
        bad |= json_object_set_new(input, "xxh3", json_string(h));
    }
    const json_t *c0 = json_object_get(fin, "provenance");
    if (!bad && json_is_array(c0)) bad |= json_array_extend(chain, (json_t *)c0);
    if (!bad) {
        bad |= json_object_set_new(entry, "inputs", json_pack("[O]", input));
        bad |= json_array_append(chain, entry);
        bad |= json_object_set(t, "provenance", chain);
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)fin, k, v)
    {
        if (bad) break;
        if (!strcmp(k, "format") || !strcmp(k, "provenance") || !strcmp(k, "model") ||
            !strcmp(k, "engine"))
            continue;
        if (!json_equal(v, json_object_get(b->meta0, k))) bad |= json_object_set(t, k, v);
    }
    json_decref(input);
    json_decref(entry);
    json_decref(chain);
    if (bad) {
        json_decref(t);
        return NULL;
    }
    return t;
}

static int is_mlp_pair(const char *suffix, int *second, int *is_bias)
{
    static const char *const s[4] = {"mlp.fc.weight", "mlp.gate.weight", "mlp.fc.bias",
                                     "mlp.gate.bias"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(suffix, s[i])) {
            *second = i & 1;
            *is_bias = i >> 1;
            return 1;
        }
    return 0;
}

/* One engine build in progress. */
struct build {
    struct llm_ea_builder *b;
    const char *p; /* the input, for messages */
    int dt;        /* compute dtype */
    struct expected x;
    struct pending *pend;
    int n_pend, cap_pend;
    struct llm_aw *w;
    size_t n_out;
    const struct llm_ea_build_cb *cb;
};

/* Tensor i has been written: release its pages, hash the input up to the next. */
static void passed(struct build *s, size_t i)
{
    struct llm_ea_builder *b = s->b;
    llm_ar_release(b->ar, i);
    if (b->mapped && i + 1 < llm_ar_count(b->ar)) hash_upto(b, llm_ar_offset(b->ar, i + 1));
}

static int emit(struct build *s, const char *name, int dt, int ndim, const int64_t *shape,
                const void *data, uint64_t nbytes)
{
    int rc = llm_aw_add(s->w, name, dt, ndim, shape, data, nbytes);
    if (!rc && s->cb && s->cb->tensor) s->cb->tensor(s->cb->ctx, s->n_out, name, dt, ndim, shape, nbytes);
    s->n_out++;
    return rc;
}

/* The description's shape, a float dtype, and the size. */
static int check_input(struct build *s, const struct llm_tensor *t, uint64_t *numel)
{
    char sh[160], sh2[160];
    int ndim;
    int64_t want[LLM_MAX_DIMS];
    if (llm_desc_tensor_shape(&s->b->d, t->name, &ndim, want) == 0) {
        int same = ndim == t->ndim;
        for (int k = 0; same && k < ndim; k++)
            same = want[k] == t->shape[k];
        if (!same)
            return llm_err_set(LLM_ESHAPE, "'%s': tensor '%s' has shape %s, expected %s", s->p,
                               t->name, llm_shape_str(sh, sizeof sh, t->ndim, t->shape),
                               llm_shape_str(sh2, sizeof sh2, ndim, want));
    } else {
        llm_err_clear();
        llm_debug("'%s': tensor '%s' is not part of the model description; kept", s->p, t->name);
    }
    expect_mark(&s->x, t->name);
    if (!llm_dtype_is_float(t->dtype))
        return llm_err_set(LLM_EUNSUPPORTED,
                           "'%s': tensor '%s' is %s: only float weights can go into an engine",
                           s->p, t->name, llm_dtype_name(t->dtype));
    if (llm_shape_numel(t->ndim, t->shape, numel))
        return llm_err_set(LLM_ERANGE, "'%s': tensor '%s': shape overflows", s->p, t->name);
    return 0;
}

/* The pending fc/gate pair of (layer, is_bias), created on first sight. */
static int pending_of(struct build *s, const struct llm_tensor *t, int layer, int is_bias,
                      uint64_t numel, struct pending **out)
{
    int k = 0;
    while (k < s->n_pend && !(s->pend[k].layer == layer && s->pend[k].is_bias == is_bias))
        k++;
    if (k == s->n_pend) {
        if (s->n_pend == s->cap_pend) {
            int nc = s->cap_pend ? 2 * s->cap_pend : 8;
            struct pending *np = realloc(s->pend, sizeof *np * (size_t)nc);
            if (!np) return llm_err_set(LLM_ENOMEM, "out of memory");
            s->pend = np;
            s->cap_pend = nc;
        }
        struct pending *q = &s->pend[s->n_pend];
        memset(q, 0, sizeof *q);
        q->layer = layer;
        q->is_bias = is_bias;
        q->ndim = t->ndim;
        memcpy(q->shape, t->shape, sizeof q->shape);
        if (llm_dtype_nbytes(s->dt, numel, &q->half) || q->half > UINT64_MAX / 2 ||
            !(q->buf = malloc(q->half ? 2 * q->half : 1)))
            return llm_err_set(LLM_ENOMEM, "'%s': tensor '%s': out of memory", s->p, t->name);
        s->n_pend++;
    }
    *out = &s->pend[k];
    return 0;
}

/* One half of a gated MLP's fc/gate pair; the fused tensor is written once
 * both halves have arrived. */
static int add_half(struct build *s, const struct llm_tensor *t, size_t i, int layer, int second,
                    int is_bias, uint64_t numel)
{
    struct pending *q = NULL;
    int rc = pending_of(s, t, layer, is_bias, numel, &q);
    if (rc) return rc;
    int same = q->ndim == t->ndim;
    for (int j = 0; same && j < t->ndim; j++)
        same = q->shape[j] == t->shape[j];
    if (!same || q->have[second]) {
        char sh[160], sh2[160];
        return llm_err_set(LLM_ESHAPE, "'%s': tensor '%s' has shape %s, its %s partner %s", s->p,
                           t->name, llm_shape_str(sh, sizeof sh, t->ndim, t->shape),
                           second ? "mlp.fc" : "mlp.gate",
                           llm_shape_str(sh2, sizeof sh2, q->ndim, q->shape));
    }
    if ((rc = convert_into(q->buf + (second ? q->half : 0), s->dt, t, numel, s->p))) return rc;
    q->have[second] = 1;
    passed(s, i);
    if (!(q->have[0] && q->have[1])) return 0;
    char name[LLM_NAME_MAX];
    llm_name_layer(name, sizeof name, layer, is_bias ? LLM_EA_FC_GATE_BIAS : LLM_EA_FC_GATE_WEIGHT);
    int64_t fshape[LLM_MAX_DIMS];
    memcpy(fshape, q->shape, sizeof fshape);
    fshape[0] *= 2;
    rc = emit(s, name, s->dt, q->ndim, fshape, q->buf, 2 * q->half);
    free(q->buf);
    *q = s->pend[--s->n_pend];
    return rc;
}

/* Any other tensor, in the compute dtype (the lm_head's bias in f32). */
static int add_plain(struct build *s, const struct llm_tensor *t, size_t i, uint64_t numel)
{
    int odt = !strcmp(t->name, "lm_head.bias") ? LLM_DTYPE_F32 : s->dt;
    uint64_t nbytes;
    if (llm_dtype_nbytes(odt, numel, &nbytes))
        return llm_err_set(LLM_ERANGE, "'%s': tensor '%s': shape overflows", s->p, t->name);
    const void *data = t->data;
    void *buf = NULL;
    int rc = 0;
    if (odt != t->dtype) {
        if (!(buf = malloc(nbytes ? nbytes : 1)))
            return llm_err_set(LLM_ENOMEM, "'%s': tensor '%s': out of memory (%llu bytes)", s->p,
                               t->name, (unsigned long long)nbytes);
        rc = convert_into(buf, odt, t, numel, s->p);
        data = buf;
    }
    if (!rc) rc = emit(s, t->name, odt, t->ndim, t->shape, data, nbytes);
    free(buf);
    if (!rc) passed(s, i);
    return rc;
}

/* After the last tensor: no half pair left and every expected tensor seen. */
static int check_complete(const struct build *s)
{
    if (s->n_pend) {
        const struct pending *q = &s->pend[0];
        char name[LLM_NAME_MAX];
        llm_name_layer(name, sizeof name, q->layer, q->have[0] ? "mlp.gate" : "mlp.fc");
        return llm_err_set(LLM_ENOTFOUND, "'%s': layer %d has %s but no '%s.%s'", s->p, q->layer,
                           q->have[0] ? "mlp.fc" : "mlp.gate", name, q->is_bias ? "bias" : "weight");
    }
    for (size_t k = 0; k < s->x.n; k++)
        if (!s->x.seen[k]) return llm_err_set(LLM_ENOTFOUND, "'%s': no tensor '%s'", s->p, s->x.names[k]);
    return 0;
}

int llm_ea_build_run(struct llm_ea_builder *b, const char *out_path, const struct llm_ea_info *info,
                     const json_t *prov_entry, const struct llm_ea_build_cb *cb)
{
    const struct llm_model_desc *d = &b->d;
    struct llm_ea_info e = *info;
    e.fused_gate = d->gated_mlp;
    e.version = LLM_EA_VERSION;
    struct build s = {.b = b, .p = llm_ar_path(b->ar), .dt = e.compute_dtype, .cb = cb};
    int rc = llm_ea_limits_check(d, s.dt, &e.lim);
    if (rc) return rc;
    if (!json_is_object(prov_entry))
        return llm_err_set(LLM_EINVAL, "engine build: the provenance entry must be an object");
    json_t *meta = NULL, *trailer = NULL;
    if ((rc = llm_desc_tensor_names(d, &s.x.names, &s.x.n))) return rc;
    qsort(s.x.names, s.x.n, LLM_NAME_MAX, cmp_name);
    if (!(s.x.seen = calloc(s.x.n ? s.x.n : 1, 1))) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
        goto out;
    }
    if (!(meta = engine_meta(b, &e, prov_entry))) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory building the engine metadata");
        goto out;
    }
    struct llm_aw_opts ao = {0};
    if ((rc = llm_aw_create(&s.w, out_path ? out_path : "-", meta, &ao))) goto out;
    for (size_t i = 0;; i++) {
        struct llm_tensor t;
        int r = llm_ar_next(b->ar, &t);
        if (r <= 0) {
            rc = r;
            break;
        }
        uint64_t numel;
        if ((rc = check_input(&s, &t, &numel))) break;
        const char *suffix = NULL;
        int layer = llm_name_parse_layer(t.name, &suffix), second = 0, is_bias = 0;
        if (d->gated_mlp && layer >= 0 && is_mlp_pair(suffix, &second, &is_bias))
            rc = add_half(&s, &t, i, layer, second, is_bias, numel);
        else
            rc = add_plain(&s, &t, i, numel);
        if (rc) break;
    }
    if (!rc) rc = check_complete(&s);
    if (rc) goto out;
    if (b->mapped) hash_upto(b, b->map.len);
    if (!(trailer = engine_trailer(b, prov_entry))) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory building the engine trailer");
        goto out;
    }
    if ((rc = llm_aw_set_trailer(s.w, trailer))) goto out;
    rc = llm_aw_finish(s.w);
    s.w = NULL;
out:
    llm_aw_abort(s.w);
    for (int k = 0; k < s.n_pend; k++)
        free(s.pend[k].buf);
    free(s.pend);
    free(s.x.names);
    free(s.x.seen);
    json_decref(meta);
    json_decref(trailer);
    return rc;
}
