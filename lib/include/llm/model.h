/* model.h - the architecture-neutral model description and canonical names.
 *
 * struct llm_model_desc is what every layer above the formats sees of a
 * model: sizes, attention shape, norm, activation, position encoding and
 * the per-architecture switches (parallel residual, biases, tied
 * embeddings, sliding window, MoE).  It is filled from a Hugging Face
 * config.json by llm_hfconfig_load() and travels inside the artifact's
 * metadata as JSON (llm_desc_to_json / llm_desc_from_json), so it is the
 * single source of truth after conversion.  The struct is plain data:
 * immutable once loaded, no pointers but the two longrope factor arrays.
 *
 * Canonical tensor names follow TensorRT-LLM's checkpoint names one to one
 * (see formats/artifact.md for the table):
 *   transformer.vocab_embedding.weight            [vocab, hidden]
 *   transformer.position_embedding.weight         [max_pos, hidden] (learned)
 *   transformer.layers.{i}.input_layernorm.weight [hidden] (+ .bias)
 *   transformer.layers.{i}.attention.qkv.weight   [(nh + 2*nkv)*head_dim, hidden] (+ .bias)
 *   transformer.layers.{i}.attention.dense.weight [hidden, nh*head_dim] (+ .bias)
 *   transformer.layers.{i}.post_layernorm.weight  [hidden] (+ .bias)
 *   transformer.layers.{i}.mlp.fc.weight          [inter, hidden]   (HF gate_proj, or up for non-gated)
 *   transformer.layers.{i}.mlp.gate.weight        [inter, hidden]   (HF up_proj, gated MLPs only)
 *   transformer.layers.{i}.mlp.proj.weight        [hidden, inter]   (HF down_proj)
 *   transformer.ln_f.weight                       [hidden] (+ .bias)
 *   lm_head.weight                                [vocab, hidden] (absent when tied)
 * Linear weights are (out_features, in_features), row-major.  The fused qkv
 * is the row concatenation q; k; v of HF's q_proj, k_proj, v_proj.
 */
#ifndef LLM_MODEL_H
#define LLM_MODEL_H

#include <stdint.h>
#include <stddef.h>
#include <jansson.h>

#include "dtype.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

enum llm_arch {
    LLM_ARCH_LLAMA = 0, /* Llama 1/2/3/3.1 and look-alikes */
    LLM_ARCH_MISTRAL,
    LLM_ARCH_QWEN2,
    LLM_ARCH_GPT2,
    LLM_ARCH_GPTJ,
    LLM_ARCH_GPTNEOX,
    LLM_ARCH_FALCON,
    LLM_ARCH_MPT,
    LLM_ARCH_BLOOM,
    LLM_ARCH_GEMMA,
    LLM_ARCH_PHI3,
    LLM_ARCH_MIXTRAL,
    LLM_ARCH_COUNT
};

enum llm_norm { LLM_NORM_RMS = 0, LLM_NORM_LAYER, LLM_NORM_COUNT };

enum llm_act {
    LLM_ACT_SILU = 0,  /* x * sigmoid(x) */
    LLM_ACT_GELU,      /* exact erf form */
    LLM_ACT_GELU_TANH, /* tanh approximation (gelu_new, gelu_pytorch_tanh) */
    LLM_ACT_RELU,
    LLM_ACT_COUNT
};

enum llm_pos {
    LLM_POS_ROPE = 0,
    LLM_POS_ALIBI,
    LLM_POS_LEARNED,
    LLM_POS_NONE,
    LLM_POS_COUNT
};

enum llm_rope_scaling {
    LLM_ROPE_SCALING_NONE = 0,
    LLM_ROPE_SCALING_LINEAR,
    LLM_ROPE_SCALING_DYNAMIC, /* NTK-aware, grows theta past original_max_pos */
    LLM_ROPE_SCALING_YARN,
    LLM_ROPE_SCALING_LLAMA3,
    LLM_ROPE_SCALING_LONGROPE, /* also HF "su" */
    LLM_ROPE_SCALING_COUNT
};

struct llm_rope {
    double theta;          /* base, HF rope_theta (10000 default) */
    int rot_dims;          /* dims rotated per head (head_dim * partial_rotary_factor) */
    int neox;              /* 1: rotate halves (HF Llama/NeoX); 0: interleaved pairs (GPT-J) */
    int scaling;           /* enum llm_rope_scaling */
    double factor;         /* linear/dynamic/yarn/llama3/longrope factor */
    int orig_max_pos;      /* original_max_position_embeddings (0 = unset) */
    double low_freq_factor, high_freq_factor; /* llama3 */
    double beta_fast, beta_slow;              /* yarn (defaults 32, 1) */
    double attn_factor;    /* yarn/longrope magnitude scale (0 = derive from factor) */
    double mscale, mscale_all_dim;            /* yarn (DeepSeek style), 0 = unset */
    int n_factors;         /* longrope: rot_dims/2 entries each, else 0 */
    float *long_factor;    /* [n_factors] owned by the desc */
    float *short_factor;   /* [n_factors] owned by the desc */
};

#define LLM_MAX_EOS 8
#define LLM_MAX_LAYERS 512

struct llm_model_desc {
    int arch;               /* enum llm_arch */
    char hf_arch[64];       /* HF architectures[0], e.g. "LlamaForCausalLM" */
    char model_type[32];    /* HF model_type, e.g. "llama" */
    int dtype;              /* enum llm_dtype the source weights were stored in */

    int64_t vocab_size;
    int64_t hidden;         /* hidden_size */
    int n_layers;
    int n_heads;
    int n_kv_heads;         /* == n_heads for MHA, 1 for MQA */
    int head_dim;
    int64_t intermediate;   /* MLP inner size (per expert for MoE) */
    int64_t max_pos;        /* max_position_embeddings */

    int norm;               /* enum llm_norm */
    double norm_eps;
    int act;                /* enum llm_act */
    int gated_mlp;          /* 1: act(fc(x)) * gate(x) (SwiGLU/GeGLU); 0: act(fc(x)) */

    int pos;                /* enum llm_pos */
    struct llm_rope rope;

    int parallel_residual;  /* attn and mlp both read the block input (GPT-J, NeoX, Falcon) */
    int shared_input_norm;  /* parallel residual with one norm for both (GPT-J, Falcon-7B) */
    int tied_embeddings;    /* lm_head shares transformer.vocab_embedding.weight */
    int qkv_bias;           /* attention.qkv has a bias */
    int o_bias;             /* attention.dense has a bias */
    int mlp_bias;           /* mlp.* have biases */
    int norm_bias;          /* norms have a bias (LayerNorm) */
    int lm_head_bias;

    int sliding_window;     /* window in tokens; 0 = full attention everywhere */
    unsigned char layer_window[LLM_MAX_LAYERS]; /* 1: layer i uses sliding_window
                               (Mistral: all; Qwen2: i >= max_window_layers) */
    double attn_scale;      /* softmax scale; 0 = 1/sqrt(head_dim) */
    double embed_scale;     /* multiply embeddings by this (Gemma: sqrt(hidden)); 0 = 1 */
    double logit_softcap;   /* 0 = none */

    int n_experts;          /* 0 = dense */
    int n_experts_per_tok;

    int32_t bos_id;         /* -1 when none */
    int32_t eos_ids[LLM_MAX_EOS];
    int n_eos;
    int32_t pad_id;         /* -1 when none */
};

/* Generation defaults from generation_config.json (absent fields keep the
 * values set by llm_gen_defaults_init). */
struct llm_gen_defaults {
    double temperature;     /* 1.0 */
    int top_k;              /* 0 = off */
    double top_p;           /* 1.0 */
    double min_p;           /* 0.0 */
    double repetition_penalty; /* 1.0 */
    int do_sample;          /* 0: greedy unless the request says otherwise */
    int max_new_tokens;     /* 0 = unset */
};

/* Zero-initialise with the neutral defaults (rope theta 10000, eps 1e-5, ...). */
void llm_desc_init(struct llm_model_desc *d);
void llm_desc_free(struct llm_model_desc *d); /* frees the longrope arrays */
void llm_gen_defaults_init(struct llm_gen_defaults *g);

/* Serialise to / from the artifact's "model" JSON object.  from_json
 * validates every field (positive sizes, heads dividing, known enums) and
 * fails with LLM_EFORMAT naming the field. */
json_t *llm_desc_to_json(const struct llm_model_desc *d);
int llm_desc_from_json(struct llm_model_desc *d, const json_t *j);
json_t *llm_gen_defaults_to_json(const struct llm_gen_defaults *g);
int llm_gen_defaults_from_json(struct llm_gen_defaults *g, const json_t *j);

/* Check internal consistency (heads * head_dim, kv heads divide heads, ...). */
int llm_desc_validate(const struct llm_model_desc *d);

/* Name tables (with _COUNT-sized static asserts in model.c). */
const char *llm_arch_name(int arch);      /* "llama" */
int llm_arch_from_name(const char *name);
const char *llm_act_name(int act);
const char *llm_norm_name(int norm);
const char *llm_pos_name(int pos);
const char *llm_rope_scaling_name(int s);

/* Canonical per-layer name: "transformer.layers.{layer}.{suffix}". */
int llm_name_layer(char *buf, size_t cap, int layer, const char *suffix);

/* Expected shape of a canonical tensor for this description; returns
 * LLM_ENOTFOUND for a name the architecture does not have. */
int llm_desc_tensor_shape(const struct llm_model_desc *d, const char *name, int *ndim,
                          int64_t shape[LLM_MAX_DIMS]);

/* Every canonical tensor this description has, in canonical order
 * (embedding, per layer, final norm, lm_head): *names is one malloc'd
 * array of n fixed-size strings. */
#define LLM_NAME_MAX 128
int llm_desc_tensor_names(const struct llm_model_desc *d, char (**names)[LLM_NAME_MAX], size_t *n);

/* ---- HF checkpoint -> canonical tensors (lib/model/hfmap.c) ---------------
 * A conversion plan: for each canonical tensor, the HF tensors whose rows
 * are concatenated (dim 0) to make it (q;k;v for attention.qkv, one source
 * otherwise).  Building the plan checks that every required HF tensor is
 * present with the expected shape (LLM_ENOTFOUND / LLM_ESHAPE naming the
 * tensor and its file) and warns about HF tensors it does not use.  Items
 * come in the order their first source appears in the checkpoint, so a
 * converter reads the files sequentially. */
struct llm_st;
#define LLM_PLAN_MAX_SRC 4
struct llm_plan_item {
    char name[LLM_NAME_MAX];              /* canonical name */
    int ndim;
    int64_t shape[LLM_MAX_DIMS];          /* canonical shape */
    int n_src;
    size_t src[LLM_PLAN_MAX_SRC];         /* indices into the llm_st tensor list */
};
int llm_hfmap_plan(const struct llm_model_desc *d, const struct llm_st *st,
                   struct llm_plan_item **items, size_t *n);

/* Number of parameters (for reports). */
uint64_t llm_desc_n_params(const struct llm_model_desc *d);

/* ---- HF config reader (lib/formats/hfconfig.c) ----------------------------
 * Read DIR/config.json (and DIR/generation_config.json when present) into
 * a description.  Unknown architectures fail with LLM_EUNSUPPORTED naming
 * the class; missing required fields with LLM_EFORMAT naming the field. */
int llm_hfconfig_load(const char *dir, struct llm_model_desc *d, struct llm_gen_defaults *g);
/* Same from already-parsed JSON (config, generation_config may be NULL);
 * src names the file in messages. */
int llm_hfconfig_parse(const json_t *config, const json_t *gen_config, const char *src,
                       struct llm_model_desc *d, struct llm_gen_defaults *g);


/* ---- a loaded model (lib/model/loader.c) ----------------------------------
 * An artifact opened for inference: its description, generation defaults,
 * embedded tokenizer files and random access to its tensors. */
struct llm_artifact;
struct llm_model {
    struct llm_model_desc desc;
    struct llm_gen_defaults gen;
    struct llm_artifact *ar;
    const json_t *meta;            /* the artifact's metadata (owned by ar) */
    const json_t *tokenizer_json;  /* meta.tokenizer.files["tokenizer.json"], or NULL */
    const json_t *tokenizer_config;/* meta.tokenizer.files["tokenizer_config.json"], or NULL */
    char *path;
    /* Tensor source used by llm_model_tensor when ar is NULL: lets tests and
     * tools build a model in memory.  Returns 0 or LLM_ENOTFOUND. */
    int (*get_tensor)(void *ctx, const char *name, struct llm_tensor *t);
    void *get_tensor_ctx;
};
/* Open an artifact ("-" = stdin, read fully into memory) as a model and
 * verify every tensor's checksum (llm_ar_verify_all): a changed byte fails
 * here with LLM_ECHECKSUM naming the file and the tensor, before any
 * weight is used. */
int llm_model_open(struct llm_model **out, const char *path);
enum llm_model_open_flags {
    LLM_MODEL_NO_VERIFY = 1 << 0, /* skip the checksums (tools' --no-verify) */
};
/* llm_model_open with flags (enum llm_model_open_flags). */
int llm_model_open_flags(struct llm_model **out, const char *path, unsigned flags);
void llm_model_close(struct llm_model *m);
/* Look up a canonical tensor; LLM_ENOTFOUND naming it when absent.  When
 * the description says what shape it must have, a different shape fails
 * with LLM_ESHAPE (expected vs found). */
int llm_model_tensor(struct llm_model *m, const char *name, struct llm_tensor *t);

#ifdef __cplusplus
}
#endif
#endif
