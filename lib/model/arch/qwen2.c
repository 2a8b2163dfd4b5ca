/* qwen2.c - Qwen2 and Qwen2.5 (Qwen2ForCausalLM): the Llama layout with
 * q/k/v biases; a sliding window (use_sliding_window) on the layers from
 * max_window_layers on.  Also the language model of Qwen2-VL and Qwen2.5-VL
 * (Qwen2VLForConditionalGeneration, Qwen2_5_VLForConditionalGeneration),
 * text in, text out: the same block, its config flat as published or nested
 * under text_config as transformers 5 saves it, its weights under model. or
 * model.language_model.; the vision tower (visual.) is left out, and the
 * multimodal rotary (mrope) is the plain one for text. */
#include <string.h>

#include "arch.h"

int llm_hfc_qwen_window(const struct llm_hfc *c, struct llm_model_desc *d)
{
    int use = 0;
    int64_t window = 0, first = 0;
    int rc = llm_hfc_bool(c, KEYS("use_sliding_window"), 0, &use);
    if (!rc && use) {
        window = 4096;
        if (json_object_get(c->o, "sliding_window"))
            rc = llm_hfc_int(c, KEYS("sliding_window"), 0, 0, 0, INT32_MAX, &window);
    }
    if (!rc) rc = llm_hfc_int(c, KEYS("max_window_layers"), 0, 28, 0, INT32_MAX, &first);
    if (!rc)
        rc = llm_hfc_window(c, d, (int)window, (int)(first < d->n_layers ? first : d->n_layers), 0);
    return rc;
}

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 32,
                                    .max_pos_def = 32768,
                                    .eps_def = 1e-6,
                                    .rope = {10000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    d->qkv_bias = 1;
    if (!rc) rc = llm_hfc_qwen_window(c, d);
    return rc;
}

const struct llm_arch_def llm_arch_qwen2 = {
    .classes = KEYS("Qwen2ForCausalLM"),
    .model_types = KEYS("qwen2"),
    .read_config = read_config,
    .rules = llm_rules_llama_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = -1,
    .eos = -1,
    .pad = -1,
};

static int read_config_vl(const struct llm_hfc *top, struct llm_model_desc *d)
{
    struct llm_hfc nested;
    const struct llm_hfc *c;
    int rc = llm_hfc_text_config(top, &nested, &c);
    if (rc) return rc;
    const struct llm_hfc_llama k = {.kv_def = 8,
                                    .max_pos_def = 32768,
                                    .eps_def = 1e-5,
                                    .rope = {1000000.0, NULL, 1.0, NULL, 0}};
    /* rope_scaling {type: mrope} as published (transformers 5 saves rope_type
     * default): text, vision height and width positions each rotate their own
     * section of the frequencies, and for text alone the three are equal - the
     * plain rotary, so the config is read without it */
    const json_t *rs = json_object_get(c->o, "rope_scaling");
    const json_t *ty = json_is_object(rs) ? json_object_get(rs, "type") : NULL;
    if (!ty && json_is_object(rs)) ty = json_object_get(rs, "rope_type");
    json_t *cp = NULL;
    struct llm_hfc plain = *c;
    if (json_is_string(ty) && !strcmp(json_string_value(ty), "mrope")) {
        if (!(cp = json_copy((json_t *)c->o)) || json_object_del(cp, "rope_scaling")) {
            json_decref(cp);
            return llm_err_set(LLM_ENOMEM, "out of memory");
        }
        plain.o = cp;
        c = &plain;
    }
    rc = llm_hfc_llama_like(c, d, &k);
    d->qkv_bias = 1;
    /* tied where either config says so (transformers 5 moves a nested true up) */
    int tied_top = 0;
    if (!rc && c != top) rc = llm_hfc_bool(top, KEYS("tie_word_embeddings"), 0, &tied_top);
    if (tied_top) d->tied_embeddings = 1;
    if (!rc) {
        int64_t window = 4096, first = 80;
        int use = 0;
        rc = llm_hfc_bool(c, KEYS("use_sliding_window"), 0, &use);
        if (!rc && use) rc = llm_hfc_int(c, KEYS("sliding_window"), 0, 4096, 0, INT32_MAX, &window);
        if (!rc) rc = llm_hfc_int(c, KEYS("max_window_layers"), 0, 80, 0, INT32_MAX, &first);
        if (!rc)
            rc = llm_hfc_window(c, d, use ? (int)window : 0,
                                (int)(first < d->n_layers ? first : d->n_layers), 0);
    }
    json_decref(cp);
    return rc;
}

static const char *const vl_skip_prefixes[] = {"visual.", "model.visual.", NULL};

const struct llm_arch_def llm_arch_qwen2vl = {
    .classes = KEYS("Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration"),
    .model_types = KEYS("qwen2_vl", "qwen2_5_vl"),
    .read_config = read_config_vl,
    .rules = llm_rules_llama_fn,
    .base_prefix = "model.",
    .alt_prefixes = llm_mm_alt_prefixes,
    .skip_prefixes = vl_skip_prefixes,
    .ignore = llm_ignore_rotary,
    .bos = -1,
    .eos = -1,
    .pad = -1,
};
