/* hfquant.c - pre-quantized Hugging Face checkpoints imported, not
 * re-quantized (llm/hf.h: struct llm_hfq).
 *
 * Design: config.json's quantization_config names a scheme; it is mapped
 * onto the formats llm-quantize writes (formats/artifact.md) only where they
 * hold the checkpoint's values exactly, and refused in one line naming the
 * scheme otherwise.  The conversion plan (hfmap.c) asks here for each
 * linear weight's quantized sources and checks their shapes and dtypes up
 * front; the values are turned into the artifact's layout one weight at a
 * time when it is written:
 *   FP8     the e4m3 bytes as they are; a fused qkv whose parts carry
 *           different per-tensor scales gets a scale per output row (each
 *           part's repeated), which is exact, never a requantization; the
 *           parts' static input scales must agree (one per fused tensor).
 *   AWQ     GEMM qweight [in, out / 8]: 8 output columns per int32, nibble j
 *           holding column 8 c + {0, 2, 4, 6, 1, 3, 5, 7}[j]; qzeros packed
 *           the same way; w = scales * (q - zero).  Stored as int4 codes
 *           q - 8 and zeros zero - 8 (the same difference).
 *   GPTQ    qweight [in * bits / 32, out] (inputs packed, low bits first),
 *           qzeros [in / g, out * bits / 32] (outputs packed; zero - 1 in the
 *           "gptq" checkpoint format), g_idx [in].  4 bits: int4 groups as
 *           AWQ (group_size -1: one group of all a weight's inputs, scales
 *           [1, out], the section's group_size -1); 8 bits (one group per
 *           channel): int8 codes q - zero with
 *           per_channel_scale, when every code fits.  Act-order (a g_idx
 *           other than i / g): the inputs sorted by group, stably, give a
 *           permutation perm; column j of the stored weight is input
 *           perm[j], so each group's columns are contiguous, and perm is
 *           written as "<stem>.perm" (y = W . x[perm]); the section says
 *           act_order.  Groups of uneven size are refused.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "llm/artifact.h"
#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/hf.h"
#include "llm/safetensors.h"
#include "llm/weight.h"
#include "../core/text_internal.h"
#include "hfquant.h"

/* ---- the scheme --------------------------------------------------------------------- */

static const char *jstr(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int jint(const json_t *o, const char *k, int def)
{
    const json_t *v = json_object_get(o, k);
    if (json_is_integer(v)) return (int)json_integer_value(v);
    if (json_is_boolean(v)) return json_is_true(v);
    return def;
}

static int refuse(const char *src, const char *what, const char *why)
{
    return llm_err_set(LLM_EUNSUPPORTED, "'%s': pre-quantized checkpoint (%s) not imported: %s",
                       src, what, why);
}

/* One compressed-tensors config group: FP8 weights per tensor or channel,
 * inputs static per tensor or dynamic per token (*stat). */
static int ct_group(const json_t *g, const char *src, const char *gname, int *stat)
{
    const json_t *w = json_object_get(g, "weights"), *a = json_object_get(g, "input_activations");
    char what[160], b1[40], b2[24], b3[24];
    const char *wt = jstr(w, "type"), *ws = jstr(w, "strategy");
    /* the config's strings quoted: a message stays one line whatever they hold */
    snprintf(what, sizeof what, "compressed-tensors group '%s': weights %s%d %s",
             llm_quote(gname, b1, sizeof b1), wt ? llm_quote(wt, b2, sizeof b2) : "?",
             jint(w, "num_bits", 0), ws ? llm_quote(ws, b3, sizeof b3) : "?");
    if (!json_is_object(w)) return refuse(src, what, "no weights scheme");
    if (!wt || strcmp(wt, "float") || jint(w, "num_bits", 0) != 8)
        return refuse(src, what, "only FP8 (float, 8 bits) weights are imported from "
                      "compressed-tensors");
    if (!ws || (strcmp(ws, "tensor") && strcmp(ws, "channel")))
        return refuse(src, what, !ws || strcmp(ws, "block")
                                     ? "fp8 weights take one scale per tensor or per channel"
                                     : "compressed-tensors' block-wise FP8 is not imported "
                                       "(transformers' fp8 with weight_block_size is, expanded "
                                       "to bf16)");
    if (!jint(w, "symmetric", 1) || jint(w, "dynamic", 0) > 0)
        return refuse(src, what, "asymmetric or dynamic weight scales");
    if (!json_is_object(a))
        return refuse(src, what, "FP8 weight-only (no input_activations): the fp8 formats "
                      "quantize their inputs");
    const char *as = jstr(a, "strategy"), *at = jstr(a, "type");
    int dyn = jint(a, "dynamic", 0) != 0; /* true or "local" */
    if (json_is_string(json_object_get(a, "dynamic"))) dyn = 2;
    snprintf(what, sizeof what, "compressed-tensors group '%s': inputs %s%d %s %s",
             llm_quote(gname, b1, sizeof b1), at ? llm_quote(at, b2, sizeof b2) : "?",
             jint(a, "num_bits", 0), as ? llm_quote(as, b3, sizeof b3) : "?",
             dyn ? "dynamic" : "static");
    if (!at || strcmp(at, "float") || jint(a, "num_bits", 0) != 8 || !jint(a, "symmetric", 1))
        return refuse(src, what, "inputs must be symmetric fp8 e4m3");
    if (dyn == 1 && as && !strcmp(as, "token"))
        *stat = 0;
    else if (!dyn && as && !strcmp(as, "tensor"))
        *stat = 1;
    else
        return refuse(src, what, dyn && as && !strcmp(as, "tensor")
                                     ? "dynamic per-tensor activations (ours: dynamic per "
                                       "token or static per tensor)"
                                     : "activations must be static per tensor or dynamic per "
                                       "token");
    if (json_object_get(g, "output_activations") &&
        !json_is_null(json_object_get(g, "output_activations")))
        return refuse(src, what, "output activations are quantized");
    return 0;
}

static int scheme_ct(const json_t *raw, const char *src, struct llm_hfq *s)
{
    const char *fmt = jstr(raw, "format");
    if (fmt && strcmp(fmt, "float-quantized") && strcmp(fmt, "naive-quantized")) {
        char what[96], b[48];
        snprintf(what, sizeof what, "compressed-tensors format '%s'", llm_quote(fmt, b, sizeof b));
        return refuse(src, what, "only FP8 \"float-quantized\" and \"naive-quantized\" "
                      "checkpoints are imported");
    }
    const json_t *kv = json_object_get(raw, "kv_cache_scheme");
    if (kv && !json_is_null(kv))
        return refuse(src, "compressed-tensors kv_cache_scheme", "KV cache scales are not "
                      "imported");
    const json_t *groups = json_object_get(raw, "config_groups");
    if (!json_is_object(groups) || !json_object_size(groups))
        return refuse(src, "compressed-tensors", "no config_groups");
    const char *k;
    const json_t *g;
    int stat = -1;
    json_object_foreach((json_t *)groups, k, g)
    {
        int st = 0;
        const char *gf = jstr(g, "format");
        if (gf && strcmp(gf, "float-quantized") && strcmp(gf, "naive-quantized")) {
            char what[96], b1[24], b2[40];
            snprintf(what, sizeof what, "compressed-tensors group '%s' format '%s'",
                     llm_quote(k, b1, sizeof b1), llm_quote(gf, b2, sizeof b2));
            return refuse(src, what, "only FP8 float-quantized groups are imported");
        }
        int rc = ct_group(g, src, k, &st);
        if (rc) return rc;
        if (stat >= 0 && st != stat)
            return refuse(src, "compressed-tensors", "config groups mix static and dynamic "
                          "activations, which one artifact section cannot");
        stat = st;
    }
    s->kind = LLM_HFQ_FP8;
    s->act_static = stat;
    snprintf(s->scheme, sizeof s->scheme, "compressed-tensors FP8, %s activations",
             stat ? "static per-tensor" : "dynamic per-token");
    return 0;
}

static int scheme_modelopt(const json_t *raw, const char *src, struct llm_hfq *s)
{
    const json_t *q = json_object_get(raw, "quantization");
    if (!json_is_object(q)) q = raw; /* hf_quant_config.json's form, or flat */
    const char *algo = jstr(q, "quant_algo");
    char what[96], b[48];
    snprintf(what, sizeof what, "ModelOpt quant_algo '%s'", algo ? llm_quote(algo, b, sizeof b)
                                                                 : "none");
    if (!algo || strcmp(algo, "FP8"))
        return refuse(src, what, "only ModelOpt's FP8 (per-tensor weights and static inputs) "
                      "is imported");
    const char *kv = jstr(q, "kv_cache_quant_algo");
    if (kv) return refuse(src, "ModelOpt kv_cache_quant_algo", "KV cache scales are not imported");
    s->kind = LLM_HFQ_FP8;
    s->act_static = 1;
    snprintf(s->scheme, sizeof s->scheme, "ModelOpt FP8");
    return 0;
}

/* group_size as written (-1: one group per channel; 0 when absent). */
static int group_of(const struct llm_hf_quant *hq)
{
    int g = jint(hq->raw, "group_size", 0);
    if (!g) g = jint(hq->raw, "q_group_size", 0);
    return g;
}

static int scheme_awq(const struct llm_hf_quant *hq0, const char *src, struct llm_hfq *s)
{
    struct llm_hf_quant h = *hq0, *hq = &h;
    hq->group_size = group_of(hq0);
    char what[96], b[40];
    snprintf(what, sizeof what, "AutoAWQ %s, %d bits, group %d",
             hq->fmt[0] ? llm_quote(hq->fmt, b, sizeof b) : "gemm", hq->bits, hq->group_size);
    if (hq->fmt[0] && strcasecmp(hq->fmt, "gemm"))
        return refuse(src, what, "only the GEMM layout is imported");
    if (hq->bits != 4) return refuse(src, what, "only 4-bit AWQ is imported");
    if (hq->group_size <= 0) return refuse(src, what, "AWQ needs a positive group_size");
    if (hq->zero_point == 0) return refuse(src, what, "AWQ without zero points");
    s->kind = LLM_HFQ_AWQ;
    s->bits = 4;
    s->group_size = hq->group_size;
    snprintf(s->scheme, sizeof s->scheme, "%s", what);
    return 0;
}

static int scheme_gptq(const struct llm_hf_quant *hq0, const char *src, struct llm_hfq *s)
{
    struct llm_hf_quant h = *hq0, *hq = &h;
    hq->group_size = group_of(hq0);
    const char *cf = jstr(hq->raw, "checkpoint_format");
    if (!cf) cf = jstr(hq->raw, "format");
    char what[128], b[48];
    snprintf(what, sizeof what, "GPTQ %d bits, group %d%s, format %s", hq->bits, hq->group_size,
             hq->desc_act > 0 ? ", act-order" : "", cf ? llm_quote(cf, b, sizeof b) : "gptq");
    if (cf && strcmp(cf, "gptq") && strcmp(cf, "gptq_v2"))
        return refuse(src, what, "only the gptq and gptq_v2 checkpoint formats are imported");
    if (hq->bits != 4 && hq->bits != 8) return refuse(src, what, "only 4 and 8 bits are imported");
    if (hq->bits == 4 && hq->group_size <= 0 && hq->group_size != -1)
        return refuse(src, what,
                      "4-bit GPTQ needs a positive group_size, or -1 (one group per "
                      "channel)");
    if (hq->bits == 8 && hq->group_size != -1)
        return refuse(src, what, "8-bit weights take one scale per channel (group_size -1)");
    s->kind = LLM_HFQ_GPTQ;
    s->bits = hq->bits;
    s->group_size = hq->group_size;
    s->zero_offset = !cf || strcmp(cf, "gptq_v2");
    snprintf(s->scheme, sizeof s->scheme, "%s", what);
    return 0;
}

int llm_hfq_scheme(const struct llm_hf_quant *q, const char *src, struct llm_hfq *s)
{
    memset(s, 0, sizeof *s);
    llm_quant_init(&s->quant);
    if (!src) src = "config.json";
    if (!q || !q->method[0]) return 0;
    int rc;
    if (!strcmp(q->method, "compressed-tensors"))
        rc = scheme_ct(q->raw, src, s);
    else if (!strcmp(q->method, "modelopt"))
        rc = scheme_modelopt(q->raw, src, s);
    else if (!strcmp(q->method, "awq"))
        rc = scheme_awq(q, src, s);
    else if (!strcmp(q->method, "gptq"))
        rc = scheme_gptq(q, src, s);
    else if (!strcmp(q->method, "mxfp4")) {
        /* GPT-OSS: the expert stacks in MXFP4, expanded to bf16 exactly when
         * converted; the artifact is not a quantized one */
        s->mxfp4 = 1;
        snprintf(s->scheme, sizeof s->scheme, "MXFP4 experts (expanded to bf16)");
        return 0;
    } else if (!strcmp(q->method, "fp8")) {
        /* transformers' FineGrainedFP8 (DeepSeek V3 / R1, Kimi K2, Qwen3-FP8): block
         * scales have no exact form in the artifact's fp8 formats (one scale per
         * tensor or channel), so the weights are expanded to bf16 when converted,
         * as transformers' dequantize does; activations are not quantized */
        const json_t *bs = json_object_get(q->raw, "weight_block_size");
        const char *fmt = jstr(q->raw, "fmt");
        s->fp8_block[0] = s->fp8_block[1] = 128;
        if (bs && !json_is_null(bs)) {
            const json_t *a = json_array_get(bs, 0), *b = json_array_get(bs, 1);
            if (!json_is_array(bs) || json_array_size(bs) != 2 || !json_is_integer(a) ||
                !json_is_integer(b) || json_integer_value(a) < 1 || json_integer_value(b) < 1 ||
                json_integer_value(a) > 65536 || json_integer_value(b) > 65536)
                return llm_err_set(LLM_EFORMAT, "'%s': quantization_config.weight_block_size "
                                   "must be two positive integers", src);
            s->fp8_block[0] = (int)json_integer_value(a);
            s->fp8_block[1] = (int)json_integer_value(b);
        }
        if (fmt && strcmp(fmt, "e4m3") && strcmp(fmt, "float8_e4m3fn"))
            return refuse(src, "transformers fp8", "only e4m3 weights are imported");
        snprintf(s->scheme, sizeof s->scheme, "block-wise FP8 %d x %d (expanded to bf16)",
                 s->fp8_block[0], s->fp8_block[1]);
        return 0;
    }
    else {
        char b[96];
        return llm_err_set(LLM_EUNSUPPORTED,
                           "'%s': pre-quantized checkpoints are not supported "
                           "(quantization_config.quant_method '%s')",
                           src, llm_quote(q->method, b, sizeof b));
    }
    if (rc) return rc;
    struct llm_quant *a = &s->quant;
    switch (s->kind) {
    case LLM_HFQ_FP8: a->algo = s->act_static ? LLM_QUANT_FP8 : LLM_QUANT_FP8_PC_PT; break;
    case LLM_HFQ_AWQ: a->algo = LLM_QUANT_W4A16_AWQ; break;
    default: a->algo = s->bits == 4 ? LLM_QUANT_W4A16_GPTQ : LLM_QUANT_W8A16_GPTQ; break;
    }
    if (s->bits == 4) {
        a->group_size = s->group_size;
        a->has_zero_point = 1;
    }
    snprintf(a->exclude[a->n_exclude++], sizeof a->exclude[0], "lm_head");
    return 0;
}

/* ---- planning ------------------------------------------------------------------------ */

static const char *file_of(const struct llm_st *st, size_t idx)
{
    return llm_st_file_path(st, (size_t)llm_st_shard_of(st, idx));
}

static int64_t numel(const struct llm_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* stem.suffix: its index, or SIZE_MAX (with an error when required). */
static size_t side_idx(const struct llm_hfq_lookup *lk, const char *stem, const char *suffix,
                       int required, const char *file, const char *scheme)
{
    char name[LLM_NAME_MAX + 48];
    snprintf(name, sizeof name, "%s.%s", stem, suffix);
    const struct by_name *hit = llm_hfmap_find(lk->ix, lk->n, name, lk->prefix, lk->alt);
    if (!hit && required)
        llm_err_set(LLM_ENOTFOUND, "'%s': tensor '%s' not found (%s)", file, name, scheme);
    return hit ? hit->idx : SIZE_MAX;
}

static int bad_shape(const struct llm_st *st, size_t idx, const char *want)
{
    const struct llm_tensor *t = llm_st_get(st, idx);
    char b[160];
    return llm_err_set(LLM_ESHAPE, "'%s': tensor '%s' expected %s, found %s", file_of(st, idx),
                       t->name, want, llm_shape_str(b, sizeof b, t->ndim, t->shape));
}

static int bad_dtype(const struct llm_st *st, size_t idx, const char *want)
{
    const struct llm_tensor *t = llm_st_get(st, idx);
    return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s' is %s, expected %s", file_of(st, idx),
                       t->name, llm_dtype_name(t->dtype), want);
}

/* A 2-D tensor of shape [a, b] and dtype dt (-1: any float). */
static int want2(const struct llm_st *st, size_t idx, int dt, int64_t a, int64_t b)
{
    const struct llm_tensor *t = llm_st_get(st, idx);
    if (dt < 0 ? !llm_dtype_is_float(t->dtype) || t->dtype == LLM_DTYPE_F8E4M3 ||
                     t->dtype == LLM_DTYPE_F8E5M2
               : t->dtype != dt)
        return bad_dtype(st, idx, dt < 0 ? "f32, f16 or bf16" : llm_dtype_name(dt));
    if (t->ndim != 2 || t->shape[0] != a || t->shape[1] != b) {
        char w[64];
        snprintf(w, sizeof w, "[%lld, %lld]", (long long)a, (long long)b);
        return bad_shape(st, idx, w);
    }
    return 0;
}

static int plan_fp8(const struct llm_hfq *q, const struct llm_hfq_lookup *lk, const char *stem,
                    size_t idx, const int64_t *es, size_t side[3])
{
    const struct llm_st *st = lk->st;
    const struct llm_tensor *t = llm_st_get(st, idx);
    const char *file = file_of(st, idx);
    if (t->dtype != LLM_DTYPE_F8E4M3) return bad_dtype(st, idx, "F8_E4M3 (fp8 weights)");
    if (t->ndim != 2 || t->shape[0] != es[0] || t->shape[1] != es[1]) {
        char w[64];
        snprintf(w, sizeof w, "[%lld, %lld]", (long long)es[0], (long long)es[1]);
        return bad_shape(st, idx, w);
    }
    if ((side[0] = side_idx(lk, stem, "weight_scale", 1, file, q->scheme)) == SIZE_MAX) return -1;
    const struct llm_tensor *s = llm_st_get(st, side[0]);
    int64_t n = numel(s);
    if (!llm_dtype_is_float(s->dtype)) return bad_dtype(st, side[0], "a float scale");
    if (!(n == 1 && s->ndim <= 1) && !(n == es[0] && (s->ndim == 1 || (s->ndim == 2 &&
                                                                         s->shape[1] == 1)))) {
        char w[96];
        snprintf(w, sizeof w, "[] or [1] (per tensor) or [%lld, 1] (per channel)",
                 (long long)es[0]);
        return bad_shape(st, side[0], w);
    }
    if (q->act_static) {
        if ((side[1] = side_idx(lk, stem, "input_scale", 1, file, q->scheme)) == SIZE_MAX)
            return -1;
        const struct llm_tensor *a = llm_st_get(st, side[1]);
        if (!llm_dtype_is_float(a->dtype)) return bad_dtype(st, side[1], "a float scale");
        if (numel(a) != 1 || a->ndim > 1) return bad_shape(st, side[1], "[] or [1]");
    }
    return 0;
}

static int plan_int(const struct llm_hfq *q, const struct llm_hfq_lookup *lk, const char *stem,
                    size_t qw, const int64_t *es, size_t side[3])
{
    const struct llm_st *st = lk->st;
    const char *file = file_of(st, qw);
    const int64_t out = es[0], in = es[1];
    const int g = q->group_size > 0 ? q->group_size : (int)in, per = 32 / q->bits;
    if (in % g)
        return llm_err_set(LLM_ESHAPE, "'%s': group size %d does not divide the %lld inputs of "
                           "'%s' (%s)", file, g, (long long)in, stem, q->scheme);
    if ((side[0] = side_idx(lk, stem, "scales", 1, file, q->scheme)) == SIZE_MAX ||
        (side[1] = side_idx(lk, stem, "qzeros", 1, file, q->scheme)) == SIZE_MAX)
        return -1;
    int rc;
    if (q->kind == LLM_HFQ_AWQ) {
        if (out % 8) return bad_shape(st, qw, "a multiple of 8 output columns");
        if ((rc = want2(st, qw, LLM_DTYPE_I32, in, out / 8)) ||
            (rc = want2(st, side[1], LLM_DTYPE_I32, in / g, out / 8)))
            return rc;
    } else {
        if (in % per || out % per) return bad_shape(st, qw, "inputs and outputs that pack");
        if ((rc = want2(st, qw, LLM_DTYPE_I32, in / per, out)) ||
            (rc = want2(st, side[1], LLM_DTYPE_I32, in / g, out / per)))
            return rc;
        side[2] = side_idx(lk, stem, "g_idx", 0, file, q->scheme);
        if (side[2] != SIZE_MAX) {
            const struct llm_tensor *t = llm_st_get(st, side[2]);
            if (t->dtype != LLM_DTYPE_I32) return bad_dtype(st, side[2], "I32");
            if (t->ndim != 1 || t->shape[0] != in) {
                char w[32];
                snprintf(w, sizeof w, "[%lld]", (long long)in);
                return bad_shape(st, side[2], w);
            }
        }
    }
    return want2(st, side[0], -1, in / g, out);
}

int llm_hfq_plan_source(const struct llm_hfq *q, const struct llm_hfq_lookup *lk,
                        const char *hf, size_t idx, int nd, const int64_t *es,
                        struct llm_plan_item *it, int k)
{
    const struct llm_st *st = lk->st;
    size_t hl = strlen(hf);
    if (nd != 2 || hl < 7 || strcmp(hf + hl - 7, ".weight")) return 0;
    char stem[LLM_NAME_MAX + 32];
    snprintf(stem, sizeof stem, "%.*s", (int)(hl - 7), hf);
    size_t side[3] = {SIZE_MAX, SIZE_MAX, SIZE_MAX}, w = idx;
    if (q->kind == LLM_HFQ_FP8) {
        if (idx == SIZE_MAX) return 0;
        int dt = llm_st_get(st, idx)->dtype;
        /* a module kept dense (lm_head, ignore lists) */
        if (llm_dtype_is_float(dt) && dt != LLM_DTYPE_F8E4M3 && dt != LLM_DTYPE_F8E5M2) return 0;
        if (plan_fp8(q, lk, stem, idx, es, side)) return -1;
    } else {
        w = side_idx(lk, stem, "qweight", 0, NULL, NULL);
        if (w == SIZE_MAX) {
            if (idx != SIZE_MAX) return 0; /* dense */
            const struct llm_tensor *any = llm_st_get(st, 0);
            llm_err_set(LLM_ENOTFOUND, "'%s': tensor '%s.qweight' not found (%s)",
                        any ? file_of(st, 0) : "checkpoint", stem, q->scheme);
            return -1;
        }
        if (plan_int(q, lk, stem, w, es, side)) return -1;
    }
    it->quant = q->kind;
    it->src[k] = w;
    lk->used[w] = 1;
    for (int j = 0; j < 3; j++) {
        it->qside[k][j] = side[j];
        if (side[j] != SIZE_MAX) lk->used[side[j]] = 1;
    }
    return 1;
}

int llm_hfq_plan_check(const struct llm_hfq *q, const struct llm_st *st, const char *ck,
                       const struct llm_plan_item *it)
{
    int nq = 0;
    for (int k = 0; k < it->n_src; k++) nq += it->qside[k][0] != SIZE_MAX;
    if (!nq) return 0;
    if (nq != it->n_src)
        return llm_err_set(LLM_EFORMAT, "'%s': the parts of '%s' are partly quantized, partly "
                           "dense (%s)", ck, it->name, q->scheme);
    if (it->xform != LLM_XF_COPY && it->xform != LLM_XF_CONCAT)
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': '%s' is made by transform '%s', which "
                           "quantized weights do not take (%s)", file_of(st, it->src[0]),
                           it->name, llm_xform_name(it->xform), q->scheme);
    return 0;
}

/* ---- writing ------------------------------------------------------------------------ */

static uint32_t u32_at(const struct llm_tensor *t, int64_t i)
{
    uint32_t v;
    memcpy(&v, (const uint8_t *)t->data + 4 * i, 4);
    return v;
}

/* A small float tensor's values as f32 (malloc'd; NULL on error). */
static float *f32_of(const struct llm_tensor *t)
{
    int64_t n = numel(t);
    float *f = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!f) {
        llm_err_set(LLM_ENOMEM, "out of memory reading '%s'", t->name);
        return NULL;
    }
    if (llm_convert(f, LLM_DTYPE_F32, t->data, t->dtype, (size_t)n)) {
        free(f);
        return NULL;
    }
    return f;
}

struct outbuf {
    void *w;       /* weight */
    float *s;      /* scale */
    float *z;      /* zero */
    float *a;      /* activation scale */
    int32_t *p;    /* input permutation (GPTQ act-order); NULL: none */
};

static void outbuf_free(struct outbuf *b)
{
    free(b->w);
    free(b->s);
    free(b->z);
    free(b->a);
    free(b->p);
}

static int add(struct llm_aw *w, const char *stem, const char *suffix, int dt, int nd,
               int64_t a, int64_t b, const void *data, uint64_t *total)
{
    char name[LLM_NAME_MAX + 48];
    int64_t shape[2] = {a, b};
    uint64_t n = (uint64_t)a * (uint64_t)(nd == 2 ? b : 1), nb;
    snprintf(name, sizeof name, "%s.%s", stem, suffix);
    llm_dtype_nbytes(dt, n, &nb);
    *total += nb;
    return llm_aw_add(w, name, dt, nd, shape, data, nb);
}

/* FP8: bytes concatenated; one scale, or one per row; one input scale. */
static int fp8_part(const struct llm_hfq *q, const struct llm_st *st,
                    const struct llm_plan_item *it, int k, int64_t r0, struct outbuf *b,
                    int *per_row)
{
    const struct llm_tensor *t = llm_st_get(st, it->src[k]);
    const int64_t rows = t->shape[0], in = t->shape[1];
    memcpy((uint8_t *)b->w + r0 * in, t->data, (size_t)(rows * in));
    const struct llm_tensor *sc = llm_st_get(st, it->qside[k][0]);
    float *s = f32_of(sc);
    if (!s) return llm_errcode();
    int64_t ns = numel(sc);
    for (int64_t r = 0; r < rows; r++) {
        float v = s[ns == 1 ? 0 : r];
        if (!(v > 0.f) || !isfinite(v)) {
            free(s);
            return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s' holds %g, not a positive scale (%s)",
                               file_of(st, it->qside[k][0]), sc->name, (double)v, q->scheme);
        }
        b->s[r0 + r] = v;
    }
    *per_row |= ns != 1;
    free(s);
    if (q->act_static) {
        const struct llm_tensor *at = llm_st_get(st, it->qside[k][1]);
        float *a = f32_of(at);
        if (!a) return llm_errcode();
        float v = a[0];
        free(a);
        if (!(v > 0.f) || !isfinite(v))
            return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s' holds %g, not a positive scale "
                               "(%s)", file_of(st, it->qside[k][1]), at->name, (double)v,
                               q->scheme);
        if (k && v != b->a[0])
            return llm_err_set(LLM_EUNSUPPORTED, "'%s': tensors '%s' (%g) and '%s' (%g) are "
                               "fused into '%s', which has one static input scale (%s)",
                               file_of(st, it->qside[k][1]),
                               llm_st_get(st, it->qside[0][1])->name, (double)b->a[0],
                               at->name, (double)v, it->name, q->scheme);
        b->a[0] = v;
    }
    return 0;
}

static const int awq_order[8] = {0, 2, 4, 6, 1, 3, 5, 7};

/* Code of (input i, output o) of a part, and its group's zero. */
static unsigned code_of(const struct llm_hfq *q, const struct llm_tensor *qw, int64_t i, int64_t o,
                        int64_t out)
{
    if (q->kind == LLM_HFQ_AWQ) {
        int64_t c = o / 8;
        int j = 0;
        while (awq_order[j] != o % 8) j++;
        return (u32_at(qw, i * (out / 8) + c) >> (4 * j)) & 15u;
    }
    int per = 32 / q->bits;
    return (u32_at(qw, (i / per) * out + o) >> (q->bits * (i % per))) & ((1u << q->bits) - 1);
}

static unsigned zero_of(const struct llm_hfq *q, const struct llm_tensor *qz, int64_t g, int64_t o,
                        int64_t out)
{
    if (q->kind == LLM_HFQ_AWQ) {
        int j = 0;
        while (awq_order[j] != o % 8) j++;
        return (u32_at(qz, g * (out / 8) + o / 8) >> (4 * j)) & 15u;
    }
    int per = 32 / q->bits;
    unsigned z = (u32_at(qz, g * (out / per) + o / per) >> (q->bits * (o % per))) &
                 ((1u << q->bits) - 1);
    return z + (unsigned)q->zero_offset;
}

/* GPTQ's g_idx [in] as an input permutation: the inputs sorted by group,
 * stably, into perm (in entries; may be NULL).  1 when that is not the
 * identity (act-order), 0 when g_idx is i / g; every group must hold g
 * inputs, as the int4 / int8 formats' groups do. */
static int perm_of(const struct llm_hfq *q, const struct llm_st *st, size_t gidx, int64_t in,
                   int64_t ng, int32_t *perm)
{
    const struct llm_tensor *gi = llm_st_get(st, gidx);
    const int64_t g = in / ng;
    int ident = 1;
    int64_t *pos = calloc((size_t)ng + 1, sizeof *pos);
    if (!pos) return llm_err_set(LLM_ENOMEM, "out of memory reading '%s'", gi->name);
    for (int64_t i = 0; i < in; i++) {
        int32_t v = (int32_t)u32_at(gi, i);
        if (v < 0 || v >= ng) {
            free(pos);
            return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s' assigns input %lld to group %d, "
                               "outside [0, %lld) (%s)", file_of(st, gidx), gi->name,
                               (long long)i, (int)v, (long long)ng, q->scheme);
        }
        ident &= v == i / g;
        pos[v + 1]++;
    }
    for (int64_t gg = 0; gg < ng; gg++)
        if (pos[gg + 1] != g) {
            int64_t c = pos[gg + 1];
            free(pos);
            return llm_err_set(LLM_EUNSUPPORTED, "'%s': tensor '%s' puts %lld inputs in group "
                               "%lld, not %lld: act-order groups of uneven size are not "
                               "representable (%s)", file_of(st, gidx), gi->name, (long long)c,
                               (long long)gg, (long long)g, q->scheme);
        }
    if (perm && !ident) {
        for (int64_t gg = 0; gg < ng; gg++) pos[gg + 1] += pos[gg];
        for (int64_t i = 0; i < in; i++) perm[pos[(int32_t)u32_at(gi, i)]++] = (int32_t)i;
    }
    free(pos);
    return !ident;
}

int llm_hfq_act_order(const struct llm_hfq *q, const struct llm_st *st,
                      const struct llm_plan_item *items, size_t n, int *any)
{
    *any = 0;
    if (q->kind != LLM_HFQ_GPTQ) return 0;
    for (size_t k = 0; k < n; k++)
        for (int j = 0; items[k].quant && j < items[k].n_src; j++) {
            if (items[k].qside[j][2] == SIZE_MAX) continue;
            int64_t ng = llm_st_get(st, items[k].qside[j][0])->shape[0];
            int rc = perm_of(q, st, items[k].qside[j][2], items[k].shape[1], ng, NULL);
            if (rc < 0) return rc;
            *any |= rc;
        }
    return 0;
}

/* AWQ / GPTQ part k into rows [r0, r0 + out_k) of the output.  An
 * act-order part's columns are its inputs in b->p's order (part 0 sets it;
 * the parts of a fused weight must agree, as they read the same input). */
static int int_part(const struct llm_hfq *q, const struct llm_st *st,
                    const struct llm_plan_item *it, int k, int64_t r0, int64_t rows,
                    struct outbuf *b)
{
    const struct llm_tensor *qw = llm_st_get(st, it->src[k]), *qz = llm_st_get(st, it->qside[k][1]);
    const struct llm_tensor *sc = llm_st_get(st, it->qside[k][0]);
    const int64_t OUT = it->shape[0], in = it->shape[1], ng = sc->shape[0];
    int permuted = 0;
    if (it->qside[k][2] != SIZE_MAX) {
        int32_t *p = malloc(sizeof(int32_t) * (size_t)in);
        if (!p) return llm_err_set(LLM_ENOMEM, "tensor '%s': out of memory", it->name);
        permuted = perm_of(q, st, it->qside[k][2], in, ng, p);
        if (permuted < 0) {
            free(p);
            return permuted;
        }
        if (!k && permuted) {
            b->p = p;
            p = NULL;
        } else if (k && (permuted != !!b->p ||
                         (permuted && memcmp(p, b->p, sizeof(int32_t) * (size_t)in)))) {
            free(p);
            return llm_err_set(LLM_EUNSUPPORTED, "'%s': tensor '%s' orders the inputs unlike "
                               "'%s', and the parts of '%s' share one input order (%s)",
                               file_of(st, it->qside[k][2]), llm_st_get(st, it->qside[k][2])->name,
                               llm_st_get(st, it->src[0])->name, it->name, q->scheme);
        }
        free(p);
    } else if (k && b->p) {
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': tensor '%s' has no g_idx but the other parts "
                           "of '%s' are act-order (%s)", file_of(st, it->src[k]), qw->name,
                           it->name, q->scheme);
    }
    const int32_t *perm = b->p;
    float *s = f32_of(sc);
    if (!s) return llm_errcode();
    for (int64_t gg = 0; gg < ng; gg++)
        for (int64_t o = 0; o < rows; o++) {
            b->s[gg * OUT + r0 + o] = s[gg * rows + o];
            if (b->z) b->z[gg * OUT + r0 + o] = (float)zero_of(q, qz, gg, o, rows) - 8.f;
        }
    free(s);
    for (int64_t o = 0; o < rows; o++)
        for (int64_t i = 0; i < in; i++) {
            int c = (int)code_of(q, qw, perm ? perm[i] : i, o, rows);
            int64_t e = (r0 + o) * in + i;
            if (q->bits == 4) {
                ((uint8_t *)b->w)[e / 2] |= (uint8_t)(((c - 8) & 15) << (e % 2 ? 4 : 0));
                continue;
            }
            int v = c - (int)zero_of(q, qz, 0, o, rows);
            if (v < -128 || v > 127)
                return llm_err_set(LLM_EUNSUPPORTED, "'%s': tensor '%s': code %d minus zero "
                                   "point %d leaves int8 (%s)", file_of(st, it->src[k]),
                                   qw->name, c, c - v, q->scheme);
            ((int8_t *)b->w)[e] = (int8_t)v;
        }
    return 0;
}

int llm_hfq_write(const struct llm_plan_item *it, const struct llm_st *st,
                  const struct llm_hfq *q, struct llm_aw *w, uint64_t *nbytes)
{
    const int64_t out = it->shape[0], in = it->shape[1];
    char stem[LLM_NAME_MAX];
    snprintf(stem, sizeof stem, "%.*s", (int)(strlen(it->name) - strlen(".weight")), it->name);
    *nbytes = 0;
    struct outbuf b = {0};
    int64_t ng = 1;
    if (q->kind != LLM_HFQ_FP8) ng = llm_st_get(st, it->qside[0][0])->shape[0];
    size_t wbytes = q->bits == 4 ? (size_t)(out * in / 2) : (size_t)(out * in);
    b.w = calloc(wbytes ? wbytes : 1, 1);
    b.s = malloc(sizeof(float) * (size_t)(ng * out));
    b.a = malloc(sizeof(float));
    if (q->bits == 4) b.z = malloc(sizeof(float) * (size_t)(ng * out));
    if (!b.w || !b.s || !b.a || (q->bits == 4 && !b.z)) {
        outbuf_free(&b);
        return llm_err_set(LLM_ENOMEM, "tensor '%s': out of memory", it->name);
    }
    int rc = 0, per_row = 0;
    int64_t r0 = 0;
    for (int k = 0; k < it->n_src && !rc; k++) {
        int64_t rows = q->kind == LLM_HFQ_FP8 ? llm_st_get(st, it->src[k])->shape[0]
                                              : llm_st_get(st, it->qside[k][0])->shape[1];
        if (q->kind != LLM_HFQ_FP8 && llm_st_get(st, it->qside[k][0])->shape[0] != ng)
            rc = llm_err_set(LLM_ESHAPE, "'%s': the parts of '%s' have different group sizes "
                             "(%s)", file_of(st, it->src[k]), it->name, q->scheme);
        else if (q->kind == LLM_HFQ_FP8)
            rc = fp8_part(q, st, it, k, r0, &b, &per_row);
        else
            rc = int_part(q, st, it, k, r0, rows, &b);
        r0 += rows;
    }
    if (!rc && q->kind == LLM_HFQ_FP8) {
        for (int64_t r = 1; r < out; r++) per_row |= b.s[r] != b.s[0];
        if ((rc = add(w, stem, "weight", LLM_DTYPE_F8E4M3, 2, out, in, b.w, nbytes)) ||
            (rc = add(w, stem, LLM_WQ_SCALE, LLM_DTYPE_F32, 1, per_row ? out : 1, 0, b.s, nbytes)))
            goto done;
        if (q->act_static)
            rc = add(w, stem, LLM_WQ_ACT_SCALE, LLM_DTYPE_F32, 1, 1, 0, b.a, nbytes);
    } else if (!rc && q->bits == 4) {
        if (!(rc = add(w, stem, "weight", LLM_DTYPE_I4, 2, out, in, b.w, nbytes)) &&
            !(rc = add(w, stem, LLM_WQ_SCALE, LLM_DTYPE_F32, 2, ng, out, b.s, nbytes)))
            rc = add(w, stem, LLM_WQ_ZERO, LLM_DTYPE_F32, 2, ng, out, b.z, nbytes);
    } else if (!rc) {
        if (!(rc = add(w, stem, "weight", LLM_DTYPE_I8, 2, out, in, b.w, nbytes)))
            rc = add(w, stem, LLM_WQ_CHANNEL_SCALE, LLM_DTYPE_F32, 1, out, 0, b.s, nbytes);
    }
    if (!rc && b.p) rc = add(w, stem, LLM_WQ_PERM, LLM_DTYPE_I32, 1, in, 0, b.p, nbytes);
done:
    outbuf_free(&b);
    return rc;
}
