/* loader.c - an artifact opened for inference (struct llm_model).
 *
 * The description and generation defaults are rebuilt from the metadata
 * (the artifact is their single source of truth after conversion); the
 * tokenizer files stay as JSON owned by the artifact.  Tensors are looked
 * up lazily by name and their shapes checked against the description at
 * each lookup, so a model whose file holds extra tensors (quantization
 * scales) or only part of a model (a tensor-parallel rank, whose shapes are
 * slices) still opens; shapes are checked only for whole models.  Every
 * tensor's checksum is checked at open unless the caller opts out: the
 * hashing reads each mapped page once, which the backend then finds
 * resident, so a corrupt file never reaches a forward pass.
 */
#include <stdlib.h>
#include <string.h>

#include "llm/artifact.h"
#include "llm/err.h"
#include "llm/model.h"
#include "../core/text_internal.h"

/* Whole model: mapping absent or world_size 1. */
static int whole_model(const json_t *meta)
{
    const json_t *m = json_object_get(meta, "mapping");
    const json_t *ws = json_object_get(m, "world_size");
    return !json_is_integer(ws) || json_integer_value(ws) == 1;
}

int llm_model_open(struct llm_model **out, const char *path)
{
    return llm_model_open_flags(out, path, 0);
}

int llm_model_open_flags(struct llm_model **out, const char *path, unsigned flags)
{
    *out = NULL;
    struct llm_model *m = calloc(1, sizeof(*m));
    if (!m) return llm_err_set(LLM_ENOMEM, "out of memory");
    llm_desc_init(&m->desc);
    llm_gen_defaults_init(&m->gen);
    m->path = strdup(path ? path : "-");
    int rc = m->path ? 0 : llm_err_set(LLM_ENOMEM, "out of memory");
    if (!rc) rc = llm_ar_open(&m->ar, path, LLM_AR_LOAD_ALL);
    if (!rc) {
        m->meta = llm_ar_meta(m->ar);
        const json_t *model = json_object_get(m->meta, "model");
        if (!json_is_object(model))
            rc = llm_err_set(LLM_EFORMAT, "'%s': metadata has no \"model\" description",
                             llm_ar_path(m->ar));
        else if ((rc = llm_desc_from_json(&m->desc, model)))
            llm_err_wrap(rc, "'%s': model description", llm_ar_path(m->ar));
    }
    if (!rc) {
        const json_t *gen = json_object_get(m->meta, "generation");
        if (gen && !json_is_null(gen) && (rc = llm_gen_defaults_from_json(&m->gen, gen)))
            llm_err_wrap(rc, "'%s': generation defaults", llm_ar_path(m->ar));
    }
    if (!rc && !(flags & LLM_MODEL_NO_VERIFY)) rc = llm_ar_verify_all(m->ar);
    if (!rc) {
        const json_t *files = json_object_get(json_object_get(m->meta, "tokenizer"), "files");
        const json_t *tj = json_object_get(files, "tokenizer.json");
        const json_t *tc = json_object_get(files, "tokenizer_config.json");
        m->tokenizer_json = json_is_object(tj) ? tj : NULL;
        m->tokenizer_config = json_is_object(tc) ? tc : NULL;
    }
    if (rc) {
        llm_model_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

void llm_model_close(struct llm_model *m)
{
    if (!m) return;
    llm_desc_free(&m->desc);
    llm_ar_close(m->ar);
    free(m->path);
    free(m);
}

int llm_model_tensor(struct llm_model *m, const char *name, struct llm_tensor *t)
{
    int rc;
    const char *src = m->ar ? llm_ar_path(m->ar) : (m->path ? m->path : "<model>");
    if (m->ar) {
        rc = llm_ar_find(m->ar, name, t);
    } else if (m->get_tensor) {
        rc = m->get_tensor(m->get_tensor_ctx, name, t);
        if (rc == LLM_ENOTFOUND) rc = llm_err_set(rc, "'%s': no tensor '%s'", src, name);
    } else {
        rc = llm_err_set(LLM_ENOTFOUND, "'%s': no tensor '%s' (model has no tensor source)", src,
                         name);
    }
    if (rc) return rc;
    if (m->ar && !whole_model(m->meta)) return 0;
    int ndim;
    int64_t shape[LLM_MAX_DIMS];
    if (llm_desc_tensor_shape(&m->desc, name, &ndim, shape) != 0) {
        llm_err_clear(); /* not a canonical tensor of this model: nothing to check */
        return 0;
    }
    int same = ndim == t->ndim;
    for (int i = 0; same && i < ndim; i++) same = shape[i] == t->shape[i];
    if (!same) {
        char want[168], got[168];
        llm_shape_str(want, sizeof(want), ndim, shape);
        llm_shape_str(got, sizeof(got), t->ndim < LLM_MAX_DIMS ? t->ndim : LLM_MAX_DIMS, t->shape);
        return llm_err_set(LLM_ESHAPE, "'%s': tensor '%s' has shape %s, expected %s", src, name,
                           got, want);
    }
    return 0;
}
