/* sample.cu - token sampling on the GPU, step for step as llm_sample_cpu.
 *
 * Design: one block per row.  Candidates are ranked by the reference's
 * total order - a 32-bit key made from the float (larger first), ties to
 * the lower id - packed with the id into one 64-bit word, so "the best
 * candidate" is a plain maximum and "the next best" is the maximum below
 * the previous one; every selection is exact and independent of how the
 * work is split.  The pipeline per row: sanitise (NaN -> -inf, +inf ->
 * FLT_MAX), max and sum of exp in double for the log-sum-exp, the top-N
 * logprob alternatives, banned ids, repetition then presence/frequency
 * penalties (first occurrence claimed with atomics, as the reference's
 * marks), then greedy argmax, or for top_k <= 64 the k best by repeated
 * selection followed by the reference's own sequential softmax / top-p /
 * min-p / draw in double with philox.h.  Rows that need a full sort (no or
 * a large top_k) are flagged for the host sampler.
 */
#include <float.h>

#include "common.cuh"
#include "llm/philox.h"

#define SNT 1024
#define SEEN (1 << 30)
#define DONE (1 << 29)
#define COUNT ((1 << 29) - 1)

static __device__ __forceinline__ float clean_logit(float l)
{
    if (isnan(l)) return -INFINITY;
    if (l == INFINITY) return FLT_MAX;
    return l;
}

static __device__ __forceinline__ uint32_t float_key(float f)
{
    uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* Larger word = better candidate: key high, then lower id. */
static __device__ __forceinline__ unsigned long long pack(float w, int id)
{
    return ((unsigned long long)float_key(w) << 32) | (0xffffffffu - (uint32_t)id);
}
static __device__ __forceinline__ int unpack_id(unsigned long long c)
{
    return (int)(0xffffffffu - (uint32_t)c);
}

static __device__ unsigned long long block_max_u64(unsigned long long v, unsigned long long *sh)
{
    for (int o = 16; o > 0; o >>= 1) {
        unsigned long long x = __shfl_xor_sync(0xffffffffu, v, o);
        v = x > v ? x : v;
    }
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x >> 5) ? sh[lane] : 0ull;
    for (int o = 16; o > 0; o >>= 1) {
        unsigned long long x = __shfl_xor_sync(0xffffffffu, v, o);
        v = x > v ? x : v;
    }
    return v;
}

static __device__ double block_sum_d(double v, double *sh)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x >> 5) ? sh[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Best candidate of w strictly below `below` (finite values only). 0 = none. */
static __device__ unsigned long long best_below(const float *w, int64_t V,
                                                unsigned long long below, unsigned long long *sh)
{
    unsigned long long b = 0;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
        float x = w[i];
        if (x == -INFINITY) continue;
        unsigned long long c = pack(x, (int)i);
        if (c < below && c > b) b = c;
    }
    return block_max_u64(b, sh);
}

__global__ void __launch_bounds__(SNT)
    sample_kernel(const float *logits, int64_t V, const struct llm_k_sampler *par,
                  const int32_t *toks, float *work, int32_t *mark, struct llm_k_sample_out *out)
{
    __shared__ unsigned long long sh64[32];
    __shared__ double shd[32];
    __shared__ int32_t ids[64];
    __shared__ int nids;
    const int row = blockIdx.x;
    const struct llm_k_sampler p = par[row];
    const float *lg = logits + (int64_t)row * V;
    float *w = work + (int64_t)row * V;
    struct llm_k_sample_out *o = out + row;

    /* Greedy without penalties or alternatives (the common batch): the choice and the
     * log-sum-exp from one read of the logits (16 bytes a load where the rows allow),
     * with no copy - the best id not banned (a banned id is looked up only when it
     * would become a thread's best); each thread keeps its own running maximum and sum
     * of exp(x - max) (fp32 exponentials summed in double, rescaled when the maximum
     * rises), and the threads' sums meet under the row's maximum */
    if ((p.temperature == 0.0 || p.top_k == 1) && p.rep == 1.0 && p.pres == 0.0 &&
        p.freq == 0.0 && p.n_top <= 0) {
        unsigned long long mx = 0, best = 0;
        float tm = -INFINITY;
        double ts = 0.0;
        auto take = [&](float x, int64_t i) {
            x = clean_logit(x);
            if (x == -INFINITY) return;
            const unsigned long long c = pack(x, (int)i);
            mx = c > mx ? c : mx;
            if (c > best) {
                bool ban = false;
                for (int k = 0; k < p.n_banned && !ban; k++) ban = toks[p.banned_off + k] == i;
                if (!ban) best = c;
            }
            if (x > tm) {
                ts = ts * (double)expf(tm - x) + 1.0;
                tm = x;
            } else {
                ts += (double)expf(x - tm);
            }
        };
        if ((V & 3) == 0 && (reinterpret_cast<uintptr_t>(lg) & 15) == 0) {
            const float4 *l4 = reinterpret_cast<const float4 *>(lg);
            const int64_t n4 = V >> 2;
#pragma unroll 4
            for (int64_t j = threadIdx.x; j < n4; j += blockDim.x) {
                const float4 q = __ldcs(l4 + j);
                take(q.x, 4 * j), take(q.y, 4 * j + 1), take(q.z, 4 * j + 2), take(q.w, 4 * j + 3);
            }
        } else {
            for (int64_t i = threadIdx.x; i < V; i += blockDim.x) take(lg[i], i);
        }
        mx = block_max_u64(mx, sh64);
        best = block_max_u64(best, sh64);
        if (mx == 0) {
            if (threadIdx.x == 0) o->status = 2;
            return;
        }
        const float m = clean_logit(lg[unpack_id(mx)]);
        const double s = block_sum_d(tm == -INFINITY ? 0.0 : ts * exp((double)tm - (double)m), shd);
        if (threadIdx.x == 0) {
            o->n_top = 0;
            if (!best) {
                o->status = 2;
            } else {
                const int chosen = unpack_id(best);
                o->status = 0;
                o->token = chosen;
                o->logprob = (float)((double)clean_logit(lg[chosen]) - ((double)m + log(s)));
            }
        }
        return;
    }

    /* 1. sanitised copy, max, log-sum-exp */
    unsigned long long mb = 0;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
        float x = clean_logit(lg[i]);
        w[i] = x;
        if (x != -INFINITY) {
            unsigned long long c = pack(x, (int)i);
            mb = c > mb ? c : mb;
        }
    }
    mb = block_max_u64(mb, sh64);
    if (mb == 0) {
        if (threadIdx.x == 0) o->status = 2;
        return;
    }
    const float m = w[unpack_id(mb)];
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) s += exp((double)w[i] - (double)m);
    s = block_sum_d(s, shd);
    const double lse = (double)m + log(s);

    /* 2. top-N alternatives of the raw distribution */
    int n_top = p.n_top < V ? p.n_top : (int)V;
    unsigned long long below = ~0ull;
    int got = 0;
    for (int j = 0; j < n_top; j++) {
        unsigned long long c = best_below(w, V, below, sh64);
        if (!c) break;
        if (threadIdx.x == 0) {
            int id = unpack_id(c);
            o->top_ids[j] = id;
            o->top_logprobs[j] = (float)((double)w[id] - lse);
        }
        below = c;
        got++;
    }
    __syncthreads();

    /* 3. banned ids */
    for (int i = threadIdx.x; i < p.n_banned; i += blockDim.x) {
        int32_t t = toks[p.banned_off + i];
        if (t >= 0 && t < V) w[t] = -INFINITY;
    }
    __syncthreads();

    /* 4. penalties */
    const bool rep = p.rep != 1.0, pf = p.pres != 0.0 || p.freq != 0.0;
    if (rep || pf) {
        int32_t *mk = mark + (int64_t)row * V;
        for (int64_t i = threadIdx.x; i < V; i += blockDim.x) mk[i] = 0;
        __syncthreads();
        if (rep) {
            /* prompt then output: each distinct id once (order-free: one update per id) */
            int tot = p.n_prompt + p.n_output;
            for (int i = threadIdx.x; i < tot; i += blockDim.x) {
                int32_t t = i < p.n_prompt ? toks[p.prompt_off + i]
                                           : toks[p.output_off + i - p.n_prompt];
                if (t < 0 || t >= V) continue;
                if (atomicOr(&mk[t], SEEN) & SEEN) continue;
                if (w[t] == -INFINITY) continue;
                double x = w[t];
                w[t] = (float)(x > 0 ? x / p.rep : x * p.rep);
            }
            __syncthreads();
        }
        if (pf) {
            for (int i = threadIdx.x; i < p.n_output; i += blockDim.x) {
                int32_t t = toks[p.output_off + i];
                if (t >= 0 && t < V) atomicAdd(&mk[t], 1);
            }
            __syncthreads();
            for (int i = threadIdx.x; i < p.n_output; i += blockDim.x) {
                int32_t t = toks[p.output_off + i];
                if (t < 0 || t >= V) continue;
                int old = atomicOr(&mk[t], DONE);
                if (old & DONE) continue;
                if (w[t] == -INFINITY) continue;
                double c = (double)(old & COUNT);
                w[t] = (float)((double)w[t] - c * p.freq - p.pres);
            }
        }
        __syncthreads();
    }

    /* 5. choose */
    int chosen = -1;
    if (p.temperature == 0.0 || p.top_k == 1) {
        unsigned long long c = best_below(w, V, ~0ull, sh64);
        chosen = c ? unpack_id(c) : -1;
    } else if (p.top_k >= 1 && p.top_k <= 64) {
        below = ~0ull;
        int k = p.top_k;
        if (threadIdx.x == 0) nids = 0;
        for (int j = 0; j < k; j++) {
            unsigned long long c = best_below(w, V, below, sh64);
            if (!c) break;
            if (threadIdx.x == 0) {
                ids[j] = unpack_id(c);
                nids = j + 1;
            }
            below = c;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            int n = nids;
            if (n > 0) {
                double prob[64];
                double t = p.temperature;
                double z0 = (double)w[ids[0]] / t;
                for (int j = 0; j < n; j++) prob[j] = exp((double)w[ids[j]] / t - z0);
                if (p.top_p < 1.0) {
                    double sum = 0;
                    for (int j = 0; j < n; j++) sum += prob[j];
                    double thr = p.top_p * sum, cum = 0;
                    for (int j = 0; j < n; j++) {
                        cum += prob[j];
                        if (cum >= thr) {
                            n = j + 1;
                            break;
                        }
                    }
                }
                if (p.min_p > 0.0) {
                    int j = 1;
                    while (j < n && prob[j] >= p.min_p) j++;
                    n = j;
                }
                double total = 0;
                for (int j = 0; j < n; j++) total += prob[j];
                double u = llm_philox_uniform(p.seed, p.stream, p.index);
                double target = u * total, cum = 0;
                chosen = ids[n - 1];
                for (int j = 0; j < n; j++) {
                    cum += prob[j];
                    if (cum > target) {
                        chosen = ids[j];
                        break;
                    }
                }
            }
        }
    } else {
        if (threadIdx.x == 0) o->status = 1; /* full sort: the host sampler */
        return;
    }
    if (threadIdx.x == 0) {
        o->n_top = got;
        if (chosen < 0) {
            o->status = 2;
        } else {
            o->status = 0;
            o->token = chosen;
            o->logprob = (float)((double)clean_logit(lg[chosen]) - lse);
        }
    }
}

extern "C" int llm_k_sample(const float *logits, int64_t vocab, int n,
                            const struct llm_k_sampler *params, const int32_t *tokens, float *work,
                            int32_t *mark, struct llm_k_sample_out *out, llm_stream_t stream)
{
    if (n <= 0) return 0;
    if (vocab <= 0 || vocab > 0x7fffffff) return (int)cudaErrorInvalidValue;
    sample_kernel<<<n, SNT, 0, stream>>>(logits, vocab, params, tokens, work, mark, out);
    return k_status();
}
