/* artifact_write.c - the writer of the llm artifact (formats/artifact.md
 * is the byte-level specification; the reader is artifact_read.c and the
 * layout both use is artifact_internal.h).
 *
 * Design: the writer never seeks, so it can write to a pipe.  One pass
 * over a tensor's data, in chunks, computes its checksum (and compresses
 * it when asked), so its record header is complete before its data is
 * written; the index and footer a reader needs for random access come
 * last.  A file is written under a temporary name and renamed into place
 * only by llm_aw_finish.
 */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>
#include <zstd.h>

#include "artifact_internal.h"
#include "llm/artifact.h"
#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/io.h"

struct llm_aw {
    struct llm_out out;
    const char *path; /* for messages */
    struct llm_aw_opts opts;
    uint64_t *offs;
    char **names;
    size_t n, cap;
    struct nameset set;
    json_t *trailer;
    ZSTD_CCtx *cctx;
    void *zbuf;
    size_t zcap;
    XXH3_state_t *xs;
    int failed;
};

static int aw_write(struct llm_aw *w, const void *p, size_t n)
{
    int rc = llm_out_write(&w->out, p, n);
    if (rc) w->failed = 1;
    return rc;
}

static int aw_pad(struct llm_aw *w)
{
    static const uint8_t zero[ALIGN];
    size_t n = (size_t)(align64(w->out.written) - w->out.written);
    return aw_write(w, zero, n);
}

int llm_aw_create(struct llm_aw **out, const char *path, const json_t *meta,
                  const struct llm_aw_opts *opts)
{
    *out = NULL;
    if (!json_is_object(meta))
        return llm_err_set(LLM_EINVAL, "artifact metadata must be a JSON object");
    struct llm_aw *w = calloc(1, sizeof(*w));
    if (!w) return llm_err_set(LLM_ENOMEM, "out of memory");
    if (opts) w->opts = *opts;
    if (w->opts.compress_level < 0 || w->opts.compress_level > ZSTD_maxCLevel()) {
        int lvl = w->opts.compress_level;
        free(w);
        return llm_err_set(LLM_EINVAL, "compression level %d not in 0..%d", lvl,
                           ZSTD_maxCLevel());
    }
    if (!w->opts.compress_min) w->opts.compress_min = 4096;

    /* "format" first, then the caller's members in their order */
    json_t *m = json_object();
    json_t *fmt = json_pack("{s:s, s:i, s:i}", "name", "llm-artifact", "major",
                            LLM_ARTIFACT_MAJOR, "minor", LLM_ARTIFACT_MINOR);
    const char *key;
    json_t *val;
    int bad = !m || !fmt || json_object_set_new(m, "format", fmt);
    json_object_foreach((json_t *)meta, key, val)
    {
        if (bad) break;
        if (strcmp(key, "format")) bad = json_object_set(m, key, val);
    }
    char *text = bad ? NULL : json_dumps(m, JSON_COMPACT);
    json_decref(m);
    if (!text) {
        free(w);
        return llm_err_set(LLM_ENOMEM, "out of memory serialising the artifact metadata");
    }
    size_t mlen = strlen(text);
    if (mlen > JSON_MAX) {
        free(text);
        free(w);
        return llm_err_set(LLM_ERANGE, "artifact metadata is %zu bytes (at most %llu)", mlen,
                           (unsigned long long)JSON_MAX);
    }
    int rc = llm_out_open(&w->out, path);
    if (rc) {
        free(text);
        free(w);
        return rc;
    }
    w->path = w->out.path ? w->out.path : "<stdout>";
    if (!(w->xs = XXH3_createState())) {
        free(text);
        llm_aw_abort(w);
        return llm_err_set(LLM_ENOMEM, "out of memory");
    }
    uint8_t h[HEAD_LEN] = {0};
    memcpy(h, HEAD_MAGIC, 8);
    wr16(h + 8, LLM_ARTIFACT_MAJOR);
    wr16(h + 10, LLM_ARTIFACT_MINOR);
    wr32(h + 12, HEAD_LEN);
    wr64(h + 16, mlen);
    wr64(h + 24, XXH3_64bits(text, mlen));
    wr64(h + 56, XXH3_64bits(h, 56));
    rc = aw_write(w, h, sizeof(h));
    if (!rc) rc = aw_write(w, text, mlen);
    if (!rc) rc = aw_pad(w);
    free(text);
    if (rc) {
        llm_aw_abort(w);
        return rc;
    }
    *out = w;
    return 0;
}

#define AW_CHUNK ((uint64_t)32 << 20)

static void aw_release(struct llm_aw *w, const void *p, uint64_t len)
{
    if (w->opts.release && len) w->opts.release(w->opts.release_ctx, p, len);
}

/* One pass over the data in chunks: checksum, and zstd when asked for.
 * Returns the compressed size in w->zbuf, or 0 to store raw (not asked,
 * too small, or it does not shrink).  Each chunk is released once read. */
static size_t aw_hash_compress(struct llm_aw *w, const uint8_t *data, uint64_t n, uint64_t *sum)
{
    int z = w->opts.compress_level > 0 && n >= w->opts.compress_min && n >= 2 && n <= SIZE_MAX;
    ZSTD_outBuffer out = {NULL, 0, 0};
    if (z && !w->cctx) z = (w->cctx = ZSTD_createCCtx()) != NULL;
    if (z) {
        size_t cap = (size_t)n - 1; /* must shrink, or it is stored raw */
        if (w->zcap < cap) {
            free(w->zbuf);
            w->zbuf = malloc(cap);
            w->zcap = w->zbuf ? cap : 0;
        }
        z = w->zbuf != NULL;
        out = (ZSTD_outBuffer){w->zbuf, cap, 0};
    }
    if (z) {
        ZSTD_CCtx_reset(w->cctx, ZSTD_reset_session_and_parameters);
        z = !ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel,
                                                 w->opts.compress_level)) &&
            !ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_contentSizeFlag, 1)) &&
            !ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(w->cctx, n));
    }
    XXH3_64bits_reset(w->xs);
    for (uint64_t off = 0; off < n;) {
        uint64_t step = n - off < AW_CHUNK ? n - off : AW_CHUNK;
        XXH3_64bits_update(w->xs, data + off, (size_t)step);
        if (z) {
            ZSTD_inBuffer in = {data + off, (size_t)step, 0};
            ZSTD_EndDirective mode = off + step == n ? ZSTD_e_end : ZSTD_e_continue;
            for (;;) {
                size_t r = ZSTD_compressStream2(w->cctx, &out, &in, mode);
                if (ZSTD_isError(r)) {
                    z = 0;
                    break;
                }
                int done = mode == ZSTD_e_end ? r == 0 : in.pos == in.size;
                if (done) break;
                if (out.pos == out.size) { /* full: it does not shrink */
                    z = 0;
                    break;
                }
            }
        }
        aw_release(w, data + off, step);
        off += step;
    }
    *sum = XXH3_64bits_digest(w->xs);
    if (!z || out.pos == 0 || n / ZSTD_MAX_RATIO >= out.pos) return 0;
    return out.pos;
}

int llm_aw_add(struct llm_aw *w, const char *name, int dtype, int ndim, const int64_t *shape,
               const void *data, uint64_t nbytes)
{
    if (w->failed) return llm_err_set(LLM_EIO, "'%s': earlier write failed", w->path);
    size_t nl = name ? strlen(name) : 0;
    if (!name_ok((const uint8_t *)name, nl))
        return llm_err_set(LLM_EINVAL, "'%s': tensor name '%s' must be 1..%u printable ASCII "
                           "characters without spaces", w->path, name ? name : "",
                           NAME_MAX_LEN);
    if (dtype < 0 || dtype >= LLM_DTYPE_COUNT)
        return llm_err_set(LLM_EINVAL, "'%s': tensor '%s': invalid dtype %d", w->path, name,
                           dtype);
    if (ndim < 0 || ndim > LLM_MAX_DIMS)
        return llm_err_set(LLM_EINVAL, "'%s': tensor '%s': %d dimensions (at most %d)", w->path,
                           name, ndim, LLM_MAX_DIMS);
    uint64_t numel, need;
    if (llm_shape_numel(ndim, shape, &numel) || llm_dtype_nbytes(dtype, numel, &need))
        return llm_err_set(LLM_ERANGE, "'%s': tensor '%s': bad shape", w->path, name);
    if (need != nbytes)
        return llm_err_set(LLM_ESHAPE, "'%s': tensor '%s': shape and dtype give %llu bytes, got "
                           "%llu", w->path, name, (unsigned long long)need,
                           (unsigned long long)nbytes);
    if (nbytes && !data)
        return llm_err_set(LLM_EINVAL, "'%s': tensor '%s': no data", w->path, name);
    if (nameset_find(&w->set, w->names, name) != (size_t)-1)
        return llm_err_set(LLM_EINVAL, "'%s': tensor '%s' added twice", w->path, name);
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 64;
        uint64_t *no = realloc(w->offs, nc * sizeof(*no));
        if (no) w->offs = no;
        char **nn = realloc(w->names, nc * sizeof(*nn));
        if (nn) w->names = nn;
        if (!no || !nn) return llm_err_set(LLM_ENOMEM, "out of memory");
        w->cap = nc;
    }
    w->names[w->n] = strdup(name);
    if (!w->names[w->n] || nameset_add(&w->set, w->names, w->n)) {
        free(w->names[w->n]);
        return llm_err_set(LLM_ENOMEM, "out of memory");
    }
    w->offs[w->n++] = w->out.written;

    uint64_t sum;
    size_t z = aw_hash_compress(w, data, nbytes, &sum);
    uint8_t h[REC_MAX];
    uint32_t hl = rec_header_len((unsigned)ndim, (unsigned)nl);
    memset(h, 0, hl);
    memcpy(h, REC_MAGIC, 4);
    wr32(h + 4, hl);
    wr16(h + 8, (uint16_t)nl);
    h[10] = (uint8_t)dtype;
    h[11] = (uint8_t)ndim;
    h[12] = z ? COMP_ZSTD : COMP_NONE;
    wr64(h + 16, nbytes);
    wr64(h + 24, z ? z : nbytes);
    wr64(h + 32, sum);
    for (int i = 0; i < ndim; i++) wr64(h + REC_FIXED + 8 * i, (uint64_t)shape[i]);
    memcpy(h + REC_FIXED + 8 * ndim, name, nl);
    wr64(h + hl - 8, XXH3_64bits(h, hl - 8));
    int rc = aw_write(w, h, hl);
    if (!rc) rc = aw_pad(w);
    if (z) {
        if (!rc) rc = aw_write(w, w->zbuf, z);
    } else {
        const uint8_t *d = data;
        for (uint64_t off = 0; off < nbytes && !rc;) {
            uint64_t step = nbytes - off < AW_CHUNK ? nbytes - off : AW_CHUNK;
            rc = aw_write(w, d + off, (size_t)step);
            aw_release(w, d + off, step);
            off += step;
        }
    }
    if (!rc) rc = aw_pad(w);
    if (w->zcap > ((size_t)64 << 20)) { /* do not keep a big buffer's pages resident */
        free(w->zbuf);
        w->zbuf = NULL;
        w->zcap = 0;
    }
    return rc;
}

int llm_aw_set_trailer(struct llm_aw *w, const json_t *trailer)
{
    if (!json_is_object(trailer))
        return llm_err_set(LLM_EINVAL, "'%s': artifact trailer must be a JSON object", w->path);
    if (json_object_get(trailer, "format"))
        return llm_err_set(LLM_EINVAL, "'%s': artifact trailer may not hold \"format\"", w->path);
    json_t *c = json_deep_copy(trailer);
    if (!c) return llm_err_set(LLM_ENOMEM, "out of memory");
    json_decref(w->trailer);
    w->trailer = c;
    return 0;
}

int llm_aw_finish(struct llm_aw *w)
{
    int rc = 0;
    char *text = NULL;
    if (w->failed) rc = llm_err_set(LLM_EIO, "'%s': earlier write failed", w->path);
    if (!rc) {
        text = w->trailer ? json_dumps(w->trailer, JSON_COMPACT) : strdup("{}");
        if (!text) rc = llm_err_set(LLM_ENOMEM, "out of memory serialising the trailer");
    }
    size_t tl = text ? strlen(text) : 0;
    if (!rc && tl > JSON_MAX)
        rc = llm_err_set(LLM_ERANGE, "'%s': trailer is %zu bytes (at most %llu)", w->path, tl,
                         (unsigned long long)JSON_MAX);
    uint64_t end_off = w->out.written;
    if (!rc) {
        uint8_t e[END_LEN] = {0};
        memcpy(e, END_MAGIC, 4);
        wr32(e + 4, END_LEN);
        wr64(e + 8, w->n);
        wr64(e + 16, tl);
        wr64(e + 24, XXH3_64bits(text, tl));
        wr64(e + 40, XXH3_64bits(e, 40));
        rc = aw_write(w, e, sizeof(e));
    }
    if (!rc) rc = aw_write(w, text, tl);
    if (!rc) rc = aw_pad(w);
    free(text);
    uint64_t index_off = w->out.written;
    uint8_t *idx = NULL;
    if (!rc) {
        idx = malloc(w->n ? w->n * 8 : 1);
        if (!idx) rc = llm_err_set(LLM_ENOMEM, "out of memory");
    }
    if (!rc) {
        for (size_t i = 0; i < w->n; i++) wr64(idx + 8 * i, w->offs[i]);
        rc = aw_write(w, idx, w->n * 8);
    }
    if (!rc) {
        uint8_t f[FOOT_LEN] = {0};
        wr64(f, index_off);
        wr64(f + 8, w->n);
        wr64(f + 16, XXH3_64bits(idx, w->n * 8));
        wr64(f + 24, end_off);
        wr64(f + 32, w->out.written + FOOT_LEN);
        wr64(f + 48, XXH3_64bits(f, 48));
        memcpy(f + 56, FOOT_MAGIC, 8);
        rc = aw_write(w, f, sizeof(f));
    }
    free(idx);
    if (!rc) {
        rc = llm_out_commit(&w->out);
        memset(&w->out, 0, sizeof(w->out));
    }
    llm_aw_abort(w); /* frees; the output is already committed on success */
    return rc;
}

void llm_aw_abort(struct llm_aw *w)
{
    if (!w) return;
    if (w->out.fp) llm_out_abort(&w->out);
    for (size_t i = 0; i < w->n; i++) free(w->names[i]);
    free(w->names);
    free(w->offs);
    nameset_free(&w->set);
    json_decref(w->trailer);
    ZSTD_freeCCtx(w->cctx);
    XXH3_freeState(w->xs);
    free(w->zbuf);
    free(w);
}
