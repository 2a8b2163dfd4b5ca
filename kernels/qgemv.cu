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
#include <string.h>

#include "common.cuh"
#include "q4tile.cuh"

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

/* Sum over the chunk of q[e] * xf[e] (int8), or of (1 + (q + 8) / 16) * xf[e] (int4). */
template <int FMT>
static __device__ __forceinline__ float chunk_dot_s(const uint4 &wv, const float *xf)
{
    const uint32_t wd[4] = {wv.x, wv.y, wv.z, wv.w};
    float d0 = 0.f, d1 = 0.f;
    if (FMT == LLM_K_Q_INT4) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const float *a = xf + 8 * j;
            d0 = fmaf(nib16<0>(wd[j]), a[0], d0);
            d1 = fmaf(nib16<1>(wd[j]), a[1], d1);
            d0 = fmaf(nib16<2>(wd[j]), a[2], d0);
            d1 = fmaf(nib16<3>(wd[j]), a[3], d1);
            d0 = fmaf(nib16<4>(wd[j]), a[4], d0);
            d1 = fmaf(nib16<5>(wd[j]), a[5], d1);
            d0 = fmaf(nib16<6>(wd[j]), a[6], d0);
            d1 = fmaf(nib16<7>(wd[j]), a[7], d1);
        }
    } else {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const float *a = xf + 4 * j;
            d0 = fmaf(dq8(wd[j], 0), a[0], d0);
            d1 = fmaf(dq8(wd[j], 1), a[1], d1);
            d0 = fmaf(dq8(wd[j], 2), a[2], d0);
            d1 = fmaf(dq8(wd[j], 3), a[3], d1);
        }
    }
    return d0 + d1;
}

/* The staged x * pre: quad j (elements 4j..4j+3) of chunk i sits at float4
 * slot j * nch + i, so the 32 lanes of a warp, on consecutive chunks, read 32
 * consecutive float4s (no bank conflicts). */
template <int EPC>
static __device__ __forceinline__ void load_xs(float *xf, const float *base, int nch, int i)
{
#pragma unroll
    for (int j = 0; j < EPC / 4; j++) {
        const float4 v = reinterpret_cast<const float4 *>(base)[j * nch + i];
        xf[4 * j] = v.x, xf[4 * j + 1] = v.y, xf[4 * j + 2] = v.z, xf[4 * j + 3] = v.w;
    }
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
            reinterpret_cast<float4 *>(xsh + p * K)[(k % EPC) / 4 * nch + k / EPC] =
                make_float4(xv[0] * pv.x, xv[1] * pv.y, xv[2] * pv.z, xv[3] * pv.w);
        }
    }
    __syncthreads();
    for (int c = threadIdx.x; c < NP * nch; c += NW * 32) {
        float xf[EPC], a = 0.f;
        load_xs<EPC>(xf, xsh + (c / nch) * K, nch, c % nch);
#pragma unroll
        for (int e = 0; e < EPC; e++) a += xf[e];
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
            float xf[EPC];
#pragma unroll
            for (int r = 0; r < R; r++) {
                if (r == 0 || (NP == 2 && r == RO)) /* one load per pre-quant scale */
                    load_xs<EPC>(xf, xsh + sel[r] * K, nch, i);
                const float d = chunk_dot_s<FMT>(wv[r][u], xf);
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

static bool t2_fits(int gated, int pre, int M, int K);
extern int llm_k_qgemv_shape;

extern "C" int llm_k_qgemv_ok(const struct llm_k_qw *w, int M, int K, int ldx)
{
    if (!w || M < 1 || M > 8 || ldx % 8 || K % 8) return 0;
    if (w->fmt == LLM_K_Q_INT8) return K % 16 == 0;
    if (w->fmt == LLM_K_Q_INT4 && w->tile && w->zq) /* the staged kernel only, as if gated */
        return K % 64 == 0 && (w->group == 32 || w->group == 64 || w->group == 128) &&
               K % w->group == 0 && !w->pre && (llm_k_qgemv_shape == 0 || llm_k_qgemv_shape > 4) &&
               t2_fits(1, 0, M, K);
    if (w->fmt == LLM_K_Q_INT4 && w->tile)
        return K % 64 == 0 && w->group > 0 && w->group % 32 == 0 && K % w->group == 0 && !w->zm &&
               M <= (w->pre ? 4 : 8);
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

/* ---- int4 on tensor cores (the tile layout) ------------------------------------------
 * A warp takes a 16-row tile of W as the A operand of mma.m16n8k16 (f16 or
 * bf16, fp32 accumulators) and up to 8 columns of x as B: one 16-byte load
 * per lane holds the A fragments of four k-steps (64 inputs), and one logic
 * op turns two nibbles into two exact 16-bit numbers (0x6400 | u is 1024 + u
 * in f16, 0x4300 | u is 128 + u in bf16; one packed subtraction leaves q).
 * Two k-steps (32 inputs, inside one group) accumulate, then the group
 * scale multiplies the fp32 result.  x * pre is not exact in 16 bits, so
 * with a pre-quant scale each row of x takes two columns, its 16-bit
 * rounding and the rounding of the rest (x * pre = hi + lo to ~2^-16), and
 * the two columns are added at the end.  The warps of a block split K and
 * add their parts in a fixed order through shared memory. */

extern "C" int llm_k_q4_tile_ok(int N, int K, int has_zero)
{
    return N > 0 && N % 16 == 0 && K > 0 && K % 64 == 0 && !has_zero;
}

/* Position of element (n, k) in the tile layout: byte offset of its word and nibble. */
static inline __host__ __device__ void tile_pos(int64_t n, int64_t k, int64_t K, int64_t *word,
                                                int *nib)
{
    const int64_t tile = (n / 16) * (K / 64) + k / 64;
    const int r = (int)(n % 16), kk = (int)(k % 64), s = kk / 16, c = kk % 16;
    const int lane = (r & 7) * 4 + (c & 7) / 2;
    *nib = (r >> 3) + 2 * (c >> 3) + 4 * (c & 1);
    *word = tile * 128 + lane * 4 + s; /* in 32-bit words */
}

extern "C" void llm_k_q4_tile(uint8_t *dst, const uint8_t *src, int64_t N, int64_t K)
{
    uint32_t *d = (uint32_t *)dst;
    memset(dst, 0, (size_t)(N * K / 2));
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            const int64_t e = n * K + k;
            const uint32_t v = (uint32_t)((src[e / 2] >> (e % 2 ? 4 : 0)) & 0xf) ^ 0x8u;
            int64_t w;
            int j;
            tile_pos(n, k, K, &w, &j);
            d[w] |= v << (4 * j);
        }
}

/* One thread per word of the tile layout: its eight nibbles gathered from
 * the plain [N][K / 2] bytes (the inverse of tile_pos). */
__global__ void q4_tile_kernel(uint32_t *dst, const uint8_t *src, int64_t N, int64_t K)
{
    const int64_t nw = N * K / 8, kt = K / 64;
    for (int64_t w = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; w < nw;
         w += (int64_t)gridDim.x * blockDim.x) {
        const int64_t tile = w / 128;
        const int lane = (int)(w % 128) / 4, s = (int)(w % 4);
        const int64_t n0 = (tile / kt) * 16, k0 = (tile % kt) * 64 + 16 * s;
        uint32_t v = 0;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const int r = (lane >> 2) + 8 * (j & 1);
            const int c = (lane & 3) * 2 + (j >> 2) + 8 * ((j >> 1) & 1);
            const int64_t e = (n0 + r) * K + k0 + c;
            v |= ((uint32_t)((src[e / 2] >> (e % 2 ? 4 : 0)) & 0xf) ^ 0x8u) << (4 * j);
        }
        dst[w] = v;
    }
}

extern "C" int llm_k_q4_tile_dev(uint8_t *dst, const uint8_t *src, int64_t N, int64_t K,
                                 llm_stream_t stream)
{
    if (N <= 0 || N % 16 || K <= 0 || K % 64 || dst == src) return (int)cudaErrorInvalidValue;
    const int64_t nw = N * K / 8;
    const int grid = (int)((nw + 255) / 256 < 65536 ? (nw + 255) / 256 : 65536);
    q4_tile_kernel<<<grid, 256, 0, (cudaStream_t)stream>>>((uint32_t *)dst, src, N, K);
    return (int)cudaGetLastError();
}

/* Two consecutive inputs k, k + 1 of B column g: x rows as they are, or
 * (PRE) row g / 2 times pre, its 16-bit rounding (g even) or the rest (odd). */
template <typename T, bool PRE>
static __device__ __forceinline__ uint32_t b_pair(const T *x, int ldx, const float *pre, int g,
                                                  int ncol, int k)
{
    if (g >= ncol) return 0u;
    if (!PRE) return *reinterpret_cast<const uint32_t *>(x + (int64_t)g * ldx + k);
    const T *xr = x + (int64_t)(g >> 1) * ldx + k;
    const float2 p = *reinterpret_cast<const float2 *>(pre + k);
    const float a = to_f32(xr[0]) * p.x, b = to_f32(xr[1]) * p.y;
    const T ha = from_f32<T>(a), hb = from_f32<T>(b);
    if (!(g & 1)) return tc<T>::pack(to_f32(ha), to_f32(hb));
    return tc<T>::pack(a - to_f32(ha), b - to_f32(hb));
}

/* One block: row tile `blockIdx.x` (GATED: fc tile and the gate tile I / 16
 * tiles further), KS warps over K, U loads in flight per warp and tile. */
template <typename T, int KS, int U, bool GATED, bool PRE>
__global__ void __launch_bounds__(KS * 32)
    qgemv_tc_kernel(T *y, int ldy, const T *x, int ldx, struct llm_k_qw w, const T *bias, int M,
                    int N, int K, int accumulate, int act)
{
    constexpr int NT = GATED ? 2 : 1;
    __shared__ float red[KS][NT][4][32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int nkb = K / 64, ng = K / w.group, ncol = PRE ? 2 * M : M;
    int rt[NT];
    rt[0] = blockIdx.x;
    if (GATED) rt[NT - 1] = blockIdx.x + N / 16;
    const uint4 *wq = reinterpret_cast<const uint4 *>(w.q);
    float acc[NT][4];
#pragma unroll
    for (int i = 0; i < NT; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
    uint4 wv[NT][U];
#pragma unroll
    for (int u = 0; u < U; u++) /* weights first: the previous kernel does not write them */
#pragma unroll
        for (int i = 0; i < NT; i++) {
            const int kb = warp + u * KS;
            wv[i][u] = kb < nkb ? ld_stream(wq + ((int64_t)rt[i] * nkb + kb) * 32 + lane)
                                : make_uint4(0, 0, 0, 0);
        }
    pdl_wait();
    pdl_trigger();
    for (int kb0 = warp;; kb0 += KS * U) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int kb = kb0 + u * KS;
            if (kb >= nkb) break;
#pragma unroll
            for (int c = 0; c < 2; c++) { /* 32 inputs: two k-steps, one group */
                const int k0 = kb * 64 + 32 * c, grp = k0 / w.group;
                uint32_t b[NT][2][2];
#pragma unroll
                for (int i = 0; i < NT; i++) {
                    const float *pre = PRE ? w.pre + (GATED && i ? K : 0) : nullptr;
                    if (i == 0 || PRE) {
#pragma unroll
                        for (int s = 0; s < 2; s++) {
                            b[i][s][0] = b_pair<T, PRE>(x, ldx, pre, g, ncol, k0 + 16 * s + 2 * t);
                            b[i][s][1] = b_pair<T, PRE>(x, ldx, pre, g, ncol, k0 + 16 * s + 2 * t + 8);
                        }
                    } else {
#pragma unroll
                        for (int s = 0; s < 2; s++) b[i][s][0] = b[0][s][0], b[i][s][1] = b[0][s][1];
                    }
                }
#pragma unroll
                for (int i = 0; i < NT; i++) {
                    const uint32_t wd[4] = {wv[i][u].x, wv[i][u].y, wv[i][u].z, wv[i][u].w};
                    float d[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
                    for (int s = 0; s < 2; s++) {
                        const uint32_t word = wd[2 * c + s];
                        uint32_t a[4];
#pragma unroll
                        for (int j = 0; j < 4; j++)
                            a[j] = tc<T>::sub(((word >> (4 * j)) & 0x000f000fu) | tc<T>::magic);
                        tc<T>::mma(d, a, b[i][s][0], b[i][s][1]);
                    }
                    const int r0 = rt[i] * 16 + g;
                    const float s0 = __ldg(w.scale + (int64_t)r0 * ng + grp);
                    const float s1 = __ldg(w.scale + (int64_t)(r0 + 8) * ng + grp);
                    acc[i][0] = fmaf(s0, d[0], acc[i][0]);
                    acc[i][1] = fmaf(s0, d[1], acc[i][1]);
                    acc[i][2] = fmaf(s1, d[2], acc[i][2]);
                    acc[i][3] = fmaf(s1, d[3], acc[i][3]);
                }
            }
        }
        if (kb0 + KS * U >= nkb) break;
#pragma unroll
        for (int u = 0; u < U; u++)
#pragma unroll
            for (int i = 0; i < NT; i++) {
                const int kb = kb0 + KS * U + u * KS;
                wv[i][u] = kb < nkb ? ld_stream(wq + ((int64_t)rt[i] * nkb + kb) * 32 + lane)
                                    : make_uint4(0, 0, 0, 0);
            }
    }
#pragma unroll
    for (int i = 0; i < NT; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) red[warp][i][j][lane] = acc[i][j];
    __syncthreads();
    if (warp) return;
#pragma unroll
    for (int i = 0; i < NT; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float v = 0.f;
#pragma unroll
            for (int q = 0; q < KS; q++) v += red[q][i][j][lane];
            acc[i][j] = v;
        }
    /* thread (g, t): rows r0 = 16 tile + g and r0 + 8, columns 2t and 2t + 1 */
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int r = blockIdx.x * 16 + g + 8 * h;
#pragma unroll
        for (int j = 0; j < 2; j++) {
            int m;
            float v[NT];
            if (PRE) {
                if (j) break;
                m = t;
#pragma unroll
                for (int i = 0; i < NT; i++) v[i] = acc[i][2 * h] + acc[i][2 * h + 1];
            } else {
                m = 2 * t + j;
#pragma unroll
                for (int i = 0; i < NT; i++) v[i] = acc[i][2 * h + j];
            }
            if (m >= M) continue;
            if (bias) {
                v[0] += to_f32(bias[r]);
                if (GATED) v[NT - 1] += to_f32(bias[N + r]);
            }
            T *dst = y + (int64_t)m * ldy + r;
            if (GATED) {
                *dst = from_f32<T>(act_apply(act, v[0]) * v[NT - 1]);
            } else {
                float o = v[0];
                if (accumulate) o += to_f32(*dst);
                *dst = from_f32<T>(o);
            }
        }
    }
}

template <typename T, bool GATED>
static int qlaunch_tc(T *y, int ldy, const T *x, int ldx, const struct llm_k_qw *w, const T *bias,
                      int M, int N, int K, int accumulate, int act, int shape, cudaStream_t st)
{
    if (N % 16 || K % 64 || w->zm || M > (w->pre ? 4 : 8) || (!GATED && w->pre && w->pre_split < N))
        return (int)cudaErrorInvalidValue;
    dim3 grid(N / 16);
#define TC_GO(KS, U)                                                                               \
    (w->pre ? launch_pdl(qgemv_tc_kernel<T, KS, U, GATED, true>, grid, dim3(KS * 32), 0, st, y, ldy, \
                         x, ldx, *w, bias, M, N, K, accumulate, act)                               \
            : launch_pdl(qgemv_tc_kernel<T, KS, U, GATED, false>, grid, dim3(KS * 32), 0, st, y,   \
                         ldy, x, ldx, *w, bias, M, N, K, accumulate, act))
    switch (shape) {
    case 1: return TC_GO(4, 4);
    case 2: return TC_GO(8, 2);
    case 3: return TC_GO(4, 8);
    default: return TC_GO(8, 4); /* 4 */
    }
#undef TC_GO
}

/* ---- int4 tiles with x staged as B fragments (qgemv_t2_kernel) ----------------------
 * The same tile layout and tensor-core product as qgemv_tc_kernel, with the
 * per-chunk work cut to the dequantization and the products:
 * - x (times pre, split into its 16-bit rounding and the rest, once per
 *   block) is staged in shared memory in the order of the mma B fragments,
 *   so a lane takes the B operands of a 64-input chunk with two 16-byte
 *   shared loads whatever M is; lanes whose column g is past the staged
 *   columns read the last one (a D column depends on its B column alone,
 *   and those columns are never stored);
 * - the group is a template parameter (32, 64, 128): no division, the
 *   scale of a group taken once per chunk;
 * - a lop3 with the exponent in a register makes two 16-bit values per
 *   instruction (f16: the nibbles at bits 4-7 are taken in place as
 *   1024 + 16 u and scaled back by the packed FMA that removes the offset,
 *   so a word costs one shift instead of three);
 * - persistent blocks: KS warps split one tile's K (fixed ranges, added in
 *   a fixed order through shared memory), the block walks its tiles, and a
 *   ring of U 16-byte loads per warp runs across the tiles' boundaries, so
 *   the next tile's weights are in flight while this one is combined. */

/* ld_stream when p (a predicated load, no branch); r kept otherwise. */
static __device__ __forceinline__ void ld_stream_if(uint4 &r, const void *a, bool p)
{
    asm volatile("{\n .reg .pred q;\n setp.ne.b32 q, %5, 0;\n"
                 " @q ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n}\n"
                 : "+r"(r.x), "+r"(r.y), "+r"(r.z), "+r"(r.w)
                 : "l"(a), "r"((int)p));
}

static __device__ __forceinline__ uint4 lds128(const uint32_t *p)
{
    return *reinterpret_cast<const uint4 *>(p);
}

/* 1 / sqrt(mean square + eps) of a row from its ks warps' sums of squares
 * (added in warp order). */
static __device__ __forceinline__ float t2_rinv(const float *sq, int ks, int K, float eps)
{
    float q = 0.f;
    for (int j = 0; j < ks; j++) q += sq[j];
    return rsqrtf(q / K + eps);
}

/* Whether each warp stages its own chunks of x (1) or the block all of x behind one
 * barrier (0, LLM_CUDA_T2_WSTAGE=0: for measurement). */
static __constant__ int t2_wstage = 1;

extern "C" int llm_k_set_t2_wstage(int on)
{
    on = on != 0;
    return (int)cudaMemcpyToSymbol(t2_wstage, &on, sizeof on);
}

/* Shared memory of qgemv_t2_kernel: the staged B columns, then the partial sums. */
static size_t t2_smem(int es, int np, int ncol, int K, int ks, int nt)
{
    return (size_t)np * ncol * K * es + (size_t)2 * ks * nt * 128 * sizeof(float);
}

/* Row tiles blockIdx.x, blockIdx.x + gridDim.x, ... (NT 2: the fc tile and
 * the gate tile N / 16 tiles further, y = act(fc) * gate); warp w takes
 * chunks [w J, w J + J) of each tile's K / 64, U of them in flight. */
template <typename T, int NT, int GS, int KS, int U, bool PRE, bool ZP>
__global__ void __launch_bounds__(KS * 32)
    qgemv_t2_kernel(T *y, int ldy, const T *x, int ldx, struct llm_k_qw w, const T *bias, int M,
                    int N, int K, int accumulate, int act, struct llm_k_norm_in nrm)
{
    constexpr int NP = PRE && NT == 2 ? 2 : 1;
    extern __shared__ __align__(16) uint32_t t2sm[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int nkb = K / 64, ncol = PRE ? 2 * M : M, ntile = N / 16, ng = K / GS;
    /* J chunks per warp (even, so a 128-group starts with each warp's range),
     * nv of them inside K; JP positions per tile, a multiple of U */
    const int J = ((nkb + KS - 1) / KS + 1) & ~1, kb0 = warp * J;
    const int nv = max(0, min(J, nkb - kb0)), JP = (J + U - 1) / U * U;
    float *red = reinterpret_cast<float *>(t2sm + (size_t)NP * ncol * K / 2);
    const uint4 *wq = reinterpret_cast<const uint4 *>(w.q) + (int64_t)kb0 * 32 + lane;
    const int64_t tstride = (int64_t)nkb * 32, goff = (int64_t)ntile * tstride; /* in uint4 */

    /* the ring: weights first (the previous kernel does not write them) */
    uint4 wv[U][NT];
    {
        const uint4 *lp = wq + blockIdx.x * tstride;
#pragma unroll
        for (int u = 0; u < U; u++)
#pragma unroll
            for (int i = 0; i < NT; i++)
                wv[u][i] = u < nv ? ld_stream(lp + u * 32 + (i ? goff : 0)) : make_uint4(0, 0, 0, 0);
    }
    pdl_wait();
    pdl_trigger();
    /* a folded RMS norm (nrm.res): x * (w + w_offset) is staged, each warp's
     * sums of squares of the rows go to nsq, and the product is scaled by
     * 1 / sqrt(mean + eps) at the store (a per-row factor), so no barrier
     * waits for the statistics */
    __shared__ float nsq[8 * KS];
    const T *xs = nrm.res ? static_cast<const T *>(nrm.res) : x;
    const int lds = nrm.res ? K : ldx;
    /* stage x (* pre as hi + lo): column c of part p holds, per 64-input chunk,
     * 32 words: word 8 t + 2 s + h = inputs 16 s + 2 t + 8 h, + 1.  A warp reads
     * the B fragments of its own chunks only (kb0 .. kb0 + nv, the same in every
     * tile), so each warp stages those itself and goes on without waiting for the
     * block (LLM_CUDA_T2_WSTAGE=0, for measurement: the block stages all of x
     * behind a barrier); a lane issues its loads for VB vectors together */
    {
        constexpr int VB = PRE ? (NP == 2 ? 1 : 2) : 4; /* registers: the ring is live */
        const int cw = K / 2, step = t2_wstage ? 32 : KS * 32;
        const int v0 = t2_wstage ? kb0 * 8 + lane : (int)threadIdx.x;
        const int v1 = t2_wstage ? (kb0 + nv) * 8 : K / 8;
        for (int m = 0; m < M; m++) {
            float ss = 0.f;
            for (int vb = v0; vb < v1; vb += VB * step) {
                vec<T> xv[VB], gv[VB];
                float4 pv[VB][NP][2];
#pragma unroll
                for (int u = 0; u < VB; u++) {
                    const int k0 = (vb + step * u) * 8;
                    if (vb + step * u >= v1) break;
                    xv[u] = vload(xs + (int64_t)m * lds + k0);
                    if (nrm.res) gv[u] = vload(static_cast<const T *>(nrm.w) + k0);
#pragma unroll
                    for (int p = 0; PRE && p < NP; p++) {
                        const float *pp = w.pre + (int64_t)p * K + k0;
                        pv[u][p][0] = __ldg(reinterpret_cast<const float4 *>(pp));
                        pv[u][p][1] = __ldg(reinterpret_cast<const float4 *>(pp + 4));
                    }
                }
#pragma unroll
                for (int u = 0; u < VB; u++) {
                    const int k0 = (vb + step * u) * 8;
                    if (vb + step * u >= v1) break;
                    if (nrm.res) {
#pragma unroll
                        for (int k = 0; k < 8; k++) {
                            const float f = to_f32(xv[u].v[k]);
                            ss += f * f;
                            xv[u].v[k] = from_f32<T>(f * (to_f32(gv[u].v[k]) + nrm.w_offset));
                        }
                    }
                    const int wo = (k0 >> 6) * 32 + ((k0 >> 4) & 3) * 2 + ((k0 >> 3) & 1);
                    if (!PRE) {
                        const uint32_t *xw = reinterpret_cast<const uint32_t *>(&xv[u].u);
#pragma unroll
                        for (int q = 0; q < 4; q++)
                            t2sm[m * cw + wo + 8 * q] = xw[q];
                    } else {
#pragma unroll
                        for (int p = 0; p < NP; p++) {
                            const float4 p0 = pv[u][p][0], p1 = pv[u][p][1];
                            const float pf[8] = {p0.x, p0.y, p0.z, p0.w, p1.x, p1.y, p1.z, p1.w};
                            uint32_t *hw = t2sm + (size_t)(p * ncol + 2 * m) * cw + wo,
                                     *lw = hw + cw;
#pragma unroll
                            for (int q = 0; q < 4; q++) {
                                const float a = to_f32(xv[u].v[2 * q]) * pf[2 * q],
                                            b = to_f32(xv[u].v[2 * q + 1]) * pf[2 * q + 1];
                                const T ha = from_f32<T>(a), hb = from_f32<T>(b);
                                hw[8 * q] = tc<T>::pack(to_f32(ha), to_f32(hb));
                                lw[8 * q] = tc<T>::pack(a - to_f32(ha), b - to_f32(hb));
                            }
                        }
                    }
                }
            }
            if (nrm.res) {
                ss = warp_sum(ss);
                if (lane == 0) nsq[m * KS + warp] = ss;
            }
        }
    }
    if (t2_wstage)
        __syncwarp();
    else
        __syncthreads();

    const uint32_t *bb[NP];
#pragma unroll
    for (int p = 0; p < NP; p++)
        bb[p] = t2sm + (size_t)(p * ncol + min(g, ncol - 1)) * (K / 2) + (size_t)kb0 * 32 + t * 8;
    float acc[NT][4];
#pragma unroll
    for (int i = 0; i < NT; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
    int buf = 0;
    for (int ct = blockIdx.x; ct < ntile; ct += gridDim.x) {
        const uint4 *cp = wq + ct * tstride; /* this tile's chunks */
        const float *sp[NT];                 /* rows g (and g + 8 at + 8 ng), this warp's first group */
        const int8_t *zp[NT];                /* (ZP) their zero points, likewise */
#pragma unroll
        for (int i = 0; i < NT; i++) {
            const int64_t o = (int64_t)((ct + i * ntile) * 16 + g) * ng + kb0 * 64 / GS;
            sp[i] = w.scale + o;
            zp[i] = ZP ? w.zq + o : nullptr;
        }
        for (int j0 = 0; j0 < JP; j0 += U) {
            /* the loads that refill the ring: U positions on, in this tile or the next */
            const bool wrap = j0 + U >= JP;
            const int jn = wrap ? 0 : j0 + U;
            const uint4 *np = wrap ? wq + (ct + gridDim.x) * tstride : cp + jn * 32;
            const int nvn = wrap && ct + (int)gridDim.x >= ntile ? 0 : nv;
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int j = j0 + u;
                if (j < nv) {
                    uint4 bv[NP][2];
#pragma unroll
                    for (int p = 0; p < NP; p++)
                        bv[p][0] = lds128(bb[p] + j * 32), bv[p][1] = lds128(bb[p] + j * 32 + 4);
#pragma unroll
                    for (int i = 0; i < NT; i++) {
                        const uint4 &b0 = bv[NP == 2 ? i : 0][0], &b1 = bv[NP == 2 ? i : 0][1];
                        const uint32_t bw[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
                        const uint32_t wd[4] = {wv[u][i].x, wv[u][i].y, wv[u][i].z, wv[u][i].w};
                        float d[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
                        uint2 zc[2];
#pragma unroll
                        for (int h = 0; ZP && h < (GS == 32 ? 2 : 1); h++) {
                            const int go = GS == 32 ? 2 * j + h : GS == 64 ? j : j >> 1;
                            zc[h] = t2dq<T>::zc(__ldg(zp[i] + go), __ldg(zp[i] + 8 * ng + go));
                        }
#pragma unroll
                        for (int s = 0; s < 4; s++) {
                            uint32_t a[4];
                            if (ZP)
                                t2dq<T>::a4z(wd[s], a, zc[GS == 32 ? s >> 1 : 0]);
                            else
                                t2dq<T>::a4(wd[s], a);
                            tc<T>::mma(d[GS == 32 ? s >> 1 : 0], a, bw[2 * s], bw[2 * s + 1]);
                        }
#pragma unroll
                        for (int h = 0; h < (GS == 32 ? 2 : 1); h++) {
                            const int go = GS == 32 ? 2 * j + h : GS == 64 ? j : j >> 1;
                            const float s0 = __ldg(sp[i] + go), s1 = __ldg(sp[i] + 8 * ng + go);
                            acc[i][0] = fmaf(s0, d[h][0], acc[i][0]);
                            acc[i][1] = fmaf(s0, d[h][1], acc[i][1]);
                            acc[i][2] = fmaf(s1, d[h][2], acc[i][2]);
                            acc[i][3] = fmaf(s1, d[h][3], acc[i][3]);
                        }
                    }
                }
#pragma unroll
                for (int i = 0; i < NT; i++) ld_stream_if(wv[u][i], np + u * 32 + (i ? goff : 0), jn + u < nvn);
            }
        }
        /* tile ct done: the partial sums through shared memory, added in warp order
         * (two buffers: one barrier a tile) */
        float *r = red + (size_t)buf * KS * NT * 128;
#pragma unroll
        for (int i = 0; i < NT; i++) {
            *reinterpret_cast<float4 *>(r + ((size_t)warp * NT + i) * 128 + lane * 4) =
                make_float4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
            acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
        }
        buf ^= 1;
        __syncthreads();
        const int e = threadIdx.x;
        if (e >= 16 * M) continue;
        const int row = e & 15, m = e >> 4, n = ct * 16 + row;
        /* output (row, m) is column c0 (PRE: c0 and c0 + 1) of D: lane (row % 8) * 4 + c0 / 2,
         * element (row / 8) * 2 + c0 % 2 */
        const int c0 = PRE ? 2 * m : m;
        const int idx = ((row & 7) * 4 + (c0 >> 1)) * 4 + (row >> 3) * 2 + (c0 & 1);
        float v[NT];
#pragma unroll
        for (int i = 0; i < NT; i++) {
            float s = 0.f;
#pragma unroll 4
            for (int q = 0; q < KS; q++) {
                const float *rq = r + ((size_t)q * NT + i) * 128 + idx;
                s += PRE ? rq[0] + rq[1] : rq[0];
            }
            v[i] = s;
        }
        if (nrm.res) {
#pragma unroll
            for (int i = 0; i < NT; i++) v[i] *= t2_rinv(nsq + m * KS, KS, K, nrm.eps);
        }
        if (bias) {
            v[0] += to_f32(bias[n]);
            if (NT == 2) v[NT - 1] += to_f32(bias[N + n]);
        }
        T *dst = y + (int64_t)m * ldy + n;
        if (NT == 2) {
            *dst = from_f32<T>(act_apply(act, v[0]) * v[NT - 1]);
        } else {
            float o = v[0];
            if (accumulate) o += to_f32(*dst);
            *dst = from_f32<T>(o);
        }
    }
    /* the folded norm's rows, as llm_k_norm stores them, for any later reader */
    if (nrm.res && blockIdx.x == 0) {
        const int nvec = K / 8;
        for (int e = threadIdx.x; e < M * nvec; e += KS * 32) {
            const int m = e / nvec, k0 = (e % nvec) * 8;
            const float inv = t2_rinv(nsq + m * KS, KS, K, nrm.eps);
            const vec<T> xv = vload(xs + (int64_t)m * K + k0);
            const vec<T> gv = vload(static_cast<const T *>(nrm.w) + k0);
            vec<T> o;
#pragma unroll
            for (int k = 0; k < 8; k++)
                o.v[k] = from_f32<T>(to_f32(xv.v[k]) * inv * (to_f32(gv.v[k]) + nrm.w_offset));
            vstore(static_cast<T *>(nrm.out) + (int64_t)m * K + k0, o);
        }
    }
}

/* Whether the staged kernel's shared memory (x staged for M rows of K, the
 * partial sums of the widest shape: 16 warps) fits a block: Falcon-180B's
 * down product with a pre-quant scale stages 4 x 59,392 bytes, more than a
 * block may have, and takes the per-lane tile kernel instead. */
static bool t2_fits(int gated, int pre, int M, int K)
{
    static size_t cap;
    if (!cap) {
        int dev = 0, v = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) !=
                cudaSuccess ||
            v < 48 * 1024)
            v = 48 * 1024;
        cap = (size_t)v - 1024; /* the kernel's own static shared memory */
    }
    return t2_smem(2, pre && gated ? 2 : 1, pre ? 2 * M : M, K, 16, gated ? 2 : 1) <= cap;
}

static int t2_sms(void)
{
    static int n;
    if (!n) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n < 1)
            n = 132;
    }
    return n;
}

template <typename T, int NT, int GS, int KS, int U, bool PRE, bool ZP = false>
static int t2_go(T *y, int ldy, const T *x, int ldx, const struct llm_k_qw *w, const T *bias, int M,
                 int N, int K, int accumulate, int act, cudaStream_t st,
                 const struct llm_k_norm_in *nrm)
{
    auto kern = qgemv_t2_kernel<T, NT, GS, KS, U, PRE, ZP>;
    const size_t smem = t2_smem(sizeof(T), PRE && NT == 2 ? 2 : 1, PRE ? 2 * M : M, K, KS, NT);
    static size_t granted = 0, occ_smem; /* the attribute set at first use: the 48 KiB a block
                                          * gets without it include static shared memory */
    static int bps;
    if (smem > granted) {
        cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (e != cudaSuccess) return (int)e;
        granted = smem;
    }
    if (smem != occ_smem) {
        cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&bps, kern, KS * 32, smem);
        if (e != cudaSuccess) return (int)e;
        if (bps < 1) return (int)cudaErrorInvalidConfiguration;
        occ_smem = smem;
    }
    /* as many blocks as fit at once, fewer when that evens out the tiles per block */
    const int ntile = N / 16, slots = t2_sms() * bps, per = (ntile + slots - 1) / slots;
    const int grid = (ntile + per - 1) / per;
    struct llm_k_norm_in none;
    memset(&none, 0, sizeof none);
    return launch_pdl(kern, dim3(grid), dim3(KS * 32), smem, st, y, ldy, x, ldx, *w, bias, M, N,
                      K, accumulate, act, nrm ? *nrm : none);
}

/* Shapes of the staged tile kernel (warps per tile, loads in flight per warp). */
template <typename T, int NT, int GS, bool PRE>
static int t2_shape(int shape, T *y, int ldy, const T *x, int ldx, const struct llm_k_qw *w,
                    const T *bias, int M, int N, int K, int accumulate, int act, cudaStream_t st,
                    const struct llm_k_norm_in *nrm)
{
    /* default (measured, docs/CUDA.md): 8 warps a tile, 8 loads in flight, 4 for the
     * gated pair (two tiles a load) */
    if (shape == 0) shape = NT == 2 ? 5 : 7;
    switch (shape) {
    case 6:
        return t2_go<T, NT, GS, 16, 4, PRE>(y, ldy, x, ldx, w, bias, M, N, K, accumulate, act, st,
                                            nrm);
    case 7:
        return t2_go<T, NT, GS, 8, 8, PRE>(y, ldy, x, ldx, w, bias, M, N, K, accumulate, act, st,
                                           nrm);
    case 8:
        return t2_go<T, NT, GS, 4, 8, PRE>(y, ldy, x, ldx, w, bias, M, N, K, accumulate, act, st,
                                           nrm);
    default:
        return t2_go<T, NT, GS, 8, 4, PRE>(y, ldy, x, ldx, w, bias, M, N, K, accumulate, act, st,
                                           nrm);
    }
}

template <typename T, int NT>
static int qlaunch_t2(T *y, int ldy, const T *x, int ldx, const struct llm_k_qw *w, const T *bias,
                      int M, int N, int K, int accumulate, int act, int shape, cudaStream_t st,
                      const struct llm_k_norm_in *nrm)
{
    /* zero points (no pre-quant scale): the default shape only */
#define T2_ZP(GS)                                                                                  \
    t2_go<T, NT, GS, 8, NT == 2 ? 4 : 8, false, true>(y, ldy, x, ldx, w, bias, M, N, K,            \
                                                      accumulate, act, st, nrm)
    if (w->zq) {
        if (w->pre) return (int)cudaErrorInvalidValue;
        switch (w->group) {
        case 32:
            return T2_ZP(32);
        case 64:
            return T2_ZP(64);
        default:
            return T2_ZP(128);
        }
    }
#undef T2_ZP
#define T2_GS(GS)                                                                                  \
    (w->pre ? t2_shape<T, NT, GS, true>(shape, y, ldy, x, ldx, w, bias, M, N, K, accumulate, act,   \
                                        st, nrm)                                                   \
            : t2_shape<T, NT, GS, false>(shape, y, ldy, x, ldx, w, bias, M, N, K, accumulate, act,  \
                                         st, nrm))
    switch (w->group) {
    case 32: return T2_GS(32);
    case 64: return T2_GS(64);
    default: return T2_GS(128);
    }
#undef T2_GS
}

/* The tile layout: tensor cores, f16 / bf16 only.  Shapes 1..4 the per-lane
 * kernel (qgemv_tc_kernel), others the staged one (groups 32, 64, 128;
 * other groups fall back to the former). */
template <typename T, bool GATED>
static int tc_pick(T *y, int ldy, const T *x, int ldx, const struct llm_k_qw *w, const T *bias,
                   int M, int N, int K, int accumulate, int act, int shape, cudaStream_t st,
                   const struct llm_k_norm_in *nrm)
{
    const int staged = (shape == 0 || shape > 4) &&
                       (w->group == 32 || w->group == 64 || w->group == 128) &&
                       t2_fits(GATED, w->pre != NULL, M, K);
    if (!staged && (nrm || w->zq)) return (int)cudaErrorInvalidValue;
    if (!staged)
        return qlaunch_tc<T, GATED>(y, ldy, x, ldx, w, bias, M, N, K, accumulate, act, shape, st);
    if (N % 16 || K % 64 || (w->zm && !w->zq) || M > (w->pre ? 4 : 8) ||
        (!GATED && w->pre && w->pre_split < N))
        return (int)cudaErrorInvalidValue;
    return qlaunch_t2<T, GATED ? 2 : 1>(y, ldy, x, ldx, w, bias, M, N, K, accumulate, act, shape,
                                        st, nrm);
}

static int tc_route(int dt, int gated, int act, void *y, int ldy, const void *x, int ldx,
                    const struct llm_k_qw *w, const void *bias, int M, int N, int K, int acc,
                    int shape, cudaStream_t st, const struct llm_k_norm_in *nrm = NULL)
{
    if (dt == K_DT_F16)
        return gated ? tc_pick<__half, true>((__half *)y, ldy, (const __half *)x, ldx, w,
                                             (const __half *)bias, M, N, K, 0, act, shape, st, nrm)
                     : tc_pick<__half, false>((__half *)y, ldy, (const __half *)x, ldx, w,
                                              (const __half *)bias, M, N, K, acc, 0, shape, st,
                                              nrm);
    if (dt == K_DT_BF16)
        return gated ? tc_pick<bf16, true>((bf16 *)y, ldy, (const bf16 *)x, ldx, w,
                                           (const bf16 *)bias, M, N, K, 0, act, shape, st, nrm)
                     : tc_pick<bf16, false>((bf16 *)y, ldy, (const bf16 *)x, ldx, w,
                                            (const bf16 *)bias, M, N, K, acc, 0, shape, st, nrm);
    return (int)cudaErrorInvalidValue;
}

extern "C" int llm_k_qgemv(int dt, void *y, int ldy, const void *x, int ldx,
                           const struct llm_k_qw *w, const void *bias, int M, int N, int K,
                           int accumulate, llm_stream_t stream)
{
    if (M <= 0 || N <= 0) return 0;
    if (!llm_k_qgemv_ok(w, M, K, ldx) || ldy < 1) return (int)cudaErrorInvalidValue;
    const int sh = llm_k_qgemv_shape;
    if (w->tile) return tc_route(dt, 0, 0, y, ldy, x, ldx, w, bias, M, N, K, accumulate, sh, stream);
    DISPATCH_DT(dt, T, {
        if (w->fmt == LLM_K_Q_INT4)
            return qgemv_dispatch<T, LLM_K_Q_INT4>(sh, (T *)y, ldy, (const T *)x, ldx, w,
                                                   (const T *)bias, M, N, K, accumulate, stream);
        return qgemv_dispatch<T, LLM_K_Q_INT8>(sh, (T *)y, ldy, (const T *)x, ldx, w,
                                               (const T *)bias, M, N, K, accumulate, stream);
    });
    return 0;
}

extern "C" int llm_k_qgemv_norm_ok(const struct llm_k_qw *w, int kind, int gated, int M, int N,
                                   int K)
{
    const int sh = llm_k_qgemv_shape;
    return kind == LLM_K_NORM_RMS && w && w->fmt == LLM_K_Q_INT4 && w->tile && !w->act &&
           (sh == 0 || sh > 4) && (w->group == 32 || w->group == 64 || w->group == 128) &&
           llm_k_qgemv_ok(w, M, K, K) && N > 0 && N % 16 == 0 &&
           (gated || !w->pre || w->pre_split >= N) && t2_fits(gated, w->pre != NULL, M, K);
}

extern "C" int llm_k_qgemv_norm(int dt, int gated, int act, void *y, int ldy,
                                const struct llm_k_norm_in *nrm, const struct llm_k_qw *w,
                                const void *bias, int M, int N, int K, int accumulate,
                                llm_stream_t stream)
{
    if (M <= 0 || N <= 0) return 0;
    if (!nrm || !nrm->res || !nrm->w || !nrm->out || nrm->b ||
        !llm_k_qgemv_norm_ok(w, nrm->kind, gated, M, N, K) || ldy < 1 ||
        (gated && (act < 0 || act > LLM_K_ACT_RELU)))
        return (int)cudaErrorInvalidValue;
    return tc_route(dt, gated, act, y, ldy, NULL, K, w, bias, M, N, K, gated ? 0 : accumulate,
                    llm_k_qgemv_shape, (cudaStream_t)stream, nrm);
}

extern "C" int llm_k_qgemv_variant(int shape, void *y, const void *x, const struct llm_k_qw *w,
                                   const void *bias, int N, int K, int accumulate,
                                   llm_stream_t stream)
{
    if (N <= 0) return 0;
    if (!llm_k_qgemv_ok(w, 1, K, K)) return (int)cudaErrorInvalidValue;
    typedef bf16 T;
    if (w->tile)
        return tc_route(K_DT_BF16, 0, 0, y, N, x, K, w, bias, 1, N, K, accumulate, shape, stream);
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
    if (w->tile) return tc_route(dt, 1, act, y, ldy, x, ldx, w, bias, M, I, K, 0, sh, stream);
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

/* An e4m3 code as a storage type of the dequantization kernels (W4A8: the
 * int4 codes as fp8 numbers, exact for |q| <= 16). */
struct k_e4m3 {
    uint8_t b;
};
template <> __device__ __forceinline__ k_e4m3 from_f32<k_e4m3>(float x)
{
    return k_e4m3{(uint8_t)__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3)};
}

/* Eight values of T stored at d (16-byte aligned for 16-bit T, 8 for e4m3). */
template <typename T> static __device__ __forceinline__ void store8(T *d, const float *v)
{
    if constexpr (sizeof(T) == 1) {
        union {
            T t[8];
            uint2 u;
        } o;
#pragma unroll
        for (int k = 0; k < 8; k++)
            o.t[k] = from_f32<T>(v[k]);
        *reinterpret_cast<uint2 *>(d) = o.u;
    } else {
        union {
            T t[8];
            uint4 u[sizeof(T) / 2];
        } o;
#pragma unroll
        for (int k = 0; k < 8; k++)
            o.t[k] = from_f32<T>(v[k]);
#pragma unroll
        for (int i = 0; i < (int)sizeof(T) / 2; i++)
            reinterpret_cast<uint4 *>(d)[i] = o.u[i];
    }
}

/* Two values of T at p (4-byte aligned for 16-bit T: one store). */
template <typename T> static __device__ __forceinline__ void store2(T *p, float a, float b)
{
    union {
        T t[2];
        uint32_t u;
    } o;
    o.t[0] = from_f32<T>(a);
    o.t[1] = from_f32<T>(b);
    if constexpr (sizeof(T) == 2)
        *reinterpret_cast<uint32_t *>(p) = o.u;
    else
        p[0] = o.t[0], p[1] = o.t[1];
}

/* dst[n][k] = scale * q + zm for the plain layouts, 8 elements (one int4
 * word, two int8 words) per thread.  The group index is taken once per 8
 * when the group is a multiple of 8, else per element. */
template <typename T, int FMT, bool TAB = false, bool RAW = false>
__global__ void dequant_kernel(T *dst, struct llm_k_qw w0, const struct llm_k_qw *tab, int N, int K)
{
    /* RAW: the codes q alone (no scale, no zero point: llm_k_dequant_codes8) */
    /* TAB: expert blockIdx.y of a table, its pre-quant scale folded in */
    const struct llm_k_qw w = TAB ? tab[blockIdx.y] : w0;
    if (TAB) dst += (int64_t)blockIdx.y * N * K;
    pdl_wait();
    pdl_trigger();
    const int64_t total = (int64_t)N * K / 8;
    const int ng = FMT == LLM_K_Q_INT4 ? K / w.group : 1,
              g8 = FMT == LLM_K_Q_INT4 && w.group % 8 == 0;
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total;
         t += (int64_t)gridDim.x * blockDim.x) {
        const int64_t e0 = t * 8, n = e0 / K;
        const int k0 = (int)(e0 - n * K);
        float v[8];
        if (FMT == LLM_K_Q_INT4) {
            const uint32_t wd = reinterpret_cast<const uint32_t *>(w.q)[t];
            const int64_t g0 = n * ng + k0 / w.group;
#pragma unroll
            for (int k = 0; k < 8; k++) {
                const int64_t gi = g8 ? g0 : n * ng + (k0 + k) / w.group;
                if (RAW) {
                    v[k] = dq4(wd, k);
                    continue;
                }
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
        if (TAB && w.pre) {
            const float *pr = w.pre + (n >= w.pre_split ? K : 0) + k0;
#pragma unroll
            for (int k = 0; k < 8; k++)
                v[k] *= pr[k];
        }
        store8(dst + e0, v);
    }
}

/* The tile layout (llm_k_q4_tile): one warp a 16 x 64 tile at a time.  Each
 * lane reads its 16 bytes (the warp's 512 contiguous bytes), turns its 32
 * nibbles - rows g and g + 8, inputs 16 s + {2t, 2t + 1, 2t + 8, 2t + 9} of
 * each 16-wide step s - into values (scale * q + zm, q = nibble - 8; one
 * group index per row and step where the group is a multiple of 16), puts them in
 * the warp's part of shared memory, and the warp then writes the 16 rows'
 * 64 values as whole 16-byte pieces (eight lanes a row for 16-bit T).  The
 * warps of a block take consecutive tiles along K, so a block writes
 * 8 x 64 contiguous values of each of its 16 rows. */
#define DQT_WARPS 8
template <typename T, bool TAB = false, bool RAW = false>
__global__ void __launch_bounds__(32 * DQT_WARPS)
    dequant_tile_kernel(T *dst, struct llm_k_qw w0, const struct llm_k_qw *tab, int N, int K)
{
    /* RAW: the codes q alone (no scale, no zero point: llm_k_dequant_codes8) */
    constexpr int LD = 64 + 16 / (int)sizeof(T); /* a row in shared memory, padded by 16 bytes */
    __shared__ __align__(16) T sh[DQT_WARPS][16 * LD];
    /* TAB: expert blockIdx.y of a table, its pre-quant scale folded in */
    const struct llm_k_qw w = TAB ? tab[blockIdx.y] : w0;
    if (TAB) dst += (int64_t)blockIdx.y * N * K;
    pdl_wait();
    pdl_trigger();
    const int lane = threadIdx.x & 31, wi = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int64_t kt = K / 64, ntiles = (int64_t)(N / 16) * kt;
    const int ng = K / w.group, g16 = w.group % 16 == 0;
    T *s = sh[wi];
    const int64_t step = (int64_t)gridDim.x * DQT_WARPS;
    const uint4 *wq = reinterpret_cast<const uint4 *>(w.q);
    int64_t tile = blockIdx.x * (int64_t)DQT_WARPS + wi;
    uint4 q = tile < ntiles ? wq[tile * 32 + lane] : make_uint4(0, 0, 0, 0);
    for (; tile < ntiles; tile += step) {
        /* the next tile's codes in flight while this one is written */
        const uint4 qn = tile + step < ntiles ? wq[(tile + step) * 32 + lane] : q;
        const int64_t n0 = (tile / kt) * 16;
        const int k0 = (int)(tile % kt) * 64;
        const uint32_t qw[4] = {q.x, q.y, q.z, q.w};
        q = qn;
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int r = g + 8 * h;
            const int64_t gb = (n0 + r) * ng;
#pragma unroll
            for (int st = 0; st < 4; st++) {
                const int64_t g0 = gb + (k0 + 16 * st) / w.group;
                const float s0 = RAW ? 1.0f : w.scale[g0], z0 = !RAW && w.zm ? w.zm[g0] : 0.0f;
                float v[4];
#pragma unroll
                for (int c = 0; c < 4; c++) { /* nibble j = h + 2 (c >> 1) + 4 (c & 1) */
                    const int j = h + 2 * (c >> 1) + 4 * (c & 1);
                    const float qf =
                        __uint_as_float(((qw[st] >> (4 * j)) & 0xfu) | 0x4b000000u) - 8388616.0f;
                    const int col = k0 + 16 * st + 2 * t + (c & 1) + 8 * (c >> 1);
                    if (RAW) {
                        v[c] = qf;
                    } else if (g16) {
                        v[c] = w.zm ? fmaf(s0, qf, z0) : s0 * qf;
                    } else {
                        const int64_t gi = gb + col / w.group;
                        v[c] = w.zm ? fmaf(w.scale[gi], qf, w.zm[gi]) : w.scale[gi] * qf;
                    }
                    if (TAB && w.pre) v[c] *= w.pre[(n0 + r >= w.pre_split ? K : 0) + col];
                }
                /* columns 2t, 2t + 1 and 2t + 8, 2t + 9 of step st */
                T *p = s + r * LD + 16 * st + 2 * t;
                store2(p, v[0], v[1]);
                store2(p + 8, v[2], v[3]);
            }
        }
        __syncwarp();
        constexpr int CPR = 64 * (int)sizeof(T) / 16, RPP = 32 / CPR; /* 16-byte pieces a row */
        const int pr = lane / CPR, pc = lane % CPR;
#pragma unroll
        for (int r = pr; r < 16; r += RPP)
            *reinterpret_cast<uint4 *>(dst + (n0 + r) * K + k0 + pc * (16 / (int)sizeof(T))) =
                *reinterpret_cast<const uint4 *>(s + r * LD + pc * (16 / (int)sizeof(T)));
        __syncwarp();
    }
}

extern "C" int llm_k_dequant(int dt, void *dst, const struct llm_k_qw *w, int N, int K,
                             llm_stream_t stream)
{
    if (N <= 0) return 0;
    if (K % 8 || (w->fmt == LLM_K_Q_INT4 && (w->group <= 0 || K % w->group)) ||
        (w->tile && (N % 16 || K % 64)) ||
        (w->fmt != LLM_K_Q_INT4 && w->fmt != LLM_K_Q_INT8))
        return (int)cudaErrorInvalidValue;
    if (w->tile) {
        const int64_t tiles = (int64_t)(N / 16) * (K / 64),
                      blocks = (tiles + DQT_WARPS - 1) / DQT_WARPS;
        const int64_t most = (int64_t)k_sms() * 8; /* 8 blocks of 8 warps an SM */
        const int grid = (int)(blocks < most ? blocks : most);
        DISPATCH_DT(dt, T, {
            return launch_pdl(dequant_tile_kernel<T>, dim3(grid), dim3(32 * DQT_WARPS), 0, stream,
                              (T *)dst, *w, (const struct llm_k_qw *)nullptr, N, K);
        });
        return 0;
    }
    const int64_t total = (int64_t)N * K / 8;
    const int grid = (int)(total / 256 + 1 < 132 * 16 ? total / 256 + 1 : 132 * 16);
    DISPATCH_DT(dt, T, {
        if (w->fmt == LLM_K_Q_INT4)
            return launch_pdl(dequant_kernel<T, LLM_K_Q_INT4>, dim3(grid), dim3(256), 0, stream,
                              (T *)dst, *w, (const struct llm_k_qw *)nullptr, N, K);
        return launch_pdl(dequant_kernel<T, LLM_K_Q_INT8>, dim3(grid), dim3(256), 0, stream,
                          (T *)dst, *w, (const struct llm_k_qw *)nullptr, N, K);
    });
    return 0;
}

/* st[g][n] = scale[n][g]: a weight's group scales, output rows innermost
 * (cuBLASLt's 128-element block scales of the weight operand). */
__global__ void scale_t_kernel(float *st, const float *scale, int N, int ng)
{
    pdl_wait();
    pdl_trigger();
    const int64_t total = (int64_t)N * ng;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t g = i / N, n = i - g * N;
        st[i] = scale[n * ng + g];
    }
}

extern "C" int llm_k_dequant_codes8(void *dst, float *scale_t, const struct llm_k_qw *w, int N,
                                    int K, llm_stream_t stream)
{
    if (N <= 0) return 0;
    if (w->fmt != LLM_K_Q_INT4 || w->zm || w->zq || K % 64 || w->group <= 0 || K % w->group ||
        (w->tile && N % 16))
        return (int)cudaErrorInvalidValue;
    const int64_t most = (int64_t)k_sms() * 8;
    if (w->tile) {
        const int64_t blocks = ((int64_t)(N / 16) * (K / 64) + DQT_WARPS - 1) / DQT_WARPS;
        const int grid = (int)(blocks < most ? blocks : most);
        int e =
            launch_pdl(dequant_tile_kernel<k_e4m3, false, true>, dim3(grid), dim3(32 * DQT_WARPS),
                       0, stream, (k_e4m3 *)dst, *w, (const struct llm_k_qw *)nullptr, N, K);
        if (e) return e;
    } else {
        const int64_t blocks = (int64_t)N * K / 8 / 256 + 1;
        const int grid = (int)(blocks < 2 * most ? blocks : 2 * most);
        int e = launch_pdl(dequant_kernel<k_e4m3, LLM_K_Q_INT4, false, true>, dim3(grid), dim3(256),
                           0, stream, (k_e4m3 *)dst, *w, (const struct llm_k_qw *)nullptr, N, K);
        if (e) return e;
    }
    const int64_t ns = (int64_t)N * (K / w->group), sb = ns / 256 + 1;
    return launch_pdl(scale_t_kernel, dim3((int)(sb < most ? sb : most)), dim3(256), 0, stream,
                      scale_t, w->scale, N, K / w->group);
}

extern "C" int llm_k_dequant_experts(int dt, void *dst, const struct llm_k_qw *tab,
                                     const struct llm_k_qw *proto, int E, int N, int K,
                                     llm_stream_t stream)
{
    if (N <= 0 || E <= 0) return 0;
    const struct llm_k_qw *w = proto;
    if (E > 65535 || K % 8 || (w->fmt == LLM_K_Q_INT4 && (w->group <= 0 || K % w->group)) ||
        (w->tile && (N % 16 || K % 64)) || w->act ||
        (w->fmt != LLM_K_Q_INT4 && w->fmt != LLM_K_Q_INT8) || (dt != K_DT_F16 && dt != K_DT_BF16))
        return (int)cudaErrorInvalidValue;
    const int64_t most = (int64_t)k_sms() * 8; /* blocks in flight over every expert */
    int64_t per = (most + E - 1) / E;
    if (w->tile) {
        const int64_t blocks = ((int64_t)(N / 16) * (K / 64) + DQT_WARPS - 1) / DQT_WARPS;
        const int grid = (int)(blocks < per ? blocks : per);
        DISPATCH_DT(dt, T, {
            return launch_pdl(dequant_tile_kernel<T, true>, dim3(grid, E), dim3(32 * DQT_WARPS), 0,
                              stream, (T *)dst, *w, tab, N, K);
        });
        return 0;
    }
    const int64_t blocks = (int64_t)N * K / 8 / 256 + 1;
    const int grid = (int)(blocks < 2 * per ? blocks : 2 * per);
    DISPATCH_DT(dt, T, {
        if (w->fmt == LLM_K_Q_INT4)
            return launch_pdl(dequant_kernel<T, LLM_K_Q_INT4, true>, dim3(grid, E), dim3(256), 0,
                              stream, (T *)dst, *w, tab, N, K);
        return launch_pdl(dequant_kernel<T, LLM_K_Q_INT8, true>, dim3(grid, E), dim3(256), 0,
                          stream, (T *)dst, *w, tab, N, K);
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

/* dst[m][j] = x[m][perm[j]]: the inputs of a weight stored on permuted inputs. */
template <typename T>
__global__ void gather_cols_kernel(T *dst, int ldd, const T *x, int ldx, const int32_t *perm, int M,
                                   int K)
{
    pdl_wait();
    pdl_trigger();
    const int64_t total = (int64_t)M * K;
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total;
         t += (int64_t)gridDim.x * blockDim.x) {
        const int m = (int)(t / K), j = (int)(t - (int64_t)m * K);
        dst[(int64_t)m * ldd + j] = x[(int64_t)m * ldx + __ldg(perm + j)];
    }
}

extern "C" int llm_k_gather_cols(int dt, void *dst, int ldd, const void *x, int ldx,
                                 const int32_t *perm, int M, int K, llm_stream_t stream)
{
    if (M <= 0 || K <= 0) return 0;
    if (dst == x || ldd < K) return (int)cudaErrorInvalidValue;
    const int64_t total = (int64_t)M * K;
    const int grid = (int)(total / 256 + 1 < 132 * 16 ? total / 256 + 1 : 132 * 16);
    DISPATCH_DT(dt, T, {
        return launch_pdl(gather_cols_kernel<T>, dim3(grid), dim3(256), 0, stream, (T *)dst, ldd,
                          (const T *)x, ldx, perm, M, K);
    });
    return 0;
}
