/* helium.c - Kyutai's Helium (HeliumForCausalLM: helium-1-preview-2b,
 * helium-1-2b): the Llama block with rotary on interleaved pairs
 * (transformers repeats each frequency twice and rotates (x[2i],
 * x[2i+1])), optional q/k/v biases (attention_bias; none on o_proj) and MLP
 * biases (mlp_bias).  HeliumConfig: kv heads 20, head_dim 128, rms_norm_eps
 * 1e-8, rope_theta 100000, untied, bos 1, eos 2, pad 3. */
#include "arch.h"

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 20,
                                    .max_pos_def = 4096,
                                    .eps_def = 1e-8,
                                    .tied_def = 0,
                                    .head_dim_def = 128,
                                    .act_def = "silu",
                                    .rope = {100000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 0, &d->qkv_bias);
    if (!rc) rc = llm_hfc_bool(c, KEYS("mlp_bias"), 0, &d->mlp_bias);
    if (rc) return rc;
    if (d->rope.scaling == LLM_ROPE_SCALING_LONGROPE)
        return llm_err_set(LLM_EUNSUPPORTED,
                           "'%s': longrope with interleaved rotary pairs is "
                           "not supported",
                           c->src);
    if ((int64_t)d->n_heads * d->head_dim != d->hidden)
        return llm_err_set(LLM_EUNSUPPORTED,
                           "'%s': %d heads of %d make %lld, not hidden_size "
                           "%lld (Helium's o_proj is hidden x hidden)",
                           c->src, d->n_heads, d->head_dim, (long long)d->n_heads * d->head_dim,
                           (long long)d->hidden);
    d->rope.neox = 0;
    return 0;
}

const struct llm_arch_def llm_arch_helium = {
    .classes = KEYS("HeliumForCausalLM"),
    .model_types = KEYS("helium"),
    .read_config = read_config,
    .rules = llm_rules_llama_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 1,
    .eos = 2,
    .pad = 3,
};
