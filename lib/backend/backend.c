/* backend.c - backend options and selection by name.
 *
 * "auto" tries CUDA first and falls back to the CPU when the CUDA backend
 * says it cannot run here (built without CUDA, or no device: both
 * LLM_EUNSUPPORTED); any other CUDA failure is reported, not hidden behind
 * a silent fallback.  In a build without CUDA this file also provides
 * llm_backend_cuda_create, which fails with LLM_EUNSUPPORTED; with CUDA,
 * lib/backend/cuda provides it.
 */
#include <string.h>

#include "llm_build_config.h"
#include "llm/backend.h"
#include "llm/err.h"

void llm_backend_opts_init(struct llm_backend_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_threads = 0; /* all cores */
    o->device = 0;
    o->kv_bytes = 0;      /* use kv_fraction */
    o->kv_fraction = 0.0; /* backend default (CPU: 1/4 of RAM, at most 8 GiB) */
    o->block_size = 32;
    o->kv_dtype = LLM_DTYPE_F32;
    o->compute_dtype = LLM_DTYPE_BF16;
    o->max_batch_tokens = 0;
    o->max_seqs = 0;
    o->max_seq_len = 0;
}

#if !defined(LLM_HAVE_CUDA) || !LLM_HAVE_CUDA
int llm_backend_cuda_create(struct llm_backend **out, const struct llm_model *m,
                            const struct llm_backend_opts *o)
{
    (void)m;
    (void)o;
    *out = NULL;
    return llm_err_set(LLM_EUNSUPPORTED, "cuda backend: built without CUDA");
}
#endif

int llm_backend_create(struct llm_backend **out, const char *name, const struct llm_model *m,
                       const struct llm_backend_opts *o)
{
    *out = NULL;
    if (!name || !strcmp(name, "auto")) {
        int rc = llm_backend_cuda_create(out, m, o);
        if (rc != LLM_EUNSUPPORTED) return rc;
        llm_err_clear();
        return llm_backend_cpu_create(out, m, o);
    }
    if (!strcmp(name, "cpu")) return llm_backend_cpu_create(out, m, o);
    if (!strcmp(name, "cuda")) return llm_backend_cuda_create(out, m, o);
    return llm_err_set(LLM_EINVAL, "unknown backend '%s' (auto, cpu, cuda)", name);
}
