/* gptoss.c - GPT-OSS (GptOssForCausalLM: gpt-oss-20b, gpt-oss-120b): the
 * Llama block (pre-norm RMS norms, rotary on halves) with q/k/v/o biases,
 * a learned sink logit per head in every softmax (self_attn.sinks), sliding
 * layers as layer_types says (without it the even ones), and a mixture of
 * experts in every layer: the router (mlp.router, with a bias) picks
 * num_experts_per_tok experts by their logits and weighs them by a softmax
 * over the chosen logits (the renormalised top-k); each expert is a gated
 * MLP with biases whose activation clamps: with g = min(gate, limit) and
 * u = clamp(up, -limit, limit), g * sigmoid(alpha * g) * (u + 1).
 *
 * Tensors: the experts' weights are stacked in the x @ W orientation,
 * mlp.experts.gate_up_proj [E][hidden][2 I] with gate and up in alternate
 * columns (gate the even ones) and down_proj [E][I][hidden], so they are
 * de-interleaved and transposed into the canonical [E][out][in]; the
 * published checkpoints store both as MXFP4 (<name>_blocks, <name>_scales
 * in the [E][out][in] orientation), which the converter expands to bf16
 * exactly (hfmap.c).
 *
 * GptOssConfig: 128 experts, top 4, head_dim 64, rms_norm_eps 1e-5,
 * sliding_window 128, attention_bias true, swiglu_alpha 1.702, swiglu_limit
 * 7, untied; without rope_scaling (or rope_parameters) yarn with factor 32,
 * beta_fast 32, beta_slow 1, truncate false and original_max_position_-
 * embeddings 4096 over rope_theta 150000.  The published config also says
 * experts_per_token, which transformers ignores in favour of
 * num_experts_per_tok; it is read only when the latter is absent. */
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
    {LLM_W_QKV,
     1,
     LLM_XF_CONCAT,
     {L "self_attn.q_proj.bias", L "self_attn.k_proj.bias", L "self_attn.v_proj.bias"},
     0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "self_attn.o_proj.weight"}, 0},
    {LLM_W_ATTN_OUT, 1, LLM_XF_COPY, {L "self_attn.o_proj.bias"}, 0},
    {LLM_W_ATTN_SINKS, 0, LLM_XF_COPY, {L "self_attn.sinks"}, 0},
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "post_attention_layernorm.weight"}, 0},
    {LLM_W_ROUTER, 0, LLM_XF_COPY, {L "mlp.router.weight"}, 0},
    {LLM_W_ROUTER, 1, LLM_XF_COPY, {L "mlp.router.bias"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_DEINTERLEAVE, {L "mlp.experts.gate_up_proj"}, 0},
    {LLM_W_MLP_FC, 1, LLM_XF_DEINTERLEAVE, {L "mlp.experts.gate_up_proj_bias"}, 0},
    {LLM_W_MLP_GATE, 0, LLM_XF_DEINTERLEAVE, {L "mlp.experts.gate_up_proj"}, 1},
    {LLM_W_MLP_GATE, 1, LLM_XF_DEINTERLEAVE, {L "mlp.experts.gate_up_proj_bias"}, 1},
    {LLM_W_MLP_OUT, 0, LLM_XF_TRANSPOSE, {L "mlp.experts.down_proj"}, 0},
    {LLM_W_MLP_OUT, 1, LLM_XF_COPY, {L "mlp.experts.down_proj_bias"}, 0},
};
LLM_RULES(gptoss_rules, rules)

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 0,
                                    .max_pos_def = 131072,
                                    .eps_def = 1e-5,
                                    .tied_def = 0,
                                    .act_def = "silu",
                                    .head_dim_def = 64,
                                    .rope = {150000.0, NULL, 1.0, NULL, 0}};
    /* no rotary parameters at all: GptOssConfig's yarn */
    json_t *cp = json_copy((json_t *)c->o);
    if (!cp) return llm_err_set(LLM_ENOMEM, "out of memory");
    int rc = 0;
    if (!llm_hfc_has(c, KEYS("rope_scaling", "rope_parameters")) &&
        json_object_set_new(cp, "rope_scaling",
                            json_pack("{s:s, s:f, s:f, s:f, s:b, s:i}", "rope_type", "yarn",
                                      "factor", 32.0, "beta_fast", 32.0, "beta_slow", 1.0,
                                      "truncate", 0, "original_max_position_embeddings", 4096)))
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
    const struct llm_hfc g = {c->src, cp, c->pre};
    if (!rc) rc = llm_hfc_llama_like(&g, d, &k);
    json_decref(cp);
    d->act = LLM_ACT_SWIGLU_OAI; /* hidden_act is not what the experts apply */
    d->mlp_bias = 1;
    d->router_bias = 1;
    d->attn_sinks = 1;
    d->moe_norm_topk = 1; /* a softmax over the chosen logits */
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 1, &d->qkv_bias);
    d->o_bias = d->qkv_bias;
    if (!rc) rc = llm_hfc_num(c, KEYS("swiglu_alpha"), 0, 1.702, 0, 1, 1e6, &d->swiglu_alpha);
    if (!rc) rc = llm_hfc_num(c, KEYS("swiglu_limit"), 0, 7.0, 0, 1, 1e6, &d->swiglu_limit);
    if (!rc)
        rc = llm_hfc_i32(c, KEYS("num_local_experts", "num_experts"), 0, 128, 1, 4096,
                         &d->n_experts);
    if (!rc)
        rc = llm_hfc_i32(c, KEYS("num_experts_per_tok", "experts_per_token"), 0, 4, 1, d->n_experts,
                         &d->n_experts_per_tok);
    int64_t window = 128; /* absent: 128; null: none */
    if (!rc && json_object_get(c->o, "sliding_window"))
        rc = llm_hfc_int(c, KEYS("sliding_window"), 0, 0, 0, INT32_MAX, &window);
    if (!rc) rc = llm_hfc_window(c, d, (int)window, 0, 1);
    return rc;
}

const struct llm_arch_def llm_arch_gptoss = {
    .classes = KEYS("GptOssForCausalLM"),
    .model_types = KEYS("gpt_oss"),
    .read_config = read_config,
    .rules = gptoss_rules,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = -1, /* GptOssConfig names none; the published files do */
    .eos = -1,
    .pad = -1,
};
