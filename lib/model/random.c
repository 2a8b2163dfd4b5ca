/* random.c - random weights in a published shape: the values, and a model
 * that has them without an artifact.
 *
 * The values are counter-based, so any element can be computed on its own:
 * element i of a tensor is a function of (seed, tensor name, i) alone.
 * llm-convert --random writes them into an artifact; llm_model_random opens
 * the same model straight from a config.json, with no file of weights at
 * all: its tensors carry shapes but no data until a backend asks.  The CPU
 * backend asks for them on the host (llm_model_host_data); the CUDA backend
 * computes them on the device (kernels: llm_k_fill_random), element for
 * element the same numbers.  A 47-billion-parameter shape then loads in
 * seconds and needs no disk, which is what a benchmark of a published
 * shape wants.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/hf.h"
#include "llm/model.h"
#include "llm/random.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

int llm_rand_fill_of(const char *name)
{
    int norm = strstr(name, "layernorm.") || strstr(name, "ln_f.") || strstr(name, "norm.");
    if (norm && ends_with(name, ".weight")) return LLM_RAND_ONE;
    if (norm && ends_with(name, ".bias")) return LLM_RAND_ZERO;
    return LLM_RAND_NORMAL;
}

uint64_t llm_rand_state(uint64_t seed, const char *name)
{
    return seed ^ XXH3_64bits(name, strlen(name));
}

void llm_rand_fill(float *dst, size_t n, int fill, uint64_t state, uint64_t first)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = fill == LLM_RAND_NORMAL ? llm_rand_value(state, first + i)
                 : fill == LLM_RAND_ONE  ? 1.0f
                                         : 0.0f;
}

int llm_rand_tensor(void *dst, int dt, uint64_t numel, const char *name, uint64_t seed)
{
    enum { CH = 1 << 16 };
    float *chunk = malloc(CH * sizeof(float));
    if (!chunk) return llm_err_set(LLM_ENOMEM, "out of memory");
    size_t esz = (size_t)llm_dtype_bits(dt) / 8;
    uint64_t state = llm_rand_state(seed, name);
    int fill = llm_rand_fill_of(name), rc = 0;
    for (uint64_t i = 0; i < numel && !rc; i += CH) {
        size_t m = numel - i < CH ? (size_t)(numel - i) : CH;
        llm_rand_fill(chunk, m, fill, state, i);
        rc = llm_convert((char *)dst + i * esz, dt, chunk, LLM_DTYPE_F32, m);
    }
    free(chunk);
    return rc;
}

int llm_rand_dtype(int dt)
{
    if (!llm_dtype_is_float(dt) || dt == LLM_DTYPE_F8E4M3 || dt == LLM_DTYPE_F8E5M2 ||
        dt == LLM_DTYPE_F64)
        return LLM_DTYPE_BF16;
    return dt;
}

/* ---- the model without a file ---------------------------------------------- */

struct rand_src {
    char (*names)[LLM_NAME_MAX];
    size_t n;
    void **host; /* [n]: the values on the host, once asked for */
    int on_host;
    const struct llm_model *m;
};

static void rand_src_free(void *ctx)
{
    struct rand_src *s = ctx;
    if (!s) return;
    for (size_t i = 0; s->host && i < s->n; i++) free(s->host[i]);
    free(s->host);
    free(s->names);
    free(s);
}

static int rand_get(void *ctx, const char *name, struct llm_tensor *t)
{
    struct rand_src *s = ctx;
    const struct llm_model *m = s->m;
    size_t k = 0;
    while (k < s->n && strcmp(s->names[k], name)) k++;
    if (k == s->n) return LLM_ENOTFOUND;
    memset(t, 0, sizeof *t);
    t->dtype = m->desc.dtype;
    int rc = llm_desc_tensor_shape(&m->desc, name, &t->ndim, t->shape);
    uint64_t numel;
    if (!rc && (llm_shape_numel(t->ndim, t->shape, &numel) ||
                llm_dtype_nbytes(t->dtype, numel, &t->nbytes)))
        rc = llm_err_set(LLM_ERANGE, "'%s': tensor '%s' is too large", m->path, name);
    if (rc || !s->on_host) return rc;
    if (!s->host[k]) {
        void *p = malloc(t->nbytes ? t->nbytes : 1);
        if (!p)
            return llm_err_set(LLM_ENOMEM, "'%s': tensor '%s': out of memory (%llu bytes)",
                               m->path, name, (unsigned long long)t->nbytes);
        if ((rc = llm_rand_tensor(p, t->dtype, numel, name, m->rand_seed))) {
            free(p);
            return rc;
        }
        s->host[k] = p;
    }
    t->data = s->host[k];
    return 0;
}

int llm_model_random(struct llm_model **out, const char *config_path, int dtype, uint64_t seed)
{
    *out = NULL;
    if (!config_path) return llm_err_set(LLM_EINVAL, "no config.json given");
    struct llm_model *m = calloc(1, sizeof(*m));
    struct rand_src *s = calloc(1, sizeof(*s));
    if (!m || !s) {
        free(m);
        free(s);
        return llm_err_set(LLM_ENOMEM, "out of memory");
    }
    json_t *config = NULL, *dj = NULL;
    struct llm_model_desc d;
    llm_desc_init(&d);
    llm_desc_init(&m->desc);
    llm_gen_defaults_init(&m->gen);
    llm_model_init_mem(m);
    size_t plen = strlen(config_path) + sizeof "random:";
    int rc = (m->path = malloc(plen)) ? 0 : llm_err_set(LLM_ENOMEM, "out of memory");
    if (!rc) {
        snprintf(m->path, plen, "random:%s", config_path);
        m->get_tensor = rand_get;
        m->get_tensor_ctx = s;
        m->get_tensor_free = rand_src_free;
        m->rand_seed = seed;
        m->synthetic = 1;
        s->m = m;
        rc = llm_hf_json_load(config_path, &config);
    }
    if (!rc && !json_is_object(config))
        rc = llm_err_set(LLM_EFORMAT, "'%s': not a JSON object", config_path);
    if (!rc) rc = llm_hfconfig_parse(config, NULL, config_path, &d, &m->gen);
    if (!rc) {
        d.dtype = llm_rand_dtype(dtype >= 0 ? dtype : d.dtype);
        /* through the JSON form, as an artifact's reader sees it */
        if (!(dj = llm_desc_to_json(&d)))
            rc = llm_err_set(LLM_ENOMEM, "out of memory");
        else if ((rc = llm_desc_from_json(&m->desc, dj)))
            llm_err_wrap(rc, "'%s'", config_path);
    }
    if (!rc) rc = llm_desc_tensor_names(&m->desc, &s->names, &s->n);
    if (!rc && !(s->host = calloc(s->n ? s->n : 1, sizeof(void *))))
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
    llm_desc_free(&d);
    json_decref(config);
    json_decref(dj);
    if (rc) {
        if (m->get_tensor_ctx != s) rand_src_free(s);
        llm_model_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

void llm_model_host_data(struct llm_model *m)
{
    if (m && m->synthetic) ((struct rand_src *)m->get_tensor_ctx)->on_host = 1;
}
