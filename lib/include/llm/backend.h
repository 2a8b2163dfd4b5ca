/* backend.h - the seam between the scheduler and the hardware.
 *
 * A backend owns the weights (uploaded once), the paged KV pool and the
 * activation workspace.  The scheduler hands it one ragged batch per step:
 * any mix of sequences in prefill (several tokens, possibly a chunk of a
 * longer prompt) and in decode (one token), each with its block table into
 * the KV pool.  The backend appends the step's K/V into the blocks, runs
 * the model, keeps the logits of the rows the scheduler asked for, and
 * samples them.  The CPU backend (lib/backend/cpu) is the reference; the
 * CUDA backend (lib/backend/cuda + kernels/) fills the same table.
 *
 * KV layout contract: the pool has n_blocks blocks of block_size tokens;
 * token t of a sequence lives in block block_table[t / block_size] at slot
 * t % block_size.  Blocks are owned by the scheduler's allocator; the
 * backend only reads and writes the ones a batch names.
 */
#ifndef LLM_BACKEND_H
#define LLM_BACKEND_H

#include <stdint.h>
#include "model.h"
#include "sample.h"

struct llm_weight;

#ifdef __cplusplus
extern "C" {
#endif

struct llm_backend_opts {
    int n_threads;          /* CPU: worker threads (0 = the cores no other process is busy on) */
    int device;             /* CUDA device index */
    uint64_t kv_bytes;      /* KV pool size; 0 = use kv_fraction */
    double kv_fraction;     /* of free device memory (GPU) or of physical RAM (CPU); 0 = default */
    int block_size;         /* tokens per KV block (0 = default 32) */
    int kv_dtype;           /* KV element type (CPU: f32 default) */
    int compute_dtype;      /* GPU activations/weights: f16, bf16 or f32 */
    int max_batch_tokens;   /* tokens in one forward step (0 = default) */
    int max_seqs;           /* sequences in one step (0 = default) */
    int max_seq_len;        /* 0 = model max_pos */
    /* Optional, CPU backend: called with the input x [rows][in] of every
     * linear layer just before it runs (calibration statistics). */
    void (*observe)(void *ctx, const struct llm_weight *w, const float *x, int rows);
    /* Optional, CPU backend: called with each layer's new K and V rows (as
     * they go into the cache, after rotary; row t at k + t * stride, width
     * values) before they are stored. */
    void (*observe_kv)(void *ctx, int layer, const float *k, const float *v, int rows,
                       int64_t stride, int64_t width);
    void *observe_ctx;
    /* The ranks of a tensor/pipeline-parallel job (llm/comm.h), borrowed;
     * NULL for one rank.  The model is then a rank's part (its mapping):
     * the backend sums, gathers and passes activations through it. */
    struct llm_comm *comm;
    /* Run the model definition's reduction steps (all-reduce, all-gather)
     * through comm even for one rank (tests of the communication path). */
    int reduce_steps;
    /* Pipeline stages (CPU): micro-batches a step is split into, by whole
     * sequences, so that a stage computes one while the next stage computes
     * the one before (0 = as many as the stages; 1 = the whole step at
     * once).  A step of fewer sequences uses fewer.  llm_job_backend sets it
     * from LLM_PP_MICRO. */
    int pp_micro;
};
void llm_backend_opts_init(struct llm_backend_opts *o);

/* One forward step over a ragged batch. */
struct llm_batch {
    int n_tokens;                 /* total new tokens in this step */
    const int32_t *tokens;        /* [n_tokens] */
    const int32_t *pos;           /* [n_tokens] absolute positions */
    int n_seqs;
    const int32_t *seq_start;     /* [n_seqs + 1] sequence s owns rows seq_start[s] .. seq_start[s+1]-1 */
    const int32_t *seq_len;       /* [n_seqs] tokens in KV for s after this step (past + new) */
    const int32_t *block_table;   /* [n_seqs][bt_stride] KV block ids */
    int bt_stride;
    int n_out;                    /* rows whose logits are needed */
    const int32_t *out_rows;      /* [n_out] row indices into tokens, increasing */
};

struct llm_backend;

struct llm_backend_ops {
    const char *name;
    /* Run the model on b: write K/V of the new tokens into their blocks and
     * keep the logits of b->out_rows. */
    int (*forward)(struct llm_backend *be, const struct llm_batch *b);
    /* Copy the last forward's logits to host: [n_out][vocab] fp32. */
    int (*get_logits)(struct llm_backend *be, float *dst);
    /* Sample one token for each out row of the last forward (rows[i] goes
     * with out row i). */
    int (*sample)(struct llm_backend *be, const struct llm_sample_row *rows, int n,
                  struct llm_sample_result *out);
    /* Copy whole KV blocks src[i] -> dst[i] (copy-on-write of shared prefixes). */
    int (*copy_blocks)(struct llm_backend *be, const int32_t *src, const int32_t *dst, int n);
    /* Optional (NULL where the backend has no device clock): the device time
     * in seconds of the last step, from the start of its forward to the end
     * of its sample (or get_logits), as timed on the device itself (CUDA:
     * events recorded on the backend's stream).  Valid once that call has
     * returned; LLM_EINVAL when no step has been timed yet. */
    int (*last_step_time)(struct llm_backend *be, double *seconds);
    void (*destroy)(struct llm_backend *be);
};

struct llm_backend {
    const struct llm_backend_ops *ops;
    const struct llm_model *model;
    int n_blocks;            /* KV pool, set at creation */
    int block_size;
    uint64_t kv_bytes;       /* bytes actually reserved for KV */
    int max_batch_tokens;
    int max_seqs;
    int max_seq_len;
    int64_t vocab;
    char device_name[128];   /* "cpu (16 threads)", "NVIDIA H100 80GB HBM3" */
    void *priv;
};

int llm_backend_cpu_create(struct llm_backend **out, const struct llm_model *m,
                           const struct llm_backend_opts *o);
/* LLM_EUNSUPPORTED when built without CUDA or no device is present. */
int llm_backend_cuda_create(struct llm_backend **out, const struct llm_model *m,
                            const struct llm_backend_opts *o);
/* name: "auto" (CUDA when a device is present, else CPU), "cpu", "cuda". */
int llm_backend_create(struct llm_backend **out, const char *name, const struct llm_model *m,
                       const struct llm_backend_opts *o);
/* Check b against be's limits before a forward: token and sequence counts
 * within max_batch_tokens / max_seqs, no missing array, rows partitioned into
 * sequences by seq_start, each sequence's length within max_seq_len and its
 * positions continuing its KV (the new rows are the last ones of seq_len),
 * its block table naming enough blocks of the pool, and out_rows increasing
 * within [0, n_tokens).  Token ids are not checked here (the backend does, where
 * it reads them).  Returns 0, or LLM_ECAPACITY (over a limit) / LLM_EINVAL with
 * a message starting "batch: " naming the offending sequence or row. */
int llm_batch_check(const struct llm_backend *be, const struct llm_batch *b);

/* A device's ceilings, measured with the backend's own code paths (so a
 * fraction of them is a fair figure): copy bandwidth in bytes/s counting
 * bytes read plus written, matrix-product rate in FLOP/s, and how each was
 * found.  CPU: threaded memcpy of 64 MiB and the backend's fp32 linear
 * (256 x 1024 x 1024), best of several runs.  CUDA: cudaMemcpy device to
 * device (2 GiB) and a bf16 8192^3 product through the backend's cuBLASLt
 * path, mean of ten; LLM_EUNSUPPORTED without CUDA. */
struct llm_backend_ceiling {
    double mem_bw, flops;
    char bw_how[96], flops_how[96];
    /* the rates of 8-bit products (the CUDA backend's fp8 and int8 GEMMs;
     * 0 where not measured), the ceilings of models with 8-bit activations */
    double flops_fp8, flops_int8;
    char fp8_how[96], int8_how[96];
};
int llm_backend_cpu_probe(struct llm_backend_ceiling *c, int n_threads);
int llm_backend_cuda_probe(struct llm_backend_ceiling *c, int device);
/* Device memory in use (total - free); LLM_EUNSUPPORTED without CUDA. */
int llm_backend_cuda_mem_used(int device, uint64_t *bytes);
static inline void llm_backend_destroy(struct llm_backend *be)
{
    if (be) be->ops->destroy(be);
}

#ifdef __cplusplus
}
#endif
#endif
