/* dist.c - the ranks of a multi-rank job seen as one backend (llm/dist.h).
 *
 * Rank 0 runs the scheduler; every other rank runs its part of each step.
 * Rank 0's backend is a thin wrapper: forward and copy_blocks are first
 * announced to the other ranks (one broadcast of a fixed header, one of
 * the step's arrays), then run on rank 0's own part; the model definition
 * does the rest (sums, gathers and pipeline sends inside the step; a
 * pipeline's micro-batches are cut by every rank the same way, from the
 * announced step and the count all of them agreed on).  The
 * other ranks wait in llm_job_follow for the next announcement.  Sampling
 * needs nothing from them: the logits are complete on rank 0 (gathered
 * over the tensor-parallel ranks, sent by the last pipeline stage).
 *
 * Opening a job (llm_job_start, llm_job_open_model) agrees before any
 * step: every rank opens its own file, and all of them compare what they found (mapping, the
 * parent's hash, errors), so a missing, foreign or misnumbered rank file
 * ends every rank with the same one-line reason instead of a hang.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "llm/backend.h"
#include "llm/comm.h"
#include "llm/dist.h"
#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/log.h"
#include "llm/model.h"

/* ---- agreement ------------------------------------------------------------- */

struct rank_state {
    int32_t ok, world, tp, pp, tp_rank, pp_rank, ep, pad0;
    uint64_t hash;
    int32_t n_blocks, block_size, max_batch_tokens, max_seqs, max_seq_len, pp_micro;
    char msg[400];
};

/* Gather every rank's state; the first failure (or disagreement) becomes
 * this rank's error, the same on every rank.  *all gets the array (freed
 * by the caller) when not NULL. */
static int agree(struct llm_comm *c, struct rank_state *mine, struct rank_state **all_out)
{
    struct rank_state *all = calloc((size_t)c->size, sizeof *all);
    if (!all) return llm_err_set(LLM_ENOMEM, "out of memory");
    int rc = c->ops->all_gather(c, mine, all, sizeof *mine, LLM_DTYPE_U8, NULL);
    if (rc) {
        free(all);
        return rc;
    }
    for (int r = 0; r < c->size && !rc; r++)
        if (!all[r].ok) {
            all[r].msg[sizeof all[r].msg - 1] = 0;
            rc = llm_err_set(LLM_EINVAL, "%s", all[r].msg);
        }
    if (all_out && !rc) *all_out = all;
    else free(all);
    return rc;
}

static void fail_state(struct rank_state *s, int rank)
{
    s->ok = 0;
    snprintf(s->msg, sizeof s->msg, "rank %d: %s", rank, llm_errmsg());
}

/* ---- opening a job ---------------------------------------------------------- */

static int is_dir(const char *p)
{
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int llm_job_rank_path(char *buf, size_t cap, const char *dir, int rank)
{
    int n = snprintf(buf, cap, "%s/rank-%d.llm", dir, rank);
    if (n < 0 || (size_t)n >= cap) return llm_err_set(LLM_ERANGE, "'%s': path too long", dir);
    return 0;
}

/* The parent hash a rank file records (meta.shard.parent_hash), or 0. */
static uint64_t parent_hash(const struct llm_model *m)
{
    const json_t *h = json_object_get(json_object_get(m->meta, "shard"), "parent_hash");
    return json_is_string(h) ? strtoull(json_string_value(h), NULL, 16) : 0;
}

static int check_rank_file(const struct llm_model *m, const char *path, int rank, int size)
{
    const struct llm_mapping *mp = &m->mapping;
    int r = mp->pp_rank * mp->tp_size + mp->tp_rank;
    if (mp->world_size != size)
        return llm_err_set(LLM_EINVAL, "'%s' is one of %d ranks, but this job has %d (mpirun -np "
                           "%d)", path, mp->world_size, size, mp->world_size);
    if (r != rank)
        return llm_err_set(LLM_EINVAL, "'%s' holds rank %d (tp %d, pp %d), not rank %d", path, r,
                           mp->tp_rank, mp->pp_rank, rank);
    if (!parent_hash(m))
        return llm_err_set(LLM_EFORMAT, "'%s' does not say which model it is a part of "
                           "(shard.parent_hash); write rank files with llm-shard", path);
    return 0;
}

int llm_job_start(struct llm_job *j, const char *path)
{
    memset(j, 0, sizeof *j);
    j->size = 1;
    j->dir = is_dir(path);
    if (!llm_comm_launched()) return 0; /* a process on its own */
    int rc = llm_comm_mpi(&j->comm);
    if (rc) return rc;
    j->rank = j->comm->rank;
    j->size = j->comm->size;
    if (!j->dir && j->size > 1) {
        /* every rank would run the whole model alone */
        /* every rank knows, rank 0 tells; llm_job_close ends the job */
        return llm_err_set(LLM_EINVAL, "'%s' is a whole model, but this job has %d ranks: "
                           "split it with llm-shard and pass the directory", path, j->size);
    }
    return 0;
}

int llm_job_open_model(struct llm_job *j, const char *path, unsigned flags,
                       struct llm_model **out)
{
    *out = NULL;
    int rc;
    if (!j->dir) return llm_model_open_flags(out, path, flags);
    char p[4096];
    if (!j->comm) {
        /* not started by a launcher: a directory of one rank runs here;
         * more ranks need mpirun */
        struct llm_model *m = NULL;
        if ((rc = llm_job_rank_path(p, sizeof p, path, 0))) return rc;
        if ((rc = llm_model_open_flags(&m, p, flags))) return rc;
        if (m->mapping.world_size > 1) {
            rc = llm_err_set(LLM_EINVAL, "'%s' holds %d ranks: start them with mpirun -np %d", path,
                             m->mapping.world_size, m->mapping.world_size);
            llm_model_close(m);
            return rc;
        }
        *out = m;
        return 0;
    }
    struct rank_state st = {.ok = 1};
    struct llm_model *m = NULL;
    rc = llm_job_rank_path(p, sizeof p, path, j->rank);
    if (!rc) rc = llm_model_open_flags(&m, p, flags);
    if (!rc) rc = check_rank_file(m, p, j->rank, j->size);
    if (rc) {
        fail_state(&st, j->rank);
    } else {
        st.world = m->mapping.world_size;
        st.tp = m->mapping.tp_size;
        st.pp = m->mapping.pp_size;
        st.ep = m->mapping.ep_size;
        st.hash = parent_hash(m);
    }
    struct rank_state *all = NULL;
    rc = agree(j->comm, &st, &all);
    for (int r = 1; !rc && r < j->size; r++)
        if (all[r].hash != all[0].hash || all[r].tp != all[0].tp || all[r].pp != all[0].pp ||
            all[r].ep != all[0].ep) {
            char q[4096];
            llm_job_rank_path(q, sizeof q, path, r);
            rc = llm_err_set(LLM_EINVAL, "'%s' is not a part of the same model as rank 0's "
                             "(parent %016llx, tp %d x pp %d, ep %d; rank 0: %016llx, tp %d x pp "
                             "%d, ep %d)", q, (unsigned long long)all[r].hash, all[r].tp,
                             all[r].pp, all[r].ep, (unsigned long long)all[0].hash, all[0].tp,
                             all[0].pp, all[0].ep);
        }
    free(all);
    if (rc) {
        llm_model_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

int llm_job_quiet_error(const struct llm_job *j)
{
    return j->size > 1 && j->rank != 0;
}

void llm_job_close(struct llm_job *j)
{
    if (!j) return;
    if (j->comm && j->size > 1) {
        /* the others wait for rank 0 (which has said what there was to say)
         * before any rank leaves: a rank leaving first makes mpirun end the rest */
        char b = 0;
        j->comm->ops->broadcast(j->comm, &b, 1, 0, NULL);
    }
    llm_comm_destroy(j->comm);
    j->comm = NULL;
}

/* ---- rank 0's wrapper ---------------------------------------------------------- */

enum { CMD_STOP = 0, CMD_FORWARD, CMD_COPY };

struct header {
    int32_t cmd, n_tokens, n_seqs, bt_stride, n_out, n_pairs;
};

struct dist_be {
    struct llm_backend pub;
    struct llm_backend *local;
    struct llm_comm *comm;
    int32_t *buf;
    size_t cap;
};

static size_t payload_ints(const struct header *h)
{
    if (h->cmd == CMD_COPY) return 2 * (size_t)h->n_pairs;
    if (h->cmd != CMD_FORWARD) return 0;
    return 2 * (size_t)h->n_tokens + (size_t)h->n_seqs + 1 + (size_t)h->n_seqs +
           (size_t)h->n_seqs * (size_t)h->bt_stride + (size_t)h->n_out;
}

static int reserve(int32_t **buf, size_t *cap, size_t n)
{
    if (n <= *cap) return 0;
    int32_t *p = realloc(*buf, (n ? n : 1) * sizeof *p);
    if (!p) return llm_err_set(LLM_ENOMEM, "out of memory for a step of %zu values", n);
    *buf = p;
    *cap = n;
    return 0;
}

static int announce(struct dist_be *d, const struct header *h, const int32_t *const *parts,
                    const size_t *lens, int n_parts)
{
    struct header hh = *h;
    int rc = d->comm->ops->broadcast(d->comm, &hh, sizeof hh, 0, NULL);
    size_t n = payload_ints(h), off = 0;
    if (!rc && n) {
        if ((rc = reserve(&d->buf, &d->cap, n))) return rc;
        for (int i = 0; i < n_parts; i++) {
            if (lens[i]) memcpy(d->buf + off, parts[i], lens[i] * sizeof(int32_t));
            off += lens[i];
        }
        rc = d->comm->ops->broadcast(d->comm, d->buf, n * sizeof(int32_t), 0, NULL);
    }
    return rc;
}

static int dist_forward(struct llm_backend *be, const struct llm_batch *b)
{
    struct dist_be *d = be->priv;
    int rc = llm_batch_check(be, b);
    if (rc) return rc;
    struct header h = {CMD_FORWARD, b->n_tokens, b->n_seqs, b->bt_stride, b->n_out, 0};
    const int32_t *parts[6] = {b->tokens, b->pos, b->seq_start, b->seq_len, b->block_table,
                               b->out_rows};
    size_t lens[6] = {(size_t)b->n_tokens, (size_t)b->n_tokens, (size_t)b->n_seqs + 1,
                      (size_t)b->n_seqs, (size_t)b->n_seqs * (size_t)b->bt_stride,
                      (size_t)b->n_out};
    if ((rc = announce(d, &h, parts, lens, 6))) return rc;
    return d->local->ops->forward(d->local, b);
}

static int dist_get_logits(struct llm_backend *be, float *dst)
{
    struct dist_be *d = be->priv;
    return d->local->ops->get_logits(d->local, dst);
}

static int dist_sample(struct llm_backend *be, const struct llm_sample_row *rows, int n,
                       struct llm_sample_result *out)
{
    struct dist_be *d = be->priv;
    return d->local->ops->sample(d->local, rows, n, out);
}

static int dist_copy_blocks(struct llm_backend *be, const int32_t *src, const int32_t *dst, int n)
{
    struct dist_be *d = be->priv;
    struct header h = {CMD_COPY, 0, 0, 0, 0, n};
    const int32_t *parts[2] = {src, dst};
    size_t lens[2] = {(size_t)n, (size_t)n};
    int rc = announce(d, &h, parts, lens, 2);
    return rc ? rc : d->local->ops->copy_blocks(d->local, src, dst, n);
}

static int dist_last_step_time(struct llm_backend *be, double *s)
{
    struct dist_be *d = be->priv;
    return d->local->ops->last_step_time(d->local, s);
}

static void dist_destroy(struct llm_backend *be)
{
    if (!be) return;
    struct dist_be *d = be->priv;
    struct header h = {CMD_STOP, 0, 0, 0, 0, 0};
    if (d->comm) announce(d, &h, NULL, NULL, 0); /* the others return from follow */
    llm_backend_destroy(d->local);
    free(d->buf);
    free(d);
}

static const struct llm_backend_ops dist_ops = {
    .name = "ranks",
    .forward = dist_forward,
    .get_logits = dist_get_logits,
    .sample = dist_sample,
    .copy_blocks = dist_copy_blocks,
    .last_step_time = dist_last_step_time,
    .destroy = dist_destroy,
};
/* The same over a backend without a device clock (the CPU): none either. */
static const struct llm_backend_ops dist_ops_noclock = {
    .name = "ranks",
    .forward = dist_forward,
    .get_logits = dist_get_logits,
    .sample = dist_sample,
    .copy_blocks = dist_copy_blocks,
    .last_step_time = NULL,
    .destroy = dist_destroy,
};

/* LLM_PP_MICRO: pipeline micro-batches per step (0 when unset: the
 * backend's default). */
static int env_pp_micro(int *out)
{
    const char *v = getenv("LLM_PP_MICRO");
    *out = 0;
    if (!v || !*v) return 0;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < 1 || n > 4096)
        return llm_err_set(LLM_EINVAL, "LLM_PP_MICRO='%s' is not a number of micro-batches "
                           "(1 to 4096)", v);
    *out = (int)n;
    return 0;
}

/* Every rank: agree on the pool and limits (the smallest of each), after
 * learning whether every rank's backend was created; every rank must cut
 * a step into the same micro-batches. */
static int agree_limits(struct llm_comm *c, struct llm_backend *local, int create_rc,
                        int pp_micro)
{
    struct rank_state st = {.ok = 1};
    if (create_rc) {
        fail_state(&st, c->rank);
    } else {
        st.n_blocks = local->n_blocks;
        st.block_size = local->block_size;
        st.max_batch_tokens = local->max_batch_tokens;
        st.max_seqs = local->max_seqs;
        st.max_seq_len = local->max_seq_len;
        st.pp_micro = pp_micro;
    }
    struct rank_state *all = NULL;
    int rc = agree(c, &st, &all);
    if (rc) return rc;
    for (int r = 0; r < c->size; r++) {
        if (all[r].block_size != all[0].block_size) {
            rc = llm_err_set(LLM_EINVAL, "rank %d has KV blocks of %d tokens, rank 0 of %d", r,
                             all[r].block_size, all[0].block_size);
            free(all);
            return rc;
        }
        if (all[r].pp_micro != all[0].pp_micro) {
            rc = llm_err_set(LLM_EINVAL, "rank %d cuts a step into %d pipeline micro-batches, "
                             "rank 0 into %d: give every rank the same LLM_PP_MICRO", r,
                             all[r].pp_micro, all[0].pp_micro);
            free(all);
            return rc;
        }
#define MIN_OF(f) local->f = all[r].f < local->f ? all[r].f : local->f
        MIN_OF(n_blocks);
        MIN_OF(max_batch_tokens);
        MIN_OF(max_seqs);
        MIN_OF(max_seq_len);
#undef MIN_OF
    }
    free(all);
    return 0;
}

int llm_job_backend(struct llm_job *j, const char *device, const struct llm_model *m,
                    const struct llm_backend_opts *o, struct llm_backend **out)
{
    *out = NULL;
    if (!j->comm || j->size == 1) {
        struct llm_backend_opts oo = *o;
        oo.comm = j->comm;
        return llm_backend_create(out, device, m, &oo);
    }
    struct llm_backend_opts oo = *o;
    oo.comm = j->comm;
    struct llm_backend *local = NULL;
    int crc = oo.pp_micro ? 0 : env_pp_micro(&oo.pp_micro);
    if (!oo.pp_micro) oo.pp_micro = m->mapping.pp_size > 1 ? m->mapping.pp_size : 1;
    if (!crc) crc = llm_backend_create(&local, device, m, &oo);
    int rc = agree_limits(j->comm, local, crc, oo.pp_micro);
    if (rc) {
        llm_backend_destroy(local);
        return rc;
    }
    if (j->rank != 0) {
        *out = local;
        return 0;
    }
    struct dist_be *d = calloc(1, sizeof *d);
    if (!d) {
        llm_backend_destroy(local);
        return llm_err_set(LLM_ENOMEM, "out of memory");
    }
    d->pub = *local;
    d->pub.ops = local->ops->last_step_time ? &dist_ops : &dist_ops_noclock;
    d->pub.priv = d;
    d->local = local;
    d->comm = j->comm;
    snprintf(d->pub.device_name, sizeof d->pub.device_name, "%d ranks of %.100s", j->size,
             local->device_name);
    *out = &d->pub;
    return 0;
}

int llm_job_follow(struct llm_job *j, struct llm_backend *be)
{
    struct llm_comm *c = j->comm;
    int32_t *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    const double step_timeout = c->timeout;
    for (;;) {
        /* between steps rank 0 may wait as long as its input does (a
         * stream of requests); inside a step every wait has the limit */
        struct header h;
        c->timeout = 0;
        rc = c->ops->broadcast(c, &h, sizeof h, 0, NULL);
        c->timeout = step_timeout;
        if (rc) break;
        if (h.cmd == CMD_STOP) break;
        if ((h.cmd != CMD_FORWARD && h.cmd != CMD_COPY) || h.n_tokens < 0 || h.n_seqs < 0 ||
            h.bt_stride < 0 || h.n_out < 0 || h.n_pairs < 0) {
            rc = llm_err_set(LLM_EFORMAT, "rank %d: a step announcement it cannot read", c->rank);
            break;
        }
        size_t n = payload_ints(&h);
        if ((rc = reserve(&buf, &cap, n))) break;
        if (n && (rc = c->ops->broadcast(c, buf, n * sizeof(int32_t), 0, NULL))) break;
        if (h.cmd == CMD_COPY) {
            if ((rc = be->ops->copy_blocks(be, buf, buf + h.n_pairs, h.n_pairs))) break;
            continue;
        }
        const int32_t *p = buf;
        struct llm_batch b = {0};
        b.n_tokens = h.n_tokens;
        b.tokens = p, p += h.n_tokens;
        b.pos = p, p += h.n_tokens;
        b.n_seqs = h.n_seqs;
        b.seq_start = p, p += h.n_seqs + 1;
        b.seq_len = p, p += h.n_seqs;
        b.block_table = p, p += (size_t)h.n_seqs * (size_t)h.bt_stride;
        b.bt_stride = h.bt_stride;
        b.n_out = h.n_out;
        b.out_rows = p;
        if ((rc = be->ops->forward(be, &b))) break;
    }
    free(buf);
    if (rc) llm_err_wrap(rc, "rank %d", c->rank);
    return rc;
}
