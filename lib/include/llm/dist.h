/* dist.h - a job of several ranks (tensor / pipeline parallelism) seen
 * from a tool.
 *
 * A tool joins the job (llm_job_start) and opens its model
 * (llm_job_open_model): a path to one artifact is one rank as always; a directory of rank files (llm-shard's rank-K.llm) is
 * opened as a job of the MPI launcher that started this process (mpirun,
 * srun), each rank its own file.  Every rank checks its file against the
 * job (its rank, the number of ranks, the same parent model as rank 0's)
 * and all of them agree before anything runs, so a missing or foreign file
 * ends every rank with one reason.
 *
 * Then llm_job_backend creates the rank's backend with the job's
 * communicator.  On rank 0 it returns a backend that drives the others:
 * the scheduler uses it as any backend, and each step is announced to the
 * other ranks first.  The other ranks call llm_job_follow, which runs the
 * announced steps until rank 0's backend is destroyed.
 */
#ifndef LLM_DIST_H
#define LLM_DIST_H

#include <stddef.h>

#include "backend.h"
#include "comm.h"
#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

struct llm_job {
    struct llm_comm *comm; /* NULL for a process on its own */
    int rank, size;
    int dir;               /* opened from a directory of rank files */
};

/* Join the job this process was started in (or none), knowing the model
 * at path: a whole artifact in a job of several ranks is refused. */
int llm_job_start(struct llm_job *j, const char *path);
/* Open this rank's part of path (an artifact, or a directory of rank
 * files); flags as llm_model_open_flags.  Every rank agrees. */
int llm_job_open_model(struct llm_job *j, const char *path, unsigned flags,
                       struct llm_model **m);
/* DIR/rank-K.llm */
int llm_job_rank_path(char *buf, size_t cap, const char *dir, int rank);
/* The rank's backend (rank 0: the driving wrapper); every rank agrees on
 * the KV pool and limits (the smallest of each) and on the pipeline
 * micro-batches of a step (o->pp_micro, else LLM_PP_MICRO, the same on
 * every rank). */
int llm_job_backend(struct llm_job *j, const char *device, const struct llm_model *m,
                    const struct llm_backend_opts *o, struct llm_backend **be);
/* Ranks other than 0: run rank 0's steps until it stops. */
int llm_job_follow(struct llm_job *j, struct llm_backend *be);
/* An error every rank has and rank 0 reports: the others stay quiet. */
int llm_job_quiet_error(const struct llm_job *j);
/* Leave the job: the ranks wait for rank 0 first (call it after rank 0 has
 * printed what went wrong), then MPI ends. */
void llm_job_close(struct llm_job *j);

#ifdef __cplusplus
}
#endif
#endif
