/* seedoss.c - Seed-OSS (SeedOssForCausalLM: Seed-OSS-36B): the Llama block
 * with q/k/v biases (attention_bias, on by default), an optional bias on
 * o_proj (attention_out_bias) and on the MLP (mlp_bias), head_dim 128 by
 * default (not hidden / heads).  SeedOssConfig: kv heads 8, rms_norm_eps
 * 1e-6, bos 0, eos 2, pad 1, untied. */
#include "arch.h"

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 8,
                                    .max_pos_def = 524288,
                                    .eps_def = 1e-6,
                                    .tied_def = 0,
                                    .head_dim_def = 128,
                                    .act_def = "silu",
                                    .rope = {10000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 1, &d->qkv_bias);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_out_bias"), 0, &d->o_bias);
    if (!rc) rc = llm_hfc_bool(c, KEYS("mlp_bias"), 0, &d->mlp_bias);
    return rc;
}

const struct llm_arch_def llm_arch_seedoss = {
    .classes = KEYS("SeedOssForCausalLM"),
    .model_types = KEYS("seed_oss"),
    .read_config = read_config,
    .rules = llm_rules_llama_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 0,
    .eos = 2,
    .pad = 1,
};
