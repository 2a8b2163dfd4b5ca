/* gptj.c - GPT-J (GPTJForCausalLM): attention and MLP in parallel from one
 * LayerNorm, rotary on the first rotary_dim dims of each head as
 * interleaved pairs, no attention biases, MLP and lm_head biases. */
#include "arch.h"

#define L "transformer.h.{i}."
static const struct llm_hf_rule rules[] = {
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"transformer.wte.weight"}, 0},
    {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"transformer.ln_f.weight"}, 0},
    {LLM_W_FINAL_NORM, 1, LLM_XF_COPY, {"transformer.ln_f.bias"}, 0},
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},
    {LLM_W_LM_HEAD, 1, LLM_XF_COPY, {"lm_head.bias"}, 0},
    {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "ln_1.weight"}, 0},
    {LLM_W_ATTN_NORM, 1, LLM_XF_COPY, {L "ln_1.bias"}, 0},
    {LLM_W_QKV, 0, LLM_XF_CONCAT,
     {L "attn.q_proj.weight", L "attn.k_proj.weight", L "attn.v_proj.weight"}, 0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "attn.out_proj.weight"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_COPY, {L "mlp.fc_in.weight"}, 0},
    {LLM_W_MLP_FC, 1, LLM_XF_COPY, {L "mlp.fc_in.bias"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "mlp.fc_out.weight"}, 0},
    {LLM_W_MLP_OUT, 1, LLM_XF_COPY, {L "mlp.fc_out.bias"}, 0},
};
LLM_RULES(gptj_rules, rules)

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
        rc = llm_hfc_int(c, KEYS("n_positions", "max_position_embeddings"), 0, 2048, 1, INT32_MAX,
                         &d->max_pos);
    if (!rc) rc = llm_hfc_num(c, KEYS("layer_norm_epsilon"), 0, 1e-5, 0, 1, 1, &d->norm_eps);
    if (!rc) rc = llm_hfc_act(c, KEYS("activation_function"), "gelu_new", d);
    if (!rc) rc = llm_hfc_bool(c, KEYS("tie_word_embeddings"), 0, &d->tied_embeddings);
    const struct llm_hfc_rope rd = {10000.0, NULL, 1.0, NULL, 0};
    d->pos = LLM_POS_ROPE;
    if (!rc) rc = llm_hfc_rope(c, d, &rd);
    /* GPT-J rotates rotary_dim dims (all when null) as interleaved pairs */
    int64_t rot = d->head_dim;
    if (!rc) rc = llm_hfc_int(c, KEYS("rotary_dim"), 0, d->head_dim, 2, d->head_dim, &rot);
    if (!rc && rot % 2)
        rc = llm_err_set(LLM_ERANGE, "'%s': field 'rotary_dim' is %lld, must be even", c->src,
                         (long long)rot);
    if (!rc && d->rope.scaling == LLM_ROPE_SCALING_LONGROPE && rot != d->rope.rot_dims)
        rc = llm_err_set(LLM_EUNSUPPORTED, "'%s': longrope with rotary_dim is not supported",
                         c->src);
    if (rc) return rc;
    d->rope.rot_dims = (int)rot;
    d->rope.neox = 0;
    d->n_kv_heads = d->n_heads;
    d->norm = LLM_NORM_LAYER;
    d->norm_bias = 1;
    d->gated_mlp = 0;
    d->parallel_residual = 1;
    d->shared_input_norm = 1;
    d->mlp_bias = 1;
    d->lm_head_bias = 1;
    return 0;
}

const struct llm_arch_def llm_arch_gptj = {
    .classes = KEYS("GPTJForCausalLM"),
    .model_types = KEYS("gptj"),
    .read_config = read_config,
    .rules = gptj_rules,
    .base_prefix = "transformer.",
    .ignore = ignore,
    .bos = 50256,
    .eos = 50256,
    .pad = -1,
};
