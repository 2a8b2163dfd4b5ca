/* hfmap.c - the conversion plan: which HF tensors make each canonical tensor.
 *
 * Design: the canonical side comes from the description
 * (llm_desc_tensor_names / llm_desc_tensor_shape), the HF side from one
 * small rule table per architecture family mapping a canonical suffix to the
 * HF names whose rows are concatenated to build it.  Planning touches no
 * tensor data: it checks presence, shapes and dtypes of every source up
 * front, so a converter either fails before writing anything or has a plan
 * that cannot fail on a missing or misshapen input.  Items are sorted by the
 * position of their earliest source in the checkpoint (shard by shard, by
 * offset), so executing the plan reads the files front to back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "llm/log.h"
#include "llm/model.h"
#include "llm/safetensors.h"
#include "../core/text_internal.h"

/* One canonical tensor's HF sources; "{i}" stands for the layer. */
struct rule {
    const char *canon; /* global name, or per-layer suffix */
    const char *hf[3];
    int n;
};

static const struct rule llama_global[] = {
    {"transformer.vocab_embedding.weight", {"model.embed_tokens.weight"}, 1},
    {"transformer.ln_f.weight", {"model.norm.weight"}, 1},
    {"lm_head.weight", {"lm_head.weight"}, 1},
};

static const struct rule llama_layer[] = {
    {"input_layernorm.weight", {"model.layers.{i}.input_layernorm.weight"}, 1},
    {"attention.qkv.weight",
     {"model.layers.{i}.self_attn.q_proj.weight", "model.layers.{i}.self_attn.k_proj.weight",
      "model.layers.{i}.self_attn.v_proj.weight"},
     3},
    {"attention.qkv.bias",
     {"model.layers.{i}.self_attn.q_proj.bias", "model.layers.{i}.self_attn.k_proj.bias",
      "model.layers.{i}.self_attn.v_proj.bias"},
     3},
    {"attention.dense.weight", {"model.layers.{i}.self_attn.o_proj.weight"}, 1},
    {"attention.dense.bias", {"model.layers.{i}.self_attn.o_proj.bias"}, 1},
    {"post_layernorm.weight", {"model.layers.{i}.post_attention_layernorm.weight"}, 1},
    {"mlp.fc.weight", {"model.layers.{i}.mlp.gate_proj.weight"}, 1},
    {"mlp.fc.bias", {"model.layers.{i}.mlp.gate_proj.bias"}, 1},
    {"mlp.gate.weight", {"model.layers.{i}.mlp.up_proj.weight"}, 1},
    {"mlp.gate.bias", {"model.layers.{i}.mlp.up_proj.bias"}, 1},
    {"mlp.proj.weight", {"model.layers.{i}.mlp.down_proj.weight"}, 1},
    {"mlp.proj.bias", {"model.layers.{i}.mlp.down_proj.bias"}, 1},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

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

/* Template with "{i}" -> name for a layer. */
static void expand(char *buf, size_t cap, const char *tmpl, int layer)
{
    const char *at = strstr(tmpl, "{i}");
    if (!at)
        snprintf(buf, cap, "%s", tmpl);
    else
        snprintf(buf, cap, "%.*s%d%s", (int)(at - tmpl), tmpl, layer, at + 3);
}

/* "transformer.layers.{i}.suffix" -> i and suffix, else -1. */
static int split_layer(const char *name, const char **suffix)
{
    static const char pre[] = "transformer.layers.";
    if (strncmp(name, pre, sizeof(pre) - 1)) return -1;
    const char *p = name + sizeof(pre) - 1;
    int v = 0;
    if (*p < '0' || *p > '9') return -1;
    while (*p >= '0' && *p <= '9' && v <= LLM_MAX_LAYERS)
        v = v * 10 + (*p++ - '0');
    if (*p != '.') return -1;
    *suffix = p + 1;
    return v;
}

/* Expected shape of source k of a rule for canonical shape cs: q/k/v rows. */
static void source_shape(const struct llm_model_desc *d, const struct rule *r, int k, int cnd,
                         const int64_t *cs, int *nd, int64_t *s)
{
    *nd = cnd;
    memcpy(s, cs, sizeof(int64_t) * LLM_MAX_DIMS);
    if (r->n == 3) s[0] = (int64_t)(k == 0 ? d->n_heads : d->n_kv_heads) * d->head_dim;
}

struct by_name {
    const char *name;
    size_t idx;
};

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

static int ignorable(const struct llm_model_desc *d, const char *name)
{
    static const char inv[] = "rotary_emb.inv_freq";
    size_t n = strlen(name);
    if (n >= sizeof(inv) - 1 && !strcmp(name + n - (sizeof(inv) - 1), inv)) return 1;
    return d->tied_embeddings && !strcmp(name, "lm_head.weight");
}

int llm_hfmap_plan(const struct llm_model_desc *d, const struct llm_st *st,
                   struct llm_plan_item **items, size_t *n)
{
    *items = NULL;
    *n = 0;
    if (!d || !st) return llm_err_set(LLM_EINVAL, "no description or checkpoint to plan from");
    if (d->arch != LLM_ARCH_LLAMA && d->arch != LLM_ARCH_MISTRAL && d->arch != LLM_ARCH_QWEN2)
        return llm_err_set(LLM_EUNSUPPORTED,
                           "'%s': converting architecture '%s' is not "
                           "supported yet",
                           d->hf_arch[0] ? d->hf_arch : llm_arch_name(d->arch),
                           llm_arch_name(d->arch));
    int rc = llm_desc_validate(d);
    if (rc) return rc;

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
    if (!out || !ord || !used || !ix) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < nst; i++)
        ix[i] = (struct by_name){llm_st_get(st, i)->name, i};
    qsort(ix, nst, sizeof(*ix), cmp_by_name);

    for (size_t i = 0; i < nn; i++) {
        struct llm_plan_item *it = &out[i];
        const char *suffix = NULL;
        int layer = split_layer(names[i], &suffix);
        const struct rule *r = NULL;
        const struct rule *tab = layer >= 0 ? llama_layer : llama_global;
        size_t ntab = layer >= 0 ? NELEM(llama_layer) : NELEM(llama_global);
        for (size_t k = 0; k < ntab && !r; k++)
            if (!strcmp(tab[k].canon, layer >= 0 ? suffix : names[i])) r = &tab[k];
        if (!r) {
            rc = llm_err_set(LLM_EUNSUPPORTED, "'%s': no HF source known for '%s' of a %s model",
                             ck, names[i], llm_arch_name(d->arch));
            goto fail;
        }
        snprintf(it->name, sizeof(it->name), "%s", names[i]);
        rc = llm_desc_tensor_shape(d, names[i], &it->ndim, it->shape);
        if (rc) goto fail;
        it->n_src = r->n;
        size_t first = SIZE_MAX;
        int dtype = -1;
        const char *dtype_of = NULL;
        for (int k = 0; k < r->n; k++) {
            char hf[LLM_NAME_MAX + 16];
            expand(hf, sizeof(hf), r->hf[k], layer);
            const struct by_name key = {hf, 0};
            const struct by_name *hit = bsearch(&key, ix, nst, sizeof(*ix), cmp_by_name);
            if (!hit) {
                rc = llm_err_set(LLM_ENOTFOUND, "'%s': tensor '%s' not found (needed for '%s')", ck,
                                 hf, it->name);
                goto fail;
            }
            size_t idx = hit->idx;
            const struct llm_tensor *t = llm_st_get(st, idx);
            const char *file = llm_st_file_path(st, (size_t)llm_st_shard_of(st, idx));
            int nd;
            int64_t es[LLM_MAX_DIMS];
            source_shape(d, r, k, it->ndim, it->shape, &nd, es);
            int same = t->ndim == nd;
            for (int j = 0; same && j < nd; j++)
                same = t->shape[j] == es[j];
            if (!same) {
                char a[160], b[160];
                llm_shape_str(a, sizeof(a), nd, es);
                llm_shape_str(b, sizeof(b), t->ndim, t->shape);
                rc = llm_err_set(LLM_ESHAPE, "'%s': tensor '%s' expected %s, found %s", file, hf, a,
                                 b);
                goto fail;
            }
            if (!llm_dtype_is_float(t->dtype)) {
                rc = llm_err_set(LLM_EUNSUPPORTED,
                                 "'%s': tensor '%s' has dtype %s, not a float "
                                 "type",
                                 file, hf, llm_dtype_name(t->dtype));
                goto fail;
            }
            if (dtype >= 0 && t->dtype != dtype) {
                rc = llm_err_set(LLM_EFORMAT,
                                 "'%s': tensor '%s' is %s but '%s' is %s; the parts "
                                 "of '%s' must share a dtype",
                                 file, hf, llm_dtype_name(t->dtype), dtype_of,
                                 llm_dtype_name(dtype), it->name);
                goto fail;
            }
            dtype = t->dtype;
            dtype_of = t->name;
            it->src[k] = idx;
            used[idx] = 1;
            if (idx < first) first = idx;
        }
        ord[i].key = first;
        ord[i].idx = i;
    }

    /* Warn about what the plan leaves out (a few by name, then a count). */
    size_t unused = 0;
    for (size_t i = 0; i < nst; i++) {
        const struct llm_tensor *t = llm_st_get(st, i);
        if (used[i] || ignorable(d, t->name)) continue;
        if (unused < 8)
            llm_warn("'%s': tensor '%s' is not used",
                     llm_st_file_path(st, (size_t)llm_st_shard_of(st, i)), t->name);
        unused++;
    }
    if (unused > 8) llm_warn("'%s': %zu more tensors are not used", ck, unused - 8);

    qsort(ord, nn, sizeof(*ord), cmp_order);
    struct llm_plan_item *sorted = malloc((nn ? nn : 1) * sizeof(*sorted));
    if (!sorted) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < nn; i++)
        sorted[i] = out[ord[i].idx];
    free(out);
    free(ord);
    free(used);
    free(ix);
    free(names);
    *items = sorted;
    *n = nn;
    return 0;
fail:
    free(out);
    free(ord);
    free(used);
    free(ix);
    free(names);
    return rc;
}
