/* desc.c - the model description: defaults, name tables, JSON form,
 * validation, and the features a description uses.
 *
 * JSON form: every field is written; fields of format 1.0 are required when
 * read back, so a round trip is exact (doubles are written with 17
 * significant digits), and fields added since are optional, their absence
 * meaning what a 1.0 reader did (so older artifacts keep loading).  Unknown
 * members are ignored so that later minor versions can add fields.  The
 * sliding-window layers are written as the list of layer indices that use
 * the window.  Canonical tensor names and shapes live in names.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "llm/model.h"
#include "../core/text_internal.h"

/* ---- name tables ---------------------------------------------------------- */

static const char *const arch_names[] = {
#define LLM_ARCH_ENTRY(id, name) #name,
#include "llm/arch_list.h"
#undef LLM_ARCH_ENTRY
};
_Static_assert(sizeof(arch_names) / sizeof(arch_names[0]) == LLM_ARCH_COUNT, "arch_names");

static const char *const norm_names[] = {"rmsnorm", "layernorm"};
_Static_assert(sizeof(norm_names) / sizeof(norm_names[0]) == LLM_NORM_COUNT, "norm_names");

static const char *const act_names[] = {"silu", "gelu", "gelu_tanh", "relu", "relu2", "swiglu_oai"};
_Static_assert(sizeof(act_names) / sizeof(act_names[0]) == LLM_ACT_COUNT, "act_names");

static const char *const pos_names[] = {"rope", "alibi", "learned", "none"};
_Static_assert(sizeof(pos_names) / sizeof(pos_names[0]) == LLM_POS_COUNT, "pos_names");

static const char *const qk_norm_names[] = {"none", "rmsnorm", "layernorm", "rmsnorm_all_heads"};
_Static_assert(sizeof(qk_norm_names) / sizeof(qk_norm_names[0]) == LLM_QK_NORM_COUNT,
               "qk_norm_names");

static const char *const router_names[] = {"softmax", "sigmoid_groups", "softmax_groups"};
_Static_assert(sizeof(router_names) / sizeof(router_names[0]) == LLM_ROUTER_COUNT,
               "router_names");

static const char *const scaling_names[] = {"none", "linear", "dynamic",
                                            "yarn", "llama3", "longrope"};
_Static_assert(sizeof(scaling_names) / sizeof(scaling_names[0]) == LLM_ROPE_SCALING_COUNT,
               "scaling_names");

static const char *table_name(const char *const *t, int n, int v)
{
    return v >= 0 && v < n ? t[v] : "?";
}

static int table_find(const char *const *t, int n, const char *s)
{
    if (!s) return LLM_EINVAL;
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i], s)) return i;
    return LLM_EINVAL;
}

const char *llm_arch_name(int arch)
{
    return table_name(arch_names, LLM_ARCH_COUNT, arch);
}

int llm_arch_from_name(const char *name)
{
    return table_find(arch_names, LLM_ARCH_COUNT, name);
}

const char *llm_act_name(int act)
{
    return table_name(act_names, LLM_ACT_COUNT, act);
}

const char *llm_norm_name(int norm)
{
    return table_name(norm_names, LLM_NORM_COUNT, norm);
}

const char *llm_pos_name(int pos)
{
    return table_name(pos_names, LLM_POS_COUNT, pos);
}

const char *llm_rope_scaling_name(int s)
{
    return table_name(scaling_names, LLM_ROPE_SCALING_COUNT, s);
}

const char *llm_qk_norm_name(int k)
{
    return table_name(qk_norm_names, LLM_QK_NORM_COUNT, k);
}

/* ---- init / free ----------------------------------------------------------- */

void llm_desc_init(struct llm_model_desc *d)
{
    memset(d, 0, sizeof(*d));
    d->arch = LLM_ARCH_LLAMA;
    d->dtype = LLM_DTYPE_F32;
    d->norm = LLM_NORM_RMS;
    d->norm_eps = 1e-5;
    d->act = LLM_ACT_SILU;
    d->gated_mlp = 1;
    d->swiglu_alpha = 1.702;
    d->swiglu_limit = 7.0;
    d->pos = LLM_POS_ROPE;
    d->alibi_max_bias = 8.0;
    d->final_norm = 1;
    d->rope.theta = 10000.0;
    d->rope.neox = 1;
    d->rope.scaling = LLM_ROPE_SCALING_NONE;
    d->rope.beta_fast = 32.0;
    d->rope.beta_slow = 1.0;
    d->bos_id = -1;
    d->pad_id = -1;
}

void llm_desc_free(struct llm_model_desc *d)
{
    if (!d) return;
    free(d->rope.long_factor);
    free(d->rope.short_factor);
    d->rope.long_factor = d->rope.short_factor = NULL;
    d->rope.n_factors = 0;
}

int llm_desc_copy(struct llm_model_desc *dst, const struct llm_model_desc *src)
{
    *dst = *src;
    dst->rope.long_factor = dst->rope.short_factor = NULL;
    int n = src->rope.n_factors;
    if (n > 0 && src->rope.long_factor && src->rope.short_factor) {
        dst->rope.long_factor = malloc(sizeof(float) * (size_t)n);
        dst->rope.short_factor = malloc(sizeof(float) * (size_t)n);
        if (!dst->rope.long_factor || !dst->rope.short_factor) {
            llm_desc_free(dst);
            return llm_err_set(LLM_ENOMEM, "out of memory");
        }
        memcpy(dst->rope.long_factor, src->rope.long_factor, sizeof(float) * (size_t)n);
        memcpy(dst->rope.short_factor, src->rope.short_factor, sizeof(float) * (size_t)n);
    } else {
        dst->rope.n_factors = 0;
    }
    return 0;
}

void llm_gen_defaults_init(struct llm_gen_defaults *g)
{
    memset(g, 0, sizeof(*g));
    g->temperature = 1.0;
    g->top_k = 0;
    g->top_p = 1.0;
    g->min_p = 0.0;
    g->repetition_penalty = 1.0;
    g->do_sample = 0;
    g->max_new_tokens = 0;
}

/* ---- derived values ---------------------------------------------------------- */

double llm_desc_attn_scale(const struct llm_model_desc *d)
{
    return d->attn_scale > 0.0 ? d->attn_scale : 1.0 / sqrt((double)d->head_dim);
}

/* BLOOM's build_alibi_tensor: for the closest power of two n <= heads,
 * slope i = base^(i+1) with base = 2^(-max_bias/n); the remaining heads
 * take every other slope of the 2n rule. */
void llm_alibi_slopes(float *slopes, int nh, double mb)
{
    int n = 1;
    while (n * 2 <= nh) n *= 2;
    double base = pow(2.0, -mb / n);
    for (int i = 0; i < n; i++) slopes[i] = (float)pow(base, i + 1);
    if (n < nh) {
        double extra = pow(2.0, -mb / (2 * n));
        for (int i = 0; i < nh - n; i++) slopes[n + i] = (float)pow(extra, 2 * i + 1);
    }
}

void llm_desc_alibi_slopes(const struct llm_model_desc *d, float *slopes)
{
    int nh = d->n_heads;
    if (d->part.heads_total > nh) { /* a rank's heads: their slopes among all the heads */
        float all[1 << 12];
        int n = d->part.heads_total < (1 << 12) ? d->part.heads_total : (1 << 12);
        llm_alibi_slopes(all, n, d->alibi_max_bias > 0 ? d->alibi_max_bias : 8.0);
        for (int i = 0; i < nh; i++)
            slopes[i] = d->part.head_offset + i < n ? all[d->part.head_offset + i] : 0.f;
    } else {
        llm_alibi_slopes(slopes, nh, d->alibi_max_bias > 0 ? d->alibi_max_bias : 8.0);
    }
    if (d->alibi_scaled) {
        double sc = llm_desc_attn_scale(d);
        for (int i = 0; i < nh; i++) slopes[i] = (float)(slopes[i] * sc);
    }
}

/* ---- validation -------------------------------------------------------------- */

#define BAD(field, ...) llm_err_set(LLM_EFORMAT, "model field '" field "': " __VA_ARGS__)

static int is_bool(int v)
{
    return v == 0 || v == 1;
}

static int finite_ge0(double v)
{
    return isfinite(v) && v >= 0;
}

static int validate_rope(const struct llm_model_desc *d)
{
    const struct llm_rope *r = &d->rope;
    if (r->scaling < 0 || r->scaling >= LLM_ROPE_SCALING_COUNT)
        return BAD("rope.scaling", "unknown value %d", r->scaling);
    if (!isfinite(r->theta) || r->theta <= 0)
        return BAD("rope.theta", "must be a positive number, found %g", r->theta);
    if (!is_bool(r->neox)) return BAD("rope.neox", "must be 0 or 1, found %d", r->neox);
    if (!isfinite(r->factor) || r->factor < 0)
        return BAD("rope.factor", "must be a non-negative number, found %g", r->factor);
    if (r->orig_max_pos < 0)
        return BAD("rope.orig_max_pos", "must not be negative, found %d", r->orig_max_pos);
    if (!finite_ge0(r->low_freq_factor) || !finite_ge0(r->high_freq_factor))
        return BAD("rope.low_freq_factor", "low/high_freq_factor must be non-negative numbers");
    if (!isfinite(r->beta_fast) || !isfinite(r->beta_slow))
        return BAD("rope.beta_fast", "beta_fast/beta_slow must be finite");
    if (!finite_ge0(r->attn_factor))
        return BAD("rope.attn_factor", "must be a non-negative number, found %g", r->attn_factor);
    if (!finite_ge0(r->mscale) || !finite_ge0(r->mscale_all_dim))
        return BAD("rope.mscale", "mscale/mscale_all_dim must be non-negative numbers");
    if (!is_bool(r->yarn_no_truncate) ||
        (r->yarn_no_truncate && r->scaling != LLM_ROPE_SCALING_YARN))
        return BAD("rope.yarn_truncate", "false only with yarn scaling");
    if (d->pos != LLM_POS_ROPE) {
        if (r->rot_dims != 0 || r->scaling != LLM_ROPE_SCALING_NONE || r->n_factors)
            return BAD("rope", "set although the position encoding is %s", llm_pos_name(d->pos));
        return 0;
    }
    if (r->rot_dims < 2 || r->rot_dims > d->head_dim || r->rot_dims % 2)
        return BAD("rope.rot_dims", "must be even and within 2..head_dim (%d), found %d",
                   d->head_dim, r->rot_dims);
    if (r->scaling != LLM_ROPE_SCALING_NONE && r->factor <= 0)
        return BAD("rope.factor", "%s scaling needs a positive factor",
                   llm_rope_scaling_name(r->scaling));
    if (r->scaling == LLM_ROPE_SCALING_LLAMA3) {
        if (r->orig_max_pos <= 0)
            return BAD("rope.orig_max_pos", "llama3 scaling needs the original context length");
        if (r->low_freq_factor <= 0 || r->high_freq_factor <= r->low_freq_factor)
            return BAD("rope.high_freq_factor",
                       "llama3 scaling needs 0 < low_freq_factor (%g) < "
                       "high_freq_factor (%g)",
                       r->low_freq_factor, r->high_freq_factor);
    }
    if ((r->scaling == LLM_ROPE_SCALING_YARN || r->scaling == LLM_ROPE_SCALING_LONGROPE ||
         r->scaling == LLM_ROPE_SCALING_DYNAMIC) &&
        r->orig_max_pos <= 0)
        return BAD("rope.orig_max_pos", "%s scaling needs the original context length",
                   llm_rope_scaling_name(r->scaling));
    if (r->scaling == LLM_ROPE_SCALING_LONGROPE) {
        if (r->n_factors != r->rot_dims / 2 || !r->long_factor || !r->short_factor)
            return BAD("rope.long_factor", "longrope needs rot_dims/2 = %d factors each, found %d",
                       r->rot_dims / 2, r->n_factors);
        for (int i = 0; i < r->n_factors; i++)
            if (!isfinite(r->long_factor[i]) || r->long_factor[i] <= 0 ||
                !isfinite(r->short_factor[i]) || r->short_factor[i] <= 0)
                return BAD("rope.long_factor", "factor %d is not a positive number", i);
    } else if (r->n_factors) {
        return BAD("rope.long_factor", "only longrope scaling has factor lists");
    }
    return 0;
}

int llm_desc_validate(const struct llm_model_desc *d)
{
    if (!d) return llm_err_set(LLM_EINVAL, "no model description");
    if (d->arch < 0 || d->arch >= LLM_ARCH_COUNT) return BAD("arch", "unknown value %d", d->arch);
    if (!memchr(d->hf_arch, 0, sizeof(d->hf_arch))) return BAD("hf_arch", "not terminated");
    if (!memchr(d->model_type, 0, sizeof(d->model_type)))
        return BAD("model_type", "not terminated");
    if (d->dtype < 0 || d->dtype >= LLM_DTYPE_COUNT)
        return BAD("dtype", "unknown value %d", d->dtype);
    if (d->vocab_size < 1 || d->vocab_size > INT32_MAX)
        return BAD("vocab_size", "must be within 1..%d, found %lld", INT32_MAX,
                   (long long)d->vocab_size);
    if (d->hidden < 1 || d->hidden > (1 << 20))
        return BAD("hidden", "must be within 1..%d, found %lld", 1 << 20, (long long)d->hidden);
    if (d->n_layers < 1 || d->n_layers > LLM_MAX_LAYERS)
        return BAD("n_layers", "must be within 1..%d, found %d", LLM_MAX_LAYERS, d->n_layers);
    if (d->n_heads < 1 || d->n_heads > (1 << 16))
        return BAD("n_heads", "must be within 1..%d, found %d", 1 << 16, d->n_heads);
    if (d->n_kv_heads < 1 || d->n_kv_heads > d->n_heads || d->n_heads % d->n_kv_heads)
        return BAD("n_kv_heads", "must divide n_heads (%d), found %d", d->n_heads, d->n_kv_heads);
    if (d->head_dim < 1 || d->head_dim > (1 << 16))
        return BAD("head_dim", "must be within 1..%d, found %d", 1 << 16, d->head_dim);
    if (d->intermediate < 1 || d->intermediate > (1 << 22))
        return BAD("intermediate", "must be within 1..%d, found %lld", 1 << 22,
                   (long long)d->intermediate);
    if (d->max_pos < 1 || d->max_pos > INT32_MAX)
        return BAD("max_pos", "must be within 1..%d, found %lld", INT32_MAX, (long long)d->max_pos);
    if (d->embed_dim < 0 || d->embed_dim > (1 << 20))
        return BAD("embed_dim", "must be within 0..%d (0: hidden), found %lld", 1 << 20,
                   (long long)d->embed_dim);
    if (d->norm < 0 || d->norm >= LLM_NORM_COUNT) return BAD("norm", "unknown value %d", d->norm);
    if (!isfinite(d->norm_eps) || d->norm_eps <= 0 || d->norm_eps >= 1)
        return BAD("norm_eps", "must be within (0, 1), found %g", d->norm_eps);
    if (!isfinite(d->norm_offset) || (d->norm_offset != 0 && d->norm_offset != 1))
        return BAD("norm_offset", "must be 0 or 1, found %g", d->norm_offset);
    if (d->act < 0 || d->act >= LLM_ACT_COUNT) return BAD("act", "unknown value %d", d->act);
    if (d->act == LLM_ACT_SWIGLU_OAI &&
        (!d->gated_mlp || !isfinite(d->swiglu_alpha) || !(d->swiglu_alpha > 0) ||
         !isfinite(d->swiglu_limit) || !(d->swiglu_limit > 0)))
        return BAD("act",
                   "swiglu_oai needs a gated MLP and positive swiglu_alpha and "
                   "swiglu_limit, found %g and %g",
                   d->swiglu_alpha, d->swiglu_limit);
    if (d->pos < 0 || d->pos >= LLM_POS_COUNT) return BAD("pos", "unknown value %d", d->pos);
    if (d->pos_offset < 0 || d->pos_offset > 1024 || (d->pos_offset && d->pos != LLM_POS_LEARNED))
        return BAD("pos_offset", "must be 0..1024 and only with learned positions, found %d",
                   d->pos_offset);
    if (!isfinite(d->alibi_max_bias) || d->alibi_max_bias <= 0 || d->alibi_max_bias > 1e6)
        return BAD("alibi_max_bias", "must be a positive number, found %g", d->alibi_max_bias);
    if (d->qk_norm < 0 || d->qk_norm >= LLM_QK_NORM_COUNT)
        return BAD("qk_norm", "unknown value %d", d->qk_norm);
    if (!finite_ge0(d->clip_qkv)) return BAD("clip_qkv", "must be a non-negative number");
    int rc = validate_rope(d);
    if (rc) return rc;

    const struct {
        const char *name;
        int v;
    } flags[] = {
        {"gated_mlp", d->gated_mlp},
        {"parallel_residual", d->parallel_residual},
        {"shared_input_norm", d->shared_input_norm},
        {"tied_embeddings", d->tied_embeddings},
        {"qkv_bias", d->qkv_bias},
        {"o_bias", d->o_bias},
        {"mlp_bias", d->mlp_bias},
        {"norm_bias", d->norm_bias},
        {"lm_head_bias", d->lm_head_bias},
        {"norm_after", d->norm_after},
        {"sandwich_norm", d->sandwich_norm},
        {"no_input_norm", d->no_input_norm},
        {"embed_norm", d->embed_norm},
        {"alibi_scaled", d->alibi_scaled},
        {"final_norm", d->final_norm},
        {"moe_norm_topk", d->moe_norm_topk},
        {"shared_expert_gate", d->shared_expert_gate},
        {"attn_sinks", d->attn_sinks},
        {"router_bias", d->router_bias},
        {"moe_corr_bias", d->moe_corr_bias},
    };
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (!is_bool(flags[i].v))
            return llm_err_set(LLM_EFORMAT, "model field '%s': must be 0 or 1, found %d",
                               flags[i].name, flags[i].v);
    if (d->shared_input_norm && !d->parallel_residual)
        return BAD("shared_input_norm", "set without parallel_residual");
    if (d->norm_bias && d->norm != LLM_NORM_LAYER)
        return BAD("norm_bias", "only LayerNorm has a bias");
    if (d->norm_after && (d->parallel_residual || d->sandwich_norm))
        return BAD("norm_after", "post-LN blocks are sequential and have no sandwich norms");
    if (d->sandwich_norm && d->parallel_residual)
        return BAD("sandwich_norm", "set with parallel_residual");
    if (d->no_input_norm && !d->sandwich_norm)
        return BAD("no_input_norm", "set without sandwich_norm (a block with no norm at all)");

    if (d->sliding_window < 0)
        return BAD("sliding_window", "must not be negative, found %d", d->sliding_window);
    for (int i = 0; i < LLM_MAX_LAYERS; i++) {
        if (!is_bool(d->layer_window[i]))
            return BAD("window_layers", "layer %d flag is %d", i, d->layer_window[i]);
        if (d->layer_window[i] && (i >= d->n_layers || d->sliding_window == 0))
            return BAD("window_layers", "layer %d uses a window but %s", i,
                       i >= d->n_layers ? "there is no such layer" : "sliding_window is 0");
    }
    if (!finite_ge0(d->rope_local_theta))
        return BAD("rope_local_theta", "must be a non-negative number, found %g",
                   d->rope_local_theta);
    if (d->rope_local_theta > 0 && d->pos != LLM_POS_ROPE)
        return BAD("rope_local_theta", "set although the position encoding is %s",
                   llm_pos_name(d->pos));
    for (int i = 0; i < LLM_MAX_LAYERS; i++) {
        if (!is_bool(d->layer_local_rope[i]))
            return BAD("local_rope_layers", "layer %d flag is %d", i, d->layer_local_rope[i]);
        if (d->layer_local_rope[i] && (i >= d->n_layers || d->rope_local_theta == 0))
            return BAD("local_rope_layers", "layer %d uses the local rotary base but %s", i,
                       i >= d->n_layers ? "there is no such layer" : "rope_local_theta is 0");
    }
    for (int i = 0; i < LLM_MAX_LAYERS; i++) {
        if (!is_bool(d->layer_no_rope[i]))
            return BAD("nope_layers", "layer %d flag is %d", i, d->layer_no_rope[i]);
        if (d->layer_no_rope[i] && (i >= d->n_layers || d->pos != LLM_POS_ROPE))
            return BAD("nope_layers", "layer %d is without rotary but %s", i,
                       i >= d->n_layers ? "there is no such layer" : "the model has none");
        if (d->layer_no_rope[i] && d->layer_local_rope[i])
            return BAD("nope_layers", "layer %d is also in local_rope_layers", i);
    }
    if (!finite_ge0(d->attn_qscale_beta) ||
        (d->attn_qscale_beta > 0 && (d->pos != LLM_POS_ROPE || d->rope.orig_max_pos <= 0)))
        return BAD("attn_qscale_beta", "must be a non-negative number, above 0 only with rotary "
                                       "of an original_max_pos");
    if (!finite_ge0(d->attn_scale))
        return BAD("attn_scale", "must be a non-negative number, found %g", d->attn_scale);
    if (!finite_ge0(d->embed_scale))
        return BAD("embed_scale", "must be a non-negative number, found %g", d->embed_scale);
    if (!finite_ge0(d->attn_softcap))
        return BAD("attn_softcap", "must be a non-negative number, found %g", d->attn_softcap);
    if (!finite_ge0(d->final_softcap))
        return BAD("final_softcap", "must be a non-negative number, found %g", d->final_softcap);
    if (!finite_ge0(d->logit_scale))
        return BAD("logit_scale", "must be a non-negative number, found %g", d->logit_scale);
    if (!finite_ge0(d->residual_scale))
        return BAD("residual_scale", "must be a non-negative number, found %g",
                   d->residual_scale);
    if (d->residual_scale > 0 && d->residual_scale != 1 && (d->parallel_residual || d->norm_after))
        return BAD("residual_scale", "only sequential pre-norm blocks scale their branches");
    if (d->n_experts < 0 || d->n_experts > 4096)
        return BAD("n_experts", "must be within 0..4096, found %d", d->n_experts);
    if (d->n_experts ? (d->n_experts_per_tok < 1 || d->n_experts_per_tok > d->n_experts)
                     : d->n_experts_per_tok != 0)
        return BAD("n_experts_per_tok", "must be within 1..n_experts (%d), found %d", d->n_experts,
                   d->n_experts_per_tok);
    if (d->moe_norm_topk && !d->n_experts)
        return BAD("moe_norm_topk", "set for a model without experts");
    if (d->router_bias && !d->n_experts)
        return BAD("router_bias", "set for a model without experts");
    if (d->moe_router < 0 || d->moe_router >= LLM_ROUTER_COUNT)
        return BAD("moe_router", "unknown value %d", d->moe_router);
    if (d->moe_router != LLM_ROUTER_SOFTMAX &&
        (!d->n_experts || d->moe_groups < 1 || d->n_experts % d->moe_groups ||
         d->n_experts / d->moe_groups < 2 || d->moe_topk_groups < 1 ||
         d->moe_topk_groups > d->moe_groups ||
         d->moe_topk_groups * (d->n_experts / d->moe_groups) < d->n_experts_per_tok))
        return BAD("moe_groups", "%d groups, %d chosen, do not fit %d experts with %d per token "
                                 "(at least 2 a group)",
                   d->moe_groups, d->moe_topk_groups, d->n_experts, d->n_experts_per_tok);
    if (d->moe_router == LLM_ROUTER_SOFTMAX && (d->moe_groups || d->moe_topk_groups))
        return BAD("moe_groups", "set without a grouped router");
    if (d->moe_corr_bias && d->moe_router == LLM_ROUTER_SOFTMAX)
        return BAD("moe_corr_bias", "set without a grouped router");
    if (!finite_ge0(d->moe_scale)) return BAD("moe_scale", "must be a non-negative number");
    if (d->moe_first_layer < 0 || d->moe_first_layer > d->n_layers ||
        (d->moe_first_layer && (!d->n_experts || d->dense_inter < 1 || d->dense_inter > (1 << 22))))
        return BAD("moe_first_layer", "%d: must be within 0..n_layers, with experts and a dense "
                                      "MLP size (dense_inter %lld)",
                   d->moe_first_layer, (long long)d->dense_inter);
    if (d->kv_lora_rank < 0 || d->kv_lora_rank > (1 << 20) || d->q_lora_rank < 0 ||
        d->q_lora_rank > (1 << 20) || d->v_head_dim < 0 || d->v_head_dim > d->head_dim)
        return BAD("kv_lora_rank", "MLA ranks must be within 0..%d and v_head_dim within "
                                   "0..head_dim",
                   1 << 20);
    if (d->kv_lora_rank == 0 && (d->q_lora_rank || d->v_head_dim))
        return BAD("kv_lora_rank", "0 (no latent attention) with q_lora_rank or v_head_dim set");
    if (d->kv_lora_rank > 0 &&
        (d->n_kv_heads != d->n_heads || d->pos != LLM_POS_ROPE ||
         d->rope.rot_dims >= d->head_dim || d->qkv_bias))
        return BAD("kv_lora_rank", "latent attention needs kv heads = heads, rotary on part of "
                                   "each head and no q/k/v bias");
    if (d->shared_expert_inter < 0 || d->shared_expert_inter > (1 << 22) ||
        (d->shared_expert_inter && !d->n_experts))
        return BAD("shared_expert_inter", "must be within 0..%d and 0 without experts, found %lld",
                   1 << 22, (long long)d->shared_expert_inter);
    if (d->bos_id < -1) return BAD("bos_id", "must be -1 or a token id, found %d", d->bos_id);
    if (d->pad_id < -1) return BAD("pad_id", "must be -1 or a token id, found %d", d->pad_id);
    if (d->n_eos < 0 || d->n_eos > LLM_MAX_EOS)
        return BAD("eos_ids", "must have 0..%d entries, found %d", LLM_MAX_EOS, d->n_eos);
    for (int i = 0; i < d->n_eos; i++)
        if (d->eos_ids[i] < 0) return BAD("eos_ids", "entry %d is negative", i);
    return 0;
}

/* ---- JSON --------------------------------------------------------------------- */

static int set(json_t *o, const char *k, json_t *v)
{
    return v ? json_object_set_new(o, k, v) : -1;
}

/* The layers whose flag is set, as a list of indices. */
static json_t *layers_json(const unsigned char *flags, int n_layers)
{
    json_t *a = json_array();
    for (int i = 0; a && i < LLM_MAX_LAYERS && i < n_layers; i++)
        if (flags[i] && json_array_append_new(a, json_integer(i))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static int any_layer(const unsigned char *flags, int n_layers)
{
    for (int i = 0; i < LLM_MAX_LAYERS && i < n_layers; i++)
        if (flags[i]) return 1;
    return 0;
}

json_t *llm_desc_to_json(const struct llm_model_desc *d)
{
    if (!d) return NULL;
    json_t *o = json_object(), *r = json_object(), *lf = json_array(), *sf = json_array(),
           *wl = layers_json(d->layer_window, d->n_layers), *eos = json_array();
    int bad = !o || !r || !lf || !sf || !wl || !eos;
    const struct llm_rope *p = &d->rope;
    for (int i = 0; !bad && i < p->n_factors && p->long_factor && p->short_factor; i++) {
        bad |= json_array_append_new(lf, json_real(p->long_factor[i]));
        bad |= json_array_append_new(sf, json_real(p->short_factor[i]));
    }
    for (int i = 0; !bad && i < d->n_eos && i < LLM_MAX_EOS; i++)
        bad |= json_array_append_new(eos, json_integer(d->eos_ids[i]));
    if (bad) {
        json_decref(o);
        json_decref(r);
        json_decref(lf);
        json_decref(sf);
        json_decref(wl);
        json_decref(eos);
        return NULL;
    }
    bad |= set(r, "theta", json_real(p->theta));
    bad |= set(r, "rot_dims", json_integer(p->rot_dims));
    bad |= set(r, "neox", json_boolean(p->neox));
    bad |= set(r, "scaling", json_string(llm_rope_scaling_name(p->scaling)));
    bad |= set(r, "factor", json_real(p->factor));
    bad |= set(r, "orig_max_pos", json_integer(p->orig_max_pos));
    bad |= set(r, "low_freq_factor", json_real(p->low_freq_factor));
    bad |= set(r, "high_freq_factor", json_real(p->high_freq_factor));
    bad |= set(r, "beta_fast", json_real(p->beta_fast));
    bad |= set(r, "beta_slow", json_real(p->beta_slow));
    bad |= set(r, "attn_factor", json_real(p->attn_factor));
    bad |= set(r, "mscale", json_real(p->mscale));
    bad |= set(r, "mscale_all_dim", json_real(p->mscale_all_dim));
    if (p->yarn_no_truncate) bad |= set(r, "yarn_truncate", json_false()); /* only when used */
    bad |= set(r, "long_factor", lf);
    bad |= set(r, "short_factor", sf);

    char hf_arch[sizeof(d->hf_arch) + 1], model_type[sizeof(d->model_type) + 1];
    snprintf(hf_arch, sizeof(hf_arch), "%.*s", (int)sizeof(d->hf_arch), d->hf_arch);
    snprintf(model_type, sizeof(model_type), "%.*s", (int)sizeof(d->model_type), d->model_type);
    bad |= set(o, "arch", json_string(llm_arch_name(d->arch)));
    bad |= set(o, "hf_arch", json_string(hf_arch));
    bad |= set(o, "model_type", json_string(model_type));
    bad |= set(o, "dtype", json_string(llm_dtype_name(d->dtype)));
    bad |= set(o, "vocab_size", json_integer(d->vocab_size));
    bad |= set(o, "hidden", json_integer(d->hidden));
    bad |= set(o, "n_layers", json_integer(d->n_layers));
    bad |= set(o, "n_heads", json_integer(d->n_heads));
    bad |= set(o, "n_kv_heads", json_integer(d->n_kv_heads));
    bad |= set(o, "head_dim", json_integer(d->head_dim));
    bad |= set(o, "intermediate", json_integer(d->intermediate));
    bad |= set(o, "max_pos", json_integer(d->max_pos));
    bad |= set(o, "embed_dim", json_integer(d->embed_dim));
    bad |= set(o, "norm", json_string(llm_norm_name(d->norm)));
    bad |= set(o, "norm_eps", json_real(d->norm_eps));
    bad |= set(o, "norm_offset", json_real(d->norm_offset));
    bad |= set(o, "act", json_string(llm_act_name(d->act)));
    bad |= set(o, "gated_mlp", json_boolean(d->gated_mlp));
    if (d->act == LLM_ACT_SWIGLU_OAI) { /* written only when used */
        bad |= set(o, "swiglu_alpha", json_real(d->swiglu_alpha));
        bad |= set(o, "swiglu_limit", json_real(d->swiglu_limit));
    }
    bad |= set(o, "pos", json_string(llm_pos_name(d->pos)));
    bad |= set(o, "pos_offset", json_integer(d->pos_offset));
    bad |= set(o, "rope", r);
    bad |= set(o, "alibi_max_bias", json_real(d->alibi_max_bias));
    bad |= set(o, "alibi_scaled", json_boolean(d->alibi_scaled));
    bad |= set(o, "parallel_residual", json_boolean(d->parallel_residual));
    bad |= set(o, "shared_input_norm", json_boolean(d->shared_input_norm));
    bad |= set(o, "norm_after", json_boolean(d->norm_after));
    bad |= set(o, "sandwich_norm", json_boolean(d->sandwich_norm));
    if (d->no_input_norm) /* written only when set */
        bad |= set(o, "no_input_norm", json_true());
    bad |= set(o, "qk_norm", json_string(llm_qk_norm_name(d->qk_norm)));
    bad |= set(o, "clip_qkv", json_real(d->clip_qkv));
    bad |= set(o, "embed_norm", json_boolean(d->embed_norm));
    bad |= set(o, "final_norm", json_boolean(d->final_norm));
    bad |= set(o, "tied_embeddings", json_boolean(d->tied_embeddings));
    bad |= set(o, "qkv_bias", json_boolean(d->qkv_bias));
    bad |= set(o, "o_bias", json_boolean(d->o_bias));
    bad |= set(o, "mlp_bias", json_boolean(d->mlp_bias));
    bad |= set(o, "norm_bias", json_boolean(d->norm_bias));
    bad |= set(o, "lm_head_bias", json_boolean(d->lm_head_bias));
    bad |= set(o, "sliding_window", json_integer(d->sliding_window));
    bad |= set(o, "window_layers", wl);
    bad |= set(o, "attn_scale", json_real(d->attn_scale));
    if (d->attn_sinks) bad |= set(o, "attn_sinks", json_true()); /* only when used */
    if (d->attn_qscale_beta > 0) bad |= set(o, "attn_qscale_beta", json_real(d->attn_qscale_beta));
    bad |= set(o, "embed_scale", json_real(d->embed_scale));
    bad |= set(o, "attn_softcap", json_real(d->attn_softcap));
    /* the same value under its 1.0 name, which 1.0 readers require */
    bad |= set(o, "logit_softcap", json_real(d->attn_softcap));
    bad |= set(o, "final_softcap", json_real(d->final_softcap));
    if (d->logit_scale > 0 && d->logit_scale != 1) /* written only when used */
        bad |= set(o, "logit_scale", json_real(d->logit_scale));
    if (d->residual_scale > 0 && d->residual_scale != 1)
        bad |= set(o, "residual_scale", json_real(d->residual_scale));
    /* the fields below are written only when used: older readers take the rest */
    if (d->rope_local_theta > 0) {
        bad |= set(o, "rope_local_theta", json_real(d->rope_local_theta));
        bad |= set(o, "local_rope_layers", layers_json(d->layer_local_rope, d->n_layers));
    }
    if (any_layer(d->layer_no_rope, d->n_layers))
        bad |= set(o, "nope_layers", layers_json(d->layer_no_rope, d->n_layers));
    bad |= set(o, "n_experts", json_integer(d->n_experts));
    bad |= set(o, "n_experts_per_tok", json_integer(d->n_experts_per_tok));
    bad |= set(o, "moe_norm_topk", json_boolean(d->moe_norm_topk));
    if (d->router_bias) bad |= set(o, "router_bias", json_true()); /* only when used */
    if (d->moe_router) {
        bad |= set(o, "moe_router", json_string(router_names[d->moe_router]));
        bad |= set(o, "moe_groups", json_integer(d->moe_groups));
        bad |= set(o, "moe_topk_groups", json_integer(d->moe_topk_groups));
        bad |= set(o, "moe_corr_bias", json_boolean(d->moe_corr_bias));
    }
    if (d->moe_scale > 0 && d->moe_scale != 1) bad |= set(o, "moe_scale", json_real(d->moe_scale));
    if (d->moe_first_layer) {
        bad |= set(o, "moe_first_layer", json_integer(d->moe_first_layer));
        bad |= set(o, "dense_inter", json_integer(d->dense_inter));
    }
    if (d->kv_lora_rank) {
        bad |= set(o, "kv_lora_rank", json_integer(d->kv_lora_rank));
        bad |= set(o, "q_lora_rank", json_integer(d->q_lora_rank));
        bad |= set(o, "v_head_dim", json_integer(d->v_head_dim));
    }
    if (d->shared_expert_inter > 0) { /* written only when used */
        bad |= set(o, "shared_expert_inter", json_integer(d->shared_expert_inter));
        bad |= set(o, "shared_expert_gate", json_boolean(d->shared_expert_gate));
    }
    bad |= set(o, "bos_id", json_integer(d->bos_id));
    bad |= set(o, "eos_ids", eos);
    bad |= set(o, "pad_id", json_integer(d->pad_id));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Field readers for from_json: name the field (with its "rope." prefix). */
static const json_t *field(const json_t *o, const char *pre, const char *k, int *rc)
{
    const json_t *v = json_object_get(o, k);
    if (!v) *rc = llm_err_set(LLM_EFORMAT, "model field '%s%s' is missing", pre, k);
    return v;
}

static int rd_i64(const json_t *o, const char *pre, const char *k, int64_t lo, int64_t hi,
                  int64_t *out)
{
    int rc = 0;
    const json_t *v = field(o, pre, k, &rc);
    if (rc) return rc;
    if (!json_is_integer(v))
        return llm_err_set(LLM_EFORMAT, "model field '%s%s' must be an integer, found %s", pre, k,
                           llm_json_type_name(v));
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return llm_err_set(LLM_EFORMAT, "model field '%s%s' is %lld, outside %lld..%lld", pre, k,
                           (long long)x, (long long)lo, (long long)hi);
    *out = x;
    return 0;
}

static int rd_int(const json_t *o, const char *pre, const char *k, int lo, int hi, int *out)
{
    int64_t v;
    int rc = rd_i64(o, pre, k, lo, hi, &v);
    if (!rc) *out = (int)v;
    return rc;
}

static int rd_num(const json_t *o, const char *pre, const char *k, double *out)
{
    int rc = 0;
    const json_t *v = field(o, pre, k, &rc);
    if (rc) return rc;
    if (!json_is_number(v))
        return llm_err_set(LLM_EFORMAT, "model field '%s%s' must be a number, found %s", pre, k,
                           llm_json_type_name(v));
    *out = json_number_value(v);
    return 0;
}

static int rd_bool(const json_t *o, const char *pre, const char *k, int *out)
{
    int rc = 0;
    const json_t *v = field(o, pre, k, &rc);
    if (rc) return rc;
    if (!json_is_boolean(v))
        return llm_err_set(LLM_EFORMAT, "model field '%s%s' must be true or false, found %s", pre,
                           k, llm_json_type_name(v));
    *out = json_is_true(v);
    return 0;
}

static int rd_enum(const json_t *o, const char *pre, const char *k, const char *const *t, int n,
                   int *out)
{
    int rc = 0;
    const json_t *v = field(o, pre, k, &rc);
    if (rc) return rc;
    if (!json_is_string(v))
        return llm_err_set(LLM_EFORMAT, "model field '%s%s' must be a string, found %s", pre, k,
                           llm_json_type_name(v));
    int x = table_find(t, n, json_string_value(v));
    if (x < 0) {
        char b[64];
        snprintf(b, sizeof(b), "%s", json_string_value(v));
        for (char *c = b; *c; c++)
            if ((unsigned char)*c < 0x20) *c = '?';
        return llm_err_set(LLM_EFORMAT, "model field '%s%s' has unknown value '%s'", pre, k, b);
    }
    *out = x;
    return 0;
}

static int rd_str(const json_t *o, const char *k, char *dst, size_t cap)
{
    int rc = 0;
    const json_t *v = field(o, "", k, &rc);
    if (rc) return rc;
    if (!json_is_string(v))
        return llm_err_set(LLM_EFORMAT, "model field '%s' must be a string, found %s", k,
                           llm_json_type_name(v));
    if (json_string_length(v) >= cap || strlen(json_string_value(v)) != json_string_length(v))
        return llm_err_set(LLM_EFORMAT, "model field '%s' is longer than %zu bytes", k, cap - 1);
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int rd_array(const json_t *o, const char *pre, const char *k, size_t max, const json_t **out)
{
    int rc = 0;
    const json_t *v = field(o, pre, k, &rc);
    if (rc) return rc;
    if (!json_is_array(v))
        return llm_err_set(LLM_EFORMAT, "model field '%s%s' must be an array, found %s", pre, k,
                           llm_json_type_name(v));
    if (json_array_size(v) > max)
        return llm_err_set(LLM_EFORMAT, "model field '%s%s' has %zu entries, at most %zu", pre, k,
                           json_array_size(v), max);
    *out = v;
    return 0;
}

/* A list of distinct layer indices below n_layers into per-layer flags. */
static int rd_layers(const json_t *j, const char *k, int n_layers, unsigned char *flags)
{
    const json_t *a;
    int rc = rd_array(j, "", k, LLM_MAX_LAYERS, &a);
    for (size_t i = 0; !rc && i < json_array_size(a); i++) {
        const json_t *v = json_array_get(a, i);
        json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
        if (x < 0 || x >= n_layers || flags[x])
            rc = llm_err_set(LLM_EFORMAT,
                             "model field '%s' entry %zu is not a distinct layer index below "
                             "n_layers (%d)",
                             k, i, n_layers);
        else
            flags[x] = 1;
    }
    return rc;
}

static int rope_from_json(struct llm_rope *p, const json_t *r)
{
    const char *pre = "rope.";
    int rc = 0;
    const json_t *lf, *sf;
    rc = rd_num(r, pre, "theta", &p->theta);
    if (!rc) rc = rd_int(r, pre, "rot_dims", 0, 1 << 16, &p->rot_dims);
    if (!rc) rc = rd_bool(r, pre, "neox", &p->neox);
    if (!rc) rc = rd_enum(r, pre, "scaling", scaling_names, LLM_ROPE_SCALING_COUNT, &p->scaling);
    if (!rc) rc = rd_num(r, pre, "factor", &p->factor);
    if (!rc) rc = rd_int(r, pre, "orig_max_pos", 0, INT32_MAX, &p->orig_max_pos);
    if (!rc) rc = rd_num(r, pre, "low_freq_factor", &p->low_freq_factor);
    if (!rc) rc = rd_num(r, pre, "high_freq_factor", &p->high_freq_factor);
    if (!rc) rc = rd_num(r, pre, "beta_fast", &p->beta_fast);
    if (!rc) rc = rd_num(r, pre, "beta_slow", &p->beta_slow);
    if (!rc) rc = rd_num(r, pre, "attn_factor", &p->attn_factor);
    if (!rc) rc = rd_num(r, pre, "mscale", &p->mscale);
    if (!rc) rc = rd_num(r, pre, "mscale_all_dim", &p->mscale_all_dim);
    if (!rc && json_object_get(r, "yarn_truncate")) {
        int tr = 1;
        rc = rd_bool(r, pre, "yarn_truncate", &tr);
        p->yarn_no_truncate = !tr;
    }
    if (!rc) rc = rd_array(r, pre, "long_factor", 1 << 15, &lf);
    if (!rc) rc = rd_array(r, pre, "short_factor", 1 << 15, &sf);
    if (rc) return rc;
    size_t n = json_array_size(lf);
    if (json_array_size(sf) != n)
        return llm_err_set(LLM_EFORMAT,
                           "model field 'rope.short_factor' has %zu entries, "
                           "long_factor %zu",
                           json_array_size(sf), n);
    if (n == 0) return 0;
    p->long_factor = malloc(n * sizeof(float));
    p->short_factor = malloc(n * sizeof(float));
    if (!p->long_factor || !p->short_factor) return llm_err_set(LLM_ENOMEM, "out of memory");
    p->n_factors = (int)n;
    for (size_t i = 0; i < n; i++) {
        const json_t *a = json_array_get(lf, i), *b = json_array_get(sf, i);
        if (!json_is_number(a) || !json_is_number(b))
            return llm_err_set(LLM_EFORMAT, "model field 'rope.%s' entry %zu is not a number",
                               json_is_number(a) ? "short_factor" : "long_factor", i);
        p->long_factor[i] = (float)json_number_value(a);
        p->short_factor[i] = (float)json_number_value(b);
    }
    return 0;
}

/* Fields added after format 1.0 are read only when present. */
#define HAS(k) (json_object_get(j, k) != NULL)

int llm_desc_from_json(struct llm_model_desc *d, const json_t *j)
{
    llm_desc_init(d);
    if (!json_is_object(j))
        return llm_err_set(LLM_EFORMAT, "model description is not a JSON object");
    const char *n = "";
    const json_t *r, *eos;
    int rc = 0;
    rc = rd_enum(j, n, "arch", arch_names, LLM_ARCH_COUNT, &d->arch);
    if (!rc) rc = rd_str(j, "hf_arch", d->hf_arch, sizeof(d->hf_arch));
    if (!rc) rc = rd_str(j, "model_type", d->model_type, sizeof(d->model_type));
    if (!rc) {
        const json_t *v = field(j, n, "dtype", &rc);
        if (!rc && (!json_is_string(v) || llm_dtype_from_name(json_string_value(v)) < 0))
            rc = llm_err_set(LLM_EFORMAT, "model field 'dtype' is not a known dtype name");
        if (!rc) d->dtype = llm_dtype_from_name(json_string_value(v));
    }
    if (!rc) rc = rd_i64(j, n, "vocab_size", 1, INT32_MAX, &d->vocab_size);
    if (!rc) rc = rd_i64(j, n, "hidden", 1, 1 << 20, &d->hidden);
    if (!rc) rc = rd_int(j, n, "n_layers", 1, LLM_MAX_LAYERS, &d->n_layers);
    if (!rc) rc = rd_int(j, n, "n_heads", 1, 1 << 16, &d->n_heads);
    if (!rc) rc = rd_int(j, n, "n_kv_heads", 1, 1 << 16, &d->n_kv_heads);
    if (!rc) rc = rd_int(j, n, "head_dim", 1, 1 << 16, &d->head_dim);
    if (!rc) rc = rd_i64(j, n, "intermediate", 1, 1 << 22, &d->intermediate);
    if (!rc) rc = rd_i64(j, n, "max_pos", 1, INT32_MAX, &d->max_pos);
    if (!rc && HAS("embed_dim")) rc = rd_i64(j, n, "embed_dim", 0, 1 << 20, &d->embed_dim);
    if (!rc) rc = rd_enum(j, n, "norm", norm_names, LLM_NORM_COUNT, &d->norm);
    if (!rc) rc = rd_num(j, n, "norm_eps", &d->norm_eps);
    if (!rc && HAS("norm_offset")) rc = rd_num(j, n, "norm_offset", &d->norm_offset);
    if (!rc) rc = rd_enum(j, n, "act", act_names, LLM_ACT_COUNT, &d->act);
    if (!rc) rc = rd_bool(j, n, "gated_mlp", &d->gated_mlp);
    if (!rc && HAS("swiglu_alpha")) rc = rd_num(j, n, "swiglu_alpha", &d->swiglu_alpha);
    if (!rc && HAS("swiglu_limit")) rc = rd_num(j, n, "swiglu_limit", &d->swiglu_limit);
    if (!rc) rc = rd_enum(j, n, "pos", pos_names, LLM_POS_COUNT, &d->pos);
    if (!rc && HAS("pos_offset")) rc = rd_int(j, n, "pos_offset", 0, 1024, &d->pos_offset);
    if (!rc && HAS("alibi_max_bias")) rc = rd_num(j, n, "alibi_max_bias", &d->alibi_max_bias);
    if (!rc && HAS("alibi_scaled")) rc = rd_bool(j, n, "alibi_scaled", &d->alibi_scaled);
    if (!rc) {
        r = field(j, n, "rope", &rc);
        if (!rc && !json_is_object(r))
            rc = llm_err_set(LLM_EFORMAT, "model field 'rope' must be an object, found %s",
                             llm_json_type_name(r));
        if (!rc) rc = rope_from_json(&d->rope, r);
    }
    if (!rc) rc = rd_bool(j, n, "parallel_residual", &d->parallel_residual);
    if (!rc) rc = rd_bool(j, n, "shared_input_norm", &d->shared_input_norm);
    if (!rc && HAS("norm_after")) rc = rd_bool(j, n, "norm_after", &d->norm_after);
    if (!rc && HAS("sandwich_norm")) rc = rd_bool(j, n, "sandwich_norm", &d->sandwich_norm);
    if (!rc && HAS("no_input_norm")) rc = rd_bool(j, n, "no_input_norm", &d->no_input_norm);
    if (!rc && HAS("qk_norm"))
        rc = rd_enum(j, n, "qk_norm", qk_norm_names, LLM_QK_NORM_COUNT, &d->qk_norm);
    if (!rc && HAS("clip_qkv")) rc = rd_num(j, n, "clip_qkv", &d->clip_qkv);
    if (!rc && HAS("embed_norm")) rc = rd_bool(j, n, "embed_norm", &d->embed_norm);
    if (!rc && HAS("final_norm")) rc = rd_bool(j, n, "final_norm", &d->final_norm);
    if (!rc) rc = rd_bool(j, n, "tied_embeddings", &d->tied_embeddings);
    if (!rc) rc = rd_bool(j, n, "qkv_bias", &d->qkv_bias);
    if (!rc) rc = rd_bool(j, n, "o_bias", &d->o_bias);
    if (!rc) rc = rd_bool(j, n, "mlp_bias", &d->mlp_bias);
    if (!rc) rc = rd_bool(j, n, "norm_bias", &d->norm_bias);
    if (!rc) rc = rd_bool(j, n, "lm_head_bias", &d->lm_head_bias);
    if (!rc) rc = rd_int(j, n, "sliding_window", 0, INT32_MAX, &d->sliding_window);
    if (!rc) rc = rd_layers(j, "window_layers", d->n_layers, d->layer_window);
    if (!rc) rc = rd_num(j, n, "attn_scale", &d->attn_scale);
    if (!rc && HAS("attn_sinks")) rc = rd_bool(j, n, "attn_sinks", &d->attn_sinks);
    if (!rc && HAS("attn_qscale_beta"))
        rc = rd_num(j, n, "attn_qscale_beta", &d->attn_qscale_beta);
    if (!rc) rc = rd_num(j, n, "embed_scale", &d->embed_scale);
    /* format 1.0 called the attention cap logit_softcap */
    if (!rc) rc = rd_num(j, n, HAS("logit_softcap") && !HAS("attn_softcap") ? "logit_softcap"
                                                                             : "attn_softcap",
                         &d->attn_softcap);
    if (!rc && HAS("final_softcap")) rc = rd_num(j, n, "final_softcap", &d->final_softcap);
    if (!rc && HAS("logit_scale")) rc = rd_num(j, n, "logit_scale", &d->logit_scale);
    if (!rc && HAS("residual_scale")) rc = rd_num(j, n, "residual_scale", &d->residual_scale);
    if (!rc && HAS("rope_local_theta")) {
        rc = rd_num(j, n, "rope_local_theta", &d->rope_local_theta);
        if (!rc) rc = rd_layers(j, "local_rope_layers", d->n_layers, d->layer_local_rope);
    }
    if (!rc && HAS("nope_layers")) rc = rd_layers(j, "nope_layers", d->n_layers, d->layer_no_rope);
    if (!rc) rc = rd_int(j, n, "n_experts", 0, 4096, &d->n_experts);
    if (!rc) rc = rd_int(j, n, "n_experts_per_tok", 0, 4096, &d->n_experts_per_tok);
    if (!rc && HAS("moe_norm_topk")) rc = rd_bool(j, n, "moe_norm_topk", &d->moe_norm_topk);
    if (!rc && HAS("router_bias")) rc = rd_bool(j, n, "router_bias", &d->router_bias);
    if (!rc && HAS("moe_router")) {
        rc = rd_enum(j, n, "moe_router", router_names, LLM_ROUTER_COUNT, &d->moe_router);
        if (!rc) rc = rd_int(j, n, "moe_groups", 0, 4096, &d->moe_groups);
        if (!rc) rc = rd_int(j, n, "moe_topk_groups", 0, 4096, &d->moe_topk_groups);
        if (!rc && HAS("moe_corr_bias")) rc = rd_bool(j, n, "moe_corr_bias", &d->moe_corr_bias);
    }
    if (!rc && HAS("moe_scale")) rc = rd_num(j, n, "moe_scale", &d->moe_scale);
    if (!rc && HAS("moe_first_layer")) {
        rc = rd_int(j, n, "moe_first_layer", 0, LLM_MAX_LAYERS, &d->moe_first_layer);
        if (!rc) rc = rd_i64(j, n, "dense_inter", 0, 1 << 22, &d->dense_inter);
    }
    if (!rc && HAS("kv_lora_rank")) {
        rc = rd_i64(j, n, "kv_lora_rank", 0, 1 << 20, &d->kv_lora_rank);
        if (!rc) rc = rd_i64(j, n, "q_lora_rank", 0, 1 << 20, &d->q_lora_rank);
        if (!rc) rc = rd_int(j, n, "v_head_dim", 0, 1 << 16, &d->v_head_dim);
    }
    if (!rc && HAS("shared_expert_inter"))
        rc = rd_i64(j, n, "shared_expert_inter", 0, 1 << 22, &d->shared_expert_inter);
    if (!rc && HAS("shared_expert_gate"))
        rc = rd_bool(j, n, "shared_expert_gate", &d->shared_expert_gate);
    if (!rc) rc = rd_int(j, n, "bos_id", -1, INT32_MAX, &d->bos_id);
    if (!rc) rc = rd_array(j, n, "eos_ids", LLM_MAX_EOS, &eos);
    for (size_t i = 0; !rc && i < json_array_size(eos); i++) {
        const json_t *v = json_array_get(eos, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
            rc = llm_err_set(LLM_EFORMAT, "model field 'eos_ids' entry %zu is not a token id", i);
        else
            d->eos_ids[d->n_eos++] = (int32_t)json_integer_value(v);
    }
    if (!rc) rc = rd_int(j, n, "pad_id", -1, INT32_MAX, &d->pad_id);
    if (!rc) rc = llm_desc_validate(d);
    if (rc) llm_desc_free(d);
    return rc;
}

json_t *llm_gen_defaults_to_json(const struct llm_gen_defaults *g)
{
    if (!g) return NULL;
    json_t *o = json_object();
    int bad = !o;
    if (!bad) {
        bad |= set(o, "temperature", json_real(g->temperature));
        bad |= set(o, "top_k", json_integer(g->top_k));
        bad |= set(o, "top_p", json_real(g->top_p));
        bad |= set(o, "min_p", json_real(g->min_p));
        bad |= set(o, "repetition_penalty", json_real(g->repetition_penalty));
        bad |= set(o, "do_sample", json_boolean(g->do_sample));
        bad |= set(o, "max_new_tokens", json_integer(g->max_new_tokens));
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Absent members keep the values already in g (call llm_gen_defaults_init
 * first); present ones must have the right type and range. */
int llm_gen_defaults_from_json(struct llm_gen_defaults *g, const json_t *j)
{
    if (!json_is_object(j))
        return llm_err_set(LLM_EFORMAT, "generation defaults are not a JSON object");
    struct llm_gen_defaults t = *g;
    int rc = 0;
    const char *p = "generation.";
    if (!rc && json_object_get(j, "temperature")) rc = rd_num(j, p, "temperature", &t.temperature);
    if (!rc && json_object_get(j, "top_k")) rc = rd_int(j, p, "top_k", 0, INT32_MAX, &t.top_k);
    if (!rc && json_object_get(j, "top_p")) rc = rd_num(j, p, "top_p", &t.top_p);
    if (!rc && json_object_get(j, "min_p")) rc = rd_num(j, p, "min_p", &t.min_p);
    if (!rc && json_object_get(j, "repetition_penalty"))
        rc = rd_num(j, p, "repetition_penalty", &t.repetition_penalty);
    if (!rc && json_object_get(j, "do_sample")) rc = rd_bool(j, p, "do_sample", &t.do_sample);
    if (!rc && json_object_get(j, "max_new_tokens"))
        rc = rd_int(j, p, "max_new_tokens", 0, INT32_MAX, &t.max_new_tokens);
    if (rc) return rc;
    if (!(t.temperature >= 0) || !isfinite(t.temperature))
        return llm_err_set(LLM_EFORMAT, "model field 'generation.temperature' must be >= 0");
    if (!(t.top_p >= 0 && t.top_p <= 1))
        return llm_err_set(LLM_EFORMAT, "model field 'generation.top_p' must be within [0, 1]");
    if (!(t.min_p >= 0 && t.min_p <= 1))
        return llm_err_set(LLM_EFORMAT, "model field 'generation.min_p' must be within [0, 1]");
    if (!(t.repetition_penalty > 0) || !isfinite(t.repetition_penalty))
        return llm_err_set(LLM_EFORMAT, "model field 'generation.repetition_penalty' must be > 0");
    *g = t;
    return 0;
}

