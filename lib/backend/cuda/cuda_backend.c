/* cuda_backend.c - the CUDA backend: creation, weights, KV pool, block copies.
 *
 * Design: everything lives on the device from creation on.  The weights
 * come from the shared binding (llm/weight.h) and are uploaded once in the
 * compute dtype (f16, bf16, or f32 for the exactness tests), converted on
 * the device as they arrive; a gated MLP's fc and gate are stacked into one
 * [2 inter][hidden] matrix so a single product computes both and the fused
 * activation kernel combines them in place.  The activation workspace is
 * allocated for max_batch_tokens at creation, then the KV pool takes
 * kv_bytes or kv_fraction of the memory left.  KV pool layout:
 * [n_blocks][n_layers][K, V][n_kv_heads][block_size][head_dim], so one
 * block of every layer is contiguous (copy_blocks is one copy per block)
 * and the kernels address a layer by offset plus a block stride.  A
 * quantized KV cache (the artifact's kv_cache_quant_algo) holds one byte
 * per element, e4m3 or int8 codes under each layer's K and V scales.
 *
 * The forward pass is the model definition's (llm/graph.h), run as kernels
 * by cuda_step.c; what this backend runs is llm_cuda_caps
 * (lib/backend/caps.c), checked here before anything touches the device.
 * Rotary tables are made on the host by the reference's own functions.
 *
 * Engines (llm-build, llm/engine_artifact.h) are checked against this GPU's
 * architecture first; their weights are already in the compute dtype with
 * fc and gate stacked (mlp.fc_gate), so they are copied as they are; their
 * limits are the defaults, their graph sizes the decode buckets, and their
 * measured cuBLASLt choices are tried before the heuristic.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/backend.h"
#include "llm/dtype.h"
#include "llm/engine_artifact.h"
#include "llm/err.h"
#include "llm/log.h"
#include "llm/random.h"
#include "llm/weight.h"
#include "../cpu/cpu_ops.h"
#include "kernels/kernels.h"
#include "cuda_internal.h"

#define DEFAULT_MAX_BATCH_TOKENS 8192
#define DEFAULT_MAX_SEQS 256
#define DEFAULT_KV_FRACTION 0.90
#define RESERVE_BYTES (512ull << 20) /* left free for cuBLASLt, graphs, the driver */
#define GEMM_WS_BYTES (32ull << 20)
#define STAGE_BYTES (64ull << 20)
#define DEFAULT_GEMV_MAX_M 1
#define DEFAULT_QGEMV_MAX_M 8 /* quantized weights: the dense path dequantizes the whole weight */
/* int4 tile-layout weights past the GEMV: the tensor-core GEMM on the packed codes up to
 * this many rows, and up to DEFAULT_Q4GEMM_BIG_M for products of at least Q4GEMM_BIG weights;
 * dequantized for cuBLASLt beyond (LLM_CUDA_Q4GEMM=<m> sets both; 0: never).  On an H100,
 * with the GEMM on warpgroup MMA past 64 rows (LLM_CUDA_Q4GEMM_SHAPE, default 3) and the
 * dequantization at 81-83% of copy, over the sums of Llama-2-7B's and Falcon-180B's awq
 * layers (commit d83ba0f, docs/CUDA.md): the GEMM won at 64..256 rows on both (256: 11.3
 * against 13.5 ms, 224 against 328 ms; Llama-2-7B int4-awq end to end at 256 sequences
 * 8,743 -> 8,996 tok/s) and at 512 on Falcon-180B's products (220-880 M weights: 430
 * against 451 ms), lost at 512 on Llama-2-7B's (17-90 M: 18.7 against 17.0). */
#define DEFAULT_Q4GEMM_MAX_M 256
#define DEFAULT_Q4GEMM_BIG_M 512
#define DEFAULT_Q4GEMM_SHAPE 3
/* W4A8 products of more rows than this go to the fp8 tensor cores (codes made e4m3 in the
 * dense scratch, cuBLASLt with 128-element block scales), fewer to the fused kernel
 * (DEFAULT_W4A8_WG_M) or, where it does not take the weight, the int4 kernels.  On an
 * H100 (docs/CUDA.md "W4A8", commit d83ba0f): the fused kernel beat the fp8 path at 64,
 * 128 and 256 rows on Llama-2-7B's and Falcon-180B's layers (256: 9.5 against 9.8 ms, 182
 * against 225 ms; Llama-2-7B w4a8-awq end to end at 256 sequences 10,854 -> 11,025
 * tok/s); past 256 rows not measured since */
#define DEFAULT_W4A8_LT_M 256
/* W4A8 products of more rows than this, up to the cuBLASLt path's rows (DEFAULT_W4A8_LT_M),
 * take the fused kernel (int4 tiles times e4m3 rows on fp8 warpgroup MMA, llm_k_q4_gemm8)
 * where it takes the weight: on an H100 (docs/CUDA.md "The fused product") it beat the int4
 * GEMM at 64 and 128 rows on Llama-2-7B's and Falcon-180B's layers, lost at 16 rows on
 * Llama-2-7B's (won on Falcon-180B's); against the faster int4 GEMM of d83ba0f, same run as
 * DEFAULT_W4A8_LT_M's figures, it still won at 64 / 128 / 256 rows (Llama-2-7B 4.7 / 6.2 /
 * 9.5 against 5.9 / 7.7 / 11.3 ms, Falcon-180B 55 / 98 / 182 against 91 / 114 / 224).  The
 * int4 GEMM of 25b706e (16-bit scaling, 256 x rows a block) was not timed beside it; in
 * another run its Falcon-180B products at 256 rows took 160 ms, so the fused kernel's 256-row
 * form is the next to measure (docs/CUDA.md). */
#define DEFAULT_W4A8_WG_M 16
/* RMS norms folded into one-row 16-bit dense products (llm_k_gemv_norm): off, measured
 * slower end to end on an H100 (docs/CUDA.md); LLM_CUDA_NORM_FUSE=2 turns it on. */
#define DEFAULT_NORM_FUSE_DENSE 0
#define Q8_ACC_BYTES (128ull << 20) /* 8-bit products scaled after cuBLASLt, a block at a time */

/* ---- device memory ------------------------------------------------------------ */

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

/* ---- weights ------------------------------------------------------------------- */

struct uploader {
    void *stage;    /* device staging buffer */
    void *host_tmp; /* host buffer for dtypes converted on the host first */
};

static int dtype_rank(int dt)
{
    return dt == LLM_DTYPE_F32 || dt == LLM_DTYPE_F16 || dt == LLM_DTYPE_BF16;
}

/* Copy numel elements at src (dtype sdt) into dst (dst_dt), converting on the device. */
static int upload_data(struct cu_be *c, struct uploader *u, const char *name, const void *src0,
                       int sdt, uint64_t numel, void *dst, int dst_dt)
{
    size_t des = dst_dt == LLM_DTYPE_F32 ? 4 : 2;
    if (!src0) { /* a synthetic model: its values are made here (llm/random.h) */
        if (!c->pub.model->synthetic || !dtype_rank(sdt))
            return llm_err_set(LLM_EINVAL, "'%s': no data to upload", name);
        CK(llm_k_fill_random(dst, dst_dt, sdt, (int64_t)numel, 0,
                             llm_rand_state(c->pub.model->rand_seed, name), llm_rand_fill_of(name),
                             c->st));
        CK(cudaStreamSynchronize(c->st));
        return 0;
    }
    if (sdt == dst_dt) {
        CK(cudaMemcpyAsync(dst, src0, numel * des, cudaMemcpyHostToDevice, c->st));
        CK(cudaStreamSynchronize(c->st));
        return 0;
    }
    size_t ses = (size_t)llm_dtype_bits(sdt) / 8;
    if (!dtype_rank(sdt)) {
        if (!llm_dtype_is_float(sdt) || llm_dtype_bits(sdt) < 8)
            return llm_err_set(LLM_EUNSUPPORTED, "'%s': dtype %s cannot be uploaded", name,
                               llm_dtype_name(sdt));
        if (!u->host_tmp && !(u->host_tmp = malloc(STAGE_BYTES)))
            return llm_err_set(LLM_ENOMEM, "cuda backend: out of memory");
    }
    uint64_t chunk = STAGE_BYTES / 4;
    for (uint64_t off = 0; off < numel; off += chunk) {
        uint64_t n = numel - off < chunk ? numel - off : chunk;
        const char *src = (const char *)src0 + off * ses;
        int kdt = sdt;
        if (!dtype_rank(sdt)) {
            int rc = llm_to_f32(u->host_tmp, src, sdt, (size_t)n);
            if (rc) return llm_err_wrap(rc, "'%s'", name);
            src = u->host_tmp;
            kdt = LLM_DTYPE_F32;
        }
        size_t kes = kdt == LLM_DTYPE_F32 ? 4 : 2;
        CK(cudaMemcpyAsync(u->stage, src, n * kes, cudaMemcpyHostToDevice, c->st));
        CK(llm_k_convert((char *)dst + off * des, dst_dt, u->stage, kdt, (int64_t)n, c->st));
        CK(cudaStreamSynchronize(c->st));
    }
    return 0;
}

static uint64_t numel_of(const struct llm_weight *w)
{
    uint64_t n = 1;
    for (int i = 0; i < w->ndim; i++)
        n *= (uint64_t)w->shape[i];
    return n;
}

/* Values of a quantization side tensor as fp32 on the host (numel checked). */
static float *side_f32(const struct llm_tensor *t, uint64_t want, const char *what,
                       const char *wname, int *rc)
{
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (uint64_t)t->shape[i];
    if (!t->data || n != want) {
        *rc = llm_err_set(LLM_ESHAPE, "'%s': %s has %llu values, expected %llu", wname, what,
                          (unsigned long long)n, (unsigned long long)want);
        return NULL;
    }
    float *f = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!f) {
        *rc = llm_err_set(LLM_ENOMEM, "cuda backend: out of memory for '%s' %s", wname, what);
        return NULL;
    }
    if ((*rc = llm_convert(f, LLM_DTYPE_F32, t->data, t->dtype, (size_t)n))) {
        free(f);
        return NULL;
    }
    return f;
}

/* Copy a host array of bytes into a new device allocation. */
static int upload_bytes(struct cu_be *c, void **dst, const void *src, uint64_t bytes,
                        const char *what)
{
    int rc = dalloc(c, dst, bytes, what);
    if (rc) return rc;
    c->weight_bytes += bytes;
    CK(cudaMemcpyAsync(*dst, src, bytes, cudaMemcpyHostToDevice, c->st));
    CK(cudaStreamSynchronize(c->st));
    return 0;
}

/* Quantized weight w (numel elements of dt) into dst: its bytes, or for a
 * synthetic model's weight (no data on the host) its random codes made on
 * the device (llm/random.h) - for expert e of a stack (llm_weight_expert's
 * "<stack>#<e>") the stack's elements from e * numel on, so the values are
 * the host's for the whole stack. */
static int upload_qbytes(struct cu_be *c, void *dst, const struct llm_weight *w, int dt,
                         uint64_t numel, uint64_t bytes)
{
    if (!w->data) {
        if (!c->pub.model->synthetic)
            return llm_err_set(LLM_EINVAL, "'%s': no data to upload", w->name);
        char stack[LLM_NAME_MAX];
        const char *hash = strrchr(w->name, '#');
        int64_t first = 0;
        snprintf(stack, sizeof stack, "%.*s", hash ? (int)(hash - w->name) : LLM_NAME_MAX, w->name);
        if (hash) first = strtoll(hash + 1, NULL, 10) * (int64_t)numel;
        CK(llm_k_fill_random(dst, dt, dt, (int64_t)numel, first,
                             llm_rand_state(c->pub.model->rand_seed, stack),
                             llm_rand_fill_of(stack), c->st));
        CK(cudaStreamSynchronize(c->st));
        return 0;
    }
    if (w->nbytes < bytes)
        return llm_err_set(LLM_ESHAPE, "'%s': %llu bytes, expected %llu", w->name,
                           (unsigned long long)w->nbytes, (unsigned long long)bytes);
    CK(cudaMemcpyAsync(dst, w->data, bytes, cudaMemcpyHostToDevice, c->st));
    CK(cudaStreamSynchronize(c->st));
    return 0;
}

/* Whether every scale is a value of dt (f16 / bf16): the warpgroup int4 GEMM then multiplies
 * its codes by them in 16 bits, one rounding of the same exact product (kernels.h,
 * llm_k_qw.scale_exact). */
static int scales_exact(const float *s, size_t n, int dt)
{
    if (dt != LLM_DTYPE_F16 && dt != LLM_DTYPE_BF16) return 0;
    for (size_t i = 0; i < n; i++) {
        const float r = dt == LLM_DTYPE_BF16 ? llm_bf16_to_f32(llm_f32_to_bf16(s[i]))
                                             : llm_f16_to_f32(llm_f32_to_f16(s[i]));
        if (!(r == s[i])) return 0;
    }
    return 1;
}

/* k weight-only quantized weights (k = 2: fc then gate rows, stacked): the
 * packed weights as stored (rows concatenated); fp32 scales by output row
 * (int4: the artifact's [in / group][out] transposed to [out][in / group];
 * an int8 per-tensor scale repeated per row); -scale * zero beside them when
 * a zero point is present; AWQ's pre-quant scale [k][in] (ones for a weight
 * without one).  Nothing is dequantized. */
static int upload_qslot(struct cu_be *c, const struct llm_weight *const *w, int k,
                        struct cu_w *out)
{
    const struct llm_weight *w0 = w[0];
    const int64_t N = w0->shape[0], K = w0->shape[1];
    const int fmt = w0->fmt, i4 = fmt == LLM_WFMT_INT4;
    /* W4A8: int4 with a static fp8 activation scale on every part */
    const int a8 = i4 && w0->act == LLM_WACT_FP8;
    if (w0->ndim != 2 || (fmt != LLM_WFMT_INT8 && fmt != LLM_WFMT_INT4))
        return llm_err_set(LLM_EUNSUPPORTED, "cuda backend: '%s' is %s (int8 and int4 "
                           "weight-only formats run here; --device cpu runs the others)",
                           w0->name, llm_wfmt_name(fmt));
    int any_zero = 0, any_pre = 0;
    for (int i = 0; i < k; i++) {
        if (w[i]->fmt != fmt || w[i]->shape[0] != N || w[i]->shape[1] != K ||
            (i4 && w[i]->group_size != w0->group_size))
            return llm_err_set(LLM_EUNSUPPORTED, "cuda backend: '%s' and '%s' differ in format, "
                               "shape or group size", w0->name, w[i]->name);
        if (a8 ? w[i]->act != LLM_WACT_FP8 || w[i]->smoother.data || !w[i]->act_scale.data
               : w[i]->act != LLM_WACT_NONE || w[i]->smoother.data || w[i]->act_scale.data)
            return llm_err_set(LLM_EUNSUPPORTED,
                               "cuda backend: '%s' has quantized activations "
                               "%s(int4 with static fp8 activations, and weight-only formats, "
                               "run here; --device cpu runs it)",
                               w[i]->name, a8 ? "other than static fp8 " : "");
        if (!w[i]->data && !c->pub.model->synthetic)
            return llm_err_set(LLM_EINVAL, "'%s': no data to upload", w[i]->name);
        any_zero |= w[i]->zero.data != NULL;
        any_pre |= w[i]->prequant.data != NULL;
    }
    /* GPTQ act-order: one order of the inputs for the stacked parts (fc and gate read the
     * same input, and GPTQ orders both by the same statistics) */
    for (int i = 1; i < k; i++)
        if (!w0->perm.data != !w[i]->perm.data ||
            (w0->perm.data && memcmp(w0->perm.data, w[i]->perm.data, sizeof(int32_t) * (size_t)K)))
            return llm_err_set(LLM_EUNSUPPORTED,
                               "cuda backend: '%s' and '%s' read their inputs "
                               "in different orders (GPTQ act-order; --device cpu runs them)",
                               w0->name, w[i]->name);
    const int gs = i4 ? w0->group_size : 0;
    if (i4 && (gs <= 0 || K % gs || K % 2))
        return llm_err_set(LLM_ESHAPE, "'%s': group size %d does not divide %lld input channels",
                           w0->name, gs, (long long)K);
    const int64_t ng = i4 ? K / gs : 1;
    const uint64_t rowb = i4 ? (uint64_t)K / 2 : (uint64_t)K;
    /* int4 for f16 / bf16 products goes into the tensor-core tile layout
     * (kernels.h: llm_k_q4_tile) unless it has zero points, or a pre-quant
     * scale with a group the staged tile kernel does not take (measured:
     * docs/CUDA.md); always with LLM_CUDA_QTILE=1, never with
     * LLM_CUDA_QTILE=0.  The bytes go up as stored (or a synthetic model's
     * codes are made on the device) and are re-laid there. */
    const char *qt = getenv("LLM_CUDA_QTILE");
    const int want_tile =
        qt ? strcmp(qt, "0") != 0 : !any_pre || a8 || gs == 32 || gs == 64 || gs == 128;
    /* zero points in the tile layout (LLM_CUDA_QTILE_ZP=0: never): integers within
     * +-16 (what AWQ and GPTQ imports hold), no pre-quant scale, the staged kernel's
     * groups; the codes are then taken as q - z (op tests and the imported AWQ / GPTQ
     * forwards agree with the CPU on an H100, docs/CUDA.md) */
    const char *qz = getenv("LLM_CUDA_QTILE_ZP");
    int zp_tile = i4 && any_zero && (!any_pre || a8) && !(qz && !strcmp(qz, "0")) &&
                  (gs == 32 || gs == 64 || gs == 128);
    for (int i = 0; i < k && zp_tile; i++) {
        if (!w[i]->zero.data) continue;
        int e = 0;
        float *z = side_f32(&w[i]->zero, (uint64_t)(ng * N), "zero", w[i]->name, &e);
        if (!z) return e;
        for (int64_t j = 0; j < ng * N && zp_tile; j++)
            zp_tile = z[j] == floorf(z[j]) && fabsf(z[j]) <= 16.f;
        free(z);
    }
    const int tile = i4 && c->dt != LLM_DTYPE_F32 && (!any_zero || zp_tile) && want_tile &&
                     llm_k_q4_tile_ok((int)N, (int)K, 0);
    int rc = dalloc(c, &out->w, (uint64_t)k * (uint64_t)N * rowb, w0->name);
    if (rc) return rc;
    c->weight_bytes += (uint64_t)k * (uint64_t)N * rowb;
    void *plain = NULL;
    if (tile && cudaMalloc(&plain, (size_t)((uint64_t)N * rowb)) != cudaSuccess) {
        (void)cudaGetLastError();
        return llm_err_set(LLM_ENOMEM, "cuda backend: out of device memory re-laying '%s'",
                           w0->name);
    }
    for (int i = 0; i < k && !rc; i++) {
        uint8_t *dst = (uint8_t *)out->w + (uint64_t)i * (uint64_t)N * rowb;
        rc = upload_qbytes(c, tile ? plain : dst, w[i], i4 ? LLM_DTYPE_I4 : LLM_DTYPE_I8,
                           (uint64_t)(N * K), (uint64_t)N * rowb);
        if (!rc && tile) {
            int e = llm_k_q4_tile_dev(dst, (const uint8_t *)plain, N, K, c->st);
            if (e == (int)cudaSuccess) e = (int)cudaStreamSynchronize(c->st);
            if (e != (int)cudaSuccess)
                rc = cu_fail(CU_LIB_RT, e, "llm_k_q4_tile_dev", __FILE__, __LINE__);
        }
    }
    cudaFree(plain);
    if (rc) return rc;
    const size_t nsc = (size_t)k * (size_t)N * (size_t)ng;
    float *sc = malloc(sizeof(float) * nsc), *zm = any_zero ? calloc(nsc, sizeof(float)) : NULL;
    int8_t *zq = any_zero && tile ? calloc(nsc, 1) : NULL;
    float *pre = any_pre ? malloc(sizeof(float) * (size_t)k * (size_t)K) : NULL, as[2] = {1.f, 1.f};
    if (!sc || (any_zero && !zm) || (any_zero && tile && !zq) || (any_pre && !pre)) {
        rc = llm_err_set(LLM_ENOMEM, "cuda backend: out of memory for '%s'", w0->name);
        goto out;
    }
    for (int i = 0; i < k && !rc; i++) {
        const struct llm_weight *wi = w[i];
        float *s = NULL, *z = NULL, *p = NULL;
        uint64_t ns = i4 ? (uint64_t)(ng * N) : wi->scale_kind == LLM_WSCALE_CHANNEL ? (uint64_t)N : 1;
        if (!(s = side_f32(&wi->scale, ns, "scale", wi->name, &rc))) break;
        if (wi->zero.data && !(z = side_f32(&wi->zero, ns, "zero", wi->name, &rc))) {
            free(s);
            break;
        }
        if (wi->prequant.data &&
            !(p = side_f32(&wi->prequant, (uint64_t)K, "pre-quant scale", wi->name, &rc))) {
            free(s);
            free(z);
            break;
        }
        if (a8) { /* folded into the group scales: the kernels see x / as rounded */
            float *a = side_f32(&wi->act_scale, 1, "activation scale", wi->name, &rc);
            if (!a || !(a[0] > 0.f) || !isfinite(a[0])) {
                if (a)
                    rc = llm_err_set(LLM_EFORMAT,
                                     "'%s': activation scale %g is not a "
                                     "positive number",
                                     wi->name, (double)a[0]);
                free(a);
                free(s);
                free(z);
                free(p);
                break;
            }
            as[i] = a[0];
            free(a);
        }
        float *ds = sc + (size_t)i * (size_t)N * (size_t)ng;
        for (int64_t n = 0; n < N; n++)
            for (int64_t g = 0; g < ng; g++) {
                float v = (i4 ? s[g * N + n] : ns == 1 ? s[0] : s[n]) * as[i];
                ds[n * ng + g] = v;
                const size_t zi = (size_t)i * (size_t)N * (size_t)ng + (size_t)(n * ng + g);
                if (z) zm[zi] = -v * z[g * N + n];
                if (z && zq) zq[zi] = (int8_t)z[g * N + n];
            }
        if (pre)
            for (int64_t j = 0; j < K; j++) pre[(size_t)i * (size_t)K + (size_t)j] = p ? p[j] : 1.0f;
        free(s);
        free(z);
        free(p);
    }
    if (rc) goto out;
    memset(&out->q, 0, sizeof out->q);
    out->q.fmt = i4 ? LLM_K_Q_INT4 : LLM_K_Q_INT8;
    out->q.q = out->w;
    out->q.group = gs;
    out->q.pre_split = (int)N;
    out->q.tile = tile;
    out->q.scale_exact = tile && !c->q4_no_sx && scales_exact(sc, nsc, c->dt);
    if ((rc = upload_bytes(c, (void **)&out->q.scale, sc, sizeof(float) * nsc, "scales")) ||
        (zm &&
         (rc = upload_bytes(c, (void **)&out->q.zm, zm, sizeof(float) * nsc, "zero points"))) ||
        (zq && (rc = upload_bytes(c, (void **)&out->q.zq, zq, nsc, "zero points"))) ||
        (pre && (rc = upload_bytes(c, (void **)(a8 ? &out->a8_pre : &out->q.pre), pre,
                                   sizeof(float) * (size_t)k * (size_t)K, "pre-quant scales"))) ||
        (a8 && (rc = upload_bytes(c, (void **)&out->a8_scale, as, sizeof(float) * (size_t)k,
                                  "activation scales"))))
        goto out;
    if (a8) { /* the parts are rounded apart where their scales differ */
        out->a8 = 1;
        out->a8_split =
            k == 2 && (as[0] != as[1] || (pre && memcmp(pre, pre + K, sizeof(float) * (size_t)K)))
                ? (int)N
                : 1 << 30;
        if ((uint64_t)K > c->a8_k) c->a8_k = (uint64_t)K;
        if ((uint64_t)(k * N) > c->a8_n) c->a8_n = (uint64_t)(k * N);
        if ((uint64_t)K > c->q_xs_elems) c->q_xs_elems = (uint64_t)K;
    }
    /* the scratch of the dense path for many rows */
    uint64_t dense = (uint64_t)k * (uint64_t)N * (uint64_t)K * c->es;
    if (dense > c->q_dense_bytes) c->q_dense_bytes = dense;
    if (pre && !a8 && (uint64_t)K > c->q_xs_elems) c->q_xs_elems = (uint64_t)K;
    if (w0->perm.data) { /* validated by the loader: int32 [K], a permutation */
        if ((rc = upload_bytes(c, (void **)&out->perm, w0->perm.data, sizeof(int32_t) * (size_t)K,
                               "input order")))
            goto out;
        if ((uint64_t)K > c->perm_elems) c->perm_elems = (uint64_t)K;
    }
out:
    free(sc);
    free(zm);
    free(zq);
    free(pre);
    return rc;
}

/* k weights whose activations are quantized too (fp8; int8 with
 * SmoothQuant): the 8-bit weights as stored (rows concatenated), fp32
 * scales by output row (a per-tensor scale repeated), each weight's static
 * activation scale (0 where it has none: each row's own) and smoother
 * (ones where it has none).  When the k weights differ in those, pre_split
 * says where the second's rows begin (kernels.h, struct llm_k_qw). */
static int upload_w8a8(struct cu_be *c, const struct llm_weight *const *w, int k,
                       struct cu_w *out)
{
    const struct llm_weight *w0 = w[0];
    const int64_t N = w0->shape[0], K = w0->shape[1];
    const int act = w0->act == LLM_WACT_FP8 ? LLM_K_A_FP8 : LLM_K_A_INT8;
    const int wdt = act == LLM_K_A_FP8 ? LLM_DTYPE_F8E4M3 : LLM_DTYPE_I8;
    if (w0->ndim != 2)
        return llm_err_set(LLM_EUNSUPPORTED, "cuda backend: '%s' is a quantized %d-d weight",
                           w0->name, w0->ndim);
    if (!llm_k_w8a8_ok((int)K))
        return llm_err_set(LLM_EUNSUPPORTED, "cuda backend: '%s' has %lld input channels (8-bit "
                           "activations run here for multiples of 16; --device cpu runs it)",
                           w0->name, (long long)K);
    int any_as = 0, any_sm = 0;
    for (int i = 0; i < k; i++) {
        if (w[i]->act != w0->act || w[i]->dtype != wdt || w[i]->shape[0] != N ||
            w[i]->shape[1] != K)
            return llm_err_set(LLM_EUNSUPPORTED, "cuda backend: '%s' and '%s' differ in format or "
                               "shape", w0->name, w[i]->name);
        if (w[i]->prequant.data)
            return llm_err_set(LLM_EUNSUPPORTED, "cuda backend: '%s' has a pre-quant scale and "
                               "8-bit activations", w[i]->name);
        any_as |= w[i]->act_scale.data != NULL;
        any_sm |= w[i]->smoother.data != NULL;
    }
    int rc = dalloc(c, &out->w, (uint64_t)k * (uint64_t)(N * K), w0->name);
    if (rc) return rc;
    c->weight_bytes += (uint64_t)k * (uint64_t)(N * K);
    for (int i = 0; i < k && !rc; i++)
        rc = upload_qbytes(c, (char *)out->w + (uint64_t)i * (uint64_t)(N * K), w[i], wdt,
                           (uint64_t)(N * K), (uint64_t)(N * K));
    if (rc) return rc;
    float *sc = malloc(sizeof(float) * (size_t)(k * N)), as[2] = {0.f, 0.f};
    float *sm = any_sm ? malloc(sizeof(float) * (size_t)(k * K)) : NULL;
    if (!sc || (any_sm && !sm)) {
        rc = llm_err_set(LLM_ENOMEM, "cuda backend: out of memory for '%s'", w0->name);
        goto out;
    }
    for (int i = 0; i < k && !rc; i++) {
        const struct llm_weight *wi = w[i];
        uint64_t ns = wi->scale_kind == LLM_WSCALE_CHANNEL ? (uint64_t)N : 1;
        float *s = side_f32(&wi->scale, ns, "scale", wi->name, &rc), *a = NULL, *m = NULL;
        if (!s) break;
        for (int64_t n = 0; n < N; n++) sc[(size_t)(i * N + n)] = ns == 1 ? s[0] : s[n];
        free(s);
        if (wi->act_scale.data) {
            if (!(a = side_f32(&wi->act_scale, 1, "activation scale", wi->name, &rc))) break;
            as[i] = a[0];
            free(a);
        }
        if (sm) {
            if (wi->smoother.data &&
                !(m = side_f32(&wi->smoother, (uint64_t)K, "smoother", wi->name, &rc)))
                break;
            for (int64_t j = 0; j < K; j++) sm[(size_t)(i * K + j)] = m ? m[j] : 1.0f;
            free(m);
        }
    }
    if (rc) goto out;
    memset(&out->q, 0, sizeof out->q);
    out->q.fmt = act == LLM_K_A_FP8 ? LLM_K_Q_FP8 : LLM_K_Q_INT8;
    out->q.q = out->w;
    out->q.act = act;
    out->q.pre_split = 1 << 30;
    /* the parts are run apart only where their activations are rounded
     * differently; per-tensor weight scales and static activation scales
     * are scalar scales for cuBLASLt when every row of a product shares
     * them (else its per-row vectors serve) */
    int split = k == 2 && (as[0] != as[1] || (sm && memcmp(sm, sm + K, sizeof(float) * (size_t)K)));
    int scalar = !(k == 2 && !split && sc[0] != sc[N]);
    for (int i = 0; i < k; i++)
        scalar &= w[i]->scale_kind != LLM_WSCALE_CHANNEL && as[i] > 0.f;
    out->q.scalar = scalar;
    out->q.act_static = 1;
    for (int i = 0; i < k; i++) out->q.act_static &= as[i] > 0.f;
    if (split) out->q.pre_split = (int)N;
    if ((rc = upload_bytes(c, (void **)&out->q.scale, sc, sizeof(float) * (size_t)(k * N),
                           "scales")) ||
        (any_as && (rc = upload_bytes(c, (void **)&out->q.act_scale, as, sizeof(float) * (size_t)k,
                                      "activation scales"))) ||
        (sm && (rc = upload_bytes(c, (void **)&out->q.smoother, sm,
                                  sizeof(float) * (size_t)(k * K), "smoothers"))))
        goto out;
    /* the scratch: quantized rows as wide as the widest input, products as wide as the
     * widest output */
    if ((uint64_t)K > c->q8_k) c->q8_k = (uint64_t)K;
    if ((uint64_t)(k * N) > c->q8_n) c->q8_n = (uint64_t)(k * N);
out:
    free(sc);
    free(sm);
    return rc;
}

/* Upload k weights (k = 2: fc then gate rows) and their biases into one
 * allocation each; biases of the lm_head in f32.  Quantized weights stay
 * quantized (upload_qslot, upload_w8a8). */
static int upload_slot(struct cu_be *c, struct uploader *u, const struct llm_weight *const *w,
                       int k, int bias_f32, struct cu_w *out)
{
    int rc = 0;
    if (w[0]->fmt != LLM_WFMT_DENSE && w[0]->act != LLM_WACT_NONE &&
        w[0]->fmt != LLM_WFMT_INT4) { /* int4 with fp8 activations (W4A8): upload_qslot */
        if ((rc = upload_w8a8(c, w, k, out))) return rc;
    } else if (w[0]->fmt != LLM_WFMT_DENSE) {
        if ((rc = upload_qslot(c, w, k, out))) return rc;
    } else {
        uint64_t n = numel_of(w[0]), bytes = n * c->es * (uint64_t)k;
        if ((rc = dalloc(c, &out->w, bytes, w[0]->name))) return rc;
        c->weight_bytes += bytes;
        for (int i = 0; i < k && !rc; i++)
            rc = upload_data(c, u, w[i]->name, w[i]->data, w[i]->dtype, n,
                             (char *)out->w + (uint64_t)i * n * c->es, c->dt);
    }
    if (rc || !w[0]->has_bias) return rc;
    int bdt = bias_f32 ? LLM_DTYPE_F32 : c->dt;
    size_t bes = bdt == LLM_DTYPE_F32 ? 4 : 2;
    uint64_t bn = (uint64_t)w[0]->shape[0];
    if ((rc = dalloc(c, &out->b, bn * bes * (uint64_t)k, w[0]->name))) return rc;
    for (int i = 0; i < k && !rc; i++)
        rc = upload_data(c, u, w[i]->bias_name, w[i]->bias, w[i]->bias_dtype, bn,
                         (char *)out->b + (uint64_t)i * bn * bes, bdt);
    return rc;
}

/* Whether two weight-only quantized weights take one dequantization launch
 * (llm_k_dequant_experts): the same format, group, layout and side tensors. */
static int same_qkind(const struct llm_k_qw *a, const struct llm_k_qw *b)
{
    return a->fmt == b->fmt && !a->act && !b->act && a->group == b->group && a->tile == b->tile &&
           !a->zm == !b->zm && !a->zq == !b->zq && !a->pre == !b->pre &&
           a->pre_split == b->pre_split;
}

/* Layer l's experts as a device table for llm_k_dequant_experts (fc + gate,
 * then down), where all of them are weight-only quantized alike in 16-bit
 * compute; the scratch their 16-bit weights need, at the most. */
static int expert_table(struct cu_be *c, int l)
{
    const struct llm_model_desc *d = c->d;
    const int E = d->n_experts;
    const struct cu_w *x = c->xw[l];
    if (c->dt == LLM_DTYPE_F32 || !x[0].q.fmt || !x[1].q.fmt || x[0].a8 || x[1].a8) return 0;
    for (int e = 0; e < E; e++)
        if (!same_qkind(&x[2 * e].q, &x[0].q) || !same_qkind(&x[2 * e + 1].q, &x[1].q)) return 0;
    struct llm_k_qw *t = malloc(sizeof *t * (size_t)(2 * E));
    if (!t) return llm_err_set(LLM_ENOMEM, "cuda backend: out of memory");
    for (int e = 0; e < E; e++)
        t[e] = x[2 * e].q, t[E + e] = x[2 * e + 1].q;
    int rc = dalloc(c, (void **)&c->xq_tab[l], sizeof *t * (size_t)(2 * E), "expert table");
    if (!rc) {
        cudaError_t er =
            cudaMemcpy(c->xq_tab[l], t, sizeof *t * (size_t)(2 * E), cudaMemcpyHostToDevice);
        if (er != cudaSuccess) rc = cu_fail(CU_LIB_RT, er, "cudaMemcpy", __FILE__, __LINE__);
    }
    free(t);
    const uint64_t I = (uint64_t)d->intermediate, H = (uint64_t)d->hidden;
    const uint64_t need = (uint64_t)E * 2 * I * H * c->es;
    if (!rc && need > c->moe_deq_bytes) c->moe_deq_bytes = need;
    return rc;
}

/* A layer's quantized expert stacks: every expert's fc and gate stacked as
 * one quantized weight, and its down, each uploaded as a 2-D weight of its
 * own (upload_slot) from the stack's views; a stack left dense goes up
 * whole as for dense experts. */
static int upload_experts(struct cu_be *c, struct uploader *u, const struct llm_weights *ws, int l)
{
    const struct llm_model_desc *d = c->d;
    const struct llm_weight *fc = llm_weights_get(ws, LLM_W_MLP_FC, l),
                            *gate = llm_weights_get(ws, LLM_W_MLP_GATE, l),
                            *down = llm_weights_get(ws, LLM_W_MLP_OUT, l);
    const int E = d->n_experts;
    if (fc->fmt != gate->fmt)
        return llm_err_set(LLM_EUNSUPPORTED,
                           "cuda backend: '%s' and '%s' differ in format "
                           "(--device cpu runs them)",
                           fc->name, gate->name);
    if (fc->perm.data || down->perm.data)
        return llm_err_set(LLM_EUNSUPPORTED,
                           "cuda backend: '%s' has experts on permuted "
                           "inputs (--device cpu runs them)",
                           fc->perm.data ? fc->name : down->name);
    if (!(c->xw[l] = calloc((size_t)(2 * E), sizeof(struct cu_w))))
        return llm_err_set(LLM_ENOMEM, "cuda backend: out of memory");
    c->moe_quant = 1;
    int rc = 0;
    if (fc->fmt == LLM_WFMT_DENSE) {
        const struct llm_weight *two[2] = {fc, gate};
        rc = upload_slot(c, u, two, 2, 0, &c->lw[l][LLM_W_MLP_FC]);
    }
    if (!rc && down->fmt == LLM_WFMT_DENSE) {
        const struct llm_weight *one[1] = {down};
        rc = upload_slot(c, u, one, 1, 0, &c->lw[l][LLM_W_MLP_OUT]);
    }
    for (int e = 0; e < E && !rc; e++) {
        if (fc->fmt != LLM_WFMT_DENSE) {
            const struct llm_weight f = llm_weight_expert(fc, e), g = llm_weight_expert(gate, e);
            const struct llm_weight *two[2] = {&f, &g};
            rc = upload_slot(c, u, two, 2, 0, &c->xw[l][2 * e]);
        }
        if (!rc && down->fmt != LLM_WFMT_DENSE) {
            const struct llm_weight o = llm_weight_expert(down, e);
            const struct llm_weight *one[1] = {&o};
            rc = upload_slot(c, u, one, 1, 0, &c->xw[l][2 * e + 1]);
        }
    }
    return rc ? rc : expert_table(c, l);
}

static int upload_weights(struct cu_be *c, struct llm_model *m)
{
    const struct llm_model_desc *d = c->d;
    struct llm_weights ws;
    int rc = llm_weights_bind(&ws, m);
    if (rc) return rc;
    struct uploader u = {0};
    if (!(c->lw = calloc((size_t)d->n_layers, sizeof *c->lw)) ||
        !(c->xw = calloc((size_t)d->n_layers, sizeof *c->xw)) ||
        !(c->xq_tab = calloc((size_t)d->n_layers, sizeof *c->xq_tab)))
        rc = llm_err_set(LLM_ENOMEM, "cuda backend: out of memory");
    if (!rc) rc = dalloc(c, &u.stage, STAGE_BYTES, "upload staging");
    for (int s = 0; s < LLM_W_FIRST_LAYER && !rc; s++) {
        const struct llm_weight *w = llm_weights_get(&ws, s, -1);
        if (!w->present) continue;
        if (s == LLM_W_LM_HEAD && d->tied_embeddings) { /* the embedding's rows */
            c->gw[s].w = c->gw[LLM_W_EMBED].w;
            if (w->has_bias) {
                rc = dalloc(c, &c->gw[s].b, (uint64_t)w->shape[0] * 4, "lm_head.bias");
                if (!rc)
                    rc = upload_data(c, &u, w->bias_name, w->bias, w->bias_dtype,
                                     (uint64_t)w->shape[0], c->gw[s].b, LLM_DTYPE_F32);
            }
            continue;
        }
        const struct llm_weight *one[1] = {w};
        rc = upload_slot(c, &u, one, 1, s == LLM_W_LM_HEAD, &c->gw[s]);
    }
    for (int l = 0; l < d->n_layers && !rc; l++)
        for (int s = LLM_W_FIRST_LAYER; s < LLM_W_COUNT && !rc; s++) {
            const struct llm_weight *w = llm_weights_get(&ws, s, l);
            if (!w->present || s == LLM_W_MLP_GATE) continue;
            if (s == LLM_W_ROUTER && w->fmt != LLM_WFMT_DENSE) {
                rc = llm_err_set(LLM_EUNSUPPORTED,
                                 "cuda backend: the router '%s' is quantized "
                                 "(--device cpu runs it)",
                                 w->name);
                break;
            }
            if ((s == LLM_W_MLP_FC || s == LLM_W_MLP_OUT) && w->ndim == 3 &&
                (llm_weights_get(&ws, LLM_W_MLP_FC, l)->fmt != LLM_WFMT_DENSE ||
                 llm_weights_get(&ws, LLM_W_MLP_OUT, l)->fmt != LLM_WFMT_DENSE)) {
                if (s == LLM_W_MLP_FC) rc = upload_experts(c, &u, &ws, l);
                continue;
            }
            if (s == LLM_W_MLP_FC && d->gated_mlp) { /* fc rows, then gate rows */
                const struct llm_weight *two[2] = {w, llm_weights_get(&ws, LLM_W_MLP_GATE, l)};
                rc = upload_slot(c, &u, two, 2, 0, &c->lw[l][s]);
            } else {
                const struct llm_weight *one[1] = {w};
                rc = upload_slot(c, &u, one, 1, 0, &c->lw[l][s]);
            }
        }
    free(u.host_tmp);
    llm_weights_free(&ws);
    /* the staging buffer stays in the allocation list; it is small */
    return rc;
}

/* ---- position encodings ----------------------------------------------------------- */

/* npos rows of (cos, sin) pairs from the frequencies inv[half] (scale ms) into h. */
static void rope_rows(const float *inv, int half, float ms, int npos, float *h)
{
    float cs[512], sn[512]; /* half <= 512: rot_dims <= max_head_dim */
    for (int p = 0; p < npos; p++) {
        llm_cpu_rope_cos_sin(inv, half, ms, p, cs, sn);
        float *row = h + (size_t)p * 2 * half;
        for (int i = 0; i < half; i++) {
            row[2 * i] = cs[i];
            row[2 * i + 1] = sn[i];
        }
    }
}

/* n (cos, sin) pairs from the host into a device table, synchronously. */
static int rope_upload(struct cu_be *c, float *dst, const float *h, size_t n)
{
    cudaError_t e = cudaMemcpyAsync(dst, h, n * 2 * sizeof(float), cudaMemcpyHostToDevice, c->st);
    if (e == cudaSuccess) e = cudaStreamSynchronize(c->st);
    return e == cudaSuccess ? 0 : cu_fail(CU_LIB_RT, e, "cudaMemcpy(rope)", __FILE__, __LINE__);
}

/* Rotary tables: cos/sin per position from the reference's own formulas.
 * Longrope keeps a second table (long factors) for sequences past the
 * original length; dynamic NTK scaling changes nothing up to max_pos and
 * past it gets rows computed per step (cuda_step.c). */
static int make_rope(struct cu_be *c)
{
    const struct llm_model_desc *d = c->d;
    int half = c->rope.rot_dims / 2, npos = c->pub.max_seq_len;
    c->rope_npos = npos;
    c->rope_sets = 1;
    int64_t L = c->rope.orig_max_pos > 0 ? c->rope.orig_max_pos : d->max_pos;
    if (c->rope.scaling == LLM_ROPE_SCALING_LONGROPE && npos > L) c->rope_sets = 2;
    c->rope_dyn0 = c->rope_sets * npos;
    c->rope_dyn_rows = c->rope.scaling == LLM_ROPE_SCALING_DYNAMIC && npos > d->max_pos
                           ? c->pub.max_batch_tokens
                           : 0;
    size_t n = (size_t)c->rope_sets * (size_t)npos * (size_t)half;
    size_t ndyn = (size_t)c->rope_dyn_rows * (size_t)half;
    float *h = malloc(n * 2 * sizeof(float));
    float *inv = malloc(sizeof(float) * (size_t)(half + 1));
    if (!h || !inv) {
        free(h);
        free(inv);
        return llm_err_set(LLM_ENOMEM, "cuda backend: out of memory for the rope table");
    }
    int rc = 0;
    for (int set = 0; set < c->rope_sets && !rc; set++) {
        float ms;
        int64_t seq_len = set ? L + 1 : (npos < L ? npos : L);
        if (c->rope.scaling == LLM_ROPE_SCALING_LONGROPE && c->rope_sets == 1) seq_len = npos;
        if (c->rope.scaling == LLM_ROPE_SCALING_DYNAMIC) seq_len = 1; /* up to max_pos: no growth */
        if ((rc = llm_cpu_rope_freqs(&c->rope, d->max_pos, seq_len, inv, &ms))) break;
        rope_rows(inv, half, ms, npos, h + (size_t)set * npos * 2 * half);
    }
    if (!rc)
        rc = dalloc(c, (void **)&c->rope_tab, (n + ndyn) * 2 * sizeof(float), "rope table");
    if (!rc) rc = rope_upload(c, c->rope_tab, h, n);
    /* the local layers' table (Gemma 3): their own base, unscaled, one row a position */
    if (!rc && d->rope_local_theta > 0) {
        struct llm_rope lr = {0};
        float ms;
        lr.theta = d->rope_local_theta;
        lr.rot_dims = c->rope.rot_dims;
        lr.neox = c->rope.neox;
        lr.scaling = LLM_ROPE_SCALING_NONE;
        size_t nl = (size_t)npos * (size_t)half;
        if (!(rc = llm_cpu_rope_freqs(&lr, d->max_pos, 1, inv, &ms))) {
            rope_rows(inv, half, ms, npos, h);
            rc = dalloc(c, (void **)&c->rope_local_tab, nl * 2 * sizeof(float), "local rope table");
        }
        if (!rc) rc = rope_upload(c, c->rope_local_tab, h, nl);
    }
    free(inv);
    free(h);
    if (!rc && ndyn) {
        cudaError_t e = cudaMallocHost((void **)&c->h_dyn, ndyn * 2 * sizeof(float));
        if (e != cudaSuccess) rc = cu_fail(CU_LIB_RT, e, "cudaMallocHost(rope)", __FILE__, __LINE__);
    }
    return rc;
}

static int make_alibi(struct cu_be *c)
{
    int nh = c->d->n_heads;
    float *s = malloc(sizeof(float) * (size_t)nh);
    if (!s) return llm_err_set(LLM_ENOMEM, "cuda backend: out of memory");
    llm_desc_alibi_slopes(c->d, s);
    int rc = dalloc(c, (void **)&c->alibi, sizeof(float) * (size_t)nh, "alibi slopes");
    if (!rc && (cudaMemcpyAsync(c->alibi, s, sizeof(float) * (size_t)nh, cudaMemcpyHostToDevice,
                                c->st) ||
                cudaStreamSynchronize(c->st)))
        rc = llm_err_set(LLM_EDEVICE, "cuda backend: cannot upload alibi slopes");
    free(s);
    return rc;
}

/* ---- creation ------------------------------------------------------------------- */

/* Switches for measurements: LLM_CUDA_GEMV=<m> rows up to which the GEMV kernel
 * replaces cuBLASLt (0 = never); LLM_CUDA_QGEMV=<m> the same for quantized weights
 * (default 8; above it they are dequantized for cuBLASLt; the same bound for 8-bit activations,
 * whose larger products go to cuBLASLt's 8-bit GEMMs), LLM_CUDA_Q4GEMM=<m> rows up to which
 * int4 weights in the tile layout take the tensor-core GEMM on their codes instead of the
 * dequantization (0 = never), LLM_CUDA_Q4GEMM_SHAPE=0..4 that GEMM's block shape (kernels.h),
 * LLM_CUDA_Q4WG_BN=128|256 its warpgroup form's x rows a block past 128 rows,
 * LLM_CUDA_Q4_SX=0 its 16-bit scaling off (scales_exact), LLM_CUDA_QGEMV_SHAPE=<s> its
 * single-row tile shape, LLM_CUDA_QTILE=0|1 int4 weights never / always in the
 * tensor-core tile layout (default: all without zero points, and those with integral ones);
 * LLM_CUDA_QTILE_ZP=0 int4 with zero points kept in the plain layout; LLM_CUDA_NORM_FUSE=0 norms
 * before int4 tile products as their own launch, =2 also folded into one-row 16-bit dense
 * products (llm_k_gemv_norm), =1 not those; LLM_CUDA_GRAPHS=1 decode graphs; LLM_CUDA_GATED=0
 * no fused gate/up GEMV; LLM_CUDA_PDL=0 no programmatic dependent launch;
 * LLM_CUDA_GEMV_SPLIT=0..5 single-row product shapes (0: chosen per shape);
 * LLM_CUDA_MOE_SMALL=0 experts of small steps through the sorted GEMM path too. */
static void read_switches(struct cu_be *c, const struct llm_ea_info *eng)
{
    const char *gv = getenv("LLM_CUDA_GEMV"), *gg = getenv("LLM_CUDA_GRAPHS");
    const char *ga = getenv("LLM_CUDA_GATED"), *gp = getenv("LLM_CUDA_PDL");
    const char *gs = getenv("LLM_CUDA_GEMV_SPLIT"), *gm = getenv("LLM_CUDA_MOE_SMALL");
    const char *qv = getenv("LLM_CUDA_QGEMV"), *qs = getenv("LLM_CUDA_QGEMV_SHAPE");
    c->gemv_max_m = c->dt == LLM_DTYPE_F32 ? 0 : gv ? atoi(gv) : DEFAULT_GEMV_MAX_M;
    if (c->gemv_max_m > 8) c->gemv_max_m = 8;
    c->qgemv_max_m = c->dt == LLM_DTYPE_F32 ? 0 : qv ? atoi(qv) : DEFAULT_QGEMV_MAX_M;
    if (c->qgemv_max_m > 8) c->qgemv_max_m = 8;
    const char *q4 = getenv("LLM_CUDA_Q4GEMM");
    c->q4gemm_max_m = q4 ? atoi(q4) : DEFAULT_Q4GEMM_MAX_M;
    c->q4gemm_big_m = q4 ? atoi(q4) : DEFAULT_Q4GEMM_BIG_M;
    /* 8-bit activations: the GEMV in every compute dtype (fp32 sums of exact products) */
    c->w8_max_m = qv ? atoi(qv) : DEFAULT_QGEMV_MAX_M;
    if (c->w8_max_m > 8) c->w8_max_m = 8;
    if (c->w8_max_m < 0) c->w8_max_m = 0;
    /* W4A8: products of more rows than this on the fp8 tensor cores (cuBLASLt, block
     * scales); fewer on the int4 kernels (docs/CUDA.md "W4A8") */
    const char *a8 = getenv("LLM_CUDA_W4A8_LT");
    c->a8_lt_m = a8 ? atoi(a8) : DEFAULT_W4A8_LT_M;
    /* LLM_CUDA_W4A8_WG=<rows>: the fused kernel past that many rows (and up to a8_lt_m);
     * "off" or < 0: never */
    const char *a8w = getenv("LLM_CUDA_W4A8_WG");
    c->a8_wg_m = !a8w                                   ? DEFAULT_W4A8_WG_M
                 : !strcmp(a8w, "off") || atoi(a8w) < 0 ? INT_MAX
                                                        : atoi(a8w);
    llm_k_set_qgemv_shape(qs ? atoi(qs) : 0);
    const char *q4s = getenv("LLM_CUDA_Q4GEMM_SHAPE");
    llm_k_set_q4gemm_shape(q4s ? atoi(q4s) : DEFAULT_Q4GEMM_SHAPE);
    const char *q4b = getenv("LLM_CUDA_Q4WG_BN"); /* its x rows a block past 128 rows */
    llm_k_set_q4wg_bn(q4b ? atoi(q4b) : 256);
    const char *q4x = getenv("LLM_CUDA_Q4_SX"); /* 0: its 16-bit scaling off */
    c->q4_no_sx = q4x && !strcmp(q4x, "0");
    /* the fused W4A8 kernel's x rows a block (64 or 128) */
    const char *a8b = getenv("LLM_CUDA_W4A8_BN");
    llm_k_set_q4gemm8_bn(a8b ? atoi(a8b) : 0);
    c->use_graphs = gg && strcmp(gg, "0"); /* measured slower than eager + PDL (docs/CUDA.md) */
    c->fused_gate = !(ga && !strcmp(ga, "0"));
    c->moe_no_small = gm && !strcmp(gm, "0");
    const char *mg = getenv("LLM_CUDA_MOE_GROUPED"); /* 0: a cuBLAS product per expert */
    c->moe_grouped = c->dt == LLM_DTYPE_F32 || (mg && !strcmp(mg, "0")) ? 0
                     : mg && !strcmp(mg, "1")                           ? 1
                                                                        : 2;
    const char *md = getenv("LLM_CUDA_MOEQ_DENSE"); /* quantized experts: step_moe */
    c->moeq_dense = md && !strcmp(md, "0") ? 0 : md && !strcmp(md, "1") ? 1 : 2;
    const char *nq = getenv("LLM_CUDA_NORM_Q8"), *nf = getenv("LLM_CUDA_NORM_FUSE");
    c->q8_no_fuse = nq && !strcmp(nq, "0");
    c->norm_no_fuse = nf && !strcmp(nf, "0");
    c->norm_dense = nf ? !strcmp(nf, "2") : DEFAULT_NORM_FUSE_DENSE;
    const char *aq = getenv("LLM_CUDA_ATTN_Q8");
    c->attn_no_q8 = aq && !strcmp(aq, "0");
    const char *ae = getenv("LLM_CUDA_ATTN_EARLY"); /* 0: rows listed, block ids read late */
    c->attn_late = ae && !strcmp(ae, "0");
    llm_k_attn_rows_set_early(!c->attn_late);
    /* the tensor-core decode attention's warps a block (4, 2) and stages (2, 3, 4) */
    const char *aw = getenv("LLM_CUDA_ATTN_WARPS"), *as = getenv("LLM_CUDA_ATTN_STAGES");
    if (aw) llm_k_attn_rows_set_warps(atoi(aw));
    if (as) llm_k_attn_rows_set_stages(atoi(as));
    /* 0: decode rows over a 16-bit cache on the row kernel, not the tensor-core one */
    const char *a16 = getenv("LLM_CUDA_ATTN_TC16");
    llm_k_attn_rows_set_tc16(!(a16 && !strcmp(a16, "0")));
    const char *tw = getenv("LLM_CUDA_T2_WSTAGE"); /* 0: x staged by the whole block */
    llm_k_set_t2_wstage(!(tw && !strcmp(tw, "0")));
    const char *ak = getenv("LLM_CUDA_ACT_KEEP");
    c->act_keep = ak && !strcmp(ak, "1");
    /* LLM_CUDA_PROFILE_STEPS=FIRST[,COUNT]: the profiler (ncu --profile-from-start off)
     * records forward steps FIRST .. FIRST + COUNT - 1 (counted from 0; COUNT 1) and their
     * sampling */
    const char *ps = getenv("LLM_CUDA_PROFILE_STEPS");
    c->prof_first = -1;
    if (ps && *ps) {
        char *e;
        c->prof_first = strtol(ps, &e, 10);
        c->prof_count = *e == ',' ? strtol(e + 1, NULL, 10) : 1;
        if (c->prof_count < 1) c->prof_count = 1;
    }
    llm_k_set_pdl(!(gp && !strcmp(gp, "0")));
    llm_k_set_gemv_split(gs ? atoi(gs) : 0);
    cu_default_buckets(c);
    if (eng && eng->lim.n_graph > 0) { /* the engine's sizes, graphs on unless LLM_CUDA_GRAPHS=0 */
        c->n_buckets = eng->lim.n_graph;
        memcpy(c->buckets, eng->lim.graph_sizes, sizeof(int) * (size_t)eng->lim.n_graph);
        c->use_graphs = !(gg && !strcmp(gg, "0"));
    }
}

static void set_limits(struct cu_be *c, const struct llm_backend_opts *o,
                       const struct llm_ea_info *eng)
{
    const struct llm_model_desc *d = c->d;
    struct llm_backend *be = &c->pub;
    be->block_size = o->block_size > 0 ? o->block_size : eng ? eng->lim.block_size : 32;
    be->max_batch_tokens = o->max_batch_tokens > 0 ? o->max_batch_tokens
                           : eng                   ? eng->lim.max_tokens
                                                   : DEFAULT_MAX_BATCH_TOKENS;
    be->max_seqs = o->max_seqs > 0 ? o->max_seqs : eng ? eng->lim.max_batch : DEFAULT_MAX_SEQS;
    be->max_seq_len = o->max_seq_len > 0 ? o->max_seq_len
                      : eng              ? eng->lim.max_seq_len
                                         : (int)(d->max_pos > 0 ? d->max_pos : 4096);
    if (d->pos == LLM_POS_LEARNED && be->max_seq_len > d->max_pos)
        be->max_seq_len = (int)d->max_pos;
    be->vocab = d->vocab_size;
    if (be->max_seqs > be->max_batch_tokens) be->max_seqs = be->max_batch_tokens;
}

/* The graph steps' activation buffers, for max_batch_tokens rows. */
static int make_workspace(struct cu_be *c)
{
    const struct llm_model_desc *d = c->d;
    uint64_t T = (uint64_t)c->pub.max_batch_tokens, es = c->es, H = (uint64_t)d->hidden;
    int used[LLM_BUF_COUNT] = {0};
    const struct llm_step *lists[3] = {c->g.pre, c->g.layer, c->g.post};
    const int counts[3] = {c->g.n_pre, c->g.n_layer, c->g.n_post};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < counts[k]; i++) {
            const struct llm_step *s = &lists[k][i];
            if (s->out < LLM_BUF_COUNT) used[s->out] = 1;
            if (s->in < LLM_BUF_COUNT) used[s->in] = 1;
            if (s->add < LLM_BUF_COUNT) used[s->add] = 1;
        }
    /* project_in: the embeddings (embed_dim <= hidden wide) and the positions pass through AO */
    if (d->embed_dim > 0 && d->embed_dim != d->hidden) used[LLM_BUF_AO] = 1;
    const struct {
        int buf;
        uint64_t width;
        const char *what;
    } ws[] = {
        {LLM_BUF_X, H, "residual"},
        {LLM_BUF_XN, H, "normed activations"},
        {LLM_BUF_XN2, H, "second norm"},
        {LLM_BUF_QKV, (uint64_t)c->qkv_w, "qkv"},
        {LLM_BUF_ATT, (uint64_t)d->n_heads * (uint64_t)d->head_dim, "attention output"},
        {LLM_BUF_AO, H, "sub-block output"},
        {LLM_BUF_H, (uint64_t)c->mlp_w, "mlp activations"},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof ws / sizeof ws[0] && !rc; i++)
        if (used[ws[i].buf]) rc = dalloc(c, &c->buf[ws[i].buf], T * ws[i].width * es, ws[i].what);
    if (rc) return rc;
    c->ws_rows = 8 * c->n_sm;
    c->attn_blocks = llm_k_attn_rows_blocks(d->n_heads, d->n_kv_heads);
    if ((rc = dalloc(c, (void **)&c->attn_ws,
                     (uint64_t)c->ws_rows * d->n_heads * (d->head_dim + 1) * sizeof(float),
                     "attention splits")) ||
        (rc = dalloc(c, (void **)&c->attn_cnt, sizeof(int) * 4 * (uint64_t)c->n_sm,
                     "attention counters")))
        return rc;
    CK(cudaMemsetAsync(c->attn_cnt, 0, sizeof(int) * 4 * (size_t)c->n_sm, c->st));
    if (d->n_experts > 0) {
        uint64_t E = (uint64_t)d->n_experts, S = T * (uint64_t)d->n_experts_per_tok;
        uint64_t I = (uint64_t)d->intermediate;
        if ((rc = dalloc(c, (void **)&c->moe_logits, T * E * 4, "router logits")) ||
            (rc = dalloc(c, (void **)&c->moe_w, S * 4, "expert weights")) ||
            (rc = dalloc(c, (void **)&c->moe_chosen, S * 4, "chosen experts")) ||
            (rc = dalloc(c, (void **)&c->moe_off, (E + 1) * 4, "expert offsets")) ||
            (rc = dalloc(c, (void **)&c->moe_rows, S * 4, "expert rows")) ||
            (rc = dalloc(c, (void **)&c->moe_where, S * 4, "slot positions")) ||
            (rc = dalloc(c, (void **)&c->moe_done, LLM_K_MOE_SMALL * 4, "router counters")) ||
            (rc = dalloc(c, &c->moe_h, S * 2 * I * es, "expert activations")) ||
            (rc = dalloc(c, &c->moe_y, S * H * es, "expert outputs")))
            return rc;
        CK(cudaMemsetAsync(c->moe_done, 0, LLM_K_MOE_SMALL * 4, c->st));
        int loops = !c->moe_grouped || c->moe_quant ||
                    (c->moe_grouped == 2 && E <= CU_MOE_LOOP_EXPERTS && S >= CU_MOE_LOOP_ROWS * E);
        if (loops) {
            if ((rc = dalloc(c, &c->moe_x, S * H * es, "expert inputs"))) return rc;
            if (!(c->h_moe_off = malloc((E + 1) * sizeof(int32_t))))
                return llm_err_set(LLM_ENOMEM, "cuda backend: out of memory");
        }
        /* quantized experts dequantized for the grouped kernel: with many experts (or
         * LLM_CUDA_MOEQ_DENSE=1), where the per-expert loop is launch-bound */
        const int deq = c->moe_deq_bytes &&
                        (c->moeq_dense == 1 || (c->moeq_dense == 2 && E > CU_MOE_LOOP_EXPERTS));
        if ((c->moe_grouped || deq) &&
            (rc = dalloc(c, (void **)&c->moe_tiles, (1 + 2 * (S + E)) * 4, "expert row tiles")))
            return rc;
        if (deq && (rc = dalloc(c, &c->moe_deq, c->moe_deq_bytes, "dequantized experts")))
            return rc;
    }
    if (c->q_dense_bytes && (rc = dalloc(c, &c->q_dense, c->q_dense_bytes, "dequantized weight")))
        return rc;
    if (c->q_xs_elems &&
        (rc = dalloc(c, &c->q_xs, T * c->q_xs_elems * es, "pre-quant scaled activations")))
        return rc;
    if (c->perm_elems &&
        (rc = dalloc(c, &c->perm_x, T * c->perm_elems * es, "inputs in stored order")))
        return rc;
    if (c->q8_k) { /* 8-bit activations: rows, their scales, and the product before its
                    * scales (Q8_ACC_BYTES, at least 16 rows) */
        uint64_t acc = T * c->q8_n * 4;
        if (acc > Q8_ACC_BYTES) acc = Q8_ACC_BYTES;
        if (acc < 16 * c->q8_n * 4) acc = 16 * c->q8_n * 4;
        c->q8_acc_bytes = acc;
        if ((rc = dalloc(c, &c->q8_xq, T * c->q8_k, "8-bit activations")) ||
            (rc = dalloc(c, (void **)&c->q8_xs, T * 4, "activation scales")) ||
            (rc = dalloc(c, &c->q8_acc, acc, "8-bit products")))
            return rc;
    }
    if (c->a8_k) { /* W4A8: the rows' e4m3 codes (8 rows more: cuBLASLt takes multiples
                    * of 8), ones as their block scales, and a product's padded rows for
                    * up to 1024 rows (qlinear_w4a8) */
        const uint64_t nb = (T + 8) * ((c->a8_k + 127) / 128);
        float *ones = malloc(sizeof(float) * (size_t)nb);
        if (!ones) return llm_err_set(LLM_ENOMEM, "cuda backend: out of memory");
        for (uint64_t i = 0; i < nb; i++)
            ones[i] = 1.0f;
        /* LLM_CUDA_W4A8_PAD=0: none (the rows past a multiple of 8 on the int4 kernels) */
        const char *pe = getenv("LLM_CUDA_W4A8_PAD");
        c->a8_y_bytes = pe && !strcmp(pe, "0") ? 0 : ((T < 1024 ? T : 1024) + 8) * c->a8_n * c->es;
        rc = dalloc(c, &c->a8_xq, (T + 8) * c->a8_k, "fp8 activations");
        if (!rc && c->a8_y_bytes) rc = dalloc(c, &c->a8_y, c->a8_y_bytes, "padded products");
        if (!rc) rc = dalloc(c, (void **)&c->a8_ones, sizeof(float) * nb, "block scales");
        if (!rc) rc = dalloc(c, (void **)&c->a8_xs, sizeof(float) * nb, "fp8 group sums");
        cudaError_t er =
            rc ? cudaSuccess
               : cudaMemcpy(c->a8_ones, ones, sizeof(float) * (size_t)nb, cudaMemcpyHostToDevice);
        free(ones);
        if (rc) return rc;
        if (er != cudaSuccess) return cu_fail(CU_LIB_RT, er, "cudaMemcpy", __FILE__, __LINE__);
    }
    if ((rc = cu_grow_out(c, c->pub.max_seqs))) return rc;
    return cu_grow_meta(c, 8 * T + 4096);
}

static int make_kv_pool(struct cu_be *c, const struct llm_backend_opts *o)
{
    const struct llm_model_desc *d = c->d;
    struct llm_backend *be = &c->pub;
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
    c->layer_elems = 2 * (int64_t)d->n_kv_heads * be->block_size * d->head_dim;
    c->blk_elems = c->layer_elems * d->n_layers;
    uint64_t per_block = (uint64_t)c->blk_elems * c->kv_es;
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
    int rc = dalloc(c, &c->kv, be->kv_bytes, "kv pool");
    if (rc) return rc;
    CK(cudaMemsetAsync(c->kv, 0, be->kv_bytes, c->st));
    CK(cudaStreamSynchronize(c->st));
    return 0;
}

/* A quantized KV cache: its codes and each layer's two scales (host). */
static int kv_codes(struct cu_be *c, struct llm_model *m)
{
    c->kv_es = c->es;
    int kv = m->quant.kv_algo;
    if (kv == LLM_KV_QUANT_NONE) return 0;
    if (kv != LLM_KV_QUANT_FP8 && kv != LLM_KV_QUANT_INT8)
        return llm_err_set(LLM_EUNSUPPORTED, "cuda backend: kv cache quantization %d", kv);
    if (c->d->head_dim % 16)
        return llm_err_set(LLM_EUNSUPPORTED, "cuda backend: an 8-bit KV cache needs a head "
                           "dimension that is a multiple of 16 (%d)", c->d->head_dim);
    c->kv_q = kv == LLM_KV_QUANT_FP8 ? LLM_K_KV_FP8 : LLM_K_KV_INT8;
    c->kv_es = 1;
    if (!(c->kv_scale = malloc(sizeof(float) * 2 * (size_t)c->d->n_layers)))
        return llm_err_set(LLM_ENOMEM, "cuda backend: out of memory");
    return llm_model_kv_scales(m, c->kv_scale);
}

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
    read_switches(c, eng);
    if (eng && eng->n_gemm) {
        uint64_t v = (uint64_t)cublasLtGetVersion();
        if (eng->gemm_measured && eng->cublaslt_version != v)
            llm_info("'%s': GEMM choices were measured with cuBLASLt %llu, this is %llu: using "
                     "its heuristic", m->path, (unsigned long long)eng->cublaslt_version,
                     (unsigned long long)v);
        else if ((rc = cu_gemm_set_choices(c->gemm, eng->gemm, eng->n_gemm)))
            return rc;
    }
    c->qkv_w = (d->n_heads + 2 * d->n_kv_heads) * d->head_dim;
    c->mlp_w = (int)(d->gated_mlp ? 2 * d->intermediate : d->intermediate);
    set_limits(c, o, eng);
    c->rope = d->rope;
    if (d->pos == LLM_POS_ROPE) {
        if (c->rope.rot_dims == 0) c->rope.rot_dims = d->head_dim;
        if ((rc = make_rope(c))) return rc;
    }
    if (d->pos == LLM_POS_ALIBI && (rc = make_alibi(c))) return rc;
    if ((rc = kv_codes(c, m))) return rc;
    if ((rc = upload_weights(c, m)) || (rc = make_workspace(c)) || (rc = make_kv_pool(c, o)) ||
        (rc = cu_stats_init(c, m, o)))
        return rc;
    llm_info("cuda: %s, %d SMs; weights %.2f GiB in %s; kv pool %d blocks of %d tokens "
             "(%lld tokens, %.2f GiB); batch <= %d tokens, %d sequences",
             be->device_name, c->n_sm, (double)c->weight_bytes / (1 << 30),
             llm_dtype_name(c->dt), be->n_blocks, be->block_size,
             (long long)be->n_blocks * be->block_size, (double)be->kv_bytes / (1 << 30),
             be->max_batch_tokens, be->max_seqs);
    return 0;
}

static void cu_destroy(struct llm_backend *be);
static const struct llm_backend_ops cu_ops_table;

int llm_backend_cuda_create(struct llm_backend **out, const struct llm_model *m,
                            const struct llm_backend_opts *o)
{
    *out = NULL;
    struct llm_backend_opts defaults;
    if (!o) {
        llm_backend_opts_init(&defaults);
        o = &defaults;
    }
    int rc = llm_model_supported(m, &llm_cuda_caps);
    if (rc) return rc;
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
    int dt = o->compute_dtype;
    struct llm_ea_info eng;
    int is_eng = m->meta && llm_ea_present(m->meta);
    if (is_eng) { /* an engine fixes the compute dtype its weights are in */
        if ((rc = llm_ea_info_from_meta(m->meta, m->path, &eng))) return rc;
        if (dt != eng.compute_dtype)
            llm_debug("cuda backend: '%s' is an engine in %s", m->path,
                      llm_dtype_name(eng.compute_dtype));
        dt = eng.compute_dtype;
    }
    if (m->desc.n_experts > 0 && (m->desc.mlp_bias || !m->desc.gated_mlp))
        rc = llm_err_set(LLM_EUNSUPPORTED, "cuda backend: experts with biases or without a gate "
                         "(--device cpu runs them)");
    else if (m->desc.n_experts > 1024 || m->desc.n_experts_per_tok > 8)
        rc = llm_err_set(LLM_EUNSUPPORTED, "cuda backend: %d experts, %d per token (up to 1024 "
                         "experts, 8 per token)", m->desc.n_experts, m->desc.n_experts_per_tok);
    else if (m->desc.embed_dim > m->desc.hidden)
        rc = llm_err_set(LLM_EUNSUPPORTED,
                         "cuda backend: embeddings wider than the hidden size (%lld > %lld)",
                         (long long)m->desc.embed_dim, (long long)m->desc.hidden);
    else if (dt != LLM_DTYPE_F16 && dt != LLM_DTYPE_BF16 && dt != LLM_DTYPE_F32)
        rc = llm_err_set(LLM_EUNSUPPORTED, "cuda backend: compute dtype %s (f16, bf16 or f32)",
                         llm_dtype_name(dt));
    struct cu_be *c = rc ? NULL : calloc(1, sizeof *c);
    if (!rc && !c) rc = llm_err_set(LLM_ENOMEM, "cuda backend: out of memory");
    if (!rc) {
        c->pub.ops = &cu_ops_table;
        c->pub.model = m;
        c->pub.priv = c;
        c->d = &m->desc;
        c->dt = dt;
        c->es = dt == LLM_DTYPE_F32 ? 4 : 2;
        c->n_out = -1;
        c->comm = o ? o->comm : NULL;
        struct llm_graph_opts go = {0, o && o->reduce_steps};
        if (!c->comm && (llm_part_tp(c->d) > 1 || llm_part_pp(c->d) > 1))
            rc = llm_err_set(LLM_EINVAL, "'%s' is one rank's part: run every rank (mpirun)",
                             m->path ? m->path : "model");
        else if (c->comm && (!c->comm->ops->name || strcmp(c->comm->ops->name, "nccl")))
            rc = llm_err_set(LLM_EUNSUPPORTED, "cuda backend: ranks talk through NCCL, not %s",
                             c->comm->ops->name);
        else if (llm_part_pp(c->d) > 1)
            rc = llm_err_set(LLM_EUNSUPPORTED, "cuda backend: pipeline stages run on the CPU "
                             "backend only (--device cpu)");
        if (!rc) rc = llm_graph_build(&c->g, c->d, &go);
        if (!rc) rc = create_inner(c, (struct llm_model *)m, o, is_eng ? &eng : NULL);
        if (rc) {
            cu_destroy(&c->pub);
            c = NULL;
        }
    }
    if (is_eng) llm_ea_info_free(&eng);
    if (rc) return rc;
    *out = &c->pub;
    return 0;
}

static void cu_destroy(struct llm_backend *be)
{
    if (!be) return;
    struct cu_be *c = cu_of(be);
    if (c->st) cudaStreamSynchronize(c->st);
    cu_drop_graphs(c);
    cu_stats_free(c);
    for (int i = 0; i < c->n_allocs; i++)
        cudaFree(c->allocs[i]);
    free(c->allocs);
    cudaFree(c->buf[LLM_BUF_FIN]);
    cudaFree(c->buf[LLM_BUF_FIN2]);
    cudaFree(c->buf[LLM_BUF_LOGITS]);
    cudaFree(c->gather);
    cudaFree(c->d_meta);
    if (c->h_meta) cudaFreeHost(c->h_meta);
    if (c->h_dyn) cudaFreeHost(c->h_dyn);
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
    for (int l = 0; c->xw && l < c->d->n_layers; l++)
        free(c->xw[l]);
    free(c->xw);
    free(c->xq_tab);
    free(c->lw);
    free(c->h_moe_off);
    free(c->kv_scale);
    free(c->sample_scratch);
    free(c);
}

/* ---- block copies and the device clock ------------------------------------------- */

static int cu_copy_blocks(struct llm_backend *be, const int32_t *src, const int32_t *dst, int n)
{
    struct cu_be *c = cu_of(be);
    if (n <= 0) return 0;
    for (int i = 0; i < n; i++)
        if (src[i] < 0 || src[i] >= be->n_blocks || dst[i] < 0 || dst[i] >= be->n_blocks)
            return llm_err_set(LLM_EINVAL, "copy_blocks: pair %d (%d -> %d) outside the pool of %d "
                               "blocks", i, src[i], dst[i], be->n_blocks);
    int rc = cu_grow_meta(c, 2 * (size_t)n);
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
                             c->blk_elems * (int64_t)c->kv_es, c->st));
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
    .stats_flush = cu_stats_flush,
    .destroy = cu_destroy,
};
