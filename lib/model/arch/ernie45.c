/* ernie45.c - ERNIE 4.5 dense models (Ernie4_5ForCausalLM: ERNIE-4.5-0.3B):
 * the Llama block with rotary on interleaved pairs (transformers repeats
 * each frequency twice and rotates (x[2i], x[2i+1])), and one switch,
 * use_bias, for the biases of every projection.  Ernie4_5Config: kv heads 2,
 * head_dim 128, rms_norm_eps 1e-5, rope_theta 500000, tied, bos 1, eos 2,
 * pad 0.
 *
 * ERNIE 4.5 MoE (Ernie4_5_MoeForCausalLM: ERNIE-4.5-21B-A3B, -300B-A47B): the
 * same attention, and from moe_layer_start_index on a mixture of experts: a
 * softmax over the router (mlp.gate) logits, the top moe_k by softmax plus
 * the per-expert correction bias (mlp.moe_statics.e_score_correction_bias
 * [1][experts], for the choice only), weighted by their softmax renormalised,
 * plus moe_num_shared_experts shared experts of moe_intermediate_size; the
 * layers before have a dense MLP of intermediate_size.  Ernie4_5_MoeConfig:
 * 64 experts, top 6, two shared experts of 1536, start 1, every layer to the
 * last; other layouts (moe_layer_interval above 1, an end before the last
 * layer) and use_bias (the experts have none) are refused by name. */
#include "arch.h"

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 2,
                                    .max_pos_def = 131072,
                                    .eps_def = 1e-5,
                                    .tied_def = 1,
                                    .head_dim_def = 128,
                                    .act_def = "silu",
                                    .rope = {500000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    int bias = 0;
    if (!rc) rc = llm_hfc_bool(c, KEYS("use_bias"), 0, &bias);
    if (rc) return rc;
    if (d->rope.scaling == LLM_ROPE_SCALING_LONGROPE)
        return llm_err_set(LLM_EUNSUPPORTED,
                           "'%s': longrope with interleaved rotary pairs is "
                           "not supported",
                           c->src);
    d->qkv_bias = d->o_bias = d->mlp_bias = bias;
    d->rope.neox = 0;
    return 0;
}

static int read_config_moe(const struct llm_hfc *c, struct llm_model_desc *d)
{
    int rc = read_config(c, d);
    if (!rc && d->mlp_bias)
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': use_bias true with experts (which have no "
                           "biases) is not supported",
                           c->src);
    int64_t start = 1, end = -1, interval = 1, shared = 2;
    d->dense_inter = d->intermediate;
    if (!rc)
        rc = llm_hfc_int(c, KEYS("moe_intermediate_size"), 0, 1536, 1, 1 << 22, &d->intermediate);
    if (!rc)
        rc = llm_hfc_i32(c, KEYS("moe_num_experts", "num_experts"), 0, 64, 2, 4096,
                         &d->n_experts);
    if (!rc)
        rc = llm_hfc_i32(c, KEYS("moe_k", "num_experts_per_tok"), 0, 6, 1, d->n_experts,
                         &d->n_experts_per_tok);
    if (!rc) rc = llm_hfc_int(c, KEYS("moe_num_shared_experts"), 0, 2, 0, 4096, &shared);
    if (!rc) rc = llm_hfc_int(c, KEYS("moe_layer_start_index"), 0, 1, 0, INT32_MAX, &start);
    if (!rc) rc = llm_hfc_int(c, KEYS("moe_layer_end_index"), 0, -1, -1, INT32_MAX, &end);
    if (!rc) rc = llm_hfc_int(c, KEYS("moe_layer_interval"), 0, 1, 1, INT32_MAX, &interval);
    if (rc) return rc;
    if (end == -1) end = d->n_layers - 1;
    if (interval != 1 || end < d->n_layers - 1)
        return llm_err_set(LLM_EUNSUPPORTED,
                           "'%s': expert layers every %lld from %lld to %lld: only a dense "
                           "start followed by experts to the last layer is supported",
                           c->src, (long long)interval, (long long)start, (long long)end);
    d->moe_first_layer = (int)(start < d->n_layers ? start : d->n_layers);
    if (!d->moe_first_layer) d->dense_inter = 0;
    d->shared_expert_inter = shared * d->intermediate;
    d->moe_norm_topk = 1;
    /* softmax scores, the choice by score + correction bias: one group */
    d->moe_router = LLM_ROUTER_SOFTMAX_GROUPS;
    d->moe_corr_bias = 1;
    d->moe_groups = d->moe_topk_groups = 1;
    return 0;
}

const struct llm_arch_def llm_arch_ernie45moe = {
    .classes = KEYS("Ernie4_5_MoeForCausalLM"),
    .model_types = KEYS("ernie4_5_moe"),
    .read_config = read_config_moe,
    .rules = llm_rules_deepseek_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 1,
    .eos = 2,
    .pad = 0,
};

const struct llm_arch_def llm_arch_ernie45 = {
    .classes = KEYS("Ernie4_5ForCausalLM"),
    .model_types = KEYS("ernie4_5"),
    .read_config = read_config,
    .rules = llm_rules_llama_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 1,
    .eos = 2,
    .pad = 0,
};
