/* meter.c - the cost model of a forward pass and the metering backend.
 *
 * Design choice: the bytes and FLOPs of a step are computed from the batch
 * the engine actually hands the backend (tokens, sequences, context
 * lengths, rows with logits), not from the request mix, so chunked
 * prefill, preemption and recomputation are all counted as they happened.
 * The wrapper is a complete struct llm_backend whose calls forward to the
 * real one; the engine cannot tell the difference, and no hook has to be
 * added to the engine or the backends.  Where the backend has a device
 * clock, the device time of a step is read right after its sample (which
 * has already waited for the step), so metering adds no synchronisation.
 */
#include <math.h>
#include <string.h>

#include "llm/bench.h"
#include "llm/engine.h"
#include "llm/err.h"

void llm_bench_cost_init(struct llm_bench_cost *c, const struct llm_model_desc *d,
                         double weight_elem_bytes, double kv_elem_bytes)
{
    memset(c, 0, sizeof(*c));
    double H = (double)d->hidden, hd = (double)d->head_dim;
    double qkv = ((double)d->n_heads + 2.0 * d->n_kv_heads) * hd * H;
    double dense = H * d->n_heads * hd;
    double mlp = (d->gated_mlp ? 3.0 : 2.0) * (double)d->intermediate * H;
    double per_tok = qkv + dense, stored = qkv + dense;
    if (d->n_experts > 0) {
        double router = H * d->n_experts;
        per_tok += d->n_experts_per_tok * mlp + router;
        stored += router; /* the experts: c->expert_bytes */
        c->n_experts = d->n_experts;
        c->experts_per_tok = d->n_experts_per_tok;
        c->expert_bytes = mlp * d->n_layers * weight_elem_bytes;
    } else {
        per_tok += mlp;
        stored += mlp;
    }
    c->layer_params = per_tok * d->n_layers;
    c->layer_weight_bytes = stored * d->n_layers * weight_elem_bytes;
    c->head_params = (double)d->vocab_size * H;
    c->head_bytes = c->head_params * weight_elem_bytes;
    c->embed_row_bytes = H * weight_elem_bytes;
    c->kv_token_bytes = 2.0 * d->n_layers * d->n_kv_heads * hd * kv_elem_bytes;
    c->attn_flops_pair = 4.0 * d->n_layers * d->n_heads * hd;
}

/* Each token picks k of E experts; when every expert is equally likely, an
 * expert is missed by all n tokens with probability (1 - k/E)^n.  Exact
 * for one token (k), and all E once n is large. */
double llm_bench_experts_read(const struct llm_bench_cost *c, int n_tokens)
{
    if (c->n_experts <= 0 || n_tokens <= 0) return 0;
    if (n_tokens == 1) return c->experts_per_tok;
    double E = c->n_experts;
    return E * (1.0 - pow(1.0 - c->experts_per_tok / E, n_tokens));
}

void llm_bench_cost_batch(const struct llm_bench_cost *c, const struct llm_batch *b, double *bytes,
                          double *flops)
{
    double by = c->layer_weight_bytes + (b->n_out > 0 ? c->head_bytes : 0.0) +
                (double)b->n_tokens * c->embed_row_bytes;
    by += llm_bench_experts_read(c, b->n_tokens) * c->expert_bytes;
    double pairs = 0, kv_read = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        double len = b->seq_len[s];
        double past = len - (double)(b->seq_start[s + 1] - b->seq_start[s]);
        kv_read += len;
        pairs += (len * (len + 1) - past * (past + 1)) / 2.0;
    }
    by += (kv_read + b->n_tokens) * c->kv_token_bytes;
    *bytes = by;
    *flops = 2.0 * c->layer_params * b->n_tokens + 2.0 * c->head_params * b->n_out +
             c->attn_flops_pair * pairs;
}

/* ---- the wrapper backend ---------------------------------------------------- */

static struct llm_bench_meter *meter_of(struct llm_backend *be)
{
    return be->priv;
}

/* Add the device time of the open step to the totals. */
static int settle(struct llm_bench_meter *m)
{
    if (!m->step_open) return 0;
    m->step_open = 0;
    double s = 0;
    int rc = m->inner->ops->last_step_time(m->inner, &s);
    if (rc) return llm_err_wrap(rc, "bench: reading the step's device time");
    m->device_busy += s;
    return 0;
}

int llm_bench_meter_settle(struct llm_bench_meter *m)
{
    return settle(m);
}

const char *llm_bench_meter_timing(const struct llm_bench_meter *m)
{
    return m->device_clock ? "cuda-events" : "monotonic";
}

static int m_forward(struct llm_backend *be, const struct llm_batch *b)
{
    struct llm_bench_meter *m = meter_of(be);
    int rc0 = settle(m); /* the previous step was never sampled */
    if (rc0) return rc0;
    double t0 = llm_engine_now();
    int rc = m->inner->ops->forward(m->inner, b);
    double dt = llm_engine_now() - t0;
    m->busy += dt;
    if (!m->device_clock) m->device_busy += dt;
    if (rc) return rc;
    m->step_open = m->device_clock;
    double by, fl;
    llm_bench_cost_batch(&m->cost, b, &by, &fl);
    m->bytes += by;
    m->flops += fl;
    m->forwards++;
    m->tokens += (uint64_t)b->n_tokens;
    m->out_rows += (uint64_t)b->n_out;
    return 0;
}

static int m_get_logits(struct llm_backend *be, float *dst)
{
    struct llm_bench_meter *m = meter_of(be);
    if (!m->inner->ops->get_logits)
        return llm_err_set(LLM_EUNSUPPORTED, "backend '%s' has no get_logits", m->inner->ops->name);
    double t0 = llm_engine_now();
    int rc = m->inner->ops->get_logits(m->inner, dst);
    double dt = llm_engine_now() - t0;
    m->busy += dt;
    if (!m->device_clock) m->device_busy += dt;
    return rc ? rc : settle(m);
}

static int m_sample(struct llm_backend *be, const struct llm_sample_row *rows, int n,
                    struct llm_sample_result *out)
{
    struct llm_bench_meter *m = meter_of(be);
    double t0 = llm_engine_now();
    int rc = m->inner->ops->sample(m->inner, rows, n, out);
    double dt = llm_engine_now() - t0;
    m->busy += dt;
    if (!m->device_clock) m->device_busy += dt;
    return rc ? rc : settle(m);
}

static int m_copy_blocks(struct llm_backend *be, const int32_t *src, const int32_t *dst, int n)
{
    struct llm_bench_meter *m = meter_of(be);
    if (!m->inner->ops->copy_blocks)
        return llm_err_set(LLM_EUNSUPPORTED, "backend '%s' has no copy_blocks",
                           m->inner->ops->name);
    double t0 = llm_engine_now();
    int rc = m->inner->ops->copy_blocks(m->inner, src, dst, n);
    double dt = llm_engine_now() - t0;
    m->busy += dt;
    if (!m->device_clock) m->device_busy += dt;
    return rc;
}

static void m_destroy(struct llm_backend *be)
{
    (void)be; /* the inner backend belongs to the caller */
}

static const struct llm_backend_ops meter_ops = {
    .name = "meter",
    .forward = m_forward,
    .get_logits = m_get_logits,
    .sample = m_sample,
    .copy_blocks = m_copy_blocks,
    .destroy = m_destroy,
};

int llm_bench_meter_init(struct llm_bench_meter *m, struct llm_backend *inner,
                         const struct llm_bench_cost *c)
{
    memset(m, 0, sizeof(*m));
    if (!inner || !inner->ops || !inner->ops->forward || !inner->ops->sample)
        return llm_err_set(LLM_EINVAL, "bench: backend without forward/sample");
    m->inner = inner;
    m->cost = *c;
    m->ops = meter_ops;
    m->ops.name = inner->ops->name;
    m->be = *inner;
    m->be.ops = &m->ops;
    m->be.priv = m;
    m->device_clock = inner->ops->last_step_time != NULL;
    return 0;
}

void llm_bench_meter_reset(struct llm_bench_meter *m)
{
    m->busy = m->bytes = m->flops = m->device_busy = 0;
    m->step_open = 0;
    m->forwards = m->tokens = m->out_rows = 0;
}
