/* qwen3.c - Qwen3 (Qwen3ForCausalLM): the Llama layout with a per-head
 * RMSNorm on q and k (q_norm, k_norm over head_dim, before rotary).
 * Qwen3Config: head_dim 128, 32 KV heads, attention_bias false.  Also the
 * language model of Qwen3-VL (Qwen3VLForConditionalGeneration), text in,
 * text out: its config under text_config, its weights under
 * model.language_model., the vision tower (model.visual.) left out; the
 * interleaved multimodal rotary is the plain one for text, and the vision
 * features it adds to the first layers' states (deepstack) need an image. */
#include <string.h>

#include "arch.h"

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 32,
                                    .max_pos_def = 32768,
                                    .eps_def = 1e-6,
                                    .head_dim_def = 128,
                                    .rope = {10000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 0, &d->qkv_bias);
    d->o_bias = d->qkv_bias;
    d->qk_norm = LLM_QK_NORM_RMS;
    if (!rc) rc = llm_hfc_qwen_window(c, d);
    return rc;
}

const struct llm_arch_def llm_arch_qwen3 = {
    .classes = KEYS("Qwen3ForCausalLM"),
    .model_types = KEYS("qwen3"),
    .read_config = read_config,
    .rules = llm_rules_llama_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = -1,
    .eos = -1,
    .pad = -1,
};

static int read_config_vl(const struct llm_hfc *top, struct llm_model_desc *d)
{
    struct llm_hfc nested;
    const struct llm_hfc *c;
    int rc = llm_hfc_text_config(top, &nested, &c);
    if (rc) return rc;
    if (c == top && !strcmp(d->model_type, "qwen3_vl")) return llm_hfc_missing(top, "text_config");
    const struct llm_hfc_llama k = {.kv_def = 32,
                                    .max_pos_def = 128000,
                                    .eps_def = 1e-6,
                                    .head_dim_def = 128,
                                    .rope = {500000.0, NULL, 1.0, NULL, 0}};
    rc = llm_hfc_llama_like(c, d, &k);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 0, &d->qkv_bias);
    d->o_bias = d->qkv_bias;
    d->qk_norm = LLM_QK_NORM_RMS;
    /* tied as the top level says (default untied), whatever text_config says */
    if (!rc) rc = llm_hfc_bool(top, KEYS("tie_word_embeddings"), 0, &d->tied_embeddings);
    return rc;
}

static const char *const vl_skip_prefixes[] = {"model.visual.", "visual.", NULL};

const struct llm_arch_def llm_arch_qwen3vl = {
    .classes = KEYS("Qwen3VLForConditionalGeneration"),
    .model_types = KEYS("qwen3_vl"),
    .read_config = read_config_vl,
    .rules = llm_rules_llama_fn,
    .base_prefix = "model.",
    .alt_prefixes = llm_mm_alt_prefixes,
    .skip_prefixes = vl_skip_prefixes,
    .ignore = llm_ignore_rotary,
    .bos = -1,
    .eos = -1,
    .pad = -1,
};
