/* qwen3.c - Qwen3 (Qwen3ForCausalLM): the Llama layout with a per-head
 * RMSNorm on q and k (q_norm, k_norm over head_dim, before rotary).
 * Qwen3Config: head_dim 128, 32 KV heads, attention_bias false. */
#include "arch.h"

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 32,
                                    .max_pos_def = 32768,
                                    .eps_def = 1e-6,
                                    .head_dim_def = 128,
                                    .rope = {10000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 0, &d->qkv_bias);
    d->o_bias = d->qkv_bias;
    d->qk_norm = LLM_QK_NORM_RMS;
    if (!rc) rc = llm_hfc_qwen_window(c, d);
    return rc;
}

const struct llm_arch_def llm_arch_qwen3 = {
    .classes = KEYS("Qwen3ForCausalLM"),
    .model_types = KEYS("qwen3"),
    .read_config = read_config,
    .rules = llm_rules_llama_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = -1,
    .eos = -1,
    .pad = -1,
};
