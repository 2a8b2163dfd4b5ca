/* engine_artifact.c - the deployable engine (llm/engine_artifact.h): its
 * "engine" metadata member, the architecture check, build limits and the
 * list of matrix products worth an algorithm choice.  The streaming build
 * that turns an artifact into an engine is engine_build.c.
 *
 * Design: an engine is an artifact whose metadata gains one member, so
 * everything here is plain data and JSON, checked field by field.
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

