/* gemv.cu - y = x W^T for a handful of rows (decode steps of up to 8 tokens).
 *
 * Design: at M <= 8 a linear layer is a pass over its weights, so the
 * kernel is written for bandwidth: each warp owns R output rows, each lane
 * streams 16-byte weight vectors (U per row in flight before any
 * arithmetic) with loads that skip L1 (ld.global.nc.L1::no_allocate), so
 * L1 keeps x, which every warp re-reads; fp32 accumulation and one warp
 * reduction per output.  Bias and the residual add ("accumulate":
 * y += x W^T) are fused into the store, so the decode path needs no
 * separate add kernel.  The (R, U, warps, max M) shape is a template; a
 * few instances are exported by number for the benchmark to compare
 * (llm_k_gemv_variant), and llm_k_gemv uses the one measured best.
 */
#include "common.cuh"

template <typename T, int R, int U, int NW, int MAXM>
__global__ void __launch_bounds__(NW * 32)
    gemv_kernel(T *y, int ldy, const T *x, int ldx, const T *w, const T *bias, int M, int N, int K,
                int accumulate)
{
    constexpr int V = vec<T>::N;
    const int lane = threadIdx.x & 31;
    const int n0 = (blockIdx.x * NW + (threadIdx.x >> 5)) * R;
    const int kv = K / V;
    const T *wr[R];
#pragma unroll
    for (int r = 0; r < R; r++) wr[r] = w + (int64_t)min(n0 + r, N - 1) * K;
    pdl_enter();
    if (n0 >= N) return;
    vec<T> wv[R][U];
    load_rows<T, R, U>(wv, wr, lane, kv);

    float acc[R][MAXM];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < MAXM; m++) acc[r][m] = 0.f;

    for (int base = lane;;) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            int i = base + u * 32;
            if (i >= kv) break;
#pragma unroll
            for (int m = 0; m < MAXM; m++) {
                if (m < M) {
                    vec<T> xv = vload(x + (int64_t)m * ldx + i * V);
#pragma unroll
                    for (int k = 0; k < V; k++) {
                        float xf = to_f32(xv.v[k]);
#pragma unroll
                        for (int r = 0; r < R; r++) acc[r][m] += to_f32(wv[r][u].v[k]) * xf;
                    }
                }
            }
        }
        base += 32 * U;
        if (base >= kv) break;
        load_rows<T, R, U>(wv, wr, base, kv);
    }
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < MAXM; m++)
            if (m < M) acc[r][m] = warp_sum(acc[r][m]);
    if (lane < M) {
#pragma unroll
        for (int r = 0; r < R; r++) {
            int n = n0 + r;
            if (n >= N) break;
            float v = 0.f;
#pragma unroll
            for (int m = 0; m < MAXM; m++)
                if (m == lane) v = acc[r][m];
            if (bias) v += to_f32(bias[n]);
            T *dst = y + (int64_t)lane * ldy + n;
            if (accumulate) v += to_f32(*dst);
            *dst = from_f32<T>(v);
        }
    }
}

/* A folded RMS norm (llm_k_gemv_norm): acc += w . (x * (g + goff)) over the
 * U vectors from vector i on (lanes 32 apart, below len), ss += x . x; the
 * products are scaled by the row's 1 / rms at the store. */
template <typename T, int U>
static __device__ __forceinline__ void dot_norm(float &acc, float &ss, const vec<T> (&wv)[1][U],
                                                const T *x, const T *g, float goff, int i, int len)
{
#pragma unroll
    for (int u = 0; u < U; u++) {
        int j = i + u * 32;
        if (j >= len) break;
        const vec<T> xv = vload(x + j * vec<T>::N), gv = vload(g + j * vec<T>::N);
#pragma unroll
        for (int k = 0; k < vec<T>::N; k++) {
            const float xf = to_f32(xv.v[k]);
            ss += xf * xf;
            acc += to_f32(wv[0][u].v[k]) * (xf * (to_f32(gv.v[k]) + goff));
        }
    }
}

/* 1 / sqrt(mean square + eps) from n partial sums of squares */
static __device__ __forceinline__ float norm_rinv(const float *ss, int n, int K, float eps)
{
    float q = 0.f;
    for (int j = 0; j < n; j++)
        q += ss[j];
    return rsqrtf(q / K + eps);
}

/* The folded norm's row as llm_k_norm stores it, for any later reader: the
 * threads t, t + step, ... of one block, the row's partial sums of squares
 * in ss[0..n). */
template <typename T>
static __device__ __forceinline__ void norm_store(const llm_k_norm_in &nrm, const T *x,
                                                  const float *ss, int n, int K, int t, int step)
{
    const float inv = norm_rinv(ss, n, K, nrm.eps);
    const T *g = static_cast<const T *>(nrm.w);
    T *out = static_cast<T *>(nrm.out);
    for (int e = t; e < K / vec<T>::N; e += step) {
        const vec<T> xv = vload(x + e * vec<T>::N), gv = vload(g + e * vec<T>::N);
        vec<T> o;
#pragma unroll
        for (int k = 0; k < vec<T>::N; k++)
            o.v[k] = from_f32<T>(to_f32(xv.v[k]) * inv * (to_f32(gv.v[k]) + nrm.w_offset));
        vstore(out + e * vec<T>::N, o);
    }
}

/* Gated MLP input product for one row: each warp computes output j of both
 * halves of w [2I][K] (fc row j, gate row I + j) and stores act(fc) * gate,
 * so the activation costs no kernel and no round trip through memory. */
template <typename T, int U, int NW, bool NORM = false>
__global__ void __launch_bounds__(NW * 32)
    gemv_gated_kernel(int act, T *y, const T *x, const T *w, const T *bias, int I, int K,
                      llm_k_norm_in nrm)
{
    constexpr int V = vec<T>::N;
    const int lane = threadIdx.x & 31;
    const int j = blockIdx.x * NW + (threadIdx.x >> 5);
    const int kv = K / V;
    pdl_enter();
    if (!NORM && j >= I) return;
    /* (with the norm, a warp past I computes row I - 1 again: block 0's warps all store) */
    const int jr = min(j, I - 1);
    const T *const wr[2] = {w + (int64_t)jr * K, w + (int64_t)(I + jr) * K};
    vec<T> wv[2][U];
    load_rows<T, 2, U>(wv, wr, lane, kv);
    float acc[2] = {0.f, 0.f}, ss = 0.f;
    const T *g = static_cast<const T *>(nrm.w);
    for (int base = lane;;) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            int i = base + u * 32;
            if (i >= kv) break;
            vec<T> xv = vload(x + i * V);
            vec<T> gv;
            if (NORM) gv = vload(g + i * V);
#pragma unroll
            for (int k = 0; k < V; k++) {
                float xf = to_f32(xv.v[k]);
                if (NORM) {
                    ss += xf * xf;
                    xf *= to_f32(gv.v[k]) + nrm.w_offset;
                }
                acc[0] += to_f32(wv[0][u].v[k]) * xf;
                acc[1] += to_f32(wv[1][u].v[k]) * xf;
            }
        }
        base += 32 * U;
        if (base >= kv) break;
        load_rows<T, 2, U>(wv, wr, base, kv);
    }
    acc[0] = warp_sum(acc[0]);
    acc[1] = warp_sum(acc[1]);
    if (NORM) {
        /* every warp saw all of x (the same sums in the same order): block 0's
         * warps store the normalised row between them, no barrier needed */
        ss = warp_sum(ss);
        if (blockIdx.x == 0) norm_store<T>(nrm, x, &ss, 1, K, threadIdx.x, NW * 32);
        const float inv = norm_rinv(&ss, 1, K, nrm.eps);
        acc[0] *= inv;
        acc[1] *= inv;
    }
    if (lane == 0 && j < I) {
        if (bias) {
            acc[0] += to_f32(bias[j]);
            acc[1] += to_f32(bias[I + j]);
        }
        y[j] = from_f32<T>(act_apply(act, acc[0]) * acc[1]);
    }
}

/* One row, each output row's K range split over KS warps of a block (more
 * loads in flight for matrices with few rows, e.g. o and down projections);
 * the KS partial sums are added in a fixed order. */
template <typename T, int U, int NW, int KS, int MINB, bool NORM = false>
__global__ void __launch_bounds__(NW * 32, MINB)
    gemv1_split_kernel(T *y, const T *x, const T *w, const T *bias, int N, int K, int accumulate,
                       llm_k_norm_in nrm)
{
    constexpr int V = vec<T>::N;
    __shared__ float part[NW], part_ss[NORM ? NW : 1];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int n = blockIdx.x * (NW / KS) + warp / KS, ks = warp % KS;
    const int kv = K / V, chunk = (kv + KS - 1) / KS;
    const int k0 = ks * chunk, k1 = min(kv, k0 + chunk);
    /* wr points at the chunk, so the vector bound is its length */
    const T *const wr[1] = {w + (int64_t)min(n, N - 1) * K + (int64_t)k0 * V};
    const int len = k1 - k0;
    pdl_enter();
    float acc = 0.f, ss = 0.f;
    if (n < N) {
        vec<T> wv[1][U];
        load_rows<T, 1, U>(wv, wr, lane, len);
        const T *xr = x + (int64_t)k0 * V;
        for (int base = lane;;) {
            if (NORM)
                dot_norm<T, U>(acc, ss, wv, xr, static_cast<const T *>(nrm.w) + (int64_t)k0 * V,
                               nrm.w_offset, base, len);
            else
                dot_rows<T, 1, U>(&acc, wv, xr, base, len);
            base += 32 * U;
            if (base >= len) break;
            load_rows<T, 1, U>(wv, wr, base, len);
        }
    }
    acc = warp_sum(acc);
    if (NORM) ss = warp_sum(ss);
    if (lane == 0) {
        part[warp] = acc;
        if (NORM) part_ss[warp] = ss;
    }
    __syncthreads();
    if (NORM && blockIdx.x == 0) /* row 0's KS warps saw all of x */
        norm_store<T>(nrm, x, part_ss, KS, K, threadIdx.x, NW * 32);
    if (ks == 0 && lane == 0 && n < N) {
        float v = 0.f;
#pragma unroll
        for (int j = 0; j < KS; j++) v += part[warp + j];
        if (NORM) v *= norm_rinv(part_ss + warp, KS, K, nrm.eps);
        if (bias) v += to_f32(bias[n]);
        if (accumulate) v += to_f32(y[n]);
        y[n] = from_f32<T>(v);
    }
}

/* MINB: blocks an SM the compiler must fit (8: 32 registers a thread) */
template <typename T, int U, int NW, int KS, int MINB = 1, bool NORM = false>
static int launch_split(T *y, const T *x, const T *w, const T *bias, int N, int K, int accumulate,
                        cudaStream_t st, const llm_k_norm_in &nrm = llm_k_norm_in{})
{
    return launch_pdl(gemv1_split_kernel<T, U, NW, KS, MINB, NORM>,
                      dim3((N + NW / KS - 1) / (NW / KS)), dim3(NW * 32), 0, st, y, x, w, bias, N,
                      K, accumulate, nrm);
}

int llm_k_gemv_split_mode = 0;

extern "C" void llm_k_set_gemv_split(int mode)
{
    llm_k_gemv_split_mode = mode;
}

template <typename T, int R, int U, int NW, int MAXM>
static int launch(T *y, int ldy, const T *x, int ldx, const T *w, const T *bias, int M, int N,
                  int K, int accumulate, cudaStream_t st)
{
    if (M > MAXM) return (int)cudaErrorInvalidValue;
    int grid = (N + NW * R - 1) / (NW * R);
    return launch_pdl(gemv_kernel<T, R, U, NW, MAXM>, dim3(grid), dim3(NW * 32), 0, st, y, ldy, x,
                      ldx, w, bias, M, N, K, accumulate);
}

static bool gemv_args_ok(int M, int K, int ldx, int ldy)
{
    return M >= 1 && M <= 8 && K % 8 == 0 && ldx % 8 == 0 && ldy >= 1;
}

extern "C" int llm_k_gemv(int dt, void *y, int ldy, const void *x, int ldx, const void *w,
                          const void *bias, int M, int N, int K, int accumulate,
                          llm_stream_t stream)
{
    if (M <= 0 || N <= 0) return 0;
    if (!gemv_args_ok(M, K, ldx, ldy)) return (int)cudaErrorInvalidValue;
    DISPATCH_DT(dt, T, {
        if (M == 1) {
            /* two warps a row (variant 9), held to 32 registers (8 blocks an SM) unless that
             * leaves a clearly emptier last wave (Llama-2-7B's o and down: 1,024 blocks in
             * one wave instead of 1.3; Mixtral's qkv keeps the compiler's registers: 1.9
             * waves instead of 1.5).  LLM_CUDA_GEMV_SPLIT: 2 or 4 warps a row at the
             * compiler's registers; 5: 2 warps, 32 registers; 1: one warp a row */
            const int mode = llm_k_gemv_split_mode;
            T *yy = (T *)y;
            const T *xx = (const T *)x, *ww = (const T *)w, *bb = (const T *)bias;
            if (mode == 0) {
                const long blocks = (N + 3) / 4;
                if (wave_fill(gemv1_split_kernel<T, 4, 8, 2, 8>, 256, blocks) >=
                    wave_fill(gemv1_split_kernel<T, 4, 8, 2, 1>, 256, blocks) - 0.15)
                    return launch_split<T, 4, 8, 2, 8>(yy, xx, ww, bb, N, K, accumulate, stream);
                return launch_split<T, 4, 8, 2>(yy, xx, ww, bb, N, K, accumulate, stream);
            }
            if (mode == 2)
                return launch_split<T, 4, 8, 2>(yy, xx, ww, bb, N, K, accumulate, stream);
            if (mode == 4)
                return launch_split<T, 8, 8, 4>(yy, xx, ww, bb, N, K, accumulate, stream);
            if (mode == 5)
                return launch_split<T, 4, 8, 2, 8>(yy, xx, ww, bb, N, K, accumulate, stream);
            return launch<T, 1, 8, 4, 1>((T *)y, ldy, (const T *)x, ldx, (const T *)w,
                                         (const T *)bias, M, N, K, accumulate, stream);
        }
        return launch<T, 4, 4, 4, 8>((T *)y, ldy, (const T *)x, ldx, (const T *)w,
                                     (const T *)bias, M, N, K, accumulate, stream);
    });
    return 0;
}

extern "C" int llm_k_gemv_variant(int variant, void *y, int ldy, const void *x, int ldx,
                                  const void *w, const void *bias, int M, int N, int K,
                                  int accumulate, llm_stream_t stream)
{
    if (M <= 0 || N <= 0) return 0;
    if (!gemv_args_ok(M, K, ldx, ldy)) return (int)cudaErrorInvalidValue;
    typedef bf16 T;
    T *yy = (T *)y;
    const T *xx = (const T *)x, *ww = (const T *)w, *bb = (const T *)bias;
    switch (variant) {
    case 0: return launch<T, 2, 4, 4, 8>(yy, ldy, xx, ldx, ww, bb, M, N, K, accumulate, stream);
    case 1: return launch<T, 1, 8, 4, 1>(yy, ldy, xx, ldx, ww, bb, M, N, K, accumulate, stream);
    case 2: return launch<T, 2, 8, 4, 1>(yy, ldy, xx, ldx, ww, bb, M, N, K, accumulate, stream);
    case 3: return launch<T, 4, 4, 8, 1>(yy, ldy, xx, ldx, ww, bb, M, N, K, accumulate, stream);
    case 4: return launch<T, 1, 16, 8, 1>(yy, ldy, xx, ldx, ww, bb, M, N, K, accumulate, stream);
    case 5: return launch<T, 4, 4, 4, 8>(yy, ldy, xx, ldx, ww, bb, M, N, K, accumulate, stream);
    case 6: /* one row: variant 9 held to 32 registers, 8 blocks an SM (N = 4096 in one
             * wave); more rows: 8 rows a warp, 2 loads in flight */
        return M == 1 ? launch_split<T, 4, 8, 2, 8>(yy, xx, ww, bb, N, K, accumulate, stream)
                      : launch<T, 8, 2, 4, 8>(yy, ldy, xx, ldx, ww, bb, M, N, K, accumulate, stream);
    case 7: return M == 1 ? launch_split<T, 8, 8, 2>(yy, xx, ww, bb, N, K, accumulate, stream)
                          : (int)cudaErrorInvalidValue;
    case 8: return M == 1 ? launch_split<T, 8, 8, 4>(yy, xx, ww, bb, N, K, accumulate, stream)
                          : (int)cudaErrorInvalidValue;
    case 9: return M == 1 ? launch_split<T, 4, 8, 2>(yy, xx, ww, bb, N, K, accumulate, stream)
                          : (int)cudaErrorInvalidValue;
    default: return (int)cudaErrorInvalidValue;
    }
}

extern "C" int llm_k_gemv_gated(int dt, int act, void *y, const void *x, const void *w,
                                const void *bias, int I, int K, llm_stream_t stream)
{
    if (I <= 0) return 0;
    if (K % 8 || act < 0 || act > LLM_K_ACT_RELU) return (int)cudaErrorInvalidValue;
    DISPATCH_DT(dt, T, {
        return launch_pdl(gemv_gated_kernel<T, 8, 4>, dim3((I + 3) / 4), dim3(128), 0, stream, act,
                          (T *)y, (const T *)x, (const T *)w, (const T *)bias, I, K,
                          llm_k_norm_in{});
    });
    return 0;
}

/* The norm folded into llm_k_gemv's one-row choice (mode 0), or the gated pair. */
template <typename T>
static int gemv_norm(int gated, int act, T *y, const llm_k_norm_in &nrm, const T *w, const T *bias,
                     int N, int K, int accumulate, cudaStream_t st)
{
    const T *x = static_cast<const T *>(nrm.res);
    if (gated)
        return launch_pdl(gemv_gated_kernel<T, 8, 4, true>, dim3((N + 3) / 4), dim3(128), 0, st,
                          act, y, x, w, bias, N, K, nrm);
    const long blocks = (N + 3) / 4;
    if (wave_fill(gemv1_split_kernel<T, 4, 8, 2, 6, true>, 256, blocks) >=
        wave_fill(gemv1_split_kernel<T, 4, 8, 2, 1, true>, 256, blocks) - 0.15)
        return launch_split<T, 4, 8, 2, 6, true>(y, x, w, bias, N, K, accumulate, st, nrm);
    return launch_split<T, 4, 8, 2, 1, true>(y, x, w, bias, N, K, accumulate, st, nrm);
}

extern "C" int llm_k_gemv_norm_ok(int dt, int kind, int K)
{
    return kind == LLM_K_NORM_RMS && (dt == K_DT_F16 || dt == K_DT_BF16) && K > 0 && K % 8 == 0;
}

extern "C" int llm_k_gemv_norm(int dt, int gated, int act, void *y, const struct llm_k_norm_in *nrm,
                               const void *w, const void *bias, int N, int K, int accumulate,
                               llm_stream_t stream)
{
    if (N <= 0) return 0;
    if (!nrm || !nrm->res || !nrm->w || !nrm->out || nrm->b || nrm->out == nrm->res ||
        !llm_k_gemv_norm_ok(dt, nrm->kind, K) || act < 0 || act > LLM_K_ACT_RELU ||
        (gated && accumulate))
        return (int)cudaErrorInvalidValue;
    const cudaStream_t st = (cudaStream_t)stream;
    if (dt == K_DT_F16)
        return gemv_norm<__half>(gated, act, (__half *)y, *nrm, (const __half *)w,
                                 (const __half *)bias, N, K, accumulate, st);
    return gemv_norm<bf16>(gated, act, (bf16 *)y, *nrm, (const bf16 *)w, (const bf16 *)bias, N, K,
                           accumulate, st);
}
