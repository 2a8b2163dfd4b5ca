/* common.cuh - device helpers shared by the kernel files (not a public header).
 *
 * Element types are handled by templates over float, __half and
 * __nv_bfloat16 with to_f32 / from_f32 conversions; memory is moved in
 * 16-byte vectors (struct vec<T>, 4 floats or 8 halves) so every kernel
 * issues full-width coalesced accesses.  dispatch_dt turns the runtime
 * llm_dtype value of a launcher into the template instance.
 */
#ifndef LLM_KERNELS_COMMON_CUH
#define LLM_KERNELS_COMMON_CUH

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <stdint.h>

#include "kernels.h"

/* llm_dtype values used by the launchers (see llm/dtype.h). */
#define K_DT_F32 0
#define K_DT_F16 1
#define K_DT_BF16 2

typedef __nv_bfloat16 bf16;

static __device__ __forceinline__ float to_f32(float x)
{
    return x;
}
static __device__ __forceinline__ float to_f32(__half x)
{
    return __half2float(x);
}
static __device__ __forceinline__ float to_f32(bf16 x)
{
    return __bfloat162float(x);
}

template <typename T> static __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x)
{
    return x;
}
template <> __device__ __forceinline__ __half from_f32<__half>(float x)
{
    return __float2half_rn(x);
}
template <> __device__ __forceinline__ bf16 from_f32<bf16>(float x)
{
    return __float2bfloat16_rn(x);
}

/* 16 bytes of T. */
template <typename T> struct vec {
    static constexpr int N = 16 / sizeof(T);
    union {
        uint4 u;
        T v[N];
    };
};

template <typename T> static __device__ __forceinline__ vec<T> vload(const T *p)
{
    vec<T> r;
    r.u = *reinterpret_cast<const uint4 *>(p);
    return r;
}
template <typename T> static __device__ __forceinline__ void vstore(T *p, const vec<T> &r)
{
    *reinterpret_cast<uint4 *>(p) = r.u;
}

/* A 16-byte load of read-once data (weights) that skips L1, so L1 keeps
 * what is re-read (the activations). */
static __device__ __forceinline__ uint4 ld_stream(const void *p)
{
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
    return r;
}

static __device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ float warp_max(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* The MLP activation act (enum llm_k_act) of x, in fp32. */
static __device__ __forceinline__ float act_apply(int act, float x)
{
    switch (act) {
    case LLM_K_ACT_SILU:
        return x / (1.f + expf(-x));
    case LLM_K_ACT_GELU:
        return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
    case LLM_K_ACT_GELU_TANH:
        return 0.5f * x * (1.f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    default:
        return x > 0.f ? x : 0.f;
    }
}

/* act_apply where the result is rounded to a 16-bit T: SiLU from the fast
 * exponential and division (a few ulp of fp32, far below the rounding; the
 * precise ones made the gated activation bound by instruction issue); fp32
 * keeps the precise forms. */
template <typename T> static __device__ __forceinline__ float act_fast(int act, float x)
{
    if (sizeof(T) == 2 && act == LLM_K_ACT_SILU) return __fdividef(x, 1.f + __expf(-x));
    return act_apply(act, x);
}

/* Sum (MAX false) or maximum over the block (blockDim.x a multiple of 32, at
 * most 1024); every thread gets the result.  sh: 32 floats of shared memory. */
template <bool MAX> static __device__ __forceinline__ float block_reduce(float v, float *sh)
{
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = MAX ? warp_max(v) : warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : MAX ? -INFINITY : 0.f;
    return MAX ? warp_max(v) : warp_sum(v);
}
static __device__ __forceinline__ float block_sum(float v, float *sh)
{
    return block_reduce<false>(v, sh);
}
static __device__ __forceinline__ float block_max(float v, float *sh)
{
    return block_reduce<true>(v, sh);
}

static inline int k_status(void)
{
    return (int)cudaGetLastError();
}

/* U 16-byte vectors of each of R weight rows from vector index i on (lanes
 * 32 apart), zeros past the row's end kv. */
template <typename T, int R, int U>
static __device__ __forceinline__ void load_rows(vec<T> (&wv)[R][U], const T *const (&wr)[R], int i,
                                                 int kv)
{
#pragma unroll
    for (int u = 0; u < U; u++) {
        int j = i + u * 32;
#pragma unroll
        for (int r = 0; r < R; r++)
            wv[r][u].u = j < kv ? ld_stream(wr[r] + j * vec<T>::N) : make_uint4(0, 0, 0, 0);
    }
}

/* acc[r] += the U vectors wv[r] (vector index i on, lanes 32 apart, below len)
 * . x, for each of R rows; fp32 sums. */
template <typename T, int R, int U>
static __device__ __forceinline__ void dot_rows(float *acc, const vec<T> (&wv)[R][U], const T *x,
                                                int i, int len)
{
#pragma unroll
    for (int u = 0; u < U; u++) {
        int j = i + u * 32;
        if (j >= len) break;
        vec<T> xv = vload(x + j * vec<T>::N);
#pragma unroll
        for (int k = 0; k < vec<T>::N; k++) {
            float xf = to_f32(xv.v[k]);
#pragma unroll
            for (int r = 0; r < R; r++) acc[r] += to_f32(wv[r][u].v[k]) * xf;
        }
    }
}

/* Programmatic dependent launch: a kernel launched with launch_pdl may be
 * scheduled while its predecessor on the stream is still finishing; it
 * must call pdl_wait() before touching memory the predecessor writes, and
 * calls pdl_trigger() to let its own successor be scheduled early.  Both
 * are no-ops for a kernel launched the ordinary way. */
extern int llm_k_pdl_on;

static __device__ __forceinline__ void pdl_wait(void)
{
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
}
static __device__ __forceinline__ void pdl_trigger(void)
{
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
}

/* Multiprocessors of the current device (cached at first use). */
static inline int k_sms(void)
{
    static int sms = 0;
    if (!sms) {
        int d = 0, n = 0;
        if (cudaGetDevice(&d) || cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, d) ||
            n <= 0)
            n = 1;
        sms = n;
    }
    return sms;
}

/* How full the last wave of a grid of `blocks` is when `per_sm` blocks fit
 * an SM (1: whole waves; under one wave, the share of slots used).  Blocks of
 * a bandwidth-bound kernel left for a short last wave run a few an SM, far
 * below the copy rate (Llama-2-7B's 4096-row single-row products: 66% of
 * copy in 1.3 waves; batch-1 decode 234.7 -> 241.0 tok/s with them in one). */
template <typename K> static double wave_fill(K kern, int threads, long blocks)
{
    int per_sm = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kern, threads, 0) || per_sm < 1)
        per_sm = 1;
    const double waves = (double)blocks / ((double)per_sm * k_sms());
    return waves / ceil(waves);
}

/* A kernel's entry under programmatic dependent launch: wait for the
 * predecessor, then let the successor be scheduled.  (Triggering first, so
 * a successor's blocks wait resident, and weight loads issued before the
 * wait measured slower end to end; docs/CUDA.md.) */
static __device__ __forceinline__ void pdl_enter(void)
{
    pdl_wait();
    pdl_trigger();
}

template <typename... KArgs, typename... Args>
static int launch_pdl(void (*kern)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t st,
                      Args... args)
{
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = st;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = llm_k_pdl_on;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    cudaError_t e = cudaLaunchKernelEx(&cfg, kern, ((KArgs)args)...);
    return e != cudaSuccess ? (int)e : k_status();
}

/* ---- 8-bit codes: activations (enum llm_k_qact) and the KV cache (enum llm_k_kvq)
 * A value x under a scale is stored as the code of x / scale: e4m3 (nearest
 * even, saturating at 448) or int8 (nearest even, clamped to +-127), the CPU
 * reference's rounding (cpu_quant.c); readers take codes back to fp32
 * exactly and multiply by the scale where it costs least.  Both enums number
 * fp8 1 and int8 2, so either names the code. */
static_assert((int)LLM_K_A_FP8 == (int)LLM_K_KV_FP8 && (int)LLM_K_A_INT8 == (int)LLM_K_KV_INT8,
              "code numbering");
template <int Q> static __device__ __forceinline__ uint8_t code8(float x)
{
    if (Q == LLM_K_KV_FP8) return (uint8_t)__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
    return (uint8_t)(int8_t)fminf(fmaxf(rintf(x), -127.f), 127.f);
}
/* A row's own scale for its codes: max |x| over the largest code (1 for a zero row). */
static __device__ __forceinline__ float code8_scale(int q, float amax)
{
    return amax > 0.f ? amax / (q == LLM_K_KV_FP8 ? 448.0f : 127.0f) : 1.0f;
}

/* The 8-bit codes of N consecutive stored outputs x of attention (struct
 * llm_k_attn's oq: llm_k_quant_act's arithmetic on them) at row, column col;
 * the row's scale too at its first column.  (Out of line it took the decode
 * kernel to 128 registers: inlined.) */
template <typename T, int N>
static __device__ __forceinline__ void attn_codes(const struct llm_k_attn &a, int64_t row, int col,
                                               const T *x)
{
    const int64_t at = row * a.n_heads * a.head_dim + col;
    const float s = *a.oq_scale;
    uint8_t c[N];
#pragma unroll
    for (int k = 0; k < N; k++) {
        float f = to_f32(x[k]);
        if (a.oq_sm) f = f / a.oq_sm[col + k];
        c[k] = a.oq == LLM_K_A_FP8 ? code8<LLM_K_A_FP8>(f / s) : code8<LLM_K_A_INT8>(f / s);
    }
    if constexpr (N == 4)
        *reinterpret_cast<uint32_t *>(a.oq_codes + at) =
            c[0] | c[1] << 8 | c[2] << 16 | (uint32_t)c[3] << 24;
    else if constexpr (N == 2)
        *reinterpret_cast<uint16_t *>(a.oq_codes + at) = (uint16_t)(c[0] | c[1] << 8);
    else
#pragma unroll
        for (int k = 0; k < N; k++) a.oq_codes[at + k] = c[k];
    if (col == 0) a.oq_xs[row] = s;
}

/* N consecutive outputs v of attention at row, column col: stored in o
 * (unless oq without oq_keep) and, with oq, as the codes above.  col is a
 * multiple of N, and the row's width n_heads * head_dim is one of 16. */
template <typename T, int N>
static __device__ __forceinline__ void attn_out(const struct llm_k_attn &a, int64_t row, int col,
                                                const float *v)
{
    union {
        T t[N];
        uint8_t b[N * sizeof(T)];
    } x;
#pragma unroll
    for (int k = 0; k < N; k++) x.t[k] = from_f32<T>(v[k]);
    if (!a.oq || a.oq_keep) {
        T *o = (T *)a.o + row * a.n_heads * a.head_dim + col;
        if constexpr (N * sizeof(T) == 8)
            *reinterpret_cast<uint2 *>(o) = *reinterpret_cast<const uint2 *>(x.b);
        else if constexpr (N * sizeof(T) == 4)
            *reinterpret_cast<uint32_t *>(o) = *reinterpret_cast<const uint32_t *>(x.b);
        else
#pragma unroll
            for (int k = 0; k < N; k++) o[k] = x.t[k];
    }
    if (a.oq) attn_codes<T, N>(a, row, col, x.t);
}

/* Four codes (one 32-bit word, first code in the low byte) as fp32. */
template <int KQ> static __device__ __forceinline__ void kv_decode4(uint32_t w, float *f)
{
    if (KQ == LLM_K_KV_FP8) {
        __half2_raw lo = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(w & 0xffffu), __NV_E4M3);
        __half2_raw hi = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(w >> 16), __NV_E4M3);
        float2 a = __half22float2(*reinterpret_cast<__half2 *>(&lo));
        float2 b = __half22float2(*reinterpret_cast<__half2 *>(&hi));
        f[0] = a.x, f[1] = a.y, f[2] = b.x, f[3] = b.y;
    } else {
        /* code + 128 as the low byte of the float 1.5 * 2^23 (a byte permute instead of
         * a conversion), less 1.5 * 2^23 + 128: exact */
        const uint32_t u = w ^ 0x80808080u;
#pragma unroll
        for (int k = 0; k < 4; k++)
            f[k] = __uint_as_float(__byte_perm(u, 0x4B400000u, 0x7640u + k)) - 12583040.f;
    }
}

/* ---- asynchronous copies and tensor-core fragments (sm_80 and later) ------------ */

/* 16 bytes from device memory into shared memory without passing through
 * registers; zfill: when !valid the 16 bytes are zeros and nothing is read. */
static __device__ __forceinline__ void cp_async16(void *smem, const void *gmem)
{
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
static __device__ __forceinline__ void cp_async16_zfill(void *smem, const void *gmem, bool valid)
{
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n));
}
static __device__ __forceinline__ void cp_commit(void)
{
    asm volatile("cp.async.commit_group;\n" ::);
}
/* Wait until at most N committed groups are still in flight. */
template <int N> static __device__ __forceinline__ void cp_wait(void)
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/* ldmatrix: four (x4) or two (x2) 8x8 matrices of 16-bit elements, each
 * lane giving the address of one 16-byte row (lanes 0-7 the first matrix,
 * 8-15 the second, ...); _t transposes each matrix on the way. */
static __device__ __forceinline__ void ldsm_x4(uint32_t *r, const void *p)
{
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
static __device__ __forceinline__ void ldsm_x4_t(uint32_t *r, const void *p)
{
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
static __device__ __forceinline__ void ldsm_x2(uint32_t *r, const void *p)
{
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(s));
}
static __device__ __forceinline__ void ldsm_x2_t(uint32_t *r, const void *p)
{
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(s));
}
/* movmatrix: the 8x8 matrix of 16-bit elements a warp holds a fragment
 * row at a time (lane l: row l / 4, columns 2 (l % 4) and + 1), transposed. */
static __device__ __forceinline__ uint32_t movm_t(uint32_t x)
{
    uint32_t y;
    asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
    return y;
}

/* mma.sync m16n8k16 with fp32 accumulators, c += a b, for T = __half or bf16
 * inputs; pack: two fp32 values as the input type's pair (the first in the
 * low half). */
template <typename T> struct mma_op;
template <> struct mma_op<__half> {
    static __device__ __forceinline__ void run(float *c, const uint32_t *a, uint32_t b0,
                                               uint32_t b1)
    {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
                     "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ uint32_t pack(float x, float y)
    {
        __half2 h = __floats2half2_rn(x, y);
        return *reinterpret_cast<uint32_t *>(&h);
    }
};
template <> struct mma_op<bf16> {
    static __device__ __forceinline__ void run(float *c, const uint32_t *a, uint32_t b0,
                                               uint32_t b1)
    {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                     "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ uint32_t pack(float x, float y)
    {
        __nv_bfloat162 h = __floats2bfloat162_rn(x, y);
        return *reinterpret_cast<uint32_t *>(&h);
    }
};

#define DISPATCH_DT(dt, T, ...)                                                                    \
    do {                                                                                           \
        if ((dt) == K_DT_F32) {                                                                    \
            typedef float T;                                                                       \
            __VA_ARGS__;                                                                           \
        } else if ((dt) == K_DT_F16) {                                                             \
            typedef __half T;                                                                      \
            __VA_ARGS__;                                                                           \
        } else if ((dt) == K_DT_BF16) {                                                            \
            typedef bf16 T;                                                                        \
            __VA_ARGS__;                                                                           \
        } else {                                                                                   \
            return (int)cudaErrorInvalidValue;                                                     \
        }                                                                                          \
    } while (0)

#endif
