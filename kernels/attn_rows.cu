/* attn_rows.cu - paged attention for single query rows (decode), split
 * along the key sequence, with a combining pass.
 *
 * Design: one block per (query row, KV head, split).  The block owns every
 * query head of its GQA group, so each K/V element is read from device
 * memory once per group, not once per query head.  Keys are staged through
 * shared memory 32 tokens at a time with cp.async, two stages deep (the
 * next chunk loads while this one is used); scores, the online softmax
 * (running max and sum per head) and the P.V accumulation happen in shared
 * memory in fp32.  Decode is bound by reading the KV cache, so the kernel
 * is sized for many independent blocks in flight rather than for
 * arithmetic.  Long contexts are cut into splits of split_len tokens that
 * run as separate blocks; each split stores its normalised partial output
 * and log-sum-exp, and the last split block of a (row, KV head) to finish
 * weights them together (an arrival counter, so no second launch).  The
 * split length is read from device memory and the grid has a fixed
 * number of splits (empty ones exit at once), so a captured CUDA graph
 * serves every context length of its batch size.
 */
#include "common.cuh"

#define CH 32   /* tokens per staged chunk */
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

/* Split blocks of one (row, KV head) count themselves in; the last one to
 * arrive weights the partial outputs together (fixed split order, so the
 * result does not depend on which block is last) and resets the counter. */
template <typename T>
static __device__ void combine_if_last(const struct llm_k_attn &a, int r, int i, int kvh, int G,
                                       int D, int max_splits, const float *wsrow, int *counters)
{
    __shared__ int last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        int *cnt = counters + (int64_t)i * a.n_kv_heads + kvh;
        last = atomicAdd(cnt, 1) == max_splits - 1;
        if (last) *cnt = 0;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    T *o = (T *)a.o + (int64_t)r * a.n_heads * D + (int64_t)kvh * G * D;
    for (int e = threadIdx.x; e < G * D; e += NT) {
        int g = e / D, d = e - g * D;
        const float *w = wsrow + (int64_t)g * max_splits * (D + 1);
        float m = -INFINITY;
        for (int s = 0; s < max_splits; s++) m = fmaxf(m, __ldcg(w + s * (D + 1) + D));
        float tot = 0.f, v = 0.f;
        for (int s = 0; s < max_splits; s++) {
            float l = __ldcg(w + s * (D + 1) + D);
            if (l == -INFINITY) continue;
            float f = __expf(l - m);
            tot += f;
            v += f * __ldcg(w + s * (D + 1) + d);
        }
        o[e] = from_f32<T>(v / tot);
    }
}

template <typename T>
__global__ void __launch_bounds__(NT) attn_rows_kernel(const struct llm_k_attn a,
                                                       const int32_t *rows, const int32_t *seqs,
                                                       const int32_t *split_len_p, int max_splits,
                                                       float *ws, int *counters)
{
    constexpr int V = vec<T>::N;
    pdl_wait();
    pdl_trigger();
    const int D = a.head_dim, G = a.n_heads / a.n_kv_heads;
    const int DP = D + V; /* padded smem row: rows shift by 16 bytes, no bank conflicts */
    const int i = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
    const int r = rows[i], sq = seqs[i];
    const int p = a.pos[r];
    const int lo = a.window > 0 ? max(0, p - a.window + 1) : 0;
    const int64_t split_len = max_splits > 1 ? *split_len_p : 1 << 30;
    const int64_t begin64 = lo + (int64_t)split * split_len;
    const int begin = (int)min(begin64, (int64_t)p + 1);
    const int end = (int)min((int64_t)p + 1, begin64 + split_len);

    extern __shared__ __align__(16) unsigned char smem[];
    T *ks = (T *)smem;                  /* [2][CH][DP] */
    T *vs = ks + 2 * CH * DP;           /* [2][CH][DP] */
    float *qs = (float *)(vs + 2 * CH * DP); /* [G][D] */
    float *acc = qs + G * D;            /* [G][D] */
    float *sc = acc + G * D;            /* [G][CH] */
    float *mrun = sc + G * CH;          /* [G] */
    float *lrun = mrun + G;             /* [G] */
    float *alph = lrun + G;             /* [G] */

    const int h0 = kvh * G;
    float *wsrow = ws ? ws + ((int64_t)i * a.n_heads + h0) * max_splits * (D + 1) : nullptr;
    if (begin >= p + 1) {
        /* An unused split of a short row: mark it empty for the combine. */
        for (int g = threadIdx.x; g < G; g += NT)
            wsrow[((int64_t)g * max_splits + split) * (D + 1) + D] = -INFINITY;
        combine_if_last<T>(a, r, i, kvh, G, D, max_splits, wsrow, counters);
        return;
    }

    const int32_t *bt = a.block_table + (int64_t)sq * a.bt_stride;
    const T *kvbase = (const T *)a.kv;
    const int64_t head_off = (int64_t)kvh * a.block_size * D;
    const int64_t v_off = (int64_t)a.n_kv_heads * a.block_size * D;
    const int dvn = D / V;

    auto load_chunk = [&](int buf, int c0) {
        for (int e = threadIdx.x; e < CH * dvn; e += NT) {
            int t = e / dvn, dv = e - t * dvn;
            int tok = c0 + t;
            if (tok < end) {
                int blk = bt[tok / a.block_size], off = tok % a.block_size;
                const T *src = kvbase + (int64_t)blk * a.blk_stride + head_off +
                               (int64_t)off * D + dv * V;
                cp_async16(ks + (buf * CH + t) * DP + dv * V, src);
                cp_async16(vs + (buf * CH + t) * DP + dv * V, src + v_off);
            }
        }
        cp_async_commit();
    };

    const int nchunks = (end - begin + CH - 1) / CH;
    const float slope = a.alibi ? a.alibi[h0] : 0.f;
    load_chunk(0, begin); /* in flight while q is read */
    const T *q = (const T *)a.q + (int64_t)r * a.q_stride + h0 * D;
    for (int e = threadIdx.x; e < G * D; e += NT) {
        qs[e] = to_f32(q[e]);
        acc[e] = 0.f;
    }
    for (int g = threadIdx.x; g < G; g += NT) {
        mrun[g] = -INFINITY;
        lrun[g] = 0.f;
    }
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

        /* scores: four threads per (head, token), each a quarter of the dims
         * (interleaved 16-byte vectors), joined by two shuffles; G * CH * 4 is
         * a multiple of the block, so every lane takes part in each shuffle */
        for (int e = threadIdx.x; e < G * CH * 4; e += NT) {
            int qt = e & 3, gt = e >> 2;
            int g = gt / CH, t = gt - g * CH;
            float d0 = 0.f, d1 = 0.f;
            if (t < nvalid) {
                const T *kr = ks + (buf * CH + t) * DP;
                const float *qr = qs + g * D;
                for (int dv = qt; dv < dvn; dv += 4) {
                    vec<T> kv = vload(kr + dv * V);
#pragma unroll
                    for (int k = 0; k < V; k += 2) {
                        d0 += qr[dv * V + k] * to_f32(kv.v[k]);
                        d1 += qr[dv * V + k + 1] * to_f32(kv.v[k + 1]);
                    }
                }
            }
            float d = d0 + d1;
            d += __shfl_xor_sync(0xffffffffu, d, 1);
            d += __shfl_xor_sync(0xffffffffu, d, 2);
            if (qt == 0) {
                float s = -INFINITY;
                if (t < nvalid) {
                    s = d * a.scale;
                    if (a.softcap > 0.f) s = a.softcap * tanhf(s / a.softcap);
                    if (a.alibi) s += (G == 1 ? slope : a.alibi[h0 + g]) * (float)(c0 + t - p);
                }
                sc[gt] = s;
            }
        }
        __syncthreads();

        /* online softmax, one warp per head */
        for (int g = threadIdx.x >> 5; g < G; g += NT / 32) {
            int lane = threadIdx.x & 31;
            float s = sc[g * CH + lane];
            float mx = warp_max(s);
            float mo = mrun[g];
            float mn = fmaxf(mo, mx);
            float pv = mn == -INFINITY ? 0.f : __expf(s - mn);
            float sum = warp_sum(pv);
            sc[g * CH + lane] = pv;
            if (lane == 0) {
                float al = mo == -INFINITY ? 0.f : __expf(mo - mn);
                alph[g] = al;
                lrun[g] = lrun[g] * al + sum;
                mrun[g] = mn;
            }
        }
        __syncthreads();

        /* acc = acc * alpha + P V */
        for (int e = threadIdx.x; e < G * D; e += NT) {
            int g = e / D, d = e - g * D;
            const float *pr = sc + g * CH;
            const T *vc = vs + buf * CH * DP + d;
            float s0 = 0.f, s1 = 0.f;
            int t = 0;
            for (; t + 1 < nvalid; t += 2) {
                s0 += pr[t] * to_f32(vc[t * DP]);
                s1 += pr[t + 1] * to_f32(vc[(t + 1) * DP]);
            }
            if (t < nvalid) s0 += pr[t] * to_f32(vc[t * DP]);
            acc[e] = acc[e] * alph[g] + s0 + s1;
        }
        __syncthreads();
    }

    if (max_splits == 1) {
        T *o = (T *)a.o + (int64_t)r * a.n_heads * D + h0 * D;
        for (int e = threadIdx.x; e < G * D; e += NT) o[e] = from_f32<T>(acc[e] / lrun[e / D]);
    } else {
        for (int e = threadIdx.x; e < G * D; e += NT) {
            int g = e / D, d = e - g * D;
            wsrow[((int64_t)g * max_splits + split) * (D + 1) + d] = acc[e] / lrun[g];
        }
        for (int g = threadIdx.x; g < G; g += NT)
            wsrow[((int64_t)g * max_splits + split) * (D + 1) + D] = mrun[g] + logf(lrun[g]);
        combine_if_last<T>(a, r, i, kvh, G, D, max_splits, wsrow, counters);
    }
}

template <typename T> static int launch_rows(const struct llm_k_attn *a, const int32_t *rows,
                                             const int32_t *seqs, int n, const int32_t *split_len,
                                             int max_splits, float *ws, int *counters,
                                             cudaStream_t st)
{
    constexpr int V = vec<T>::N;
    const int D = a->head_dim, G = a->n_heads / a->n_kv_heads;
    size_t smem = sizeof(T) * 4 * CH * (D + V) + sizeof(float) * (2 * G * D + G * CH + 3 * G);
    static size_t smem_set = 48 * 1024;
    if (smem > smem_set) {
        cudaError_t e = cudaFuncSetAttribute(attn_rows_kernel<T>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (e != cudaSuccess) return (int)e;
        smem_set = smem;
    }
    dim3 grid(n, a->n_kv_heads, max_splits);
    return launch_pdl(attn_rows_kernel<T>, grid, dim3(NT), smem, st, *a, rows, seqs, split_len,
                      max_splits, max_splits > 1 ? ws : nullptr, counters);
}

extern "C" int llm_k_attn_rows(const struct llm_k_attn *a, const int32_t *rows,
                               const int32_t *seqs, int n, const int32_t *split_len,
                               int max_splits, float *ws, int *counters, llm_stream_t stream)
{
    if (n <= 0) return 0;
    if (a->head_dim % 8 || a->n_kv_heads <= 0 || a->n_heads % a->n_kv_heads || max_splits < 1 ||
        (max_splits > 1 && (!split_len || !ws || !counters)) || max_splits > 65535)
        return (int)cudaErrorInvalidValue;
    DISPATCH_DT(a->dt, T, return launch_rows<T>(a, rows, seqs, n, split_len, max_splits, ws,
                                                counters, stream));
    return 0;
}
