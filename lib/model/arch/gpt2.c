/* gpt2.c - GPT-2 (GPT2LMHeadModel): learned positions, LayerNorm with
 * bias, gelu_new, biases everywhere, tied embeddings.  Its linear layers
 * are Conv1D modules storing [in][out], so every projection is transposed
 * into (out, in); c_attn's columns are already q; k; v.  The original
 * checkpoints were saved from GPT2Model, without the "transformer." prefix. */
#include "arch.h"

#define L "transformer.h.{i}."
static const struct llm_hf_rule rules[] = {
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"transformer.wte.weight"}, 0},
    {LLM_W_POS_EMBED, 0, LLM_XF_COPY, {"transformer.wpe.weight"}, 0},
    {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"transformer.ln_f.weight"}, 0},
    {LLM_W_FINAL_NORM, 1, LLM_XF_COPY, {"transformer.ln_f.bias"}, 0},
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},
    {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "ln_1.weight"}, 0},
    {LLM_W_ATTN_NORM, 1, LLM_XF_COPY, {L "ln_1.bias"}, 0},
    {LLM_W_QKV, 0, LLM_XF_TRANSPOSE, {L "attn.c_attn.weight"}, 0},
    {LLM_W_QKV, 1, LLM_XF_COPY, {L "attn.c_attn.bias"}, 0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_TRANSPOSE, {L "attn.c_proj.weight"}, 0},
    {LLM_W_ATTN_OUT, 1, LLM_XF_COPY, {L "attn.c_proj.bias"}, 0},
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "ln_2.weight"}, 0},
    {LLM_W_MLP_NORM, 1, LLM_XF_COPY, {L "ln_2.bias"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_TRANSPOSE, {L "mlp.c_fc.weight"}, 0},
    {LLM_W_MLP_FC, 1, LLM_XF_COPY, {L "mlp.c_fc.bias"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_TRANSPOSE, {L "mlp.c_proj.weight"}, 0},
    {LLM_W_MLP_OUT, 1, LLM_XF_COPY, {L "mlp.c_proj.bias"}, 0},
};
LLM_RULES(gpt2_rules, rules)

/* the causal-mask buffers older checkpoints saved */
static const char *const ignore[] = {".attn.bias", ".attn.masked_bias", NULL};

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_sizes k = {KEYS("n_embd", "hidden_size"),
                                    KEYS("n_layer", "num_hidden_layers"),
                                    KEYS("n_head", "num_attention_heads")};
    int rc = llm_hfc_core(c, d, &k);
    if (!rc) rc = llm_hfc_head_dim(c, d, "n_embd", "n_head");
    if (!rc) rc = llm_hfc_int(c, KEYS("n_inner"), 0, 4 * d->hidden, 1, 1 << 22, &d->intermediate);
    if (!rc)
        rc = llm_hfc_int(c, KEYS("n_positions", "max_position_embeddings"), 0, 1024, 1, 1 << 24,
                         &d->max_pos);
    if (!rc) rc = llm_hfc_num(c, KEYS("layer_norm_epsilon"), 0, 1e-5, 0, 1, 1, &d->norm_eps);
    if (!rc) rc = llm_hfc_act(c, KEYS("activation_function"), "gelu_new", d);
    if (!rc) rc = llm_hfc_bool(c, KEYS("tie_word_embeddings"), 1, &d->tied_embeddings);
    int scale = 1;
    if (!rc) rc = llm_hfc_bool(c, KEYS("scale_attn_weights"), 1, &scale);
    if (!rc) rc = llm_hfc_refuse(c, "scale_attn_by_inverse_layer_idx");
    if (rc) return rc;
    d->n_kv_heads = d->n_heads;
    d->attn_scale = scale ? 0.0 : 1.0;
    d->norm = LLM_NORM_LAYER;
    d->norm_bias = 1;
    d->gated_mlp = 0;
    d->pos = LLM_POS_LEARNED;
    d->rope.rot_dims = 0;
    d->qkv_bias = d->o_bias = d->mlp_bias = 1;
    return 0;
}

const struct llm_arch_def llm_arch_gpt2 = {
    .classes = KEYS("GPT2LMHeadModel"),
    .model_types = KEYS("gpt2"),
    .read_config = read_config,
    .rules = gpt2_rules,
    .base_prefix = "transformer.",
    .ignore = ignore,
    .bos = 50256,
    .eos = 50256,
    .pad = -1,
};
