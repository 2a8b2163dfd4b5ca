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
    /* Optional: calibration statistics of every linear layer's input and of
     * the K and V rows, reduced by the backend where the activations are
     * (struct llm_stat_sink below; borrowed, outlives the backend). */
    const struct llm_stat_sink *stats;
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

/* ---- calibration statistics (lib/quant/calib.c is the sink) ----------------
 * A backend given a sink reduces, for every linear product it runs, the
 * product's input rows x [rows][in] into max |x| and sum |x| per input
 * channel and max |x| overall, and copies the rows the sink's reservoir
 * keeps; for every layer it max-accumulates |K| and |V| as they go into the
 * cache (after rotary, before any 8-bit rounding).  The sink decides which
 * rows are kept from the row counts alone, and is asked in the order the
 * products run (the model definition's, the same on every backend), so
 * every backend keeps the same rows.  The CPU backend reduces its host rows
 * as each product runs (the reference); the CUDA backend reduces on the
 * device and adds its totals and kept rows into the sink's arrays only at
 * ops->stats_flush, so no activation is copied to the host. */
struct llm_stat_acc {
    int64_t in;       /* input width */
    float *chan;      /* [in] max |x| per input channel (max-accumulated) */
    double *chan_sum; /* [in] sum of |x| per input channel (added to) */
    float *amax;      /* max |x| over every row and channel (max-accumulated) */
    float *sample;    /* [keep_rows][in] fp32: the kept rows by slot, or NULL */
};
struct llm_stat_sink {
    void *ctx;
    int keep_rows; /* rows of each input the reservoir keeps (0: none) */
    /* The accumulators of w's input (valid until the next call) and, for
     * rows > 0, which of its next `rows` rows are kept: slot[t] >= 0 is the
     * sample row that row t goes to, -1 none; applied in row order, so a
     * later row replaces an earlier one with the same slot.  rows == 0 asks
     * for the accumulators only (slot may be NULL).  Returns 0, 1 when w is
     * not observed (nothing to reduce), or a negative error. */
    int (*linear)(void *ctx, const struct llm_weight *w, int rows, int32_t *slot,
                  struct llm_stat_acc *acc);
    float *kv_amax; /* [n_layers][2]: max |K|, max |V| (max-accumulated), or NULL */
};

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
    /* Optional (NULL where the statistics go into the sink as the steps run,
     * CPU): add the calibration statistics held on the device since the last
     * call into the sink's arrays (opts.stats), and the kept rows as they
     * stand now. */
    int (*stats_flush)(struct llm_backend *be);
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
