/* cohere.c - Command R and Aya (CohereForCausalLM) and Command R7B
 * (Cohere2ForCausalLM): attention and a gated SiLU MLP in parallel from one
 * LayerNorm without bias, rotary on interleaved pairs over the whole head,
 * logits multiplied by logit_scale, tied embeddings.  Command R+ adds
 * LayerNorms on q and k with a weight row per head (use_qk_norm).  Cohere2
 * slides a window on the layers layer_types marks (every
 * sliding_window_pattern-th layer global without it) and rotates only
 * those: its global layers have no rotary embedding. */
#include <string.h>

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
    {LLM_W_Q_NORM, 0, LLM_XF_COPY, {L "self_attn.q_norm.weight"}, 0},
    {LLM_W_K_NORM, 0, LLM_XF_COPY, {L "self_attn.k_norm.weight"}, 0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "self_attn.o_proj.weight"}, 0},
    {LLM_W_ATTN_OUT, 1, LLM_XF_COPY, {L "self_attn.o_proj.bias"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_COPY, {L "mlp.gate_proj.weight"}, 0},
    {LLM_W_MLP_GATE, 0, LLM_XF_COPY, {L "mlp.up_proj.weight"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "mlp.down_proj.weight"}, 0},
};
LLM_RULES(cohere_rules, rules)

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    int v2 = !strcmp(d->model_type, "cohere2") || !strcmp(d->hf_arch, "Cohere2ForCausalLM");
    const struct llm_hfc_llama k = {.kv_def = 0,
                                    .max_pos_def = 8192,
                                    .eps_def = 1e-5,
                                    .tied_def = 1,
                                    .act_def = "silu",
                                    .rope = {v2 ? 10000.0 : 500000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    /* LayerNorm, not llama_like's RMSNorm; its epsilon is layer_norm_eps */
    if (!rc) rc = llm_hfc_num(c, KEYS("layer_norm_eps"), 0, 1e-5, 0, 1, 1, &d->norm_eps);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 0, &d->qkv_bias);
    if (!rc) rc = llm_hfc_num(c, KEYS("logit_scale"), 0, 0.0625, 0, 1, 1e6,
                              &d->logit_scale);
    int qk = 0;
    if (!rc && !v2) rc = llm_hfc_bool(c, KEYS("use_qk_norm"), 0, &qk);
    if (!rc && d->rope.scaling == LLM_ROPE_SCALING_LONGROPE)
        rc = llm_err_set(LLM_EUNSUPPORTED, "'%s': longrope with interleaved rotary pairs is "
                         "not supported", c->src);
    if (!rc && v2) {
        int64_t window = 4096;
        if (json_object_get(c->o, "sliding_window"))
            rc = llm_hfc_int(c, KEYS("sliding_window"), 0, 0, 0, INT32_MAX, &window);
        const json_t *lt = json_object_get(c->o, "layer_types");
        json_t *o = NULL, *types = NULL;
        struct llm_hfc t = *c;
        if (!rc && (!lt || json_is_null(lt))) { /* Cohere2Config's rule: every 4th global */
            rc = llm_hfc_pattern_types(c, d->n_layers, 4, &types);
            if (!rc && !(o = json_copy((json_t *)c->o))) {
                json_decref(types);
                rc = llm_err_set(LLM_ENOMEM, "out of memory");
            } else if (!rc && json_object_set_new(o, "layer_types", types)) {
                rc = llm_err_set(LLM_ENOMEM, "out of memory");
            }
            t.o = o;
        }
        if (!rc) rc = llm_hfc_window(&t, d, (int)window, 0, 0);
        json_decref(o);
        /* the global (and, with no window, every) layer goes without rotary */
        for (int i = 0; !rc && i < d->n_layers; i++)
            d->layer_no_rope[i] = !d->layer_window[i];
    }
    if (rc) return rc;
    d->norm = LLM_NORM_LAYER;
    d->norm_bias = 0;
    d->o_bias = d->qkv_bias;
    d->rope.neox = 0;
    d->parallel_residual = 1;
    d->shared_input_norm = 1;
    d->qk_norm = qk ? LLM_QK_NORM_LAYER : LLM_QK_NORM_NONE;
    return 0;
}

const struct llm_arch_def llm_arch_cohere = {
    .classes = KEYS("CohereForCausalLM", "Cohere2ForCausalLM"),
    .model_types = KEYS("cohere", "cohere2"),
    .read_config = read_config,
    .rules = cohere_rules,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 5,
    .eos = 255001,
    .pad = 0,
};
