/* mixtral.c - Mixtral (MixtralForCausalLM): the Llama attention with a
 * mixture of experts in place of the MLP: a router (block_sparse_moe.gate)
 * picks num_experts_per_tok of num_local_experts experts per token, whose
 * softmax weights are renormalised over the chosen ones.  Expert e's w1
 * (gate) -> mlp.fc[e], w3 (up) -> mlp.gate[e], w2 (down) -> mlp.proj[e]. */
#include "arch.h"

#define L "model.layers.{i}."
static const struct llm_hf_rule rules[] = {
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"model.embed_tokens.weight"}, 0},
    {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"model.norm.weight"}, 0},
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},
    {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "input_layernorm.weight"}, 0},
    {LLM_W_QKV, 0, LLM_XF_CONCAT,
     {L "self_attn.q_proj.weight", L "self_attn.k_proj.weight", L "self_attn.v_proj.weight"}, 0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "self_attn.o_proj.weight"}, 0},
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "post_attention_layernorm.weight"}, 0},
    {LLM_W_ROUTER, 0, LLM_XF_COPY, {L "block_sparse_moe.gate.weight"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_STACK, {L "block_sparse_moe.experts.{e}.w1.weight"}, 0},
    {LLM_W_MLP_GATE, 0, LLM_XF_STACK, {L "block_sparse_moe.experts.{e}.w3.weight"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_STACK, {L "block_sparse_moe.experts.{e}.w2.weight"}, 0},
};
LLM_RULES(mixtral_rules, rules)

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 8,
                                    .max_pos_def = 4096 * 32,
                                    .eps_def = 1e-5,
                                    .rope = {1e6, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    int64_t window = 0;
    if (!rc) rc = llm_hfc_int(c, KEYS("sliding_window"), 0, 0, 0, INT32_MAX, &window);
    if (!rc) rc = llm_hfc_window(c, d, (int)window, 0, 0);
    if (!rc)
        rc = llm_hfc_i32(c, KEYS("num_local_experts", "num_experts"), 0, 8, 1, 4096, &d->n_experts);
    if (!rc)
        rc = llm_hfc_i32(c, KEYS("num_experts_per_tok"), 0, 2, 1, d->n_experts,
                         &d->n_experts_per_tok);
    d->moe_norm_topk = 1;
    return rc;
}

const struct llm_arch_def llm_arch_mixtral = {
    .classes = KEYS("MixtralForCausalLM"),
    .model_types = KEYS("mixtral"),
    .read_config = read_config,
    .rules = mixtral_rules,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 1,
    .eos = 2,
    .pad = -1,
};
