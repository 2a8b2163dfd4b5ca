/* phi3.c - Phi-3 (Phi3ForCausalLM): the Llama layout with q, k, v fused
 * in qkv_proj (already q; k; v) and gate and up fused in gate_up_proj (gate
 * rows first: they become mlp.fc, the up rows mlp.gate); longrope ("su",
 * and "yarn" in some configs, mean longrope here) and a sliding window. */
#include "arch.h"

#define L "model.layers.{i}."
static const struct llm_hf_rule rules[] = {
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"model.embed_tokens.weight"}, 0},
    {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"model.norm.weight"}, 0},
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},
    {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "input_layernorm.weight"}, 0},
    {LLM_W_QKV, 0, LLM_XF_COPY, {L "self_attn.qkv_proj.weight"}, 0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "self_attn.o_proj.weight"}, 0},
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "post_attention_layernorm.weight"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_ROWS, {L "mlp.gate_up_proj.weight"}, 0},
    {LLM_W_MLP_GATE, 0, LLM_XF_ROWS, {L "mlp.gate_up_proj.weight"}, 1},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "mlp.down_proj.weight"}, 0},
};
LLM_RULES(phi3_rules, rules)

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {
        .max_pos_def = 4096, .eps_def = 1e-5, .rope = {10000.0, NULL, 1.0, NULL, 1}};
    int rc = llm_hfc_llama_like(c, d, &k);
    int64_t window = 0;
    if (!rc) rc = llm_hfc_int(c, KEYS("sliding_window"), 0, 0, 0, INT32_MAX, &window);
    if (!rc) rc = llm_hfc_window(c, d, (int)window, 0, 0);
    return rc;
}

const struct llm_arch_def llm_arch_phi3 = {
    .classes = KEYS("Phi3ForCausalLM"),
    .model_types = KEYS("phi3"),
    .read_config = read_config,
    .rules = phi3_rules,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 1,
    .eos = 32000,
    .pad = 32000,
};
