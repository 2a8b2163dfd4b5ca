/* backend.c - backend options, selection by name, and batch validation.
 *
 * "auto" is CUDA when a device is present, else the CPU; with a device, every
 * CUDA failure is reported - a model the CUDA backend cannot run included -
 * rather than hidden behind a silent fallback to a much slower backend.  In a build without CUDA this file also provides
 * llm_backend_cuda_create, which fails with LLM_EUNSUPPORTED; with CUDA,
 * lib/backend/cuda provides it.  llm_batch_check holds the batch rules every
 * backend's forward relies on, so the backends reject bad batches with the
 * same messages.
 */
#include <stdint.h>
#include <string.h>

#include "llm_build_config.h"
#include "llm/backend.h"
#include "llm/comm.h"
#include "llm/engine_artifact.h"
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

int llm_backend_cuda_probe(struct llm_backend_ceiling *c, int device)
{
    (void)device;
    memset(c, 0, sizeof *c);
    return llm_err_set(LLM_EUNSUPPORTED, "built without CUDA");
}

int llm_backend_cuda_mem_used(int device, uint64_t *bytes)
{
    (void)device;
    *bytes = 0;
    return llm_err_set(LLM_EUNSUPPORTED, "built without CUDA");
}
#endif

int llm_backend_create(struct llm_backend **out, const char *name, const struct llm_model *m,
                       const struct llm_backend_opts *o)
{
    *out = NULL;
    if (m && (llm_part_tp(&m->desc) > 1 || llm_part_pp(&m->desc) > 1)) {
        /* a rank's part runs where its communicator moves the data: NCCL on
         * the GPU, MPI on the CPU */
        int nccl = o && o->comm && o->comm->ops->name && !strcmp(o->comm->ops->name, "nccl");
        if (nccl) return llm_backend_cuda_create(out, m, o);
        if (name && !strcmp(name, "cuda"))
            return llm_err_set(LLM_EUNSUPPORTED, "'%s': a rank of a tensor/pipeline-parallel "
                               "model runs on the GPU with NCCL between the ranks; this job "
                               "has %s (--device cpu)", m->path ? m->path : "model",
                               o && o->comm ? o->comm->ops->name : "none");
        return llm_backend_cpu_create(out, m, o);
    }
    if (!name || !strcmp(name, "auto")) {
        int major, minor;
        if (llm_cuda_device_query(o ? o->device : 0, &major, &minor, NULL, 0) != 0) {
            llm_err_clear(); /* no CUDA here */
            return llm_backend_cpu_create(out, m, o);
        }
        return llm_backend_cuda_create(out, m, o);
    }
    if (!strcmp(name, "cpu")) return llm_backend_cpu_create(out, m, o);
    if (!strcmp(name, "cuda")) return llm_backend_cuda_create(out, m, o);
    return llm_err_set(LLM_EINVAL, "unknown backend '%s' (auto, cpu, cuda)", name);
}

int llm_batch_check(const struct llm_backend *be, const struct llm_batch *b)
{
    if (b->n_tokens < 1 || b->n_tokens > be->max_batch_tokens)
        return llm_err_set(LLM_ECAPACITY, "batch: %d tokens (limit 1..%d)", b->n_tokens,
                           be->max_batch_tokens);
    if (b->n_seqs < 1 || b->n_seqs > be->max_seqs)
        return llm_err_set(LLM_ECAPACITY, "batch: %d sequences (limit 1..%d)", b->n_seqs,
                           be->max_seqs);
    if (!b->tokens || !b->pos || !b->seq_start || !b->seq_len || !b->block_table ||
        (b->n_out > 0 && !b->out_rows))
        return llm_err_set(LLM_EINVAL, "batch: missing array");
    if (b->seq_start[0] != 0 || b->seq_start[b->n_seqs] != b->n_tokens)
        return llm_err_set(LLM_EINVAL, "batch: seq_start must run from 0 to n_tokens %d",
                           b->n_tokens);
    for (int s = 0; s < b->n_seqs; s++) {
        int t0 = b->seq_start[s], t1 = b->seq_start[s + 1], n_new = t1 - t0;
        if (n_new < 1 || t1 > b->n_tokens)
            return llm_err_set(LLM_EINVAL, "batch: sequence %d has rows %d..%d", s, t0, t1 - 1);
        int len = b->seq_len[s];
        if (len < n_new || len > be->max_seq_len)
            return llm_err_set(len > be->max_seq_len ? LLM_ECAPACITY : LLM_EINVAL,
                               "batch: sequence %d has length %d with %d new tokens (max %d)", s,
                               len, n_new, be->max_seq_len);
        for (int t = t0; t < t1; t++)
            if (b->pos[t] != len - n_new + (t - t0))
                return llm_err_set(LLM_EINVAL,
                                   "batch: sequence %d row %d has position %d, expected %d", s, t,
                                   b->pos[t], len - n_new + (t - t0));
        int nblk = (len + be->block_size - 1) / be->block_size;
        if (nblk > b->bt_stride)
            return llm_err_set(LLM_EINVAL, "batch: sequence %d needs %d blocks, bt_stride is %d", s,
                               nblk, b->bt_stride);
        for (int i = 0; i < nblk; i++) {
            int id = b->block_table[(int64_t)s * b->bt_stride + i];
            if (id < 0 || id >= be->n_blocks)
                return llm_err_set(LLM_EINVAL, "batch: sequence %d block %d has id %d, pool has %d",
                                   s, i, id, be->n_blocks);
        }
    }
    if (b->n_out < 0 || b->n_out > b->n_tokens)
        return llm_err_set(LLM_EINVAL, "batch: n_out %d with %d tokens", b->n_out, b->n_tokens);
    for (int i = 0; i < b->n_out; i++)
        if (b->out_rows[i] < 0 || b->out_rows[i] >= b->n_tokens ||
            (i > 0 && b->out_rows[i] <= b->out_rows[i - 1]))
            return llm_err_set(LLM_EINVAL,
                               "batch: out_rows[%d] = %d is not increasing within [0, %d)", i,
                               b->out_rows[i], b->n_tokens);
    return 0;
}
