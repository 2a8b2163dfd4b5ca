/* cpu_model.h - in-memory models for the CPU backend tests and benchmark.
 *
 * A struct llm_model whose get_tensor serves tensors from a table filled
 * with seeded random values (weights scaled by 1/sqrt(fan_in), norm
 * weights near 1), in any of f32/f16/bf16.  Tests may overwrite a tensor's
 * values after building (mm_find) to make related models (GQA expanded to
 * MHA, tied vs untied). */
#ifndef LLM_CPU_MODEL_H
#define LLM_CPU_MODEL_H

#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "llm/err.h"
#include "llm/model.h"
#include "cpu_ops.h"

struct mm_tensor {
    char name[LLM_NAME_MAX];
    struct llm_tensor t;
    void *data;
};

struct mem_model {
    struct llm_model m;
    int n, cap;
    struct mm_tensor *ts;
    uint64_t seed;
};

static int mm_get(void *ctx, const char *name, struct llm_tensor *t)
{
    struct mem_model *mm = ctx;
    for (int i = 0; i < mm->n; i++)
        if (!strcmp(mm->ts[i].name, name)) {
            *t = mm->ts[i].t;
            return 0;
        }
    return LLM_ENOTFOUND;
}

static struct mm_tensor *mm_find(struct mem_model *mm, const char *name)
{
    for (int i = 0; i < mm->n; i++)
        if (!strcmp(mm->ts[i].name, name)) return &mm->ts[i];
    return NULL;
}

static uint64_t mm_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Add a tensor of ndim (1..3) dims with values offset + scale*U(-1,1). */
static void mm_addn(struct mem_model *mm, const char *name, int dt, int ndim, const int64_t *shape,
                    float offset, float scale)
{
    if (mm->n == mm->cap) {
        mm->cap = mm->cap ? 2 * mm->cap : 64;
        mm->ts = realloc(mm->ts, sizeof *mm->ts * (size_t)mm->cap);
    }
    struct mm_tensor *e = &mm->ts[mm->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= shape[i];
    float *f = malloc(sizeof(float) * (size_t)numel);
    for (int64_t i = 0; i < numel; i++)
        f[i] = offset + scale * (float)((double)(mm_rng(&mm->seed) >> 11) * 0x1p-52 - 1.0);
    size_t es = dt == LLM_DTYPE_F32 ? 4 : 2;
    e->data = malloc(es * (size_t)numel);
    llm_cpu_from_f32(e->data, dt, 0, f, numel);
    free(f);
    e->t.name = e->name;
    e->t.dtype = dt;
    e->t.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        e->t.shape[i] = shape[i];
    e->t.nbytes = es * (uint64_t)numel;
    e->t.data = e->data;
}

/* Every tensor the description calls for (its canonical names and shapes),
 * in dtype dt: norm weights near 1, biases small, linear weights scaled by
 * 1/sqrt(fan_in). */
static struct mem_model *mm_build(const struct llm_model_desc *d, int dt, uint64_t seed)
{
    struct mem_model *mm = calloc(1, sizeof *mm);
    mm->m.desc = *d;
    mm->m.get_tensor = mm_get;
    mm->m.get_tensor_ctx = mm;
    mm->seed = seed;
    char(*names)[LLM_NAME_MAX];
    size_t n;
    if (llm_desc_tensor_names(d, &names, &n)) {
        fprintf(stderr, "mm_build: %s\n", llm_errmsg());
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        int nd, slot, layer, bias;
        int64_t s[LLM_MAX_DIMS];
        llm_desc_tensor_shape(d, names[i], &nd, s);
        llm_name_to_slot(names[i], &slot, &layer, &bias);
        float off = 0.0f, sc;
        int kind = llm_wslot_kind(slot);
        int64_t fan_in = nd >= 2 ? s[nd - 1] : 1;
        if (bias)
            sc = slot == LLM_W_QKV ? 0.5f : 0.1f;
        else if (kind == LLM_WK_NORM)
            off = 1.0f, sc = 0.2f;
        else if (slot == LLM_W_EMBED)
            sc = 1.0f;
        else if (slot == LLM_W_POS_EMBED)
            sc = 0.5f;
        else if (slot == LLM_W_ATTN_OUT || slot == LLM_W_MLP_OUT || slot == LLM_W_ROUTER ||
                 slot == LLM_W_PROJ_IN || slot == LLM_W_PROJ_OUT)
            sc = 1.0f / sqrtf((float)fan_in);
        else
            sc = 2.0f / sqrtf((float)fan_in);
        mm_addn(mm, names[i], dt, nd, s, off, sc);
    }
    free(names);
    return mm;
}

static void mm_free(struct mem_model *mm)
{
    if (!mm) return;
    for (int i = 0; i < mm->n; i++)
        free(mm->ts[i].data);
    free(mm->ts);
    free(mm);
}

/* A small Llama-shaped description. */
static void mm_desc_llama(struct llm_model_desc *d, int64_t V, int64_t H, int layers, int nh,
                          int nkv, int64_t I, int64_t max_pos)
{
    llm_desc_init(d);
    d->arch = LLM_ARCH_LLAMA;
    snprintf(d->model_type, sizeof d->model_type, "llama");
    d->vocab_size = V;
    d->hidden = H;
    d->n_layers = layers;
    d->n_heads = nh;
    d->n_kv_heads = nkv;
    d->head_dim = (int)(H / nh);
    d->intermediate = I;
    d->max_pos = max_pos;
    d->rope.rot_dims = d->head_dim;
    d->norm_eps = 1e-5;
}

#endif
