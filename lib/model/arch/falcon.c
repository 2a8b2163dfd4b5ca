/* falcon.c - Falcon (FalconForCausalLM, and the older RWForCausalLM):
 * LayerNorm, attention and MLP in parallel (parallel_attn, always in the
 * new decoder architecture) or sequential, MQA (multi_query) or GQA
 * (num_kv_heads, new architecture), rotary or ALiBi, optional biases.
 * query_key_value is one fused tensor whose rows are per KV-head groups
 * [q heads of the group, k, v] x head_dim (for MQA: all q, then k, then v;
 * for MHA: per head q, k, v), regrouped here into q; k; v.  The new
 * architecture names its two norms ln_attn and ln_mlp
 * (num_ln_in_parallel_attn 2, its default) or uses one input_layernorm.
 * Falcon's ALiBi biases are scaled by the softmax scale (unlike BLOOM's). */
#include <string.h>

#include "arch.h"

#define L "transformer.h.{i}."
#define COMMON                                                                                     \
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"transformer.word_embeddings.weight"}, 0},                      \
        {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"transformer.ln_f.weight"}, 0},                        \
        {LLM_W_FINAL_NORM, 1, LLM_XF_COPY, {"transformer.ln_f.bias"}, 0},                          \
        {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},                                    \
        {LLM_W_QKV, 0, LLM_XF_QKV_HEADS, {L "self_attention.query_key_value.weight"}, 0},          \
        {LLM_W_QKV, 1, LLM_XF_QKV_HEADS, {L "self_attention.query_key_value.bias"}, 0},            \
        {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "self_attention.dense.weight"}, 0},                    \
        {LLM_W_ATTN_OUT, 1, LLM_XF_COPY, {L "self_attention.dense.bias"}, 0},                      \
        {LLM_W_MLP_FC, 0, LLM_XF_COPY, {L "mlp.dense_h_to_4h.weight"}, 0},                         \
        {LLM_W_MLP_FC, 1, LLM_XF_COPY, {L "mlp.dense_h_to_4h.bias"}, 0},                           \
        {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "mlp.dense_4h_to_h.weight"}, 0},                        \
    {                                                                                              \
        LLM_W_MLP_OUT, 1, LLM_XF_COPY, {L "mlp.dense_4h_to_h.bias"}, 0                             \
    }

/* one input_layernorm (+ post_attention_layernorm when sequential) */
static const struct llm_hf_rule rules_one_ln[] = {
    COMMON,
    {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "input_layernorm.weight"}, 0},
    {LLM_W_ATTN_NORM, 1, LLM_XF_COPY, {L "input_layernorm.bias"}, 0},
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "post_attention_layernorm.weight"}, 0},
    {LLM_W_MLP_NORM, 1, LLM_XF_COPY, {L "post_attention_layernorm.bias"}, 0},
};
/* the new architecture's ln_attn and ln_mlp */
static const struct llm_hf_rule rules_two_ln[] = {
    COMMON,
    {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "ln_attn.weight"}, 0},
    {LLM_W_ATTN_NORM, 1, LLM_XF_COPY, {L "ln_attn.bias"}, 0},
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "ln_mlp.weight"}, 0},
    {LLM_W_MLP_NORM, 1, LLM_XF_COPY, {L "ln_mlp.bias"}, 0},
};

static const struct llm_hf_rule *falcon_rules(const struct llm_model_desc *d, size_t *n)
{
    /* parallel with two norms happens only in the new architecture */
    if (d->parallel_residual && !d->shared_input_norm) {
        *n = sizeof rules_two_ln / sizeof rules_two_ln[0];
        return rules_two_ln;
    }
    *n = sizeof rules_one_ln / sizeof rules_one_ln[0];
    return rules_one_ln;
}

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_sizes k = {KEYS("hidden_size", "n_embed"),
                                    KEYS("num_hidden_layers", "n_layer"),
                                    KEYS("num_attention_heads", "n_head")};
    int rc = llm_hfc_core(c, d, &k);
    if (!rc) rc = llm_hfc_head_dim(c, d, "hidden_size", "num_attention_heads");
    if (rc) return rc;
    /* The original RW code's "RefinedWeb" (40B/180B) is the new layout. */
    int new_arch = !strcmp(d->model_type, "RefinedWeb");
    int multi_query = 1, parallel = 1, bias = 0, alibi = 0;
    int64_t n_ln = 0;
    rc = llm_hfc_bool(c, KEYS("new_decoder_architecture"), new_arch, &new_arch);
    if (!rc) rc = llm_hfc_bool(c, KEYS("multi_query"), 1, &multi_query);
    if (!rc) rc = llm_hfc_bool(c, KEYS("parallel_attn"), 1, &parallel);
    if (!rc) rc = llm_hfc_bool(c, KEYS("bias"), 0, &bias);
    if (!rc) rc = llm_hfc_bool(c, KEYS("alibi"), 0, &alibi);
    if (!rc) rc = llm_hfc_int(c, KEYS("num_ln_in_parallel_attn"), 0, 0, 1, 2, &n_ln);
    if (!rc) {
        int64_t kv;
        rc = llm_hfc_int(c, KEYS("num_kv_heads", "n_head_kv"), 0, d->n_heads, 1, 1 << 16, &kv);
        /* FalconAttention: num_kv_heads if new layout or not multi-query, else 1 */
        d->n_kv_heads = (new_arch || !multi_query) ? (int)kv : 1;
    }
    if (!rc) rc = llm_hfc_check_kv(c, d, "num_kv_heads");
    if (!rc)
        rc = llm_hfc_int(c, KEYS("ffn_hidden_size"), 0, 4 * d->hidden, 1, 1 << 22,
                         &d->intermediate);
    if (!rc)
        rc = llm_hfc_int(c, KEYS("max_position_embeddings"), 0, 2048, 1, INT32_MAX, &d->max_pos);
    if (!rc) rc = llm_hfc_num(c, KEYS("layer_norm_epsilon"), 0, 1e-5, 0, 1, 1, &d->norm_eps);
    if (!rc) rc = llm_hfc_act(c, KEYS("activation"), "gelu", d);
    if (!rc) rc = llm_hfc_bool(c, KEYS("tie_word_embeddings"), 1, &d->tied_embeddings);
    if (!rc) rc = llm_hfc_refuse(c, "apply_residual_connection_post_layernorm");
    if (rc) return rc;
    d->norm = LLM_NORM_LAYER;
    d->norm_bias = 1;
    d->gated_mlp = 0;
    d->qkv_bias = d->o_bias = d->mlp_bias = bias;
    d->parallel_residual = new_arch || parallel;
    /* FalconDecoderLayer: two norms (ln_attn, ln_mlp) only in the new
     * layout with num_ln_in_parallel_attn == 2 (its default there) */
    int two_ln = new_arch && (n_ln == 0 || n_ln == 2);
    d->shared_input_norm = d->parallel_residual && !two_ln;
    if (alibi) {
        d->pos = LLM_POS_ALIBI;
        d->alibi_scaled = 1;
        d->rope.rot_dims = 0;
        return 0;
    }
    d->pos = LLM_POS_ROPE;
    const struct llm_hfc_rope rd = {10000.0, NULL, 1.0, NULL, 0};
    return llm_hfc_rope(c, d, &rd);
}

const struct llm_arch_def llm_arch_falcon = {
    .classes = KEYS("FalconForCausalLM", "RWForCausalLM"),
    .model_types = KEYS("falcon", "RefinedWebModel", "RefinedWeb"),
    .read_config = read_config,
    .rules = falcon_rules,
    .base_prefix = "transformer.",
    .ignore = llm_ignore_rotary,
    .bos = 11,
    .eos = 11,
    .pad = -1,
};
