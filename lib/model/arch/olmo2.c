/* olmo2.c - OLMo 2 (Olmo2ForCausalLM: OLMo-2-1124-7B / 13B, OLMo-2-0325-32B,
 * OLMo-2-0425-1B) and OLMo 3 (Olmo3ForCausalLM): the Llama projections and
 * SwiGLU MLP with the norms
 * moved to the outputs - each sub-block reads the residual stream itself
 * and its output is RMS-normalised before the add (post_attention_layernorm,
 * post_feedforward_layernorm) - and RMS norms on q and k over all the heads
 * of a row at once (q_norm [heads x head_dim], k_norm [kv heads x
 * head_dim]), before rotary.  Olmo2Config: num_key_value_heads defaults to
 * the heads, rms_norm_eps 1e-5, rope_theta 10000, untied. */
#include "arch.h"

#define L "model.layers.{i}."
static const struct llm_hf_rule rules[] = {
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"model.embed_tokens.weight"}, 0},
    {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"model.norm.weight"}, 0},
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},
    {LLM_W_QKV, 0, LLM_XF_CONCAT,
     {L "self_attn.q_proj.weight", L "self_attn.k_proj.weight", L "self_attn.v_proj.weight"}, 0},
    {LLM_W_QKV, 1, LLM_XF_CONCAT,
     {L "self_attn.q_proj.bias", L "self_attn.k_proj.bias", L "self_attn.v_proj.bias"}, 0},
    {LLM_W_Q_NORM, 0, LLM_XF_COPY, {L "self_attn.q_norm.weight"}, 0},
    {LLM_W_K_NORM, 0, LLM_XF_COPY, {L "self_attn.k_norm.weight"}, 0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "self_attn.o_proj.weight"}, 0},
    {LLM_W_ATTN_OUT, 1, LLM_XF_COPY, {L "self_attn.o_proj.bias"}, 0},
    {LLM_W_ATTN_POST_NORM, 0, LLM_XF_COPY, {L "post_attention_layernorm.weight"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_COPY, {L "mlp.gate_proj.weight"}, 0},
    {LLM_W_MLP_GATE, 0, LLM_XF_COPY, {L "mlp.up_proj.weight"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "mlp.down_proj.weight"}, 0},
    {LLM_W_MLP_POST_NORM, 0, LLM_XF_COPY, {L "post_feedforward_layernorm.weight"}, 0},
};
LLM_RULES(olmo2_rules, rules)

const struct llm_hf_rule *llm_rules_olmo2_fn(const struct llm_model_desc *d, size_t *n)
{
    return olmo2_rules(d, n);
}

/* What both versions share; theta: the class's default rotary base. */
static int read_common(const struct llm_hfc *c, struct llm_model_desc *d, double theta)
{
    const struct llm_hfc_llama k = {.kv_def = 0,
                                    .max_pos_def = 2048,
                                    .eps_def = 1e-5,
                                    .tied_def = 0,
                                    .act_def = "silu",
                                    .rope = {theta, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 0, &d->qkv_bias);
    d->o_bias = d->qkv_bias;
    d->sandwich_norm = 1;
    d->no_input_norm = 1;
    d->qk_norm = LLM_QK_NORM_RMS_ALL;
    return rc;
}

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    return read_common(c, d, 10000.0);
}

/* OLMo 3: OLMo 2's block with a sliding window (sliding_window, 4096) on the
 * layers layer_types marks (without it, all but every 4th), whose rotary is
 * unscaled: rope_scaling applies to the full layers alone.  Olmo3Config's
 * base is 500000 for both kinds; transformers 5.25 gives a flat rope_theta
 * to the full layers only and leaves the sliding ones at 500000 (the
 * published configs state 500000, so both agree there). */
static int read_config3(const struct llm_hfc *c, struct llm_model_desc *d)
{
    json_t *o = json_copy((json_t *)c->o);
    if (!o) return llm_err_set(LLM_ENOMEM, "out of memory");
    struct llm_hfc g = {c->src, o, c->pre};
    double local = 500000.0;
    int rc = llm_hfc_layer_ropes(c, o, NULL, 500000.0, &local);
    if (!rc) rc = read_common(&g, d, 500000.0);
    if (!rc) rc = llm_hfc_local_layers(c, &g, d, 4, 4096); /* Olmo3Config: 3 of 4 slide */
    json_decref(o);
    if (!rc) d->rope_local_theta = local;
    return rc;
}

const struct llm_arch_def llm_arch_olmo2 = {
    .classes = KEYS("Olmo2ForCausalLM"),
    .model_types = KEYS("olmo2"),
    .read_config = read_config,
    .rules = olmo2_rules,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = -1,
    .eos = -1,
    .pad = -1,
};

const struct llm_arch_def llm_arch_olmo3 = {
    .classes = KEYS("Olmo3ForCausalLM"),
    .model_types = KEYS("olmo3"),
    .read_config = read_config3,
    .rules = olmo2_rules,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = -1,
    .eos = -1,
    .pad = -1,
};
