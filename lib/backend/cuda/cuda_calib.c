/* cuda_calib.c - calibration statistics on the CUDA backend (opts.stats,
 * llm/backend.h): every linear product's input reduced on the device into
 * that weight's accumulators (kernels/calib.cu), each layer's new K and V
 * rows into its maxima, and only the rows the sink's reservoir keeps
 * written aside - all on the device until stats_flush adds them into the
 * sink's host arrays.
 *
 * Design: the sink is asked, product by product in the order the steps
 * run (the CPU backend's order: qkv, o, fc, gate, down per layer, then the
 * lm_head), which rows it keeps; it answers from the row counts alone, so
 * the answer is known on the host while the kernels are only enqueued.  A
 * product's slots (duplicates within the call removed, the later row
 * winning, as the reference's row-by-row copy would) go to the device in a
 * pinned staging buffer that is reused from the start each step: the step
 * is enqueued only after the previous one has finished (pack_meta waits on
 * meta_done), so its copies are done.  Device memory: per weight input
 * width x (4 + 8) bytes plus the sample, keep_rows x width x 4 bytes
 * (Llama-2-7B, 128 rows: 450 MB); nothing grows with the token count.
 */
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "llm/weight.h"
#include "kernels/kernels.h"
#include "cuda_internal.h"

struct cu_stat {
    const struct llm_weight *w;
    int64_t in;
    float *chan, *amax, *sample; /* device; sample [keep][in] or NULL */
    double *sum;
    unsigned char *filled;       /* host [keep]: sample rows written */
};

int cu_stats_init(struct cu_be *c, struct llm_model *m, const struct llm_backend_opts *o)
{
    c->stats = o->stats;
    if (!c->stats) return 0;
    const struct llm_model_desc *d = c->d;
    if (d->n_experts > 0)
        return llm_err_set(LLM_EUNSUPPORTED, "cuda backend: calibration statistics of experts "
                           "(--device cpu)");
    if (c->comm)
        return llm_err_set(LLM_EUNSUPPORTED, "cuda backend: calibration statistics of a rank's "
                           "part");
    if (c->kv_q)
        return llm_err_set(LLM_EUNSUPPORTED, "cuda backend: calibration statistics over an "
                           "8-bit KV cache");
    int rc = llm_weights_bind(&c->stat_wb, m);
    if (rc) return rc;
    int keep = c->stats->keep_rows > 0 ? c->stats->keep_rows : 0;
    c->stat_slot = malloc(sizeof(int32_t) * (size_t)c->pub.max_batch_tokens);
    c->stat_seen = malloc((size_t)keep + 1);
    if (!c->stat_slot || !c->stat_seen)
        return llm_err_set(LLM_ENOMEM, "cuda backend: out of memory");
    size_t kvb = sizeof(float) * 2 * (size_t)(d->n_layers > 0 ? d->n_layers : 1);
    CK(cudaMalloc((void **)&c->stat_kv, kvb));
    CK(cudaMemsetAsync(c->stat_kv, 0, kvb, c->st));
    return 0;
}

void cu_stats_free(struct cu_be *c)
{
    for (int i = 0; i < c->n_stat; i++) {
        struct cu_stat *e = &c->stat[i];
        cudaFree(e->chan);
        cudaFree(e->sum);
        cudaFree(e->amax);
        cudaFree(e->sample);
        free(e->filled);
    }
    free(c->stat);
    cudaFree(c->stat_kv);
    cudaFree(c->d_stat_slot);
    if (c->h_stat_slot) cudaFreeHost(c->h_stat_slot);
    free(c->stat_slot);
    free(c->stat_seen);
    llm_weights_free(&c->stat_wb);
}

/* w's accumulators: the products come in the same order every step, so the
 * one after the last found is tried first. */
static struct cu_stat *find(struct cu_be *c, const struct llm_weight *w)
{
    for (int k = 0; k < c->n_stat; k++) {
        int i = (c->stat_next + k) % c->n_stat;
        if (c->stat[i].w == w) {
            c->stat_next = i + 1;
            return &c->stat[i];
        }
    }
    return NULL;
}

static int add(struct cu_be *c, const struct llm_weight *w, const struct llm_stat_acc *a,
               struct cu_stat **out)
{
    if (c->n_stat == c->cap_stat) {
        int nc = c->cap_stat ? 2 * c->cap_stat : 64;
        struct cu_stat *t = realloc(c->stat, sizeof *t * (size_t)nc);
        if (!t) return llm_err_set(LLM_ENOMEM, "cuda backend: out of memory");
        c->stat = t;
        c->cap_stat = nc;
    }
    struct cu_stat *e = &c->stat[c->n_stat++];
    memset(e, 0, sizeof *e);
    e->w = w;
    e->in = a->in;
    size_t n = (size_t)a->in, keep = (size_t)(c->stats->keep_rows > 0 ? c->stats->keep_rows : 0);
    CK(cudaMalloc((void **)&e->chan, n * sizeof(float)));
    CK(cudaMalloc((void **)&e->sum, n * sizeof(double)));
    CK(cudaMalloc((void **)&e->amax, sizeof(float)));
    CK(cudaMemsetAsync(e->chan, 0, n * sizeof(float), c->st));
    CK(cudaMemsetAsync(e->sum, 0, n * sizeof(double), c->st));
    CK(cudaMemsetAsync(e->amax, 0, sizeof(float), c->st));
    if (a->sample && keep) {
        CK(cudaMalloc((void **)&e->sample, keep * n * sizeof(float)));
        CK(cudaMemsetAsync(e->sample, 0, keep * n * sizeof(float), c->st));
        if (!(e->filled = calloc(keep, 1)))
            return llm_err_set(LLM_ENOMEM, "cuda backend: out of memory");
    }
    c->stat_next = c->n_stat;
    *out = e;
    return 0;
}

/* Room for `rows` slots in this step's staging buffer; when full, wait for
 * the stream (every copy from it done) and start a larger one. */
static int stage_slots(struct cu_be *c, int rows, int32_t **h, int32_t **dv)
{
    if (c->stat_slot_used + (size_t)rows > c->stat_slot_cap) {
        size_t nc = 2 * c->stat_slot_cap;
        if (nc < 64 * (size_t)c->pub.max_batch_tokens) nc = 64 * (size_t)c->pub.max_batch_tokens;
        if (nc < (size_t)rows) nc = (size_t)rows;
        CK(cudaStreamSynchronize(c->st));
        cudaFree(c->d_stat_slot);
        if (c->h_stat_slot) cudaFreeHost(c->h_stat_slot);
        c->d_stat_slot = c->h_stat_slot = NULL;
        c->stat_slot_cap = c->stat_slot_used = 0;
        CK(cudaMallocHost((void **)&c->h_stat_slot, nc * sizeof(int32_t)));
        CK(cudaMalloc((void **)&c->d_stat_slot, nc * sizeof(int32_t)));
        c->stat_slot_cap = nc;
    }
    *h = c->h_stat_slot + c->stat_slot_used;
    *dv = c->d_stat_slot + c->stat_slot_used;
    c->stat_slot_used += (size_t)rows;
    return 0;
}

int cu_stats_linear(struct cu_be *c, const struct llm_weight *w, const void *x, int ldx, int rows)
{
    if (rows <= 0) return 0;
    if (rows > c->pub.max_batch_tokens)
        return llm_err_set(LLM_EINVAL, "cuda backend: statistics of %d rows (at most %d)", rows,
                           c->pub.max_batch_tokens);
    struct llm_stat_acc a;
    int rc = c->stats->linear(c->stats->ctx, w, rows, c->stat_slot, &a);
    if (rc) return rc < 0 ? rc : 0;
    struct cu_stat *e = find(c, w);
    if (!e && (rc = add(c, w, &a, &e))) return rc;
    if (e->in != a.in || a.in > ldx)
        return llm_err_set(LLM_EINVAL, "cuda backend: statistics of '%s': %lld inputs, rows of %d",
                           w->name, (long long)a.in, ldx);
    const int32_t *dslot = NULL;
    const int keep = c->stats->keep_rows;
    if (e->sample) {
        int kept = 0;
        memset(c->stat_seen, 0, (size_t)keep);
        for (int t = rows - 1; t >= 0; t--) { /* the last row for a slot wins */
            int sl = c->stat_slot[t];
            if (sl < 0) continue;
            if (sl >= keep)
                return llm_err_set(LLM_EINVAL, "cuda backend: statistics of '%s': sample row %d "
                                   "of %d", w->name, sl, keep);
            if (c->stat_seen[sl]) {
                c->stat_slot[t] = -1;
                continue;
            }
            c->stat_seen[sl] = e->filled[sl] = 1;
            kept++;
        }
        if (kept) {
            int32_t *h = NULL, *dv = NULL;
            if ((rc = stage_slots(c, rows, &h, &dv))) return rc;
            memcpy(h, c->stat_slot, sizeof(int32_t) * (size_t)rows);
            CK(cudaMemcpyAsync(dv, h, sizeof(int32_t) * (size_t)rows, cudaMemcpyHostToDevice,
                               c->st));
            dslot = dv;
        }
    }
    CK(llm_k_col_stats(c->dt, x, ldx, rows, (int)e->in, dslot, e->sample, e->chan, e->sum,
                       e->amax, c->st));
    return 0;
}

int cu_stats_kv(struct cu_be *c, int layer, int rows)
{
    if (!c->stats->kv_amax) return 0;
    const struct llm_model_desc *d = c->d;
    CK(llm_k_kv_amax(c->dt, (char *)c->kv + (size_t)layer * c->layer_elems * c->kv_es,
                     c->blk_elems, c->pub.block_size, c->cur->slot, rows, d->n_kv_heads,
                     d->head_dim, c->stat_kv + 2 * layer, c->st));
    return 0;
}

/* Everything since the last flush added into the sink; the device's sums and
 * maxima start again from zero, its sample stays (it is the reservoir). */
int cu_stats_flush(struct llm_backend *be)
{
    struct cu_be *c = cu_of(be);
    if (!c->stats) return 0;
    CK(cudaStreamSynchronize(c->st));
    int64_t wmax = 1;
    for (int i = 0; i < c->n_stat; i++)
        if (c->stat[i].in > wmax) wmax = c->stat[i].in;
    size_t keep = (size_t)(c->stats->keep_rows > 0 ? c->stats->keep_rows : 0);
    size_t nkv = 2 * (size_t)(c->d->n_layers > 0 ? c->d->n_layers : 1);
    float *hc = malloc(sizeof(float) * (size_t)wmax), *hk = malloc(sizeof(float) * nkv);
    double *hs = malloc(sizeof(double) * (size_t)wmax);
    int rc = hc && hs && hk ? 0 : llm_err_set(LLM_ENOMEM, "cuda backend: out of memory");
    for (int i = 0; i < c->n_stat && !rc; i++) {
        struct cu_stat *e = &c->stat[i];
        struct llm_stat_acc a;
        size_t n = (size_t)e->in;
        float am = 0;
        if ((rc = c->stats->linear(c->stats->ctx, e->w, 0, NULL, &a))) {
            if (rc > 0) rc = llm_err_set(LLM_EINVAL, "statistics of '%s' refused", e->w->name);
            break;
        }
        if (a.in != e->in) {
            rc = llm_err_set(LLM_EINVAL, "statistics of '%s': %lld inputs, %lld on the device",
                             e->w->name, (long long)a.in, (long long)e->in);
            break;
        }
        cudaError_t ce = cudaMemcpy(hc, e->chan, n * sizeof(float), cudaMemcpyDeviceToHost);
        if (!ce) ce = cudaMemcpy(hs, e->sum, n * sizeof(double), cudaMemcpyDeviceToHost);
        if (!ce) ce = cudaMemcpy(&am, e->amax, sizeof(float), cudaMemcpyDeviceToHost);
        for (size_t r = 0; !ce && e->sample && a.sample && r < keep; r++)
            if (e->filled[r])
                ce = cudaMemcpy(a.sample + r * n, e->sample + r * n, n * sizeof(float),
                                cudaMemcpyDeviceToHost);
        if (ce) {
            rc = cu_fail(CU_LIB_RT, ce, "cudaMemcpy (statistics)", __FILE__, __LINE__);
            break;
        }
        for (size_t j = 0; j < n; j++) {
            if (hc[j] > a.chan[j]) a.chan[j] = hc[j];
            a.chan_sum[j] += hs[j];
        }
        if (am > *a.amax) *a.amax = am;
        ce = cudaMemsetAsync(e->chan, 0, n * sizeof(float), c->st);
        if (!ce) ce = cudaMemsetAsync(e->sum, 0, n * sizeof(double), c->st);
        if (!ce) ce = cudaMemsetAsync(e->amax, 0, sizeof(float), c->st);
        if (ce) rc = cu_fail(CU_LIB_RT, ce, "cudaMemsetAsync (statistics)", __FILE__, __LINE__);
    }
    if (!rc && c->stats->kv_amax) {
        cudaError_t ce = cudaMemcpy(hk, c->stat_kv, nkv * sizeof(float), cudaMemcpyDeviceToHost);
        if (!ce) ce = cudaMemsetAsync(c->stat_kv, 0, nkv * sizeof(float), c->st);
        if (ce) rc = cu_fail(CU_LIB_RT, ce, "cudaMemcpy (KV statistics)", __FILE__, __LINE__);
        for (size_t j = 0; !rc && j < (size_t)2 * c->d->n_layers; j++)
            if (hk[j] > c->stats->kv_amax[j]) c->stats->kv_amax[j] = hk[j];
    }
    free(hc);
    free(hs);
    free(hk);
    if (!rc) CK(cudaStreamSynchronize(c->st));
    return rc;
}
