/* gemma3.c - Gemma 3 (Gemma3ForCausalLM, model_type gemma3_text:
 * gemma-3-270m, gemma-3-1b; and the language model of the multimodal
 * Gemma3ForConditionalGeneration, model_type gemma3: gemma-3-4b, 12b, 27b,
 * whose config nests it under text_config and whose weights sit under
 * language_model.model. (model.language_model. as transformers 5 saves
 * them); the vision tower is left out).  Gemma 2's norms around both
 * sub-blocks with (1 + w) RMSNorms, per-head RMSNorms on q and k, no soft
 * caps unless the config sets them, and two kinds of layers
 * (layer_types, or every sliding_window_pattern-th layer global): the
 * sliding layers attend within sliding_window and rotate with their own
 * base (rope_local_base_freq, unscaled), the global ones with rope_theta
 * and rope_scaling.  transformers 5 writes both as rope_parameters keyed
 * by layer type. */
#include <math.h>
#include <string.h>

#include "../../core/text_internal.h"
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
    {LLM_W_ATTN_POST_NORM, 0, LLM_XF_COPY, {L "post_attention_layernorm.weight"}, 0},
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "pre_feedforward_layernorm.weight"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_COPY, {L "mlp.gate_proj.weight"}, 0},
    {LLM_W_MLP_GATE, 0, LLM_XF_COPY, {L "mlp.up_proj.weight"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "mlp.down_proj.weight"}, 0},
    {LLM_W_MLP_POST_NORM, 0, LLM_XF_COPY, {L "post_feedforward_layernorm.weight"}, 0},
};
LLM_RULES(gemma3_rules, rules)

/* A soft cap: absent or null is none (Gemma3TextConfig's default). */
static int softcap(const struct llm_hfc *c, const char *key, double *out)
{
    return llm_hfc_num(c, KEYS(key), 0, 0, 0, 0, 1e9, out);
}

/* Gemma3TextConfig's sizes, which the multimodal checkpoints' text_config
 * leaves to the class (gemma-3-4b states neither vocab_size nor the head
 * counts). */
static int text_defaults(json_t *o)
{
    static const struct {
        const char *key;
        json_int_t v;
    } def[] = {{"vocab_size", 262208},        {"hidden_size", 2304},
               {"intermediate_size", 9216},   {"num_hidden_layers", 26},
               {"num_attention_heads", 8}};
    for (size_t i = 0; i < sizeof def / sizeof def[0]; i++)
        if ((!json_object_get(o, def[i].key) || json_is_null(json_object_get(o, def[i].key))) &&
            json_object_set_new(o, def[i].key, json_integer(def[i].v)))
            return llm_err_set(LLM_ENOMEM, "out of memory");
    return 0;
}

static int read_config(const struct llm_hfc *top, struct llm_model_desc *d)
{
    /* the multimodal config: the language model's fields are text_config's */
    struct llm_hfc nested;
    const struct llm_hfc *c;
    int trc = llm_hfc_text_config(top, &nested, &c);
    if (trc) return trc;
    if (c == top && !strcmp(d->model_type, "gemma3")) return llm_hfc_missing(top, "text_config");
    /* a copy in which rope_parameters holds only the global layers' entry
     * and layer_types is spelled out, so that the shared readers apply */
    json_t *o = json_copy((json_t *)c->o);
    if (!o) return llm_err_set(LLM_ENOMEM, "out of memory");
    struct llm_hfc g = {c->src, o, c->pre};
    double theta = 10000.0;
    int rc = c == &nested ? text_defaults(o) : 0;
    if (!rc) rc = llm_hfc_layer_ropes(c, o, "rope_local_base_freq", 10000.0, &theta);
    const struct llm_hfc_llama k = {.kv_def = 4,
                                    .max_pos_def = 131072,
                                    .eps_def = 1e-6,
                                    .tied_def = 1,
                                    .act_def = "gelu_pytorch_tanh",
                                    .head_dim_def = 256,
                                    .rope = {1000000.0, NULL, 1.0, NULL, 0}};
    if (!rc) rc = llm_hfc_llama_like(&g, d, &k);
    if (!rc) rc = llm_hfc_gemma_act(&g, d);
    if (!rc) rc = llm_hfc_bool(&g, KEYS("attention_bias"), 0, &d->qkv_bias);
    if (!rc) rc = llm_hfc_text_tied(top, c, &d->tied_embeddings);
    if (!rc) rc = llm_hfc_refuse(&g, "use_bidirectional_attention");
    double qpas = 256, acap = 0, fcap = 0;
    if (!rc) rc = llm_hfc_num(&g, KEYS("query_pre_attn_scalar"), 0, 256, 0, 1, 1e9, &qpas);
    if (!rc) rc = softcap(&g, "attn_logit_softcapping", &acap);
    if (!rc) rc = softcap(&g, "final_logit_softcapping", &fcap);
    /* without layer_types, transformers' rule for older configs: 5 of 6 slide */
    if (!rc) rc = llm_hfc_local_layers(c, &g, d, 6, 4096);
    json_decref(o);
    if (rc) return rc;
    d->o_bias = d->qkv_bias;
    d->rope_local_theta = theta;
    d->attn_scale = 1.0 / sqrt(qpas);
    d->attn_softcap = acap;
    d->final_softcap = fcap;
    d->sandwich_norm = 1;
    d->norm_offset = 1.0;
    d->qk_norm = LLM_QK_NORM_RMS;
    d->embed_scale = sqrt((double)d->hidden);
    return 0;
}

const struct llm_arch_def llm_arch_gemma3 = {
    .classes = KEYS("Gemma3ForCausalLM", "Gemma3ForConditionalGeneration"),
    .model_types = KEYS("gemma3_text", "gemma3"),
    .read_config = read_config,
    .rules = gemma3_rules,
    .base_prefix = "model.",
    .alt_prefixes = llm_mm_alt_prefixes,
    .skip_prefixes = llm_mm_skip_prefixes,
    .ignore = llm_ignore_rotary,
    .bos = 2,
    .eos = 1,
    .pad = 0,
};
