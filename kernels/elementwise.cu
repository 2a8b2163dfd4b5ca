/* elementwise.cu - the memory-bound kernels: embedding gather, norms with
 * the residual add fused in, gated activations, residual add, row gather,
 * dtype conversion and KV block copies.
 *
 * Design: each kernel makes one pass over its data in 16-byte vectors.  The
 * norm keeps its row in registers (up to 8 vectors per thread, one block
 * per row) so the residual add, the statistics and the scaled output cost a
 * single read of each input and a single write of each output.  All
 * arithmetic is fp32; results are rounded once when stored.
 */
#include "common.cuh"
#include "llm/dtype.h"
#include "llm/random.h"

int llm_k_pdl_on = 1;

extern "C" void llm_k_set_pdl(int on)
{
    llm_k_pdl_on = on != 0;
}

/* ---- embedding ----------------------------------------------------------- */

template <typename T>
__global__ void embed_kernel(T *out, const T *table, const int32_t *tokens, const T *pos_table,
                             const int32_t *pos, int hidden, float scale)
{
    constexpr int V = vec<T>::N;
    pdl_enter();
    int r = blockIdx.x;
    const T *src = table + (int64_t)tokens[r] * hidden;
    const T *psrc = pos_table ? pos_table + (int64_t)pos[r] * hidden : nullptr;
    T *dst = out + (int64_t)r * hidden;
    for (int i = threadIdx.x * V; i < hidden; i += blockDim.x * V) {
        vec<T> a = vload(src + i), o;
        if (psrc) {
            vec<T> p = vload(psrc + i);
#pragma unroll
            for (int k = 0; k < V; k++) o.v[k] = from_f32<T>(to_f32(a.v[k]) * scale + to_f32(p.v[k]));
        } else {
#pragma unroll
            for (int k = 0; k < V; k++) o.v[k] = from_f32<T>(to_f32(a.v[k]) * scale);
        }
        vstore(dst + i, o);
    }
}

extern "C" int llm_k_embed(int dt, void *out, const void *table, const int32_t *tokens,
                           const void *pos_table, const int32_t *pos, int n, int hidden,
                           float scale, llm_stream_t stream)
{
    if (n <= 0) return 0;
    if (hidden % 8) return (int)cudaErrorInvalidValue;
    DISPATCH_DT(dt, T, {
        int nv = hidden / vec<T>::N;
        int nt = nv < 256 ? ((nv + 31) / 32) * 32 : 256;
        return launch_pdl(embed_kernel<T>, dim3(n), dim3(nt), 0, stream, (T *)out,
                          (const T *)table, tokens, (const T *)pos_table, pos, hidden, scale);
    });
    return 0;
}

/* ---- norms ---------------------------------------------------------------- */

/* NV vectors of the row a thread (a block a row), all loaded - the residual,
 * the addend, the weights and bias - before the first store, which loads may
 * not be moved past; the row stays in registers as its stored values. */
template <typename T, int NV>
__global__ void __launch_bounds__(NV == 1 ? 1024 : 512)
    norm_kernel(int kind, T *out, T *res, const T *add, const T *w, const T *b, float w_offset,
                int n, float eps, int qact, uint8_t *xq, float *xs, const float *qscale)
{
    constexpr int V = vec<T>::N;
    __shared__ float sh[32];
    pdl_enter();
    int64_t r = blockIdx.x;
    int nv = n / V;
    T *xr = res + r * n;
    const T *ar = add ? add + r * n : nullptr;
    vec<T> xv[NV], dv[NV], wv[NV], bv[NV];
#pragma unroll
    for (int c = 0; c < NV; c++) {
        int i = threadIdx.x + c * blockDim.x;
        if (i < nv) {
            xv[c] = vload(xr + i * V);
            if (ar) dv[c] = vload(ar + i * V);
            wv[c] = vload(w + i * V);
            if (b) bv[c] = vload(b + i * V);
        }
    }
    float s = 0.f;
#pragma unroll
    for (int c = 0; c < NV; c++) {
        int i = threadIdx.x + c * blockDim.x;
        if (i < nv) {
            if (ar) {
#pragma unroll
                for (int k = 0; k < V; k++)
                    xv[c].v[k] = from_f32<T>(to_f32(xv[c].v[k]) + to_f32(dv[c].v[k]));
                vstore(xr + i * V, xv[c]);
            }
#pragma unroll
            for (int k = 0; k < V; k++) {
                const float x = to_f32(xv[c].v[k]);
                s += kind == LLM_K_NORM_RMS ? x * x : x;
            }
        }
    }
    s = block_sum(s, sh);
    float mean = 0.f, inv;
    if (kind == LLM_K_NORM_RMS) {
        inv = rsqrtf(s / n + eps);
    } else {
        mean = s / n;
        float q = 0.f;
#pragma unroll
        for (int c = 0; c < NV; c++) {
            int i = threadIdx.x + c * blockDim.x;
            if (i < nv) {
#pragma unroll
                for (int k = 0; k < V; k++) {
                    const float x = to_f32(xv[c].v[k]);
                    q += (x - mean) * (x - mean);
                }
            }
        }
        q = block_sum(q, sh);
        inv = rsqrtf(q / n + eps);
    }
    T *orow = out + r * n;
#pragma unroll
    for (int c = 0; c < NV; c++) {
        int i = threadIdx.x + c * blockDim.x;
        if (i < nv) {
#pragma unroll
            for (int k = 0; k < V; k++) {
                float y = (to_f32(xv[c].v[k]) - mean) * inv * (to_f32(wv[c].v[k]) + w_offset);
                if (b) y += to_f32(bv[c].v[k]);
                xv[c].v[k] = from_f32<T>(y); /* the stored value, for the 8-bit rows */
            }
            vstore(orow + i * V, xv[c]);
        }
    }
    if (!qact) return;
    /* the stored row rounded to 8 bits as llm_k_quant_act rounds it: the static scale, or
     * (0) the row's max |y| / 448 or / 127 */
    float qs = qscale ? *qscale : 0.f;
    if (qs <= 0.f) { /* block-uniform: every thread read the same scale */
        float mx = 0.f;
#pragma unroll
        for (int c = 0; c < NV; c++)
            if (threadIdx.x + c * blockDim.x < nv)
#pragma unroll
                for (int k = 0; k < V; k++) mx = fmaxf(mx, fabsf(to_f32(xv[c].v[k])));
        mx = block_max(mx, sh);
        qs = code8_scale(qact, mx);
    }
    if (threadIdx.x == 0) xs[r] = qs;
    uint8_t *qrow = xq + r * n;
#pragma unroll
    for (int c = 0; c < NV; c++) {
        int i = threadIdx.x + c * blockDim.x;
        if (i < nv) {
            uint32_t wq[V / 4];
#pragma unroll
            for (int k4 = 0; k4 < V / 4; k4++) {
                wq[k4] = 0;
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    float v = to_f32(xv[c].v[4 * k4 + j]) / qs;
                    uint8_t q = qact == LLM_K_A_FP8 ? code8<LLM_K_A_FP8>(v) : code8<LLM_K_A_INT8>(v);
                    wq[k4] |= (uint32_t)q << (8 * j);
                }
            }
            if constexpr (V == 8)
                *reinterpret_cast<uint2 *>(qrow + i * V) = make_uint2(wq[0], wq[1]);
            else
                *reinterpret_cast<uint32_t *>(qrow + i * V) = wq[0];
        }
    }
}

extern "C" int llm_k_norm(int dt, int kind, void *out, void *res, const void *add, const void *w,
                          const void *b, float w_offset, int rows, int n, float eps,
                          llm_stream_t stream)
{
    return llm_k_norm_q(dt, kind, out, res, add, w, b, w_offset, rows, n, eps, LLM_K_A_NONE, NULL,
                        NULL, NULL, stream);
}

extern "C" int llm_k_norm_q(int dt, int kind, void *out, void *res, const void *add,
                            const void *w, const void *b, float w_offset, int rows, int n,
                            float eps, int act, void *xq, float *xs, const float *act_scale,
                            llm_stream_t stream)
{
    if (rows <= 0) return 0;
    if (n % 8 || (kind != LLM_K_NORM_RMS && kind != LLM_K_NORM_LAYER) ||
        (act != LLM_K_A_NONE && act != LLM_K_A_FP8 && act != LLM_K_A_INT8) ||
        (act && (!xq || !xs)))
        return (int)cudaErrorInvalidValue;
    /* rows that fit the device at one vector a thread (132 SMs x 2048 threads)
     * take one (short latency); more rows, four; more where the row needs them
     * (up to 8 x 512) */
    const int nv = n / (dt == K_DT_F32 ? 4 : 8);
    int nvec = (int64_t)rows * nv <= (int64_t)k_sms() * 2048 ? 1 : 4;
    while (nvec == 1 ? nv > 1024 : nv > 512 * nvec) nvec *= 2;
    if (nvec > 8) return (int)cudaErrorInvalidValue;
    int nt = (nv + nvec - 1) / nvec;
    nt = (nt + 31) / 32 * 32;
#define NORM_GO(NV)                                                                                \
    launch_pdl(norm_kernel<T, NV>, dim3(rows), dim3(nt), 0, stream, kind, (T *)out, (T *)res,      \
               (const T *)add, (const T *)w, (const T *)b, w_offset, n, eps, act, (uint8_t *)xq,   \
               xs, act_scale)
    DISPATCH_DT(dt, T, {
        switch (nvec) {
        case 1: return NORM_GO(1);
        case 2: return NORM_GO(2);
        case 4: return NORM_GO(4);
        default: return NORM_GO(8);
        }
    });
#undef NORM_GO
    return 0;
}

/* ---- rotary embedding + KV append ----------------------------------------- */

/* A K or V head's vector x (dims at..at + V of the pool) into the cache: the
 * values, or their 8-bit codes of x / sc divided as the reference does. */
template <typename T, int KQ>
static __device__ __forceinline__ void kv_put(void *kv, int64_t at, const vec<T> &x, float sc)
{
    constexpr int V = vec<T>::N;
    if constexpr (KQ == LLM_K_KV_NONE) {
        vstore((T *)kv + at, x);
    } else {
        uint32_t w[V / 4];
#pragma unroll
        for (int k = 0; k < V / 4; k++) {
            w[k] = 0;
#pragma unroll
            for (int j = 0; j < 4; j++)
                w[k] |= (uint32_t)code8<KQ>(to_f32(x.v[4 * k + j]) / sc) << (8 * j);
        }
        uint8_t *dst = (uint8_t *)kv + at;
        if constexpr (V == 8)
            *reinterpret_cast<uint2 *>(dst) = make_uint2(w[0], w[1]);
        else
            *reinterpret_cast<uint32_t *>(dst) = w[0];
    }
}

/* The pool offset of dim d of K/V head kvh (0..2 nkv - 1: K heads, then V
 * heads) at slot s: K at the block's base, V one head-set further; within
 * it [head][slot][dim]. */
static __device__ __forceinline__ int64_t kv_at(int s, int kvh, int d, int64_t blk_stride,
                                                int block_size, int head_dim)
{
    const int blk = s / block_size, off = s - blk * block_size;
    return (int64_t)blk * blk_stride + ((int64_t)kvh * block_size + off) * head_dim + d;
}

/* x' = x c - y s, y' = y c + x s with the products rounded separately, as
 * the reference does (no FMA). */
static __device__ __forceinline__ void rot2(float &x, float &y, float2 cs)
{
    const float a = x, b = y;
    x = __fsub_rn(__fmul_rn(a, cs.x), __fmul_rn(b, cs.y));
    y = __fadd_rn(__fmul_rn(b, cs.x), __fmul_rn(a, cs.y));
}

/* One thread per unit of a row: a rotated unit is V dims of a q or k head
 * (V / 2 interleaved pairs) or, neox, V dims at i and their partners at i +
 * half; a plain unit is V dims of a K or V head to be cached as they are
 * (the unrotated tail of a partial rotary, a V head, or any K head without
 * rope).  A thread's loads all go out before its stores, and a row's units
 * are spread over blockIdx.y, so a step's rows cost one round trip to
 * memory rather than one a head.  Needs half (neox) or rot_dims a multiple
 * of V (rope_kv_kernel serves other shapes). */
template <typename T, int KQ>
__global__ void rope_kv_vec_kernel(T *qkv, const float2 *rope, const int32_t *pos,
                                   const int32_t *slot, void *kv, int64_t blk_stride,
                                   int block_size, int n_heads, int n_kv_heads, int head_dim,
                                   int rot_dims, int neox, float k_scale, float v_scale)
{
    constexpr int V = vec<T>::N;
    pdl_enter();
    const int64_t r = blockIdx.x;
    const int nqk = n_heads + n_kv_heads, nall = nqk + n_kv_heads, dv = head_dim / V;
    const int half = rot_dims / 2, nr = rope ? nqk : 0; /* rotated heads */
    const int hv = neox ? half / V : 0, uq = dv - hv;   /* units of a rotated head */
    const int u = blockIdx.y * blockDim.x + threadIdx.x;
    T *row = qkv + r * (int64_t)nall * head_dim;
    const int s = slot[r];
    if (u < nr * uq) {
        const int h = u / uq, j = u - h * uq;
        T *x = row + h * head_dim;
        const bool rot = neox ? j < hv : j * V < rot_dims;
        const bool cache = h >= n_heads && s >= 0;
        if (!rot) { /* the unrotated tail: only a K head's goes anywhere */
            if (!cache) return;
            const int d = (j + hv) * V;
            kv_put<T, KQ>(kv, kv_at(s, h - n_heads, d, blk_stride, block_size, head_dim),
                          vload(x + d), k_scale);
            return;
        }
        const float2 *tab = rope + (int64_t)pos[r] * half;
        if (neox) {
            const int d = j * V;
            vec<T> a = vload(x + d), b = vload(x + d + half);
            float2 cs[V];
#pragma unroll
            for (int k = 0; k < V; k += 2) {
                const float4 c2 = *reinterpret_cast<const float4 *>(tab + d + k);
                cs[k] = make_float2(c2.x, c2.y), cs[k + 1] = make_float2(c2.z, c2.w);
            }
#pragma unroll
            for (int k = 0; k < V; k++) {
                float fa = to_f32(a.v[k]), fb = to_f32(b.v[k]);
                rot2(fa, fb, cs[k]);
                a.v[k] = from_f32<T>(fa), b.v[k] = from_f32<T>(fb);
            }
            vstore(x + d, a), vstore(x + d + half, b);
            if (cache) {
                const int64_t at = kv_at(s, h - n_heads, d, blk_stride, block_size, head_dim);
                kv_put<T, KQ>(kv, at, a, k_scale), kv_put<T, KQ>(kv, at + half, b, k_scale);
            }
        } else {
            const int d = j * V;
            vec<T> a = vload(x + d);
            float2 cs[V / 2];
#pragma unroll
            for (int k = 0; k < V / 2; k += 2) {
                const float4 c2 = *reinterpret_cast<const float4 *>(tab + d / 2 + k);
                cs[k] = make_float2(c2.x, c2.y), cs[k + 1] = make_float2(c2.z, c2.w);
            }
#pragma unroll
            for (int k = 0; k < V / 2; k++) {
                float fx = to_f32(a.v[2 * k]), fy = to_f32(a.v[2 * k + 1]);
                rot2(fx, fy, cs[k]);
                a.v[2 * k] = from_f32<T>(fx), a.v[2 * k + 1] = from_f32<T>(fy);
            }
            vstore(x + d, a);
            if (cache)
                kv_put<T, KQ>(kv, kv_at(s, h - n_heads, d, blk_stride, block_size, head_dim), a,
                              k_scale);
        }
        return;
    }
    /* plain heads: V heads after rotated q and k, or K and V heads without rope */
    const int u2 = u - nr * uq, h0 = rope ? nqk : n_heads;
    const int h = h0 + u2 / dv, d = (u2 - (u2 / dv) * dv) * V;
    if (h >= nall || s < 0) return;
    const int kvh = h - n_heads;
    kv_put<T, KQ>(kv, kv_at(s, kvh, d, blk_stride, block_size, head_dim),
                  vload(row + h * head_dim + d), kvh < n_kv_heads ? k_scale : v_scale);
}

/* The general shape (any even rot_dims): a block per row, or per four heads
 * of a row when there are few rows; pairs rotated one at a time. */
template <typename T, int KQ>
__global__ void rope_kv_kernel(T *qkv, const float2 *rope, const int32_t *pos, const int32_t *slot,
                               void *kv, int64_t blk_stride, int block_size, int n_heads,
                               int n_kv_heads, int head_dim, int rot_dims, int neox, int hpb,
                               float k_scale, float v_scale)
{
    constexpr int V = vec<T>::N;
    pdl_enter();
    const int64_t r = blockIdx.x;
    const int nqk = n_heads + n_kv_heads, nall = nqk + n_kv_heads;
    const int h0 = blockIdx.y * hpb, h1 = min(h0 + hpb, nall);
    T *row = qkv + r * (int64_t)nall * head_dim;
    if (rope && h0 < nqk) {
        int half = rot_dims / 2;
        const float2 *tab = rope + (int64_t)pos[r] * half;
        int items = (min(h1, nqk) - h0) * half;
        for (int it = threadIdx.x; it < items; it += blockDim.x) {
            int hh = it / half, i = it - hh * half;
            T *x = row + (h0 + hh) * head_dim;
            int i1 = neox ? i : 2 * i, i2 = neox ? i + half : 2 * i + 1;
            float a = to_f32(x[i1]), b = to_f32(x[i2]);
            rot2(a, b, tab[i]);
            x[i1] = from_f32<T>(a);
            x[i2] = from_f32<T>(b);
        }
        __syncthreads();
    }
    const int s = slot[r];
    const int c0 = max(h0, n_heads), c1 = h1; /* k and v heads of this block */
    if (s < 0 || c0 >= c1) return;
    const int dv = head_dim / V;
    for (int e = threadIdx.x; e < (c1 - c0) * dv; e += blockDim.x) {
        int hh = c0 + e / dv, d = (e % dv) * V;
        int kvh = hh - n_heads;
        kv_put<T, KQ>(kv, kv_at(s, kvh, d, blk_stride, block_size, head_dim),
                      vload(row + hh * head_dim + d), kvh < n_kv_heads ? k_scale : v_scale);
    }
}

extern "C" int llm_k_rope_kv(int dt, void *qkv, const float *rope, const int32_t *pos,
                             const int32_t *slot, void *kv, int64_t blk_stride, int block_size,
                             int n, int n_heads, int n_kv_heads, int head_dim, int rot_dims,
                             int neox, int kv_q, float k_scale, float v_scale,
                             llm_stream_t stream)
{
    if (n <= 0) return 0;
    if (head_dim % 8 || rot_dims % 2 || rot_dims > head_dim || kv_q < 0 ||
        kv_q > LLM_K_KV_INT8 || (kv_q && (head_dim % 16 || !(k_scale > 0.f) || !(v_scale > 0.f))))
        return (int)cudaErrorInvalidValue;
    const int nall = n_heads + 2 * n_kv_heads, half = rot_dims / 2;
#define ROPE_KV_VEC(KQ)                                                                            \
    launch_pdl(rope_kv_vec_kernel<T, KQ>, grid, dim3(128), 0, stream, (T *)qkv,                    \
               (const float2 *)rope, pos, slot, kv, blk_stride, block_size, n_heads, n_kv_heads,   \
               head_dim, rot_dims, neox, k_scale, v_scale)
#define ROPE_KV_GEN(KQ)                                                                            \
    launch_pdl(rope_kv_kernel<T, KQ>, grid, dim3(128), 0, stream, (T *)qkv, (const float2 *)rope,  \
               pos, slot, kv, blk_stride, block_size, n_heads, n_kv_heads, head_dim, rot_dims,     \
               neox, hpb, k_scale, v_scale)
    DISPATCH_DT(dt, T, {
        constexpr int V = vec<T>::N;
        if (!rope || (neox ? half % V == 0 : rot_dims % V == 0)) {
            /* units of a row (rope_kv_vec_kernel), 128 threads a block */
            const int dv = head_dim / V, nr = rope ? n_heads + n_kv_heads : 0;
            const int units =
                nr * (dv - (neox ? half / V : 0)) + (nall - (rope ? nr : n_heads)) * dv;
            const dim3 grid(n, (units + 127) / 128);
            if (kv_q == LLM_K_KV_FP8) return ROPE_KV_VEC(LLM_K_KV_FP8);
            if (kv_q == LLM_K_KV_INT8) return ROPE_KV_VEC(LLM_K_KV_INT8);
            return ROPE_KV_VEC(LLM_K_KV_NONE);
        }
        /* other shapes: few tokens spread their heads over blocks; many, a block a token */
        const int hpb = n >= 64 ? nall : 4;
        const dim3 grid(n, (nall + hpb - 1) / hpb);
        if (kv_q == LLM_K_KV_FP8) return ROPE_KV_GEN(LLM_K_KV_FP8);
        if (kv_q == LLM_K_KV_INT8) return ROPE_KV_GEN(LLM_K_KV_INT8);
        return ROPE_KV_GEN(LLM_K_KV_NONE);
    });
#undef ROPE_KV_VEC
#undef ROPE_KV_GEN
    return 0;
}

/* ---- activations ------------------------------------------------------------ */

/* Q != 0: the row's stored (rounded) values also go out as 8-bit codes of
 * x / smoother[j] / s under the static scale s = *as, as llm_k_quant_act
 * rounds them (act_in and code8 there), with s into xs[row]; keep == 0: the
 * codes alone (the rows' bytes stay). */
template <typename T, int Q>
__global__ void act_kernel(int act, int gated, int keep, T *h, int rows, int inter, uint8_t *xq,
                           float *xs, const float *as, const float *sm)
{
    constexpr int V = vec<T>::N;
    pdl_enter();
    /* a thread a vector: column block x, rows y (and gridDim.y on) */
    const int j = (blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (j >= inter) return;
    const int64_t stride = gated ? 2 * (int64_t)inter : inter;
    const float s = Q ? *as : 1.f;
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        T *p = h + r * stride + j;
        vec<T> a = vload(p), o;
        if (gated) {
            vec<T> g = vload(p + inter);
#pragma unroll
            for (int k = 0; k < V; k++)
                o.v[k] = from_f32<T>(act_fast<T>(act, to_f32(a.v[k])) * to_f32(g.v[k]));
        } else {
#pragma unroll
            for (int k = 0; k < V; k++) o.v[k] = from_f32<T>(act_fast<T>(act, to_f32(a.v[k])));
        }
        if (Q == 0 || keep) vstore(p, o);
        if constexpr (Q != 0) {
            uint8_t c[V];
#pragma unroll
            for (int k = 0; k < V; k++) {
                float v = to_f32(o.v[k]);
                if (sm) v = v / sm[j + k];
                c[k] = code8<Q>(v / s);
            }
            uint8_t *dst = xq + (int64_t)r * inter + j;
            if constexpr (V == 8) {
                uint2 w;
                w.x = c[0] | c[1] << 8 | c[2] << 16 | (uint32_t)c[3] << 24;
                w.y = c[4] | c[5] << 8 | c[6] << 16 | (uint32_t)c[7] << 24;
                *reinterpret_cast<uint2 *>(dst) = w;
            } else {
                *reinterpret_cast<uint32_t *>(dst) = c[0] | c[1] << 8 | c[2] << 16 | (uint32_t)c[3] << 24;
            }
            if (j == 0) xs[r] = s;
        }
    }
}

static int grid_for(int64_t work, int nt)
{
    int64_t g = (work + nt - 1) / nt;
    if (g > 132 * 32) g = 132 * 32;
    return g < 1 ? 1 : (int)g;
}

extern "C" int llm_k_act_q(int dt, int act, int gated, void *h, int rows, int inter, int qact,
                           int keep, void *xq, float *xs, const float *act_scale,
                           const float *smoother, llm_stream_t stream)
{
    if (rows <= 0) return 0;
    if (inter % 8 || act < 0 || act > LLM_K_ACT_RELU || qact < LLM_K_A_NONE ||
        qact > LLM_K_A_INT8 || (qact && (!xq || !xs || !act_scale)))
        return (int)cudaErrorInvalidValue;
    /* 128 threads a block (a row of a few thousand vectors spreads over
     * ten-odd blocks), rows along y */
    const int nvb = (inter / (dt == K_DT_F32 ? 4 : 8) + 127) / 128;
    const dim3 grid(nvb, rows < 65535 ? rows : 65535);
#define ACT_Q(Q)                                                                                   \
    launch_pdl(act_kernel<T, Q>, grid, dim3(128), 0, stream, act, gated, keep, (T *)h, rows,       \
               inter, (uint8_t *)xq, xs, act_scale, smoother)
    DISPATCH_DT(dt, T, {
        if (qact == LLM_K_A_FP8) return ACT_Q(LLM_K_A_FP8);
        if (qact == LLM_K_A_INT8) return ACT_Q(LLM_K_A_INT8);
        return ACT_Q(LLM_K_A_NONE);
    });
#undef ACT_Q
    return 0;
}

extern "C" int llm_k_act(int dt, int act, int gated, void *h, int rows, int inter,
                         llm_stream_t stream)
{
    return llm_k_act_q(dt, act, gated, h, rows, inter, LLM_K_A_NONE, 1, NULL, NULL, NULL, NULL,
                       stream);
}

/* ---- residual add -------------------------------------------------------------- */

/* y += x over n elements (n a multiple of the vector width), in fp32, rounded once. */
template <typename T> __global__ void add_kernel(T *y, const T *x, int64_t nv)
{
    constexpr int V = vec<T>::N;
    pdl_enter();
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < nv;
         t += (int64_t)gridDim.x * blockDim.x) {
        vec<T> a = vload(y + t * V), b = vload(x + t * V), o;
#pragma unroll
        for (int k = 0; k < V; k++) o.v[k] = from_f32<T>(to_f32(a.v[k]) + to_f32(b.v[k]));
        vstore(y + t * V, o);
    }
}

extern "C" int llm_k_add(int dt, void *y, const void *x, int64_t n, llm_stream_t stream)
{
    if (n <= 0) return 0;
    if (n % 8) return (int)cudaErrorInvalidValue;
    DISPATCH_DT(dt, T, {
        int64_t nv = n / vec<T>::N;
        return launch_pdl(add_kernel<T>, dim3(grid_for(nv, 256)), dim3(256), 0, stream, (T *)y,
                          (const T *)x, nv);
    });
    return 0;
}

/* ---- clamp, soft cap, per-head q/k norms ---------------------------------------- */

template <typename T> __global__ void clamp_kernel(T *x, int64_t n, float lim)
{
    pdl_enter();
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float v = to_f32(x[i]);
        x[i] = from_f32<T>(fminf(fmaxf(v, -lim), lim));
    }
}

extern "C" int llm_k_clamp(int dt, void *x, int64_t n, float lim, llm_stream_t stream)
{
    if (n <= 0) return 0;
    DISPATCH_DT(dt, T, {
        return launch_pdl(clamp_kernel<T>, dim3(grid_for(n, 256)), dim3(256), 0, stream, (T *)x,
                          n, lim);
    });
    return 0;
}

template <typename T> __global__ void scale_kernel(T *x, int64_t n, float k)
{
    pdl_enter();
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        x[i] = from_f32<T>(to_f32(x[i]) * k);
}

extern "C" int llm_k_scale(int dt, void *x, int64_t n, float k, llm_stream_t stream)
{
    if (n <= 0) return 0;
    DISPATCH_DT(dt, T, {
        return launch_pdl(scale_kernel<T>, dim3(grid_for(n, 256)), dim3(256), 0, stream, (T *)x, n,
                          k);
    });
    return 0;
}

__global__ void softcap_kernel(float *x, int64_t n, float cap)
{
    pdl_enter();
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        x[i] = tanhf(x[i] / cap) * cap;
}

extern "C" int llm_k_softcap_f32(float *x, int64_t n, float cap, llm_stream_t stream)
{
    if (n <= 0) return 0;
    return launch_pdl(softcap_kernel, dim3(grid_for(n, 256)), dim3(256), 0, stream, x, n, cap);
}

/* One warp per (row, head): the head's head_dim values normalised in place. */
template <typename T>
__global__ void qk_norm_kernel(int kind, T *qkv, int stride, int heads, int n_q, int hd,
                               const T *wq, const T *wk, int per_head, float w_offset, float eps)
{
    pdl_enter();
    int r = blockIdx.x, h = blockIdx.y * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (h >= heads) return;
    T *x = qkv + (int64_t)r * stride + (int64_t)h * hd;
    const T *w = h < n_q ? wq : wk;
    if (per_head) w += (int64_t)(h < n_q ? h : h - n_q) * hd;
    float s = 0.f, s2 = 0.f;
    for (int i = lane; i < hd; i += 32) {
        float v = to_f32(x[i]);
        s += v;
        s2 += v * v;
    }
    s = warp_sum(s);
    s2 = warp_sum(s2);
    float mean = kind == LLM_K_NORM_LAYER ? s / hd : 0.f;
    float var = kind == LLM_K_NORM_LAYER ? fmaxf(s2 / hd - mean * mean, 0.f) : s2 / hd;
    float inv = rsqrtf(var + eps);
    for (int i = lane; i < hd; i += 32)
        x[i] = from_f32<T>((to_f32(x[i]) - mean) * inv * (to_f32(w[i]) + w_offset));
}

extern "C" int llm_k_qk_norm(int dt, int kind, void *qkv, int stride, int rows, int n_heads,
                             int n_kv_heads, int head_dim, const void *wq, const void *wk,
                             int per_head, float w_offset, float eps, llm_stream_t stream)
{
    if (rows <= 0) return 0;
    int heads = n_heads + n_kv_heads, per_block = 4;
    DISPATCH_DT(dt, T, {
        return launch_pdl(qk_norm_kernel<T>, dim3(rows, (heads + per_block - 1) / per_block),
                          dim3(32 * per_block), 0, stream, kind, (T *)qkv, stride, heads, n_heads,
                          head_dim, (const T *)wq, (const T *)wk, per_head, w_offset, eps);
    });
    return 0;
}

/* One block per (row, q or k): the sum of squares over the whole width, then
 * each value times rsqrt(mean + eps) times (w_offset + w), rounded once. */
template <typename T>
__global__ void qk_norm_all_kernel(T *qkv, int stride, int q_width, int k_width, const T *wq,
                                   const T *wk, float w_offset, float eps)
{
    __shared__ float sh[32];
    pdl_enter();
    const int k = blockIdx.y, n = k ? k_width : q_width;
    T *x = qkv + (int64_t)blockIdx.x * stride + (k ? q_width : 0);
    const T *w = k ? wk : wq;
    float s = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = to_f32(x[i]);
        s += v * v;
    }
    const float inv = rsqrtf(block_sum(s, sh) / (float)n + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        x[i] = from_f32<T>(to_f32(x[i]) * inv * (to_f32(w[i]) + w_offset));
}

extern "C" int llm_k_qk_norm_all(int dt, void *qkv, int stride, int rows, int q_width, int k_width,
                                 const void *wq, const void *wk, float w_offset, float eps,
                                 llm_stream_t stream)
{
    if (rows <= 0) return 0;
    if (q_width <= 0 || k_width <= 0) return (int)cudaErrorInvalidValue;
    DISPATCH_DT(dt, T, {
        return launch_pdl(qk_norm_all_kernel<T>, dim3(rows, 2), dim3(256), 0, stream, (T *)qkv,
                          stride, q_width, k_width, (const T *)wq, (const T *)wk, w_offset, eps);
    });
    return 0;
}

/* ---- row gather -------------------------------------------------------------- */

template <typename T>
__global__ void gather_kernel(T *out, const T *in, const int32_t *rows, int width)
{
    constexpr int V = vec<T>::N;
    pdl_enter();
    int r = blockIdx.x;
    const T *src = in + (int64_t)rows[r] * width;
    T *dst = out + (int64_t)r * width;
    for (int i = threadIdx.x * V; i < width; i += blockDim.x * V) vstore(dst + i, vload(src + i));
}

extern "C" int llm_k_gather(int dt, void *out, const void *in, const int32_t *rows, int n,
                            int width, llm_stream_t stream)
{
    if (n <= 0) return 0;
    if (width % 8) return (int)cudaErrorInvalidValue;
    DISPATCH_DT(dt, T, {
        return launch_pdl(gather_kernel<T>, dim3(n), dim3(128), 0, stream, (T *)out,
                          (const T *)in, rows, width);
    });
    return 0;
}

/* ---- conversion ------------------------------------------------------------------ */

template <typename D, typename S> __global__ void convert_kernel(D *dst, const S *src, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = from_f32<D>(to_f32(src[i]));
}

extern "C" int llm_k_convert(void *dst, int dst_dt, const void *src, int src_dt, int64_t n,
                             llm_stream_t stream)
{
    if (n <= 0) return 0;
    int g = grid_for(n, 256);
    DISPATCH_DT(dst_dt, D, {
        DISPATCH_DT(src_dt, S, {
            convert_kernel<D, S><<<g, 256, 0, stream>>>((D *)dst, (const S *)src, n);
        });
    });
    return k_status();
}

/* ---- random weights ------------------------------------------------------------- */

/* Element i of a random tensor (llm/random.h), rounded to the type S it
 * would be stored in, written as D: the values llm-convert --random writes
 * and the host upload would produce. */
template <typename D, typename S>
__global__ void fill_random_kernel(D *dst, int64_t n, int64_t first, uint64_t state, int fill)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float v = fill == LLM_RAND_NORMAL ? llm_rand_value(state, (uint64_t)(first + i))
                  : fill == LLM_RAND_ONE  ? 1.0f
                                          : 0.0f;
        dst[i] = from_f32<D>(to_f32(from_f32<S>(v)));
    }
}

/* A quantized weight's codes (llm/random.h): byte k is element k's code
 * (e4m3, int8), or elements 2k and 2k + 1 (int4, low nibble first) - the
 * bytes llm_rand_tensor makes on the host. */
__global__ void fill_random_q_kernel(uint8_t *dst, int64_t nbytes, int64_t n, int64_t first,
                                     uint64_t state, int fill, int dt)
{
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < nbytes;
         k += (int64_t)gridDim.x * blockDim.x) {
        if (dt == LLM_DTYPE_I4) {
            dst[k] =
                llm_rand_i4_byte(state, (uint64_t)(first / 2 + k), (uint64_t)(first + n), fill);
        } else {
            float v = llm_rand_fill_value(state, (uint64_t)(first + k), fill);
            dst[k] = dt == LLM_DTYPE_F8E4M3 ? llm_rand_to_e4m3(v) : (uint8_t)llm_rand_to_i8(v);
        }
    }
}

extern "C" int llm_k_fill_random(void *dst, int dst_dt, int stored_dt, int64_t n, int64_t first,
                                 uint64_t state, int fill, llm_stream_t stream)
{
    if (n <= 0) return 0;
    if (first < 0) return (int)cudaErrorInvalidValue;
    if (stored_dt == LLM_DTYPE_F8E4M3 || stored_dt == LLM_DTYPE_I8 || stored_dt == LLM_DTYPE_I4) {
        if (dst_dt != stored_dt || (stored_dt == LLM_DTYPE_I4 && first % 2))
            return (int)cudaErrorInvalidValue;
        int64_t nbytes = stored_dt == LLM_DTYPE_I4 ? n / 2 + (n & 1) : n;
        fill_random_q_kernel<<<grid_for(nbytes, 256), 256, 0, stream>>>(
            (uint8_t *)dst, nbytes, n, first, state, fill, stored_dt);
        return k_status();
    }
    int g = grid_for(n, 256);
    DISPATCH_DT(dst_dt, D, {
        DISPATCH_DT(stored_dt, S, {
            fill_random_kernel<D, S><<<g, 256, 0, stream>>>((D *)dst, n, first, state, fill);
        });
    });
    return k_status();
}

/* ---- KV block copies ------------------------------------------------------------- */

__global__ void copy_blocks_kernel(uint4 *pool, const int32_t *src, const int32_t *dst,
                                   int64_t nvec)
{
    const uint4 *s = pool + (int64_t)src[blockIdx.y] * nvec;
    uint4 *d = pool + (int64_t)dst[blockIdx.y] * nvec;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < nvec;
         i += (int64_t)gridDim.x * blockDim.x)
        d[i] = s[i];
}

extern "C" int llm_k_copy_blocks(void *pool, const int32_t *src, const int32_t *dst, int n,
                                 int64_t blk_bytes, llm_stream_t stream)
{
    if (n <= 0) return 0;
    if (blk_bytes % 16 || n > 65535) return (int)cudaErrorInvalidValue;
    int64_t nvec = blk_bytes / 16;
    int gx = (int)((nvec + 255) / 256);
    if (gx > 64) gx = 64;
    copy_blocks_kernel<<<dim3(gx, n), 256, 0, stream>>>((uint4 *)pool, src, dst, nvec);
    return k_status();
}
