/* comm_mpi.c - the MPI communicator (llm/comm.h): the ranks of a job that
 * mpirun or srun started, over MPI_COMM_WORLD.
 *
 * Every operation is posted non-blocking and then waited on with a
 * deadline: MPI's own blocking calls wait forever for a rank that stopped
 * answering, and a job must end with an error instead.  The wait spins
 * briefly (a step's collectives follow each other closely) and then sleeps
 * in short naps, so ranks oversubscribing a few cores leave them to the
 * rank that is computing.  Messages longer than INT_MAX elements go in
 * pieces.  Point-to-point transfers may also be posted and finished later
 * (isend / irecv, test, wait), so a pipeline stage computes the next
 * micro-batch while the last one travels.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llm/comm.h"
#include "llm/dtype.h"
#include "llm/err.h"

int llm_comm_launched(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK",
                                       "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

#ifndef LLM_HAVE_MPI

int llm_comm_mpi(struct llm_comm **out)
{
    *out = NULL;
    return llm_err_set(LLM_EUNSUPPORTED, "this build has no MPI: multi-rank runs need llm built "
                       "with Open MPI (libopenmpi-dev)");
}

void llm_comm_abort(struct llm_comm *c, int code)
{
    (void)c;
    exit(code);
}

#else
#include <mpi.h>

#define CHUNK ((size_t)1 << 30) /* elements (bytes for MPI_BYTE) per call */

struct mpi_priv {
    MPI_Comm comm;   /* MPI_COMM_WORLD, or a split of it (freed at destroy) */
    int we_init;     /* MPI_Finalize at destroy */
};

static MPI_Comm world_of(const struct llm_comm *c)
{
    return ((const struct mpi_priv *)c->priv)->comm;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int mpi_fail(struct llm_comm *c, int err, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", err);
    return llm_err_set(LLM_EIO, "rank %d: %s failed: %s", c->rank, what, msg);
}

/* Wait for req until the communicator's deadline (c->timeout; 0 = none). */
static int wait_req(struct llm_comm *c, MPI_Request *req, MPI_Status *st, const char *what)
{
    double t0 = now();
    for (long spin = 0;; spin++) {
        int done = 0;
        int e = MPI_Test(req, &done, st ? st : MPI_STATUS_IGNORE);
        if (e != MPI_SUCCESS) return mpi_fail(c, e, what);
        if (done) return 0;
        if (spin < 2000) {
            sched_yield();
            continue;
        }
        if (c->timeout > 0 && now() - t0 > c->timeout) /* the caller ends the job */
            return llm_err_set(LLM_EIO, "rank %d: %s: no answer from the other ranks in %.0f s "
                               "(a rank stopped or runs something else; LLM_COMM_TIMEOUT sets "
                               "the limit)", c->rank, what, c->timeout);
        struct timespec nap = {0, spin < 20000 ? 20000 : 200000};
        nanosleep(&nap, NULL);
    }
}

static MPI_Datatype mpi_type(int dtype)
{
    switch (dtype) {
    case LLM_DTYPE_F32: return MPI_FLOAT;
    case LLM_DTYPE_F64: return MPI_DOUBLE;
    case LLM_DTYPE_I32: return MPI_INT32_T;
    case LLM_DTYPE_I64: return MPI_INT64_T;
    default: return MPI_DATATYPE_NULL;
    }
}

static int host_only(struct llm_comm *c, void *stream, const char *what)
{
    if (stream)
        return llm_err_set(LLM_EUNSUPPORTED, "rank %d: %s: the MPI communicator moves host "
                           "memory only", c->rank, what);
    return 0;
}

static int m_all_reduce(struct llm_comm *c, void *buf, size_t count, int dtype, void *stream)
{
    int rc = host_only(c, stream, "all_reduce");
    MPI_Datatype t = mpi_type(dtype);
    if (rc) return rc;
    if (t == MPI_DATATYPE_NULL)
        return llm_err_set(LLM_EUNSUPPORTED, "rank %d: all_reduce of %s", c->rank,
                           llm_dtype_name(dtype));
    size_t es = (size_t)llm_dtype_bits(dtype) / 8;
    for (size_t off = 0; off < count; off += CHUNK) {
        size_t n = count - off < CHUNK ? count - off : CHUNK;
        MPI_Request req;
        int e = MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + off * es, (int)n, t, MPI_SUM,
                               world_of(c), &req);
        if (e != MPI_SUCCESS) return mpi_fail(c, e, "all_reduce");
        if ((rc = wait_req(c, &req, NULL, "all_reduce"))) return rc;
    }
    return 0;
}

static int m_all_gather(struct llm_comm *c, const void *in, void *out, size_t count, int dtype,
                        void *stream)
{
    int rc = host_only(c, stream, "all_gather");
    if (rc) return rc;
    uint64_t bytes;
    if (llm_dtype_nbytes(dtype, count, &bytes) || bytes > (uint64_t)INT_MAX)
        return llm_err_set(LLM_ERANGE, "rank %d: all_gather of %zu %s elements is too large",
                           c->rank, count, llm_dtype_name(dtype));
    const void *src = in;
    void *copy = NULL;
    if ((const char *)in >= (const char *)out &&
        (const char *)in < (const char *)out + bytes * (uint64_t)c->size) {
        if (!(copy = malloc(bytes ? bytes : 1)))
            return llm_err_set(LLM_ENOMEM, "all_gather: out of memory");
        memcpy(copy, in, bytes);
        src = copy;
    }
    MPI_Request req;
    int e = MPI_Iallgather(src, (int)bytes, MPI_BYTE, out, (int)bytes, MPI_BYTE, world_of(c),
                           &req);
    rc = e != MPI_SUCCESS ? mpi_fail(c, e, "all_gather") : wait_req(c, &req, NULL, "all_gather");
    free(copy);
    return rc;
}

static int m_broadcast(struct llm_comm *c, void *buf, size_t bytes, int root, void *stream)
{
    int rc = host_only(c, stream, "broadcast");
    if (rc) return rc;
    if (root < 0 || root >= c->size)
        return llm_err_set(LLM_EINVAL, "broadcast: root %d is not a rank of %d", root, c->size);
    for (size_t off = 0; off < bytes || (off == 0 && bytes == 0); off += CHUNK) {
        size_t n = bytes - off < CHUNK ? bytes - off : CHUNK;
        MPI_Request req;
        int e = MPI_Ibcast((char *)buf + off, (int)n, MPI_BYTE, root, world_of(c), &req);
        if (e != MPI_SUCCESS) return mpi_fail(c, e, "broadcast");
        if ((rc = wait_req(c, &req, NULL, "broadcast"))) return rc;
        if (!bytes) break;
    }
    return 0;
}

static int peer_ok(struct llm_comm *c, int peer, const char *what)
{
    if (peer < 0 || peer >= c->size || peer == c->rank)
        return llm_err_set(LLM_EINVAL, "rank %d: %s: no peer rank %d in a job of %d", c->rank,
                           what, peer, c->size);
    return 0;
}

static int m_send(struct llm_comm *c, const void *buf, size_t bytes, int peer, void *stream)
{
    int rc = host_only(c, stream, "send");
    if (!rc) rc = peer_ok(c, peer, "send");
    for (size_t off = 0; !rc && (off < bytes || off == 0); off += CHUNK) {
        size_t n = bytes - off < CHUNK ? bytes - off : CHUNK;
        MPI_Request req;
        int e = MPI_Isend((const char *)buf + off, (int)n, MPI_BYTE, peer, 7, world_of(c), &req);
        rc = e != MPI_SUCCESS ? mpi_fail(c, e, "send") : wait_req(c, &req, NULL, "send");
        if (!bytes) break;
    }
    return rc;
}

static int m_recv(struct llm_comm *c, void *buf, size_t bytes, int peer, void *stream)
{
    int rc = host_only(c, stream, "recv");
    if (!rc) rc = peer_ok(c, peer, "recv");
    for (size_t off = 0; !rc && (off < bytes || off == 0); off += CHUNK) {
        size_t n = bytes - off < CHUNK ? bytes - off : CHUNK;
        MPI_Request req;
        MPI_Status st;
        int e = MPI_Irecv((char *)buf + off, (int)n, MPI_BYTE, peer, 7, world_of(c), &req);
        rc = e != MPI_SUCCESS ? mpi_fail(c, e, "recv") : wait_req(c, &req, &st, "recv");
        int got = 0;
        if (!rc && (MPI_Get_count(&st, MPI_BYTE, &got) != MPI_SUCCESS || (size_t)got != n))
            rc = llm_err_set(LLM_ESHAPE, "rank %d: expected %zu bytes from rank %d, got %d (the "
                             "ranks disagree on the model or the step)", c->rank, n, peer, got);
        if (!bytes) break;
    }
    return rc;
}

/* ---- posted transfers ---------------------------------------------------------
 * A request is the MPI requests of its pieces; a receive checks each
 * piece's length once it is complete. */

struct m_req {
    int n, recv, peer, done, rc;
    size_t bytes;
    MPI_Request r[];
};

static size_t pieces(size_t bytes)
{
    return bytes ? (bytes + CHUNK - 1) / CHUNK : 1;
}

static size_t piece_len(const struct m_req *q, int i)
{
    size_t off = (size_t)i * CHUNK;
    return q->bytes - off < CHUNK ? q->bytes - off : CHUNK;
}

static int post(struct llm_comm *c, void *buf, size_t bytes, int peer, int recv, void **out)
{
    const char *what = recv ? "recv" : "send";
    *out = NULL;
    int rc = host_only(c, NULL, what);
    if (!rc) rc = peer_ok(c, peer, what);
    if (rc) return rc;
    size_t n = pieces(bytes);
    struct m_req *q = calloc(1, sizeof *q + n * sizeof(MPI_Request));
    if (!q) return llm_err_set(LLM_ENOMEM, "rank %d: %s: out of memory", c->rank, what);
    q->n = (int)n, q->recv = recv, q->peer = peer, q->bytes = bytes;
    for (int i = 0; i < q->n; i++) {
        char *p = (char *)buf + (size_t)i * CHUNK;
        int len = (int)piece_len(q, i);
        int e = recv ? MPI_Irecv(p, len, MPI_BYTE, peer, 7, world_of(c), &q->r[i])
                     : MPI_Isend(p, len, MPI_BYTE, peer, 7, world_of(c), &q->r[i]);
        if (e != MPI_SUCCESS) {
            rc = mpi_fail(c, e, what);
            q->n = i;
            c->ops->cancel(c, q);
            return rc;
        }
    }
    *out = q;
    return 0;
}


static int check_piece(struct llm_comm *c, const struct m_req *q, int i, MPI_Status *st)
{
    int got = 0;
    size_t n = piece_len(q, i);
    if (q->recv && (MPI_Get_count(st, MPI_BYTE, &got) != MPI_SUCCESS || (size_t)got != n))
        return llm_err_set(LLM_ESHAPE, "rank %d: expected %zu bytes from rank %d, got %d (the "
                           "ranks disagree on the model or the step)", c->rank, n, q->peer, got);
    return 0;
}

static int m_test(struct llm_comm *c, void *req, int *done)
{
    struct m_req *q = req;
    *done = q->done;
    if (q->done) return q->rc;
    MPI_Status st[4];
    MPI_Status *sts = q->n <= 4 ? st : malloc(sizeof *sts * (size_t)q->n);
    if (!sts) return 0; /* no progress this time; wait finishes it */
    int flag = 0, e = MPI_Testall(q->n, q->r, &flag, sts);
    if (e != MPI_SUCCESS) q->rc = mpi_fail(c, e, q->recv ? "recv" : "send");
    for (int i = 0; e == MPI_SUCCESS && flag && i < q->n && !q->rc; i++)
        q->rc = check_piece(c, q, i, &sts[i]);
    if (sts != st) free(sts);
    q->done = flag || q->rc;
    *done = q->done;
    return q->rc;
}

/* A long message moves only while the sender is inside MPI (shared memory
 * without single-copy: the sender pushes the pieces): a posted send is
 * pushed for about as long as copying it takes, so a receiver already
 * waiting gets it now, and a busy one costs the sender next to nothing. */
static int m_isend(struct llm_comm *c, const void *buf, size_t bytes, int peer, void **req)
{
    int rc = post(c, (void *)buf, bytes, peer, 0, req);
    double until = now() + 1e-3 + (double)bytes / 1e9;
    for (int done = 0; !rc && !done && now() < until;)
        rc = m_test(c, *req, &done);
    return rc;
}

static int m_irecv(struct llm_comm *c, void *buf, size_t bytes, int peer, void **req)
{
    return post(c, buf, bytes, peer, 1, req);
}

static int m_wait(struct llm_comm *c, void *req)
{
    struct m_req *q = req;
    int rc = q->rc;
    for (int i = 0; !q->done && !rc && i < q->n; i++) {
        MPI_Status st;
        rc = wait_req(c, &q->r[i], &st, q->recv ? "recv" : "send");
        if (!rc) rc = check_piece(c, q, i, &st);
    }
    if (rc) {
        c->ops->cancel(c, q);
        return rc;
    }
    free(q);
    return 0;
}

static void m_cancel(struct llm_comm *c, void *req)
{
    (void)c;
    struct m_req *q = req;
    if (!q) return;
    for (int i = 0; i < q->n; i++) {
        if (q->r[i] == MPI_REQUEST_NULL) continue;
        if (q->recv) MPI_Cancel(&q->r[i]);
        MPI_Request_free(&q->r[i]);
    }
    free(q);
}

static const struct llm_comm_ops mpi_ops;

static int m_split(struct llm_comm *c, int color, int key, struct llm_comm **out)
{
    *out = NULL;
    struct llm_comm *s = calloc(1, sizeof *s);
    struct mpi_priv *p = calloc(1, sizeof *p);
    if (!s || !p) {
        free(s);
        free(p);
        return llm_err_set(LLM_ENOMEM, "out of memory");
    }
    *p = *(const struct mpi_priv *)c->priv;
    p->we_init = 0;
    s->timeout = c->timeout;
    int e = MPI_Comm_split(world_of(c), color, key, &p->comm);
    if (e != MPI_SUCCESS) {
        free(s);
        free(p);
        return mpi_fail(c, e, "split");
    }
    MPI_Comm_set_errhandler(p->comm, MPI_ERRORS_RETURN);
    s->ops = &mpi_ops;
    s->priv = p;
    MPI_Comm_rank(p->comm, &s->rank);
    MPI_Comm_size(p->comm, &s->size);
    *out = s;
    return 0;
}

static void m_destroy(struct llm_comm *c)
{
    if (!c) return;
    struct mpi_priv *p = c->priv;
    if (p && p->comm != MPI_COMM_WORLD && p->comm != MPI_COMM_NULL) MPI_Comm_free(&p->comm);
    int fin = 0;
    if (p && p->we_init && MPI_Finalized(&fin) == MPI_SUCCESS && !fin) MPI_Finalize();
    free(p);
    free(c);
}

static const struct llm_comm_ops mpi_ops = {
    .name = "mpi",
    .all_reduce = m_all_reduce,
    .all_gather = m_all_gather,
    .broadcast = m_broadcast,
    .send = m_send,
    .recv = m_recv,
    .split = m_split,
    .destroy = m_destroy,
    .isend = m_isend,
    .irecv = m_irecv,
    .test = m_test,
    .wait = m_wait,
    .cancel = m_cancel,
};

int llm_comm_mpi(struct llm_comm **out)
{
    *out = NULL;
    struct llm_comm *c = calloc(1, sizeof *c);
    struct mpi_priv *p = calloc(1, sizeof *p);
    if (!c || !p) {
        free(c);
        free(p);
        return llm_err_set(LLM_ENOMEM, "out of memory");
    }
    c->priv = p;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        int prov = 0;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &prov) != MPI_SUCCESS) {
            free(c);
            free(p);
            return llm_err_set(LLM_EIO, "MPI could not start (MPI_Init_thread)");
        }
        p->we_init = 1;
    }
    p->comm = MPI_COMM_WORLD;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    c->timeout = 600.0;
    const char *t = getenv("LLM_COMM_TIMEOUT");
    if (t && *t) {
        char *end;
        errno = 0;
        double v = strtod(t, &end);
        if (errno || *end || !(v > 0.0) || v > 1e7) {
            m_destroy(c);
            return llm_err_set(LLM_EINVAL, "LLM_COMM_TIMEOUT='%s' is not a positive number of "
                               "seconds", t);
        }
        c->timeout = v;
    }
    c->ops = &mpi_ops;
    *out = c;
    return 0;
}

void llm_comm_abort(struct llm_comm *c, int code)
{
    fflush(stdout);
    fflush(stderr);
    if (c && c->size > 1 && c->ops == &mpi_ops) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}
#endif
