/* cuda_step.c - one forward step on the GPU: the step's metadata, the
 * model definition's steps as kernels and cuBLASLt products, decode graphs.
 *
 * A step: the host validates the batch, packs tokens, positions, rope
 * rows, KV slots, block table, output rows and the attention work lists
 * into one pinned buffer (struct cu_meta_layout says where each array
 * sits) and sends it with one copy; then it walks the model definition
 * (llm/graph.h), each step becoming kernels: norm -> qkv product -> rope +
 * KV append -> attention (tensor-core tiles for prompt chunks,
 * split-sequence row kernel for decode rows) -> output product accumulated
 * into the residual (cuBLASLt beta = 1, or the GEMV kernel for few rows) ->
 * norm -> fused gate/up product (one GEMV with the activation for a single
 * row) -> activation -> down product accumulated into the residual.  Only
 * the rows whose logits are wanted go through the final norm and the
 * lm_head (fp32 logits).  Semantics follow the CPU reference op for op.
 *
 * A pure decode step (one new token per sequence, every row's logits
 * wanted) can replay a captured CUDA graph: padded to a bucket size and
 * packed in a fixed layout, metadata copy included.  Padding rows use token
 * 0 at position 0 of block 0, write no KV (slot -1) and their logits are
 * never reported.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_profiler_api.h>

#include "llm/backend.h"
#include "llm/err.h"
#include "llm/log.h"
#include "llm/weight.h"
#include "../cpu/cpu_ops.h"
#include "kernels/kernels.h"
#include "cuda_internal.h"

#define PF_MIN_ROWS 3 /* sequences with fewer new rows use the row kernel */

/* ---- buffers ----------------------------------------------------------------- */

/* Captured graphs hold the addresses of the metadata and output buffers:
 * drop them when those move. */
void cu_drop_graphs(struct cu_be *c)
{
    for (int i = 0; i < CU_MAX_GRAPHS; i++) {
        if (c->graph[i]) cudaGraphExecDestroy(c->graph[i]);
        c->graph[i] = NULL;
        c->graph_seen[i] = 0;
    }
}

int cu_grow_meta(struct cu_be *c, size_t ints)
{
    if (ints <= c->meta_cap) return 0;
    cu_drop_graphs(c);
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

int cu_grow_out(struct cu_be *c, int n_out)
{
    if (n_out <= c->cap_out) return 0;
    CK(cudaStreamSynchronize(c->st));
    cu_drop_graphs(c);
    const int ob[3] = {LLM_BUF_FIN, LLM_BUF_FIN2, LLM_BUF_LOGITS};
    for (int i = 0; i < 3; i++) {
        cudaFree(c->buf[ob[i]]);
        c->buf[ob[i]] = NULL;
    }
    c->cap_out = 0;
    size_t H = (size_t)c->d->hidden, V = (size_t)cu_logits_width(c);
    CK(cudaMalloc(&c->buf[LLM_BUF_FIN], (size_t)n_out * H * c->es));
    CK(cudaMalloc(&c->buf[LLM_BUF_FIN2], (size_t)n_out * H * c->es));
    CK(cudaMalloc(&c->buf[LLM_BUF_LOGITS], (size_t)n_out * V * sizeof(float)));
    if (c->comm && llm_part_tp(c->d) > 1) {
        cudaFree(c->gather);
        c->gather = NULL;
        CK(cudaMalloc((void **)&c->gather, (size_t)n_out * V * sizeof(float)));
    }
    c->cap_out = n_out;
    return 0;
}

/* ---- metadata ---------------------------------------------------------------- */

/* The batch rules every backend shares (backend.c), then the token ids: the
 * embedding kernel reads them unchecked, so they are checked here. */
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

static void step_pointers(struct cu_step *s, const int32_t *dm, const struct cu_meta_layout *L)
{
    s->tokens = dm + L->tok;
    s->pos = dm + L->pos;
    s->rope_row = dm + L->rope_row;
    s->slot = dm + L->slot;
    s->out_rows = dm + L->out;
    s->bt = dm + L->bt;
    s->rows = dm + L->rows;
    s->seqs = dm + L->seqs;
    s->split_len = dm + L->split_len;
    s->tiles = dm + L->tiles;
    s->meta_ints = L->ints;
}

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

/* Dynamic NTK scaling past max_pos: the rotary frequencies depend on the
 * sequence's length, so such rows get their cos/sin computed for this step
 * (by the reference's functions) into the table's dynamic rows.  Returns
 * the table row to use. */
static int dyn_rope_row(struct cu_be *c, struct cu_step *s, int p, int seq_len)
{
    const struct llm_model_desc *d = c->d;
    int half = c->rope.rot_dims / 2;
    float inv[512], ms;
    if (llm_cpu_rope_freqs(&c->rope, d->max_pos, seq_len, inv, &ms)) return -1;
    float cs[512], sn[512];
    llm_cpu_rope_cos_sin(inv, half, ms, p, cs, sn);
    float *row = c->h_dyn + (size_t)s->n_dyn * 2 * (size_t)half;
    for (int i = 0; i < half; i++) {
        row[2 * i] = cs[i];
        row[2 * i + 1] = sn[i];
    }
    return c->rope_dyn0 + s->n_dyn++;
}

static int needs_dyn(const struct cu_be *c, int seq_len)
{
    return c->rope_dyn_rows > 0 && seq_len > c->d->max_pos;
}

/* Eager layout, sized to the batch. */
static int pack_meta(struct cu_be *c, const struct llm_batch *b, struct cu_step *s)
{
    const struct llm_model_desc *d = c->d;
    int n = b->n_tokens, bs = c->pub.block_size;
    int pf = llm_k_attn_prefill_supported(c->dt, d->head_dim);
    int tr = pf ? llm_k_attn_prefill_tile_rows(c->dt, d->head_dim) : 64;
    size_t max_tiles = (size_t)b->n_seqs + (size_t)n / (size_t)tr + 1;
    struct cu_meta_layout L;
    L.tok = 0;
    L.pos = L.tok + (size_t)n;
    L.rope_row = L.pos + (size_t)n;
    L.slot = L.rope_row + (size_t)n;
    L.out = L.slot + (size_t)n;
    L.bt = L.out + (size_t)b->n_out;
    L.rows = L.bt + (size_t)b->n_seqs * (size_t)b->bt_stride;
    L.seqs = L.rows + (size_t)n;
    L.split_len = L.seqs + (size_t)n;
    L.tiles = L.split_len + 1;
    int rc = cu_grow_meta(c, L.tiles + 3 * max_tiles + 64);
    if (rc) return rc;
    CK(cudaEventSynchronize(c->meta_done)); /* the previous step's copy has left h_meta */
    int32_t *h = c->h_meta;
    memcpy(h + L.tok, b->tokens, sizeof(int32_t) * (size_t)n);
    memcpy(h + L.pos, b->pos, sizeof(int32_t) * (size_t)n);
    if (b->n_out) memcpy(h + L.out, b->out_rows, sizeof(int32_t) * (size_t)b->n_out);
    memcpy(h + L.bt, b->block_table, sizeof(int32_t) * (size_t)b->n_seqs * (size_t)b->bt_stride);

    int64_t LL = c->rope.orig_max_pos > 0 ? c->rope.orig_max_pos : d->max_pos;
    int n_rows = 0, n_tiles = 0, maxlen = 0, ident = 1;
    s->n_dyn = 0;
    for (int sq = 0; sq < b->n_seqs; sq++) {
        int t0 = b->seq_start[sq], t1 = b->seq_start[sq + 1];
        const int32_t *btr = b->block_table + (int64_t)sq * b->bt_stride;
        int use_long = c->rope_sets == 2 && b->seq_len[sq] > LL;
        int dyn = needs_dyn(c, b->seq_len[sq]);
        for (int t = t0; t < t1; t++) {
            int p = b->pos[t];
            h[L.rope_row + t] = dyn ? dyn_rope_row(c, s, p, b->seq_len[sq])
                                    : p + (use_long ? c->rope_npos : 0);
            if (h[L.rope_row + t] < 0)
                return llm_err_set(LLM_EINVAL, "cuda backend: rotary frequencies for %d tokens",
                                   b->seq_len[sq]);
            h[L.slot + t] = btr[p / bs] * bs + p % bs;
        }
        if (pf && t1 - t0 >= PF_MIN_ROWS) {
            for (int r = t0; r < t1; r += tr) {
                h[L.tiles + 3 * (size_t)n_tiles] = sq;
                h[L.tiles + 3 * (size_t)n_tiles + 1] = r;
                h[L.tiles + 3 * (size_t)n_tiles + 2] = t1 - r < tr ? t1 - r : tr;
                n_tiles++;
            }
        } else {
            for (int t = t0; t < t1; t++) {
                h[L.rows + n_rows] = t;
                h[L.seqs + n_rows] = sq;
                ident &= t == n_rows && sq == n_rows;
                n_rows++;
                int vis = visible_keys(c, b->pos[t]);
                if (maxlen < vis) maxlen = vis;
            }
        }
    }
    L.ints = L.tiles + 3 * (size_t)n_tiles;
    int sl = n_rows ? split_policy(c, n_rows, maxlen, c->ws_rows / n_rows) : 0;
    h[L.split_len] = sl;
    step_pointers(s, c->d_meta, &L);
    s->max_splits = sl ? (maxlen + sl - 1) / sl : 1;
    s->row_keys = sl && sl < maxlen ? sl : maxlen;
    s->n = n;
    s->n_out = b->n_out;
    s->bt_stride = b->bt_stride;
    s->n_rows = n_rows;
    s->n_tiles = n_tiles;
    s->rows_ident = ident;
    return 0;
}

/* ---- decode graphs ------------------------------------------------------------ */

static const int graph_buckets[] = {1,   2,   4,   8,   16,  24,  32,  48,  64,  80,  96, 128,
                                    160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 1024};
#define N_BUCKETS ((int)(sizeof graph_buckets / sizeof graph_buckets[0]))
_Static_assert(sizeof graph_buckets / sizeof graph_buckets[0] <= CU_MAX_GRAPHS,
               "graph table too small");

void cu_default_buckets(struct cu_be *c)
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

/* Whether a step of S expert slots (past the per-slot path) runs the grouped
 * kernel (nothing read back) or a cuBLAS product per expert. */
static int moe_grouped(const struct cu_be *c, int S)
{
    const int E = c->d->n_experts;
    return c->moe_grouped == 1 ||
           (c->moe_grouped == 2 && (E > CU_MOE_LOOP_EXPERTS || S < CU_MOE_LOOP_ROWS * E));
}

static int graph_eligible(const struct cu_be *c, const struct llm_batch *b)
{
    if (!c->use_graphs || c->stats || b->n_seqs != b->n_tokens || b->n_out != b->n_tokens)
        return 0;
    for (int i = 0; i < b->n_out; i++)
        if (b->out_rows[i] != i || needs_dyn(c, b->seq_len[i])) return 0;
    int bi = bucket_for(c, b->n_tokens);
    /* experts: only the paths that read nothing back on the host (step_moe; quantized
     * experts always do) */
    if (c->moe_quant) return 0;
    if (bi >= 0 && c->d->n_experts > 0) {
        int S = c->buckets[bi] * c->d->n_experts_per_tok;
        if ((c->moe_no_small || S > LLM_K_MOE_SMALL) && !moe_grouped(c, S)) return 0;
    }
    return bi >= 0;
}

/* The fixed layout of bucket size B (block table stride = blocks of max_seq_len). */
static struct cu_meta_layout fixed_layout(int B, int S)
{
    struct cu_meta_layout L;
    L.tok = 0;
    L.pos = (size_t)B;
    L.rope_row = 2 * (size_t)B;
    L.slot = 3 * (size_t)B;
    L.out = 4 * (size_t)B;
    L.rows = 5 * (size_t)B;
    L.seqs = 6 * (size_t)B;
    L.split_len = 7 * (size_t)B;
    L.bt = L.split_len + 1;
    L.tiles = 0; /* no tiles in a decode step */
    L.ints = L.bt + (size_t)B * (size_t)S;
    return L;
}

static int pack_meta_fixed(struct cu_be *c, const struct llm_batch *b, int B, struct cu_step *s)
{
    const struct llm_model_desc *d = c->d;
    int n = b->n_tokens, bs = c->pub.block_size;
    int S = (c->pub.max_seq_len + bs - 1) / bs;
    struct cu_meta_layout L = fixed_layout(B, S);
    int rc = cu_grow_meta(c, L.ints);
    if (rc) return rc;
    CK(cudaEventSynchronize(c->meta_done));
    int32_t *h = c->h_meta;
    int64_t LL = c->rope.orig_max_pos > 0 ? c->rope.orig_max_pos : d->max_pos;
    int maxlen = 0;
    for (int i = 0; i < B; i++) {
        h[L.out + i] = h[L.rows + i] = h[L.seqs + i] = i;
        int32_t *btr = h + L.bt + (size_t)i * S;
        if (i < n) {
            int p = b->pos[i];
            const int32_t *src = b->block_table + (int64_t)i * b->bt_stride;
            memcpy(btr, src, sizeof(int32_t) * (size_t)(p / bs + 1));
            h[L.tok + i] = b->tokens[i];
            h[L.pos + i] = p;
            h[L.rope_row + i] = p + (c->rope_sets == 2 && b->seq_len[i] > LL ? c->rope_npos : 0);
            h[L.slot + i] = src[p / bs] * bs + p % bs;
            int vis = visible_keys(c, p);
            if (maxlen < vis) maxlen = vis;
        } else {
            btr[0] = 0;
            h[L.tok + i] = h[L.pos + i] = h[L.rope_row + i] = 0;
            h[L.slot + i] = -1;
        }
    }
    int ms = graph_max_splits(c, B);
    int v = split_policy(c, B, maxlen, ms);
    h[L.split_len] = v ? v : 1 << 30;
    step_pointers(s, c->d_meta, &L);
    s->n = B;
    s->n_out = B;
    s->bt_stride = S;
    s->n_rows = B;
    s->rows_ident = 1;
    s->n_tiles = 0;
    s->max_splits = ms;
    s->row_keys = 0; /* a graph is replayed at other lengths: the launch shape stays fixed */
    s->n_dyn = 0;
    return 0;
}

/* ---- the model definition's steps as kernels ------------------------------------ */

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

static const struct cu_w *dw(const struct cu_be *c, int slot, int layer)
{
    return llm_wslot_per_layer(slot) ? &c->lw[layer][slot] : &c->gw[slot];
}

/* Rows [r0, r0 + n) of a quantized weight, as a weight of its own (its
 * pre-quant scale the one those rows use). */
static struct llm_k_qw q_rows(const struct cu_w *w, int r0, int k)
{
    struct llm_k_qw q = w->q;
    int64_t rowb = q.fmt == LLM_K_Q_INT4 ? k / 2 : k, ng = q.fmt == LLM_K_Q_INT4 ? k / q.group : 1;
    q.q = (const char *)q.q + (int64_t)r0 * rowb;
    q.scale += (int64_t)r0 * ng;
    if (q.zm) q.zm += (int64_t)r0 * ng;
    if (q.zq) q.zq += (int64_t)r0 * ng;
    if ((q.pre || q.act) && r0 >= q.pre_split) {
        if (q.pre) q.pre += k;
        if (q.act_scale) q.act_scale += 1;
        if (q.smoother) q.smoother += k;
        q.pre_split = 1 << 30;
    } else if (q.pre || q.act) {
        q.pre_split -= r0;
    }
    return q;
}

/* Rows [r0, r0 + n) of a weight with 8-bit activations (one activation
 * scale and smoother for them all): x rounded to 8 bits, then the GEMV
 * 8 rows at a time for a few rows, cuBLASLt for more (yt: y's type; bias
 * in y's type). */
static int qlinear_w8a8_rows(struct cu_be *c, int m, int r0, int n, int k, const void *x,
                             int ldx, const struct cu_w *w, const void *bias, void *y, int ldy,
                             int yt, int accumulate)
{
    struct llm_k_qw q = q_rows(w, r0, k);
    if (q.pre_split < n)
        return llm_err_set(LLM_EINVAL, "cuda backend: rows %d..%d of an 8-bit weight take two "
                           "activation scales", r0, r0 + n);
    const int small = m <= c->w8_max_m;
    /* rounded already by the norm or activation before (step_norm, step_act), or here */
    const struct cu_q8_src *f = &c->q8_from;
    if (!(f->x && f->x == x && f->act == q.act && f->m == m && f->scale == q.act_scale &&
          f->sm == q.smoother && f->ld == ldx && r0 == 0))
        CK(llm_k_quant_act(c->dt, q.act, c->q8_xq, c->q8_xs, x, ldx, q.smoother, q.act_scale, m,
                           k, c->st));
    if (!small)
        return cu_gemm_run8(c->gemm, c->st, q.act, q.scalar, m, n, k, c->q8_xq, c->q8_xs, q.q, q.scale,
                            bias, y, ldy, yt, accumulate, c->q8_acc, c->q8_acc_bytes);
    size_t ys = yt == LLM_DTYPE_F32 ? 4 : 2;
    for (int m0 = 0; m0 < m; m0 += 8) {
        int mc = m - m0 < 8 ? m - m0 : 8;
        CK(llm_k_w8a8_gemv(yt, q.act, (char *)y + (size_t)m0 * (size_t)ldy * ys, ldy,
                           (const char *)c->q8_xq + (size_t)m0 * (size_t)k, c->q8_xs + m0, q.q,
                           q.scale, bias,
                           mc, n, k, accumulate, c->st));
    }
    return 0;
}

/* The same over all n rows, split where the stacked halves' activation
 * scales or smoothers differ. */
static int qlinear_w8a8(struct cu_be *c, int m, int n, int k, const void *x, int ldx,
                        const struct cu_w *w, const void *bias, void *y, int ldy, int yt,
                        int accumulate)
{
    int h = w->q.pre_split;
    if (h >= n) return qlinear_w8a8_rows(c, m, 0, n, k, x, ldx, w, bias, y, ldy, yt, accumulate);
    size_t ys = yt == LLM_DTYPE_F32 ? 4 : 2;
    int rc = qlinear_w8a8_rows(c, m, 0, h, k, x, ldx, w, bias, y, ldy, yt, accumulate);
    if (rc) return rc;
    return qlinear_w8a8_rows(c, m, h, n - h, k, x, ldx, w,
                             bias ? (const char *)bias + (size_t)h * ys : NULL,
                             (char *)y + (size_t)h * ys, ldy, yt, accumulate);
}

/* Rows [r0, r0 + n) of a quantized weight through the dense path: x times
 * the pre-quant scale into a scratch (AWQ), then int4 in the tile layout on
 * the tensor cores from its codes (llm_k_q4_gemm, the dense scratch its
 * workspace) up to q4gemm_max_m rows (q4gemm_big_m for large products), else the rows
 * dequantized into the scratch and one cuBLASLt product (yt: y's type; bias in y's type). */
static int qlinear_dense(struct cu_be *c, int m, int r0, int n, int k, const void *x, int ldx,
                         const struct cu_w *w, const void *bias, void *y, int ldy, int yt,
                         int accumulate)
{
    struct llm_k_qw q = q_rows(w, r0, k);
    if (q.pre) {
        if (q.pre_split < n)
            return llm_err_set(LLM_EINVAL, "cuda backend: rows %d..%d of a quantized weight "
                               "take two pre-quant scales", r0, r0 + n);
        CK(llm_k_prescale(c->dt, c->q_xs, k, x, ldx, q.pre, m, k, c->st));
        x = c->q_xs;
        ldx = k;
    }
    const int q4m = (int64_t)n * k >= Q4GEMM_BIG ? c->q4gemm_big_m : c->q4gemm_max_m;
    if (m <= q4m && yt == c->dt && r0 % 16 == 0 && llm_k_q4_gemm_ok(c->dt, &q, n, k, x, ldx)) {
        CK(llm_k_q4_gemm(c->dt, y, ldy, x, ldx, &q, bias, m, n, k, accumulate, c->q_dense,
                         c->q_dense_bytes, c->st));
        return 0;
    }
    CK(llm_k_dequant(c->dt, c->q_dense, &q, n, k, c->st));
    return cu_gemm_run(c->gemm, c->st, m, n, k, x, ldx, c->q_dense, bias, y, ldy, yt, accumulate);
}

/* W4A8 (int4 weights, static fp8 activations; cu_w.a8), bias and y in yt:
 * each part (fc and gate with scales of their own run apart) rounds x * pre
 * / s to e4m3 as the CPU reference does, then by rows: past a8_wg_m rows and
 * up to a8_lt_m, where the weight is in the tile layout at group 128, the
 * fused kernel (the codes in tile order times the int4 tiles on fp8
 * warpgroup MMA); else up to a8_lt_m rows (and always in f32, or where
 * cuBLASLt has no algorithm) the int4 kernels on those numbers - exact in 16
 * bits, the group scales carrying s - as a weight-only product; more rows
 * (group 128, no zero points) the codes into cuBLASLt's fp8 product with the
 * weight's group scales as its 128-element block scales, the weight's codes
 * made e4m3 in the dense scratch. */
static int qlinear_w4a8(struct cu_be *c, int m, int n, int k, const void *x, int ldx,
                        const struct cu_w *w, const void *bias, void *y, int ldy, int yt,
                        int accumulate)
{
    const int h = w->a8_split < n ? w->a8_split : n;
    const size_t ys = yt == LLM_DTYPE_F32 ? 4 : 2;
    for (int part = 0; part < 2; part++) {
        const int r0 = part ? h : 0, nr = part ? n - h : h;
        if (nr <= 0) break;
        const struct llm_k_qw q = q_rows(w, r0, k);
        const int second = r0 >= w->a8_split;
        const float *pre = w->a8_pre ? w->a8_pre + (second ? k : 0) : NULL;
        const float *as = w->a8_scale + second;
        const void *b = bias ? (const char *)bias + (size_t)r0 * ys : NULL;
        void *yp = (char *)y + (size_t)r0 * ys;
        if (c->dt != LLM_DTYPE_F32 && yt == c->dt && m > c->a8_wg_m && m <= c->a8_lt_m &&
            r0 % 16 == 0 && llm_k_q4_gemm8_ok(c->dt, &q, nr, k)) {
            CK(llm_k_quant_x8t(c->dt, c->a8_xq, c->a8_xs, x, ldx, pre, as, m, k, c->st));
            CK(llm_k_q4_gemm8(c->dt, yp, ldy, c->a8_xq, c->a8_xs, &q, b, m, nr, k, accumulate,
                              c->q_dense, c->q_dense_bytes, c->st));
            continue;
        }
        int m0 = 0; /* rows before m0 done on the fp8 path */
        if (c->dt != LLM_DTYPE_F32 && m > c->a8_lt_m && q.group == 128 && !q.zm && k % 128 == 0 &&
            (!q.tile || nr % 16 == 0)) {
            /* cuBLASLt refuses these products for row counts off a multiple of 8 (measured on
             * an H100), so m is rounded up: the codes' extra rows are stale scratch rows, and
             * the padded product goes into a scratch (a8_y) its m rows are copied from;
             * where that is too small, the multiple of 8 below m runs directly and the last
             * rows on the int4 kernels */
            const int mp = (m + 7) & ~7;
            const int pad = mp != m && (uint64_t)mp * (uint64_t)nr * ys <= c->a8_y_bytes;
            const int mm = mp == m || pad ? mp : m & ~7;
            void *yd = pad ? c->a8_y : yp;
            const int ldd = pad ? nr : ldy;
            float *st =
                (float *)((char *)c->q_dense + (((size_t)nr * (size_t)k + 255) & ~(size_t)255));
            int rc = LLM_EUNSUPPORTED;
            if (mm > 0) {
                CK(llm_k_quant_x8(c->dt, 0, c->a8_xq, x, ldx, pre, as, m, k, c->st));
                CK(llm_k_dequant_codes8(c->q_dense, st, &q, nr, k, c->st));
                if (pad && accumulate)
                    CK(cudaMemcpy2DAsync(yd, (size_t)nr * ys, yp, (size_t)ldy * ys, (size_t)nr * ys,
                                         (size_t)m, cudaMemcpyDeviceToDevice, c->st));
                rc = cu_gemm_run_blk(c->gemm, c->st, mm, nr, k, c->a8_xq, c->a8_ones, c->q_dense,
                                     st, b, yd, ldd, yt, accumulate);
            }
            if (!rc) {
                if (pad)
                    CK(cudaMemcpy2DAsync(yp, (size_t)ldy * ys, yd, (size_t)nr * ys, (size_t)nr * ys,
                                         (size_t)m, cudaMemcpyDeviceToDevice, c->st));
                if (mm >= m) continue;
                m0 = mm;
            } else if (rc != LLM_EUNSUPPORTED) {
                return rc;
            } else if (mm > 0 && !c->a8_told) {
                llm_warn("W4A8: %s; the int4 kernels take such products", llm_errmsg());
                c->a8_told = 1;
            }
        }
        /* the last rows of a product the fp8 path took in part, or all of them */
        const void *xr = (const char *)x + (size_t)m0 * (size_t)ldx * c->es;
        yp = (char *)yp + (size_t)m0 * (size_t)ldy * ys;
        const int mr = m - m0;
        CK(llm_k_quant_x8(c->dt, 1, c->q_xs, xr, ldx, pre, as, mr, k, c->st));
        if (yt == c->dt && mr <= c->qgemv_max_m && llm_k_qgemv_ok(&q, mr, k, k)) {
            CK(llm_k_qgemv(c->dt, yp, ldy, c->q_xs, k, &q, b, mr, nr, k, accumulate, c->st));
        } else {
            int rc = qlinear_dense(c, mr, r0, nr, k, c->q_xs, k, w, b, yp, ldy, yt, accumulate);
            if (rc) return rc;
        }
    }
    return 0;
}

/* y = x W^T (+ bias) (+ y) for a weight in any format of the device. */
static int wlinear(struct cu_be *c, int m, int n, int k, const void *x, int ldx,
                   const struct cu_w *w, void *y, int ldy, int accumulate)
{
    if (!w->q.fmt) return linear(c, m, n, k, x, ldx, w->w, w->b, y, ldy, accumulate);
    if (w->a8) return qlinear_w4a8(c, m, n, k, x, ldx, w, w->b, y, ldy, c->dt, accumulate);
    if (w->q.act) return qlinear_w8a8(c, m, n, k, x, ldx, w, w->b, y, ldy, c->dt, accumulate);
    /* stacked fc/gate with their own pre-quant scales (an expert's, moe_loop): the tile
     * GEMV takes one scale, so the halves run apart (a tile row boundary between them) */
    const int two_pre = w->q.pre && w->q.pre_split < n;
    if (m <= c->qgemv_max_m && llm_k_qgemv_ok(&w->q, m, k, ldx) &&
        (!two_pre || !w->q.tile || w->q.pre_split % 16 == 0)) {
        if (!two_pre || !w->q.tile) {
            CK(llm_k_qgemv(c->dt, y, ldy, x, ldx, &w->q, w->b, m, n, k, accumulate, c->st));
            return 0;
        }
        const int h = w->q.pre_split;
        const size_t es = c->es;
        const struct llm_k_qw lo = q_rows(w, 0, k), hi = q_rows(w, h, k);
        CK(llm_k_qgemv(c->dt, y, ldy, x, ldx, &lo, w->b, m, h, k, accumulate, c->st));
        CK(llm_k_qgemv(c->dt, (char *)y + (size_t)h * es, ldy, x, ldx, &hi,
                       w->b ? (const char *)w->b + (size_t)h * es : NULL, m, n - h, k, accumulate,
                       c->st));
        return 0;
    }
    if (two_pre) {
        int h = w->q.pre_split, es = (int)c->es;
        int rc = qlinear_dense(c, m, 0, h, k, x, ldx, w, w->b, y, ldy, c->dt, accumulate);
        if (rc) return rc;
        return qlinear_dense(c, m, h, n - h, k, x, ldx, w,
                             w->b ? (const char *)w->b + (size_t)h * es : NULL,
                             (char *)y + (size_t)h * es, ldy, c->dt, accumulate);
    }
    return qlinear_dense(c, m, 0, n, k, x, ldx, w, w->b, y, ldy, c->dt, accumulate);
}

/* Row width of a buffer, in elements. */
static int buf_width(const struct cu_be *c, int b)
{
    const struct llm_model_desc *d = c->d;
    switch (b) {
    case LLM_BUF_QKV: return c->qkv_w;
    case LLM_BUF_ATT: return d->n_heads * d->head_dim;
    case LLM_BUF_H: return c->mlp_w;
    case LLM_BUF_LOGITS: return (int)d->vocab_size;
    default: return (int)d->hidden;
    }
}

/* The step after st in its part of the graph, or NULL. */
static const struct llm_step *next_step(const struct cu_be *c, const struct llm_step *st)
{
    const struct llm_graph *g = &c->g;
    const struct llm_step *part[3] = {g->pre, g->layer, g->post};
    const int n[3] = {g->n_pre, g->n_layer, g->n_post};
    for (int i = 0; i < 3; i++)
        if (st >= part[i] && st < part[i] + n[i]) return st + 1 < part[i] + n[i] ? st + 1 : NULL;
    return NULL;
}

/* Output rows of a (non-lm_head) product step: the fc / gate pair's I for a
 * gated one. */
static int linear_rows(const struct cu_be *c, const struct llm_step *s)
{
    const struct llm_model_desc *d = c->d;
    if (s->gated) return (int)d->intermediate;
    return s->slot == LLM_W_QKV ? c->qkv_w : s->slot == LLM_W_MLP_FC ? (int)d->intermediate
                                                                      : (int)d->hidden;
}

/* A norm whose output goes straight into a product with 8-bit activations
 * (one rounding for all its rows, no smoother: fp8 and fp8-pc) also writes
 * those rows rounded, so the product skips llm_k_quant_act. */
static int step_norm(struct cu_be *c, const struct llm_step *s, int layer, int rows)
{
    const struct llm_model_desc *d = c->d;
    const struct cu_w *w = dw(c, s->slot, layer);
    const struct llm_step *nx = next_step(c, s);
    const struct cu_w *nw = NULL;
    if (!c->q8_no_fuse && nx && nx->op == LLM_OP_LINEAR && nx->in == s->out &&
        nx->rows == s->rows && nx->out != LLM_BUF_LOGITS && nx->slot != LLM_W_PROJ_OUT &&
        buf_width(c, s->out) == d->hidden) {
        nw = dw(c, nx->slot, layer);
        if (!nw->q.act || nw->q.smoother || nw->q.pre_split != 1 << 30 || nw->perm) nw = NULL;
    }
    /* an RMS norm whose rows an int4 tile product takes next: that product
     * normalises them itself (and stores them for any later reader) */
    if (!c->norm_no_fuse && !c->stats && s->add == LLM_BUF_NONE && nx &&
        nx->op == LLM_OP_LINEAR && nx->in == s->out && nx->rows == s->rows &&
        nx->out != LLM_BUF_LOGITS && nx->slot != LLM_W_PROJ_OUT &&
        buf_width(c, s->out) == d->hidden && rows <= c->qgemv_max_m) {
        const struct cu_w *fw = dw(c, nx->slot, layer);
        const int gated = nx->gated, n_out = linear_rows(c, nx);
        const int kind = d->norm == LLM_NORM_RMS ? LLM_K_NORM_RMS : LLM_K_NORM_LAYER;
        /* or a 16-bit dense one-row product (the GEMV or the gated pair) */
        const int dense = c->norm_dense && !fw->q.fmt && rows == 1 && c->gemv_max_m >= 1 &&
                          (!gated || c->fused_gate) && s->in != s->out &&
                          llm_k_gemv_norm_ok(c->dt, kind, (int)d->hidden);
        if (n_out > 0 && !w->b && !fw->perm && !fw->a8 &&
            (dense || llm_k_qgemv_norm_ok(&fw->q, kind, gated, rows, n_out, (int)d->hidden))) {
            c->norm_pend = (struct llm_k_norm_in){kind, c->buf[s->in], w->w, NULL,
                                                  (float)d->norm_offset, (float)d->norm_eps,
                                                  c->buf[s->out]};
            c->norm_pend_dense = dense;
            return 0;
        }
    }
    CK(llm_k_norm_q(c->dt, d->norm == LLM_NORM_RMS ? LLM_K_NORM_RMS : LLM_K_NORM_LAYER,
                    c->buf[s->out], c->buf[s->in], s->add != LLM_BUF_NONE ? c->buf[s->add] : NULL,
                    w->w, w->b, (float)d->norm_offset, rows, (int)d->hidden, (float)d->norm_eps,
                    nw ? nw->q.act : LLM_K_A_NONE, nw ? c->q8_xq : NULL, nw ? c->q8_xs : NULL,
                    nw ? nw->q.act_scale : NULL, c->st));
    if (nw)
        c->q8_from = (struct cu_q8_src){c->buf[s->out], nw->q.act, rows, (int)d->hidden,
                                        nw->q.act_scale, NULL};
    return 0;
}

/* The activation after a product (gated: over its fc and gate halves).  Where
 * its output goes straight into a product with 8-bit activations under a
 * static scale (fp8; int8-sq with --act static, smoother and all), it also
 * writes that product's codes, so the product skips llm_k_quant_act, and
 * leaves the 16-bit rows unwritten (no one else reads them; calibration does,
 * so there they are kept). */
static int step_act(struct cu_be *c, const struct llm_step *s, int layer, int rows, int gated)
{
    const int I = (int)c->d->intermediate;
    const struct llm_step *nx = next_step(c, s);
    const struct cu_w *nw = NULL;
    if (!c->q8_no_fuse && nx && nx->op == LLM_OP_LINEAR && s->out == LLM_BUF_H &&
        nx->in == LLM_BUF_H && nx->rows == s->rows) { /* the down product */
        nw = dw(c, nx->slot, layer);
        if (!nw->q.act || !nw->q.act_static || nw->q.pre_split != 1 << 30 || nw->perm) nw = NULL;
    }
    CK(llm_k_act_q(c->dt, s->act, gated, c->buf[s->out], rows, I,
                   nw ? nw->q.act : LLM_K_A_NONE, !nw || c->stats || c->act_keep,
                   nw ? c->q8_xq : NULL, nw ? c->q8_xs : NULL,
                   nw ? nw->q.act_scale : NULL, nw ? nw->q.smoother : NULL, c->st));
    if (nw)
        c->q8_pend = (struct cu_q8_src){c->buf[s->out], nw->q.act, rows, buf_width(c, s->out),
                                        nw->q.act_scale, nw->q.smoother};
    return 0;
}

/* Calibration: the product's input as the CPU backend observes it, fc then
 * gate for a gated MLP (one stacked product here, two there). */
static int observe(struct cu_be *c, const struct llm_step *s, int layer, int rows, int ldx)
{
    int rc = cu_stats_linear(c, llm_weights_get(&c->stat_wb, s->slot, layer), c->buf[s->in], ldx,
                             rows);
    if (!rc && s->gated)
        rc = cu_stats_linear(c, llm_weights_get(&c->stat_wb, LLM_W_MLP_GATE, layer),
                             c->buf[s->in], ldx, rows);
    return rc;
}

static int step_linear(struct cu_be *c, const struct llm_step *s, int layer, int rows)
{
    const struct llm_model_desc *d = c->d;
    const struct cu_w *w = dw(c, s->slot, layer);
    int ldx = buf_width(c, s->in), ldy = buf_width(c, s->out);
    int64_t I = d->intermediate;
    int ed = d->embed_dim > 0 ? (int)d->embed_dim : (int)d->hidden;
    if (c->stats) {
        int rc = observe(c, s, layer, rows, s->out == LLM_BUF_LOGITS && ed != d->hidden ? ed : ldx);
        if (rc) return rc;
    }
    if (s->out == LLM_BUF_LOGITS) { /* fp32 logits from the lm_head (embed_dim wide input) */
        if (ed != d->hidden) ldx = ed;
        int nv = (int)cu_lm_rows(c); /* a tensor-parallel rank's slice: packed rows */
        if (nv != d->vocab_size) ldy = nv;
        const void *hin = c->buf[s->in];
        if (w->perm) { /* a quantized lm_head on permuted inputs (GPTQ act-order) */
            CK(llm_k_gather_cols(c->dt, c->perm_x, ldx, hin, ldx, w->perm, rows, ldx, c->st));
            hin = c->perm_x;
        }
        if (w->q.act) /* an lm_head with 8-bit activations (bias f32) */
            return qlinear_w8a8(c, rows, nv, ldx, hin, ldx, w, w->b, c->buf[s->out], ldy,
                                LLM_DTYPE_F32, 0);
        if (w->a8) /* an int4 lm_head with fp8 activations (bias f32) */
            return qlinear_w4a8(c, rows, nv, ldx, hin, ldx, w, w->b, c->buf[s->out], ldy,
                                LLM_DTYPE_F32, 0);
        if (w->q.fmt) /* a quantized lm_head (bias f32) */
            return qlinear_dense(c, rows, 0, nv, ldx, hin, ldx, w, w->b, c->buf[s->out], ldy,
                                 LLM_DTYPE_F32, 0);
        return cu_gemm_run(c->gemm, c->st, rows, nv, ldx, c->buf[s->in], ldx,
                           w->w, w->b, c->buf[s->out], ldy, LLM_DTYPE_F32, 0);
    }
    /* a weight on permuted inputs (GPTQ act-order): its input gathered in stored order */
    const void *xin = c->buf[s->in];
    if (w->perm) {
        const int kin = s->slot == LLM_W_PROJ_OUT || s->in != LLM_BUF_H ? ldx : (int)I;
        CK(llm_k_gather_cols(c->dt, c->perm_x, kin, xin, ldx, w->perm, rows, kin, c->st));
        xin = c->perm_x;
        ldx = kin;
    }
    if (c->norm_pend.res) { /* the norm before it, folded in (step_norm) */
        const struct llm_k_norm_in nrm = c->norm_pend;
        c->norm_pend.res = NULL;
        if (c->norm_pend_dense)
            CK(llm_k_gemv_norm(c->dt, s->gated, s->gated ? s->act : 0, c->buf[s->out], &nrm, w->w,
                               w->b, linear_rows(c, s), ldx, s->gated ? 0 : s->accumulate, c->st));
        else
            CK(llm_k_qgemv_norm(c->dt, s->gated, s->gated ? s->act : 0, c->buf[s->out], ldy, &nrm,
                                &w->q, w->b, rows, linear_rows(c, s), ldx,
                                s->gated ? 0 : s->accumulate, c->st));
        return !s->gated && s->act >= 0 ? step_act(c, s, layer, rows, 0) : 0;
    }
    if (s->slot == LLM_W_PROJ_OUT) /* hidden -> embed_dim rows, stored embed_dim apart */
        return wlinear(c, rows, ed, ldx, xin, ldx, w, c->buf[s->out], ed, 0);
    if (s->gated && w->q.fmt && !w->q.act && !w->a8 && rows <= c->qgemv_max_m &&
        llm_k_qgemv_ok(&w->q, rows, ldx, ldx)) {
        /* quantized fc and gate with the activation, up to 8 rows */
        CK(llm_k_qgemv_gated(c->dt, s->act, c->buf[s->out], ldy, xin, ldx, &w->q, w->b, rows,
                             (int)I, ldx, c->st));
        return 0;
    }
    if (s->gated) { /* fc and gate rows are one matrix: one product, then the activation */
        if (rows == 1 && c->gemv_max_m >= 1 && c->fused_gate && !w->q.fmt) {
            CK(llm_k_gemv_gated(c->dt, s->act, c->buf[s->out], xin, w->w, w->b, (int)I, ldx,
                                c->st));
            return 0;
        }
        int rc = wlinear(c, rows, (int)(2 * I), ldx, xin, ldx, w, c->buf[s->out], ldy, 0);
        return rc ? rc : step_act(c, s, layer, rows, 1);
    }
    int n_out = linear_rows(c, s);
    int k = s->in == LLM_BUF_H ? (int)I : ldx;
    int rc = wlinear(c, rows, n_out, k, xin, ldx, w, c->buf[s->out], ldy, s->accumulate);
    if (!rc && s->act >= 0) rc = step_act(c, s, layer, rows, 0);
    return rc;
}

/* The experts' products as one product each over their sorted rows
 * (gathered first), the row counts read back on the host: cuBLAS for
 * dense experts; a quantized expert (xq, upload_experts) through wlinear,
 * so every format the device runs for a 2-D weight runs for an expert too
 * (its GEMV for a few rows, the int4 GEMM on the codes or cuBLASLt past
 * that, 8-bit activations rounded with the expert's own scales). */
static int moe_loop(struct cu_be *c, const struct llm_step *st, const struct cu_w *xq,
                    const char *fc, const char *gate, const char *down, int S)
{
    const struct llm_model_desc *d = c->d;
    const int E = d->n_experts, H = (int)d->hidden, I = (int)d->intermediate;
    const size_t es = c->es;
    int rc = 0;
    CK(llm_k_gather(c->dt, c->moe_x, c->buf[st->in], c->moe_rows, S, H, c->st));
    CK(cudaMemcpyAsync(c->h_moe_off, c->moe_off, sizeof(int32_t) * (size_t)(E + 1),
                       cudaMemcpyDeviceToHost, c->st));
    CK(cudaStreamSynchronize(c->st));
    for (int e = 0; e < E && !rc; e++) {
        int o = c->h_moe_off[e], m = c->h_moe_off[e + 1] - o;
        if (m <= 0) continue;
        const char *x = (const char *)c->moe_x + (size_t)o * H * es;
        char *h = (char *)c->moe_h + (size_t)o * 2 * I * es;
        if (xq && xq[2 * e].q.fmt) { /* fc and gate rows in one product */
            rc = wlinear(c, m, 2 * I, H, x, H, &xq[2 * e], h, 2 * I, 0);
            continue;
        }
        rc = linear(c, m, I, H, x, H, fc + (size_t)e * I * H * es, NULL, h, 2 * I, 0);
        if (!rc)
            rc = linear(c, m, I, H, x, H, gate + (size_t)e * I * H * es, NULL, h + (size_t)I * es,
                        2 * I, 0);
    }
    if (rc) return rc;
    CK(llm_k_act(c->dt, d->act, 1, c->moe_h, S, I, c->st)); /* gated experts only */
    for (int e = 0; e < E && !rc; e++) {
        int o = c->h_moe_off[e], m = c->h_moe_off[e + 1] - o;
        if (m <= 0) continue;
        const char *h = (const char *)c->moe_h + (size_t)o * 2 * I * es;
        char *y = (char *)c->moe_y + (size_t)o * H * es;
        if (xq && xq[2 * e + 1].q.fmt)
            rc = wlinear(c, m, H, I, h, 2 * I, &xq[2 * e + 1], y, H, 0);
        else
            rc = linear(c, m, H, I, h, 2 * I, down + (size_t)e * H * I * es, NULL, y, H, 0);
    }
    return rc;
}

/* Mixture of experts: route, sort the token slots by expert, then the
 * experts' products over all their rows (fc and gate, the activation over
 * every row at once, then down), and combine (moe.cu says how).  In 16-bit
 * compute, with many experts or few rows an expert (moe_grouped), each
 * product is one grouped launch over every expert's row tiles (the gather
 * of the tokens happens in its tile loads) and nothing comes back to the
 * host, so the step may be captured in a graph.  Otherwise (a few large
 * experts), in f32, or with LLM_CUDA_MOE_GROUPED=0, each expert is one
 * cuBLAS product, which needs the experts' row counts on the host once per
 * layer: such a step is never captured.  A step of at most LLM_K_MOE_SMALL
 * slots (decode of a few tokens) instead routes in one launch and runs two
 * GEMV kernels that read each slot's expert on the device, so only the
 * chosen experts' weights are read. */
static int step_moe(struct cu_be *c, const struct llm_step *st, int layer, int rows)
{
    const struct llm_model_desc *d = c->d;
    const int E = d->n_experts, K = d->n_experts_per_tok, H = (int)d->hidden;
    const int I = (int)d->intermediate, S = rows * K;
    const char *fc = c->lw[layer][LLM_W_MLP_FC].w, *down = c->lw[layer][LLM_W_MLP_OUT].w;
    const char *gate = fc ? fc + (size_t)E * I * H * c->es : NULL; /* uploaded after every fc */
    const struct cu_w *xq = c->xw[layer]; /* quantized experts (upload_experts) */
    /* quantized experts of a large step, many of them: dequantized (one launch a
     * projection) into 16-bit weights for the grouped kernel */
    const int deq = xq && c->moe_deq && c->xq_tab[layer] &&
                    (c->moeq_dense == 1 || (E > CU_MOE_LOOP_EXPERTS && S >= E));
    int rc = 0;
    if (rows <= LLM_K_MOE_SMALL) { /* the router's product and the routing in one launch */
        CK(llm_k_moe_route_small(c->dt, c->buf[st->in], c->lw[layer][LLM_W_ROUTER].w, rows, H, E,
                                 K, d->moe_norm_topk, c->moe_logits, c->moe_done, c->moe_chosen,
                                 c->moe_w, c->st));
    } else {
        rc = cu_gemm_run(c->gemm, c->st, rows, E, H, c->buf[st->in], H,
                         c->lw[layer][LLM_W_ROUTER].w, NULL, c->moe_logits, E, LLM_DTYPE_F32, 0);
        if (rc) return rc;
        CK(llm_k_moe_route(c->moe_logits, rows, E, K, d->moe_norm_topk, c->moe_chosen, c->moe_w,
                           c->st));
    }
    if (S <= LLM_K_MOE_SMALL && !c->moe_no_small && !xq) {
        CK(llm_k_moe_small(c->dt, d->act, c->buf[st->out], c->buf[st->in], c->moe_h, fc, gate,
                           down, c->moe_chosen, c->moe_w, rows, K, H, I, st->accumulate, c->st));
        return 0;
    }
    const int tm = llm_k_moe_gemm_tile_m(S, E), grouped = deq || (!xq && moe_grouped(c, S));
    CK(llm_k_moe_sort(c->moe_chosen, rows, E, K, tm, c->moe_off, c->moe_rows, c->moe_where,
                      grouped ? c->moe_tiles : NULL, c->st));
    if (deq) { /* fc + gate rows of every expert, then down, through one scratch */
        const struct llm_k_qw *tab = c->xq_tab[layer];
        CK(llm_k_dequant_experts(c->dt, c->moe_deq, tab, &xq[0].q, E, 2 * I, H, c->st));
        CK(llm_k_moe_gemm(c->dt, c->moe_h, 2 * I, c->buf[st->in], H, c->moe_rows, c->moe_deq, NULL,
                          2 * I, c->moe_off, c->moe_tiles, tm, S, E, 2 * I, H, c->st));
        CK(llm_k_act(c->dt, d->act, 1, c->moe_h, S, I, c->st));
        CK(llm_k_dequant_experts(c->dt, c->moe_deq, tab + E, &xq[1].q, E, H, I, c->st));
        CK(llm_k_moe_gemm(c->dt, c->moe_y, H, c->moe_h, 2 * I, NULL, c->moe_deq, NULL, H,
                          c->moe_off, c->moe_tiles, tm, S, E, H, I, c->st));
    } else if (!grouped) {
        if ((rc = moe_loop(c, st, xq, fc, gate, down, S))) return rc;
    } else {
        CK(llm_k_moe_gemm(c->dt, c->moe_h, 2 * I, c->buf[st->in], H, c->moe_rows, fc, gate, I,
                          c->moe_off, c->moe_tiles, tm, S, E, 2 * I, H, c->st));
        CK(llm_k_act(c->dt, d->act, 1, c->moe_h, S, I, c->st)); /* gated experts only */
        CK(llm_k_moe_gemm(c->dt, c->moe_y, H, c->moe_h, 2 * I, NULL, down, NULL, H, c->moe_off,
                          c->moe_tiles, tm, S, E, H, I, c->st));
    }
    CK(llm_k_moe_combine(c->dt, c->buf[st->out], c->moe_y, c->moe_chosen, c->moe_w,
                         c->moe_where, rows, K, H, st->accumulate, c->st));
    return 0;
}

/* Attention over the step's rows.  Where its output goes straight into the o
 * product with 8-bit activations under a static scale (as for step_act), the
 * attention kernels write that product's codes too, and not the 16-bit rows
 * unless calibration (or LLM_CUDA_ACT_KEEP=1) wants them. */
static int step_attn(struct cu_be *c, const struct cu_step *s, const struct llm_step *st,
                     int layer, int rows)
{
    const struct llm_model_desc *d = c->d;
    const struct llm_step *nx = next_step(c, st);
    const struct cu_w *nw = NULL;
    if (!c->q8_no_fuse && !c->attn_no_q8 && nx && nx->op == LLM_OP_LINEAR &&
        nx->in == LLM_BUF_ATT && st->out == LLM_BUF_ATT && nx->rows == st->rows) {
        /* the o product */
        nw = dw(c, nx->slot, layer);
        if (!nw->q.act || !nw->q.act_static || nw->q.pre_split != 1 << 30 || nw->perm) nw = NULL;
    }
    struct llm_k_attn a = {
        .dt = c->dt,
        .q = c->buf[LLM_BUF_QKV],
        .q_stride = c->qkv_w,
        .o = c->buf[LLM_BUF_ATT],
        .kv = (char *)c->kv + (size_t)layer * c->layer_elems * c->kv_es,
        .blk_stride = c->blk_elems,
        .block_size = c->pub.block_size,
        .block_table = s->bt,
        .bt_stride = s->bt_stride,
        .pos = s->pos,
        .n_heads = d->n_heads,
        .n_kv_heads = d->n_kv_heads,
        .head_dim = d->head_dim,
        .scale = (float)llm_desc_attn_scale(d),
        .softcap = (float)d->attn_softcap,
        .window = d->sliding_window > 0 && d->layer_window[layer] ? d->sliding_window : 0,
        .alibi = c->alibi,
        .kv_q = c->kv_q,
        .k_scale = c->kv_q ? c->kv_scale[2 * layer] : 1.f,
        .v_scale = c->kv_q ? c->kv_scale[2 * layer + 1] : 1.f,
        .oq = nw ? nw->q.act : LLM_K_A_NONE,
        .oq_keep = !nw || c->stats || c->act_keep,
        .oq_codes = nw ? c->q8_xq : NULL,
        .oq_xs = nw ? c->q8_xs : NULL,
        .oq_scale = nw ? nw->q.act_scale : NULL,
        .oq_sm = nw ? nw->q.smoother : NULL,
        .row_keys = s->row_keys,
    };
    if (s->n_tiles) CK(llm_k_attn_prefill(&a, s->tiles, s->n_tiles, c->st));
    const int listed = !s->rows_ident || c->attn_late;
    if (s->n_rows)
        CK(llm_k_attn_rows(&a, listed ? s->rows : NULL, listed ? s->seqs : NULL, s->n_rows,
                           s->split_len, s->max_splits, c->attn_ws, c->attn_cnt, c->st));
    if (nw)
        c->q8_from = (struct cu_q8_src){c->buf[LLM_BUF_ATT], nw->q.act, rows,
                                        buf_width(c, LLM_BUF_ATT), nw->q.act_scale,
                                        nw->q.smoother};
    return 0;
}

static int cu_step_run(void *ctx, const struct llm_step *st, int layer)
{
    struct cu_be *c = ctx;
    const struct cu_step *s = c->cur;
    const struct llm_model_desc *d = c->d;
    int rows = st->rows == LLM_ROWS_OUT ? s->n_out : s->n;
    /* only the product right after the norm or activation that rounded for it */
    if (st->op != LLM_OP_LINEAR) c->q8_from.x = NULL, c->norm_pend.res = NULL;
    if (rows == 0) return 0;
    switch (st->op) {
    case LLM_OP_EMBED: {
        float esc = d->embed_scale > 0.0 ? (float)d->embed_scale : 1.0f;
        const char *pt = c->gw[LLM_W_POS_EMBED].w; /* OPT: row of position p is p + offset */
        if (pt) pt += (size_t)d->pos_offset * (size_t)d->hidden * c->es;
        int ed = (int)d->embed_dim;
        if (ed <= 0 || ed == d->hidden) {
            CK(llm_k_embed(c->dt, c->buf[LLM_BUF_X], c->gw[LLM_W_EMBED].w, s->tokens, pt, s->pos,
                           rows, (int)d->hidden, esc, c->st));
            return 0;
        }
        /* OPT-350m: embed_dim-wide embeddings, project_in, then the positions added */
        CK(llm_k_embed(c->dt, c->buf[LLM_BUF_AO], c->gw[LLM_W_EMBED].w, s->tokens, NULL, NULL,
                       rows, ed, esc, c->st));
        if (c->stats) {
            int rc = cu_stats_linear(c, llm_weights_get(&c->stat_wb, LLM_W_PROJ_IN, -1),
                                     c->buf[LLM_BUF_AO], ed, rows);
            if (rc) return rc;
        }
        const struct cu_w *pw = &c->gw[LLM_W_PROJ_IN];
        const void *pin = c->buf[LLM_BUF_AO];
        if (pw->perm) { /* on permuted inputs (GPTQ act-order) */
            CK(llm_k_gather_cols(c->dt, c->perm_x, ed, pin, ed, pw->perm, rows, ed, c->st));
            pin = c->perm_x;
        }
        int rc =
            wlinear(c, rows, (int)d->hidden, ed, pin, ed, pw, c->buf[LLM_BUF_X], (int)d->hidden, 0);
        if (rc || !pt) return rc;
        CK(llm_k_embed(c->dt, c->buf[LLM_BUF_AO], pt, s->pos, NULL, NULL, rows, (int)d->hidden,
                       1.0f, c->st));
        CK(llm_k_add(c->dt, c->buf[LLM_BUF_X], c->buf[LLM_BUF_AO], (int64_t)rows * d->hidden,
                     c->st));
        return 0;
    }
    case LLM_OP_MOE: return step_moe(c, st, layer, rows);
    case LLM_OP_QK_NORM:
        if (d->qk_norm == LLM_QK_NORM_RMS_ALL) { /* OLMo 2: every head of the row at once */
            CK(llm_k_qk_norm_all(c->dt, c->buf[LLM_BUF_QKV], c->qkv_w, rows,
                                 d->n_heads * d->head_dim, d->n_kv_heads * d->head_dim,
                                 c->lw[layer][LLM_W_Q_NORM].w, c->lw[layer][LLM_W_K_NORM].w,
                                 (float)d->norm_offset, (float)d->norm_eps, c->st));
            return 0;
        }
        CK(llm_k_qk_norm(c->dt, d->qk_norm == LLM_QK_NORM_RMS ? LLM_K_NORM_RMS : LLM_K_NORM_LAYER,
                         c->buf[LLM_BUF_QKV], c->qkv_w, rows, d->n_heads, d->n_kv_heads,
                         d->head_dim, c->lw[layer][LLM_W_Q_NORM].w, c->lw[layer][LLM_W_K_NORM].w,
                         d->qk_norm == LLM_QK_NORM_LAYER, (float)d->norm_offset,
                         (float)d->norm_eps, c->st));
        return 0;
    case LLM_OP_CLIP:
        CK(llm_k_clamp(c->dt, c->buf[st->out], (int64_t)rows * buf_width(c, st->out),
                       (float)d->clip_qkv, c->st));
        return 0;
    case LLM_OP_SCALE:  /* Cohere's logit_scale, Granite's 1 / logits_scaling */
    case LLM_OP_RSCALE: /* Granite's residual_multiplier, before the add */
        CK(llm_k_scale(st->out == LLM_BUF_LOGITS ? LLM_DTYPE_F32 : c->dt, c->buf[st->out],
                       (int64_t)rows * buf_width(c, st->out),
                       (float)(st->op == LLM_OP_SCALE ? d->logit_scale : d->residual_scale),
                       c->st));
        return 0;
    case LLM_OP_SOFTCAP:
        CK(llm_k_softcap_f32(c->buf[st->out], (int64_t)rows * d->vocab_size,
                             (float)d->final_softcap, c->st));
        return 0;
    case LLM_OP_NORM: return step_norm(c, st, layer, rows);
    case LLM_OP_LINEAR: {
        int rc = step_linear(c, st, layer, rows);
        c->q8_from = c->q8_pend; /* what this step's activation rounded, if anything */
        c->q8_pend.x = NULL;
        return rc;
    }
    case LLM_OP_ROPE_KV: {
        /* a layer without rotary (SmolLM3, Cohere 2) only writes the cache; a local
         * layer (Gemma 3) reads its own table, a row a position */
        const int local = d->layer_local_rope[layer] && c->rope_local_tab;
        const float *tab = d->pos != LLM_POS_ROPE || d->layer_no_rope[layer] ? NULL
                           : local                                           ? c->rope_local_tab
                                                                             : c->rope_tab;
        CK(llm_k_rope_kv(c->dt, c->buf[LLM_BUF_QKV], tab, local ? s->pos : s->rope_row, s->slot,
                         (char *)c->kv + (size_t)layer * c->layer_elems * c->kv_es, c->blk_elems,
                         c->pub.block_size, rows, d->n_heads, d->n_kv_heads, d->head_dim,
                         c->rope.rot_dims, c->rope.neox, c->kv_q,
                         c->kv_q ? c->kv_scale[2 * layer] : 1.f,
                         c->kv_q ? c->kv_scale[2 * layer + 1] : 1.f, c->st));
        return c->stats ? cu_stats_kv(c, layer, rows) : 0;
    }
    case LLM_OP_ATTN: return step_attn(c, s, st, layer, rows);
    case LLM_OP_ADD:
        CK(llm_k_add(c->dt, c->buf[st->out], c->buf[st->in],
                     (int64_t)rows * buf_width(c, st->out), c->st));
        return 0;
    case LLM_OP_GATHER:
        CK(llm_k_gather(c->dt, c->buf[st->out], c->buf[st->in], s->out_rows, rows,
                        (int)d->hidden, c->st));
        return 0;
    case LLM_OP_ALLREDUCE:
    case LLM_OP_ALLGATHER:
    case LLM_OP_SEND:
    case LLM_OP_RECV: return cu_comm_step(c, st, rows);
    default:
        return llm_err_set(LLM_EUNSUPPORTED, "cuda backend: no %s step", llm_op_name(st->op));
    }
}

/* Everything a step puts on the stream, from the metadata copy to the logits. */
static int enqueue(struct cu_be *c, const struct cu_step *s)
{
    CK(cudaMemcpyAsync(c->d_meta, c->h_meta, s->meta_ints * sizeof(int32_t),
                       cudaMemcpyHostToDevice, c->st));
    if (s->n_dyn)
        CK(cudaMemcpyAsync(c->rope_tab + (size_t)c->rope_dyn0 * (size_t)c->rope.rot_dims, c->h_dyn,
                           (size_t)s->n_dyn * (size_t)c->rope.rot_dims * sizeof(float),
                           cudaMemcpyHostToDevice, c->st));
    c->cur = s;
    c->stat_slot_used = 0; /* the previous step has finished (pack_meta waited on meta_done) */
    const struct llm_exec x = {cu_step_run, c};
    int rc = llm_graph_run(&c->g, &x);
    c->cur = NULL;
    return rc;
}

static int run_graph(struct cu_be *c, const struct llm_batch *b)
{
    int bi = bucket_for(c, b->n_tokens), B = c->buckets[bi];
    int rc = cu_grow_out(c, B);
    if (rc) return rc;
    struct cu_step s = {0};
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
        if (e != cudaSuccess)
            return cu_fail(CU_LIB_RT, e, "cudaStreamEndCapture", __FILE__, __LINE__);
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

int cu_forward(struct llm_backend *be, const struct llm_batch *b)
{
    struct cu_be *c = cu_of(be);
    c->n_out = -1;
    int rc = check_batch(c, b);
    if (rc) return rc;
    /* the window closes as the step after it starts, so the last step's sampling is in it */
    if (c->prof_first >= 0 && c->n_forward == c->prof_first + c->prof_count) cudaProfilerStop();
    if (c->prof_first >= 0 && c->n_forward == c->prof_first) cudaProfilerStart();
    c->t_state = 0;
    CK(cudaEventRecord(c->t_start, c->st));
    c->t_state = 1;
    if (graph_eligible(c, b)) {
        if ((rc = run_graph(c, b))) return rc;
    } else {
        if ((rc = cu_grow_out(c, b->n_out))) return rc;
        struct cu_step s = {0};
        if ((rc = pack_meta(c, b, &s))) return rc;
        if ((rc = enqueue(c, &s))) return rc;
        CK(cudaEventRecord(c->meta_done, c->st));
    }
    c->n_out = b->n_out;
    c->n_forward++;
    return 0;
}

int cu_get_logits(struct llm_backend *be, float *dst)
{
    struct cu_be *c = cu_of(be);
    if (c->n_out < 0) return llm_err_set(LLM_EINVAL, "get_logits: no successful forward step");
    size_t bytes = sizeof(float) * (size_t)c->n_out * (size_t)c->d->vocab_size;
    if (bytes)
        CK(cudaMemcpyAsync(dst, c->buf[LLM_BUF_LOGITS], bytes, cudaMemcpyDeviceToHost, c->st));
    if (c->t_state == 1) {
        CK(cudaEventRecord(c->t_end, c->st));
        c->t_state = 2;
    }
    CK(cudaStreamSynchronize(c->st));
    return 0;
}
