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
 */
#include "common.cuh"

/* One thread per token: softmax over E in fp32, top K (the lower index on a
 * tie), weights renormalised when norm_topk. */
__global__ void moe_route_kernel(const float *logits, int n, int E, int K, int norm_topk,
                                 int32_t *chosen, float *weight)
{
    pdl_wait();
    pdl_trigger();
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    const float *x = logits + (int64_t)t * E;
    float mx = x[0];
    for (int e = 1; e < E; e++) mx = fmaxf(mx, x[e]);
    double sum = 0.0;
    for (int e = 0; e < E; e++) sum += (double)expf(x[e] - mx);
    float tot = 0.f;
    int32_t *c = chosen + (int64_t)t * K;
    float *w = weight + (int64_t)t * K;
    for (int k = 0; k < K; k++) {
        int best = -1;
        float bp = 0.f;
        for (int e = 0; e < E; e++) {
            bool taken = false;
            for (int j = 0; j < k; j++) taken |= c[j] == e;
            if (taken) continue;
            float p = (float)((double)expf(x[e] - mx) / sum);
            if (best < 0 || p > bp) best = e, bp = p;
        }
        c[k] = best;
        w[k] = bp;
        tot += bp;
    }
    if (norm_topk)
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
    if (k < 1 || k > 8 || k > n_experts) return (int)cudaErrorInvalidValue;
    return launch_pdl(moe_route_kernel, dim3((n + 127) / 128), dim3(128), 0, stream, logits, n,
                      n_experts, k, norm_topk, chosen, weight);
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
