/* attn_prefill.cu - causal attention over the paged KV cache for prompt
 * tiles, on tensor cores (FlashAttention-2 tiling).
 *
 * Design: one block of 4 warps per (tile of query rows of one sequence,
 * query head); each warp owns MT m-tiles of 16 rows (MT = 2 for head dims up
 * to 128, so a block covers 128 rows and every K/V fragment loaded from
 * shared memory feeds two products).  Key/value tiles of
 * BN tokens are gathered from the paged pool (each token's row found
 * through the block table, so chunked prefill and shared prefixes read the
 * same cache the decode kernel does) into padded shared memory with
 * cp.async, two stages deep.  S = Q K^T and O += P V run on mma.sync
 * m16n8k16 (f16 or bf16 inputs, fp32 accumulators) with ldmatrix feeding
 * the fragments; the online softmax stays in registers (exp2 with the
 * scale folded in), so S and P never touch shared or device memory.  Tiles
 * entirely inside every row's visible range skip the mask.  GQA query
 * heads of one group re-read the same K/V tiles, which then come from L2.
 * An 8-bit cache (kv_q) is gathered as codes into its own two stages and
 * decoded into one f16/bf16 tile (every e4m3 and int8 code is exact in
 * both) before the products; its K scale joins the score scale, its V
 * scale the final normalisation.
 */
#include "common.cuh"

#define NWARP 4

template <typename T, int D, int MT, int KQ> struct pf_cfg {
    static constexpr int BM = 16 * NWARP * MT;     /* query rows per block */
    static constexpr int BN = D <= 128 ? 64 : 32;  /* keys per tile */
    static constexpr int DP = D + 8;               /* padded row (16 bytes) */
    static constexpr int CP = D + 16;              /* padded row of codes (16 bytes) */
    static constexpr bool QREG = MT == 1 && D <= 128; /* Q fragments live in registers */
    /* Q, K and V tiles (two stages each of T, or one of T and two of codes) */
    static constexpr size_t smem = KQ ? sizeof(T) * (size_t)(BM + 2 * BN) * DP + (size_t)4 * BN * CP
                                      : sizeof(T) * (size_t)(BM + 4 * BN) * DP;
};

/* 16 codes at c as T (exact) at t. */
template <typename T, int KQ>
static __device__ __forceinline__ void decode16(T *t, const uint8_t *c)
{
    uint4 w = *reinterpret_cast<const uint4 *>(c);
    float f[16];
    kv_decode4<KQ>(w.x, f), kv_decode4<KQ>(w.y, f + 4);
    kv_decode4<KQ>(w.z, f + 8), kv_decode4<KQ>(w.w, f + 12);
    vec<T> a, b;
#pragma unroll
    for (int k = 0; k < 8; k++) a.v[k] = from_f32<T>(f[k]), b.v[k] = from_f32<T>(f[8 + k]);
    vstore(t, a);
    vstore(t + 8, b);
}

template <typename T, int D, int MT, int KQ>
__global__ void __launch_bounds__(NWARP * 32)
    attn_prefill_kernel(const struct llm_k_attn a, const int32_t *tiles)
{
    typedef pf_cfg<T, D, MT, KQ> C;
    constexpr int BM = C::BM, BN = C::BN, DP = C::DP, CP = C::CP, KD = D / 16, NB = BN / 8;
    constexpr int ND = D / 8;
    constexpr int VR = D / 8; /* 16-byte vectors per row */
    constexpr int CR = D / 16; /* 16-byte vectors per row of codes */
    pdl_enter();
    const int tile = blockIdx.x, h = blockIdx.y;
    const int sq = tiles[3 * tile], r0 = tiles[3 * tile + 1], nr = tiles[3 * tile + 2];
    const int G = a.n_heads / a.n_kv_heads, kvh = h / G;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t4 = lane & 3;

    extern __shared__ __align__(16) unsigned char smem[];
    T *qs = (T *)smem;           /* [BM][DP] */
    T *ks = qs + BM * DP;        /* [2][BN][DP] (codes: [BN][DP]) */
    T *vs = ks + (KQ ? 1 : 2) * BN * DP; /* the same */
    uint8_t *kc = (uint8_t *)(vs + BN * DP); /* codes: [2][BN][CP] */
    uint8_t *vc = kc + 2 * BN * CP;          /* [2][BN][CP] */

    const int p_first = a.pos[r0], p_last = a.pos[r0 + nr - 1];
    const int lo_first = a.window > 0 ? max(0, p_first - a.window + 1) : 0;
    const int lo_last = a.window > 0 ? max(0, p_last - a.window + 1) : 0;

    /* Q tile (rows past nr are zero). */
    const T *qg = (const T *)a.q + (int64_t)r0 * a.q_stride + h * D;
    for (int e = threadIdx.x; e < BM * VR; e += NWARP * 32) {
        int rr = e / VR, c = e - rr * VR;
        bool ok = rr < nr;
        cp_async16_zfill(qs + rr * DP + c * 8, qg + (int64_t)(ok ? rr : 0) * a.q_stride + c * 8,
                         ok);
    }

    const int32_t *bt = a.block_table + (int64_t)sq * a.bt_stride;
    /* K and V rows as bytes: T elements, or codes (staged apart from the T tiles) */
    constexpr int ES = KQ ? 1 : (int)sizeof(T);      /* bytes per cached element */
    constexpr int RV = D * ES / 16;                  /* 16-byte vectors per cached row */
    constexpr int SR = KQ ? CP : DP * (int)sizeof(T); /* bytes per staged row */
    unsigned char *kdst = KQ ? kc : (unsigned char *)ks, *vdst = KQ ? vc : (unsigned char *)vs;
    const unsigned char *kvbase = (const unsigned char *)a.kv;
    const int64_t head_off = (int64_t)kvh * a.block_size * D;
    const int64_t v_off = (int64_t)a.n_kv_heads * a.block_size * D * ES;
    auto load_kv = [&](int buf, int kb) {
        for (int e = threadIdx.x; e < BN * RV; e += NWARP * 32) {
            int rr = e / RV, c = e - rr * RV;
            int j = kb + rr;
            bool ok = j >= lo_first && j <= p_last;
            const unsigned char *src = kvbase;
            if (ok)
                src = kvbase + ((int64_t)bt[j / a.block_size] * a.blk_stride + head_off +
                                (int64_t)(j % a.block_size) * D) * ES + c * 16;
            cp_async16_zfill(kdst + (buf * BN + rr) * SR + c * 16, src, ok);
            cp_async16_zfill(vdst + (buf * BN + rr) * SR + c * 16, ok ? src + v_off : src, ok);
        }
        cp_commit();
    };

    const int kt0 = lo_first / BN, kt1 = p_last / BN;
    load_kv(0, kt0 * BN); /* first group also carries Q */

    /* This thread's rows: m-tile mt of the warp, rows g and g + 8. */
    int pa[MT], pb[MT], loa[MT], lob[MT], ra[MT];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        ra[mt] = (warp * MT + mt) * 16 + g;
        pa[mt] = a.pos[r0 + min(ra[mt], nr - 1)];
        pb[mt] = a.pos[r0 + min(ra[mt] + 8, nr - 1)];
        loa[mt] = a.window > 0 ? max(0, pa[mt] - a.window + 1) : 0;
        lob[mt] = a.window > 0 ? max(0, pb[mt] - a.window + 1) : 0;
    }
    const float LOG2E = 1.4426950408889634f;
    const float sl = a.alibi ? a.alibi[h] * LOG2E : 0.f;
    const float ascale = KQ ? a.scale * a.k_scale : a.scale;
    const float qscale = a.softcap > 0.f ? ascale : ascale * LOG2E;

    float o[MT][ND][4];
    float ma[MT], mb[MT], la[MT], lb[MT];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int i = 0; i < ND; i++) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.f;
        ma[mt] = mb[mt] = -INFINITY;
        la[mt] = lb[mt] = 0.f;
    }
    uint32_t qf[C::QREG ? KD : 1][4];

    for (int kt = kt0; kt <= kt1; kt++) {
        const int buf = (kt - kt0) & 1, kb = kt * BN;
        if (kt < kt1) {
            load_kv(buf ^ 1, kb + BN);
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads();
        if constexpr (KQ != LLM_K_KV_NONE) { /* this stage's codes into the T tiles */
            for (int e = threadIdx.x; e < BN * CR; e += NWARP * 32) {
                int rr = e / CR, c = e - rr * CR;
                decode16<T, KQ>(ks + rr * DP + c * 16, kc + (buf * BN + rr) * CP + c * 16);
                decode16<T, KQ>(vs + rr * DP + c * 16, vc + (buf * BN + rr) * CP + c * 16);
            }
            __syncthreads();
        }
        if (C::QREG && kt == kt0) {
#pragma unroll
            for (int kk = 0; kk < (C::QREG ? KD : 0); kk++)
                ldsm_x4(qf[kk], qs + (warp * 16 + (lane & 15)) * DP + kk * 16 + (lane >> 4) * 8);
        }

        /* S = Q K^T for this warp's MT x 16 rows x BN keys; each K fragment
         * serves every m-tile. */
        float s[MT][NB][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int i = 0; i < NB; i++) s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.f;
        const T *kbuf = ks + (KQ ? 0 : buf) * BN * DP;
#pragma unroll
        for (int kk = 0; kk < KD; kk++) {
            uint32_t qa[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                if (C::QREG) {
                    qa[mt][0] = qf[C::QREG ? kk : 0][0];
                    qa[mt][1] = qf[C::QREG ? kk : 0][1];
                    qa[mt][2] = qf[C::QREG ? kk : 0][2];
                    qa[mt][3] = qf[C::QREG ? kk : 0][3];
                } else {
                    ldsm_x4(qa[mt], qs + ((warp * MT + mt) * 16 + (lane & 15)) * DP + kk * 16 +
                                        (lane >> 4) * 8);
                }
            }
#pragma unroll
            for (int jj = 0; jj < NB / 2; jj++) {
                uint32_t b[4];
                ldsm_x4(b, kbuf + (jj * 16 + (lane & 7) + ((lane >> 4) << 3)) * DP + kk * 16 +
                               ((lane >> 3) & 1) * 8);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma_op<T>::run(s[mt][2 * jj], qa[mt], b[0], b[1]);
                    mma_op<T>::run(s[mt][2 * jj + 1], qa[mt], b[2], b[3]);
                }
            }
        }

        /* scale (to log2 units), cap, bias, mask; online softmax per row (rows are
         * spread over the 4 threads of a quad) */
        const bool full = kb >= lo_last && kb + BN - 1 <= p_first;
        uint32_t pfr[MT][BN / 16][4];
        /* three loops, so the common ones (no cap, no bias; a tile with or without the
         * causal edge) run without the others' code in between: the instruction
         * cache, not the tensor cores, had been what the warps waited on */
        if (a.softcap > 0.f || a.alibi) {
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int nb = 0; nb < NB; nb++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        float v = s[mt][nb][e] * qscale;
                        if (a.softcap > 0.f) v = a.softcap * tanhf(v / a.softcap) * LOG2E;
                        int j = kb + nb * 8 + 2 * t4 + (e & 1);
                        int pr = e < 2 ? pa[mt] : pb[mt], lr = e < 2 ? loa[mt] : lob[mt];
                        if (a.alibi) v += sl * (float)(j - pr);
                        if (!full && (j > pr || j < lr)) v = -INFINITY;
                        s[mt][nb][e] = v;
                    }
        } else if (full) {
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int nb = 0; nb < NB; nb++)
#pragma unroll
                    for (int e = 0; e < 4; e++) s[mt][nb][e] *= qscale;
        } else {
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int nb = 0; nb < NB; nb++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        int j = kb + nb * 8 + 2 * t4 + (e & 1);
                        int pr = e < 2 ? pa[mt] : pb[mt], lr = e < 2 ? loa[mt] : lob[mt];
                        s[mt][nb][e] = j > pr || j < lr ? -INFINITY : s[mt][nb][e] * qscale;
                    }
        }
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            float mxa = -INFINITY, mxb = -INFINITY;
#pragma unroll
            for (int nb = 0; nb < NB; nb++) {
                mxa = fmaxf(mxa, fmaxf(s[mt][nb][0], s[mt][nb][1]));
                mxb = fmaxf(mxb, fmaxf(s[mt][nb][2], s[mt][nb][3]));
            }
            mxa = fmaxf(mxa, __shfl_xor_sync(0xffffffffu, mxa, 1));
            mxa = fmaxf(mxa, __shfl_xor_sync(0xffffffffu, mxa, 2));
            mxb = fmaxf(mxb, __shfl_xor_sync(0xffffffffu, mxb, 1));
            mxb = fmaxf(mxb, __shfl_xor_sync(0xffffffffu, mxb, 2));
            const float mna = fmaxf(ma[mt], mxa), mnb = fmaxf(mb[mt], mxb);
            const float usea = mna == -INFINITY ? 0.f : mna, useb = mnb == -INFINITY ? 0.f : mnb;
            const float ala = exp2f(ma[mt] - usea), alb = exp2f(mb[mt] - useb);
            ma[mt] = mna;
            mb[mt] = mnb;
            float suma = 0.f, sumb = 0.f;
#pragma unroll
            for (int nb = 0; nb < NB; nb++) {
                s[mt][nb][0] = exp2f(s[mt][nb][0] - usea);
                s[mt][nb][1] = exp2f(s[mt][nb][1] - usea);
                s[mt][nb][2] = exp2f(s[mt][nb][2] - useb);
                s[mt][nb][3] = exp2f(s[mt][nb][3] - useb);
                suma += s[mt][nb][0] + s[mt][nb][1];
                sumb += s[mt][nb][2] + s[mt][nb][3];
            }
            la[mt] = la[mt] * ala + suma; /* per-thread partial; quad-reduced at the end */
            lb[mt] = lb[mt] * alb + sumb;
#pragma unroll
            for (int i = 0; i < ND; i++) {
                o[mt][i][0] *= ala;
                o[mt][i][1] *= ala;
                o[mt][i][2] *= alb;
                o[mt][i][3] *= alb;
            }
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) {
                pfr[mt][kk][0] = mma_op<T>::pack(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                pfr[mt][kk][1] = mma_op<T>::pack(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                pfr[mt][kk][2] = mma_op<T>::pack(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                pfr[mt][kk][3] = mma_op<T>::pack(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
            }
        }

        /* O += P V; each V fragment serves every m-tile */
        const T *vbuf = vs + (KQ ? 0 : buf) * BN * DP;
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
#pragma unroll
            for (int dd = 0; dd < ND / 2; dd++) {
                uint32_t b[4];
                ldsm_x4_t(b, vbuf + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * DP +
                                 dd * 16 + (lane >> 4) * 8);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma_op<T>::run(o[mt][2 * dd], pfr[mt][kk], b[0], b[1]);
                    mma_op<T>::run(o[mt][2 * dd + 1], pfr[mt][kk], b[2], b[3]);
                }
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        float l0 = la[mt], l1 = lb[mt];
        l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
        l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
        const float vsc = KQ ? a.v_scale : 1.f;
        const float ia = l0 > 0.f ? vsc / l0 : 0.f, ib = l1 > 0.f ? vsc / l1 : 0.f;
        const int rA = ra[mt], rB = ra[mt] + 8;
#pragma unroll
        for (int i = 0; i < ND; i++) {
            int d = i * 8 + 2 * t4;
            const float va[2] = {o[mt][i][0] * ia, o[mt][i][1] * ia};
            const float vb[2] = {o[mt][i][2] * ib, o[mt][i][3] * ib};
            if (rA < nr) attn_out<T, 2>(a, r0 + rA, h * D + d, va);
            if (rB < nr) attn_out<T, 2>(a, r0 + rB, h * D + d, vb);
        }
    }
}

template <typename T, int D, int MT, int KQ = LLM_K_KV_NONE>
static int launch_pf(const struct llm_k_attn *a, const int32_t *tiles, int n_tiles,
                     cudaStream_t st)
{
    size_t smem = pf_cfg<T, D, MT, KQ>::smem;
    static int set = 0;
    if (!set) {
        cudaError_t e = cudaFuncSetAttribute(attn_prefill_kernel<T, D, MT, KQ>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (e != cudaSuccess) return (int)e;
        set = 1;
    }
    return launch_pdl(attn_prefill_kernel<T, D, MT, KQ>, dim3(n_tiles, a->n_heads),
                      dim3(NWARP * 32), smem, st, *a, tiles);
}

/* m-tiles per warp: two for head dims up to 128 (each K/V fragment feeds two
 * row tiles, halving shared-memory traffic per product), one for 256. */
#define PF_MT(D) ((D) <= 128 ? 2 : 1)

extern "C" int llm_k_attn_prefill_tile_rows(int dt, int head_dim)
{
    (void)dt;
    return 16 * NWARP * PF_MT(head_dim);
}

#define PF_DIMS(X, T) X(T, 64) X(T, 80) X(T, 96) X(T, 128) X(T, 256)

extern "C" int llm_k_attn_prefill_supported(int dt, int head_dim)
{
    if (dt != K_DT_F16 && dt != K_DT_BF16) return 0;
    return head_dim == 64 || head_dim == 80 || head_dim == 96 || head_dim == 128 ||
           head_dim == 256;
}

extern "C" int llm_k_attn_prefill(const struct llm_k_attn *a, const int32_t *tiles, int n_tiles,
                                  llm_stream_t stream)
{
    if (n_tiles <= 0) return 0;
    if (!llm_k_attn_prefill_supported(a->dt, a->head_dim) || a->n_kv_heads <= 0 ||
        a->n_heads % a->n_kv_heads || a->n_heads > 65535 || a->kv_q < 0 ||
        a->kv_q > LLM_K_KV_INT8 ||
        (a->kv_q && (a->head_dim % 16 || !(a->k_scale > 0.f) || !(a->v_scale > 0.f))))
        return (int)cudaErrorInvalidValue;
#define PF_CASE(T, DD)                                                                             \
    if (a->head_dim == DD) {                                                                       \
        if (a->kv_q == LLM_K_KV_FP8)                                                               \
            return launch_pf<T, DD, PF_MT(DD), LLM_K_KV_FP8>(a, tiles, n_tiles, stream);           \
        if (a->kv_q == LLM_K_KV_INT8)                                                              \
            return launch_pf<T, DD, PF_MT(DD), LLM_K_KV_INT8>(a, tiles, n_tiles, stream);          \
        return launch_pf<T, DD, PF_MT(DD)>(a, tiles, n_tiles, stream);                             \
    }
    if (a->dt == K_DT_F16) {
        PF_DIMS(PF_CASE, __half)
    } else {
        PF_DIMS(PF_CASE, bf16)
    }
#undef PF_CASE
    return (int)cudaErrorInvalidValue;
}

/* The same with a chosen number of m-tiles per warp (bf16, head_dim 128), for the benchmark. */
extern "C" int llm_k_attn_prefill_variant(int mt, const struct llm_k_attn *a, const int32_t *tiles,
                                          int n_tiles, llm_stream_t stream)
{
    if (a->dt != K_DT_BF16 || a->head_dim != 128 || a->kv_q) return (int)cudaErrorInvalidValue;
    if (mt == 1) return launch_pf<bf16, 128, 1>(a, tiles, n_tiles, stream);
    if (mt == 2) return launch_pf<bf16, 128, 2>(a, tiles, n_tiles, stream);
    return (int)cudaErrorInvalidValue;
}
