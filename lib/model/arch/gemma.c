/* gemma.c - Gemma (GemmaForCausalLM): the Llama layout with norm weights
 * applied as (1 + w), embeddings scaled by sqrt(hidden), GeGLU and
 * head_dim 256 by default.  Gemma's "gelu" always meant the tanh
 * approximation; the older hidden_activation field, when set, wins. */
#include <math.h>
#include <string.h>

#include "arch.h"

/* Gemma and Gemma 2 name their activation the same way. */
int llm_hfc_gemma_act(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const char *s;
    int rc = llm_hfc_str(c, KEYS("hidden_activation"), &s);
    if (!rc && s) return llm_hfc_act(c, KEYS("hidden_activation"), "gelu_pytorch_tanh", d);
    if (!rc) rc = llm_hfc_str(c, KEYS("hidden_act"), &s);
    if (!rc && s && !strcmp(s, "gelu")) {
        d->act = LLM_ACT_GELU_TANH;
        return 0;
    }
    return rc ? rc : llm_hfc_act(c, KEYS("hidden_act"), "gelu_pytorch_tanh", d);
}

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 16,
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
    d->norm_offset = 1.0;
    d->embed_scale = sqrt((double)d->hidden);
    return rc;
}

const struct llm_arch_def llm_arch_gemma = {
    .classes = KEYS("GemmaForCausalLM"),
    .model_types = KEYS("gemma"),
    .read_config = read_config,
    .rules = llm_rules_llama_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 2,
    .eos = 1,
    .pad = 0,
};
