/* bloom.c - BLOOM (BloomForCausalLM): ALiBi, a LayerNorm right after the
 * embeddings, LayerNorm with bias, biases everywhere, tanh GELU, tied
 * embeddings, and one fused query_key_value whose rows are per head
 * [q, k, v] x head_dim.  Published checkpoints leave out the
 * "transformer." prefix. */
#include "arch.h"

#define L "transformer.h.{i}."
static const struct llm_hf_rule rules[] = {
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"transformer.word_embeddings.weight"}, 0},
    {LLM_W_EMBED_NORM, 0, LLM_XF_COPY, {"transformer.word_embeddings_layernorm.weight"}, 0},
    {LLM_W_EMBED_NORM, 1, LLM_XF_COPY, {"transformer.word_embeddings_layernorm.bias"}, 0},
    {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"transformer.ln_f.weight"}, 0},
    {LLM_W_FINAL_NORM, 1, LLM_XF_COPY, {"transformer.ln_f.bias"}, 0},
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},
    {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "input_layernorm.weight"}, 0},
    {LLM_W_ATTN_NORM, 1, LLM_XF_COPY, {L "input_layernorm.bias"}, 0},
    {LLM_W_QKV, 0, LLM_XF_QKV_HEADS, {L "self_attention.query_key_value.weight"}, 0},
    {LLM_W_QKV, 1, LLM_XF_QKV_HEADS, {L "self_attention.query_key_value.bias"}, 0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "self_attention.dense.weight"}, 0},
    {LLM_W_ATTN_OUT, 1, LLM_XF_COPY, {L "self_attention.dense.bias"}, 0},
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "post_attention_layernorm.weight"}, 0},
    {LLM_W_MLP_NORM, 1, LLM_XF_COPY, {L "post_attention_layernorm.bias"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_COPY, {L "mlp.dense_h_to_4h.weight"}, 0},
    {LLM_W_MLP_FC, 1, LLM_XF_COPY, {L "mlp.dense_h_to_4h.bias"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "mlp.dense_4h_to_h.weight"}, 0},
    {LLM_W_MLP_OUT, 1, LLM_XF_COPY, {L "mlp.dense_4h_to_h.bias"}, 0},
};
LLM_RULES(bloom_rules, rules)

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_sizes k = {KEYS("hidden_size", "n_embed"),
                                    KEYS("n_layer", "num_hidden_layers"),
                                    KEYS("n_head", "num_attention_heads")};
    int rc = llm_hfc_core(c, d, &k);
    if (!rc) rc = llm_hfc_head_dim(c, d, "hidden_size", "n_head");
    if (!rc) rc = llm_hfc_num(c, KEYS("layer_norm_epsilon"), 0, 1e-5, 0, 1, 1, &d->norm_eps);
    if (!rc) rc = llm_hfc_bool(c, KEYS("tie_word_embeddings"), 1, &d->tied_embeddings);
    /* ALiBi has no length limit; BLOOM was trained on 2048 tokens */
    if (!rc)
        rc = llm_hfc_int(c, KEYS("seq_length", "max_position_embeddings"), 0, 2048, 1, INT32_MAX,
                         &d->max_pos);
    if (!rc) rc = llm_hfc_refuse(c, "apply_residual_connection_post_layernorm");
    if (rc) return rc;
    d->n_kv_heads = d->n_heads;
    d->intermediate = 4 * d->hidden;
    d->norm = LLM_NORM_LAYER;
    d->norm_bias = 1;
    d->act = LLM_ACT_GELU_TANH; /* bloom_gelu is the tanh approximation */
    d->gated_mlp = 0;
    d->pos = LLM_POS_ALIBI;
    d->rope.rot_dims = 0;
    d->embed_norm = 1;
    d->qkv_bias = d->o_bias = d->mlp_bias = 1;
    return 0;
}

const struct llm_arch_def llm_arch_bloom = {
    .classes = KEYS("BloomForCausalLM"),
    .model_types = KEYS("bloom"),
    .read_config = read_config,
    .rules = bloom_rules,
    .base_prefix = "transformer.",
    .ignore = NULL,
    .bos = 1,
    .eos = 2,
    .pad = -1,
};
