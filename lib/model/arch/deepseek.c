/* deepseek.c - DeepSeek V3 (DeepseekV3ForCausalLM: DeepSeek-V3, -R1, V3.1,
 * Kimi K2, Moonlight) and V2 (DeepseekV2ForCausalLM: DeepSeek-V2, -V2-Lite,
 * V2.5, DeepSeek-Coder-V2): multi-head latent attention and a mixture of
 * experts behind first_k_dense_replace dense layers.
 *
 * Attention: q from q_b_proj(RMSNorm(q_a_proj(x))) (q_proj(x) when
 * q_lora_rank is null), per head [nope | rope]; kv_a_proj_with_mqa(x) gives
 * the latent c (kv_lora_rank) and one rotary key of qk_rope_head_dim for
 * every head; kv_b_proj(RMSNorm(c)) gives each head's [k_nope | v].  Rotary
 * on the rope dims alone, on interleaved pairs when rope_interleave (the
 * default) and on halves otherwise; the softmax scale is qk_head_dim^-1/2,
 * times mscale^2 with yarn's mscale_all_dim.
 *
 * Experts: mlp.gate scores every expert by sigmoid; with the per-expert
 * correction bias (mlp.gate.e_score_correction_bias) added for the choice
 * only, n_group groups are scored by the sum of their two best, topk_group
 * groups kept and the top num_experts_per_tok experts of those chosen,
 * weighted by their sigmoid (renormalised with norm_topk_prob) times
 * routed_scaling_factor; n_shared_experts shared experts (one MLP of
 * n_shared_experts x moe_intermediate_size) are added for every token.
 * Layers before first_k_dense_replace have a dense MLP of intermediate_size.
 *
 * V2 routes by softmax instead: topk_method "greedy" takes the top k of all
 * the experts, "group_limited_greedy" first keeps the topk_group groups of
 * the best single score; the weights are the softmax scores times
 * routed_scaling_factor, never renormalised (V2 has no correction bias);
 * its rotary is always on interleaved pairs.
 *
 * DeepseekV3Config: 256 routed experts, top 8, 8 groups, 4 kept, scale 2.5,
 * one shared expert of moe_intermediate_size 2048, 3 dense layers, q_lora 1536,
 * kv_lora 512, rope 64, nope 128, v 128, rms_norm_eps 1e-6, rope_theta 10000,
 * 4096 positions, untied; attention_bias (true) is refused.
 * DeepseekV2Config: 64 routed experts (num_experts_per_tok required), two
 * shared experts of moe_intermediate_size 1407, scale 1, greedy, no dense
 * layers, q_lora 1536, kv_lora 512, 2048 positions; mlp_bias is refused.  The published
 * checkpoints' multi-token-prediction layer (model.layers.<num_hidden_layers>)
 * is not part of the model and is left out with a warning. */
#include <math.h>
#include <string.h>

#include "arch.h"

#define L "model.layers.{i}."
static const struct llm_hf_rule rules[] = {
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"model.embed_tokens.weight"}, 0},
    {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"model.norm.weight"}, 0},
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},
    {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "input_layernorm.weight"}, 0},
    /* the Llama attention (GLM-4.5, dots.llm1, ERNIE 4.5) */
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
    {LLM_W_Q_NORM, 0, LLM_XF_COPY, {L "self_attn.q_norm.weight"}, 0},
    {LLM_W_K_NORM, 0, LLM_XF_COPY, {L "self_attn.k_norm.weight"}, 0},
    /* latent attention (DeepSeek): q_b_proj after the q latent, or q_proj alone */
    {LLM_W_Q_A, 0, LLM_XF_COPY, {L "self_attn.q_a_proj.weight"}, 0},
    {LLM_W_Q_A_NORM, 0, LLM_XF_COPY, {L "self_attn.q_a_layernorm.weight"}, 0},
    {LLM_W_Q_B, 0, LLM_XF_COPY, {L "self_attn.q_b_proj.weight", L "self_attn.q_proj.weight"}, 0},
    {LLM_W_KV_A, 0, LLM_XF_COPY, {L "self_attn.kv_a_proj_with_mqa.weight"}, 0},
    {LLM_W_KV_A_NORM, 0, LLM_XF_COPY, {L "self_attn.kv_a_layernorm.weight"}, 0},
    {LLM_W_KV_B, 0, LLM_XF_COPY, {L "self_attn.kv_b_proj.weight"}, 0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "self_attn.o_proj.weight"}, 0},
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "post_attention_layernorm.weight"}, 0},
    {LLM_W_ROUTER, 0, LLM_XF_COPY, {L "mlp.gate.weight"}, 0},
    {LLM_W_ROUTER_CORR,
     0,
     LLM_XF_COPY,
     {L "mlp.gate.e_score_correction_bias", L "mlp.moe_statics.e_score_correction_bias"},
     0},
    {LLM_W_MLP_FC,
     0,
     LLM_XF_STACK,
     {L "mlp.experts.{e}.gate_proj.weight", L "mlp.gate_proj.weight"},
     0},
    {LLM_W_MLP_GATE, 0, LLM_XF_STACK, {L "mlp.experts.{e}.up_proj.weight", L "mlp.up_proj.weight"},
     0},
    {LLM_W_MLP_OUT,
     0,
     LLM_XF_STACK,
     {L "mlp.experts.{e}.down_proj.weight", L "mlp.down_proj.weight"},
     0},
    {LLM_W_SHARED_FC, 0, LLM_XF_COPY, {L "mlp.shared_experts.gate_proj.weight"}, 0},
    {LLM_W_SHARED_GATE, 0, LLM_XF_COPY, {L "mlp.shared_experts.up_proj.weight"}, 0},
    {LLM_W_SHARED_OUT, 0, LLM_XF_COPY, {L "mlp.shared_experts.down_proj.weight"}, 0},
};

const struct llm_hf_rule *llm_rules_deepseek_fn(const struct llm_model_desc *d, size_t *n)
{
    (void)d; /* a slot the description lacks is never looked up */
    *n = sizeof(rules) / sizeof(rules[0]);
    return rules;
}

/* The defaults of the two config classes. */
struct ds_defaults {
    int v2;
    int64_t experts, topk, shared, first_dense, moe_inter, max_pos;
    double scale;
};

static int read_common(const struct llm_hfc *c, struct llm_model_desc *d,
                       const struct ds_defaults *k)
{
    const struct llm_hfc_sizes sz = {KEYS("hidden_size"), KEYS("num_hidden_layers"),
                                     KEYS("num_attention_heads")};
    int rc = llm_hfc_core(c, d, &sz);
    int64_t nope = 128, rope = 64, vd = 128;
    if (!rc) rc = llm_hfc_int(c, KEYS("intermediate_size"), 1, 0, 1, 1 << 22, &d->dense_inter);
    if (!rc)
        rc = llm_hfc_int(c, KEYS("moe_intermediate_size"), 0, k->moe_inter, 1, 1 << 22,
                         &d->intermediate);
    if (!rc) rc = llm_hfc_int(c, KEYS("q_lora_rank"), 0, 0, 0, 1 << 20, &d->q_lora_rank);
    /* DeepseekV3Config: q_lora_rank 1536 when absent, none when null */
    if (!rc && !json_object_get(c->o, "q_lora_rank")) d->q_lora_rank = 1536;
    if (!rc) rc = llm_hfc_int(c, KEYS("kv_lora_rank"), 0, 512, 1, 1 << 20, &d->kv_lora_rank);
    if (!rc) rc = llm_hfc_int(c, KEYS("qk_nope_head_dim"), 0, 128, 1, 4096, &nope);
    if (!rc) rc = llm_hfc_int(c, KEYS("qk_rope_head_dim"), 0, 64, 2, 4096, &rope);
    if (!rc) rc = llm_hfc_int(c, KEYS("v_head_dim"), 0, 128, 1, 4096, &vd);
    if (rc) return rc;
    if (rope % 2)
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': qk_rope_head_dim %lld is odd", c->src,
                           (long long)rope);
    if (vd > nope + rope)
        return llm_err_set(LLM_EUNSUPPORTED,
                           "'%s': v_head_dim %lld exceeds qk_nope_head_dim + qk_rope_head_dim "
                           "(%lld)",
                           c->src, (long long)vd, (long long)(nope + rope));
    d->head_dim = (int)(nope + rope);
    d->v_head_dim = (int)vd;
    d->n_kv_heads = d->n_heads; /* every head gets its own keys from the latent */
    rc = llm_hfc_int(c, KEYS("max_position_embeddings"), 0, k->max_pos, 1, INT32_MAX, &d->max_pos);
    if (!rc) rc = llm_hfc_num(c, KEYS("rms_norm_eps"), 0, 1e-6, 0, 1, 1, &d->norm_eps);
    d->norm = LLM_NORM_RMS;
    d->gated_mlp = 1;
    d->pos = LLM_POS_ROPE;
    if (!rc) rc = llm_hfc_act(c, KEYS("hidden_act"), "silu", d);
    if (!rc) rc = llm_hfc_bool(c, KEYS("tie_word_embeddings"), 0, &d->tied_embeddings);
    const struct llm_hfc_rope rd = {10000.0, NULL, 1.0, NULL, 0};
    if (!rc) rc = llm_hfc_rope(c, d, &rd);
    if (rc) return rc;
    d->rope.rot_dims = (int)rope; /* the rope dims alone rotate (the first of each head here) */
    int interleave = 1;
    if (!k->v2 && (rc = llm_hfc_bool(c, KEYS("rope_interleave"), 1, &interleave))) return rc;
    d->rope.neox = !interleave;
    if ((rc = llm_hfc_refuse(c, "attention_bias")) || (k->v2 && (rc = llm_hfc_refuse(c, "mlp_bias"))))
        return rc;
    /* the softmax scale: qk_head_dim^-1/2, times yarn's mscale(mscale_all_dim)^2 */
    d->attn_scale = 1.0 / sqrt((double)d->head_dim);
    if (d->rope.scaling == LLM_ROPE_SCALING_YARN && d->rope.mscale_all_dim > 0 &&
        d->rope.factor > 1) {
        double m = 0.1 * d->rope.mscale_all_dim * log(d->rope.factor) + 1.0;
        d->attn_scale *= m * m;
    }
    rc = llm_hfc_i32(c, KEYS("n_routed_experts", "num_local_experts"), 0, k->experts, 1, 4096,
                     &d->n_experts);
    if (!rc)
        rc = llm_hfc_i32(c, KEYS("num_experts_per_tok"), k->topk == 0, k->topk, 1, d->n_experts,
                         &d->n_experts_per_tok);
    if (!rc && !k->v2) rc = llm_hfc_bool(c, KEYS("norm_topk_prob"), 1, &d->moe_norm_topk);
    if (!rc)
        rc = llm_hfc_num(c, KEYS("routed_scaling_factor"), 0, k->scale, 0, 1, 1e6, &d->moe_scale);
    const char *method = NULL;
    if (!rc && k->v2) rc = llm_hfc_str(c, KEYS("topk_method"), &method);
    if (!rc && k->v2 && method && strcmp(method, "greedy") && strcmp(method, "group_limited_greedy"))
        rc = llm_err_set(LLM_EUNSUPPORTED,
                         "'%s': topk_method '%s' is not supported (greedy, group_limited_greedy)",
                         c->src, method);
    d->moe_router = !k->v2 ? LLM_ROUTER_SIGMOID_GROUPS
                    : method && !strcmp(method, "group_limited_greedy") ? LLM_ROUTER_SOFTMAX_GROUPS
                                                                        : LLM_ROUTER_SOFTMAX;
    d->moe_corr_bias = !k->v2; /* V3's e_score_correction_bias; V2 has none */
    if (!rc && d->moe_router != LLM_ROUTER_SOFTMAX) {
        rc = llm_hfc_i32(c, KEYS("n_group"), k->v2, 8, 1, 4096, &d->moe_groups);
        if (!rc) rc = llm_hfc_i32(c, KEYS("topk_group"), k->v2, 4, 1, 4096, &d->moe_topk_groups);
    }
    int64_t shared = k->shared, first = k->first_dense;
    if (!rc) rc = llm_hfc_int(c, KEYS("n_shared_experts"), 0, k->shared, 0, 4096, &shared);
    d->shared_expert_inter = shared * d->intermediate;
    if (!rc)
        rc = llm_hfc_int(c, KEYS("first_k_dense_replace"), 0, k->first_dense, 0, LLM_MAX_LAYERS,
                         &first);
    d->moe_first_layer = (int)(first < d->n_layers ? first : d->n_layers);
    if (!d->moe_first_layer) d->dense_inter = 0;
    return rc;
}

static int read_config3(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct ds_defaults k = {0, 256, 8, 1, 3, 2048, 4096, 2.5};
    return read_common(c, d, &k);
}

static int read_config2(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct ds_defaults k = {1, 64, 0, 2, 0, 1407, 2048, 1.0};
    return read_common(c, d, &k);
}

const struct llm_arch_def llm_arch_deepseek3 = {
    .classes = KEYS("DeepseekV3ForCausalLM"),
    .model_types = KEYS("deepseek_v3", "kimi_k2"),
    .read_config = read_config3,
    .rules = llm_rules_deepseek_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 0,
    .eos = 1,
    .pad = -1,
};

const struct llm_arch_def llm_arch_deepseek2 = {
    .classes = KEYS("DeepseekV2ForCausalLM"),
    .model_types = KEYS("deepseek_v2"),
    .read_config = read_config2,
    .rules = llm_rules_deepseek_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 1,
    .eos = 2,
    .pad = -1,
};
