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
#include <string.h>

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

/* Add a tensor of shape [d0] or [d0][d1] with values offset + scale*U(-1,1). */
static void mm_add(struct mem_model *mm, const char *name, int dt, int64_t d0, int64_t d1,
                   float offset, float scale)
{
    if (mm->n == mm->cap) {
        mm->cap = mm->cap ? 2 * mm->cap : 64;
        mm->ts = realloc(mm->ts, sizeof *mm->ts * (size_t)mm->cap);
    }
    struct mm_tensor *e = &mm->ts[mm->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    int64_t numel = d0 * (d1 ? d1 : 1);
    float *f = malloc(sizeof(float) * (size_t)numel);
    for (int64_t i = 0; i < numel; i++)
        f[i] = offset + scale * (float)((double)(mm_rng(&mm->seed) >> 11) * 0x1p-52 - 1.0);
    size_t es = dt == LLM_DTYPE_F32 ? 4 : 2;
    e->data = malloc(es * (size_t)numel);
    llm_cpu_from_f32(e->data, dt, 0, f, numel);
    free(f);
    e->t.name = e->name;
    e->t.dtype = dt;
    e->t.ndim = d1 ? 2 : 1;
    e->t.shape[0] = d0;
    e->t.shape[1] = d1;
    e->t.nbytes = es * (uint64_t)numel;
    e->t.data = e->data;
}

static void mm_addl(struct mem_model *mm, int l, const char *suffix, int dt, int64_t d0, int64_t d1,
                    float offset, float scale)
{
    char name[LLM_NAME_MAX];
    snprintf(name, sizeof name, "transformer.layers.%d.%s", l, suffix);
    mm_add(mm, name, dt, d0, d1, offset, scale);
}

/* Every tensor the description calls for, in dtype dt. */
static struct mem_model *mm_build(const struct llm_model_desc *d, int dt, uint64_t seed)
{
    struct mem_model *mm = calloc(1, sizeof *mm);
    mm->m.desc = *d;
    mm->m.get_tensor = mm_get;
    mm->m.get_tensor_ctx = mm;
    mm->seed = seed;
    int64_t H = d->hidden, I = d->intermediate, hd = d->head_dim, V = d->vocab_size;
    int64_t qkv = (int64_t)(d->n_heads + 2 * d->n_kv_heads) * hd;
    float sh = 1.0f / sqrtf((float)H), si = 1.0f / sqrtf((float)I);
    mm_add(mm, "transformer.vocab_embedding.weight", dt, V, H, 0.0f, 1.0f);
    if (d->pos == LLM_POS_LEARNED)
        mm_add(mm, "transformer.position_embedding.weight", dt, d->max_pos, H, 0.0f, 0.5f);
    for (int l = 0; l < d->n_layers; l++) {
        mm_addl(mm, l, "input_layernorm.weight", dt, H, 0, 1.0f, 0.2f);
        if (d->norm_bias) mm_addl(mm, l, "input_layernorm.bias", dt, H, 0, 0.0f, 0.1f);
        mm_addl(mm, l, "attention.qkv.weight", dt, qkv, H, 0.0f, 2.0f * sh);
        if (d->qkv_bias) mm_addl(mm, l, "attention.qkv.bias", dt, qkv, 0, 0.0f, 0.5f);
        mm_addl(mm, l, "attention.dense.weight", dt, H, (int64_t)d->n_heads * hd, 0.0f, sh);
        if (d->o_bias) mm_addl(mm, l, "attention.dense.bias", dt, H, 0, 0.0f, 0.1f);
        mm_addl(mm, l, "post_layernorm.weight", dt, H, 0, 1.0f, 0.2f);
        if (d->norm_bias) mm_addl(mm, l, "post_layernorm.bias", dt, H, 0, 0.0f, 0.1f);
        mm_addl(mm, l, "mlp.fc.weight", dt, I, H, 0.0f, 2.0f * sh);
        if (d->mlp_bias) mm_addl(mm, l, "mlp.fc.bias", dt, I, 0, 0.0f, 0.1f);
        if (d->gated_mlp) {
            mm_addl(mm, l, "mlp.gate.weight", dt, I, H, 0.0f, 2.0f * sh);
            if (d->mlp_bias) mm_addl(mm, l, "mlp.gate.bias", dt, I, 0, 0.0f, 0.1f);
        }
        mm_addl(mm, l, "mlp.proj.weight", dt, H, I, 0.0f, si);
        if (d->mlp_bias) mm_addl(mm, l, "mlp.proj.bias", dt, H, 0, 0.0f, 0.1f);
    }
    mm_add(mm, "transformer.ln_f.weight", dt, H, 0, 1.0f, 0.2f);
    if (d->norm_bias) mm_add(mm, "transformer.ln_f.bias", dt, H, 0, 0.0f, 0.1f);
    if (!d->tied_embeddings) mm_add(mm, "lm_head.weight", dt, V, H, 0.0f, 2.0f * sh);
    if (d->lm_head_bias) mm_add(mm, "lm_head.bias", dt, V, 0, 0.0f, 0.1f);
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
