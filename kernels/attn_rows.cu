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
 * In f16 and bf16 models an 8-bit cache is read by the tensor-core kernel
 * further down instead (its own design note), the row kernel serving f32,
 * other head dims, and the tests that force it.
 */
#include <type_traits>

#include "common.cuh"

/* Tokens per staged chunk: 32; an 8-bit cache may stage 64 (the bytes of 32 16-bit
 * tokens), measured slower (docs/CUDA.md "8-bit KV cache"). */
static int rows_chunk; /* llm_k_attn_rows_set_chunk: 0 the default; 32 or 64 the row kernel
                        * staging that many tokens, also where the tensor-core kernel applies */
extern "C" void llm_k_attn_rows_set_chunk(int ch)
{
    rows_chunk = ch;
}
#define NT 128  /* threads per block */

/* Query heads per block: the GQA group (rounded up to a power of two) when
 * it is at most 8, else 8 (a group of more heads is served by several
 * blocks, each reading the group's K/V). */
static __host__ __device__ int heads_per_block(int G)
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
    for (int g = threadIdx.x >> 5; g < gn; g += (int)blockDim.x / 32) {
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
    for (int e = threadIdx.x; e < gn * D; e += (int)blockDim.x) {
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
        v *= inv[g];
        attn_out<T, 1>(a, r, h0 * D + e, &v);
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
    pdl_enter();
    const int D = a.head_dim, G = a.n_heads / a.n_kv_heads;
    const int nhb = (G + GR - 1) / GR; /* head blocks per KV head */
    const int DP = D + LV; /* padded smem row: rows shift by 16 bytes, no bank conflicts */
    const int i = blockIdx.x, kvh = blockIdx.y / nhb, hb = blockIdx.y - kvh * nhb;
    const int split = blockIdx.z;
    const int h0 = kvh * G + hb * GR, gn = min(GR, G - hb * GR);
    const int r = rows ? rows[i] : i, sq = seqs ? seqs[i] : i;
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
        cp_commit();
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
            cp_wait<1>();
        } else {
            cp_wait<0>();
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
        for (int e = threadIdx.x; e < gn * D; e += NT) {
            const float v = KQ ? acc[e] * (vscale / lrun[e / D]) : acc[e] / lrun[e / D];
            attn_out<T, 1>(a, r, h0 * D + e, &v);
        }
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

/* ---- decode rows over an 8-bit cache on tensor cores ---------------------------------
 *
 * The row kernel above spends one conversion and one multiply-add per
 * cached code and thread, which caps it well below the speed of memory over
 * codes half as wide as a 16-bit cache.  Here the scores and P.V of a block
 * (one query row, one head block of a KV head, one split) are mma.sync
 * m16n8k16 products in f16 with fp32 accumulators.  The codes go from
 * shared memory into fragments with ldmatrix, treating a pair of codes as
 * one 16-bit element, and become f16 pairs in registers (two e4m3 codes:
 * one conversion; int8: a byte permute into 1024 + code + 128 and one
 * subtraction) - every code is exact in f16.  The scores are computed
 * transposed, S^T = K Q^T: 16 tokens are the rows, so the K codes are the
 * A operand as they come and one product covers 16 tokens x 16 dims, and
 * the block's query heads (a GQA group of up to 8) are the 8 columns.  A
 * lane's 32-bit K fragment word holds four consecutive dims of one token;
 * its two pairs are taken as the k indices 2t, 2t+1 and 2t+8, 2t+9, and the
 * query fragment is built with the same dims, so the sum over dims is
 * unchanged by the order.  P.V is computed transposed too, O^T = V^T P^T,
 * so the heads are again the 8 columns and no accumulator is spent on
 * padding rows: P^T's fragment is S^T's accumulators rounded to f16 pairs
 * and transposed 8 x 8 at a time (movmatrix), and the transposed load of V
 * gives a lane two tokens x two dims, which one permute splits into the
 * even-dim and odd-dim rows (g and g + 8) of V^T's fragment.  A lane thus
 * holds scores, running maxima and outputs of the same two heads, so the
 * online softmax needs no exchange but the maxima's, and the outputs are
 * rescaled only when some maximum of the warp rose.  Chunks of 16 tokens
 * a warp are staged with cp.async, NS deep.
 * The query is rounded to f16 (bf16 models: after a power-of-two scaling of
 * each head so its largest element is below 2^15, exact for bf16 values in
 * range) and P to f16, as the prefill kernel rounds P.  Each of the W
 * warps (4; 2 where rows are short, see llm_k_attn_rows_set_warps) takes 16
 * of every 16 W staged tokens with its own online softmax; their partial
 * outputs are weighted together at the end, and splits are combined as in
 * the row kernel. */
#define TCBT 32 /* block ids a block keeps in shared memory (1024 keys in blocks of 32) */
/* Whether the block ids are read early (LLM_CUDA_ATTN_EARLY=0: not, for measurement). */
static __constant__ int tc_early = 1;

template <int D, int NS, int W, int ES> struct tc_cfg {
    static constexpr int CHK = 16 * W; /* tokens staged per chunk */
    /* bytes per staged row (ES: bytes an element, 1 for codes, 2 for a 16-bit
     * cache): an odd number of 16-byte units, so the 8 rows of an ldmatrix
     * fall in distinct banks */
    static constexpr int CP = (D * ES / 16) % 2 ? D * ES : D * ES + 16;
    static constexpr size_t stage = (size_t)2 * NS * CHK * CP; /* K and V, NS stages */
    static constexpr size_t comb = sizeof(float) * (W * 8 * (D + 2) + 8);
    static constexpr size_t smem = stage > comb ? stage : comb;
};

/* Four codes r as two f16 pairs: non-transposed (K), bytes (0,1) and (2,3);
 * transposed (V), bytes (0,2) and (1,3).  Exact. */
template <int KQ, bool TR>
static __device__ __forceinline__ void codes_h2(uint32_t r, uint32_t &lo, uint32_t &hi)
{
    if constexpr (KQ == LLM_K_KV_FP8) {
        if (TR) r = __byte_perm(r, 0u, 0x3120);
        __half2_raw a = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(r & 0xffffu), __NV_E4M3);
        __half2_raw b = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(r >> 16), __NV_E4M3);
        lo = (uint32_t)a.x | ((uint32_t)a.y << 16);
        hi = (uint32_t)b.x | ((uint32_t)b.y << 16);
    } else {
        /* f16 0x6400 | (code + 128) is 1024 + code + 128 */
        const uint32_t u = r ^ 0x80808080u;
        uint32_t a = __byte_perm(u, 0x64646464u, TR ? 0x4240 : 0x4140);
        uint32_t b = __byte_perm(u, 0x64646464u, TR ? 0x4341 : 0x4342);
        const __half2 off = __float2half2_rn(1152.f);
        __half2 ha = __hsub2(*reinterpret_cast<__half2 *>(&a), off);
        __half2 hb = __hsub2(*reinterpret_cast<__half2 *>(&b), off);
        lo = *reinterpret_cast<uint32_t *>(&ha);
        hi = *reinterpret_cast<uint32_t *>(&hb);
    }
}

/* Five blocks of 4 warps an SM (the registers of 96 a thread): without the
 * bound the compiler takes 101-109 since struct llm_k_attn grew, which
 * leaves four; ten of 2 warps. */
template <typename T, int KQ, int D, int NS, int W>
__global__ void __launch_bounds__(W * 32, 20 / W)
    attn_rows_tc_kernel(const struct llm_k_attn a, const int32_t *rows, const int32_t *seqs,
                        const int32_t *split_len_p, int max_splits, float *ws, int *counters)
{
    /* ES: bytes a cached element; NC: 16-byte columns of a cached row; KS: k-steps
     * of 16 dims; CHK: tokens a chunk; NTB: threads */
    constexpr int ES = KQ ? 1 : 2;
    typedef tc_cfg<D, NS, W, ES> C;
    constexpr int CP = C::CP, NC = D * ES / 16, KS = D / 16, CHK = C::CHK, NTB = 32 * W;
    /* codes become f16; a 16-bit cache is multiplied in its own type */
    typedef typename std::conditional<KQ != 0, __half, T>::type MT;
    typedef mma_op<MT> MMA;
    pdl_enter();
    const int G = a.n_heads / a.n_kv_heads, GR = heads_per_block(G);
    const int nhb = (G + GR - 1) / GR;
    const int i = blockIdx.x, kvh = blockIdx.y / nhb, hb = blockIdx.y - kvh * nhb;
    const int split = blockIdx.z;
    const int h0 = kvh * G + hb * GR, gn = min(GR, G - hb * GR);
    const int r = rows ? rows[i] : i, sq = seqs ? seqs[i] : i;
    const int64_t split_len = max_splits > 1 ? *split_len_p : 1 << 30;
    const int32_t *bt = a.block_table + (int64_t)sq * a.bt_stride;
    /* a block size of a power of two (the usual) divides by a shift */
    const int bsz = a.block_size, bsh = (bsz & (bsz - 1)) == 0 ? __ffs(bsz) - 1 : -1;

    extern __shared__ __align__(16) unsigned char smem[];
    uint8_t *kc = smem;                         /* [NS][CHK][CP] */
    uint8_t *vc = smem + NS * CHK * CP;         /* [NS][CHK][CP] */
    int32_t *btc = (int32_t *)(smem + C::smem); /* [TCBT]: block ids from block bt0 */

    /* Without a window the keys start at the split, so its first TCBT block ids
     * are read while the row's position is: a short row's start waits for one
     * load (two when rows are listed) instead of three in a chain. */
    const int p0 = a.window > 0 ? a.pos[r] : 0;
    const int64_t first =
        (a.window > 0 ? max(0, p0 - a.window + 1) : 0) + (int64_t)split * split_len;
    const int64_t bt0_64 = tc_early ? first / bsz : (int64_t)a.bt_stride;
    const int bt0 = (int)min(bt0_64, (int64_t)a.bt_stride);
    for (int k = threadIdx.x; k < TCBT; k += NTB)
        btc[k] = bt0 + k < a.bt_stride ? bt[bt0 + k] : 0;
    const int p = a.window > 0 ? p0 : a.pos[r];
    const int lo = a.window > 0 ? max(0, p - a.window + 1) : 0;
    const int64_t begin64 = lo + (int64_t)split * split_len;
    const int begin = (int)min(begin64, (int64_t)p + 1);
    const int end = (int)min((int64_t)p + 1, begin64 + split_len);
    __syncthreads();

    const int cidx = i * a.n_kv_heads * nhb + blockIdx.y;
    float *wsrow = ws ? ws + ((int64_t)i * a.n_heads + h0) * max_splits * (D + 1) : nullptr;
    if (begin >= p + 1) {
        for (int g = threadIdx.x; g < gn; g += NTB)
            wsrow[((int64_t)g * max_splits + split) * (D + 1) + D] = -INFINITY;
        combine_if_last<T>(a, r, cidx, h0, gn, D, max_splits, wsrow, counters, (float *)smem);
        return;
    }

    /* in bytes */
    const uint8_t *kvbase = (const uint8_t *)a.kv;
    const int64_t head_off = (int64_t)kvh * a.block_size * D * ES;
    const int64_t v_off = (int64_t)a.n_kv_heads * a.block_size * D * ES;
    const int64_t blk_bytes = a.blk_stride * ES;
    /* Warp w stages tokens 16 w .. 16 w + 15 of a chunk (CHK = 16 W).  Lanes
     * 2 i and 2 i + 1 find token i's place (its block id read a chunk ahead:
     * past the first TCBT blocks it comes from device memory), and the copies
     * take it from them by shuffles, each copy instruction of the warp on
     * whole 128-byte rows (16 NC units of 16 bytes over the 32 lanes). */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, lt = threadIdx.x >> 1;
    auto blk_of = [&](int c0) -> int {
        const int tok = c0 + lt;
        if (tok >= end) return 0;
        const int bi = bsh >= 0 ? tok >> bsh : tok / bsz;
        const unsigned kb = (unsigned)(bi - bt0);
        return kb < TCBT ? btc[kb] : bt[bi];
    };
    auto load_chunk = [&](int buf, int c0, int blk) {
        const int tok = c0 + lt;
        const uint8_t *src = nullptr;
        if (tok < end) {
            const int bi = bsh >= 0 ? tok >> bsh : tok / bsz, bo = tok - bi * bsz;
            src = kvbase + (int64_t)blk * blk_bytes + head_off + (int64_t)bo * D * ES;
        }
        uint8_t *kd = kc + (buf * CHK + 16 * warp) * CP, *vd = vc + (buf * CHK + 16 * warp) * CP;
#pragma unroll
        for (int j = 0; j < (16 * NC + 31) / 32; j++) {
            const int u = 32 * j + lane, i = u / NC, cu = u - i * NC;
            const uint8_t *ps = (const uint8_t *)__shfl_sync(0xffffffffu, (unsigned long long)src,
                                                             2 * (i < 16 ? i : 0));
            if ((16 * NC) % 32 == 0 || u < 16 * NC) {
                const bool ok = ps != nullptr;
                cp_async16_zfill(kd + i * CP + cu * 16, ok ? ps + cu * 16 : kvbase, ok);
                cp_async16_zfill(vd + i * CP + cu * 16, ok ? ps + v_off + cu * 16 : kvbase, ok);
            }
        }
        cp_commit();
    };
    const int nchunks = (end - begin + CHK - 1) / CHK;
    /* the first NS - 1 chunks in flight while q is read; one group committed
     * per chunk (empty past the last), so chunk c is in once all but NS - 2
     * groups are */
#pragma unroll
    for (int c = 0; c < NS - 1; c++) {
        if (c < nchunks)
            load_chunk(c, begin + c * CHK, blk_of(begin + c * CHK));
        else cp_commit();
    }
    /* the block id of the next chunk to stage */
    int nblk = NS - 1 < nchunks ? blk_of(begin + (NS - 1) * CHK) : 0;

    const int g = lane >> 2, t4 = lane & 3;
    /* this lane's query row (head h0 + g) at the dims of k-step c that K's
     * fragment words hold: codes 16 c + 4 t4 .. + 3 (a word is four codes), a
     * 16-bit cache 16 c + 2 t4, + 1, + 8, + 9 (the usual fragment) */
    float qv[KS][4];
    float amax = 0.f;
    {
        const T *qrow = (const T *)a.q + (int64_t)r * a.q_stride + (int64_t)(h0 + g) * D;
#pragma unroll
        for (int c = 0; c < KS; c++) {
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const int d = KQ ? 16 * c + 4 * t4 + k : 16 * c + 2 * t4 + (k & 1) + 8 * (k >> 1);
                qv[c][k] = g < gn ? to_f32(qrow[d]) : 0.f;
                amax = fmaxf(amax, fabsf(qv[c][k]));
            }
        }
    }
    /* bf16 into f16 products: scale the head by 2^(15 - e) (max |q| = m 2^e,
     * m in [0.5, 1)) into f16's range */
    float qmul = 1.f;
    if constexpr (KQ != 0 && std::is_same<T, bf16>::value) {
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 2));
        int ex = 0;
        frexpf(amax, &ex);
        if (amax > 0.f) qmul = ldexpf(1.f, 15 - ex);
    }
    uint32_t qa[KS][2]; /* b0, b1 of the B fragment: head g */
#pragma unroll
    for (int c = 0; c < KS; c++) {
        qa[c][0] = MMA::pack(qv[c][0] * qmul, qv[c][1] * qmul);
        qa[c][1] = MMA::pack(qv[c][2] * qmul, qv[c][3] * qmul);
    }
    const float LOG2E = 1.4426950408889634f;
    /* this lane's heads in the scores and outputs: 2 t4 and 2 t4 + 1 (their
     * q multipliers from the lanes holding their q) */
    float qscale[2], sl[2];
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
        const float ascale =
            a.scale * (KQ ? a.k_scale : 1.f) / __shfl_sync(0xffffffffu, qmul, 8 * t4 + 4 * hh);
        qscale[hh] = a.softcap > 0.f ? ascale : ascale * LOG2E;
        sl[hh] = a.alibi && 2 * t4 + hh < gn ? a.alibi[h0 + 2 * t4 + hh] * LOG2E : 0.f;
    }

    /* O^T: n-tile c holds dims 16 c + 2 g (c0: head 2 t4, c1: head 2 t4 + 1) and
     * 16 c + 2 g + 1 (c2, c3) - for a 16-bit cache 16 c + g and 16 c + g + 8 */
    float o[KS][4];
#pragma unroll
    for (int n = 0; n < KS; n++)
        o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    /* heads 2 t4 + hh, log2 units; l: this lane's tokens' part */
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    /* ldmatrix row addresses: matrix lane >> 3 is tokens 0-7 / 8-15 (bit 0) of
     * column pair member (bit 1) */
    const int lrow = ((lane >> 3) & 1) * 8 + (lane & 7), lcol = (lane >> 4) * 16;

    for (int c = 0; c < nchunks; c++) {
        const int c0 = begin + c * CHK, buf = c % NS;
        if (c + NS - 1 < nchunks) {
            load_chunk((c + NS - 1) % NS, c0 + (NS - 1) * CHK, nblk);
            if (c + NS < nchunks) nblk = blk_of(c0 + NS * CHK);
        } else
            cp_commit();
        cp_wait<NS - 1>();
        __syncthreads();
        const int w0 = c0 + warp * 16; /* this warp's 16 tokens */
        if (w0 < end) {
            const uint8_t *kb = kc + (buf * CHK + warp * 16 + lrow) * CP + lcol;
            const uint8_t *vb = vc + (buf * CHK + warp * 16 + lrow) * CP + lcol;
            /* S^T = K Q^T: the 16 tokens as rows (g, g + 8), the heads as columns
             * (2 t4, 2 t4 + 1) - the codes straight from ldmatrix are the A
             * fragment, q the B fragment; even and odd 16-dim columns summed apart */
            float s[4] = {0.f, 0.f, 0.f, 0.f}, s2[4] = {0.f, 0.f, 0.f, 0.f};
            if constexpr (KQ == 0) {
                /* a k-step is two 16-byte columns: the four matrices are a0..a3 */
#pragma unroll
                for (int cc = 0; cc < KS; cc++) {
                    uint32_t rk[4];
                    ldsm_x4(rk, kb + cc * 32);
                    MMA::run(cc & 1 ? s2 : s, rk, qa[cc][0], qa[cc][1]);
                }
            } else {
#pragma unroll
                for (int cc = 0; cc < NC; cc += 2) {
                    uint32_t rk[4], ka[4];
                    if (cc + 1 < NC) {
                        ldsm_x4(rk, kb + cc * 16);
                    } else {
                        ldsm_x2(rk, kb - lcol + cc * 16);
                    }
                    codes_h2<KQ, false>(rk[0], ka[0], ka[2]);
                    codes_h2<KQ, false>(rk[1], ka[1], ka[3]);
                    MMA::run(s, ka, qa[cc][0], qa[cc][1]);
                    if (cc + 1 < NC) {
                        codes_h2<KQ, false>(rk[2], ka[0], ka[2]);
                        codes_h2<KQ, false>(rk[3], ka[1], ka[3]);
                        MMA::run(s2, ka, qa[cc + 1][0], qa[cc + 1][1]);
                    }
                }
            }
            /* s[j]: token w0 + g + 8 (j / 2), head 2 t4 + j % 2 (log2 units) */
            float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int tok = w0 + g + 8 * (j >> 1), hh = j & 1;
                float v = (s[j] + s2[j]) * qscale[hh];
                if (a.softcap > 0.f) v = a.softcap * tanhf(v / a.softcap) * LOG2E;
                if (a.alibi) v += sl[hh] * (float)(tok - p);
                if (tok >= end) v = -INFINITY;
                s[j] = v;
                mx[hh] = fmaxf(mx[hh], v);
            }
            float al[2], use[2];
            bool up = false;
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
#pragma unroll
                for (int off = 4; off < 32; off <<= 1)
                    mx[hh] = fmaxf(mx[hh], __shfl_xor_sync(0xffffffffu, mx[hh], off));
                const float mn = fmaxf(m[hh], mx[hh]);
                use[hh] = mn == -INFINITY ? 0.f : mn;
                al[hh] = exp2f(m[hh] - use[hh]);
                up |= mn > m[hh];
                m[hh] = mn;
            }
#pragma unroll
            for (int j = 0; j < 4; j++)
                s[j] = exp2f(s[j] - use[j & 1]);
#pragma unroll
            for (int hh = 0; hh < 2; hh++)
                l[hh] = l[hh] * al[hh] + s[hh] + s[2 + hh];
            /* a maximum that did not rise leaves the outputs' weights at 1 */
            if (__any_sync(0xffffffffu, up)) {
#pragma unroll
                for (int n = 0; n < KS; n++)
                    o[n][0] *= al[0], o[n][1] *= al[1], o[n][2] *= al[0], o[n][3] *= al[1];
            }
            /* P^T as the B fragment of O^T = V^T P^T (head g, tokens 2 t4, 2 t4 + 1 and
             * 8 more): the score fragments' 8 x 8 halves transposed */
            const uint32_t pb0 = movm_t(MMA::pack(s[0], s[1])), pb1 = movm_t(MMA::pack(s[2], s[3]));
            if constexpr (KQ == 0) {
                /* V^T as the A fragment: the transposed matrices (tokens 0-7 / 8-15
                 * by dims 0-7 / 8-15 of the k-step) are a0, a2, a1, a3 */
#pragma unroll
                for (int cc = 0; cc < KS; cc++) {
                    uint32_t rv[4];
                    ldsm_x4_t(rv, vb + cc * 32);
                    const uint32_t va[4] = {rv[0], rv[2], rv[1], rv[3]};
                    MMA::run(o[cc], va, pb0, pb1);
                }
            } else {
                /* V^T as the A fragment: rows g / g + 8 are column cc's dims 2 g / 2 g + 1 */
#pragma unroll
                for (int cc = 0; cc < NC; cc += 2) {
                    uint32_t rv[4], va[4];
                    if (cc + 1 < NC) {
                        ldsm_x4_t(rv, vb + cc * 16);
                    } else {
                        ldsm_x2_t(rv, vb - lcol + cc * 16);
                    }
                    codes_h2<KQ, true>(rv[0], va[0], va[1]);
                    codes_h2<KQ, true>(rv[1], va[2], va[3]);
                    MMA::run(o[cc], va, pb0, pb1);
                    if (cc + 1 < NC) {
                        codes_h2<KQ, true>(rv[2], va[0], va[1]);
                        codes_h2<KQ, true>(rv[3], va[2], va[3]);
                        MMA::run(o[cc + 1], va, pb0, pb1);
                    }
                }
            }
        }
        __syncthreads();
    }

    /* the warps' partial rows, weighted together (their staging is done): every lane
     * scales its own sums by its warp's weight for the head, exp2(m_w - M) v_scale / den,
     * then each output element is the sum of four, four elements a thread */
#pragma unroll
    for (int hh = 0; hh < 2; hh++)
#pragma unroll
        for (int off = 4; off < 32; off <<= 1)
            l[hh] += __shfl_xor_sync(0xffffffffu, l[hh], off);
    float *cw = (float *)smem;  /* [W][8][D] */
    float *cm = cw + W * 8 * D; /* [W][8] */
    float *cl = cm + W * 8;     /* [W][8] */
    float *lse = cl + W * 8;    /* [8] */
#pragma unroll
    for (int hh = 0; hh < 2; hh++)
        if (g == 0 && 2 * t4 + hh < gn)
            cm[warp * 8 + 2 * t4 + hh] = m[hh], cl[warp * 8 + 2 * t4 + hh] = l[hh];
    __syncthreads();
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
        const int h = 2 * t4 + hh;
        if (h < gn) {
            float M = -INFINITY, den = 0.f;
#pragma unroll
            for (int w = 0; w < W; w++)
                M = fmaxf(M, cm[w * 8 + h]);
#pragma unroll
            for (int w = 0; w < W; w++) {
                const float mw = cm[w * 8 + h];
                if (mw != -INFINITY) den += exp2f(mw - M) * cl[w * 8 + h];
            }
            const float mo = cm[warp * 8 + h];
            const float f = mo == -INFINITY ? 0.f : exp2f(mo - M) * ((KQ ? a.v_scale : 1.f) / den);
            if (warp == 0 && g == 0) lse[h] = (M + log2f(den)) * 0.6931471805599453f;
            float *dst = cw + (warp * 8 + h) * D;
#pragma unroll
            for (int cc = 0; cc < KS; cc++) {
                if (KQ) {
                    *reinterpret_cast<float2 *>(dst + 16 * cc + 2 * g) =
                        make_float2(o[cc][hh] * f, o[cc][2 + hh] * f);
                } else {
                    dst[16 * cc + g] = o[cc][hh] * f;
                    dst[16 * cc + g + 8] = o[cc][2 + hh] * f;
                }
            }
        }
    }
    __syncthreads();
#pragma unroll 1
    for (int e = 4 * threadIdx.x; e < gn * D; e += 4 * NTB) {
        const int gg = e / D, d = e - gg * D;
        float4 v = *reinterpret_cast<const float4 *>(cw + gg * D + d);
#pragma unroll
        for (int w = 1; w < W; w++) {
            const float4 u = *reinterpret_cast<const float4 *>(cw + (w * 8 + gg) * D + d);
            v.x += u.x, v.y += u.y, v.z += u.z, v.w += u.w;
        }
        if (max_splits == 1) {
            const float f[4] = {v.x, v.y, v.z, v.w};
            attn_out<T, 4>(a, r, (h0 + gg) * D + d, f);
        } else {
            float *dst = wsrow + ((int64_t)gg * max_splits + split) * (D + 1) + d;
            dst[0] = v.x, dst[1] = v.y, dst[2] = v.z, dst[3] = v.w;
            if (d == 0) dst[D] = lse[gg];
        }
    }
    if (max_splits > 1)
        combine_if_last<T>(a, r, cidx, h0, gn, D, max_splits, wsrow, counters, (float *)smem);
}

extern "C" int llm_k_attn_rows_set_early(int on)
{
    on = on != 0;
    return (int)cudaMemcpyToSymbol(tc_early, &on, sizeof on);
}

/* Stages of the tensor-core kernel's pipeline (llm_k_attn_rows_set_stages): two;
 * three keep every chunk of a short row in flight at once but take 50% more
 * shared memory, and measured 10-17% slower (docs/CUDA.md "8-bit KV cache").
 * Warps per block (llm_k_attn_rows_set_warps): two take chunks of 32
 * tokens, half the shared memory a stage, so twice the blocks fit an SM
 * (stages 2, 3 or 4): more rows in flight, each with less to wait for at
 * its start and end, which pays where rows are short; four read long rows
 * faster (docs/CUDA.md "8-bit KV cache").  0: chosen by the call's row_keys. */
#define TC_W2_KEYS 768
static int tc_stages = 2, tc_warps = 0;
extern "C" void llm_k_attn_rows_set_stages(int ns)
{
    tc_stages = ns == 3 || ns == 4 ? ns : 2;
}
extern "C" void llm_k_attn_rows_set_warps(int w)
{
    tc_warps = w == 2 || w == 4 ? w : 0;
}

template <typename T, int KQ, int D, int NS, int W>
static int launch_tc_ns(const struct llm_k_attn *a, const int32_t *rows, const int32_t *seqs, int n,
                        const int32_t *split_len, int max_splits, float *ws, int *counters,
                        cudaStream_t st)
{
    const size_t smem = tc_cfg < D, NS, W, KQ ? 1 : 2 > ::smem + TCBT * sizeof(int32_t);
    static int set = 0;
    if (!set && smem > 48 * 1024) {
        cudaError_t e =
            cudaFuncSetAttribute(attn_rows_tc_kernel<T, KQ, D, NS, W>,
                                 cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return (int)e;
    }
    set = 1;
    const int G = a->n_heads / a->n_kv_heads, GR = heads_per_block(G);
    dim3 grid(n, a->n_kv_heads * ((G + GR - 1) / GR), max_splits);
    return launch_pdl(attn_rows_tc_kernel<T, KQ, D, NS, W>, grid, dim3(W * 32), smem, st, *a, rows,
                      seqs, split_len, max_splits, max_splits > 1 ? ws : nullptr, counters);
}

template <typename T, int KQ, int D>
static int launch_tc(const struct llm_k_attn *a, const int32_t *rows, const int32_t *seqs, int n,
                     const int32_t *split_len, int max_splits, float *ws, int *counters,
                     cudaStream_t st)
{
#define TC_NS(NS, W)                                                                               \
    return launch_tc_ns<T, KQ, D, NS, W>(a, rows, seqs, n, split_len, max_splits, ws, counters, st)
    const int w = tc_warps ? tc_warps : a->row_keys > 0 && a->row_keys <= TC_W2_KEYS ? 2 : 4;
    if constexpr (KQ == 0) { /* a 16-bit cache: two stages (a stage is twice as large) */
        if (w == 2) TC_NS(2, 2);
        TC_NS(2, 4);
    } else {
        if (w == 2) {
            if (tc_stages == 4) TC_NS(4, 2);
            if (tc_stages == 3) TC_NS(3, 2);
            TC_NS(2, 2);
        }
        if (tc_stages >= 3) TC_NS(3, 4);
        TC_NS(2, 4);
    }
#undef TC_NS
}

/* Whether the tensor-core kernel serves this call: f16 or bf16, an 8-bit
 * cache or (unless turned off) a 16-bit one, a head dim it is built for, and
 * no chunk forced for the row kernel. */
static int tc16 = 1;
extern "C" void llm_k_attn_rows_set_tc16(int on)
{
    tc16 = on != 0;
}
static bool use_tc(const struct llm_k_attn *a)
{
    const int d = a->head_dim;
    return (a->kv_q || tc16) && rows_chunk == 0 && (a->dt == K_DT_F16 || a->dt == K_DT_BF16) &&
           (d == 64 || d == 80 || d == 96 || d == 128 || d == 256);
}

template <typename T, int KQ>
static int launch_tc_d(const struct llm_k_attn *a, const int32_t *rows, const int32_t *seqs, int n,
                       const int32_t *split_len, int max_splits, float *ws, int *counters,
                       cudaStream_t st)
{
#define TC_D(DD)                                                                                   \
    if (a->head_dim == DD)                                                                         \
        return launch_tc<T, KQ, DD>(a, rows, seqs, n, split_len, max_splits, ws, counters, st);
    TC_D(64) TC_D(80) TC_D(96) TC_D(128) TC_D(256)
#undef TC_D
    return (int)cudaErrorInvalidValue;
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
    if (use_tc(a)) {
        const bool f16 = a->dt == K_DT_F16, fp8 = a->kv_q == LLM_K_KV_FP8;
#define TC_ARGS a, rows, seqs, n, split_len, max_splits, ws, counters, stream
        if (!a->kv_q)
            return f16 ? launch_tc_d<__half, LLM_K_KV_NONE>(TC_ARGS)
                       : launch_tc_d<bf16, LLM_K_KV_NONE>(TC_ARGS);
        if (f16) return fp8 ? launch_tc_d<__half, LLM_K_KV_FP8>(TC_ARGS)
                            : launch_tc_d<__half, LLM_K_KV_INT8>(TC_ARGS);
        return fp8 ? launch_tc_d<bf16, LLM_K_KV_FP8>(TC_ARGS) : launch_tc_d<bf16, LLM_K_KV_INT8>(TC_ARGS);
#undef TC_ARGS
    }
    DISPATCH_DT(a->dt, T, {
        if (a->kv_q == LLM_K_KV_FP8) return ROWS_KQ(LLM_K_KV_FP8);
        if (a->kv_q == LLM_K_KV_INT8) return ROWS_KQ(LLM_K_KV_INT8);
        return ROWS_KQ(LLM_K_KV_NONE);
    });
#undef ROWS_KQ
    return 0;
}
