/* arcee.c - Arcee's AFM (ArceeForCausalLM: AFM-4.5B): the Llama block with
 * a plain MLP, up_proj -> relu2 (squared ReLU) -> down_proj, and rope
 * scaling as llama_like reads it (AFM-4.5B uses yarn).  ArceeConfig:
 * rms_norm_eps 1e-5, kv heads default to the heads, bos 128000, eos 128001,
 * untied. */
#include "arch.h"

#define L "model.layers.{i}."
static const struct llm_hf_rule rules[] = {
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"model.embed_tokens.weight"}, 0},
    {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"model.norm.weight"}, 0},
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},
    {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "input_layernorm.weight"}, 0},
    {LLM_W_QKV,
     0,
     LLM_XF_CONCAT,
     {L "self_attn.q_proj.weight", L "self_attn.k_proj.weight", L "self_attn.v_proj.weight"},
     0},
    {LLM_W_QKV,
     1,
     LLM_XF_CONCAT,
     {L "self_attn.q_proj.bias", L "self_attn.k_proj.bias", L "self_attn.v_proj.bias"},
     0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "self_attn.o_proj.weight"}, 0},
    {LLM_W_ATTN_OUT, 1, LLM_XF_COPY, {L "self_attn.o_proj.bias"}, 0},
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "post_attention_layernorm.weight"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_COPY, {L "mlp.up_proj.weight"}, 0},
    {LLM_W_MLP_FC, 1, LLM_XF_COPY, {L "mlp.up_proj.bias"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "mlp.down_proj.weight"}, 0},
    {LLM_W_MLP_OUT, 1, LLM_XF_COPY, {L "mlp.down_proj.bias"}, 0},
};
LLM_RULES(arcee_rules, rules)

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
    .rules = arcee_rules,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 128000,
    .eos = 128001,
    .pad = -1,
};
