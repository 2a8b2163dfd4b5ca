/* gptbigcode.c - GPT-BigCode (GPTBigCodeForCausalLM: StarCoder, SantaCoder,
 * WizardCoder, OctoCoder): GPT-2's block (learned positions, LayerNorm
 * with bias, biases everywhere, tied embeddings) in nn.Linear layout, and
 * multi-query attention by default.  c_attn is one fused projection: with
 * multi_query its rows are q (all heads); k; v for the one KV head, else
 * per head [q, k, v] - both the grouped layout regrouped into q; k; v. */
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
    {LLM_W_QKV, 0, LLM_XF_QKV_HEADS, {L "attn.c_attn.weight"}, 0},
    {LLM_W_QKV, 1, LLM_XF_QKV_HEADS, {L "attn.c_attn.bias"}, 0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "attn.c_proj.weight"}, 0},
    {LLM_W_ATTN_OUT, 1, LLM_XF_COPY, {L "attn.c_proj.bias"}, 0},
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "ln_2.weight"}, 0},
    {LLM_W_MLP_NORM, 1, LLM_XF_COPY, {L "ln_2.bias"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_COPY, {L "mlp.c_fc.weight"}, 0},
    {LLM_W_MLP_FC, 1, LLM_XF_COPY, {L "mlp.c_fc.bias"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "mlp.c_proj.weight"}, 0},
    {LLM_W_MLP_OUT, 1, LLM_XF_COPY, {L "mlp.c_proj.bias"}, 0},
};
LLM_RULES(gptbigcode_rules, rules)

/* the causal-mask buffer, should a checkpoint have saved it */
static const char *const ignore[] = {"transformer.bias", NULL};

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
    if (!rc) rc = llm_hfc_act(c, KEYS("activation_function"), "gelu_pytorch_tanh", d);
    if (!rc) rc = llm_hfc_bool(c, KEYS("tie_word_embeddings"), 1, &d->tied_embeddings);
    int mq = 1, scale = 1;
    if (!rc) rc = llm_hfc_bool(c, KEYS("multi_query"), 1, &mq);
    if (!rc) rc = llm_hfc_bool(c, KEYS("scale_attn_weights"), 1, &scale);
    if (!rc) rc = llm_hfc_refuse(c, "add_cross_attention");
    if (rc) return rc;
    d->n_kv_heads = mq ? 1 : d->n_heads;
    d->attn_scale = scale ? 0.0 : 1.0;
    d->norm = LLM_NORM_LAYER;
    d->norm_bias = 1;
    d->gated_mlp = 0;
    d->pos = LLM_POS_LEARNED;
    d->rope.rot_dims = 0;
    d->qkv_bias = d->o_bias = d->mlp_bias = 1;
    return 0;
}

const struct llm_arch_def llm_arch_gptbigcode = {
    .classes = KEYS("GPTBigCodeForCausalLM"),
    .model_types = KEYS("gpt_bigcode"),
    .read_config = read_config,
    .rules = gptbigcode_rules,
    .base_prefix = "transformer.",
    .ignore = ignore,
    .bos = 50256,
    .eos = 50256,
    .pad = -1,
};
