/* qgemv.cu - weight-only quantized linears (int8 per channel, int4 per group,
 * AWQ's pre-quant scale): a GEMV that dequantizes in registers for a few
 * rows, and for larger row counts a dequantization into a dense scratch
 * that the caller hands to cuBLASLt.
 *
 * Design.  At decode a linear is one pass over its weights, so the GEMV
 * reads the packed weights only (16-byte loads that skip L1, U per row in
 * flight before any arithmetic) and turns each 16-byte chunk (16 int8 or
 * 32 int4 values) into fp32 in registers with integer tricks instead of
 * conversions: an int8 byte goes into the low mantissa bits of the float
 * 2^23 by a byte permute (the float is then 2^23 + 128 + q exactly), an
 * int4 nibble by a shift and one logic op (2^23 + 8 + q); one subtraction
 * gives q exactly.  The products are summed in fp32 per chunk, and the
 * chunk's sum is multiplied by its group's scale (int4: a chunk of 32 lies
 * in one group, groups being multiples of 32) or the row's sum by the
 * channel scale (int8) - the reference's s * q * x up to the order of
 * fp32 additions.  A zero point enters as -s * z times the chunk's sum of
 * x, kept per group next to the scales.  AWQ's pre-quant scale multiplies
 * x as it is loaded (fp32, never rounded).  Bias, the residual add and the
 * gated MLP's act(fc) * gate are fused into the store as in gemv.cu.
 *
 * Layouts (made at upload by the CUDA backend): q [N][K] int8, or [N][K/2]
 * bytes of int4 (element 2i in the low nibble, two's complement) - the
 * artifact's own; scales fp32, int8 [N], int4 [N][K / group] (the
 * artifact's [K / group][N] transposed so a row's scales are contiguous);
 * zm = -scale * zero [N][K / group] or NULL; pre [K] or [2][K] (rows from
 * pre_split on use the second: a gated MLP's stacked fc and gate).
 */
#include "common.cuh"

/* Elements per 16-byte chunk of packed weights. */
template <int FMT> struct qfmt;
template <> struct qfmt<LLM_K_Q_INT8> {
    static constexpr int EPC = 16;
};
template <> struct qfmt<LLM_K_Q_INT4> {
    static constexpr int EPC = 32;
};

/* Signed int8 byte k (0..3) of w as a float, exactly. */
static __device__ __forceinline__ float dq8(uint32_t w, int k)
{
    /* bytes: (w ^ 0x80) byte k, 0, 0, 0x4b -> 2^23 + (q + 128) */
    uint32_t u = __byte_perm(w ^ 0x80808080u, 0x4b000000u, 0x7440u | (uint32_t)k);
    return __uint_as_float(u) - 8388736.0f;
}

/* Signed int4 nibble k (0..7) of w as a float, exactly: 2^23 + (q + 8). */
static __device__ __forceinline__ float dq4(uint32_t w, int k)
{
    uint32_t u = ((w >> (4 * k)) & 0xfu) ^ 0x4b000008u;
    return __uint_as_float(u) - 8388616.0f;
}

/* EPC elements of x (row pointer + chunk offset) as fp32. */
template <typename T, int EPC>
static __device__ __forceinline__ void load_x(float *xf, const T *p)
{
    constexpr int V = vec<T>::N;
#pragma unroll
    for (int j = 0; j < EPC / V; j++) {
        vec<T> v = vload(p + j * V);
#pragma unroll
        for (int k = 0; k < V; k++) xf[j * V + k] = to_f32(v.v[k]);
    }
}

/* Sum over the chunk of q[e] * x[e] (x already multiplied by pre). */
template <int FMT>
static __device__ __forceinline__ float chunk_dot(const uint4 &wv, const float *xf)
{
    const uint32_t wd[4] = {wv.x, wv.y, wv.z, wv.w};
    float d0 = 0.f, d1 = 0.f;
    if (FMT == LLM_K_Q_INT4) {
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int k = 0; k < 8; k += 2) {
                d0 = fmaf(dq4(wd[j], k), xf[8 * j + k], d0);
                d1 = fmaf(dq4(wd[j], k + 1), xf[8 * j + k + 1], d1);
            }
    } else {
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int k = 0; k < 4; k += 2) {
                d0 = fmaf(dq8(wd[j], k), xf[4 * j + k], d0);
                d1 = fmaf(dq8(wd[j], k + 1), xf[4 * j + k + 1], d1);
            }
    }
    return d0 + d1;
}

/* y[m][n] = sum_k x[m][k] pre[k] W[n][k] (+ bias[n]) (+ y[m][n]) for m < M:
 * each warp owns R consecutive rows (GATED: rows j and I + j of the stacked
 * fc/gate matrix, N = I, and stores act(fc) * gate). */
template <typename T, int FMT, int R, int U, int MAXM, bool GATED, bool PRE>
__global__ void __launch_bounds__(128)
    qgemv_kernel(T *y, int ldy, const T *x, int ldx, struct llm_k_qw w, const T *bias, int M,
                 int N, int K, int accumulate, int act)
{
    constexpr int EPC = qfmt<FMT>::EPC, NW = 4;
    pdl_wait();
    pdl_trigger();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int row[R];
    if (GATED) {
        const int j = blockIdx.x * NW + warp;
        if (j >= N) return;
#pragma unroll
        for (int r = 0; r < R; r++) row[r] = j + r * N;
    } else {
        const int n0 = (blockIdx.x * NW + warp) * R;
        if (n0 >= N) return;
#pragma unroll
        for (int r = 0; r < R; r++) row[r] = min(n0 + r, N - 1);
    }
    const int nch = K / EPC;                      /* chunks per row */
    const int64_t rb = (int64_t)nch * 16;         /* bytes per row */
    const int ng = FMT == LLM_K_Q_INT4 ? K / w.group : 1;
    const int cpg = FMT == LLM_K_Q_INT4 ? w.group / EPC : 1; /* chunks per group */
    const char *wr[R];
    const float *pr[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        wr[r] = (const char *)w.q + row[r] * rb;
        pr[r] = PRE ? w.pre + (row[r] >= w.pre_split ? K : 0) : nullptr;
    }
    float acc[R][MAXM];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < MAXM; m++) acc[r][m] = 0.f;

    for (int base = lane; base < nch; base += 32 * U) {
        uint4 wv[R][U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int i = base + u * 32;
#pragma unroll
            for (int r = 0; r < R; r++)
                wv[r][u] = i < nch ? ld_stream(wr[r] + (int64_t)i * 16) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int i = base + u * 32;
            if (i >= nch) break;
            float s[R], zm[R];
#pragma unroll
            for (int r = 0; r < R; r++) {
                if (FMT == LLM_K_Q_INT4) {
                    const int64_t gi = (int64_t)row[r] * ng + i / cpg;
                    s[r] = __ldg(w.scale + gi);
                    zm[r] = w.zm ? __ldg(w.zm + gi) : 0.f;
                } else {
                    s[r] = 1.f;
                    zm[r] = 0.f;
                }
            }
#pragma unroll
            for (int m = 0; m < MAXM; m++) {
                if (m >= M) break;
                float xf[EPC];
                load_x<T, EPC>(xf, x + (int64_t)m * ldx + (int64_t)i * EPC);
#pragma unroll
                for (int r = 0; r < R; r++) {
                    float xs[EPC];
                    float sx = 0.f;
#pragma unroll
                    for (int e = 0; e < EPC; e += 4) {
                        float4 p = PRE ? __ldg(reinterpret_cast<const float4 *>(pr[r] + (int64_t)i * EPC + e))
                                       : make_float4(1.f, 1.f, 1.f, 1.f);
                        xs[e] = xf[e] * p.x;
                        xs[e + 1] = xf[e + 1] * p.y;
                        xs[e + 2] = xf[e + 2] * p.z;
                        xs[e + 3] = xf[e + 3] * p.w;
                    }
                    const float d = chunk_dot<FMT>(wv[r][u], xs);
                    if (FMT == LLM_K_Q_INT4) {
                        acc[r][m] = fmaf(s[r], d, acc[r][m]);
                        if (zm[r] != 0.f) {
#pragma unroll
                            for (int e = 0; e < EPC; e++) sx += xs[e];
                            acc[r][m] = fmaf(zm[r], sx, acc[r][m]);
                        }
                    } else {
                        acc[r][m] += d;
                    }
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < MAXM; m++)
            if (m < M) acc[r][m] = warp_sum(acc[r][m]);
    if (lane >= M) return;
    float v[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        v[r] = 0.f;
#pragma unroll
        for (int m = 0; m < MAXM; m++)
            if (m == lane) v[r] = acc[r][m];
        if (FMT == LLM_K_Q_INT8) v[r] *= __ldg(w.scale + row[r]);
        if (bias) v[r] += to_f32(bias[row[r]]);
    }
    if (GATED) {
        y[(int64_t)lane * ldy + row[0]] = from_f32<T>(act_apply(act, v[0]) * v[R - 1]);
        return;
    }
    const int n0 = (blockIdx.x * NW + warp) * R;
#pragma unroll
    for (int r = 0; r < R; r++) {
        if (n0 + r >= N) break;
        T *dst = y + (int64_t)lane * ldy + row[r];
        float o = v[r];
        if (accumulate) o += to_f32(*dst);
        *dst = from_f32<T>(o);
    }
}

/* ---- one row: x * pre staged in shared memory ------------------------------------
 * The decode case.  Each block first writes x * pre (fp32, one copy per
 * pre-quant scale the block's rows use) and every chunk's sum of it into
 * shared memory - with its first weight loads already in flight - so the
 * inner loop reads x as fp32 once per chunk for all of a warp's rows and
 * converts nothing.  An int4 nibble then costs a shift, one logic op and
 * the FMA: it is placed in the top mantissa bits of 1.0 with its sign bit
 * flipped, f = 1 + (q + 8) / 16 exactly, and sum f x = 1.5 sum x + sum q x /
 * 16, so sum q x = 16 sum f x - 24 sum x (the chunk sum staged above; the
 * cancellation loses at most a few bits of fp32).  int8 bytes keep the exact
 * byte-permute conversion. */

/* 1 + (nibble k of w, sign bit flipped) / 16 as a float. */
template <int k> static __device__ __forceinline__ float nib16(uint32_t w)
{
    const uint32_t s = k <= 4 ? w << (19 - 4 * k) : w >> (4 * k - 19);
    return __uint_as_float((s & 0x00780000u) ^ 0x3fc00000u);
}

template <int FMT>
static __device__ __forceinline__ float chunk_dot_s(const uint4 &wv, const float *xs)
{
    const uint32_t wd[4] = {wv.x, wv.y, wv.z, wv.w};
    float d0 = 0.f, d1 = 0.f;
    if (FMT == LLM_K_Q_INT4) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const float4 a = *reinterpret_cast<const float4 *>(xs + 8 * j);
            const float4 b = *reinterpret_cast<const float4 *>(xs + 8 * j + 4);
            d0 = fmaf(nib16<0>(wd[j]), a.x, d0);
            d1 = fmaf(nib16<1>(wd[j]), a.y, d1);
            d0 = fmaf(nib16<2>(wd[j]), a.z, d0);
            d1 = fmaf(nib16<3>(wd[j]), a.w, d1);
            d0 = fmaf(nib16<4>(wd[j]), b.x, d0);
            d1 = fmaf(nib16<5>(wd[j]), b.y, d1);
            d0 = fmaf(nib16<6>(wd[j]), b.z, d0);
            d1 = fmaf(nib16<7>(wd[j]), b.w, d1);
        }
    } else {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const float4 a = *reinterpret_cast<const float4 *>(xs + 4 * j);
            d0 = fmaf(dq8(wd[j], 0), a.x, d0);
            d1 = fmaf(dq8(wd[j], 1), a.y, d1);
            d0 = fmaf(dq8(wd[j], 2), a.z, d0);
            d1 = fmaf(dq8(wd[j], 3), a.w, d1);
        }
    }
    return d0 + d1;
}

/* Rows per warp R (GATED: R / 2 outputs, fc rows then gate rows), NW warps,
 * U loads in flight per row. */
template <typename T, int FMT, int R, int U, int NW, bool GATED, bool PRE>
__global__ void __launch_bounds__(NW * 32)
    qgemv1_kernel(T *y, const T *x, struct llm_k_qw w, const T *bias, int N, int K,
                  int accumulate, int act)
{
    constexpr int EPC = qfmt<FMT>::EPC, NP = GATED && PRE ? 2 : 1, RO = GATED ? R / 2 : R;
    extern __shared__ float sm[];
    const int nch = K / EPC;
    float *xsh = sm;                  /* [NP][K] */
    float *csum = sm + NP * K;        /* [NP][nch] */
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int o0 = (blockIdx.x * NW + warp) * RO; /* first output of this warp */
    int row[R], sel[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int o = min(o0 + (r % RO), N - 1);
        row[r] = GATED && r >= RO ? N + o : o;
        sel[r] = NP == 2 && r >= RO ? 1 : 0;
    }
    const int64_t rb = (int64_t)nch * 16;
    const int ng = FMT == LLM_K_Q_INT4 ? K / w.group : 1;
    const int cpg = FMT == LLM_K_Q_INT4 ? w.group / EPC : 1;
    const char *wr[R];
#pragma unroll
    for (int r = 0; r < R; r++) wr[r] = (const char *)w.q + row[r] * rb;
    /* the first weight loads go out before x is staged (weights are not written
     * by the previous kernel, so they may be read before pdl_wait) */
    uint4 wv[R][U];
#pragma unroll
    for (int u = 0; u < U; u++)
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int i = lane + u * 32;
            wv[r][u] = i < nch && o0 < N ? ld_stream(wr[r] + (int64_t)i * 16) : make_uint4(0, 0, 0, 0);
        }
    pdl_wait();
    pdl_trigger();
    for (int k = threadIdx.x * 4; k < K; k += NW * 32 * 4) {
        float xv[4];
#pragma unroll
        for (int e = 0; e < 4; e++) xv[e] = to_f32(x[k + e]);
#pragma unroll
        for (int p = 0; p < NP; p++) {
            float4 pv = PRE ? __ldg(reinterpret_cast<const float4 *>(w.pre + (int64_t)p * K + k))
                            : make_float4(1.f, 1.f, 1.f, 1.f);
            *reinterpret_cast<float4 *>(xsh + p * K + k) =
                make_float4(xv[0] * pv.x, xv[1] * pv.y, xv[2] * pv.z, xv[3] * pv.w);
        }
    }
    __syncthreads();
    for (int c = threadIdx.x; c < NP * nch; c += NW * 32) {
        const float *p = xsh + (c / nch) * K + (c % nch) * EPC;
        float a = 0.f;
#pragma unroll
        for (int e = 0; e < EPC; e++) a += p[e];
        csum[c] = a;
    }
    __syncthreads();
    if (o0 >= N) return;
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; r++) acc[r] = 0.f;
    for (int base = lane;; base += 32 * U) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int i = base + u * 32;
            if (i >= nch) break;
#pragma unroll
            for (int r = 0; r < R; r++) {
                const float *xs = xsh + sel[r] * K + i * EPC;
                const float d = chunk_dot_s<FMT>(wv[r][u], xs);
                if (FMT == LLM_K_Q_INT4) {
                    const float sx = csum[sel[r] * nch + i];
                    const int64_t gi = (int64_t)row[r] * ng + i / cpg;
                    acc[r] = fmaf(__ldg(w.scale + gi), fmaf(16.f, d, -24.f * sx), acc[r]);
                    if (w.zm) acc[r] = fmaf(__ldg(w.zm + gi), sx, acc[r]);
                } else {
                    acc[r] += d;
                }
            }
        }
        if (base + 32 * U >= nch) break;
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int i = base + 32 * U + u * 32;
#pragma unroll
            for (int r = 0; r < R; r++)
                wv[r][u] = i < nch ? ld_stream(wr[r] + (int64_t)i * 16) : make_uint4(0, 0, 0, 0);
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++) acc[r] = warp_sum(acc[r]);
    if (lane) return;
    float v[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        v[r] = acc[r];
        if (FMT == LLM_K_Q_INT8) v[r] *= __ldg(w.scale + row[r]);
        if (bias) v[r] += to_f32(bias[row[r]]);
    }
#pragma unroll
    for (int r = 0; r < RO; r++) {
        if (o0 + r >= N) break;
        T *dst = y + o0 + r;
        float o = GATED ? act_apply(act, v[r]) * v[RO + r] : v[r];
        if (!GATED && accumulate) o += to_f32(*dst);
        *dst = from_f32<T>(o);
    }
}

/* Shared memory the staged kernel needs, or 0 when it cannot run (too large). */
static size_t qgemv1_smem(const struct llm_k_qw *w, int K, int gated)
{
    const int epc = w->fmt == LLM_K_Q_INT4 ? 32 : 16, np = gated && w->pre ? 2 : 1;
    size_t b = (size_t)np * ((size_t)K + (size_t)(K / epc)) * 4;
    return b <= 200u * 1024 ? b : 0;
}

template <typename T, int FMT, int R, int U, int NW, bool GATED, bool PRE>
static int qlaunch1_pre(T *y, const T *x, const struct llm_k_qw *w, const T *bias, int N, int K,
                        int accumulate, int act, size_t smem, cudaStream_t st)
{
    auto kern = qgemv1_kernel<T, FMT, R, U, NW, GATED, PRE>;
    static size_t granted = 48 * 1024;
    if (smem > granted) {
        cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             200 * 1024);
        if (e != cudaSuccess) return (int)e;
        granted = 200 * 1024;
    }
    const int outs = NW * (GATED ? R / 2 : R);
    return launch_pdl(kern, dim3((N + outs - 1) / outs), dim3(NW * 32), smem, st, y, x, *w, bias,
                      N, K, accumulate, act);
}

template <typename T, int FMT, int R, int U, int NW, bool GATED>
static int qlaunch1(T *y, const T *x, const struct llm_k_qw *w, const T *bias, int N, int K,
                    int accumulate, int act, cudaStream_t st)
{
    size_t smem = qgemv1_smem(w, K, GATED);
    if (!smem) return (int)cudaErrorInvalidValue;
    if (w->pre)
        return qlaunch1_pre<T, FMT, R, U, NW, GATED, true>(y, x, w, bias, N, K, accumulate, act,
                                                           smem, st);
    return qlaunch1_pre<T, FMT, R, U, NW, GATED, false>(y, x, w, bias, N, K, accumulate, act, smem,
                                                        st);
}

template <typename T, int FMT, int R, int U, int MAXM, bool GATED>
static int qlaunch(T *y, int ldy, const T *x, int ldx, const struct llm_k_qw *w, const T *bias,
                   int M, int N, int K, int accumulate, int act, cudaStream_t st)
{
    const int per_block = GATED ? 4 : 4 * R;
    dim3 grid((N + per_block - 1) / per_block);
    if (w->pre)
        return launch_pdl(qgemv_kernel<T, FMT, R, U, MAXM, GATED, true>, grid, dim3(128), 0, st, y,
                          ldy, x, ldx, *w, bias, M, N, K, accumulate, act);
    return launch_pdl(qgemv_kernel<T, FMT, R, U, MAXM, GATED, false>, grid, dim3(128), 0, st, y,
                      ldy, x, ldx, *w, bias, M, N, K, accumulate, act);
}

extern "C" int llm_k_qgemv_ok(const struct llm_k_qw *w, int M, int K, int ldx)
{
    if (!w || M < 1 || M > 8 || ldx % 8 || K % 8) return 0;
    if (w->fmt == LLM_K_Q_INT8) return K % 16 == 0;
    if (w->fmt == LLM_K_Q_INT4) return K % 32 == 0 && w->group > 0 && w->group % 32 == 0 && K % w->group == 0;
    return 0;
}

/* Tile shapes: (rows per warp, 16-byte loads in flight per row). */
int llm_k_qgemv_shape = 0;

extern "C" void llm_k_set_qgemv_shape(int shape)
{
    llm_k_qgemv_shape = shape;
}

template <typename T, int FMT>
static int qgemv_dispatch(int shape, T *y, int ldy, const T *x, int ldx, const struct llm_k_qw *w,
                          const T *bias, int M, int N, int K, int accumulate, cudaStream_t st)
{
    if (M > 1 || !qgemv1_smem(w, K, 0))
        return qlaunch<T, FMT, 2, 2, 8, false>(y, ldy, x, ldx, w, bias, M, N, K, accumulate, 0, st);
    switch (shape) {
    case 1: return qlaunch1<T, FMT, 4, 4, 8, false>(y, x, w, bias, N, K, accumulate, 0, st);
    case 2: return qlaunch1<T, FMT, 2, 8, 4, false>(y, x, w, bias, N, K, accumulate, 0, st);
    case 3: return qlaunch1<T, FMT, 4, 2, 4, false>(y, x, w, bias, N, K, accumulate, 0, st);
    case 4: return qlaunch1<T, FMT, 1, 8, 8, false>(y, x, w, bias, N, K, accumulate, 0, st);
    case 5: return qlaunch<T, FMT, 2, 4, 1, false>(y, ldy, x, ldx, w, bias, M, N, K, accumulate, 0, st);
    default: return qlaunch1<T, FMT, 2, 4, 8, false>(y, x, w, bias, N, K, accumulate, 0, st);
    }
}

extern "C" int llm_k_qgemv(int dt, void *y, int ldy, const void *x, int ldx,
                           const struct llm_k_qw *w, const void *bias, int M, int N, int K,
                           int accumulate, llm_stream_t stream)
{
    if (M <= 0 || N <= 0) return 0;
    if (!llm_k_qgemv_ok(w, M, K, ldx) || ldy < 1) return (int)cudaErrorInvalidValue;
    const int sh = llm_k_qgemv_shape;
    DISPATCH_DT(dt, T, {
        if (w->fmt == LLM_K_Q_INT4)
            return qgemv_dispatch<T, LLM_K_Q_INT4>(sh, (T *)y, ldy, (const T *)x, ldx, w,
                                                   (const T *)bias, M, N, K, accumulate, stream);
        return qgemv_dispatch<T, LLM_K_Q_INT8>(sh, (T *)y, ldy, (const T *)x, ldx, w,
                                               (const T *)bias, M, N, K, accumulate, stream);
    });
    return 0;
}

extern "C" int llm_k_qgemv_variant(int shape, void *y, const void *x, const struct llm_k_qw *w,
                                   const void *bias, int N, int K, int accumulate,
                                   llm_stream_t stream)
{
    if (N <= 0) return 0;
    if (!llm_k_qgemv_ok(w, 1, K, K)) return (int)cudaErrorInvalidValue;
    typedef bf16 T;
    if (w->fmt == LLM_K_Q_INT4)
        return qgemv_dispatch<T, LLM_K_Q_INT4>(shape, (T *)y, N, (const T *)x, K, w,
                                               (const T *)bias, 1, N, K, accumulate, stream);
    return qgemv_dispatch<T, LLM_K_Q_INT8>(shape, (T *)y, N, (const T *)x, K, w, (const T *)bias,
                                           1, N, K, accumulate, stream);
}

extern "C" int llm_k_qgemv_gated(int dt, int act, void *y, int ldy, const void *x, int ldx,
                                 const struct llm_k_qw *w, const void *bias, int M, int I, int K,
                                 llm_stream_t stream)
{
    if (M <= 0 || I <= 0) return 0;
    if (!llm_k_qgemv_ok(w, M, K, ldx) || ldy < 1 || act < 0 || act > LLM_K_ACT_RELU)
        return (int)cudaErrorInvalidValue;
    const int one = M == 1 && qgemv1_smem(w, K, 1), sh = llm_k_qgemv_shape;
    DISPATCH_DT(dt, T, {
        if (w->fmt == LLM_K_Q_INT4) {
            if (one && sh == 1)
                return qlaunch1<T, LLM_K_Q_INT4, 4, 4, 8, true>((T *)y, (const T *)x, w,
                                                                (const T *)bias, I, K, 0, act, stream);
            if (one)
                return qlaunch1<T, LLM_K_Q_INT4, 2, 4, 8, true>((T *)y, (const T *)x, w,
                                                                (const T *)bias, I, K, 0, act, stream);
            return qlaunch<T, LLM_K_Q_INT4, 2, 2, 8, true>((T *)y, ldy, (const T *)x, ldx, w,
                                                           (const T *)bias, M, I, K, 0, act, stream);
        }
        if (one && sh == 1)
            return qlaunch1<T, LLM_K_Q_INT8, 4, 4, 8, true>((T *)y, (const T *)x, w, (const T *)bias,
                                                            I, K, 0, act, stream);
        if (one)
            return qlaunch1<T, LLM_K_Q_INT8, 2, 4, 8, true>((T *)y, (const T *)x, w, (const T *)bias,
                                                            I, K, 0, act, stream);
        return qlaunch<T, LLM_K_Q_INT8, 2, 2, 8, true>((T *)y, ldy, (const T *)x, ldx, w,
                                                       (const T *)bias, M, I, K, 0, act, stream);
    });
    return 0;
}

/* ---- the dense path for many rows --------------------------------------------- */

/* dst[n][k] = scale * (q - zero) for rows [0, N), 8 elements per thread. */
template <typename T, int FMT>
__global__ void dequant_kernel(T *dst, struct llm_k_qw w, int N, int K)
{
    pdl_wait();
    pdl_trigger();
    const int64_t total = (int64_t)N * K / 8;
    const int ng = FMT == LLM_K_Q_INT4 ? K / w.group : 1;
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total;
         t += (int64_t)gridDim.x * blockDim.x) {
        const int64_t e0 = t * 8, n = e0 / K;
        const int k0 = (int)(e0 - n * K);
        float v[8];
        if (FMT == LLM_K_Q_INT4) {
            const uint32_t wd = reinterpret_cast<const uint32_t *>(w.q)[t];
#pragma unroll
            for (int k = 0; k < 8; k++) {
                const int64_t gi = n * ng + (k0 + k) / w.group;
                const float s = w.scale[gi];
                v[k] = w.zm ? fmaf(s, dq4(wd, k), w.zm[gi]) : s * dq4(wd, k);
            }
        } else {
            const uint2 wd = reinterpret_cast<const uint2 *>(w.q)[t];
            const float s = w.scale[n];
#pragma unroll
            for (int k = 0; k < 4; k++) {
                v[k] = s * dq8(wd.x, k);
                v[4 + k] = s * dq8(wd.y, k);
            }
        }
        T o[8];
#pragma unroll
        for (int k = 0; k < 8; k++) o[k] = from_f32<T>(v[k]);
        T *d = dst + e0;
#pragma unroll
        for (int k = 0; k < 8; k++) d[k] = o[k];
    }
}

extern "C" int llm_k_dequant(int dt, void *dst, const struct llm_k_qw *w, int N, int K,
                             llm_stream_t stream)
{
    if (N <= 0) return 0;
    if (K % 8 || (w->fmt == LLM_K_Q_INT4 && (w->group <= 0 || K % w->group)) ||
        (w->fmt != LLM_K_Q_INT4 && w->fmt != LLM_K_Q_INT8))
        return (int)cudaErrorInvalidValue;
    const int64_t total = (int64_t)N * K / 8;
    const int grid = (int)(total / 256 + 1 < 132 * 16 ? total / 256 + 1 : 132 * 16);
    DISPATCH_DT(dt, T, {
        if (w->fmt == LLM_K_Q_INT4)
            return launch_pdl(dequant_kernel<T, LLM_K_Q_INT4>, dim3(grid), dim3(256), 0, stream,
                              (T *)dst, *w, N, K);
        return launch_pdl(dequant_kernel<T, LLM_K_Q_INT8>, dim3(grid), dim3(256), 0, stream,
                          (T *)dst, *w, N, K);
    });
    return 0;
}

/* dst[m][k] = x[m][k] * pre[k], rounded once. */
template <typename T>
__global__ void prescale_kernel(T *dst, int ldd, const T *x, int ldx, const float *pre, int M, int K)
{
    pdl_wait();
    pdl_trigger();
    const int64_t total = (int64_t)M * K;
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total;
         t += (int64_t)gridDim.x * blockDim.x) {
        const int m = (int)(t / K), k = (int)(t - (int64_t)m * K);
        dst[(int64_t)m * ldd + k] = from_f32<T>(to_f32(x[(int64_t)m * ldx + k]) * pre[k]);
    }
}

extern "C" int llm_k_prescale(int dt, void *dst, int ldd, const void *x, int ldx,
                              const float *pre, int M, int K, llm_stream_t stream)
{
    if (M <= 0 || K <= 0) return 0;
    const int64_t total = (int64_t)M * K;
    const int grid = (int)(total / 256 + 1 < 132 * 16 ? total / 256 + 1 : 132 * 16);
    DISPATCH_DT(dt, T, {
        return launch_pdl(prescale_kernel<T>, dim3(grid), dim3(256), 0, stream, (T *)dst, ldd,
                          (const T *)x, ldx, pre, M, K);
    });
    return 0;
}
