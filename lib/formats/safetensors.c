/* safetensors.c - validating, zero-copy reader and a writer for HF safetensors.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of
 * JSON ({"name": {"dtype", "shape", "data_offsets": [begin, end)}, ...,
 * optional "__metadata__": {string: string}}) and the data section, with
 * offsets relative to the start of the data section.
 *
 * Design: each file is mmapped once and tensor data pointers point into the
 * mapping, so opening a 100 GB checkpoint costs the header parses only.  The
 * price is that every byte range handed out must be proven to lie inside its
 * mapping before anyone reads it: the whole header is validated when the
 * file is opened (sizes, types, overflow, ranges, overlaps) and afterwards
 * nothing re-checks.  Each violation has its own message naming the file and
 * the tensor.  Two things HF's reader refuses are accepted here because
 * they cannot cause a wrong read: holes between tensors (and unused bytes at
 * the end of the data section), and tensors present in a shard but not
 * listed in the index (they are opened like the others).  Data pointers are
 * only as aligned as the file makes them (HF pads the header to 8 bytes).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/io.h"
#include "llm/safetensors.h"
#include "../core/text_internal.h"
#include "torchbin_internal.h"

#define ST_MAX_HEADER 100000000ull /* the limit HF's reader applies */
#define ST_MAX_INDEX (64u << 20)   /* model.safetensors.index.json */
#define ST_INDEX_NAME "model.safetensors.index.json"
#define ST_SINGLE_NAME "model.safetensors"
#define TB_INDEX_NAME "pytorch_model.bin.index.json"
#define TB_SINGLE_NAME "pytorch_model.bin"

struct st_file {
    char *path;
    struct llm_map map;  /* map.data is NULL for an in-memory file */
    const uint8_t *base; /* the whole file */
    uint64_t size;
    uint64_t data_off; /* 8 + header length */
};

struct st_tensor {
    struct llm_tensor t; /* first member: llm_st_get returns &ents[i].t */
    char *name;
    int file;
    uint64_t begin, end; /* within the data section */
};

struct llm_st {
    struct st_file *files;
    size_t nfiles;
    struct st_tensor *ents;
    size_t n, cap;
    size_t *by_name; /* indices into ents sorted by name */
    json_t *metadata;
    char *index_path; /* the shard index opened, or NULL */
};

/* ---- small helpers ------------------------------------------------------ */

static uint64_t rd_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static char *path_join(const char *dir, const char *name)
{
    size_t dl = dir ? strlen(dir) : 0, nl = strlen(name);
    char *p = malloc(dl + nl + 2);
    if (!p) return NULL;
    if (dl) {
        memcpy(p, dir, dl);
        if (p[dl - 1] != '/') p[dl++] = '/';
    }
    memcpy(p + dl, name, nl + 1);
    return p;
}

/* Folder part of a path ("" for a bare name); malloc'd. */
static char *path_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup("");
    size_t n = (size_t)(slash - path);
    if (n == 0) n = 1; /* "/x" -> "/" */
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, path, n);
    d[n] = 0;
    return d;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int is_regular(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static struct llm_st *st_new(void)
{
    return calloc(1, sizeof(struct llm_st));
}

static int st_add_file(struct llm_st *st, const char *path, size_t *index)
{
    struct st_file *nf = realloc(st->files, (st->nfiles + 1) * sizeof(*nf));
    if (!nf) return llm_err_set(LLM_ENOMEM, "'%s': out of memory", path);
    st->files = nf;
    struct st_file *f = &st->files[st->nfiles];
    memset(f, 0, sizeof(*f));
    f->map.fd = -1;
    f->path = strdup(path);
    if (!f->path) return llm_err_set(LLM_ENOMEM, "'%s': out of memory", path);
    *index = st->nfiles++;
    return 0;
}

static struct st_tensor *st_push(struct llm_st *st)
{
    if (st->n == st->cap) {
        size_t nc = st->cap ? st->cap * 2 : 64;
        struct st_tensor *ne = realloc(st->ents, nc * sizeof(*ne));
        if (!ne) return NULL;
        st->ents = ne;
        st->cap = nc;
    }
    struct st_tensor *e = &st->ents[st->n++];
    memset(e, 0, sizeof(*e));
    return e;
}

void llm_st_close(struct llm_st *st)
{
    if (!st) return;
    for (size_t i = 0; i < st->nfiles; i++) {
        if (st->files[i].map.data || st->files[i].map.fd >= 0) llm_unmap(&st->files[i].map);
        free(st->files[i].path);
    }
    for (size_t i = 0; i < st->n; i++)
        free(st->ents[i].name);
    free(st->files);
    free(st->ents);
    free(st->by_name);
    json_decref(st->metadata);
    free(st->index_path);
    free(st);
}

/* ---- one file's header ---------------------------------------------------- */

/* Reads a non-negative JSON integer; 0 when it is one. */
static int get_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0) return -2;
    *out = (uint64_t)x;
    return 0;
}

static int check_metadata(const json_t *meta, const char *path)
{
    char b1[160];
    if (!json_is_object(meta))
        return llm_err_set(LLM_EFORMAT, "'%s': __metadata__ is not an object of strings", path);
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)meta, k, v)
    {
        if (!json_is_string(v))
            return llm_err_set(LLM_EFORMAT, "'%s': __metadata__ value of '%s' is not a string",
                               path, llm_quote(k, b1, sizeof(b1)));
    }
    return 0;
}

static int parse_entry(struct llm_st *st, size_t fi, const char *name, const json_t *v,
                       uint64_t dsize)
{
    const char *path = st->files[fi].path;
    char qn[160], b2[160], sh[256];
    llm_quote(name, qn, sizeof(qn));
    if (!json_is_object(v))
        return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': entry is not an object", path, qn);

    const json_t *jd = json_object_get(v, "dtype");
    const json_t *js = json_object_get(v, "shape");
    const json_t *jo = json_object_get(v, "data_offsets");
    if (!jd) return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s' has no dtype", path, qn);
    if (!json_is_string(jd))
        return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': dtype is not a string", path, qn);
    int dt = llm_dtype_from_st_name(json_string_value(jd));
    if (dt < 0)
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': tensor '%s' has unknown dtype '%s'", path, qn,
                           llm_quote(json_string_value(jd), b2, sizeof(b2)));

    if (!js) return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s' has no shape", path, qn);
    if (!json_is_array(js))
        return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': shape is not an array", path, qn);
    size_t ndim = json_array_size(js);
    if (ndim > LLM_MAX_DIMS)
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': tensor '%s' has %zu dimensions (at most %d)",
                           path, qn, ndim, LLM_MAX_DIMS);
    int64_t shape[LLM_MAX_DIMS];
    for (size_t i = 0; i < ndim; i++) {
        const json_t *d = json_array_get(js, i);
        if (!json_is_integer(d))
            return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': shape[%zu] is not an integer", path,
                               qn, i);
        if (json_integer_value(d) < 0)
            return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': shape[%zu] is negative (%lld)",
                               path, qn, i, (long long)json_integer_value(d));
        shape[i] = (int64_t)json_integer_value(d);
    }
    llm_shape_str(sh, sizeof(sh), (int)ndim, shape);

    if (!jo) return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s' has no data_offsets", path, qn);
    uint64_t begin, end;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) ||
        !json_is_integer(json_array_get(jo, 1)))
        return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': data_offsets is not a pair of integers",
                           path, qn);
    if (get_u64(json_array_get(jo, 0), &begin) || get_u64(json_array_get(jo, 1), &end))
        return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s': data_offsets has a negative value",
                           path, qn);
    if (end < begin)
        return llm_err_set(LLM_EFORMAT,
                           "'%s': tensor '%s': data_offsets [%llu, %llu) end before "
                           "they begin",
                           path, qn, (unsigned long long)begin, (unsigned long long)end);
    if (end > dsize)
        return llm_err_set(LLM_ETRUNC,
                           "'%s': tensor '%s' data [%llu, %llu) exceeds the data section "
                           "(%llu bytes)",
                           path, qn, (unsigned long long)begin, (unsigned long long)end,
                           (unsigned long long)dsize);

    uint64_t numel, nbytes;
    if (llm_shape_numel((int)ndim, shape, &numel) || llm_dtype_nbytes(dt, numel, &nbytes))
        return llm_err_set(LLM_ERANGE, "'%s': tensor '%s': size of shape %s of %s overflows", path,
                           qn, sh, json_string_value(jd));
    if (nbytes != end - begin)
        return llm_err_set(LLM_ESHAPE,
                           "'%s': tensor '%s': shape %s of %s needs %llu bytes but data_offsets "
                           "[%llu, %llu) hold %llu",
                           path, qn, sh, json_string_value(jd), (unsigned long long)nbytes,
                           (unsigned long long)begin, (unsigned long long)end,
                           (unsigned long long)(end - begin));

    struct st_tensor *e = st_push(st);
    char *nm = strdup(name);
    if (!e || !nm) {
        free(nm);
        if (e) st->n--;
        return llm_err_set(LLM_ENOMEM, "'%s': out of memory", path);
    }
    e->name = nm;
    e->file = (int)fi;
    e->begin = begin;
    e->end = end;
    e->t.name = nm;
    e->t.dtype = dt;
    e->t.ndim = (int)ndim;
    memcpy(e->t.shape, shape, ndim * sizeof(int64_t));
    e->t.nbytes = nbytes;
    e->t.xxh3 = 0;
    /* data pointers are set once the file's entries stop moving (st_fix_data) */
    return 0;
}

static int cmp_range(const void *a, const void *b)
{
    const struct st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Validates file fi (already mapped: base/size set) and appends its tensors,
 * sorted by offset, to st->ents. */
static int parse_file(struct llm_st *st, size_t fi)
{
    struct st_file *f = &st->files[fi];
    const char *path = f->path;
    char b1[256];

    if (f->size == 0)
        return llm_err_set(LLM_ETRUNC, "'%s': empty file (no 8-byte header length)", path);
    if (f->size < 8)
        return llm_err_set(LLM_ETRUNC,
                           "'%s': file is %llu bytes, too short for the 8-byte "
                           "header length",
                           path, (unsigned long long)f->size);
    uint64_t hlen = rd_le64(f->base);
    if (hlen > ST_MAX_HEADER)
        return llm_err_set(LLM_EFORMAT, "'%s': header length %llu exceeds the limit of %llu bytes",
                           path, (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > f->size - 8)
        return llm_err_set(LLM_ETRUNC,
                           "'%s': header length %llu runs past the end of the file "
                           "(%llu bytes)",
                           path, (unsigned long long)hlen, (unsigned long long)f->size);
    if (hlen < 2 || f->base[8] != '{')
        return llm_err_set(LLM_EFORMAT, "'%s': header does not start with a JSON object", path);
    f->data_off = 8 + hlen;
    uint64_t dsize = f->size - f->data_off;

    json_error_t je;
    json_t *root = json_loadb((const char *)f->base + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (json_error_code(&je) == json_error_duplicate_key) {
            /* jansson says: duplicate object key near '"name"' */
            return llm_err_set(LLM_EFORMAT, "'%s': header has the key %s twice", path,
                               llm_json_dup_key(je.text, b1, sizeof(b1)));
        }
        return llm_err_set(LLM_EFORMAT,
                           "'%s': header is not valid JSON: %s (byte %d of the "
                           "header)",
                           path, llm_quote(je.text, b1, sizeof(b1)), je.position);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return llm_err_set(LLM_EFORMAT, "'%s': header is not a JSON object", path);
    }

    size_t first = st->n;
    int rc = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (!strcmp(key, "__metadata__")) {
            rc = check_metadata(val, path);
            if (!rc && fi == 0 && !st->metadata) st->metadata = json_incref(val);
        } else {
            rc = parse_entry(st, fi, key, val, dsize);
        }
        if (rc) break;
    }
    json_decref(root);
    if (rc || st->n == first) return rc;

    struct st_tensor *e = st->ents + first;
    size_t cnt = st->n - first;
    qsort(e, cnt, sizeof(*e), cmp_range);
    /* No byte may belong to two tensors; empty tensors own no bytes. */
    const struct st_tensor *prev = NULL;
    for (size_t i = 0; i < cnt; i++) {
        if (e[i].begin == e[i].end) continue;
        if (prev && e[i].begin < prev->end) {
            char qa[160], qb[160];
            return llm_err_set(LLM_EFORMAT,
                               "'%s': tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap",
                               path, llm_quote(prev->name, qa, sizeof(qa)),
                               (unsigned long long)prev->begin, (unsigned long long)prev->end,
                               llm_quote(e[i].name, qb, sizeof(qb)), (unsigned long long)e[i].begin,
                               (unsigned long long)e[i].end);
        }
        prev = &e[i];
    }
    return 0;
}

/* A PyTorch zip checkpoint (torchbin.c): its tensors, sorted by offset,
 * appended to st->ents.  Unlike safetensors, tensors may share bytes (tied
 * weights share a storage); each lies inside its storage's zip entry. */
static int parse_bin_file(struct llm_st *st, size_t fi)
{
    struct st_file *f = &st->files[fi];
    struct llm_tb_tensor *tt = NULL;
    size_t nt = 0;
    int rc = llm_tb_parse(f->base, f->size, f->path, &tt, &nt);
    if (rc) return rc;
    size_t first = st->n;
    f->data_off = 0;
    for (size_t i = 0; i < nt; i++) {
        struct st_tensor *e = st_push(st);
        if (!e) {
            llm_tb_free(tt, nt);
            return llm_err_set(LLM_ENOMEM, "'%s': out of memory", f->path);
        }
        e->name = tt[i].name;
        tt[i].name = NULL;
        e->file = (int)fi;
        e->begin = tt[i].offset;
        e->end = tt[i].offset + tt[i].nbytes;
        e->t.name = e->name;
        e->t.dtype = tt[i].dtype;
        e->t.ndim = tt[i].ndim;
        memcpy(e->t.shape, tt[i].shape, sizeof(e->t.shape));
        e->t.nbytes = tt[i].nbytes;
        e->t.xxh3 = 0;
    }
    llm_tb_free(tt, nt);
    if (st->n > first) qsort(st->ents + first, st->n - first, sizeof(*st->ents), cmp_range);
    return 0;
}

/* Files named *.bin are PyTorch checkpoints, the others safetensors. */
static int parse_any(struct llm_st *st, size_t fi)
{
    return ends_with(st->files[fi].path, ".bin") ? parse_bin_file(st, fi) : parse_file(st, fi);
}

static int map_and_parse(struct llm_st *st, const char *path)
{
    size_t fi;
    int rc = st_add_file(st, path, &fi);
    if (rc) return rc;
    struct st_file *f = &st->files[fi];
    rc = llm_map_file(path, &f->map);
    if (rc) return rc;
    f->base = f->map.data;
    f->size = f->map.len;
    return parse_any(st, fi);
}

/* ---- after all files are read ------------------------------------------- */

struct name_ix {
    const char *name;
    size_t i;
};

static int cmp_name_ix(const void *a, const void *b)
{
    const struct name_ix *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return x->i < y->i ? -1 : x->i > y->i;
}

static int st_finish(struct llm_st *st)
{
    for (size_t i = 0; i < st->n; i++) {
        struct st_tensor *e = &st->ents[i];
        const struct st_file *f = &st->files[e->file];
        e->t.name = e->name;
        e->t.data = f->base ? f->base + f->data_off + e->begin : NULL;
    }
    st->by_name = malloc((st->n ? st->n : 1) * sizeof(size_t));
    struct name_ix *ix = malloc((st->n ? st->n : 1) * sizeof(*ix));
    if (!st->by_name || !ix) {
        free(ix);
        return llm_err_set(LLM_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < st->n; i++)
        ix[i] = (struct name_ix){st->ents[i].name, i};
    qsort(ix, st->n, sizeof(*ix), cmp_name_ix);
    for (size_t i = 0; i < st->n; i++)
        st->by_name[i] = ix[i].i;
    free(ix);
    for (size_t i = 1; i < st->n; i++) {
        const struct st_tensor *a = &st->ents[st->by_name[i - 1]];
        const struct st_tensor *b = &st->ents[st->by_name[i]];
        if (!strcmp(a->name, b->name)) {
            char qa[160];
            return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s' is also in '%s'",
                               st->files[a->file].path, llm_quote(a->name, qa, sizeof(qa)),
                               st->files[b->file].path);
        }
    }
    return 0;
}

/* ---- sharded checkpoints ------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A shard name must stay inside the index's folder. */
static int shard_name_ok(const char *s)
{
    if (!*s || s[0] == '/') return 0;
    for (const char *p = s; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if ((n == 2 && !strncmp(p, "..", 2)) || n == 0) return 0;
        p += n + (e ? 1 : 0);
        if (e && !*p) return 0;
    }
    return 1;
}

static int open_index(struct llm_st *st, const char *ipath)
{
    char *buf = NULL, *dir = NULL;
    char **names = NULL;
    size_t len = 0, nnames = 0;
    json_t *root = NULL;
    char b1[256], b2[256];
    int rc = llm_read_file(ipath, &buf, &len, ST_MAX_INDEX);
    if (rc) return rc;
    if (!(st->index_path = strdup(ipath))) {
        free(buf);
        return llm_err_set(LLM_ENOMEM, "out of memory");
    }
    json_error_t je;
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    free(buf);
    if (!root) {
        if (json_error_code(&je) == json_error_duplicate_key) {
            return llm_err_set(LLM_EFORMAT, "'%s': index has the key %s twice", ipath,
                               llm_json_dup_key(je.text, b1, sizeof(b1)));
        }
        return llm_err_set(LLM_EFORMAT, "'%s': index is not valid JSON: %s (line %d)", ipath,
                           llm_quote(je.text, b1, sizeof(b1)), je.line);
    }
    json_t *wm = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
    if (!json_is_object(wm)) {
        rc = llm_err_set(LLM_EFORMAT, "'%s': index has no weight_map object", ipath);
        goto out;
    }
    if (json_object_size(wm) == 0) {
        rc = llm_err_set(LLM_EFORMAT, "'%s': weight_map is empty", ipath);
        goto out;
    }
    names = calloc(json_object_size(wm), sizeof(char *));
    if (!names) {
        rc = llm_err_set(LLM_ENOMEM, "'%s': out of memory", ipath);
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(wm, key, val)
    {
        if (!json_is_string(val)) {
            rc = llm_err_set(LLM_EFORMAT, "'%s': weight_map entry '%s' is not a file name", ipath,
                             llm_quote(key, b1, sizeof(b1)));
            goto out;
        }
        if (!shard_name_ok(json_string_value(val))) {
            rc = llm_err_set(LLM_EFORMAT,
                             "'%s': shard name '%s' (tensor '%s') is not a file in "
                             "the index's folder",
                             ipath, llm_quote(json_string_value(val), b1, sizeof(b1)),
                             llm_quote(key, b2, sizeof(b2)));
            goto out;
        }
        names[nnames++] = (char *)json_string_value(val);
    }
    qsort(names, nnames, sizeof(char *), cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < nnames; i++)
        if (u == 0 || strcmp(names[u - 1], names[i])) names[u++] = names[i];
    nnames = u;

    dir = path_dir(ipath);
    if (!dir) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nnames; i++) {
        char *sp = path_join(dir, names[i]);
        if (!sp) {
            rc = llm_err_set(LLM_ENOMEM, "out of memory");
            goto out;
        }
        if (!is_regular(sp)) {
            rc = llm_err_set(LLM_ENOTFOUND, "'%s': shard '%s' named by the index not found", ipath,
                             llm_quote(sp, b1, sizeof(b1)));
            free(sp);
            goto out;
        }
        rc = map_and_parse(st, sp);
        free(sp);
        if (rc) goto out;
    }
    rc = st_finish(st);
    if (rc) goto out;

    /* Every tensor the index names must be where the index says. */
    json_object_foreach(wm, key, val)
    {
        const struct llm_tensor *t = llm_st_find(st, key);
        char *sp = path_join(dir, json_string_value(val));
        if (!sp) {
            rc = llm_err_set(LLM_ENOMEM, "out of memory");
            goto out;
        }
        if (!t) {
            rc = llm_err_set(LLM_ENOTFOUND, "'%s': tensor '%s' named by '%s' is not in the shard",
                             sp, llm_quote(key, b1, sizeof(b1)), ipath);
        } else {
            const struct st_tensor *e = (const struct st_tensor *)t;
            if (strcmp(st->files[e->file].path, sp))
                rc = llm_err_set(LLM_EFORMAT,
                                 "'%s': tensor '%s' is in '%s', not in '%s' as the "
                                 "index says",
                                 ipath, llm_quote(key, b1, sizeof(b1)), st->files[e->file].path,
                                 sp);
        }
        free(sp);
        if (rc) goto out;
    }
out:
    free(names);
    free(dir);
    json_decref(root);
    return rc;
}

/* ---- public: open -------------------------------------------------------- */

static int open_dir(struct llm_st *st, const char *dir)
{
    char *p = path_join(dir, ST_INDEX_NAME);
    if (!p) return llm_err_set(LLM_ENOMEM, "out of memory");
    if (is_regular(p)) {
        int rc = open_index(st, p);
        free(p);
        return rc;
    }
    free(p);
    p = path_join(dir, ST_SINGLE_NAME);
    if (!p) return llm_err_set(LLM_ENOMEM, "out of memory");
    if (is_regular(p)) {
        int rc = map_and_parse(st, p);
        free(p);
        return rc ? rc : st_finish(st);
    }
    free(p);

    DIR *d = opendir(dir);
    if (!d) return llm_err_set(LLM_EIO, "unable to open '%s': %s", dir, strerror(errno));
    char *found = NULL;
    size_t count = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || !ends_with(de->d_name, ".safetensors")) continue;
        char *fp = path_join(dir, de->d_name);
        if (!fp) {
            closedir(d);
            free(found);
            return llm_err_set(LLM_ENOMEM, "out of memory");
        }
        if (!is_regular(fp)) {
            free(fp);
            continue;
        }
        count++;
        if (!found || strcmp(fp, found) < 0) {
            free(found);
            found = fp;
        } else {
            free(fp);
        }
    }
    closedir(d);
    if (count == 0) {
        /* no safetensors: a PyTorch checkpoint, sharded or not */
        const char *alt[] = {TB_INDEX_NAME, TB_SINGLE_NAME};
        for (int k = 0; k < 2; k++) {
            if (!(p = path_join(dir, alt[k]))) return llm_err_set(LLM_ENOMEM, "out of memory");
            if (is_regular(p)) {
                int rc = k == 0 ? open_index(st, p) : map_and_parse(st, p);
                free(p);
                return rc || k == 0 ? rc : st_finish(st);
            }
            free(p);
        }
        return llm_err_set(LLM_ENOTFOUND,
                           "'%s': no .safetensors file in the folder (nor %s or %s)", dir,
                           TB_SINGLE_NAME, TB_INDEX_NAME);
    }
    if (count > 1) {
        free(found);
        return llm_err_set(LLM_ENOTFOUND,
                           "'%s': %zu .safetensors files but no %s to tie them "
                           "together",
                           dir, count, ST_INDEX_NAME);
    }
    int rc = map_and_parse(st, found);
    free(found);
    return rc ? rc : st_finish(st);
}

int llm_st_open(struct llm_st **out, const char *path)
{
    *out = NULL;
    if (!path || !*path) return llm_err_set(LLM_EINVAL, "no safetensors path given");
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return llm_err_set(LLM_ENOTFOUND, "'%s': no such file or folder", path);
        return llm_err_set(LLM_EIO, "unable to open '%s': %s", path, strerror(errno));
    }
    struct llm_st *st = st_new();
    if (!st) return llm_err_set(LLM_ENOMEM, "out of memory");
    int rc;
    if (S_ISDIR(sb.st_mode)) {
        rc = open_dir(st, path);
    } else if (ends_with(path, ".json")) {
        rc = open_index(st, path);
    } else {
        rc = map_and_parse(st, path);
        if (!rc) rc = st_finish(st);
    }
    if (rc) {
        llm_st_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

static int open_mem(struct llm_st **out, const void *buf, size_t len, const char *name,
                    int torchbin)
{
    *out = NULL;
    if (!name) name = "<memory>";
    if (!buf && len) return llm_err_set(LLM_EINVAL, "'%s': no buffer", name);
    struct llm_st *st = st_new();
    if (!st) return llm_err_set(LLM_ENOMEM, "out of memory");
    size_t fi;
    int rc = st_add_file(st, name, &fi);
    if (!rc) {
        st->files[fi].base = buf;
        st->files[fi].size = len;
        rc = torchbin ? parse_bin_file(st, fi) : parse_file(st, fi);
    }
    if (!rc) rc = st_finish(st);
    if (rc) {
        llm_st_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

int llm_st_open_mem(struct llm_st **out, const void *buf, size_t len, const char *name)
{
    return open_mem(out, buf, len, name, 0);
}

int llm_st_open_torchbin_mem(struct llm_st **out, const void *buf, size_t len, const char *name)
{
    return open_mem(out, buf, len, name, 1);
}

/* ---- public: queries ----------------------------------------------------- */

const char *llm_st_index_path(const struct llm_st *st)
{
    return st ? st->index_path : NULL;
}

size_t llm_st_count(const struct llm_st *st)
{
    return st ? st->n : 0;
}

const struct llm_tensor *llm_st_get(const struct llm_st *st, size_t i)
{
    return st && i < st->n ? &st->ents[i].t : NULL;
}

const struct llm_tensor *llm_st_find(const struct llm_st *st, const char *name)
{
    if (!st || !name || !st->by_name) return NULL;
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->ents[st->by_name[mid]].name, name);
        if (c == 0) return &st->ents[st->by_name[mid]].t;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int llm_st_shard_of(const struct llm_st *st, size_t i)
{
    if (!st || i >= st->n) return LLM_EINVAL;
    return st->ents[i].file;
}

size_t llm_st_nfiles(const struct llm_st *st)
{
    return st ? st->nfiles : 0;
}

const char *llm_st_file_path(const struct llm_st *st, size_t file)
{
    return st && file < st->nfiles ? st->files[file].path : NULL;
}

uint64_t llm_st_file_size(const struct llm_st *st, size_t file)
{
    return st && file < st->nfiles ? st->files[file].size : 0;
}

const void *llm_st_file_data(const struct llm_st *st, size_t file)
{
    return st && file < st->nfiles ? st->files[file].base : NULL;
}

const void *llm_st_metadata(const struct llm_st *st)
{
    return st ? st->metadata : NULL;
}

void llm_st_release(const struct llm_st *st, size_t i)
{
    if (!st || i >= st->n) return;
    const struct st_tensor *e = &st->ents[i];
    const struct st_file *f = &st->files[e->file];
    if (!f->map.data || e->end == e->begin) return;
    llm_map_release(&f->map, f->data_off + e->begin, e->end - e->begin);
}

void llm_st_release_file(const struct llm_st *st, size_t file)
{
    if (!st || file >= st->nfiles || !st->files[file].map.data) return;
    llm_map_release(&st->files[file].map, 0, st->files[file].size);
}

/* ---- writer --------------------------------------------------------------- */

static int cmp_tensor_name(const void *a, const void *b)
{
    const struct llm_tensor *x = *(const struct llm_tensor *const *)a;
    const struct llm_tensor *y = *(const struct llm_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int write_check(const char *path, const struct llm_tensor *t, size_t n)
{
    char qn[160], sh[256];
    for (size_t i = 0; i < n; i++) {
        if (!t[i].name) return llm_err_set(LLM_EINVAL, "'%s': tensor %zu has no name", path, i);
        llm_quote(t[i].name, qn, sizeof(qn));
        if (!strcmp(t[i].name, "__metadata__"))
            return llm_err_set(LLM_EINVAL, "'%s': '__metadata__' is not a tensor name", path);
        if (!llm_dtype_st_name(t[i].dtype))
            return llm_err_set(LLM_EUNSUPPORTED,
                               "'%s': tensor '%s': dtype %s has no safetensors "
                               "name",
                               path, qn, llm_dtype_name(t[i].dtype));
        if (t[i].ndim < 0 || t[i].ndim > LLM_MAX_DIMS)
            return llm_err_set(LLM_EINVAL, "'%s': tensor '%s': %d dimensions", path, qn, t[i].ndim);
        uint64_t numel, nbytes;
        llm_shape_str(sh, sizeof(sh), t[i].ndim, t[i].shape);
        if (llm_shape_numel(t[i].ndim, t[i].shape, &numel) ||
            llm_dtype_nbytes(t[i].dtype, numel, &nbytes))
            return llm_err_set(LLM_ERANGE, "'%s': tensor '%s': bad shape %s", path, qn, sh);
        if (nbytes != t[i].nbytes)
            return llm_err_set(LLM_EINVAL,
                               "'%s': tensor '%s': shape %s of %s needs %llu bytes, "
                               "given %llu",
                               path, qn, sh, llm_dtype_name(t[i].dtype), (unsigned long long)nbytes,
                               (unsigned long long)t[i].nbytes);
        if (nbytes && !t[i].data)
            return llm_err_set(LLM_EINVAL, "'%s': tensor '%s' has no data", path, qn);
    }
    const struct llm_tensor **sorted = malloc((n ? n : 1) * sizeof(*sorted));
    if (!sorted) return llm_err_set(LLM_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        sorted[i] = &t[i];
    qsort(sorted, n, sizeof(*sorted), cmp_tensor_name);
    int rc = 0;
    for (size_t i = 1; i < n && !rc; i++)
        if (!strcmp(sorted[i - 1]->name, sorted[i]->name))
            rc = llm_err_set(LLM_EINVAL, "'%s': tensor '%s' given twice", path,
                             llm_quote(sorted[i]->name, qn, sizeof(qn)));
    free(sorted);
    return rc;
}

int llm_st_write(const char *path, const struct llm_tensor *tensors, size_t n,
                 const char *metadata_json)
{
    if (!path) return llm_err_set(LLM_EINVAL, "no output path");
    if (n && !tensors) return llm_err_set(LLM_EINVAL, "'%s': no tensors", path);
    int rc = write_check(path, tensors, n);
    if (rc) return rc;

    json_t *hdr = json_object();
    if (!hdr) return llm_err_set(LLM_ENOMEM, "out of memory");
    if (metadata_json) {
        json_error_t je;
        json_t *meta = json_loads(metadata_json, JSON_REJECT_DUPLICATES, &je);
        if (!meta) {
            json_decref(hdr);
            return llm_err_set(LLM_EINVAL, "'%s': metadata is not valid JSON: %s", path, je.text);
        }
        const char *k;
        json_t *v;
        json_object_foreach(meta, k, v) if (!json_is_string(v)) rc = LLM_EINVAL;
        if (rc || !json_is_object(meta)) {
            json_decref(meta);
            json_decref(hdr);
            return llm_err_set(LLM_EINVAL, "'%s': metadata must be an object of strings", path);
        }
        json_object_set_new(hdr, "__metadata__", meta);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const struct llm_tensor *t = &tensors[i];
        if (t->nbytes > (uint64_t)INT64_MAX - off) {
            rc = llm_err_set(LLM_ERANGE, "'%s': total size overflows", path);
            break;
        }
        json_t *e = json_object(), *sh = json_array(), *of = json_array();
        if (!e || !sh || !of) {
            json_decref(e);
            json_decref(sh);
            json_decref(of);
            rc = llm_err_set(LLM_ENOMEM, "out of memory");
            break;
        }
        for (int d = 0; d < t->ndim; d++)
            json_array_append_new(sh, json_integer(t->shape[d]));
        json_array_append_new(of, json_integer((json_int_t)off));
        json_array_append_new(of, json_integer((json_int_t)(off + t->nbytes)));
        json_object_set_new(e, "dtype", json_string(llm_dtype_st_name(t->dtype)));
        json_object_set_new(e, "shape", sh);
        json_object_set_new(e, "data_offsets", of);
        if (json_object_set_new(hdr, t->name, e))
            rc = llm_err_set(LLM_EINVAL, "'%s': tensor name %zu is not valid UTF-8", path, i);
        off += t->nbytes;
    }
    char *text = rc ? NULL : json_dumps(hdr, JSON_COMPACT);
    json_decref(hdr);
    if (rc) return rc;
    if (!text) return llm_err_set(LLM_ENOMEM, "out of memory");

    /* Pad the header with spaces so that the data section starts 8-byte
     * aligned, as HF's writer does. */
    size_t tl = strlen(text);
    size_t pad = (8 - tl % 8) % 8;
    uint64_t hlen = tl + pad;
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(hlen >> (8 * i));
    static const char spaces[] = "        ";

    struct llm_out o;
    rc = llm_out_open(&o, path);
    if (rc) {
        free(text);
        return rc;
    }
    rc = llm_out_write(&o, le, 8);
    if (!rc) rc = llm_out_write(&o, text, tl);
    if (!rc) rc = llm_out_write(&o, spaces, pad);
    free(text);
    for (size_t i = 0; i < n && !rc; i++)
        rc = llm_out_write(&o, tensors[i].data, (size_t)tensors[i].nbytes);
    if (rc) {
        llm_out_abort(&o);
        return rc;
    }
    return llm_out_commit(&o);
}
