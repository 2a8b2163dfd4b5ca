/* hfmap.c - the conversion plan: which HF tensors make each canonical
 * tensor, and the transforms that make it (llm/hf.h).
 *
 * Design: the canonical side comes from the description (names.c), the HF
 * side from the family's rules in the registry (lib/model/arch/).  Planning
 * touches no tensor data: it checks presence, shapes and dtypes of every
 * source up front, so a converter either fails before writing anything or
 * has a plan that cannot fail on a missing or misshapen input.  A source
 * not found under its full name is looked up without the family's base
 * prefix ("transformer.", "model."), which checkpoints saved from the base
 * model class leave out.  Items are sorted by the position of their
 * earliest source in the checkpoint (shard by shard, by offset), so
 * executing the plan reads the files front to back.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "llm/hf.h"
#include "llm/log.h"
#include "llm/model.h"
#include "llm/safetensors.h"
#include "../core/text_internal.h"
#include "arch/arch.h"
#include "hfquant.h"

static const char *const xform_names[] = {"copy",  "concat", "transpose",    "qkv-heads", "rows",
                                          "stack", "ones",   "deinterleave", "cols"};
_Static_assert(sizeof(xform_names) / sizeof(xform_names[0]) == LLM_XF_COUNT, "xform_names");

const char *llm_xform_name(int x)
{
    return x >= 0 && x < LLM_XF_COUNT ? xform_names[x] : "?";
}

/* How to name the checkpoint: its file, or the folder of its shards. */
static void ckpt_name(const struct llm_st *st, char *buf, size_t cap)
{
    const char *p = llm_st_file_path(st, 0);
    if (!p) {
        snprintf(buf, cap, "checkpoint");
        return;
    }
    if (llm_st_nfiles(st) == 1) {
        snprintf(buf, cap, "%s", p);
        return;
    }
    const char *slash = strrchr(p, '/');
    if (!slash)
        snprintf(buf, cap, ".");
    else
        snprintf(buf, cap, "%.*s", slash == p ? 1 : (int)(slash - p), p);
}

/* Template with "{i}" -> layer and "{e}" -> index. */
static void expand(char *buf, size_t cap, const char *tmpl, int layer, int e)
{
    size_t n = 0;
    for (const char *p = tmpl; *p && n + 1 < cap;) {
        if (p[0] == '{' && (p[1] == 'i' || p[1] == 'e') && p[2] == '}') {
            int w = snprintf(buf + n, cap - n, "%d", p[1] == 'i' ? layer : e);
            n += w > 0 ? (size_t)w : 0;
            p += 3;
        } else {
            buf[n++] = *p++;
        }
    }
    buf[n < cap ? n : cap - 1] = 0;
}


static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(((const struct by_name *)a)->name, ((const struct by_name *)b)->name);
}

struct order {
    size_t key;
    size_t idx;
};

static int cmp_order(const void *a, const void *b)
{
    const struct order *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static const struct by_name *lookup(const struct by_name *ix, size_t n, const char *name)
{
    const struct by_name key = {name, 0};
    return bsearch(&key, ix, n, sizeof(*ix), cmp_by_name);
}

/* A source by name, or without the base-model prefix, or under an
 * alternative prefix. */
const struct by_name *llm_hfmap_find(const struct by_name *ix, size_t n, const char *name,
                                     const char *prefix, const char *const *alt)
{
    const struct by_name *hit = lookup(ix, n, name);
    size_t pl = prefix ? strlen(prefix) : 0;
    if (!hit && pl && !strncmp(name, prefix, pl)) hit = lookup(ix, n, name + pl);
    for (const char *const *a = alt; !hit && a && a[0] && a[1]; a += 2) {
        size_t fl = strlen(a[0]);
        char b[LLM_NAME_MAX + 64];
        if (!strncmp(name, a[0], fl) &&
            (size_t)snprintf(b, sizeof b, "%s%s", a[1], name + fl) < sizeof b)
            hit = lookup(ix, n, b);
    }
    return hit;
}

static int skipped(const struct llm_arch_def *def, const char *name)
{
    for (const char *const *p = def->skip_prefixes; p && *p; p++)
        if (!strncmp(name, *p, strlen(*p))) return 1;
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* "lm_head.weight", or it under an alternative prefix */
static int is_lm_head(const struct llm_arch_def *def, const char *name)
{
    static const char lm[] = "lm_head.weight";
    if (!strcmp(name, lm)) return 1;
    for (const char *const *a = def->alt_prefixes; a && a[0] && a[1]; a += 2) {
        size_t fl = strlen(a[0]), tl = strlen(a[1]);
        if (!strncmp(lm, a[0], fl) && !strncmp(name, a[1], tl) && !strcmp(name + tl, lm + fl))
            return 1;
    }
    return 0;
}

static int ignorable(const struct llm_model_desc *d, const struct llm_arch_def *def,
                     const char *name)
{
    for (const char *const *p = def->ignore; p && *p; p++)
        if (ends_with(name, *p)) return 1;
    return d->tied_embeddings && is_lm_head(def, name);
}

static const struct llm_hf_rule *find_rule(const struct llm_hf_rule *r, size_t n, int slot,
                                           int bias)
{
    for (size_t i = 0; i < n; i++)
        if (r[i].slot == slot && r[i].bias == bias) return &r[i];
    return NULL;
}

/* Sources a rule has for an item of canonical shape (nd, s). */
static int n_sources(const struct llm_hf_rule *r, int nd, const int64_t *s)
{
    if (r->xform == LLM_XF_STACK) return nd > 1 ? (int)s[0] : -1;
    if (r->xform != LLM_XF_CONCAT) return 1;
    int n = 0;
    while (n < 3 && r->hf[n]) n++;
    return n;
}

/* Expected shape of source k of an item. */
static void source_shape(const struct llm_model_desc *d, const struct llm_plan_item *it, int k,
                         int *nd, int64_t *s)
{
    *nd = it->ndim;
    memcpy(s, it->shape, sizeof(int64_t) * LLM_MAX_DIMS);
    switch (it->xform) {
    case LLM_XF_CONCAT:
        if (it->n_src == 3) /* q; k; v */
            s[0] = (int64_t)(k == 0 ? d->n_heads : d->n_kv_heads) * d->head_dim;
        else
            s[0] = it->shape[0] / it->n_src;
        break;
    case LLM_XF_TRANSPOSE: {
        const int a = it->ndim == 3; /* an expert stack: each matrix */
        s[a] = it->shape[a + 1];
        s[a + 1] = it->shape[a];
        break;
    }
    case LLM_XF_DEINTERLEAVE: /* [E][out][in] from [E][in][2 out]; a bias [E][2 out] */
    case LLM_XF_COLS:
        if (it->ndim == 3) {
            s[1] = it->shape[2];
            s[2] = 2 * it->shape[1];
        } else {
            s[1] = 2 * it->shape[1];
        }
        break;
    case LLM_XF_ROWS:
        s[it->ndim == 3] = 2 * it->shape[it->ndim == 3];
        break;
    case LLM_XF_STACK:
        *nd = it->ndim - 1;
        memmove(s, s + 1, sizeof(int64_t) * (LLM_MAX_DIMS - 1));
        s[LLM_MAX_DIMS - 1] = 0;
        break;
    default: break;
    }
}

/* An MXFP4 expert stack (GPT-OSS) in place of the dense source hf: 1 when
 * hf_blocks is absent (not this case), 0 when planned (it->mx, src[0],
 * qside[0][0]), -1 on error. */
static int plan_mx(const struct llm_st *st, const struct by_name *ix, size_t nst,
                   const struct llm_arch_def *def, const char *hf, struct llm_plan_item *it,
                   unsigned char *used)
{
    char bn[LLM_NAME_MAX + 48], sn[LLM_NAME_MAX + 48];
    snprintf(bn, sizeof bn, "%s_blocks", hf);
    snprintf(sn, sizeof sn, "%s_scales", hf);
    const struct by_name *hb = llm_hfmap_find(ix, nst, bn, def->base_prefix, def->alt_prefixes);
    if (!hb) return 1;
    const struct llm_tensor *b = llm_st_get(st, hb->idx);
    const char *file = llm_st_file_path(st, (size_t)llm_st_shard_of(st, hb->idx));
    const struct by_name *hs = llm_hfmap_find(ix, nst, sn, def->base_prefix, def->alt_prefixes);
    if (!hs) {
        llm_err_set(LLM_ENOTFOUND, "'%s': tensor '%s' not found (the scales of '%s')", file, sn,
                    b->name);
        return -1;
    }
    if (it->xform != LLM_XF_COPY && it->xform != LLM_XF_TRANSPOSE &&
        it->xform != LLM_XF_DEINTERLEAVE) {
        llm_err_set(LLM_EUNSUPPORTED, "'%s': tensor '%s': MXFP4 does not take transform %s", file,
                    b->name, llm_xform_name(it->xform));
        return -1;
    }
    const struct llm_tensor *sc = llm_st_get(st, hs->idx);
    /* rows x cols of each expert's [out][in] matrix as stored */
    const int64_t E = it->shape[0];
    const int64_t rows = it->xform == LLM_XF_DEINTERLEAVE ? 2 * it->shape[1] : it->shape[1];
    const int64_t cols = it->shape[2];
    const int64_t eb[4] = {E, rows, cols / 32, 16}, es[3] = {E, rows, cols / 32};
    if (cols % 32) {
        llm_err_set(LLM_ESHAPE, "'%s': MXFP4 tensor '%s': %lld inputs are not whole blocks of 32",
                    file, b->name, (long long)cols);
        return -1;
    }
    int ok = b->ndim == 4 && sc->ndim == 3;
    for (int k = 0; ok && k < 4; k++)
        ok = b->shape[k] == eb[k] && (k == 3 || sc->shape[k] == es[k]);
    if (!ok) {
        char x[160], y[160], z[160], w[160];
        llm_shape_str(x, sizeof x, 4, eb);
        llm_shape_str(w, sizeof w, 3, es);
        llm_shape_str(y, sizeof y, b->ndim, b->shape);
        llm_shape_str(z, sizeof z, sc->ndim, sc->shape);
        llm_err_set(LLM_ESHAPE,
                    "'%s': MXFP4 tensors '%s' and '%s' expected %s and %s, found %s "
                    "and %s",
                    file, b->name, sc->name, x, w, y, z);
        return -1;
    }
    if (b->dtype != LLM_DTYPE_U8 || sc->dtype != LLM_DTYPE_U8) {
        llm_err_set(LLM_EFORMAT, "'%s': MXFP4 tensors '%s' and '%s' must be U8, found %s and %s",
                    file, b->name, sc->name, llm_dtype_name(b->dtype), llm_dtype_name(sc->dtype));
        return -1;
    }
    it->mx = 1;
    it->src[0] = hb->idx;
    memset(it->qside, 0xff, sizeof it->qside);
    it->qside[0][0] = hs->idx;
    used[hb->idx] = used[hs->idx] = 1;
    return 0;
}

/* Source k of it, an F8_E4M3 weight t of a block-FP8 checkpoint: its
 * weight_scale_inv checked (float, one per block) and recorded. */
static int plan_fp8_block(const struct llm_st *st, const struct by_name *ix, size_t nst,
                          const struct llm_arch_def *def, const struct llm_hfq *q, const char *hf,
                          const char *file, const struct llm_tensor *t, struct llm_plan_item *it,
                          int k, unsigned char *used)
{
    if (it->xform != LLM_XF_COPY && it->xform != LLM_XF_CONCAT && it->xform != LLM_XF_STACK)
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': FP8 tensor '%s' takes transform %s, which "
                           "block-wise FP8 is not expanded through",
                           file, t->name, llm_xform_name(it->xform));
    if (t->ndim != 2)
        return llm_err_set(LLM_ESHAPE, "'%s': FP8 tensor '%s' is %d-D, not a matrix", file,
                           t->name, t->ndim);
    char sn[LLM_NAME_MAX + 48];
    snprintf(sn, sizeof sn, "%s_scale_inv", hf);
    const struct by_name *hs = llm_hfmap_find(ix, nst, sn, def->base_prefix, def->alt_prefixes);
    if (!hs)
        return llm_err_set(LLM_ENOTFOUND, "'%s': tensor '%s' not found (the block scales of FP8 "
                           "'%s')",
                           file, sn, t->name);
    const struct llm_tensor *s = llm_st_get(st, hs->idx);
    const int64_t bo = q->fp8_block[0], bi = q->fp8_block[1];
    const int64_t want[2] = {(t->shape[0] + bo - 1) / bo, (t->shape[1] + bi - 1) / bi};
    if (!llm_dtype_is_float(s->dtype) || s->ndim != 2 || s->shape[0] != want[0] ||
        s->shape[1] != want[1]) {
        char a[160], b[160];
        llm_shape_str(a, sizeof a, 2, want);
        llm_shape_str(b, sizeof b, s->ndim, s->shape);
        return llm_err_set(LLM_ESHAPE, "'%s': block scales '%s' expected %s of a float type (one "
                           "per %lld x %lld block), found %s %s",
                           file, s->name, a, (long long)bo, (long long)bi,
                           llm_dtype_name(s->dtype), b);
    }
    it->fp8b = 1;
    it->fp8_block[0] = (int)bo;
    it->fp8_block[1] = (int)bi;
    it->qside[k][0] = hs->idx;
    used[hs->idx] = 1;
    return 0;
}

/* The plan item for canonical tensor `name`; sources checked and recorded. */
static int plan_item(const struct llm_model_desc *d, const struct llm_arch_def *def,
                     const struct llm_hf_rule *rules, size_t n_rules, const struct llm_st *st,
                     const struct by_name *ix, size_t nst, const char *ck, const char *name,
                     const struct llm_hfq *q, struct llm_plan_item *it, unsigned char *used,
                     size_t *first)
{
    int slot, layer, bias;
    if (llm_name_to_slot(name, &slot, &layer, &bias))
        return llm_err_set(LLM_EINVAL, "'%s': not a canonical tensor name", name);
    const struct llm_hf_rule *r = find_rule(rules, n_rules, slot, bias);
    if (!r)
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': no HF source known for '%s' of a %s model", ck,
                           name, llm_arch_name(d->arch));
    snprintf(it->name, sizeof(it->name), "%s", name);
    int rc = llm_desc_tensor_shape(d, name, &it->ndim, it->shape);
    if (rc) return rc;
    struct llm_hf_rule dense;
    if (r->xform == LLM_XF_STACK && it->ndim == 2 && r->hf[1]) {
        /* a dense layer among expert layers (DeepSeek): the rule's second name */
        dense = (struct llm_hf_rule){r->slot, r->bias, LLM_XF_COPY, {r->hf[1]}, 0};
        r = &dense;
    }
    it->xform = r->xform;
    it->n_src = n_sources(r, it->ndim, it->shape);
    if (it->n_src < 1 || it->n_src > LLM_PLAN_MAX_SRC)
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': %d sources (at most %d)", name, it->n_src,
                           LLM_PLAN_MAX_SRC);
    it->row0 = r->xform == LLM_XF_ROWS           ? (int64_t)(r->half & 1) * it->shape[it->ndim == 3]
               : r->xform == LLM_XF_DEINTERLEAVE ? r->half & 1
                                                 : 0;
    if ((r->xform == LLM_XF_DEINTERLEAVE && it->ndim != 3 && it->ndim != 2) ||
        (r->xform == LLM_XF_TRANSPOSE && it->ndim != 2 && it->ndim != 3))
        return llm_err_set(LLM_EINVAL, "'%s': transform %s does not apply to a %d-D tensor", name,
                           llm_xform_name(r->xform), it->ndim);
    it->qkv_groups = d->n_kv_heads;
    it->qkv_q_per_group = d->n_heads / d->n_kv_heads;
    it->head_dim = d->head_dim;
    *first = SIZE_MAX;
    int dtype = -1;
    const char *dtype_of = NULL;
    int quant = q && q->kind && !bias && llm_wslot_kind(slot) == LLM_WK_LINEAR;
    const int fp8_blocks = q && q->fp8_block[0] > 0 && !bias;
    if (quant || fp8_blocks) memset(it->qside, 0xff, sizeof it->qside); /* SIZE_MAX: none */
    for (int k = 0; k < it->n_src; k++) {
        char hf[LLM_NAME_MAX + 32];
        expand(hf, sizeof(hf), r->hf[r->xform == LLM_XF_CONCAT ? k : 0], layer, k);
        const struct by_name *hit = llm_hfmap_find(ix, nst, hf, def->base_prefix,
                                                   def->alt_prefixes);
        if (!hit && r->xform == LLM_XF_COPY && r->hf[1]) {
            /* the rule's second name, where the checkpoint has it instead */
            char alt[LLM_NAME_MAX + 32];
            expand(alt, sizeof(alt), r->hf[1], layer, k);
            const struct by_name *h2 = llm_hfmap_find(ix, nst, alt, def->base_prefix,
                                                      def->alt_prefixes);
            if (h2) {
                hit = h2;
                snprintf(hf, sizeof hf, "%s", alt);
            }
        }
        if (quant) {
            struct llm_hfq_lookup lk = {st, ix, nst, def->base_prefix, def->alt_prefixes, used};
            int nd;
            int64_t es[LLM_MAX_DIMS];
            source_shape(d, it, k, &nd, es);
            rc = llm_hfq_plan_source(q, &lk, hf, hit ? hit->idx : SIZE_MAX, nd, es, it, k);
            if (rc < 0) return llm_errcode();
            if (rc == 1) {
                if (it->src[k] < *first) *first = it->src[k];
                continue;
            }
            rc = 0;
        }
        if (!hit && q && q->mxfp4 && it->ndim == 3 && it->n_src == 1 && !bias) {
            rc = plan_mx(st, ix, nst, def, hf, it, used);
            if (rc <= 0) {
                if (!rc && it->src[0] < *first) *first = it->src[0];
                return rc < 0 ? llm_errcode() : 0;
            }
            rc = 0;
        }
        if (!hit) {
            char bn[LLM_NAME_MAX + 48];
            snprintf(bn, sizeof bn, "%s_blocks", hf);
            if (llm_hfmap_find(ix, nst, bn, def->base_prefix, def->alt_prefixes))
                return llm_err_set(LLM_EFORMAT,
                                   "'%s': tensor '%s' not found (needed for '%s'); '%s' is there "
                                   "but config.json does not say quant_method mxfp4",
                                   ck, hf, it->name, bn);
            return llm_err_set(LLM_ENOTFOUND, "'%s': tensor '%s' not found (needed for '%s')", ck,
                               hf, it->name);
        }
        size_t idx = hit->idx;
        const struct llm_tensor *t = llm_st_get(st, idx);
        const char *file = llm_st_file_path(st, (size_t)llm_st_shard_of(st, idx));
        int nd;
        int64_t es[LLM_MAX_DIMS];
        source_shape(d, it, k, &nd, es);
        /* a copied source may carry leading dimensions of one (ERNIE 4.5's correction
         * bias [1][experts]): the same bytes */
        int lead = 0;
        while (it->xform == LLM_XF_COPY && t->ndim - lead > nd && t->shape[lead] == 1)
            lead++;
        int same = t->ndim - lead == nd || it->xform == LLM_XF_ONES; /* ONES: its dtype alone */
        for (int j = 0; same && j < nd && it->xform != LLM_XF_ONES; j++)
            same = t->shape[lead + j] == es[j];
        if (!same && (r->half & LLM_HF_XW) && it->ndim == 3 && it->n_src == 1 && t->ndim == 3 &&
            (it->xform == LLM_XF_COPY || it->xform == LLM_XF_ROWS) && t->shape[0] == es[0] &&
            t->shape[1] == es[2] && t->shape[2] == es[1]) {
            /* the stack stored x @ W: each expert's matrix read transposed */
            it->xform = it->xform == LLM_XF_COPY ? LLM_XF_TRANSPOSE : LLM_XF_COLS;
            same = 1;
        }
        if (!same) {
            char a[160], b[160];
            llm_shape_str(a, sizeof(a), nd, es);
            llm_shape_str(b, sizeof(b), t->ndim, t->shape);
            return llm_err_set(LLM_ESHAPE, "'%s': tensor '%s' expected %s, found %s", file, t->name,
                               a, b);
        }
        if (fp8_blocks && t->dtype == LLM_DTYPE_F8E4M3) {
            if ((rc = plan_fp8_block(st, ix, nst, def, q, hf, file, t, it, k, used))) return rc;
        } else if (!llm_dtype_is_float(t->dtype)) {
            return llm_err_set(LLM_EUNSUPPORTED, "'%s': tensor '%s' has dtype %s, not a float type",
                               file, t->name, llm_dtype_name(t->dtype));
        }
        if (dtype >= 0 && t->dtype != dtype)
            return llm_err_set(LLM_EFORMAT,
                               "'%s': tensor '%s' is %s but '%s' is %s; the parts of '%s' must "
                               "share a dtype",
                               file, t->name, llm_dtype_name(t->dtype), dtype_of,
                               llm_dtype_name(dtype), it->name);
        dtype = t->dtype;
        dtype_of = t->name;
        it->src[k] = idx;
        used[idx] = 1;
        if (idx < *first) *first = idx;
    }
    return quant ? llm_hfq_plan_check(q, st, ck, it) : 0;
}

/* Warn about what the plan leaves out (a few by name, then a count). */
static void warn_unused(const struct llm_model_desc *d, const struct llm_arch_def *def,
                        const struct llm_st *st, const unsigned char *used, const char *ck)
{
    size_t unused = 0, other = 0, nst = llm_st_count(st);
    for (size_t i = 0; i < nst; i++) {
        const struct llm_tensor *t = llm_st_get(st, i);
        if (used[i] || ignorable(d, def, t->name)) continue;
        if (skipped(def, t->name)) {
            other++;
            continue;
        }
        if (unused < 8)
            llm_warn("'%s': tensor '%s' is not used",
                     llm_st_file_path(st, (size_t)llm_st_shard_of(st, i)), t->name);
        unused++;
    }
    if (unused > 8) llm_warn("'%s': %zu more tensors are not used", ck, unused - 8);
    if (other)
        llm_info("'%s': %zu tensors of the vision tower and projector are left out (the "
                 "language model only)", ck, other);
}

static uint64_t numel_of(int nd, const int64_t *s)
{
    uint64_t n;
    return llm_shape_numel(nd, s, &n) ? 0 : n;
}

uint64_t llm_hfmap_made_params(const struct llm_model_desc *d)
{
    const struct llm_arch_def *def = llm_arch_def_of(d->arch);
    if (!def || !def->rules) return 0;
    size_t n_rules = 0, nn = 0;
    const struct llm_hf_rule *rules = def->rules(d, &n_rules);
    char(*names)[LLM_NAME_MAX] = NULL;
    if (llm_desc_tensor_names(d, &names, &nn)) return 0;
    uint64_t total = 0;
    for (size_t i = 0; i < nn; i++) {
        int slot, layer, bias, nd;
        int64_t s[LLM_MAX_DIMS];
        if (llm_name_to_slot(names[i], &slot, &layer, &bias)) continue;
        const struct llm_hf_rule *r = find_rule(rules, n_rules, slot, bias);
        if (!r || r->xform != LLM_XF_ONES || llm_desc_tensor_shape(d, names[i], &nd, s)) continue;
        total += numel_of(nd, s);
    }
    free(names);
    return total;
}

int llm_hfmap_plan(const struct llm_model_desc *d, const struct llm_st *st,
                   struct llm_plan_item **items, size_t *n)
{
    return llm_hfmap_plan_q(d, st, NULL, items, n);
}

int llm_hfmap_plan_q(const struct llm_model_desc *d, const struct llm_st *st,
                     const struct llm_hfq *q, struct llm_plan_item **items, size_t *n)
{
    *items = NULL;
    *n = 0;
    if (!d || !st) return llm_err_set(LLM_EINVAL, "no description or checkpoint to plan from");
    int rc = llm_desc_validate(d);
    if (rc) return rc;
    const struct llm_arch_def *def = llm_arch_def_of(d->arch);
    size_t n_rules = 0;
    const struct llm_hf_rule *rules = def->rules(d, &n_rules);

    char ck[512];
    ckpt_name(st, ck, sizeof(ck));
    char(*names)[LLM_NAME_MAX] = NULL;
    size_t nn = 0, nst = llm_st_count(st);
    rc = llm_desc_tensor_names(d, &names, &nn);
    if (rc) return rc;
    struct llm_plan_item *out = calloc(nn ? nn : 1, sizeof(*out));
    struct order *ord = calloc(nn ? nn : 1, sizeof(*ord));
    unsigned char *used = calloc(nst ? nst : 1, 1);
    struct by_name *ix = malloc((nst ? nst : 1) * sizeof(*ix));
    struct llm_plan_item *sorted = NULL;
    if (!out || !ord || !used || !ix) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nst; i++)
        ix[i] = (struct by_name){llm_st_get(st, i)->name, i};
    qsort(ix, nst, sizeof(*ix), cmp_by_name);
    for (size_t i = 0; i < nn && !rc; i++) {
        rc = plan_item(d, def, rules, n_rules, st, ix, nst, ck, names[i], q, &out[i], used,
                       &ord[i].key);
        ord[i].idx = i;
    }
    if (rc) goto done;
    warn_unused(d, def, st, used, ck);
    qsort(ord, nn, sizeof(*ord), cmp_order);
    if (!(sorted = malloc((nn ? nn : 1) * sizeof(*sorted)))) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nn; i++)
        sorted[i] = out[ord[i].idx];
    *items = sorted;
    *n = nn;
done:
    free(out);
    free(ord);
    free(used);
    free(ix);
    free(names);
    return rc;
}

/* ---- executing one item ---------------------------------------------------------- */

/* Convert n elements of src (dtype sdt) into dst (dt). */
static int conv(void *dst, int dt, const void *src, int sdt, uint64_t n, const char *name)
{
    int rc = llm_convert(dst, dt, src, sdt, (size_t)n);
    return rc ? llm_err_wrap(rc, "tensor '%s'", name) : 0;
}

/* dst[c][r] = src[r * ld + c * step + c0] for r < rows, c < cols (es-byte
 * elements): a transpose of every step-th column from c0 on. */
static void transpose_cols(uint8_t *dst, const uint8_t *src, int64_t rows, int64_t cols, int64_t ld,
                           int64_t step, int64_t c0, size_t es)
{
    const int64_t T = 32;
    for (int64_t r0 = 0; r0 < rows; r0 += T)
        for (int64_t b0 = 0; b0 < cols; b0 += T)
            for (int64_t r = r0; r < r0 + T && r < rows; r++)
                for (int64_t c = b0; c < b0 + T && c < cols; c++)
                    memcpy(dst + ((size_t)c * (size_t)rows + (size_t)r) * es,
                           src + ((size_t)r * (size_t)ld + (size_t)(c * step + c0)) * es, es);
}

/* Source k of it into dst (n elements of dt): converted, or a block-FP8
 * weight expanded row by row, w * its block's scale in fp32, rounded once. */
static int src_conv(const struct llm_plan_item *it, const struct llm_st *st, int k, uint8_t *dst,
                    int dt, uint64_t n)
{
    const struct llm_tensor *t = llm_st_get(st, it->src[k]);
    if (!it->fp8b || it->qside[k][0] == SIZE_MAX)
        return conv(dst, dt, t->data, t->dtype, n, it->name);
    const struct llm_tensor *s = llm_st_get(st, it->qside[k][0]);
    const int64_t R = t->shape[0], C = t->shape[1], SC = s->shape[1];
    const int64_t bo = it->fp8_block[0], bi = it->fp8_block[1];
    const size_t es = (size_t)llm_dtype_bits(dt) / 8, ss = (size_t)llm_dtype_bits(s->dtype) / 8;
    if ((uint64_t)(R * C) != n)
        return llm_err_set(LLM_ESHAPE, "tensor '%s': FP8 source of %lld x %lld for %llu values",
                           it->name, (long long)R, (long long)C, (unsigned long long)n);
    float *row = malloc(sizeof(float) * (size_t)(C + SC));
    if (!row) return llm_err_set(LLM_ENOMEM, "tensor '%s': out of memory", it->name);
    float *sc = row + C;
    int rc = 0;
    for (int64_t r = 0; r < R && !rc; r++) {
        rc = conv(row, LLM_DTYPE_F32, (const uint8_t *)t->data + (size_t)(r * C), t->dtype,
                  (uint64_t)C, it->name);
        if (!rc && r % bo == 0)
            rc = conv(sc, LLM_DTYPE_F32, (const uint8_t *)s->data + (size_t)(r / bo * SC) * ss,
                      s->dtype, (uint64_t)SC, it->name);
        for (int64_t c = 0; !rc && c < C; c++)
            row[c] *= sc[c / bi];
        if (!rc) rc = conv(dst + (size_t)(r * C) * es, dt, row, LLM_DTYPE_F32, (uint64_t)C, it->name);
    }
    free(row);
    return rc;
}

/* MXFP4's element values (E2M1): sign, 2 exponent bits, 1 mantissa bit. */
static const float fp4_value[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                    -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

/* An MXFP4 stack's rows [E][rows][cols] (it->mx) into dst (dt): all of them,
 * or with DEINTERLEAVE the rows half, half + 2, ...  Each byte holds two
 * consecutive values, the low nibble first; a block of 32 shares the scale
 * 2^(s - 127), exact in bf16 and f32. */
static int build_mx(const struct llm_plan_item *it, const struct llm_st *st, int dt, uint8_t *out,
                    size_t es)
{
    const struct llm_tensor *b = llm_st_get(st, it->src[0]), *sc = llm_st_get(st, it->qside[0][0]);
    const int64_t E = b->shape[0], rows = b->shape[1], nb = b->shape[2], cols = 32 * nb;
    const int de = it->xform == LLM_XF_DEINTERLEAVE;
    float *row = malloc(sizeof(float) * (size_t)cols);
    if (!row)
        return llm_err_set(LLM_ENOMEM, "tensor '%s': out of memory (%lld values)", it->name,
                           (long long)cols);
    const uint8_t *bp = b->data, *sp = sc->data;
    int rc = 0;
    uint64_t o = 0;
    for (int64_t e = 0; e < E && !rc; e++)
        for (int64_t r = de ? it->row0 : 0; r < rows && !rc; r += de ? 2 : 1) {
            const int64_t er = e * rows + r;
            for (int64_t k = 0; k < nb && !rc; k++) {
                const uint8_t s = sp[er * nb + k];
                if (s == 0xff) {
                    rc = llm_err_set(
                        LLM_EFORMAT,
                        "'%s': tensor '%s': MXFP4 scale of expert %lld "
                        "row %lld block %lld is NaN (0xff)",
                        llm_st_file_path(st, (size_t)llm_st_shard_of(st, it->qside[0][0])),
                        sc->name, (long long)e, (long long)r, (long long)k);
                    break;
                }
                const float m = ldexpf(1.0f, (int)s - 127);
                const uint8_t *q = bp + (er * nb + k) * 16;
                for (int i = 0; i < 16; i++) {
                    row[k * 32 + 2 * i] = fp4_value[q[i] & 15] * m;
                    row[k * 32 + 2 * i + 1] = fp4_value[q[i] >> 4] * m;
                }
            }
            if (!rc) rc = conv(out + o * es, dt, row, LLM_DTYPE_F32, (uint64_t)cols, it->name);
            o += (uint64_t)cols;
        }
    free(row);
    return rc;
}

/* Per-group [q heads, k, v] rows -> q; k; v. */
static void regroup_qkv(uint8_t *dst, const uint8_t *src, const struct llm_plan_item *it,
                        size_t row_bytes)
{
    const size_t G = (size_t)it->qkv_groups, Q = (size_t)it->qkv_q_per_group;
    const size_t hd = (size_t)it->head_dim, head = hd * row_bytes;
    uint8_t *q = dst, *k = dst + G * Q * head, *v = k + G * head;
    for (size_t g = 0; g < G; g++) {
        const uint8_t *grp = src + g * (Q + 2) * head;
        memcpy(q + g * Q * head, grp, Q * head);
        memcpy(k + g * head, grp + Q * head, head);
        memcpy(v + g * head, grp + (Q + 1) * head, head);
    }
}

int llm_hfmap_build(const struct llm_plan_item *it, const struct llm_st *st, int dt, void *dst,
                    uint64_t nbytes)
{
    size_t es = (size_t)llm_dtype_bits(dt) / 8;
    uint64_t total = numel_of(it->ndim, it->shape);
    if (llm_dtype_bits(dt) % 8 || total * es != nbytes)
        return llm_err_set(LLM_EINVAL, "tensor '%s': %llu bytes for %llu elements of %s",
                           it->name, (unsigned long long)nbytes, (unsigned long long)total,
                           llm_dtype_name(dt));
    uint8_t *out = dst;
    const struct llm_tensor *t0 = llm_st_get(st, it->src[0]);
    int rc = 0;
    if (it->mx) return build_mx(it, st, dt, out, es);
    switch (it->xform) {
    case LLM_XF_COPY: return src_conv(it, st, 0, out, dt, total);
    case LLM_XF_ONES: {
        float *one = malloc(sizeof(float) * (size_t)(total ? total : 1));
        if (!one)
            return llm_err_set(LLM_ENOMEM, "tensor '%s': out of memory (%llu elements)", it->name,
                               (unsigned long long)total);
        for (uint64_t i = 0; i < total; i++)
            one[i] = 1.0f;
        rc = conv(out, dt, one, LLM_DTYPE_F32, total, it->name);
        free(one);
        return rc;
    }
    case LLM_XF_CONCAT:
    case LLM_XF_STACK: {
        uint64_t off = 0;
        for (int k = 0; k < it->n_src && !rc; k++) {
            const struct llm_tensor *t = llm_st_get(st, it->src[k]);
            uint64_t n = numel_of(t->ndim, t->shape);
            if (off + n > total)
                return llm_err_set(LLM_ESHAPE, "tensor '%s': sources exceed its shape", it->name);
            rc = src_conv(it, st, k, out + off * es, dt, n);
            off += n;
        }
        if (!rc && off != total)
            return llm_err_set(LLM_ESHAPE, "tensor '%s': sources hold %llu elements, shape needs "
                               "%llu", it->name, (unsigned long long)off, (unsigned long long)total);
        return rc;
    }
    case LLM_XF_ROWS: {
        /* 2-D: rows [row0, row0 + shape[0]) of a source of twice the rows; 3-D (experts
         * [E][2 n][k]): the same range of rows of each expert's matrix */
        const int three = it->ndim == 3;
        const uint64_t mats = three ? (uint64_t)it->shape[0] : 1, rows = (uint64_t)it->shape[three];
        const uint64_t row = total / mats / rows;
        const size_t sbytes = (size_t)llm_dtype_bits(t0->dtype) / 8;
        for (uint64_t e = 0; e < mats && !rc; e++)
            rc = conv(out + e * rows * row * es, dt,
                      (const uint8_t *)t0->data +
                          ((e * 2 * rows) + (uint64_t)it->row0) * row * sbytes,
                      t0->dtype, rows * row, it->name);
        return rc;
    }
    case LLM_XF_DEINTERLEAVE:
    case LLM_XF_COLS:
    case LLM_XF_TRANSPOSE: {
        /* each expert's matrix (a 2-D TRANSPOSE is one), converted then
         * transposed: DEINTERLEAVE takes every other column from row0, COLS
         * the columns row0 on */
        const int cols = it->xform == LLM_XF_COLS;
        const int de = it->xform == LLM_XF_DEINTERLEAVE || cols, three = it->ndim == 3;
        const int64_t mats = it->ndim == 2 && !de ? 1 : it->shape[0];
        const int64_t orow = three ? it->shape[1] : (de ? it->shape[1] : it->shape[0]);
        const int64_t ocol = three ? it->shape[2] : (de ? 1 : it->shape[1]);
        const int64_t src_cols = de ? 2 * orow : orow; /* source: [ocol][src_cols] */
        const uint64_t mat = (uint64_t)ocol * (uint64_t)src_cols;
        const size_t sbytes = (size_t)llm_dtype_bits(t0->dtype) / 8;
        uint8_t *tmp = malloc((size_t)mat * es);
        if (!tmp)
            return llm_err_set(LLM_ENOMEM, "tensor '%s': out of memory (%llu bytes)", it->name,
                               (unsigned long long)(mat * es));
        for (int64_t e = 0; e < mats && !rc; e++) {
            rc = conv(tmp, dt, (const uint8_t *)t0->data + (size_t)e * mat * sbytes, t0->dtype, mat,
                      it->name);
            if (!rc)
                transpose_cols(out + (size_t)e * (size_t)(orow * ocol) * es, tmp, ocol, orow,
                               src_cols, de && !cols ? 2 : 1, de ? it->row0 : 0, es);
        }
        free(tmp);
        return rc;
    }
    case LLM_XF_QKV_HEADS: {
        uint8_t *tmp = malloc(nbytes ? nbytes : 1);
        if (!tmp)
            return llm_err_set(LLM_ENOMEM, "tensor '%s': out of memory (%llu bytes)", it->name,
                               (unsigned long long)nbytes);
        rc = conv(tmp, dt, t0->data, t0->dtype, total, it->name);
        if (!rc) {
            size_t rows = (size_t)it->shape[0];
            size_t need = (size_t)it->qkv_groups * ((size_t)it->qkv_q_per_group + 2) *
                          (size_t)it->head_dim;
            if (rows != need)
                rc = llm_err_set(LLM_ESHAPE, "tensor '%s': %zu rows are not %d groups of %d "
                                 "heads", it->name, rows, it->qkv_groups, it->qkv_q_per_group + 2);
            else
                regroup_qkv(out, tmp, it, (size_t)(total / rows) * es);
        }
        free(tmp);
        return rc;
    }
    default:
        return llm_err_set(LLM_EINVAL, "tensor '%s': unknown transform %d", it->name, it->xform);
    }
}
