/* gptneox.c - GPT-NeoX and Pythia (GPTNeoXForCausalLM): LayerNorm, rotary
 * on rotary_pct of each head, parallel (use_parallel_residual, with two
 * norms) or sequential residual, and one fused query_key_value whose rows
 * are per head [q, k, v] x head_dim (regrouped into q; k; v here). */
#include "arch.h"

#define L "gpt_neox.layers.{i}."
static const struct llm_hf_rule rules[] = {
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"gpt_neox.embed_in.weight"}, 0},
    {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"gpt_neox.final_layer_norm.weight"}, 0},
    {LLM_W_FINAL_NORM, 1, LLM_XF_COPY, {"gpt_neox.final_layer_norm.bias"}, 0},
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"embed_out.weight"}, 0},
    {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "input_layernorm.weight"}, 0},
    {LLM_W_ATTN_NORM, 1, LLM_XF_COPY, {L "input_layernorm.bias"}, 0},
    {LLM_W_QKV, 0, LLM_XF_QKV_HEADS, {L "attention.query_key_value.weight"}, 0},
    {LLM_W_QKV, 1, LLM_XF_QKV_HEADS, {L "attention.query_key_value.bias"}, 0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "attention.dense.weight"}, 0},
    {LLM_W_ATTN_OUT, 1, LLM_XF_COPY, {L "attention.dense.bias"}, 0},
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "post_attention_layernorm.weight"}, 0},
    {LLM_W_MLP_NORM, 1, LLM_XF_COPY, {L "post_attention_layernorm.bias"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_COPY, {L "mlp.dense_h_to_4h.weight"}, 0},
    {LLM_W_MLP_FC, 1, LLM_XF_COPY, {L "mlp.dense_h_to_4h.bias"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "mlp.dense_4h_to_h.weight"}, 0},
    {LLM_W_MLP_OUT, 1, LLM_XF_COPY, {L "mlp.dense_4h_to_h.bias"}, 0},
};
LLM_RULES(gptneox_rules, rules)

static const char *const ignore[] = {"rotary_emb.inv_freq", ".attention.bias",
                                     ".attention.masked_bias", NULL};

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_sizes k = {KEYS("hidden_size"), KEYS("num_hidden_layers"),
                                    KEYS("num_attention_heads")};
    int rc = llm_hfc_core(c, d, &k);
    if (!rc) rc = llm_hfc_head_dim(c, d, "hidden_size", "num_attention_heads");
    if (!rc) rc = llm_hfc_int(c, KEYS("intermediate_size"), 1, 0, 1, 1 << 22, &d->intermediate);
    if (!rc)
        rc = llm_hfc_int(c, KEYS("max_position_embeddings"), 0, 2048, 1, INT32_MAX, &d->max_pos);
    if (!rc) rc = llm_hfc_num(c, KEYS("layer_norm_eps"), 0, 1e-5, 0, 1, 1, &d->norm_eps);
    if (!rc) rc = llm_hfc_act(c, KEYS("hidden_act"), "gelu", d);
    if (!rc) rc = llm_hfc_bool(c, KEYS("tie_word_embeddings"), 0, &d->tied_embeddings);
    if (!rc) rc = llm_hfc_bool(c, KEYS("use_parallel_residual"), 1, &d->parallel_residual);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 1, &d->qkv_bias);
    const struct llm_hfc_rope rd = {10000.0, "rotary_emb_base", 0.25, "rotary_pct", 0};
    d->pos = LLM_POS_ROPE;
    if (!rc) rc = llm_hfc_rope(c, d, &rd);
    if (rc) return rc;
    d->n_kv_heads = d->n_heads;
    d->o_bias = d->qkv_bias;
    d->mlp_bias = 1;
    d->norm = LLM_NORM_LAYER;
    d->norm_bias = 1;
    d->gated_mlp = 0;
    return 0;
}

const struct llm_arch_def llm_arch_gptneox = {
    .classes = KEYS("GPTNeoXForCausalLM"),
    .model_types = KEYS("gpt_neox"),
    .read_config = read_config,
    .rules = gptneox_rules,
    .base_prefix = "gpt_neox.",
    .ignore = ignore,
    .bos = 0,
    .eos = 2,
    .pad = -1,
};
