/* minimaxm2.c - MiniMax-M2 (MiniMaxM2ForCausalLM: MiniMax-M2, M2.1): Mixtral's
 * names (block_sparse_moe.gate, experts' w1 / w3 / w2) with RMS norms on q and
 * k over all the heads of a row at once (q_norm [heads x head_dim], k_norm
 * [kv heads x head_dim], before rotary, as OLMo 2), rotary on halves of the
 * first rotary_dim dims of each head (the published configs' legacy field;
 * partial_rotary_factor otherwise), and experts chosen by sigmoid scores plus
 * a per-expert correction bias (block_sparse_moe.e_score_correction_bias, for
 * the choice only), weighted by their sigmoid renormalised over the chosen
 * ones: DeepSeek V3's router with one group.  MiniMaxM2Config: 8 kv heads,
 * head_dim 128, 256 experts, top 8, rms_norm_eps 1e-6, untied. */
#include "arch.h"

#define L "model.layers.{i}."
static const struct llm_hf_rule rules[] = {
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"model.embed_tokens.weight"}, 0},
    {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"model.norm.weight"}, 0},
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},
    {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "input_layernorm.weight"}, 0},
    {LLM_W_QKV,
     0,
     LLM_XF_CONCAT,
     {L "self_attn.q_proj.weight", L "self_attn.k_proj.weight", L "self_attn.v_proj.weight"},
     0},
    {LLM_W_Q_NORM, 0, LLM_XF_COPY, {L "self_attn.q_norm.weight"}, 0},
    {LLM_W_K_NORM, 0, LLM_XF_COPY, {L "self_attn.k_norm.weight"}, 0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "self_attn.o_proj.weight"}, 0},
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "post_attention_layernorm.weight"}, 0},
    {LLM_W_ROUTER, 0, LLM_XF_COPY, {L "block_sparse_moe.gate.weight"}, 0},
    {LLM_W_ROUTER_CORR, 0, LLM_XF_COPY, {L "block_sparse_moe.e_score_correction_bias"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_STACK, {L "block_sparse_moe.experts.{e}.w1.weight"}, 0},
    {LLM_W_MLP_GATE, 0, LLM_XF_STACK, {L "block_sparse_moe.experts.{e}.w3.weight"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_STACK, {L "block_sparse_moe.experts.{e}.w2.weight"}, 0},
};
LLM_RULES(minimaxm2_rules, rules)

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 8,
                                    .max_pos_def = 196608,
                                    .eps_def = 1e-6,
                                    .tied_def = 0,
                                    .act_def = "silu",
                                    .head_dim_def = 128,
                                    .rope = {10000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    if (rc) return rc;
    /* the released configs' rotary_dim (dims, not a fraction) when no factor is given */
    if (!llm_hfc_has(c, KEYS("partial_rotary_factor")) && llm_hfc_has(c, KEYS("rotary_dim"))) {
        int64_t rot = 0;
        if ((rc = llm_hfc_int(c, KEYS("rotary_dim"), 1, 0, 2, d->head_dim, &rot))) return rc;
        if (rot % 2)
            return llm_err_set(LLM_EUNSUPPORTED, "'%s': rotary_dim %lld is odd", c->src,
                               (long long)rot);
        d->rope.rot_dims = (int)rot;
    }
    d->qk_norm = LLM_QK_NORM_RMS_ALL;
    rc = llm_hfc_i32(c, KEYS("num_local_experts", "num_experts"), 0, 256, 2, 4096, &d->n_experts);
    if (!rc)
        rc = llm_hfc_i32(c, KEYS("num_experts_per_tok"), 0, 8, 1, d->n_experts,
                         &d->n_experts_per_tok);
    d->moe_norm_topk = 1;
    d->moe_router = LLM_ROUTER_SIGMOID_GROUPS;
    d->moe_corr_bias = 1;
    d->moe_groups = d->moe_topk_groups = 1; /* one group: the top k of every expert */
    return rc;
}

const struct llm_arch_def llm_arch_minimaxm2 = {
    .classes = KEYS("MiniMaxM2ForCausalLM"),
    .model_types = KEYS("minimax_m2"),
    .read_config = read_config,
    .rules = minimaxm2_rules,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 200034,
    .eos = 200020,
    .pad = -1,
};
