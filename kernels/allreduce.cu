/* allreduce.cu - all-reduce over peer memory for small messages between
 * the GPUs of one host (NVLink / PCIe peer access), where NCCL's latency
 * dominates: TensorRT-LLM's one-shot and two-shot algorithms.
 *
 * Every rank has one registered buffer (its input, written there before
 * the call) that all ranks can read and write through peer pointers, and a
 * flag array the others signal it through.  Barriers are per block: block b
 * of a rank writes the barrier's value into slot (rank, b) of every peer's
 * flags and waits until the n slots (p, b) of its own flags reach it.
 * Values only grow (the caller numbers its calls, every rank in the same
 * order), so a slot never needs resetting.
 *
 *   one-shot: barrier; out[i] = sum over ranks of buf_r[i]; barrier (no
 *             rank reuses its buffer while others still read it).
 *   two-shot: barrier; rank r sums its 1/n share of every buffer into its
 *             own buffer; barrier; each rank copies every share from its
 *             owner into out; barrier.
 * Sums run in fp32 over the ranks in rank order, so every rank gets the same
 * bits and so does a CPU summing in the same order.
 */
#include "common.cuh"

#define AR_MAX_BLOCKS 64

static __device__ __forceinline__ void st_flag(uint32_t *p, uint32_t v)
{
    asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

static __device__ __forceinline__ uint32_t ld_flag(const uint32_t *p)
{
    uint32_t v;
    asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

/* Block-wide barrier with the same block of every rank. */
static __device__ void ar_barrier(const llm_ar_peers &p, uint32_t value)
{
    __syncthreads();
    int t = threadIdx.x;
    if (t < p.n) {
        __threadfence_system();
        st_flag(p.flags[t] + p.rank * AR_MAX_BLOCKS + blockIdx.x, value);
        const uint32_t *mine = p.flags[p.rank] + t * AR_MAX_BLOCKS + blockIdx.x;
        while ((int32_t)(ld_flag(mine) - value) < 0) {
        }
    }
    __syncthreads();
}

/* Vectors [lo, hi) of every rank's buffer summed (fp32, rank order) into dst. */
template <typename T>
static __device__ void sum_ranks(const llm_ar_peers &p, T *dst, int64_t lo, int64_t hi)
{
    const int V = vec<T>::N;
    for (int64_t i = lo + blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < hi;
         i += (int64_t)gridDim.x * blockDim.x) {
        float acc[vec<T>::N];
        for (int k = 0; k < V; k++) acc[k] = 0.f;
        for (int r = 0; r < p.n; r++) {
            vec<T> a = vload((const T *)p.buf[r] + i * V);
            for (int k = 0; k < V; k++) acc[k] += to_f32(a.v[k]);
        }
        vec<T> o;
        for (int k = 0; k < V; k++) o.v[k] = from_f32<T>(acc[k]);
        vstore(dst + i * V, o);
    }
}

template <typename T>
__global__ void ar_oneshot_kernel(llm_ar_peers p, T *out, int64_t nv, uint32_t seq)
{
    ar_barrier(p, seq + 1);
    sum_ranks(p, out, 0, nv);
    ar_barrier(p, seq + 2);
}

template <typename T>
__global__ void ar_twoshot_kernel(llm_ar_peers p, T *out, int64_t nv, uint32_t seq)
{
    const int V = vec<T>::N;
    int64_t share = (nv + p.n - 1) / p.n;
    ar_barrier(p, seq + 1);
    /* reduce-scatter: my share of every buffer, summed into mine */
    int64_t lo = p.rank * share, hi = lo + share < nv ? lo + share : nv;
    sum_ranks(p, (T *)p.buf[p.rank], lo, hi);
    ar_barrier(p, seq + 2);
    /* all-gather: every share from its owner */
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < nv;
         i += (int64_t)gridDim.x * blockDim.x) {
        int owner = (int)(i / share);
        vstore(out + i * V, vload((const T *)p.buf[owner] + i * V));
    }
    ar_barrier(p, seq + 3);
}

extern "C" int llm_k_allreduce(int dt, int two_shot, const llm_ar_peers *p, void *out,
                               int64_t n, uint32_t seq, int blocks, llm_stream_t stream)
{
    if (n <= 0) return 0;
    if (p->n < 1 || p->n > LLM_AR_MAX_RANKS || p->rank < 0 || p->rank >= p->n || n % 8 ||
        blocks < 1 || blocks > AR_MAX_BLOCKS)
        return (int)cudaErrorInvalidValue;
    DISPATCH_DT(dt, T, {
        int64_t nv = n / vec<T>::N;
        if (two_shot)
            ar_twoshot_kernel<T><<<blocks, 256, 0, (cudaStream_t)stream>>>(*p, (T *)out, nv, seq);
        else
            ar_oneshot_kernel<T><<<blocks, 256, 0, (cudaStream_t)stream>>>(*p, (T *)out, nv, seq);
        return (int)cudaGetLastError();
    });
    return 0;
}

extern "C" uint64_t llm_k_allreduce_flag_bytes(void)
{
    return sizeof(uint32_t) * LLM_AR_MAX_RANKS * AR_MAX_BLOCKS;
}

extern "C" int llm_k_allreduce_pick(uint64_t bytes, int n_ranks)
{
    /* TensorRT-LLM's policy in spirit: one-shot while every rank reading
     * every buffer is cheap, two-shot for medium messages, NCCL beyond */
    if (n_ranks <= 1) return LLM_AR_NCCL;
    if (bytes <= (n_ranks <= 2 ? (512u << 10) : (64u << 10))) return LLM_AR_ONESHOT;
    if (bytes <= (8u << 20)) return LLM_AR_TWOSHOT;
    return LLM_AR_NCCL;
}
