/* hfconfig.c - Hugging Face config.json (+ generation_config.json) to
 * struct llm_model_desc.
 *
 * Design: one reader per architecture family, each stating the defaults of
 * the corresponding transformers config class next to the field it reads,
 * so that a config.json that leaves a field out means exactly what it
 * means to transformers.  The sizes every model must state (vocabulary,
 * hidden size, layers, heads, MLP size) are required even where the
 * transformers class has a default, because a default there describes
 * some other model.  Field names accept the aliases the classes accept
 * (GPT-2's n_embd for hidden_size, ...).  RoPE is read from either form:
 * rope_theta + rope_scaling ("type" or "rope_type"), or transformers v5's
 * rope_parameters; the rules follow transformers' standardisation (e.g. a
 * top-level original_max_position_embeddings wins for llama3/yarn/longrope).
 * What the description cannot express (MPT's clip_qkv, yarn without
 * truncation, ...) is refused with LLM_EUNSUPPORTED rather than dropped.
 * The result always passes llm_desc_validate.
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
#include "llm/model.h"
#include "../core/text_internal.h"

#define CFG_MAX_BYTES (16u << 20)

/* A JSON object being read and how to name its fields in messages. */
struct rd {
    const char *src; /* file */
    const json_t *o; /* object */
    const char *pre; /* "" or "rope_scaling." ... */
};

#define KEYS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* First of keys present and not null; *which names it. */
static const json_t *look(const struct rd *r, const char *const *keys, const char **which)
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

static int has(const struct rd *r, const char *const *keys)
{
    const char *w;
    return look(r, keys, &w) != NULL;
}

static int missing(const struct rd *r, const char *key)
{
    return llm_err_set(LLM_EFORMAT, "'%s': missing field '%s%s'", r->src, r->pre, key);
}

/* Integer field: absent or null gives def (or fails when req). */
static int r_int(const struct rd *r, const char *const *keys, int req, int64_t def, int64_t lo,
                 int64_t hi, int64_t *out)
{
    const char *k;
    const json_t *v = look(r, keys, &k);
    if (!v) {
        if (req) return missing(r, k);
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

static int r_i32(const struct rd *r, const char *const *keys, int req, int64_t def, int64_t lo,
                 int64_t hi, int *out)
{
    int64_t v;
    int rc = r_int(r, keys, req, def, lo, hi, &v);
    if (!rc) *out = (int)v;
    return rc;
}

/* Number field; lo_open: the lower bound is exclusive. */
static int r_num(const struct rd *r, const char *const *keys, int req, double def, double lo,
                 int lo_open, double hi, double *out)
{
    const char *k;
    const json_t *v = look(r, keys, &k);
    if (!v) {
        if (req) return missing(r, k);
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

static int r_bool(const struct rd *r, const char *const *keys, int def, int *out)
{
    const char *k;
    const json_t *v = look(r, keys, &k);
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

/* String field; *out NULL when absent or null. */
static int r_str(const struct rd *r, const char *const *keys, const char **out)
{
    const char *k;
    const json_t *v = look(r, keys, &k);
    *out = NULL;
    if (!v) return 0;
    if (!json_is_string(v))
        return llm_err_set(LLM_EFORMAT, "'%s': field '%s%s' must be a string, found %s", r->src,
                           r->pre, k, llm_json_type_name(v));
    *out = json_string_value(v);
    return 0;
}

/* ---- architecture ----------------------------------------------------------- */

static const struct {
    const char *name;
    int arch;
} hf_classes[] = {
    {"LlamaForCausalLM", LLM_ARCH_LLAMA},     {"LLaMAForCausalLM", LLM_ARCH_LLAMA},
    {"MistralForCausalLM", LLM_ARCH_MISTRAL}, {"Qwen2ForCausalLM", LLM_ARCH_QWEN2},
    {"GPT2LMHeadModel", LLM_ARCH_GPT2},       {"GPTJForCausalLM", LLM_ARCH_GPTJ},
    {"GPTNeoXForCausalLM", LLM_ARCH_GPTNEOX}, {"FalconForCausalLM", LLM_ARCH_FALCON},
    {"RWForCausalLM", LLM_ARCH_FALCON},       {"MPTForCausalLM", LLM_ARCH_MPT},
    {"MptForCausalLM", LLM_ARCH_MPT},         {"BloomForCausalLM", LLM_ARCH_BLOOM},
    {"GemmaForCausalLM", LLM_ARCH_GEMMA},     {"Phi3ForCausalLM", LLM_ARCH_PHI3},
    {"MixtralForCausalLM", LLM_ARCH_MIXTRAL},
};

/* model_type values, used when "architectures" is absent; the first entry
 * per architecture is the canonical one. */
static const struct {
    const char *name;
    int arch;
} hf_types[] = {
    {"llama", LLM_ARCH_LLAMA},       {"mistral", LLM_ARCH_MISTRAL},
    {"qwen2", LLM_ARCH_QWEN2},       {"gpt2", LLM_ARCH_GPT2},
    {"gptj", LLM_ARCH_GPTJ},         {"gpt_neox", LLM_ARCH_GPTNEOX},
    {"falcon", LLM_ARCH_FALCON},     {"RefinedWebModel", LLM_ARCH_FALCON},
    {"RefinedWeb", LLM_ARCH_FALCON}, {"mpt", LLM_ARCH_MPT},
    {"bloom", LLM_ARCH_BLOOM},       {"gemma", LLM_ARCH_GEMMA},
    {"phi3", LLM_ARCH_PHI3},         {"mixtral", LLM_ARCH_MIXTRAL},
};

static const char *canonical_class(int arch)
{
    for (size_t i = 0; i < sizeof(hf_classes) / sizeof(hf_classes[0]); i++)
        if (hf_classes[i].arch == arch) return hf_classes[i].name;
    return "";
}

static const char *canonical_type(int arch)
{
    for (size_t i = 0; i < sizeof(hf_types) / sizeof(hf_types[0]); i++)
        if (hf_types[i].arch == arch) return hf_types[i].name;
    return "";
}

static int read_arch(const struct rd *c, struct llm_model_desc *d)
{
    char b[160];
    const char *mt = NULL;
    int rc = r_str(c, KEYS("model_type"), &mt);
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
        for (size_t i = 0; i < sizeof(hf_classes) / sizeof(hf_classes[0]); i++)
            if (!strcmp(cls, hf_classes[i].name)) d->arch = hf_classes[i].arch;
        if (d->arch < 0)
            return llm_err_set(LLM_EUNSUPPORTED, "'%s': unsupported architecture '%s'", c->src,
                               llm_quote(cls, b, sizeof(b)));
    } else if (mt) {
        for (size_t i = 0; i < sizeof(hf_types) / sizeof(hf_types[0]); i++)
            if (!strcmp(mt, hf_types[i].name)) d->arch = hf_types[i].arch;
        if (d->arch < 0)
            return llm_err_set(LLM_EUNSUPPORTED, "'%s': unsupported model_type '%s'", c->src,
                               llm_quote(mt, b, sizeof(b)));
    } else {
        return llm_err_set(LLM_EFORMAT,
                           "'%s': missing field 'architectures' (and no "
                           "'model_type')",
                           c->src);
    }
    snprintf(d->hf_arch, sizeof(d->hf_arch), "%s", cls ? cls : canonical_class(d->arch));
    /* model_type values of the known classes are short; keep ours when it is not */
    if (mt && strlen(mt) < sizeof(d->model_type))
        snprintf(d->model_type, sizeof(d->model_type), "%s", mt);
    else
        snprintf(d->model_type, sizeof(d->model_type), "%s", canonical_type(d->arch));
    return 0;
}

static int read_dtype(const struct rd *c, struct llm_model_desc *d)
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
    const json_t *v = look(c, KEYS("torch_dtype", "dtype"), &k);
    int rc = r_str(c, KEYS(k), &s);
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

/* Pre-quantized checkpoints (GPTQ, AWQ, FP8, bitsandbytes, ...) store
 * other tensors than the description names; refuse them up front. */
static int read_quant(const struct rd *c)
{
    const json_t *qc = json_object_get(c->o, "quantization_config");
    if (!qc || json_is_null(qc)) return 0;
    const json_t *m = json_object_get(qc, "quant_method");
    char b[96];
    return llm_err_set(LLM_EUNSUPPORTED,
                       "'%s': pre-quantized checkpoints are not supported "
                       "(quantization_config.quant_method '%s')",
                       c->src,
                       json_is_string(m) ? llm_quote(json_string_value(m), b, sizeof(b)) : "?");
}

static int read_act(const struct rd *c, const char *const *keys, const char *def,
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
        {"relu", LLM_ACT_RELU},
    };
    const char *s;
    const char *k;
    look(c, keys, &k);
    int rc = r_str(c, keys, &s);
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

struct sizes {
    const char *const *hidden, *const *layers, *const *heads;
};

static int read_core(const struct rd *c, struct llm_model_desc *d, const struct sizes *k)
{
    int rc = r_int(c, KEYS("vocab_size"), 1, 0, 1, INT32_MAX, &d->vocab_size);
    if (!rc) rc = r_int(c, k->hidden, 1, 0, 1, 1 << 20, &d->hidden);
    if (!rc) rc = r_i32(c, k->layers, 1, 0, 1, LLM_MAX_LAYERS, &d->n_layers);
    if (!rc) rc = r_i32(c, k->heads, 1, 0, 1, 1 << 16, &d->n_heads);
    return rc;
}

/* head_dim = hidden / heads, which must divide. */
static int derive_head_dim(const struct rd *c, struct llm_model_desc *d, const char *hk,
                           const char *nk)
{
    if (d->hidden % d->n_heads)
        return llm_err_set(LLM_EFORMAT, "'%s': %s %lld is not a multiple of %s %d", c->src, hk,
                           (long long)d->hidden, nk, d->n_heads);
    d->head_dim = (int)(d->hidden / d->n_heads);
    return 0;
}

static int check_kv(const struct rd *c, const struct llm_model_desc *d, const char *kk)
{
    if (d->n_kv_heads < 1 || d->n_kv_heads > d->n_heads || d->n_heads % d->n_kv_heads)
        return llm_err_set(LLM_EFORMAT, "'%s': %s %d does not divide the %d attention heads",
                           c->src, kk, d->n_kv_heads, d->n_heads);
    return 0;
}

/* ---- RoPE -------------------------------------------------------------------- */

struct rope_defaults {
    double theta;
    const char *theta_alias;   /* extra top-level name of rope_theta, or NULL */
    double partial;            /* default partial_rotary_factor */
    const char *partial_alias; /* extra top-level name of it, or NULL */
    int phi3;                  /* Phi-3: "su" and "yarn" mean longrope */
};

static int read_factors(const struct rd *rr, const char *key, int n, float **out)
{
    const json_t *v = json_object_get(rr->o, key);
    if (!v || json_is_null(v)) return missing(rr, key);
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
static int read_orig(const struct rd *c, const struct rd *rr, const struct llm_model_desc *d,
                     int *out)
{
    int64_t v;
    int rc;
    if (has(c, KEYS("original_max_position_embeddings")))
        rc = r_int(c, KEYS("original_max_position_embeddings"), 1, 0, 1, INT32_MAX, &v);
    else
        rc = r_int(rr, KEYS("original_max_position_embeddings"), 0, d->max_pos, 1, INT32_MAX, &v);
    if (!rc) *out = (int)v;
    return rc;
}

static int read_rope(const struct rd *c, struct llm_model_desc *d, const struct rope_defaults *rd)
{
    char b[96];
    struct llm_rope *p = &d->rope;
    struct rd rr = {c->src, NULL, "rope_scaling."};
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
    if (has(&rr, KEYS("rope_theta")))
        rc = r_num(&rr, KEYS("rope_theta"), 1, 0, 0, 1, 1e12, &p->theta);
    else
        rc = r_num(c, tk, 0, rd->theta, 0, 1, 1e12, &p->theta);
    if (rc) return rc;
    double partial;
    if (has(&rr, KEYS("partial_rotary_factor")))
        rc = r_num(&rr, KEYS("partial_rotary_factor"), 1, 0, 0, 1, 1, &partial);
    else
        rc = r_num(c, pk, 0, rd->partial, 0, 1, 1, &partial);
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
    rc = r_str(&rr, KEYS("rope_type", "type"), &type);
    if (rc) return rc;
    if (!type || !strcmp(type, "default")) {
        p->scaling = LLM_ROPE_SCALING_NONE;
        return 0;
    }
    if (!strcmp(type, "linear")) {
        p->scaling = LLM_ROPE_SCALING_LINEAR;
        return r_num(&rr, KEYS("factor"), 1, 0, 0, 1, 1e6, &p->factor);
    }
    if (!strcmp(type, "dynamic")) {
        /* transformers grows theta past max_position_embeddings */
        p->scaling = LLM_ROPE_SCALING_DYNAMIC;
        p->orig_max_pos = (int)d->max_pos;
        return r_num(&rr, KEYS("factor"), 1, 0, 0, 1, 1e6, &p->factor);
    }
    if (!strcmp(type, "llama3")) {
        p->scaling = LLM_ROPE_SCALING_LLAMA3;
        rc = r_num(&rr, KEYS("factor"), 1, 0, 0, 1, 1e6, &p->factor);
        if (!rc) rc = r_num(&rr, KEYS("low_freq_factor"), 1, 0, 0, 1, 1e6, &p->low_freq_factor);
        if (!rc) rc = r_num(&rr, KEYS("high_freq_factor"), 1, 0, 0, 1, 1e6, &p->high_freq_factor);
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
            rc = r_num(&rr, KEYS("factor"), 0, (double)d->max_pos / p->orig_max_pos, 0, 1, 1e6,
                       &p->factor);
        if (!rc) rc = r_num(&rr, KEYS("attention_factor"), 0, 0, 0, 0, 1e6, &p->attn_factor);
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
            rc = r_num(&rr, KEYS("factor"), 0, (double)d->max_pos / p->orig_max_pos, 0, 1, 1e6,
                       &p->factor);
        if (!rc) rc = r_num(&rr, KEYS("attention_factor"), 0, 0, 0, 0, 1e6, &p->attn_factor);
        /* transformers: beta_fast or 32, beta_slow or 1 (0 means default too) */
        if (!rc) rc = r_num(&rr, KEYS("beta_fast"), 0, 32, -1e6, 0, 1e6, &p->beta_fast);
        if (!rc) rc = r_num(&rr, KEYS("beta_slow"), 0, 1, -1e6, 0, 1e6, &p->beta_slow);
        if (!rc && p->beta_fast == 0) p->beta_fast = 32;
        if (!rc && p->beta_slow == 0) p->beta_slow = 1;
        if (!rc) rc = r_num(&rr, KEYS("mscale"), 0, 0, 0, 0, 1e6, &p->mscale);
        if (!rc) rc = r_num(&rr, KEYS("mscale_all_dim"), 0, 0, 0, 0, 1e6, &p->mscale_all_dim);
        int truncate = 1;
        if (!rc) rc = r_bool(&rr, KEYS("truncate"), 1, &truncate);
        if (!rc && !truncate)
            rc = llm_err_set(LLM_EUNSUPPORTED,
                             "'%s': yarn rope scaling with truncate false is "
                             "not supported",
                             c->src);
        return rc;
    }
    return llm_err_set(LLM_EUNSUPPORTED, "'%s': unsupported %stype '%s'", c->src, rr.pre,
                       llm_quote(type, b, sizeof(b)));
}

/* ---- sliding window ------------------------------------------------------------ */

/* window > 0: layers flagged in layer_types ("sliding_attention") use it;
 * without layer_types, layers from first_layer on do. */
static int read_window(const struct rd *c, struct llm_model_desc *d, int window, int first_layer)
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
            d->layer_window[i] = 1;
    }
    int any = 0;
    for (int i = 0; i < d->n_layers; i++)
        any |= d->layer_window[i];
    d->sliding_window = any ? window : 0; /* a window no layer uses is no window */
    return 0;
}

/* ---- the families ------------------------------------------------------------ */

/* Llama, Mistral, Qwen2, Mixtral, Gemma, Phi-3: the Llama layout. */
static int read_llama_like(const struct rd *c, struct llm_model_desc *d)
{
    int64_t kv_def = 0, max_pos_def = 2048;
    double eps_def = 1e-6;
    struct rope_defaults rd = {10000.0, NULL, 1.0, NULL, 0};
    int tied_def = 0;
    const char *act_def = "silu";
    switch (d->arch) {
    case LLM_ARCH_MISTRAL:
        kv_def = 8;
        max_pos_def = 4096 * 32;
        break;
    case LLM_ARCH_QWEN2:
        kv_def = 32;
        max_pos_def = 32768;
        break;
    case LLM_ARCH_MIXTRAL:
        kv_def = 8;
        max_pos_def = 4096 * 32;
        eps_def = 1e-5;
        rd.theta = 1e6;
        break;
    case LLM_ARCH_GEMMA:
        kv_def = 16;
        max_pos_def = 8192;
        tied_def = 1;
        act_def = "gelu_pytorch_tanh";
        break;
    case LLM_ARCH_PHI3:
        max_pos_def = 4096;
        eps_def = 1e-5;
        rd.phi3 = 1;
        break;
    default:
        break;
    }
    const struct sizes k = {KEYS("hidden_size"), KEYS("num_hidden_layers"),
                            KEYS("num_attention_heads")};
    int rc = read_core(c, d, &k);
    if (rc) return rc;
    rc = r_int(c, KEYS("intermediate_size"), 1, 0, 1, 1 << 22, &d->intermediate);
    if (!rc)
        rc = r_i32(c, KEYS("num_key_value_heads"), 0, kv_def ? kv_def : d->n_heads, 1, 1 << 16,
                   &d->n_kv_heads);
    if (!rc) rc = check_kv(c, d, "num_key_value_heads");
    if (rc) return rc;
    if (has(c, KEYS("head_dim")))
        rc = r_i32(c, KEYS("head_dim"), 1, 0, 1, 1 << 16, &d->head_dim);
    else if (d->arch == LLM_ARCH_GEMMA)
        d->head_dim = 256; /* GemmaConfig's default */
    else
        rc = derive_head_dim(c, d, "hidden_size", "num_attention_heads");
    if (!rc)
        rc = r_int(c, KEYS("max_position_embeddings"), 0, max_pos_def, 1, INT32_MAX, &d->max_pos);
    if (!rc) rc = r_num(c, KEYS("rms_norm_eps"), 0, eps_def, 0, 1, 1, &d->norm_eps);
    if (rc) return rc;
    d->norm = LLM_NORM_RMS;
    d->gated_mlp = 1;
    d->pos = LLM_POS_ROPE;

    if (d->arch == LLM_ARCH_GEMMA) {
        /* Gemma's "gelu" always meant the tanh approximation; the older
         * hidden_activation field, when set, is what the model used */
        const char *s;
        rc = r_str(c, KEYS("hidden_activation"), &s);
        if (!rc && s)
            rc = read_act(c, KEYS("hidden_activation"), act_def, d);
        else if (!rc) {
            rc = r_str(c, KEYS("hidden_act"), &s);
            if (!rc && s && !strcmp(s, "gelu"))
                d->act = LLM_ACT_GELU_TANH;
            else if (!rc)
                rc = read_act(c, KEYS("hidden_act"), act_def, d);
        }
        d->embed_scale = sqrt((double)d->hidden);
    } else {
        rc = read_act(c, KEYS("hidden_act"), act_def, d);
    }
    if (!rc) rc = r_bool(c, KEYS("tie_word_embeddings"), tied_def, &d->tied_embeddings);
    if (rc) return rc;

    switch (d->arch) {
    case LLM_ARCH_LLAMA:
    case LLM_ARCH_GEMMA:
        rc = r_bool(c, KEYS("attention_bias"), 0, &d->qkv_bias);
        d->o_bias = d->qkv_bias;
        if (!rc && d->arch == LLM_ARCH_LLAMA) rc = r_bool(c, KEYS("mlp_bias"), 0, &d->mlp_bias);
        break;
    case LLM_ARCH_QWEN2:
        d->qkv_bias = 1;
        break;
    default:
        break;
    }
    if (!rc) rc = read_rope(c, d, &rd);
    if (rc) return rc;

    int64_t window = 0, first = 0;
    switch (d->arch) {
    case LLM_ARCH_MISTRAL:
        /* MistralConfig defaults to 4096; configs say null for none */
        if (!json_object_get(c->o, "sliding_window"))
            window = 4096;
        else
            rc = r_int(c, KEYS("sliding_window"), 0, 0, 0, INT32_MAX, &window);
        break;
    case LLM_ARCH_MIXTRAL:
    case LLM_ARCH_PHI3:
        rc = r_int(c, KEYS("sliding_window"), 0, 0, 0, INT32_MAX, &window);
        break;
    case LLM_ARCH_QWEN2: {
        int use = 0;
        rc = r_bool(c, KEYS("use_sliding_window"), 0, &use);
        if (!rc && use) {
            if (!json_object_get(c->o, "sliding_window"))
                window = 4096;
            else
                rc = r_int(c, KEYS("sliding_window"), 0, 0, 0, INT32_MAX, &window);
        }
        if (!rc) rc = r_int(c, KEYS("max_window_layers"), 0, 28, 0, INT32_MAX, &first);
        break;
    }
    default:
        break;
    }
    if (!rc && (d->arch == LLM_ARCH_MISTRAL || d->arch == LLM_ARCH_MIXTRAL ||
                d->arch == LLM_ARCH_PHI3 || d->arch == LLM_ARCH_QWEN2))
        rc = read_window(c, d, (int)window, (int)(first < d->n_layers ? first : d->n_layers));
    if (rc) return rc;

    if (d->arch == LLM_ARCH_MIXTRAL) {
        rc = r_i32(c, KEYS("num_local_experts", "num_experts"), 0, 8, 1, 4096, &d->n_experts);
        if (!rc)
            rc =
                r_i32(c, KEYS("num_experts_per_tok"), 0, 2, 1, d->n_experts, &d->n_experts_per_tok);
    }
    return rc;
}

static int read_gpt2(const struct rd *c, struct llm_model_desc *d)
{
    const struct sizes k = {KEYS("n_embd", "hidden_size"), KEYS("n_layer", "num_hidden_layers"),
                            KEYS("n_head", "num_attention_heads")};
    int rc = read_core(c, d, &k);
    if (!rc) rc = derive_head_dim(c, d, "n_embd", "n_head");
    if (!rc) rc = r_int(c, KEYS("n_inner"), 0, 4 * d->hidden, 1, 1 << 22, &d->intermediate);
    if (!rc)
        rc = r_int(c, KEYS("n_positions", "max_position_embeddings"), 0, 1024, 1, 1 << 24,
                   &d->max_pos);
    if (!rc) rc = r_num(c, KEYS("layer_norm_epsilon"), 0, 1e-5, 0, 1, 1, &d->norm_eps);
    if (!rc) rc = read_act(c, KEYS("activation_function"), "gelu_new", d);
    if (!rc) rc = r_bool(c, KEYS("tie_word_embeddings"), 1, &d->tied_embeddings);
    int scale = 1, inv_layer = 0;
    if (!rc) rc = r_bool(c, KEYS("scale_attn_weights"), 1, &scale);
    if (!rc) rc = r_bool(c, KEYS("scale_attn_by_inverse_layer_idx"), 0, &inv_layer);
    if (!rc && inv_layer)
        rc = llm_err_set(LLM_EUNSUPPORTED,
                         "'%s': scale_attn_by_inverse_layer_idx is not "
                         "supported",
                         c->src);
    if (rc) return rc;
    d->n_kv_heads = d->n_heads;
    d->attn_scale = scale ? 0.0 : 1.0;
    d->norm = LLM_NORM_LAYER;
    d->norm_bias = 1;
    d->gated_mlp = 0;
    d->pos = LLM_POS_LEARNED;
    d->qkv_bias = d->o_bias = d->mlp_bias = 1;
    return 0;
}

static int read_gptj(const struct rd *c, struct llm_model_desc *d)
{
    const struct sizes k = {KEYS("n_embd", "hidden_size"), KEYS("n_layer", "num_hidden_layers"),
                            KEYS("n_head", "num_attention_heads")};
    int rc = read_core(c, d, &k);
    if (!rc) rc = derive_head_dim(c, d, "n_embd", "n_head");
    if (!rc) rc = r_int(c, KEYS("n_inner"), 0, 4 * d->hidden, 1, 1 << 22, &d->intermediate);
    if (!rc)
        rc = r_int(c, KEYS("n_positions", "max_position_embeddings"), 0, 2048, 1, INT32_MAX,
                   &d->max_pos);
    if (!rc) rc = r_num(c, KEYS("layer_norm_epsilon"), 0, 1e-5, 0, 1, 1, &d->norm_eps);
    if (!rc) rc = read_act(c, KEYS("activation_function"), "gelu_new", d);
    if (!rc) rc = r_bool(c, KEYS("tie_word_embeddings"), 0, &d->tied_embeddings);
    struct rope_defaults rd = {10000.0, NULL, 1.0, NULL, 0};
    if (!rc) rc = read_rope(c, d, &rd);
    /* GPT-J rotates rotary_dim dims (all when null) as interleaved pairs */
    int64_t rot = d->head_dim;
    if (!rc) rc = r_int(c, KEYS("rotary_dim"), 0, d->head_dim, 2, d->head_dim, &rot);
    if (!rc && rot % 2)
        rc = llm_err_set(LLM_ERANGE, "'%s': field 'rotary_dim' is %lld, must be even", c->src,
                         (long long)rot);
    if (!rc && d->rope.scaling == LLM_ROPE_SCALING_LONGROPE && rot != d->rope.rot_dims)
        rc = llm_err_set(LLM_EUNSUPPORTED, "'%s': longrope with rotary_dim is not supported",
                         c->src);
    if (rc) return rc;
    d->rope.rot_dims = (int)rot;
    d->rope.neox = 0;
    d->n_kv_heads = d->n_heads;
    d->norm = LLM_NORM_LAYER;
    d->norm_bias = 1;
    d->gated_mlp = 0;
    d->pos = LLM_POS_ROPE;
    d->parallel_residual = 1;
    d->shared_input_norm = 1;
    d->mlp_bias = 1;
    d->lm_head_bias = 1;
    return 0;
}

static int read_gptneox(const struct rd *c, struct llm_model_desc *d)
{
    const struct sizes k = {KEYS("hidden_size"), KEYS("num_hidden_layers"),
                            KEYS("num_attention_heads")};
    int rc = read_core(c, d, &k);
    if (!rc) rc = derive_head_dim(c, d, "hidden_size", "num_attention_heads");
    if (!rc) rc = r_int(c, KEYS("intermediate_size"), 1, 0, 1, 1 << 22, &d->intermediate);
    if (!rc) rc = r_int(c, KEYS("max_position_embeddings"), 0, 2048, 1, INT32_MAX, &d->max_pos);
    if (!rc) rc = r_num(c, KEYS("layer_norm_eps"), 0, 1e-5, 0, 1, 1, &d->norm_eps);
    if (!rc) rc = read_act(c, KEYS("hidden_act"), "gelu", d);
    if (!rc) rc = r_bool(c, KEYS("tie_word_embeddings"), 0, &d->tied_embeddings);
    if (!rc) rc = r_bool(c, KEYS("use_parallel_residual"), 1, &d->parallel_residual);
    if (!rc) rc = r_bool(c, KEYS("attention_bias"), 1, &d->qkv_bias);
    struct rope_defaults rd = {10000.0, "rotary_emb_base", 0.25, "rotary_pct", 0};
    if (!rc) rc = read_rope(c, d, &rd);
    if (rc) return rc;
    d->n_kv_heads = d->n_heads;
    d->o_bias = d->qkv_bias;
    d->mlp_bias = 1;
    d->norm = LLM_NORM_LAYER;
    d->norm_bias = 1;
    d->gated_mlp = 0;
    d->pos = LLM_POS_ROPE;
    return 0;
}

static int read_falcon(const struct rd *c, struct llm_model_desc *d)
{
    const struct sizes k = {KEYS("hidden_size", "n_embed"), KEYS("num_hidden_layers", "n_layer"),
                            KEYS("num_attention_heads", "n_head")};
    int rc = read_core(c, d, &k);
    if (!rc) rc = derive_head_dim(c, d, "hidden_size", "num_attention_heads");
    if (rc) return rc;
    /* The original RW code's "RefinedWeb" (40B/180B) is the new layout. */
    int new_arch = !strcmp(d->model_type, "RefinedWeb");
    int multi_query = 1, parallel = 1, bias = 0, alibi = 0;
    int64_t n_ln = 0;
    rc = r_bool(c, KEYS("new_decoder_architecture"), new_arch, &new_arch);
    if (!rc) rc = r_bool(c, KEYS("multi_query"), 1, &multi_query);
    if (!rc) rc = r_bool(c, KEYS("parallel_attn"), 1, &parallel);
    if (!rc) rc = r_bool(c, KEYS("bias"), 0, &bias);
    if (!rc) rc = r_bool(c, KEYS("alibi"), 0, &alibi);
    if (!rc) rc = r_int(c, KEYS("num_ln_in_parallel_attn"), 0, 0, 1, 2, &n_ln);
    if (!rc) {
        int64_t kv;
        rc = r_int(c, KEYS("num_kv_heads", "n_head_kv"), 0, d->n_heads, 1, 1 << 16, &kv);
        /* FalconAttention: num_kv_heads if new layout or not multi-query, else 1 */
        d->n_kv_heads = (new_arch || !multi_query) ? (int)kv : 1;
    }
    if (!rc) rc = check_kv(c, d, "num_kv_heads");
    if (!rc) rc = r_int(c, KEYS("ffn_hidden_size"), 0, 4 * d->hidden, 1, 1 << 22, &d->intermediate);
    if (!rc) rc = r_int(c, KEYS("max_position_embeddings"), 0, 2048, 1, INT32_MAX, &d->max_pos);
    if (!rc) rc = r_num(c, KEYS("layer_norm_epsilon"), 0, 1e-5, 0, 1, 1, &d->norm_eps);
    if (!rc) rc = read_act(c, KEYS("activation"), "gelu", d);
    if (!rc) rc = r_bool(c, KEYS("tie_word_embeddings"), 1, &d->tied_embeddings);
    int post_ln = 0;
    if (!rc) rc = r_bool(c, KEYS("apply_residual_connection_post_layernorm"), 0, &post_ln);
    if (!rc && post_ln)
        rc = llm_err_set(LLM_EUNSUPPORTED,
                         "'%s': apply_residual_connection_post_layernorm is "
                         "not supported",
                         c->src);
    if (rc) return rc;
    d->norm = LLM_NORM_LAYER;
    d->norm_bias = 1;
    d->gated_mlp = 0;
    d->qkv_bias = d->o_bias = d->mlp_bias = bias;
    d->parallel_residual = new_arch || parallel;
    /* FalconDecoderLayer: two norms (ln_attn, ln_mlp) only in the new
     * layout with num_ln_in_parallel_attn == 2 (its default there) */
    int two_ln = new_arch && (n_ln == 0 || n_ln == 2);
    d->shared_input_norm = d->parallel_residual && !two_ln;
    if (alibi) {
        d->pos = LLM_POS_ALIBI;
        d->rope.rot_dims = 0;
        return 0;
    }
    d->pos = LLM_POS_ROPE;
    struct rope_defaults rd = {10000.0, NULL, 1.0, NULL, 0};
    return read_rope(c, d, &rd);
}

static int read_mpt(const struct rd *c, struct llm_model_desc *d)
{
    const struct sizes k = {KEYS("d_model", "hidden_size"), KEYS("n_layers", "num_hidden_layers"),
                            KEYS("n_heads", "num_attention_heads")};
    int rc = read_core(c, d, &k);
    if (!rc) rc = derive_head_dim(c, d, "d_model", "n_heads");
    double ratio = 4;
    if (!rc) rc = r_num(c, KEYS("expansion_ratio"), 0, 4, 0, 1, 1 << 12, &ratio);
    if (!rc) {
        double inter = floor((double)d->hidden * ratio);
        if (inter < 1 || inter > (1 << 22))
            rc = llm_err_set(LLM_ERANGE, "'%s': expansion_ratio %g gives an MLP of %g", c->src,
                             ratio, inter);
        d->intermediate = (int64_t)inter;
    }
    if (!rc) rc = r_int(c, KEYS("max_seq_len"), 0, 2048, 1, INT32_MAX, &d->max_pos);
    if (!rc) rc = r_num(c, KEYS("layer_norm_epsilon"), 0, 1e-5, 0, 1, 1, &d->norm_eps);
    int no_bias = 1, learned = 1;
    if (!rc) rc = r_bool(c, KEYS("no_bias"), 1, &no_bias);
    if (!rc) rc = r_bool(c, KEYS("learned_pos_emb"), 1, &learned);
    if (!rc) rc = r_bool(c, KEYS("tie_word_embeddings"), 1, &d->tied_embeddings);
    if (!rc && !d->tied_embeddings)
        rc = llm_err_set(LLM_EUNSUPPORTED, "'%s': MPT without tied embeddings is not supported",
                         c->src);
    const char *ls = NULL;
    if (!rc && json_object_get(c->o, "logit_scale") &&
        !json_is_null(json_object_get(c->o, "logit_scale")))
        rc = llm_err_set(LLM_EUNSUPPORTED, "'%s': logit_scale is not supported", c->src);
    if (!rc) rc = r_str(c, KEYS("norm_type"), &ls);
    if (!rc && ls && strcmp(ls, "low_precision_layernorm") && strcmp(ls, "layernorm")) {
        char b[96];
        rc = llm_err_set(LLM_EUNSUPPORTED, "'%s': unsupported norm_type '%s'", c->src,
                         llm_quote(ls, b, sizeof(b)));
    }
    if (rc) return rc;

    /* attn_config: MptAttentionConfig defaults */
    const json_t *ac = json_object_get(c->o, "attn_config");
    if (ac && !json_is_null(ac) && !json_is_object(ac))
        return llm_err_set(LLM_EFORMAT, "'%s': field 'attn_config' must be an object, found %s",
                           c->src, llm_json_type_name(ac));
    struct rd a = {c->src, json_is_object(ac) ? ac : NULL, "attn_config."};
    int alibi = 1, qk_ln = 0, prefix_lm = 0;
    double softmax_scale = 0, bias_max = 8;
    const char *type = NULL;
    rc = r_bool(&a, KEYS("alibi"), 1, &alibi);
    if (!rc) rc = r_bool(&a, KEYS("qk_ln"), 0, &qk_ln);
    if (!rc) rc = r_bool(&a, KEYS("prefix_lm"), 0, &prefix_lm);
    if (!rc) rc = r_num(&a, KEYS("softmax_scale"), 0, 0, 0, 0, 1e6, &softmax_scale);
    if (!rc) rc = r_num(&a, KEYS("alibi_bias_max"), 0, 8, 0, 0, 1e6, &bias_max);
    if (!rc) rc = r_str(&a, KEYS("attn_type"), &type);
    if (rc) return rc;
    if (qk_ln || prefix_lm || has(&a, KEYS("clip_qkv")))
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': attn_config.%s is not supported", c->src,
                           qk_ln       ? "qk_ln"
                           : prefix_lm ? "prefix_lm"
                                       : "clip_qkv");
    if (alibi && bias_max != 8)
        return llm_err_set(LLM_EUNSUPPORTED,
                           "'%s': attn_config.alibi_bias_max %g is not "
                           "supported (only 8)",
                           c->src, bias_max);
    if (!type || !strcmp(type, "multihead_attention")) {
        d->n_kv_heads = d->n_heads;
    } else if (!strcmp(type, "multiquery_attention")) {
        d->n_kv_heads = 1;
    } else if (!strcmp(type, "grouped_query_attention")) {
        rc = r_i32(&a, KEYS("kv_n_heads"), 1, 0, 1, 1 << 16, &d->n_kv_heads);
        if (!rc) rc = check_kv(c, d, "attn_config.kv_n_heads");
        if (rc) return rc;
    } else {
        char b[96];
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': unsupported attn_config.attn_type '%s'", c->src,
                           llm_quote(type, b, sizeof(b)));
    }
    d->attn_scale = softmax_scale;
    d->norm = LLM_NORM_LAYER;
    d->norm_bias = !no_bias;
    d->qkv_bias = d->o_bias = d->mlp_bias = !no_bias;
    d->act = LLM_ACT_GELU;
    d->gated_mlp = 0;
    d->pos = alibi ? LLM_POS_ALIBI : learned ? LLM_POS_LEARNED : LLM_POS_NONE;
    d->rope.rot_dims = 0;
    return 0;
}

static int read_bloom(const struct rd *c, struct llm_model_desc *d)
{
    const struct sizes k = {KEYS("hidden_size", "n_embed"), KEYS("n_layer", "num_hidden_layers"),
                            KEYS("n_head", "num_attention_heads")};
    int rc = read_core(c, d, &k);
    if (!rc) rc = derive_head_dim(c, d, "hidden_size", "n_head");
    if (!rc) rc = r_num(c, KEYS("layer_norm_epsilon"), 0, 1e-5, 0, 1, 1, &d->norm_eps);
    if (!rc) rc = r_bool(c, KEYS("tie_word_embeddings"), 1, &d->tied_embeddings);
    /* ALiBi has no length limit; BLOOM was trained on 2048 tokens */
    if (!rc)
        rc = r_int(c, KEYS("seq_length", "max_position_embeddings"), 0, 2048, 1, INT32_MAX,
                   &d->max_pos);
    int post_ln = 0;
    if (!rc) rc = r_bool(c, KEYS("apply_residual_connection_post_layernorm"), 0, &post_ln);
    if (!rc && post_ln)
        rc = llm_err_set(LLM_EUNSUPPORTED,
                         "'%s': apply_residual_connection_post_layernorm is "
                         "not supported",
                         c->src);
    if (rc) return rc;
    d->n_kv_heads = d->n_heads;
    d->intermediate = 4 * d->hidden;
    d->norm = LLM_NORM_LAYER;
    d->norm_bias = 1;
    d->act = LLM_ACT_GELU_TANH; /* bloom_gelu is the tanh approximation */
    d->gated_mlp = 0;
    d->pos = LLM_POS_ALIBI;
    d->rope.rot_dims = 0;
    d->qkv_bias = d->o_bias = d->mlp_bias = 1;
    return 0;
}

/* ---- special tokens and generation defaults --------------------------------------- */

static void default_ids(int arch, int64_t *bos, int64_t *eos, int64_t *pad)
{
    *bos = *eos = *pad = -1;
    switch (arch) {
    case LLM_ARCH_LLAMA:
    case LLM_ARCH_MISTRAL:
    case LLM_ARCH_MIXTRAL:
    case LLM_ARCH_BLOOM:
        *bos = 1;
        *eos = 2;
        break;
    case LLM_ARCH_GPT2:
    case LLM_ARCH_GPTJ:
        *bos = *eos = 50256;
        break;
    case LLM_ARCH_GPTNEOX:
        *bos = 0;
        *eos = 2;
        break;
    case LLM_ARCH_FALCON:
        *bos = *eos = 11;
        break;
    case LLM_ARCH_GEMMA:
        *bos = 2;
        *eos = 1;
        *pad = 0;
        break;
    case LLM_ARCH_PHI3:
        *bos = 1;
        *eos = 32000;
        *pad = 32000;
        break;
    default:
        break;
    }
}

/* bos/pad: an id, a list (its first entry) or null (none).  Returns 1 when
 * the key is present, 0 when absent, <0 on error. */
static int read_id(const struct rd *r, const char *key, int32_t *out)
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

static int read_eos(const struct rd *r, struct llm_model_desc *d)
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

static int read_ids(const struct rd *c, struct llm_model_desc *d)
{
    int64_t bos, eos, pad;
    default_ids(d->arch, &bos, &eos, &pad);
    d->bos_id = (int32_t)bos;
    d->pad_id = (int32_t)pad;
    d->n_eos = 0;
    if (eos >= 0) d->eos_ids[d->n_eos++] = (int32_t)eos;
    int rc = read_id(c, "bos_token_id", &d->bos_id);
    if (rc >= 0) rc = read_id(c, "pad_token_id", &d->pad_id);
    if (rc >= 0) rc = read_eos(c, d);
    return rc < 0 ? rc : 0;
}

/* generation_config.json: ids present there win; sampling defaults. */
static int read_gen(const struct rd *g, struct llm_model_desc *d, struct llm_gen_defaults *gd)
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
    rc = r_num(g, KEYS("temperature"), 0, t.temperature, 0, 0, 1e6, &t.temperature);
    if (!rc) rc = r_int(g, KEYS("top_k"), 0, t.top_k, 0, INT32_MAX, &v);
    if (!rc) t.top_k = (int)v;
    if (!rc) rc = r_num(g, KEYS("top_p"), 0, t.top_p, 0, 0, 1, &t.top_p);
    if (!rc) rc = r_num(g, KEYS("min_p"), 0, t.min_p, 0, 0, 1, &t.min_p);
    if (!rc)
        rc = r_num(g, KEYS("repetition_penalty"), 0, t.repetition_penalty, 0, 1, 1e6,
                   &t.repetition_penalty);
    if (!rc) rc = r_bool(g, KEYS("do_sample"), t.do_sample, &t.do_sample);
    if (!rc) rc = r_int(g, KEYS("max_new_tokens"), 0, t.max_new_tokens, 0, INT32_MAX, &v);
    if (!rc) t.max_new_tokens = (int)v;
    if (!rc) *gd = t;
    return rc;
}

/* ---- entry points ------------------------------------------------------------------ */

int llm_hfconfig_parse(const json_t *config, const json_t *gen_config, const char *src,
                       struct llm_model_desc *d, struct llm_gen_defaults *g)
{
    llm_desc_init(d);
    if (g) llm_gen_defaults_init(g);
    if (!src) src = "config.json";
    if (!json_is_object(config)) return llm_err_set(LLM_EFORMAT, "'%s': not a JSON object", src);
    struct rd c = {src, config, ""};
    int rc = read_arch(&c, d);
    if (!rc) rc = read_quant(&c);
    if (!rc) rc = read_dtype(&c, d);
    if (!rc) {
        switch (d->arch) {
        case LLM_ARCH_GPT2:
            rc = read_gpt2(&c, d);
            break;
        case LLM_ARCH_GPTJ:
            rc = read_gptj(&c, d);
            break;
        case LLM_ARCH_GPTNEOX:
            rc = read_gptneox(&c, d);
            break;
        case LLM_ARCH_FALCON:
            rc = read_falcon(&c, d);
            break;
        case LLM_ARCH_MPT:
            rc = read_mpt(&c, d);
            break;
        case LLM_ARCH_BLOOM:
            rc = read_bloom(&c, d);
            break;
        default:
            rc = read_llama_like(&c, d);
            break;
        }
    }
    if (!rc) rc = read_ids(&c, d);
    if (!rc && gen_config) {
        /* name generation_config.json next to config.json in messages */
        char gsrc[1024];
        const char *slash = strrchr(src, '/');
        snprintf(gsrc, sizeof(gsrc), "%.*sgeneration_config.json",
                 slash ? (int)(slash - src + 1) : 0, src);
        struct rd gr = {gsrc, gen_config, ""};
        rc = read_gen(&gr, d, g);
    }
    if (!rc) {
        rc = llm_desc_validate(d);
        if (rc) llm_err_wrap(rc, "'%s'", src);
    }
    if (rc) {
        llm_desc_free(d);
        return rc;
    }
    return 0;
}

static int load_json(const char *path, json_t **out)
{
    char *buf;
    size_t len;
    *out = NULL;
    int rc = llm_read_file(path, &buf, &len, CFG_MAX_BYTES);
    if (rc) return rc;
    json_error_t je;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    free(buf);
    if (!j) {
        char b[200];
        if (json_error_code(&je) == json_error_duplicate_key) {
            return llm_err_set(LLM_EFORMAT, "'%s': the key %s appears twice (line %d)", path,
                               llm_json_dup_key(je.text, b, sizeof(b)), je.line);
        }
        return llm_err_set(LLM_EFORMAT, "'%s': not valid JSON: %s (line %d, column %d)", path,
                           llm_quote(je.text, b, sizeof(b)), je.line, je.column);
    }
    *out = j;
    return 0;
}

int llm_hfconfig_load(const char *dir, struct llm_model_desc *d, struct llm_gen_defaults *g)
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
    if (!rc) rc = load_json(cpath, &cfg);
    if (!rc && stat(gpath, &sb) == 0) rc = load_json(gpath, &gen);
    if (!rc) rc = llm_hfconfig_parse(cfg, gen, cpath, d, g);
    json_decref(cfg);
    json_decref(gen);
    free(cpath);
    free(gpath);
    return rc;
}
