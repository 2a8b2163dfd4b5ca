/* olmo2.c - OLMo 2 (Olmo2ForCausalLM: OLMo-2-1124-7B / 13B, OLMo-2-0325-32B,
 * OLMo-2-0425-1B): the Llama projections and SwiGLU MLP with the norms
 * moved to the outputs - each sub-block reads the residual stream itself
 * and its output is RMS-normalised before the add (post_attention_layernorm,
 * post_feedforward_layernorm) - and RMS norms on q and k over all the heads
 * of a row at once (q_norm [heads x head_dim], k_norm [kv heads x
 * head_dim]), before rotary.  Olmo2Config: num_key_value_heads defaults to
 * the heads, rms_norm_eps 1e-5, rope_theta 10000, untied. */
#include "arch.h"

#define L "model.layers.{i}."
static const struct llm_hf_rule rules[] = {
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"model.embed_tokens.weight"}, 0},
    {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"model.norm.weight"}, 0},
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},
    {LLM_W_QKV, 0, LLM_XF_CONCAT,
     {L "self_attn.q_proj.weight", L "self_attn.k_proj.weight", L "self_attn.v_proj.weight"}, 0},
    {LLM_W_QKV, 1, LLM_XF_CONCAT,
     {L "self_attn.q_proj.bias", L "self_attn.k_proj.bias", L "self_attn.v_proj.bias"}, 0},
    {LLM_W_Q_NORM, 0, LLM_XF_COPY, {L "self_attn.q_norm.weight"}, 0},
    {LLM_W_K_NORM, 0, LLM_XF_COPY, {L "self_attn.k_norm.weight"}, 0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "self_attn.o_proj.weight"}, 0},
    {LLM_W_ATTN_OUT, 1, LLM_XF_COPY, {L "self_attn.o_proj.bias"}, 0},
    {LLM_W_ATTN_POST_NORM, 0, LLM_XF_COPY, {L "post_attention_layernorm.weight"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_COPY, {L "mlp.gate_proj.weight"}, 0},
    {LLM_W_MLP_GATE, 0, LLM_XF_COPY, {L "mlp.up_proj.weight"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "mlp.down_proj.weight"}, 0},
    {LLM_W_MLP_POST_NORM, 0, LLM_XF_COPY, {L "post_feedforward_layernorm.weight"}, 0},
};
LLM_RULES(olmo2_rules, rules)

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 0,
                                    .max_pos_def = 2048,
                                    .eps_def = 1e-5,
                                    .tied_def = 0,
                                    .act_def = "silu",
                                    .rope = {10000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 0, &d->qkv_bias);
    d->o_bias = d->qkv_bias;
    d->sandwich_norm = 1;
    d->no_input_norm = 1;
    d->qk_norm = LLM_QK_NORM_RMS_ALL;
    return rc;
}

const struct llm_arch_def llm_arch_olmo2 = {
    .classes = KEYS("Olmo2ForCausalLM"),
    .model_types = KEYS("olmo2"),
    .read_config = read_config,
    .rules = olmo2_rules,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = -1,
    .eos = -1,
    .pad = -1,
};
