/* test_safetensors.c - safetensors reader and writer: round trips of single
 * and sharded checkpoints, folder lookup, hand-made headers, and one check
 * per validation error the reader has (each must be reported with its own
 * code and message, never a crash). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/safetensors.h"
#include "tcheck.h"

static char *join(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

/* ---- fixtures ---------------------------------------------------------------- */

static float w_f32[6] = {0.5f, -1.0f, 2.25f, 3.0f, -4.5f, 1e-3f};
static uint16_t b_bf16[5] = {0x3f80, 0xbf80, 0x4000, 0x0000, 0x7f80};
static int8_t s_i8[1] = {-7};
static uint8_t u_u8[3] = {1, 2, 255};
static int64_t x_i64[2] = {-1, INT64_MAX};

static void fill(struct llm_tensor *t, const char *name, int dt, int ndim, const int64_t *shape,
                 const void *data, uint64_t nbytes)
{
    memset(t, 0, sizeof(*t));
    t->name = name;
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->data = data;
    t->nbytes = nbytes;
}

static size_t make_set(struct llm_tensor *ts)
{
    fill(&ts[0], "w.f32", LLM_DTYPE_F32, 2, (int64_t[]){2, 3}, w_f32, sizeof(w_f32));
    fill(&ts[1], "b.bf16", LLM_DTYPE_BF16, 1, (int64_t[]){5}, b_bf16, sizeof(b_bf16));
    fill(&ts[2], "s.i8", LLM_DTYPE_I8, 0, NULL, s_i8, 1);
    fill(&ts[3], "e.f16", LLM_DTYPE_F16, 2, (int64_t[]){0, 4}, NULL, 0);
    fill(&ts[4], "u.u8", LLM_DTYPE_U8, 1, (int64_t[]){3}, u_u8, sizeof(u_u8));
    fill(&ts[5], "x.i64", LLM_DTYPE_I64, 1, (int64_t[]){2}, x_i64, sizeof(x_i64));
    return 6;
}

/* Every tensor of st equals the expected one, in the expected order. */
static void check_same(const struct llm_st *st, const struct llm_tensor *exp, size_t n,
                       const char *what)
{
    CHECK(llm_st_count(st) == n, "%s: %zu tensors, expected %zu", what, llm_st_count(st), n);
    for (size_t i = 0; i < n && i < llm_st_count(st); i++) {
        const struct llm_tensor *t = llm_st_get(st, i);
        CHECK(!strcmp(t->name, exp[i].name), "%s: tensor %zu is '%s', expected '%s'", what, i,
              t->name, exp[i].name);
        CHECK(t->dtype == exp[i].dtype, "%s: '%s' dtype %s, expected %s", what, t->name,
              llm_dtype_name(t->dtype), llm_dtype_name(exp[i].dtype));
        CHECK(t->ndim == exp[i].ndim, "%s: '%s' ndim %d, expected %d", what, t->name, t->ndim,
              exp[i].ndim);
        for (int k = 0; k < exp[i].ndim && k < t->ndim; k++)
            CHECK(t->shape[k] == exp[i].shape[k], "%s: '%s' dim %d is %lld, expected %lld", what,
                  t->name, k, (long long)t->shape[k], (long long)exp[i].shape[k]);
        CHECK(t->nbytes == exp[i].nbytes, "%s: '%s' %llu bytes, expected %llu", what, t->name,
              (unsigned long long)t->nbytes, (unsigned long long)exp[i].nbytes);
        CHECK(t->nbytes == 0 || !memcmp(t->data, exp[i].data, t->nbytes), "%s: '%s' data differs",
              what, t->name);
        CHECK(llm_st_find(st, exp[i].name) == t, "%s: find('%s') is not get(%zu)", what,
              exp[i].name, i);
    }
}

/* ---- round trips ------------------------------------------------------------- */

static void test_single(const char *dir)
{
    struct llm_tensor ts[8];
    size_t n = make_set(ts);
    char *path = join(dir, "model.safetensors");
    CHECK_OK(llm_st_write(path, ts, n, "{\"format\": \"pt\", \"note\": \"x\"}"));

    /* the header is padded with spaces so the data starts 8-byte aligned */
    size_t len;
    unsigned char *raw = t_slurp(path, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | raw[i];
    CHECK((8 + hlen) % 8 == 0, "header length %llu leaves the data unaligned",
          (unsigned long long)hlen);
    CHECK(raw[8] == '{', "header starts with '%c'", raw[8]);
    size_t end = 8 + (size_t)hlen;
    while (end > 8 && raw[end - 1] == ' ')
        end--;
    CHECK(raw[end - 1] == '}', "header padding is not spaces after the JSON");
    CHECK(8 + hlen - end < 8, "more than 7 bytes of padding");
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += ts[i].nbytes;
    CHECK(len == 8 + hlen + total, "file is %zu bytes, expected %llu", len,
          (unsigned long long)(8 + hlen + total));

    struct llm_st *st = NULL;
    CHECK_OK(llm_st_open(&st, path));
    if (st) {
        check_same(st, ts, n, "single file");
        CHECK(llm_st_nfiles(st) == 1, "nfiles %zu", llm_st_nfiles(st));
        CHECK_STR(llm_st_file_path(st, 0), path);
        CHECK(llm_st_file_size(st, 0) == len, "file size %llu",
              (unsigned long long)llm_st_file_size(st, 0));
        CHECK(llm_st_file_data(st, 0) != NULL, "no file data");
        CHECK(llm_st_find(st, "nope") == NULL, "found a tensor that is not there");
        CHECK(llm_st_get(st, n) == NULL, "get past the end");
        CHECK(llm_st_shard_of(st, 0) == 0, "shard of 0");
        CHECK(llm_st_shard_of(st, n) < 0, "shard of past the end");
        const json_t *meta = llm_st_metadata(st);
        CHECK(json_is_object(meta) && json_object_size(meta) == 2, "metadata missing");
        CHECK(meta && !strcmp(json_string_value(json_object_get(meta, "format")), "pt"),
              "metadata format");
        /* data is 8-byte aligned in the mapping */
        CHECK(((uintptr_t)llm_st_get(st, 0)->data & 7) == 0, "data not aligned");
        /* releasing pages keeps the data readable */
        for (size_t i = 0; i < n; i++)
            llm_st_release(st, i);
        llm_st_release_file(st, 0);
        llm_st_release(st, 99);
        check_same(st, ts, n, "after release");
        llm_st_close(st);
    }

    /* the same bytes from memory */
    CHECK_OK(llm_st_open_mem(&st, raw, len, "mem"));
    if (st) {
        check_same(st, ts, n, "memory");
        const struct llm_tensor *t = llm_st_get(st, 0);
        CHECK((const unsigned char *)t->data >= raw && (const unsigned char *)t->data < raw + len,
              "memory tensor does not point into the buffer (zero copy)");
        CHECK_STR(llm_st_file_path(st, 0), "mem");
        llm_st_release(st, 0); /* no mapping: nothing to do, must not crash */
        llm_st_close(st);
    }
    free(raw);

    /* the folder finds model.safetensors */
    CHECK_OK(llm_st_open(&st, dir));
    if (st) {
        check_same(st, ts, n, "folder");
        llm_st_close(st);
    }
    /* no metadata: NULL */
    CHECK_OK(llm_st_write(path, ts, 2, NULL));
    CHECK_OK(llm_st_open(&st, path));
    if (st) {
        CHECK(llm_st_metadata(st) == NULL, "metadata where none was written");
        check_same(st, ts, 2, "two tensors");
        llm_st_close(st);
    }
    /* zero tensors is a valid file */
    CHECK_OK(llm_st_write(path, ts, 0, NULL));
    CHECK_OK(llm_st_open(&st, path));
    if (st) {
        CHECK(llm_st_count(st) == 0, "empty file has %zu tensors", llm_st_count(st));
        llm_st_close(st);
    }
    remove(path);
    free(path);
}

static void test_folder_lookup(const char *base)
{
    struct llm_tensor ts[8];
    make_set(ts);
    struct llm_st *st = NULL;
    char *d = join(base, "lookup");
    mkdir(d, 0755);
    CHECK_ERR(llm_st_open(&st, d), LLM_ENOTFOUND, "no .safetensors file in the folder");
    char *p1 = join(d, "weights.safetensors");
    CHECK_OK(llm_st_write(p1, ts, 3, NULL));
    CHECK_OK(llm_st_open(&st, d)); /* the only .safetensors file */
    if (st) {
        check_same(st, ts, 3, "only file");
        CHECK_STR(llm_st_file_path(st, 0), p1);
        llm_st_close(st);
    }
    char *p2 = join(d, "other.safetensors");
    CHECK_OK(llm_st_write(p2, ts + 3, 2, NULL));
    CHECK_ERR(llm_st_open(&st, d), LLM_ENOTFOUND,
              "2 .safetensors files but no "
              "model.safetensors.index.json");
    CHECK(st == NULL, "out set on failure");
    char *missing = join(d, "nothing-here");
    CHECK_ERR(llm_st_open(&st, missing), LLM_ENOTFOUND, "no such file or folder");
    CHECK_ERR(llm_st_open(&st, ""), LLM_EINVAL, "no safetensors path");
    remove(p1);
    remove(p2);
    rmdir(d);
    free(p1);
    free(p2);
    free(missing);
    free(d);
}

static void test_sharded(const char *base)
{
    struct llm_tensor ts[8];
    make_set(ts);
    char *d = join(base, "sharded");
    mkdir(d, 0755);
    char *s1 = join(d, "model-00001-of-00002.safetensors");
    char *s2 = join(d, "model-00002-of-00002.safetensors");
    char *ix = join(d, "model.safetensors.index.json");
    CHECK_OK(llm_st_write(s1, ts, 3, NULL));
    CHECK_OK(llm_st_write(s2, ts + 3, 3, "{\"format\": \"pt\"}"));
    /* weight_map in name order, as HF writes it; x.i64 is in the shard but
     * not in the index, which is accepted */
    const char *index = "{\"metadata\": {\"total_size\": 100}, \"weight_map\": {"
                        "\"b.bf16\": \"model-00001-of-00002.safetensors\","
                        "\"e.f16\": \"model-00002-of-00002.safetensors\","
                        "\"s.i8\": \"model-00001-of-00002.safetensors\","
                        "\"u.u8\": \"model-00002-of-00002.safetensors\","
                        "\"w.f32\": \"model-00001-of-00002.safetensors\"}}";
    t_spit(ix, index, strlen(index));
    const char *paths[2] = {d, ix};
    for (int k = 0; k < 2; k++) {
        struct llm_st *st = NULL;
        CHECK_OK(llm_st_open(&st, paths[k]));
        if (!st) continue;
        check_same(st, ts, 6, k ? "index path" : "sharded folder");
        CHECK(llm_st_nfiles(st) == 2, "nfiles %zu", llm_st_nfiles(st));
        CHECK_STR(llm_st_file_path(st, 0), s1);
        CHECK_STR(llm_st_file_path(st, 1), s2);
        for (size_t i = 0; i < 6; i++)
            CHECK(llm_st_shard_of(st, i) == (i < 3 ? 0 : 1), "tensor %zu in shard %d", i,
                  llm_st_shard_of(st, i));
        /* metadata comes from the first shard, which has none */
        CHECK(llm_st_metadata(st) == NULL, "metadata of shard 0");
        llm_st_release_file(st, 1);
        check_same(st, ts, 6, "after releasing shard 1");
        llm_st_close(st);
    }
    remove(s1);
    remove(s2);
    remove(ix);
    rmdir(d);
    free(s1);
    free(s2);
    free(ix);
    free(d);
}

/* ---- hand-made files ------------------------------------------------------------- */

/* A file from header text and n data bytes (pattern i & 0xff). */
static unsigned char *mkfile(const char *hdr, size_t ndata, size_t *len)
{
    size_t hl = strlen(hdr);
    *len = 8 + hl + ndata;
    unsigned char *b = malloc(*len + 1);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, hdr, hl);
    for (size_t i = 0; i < ndata; i++)
        b[8 + hl + i] = (unsigned char)i;
    return b;
}

static void test_handmade(void)
{
    /* out of order, a hole between tensors and unused bytes at the end,
     * leading whitespace inside the header, an unaligned header length */
    const char *h = "{\"z\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]},"
                    "\"a\":{\"dtype\":\"U8\",\"shape\":[2,2],\"data_offsets\":[0,4]},"
                    "\"m\":{\"shape\":[],\"data_offsets\":[4,6],\"dtype\":\"BF16\","
                    "\"extra\":\"ignored\"}}  ";
    size_t len;
    unsigned char *b = mkfile(h, 20, &len);
    struct llm_st *st = NULL;
    CHECK_OK(llm_st_open_mem(&st, b, len, "hand"));
    if (st) {
        CHECK(llm_st_count(st) == 3, "count %zu", llm_st_count(st));
        const char *order[3] = {"a", "m", "z"};
        size_t offs[3] = {0, 4, 12};
        for (size_t i = 0; i < 3 && i < llm_st_count(st); i++) {
            const struct llm_tensor *t = llm_st_get(st, i);
            CHECK_STR(t->name, order[i]);
            CHECK((const unsigned char *)t->data == b + 8 + strlen(h) + offs[i],
                  "'%s' points at the wrong byte", t->name);
        }
        const struct llm_tensor *m = llm_st_find(st, "m");
        CHECK(m && m->ndim == 0 && m->nbytes == 2, "scalar bf16");
        llm_st_close(st);
    }
    free(b);

    /* zero-size tensors share offsets with others without overlapping */
    h = "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
        "\"e\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[2,2]},"
        "\"f\":{\"dtype\":\"F16\",\"shape\":[3,0],\"data_offsets\":[4,4]}}";
    b = mkfile(h, 4, &len);
    CHECK_OK(llm_st_open_mem(&st, b, len, "zero-size"));
    if (st) {
        CHECK(llm_st_count(st) == 3, "count %zu", llm_st_count(st));
        llm_st_close(st);
    }
    free(b);

    /* every dtype name the format has */
    const char *names[] = {"F64", "F32", "F16", "BF16", "I64",  "I32",     "I16",    "I8",
                           "U64", "U32", "U16", "U8",   "BOOL", "F8_E4M3", "F8_E5M2"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        int dt = llm_dtype_from_st_name(names[i]);
        CHECK(dt >= 0, "dtype '%s' not known", names[i]);
        if (dt < 0) continue;
        char hdr[128];
        snprintf(hdr, sizeof(hdr),
                 "{\"t\":{\"dtype\":\"%s\",\"shape\":[3],\"data_offsets\":"
                 "[0,%d]}}",
                 names[i], 3 * llm_dtype_bits(dt) / 8);
        b = mkfile(hdr, (size_t)(3 * llm_dtype_bits(dt) / 8), &len);
        CHECK_OK(llm_st_open_mem(&st, b, len, names[i]));
        if (st) {
            CHECK(llm_st_get(st, 0)->dtype == dt, "dtype of '%s'", names[i]);
            llm_st_close(st);
        }
        free(b);
    }
}

/* ---- every error ------------------------------------------------------------------ */

struct bad {
    const char *hdr; /* NULL: raw bytes below */
    size_t ndata;
    int code;
    const char *sub;
};

#define T(dt, shape, offs) "{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

static const struct bad bads[] = {
    {"[1,2]", 0, LLM_EFORMAT, "'x': header does not start with a JSON object"},
    {"{", 0, LLM_EFORMAT, "header does not start with a JSON object"},
    {"{\"a\":" T("F32", "[1]", "[0,4]") ",}", 4, LLM_EFORMAT, "'x': header is not valid JSON"},
    {"{\"a\":" T("F32", "[1]", "[0,4]") "} trailing", 4, LLM_EFORMAT, "header is not valid JSON"},
    {"{\"a\":1,\"a\":2}", 0, LLM_EFORMAT, "'x': header has the key \"a\" twice"},
    {"{\"a\":[1]}", 0, LLM_EFORMAT, "'x': tensor 'a': entry is not an object"},
    {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, LLM_EFORMAT, "tensor 'a' has no dtype"},
    {"{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, LLM_EFORMAT,
     "tensor 'a': dtype is not a string"},
    {"{\"a\":" T("F4", "[1]", "[0,4]") "}", 4, LLM_EUNSUPPORTED,
     "tensor 'a' has unknown dtype 'F4'"},
    {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, LLM_EFORMAT,
     "tensor 'a' has no shape"},
    {"{\"a\":" T("F32", "4", "[0,4]") "}", 4, LLM_EFORMAT, "tensor 'a': shape is not an array"},
    {"{\"a\":" T("F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", 4, LLM_EUNSUPPORTED,
     "tensor 'a' has 9 dimensions (at most 8)"},
    {"{\"a\":" T("F32", "[1,\"2\"]", "[0,8]") "}", 8, LLM_EFORMAT,
     "tensor 'a': shape[1] is not an integer"},
    {"{\"a\":" T("F32", "[1.0]", "[0,4]") "}", 4, LLM_EFORMAT,
     "tensor 'a': shape[0] is not an integer"},
    {"{\"a\":" T("F32", "[2,-2]", "[0,4]") "}", 4, LLM_EFORMAT,
     "tensor 'a': shape[1] is negative (-2)"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, LLM_EFORMAT, "tensor 'a' has no data_offsets"},
    {"{\"a\":" T("F32", "[1]", "[0,4,8]") "}", 8, LLM_EFORMAT,
     "tensor 'a': data_offsets is not a pair of integers"},
    {"{\"a\":" T("F32", "[1]", "{}") "}", 4, LLM_EFORMAT, "data_offsets is not a pair of integers"},
    {"{\"a\":" T("F32", "[1]", "[0,4.0]") "}", 4, LLM_EFORMAT, "data_offsets is not a pair"},
    {"{\"a\":" T("F32", "[1]", "[-4,0]") "}", 4, LLM_EFORMAT,
     "tensor 'a': data_offsets has a negative value"},
    {"{\"a\":" T("F32", "[1]", "[4,0]") "}", 4, LLM_EFORMAT,
     "tensor 'a': data_offsets [4, 0) end before they begin"},
    {"{\"a\":" T("F32", "[2]", "[0,8]") "}", 4, LLM_ETRUNC,
     "'x': tensor 'a' data [0, 8) exceeds the data section (4 bytes)"},
    {"{\"a\":" T("F32", "[1]", "[18446744073709551612,0]") "}", 4, LLM_EFORMAT,
     "header is not valid JSON"}, /* past int64: jansson refuses it */
    {"{\"a\":" T("F32", "[4611686018427387904,4]", "[0,4]") "}", 4, LLM_ERANGE,
     "tensor 'a': size of shape [4611686018427387904, 4] of F32 overflows"},
    {"{\"a\":" T("F32", "[9223372036854775807]", "[0,4]") "}", 4, LLM_ERANGE, "overflows"},
    {"{\"a\":" T("F32", "[2,3]", "[0,20]") "}", 20, LLM_ESHAPE,
     "'x': tensor 'a': shape [2, 3] of F32 needs 24 bytes but data_offsets [0, 20) hold 20"},
    {"{\"a\":" T("F32", "[1]", "[0,4]") ",\"b\":" T("F32", "[2]", "[2,10]") "}", 10, LLM_EFORMAT,
     "'x': tensors 'a' [0, 4) and 'b' [2, 10) overlap"},
    {"{\"a\":" T("F32", "[2]", "[0,8]") ",\"b\":" T("F32", "[1]", "[0,4]") "}", 8, LLM_EFORMAT,
     "tensors 'b' [0, 4) and 'a' [0, 8) overlap"},
    {"{\"a\":" T("U8", "[1]", "[1,2]") ",\"b\":" T("U8", "[0]", "[0,0]") ",\"c\":" T("F16", "[4]",
                                                                                     "[0,8]") "}",
     8, LLM_EFORMAT, "tensors 'c' [0, 8) and 'a' [1, 2) overlap"},
    {"{\"__metadata__\":[\"a\"]}", 0, LLM_EFORMAT, "'x': __metadata__ is not an object of strings"},
    {"{\"__metadata__\":{\"k\":1}}", 0, LLM_EFORMAT,
     "'x': __metadata__ value of 'k' is not a string"},
    {"{\"a\\nb\":" T("F9", "[1]", "[0,4]") "}", 4, LLM_EUNSUPPORTED, "tensor 'a?b' has unknown"},
};

static void test_errors(void)
{
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        size_t len;
        unsigned char *b = mkfile(bads[i].hdr, bads[i].ndata, &len);
        struct llm_st *st = (struct llm_st *)1;
        llm_err_clear();
        int rc = llm_st_open_mem(&st, b, len, "x");
        CHECK(rc == bads[i].code && strstr(llm_errmsg(), bads[i].sub) && st == NULL,
              "header %s: got %d (%s) '%s', expected %d with '%s'", bads[i].hdr, rc,
              llm_strerror(rc), llm_errmsg(), bads[i].code, bads[i].sub);
        CHECK(strchr(llm_errmsg(), '\n') == NULL, "multi-line message '%s'", llm_errmsg());
        free(b);
    }

    /* the first eight bytes */
    struct llm_st *st = NULL;
    unsigned char raw[64] = {0};
    CHECK_ERR(llm_st_open_mem(&st, raw, 0, "x"), LLM_ETRUNC, "'x': empty file");
    CHECK_ERR(llm_st_open_mem(&st, raw, 7, "x"), LLM_ETRUNC,
              "'x': file is 7 bytes, too short for the 8-byte header length");
    raw[0] = 100; /* header of 100 bytes in a 64-byte file */
    CHECK_ERR(llm_st_open_mem(&st, raw, 64, "x"), LLM_ETRUNC,
              "'x': header length 100 runs past the end of the file (64 bytes)");
    memset(raw, 0, 8);
    raw[3] = 0x10; /* 268435456 */
    CHECK_ERR(llm_st_open_mem(&st, raw, 64, "x"), LLM_EFORMAT,
              "'x': header length 268435456 exceeds the limit of 100000000 bytes");
    memset(raw, 0xff, 8); /* 2^64 - 1: no overflow in the bounds checks */
    CHECK_ERR(llm_st_open_mem(&st, raw, 64, "x"), LLM_EFORMAT, "exceeds the limit");
    memset(raw, 0, 8);
    raw[0] = 1;
    raw[8] = '{';
    CHECK_ERR(llm_st_open_mem(&st, raw, 9, "x"), LLM_EFORMAT, "header does not start with a JSON");
    raw[0] = 0;
    CHECK_ERR(llm_st_open_mem(&st, raw, 8, "x"), LLM_EFORMAT, "header does not start with a JSON");
    CHECK_ERR(llm_st_open_mem(&st, NULL, 5, "x"), LLM_EINVAL, "no buffer");
}

/* ---- sharded-checkpoint errors ------------------------------------------------------- */

static void test_index_errors(const char *base)
{
    struct llm_tensor ts[8];
    make_set(ts);
    char *d = join(base, "idx");
    mkdir(d, 0755);
    char *s1 = join(d, "a.safetensors"), *s2 = join(d, "b.safetensors");
    char *ix = join(d, "model.safetensors.index.json");
    CHECK_OK(llm_st_write(s1, ts, 2, NULL));
    CHECK_OK(llm_st_write(s2, ts + 2, 2, NULL));
    struct {
        const char *index;
        int code;
        const char *sub;
    } cases[] = {
        {"{\"weight_map\": {\"w.f32\": \"a.safetensors\", \"b.bf16\": \"a.safetensors\", "
         "\"s.i8\": \"b.safetensors\", \"e.f16\": \"b.safetensors\"}}",
         0, ""},
        {"{\"weight_map\": {\"w.f32\": \"a.safetensors\", \"z\": \"c.safetensors\"}}",
         LLM_ENOTFOUND, "c.safetensors' named by the index not found"},
        {"{\"weight_map\": {\"w.f32\": \"a.safetensors\", \"zz\": \"b.safetensors\"}}",
         LLM_ENOTFOUND, "b.safetensors': tensor 'zz' named by"},
        {"{\"weight_map\": {\"w.f32\": \"b.safetensors\", \"s.i8\": \"a.safetensors\"}}",
         LLM_EFORMAT, "tensor 'w.f32' is in '"},
        {"{\"weight_map\": {\"w.f32\": \"b.safetensors\"}}", LLM_ENOTFOUND,
         "b.safetensors': tensor 'w.f32' named by"},
        {"{\"weight_map\": {\"w.f32\": \"a.safetensors\"}", LLM_EFORMAT, "index is not valid JSON"},
        {"{\"weight_map\": {\"w.f32\": \"a.safetensors\", \"w.f32\": \"a.safetensors\"}}",
         LLM_EFORMAT, "index has the key \"w.f32\" twice"},
        {"{\"weightmap\": {}}", LLM_EFORMAT, "index has no weight_map object"},
        {"[]", LLM_EFORMAT, "index has no weight_map object"},
        {"{\"weight_map\": {}}", LLM_EFORMAT, "weight_map is empty"},
        {"{\"weight_map\": {\"w.f32\": 3}}", LLM_EFORMAT, "weight_map entry 'w.f32' is not a file"},
        {"{\"weight_map\": {\"w.f32\": \"/etc/passwd\"}}", LLM_EFORMAT, "is not a file in the"},
        {"{\"weight_map\": {\"w.f32\": \"../a.safetensors\"}}", LLM_EFORMAT, "is not a file in"},
        {"{\"weight_map\": {\"w.f32\": \"\"}}", LLM_EFORMAT, "is not a file in the index's"},
        {"{\"weight_map\": {\"w.f32\": \"x/\"}}", LLM_EFORMAT, "is not a file in the index's"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        t_spit(ix, cases[i].index, strlen(cases[i].index));
        struct llm_st *st = NULL;
        llm_err_clear();
        int rc = llm_st_open(&st, d);
        CHECK(rc == cases[i].code && strstr(llm_errmsg(), cases[i].sub),
              "index %s: got %d (%s) '%s', expected %d with '%s'", cases[i].index, rc,
              llm_strerror(rc), llm_errmsg(), cases[i].code, cases[i].sub);
        if (!rc) {
            CHECK(llm_st_count(st) == 4 && llm_st_nfiles(st) == 2, "good index: %zu tensors",
                  llm_st_count(st));
            llm_st_close(st);
        }
    }
    /* the same tensor in both shards */
    CHECK_OK(llm_st_write(s2, ts + 1, 2, NULL));
    const char *dup =
        "{\"weight_map\": {\"w.f32\": \"a.safetensors\", \"s.i8\": \"b.safetensors\"}}";
    t_spit(ix, dup, strlen(dup));
    struct llm_st *st = NULL;
    CHECK_ERR(llm_st_open(&st, ix), LLM_EFORMAT, "a.safetensors': tensor 'b.bf16' is also in '");
    remove(s1);
    remove(s2);
    remove(ix);
    rmdir(d);
    free(s1);
    free(s2);
    free(ix);
    free(d);
}

/* ---- writer errors ------------------------------------------------------------------ */

static int count_entries(const char *dir)
{
    DIR *dd = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (dd && (e = readdir(dd)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (dd) closedir(dd);
    return n;
}

static void test_writer_errors(const char *base)
{
    char *d = join(base, "w");
    mkdir(d, 0755);
    char *p = join(d, "out.safetensors");
    struct llm_tensor ts[8];
    make_set(ts);

    struct llm_tensor t2[2] = {ts[0], ts[0]};
    CHECK_ERR(llm_st_write(p, t2, 2, NULL), LLM_EINVAL, "tensor 'w.f32' given twice");
    t2[1] = ts[1];
    t2[1].nbytes = 9;
    CHECK_ERR(llm_st_write(p, t2, 2, NULL), LLM_EINVAL,
              "shape [5] of bf16 needs 10 bytes, given 9");
    t2[1] = ts[1];
    t2[1].dtype = LLM_DTYPE_I4;
    CHECK_ERR(llm_st_write(p, t2, 2, NULL), LLM_EUNSUPPORTED, "has no safetensors name");
    t2[1] = ts[1];
    t2[1].name = "__metadata__";
    CHECK_ERR(llm_st_write(p, t2, 2, NULL), LLM_EINVAL, "not a tensor name");
    t2[1] = ts[1];
    t2[1].data = NULL;
    CHECK_ERR(llm_st_write(p, t2, 2, NULL), LLM_EINVAL, "has no data");
    t2[1] = ts[1];
    t2[1].ndim = 9;
    CHECK_ERR(llm_st_write(p, t2, 2, NULL), LLM_EINVAL, "9 dimensions");
    CHECK_ERR(llm_st_write(p, ts, 2, "{\"a\": 1}"), LLM_EINVAL, "metadata must be an object of");
    CHECK_ERR(llm_st_write(p, ts, 2, "[\"a\"]"), LLM_EINVAL, "metadata must be an object of");
    CHECK_ERR(llm_st_write(p, ts, 2, "{"), LLM_EINVAL, "metadata is not valid JSON");
    CHECK(count_entries(d) == 0, "a failed write left %d files behind", count_entries(d));
    char *nodir = join(d, "no/such/folder.safetensors");
    CHECK_ERR(llm_st_write(nodir, ts, 2, NULL), LLM_EIO, "unable to create");
    free(nodir);
    rmdir(d);
    free(p);
    free(d);
}

int main(void)
{
    char *dir = t_mkdtemp();
    test_single(dir);
    test_folder_lookup(dir);
    test_sharded(dir);
    test_handmade();
    test_errors();
    test_index_errors(dir);
    test_writer_errors(dir);
    t_rmtree(dir);
    return t_report("test-safetensors");
}
