/* weights.c - binding a model's tensors to weight slots, once, for every
 * backend (llm/weight.h).
 *
 * Design: the slots a description has and their shapes come from names.c;
 * this file finds each tensor, checks it (shape, a dtype some format
 * takes, enough bytes, the scales its format needs) and records a handle
 * pointing into the model's storage.  The checks a backend used to repeat
 * live here once, and their messages name the model's file and the tensor.
 * An engine (llm-build) stores fc and gate as one mlp.fc_gate tensor: it is
 * bound as two row views, so backends see the same slots either way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/dtype.h"
#include "llm/engine_artifact.h"
#include "llm/err.h"
#include "llm/weight.h"
#include "../core/text_internal.h"

static const char *const wfmt_names[] = {"dense", "fp8", "int8", "int4"};
_Static_assert(sizeof(wfmt_names) / sizeof(wfmt_names[0]) == LLM_WFMT_COUNT, "wfmt_names");

const char *llm_wfmt_name(int fmt)
{
    return fmt >= 0 && fmt < LLM_WFMT_COUNT ? wfmt_names[fmt] : "?";
}

static const char *src_of(const struct llm_model *m)
{
    return m->path ? m->path : "<model>";
}

static int fmt_of_dtype(int dt)
{
    switch (dt) {
    case LLM_DTYPE_F32:
    case LLM_DTYPE_F16:
    case LLM_DTYPE_BF16: return LLM_WFMT_DENSE;
    case LLM_DTYPE_F8E4M3: return LLM_WFMT_FP8;
    case LLM_DTYPE_I8: return LLM_WFMT_INT8;
    case LLM_DTYPE_I4: return LLM_WFMT_INT4;
    default: return -1;
    }
}

static int same_shape(const struct llm_tensor *t, int nd, const int64_t *s)
{
    if (t->ndim != nd) return 0;
    for (int i = 0; i < nd; i++)
        if (t->shape[i] != s[i]) return 0;
    return 1;
}

static int shape_error(const struct llm_model *m, const struct llm_tensor *t, int nd,
                       const int64_t *s)
{
    char a[160], b[160];
    return llm_err_set(LLM_ESHAPE, "'%s': tensor '%s' has shape %s, expected %s", src_of(m),
                       t->name, llm_shape_str(a, sizeof a, t->ndim, t->shape),
                       llm_shape_str(b, sizeof b, nd, s));
}

/* The tensor's bytes hold its shape in its dtype. */
static int check_bytes(const struct llm_model *m, const struct llm_tensor *t)
{
    uint64_t numel, need;
    if (llm_shape_numel(t->ndim, t->shape, &numel) || llm_dtype_nbytes(t->dtype, numel, &need))
        return llm_err_set(LLM_ERANGE, "'%s': tensor '%s': shape overflows", src_of(m), t->name);
    if ((!t->data && !m->synthetic) || t->nbytes < need)
        return llm_err_set(LLM_ESHAPE, "'%s': tensor '%s': %llu bytes of data, expected %llu",
                           src_of(m), t->name, (unsigned long long)t->nbytes,
                           (unsigned long long)need);
    return 0;
}

/* Tensor "<stem>.<suffix>" into t when the model has it (its name in
 * name); absent: t zeroed and *found 0, not an error. */
static int optional_tensor(struct llm_model *m, const char *stem, const char *suffix,
                           struct llm_tensor *t, char *name, size_t cap, int *found)
{
    memset(t, 0, sizeof *t);
    snprintf(name, cap, "%s.%s", stem, suffix);
    int rc = llm_model_tensor(m, name, t);
    *found = rc != LLM_ENOTFOUND;
    if (rc == LLM_ENOTFOUND) {
        llm_err_clear();
        memset(t, 0, sizeof *t);
        return 0;
    }
    return rc;
}

/* A side tensor "<stem>.<suffix>" if present (t->data NULL otherwise). */
static int side(struct llm_model *m, const char *stem, const char *suffix, struct llm_tensor *t)
{
    char name[LLM_NAME_MAX + 32];
    int found, rc = optional_tensor(m, stem, suffix, t, name, sizeof name, &found);
    if (!found) return 0;
    if (!rc && !llm_dtype_is_float(t->dtype))
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': tensor '%s' is %s, scales must be floats",
                           src_of(m), name, llm_dtype_name(t->dtype));
    return rc ? rc : check_bytes(m, t);
}

/* An input permutation "<stem>.perm" (GPTQ act-order) if present: int32
 * [in], every index in [0, in) once, and only where the quantization
 * section says act_order (the feature backends check). */
static int bind_perm(struct llm_model *m, const char *stem, struct llm_weight *w, int64_t in)
{
    char name[LLM_NAME_MAX + 32];
    struct llm_tensor *t = &w->perm;
    int found, rc = optional_tensor(m, stem, LLM_WQ_PERM, t, name, sizeof name, &found);
    if (!found || rc) return rc;
    if ((w->fmt != LLM_WFMT_INT4 && w->fmt != LLM_WFMT_INT8) || w->ndim != 2)
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': tensor '%s': an input permutation on a %s "
                           "%dD weight (2D int4 and int8 only)", src_of(m), name,
                           llm_wfmt_name(w->fmt), w->ndim);
    if (!m->quant.act_order)
        return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s' permutes the inputs but the "
                           "quantization section has no act_order", src_of(m), name);
    if (t->dtype != LLM_DTYPE_I32 || t->ndim != 1 || t->shape[0] != in)
        return llm_err_set(LLM_ESHAPE, "'%s': tensor '%s' must be I32 [%lld]", src_of(m), name,
                           (long long)in);
    if ((rc = check_bytes(m, t)) || !t->data) return rc;
    unsigned char *seen = calloc((size_t)in, 1);
    if (!seen) return llm_err_set(LLM_ENOMEM, "out of memory");
    for (int64_t j = 0; j < in; j++) {
        int32_t v;
        memcpy(&v, (const char *)t->data + 4 * j, 4);
        if (v < 0 || v >= in || seen[v]) {
            free(seen);
            return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s' is not a permutation of [0, %lld): "
                               "entry %lld is %d", src_of(m), name, (long long)in, (long long)j,
                               (int)v);
        }
        seen[v] = 1;
    }
    free(seen);
    return 0;
}

/* Elements of a side tensor t, which must be n per expert (E experts of a
 * [E][out][in] weight, 1 for a 2-D one); absent tensors pass. */
static int side_count(const struct llm_model *m, const struct llm_tensor *t, int64_t E,
                      int64_t n)
{
    uint64_t k;
    if (!t->data && !t->name) return 0;
    llm_shape_numel(t->ndim, t->shape, &k);
    if ((int64_t)k == E * n && (E == 1 || (t->ndim >= 1 && t->shape[0] == E))) return 0;
    char a[160];
    return llm_err_set(LLM_ESHAPE, "'%s': tensor '%s' has shape %s, expected %lld value%s%s",
                       src_of(m), t->name, llm_shape_str(a, sizeof a, t->ndim, t->shape),
                       (long long)n, n == 1 ? "" : "s", E > 1 ? " per expert" : "");
}

/* The scales a quantized weight [out][in] or [experts][out][in] needs, by
 * format; an expert stack's side tensors have the experts as their first
 * dimension ([E][out], [E][in / group][out], [E][in], [E] or [E][1]). */
static int bind_quant(struct llm_model *m, const char *stem, struct llm_weight *w)
{
    int64_t out = w->shape[w->ndim - 2], in = w->shape[w->ndim - 1];
    int64_t E = w->ndim == 3 ? w->shape[0] : 1;
    int rc;
    if ((rc = side(m, stem, LLM_WQ_PREQUANT, &w->prequant)) ||
        (rc = side(m, stem, LLM_WQ_SMOOTHER, &w->smoother)) || (rc = bind_perm(m, stem, w, in)))
        return rc;
    switch (w->fmt) {
    case LLM_WFMT_FP8:
        if ((rc = side(m, stem, LLM_WQ_SCALE, &w->scale)) ||
            (rc = side(m, stem, LLM_WQ_ACT_SCALE, &w->act_scale)))
            return rc;
        break;
    case LLM_WFMT_INT8:
        if ((rc = side(m, stem, LLM_WQ_CHANNEL_SCALE, &w->scale)) ||
            (rc = side(m, stem, LLM_WQ_SQ_ACT_SCALE, &w->act_scale)))
            return rc;
        break;
    case LLM_WFMT_INT4: /* W4A8_AWQ: a static fp8 activation scale too */
        if ((rc = side(m, stem, LLM_WQ_SCALE, &w->scale)) ||
            (rc = side(m, stem, LLM_WQ_ZERO, &w->zero)) ||
            (m->quant.algo == LLM_QUANT_W4A8_AWQ &&
             (rc = side(m, stem, LLM_WQ_ACT_SCALE, &w->act_scale))))
            return rc;
        break;
    }
    if (!w->scale.data)
        return llm_err_set(LLM_ENOTFOUND, "'%s': %s weight '%s' has no scales ('%s.%s')",
                           src_of(m), llm_wfmt_name(w->fmt), w->name, stem,
                           w->fmt == LLM_WFMT_INT8 ? LLM_WQ_CHANNEL_SCALE : LLM_WQ_SCALE);
    if (E > 1 && ((rc = side_count(m, &w->prequant, E, in)) ||
                  (rc = side_count(m, &w->smoother, E, in)) ||
                  (rc = side_count(m, &w->act_scale, E, 1))))
        return rc;
    uint64_t ns;
    llm_shape_numel(w->scale.ndim, w->scale.shape, &ns);
    ns /= (uint64_t)E;
    if (w->fmt == LLM_WFMT_INT4) {
        /* [in / group][out], after the experts' dimension */
        const int64_t *ss = w->scale.shape + (E > 1);
        int64_t groups = w->scale.ndim == 2 + (E > 1) ? ss[0] : 0;
        if (groups < 1 || in % groups || ss[1] != out || (E > 1 && w->scale.shape[0] != E))
            return llm_err_set(LLM_ESHAPE, "'%s': tensor '%s.%s' must be %s[in / group, %lld] "
                               "with a group dividing %lld", src_of(m), stem, LLM_WQ_SCALE,
                               E > 1 ? "[experts, ...] of " : "", (long long)out, (long long)in);
        if (w->zero.data && !same_shape(&w->zero, w->scale.ndim, w->scale.shape))
            return shape_error(m, &w->zero, w->scale.ndim, w->scale.shape);
        w->scale_kind = LLM_WSCALE_GROUP;
        w->group_size = (int)(in / groups);
    } else if (E > 1 && (rc = side_count(m, &w->scale, E, (int64_t)ns))) {
        return rc;
    } else if (ns == 1) {
        w->scale_kind = LLM_WSCALE_TENSOR;
    } else if ((int64_t)ns == out) {
        w->scale_kind = LLM_WSCALE_CHANNEL;
    } else {
        return llm_err_set(LLM_ESHAPE, "'%s': tensor '%s' has %llu scales%s; expected 1 or %lld",
                           src_of(m), w->scale.name, (unsigned long long)ns,
                           E > 1 ? " per expert" : "", (long long)out);
    }
    return 0;
}

/* The quantized weight format the artifact's quantization section allows
 * (besides dense, for excluded modules), or -1 when it allows none. */
static int section_fmt(const struct llm_quant *q)
{
    llm_features f = llm_quant_features(q);
    if (f & LLM_FEAT_BIT(LLM_FEAT_W_FP8)) return LLM_WFMT_FP8;
    if (f & LLM_FEAT_BIT(LLM_FEAT_W_INT8)) return LLM_WFMT_INT8;
    if (f & LLM_FEAT_BIT(LLM_FEAT_W_INT4)) return LLM_WFMT_INT4;
    return -1;
}

/* Bind one slot of layer l (-1 for global slots). */
static int bind_slot(struct llm_model *m, int slot, int l, struct llm_weight *w)
{
    const struct llm_model_desc *d = &m->desc;
    int nd, bnd;
    int64_t s[LLM_MAX_DIMS], bs[LLM_MAX_DIMS];
    memset(w, 0, sizeof *w);
    if (llm_desc_slot_shape(d, slot, l, &nd, s, &bnd, bs)) return 0; /* the model has none */
    w->present = 1;
    llm_name_of_slot(w->name, sizeof w->name, slot, l < 0 ? 0 : l, 0);
    int rc;
    if (nd > 0) {
        struct llm_tensor t;
        if ((rc = llm_model_tensor(m, w->name, &t))) return rc;
        if (!same_shape(&t, nd, s)) return shape_error(m, &t, nd, s);
        w->fmt = fmt_of_dtype(t.dtype);
        int kind = llm_wslot_kind(slot);
        if (w->fmt < 0 || (w->fmt != LLM_WFMT_DENSE && kind != LLM_WK_LINEAR))
            return llm_err_set(LLM_EUNSUPPORTED, "'%s': tensor '%s' is %s, which no weight format "
                               "of a%s takes", src_of(m), w->name, llm_dtype_name(t.dtype),
                               kind == LLM_WK_LINEAR ? " linear layer" : " norm or embedding");
        if (w->fmt != LLM_WFMT_DENSE && w->fmt != section_fmt(&m->quant))
            return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s' is %s but the quantization "
                               "section says %s", src_of(m), w->name, llm_dtype_name(t.dtype),
                               llm_quant_algo_name(m->quant.algo)
                                   ? llm_quant_algo_name(m->quant.algo)
                                   : "the weights are not quantized");
        if ((rc = check_bytes(m, &t))) return rc;
        w->dtype = t.dtype;
        w->ndim = nd;
        memcpy(w->shape, s, sizeof w->shape);
        w->data = t.data;
        w->nbytes = t.nbytes;
        if (w->fmt != LLM_WFMT_DENSE) {
            char stem[LLM_NAME_MAX];
            snprintf(stem, sizeof stem, "%.*s", (int)(strlen(w->name) - strlen(".weight")), w->name);
            if ((rc = bind_quant(m, stem, w))) return rc;
            int a = m->quant.algo;
            w->act = a == LLM_QUANT_FP8 || a == LLM_QUANT_FP8_PC_PT || a == LLM_QUANT_W4A8_AWQ
                         ? LLM_WACT_FP8
                     : a == LLM_QUANT_W8A8_SQ_PC || a == LLM_QUANT_W8A8_SQ_PC_PT ? LLM_WACT_INT8
                                                                                 : LLM_WACT_NONE;
            if ((a == LLM_QUANT_W8A8_SQ_PC || a == LLM_QUANT_W4A8_AWQ) && !w->act_scale.data)
                return llm_err_set(LLM_ENOTFOUND, "'%s': %s weight '%s' has no static "
                                   "activation scale ('%s.%s')", src_of(m),
                                   llm_quant_algo_name(a), w->name, stem,
                                   a == LLM_QUANT_W4A8_AWQ ? LLM_WQ_ACT_SCALE : LLM_WQ_SQ_ACT_SCALE);
        }
    }
    if (bnd > 0) {
        char bn[LLM_NAME_MAX];
        struct llm_tensor t;
        llm_name_of_slot(bn, sizeof bn, slot, l < 0 ? 0 : l, 1);
        if ((rc = llm_model_tensor(m, bn, &t))) return rc;
        if (!same_shape(&t, bnd, bs)) return shape_error(m, &t, bnd, bs);
        if (fmt_of_dtype(t.dtype) != LLM_WFMT_DENSE)
            return llm_err_set(LLM_EUNSUPPORTED, "'%s': bias '%s' is %s (f32, f16 or bf16)",
                               src_of(m), bn, llm_dtype_name(t.dtype));
        if ((rc = check_bytes(m, &t))) return rc;
        w->bias = t.data;
        w->bias_dtype = t.dtype;
        w->has_bias = 1;
        snprintf(w->bias_name, sizeof w->bias_name, "%s", bn);
    }
    return 0;
}

/* An engine's mlp.fc_gate [2 I][H] (and bias) as fc and gate row views. */
static int bind_fused(struct llm_model *m, int l, struct llm_weight *fc, struct llm_weight *gate)
{
    const struct llm_model_desc *d = &m->desc;
    int nd, bnd;
    int64_t s[LLM_MAX_DIMS], bs[LLM_MAX_DIMS];
    memset(fc, 0, sizeof *fc);
    memset(gate, 0, sizeof *gate);
    if (llm_desc_slot_shape(d, LLM_W_MLP_FC, l, &nd, s, &bnd, bs) || nd != 2)
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': a fused gate/up tensor needs a dense gated MLP",
                           src_of(m));
    char name[LLM_NAME_MAX];
    struct llm_tensor t;
    llm_name_layer(name, sizeof name, l, LLM_EA_FC_GATE_WEIGHT);
    int rc = llm_model_tensor(m, name, &t);
    if (rc) return rc;
    int64_t fs[2] = {2 * s[0], s[1]};
    if (!same_shape(&t, 2, fs)) return shape_error(m, &t, 2, fs);
    if (fmt_of_dtype(t.dtype) != LLM_WFMT_DENSE)
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': tensor '%s' is %s (f32, f16 or bf16)",
                           src_of(m), name, llm_dtype_name(t.dtype));
    if ((rc = check_bytes(m, &t))) return rc;
    size_t es = (size_t)llm_dtype_bits(t.dtype) / 8, half = (size_t)(s[0] * s[1]) * es;
    struct llm_weight *v[2] = {fc, gate};
    for (int k = 0; k < 2; k++) {
        v[k]->present = 1;
        llm_name_of_slot(v[k]->name, sizeof v[k]->name, k ? LLM_W_MLP_GATE : LLM_W_MLP_FC, l, 0);
        v[k]->fmt = LLM_WFMT_DENSE;
        v[k]->dtype = t.dtype;
        v[k]->ndim = 2;
        v[k]->shape[0] = s[0];
        v[k]->shape[1] = s[1];
        v[k]->data = (const char *)t.data + k * half;
        v[k]->nbytes = half;
    }
    if (bnd) {
        llm_name_layer(name, sizeof name, l, LLM_EA_FC_GATE_BIAS);
        if ((rc = llm_model_tensor(m, name, &t))) return rc;
        int64_t fb[1] = {2 * bs[0]};
        if (!same_shape(&t, 1, fb)) return shape_error(m, &t, 1, fb);
        if (fmt_of_dtype(t.dtype) != LLM_WFMT_DENSE || (rc = check_bytes(m, &t)))
            return rc ? rc : llm_err_set(LLM_EUNSUPPORTED, "'%s': bias '%s' is %s", src_of(m),
                                         name, llm_dtype_name(t.dtype));
        size_t bh = (size_t)bs[0] * ((size_t)llm_dtype_bits(t.dtype) / 8);
        fc->bias = t.data;
        gate->bias = (const char *)t.data + bh;
        fc->bias_dtype = gate->bias_dtype = t.dtype;
        fc->has_bias = gate->has_bias = 1;
        snprintf(fc->bias_name, sizeof fc->bias_name, "%s", name);
        snprintf(gate->bias_name, sizeof gate->bias_name, "%s", name);
    }
    return 0;
}

int llm_weights_bind(struct llm_weights *w, struct llm_model *m)
{
    memset(w, 0, sizeof *w);
    const struct llm_model_desc *d = &m->desc;
    int rc = llm_desc_validate(d);
    if (rc) return llm_err_wrap(rc, "'%s'", src_of(m));
    w->n_layers = d->n_layers;
    w->layer = calloc((size_t)d->n_layers, sizeof *w->layer);
    if (!w->layer) return llm_err_set(LLM_ENOMEM, "out of memory");
    if (m->meta && llm_ea_present(m->meta)) {
        struct llm_ea_info eng;
        if ((rc = llm_ea_info_from_meta(m->meta, m->path, &eng))) goto fail;
        w->fused_mlp_in = eng.fused_gate && d->gated_mlp && !d->n_experts;
        llm_ea_info_free(&eng);
    }
    for (int s = 0; s < LLM_W_FIRST_LAYER && !rc; s++)
        rc = bind_slot(m, s, -1, &w->global[s]);
    if (!rc && d->tied_embeddings) { /* the lm_head reads the embedding rows */
        struct llm_weight *lm = &w->global[LLM_W_LM_HEAD], *e = &w->global[LLM_W_EMBED];
        const void *b = lm->bias;
        int bdt = lm->bias_dtype;
        *lm = *e;
        lm->bias = b;
        lm->bias_dtype = bdt;
    }
    for (int l = 0; l < d->n_layers && !rc; l++)
        for (int s = LLM_W_FIRST_LAYER; s < LLM_W_COUNT && !rc && llm_part_has_layer(d, l); s++) {
            if (w->fused_mlp_in && (s == LLM_W_MLP_FC || s == LLM_W_MLP_GATE)) {
                if (s == LLM_W_MLP_FC)
                    rc = bind_fused(m, l, &w->layer[l][LLM_W_MLP_FC], &w->layer[l][LLM_W_MLP_GATE]);
                continue;
            }
            rc = bind_slot(m, s, l, &w->layer[l][s]);
        }
    if (!rc) return 0;
fail:
    llm_weights_free(w);
    return rc;
}

void llm_weights_free(struct llm_weights *w)
{
    if (!w) return;
    free(w->layer);
    w->layer = NULL;
}

const struct llm_weight *llm_weights_get(const struct llm_weights *w, int slot, int layer)
{
    static const struct llm_weight none;
    if (slot < 0 || slot >= LLM_W_COUNT) return &none;
    if (!llm_wslot_per_layer(slot)) return &w->global[slot];
    if (layer < 0 || layer >= w->n_layers || !w->layer) return &none;
    return &w->layer[layer][slot];
}

/* Expert e's part of a side tensor whose first dimension is the E experts
 * ([E] alone becomes [1]). */
static void expert_side(struct llm_tensor *t, int64_t E, int e)
{
    if (!t->data) return;
    uint64_t numel, bytes;
    llm_shape_numel(t->ndim, t->shape, &numel);
    llm_dtype_nbytes(t->dtype, numel / (uint64_t)E, &bytes);
    t->data = (const char *)t->data + (uint64_t)e * bytes;
    t->nbytes = bytes;
    if (t->ndim > 1) {
        memmove(t->shape, t->shape + 1, sizeof(int64_t) * (size_t)(t->ndim - 1));
        t->ndim--;
    } else {
        t->shape[0] = 1;
    }
}

struct llm_weight llm_weight_expert(const struct llm_weight *w, int e)
{
    struct llm_weight v = *w;
    uint64_t mat, bias;
    llm_dtype_nbytes(w->dtype, (uint64_t)(w->shape[1] * w->shape[2]), &mat);
    llm_dtype_nbytes(w->bias_dtype, (uint64_t)w->shape[1], &bias);
    v.ndim = 2;
    v.shape[0] = w->shape[1];
    v.shape[1] = w->shape[2];
    v.shape[2] = 0;
    if (w->data) v.data = (const char *)w->data + (uint64_t)e * mat;
    v.nbytes = mat;
    if (w->bias) v.bias = (const char *)w->bias + (uint64_t)e * bias;
    snprintf(v.name, sizeof v.name, "%.*s#%d", (int)sizeof v.name - 12, w->name, e);
    if (w->fmt != LLM_WFMT_DENSE) {
        struct llm_tensor *side[] = {&v.scale, &v.zero, &v.prequant, &v.act_scale, &v.smoother};
        for (size_t i = 0; i < sizeof side / sizeof side[0]; i++)
            expert_side(side[i], w->shape[0], e);
    }
    return v;
}
