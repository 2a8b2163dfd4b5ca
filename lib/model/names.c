/* names.c - canonical tensor names and shapes, from one slot table.
 *
 * Design: every tensor a model can have is a weight slot (enum llm_wslot):
 * a stem, ".weight" and an optional ".bias".  Which slots a description
 * has and their shapes come from one function, slot_shape(), driven by the
 * description's switches alone; the name list, the shape lookup, the
 * parameter count, the weight binding and the HF rules all go through it,
 * so they cannot disagree.  This file also holds the one parser of
 * canonical names ("transformer.layers.{i}.SUFFIX").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "llm/model.h"

static const struct {
    const char *stem;
    int kind;
} slots[] = {
    [LLM_W_EMBED] = {"transformer.vocab_embedding", LLM_WK_EMBED},
    [LLM_W_POS_EMBED] = {"transformer.position_embedding", LLM_WK_EMBED},
    [LLM_W_EMBED_NORM] = {"transformer.ln_embed", LLM_WK_NORM},
    [LLM_W_PROJ_IN] = {"transformer.project_in", LLM_WK_LINEAR},
    [LLM_W_FINAL_NORM] = {"transformer.ln_f", LLM_WK_NORM},
    [LLM_W_PROJ_OUT] = {"transformer.project_out", LLM_WK_LINEAR},
    [LLM_W_LM_HEAD] = {"lm_head", LLM_WK_LINEAR},
    [LLM_W_ATTN_NORM] = {"input_layernorm", LLM_WK_NORM},
    [LLM_W_QKV] = {"attention.qkv", LLM_WK_LINEAR},
    [LLM_W_Q_NORM] = {"attention.q_layernorm", LLM_WK_NORM},
    [LLM_W_K_NORM] = {"attention.k_layernorm", LLM_WK_NORM},
    [LLM_W_ATTN_OUT] = {"attention.dense", LLM_WK_LINEAR},
    [LLM_W_ATTN_POST_NORM] = {"post_attention_layernorm", LLM_WK_NORM},
    [LLM_W_MLP_NORM] = {"post_layernorm", LLM_WK_NORM},
    [LLM_W_ROUTER] = {"mlp.router", LLM_WK_LINEAR},
    [LLM_W_MLP_FC] = {"mlp.fc", LLM_WK_LINEAR},
    [LLM_W_MLP_GATE] = {"mlp.gate", LLM_WK_LINEAR},
    [LLM_W_MLP_OUT] = {"mlp.proj", LLM_WK_LINEAR},
    [LLM_W_MLP_POST_NORM] = {"post_feedforward_layernorm", LLM_WK_NORM},
    [LLM_W_SHARED_ROUTER] = {"mlp.shared_router", LLM_WK_LINEAR},
    [LLM_W_SHARED_FC] = {"mlp.shared_fc", LLM_WK_LINEAR},
    [LLM_W_SHARED_GATE] = {"mlp.shared_gate", LLM_WK_LINEAR},
    [LLM_W_SHARED_OUT] = {"mlp.shared_proj", LLM_WK_LINEAR},
    [LLM_W_ATTN_SINKS] = {"attention.sinks", LLM_WK_NORM},
    [LLM_W_Q_A] = {"attention.q_a", LLM_WK_LINEAR},
    [LLM_W_Q_A_NORM] = {"attention.q_a_norm", LLM_WK_NORM},
    [LLM_W_Q_B] = {"attention.q_b", LLM_WK_LINEAR},
    [LLM_W_KV_A] = {"attention.kv_a", LLM_WK_LINEAR},
    [LLM_W_KV_A_NORM] = {"attention.kv_a_norm", LLM_WK_NORM},
    [LLM_W_KV_B] = {"attention.kv_b", LLM_WK_LINEAR},
    [LLM_W_ROUTER_CORR] = {"mlp.router_correction", LLM_WK_NORM},
};
_Static_assert(sizeof(slots) / sizeof(slots[0]) == LLM_W_COUNT, "slot table");

const char *llm_wslot_stem(int slot)
{
    return slot >= 0 && slot < LLM_W_COUNT ? slots[slot].stem : "?";
}

int llm_wslot_kind(int slot)
{
    return slot >= 0 && slot < LLM_W_COUNT ? slots[slot].kind : -1;
}

int llm_wslot_per_layer(int slot)
{
    return slot >= LLM_W_FIRST_LAYER && slot < LLM_W_COUNT;
}

/* ---- shapes -------------------------------------------------------------------- */

struct shp {
    int nd;       /* weight dims; 0: the slot exists but stores no weight (tied lm_head) */
    int64_t s[3];
    int bnd;      /* bias dims; 0: no bias */
    int64_t b[2];
};

static int set1(struct shp *o, int64_t a, int bias)
{
    o->nd = 1;
    o->s[0] = a;
    o->bnd = bias ? 1 : 0;
    o->b[0] = a;
    return 0;
}

static int set2(struct shp *o, int64_t out, int64_t in, int bias)
{
    o->nd = 2;
    o->s[0] = out;
    o->s[1] = in;
    o->bnd = bias ? 1 : 0;
    o->b[0] = out;
    return 0;
}

/* A dense linear [out][in], or an expert stack [E][out][in] (bias [E][out]). */
static int setx(struct shp *o, int64_t E, int64_t out, int64_t in, int bias)
{
    if (!E) return set2(o, out, in, bias);
    o->nd = 3;
    o->s[0] = E;
    o->s[1] = out;
    o->s[2] = in;
    o->bnd = bias ? 2 : 0;
    o->b[0] = E;
    o->b[1] = out;
    return 0;
}

/* The slot's shapes for d in layer `layer` (-1: global slots, or any MoE
 * layer), or LLM_ENOTFOUND (no message) when d has no such slot there.
 * Layers before moe_first_layer have a dense MLP of dense_inter rows. */
static int slot_shape(const struct llm_model_desc *d, int slot, int layer, struct shp *o)
{
    const int dense = layer >= 0 && layer < d->moe_first_layer;
    const int64_t H = d->hidden, V = d->vocab_size, hd = d->head_dim;
    const int64_t nh = d->n_heads, nkv = d->n_kv_heads, E = dense ? 0 : d->n_experts;
    const int64_t I = dense ? d->dense_inter : d->intermediate;
    const int mla = d->kv_lora_rank > 0;
    const int64_t vd = d->v_head_dim > 0 ? d->v_head_dim : hd, rot = d->rope.rot_dims;
    const int64_t ED = d->embed_dim > 0 ? d->embed_dim : H;
    const int proj = ED != H, nb = d->norm_bias;
    /* a rank of a partitioned model: the embeddings on the first stage, the
     * head on the last; a row-parallel product's bias on tp rank 0 only
     * (added once, after the sum over the ranks) */
    const int first = llm_part_first_stage(d), last = llm_part_last_stage(d);
    const int rowb = d->part.tp_rank == 0;
    /* an expert stack holds the rank's experts; its down bias sits on the
     * first rank of the expert group (of the stage, without --ep) */
    int e0;
    const int64_t XE = E ? llm_part_experts(d, &e0) : 0;
    const int64_t SI = dense ? 0 : d->shared_expert_inter;
    const int mrowb = d->part.moe_tp_rank == 0;
    memset(o, 0, sizeof *o);
    if (!llm_wslot_per_layer(slot) && (slot < LLM_W_FINAL_NORM ? !first : !last))
        return LLM_ENOTFOUND;
    switch (slot) {
    case LLM_W_EMBED: return set2(o, V, ED, 0);
    case LLM_W_POS_EMBED:
        return d->pos == LLM_POS_LEARNED ? set2(o, d->max_pos + d->pos_offset, H, 0)
                                         : LLM_ENOTFOUND;
    case LLM_W_EMBED_NORM: return d->embed_norm ? set1(o, H, nb) : LLM_ENOTFOUND;
    case LLM_W_PROJ_IN: return proj ? set2(o, H, ED, 0) : LLM_ENOTFOUND;
    case LLM_W_FINAL_NORM: return d->final_norm ? set1(o, H, nb) : LLM_ENOTFOUND;
    case LLM_W_PROJ_OUT: return proj ? set2(o, ED, H, 0) : LLM_ENOTFOUND;
    case LLM_W_LM_HEAD:
        set2(o, d->part.vocab_part > 0 ? d->part.vocab_part : V, ED, d->lm_head_bias);
        if (d->tied_embeddings) o->nd = 0; /* the embedding's rows */
        return 0;
    case LLM_W_ATTN_NORM:
        return d->no_input_norm ? LLM_ENOTFOUND : set1(o, H, nb);
    case LLM_W_QKV: return mla ? LLM_ENOTFOUND : set2(o, (nh + 2 * nkv) * hd, H, d->qkv_bias);
    case LLM_W_Q_NORM:
    case LLM_W_K_NORM:
        if (d->qk_norm == LLM_QK_NORM_NONE) return LLM_ENOTFOUND;
        if (d->qk_norm == LLM_QK_NORM_LAYER) /* one LayerNorm per head, no bias (StableLM) */
            return set2(o, slot == LLM_W_Q_NORM ? nh : nkv, hd, 0);
        if (d->qk_norm == LLM_QK_NORM_RMS_ALL) /* one RMSNorm over all the heads (OLMo 2) */
            return set1(o, (int64_t)(slot == LLM_W_Q_NORM ? nh : nkv) * hd, 0);
        return set1(o, hd, 0);
    case LLM_W_ATTN_OUT: return set2(o, H, nh * vd, d->o_bias && rowb);
    case LLM_W_ATTN_POST_NORM: return d->sandwich_norm ? set1(o, H, nb) : LLM_ENOTFOUND;
    case LLM_W_MLP_NORM:
        return (d->parallel_residual && d->shared_input_norm) || d->no_input_norm ? LLM_ENOTFOUND
                                                                                  : set1(o, H, nb);
    case LLM_W_ROUTER: return E ? set2(o, E, H, d->router_bias) : LLM_ENOTFOUND;
    case LLM_W_MLP_FC: return setx(o, XE, I, H, d->mlp_bias);
    case LLM_W_MLP_GATE: return d->gated_mlp ? setx(o, XE, I, H, d->mlp_bias) : LLM_ENOTFOUND;
    case LLM_W_MLP_OUT: return setx(o, XE, H, I, d->mlp_bias && mrowb);
    case LLM_W_MLP_POST_NORM: return d->sandwich_norm ? set1(o, H, nb) : LLM_ENOTFOUND;
    case LLM_W_SHARED_ROUTER:
        return SI > 0 && d->shared_expert_gate ? set2(o, 1, H, 0) : LLM_ENOTFOUND;
    case LLM_W_SHARED_FC: return SI > 0 ? set2(o, SI, H, 0) : LLM_ENOTFOUND;
    case LLM_W_SHARED_GATE: return SI > 0 && d->gated_mlp ? set2(o, SI, H, 0) : LLM_ENOTFOUND;
    case LLM_W_SHARED_OUT: return SI > 0 ? set2(o, H, SI, 0) : LLM_ENOTFOUND;
    case LLM_W_Q_A: return mla && d->q_lora_rank > 0 ? set2(o, d->q_lora_rank, H, 0) : LLM_ENOTFOUND;
    case LLM_W_Q_A_NORM:
        return mla && d->q_lora_rank > 0 ? set1(o, d->q_lora_rank, 0) : LLM_ENOTFOUND;
    case LLM_W_Q_B:
        return mla ? set2(o, nh * hd, d->q_lora_rank > 0 ? d->q_lora_rank : H, 0) : LLM_ENOTFOUND;
    case LLM_W_KV_A: return mla ? set2(o, d->kv_lora_rank + rot, H, 0) : LLM_ENOTFOUND;
    case LLM_W_KV_A_NORM: return mla ? set1(o, d->kv_lora_rank, 0) : LLM_ENOTFOUND;
    case LLM_W_KV_B: return mla ? set2(o, nh * (hd - rot + vd), d->kv_lora_rank, 0) : LLM_ENOTFOUND;
    case LLM_W_ROUTER_CORR:
        return E && d->moe_corr_bias ? set1(o, E, 0) : LLM_ENOTFOUND;
    case LLM_W_ATTN_SINKS: return d->attn_sinks ? set1(o, nh, 0) : LLM_ENOTFOUND;
    default: return LLM_ENOTFOUND;
    }
}

int llm_desc_slot_shape(const struct llm_model_desc *d, int slot, int layer, int *ndim,
                        int64_t shape[LLM_MAX_DIMS], int *bias_ndim, int64_t bias_shape[LLM_MAX_DIMS])
{
    struct shp o;
    int rc = slot_shape(d, slot, layer, &o);
    if (rc) return rc;
    if (ndim) *ndim = o.nd;
    if (shape) {
        memset(shape, 0, LLM_MAX_DIMS * sizeof(int64_t));
        memcpy(shape, o.s, sizeof o.s);
    }
    if (bias_ndim) *bias_ndim = o.bnd;
    if (bias_shape) {
        memset(bias_shape, 0, LLM_MAX_DIMS * sizeof(int64_t));
        memcpy(bias_shape, o.b, sizeof o.b);
    }
    return 0;
}

/* ---- names ------------------------------------------------------------------- */

int llm_name_layer(char *buf, size_t cap, int layer, const char *suffix)
{
    if (!buf || !suffix || layer < 0) return llm_err_set(LLM_EINVAL, "bad layer name request");
    int n = snprintf(buf, cap, "transformer.layers.%d.%s", layer, suffix);
    if (n < 0 || (size_t)n >= cap)
        return llm_err_set(LLM_ERANGE, "layer tensor name '%s' does not fit %zu bytes", suffix,
                           cap);
    return 0;
}

int llm_name_parse_layer(const char *name, const char **suffix)
{
    static const char pre[] = "transformer.layers.";
    if (!name || strncmp(name, pre, sizeof(pre) - 1)) return -1;
    const char *p = name + sizeof(pre) - 1;
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] != '.')) return -1;
    long v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p++ - '0');
        if (v > LLM_MAX_LAYERS) return -1;
    }
    if (*p != '.') return -1;
    if (suffix) *suffix = p + 1;
    return (int)v;
}

int llm_name_of_slot(char *buf, size_t cap, int slot, int layer, int is_bias)
{
    if (slot < 0 || slot >= LLM_W_COUNT) return llm_err_set(LLM_EINVAL, "bad weight slot %d", slot);
    int n = llm_wslot_per_layer(slot)
                ? snprintf(buf, cap, "transformer.layers.%d.%s.%s", layer, slots[slot].stem,
                           is_bias ? "bias" : "weight")
                : snprintf(buf, cap, "%s.%s", slots[slot].stem, is_bias ? "bias" : "weight");
    if (n < 0 || (size_t)n >= cap)
        return llm_err_set(LLM_ERANGE, "tensor name of '%s' does not fit %zu bytes",
                           slots[slot].stem, cap);
    return 0;
}

/* "STEM.weight" / "STEM.bias" against the stems of [lo, hi). */
static int match_stem(const char *s, int lo, int hi, int *slot, int *is_bias)
{
    for (int k = lo; k < hi; k++) {
        size_t n = strlen(slots[k].stem);
        if (strncmp(s, slots[k].stem, n) || s[n] != '.') continue;
        if (!strcmp(s + n + 1, "weight") || !strcmp(s + n + 1, "bias")) {
            *slot = k;
            *is_bias = s[n + 1] == 'b';
            return 0;
        }
    }
    return LLM_ENOTFOUND;
}

int llm_name_to_slot(const char *name, int *slot, int *layer, int *is_bias)
{
    const char *suf;
    int l = llm_name_parse_layer(name, &suf);
    *layer = l;
    if (l >= 0) return match_stem(suf, LLM_W_FIRST_LAYER, LLM_W_COUNT, slot, is_bias);
    return match_stem(name, 0, LLM_W_FIRST_LAYER, slot, is_bias);
}

int llm_desc_tensor_shape(const struct llm_model_desc *d, const char *name, int *ndim,
                          int64_t shape[LLM_MAX_DIMS])
{
    if (!d || !name || !ndim || !shape) return llm_err_set(LLM_EINVAL, "bad tensor shape query");
    int slot, layer, bias;
    struct shp o;
    int rc = llm_name_to_slot(name, &slot, &layer, &bias);
    if (!rc && layer >= 0 && !llm_part_has_layer(d, layer)) rc = LLM_ENOTFOUND;
    if (!rc) rc = slot_shape(d, slot, layer, &o);
    if (!rc && (bias ? o.bnd : o.nd) == 0) rc = LLM_ENOTFOUND;
    if (rc) {
        char b[LLM_NAME_MAX];
        snprintf(b, sizeof(b), "%s", name);
        for (char *c = b; *c; c++)
            if ((unsigned char)*c < 0x20) *c = '?';
        return llm_err_set(LLM_ENOTFOUND, "'%s': no such tensor in this %s model", b,
                           llm_arch_name(d->arch));
    }
    memset(shape, 0, LLM_MAX_DIMS * sizeof(int64_t));
    if (bias) {
        *ndim = o.bnd;
        memcpy(shape, o.b, sizeof o.b);
    } else {
        *ndim = o.nd;
        memcpy(shape, o.s, sizeof o.s);
    }
    return 0;
}

int llm_desc_tensor_names(const struct llm_model_desc *d, char (**names)[LLM_NAME_MAX], size_t *n)
{
    *names = NULL;
    *n = 0;
    if (!d || d->n_layers < 0 || d->n_layers > LLM_MAX_LAYERS)
        return llm_err_set(LLM_EINVAL, "bad model description");
    size_t cap = 2 * (size_t)LLM_W_COUNT * ((size_t)d->n_layers + 1);
    char(*out)[LLM_NAME_MAX] = malloc(cap * LLM_NAME_MAX);
    if (!out) return llm_err_set(LLM_ENOMEM, "out of memory");
    size_t k = 0;
    struct shp o;
    /* global slots before the layers, the layers, then the rest */
    for (int pass = 0; pass < 3; pass++) {
        int lo = pass == 0 ? 0 : pass == 1 ? LLM_W_FIRST_LAYER : LLM_W_FINAL_NORM;
        int hi = pass == 0 ? LLM_W_FINAL_NORM : pass == 1 ? LLM_W_COUNT : LLM_W_FIRST_LAYER;
        int nl = pass == 1 ? d->n_layers : 1;
        for (int l = 0; l < nl; l++)
            for (int s = lo; s < hi; s++) {
                if (pass == 1 && !llm_part_has_layer(d, l)) break;
                if (slot_shape(d, s, pass == 1 ? l : -1, &o)) continue;
                if (o.nd) llm_name_of_slot(out[k++], LLM_NAME_MAX, s, l, 0);
                if (o.bnd) llm_name_of_slot(out[k++], LLM_NAME_MAX, s, l, 1);
            }
    }
    *names = out;
    *n = k;
    return 0;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    if (a && b > UINT64_MAX / a) return UINT64_MAX;
    return a * b;
}

uint64_t llm_desc_n_params(const struct llm_model_desc *d)
{
    char(*names)[LLM_NAME_MAX];
    size_t n;
    if (llm_desc_tensor_names(d, &names, &n)) return 0;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int nd, slot, layer, bias;
        int64_t s[LLM_MAX_DIMS];
        if (llm_desc_tensor_shape(d, names[i], &nd, s)) continue;
        /* the sigmoid routers' correction (DeepSeek V3, GLM-4.5, MiniMax-M2) is a buffer
         * to transformers, ERNIE 4.5's (softmax scores) a parameter: counted as it does */
        if (!llm_name_to_slot(names[i], &slot, &layer, &bias) && slot == LLM_W_ROUTER_CORR &&
            d->moe_router == LLM_ROUTER_SIGMOID_GROUPS)
            continue;
        uint64_t c = 1;
        for (int k = 0; k < nd; k++)
            c = sat_mul(c, s[k] > 0 ? (uint64_t)s[k] : 0);
        total = c > UINT64_MAX - total ? UINT64_MAX : total + c;
    }
    free(names);
    return total;
}
