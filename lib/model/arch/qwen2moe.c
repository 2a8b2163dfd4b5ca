/* qwen2moe.c - Qwen2-MoE (Qwen2MoeForCausalLM: Qwen1.5-MoE-A2.7B,
 * Qwen2-57B-A14B): Qwen2's attention (q/k/v biases, none on o; the sliding
 * window as Qwen2 reads it) and in every layer a mixture of experts of
 * moe_intermediate_size picked by the router (mlp.gate: num_experts_per_tok
 * of num_experts by softmax, renormalised with norm_topk_prob) plus one
 * shared expert of shared_expert_intermediate_size over every token, whose
 * output is multiplied by sigmoid(mlp.shared_expert_gate . x) before it is
 * added.  Qwen2MoeConfig: qkv_bias true, kv heads 16, rms_norm_eps 1e-6,
 * rope_theta 10000, 60 experts, top 4, untied.  Layouts mixing dense and
 * expert layers (decoder_sparse_step > 1, mlp_only_layers) are refused. */
#include "arch.h"

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 16,
                                    .max_pos_def = 32768,
                                    .eps_def = 1e-6,
                                    .tied_def = 0,
                                    .rope = {10000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    if (!rc) rc = llm_hfc_bool(c, KEYS("qkv_bias"), 1, &d->qkv_bias);
    if (!rc) rc = llm_hfc_qwen_window(c, d);
    if (!rc) rc = llm_hfc_i32(c, KEYS("num_experts"), 0, 60, 1, 4096, &d->n_experts);
    if (!rc)
        rc = llm_hfc_i32(c, KEYS("num_experts_per_tok"), 0, 4, 1, d->n_experts,
                         &d->n_experts_per_tok);
    if (!rc)
        rc = llm_hfc_int(c, KEYS("moe_intermediate_size"), 0, 1408, 1, 1 << 22, &d->intermediate);
    if (!rc) rc = llm_hfc_bool(c, KEYS("norm_topk_prob"), 0, &d->moe_norm_topk);
    if (!rc)
        rc = llm_hfc_int(c, KEYS("shared_expert_intermediate_size"), 0, 5632, 0, 1 << 22,
                         &d->shared_expert_inter);
    d->shared_expert_gate = d->shared_expert_inter > 0;
    int64_t step = 1;
    if (!rc) rc = llm_hfc_int(c, KEYS("decoder_sparse_step"), 0, 1, 1, 1 << 20, &step);
    if (!rc && step != 1)
        rc = llm_err_set(LLM_EUNSUPPORTED,
                         "'%s': decoder_sparse_step %lld (dense layers between "
                         "expert layers) is not supported",
                         c->src, (long long)step);
    const json_t *dense = json_object_get(c->o, "mlp_only_layers");
    if (!rc && json_is_array(dense) && json_array_size(dense))
        rc = llm_err_set(LLM_EUNSUPPORTED,
                         "'%s': mlp_only_layers (dense layers among expert "
                         "layers) is not supported",
                         c->src);
    return rc;
}

const struct llm_arch_def llm_arch_qwen2moe = {
    .classes = KEYS("Qwen2MoeForCausalLM"),
    .model_types = KEYS("qwen2_moe"),
    .read_config = read_config,
    .rules = llm_rules_moe_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = -1,
    .eos = -1,
    .pad = -1,
};
