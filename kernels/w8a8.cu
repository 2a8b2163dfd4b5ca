/* w8a8.cu - linears whose activations are quantized as well as their
 * weights: fp8 (e4m3 weights and activations) and int8 (SmoothQuant).
 *
 * Design.  The activations are rounded first, by llm_k_quant_act: each row
 * of x divided by the smoother (SmoothQuant's, when it was not folded into
 * the norm), then by its scale - the artifact's static one, or the row's
 * own max|x| / 448 (fp8) or / 127 (int8) - and rounded to e4m3 (nearest
 * even, saturating) or int8 (nearest even, clamped to +-127), the row's
 * scale written beside it.  That is the CPU reference's arithmetic, step
 * for step in fp32 (cpu_quant.c), so the quantized rows are the
 * reference's own numbers.  The product then sees 8-bit numbers on both
 * sides:
 *   - up to 8 rows: llm_k_w8a8_gemv reads each weight once (16-byte loads
 *     that skip L1) into the tensor cores' 8-bit products (fp32 sums for
 *     fp8, exact int32 sums for int8), then multiplies by the row's and
 *     the channel's scales, adds the bias and the residual;
 *   - more rows: a cuBLASLt GEMM of the 8-bit operands (cuda_gemm.c), whose
 *     scales and bias are applied in its epilogue, or by llm_k_w8a8_scale
 *     over its int32 (int8) or fp32 result.
 * Layouts: wq [N][K] bytes (the artifact's), ws [N] fp32 (a per-tensor
 * scale repeated per row), xq [M][K] bytes, xs [M] fp32; K % 16 == 0.
 */
#include <cuda_fp8.h>

#include "common.cuh"


/* ---- activations ---------------------------------------------------------------- */

template <typename T>
static __device__ __forceinline__ float act_in(const T *r, const float *sm, int k)
{
    float v = to_f32(r[k]);
    return sm ? v / sm[k] : v;
}

template <typename T, int A>
__global__ void __launch_bounds__(256)
    quant_act_kernel(uint8_t *xq, float *xs, const T *x, int ldx, const float *sm,
                     const float *as, int K)
{
    __shared__ float red[32];
    const int m = blockIdx.x;
    const T *r = x + (int64_t)m * ldx;
    float s = as ? *as : 0.f;
    if (s <= 0.f) { /* dynamic: the row's own scale */
        float mx = 0.f;
        for (int k = threadIdx.x; k < K; k += blockDim.x) mx = fmaxf(mx, fabsf(act_in(r, sm, k)));
        mx = block_max(mx, red);
        s = code8_scale(A, mx);
    }
    if (threadIdx.x == 0) xs[m] = s;
    uint8_t *q = xq + (int64_t)m * K;
    for (int k = threadIdx.x; k < K; k += blockDim.x) q[k] = code8<A>(act_in(r, sm, k) / s);
}

int llm_k_quant_act(int dt, int act, void *xq, float *xs, const void *x, int ldx,
                    const float *smoother, const float *act_scale, int M, int K,
                    llm_stream_t stream)
{
    if (M <= 0) return 0;
    if (act != LLM_K_A_FP8 && act != LLM_K_A_INT8) return (int)cudaErrorInvalidValue;
    cudaStream_t st = (cudaStream_t)stream;
    DISPATCH_DT(dt, T, {
        if (act == LLM_K_A_FP8)
            quant_act_kernel<T, LLM_K_A_FP8><<<M, 256, 0, st>>>(
                (uint8_t *)xq, xs, (const T *)x, ldx, smoother, act_scale, K);
        else
            quant_act_kernel<T, LLM_K_A_INT8><<<M, 256, 0, st>>>(
                (uint8_t *)xq, xs, (const T *)x, ldx, smoother, act_scale, K);
    });
    return k_status();
}

/* W4A8: x times the pre-quant scale, over the static scale, to e4m3; 8
 * elements a thread (K % 8 == 0). */
template <typename T, bool VALS>
__global__ void __launch_bounds__(256)
    quant_x8_kernel(void *dst, const T *x, int ldx, const float *pre, const float *as, int M, int K)
{
    const float s = *as;
    const int k8 = K / 8;
    const int64_t total = (int64_t)M * k8;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t m = i / k8;
        const int k0 = (int)(i - m * k8) * 8;
        const T *r = x + m * ldx + k0;
        union {
            uint8_t b[8];
            uint2 u;
        } c;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const float v = pre ? to_f32(r[j]) * pre[k0 + j] : to_f32(r[j]);
            c.b[j] = code8<LLM_K_A_FP8>(v / s);
        }
        if constexpr (VALS) {
            T *o = (T *)dst + m * K + k0;
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const __half h =
                    __half(__nv_cvt_fp8_to_halfraw((__nv_fp8_storage_t)c.b[j], __NV_E4M3));
                o[j] = from_f32<T>(__half2float(h));
            }
        } else {
            uint8_t *o = (uint8_t *)dst + m * K + k0;
            *reinterpret_cast<uint2 *>(o) = c.u;
        }
    }
}

int llm_k_quant_x8(int dt, int vals, void *dst, const void *x, int ldx, const float *pre,
                   const float *act_scale, int M, int K, llm_stream_t stream)
{
    if (M <= 0) return 0;
    if (K % 8 || !act_scale) return (int)cudaErrorInvalidValue;
    cudaStream_t st = (cudaStream_t)stream;
    const int64_t blocks = (int64_t)M * (K / 8) / 256 + 1;
    const int grid = (int)(blocks < 132 * 8 ? blocks : 132 * 8);
    DISPATCH_DT(dt, T, {
        if (vals)
            quant_x8_kernel<T, true>
                <<<grid, 256, 0, st>>>(dst, (const T *)x, ldx, pre, act_scale, M, K);
        else
            quant_x8_kernel<T, false>
                <<<grid, 256, 0, st>>>(dst, (const T *)x, ldx, pre, act_scale, M, K);
    });
    return k_status();
}

/* W4A8 for the fused product (q4gemm.cu, llm_k_q4_gemm8): 16 inputs a thread, their codes
 * as quant_x8_kernel makes them stored in the order the tile layout's bytes take them -
 * within each 16 inputs, byte 4 t + i holds input 2 t + 8 (i & 1) + (i >> 1) - and each
 * 128-input group's sum of the numbers its codes stand for, over 64, by the 8 threads of the
 * group (k16 % 8 == 0, so they are 8 aligned lanes of one warp; every lane of a block runs
 * the same number of rounds, so the shuffles see whole warps) into xs[group][m], rows M..Mp
 * zero. */
template <typename T>
__global__ void __launch_bounds__(256)
    quant_x8t_kernel(uint8_t *dst, float *xs, const T *x, int ldx, const float *pre,
                     const float *as, int M, int Mp, int K)
{
    const float s = *as;
    const int k16 = K / 16;
    const int64_t total = (int64_t)Mp * k16, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t base = blockIdx.x * (int64_t)blockDim.x; base < total; base += stride) {
        const int64_t i = base + threadIdx.x;
        const int64_t m = i < total ? i / k16 : 0;
        const int k0 = (int)(i - m * k16) * 16;
        float sum = 0.f;
        if (i < total && m < M) {
            const T *r = x + m * ldx + k0;
            uint8_t c[16];
#pragma unroll
            for (int j = 0; j < 16; j++) {
                const float v = pre ? to_f32(r[j]) * pre[k0 + j] : to_f32(r[j]);
                c[j] = code8<LLM_K_A_FP8>(v / s);
                sum += __half2float(
                    __half(__nv_cvt_fp8_to_halfraw((__nv_fp8_storage_t)c[j], __NV_E4M3)));
            }
            union {
                uint8_t b[16];
                uint4 u;
            } o;
#pragma unroll
            for (int p = 0; p < 16; p++)
                o.b[p] = c[2 * (p >> 2) + 8 * (p & 1) + ((p >> 1) & 1)];
            *reinterpret_cast<uint4 *>(dst + m * K + k0) = o.u;
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        sum += __shfl_xor_sync(0xffffffffu, sum, 4);
        if (i < total && (i & 7) == 0) xs[(int64_t)(k0 / 128) * Mp + m] = sum * (1.f / 64.f);
    }
}

int llm_k_quant_x8t(int dt, void *dst, float *xs, const void *x, int ldx, const float *pre,
                    const float *act_scale, int M, int K, llm_stream_t stream)
{
    if (M <= 0) return 0;
    if (K % 128 || !act_scale || dt == K_DT_F32) return (int)cudaErrorInvalidValue;
    cudaStream_t st = (cudaStream_t)stream;
    const int Mp = (M + 3) & ~3;
    const int64_t blocks = (int64_t)Mp * (K / 16) / 256 + 1;
    const int grid = (int)(blocks < 132 * 8 ? blocks : 132 * 8);
    DISPATCH_DT(dt, T, {
        quant_x8t_kernel<T>
            <<<grid, 256, 0, st>>>((uint8_t *)dst, xs, (const T *)x, ldx, pre, act_scale, M, Mp, K);
    });
    return k_status();
}

/* ---- the product for a few rows -------------------------------------------------
 * Tensor cores take the 8-bit numbers as they are (mma.sync m16n8k32, e4m3 or
 * s8, fp32 or int32 accumulators): a warp holds 16 weight rows against the 8
 * (or fewer) rows of x, so one pass over the weights serves every row of x.
 * A lane loads 16 contiguous bytes of weight row g and of row g + 8 (g =
 * lane / 4) and 16 bytes of x row g, at K offset 16 (lane % 4) of each
 * 64-wide step; those words are the A and B fragments of two mma steps
 * whose K order is a permutation of the true one - the same permutation on
 * both sides, so the sums are the same sums.  The warps of a block share the
 * block's tiles of 16 rows and split K between them; their sums meet in
 * shared memory. */

/* Launch shapes (W warps splitting K, U steps of loads in flight per warp, RT
 * tiles of 16 weight rows per warp); shape 0 is the default. */
static int w8_shape;
void llm_k_set_w8_shape(int shape)
{
    w8_shape = shape;
}

template <int A>
static __device__ __forceinline__ void mma8(float (&d)[4], int (&di)[4], uint32_t a0, uint32_t a1,
                                            uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1)
{
    if (A == LLM_K_A_FP8)
        asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 "
                     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    else
        asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
                     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+r"(di[0]), "+r"(di[1]), "+r"(di[2]), "+r"(di[3])
                     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

template <typename Y, int A, int W, int U, int RT>
__global__ void __launch_bounds__(32 * W)
    w8a8_gemv_kernel(Y *y, int ldy, const uint8_t *xq, const float *xs, const uint8_t *wq,
                     const float *ws, const Y *bias, int M, int N, int K, int accumulate)
{
    __shared__ union {
        float f[W][32][4 * RT];
        int i[W][32][4 * RT];
    } red;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int n0 = blockIdx.x * 16 * RT;
    const uint8_t *wr[RT][2];
    int rows[RT][2];
#pragma unroll
    for (int r = 0; r < RT; r++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            rows[r][h] = n0 + 16 * r + g + 8 * h;
            wr[r][h] = wq + (int64_t)(rows[r][h] < N ? rows[r][h] : 0) * K;
        }
    const uint8_t *xr = xq + (int64_t)(g < M ? g : 0) * K;
    const int steps = (K + 63) / 64;
    float d[RT][4];
    int di[RT][4];
#pragma unroll
    for (int r = 0; r < RT; r++)
#pragma unroll
        for (int i = 0; i < 4; i++) d[r][i] = 0.f, di[r][i] = 0;
    const uint4 z = make_uint4(0, 0, 0, 0);
    for (int s0 = warp * U; s0 < steps; s0 += W * U) {
        uint4 a[RT][2][U], x[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            int k = (s0 + u) * 64 + 16 * t;
            bool in = s0 + u < steps && k < K;
#pragma unroll
            for (int r = 0; r < RT; r++)
#pragma unroll
                for (int h = 0; h < 2; h++)
                    a[r][h][u] = in && rows[r][h] < N ? ld_stream(wr[r][h] + k) : z;
            x[u] = in && g < M ? *reinterpret_cast<const uint4 *>(xr + k) : z;
        }
#pragma unroll
        for (int u = 0; u < U; u++)
#pragma unroll
            for (int r = 0; r < RT; r++) {
                mma8<A>(d[r], di[r], a[r][0][u].x, a[r][1][u].x, a[r][0][u].y, a[r][1][u].y,
                        x[u].x, x[u].y);
                mma8<A>(d[r], di[r], a[r][0][u].z, a[r][1][u].z, a[r][0][u].w, a[r][1][u].w,
                        x[u].z, x[u].w);
            }
    }
#pragma unroll
    for (int r = 0; r < RT; r++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            if (A == LLM_K_A_FP8) red.f[warp][lane][4 * r + i] = d[r][i];
            else red.i[warp][lane][4 * r + i] = di[r][i];
        }
    __syncthreads();
    if (warp >= RT) return;
    /* warp r stores tile r: d[i] is row (i < 2 ? g : g + 8), column (x row) 2 t + (i & 1) */
    const int r = warp;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float v = 0.f;
        int vi = 0;
        for (int w = 0; w < W; w++) {
            if (A == LLM_K_A_FP8) v += red.f[w][lane][4 * r + i];
            else vi += red.i[w][lane][4 * r + i];
        }
        if (A != LLM_K_A_FP8) v = (float)vi;
        int n = rows[r][i >> 1], m = 2 * t + (i & 1);
        if (n >= N || m >= M) continue;
        v = v * xs[m] * ws[n];
        if (bias) v += to_f32(bias[n]);
        Y *p = y + (int64_t)m * ldy + n;
        if (accumulate) v += to_f32(*p);
        *p = from_f32<Y>(v);
    }
}

int llm_k_w8a8_ok(int K)
{
    return K > 0 && K % 16 == 0;
}

template <typename Y, int A, int W, int U, int RT>
static void gemv_launch(Y *y, int ldy, const void *xq, const float *xs, const void *wq,
                        const float *ws, const Y *bias, int M, int N, int K, int accumulate,
                        cudaStream_t st)
{
    dim3 grid((unsigned)((N + 16 * RT - 1) / (16 * RT))), block(32 * W);
    w8a8_gemv_kernel<Y, A, W, U, RT><<<grid, block, 0, st>>>(
        y, ldy, (const uint8_t *)xq, xs, (const uint8_t *)wq, ws, bias, M, N, K, accumulate);
}

template <typename Y, int A>
static void gemv_shape(Y *y, int ldy, const void *xq, const float *xs, const void *wq,
                       const float *ws, const Y *bias, int M, int N, int K, int accumulate,
                       cudaStream_t st)
{
    switch (w8_shape) {
    case 1: gemv_launch<Y, A, 4, 4, 1>(y, ldy, xq, xs, wq, ws, bias, M, N, K, accumulate, st); break;
    case 2: gemv_launch<Y, A, 8, 2, 2>(y, ldy, xq, xs, wq, ws, bias, M, N, K, accumulate, st); break;
    case 3: gemv_launch<Y, A, 4, 2, 2>(y, ldy, xq, xs, wq, ws, bias, M, N, K, accumulate, st); break;
    case 4: gemv_launch<Y, A, 8, 2, 1>(y, ldy, xq, xs, wq, ws, bias, M, N, K, accumulate, st); break;
    case 5: gemv_launch<Y, A, 8, 4, 2>(y, ldy, xq, xs, wq, ws, bias, M, N, K, accumulate, st); break;
    /* 16 warps, one step each in flight: measured 9% faster than 8 x 2 over
     * Llama-2-7B's four products at one row (bench/results/h200/w8a8) */
    default: gemv_launch<Y, A, 16, 1, 1>(y, ldy, xq, xs, wq, ws, bias, M, N, K, accumulate, st);
    }
}

int llm_k_w8a8_gemv(int yt, int act, void *y, int ldy, const void *xq, const float *xs,
                    const void *wq, const float *ws, const void *bias, int M, int N, int K,
                    int accumulate, llm_stream_t stream)
{
    if (M <= 0 || N <= 0) return 0;
    if (M > 8 || !llm_k_w8a8_ok(K) || (act != LLM_K_A_FP8 && act != LLM_K_A_INT8))
        return (int)cudaErrorInvalidValue;
    cudaStream_t st = (cudaStream_t)stream;
    DISPATCH_DT(yt, Y, {
        if (act == LLM_K_A_FP8)
            gemv_shape<Y, LLM_K_A_FP8>((Y *)y, ldy, xq, xs, wq, ws, (const Y *)bias, M, N, K,
                                       accumulate, st);
        else
            gemv_shape<Y, LLM_K_A_INT8>((Y *)y, ldy, xq, xs, wq, ws, (const Y *)bias, M, N, K,
                                        accumulate, st);
    });
    return k_status();
}

/* ---- the scales after a GEMM ---------------------------------------------------- */

template <typename Y, typename Acc>
__global__ void w8a8_scale_kernel(Y *y, int ldy, const Acc *acc, const float *xs, const float *ws,
                                  const Y *bias, int M, int N, int accumulate)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)M * N) return;
    int m = (int)(i / N), n = (int)(i % N);
    float v = (float)acc[i] * xs[m] * ws[n];
    if (bias) v += to_f32(bias[n]);
    Y *p = y + (int64_t)m * ldy + n;
    if (accumulate) v += to_f32(*p);
    *p = from_f32<Y>(v);
}

int llm_k_w8a8_scale(int yt, void *y, int ldy, const void *acc, int acc_i32, const float *xs,
                     const float *ws, const void *bias, int M, int N, int accumulate,
                     llm_stream_t stream)
{
    if (M <= 0 || N <= 0) return 0;
    cudaStream_t st = (cudaStream_t)stream;
    int64_t total = (int64_t)M * N;
    unsigned blocks = (unsigned)((total + 255) / 256);
    DISPATCH_DT(yt, Y, {
        if (acc_i32)
            w8a8_scale_kernel<Y, int32_t><<<blocks, 256, 0, st>>>(
                (Y *)y, ldy, (const int32_t *)acc, xs, ws, (const Y *)bias, M, N, accumulate);
        else
            w8a8_scale_kernel<Y, float><<<blocks, 256, 0, st>>>(
                (Y *)y, ldy, (const float *)acc, xs, ws, (const Y *)bias, M, N, accumulate);
    });
    return k_status();
}
