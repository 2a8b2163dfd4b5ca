/* qwen2.c - Qwen2 and Qwen2.5 (Qwen2ForCausalLM): the Llama layout with
 * q/k/v biases; a sliding window (use_sliding_window) on the layers from
 * max_window_layers on. */
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
