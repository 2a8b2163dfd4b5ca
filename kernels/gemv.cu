/* gemv.cu - y = x W^T for a handful of rows (decode steps of up to 8 tokens).
 *
 * Design: at M <= 8 a linear layer is a pass over its weights, so the
 * kernel is written for bandwidth: one warp per pair of output rows, each
 * lane streaming 16-byte weight vectors with four loads in flight per row
 * before any arithmetic, x read through L1 (it is small and shared by every
 * warp), fp32 accumulation and one warp reduction per output.  Bias and the
 * residual add ("accumulate": y += x W^T) are fused into the store, so the
 * decode path needs no separate add kernel.
 */
#include "common.cuh"

#define GV_R 2      /* output rows per warp */
#define GV_U 4      /* vectors in flight per row per lane */
#define GV_MAXM 8
#define GV_WARPS 4

template <typename T>
__global__ void __launch_bounds__(GV_WARPS * 32)
    gemv_kernel(T *y, int ldy, const T *x, int ldx, const T *w, const T *bias, int M, int N, int K,
                int accumulate)
{
    constexpr int V = vec<T>::N;
    const int lane = threadIdx.x & 31;
    const int n0 = (blockIdx.x * GV_WARPS + (threadIdx.x >> 5)) * GV_R;
    if (n0 >= N) return;
    const int kv = K / V;
    const T *wr[GV_R];
#pragma unroll
    for (int r = 0; r < GV_R; r++) wr[r] = w + (int64_t)min(n0 + r, N - 1) * K;

    float acc[GV_R][GV_MAXM];
#pragma unroll
    for (int r = 0; r < GV_R; r++)
#pragma unroll
        for (int m = 0; m < GV_MAXM; m++) acc[r][m] = 0.f;

    for (int base = lane; base < kv; base += 32 * GV_U) {
        vec<T> wv[GV_R][GV_U];
#pragma unroll
        for (int u = 0; u < GV_U; u++) {
            int i = base + u * 32;
#pragma unroll
            for (int r = 0; r < GV_R; r++)
                if (i < kv) wv[r][u] = vload(wr[r] + i * V);
        }
#pragma unroll
        for (int u = 0; u < GV_U; u++) {
            int i = base + u * 32;
            if (i >= kv) break;
            float wf[GV_R][V];
#pragma unroll
            for (int r = 0; r < GV_R; r++)
#pragma unroll
                for (int k = 0; k < V; k++) wf[r][k] = to_f32(wv[r][u].v[k]);
#pragma unroll
            for (int m = 0; m < GV_MAXM; m++) {
                if (m < M) {
                    vec<T> xv = vload(x + (int64_t)m * ldx + i * V);
#pragma unroll
                    for (int k = 0; k < V; k++) {
                        float xf = to_f32(xv.v[k]);
#pragma unroll
                        for (int r = 0; r < GV_R; r++) acc[r][m] += wf[r][k] * xf;
                    }
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < GV_R; r++)
#pragma unroll
        for (int m = 0; m < GV_MAXM; m++) acc[r][m] = warp_sum(acc[r][m]);
    if (lane < M) {
#pragma unroll
        for (int r = 0; r < GV_R; r++) {
            int n = n0 + r;
            if (n >= N) break;
            float v = 0.f;
#pragma unroll
            for (int m = 0; m < GV_MAXM; m++)
                if (m == lane) v = acc[r][m];
            if (bias) v += to_f32(bias[n]);
            T *dst = y + (int64_t)lane * ldy + n;
            if (accumulate) v += to_f32(*dst);
            *dst = from_f32<T>(v);
        }
    }
}

extern "C" int llm_k_gemv(int dt, void *y, int ldy, const void *x, int ldx, const void *w,
                          const void *bias, int M, int N, int K, int accumulate,
                          llm_stream_t stream)
{
    if (M <= 0 || N <= 0) return 0;
    if (M > GV_MAXM || K % 8 || ldx % 8) return (int)cudaErrorInvalidValue;
    int rows_per_block = GV_WARPS * GV_R;
    int grid = (N + rows_per_block - 1) / rows_per_block;
    DISPATCH_DT(dt, T, {
        gemv_kernel<T><<<grid, GV_WARPS * 32, 0, stream>>>((T *)y, ldy, (const T *)x, ldx,
                                                           (const T *)w, (const T *)bias, M, N, K,
                                                           accumulate);
    });
    return k_status();
}
