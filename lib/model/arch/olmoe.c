/* olmoe.c - OLMoE (OlmoeForCausalLM: OLMoE-1B-7B-0924 and -0125): the Llama
 * block (pre-norm RMS norms, SwiGLU experts) with RMS norms on q and k over
 * all the heads of a row at once (q_norm [heads x head_dim], k_norm [kv
 * heads x head_dim], as OLMo 2) and a mixture of experts in every layer:
 * the router (mlp.gate) picks num_experts_per_tok of num_experts experts by
 * their softmax, renormalised over the chosen ones only with
 * norm_topk_prob.  OlmoeConfig: kv heads default to the heads, rms_norm_eps
 * 1e-5, rope_theta 10000, 64 experts, top 8, untied.  clip_qkv clamps q and
 * k after their norms there, an order the description does not have: a
 * config that sets it is refused by name. */
#include "arch.h"

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 0,
                                    .max_pos_def = 4096,
                                    .eps_def = 1e-5,
                                    .tied_def = 0,
                                    .act_def = "silu",
                                    .rope = {10000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 0, &d->qkv_bias);
    d->o_bias = d->qkv_bias;
    d->qk_norm = LLM_QK_NORM_RMS_ALL;
    const json_t *clip = json_object_get(c->o, "clip_qkv");
    if (!rc && clip && !json_is_null(clip))
        rc = llm_err_set(LLM_EUNSUPPORTED,
                         "'%s': clip_qkv (OLMoE clamps q and k after their "
                         "norms) is not supported",
                         c->src);
    if (!rc) rc = llm_hfc_i32(c, KEYS("num_experts"), 0, 64, 1, 4096, &d->n_experts);
    if (!rc)
        rc = llm_hfc_i32(c, KEYS("num_experts_per_tok"), 0, 8, 1, d->n_experts,
                         &d->n_experts_per_tok);
    if (!rc) rc = llm_hfc_bool(c, KEYS("norm_topk_prob"), 0, &d->moe_norm_topk);
    return rc;
}

const struct llm_arch_def llm_arch_olmoe = {
    .classes = KEYS("OlmoeForCausalLM"),
    .model_types = KEYS("olmoe"),
    .read_config = read_config,
    .rules = llm_rules_moe_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = -1,
    .eos = 50279,
    .pad = 1,
};
