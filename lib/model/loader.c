/* loader.c - an artifact opened for inference (struct llm_model).
 *
 * The description and generation defaults are rebuilt from the metadata
 * (the artifact is their single source of truth after conversion); the
 * tokenizer files stay as JSON owned by the artifact.  Tensors are looked
 * up lazily by name and their shapes checked against the description at
 * each lookup, so a model whose file holds extra tensors (quantization
 * scales) still opens.  A rank's file of a tensor/pipeline-parallel model
 * (its "mapping") gets the rank's description (llm_desc_partition), so
 * its slices are checked the same way.  Every
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

void llm_model_init_mem(struct llm_model *m)
{
    llm_quant_init(&m->quant);
    m->mapping = (struct llm_mapping){1, 1, 1, 0, 0, 1};
}

/* The "mapping" member; absent means one rank holding the whole model. */
static int read_mapping(struct llm_mapping *mp, const json_t *meta, const char *src)
{
    *mp = (struct llm_mapping){1, 1, 1, 0, 0, 1};
    const json_t *m = json_object_get(meta, "mapping");
    if (!m || json_is_null(m)) return 0;
    /* the sizes first (positive), then the ranks; moe_tp_size x moe_ep_size
     * = tp_size as in TensorRT-LLM */
    static const char *const keys[] = {"world_size", "tp_size", "pp_size", "moe_ep_size",
                                       "moe_tp_size", "tp_rank", "pp_rank"};
    int moe_tp = 0;
    int *dst[] = {&mp->world_size, &mp->tp_size, &mp->pp_size, &mp->ep_size, &moe_tp,
                  &mp->tp_rank, &mp->pp_rank};
    int given[7] = {0};
    for (int i = 0; i < 7; i++) {
        const json_t *v = json_object_get(m, keys[i]);
        if (!v || json_is_null(v)) continue;
        given[i] = 1;
        if (!json_is_integer(v) || json_integer_value(v) < (i < 5 ? 1 : 0) ||
            json_integer_value(v) > 1 << 16)
            return llm_err_set(LLM_EFORMAT, "'%s': mapping.%s is not a %s integer", src, keys[i],
                               i < 5 ? "positive" : "non-negative");
        *dst[i] = (int)json_integer_value(v);
    }
    /* a world size alone is that many tensor-parallel ranks */
    if (!given[1] && !given[2]) mp->tp_size = mp->world_size;
    if (mp->world_size != mp->tp_size * mp->pp_size || mp->tp_rank >= mp->tp_size ||
        mp->pp_rank >= mp->pp_size)
        return llm_err_set(LLM_EFORMAT, "'%s': mapping is inconsistent (world %d, tp %d rank %d, "
                           "pp %d rank %d)", src, mp->world_size, mp->tp_size, mp->tp_rank,
                           mp->pp_size, mp->pp_rank);
    if (mp->tp_size % mp->ep_size || (given[4] && moe_tp * mp->ep_size != mp->tp_size))
        return llm_err_set(LLM_EFORMAT, "'%s': mapping is inconsistent (tp %d, moe_ep_size %d, "
                           "moe_tp_size %d)", src, mp->tp_size, mp->ep_size,
                           given[4] ? moe_tp : mp->tp_size / mp->ep_size);
    return 0;
}

int llm_model_open(struct llm_model **out, const char *path)
{
    return llm_model_open_flags(out, path, 0);
}

int llm_model_open_flags(struct llm_model **out, const char *path, unsigned flags)
{
    *out = NULL;
    if (path && !strncmp(path, LLM_MODEL_RANDOM_PREFIX, strlen(LLM_MODEL_RANDOM_PREFIX)))
        return llm_model_random(out, path + strlen(LLM_MODEL_RANDOM_PREFIX), -1, 0);
    struct llm_model *m = calloc(1, sizeof(*m));
    if (!m) return llm_err_set(LLM_ENOMEM, "out of memory");
    llm_desc_init(&m->desc);
    llm_gen_defaults_init(&m->gen);
    llm_model_init_mem(m);
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
    if (!rc) rc = llm_quant_from_json(&m->quant, json_object_get(m->meta, "quantization"),
                                      llm_ar_path(m->ar));
    if (!rc) rc = read_mapping(&m->mapping, m->meta, llm_ar_path(m->ar));
    if (!rc && (rc = llm_desc_partition(&m->desc, &m->mapping, &m->quant)))
        llm_err_wrap(rc, "'%s': mapping", llm_ar_path(m->ar));
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
    if (m->get_tensor_free) m->get_tensor_free(m->get_tensor_ctx);
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
