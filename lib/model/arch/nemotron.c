/* nemotron.c - Nemotron (NemotronForCausalLM: Minitron-4B / 8B,
 * Nemotron-Mini-4B-Instruct, Nemotron-4 in HF form): the Llama attention
 * with LayerNorm1P - a LayerNorm with bias whose scale is 1 + weight - before
 * attention and MLP and at the end, rotary on partial_rotary_factor of each
 * head (0.5 when the config leaves it out, as NemotronConfig does), and a
 * plain MLP up_proj -> relu2 (squared ReLU) -> down_proj.  NemotronConfig:
 * norm_eps 1e-5, kv heads default to the heads, head_dim may differ from
 * hidden / heads, bos 2, eos 3, untied. */
#include "arch.h"

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 0,
                                    .max_pos_def = 4096,
                                    .eps_def = 1e-5,
                                    .tied_def = 0,
                                    .act_def = "relu2",
                                    .rope = {10000.0, NULL, 0.5, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    /* LayerNorm1P, not llama_like's RMSNorm; its epsilon is norm_eps */
    if (!rc) rc = llm_hfc_num(c, KEYS("norm_eps"), 0, 1e-5, 0, 1, 1, &d->norm_eps);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 0, &d->qkv_bias);
    if (!rc) rc = llm_hfc_bool(c, KEYS("mlp_bias"), 0, &d->mlp_bias);
    if (rc) return rc;
    d->o_bias = d->qkv_bias;
    d->norm = LLM_NORM_LAYER;
    d->norm_bias = 1;
    d->norm_offset = 1.0;
    d->gated_mlp = 0;
    return 0;
}

const struct llm_arch_def llm_arch_nemotron = {
    .classes = KEYS("NemotronForCausalLM"),
    .model_types = KEYS("nemotron"),
    .read_config = read_config,
    .rules = llm_rules_llama_fn, /* up_proj -> mlp.fc: no gate */
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 2,
    .eos = 3,
    .pad = -1,
};
