/* dots1.c - dots.llm1 (Dots1ForCausalLM: rednote-hilab dots.llm1.base / .inst):
 * Qwen3's attention (per-head q/k RMS norms, q/k/v biases as
 * attention_bias says) with DeepSeek V3's mixture of experts - dense MLPs in
 * the first first_k_dense_replace layers, then experts scored by sigmoid,
 * chosen in groups (n_group, topk_group) with the per-expert correction bias
 * (mlp.gate.e_score_correction_bias), weighted by the sigmoid (renormalised
 * with norm_topk_prob) times routed_scaling_factor, plus n_shared_experts
 * shared experts - and Qwen2's sliding window on the layers from
 * max_window_layers on (or as layer_types says).  Dots1Config: kv heads =
 * heads (32), rms_norm_eps 1e-6, rope_theta 10000, 2048 positions, groups
 * 1 / 1, no dense layers, no renormalisation, scale 1, sliding_window 4096
 * from layer 62; the expert counts (n_routed_experts, num_experts_per_tok,
 * n_shared_experts) have no default and are required. */
#include "arch.h"

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 0,
                                    .max_pos_def = 2048,
                                    .eps_def = 1e-6,
                                    .tied_def = 0,
                                    .act_def = "silu",
                                    .rope = {10000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    if (!rc) rc = llm_hfc_int(c, KEYS("intermediate_size"), 1, 0, 1, 1 << 22, &d->dense_inter);
    if (!rc)
        rc = llm_hfc_int(c, KEYS("moe_intermediate_size"), 0, 1408, 1, 1 << 22, &d->intermediate);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 0, &d->qkv_bias);
    d->qk_norm = LLM_QK_NORM_RMS;
    if (!rc)
        rc = llm_hfc_i32(c, KEYS("n_routed_experts", "num_local_experts"), 1, 0, 2, 4096,
                         &d->n_experts);
    if (!rc)
        rc = llm_hfc_i32(c, KEYS("num_experts_per_tok"), 1, 0, 1, d->n_experts,
                         &d->n_experts_per_tok);
    if (!rc) rc = llm_hfc_bool(c, KEYS("norm_topk_prob"), 0, &d->moe_norm_topk);
    if (!rc)
        rc = llm_hfc_num(c, KEYS("routed_scaling_factor"), 0, 1.0, 0, 1, 1e6, &d->moe_scale);
    if (!rc) rc = llm_hfc_i32(c, KEYS("n_group"), 0, 1, 1, 4096, &d->moe_groups);
    if (!rc) rc = llm_hfc_i32(c, KEYS("topk_group"), 0, 1, 1, 4096, &d->moe_topk_groups);
    d->moe_router = LLM_ROUTER_SIGMOID_GROUPS;
    d->moe_corr_bias = 1;
    int64_t shared = 0, first = 0, window = 4096, from = 62;
    if (!rc) rc = llm_hfc_int(c, KEYS("n_shared_experts"), 1, 0, 0, 4096, &shared);
    d->shared_expert_inter = shared * d->intermediate;
    if (!rc) rc = llm_hfc_int(c, KEYS("first_k_dense_replace"), 0, 0, 0, LLM_MAX_LAYERS, &first);
    d->moe_first_layer = (int)(first < d->n_layers ? first : d->n_layers);
    if (!d->moe_first_layer) d->dense_inter = 0;
    /* sliding_window absent: 4096, null: none; from max_window_layers on */
    if (!rc && json_object_get(c->o, "sliding_window"))
        rc = llm_hfc_int(c, KEYS("sliding_window"), 0, 0, 0, INT32_MAX, &window);
    if (!rc) rc = llm_hfc_int(c, KEYS("max_window_layers"), 0, 62, 0, INT32_MAX, &from);
    if (!rc)
        rc = llm_hfc_window(c, d, (int)window, (int)(from < d->n_layers ? from : d->n_layers), 0);
    return rc;
}

const struct llm_arch_def llm_arch_dots1 = {
    .classes = KEYS("Dots1ForCausalLM"),
    .model_types = KEYS("dots1"),
    .read_config = read_config,
    .rules = llm_rules_deepseek_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = -1,
    .eos = -1,
    .pad = -1,
};
