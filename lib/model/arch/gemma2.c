/* gemma2.c - Gemma 2 (Gemma2ForCausalLM): Gemma with norms around both
 * sub-blocks (input_layernorm and post_attention_layernorm around the
 * attention, pre_ and post_feedforward_layernorm around the MLP), soft caps
 * on attention scores (attn_logit_softcapping) and logits
 * (final_logit_softcapping), a sliding window on the even layers (or as
 * layer_types says) and the attention scale query_pre_attn_scalar^-1/2. */
#include <math.h>

#include "arch.h"

#define L "model.layers.{i}."
static const struct llm_hf_rule rules[] = {
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"model.embed_tokens.weight"}, 0},
    {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"model.norm.weight"}, 0},
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},
    {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "input_layernorm.weight"}, 0},
    {LLM_W_QKV, 0, LLM_XF_CONCAT,
     {L "self_attn.q_proj.weight", L "self_attn.k_proj.weight", L "self_attn.v_proj.weight"}, 0},
    {LLM_W_QKV, 1, LLM_XF_CONCAT,
     {L "self_attn.q_proj.bias", L "self_attn.k_proj.bias", L "self_attn.v_proj.bias"}, 0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "self_attn.o_proj.weight"}, 0},
    {LLM_W_ATTN_OUT, 1, LLM_XF_COPY, {L "self_attn.o_proj.bias"}, 0},
    {LLM_W_ATTN_POST_NORM, 0, LLM_XF_COPY, {L "post_attention_layernorm.weight"}, 0},
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "pre_feedforward_layernorm.weight"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_COPY, {L "mlp.gate_proj.weight"}, 0},
    {LLM_W_MLP_GATE, 0, LLM_XF_COPY, {L "mlp.up_proj.weight"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "mlp.down_proj.weight"}, 0},
    {LLM_W_MLP_POST_NORM, 0, LLM_XF_COPY, {L "post_feedforward_layernorm.weight"}, 0},
};
LLM_RULES(gemma2_rules, rules)

static int softcap(const struct llm_hfc *c, const char *key, double def, double *out)
{
    const json_t *v = json_object_get(c->o, key);
    if (v && json_is_null(v)) {
        *out = 0;
        return 0;
    }
    return llm_hfc_num(c, KEYS(key), 0, def, 0, 0, 1e9, out);
}

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 4,
                                    .max_pos_def = 8192,
                                    .eps_def = 1e-6,
                                    .tied_def = 1,
                                    .act_def = "gelu_pytorch_tanh",
                                    .head_dim_def = 256,
                                    .rope = {10000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    if (!rc) rc = llm_hfc_gemma_act(c, d);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 0, &d->qkv_bias);
    d->o_bias = d->qkv_bias;
    double qpas = 256, acap = 50, fcap = 30;
    if (!rc) rc = llm_hfc_num(c, KEYS("query_pre_attn_scalar"), 0, 256, 0, 1, 1e9, &qpas);
    /* Gemma2Config: caps of 50 and 30 when absent; null turns a cap off */
    if (!rc) rc = softcap(c, "attn_logit_softcapping", 50, &acap);
    if (!rc) rc = softcap(c, "final_logit_softcapping", 30, &fcap);
    int64_t window = 4096;
    if (!rc && json_object_get(c->o, "sliding_window"))
        rc = llm_hfc_int(c, KEYS("sliding_window"), 0, 0, 0, INT32_MAX, &window);
    if (!rc) rc = llm_hfc_window(c, d, (int)window, 0, 1);
    if (rc) return rc;
    d->attn_scale = 1.0 / sqrt(qpas);
    d->attn_softcap = acap;
    d->final_softcap = fcap;
    d->sandwich_norm = 1;
    d->norm_offset = 1.0;
    d->embed_scale = sqrt((double)d->hidden);
    return 0;
}

const struct llm_arch_def llm_arch_gemma2 = {
    .classes = KEYS("Gemma2ForCausalLM"),
    .model_types = KEYS("gemma2"),
    .read_config = read_config,
    .rules = gemma2_rules,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 2,
    .eos = 1,
    .pad = 0,
};
