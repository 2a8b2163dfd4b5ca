/* model.h - the architecture-neutral model description, its features, the
 * canonical tensor names, and a model opened for inference.
 *
 * struct llm_model_desc is what every layer above the formats sees of a
 * model: sizes, attention shape, norm, activation, position encoding and
 * the structural switches (parallel residual, norm placement, biases, tied
 * embeddings, sliding window, soft caps, MoE).  It is filled from a
 * Hugging Face config.json by the architecture registry (llm/hf.h,
 * lib/model/arch/) and travels inside the artifact's metadata as JSON
 * (llm_desc_to_json / llm_desc_from_json), so it is the single source of
 * truth after conversion.  The struct is plain data: immutable once loaded,
 * no pointers but the two longrope factor arrays.
 *
 * Nothing above lib/model looks at the architecture: the layer structure is
 * derived from the description once (llm/graph.h), and what a backend can
 * run is decided by the features the description uses (llm_desc_features,
 * llm_model_supported), never by the architecture's name.
 *
 * Canonical tensor names follow TensorRT-LLM's checkpoint names one to one
 * (formats/artifact.md has the table):
 *   transformer.vocab_embedding.weight            [vocab, embed_dim]
 *   transformer.position_embedding.weight         [max_pos + pos_offset, embed_dim] (learned)
 *   transformer.ln_embed.weight/.bias             [hidden]  (embed_norm: BLOOM)
 *   transformer.project_in.weight                 [hidden, embed_dim]   (OPT, embed_dim != hidden)
 *   transformer.layers.{i}.input_layernorm.weight [hidden] (+ .bias)
 *   transformer.layers.{i}.attention.qkv.weight   [(nh + 2*nkv)*head_dim, hidden] (+ .bias)
 *   transformer.layers.{i}.attention.q_layernorm.weight [head_dim] (+ .bias) (qk_norm)
 *   transformer.layers.{i}.attention.k_layernorm.weight [head_dim] (+ .bias) (qk_norm)
 *   transformer.layers.{i}.attention.dense.weight [hidden, nh*head_dim] (+ .bias)
 *   transformer.layers.{i}.post_attention_layernorm.weight [hidden] (sandwich_norm: Gemma 2)
 *   transformer.layers.{i}.post_layernorm.weight  [hidden] (+ .bias)  the MLP's input norm
 *   transformer.layers.{i}.mlp.fc.weight          [inter, hidden]   (HF gate_proj, or up for non-gated)
 *   transformer.layers.{i}.mlp.gate.weight        [inter, hidden]   (HF up_proj, gated MLPs only)
 *   transformer.layers.{i}.mlp.proj.weight        [hidden, inter]   (HF down_proj)
 *   transformer.layers.{i}.mlp.router.weight      [n_experts, hidden] (MoE; fc/gate/proj then
 *                                                  carry a leading [n_experts] dimension)
 *   transformer.layers.{i}.post_feedforward_layernorm.weight [hidden] (sandwich_norm)
 *   transformer.ln_f.weight                       [hidden] (+ .bias)  (absent when !final_norm)
 *   transformer.project_out.weight                [embed_dim, hidden] (OPT, embed_dim != hidden)
 *   lm_head.weight                                [vocab, embed_dim] (absent when tied)
 * Linear weights are (out_features, in_features), row-major.  The fused qkv
 * is the row concatenation q; k; v.
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
#define LLM_ARCH_ENTRY(id, name) LLM_ARCH_##id,
#include "arch_list.h"
#undef LLM_ARCH_ENTRY
    LLM_ARCH_COUNT
};

enum llm_norm { LLM_NORM_RMS = 0, LLM_NORM_LAYER, LLM_NORM_COUNT };

enum llm_act {
    LLM_ACT_SILU = 0,  /* x * sigmoid(x) */
    LLM_ACT_GELU,      /* exact erf form */
    LLM_ACT_GELU_TANH, /* tanh approximation (gelu_new, gelu_pytorch_tanh) */
    LLM_ACT_RELU,
    LLM_ACT_RELU2, /* relu(x)^2 (Nemotron's relu2) */
    /* gated only (GPT-OSS): with g = min(fc, limit), u = clamp(gate, -limit,
     * limit): g * sigmoid(alpha * g) * (u + 1); alpha, limit in the desc */
    LLM_ACT_SWIGLU_OAI,
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

/* Per-head normalisation of q and k before rotary (Qwen3: RMSNorm; StableLM
 * qk_layernorm: LayerNorm), over head_dim, one weight shared by the heads. */
/* q/k norms: RMS or LayerNorm per head (Qwen3, StableLM), or RMS over all
 * the heads of q and of k at once (OLMo 2: weights [heads x head_dim]) */
/* How a mixture of experts picks and weighs its experts. */
enum llm_moe_router {
    LLM_ROUTER_SOFTMAX = 0, /* softmax over the logits, the top k (Mixtral, Qwen3-MoE) */
    /* DeepSeek V3: s = sigmoid(logits); the experts are in moe_groups groups,
     * each scored by the sum of its two best s + correction bias; the best
     * moe_topk_groups groups' experts compete, the top k by s + bias are
     * chosen and weighted by s (renormalised with moe_norm_topk), times
     * moe_scale */
    LLM_ROUTER_SIGMOID_GROUPS,
    /* DeepSeek V2's group_limited_greedy: softmax scores, the groups ranked
     * by their best score, the top k of the best moe_topk_groups groups'
     * experts weighted by their score */
    LLM_ROUTER_SOFTMAX_GROUPS,
    LLM_ROUTER_COUNT
};

enum llm_qk_norm {
    LLM_QK_NORM_NONE = 0,
    LLM_QK_NORM_RMS,
    LLM_QK_NORM_LAYER,
    LLM_QK_NORM_RMS_ALL,
    LLM_QK_NORM_COUNT
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
    int yarn_no_truncate;  /* yarn: the ramp's ends not rounded to whole dims (truncate false) */
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
    int64_t embed_dim;      /* width of the embeddings and lm_head: hidden, or OPT's
                               word_embed_proj_dim (then project_in/out convert) */

    int norm;               /* enum llm_norm */
    double norm_eps;
    double norm_offset;     /* norms scale by (offset + w): 1 for Gemma, else 0 */
    int act;                /* enum llm_act */
    int gated_mlp;          /* 1: act(fc(x)) * gate(x) (SwiGLU/GeGLU); 0: act(fc(x)) */
    double swiglu_alpha, swiglu_limit; /* LLM_ACT_SWIGLU_OAI's sigmoid gain and clamp */

    int pos;                /* enum llm_pos */
    int pos_offset;         /* learned positions: row of position p is p + offset (OPT: 2) */
    struct llm_rope rope;
    double alibi_max_bias;  /* ALiBi slopes 2^(-max_bias * i / n) (8 for BLOOM/MPT) */
    int alibi_scaled;       /* the ALiBi bias is multiplied by the softmax scale too (Falcon) */

    /* Layer structure (llm/graph.h derives the steps from these). */
    int parallel_residual;  /* attn and mlp both read the block input (GPT-J, NeoX, Falcon) */
    int shared_input_norm;  /* parallel residual with one norm for both (GPT-J, Falcon-7B) */
    int norm_after;         /* post-LN: each sub-block's norm follows its residual add and
                               the block input is not normalised (OPT-350m) */
    int sandwich_norm;      /* the attention and MLP outputs are normalised before their
                               residual add (Gemma 2) */
    int no_input_norm;      /* with sandwich_norm: the sub-blocks read the residual stream
                               itself, normalised only on the way out (OLMo 2) */
    int qk_norm;            /* enum llm_qk_norm */
    double clip_qkv;        /* q, k, v clamped to [-clip, clip] (MPT); 0 = none */
    int embed_norm;         /* a norm right after the embeddings (BLOOM) */
    int final_norm;         /* a norm before the lm_head (1 almost always) */
    int tied_embeddings;    /* lm_head shares transformer.vocab_embedding.weight */
    int qkv_bias;           /* attention.qkv has a bias */
    int o_bias;             /* attention.dense has a bias */
    int mlp_bias;           /* mlp.* have biases */
    int norm_bias;          /* norms have a bias (LayerNorm) */
    int lm_head_bias;

    int sliding_window;     /* window in tokens; 0 = full attention everywhere */
    unsigned char layer_window[LLM_MAX_LAYERS]; /* 1: layer i uses sliding_window
                               (Mistral: all; Qwen2: i >= max_window_layers; Gemma 2: even) */
    double attn_scale;      /* softmax scale; 0 = 1/sqrt(head_dim) */
    /* queries at position p scaled by 1 + beta ln(1 + floor(p / rope.orig_max_pos))
     * (Ministral 3's llama_4_scaling_beta); 0 = none */
    double attn_qscale_beta;
    int attn_sinks;         /* a learned logit per head (attention.sinks [n_heads]) joins each
                               softmax's denominator: w_j = e^s_j / (e^sink + sum e^s) (GPT-OSS) */
    double embed_scale;     /* multiply embeddings by this (Gemma: sqrt(hidden)); 0 = 1 */
    double attn_softcap;    /* scores s -> c*tanh(s/c) before the softmax; 0 = none */
    double final_softcap;   /* logits z -> c*tanh(z/c) (Gemma 2); 0 = none */
    double logit_scale;     /* logits multiplied by this before any cap (Cohere); 0 = 1 */
    double residual_scale;  /* each sub-block's output multiplied by this before its
                               residual add (Granite; sequential dense blocks); 0 = 1 */
    /* Gemma 3: the layers marked here rotate with `rope` but base
     * rope_local_theta and no scaling (the sliding layers' local rotary);
     * 0 = every layer uses `rope` as it is */
    double rope_local_theta;
    unsigned char layer_local_rope[LLM_MAX_LAYERS];
    /* 1: layer i has no rotary at all (SmolLM3's NoPE layers) */
    unsigned char layer_no_rope[LLM_MAX_LAYERS];

    int n_experts;          /* 0 = dense */
    int n_experts_per_tok;
    int moe_norm_topk;      /* the chosen experts' softmax weights renormalised to sum 1 */
    int router_bias;        /* the router has a bias (GPT-OSS) */
    int moe_router;         /* enum llm_moe_router */
    int moe_groups, moe_topk_groups; /* the grouped routers' groups */
    int moe_corr_bias;      /* a per-expert correction bias (mlp.router_correction) added to
                               the scores for the choice only (DeepSeek V3, ERNIE 4.5 MoE) */
    double moe_scale;       /* the chosen experts' weights times this; 0 = 1 */
    /* layers [0, moe_first_layer) have a dense MLP of dense_inter rows
     * instead of the experts (DeepSeek's first_k_dense_replace) */
    int moe_first_layer;
    int64_t dense_inter;
    /* Multi-head latent attention (DeepSeek V2 / V3) when kv_lora_rank > 0:
     * q = q_b(norm(q_a(x))) (q_b(x) when q_lora_rank is 0), per head [nope |
     * rope]; kv_a(x) = [c (kv_lora_rank) | k_rope (rope.rot_dims, one for
     * every head)]; kv_b(norm(c)) per head [k_nope | v (v_head_dim)].
     * head_dim = nope + rope dims; n_kv_heads = n_heads. */
    int64_t q_lora_rank, kv_lora_rank;
    int v_head_dim;         /* MLA's value width per head (0: head_dim) */
    /* a shared expert beside the routed ones (Qwen2-MoE): an MLP of this inner
     * size over every token, its output added to theirs; shared_expert_gate:
     * that output first times sigmoid(x . w) per token (mlp.shared_router) */
    int64_t shared_expert_inter;
    int shared_expert_gate;

    /* Which part of the model this process runs (tensor / pipeline
     * parallelism): set by llm_desc_partition from a rank file's mapping,
     * never serialised.  All zero = the whole model on one rank; then
     * n_heads, n_kv_heads and intermediate above are the model's.  For a
     * rank they are the rank's own (its slice of the heads and of the MLP),
     * and the fields here say where that slice sits. */
    struct llm_part {
        int tp, tp_rank, pp, pp_rank; /* 0 = 1 rank */
        int first_layer, end_layer;   /* this stage's layers [first, end); end 0 = all */
        int heads_total;              /* the model's query heads (ALiBi slopes) */
        int head_offset;              /* the first of this rank's query heads */
        int64_t vocab_part;           /* lm_head rows on this rank (padded vocab / tp) */
        /* expert parallelism (MoE): the tp ranks form ep groups of tp / ep
         * ranks, interleaved as TensorRT-LLM's mapping (ep_rank = tp_rank %
         * ep, moe_tp_rank = tp_rank / ep); group ep_rank holds whole experts
         * [expert_first, +experts) and splits each of them over its ranks.
         * n_experts above stays the model's: the router scores them all. */
        int ep, ep_rank, moe_tp_rank; /* 0 = one group */
        int expert_first, experts;    /* experts 0 = all of them */
    } part;

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
/* Deep copy (the longrope arrays too); dst need not be initialised. */
int llm_desc_copy(struct llm_model_desc *dst, const struct llm_model_desc *src);
void llm_gen_defaults_init(struct llm_gen_defaults *g);

/* Serialise to / from the artifact's "model" JSON object.  from_json
 * validates every field (positive sizes, heads dividing, known enums) and
 * fails with LLM_EFORMAT naming the field.  Fields added after format 1.0
 * are optional on reading (their absence means the 1.0 behaviour). */
json_t *llm_desc_to_json(const struct llm_model_desc *d);
int llm_desc_from_json(struct llm_model_desc *d, const json_t *j);
json_t *llm_gen_defaults_to_json(const struct llm_gen_defaults *g);
int llm_gen_defaults_from_json(struct llm_gen_defaults *g, const json_t *j);

/* Check internal consistency (heads * head_dim, kv heads divide heads, ...). */
int llm_desc_validate(const struct llm_model_desc *d);

/* Name tables (with _COUNT-sized static asserts in desc.c). */
const char *llm_arch_name(int arch);      /* "llama" */
int llm_arch_from_name(const char *name);
const char *llm_act_name(int act);
const char *llm_norm_name(int norm);
const char *llm_pos_name(int pos);
const char *llm_rope_scaling_name(int s);
const char *llm_qk_norm_name(int k);

/* ---- features -------------------------------------------------------------
 * What a model needs of a backend beyond the plain pre-norm decoder
 * (RMSNorm, rotary over whole heads, gated MLP, no biases): one bit each.
 * Backends state the bits they run (llm/backend.h); llm_model_supported
 * names the first missing one. */
enum llm_feature {
    LLM_FEAT_LAYERNORM = 0,     /* LayerNorm instead of RMSNorm */
    LLM_FEAT_NORM_OFFSET,       /* norm weight 1 + w (Gemma) */
    LLM_FEAT_BIASES,            /* biases on qkv, dense, mlp or norms */
    LLM_FEAT_PLAIN_MLP,         /* act(fc(x)) without a gate */
    LLM_FEAT_ROPE_INTERLEAVED,  /* rotary on interleaved pairs (GPT-J) */
    LLM_FEAT_PARTIAL_ROTARY,    /* rotary on part of each head */
    LLM_FEAT_LEARNED_POS,       /* learned absolute positions */
    LLM_FEAT_POS_OFFSET,        /* learned positions read at an offset (OPT) */
    LLM_FEAT_ALIBI,             /* ALiBi attention biases */
    LLM_FEAT_NO_POS,            /* no position encoding at all */
    LLM_FEAT_PARALLEL_RESIDUAL, /* attention and MLP in parallel */
    LLM_FEAT_NORM_AFTER,        /* post-LN blocks (OPT-350m) */
    LLM_FEAT_SANDWICH_NORM,     /* norms on the sub-block outputs (Gemma 2) */
    LLM_FEAT_QK_NORM,           /* per-head q/k norm (Qwen3, StableLM) */
    LLM_FEAT_CLIP_QKV,          /* q/k/v clamping (MPT) */
    LLM_FEAT_EMBED_NORM,        /* norm after the embeddings (BLOOM) */
    LLM_FEAT_EMBED_PROJ,        /* project_in / project_out (OPT) */
    LLM_FEAT_NO_FINAL_NORM,     /* no norm before the lm_head */
    LLM_FEAT_EMBED_SCALE,       /* embeddings multiplied by a constant (Gemma) */
    LLM_FEAT_SLIDING_WINDOW,    /* sliding-window attention on some layers */
    LLM_FEAT_ATTN_SOFTCAP,      /* tanh cap on attention scores (Gemma 2) */
    LLM_FEAT_FINAL_SOFTCAP,     /* tanh cap on the logits (Gemma 2) */
    LLM_FEAT_LM_HEAD_BIAS,      /* bias on the lm_head (GPT-J) */
    LLM_FEAT_MOE,               /* mixture of experts */
    LLM_FEAT_W_FP8,             /* weights stored in fp8 e4m3 with scales */
    LLM_FEAT_W_INT8,            /* weights stored in int8 with scales */
    LLM_FEAT_W_INT4,            /* weights stored in packed int4 with group scales */
    LLM_FEAT_KV_QUANT,          /* fp8 / int8 KV cache */
    LLM_FEAT_ACT_INT8,          /* int8 activations (SmoothQuant W8A8) */
    LLM_FEAT_EXPERT_PARALLEL,   /* a rank holding some of the experts (llm-shard --ep) */
    LLM_FEAT_W_PERM,            /* weights on permuted inputs (GPTQ act-order: <stem>.perm) */
    LLM_FEAT_MOE_QUANT,         /* quantized experts (an expert stack in int8 / int4 / fp8) */
    LLM_FEAT_LOCAL_ROPE,        /* a second rotary base on some layers (Gemma 3) */
    LLM_FEAT_NOPE_LAYERS,       /* layers without rotary among rotary ones (SmolLM3) */
    LLM_FEAT_LOGIT_SCALE,       /* logits multiplied by a constant (Cohere) */
    LLM_FEAT_RESIDUAL_SCALE,    /* sub-block outputs scaled before the residual add (Granite) */
    LLM_FEAT_QK_NORM_ALL,       /* q/k RMS norms over all heads at once (OLMo 2) */
    LLM_FEAT_NO_INPUT_NORM,     /* sub-blocks without an input norm, normed outputs (OLMo 2) */
    LLM_FEAT_ACT_RELU2,         /* the squared ReLU activation (Nemotron) */
    LLM_FEAT_SHARED_EXPERT,     /* a shared expert beside the routed ones (Qwen2-MoE) */
    LLM_FEAT_ATTN_SINKS,        /* a learned sink logit per head in the softmax (GPT-OSS) */
    LLM_FEAT_ACT_SWIGLU_OAI,    /* the clamped SwiGLU with (up + 1) (GPT-OSS) */
    LLM_FEAT_MOE_BIAS,          /* biases on the router or the experts (GPT-OSS) */
    LLM_FEAT_MLA,               /* multi-head latent attention (DeepSeek V2 / V3) */
    LLM_FEAT_MOE_GROUPS,        /* grouped sigmoid routing, scaled weights (DeepSeek V3) */
    LLM_FEAT_DENSE_FIRST,       /* dense MLPs before the MoE layers (DeepSeek) */
    LLM_FEAT_ATTN_QSCALE,       /* position-dependent query scaling (Ministral 3) */
    LLM_FEAT_ACT_FP8_W4,        /* fp8 activations into int4 weights (W4A8_AWQ) */
    LLM_FEAT_COUNT
};
typedef uint64_t llm_features;
#define LLM_FEAT_BIT(f) ((llm_features)1 << (f))
#ifndef __cplusplus
_Static_assert(LLM_FEAT_COUNT <= 64, "feature bits fit a 64-bit mask");
#endif

/* ALiBi slopes of d's heads as the attention adds them: the BLOOM/MPT rule
 * for n_heads and alibi_max_bias, times the softmax scale when alibi_scaled
 * (the backends multiply scores by the scale first, so (qk + m) * scale is
 * qk * scale + m * scale).  slopes [n_heads]. */
void llm_desc_alibi_slopes(const struct llm_model_desc *d, float *slopes);
/* The rule alone: slopes [n_heads] for max_bias (8 for BLOOM). */
void llm_alibi_slopes(float *slopes, int n_heads, double max_bias);
/* The softmax scale: attn_scale, or 1/sqrt(head_dim). */
double llm_desc_attn_scale(const struct llm_model_desc *d);

/* "layernorm", "learned position embeddings", ...: for messages. */
const char *llm_feature_name(int f);
/* The features d uses (weight-format bits come from the quantization
 * section, see llm_quant_features in llm/weight.h). */
llm_features llm_desc_features(const struct llm_model_desc *d);

/* ---- canonical names --------------------------------------------------------
 * Weight slots: every tensor a model can have, as (slot, layer).  Each slot
 * has one canonical stem ("attention.qkv", "ln_f", ...) with ".weight" and
 * an optional ".bias"; which slots a description has, and their shapes,
 * follow from its switches alone. */
enum llm_wslot {
    /* global (layer -1) */
    LLM_W_EMBED = 0,  /* transformer.vocab_embedding */
    LLM_W_POS_EMBED,  /* transformer.position_embedding */
    LLM_W_EMBED_NORM, /* transformer.ln_embed */
    LLM_W_PROJ_IN,    /* transformer.project_in */
    LLM_W_FINAL_NORM, /* transformer.ln_f */
    LLM_W_PROJ_OUT,   /* transformer.project_out */
    LLM_W_LM_HEAD,    /* lm_head */
    /* per layer */
    LLM_W_ATTN_NORM,      /* input_layernorm */
    LLM_W_QKV,            /* attention.qkv */
    LLM_W_Q_NORM,         /* attention.q_layernorm */
    LLM_W_K_NORM,         /* attention.k_layernorm */
    LLM_W_ATTN_OUT,       /* attention.dense */
    LLM_W_ATTN_POST_NORM, /* post_attention_layernorm (sandwich) */
    LLM_W_MLP_NORM,       /* post_layernorm */
    LLM_W_ROUTER,         /* mlp.router */
    LLM_W_MLP_FC,         /* mlp.fc */
    LLM_W_MLP_GATE,       /* mlp.gate */
    LLM_W_MLP_OUT,        /* mlp.proj */
    LLM_W_MLP_POST_NORM,  /* post_feedforward_layernorm (sandwich) */
    LLM_W_SHARED_ROUTER,  /* mlp.shared_router: the shared expert's sigmoid gate [1][H] */
    LLM_W_SHARED_FC,      /* mlp.shared_fc */
    LLM_W_SHARED_GATE,    /* mlp.shared_gate */
    LLM_W_SHARED_OUT,     /* mlp.shared_proj */
    LLM_W_ATTN_SINKS,     /* attention.sinks [n_heads] (GPT-OSS) */
    LLM_W_Q_A,            /* attention.q_a: MLA's query down-projection [q_lora][H] */
    LLM_W_Q_A_NORM,       /* attention.q_a_norm [q_lora] */
    LLM_W_Q_B,            /* attention.q_b [heads x head_dim][q_lora or H] */
    LLM_W_KV_A,           /* attention.kv_a [kv_lora + rope dims][H] */
    LLM_W_KV_A_NORM,      /* attention.kv_a_norm [kv_lora] */
    LLM_W_KV_B,           /* attention.kv_b [heads x (nope + v_head_dim)][kv_lora] */
    LLM_W_ROUTER_CORR,    /* mlp.router_correction [E]: added for the choice only */
    LLM_W_COUNT
};
#define LLM_W_FIRST_LAYER LLM_W_ATTN_NORM
/* Kinds of slot: how its weight is used. */
enum llm_wkind { LLM_WK_EMBED = 0, LLM_WK_NORM, LLM_WK_LINEAR };

/* The slot's stem: "transformer.ln_f", "attention.qkv" (per-layer stems are
 * relative to "transformer.layers.{i}."), its kind, and whether it is a
 * per-layer slot. */
const char *llm_wslot_stem(int slot);
int llm_wslot_kind(int slot);
int llm_wslot_per_layer(int slot);
/* Shape of the slot's weight ([n] for norms, [out, in] for linears,
 * [n_experts, out, in] for expert stacks) and of its bias (*bias_ndim 0:
 * no bias) in layer `layer` (-1: a global slot, or any MoE layer; the
 * layers before moe_first_layer have a dense MLP).  Returns LLM_ENOTFOUND
 * (no message) when d has no such slot there. */
int llm_desc_slot_shape(const struct llm_model_desc *d, int slot, int layer, int *ndim,
                        int64_t shape[LLM_MAX_DIMS], int *bias_ndim, int64_t bias_shape[LLM_MAX_DIMS]);

/* Canonical per-layer name: "transformer.layers.{layer}.{suffix}". */
int llm_name_layer(char *buf, size_t cap, int layer, const char *suffix);
/* The one parser of canonical names: "transformer.layers.{i}.SUFFIX" gives
 * i (canonical decimal: no sign, no leading zero, at most LLM_MAX_LAYERS)
 * and *suffix; any other name gives -1. */
int llm_name_parse_layer(const char *name, const char **suffix);
/* The slot and layer (-1 for global) of a canonical tensor name, and
 * whether it is the bias; LLM_ENOTFOUND (no message) for other names. */
int llm_name_to_slot(const char *name, int *slot, int *layer, int *is_bias);
/* "transformer.layers.3.attention.qkv.weight" for (slot, layer, is_bias). */
int llm_name_of_slot(char *buf, size_t cap, int slot, int layer, int is_bias);

/* Expected shape of a canonical tensor for this description; returns
 * LLM_ENOTFOUND for a name the architecture does not have. */
int llm_desc_tensor_shape(const struct llm_model_desc *d, const char *name, int *ndim,
                          int64_t shape[LLM_MAX_DIMS]);

/* Every canonical tensor this description has, in canonical order
 * (embedding, per layer, final norm, lm_head): *names is one malloc'd
 * array of n fixed-size strings. */
#define LLM_NAME_MAX 128
int llm_desc_tensor_names(const struct llm_model_desc *d, char (**names)[LLM_NAME_MAX], size_t *n);

/* Number of parameters (for reports; the sigmoid routers' correction
 * buffers are not counted, as transformers does not). */
uint64_t llm_desc_n_params(const struct llm_model_desc *d);

/* ---- a loaded model (lib/model/loader.c) ----------------------------------
 * An artifact opened for inference: its description, generation defaults,
 * quantization section, mapping, embedded tokenizer files and random access
 * to its tensors. */
struct llm_artifact;

/* The artifact's "quantization" section (formats/artifact.md), with
 * TensorRT-LLM's algorithm names. */
enum llm_quant_algo {
    LLM_QUANT_NONE = 0,
    LLM_QUANT_FP8,                  /* "FP8": per-tensor weight and static activation scales */
    LLM_QUANT_FP8_PC_PT,            /* "FP8_PER_CHANNEL_PER_TOKEN" */
    LLM_QUANT_W8A8_SQ_PC,           /* "W8A8_SQ_PER_CHANNEL" (static per-tensor activations) */
    LLM_QUANT_W8A8_SQ_PC_PT,        /* "W8A8_SQ_PER_CHANNEL_PER_TOKEN_PLUGIN" (dynamic) */
    LLM_QUANT_W8A16,                /* "W8A16": int8 weight-only, per channel */
    LLM_QUANT_W4A16,                /* "W4A16": int4 weight-only, group-wise */
    LLM_QUANT_W4A16_AWQ,            /* "W4A16_AWQ" */
    LLM_QUANT_W4A16_GPTQ,           /* "W4A16_GPTQ" */
    LLM_QUANT_W8A16_GPTQ,           /* "W8A16_GPTQ" */
    LLM_QUANT_W4A8_AWQ,             /* "W4A8_AWQ": int4 AWQ weights, static fp8 activations */
    LLM_QUANT_COUNT
};
enum llm_kv_quant { LLM_KV_QUANT_NONE = 0, LLM_KV_QUANT_FP8, LLM_KV_QUANT_INT8, LLM_KV_QUANT_COUNT };
#define LLM_QUANT_MAX_EXCLUDE 32
struct llm_quant {
    int algo;               /* enum llm_quant_algo */
    int kv_algo;            /* enum llm_kv_quant */
    int group_size;         /* int4 group-wise formats (0 otherwise; -1 one group per channel) */
    int has_zero_point;
    int pre_quant_scale;    /* AWQ: a prequant_scaling_factor per input channel */
    int act_order;          /* some weights read permuted inputs (<stem>.perm; GPTQ act-order) */
    int n_exclude;
    char exclude[LLM_QUANT_MAX_EXCLUDE][64]; /* patterns of modules kept dense */
};
void llm_quant_init(struct llm_quant *q);
const char *llm_quant_algo_name(int algo);   /* "FP8", ...; NULL for none */
const char *llm_kv_quant_name(int kv);       /* "FP8", "INT8"; NULL for none */
/* Bits per stored weight element of a quantized format (8 or 4); 0 for none. */
int llm_quant_weight_bits(int algo);
/* Section <-> struct; null or a missing member means none.  Unknown
 * algorithm names fail with LLM_EUNSUPPORTED naming them. */
int llm_quant_from_json(struct llm_quant *q, const json_t *j, const char *src);
json_t *llm_quant_to_json(const struct llm_quant *q);
/* The weight/KV format bits of llm_features the section implies. */
llm_features llm_quant_features(const struct llm_quant *q);

/* Which part of a tensor/pipeline-parallel model a file holds.  Global
 * rank = pp_rank * tp_size + tp_rank.  ep_size (the file's moe_ep_size)
 * divides tp_size: the experts go to ep_size groups of tp_size / ep_size
 * (moe_tp_size) ranks, group tp_rank / moe_tp_size. */
struct llm_mapping {
    int world_size, tp_size, pp_size, tp_rank, pp_rank, ep_size;
};

/* ---- partitions (lib/model/partition.c) ------------------------------------
 * Tensor parallelism splits attention by heads (query heads evenly; KV
 * heads evenly, or each rank takes the one its query heads use when tp
 * exceeds them), the MLP's inner size evenly (each expert's, for MoE), and
 * the lm_head by vocabulary rows, padded to a multiple of tp.  Expert
 * parallelism (ep, dividing tp and the experts) gives each of ep groups of
 * tp / ep ranks its own whole experts, each split inside the group as
 * above (TensorRT-LLM's moe_ep_size x moe_tp_size = tp_size).  Pipeline
 * parallelism gives each stage contiguous layers, the first stages one
 * more when they do not divide.  Embeddings sit on the first stage, the
 * final norm and lm_head on the last. */

/* Whether d (quantized as q, may be NULL) splits tp x pp ways with ep
 * expert groups; the error (LLM_EINVAL) says which size does not divide. */
int llm_partition_check(const struct llm_model_desc *d, const struct llm_quant *q, int tp, int pp,
                        int ep);
/* Layers [first, end) of pipeline stage `stage` of pp. */
void llm_partition_layers(int n_layers, int pp, int stage, int *first, int *end);
/* Turn the whole model's d into rank mp's part (sizes and d->part). */
int llm_desc_partition(struct llm_model_desc *d, const struct llm_mapping *mp,
                       const struct llm_quant *q);
/* d's stage runs layer l / holds the embeddings / holds the lm_head. */
int llm_part_has_layer(const struct llm_model_desc *d, int l);
int llm_part_first_stage(const struct llm_model_desc *d);
int llm_part_last_stage(const struct llm_model_desc *d);
int llm_part_tp(const struct llm_model_desc *d);      /* 1 for a whole model */
int llm_part_pp(const struct llm_model_desc *d);
/* The experts d's rank runs: their number, the first in *first. */
int llm_part_experts(const struct llm_model_desc *d, int *first);

struct llm_model {
    struct llm_model_desc desc;
    struct llm_gen_defaults gen;
    struct llm_quant quant;
    struct llm_mapping mapping;
    struct llm_artifact *ar;
    const json_t *meta;            /* the artifact's metadata (owned by ar) */
    const json_t *tokenizer_json;  /* meta.tokenizer.files["tokenizer.json"], or NULL */
    const json_t *tokenizer_config;/* meta.tokenizer.files["tokenizer_config.json"], or NULL */
    char *path;
    /* Tensor source used by llm_model_tensor when ar is NULL: lets tests and
     * tools build a model in memory.  Returns 0 or LLM_ENOTFOUND. */
    int (*get_tensor)(void *ctx, const char *name, struct llm_tensor *t);
    void *get_tensor_ctx;
    void (*get_tensor_free)(void *ctx); /* called by llm_model_close when set */
    /* Random weights without a file (llm_model_random): tensors have shapes
     * and no data (data == NULL) until llm_model_host_data; a backend that
     * keeps weights elsewhere makes them itself from llm/random.h. */
    int synthetic;
    uint64_t rand_seed;
};
/* Open an artifact ("-" = stdin, read fully into memory) as a model and
 * verify every tensor's checksum (llm_ar_verify_all): a changed byte fails
 * here with LLM_ECHECKSUM naming the file and the tensor, before any
 * weight is used.  "random:CONFIG.json" opens llm_model_random(CONFIG.json,
 * the config's dtype, seed 0): the model `llm-convert --random CONFIG.json`
 * would write, without the file.  "random:CONFIG.json:MODE[,OPTION...]"
 * is that model quantized as `llm-quantize -m MODE` would write it (the
 * same tensors, dtypes, shapes and quantization section; constant scales,
 * llm/random.h): MODE fp8, fp8-pc, int8-sq, w8a16, w4a16 or int4-awq;
 * options group-size=N (w4a16, int4-awq; default 128), act=static|dynamic
 * (int8-sq; default dynamic), kv=fp8|int8 (with a mode or alone), e.g.
 * "random:llama-2-7b/config.json:fp8" or "random:cfg.json:w4a16,group-size=64". */
#define LLM_MODEL_RANDOM_PREFIX "random:"
int llm_model_open(struct llm_model **out, const char *path);
enum llm_model_open_flags {
    LLM_MODEL_NO_VERIFY = 1 << 0, /* skip the checksums (tools' --no-verify) */
};
/* llm_model_open with flags (enum llm_model_open_flags). */
int llm_model_open_flags(struct llm_model **out, const char *path, unsigned flags);
void llm_model_close(struct llm_model *m);
/* A model with random weights in the shapes of config_path (a config.json),
 * the values llm-convert --random would write with the same seed and dtype
 * (dtype < 0: the config's, made a float type by llm_rand_dtype); no
 * tokenizer.  path is "random:<config_path>".  config_path may end in
 * ":MODE[,OPTION...]" (llm_model_open above): the model quantized, its
 * weights' codes made like the values (llm/random.h) and its scale tensors
 * on the host from the start; a bad mode or option fails with one line. */
int llm_model_random(struct llm_model **out, const char *config_path, int dtype, uint64_t seed);
/* A synthetic model's tensors get their values on the host from now on (each
 * made and kept at its first lookup); no-op for other models. */
void llm_model_host_data(struct llm_model *m);
/* For models built in memory: quantization none, mapping one rank. */
void llm_model_init_mem(struct llm_model *m);
/* Look up a canonical tensor; LLM_ENOTFOUND naming it when absent.  When
 * the description says what shape it must have, a different shape fails
 * with LLM_ESHAPE (expected vs found). */
int llm_model_tensor(struct llm_model *m, const char *name, struct llm_tensor *t);
/* A quantized KV cache's scales, ks[2 l] (K) and ks[2 l + 1] (V) for each of
 * the n_layers layers, from attention.kv_cache_scaling_factor ([1]: one for
 * both, or [2]); layers of another pipeline stage get 1.  A missing,
 * misshapen or non-positive scale fails naming the tensor. */
int llm_model_kv_scales(struct llm_model *m, float *ks);

/* ---- what a backend runs ------------------------------------------------------
 * A backend's capabilities, stated without a device (so llm-build and
 * llm-bench can check before any work): the feature bits it runs, and
 * shape limits. */
struct llm_backend_caps {
    const char *name;       /* "cpu", "cuda" */
    llm_features features;
    int dim_multiple;       /* hidden, head_dim, intermediate must be multiples (1 = any) */
    int max_head_dim;
    int64_t max_hidden;
};
extern const struct llm_backend_caps llm_cpu_caps;
extern const struct llm_backend_caps llm_cuda_caps;
/* The caps of a backend by name ("cpu", "cuda"); NULL for others. */
const struct llm_backend_caps *llm_backend_caps_of(const char *name);

/* 0 when the backend runs this model, else LLM_EUNSUPPORTED with one line:
 * "'PATH': the cuda backend cannot run this gpt2 model: it needs learned
 * position embeddings".  m may be an in-memory model (path NULL). */
int llm_model_supported(const struct llm_model *m, const struct llm_backend_caps *caps);
/* The same for a bare description and quantization section (q may be NULL). */
int llm_desc_supported(const struct llm_model_desc *d, const struct llm_quant *q,
                       const struct llm_backend_caps *caps, const char *what);

#ifdef __cplusplus
}
#endif
#endif
