/* caps.c - what each backend runs, stated without a device (llm/model.h).
 *
 * A backend lists a feature only when every step the model definition
 * derives for it has an op here that follows Hugging Face's semantics and
 * is tested against the CPU reference; llm_model_supported refuses the rest
 * with the feature's name.  The CUDA table is here (not in lib/backend/cuda)
 * so that llm-build and llm-bench can check a model on a machine without a
 * GPU or a build without CUDA.
 */
#include "llm/model.h"

#define F(x) LLM_FEAT_BIT(LLM_FEAT_##x)

/* Features both backends run today. */
#define COMMON_FEATURES                                                                            \
    (F(LAYERNORM) | F(BIASES) | F(PLAIN_MLP) | F(ROPE_INTERLEAVED) | F(PARTIAL_ROTARY) |           \
     F(LEARNED_POS) | F(ALIBI) | F(NO_POS) | F(PARALLEL_RESIDUAL) | F(EMBED_SCALE) |               \
     F(SLIDING_WINDOW) | F(ATTN_SOFTCAP) | F(LM_HEAD_BIAS))

const struct llm_backend_caps llm_cpu_caps = {
    .name = "cpu",
    .features = COMMON_FEATURES | F(POS_OFFSET) | F(NORM_OFFSET) | F(QK_NORM) | F(CLIP_QKV) |
                F(EMBED_NORM) | F(EMBED_PROJ) | F(NORM_AFTER) | F(SANDWICH_NORM) |
                F(NO_FINAL_NORM) | F(FINAL_SOFTCAP) | F(MOE) | F(W_FP8) | F(W_INT8) | F(W_INT4) |
                F(KV_QUANT) | F(ACT_INT8) | F(EXPERT_PARALLEL) | F(W_PERM) | F(MOE_QUANT) |
                F(LOCAL_ROPE) | F(NOPE_LAYERS) | F(LOGIT_SCALE) | F(RESIDUAL_SCALE) |
                F(QK_NORM_ALL) | F(NO_INPUT_NORM) | F(ACT_RELU2) | F(SHARED_EXPERT) |
                F(ATTN_SINKS) | F(ACT_SWIGLU_OAI) | F(MOE_BIAS) | F(MLA) |
                F(MOE_GROUPS) | F(DENSE_FIRST) | F(ATTN_QSCALE) | F(ACT_FP8_W4),
    .dim_multiple = 1,
    .max_head_dim = 1024,
    .max_hidden = 1 << 20,
};

const struct llm_backend_caps llm_cuda_caps = {
    .name = "cuda",
    .features = COMMON_FEATURES | F(POS_OFFSET) | F(NORM_OFFSET) | F(QK_NORM) | F(CLIP_QKV) |
                F(EMBED_NORM) | F(EMBED_PROJ) | F(NORM_AFTER) | F(SANDWICH_NORM) |
                F(NO_FINAL_NORM) | F(FINAL_SOFTCAP) | F(MOE) | F(W_FP8) | F(W_INT8) | F(W_INT4) |
                F(ACT_INT8) | F(KV_QUANT) | F(LOCAL_ROPE) | F(NOPE_LAYERS) | F(LOGIT_SCALE) |
                F(RESIDUAL_SCALE) | F(QK_NORM_ALL) | F(NO_INPUT_NORM) | F(W_PERM) | F(MOE_QUANT) |
                F(ACT_FP8_W4),
    .dim_multiple = 8,
    .max_head_dim = 1024,
    .max_hidden = 32768,
};
