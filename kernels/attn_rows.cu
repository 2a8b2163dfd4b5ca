/* attn_rows.cu - paged attention for single query rows (decode), split
 * along the key sequence, with a combining pass.
 *
 * Design: one block per (query row, head block, split).  A head block is
 * the query heads of one GQA group (up to 8 of them; a larger group is
 * served by several blocks), so each K/V element is read from device
 * memory once per group, not once per query head.  Keys are staged through
 * shared memory 32 tokens at a time with cp.async, two stages deep (the
 * next chunk loads while this one is used; three measured slower end to
 * end, docs/CUDA.md note 16).  Scores: Q threads per (head, token) with q
 * in shared memory as fp32 read 16 bytes at a time; online softmax per head (one warp); P.V: each thread owns one 16-byte slice of
 * the dims for every head of the block and a subset of the chunk's
 * tokens, accumulating in registers, so a V element is read from shared
 * memory once per block rather than once per head; the token subsets are
 * added in a fixed order at the end.  Decode is bound by reading the KV
 * cache; keeping the per-token arithmetic off shared memory is what keeps
 * a GQA group of 4 or 8 heads at memory speed.  Long contexts are cut into
 * splits of split_len tokens that run as separate blocks; each split
 * stores its normalised partial output and log-sum-exp, and the last
 * split block of a (row, head block) to finish weights them together (an
 * arrival counter, so no second launch).  The split length is read from
 * device memory and the grid has a fixed number of splits (empty ones
 * exit at once), so a captured CUDA graph serves every context length of
 * its batch size.  An 8-bit cache (kv_q) is staged as its codes, half the
 * bytes of the 16-bit one, and decoded where it is used: the K scale is
 * folded into the score scale, the V scale into the final normalisation.
 */
#include "common.cuh"

/* Tokens per staged chunk: 32; an 8-bit cache may stage 64 (the bytes of 32 16-bit
 * tokens), measured slower (docs/CUDA.md "8-bit KV cache"). */
static int rows_chunk; /* 0 or 32: 32; 64: 64 from an 8-bit cache (llm_k_attn_rows_set_chunk) */
extern "C" void llm_k_attn_rows_set_chunk(int ch)
{
    rows_chunk = ch;
}
#define NT 128  /* threads per block */

static __device__ __forceinline__ void cp_async16(void *smem, const void *gmem)
{
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
static __device__ __forceinline__ void cp_async_commit(void)
{
    asm volatile("cp.async.commit_group;\n" ::);
}
template <int N> static __device__ __forceinline__ void cp_async_wait(void)
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/* Query heads per block: the GQA group (rounded up to a power of two) when
 * it is at most 8, else 8 (a group of more heads is served by several
 * blocks, each reading the group's K/V). */
static int heads_per_block(int G)
{
    return G <= 1 ? 1 : G <= 2 ? 2 : G <= 4 ? 4 : 8;
}

/* Split blocks of one (row, head block) count themselves in; the last one
 * to arrive weights the partial outputs together (fixed split order, so
 * the result does not depend on which block is last) and resets the
 * counter.  The weights exp(lse_s - max) are computed once per head into
 * shared memory, then every output element is a sum over the splits. */
template <typename T>
static __device__ void combine_if_last(const struct llm_k_attn &a, int r, int cidx, int h0, int gn,
                                       int D, int max_splits, const float *wsrow, int *counters,
                                       float *scratch)
{
    __shared__ int last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        int *cnt = counters + cidx;
        last = atomicAdd(cnt, 1) == max_splits - 1;
        if (last) *cnt = 0;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    /* per head: max and total of the pieces' log-sum-exps (one warp per head) */
    float *mx = scratch, *inv = scratch + 8;
    for (int g = threadIdx.x >> 5; g < gn; g += NT / 32) {
        const float *w = wsrow + (int64_t)g * max_splits * (D + 1) + D;
        float m = -INFINITY;
        for (int s = threadIdx.x & 31; s < max_splits; s += 32) m = fmaxf(m, __ldcg(w + s * (D + 1)));
        m = warp_max(m);
        float tot = 0.f;
        for (int s = threadIdx.x & 31; s < max_splits; s += 32) {
            float l = __ldcg(w + s * (D + 1));
            if (l != -INFINITY) tot += __expf(l - m);
        }
        tot = warp_sum(tot);
        if ((threadIdx.x & 31) == 0) mx[g] = m, inv[g] = 1.f / tot;
    }
    __syncthreads();
    T *o = (T *)a.o + (int64_t)r * a.n_heads * D + (int64_t)h0 * D;
    for (int e = threadIdx.x; e < gn * D; e += NT) {
        int g = e / D, d = e - g * D;
        const float *w = wsrow + (int64_t)g * max_splits * (D + 1);
        const float m = mx[g];
        float v = 0.f;
#pragma unroll 4
        for (int s = 0; s < max_splits; s++) {
            float l = __ldcg(w + s * (D + 1) + D);
            float x = __ldcg(w + s * (D + 1) + d);
            if (l != -INFINITY) v += __expf(l - m) * x;
        }
        o[e] = from_f32<T>(v * inv[g]);
    }
}

/* GR: query heads per block (see heads_per_block); the block serves heads
 * h0 .. h0 + gn - 1, gn <= GR, all of KV head kvh. */
/* The pool's element: T, or a byte code (KQ != LLM_K_KV_NONE). */
template <typename T, int KQ> struct kv_elem {
    typedef T type;
};
template <typename T> struct kv_elem<T, LLM_K_KV_FP8> {
    typedef uint8_t type;
};
template <typename T> struct kv_elem<T, LLM_K_KV_INT8> {
    typedef uint8_t type;
};

/* N elements of the cache at p (16 bytes of it, or 8 codes) as fp32 (codes unscaled). */
template <typename T, int KQ, int N>
static __device__ __forceinline__ void kv_load(const typename kv_elem<T, KQ>::type *p, float *f)
{
    if constexpr (KQ == LLM_K_KV_NONE) {
        static_assert(N == vec<T>::N, "a dt cache is read in whole vectors");
        vec<T> x = vload((const T *)p);
#pragma unroll
        for (int k = 0; k < N; k++) f[k] = to_f32(x.v[k]);
    } else if constexpr (N == 16) {
        uint4 w = *reinterpret_cast<const uint4 *>(p);
        kv_decode4<KQ>(w.x, f), kv_decode4<KQ>(w.y, f + 4);
        kv_decode4<KQ>(w.z, f + 8), kv_decode4<KQ>(w.w, f + 12);
    } else {
        uint2 w = *reinterpret_cast<const uint2 *>(p);
        kv_decode4<KQ>(w.x, f), kv_decode4<KQ>(w.y, f + 4);
    }
}

template <typename T, int KQ, int GR, int CH>
__global__ void __launch_bounds__(NT) attn_rows_kernel(const struct llm_k_attn a,
                                                       const int32_t *rows, const int32_t *seqs,
                                                       const int32_t *split_len_p, int max_splits,
                                                       float *ws, int *counters)
{
    typedef typename kv_elem<T, KQ>::type KT;
    /* LV: cache elements per 16 bytes (staging and scores); V: per P.V
     * slice (8 for codes, which keeps a thread's sums at 8 per head) */
    constexpr int LV = 16 / sizeof(KT);
    constexpr int V = KQ ? 8 : LV;
    /* threads per score (head, token): the dims are split over Q lanes so
     * that GR * CH * Q covers the block */
    constexpr int Q = GR >= 4 ? 1 : 4 / GR;
    pdl_wait();
    pdl_trigger();
    const int D = a.head_dim, G = a.n_heads / a.n_kv_heads;
    const int nhb = (G + GR - 1) / GR; /* head blocks per KV head */
    const int DP = D + LV; /* padded smem row: rows shift by 16 bytes, no bank conflicts */
    const int i = blockIdx.x, kvh = blockIdx.y / nhb, hb = blockIdx.y - kvh * nhb;
    const int split = blockIdx.z;
    const int h0 = kvh * G + hb * GR, gn = min(GR, G - hb * GR);
    const int r = rows[i], sq = seqs[i];
    const int p = a.pos[r];
    const int lo = a.window > 0 ? max(0, p - a.window + 1) : 0;
    const int64_t split_len = max_splits > 1 ? *split_len_p : 1 << 30;
    const int64_t begin64 = lo + (int64_t)split * split_len;
    const int begin = (int)min(begin64, (int64_t)p + 1);
    const int end = (int)min((int64_t)p + 1, begin64 + split_len);

    extern __shared__ __align__(16) unsigned char smem[];
    KT *ks = (KT *)smem;                     /* [2][CH][DP] */
    KT *vs = ks + 2 * CH * DP;               /* [2][CH][DP] */
    float *qs = (float *)(vs + 2 * CH * DP); /* [GR][D] */
    float *acc = qs + GR * D;                /* [GR][D] (final sums) */
    float *sc = acc + GR * D;                /* [GR][CH] */
    float *mrun = sc + GR * CH;              /* [GR] */
    float *lrun = mrun + GR;                 /* [GR] */
    float *alph = lrun + GR;                 /* [GR] */

    const int cidx = i * a.n_kv_heads * nhb + blockIdx.y;
    float *wsrow = ws ? ws + ((int64_t)i * a.n_heads + h0) * max_splits * (D + 1) : nullptr;
    if (begin >= p + 1) {
        /* An unused split of a short row: mark it empty for the combine. */
        for (int g = threadIdx.x; g < gn; g += NT)
            wsrow[((int64_t)g * max_splits + split) * (D + 1) + D] = -INFINITY;
        combine_if_last<T>(a, r, cidx, h0, gn, D, max_splits, wsrow, counters, (float *)smem);
        return;
    }

    const int32_t *bt = a.block_table + (int64_t)sq * a.bt_stride;
    const KT *kvbase = (const KT *)a.kv;
    const int64_t head_off = (int64_t)kvh * a.block_size * D;
    const int64_t v_off = (int64_t)a.n_kv_heads * a.block_size * D;
    const int dvn = D / V, lvn = D / LV;

    auto load_chunk = [&](int buf, int c0) {
        for (int e = threadIdx.x; e < CH * lvn; e += NT) {
            int t = e / lvn, dv = e - t * lvn;
            int tok = c0 + t;
            if (tok < end) {
                int blk = bt[tok / a.block_size], off = tok % a.block_size;
                const KT *src = kvbase + (int64_t)blk * a.blk_stride + head_off +
                                (int64_t)off * D + dv * LV;
                cp_async16(ks + (buf * CH + t) * DP + dv * LV, src);
                cp_async16(vs + (buf * CH + t) * DP + dv * LV, src + v_off);
            }
        }
        cp_async_commit();
    };
    const float kscale = KQ ? a.scale * a.k_scale : a.scale, vscale = KQ ? a.v_scale : 1.f;

    const int nchunks = (end - begin + CH - 1) / CH;
    load_chunk(0, begin); /* in flight while q is read */
    const T *q = (const T *)a.q + (int64_t)r * a.q_stride + h0 * D;
    for (int e = threadIdx.x; e < GR * D; e += NT) {
        qs[e] = e < gn * D ? to_f32(q[e]) : 0.f;
        acc[e] = 0.f;
    }
    for (int g = threadIdx.x; g < GR; g += NT) {
        mrun[g] = -INFINITY;
        lrun[g] = 0.f;
    }

    /* P.V: thread (tg, dv) owns dims dv*V.. of every head of the block for
     * tokens tg, tg + TG, ... of each chunk; the TG partial sums are added
     * after the last chunk */
    const int TG = NT / dvn, tg = threadIdx.x / dvn, pdv = threadIdx.x - tg * dvn;
    float part[GR][V];
#pragma unroll
    for (int g = 0; g < GR; g++)
#pragma unroll
        for (int k = 0; k < V; k++) part[g][k] = 0.f;

    for (int c = 0; c < nchunks; c++) {
        const int c0 = begin + c * CH, buf = c & 1;
        const int nvalid = min(CH, end - c0);
        if (c + 1 < nchunks) {
            load_chunk(buf ^ 1, c0 + CH);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();

        /* scores: Q threads per (head, token), each every Q-th 16-byte
         * vector of the dims, joined by shuffles; gn * CH * Q is a multiple
         * of 32, so every lane of a warp takes part in each shuffle */
        for (int e = threadIdx.x; e < gn * CH * Q; e += NT) {
            int qt = e % Q, gt = e / Q;
            int g = gt / CH, t = gt - g * CH;
            /* four chains of fused multiply-adds (one instruction per element) */
            float d0 = 0.f, d1 = 0.f, d2 = 0.f, d3 = 0.f;
            if (t < nvalid) {
                const KT *kr = ks + (buf * CH + t) * DP;
                const float *qr = qs + g * D;
                for (int dv = qt; dv < lvn; dv += Q) {
                    float kf[LV];
                    kv_load<T, KQ, LV>(kr + dv * LV, kf);
#pragma unroll
                    for (int k = 0; k < LV; k += 4) {
                        float4 qq = *(const float4 *)(qr + dv * LV + k);
                        d0 = fmaf(qq.x, kf[k], d0);
                        d1 = fmaf(qq.y, kf[k + 1], d1);
                        d2 = fmaf(qq.z, kf[k + 2], d2);
                        d3 = fmaf(qq.w, kf[k + 3], d3);
                    }
                }
            }
            float d = (d0 + d1) + (d2 + d3);
#pragma unroll
            for (int o = 1; o < Q; o <<= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
            if (qt == 0) {
                float s = -INFINITY;
                if (t < nvalid) {
                    s = d * kscale;
                    if (a.softcap > 0.f) s = a.softcap * tanhf(s / a.softcap);
                    if (a.alibi) s += a.alibi[h0 + g] * (float)(c0 + t - p);
                }
                sc[gt] = s;
            }
        }
        __syncthreads();

        /* online softmax, one warp per head (CH / 32 tokens a lane); heads past gn get
         * zero weights */
        for (int g = threadIdx.x >> 5; g < GR; g += NT / 32) {
            int lane = threadIdx.x & 31;
            if (g >= gn) {
#pragma unroll
                for (int j = 0; j < CH / 32; j++) sc[g * CH + 32 * j + lane] = 0.f;
                if (lane == 0) alph[g] = 1.f;
                continue;
            }
            float s[CH / 32], mx = -INFINITY;
#pragma unroll
            for (int j = 0; j < CH / 32; j++) {
                s[j] = sc[g * CH + 32 * j + lane];
                mx = fmaxf(mx, s[j]);
            }
            mx = warp_max(mx);
            float mo = mrun[g];
            float mn = fmaxf(mo, mx);
            float sum = 0.f;
#pragma unroll
            for (int j = 0; j < CH / 32; j++) {
                float pv = mn == -INFINITY ? 0.f : __expf(s[j] - mn);
                sum += pv;
                sc[g * CH + 32 * j + lane] = pv;
            }
            sum = warp_sum(sum);
            if (lane == 0) {
                float al = mo == -INFINITY ? 0.f : __expf(mo - mn);
                alph[g] = al;
                lrun[g] = lrun[g] * al + sum;
                mrun[g] = mn;
            }
        }
        __syncthreads();

        /* part = part * alpha + P V over this thread's tokens */
        if (tg < TG) {
#pragma unroll
            for (int g = 0; g < GR; g++) {
                float al = alph[g];
#pragma unroll
                for (int k = 0; k < V; k++) part[g][k] *= al;
            }
            for (int t = tg; t < nvalid; t += TG) {
                float vf[V];
                kv_load<T, KQ, V>(vs + (buf * CH + t) * DP + pdv * V, vf);
#pragma unroll
                for (int g = 0; g < GR; g++) {
                    float pg = sc[g * CH + t];
#pragma unroll
                    for (int k = 0; k < V; k++) part[g][k] += pg * vf[k];
                }
            }
        }
        __syncthreads();
    }

    /* add the token groups' partial sums in a fixed order */
    for (int j = 0; j < TG; j++) {
        if (tg == j) {
#pragma unroll
            for (int g = 0; g < GR; g++)
#pragma unroll
                for (int k = 0; k < V; k++) acc[g * D + pdv * V + k] += part[g][k];
        }
        __syncthreads();
    }

    if (max_splits == 1) {
        T *o = (T *)a.o + (int64_t)r * a.n_heads * D + h0 * D;
        for (int e = threadIdx.x; e < gn * D; e += NT)
            o[e] = from_f32<T>(KQ ? acc[e] * (vscale / lrun[e / D]) : acc[e] / lrun[e / D]);
    } else {
        for (int e = threadIdx.x; e < gn * D; e += NT) {
            int g = e / D, d = e - g * D;
            wsrow[((int64_t)g * max_splits + split) * (D + 1) + d] =
                KQ ? acc[e] * (vscale / lrun[g]) : acc[e] / lrun[g];
        }
        for (int g = threadIdx.x; g < gn; g += NT)
            wsrow[((int64_t)g * max_splits + split) * (D + 1) + D] = mrun[g] + logf(lrun[g]);
        combine_if_last<T>(a, r, cidx, h0, gn, D, max_splits, wsrow, counters, (float *)smem);
    }
}

template <typename T, int KQ, int GR, int CH>
static int launch_rows(const struct llm_k_attn *a, const int32_t *rows, const int32_t *seqs, int n,
                       const int32_t *split_len, int max_splits, float *ws, int *counters,
                       cudaStream_t st)
{
    typedef typename kv_elem<T, KQ>::type KT;
    constexpr int LV = 16 / sizeof(KT);
    const int D = a->head_dim, G = a->n_heads / a->n_kv_heads;
    size_t smem = sizeof(KT) * 4 * CH * (D + LV) + sizeof(float) * (2 * GR * D + GR * CH + 3 * GR);
    static size_t smem_set = 48 * 1024;
    if (smem > smem_set) {
        cudaError_t e = cudaFuncSetAttribute(attn_rows_kernel<T, KQ, GR, CH>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (e != cudaSuccess) return (int)e;
        smem_set = smem;
    }
    dim3 grid(n, a->n_kv_heads * ((G + GR - 1) / GR), max_splits);
    return launch_pdl(attn_rows_kernel<T, KQ, GR, CH>, grid, dim3(NT), smem, st, *a, rows, seqs, split_len,
                      max_splits, max_splits > 1 ? ws : nullptr, counters);
}

template <typename T, int KQ>
static int launch_rows_gr(const struct llm_k_attn *a, const int32_t *rows, const int32_t *seqs,
                          int n, const int32_t *split_len, int max_splits, float *ws,
                          int *counters, cudaStream_t st)
{
    /* chunks of 32 tokens; of 64 from an 8-bit cache when told */
    constexpr int C1 = 32, C2 = KQ ? 64 : 32;
    const bool wide = KQ && rows_chunk == 64;
#define ROWS_GR(GR)                                                                                \
    return wide ? launch_rows<T, KQ, GR, C2>(a, rows, seqs, n, split_len, max_splits, ws, counters, st) \
                : launch_rows<T, KQ, GR, C1>(a, rows, seqs, n, split_len, max_splits, ws, counters, st)
    switch (heads_per_block(a->n_heads / a->n_kv_heads)) {
    case 1: ROWS_GR(1);
    case 2: ROWS_GR(2);
    case 4: ROWS_GR(4);
    default: ROWS_GR(8);
    }
#undef ROWS_GR
}

extern "C" int llm_k_attn_rows_blocks(int n_heads, int n_kv_heads)
{
    if (n_kv_heads <= 0 || n_heads % n_kv_heads) return 0;
    int G = n_heads / n_kv_heads, gr = heads_per_block(G);
    return n_kv_heads * ((G + gr - 1) / gr);
}

extern "C" int llm_k_attn_rows(const struct llm_k_attn *a, const int32_t *rows,
                               const int32_t *seqs, int n, const int32_t *split_len,
                               int max_splits, float *ws, int *counters, llm_stream_t stream)
{
    if (n <= 0) return 0;
    if (a->head_dim % 8 || a->head_dim > 8 * NT || a->n_kv_heads <= 0 ||
        a->n_heads % a->n_kv_heads || max_splits < 1 ||
        (max_splits > 1 && (!split_len || !ws || !counters)) || max_splits > 65535 ||
        a->kv_q < 0 || a->kv_q > LLM_K_KV_INT8 ||
        (a->kv_q && (a->head_dim % 16 || !(a->k_scale > 0.f) || !(a->v_scale > 0.f))))
        return (int)cudaErrorInvalidValue;
#define ROWS_KQ(KQ) launch_rows_gr<T, KQ>(a, rows, seqs, n, split_len, max_splits, ws, counters, stream)
    DISPATCH_DT(a->dt, T, {
        if (a->kv_q == LLM_K_KV_FP8) return ROWS_KQ(LLM_K_KV_FP8);
        if (a->kv_q == LLM_K_KV_INT8) return ROWS_KQ(LLM_K_KV_INT8);
        return ROWS_KQ(LLM_K_KV_NONE);
    });
#undef ROWS_KQ
    return 0;
}
