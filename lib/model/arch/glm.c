/* glm.c - GLM-4 in transformers' own classes: GlmForCausalLM (glm-4-9b,
 * the "-hf" checkpoints) and Glm4ForCausalLM (GLM-4-0414: GLM-4-9B, 32B,
 * Z1).  The Llama block with q/k/v biases (attention_bias), a fused
 * gate_up_proj (gate first) and rotary on the first partial_rotary_factor
 * of each head as interleaved pairs (transformers repeats each frequency
 * twice and rotates x[2i], x[2i+1]); Glm4 adds a norm after the attention
 * and after the MLP, before each residual add (post_self_attn_layernorm,
 * post_mlp_layernorm), Gemma 2's sandwich without its (1 + w). */
#include <string.h>

#include "arch.h"

#define L "model.layers.{i}."
#define COMMON                                                                                     \
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"model.embed_tokens.weight"}, 0},                               \
        {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"model.norm.weight"}, 0},                              \
        {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},                                    \
        {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "input_layernorm.weight"}, 0},                        \
        {LLM_W_QKV,                                                                                \
         0,                                                                                        \
         LLM_XF_CONCAT,                                                                            \
         {L "self_attn.q_proj.weight", L "self_attn.k_proj.weight", L "self_attn.v_proj.weight"},  \
         0},                                                                                       \
        {LLM_W_QKV,                                                                                \
         1,                                                                                        \
         LLM_XF_CONCAT,                                                                            \
         {L "self_attn.q_proj.bias", L "self_attn.k_proj.bias", L "self_attn.v_proj.bias"},        \
         0},                                                                                       \
        {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "self_attn.o_proj.weight"}, 0},                        \
        {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "post_attention_layernorm.weight"}, 0},                \
        {LLM_W_MLP_FC, 0, LLM_XF_ROWS, {L "mlp.gate_up_proj.weight"}, 0},                          \
        {LLM_W_MLP_GATE, 0, LLM_XF_ROWS, {L "mlp.gate_up_proj.weight"}, 1},                        \
        {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "mlp.down_proj.weight"}, 0}

static const struct llm_hf_rule glm_rules[] = {COMMON};
static const struct llm_hf_rule glm4_rules[] = {
    COMMON,
    {LLM_W_ATTN_POST_NORM, 0, LLM_XF_COPY, {L "post_self_attn_layernorm.weight"}, 0},
    {LLM_W_MLP_POST_NORM, 0, LLM_XF_COPY, {L "post_mlp_layernorm.weight"}, 0},
};

static const struct llm_hf_rule *rules(const struct llm_model_desc *d, size_t *n)
{
    if (d->sandwich_norm) {
        *n = sizeof glm4_rules / sizeof glm4_rules[0];
        return glm4_rules;
    }
    *n = sizeof glm_rules / sizeof glm_rules[0];
    return glm_rules;
}

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    /* GlmConfig / Glm4Config defaults */
    const struct llm_hfc_llama k = {.kv_def = 2,
                                    .max_pos_def = 131072,
                                    .eps_def = 1.5625e-07,
                                    .tied_def = 0,
                                    .act_def = "silu",
                                    .head_dim_def = 128,
                                    .rope = {10000.0, NULL, 0.5, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 1, &d->qkv_bias);
    if (rc) return rc;
    if (d->rope.scaling == LLM_ROPE_SCALING_LONGROPE)
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': longrope with interleaved rotary pairs is "
                           "not supported", c->src);
    d->rope.neox = 0;
    d->sandwich_norm = !strcmp(d->model_type, "glm4") || !strcmp(d->hf_arch, "Glm4ForCausalLM");
    return 0;
}

const struct llm_arch_def llm_arch_glm = {
    .classes = KEYS("GlmForCausalLM", "Glm4ForCausalLM"),
    .model_types = KEYS("glm", "glm4"),
    .read_config = read_config,
    .rules = rules,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = -1,
    .eos = 151329,
    .pad = 151329,
};
