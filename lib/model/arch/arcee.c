/* arcee.c - Arcee's AFM (ArceeForCausalLM: AFM-4.5B): the Llama block with
 * a plain MLP, up_proj -> relu2 (squared ReLU) -> down_proj, and rope
 * scaling as llama_like reads it (AFM-4.5B uses yarn).  ArceeConfig:
 * rms_norm_eps 1e-5, kv heads default to the heads, bos 128000, eos 128001,
 * untied. */
#include "arch.h"

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 0,
                                    .max_pos_def = 4096,
                                    .eps_def = 1e-5,
                                    .tied_def = 0,
                                    .act_def = "relu2",
                                    .rope = {10000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 0, &d->qkv_bias);
    if (!rc) rc = llm_hfc_bool(c, KEYS("mlp_bias"), 0, &d->mlp_bias);
    d->o_bias = d->qkv_bias;
    d->gated_mlp = 0;
    return rc;
}

const struct llm_arch_def llm_arch_arcee = {
    .classes = KEYS("ArceeForCausalLM"),
    .model_types = KEYS("arcee"),
    .read_config = read_config,
    .rules = llm_rules_llama_fn, /* up_proj -> mlp.fc: no gate */
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 128000,
    .eos = 128001,
    .pad = -1,
};
