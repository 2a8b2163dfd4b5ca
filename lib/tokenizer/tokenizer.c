/* tokenizer.c - Hugging Face tokenizer.json: loading, the encode pipeline,
 * added tokens, the post-processor and tokenizer_config.json.
 *
 * Design: the pipeline is the one of `tokenizers` (TokenizerImpl::encode),
 * step for step, so that ids agree exactly:
 *
 *   1. invalid UTF-8 input is first made valid (each maximal invalid
 *      subpart becomes U+FFFD, as bytes.decode("utf-8", "replace"));
 *   2. added tokens that are not `normalized` are split out of the raw text
 *      (leftmost-longest literal matching, then the single_word, lstrip and
 *      rstrip rules);
 *   3. each remaining piece is normalized on its own, and the `normalized`
 *      added tokens (matched in their normalized form) are split out;
 *   4. the pre-tokenizer cuts pieces into words (tok_text.c);
 *   5. the BPE model turns each word into ids (tok_bpe.c);
 *   6. with add_special, the post-processor's template adds its ids around
 *      the sequence (TemplateProcessing, Roberta/Bert processing, Sequence;
 *      ByteLevel adds nothing), or tokenizer_config.json's
 *      add_bos_token / add_eos_token when given.
 *
 * The loaded tokenizer is immutable except for the word cache, which has
 * its own lock, so encode and decode may run concurrently.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "llm/err.h"
#include "llm/tokenizer.h"
#include "tok_internal.h"

#define TOK_MAX_ID (1 << 24)

/* ---- helpers --------------------------------------------------------- */

static int utf8_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        int k = tok_utf8_check((const unsigned char *)s + i, n - i);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

static char *memdup0(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        if (n) memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

/* Rust regex \w for one code point: Alphabetic, marks, Nd, Pc, joiners */
static int is_word_cp(uint32_t cp)
{
    if (cp == 0x200C || cp == 0x200D || cp == '_') return 1;
    if (cp >= 0x24B6 && cp <= 0x24E9) return 1; /* circled letters: So but Alphabetic */
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}

static uint32_t last_cp(const char *s, size_t n)
{
    size_t k = n - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    uint32_t cp;
    tok_utf8_dec(s + k, n - k, &cp);
    return cp;
}

/* ---- added tokens ---------------------------------------------------- */

struct mrec {
    const char *s;
    size_t n, idx;
};

/* by first byte, then longest first, then declaration order */
static int mrec_cmp(const void *a, const void *b)
{
    const struct mrec *x = a, *y = b;
    if ((unsigned char)x->s[0] != (unsigned char)y->s[0])
        return (unsigned char)x->s[0] < (unsigned char)y->s[0] ? -1 : 1;
    if (x->n != y->n) return x->n > y->n ? -1 : 1;
    return x->idx < y->idx ? -1 : 1;
}

static int matcher_build(struct llm_tokenizer *t, struct tok_matcher *m, int normalized)
{
    size_t cnt = 0;
    m->normalized = normalized;
    m->idx = malloc((t->nadded + 1) * sizeof(*m->idx));
    struct mrec *r = malloc((t->nadded + 1) * sizeof(*r));
    if (!m->idx || !r) {
        free(r);
        return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
    }
    for (size_t i = 0; i < t->nadded; i++) {
        const struct tok_added *a = &t->added[i];
        if (a->normalized != normalized) continue;
        const char *s = normalized ? a->norm : a->content;
        size_t n = normalized ? a->norm_len : a->len;
        if (n) r[cnt++] = (struct mrec){s, n, i};
    }
    qsort(r, cnt, sizeof(*r), mrec_cmp);
    for (int c = 0; c <= 256; c++)
        m->first[c] = cnt;
    for (size_t i = cnt; i-- > 0;) {
        m->idx[i] = r[i].idx;
        m->first[(unsigned char)r[i].s[0]] = i;
    }
    for (int c = 255; c >= 0; c--)
        if (m->first[c] > m->first[c + 1]) m->first[c] = m->first[c + 1];
    free(r);
    return 0;
}

/* longest added token at s[i..n), or NULL */
static const struct tok_added *match_at(const struct llm_tokenizer *t, const struct tok_matcher *m,
                                        const char *s, size_t n, size_t i)
{
    unsigned c = (unsigned char)s[i];
    for (size_t k = m->first[c]; k < m->first[c + 1]; k++) {
        const struct tok_added *a = &t->added[m->idx[k]];
        const char *p = m->normalized ? a->norm : a->content;
        size_t l = m->normalized ? a->norm_len : a->len;
        if ((unsigned char)p[0] != c) break;
        if (l <= n - i && memcmp(s + i, p, l) == 0) return a;
    }
    return NULL;
}

/* Split s into added tokens and text, exactly as AddedVocabulary::find_matches. */
static int split_added(const struct llm_tokenizer *t, const struct tok_matcher *m, const char *s,
                       size_t n, int first, struct tok_pieces *out)
{
    size_t start_offset = 0, i = 0;
    int rc;
    if (m->first[0] == m->first[256]) { /* no tokens to match */
        return n ? tok_pieces_add(out, s, n, -1, first) : 0;
    }
    while (i < n) {
        const struct tok_added *a = match_at(t, m, s, n, i);
        if (!a) {
            i++;
            continue;
        }
        size_t start = i, stop = i + (m->normalized ? a->norm_len : a->len);
        i = stop;
        if (a->single_word) {
            int start_space = start == 0 || !is_word_cp(last_cp(s, start));
            uint32_t cp = 0;
            if (stop < n) tok_utf8_dec(s + stop, n - stop, &cp);
            int stop_space = stop == n || !is_word_cp(cp);
            if (!start_space || !stop_space) continue;
        }
        if (a->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t k = ns - 1;
                while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
                    k--;
                uint32_t cp;
                tok_utf8_dec(s + k, ns - k, &cp);
                if (!tok_is_whitespace(cp)) break;
                ns = k;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) {
            while (stop < n) {
                uint32_t cp;
                int k = tok_utf8_dec(s + stop, n - stop, &cp);
                if (!tok_is_whitespace(cp)) break;
                stop += (size_t)k;
            }
        }
        if (start_offset < start &&
            (rc = tok_pieces_add(out, s + start_offset, start - start_offset, -1,
                                 first && start_offset == 0)))
            return rc;
        if ((rc = tok_pieces_add(out, "", 0, a->id, 0))) return rc;
        start_offset = stop;
        if (i < stop) i = stop;
    }
    if (start_offset < n && (rc = tok_pieces_add(out, s + start_offset, n - start_offset, -1,
                                                 first && start_offset == 0)))
        return rc;
    return 0;
}

/* ---- encode ---------------------------------------------------------- */

static int push_id(int32_t **v, size_t *n, size_t *cap, int32_t id)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        int32_t *nv = realloc(*v, nc * sizeof(*nv));
        if (!nv) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory (ids)");
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = id;
    return 0;
}

int llm_tok_encode(const struct llm_tokenizer *t, const char *text, size_t len, int add_special,
                   int32_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    if (!t || (!text && len)) return llm_err_set(LLM_EINVAL, "tokenizer: encode of NULL");
    struct tok_buf clean = {0}, norm = {0};
    struct tok_pieces p1 = {0}, p2 = {0};
    int32_t *out = NULL;
    size_t nout = 0, cap = 0;
    int rc = 0;
    if (!utf8_ok(text, len)) {
        if ((rc = tok_utf8_lossy(&clean, text, len))) goto done;
        text = clean.p;
        len = clean.n;
    }
    if ((rc = split_added(t, &t->m_raw, text, len, 1, &p1))) goto done;
    for (size_t i = 0; i < p1.n && !rc; i++) {
        const struct tok_piece *pc = &p1.v[i];
        if (pc->id >= 0) {
            rc = tok_pieces_add(&p2, "", 0, pc->id, 0);
            continue;
        }
        const char *s = p1.text.p + pc->off;
        size_t sn = pc->len;
        if (t->norm) {
            if ((rc = tok_normalize(t->norm, s, sn, &norm))) break;
            s = norm.p ? norm.p : "";
            sn = norm.n;
        }
        rc = split_added(t, &t->m_norm, s, sn, pc->first, &p2);
    }
    if (rc) goto done;
    if (t->pre && (rc = tok_pretokenize(t->pre, &p2))) goto done;
    if (add_special)
        for (size_t i = 0; i < t->post.npre && !rc; i++)
            rc = push_id(&out, &nout, &cap, t->post.pre[i]);
    for (size_t i = 0; i < p2.n && !rc; i++) {
        const struct tok_piece *pc = &p2.v[i];
        if (pc->id >= 0)
            rc = push_id(&out, &nout, &cap, pc->id);
        else
            rc = tok_bpe_word(t, p2.text.p + pc->off, pc->len, &out, &nout, &cap);
    }
    if (add_special)
        for (size_t i = 0; i < t->post.npost && !rc; i++)
            rc = push_id(&out, &nout, &cap, t->post.post[i]);
    if (!rc && !out && !(out = malloc(sizeof(*out))))
        rc = llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
done:
    tok_buf_free(&clean);
    tok_buf_free(&norm);
    tok_pieces_free(&p1);
    tok_pieces_free(&p2);
    if (rc) {
        free(out);
        return rc;
    }
    *ids = out;
    *n = nout;
    return 0;
}

/* ---- loading --------------------------------------------------------- */

/* the old piece of id (if any) may be a vocab map key: it moves to vocab_extra */
static int set_piece(struct llm_tokenizer *t, int32_t id, const char *s, size_t n)
{
    if (t->piece[id] && t->piece_len[id] == n && memcmp(t->piece[id], s, n) == 0) return 0;
    char *p = memdup0(s, n);
    if (!p) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
    if (t->piece[id]) {
        char **ne = realloc(t->vocab_extra, (t->nextra + 1) * sizeof(*ne));
        if (!ne) {
            free(p);
            return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
        }
        t->vocab_extra = ne;
        ne[t->nextra++] = t->piece[id];
    }
    t->piece[id] = p;
    t->piece_len[id] = n;
    return 0;
}

static int get_id(const json_t *v, int32_t *id, const char *what, const char *src)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= TOK_MAX_ID)
        return llm_err_set(LLM_EFORMAT, "'%s': %s: id must be an integer in [0, %d)", src, what,
                           TOK_MAX_ID);
    *id = (int32_t)json_integer_value(v);
    return 0;
}

/* Check the ids of the vocab and the added tokens; *maxid gets the largest
 * (-1 when there is none). */
static int max_id(const json_t *vocab, const json_t *added, const char *src, int64_t *maxid)
{
    int rc;
    *maxid = -1;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)vocab, key, v)
    {
        int32_t id;
        if ((rc = get_id(v, &id, "vocab entry", src))) return rc;
        if (id > *maxid) *maxid = id;
    }
    if (added && !json_is_array(added))
        return llm_err_set(LLM_EFORMAT, "'%s': \"added_tokens\" is not an array", src);
    for (size_t i = 0; i < json_array_size(added); i++) {
        json_t *a = json_array_get(added, i);
        int32_t id;
        if (!json_is_object(a))
            return llm_err_set(LLM_EFORMAT, "'%s': added_tokens[%zu] is not an object", src, i);
        if ((rc = get_id(json_object_get(a, "id"), &id, "added token", src))) return rc;
        if (!json_is_string(json_object_get(a, "content")))
            return llm_err_set(LLM_EFORMAT, "'%s': added_tokens[%zu] has no \"content\" string",
                               src, i);
        if (id > *maxid) *maxid = id;
    }
    return 0;
}

/* The vocab: the map keys point at the piece strings; a second string for
 * an id already named keeps its own copy in vocab_extra. */
static int load_vocab(struct llm_tokenizer *t, const json_t *vocab, const char *src)
{
    int rc;
    const char *key;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach((json_t *)vocab, key, klen, v)
    {
        int32_t id = (int32_t)json_integer_value(v);
        if (!utf8_ok(key, klen))
            return llm_err_set(LLM_EFORMAT, "'%s': vocab entry %d is not valid UTF-8", src, id);
        const char *k;
        if (!t->piece[id]) {
            if ((rc = set_piece(t, id, key, klen))) return rc;
            k = t->piece[id];
        } else {
            char **ne = realloc(t->vocab_extra, (t->nextra + 1) * sizeof(*ne));
            if (!ne) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
            t->vocab_extra = ne;
            if (!(ne[t->nextra] = memdup0(key, klen)))
                return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
            k = ne[t->nextra++];
        }
        if ((rc = tok_smap_put(&t->vocab, k, klen, id, 1))) return rc;
    }
    return 0;
}

/* The model's options: byte fallback, unknown token, subword prefix and
 * suffix, and the ids of the <0xXX> byte tokens. */
static int load_options(struct llm_tokenizer *t, const json_t *model)
{
    json_t *o;
    t->byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
    t->fuse_unk = json_is_true(json_object_get(model, "fuse_unk"));
    t->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
    t->unk_id = -1;
    if (json_is_string(o = json_object_get(model, "unk_token")))
        t->unk_id = tok_smap_get(&t->vocab, json_string_value(o), json_string_length(o));
    if (json_is_string(o = json_object_get(model, "continuing_subword_prefix")) &&
        json_string_length(o)) {
        if (!(t->cont_prefix = memdup0(json_string_value(o), json_string_length(o))))
            return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
        t->cont_prefix_len = json_string_length(o);
    }
    if (json_is_string(o = json_object_get(model, "end_of_word_suffix")) && json_string_length(o)) {
        if (!(t->eow_suffix = memdup0(json_string_value(o), json_string_length(o))))
            return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
        t->eow_suffix_len = json_string_length(o);
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof(name), "<0x%02X>", b);
        t->byte_id[b] = tok_smap_get(&t->vocab, name, 6);
    }
    return 0;
}

/* The merges, ranked by position ("a b" strings or [a, b] pairs), each
 * part and the merged token looked up in the vocab. */
static int load_merges(struct llm_tokenizer *t, const json_t *merges, const char *src)
{
    int rc;
    size_t nm = json_array_size(merges);
    t->merges_cap = 16;
    while (t->merges_cap < 2 * nm + 2)
        t->merges_cap *= 2;
    t->merges = calloc(t->merges_cap, sizeof(*t->merges));
    if (!t->merges) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory (%zu merges)", nm);
    struct tok_buf cat = {0};
    for (size_t r = 0; r < nm; r++) {
        json_t *m = json_array_get(merges, r);
        const char *a, *b;
        size_t an, bn;
        if (json_is_string(m)) {
            const char *s = json_string_value(m), *sp = memchr(s, ' ', json_string_length(m));
            size_t sn = json_string_length(m);
            if (!sp || memchr(sp + 1, ' ', sn - (size_t)(sp + 1 - s))) {
                tok_buf_free(&cat);
                return llm_err_set(LLM_EFORMAT,
                                   "'%s': merge %zu ('%.60s') is not two tokens "
                                   "separated by one space",
                                   src, r, s);
            }
            a = s;
            an = (size_t)(sp - s);
            b = sp + 1;
            bn = sn - an - 1;
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0));
            an = json_string_length(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            bn = json_string_length(json_array_get(m, 1));
        } else {
            tok_buf_free(&cat);
            return llm_err_set(LLM_EFORMAT, "'%s': merge %zu is neither \"a b\" nor [a, b]", src,
                               r);
        }
        int32_t ia = tok_smap_get(&t->vocab, a, an), ib = tok_smap_get(&t->vocab, b, bn);
        if (bn < t->cont_prefix_len) ib = -1;
        cat.n = 0;
        if ((rc = tok_buf_put(&cat, a, an)) ||
            (ib >= 0 &&
             (rc = tok_buf_put(&cat, b + t->cont_prefix_len, bn - t->cont_prefix_len)))) {
            tok_buf_free(&cat);
            return rc;
        }
        int32_t inew = ib >= 0 ? tok_smap_get(&t->vocab, cat.p, cat.n) : -1;
        if (ia < 0 || ib < 0 || inew < 0) {
            const char *miss = ia < 0 ? a : ib < 0 ? b : cat.p;
            int mn = (int)(ia < 0 ? an : ib < 0 ? bn : cat.n);
            rc = llm_err_set(LLM_EFORMAT, "'%s': merge %zu: token '%.*s' is not in the vocab", src,
                             r, mn > 80 ? 80 : mn, miss);
            tok_buf_free(&cat);
            return rc;
        }
        tok_merge_put(t, ia, ib, (uint32_t)r, inew);
    }
    tok_buf_free(&cat);
    return 0;
}

/* The BPE model: check its shape, size the id tables over the vocab and the
 * added tokens, then read the vocab, the options and the merges. */
static int load_model(struct llm_tokenizer *t, const json_t *model, const json_t *added,
                      const char *src)
{
    int rc;
    if (!json_is_object(model))
        return llm_err_set(LLM_EFORMAT, "'%s': \"model\" missing or not an object", src);
    const char *type = json_string_value(json_object_get(model, "type"));
    if (type && strcmp(type, "BPE") != 0)
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': model '%s' is not supported (only BPE)", src,
                           type);
    json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    if (!json_is_object(vocab))
        return llm_err_set(LLM_EFORMAT, "'%s': model \"vocab\" missing or not an object", src);
    if (!type && !json_is_array(merges))
        return llm_err_set(LLM_EUNSUPPORTED,
                           "'%s': model without \"type\" and without "
                           "\"merges\" (only BPE is supported)",
                           src);
    if (merges && !json_is_array(merges))
        return llm_err_set(LLM_EFORMAT, "'%s': model \"merges\" is not an array", src);

    int64_t maxid;
    if ((rc = max_id(vocab, added, src, &maxid))) return rc;
    t->nid = (int32_t)(maxid + 1);
    t->piece = calloc((size_t)t->nid + 1, sizeof(*t->piece));
    t->piece_len = calloc((size_t)t->nid + 1, sizeof(*t->piece_len));
    t->special = calloc((size_t)t->nid + 1, 1);
    if (!t->piece || !t->piece_len || !t->special)
        return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory (%d ids)", t->nid);
    if ((rc = load_vocab(t, vocab, src))) return rc;
    if ((rc = load_options(t, model))) return rc;
    return load_merges(t, merges, src);
}

static int load_added(struct llm_tokenizer *t, const json_t *added, const char *src)
{
    int rc;
    size_t na = json_array_size(added);
    t->added = calloc(na + 1, sizeof(*t->added));
    if (!t->added) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < na; i++) {
        json_t *a = json_array_get(added, i), *c = json_object_get(a, "content");
        int32_t id = (int32_t)json_integer_value(json_object_get(a, "id"));
        const char *s = json_string_value(c);
        size_t n = json_string_length(c);
        if (!utf8_ok(s, n))
            return llm_err_set(LLM_EFORMAT, "'%s': added token %d is not valid UTF-8", src, id);
        if ((rc = set_piece(t, id, s, n))) return rc;
        int special = json_is_true(json_object_get(a, "special"));
        json_t *nz = json_object_get(a, "normalized");
        struct tok_added *x = &t->added[t->nadded];
        x->id = id;
        x->content = t->piece[id];
        x->len = n;
        x->special = special;
        x->single_word = json_is_true(json_object_get(a, "single_word"));
        x->lstrip = json_is_true(json_object_get(a, "lstrip"));
        x->rstrip = json_is_true(json_object_get(a, "rstrip"));
        x->normalized = json_is_boolean(nz) ? json_is_true(nz) : !special;
        if (special) t->special[id] = 1;
        if ((rc = tok_smap_put(&t->addedmap, x->content, n, id, 1))) return rc;
        if (n) t->nadded++;
    }
    /* content pointers: set_piece may have replaced a piece named twice */
    for (size_t i = 0; i < t->nadded; i++)
        t->added[i].content = t->piece[t->added[i].id];
    for (size_t i = 0; i < t->nadded; i++) {
        struct tok_added *x = &t->added[i];
        if (!x->normalized) continue;
        struct tok_buf nb = {0};
        if (t->norm) {
            if ((rc = tok_normalize(t->norm, x->content, x->len, &nb))) {
                tok_buf_free(&nb);
                return rc;
            }
        } else if ((rc = tok_buf_put(&nb, x->content, x->len))) {
            return rc;
        }
        if (!nb.p && (rc = tok_buf_put(&nb, "", 0))) return rc;
        x->norm = nb.p;
        x->norm_len = nb.n;
        /* `tokenizers` names a normalized added token by its normalized
         * form (id_to_token, and so decode); the old string stays alive in
         * vocab_extra for the maps that point at it */
        if (t->norm && (rc = set_piece(t, x->id, x->norm, x->norm_len))) return rc;
    }
    if ((rc = matcher_build(t, &t->m_raw, 0))) return rc;
    return matcher_build(t, &t->m_norm, 1);
}

/* one post-processor's ids before and after $A, appended around *post */
static int ids_append(int32_t **v, size_t *n, const int32_t *add, size_t na, int front)
{
    if (na == 0) return 0;
    int32_t *nv = realloc(*v, (*n + na + 1) * sizeof(*nv));
    if (!nv) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
    if (front) {
        memmove(nv + na, nv, *n * sizeof(*nv));
        memcpy(nv, add, na * sizeof(*nv));
    } else {
        memcpy(nv + *n, add, na * sizeof(*nv));
    }
    *v = nv;
    *n += na;
    return 0;
}

static int pair_id(const json_t *p, int32_t *id, const char *what, const char *src)
{
    if (!json_is_array(p) || json_array_size(p) != 2 || !json_is_string(json_array_get(p, 0)))
        return llm_err_set(LLM_EFORMAT, "'%s': post_processor \"%s\" must be [token, id]", src,
                           what);
    return get_id(json_array_get(p, 1), id, what, src);
}

static int load_post(struct llm_tokenizer *t, const json_t *j, const char *src)
{
    int rc;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!json_is_object(j) || !type)
        return llm_err_set(LLM_EFORMAT, "'%s': post_processor without a \"type\"", src);
    struct tok_post *p = &t->post;
    if (!strcmp(type, "ByteLevel")) return 0;
    if (!strcmp(type, "Sequence")) {
        json_t *a = json_object_get(j, "processors");
        if (!json_is_array(a))
            return llm_err_set(LLM_EFORMAT,
                               "'%s': Sequence post_processor without a "
                               "\"processors\" array",
                               src);
        for (size_t i = 0; i < json_array_size(a); i++)
            if ((rc = load_post(t, json_array_get(a, i), src))) return rc;
        return 0;
    }
    if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        int32_t cls, sep;
        if ((rc = pair_id(json_object_get(j, "cls"), &cls, "cls", src))) return rc;
        if ((rc = pair_id(json_object_get(j, "sep"), &sep, "sep", src))) return rc;
        p->active = 1;
        if ((rc = ids_append(&p->pre, &p->npre, &cls, 1, 1))) return rc;
        return ids_append(&p->post, &p->npost, &sep, 1, 0);
    }
    if (!strcmp(type, "TemplateProcessing")) {
        json_t *single = json_object_get(j, "single"), *sp = json_object_get(j, "special_tokens");
        if (!json_is_array(single))
            return llm_err_set(LLM_EFORMAT,
                               "'%s': TemplateProcessing without a \"single\" "
                               "array",
                               src);
        int32_t *pre = NULL, *post = NULL;
        size_t npre = 0, npost = 0;
        int seen_a = 0;
        rc = 0;
        for (size_t i = 0; i < json_array_size(single) && !rc; i++) {
            json_t *it = json_array_get(single, i);
            json_t *st = json_object_get(it, "SpecialToken"), *sq = json_object_get(it, "Sequence");
            if (json_is_object(sq)) {
                const char *sid = json_string_value(json_object_get(sq, "id"));
                if (!sid || strcmp(sid, "A") != 0 || seen_a)
                    rc = llm_err_set(LLM_EFORMAT,
                                     "'%s': TemplateProcessing \"single\" must "
                                     "hold sequence A exactly once",
                                     src);
                seen_a = 1;
            } else if (json_is_object(st)) {
                const char *name = json_string_value(json_object_get(st, "id"));
                json_t *ent = name ? json_object_get(sp, name) : NULL;
                json_t *ids = json_object_get(ent, "ids");
                if (!json_is_array(ids)) {
                    rc = llm_err_set(LLM_EFORMAT,
                                     "'%s': TemplateProcessing special token '%s' "
                                     "has no entry with \"ids\" in \"special_tokens\"",
                                     src, name ? name : "?");
                    break;
                }
                for (size_t k = 0; k < json_array_size(ids) && !rc; k++) {
                    int32_t id;
                    rc = get_id(json_array_get(ids, k), &id, "template special token", src);
                    if (!rc)
                        rc = seen_a ? ids_append(&post, &npost, &id, 1, 0)
                                    : ids_append(&pre, &npre, &id, 1, 0);
                }
            } else {
                rc = llm_err_set(LLM_EFORMAT,
                                 "'%s': TemplateProcessing item %zu is neither "
                                 "SpecialToken nor Sequence",
                                 src, i);
            }
        }
        if (!rc && !seen_a)
            rc = llm_err_set(LLM_EFORMAT,
                             "'%s': TemplateProcessing \"single\" has no "
                             "sequence A",
                             src);
        if (!rc) rc = ids_append(&p->pre, &p->npre, pre, npre, 1);
        if (!rc) rc = ids_append(&p->post, &p->npost, post, npost, 0);
        p->active = 1;
        free(pre);
        free(post);
        return rc;
    }
    return llm_err_set(LLM_EUNSUPPORTED, "'%s': post_processor '%s' is not supported", src, type);
}

static int32_t piece_id(const struct llm_tokenizer *t, const char *s, size_t n)
{
    int32_t id = tok_smap_get(&t->addedmap, s, n);
    return id >= 0 ? id : tok_smap_get(&t->vocab, s, n);
}

static int32_t cfg_token(const struct llm_tokenizer *t, const json_t *cfg, const char *key)
{
    json_t *v = json_object_get(cfg, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v)) return -1;
    return piece_id(t, json_string_value(v), json_string_length(v));
}

static int load_cfg(struct llm_tokenizer *t, const json_t *cfg, const char *src)
{
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>",
                                            "<\xEF\xBD\x9C"
                                            "begin\xE2\x96\x81of\xE2\x96\x81"
                                            "sentence\xEF\xBD\x9C>",
                                            "<bos>"};
    static const char *const eos_names[] = {"</s>",
                                            "<|end_of_text|>",
                                            "<|endoftext|>",
                                            "<\xEF\xBD\x9C"
                                            "end\xE2\x96\x81of\xE2\x96\x81"
                                            "sentence\xEF\xBD\x9C>",
                                            "<eos>",
                                            "<|im_end|>"};
    t->bos = t->eos = -1;
    if (cfg && !json_is_object(cfg))
        return llm_err_set(LLM_EFORMAT, "'%s': tokenizer_config is not a JSON object", src);
    if (cfg) {
        t->bos = cfg_token(t, cfg, "bos_token");
        t->eos = cfg_token(t, cfg, "eos_token");
    }
    /* from the template: one special before $A is the BOS, one after the EOS */
    if (t->bos < 0 && t->post.npre == 1) t->bos = t->post.pre[0];
    if (t->eos < 0 && t->post.npost == 1) t->eos = t->post.post[0];
    for (size_t i = 0; t->bos < 0 && i < sizeof(bos_names) / sizeof(*bos_names); i++) {
        int32_t id = tok_smap_get(&t->addedmap, bos_names[i], strlen(bos_names[i]));
        if (id >= 0 && t->special[id]) t->bos = id;
    }
    for (size_t i = 0; t->eos < 0 && i < sizeof(eos_names) / sizeof(*eos_names); i++) {
        int32_t id = tok_smap_get(&t->addedmap, eos_names[i], strlen(eos_names[i]));
        if (id >= 0 && t->special[id]) t->eos = id;
    }
    if (!cfg) return 0;
    json_t *ab = json_object_get(cfg, "add_bos_token"), *ae = json_object_get(cfg, "add_eos_token");
    if (json_is_boolean(ab)) {
        t->post.npre = 0;
        if (json_is_true(ab) && t->bos >= 0) {
            int rc = ids_append(&t->post.pre, &t->post.npre, &t->bos, 1, 0);
            if (rc) return rc;
        }
    }
    if (json_is_boolean(ae)) {
        t->post.npost = 0;
        if (json_is_true(ae) && t->eos >= 0) {
            int rc = ids_append(&t->post.post, &t->post.npost, &t->eos, 1, 0);
            if (rc) return rc;
        }
    }
    return 0;
}

int llm_tok_load(struct llm_tokenizer **out, const json_t *tok, const json_t *cfg, const char *src)
{
    *out = NULL;
    if (!src) src = "tokenizer.json";
    if (!json_is_object(tok))
        return llm_err_set(LLM_EFORMAT, "'%s': tokenizer.json is not a JSON object", src);
    struct llm_tokenizer *t = calloc(1, sizeof(*t));
    if (!t) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
    pthread_mutex_init(&t->cache_lock, NULL);
    int rc = 0;
    if (!(t->src = strdup(src))) rc = llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
    json_t *added = json_object_get(tok, "added_tokens");
    if (json_is_null(added)) added = NULL;
    if (!rc) rc = load_model(t, json_object_get(tok, "model"), added, src);
    json_t *j;
    if (!rc && (j = json_object_get(tok, "normalizer")) && !json_is_null(j)) {
        t->norm = calloc(1, sizeof(*t->norm));
        rc = t->norm ? tok_norm_parse(t->norm, j, src)
                     : llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
    }
    if (!rc && (j = json_object_get(tok, "pre_tokenizer")) && !json_is_null(j)) {
        t->pre = calloc(1, sizeof(*t->pre));
        rc = t->pre ? tok_pre_parse(t->pre, j, src)
                    : llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
    }
    if (!rc) rc = load_added(t, added, src);
    if (!rc && (j = json_object_get(tok, "decoder")) && !json_is_null(j))
        rc = tok_dec_parse(t, j, src);
    else if (!rc) {
        struct tok_dec d = {.kind = TOK_DEC_JOIN};
        struct tok_dec *nv = malloc(sizeof(*nv));
        if (!nv)
            rc = llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
        else {
            nv[0] = d;
            t->dec = nv;
            t->ndec = 1;
        }
    }
    if (!rc && (j = json_object_get(tok, "post_processor")) && !json_is_null(j))
        rc = load_post(t, j, src);
    if (!rc) rc = load_cfg(t, cfg, src);
    for (size_t i = 0; !rc && i < t->post.npre + t->post.npost; i++) {
        int32_t id = i < t->post.npre ? t->post.pre[i] : t->post.post[i - t->post.npre];
        if (id >= t->nid || !t->piece[id])
            rc = llm_err_set(LLM_EFORMAT,
                             "'%s': post_processor adds id %d, which is not in the "
                             "vocab",
                             src, id);
    }
    if (rc) {
        llm_tok_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void llm_tok_free(struct llm_tokenizer *t)
{
    if (!t) return;
    if (t->piece)
        for (int32_t i = 0; i < t->nid; i++)
            free(t->piece[i]);
    free(t->piece);
    free(t->piece_len);
    free(t->special);
    for (size_t i = 0; i < t->nextra; i++)
        free(t->vocab_extra[i]);
    free(t->vocab_extra);
    tok_smap_free(&t->vocab);
    tok_smap_free(&t->addedmap);
    free(t->merges);
    free(t->cont_prefix);
    free(t->eow_suffix);
    if (t->norm) tok_norm_free(t->norm);
    free(t->norm);
    if (t->pre) tok_pre_free(t->pre);
    free(t->pre);
    for (size_t i = 0; i < t->ndec; i++)
        tok_dec_free(&t->dec[i]);
    free(t->dec);
    free(t->post.pre);
    free(t->post.post);
    for (size_t i = 0; i < t->nadded; i++)
        free(t->added[i].norm);
    free(t->added);
    free(t->m_raw.idx);
    free(t->m_norm.idx);
    for (size_t i = 0; i < t->cache_cap; i++) {
        free(t->cache[i].word);
        free(t->cache[i].ids);
    }
    free(t->cache);
    pthread_mutex_destroy(&t->cache_lock);
    free(t->src);
    free(t);
}

static int read_json(const char *path, json_t **out, int optional)
{
    struct stat st;
    *out = NULL;
    if (stat(path, &st) != 0) {
        if (optional && errno == ENOENT) return 0;
        return llm_err_set(errno == ENOENT ? LLM_ENOTFOUND : LLM_EIO, "unable to open '%s': %s",
                           path, strerror(errno));
    }
    json_error_t je;
    *out = json_load_file(path, JSON_ALLOW_NUL, &je);
    if (!*out)
        return llm_err_set(LLM_EFORMAT, "'%s': bad JSON at line %d column %d: %s", path, je.line,
                           je.column, je.text);
    return 0;
}

int llm_tok_load_dir(struct llm_tokenizer **out, const char *dir)
{
    *out = NULL;
    size_t n = strlen(dir) + 32;
    char *p1 = malloc(n), *p2 = malloc(n);
    if (!p1 || !p2) {
        free(p1);
        free(p2);
        return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
    }
    snprintf(p1, n, "%s/tokenizer.json", dir);
    snprintf(p2, n, "%s/tokenizer_config.json", dir);
    json_t *tok = NULL, *cfg = NULL;
    int rc = read_json(p1, &tok, 0);
    if (!rc) rc = read_json(p2, &cfg, 1);
    if (!rc) rc = llm_tok_load(out, tok, cfg, p1);
    json_decref(tok);
    json_decref(cfg);
    free(p1);
    free(p2);
    return rc;
}

/* ---- accessors ------------------------------------------------------- */

int64_t llm_tok_vocab_size(const struct llm_tokenizer *t)
{
    return t->nid;
}

const char *llm_tok_id_to_piece(const struct llm_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->nid ? t->piece[id] : NULL;
}

int32_t llm_tok_piece_to_id(const struct llm_tokenizer *t, const char *piece)
{
    return piece ? piece_id(t, piece, strlen(piece)) : -1;
}

int llm_tok_is_special(const struct llm_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->nid && t->special[id];
}

int32_t llm_tok_bos(const struct llm_tokenizer *t)
{
    return t->bos;
}

int32_t llm_tok_eos(const struct llm_tokenizer *t)
{
    return t->eos;
}
