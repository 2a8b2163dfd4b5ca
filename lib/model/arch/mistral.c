/* mistral.c - Mistral (MistralForCausalLM) and Ministral (MinistralForCausalLM):
 * the Llama layout with a sliding window on every layer (Ministral: the layers
 * layer_types marks).  MistralConfig: 8 KV heads, 128k positions, and a
 * 4096-token window when the field is absent (configs write null for none).
 * Also the language model of a Mistral 3 multimodal checkpoint
 * (Mistral3ForConditionalGeneration: Mistral Small 3.1 and 3.2, Ministral 3),
 * whose config nests it under text_config and whose weights sit under
 * language_model.; the Pixtral vision tower is left out.
 *
 * Ministral 3 (text model_type "ministral3", Ministral3ForCausalLM alone):
 * the same layout without a window unless one is given, head_dim 128, 256k
 * positions, rms_norm_eps 1e-5, and queries scaled by 1 + beta ln(1 +
 * floor(p / original_max_position_embeddings)) with beta the rope
 * parameters' llama_4_scaling_beta; without rope parameters Ministral3Config's
 * yarn (factor 16 over 16384, base 1e6, mscale 1, beta 0.1). */
#include <string.h>

#include "arch.h"

/* Ministral 3's text model (c: the text config, or top itself). */
static int read_ministral3(const struct llm_hfc *top, const struct llm_hfc *c,
                           struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 8,
                                    .max_pos_def = 262144,
                                    .eps_def = 1e-5,
                                    .head_dim_def = 128,
                                    .rope = {1e6, NULL, 1.0, NULL, 0}};
    json_t *o = json_copy((json_t *)c->o);
    if (!o) return llm_err_set(LLM_ENOMEM, "out of memory");
    int rc = 0;
    if (!llm_hfc_has(c, KEYS("rope_parameters", "rope_scaling")) &&
        json_object_set_new(o, "rope_parameters",
                            json_pack("{s:s, s:f, s:f, s:i, s:f, s:f, s:f, s:f, s:f}", "rope_type",
                                      "yarn", "rope_theta", 1e6, "factor", 16.0,
                                      "original_max_position_embeddings", 16384, "beta_fast",
                                      32.0, "beta_slow", 1.0, "mscale_all_dim", 1.0, "mscale",
                                      1.0, "llama_4_scaling_beta", 0.1)))
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
    const struct llm_hfc g = {c->src, o, c->pre};
    if (!rc) rc = llm_hfc_llama_like(&g, d, &k);
    if (!rc) rc = llm_hfc_text_tied(top, c, &d->tied_embeddings);
    /* the query scaling's beta sits with the rotary parameters */
    const json_t *rp = json_object_get(o, "rope_parameters");
    struct llm_hfc r = {c->src, json_is_object(rp) ? rp : json_object_get(o, "rope_scaling"),
                        json_is_object(rp) ? "rope_parameters." : "rope_scaling."};
    if (!rc) rc = llm_hfc_num(&r, KEYS("llama_4_scaling_beta"), 0, 0, 0, 0, 1e6,
                              &d->attn_qscale_beta);
    if (!rc && d->attn_qscale_beta > 0 && d->rope.orig_max_pos <= 0)
        rc = llm_err_set(LLM_EUNSUPPORTED, "'%s': llama_4_scaling_beta needs the rope "
                         "parameters' original_max_position_embeddings",
                         c->src);
    int64_t window = 0; /* Ministral3Config: none unless given */
    if (!rc) rc = llm_hfc_int(&g, KEYS("sliding_window"), 0, 0, 0, INT32_MAX, &window);
    if (!rc) rc = llm_hfc_window(&g, d, (int)window, 0, 0);
    json_decref(o);
    return rc;
}

static int read_config(const struct llm_hfc *top, struct llm_model_desc *d)
{
    struct llm_hfc nested;
    const struct llm_hfc *c;
    int rc = llm_hfc_text_config(top, &nested, &c);
    if (rc) return rc;
    if (c == top && !strcmp(d->model_type, "mistral3")) return llm_hfc_missing(top, "text_config");
    const char *mt = NULL;
    if ((rc = llm_hfc_str(c, KEYS("model_type"), &mt))) return rc;
    if ((mt && !strcmp(mt, "ministral3")) || !strcmp(d->model_type, "ministral3"))
        return read_ministral3(top, c, d);
    const struct llm_hfc_llama k = {.kv_def = 8,
                                    .max_pos_def = 4096 * 32,
                                    .eps_def = 1e-6,
                                    .rope = {10000.0, NULL, 1.0, NULL, 0}};
    rc = llm_hfc_llama_like(c, d, &k);
    if (!rc) rc = llm_hfc_text_tied(top, c, &d->tied_embeddings);
    int64_t window = 4096;
    if (!rc && json_object_get(c->o, "sliding_window"))
        rc = llm_hfc_int(c, KEYS("sliding_window"), 0, 0, 0, INT32_MAX, &window);
    if (!rc) rc = llm_hfc_window(c, d, (int)window, 0, 0);
    return rc;
}

const struct llm_arch_def llm_arch_mistral = {
    .classes = KEYS("MistralForCausalLM", "Mistral3ForConditionalGeneration",
                    "MinistralForCausalLM"),
    .model_types = KEYS("mistral", "mistral3", "ministral"),
    .read_config = read_config,
    .rules = llm_rules_llama_fn,
    .base_prefix = "model.",
    .alt_prefixes = llm_mm_alt_prefixes,
    .skip_prefixes = llm_mm_skip_prefixes,
    .ignore = llm_ignore_rotary,
    .bos = 1,
    .eos = 2,
    .pad = -1,
};

/* Ministral 3's text model on its own (Ministral3Config: pad 11). */
const struct llm_arch_def llm_arch_ministral3 = {
    .classes = KEYS("Ministral3ForCausalLM"),
    .model_types = KEYS("ministral3"),
    .read_config = read_config,
    .rules = llm_rules_llama_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 1,
    .eos = 2,
    .pad = 11,
};
