/* moe.cu - mixture of experts: routing, the sort of token slots by expert,
 * the grouped expert products, and the weighted combine.
 *
 * Design: the router's fp32 logits give each token its top-k experts and
 * their weights (softmax over every expert, then the top k, renormalised
 * when asked: Hugging Face's Mixtral / Qwen3-MoE semantics).  The token
 * slots (token, choice) are then grouped by expert (one block: counts,
 * scan, placement), which makes each expert's rows contiguous and gives
 * the table of row tiles the grouped product walks: one launch per
 * projection over every expert's tiles, the tokens gathered by the tile
 * loads, the grid sized by the tile count's bound so the host reads
 * nothing back - never a loop over tokens.  The combine sums each token's
 * expert outputs in expert order, in fp32, and rounds once, so the order
 * of rows within an expert does not matter.
 *
 * A decode step of a few tokens (at most LLM_K_MOE_SMALL slots) takes a
 * second path with no sort: the router's product and the routing are one
 * launch, and each slot's expert id is read on the device by two GEMV
 * kernels that stream that expert's rows - gated fc and gate with the
 * activation fused, then down with the weighted combine and the residual
 * add fused - so a batch-1 step reads exactly its k experts.  Routing is
 * one warp per token, so a router of 128 experts costs a few shuffles,
 * not a thread's serial loop.
 */
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

/* One warp routes one token: softmax over E in fp32 (the sum in fp64),
 * each lane holding the probabilities of experts lane, lane + 32, ... in p
 * (shared memory); then k rounds of a warp arg-max (the lower index on a
 * tie), weights renormalised when norm_topk. */
static __device__ void route_warp(const float *x, int E, int K, int norm_topk, float *p,
                                  int32_t *c, float *w)
{
    const int lane = threadIdx.x & 31;
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

/* One warp per token over the router's fp32 logits [n][E]. */
__global__ void moe_route_kernel(const float *logits, int n, int E, int K, int norm_topk,
                                 int32_t *chosen, float *weight)
{
    extern __shared__ float route_p[]; /* [warps][E] */
    pdl_enter();
    const int warp = threadIdx.x >> 5;
    const int t = blockIdx.x * (blockDim.x >> 5) + warp;
    if (t >= n) return;
    route_warp(logits + (int64_t)t * E, E, K, norm_topk, route_p + warp * E, chosen + t * K,
               weight + t * K);
}

/* A few tokens: the router's logits (x . router[e] in fp32) and the routing
 * in one launch.  A token's experts are split over nb blocks of 256
 * threads, each reading about 8 KB of the router (a block's loads all in
 * flight at once); an expert gets tpe
 * threads (a power of two), up to 32 summing through shuffles within their
 * aligned lane group, more through per-warp partials added in a fixed
 * order, so the logits do not depend on timing.  Each block writes its
 * logits to logits[t] and counts itself in done[t]; the last to arrive
 * routes the token (route_warp) and puts the counter back to 0. */
template <typename T>
__global__ void __launch_bounds__(256)
    moe_route_small_kernel(const T *x, const T *router, int H, int E, int K, int norm_topk,
                           int epb, int tpe, float *logits, int32_t *done, int32_t *chosen,
                           float *weight)
{
    constexpr int V = vec<T>::N, U = 8;
    extern __shared__ float route_l[]; /* [2][E]: logits, probabilities */
    __shared__ float part[8]; /* per warp, when an expert has more than one */
    __shared__ int last;
    pdl_enter();
    const int tid = threadIdx.x, warp = tid >> 5, t = blockIdx.y;
    const int e = blockIdx.x * epb + tid / tpe, sub = tid % tpe, kv = H / V;
    const bool mine = tid / tpe < epb && e < E;
    const T *xr = x + (int64_t)t * H;
    float acc = 0.f;
    if (mine) {
        const T *wr = router + (int64_t)e * H;
        for (int base = sub; base < kv; base += U * tpe) {
            vec<T> wv[U];
#pragma unroll
            for (int u = 0; u < U; u++) {
                int i = base + u * tpe;
                wv[u].u = i < kv ? ld_stream(wr + i * V) : make_uint4(0, 0, 0, 0);
            }
#pragma unroll
            for (int u = 0; u < U; u++) {
                int i = base + u * tpe;
                if (i >= kv) break;
                vec<T> xv = vload(xr + i * V);
#pragma unroll
                for (int q = 0; q < V; q++) acc += to_f32(wv[u].v[q]) * to_f32(xv.v[q]);
            }
        }
    }
    for (int o = (tpe < 32 ? tpe : 32) >> 1; o; o >>= 1)
        acc += __shfl_xor_sync(0xffffffffu, acc, o);
    float *lt = logits + (int64_t)t * E;
    if (tpe <= 32) {
        if (mine && sub == 0) lt[e] = acc;
    } else {
        if ((tid & 31) == 0) part[warp] = acc;
        __syncthreads();
        const int wpe = tpe >> 5, ee = blockIdx.x * epb + tid;
        if (tid < epb && ee < E) {
            float l = 0.f;
            for (int w = 0; w < wpe; w++) l += part[tid * wpe + w];
            lt[ee] = l;
        }
    }
    __threadfence();
    __syncthreads();
    if (tid == 0) last = atomicAdd(&done[t], 1) == (int)gridDim.x - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    for (int i = tid; i < E; i += blockDim.x) route_l[i] = __ldcg(lt + i);
    __syncthreads();
    if (warp == 0) {
        route_warp(route_l, E, K, norm_topk, route_l + E, chosen + t * K, weight + t * K);
        if (tid == 0) done[t] = 0;
    }
}

/* One block: the n*K slots counted per expert (shared-memory atomics), the
 * counts scanned into offsets [E + 1], then each slot placed at its
 * expert's cursor: rows[i] the token of sorted slot i, where[t*K + k] the
 * sorted position of slot (t, k).  The order of an expert's rows is
 * whatever the atomics give: nothing depends on it (a row of a product is
 * the same wherever it sits in its tile, and the combine reads each slot
 * through where[]).  When tiles is not NULL, the expert row tiles of the
 * grouped product: tiles[0] = their count, then (expert, first row) pairs,
 * ceil(rows / tile_m) tiles an expert, in expert order. */
__global__ void __launch_bounds__(1024)
    moe_sort_kernel(const int32_t *chosen, int n, int E, int K, int tile_m, int32_t *offsets,
                    int32_t *rows, int32_t *where, int32_t *tiles)
{
    __shared__ int32_t cnt[1024], cur[1024], wsum[2][32];
    pdl_enter();
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, S = n * K;
    cnt[tid] = 0;
    __syncthreads();
    for (int i = tid; i < S; i += blockDim.x) atomicAdd(&cnt[chosen[i]], 1);
    __syncthreads();
    /* exclusive scans of the rows and the tiles an expert has (E <= 1024) */
    int c = tid < E ? cnt[tid] : 0, tl = tiles ? (c + tile_m - 1) / tile_m : 0;
    int ic = c, it = tl;
    for (int o = 1; o < 32; o <<= 1) {
        int a = __shfl_up_sync(0xffffffffu, ic, o), b = __shfl_up_sync(0xffffffffu, it, o);
        if (lane >= o) ic += a, it += b;
    }
    if (lane == 31) wsum[0][warp] = ic, wsum[1][warp] = it;
    __syncthreads();
    int bc = 0, bt = 0;
    for (int w = 0; w < warp; w++) bc += wsum[0][w], bt += wsum[1][w];
    const int start = bc + ic - c, tstart = bt + it - tl;
    if (tid < E) {
        offsets[tid] = start;
        cur[tid] = start;
        for (int j = 0; j < tl; j++) {
            tiles[1 + 2 * (tstart + j)] = tid;
            tiles[2 + 2 * (tstart + j)] = start + j * tile_m;
        }
        if (tid == E - 1) {
            offsets[E] = S;
            if (tiles) tiles[0] = tstart + tl;
        }
    }
    __syncthreads();
    for (int i = tid; i < S; i += blockDim.x) {
        int at = atomicAdd(&cur[chosen[i]], 1);
        rows[at] = i / K;
        where[i] = at;
    }
}

/* out[t] (+)= sum over k, in expert order, of weight[t][k] * y[where[t][k]]. */
template <typename T>
__global__ void moe_combine_kernel(T *out, const T *y, const int32_t *chosen, const float *weight,
                                   const int32_t *where, int K, int H, int accumulate)
{
    pdl_enter();
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

extern "C" int llm_k_moe_route_small(int dt, const void *x, const void *router, int n,
                                     int hidden, int n_experts, int k, int norm_topk,
                                     float *logits, int32_t *done, int32_t *chosen,
                                     float *weight, llm_stream_t stream)
{
    if (n <= 0) return 0;
    if (k < 1 || k > 8 || k > n_experts || n_experts > 1024 || hidden % 8)
        return (int)cudaErrorInvalidValue;
    const size_t bytes = (size_t)n_experts * hidden * (dt == K_DT_F32 ? 4 : 2);
    int nb = (int)((bytes + 8191) / 8192);
    if (nb > n_experts) nb = n_experts;
    const int epb = (n_experts + nb - 1) / nb;
    nb = (n_experts + epb - 1) / epb;
    int tpe = 256;
    while (tpe > 1 && tpe * epb > 256) tpe >>= 1;
    DISPATCH_DT(dt, T, {
        return launch_pdl(moe_route_small_kernel<T>, dim3(nb, n), dim3(256),
                          sizeof(float) * 2 * (size_t)n_experts, stream, (const T *)x,
                          (const T *)router, hidden, n_experts, k, norm_topk, epb, tpe, logits,
                          done, chosen, weight);
    });
    return 0;
}

extern "C" int llm_k_moe_sort(const int32_t *chosen, int n, int n_experts, int k, int tile_m,
                              int32_t *offsets, int32_t *rows, int32_t *where, int32_t *tiles,
                              llm_stream_t stream)
{
    if (n <= 0) return 0;
    if (n_experts < 1 || n_experts > 1024 || (tiles && tile_m < 1))
        return (int)cudaErrorInvalidValue;
    return launch_pdl(moe_sort_kernel, dim3(1), dim3(1024), 0, stream, chosen, n, n_experts, k,
                      tile_m, offsets, rows, where, tiles);
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
    pdl_enter();
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
 * weight[s] * (down_e[n] . h[s]).  A block of NW warps holds NW / k groups
 * of R rows, each group's k slots on k warps side by side (their loads in
 * flight together; R rows a warp when a row is short, so a warp has enough
 * loads in flight); the k partial sums meet in shared memory and are added
 * in expert order, in fp32, rounded once. */
template <typename T, int U, int NW, int R, int MINB = 1>
__global__ void __launch_bounds__(NW * 32, MINB)
    moe_down_kernel(T *out, const T *h, const T *down, const int32_t *chosen, const float *weight,
                    int K, int H, int I, int accumulate)
{
    constexpr int V = vec<T>::N;
    __shared__ float part[NW][R];
    pdl_enter();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, t = blockIdx.y;
    const int rpb = NW / K, r = warp / K, kk = warp % K;
    const int n0 = (blockIdx.x * rpb + r) * R;
    const bool live = r < rpb && n0 < H;
    float acc[R];
#pragma unroll
    for (int q = 0; q < R; q++) acc[q] = 0.f;
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
        const int s = t * K + mine;
        const T *wr[R], *hr = h + (int64_t)s * I;
#pragma unroll
        for (int q = 0; q < R; q++)
            wr[q] = down + ((int64_t)ch[mine] * H + min(n0 + q, H - 1)) * I;
        const int kv = I / V;
        vec<T> wv[R][U];
        load_rows<T, R, U>(wv, wr, lane, kv);
        for (int base = lane;;) {
            dot_rows<T, R, U>(acc, wv, hr, base, kv);
            base += 32 * U;
            if (base >= kv) break;
            load_rows<T, R, U>(wv, wr, base, kv);
        }
        const float ws = weight[s];
#pragma unroll
        for (int q = 0; q < R; q++) acc[q] = warp_sum(acc[q]) * ws;
    }
    if (lane == 0)
#pragma unroll
        for (int q = 0; q < R; q++) part[warp][q] = acc[q];
    __syncthreads();
    if (live && kk == 0 && lane < R && n0 + lane < H) {
        float tot = 0.f;
        for (int j = 0; j < K; j++) tot += part[r * K + j][lane];
        T *o = out + (int64_t)t * H + n0 + lane;
        *o = from_f32<T>(accumulate ? to_f32(*o) + tot : tot);
    }
}

/* The down GEMV's shape for long rows (LLM_CUDA_MOE_DOWN, for measurement):
 * 1 8 loads in flight a lane, 2 4 loads held to 32 registers (8 blocks an
 * SM); 0 (default) 2 unless its last wave is clearly emptier (common.cuh's
 * wave_fill; Mixtral-8x7B batch 1: 1,024 blocks, one wave with 2 against two
 * with 1, 3.5% faster end to end, though both waves are as full). */
static int moe_down_shape(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("LLM_CUDA_MOE_DOWN");
        v = e ? atoi(e) : 0;
        if (v < 0 || v > 2) v = 0;
    }
    return v;
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
        /* row groups per block of 8 warps; four rows a warp when a row is under
         * 32 x 4 16-byte loads (Qwen3-MoE's 768), else one */
        const int rpb = 8 / k;
        if (inter / vec<T>::N < 32 * 4) {
            const int rows = rpb * 4;
            return launch_pdl(moe_down_kernel<T, 4, 8, 4>, dim3((hidden + rows - 1) / rows, n),
                              dim3(256), 0, stream, (T *)out, (const T *)h, (const T *)down,
                              chosen, weight, k, hidden, inter, accumulate);
        }
        const dim3 grid((hidden + rpb - 1) / rpb, n), block(256);
        int shape = moe_down_shape();
        if (!shape) {
            const long blocks = (long)grid.x * grid.y;
            shape = wave_fill(moe_down_kernel<T, 4, 8, 1, 8>, 256, blocks) >=
                            wave_fill(moe_down_kernel<T, 8, 8, 1>, 256, blocks) - 0.15
                        ? 2
                        : 1;
        }
        if (shape == 2)
            return launch_pdl(moe_down_kernel<T, 4, 8, 1, 8>, grid, block, 0, stream,
                              (T *)out, (const T *)h, (const T *)down, chosen, weight, k, hidden,
                              inter, accumulate);
        return launch_pdl(moe_down_kernel<T, 8, 8, 1>, grid, block, 0, stream, (T *)out,
                          (const T *)h, (const T *)down, chosen, weight, k, hidden, inter,
                          accumulate);
    });
    return 0;
}

/* ---- many tokens: one grouped product over every expert's rows ------------------- */

/* y[r][n] = sum_k x[xrow(r)][k] * w_e[n][k] for the sorted rows r of each
 * row tile (expert e, rows [m0, min(m0 + BM, offsets[e + 1]))), where
 * xrow(r) = xrow ? xrow[r] : r (the gather happens in the tile load) and
 * the weight row n is w0's [e][n] below nsplit, w1's [e][n - nsplit] from
 * it (fc and gate side by side in one product).  16-bit inputs on the
 * tensor cores (mma m16n8k16, fp32 accumulators), a BM x 128 tile a block
 * of four warps side by side (each BM x 32), 64-wide k steps through a
 * STAGES-deep cp.async ring; shared rows of 128 bytes with their 16-byte
 * chunks XOR-swizzled by the row so ldmatrix reads eight rows without bank
 * conflicts.  Blocks past the tile count, and rows past the expert's end,
 * do nothing (the grid is the count's upper bound, so the launch needs
 * nothing from the host and a graph may hold it). */
#define MG_BN 128
#define MG_BK 64
#define MG_STAGES 3

template <int BM> static constexpr size_t moe_gemm_smem()
{
    return (size_t)MG_STAGES * (BM + MG_BN) * MG_BK * 2;
}

template <typename T, int BM>
__global__ void __launch_bounds__(128)
    moe_gemm_kernel(T *y, int ldy, const T *x, int ldx, const int32_t *xrow, const T *w0,
                    const T *w1, int nsplit, const int32_t *offsets, const int32_t *tiles, int N,
                    int K)
{
    extern __shared__ __align__(16) unsigned char mg_smem[];
    constexpr int MT = BM / 16;
    pdl_enter();
    if ((int)blockIdx.x >= tiles[0]) return;
    const int e = tiles[1 + 2 * blockIdx.x], m0 = tiles[2 + 2 * blockIdx.x];
    const int mrows = min(BM, offsets[e + 1] - m0), n0 = blockIdx.y * MG_BN;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    T *sa = (T *)mg_smem, *sb = sa + MG_STAGES * BM * MG_BK;

    /* this thread's source rows: BM / 16 rows of A and 8 of B, one chunk each a stage */
    const int ch = tid & 7;
    const T *ap[MT], *bp[8];
#pragma unroll
    for (int i = 0; i < MT; i++) {
        int r = (tid >> 3) + 16 * i;
        int src = r < mrows ? (xrow ? xrow[m0 + r] : m0 + r) : -1;
        ap[i] = src >= 0 ? x + (int64_t)src * ldx : nullptr;
    }
#pragma unroll
    for (int i = 0; i < 8; i++) {
        int n = n0 + (tid >> 3) + 16 * i;
        bp[i] = n >= N ? nullptr
              : n < nsplit ? w0 + ((int64_t)e * nsplit + n) * K
                           : w1 + ((int64_t)e * (N - nsplit) + (n - nsplit)) * K;
    }
    auto load = [&](int stage, int k0) {
        const int k = k0 + ch * 8;
        const bool kin = k < K;
#pragma unroll
        for (int i = 0; i < MT; i++) {
            int r = (tid >> 3) + 16 * i;
            bool v = kin && ap[i];
            cp_async16_zfill(sa + (stage * BM + r) * MG_BK + ((ch ^ (r & 7)) * 8),
                             v ? (const void *)(ap[i] + k) : (const void *)x, v);
        }
#pragma unroll
        for (int i = 0; i < 8; i++) {
            int r = (tid >> 3) + 16 * i;
            bool v = kin && bp[i];
            cp_async16_zfill(sb + (stage * MG_BN + r) * MG_BK + ((ch ^ (r & 7)) * 8),
                             v ? (const void *)(bp[i] + k) : (const void *)w0, v);
        }
    };

    float acc[MT][4][4];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int q = 0; q < 4; q++) acc[i][j][q] = 0.f;

    const int kt_n = (K + MG_BK - 1) / MG_BK;
#pragma unroll
    for (int s = 0; s < MG_STAGES - 1; s++) {
        if (s < kt_n) load(s, s * MG_BK);
        cp_commit();
    }
    for (int kt = 0; kt < kt_n; kt++) {
        cp_wait<MG_STAGES - 2>();
        __syncthreads();
        {
            int nk = kt + MG_STAGES - 1;
            if (nk < kt_n) load(nk % MG_STAGES, nk * MG_BK);
            cp_commit();
        }
        const T *ta = sa + (kt % MG_STAGES) * BM * MG_BK;
        const T *tb = sb + (kt % MG_STAGES) * MG_BN * MG_BK;
#pragma unroll
        for (int kk = 0; kk < MG_BK / 16; kk++) {
            uint32_t a[MT][4], b[2][4];
#pragma unroll
            for (int i = 0; i < MT; i++) {
                int r = i * 16 + (lane & 15), c = kk * 2 + (lane >> 4);
                ldsm_x4(a[i], ta + r * MG_BK + ((c ^ (r & 7)) * 8));
            }
#pragma unroll
            for (int p = 0; p < 2; p++) {
                int r = warp * 32 + p * 16 + (lane & 7) + ((lane >> 4) << 3);
                int c = kk * 2 + ((lane >> 3) & 1);
                ldsm_x4(b[p], tb + r * MG_BK + ((c ^ (r & 7)) * 8));
            }
#pragma unroll
            for (int i = 0; i < MT; i++)
#pragma unroll
                for (int j = 0; j < 4; j++)
                    mma_op<T>::run(acc[i][j], a[i], b[j >> 1][(j & 1) * 2],
                                   b[j >> 1][(j & 1) * 2 + 1]);
        }
    }
    cp_wait<0>();

    /* c[0], c[1]: row lane / 4, columns 2 (lane % 4) and + 1; c[2], c[3]: row + 8 */
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int r = i * 16 + (lane >> 2) + h * 8;
            if (r >= mrows) continue;
            T *yr = y + (int64_t)(m0 + r) * ldy;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int n = n0 + warp * 32 + j * 8 + (lane & 3) * 2;
                if (n + 1 < N && !(ldy & 1)) {
                    *reinterpret_cast<uint32_t *>(yr + n) =
                        mma_op<T>::pack(acc[i][j][2 * h], acc[i][j][2 * h + 1]);
                } else {
                    if (n < N) yr[n] = from_f32<T>(acc[i][j][2 * h]);
                    if (n + 1 < N) yr[n + 1] = from_f32<T>(acc[i][j][2 * h + 1]);
                }
            }
        }
}

template <typename T, int BM>
static int moe_gemm_launch(void *y, int ldy, const void *x, int ldx, const int32_t *xrow,
                           const void *w0, const void *w1, int nsplit, const int32_t *offsets,
                           const int32_t *tiles, int S, int E, int N, int K, cudaStream_t st)
{
    const size_t smem = moe_gemm_smem<BM>();
    static bool attr; /* per template instance, once */
    if (!attr) {
        cudaError_t err = cudaFuncSetAttribute(moe_gemm_kernel<T, BM>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               (int)smem);
        if (err != cudaSuccess) return (int)err;
        attr = true;
    }
    int mt = (S + BM - 1) / BM + (E < S ? E : S); /* the tile count's bound */
    return launch_pdl(moe_gemm_kernel<T, BM>, dim3(mt, (N + MG_BN - 1) / MG_BN), dim3(128), smem,
                      st, (T *)y, ldy, (const T *)x, ldx, xrow, (const T *)w0, (const T *)w1,
                      nsplit, offsets, tiles, N, K);
}

extern "C" int llm_k_moe_gemm_tile_m(int slots, int n_experts)
{
    return slots < 32 * n_experts ? 16 : 64;
}

extern "C" int llm_k_moe_gemm(int dt, void *y, int ldy, const void *x, int ldx,
                              const int32_t *xrow, const void *w0, const void *w1, int nsplit,
                              const int32_t *offsets, const int32_t *tiles, int tile_m, int slots,
                              int n_experts, int n, int k, llm_stream_t stream)
{
    if (slots <= 0) return 0;
    if (k % 8 || ldx % 8 || nsplit < 0 || nsplit > n || (nsplit < n && !w1) || n_experts < 1)
        return (int)cudaErrorInvalidValue;
    if (dt == K_DT_F16) {
        if (tile_m == 16)
            return moe_gemm_launch<__half, 16>(y, ldy, x, ldx, xrow, w0, w1, nsplit, offsets,
                                               tiles, slots, n_experts, n, k, stream);
        if (tile_m == 64)
            return moe_gemm_launch<__half, 64>(y, ldy, x, ldx, xrow, w0, w1, nsplit, offsets,
                                               tiles, slots, n_experts, n, k, stream);
    } else if (dt == K_DT_BF16) {
        if (tile_m == 16)
            return moe_gemm_launch<bf16, 16>(y, ldy, x, ldx, xrow, w0, w1, nsplit, offsets, tiles,
                                             slots, n_experts, n, k, stream);
        if (tile_m == 64)
            return moe_gemm_launch<bf16, 64>(y, ldy, x, ldx, xrow, w0, w1, nsplit, offsets, tiles,
                                             slots, n_experts, n, k, stream);
    }
    return (int)cudaErrorInvalidValue;
}
