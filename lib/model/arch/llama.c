/* llama.c - Llama 1, 2, 3, 3.x (LlamaForCausalLM) and the layout its
 * relatives share.
 *
 * Config: LlamaConfig's defaults (rope_theta 10000, rms_norm_eps 1e-6,
 * max_position_embeddings 2048, no biases unless attention_bias /
 * mlp_bias).  Tensors: q/k/v projections concatenated into the fused qkv,
 * gate_proj -> mlp.fc, up_proj -> mlp.gate, down_proj -> mlp.proj.  The
 * rule table is exported (llm_rules_llama) for Mistral, Qwen2/3, Gemma and
 * StableLM, whose checkpoints use the same names; llm_rules_llama_fn gives a
 * model without a gated MLP the same names with up_proj -> mlp.fc
 * (Nemotron, Arcee).
 */
#include "arch.h"

#define L "model.layers.{i}."
const struct llm_hf_rule llm_rules_llama[] = {
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"model.embed_tokens.weight"}, 0},
    {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"model.norm.weight"}, 0},
    {LLM_W_FINAL_NORM, 1, LLM_XF_COPY, {"model.norm.bias"}, 0},
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},
    {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "input_layernorm.weight"}, 0},
    {LLM_W_ATTN_NORM, 1, LLM_XF_COPY, {L "input_layernorm.bias"}, 0},
    {LLM_W_QKV, 0, LLM_XF_CONCAT,
     {L "self_attn.q_proj.weight", L "self_attn.k_proj.weight", L "self_attn.v_proj.weight"}, 0},
    {LLM_W_QKV, 1, LLM_XF_CONCAT,
     {L "self_attn.q_proj.bias", L "self_attn.k_proj.bias", L "self_attn.v_proj.bias"}, 0},
    {LLM_W_Q_NORM, 0, LLM_XF_COPY, {L "self_attn.q_norm.weight"}, 0},
    {LLM_W_K_NORM, 0, LLM_XF_COPY, {L "self_attn.k_norm.weight"}, 0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "self_attn.o_proj.weight"}, 0},
    {LLM_W_ATTN_OUT, 1, LLM_XF_COPY, {L "self_attn.o_proj.bias"}, 0},
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "post_attention_layernorm.weight"}, 0},
    {LLM_W_MLP_NORM, 1, LLM_XF_COPY, {L "post_attention_layernorm.bias"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_COPY, {L "mlp.gate_proj.weight"}, 0},
    {LLM_W_MLP_FC, 1, LLM_XF_COPY, {L "mlp.gate_proj.bias"}, 0},
    {LLM_W_MLP_GATE, 0, LLM_XF_COPY, {L "mlp.up_proj.weight"}, 0},
    {LLM_W_MLP_GATE, 1, LLM_XF_COPY, {L "mlp.up_proj.bias"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "mlp.down_proj.weight"}, 0},
    {LLM_W_MLP_OUT, 1, LLM_XF_COPY, {L "mlp.down_proj.bias"}, 0},
};
const size_t llm_n_rules_llama = sizeof(llm_rules_llama) / sizeof(llm_rules_llama[0]);

/* The same names with a plain MLP (Nemotron, Arcee): up_proj -> mlp.fc. */
static const struct llm_hf_rule rules_plain[] = {
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"model.embed_tokens.weight"}, 0},
    {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"model.norm.weight"}, 0},
    {LLM_W_FINAL_NORM, 1, LLM_XF_COPY, {"model.norm.bias"}, 0},
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},
    {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "input_layernorm.weight"}, 0},
    {LLM_W_ATTN_NORM, 1, LLM_XF_COPY, {L "input_layernorm.bias"}, 0},
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
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "post_attention_layernorm.weight"}, 0},
    {LLM_W_MLP_NORM, 1, LLM_XF_COPY, {L "post_attention_layernorm.bias"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_COPY, {L "mlp.up_proj.weight"}, 0},
    {LLM_W_MLP_FC, 1, LLM_XF_COPY, {L "mlp.up_proj.bias"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "mlp.down_proj.weight"}, 0},
    {LLM_W_MLP_OUT, 1, LLM_XF_COPY, {L "mlp.down_proj.bias"}, 0},
};

const struct llm_hf_rule *llm_rules_llama_fn(const struct llm_model_desc *d, size_t *n)
{
    if (!d->gated_mlp) {
        *n = sizeof(rules_plain) / sizeof(rules_plain[0]);
        return rules_plain;
    }
    *n = llm_n_rules_llama;
    return llm_rules_llama;
}

/* HF tensors of Llama-layout checkpoints that are buffers, not weights. */
const char *const llm_ignore_rotary[] = {"rotary_emb.inv_freq", NULL};

const char *const llm_mm_alt_prefixes[] = {"model.",   "language_model.model.",
                                           "model.",   "model.language_model.",
                                           "lm_head.", "language_model.lm_head.",
                                           NULL};
const char *const llm_mm_skip_prefixes[] = {"vision_tower.", "multi_modal_projector.",
                                            "model.vision_tower.",
                                            "model.multi_modal_projector.", NULL};

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {
        .max_pos_def = 2048, .eps_def = 1e-6, .rope = {10000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 0, &d->qkv_bias);
    d->o_bias = d->qkv_bias;
    if (!rc) rc = llm_hfc_bool(c, KEYS("mlp_bias"), 0, &d->mlp_bias);
    return rc;
}

const struct llm_arch_def llm_arch_llama = {
    .classes = KEYS("LlamaForCausalLM", "LLaMAForCausalLM"),
    .model_types = KEYS("llama"),
    .read_config = read_config,
    .rules = llm_rules_llama_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 1,
    .eos = 2,
    .pad = -1,
};
