/* granite.c - IBM Granite 3 dense models (GraniteForCausalLM): the Llama
 * block with four constants - embeddings times embedding_multiplier, the
 * attention scale attention_multiplier (instead of 1/sqrt(head_dim)), each
 * sub-block's output times residual_multiplier before its residual add,
 * and logits divided by logits_scaling. */
#include "arch.h"

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 0,
                                    .max_pos_def = 2048,
                                    .eps_def = 1e-6,
                                    .tied_def = 0,
                                    .act_def = "silu",
                                    .rope = {10000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 0, &d->qkv_bias);
    if (!rc) rc = llm_hfc_bool(c, KEYS("mlp_bias"), 0, &d->mlp_bias);
    double emb = 1, att = 1, res = 1, lsc = 1;
    if (!rc) rc = llm_hfc_num(c, KEYS("embedding_multiplier"), 0, 1, 0, 1, 1e9, &emb);
    if (!rc) rc = llm_hfc_num(c, KEYS("attention_multiplier"), 0, 1, 0, 1, 1e9, &att);
    if (!rc) rc = llm_hfc_num(c, KEYS("residual_multiplier"), 0, 1, 0, 1, 1e9, &res);
    if (!rc) rc = llm_hfc_num(c, KEYS("logits_scaling"), 0, 1, 0, 1, 1e9, &lsc);
    if (rc) return rc;
    d->o_bias = d->qkv_bias;
    d->embed_scale = emb;
    d->attn_scale = att;
    d->residual_scale = res;
    d->logit_scale = 1.0 / lsc;
    return 0;
}

const struct llm_arch_def llm_arch_granite = {
    .classes = KEYS("GraniteForCausalLM"),
    .model_types = KEYS("granite"),
    .read_config = read_config,
    .rules = llm_rules_llama_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 1,
    .eos = 2,
    .pad = -1,
};
