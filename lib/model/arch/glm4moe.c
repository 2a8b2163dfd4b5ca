/* glm4moe.c - GLM-4.5 / 4.6 (Glm4MoeForCausalLM: GLM-4.5, GLM-4.5-Air,
 * GLM-4.6): the Llama attention with q/k/v biases (attention_bias), an
 * unbiased o_proj, optional per-head q/k RMS norms before rotary
 * (use_qk_norm), rotary on halves of the first partial_rotary_factor of each
 * head (0.5 when absent), and DeepSeek V3's mixture of experts: dense MLPs in
 * the first first_k_dense_replace layers, then experts scored by sigmoid,
 * chosen in groups (n_group, topk_group) with the per-expert correction bias
 * (mlp.gate.e_score_correction_bias), weighted by the sigmoid renormalised
 * (norm_topk_prob) times routed_scaling_factor, plus n_shared_experts shared
 * experts.  Glm4MoeConfig: 8 kv heads, rms_norm_eps 1e-5, rope_theta 10000,
 * 128 experts of moe_intermediate_size 1408, top 8, one group, one shared
 * expert, one dense layer, scale 1, untied.  The published checkpoints'
 * next-token-prediction layers (model.layers.<num_hidden_layers> on) are not
 * part of the model and are left out with a warning. */
#include "arch.h"

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 8,
                                    .max_pos_def = 131072,
                                    .eps_def = 1e-5,
                                    .tied_def = 0,
                                    .act_def = "silu",
                                    .rope = {10000.0, NULL, 0.5, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    if (!rc) rc = llm_hfc_int(c, KEYS("intermediate_size"), 0, 10944, 1, 1 << 22, &d->dense_inter);
    if (!rc)
        rc = llm_hfc_int(c, KEYS("moe_intermediate_size"), 0, 1408, 1, 1 << 22, &d->intermediate);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 0, &d->qkv_bias);
    int qk = 0;
    if (!rc) rc = llm_hfc_bool(c, KEYS("use_qk_norm"), 0, &qk);
    d->qk_norm = qk ? LLM_QK_NORM_RMS : LLM_QK_NORM_NONE;
    if (!rc)
        rc = llm_hfc_i32(c, KEYS("n_routed_experts", "num_local_experts"), 0, 128, 1, 4096,
                         &d->n_experts);
    if (!rc)
        rc = llm_hfc_i32(c, KEYS("num_experts_per_tok"), 0, 8, 1, d->n_experts,
                         &d->n_experts_per_tok);
    if (!rc) rc = llm_hfc_bool(c, KEYS("norm_topk_prob"), 1, &d->moe_norm_topk);
    if (!rc)
        rc = llm_hfc_num(c, KEYS("routed_scaling_factor"), 0, 1.0, 0, 1, 1e6, &d->moe_scale);
    if (!rc) rc = llm_hfc_i32(c, KEYS("n_group"), 0, 1, 1, 4096, &d->moe_groups);
    if (!rc) rc = llm_hfc_i32(c, KEYS("topk_group"), 0, 1, 1, 4096, &d->moe_topk_groups);
    d->moe_router = LLM_ROUTER_SIGMOID_GROUPS;
    d->moe_corr_bias = 1;
    int64_t shared = 1, first = 1;
    if (!rc) rc = llm_hfc_int(c, KEYS("n_shared_experts"), 0, 1, 0, 4096, &shared);
    d->shared_expert_inter = shared * d->intermediate;
    if (!rc) rc = llm_hfc_int(c, KEYS("first_k_dense_replace"), 0, 1, 0, LLM_MAX_LAYERS, &first);
    d->moe_first_layer = (int)(first < d->n_layers ? first : d->n_layers);
    if (!d->moe_first_layer) d->dense_inter = 0;
    return rc;
}

const struct llm_arch_def llm_arch_glm4moe = {
    .classes = KEYS("Glm4MoeForCausalLM"),
    .model_types = KEYS("glm4_moe"),
    .read_config = read_config,
    .rules = llm_rules_deepseek_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = -1,
    .eos = -1,
    .pad = -1,
};
