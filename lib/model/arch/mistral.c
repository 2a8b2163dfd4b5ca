/* mistral.c - Mistral (MistralForCausalLM): the Llama layout with a sliding
 * window on every layer.  MistralConfig: 8 KV heads, 128k positions, and
 * a 4096-token window when the field is absent (configs write null for
 * none). */
#include "arch.h"

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 8,
                                    .max_pos_def = 4096 * 32,
                                    .eps_def = 1e-6,
                                    .rope = {10000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    int64_t window = 4096;
    if (!rc && json_object_get(c->o, "sliding_window"))
        rc = llm_hfc_int(c, KEYS("sliding_window"), 0, 0, 0, INT32_MAX, &window);
    if (!rc) rc = llm_hfc_window(c, d, (int)window, 0, 0);
    return rc;
}

const struct llm_arch_def llm_arch_mistral = {
    .classes = KEYS("MistralForCausalLM"),
    .model_types = KEYS("mistral"),
    .read_config = read_config,
    .rules = llm_rules_llama_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 1,
    .eos = 2,
    .pad = -1,
};
