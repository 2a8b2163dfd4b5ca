/* artifact_read.c - the validating reader of the llm artifact
 * (formats/artifact.md is the byte-level specification; the writer is
 * artifact_write.c and the layout both use is artifact_internal.h).
 *
 * Design: the layout is fully determined by the contents (each part starts
 * where the previous one ends, rounded to 64), so one set of parsing
 * routines serves both readers: the random-access reader walks the records
 * of a mapped file (or a buffer) from the first to the end record and
 * checks the footer's index against what it found; the sequential reader
 * does the same walk on a stream as the bytes arrive.  Nothing read from
 * the file is trusted before it has been bounds-checked against what
 * contains it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>
#include <zstd.h>

#include "artifact_internal.h"
#include "llm/artifact.h"
#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/io.h"

/* ---- JSON ---------------------------------------------------------------- */

static int parse_json_object(const char *path, const char *what, const uint8_t *p, size_t len,
                             json_t **out)
{
    json_error_t e;
    json_t *j = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        return llm_err_set(LLM_EFORMAT, "'%s': %s is not valid JSON: %s (line %d, column %d)",
                           path, what, e.text, e.line, e.column);
    if (!json_is_object(j)) {
        json_decref(j);
        return llm_err_set(LLM_EFORMAT, "'%s': %s is not a JSON object", path, what);
    }
    *out = j;
    return 0;
}

static int json_uint_member(const json_t *o, const char *key, long long *v)
{
    const json_t *x = json_object_get(o, key);
    if (!json_is_integer(x)) return -1;
    *v = json_integer_value(x);
    return 0;
}

/* The metadata's "format" member must name this format and the header's
 * version. */
static int check_format_member(const char *path, const json_t *meta, int major, int minor)
{
    const json_t *f = json_object_get(meta, "format");
    if (!json_is_object(f))
        return llm_err_set(LLM_EFORMAT, "'%s': metadata has no \"format\" object", path);
    const char *name = json_string_value(json_object_get(f, "name"));
    long long ma, mi;
    if (!name || strcmp(name, "llm-artifact"))
        return llm_err_set(LLM_EFORMAT, "'%s': metadata format name is not \"llm-artifact\"",
                           path);
    if (json_uint_member(f, "major", &ma) || json_uint_member(f, "minor", &mi) || ma != major ||
        mi != minor)
        return llm_err_set(LLM_EFORMAT,
                           "'%s': metadata format version disagrees with the header (%d.%d)",
                           path, major, minor);
    return 0;
}

/* ---- growable anonymous mappings (pipe buffers, slurped input) ----------- */

struct growbuf {
    uint8_t *p;
    size_t len, cap;
};

static int growbuf_reserve(struct growbuf *b, size_t need)
{
    if (need <= b->cap) return 0;
    size_t ncap = b->cap ? b->cap : ((size_t)1 << 20);
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) return LLM_ENOMEM;
        ncap *= 2;
    }
    void *np;
    if (b->p)
        np = mremap(b->p, b->cap, ncap, MREMAP_MAYMOVE);
    else
        np = mmap(NULL, ncap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (np == MAP_FAILED) return LLM_ENOMEM;
    b->p = np;
    b->cap = ncap;
    return 0;
}

static void growbuf_free(struct growbuf *b)
{
    if (b->p) munmap(b->p, b->cap);
    memset(b, 0, sizeof(*b));
}

/* ---- tensor records ------------------------------------------------------ */

struct rec {
    uint8_t dtype, ndim, comp;
    int64_t shape[LLM_MAX_DIMS];
    uint64_t raw, stored, xxh3;
    uint64_t off;      /* record offset */
    uint64_t data_off; /* data offset */
    void *owned;       /* decompressed data (random access) */
    int verified;
};

/* Parse and check one record header of hlen bytes (hlen already read from
 * bytes 4..8 and bounded by REC_MAX); fills r and name (NUL-terminated). */
static int parse_record(const char *path, const uint8_t *h, uint32_t hlen, uint64_t off,
                        int strict_reserved, struct rec *r, char name[NAME_MAX_LEN + 1])
{
    if (hlen < REC_FIXED + 16 || hlen > REC_MAX)
        return llm_err_set(LLM_EFORMAT, "'%s': record at offset %llu: header length %u out of "
                           "range", path, (unsigned long long)off, hlen);
    unsigned name_len = rd16(h + 8);
    unsigned ndim = h[11];
    if (name_len == 0 || name_len > NAME_MAX_LEN)
        return llm_err_set(LLM_EFORMAT, "'%s': record at offset %llu: name length %u not in "
                           "1..%u", path, (unsigned long long)off, name_len, NAME_MAX_LEN);
    if (ndim > LLM_MAX_DIMS)
        return llm_err_set(LLM_EFORMAT, "'%s': record at offset %llu: %u dimensions (at most %d)",
                           path, (unsigned long long)off, ndim, LLM_MAX_DIMS);
    if (hlen != rec_header_len(ndim, name_len))
        return llm_err_set(LLM_EFORMAT, "'%s': record at offset %llu: header length %u, expected "
                           "%u for its name and rank", path, (unsigned long long)off, hlen,
                           rec_header_len(ndim, name_len));
    uint64_t sum = XXH3_64bits(h, hlen - 8);
    if (sum != rd64(h + hlen - 8))
        return llm_err_set(LLM_ECHECKSUM, "'%s': record at offset %llu: header checksum mismatch",
                           path, (unsigned long long)off);
    const uint8_t *np = h + REC_FIXED + 8u * ndim;
    if (!name_ok(np, name_len))
        return llm_err_set(LLM_EFORMAT, "'%s': record at offset %llu: tensor name has a byte "
                           "outside printable ASCII", path, (unsigned long long)off);
    memcpy(name, np, name_len);
    name[name_len] = 0;
    if (!all_zero(np + name_len, hlen - 8 - (REC_FIXED + 8u * ndim + name_len)))
        return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': non-zero header padding", path, name);
    r->dtype = h[10];
    r->ndim = (uint8_t)ndim;
    r->comp = h[12];
    r->raw = rd64(h + 16);
    r->stored = rd64(h + 24);
    r->xxh3 = rd64(h + 32);
    r->off = off;
    r->owned = NULL;
    r->verified = 0;
    if (r->dtype >= LLM_DTYPE_COUNT)
        return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': unknown dtype code %u", path, name,
                           r->dtype);
    if (r->comp != COMP_NONE && r->comp != COMP_ZSTD)
        return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': unknown compression %u", path, name,
                           r->comp);
    if (strict_reserved && !all_zero(h + 13, 3))
        return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': non-zero reserved bytes", path, name);
    memset(r->shape, 0, sizeof(r->shape));
    for (unsigned i = 0; i < ndim; i++) {
        r->shape[i] = (int64_t)rd64(h + REC_FIXED + 8u * i);
        if (r->shape[i] < 0)
            return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': negative dimension %u", path,
                               name, i);
    }
    uint64_t numel, nbytes;
    if (llm_shape_numel((int)ndim, r->shape, &numel) ||
        llm_dtype_nbytes(r->dtype, numel, &nbytes))
        return llm_err_set(LLM_ERANGE, "'%s': tensor '%s': shape size overflows", path, name);
    if (nbytes != r->raw)
        return llm_err_set(LLM_ESHAPE, "'%s': tensor '%s': shape and dtype give %llu bytes, "
                           "record says %llu", path, name, (unsigned long long)nbytes,
                           (unsigned long long)r->raw);
    if (r->comp == COMP_NONE && r->stored != r->raw)
        return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': uncompressed but stored size %llu != "
                           "%llu", path, name, (unsigned long long)r->stored,
                           (unsigned long long)r->raw);
    if (r->comp == COMP_ZSTD &&
        (r->stored == 0 || r->stored >= r->raw || r->raw / ZSTD_MAX_RATIO >= r->stored))
        return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': compressed size %llu impossible for "
                           "%llu raw bytes", path, name, (unsigned long long)r->stored,
                           (unsigned long long)r->raw);
    if (off > UINT64_MAX - hlen - ALIGN)
        return llm_err_set(LLM_ERANGE, "'%s': tensor '%s': offset overflows", path, name);
    r->data_off = align64(off + hlen);
    if (r->data_off > UINT64_MAX - ALIGN - r->stored)
        return llm_err_set(LLM_ERANGE, "'%s': tensor '%s': data size overflows", path, name);
    return 0;
}

/* Decompress one zstd frame of exactly src_len bytes into dst[raw]. */
static int unzstd(const char *path, const char *name, ZSTD_DCtx *dctx, void *dst, uint64_t raw,
                  const void *src, uint64_t src_len)
{
    unsigned long long fcs = ZSTD_getFrameContentSize(src, src_len);
    if (fcs == ZSTD_CONTENTSIZE_ERROR || fcs == ZSTD_CONTENTSIZE_UNKNOWN)
        return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': bad zstd frame header", path, name);
    if (fcs != raw)
        return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': zstd frame holds %llu bytes, record "
                           "says %llu", path, name, fcs, (unsigned long long)raw);
    size_t fl = ZSTD_findFrameCompressedSize(src, src_len);
    if (ZSTD_isError(fl) || fl != src_len)
        return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': zstd frame does not fill its %llu "
                           "stored bytes", path, name, (unsigned long long)src_len);
    size_t n = ZSTD_decompressDCtx(dctx, dst, raw, src, src_len);
    if (ZSTD_isError(n))
        return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': zstd data corrupt: %s", path, name,
                           ZSTD_getErrorName(n));
    if (n != raw)
        return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': zstd data gives %zu of %llu bytes",
                           path, name, n, (unsigned long long)raw);
    return 0;
}

/* ---- the reader ---------------------------------------------------------- */

struct llm_artifact {
    char *path; /* for messages */
    unsigned flags;
    int major, minor;
    int strict; /* minor not newer than ours: reserved bytes must be zero */
    json_t *meta;
    json_t *head_meta; /* the metadata as the header had it (before the trailer) */
    json_t *trailer;   /* the trailing JSON, once read */
    int random;  /* all records indexed (file, memory, slurped pipe) */
    int ended;   /* trailer merged */

    /* random access */
    const uint8_t *buf;
    uint64_t len;
    struct llm_map map;
    struct growbuf slurp;
    int stdin_map; /* buf mmapped from fd 0 directly */

    struct rec *recs;
    char **names;
    size_t n, cap;
    struct nameset set;
    size_t cursor;
    ZSTD_DCtx *dctx;

    /* sequential */
    FILE *fp;
    uint64_t pos;
    uint64_t first_rec;
    struct growbuf data, raw;
    XXH3_state_t *xs;
};

static int ar_push(struct llm_artifact *a, const struct rec *r, const char *name)
{
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 64;
        struct rec *nr = realloc(a->recs, nc * sizeof(*nr));
        if (!nr) return llm_err_set(LLM_ENOMEM, "'%s': out of memory", a->path);
        a->recs = nr;
        char **nn = realloc(a->names, nc * sizeof(*nn));
        if (!nn) return llm_err_set(LLM_ENOMEM, "'%s': out of memory", a->path);
        a->names = nn;
        a->cap = nc;
    }
    if (nameset_find(&a->set, a->names, name) != (size_t)-1)
        return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s' appears twice (second at offset %llu)",
                           a->path, name, (unsigned long long)r->off);
    a->names[a->n] = strdup(name);
    if (!a->names[a->n]) return llm_err_set(LLM_ENOMEM, "'%s': out of memory", a->path);
    a->recs[a->n] = *r;
    if (nameset_add(&a->set, a->names, a->n)) {
        free(a->names[a->n]);
        return llm_err_set(LLM_ENOMEM, "'%s': out of memory", a->path);
    }
    a->n++;
    return 0;
}

/* Checks of the first 16 bytes: magic, version, header length. */
static int check_head_start(struct llm_artifact *a, const uint8_t *h, uint64_t avail)
{
    if (avail < 12 || memcmp(h, HEAD_MAGIC, 8))
        return llm_err_set(LLM_EFORMAT, "'%s': not an llm artifact (bad magic)", a->path);
    a->major = rd16(h + 8);
    a->minor = rd16(h + 10);
    if (a->major > LLM_ARTIFACT_MAJOR)
        return llm_err_set(LLM_EVERSION, "'%s': artifact format version %d.%d is newer than this "
                           "reader (%d.%d); upgrade llm", a->path, a->major, a->minor,
                           LLM_ARTIFACT_MAJOR, LLM_ARTIFACT_MINOR);
    if (a->major != LLM_ARTIFACT_MAJOR)
        return llm_err_set(LLM_EVERSION, "'%s': unknown artifact format version %d.%d (this "
                           "reader reads %d.x)", a->path, a->major, a->minor,
                           LLM_ARTIFACT_MAJOR);
    a->strict = a->minor <= LLM_ARTIFACT_MINOR;
    if (avail < 16)
        return llm_err_set(LLM_ETRUNC, "'%s': ends inside the header", a->path);
    uint32_t hl = rd32(h + 12);
    if (hl < HEAD_LEN || hl > HEAD_MAX || hl % 8)
        return llm_err_set(LLM_EFORMAT, "'%s': header length %u not a multiple of 8 in [%u, %u]",
                           a->path, hl, HEAD_LEN, HEAD_MAX);
    return 0;
}

/* Checks of the whole fixed header (hl bytes); returns meta length. */
static int check_head(struct llm_artifact *a, const uint8_t *h, uint32_t hl, uint64_t *meta_len)
{
    if (XXH3_64bits(h, hl - 8) != rd64(h + hl - 8))
        return llm_err_set(LLM_ECHECKSUM, "'%s': header checksum mismatch", a->path);
    if (a->strict && !all_zero(h + 32, hl - 8 - 32))
        return llm_err_set(LLM_EFORMAT, "'%s': non-zero reserved header bytes", a->path);
    *meta_len = rd64(h + 16);
    if (*meta_len < 2 || *meta_len > JSON_MAX)
        return llm_err_set(LLM_EFORMAT, "'%s': metadata length %llu not in 2..%llu", a->path,
                           (unsigned long long)*meta_len, (unsigned long long)JSON_MAX);
    return 0;
}

static int load_meta(struct llm_artifact *a, const uint8_t *h, const uint8_t *m, uint64_t len)
{
    if (XXH3_64bits(m, len) != rd64(h + 24))
        return llm_err_set(LLM_ECHECKSUM, "'%s': metadata checksum mismatch", a->path);
    int rc = parse_json_object(a->path, "metadata", m, len, &a->meta);
    if (rc) return rc;
    return check_format_member(a->path, a->meta, a->major, a->minor);
}

/* End record fields, checked against what came before. */
struct endrec {
    uint64_t count, trailer_len, trailer_xxh3;
};

static int check_end(struct llm_artifact *a, const uint8_t *e, uint64_t off, struct endrec *er)
{
    if (memcmp(e, END_MAGIC, 4))
        return llm_err_set(LLM_EFORMAT, "'%s': no end record at offset %llu", a->path,
                           (unsigned long long)off);
    if (rd32(e + 4) != END_LEN)
        return llm_err_set(LLM_EFORMAT, "'%s': end record length %u, expected %u", a->path,
                           rd32(e + 4), END_LEN);
    if (XXH3_64bits(e, END_LEN - 8) != rd64(e + END_LEN - 8))
        return llm_err_set(LLM_ECHECKSUM, "'%s': end record checksum mismatch", a->path);
    if (a->strict && !all_zero(e + 32, 8))
        return llm_err_set(LLM_EFORMAT, "'%s': non-zero reserved bytes in the end record",
                           a->path);
    er->count = rd64(e + 8);
    er->trailer_len = rd64(e + 16);
    er->trailer_xxh3 = rd64(e + 24);
    if (er->count != a->n)
        return llm_err_set(LLM_EFORMAT, "'%s': end record counts %llu tensors, found %zu", a->path,
                           (unsigned long long)er->count, a->n);
    if (er->trailer_len < 2 || er->trailer_len > JSON_MAX)
        return llm_err_set(LLM_EFORMAT, "'%s': trailer length %llu not in 2..%llu", a->path,
                           (unsigned long long)er->trailer_len, (unsigned long long)JSON_MAX);
    return 0;
}

static int merge_trailer(struct llm_artifact *a, const uint8_t *t, const struct endrec *er)
{
    if (XXH3_64bits(t, er->trailer_len) != er->trailer_xxh3)
        return llm_err_set(LLM_ECHECKSUM, "'%s': trailer checksum mismatch", a->path);
    json_t *tr;
    int rc = parse_json_object(a->path, "trailer", t, er->trailer_len, &tr);
    if (rc) return rc;
    if (json_object_get(tr, "format")) {
        json_decref(tr);
        return llm_err_set(LLM_EFORMAT, "'%s': trailer may not hold \"format\"", a->path);
    }
    json_decref(a->trailer);
    json_decref(a->head_meta);
    a->trailer = tr;
    a->head_meta = json_deep_copy(a->meta);
    rc = !a->head_meta || json_object_update_recursive(a->meta, tr);
    if (rc) return llm_err_set(LLM_ENOMEM, "'%s': out of memory merging the trailer", a->path);
    a->ended = 1;
    return 0;
}

/* Footer fields; checked against the end record and file size. */
static int check_footer(struct llm_artifact *a, const uint8_t *f, uint64_t index_off,
                        uint64_t end_off, uint64_t file_size)
{
    if (memcmp(f + 56, FOOT_MAGIC, 8))
        return llm_err_set(LLM_EFORMAT, "'%s': bad footer magic (truncated or not an artifact)",
                           a->path);
    if (XXH3_64bits(f, 48) != rd64(f + 48))
        return llm_err_set(LLM_ECHECKSUM, "'%s': footer checksum mismatch", a->path);
    if (a->strict && !all_zero(f + 40, 8))
        return llm_err_set(LLM_EFORMAT, "'%s': non-zero reserved bytes in the footer", a->path);
    if (rd64(f) != index_off || rd64(f + 8) != a->n || rd64(f + 24) != end_off ||
        rd64(f + 32) != file_size)
        return llm_err_set(LLM_EFORMAT, "'%s': footer disagrees with the file (index at %llu "
                           "count %llu end %llu size %llu; found %llu %zu %llu %llu)", a->path,
                           (unsigned long long)rd64(f), (unsigned long long)rd64(f + 8),
                           (unsigned long long)rd64(f + 24), (unsigned long long)rd64(f + 32),
                           (unsigned long long)index_off, a->n, (unsigned long long)end_off,
                           (unsigned long long)file_size);
    return 0;
}

/* Validate a whole artifact in a->buf[0..len). */
static int index_buffer(struct llm_artifact *a)
{
    const uint8_t *b = a->buf;
    uint64_t len = a->len;
    int rc = check_head_start(a, b, len);
    if (rc) return rc;
    uint32_t hl = rd32(b + 12);
    if (len < (uint64_t)HEAD_LEN + FOOT_LEN || len < hl)
        return llm_err_set(LLM_ETRUNC, "'%s': %llu bytes, too short to be an artifact", a->path,
                           (unsigned long long)len);
    uint64_t meta_len;
    if ((rc = check_head(a, b, hl, &meta_len))) return rc;
    if (meta_len > len - hl)
        return llm_err_set(LLM_ETRUNC, "'%s': metadata (%llu bytes) runs past the end of the "
                           "file", a->path, (unsigned long long)meta_len);
    if ((rc = load_meta(a, b, b + hl, meta_len))) return rc;

    /* footer and index first, so that the count is bounded before the walk */
    const uint8_t *f = b + len - FOOT_LEN;
    if (memcmp(f + 56, FOOT_MAGIC, 8))
        return llm_err_set(LLM_EFORMAT, "'%s': bad footer magic (truncated or not an artifact)",
                           a->path);
    if (XXH3_64bits(f, 48) != rd64(f + 48))
        return llm_err_set(LLM_ECHECKSUM, "'%s': footer checksum mismatch", a->path);
    uint64_t index_off = rd64(f), count = rd64(f + 8);
    if (count > len / ALIGN || index_off % ALIGN || index_off > len - FOOT_LEN ||
        (len - FOOT_LEN - index_off) / 8 != count || (len - FOOT_LEN - index_off) % 8)
        return llm_err_set(LLM_EFORMAT, "'%s': footer index (offset %llu, %llu entries) does "
                           "not end at the footer", a->path, (unsigned long long)index_off,
                           (unsigned long long)count);
    const uint8_t *idx = b + index_off;
    if (XXH3_64bits(idx, count * 8) != rd64(f + 16))
        return llm_err_set(LLM_ECHECKSUM, "'%s': index checksum mismatch", a->path);

    /* walk the records */
    uint64_t pos = align64(hl + meta_len);
    if (!all_zero(b + hl + meta_len, (size_t)(pos - hl - meta_len)))
        return llm_err_set(LLM_EFORMAT, "'%s': non-zero padding after the metadata", a->path);
    char name[NAME_MAX_LEN + 1];
    for (;;) {
        if (pos > index_off || index_off - pos < 8)
            return llm_err_set(LLM_EFORMAT, "'%s': record at offset %llu runs into the index",
                               a->path, (unsigned long long)pos);
        const uint8_t *h = b + pos;
        if (!memcmp(h, END_MAGIC, 4)) break;
        if (memcmp(h, REC_MAGIC, 4))
            return llm_err_set(LLM_EFORMAT, "'%s': no tensor record at offset %llu", a->path,
                               (unsigned long long)pos);
        uint32_t rl = rd32(h + 4);
        if (rl > index_off - pos)
            return llm_err_set(LLM_EFORMAT, "'%s': record header at offset %llu runs into the "
                               "index", a->path, (unsigned long long)pos);
        struct rec r;
        if ((rc = parse_record(a->path, h, rl, pos, a->strict, &r, name))) return rc;
        if (r.data_off > index_off || r.stored > index_off - r.data_off)
            return llm_err_set(LLM_ETRUNC, "'%s': tensor '%s': data (%llu bytes at %llu) runs "
                               "past the end record", a->path, name,
                               (unsigned long long)r.stored, (unsigned long long)r.data_off);
        if (!all_zero(h + rl, (size_t)(r.data_off - pos - rl)))
            return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': non-zero padding before data",
                               a->path, name);
        if (a->n >= count)
            return llm_err_set(LLM_EFORMAT, "'%s': more tensor records than the index's %llu",
                               a->path, (unsigned long long)count);
        if (rd64(idx + 8 * a->n) != pos)
            return llm_err_set(LLM_EFORMAT, "'%s': index entry %zu says offset %llu, record is "
                               "at %llu", a->path, a->n, (unsigned long long)rd64(idx + 8 * a->n),
                               (unsigned long long)pos);
        if ((rc = ar_push(a, &r, name))) return rc;
        uint64_t end = r.data_off + r.stored, next = align64(end);
        if (next > index_off)
            return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': runs into the index", a->path,
                               name);
        if (!all_zero(b + end, (size_t)(next - end)))
            return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': non-zero padding after data",
                               a->path, name);
        pos = next;
    }
    if (index_off - pos < END_LEN)
        return llm_err_set(LLM_EFORMAT, "'%s': end record at offset %llu runs into the index",
                           a->path, (unsigned long long)pos);
    struct endrec er;
    if ((rc = check_end(a, b + pos, pos, &er))) return rc;
    uint64_t t0 = pos + END_LEN;
    if (er.trailer_len > index_off - t0)
        return llm_err_set(LLM_EFORMAT, "'%s': trailer runs into the index", a->path);
    if (align64(t0 + er.trailer_len) != index_off)
        return llm_err_set(LLM_EFORMAT, "'%s': index at %llu, expected right after the trailer "
                           "at %llu", a->path, (unsigned long long)index_off,
                           (unsigned long long)align64(t0 + er.trailer_len));
    if (!all_zero(b + t0 + er.trailer_len, (size_t)(index_off - t0 - er.trailer_len)))
        return llm_err_set(LLM_EFORMAT, "'%s': non-zero padding after the trailer", a->path);
    if ((rc = check_footer(a, f, index_off, pos, len))) return rc;
    return merge_trailer(a, b + t0, &er);
}

static struct llm_artifact *ar_new(const char *name, unsigned flags)
{
    struct llm_artifact *a = calloc(1, sizeof(*a));
    if (!a) return NULL;
    a->path = strdup(name ? name : "<memory>");
    a->flags = flags;
    a->map.fd = -1;
    a->dctx = ZSTD_createDCtx();
    if (!a->path || !a->dctx) {
        free(a->path);
        ZSTD_freeDCtx(a->dctx);
        free(a);
        return NULL;
    }
    return a;
}

int llm_ar_open_mem(struct llm_artifact **out, const void *buf, size_t len, const char *name,
                    unsigned flags)
{
    *out = NULL;
    struct llm_artifact *a = ar_new(name, flags);
    if (!a) return llm_err_set(LLM_ENOMEM, "out of memory");
    a->buf = buf;
    a->len = len;
    a->random = 1;
    int rc = index_buffer(a);
    if (rc) {
        llm_ar_close(a);
        return rc;
    }
    *out = a;
    return 0;
}

/* ---- sequential reading from a stream ------------------------------------ */

static int s_read(struct llm_artifact *a, void *buf, size_t n, const char *what)
{
    size_t got = n ? fread(buf, 1, n, a->fp) : 0;
    if (got != n) {
        if (ferror(a->fp))
            return llm_err_set(LLM_EIO, "'%s': read error in %s: %s", a->path, what,
                               strerror(errno));
        return llm_err_set(LLM_ETRUNC, "'%s': input ends inside %s (offset %llu)", a->path, what,
                           (unsigned long long)(a->pos + got));
    }
    a->pos += n;
    return 0;
}

/* Read and check the zero padding up to the next multiple of 64. */
static int s_pad(struct llm_artifact *a, const char *what)
{
    uint8_t z[ALIGN];
    size_t n = (size_t)(align64(a->pos) - a->pos);
    int rc = s_read(a, z, n, what);
    if (rc) return rc;
    if (!all_zero(z, n))
        return llm_err_set(LLM_EFORMAT, "'%s': non-zero padding after %s", a->path, what);
    return 0;
}

/* Read stored bytes in chunks, so that a lying size fails at end of input
 * rather than at allocation. */
static int s_read_data(struct llm_artifact *a, struct growbuf *b, uint64_t n, const char *what)
{
    const uint64_t chunk = (uint64_t)64 << 20;
    b->len = 0;
    while (b->len < n) {
        uint64_t step = n - b->len < chunk ? n - b->len : chunk;
        if (growbuf_reserve(b, (size_t)(b->len + step)))
            return llm_err_set(LLM_ENOMEM, "'%s': out of memory for %s (%llu bytes)", a->path,
                               what, (unsigned long long)n);
        int rc = s_read(a, b->p + b->len, (size_t)step, what);
        if (rc) return rc;
        b->len += step;
    }
    return 0;
}

static int open_stream(struct llm_artifact *a)
{
    uint8_t h[HEAD_MAX];
    int rc;
    size_t got = fread(h, 1, 16, a->fp);
    a->pos = got;
    if ((rc = check_head_start(a, h, got))) return rc;
    uint32_t hl = rd32(h + 12);
    if ((rc = s_read(a, h + 16, hl - 16, "the header"))) return rc;
    uint64_t meta_len;
    if ((rc = check_head(a, h, hl, &meta_len))) return rc;
    rc = s_read_data(a, &a->data, meta_len, "the metadata");
    if (!rc) rc = load_meta(a, h, a->data.p, meta_len);
    if (!rc) rc = s_pad(a, "the metadata");
    a->first_rec = a->pos;
    return rc;
}

/* Read the rest of the stream after the end record's first 8 bytes. */
static int s_finish(struct llm_artifact *a, const uint8_t *e8)
{
    uint8_t e[END_LEN];
    uint64_t end_off = a->pos - 8;
    memcpy(e, e8, 8);
    int rc = s_read(a, e + 8, END_LEN - 8, "the end record");
    if (rc) return rc;
    struct endrec er;
    if ((rc = check_end(a, e, end_off, &er))) return rc;
    if ((rc = s_read_data(a, &a->data, er.trailer_len, "the trailer"))) return rc;
    if ((rc = s_pad(a, "the trailer"))) return rc;
    const uint8_t *t = a->data.p;
    /* the index: must list the offsets seen, in order */
    uint64_t index_off = a->pos;
    XXH3_64bits_reset(a->xs);
    for (size_t i = 0; i < a->n && !rc; i++) {
        uint8_t v[8];
        rc = s_read(a, v, 8, "the index");
        if (!rc && rd64(v) != a->recs[i].off)
            rc = llm_err_set(LLM_EFORMAT, "'%s': index entry %zu says offset %llu, record is at "
                             "%llu", a->path, i, (unsigned long long)rd64(v),
                             (unsigned long long)a->recs[i].off);
        XXH3_64bits_update(a->xs, v, 8);
    }
    uint8_t f[FOOT_LEN];
    if (!rc) rc = s_read(a, f, FOOT_LEN, "the footer");
    if (!rc) rc = check_footer(a, f, index_off, end_off, a->pos);
    if (!rc && XXH3_64bits_digest(a->xs) != rd64(f + 16))
        rc = llm_err_set(LLM_ECHECKSUM, "'%s': index checksum mismatch", a->path);
    if (!rc && fgetc(a->fp) != EOF)
        rc = llm_err_set(LLM_EFORMAT, "'%s': data after the footer (offset %llu)", a->path,
                         (unsigned long long)a->pos);
    if (!rc) rc = merge_trailer(a, t, &er);
    return rc;
}

/* Tensor i as its record describes it (no data). */
static void rec_tensor(const struct llm_artifact *a, size_t i, struct llm_tensor *t)
{
    const struct rec *r = &a->recs[i];
    memset(t, 0, sizeof(*t));
    t->name = a->names[i];
    t->dtype = r->dtype;
    t->ndim = r->ndim;
    memcpy(t->shape, r->shape, sizeof(t->shape));
    t->nbytes = r->raw;
    t->xxh3 = r->xxh3;
}

static int fill_tensor(struct llm_artifact *a, size_t i, struct llm_tensor *t, const void *data)
{
    const struct rec *r = &a->recs[i];
    rec_tensor(a, i, t);
    t->data = data;
    if ((a->flags & LLM_AR_VERIFY) && !r->verified) {
        int rc = llm_ar_verify_tensor(a, t);
        if (rc) return rc;
        a->recs[i].verified = 1;
    }
    return 0;
}

static int s_next(struct llm_artifact *a, struct llm_tensor *t)
{
    if (a->ended) return 0;
    uint8_t h[REC_MAX];
    uint64_t off = a->pos;
    int rc = s_read(a, h, 8, "a record header");
    if (rc) return rc;
    if (!memcmp(h, END_MAGIC, 4)) {
        rc = s_finish(a, h);
        return rc ? rc : 0;
    }
    if (memcmp(h, REC_MAGIC, 4))
        return llm_err_set(LLM_EFORMAT, "'%s': no tensor record at offset %llu", a->path,
                           (unsigned long long)off);
    uint32_t rl = rd32(h + 4);
    if (rl < REC_FIXED + 16 || rl > REC_MAX)
        return llm_err_set(LLM_EFORMAT, "'%s': record at offset %llu: header length %u out of "
                           "range", a->path, (unsigned long long)off, rl);
    if ((rc = s_read(a, h + 8, rl - 8, "a record header"))) return rc;
    struct rec r;
    char name[NAME_MAX_LEN + 1];
    if ((rc = parse_record(a->path, h, rl, off, a->strict, &r, name))) return rc;
    if ((rc = s_pad(a, "a record header"))) return rc;
    if ((rc = ar_push(a, &r, name))) return rc;
    char what[NAME_MAX_LEN + 32];
    snprintf(what, sizeof(what), "tensor '%s' data", name);
    if ((rc = s_read_data(a, &a->data, r.stored, what))) return rc;
    if ((rc = s_pad(a, "tensor data"))) return rc;
    const void *data = a->data.p;
    if (r.comp == COMP_ZSTD) {
        if (growbuf_reserve(&a->raw, (size_t)r.raw))
            return llm_err_set(LLM_ENOMEM, "'%s': tensor '%s': out of memory (%llu bytes)",
                               a->path, name, (unsigned long long)r.raw);
        if ((rc = unzstd(a->path, name, a->dctx, a->raw.p, r.raw, a->data.p, r.stored)))
            return rc;
        data = a->raw.p;
    }
    if ((rc = fill_tensor(a, a->n - 1, t, data))) return rc;
    return 1;
}

/* Read all of fp into an anonymous mapping. */
static int slurp(struct llm_artifact *a)
{
    const size_t chunk = (size_t)16 << 20;
    for (;;) {
        if (growbuf_reserve(&a->slurp, a->slurp.len + chunk))
            return llm_err_set(LLM_ENOMEM, "'%s': out of memory reading the input", a->path);
        size_t got = fread(a->slurp.p + a->slurp.len, 1, chunk, a->fp);
        a->slurp.len += got;
        if (got < chunk) break;
    }
    if (ferror(a->fp))
        return llm_err_set(LLM_EIO, "'%s': read error: %s", a->path, strerror(errno));
    a->buf = a->slurp.p;
    a->len = a->slurp.len;
    a->random = 1;
    return index_buffer(a);
}

int llm_ar_open(struct llm_artifact **out, const char *path, unsigned flags)
{
    *out = NULL;
    int is_stdin = !path || !strcmp(path, "-");
    struct llm_artifact *a = ar_new(is_stdin ? "<stdin>" : path, flags);
    if (!a) return llm_err_set(LLM_ENOMEM, "out of memory");
    int rc = 0;
    struct stat st;
    if (is_stdin) {
        if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
            lseek(STDIN_FILENO, 0, SEEK_CUR) == 0) {
            void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, STDIN_FILENO, 0);
            if (p == MAP_FAILED) {
                rc = llm_err_set(LLM_EIO, "unable to map '%s': %s", a->path, strerror(errno));
            } else {
                a->stdin_map = 1;
                a->buf = p;
                a->len = (uint64_t)st.st_size;
                a->random = 1;
                rc = index_buffer(a);
            }
        } else {
            a->fp = stdin;
        }
    } else if (stat(path, &st) != 0) {
        rc = llm_err_set(LLM_EIO, "unable to open '%s': %s", path, strerror(errno));
    } else if (S_ISREG(st.st_mode)) {
        rc = llm_map_file(path, &a->map);
        if (!rc) {
            a->buf = a->map.data;
            a->len = a->map.len;
            a->random = 1;
            rc = a->buf ? index_buffer(a)
                        : llm_err_set(LLM_ETRUNC, "'%s': empty file, not an artifact", path);
        }
    } else if (S_ISDIR(st.st_mode)) {
        rc = llm_err_set(LLM_EINVAL, "'%s': is a folder, not an artifact", path);
    } else {
        a->fp = fopen(path, "rb");
        if (!a->fp) rc = llm_err_set(LLM_EIO, "unable to open '%s': %s", path, strerror(errno));
    }
    if (!rc && a->fp) {
        if (flags & LLM_AR_LOAD_ALL) {
            rc = slurp(a);
        } else {
            a->xs = XXH3_createState();
            rc = a->xs ? open_stream(a) : llm_err_set(LLM_ENOMEM, "out of memory");
        }
    }
    if (rc) {
        llm_ar_close(a);
        return rc;
    }
    *out = a;
    return 0;
}

void llm_ar_close(struct llm_artifact *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->n; i++) {
        free(a->recs[i].owned);
        free(a->names[i]);
    }
    free(a->recs);
    free(a->names);
    nameset_free(&a->set);
    json_decref(a->meta);
    json_decref(a->head_meta);
    json_decref(a->trailer);
    llm_unmap(&a->map);
    if (a->stdin_map) munmap((void *)a->buf, a->len);
    growbuf_free(&a->slurp);
    growbuf_free(&a->data);
    growbuf_free(&a->raw);
    if (a->fp && a->fp != stdin) fclose(a->fp);
    if (a->xs) XXH3_freeState(a->xs);
    ZSTD_freeDCtx(a->dctx);
    free(a->path);
    free(a);
}

void llm_ar_version(const struct llm_artifact *a, int *major, int *minor)
{
    if (major) *major = a->major;
    if (minor) *minor = a->minor;
}

const json_t *llm_ar_meta(const struct llm_artifact *a)
{
    return a->meta;
}

int llm_ar_is_seekable(const struct llm_artifact *a)
{
    return a->random;
}

size_t llm_ar_count(const struct llm_artifact *a)
{
    return a->n;
}

const json_t *llm_ar_header_meta(const struct llm_artifact *a)
{
    return a->head_meta ? a->head_meta : a->meta;
}

const json_t *llm_ar_trailer(const struct llm_artifact *a)
{
    return a->trailer;
}

const char *llm_ar_path(const struct llm_artifact *a)
{
    return a->path;
}

uint64_t llm_ar_offset(const struct llm_artifact *a, size_t i)
{
    return i < a->n ? a->recs[i].off : 0;
}

uint64_t llm_ar_stored_size(const struct llm_artifact *a, size_t i)
{
    return i < a->n ? a->recs[i].stored : 0;
}

int llm_ar_get(struct llm_artifact *a, size_t i, struct llm_tensor *t)
{
    if (!a->random)
        return llm_err_set(LLM_EINVAL, "'%s': random access needs a file (or reading the whole "
                           "stream first)", a->path);
    if (i >= a->n)
        return llm_err_set(LLM_EINVAL, "'%s': tensor index %zu out of range (%zu tensors)",
                           a->path, i, a->n);
    struct rec *r = &a->recs[i];
    const void *data = a->buf + r->data_off;
    if (r->comp == COMP_ZSTD) {
        if (!r->owned) {
            void *p = NULL;
            if (posix_memalign(&p, ALIGN, r->raw ? (size_t)r->raw : 1))
                return llm_err_set(LLM_ENOMEM, "'%s': tensor '%s': out of memory (%llu bytes)",
                                   a->path, a->names[i], (unsigned long long)r->raw);
            int rc = unzstd(a->path, a->names[i], a->dctx, p, r->raw, data, r->stored);
            if (rc) {
                free(p);
                return rc;
            }
            r->owned = p;
        }
        data = r->owned;
    }
    return fill_tensor(a, i, t, data);
}

int llm_ar_info(const struct llm_artifact *a, size_t i, struct llm_tensor *t)
{
    if (i >= a->n)
        return llm_err_set(LLM_EINVAL, "'%s': tensor index %zu out of range (%zu tensors)",
                           a->path, i, a->n);
    rec_tensor(a, i, t);
    return 0;
}

void llm_ar_release(struct llm_artifact *a, size_t i)
{
    if (!a || i >= a->n) return;
    struct rec *r = &a->recs[i];
    if (r->owned) {
        free(r->owned);
        r->owned = NULL;
    } else if (a->map.data && r->comp == COMP_NONE) {
        llm_map_release(&a->map, r->data_off, r->stored);
    }
}

int llm_ar_find(struct llm_artifact *a, const char *name, struct llm_tensor *t)
{
    if (!a->random)
        return llm_err_set(LLM_EINVAL, "'%s': random access needs a file (or reading the whole "
                           "stream first)", a->path);
    size_t i = nameset_find(&a->set, a->names, name);
    if (i == (size_t)-1)
        return llm_err_set(LLM_ENOTFOUND, "'%s': no tensor '%s'", a->path, name);
    return llm_ar_get(a, i, t);
}

int llm_ar_next(struct llm_artifact *a, struct llm_tensor *t)
{
    if (!a->random) return s_next(a, t);
    if (a->cursor >= a->n) return 0;
    int rc = llm_ar_get(a, a->cursor, t);
    if (rc) return rc;
    a->cursor++;
    return 1;
}

int llm_ar_verify_tensor(const struct llm_artifact *a, const struct llm_tensor *t)
{
    uint64_t h = XXH3_64bits(t->data, (size_t)t->nbytes);
    if (h != t->xxh3)
        return llm_err_set(LLM_ECHECKSUM, "'%s': tensor '%s' checksum mismatch (stored %016llx, "
                           "computed %016llx)", a->path, t->name, (unsigned long long)t->xxh3,
                           (unsigned long long)h);
    return 0;
}

int llm_ar_verify_all(struct llm_artifact *a)
{
    if (!a->random)
        return llm_err_set(LLM_EINVAL,
                           "'%s': verifying every tensor needs a file (or reading "
                           "the whole stream first)",
                           a->path);
    /* stored data is hashed in place, tensors spread over the threads; the
     * first mismatch in file order is the one reported */
    size_t n = a->n;
    unsigned char *bad = calloc(n ? n : 1, 1);
    if (!bad) return llm_err_set(LLM_ENOMEM, "'%s': out of memory", a->path);
    int64_t ni = (int64_t)n;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < ni; i++) {
        const struct rec *r = &a->recs[i];
        if (r->verified || r->comp != COMP_NONE) continue;
        bad[i] = XXH3_64bits(a->buf + r->data_off, (size_t)r->raw) != r->xxh3;
    }
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        struct rec *r = &a->recs[i];
        if (r->verified) continue;
        struct llm_tensor t;
        if (r->comp != COMP_NONE) { /* decompressed (and kept) one at a time */
            unsigned keep = a->flags;
            a->flags |= LLM_AR_VERIFY;
            rc = llm_ar_get(a, i, &t);
            a->flags = keep;
            continue;
        }
        if (bad[i]) {
            rec_tensor(a, i, &t);
            t.data = a->buf + r->data_off;
            rc = llm_ar_verify_tensor(a, &t);
            if (rc) break;
        }
        r->verified = 1;
    }
    free(bad);
    return rc;
}
