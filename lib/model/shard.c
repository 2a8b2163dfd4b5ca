/* shard.c - the split of each tensor over tensor/pipeline-parallel ranks
 * (llm/shard.h).  Shapes and rules only; llm-shard moves the bytes.
 */
#include <stdio.h>
#include <string.h>

#include "llm/err.h"
#include "llm/shard.h"
#include "llm/weight.h"

/* Which axis of a weight a slot splits: its output rows, its input
 * columns, its heads (per-head norms), or none. */
enum { ON_NONE = 0, ON_OUT, ON_IN, ON_HEADS };

static int slot_split(int slot, int *kind)
{
    switch (slot) {
    case LLM_W_QKV: *kind = LLM_SPLIT_QKV; return ON_OUT;
    case LLM_W_MLP_FC:
    case LLM_W_MLP_GATE: *kind = LLM_SPLIT_EVEN; return ON_OUT;
    case LLM_W_LM_HEAD: *kind = LLM_SPLIT_VOCAB; return ON_OUT;
    case LLM_W_ATTN_OUT:
    case LLM_W_MLP_OUT: *kind = LLM_SPLIT_EVEN; return ON_IN;
    case LLM_W_Q_NORM: *kind = LLM_SPLIT_EVEN; return ON_HEADS;
    case LLM_W_K_NORM: *kind = LLM_SPLIT_KV_HEADS; return ON_HEADS;
    case LLM_W_ATTN_SINKS: *kind = LLM_SPLIT_EVEN; return ON_OUT; /* one value per query head */
    default: *kind = LLM_SPLIT_WHOLE; return ON_NONE;
    }
}

static int whole(struct llm_split *s)
{
    s->kind = LLM_SPLIT_WHOLE;
    s->axis = 0;
    return 0;
}

int llm_split_of(const struct llm_model_desc *d, const char *name, int ndim, const int64_t *shape,
                 struct llm_split *s)
{
    memset(s, 0, sizeof *s);
    int slot, layer, is_bias;
    const char *side = NULL;
    char stem[LLM_NAME_MAX];
    if (llm_name_to_slot(name, &slot, &layer, &is_bias)) {
        /* a quantization side tensor "<stem>.<what>", or a layer's KV scale */
        const char *dot = strrchr(name, '.');
        if (!dot || (size_t)(dot - name) + sizeof ".weight" > sizeof stem) goto unknown;
        snprintf(stem, sizeof stem, "%.*s.weight", (int)(dot - name), name);
        side = dot + 1;
        if (llm_name_to_slot(stem, &slot, &layer, &is_bias)) {
            layer = llm_name_parse_layer(name, NULL);
            if (layer < 0 || strcmp(side, LLM_WQ_KV_SCALE)) goto unknown;
            s->layer = layer;
            return whole(s);
        }
        is_bias = 0;
    }
    s->layer = llm_wslot_per_layer(slot) ? layer : -1;
    if (s->layer < 0) {
        s->stage_first = slot < LLM_W_FINAL_NORM;
        s->stage_last = !s->stage_first;
    }
    if (s->layer >= d->n_layers)
        return llm_err_set(LLM_EINVAL, "tensor '%s': layer %d of a %d-layer model", name, s->layer,
                           d->n_layers);
    int kind, on = slot_split(slot, &kind);
    if (on == ON_NONE || ndim < 1) return whole(s);
    /* (a dense layer before the expert layers has plain matrices: DeepSeek) */
    const int expert = d->n_experts > 0 && s->layer >= d->moe_first_layer &&
                       llm_wslot_kind(slot) == LLM_WK_LINEAR &&
                       slot != LLM_W_ROUTER && slot != LLM_W_QKV && slot != LLM_W_ATTN_OUT &&
                       slot != LLM_W_LM_HEAD;
    if (!side) {
        s->experts = expert;
        if (is_bias) {
            if (on == ON_IN) {
                s->kind = LLM_SPLIT_FIRST;
                return 0;
            }
            s->kind = kind;
            s->axis = ndim - 1;
            return 0;
        }
        s->kind = kind;
        if (on == ON_HEADS) {
            if (ndim == 1) return whole(s); /* one weight shared by the heads */
            s->axis = 0;
            return 0;
        }
        s->axis = (on == ON_OUT ? 0 : 1) + (expert ? 1 : 0);
        if (s->axis >= ndim) goto bad_shape;
        return 0;
    }
    if (expert)
        return llm_err_set(LLM_EUNSUPPORTED, "tensor '%s': quantized experts are not split", name);
    if (!strcmp(side, LLM_WQ_ACT_SCALE) || !strcmp(side, LLM_WQ_SQ_ACT_SCALE)) return whole(s);
    if (!strcmp(side, LLM_WQ_PERM)) {
        /* column-parallel: every rank reads all the inputs; row-parallel: the
         * inputs a rank holds are not a range of the permuted order, so
         * llm-shard refuses it over more than one tensor-parallel rank */
        if (on != ON_IN) return whole(s);
        s->kind = LLM_SPLIT_EVEN;
        s->axis = 0;
        return 0;
    }
    if (!strcmp(side, LLM_WQ_PREQUANT) || !strcmp(side, LLM_WQ_SMOOTHER)) {
        if (on != ON_IN) return whole(s);
        s->kind = LLM_SPLIT_EVEN;
        s->axis = 0;
        return 0;
    }
    if (!strcmp(side, LLM_WQ_CHANNEL_SCALE) || !strcmp(side, LLM_WQ_SCALE) ||
        !strcmp(side, LLM_WQ_ZERO)) {
        uint64_t n = 1;
        for (int i = 0; i < ndim; i++) n *= (uint64_t)shape[i];
        if (ndim == 2) { /* int4 groups [in / group][out] */
            s->kind = on == ON_OUT ? kind : LLM_SPLIT_EVEN;
            s->axis = on == ON_OUT ? 1 : 0;
            return 0;
        }
        if (ndim != 1 || n <= 1 || on != ON_OUT) return whole(s); /* per tensor, or per row */
        s->kind = kind;
        s->axis = 0;
        return 0;
    }
unknown:
    return llm_err_set(LLM_EUNSUPPORTED, "tensor '%s': no rule to split it over ranks", name);
bad_shape:
    return llm_err_set(LLM_ESHAPE, "tensor '%s': %d dimensions, too few for its split", name, ndim);
}

/* The tensor-parallel ranks a tensor is split over: all of the stage's,
 * or for an expert stack under ep groups its group's - as TensorRT-LLM's
 * mapping, the ranks of group tp_rank % ep, tp_rank / ep among them. */
static void split_group(const struct llm_split *s, int tp, int ep, int tp_rank, int *n, int *r)
{
    int grouped = s->experts && ep > 1 && tp % ep == 0;
    *n = grouped ? tp / ep : tp;
    *r = grouped ? tp_rank / ep : tp_rank;
}

int llm_split_whole(const struct llm_split *s, int ep)
{
    return (s->kind == LLM_SPLIT_WHOLE || s->kind == LLM_SPLIT_FIRST) && !(s->experts && ep > 1);
}

int llm_split_held(const struct llm_model_desc *d, const struct llm_split *s, int tp, int ep,
                   int pp, int tp_rank, int pp_rank)
{
    int n, r;
    split_group(s, tp, ep, tp_rank, &n, &r);
    if (s->kind == LLM_SPLIT_FIRST && r != 0) return 0;
    if (s->layer >= 0) {
        int f, e;
        llm_partition_layers(d->n_layers, pp, pp_rank, &f, &e);
        return s->layer >= f && s->layer < e;
    }
    if (s->stage_first) return pp_rank == 0;
    if (s->stage_last) return pp_rank == pp - 1;
    return 1;
}

static void kv_heads(const struct llm_model_desc *d, int tp, int r, int *first, int *n)
{
    int nkv = d->n_kv_heads;
    if (nkv >= tp) {
        *n = nkv / tp;
        *first = r * *n;
    } else {
        *n = 1;
        *first = r * nkv / tp;
    }
}

int llm_split_ranges(const struct llm_model_desc *d, const struct llm_split *s, int64_t len,
                     int tp, int ep, int tp_rank, struct llm_split_ranges *o)
{
    memset(o, 0, sizeof *o);
    o->n = 1;
    o->len[0] = len;
    if (s->experts && ep > 1) {
        if (tp % ep || d->n_experts % ep)
            return llm_err_set(LLM_ESHAPE, "%d experts over tp %d do not split into %d groups",
                               d->n_experts, tp, ep);
        o->experts = d->n_experts / ep;
        o->expert_first = (int64_t)(tp_rank % ep) * o->experts;
    }
    int r;
    split_group(s, tp, ep, tp_rank, &tp, &r);
    int nh = d->n_heads, nkv = d->n_kv_heads, k0, nk;
    kv_heads(d, tp, r, &k0, &nk);
    switch (s->kind) {
    case LLM_SPLIT_WHOLE:
    case LLM_SPLIT_FIRST: break;
    case LLM_SPLIT_EVEN:
        if (len % tp) goto bad;
        o->len[0] = len / tp;
        o->start[0] = r * o->len[0];
        break;
    case LLM_SPLIT_KV_HEADS: {
        if (len % nkv) goto bad;
        int64_t u = len / nkv;
        o->start[0] = k0 * u;
        o->len[0] = nk * u;
        break;
    }
    case LLM_SPLIT_QKV: {
        if (len % (nh + 2 * nkv) || nh % tp) goto bad;
        int64_t u = len / (nh + 2 * nkv), q = (int64_t)(nh / tp) * u;
        o->n = 3;
        o->start[0] = r * q;
        o->len[0] = q;
        o->start[1] = (int64_t)nh * u + k0 * u;
        o->start[2] = (int64_t)(nh + nkv) * u + k0 * u;
        o->len[1] = o->len[2] = nk * u;
        break;
    }
    case LLM_SPLIT_VOCAB: {
        int64_t vp = (len + tp - 1) / tp, lo = r * vp;
        o->start[0] = lo < len ? lo : len;
        o->len[0] = lo >= len ? 0 : (len - lo < vp ? len - lo : vp);
        o->pad = vp - o->len[0];
        break;
    }
    default: goto bad;
    }
    for (int i = 0; i < o->n; i++)
        o->local += o->len[i];
    o->local += o->pad;
    return 0;
bad:
    return llm_err_set(LLM_ESHAPE, "an axis of %lld does not split %d ways (%s)", (long long)len,
                       tp, s->kind == LLM_SPLIT_QKV ? "q, k, v heads" : "evenly");
}

int64_t llm_split_whole_len(const struct llm_model_desc *d, const struct llm_split *s,
                            int64_t local, int tp, int ep)
{
    int nh = d->n_heads, nkv = d->n_kv_heads, k0, nk, r;
    split_group(s, tp, ep, 0, &tp, &r);
    kv_heads(d, tp, 0, &k0, &nk);
    switch (s->kind) {
    case LLM_SPLIT_EVEN: return local * tp;
    case LLM_SPLIT_KV_HEADS: return local / nk * nkv;
    case LLM_SPLIT_QKV: return local / (nh / tp + 2 * nk) * (nh + 2 * nkv);
    case LLM_SPLIT_VOCAB: return d->vocab_size;
    default: return local;
    }
}

int llm_split_copy(const struct llm_split *s, const struct llm_split_ranges *r, int ndim,
                   const int64_t *shape, int bits, void *whole_p, void *part_p, int to_slice)
{
    int a = s->kind == LLM_SPLIT_WHOLE || s->kind == LLM_SPLIT_FIRST ? -1 : s->axis;
    uint64_t total_bits = (uint64_t)bits;
    for (int i = 0; i < ndim; i++)
        total_bits *= (uint64_t)shape[i];
    /* the rank's experts: a block of whole rows of axis 0 */
    uint64_t e0 = 0, ne = 1, n_e = 1;
    if (r->experts) {
        if (ndim < 1 || a == 0 || shape[0] < r->expert_first + r->experts)
            return llm_err_set(LLM_ESHAPE, "experts [%lld, %lld) of a %d-d tensor split on axis %d",
                               (long long)r->expert_first,
                               (long long)(r->expert_first + r->experts), ndim, a);
        e0 = (uint64_t)r->expert_first;
        ne = (uint64_t)r->experts;
        n_e = (uint64_t)shape[0];
    }
    if (a < 0) {
        if (total_bits % (8 * n_e)) return llm_err_set(LLM_ESHAPE, "tensor of %llu bits",
                                                       (unsigned long long)total_bits);
        uint64_t eb = total_bits / 8 / n_e, nb = r->experts ? ne * eb : total_bits / 8;
        uint8_t *w = (uint8_t *)whole_p + e0 * eb;
        if (to_slice) memcpy(part_p, w, nb);
        else memcpy(w, part_p, nb);
        return 0;
    }
    if (a >= ndim) return llm_err_set(LLM_ESHAPE, "split axis %d of a %d-d tensor", a, ndim);
    uint64_t outer = 1, inner_bits = (uint64_t)bits;
    for (int i = 0; i < a; i++)
        outer *= (uint64_t)shape[i];
    for (int i = a + 1; i < ndim; i++)
        inner_bits *= (uint64_t)shape[i];
    /* every range must start and end on a byte */
    uint64_t wrow = (uint64_t)shape[a] * inner_bits, prow = (uint64_t)r->local * inner_bits;
    if (wrow % 8 || prow % 8) goto odd;
    for (int k = 0; k < r->n; k++)
        if (((uint64_t)r->start[k] * inner_bits) % 8 || ((uint64_t)r->len[k] * inner_bits) % 8)
            goto odd;
    /* the outer rows of the rank's experts only */
    uint64_t per = outer / n_e, o0 = r->experts ? e0 * per : 0;
    if (r->experts) outer = ne * per;
    uint8_t *w = (uint8_t *)whole_p + o0 * (wrow / 8), *p = part_p;
    for (uint64_t o = 0; o < outer; o++) {
        uint8_t *wr = w + o * (wrow / 8), *pr = p + o * (prow / 8);
        uint64_t off = 0;
        for (int k = 0; k < r->n; k++) {
            uint64_t nb = (uint64_t)r->len[k] * inner_bits / 8;
            uint8_t *src = wr + (uint64_t)r->start[k] * inner_bits / 8;
            if (to_slice) memcpy(pr + off, src, nb);
            else memcpy(src, pr + off, nb);
            off += nb;
        }
        if (to_slice && r->pad) memset(pr + off, 0, (uint64_t)r->pad * inner_bits / 8);
    }
    return 0;
odd:
    return llm_err_set(LLM_ESHAPE, "a split of packed %d-bit values falls inside a byte", bits);
}
