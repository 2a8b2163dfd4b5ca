/* moe.cu - mixture of experts: routing, the sort of token slots by expert,
 * and the weighted combine.
 *
 * Design: the router's fp32 logits give each token its top-k experts and
 * their weights (softmax over every expert, then the top k, renormalised
 * when asked: Hugging Face's Mixtral / Qwen3-MoE semantics).  The token
 * slots (token, choice) are then sorted by expert - a stable counting sort,
 * so the order is the same on every run - which makes each expert's rows
 * contiguous: the caller gathers them once and runs one GEMM per expert
 * over all its rows (grouped GEMMs), never a loop over tokens.  The combine
 * sums each token's expert outputs in expert order, in fp32, and rounds
 * once.
 *
 * A decode step of a few tokens (at most LLM_K_MOE_SMALL slots) takes a
 * second path with no sort and nothing read back on the host: each slot's
 * expert id is read on the device by two GEMV kernels that stream that
 * expert's rows - gated fc and gate with the activation fused, then down
 * with the weighted combine and the residual add fused - so a batch-1 step
 * reads exactly its k experts, and the step can be captured in a graph.
 * Routing is one warp per token, so a router of 128 experts costs a few
 * shuffles, not a thread's serial loop.
 */
#include "common.cuh"

/* One warp per token: softmax over E in fp32 (the sum in fp64), each lane
 * holding the probabilities of experts lane, lane + 32, ... in shared
 * memory; then k rounds of a warp arg-max (the lower index on a tie),
 * weights renormalised when norm_topk. */
__global__ void moe_route_kernel(const float *logits, int n, int E, int K, int norm_topk,
                                 int32_t *chosen, float *weight)
{
    extern __shared__ float route_p[]; /* [warps][E] */
    pdl_wait();
    pdl_trigger();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int t = blockIdx.x * (blockDim.x >> 5) + warp;
    if (t >= n) return;
    const float *x = logits + (int64_t)t * E;
    float *p = route_p + warp * E;
    float mx = -INFINITY;
    for (int e = lane; e < E; e += 32) mx = fmaxf(mx, x[e]);
    for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    double sum = 0.0;
    for (int e = lane; e < E; e += 32) {
        float v = expf(x[e] - mx);
        p[e] = v;
        sum += (double)v;
    }
    for (int o = 16; o; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    for (int e = lane; e < E; e += 32) p[e] = (float)((double)p[e] / sum);
    __syncwarp();
    int32_t *c = chosen + (int64_t)t * K;
    float *w = weight + (int64_t)t * K;
    float tot = 0.f;
    for (int k = 0; k < K; k++) {
        int best = -1;
        float bp = 0.f;
        for (int e = lane; e < E; e += 32) /* ascending e: the first of equals stays */
            if (p[e] >= 0.f && (best < 0 || p[e] > bp)) best = e, bp = p[e];
        for (int o = 16; o; o >>= 1) {
            float op = __shfl_xor_sync(0xffffffffu, bp, o);
            int oe = __shfl_xor_sync(0xffffffffu, best, o);
            if (oe >= 0 && (best < 0 || op > bp || (op == bp && oe < best))) best = oe, bp = op;
        }
        if (lane == 0) {
            c[k] = best;
            w[k] = bp;
        }
        tot += bp;
        if (lane == (best & 31)) p[best] = -1.f; /* taken */
        __syncwarp();
    }
    if (lane == 0 && norm_topk)
        for (int k = 0; k < K; k++) w[k] /= tot;
}

/* One thread: a stable counting sort of the n*K slots by expert, O(n K + E).
 * offsets [E + 1]: expert e's rows are [offsets[e], offsets[e + 1]); rows[i]:
 * the token of sorted slot i; where[t*K + k]: the sorted position of slot
 * (t, k).  Serial on purpose: deterministic, and small next to the GEMMs it
 * feeds. */
__global__ void moe_sort_kernel(const int32_t *chosen, int n, int E, int K, int32_t *offsets,
                                int32_t *rows, int32_t *where)
{
    pdl_wait();
    pdl_trigger();
    if (blockIdx.x || threadIdx.x) return;
    int S = n * K;
    for (int e = 0; e <= E; e++) offsets[e] = 0;
    for (int i = 0; i < S; i++) offsets[chosen[i] + 1]++;
    for (int e = 0; e < E; e++) offsets[e + 1] += offsets[e];
    /* offsets[e + 1] is where expert e ends: fill each expert from its end,
     * walking the slots backwards, which keeps their order */
    for (int i = S - 1; i >= 0; i--) {
        int at = --offsets[chosen[i] + 1];
        rows[at] = i / K;
        where[i] = at;
    }
    /* offsets[e + 1] now holds where expert e starts: shift them down */
    for (int e = 0; e < E; e++) offsets[e] = offsets[e + 1];
    offsets[E] = S;
}

/* out[t] (+)= sum over k, in expert order, of weight[t][k] * y[where[t][k]]. */
template <typename T>
__global__ void moe_combine_kernel(T *out, const T *y, const int32_t *chosen, const float *weight,
                                   const int32_t *where, int K, int H, int accumulate)
{
    pdl_wait();
    pdl_trigger();
    int t = blockIdx.x;
    int order[8];
    for (int k = 0; k < K; k++) order[k] = k;
    for (int a = 1; a < K; a++) /* by expert id: the CPU reference adds in that order */
        for (int b = a; b > 0 && chosen[t * K + order[b]] < chosen[t * K + order[b - 1]]; b--) {
            int tmp = order[b];
            order[b] = order[b - 1];
            order[b - 1] = tmp;
        }
    T *o = out + (int64_t)t * H;
    for (int j = threadIdx.x; j < H; j += blockDim.x) {
        float acc = accumulate ? to_f32(o[j]) : 0.f;
        for (int k = 0; k < K; k++) {
            int s = order[k];
            acc += to_f32(y[(int64_t)where[t * K + s] * H + j]) * weight[t * K + s];
        }
        o[j] = from_f32<T>(acc);
    }
}

extern "C" int llm_k_moe_route(const float *logits, int n, int n_experts, int k, int norm_topk,
                               int32_t *chosen, float *weight, llm_stream_t stream)
{
    if (n <= 0) return 0;
    if (k < 1 || k > 8 || k > n_experts || n_experts > 1024) return (int)cudaErrorInvalidValue;
    const int warps = 4;
    return launch_pdl(moe_route_kernel, dim3((n + warps - 1) / warps), dim3(32 * warps),
                      sizeof(float) * (size_t)(warps * n_experts), stream, logits, n, n_experts, k,
                      norm_topk, chosen, weight);
}

extern "C" int llm_k_moe_sort(const int32_t *chosen, int n, int n_experts, int k,
                              int32_t *offsets, int32_t *rows, int32_t *where,
                              llm_stream_t stream)
{
    if (n <= 0) return 0;
    return launch_pdl(moe_sort_kernel, dim3(1), dim3(1), 0, stream, chosen, n, n_experts, k,
                      offsets, rows, where);
}

extern "C" int llm_k_moe_combine(int dt, void *out, const void *y, const int32_t *chosen,
                                 const float *weight, const int32_t *where, int n, int k, int hidden,
                                 int accumulate, llm_stream_t stream)
{
    if (n <= 0) return 0;
    if (k < 1 || k > 8) return (int)cudaErrorInvalidValue;
    DISPATCH_DT(dt, T, {
        return launch_pdl(moe_combine_kernel<T>, dim3(n), dim3(256), 0, stream, (T *)out,
                          (const T *)y, chosen, weight, where, k, hidden, accumulate);
    });
    return 0;
}

/* ---- a few tokens: per-slot GEMVs that read the expert id on the device ---------- */

/* h[s][j] = act(fc_e[j] . x_t) * (gate_e[j] . x_t) for slot s = t K + k, e = chosen[s]:
 * one warp per (slot, j), U 16-byte loads per row in flight. */
template <typename T, int U, int NW>
__global__ void __launch_bounds__(NW * 32)
    moe_gated_kernel(int act, T *h, const T *x, const T *fc, const T *gate,
                     const int32_t *chosen, int K, int I, int H)
{
    constexpr int V = vec<T>::N;
    pdl_wait();
    pdl_trigger();
    const int lane = threadIdx.x & 31, s = blockIdx.y;
    const int j = blockIdx.x * NW + (threadIdx.x >> 5);
    if (j >= I) return;
    const int64_t e = chosen[s];
    const T *xr = x + (int64_t)(s / K) * H;
    const T *wr[2] = {fc + (e * I + j) * H, gate + (e * I + j) * H};
    const int kv = H / V;
    float acc[2] = {0.f, 0.f};
    for (int base = lane; base < kv; base += 32 * U) {
        vec<T> wv[2][U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            int i = base + u * 32;
#pragma unroll
            for (int r = 0; r < 2; r++)
                wv[r][u].u = i < kv ? ld_stream(wr[r] + i * V) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            int i = base + u * 32;
            if (i >= kv) break;
            vec<T> xv = vload(xr + i * V);
#pragma unroll
            for (int k = 0; k < V; k++) {
                float xf = to_f32(xv.v[k]);
                acc[0] += to_f32(wv[0][u].v[k]) * xf;
                acc[1] += to_f32(wv[1][u].v[k]) * xf;
            }
        }
    }
    acc[0] = warp_sum(acc[0]);
    acc[1] = warp_sum(acc[1]);
    if (lane == 0) h[(int64_t)s * I + j] = from_f32<T>(act_apply(act, acc[0]) * acc[1]);
}

/* out[t][n] (+)= sum over the token's k slots, in expert order, of
 * weight[s] * (down_e[n] . h[s]).  A block of NW warps holds NW / k rows,
 * each row's k slots on k warps side by side (their loads in flight
 * together); the k partial sums meet in shared memory and are added in
 * expert order, in fp32, rounded once. */
template <typename T, int U, int NW>
__global__ void __launch_bounds__(NW * 32)
    moe_down_kernel(T *out, const T *h, const T *down, const int32_t *chosen, const float *weight,
                    int K, int H, int I, int accumulate)
{
    constexpr int V = vec<T>::N;
    __shared__ float part[NW];
    pdl_wait();
    pdl_trigger();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, t = blockIdx.y;
    const int rpb = NW / K, r = warp / K, kk = warp % K;
    const int n = blockIdx.x * rpb + r;
    const bool live = r < rpb && n < H;
    float acc = 0.f;
    int s = 0;
    if (live) {
        /* this warp's slot: the kk-th of the token's slots in expert order */
        const int32_t *ch = chosen + t * K;
        int mine = 0;
        for (int j = 0; j < K; j++) {
            int below = 0;
            for (int q = 0; q < K; q++)
                below += ch[q] < ch[j] || (ch[q] == ch[j] && q < j);
            if (below == kk) mine = j;
        }
        s = t * K + mine;
        const T *wr = down + ((int64_t)ch[mine] * H + n) * I, *hr = h + (int64_t)s * I;
        const int kv = I / V;
        for (int base = lane; base < kv; base += 32 * U) {
            vec<T> wv[U];
#pragma unroll
            for (int u = 0; u < U; u++) {
                int i = base + u * 32;
                wv[u].u = i < kv ? ld_stream(wr + i * V) : make_uint4(0, 0, 0, 0);
            }
#pragma unroll
            for (int u = 0; u < U; u++) {
                int i = base + u * 32;
                if (i >= kv) break;
                vec<T> hv = vload(hr + i * V);
#pragma unroll
                for (int q = 0; q < V; q++) acc += to_f32(wv[u].v[q]) * to_f32(hv.v[q]);
            }
        }
        acc = warp_sum(acc) * weight[s];
    }
    if (lane == 0) part[warp] = acc;
    __syncthreads();
    if (live && kk == 0 && lane == 0) {
        float tot = 0.f;
        for (int j = 0; j < K; j++) tot += part[r * K + j];
        T *o = out + (int64_t)t * H + n;
        *o = from_f32<T>(accumulate ? to_f32(*o) + tot : tot);
    }
}

extern "C" int llm_k_moe_small(int dt, int act, void *out, const void *x, void *h, const void *fc,
                               const void *gate, const void *down, const int32_t *chosen,
                               const float *weight, int n, int k, int hidden, int inter,
                               int accumulate, llm_stream_t stream)
{
    if (n <= 0) return 0;
    if (k < 1 || k > 8 || n * k > LLM_K_MOE_SMALL || hidden % 8 || inter % 8 || act < 0 ||
        act > LLM_K_ACT_RELU)
        return (int)cudaErrorInvalidValue;
    DISPATCH_DT(dt, T, {
        int rc = launch_pdl(moe_gated_kernel<T, 8, 4>, dim3((inter + 3) / 4, n * k), dim3(128), 0,
                            stream, act, (T *)h, (const T *)x, (const T *)fc, (const T *)gate,
                            chosen, k, inter, hidden);
        if (rc) return rc;
        const int rpb = 8 / k; /* rows per block of 8 warps */
        return launch_pdl(moe_down_kernel<T, 8, 8>, dim3((hidden + rpb - 1) / rpb, n), dim3(256),
                          0, stream, (T *)out, (const T *)h, (const T *)down, chosen, weight, k,
                          hidden, inter, accumulate);
    });
    return 0;
}
