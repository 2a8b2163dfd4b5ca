/* starcoder2.c - StarCoder2 (Starcoder2ForCausalLM): the Llama attention
 * names with LayerNorm, biases everywhere (use_bias), a plain MLP (c_fc,
 * gelu_pytorch_tanh, c_proj) and a sliding window. */
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
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "self_attn.o_proj.weight"}, 0},
    {LLM_W_ATTN_OUT, 1, LLM_XF_COPY, {L "self_attn.o_proj.bias"}, 0},
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "post_attention_layernorm.weight"}, 0},
    {LLM_W_MLP_NORM, 1, LLM_XF_COPY, {L "post_attention_layernorm.bias"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_COPY, {L "mlp.c_fc.weight"}, 0},
    {LLM_W_MLP_FC, 1, LLM_XF_COPY, {L "mlp.c_fc.bias"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "mlp.c_proj.weight"}, 0},
    {LLM_W_MLP_OUT, 1, LLM_XF_COPY, {L "mlp.c_proj.bias"}, 0},
};
LLM_RULES(starcoder2_rules, rules)

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_sizes sz = {KEYS("hidden_size"), KEYS("num_hidden_layers"),
                                     KEYS("num_attention_heads")};
    int rc = llm_hfc_core(c, d, &sz);
    if (!rc) rc = llm_hfc_int(c, KEYS("intermediate_size"), 1, 0, 1, 1 << 22, &d->intermediate);
    if (!rc)
        rc = llm_hfc_i32(c, KEYS("num_key_value_heads"), 0, 2, 1, 1 << 16, &d->n_kv_heads);
    if (!rc) rc = llm_hfc_check_kv(c, d, "num_key_value_heads");
    if (!rc) rc = llm_hfc_head_dim(c, d, "hidden_size", "num_attention_heads");
    if (!rc)
        rc = llm_hfc_int(c, KEYS("max_position_embeddings"), 0, 4096, 1, INT32_MAX, &d->max_pos);
    if (!rc) rc = llm_hfc_num(c, KEYS("norm_epsilon"), 0, 1e-5, 0, 1, 1, &d->norm_eps);
    if (!rc) rc = llm_hfc_act(c, KEYS("hidden_act"), "gelu_pytorch_tanh", d);
    if (!rc) rc = llm_hfc_bool(c, KEYS("tie_word_embeddings"), 1, &d->tied_embeddings);
    int bias = 1;
    if (!rc) rc = llm_hfc_bool(c, KEYS("use_bias"), 1, &bias);
    const struct llm_hfc_rope rd = {10000.0, NULL, 1.0, NULL, 0};
    d->pos = LLM_POS_ROPE;
    if (!rc) rc = llm_hfc_rope(c, d, &rd);
    int64_t window = 0;
    if (!rc) rc = llm_hfc_int(c, KEYS("sliding_window"), 0, 0, 0, INT32_MAX, &window);
    if (!rc) rc = llm_hfc_window(c, d, (int)window, 0, 0);
    if (rc) return rc;
    d->norm = LLM_NORM_LAYER;
    d->norm_bias = 1; /* nn.LayerNorm always has its bias */
    d->gated_mlp = 0;
    d->qkv_bias = d->o_bias = d->mlp_bias = bias;
    return 0;
}

const struct llm_arch_def llm_arch_starcoder2 = {
    .classes = KEYS("Starcoder2ForCausalLM"),
    .model_types = KEYS("starcoder2"),
    .read_config = read_config,
    .rules = starcoder2_rules,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 50256,
    .eos = 50256,
    .pad = -1,
};
