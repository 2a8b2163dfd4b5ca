/* qwen3moe.c - Qwen3-MoE (Qwen3MoeForCausalLM): Qwen3's attention (q/k
 * RMSNorm) and a mixture of experts in every layer: the router (mlp.gate)
 * picks num_experts_per_tok of num_experts experts of size
 * moe_intermediate_size, their weights renormalised when norm_topk_prob.
 * (transformers 5 writes num_experts as num_local_experts.)  Layouts mixing
 * dense and expert layers (decoder_sparse_step > 1,
 * mlp_only_layers) are refused.  Also the language model of Qwen3-VL-MoE
 * (Qwen3VLMoeForConditionalGeneration), text in, text out: its config under
 * text_config, its experts as 3-D stacks (gate_up_proj [E][2 I][hidden] with
 * gate then up, down_proj [E][hidden][I], or each x @ W as published), the
 * router always renormalised, the vision tower left out. */
#include <string.h>

#include "arch.h"

#define L "model.layers.{i}."
/* embedding, attention (q/k norms), norms, router: both tables */
#define BASE_RULES \
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"model.embed_tokens.weight"}, 0}, \
    {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"model.norm.weight"}, 0}, \
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0}, \
    {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "input_layernorm.weight"}, 0}, \
    {LLM_W_QKV, 0, LLM_XF_CONCAT, \
     {L "self_attn.q_proj.weight", L "self_attn.k_proj.weight", L "self_attn.v_proj.weight"}, 0}, \
    {LLM_W_QKV, 1, LLM_XF_CONCAT, \
     {L "self_attn.q_proj.bias", L "self_attn.k_proj.bias", L "self_attn.v_proj.bias"}, 0}, \
    {LLM_W_Q_NORM, 0, LLM_XF_COPY, {L "self_attn.q_norm.weight"}, 0}, \
    {LLM_W_K_NORM, 0, LLM_XF_COPY, {L "self_attn.k_norm.weight"}, 0}, \
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "self_attn.o_proj.weight"}, 0}, \
    {LLM_W_ATTN_OUT, 1, LLM_XF_COPY, {L "self_attn.o_proj.bias"}, 0}, \
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "post_attention_layernorm.weight"}, 0}, \
    {LLM_W_ROUTER, 0, LLM_XF_COPY, {L "mlp.gate.weight"}, 0}
static const struct llm_hf_rule rules[] = {
    BASE_RULES,
    {LLM_W_MLP_FC, 0, LLM_XF_STACK, {L "mlp.experts.{e}.gate_proj.weight"}, 0},
    {LLM_W_MLP_GATE, 0, LLM_XF_STACK, {L "mlp.experts.{e}.up_proj.weight"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_STACK, {L "mlp.experts.{e}.down_proj.weight"}, 0},
    /* Qwen2-MoE's shared expert and its gate */
    {LLM_W_SHARED_ROUTER, 0, LLM_XF_COPY, {L "mlp.shared_expert_gate.weight"}, 0},
    {LLM_W_SHARED_FC, 0, LLM_XF_COPY, {L "mlp.shared_expert.gate_proj.weight"}, 0},
    {LLM_W_SHARED_GATE, 0, LLM_XF_COPY, {L "mlp.shared_expert.up_proj.weight"}, 0},
    {LLM_W_SHARED_OUT, 0, LLM_XF_COPY, {L "mlp.shared_expert.down_proj.weight"}, 0},
};
/* Shared with OLMoE and Qwen2-MoE, whose checkpoints use the same names (a
 * slot the description lacks is never looked up). */
const struct llm_hf_rule *llm_rules_moe_fn(const struct llm_model_desc *d, size_t *n)
{
    (void)d;
    *n = sizeof(rules) / sizeof(rules[0]);
    return rules;
}

/* Qwen3-MoE's fields on the defaults of k */
static int read_moe(const struct llm_hfc *c, struct llm_model_desc *d,
                    const struct llm_hfc_llama *k, int n_experts_def, int top_k_def,
                    int64_t inter_def)
{
    int rc = llm_hfc_llama_like(c, d, k);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 0, &d->qkv_bias);
    d->o_bias = d->qkv_bias;
    d->qk_norm = LLM_QK_NORM_RMS;
    if (!rc) rc = llm_hfc_qwen_window(c, d);
    if (!rc)
        rc = llm_hfc_i32(c, KEYS("num_experts", "num_local_experts"), 0, n_experts_def, 1, 4096,
                         &d->n_experts);
    if (!rc)
        rc = llm_hfc_i32(c, KEYS("num_experts_per_tok"), 0, top_k_def, 1, d->n_experts,
                         &d->n_experts_per_tok);
    if (!rc)
        rc = llm_hfc_int(c, KEYS("moe_intermediate_size"), 0, inter_def, 1, 1 << 22,
                         &d->intermediate);
    if (!rc) rc = llm_hfc_bool(c, KEYS("norm_topk_prob"), 0, &d->moe_norm_topk);
    int64_t step = 1;
    if (!rc) rc = llm_hfc_int(c, KEYS("decoder_sparse_step"), 0, 1, 1, 1 << 20, &step);
    if (!rc && step != 1)
        rc = llm_err_set(LLM_EUNSUPPORTED, "'%s': decoder_sparse_step %lld (dense layers between "
                         "expert layers) is not supported", c->src, (long long)step);
    const json_t *dense = json_object_get(c->o, "mlp_only_layers");
    if (!rc && json_is_array(dense) && json_array_size(dense))
        rc = llm_err_set(LLM_EUNSUPPORTED, "'%s': mlp_only_layers (dense layers among expert "
                         "layers) is not supported", c->src);
    return rc;
}

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 4,
                                    .max_pos_def = 32768,
                                    .eps_def = 1e-6,
                                    .head_dim_def = 128,
                                    .rope = {10000.0, NULL, 1.0, NULL, 0}};
    return read_moe(c, d, &k, 128, 8, 768);
}

const struct llm_arch_def llm_arch_qwen3moe = {
    .classes = KEYS("Qwen3MoeForCausalLM"),
    .model_types = KEYS("qwen3_moe"),
    .read_config = read_config,
    .rules = llm_rules_moe_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = -1,
    .eos = -1,
    .pad = -1,
};

/* the same names, the experts as 3-D stacks */
static const struct llm_hf_rule vl_rules[] = {
    BASE_RULES,
    {LLM_W_MLP_FC, 0, LLM_XF_ROWS, {L "mlp.experts.gate_up_proj"}, LLM_HF_XW},
    {LLM_W_MLP_GATE, 0, LLM_XF_ROWS, {L "mlp.experts.gate_up_proj"}, 1 | LLM_HF_XW},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "mlp.experts.down_proj"}, LLM_HF_XW},
};
LLM_RULES(vl_rules_fn, vl_rules)

static int read_config_vl(const struct llm_hfc *top, struct llm_model_desc *d)
{
    struct llm_hfc nested;
    const struct llm_hfc *c;
    int rc = llm_hfc_text_config(top, &nested, &c);
    if (rc) return rc;
    if (c == top) return llm_hfc_missing(top, "text_config");
    const struct llm_hfc_llama k = {.kv_def = 16,
                                    .max_pos_def = 128000,
                                    .eps_def = 1e-6,
                                    .rope = {500000.0, NULL, 1.0, NULL, 0}};
    rc = read_moe(c, d, &k, 60, 4, 1408);
    d->moe_norm_topk = 1; /* the router renormalises whatever norm_topk_prob says */
    /* tied as the top level says (default untied), whatever text_config says */
    if (!rc) rc = llm_hfc_bool(top, KEYS("tie_word_embeddings"), 0, &d->tied_embeddings);
    return rc;
}

static const char *const vl_skip_prefixes[] = {"model.visual.", "visual.", NULL};

const struct llm_arch_def llm_arch_qwen3vlmoe = {
    .classes = KEYS("Qwen3VLMoeForConditionalGeneration"),
    .model_types = KEYS("qwen3_vl_moe"),
    .read_config = read_config_vl,
    .rules = vl_rules_fn,
    .base_prefix = "model.",
    .alt_prefixes = llm_mm_alt_prefixes,
    .skip_prefixes = vl_skip_prefixes,
    .ignore = llm_ignore_rotary,
    .bos = -1,
    .eos = -1,
    .pad = -1,
};
