/* comm_nccl.c - the NCCL communicator (llm/comm.h): device buffers, ordered
 * on the caller's CUDA stream.
 *
 * The ranks are the bootstrap communicator's (MPI between processes, or one
 * rank alone): rank 0 makes NCCL's unique id and the bootstrap broadcasts it
 * (the usual way of starting NCCL under mpirun).  Collectives are enqueued
 * and return at once; their errors surface at the next call or stream
 * synchronisation.  Only built with CUDA.
 */
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes" /* nccl.h's f() declarations */
#include <nccl.h>
#pragma GCC diagnostic pop

#include "llm/comm.h"
#include "llm/dtype.h"
#include "llm/err.h"

struct nccl_priv {
    ncclComm_t comm;
};

static ncclComm_t nc(struct llm_comm *c)
{
    return ((struct nccl_priv *)c->priv)->comm;
}

static int nfail(struct llm_comm *c, ncclResult_t r, const char *what)
{
    return llm_err_set(LLM_EDEVICE, "rank %d: NCCL %s: %s", c->rank, what, ncclGetErrorString(r));
}

static int ntype(int dtype, ncclDataType_t *t)
{
    switch (dtype) {
    case LLM_DTYPE_F32: *t = ncclFloat32; return 0;
    case LLM_DTYPE_F16: *t = ncclFloat16; return 0;
    case LLM_DTYPE_BF16: *t = ncclBfloat16; return 0;
    case LLM_DTYPE_I32: *t = ncclInt32; return 0;
    case LLM_DTYPE_U8:
    case LLM_DTYPE_I8: *t = ncclUint8; return 0;
    default: return -1;
    }
}

static int n_all_reduce(struct llm_comm *c, void *buf, size_t count, int dtype, void *stream)
{
    ncclDataType_t t;
    if (ntype(dtype, &t))
        return llm_err_set(LLM_EUNSUPPORTED, "NCCL all_reduce of %s", llm_dtype_name(dtype));
    ncclResult_t r = ncclAllReduce(buf, buf, count, t, ncclSum, nc(c), (cudaStream_t)stream);
    return r == ncclSuccess ? 0 : nfail(c, r, "all_reduce");
}

static int n_all_gather(struct llm_comm *c, const void *in, void *out, size_t count, int dtype,
                        void *stream)
{
    ncclDataType_t t;
    if (ntype(dtype, &t))
        return llm_err_set(LLM_EUNSUPPORTED, "NCCL all_gather of %s", llm_dtype_name(dtype));
    ncclResult_t r = ncclAllGather(in, out, count, t, nc(c), (cudaStream_t)stream);
    return r == ncclSuccess ? 0 : nfail(c, r, "all_gather");
}

static int n_broadcast(struct llm_comm *c, void *buf, size_t bytes, int root, void *stream)
{
    ncclResult_t r = ncclBroadcast(buf, buf, bytes, ncclUint8, root, nc(c), (cudaStream_t)stream);
    return r == ncclSuccess ? 0 : nfail(c, r, "broadcast");
}

static int n_send(struct llm_comm *c, const void *buf, size_t bytes, int peer, void *stream)
{
    ncclResult_t r = ncclSend(buf, bytes, ncclUint8, peer, nc(c), (cudaStream_t)stream);
    return r == ncclSuccess ? 0 : nfail(c, r, "send");
}

static int n_recv(struct llm_comm *c, void *buf, size_t bytes, int peer, void *stream)
{
    ncclResult_t r = ncclRecv(buf, bytes, ncclUint8, peer, nc(c), (cudaStream_t)stream);
    return r == ncclSuccess ? 0 : nfail(c, r, "recv");
}

static const struct llm_comm_ops nccl_ops;

static int wrap(ncclComm_t comm, struct llm_comm **out)
{
    struct llm_comm *c = calloc(1, sizeof *c);
    struct nccl_priv *p = calloc(1, sizeof *p);
    if (!c || !p) {
        free(c);
        free(p);
        ncclCommDestroy(comm);
        return llm_err_set(LLM_ENOMEM, "out of memory");
    }
    p->comm = comm;
    c->ops = &nccl_ops;
    c->priv = p;
    ncclCommUserRank(comm, &c->rank);
    ncclCommCount(comm, &c->size);
    *out = c;
    return 0;
}

static int n_split(struct llm_comm *c, int color, int key, struct llm_comm **out)
{
    ncclComm_t s;
    *out = NULL;
    ncclResult_t r = ncclCommSplit(nc(c), color, key, &s, NULL);
    if (r != ncclSuccess) return nfail(c, r, "split");
    return wrap(s, out);
}

static void n_destroy(struct llm_comm *c)
{
    if (!c) return;
    struct nccl_priv *p = c->priv;
    if (p && p->comm) ncclCommDestroy(p->comm);
    free(p);
    free(c);
}

static const struct llm_comm_ops nccl_ops = {
    .name = "nccl",
    .all_reduce = n_all_reduce,
    .all_gather = n_all_gather,
    .broadcast = n_broadcast,
    .send = n_send,
    .recv = n_recv,
    .split = n_split,
    .destroy = n_destroy,
};

int llm_comm_nccl(struct llm_comm **out, struct llm_comm *boot, int device)
{
    *out = NULL;
    cudaError_t ce = cudaSetDevice(device);
    if (ce != cudaSuccess)
        return llm_err_set(LLM_EDEVICE, "NCCL: cudaSetDevice(%d): %s", device,
                           cudaGetErrorString(ce));
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    int rank = boot ? boot->rank : 0, size = boot ? boot->size : 1;
    if (rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&id);
        if (r != ncclSuccess)
            return llm_err_set(LLM_EDEVICE, "NCCL: unique id: %s", ncclGetErrorString(r));
    }
    if (size > 1) {
        int rc = boot->ops->broadcast(boot, &id, sizeof id, 0, NULL);
        if (rc) return rc;
    }
    ncclComm_t comm;
    ncclResult_t r = ncclCommInitRank(&comm, size, id, rank);
    if (r != ncclSuccess)
        return llm_err_set(LLM_EDEVICE, "rank %d: NCCL init of %d ranks: %s", rank, size,
                           ncclGetErrorString(r));
    return wrap(comm, out);
}

int llm_comm_nccl_all(struct llm_comm **out, int n_devices)
{
    ncclComm_t comms[64];
    int devs[64];
    if (n_devices < 1 || n_devices > 64)
        return llm_err_set(LLM_EINVAL, "NCCL: %d devices (1..64)", n_devices);
    for (int i = 0; i < n_devices; i++)
        devs[i] = i;
    ncclResult_t r = ncclCommInitAll(comms, n_devices, devs);
    if (r != ncclSuccess)
        return llm_err_set(LLM_EDEVICE, "NCCL: init of %d devices: %s", n_devices,
                           ncclGetErrorString(r));
    int rc = 0;
    for (int i = 0; i < n_devices; i++) {
        if (rc) {
            ncclCommDestroy(comms[i]);
            out[i] = NULL;
            continue;
        }
        rc = wrap(comms[i], &out[i]);
    }
    if (rc)
        for (int i = 0; i < n_devices; i++)
            llm_comm_destroy(out[i]), out[i] = NULL;
    return rc;
}

int llm_comm_group(int start)
{
    ncclResult_t r = start ? ncclGroupStart() : ncclGroupEnd();
    return r == ncclSuccess ? 0 : llm_err_set(LLM_EDEVICE, "NCCL group: %s", ncclGetErrorString(r));
}
