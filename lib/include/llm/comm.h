/* comm.h - the communicator seam: what tensor and pipeline parallelism
 * need from the ranks of a job, whatever moves the bytes.
 *
 * A communicator is a small table of collective and point-to-point
 * operations over buffers in the memory of the backend that uses it (host
 * memory for the CPU backend, device memory for CUDA, with `stream` the
 * CUDA stream the operation is ordered on; NULL on the host).  The model
 * definition (llm/graph.h) calls all_reduce after the row-parallel
 * projections and all_gather for vocab-parallel logits; pipeline stages
 * pass activations with send / recv.
 *
 * The single-rank communicator (every collective is the identity,
 * send/recv have no peer) and the MPI one (host memory, between the
 * processes of an mpirun / srun job) implement the table; a NCCL one
 * (device memory) implements the same.
 */
#ifndef LLM_COMM_H
#define LLM_COMM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct llm_comm;

struct llm_comm_ops {
    const char *name; /* "single", "mpi", "nccl" */
    /* buf[count] of dtype (enum llm_dtype) summed over every rank, in place. */
    int (*all_reduce)(struct llm_comm *c, void *buf, size_t count, int dtype, void *stream);
    /* out[size * count] = every rank's in[count], in rank order. */
    int (*all_gather)(struct llm_comm *c, const void *in, void *out, size_t count, int dtype,
                      void *stream);
    /* buf[bytes] from rank root to every rank. */
    int (*broadcast)(struct llm_comm *c, void *buf, size_t bytes, int root, void *stream);
    int (*send)(struct llm_comm *c, const void *buf, size_t bytes, int peer, void *stream);
    int (*recv)(struct llm_comm *c, void *buf, size_t bytes, int peer, void *stream);
    /* A communicator of the ranks that pass the same color, ordered by key
     * (every rank calls it): a pipeline stage's tensor-parallel group. */
    int (*split)(struct llm_comm *c, int color, int key, struct llm_comm **out);
    void (*destroy)(struct llm_comm *c);
    /* Optional (NULL where a communicator lacks them): send and recv posted
     * and left running while the caller computes (pipeline stages passing
     * micro-batches on).  *req is finished by wait, which frees it; until
     * then a send's buf must not change and a recv's must not be read.
     * test lets the transfer move on (MPI moves a long message only while
     * its ranks are inside MPI) and sets *done; cancel gives req up after
     * an error, without waiting. */
    int (*isend)(struct llm_comm *c, const void *buf, size_t bytes, int peer, void **req);
    int (*irecv)(struct llm_comm *c, void *buf, size_t bytes, int peer, void **req);
    int (*test)(struct llm_comm *c, void *req, int *done);
    int (*wait)(struct llm_comm *c, void *req);
    void (*cancel)(struct llm_comm *c, void *req);
};

struct llm_comm {
    const struct llm_comm_ops *ops;
    int rank, size;
    double timeout; /* MPI: seconds an operation may wait for the others; 0 = no limit */
    void *priv;
};

/* One rank: collectives are the identity (all_gather copies in to out when
 * they differ, host memory only); send and recv fail with LLM_EINVAL (there
 * is no peer). */
int llm_comm_single(struct llm_comm **out);

/* MPI_COMM_WORLD of the job this process was started in (mpirun, srun):
 * initialises MPI on first use; destroy finalises it.  Collectives and
 * point-to-point work on host memory; each waits at most the timeout
 * (LLM_COMM_TIMEOUT seconds, default 600) and then fails with LLM_EIO
 * naming the operation, so a rank that stopped answering never hangs the
 * others.  LLM_EUNSUPPORTED when built without MPI. */
int llm_comm_mpi(struct llm_comm **out);
/* Whether this process was started as a rank of an MPI job (mpirun /
 * srun set the launcher's rank variables). */
int llm_comm_launched(void);
/* End every rank of the job now with exit status `code` (MPI_Abort; for one
 * rank, exit). */
void llm_comm_abort(struct llm_comm *c, int code);

/* NCCL between GPUs (builds with CUDA): this rank's communicator on CUDA
 * device `device`, the ranks those of `boot` (MPI, or NULL for one rank
 * alone), which carries NCCL's unique id from rank 0.  Buffers are device
 * memory and `stream` a cudaStream_t.  LLM_EUNSUPPORTED without CUDA. */
int llm_comm_nccl(struct llm_comm **out, struct llm_comm *boot, int device);
/* One process driving devices 0 .. n-1 as n ranks (tests): out[n].
 * Collectives over several of them must be issued between
 * llm_comm_group(1) and llm_comm_group(0). */
int llm_comm_nccl_all(struct llm_comm **out, int n_devices);
int llm_comm_group(int start);

static inline void llm_comm_destroy(struct llm_comm *c)
{
    if (c) c->ops->destroy(c);
}

#ifdef __cplusplus
}
#endif
#endif
