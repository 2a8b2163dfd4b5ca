/* exaone4.c - EXAONE 4.0 (Exaone4ForCausalLM: EXAONE-4.0-1.2B, -32B): the
 * Llama projections and SwiGLU MLP in OLMo 2's arrangement - no input norms,
 * the attention and MLP outputs RMS-normalised before each residual add
 * (post_attention_layernorm, post_feedforward_layernorm) - with per-head RMS
 * norms on q and k right after their projections (q_norm, k_norm over
 * head_dim, as Qwen3), and hybrid attention: the layers layer_types marks
 * "sliding_attention" see a window (sliding_window) and rotate, the full
 * ones have no rotary at all; with sliding_window null every layer is full
 * and rotates.
 *
 * Exaone4Config: 32 kv heads, rms_norm_eps 1e-5, rope_theta 10000,
 * sliding_window 4096 and, without layer_types, every
 * sliding_window_pattern-th layer (4) full; untied.  A pattern given as a
 * string ("LLLG") needs layer_types beside it (transformers cannot derive
 * them either), and is refused by name without. */
#include <string.h>

#include "arch.h"

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_llama k = {.kv_def = 32,
                                    .max_pos_def = 2048,
                                    .eps_def = 1e-5,
                                    .tied_def = 0,
                                    .act_def = "silu",
                                    .rope = {10000.0, NULL, 1.0, NULL, 0}};
    int rc = llm_hfc_llama_like(c, d, &k);
    if (rc) return rc;
    d->sandwich_norm = 1;
    d->no_input_norm = 1;
    d->qk_norm = LLM_QK_NORM_RMS;
    const json_t *sw = json_object_get(c->o, "sliding_window");
    int64_t window = 4096; /* absent: 4096; null: no sliding layers, all rotate */
    if (sw && json_is_null(sw)) return 0;
    if (sw) rc = llm_hfc_int(c, KEYS("sliding_window"), 1, 0, 1, INT32_MAX, &window);
    json_t *o = json_copy((json_t *)c->o);
    if (!o) return llm_err_set(LLM_ENOMEM, "out of memory");
    struct llm_hfc g = {c->src, o, c->pre};
    const json_t *lt = json_object_get(c->o, "layer_types");
    if (!rc && (!lt || json_is_null(lt))) {
        const json_t *pat = json_object_get(c->o, "sliding_window_pattern");
        json_t *types = NULL;
        if (json_is_string(pat))
            rc = llm_err_set(LLM_EUNSUPPORTED,
                             "'%s': sliding_window_pattern is a string without layer_types; "
                             "the layers' kinds are not derived from it",
                             c->src);
        if (!rc) rc = llm_hfc_pattern_types(c, d->n_layers, 4, &types);
        if (!rc && json_object_set_new(o, "layer_types", types))
            rc = llm_err_set(LLM_ENOMEM, "out of memory");
    }
    if (!rc) rc = llm_hfc_window(&g, d, (int)window, 0, 0);
    /* the full layers have no rotary (whether or not any layer slides) */
    const json_t *types = json_object_get(o, "layer_types");
    for (int i = 0; !rc && i < d->n_layers; i++) {
        const json_t *e = json_array_get(types, (size_t)i);
        d->layer_no_rope[i] = json_is_string(e) && !strcmp(json_string_value(e), "full_attention");
    }
    json_decref(o);
    return rc;
}

const struct llm_arch_def llm_arch_exaone4 = {
    .classes = KEYS("Exaone4ForCausalLM"),
    .model_types = KEYS("exaone4"),
    .read_config = read_config,
    .rules = llm_rules_olmo2_fn,
    .base_prefix = "model.",
    .ignore = llm_ignore_rotary,
    .bos = 0,
    .eos = 2,
    .pad = -1,
};
