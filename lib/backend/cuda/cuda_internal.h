/* cuda_internal.h - shared by the CUDA backend's host files: the one
 * checking path for CUDA runtime, kernel launch and cuBLASLt status codes,
 * the cuBLASLt matrix-product wrapper, and the backend's state (creation
 * and weights in cuda_backend.c, the steps of a forward in cuda_step.c,
 * sampling in cuda_sample.c).
 *
 * Design: every device call goes through CK() (CUDA runtime calls and our
 * kernel launchers, which return the launch status) or CKB() (cuBLASLt);
 * both end in cu_fail(), which sets LLM_EDEVICE with file:line, the call
 * and the library's own error name, and make the caller return it.
 */
#ifndef LLM_CUDA_INTERNAL_H
#define LLM_CUDA_INTERNAL_H

#include <stdint.h>
#include <cuda_runtime_api.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <cublasLt.h>
#pragma GCC diagnostic pop

#include "llm/err.h"

enum cu_lib { CU_LIB_RT = 0, CU_LIB_BLAS = 1 };

/* Set LLM_EDEVICE "file:line: call: NAME (description)" and return it. */
int cu_fail(int lib, int code, const char *call, const char *file, int line);

#define CK(call)                                                                                   \
    do {                                                                                           \
        int ck_e_ = (int)(call);                                                                   \
        if (ck_e_ != 0) return cu_fail(CU_LIB_RT, ck_e_, #call, __FILE__, __LINE__);              \
    } while (0)
#define CKB(call)                                                                                  \
    do {                                                                                           \
        int ck_e_ = (int)(call);                                                                   \
        if (ck_e_ != 0) return cu_fail(CU_LIB_BLAS, ck_e_, #call, __FILE__, __LINE__);            \
    } while (0)

/* ---- matrix products through cuBLASLt -------------------------------------
 * y[m][n] = x[m][k] . w[n][k]^T (+ bias[n]) (+ y[m][n] when accumulate):
 * the weights stay in their (out, in) row-major layout and cuBLASLt sees
 * the column-major product y^T = w . x^T ("TN").  Inputs and y share the
 * compute dtype, except that y may be fp32 (logits) with yt = F32; bias is
 * in y's type.  Descriptors and the heuristic's algorithm are cached per
 * shape, so a steady decode loop does no cuBLASLt setup. */
struct cu_gemm;
int cu_gemm_create(struct cu_gemm **out, int dt, size_t workspace_bytes);
/* Whether its fp8 products use the fast accumulation (LLM_CUDA_FP8_FAST_ACCUM, default on). */
int cu_gemm_fp8_fast(const struct cu_gemm *g);
void cu_gemm_destroy(struct cu_gemm *g);
/* Products built from now on take the heuristic's candidate i (0..7; 0 the
 * default, its first; past the last it offers, the last): for the benchmark. */
void cu_gemm_set_pick(struct cu_gemm *g, int i);
/* 0: products keep the heuristic's first choice, none is measured at first
 * use (the ceiling probe, whose random bits are no model's data). */
void cu_gemm_set_online(struct cu_gemm *g, int on);
int cu_gemm_run(struct cu_gemm *g, cudaStream_t st, int m, int n, int k, const void *x, int ldx,
                const void *w, const void *bias, void *y, int ldy, int yt, int accumulate);
/* The same with 8-bit operands (act: LLM_K_A_FP8 or LLM_K_A_INT8 of
 * kernels.h): y[m][n] = xs[m] ws[n] sum_k xq[m][k] wq[n][k] (+ bias[n]) (+ y)
 * for activations xq [m][k] and weights wq [n][k] as llm_k_quant_act and
 * the upload leave them; scalar: every ws[n] is ws[0] and every xs[m] is
 * xs[0] (a per-tensor weight scale, a static activation scale), which fp8
 * takes as scalar scales; acc (acc_bytes) is the scratch of the paths that
 * scale after the product (int8; fp8 where cuBLASLt has no per-row scales). */
int cu_gemm_run8(struct cu_gemm *g, cudaStream_t st, int act, int scalar, int m, int n, int k,
                 const void *xq, const float *xs, const void *wq, const float *ws,
                 const void *bias, void *y, int ldy, int yt, int accumulate, void *acc,
                 size_t acc_bytes);
/* y (yt) = (xq [m][k] e4m3 under xs) (wq [n][k] e4m3 under ws)^T (+ bias) (+ y):
 * cuBLASLt's fp8 product with one fp32 scale per 128 inputs of every row
 * of each operand (xs [k / 128][m], ws [k / 128][n], rows innermost).
 * LLM_EUNSUPPORTED (remembered per shape) where the library has no
 * algorithm for it: the caller takes another path. */
int cu_gemm_run_blk(struct cu_gemm *g, cudaStream_t st, int m, int n, int k, const void *xq,
                    const float *xs, const void *wq, const float *ws, const void *bias, void *y,
                    int ldy, int yt, int accumulate);

/* Engines (llm/engine_artifact.h): measured algorithm choices, tried before
 * the heuristic for every product they fit (copied); and measuring one
 * product's candidates on buffers w, x, y, bias of its shape. */
struct llm_gemm_choice;
int cu_gemm_set_choices(struct cu_gemm *g, const struct llm_gemm_choice *c, int n);
int cu_gemm_tune(struct cu_gemm *g, cudaStream_t st, struct llm_gemm_choice *c, const void *w,
                 const void *x, void *y, const void *bias);

/* ---- the backend's state ------------------------------------------------------ */

#include "llm/backend.h"
#include "llm/comm.h"
#include "llm/graph.h"
#include "llm/weight.h"

/* A weight on the device, in the compute dtype (the lm_head's bias in f32),
 * or weight-only quantized (q.fmt != 0: kernels/kernels.h, struct
 * llm_k_qw, says the layout; w is then the packed weights, b the bias in
 * the compute dtype). */
#include "kernels/kernels.h"
struct cu_w {
    void *w, *b;
    struct llm_k_qw q;
    const int32_t *perm; /* int32 [in] or NULL: y = W . x[perm] (GPTQ act-order) */
    /* W4A8 (a8 = 1: int4 weights, static fp8 activations): q is the int4 weight
     * as weight-only, each part's activation scale folded into its group
     * scales (q.pre NULL); a8_pre [parts][in] its pre-quant scales (NULL: none),
     * a8_scale [parts] the activation scales (device); a8_split the row where a
     * second part with scales of its own begins (1 << 30: one part) */
    int a8, a8_split;
    const float *a8_pre, *a8_scale;
};

/* Where each array of a step's metadata sits in the one int32 buffer sent
 * per step (offsets in int32s). */
struct cu_meta_layout {
    size_t tok, pos, rope_row, slot, out, bt, rows, seqs, split_len, tiles, ints;
};

/* Device pointers into this step's metadata, and its shape. */
struct cu_step {
    const int32_t *tokens, *pos, *rope_row, *slot, *out_rows, *bt, *rows, *seqs, *tiles;
    const int32_t *split_len;
    int n, n_out, bt_stride, n_rows, n_tiles, max_splits;
    int row_keys;   /* llm_k_attn.row_keys: the most keys a decode block reads (0: unknown) */
    int rows_ident; /* decode row i is token i of sequence i (rows, seqs unread) */
    size_t meta_ints;
    int n_dyn; /* rows whose rotary rows were computed for this step (dynamic NTK) */
};

#define CU_MAX_GRAPHS 32

/* Which rows the 8-bit scratch holds: rows x (row stride ld elements) as
 * rounded for a product with activations act under scale (device, or NULL)
 * and smoother (or NULL); x NULL: none. */
struct cu_q8_src {
    const void *x;
    int act, m, ld;
    const float *scale, *sm;
};

/* Few large experts (at most CU_MOE_LOOP_EXPERTS) with CU_MOE_LOOP_ROWS rows
 * or more each on average: cuBLAS's products beat the grouped kernel
 * (mma.sync, no wgmma) by more than the host read-back and the launches
 * cost; many small experts the other way round (measured on Mixtral-8x7B
 * and Qwen3-30B-A3B, docs/CUDA.md). */
#define CU_MOE_LOOP_ROWS 16
#define CU_MOE_LOOP_EXPERTS 32

struct cu_be {
    struct llm_backend pub;
    const struct llm_model_desc *d;
    struct llm_graph g;
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
    int moe_no_small; /* LLM_CUDA_MOE_SMALL=0: no per-slot GEMV path for experts */
    /* experts' products: 0 one cuBLAS product each (f32, or LLM_CUDA_MOE_GROUPED=0), 1 the
     * grouped kernel (LLM_CUDA_MOE_GROUPED=1), 2 as CU_MOE_LOOP_* say (the default) */
    int moe_grouped;
    int qgemv_max_m;       /* quantized products of up to this many rows use the quantized GEMV */
    int w8_max_m;          /* the same for 8-bit activations (fp8, int8), in every compute dtype */
    int q4gemm_max_m;      /* int4 tile-layout products of up to this many rows: llm_k_q4_gemm */
    int q4gemm_big_m;      /* the same for products of at least Q4GEMM_BIG weights */
#define Q4GEMM_BIG ((int64_t)1 << 27)
    /* quantized weights: the dense scratch one weight is dequantized into for
     * larger row counts (the largest weight's size), and the activations
     * times AWQ's pre-quant scale ([max_batch_tokens][widest input]) */
    void *q_dense, *q_xs;
    uint64_t q_dense_bytes, q_xs_elems;
    /* the inputs of weights on permuted inputs, gathered ([max_batch_tokens][widest input]) */
    void *perm_x;
    uint64_t perm_elems;
    /* 8-bit activations (fp8, int8): the quantized rows [max_batch_tokens][q8_k],
     * their scales, and the scratch of products scaled after cuBLASLt (q8_n: the
     * widest output) */
    void *q8_xq, *q8_acc;
    float *q8_xs;
    uint64_t q8_k, q8_n, q8_acc_bytes;
    /* W4A8: the e4m3 codes of the rows [max_batch_tokens + 8][a8_k] and ones as their
     * 128-element block scales (the scale is the weight's); products of more than
     * a8_lt_m rows go to cuBLASLt's block-scaled fp8 product (LLM_CUDA_W4A8_LT) */
    void *a8_xq, *a8_y;
    float *a8_ones;
    uint64_t a8_k, a8_n, a8_y_bytes; /* a8_y: products of row counts rounded up to 8 */
    int a8_lt_m, a8_told;
    /* products of more than a8_wg_m rows take the fused kernel (llm_k_q4_gemm8) where it
     * takes the weight: the codes in tile order in a8_xq, their group sums in a8_xs
     * [a8_k / 128][max_batch_tokens + 8] (LLM_CUDA_W4A8_WG) */
    float *a8_xs;
    int a8_wg_m;
    int fused_gate;        /* single-row gated MLP through llm_k_gemv_gated */
    cudaGraphExec_t graph[CU_MAX_GRAPHS];
    unsigned char graph_seen[CU_MAX_GRAPHS];
    int buckets[CU_MAX_GRAPHS]; /* decode graph sizes, increasing (an engine's, or the defaults) */
    int n_buckets;

    void **allocs;
    int n_allocs, cap_allocs;
    uint64_t weight_bytes;

    struct cu_w gw[LLM_W_FIRST_LAYER];  /* global slots */
    struct cu_w (*lw)[LLM_W_COUNT];     /* per layer; a gated MLP's fc slot holds fc then gate rows */
    /* quantized experts: per layer NULL, or 2 E weights, expert e's fc then gate rows
     * stacked at [2 e] and its down at [2 e + 1] (a part left dense: q.fmt 0, w NULL, its
     * stack in lw as for dense experts); moe_quant says some layer has them */
    struct cu_w **xw;
    int moe_quant;
    /* per layer NULL, or (weight-only experts alike in format and layout) a device copy
     * of the experts' llm_k_qw: E of fc + gate, then E of down, for llm_k_dequant_experts;
     * moe_deq the scratch their 16-bit weights go into (moe_deq_bytes) */
    struct llm_k_qw **xq_tab;
    void *moe_deq;
    uint64_t moe_deq_bytes;
    int moeq_dense; /* LLM_CUDA_MOEQ_DENSE: 0 never, 1 always, 2 the rule in step_moe */
    float *rope_tab;       /* [rope_sets * npos + dyn rows][rot/2] (cos, sin) */
    float *rope_local_tab; /* [npos][rot/2] (cos, sin): the local layers' base (Gemma 3), or NULL */
    int rope_npos, rope_sets;
    int rope_dyn0, rope_dyn_rows; /* dynamic NTK: rows computed per step, from rope_dyn0 */
    float *h_dyn;          /* pinned, [rope_dyn_rows][rot/2][2] */
    float *alibi;

    void *kv;
    int64_t blk_elems;     /* one block of every layer */
    int64_t layer_elems;   /* one layer within a block: K and V */
    size_t kv_es;          /* bytes per cached element: es, or 1 for 8-bit codes */
    long n_forward;        /* forward steps so far */
    /* 8-bit activations a norm or an activation rounded for the product
     * right after it (q8_xq / q8_xs hold them); q8_pend: set by an
     * activation inside a product's step, for the next step */
    struct cu_q8_src q8_from, q8_pend;
    int q8_no_fuse;        /* LLM_CUDA_NORM_Q8=0: norms and activations leave the rounding to
                            * the product */
    int attn_no_q8;        /* LLM_CUDA_ATTN_Q8=0: attention leaves the o product's rounding
                            * to it */
    int attn_late;         /* LLM_CUDA_ATTN_EARLY=0: decode rows listed, their block ids
                            * read after their positions */
    int act_keep;          /* LLM_CUDA_ACT_KEEP=1: an activation or attention that writes
                            * the next product's codes stores its 16-bit rows too */
    /* a norm left to the int4 product right after it (llm_k_qgemv_norm): set by
     * the norm's step, taken by the product's; LLM_CUDA_NORM_FUSE=0: never */
    struct llm_k_norm_in norm_pend;
    int norm_pend_dense; /* norm_pend goes into a dense one-row product (llm_k_gemv_norm) */
    int norm_no_fuse;
    int q4_no_sx; /* LLM_CUDA_Q4_SX=0: int4 scales never marked exact (llm_k_qw.scale_exact) */
    int norm_dense;              /* RMS norms folded into one-row 16-bit dense products too */
    long prof_first, prof_count; /* LLM_CUDA_PROFILE_STEPS: the profiler's window (steps) */
    int kv_q;              /* enum llm_k_kvq */
    float *kv_scale;       /* host, [n_layers][2]: K and V scales of 8-bit codes */

    int qkv_w, mlp_w;      /* row widths of the qkv and MLP buffers */
    void *buf[LLM_BUF_COUNT]; /* activations by role (llm/graph.h); LOGITS is fp32 */
    int cap_out;
    float *attn_ws;
    int ws_rows;           /* rows x splits the attention scratch holds */
    int *attn_cnt;         /* split arrival counters */
    int attn_blocks;       /* row-kernel blocks per query row (llm_k_attn_rows_blocks) */
    const struct cu_step *cur; /* the step being enqueued */
    /* ranks (tensor parallel): the communicator (NCCL, device buffers), the
     * gathered vocab-parallel logits [tp][cap_out][vocab_part] */
    struct llm_comm *comm;
    float *gather;
    /* mixture of experts (n_experts > 0): router logits [T][E] fp32, the
     * chosen experts and weights [T][K], the sort (offsets [E + 1] on the
     * device and the host, rows and where [T K]), the slots' rows gathered
     * [T K][hidden], their fc|gate activations [T K][2 I] and outputs
     * [T K][hidden] */
    float *moe_logits, *moe_w;
    int32_t *moe_chosen, *moe_off, *moe_rows, *moe_where, *moe_tiles, *moe_done, *h_moe_off;
    void *moe_x, *moe_h, *moe_y;

    /* calibration statistics (cuda_calib.c): the sink, the weights it is
     * asked about (their names), each observed weight's accumulators on the
     * device, the layers' K / V maxima [n_layers][2], and the kept-row
     * slots of each product sent in a step (pinned, then device) */
    const struct llm_stat_sink *stats;
    struct llm_weights stat_wb;
    struct cu_stat *stat;
    int n_stat, cap_stat, stat_next;
    float *stat_kv;
    int32_t *stat_slot;          /* host [max_batch_tokens]: the sink's answer */
    unsigned char *stat_seen;    /* host [keep_rows] */
    int32_t *h_stat_slot, *d_stat_slot;
    size_t stat_slot_cap, stat_slot_used;

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

static inline struct cu_be *cu_of(struct llm_backend *be)
{
    return (struct cu_be *)be->priv;
}

/* cuda_comm.c: the steps between ranks (ALLREDUCE, ALLGATHER, SEND, RECV) */
int cu_comm_step(struct cu_be *c, const struct llm_step *st, int rows);
/* Floats per row of the logits buffer: the vocab, or every rank's padded slice. */
int64_t cu_logits_width(const struct cu_be *c);
/* Rows of the lm_head this rank computes. */
int64_t cu_lm_rows(const struct cu_be *c);

/* cuda_step.c */
int cu_forward(struct llm_backend *be, const struct llm_batch *b);
int cu_get_logits(struct llm_backend *be, float *dst);
int cu_grow_meta(struct cu_be *c, size_t ints);
int cu_grow_out(struct cu_be *c, int n_out);
void cu_drop_graphs(struct cu_be *c);
void cu_default_buckets(struct cu_be *c);
/* cuda_calib.c: calibration statistics (opts.stats) */
struct cu_stat;
int cu_stats_init(struct cu_be *c, struct llm_model *m, const struct llm_backend_opts *o);
/* The input x [rows][ldx] of a product with weight w (w->shape[1] values a row). */
int cu_stats_linear(struct cu_be *c, const struct llm_weight *w, const void *x, int ldx, int rows);
/* The K and V rows this step appended to the layer (at the step's slots). */
int cu_stats_kv(struct cu_be *c, int layer, int rows);
int cu_stats_flush(struct llm_backend *be);
void cu_stats_free(struct cu_be *c);
/* cuda_sample.c */
int cu_sample(struct llm_backend *be, const struct llm_sample_row *rows, int n,
              struct llm_sample_result *out);

#endif
