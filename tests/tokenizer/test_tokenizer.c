/* test_tokenizer.c - libllm's tokenizer against Hugging Face `tokenizers`.
 *
 * Usage: test_tokenizer CASES_DIR DATA_DIR NAME...
 * For each NAME, loads DATA_DIR/NAME/tokenizer.json (or, where only that
 * exists, DATA_DIR/NAME/tokenizer.json.zst, decompressed in memory: the real
 * vocabularies in real/ are stored compressed) and replays
 * CASES_DIR/NAME.jsonl (written by gen_cases.py): encode with and without
 * special tokens must give exactly HF's ids, the three decodes HF's text,
 * and the streaming detokenizer (ids pushed one at a time, with and without
 * skip_special) the same text as the full decode, never emitting a piece
 * that ends inside a UTF-8 character.  When DATA_DIR/NAME/cases.jsonl
 * exists (the real vocabularies in real/) its ids are checked too, and
 * decode(ids) against the HF decode recorded for the same text.
 * All test data is in the repository: a missing DATA_DIR or tokenizer
 * fails the test.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#include "llm/err.h"
#include "llm/tokenizer.h"

static int failures_shown;

static int complete_utf8(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        size_t k = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
        if (!k || i + k > n) return 0;
        for (size_t j = 1; j < k; j++)
            if ((u[i + j] & 0xC0) != 0x80) return 0;
        i += k;
    }
    return 1;
}

static void show_ids(const char *what, const int32_t *v, size_t n)
{
    fprintf(stderr, "    %s (%zu):", what, n);
    for (size_t i = 0; i < n && i < 40; i++)
        fprintf(stderr, " %d", v[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

static int ids_equal(const json_t *want, const int32_t *got, size_t n)
{
    if (json_array_size(want) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (json_integer_value(json_array_get(want, i)) != got[i]) return 0;
    return 1;
}

static int32_t *ids_of(const json_t *a, size_t *n)
{
    *n = json_array_size(a);
    int32_t *v = malloc((*n + 1) * sizeof(*v));
    for (size_t i = 0; v && i < *n; i++)
        v[i] = (int32_t)json_integer_value(json_array_get(a, i));
    return v;
}

static int fail(const char *name, size_t line, const char *what, const char *text)
{
    if (failures_shown++ < 12)
        fprintf(stderr, "FAIL %s case %zu: %s (text %.80s%s)\n", name, line, what,
                text ? text : "(hex)", text && strlen(text) > 80 ? "..." : "");
    return 1;
}

static int check_encode(const struct llm_tokenizer *t, const char *name, size_t line,
                        const char *in, size_t inlen, int special, const json_t *want)
{
    int32_t *ids;
    size_t n;
    int rc = llm_tok_encode(t, in, inlen, special, &ids, &n);
    if (rc) {
        fprintf(stderr, "FAIL %s case %zu: encode: %s\n", name, line, llm_errmsg());
        return 1;
    }
    int bad = !ids_equal(want, ids, n);
    if (bad) {
        fail(name, line, special ? "encode(add_special) ids differ" : "encode ids differ", in);
        if (failures_shown <= 12) {
            size_t wn;
            int32_t *w = ids_of(want, &wn);
            show_ids("want", w, wn);
            show_ids("got ", ids, n);
            free(w);
        }
    }
    free(ids);
    return bad;
}

static int check_decode(const struct llm_tokenizer *t, const char *name, size_t line,
                        const json_t *idsj, int skip, const json_t *want, const char *text)
{
    size_t n;
    int32_t *ids = ids_of(idsj, &n);
    char *s;
    size_t len;
    int bad = 0;
    if (llm_tok_decode(t, ids, n, skip, &s, &len)) {
        fprintf(stderr, "FAIL %s case %zu: decode: %s\n", name, line, llm_errmsg());
        free(ids);
        return 1;
    }
    if (len != json_string_length(want) || memcmp(s, json_string_value(want), len) != 0) {
        bad = fail(name, line, skip ? "decode(skip_special) differs" : "decode differs", text);
        if (failures_shown <= 12)
            fprintf(stderr, "    want: %s\n    got : %s\n", json_string_value(want), s);
    }
    free(s);
    /* streaming: same text, every piece complete UTF-8 */
    struct llm_tok_stream *st;
    if (llm_tok_stream_new(&st, t, skip)) {
        free(ids);
        return 1;
    }
    char *acc = malloc(1);
    size_t alen = 0;
    for (size_t i = 0; i <= n; i++) {
        char *piece;
        size_t pl;
        int rc = i < n ? llm_tok_stream_push(st, ids[i], &piece, &pl)
                       : llm_tok_stream_flush(st, &piece, &pl);
        if (rc) {
            fprintf(stderr, "FAIL %s case %zu: stream: %s\n", name, line, llm_errmsg());
            bad = 1;
            break;
        }
        if (!complete_utf8(piece, pl)) {
            bad = fail(name, line, "stream piece ends inside a UTF-8 character", text);
        }
        acc = realloc(acc, alen + pl + 1);
        memcpy(acc + alen, piece, pl);
        alen += pl;
        free(piece);
        /* what was emitted is final: a prefix of the decode of the ids so far
         * (checked for the first 256 pushes, to keep the test quadratic only
         * in a bounded way) */
        char *pre;
        size_t prel;
        if (i < n && i < 256 && llm_tok_decode(t, ids, i + 1, skip, &pre, &prel) == 0) {
            if (alen > prel || memcmp(acc, pre, alen) != 0)
                bad = fail(name, line,
                           "stream emitted text that the full decode of the same "
                           "ids does not start with",
                           text);
            free(pre);
        }
    }
    if (alen != json_string_length(want) || memcmp(acc, json_string_value(want), alen) != 0) {
        acc[alen] = 0;
        bad = fail(name, line, "streamed text differs from the full decode", text);
        if (failures_shown <= 12)
            fprintf(stderr, "    want: %s\n    got : %s\n", json_string_value(want), acc);
    }
    free(acc);
    llm_tok_stream_free(st);
    free(ids);
    return bad;
}

static unsigned char *unhex(const char *h, size_t *n)
{
    size_t l = strlen(h) / 2;
    unsigned char *b = malloc(l + 1);
    for (size_t i = 0; i < l; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        b[i] = (unsigned char)v;
    }
    *n = l;
    return b;
}

static json_t *load_lines(const char *path, size_t *count)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return NULL;
    json_t *arr = json_array();
    char *line = NULL;
    size_t cap = 0;
    ssize_t r;
    *count = 0;
    while ((r = getline(&line, &cap, fp)) > 0) {
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)r, JSON_ALLOW_NUL, &je);
        if (!j) {
            fprintf(stderr, "'%s': bad JSON line %zu: %s\n", path, *count + 1, je.text);
            exit(1);
        }
        json_array_append_new(arr, j);
        (*count)++;
    }
    free(line);
    fclose(fp);
    return arr;
}

/* DIR/tokenizer.json.zst: read, decompress, parse.  NULL (after a message)
 * on any failure. */
static json_t *load_zst_json(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "'%s': unable to open\n", path);
        return NULL;
    }
    size_t cap = 1 << 20, n = 0, r;
    char *z = malloc(cap);
    while (z && (r = fread(z + n, 1, cap - n, fp)) > 0) {
        n += r;
        if (n == cap) {
            char *nz = realloc(z, cap * 2);
            if (!nz) {
                free(z);
                z = NULL;
                break;
            }
            z = nz;
            cap *= 2;
        }
    }
    fclose(fp);
    if (!z) return NULL;
    unsigned long long size = ZSTD_getFrameContentSize(z, n);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > (1u << 30)) {
        fprintf(stderr, "'%s': not a zstd frame with its size recorded\n", path);
        free(z);
        return NULL;
    }
    char *text = malloc(size ? size : 1);
    size_t got = text ? ZSTD_decompress(text, size, z, n) : 0;
    free(z);
    if (!text || ZSTD_isError(got) || got != size) {
        fprintf(stderr, "'%s': zstd: %s\n", path,
                text && ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short output");
        free(text);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(text, size, 0, &je);
    if (!j) fprintf(stderr, "'%s': decompressed JSON: %s (line %d)\n", path, je.text, je.line);
    free(text);
    return j;
}

static int load_tokenizer(struct llm_tokenizer **t, const char *dir)
{
    char path[4200];
    struct stat st;
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    if (stat(path, &st) == 0) return llm_tok_load_dir(t, dir);
    snprintf(path, sizeof(path), "%s/tokenizer.json.zst", dir);
    if (stat(path, &st) != 0) return llm_tok_load_dir(t, dir); /* names the missing file */
    json_t *j = load_zst_json(path);
    if (!j) return llm_err_set(LLM_EFORMAT, "'%s': unreadable", path);
    int rc = llm_tok_load(t, j, NULL, path);
    json_decref(j);
    return rc;
}

static int run_one(const char *cases_dir, const char *data_dir, const char *name)
{
    char path[4096];
    struct llm_tokenizer *t;
    snprintf(path, sizeof(path), "%s/%s", data_dir, name);
    if (load_tokenizer(&t, path)) {
        fprintf(stderr, "FAIL %s: load: %s\n", name, llm_errmsg());
        return 1;
    }
    snprintf(path, sizeof(path), "%s/%s.jsonl", cases_dir, name);
    size_t nc;
    json_t *cases = load_lines(path, &nc);
    if (!cases || nc == 0) {
        fprintf(stderr, "FAIL %s: no cases in '%s'\n", name, path);
        llm_tok_free(t);
        return 1;
    }
    size_t pass = 0;
    for (size_t i = 0; i < nc; i++) {
        json_t *c = json_array_get(cases, i);
        const char *text = json_string_value(json_object_get(c, "text"));
        if (json_is_true(json_object_get(c, "ids_only"))) {
            int bad = check_decode(t, name, i + 1, json_object_get(c, "ids"), 0,
                                   json_object_get(c, "decoded"), "(random ids)");
            bad |= check_decode(t, name, i + 1, json_object_get(c, "ids"), 1,
                                json_object_get(c, "decoded_skip"), "(random ids)");
            pass += !bad;
            continue;
        }
        const char *hex = json_string_value(json_object_get(c, "hex"));
        size_t inlen;
        unsigned char *raw = NULL;
        const char *in = text;
        if (hex) {
            raw = unhex(hex, &inlen);
            in = (const char *)raw;
        } else {
            inlen = json_string_length(json_object_get(c, "text"));
        }
        int bad = 0;
        bad |= check_encode(t, name, i + 1, in, inlen, 0, json_object_get(c, "ids"));
        bad |= check_encode(t, name, i + 1, in, inlen, 1, json_object_get(c, "ids_special"));
        bad |= check_decode(t, name, i + 1, json_object_get(c, "ids"), 0,
                            json_object_get(c, "decoded"), text);
        bad |= check_decode(t, name, i + 1, json_object_get(c, "ids_special"), 0,
                            json_object_get(c, "decoded_special"), text);
        bad |= check_decode(t, name, i + 1, json_object_get(c, "ids_special"), 1,
                            json_object_get(c, "decoded_skip"), text);
        free(raw);
        pass += !bad;
    }
    printf("%-18s %3zu/%zu cases pass (text: encode x2, decode+stream x3; random ids: "
           "decode+stream x2)\n",
           name, pass, nc);
    int rc = pass != nc;

    /* the real vocabulary's own cases: ids, and decode against HF's text */
    snprintf(path, sizeof(path), "%s/%s/cases.jsonl", data_dir, name);
    size_t ns;
    json_t *shared = load_lines(path, &ns);
    if (shared) {
        size_t spass = 0;
        for (size_t i = 0; i < ns; i++) {
            json_t *c = json_array_get(shared, i), *want = NULL;
            json_t *tx = json_object_get(c, "text");
            int bad = check_encode(t, name, i + 1, json_string_value(tx), json_string_length(tx), 0,
                                   json_object_get(c, "ids"));
            for (size_t k = 0; k < nc && !want; k++) {
                json_t *o = json_array_get(cases, k);
                if (json_equal(json_object_get(o, "text"), tx)) want = o;
            }
            if (!want) {
                bad = fail(name, i + 1, "cases.jsonl case missing from the generated cases",
                           json_string_value(tx));
            } else {
                bad |= check_decode(t, name, i + 1, json_object_get(c, "ids"), 0,
                                    json_object_get(want, "decoded"), json_string_value(tx));
            }
            spass += !bad;
        }
        printf("%-18s %3zu/%zu cases.jsonl cases pass (ids, decode)\n", name, spass, ns);
        rc |= spass != ns;
        json_decref(shared);
    }
    json_decref(cases);
    llm_tok_free(t);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: test_tokenizer CASES_DIR DATA_DIR NAME...\n");
        return 2;
    }
    struct stat st;
    if (stat(argv[2], &st) != 0) {
        fprintf(stderr, "FAIL: no test data at '%s'\n", argv[2]);
        return 1;
    }
    int rc = 0;
    for (int i = 3; i < argc; i++)
        rc |= run_one(argv[1], argv[2], argv[i]);
    printf(rc ? "FAILED\n" : "all tokenizers pass\n");
    return rc;
}
