/* q4gemm.cu - int4 weights in the tensor-core tile layout times 16-bit rows
 * on the tensor cores, for the batches past the GEMVs (qgemv.cu: 8 rows).
 *
 * Design.  The weights never leave their packed form: a block reads the
 * tiles of its 128 output rows (16 rows x 64 inputs, 512 bytes each, in the
 * order the mma A fragments want them, llm_k_q4_tile) and BN rows of x for
 * each 64-input chunk into shared memory with cp.async, several chunks in
 * flight; each warp owns two row tiles and all BN x rows, turns its 16
 * bytes of a tile into the A fragments of four k-steps in registers (one
 * lop3 and one subtraction a register: exact q, q4tile.cuh), takes the B
 * fragments with ldmatrix (x rows stored 128 bytes apart, their 16-byte
 * pieces XOR-swizzled by the row so the eight rows of a matrix hit all
 * banks), and runs m16n8k16 products into fp32.  A group's products are
 * summed apart and multiplied by the group's scale (per output row, fp32)
 * when the group ends - the reference's s * sum q x up to the order of the
 * fp32 additions, with no rounding of the weights (the dequantizing path
 * rounds s * q to 16 bits).  The block's results go through shared memory
 * so the stores of y are whole rows; bias and the residual add are fused
 * there.  x is taken as it is: AWQ's pre-quant scale is applied before
 * (llm_k_prescale).
 *
 * Batches that leave SMs idle split K across blocks (at most 16 parts,
 * each a whole number of groups); the parts' fp32 sums go to a workspace
 * and a second kernel adds them in part order, so a product's bits do not
 * depend on the split's timing.
 */
#include "common.cuh"
#include "q4tile.cuh"

/* a block: W warps of 8 / W row tiles each (llm_k_set_q4gemm_shape: 4 warps x 2 tiles,
 * or 8 x 1 - twice the warps an SM at about half the registers a thread) */
#define QG_BM 128 /* output rows a block */
#define QG_STAGES 4
#define QG_A_BYTES (QG_BM / 16 * 512) /* one chunk's tiles */
#define QG_LDO (QG_BM + 4)            /* fp32 staging stride of the block's results */

static constexpr size_t qg_stage(int bn)
{
    return (size_t)QG_A_BYTES + (size_t)bn * 128;
}
static constexpr size_t qg_smem(int bn)
{
    return qg_stage(bn) * QG_STAGES > (size_t)bn * QG_LDO * 4 ? qg_stage(bn) * QG_STAGES
                                                              : (size_t)bn * QG_LDO * 4;
}

static __device__ __forceinline__ uint32_t word_of(const uint4 &v, int s)
{
    return s == 0 ? v.x : s == 1 ? v.y : s == 2 ? v.z : v.w;
}

/* One m16n8 fp32 accumulator fragment (rows r and r + 8, columns c and c + 1) into the
 * block's sums so[column][row]. */
static __device__ __forceinline__ void q4_frag_out(float *so, int ldo, int r, int c, const float *d)
{
    so[c * ldo + r] = d[0];
    so[(c + 1) * ldo + r] = d[1];
    so[c * ldo + r + 8] = d[2];
    so[(c + 1) * ldo + r + 8] = d[3];
}

/* The block's sums so[c][r] (mn x rows m0.., bm outputs n0..; nt threads) out as whole rows:
 * part NULL: y = sums (+ bias) (+ y); else into part[blockIdx.z][M][N] in fp32. */
template <typename T>
static __device__ __forceinline__ void q4_rows_out(const float *so, int ldo, int bm, int nt, int mn,
                                                   int m0, int n0, T *y, int ldy, const T *bias,
                                                   float *part, int M, int N, int accumulate)
{
    for (int e = threadIdx.x; e < mn * bm; e += nt) {
        const int c = e / bm, r = e % bm, n = n0 + r;
        if (n >= N) continue;
        const float v = so[c * ldo + r];
        const int64_t m = m0 + c;
        if (part) {
            part[((int64_t)blockIdx.z * M + m) * N + n] = v;
        } else {
            float o = v + (bias ? to_f32(bias[n]) : 0.f);
            if (accumulate) o += to_f32(y[m * ldy + n]);
            y[m * ldy + n] = from_f32<T>(o);
        }
    }
}

/* A thread's part of the cp.async copies that bring one chunk into a stage, with its
 * addresses made once, before the chunk loop: NT threads, WN 16-byte pieces of the block's
 * tiles (CB bytes of a 16-row tile a chunk, tiles tb bytes apart in wq; tiles past
 * N are skipped: their rows are never stored) and XN pieces of the rows of x (128 bytes of a
 * row a chunk, rows ldb bytes apart, a row's 16-byte pieces XOR-swizzled by the row in the
 * stage; rows past M are zero-filled).  A chunk's copies are then one add a piece: the
 * loops' trip counts are constants and a piece's row and swizzle do not change with the
 * chunk (the pieces of a thread are NT / 8 rows apart, a multiple of 8). */
template <int NT, int WN, int XN, int CB> struct chunk_copy {
    static_assert(NT % 64 == 0 && CB % 16 == 0 && NT % (CB / 16) == 0 && WN % NT == 0 &&
                      XN % NT == 0 && WN > 0 && XN > 0,
                  "chunk_copy: the pieces must be whole rounds of the threads");
    static constexpr int WP = WN / NT, XP = XN / NT, PT = CB / 16, TS = NT / PT, RS = NT / 8;
    const unsigned char *w, *x, *x0;
    int64_t wstep, xstep;
    int nw, nx;
    uint32_t wo, xo;

    __device__ __forceinline__ chunk_copy(const void *wq, int64_t tb, int rt0, int ntile,
                                          const void *xp, int64_t ldb, int m0, int M)
    {
        const int tid = threadIdx.x, rt = rt0 + tid / PT, r = tid >> 3, c = tid & 7;
        x0 = static_cast<const unsigned char *>(xp);
        w = static_cast<const unsigned char *>(wq) + (rt < ntile ? rt : 0) * tb + (tid % PT) * 16;
        wstep = TS * tb;
        nw = rt < ntile ? min(WP, (ntile - rt + TS - 1) / TS) : 0;
        wo = tid * 16;
        x = x0 + (m0 + r < M ? (int64_t)(m0 + r) * ldb + c * 16 : 0);
        xstep = RS * ldb;
        nx = m0 + r < M ? min(XP, (M - m0 - r + RS - 1) / RS) : 0;
        xo = r * 128 + ((c ^ (r & 7)) << 4);
    }
    /* chunk kc's pieces into the stage's tile area sa and x area sb */
    __device__ __forceinline__ void issue(unsigned char *sa, unsigned char *sb, int kc) const
    {
#pragma unroll
        for (int j = 0; j < WP; j++)
            if (j < nw) cp_async16(sa + wo + j * NT * 16, w + j * wstep + kc * CB);
#pragma unroll
        for (int i = 0; i < XP; i++) {
            const bool ok = i < nx;
            cp_async16_zfill(sb + xo + i * NT * 16, ok ? x + i * xstep + kc * 128 : x0, ok);
        }
    }
};

/* Block (blockIdx.x, blockIdx.y, blockIdx.z): x rows [BN bx, + BN), output
 * rows [128 by, + 128), chunks [kcs bz, + kcs) of K / 64.  part NULL: y =
 * sums (+ bias) (+ y); else the sums go to part[bz][M][N] in fp32. */
template <typename T, int GS, int BN, bool ZP, int QG_WARPS>
__global__ void __launch_bounds__(QG_WARPS * 32, QG_WARPS == 8 ? 2 : 1)
    q4gemm_kernel(T *y, int ldy, const T *x, int ldx, const uint8_t *wq, const float *wscale,
                  const int8_t *wzq, const T *bias, float *part, int M, int N, int K, int kcs,
                  int accumulate)
{
    constexpr int QG_WR = 8 / QG_WARPS; /* row tiles a warp */
    extern __shared__ __align__(16) unsigned char qg_sm[];
    constexpr int STAGE = (int)qg_stage(BN), NJ = BN / 8;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int m0 = blockIdx.x * BN, rt0 = blockIdx.y * (QG_BM / 16);
    const int KT = K / 64, NG = K / GS, ntile = N / 16;
    const int kc0 = blockIdx.z * kcs, kc1 = min(KT, kc0 + kcs);

    /* one chunk into stage st: the block's tiles, BN x rows */
    constexpr int NT = QG_WARPS * 32;
    const chunk_copy<NT, QG_A_BYTES / 16, BN * 8, 512> cc(wq, (int64_t)KT * 512, rt0, ntile, x,
                                                          (int64_t)ldx * sizeof(T), m0, M);
    auto load = [&](int st, int kc) {
        unsigned char *sa = qg_sm + (size_t)st * STAGE;
        cc.issue(sa, sa + QG_A_BYTES, kc);
    };

    float acc[QG_WR][NJ][4], prt[QG_WR][NJ][4];
#pragma unroll
    for (int i = 0; i < QG_WR; i++)
#pragma unroll
        for (int j = 0; j < NJ; j++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                acc[i][j][e] = prt[i][j][e] = 0.f;

    /* this lane's scale rows (g and g + 8 of each of the warp's tiles), and (ZP) zero points */
    const float *srow[QG_WR];
    const int8_t *zrow[QG_WR];
    bool live[QG_WR];
#pragma unroll
    for (int i = 0; i < QG_WR; i++) {
        const int rt = rt0 + warp * QG_WR + i;
        live[i] = rt < ntile;
        const int64_t o = (int64_t)((live[i] ? rt : 0) * 16 + g) * NG;
        srow[i] = wscale + o;
        zrow[i] = ZP ? wzq + o : nullptr;
    }

#pragma unroll
    for (int s = 0; s < QG_STAGES - 1; s++) {
        if (kc0 + s < kc1) load(s, kc0 + s);
        cp_commit();
    }
    /* lane's ldmatrix row within a 16-row pair of n-blocks, and its 16-byte piece's half */
    const int lrow = 8 * (lane >> 4) + (lane & 7), lhalf = (lane >> 3) & 1;
    for (int kc = kc0; kc < kc1; kc++) {
        const int it = kc - kc0;
        cp_wait<QG_STAGES - 2>();
        __syncthreads();
        if (kc + QG_STAGES - 1 < kc1) load((it + QG_STAGES - 1) % QG_STAGES, kc + QG_STAGES - 1);
        cp_commit();
        const unsigned char *sa = qg_sm + (size_t)(it % QG_STAGES) * STAGE, *sb = sa + QG_A_BYTES;
        uint4 aw[QG_WR];
#pragma unroll
        for (int i = 0; i < QG_WR; i++)
            aw[i] = *reinterpret_cast<const uint4 *>(sa + (warp * QG_WR + i) * 512 + lane * 16);
        /* the scales of the groups that end in this chunk (after k-step 1 and 3 for
         * groups of 32, after k-step 3 otherwise), loaded before the products */
        float sc[QG_WR][2][2];
#pragma unroll
        for (int i = 0; i < QG_WR; i++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int gi = (kc * 64 + 32 * h + 16) / GS;
                const bool need = GS == 32 || (h == 1 && ((kc + 1) * 64) % GS == 0);
                sc[i][h][0] = need && live[i] ? __ldg(srow[i] + gi) : 0.f;
                sc[i][h][1] = need && live[i] ? __ldg(srow[i] + 8 * NG + gi) : 0.f;
            }
        /* (ZP) the dequantization's constants of the chunk's groups (k-steps 0-1 and 2-3 for
         * groups of 32) */
        uint2 zc[QG_WR][2];
#pragma unroll
        for (int i = 0; ZP && i < QG_WR; i++)
#pragma unroll
            for (int h = 0; h < (GS == 32 ? 2 : 1); h++) {
                const int gi = (kc * 64 + 32 * h) / GS;
                zc[i][h] = t2dq<T>::zc(live[i] ? __ldg(zrow[i] + gi) : 0,
                                       live[i] ? __ldg(zrow[i] + 8 * NG + gi) : 0);
            }
#pragma unroll
        for (int ks = 0; ks < 4; ks++) {
            uint32_t af[QG_WR][4];
#pragma unroll
            for (int i = 0; i < QG_WR; i++) {
                if (ZP)
                    t2dq<T>::a4z(word_of(aw[i], ks), af[i], zc[i][GS == 32 ? ks >> 1 : 0]);
                else
                    t2dq<T>::a4(word_of(aw[i], ks), af[i]);
            }
#pragma unroll
            for (int jj = 0; jj < NJ / 2; jj++) {
                uint32_t b[4];
                const int row = 16 * jj + lrow, ch = 2 * ks + lhalf;
                ldsm_x4(b, sb + row * 128 + ((ch ^ (row & 7)) << 4));
#pragma unroll
                for (int i = 0; i < QG_WR; i++) {
                    tc<T>::mma(prt[i][2 * jj], af[i], b[0], b[1]);
                    tc<T>::mma(prt[i][2 * jj + 1], af[i], b[2], b[3]);
                }
            }
            if (ks & 1) {
                const int h = ks >> 1;
                const bool gend = GS == 32 || (h == 1 && ((kc + 1) * 64) % GS == 0);
                if (gend) {
#pragma unroll
                    for (int i = 0; i < QG_WR; i++)
#pragma unroll
                        for (int j = 0; j < NJ; j++) {
                            acc[i][j][0] = fmaf(sc[i][h][0], prt[i][j][0], acc[i][j][0]);
                            acc[i][j][1] = fmaf(sc[i][h][0], prt[i][j][1], acc[i][j][1]);
                            acc[i][j][2] = fmaf(sc[i][h][1], prt[i][j][2], acc[i][j][2]);
                            acc[i][j][3] = fmaf(sc[i][h][1], prt[i][j][3], acc[i][j][3]);
                            prt[i][j][0] = prt[i][j][1] = prt[i][j][2] = prt[i][j][3] = 0.f;
                        }
                }
            }
        }
    }
    cp_wait<0>();
    __syncthreads();

    /* the block's sums through shared memory: [BN][QG_LDO] fp32, then whole rows of y */
    float *so = reinterpret_cast<float *>(qg_sm);
#pragma unroll
    for (int i = 0; i < QG_WR; i++)
#pragma unroll
        for (int j = 0; j < NJ; j++)
            q4_frag_out(so, QG_LDO, (warp * QG_WR + i) * 16 + g, 8 * j + 2 * t, acc[i][j]);
    __syncthreads();
    q4_rows_out(so, QG_LDO, QG_BM, QG_WARPS * 32, min(BN, M - m0), m0, rt0 * 16, y, ldy, bias, part,
                M, N, accumulate);
}

/* y = sum of the S parts in order (+ bias) (+ y). */
template <typename T>
__global__ void q4gemm_reduce(T *y, int ldy, const float *part, int S, const T *bias, int M, int N,
                              int accumulate)
{
    const int64_t total = (int64_t)M * N;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        float v = 0.f;
        for (int s = 0; s < S; s++)
            v += part[s * total + e];
        const int64_t m = e / N;
        const int n = (int)(e % N);
        if (bias) v += to_f32(bias[n]);
        if (accumulate) v += to_f32(y[m * ldy + n]);
        y[m * ldy + n] = from_f32<T>(v);
    }
}

/* ---- the same product on Hopper's warpgroup MMA (llm_k_set_q4gemm_shape 3) ----------------
 *
 * Two warpgroups a block, each 64 of the block's 128 output rows; a warp's row tile is its
 * 16 rows of the warpgroup's m64 A operand, and the A fragment of wgmma.m64nNk16 from
 * registers is, warp by warp, the m16n8k16 fragment the tile layout is made for - so the
 * codes are dequantized in registers as above, then each value is multiplied by its group's
 * scale in fp32 and rounded to 16 bits - the weights the dequantizing path gives cuBLASLt -
 * so the products accumulate straight into the fp32 sums.  x is the B operand, read by the
 * tensor cores from shared memory: BN rows of 128 bytes a chunk, their 16-byte pieces
 * XOR-swizzled by the row (the hardware's 128-byte swizzle, stage bases 1024-aligned), one
 * matrix descriptor a k-step.  BN 128 (two blocks an SM) or 256 (m64n256 products, one block
 * an SM: a chunk's dequantization feeds twice the products). */
#define WG_STAGES 4
#define WG_PD 2 /* chunks loaded ahead: a stage is rewritten two chunks after its products */

static constexpr size_t wg_stage(int bn, int wgs)
{
    return (size_t)bn * 128 + (size_t)wgs * 4 * 512;
}
static constexpr size_t wg_smem(int bn, int wgs)
{
    return 1024 + (wg_stage(bn, wgs) * WG_STAGES > (size_t)bn * (64 * wgs + 4) * 4
                       ? wg_stage(bn, wgs) * WG_STAGES
                       : (size_t)bn * (64 * wgs + 4) * 4);
}

/* shared-memory matrix descriptor: 128-byte swizzle, 1024 bytes between 8-row groups */
static __device__ __forceinline__ uint64_t wg_desc(const void *p)
{
    const uint64_t a = (uint32_t)__cvta_generic_to_shared(p);
    return ((a & 0x3ffff) >> 4) | (uint64_t)1 << 16 | (uint64_t)(1024 >> 4) << 32 |
           (uint64_t)1 << 62;
}
static __device__ __forceinline__ void wg_fence(void)
{
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
static __device__ __forceinline__ void wg_commit(void)
{
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N> static __device__ __forceinline__ void wg_wait(void)
{
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

#define WG_F4(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3])
#define WG_F32(i)                                                                                  \
    WG_F4(i), WG_F4(i + 4), WG_F4(i + 8), WG_F4(i + 12), WG_F4(i + 16), WG_F4(i + 20),             \
        WG_F4(i + 24), WG_F4(i + 28)
#define WG_R64                                                                                     \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, "       \
    "%19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, "        \
    "%36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, "        \
    "%53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
#define WG_MMA128(TY)                                                                              \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"                                      \
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " " WG_R64               \
                 "{%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"                                     \
                 : WG_F32(0), WG_F32(32)                                                           \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(sd))

#define WG_R128                                                                                    \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, "       \
    "%19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, "        \
    "%36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, "        \
    "%53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, "        \
    "%70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, "        \
    "%87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, "    \
    "%104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, "         \
    "%118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "
#define WG_MMA256(TY)                                                                              \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %133, 0;\n"                                     \
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32." TY "." TY " " WG_R128              \
                 "{%128, %129, %130, %131}, %132, p, 1, 1, 0;\n}\n"                                \
                 : WG_F32(0), WG_F32(32), WG_F32(64), WG_F32(96)                                   \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(sd))

/* d (BN / 2 fp32 a thread) = (sd ? d : 0) + A (registers) B (descriptor), one k-step; BN 128
 * or 256 */
template <typename T, int BN> struct wgmma;
template <> struct wgmma<bf16, 128> {
    static __device__ __forceinline__ void run(float *d, const uint32_t *a, uint64_t desc, int sd)
    {
        WG_MMA128("bf16");
    }
};
template <> struct wgmma<__half, 128> {
    static __device__ __forceinline__ void run(float *d, const uint32_t *a, uint64_t desc, int sd)
    {
        WG_MMA128("f16");
    }
};
template <> struct wgmma<bf16, 256> {
    static __device__ __forceinline__ void run(float *d, const uint32_t *a, uint64_t desc, int sd)
    {
        WG_MMA256("bf16");
    }
};
template <> struct wgmma<__half, 256> {
    static __device__ __forceinline__ void run(float *d, const uint32_t *a, uint64_t desc, int sd)
    {
        WG_MMA256("f16");
    }
};

/* The end of a warpgroup-MMA block (NT threads, BM output rows, BN x rows, warp w's rows
 * 16 w ..): its fp32 sums acc (the m64nBN fragment) through shared memory sm ([BN][BM + 4]),
 * then whole rows of y or the K split's part, as q4_rows_out. */
template <typename T, int BN, int BM, int NT>
static __device__ __forceinline__ void wg_block_out(unsigned char *sm, const float *acc, int m0,
                                                    int rt0, T *y, int ldy, const T *bias,
                                                    float *part, int M, int N, int accumulate)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    float *so = reinterpret_cast<float *>(sm);
#pragma unroll
    for (int j = 0; j < BN / 8; j++)
        q4_frag_out(so, BM + 4, warp * 16 + g, 8 * j + 2 * t, acc + 4 * j);
    __syncthreads();
    q4_rows_out(so, BM + 4, BM, NT, min(BN, M - m0), m0, rt0 * 16, y, ldy, bias, part, M, N,
                accumulate);
}

/* the arguments and results of q4gemm_kernel, but 64 WGS output rows a block (WGS warpgroups);
 * SX: every scale is a value of T (llm_k_qw.scale_exact), so s * q is one 16-bit multiply of
 * the same bits */
template <typename T, int GS, int BN, bool ZP, int WGS, bool SX>
__global__ void __launch_bounds__(WGS * 128, BN == 256 ? 1 : 4 / WGS)
    q4wg_kernel(T *y, int ldy, const T *x, int ldx, const uint8_t *wq, const float *wscale,
                const int8_t *wzq, const T *bias, float *part, int M, int N, int K, int kcs,
                int accumulate)
{
    extern __shared__ __align__(16) unsigned char wg_raw[];
    unsigned char *sm =
        wg_raw + ((1024 - ((uint32_t)__cvta_generic_to_shared(wg_raw) & 1023)) & 1023);
    constexpr int STAGE = (int)wg_stage(BN, WGS), NA = BN / 2, NT = WGS * 128, BM = WGS * 64;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2;
    const int m0 = blockIdx.x * BN, rt0 = blockIdx.y * (BM / 16);
    const int KT = K / 64, NG = K / GS, ntile = N / 16;
    const int kc0 = blockIdx.z * kcs, kc1 = min(KT, kc0 + kcs);

    /* one chunk into stage st: BN x rows first, then the block's tiles */
    const chunk_copy<NT, BM * 2, BN * 8, 512> cc(wq, (int64_t)KT * 512, rt0, ntile, x,
                                                 (int64_t)ldx * sizeof(T), m0, M);
    auto load = [&](int st, int kc) {
        unsigned char *sb = sm + (size_t)st * STAGE;
        cc.issue(sb + BN * 128, sb, kc);
    };

    float acc[NA];
#pragma unroll
    for (int e = 0; e < NA; e++)
        acc[e] = 0.f;
    const int rt = rt0 + warp;
    const bool live = rt < ntile;
    const int64_t so0 = (int64_t)((live ? rt : 0) * 16 + g) * NG;
    const float *srow = wscale + so0;
    const int8_t *zrow = ZP ? wzq + so0 : nullptr;

#pragma unroll
    for (int s = 0; s < WG_PD; s++) {
        if (kc0 + s < kc1) load(s, kc0 + s);
        cp_commit();
    }
    /* a chunk's scales (rows g, g + 8; its two halves' groups) and zero points, read a chunk
     * ahead of their use */
    struct side {
        float s[2][2];
        int z[2][2];
    };
    auto fetch = [&](int kc, side &d) {
        if (kc >= kc1) return;
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int gi = (kc * 64 + 32 * h) / GS;
            d.s[h][0] = live ? __ldg(srow + gi) : 0.f;
            d.s[h][1] = live ? __ldg(srow + 8 * NG + gi) : 0.f;
            if (ZP) {
                d.z[h][0] = live ? __ldg(zrow + gi) : 0;
                d.z[h][1] = live ? __ldg(zrow + 8 * NG + gi) : 0;
            }
        }
    };
    /* one chunk: its tile words become s * q in a (two arrays used in turn, so a chunk's A
     * registers are not rewritten while its products may run), four k-steps into the sums;
     * then the chunk before is waited for (its stage and A registers are free) */
    auto chunk = [&](int kc, uint32_t(&a)[4][4], const side &cur, side &next) {
        const int it = kc - kc0;
        fetch(kc + 1, next);
        cp_wait<WG_PD - 1>();
        __syncthreads();
        if (kc + WG_PD < kc1) load((it + WG_PD) % WG_STAGES, kc + WG_PD);
        cp_commit();
        const unsigned char *sb = sm + (size_t)(it % WG_STAGES) * STAGE;
        const uint4 aw = *reinterpret_cast<const uint4 *>(sb + BN * 128 + warp * 512 + lane * 16);
        uint32_t sp[2][2]; /* (SX) the scales in T, twice */
#pragma unroll
        for (int h = 0; SX && h < 2; h++)
#pragma unroll
            for (int r = 0; r < 2; r++)
                sp[h][r] = tc<T>::pack(cur.s[h][r], cur.s[h][r]);
#pragma unroll
        for (int ks = 0; ks < 4; ks++) {
            const int h = ks >> 1;
            uint32_t q[4];
            if (ZP)
                t2dq<T>::a4z(word_of(aw, ks), q, t2dq<T>::zc(cur.z[h][0], cur.z[h][1]));
            else
                t2dq<T>::a4(word_of(aw, ks), q);
#pragma unroll
            for (int j = 0; j < 4; j++)
                a[ks][j] =
                    SX ? t2dq<T>::mul2(q[j], sp[h][j & 1]) : t2dq<T>::scale2(q[j], cur.s[h][j & 1]);
        }
        wg_fence();
#pragma unroll
        for (int ks = 0; ks < 4; ks++)
            wgmma<T, BN>::run(acc, a[ks], wg_desc(sb + 32 * ks), 1);
        wg_commit();
        wg_wait<1>();
    };
    uint32_t a0[4][4], a1[4][4];
    side sd0, sd1;
    fetch(kc0, sd0);
    /* pairs of chunks with no branch between them, so ptxas sees the same products in
     * flight at every wait (a branch there made it serialize every wgmma, C7513) */
    int kc = kc0;
    for (; kc + 1 < kc1; kc += 2) {
        chunk(kc, a0, sd0, sd1);
        chunk(kc + 1, a1, sd1, sd0);
    }
    if (kc < kc1) chunk(kc, a0, sd0, sd1);
    wg_wait<0>();
    cp_wait<0>();
    __syncthreads();
    wg_block_out<T, BN, BM, NT>(sm, acc, m0, rt0, y, ldy, bias, part, M, N, accumulate);
}

/* ---- W4A8: the same tiles times e4m3 rows on fp8 warpgroup MMA (llm_k_q4_gemm8) ----------
 *
 * A tile byte's low nibble and high nibble are rows g and g + 8 at one input, stored as
 * u = q + 8; the byte 0000uuuu read as e4m3 is u * 2^-9 exactly (subnormal below 8, the first
 * binade from 8), so one mask (w & 0x0f0f0f0f, (w >> 4) & 0x0f0f0f0f) makes four A values of
 * the m64nNk32 e4m3 fragment from a word: two words (32 inputs) give a warp's four A
 * registers of one k-step, rows g and g + 8 at inputs 4 t .. 4 t + 3 and 16 + 4 t .. - the
 * inputs in the tile's order, which llm_k_quant_x8t writes x's codes in, so both operands
 * agree.  A chunk is one group (128 inputs, four k-steps: two tiles a warp, 128 bytes a row
 * of x, the 128-byte swizzle): its products go to partial sums P = 2^-9 sum u c, then
 * acc += 512 s (P - X), X = 2^-9 8 sum c the group's sum of x's codes (llm_k_quant_x8t, over
 * 64), so acc = sum_g s_g sum q c - the reference's int4 product of the rounded x, s carrying
 * the activation scale (the backend folds it into the group scales).  Two warpgroups, 128
 * output rows a block, as q4wg_kernel. */
#define W8_STAGES 4
#define W8_PD 2

static constexpr size_t w8_stage(int bn)
{
    return (size_t)bn * 128 + 8 * 1024 + 1024; /* x's codes, the tiles, x's group sums */
}
static constexpr size_t w8_smem(int bn)
{
    return 1024 + (w8_stage(bn) * W8_STAGES > (size_t)bn * 132 * 4 ? w8_stage(bn) * W8_STAGES
                                                                   : (size_t)bn * 132 * 4);
}

#define W8_MMA128                                                                                  \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"                                      \
                 "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 " WG_R64                   \
                 "{%64, %65, %66, %67}, %68, p, 1, 1;\n}\n"                                        \
                 : WG_F32(0), WG_F32(32)                                                           \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(sd))
#define WG_R32                                                                                     \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, "       \
    "%19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
#define W8_MMA64                                                                                   \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                      \
                 "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 " WG_R32                    \
                 "{%32, %33, %34, %35}, %36, p, 1, 1;\n}\n"                                        \
                 : WG_F32(0)                                                                       \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(sd))
/* d (BN / 2 fp32 a thread) = (sd ? d : 0) + A (registers) B (descriptor), one k-step of 32 */
template <int BN> struct wgmma8;
template <> struct wgmma8<128> {
    static __device__ __forceinline__ void run(float *d, const uint32_t *a, uint64_t desc, int sd)
    {
        W8_MMA128;
    }
};
template <> struct wgmma8<64> {
    static __device__ __forceinline__ void run(float *d, const uint32_t *a, uint64_t desc, int sd)
    {
        W8_MMA64;
    }
};

/* one k-step's A registers from the words of its two 16-input steps */
static __device__ __forceinline__ void w8_a(uint32_t *a, uint32_t lo, uint32_t hi)
{
    a[0] = lo & 0x0f0f0f0fu;
    a[1] = (lo >> 4) & 0x0f0f0f0fu;
    a[2] = hi & 0x0f0f0f0fu;
    a[3] = (hi >> 4) & 0x0f0f0f0fu;
}

/* pin a fragment's registers: reads and writes of r are not moved across this point (the
 * partial sums of an asynchronous MMA are read only after the wait for it) */
template <int N> static __device__ __forceinline__ void wg_pin(float (&r)[N])
{
#pragma unroll
    for (int e = 0; e < N; e++)
        asm volatile("" : "+f"(r[e])::"memory");
}

/* Block (blockIdx.x, .y, .z): x rows [BN bx, + BN), output rows [128 by, + 128), groups
 * [kcs bz, + kcs); xq the codes [M][K] in tile order, xs the group sums [K / 128][ldxs];
 * part NULL: y = sums (+ bias) (+ y), else the sums into part[bz][M][N] in fp32.  BN 64
 * halves the registers (two blocks an SM) and the x rows a block reads.  Each group is
 * waited for before its fold (two sets of partial sums, a group's fold under the next one's
 * products, ran 24-27% slower on an H100: one block an SM; docs/CUDA.md). */
template <typename T, int BN>
__global__ void __launch_bounds__(256, BN == 64 ? 2 : 1)
    q4wg8_kernel(T *y, int ldy, const uint8_t *xq, const float *xs, int ldxs, const uint8_t *wq,
                 const float *wscale, const T *bias, float *part, int M, int N, int K, int kcs,
                 int accumulate)
{
    constexpr int BM = 128, NA = BN / 2;
    constexpr int STAGE = (int)w8_stage(BN);
    extern __shared__ __align__(16) unsigned char w8_raw[];
    unsigned char *sm =
        w8_raw + ((1024 - ((uint32_t)__cvta_generic_to_shared(w8_raw) & 1023)) & 1023);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int m0 = blockIdx.x * BN, rt0 = blockIdx.y * (BM / 16);
    const int KT = K / 64, NG = K / 128, ntile = N / 16;
    const int kc0 = blockIdx.z * kcs, kc1 = min(NG, kc0 + kcs);

    /* one group into stage st: BN rows of codes (rows past M zero), the block's 16 tiles,
     * the rows' group sums */
    const chunk_copy<256, 8 * 64, BN * 8, 1024> cc(wq, (int64_t)KT * 512, rt0, ntile, xq, K, m0, M);
    auto load = [&](int st, int kc) {
        unsigned char *sb = sm + (size_t)st * STAGE, *sa = sb + BN * 128, *sx = sa + 8 * 1024;
        cc.issue(sa, sb, kc);
        if (tid < BN / 4) {
            const bool ok = m0 + 4 * tid < ldxs;
            cp_async16_zfill(sx + tid * 16, ok ? xs + (int64_t)kc * ldxs + m0 + 4 * tid : xs, ok);
        }
    };

    float acc[NA];
#pragma unroll
    for (int e = 0; e < NA; e++)
        acc[e] = 0.f;
    const int rt = rt0 + warp;
    const bool live = rt < ntile;
    const float *srow = wscale + (int64_t)((live ? rt : 0) * 16 + g) * NG;

#pragma unroll
    for (int s = 0; s < W8_PD; s++) {
        if (kc0 + s < kc1) load(s, kc0 + s);
        cp_commit();
    }
    /* a group's scales (rows g, g + 8), times 2^9; waited for at the group's fold */
    struct gs {
        float s0, s1;
        const unsigned char *sb;
    };
    /* group kc: its stage waited for, the stage two groups on loaded, its A registers made
     * from the tiles and its four k-steps issued into the partial sums pc */
    auto issue = [&](int kc, float(&pc)[NA], uint32_t(&a)[4][4]) -> gs {
        const int it = kc - kc0;
        gs r;
        r.s0 = live ? 512.f * __ldg(srow + kc) : 0.f;
        r.s1 = live ? 512.f * __ldg(srow + 8 * NG + kc) : 0.f;
        cp_wait<W8_PD - 1>();
        __syncthreads();
        if (kc + W8_PD < kc1) load((it + W8_PD) % W8_STAGES, kc + W8_PD);
        cp_commit();
        r.sb = sm + (size_t)(it % W8_STAGES) * STAGE;
        const unsigned char *sa = r.sb + BN * 128 + warp * 1024 + lane * 16;
        const uint4 w0 = *reinterpret_cast<const uint4 *>(sa);
        const uint4 w1 = *reinterpret_cast<const uint4 *>(sa + 512);
        w8_a(a[0], w0.x, w0.y);
        w8_a(a[1], w0.z, w0.w);
        w8_a(a[2], w1.x, w1.y);
        w8_a(a[3], w1.z, w1.w);
        wg_pin(pc);
        wg_fence();
#pragma unroll
        for (int ks = 0; ks < 4; ks++)
            wgmma8<BN>::run(pc, a[ks], wg_desc(r.sb + 32 * ks), ks);
        wg_commit();
        return r;
    };
    /* a finished group's partial sums folded into acc: acc += 512 s (P - X) */
    auto fold = [&](float(&pp)[NA], const gs &r) {
        wg_pin(pp);
        const float *sx = reinterpret_cast<const float *>(r.sb + BN * 128 + 8 * 1024);
#pragma unroll
        for (int j = 0; j < BN / 8; j++) {
            const float2 xv = *reinterpret_cast<const float2 *>(sx + 8 * j + 2 * t);
            acc[4 * j] = fmaf(r.s0, pp[4 * j] - xv.x, acc[4 * j]);
            acc[4 * j + 1] = fmaf(r.s0, pp[4 * j + 1] - xv.y, acc[4 * j + 1]);
            acc[4 * j + 2] = fmaf(r.s1, pp[4 * j + 2] - xv.x, acc[4 * j + 2]);
            acc[4 * j + 3] = fmaf(r.s1, pp[4 * j + 3] - xv.y, acc[4 * j + 3]);
        }
    };
    float p0[NA] = {};
    uint32_t a0[4][4];
    for (int kc = kc0; kc < kc1; kc++) {
        const gs r = issue(kc, p0, a0);
        wg_wait<0>();
        fold(p0, r);
    }
    cp_wait<0>();
    __syncthreads();
    wg_block_out<T, BN, BM, 256>(sm, acc, m0, rt0, y, ldy, bias, part, M, N, accumulate);
}

extern "C" int llm_k_q4_gemm8_ok(int dt, const struct llm_k_qw *w, int N, int K)
{
    return (dt == K_DT_F16 || dt == K_DT_BF16) && w->fmt == LLM_K_Q_INT4 && w->tile && !w->zm &&
           !w->zq && w->group == 128 && K > 0 && K % 128 == 0 && N > 0 && N % 16 == 0;
}

extern "C" int llm_k_q4_gemm_ok(int dt, const struct llm_k_qw *w, int N, int K, const void *x,
                                int ldx)
{
    return (dt == K_DT_F16 || dt == K_DT_BF16) && w->fmt == LLM_K_Q_INT4 && w->tile &&
           (!w->zm || w->zq) && (w->group == 32 || w->group == 64 || w->group == 128) && K > 0 &&
           K % 64 == 0 && K % w->group == 0 && N > 0 && N % 16 == 0 && ldx % 8 == 0 &&
           ((uintptr_t)x & 15) == 0;
}

/* 0: 4 warps x 2 row tiles, 1: the same, 2: 8 warps x 1, 3: warpgroup MMA past 64 rows (shape
 * 1 up to 64), 4: the same with 256 output rows a block */
static int q4g_shape = 0;
extern "C" void llm_k_set_q4gemm_shape(int shape)
{
    q4g_shape = shape;
}

/* the warpgroup kernel's x rows a block past 128 rows: 256 (one block an SM, twice the
 * products a chunk's dequantization feeds; measured faster, docs/CUDA.md), or 128 */
static int q4wg_bn = 256;
extern "C" void llm_k_set_q4wg_bn(int bn)
{
    q4wg_bn = bn == 256 ? 256 : 128;
}

/* K split (whole groups a part) while the blocks fill fewer than two waves of the SMs (two
 * blocks an SM; one: while the parts still fit one wave), as far as the workspace holds the
 * parts: the parts S, kcs the chunks of 64 inputs a part */
static int q4_split(int blocks, int KT, int GS, int M, int N, size_t ws_bytes, int *kcs,
                    int one = 0)
{
    const int unit = GS > 64 ? GS / 64 : 1, nu = KT / unit, want = 2 * k_sms();
    int S = 1;
    while (S < 16 && S * 2 <= nu &&
           (one ? (int64_t)blocks * S * 2 <= k_sms() : (int64_t)blocks * S < want) &&
           (size_t)(S * 2) * M * N * sizeof(float) <= ws_bytes)
        S *= 2;
    *kcs = (nu + S - 1) / S * unit;
    return (KT + *kcs - 1) / *kcs;
}

/* the K split's S parts in ws summed into y (q4gemm_reduce) */
template <typename T>
static void q4_reduce_go(T *y, int ldy, const float *ws, int S, const T *bias, int M, int N,
                         int accumulate, cudaStream_t st)
{
    const int64_t total = (int64_t)M * N;
    const int blocks = (int)((total + 255) / 256 < 4096 ? (total + 255) / 256 : 4096);
    q4gemm_reduce<T><<<blocks, 256, 0, st>>>(y, ldy, ws, S, bias, M, N, accumulate);
}

/* W 4 or 8: q4gemm_kernel with W warps; W 0: q4wg_kernel with WGS warpgroups (2; 4 reads x
 * from L2 half as often, measured no faster), BN 128 or 256 x rows a block */
template <typename T, int GS, int BN, bool ZP, int W, int WGS = 2, bool SX = false>
static int q4gemm_go(T *y, int ldy, const T *x, int ldx, const struct llm_k_qw *w, const T *bias,
                     int M, int N, int K, int accumulate, float *ws, size_t ws_bytes,
                     cudaStream_t st)
{
    void (*kern)(T *, int, const T *, int, const uint8_t *, const float *, const int8_t *,
                 const T *, float *, int, int, int, int, int);
    constexpr int QW = W ? W : 4;
    if constexpr (W == 0 && (BN == 128 || BN == 256))
        kern = q4wg_kernel<T, GS, BN, ZP, WGS, SX>;
    else
        kern = q4gemm_kernel<T, GS, BN, ZP, QW>;
    const size_t smem = W ? qg_smem(BN) : wg_smem(BN, WGS);
    const int bm = W ? QG_BM : 64 * WGS;
    static bool attr;
    if (!attr) {
        cudaError_t e =
            cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return (int)e;
        attr = true;
    }
    const int mb = (M + BN - 1) / BN, nb = (N + bm - 1) / bm, KT = K / 64;
    int kcs;
    const int S = q4_split(mb * nb, KT, GS, M, N, ws_bytes, &kcs, !W && BN == 256);
    dim3 grid(mb, nb, S);
    kern<<<grid, W ? W * 32 : WGS * 128, smem, st>>>(
        y, ldy, x, ldx, static_cast<const uint8_t *>(w->q), w->scale, w->zq, bias,
        S > 1 ? ws : NULL, M, N, K, kcs, accumulate);
    if (S > 1) q4_reduce_go(y, ldy, ws, S, bias, M, N, accumulate, st);
    return (int)cudaGetLastError();
}

template <typename T, int GS>
static int q4gemm_bn(T *y, int ldy, const T *x, int ldx, const struct llm_k_qw *w, const T *bias,
                     int M, int N, int K, int accumulate, float *ws, size_t ws_bytes,
                     cudaStream_t st)
{
#define QG_GO(BN, ZP, W, ...)                                                                      \
    q4gemm_go<T, GS, BN, ZP, W, ##__VA_ARGS__>(y, ldy, x, ldx, w, bias, M, N, K, accumulate, ws,   \
                                               ws_bytes, st)
#define QG_W(BN, ZP) (q4g_shape == 2 ? QG_GO(BN, ZP, 8) : QG_GO(BN, ZP, 4))
#define QG_WG2(BN, ZP) (w->scale_exact ? QG_GO(BN, ZP, 0, 2, true) : QG_GO(BN, ZP, 0, 2))
#define QG_WG(ZP)                                                                                  \
    (q4g_shape == 4              ? QG_GO(128, ZP, 0, 4)                                            \
     : q4wg_bn == 256 && M > 128 ? QG_WG2(256, ZP)                                                 \
                                 : QG_WG2(128, ZP))
    if (q4g_shape >= 3 && M > 64) return w->zq ? QG_WG(true) : QG_WG(false);
    if (w->zq) return M <= 32 ? QG_W(32, true) : QG_W(64, true);
    return M <= 32 ? QG_W(32, false) : QG_W(64, false);
#undef QG_WG
#undef QG_WG2
#undef QG_W
#undef QG_GO
}

template <typename T>
static int q4gemm_gs(T *y, int ldy, const T *x, int ldx, const struct llm_k_qw *w, const T *bias,
                     int M, int N, int K, int accumulate, float *ws, size_t ws_bytes,
                     cudaStream_t st)
{
    switch (w->group) {
    case 32:
        return q4gemm_bn<T, 32>(y, ldy, x, ldx, w, bias, M, N, K, accumulate, ws, ws_bytes, st);
    case 64:
        return q4gemm_bn<T, 64>(y, ldy, x, ldx, w, bias, M, N, K, accumulate, ws, ws_bytes, st);
    default:
        return q4gemm_bn<T, 128>(y, ldy, x, ldx, w, bias, M, N, K, accumulate, ws, ws_bytes, st);
    }
}

/* the fused W4A8 product's x rows a block: 64 (the default: two blocks an SM, measured faster
 * at 16..256 rows on an H100) or 128 */
static int q4g8_bn = 0;
extern "C" void llm_k_set_q4gemm8_bn(int bn)
{
    q4g8_bn = bn;
}

template <typename T, int BN>
static int q4gemm8_go(T *y, int ldy, const uint8_t *xq, const float *xs, const struct llm_k_qw *w,
                      const T *bias, int M, int N, int K, int accumulate, float *ws,
                      size_t ws_bytes, cudaStream_t st)
{
    static bool attr;
    const size_t smem = w8_smem(BN);
    if (!attr) {
        cudaError_t e = cudaFuncSetAttribute(
            q4wg8_kernel<T, BN>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return (int)e;
        attr = true;
    }
    const int mb = (M + BN - 1) / BN, nb = (N + 127) / 128, KT = K / 64;
    int kcs;
    const int S = q4_split(mb * nb, KT, 128, M, N, ws_bytes, &kcs);
    q4wg8_kernel<T, BN><<<dim3(mb, nb, S), 256, smem, st>>>(
        y, ldy, xq, xs, (M + 3) & ~3, static_cast<const uint8_t *>(w->q), w->scale, bias,
        S > 1 ? ws : NULL, M, N, K, kcs / 2, accumulate);
    if (S > 1) q4_reduce_go(y, ldy, ws, S, bias, M, N, accumulate, st);
    return (int)cudaGetLastError();
}

template <typename T>
static int q4gemm8_bn(T *y, int ldy, const uint8_t *xq, const float *xs, const struct llm_k_qw *w,
                      const T *bias, int M, int N, int K, int accumulate, float *ws,
                      size_t ws_bytes, cudaStream_t st)
{
    if (q4g8_bn != 128)
        return q4gemm8_go<T, 64>(y, ldy, xq, xs, w, bias, M, N, K, accumulate, ws, ws_bytes, st);
    return q4gemm8_go<T, 128>(y, ldy, xq, xs, w, bias, M, N, K, accumulate, ws, ws_bytes, st);
}

extern "C" int llm_k_q4_gemm8(int dt, void *y, int ldy, const void *xq, const float *xs,
                              const struct llm_k_qw *w, const void *bias, int M, int N, int K,
                              int accumulate, void *ws, size_t ws_bytes, llm_stream_t stream)
{
    if (M <= 0) return 0;
    if (!llm_k_q4_gemm8_ok(dt, w, N, K) || ldy < N) return (int)cudaErrorInvalidValue;
    cudaStream_t st = (cudaStream_t)stream;
    const uint8_t *q = static_cast<const uint8_t *>(xq);
    float *wsf = static_cast<float *>(ws);
    if (dt == K_DT_F16)
        return q4gemm8_bn<__half>(static_cast<__half *>(y), ldy, q, xs, w,
                                  static_cast<const __half *>(bias), M, N, K, accumulate, wsf,
                                  ws ? ws_bytes : 0, st);
    return q4gemm8_bn<bf16>(static_cast<bf16 *>(y), ldy, q, xs, w, static_cast<const bf16 *>(bias),
                            M, N, K, accumulate, wsf, ws ? ws_bytes : 0, st);
}

extern "C" int llm_k_q4_gemm(int dt, void *y, int ldy, const void *x, int ldx,
                             const struct llm_k_qw *w, const void *bias, int M, int N, int K,
                             int accumulate, void *ws, size_t ws_bytes, llm_stream_t stream)
{
    if (M <= 0) return 0;
    if (!llm_k_q4_gemm_ok(dt, w, N, K, x, ldx) || ldy < N) return (int)cudaErrorInvalidValue;
    cudaStream_t st = (cudaStream_t)stream;
    float *wsf = static_cast<float *>(ws);
    if (dt == K_DT_F16)
        return q4gemm_gs<__half>(static_cast<__half *>(y), ldy, static_cast<const __half *>(x), ldx,
                                 w, static_cast<const __half *>(bias), M, N, K, accumulate, wsf,
                                 ws ? ws_bytes : 0, st);
    return q4gemm_gs<bf16>(static_cast<bf16 *>(y), ldy, static_cast<const bf16 *>(x), ldx, w,
                           static_cast<const bf16 *>(bias), M, N, K, accumulate, wsf,
                           ws ? ws_bytes : 0, st);
}
