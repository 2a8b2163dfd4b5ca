/* olmo.c - OLMo 1 (OlmoForCausalLM: OLMo-1B-hf, OLMo-7B-hf, OLMo-7B-0424-hf,
 * OLMo-1B-0724-hf): the Llama block (pre-norm, SwiGLU, rotary) with
 * LayerNorms that have no parameters at all - (x - mean) / sqrt(var + 1e-5),
 * the epsilon fixed in the model, not read from the config - and q, k, v
 * clamped to +-clip_qkv after their projections when the config sets it.
 * The checkpoint holds no norm weights, so the converter writes ones for
 * them (LLM_XF_ONES) and LayerNorm without a bias runs as usual.
 * OlmoConfig: kv heads default to the heads, rope_theta 10000, untied. */
#include "arch.h"

#define L "model.layers.{i}."
#define EMB "model.embed_tokens.weight"
static const struct llm_hf_rule rules[] = {
    {LLM_W_EMBED, 0, LLM_XF_COPY, {EMB}, 0},
    {LLM_W_FINAL_NORM, 0, LLM_XF_ONES, {EMB}, 0},
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},
    {LLM_W_ATTN_NORM, 0, LLM_XF_ONES, {EMB}, 0},
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
    {LLM_W_MLP_NORM, 0, LLM_XF_ONES, {EMB}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_COPY, {L "mlp.gate_proj.weight"}, 0},
    {LLM_W_MLP_GATE, 0, LLM_XF_COPY, {L "mlp.up_proj.weight"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "mlp.down_proj.weight"}, 0},
};
LLM_RULES(olmo_rules, rules)

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 0,
                                    .max_pos_def = 2048,
                                    .eps_def = 1e-5,
                                    .tied_def = 0,
                                    .act_def = "silu",
                                    .rope = {10000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 0, &d->qkv_bias);
    double clip = 0;
    if (!rc) rc = llm_hfc_num(c, KEYS("clip_qkv"), 0, 0, 0, 0, 1e9, &clip);
    if (rc) return rc;
    d->o_bias = d->qkv_bias;
    d->norm = LLM_NORM_LAYER; /* without weight (ones, written by the converter) or bias */
    d->norm_bias = 0;
    d->norm_eps = 1e-5;
    d->clip_qkv = clip;
    return 0;
}

const struct llm_arch_def llm_arch_olmo = {
    .classes = KEYS("OlmoForCausalLM"),
    .model_types = KEYS("olmo"),
    .read_config = read_config,
    .rules = olmo_rules,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = -1,
    .eos = 50279,
    .pad = 1,
};
