/* calib.cu - calibration statistics reduced where the activations are.
 *
 * llm-quantize's calibration (lib/quant/calib.c) needs, for every linear
 * product over hundreds of thousands of tokens, the max and the sum of |x|
 * per input channel, the overall max, a few hundred sampled rows, and each
 * layer's largest |K| and |V|.  Copying the activations to the host would
 * move hundreds of GB for a 7B model, so the CUDA backend reduces them here
 * into per-weight accumulators that stay on the device until the end.
 *
 * col_stats: a block owns 32 columns; its 32 x CS_RY threads stride over
 * the rows (a warp reads 128 contiguous bytes of one row, four rows in
 * flight), each thread summing |x| in double, then the CS_RY partial sums
 * of a column are added in a fixed order - deterministic, and within
 * rounding of the CPU reference's row-by-row double sum.  The block's
 * maximum goes to *amax by an integer atomicMax on the float's bits
 * (non-negative floats order as their bit patterns).  Sampled rows are
 * written by the same pass (the host has removed duplicate slots).
 */
#include "common.cuh"

#define CS_RY 16 /* row lanes of a col_stats block */

template <typename T>
__global__ void __launch_bounds__(32 * CS_RY)
col_stats_kernel(const T *x, int ldx, int rows, int k, const int32_t *slot, float *sample,
                 float *chan, double *chan_sum, float *amax)
{
    __shared__ double ps[CS_RY][33];
    __shared__ float pm[CS_RY][33];
    pdl_wait();
    pdl_trigger();
    const int tx = threadIdx.x, ty = threadIdx.y, col = blockIdx.x * 32 + tx;
    float m = 0.f;
    double s = 0.0;
    if (col < k) {
        int r = ty;
        for (; r + 3 * CS_RY < rows; r += 4 * CS_RY) {
            float v[4];
#pragma unroll
            for (int u = 0; u < 4; u++) v[u] = to_f32(x[(int64_t)(r + u * CS_RY) * ldx + col]);
#pragma unroll
            for (int u = 0; u < 4; u++) {
                float a = fabsf(v[u]);
                m = fmaxf(m, a);
                s += (double)a;
                if (slot) {
                    int sl = slot[r + u * CS_RY];
                    if (sl >= 0) sample[(int64_t)sl * k + col] = v[u];
                }
            }
        }
        for (; r < rows; r += CS_RY) {
            float v = to_f32(x[(int64_t)r * ldx + col]), a = fabsf(v);
            m = fmaxf(m, a);
            s += (double)a;
            if (slot) {
                int sl = slot[r];
                if (sl >= 0) sample[(int64_t)sl * k + col] = v;
            }
        }
    }
    ps[ty][tx] = s;
    pm[ty][tx] = m;
    __syncthreads();
    if (ty) return;
    double S = 0.0;
    float M = 0.f;
#pragma unroll
    for (int j = 0; j < CS_RY; j++) {
        S += ps[j][tx];
        M = fmaxf(M, pm[j][tx]);
    }
    if (col < k) {
        chan_sum[col] += S;
        chan[col] = fmaxf(chan[col], M);
    }
#pragma unroll
    for (int o = 16; o; o >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
    if (tx == 0 && M > 0.f) atomicMax((int *)amax, __float_as_int(M));
}

extern "C" int llm_k_col_stats(int dt, const void *x, int ldx, int rows, int k,
                               const int32_t *slot, float *sample, float *chan, double *chan_sum,
                               float *amax, llm_stream_t stream)
{
    if (rows <= 0 || k <= 0) return 0;
    if (ldx < k) return (int)cudaErrorInvalidValue;
    DISPATCH_DT(dt, T, {
        return launch_pdl(col_stats_kernel<T>, dim3((k + 31) / 32), dim3(32, CS_RY), 0, stream,
                          (const T *)x, ldx, rows, k, slot, sample, chan, chan_sum, amax);
    });
    return 0;
}

/* One block a row: its K and V values of every KV head, read at the row's
 * slot (block slot / block_size, offset slot % block_size). */
template <typename T>
__global__ void kv_amax_kernel(const T *kv, int64_t blk_stride, int bs, const int32_t *slot,
                               int nkv, int hd, float *amax2)
{
    __shared__ float red[2][32];
    pdl_wait();
    pdl_trigger();
    const int sl = slot[blockIdx.x];
    float mk = 0.f, mv = 0.f;
    if (sl >= 0) {
        const T *base = kv + (int64_t)(sl / bs) * blk_stride + (int64_t)(sl % bs) * hd;
        const int64_t vofs = (int64_t)nkv * bs * hd;
        for (int i = threadIdx.x; i < nkv * hd; i += blockDim.x) {
            int64_t o = (int64_t)(i / hd) * bs * hd + i % hd;
            mk = fmaxf(mk, fabsf(to_f32(base[o])));
            mv = fmaxf(mv, fabsf(to_f32(base[vofs + o])));
        }
    }
#pragma unroll
    for (int o = 16; o; o >>= 1) {
        mk = fmaxf(mk, __shfl_xor_sync(0xffffffffu, mk, o));
        mv = fmaxf(mv, __shfl_xor_sync(0xffffffffu, mv, o));
    }
    const int w = threadIdx.x / 32, nw = blockDim.x / 32;
    if ((threadIdx.x & 31) == 0) red[0][w] = mk, red[1][w] = mv;
    __syncthreads();
    if (threadIdx.x) return;
    for (int j = 1; j < nw; j++) mk = fmaxf(mk, red[0][j]), mv = fmaxf(mv, red[1][j]);
    if (mk > 0.f) atomicMax((int *)&amax2[0], __float_as_int(mk));
    if (mv > 0.f) atomicMax((int *)&amax2[1], __float_as_int(mv));
}

extern "C" int llm_k_kv_amax(int dt, const void *kv, int64_t blk_stride, int block_size,
                             const int32_t *slot, int n, int n_kv_heads, int head_dim,
                             float *amax2, llm_stream_t stream)
{
    if (n <= 0) return 0;
    DISPATCH_DT(dt, T, {
        return launch_pdl(kv_amax_kernel<T>, dim3(n), dim3(128), 0, stream, (const T *)kv,
                          blk_stride, block_size, slot, n_kv_heads, head_dim, amax2);
    });
    return 0;
}
