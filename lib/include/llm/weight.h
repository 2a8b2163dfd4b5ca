/* weight.h - a model's weights, bound once for every backend.
 *
 * A weight handle is one linear layer's (or norm's, or embedding's) weight
 * together with its storage format, so that a single linear op can
 * dispatch on it:
 *   dense   f32 / f16 / bf16, [out][in] row-major;
 *   fp8     e4m3 [out][in], weights_scaling_factor per tensor ([] or [1])
 *           or per output channel ([out]); optional activation_scaling_factor;
 *   int8    [out][in], per_channel_scale [out]; optional act_scale (static
 *           per-tensor activations) and smoother [in] (SmoothQuant, when
 *           not folded into the preceding norm);
 *   int4    packed two per byte (llm_dtype I4) [out][in],
 *           weights_scaling_factor [in / group][out], optional zero
 *           [in / group][out] and prequant_scaling_factor [in] (AWQ).
 * An int4 or int8 weight may carry perm (int32 [in], a permutation of the
 * inputs; GPTQ act-order): y = W . x[perm], the other per-input tensors
 * (prequant, smoother) indexed like W's columns.  Only with the
 * quantization section's act_order, which backends check as a feature.
 * Scale tensors sit next to the weight under TensorRT-LLM's names
 * ("<stem>.weights_scaling_factor", ...), formats/artifact.md.  The format
 * follows from the weight's stored dtype; the scales it needs must be there.
 *
 * Binding (llm_weights_bind) looks every slot of the description up once,
 * checks shapes, dtypes and sizes, and yields handles that point into the
 * model's tensors (zero copy).  An engine's fused mlp.fc_gate is bound as
 * two row views, fc and gate, so a backend sees the same slots either way.
 * The CPU backend computes from the handles in place; the CUDA backend
 * uploads them.  A synthetic model's handles (llm_model_random) have data
 * NULL unless it was asked for on the host; the CUDA backend then makes
 * the values on the device by name.  The CPU backend runs every format;
 * the CUDA backend runs dense weights, the weight-only int8 / int4 formats
 * (with AWQ's pre-quant scale) and the 8-bit activation formats (fp8,
 * int8 SmoothQuant), kept quantized on the device (llm_model_supported
 * says so for what it does not run).
 */
#ifndef LLM_WEIGHT_H
#define LLM_WEIGHT_H

#include <stdint.h>

#include "model.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

enum llm_wfmt { LLM_WFMT_DENSE = 0, LLM_WFMT_FP8, LLM_WFMT_INT8, LLM_WFMT_INT4, LLM_WFMT_COUNT };
const char *llm_wfmt_name(int fmt); /* "dense", "fp8", "int8", "int4" */

/* How a quantized weight's scale applies. */
enum llm_wscale {
    LLM_WSCALE_NONE = 0, /* dense */
    LLM_WSCALE_TENSOR,   /* one scale */
    LLM_WSCALE_CHANNEL,  /* one per output row */
    LLM_WSCALE_GROUP,    /* one per (input group, output row) */
};

/* Tensor names of the quantization side tensors (suffixes of the stem). */
#define LLM_WQ_SCALE "weights_scaling_factor"
#define LLM_WQ_CHANNEL_SCALE "per_channel_scale"
#define LLM_WQ_ACT_SCALE "activation_scaling_factor"
#define LLM_WQ_SQ_ACT_SCALE "act_scale"
#define LLM_WQ_SMOOTHER "smoother"
#define LLM_WQ_ZERO "zero"
#define LLM_WQ_PREQUANT "prequant_scaling_factor"
#define LLM_WQ_KV_SCALE "kv_cache_scaling_factor"
#define LLM_WQ_PERM "perm" /* int32 [in]: y = W . x[perm] (GPTQ act-order) */

/* What happens to a quantized weight's input activations (from the
 * artifact's quantization section): nothing (weight-only formats), or
 * rounding to fp8 / int8 under a scale - the static act_scale when the
 * weight has one, else each row's own (dynamic per token). */
enum llm_wact { LLM_WACT_NONE = 0, LLM_WACT_FP8, LLM_WACT_INT8 };

struct llm_weight {
    int present;                 /* 0: the model has no such slot */
    char name[LLM_NAME_MAX];     /* canonical name of the weight tensor */
    int fmt;                     /* enum llm_wfmt */
    int dtype;                   /* stored element type of data */
    int ndim;                    /* 1 (norms), 2 ([out][in]), 3 ([experts][out][in]) */
    int64_t shape[3];            /* logical shape, unpacked */
    const void *data;
    uint64_t nbytes;
    /* quantization (fmt != dense); absent side tensors have data == NULL */
    int scale_kind;              /* enum llm_wscale */
    int act;                     /* enum llm_wact */
    int group_size;              /* LLM_WSCALE_GROUP */
    struct llm_tensor scale;     /* weights_scaling_factor or per_channel_scale */
    struct llm_tensor zero;
    struct llm_tensor prequant;
    struct llm_tensor act_scale;
    struct llm_tensor smoother;
    struct llm_tensor perm;      /* int32 [in], a permutation: the weight's column j reads
                                    input perm[j] (checked when bound) */
    /* bias (has_bias; bias is NULL while a synthetic model's values are not
     * on the host: llm_model_random) */
    int has_bias;
    char bias_name[LLM_NAME_MAX];
    const void *bias;
    int bias_dtype;
};

struct llm_weights {
    int n_layers;
    struct llm_weight global[LLM_W_FIRST_LAYER];
    struct llm_weight (*layer)[LLM_W_COUNT]; /* [n_layers][LLM_W_COUNT]; per-layer slots */
    int fused_mlp_in;  /* fc and gate are halves of one tensor (an engine's mlp.fc_gate) */
};

/* Bind every slot the description has.  Errors name the model's file and
 * the tensor: missing, wrong shape (expected vs found), a dtype no format
 * takes, too few bytes, a quantized weight without its scales. */
int llm_weights_bind(struct llm_weights *w, struct llm_model *m);
void llm_weights_free(struct llm_weights *w);
/* The handle of (slot, layer); layer ignored for global slots.  Never NULL:
 * a slot the model lacks has present == 0. */
const struct llm_weight *llm_weights_get(const struct llm_weights *w, int slot, int layer);
/* Expert e of an expert stack [experts][out][in] as a 2-D weight [out][in]:
 * its codes, bias and side tensors (scales, zero points, pre-quant scales,
 * activation scales, smoothers: each [experts][...]) narrowed to expert e.
 * Named "<name>#<e>" (calibration keeps each expert's statistics apart).
 * A synthetic model's handle (data NULL) stays without data. */
struct llm_weight llm_weight_expert(const struct llm_weight *w, int e);

#ifdef __cplusplus
}
#endif
#endif
