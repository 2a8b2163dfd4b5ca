/* arch.h - the architecture registry's entry type and the helpers each
 * architecture file uses to read its config.json (internal to lib/model).
 *
 * One file per family (lib/model/arch/<name>.c) defines
 *     const struct llm_arch_def llm_arch_<name>;
 * with the HF classes and model types it covers, a function reading its
 * config.json into the description, and its rules from HF tensor names to
 * canonical slots.  docs/ADDING_A_MODEL.md walks through writing one.
 *
 * Config reading follows transformers: a field a config leaves out means
 * the default of the transformers config class, stated next to the read;
 * the sizes every model must state (vocabulary, hidden size, layers, heads,
 * MLP size) are required even where the class has a default, because a
 * default there describes some other model.  Aliases the classes accept
 * (GPT-2's n_embd for hidden_size, ...) are accepted.  What the description
 * cannot express is refused with LLM_EUNSUPPORTED naming the field, never
 * dropped.
 */
#ifndef LLM_ARCH_INTERNAL_H
#define LLM_ARCH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "llm/err.h"
#include "llm/hf.h"
#include "llm/model.h"

/* A JSON object being read and how to name its fields in messages. */
struct llm_hfc {
    const char *src; /* file */
    const json_t *o; /* object (may be NULL: every field absent) */
    const char *pre; /* "" or "rope_scaling." ... */
};

#define KEYS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* First of keys present and not null (*which names it, or keys[0]). */
const json_t *llm_hfc_look(const struct llm_hfc *r, const char *const *keys, const char **which);
int llm_hfc_has(const struct llm_hfc *r, const char *const *keys);
int llm_hfc_missing(const struct llm_hfc *r, const char *key);
/* Typed fields: absent or null gives def (or fails when req).  Integers
 * accept integral reals (4096.0); booleans accept 0 and 1. */
int llm_hfc_int(const struct llm_hfc *r, const char *const *keys, int req, int64_t def, int64_t lo,
                int64_t hi, int64_t *out);
int llm_hfc_i32(const struct llm_hfc *r, const char *const *keys, int req, int64_t def, int64_t lo,
                int64_t hi, int *out);
/* lo_open: the lower bound is exclusive. */
int llm_hfc_num(const struct llm_hfc *r, const char *const *keys, int req, double def, double lo,
                int lo_open, double hi, double *out);
int llm_hfc_bool(const struct llm_hfc *r, const char *const *keys, int def, int *out);
/* *out NULL when absent or null. */
int llm_hfc_str(const struct llm_hfc *r, const char *const *keys, const char **out);
/* A field that must be absent, null, false or 0 (else LLM_EUNSUPPORTED "... is not supported"). */
int llm_hfc_refuse(const struct llm_hfc *r, const char *key);

/* vocab_size and the aliases given for hidden size, layers and heads (all required). */
struct llm_hfc_sizes {
    const char *const *hidden, *const *layers, *const *heads;
};
int llm_hfc_core(const struct llm_hfc *c, struct llm_model_desc *d, const struct llm_hfc_sizes *k);
/* head_dim = hidden / heads, which must divide (hk, nk name the fields). */
int llm_hfc_head_dim(const struct llm_hfc *c, struct llm_model_desc *d, const char *hk,
                     const char *nk);
/* n_kv_heads must divide n_heads (kk names the field). */
int llm_hfc_check_kv(const struct llm_hfc *c, const struct llm_model_desc *d, const char *kk);
/* The activation named by the first of keys (def when absent). */
int llm_hfc_act(const struct llm_hfc *c, const char *const *keys, const char *def,
                struct llm_model_desc *d);

/* RoPE from rope_theta + rope_scaling ("type" or "rope_type"), or
 * transformers 5's rope_parameters (nested per layer type when types
 * differ: accepted when they agree). */
struct llm_hfc_rope {
    double theta;
    const char *theta_alias;   /* extra top-level name of rope_theta, or NULL */
    double partial;            /* default partial_rotary_factor */
    const char *partial_alias; /* extra top-level name of it, or NULL */
    int phi3;                  /* Phi-3: "su" and "yarn" mean longrope */
};
int llm_hfc_rope(const struct llm_hfc *c, struct llm_model_desc *d, const struct llm_hfc_rope *rd);

/* Sliding window: window > 0 applies to the layers layer_types marks
 * "sliding_attention", or without layer_types to layers first_layer on
 * (every_other: to the even layers, Gemma 2's rule). */
int llm_hfc_window(const struct llm_hfc *c, struct llm_model_desc *d, int window, int first_layer,
                   int every_other);

/* The layer types transformers derives for a config without layer_types
 * (Gemma 3, Cohere2): every pattern-th layer "full_attention" (pattern read
 * from sliding_window_pattern, def when absent), the rest
 * "sliding_attention"; *out is a new list. */
int llm_hfc_pattern_types(const struct llm_hfc *c, int n_layers, int64_t def, json_t **out);

/* Rotary parameters kept per layer type (Gemma 3, OLMo 3): transformers 5
 * writes rope_parameters as {"full_attention": {...}, "sliding_attention":
 * {...}}.  Then `copy` (a copy of c's object) gets the full_attention entry
 * as its rope_parameters, for the shared readers, and *local_theta the
 * sliding layers' base (their rotary must be the default kind); otherwise
 * *local_theta is c's local_key, or local_def when that is absent or
 * local_key is NULL. */
int llm_hfc_layer_ropes(const struct llm_hfc *c, json_t *copy, const char *local_key,
                        double local_def, double *local_theta);

/* Sliding layers that also rotate with the local base (Gemma 3, OLMo 3):
 * the window (c's sliding_window, window_def when absent) on the layers
 * layer_types marks "sliding_attention" - without layer_types, those of
 * llm_hfc_pattern_types(pattern_def), written into g (c's copy) - and the
 * same layers in d->layer_local_rope. */
int llm_hfc_local_layers(const struct llm_hfc *c, struct llm_hfc *g, struct llm_model_desc *d,
                         int64_t pattern_def, int64_t window_def);

/* The Llama layout (Llama, Mistral, Qwen2/3, Mixtral, Gemma, Phi-3, ...):
 * sizes, kv heads, head_dim, positions, norm eps, activation, tied
 * embeddings and rope, with the family's defaults. */
struct llm_hfc_llama {
    int64_t kv_def;            /* 0: n_heads */
    int64_t max_pos_def;
    double eps_def;
    struct llm_hfc_rope rope;
    int tied_def;
    const char *act_def;
    int64_t head_dim_def;      /* 0: hidden / heads */
};
int llm_hfc_llama_like(const struct llm_hfc *c, struct llm_model_desc *d,
                       const struct llm_hfc_llama *k);

/* ---- HF tensor rules ------------------------------------------------------------ */

/* One canonical tensor (slot, weight or bias) from HF tensors.  Templates
 * use "{i}" for the layer and "{e}" for the expert. */
struct llm_hf_rule {
    int slot;            /* enum llm_wslot */
    int bias;            /* 0 the weight, 1 the bias */
    int xform;           /* enum llm_xform */
    const char *hf[3];   /* sources (CONCAT: all; others: hf[0]; COPY: hf[1], when given, is
                            taken where the checkpoint has no hf[0]; STACK: hf[1] is copied
                            in a layer without experts) */
    int half;            /* LLM_XF_ROWS: 0 the first half of the source rows, 1 the second;
                            | LLM_HF_XW */
};
/* In a rule's half: an expert stack (ROWS or COPY, 3-D) that may also be
 * stored x @ W, its last two dims swapped; then it is read transposed (COLS,
 * TRANSPOSE), as transformers does where the shapes differ (Qwen3-VL-MoE). */
#define LLM_HF_XW 2

struct llm_arch_def {
    const char *const *classes;      /* HF architectures[0] values, NULL-terminated */
    const char *const *model_types;  /* HF model_type values; the first is canonical */
    int (*read_config)(const struct llm_hfc *c, struct llm_model_desc *d);
    /* The rules for this description (several layouts per family: Falcon). */
    const struct llm_hf_rule *(*rules)(const struct llm_model_desc *d, size_t *n);
    /* Prefix of the base model's tensors ("model.", "transformer."), which
     * checkpoints saved from the base class leave out. */
    const char *base_prefix;
    /* Pairs (from, to), NULL-terminated, or NULL: a rule's name that starts
     * with `from` is also looked up with `to` in its place (the language
     * model inside a multimodal checkpoint: "model." -> "language_model.model."). */
    const char *const *alt_prefixes;
    /* HF tensors under these prefixes belong to another part of the
     * checkpoint (a vision tower): not converted, and counted in one note
     * rather than warned about one by one. */
    const char *const *skip_prefixes;
    /* HF tensors that are not weights (buffers): name suffixes never warned about. */
    const char *const *ignore;
    int32_t bos, eos, pad;           /* ids when config.json names none (-1: none) */
};

/* Shared by families with the Llama layout (llama.c, qwen2.c, gemma.c). */
extern const struct llm_hf_rule llm_rules_llama[];
extern const size_t llm_n_rules_llama;
const struct llm_hf_rule *llm_rules_llama_fn(const struct llm_model_desc *d, size_t *n);
/* The Llama names with experts mlp.experts.{e}.gate/up/down_proj, router
 * mlp.gate, q/k norms and Qwen2-MoE's shared expert (qwen3moe.c: Qwen3-MoE,
 * OLMoE, Qwen2-MoE). */
const struct llm_hf_rule *llm_rules_moe_fn(const struct llm_model_desc *d, size_t *n);
/* OLMo 2's names: no input norms, post_attention_layernorm and
 * post_feedforward_layernorm on the outputs, q/k norms (olmo2.c: OLMo 2 and 3,
 * EXAONE 4). */
const struct llm_hf_rule *llm_rules_olmo2_fn(const struct llm_model_desc *d, size_t *n);
/* DeepSeek's names (deepseek.c: DeepSeek V2 / V3, GLM-4.5, dots.llm1, ERNIE 4.5
 * MoE): the Llama attention (q/k/v biases, q/k norms) or latent attention's
 * q_a / q_b (or q_proj) / kv_a / kv_b, mlp.gate with its correction bias
 * (e_score_correction_bias under mlp.gate or ERNIE's mlp.moe_statics),
 * mlp.experts.{e}.*, mlp.shared_experts.*, and the dense layers' mlp.*_proj. */
const struct llm_hf_rule *llm_rules_deepseek_fn(const struct llm_model_desc *d, size_t *n);
extern const char *const llm_ignore_rotary[];
/* Where a multimodal checkpoint (Gemma 3, Mistral 3) keeps its language
 * model (alt_prefixes: language_model.model., model.language_model.,
 * language_model.lm_head.) and its other parts (skip_prefixes: the vision
 * tower and projector, with or without model.). */
extern const char *const llm_mm_alt_prefixes[];
extern const char *const llm_mm_skip_prefixes[];
/* A multimodal config: *t becomes text_config (messages name it
 * "text_config."), or stays c when the config has none; an error when
 * text_config is there but not an object. */
int llm_hfc_text_config(const struct llm_hfc *c, struct llm_hfc *nested,
                        const struct llm_hfc **t);
/* With t the text_config of c: tie_word_embeddings as text_config states it,
 * else as the outer config does; *tied is left alone when neither does. */
int llm_hfc_text_tied(const struct llm_hfc *c, const struct llm_hfc *t, int *tied);
/* Qwen2/3's use_sliding_window, sliding_window and max_window_layers. */
int llm_hfc_qwen_window(const struct llm_hfc *c, struct llm_model_desc *d);
/* Gemma's activation: hidden_activation, or hidden_act where "gelu" means tanh. */
int llm_hfc_gemma_act(const struct llm_hfc *c, struct llm_model_desc *d);

/* The registry (registry.c). */
const struct llm_arch_def *llm_arch_def_of(int arch);

/* Every architecture's entry, declared from the list. */
#define LLM_ARCH_ENTRY(id, name) extern const struct llm_arch_def llm_arch_##name;
#include "llm/arch_list.h"
#undef LLM_ARCH_ENTRY

/* A rules() that returns a fixed table. */
#define LLM_RULES(fn, table)                                                                       \
    static const struct llm_hf_rule *fn(const struct llm_model_desc *d, size_t *n)               \
    {                                                                                              \
        (void)d;                                                                                   \
        *n = sizeof(table) / sizeof((table)[0]);                                                   \
        return table;                                                                              \
    }

#endif
