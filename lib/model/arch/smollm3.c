/* smollm3.c - SmolLM3 (SmolLM3ForCausalLM): the Llama block in which some
 * layers use no rotary embedding at all (no_rope_layers: 1 rotates, 0 does
 * not; without it every no_rope_layer_interval-th layer, the 4th, 8th, ...,
 * goes without), and an optional sliding window on the layers layer_types
 * marks (only with use_sliding_window). */
#include <string.h>

#include "arch.h"

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 4,
                                    .max_pos_def = 32768,
                                    .eps_def = 1e-6,
                                    .tied_def = 1,
                                    .act_def = "silu",
                                    .rope = {2000000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    if (!rc) rc = llm_hfc_bool(c, KEYS("attention_bias"), 0, &d->qkv_bias);
    if (!rc) rc = llm_hfc_bool(c, KEYS("mlp_bias"), 0, &d->mlp_bias);
    if (rc) return rc;
    d->o_bias = d->qkv_bias;
    const json_t *nr = json_object_get(c->o, "no_rope_layers");
    if (nr && !json_is_null(nr)) {
        if (!json_is_array(nr) || json_array_size(nr) != (size_t)d->n_layers)
            return llm_err_set(LLM_EFORMAT, "'%s': field '%sno_rope_layers' must be a list of "
                               "%d flags (num_hidden_layers)", c->src, c->pre, d->n_layers);
        for (int i = 0; i < d->n_layers; i++) {
            const json_t *e = json_array_get(nr, (size_t)i);
            json_int_t v = json_is_integer(e) ? json_integer_value(e)
                           : json_is_boolean(e) ? json_is_true(e)
                                                : -1;
            if (v != 0 && v != 1)
                return llm_err_set(LLM_EFORMAT, "'%s': field '%sno_rope_layers' entry %d is "
                                   "not 0 or 1", c->src, c->pre, i);
            d->layer_no_rope[i] = v == 0; /* the list says which layers DO rotate */
        }
    } else {
        int64_t every = 4;
        rc = llm_hfc_int(c, KEYS("no_rope_layer_interval"), 0, 4, 1, 1 << 16, &every);
        for (int i = 0; !rc && i < d->n_layers; i++)
            d->layer_no_rope[i] = (i + 1) % every == 0;
    }
    int use = 0;
    int64_t window = 0;
    if (!rc) rc = llm_hfc_bool(c, KEYS("use_sliding_window"), 0, &use);
    if (!rc && use) rc = llm_hfc_int(c, KEYS("sliding_window"), 0, 0, 0, INT32_MAX, &window);
    /* without layer_types, transformers slides the layers without rotary */
    if (!rc && use && window > 0 && !llm_hfc_has(c, KEYS("layer_types"))) {
        memset(d->layer_window, 0, sizeof d->layer_window);
        for (int i = 0; i < d->n_layers; i++)
            d->layer_window[i] = d->layer_no_rope[i];
        int any = 0;
        for (int i = 0; i < d->n_layers; i++)
            any |= d->layer_window[i];
        d->sliding_window = any ? (int)window : 0;
        return 0;
    }
    if (!rc) rc = llm_hfc_window(c, d, use ? (int)window : 0, 0, 0);
    return rc;
}

const struct llm_arch_def llm_arch_smollm3 = {
    .classes = KEYS("SmolLM3ForCausalLM"),
    .model_types = KEYS("smollm3"),
    .read_config = read_config,
    .rules = llm_rules_llama_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 128000,
    .eos = 128001,
    .pad = 128004,
};
