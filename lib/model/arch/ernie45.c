/* ernie45.c - ERNIE 4.5 dense models (Ernie4_5ForCausalLM: ERNIE-4.5-0.3B):
 * the Llama block with rotary on interleaved pairs (transformers repeats
 * each frequency twice and rotates (x[2i], x[2i+1])), and one switch,
 * use_bias, for the biases of every projection.  Ernie4_5Config: kv heads 2,
 * head_dim 128, rms_norm_eps 1e-5, rope_theta 500000, tied, bos 1, eos 2,
 * pad 0. */
#include "arch.h"

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 2,
                                    .max_pos_def = 131072,
                                    .eps_def = 1e-5,
                                    .tied_def = 1,
                                    .head_dim_def = 128,
                                    .act_def = "silu",
                                    .rope = {500000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    int bias = 0;
    if (!rc) rc = llm_hfc_bool(c, KEYS("use_bias"), 0, &bias);
    if (rc) return rc;
    if (d->rope.scaling == LLM_ROPE_SCALING_LONGROPE)
        return llm_err_set(LLM_EUNSUPPORTED,
                           "'%s': longrope with interleaved rotary pairs is "
                           "not supported",
                           c->src);
    d->qkv_bias = d->o_bias = d->mlp_bias = bias;
    d->rope.neox = 0;
    return 0;
}

const struct llm_arch_def llm_arch_ernie45 = {
    .classes = KEYS("Ernie4_5ForCausalLM"),
    .model_types = KEYS("ernie4_5"),
    .read_config = read_config,
    .rules = llm_rules_llama_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 1,
    .eos = 2,
    .pad = 0,
};
