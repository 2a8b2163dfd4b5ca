/* hfjson.c - JSON documents of Hugging Face checkpoints, read the way
 * Python's json module reads them.
 *
 * Published config.json, generation_config.json and tokenizer_config.json
 * were written by Python, which has unbounded integers and writes NaN and
 * Infinity as bare words; jansson (like the JSON standard) has neither.
 * Rather than refuse what every published checkpoint contains (tokenizer
 * configs say "model_max_length": 1000000000000000019884624838656), a
 * pre-pass rewrites, outside strings only: an integer literal that does not
 * fit 64 bits into the same digits with ".0" (jansson reads it as the
 * nearest double, as Python's float() would), NaN into null, and
 * +-Infinity into the largest finite double of that sign.  Duplicate keys
 * keep the last value, as in Python.  Nothing is copied when nothing needs
 * rewriting.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "llm/hf.h"
#include "llm/io.h"
#include "../core/text_internal.h"

#define HF_JSON_MAX_BYTES (64u << 20)

/* A number literal at p (JSON grammar, loosely): its length, and whether it
 * is an integer (no fraction, no exponent). */
static size_t number_len(const char *p, const char *end, int *integer)
{
    const char *q = p;
    *integer = 1;
    if (q < end && *q == '-') q++;
    while (q < end && *q >= '0' && *q <= '9') q++;
    if (q < end && *q == '.') {
        *integer = 0;
        q++;
        while (q < end && *q >= '0' && *q <= '9') q++;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        *integer = 0;
        q++;
        if (q < end && (*q == '+' || *q == '-')) q++;
        while (q < end && *q >= '0' && *q <= '9') q++;
    }
    return (size_t)(q - p);
}

/* Whether the integer literal [p, p+n) fits a signed 64-bit integer. */
static int fits_i64(const char *p, size_t n)
{
    int neg = *p == '-';
    const char *d = p + neg;
    size_t nd = n - (size_t)neg;
    while (nd > 1 && *d == '0') d++, nd--;
    if (nd < 19) return 1;
    if (nd > 19) return 0;
    const char *lim = neg ? "9223372036854775808" : "9223372036854775807";
    return memcmp(d, lim, 19) <= 0;
}

struct out {
    char *buf;
    size_t len, cap;
    int failed;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->failed) return;
    if (o->len + n + 1 > o->cap) {
        size_t nc = (o->len + n + 1) * 2;
        char *nb = realloc(o->buf, nc);
        if (!nb) {
            o->failed = 1;
            return;
        }
        o->buf = nb;
        o->cap = nc;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static int word_at(const char *p, const char *end, const char *w)
{
    size_t n = strlen(w);
    return (size_t)(end - p) >= n && !memcmp(p, w, n);
}

/* Rewrite buf if needed; *out is NULL when it needs nothing. */
static int prepass(const char *buf, size_t len, char **out, size_t *out_len)
{
    struct out o = {0};
    const char *p = buf, *end = buf + len, *flushed = buf;
    int in_str = 0, changed = 0;
    while (p < end) {
        char c = *p;
        if (in_str) {
            if (c == '\\' && p + 1 < end) p += 2;
            else {
                if (c == '"') in_str = 0;
                p++;
            }
            continue;
        }
        if (c == '"') {
            in_str = 1;
            p++;
            continue;
        }
        const char *rep = NULL;
        size_t skip = 0;
        if (c == '-' || (c >= '0' && c <= '9')) {
            int integer;
            size_t n = number_len(p, end, &integer);
            if (c == '-' && word_at(p, end, "-Infinity")) {
                /* replaced below; p stays at the sign */
                rep = "-1.7976931348623157e308";
                skip = 9;
            } else {
                if (n > 0 && integer && !fits_i64(p, n)) {
                    put(&o, flushed, (size_t)(p + n - flushed));
                    put(&o, ".0", 2);
                    flushed = p + n;
                    changed = 1;
                }
                p += n ? n : 1;
            }
        } else if (word_at(p, end, "NaN")) {
            rep = "null";
            skip = 3;
        } else if (word_at(p, end, "Infinity")) {
            rep = "1.7976931348623157e308";
            skip = 8;
        } else {
            p++;
        }
        if (rep) {
            put(&o, flushed, (size_t)(p - flushed));
            put(&o, rep, strlen(rep));
            p += skip;
            flushed = p;
            changed = 1;
        }
    }
    if (!changed) {
        free(o.buf);
        *out = NULL;
        return 0;
    }
    put(&o, flushed, (size_t)(end - flushed));
    if (o.failed) {
        free(o.buf);
        return llm_err_set(LLM_ENOMEM, "out of memory");
    }
    *out = o.buf;
    *out_len = o.len;
    return 0;
}

int llm_hf_json_parse(const char *buf, size_t len, const char *src, json_t **out)
{
    *out = NULL;
    if (!src) src = "JSON document";
    char *fixed = NULL;
    size_t flen = 0;
    int rc = prepass(buf, len, &fixed, &flen);
    if (rc) return rc;
    json_error_t je;
    json_t *j = json_loadb(fixed ? fixed : buf, fixed ? flen : len, JSON_ALLOW_NUL, &je);
    free(fixed);
    if (!j) {
        char b[200];
        return llm_err_set(LLM_EFORMAT, "'%s': not valid JSON: %s (line %d, column %d)", src,
                           llm_quote(je.text, b, sizeof(b)), je.line, je.column);
    }
    *out = j;
    return 0;
}

int llm_hf_json_load(const char *path, json_t **out)
{
    char *buf;
    size_t len;
    *out = NULL;
    int rc = llm_read_file(path, &buf, &len, HF_JSON_MAX_BYTES);
    if (rc) return rc;
    rc = llm_hf_json_parse(buf, len, path, out);
    free(buf);
    return rc;
}
