/* opt.c - OPT (OPTForCausalLM): learned positions read at an offset of 2,
 * LayerNorm with bias, ReLU, biases everywhere, tied embeddings; pre-LN
 * (do_layer_norm_before, the default) or post-LN blocks (opt-350m), and
 * project_in / project_out when the embeddings are narrower than the
 * model (word_embed_proj_dim).  The final norm exists only in pre-LN models
 * that keep it (_remove_final_layer_norm false). */
#include "arch.h"

#define L "model.decoder.layers.{i}."
static const struct llm_hf_rule rules[] = {
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"model.decoder.embed_tokens.weight"}, 0},
    {LLM_W_POS_EMBED, 0, LLM_XF_COPY, {"model.decoder.embed_positions.weight"}, 0},
    {LLM_W_PROJ_IN, 0, LLM_XF_COPY, {"model.decoder.project_in.weight"}, 0},
    {LLM_W_PROJ_OUT, 0, LLM_XF_COPY, {"model.decoder.project_out.weight"}, 0},
    {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"model.decoder.final_layer_norm.weight"}, 0},
    {LLM_W_FINAL_NORM, 1, LLM_XF_COPY, {"model.decoder.final_layer_norm.bias"}, 0},
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},
    {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "self_attn_layer_norm.weight"}, 0},
    {LLM_W_ATTN_NORM, 1, LLM_XF_COPY, {L "self_attn_layer_norm.bias"}, 0},
    {LLM_W_QKV, 0, LLM_XF_CONCAT,
     {L "self_attn.q_proj.weight", L "self_attn.k_proj.weight", L "self_attn.v_proj.weight"}, 0},
    {LLM_W_QKV, 1, LLM_XF_CONCAT,
     {L "self_attn.q_proj.bias", L "self_attn.k_proj.bias", L "self_attn.v_proj.bias"}, 0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "self_attn.out_proj.weight"}, 0},
    {LLM_W_ATTN_OUT, 1, LLM_XF_COPY, {L "self_attn.out_proj.bias"}, 0},
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "final_layer_norm.weight"}, 0},
    {LLM_W_MLP_NORM, 1, LLM_XF_COPY, {L "final_layer_norm.bias"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_COPY, {L "fc1.weight"}, 0},
    {LLM_W_MLP_FC, 1, LLM_XF_COPY, {L "fc1.bias"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "fc2.weight"}, 0},
    {LLM_W_MLP_OUT, 1, LLM_XF_COPY, {L "fc2.bias"}, 0},
};
LLM_RULES(opt_rules, rules)

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_sizes k = {KEYS("hidden_size"), KEYS("num_hidden_layers"),
                                    KEYS("num_attention_heads")};
    int rc = llm_hfc_core(c, d, &k);
    if (!rc) rc = llm_hfc_head_dim(c, d, "hidden_size", "num_attention_heads");
    if (!rc) rc = llm_hfc_int(c, KEYS("ffn_dim"), 1, 0, 1, 1 << 22, &d->intermediate);
    if (!rc)
        rc = llm_hfc_int(c, KEYS("max_position_embeddings"), 0, 2048, 1, INT32_MAX, &d->max_pos);
    if (!rc) rc = llm_hfc_act(c, KEYS("activation_function"), "relu", d);
    if (!rc) rc = llm_hfc_bool(c, KEYS("tie_word_embeddings"), 1, &d->tied_embeddings);
    int before = 1, remove_final = 0, bias = 1, affine = 1;
    if (!rc) rc = llm_hfc_bool(c, KEYS("do_layer_norm_before"), 1, &before);
    if (!rc) rc = llm_hfc_bool(c, KEYS("_remove_final_layer_norm"), 0, &remove_final);
    if (!rc) rc = llm_hfc_bool(c, KEYS("enable_bias"), 1, &bias);
    if (!rc) rc = llm_hfc_bool(c, KEYS("layer_norm_elementwise_affine"), 1, &affine);
    if (!rc && !affine)
        rc = llm_err_set(LLM_EUNSUPPORTED, "'%s': layer_norm_elementwise_affine false (norms "
                         "without weights) is not supported", c->src);
    if (!rc)
        rc = llm_hfc_int(c, KEYS("word_embed_proj_dim"), 0, d->hidden, 1, 1 << 20, &d->embed_dim);
    if (rc) return rc;
    d->n_kv_heads = d->n_heads;
    d->norm = LLM_NORM_LAYER;
    d->norm_eps = 1e-5; /* nn.LayerNorm's default; OPT has no field for it */
    d->norm_bias = 1;
    d->gated_mlp = 0;
    d->pos = LLM_POS_LEARNED;
    d->pos_offset = 2;
    d->rope.rot_dims = 0;
    d->qkv_bias = d->o_bias = d->mlp_bias = bias;
    d->norm_after = !before;
    d->final_norm = before && !remove_final;
    if (d->embed_dim == d->hidden) d->embed_dim = 0;
    return 0;
}

const struct llm_arch_def llm_arch_opt = {
    .classes = KEYS("OPTForCausalLM"),
    .model_types = KEYS("opt"),
    .read_config = read_config,
    .rules = opt_rules,
    .base_prefix = "model.",
    .ignore = NULL,
    .bos = 2,
    .eos = 2,
    .pad = 1,
};
