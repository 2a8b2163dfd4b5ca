/* features.c - what a description needs of a backend, and the one check
 * every backend, llm-build and llm-bench make before running a model.
 *
 * Design: a backend states the features it runs as bits (lib/backend/caps.c)
 * without a device, so the check works anywhere (llm-build on a machine
 * with no GPU).  The first feature the model needs and the backend lacks is
 * named in a one-line error; nothing is ever run through a different
 * computation.  Weight formats come from the quantization section, so an
 * fp8 artifact is refused by a backend without fp8 products the same way.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "llm/err.h"
#include "llm/model.h"

static const char *const feature_names[] = {
    "LayerNorm",
    "norm weights offset by one (1 + w)",
    "biases",
    "an MLP without a gate",
    "rotary embedding on interleaved pairs",
    "rotary embedding on part of each head",
    "learned position embeddings",
    "learned positions read at an offset",
    "ALiBi attention biases",
    "no position encoding",
    "parallel attention and MLP",
    "post-LN blocks (norm after the residual add)",
    "norms on the attention and MLP outputs",
    "per-head q/k norms",
    "clamping of q, k and v",
    "a norm after the embeddings",
    "embedding projections (project_in/project_out)",
    "no final norm",
    "scaled embeddings",
    "sliding-window attention",
    "a soft cap on attention scores",
    "a soft cap on the logits",
    "an lm_head bias",
    "mixture of experts",
    "fp8 weights",
    "int8 weights",
    "int4 weights",
    "a quantized KV cache",
    "int8 activations (W8A8)",
    "experts split across ranks by expert (llm-shard --ep)",
    "weights on permuted inputs (GPTQ act-order)",
    "quantized experts",
    "a second rotary base on the sliding layers",
    "layers without rotary embedding among rotary ones",
    "scaled logits",
    "scaled residual branches",
    "q/k norms over all heads at once",
    "sub-blocks without an input norm",
    "a squared-ReLU activation (relu2)",
    "a shared expert beside the routed ones",
    "attention sinks (a learned logit per head)",
    "the clamped SwiGLU of GPT-OSS (swiglu_oai)",
    "biases on the router or the experts",
    "multi-head latent attention (MLA)",
    "grouped sigmoid expert routing",
    "dense MLPs before the expert layers",
    "position-dependent query scaling (llama_4_scaling_beta)",
    "fp8 activations into int4 weights (W4A8)",
};
_Static_assert(sizeof(feature_names) / sizeof(feature_names[0]) == LLM_FEAT_COUNT,
               "feature_names");

const char *llm_feature_name(int f)
{
    return f >= 0 && f < LLM_FEAT_COUNT ? feature_names[f] : "?";
}

llm_features llm_desc_features(const struct llm_model_desc *d)
{
    llm_features f = 0;
#define ON(c, bit)                                                                                 \
    do {                                                                                           \
        if (c) f |= LLM_FEAT_BIT(bit);                                                             \
    } while (0)
    ON(d->norm == LLM_NORM_LAYER || d->qk_norm == LLM_QK_NORM_LAYER, LLM_FEAT_LAYERNORM);
    ON(d->norm_offset != 0.0, LLM_FEAT_NORM_OFFSET);
    ON(d->qkv_bias || d->o_bias || d->mlp_bias || d->norm_bias, LLM_FEAT_BIASES);
    ON(!d->gated_mlp, LLM_FEAT_PLAIN_MLP);
    ON(d->pos == LLM_POS_ROPE && !d->rope.neox, LLM_FEAT_ROPE_INTERLEAVED);
    ON(d->pos == LLM_POS_ROPE && d->rope.rot_dims > 0 && d->rope.rot_dims < d->head_dim,
       LLM_FEAT_PARTIAL_ROTARY);
    ON(d->pos == LLM_POS_LEARNED, LLM_FEAT_LEARNED_POS);
    ON(d->pos_offset > 0, LLM_FEAT_POS_OFFSET);
    ON(d->pos == LLM_POS_ALIBI, LLM_FEAT_ALIBI);
    ON(d->pos == LLM_POS_NONE, LLM_FEAT_NO_POS);
    ON(d->parallel_residual, LLM_FEAT_PARALLEL_RESIDUAL);
    ON(d->norm_after, LLM_FEAT_NORM_AFTER);
    ON(d->sandwich_norm, LLM_FEAT_SANDWICH_NORM);
    ON(d->qk_norm != LLM_QK_NORM_NONE, LLM_FEAT_QK_NORM);
    ON(d->qk_norm == LLM_QK_NORM_RMS_ALL, LLM_FEAT_QK_NORM_ALL);
    ON(d->no_input_norm, LLM_FEAT_NO_INPUT_NORM);
    ON(d->act == LLM_ACT_RELU2, LLM_FEAT_ACT_RELU2);
    ON(d->shared_expert_inter > 0, LLM_FEAT_SHARED_EXPERT);
    ON(d->attn_sinks, LLM_FEAT_ATTN_SINKS);
    ON(d->act == LLM_ACT_SWIGLU_OAI, LLM_FEAT_ACT_SWIGLU_OAI);
    ON(d->n_experts > 0 && (d->router_bias || d->mlp_bias), LLM_FEAT_MOE_BIAS);
    ON(d->kv_lora_rank > 0, LLM_FEAT_MLA);
    ON(d->moe_router != LLM_ROUTER_SOFTMAX || (d->moe_scale > 0 && d->moe_scale != 1),
       LLM_FEAT_MOE_GROUPS);
    ON(d->moe_first_layer > 0, LLM_FEAT_DENSE_FIRST);
    ON(d->attn_qscale_beta > 0, LLM_FEAT_ATTN_QSCALE);
    ON(d->clip_qkv > 0.0, LLM_FEAT_CLIP_QKV);
    ON(d->embed_norm, LLM_FEAT_EMBED_NORM);
    ON(d->embed_dim > 0 && d->embed_dim != d->hidden, LLM_FEAT_EMBED_PROJ);
    ON(!d->final_norm, LLM_FEAT_NO_FINAL_NORM);
    ON(d->embed_scale > 0.0 && d->embed_scale != 1.0, LLM_FEAT_EMBED_SCALE);
    ON(d->sliding_window > 0, LLM_FEAT_SLIDING_WINDOW);
    ON(d->attn_softcap > 0.0, LLM_FEAT_ATTN_SOFTCAP);
    ON(d->final_softcap > 0.0, LLM_FEAT_FINAL_SOFTCAP);
    ON(d->lm_head_bias, LLM_FEAT_LM_HEAD_BIAS);
    ON(d->n_experts > 0, LLM_FEAT_MOE);
    ON(d->part.ep > 1, LLM_FEAT_EXPERT_PARALLEL);
    ON(d->pos == LLM_POS_ROPE && d->rope_local_theta > 0.0, LLM_FEAT_LOCAL_ROPE);
    int nope = 0;
    for (int i = 0; i < d->n_layers && i < LLM_MAX_LAYERS; i++)
        nope |= d->layer_no_rope[i];
    ON(d->pos == LLM_POS_ROPE && nope, LLM_FEAT_NOPE_LAYERS);
    ON(d->logit_scale > 0.0 && d->logit_scale != 1.0, LLM_FEAT_LOGIT_SCALE);
    ON(d->residual_scale > 0.0 && d->residual_scale != 1.0, LLM_FEAT_RESIDUAL_SCALE);
#undef ON
    return f;
}

const struct llm_backend_caps *llm_backend_caps_of(const char *name)
{
    if (!name) return NULL;
    if (!strcmp(name, "cpu")) return &llm_cpu_caps;
    if (!strcmp(name, "cuda")) return &llm_cuda_caps;
    return NULL;
}

int llm_desc_supported(const struct llm_model_desc *d, const struct llm_quant *q,
                       const struct llm_backend_caps *caps, const char *what)
{
    char pre[600];
    const char *model = llm_arch_name(d->arch);
    if (what && *what)
        snprintf(pre, sizeof pre, "'%s': the %s backend cannot run this %s model", what,
                 caps->name, model);
    else
        snprintf(pre, sizeof pre, "the %s backend cannot run this %s model", caps->name, model);
    llm_features need = llm_desc_features(d) | (q ? llm_quant_features(q) : 0);
    if (d->n_experts > 0 && q && q->algo != LLM_QUANT_NONE) need |= LLM_FEAT_BIT(LLM_FEAT_MOE_QUANT);
    llm_features lack = need & ~caps->features;
    /* where another backend runs it, say so (the choice stays the user's) */
    const char *alt = caps != &llm_cpu_caps && !(need & ~llm_cpu_caps.features)
                          ? " (the cpu backend runs it: --device cpu)"
                          : "";
    for (int f = 0; f < LLM_FEAT_COUNT; f++)
        if (lack & LLM_FEAT_BIT(f))
            return llm_err_set(LLM_EUNSUPPORTED, "%s: it needs %s%s", pre, llm_feature_name(f),
                               alt);
    int m = caps->dim_multiple > 1 ? caps->dim_multiple : 1;
    int64_t ed = d->embed_dim > 0 ? d->embed_dim : d->hidden;
    if (d->hidden % m || d->head_dim % m || d->intermediate % m || ed % m)
        return llm_err_set(LLM_EUNSUPPORTED,
                           "%s: hidden %lld, head_dim %d and intermediate %lld must be "
                           "multiples of %d",
                           pre, (long long)d->hidden, d->head_dim, (long long)d->intermediate, m);
    if (caps->max_head_dim > 0 && d->head_dim > caps->max_head_dim)
        return llm_err_set(LLM_EUNSUPPORTED, "%s: head_dim %d is above its limit of %d", pre,
                           d->head_dim, caps->max_head_dim);
    if (caps->max_hidden > 0 && d->hidden > caps->max_hidden)
        return llm_err_set(LLM_EUNSUPPORTED, "%s: hidden %lld is above its limit of %lld", pre,
                           (long long)d->hidden, (long long)caps->max_hidden);
    return 0;
}

int llm_model_supported(const struct llm_model *m, const struct llm_backend_caps *caps)
{
    if (!m || !caps) return llm_err_set(LLM_EINVAL, "no model or backend to check");
    return llm_desc_supported(&m->desc, &m->quant, caps, m->path);
}
