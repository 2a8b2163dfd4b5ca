/* fuzz_tokenizer.c - fuzz target for the tokenizer.
 *
 * The first input byte picks what to do with the rest:
 *   b % 8 == 7  parse the rest as a tokenizer.json and load it (broken
 *               structures must fail with an error, never crash), and when
 *               it loads, encode and decode a fixed text with it;
 *   otherwise   encode the rest (any bytes: invalid UTF-8 is replaced by
 *               U+FFFD first, the documented behaviour) with one of the
 *               committed small tokenizers (b % 7 picks which), with and
 *               without special tokens, decode the ids, and stream them:
 *               streamed text must equal the full decode and be valid UTF-8.
 * The tokenizers come from $LLM_SRCDIR/tests/tokenizer/data (the test
 * environment sets LLM_SRCDIR; "." otherwise).  Invariant violations abort.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "llm/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[7] = {"tiny-l3",     "tiny-qwen2",   "tiny-spm",    "tiny-spm-never",
                                     "tiny-splits", "tiny-classic", "tiny-subword"};
static struct llm_tokenizer *toks[7];

static int valid_utf8(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        size_t k = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
        if (!k || i + k > n) return 0;
        for (size_t j = 1; j < k; j++)
            if ((u[i + j] & 0xC0) != 0x80) return 0;
        i += k;
    }
    return 1;
}

static struct llm_tokenizer *get_tok(unsigned k)
{
    if (!toks[k]) {
        const char *root = getenv("LLM_SRCDIR");
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s/tests/tokenizer/data/%s", root ? root : ".", names[k]);
        if (llm_tok_load_dir(&toks[k], dir)) {
            fprintf(stderr, "fuzz_tokenizer: %s\n", llm_errmsg());
            abort();
        }
    }
    return toks[k];
}

static void roundtrip(const struct llm_tokenizer *t, const char *text, size_t n)
{
    for (int special = 0; special < 2; special++) {
        int32_t *ids;
        size_t nids;
        if (llm_tok_encode(t, text, n, special, &ids, &nids)) abort();
        int64_t vs = llm_tok_vocab_size(t);
        for (size_t i = 0; i < nids; i++)
            if (ids[i] < 0 || ids[i] >= vs) abort();
        char *dec;
        size_t dl;
        if (llm_tok_decode(t, ids, nids, special, &dec, &dl)) abort();
        if (!valid_utf8(dec, dl)) abort();
        struct llm_tok_stream *s;
        if (llm_tok_stream_new(&s, t, special)) abort();
        size_t at = 0;
        for (size_t i = 0; i <= nids; i++) {
            char *p;
            size_t pl;
            int rc = i < nids ? llm_tok_stream_push(s, ids[i], &p, &pl)
                              : llm_tok_stream_flush(s, &p, &pl);
            if (rc || !valid_utf8(p, pl) || at + pl > dl || memcmp(dec + at, p, pl) != 0) abort();
            at += pl;
            free(p);
        }
        if (at != dl) abort();
        llm_tok_stream_free(s);
        free(dec);
        free(ids);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    unsigned mode = data[0];
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    if (mode % 8 == 7) {
        json_error_t je;
        json_t *j = json_loadb(rest, n, JSON_ALLOW_NUL, &je);
        if (!j) return 0;
        struct llm_tokenizer *t;
        int rc = llm_tok_load(&t, j, NULL, "fuzz.json");
        if (rc == 0) {
            roundtrip(t, "Hello wörld  12 <s>\n\xF0\x9F\x98\x80", 26);
            llm_tok_free(t);
        } else if (llm_errmsg()[0] == 0) {
            abort(); /* failures always say why */
        }
        json_decref(j);
        return 0;
    }
    roundtrip(get_tok(mode % 7), rest, n);
    return 0;
}
