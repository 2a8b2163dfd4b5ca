/* comm.c - the single-rank communicator (llm/comm.h).
 *
 * With one rank, a sum over ranks is the value itself and a gather is a
 * copy, so the model definition's reduction points cost nothing and the
 * same steps run whole or split. */
#include <stdlib.h>
#include <string.h>

#include "llm/comm.h"
#include "llm/dtype.h"
#include "llm/err.h"

static int single_all_reduce(struct llm_comm *c, void *buf, size_t count, int dtype, void *stream)
{
    (void)c, (void)buf, (void)count, (void)dtype, (void)stream;
    return 0;
}

static int single_all_gather(struct llm_comm *c, const void *in, void *out, size_t count,
                             int dtype, void *stream)
{
    (void)c;
    if (in == out) return 0;
    if (stream)
        return llm_err_set(LLM_EUNSUPPORTED, "single-rank all_gather: device buffers must be "
                           "the same (in place)");
    uint64_t bytes;
    if (llm_dtype_nbytes(dtype, count, &bytes))
        return llm_err_set(LLM_ERANGE, "all_gather: %zu elements overflow", count);
    memmove(out, in, (size_t)bytes);
    return 0;
}

static int single_broadcast(struct llm_comm *c, void *buf, size_t bytes, int root, void *stream)
{
    (void)buf, (void)bytes, (void)stream;
    if (root != 0 || c->size != 1)
        return llm_err_set(LLM_EINVAL, "broadcast: root %d is not a rank of a 1-rank job", root);
    return 0;
}

static int single_p2p(struct llm_comm *c, int peer, const char *what)
{
    (void)c;
    return llm_err_set(LLM_EINVAL, "%s: rank %d does not exist in a 1-rank job", what, peer);
}

static int single_send(struct llm_comm *c, const void *buf, size_t bytes, int peer, void *stream)
{
    (void)buf, (void)bytes, (void)stream;
    return single_p2p(c, peer, "send");
}

static int single_recv(struct llm_comm *c, void *buf, size_t bytes, int peer, void *stream)
{
    (void)buf, (void)bytes, (void)stream;
    return single_p2p(c, peer, "recv");
}

static int single_split(struct llm_comm *c, int color, int key, struct llm_comm **out)
{
    (void)c, (void)color, (void)key;
    return llm_comm_single(out);
}

static void single_destroy(struct llm_comm *c)
{
    free(c);
}

static const struct llm_comm_ops single_ops = {
    .name = "single",
    .all_reduce = single_all_reduce,
    .all_gather = single_all_gather,
    .broadcast = single_broadcast,
    .send = single_send,
    .recv = single_recv,
    .split = single_split,
    .destroy = single_destroy,
};

int llm_comm_single(struct llm_comm **out)
{
    struct llm_comm *c = calloc(1, sizeof *c);
    if (!c) return llm_err_set(LLM_ENOMEM, "out of memory");
    c->ops = &single_ops;
    c->rank = 0;
    c->size = 1;
    *out = c;
    return 0;
}

#ifndef LLM_HAVE_NCCL
int llm_comm_nccl(struct llm_comm **out, struct llm_comm *boot, int device)
{
    (void)boot, (void)device;
    *out = NULL;
    return llm_err_set(LLM_EUNSUPPORTED, "this build has no NCCL (CUDA builds only)");
}

int llm_comm_nccl_all(struct llm_comm **out, int n_devices)
{
    (void)out, (void)n_devices;
    return llm_err_set(LLM_EUNSUPPORTED, "this build has no NCCL (CUDA builds only)");
}

int llm_comm_group(int start)
{
    (void)start;
    return llm_err_set(LLM_EUNSUPPORTED, "this build has no NCCL (CUDA builds only)");
}
#endif
