/* hfconfig.c - Hugging Face config.json (+ generation_config.json) to
 * struct llm_model_desc: what every architecture shares.
 *
 * Design: the registry (lib/model/arch/) says which family a config is and
 * reads the family's own fields; this file holds the readers they share
 * (typed fields with defaults and aliases, sizes, RoPE in both the
 * rope_scaling and transformers 5 rope_parameters forms, sliding windows,
 * the Llama layout), and everything around the family reader: the class
 * lookup, dtype, quantization_config (parsed and kept for the importers),
 * special token ids and generation defaults.  The JSON itself is read
 * tolerantly (lib/formats/hfjson.c); only fields the model needs are
 * strict.  The result always passes llm_desc_validate.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/io.h"
#include "llm/hf.h"
#include "llm/model.h"
#include "../core/text_internal.h"
#include "arch/arch.h"

/* First of keys present and not null; *which names it. */
const json_t *llm_hfc_look(const struct llm_hfc *r, const char *const *keys, const char **which)
{
    for (size_t i = 0; keys[i]; i++) {
        const json_t *v = json_object_get(r->o, keys[i]);
        if (v && !json_is_null(v)) {
            *which = keys[i];
            return v;
        }
    }
    *which = keys[0];
    return NULL;
}

int llm_hfc_has(const struct llm_hfc *r, const char *const *keys)
{
    const char *w;
    return llm_hfc_look(r, keys, &w) != NULL;
}

int llm_hfc_missing(const struct llm_hfc *r, const char *key)
{
    return llm_err_set(LLM_EFORMAT, "'%s': missing field '%s%s'", r->src, r->pre, key);
}

/* Integer field: absent or null gives def (or fails when req). */
int llm_hfc_int(const struct llm_hfc *r, const char *const *keys, int req, int64_t def, int64_t lo,
                 int64_t hi, int64_t *out)
{
    const char *k;
    const json_t *v = llm_hfc_look(r, keys, &k);
    if (!v) {
        if (req) return llm_hfc_missing(r, k);
        *out = def;
        return 0;
    }
    int64_t x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
               fabs(json_real_value(v)) < 9e15) {
        x = (int64_t)json_real_value(v); /* 4096.0 */
    } else {
        return llm_err_set(LLM_EFORMAT, "'%s': field '%s%s' must be an integer, found %s", r->src,
                           r->pre, k, llm_json_type_name(v));
    }
    if (x < lo || x > hi)
        return llm_err_set(LLM_ERANGE, "'%s': field '%s%s' is %lld, expected %lld..%lld", r->src,
                           r->pre, k, (long long)x, (long long)lo, (long long)hi);
    *out = x;
    return 0;
}

int llm_hfc_i32(const struct llm_hfc *r, const char *const *keys, int req, int64_t def, int64_t lo,
                 int64_t hi, int *out)
{
    int64_t v;
    int rc = llm_hfc_int(r, keys, req, def, lo, hi, &v);
    if (!rc) *out = (int)v;
    return rc;
}

/* Number field; lo_open: the lower bound is exclusive. */
int llm_hfc_num(const struct llm_hfc *r, const char *const *keys, int req, double def, double lo,
                 int lo_open, double hi, double *out)
{
    const char *k;
    const json_t *v = llm_hfc_look(r, keys, &k);
    if (!v) {
        if (req) return llm_hfc_missing(r, k);
        *out = def;
        return 0;
    }
    if (!json_is_number(v))
        return llm_err_set(LLM_EFORMAT, "'%s': field '%s%s' must be a number, found %s", r->src,
                           r->pre, k, llm_json_type_name(v));
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || (lo_open && x == lo) || x > hi)
        return llm_err_set(LLM_ERANGE, "'%s': field '%s%s' is %g, expected %s%g..%g", r->src,
                           r->pre, k, x, lo_open ? "more than " : "", lo, hi);
    *out = x;
    return 0;
}

int llm_hfc_bool(const struct llm_hfc *r, const char *const *keys, int def, int *out)
{
    const char *k;
    const json_t *v = llm_hfc_look(r, keys, &k);
    if (!v) {
        *out = def;
        return 0;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
    } else if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
        *out = (int)json_integer_value(v);
    } else {
        return llm_err_set(LLM_EFORMAT, "'%s': field '%s%s' must be true or false, found %s",
                           r->src, r->pre, k, llm_json_type_name(v));
    }
    return 0;
}

int llm_hfc_refuse(const struct llm_hfc *r, const char *key)
{
    const json_t *v = json_object_get(r->o, key);
    if (!v || json_is_null(v) || json_is_false(v) ||
        (json_is_number(v) && json_number_value(v) == 0))
        return 0;
    return llm_err_set(LLM_EUNSUPPORTED, "'%s': %s%s is not supported", r->src, r->pre, key);
}

/* String field; *out NULL when absent or null. */
int llm_hfc_str(const struct llm_hfc *r, const char *const *keys, const char **out)
{
    const char *k;
    const json_t *v = llm_hfc_look(r, keys, &k);
    *out = NULL;
    if (!v) return 0;
    if (!json_is_string(v))
        return llm_err_set(LLM_EFORMAT, "'%s': field '%s%s' must be a string, found %s", r->src,
                           r->pre, k, llm_json_type_name(v));
    *out = json_string_value(v);
    return 0;
}

/* ---- architecture ----------------------------------------------------------- */

static int read_arch(const struct llm_hfc *c, struct llm_model_desc *d)
{
    char b[160];
    const char *mt = NULL;
    int rc = llm_hfc_str(c, KEYS("model_type"), &mt);
    if (rc) return rc;
    const json_t *archs = json_object_get(c->o, "architectures");
    const char *cls = NULL;
    if (archs && !json_is_null(archs)) {
        if (!json_is_array(archs))
            return llm_err_set(LLM_EFORMAT,
                               "'%s': field 'architectures' must be a list of "
                               "strings, found %s",
                               c->src, llm_json_type_name(archs));
        if (json_array_size(archs) > 0) {
            const json_t *a0 = json_array_get(archs, 0);
            if (!json_is_string(a0))
                return llm_err_set(LLM_EFORMAT,
                                   "'%s': field 'architectures' must be a list of "
                                   "strings, found %s in it",
                                   c->src, llm_json_type_name(a0));
            cls = json_string_value(a0);
        }
    }
    d->arch = -1;
    if (cls) {
        d->arch = llm_hf_arch_of_class(cls);
        if (d->arch < 0)
            return llm_err_set(LLM_EUNSUPPORTED, "'%s': unsupported architecture '%s'", c->src,
                               llm_quote(cls, b, sizeof(b)));
    } else if (mt) {
        d->arch = llm_hf_arch_of_model_type(mt);
        if (d->arch < 0)
            return llm_err_set(LLM_EUNSUPPORTED, "'%s': unsupported model_type '%s'", c->src,
                               llm_quote(mt, b, sizeof(b)));
    } else {
        return llm_err_set(LLM_EFORMAT,
                           "'%s': missing field 'architectures' (and no "
                           "'model_type')",
                           c->src);
    }
    const struct llm_arch_def *def = llm_arch_def_of(d->arch);
    if (cls && strlen(cls) < sizeof(d->hf_arch))
        snprintf(d->hf_arch, sizeof(d->hf_arch), "%s", cls);
    else
        snprintf(d->hf_arch, sizeof(d->hf_arch), "%s", def->classes[0]);
    /* model_type values of the known classes are short; keep ours when it is not */
    if (mt && strlen(mt) < sizeof(d->model_type))
        snprintf(d->model_type, sizeof(d->model_type), "%s", mt);
    else
        snprintf(d->model_type, sizeof(d->model_type), "%s", def->model_types[0]);
    return 0;
}

static int read_dtype(const struct llm_hfc *c, struct llm_model_desc *d)
{
    static const struct {
        const char *name;
        int dt;
    } map[] = {
        {"float32", LLM_DTYPE_F32},        {"float", LLM_DTYPE_F32},
        {"fp32", LLM_DTYPE_F32},           {"float16", LLM_DTYPE_F16},
        {"half", LLM_DTYPE_F16},           {"fp16", LLM_DTYPE_F16},
        {"bfloat16", LLM_DTYPE_BF16},      {"bf16", LLM_DTYPE_BF16},
        {"float64", LLM_DTYPE_F64},        {"float8_e4m3fn", LLM_DTYPE_F8E4M3},
        {"float8_e5m2", LLM_DTYPE_F8E5M2},
    };
    const char *s;
    const char *k;
    const json_t *v = llm_hfc_look(c, KEYS("torch_dtype", "dtype"), &k);
    int rc = llm_hfc_str(c, KEYS(k), &s);
    if (rc) return rc;
    d->dtype = LLM_DTYPE_F32; /* transformers' default */
    if (!v) return 0;
    const char *name = strncmp(s, "torch.", 6) ? s : s + 6;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcmp(name, map[i].name)) {
            d->dtype = map[i].dt;
            return 0;
        }
    char b[96];
    return llm_err_set(LLM_EUNSUPPORTED, "'%s': unsupported %s '%s'", c->src, k,
                       llm_quote(s, b, sizeof(b)));
}

void llm_hf_quant_free(struct llm_hf_quant *q)
{
    if (!q) return;
    json_decref(q->raw);
    q->raw = NULL;
}

/* A member of quantization_config (or of its nested config_groups, as
 * compressed-tensors writes them): integer, or -1 when absent. */
static int qc_int(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    if (json_is_integer(v)) return (int)json_integer_value(v);
    if (json_is_boolean(v)) return json_is_true(v);
    return -1;
}

static void qc_str(const json_t *o, const char *k, char *dst, size_t cap)
{
    const json_t *v = json_object_get(o, k);
    if (json_is_string(v)) snprintf(dst, cap, "%s", json_string_value(v));
}

/* quantization_config of pre-quantized checkpoints (AutoAWQ, GPTQ,
 * compressed-tensors, ModelOpt FP8, bitsandbytes, ...): parsed leniently,
 * kept whole for the importers; which of them a conversion can import is
 * the importers' decision, not the config reader's. */
static int read_quant(const struct llm_hfc *c, struct llm_hf_quant *q)
{
    const json_t *qc = json_object_get(c->o, "quantization_config");
    if (!qc || json_is_null(qc)) return 0;
    if (!json_is_object(qc))
        return llm_err_set(LLM_EFORMAT, "'%s': field 'quantization_config' must be an object, "
                           "found %s", c->src, llm_json_type_name(qc));
    if (!q) return 0;
    qc_str(qc, "quant_method", q->method, sizeof q->method);
    if (!q->method[0]) snprintf(q->method, sizeof q->method, "unknown");
    q->bits = qc_int(qc, "bits");
    if (q->bits < 0) q->bits = qc_int(qc, "w_bit");
    q->group_size = qc_int(qc, "group_size");
    if (q->group_size < 0 && json_object_get(qc, "q_group_size")) q->group_size = qc_int(qc, "q_group_size");
    q->zero_point = qc_int(qc, "zero_point");
    if (q->zero_point < 0 && qc_int(qc, "sym") >= 0) q->zero_point = !qc_int(qc, "sym");
    q->desc_act = qc_int(qc, "desc_act");
    qc_str(qc, "version", q->fmt, sizeof q->fmt);
    qc_str(qc, "fmt", q->fmt, sizeof q->fmt);
    qc_str(qc, "format", q->fmt, sizeof q->fmt);
    /* compressed-tensors: bits and group of the first config group's weights */
    const json_t *groups = json_object_get(qc, "config_groups");
    if (json_is_object(groups) && json_object_size(groups)) {
        const char *k;
        const json_t *g;
        json_object_foreach((json_t *)groups, k, g)
        {
            const json_t *w = json_object_get(g, "weights");
            if (q->bits < 0) q->bits = qc_int(w, "num_bits");
            if (q->group_size < 0) q->group_size = qc_int(w, "group_size");
            if (!q->fmt[0]) qc_str(w, "type", q->fmt, sizeof q->fmt);
            break;
        }
    }
    if (q->bits < 0) q->bits = 0;
    if (q->group_size < 0) q->group_size = 0;
    q->raw = json_incref((json_t *)qc);
    return 0;
}

int llm_hfc_act(const struct llm_hfc *c, const char *const *keys, const char *def,
                    struct llm_model_desc *d)
{
    static const struct {
        const char *name;
        int act;
    } map[] = {
        {"silu", LLM_ACT_SILU},           {"swish", LLM_ACT_SILU},
        {"gelu", LLM_ACT_GELU},           {"gelu_python", LLM_ACT_GELU},
        {"gelu_new", LLM_ACT_GELU_TANH},  {"gelu_pytorch_tanh", LLM_ACT_GELU_TANH},
        {"gelu_fast", LLM_ACT_GELU_TANH}, {"gelu_accurate", LLM_ACT_GELU_TANH},
        {"relu", LLM_ACT_RELU},           {"relu2", LLM_ACT_RELU2},
    };
    const char *s;
    const char *k;
    llm_hfc_look(c, keys, &k);
    int rc = llm_hfc_str(c, keys, &s);
    if (rc) return rc;
    if (!s) s = def;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcmp(s, map[i].name)) {
            d->act = map[i].act;
            return 0;
        }
    char b[96];
    return llm_err_set(LLM_EUNSUPPORTED, "'%s': unsupported %s '%s'", c->src, k,
                       llm_quote(s, b, sizeof(b)));
}

/* ---- sizes shared by every family --------------------------------------------- */

int llm_hfc_core(const struct llm_hfc *c, struct llm_model_desc *d, const struct llm_hfc_sizes *k)
{
    int rc = llm_hfc_int(c, KEYS("vocab_size"), 1, 0, 1, INT32_MAX, &d->vocab_size);
    if (!rc) rc = llm_hfc_int(c, k->hidden, 1, 0, 1, 1 << 20, &d->hidden);
    if (!rc) rc = llm_hfc_i32(c, k->layers, 1, 0, 1, LLM_MAX_LAYERS, &d->n_layers);
    if (!rc) rc = llm_hfc_i32(c, k->heads, 1, 0, 1, 1 << 16, &d->n_heads);
    return rc;
}

/* head_dim = hidden / heads, which must divide. */
int llm_hfc_head_dim(const struct llm_hfc *c, struct llm_model_desc *d, const char *hk,
                           const char *nk)
{
    if (d->hidden % d->n_heads)
        return llm_err_set(LLM_EFORMAT, "'%s': %s %lld is not a multiple of %s %d", c->src, hk,
                           (long long)d->hidden, nk, d->n_heads);
    d->head_dim = (int)(d->hidden / d->n_heads);
    return 0;
}

int llm_hfc_check_kv(const struct llm_hfc *c, const struct llm_model_desc *d, const char *kk)
{
    if (d->n_kv_heads < 1 || d->n_kv_heads > d->n_heads || d->n_heads % d->n_kv_heads)
        return llm_err_set(LLM_EFORMAT, "'%s': %s %d does not divide the %d attention heads",
                           c->src, kk, d->n_kv_heads, d->n_heads);
    return 0;
}

/* ---- RoPE -------------------------------------------------------------------- */


static int read_factors(const struct llm_hfc *rr, const char *key, int n, float **out)
{
    const json_t *v = json_object_get(rr->o, key);
    if (!v || json_is_null(v)) return llm_hfc_missing(rr, key);
    if (!json_is_array(v))
        return llm_err_set(LLM_EFORMAT, "'%s': field '%s%s' must be a list of numbers, found %s",
                           rr->src, rr->pre, key, llm_json_type_name(v));
    if (json_array_size(v) != (size_t)n)
        return llm_err_set(LLM_EFORMAT,
                           "'%s': field '%s%s' has %zu entries, expected %d (rotary "
                           "dims / 2)",
                           rr->src, rr->pre, key, json_array_size(v), n);
    float *f = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!f) return llm_err_set(LLM_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, (size_t)i);
        double x = json_is_number(e) ? json_number_value(e) : -1;
        if (!(x > 0) || !isfinite(x) || x > 3.4e38) {
            free(f);
            return llm_err_set(LLM_EFORMAT, "'%s': field '%s%s' entry %d is not a positive number",
                               rr->src, rr->pre, key, i);
        }
        f[i] = (float)x;
    }
    *out = f;
    return 0;
}

/* original_max_position_embeddings for llama3/yarn/longrope: a top-level
 * field wins (Phi-3 keeps it there), then the rope dict, then max_pos. */
static int read_orig(const struct llm_hfc *c, const struct llm_hfc *rr, const struct llm_model_desc *d,
                     int *out)
{
    int64_t v;
    int rc;
    if (llm_hfc_has(c, KEYS("original_max_position_embeddings")))
        rc = llm_hfc_int(c, KEYS("original_max_position_embeddings"), 1, 0, 1, INT32_MAX, &v);
    else
        rc = llm_hfc_int(rr, KEYS("original_max_position_embeddings"), 0, d->max_pos, 1, INT32_MAX, &v);
    if (!rc) *out = (int)v;
    return rc;
}

int llm_hfc_rope(const struct llm_hfc *c, struct llm_model_desc *d, const struct llm_hfc_rope *rd)
{
    char b[96];
    struct llm_rope *p = &d->rope;
    struct llm_hfc rr = {c->src, NULL, "rope_scaling."};
    const json_t *v = json_object_get(c->o, "rope_parameters");
    if (v && !json_is_null(v)) {
        if (!json_is_object(v))
            return llm_err_set(LLM_EFORMAT,
                               "'%s': field 'rope_parameters' must be an object, "
                               "found %s",
                               c->src, llm_json_type_name(v));
        rr.pre = "rope_parameters.";
        /* transformers v5 nests it per layer type for models whose layer
         * types differ; accept that only when all entries agree */
        const char *k;
        const json_t *e, *first = NULL;
        int nested = json_object_size(v) > 0;
        json_object_foreach((json_t *)v, k, e) if (!json_is_object(e)) nested = 0;
        if (nested) {
            json_object_foreach((json_t *)v, k, e)
            {
                if (!first)
                    first = e;
                else if (!json_equal(first, e))
                    return llm_err_set(LLM_EUNSUPPORTED,
                                       "'%s': rope_parameters differ between "
                                       "layer types",
                                       c->src);
            }
            v = first;
        }
        rr.o = v;
    } else {
        v = json_object_get(c->o, "rope_scaling");
        if (v && !json_is_null(v) && !json_is_object(v))
            return llm_err_set(LLM_EFORMAT,
                               "'%s': field 'rope_scaling' must be an object or "
                               "null, found %s",
                               c->src, llm_json_type_name(v));
        rr.o = json_is_object(v) ? v : NULL;
    }
    /* rr.o may stay NULL: jansson's getters return NULL for it */

    int rc;
    const char *const *tk =
        rd->theta_alias ? KEYS("rope_theta", rd->theta_alias) : KEYS("rope_theta");
    const char *const *pk = rd->partial_alias ? KEYS("partial_rotary_factor", rd->partial_alias)
                                              : KEYS("partial_rotary_factor");
    if (llm_hfc_has(&rr, KEYS("rope_theta")))
        rc = llm_hfc_num(&rr, KEYS("rope_theta"), 1, 0, 0, 1, 1e12, &p->theta);
    else
        rc = llm_hfc_num(c, tk, 0, rd->theta, 0, 1, 1e12, &p->theta);
    if (rc) return rc;
    double partial;
    if (llm_hfc_has(&rr, KEYS("partial_rotary_factor")))
        rc = llm_hfc_num(&rr, KEYS("partial_rotary_factor"), 1, 0, 0, 1, 1, &partial);
    else
        rc = llm_hfc_num(c, pk, 0, rd->partial, 0, 1, 1, &partial);
    if (rc) return rc;
    /* transformers: dim = int(head_dim * factor), then arange(0, dim, 2)
     * frequencies, i.e. an odd dim rotates one more */
    int rot = (int)(d->head_dim * partial);
    if (rot % 2) rot++;
    if (rot < 2 || rot > d->head_dim)
        return llm_err_set(LLM_ERANGE,
                           "'%s': partial rotary factor %g of head_dim %d leaves no "
                           "even number of rotary dims",
                           c->src, partial, d->head_dim);
    p->rot_dims = rot;
    p->neox = 1;

    const char *type;
    rc = llm_hfc_str(&rr, KEYS("rope_type", "type"), &type);
    if (rc) return rc;
    if (!type || !strcmp(type, "default")) {
        p->scaling = LLM_ROPE_SCALING_NONE;
        return 0;
    }
    if (!strcmp(type, "linear")) {
        p->scaling = LLM_ROPE_SCALING_LINEAR;
        return llm_hfc_num(&rr, KEYS("factor"), 1, 0, 0, 1, 1e6, &p->factor);
    }
    if (!strcmp(type, "dynamic")) {
        /* transformers grows theta past max_position_embeddings */
        p->scaling = LLM_ROPE_SCALING_DYNAMIC;
        p->orig_max_pos = (int)d->max_pos;
        return llm_hfc_num(&rr, KEYS("factor"), 1, 0, 0, 1, 1e6, &p->factor);
    }
    if (!strcmp(type, "llama3")) {
        p->scaling = LLM_ROPE_SCALING_LLAMA3;
        rc = llm_hfc_num(&rr, KEYS("factor"), 1, 0, 0, 1, 1e6, &p->factor);
        if (!rc) rc = llm_hfc_num(&rr, KEYS("low_freq_factor"), 1, 0, 0, 1, 1e6, &p->low_freq_factor);
        if (!rc) rc = llm_hfc_num(&rr, KEYS("high_freq_factor"), 1, 0, 0, 1, 1e6, &p->high_freq_factor);
        if (!rc && p->high_freq_factor <= p->low_freq_factor)
            rc = llm_err_set(LLM_ERANGE,
                             "'%s': field '%shigh_freq_factor' (%g) must exceed "
                             "low_freq_factor (%g)",
                             c->src, rr.pre, p->high_freq_factor, p->low_freq_factor);
        if (!rc) rc = read_orig(c, &rr, d, &p->orig_max_pos);
        return rc;
    }
    if (!strcmp(type, "longrope") || !strcmp(type, "su") || (rd->phi3 && !strcmp(type, "yarn"))) {
        p->scaling = LLM_ROPE_SCALING_LONGROPE;
        rc = read_orig(c, &rr, d, &p->orig_max_pos);
        if (!rc)
            rc = llm_hfc_num(&rr, KEYS("factor"), 0, (double)d->max_pos / p->orig_max_pos, 0, 1, 1e6,
                       &p->factor);
        if (!rc) rc = llm_hfc_num(&rr, KEYS("attention_factor"), 0, 0, 0, 0, 1e6, &p->attn_factor);
        p->n_factors = 0;
        if (!rc) rc = read_factors(&rr, "long_factor", rot / 2, &p->long_factor);
        if (!rc) rc = read_factors(&rr, "short_factor", rot / 2, &p->short_factor);
        if (!rc) p->n_factors = rot / 2;
        return rc;
    }
    if (!strcmp(type, "yarn")) {
        p->scaling = LLM_ROPE_SCALING_YARN;
        rc = read_orig(c, &rr, d, &p->orig_max_pos);
        /* DeepSeek-style configs leave factor null: max_pos / original */
        if (!rc)
            rc = llm_hfc_num(&rr, KEYS("factor"), 0, (double)d->max_pos / p->orig_max_pos, 0, 1, 1e6,
                       &p->factor);
        if (!rc) rc = llm_hfc_num(&rr, KEYS("attention_factor"), 0, 0, 0, 0, 1e6, &p->attn_factor);
        /* transformers: beta_fast or 32, beta_slow or 1 (0 means default too) */
        if (!rc) rc = llm_hfc_num(&rr, KEYS("beta_fast"), 0, 32, -1e6, 0, 1e6, &p->beta_fast);
        if (!rc) rc = llm_hfc_num(&rr, KEYS("beta_slow"), 0, 1, -1e6, 0, 1e6, &p->beta_slow);
        if (!rc && p->beta_fast == 0) p->beta_fast = 32;
        if (!rc && p->beta_slow == 0) p->beta_slow = 1;
        if (!rc) rc = llm_hfc_num(&rr, KEYS("mscale"), 0, 0, 0, 0, 1e6, &p->mscale);
        if (!rc) rc = llm_hfc_num(&rr, KEYS("mscale_all_dim"), 0, 0, 0, 0, 1e6, &p->mscale_all_dim);
        /* truncate false (GPT-OSS): the ramp's ends stay fractional */
        int truncate = 1;
        if (!rc) rc = llm_hfc_bool(&rr, KEYS("truncate"), 1, &truncate);
        p->yarn_no_truncate = !truncate;
        return rc;
    }
    return llm_err_set(LLM_EUNSUPPORTED, "'%s': unsupported %stype '%s'", c->src, rr.pre,
                       llm_quote(type, b, sizeof(b)));
}

/* ---- sliding window ------------------------------------------------------------ */

int llm_hfc_window(const struct llm_hfc *c, struct llm_model_desc *d, int window, int first_layer,
                   int every_other)
{
    char b[96];
    const json_t *lt = json_object_get(c->o, "layer_types");
    memset(d->layer_window, 0, sizeof(d->layer_window));
    if (lt && !json_is_null(lt)) {
        if (!json_is_array(lt))
            return llm_err_set(LLM_EFORMAT, "'%s': field 'layer_types' must be a list, found %s",
                               c->src, llm_json_type_name(lt));
        if (json_array_size(lt) != (size_t)d->n_layers)
            return llm_err_set(LLM_EFORMAT,
                               "'%s': field 'layer_types' has %zu entries, expected "
                               "%d (num_hidden_layers)",
                               c->src, json_array_size(lt), d->n_layers);
        for (int i = 0; i < d->n_layers; i++) {
            const json_t *e = json_array_get(lt, (size_t)i);
            const char *s = json_is_string(e) ? json_string_value(e) : "";
            if (!strcmp(s, "sliding_attention"))
                d->layer_window[i] = window > 0;
            else if (strcmp(s, "full_attention"))
                return llm_err_set(LLM_EUNSUPPORTED,
                                   "'%s': layer_types[%d] is '%s', not "
                                   "full_attention or sliding_attention",
                                   c->src, i,
                                   json_is_string(e) ? llm_quote(s, b, sizeof(b))
                                                     : llm_json_type_name(e));
        }
    } else if (window > 0) {
        for (int i = first_layer; i < d->n_layers; i++)
            d->layer_window[i] = !every_other || i % 2 == 0;
    }
    int any = 0;
    for (int i = 0; i < d->n_layers; i++)
        any |= d->layer_window[i];
    d->sliding_window = any ? window : 0; /* a window no layer uses is no window */
    return 0;
}

int llm_hfc_text_config(const struct llm_hfc *c, struct llm_hfc *nested,
                        const struct llm_hfc **t)
{
    const json_t *tc = json_object_get(c->o, "text_config");
    *t = c;
    if (!tc || json_is_null(tc)) return 0;
    if (!json_is_object(tc))
        return llm_err_set(LLM_EFORMAT, "'%s': field 'text_config' must be an object, found %s",
                           c->src, llm_json_type_name(tc));
    *nested = (struct llm_hfc){c->src, tc, "text_config."};
    *t = nested;
    return 0;
}

int llm_hfc_text_tied(const struct llm_hfc *c, const struct llm_hfc *t, int *tied)
{
    if (t == c || llm_hfc_has(t, KEYS("tie_word_embeddings"))) return 0; /* already read */
    if (!llm_hfc_has(c, KEYS("tie_word_embeddings"))) return 0;
    return llm_hfc_bool(c, KEYS("tie_word_embeddings"), *tied, tied);
}

int llm_hfc_pattern_types(const struct llm_hfc *c, int n_layers, int64_t def, json_t **out)
{
    int64_t pattern = def;
    *out = NULL;
    int rc = llm_hfc_int(c, KEYS("sliding_window_pattern"), 0, def, 1, 1 << 16, &pattern);
    if (rc) return rc;
    json_t *types = json_array();
    for (int i = 0; types && i < n_layers; i++)
        if (json_array_append_new(types, json_string((i + 1) % pattern ? "sliding_attention"
                                                                        : "full_attention"))) {
            json_decref(types);
            types = NULL;
        }
    if (!types) return llm_err_set(LLM_ENOMEM, "out of memory");
    *out = types;
    return 0;
}

int llm_hfc_layer_ropes(const struct llm_hfc *c, json_t *copy, const char *local_key,
                        double local_def, double *local_theta)
{
    const json_t *rp = json_object_get(c->o, "rope_parameters");
    const int nested = json_is_object(rp) && json_is_object(json_object_get(rp, "full_attention"));
    const json_t *local = nested ? json_object_get(rp, "sliding_attention") : NULL;
    *local_theta = local_def;
    if (nested && json_object_set(copy, "rope_parameters", json_object_get(rp, "full_attention")))
        return llm_err_set(LLM_ENOMEM, "out of memory");
    if (!local || json_is_null(local))
        return local_key ? llm_hfc_num(c, KEYS(local_key), 0, local_def, 0, 1, 1e12, local_theta)
                         : 0;
    if (!json_is_object(local))
        return llm_err_set(LLM_EFORMAT,
                           "'%s': field '%srope_parameters.sliding_attention' must "
                           "be an object, found %s",
                           c->src, c->pre, llm_json_type_name(local));
    char pre[64];
    snprintf(pre, sizeof pre, "%srope_parameters.sliding_attention.", c->pre);
    struct llm_hfc lr = {c->src, local, pre};
    const char *type;
    char b[96];
    int rc = llm_hfc_str(&lr, KEYS("rope_type", "type"), &type);
    if (!rc && type && strcmp(type, "default"))
        rc = llm_err_set(LLM_EUNSUPPORTED,
                         "'%s': %srope_type '%s' is not supported (the sliding "
                         "layers' rotary is unscaled)",
                         c->src, lr.pre, llm_quote(type, b, sizeof b));
    if (!rc) rc = llm_hfc_num(&lr, KEYS("rope_theta"), 0, local_def, 0, 1, 1e12, local_theta);
    return rc;
}

int llm_hfc_local_layers(const struct llm_hfc *c, struct llm_hfc *g, struct llm_model_desc *d,
                         int64_t pattern_def, int64_t window_def)
{
    int64_t window = window_def;
    int rc = 0;
    if (json_object_get(c->o, "sliding_window"))
        rc = llm_hfc_int(g, KEYS("sliding_window"), 0, 0, 0, INT32_MAX, &window);
    const json_t *lt = json_object_get(c->o, "layer_types");
    if (!rc && (!lt || json_is_null(lt))) {
        json_t *types;
        rc = llm_hfc_pattern_types(g, d->n_layers, pattern_def, &types);
        if (!rc && json_object_set_new((json_t *)g->o, "layer_types", types))
            rc = llm_err_set(LLM_ENOMEM, "out of memory");
    }
    if (!rc) rc = llm_hfc_window(g, d, (int)window, 0, 0);
    lt = json_object_get(g->o, "layer_types"); /* checked by llm_hfc_window */
    for (int i = 0; !rc && i < d->n_layers; i++)
        d->layer_local_rope[i] =
            !strcmp(json_string_value(json_array_get(lt, (size_t)i)), "sliding_attention");
    return rc;
}

/* ---- the Llama layout ------------------------------------------------------------ */

int llm_hfc_llama_like(const struct llm_hfc *c, struct llm_model_desc *d,
                       const struct llm_hfc_llama *k)
{
    const struct llm_hfc_sizes sz = {KEYS("hidden_size"), KEYS("num_hidden_layers"),
                                     KEYS("num_attention_heads")};
    int rc = llm_hfc_core(c, d, &sz);
    if (rc) return rc;
    rc = llm_hfc_int(c, KEYS("intermediate_size"), 1, 0, 1, 1 << 22, &d->intermediate);
    if (!rc)
        rc = llm_hfc_i32(c, KEYS("num_key_value_heads"), 0, k->kv_def ? k->kv_def : d->n_heads, 1,
                         1 << 16, &d->n_kv_heads);
    if (!rc) rc = llm_hfc_check_kv(c, d, "num_key_value_heads");
    if (rc) return rc;
    if (llm_hfc_has(c, KEYS("head_dim")))
        rc = llm_hfc_i32(c, KEYS("head_dim"), 1, 0, 1, 1 << 16, &d->head_dim);
    else if (k->head_dim_def > 0)
        d->head_dim = (int)k->head_dim_def;
    else
        rc = llm_hfc_head_dim(c, d, "hidden_size", "num_attention_heads");
    if (!rc)
        rc = llm_hfc_int(c, KEYS("max_position_embeddings"), 0, k->max_pos_def, 1, INT32_MAX,
                         &d->max_pos);
    if (!rc) rc = llm_hfc_num(c, KEYS("rms_norm_eps"), 0, k->eps_def, 0, 1, 1, &d->norm_eps);
    if (rc) return rc;
    d->norm = LLM_NORM_RMS;
    d->gated_mlp = 1;
    d->pos = LLM_POS_ROPE;
    rc = llm_hfc_act(c, KEYS("hidden_act"), k->act_def ? k->act_def : "silu", d);
    if (!rc) rc = llm_hfc_bool(c, KEYS("tie_word_embeddings"), k->tied_def, &d->tied_embeddings);
    if (!rc) rc = llm_hfc_rope(c, d, &k->rope);
    return rc;
}

/* ---- special tokens and generation defaults --------------------------------------- */

/* bos/pad: an id, a list (its first entry) or null (none).  Returns 1 when
 * the key is present, 0 when absent, <0 on error. */
static int read_id(const struct llm_hfc *r, const char *key, int32_t *out)
{
    const json_t *v = json_object_get(r->o, key);
    if (!v) return 0;
    if (json_is_array(v)) v = json_array_size(v) ? json_array_get(v, 0) : json_null();
    /* old configs say -1 for none (LLaMA's pad_token_id) */
    if (json_is_null(v) || (json_is_integer(v) && json_integer_value(v) < 0)) {
        *out = -1;
        return 1;
    }
    if (!json_is_integer(v) || json_integer_value(v) > INT32_MAX)
        return llm_err_set(LLM_EFORMAT,
                           "'%s': field '%s' must be a token id, a list of them or "
                           "null",
                           r->src, key);
    *out = (int32_t)json_integer_value(v);
    return 1;
}

static int read_eos(const struct llm_hfc *r, struct llm_model_desc *d)
{
    const json_t *v = json_object_get(r->o, "eos_token_id");
    if (!v) return 0;
    d->n_eos = 0;
    if (json_is_null(v)) return 1;
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_integer(e) || json_integer_value(e) > INT32_MAX)
            return llm_err_set(LLM_EFORMAT,
                               "'%s': field 'eos_token_id' must be a token id, a "
                               "list of them or null",
                               r->src);
        if (json_integer_value(e) < 0) continue; /* -1: none */
        int32_t id = (int32_t)json_integer_value(e);
        int dup = 0;
        for (int j = 0; j < d->n_eos; j++)
            dup |= d->eos_ids[j] == id;
        if (dup) continue;
        if (d->n_eos == LLM_MAX_EOS)
            return llm_err_set(LLM_ERANGE, "'%s': field 'eos_token_id' has more than %d ids",
                               r->src, LLM_MAX_EOS);
        d->eos_ids[d->n_eos++] = id;
    }
    return 1;
}

static int read_ids(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_arch_def *def = llm_arch_def_of(d->arch);
    d->bos_id = def->bos;
    d->pad_id = def->pad;
    d->n_eos = 0;
    if (def->eos >= 0) d->eos_ids[d->n_eos++] = def->eos;
    /* an id the top level leaves unset (absent or null) comes from the text
     * config where a multimodal config has one (as generate() takes it) */
    const json_t *tc = json_object_get(c->o, "text_config");
    const struct llm_hfc t = {c->src, json_is_object(tc) ? tc : NULL, "text_config."};
    const char *const keys[] = {"bos_token_id", "pad_token_id", "eos_token_id"};
    int rc = 0;
    for (int i = 0; i < 3 && rc >= 0; i++) {
        const json_t *v = json_object_get(c->o, keys[i]);
        const struct llm_hfc *r =
            (!v || json_is_null(v)) && t.o && json_object_get(t.o, keys[i]) ? &t : c;
        rc = i == 2 ? read_eos(r, d) : read_id(r, keys[i], i ? &d->pad_id : &d->bos_id);
    }
    return rc < 0 ? rc : 0;
}

/* generation_config.json: ids present there win; sampling defaults. */
static int read_gen(const struct llm_hfc *g, struct llm_model_desc *d, struct llm_gen_defaults *gd)
{
    if (!json_is_object(g->o)) return llm_err_set(LLM_EFORMAT, "'%s': not a JSON object", g->src);
    int32_t id;
    int rc = read_id(g, "bos_token_id", &id);
    if (rc > 0 && id >= 0) d->bos_id = id;
    if (rc >= 0) rc = read_id(g, "pad_token_id", &id);
    if (rc > 0 && id >= 0) d->pad_id = id;
    if (rc >= 0) {
        const json_t *e = json_object_get(g->o, "eos_token_id");
        if (e && !json_is_null(e)) rc = read_eos(g, d);
    }
    if (rc < 0) return rc;
    if (!gd) return 0;
    struct llm_gen_defaults t = *gd;
    int64_t v;
    rc = llm_hfc_num(g, KEYS("temperature"), 0, t.temperature, 0, 0, 1e6, &t.temperature);
    if (!rc) rc = llm_hfc_int(g, KEYS("top_k"), 0, t.top_k, 0, INT32_MAX, &v);
    if (!rc) t.top_k = (int)v;
    if (!rc) rc = llm_hfc_num(g, KEYS("top_p"), 0, t.top_p, 0, 0, 1, &t.top_p);
    if (!rc) rc = llm_hfc_num(g, KEYS("min_p"), 0, t.min_p, 0, 0, 1, &t.min_p);
    if (!rc)
        rc = llm_hfc_num(g, KEYS("repetition_penalty"), 0, t.repetition_penalty, 0, 1, 1e6,
                   &t.repetition_penalty);
    if (!rc) rc = llm_hfc_bool(g, KEYS("do_sample"), t.do_sample, &t.do_sample);
    if (!rc) rc = llm_hfc_int(g, KEYS("max_new_tokens"), 0, t.max_new_tokens, 0, INT32_MAX, &v);
    if (!rc) t.max_new_tokens = (int)v;
    if (!rc) *gd = t;
    return rc;
}

/* ---- entry points ------------------------------------------------------------------ */

int llm_hfconfig_parse_ex(const json_t *config, const json_t *gen_config, const char *src,
                          struct llm_model_desc *d, struct llm_gen_defaults *g,
                          struct llm_hf_quant *q)
{
    llm_desc_init(d);
    if (g) llm_gen_defaults_init(g);
    if (q) memset(q, 0, sizeof *q);
    if (!src) src = "config.json";
    if (!json_is_object(config)) return llm_err_set(LLM_EFORMAT, "'%s': not a JSON object", src);
    struct llm_hfc c = {src, config, ""};
    int rc = read_arch(&c, d);
    if (!rc) rc = read_quant(&c, q);
    if (!rc) rc = read_dtype(&c, d);
    if (!rc) rc = llm_arch_def_of(d->arch)->read_config(&c, d);
    if (!rc) rc = read_ids(&c, d);
    if (!rc && gen_config) {
        /* name generation_config.json next to config.json in messages */
        char gsrc[1024];
        const char *slash = strrchr(src, '/');
        snprintf(gsrc, sizeof(gsrc), "%.*sgeneration_config.json",
                 slash ? (int)(slash - src + 1) : 0, src);
        struct llm_hfc gr = {gsrc, gen_config, ""};
        rc = read_gen(&gr, d, g);
    }
    if (!rc) {
        rc = llm_desc_validate(d);
        if (rc) llm_err_wrap(rc, "'%s'", src);
    }
    if (rc) {
        llm_desc_free(d);
        llm_hf_quant_free(q);
        return rc;
    }
    return 0;
}

int llm_hfconfig_parse(const json_t *config, const json_t *gen_config, const char *src,
                       struct llm_model_desc *d, struct llm_gen_defaults *g)
{
    return llm_hfconfig_parse_ex(config, gen_config, src, d, g, NULL);
}

int llm_hf_quant_importable(const struct llm_hf_quant *q, const char *src)
{
    struct llm_hfq s;
    return llm_hfq_scheme(q, src, &s); /* lib/model/hfquant.c */
}

int llm_hfconfig_load(const char *dir, struct llm_model_desc *d, struct llm_gen_defaults *g)
{
    return llm_hfconfig_load_ex(dir, d, g, NULL);
}

int llm_hfconfig_load_ex(const char *dir, struct llm_model_desc *d, struct llm_gen_defaults *g,
                         struct llm_hf_quant *q)
{
    llm_desc_init(d);
    if (g) llm_gen_defaults_init(g);
    if (!dir || !*dir) return llm_err_set(LLM_EINVAL, "no checkpoint folder given");
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return llm_err_set(LLM_ENOTFOUND, "'%s': no such file or folder", dir);
        return llm_err_set(LLM_EIO, "unable to open '%s': %s", dir, strerror(errno));
    }
    /* DIR, or DIR/config.json itself */
    size_t n = strlen(dir);
    char *cpath = malloc(n + 32), *gpath = malloc(n + 40);
    if (!cpath || !gpath) {
        free(cpath);
        free(gpath);
        return llm_err_set(LLM_ENOMEM, "out of memory");
    }
    if (S_ISDIR(sb.st_mode)) {
        snprintf(cpath, n + 32, "%s%sconfig.json", dir, dir[n - 1] == '/' ? "" : "/");
        snprintf(gpath, n + 40, "%s%sgeneration_config.json", dir, dir[n - 1] == '/' ? "" : "/");
    } else {
        snprintf(cpath, n + 32, "%s", dir);
        const char *slash = strrchr(dir, '/');
        snprintf(gpath, n + 40, "%.*sgeneration_config.json", slash ? (int)(slash - dir + 1) : 0,
                 dir);
    }
    json_t *cfg = NULL, *gen = NULL;
    int rc = 0;
    if (stat(cpath, &sb) != 0 || !S_ISREG(sb.st_mode))
        rc = llm_err_set(LLM_ENOTFOUND, "'%s': no such file", cpath);
    if (!rc) rc = llm_hf_json_load(cpath, &cfg);
    if (!rc && stat(gpath, &sb) == 0) rc = llm_hf_json_load(gpath, &gen);
    if (!rc) rc = llm_hfconfig_parse_ex(cfg, gen, cpath, d, g, q);
    json_decref(cfg);
    json_decref(gen);
    free(cpath);
    free(gpath);
    return rc;
}
