/* stablelm.c - StableLM (StableLmForCausalLM): the Llama names with
 * LayerNorm (with bias), rotary on partial_rotary_factor of each head,
 * optional q/k/v biases (use_qkv_bias), optional per-head LayerNorms on q
 * and k (qk_layernorm: one LayerNorm per head, stacked here into [heads,
 * head_dim]) and an optional parallel residual with one shared norm
 * (use_parallel_residual).  The older custom-code StableLMEpochForCausalLM
 * (stablelm_epoch) names two fields differently: norm_eps and rope_pct. */
#include "arch.h"

#define L "model.layers.{i}."
static const struct llm_hf_rule rules[] = {
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"model.embed_tokens.weight"}, 0},
    {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"model.norm.weight"}, 0},
    {LLM_W_FINAL_NORM, 1, LLM_XF_COPY, {"model.norm.bias"}, 0},
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},
    {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "input_layernorm.weight"}, 0},
    {LLM_W_ATTN_NORM, 1, LLM_XF_COPY, {L "input_layernorm.bias"}, 0},
    {LLM_W_QKV, 0, LLM_XF_CONCAT,
     {L "self_attn.q_proj.weight", L "self_attn.k_proj.weight", L "self_attn.v_proj.weight"}, 0},
    {LLM_W_QKV, 1, LLM_XF_CONCAT,
     {L "self_attn.q_proj.bias", L "self_attn.k_proj.bias", L "self_attn.v_proj.bias"}, 0},
    {LLM_W_Q_NORM, 0, LLM_XF_STACK, {L "self_attn.q_layernorm.norms.{e}.weight"}, 0},
    {LLM_W_K_NORM, 0, LLM_XF_STACK, {L "self_attn.k_layernorm.norms.{e}.weight"}, 0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "self_attn.o_proj.weight"}, 0},
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "post_attention_layernorm.weight"}, 0},
    {LLM_W_MLP_NORM, 1, LLM_XF_COPY, {L "post_attention_layernorm.bias"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_COPY, {L "mlp.gate_proj.weight"}, 0},
    {LLM_W_MLP_GATE, 0, LLM_XF_COPY, {L "mlp.up_proj.weight"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "mlp.down_proj.weight"}, 0},
};
LLM_RULES(stablelm_rules, rules)

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
        rc = llm_hfc_int(c, KEYS("max_position_embeddings"), 0, 4096, 1, INT32_MAX, &d->max_pos);
    if (!rc)
        rc = llm_hfc_num(c, KEYS("layer_norm_eps", "norm_eps"), 0, 1e-5, 0, 1, 1, &d->norm_eps);
    double rsf = 1;
    if (!rc) rc = llm_hfc_num(c, KEYS("rotary_scaling_factor"), 0, 1, 0, 1, 1e6, &rsf);
    if (!rc && rsf != 1)
        rc = llm_err_set(LLM_EUNSUPPORTED, "'%s': rotary_scaling_factor %g is not supported",
                         c->src, rsf);
    if (!rc) rc = llm_hfc_act(c, KEYS("hidden_act"), "silu", d);
    if (!rc) rc = llm_hfc_bool(c, KEYS("tie_word_embeddings"), 0, &d->tied_embeddings);
    if (!rc) rc = llm_hfc_bool(c, KEYS("use_qkv_bias"), 0, &d->qkv_bias);
    int qk_ln = 0;
    if (!rc) rc = llm_hfc_bool(c, KEYS("qk_layernorm"), 0, &qk_ln);
    if (!rc) rc = llm_hfc_bool(c, KEYS("use_parallel_residual"), 0, &d->parallel_residual);
    const struct llm_hfc_rope rd = {10000.0, NULL, 0.25, "rope_pct", 0};
    d->pos = LLM_POS_ROPE;
    if (!rc) rc = llm_hfc_rope(c, d, &rd);
    if (rc) return rc;
    d->norm = LLM_NORM_LAYER;
    d->norm_bias = 1;
    d->gated_mlp = 1;
    d->qk_norm = qk_ln ? LLM_QK_NORM_LAYER : LLM_QK_NORM_NONE;
    d->shared_input_norm = d->parallel_residual;
    return 0;
}

const struct llm_arch_def llm_arch_stablelm = {
    .classes = KEYS("StableLmForCausalLM", "StableLMEpochForCausalLM"),
    .model_types = KEYS("stablelm", "stablelm_epoch"),
    .read_config = read_config,
    .rules = stablelm_rules,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 0,
    .eos = 0,
    .pad = -1,
};
