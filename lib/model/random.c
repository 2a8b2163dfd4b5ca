/* random.c - random weights in a published shape: the values, and a model
 * that has them without an artifact.
 *
 * The values are counter-based, so any element can be computed on its own:
 * element i of a tensor is a function of (seed, tensor name, i) alone.
 * llm-convert --random writes them into an artifact; llm_model_random opens
 * the same model straight from a config.json, with no file of weights at
 * all: its tensors carry shapes but no data until a backend asks.  The CPU
 * backend asks for them on the host (llm_model_host_data); the CUDA backend
 * computes them on the device (kernels: llm_k_fill_random), element for
 * element the same numbers.  A 47-billion-parameter shape then loads in
 * seconds and needs no disk, which is what a benchmark of a published
 * shape wants.
 *
 * "CONFIG.json:MODE[,OPTION...]" is the same model quantized as
 * llm-quantize -m MODE would write it: the tensors it writes (each
 * quantized weight followed by its side tensors, in its order, then the
 * KV cache scales), their dtypes and shapes, its quantization section and
 * its default exclusions (lm_head, MoE routers; a MoE model it refuses).
 * The weights' codes are made like the values, on request (llm/random.h);
 * the side tensors are small and constant, so they are made at the open.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/graph.h"
#include "llm/hf.h"
#include "llm/model.h"
#include "llm/random.h"
#include "llm/weight.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

int llm_rand_fill_of(const char *name)
{
    int norm = strstr(name, "layernorm.") || strstr(name, "ln_f.") || strstr(name, "norm.");
    if (norm && ends_with(name, ".weight")) return LLM_RAND_ONE;
    if (norm && ends_with(name, ".bias")) return LLM_RAND_ZERO;
    return LLM_RAND_NORMAL;
}

uint64_t llm_rand_state(uint64_t seed, const char *name)
{
    return seed ^ XXH3_64bits(name, strlen(name));
}

void llm_rand_fill(float *dst, size_t n, int fill, uint64_t state, uint64_t first)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = fill == LLM_RAND_NORMAL ? llm_rand_value(state, first + i)
                 : fill == LLM_RAND_ONE  ? 1.0f
                                         : 0.0f;
}

int llm_rand_is_quant(int dt)
{
    return dt == LLM_DTYPE_F8E4M3 || dt == LLM_DTYPE_I8 || dt == LLM_DTYPE_I4;
}

/* A quantized weight's codes (llm/random.h), numel elements. */
static void rand_codes(uint8_t *dst, int dt, uint64_t numel, int fill, uint64_t state)
{
    if (dt == LLM_DTYPE_I4) {
        for (uint64_t k = 0; k < numel / 2 + (numel & 1); k++)
            dst[k] = llm_rand_i4_byte(state, k, numel, fill);
        return;
    }
    for (uint64_t i = 0; i < numel; i++) {
        float v = llm_rand_fill_value(state, i, fill);
        dst[i] = dt == LLM_DTYPE_F8E4M3 ? llm_rand_to_e4m3(v) : (uint8_t)llm_rand_to_i8(v);
    }
}

int llm_rand_tensor(void *dst, int dt, uint64_t numel, const char *name, uint64_t seed)
{
    enum { CH = 1 << 16 };
    uint64_t state = llm_rand_state(seed, name);
    int fill = llm_rand_fill_of(name), rc = 0;
    if (llm_rand_is_quant(dt)) {
        rand_codes(dst, dt, numel, fill, state);
        return 0;
    }
    float *chunk = malloc(CH * sizeof(float));
    if (!chunk) return llm_err_set(LLM_ENOMEM, "out of memory");
    size_t esz = (size_t)llm_dtype_bits(dt) / 8;
    for (uint64_t i = 0; i < numel && !rc; i += CH) {
        size_t m = numel - i < CH ? (size_t)(numel - i) : CH;
        llm_rand_fill(chunk, m, fill, state, i);
        rc = llm_convert((char *)dst + i * esz, dt, chunk, LLM_DTYPE_F32, m);
    }
    free(chunk);
    return rc;
}

int llm_rand_dtype(int dt)
{
    if (!llm_dtype_is_float(dt) || dt == LLM_DTYPE_F8E4M3 || dt == LLM_DTYPE_F8E5M2 ||
        dt == LLM_DTYPE_F64)
        return LLM_DTYPE_BF16;
    return dt;
}

/* ---- naming a quantization ------------------------------------------------
 * "CONFIG.json:MODE[,OPTION=VALUE...]": MODE is an llm-quantize mode, the
 * options its flags (group-size=N for w4a16, int4-awq and w4a8-awq,
 * act=static or dynamic for int8-sq, kv=fp8 or int8 with any mode or
 * alone).  The defaults are llm-quantize's: group size 128, dynamic int8
 * activations, SmoothQuant's factors (alpha 0.5) folded into the norms
 * where it folds them and smoothers elsewhere, lm_head and MoE routers
 * kept dense. */

size_t llm_rand_spec_split(const char *spec, const char **quant)
{
    const char *c = strrchr(spec, ':');
    *quant = NULL;
    if (!c || strpbrk(c + 1, "/.")) return strlen(spec);
    *quant = c + 1;
    return (size_t)(c - spec);
}

static const struct {
    const char *name;
    int algo;
} rand_modes[] = {
    {"fp8", LLM_QUANT_FP8},
    {"fp8-pc", LLM_QUANT_FP8_PC_PT},
    {"int8-sq", LLM_QUANT_W8A8_SQ_PC_PT},
    {"w8a16", LLM_QUANT_W8A16},
    {"w4a16", LLM_QUANT_W4A16},
    {"int4-awq", LLM_QUANT_W4A16_AWQ},
    {"w4a8-awq", LLM_QUANT_W4A8_AWQ},
};
#define RAND_MODES "fp8, fp8-pc, int8-sq, w8a16, w4a16, int4-awq, w4a8-awq"
#define RAND_GROUP_DEFAULT 128

static int is_awq(int algo)
{
    return algo == LLM_QUANT_W4A16_AWQ || algo == LLM_QUANT_W4A8_AWQ;
}

static int is_int4(int algo)
{
    return algo == LLM_QUANT_W4A16 || is_awq(algo);
}

/* One OPTION=VALUE item of the quantization text. */
static int parse_option(const char *src, const char *key, const char *val, long *group,
                        int *act, int *kv)
{
    if (!strcmp(key, "group-size")) {
        char *e;
        *group = strtol(val, &e, 10);
        if (*val && !*e && *group >= 2 && *group <= 1 << 20 && !(*group % 2)) return 0;
        return llm_err_set(LLM_EINVAL, "'%s': group-size=%s is not an even number of input "
                           "channels", src, val);
    }
    if (!strcmp(key, "act")) {
        if (strcmp(val, "static") && strcmp(val, "dynamic"))
            return llm_err_set(LLM_EINVAL, "'%s': act=%s is not static or dynamic", src, val);
        *act = !strcmp(val, "static") ? 1 : 2;
        return 0;
    }
    if (!strcmp(key, "kv")) {
        *kv = !strcmp(val, "fp8") ? LLM_KV_QUANT_FP8 : !strcmp(val, "int8") ? LLM_KV_QUANT_INT8 : -1;
        if (*kv > 0) return 0;
        return llm_err_set(LLM_EINVAL, "'%s': kv=%s is not fp8 or int8", src, val);
    }
    return llm_err_set(LLM_EINVAL, "'%s': unknown quantization option '%s' (group-size, act, "
                       "kv)", src, key);
}

/* The quantization section llm-quantize would write for `text`. */
static int parse_quant(const char *src, const char *text, struct llm_quant *q)
{
    long group = 0;
    int act = 0, kv = 0, mode = -1, rc = 0;
    llm_quant_init(q);
    for (const char *p = text; !rc; p++) {
        char item[64];
        size_t len = strcspn(p, ",");
        if (!len || len >= sizeof item)
            return llm_err_set(LLM_EINVAL, "'%s': %s quantization item in '%s'", src,
                               len ? "an overlong" : "an empty", text);
        memcpy(item, p, len);
        item[len] = 0;
        char *eq = strchr(item, '=');
        if (eq) {
            *eq = 0;
            rc = parse_option(src, item, eq + 1, &group, &act, &kv);
        } else if (mode >= 0) {
            rc = llm_err_set(LLM_EINVAL, "'%s': two quantization modes ('%s' and '%s')", src,
                             rand_modes[mode].name, item);
        } else {
            for (int i = 0; i < (int)(sizeof rand_modes / sizeof rand_modes[0]); i++)
                if (!strcmp(item, rand_modes[i].name)) mode = i;
            if (mode < 0)
                rc = llm_err_set(LLM_EINVAL, "'%s': unknown quantization mode '%s' (" RAND_MODES
                                 ")", src, item);
        }
        p += len;
        if (!*p) break;
    }
    if (rc) return rc;
    int algo = mode >= 0 ? rand_modes[mode].algo : LLM_QUANT_NONE;
    if (algo == LLM_QUANT_NONE && !kv)
        return llm_err_set(LLM_EINVAL, "'%s': no quantization mode (" RAND_MODES ") or kv=", src);
    if (group && !is_int4(algo))
        return llm_err_set(LLM_EINVAL, "'%s': group-size is for w4a16, int4-awq and w4a8-awq", src);
    if (act && algo != LLM_QUANT_W8A8_SQ_PC_PT)
        return llm_err_set(LLM_EINVAL, "'%s': act is for int8-sq", src);
    q->algo = act == 1 ? LLM_QUANT_W8A8_SQ_PC : algo;
    q->kv_algo = kv;
    q->group_size = is_int4(algo) ? (int)(group ? group : RAND_GROUP_DEFAULT) : 0;
    q->pre_quant_scale = is_awq(algo);
    /* llm-quantize's default --exclude, recorded with any mode (--kv alone too) */
    snprintf(q->exclude[q->n_exclude++], sizeof q->exclude[0], "lm_head");
    snprintf(q->exclude[q->n_exclude++], sizeof q->exclude[0], "*router*");
    return 0;
}

/* ---- the model without a file ---------------------------------------------- */

/* One tensor of a synthetic model: a weight made on request, or a small
 * side tensor (scales) of constant value, made at open. */
struct rand_t {
    char name[LLM_NAME_MAX];
    int dtype, ndim;
    int64_t shape[LLM_MAX_DIMS];
    int side;
    float value; /* side tensors: every element */
};

struct rand_src {
    struct rand_t *t;
    size_t n, cap;
    void **host; /* [n]: the values on the host, once asked for (side tensors: at open) */
    int on_host;
    const struct llm_model *m;
};

static void rand_src_free(void *ctx)
{
    struct rand_src *s = ctx;
    if (!s) return;
    for (size_t i = 0; s->host && i < s->n; i++) free(s->host[i]);
    free(s->host);
    free(s->t);
    free(s);
}

static int plan_add(struct rand_src *s, const char *name, int dtype, int ndim,
                    const int64_t *shape, int side, float value)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        struct rand_t *t = realloc(s->t, cap * sizeof *t);
        if (!t) return llm_err_set(LLM_ENOMEM, "out of memory");
        s->t = t;
        s->cap = cap;
    }
    struct rand_t *t = &s->t[s->n];
    memset(t, 0, sizeof *t);
    if (snprintf(t->name, sizeof t->name, "%s", name) >= (int)sizeof t->name)
        return llm_err_set(LLM_ERANGE, "tensor name '%s' is too long", name);
    t->dtype = dtype;
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    t->side = side;
    t->value = value;
    s->n++;
    return 0;
}

/* "<stem>.<suffix>" [a] (or [a][b]), f32, every element v; for an expert
 * stack of E experts (E > 0) one per expert, [E][a] (or [E][a][b]), as
 * llm-quantize stacks them. */
static int plan_side(struct rand_src *s, const char *stem, const char *suffix, int64_t E, int64_t a,
                     int64_t b, float v)
{
    char name[LLM_NAME_MAX + 40];
    int64_t shape[3] = {E, a, b};
    const int nd = b ? 2 : 1, e = E > 0;
    snprintf(name, sizeof name, "%s.%s", stem, suffix);
    return plan_add(s, name, LLM_DTYPE_F32, nd + e, shape + !e, 1, v);
}

/* The weight dtype of a quantization algorithm. */
static int quant_dtype(int algo)
{
    switch (algo) {
    case LLM_QUANT_FP8:
    case LLM_QUANT_FP8_PC_PT: return LLM_DTYPE_F8E4M3;
    case LLM_QUANT_W4A16:
    case LLM_QUANT_W4A16_AWQ:
    case LLM_QUANT_W4A8_AWQ:
        return LLM_DTYPE_I4;
    default: return LLM_DTYPE_I8;
    }
}

/* Whether llm-quantize quantizes this tensor: a linear weight [out][in]
 * that no exclude pattern matches (a shell pattern, or a part of the name). */
static int quantized(const struct llm_quant *q, const char *name, int ndim)
{
    int slot, layer, is_bias;
    if (q->algo == LLM_QUANT_NONE || (ndim != 2 && ndim != 3)) return 0;
    if (llm_name_to_slot(name, &slot, &layer, &is_bias)) {
        llm_err_clear();
        return 0;
    }
    if (is_bias || llm_wslot_kind(slot) != LLM_WK_LINEAR) return 0;
    for (int i = 0; i < q->n_exclude; i++) {
        const char *p = q->exclude[i];
        if (!fnmatch(p, name, 0) || (!strpbrk(p, "*?[") && strstr(name, p))) return 0;
    }
    return 1;
}

/* int8-sq: whether llm-quantize folds smoothing factors into the norm
 * tensor `name`, or those of the product weight `name` into the norm
 * before it (which then has no smoother): a norm only products read (u,
 * llm_graph_norm_uses), every one of them quantized.  The folded norm is
 * f32 and keeps its values (divided by factors of 1). */
static int sq_folded(const struct llm_model_desc *d, const struct llm_quant *q,
                     const struct llm_norm_use *u, int nu, const char *name)
{
    int slot, layer, is_bias;
    if ((q->algo != LLM_QUANT_W8A8_SQ_PC && q->algo != LLM_QUANT_W8A8_SQ_PC_PT) ||
        (d->norm == LLM_NORM_LAYER && d->norm_offset != 0))
        return 0;
    if (llm_name_to_slot(name, &slot, &layer, &is_bias)) {
        llm_err_clear();
        return 0;
    }
    for (int k = 0; k < nu; k++) {
        int mine = u[k].norm == slot, all = 1;
        for (int i = 0; i < u[k].n; i++) {
            char mn[LLM_NAME_MAX];
            int nd;
            int64_t sh[LLM_MAX_DIMS];
            mine |= u[k].linear[i] == slot;
            llm_name_of_slot(mn, sizeof mn, u[k].linear[i], layer, 0);
            all &= !llm_desc_tensor_shape(d, mn, &nd, sh) && quantized(q, mn, nd);
        }
        llm_err_clear();
        if (mine) return all;
    }
    return 0;
}

/* The side tensors llm-quantize writes after a weight [out][in] (an expert
 * stack: [E][out][in], E > 0), in its order (folded: int8-sq without its
 * smoother). */
static int plan_sides(struct rand_src *s, const struct llm_quant *q, const char *name, int64_t E,
                      int64_t out, int64_t in, int folded)
{
    char stem[LLM_NAME_MAX];
    snprintf(stem, sizeof stem, "%.*s", (int)(strlen(name) - strlen(".weight")), name);
    int rc;
    switch (q->algo) {
    case LLM_QUANT_FP8:
        if ((rc = plan_side(s, stem, LLM_WQ_SCALE, E, 1, 0, LLM_RAND_FP8_SCALE))) return rc;
        return plan_side(s, stem, LLM_WQ_ACT_SCALE, E, 1, 0, LLM_RAND_FP8_ACT_SCALE);
    case LLM_QUANT_FP8_PC_PT:
        return plan_side(s, stem, LLM_WQ_SCALE, E, out, 0, LLM_RAND_FP8_SCALE);
    case LLM_QUANT_W8A16:
        return plan_side(s, stem, LLM_WQ_CHANNEL_SCALE, E, out, 0, LLM_RAND_INT8_SCALE);
    case LLM_QUANT_W8A8_SQ_PC:
    case LLM_QUANT_W8A8_SQ_PC_PT:
        if ((rc = plan_side(s, stem, LLM_WQ_CHANNEL_SCALE, E, out, 0, LLM_RAND_INT8_SCALE)) ||
            (!folded && (rc = plan_side(s, stem, LLM_WQ_SMOOTHER, E, in, 0, 1.0f))))
            return rc;
        if (q->algo == LLM_QUANT_W8A8_SQ_PC)
            return plan_side(s, stem, LLM_WQ_SQ_ACT_SCALE, E, 1, 0, LLM_RAND_INT8_ACT_SCALE);
        return 0;
    default: /* int4 groups */
        if (in % q->group_size)
            return llm_err_set(LLM_EINVAL, "'%s': group size %d does not divide the %lld input "
                               "channels of '%s'", s->m->path, q->group_size, (long long)in, name);
        if ((rc =
                 plan_side(s, stem, LLM_WQ_SCALE, E, in / q->group_size, out, LLM_RAND_INT4_SCALE)))
            return rc;
        if (is_awq(q->algo) && (rc = plan_side(s, stem, LLM_WQ_PREQUANT, E, in, 0, 1.0f)))
            return rc;
        if (q->algo == LLM_QUANT_W4A8_AWQ) /* pre-quant scales of 1: fp8's inputs */
            return plan_side(s, stem, LLM_WQ_ACT_SCALE, E, 1, 0, LLM_RAND_FP8_ACT_SCALE);
        return 0;
    }
}

/* Every tensor of the model: what llm-convert --random writes, then (for a
 * quantization) what llm-quantize makes of it. */
static int plan(struct rand_src *s, const struct llm_model *m)
{
    const struct llm_model_desc *d = &m->desc;
    const struct llm_quant *q = &m->quant;
    char(*names)[LLM_NAME_MAX] = NULL;
    size_t n = 0;
    struct llm_graph g;
    struct llm_norm_use u[8];
    int nu = 0;
    int rc = llm_graph_build(&g, d, NULL);
    if (!rc) nu = llm_graph_norm_uses(&g, u, 8);
    if (nu > 8) nu = 8;
    if (!rc) rc = llm_desc_tensor_names(d, &names, &n);
    for (size_t k = 0; k < n && !rc; k++) {
        int ndim;
        int64_t shape[LLM_MAX_DIMS];
        if ((rc = llm_desc_tensor_shape(d, names[k], &ndim, shape))) break;
        int qz = quantized(q, names[k], ndim), fold = sq_folded(d, q, u, nu, names[k]);
        int dt = qz                                       ? quant_dtype(q->algo)
                 : fold && llm_dtype_bits(d->dtype) <= 32 ? LLM_DTYPE_F32
                                                          : d->dtype;
        rc = plan_add(s, names[k], dt, ndim, shape, 0, 0.f);
        if (!rc && qz)
            rc = ndim == 3 ? plan_sides(s, q, names[k], shape[0], shape[1], shape[2], fold)
                           : plan_sides(s, q, names[k], 0, shape[0], shape[1], fold);
    }
    for (int l = 0; q->kv_algo && l < d->n_layers && !rc; l++) {
        char stem[LLM_NAME_MAX];
        llm_name_layer(stem, sizeof stem, l, "attention");
        rc = plan_side(s, stem, LLM_WQ_KV_SCALE, 0, 2, 0,
                       q->kv_algo == LLM_KV_QUANT_FP8 ? LLM_RAND_KV_FP8_SCALE
                                                      : LLM_RAND_KV_INT8_SCALE);
    }
    free(names);
    return rc;
}

/* Tensor k's shape in bytes. */
static int rand_nbytes(const struct rand_src *s, size_t k, uint64_t *numel, uint64_t *nbytes)
{
    const struct rand_t *t = &s->t[k];
    if (llm_shape_numel(t->ndim, t->shape, numel) || llm_dtype_nbytes(t->dtype, *numel, nbytes))
        return llm_err_set(LLM_ERANGE, "'%s': tensor '%s' is too large", s->m->path, t->name);
    return 0;
}

/* The side tensors' values, on the host from the start. */
static int make_sides(struct rand_src *s)
{
    for (size_t k = 0; k < s->n; k++) {
        uint64_t numel, nbytes;
        if (!s->t[k].side) continue;
        int rc = rand_nbytes(s, k, &numel, &nbytes);
        if (rc) return rc;
        float *v = malloc(nbytes ? nbytes : 1);
        if (!v) return llm_err_set(LLM_ENOMEM, "out of memory");
        for (uint64_t i = 0; i < numel; i++) v[i] = s->t[k].value;
        s->host[k] = v;
    }
    return 0;
}

static int rand_get(void *ctx, const char *name, struct llm_tensor *t)
{
    struct rand_src *s = ctx;
    const struct llm_model *m = s->m;
    size_t k = 0;
    while (k < s->n && strcmp(s->t[k].name, name)) k++;
    if (k == s->n) return LLM_ENOTFOUND;
    const struct rand_t *r = &s->t[k];
    memset(t, 0, sizeof *t);
    t->name = r->name;
    t->dtype = r->dtype;
    t->ndim = r->ndim;
    memcpy(t->shape, r->shape, sizeof(int64_t) * (size_t)r->ndim);
    uint64_t numel;
    int rc = rand_nbytes(s, k, &numel, &t->nbytes);
    if (rc || (!s->on_host && !r->side)) return rc;
    if (!s->host[k]) {
        void *p = malloc(t->nbytes ? t->nbytes : 1);
        if (!p)
            return llm_err_set(LLM_ENOMEM, "'%s': tensor '%s': out of memory (%llu bytes)",
                               m->path, name, (unsigned long long)t->nbytes);
        if ((rc = llm_rand_tensor(p, t->dtype, numel, name, m->rand_seed))) {
            free(p);
            return rc;
        }
        s->host[k] = p;
    }
    t->data = s->host[k];
    return 0;
}

int llm_model_random(struct llm_model **out, const char *config_path, int dtype, uint64_t seed)
{
    *out = NULL;
    if (!config_path) return llm_err_set(LLM_EINVAL, "no config.json given");
    struct llm_model *m = calloc(1, sizeof(*m));
    struct rand_src *s = calloc(1, sizeof(*s));
    const char *qtext;
    size_t clen = llm_rand_spec_split(config_path, &qtext);
    char *cfg = strndup(config_path, clen);
    if (!m || !s || !cfg) {
        free(m);
        free(s);
        free(cfg);
        return llm_err_set(LLM_ENOMEM, "out of memory");
    }
    json_t *config = NULL, *dj = NULL;
    struct llm_model_desc d;
    llm_desc_init(&d);
    llm_desc_init(&m->desc);
    llm_gen_defaults_init(&m->gen);
    llm_model_init_mem(m);
    size_t plen = strlen(config_path) + sizeof "random:";
    int rc = (m->path = malloc(plen)) ? 0 : llm_err_set(LLM_ENOMEM, "out of memory");
    if (!rc) {
        snprintf(m->path, plen, "random:%s", config_path);
        m->get_tensor = rand_get;
        m->get_tensor_ctx = s;
        m->get_tensor_free = rand_src_free;
        m->rand_seed = seed;
        m->synthetic = 1;
        s->m = m;
        if (qtext) rc = parse_quant(m->path, qtext, &m->quant);
    }
    if (!rc) rc = llm_hf_json_load(cfg, &config);
    if (!rc && !json_is_object(config))
        rc = llm_err_set(LLM_EFORMAT, "'%s': not a JSON object", cfg);
    if (!rc) rc = llm_hfconfig_parse(config, NULL, cfg, &d, &m->gen);
    if (!rc) {
        d.dtype = llm_rand_dtype(dtype >= 0 ? dtype : d.dtype);
        /* through the JSON form, as an artifact's reader sees it */
        if (!(dj = llm_desc_to_json(&d)))
            rc = llm_err_set(LLM_ENOMEM, "out of memory");
        else if ((rc = llm_desc_from_json(&m->desc, dj)))
            llm_err_wrap(rc, "'%s'", cfg);
    }
    if (!rc) rc = plan(s, m);
    if (!rc && !(s->host = calloc(s->n ? s->n : 1, sizeof(void *))))
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
    if (!rc) rc = make_sides(s);
    llm_desc_free(&d);
    json_decref(config);
    json_decref(dj);
    free(cfg);
    if (rc) {
        if (m->get_tensor_ctx != s) rand_src_free(s);
        llm_model_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

void llm_model_host_data(struct llm_model *m)
{
    if (m && m->synthetic) ((struct rand_src *)m->get_tensor_ctx)->on_host = 1;
}

size_t llm_model_random_count(const struct llm_model *m)
{
    return m && m->synthetic ? ((const struct rand_src *)m->get_tensor_ctx)->n : 0;
}

const char *llm_model_random_name(const struct llm_model *m, size_t k)
{
    return k < llm_model_random_count(m) ? ((const struct rand_src *)m->get_tensor_ctx)->t[k].name
                                         : NULL;
}
