/* torchbin.c - a restricted, zero-copy reader of PyTorch zip checkpoints
 * (pytorch_model.bin written by torch.save since torch 1.6).
 *
 * Such a file is a ZIP archive of stored (uncompressed) entries under one
 * folder: <archive>/data.pkl, a pickle building a dict of name -> tensor,
 * and <archive>/data/<key>, the raw little-endian bytes of each storage.
 * The pickle refers to the storages through persistent ids and rebuilds
 * each tensor by calling torch._utils._rebuild_tensor_v2 on one.
 *
 * Design: a pickle is a program, and unpickling one with Python runs
 * whatever callables it names.  This reader never runs anything: it is an
 * interpreter of the few opcodes torch.save emits, over a handful of value
 * kinds (None, bool, int, str, tuple, list, dict, and the allow-listed
 * globals, storages and tensors), where "calling" an allow-listed global
 * means building the value it would have built.  Any other global (os.system,
 * builtins.eval, ...) is refused when the GLOBAL opcode is read, naming it.
 * Everything is bounded (sizes, stack, marks, memo, values, strings,
 * dimensions) and every offset is overflow-checked; the result must be a
 * dict of str -> contiguous tensor whose bytes lie inside its storage
 * entry, and the tensor records point into the caller's buffer (zero copy).
 * No value is ever walked recursively, so cycles a hostile pickle builds
 * (a list appended to itself) cost nothing.
 *
 * ZIP: the end-of-central-directory record (ZIP64 when present, as torch
 * always writes it), the central directory (ZIP64 extra fields), and each
 * entry's local header (name and method must agree) are checked; entries
 * must be stored, not compressed or encrypted.  CRCs are not checked: that
 * would read every byte at open time, and the converter hashes its inputs
 * anyway.
 *
 * One file of a little over 1,000 lines on purpose: the ZIP reader and the
 * pickle interpreter share the bounds and the error helpers and are only
 * ever used together; tb_step is one switch over the opcodes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "torchbin_internal.h"
#include "../core/text_internal.h"

#define TB_MAX_ENTRIES (1u << 20)  /* zip entries */
#define TB_MAX_ENTRY_NAME 4096     /* bytes of one entry name */
#define TB_MAX_PICKLE (256u << 20) /* data.pkl */
#define TB_MAX_STACK (1u << 20)    /* pickle stack depth */
#define TB_MAX_MARKS (1u << 16)    /* open MARKs */
#define TB_MAX_MEMO (1u << 21)     /* memo slots */
#define TB_MAX_VALUES (1u << 21)   /* values built */
#define TB_MAX_ITEMS (1u << 24)    /* items of all tuples, lists and dicts */
#define TB_MAX_STR (1u << 20)      /* bytes of one string */
#define TB_MAX_GLOBAL 256          /* bytes of a GLOBAL's module or name */
#define TB_MAX_TENSORS (1u << 20)  /* tensors in the state dict */

/* ---- little helpers ------------------------------------------------------ */

static uint16_t tb_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t tb_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t tb_le64(const uint8_t *p)
{
    return (uint64_t)tb_le32(p) | ((uint64_t)tb_le32(p + 4) << 32);
}

/* A counted string from the file, quoted for a message. */
static const char *tb_q(const void *s, size_t len, char *buf, size_t cap)
{
    char tmp[200];
    size_t n = len < sizeof(tmp) - 4 ? len : sizeof(tmp) - 4;
    memcpy(tmp, s, n);
    for (size_t i = 0; i < n; i++)
        if (!tmp[i]) tmp[i] = '?';
    if (n < len) memcpy(tmp + n, "...", 3), n += 3;
    tmp[n] = 0;
    return llm_quote(tmp, buf, cap);
}

static int tb_utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= k) return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* ---- the zip archive ----------------------------------------------------- */

struct tb_entry {
    const char *name; /* into the central directory, not NUL-terminated */
    size_t nlen;
    uint64_t off; /* data, from the start of the file */
    uint64_t size;
};

struct tb_zip {
    const char *path;
    const uint8_t *base;
    uint64_t size;
    struct tb_entry *ents; /* sorted by name */
    size_t n;
    const char *prefix; /* "<archive>/" */
    size_t plen;
};

static int tb_cmp_entry(const void *a, const void *b)
{
    const struct tb_entry *x = a, *y = b;
    size_t m = x->nlen < y->nlen ? x->nlen : y->nlen;
    int c = memcmp(x->name, y->name, m);
    if (c) return c;
    return x->nlen < y->nlen ? -1 : x->nlen > y->nlen;
}

/* The entry prefix + tail (tail counted), or NULL. */
static const struct tb_entry *tb_zip_find(const struct tb_zip *z, const char *tail, size_t tlen)
{
    char name[TB_MAX_ENTRY_NAME + 1];
    if (z->plen + tlen > TB_MAX_ENTRY_NAME) return NULL;
    memcpy(name, z->prefix, z->plen);
    memcpy(name + z->plen, tail, tlen);
    struct tb_entry key = {.name = name, .nlen = z->plen + tlen};
    return bsearch(&key, z->ents, z->n, sizeof(*z->ents), tb_cmp_entry);
}

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u

/* The end of the central directory: entry count, its offset and size, and
 * where it must end (the start of the records after it). */
static int tb_zip_eocd(const struct tb_zip *z, uint64_t *count, uint64_t *cd_off, uint64_t *cd_size,
                       uint64_t *cd_limit)
{
    const uint8_t *b = z->base;
    uint64_t size = z->size, pos = UINT64_MAX;
    uint64_t lo = size - 22 > 0xffff ? size - 22 - 0xffff : 0;
    for (uint64_t p = size - 22 + 1; p-- > lo;) {
        if (tb_le32(b + p) == SIG_EOCD && p + 22 + tb_le16(b + p + 20) == size) {
            pos = p;
            break;
        }
    }
    if (pos == UINT64_MAX)
        return llm_err_set(LLM_ETRUNC,
                           "'%s': no zip end-of-central-directory record at the end "
                           "(truncated or not a torch.save archive)",
                           z->path);
    const uint8_t *e = b + pos;
    uint16_t disk = tb_le16(e + 4), cd_disk = tb_le16(e + 6);
    uint64_t n_disk = tb_le16(e + 8), n = tb_le16(e + 10);
    uint64_t cs = tb_le32(e + 12), co = tb_le32(e + 16);
    *cd_limit = pos;
    if (pos >= 20 && tb_le32(b + pos - 20) == SIG_LOC64) {
        const uint8_t *l = b + pos - 20;
        uint64_t r = tb_le64(l + 8);
        if (tb_le32(l + 4) != 0 || tb_le32(l + 16) > 1)
            return llm_err_set(LLM_EUNSUPPORTED, "'%s': multi-disk zip archives are not read",
                               z->path);
        if (r > pos - 20 || pos - 20 - r < 56 || tb_le32(b + r) != SIG_EOCD64)
            return llm_err_set(LLM_EFORMAT,
                               "'%s': the ZIP64 end-of-central-directory locator points to %llu, "
                               "where there is no ZIP64 record",
                               z->path, (unsigned long long)r);
        const uint8_t *e6 = b + r;
        if (tb_le64(e6 + 4) < 44 || tb_le64(e6 + 4) > pos - 20 - r - 12)
            return llm_err_set(LLM_EFORMAT, "'%s': bad ZIP64 end-of-central-directory size",
                               z->path);
        disk = tb_le32(e6 + 16) ? 1 : 0;
        cd_disk = tb_le32(e6 + 20) ? 1 : 0;
        n_disk = tb_le64(e6 + 24);
        n = tb_le64(e6 + 32);
        cs = tb_le64(e6 + 40);
        co = tb_le64(e6 + 48);
        *cd_limit = r;
    } else if (n == 0xffff || cs == 0xffffffffu || co == 0xffffffffu) {
        return llm_err_set(LLM_EFORMAT,
                           "'%s': zip end-of-central-directory record needs a ZIP64 record, "
                           "which is missing",
                           z->path);
    }
    if (disk || cd_disk || n_disk != n)
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': multi-disk zip archives are not read", z->path);
    if (co > *cd_limit || cs > *cd_limit - co)
        return llm_err_set(LLM_EFORMAT,
                           "'%s': zip central directory [%llu, +%llu) runs past its end "
                           "record at %llu",
                           z->path, (unsigned long long)co, (unsigned long long)cs,
                           (unsigned long long)*cd_limit);
    if (n > TB_MAX_ENTRIES)
        return llm_err_set(LLM_ERANGE, "'%s': %llu zip entries (at most %u)", z->path,
                           (unsigned long long)n, TB_MAX_ENTRIES);
    if (n > cs / 46)
        return llm_err_set(LLM_EFORMAT,
                           "'%s': zip central directory of %llu bytes cannot hold %llu entries",
                           z->path, (unsigned long long)cs, (unsigned long long)n);
    *count = n;
    *cd_off = co;
    *cd_size = cs;
    return 0;
}

/* ZIP64 extended information of a central entry: the fields whose 32-bit
 * value is all ones come from it, in this order. */
static int tb_zip64_extra(const struct tb_zip *z, const uint8_t *x, size_t xlen, uint64_t *usize,
                          uint64_t *csize, uint64_t *lho, const char *qn)
{
    int need_u = *usize == 0xffffffffu, need_c = *csize == 0xffffffffu,
        need_o = *lho == 0xffffffffu;
    size_t i = 0;
    while (i + 4 <= xlen) {
        uint16_t id = tb_le16(x + i), sz = tb_le16(x + i + 2);
        if (sz > xlen - i - 4) break;
        if (id == 1) {
            const uint8_t *f = x + i + 4;
            size_t left = sz;
            uint64_t *fields[3] = {need_u ? usize : NULL, need_c ? csize : NULL,
                                   need_o ? lho : NULL};
            for (int k = 0; k < 3; k++) {
                if (!fields[k]) continue;
                if (left < 8)
                    return llm_err_set(LLM_EFORMAT, "'%s': zip entry '%s': ZIP64 field too short",
                                       z->path, qn);
                *fields[k] = tb_le64(f);
                f += 8;
                left -= 8;
            }
            return 0;
        }
        i += 4 + (size_t)sz;
    }
    if (need_u || need_c || need_o)
        return llm_err_set(
            LLM_EFORMAT, "'%s': zip entry '%s' needs a ZIP64 field, which is missing", z->path, qn);
    return 0;
}

static int tb_zip_open(struct tb_zip *z)
{
    const uint8_t *b = z->base;
    if (z->size >= 2 && b[0] == 0x80 && b[1] <= 5)
        return llm_err_set(LLM_EUNSUPPORTED,
                           "'%s': a pickle, not a zip archive: the legacy torch.save format "
                           "(before torch 1.6) is not read; save it again with a newer torch",
                           z->path);
    if (z->size < 4 || tb_le32(b) != SIG_LOCAL)
        return llm_err_set(z->size < 4 ? LLM_ETRUNC : LLM_EFORMAT,
                           "'%s': not a zip archive (torch.save's format): no local file header "
                           "at the start",
                           z->path);
    if (z->size < 22 + 30)
        return llm_err_set(LLM_ETRUNC, "'%s': %llu bytes is too short for a zip archive", z->path,
                           (unsigned long long)z->size);
    uint64_t n = 0, cd_off = 0, cd_size = 0, cd_limit = 0;
    int rc = tb_zip_eocd(z, &n, &cd_off, &cd_size, &cd_limit);
    if (rc) return rc;
    z->ents = calloc(n ? n : 1, sizeof(*z->ents));
    if (!z->ents) return llm_err_set(LLM_ENOMEM, "'%s': out of memory", z->path);

    uint64_t p = cd_off, cd_end = cd_off + cd_size;
    char qn[160], qp[160];
    for (uint64_t i = 0; i < n; i++) {
        if (cd_end - p < 46 || tb_le32(b + p) != SIG_CENTRAL)
            return llm_err_set(LLM_EFORMAT,
                               "'%s': zip central directory entry %llu at %llu is not one", z->path,
                               (unsigned long long)i, (unsigned long long)p);
        const uint8_t *c = b + p;
        uint16_t flags = tb_le16(c + 8), method = tb_le16(c + 10);
        uint64_t csize = tb_le32(c + 20), usize = tb_le32(c + 24), lho = tb_le32(c + 42);
        size_t nlen = tb_le16(c + 28), xlen = tb_le16(c + 30), clen = tb_le16(c + 32);
        if (cd_end - p - 46 < (uint64_t)nlen + xlen + clen)
            return llm_err_set(LLM_EFORMAT,
                               "'%s': zip central directory entry %llu runs past the directory",
                               z->path, (unsigned long long)i);
        const char *name = (const char *)c + 46;
        tb_q(name, nlen, qn, sizeof(qn));
        if (nlen == 0 || nlen > TB_MAX_ENTRY_NAME || memchr(name, 0, nlen))
            return llm_err_set(LLM_EFORMAT, "'%s': zip entry %llu has a bad name '%s'", z->path,
                               (unsigned long long)i, qn);
        if (tb_le16(c + 34) != 0 && tb_le16(c + 34) != 0xffff)
            return llm_err_set(LLM_EUNSUPPORTED, "'%s': multi-disk zip archives are not read",
                               z->path);
        rc = tb_zip64_extra(z, c + 46 + nlen, xlen, &usize, &csize, &lho, qn);
        if (rc) return rc;
        if (flags & 1)
            return llm_err_set(LLM_EUNSUPPORTED, "'%s': zip entry '%s' is encrypted", z->path, qn);
        if (method != 0)
            return llm_err_set(LLM_EUNSUPPORTED,
                               "'%s': zip entry '%s' is compressed (method %u); torch.save "
                               "stores entries uncompressed and only those are read",
                               z->path, qn, method);
        if (csize != usize)
            return llm_err_set(LLM_EFORMAT,
                               "'%s': zip entry '%s' is stored but its sizes differ (%llu, %llu)",
                               z->path, qn, (unsigned long long)csize, (unsigned long long)usize);
        /* the local header must be where the directory says, and agree */
        if (lho > cd_off || cd_off - lho < 30 || tb_le32(b + lho) != SIG_LOCAL)
            return llm_err_set(LLM_EFORMAT, "'%s': zip entry '%s': no local header at %llu",
                               z->path, qn, (unsigned long long)lho);
        const uint8_t *l = b + lho;
        size_t lnlen = tb_le16(l + 26), lxlen = tb_le16(l + 28);
        uint64_t data = lho + 30 + lnlen + lxlen;
        if (data > cd_off || lnlen != nlen || memcmp(l + 30, name, nlen) ||
            tb_le16(l + 8) != method)
            return llm_err_set(LLM_EFORMAT,
                               "'%s': zip entry '%s': local header disagrees with the central "
                               "directory",
                               z->path, qn);
        if (usize > cd_off - data)
            return llm_err_set(LLM_ETRUNC,
                               "'%s': zip entry '%s' data [%llu, +%llu) runs past the entries' "
                               "end at %llu",
                               z->path, qn, (unsigned long long)data, (unsigned long long)usize,
                               (unsigned long long)cd_off);
        z->ents[i] = (struct tb_entry){name, nlen, data, usize};
        p += 46 + nlen + xlen + clen;
    }
    z->n = (size_t)n;
    if (n == 0) return llm_err_set(LLM_EFORMAT, "'%s': empty zip archive", z->path);

    /* every entry lies under one folder, the archive's name */
    const char *slash = memchr(z->ents[0].name, '/', z->ents[0].nlen);
    if (!slash)
        return llm_err_set(LLM_EFORMAT, "'%s': zip entry '%s' is not inside the archive's folder",
                           z->path, tb_q(z->ents[0].name, z->ents[0].nlen, qn, sizeof(qn)));
    z->prefix = z->ents[0].name;
    z->plen = (size_t)(slash - z->ents[0].name) + 1;
    for (size_t i = 0; i < z->n; i++)
        if (z->ents[i].nlen <= z->plen || memcmp(z->ents[i].name, z->prefix, z->plen))
            return llm_err_set(LLM_EFORMAT,
                               "'%s': zip entry '%s' is not inside the archive's folder '%s'",
                               z->path, tb_q(z->ents[i].name, z->ents[i].nlen, qn, sizeof(qn)),
                               tb_q(z->prefix, z->plen - 1, qp, sizeof(qp)));
    qsort(z->ents, z->n, sizeof(*z->ents), tb_cmp_entry);
    for (size_t i = 1; i < z->n; i++)
        if (!tb_cmp_entry(&z->ents[i - 1], &z->ents[i]))
            return llm_err_set(LLM_EFORMAT, "'%s': zip entry '%s' is there twice", z->path,
                               tb_q(z->ents[i].name, z->ents[i].nlen, qn, sizeof(qn)));

    const struct tb_entry *bo = tb_zip_find(z, "byteorder", 9);
    if (bo && !(bo->size == 6 && !memcmp(b + bo->off, "little", 6)))
        return llm_err_set(LLM_EUNSUPPORTED,
                           "'%s': byte order '%s' (only little-endian checkpoints are read)",
                           z->path, tb_q(b + bo->off, (size_t)bo->size, qn, sizeof(qn)));
    return 0;
}

/* ---- pickle values -------------------------------------------------------- */

enum tb_kind {
    TK_NONE,
    TK_BOOL,
    TK_INT,
    TK_STR,
    TK_TUPLE,
    TK_LIST,
    TK_DICT, /* items: key, value, key, value, ... */
    TK_GLOBAL,
    TK_STORAGE,
    TK_TENSOR,
};

static const char *const tb_kind_name[] = {"None", "bool", "int",    "str",     "tuple",
                                           "list", "dict", "global", "storage", "tensor"};

/* The allow-listed globals. */
enum tb_global {
    G_ORDERED_DICT,
    G_REBUILD_V2,    /* (storage, offset, size, stride, requires_grad, hooks[, metadata]) */
    G_REBUILD,       /* (storage, offset, size, stride) */
    G_REBUILD_V3,    /* v2's, then dtype[, metadata]: untyped storages (fp8) */
    G_REBUILD_PARAM, /* (tensor, requires_grad, hooks) */
    G_STORAGE,       /* torch.<Type>Storage: dtype in the table */
    G_UNTYPED,       /* torch.storage.UntypedStorage: bytes */
    G_DTYPE,         /* torch.float8_e4m3fn etc., _rebuild_tensor_v3's dtype */
};

static const struct {
    const char *module, *name;
    enum tb_global g;
    int dtype;
} tb_globals[] = {
    {"collections", "OrderedDict", G_ORDERED_DICT, -1},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_V2, -1},
    {"torch._utils", "_rebuild_tensor", G_REBUILD, -1},
    {"torch._utils", "_rebuild_tensor_v3", G_REBUILD_V3, -1},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAM, -1},
    {"torch", "FloatStorage", G_STORAGE, LLM_DTYPE_F32},
    {"torch", "HalfStorage", G_STORAGE, LLM_DTYPE_F16},
    {"torch", "BFloat16Storage", G_STORAGE, LLM_DTYPE_BF16},
    {"torch", "DoubleStorage", G_STORAGE, LLM_DTYPE_F64},
    {"torch", "LongStorage", G_STORAGE, LLM_DTYPE_I64},
    {"torch", "IntStorage", G_STORAGE, LLM_DTYPE_I32},
    {"torch", "ShortStorage", G_STORAGE, LLM_DTYPE_I16},
    {"torch", "CharStorage", G_STORAGE, LLM_DTYPE_I8},
    {"torch", "ByteStorage", G_STORAGE, LLM_DTYPE_U8},
    {"torch", "BoolStorage", G_STORAGE, LLM_DTYPE_BOOL},
    {"torch.storage", "UntypedStorage", G_UNTYPED, LLM_DTYPE_U8},
    {"torch", "float32", G_DTYPE, LLM_DTYPE_F32},
    {"torch", "float16", G_DTYPE, LLM_DTYPE_F16},
    {"torch", "bfloat16", G_DTYPE, LLM_DTYPE_BF16},
    {"torch", "float64", G_DTYPE, LLM_DTYPE_F64},
    {"torch", "int64", G_DTYPE, LLM_DTYPE_I64},
    {"torch", "int32", G_DTYPE, LLM_DTYPE_I32},
    {"torch", "int16", G_DTYPE, LLM_DTYPE_I16},
    {"torch", "int8", G_DTYPE, LLM_DTYPE_I8},
    {"torch", "uint8", G_DTYPE, LLM_DTYPE_U8},
    {"torch", "bool", G_DTYPE, LLM_DTYPE_BOOL},
    {"torch", "float8_e4m3fn", G_DTYPE, LLM_DTYPE_F8E4M3},
    {"torch", "float8_e5m2", G_DTYPE, LLM_DTYPE_F8E5M2},
};

struct tb_tinfo { /* a rebuilt tensor, checked when it is named */
    const struct tb_val *storage;
    int dtype;
    int ndim;
    int64_t offset; /* in elements */
    int64_t shape[LLM_MAX_DIMS], stride[LLM_MAX_DIMS];
};

struct tb_val {
    enum tb_kind kind;
    int64_t i;        /* BOOL, INT; GLOBAL: index into tb_globals */
    const uint8_t *s; /* STR: into the pickle */
    size_t slen;
    struct tb_val **items; /* TUPLE, LIST, DICT */
    size_t n, cap;
    int dtype;            /* STORAGE: element type (U8 for untyped) */
    uint64_t off, nbytes; /* STORAGE: the entry's data in the file */
    struct tb_tinfo *t;   /* TENSOR */
};

struct tb_vm {
    const char *path;
    const struct tb_zip *z;
    const uint8_t *pk; /* data.pkl */
    size_t len, pos, op_at;
    struct tb_val **stack;
    size_t sp, scap;
    size_t *marks;
    size_t nmarks, mcap;
    struct tb_val **memo;
    size_t nmemo, memo_len; /* slots allocated; slots set (MEMOIZE's next) */
    size_t nitems;          /* pointers held by all sequences together */
    struct tb_val **all;    /* every value, for freeing */
    size_t nall, allcap;
};

static int tb_err_at(struct tb_vm *vm, int code, const char *what)
{
    return llm_err_set(code, "'%s': data.pkl byte %zu: %s", vm->path, vm->op_at, what);
}

static int tb_grow(void **p, size_t *cap, size_t need, size_t elem, size_t limit)
{
    if (need <= *cap) return 0;
    if (need > limit) return LLM_ERANGE;
    size_t nc = *cap ? *cap : 16;
    while (nc < need)
        nc *= 2;
    if (nc > limit) nc = limit;
    void *np = realloc(*p, nc * elem);
    if (!np) return LLM_ENOMEM;
    *p = np;
    *cap = nc;
    return 0;
}

static struct tb_val *tb_new(struct tb_vm *vm, enum tb_kind kind)
{
    if (tb_grow((void **)&vm->all, &vm->allcap, vm->nall + 1, sizeof(*vm->all), TB_MAX_VALUES))
        return NULL;
    struct tb_val *v = calloc(1, sizeof(*v));
    if (!v) return NULL;
    v->kind = kind;
    vm->all[vm->nall++] = v;
    return v;
}

static void tb_vm_free(struct tb_vm *vm)
{
    for (size_t i = 0; i < vm->nall; i++) {
        free(vm->all[i]->items);
        free(vm->all[i]->t);
        free(vm->all[i]);
    }
    free(vm->all);
    free(vm->stack);
    free(vm->marks);
    free(vm->memo);
}

static int tb_oom(struct tb_vm *vm)
{
    if (vm->nall >= TB_MAX_VALUES)
        return tb_err_at(vm, LLM_ERANGE, "the pickle builds too many values");
    return llm_err_set(LLM_ENOMEM, "'%s': out of memory", vm->path);
}

static int tb_push(struct tb_vm *vm, struct tb_val *v)
{
    if (!v) return tb_oom(vm);
    int rc = tb_grow((void **)&vm->stack, &vm->scap, vm->sp + 1, sizeof(*vm->stack), TB_MAX_STACK);
    if (rc == LLM_ERANGE) return tb_err_at(vm, LLM_ERANGE, "the pickle stack is too deep");
    if (rc) return tb_oom(vm);
    vm->stack[vm->sp++] = v;
    return 0;
}

/* The stack above the innermost mark must hold at least k values. */
static int tb_need(struct tb_vm *vm, size_t k)
{
    size_t floor = vm->nmarks ? vm->marks[vm->nmarks - 1] : 0;
    if (vm->sp - floor < k) return tb_err_at(vm, LLM_EFORMAT, "the pickle stack is empty");
    return 0;
}

static struct tb_val *tb_pop(struct tb_vm *vm)
{
    return vm->stack[--vm->sp];
}

/* Pops to the innermost mark: the values above it are stack[*from, sp). */
static int tb_pop_mark(struct tb_vm *vm, size_t *from)
{
    if (!vm->nmarks) return tb_err_at(vm, LLM_EFORMAT, "no MARK to pop");
    *from = vm->marks[--vm->nmarks];
    return 0;
}

/* A new sequence holding stack[from, sp), which is popped. */
static int tb_collect(struct tb_vm *vm, enum tb_kind kind, size_t from)
{
    struct tb_val *v = tb_new(vm, kind);
    if (!v) return tb_oom(vm);
    size_t k = vm->sp - from;
    if (k > TB_MAX_ITEMS - vm->nitems)
        return tb_err_at(vm, LLM_ERANGE, "the pickle's tuples, lists and dicts are too large");
    vm->nitems += k;
    if (k) {
        v->items = malloc(k * sizeof(*v->items));
        if (!v->items) return tb_oom(vm);
        memcpy(v->items, vm->stack + from, k * sizeof(*v->items));
    }
    v->n = v->cap = k;
    vm->sp = from;
    return tb_push(vm, v);
}

/* Appends stack[from, sp) to seq (a list, or a dict with pairs). */
static int tb_extend(struct tb_vm *vm, struct tb_val *seq, size_t from)
{
    size_t k = vm->sp - from;
    if (!k) return 0;
    if (k > TB_MAX_ITEMS - vm->nitems)
        return tb_err_at(vm, LLM_ERANGE, "the pickle's tuples, lists and dicts are too large");
    vm->nitems += k;
    if (tb_grow((void **)&seq->items, &seq->cap, seq->n + k, sizeof(*seq->items), TB_MAX_ITEMS))
        return tb_oom(vm);
    memcpy(seq->items + seq->n, vm->stack + from, k * sizeof(*seq->items));
    seq->n += k;
    vm->sp = from;
    return 0;
}

static int tb_read(struct tb_vm *vm, size_t k, const uint8_t **p)
{
    if (vm->len - vm->pos < k)
        return tb_err_at(vm, LLM_ETRUNC, "the pickle ends inside an opcode's argument");
    *p = vm->pk + vm->pos;
    vm->pos += k;
    return 0;
}

static int tb_int(struct tb_vm *vm, int64_t x)
{
    struct tb_val *v = tb_new(vm, TK_INT);
    if (v) v->i = x;
    return tb_push(vm, v);
}

static int tb_str(struct tb_vm *vm, uint64_t len)
{
    if (len > TB_MAX_STR) return tb_err_at(vm, LLM_ERANGE, "a string longer than 1 MiB");
    const uint8_t *p = NULL;
    int rc = tb_read(vm, (size_t)len, &p);
    if (rc) return rc;
    struct tb_val *v = tb_new(vm, TK_STR);
    if (v) v->s = p, v->slen = (size_t)len;
    return tb_push(vm, v);
}

static int tb_memo_put(struct tb_vm *vm, uint64_t idx)
{
    if (!vm->sp) return tb_err_at(vm, LLM_EFORMAT, "memoizing from an empty stack");
    if (idx >= TB_MAX_MEMO) return tb_err_at(vm, LLM_ERANGE, "memo index too large");
    if (idx >= vm->nmemo) {
        size_t cap = vm->nmemo;
        if (tb_grow((void **)&vm->memo, &cap, (size_t)idx + 1, sizeof(*vm->memo), TB_MAX_MEMO))
            return tb_oom(vm);
        memset(vm->memo + vm->nmemo, 0, (cap - vm->nmemo) * sizeof(*vm->memo));
        vm->nmemo = cap;
    }
    if (!vm->memo[idx]) vm->memo_len++;
    vm->memo[idx] = vm->stack[vm->sp - 1];
    return 0;
}

static int tb_memo_get(struct tb_vm *vm, uint64_t idx)
{
    if (idx >= vm->nmemo || !vm->memo[idx])
        return tb_err_at(vm, LLM_EFORMAT, "memo lookup of a slot never stored");
    return tb_push(vm, vm->memo[idx]);
}

static int tb_global(struct tb_vm *vm, const uint8_t *mod, size_t mlen, const uint8_t *name,
                     size_t nlen)
{
    for (size_t k = 0; k < sizeof(tb_globals) / sizeof(tb_globals[0]); k++) {
        if (strlen(tb_globals[k].module) == mlen && !memcmp(tb_globals[k].module, mod, mlen) &&
            strlen(tb_globals[k].name) == nlen && !memcmp(tb_globals[k].name, name, nlen)) {
            struct tb_val *v = tb_new(vm, TK_GLOBAL);
            if (v) v->i = (int64_t)k;
            return tb_push(vm, v);
        }
    }
    char qm[160], qn[160];
    return llm_err_set(LLM_EUNSUPPORTED,
                       "'%s': data.pkl byte %zu: the pickle refers to the global '%s.%s', which "
                       "a state dict does not need; refused (nothing in the file is run)",
                       vm->path, vm->op_at, tb_q(mod, mlen, qm, sizeof(qm)),
                       tb_q(name, nlen, qn, sizeof(qn)));
}

/* GLOBAL's two lines, "module\nname\n". */
static int tb_line(struct tb_vm *vm, const uint8_t **s, size_t *len)
{
    const uint8_t *p = vm->pk + vm->pos;
    size_t left = vm->len - vm->pos;
    size_t lim = left < TB_MAX_GLOBAL + 1 ? left : TB_MAX_GLOBAL + 1;
    const uint8_t *nl = memchr(p, '\n', lim);
    if (!nl) return tb_err_at(vm, LLM_EFORMAT, "GLOBAL's name has no end of line");
    *s = p;
    *len = (size_t)(nl - p);
    vm->pos += *len + 1;
    return 0;
}

static int tb_is_int(const struct tb_val *v)
{
    return v->kind == TK_INT || v->kind == TK_BOOL;
}

/* A persistent id: ('storage', storage class, key, location, numel). */
static int tb_persid(struct tb_vm *vm)
{
    struct tb_val *pid = tb_pop(vm);
    char m[320], qk[160];
    if (pid->kind != TK_TUPLE || pid->n != 5 || pid->items[0]->kind != TK_STR ||
        pid->items[0]->slen != 7 || memcmp(pid->items[0]->s, "storage", 7))
        return tb_err_at(vm, LLM_EFORMAT,
                         "a persistent id that is not ('storage', type, key, location, numel)");
    const struct tb_val *ty = pid->items[1], *key = pid->items[2], *loc = pid->items[3],
                        *num = pid->items[4];
    if (ty->kind != TK_GLOBAL ||
        (tb_globals[ty->i].g != G_STORAGE && tb_globals[ty->i].g != G_UNTYPED))
        return tb_err_at(vm, LLM_EFORMAT, "a persistent id whose type is not a storage class");
    if (key->kind != TK_STR || loc->kind != TK_STR || num->kind != TK_INT || num->i < 0 ||
        key->slen > 256)
        return tb_err_at(vm, LLM_EFORMAT, "a persistent id with a bad key, location or numel");
    char tail[5 + 256];
    memcpy(tail, "data/", 5);
    memcpy(tail + 5, key->s, key->slen);
    const struct tb_entry *e = tb_zip_find(vm->z, tail, 5 + key->slen);
    tb_q(key->s, key->slen, qk, sizeof(qk));
    if (!e)
        return llm_err_set(LLM_ENOTFOUND, "'%s': storage '%s' has no entry data/%s in the archive",
                           vm->path, qk, qk);
    int dt = tb_globals[ty->i].dtype;
    uint64_t nbytes;
    if (llm_dtype_nbytes(dt, (uint64_t)num->i, &nbytes) || nbytes != e->size) {
        snprintf(m, sizeof(m),
                 "storage '%s' of %lld %s elements does not match its entry's %llu bytes", qk,
                 (long long)num->i, llm_dtype_name(dt), (unsigned long long)e->size);
        return tb_err_at(vm, LLM_EFORMAT, m);
    }
    struct tb_val *v = tb_new(vm, TK_STORAGE);
    if (v) v->dtype = dt, v->off = e->off, v->nbytes = nbytes;
    return tb_push(vm, v);
}

/* A tuple of at most LLM_MAX_DIMS ints. */
static int tb_dims(const struct tb_val *v, int64_t *out, int *ndim)
{
    if (v->kind != TK_TUPLE || v->n > LLM_MAX_DIMS) return -1;
    for (size_t i = 0; i < v->n; i++) {
        if (v->items[i]->kind != TK_INT) return -1;
        out[i] = v->items[i]->i;
    }
    *ndim = (int)v->n;
    return 0;
}

/* What calling an allow-listed global builds. */
static int tb_reduce(struct tb_vm *vm)
{
    struct tb_val *args = tb_pop(vm), *fn = tb_pop(vm);
    if (fn->kind != TK_GLOBAL)
        return tb_err_at(vm, LLM_EFORMAT, "REDUCE calls something that is not a global");
    if (args->kind != TK_TUPLE)
        return tb_err_at(vm, LLM_EFORMAT, "REDUCE's arguments are not a tuple");
    enum tb_global g = tb_globals[fn->i].g;
    struct tb_val **a = args->items;
    switch (g) {
    case G_ORDERED_DICT:
        if (args->n) return tb_err_at(vm, LLM_EFORMAT, "OrderedDict called with arguments");
        return tb_push(vm, tb_new(vm, TK_DICT));
    case G_REBUILD_PARAM:
        if (args->n != 3 || a[0]->kind != TK_TENSOR)
            return tb_err_at(vm, LLM_EFORMAT, "_rebuild_parameter called without a tensor");
        return tb_push(vm, a[0]);
    case G_REBUILD:
    case G_REBUILD_V2:
    case G_REBUILD_V3: {
        size_t lo = g == G_REBUILD ? 4 : g == G_REBUILD_V2 ? 6 : 7;
        if (args->n < lo || args->n > lo + (g != G_REBUILD))
            return tb_err_at(vm, LLM_EFORMAT,
                             "a tensor rebuilt with the wrong number of arguments");
        struct tb_tinfo *t = calloc(1, sizeof(*t));
        struct tb_val *v = t ? tb_new(vm, TK_TENSOR) : NULL;
        if (!v) {
            free(t);
            return tb_oom(vm);
        }
        v->t = t;
        int nd_stride = 0;
        if (a[0]->kind != TK_STORAGE)
            return tb_err_at(vm, LLM_EFORMAT, "a tensor rebuilt from something not a storage");
        if (a[1]->kind != TK_INT || a[1]->i < 0)
            return tb_err_at(vm, LLM_EFORMAT, "a tensor with a bad storage offset");
        if (tb_dims(a[2], t->shape, &t->ndim) || tb_dims(a[3], t->stride, &nd_stride) ||
            nd_stride != t->ndim)
            return tb_err_at(vm, LLM_EFORMAT,
                             "a tensor whose size and stride are not tuples of at most 8 ints "
                             "of one length");
        if (g != G_REBUILD && !tb_is_int(a[4]))
            return tb_err_at(vm, LLM_EFORMAT, "a tensor whose requires_grad is not a bool");
        t->storage = a[0];
        t->offset = a[1]->i;
        t->dtype = a[0]->dtype;
        if (g == G_REBUILD_V3) {
            if (a[6]->kind != TK_GLOBAL || tb_globals[a[6]->i].g != G_DTYPE)
                return tb_err_at(vm, LLM_EFORMAT, "_rebuild_tensor_v3's dtype is not a dtype");
            t->dtype = tb_globals[a[6]->i].dtype;
        }
        return tb_push(vm, v);
    }
    default: {
        char m[200];
        snprintf(m, sizeof(m), "a call of '%s.%s', which only names a type here",
                 tb_globals[fn->i].module, tb_globals[fn->i].name);
        return tb_err_at(vm, LLM_EFORMAT, m);
    }
    }
}

static int tb_step(struct tb_vm *vm, int *stop)
{
    const uint8_t *p = NULL;
    int rc;
    vm->op_at = vm->pos;
    if (vm->pos >= vm->len)
        return tb_err_at(vm, LLM_ETRUNC, "the pickle ends without a STOP opcode");
    uint8_t op = vm->pk[vm->pos++];
    switch (op) {
    case 0x80: /* PROTO */
        if ((rc = tb_read(vm, 1, &p))) return rc;
        if (*p > 5) return tb_err_at(vm, LLM_EUNSUPPORTED, "pickle protocol above 5");
        return 0;
    case 0x95: /* FRAME */
        return tb_read(vm, 8, &p);
    case '}': /* EMPTY_DICT */
        return tb_push(vm, tb_new(vm, TK_DICT));
    case ')': /* EMPTY_TUPLE */
        return tb_push(vm, tb_new(vm, TK_TUPLE));
    case ']': /* EMPTY_LIST */
        return tb_push(vm, tb_new(vm, TK_LIST));
    case 'N': /* NONE */
        return tb_push(vm, tb_new(vm, TK_NONE));
    case 0x88:   /* NEWTRUE */
    case 0x89: { /* NEWFALSE */
        struct tb_val *v = tb_new(vm, TK_BOOL);
        if (v) v->i = op == 0x88;
        return tb_push(vm, v);
    }
    case '(': /* MARK */
        rc = tb_grow((void **)&vm->marks, &vm->mcap, vm->nmarks + 1, sizeof(*vm->marks),
                     TB_MAX_MARKS);
        if (rc == LLM_ERANGE) return tb_err_at(vm, LLM_ERANGE, "too many open MARKs");
        if (rc) return tb_oom(vm);
        vm->marks[vm->nmarks++] = vm->sp;
        return 0;
    case 'X': /* BINUNICODE */
        if ((rc = tb_read(vm, 4, &p))) return rc;
        return tb_str(vm, tb_le32(p));
    case 0x8c: /* SHORT_BINUNICODE */
        if ((rc = tb_read(vm, 1, &p))) return rc;
        return tb_str(vm, *p);
    case 0x8d: /* BINUNICODE8 */
        if ((rc = tb_read(vm, 8, &p))) return rc;
        return tb_str(vm, tb_le64(p));
    case 'J': /* BININT */
        if ((rc = tb_read(vm, 4, &p))) return rc;
        return tb_int(vm, (int32_t)tb_le32(p));
    case 'K': /* BININT1 */
        if ((rc = tb_read(vm, 1, &p))) return rc;
        return tb_int(vm, *p);
    case 'M': /* BININT2 */
        if ((rc = tb_read(vm, 2, &p))) return rc;
        return tb_int(vm, tb_le16(p));
    case 0x8a: { /* LONG1: little-endian two's complement */
        if ((rc = tb_read(vm, 1, &p))) return rc;
        size_t k = *p;
        if (k > 8) return tb_err_at(vm, LLM_ERANGE, "an integer wider than 64 bits");
        if ((rc = tb_read(vm, k, &p))) return rc;
        uint64_t u = 0;
        for (size_t i = k; i-- > 0;)
            u = (u << 8) | p[i];
        if (k && k < 8 && (p[k - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * k);
        return tb_int(vm, (int64_t)u);
    }
    case 't': { /* TUPLE */
        size_t from = 0;
        if ((rc = tb_pop_mark(vm, &from))) return rc;
        return tb_collect(vm, TK_TUPLE, from);
    }
    case 0x85: /* TUPLE1 */
    case 0x86: /* TUPLE2 */
    case 0x87: /* TUPLE3 */
        if ((rc = tb_need(vm, (size_t)(op - 0x84)))) return rc;
        return tb_collect(vm, TK_TUPLE, vm->sp - (size_t)(op - 0x84));
    case 'q': /* BINPUT */
        if ((rc = tb_read(vm, 1, &p))) return rc;
        return tb_memo_put(vm, *p);
    case 'r': /* LONG_BINPUT */
        if ((rc = tb_read(vm, 4, &p))) return rc;
        return tb_memo_put(vm, tb_le32(p));
    case 0x94: /* MEMOIZE */
        return tb_memo_put(vm, vm->memo_len);
    case 'h': /* BINGET */
        if ((rc = tb_read(vm, 1, &p))) return rc;
        return tb_memo_get(vm, *p);
    case 'j': /* LONG_BINGET */
        if ((rc = tb_read(vm, 4, &p))) return rc;
        return tb_memo_get(vm, tb_le32(p));
    case 'c': { /* GLOBAL */
        const uint8_t *m, *n;
        size_t ml, nl;
        if ((rc = tb_line(vm, &m, &ml)) || (rc = tb_line(vm, &n, &nl))) return rc;
        return tb_global(vm, m, ml, n, nl);
    }
    case 0x93: { /* STACK_GLOBAL */
        if ((rc = tb_need(vm, 2))) return rc;
        struct tb_val *n = tb_pop(vm), *m = tb_pop(vm);
        if (m->kind != TK_STR || n->kind != TK_STR)
            return tb_err_at(vm, LLM_EFORMAT, "STACK_GLOBAL's module and name are not strings");
        return tb_global(vm, m->s, m->slen, n->s, n->slen);
    }
    case 'R': /* REDUCE */
        if ((rc = tb_need(vm, 2))) return rc;
        return tb_reduce(vm);
    case 'Q': /* BINPERSID */
        if ((rc = tb_need(vm, 1))) return rc;
        return tb_persid(vm);
    case 's': { /* SETITEM */
        if ((rc = tb_need(vm, 3))) return rc;
        struct tb_val *d = vm->stack[vm->sp - 3];
        if (d->kind != TK_DICT) return tb_err_at(vm, LLM_EFORMAT, "SETITEM on a non-dict");
        return tb_extend(vm, d, vm->sp - 2);
    }
    case 'u': { /* SETITEMS */
        size_t from = 0;
        if ((rc = tb_pop_mark(vm, &from))) return rc;
        if ((rc = tb_need(vm, vm->sp - from + 1))) return rc;
        struct tb_val *d = vm->stack[from - 1];
        if (d->kind != TK_DICT) return tb_err_at(vm, LLM_EFORMAT, "SETITEMS on a non-dict");
        if ((vm->sp - from) % 2)
            return tb_err_at(vm, LLM_EFORMAT, "SETITEMS with a key and no value");
        return tb_extend(vm, d, from);
    }
    case 'a': { /* APPEND */
        if ((rc = tb_need(vm, 2))) return rc;
        struct tb_val *l = vm->stack[vm->sp - 2];
        if (l->kind != TK_LIST) return tb_err_at(vm, LLM_EFORMAT, "APPEND on a non-list");
        return tb_extend(vm, l, vm->sp - 1);
    }
    case 'e': { /* APPENDS */
        size_t from = 0;
        if ((rc = tb_pop_mark(vm, &from))) return rc;
        if ((rc = tb_need(vm, vm->sp - from + 1))) return rc;
        struct tb_val *l = vm->stack[from - 1];
        if (l->kind != TK_LIST) return tb_err_at(vm, LLM_EFORMAT, "APPENDS on a non-list");
        return tb_extend(vm, l, from);
    }
    case 'b': { /* BUILD: an OrderedDict's attributes (state_dict's _metadata) */
        if ((rc = tb_need(vm, 2))) return rc;
        struct tb_val *state = tb_pop(vm);
        const struct tb_val *obj = vm->stack[vm->sp - 1];
        if (obj->kind != TK_DICT || (state->kind != TK_DICT && state->kind != TK_NONE))
            return tb_err_at(vm, LLM_EFORMAT, "BUILD of something other than a dict's attributes");
        return 0;
    }
    case '.': /* STOP */
        if ((rc = tb_need(vm, 1))) return rc;
        *stop = 1;
        return 0;
    default: {
        char m[120];
        snprintf(m, sizeof(m), "opcode 0x%02x is not one torch.save writes", op);
        return tb_err_at(vm, LLM_EFORMAT, m);
    }
    }
}

/* ---- the state dict --------------------------------------------------------- */

void llm_tb_free(struct llm_tb_tensor *t, size_t n)
{
    if (!t) return;
    for (size_t i = 0; i < n; i++)
        free(t[i].name);
    free(t);
}

/* A named tensor: contiguous, and inside its storage. */
static int tb_tensor(struct tb_vm *vm, const struct tb_val *key, const struct tb_val *val,
                     struct llm_tb_tensor *out)
{
    char qn[160], sh[256], st[256];
    if (key->kind != TK_STR)
        return llm_err_set(LLM_EFORMAT, "'%s': the state dict has a key that is a %s, not a str",
                           vm->path, tb_kind_name[key->kind]);
    tb_q(key->s, key->slen, qn, sizeof(qn));
    if (!key->slen || memchr(key->s, 0, key->slen) || !tb_utf8_ok(key->s, key->slen))
        return llm_err_set(LLM_EFORMAT, "'%s': tensor name '%s' is empty or not valid UTF-8",
                           vm->path, qn);
    if (val->kind != TK_TENSOR)
        return llm_err_set(LLM_EFORMAT, "'%s': state dict entry '%s' is a %s, not a tensor",
                           vm->path, qn, tb_kind_name[val->kind]);
    const struct tb_tinfo *t = val->t;
    llm_shape_str(sh, sizeof(sh), t->ndim, t->shape);
    uint64_t numel, nbytes, esz = (uint64_t)llm_dtype_bits(t->dtype) / 8;
    if (llm_shape_numel(t->ndim, t->shape, &numel) || llm_dtype_nbytes(t->dtype, numel, &nbytes))
        return llm_err_set(LLM_ERANGE, "'%s': tensor '%s': size %s is negative or overflows",
                           vm->path, qn, sh);
    if (numel) {
        int64_t want = 1;
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (t->shape[d] != 1 && t->stride[d] != want)
                return llm_err_set(LLM_EUNSUPPORTED,
                                   "'%s': tensor '%s' of size %s has stride %s, not contiguous "
                                   "(only row-major contiguous tensors are read)",
                                   vm->path, qn, sh,
                                   llm_shape_str(st, sizeof(st), t->ndim, t->stride));
            want *= t->shape[d]; /* cannot overflow: numel did not */
        }
    }
    const struct tb_val *s = t->storage;
    uint64_t off = (uint64_t)t->offset;
    if (off > s->nbytes / esz || nbytes > s->nbytes - off * esz)
        return llm_err_set(LLM_ERANGE,
                           "'%s': tensor '%s' (%s %s at element %llu) runs past its storage of "
                           "%llu bytes",
                           vm->path, qn, llm_dtype_name(t->dtype), sh, (unsigned long long)off,
                           (unsigned long long)s->nbytes);
    out->name = malloc(key->slen + 1);
    if (!out->name) return llm_err_set(LLM_ENOMEM, "'%s': out of memory", vm->path);
    memcpy(out->name, key->s, key->slen);
    out->name[key->slen] = 0;
    out->dtype = t->dtype;
    out->ndim = t->ndim;
    memcpy(out->shape, t->shape, sizeof(out->shape));
    out->offset = s->off + off * esz;
    out->nbytes = nbytes;
    return 0;
}

static int tb_run(struct tb_vm *vm, struct llm_tb_tensor **out, size_t *n)
{
    int stop = 0, rc = 0;
    while (!stop && !rc)
        rc = tb_step(vm, &stop);
    if (rc) return rc;
    const struct tb_val *d = vm->stack[vm->sp - 1];
    if (d->kind != TK_DICT)
        return llm_err_set(LLM_EFORMAT, "'%s': the pickle is a %s, not a state dict of tensors",
                           vm->path, tb_kind_name[d->kind]);
    size_t cnt = d->n / 2;
    if (cnt > TB_MAX_TENSORS)
        return llm_err_set(LLM_ERANGE, "'%s': %zu tensors (at most %u)", vm->path, cnt,
                           TB_MAX_TENSORS);
    struct llm_tb_tensor *t = calloc(cnt ? cnt : 1, sizeof(*t));
    if (!t) return llm_err_set(LLM_ENOMEM, "'%s': out of memory", vm->path);
    for (size_t i = 0; i < cnt; i++) {
        rc = tb_tensor(vm, d->items[2 * i], d->items[2 * i + 1], &t[i]);
        if (rc) {
            llm_tb_free(t, cnt);
            return rc;
        }
    }
    *out = t;
    *n = cnt;
    return 0;
}

int llm_tb_parse(const uint8_t *base, uint64_t size, const char *path, struct llm_tb_tensor **out,
                 size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!path) path = "<memory>";
    struct tb_zip z = {.path = path, .base = base, .size = size};
    int rc = tb_zip_open(&z);
    if (!rc) {
        const struct tb_entry *pk = tb_zip_find(&z, "data.pkl", 8);
        if (!pk) {
            rc = llm_err_set(LLM_EFORMAT, "'%s': no data.pkl in the archive (not torch.save's)",
                             path);
        } else if (pk->size > TB_MAX_PICKLE) {
            rc = llm_err_set(LLM_ERANGE, "'%s': data.pkl is %llu bytes (at most %u)", path,
                             (unsigned long long)pk->size, TB_MAX_PICKLE);
        } else {
            struct tb_vm vm = {
                .path = path, .z = &z, .pk = base + pk->off, .len = (size_t)pk->size};
            rc = tb_run(&vm, out, n);
            tb_vm_free(&vm);
        }
    }
    free(z.ents);
    return rc;
}
