/* phi.c - Phi-1, Phi-1.5 and Phi-2 (PhiForCausalLM): attention and MLP in
 * parallel from one LayerNorm, rotary (rotate-half) on
 * partial_rotary_factor of each head, biases on every projection and on
 * the lm_head, a plain gelu_new MLP (fc1, fc2) and a final LayerNorm.
 * transformers' optional LayerNorm on q and k (qk_layernorm, one norm
 * with bias shared by the heads) is in no published checkpoint and is
 * refused. */
#include "arch.h"

#define L "model.layers.{i}."
static const struct llm_hf_rule rules[] = {
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"model.embed_tokens.weight"}, 0},
    {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"model.final_layernorm.weight"}, 0},
    {LLM_W_FINAL_NORM, 1, LLM_XF_COPY, {"model.final_layernorm.bias"}, 0},
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},
    {LLM_W_LM_HEAD, 1, LLM_XF_COPY, {"lm_head.bias"}, 0},
    {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "input_layernorm.weight"}, 0},
    {LLM_W_ATTN_NORM, 1, LLM_XF_COPY, {L "input_layernorm.bias"}, 0},
    {LLM_W_QKV, 0, LLM_XF_CONCAT,
     {L "self_attn.q_proj.weight", L "self_attn.k_proj.weight", L "self_attn.v_proj.weight"}, 0},
    {LLM_W_QKV, 1, LLM_XF_CONCAT,
     {L "self_attn.q_proj.bias", L "self_attn.k_proj.bias", L "self_attn.v_proj.bias"}, 0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "self_attn.dense.weight"}, 0},
    {LLM_W_ATTN_OUT, 1, LLM_XF_COPY, {L "self_attn.dense.bias"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_COPY, {L "mlp.fc1.weight"}, 0},
    {LLM_W_MLP_FC, 1, LLM_XF_COPY, {L "mlp.fc1.bias"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "mlp.fc2.weight"}, 0},
    {LLM_W_MLP_OUT, 1, LLM_XF_COPY, {L "mlp.fc2.bias"}, 0},
};
LLM_RULES(phi_rules, rules)

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_sizes sz = {KEYS("hidden_size"), KEYS("num_hidden_layers"),
                                     KEYS("num_attention_heads")};
    int rc = llm_hfc_core(c, d, &sz);
    if (!rc) rc = llm_hfc_int(c, KEYS("intermediate_size"), 1, 0, 1, 1 << 22, &d->intermediate);
    if (!rc)
        rc = llm_hfc_i32(c, KEYS("num_key_value_heads"), 0, d->n_heads, 1, 1 << 16,
                         &d->n_kv_heads);
    if (!rc) rc = llm_hfc_check_kv(c, d, "num_key_value_heads");
    if (!rc) rc = llm_hfc_head_dim(c, d, "hidden_size", "num_attention_heads");
    if (!rc)
        rc = llm_hfc_int(c, KEYS("max_position_embeddings"), 0, 2048, 1, INT32_MAX, &d->max_pos);
    if (!rc) rc = llm_hfc_num(c, KEYS("layer_norm_eps"), 0, 1e-5, 0, 1, 1, &d->norm_eps);
    if (!rc) rc = llm_hfc_act(c, KEYS("hidden_act"), "gelu_new", d);
    if (!rc) rc = llm_hfc_bool(c, KEYS("tie_word_embeddings"), 0, &d->tied_embeddings);
    if (!rc) rc = llm_hfc_refuse(c, "qk_layernorm");
    const struct llm_hfc_rope rd = {10000.0, NULL, 0.5, NULL, 0};
    d->pos = LLM_POS_ROPE;
    if (!rc) rc = llm_hfc_rope(c, d, &rd);
    if (rc) return rc;
    d->norm = LLM_NORM_LAYER;
    d->norm_bias = 1;
    d->gated_mlp = 0;
    d->parallel_residual = 1;
    d->shared_input_norm = 1;
    d->qkv_bias = d->o_bias = d->mlp_bias = 1;
    d->lm_head_bias = 1;
    return 0;
}

const struct llm_arch_def llm_arch_phi = {
    .classes = KEYS("PhiForCausalLM"),
    .model_types = KEYS("phi"),
    .read_config = read_config,
    .rules = phi_rules,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 1,
    .eos = 2,
    .pad = -1,
};
