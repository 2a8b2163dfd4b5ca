/* kernels.h - the CUDA kernels of the GPU backend, as plain C launchers.
 *
 * Every launcher enqueues its work on `stream` and returns the launch
 * status (cudaGetLastError() right after the launch, as an int so this
 * header needs no CUDA include), so the caller checks every launch through
 * its one checking macro.  Element types are the llm_dtype values F32, F16
 * and BF16; one `dt` argument gives the type of every activation, weight
 * and KV operand of a call, and all arithmetic is done in fp32.
 *
 * Layouts (row-major throughout):
 *   activations        [rows][width]
 *   fused qkv          [rows][(n_heads + 2 * n_kv_heads) * head_dim], q then k then v
 *   fused gate/up out  [rows][2 * inter], fc (activated) then gate
 *   KV pool            [n_blocks][n_layers][2 (K, V)][n_kv_heads][block_size][head_dim]:
 *                      one block of all layers is contiguous, so copy-on-write of a
 *                      shared prefix is one contiguous copy per block.  Kernels take
 *                      `kv` = the pool plus the layer offset, and `blk_stride` =
 *                      elements from one block to the next (n_layers * 2 * kvh * bs * hd).
 *   rope table         [n_pos][rot_dims / 2] of (cos, sin) float2, magnitude scale folded in
 */
#ifndef LLM_KERNELS_H
#define LLM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CUstream_st *llm_stream_t;

/* Launch the step kernels with programmatic dependent launch (each may be
 * scheduled while its predecessor drains; default on). */
void llm_k_set_pdl(int on);

/* Normalisations (enum llm_norm values). */
enum llm_k_norm { LLM_K_NORM_RMS = 0, LLM_K_NORM_LAYER = 1 };
/* Activations (enum llm_act values). */
enum llm_k_act { LLM_K_ACT_SILU = 0, LLM_K_ACT_GELU, LLM_K_ACT_GELU_TANH, LLM_K_ACT_RELU };

/* out[i] = table[tokens[i]] * scale (+ pos_table[pos[i]] when pos_table != NULL). */
int llm_k_embed(int dt, void *out, const void *table, const int32_t *tokens,
                const void *pos_table, const int32_t *pos, int n, int hidden, float scale,
                llm_stream_t stream);

/* When add != NULL first res[r] += add[r] (in place); then
 * out[r] = norm(res[r]) * w (+ b), statistics in fp32 over the (rounded)
 * residual row.  RMS: x / sqrt(mean(x^2) + eps); LAYER: (x - mean) /
 * sqrt(var + eps).  w_offset is added to each weight (Gemma's 1 + w). */
int llm_k_norm(int dt, int kind, void *out, void *res, const void *add, const void *w,
               const void *b, float w_offset, int rows, int n, float eps, llm_stream_t stream);
/* The same, and the stored out rows also rounded to 8 bits for a product with
 * 8-bit activations (act: enum llm_k_qact), exactly as llm_k_quant_act
 * rounds them without a smoother: xq [rows][n] codes, xs [rows] each row's
 * scale (*act_scale, or when that is NULL or 0 the row's max |out| / 448 or
 * / 127). */
int llm_k_norm_q(int dt, int kind, void *out, void *res, const void *add, const void *w,
                 const void *b, float w_offset, int rows, int n, float eps, int act, void *xq,
                 float *xs, const float *act_scale, llm_stream_t stream);

/* The KV cache's element: dt, or an 8-bit code of x / scale (e4m3 or int8). */
enum llm_k_kvq { LLM_K_KV_NONE = 0, LLM_K_KV_FP8 = 1, LLM_K_KV_INT8 = 2 };

/* Rotary embedding on the fused qkv rows, in place, then the row's K and V
 * written to the paged pool at slot[i] (block * block_size + offset; a
 * negative slot skips the write).  rope == NULL: no rotation (ALiBi,
 * learned or no position encoding).  neox: rotate halves of the first
 * rot_dims dims; else interleaved pairs.  kv_q != NONE: the pool takes
 * the codes of K / k_scale and V / v_scale (blk_stride in bytes). */
int llm_k_rope_kv(int dt, void *qkv, const float *rope, const int32_t *pos,
                  const int32_t *slot, void *kv, int64_t blk_stride, int block_size, int n,
                  int n_heads, int n_kv_heads, int head_dim, int rot_dims, int neox, int kv_q,
                  float k_scale, float v_scale, llm_stream_t stream);

/* Gated MLP: h[r][j] = act(h[r][j]) * h[r][inter + j] for j < inter, in place
 * (row stride 2 * inter; the result is read with that stride).  Not gated
 * (gated == 0): h[r][j] = act(h[r][j]) over [rows][inter]. */
int llm_k_act(int dt, int act, int gated, void *h, int rows, int inter, llm_stream_t stream);
/* The same, and (qact: enum llm_k_qact, not none) the activated rows, as
 * stored, divided by smoother[j] (when not NULL) and by the static scale
 * *act_scale (> 0: the caller knows it is), rounded to 8-bit codes into xq
 * [rows][inter] and the scale into xs[rows] - what llm_k_quant_act writes
 * from h for the product after the activation.  keep == 0 (with codes): the
 * activated rows are not stored, h is left as it was - for a caller whose
 * only reader of them is the product that takes the codes. */
int llm_k_act_q(int dt, int act, int gated, void *h, int rows, int inter, int qact, int keep,
                void *xq, float *xs, const float *act_scale, const float *smoother,
                llm_stream_t stream);

/* y[i] += x[i] for i < n (a multiple of 8), the sum in fp32 rounded once:
 * a sub-block's output added to the residual stream. */
int llm_k_add(int dt, void *y, const void *x, int64_t n, llm_stream_t stream);

/* x[i] clamped to [-lim, lim] for i < n (MPT's clip_qkv). */
int llm_k_clamp(int dt, void *x, int64_t n, float lim, llm_stream_t stream);

/* x[i] *= k for i < n, in fp32 rounded once (Cohere's logit scale over fp32
 * logits, Granite's residual multiplier over a branch in the compute dtype). */
int llm_k_scale(int dt, void *x, int64_t n, float k, llm_stream_t stream);

/* x[i] = cap * tanh(x[i] / cap) over fp32 logits (Gemma 2's final soft cap). */
int llm_k_softcap_f32(float *x, int64_t n, float cap, llm_stream_t stream);

/* Per-head norms of the q and k heads of fused qkv rows (row stride
 * `stride`), in place: kind RMS (Qwen3) or LAYER (StableLM, no bias); the
 * weights are [head_dim] for every head, or [heads][head_dim] when per_head;
 * read as (w_offset + w). */
int llm_k_qk_norm(int dt, int kind, void *qkv, int stride, int rows, int n_heads,
                  int n_kv_heads, int head_dim, const void *wq, const void *wk, int per_head,
                  float w_offset, float eps, llm_stream_t stream);
/* RMS norms over all the q heads of a row at once (q_width values, weights
 * [q_width]) and over all its k heads (k_width values from column q_width,
 * weights [k_width]), in place, the statistic in fp32 (OLMo 2). */
int llm_k_qk_norm_all(int dt, void *qkv, int stride, int rows, int q_width, int k_width,
                      const void *wq, const void *wk, float w_offset, float eps,
                      llm_stream_t stream);

/* Mixture of experts (moe.cu).  route: per token, softmax of its fp32
 * router logits [n][n_experts], the top k (<= 8) experts and their weights
 * (renormalised when norm_topk) into chosen/weight [n][k].  sort: the n*k
 * slots grouped by expert (n_experts <= 1024; the order within an expert
 * is arbitrary): offsets [n_experts + 1], rows[i] the token of sorted slot
 * i, where[t*k + j] the sorted position of slot (t, j); when tiles is not
 * NULL it receives the grouped product's row tiles of tile_m rows: tiles[0]
 * their count, then (expert, first sorted row) pairs - room for
 * 1 + 2 * (ceil(n k / tile_m) + min(n_experts, n k)) values.
 * combine: out[t] (+)= sum over j, in expert order, of weight[t][j] *
 * y[where[t][j]] (rows of `hidden`), in fp32 rounded once. */
int llm_k_moe_route(const float *logits, int n, int n_experts, int k, int norm_topk,
                    int32_t *chosen, float *weight, llm_stream_t stream);
/* route_small: the same from x [n][hidden] and the router [n_experts][hidden]
 * in dt, the logits summed in fp32 in the kernel into `logits` [n][n_experts]
 * (one launch; for a few tokens).  done: n counters, zero before the call
 * and after it. */
int llm_k_moe_route_small(int dt, const void *x, const void *router, int n, int hidden,
                          int n_experts, int k, int norm_topk, float *logits, int32_t *done,
                          int32_t *chosen, float *weight, llm_stream_t stream);
int llm_k_moe_sort(const int32_t *chosen, int n, int n_experts, int k, int tile_m,
                   int32_t *offsets, int32_t *rows, int32_t *where, int32_t *tiles,
                   llm_stream_t stream);
int llm_k_moe_combine(int dt, void *out, const void *y, const int32_t *chosen,
                      const float *weight, const int32_t *where, int n, int k, int hidden,
                      int accumulate, llm_stream_t stream);
/* The grouped product of every expert's rows at once, f16/bf16 on the
 * tensor cores, nothing read back on the host: for each sorted row r of
 * expert e (offsets, and tiles from llm_k_moe_sort with the same tile_m),
 * y[r][j] = x[xrow ? xrow[r] : r] . w_e[j] for j < n, where w_e[j] is
 * w0[e][j] ([E][nsplit][k]) below nsplit and w1[e][j - nsplit]
 * ([E][n - nsplit][k]) from it.  k and ldx multiples of 8.  tile_m: what
 * llm_k_moe_gemm_tile_m says for the step's slots (16 or 64). */
int llm_k_moe_gemm_tile_m(int slots, int n_experts);
int llm_k_moe_gemm(int dt, void *y, int ldy, const void *x, int ldx, const int32_t *xrow,
                   const void *w0, const void *w1, int nsplit, const int32_t *offsets,
                   const int32_t *tiles, int tile_m, int slots, int n_experts, int n, int k,
                   llm_stream_t stream);
/* The experts of a few tokens (n * k <= LLM_K_MOE_SMALL slots) without the
 * sort and without reading anything back: per slot, h = act(fc_e x) *
 * (gate_e x) [n k][inter] (the caller's scratch), then out[t] (+)= the
 * token's sum over its slots, in expert order, of weight * down_e h; fc,
 * gate [E][inter][hidden], down [E][hidden][inter]; x and out [n][hidden]. */
#define LLM_K_MOE_SMALL 8
int llm_k_moe_small(int dt, int act, void *out, const void *x, void *h, const void *fc,
                    const void *gate, const void *down, const int32_t *chosen,
                    const float *weight, int n, int k, int hidden, int inter, int accumulate,
                    llm_stream_t stream);

/* out[i] = in[rows[i]] for i < n, rows of `width` elements. */
int llm_k_gather(int dt, void *out, const void *in, const int32_t *rows, int n, int width,
                 llm_stream_t stream);

/* Element type conversion between F32, F16 and BF16 (n elements). */
int llm_k_convert(void *dst, int dst_dt, const void *src, int src_dt, int64_t n,
                  llm_stream_t stream);

/* Random weights (llm/random.h) made on the device: dst[j] is element
 * first + j of the tensor whose counter state is `state` (a part of a
 * larger tensor: an expert of a stack), rounded to stored_dt, written as dst_dt
 * (F32, F16, BF16); fill is enum llm_rand_fill.  A quantized weight of a
 * synthetic model (stored_dt F8E4M3, I8 or I4, dst_dt the same) gets its
 * codes under llm/random.h's constant scale, byte for byte what the host
 * makes (llm_rand_tensor): n elements in n bytes, or for I4 in
 * (n + 1) / 2 bytes, element 2k in the low nibble of byte k (first even).
 * state is llm_rand_state(model->rand_seed, name), fill
 * llm_rand_fill_of(name). */
int llm_k_fill_random(void *dst, int dst_dt, int stored_dt, int64_t n, int64_t first,
                      uint64_t state, int fill, llm_stream_t stream);

/* Copy whole KV blocks: pool[dst[i]] = pool[src[i]], blk_bytes each (a multiple of 16). */
int llm_k_copy_blocks(void *pool, const int32_t *src, const int32_t *dst, int n,
                      int64_t blk_bytes, llm_stream_t stream);

/* ---- attention --------------------------------------------------------
 * Queries come from the fused qkv rows (q at column 0, row stride
 * q_stride elements); output o is [rows][n_heads * head_dim].  A query at
 * position p sees keys j with lo <= j <= p, lo = max(0, p - window + 1)
 * when window > 0, else 0; keys are read from the paged pool through the
 * sequence's block table.  alibi: per-head slopes (n_heads floats), adding
 * slope * (j - p) to each score, or NULL.  kv_q: the pool holds 8-bit codes
 * (enum llm_k_kvq; blk_stride then counts bytes) read as code * k_scale or
 * code * v_scale (a layer's two scales); head_dim a multiple of 16. */
struct llm_k_attn {
    int dt;
    const void *q;
    int q_stride;
    void *o;
    const void *kv;            /* pool + layer offset (K of block 0) */
    int64_t blk_stride;        /* elements between consecutive blocks */
    int block_size;
    const int32_t *block_table;/* [n_seqs][bt_stride] */
    int bt_stride;
    const int32_t *pos;        /* [rows] absolute position of each query row */
    int n_heads, n_kv_heads, head_dim;
    float scale;               /* softmax scale */
    float softcap;             /* tanh cap on scores (0 = none) */
    int window;                /* 0 = full */
    const float *alibi;
    int kv_q;                  /* enum llm_k_kvq */
    float k_scale, v_scale;    /* kv_q: the layer's K and V scales */
    /* oq (enum llm_k_qact, not none): the output rows as stored also go out as
     * the 8-bit codes of the product after attention, what llm_k_quant_act
     * makes of them under the static scale *oq_scale (and smoother oq_sm,
     * when not NULL): codes into oq_codes [row][n_heads * head_dim], the
     * scale into oq_xs[row]; oq_keep == 0: the rows themselves are not
     * stored (o is left as it was) */
    int oq, oq_keep;
    uint8_t *oq_codes;
    float *oq_xs;
    const float *oq_scale, *oq_sm;
    /* decode rows: the most keys one block of the row kernel reads (the longest
     * row's visible keys, or the split length when shorter); 0 when not known.
     * Over an 8-bit cache, rows of at most 768 keys take blocks of two warps
     * (llm_k_attn_rows_set_warps). */
    int row_keys;
};

/* Row kernel (decode): each listed query row (rows[i], of sequence seqs[i];
 * both NULL: row i of sequence i, a batch of one new token a sequence)
 * attends over its visible keys.  With max_splits > 1 the key range is cut
 * into pieces of *split_len tokens (a device int, a multiple of 32, such
 * that no row needs more than max_splits pieces) run as separate blocks
 * and combined by a second pass.  Any head_dim that is a multiple of 8,
 * and any dtype (the fp32 path of the backend uses it for prefill rows
 * too).  ws: fp32 scratch of n * n_heads * max_splits * (head_dim + 1)
 * floats; counters: n * llm_k_attn_rows_blocks(n_heads, n_kv_heads) ints,
 * zero before the first call and left zero by each call (both unused when
 * max_splits == 1). */
int llm_k_attn_rows(const struct llm_k_attn *a, const int32_t *rows, const int32_t *seqs, int n,
                    const int32_t *split_len, int max_splits, float *ws, int *counters,
                    llm_stream_t stream);

/* 0 (the default): an 8-bit cache in f16 or bf16 with head_dim 64, 80, 96,
 * 128 or 256 goes to the tensor-core kernel, any other call to the row
 * kernel staging 32 tokens at a time; 32 or 64: the row kernel for every
 * call, staging that many tokens of an 8-bit cache.  For tests and the
 * benchmark. */
void llm_k_attn_rows_set_chunk(int ch);
/* 1 (the default): a 16-bit cache in f16 or bf16 with those head dims goes to
 * the tensor-core kernel too (two stages); 0: to the row kernel.  For tests
 * and measurement. */
void llm_k_attn_rows_set_tc16(int on);
/* Pipeline stages (2, the default, 3, or 4 with two warps) of the
 * tensor-core kernel that serves an 8-bit cache; for the benchmark. */
void llm_k_attn_rows_set_stages(int ns);
/* Warps per block of that kernel: 0 (the default: 2 where the call's
 * row_keys is known and at most 768, else 4), or 4 or 2 for every call
 * (two warps take chunks of 32 tokens, 2, 3 or 4 stages); for the benchmark
 * and measurement. */
void llm_k_attn_rows_set_warps(int w);
/* Whether the tensor-core row kernel reads a row's first block ids beside its
 * position rather than after it (default on; off for measurement). */
int llm_k_attn_rows_set_early(int on);

/* Blocks the row kernel runs per query row and split: one per KV head, or
 * more when a GQA group has over 8 query heads; 0 for a bad head count. */
int llm_k_attn_rows_blocks(int n_heads, int n_kv_heads);

/* Tiled prefill kernel on tensor cores (F16/BF16; head_dim 64, 80, 96, 128
 * or 256): tiles[i] = {seq, first row, number of rows (<= tile_rows)};
 * every row of a tile belongs to that sequence and rows are consecutive
 * positions. */
int llm_k_attn_prefill(const struct llm_k_attn *a, const int32_t *tiles, int n_tiles,
                       llm_stream_t stream);
/* Rows per tile of llm_k_attn_prefill for this dtype and head dimension. */
int llm_k_attn_prefill_tile_rows(int dt, int head_dim);
/* bf16, head_dim 128, with mt (1 or 2) m-tiles of 16 rows per warp: for the benchmark. */
int llm_k_attn_prefill_variant(int mt, const struct llm_k_attn *a, const int32_t *tiles,
                               int n_tiles, llm_stream_t stream);
/* Whether llm_k_attn_prefill handles this dtype and head dimension. */
int llm_k_attn_prefill_supported(int dt, int head_dim);

/* ---- skinny matrix product for decode -----------------------------------
 * y[m][n] = sum_k x[m][k] * w[n][k] (+ bias[n]) (+ y[m][n] when accumulate),
 * for m < M <= 8 rows; w row-major [N][K] in dt, x [M][K] (row stride ldx),
 * y [M][N] (row stride ldy).  K must be a multiple of 8. */
int llm_k_gemv(int dt, void *y, int ldy, const void *x, int ldx, const void *w,
               const void *bias, int M, int N, int K, int accumulate, llm_stream_t stream);
/* One row through a gated MLP's fused input matrix w [2 I][K] (fc rows then
 * gate rows, bias [2 I] or NULL): y[j] = act(fc_j(x) + b_j) * (gate_j(x) +
 * b_{I+j}) for j < I, in one pass (no separate activation kernel). */
int llm_k_gemv_gated(int dt, int act, void *y, const void *x, const void *w, const void *bias,
                     int I, int K, llm_stream_t stream);

/* Shape of single-row products: 0 (the default) two warps a row, held to
 * 32 registers unless that leaves a clearly emptier last wave (gemv.cu);
 * 1 one warp a row; 2 or 4 that many warps at the compiler's registers; 5
 * two warps at 32 registers. */
void llm_k_set_gemv_split(int mode);

/* The same in bf16 with a numbered tile shape (0..9; 7..9 split K, one row), for
 * the benchmark. */
int llm_k_gemv_variant(int variant, void *y, int ldy, const void *x, int ldx, const void *w,
                       const void *bias, int M, int N, int K, int accumulate,
                       llm_stream_t stream);


/* ---- weight-only quantized products (qgemv.cu) ----------------------------
 * A quantized weight W [N][K] on the device: q int8 [N][K], or int4 [N][K/2]
 * bytes (element 2i in the low nibble, two's complement); fp32 scales, int8
 * [N] (per channel), int4 [N][K / group] (row-major by output row); zm
 * (int4, optional) [N][K / group] = -scale * zero, so W = scale * q + zm;
 * pre (optional, AWQ) [K] multiplies x before the product, or [2][K] with
 * rows n >= pre_split taking pre + K (a gated MLP's stacked fc and gate). */
enum llm_k_qfmt { LLM_K_Q_INT8 = 1, LLM_K_Q_INT4 = 2, LLM_K_Q_FP8 = 3 };
/* What happens to the activations first (w8a8.cu): nothing (weight-only),
 * rounding to e4m3 or to int8 under a scale. */
enum llm_k_qact { LLM_K_A_NONE = 0, LLM_K_A_FP8 = 1, LLM_K_A_INT8 = 2 };
struct llm_k_qw {
    int fmt;
    const void *q;
    const float *scale, *zm, *pre;
    int group;
    int pre_split;
    int tile; /* int4 only: q in the tensor-core tile layout of llm_k_q4_tile */
    /* int4 in the tile layout: every scale is a value of the compute dtype (f16 /
     * bf16), so the warpgroup GEMM scales its codes with one 16-bit multiply - the
     * same bits as the fp32 product rounded, in one instruction for five (power-of-two
     * scales; AWQ's f16 scales in an f16 model) */
    int scale_exact;
    /* int4 in the tile layout with zero points (imported AWQ / GPTQ): the zero
     * points as integers [N][K / group] (zm beside them for the dequantization);
     * the tensor-core kernels take codes as q - z (exact in 16 bits), the staged
     * GEMV and the GEMM only, without a pre-quant scale */
    const int8_t *zq;
    /* W8A8 (act != LLM_K_A_NONE; fmt fp8 or int8, scale [N] per row):
     * act_scale the static activation scale (NULL: each row's own),
     * smoother [K] or NULL; with pre_split < N both are pairs, rows from
     * pre_split on taking act_scale + 1 and smoother + K. */
    int act;
    const float *act_scale, *smoother;
    int scalar; /* W8A8: one weight scale per part and a static activation scale */
    int act_static; /* W8A8: every part's activation scale is static (> 0) */
};
/* The tensor-core layout of int4 weights (f16 / bf16 products, no zero
 * point, N % 16 == 0, K % 64 == 0): tiles of 16 rows x 64 inputs, 512 bytes
 * each, row tile after row tile along K; in a tile, lane l = 4 g + t of a
 * warp owns 16 bytes, word s (inputs 16 s .. 16 s + 15 of the tile) holding
 * its m16n8k16 A fragment: nibble j (bits 4 j) = W[g + 8 (j & 1)][2 t + 8
 * ((j >> 1) & 1) + (j >> 2)], each as q + 8.  dst [N K / 2] from the
 * artifact's [N][K / 2] (host memory). */
void llm_k_q4_tile(uint8_t *dst, const uint8_t *src, int64_t N, int64_t K);
/* The same on the device: dst and src device memory, not overlapping. */
int llm_k_q4_tile_dev(uint8_t *dst, const uint8_t *src, int64_t N, int64_t K,
                      llm_stream_t stream);
/* Whether a weight of this shape can take the tile layout. */
int llm_k_q4_tile_ok(int N, int K, int has_zero);
/* Whether llm_k_qgemv / llm_k_qgemv_gated take this weight and shape (M <= 8,
 * int8: K % 16 == 0; int4: K % 32 == 0 and group a multiple of 32; the tile
 * layout: M <= 4 with a pre-quant scale, f16 / bf16 only). */
int llm_k_qgemv_ok(const struct llm_k_qw *w, int M, int K, int ldx);
/* y[m][n] = sum_k x[m][k] (pre[k]) W[n][k] (+ bias[n]) (+ y[m][n] when
 * accumulate) for m < M <= 8, fp32 accumulation; x, y, bias in dt. */
int llm_k_qgemv(int dt, void *y, int ldy, const void *x, int ldx, const struct llm_k_qw *w,
                const void *bias, int M, int N, int K, int accumulate, llm_stream_t stream);
/* An RMS norm folded into the product that reads its output: rows res [M][K]
 * normalised as llm_k_norm does (no residual add; kind LLM_K_NORM_RMS, weight
 * w [K] (+ w_offset), b NULL), the normalised rows also stored into out
 * [M][K] for any later reader. */
struct llm_k_norm_in {
    int kind;
    const void *res;
    const void *w, *b;
    float w_offset, eps;
    void *out;
};
/* Whether llm_k_qgemv_norm takes this norm, weight and shape: RMS, int4 in
 * the tile layout, groups 32 / 64 / 128, the staged shapes (N rows, or I for
 * the gated pair). */
int llm_k_qgemv_norm_ok(const struct llm_k_qw *w, int kind, int gated, int M, int N, int K);
/* llm_k_qgemv (gated 0) or llm_k_qgemv_gated (gated 1, N = I) on norm(res):
 * x * w is staged and the products scaled by each row's 1 / rms at the store
 * (one rounding of x * w to the compute dtype, not of the normalised row: a
 * dense product's error, op test QGEMV_NORM), so the norm costs no launch
 * and no barrier; block 0 stores the normalised rows. */
int llm_k_qgemv_norm(int dt, int gated, int act, void *y, int ldy,
                     const struct llm_k_norm_in *nrm, const struct llm_k_qw *w, const void *bias,
                     int M, int N, int K, int accumulate, llm_stream_t stream);
/* The same fold for one row of a 16-bit dense product (the shapes of
 * llm_k_gemv at M = 1 and llm_k_gemv_gated): y = norm(res) W^T (+ bias) (+ y),
 * or (gated, N = I) act(fc) * gate; x * (w + w_offset) is summed in fp32 and
 * scaled by the row's 1 / rms at the store, and block 0 stores the
 * normalised row to nrm->out (which must not be nrm->res).  RMS, f16 / bf16,
 * K a multiple of 8: llm_k_gemv_norm_ok. */
int llm_k_gemv_norm_ok(int dt, int kind, int K);
int llm_k_gemv_norm(int dt, int gated, int act, void *y, const struct llm_k_norm_in *nrm,
                    const void *w, const void *bias, int N, int K, int accumulate,
                    llm_stream_t stream);
/* A gated MLP's stacked [2 I][K] quantized matrix: y[m][j] = act(fc_j) * gate_j
 * for j < I, m < M <= 8 (bias [2 I] or NULL). */
int llm_k_qgemv_gated(int dt, int act, void *y, int ldy, const void *x, int ldx,
                      const struct llm_k_qw *w, const void *bias, int M, int I, int K,
                      llm_stream_t stream);
/* Single-row kernel shape: 0 (default) x * pre staged in shared memory, 2 rows
 * per warp, 8 warps, 4 loads in flight per row; 1: 4 rows (gate/up: 2 outputs)
 * per warp; 2: 2 rows, 4 warps, 8 loads; 3: 4 rows, 4 warps, 2 loads; 4: 1 row,
 * 8 warps, 8 loads; 5: the several-row kernel (x from L1, converted per
 * chunk).  The same in bf16 by shape for the benchmark (y [N], x [K]).
 * int4 in the tile layout (1..8 rows) reads the shape its own way: 0, 5..8
 * the staged tile kernel (B fragments of x * pre staged once per block; groups
 * 32, 64, 128, others take the per-lane kernel) with (warps per tile, 16-byte
 * loads in flight per warp) 0: (8, 8), gate/up (8, 4); 5: (8, 4), 6: (16, 4),
 * 7: (8, 8), 8: (4, 8); 1..4 the per-lane tile kernel (B fragments from global memory per
 * lane) at (4, 4), (8, 2), (4, 8), (8, 4) - 4 its former default. */
void llm_k_set_qgemv_shape(int shape);
/* qgemv_t2_kernel: x staged per warp (1, the default) or per block behind a barrier (0). */
int llm_k_set_t2_wstage(int on);
int llm_k_qgemv_variant(int shape, void *y, const void *x, const struct llm_k_qw *w,
                        const void *bias, int N, int K, int accumulate, llm_stream_t stream);
/* dst [N][K] in dt = W dequantized (K % 8 == 0), for cuBLASLt. */
int llm_k_dequant(int dt, void *dst, const struct llm_k_qw *w, int N, int K, llm_stream_t stream);
/* dst [E][N][K] in dt (f16 / bf16): expert e's weight tab[e] (device memory;
 * E weight-only int8 / int4 weights of one format, group, layout and side
 * tensors, proto a host copy of one of them) dequantized, with its
 * pre-quant scale folded in (W[n][k] pre[k]; rows from pre_split on take
 * pre + K) - the experts' weights for the grouped 16-bit product. */
int llm_k_dequant_experts(int dt, void *dst, const struct llm_k_qw *tab,
                          const struct llm_k_qw *proto, int E, int N, int K, llm_stream_t stream);
/* W4A8: an int4 weight's codes as e4m3 numbers, dst [N][K] bytes (q exactly;
 * no zero points, K % 64 == 0, either layout), and its group scales
 * transposed, scale_t [K / group][N] fp32 - the operands of cuBLASLt's
 * fp8 product with 128-element block scales. */
int llm_k_dequant_codes8(void *dst, float *scale_t, const struct llm_k_qw *w, int N, int K,
                         llm_stream_t stream);
/* dst[m][k] = x[m][k] * pre[k] (AWQ before a dense product), rounded once to dt. */
int llm_k_prescale(int dt, void *dst, int ldd, const void *x, int ldx, const float *pre, int M,
                   int K, llm_stream_t stream);
/* dst[m][j] = x[m][perm[j]] for j < K (a weight stored on permuted inputs,
 * GPTQ act-order: y = W . x[perm]); perm device int32 [K], every index < ldx. */
int llm_k_gather_cols(int dt, void *dst, int ldd, const void *x, int ldx, const int32_t *perm,
                      int M, int K, llm_stream_t stream);
/* Whether llm_k_q4_gemm takes this weight and x: int4 in the tile layout
 * without zero points, f16 / bf16, groups 32, 64, 128, x 16-byte aligned with
 * ldx % 8 == 0. */
int llm_k_q4_gemm_ok(int dt, const struct llm_k_qw *w, int N, int K, const void *x, int ldx);
/* y[m][n] = sum_k x[m][k] W[n][k] (+ bias[n]) (+ y[m][n] when accumulate), any
 * M, on the tensor cores with the codes dequantized in registers (q4gemm.cu);
 * x is taken as given (AWQ: llm_k_prescale first; w->pre is not read).  ws
 * (ws_bytes, may be NULL / 0): fp32 workspace for splitting K when the batch
 * leaves SMs idle. */
int llm_k_q4_gemm(int dt, void *y, int ldy, const void *x, int ldx, const struct llm_k_qw *w,
                  const void *bias, int M, int N, int K, int accumulate, void *ws, size_t ws_bytes,
                  llm_stream_t stream);
/* W4A8's fused product: whether it takes the weight (int4 in the tile layout, group 128,
 * no zero points, N % 16 == 0, K % 128 == 0, f16 / bf16). */
int llm_k_q4_gemm8_ok(int dt, const struct llm_k_qw *w, int N, int K);
/* y[m][n] = sum_g s[n][g] sum_{k in g} q[n][k] c[m][k] (+ bias[n]) (+ y[m][n] when
 * accumulate), any M, on fp8 warpgroup MMA: c the e4m3 numbers of x's codes xq and xs their
 * group sums as llm_k_quant_x8t writes them for M rows, s the weight's group scales (the
 * activation scale folded in), the codes q never widened past 8 bits.  ws / ws_bytes as for
 * llm_k_q4_gemm. */
int llm_k_q4_gemm8(int dt, void *y, int ldy, const void *xq, const float *xs,
                   const struct llm_k_qw *w, const void *bias, int M, int N, int K, int accumulate,
                   void *ws, size_t ws_bytes, llm_stream_t stream);
/* Its x rows a block: 64 (0: the default) or 128. */
void llm_k_set_q4gemm8_bn(int bn);
/* The GEMM's block shape: 0 (the kernel's own default) and 1: 4 warps of 2 row tiles; 2 eight
 * warps of one row tile (about half the registers a thread, twice the warps an SM); 3 past 64
 * rows two warpgroups of wgmma (A, s * q rounded to 16 bits, from registers; x from shared
 * memory), shape 1 up to 64; 4 the same with four warpgroups. */
void llm_k_set_q4gemm_shape(int shape);
/* The warpgroup int4 GEMM's x rows a block past 128 rows: 256 (the default: one block an
 * SM, m64n256 products) or 128 (two blocks an SM). */
void llm_k_set_q4wg_bn(int bn);

/* ---- W8A8 products: fp8 and int8 activations (w8a8.cu) -------------------
 * Rows of x quantized as the CPU reference does (cpu_quant.c): x[m][k] /
 * smoother[k] (when given) / s, s = *act_scale when given and > 0, else the
 * row's max|.| / 448 (fp8) or / 127 (int8) (1 for a zero row); rounded to
 * e4m3 (saturating) or int8 (clamped to +-127) into xq [M][K] bytes, s into
 * xs[m]. */
int llm_k_quant_act(int dt, int act, void *xq, float *xs, const void *x, int ldx,
                    const float *smoother, const float *act_scale, int M, int K,
                    llm_stream_t stream);
/* W4A8's activations: c = e4m3(x[m][k] * pre[k] / *act_scale) (pre may be
 * NULL), the CPU reference's rounding, written as the codes (vals 0: dst
 * [M][K] bytes, for cuBLASLt) or as the numbers they stand for, unscaled
 * (vals 1: dst [M][K] in dt, exact, for the int4 kernels, whose group
 * scales carry the activation scale). */
int llm_k_quant_x8(int dt, int vals, void *dst, const void *x, int ldx, const float *pre,
                   const float *act_scale, int M, int K, llm_stream_t stream);
/* The same rounding for llm_k_q4_gemm8 (K % 128 == 0, f16 / bf16 x): the codes dst [M][K]
 * bytes, each 16 inputs in the int4 tile layout's order (byte 4 t + i holds input 2 t + 8
 * (i & 1) + (i >> 1)), and xs[K / 128][Mp] (Mp = (M + 3) & ~3, rows past M zero) each
 * group's sum of the numbers its codes stand for, divided by 64. */
int llm_k_quant_x8t(int dt, void *dst, float *xs, const void *x, int ldx, const float *pre,
                    const float *act_scale, int M, int K, llm_stream_t stream);
/* Whether the W8A8 kernels take an input width (K % 16 == 0). */
int llm_k_w8a8_ok(int K);
/* y[m][n] (type yt) = xs[m] ws[n] sum_k xq[m][k] wq[n][k] (+ bias[n], yt)
 * (+ y[m][n] when accumulate), M <= 8, on the tensor cores. */
int llm_k_w8a8_gemv(int yt, int act, void *y, int ldy, const void *xq, const float *xs,
                    const void *wq, const float *ws, const void *bias, int M, int N, int K,
                    int accumulate, llm_stream_t stream);
/* The GEMV's launch shape (0 default: 16 warps over K, 1 step in flight, 16
 * rows a block; 1..5 other warps / steps / 32 rows a block, 4 = 8 warps x 2
 * steps), for the benchmark. */
void llm_k_set_w8_shape(int shape);
/* y[m][n] = acc[m][n] xs[m] ws[n] (+ bias[n]) (+ y[m][n]): a GEMM's int32
 * (acc_i32) or fp32 result [M][N] scaled. */
int llm_k_w8a8_scale(int yt, void *y, int ldy, const void *acc, int acc_i32, const float *xs,
                     const float *ws, const void *bias, int M, int N, int accumulate,
                     llm_stream_t stream);

/* ---- sampling ----------------------------------------------------------
 * One row of sampling parameters, as struct llm_sampling plus the row's
 * token lists (offsets into the shared `tokens` array). */
struct llm_k_sampler {
    double temperature, top_p, min_p;
    double rep, pres, freq;    /* repetition, presence, frequency penalties */
    uint64_t seed, index;
    uint32_t stream;
    int top_k;
    int n_top;                 /* logprob alternatives, 0..20 */
    int prompt_off, n_prompt, output_off, n_output, banned_off, n_banned;
};

struct llm_k_sample_out {
    int32_t status;            /* 0 sampled; 1 needs the host sampler (full sort); 2 nothing sampleable */
    int32_t token;
    float logprob;             /* raw log-softmax of the token */
    int32_t n_top;
    int32_t top_ids[20];
    float top_logprobs[20];
};

/* Sample n rows of logits [n][vocab] exactly as llm_sample_cpu does, for
 * greedy rows and rows with 1 <= top_k <= 64; other rows get status 1.
 * work: [n][vocab] floats; mark: [n][vocab] int32 (used with penalties). */
int llm_k_sample(const float *logits, int64_t vocab, int n, const struct llm_k_sampler *params,
                 const int32_t *tokens, float *work, int32_t *mark, struct llm_k_sample_out *out,
                 llm_stream_t stream);

/* ---- calibration statistics (calib.cu) ----------------------------------------
 * Over the rows x [rows][ldx] (dt; k values a row), added into the running
 * statistics on the device: chan[i] = max(chan[i], max_t |x[t][i]|),
 * chan_sum[i] += sum_t |x[t][i]| (double, each column's rows summed in a
 * fixed order, so a launch gives the same bits every time), *amax the
 * largest |x| (NaN never counts as a maximum); and each row t with
 * slot[t] >= 0 (slot may be NULL; no two rows the same slot) copied as fp32
 * to sample + slot[t] * k.  The reference: llm_cpu_col_stats. */
int llm_k_col_stats(int dt, const void *x, int ldx, int rows, int k, const int32_t *slot,
                    float *sample, float *chan, double *chan_sum, float *amax,
                    llm_stream_t stream);
/* max |K| and max |V| of the n rows just appended to one layer of the KV
 * pool (kv = the pool plus the layer's offset, dt elements, not 8-bit
 * codes), read at slot[i] (negative: skipped), max-accumulated into
 * amax2[0] and amax2[1]. */
int llm_k_kv_amax(int dt, const void *kv, int64_t blk_stride, int block_size,
                  const int32_t *slot, int n, int n_kv_heads, int head_dim, float *amax2,
                  llm_stream_t stream);

/* ---- all-reduce over peer memory (allreduce.cu) ------------------------------
 * The ranks of one host: buf[r] is rank r's registered buffer (its input,
 * n elements), flags[r] its flag array (llm_k_allreduce_flag_bytes, zeroed
 * once), all readable and writable from every rank (peer access / IPC).
 * out (a buffer of the rank's own, not a registered one) gets the sum over
 * the ranks, the same bits on every rank (fp32 sums in rank order).
 * seq numbers the calls: every rank passes the same, growing by 4 per call.
 * Blocks: at most 64, the same on every rank; n a multiple of 8. */
#define LLM_AR_MAX_RANKS 16
enum { LLM_AR_NCCL = 0, LLM_AR_ONESHOT, LLM_AR_TWOSHOT };
typedef struct llm_ar_peers {
    void *buf[LLM_AR_MAX_RANKS];
    uint32_t *flags[LLM_AR_MAX_RANKS];
    int n, rank;
} llm_ar_peers;
int llm_k_allreduce(int dt, int two_shot, const llm_ar_peers *p, void *out, int64_t n,
                    uint32_t seq, int blocks, llm_stream_t stream);
uint64_t llm_k_allreduce_flag_bytes(void);
/* Which algorithm a message of `bytes` over n ranks takes. */
int llm_k_allreduce_pick(uint64_t bytes, int n_ranks);

#ifdef __cplusplus
}
#endif
#endif
