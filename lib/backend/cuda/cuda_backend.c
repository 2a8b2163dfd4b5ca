/* cuda_backend.c - the CUDA backend: llm_backend_ops over kernels/ and cuBLASLt.
 *
 * Design: everything lives on the device from creation on.  Weights are
 * uploaded once in the compute dtype (f16, bf16, or f32 for the exactness
 * tests), converted on the device as they arrive; mlp.fc and mlp.gate are
 * concatenated into one [2 * inter][hidden] matrix so a single product
 * computes both, and the fused activation kernel combines them in place.
 * The activation workspace is allocated for max_batch_tokens at creation,
 * then the KV pool takes kv_bytes or kv_fraction of the memory left.  KV
 * pool layout: [n_blocks][n_layers][K, V][n_kv_heads][block_size][head_dim],
 * so one block of every layer is contiguous (copy_blocks is one copy per
 * block) and the kernels address a layer by offset plus a block stride.
 *
 * A step: the host validates the batch, packs tokens, positions, rope
 * rows, KV slots, block table, output rows and the attention work lists
 * into one pinned buffer and sends it with one copy; then per layer
 * norm -> qkv product -> rope + KV append -> attention (tensor-core tiles
 * for prompt chunks, split-sequence row kernel for decode rows) -> output
 * product accumulated into the residual (cuBLASLt beta = 1, or the GEMV
 * kernel for <= 8 rows) -> norm -> fused gate/up product -> activation ->
 * down product accumulated into the residual.  Only the rows whose logits
 * are wanted go through the final norm and the lm_head (fp32 logits).
 * Semantics follow the CPU reference backend (lib/backend/cpu) op for op;
 * rotary tables are made on the host by the reference's own functions.
 *
 * Engines (llm-build, llm/engine_artifact.h) are checked against this GPU's
 * architecture first; their weights are already in the compute dtype with
 * fc and gate stacked (mlp.fc_gate), so they are copied as they are; their
 * limits are the defaults, their graph sizes the decode buckets, and their
 * measured cuBLASLt choices are tried before the heuristic.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/backend.h"
#include "llm/engine_artifact.h"
#include "llm/err.h"
#include "llm/log.h"
#include "llm/sample.h"
#include "../cpu/cpu_ops.h"
#include "kernels/kernels.h"
#include "cuda_internal.h"

#define DEFAULT_MAX_BATCH_TOKENS 8192
#define DEFAULT_MAX_SEQS 256
#define DEFAULT_KV_FRACTION 0.90
#define RESERVE_BYTES (512ull << 20) /* left free for cuBLASLt, graphs, the driver */
#define GEMM_WS_BYTES (32ull << 20)
#define STAGE_BYTES (64ull << 20)
#define PF_MIN_ROWS 3 /* sequences with fewer new rows use the row kernel */
#define DEFAULT_GEMV_MAX_M 1

struct cu_layer {
    void *n1w, *n1b, *n2w, *n2b; /* input_layernorm, post_layernorm */
    void *qkv, *qkv_b;           /* [(nh + 2 nkv) hd][H] */
    void *o, *o_b;               /* [H][nh hd] */
    void *fc, *fc_b;             /* [2 I][H] (fc; gate) when gated, else [I][H] */
    void *proj, *proj_b;         /* [H][I] */
    int window;
};

struct cu_be {
    struct llm_backend pub;
    const struct llm_model_desc *d;
    struct llm_rope rope;
    int dt;                /* compute dtype */
    size_t es;             /* its size */
    int n_sm;
    cudaStream_t st;
    cudaEvent_t meta_done;
    cudaEvent_t t_start, t_end; /* device time of a step: forward start .. sample end */
    int t_state;                /* 0 nothing timed, 1 forward started, 2 step ended */
    struct cu_gemm *gemm;
    int gemv_max_m;        /* products of up to this many rows use the GEMV kernel */
    int use_graphs;
    int fused_gate;        /* single-row gated MLP through llm_k_gemv_gated */
    cudaGraphExec_t graph[32];
    unsigned char graph_seen[32];
    int buckets[32];       /* decode graph sizes, increasing (an engine's, or the default list) */
    int n_buckets;

    void **allocs;
    int n_allocs, cap_allocs;
    uint64_t weight_bytes;

    void *emb, *pos_emb, *nf_w, *nf_b, *lm;
    float *lm_b;
    struct cu_layer *L;
    float *rope_tab;       /* [rope_sets][rope_npos][half] (cos, sin) */
    int rope_npos, rope_sets;
    float *alibi;

    void *kv;
    int64_t blk_elems;     /* one block of every layer */
    int64_t layer_elems;   /* one layer within a block: K and V */

    int qkv_w, mlp_w;      /* row widths of the qkv and gate/up buffers */
    void *res, *xn, *xn2, *qkv, *att, *mlp;
    int cap_out;
    void *fin, *fin2;
    float *logits;
    float *attn_ws;
    int ws_rows;           /* rows x splits the attention scratch holds */
    int *attn_cnt;         /* split arrival counters, (rows x attn_blocks) < 4 x SMs when split */
    int attn_blocks;       /* row-kernel blocks per query row (llm_k_attn_rows_blocks) */

    int32_t *h_meta, *d_meta;
    size_t meta_cap;       /* int32s */
    int n_out;             /* rows of logits of the last forward, -1 none */
    float *h_logits;       /* pinned, one row for the host sampler */
    void *sample_scratch;
    /* GPU sampler: parameters + token lists (pinned and device), outputs, scratch */
    char *h_samp, *d_samp;
    size_t samp_cap;
    float *s_work;
    int32_t *s_mark;
    int s_rows;
};

static struct cu_be *cu_of(struct llm_backend *be)
{
    return (struct cu_be *)be->priv;
}

/* ---- creation helpers ------------------------------------------------------ */

static int dalloc(struct cu_be *c, void **p, uint64_t bytes, const char *what)
{
    *p = NULL;
    if (c->n_allocs == c->cap_allocs) {
        int nc = c->cap_allocs ? 2 * c->cap_allocs : 64;
        void **na = realloc(c->allocs, sizeof(void *) * (size_t)nc);
        if (!na) return llm_err_set(LLM_ENOMEM, "cuda backend: out of memory");
        c->allocs = na;
        c->cap_allocs = nc;
    }
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 16);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return llm_err_set(LLM_ENOMEM, "cuda backend: cannot allocate %.1f MiB for %s (%s)",
                           (double)bytes / (1 << 20), what, cudaGetErrorName(e));
    }
    c->allocs[c->n_allocs++] = *p;
    return 0;
}

static int dtype_rank(int dt)
{
    return dt == LLM_DTYPE_F32 || dt == LLM_DTYPE_F16 || dt == LLM_DTYPE_BF16;
}

/* Copy tensor t (any float dtype) into dst (dst_dt), converting on the device. */
static int upload_data(struct cu_be *c, const struct llm_tensor *t, uint64_t numel, void *dst,
                       int dst_dt, void *stage, void **host_tmp)
{
    size_t des = dst_dt == LLM_DTYPE_F32 ? 4 : 2;
    if (t->dtype == dst_dt) {
        CK(cudaMemcpyAsync(dst, t->data, numel * des, cudaMemcpyHostToDevice, c->st));
        CK(cudaStreamSynchronize(c->st));
        return 0;
    }
    int sdt = t->dtype;
    size_t ses = (size_t)llm_dtype_bits(sdt) / 8;
    if (!dtype_rank(sdt)) {
        if (!llm_dtype_is_float(sdt) || llm_dtype_bits(sdt) < 8)
            return llm_err_set(LLM_EUNSUPPORTED, "'%s': dtype %s cannot be uploaded", t->name,
                               llm_dtype_name(sdt));
        if (!*host_tmp && !(*host_tmp = malloc(STAGE_BYTES)))
            return llm_err_set(LLM_ENOMEM, "cuda backend: out of memory");
    }
    uint64_t chunk = STAGE_BYTES / 4;
    for (uint64_t off = 0; off < numel; off += chunk) {
        uint64_t n = numel - off < chunk ? numel - off : chunk;
        const char *src = (const char *)t->data + off * ses;
        int kdt = sdt;
        if (!dtype_rank(sdt)) {
            int rc = llm_to_f32(*host_tmp, src, sdt, (size_t)n);
            if (rc) return llm_err_wrap(rc, "'%s'", t->name);
            src = *host_tmp;
            kdt = LLM_DTYPE_F32;
        }
        size_t kes = kdt == LLM_DTYPE_F32 ? 4 : 2;
        CK(cudaMemcpyAsync(stage, src, n * kes, cudaMemcpyHostToDevice, c->st));
        CK(llm_k_convert((char *)dst + off * des, dst_dt, stage, kdt, (int64_t)n, c->st));
        CK(cudaStreamSynchronize(c->st));
    }
    return 0;
}

/* Look up `name` with shape [d0] (d1 == 0) or [d0][d1] and upload it to
 * dst (row offset 0), in dst_dt. */
static int upload(struct cu_be *c, struct llm_model *m, const char *name, int64_t d0, int64_t d1,
                  void *dst, int dst_dt, void *stage, void **host_tmp)
{
    struct llm_tensor t;
    int rc = llm_model_tensor(m, name, &t);
    if (rc) return rc;
    int ndim = d1 ? 2 : 1;
    if (t.ndim != ndim || t.shape[0] != d0 || (d1 && t.shape[1] != d1))
        return llm_err_set(LLM_ESHAPE, "'%s': expected shape [%lld%s%lld], found %d dims [%lld, %lld]",
                           name, (long long)d0, d1 ? ", " : "", d1 ? (long long)d1 : 0LL, t.ndim,
                           (long long)t.shape[0], (long long)(t.ndim > 1 ? t.shape[1] : 0));
    uint64_t numel = (uint64_t)d0 * (uint64_t)(d1 ? d1 : 1), need;
    if (llm_dtype_nbytes(t.dtype, numel, &need) || !t.data || t.nbytes < need)
        return llm_err_set(LLM_ESHAPE, "'%s': %llu bytes of data, expected %llu", name,
                           (unsigned long long)t.nbytes, (unsigned long long)need);
    return upload_data(c, &t, numel, dst, dst_dt, stage, host_tmp);
}

/* Allocate and upload one weight in the compute dtype. */
static int weight(struct cu_be *c, struct llm_model *m, const char *name, int64_t d0, int64_t d1,
                  void **dst, void *stage, void **host_tmp)
{
    uint64_t bytes = (uint64_t)d0 * (uint64_t)(d1 ? d1 : 1) * c->es;
    int rc = dalloc(c, dst, bytes, name);
    if (rc) return rc;
    c->weight_bytes += bytes;
    return upload(c, m, name, d0, d1, *dst, c->dt, stage, host_tmp);
}

static int lweight(struct cu_be *c, struct llm_model *m, int l, const char *suffix, int64_t d0,
                   int64_t d1, void **dst, void *stage, void **host_tmp)
{
    char name[LLM_NAME_MAX];
    snprintf(name, sizeof name, "transformer.layers.%d.%s", l, suffix);
    return weight(c, m, name, d0, d1, dst, stage, host_tmp);
}

/* fc and gate rows stacked into one matrix (or one vector for biases). */
static int lweight_pair(struct cu_be *c, struct llm_model *m, int l, const char *s1,
                        const char *s2, int64_t d0, int64_t d1, void **dst, void *stage,
                        void **host_tmp)
{
    char n1[LLM_NAME_MAX], n2[LLM_NAME_MAX];
    snprintf(n1, sizeof n1, "transformer.layers.%d.%s", l, s1);
    snprintf(n2, sizeof n2, "transformer.layers.%d.%s", l, s2);
    uint64_t half = (uint64_t)d0 * (uint64_t)(d1 ? d1 : 1) * c->es;
    int rc = dalloc(c, dst, 2 * half, n1);
    if (rc) return rc;
    c->weight_bytes += 2 * half;
    if ((rc = upload(c, m, n1, d0, d1, *dst, c->dt, stage, host_tmp))) return rc;
    return upload(c, m, n2, d0, d1, (char *)*dst + half, c->dt, stage, host_tmp);
}

static int check_desc(const struct llm_model_desc *d, int dt)
{
    if (d->n_layers <= 0 || d->n_layers > LLM_MAX_LAYERS || d->hidden <= 0 || d->vocab_size <= 0 ||
        d->n_heads <= 0 || d->n_kv_heads <= 0 || d->head_dim <= 0 || d->intermediate <= 0)
        return llm_err_set(LLM_EINVAL, "model: sizes must be positive (layers %d, hidden %lld, "
                           "vocab %lld, heads %d/%d, head_dim %d, intermediate %lld)",
                           d->n_layers, (long long)d->hidden, (long long)d->vocab_size, d->n_heads,
                           d->n_kv_heads, d->head_dim, (long long)d->intermediate);
    if (d->n_heads % d->n_kv_heads)
        return llm_err_set(LLM_EINVAL, "model: %d kv heads do not divide %d heads", d->n_kv_heads,
                           d->n_heads);
    if (d->hidden % 8 || d->head_dim % 8 || d->intermediate % 8 || d->hidden > 32768 ||
        d->vocab_size > INT32_MAX || d->intermediate > INT32_MAX / 2)
        return llm_err_set(LLM_EUNSUPPORTED, "model: hidden %lld, head_dim %d and intermediate "
                           "%lld must be multiples of 8 for the cuda backend (hidden <= 32768)",
                           (long long)d->hidden, d->head_dim, (long long)d->intermediate);
    if (d->norm != LLM_NORM_RMS && d->norm != LLM_NORM_LAYER)
        return llm_err_set(LLM_EINVAL, "model: unknown norm %d", d->norm);
    if (d->act < 0 || d->act >= LLM_ACT_COUNT)
        return llm_err_set(LLM_EINVAL, "model: unknown activation %d", d->act);
    if (d->pos < 0 || d->pos >= LLM_POS_COUNT)
        return llm_err_set(LLM_EINVAL, "model: unknown position encoding %d", d->pos);
    if (d->n_experts > 0)
        return llm_err_set(LLM_EUNSUPPORTED, "model: mixture of experts is not supported by the "
                           "cuda backend yet");
    if (d->sliding_window < 0)
        return llm_err_set(LLM_EINVAL, "model: sliding_window %d is negative", d->sliding_window);
    if (dt != LLM_DTYPE_F16 && dt != LLM_DTYPE_BF16 && dt != LLM_DTYPE_F32)
        return llm_err_set(LLM_EUNSUPPORTED, "cuda backend: compute dtype %s (f16, bf16 or f32)",
                           llm_dtype_name(dt));
    return 0;
}

/* Rotary tables: cos/sin per position from the reference's own formulas.
 * Longrope keeps a second table (long factors) for sequences past the
 * original length; dynamic scaling changes nothing up to max_pos, past
 * which the backend does not go. */
static int make_rope(struct cu_be *c)
{
    const struct llm_model_desc *d = c->d;
    int half = c->rope.rot_dims / 2, npos = c->pub.max_seq_len;
    c->rope_npos = npos;
    c->rope_sets = 1;
    int64_t L = c->rope.orig_max_pos > 0 ? c->rope.orig_max_pos : d->max_pos;
    if (c->rope.scaling == LLM_ROPE_SCALING_LONGROPE && npos > L) c->rope_sets = 2;
    size_t n = (size_t)c->rope_sets * (size_t)npos * (size_t)half;
    float *h = malloc(n * 2 * sizeof(float));
    float *inv = malloc(sizeof(float) * (size_t)(half + 1) * 3);
    if (!h || !inv) {
        free(h);
        free(inv);
        return llm_err_set(LLM_ENOMEM, "cuda backend: out of memory for the rope table");
    }
    float *cs = inv + half + 1, *sn = cs + half + 1;
    int rc = 0;
    for (int set = 0; set < c->rope_sets && !rc; set++) {
        float ms;
        int64_t seq_len = set ? L + 1 : (npos < L ? npos : L);
        if (c->rope.scaling == LLM_ROPE_SCALING_LONGROPE && c->rope_sets == 1) seq_len = npos;
        if ((rc = llm_cpu_rope_freqs(&c->rope, d->max_pos, seq_len, inv, &ms))) break;
        for (int p = 0; p < npos; p++) {
            llm_cpu_rope_cos_sin(inv, half, ms, p, cs, sn);
            float *row = h + ((size_t)set * npos + p) * 2 * half;
            for (int i = 0; i < half; i++) {
                row[2 * i] = cs[i];
                row[2 * i + 1] = sn[i];
            }
        }
    }
    free(inv);
    if (!rc && !(rc = dalloc(c, (void **)&c->rope_tab, n * 2 * sizeof(float), "rope table"))) {
        cudaError_t e = cudaMemcpyAsync(c->rope_tab, h, n * 2 * sizeof(float),
                                        cudaMemcpyHostToDevice, c->st);
        if (e == cudaSuccess) e = cudaStreamSynchronize(c->st);
        if (e != cudaSuccess) rc = cu_fail(CU_LIB_RT, e, "cudaMemcpy(rope)", __FILE__, __LINE__);
    }
    free(h);
    return rc;
}

/* Captured graphs hold the addresses of the metadata and output buffers:
 * drop them when those move. */
static void drop_graphs(struct cu_be *c)
{
    for (int i = 0; i < 32; i++) {
        if (c->graph[i]) cudaGraphExecDestroy(c->graph[i]);
        c->graph[i] = NULL;
        c->graph_seen[i] = 0;
    }
}

static int grow_meta(struct cu_be *c, size_t ints)
{
    if (ints <= c->meta_cap) return 0;
    drop_graphs(c);
    size_t nc = ints + ints / 2 + 1024;
    if (c->h_meta) {
        CK(cudaStreamSynchronize(c->st));
        cudaFreeHost(c->h_meta);
        cudaFree(c->d_meta);
        c->h_meta = c->d_meta = NULL;
        c->meta_cap = 0;
    }
    CK(cudaMallocHost((void **)&c->h_meta, nc * sizeof(int32_t)));
    CK(cudaMalloc((void **)&c->d_meta, nc * sizeof(int32_t)));
    c->meta_cap = nc;
    return 0;
}

static int grow_out(struct cu_be *c, int n_out)
{
    if (n_out <= c->cap_out) return 0;
    CK(cudaStreamSynchronize(c->st));
    drop_graphs(c);
    cudaFree(c->fin);
    cudaFree(c->fin2);
    cudaFree(c->logits);
    c->fin = c->fin2 = NULL;
    c->logits = NULL;
    c->cap_out = 0;
    size_t H = (size_t)c->d->hidden, V = (size_t)c->d->vocab_size;
    CK(cudaMalloc(&c->fin, (size_t)n_out * H * c->es));
    CK(cudaMalloc(&c->fin2, (size_t)n_out * H * c->es));
    CK(cudaMalloc((void **)&c->logits, (size_t)n_out * V * sizeof(float)));
    c->cap_out = n_out;
    return 0;
}

static void cu_destroy(struct llm_backend *be);
static const struct llm_backend_ops cu_ops_table;
static void default_buckets(struct cu_be *c);

/* eng: the model is an engine (llm-build): its arch must be this GPU's, its
 * limits are the defaults, its fused gate/up tensor and GEMM choices are
 * used as they are. */
static int create_inner(struct cu_be *c, struct llm_model *m, const struct llm_backend_opts *o,
                        const struct llm_ea_info *eng)
{
    const struct llm_model_desc *d = c->d;
    struct llm_backend *be = &c->pub;
    int rc;
    CK(cudaSetDevice(o->device));
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, o->device));
    if (eng && (rc = llm_ea_check_arch(eng, m->path, prop.major, prop.minor, prop.name)))
        return rc;
    c->n_sm = prop.multiProcessorCount;
    snprintf(be->device_name, sizeof be->device_name, "%.127s", prop.name);
    CK(cudaStreamCreateWithFlags(&c->st, cudaStreamNonBlocking));
    CK(cudaEventCreateWithFlags(&c->meta_done, cudaEventDisableTiming));
    CK(cudaEventCreate(&c->t_start));
    CK(cudaEventCreate(&c->t_end));
    if ((rc = cu_gemm_create(&c->gemm, c->dt, GEMM_WS_BYTES))) return rc;
    /* Switches for measurements: LLM_CUDA_GEMV=<m> rows up to which the GEMV kernel
     * replaces cuBLASLt (0 = never); LLM_CUDA_GRAPHS=1 decode graphs; LLM_CUDA_GATED=0
     * no fused gate/up GEMV; LLM_CUDA_PDL=0 no programmatic dependent launch;
     * LLM_CUDA_GEMV_SPLIT=1|2|4 warps per output row of single-row products (2). */
    const char *gv = getenv("LLM_CUDA_GEMV"), *gg = getenv("LLM_CUDA_GRAPHS");
    const char *ga = getenv("LLM_CUDA_GATED"), *gp = getenv("LLM_CUDA_PDL");
    const char *gs = getenv("LLM_CUDA_GEMV_SPLIT");
    c->gemv_max_m = c->dt == LLM_DTYPE_F32 ? 0 : gv ? atoi(gv) : DEFAULT_GEMV_MAX_M;
    if (c->gemv_max_m > 8) c->gemv_max_m = 8;
    c->use_graphs = gg && strcmp(gg, "0"); /* measured slower than eager + PDL (docs/CUDA.md) */
    c->fused_gate = !(ga && !strcmp(ga, "0"));
    llm_k_set_pdl(!(gp && !strcmp(gp, "0")));
    llm_k_set_gemv_split(gs ? atoi(gs) : 2);
    default_buckets(c);
    if (eng && eng->lim.n_graph > 0) { /* the engine's sizes, graphs on unless LLM_CUDA_GRAPHS=0 */
        c->n_buckets = eng->lim.n_graph;
        memcpy(c->buckets, eng->lim.graph_sizes, sizeof(int) * (size_t)eng->lim.n_graph);
        c->use_graphs = !(gg && !strcmp(gg, "0"));
    }
    if (eng && eng->n_gemm) {
        uint64_t v = (uint64_t)cublasLtGetVersion();
        if (eng->gemm_measured && eng->cublaslt_version != v)
            llm_info("'%s': GEMM choices were measured with cuBLASLt %llu, this is %llu: using "
                     "its heuristic", m->path, (unsigned long long)eng->cublaslt_version,
                     (unsigned long long)v);
        else if ((rc = cu_gemm_set_choices(c->gemm, eng->gemm, eng->n_gemm)))
            return rc;
    }

    int64_t H = d->hidden, V = d->vocab_size, I = d->intermediate, hd = d->head_dim;
    int nh = d->n_heads, nkv = d->n_kv_heads;
    c->qkv_w = (nh + 2 * nkv) * (int)hd;
    c->mlp_w = (int)(d->gated_mlp ? 2 * I : I);

    be->block_size = o->block_size > 0 ? o->block_size : eng ? eng->lim.block_size : 32;
    be->max_batch_tokens = o->max_batch_tokens > 0 ? o->max_batch_tokens
                           : eng                   ? eng->lim.max_tokens
                                                   : DEFAULT_MAX_BATCH_TOKENS;
    be->max_seqs = o->max_seqs > 0 ? o->max_seqs : eng ? eng->lim.max_batch : DEFAULT_MAX_SEQS;
    be->max_seq_len = o->max_seq_len > 0 ? o->max_seq_len
                      : eng              ? eng->lim.max_seq_len
                                         : (int)(d->max_pos > 0 ? d->max_pos : 4096);
    if (d->max_pos > 0 && be->max_seq_len > d->max_pos &&
        (d->pos == LLM_POS_LEARNED ||
         (d->pos == LLM_POS_ROPE && d->rope.scaling == LLM_ROPE_SCALING_DYNAMIC)))
        be->max_seq_len = (int)d->max_pos;
    be->vocab = V;
    if (be->max_seqs > be->max_batch_tokens) be->max_seqs = be->max_batch_tokens;

    /* position encodings */
    c->rope = d->rope;
    if (d->pos == LLM_POS_ROPE) {
        if (c->rope.rot_dims == 0) c->rope.rot_dims = (int)hd;
        if (c->rope.rot_dims > hd || c->rope.rot_dims % 2)
            return llm_err_set(LLM_EINVAL, "model: rope rot_dims %d (head_dim %lld)",
                               c->rope.rot_dims, (long long)hd);
        if ((rc = make_rope(c))) return rc;
    }
    if (d->pos == LLM_POS_ALIBI) {
        float *s = malloc(sizeof(float) * (size_t)nh);
        if (!s) return llm_err_set(LLM_ENOMEM, "cuda backend: out of memory");
        llm_cpu_alibi_slopes(s, nh, 8.0);
        rc = dalloc(c, (void **)&c->alibi, sizeof(float) * (size_t)nh, "alibi slopes");
        if (!rc && (cudaMemcpyAsync(c->alibi, s, sizeof(float) * (size_t)nh,
                                    cudaMemcpyHostToDevice, c->st) ||
                    cudaStreamSynchronize(c->st)))
            rc = llm_err_set(LLM_EDEVICE, "cuda backend: cannot upload alibi slopes");
        free(s);
        if (rc) return rc;
    }

    /* weights */
    void *stage = NULL, *host_tmp = NULL;
    if ((rc = dalloc(c, &stage, STAGE_BYTES, "upload staging"))) return rc;
    c->L = calloc((size_t)d->n_layers, sizeof *c->L);
    if (!c->L) return llm_err_set(LLM_ENOMEM, "cuda backend: out of memory");
    rc = weight(c, m, "transformer.vocab_embedding.weight", V, H, &c->emb, stage, &host_tmp);
    if (!rc && d->pos == LLM_POS_LEARNED)
        rc = weight(c, m, "transformer.position_embedding.weight", d->max_pos, H, &c->pos_emb,
                    stage, &host_tmp);
    for (int l = 0; l < d->n_layers && !rc; l++) {
        struct cu_layer *L = &c->L[l];
        int two_norms = !(d->parallel_residual && d->shared_input_norm);
        int64_t qr = c->qkv_w;
        L->window = d->sliding_window > 0 && d->layer_window[l] ? d->sliding_window : 0;
        if ((rc = lweight(c, m, l, "input_layernorm.weight", H, 0, &L->n1w, stage, &host_tmp)))
            break;
        if (d->norm_bias &&
            (rc = lweight(c, m, l, "input_layernorm.bias", H, 0, &L->n1b, stage, &host_tmp)))
            break;
        if ((rc = lweight(c, m, l, "attention.qkv.weight", qr, H, &L->qkv, stage, &host_tmp)))
            break;
        if (d->qkv_bias &&
            (rc = lweight(c, m, l, "attention.qkv.bias", qr, 0, &L->qkv_b, stage, &host_tmp)))
            break;
        if ((rc = lweight(c, m, l, "attention.dense.weight", H, (int64_t)nh * hd, &L->o, stage,
                          &host_tmp)))
            break;
        if (d->o_bias &&
            (rc = lweight(c, m, l, "attention.dense.bias", H, 0, &L->o_b, stage, &host_tmp)))
            break;
        if (two_norms) {
            if ((rc = lweight(c, m, l, "post_layernorm.weight", H, 0, &L->n2w, stage, &host_tmp)))
                break;
            if (d->norm_bias &&
                (rc = lweight(c, m, l, "post_layernorm.bias", H, 0, &L->n2b, stage, &host_tmp)))
                break;
        }
        if (d->gated_mlp && eng && eng->fused_gate) { /* stacked by llm-build already */
            if ((rc = lweight(c, m, l, LLM_EA_FC_GATE_WEIGHT, 2 * I, H, &L->fc, stage,
                              &host_tmp)))
                break;
            if (d->mlp_bias && (rc = lweight(c, m, l, LLM_EA_FC_GATE_BIAS, 2 * I, 0, &L->fc_b,
                                             stage, &host_tmp)))
                break;
        } else if (d->gated_mlp) {
            if ((rc = lweight_pair(c, m, l, "mlp.fc.weight", "mlp.gate.weight", I, H, &L->fc,
                                   stage, &host_tmp)))
                break;
            if (d->mlp_bias && (rc = lweight_pair(c, m, l, "mlp.fc.bias", "mlp.gate.bias", I, 0,
                                                  &L->fc_b, stage, &host_tmp)))
                break;
        } else {
            if ((rc = lweight(c, m, l, "mlp.fc.weight", I, H, &L->fc, stage, &host_tmp))) break;
            if (d->mlp_bias &&
                (rc = lweight(c, m, l, "mlp.fc.bias", I, 0, &L->fc_b, stage, &host_tmp)))
                break;
        }
        if ((rc = lweight(c, m, l, "mlp.proj.weight", H, I, &L->proj, stage, &host_tmp))) break;
        if (d->mlp_bias &&
            (rc = lweight(c, m, l, "mlp.proj.bias", H, 0, &L->proj_b, stage, &host_tmp)))
            break;
    }
    if (!rc) rc = weight(c, m, "transformer.ln_f.weight", H, 0, &c->nf_w, stage, &host_tmp);
    if (!rc && d->norm_bias)
        rc = weight(c, m, "transformer.ln_f.bias", H, 0, &c->nf_b, stage, &host_tmp);
    if (!rc) {
        if (d->tied_embeddings)
            c->lm = c->emb;
        else
            rc = weight(c, m, "lm_head.weight", V, H, &c->lm, stage, &host_tmp);
    }
    if (!rc && d->lm_head_bias) {
        rc = dalloc(c, (void **)&c->lm_b, (uint64_t)V * 4, "lm_head.bias");
        if (!rc)
            rc = upload(c, m, "lm_head.bias", V, 0, c->lm_b, LLM_DTYPE_F32, stage, &host_tmp);
    }
    free(host_tmp);
    /* the staging buffer stays in the allocation list; it is small */
    if (rc) return rc;

    /* activation workspace */
    uint64_t T = (uint64_t)be->max_batch_tokens, es = c->es;
    if ((rc = dalloc(c, &c->res, T * H * es, "residual")) ||
        (rc = dalloc(c, &c->xn, T * H * es, "normed activations")) ||
        (rc = dalloc(c, &c->qkv, T * (uint64_t)c->qkv_w * es, "qkv")) ||
        (rc = dalloc(c, &c->att, T * (uint64_t)nh * hd * es, "attention output")) ||
        (rc = dalloc(c, &c->mlp, T * (uint64_t)c->mlp_w * es, "mlp activations")))
        return rc;
    if (d->parallel_residual && !d->shared_input_norm &&
        (rc = dalloc(c, &c->xn2, T * H * es, "second norm")))
        return rc;
    c->ws_rows = 8 * c->n_sm;
    c->attn_blocks = llm_k_attn_rows_blocks(nh, nkv);
    if ((rc = dalloc(c, (void **)&c->attn_ws,
                     (uint64_t)c->ws_rows * nh * (hd + 1) * sizeof(float), "attention splits")) ||
        (rc = dalloc(c, (void **)&c->attn_cnt, sizeof(int) * 4 * (uint64_t)c->n_sm,
                     "attention counters")))
        return rc;
    CK(cudaMemsetAsync(c->attn_cnt, 0, sizeof(int) * 4 * (size_t)c->n_sm, c->st));
    if ((rc = grow_out(c, be->max_seqs))) return rc;
    if ((rc = grow_meta(c, 8 * T + 4096))) return rc;

    /* KV pool */
    int kv_dt = o->kv_dtype;
    if (kv_dt != c->dt) {
        if (kv_dt == LLM_DTYPE_F32 && c->dt != LLM_DTYPE_F32)
            llm_debug("cuda backend: kv dtype follows the compute dtype (%s)",
                      llm_dtype_name(c->dt));
        else
            return llm_err_set(LLM_EUNSUPPORTED, "cuda backend: kv dtype %s with compute dtype "
                               "%s (the KV cache is kept in the compute dtype)",
                               llm_dtype_name(kv_dt), llm_dtype_name(c->dt));
    }
    c->layer_elems = 2 * (int64_t)nkv * be->block_size * hd;
    c->blk_elems = c->layer_elems * d->n_layers;
    uint64_t per_block = (uint64_t)c->blk_elems * es;
    uint64_t want = o->kv_bytes;
    if (!want) {
        size_t fr = 0, tot = 0;
        CK(cudaMemGetInfo(&fr, &tot));
        double f = o->kv_fraction > 0.0 ? o->kv_fraction : DEFAULT_KV_FRACTION;
        want = fr > RESERVE_BYTES ? (uint64_t)(f * (double)(fr - RESERVE_BYTES)) : 0;
        uint64_t useful = (uint64_t)be->max_seqs *
                          (uint64_t)((be->max_seq_len + be->block_size - 1) / be->block_size) *
                          per_block;
        if (want > useful) want = useful;
    }
    uint64_t nb = want / per_block;
    if (nb > (uint64_t)(INT32_MAX / be->block_size)) nb = INT32_MAX / be->block_size;
    if (nb < 1)
        return llm_err_set(LLM_ECAPACITY, "cuda backend: kv pool of %llu bytes holds no block of "
                           "%llu bytes", (unsigned long long)want, (unsigned long long)per_block);
    be->n_blocks = (int)nb;
    be->kv_bytes = nb * per_block;
    if ((rc = dalloc(c, &c->kv, be->kv_bytes, "kv pool"))) return rc;
    CK(cudaMemsetAsync(c->kv, 0, be->kv_bytes, c->st));
    CK(cudaStreamSynchronize(c->st));
    llm_info("cuda: %s, %d SMs; weights %.2f GiB in %s; kv pool %d blocks of %d tokens "
             "(%lld tokens, %.2f GiB); batch <= %d tokens, %d sequences",
             be->device_name, c->n_sm, (double)c->weight_bytes / (1 << 30),
             llm_dtype_name(c->dt), be->n_blocks, be->block_size,
             (long long)be->n_blocks * be->block_size, (double)be->kv_bytes / (1 << 30),
             be->max_batch_tokens, be->max_seqs);
    return 0;
}

int llm_backend_cuda_create(struct llm_backend **out, const struct llm_model *m,
                            const struct llm_backend_opts *o)
{
    *out = NULL;
    struct llm_backend_opts defaults;
    if (!o) {
        llm_backend_opts_init(&defaults);
        o = &defaults;
    }
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess || ndev <= 0) {
        cudaGetLastError();
        return llm_err_set(LLM_EUNSUPPORTED, "no CUDA device (%s)",
                           e != cudaSuccess ? cudaGetErrorName(e) : "none found");
    }
    if (o->device < 0 || o->device >= ndev)
        return llm_err_set(LLM_EINVAL, "cuda device %d: %d device%s present", o->device, ndev,
                           ndev == 1 ? "" : "s");
    int dt = o->compute_dtype, rc;
    struct llm_ea_info eng;
    int is_eng = m->meta && llm_ea_present(m->meta);
    if (is_eng) { /* an engine fixes the compute dtype its weights are in */
        if ((rc = llm_ea_info_from_meta(m->meta, m->path, &eng))) return rc;
        if (dt != eng.compute_dtype)
            llm_debug("cuda backend: '%s' is an engine in %s", m->path,
                      llm_dtype_name(eng.compute_dtype));
        dt = eng.compute_dtype;
    }
    rc = check_desc(&m->desc, dt);
    struct cu_be *c = rc ? NULL : calloc(1, sizeof *c);
    if (!rc && !c) rc = llm_err_set(LLM_ENOMEM, "cuda backend: out of memory");
    if (rc) {
        if (is_eng) llm_ea_info_free(&eng);
        return rc;
    }
    c->pub.ops = &cu_ops_table;
    c->pub.model = m;
    c->pub.priv = c;
    c->d = &m->desc;
    c->dt = dt;
    c->es = dt == LLM_DTYPE_F32 ? 4 : 2;
    c->n_out = -1;
    rc = create_inner(c, (struct llm_model *)m, o, is_eng ? &eng : NULL);
    if (is_eng) llm_ea_info_free(&eng);
    if (rc) {
        cu_destroy(&c->pub);
        return rc;
    }
    *out = &c->pub;
    return 0;
}

static void cu_destroy(struct llm_backend *be)
{
    if (!be) return;
    struct cu_be *c = cu_of(be);
    if (c->st) cudaStreamSynchronize(c->st);
    drop_graphs(c);
    for (int i = 0; i < c->n_allocs; i++) cudaFree(c->allocs[i]);
    free(c->allocs);
    cudaFree(c->fin);
    cudaFree(c->fin2);
    cudaFree(c->logits);
    cudaFree(c->d_meta);
    if (c->h_meta) cudaFreeHost(c->h_meta);
    if (c->h_logits) cudaFreeHost(c->h_logits);
    if (c->h_samp) cudaFreeHost(c->h_samp);
    cudaFree(c->d_samp);
    cudaFree(c->s_work);
    cudaFree(c->s_mark);
    cu_gemm_destroy(c->gemm);
    if (c->meta_done) cudaEventDestroy(c->meta_done);
    if (c->t_start) cudaEventDestroy(c->t_start);
    if (c->t_end) cudaEventDestroy(c->t_end);
    if (c->st) cudaStreamDestroy(c->st);
    free(c->L);
    free(c->sample_scratch);
    free(c);
}

/* ---- forward ------------------------------------------------------------------ */

/* The common batch rules (backend.c), then the token ids: the embedding
 * kernel reads them unchecked, so they are checked on the host. */
static int check_batch(const struct cu_be *c, const struct llm_batch *b)
{
    int rc = llm_batch_check(&c->pub, b);
    if (rc) return rc;
    for (int t = 0; t < b->n_tokens; t++)
        if (b->tokens[t] < 0 || b->tokens[t] >= c->d->vocab_size)
            return llm_err_set(LLM_ERANGE, "batch: row %d has token id %d, vocabulary is %lld", t,
                               b->tokens[t], (long long)c->d->vocab_size);
    return 0;
}

/* Device pointers into this step's metadata, and its shape. */
struct step {
    const int32_t *tokens, *pos, *rope_row, *slot, *out_rows, *bt, *rows, *seqs, *tiles;
    const int32_t *split_len;
    int n, n_out, bt_stride, n_rows, n_tiles, max_splits;
    size_t meta_ints; /* ints to copy from h_meta */
};

/* Split length for decode rows: enough blocks to fill the device, pieces
 * of whole 32-key chunks, at most `cap` pieces per row; 0 = no split. */
static int split_policy(const struct cu_be *c, int n_rows, int maxlen, int cap)
{
    int blocks = n_rows * c->attn_blocks, target = 4 * c->n_sm;
    if (cap <= 1 || blocks >= target || maxlen <= 64) return 0;
    int sp = (target + blocks - 1) / blocks;
    int sl = ((maxlen + sp - 1) / sp + 31) / 32 * 32;
    int minsl = ((maxlen + cap - 1) / cap + 31) / 32 * 32;
    return sl < minsl ? minsl : sl;
}

static int visible_keys(const struct cu_be *c, int pos)
{
    int w = c->d->sliding_window;
    return w > 0 && pos + 1 > w ? w : pos + 1;
}

/* Eager layout: sized to the batch. */
static int pack_meta(struct cu_be *c, const struct llm_batch *b, struct step *s)
{
    const struct llm_model_desc *d = c->d;
    int n = b->n_tokens, bs = c->pub.block_size;
    int pf = llm_k_attn_prefill_supported(c->dt, d->head_dim);
    int tr = pf ? llm_k_attn_prefill_tile_rows(c->dt, d->head_dim) : 64;
    size_t max_tiles = (size_t)b->n_seqs + (size_t)n / (size_t)tr + 1;
    size_t need = 6 * (size_t)n + (size_t)b->n_out + (size_t)b->n_seqs * b->bt_stride +
                  3 * max_tiles + 64;
    int rc = grow_meta(c, need);
    if (rc) return rc;
    CK(cudaEventSynchronize(c->meta_done)); /* the previous step's copy has left h_meta */
    int32_t *h = c->h_meta;
    size_t o = 0;
    size_t o_tok = o; memcpy(h + o, b->tokens, sizeof(int32_t) * n); o += n;
    size_t o_pos = o; memcpy(h + o, b->pos, sizeof(int32_t) * n); o += n;
    size_t o_rr = o; o += n;
    size_t o_slot = o; o += n;
    size_t o_out = o; if (b->n_out) memcpy(h + o, b->out_rows, sizeof(int32_t) * b->n_out);
    o += b->n_out;
    size_t o_bt = o; memcpy(h + o, b->block_table, sizeof(int32_t) * b->n_seqs * b->bt_stride);
    o += (size_t)b->n_seqs * b->bt_stride;
    size_t o_rows = o; o += n;
    size_t o_seqs = o; o += n;
    size_t o_sl = o; o += 1;
    size_t o_tiles = o;

    int64_t L = c->rope.orig_max_pos > 0 ? c->rope.orig_max_pos : d->max_pos;
    int n_rows = 0, n_tiles = 0, maxlen = 0;
    for (int sq = 0; sq < b->n_seqs; sq++) {
        int t0 = b->seq_start[sq], t1 = b->seq_start[sq + 1];
        const int32_t *btr = b->block_table + (int64_t)sq * b->bt_stride;
        int use_long = c->rope_sets == 2 && b->seq_len[sq] > L;
        for (int t = t0; t < t1; t++) {
            int p = b->pos[t];
            h[o_rr + t] = p + (use_long ? c->rope_npos : 0);
            h[o_slot + t] = btr[p / bs] * bs + p % bs;
        }
        if (pf && t1 - t0 >= PF_MIN_ROWS) {
            for (int r = t0; r < t1; r += tr) {
                h[o_tiles + 3 * n_tiles] = sq;
                h[o_tiles + 3 * n_tiles + 1] = r;
                h[o_tiles + 3 * n_tiles + 2] = t1 - r < tr ? t1 - r : tr;
                n_tiles++;
            }
        } else {
            for (int t = t0; t < t1; t++) {
                h[o_rows + n_rows] = t;
                h[o_seqs + n_rows] = sq;
                n_rows++;
                int vis = visible_keys(c, b->pos[t]);
                if (maxlen < vis) maxlen = vis;
            }
        }
    }
    o += 3 * (size_t)n_tiles;
    int sl = n_rows ? split_policy(c, n_rows, maxlen, c->ws_rows / n_rows) : 0;
    h[o_sl] = sl;
    s->max_splits = sl ? (maxlen + sl - 1) / sl : 1;
    const int32_t *dm = c->d_meta;
    s->tokens = dm + o_tok;
    s->pos = dm + o_pos;
    s->rope_row = dm + o_rr;
    s->slot = dm + o_slot;
    s->out_rows = dm + o_out;
    s->bt = dm + o_bt;
    s->rows = dm + o_rows;
    s->seqs = dm + o_seqs;
    s->split_len = dm + o_sl;
    s->tiles = dm + o_tiles;
    s->n = n;
    s->n_out = b->n_out;
    s->bt_stride = b->bt_stride;
    s->n_rows = n_rows;
    s->n_tiles = n_tiles;
    s->meta_ints = o;
    return 0;
}

/* ---- CUDA graphs for decode steps ---------------------------------------------
 * A pure decode step (one new token per sequence, every row's logits wanted)
 * is padded to a bucket size and packed into a fixed layout, so the whole
 * step - metadata copy included - replays one captured graph per bucket.
 * Padding rows use token 0 at position 0 of block 0, write no KV (slot -1)
 * and their logits are never reported. */
static const int graph_buckets[] = {1,   2,   4,   8,   16,  24,  32,  48,  64,  80,  96, 128,
                                    160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 1024};
#define N_BUCKETS ((int)(sizeof graph_buckets / sizeof graph_buckets[0]))
_Static_assert(sizeof graph_buckets / sizeof graph_buckets[0] <= 32, "graph table too small");

static void default_buckets(struct cu_be *c)
{
    c->n_buckets = N_BUCKETS;
    memcpy(c->buckets, graph_buckets, sizeof graph_buckets);
}

static int bucket_for(const struct cu_be *c, int n)
{
    for (int i = 0; i < c->n_buckets; i++)
        if (c->buckets[i] >= n)
            return c->buckets[i] <= c->pub.max_seqs && c->buckets[i] <= c->pub.max_batch_tokens
                       ? i
                       : -1;
    return -1;
}

/* Splits a graph of bucket B is captured with: as many as the split policy
 * would ever ask for at this batch size (it fills the device, so longer
 * contexts get longer splits, not more of them), within the scratch. */
static int graph_max_splits(const struct cu_be *c, int B)
{
    int blocks = B * c->attn_blocks, target = 4 * c->n_sm;
    if (blocks >= target) return 1;
    int sp = (target + blocks - 1) / blocks;
    int cap = c->ws_rows / B, lim = (c->pub.max_seq_len + 31) / 32;
    if (sp > cap) sp = cap;
    return sp < lim ? sp : lim;
}

static int graph_eligible(const struct cu_be *c, const struct llm_batch *b)
{
    if (!c->use_graphs || b->n_seqs != b->n_tokens || b->n_out != b->n_tokens) return 0;
    for (int i = 0; i < b->n_out; i++)
        if (b->out_rows[i] != i) return 0;
    return bucket_for(c, b->n_tokens) >= 0;
}

/* Fixed layout for bucket size B (block table stride = blocks of max_seq_len). */
static int pack_meta_fixed(struct cu_be *c, const struct llm_batch *b, int B, struct step *s)
{
    const struct llm_model_desc *d = c->d;
    int n = b->n_tokens, bs = c->pub.block_size;
    int S = (c->pub.max_seq_len + bs - 1) / bs;
    size_t need = 7 * (size_t)B + 1 + (size_t)B * S;
    int rc = grow_meta(c, need);
    if (rc) return rc;
    CK(cudaEventSynchronize(c->meta_done));
    int32_t *h = c->h_meta;
    int32_t *tok = h, *pos = h + B, *rr = h + 2 * B, *slot = h + 3 * B, *out = h + 4 * B;
    int32_t *rows = h + 5 * B, *seqs = h + 6 * B, *sl = h + 7 * B, *bt = h + 7 * B + 1;
    int64_t L = c->rope.orig_max_pos > 0 ? c->rope.orig_max_pos : d->max_pos;
    int maxlen = 0;
    for (int i = 0; i < B; i++) {
        out[i] = rows[i] = seqs[i] = i;
        int32_t *btr = bt + (size_t)i * S;
        if (i < n) {
            int p = b->pos[i];
            const int32_t *src = b->block_table + (int64_t)i * b->bt_stride;
            int nb = p / bs + 1;
            memcpy(btr, src, sizeof(int32_t) * (size_t)nb);
            tok[i] = b->tokens[i];
            pos[i] = p;
            rr[i] = p + (c->rope_sets == 2 && b->seq_len[i] > L ? c->rope_npos : 0);
            slot[i] = src[p / bs] * bs + p % bs;
            int vis = visible_keys(c, p);
            if (maxlen < vis) maxlen = vis;
        } else {
            btr[0] = 0;
            tok[i] = pos[i] = rr[i] = 0;
            slot[i] = -1;
        }
    }
    int ms = graph_max_splits(c, B);
    int v = split_policy(c, B, maxlen, ms);
    *sl = v ? v : 1 << 30;
    const int32_t *dm = c->d_meta;
    s->tokens = dm;
    s->pos = dm + B;
    s->rope_row = dm + 2 * B;
    s->slot = dm + 3 * B;
    s->out_rows = dm + 4 * B;
    s->rows = dm + 5 * B;
    s->seqs = dm + 6 * B;
    s->split_len = dm + 7 * B;
    s->bt = dm + 7 * B + 1;
    s->tiles = dm;
    s->n = B;
    s->n_out = B;
    s->bt_stride = S;
    s->n_rows = B;
    s->n_tiles = 0;
    s->max_splits = ms;
    s->meta_ints = need;
    return 0;
}

/* y = x W^T (+ bias) (+ y): GEMV kernel for a few rows, cuBLASLt otherwise. */
static int linear(struct cu_be *c, int m, int n, int k, const void *x, int ldx, const void *w,
                  const void *bias, void *y, int ldy, int accumulate)
{
    if (m <= c->gemv_max_m) {
        CK(llm_k_gemv(c->dt, y, ldy, x, ldx, w, bias, m, n, k, accumulate, c->st));
        return 0;
    }
    return cu_gemm_run(c->gemm, c->st, m, n, k, x, ldx, w, bias, y, ldy, c->dt, accumulate);
}

static int norm(struct cu_be *c, void *out, void *res, const void *w, const void *b, int rows)
{
    const struct llm_model_desc *d = c->d;
    CK(llm_k_norm(c->dt, d->norm == LLM_NORM_RMS ? LLM_K_NORM_RMS : LLM_K_NORM_LAYER, out, res,
                  NULL, w, b, 0.f, rows, (int)d->hidden, (float)d->norm_eps, c->st));
    return 0;
}

/* Everything a step puts on the stream, from the metadata copy to the logits. */
static int enqueue(struct cu_be *c, const struct step *s)
{
    const struct llm_model_desc *d = c->d;
    struct llm_backend *be = &c->pub;
    int rc;
    CK(cudaMemcpyAsync(c->d_meta, c->h_meta, s->meta_ints * sizeof(int32_t),
                       cudaMemcpyHostToDevice, c->st));
    const int n = s->n, H = (int)d->hidden, I = (int)d->intermediate;
    const int nh = d->n_heads, nkv = d->n_kv_heads, hd = d->head_dim;
    const size_t es = c->es;
    float esc = d->embed_scale > 0.0 ? (float)d->embed_scale : 1.0f;
    CK(llm_k_embed(c->dt, c->res, c->emb, s->tokens, c->pos_emb, s->pos, n, H, esc, c->st));

    struct llm_k_attn a = {
        .dt = c->dt,
        .q = c->qkv,
        .q_stride = c->qkv_w,
        .o = c->att,
        .blk_stride = c->blk_elems,
        .block_size = be->block_size,
        .block_table = s->bt,
        .bt_stride = s->bt_stride,
        .pos = s->pos,
        .n_heads = nh,
        .n_kv_heads = nkv,
        .head_dim = hd,
        .scale = (float)(d->attn_scale > 0.0 ? d->attn_scale : 1.0 / sqrt((double)hd)),
        .softcap = (float)d->logit_softcap,
        .alibi = c->alibi,
    };
    for (int l = 0; l < d->n_layers; l++) {
        const struct cu_layer *L = &c->L[l];
        void *kvl = (char *)c->kv + (size_t)l * c->layer_elems * es;
        if ((rc = norm(c, c->xn, c->res, L->n1w, L->n1b, n))) return rc;
        void *mlp_in = c->xn;
        if (d->parallel_residual && !d->shared_input_norm) {
            if ((rc = norm(c, c->xn2, c->res, L->n2w, L->n2b, n))) return rc;
            mlp_in = c->xn2;
        }
        if ((rc = linear(c, n, c->qkv_w, H, c->xn, H, L->qkv, L->qkv_b, c->qkv, c->qkv_w, 0)))
            return rc;
        CK(llm_k_rope_kv(c->dt, c->qkv, d->pos == LLM_POS_ROPE ? c->rope_tab : NULL, s->rope_row,
                         s->slot, kvl, c->blk_elems, be->block_size, n, nh, nkv, hd,
                         c->rope.rot_dims, c->rope.neox, c->st));
        a.kv = kvl;
        a.window = L->window;
        if (s->n_tiles) CK(llm_k_attn_prefill(&a, s->tiles, s->n_tiles, c->st));
        if (s->n_rows)
            CK(llm_k_attn_rows(&a, s->rows, s->seqs, s->n_rows, s->split_len, s->max_splits,
                               c->attn_ws, c->attn_cnt, c->st));
        if ((rc = linear(c, n, H, nh * hd, c->att, nh * hd, L->o, L->o_b, c->res, H, 1)))
            return rc;
        if (!d->parallel_residual) {
            if ((rc = norm(c, c->xn, c->res, L->n2w, L->n2b, n))) return rc;
        }
        if (n == 1 && c->gemv_max_m >= 1 && d->gated_mlp && c->fused_gate) {
            CK(llm_k_gemv_gated(c->dt, d->act, c->mlp, mlp_in, L->fc, L->fc_b, I, H, c->st));
        } else {
            if ((rc = linear(c, n, c->mlp_w, H, mlp_in, H, L->fc, L->fc_b, c->mlp, c->mlp_w, 0)))
                return rc;
            CK(llm_k_act(c->dt, d->act, d->gated_mlp, c->mlp, n, I, c->st));
        }
        if ((rc = linear(c, n, H, I, c->mlp, c->mlp_w, L->proj, L->proj_b, c->res, H, 1)))
            return rc;
    }
    int no = s->n_out;
    if (no > 0) {
        CK(llm_k_gather(c->dt, c->fin, c->res, s->out_rows, no, H, c->st));
        if ((rc = norm(c, c->fin2, c->fin, c->nf_w, c->nf_b, no))) return rc;
        if ((rc = cu_gemm_run(c->gemm, c->st, no, (int)d->vocab_size, H, c->fin2, H, c->lm,
                              c->lm_b, c->logits, (int)d->vocab_size, LLM_DTYPE_F32, 0)))
            return rc;
    }
    return 0;
}

static int run_graph(struct cu_be *c, const struct llm_batch *b)
{
    int bi = bucket_for(c, b->n_tokens), B = c->buckets[bi];
    int rc = grow_out(c, B);
    if (rc) return rc;
    struct step s = {0};
    if ((rc = pack_meta_fixed(c, b, B, &s))) return rc;
    if (!c->graph[bi]) {
        if (!c->graph_seen[bi]) {
            /* first use: run eagerly (this also settles the cuBLASLt choices) */
            c->graph_seen[bi] = 1;
            if ((rc = enqueue(c, &s))) return rc;
            CK(cudaEventRecord(c->meta_done, c->st));
            return 0;
        }
        cudaGraph_t g = NULL;
        CK(cudaStreamBeginCapture(c->st, cudaStreamCaptureModeThreadLocal));
        rc = enqueue(c, &s);
        cudaError_t e = cudaStreamEndCapture(c->st, &g);
        if (rc) {
            if (g) cudaGraphDestroy(g);
            return rc;
        }
        if (e != cudaSuccess) return cu_fail(CU_LIB_RT, e, "cudaStreamEndCapture", __FILE__,
                                             __LINE__);
        e = cudaGraphInstantiate(&c->graph[bi], g, 0);
        cudaGraphDestroy(g);
        if (e != cudaSuccess) {
            c->graph[bi] = NULL;
            return cu_fail(CU_LIB_RT, e, "cudaGraphInstantiate", __FILE__, __LINE__);
        }
    }
    CK(cudaGraphLaunch(c->graph[bi], c->st));
    CK(cudaEventRecord(c->meta_done, c->st));
    return 0;
}

static int cu_forward(struct llm_backend *be, const struct llm_batch *b)
{
    struct cu_be *c = cu_of(be);
    c->n_out = -1;
    int rc = check_batch(c, b);
    if (rc) return rc;
    c->t_state = 0;
    CK(cudaEventRecord(c->t_start, c->st));
    c->t_state = 1;
    if (graph_eligible(c, b)) {
        if ((rc = run_graph(c, b))) return rc;
    } else {
        if ((rc = grow_out(c, b->n_out))) return rc;
        struct step s = {0};
        if ((rc = pack_meta(c, b, &s))) return rc;
        if ((rc = enqueue(c, &s))) return rc;
        CK(cudaEventRecord(c->meta_done, c->st));
    }
    c->n_out = b->n_out;
    return 0;
}

static int cu_get_logits(struct llm_backend *be, float *dst)
{
    struct cu_be *c = cu_of(be);
    if (c->n_out < 0) return llm_err_set(LLM_EINVAL, "get_logits: no successful forward step");
    size_t bytes = sizeof(float) * (size_t)c->n_out * (size_t)c->d->vocab_size;
    if (bytes) CK(cudaMemcpyAsync(dst, c->logits, bytes, cudaMemcpyDeviceToHost, c->st));
    if (c->t_state == 1) {
        CK(cudaEventRecord(c->t_end, c->st));
        c->t_state = 2;
    }
    CK(cudaStreamSynchronize(c->st));
    return 0;
}

_Static_assert(sizeof(((struct llm_k_sample_out *)0)->top_ids) ==
                   sizeof(int32_t) * LLM_MAX_LOGPROBS,
               "the sampling kernel's alternatives must match LLM_MAX_LOGPROBS");

/* The reference's parameter rules (llm_sample_cpu refuses the same). */
static int check_sampling(const struct llm_sampling *p, int row)
{
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return llm_err_set(LLM_EINVAL, "sample: row %d: temperature %g must be a finite number >= 0",
                           row, p->temperature);
    if (p->top_k < 0) return llm_err_set(LLM_EINVAL, "sample: row %d: top_k %d must be >= 0", row,
                                         p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return llm_err_set(LLM_EINVAL, "sample: row %d: top_p %g must be in (0, 1]", row, p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1))
        return llm_err_set(LLM_EINVAL, "sample: row %d: min_p %g must be in [0, 1]", row, p->min_p);
    if (!(p->repetition_penalty > 0) || !isfinite(p->repetition_penalty))
        return llm_err_set(LLM_EINVAL, "sample: row %d: repetition_penalty %g must be a finite "
                           "number > 0", row, p->repetition_penalty);
    if (!isfinite(p->presence_penalty) || !isfinite(p->frequency_penalty))
        return llm_err_set(LLM_EINVAL, "sample: row %d: presence/frequency penalty must be finite",
                           row);
    if (p->logprobs < -1 || p->logprobs > LLM_MAX_LOGPROBS)
        return llm_err_set(LLM_EINVAL, "sample: row %d: logprobs %d must be in 0..%d", row,
                           p->logprobs, LLM_MAX_LOGPROBS);
    return 0;
}

/* One row on the host: the reference sampler over a copy of its logits. */
static int sample_host(struct cu_be *c, int i, const struct llm_sample_row *row,
                       struct llm_sample_result *res)
{
    int64_t V = c->d->vocab_size;
    if (!c->h_logits) CK(cudaMallocHost((void **)&c->h_logits, sizeof(float) * (size_t)V));
    if (!c->sample_scratch && !(c->sample_scratch = malloc(llm_sample_scratch_size(V))))
        return llm_err_set(LLM_ENOMEM, "sample: out of memory");
    CK(cudaMemcpyAsync(c->h_logits, c->logits + (int64_t)i * V, sizeof(float) * (size_t)V,
                       cudaMemcpyDeviceToHost, c->st));
    CK(cudaStreamSynchronize(c->st));
    int rc = llm_sample_cpu(c->h_logits, V, row, res, c->sample_scratch);
    return rc ? llm_err_wrap(rc, "sample: row %d", i) : 0;
}

static int cu_sample(struct llm_backend *be, const struct llm_sample_row *rows, int n,
                     struct llm_sample_result *out)
{
    struct cu_be *c = cu_of(be);
    if (c->n_out < 0) return llm_err_set(LLM_EINVAL, "sample: no successful forward step");
    if (n != c->n_out)
        return llm_err_set(LLM_EINVAL, "sample: %d rows given, the last step kept %d", n, c->n_out);
    if (n == 0) return 0; /* nothing to wait for: the step's end is recorded when asked */
    int64_t V = c->d->vocab_size;
    size_t ntok = 0;
    for (int i = 0; i < n; i++) {
        if (!rows[i].p) return llm_err_set(LLM_EINVAL, "sample: row %d has no parameters", i);
        int rc = check_sampling(rows[i].p, i);
        if (rc) return rc;
        if (rows[i].n_prompt < 0 || rows[i].n_output < 0 || rows[i].n_banned < 0 ||
            (rows[i].n_prompt && !rows[i].prompt) || (rows[i].n_output && !rows[i].output) ||
            (rows[i].n_banned && !rows[i].banned))
            return llm_err_set(LLM_EINVAL, "sample: row %d: bad token lists", i);
        ntok += (size_t)rows[i].n_prompt + (size_t)rows[i].n_output + (size_t)rows[i].n_banned;
    }
    size_t par_bytes = sizeof(struct llm_k_sampler) * (size_t)n;
    size_t out_bytes = sizeof(struct llm_k_sample_out) * (size_t)n;
    size_t need = par_bytes + out_bytes + sizeof(int32_t) * ntok + 64;
    if (need > c->samp_cap) {
        if (c->h_samp) cudaFreeHost(c->h_samp);
        cudaFree(c->d_samp);
        c->h_samp = c->d_samp = NULL;
        c->samp_cap = 0;
        size_t cap = need + need / 2 + 4096;
        CK(cudaMallocHost((void **)&c->h_samp, cap));
        CK(cudaMalloc((void **)&c->d_samp, cap));
        c->samp_cap = cap;
    }
    if (n > c->s_rows) {
        CK(cudaStreamSynchronize(c->st));
        cudaFree(c->s_work);
        cudaFree(c->s_mark);
        c->s_work = NULL;
        c->s_mark = NULL;
        c->s_rows = 0;
        CK(cudaMalloc((void **)&c->s_work, sizeof(float) * (size_t)n * (size_t)V));
        CK(cudaMalloc((void **)&c->s_mark, sizeof(int32_t) * (size_t)n * (size_t)V));
        c->s_rows = n;
    }
    struct llm_k_sampler *hp = (struct llm_k_sampler *)c->h_samp;
    struct llm_k_sample_out *ho = (struct llm_k_sample_out *)(c->h_samp + par_bytes);
    int32_t *ht = (int32_t *)(c->h_samp + par_bytes + out_bytes);
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        const struct llm_sampling *p = rows[i].p;
        struct llm_k_sampler *k = &hp[i];
        memset(k, 0, sizeof *k);
        k->temperature = p->temperature;
        k->top_p = p->top_p;
        k->min_p = p->min_p;
        k->rep = p->repetition_penalty;
        k->pres = p->presence_penalty;
        k->freq = p->frequency_penalty;
        k->seed = p->seed;
        k->index = rows[i].index;
        k->stream = rows[i].stream;
        k->top_k = p->top_k;
        k->n_top = p->logprobs > 0 ? p->logprobs : 0;
        k->prompt_off = (int)o;
        k->n_prompt = rows[i].n_prompt;
        if (k->n_prompt) memcpy(ht + o, rows[i].prompt, sizeof(int32_t) * (size_t)k->n_prompt);
        o += (size_t)k->n_prompt;
        k->output_off = (int)o;
        k->n_output = rows[i].n_output;
        if (k->n_output) memcpy(ht + o, rows[i].output, sizeof(int32_t) * (size_t)k->n_output);
        o += (size_t)k->n_output;
        k->banned_off = (int)o;
        k->n_banned = rows[i].n_banned;
        if (k->n_banned) memcpy(ht + o, rows[i].banned, sizeof(int32_t) * (size_t)k->n_banned);
        o += (size_t)k->n_banned;
    }
    const struct llm_k_sampler *dp = (const struct llm_k_sampler *)c->d_samp;
    struct llm_k_sample_out *dout = (struct llm_k_sample_out *)(c->d_samp + par_bytes);
    const int32_t *dt = (const int32_t *)(c->d_samp + par_bytes + out_bytes);
    CK(cudaMemcpyAsync(c->d_samp, c->h_samp, par_bytes, cudaMemcpyHostToDevice, c->st));
    if (ntok)
        CK(cudaMemcpyAsync((void *)dt, ht, sizeof(int32_t) * ntok, cudaMemcpyHostToDevice, c->st));
    CK(llm_k_sample(c->logits, V, n, dp, dt, c->s_work, c->s_mark, dout, c->st));
    CK(cudaMemcpyAsync(ho, dout, out_bytes, cudaMemcpyDeviceToHost, c->st));
    if (c->t_state == 1) {
        CK(cudaEventRecord(c->t_end, c->st));
        c->t_state = 2;
    }
    CK(cudaStreamSynchronize(c->st));
    for (int i = 0; i < n; i++) {
        struct llm_sample_result *r = &out[i];
        if (ho[i].status == 1) {
            int rc = sample_host(c, i, &rows[i], r);
            if (rc) return rc;
            continue;
        }
        if (ho[i].status != 0)
            return llm_err_set(LLM_EINVAL, "sample: row %d: no token can be sampled: every id is "
                               "banned", i);
        memset(r, 0, sizeof *r);
        r->token = ho[i].token;
        r->logprob = ho[i].logprob;
        r->n_top = ho[i].n_top;
        for (int j = 0; j < r->n_top && j < LLM_MAX_LOGPROBS; j++) {
            r->top_ids[j] = ho[i].top_ids[j];
            r->top_logprobs[j] = ho[i].top_logprobs[j];
        }
    }
    return 0;
}

static int cu_copy_blocks(struct llm_backend *be, const int32_t *src, const int32_t *dst, int n)
{
    struct cu_be *c = cu_of(be);
    if (n <= 0) return 0;
    for (int i = 0; i < n; i++)
        if (src[i] < 0 || src[i] >= be->n_blocks || dst[i] < 0 || dst[i] >= be->n_blocks)
            return llm_err_set(LLM_EINVAL, "copy_blocks: pair %d (%d -> %d) outside the pool of %d "
                               "blocks", i, src[i], dst[i], be->n_blocks);
    int rc = grow_meta(c, 2 * (size_t)n);
    if (rc) return rc;
    CK(cudaEventSynchronize(c->meta_done));
    memcpy(c->h_meta, src, sizeof(int32_t) * (size_t)n);
    memcpy(c->h_meta + n, dst, sizeof(int32_t) * (size_t)n);
    CK(cudaMemcpyAsync(c->d_meta, c->h_meta, 2 * sizeof(int32_t) * (size_t)n,
                       cudaMemcpyHostToDevice, c->st));
    CK(cudaEventRecord(c->meta_done, c->st));
    for (int i0 = 0; i0 < n; i0 += 65535) {
        int k = n - i0 < 65535 ? n - i0 : 65535;
        CK(llm_k_copy_blocks(c->kv, c->d_meta + i0, c->d_meta + n + i0, k,
                             c->blk_elems * (int64_t)c->es, c->st));
    }
    return 0;
}

/* The events were recorded on the stream around the step; reading them costs
 * nothing more once sample's synchronisation has passed.  A step whose
 * sample had no rows (or that was never sampled) gets its end recorded
 * here, and waiting for it is the price of asking. */
static int cu_last_step_time(struct llm_backend *be, double *seconds)
{
    struct cu_be *c = cu_of(be);
    *seconds = 0;
    if (c->t_state == 0) return llm_err_set(LLM_EINVAL, "last_step_time: no step has been timed");
    if (c->t_state == 1) {
        CK(cudaEventRecord(c->t_end, c->st));
        c->t_state = 2;
    }
    CK(cudaEventSynchronize(c->t_end));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, c->t_start, c->t_end));
    *seconds = (double)ms * 1e-3;
    return 0;
}

static const struct llm_backend_ops cu_ops_table = {
    .name = "cuda",
    .forward = cu_forward,
    .get_logits = cu_get_logits,
    .sample = cu_sample,
    .copy_blocks = cu_copy_blocks,
    .last_step_time = cu_last_step_time,
    .destroy = cu_destroy,
};
