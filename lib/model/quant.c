/* quant.c - the artifact's "quantization" section (formats/artifact.md).
 *
 * The section uses TensorRT-LLM's field and algorithm names one to one, so
 * an artifact's quantized tensors and section can be written out as a
 * TensorRT-LLM checkpoint.  Which weight formats (and so which backend
 * features) an algorithm implies is stated here once.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/model.h"
#include "llm/weight.h"
#include "../core/text_internal.h"

static const char *const algo_names[] = {
    NULL,
    "FP8",
    "FP8_PER_CHANNEL_PER_TOKEN",
    "W8A8_SQ_PER_CHANNEL",
    "W8A8_SQ_PER_CHANNEL_PER_TOKEN_PLUGIN",
    "W8A16",
    "W4A16",
    "W4A16_AWQ",
    "W4A16_GPTQ",
    "W8A16_GPTQ",
    "W4A8_AWQ",
};
_Static_assert(sizeof(algo_names) / sizeof(algo_names[0]) == LLM_QUANT_COUNT, "algo_names");

static const char *const kv_names[] = {NULL, "FP8", "INT8"};
_Static_assert(sizeof(kv_names) / sizeof(kv_names[0]) == LLM_KV_QUANT_COUNT, "kv_names");

void llm_quant_init(struct llm_quant *q)
{
    memset(q, 0, sizeof *q);
}

const char *llm_quant_algo_name(int algo)
{
    return algo > 0 && algo < LLM_QUANT_COUNT ? algo_names[algo] : NULL;
}

const char *llm_kv_quant_name(int kv)
{
    return kv > 0 && kv < LLM_KV_QUANT_COUNT ? kv_names[kv] : NULL;
}

int llm_quant_weight_bits(int algo)
{
    switch (algo) {
    case LLM_QUANT_W4A16:
    case LLM_QUANT_W4A16_AWQ:
    case LLM_QUANT_W4A16_GPTQ:
    case LLM_QUANT_W4A8_AWQ: return 4;
    case LLM_QUANT_NONE: return 0;
    default: return algo > 0 && algo < LLM_QUANT_COUNT ? 8 : 0;
    }
}

static int find_name(const char *const *t, int n, const json_t *v, const char *src,
                     const char *field, int *out)
{
    *out = 0;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v))
        return llm_err_set(LLM_EFORMAT, "'%s': quantization.%s must be a string or null, found %s",
                           src, field, llm_json_type_name(v));
    for (int i = 1; i < n; i++)
        if (!strcmp(t[i], json_string_value(v))) {
            *out = i;
            return 0;
        }
    char b[96];
    return llm_err_set(LLM_EUNSUPPORTED, "'%s': unknown quantization.%s '%s'", src, field,
                       llm_quote(json_string_value(v), b, sizeof b));
}

int llm_quant_from_json(struct llm_quant *q, const json_t *j, const char *src)
{
    llm_quant_init(q);
    if (!src) src = "artifact";
    if (!j || json_is_null(j)) return 0;
    if (!json_is_object(j))
        return llm_err_set(LLM_EFORMAT, "'%s': quantization must be an object or null, found %s",
                           src, llm_json_type_name(j));
    int rc = find_name(algo_names, LLM_QUANT_COUNT, json_object_get(j, "quant_algo"), src,
                       "quant_algo", &q->algo);
    if (!rc)
        rc = find_name(kv_names, LLM_KV_QUANT_COUNT, json_object_get(j, "kv_cache_quant_algo"),
                       src, "kv_cache_quant_algo", &q->kv_algo);
    if (rc) return rc;
    const json_t *g = json_object_get(j, "group_size");
    if (g && !json_is_null(g)) {
        if (!json_is_integer(g) || json_integer_value(g) > 1 << 20 ||
            (json_integer_value(g) < 1 && json_integer_value(g) != -1))
            return llm_err_set(LLM_EFORMAT,
                               "'%s': quantization.group_size must be a positive "
                               "integer or -1 (one group per channel)",
                               src);
        q->group_size = (int)json_integer_value(g);
    }
    const json_t *z = json_object_get(j, "has_zero_point"), *p = json_object_get(j, "pre_quant_scale");
    if ((z && !json_is_null(z) && !json_is_boolean(z)) || (p && !json_is_null(p) && !json_is_boolean(p)))
        return llm_err_set(LLM_EFORMAT, "'%s': quantization.has_zero_point and pre_quant_scale "
                           "must be true or false", src);
    q->has_zero_point = json_is_true(z);
    q->pre_quant_scale = json_is_true(p);
    const json_t *ao = json_object_get(j, "act_order");
    if (ao && !json_is_null(ao) && !json_is_boolean(ao))
        return llm_err_set(LLM_EFORMAT, "'%s': quantization.act_order must be true or false", src);
    q->act_order = json_is_true(ao);
    const json_t *ex = json_object_get(j, "exclude_modules");
    if (ex && !json_is_null(ex)) {
        if (!json_is_array(ex) || json_array_size(ex) > LLM_QUANT_MAX_EXCLUDE)
            return llm_err_set(LLM_EFORMAT, "'%s': quantization.exclude_modules must be a list "
                               "of at most %d strings", src, LLM_QUANT_MAX_EXCLUDE);
        size_t i;
        const json_t *e;
        json_array_foreach(ex, i, e)
        {
            if (!json_is_string(e) || json_string_length(e) >= sizeof q->exclude[0])
                return llm_err_set(LLM_EFORMAT, "'%s': quantization.exclude_modules entry %zu is "
                                   "not a string of under %zu bytes", src, i, sizeof q->exclude[0]);
            snprintf(q->exclude[q->n_exclude++], sizeof q->exclude[0], "%s", json_string_value(e));
        }
    }
    int group = llm_quant_weight_bits(q->algo) == 4;
    if (group && q->group_size == 0)
        return llm_err_set(LLM_EFORMAT, "'%s': quantization %s needs a group_size", src,
                           algo_names[q->algo]);
    return 0;
}

json_t *llm_quant_to_json(const struct llm_quant *q)
{
    json_t *ex = json_array();
    for (int i = 0; ex && i < q->n_exclude; i++)
        json_array_append_new(ex, json_string(q->exclude[i]));
    const char *a = llm_quant_algo_name(q->algo), *k = llm_kv_quant_name(q->kv_algo);
    if (!a && !k && !q->n_exclude) { /* the 1.0 form for unquantized models */
        json_decref(ex);
        return json_pack("{s:n, s:n}", "quant_algo", "kv_cache_quant_algo");
    }
    json_t *j = json_pack("{s:o, s:o, s:o, s:b, s:b, s:o}", "quant_algo",
                          a ? json_string(a) : json_null(), "kv_cache_quant_algo",
                          k ? json_string(k) : json_null(), "group_size",
                          q->group_size ? json_integer(q->group_size) : json_null(),
                          "has_zero_point", q->has_zero_point, "pre_quant_scale",
                          q->pre_quant_scale, "exclude_modules", ex ? ex : json_array());
    /* written only when set, so artifacts without it keep their bytes */
    if (j && q->act_order && json_object_set_new(j, "act_order", json_true())) {
        json_decref(j);
        return NULL;
    }
    return j;
}

llm_features llm_quant_features(const struct llm_quant *q)
{
    llm_features f = 0;
    switch (q->algo) {
    case LLM_QUANT_FP8:
    case LLM_QUANT_FP8_PC_PT: f |= LLM_FEAT_BIT(LLM_FEAT_W_FP8); break;
    case LLM_QUANT_W8A8_SQ_PC:
    case LLM_QUANT_W8A8_SQ_PC_PT: f |= LLM_FEAT_BIT(LLM_FEAT_ACT_INT8); /* fall through */
    case LLM_QUANT_W8A16:
    case LLM_QUANT_W8A16_GPTQ: f |= LLM_FEAT_BIT(LLM_FEAT_W_INT8); break;
    case LLM_QUANT_W4A16:
    case LLM_QUANT_W4A16_AWQ:
    case LLM_QUANT_W4A16_GPTQ: f |= LLM_FEAT_BIT(LLM_FEAT_W_INT4); break;
    case LLM_QUANT_W4A8_AWQ:
        f |= LLM_FEAT_BIT(LLM_FEAT_W_INT4) | LLM_FEAT_BIT(LLM_FEAT_ACT_FP8_W4);
        break;
    default: break;
    }
    if (q->kv_algo != LLM_KV_QUANT_NONE) f |= LLM_FEAT_BIT(LLM_FEAT_KV_QUANT);
    if (q->act_order) f |= LLM_FEAT_BIT(LLM_FEAT_W_PERM);
    return f;
}

/* Per layer attention.kv_cache_scaling_factor: [1] (one for K and V,
 * TensorRT-LLM's form) or [2] (K, then V); another pipeline stage's layers
 * get 1. */
int llm_model_kv_scales(struct llm_model *m, float *ks)
{
    const struct llm_model_desc *d = &m->desc;
    for (int l = 0; l < d->n_layers; l++) {
        char name[LLM_NAME_MAX];
        struct llm_tensor t;
        ks[2 * l] = ks[2 * l + 1] = 1.0f;
        if (!llm_part_has_layer(d, l)) continue;
        llm_name_layer(name, sizeof name, l, "attention." LLM_WQ_KV_SCALE);
        int rc = llm_model_tensor(m, name, &t);
        if (rc) return rc;
        uint64_t n = 1;
        for (int i = 0; i < t.ndim; i++) n *= (uint64_t)t.shape[i];
        float v[2];
        if ((n != 1 && n != 2) || !t.data || llm_convert(v, LLM_DTYPE_F32, t.data, t.dtype, n))
            return llm_err_set(LLM_ESHAPE, "'%s': tensor '%s' must hold 1 or 2 float scales",
                               m->path ? m->path : "model", name);
        if (n == 1) v[1] = v[0];
        if (!(v[0] > 0.f) || !(v[1] > 0.f) || !isfinite(v[0]) || !isfinite(v[1]))
            return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': scales must be positive",
                               m->path ? m->path : "model", name);
        ks[2 * l] = v[0];
        ks[2 * l + 1] = v[1];
    }
    return 0;
}
