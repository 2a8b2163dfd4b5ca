/* granite.c - IBM Granite 3 models: the Llama block with four constants -
 * embeddings times embedding_multiplier, the attention scale
 * attention_multiplier (instead of 1/sqrt(head_dim)), each sub-block's
 * output times residual_multiplier before its residual add, and logits
 * divided by logits_scaling.  GraniteForCausalLM has a dense SwiGLU MLP;
 * GraniteMoeForCausalLM (granite-3.x-*-a*m) a mixture of experts in every
 * layer: the router (block_sparse_moe.router.layer) picks
 * num_experts_per_tok of num_local_experts experts and weighs them by a
 * softmax over the chosen logits (the renormalised top-k of the softmax);
 * each expert's input_linear [2 I][hidden] holds the activated half (->
 * mlp.fc) then the multiplied half (-> mlp.gate), output_linear [hidden][I]
 * (-> mlp.proj), all experts in one tensor each.  GraniteMoeShared adds a
 * shared expert (below); GraniteMoeHybrid (Mamba layers) is another class,
 * not read here. */
#include "arch.h"

#define L "model.layers.{i}."
static const struct llm_hf_rule moe_rules[] = {
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"model.embed_tokens.weight"}, 0},
    {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"model.norm.weight"}, 0},
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},
    {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "input_layernorm.weight"}, 0},
    {LLM_W_QKV,
     0,
     LLM_XF_CONCAT,
     {L "self_attn.q_proj.weight", L "self_attn.k_proj.weight", L "self_attn.v_proj.weight"},
     0},
    {LLM_W_QKV,
     1,
     LLM_XF_CONCAT,
     {L "self_attn.q_proj.bias", L "self_attn.k_proj.bias", L "self_attn.v_proj.bias"},
     0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "self_attn.o_proj.weight"}, 0},
    {LLM_W_ATTN_OUT, 1, LLM_XF_COPY, {L "self_attn.o_proj.bias"}, 0},
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "post_attention_layernorm.weight"}, 0},
    {LLM_W_ROUTER, 0, LLM_XF_COPY, {L "block_sparse_moe.router.layer.weight"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_ROWS, {L "block_sparse_moe.input_linear.weight"}, 0},
    {LLM_W_MLP_GATE, 0, LLM_XF_ROWS, {L "block_sparse_moe.input_linear.weight"}, 1},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "block_sparse_moe.output_linear.weight"}, 0},
    /* GraniteMoeShared's shared expert: the gate and up halves of one input_linear */
    {LLM_W_SHARED_FC, 0, LLM_XF_ROWS, {L "shared_mlp.input_linear.weight"}, 0},
    {LLM_W_SHARED_GATE, 0, LLM_XF_ROWS, {L "shared_mlp.input_linear.weight"}, 1},
    {LLM_W_SHARED_OUT, 0, LLM_XF_COPY, {L "shared_mlp.output_linear.weight"}, 0},
};
LLM_RULES(granitemoe_rules, moe_rules)

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 0,
                                    .max_pos_def = 2048,
                                    .eps_def = 1e-6,
                                    .tied_def = 0,
                                    .act_def = "silu",
                                    .rope = {10000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 0, &d->qkv_bias);
    if (!rc) rc = llm_hfc_bool(c, KEYS("mlp_bias"), 0, &d->mlp_bias);
    double emb = 1, att = 1, res = 1, lsc = 1;
    if (!rc) rc = llm_hfc_num(c, KEYS("embedding_multiplier"), 0, 1, 0, 1, 1e9, &emb);
    if (!rc) rc = llm_hfc_num(c, KEYS("attention_multiplier"), 0, 1, 0, 1, 1e9, &att);
    if (!rc) rc = llm_hfc_num(c, KEYS("residual_multiplier"), 0, 1, 0, 1, 1e9, &res);
    if (!rc) rc = llm_hfc_num(c, KEYS("logits_scaling"), 0, 1, 0, 1, 1e9, &lsc);
    if (rc) return rc;
    d->o_bias = d->qkv_bias;
    d->embed_scale = emb;
    d->attn_scale = att;
    d->residual_scale = res;
    d->logit_scale = 1.0 / lsc;
    return 0;
}

const struct llm_arch_def llm_arch_granite = {
    .classes = KEYS("GraniteForCausalLM"),
    .model_types = KEYS("granite"),
    .read_config = read_config,
    .rules = llm_rules_llama_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 1,
    .eos = 2,
    .pad = -1,
};

static int read_config_moe(const struct llm_hfc *c, struct llm_model_desc *d)
{
    int rc = read_config(c, d);
    d->mlp_bias = 0; /* the experts have none (mlp_bias is not a GraniteMoe field) */
    if (!rc) rc = llm_hfc_i32(c, KEYS("num_local_experts"), 0, 8, 1, 4096, &d->n_experts);
    if (!rc)
        rc = llm_hfc_i32(c, KEYS("num_experts_per_tok"), 0, 2, 1, d->n_experts,
                         &d->n_experts_per_tok);
    d->moe_norm_topk = 1;
    return rc;
}

/* GraniteMoeShared (GraniteMoeSharedForCausalLM): GraniteMoe plus a shared expert of shared_intermediate_size (0, the
 * default: none) over every token, added to the experts' sum before the
 * residual multiplier. */
static int read_config_shared(const struct llm_hfc *c, struct llm_model_desc *d)
{
    int rc = read_config_moe(c, d);
    if (!rc)
        rc = llm_hfc_int(c, KEYS("shared_intermediate_size"), 0, 0, 0, 1 << 22,
                         &d->shared_expert_inter);
    return rc;
}

const struct llm_arch_def llm_arch_granitemoeshared = {
    .classes = KEYS("GraniteMoeSharedForCausalLM"),
    .model_types = KEYS("granitemoeshared"),
    .read_config = read_config_shared,
    .rules = granitemoe_rules,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 1,
    .eos = 2,
    .pad = -1,
};

const struct llm_arch_def llm_arch_granitemoe = {
    .classes = KEYS("GraniteMoeForCausalLM"),
    .model_types = KEYS("granitemoe"),
    .read_config = read_config_moe,
    .rules = granitemoe_rules,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 1,
    .eos = 2,
    .pad = -1,
};
