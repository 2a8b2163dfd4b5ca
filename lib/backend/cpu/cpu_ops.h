/* cpu_ops.h - the reference ops: what every model op computes, in plain C.
 *
 * These functions are the numerical definition of the model.  The CPU
 * backend is built from them, and every GPU kernel is tested against them
 * (tests/gpu), so each is one clean function with its contract stated here:
 * shapes, layouts, rounding.  Activations are fp32 throughout; weights are
 * read in their stored dtype (f32, f16, bf16; fp8/int8 later) and widened
 * to fp32 on the fly, with fp32 accumulation.
 *
 * Design choices:
 * - Hugging Face transformers (fp32 eager) is the oracle, so where HF rounds
 *   to fp32 these ops round at the same places: rotary inverse frequencies
 *   and angles are computed in fp32 exactly as HF's modeling_rope_utils does,
 *   cos/sin are multiplied by the magnitude scale in fp32, q*cos + rot(q)*sin
 *   is evaluated without fused multiply-add.  Reductions that HF leaves to
 *   its BLAS (dot products, norms' mean of squares) are done in a fixed order
 *   in fp32 or double; they agree with HF to fp32 rounding, not bitwise.
 * - Every row of every op is computed with the same arithmetic whatever the
 *   number of rows or threads, so batching, chunked prefill and the order of
 *   sequences in a batch never change a result bit.
 * - Ops thread internally with OpenMP (the team size is the caller's
 *   omp_set_num_threads / OMP_NUM_THREADS); none keeps state between calls.
 * - Functions that cannot fail return void; the others return 0 or a
 *   negative enum llm_err with the detail set.
 *
 * Shapes are written outermost first: x [n][dim] is n rows of dim floats,
 * row-major.  "stride" arguments are the distance in elements between
 * consecutive rows.
 */
#ifndef LLM_CPU_OPS_H
#define LLM_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "llm/backend.h"
#include "llm/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- element access ------------------------------------------------------ */

/* 1 for a dtype the ops can read weights (or KV) in: f32, f16, bf16. */
int llm_cpu_dtype_ok(int dt);

/* dst[i] = (float)src[off + i] for i < n; src of dtype dt (one of the above).
 * Exact (every f16/bf16 value is an fp32 value). */
void llm_cpu_to_f32(float *dst, const void *src, int dt, int64_t off, int64_t n);

/* dst[off + i] = round_to_nearest_even(src[i]) in dtype dt (f32, f16, bf16;
 * NaN stays NaN, overflow becomes Inf). */
void llm_cpu_from_f32(void *dst, int dt, int64_t off, const float *src, int64_t n);

/* ---- embedding ----------------------------------------------------------- */

/* out[i][:] = table[tokens[i]][:] * scale (scale 1 = plain gather, done
 * without a multiply).  table [vocab][hidden] of dtype dt; out [n][hidden].
 * LLM_ERANGE naming the row when a token id is outside [0, vocab). */
int llm_cpu_embed(float *out, const int32_t *tokens, int n, const void *table, int dt,
                  int64_t vocab, int64_t hidden, float scale);

/* out[i][:] += table[pos[i]][:] (learned absolute positions, GPT-2 style).
 * table [max_pos][hidden]; LLM_ERANGE when a position is outside [0, max_pos). */
int llm_cpu_add_rows(float *out, const int32_t *pos, int n, const void *table, int dt,
                     int64_t max_pos, int64_t hidden);

/* ---- norms --------------------------------------------------------------- */

/* RMSNorm of n rows of dim, HF LlamaRMSNorm semantics:
 *   r   = residual ? (residual[i] += x[i]) : x[i]      (fp32 add, residual updated)
 *   out = w * (r * rsqrt(mean(r^2) + eps))            (mean in double, rsqrt rounded
 *                                                      to fp32, then two fp32 products)
 * x, out, residual: [n][dim] (out may alias x); w [dim] of dtype wdt, or NULL
 * for no weight.  With residual == NULL, x is normalised as is. */
void llm_cpu_rmsnorm(float *out, const float *x, float *residual, const void *w, int wdt, int n,
                     int64_t dim, float eps);
/* The same with the weight read as (offset + w): Gemma's norms (offset 1,
 * HF computes 1 + w in fp32 and multiplies). */
void llm_cpu_rmsnorm_off(float *out, const float *x, float *residual, const void *w, int wdt,
                         int n, int64_t dim, float eps, float offset);

/* LayerNorm, torch semantics: r as above, then
 *   out = ((r - mean) * rstd) * w + b,  rstd = 1/sqrt(var + eps) (biased var)
 * mean and var in double, rounded to fp32.  w, b of dtype wdt / bdt, either
 * may be NULL (no scale / no shift). */
void llm_cpu_layernorm(float *out, const float *x, float *residual, const void *w, int wdt,
                       const void *b, int bdt, int n, int64_t dim, float eps);
/* The same with the scale w + off (Nemotron's LayerNorm1P: off 1). */
void llm_cpu_layernorm_off(float *out, const float *x, float *residual, const void *w, int wdt,
                           const void *b, int bdt, int n, int64_t dim, float eps, float off);

/* ---- linear -------------------------------------------------------------- */

/* y[n][out] = x[n][in] . W^T (+ bias):  y[t][o] = sum_k x[t][k] * W[o][k] + bias[o].
 * W [out][in] of dtype wdt (row-major, HF Linear layout); bias [out] of dtype
 * bdt or NULL.  fp32 accumulation in 16 interleaved partial sums over k,
 * summed pairwise at the end; the bias is added last.  Each y[t][o] is
 * computed with the same arithmetic whatever n is.  y must not alias x.
 * Cache-blocked (16 rows of W widened to fp32 once, reused for every token
 * of the batch) and threaded over rows of W.  LLM_ENOMEM when the per-thread
 * widening buffer (16 x in floats) cannot be allocated. */
int llm_cpu_linear(float *y, const float *x, int n, int64_t in, const void *w, int wdt, int64_t out,
                   const void *bias, int bdt);

/* y[n][out] = x . W^T for a weight of any format (llm/weight.h): dense goes
 * to llm_cpu_linear; fp8, int8 and int4 are dequantized as formats/artifact.md
 * defines them (cpu_quant.c), activations rounded first as the weight's
 * act says (fp8 or int8, static or per token). */
struct llm_weight;
int llm_cpu_linear_w(float *y, const float *x, int n, const struct llm_weight *w);
/* x[n][in] rounded to e4m3 under scale s (s <= 0: each row's max|x| / 448)
 * and back to fp32. */
void llm_cpu_quant_act_fp8(float *x, int n, int64_t in, float s);
/* The same to int8: s <= 0: each row's max|x| / 127; clamped to [-127, 127]. */
void llm_cpu_quant_act_int8(float *x, int n, int64_t in, float s);

/* Threads for the ops when none are asked for: the cores this process may
 * use, less those other processes are running on (at least 1). */
int llm_cpu_threads_for(int cores, int running_others);

/* The instruction set llm_cpu_linear runs with: "avx512", "avx2" or
 * "generic" (LLM_CPU_ISA in the environment forces one). */
const char *llm_cpu_isa(void);

/* ---- activations --------------------------------------------------------- */

/* One activation of enum llm_act, evaluated in double and rounded:
 * SILU x/(1+e^-x), GELU 0.5x(1+erf(x/sqrt2)), GELU_TANH
 * 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3))), RELU max(x,0). */
float llm_cpu_act1(float x, int act);
/* x[i] = act(x[i]) for i < n. */
void llm_cpu_act(float *x, int64_t n, int act);
/* out[i] = act(fc[i]) * gate[i]  (SwiGLU / GeGLU; the product in fp32, HF
 * order act_fn(gate_proj(x)) * up_proj(x)); out may alias fc or gate. */
void llm_cpu_gated(float *out, const float *fc, const float *gate, int64_t n, int act);
/* GPT-OSS's gated activation (LLM_ACT_SWIGLU_OAI): with g = min(fc, limit)
 * and u = clamp(gate, -limit, limit), out = g * sigmoid(alpha * g) * (u + 1). */
void llm_cpu_gated_oai(float *out, const float *fc, const float *gate, int64_t n, double alpha,
                       double limit);
/* y[i] += x[i] (fp32). */
void llm_cpu_add(float *y, const float *x, int64_t n);
/* Calibration statistics of rows x [rows][ldx] (in values a row), added
 * into the running ones, row by row in order: chan[i] = max(chan[i],
 * |x[t][i]|), chan_sum[i] += |x[t][i]| in double, *amax the largest |x|
 * (NaN never counts as a maximum); then each row t with slot[t] >= 0
 * (slot may be NULL) copied to sample + slot[t] * in, in row order.  The
 * reference of llm_k_col_stats. */
void llm_cpu_col_stats(const float *x, int rows, int64_t ldx, int64_t in, const int32_t *slot,
                       float *chan, double *chan_sum, float *amax, float *sample);
/* The largest |x| of rows x [rows][stride] (width values a row) max-accumulated
 * into *amax (NaN never counts). */
void llm_cpu_rows_amax(const float *x, int rows, int64_t stride, int64_t width, float *amax);
/* x clamped to [-lim, lim] (MPT's clip_qkv). */
void llm_cpu_clamp(float *x, int64_t n, float lim);
/* x = cap * tanh(x / cap), in fp32 in HF's order (Gemma 2's final soft cap). */
void llm_cpu_softcap(float *x, int64_t n, float cap);

/* ---- rotary position embedding ------------------------------------------- */

/* Inverse frequencies and cos/sin magnitude for one sequence, HF
 * modeling_rope_utils semantics (transformers 5.x), every scaling type:
 *   none      inv[i] = 1 / theta^(2i/d)                (d = rot_dims, fp32)
 *   linear    inv[i] /= factor
 *   dynamic   for seq_len > max_pos (HF uses max_position_embeddings here,
 *             not the original length): theta' = theta *
 *             (factor*seq_len/max_pos - (factor-1))^(d/(d-2)) in fp32, as HF
 *             evaluates it with a tensor seq_len; else as none
 *   yarn      ramp between interpolated (inv/factor) and extrapolated
 *             frequencies over the correction range of beta_fast/beta_slow
 *             at L = orig_max_pos (floor/ceil truncation); magnitude
 *             attn_factor, or 0.1*ln(factor)+1 (mscale/mscale_all_dim ratio
 *             when both set); factor 0 = max_pos / L
 *   llama3    low/high frequency factors with smooth interpolation between
 *             wavelengths L/low_freq_factor and L/high_freq_factor
 *   longrope  inv[i] = 1 / (ext[i] * theta^(2i/d)), ext = long_factor when
 *             seq_len > L else short_factor; magnitude attn_factor, or
 *             sqrt(1 + ln(factor)/ln(L)) when factor > 1; factor 0 =
 *             max_pos / L
 * L = orig_max_pos, or max_pos when 0.
 * seq_len: tokens in the sequence's KV after the current step (HF: max
 * position id + 1 of the forward call).  inv_freq: [rot_dims/2].  *mscale:
 * the magnitude that multiplies cos and sin (1 for none/linear/dynamic/llama3).
 * LLM_EINVAL naming the field when the parameters are unusable (rot_dims
 * odd or 0, theta <= 0, longrope factors missing or the wrong length). */
int llm_cpu_rope_freqs(const struct llm_rope *r, int64_t max_pos, int64_t seq_len, float *inv_freq,
                       float *mscale);

/* cos/sin for one position: a = (float)pos * inv_freq[i] (fp32 product);
 * cos[i] = fp32(cos(a)) * mscale, sin[i] = fp32(sin(a)) * mscale, i < half. */
void llm_cpu_rope_cos_sin(const float *inv_freq, int half, float mscale, int32_t pos, float *cos,
                          float *sin);

/* Rotate one token's heads in place.  x [n_heads][head_dim] (heads at
 * stride head_dim); the first rot_dims of each head are rotated, the rest
 * pass through.  neox = 1 (rotate halves, HF rotate_half):
 *   x'[i]      = x[i]*c[i] - x[i+h]*s[i],  x'[i+h] = x[i+h]*c[i] + x[i]*s[i], h = rot/2
 * neox = 0 (interleaved pairs, GPT-J rotate_every_two):
 *   x'[2i]     = x[2i]*c[i] - x[2i+1]*s[i], x'[2i+1] = x[2i+1]*c[i] + x[2i]*s[i]
 * Each product and the sum rounded to fp32 (no fused multiply-add). */
void llm_cpu_rope_apply(float *x, int n_heads, int head_dim, int rot_dims, int neox,
                        const float *cos, const float *sin);

/* Rotate q and k of every token of a ragged batch.  qkv [n_tokens][stride]
 * with q heads at offset 0 and k heads at offset n_heads*head_dim (the fused
 * qkv layout); token t of sequence s uses position b->pos[t] and the
 * frequencies for seq_len = b->seq_len[s].  LLM_EINVAL as llm_cpu_rope_freqs. */
int llm_cpu_rope_batch(float *qkv, int64_t stride, int n_heads, int n_kv_heads, int head_dim,
                       const struct llm_rope *r, int64_t max_pos, const struct llm_batch *b);

/* ---- paged KV ------------------------------------------------------------ */

/* One layer's KV pool.  k and v each [n_blocks][n_kv_heads][block_size][head_dim]
 * of dtype (f32, f16 or bf16): token t of a sequence lives in block
 * block_table[t / block_size], slot t % block_size (backend.h contract). */
struct llm_cpu_kv {
    void *k;
    void *v;
    int dtype;
    int n_blocks;
    int block_size;
    int n_kv_heads;
    int head_dim;
};

/* Bytes of one block of one layer's K (or V). */
uint64_t llm_cpu_kv_block_bytes(const struct llm_cpu_kv *kv);

/* Write K and V of every token of b into its slot: token row t of sequence
 * s at position p = b->pos[t] goes to block b->block_table[s*bt_stride + p/bs],
 * slot p % bs.  k, v: [n_tokens][stride], kv head h at offset h*head_dim.
 * Values are rounded to kv->dtype.  The caller has validated the batch. */
void llm_cpu_kv_append(const struct llm_cpu_kv *kv, const float *k, const float *v, int64_t stride,
                       const struct llm_batch *b);

/* Attention parameters shared by every head of a layer. */
struct llm_cpu_attn {
    int n_heads;        /* query heads; q head h reads kv head h / (n_heads / n_kv_heads) */
    float scale;        /* softmax scale (1/sqrt(head_dim) usually) */
    int window;         /* 0 = full causal; else a query at position p sees keys j > p - window */
    float softcap;      /* 0 = none; else s = softcap * tanh(s / softcap) after scaling */
    const float *alibi; /* [n_heads] slopes or NULL: s += slope * (j - p) after softcap */
    const float *sinks; /* [n_heads] logits or NULL: e^sink joins each softmax's denominator */
    float qscale_beta;  /* 0 = none; else a query at p has its scores times
                           1 + beta ln(1 + floor(p / qscale_len)) (Ministral 3) */
    int qscale_len;
};

/* Causal attention of every token of b over its sequence's paged KV (the
 * step's own K/V must already be appended).  For token t of sequence s at
 * position p and head h, keys j in [max(0, p-window+1), p]:
 *   s_j = scale * (q_t,h . k_j)  (fp32 dot, 16 partial sums)
 *   w_j = exp(s_j - max) / sum   (expf, sum in double)
 *   out[t][h*head_dim + d] = sum_j w_j * v_j[d]  (fp32)
 * q: [n_tokens][q_stride], head h at offset h*head_dim; out: [n_tokens][out_stride].
 * LLM_ENOMEM when scratch cannot be allocated. */
int llm_cpu_attention(float *out, int64_t out_stride, const float *q, int64_t q_stride,
                      const struct llm_cpu_kv *kv, const struct llm_batch *b,
                      const struct llm_cpu_attn *a);


#ifdef __cplusplus
}
#endif
#endif
