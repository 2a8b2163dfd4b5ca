/* cuda_comm.c - the model definition's steps between ranks on the CUDA
 * backend: sums after the row-parallel products, the vocab-parallel logits
 * gathered, and a pipeline stage's activations passed on, all enqueued on
 * the backend's stream through the communicator (NCCL: device buffers).
 * Activations are summed in the compute dtype, as TensorRT-LLM does; the
 * logits are fp32.
 */
#include <cuda_runtime.h>

#include "llm/comm.h"
#include "llm/err.h"
#include "cuda_internal.h"

int64_t cu_lm_rows(const struct cu_be *c)
{
    return c->d->part.vocab_part > 0 ? c->d->part.vocab_part : c->d->vocab_size;
}

int64_t cu_logits_width(const struct cu_be *c)
{
    int64_t v = c->d->vocab_size, all = cu_lm_rows(c) * llm_part_tp(c->d);
    return all > v ? all : v;
}

static int64_t width(const struct cu_be *c, int buf)
{
    const struct llm_model_desc *d = c->d;
    if (buf == LLM_BUF_LOGITS) return d->vocab_size;
    return d->hidden; /* X, AO: the residual stream's width */
}

int cu_comm_step(struct cu_be *c, const struct llm_step *st, int rows)
{
    struct llm_comm *k = c->comm;
    if (!k) return llm_err_set(LLM_EINVAL, "cuda backend: a %s step without ranks",
                               llm_op_name(st->op));
    void *buf = c->buf[st->out];
    int logits = st->out == LLM_BUF_LOGITS;
    int dt = logits ? LLM_DTYPE_F32 : c->dt;
    size_t es = logits ? sizeof(float) : c->es;
    size_t n = (size_t)rows * (size_t)width(c, st->out);
    switch (st->op) {
    case LLM_OP_ALLREDUCE: return k->ops->all_reduce(k, buf, n, dt, c->st);
    case LLM_OP_SEND: return k->ops->send(k, buf, n * es, st->peer, c->st);
    case LLM_OP_RECV: return k->ops->recv(k, buf, n * es, st->peer, c->st);
    case LLM_OP_ALLGATHER: {
        int tp = llm_part_tp(c->d);
        if (tp == 1) return k->ops->all_gather(k, buf, buf, n, dt, c->st);
        /* [rows][vp] on each rank -> [tp][rows][vp] -> [rows][vocab] */
        int64_t vp = cu_lm_rows(c), V = c->d->vocab_size;
        int rc = k->ops->all_gather(k, buf, c->gather, (size_t)rows * (size_t)vp, dt, c->st);
        if (rc) return rc;
        for (int r = 0; r < tp; r++) {
            int64_t lo = (int64_t)r * vp, cnt = lo >= V ? 0 : (V - lo < vp ? V - lo : vp);
            if (cnt <= 0 || rows == 0) continue;
            CK(cudaMemcpy2DAsync((float *)buf + lo, (size_t)V * sizeof(float),
                                 c->gather + (int64_t)r * rows * vp, (size_t)vp * sizeof(float),
                                 (size_t)cnt * sizeof(float), (size_t)rows,
                                 cudaMemcpyDeviceToDevice, c->st));
        }
        return 0;
    }
    default:
        return llm_err_set(LLM_EUNSUPPORTED, "cuda backend: no %s step", llm_op_name(st->op));
    }
}
