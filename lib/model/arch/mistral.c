/* mistral.c - Mistral (MistralForCausalLM): the Llama layout with a sliding
 * window on every layer.  MistralConfig: 8 KV heads, 128k positions, and
 * a 4096-token window when the field is absent (configs write null for
 * none).  Also the language model of a Mistral 3 multimodal checkpoint
 * (Mistral3ForConditionalGeneration: Mistral Small 3.1 and 3.2), whose
 * config nests it under text_config and whose weights sit under
 * language_model.; the Pixtral vision tower is left out. */
#include <string.h>

#include "arch.h"

static int read_config(const struct llm_hfc *top, struct llm_model_desc *d)
{
    struct llm_hfc nested;
    const struct llm_hfc *c;
    int rc = llm_hfc_text_config(top, &nested, &c);
    if (rc) return rc;
    if (c == top && !strcmp(d->model_type, "mistral3")) return llm_hfc_missing(top, "text_config");
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
    .classes = KEYS("MistralForCausalLM", "Mistral3ForConditionalGeneration"),
    .model_types = KEYS("mistral", "mistral3"),
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
