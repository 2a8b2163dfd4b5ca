/* engine_build.c - the streaming build that turns an artifact into an
 * engine (llm/engine_artifact.h: llm_ea_build_open, llm_ea_build_run).
 *
 * Design: an engine is an artifact, so the build is a filter over the
 * artifact reader and writer.  Tensors are taken in file order (the only
 * order a pipe offers, and the same for a file, so both give the same
 * engine), converted to the compute dtype one at a time and written before
 * the next is read; the one exception is a gated MLP's fc and gate, which
 * become one fused tensor written when the second of the two arrives (the
 * first waits, already converted, in the fused buffer).  A regular input
 * file is also hashed for the provenance as the build passes over it (a
 * frontier one record behind the reader, its pages dropped as it goes), so
 * memory stays near the largest tensor.  Nothing here depends on time or
 * place, so an engine built without a GPU is byte-identical from run to
 * run; measured GEMM choices (made by the caller) are the only varying part.
 * A quantized artifact's codes (int8, int4, fp8) and their side tensors
 * (scales, zero points, smoothers, pre-quant scales, KV scales, input
 * permutations) pass through as stored; only float weights take the compute
 * dtype, and fc and gate stay apart (the backend lays quantized weights out
 * at upload, as it does for the artifact).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "llm/artifact.h"
#include "llm/dtype.h"
#include "llm/engine_artifact.h"
#include "llm/err.h"
#include "llm/io.h"
#include "llm/log.h"
#include "llm/model.h"
#include "llm/weight.h"
#include "../core/text_internal.h"

/* ---- building -------------------------------------------------------------------------- */

struct pending {
    int layer, is_bias, have[2];
    int ndim;
    int64_t shape[LLM_MAX_DIMS]; /* of one half */
    uint64_t half;               /* bytes of one half in the compute dtype */
    uint8_t *buf;                /* both halves */
};

struct llm_ea_builder {
    char *path;
    struct llm_artifact *ar;
    json_t *meta0; /* the metadata at open (a pipe's trailer comes later) */
    struct llm_model_desc d;
    struct llm_quant quant; /* the input's quantization section */
    /* hashing a regular input file behind the reader */
    struct llm_map map;
    int mapped;
    XXH3_state_t *xs;
    uint64_t hashed;
};

static void hash_upto(struct llm_ea_builder *b, uint64_t end)
{
    const uint64_t chunk = (uint64_t)32 << 20;
    if (!b->mapped || end > b->map.len) return;
    while (b->hashed < end) {
        uint64_t n = end - b->hashed < chunk ? end - b->hashed : chunk;
        XXH3_64bits_update(b->xs, (const uint8_t *)b->map.data + b->hashed, (size_t)n);
        llm_map_release(&b->map, b->hashed, n);
        b->hashed += n;
    }
}

int llm_ea_build_open(struct llm_ea_builder **out, const char *in_path)
{
    return llm_ea_build_open_flags(out, in_path, 0);
}

int llm_ea_build_open_flags(struct llm_ea_builder **out, const char *in_path, unsigned flags)
{
    *out = NULL;
    struct llm_ea_builder *b = calloc(1, sizeof *b);
    if (!b) return llm_err_set(LLM_ENOMEM, "out of memory");
    llm_desc_init(&b->d);
    b->map.fd = -1;
    b->path = strdup(in_path ? in_path : "-");
    int rc = b->path ? 0 : llm_err_set(LLM_ENOMEM, "out of memory");
    int verify = !(flags & LLM_MODEL_NO_VERIFY);
    if (!rc) rc = llm_ar_open(&b->ar, b->path, verify ? LLM_AR_VERIFY : 0);
    if (rc) goto fail;
    /* a file is checked whole before anything is written, one tensor at a
     * time (pages dropped after each); a pipe tensor by tensor as it arrives */
    for (size_t i = 0; verify && llm_ar_is_seekable(b->ar) && i < llm_ar_count(b->ar); i++) {
        struct llm_tensor t;
        if ((rc = llm_ar_get(b->ar, i, &t))) goto fail;
        llm_ar_release(b->ar, i);
    }
    const char *p = llm_ar_path(b->ar);
    const json_t *meta = llm_ar_meta(b->ar);
    if (!(b->meta0 = json_deep_copy(meta))) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
        goto fail;
    }
    if (llm_ea_present(meta)) {
        rc = llm_err_set(LLM_EINVAL,
                         "'%s': already an engine (built by llm-build); build from "
                         "the artifact it was made from",
                         p);
        goto fail;
    }
    const json_t *model = json_object_get(meta, "model");
    if (!json_is_object(model)) {
        rc = llm_err_set(LLM_EFORMAT, "'%s': metadata has no \"model\" description", p);
        goto fail;
    }
    if ((rc = llm_desc_from_json(&b->d, model))) {
        llm_err_wrap(rc, "'%s': model description", p);
        goto fail;
    }
    if ((rc = llm_quant_from_json(&b->quant, json_object_get(meta, "quantization"), p)))
        goto fail;
    /* an engine is for the CUDA backend: refuse what it cannot run, by name */
    if ((rc = llm_desc_supported(&b->d, &b->quant, &llm_cuda_caps, p))) goto fail;
    const json_t *ws = json_object_get(json_object_get(meta, "mapping"), "world_size");
    if (json_is_integer(ws) && json_integer_value(ws) != 1) {
        rc = llm_err_set(LLM_EUNSUPPORTED,
                         "'%s': one rank of a %lld-way split model; llm-build "
                         "takes whole models only",
                         p, (long long)json_integer_value(ws));
        goto fail;
    }
    if (llm_ar_is_seekable(b->ar) && strcmp(b->path, "-")) {
        if ((rc = llm_map_file(b->path, &b->map))) goto fail;
        b->mapped = 1;
        if (!(b->xs = XXH3_createState())) {
            rc = llm_err_set(LLM_ENOMEM, "out of memory");
            goto fail;
        }
        XXH3_64bits_reset(b->xs);
    }
    *out = b;
    return 0;
fail:
    llm_ea_build_close(b);
    return rc;
}

const struct llm_model_desc *llm_ea_build_desc(const struct llm_ea_builder *b)
{
    return &b->d;
}

void llm_ea_build_close(struct llm_ea_builder *b)
{
    if (!b) return;
    if (b->mapped) llm_unmap(&b->map);
    if (b->xs) XXH3_freeState(b->xs);
    llm_ar_close(b->ar);
    json_decref(b->meta0);
    llm_desc_free(&b->d);
    free(b->path);
    free(b);
}

/* Convert n elements into dst (dst_dt) a chunk at a time. */
static int convert_into(void *dst, int dst_dt, const struct llm_tensor *t, uint64_t n,
                        const char *path)
{
    const uint64_t chunk = (uint64_t)1 << 22;
    int sbits = llm_dtype_bits(t->dtype), dbits = llm_dtype_bits(dst_dt);
    for (uint64_t off = 0; off < n; off += chunk) {
        uint64_t c = n - off < chunk ? n - off : chunk;
        int rc =
            llm_convert((uint8_t *)dst + off * (uint64_t)dbits / 8, dst_dt,
                        (const uint8_t *)t->data + off * (uint64_t)sbits / 8, t->dtype, (size_t)c);
        if (rc)
            return llm_err_set(rc, "'%s': tensor '%s': cannot convert %s to %s", path, t->name,
                               llm_dtype_name(t->dtype), llm_dtype_name(dst_dt));
    }
    return 0;
}

/* Names the description says the model has, sorted, with a seen flag each. */
struct expected {
    char (*names)[LLM_NAME_MAX];
    size_t n;
    unsigned char *seen;
};

static int cmp_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void expect_mark(struct expected *x, const char *name)
{
    char(*hit)[LLM_NAME_MAX] = bsearch(name, x->names, x->n, LLM_NAME_MAX, cmp_name);
    if (hit) x->seen[hit - x->names] = 1;
}

/* The output's metadata: the input's members, the model description with
 * the compute dtype, the engine member, and the chain with our entry. */
static json_t *engine_meta(const struct llm_ea_builder *b, const struct llm_ea_info *e,
                           const json_t *prov_entry)
{
    struct llm_model_desc d2 = b->d;
    d2.dtype = e->compute_dtype;
    json_t *model = llm_desc_to_json(&d2); /* shares the longrope arrays: only read */
    json_t *eng = llm_ea_info_to_json(e);
    json_t *m = json_object(), *chain = json_array();
    int bad = !model || !eng || !m || !chain;
    const char *k;
    json_t *v;
    json_object_foreach(b->meta0, k, v)
    {
        if (bad) break;
        if (!strcmp(k, "format") || !strcmp(k, "engine")) continue;
        if (!strcmp(k, "provenance")) {
            if (json_is_array(v)) bad |= json_array_extend(chain, v) != 0;
            bad |= json_object_set(m, k, chain) != 0;
        } else if (!strcmp(k, "model")) {
            bad |= json_object_set(m, k, model) != 0;
        } else {
            bad |= json_object_set(m, k, v) != 0;
        }
    }
    if (!bad && !json_object_get(m, "provenance")) bad |= json_object_set(m, "provenance", chain);
    json_t *entry = json_deep_copy(prov_entry);
    if (!bad && entry) json_object_del(entry, "inputs");
    bad |= !entry || json_array_append_new(chain, entry);
    bad |= json_object_set(m, "engine", eng) != 0;
    json_decref(model);
    json_decref(eng);
    json_decref(chain);
    if (bad) {
        json_decref(m);
        return NULL;
    }
    return m;
}

/* The trailer: the complete chain (the input's, with its trailer read) plus
 * our entry with the input's name, size and hash; and any other member a
 * pipe's trailer changed. */
static json_t *engine_trailer(const struct llm_ea_builder *b, const json_t *prov_entry)
{
    const json_t *fin = llm_ar_meta(b->ar);
    json_t *t = json_object(), *chain = json_array();
    json_t *entry = json_deep_copy(prov_entry);
    json_t *input = b->mapped ? json_pack("{s:s, s:I, s:s}", "path", b->path, "size",
                                          (json_int_t)b->map.len, "xxh3", "")
                              : json_pack("{s:s}", "path", b->path);
    int bad = !t || !chain || !entry || !input;
    if (!bad && b->mapped) {
        char h[17];
        snprintf(h, sizeof h, "%016llx", (unsigned long long)XXH3_64bits_digest(b->xs));
        bad |= json_object_set_new(input, "xxh3", json_string(h));
    }
    const json_t *c0 = json_object_get(fin, "provenance");
    if (!bad && json_is_array(c0)) bad |= json_array_extend(chain, (json_t *)c0);
    if (!bad) {
        bad |= json_object_set_new(entry, "inputs", json_pack("[O]", input));
        bad |= json_array_append(chain, entry);
        bad |= json_object_set(t, "provenance", chain);
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)fin, k, v)
    {
        if (bad) break;
        if (!strcmp(k, "format") || !strcmp(k, "provenance") || !strcmp(k, "model") ||
            !strcmp(k, "engine"))
            continue;
        if (!json_equal(v, json_object_get(b->meta0, k))) bad |= json_object_set(t, k, v);
    }
    json_decref(input);
    json_decref(entry);
    json_decref(chain);
    if (bad) {
        json_decref(t);
        return NULL;
    }
    return t;
}

static int is_mlp_pair(const char *suffix, int *second, int *is_bias)
{
    static const char *const s[4] = {"mlp.fc.weight", "mlp.gate.weight", "mlp.fc.bias",
                                     "mlp.gate.bias"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(suffix, s[i])) {
            *second = i & 1;
            *is_bias = i >> 1;
            return 1;
        }
    return 0;
}

/* One engine build in progress. */
struct build {
    struct llm_ea_builder *b;
    const char *p; /* the input, for messages */
    int dt;        /* compute dtype */
    struct expected x;
    struct pending *pend;
    int n_pend, cap_pend;
    struct llm_aw *w;
    size_t n_out;
    const struct llm_ea_build_cb *cb;
};

/* Tensor i has been written: release its pages, hash the input up to the next. */
static void passed(struct build *s, size_t i)
{
    struct llm_ea_builder *b = s->b;
    llm_ar_release(b->ar, i);
    if (b->mapped && i + 1 < llm_ar_count(b->ar)) hash_upto(b, llm_ar_offset(b->ar, i + 1));
}

static int emit(struct build *s, const char *name, int dt, int ndim, const int64_t *shape,
                const void *data, uint64_t nbytes)
{
    int rc = llm_aw_add(s->w, name, dt, ndim, shape, data, nbytes);
    if (!rc && s->cb && s->cb->tensor) s->cb->tensor(s->cb->ctx, s->n_out, name, dt, ndim, shape, nbytes);
    s->n_out++;
    return rc;
}

/* A quantization side tensor ("<stem>.weights_scaling_factor", ...): kept as
 * stored, like the codes it goes with. */
static int is_quant_side(const char *name)
{
    static const char *const sfx[] = {LLM_WQ_SCALE,        LLM_WQ_CHANNEL_SCALE, LLM_WQ_ACT_SCALE,
                                      LLM_WQ_SQ_ACT_SCALE, LLM_WQ_SMOOTHER,      LLM_WQ_ZERO,
                                      LLM_WQ_PREQUANT,     LLM_WQ_KV_SCALE,      LLM_WQ_PERM};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof sfx / sizeof sfx[0]; i++)
        if (!strcmp(dot + 1, sfx[i])) return 1;
    return 0;
}

/* The description's shape, a float dtype (or a quantized artifact's codes
 * and side tensors), and the size. */
static int check_input(struct build *s, const struct llm_tensor *t, uint64_t *numel)
{
    char sh[160], sh2[160];
    int ndim;
    int64_t want[LLM_MAX_DIMS];
    if (llm_desc_tensor_shape(&s->b->d, t->name, &ndim, want) == 0) {
        int same = ndim == t->ndim;
        for (int k = 0; same && k < ndim; k++)
            same = want[k] == t->shape[k];
        if (!same)
            return llm_err_set(LLM_ESHAPE, "'%s': tensor '%s' has shape %s, expected %s", s->p,
                               t->name, llm_shape_str(sh, sizeof sh, t->ndim, t->shape),
                               llm_shape_str(sh2, sizeof sh2, ndim, want));
    } else {
        llm_err_clear();
        llm_debug("'%s': tensor '%s' is not part of the model description; kept", s->p, t->name);
    }
    expect_mark(&s->x, t->name);
    const int quantized =
        s->b->quant.algo != LLM_QUANT_NONE || s->b->quant.kv_algo != LLM_KV_QUANT_NONE;
    if (!llm_dtype_is_float(t->dtype) &&
        !(quantized && (is_quant_side(t->name) || t->dtype == LLM_DTYPE_I8 ||
                        t->dtype == LLM_DTYPE_I4 || t->dtype == LLM_DTYPE_F8E4M3)))
        return llm_err_set(
            LLM_EUNSUPPORTED, "'%s': tensor '%s' is %s: only float weights%s can go into an engine",
            s->p, t->name, llm_dtype_name(t->dtype), quantized ? " and quantized codes" : "");
    if (llm_shape_numel(t->ndim, t->shape, numel))
        return llm_err_set(LLM_ERANGE, "'%s': tensor '%s': shape overflows", s->p, t->name);
    return 0;
}

/* The pending fc/gate pair of (layer, is_bias), created on first sight. */
static int pending_of(struct build *s, const struct llm_tensor *t, int layer, int is_bias,
                      uint64_t numel, struct pending **out)
{
    int k = 0;
    while (k < s->n_pend && !(s->pend[k].layer == layer && s->pend[k].is_bias == is_bias))
        k++;
    if (k == s->n_pend) {
        if (s->n_pend == s->cap_pend) {
            int nc = s->cap_pend ? 2 * s->cap_pend : 8;
            struct pending *np = realloc(s->pend, sizeof *np * (size_t)nc);
            if (!np) return llm_err_set(LLM_ENOMEM, "out of memory");
            s->pend = np;
            s->cap_pend = nc;
        }
        struct pending *q = &s->pend[s->n_pend];
        memset(q, 0, sizeof *q);
        q->layer = layer;
        q->is_bias = is_bias;
        q->ndim = t->ndim;
        memcpy(q->shape, t->shape, sizeof q->shape);
        if (llm_dtype_nbytes(s->dt, numel, &q->half) || q->half > UINT64_MAX / 2 ||
            !(q->buf = malloc(q->half ? 2 * q->half : 1)))
            return llm_err_set(LLM_ENOMEM, "'%s': tensor '%s': out of memory", s->p, t->name);
        s->n_pend++;
    }
    *out = &s->pend[k];
    return 0;
}

/* One half of a gated MLP's fc/gate pair; the fused tensor is written once
 * both halves have arrived. */
static int add_half(struct build *s, const struct llm_tensor *t, size_t i, int layer, int second,
                    int is_bias, uint64_t numel)
{
    struct pending *q = NULL;
    int rc = pending_of(s, t, layer, is_bias, numel, &q);
    if (rc) return rc;
    int same = q->ndim == t->ndim;
    for (int j = 0; same && j < t->ndim; j++)
        same = q->shape[j] == t->shape[j];
    if (!same || q->have[second]) {
        char sh[160], sh2[160];
        return llm_err_set(LLM_ESHAPE, "'%s': tensor '%s' has shape %s, its %s partner %s", s->p,
                           t->name, llm_shape_str(sh, sizeof sh, t->ndim, t->shape),
                           second ? "mlp.fc" : "mlp.gate",
                           llm_shape_str(sh2, sizeof sh2, q->ndim, q->shape));
    }
    if ((rc = convert_into(q->buf + (second ? q->half : 0), s->dt, t, numel, s->p))) return rc;
    q->have[second] = 1;
    passed(s, i);
    if (!(q->have[0] && q->have[1])) return 0;
    char name[LLM_NAME_MAX];
    llm_name_layer(name, sizeof name, layer, is_bias ? LLM_EA_FC_GATE_BIAS : LLM_EA_FC_GATE_WEIGHT);
    int64_t fshape[LLM_MAX_DIMS];
    memcpy(fshape, q->shape, sizeof fshape);
    fshape[0] *= 2;
    rc = emit(s, name, s->dt, q->ndim, fshape, q->buf, 2 * q->half);
    free(q->buf);
    *q = s->pend[--s->n_pend];
    return rc;
}

/* Any other tensor, in the compute dtype (the lm_head's bias in f32; codes and
 * side tensors of a quantized artifact as stored). */
static int add_plain(struct build *s, const struct llm_tensor *t, size_t i, uint64_t numel)
{
    int odt = !strcmp(t->name, "lm_head.bias") ? LLM_DTYPE_F32 : s->dt;
    if (!llm_dtype_is_float(t->dtype) || t->dtype == LLM_DTYPE_F8E4M3 || is_quant_side(t->name))
        odt = t->dtype; /* codes (fp8 ones are a float dtype, not a compute one) and scales */
    uint64_t nbytes;
    if (llm_dtype_nbytes(odt, numel, &nbytes))
        return llm_err_set(LLM_ERANGE, "'%s': tensor '%s': shape overflows", s->p, t->name);
    const void *data = t->data;
    void *buf = NULL;
    int rc = 0;
    if (odt != t->dtype) {
        if (!(buf = malloc(nbytes ? nbytes : 1)))
            return llm_err_set(LLM_ENOMEM, "'%s': tensor '%s': out of memory (%llu bytes)", s->p,
                               t->name, (unsigned long long)nbytes);
        rc = convert_into(buf, odt, t, numel, s->p);
        data = buf;
    }
    if (!rc) rc = emit(s, t->name, odt, t->ndim, t->shape, data, nbytes);
    free(buf);
    if (!rc) passed(s, i);
    return rc;
}

/* After the last tensor: no half pair left and every expected tensor seen. */
static int check_complete(const struct build *s)
{
    if (s->n_pend) {
        const struct pending *q = &s->pend[0];
        char name[LLM_NAME_MAX];
        llm_name_layer(name, sizeof name, q->layer, q->have[0] ? "mlp.gate" : "mlp.fc");
        return llm_err_set(LLM_ENOTFOUND, "'%s': layer %d has %s but no '%s.%s'", s->p, q->layer,
                           q->have[0] ? "mlp.fc" : "mlp.gate", name, q->is_bias ? "bias" : "weight");
    }
    for (size_t k = 0; k < s->x.n; k++)
        if (!s->x.seen[k]) return llm_err_set(LLM_ENOTFOUND, "'%s': no tensor '%s'", s->p, s->x.names[k]);
    return 0;
}

int llm_ea_build_run(struct llm_ea_builder *b, const char *out_path, const struct llm_ea_info *info,
                     const json_t *prov_entry, const struct llm_ea_build_cb *cb)
{
    const struct llm_model_desc *d = &b->d;
    struct llm_ea_info e = *info;
    /* experts keep fc and gate apart, and so do quantized weights */
    e.fused_gate = d->gated_mlp && !d->n_experts && b->quant.algo == LLM_QUANT_NONE;
    e.version = LLM_EA_VERSION;
    struct build s = {.b = b, .p = llm_ar_path(b->ar), .dt = e.compute_dtype, .cb = cb};
    int rc = llm_ea_limits_check(d, s.dt, &e.lim);
    if (rc) return rc;
    if (!json_is_object(prov_entry))
        return llm_err_set(LLM_EINVAL, "engine build: the provenance entry must be an object");
    json_t *meta = NULL, *trailer = NULL;
    if ((rc = llm_desc_tensor_names(d, &s.x.names, &s.x.n))) return rc;
    qsort(s.x.names, s.x.n, LLM_NAME_MAX, cmp_name);
    if (!(s.x.seen = calloc(s.x.n ? s.x.n : 1, 1))) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
        goto out;
    }
    if (!(meta = engine_meta(b, &e, prov_entry))) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory building the engine metadata");
        goto out;
    }
    struct llm_aw_opts ao = {0};
    if ((rc = llm_aw_create(&s.w, out_path ? out_path : "-", meta, &ao))) goto out;
    for (size_t i = 0;; i++) {
        struct llm_tensor t;
        int r = llm_ar_next(b->ar, &t);
        if (r <= 0) {
            rc = r;
            break;
        }
        uint64_t numel;
        if ((rc = check_input(&s, &t, &numel))) break;
        const char *suffix = NULL;
        int layer = llm_name_parse_layer(t.name, &suffix), second = 0, is_bias = 0;
        if (e.fused_gate && layer >= 0 && is_mlp_pair(suffix, &second, &is_bias))
            rc = add_half(&s, &t, i, layer, second, is_bias, numel);
        else
            rc = add_plain(&s, &t, i, numel);
        if (rc) break;
    }
    if (!rc) rc = check_complete(&s);
    if (rc) goto out;
    if (b->mapped) hash_upto(b, b->map.len);
    if (!(trailer = engine_trailer(b, prov_entry))) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory building the engine trailer");
        goto out;
    }
    if ((rc = llm_aw_set_trailer(s.w, trailer))) goto out;
    rc = llm_aw_finish(s.w);
    s.w = NULL;
out:
    llm_aw_abort(s.w);
    for (int k = 0; k < s.n_pend; k++)
        free(s.pend[k].buf);
    free(s.pend);
    free(s.x.names);
    free(s.x.seen);
    json_decref(meta);
    json_decref(trailer);
    return rc;
}
