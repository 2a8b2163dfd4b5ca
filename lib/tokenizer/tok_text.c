/* tok_text.c - normalizers and pre-tokenizers of tokenizer.json.
 *
 * Design: a normalizer is a pure string -> string function (offsets are not
 * tracked: ids do not depend on them); a pre-tokenizer rewrites a list of
 * pieces.  Every split is expressed the way Hugging Face `tokenizers` does
 * it: a pattern (regex, literal or character class) cuts a piece into
 * alternating match / non-match segments, `invert` swaps the two, and a
 * SplitDelimiterBehavior (Removed, Isolated, MergedWithPrevious,
 * MergedWithNext, Contiguous) folds them into the new pieces; empty pieces
 * are dropped.  Regexes run on PCRE2 in UTF + UCP mode (JIT where
 * available), Unicode tables come from utf8proc.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "llm/err.h"
#include "tok_internal.h"

/* ---- character classes ---------------------------------------------- */

static int cat_of(uint32_t cp)
{
    return utf8proc_category((utf8proc_int32_t)cp);
}

static int is_numeric(uint32_t cp) /* Rust char::is_numeric: Nd, Nl, No */
{
    int c = cat_of(cp);
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

static int is_punct(uint32_t cp) /* ASCII punctuation or Unicode P* */
{
    if (cp < 0x80)
        return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
               (cp >= 123 && cp <= 126);
    int c = cat_of(cp);
    return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

/* ---- normalizers ----------------------------------------------------- */

static int norm_unicode(int opts, const char *s, size_t n, struct tok_buf *out)
{
    if (n == 0) return 0;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                      (utf8proc_option_t)(UTF8PROC_STABLE | opts));
    if (r < 0) {
        free(dst);
        return llm_err_set(LLM_EINVAL, "tokenizer: unicode normalization failed: %s",
                           utf8proc_errmsg(r));
    }
    int rc = tok_buf_put(out, dst, (size_t)r);
    free(dst);
    return rc;
}

static int norm_lowercase(const char *s, size_t n, struct tok_buf *out)
{
    int rc = 0;
    for (size_t i = 0; i < n && !rc;) {
        uint32_t cp;
        i += (size_t)tok_utf8_dec(s + i, n - i, &cp);
        if (cp == 0x130) /* the only unconditional multi-char lowercase mapping */
            rc = tok_buf_put(out, "i\xCC\x87", 3);
        else
            rc = tok_buf_put_cp(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp));
    }
    return rc;
}

static int norm_replace(const struct tok_norm *nm, const char *s, size_t n, struct tok_buf *out)
{
    struct tok_rematch m;
    int rc = tok_rematch_init(&m, &nm->re);
    if (rc) return rc;
    size_t pos = 0, ms, me;
    while (pos <= n) {
        int r = tok_re_next(&nm->re, &m, s, n, pos, &ms, &me);
        if (r < 0) {
            rc = r;
            break;
        }
        if (r == 0) break;
        if ((rc = tok_buf_put(out, s + pos, ms - pos))) break;
        if ((rc = tok_buf_put(out, nm->str, nm->str_len))) break;
        if (me == ms) { /* empty match: keep one character and go on */
            if (ms == n) {
                pos = n + 1;
                break;
            }
            uint32_t cp;
            size_t k = (size_t)tok_utf8_dec(s + ms, n - ms, &cp);
            if ((rc = tok_buf_put(out, s + ms, k))) break;
            me = ms + k;
        }
        pos = me;
    }
    if (!rc && pos < n) rc = tok_buf_put(out, s + pos, n - pos);
    tok_rematch_free(&m);
    return rc;
}

static int is_chinese(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* StripAccents drops every combining mark (Mn, Mc, Me); BertNormalizer's
 * strip_accents only nonspacing ones (Mn) */
static int filter_marks(const char *s, size_t n, int all_marks, struct tok_buf *out)
{
    int rc = 0;
    for (size_t i = 0; i < n && !rc;) {
        uint32_t cp;
        size_t k = (size_t)tok_utf8_dec(s + i, n - i, &cp);
        int c = cat_of(cp);
        if (c != UTF8PROC_CATEGORY_MN &&
            (!all_marks || (c != UTF8PROC_CATEGORY_MC && c != UTF8PROC_CATEGORY_ME)))
            rc = tok_buf_put(out, s + i, k);
        i += k;
    }
    return rc;
}

static int norm_bert(const struct tok_norm *nm, const char *s, size_t n, struct tok_buf *out)
{
    struct tok_buf a = {0}, b = {0};
    int rc = 0;
    for (size_t i = 0; i < n && !rc;) {
        uint32_t cp;
        size_t k = (size_t)tok_utf8_dec(s + i, n - i, &cp);
        i += k;
        if (nm->clean_text) {
            int c = cat_of(cp);
            int ctrl = cp != '\t' && cp != '\n' && cp != '\r' &&
                       (c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF ||
                        c == UTF8PROC_CATEGORY_CO);
            if (cp == 0 || cp == 0xFFFD || ctrl) continue;
            if (tok_is_whitespace(cp)) cp = ' ';
        }
        if (nm->chinese && is_chinese(cp)) {
            rc = tok_buf_putc(&a, ' ');
            if (!rc) rc = tok_buf_put_cp(&a, cp);
            if (!rc) rc = tok_buf_putc(&a, ' ');
        } else {
            rc = tok_buf_put_cp(&a, cp);
        }
    }
    if (!rc && nm->strip_accents) {
        rc = norm_unicode(UTF8PROC_DECOMPOSE, a.p, a.n, &b);
        a.n = 0;
        if (!rc) rc = filter_marks(b.p, b.n, 0, &a);
    }
    if (!rc) rc = nm->lowercase ? norm_lowercase(a.p, a.n, out) : tok_buf_put(out, a.p, a.n);
    tok_buf_free(&a);
    tok_buf_free(&b);
    return rc;
}

int tok_normalize(const struct tok_norm *nm, const char *s, size_t n, struct tok_buf *out)
{
    out->n = 0;
    if (out->p) out->p[0] = 0;
    switch (nm->kind) {
    case TOK_NORM_NFC:
        return norm_unicode(UTF8PROC_COMPOSE, s, n, out);
    case TOK_NORM_NFD:
        return norm_unicode(UTF8PROC_DECOMPOSE, s, n, out);
    case TOK_NORM_NFKC:
        return norm_unicode(UTF8PROC_COMPOSE | UTF8PROC_COMPAT, s, n, out);
    case TOK_NORM_NFKD:
        return norm_unicode(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, s, n, out);
    case TOK_NORM_LOWERCASE:
        return norm_lowercase(s, n, out);
    case TOK_NORM_PREPEND: {
        if (n == 0) return 0;
        int rc = tok_buf_put(out, nm->str, nm->str_len);
        return rc ? rc : tok_buf_put(out, s, n);
    }
    case TOK_NORM_REPLACE:
        return norm_replace(nm, s, n, out);
    case TOK_NORM_STRIP: {
        size_t a = 0, b = n;
        uint32_t cp;
        while (nm->left && a < b) {
            int k = tok_utf8_dec(s + a, b - a, &cp);
            if (!tok_is_whitespace(cp)) break;
            a += (size_t)k;
        }
        while (nm->right && b > a) {
            size_t k = b - 1;
            while (k > a && ((unsigned char)s[k] & 0xC0) == 0x80)
                k--;
            tok_utf8_dec(s + k, b - k, &cp);
            if (!tok_is_whitespace(cp)) break;
            b = k;
        }
        return tok_buf_put(out, s + a, b - a);
    }
    case TOK_NORM_STRIP_ACCENTS:
        return filter_marks(s, n, 1, out);
    case TOK_NORM_BERT:
        return norm_bert(nm, s, n, out);
    case TOK_NORM_SEQUENCE: {
        struct tok_buf tmp = {0};
        int rc = tok_buf_put(out, s, n);
        for (size_t i = 0; i < nm->nsub && !rc; i++) {
            rc = tok_normalize(&nm->sub[i], out->p, out->n, &tmp);
            struct tok_buf sw = *out;
            *out = tmp;
            tmp = sw;
        }
        tok_buf_free(&tmp);
        return rc;
    }
    default:
        return llm_err_set(LLM_EINVAL, "tokenizer: bad normalizer kind");
    }
}

/* ---- segments and split behaviours ---------------------------------- */

struct seg {
    size_t s, e;
    int m;
};
struct segs {
    struct seg *v;
    size_t n, cap;
};

static int segs_add(struct segs *g, size_t s, size_t e, int m)
{
    if (g->n == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 32;
        struct seg *nv = realloc(g->v, nc * sizeof(*nv));
        if (!nv) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory (split)");
        g->v = nv;
        g->cap = nc;
    }
    g->v[g->n++] = (struct seg){s, e, m};
    return 0;
}

static int segs_regex(const struct tok_re *re, struct tok_rematch *m, const char *s, size_t n,
                      struct segs *g)
{
    size_t prev = 0, pos = 0, ms, me;
    int rc;
    while (pos <= n) {
        int r = tok_re_next(re, m, s, n, pos, &ms, &me);
        if (r < 0) return r;
        if (r == 0) break;
        if (prev < ms && (rc = segs_add(g, prev, ms, 0))) return rc;
        if ((rc = segs_add(g, ms, me, 1))) return rc;
        prev = me;
        if (me == ms) {
            if (ms >= n) break;
            uint32_t cp;
            pos = ms + (size_t)tok_utf8_dec(s + ms, n - ms, &cp);
        } else {
            pos = me;
        }
    }
    if (prev < n && (rc = segs_add(g, prev, n, 0))) return rc;
    return 0;
}

enum cls { CLS_EQ, CLS_NUMERIC, CLS_PUNCT, CLS_SPACE };

static int cls_match(enum cls c, uint32_t ch, uint32_t cp)
{
    switch (c) {
    case CLS_EQ:
        return cp == ch;
    case CLS_NUMERIC:
        return is_numeric(cp);
    case CLS_PUNCT:
        return is_punct(cp);
    default:
        return tok_is_whitespace(cp);
    }
}

/* each matching character is its own match segment */
static int segs_class(enum cls c, uint32_t ch, const char *s, size_t n, struct segs *g)
{
    size_t last = 0;
    int rc;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = (size_t)tok_utf8_dec(s + i, n - i, &cp);
        if (cls_match(c, ch, cp)) {
            if (last < i && (rc = segs_add(g, last, i, 0))) return rc;
            if ((rc = segs_add(g, i, i + k, 1))) return rc;
            last = i + k;
        }
        i += k;
    }
    if (last < n && (rc = segs_add(g, last, n, 0))) return rc;
    return 0;
}

/* Fold segments by behaviour and append the non-empty results to out. */
static int segs_emit(struct segs *g, enum tok_split_behavior b, int invert, const char *s,
                     int first, struct tok_pieces *out)
{
    struct seg *v = g->v;
    size_t n = g->n, k = 0;
    if (invert)
        for (size_t i = 0; i < n; i++)
            v[i].m = !v[i].m;
    int prev = 0;
    switch (b) {
    case TOK_SPLIT_REMOVED:
        for (size_t i = 0; i < n; i++)
            if (!v[i].m) v[k++] = v[i];
        break;
    case TOK_SPLIT_ISOLATED:
        k = n;
        break;
    case TOK_SPLIT_MERGED_PREV:
        for (size_t i = 0; i < n; i++) {
            int m = v[i].m;
            if (m && !prev && k)
                v[k - 1].e = v[i].e;
            else
                v[k++] = v[i];
            prev = m;
        }
        break;
    case TOK_SPLIT_MERGED_NEXT: {
        /* fold from the right, writing results from the end backwards */
        size_t w = n;
        for (size_t i = n; i-- > 0;) {
            int m = v[i].m;
            if (m && !prev && w < n)
                v[w].s = v[i].s;
            else
                v[--w] = v[i];
            prev = m;
        }
        if (n > w) memmove(v, v + w, (n - w) * sizeof(*v));
        k = n - w;
        break;
    }
    case TOK_SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < n; i++) {
            int m = v[i].m;
            if (m == prev && k)
                v[k - 1].e = v[i].e;
            else
                v[k++] = v[i];
            prev = m;
        }
        break;
    default:
        return llm_err_set(LLM_EINVAL, "tokenizer: bad split behaviour");
    }
    for (size_t i = 0; i < k; i++) {
        if (v[i].e <= v[i].s) continue;
        int rc = tok_pieces_add(out, s + v[i].s, v[i].e - v[i].s, -1, first && v[i].s == 0);
        if (rc) return rc;
    }
    g->n = 0;
    return 0;
}

/* ---- pre-tokenizers -------------------------------------------------- */

static int put_replaced_char(struct tok_buf *b, const char *s, size_t n, uint32_t from, uint32_t to)
{
    int rc = 0;
    for (size_t i = 0; i < n && !rc;) {
        uint32_t cp;
        size_t k = (size_t)tok_utf8_dec(s + i, n - i, &cp);
        rc = cp == from ? tok_buf_put_cp(b, to) : tok_buf_put(b, s + i, k);
        i += k;
    }
    return rc;
}

static int starts_with_cp(const char *s, size_t n, uint32_t c)
{
    uint32_t cp;
    if (!n) return 0;
    tok_utf8_dec(s, n, &cp);
    return cp == c;
}

static int pre_one(const struct tok_pre *pre, const struct tok_piece *pc, const char *s,
                   struct tok_pieces *out, struct segs *g, struct tok_rematch *m,
                   struct tok_buf *tmp)
{
    size_t n = pc->len;
    int rc = 0;
    switch (pre->kind) {
    case TOK_PRE_BYTELEVEL: {
        tmp->n = 0;
        if (pre->add_prefix_space && s[0] != ' ' && (rc = tok_buf_putc(tmp, ' '))) return rc;
        if ((rc = tok_buf_put(tmp, s, n))) return rc;
        size_t base = out->n;
        if (pre->use_regex) {
            if ((rc = segs_regex(&pre->re, m, tmp->p, tmp->n, g))) return rc;
            if ((rc = segs_emit(g, TOK_SPLIT_ISOLATED, 0, tmp->p, pc->first, out))) return rc;
        } else if ((rc = tok_pieces_add(out, tmp->p, tmp->n, -1, pc->first))) {
            return rc;
        }
        /* map the bytes of the new pieces to the byte-level alphabet; the
         * text buffer is rebuilt from the first new piece on */
        size_t from = base < out->n ? out->v[base].off : out->text.n;
        struct tok_buf raw = {0};
        if ((rc = tok_buf_put(&raw, out->text.p + from, out->text.n - from))) return rc;
        out->text.n = from;
        size_t roff = 0;
        for (size_t i = base; i < out->n && !rc; i++) {
            size_t off = out->text.n;
            for (size_t j = 0; j < out->v[i].len && !rc; j++)
                rc = tok_buf_put_cp(&out->text, tok_byte_to_cp((uint8_t)raw.p[roff + j]));
            roff += out->v[i].len;
            out->v[i].off = off;
            out->v[i].len = out->text.n - off;
        }
        tok_buf_free(&raw);
        return rc;
    }
    case TOK_PRE_SPLIT:
        if ((rc = segs_regex(&pre->re, m, s, n, g))) return rc;
        return segs_emit(g, pre->behavior, pre->invert, s, pc->first, out);
    case TOK_PRE_METASPACE: {
        tmp->n = 0;
        if ((rc = put_replaced_char(tmp, s, n, ' ', pre->ch))) return rc;
        int prepend =
            pre->prepend == TOK_PREPEND_ALWAYS || (pre->prepend == TOK_PREPEND_FIRST && pc->first);
        if (prepend && !starts_with_cp(tmp->p, tmp->n, pre->ch)) {
            struct tok_buf t2 = {0};
            rc = tok_buf_put_cp(&t2, pre->ch);
            if (!rc) rc = tok_buf_put(&t2, tmp->p, tmp->n);
            if (rc) {
                tok_buf_free(&t2);
                return rc;
            }
            tok_buf_free(tmp);
            *tmp = t2;
        }
        if (!pre->split) return tok_pieces_add(out, tmp->p, tmp->n, -1, pc->first);
        if ((rc = segs_class(CLS_EQ, pre->ch, tmp->p, tmp->n, g))) return rc;
        return segs_emit(g, TOK_SPLIT_MERGED_NEXT, 0, tmp->p, pc->first, out);
    }
    case TOK_PRE_DIGITS:
        if ((rc = segs_class(CLS_NUMERIC, 0, s, n, g))) return rc;
        return segs_emit(g, pre->individual_digits ? TOK_SPLIT_ISOLATED : TOK_SPLIT_CONTIGUOUS, 0,
                         s, pc->first, out);
    case TOK_PRE_PUNCTUATION:
        if ((rc = segs_class(CLS_PUNCT, 0, s, n, g))) return rc;
        return segs_emit(g, pre->behavior, 0, s, pc->first, out);
    case TOK_PRE_WHITESPACE:
        if ((rc = segs_regex(&pre->re, m, s, n, g))) return rc;
        return segs_emit(g, TOK_SPLIT_REMOVED, 1, s, pc->first, out);
    case TOK_PRE_WHITESPACE_SPLIT:
        if ((rc = segs_class(CLS_SPACE, 0, s, n, g))) return rc;
        return segs_emit(g, TOK_SPLIT_REMOVED, 0, s, pc->first, out);
    case TOK_PRE_CHAR_DELIMITER:
        if ((rc = segs_class(CLS_EQ, pre->ch, s, n, g))) return rc;
        return segs_emit(g, TOK_SPLIT_REMOVED, 0, s, pc->first, out);
    default:
        return llm_err_set(LLM_EINVAL, "tokenizer: bad pre-tokenizer kind");
    }
}

int tok_pretokenize(const struct tok_pre *pre, struct tok_pieces *io)
{
    int rc = 0;
    if (pre->kind == TOK_PRE_SEQUENCE || pre->kind == TOK_PRE_BERT) {
        for (size_t i = 0; i < pre->nsub && !rc; i++)
            rc = tok_pretokenize(&pre->sub[i], io);
        return rc;
    }
    struct tok_pieces out = {0};
    struct segs g = {0};
    struct tok_buf tmp = {0};
    struct tok_rematch m = {0};
    if (pre->re.code && (rc = tok_rematch_init(&m, &pre->re))) return rc;
    for (size_t i = 0; i < io->n && !rc; i++) {
        const struct tok_piece *pc = &io->v[i];
        if (pc->id >= 0)
            rc = tok_pieces_add(&out, io->text.p + pc->off, pc->len, pc->id, pc->first);
        else
            rc = pre_one(pre, pc, io->text.p + pc->off, &out, &g, &m, &tmp);
    }
    tok_rematch_free(&m);
    free(g.v);
    tok_buf_free(&tmp);
    if (rc) {
        tok_pieces_free(&out);
        return rc;
    }
    tok_pieces_free(io);
    *io = out;
    return 0;
}

/* ---- parsing --------------------------------------------------------- */

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int jbool(const json_t *o, const char *k, int dflt)
{
    json_t *v = json_object_get(o, k);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static int dup_str(const json_t *v, char **out, size_t *len)
{
    size_t n = json_string_length(v);
    *out = malloc(n + 1);
    if (!*out) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
    memcpy(*out, json_string_value(v), n);
    (*out)[n] = 0;
    if (len) *len = n;
    return 0;
}

/* {"String": s} or {"Regex": r} */
static int parse_pattern(const json_t *p, struct tok_re *re, const char *what, const char *src)
{
    json_t *s = json_object_get(p, "String"), *r = json_object_get(p, "Regex");
    if (json_is_string(s))
        return tok_re_compile(re, json_string_value(s), json_string_length(s), 1, src);
    if (json_is_string(r))
        return tok_re_compile(re, json_string_value(r), json_string_length(r), 0, src);
    return llm_err_set(LLM_EFORMAT,
                       "'%s': %s: pattern must be {\"String\": ...} or "
                       "{\"Regex\": ...}",
                       src, what);
}

static int one_char(const json_t *v, uint32_t *cp, const char *what, const char *src)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (!s || !n)
        return llm_err_set(LLM_EFORMAT, "'%s': %s must be a one-character string", src, what);
    int k = tok_utf8_dec(s, n, cp);
    if ((size_t)k != n)
        return llm_err_set(LLM_EFORMAT, "'%s': %s must be a one-character string", src, what);
    return 0;
}

int tok_norm_parse(struct tok_norm *nm, const void *jv, const char *src)
{
    const json_t *j = jv;
    memset(nm, 0, sizeof(*nm));
    const char *type = jstr(j, "type");
    if (!json_is_object(j) || !type)
        return llm_err_set(LLM_EFORMAT, "'%s': normalizer without a \"type\"", src);
    int rc = 0;
    if (!strcmp(type, "NFC")) {
        nm->kind = TOK_NORM_NFC;
    } else if (!strcmp(type, "NFD")) {
        nm->kind = TOK_NORM_NFD;
    } else if (!strcmp(type, "NFKC")) {
        nm->kind = TOK_NORM_NFKC;
    } else if (!strcmp(type, "NFKD")) {
        nm->kind = TOK_NORM_NFKD;
    } else if (!strcmp(type, "Lowercase")) {
        nm->kind = TOK_NORM_LOWERCASE;
    } else if (!strcmp(type, "StripAccents")) {
        nm->kind = TOK_NORM_STRIP_ACCENTS;
    } else if (!strcmp(type, "Prepend")) {
        nm->kind = TOK_NORM_PREPEND;
        json_t *p = json_object_get(j, "prepend");
        if (!json_is_string(p))
            return llm_err_set(LLM_EFORMAT, "'%s': Prepend normalizer without \"prepend\"", src);
        rc = dup_str(p, &nm->str, &nm->str_len);
    } else if (!strcmp(type, "Replace")) {
        nm->kind = TOK_NORM_REPLACE;
        json_t *c = json_object_get(j, "content");
        if (!json_is_string(c))
            return llm_err_set(LLM_EFORMAT, "'%s': Replace normalizer without \"content\"", src);
        rc = dup_str(c, &nm->str, &nm->str_len);
        if (!rc) rc = parse_pattern(json_object_get(j, "pattern"), &nm->re, "Replace", src);
    } else if (!strcmp(type, "Strip")) {
        nm->kind = TOK_NORM_STRIP;
        nm->left = jbool(j, "strip_left", 1);
        nm->right = jbool(j, "strip_right", 1);
    } else if (!strcmp(type, "BertNormalizer")) {
        nm->kind = TOK_NORM_BERT;
        nm->clean_text = jbool(j, "clean_text", 1);
        nm->chinese = jbool(j, "handle_chinese_chars", 1);
        nm->lowercase = jbool(j, "lowercase", 1);
        nm->strip_accents = jbool(j, "strip_accents", nm->lowercase);
    } else if (!strcmp(type, "Sequence")) {
        nm->kind = TOK_NORM_SEQUENCE;
        json_t *a = json_object_get(j, "normalizers");
        if (!json_is_array(a))
            return llm_err_set(LLM_EFORMAT,
                               "'%s': Sequence normalizer without a "
                               "\"normalizers\" array",
                               src);
        nm->sub = calloc(json_array_size(a) + 1, sizeof(*nm->sub));
        if (!nm->sub) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
        for (size_t i = 0; i < json_array_size(a) && !rc; i++) {
            rc = tok_norm_parse(&nm->sub[i], json_array_get(a, i), src);
            nm->nsub = i + 1;
        }
    } else {
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': normalizer '%s' is not supported", src, type);
    }
    return rc;
}

void tok_norm_free(struct tok_norm *nm)
{
    if (!nm) return;
    free(nm->str);
    tok_re_free(&nm->re);
    for (size_t i = 0; i < nm->nsub; i++)
        tok_norm_free(&nm->sub[i]);
    free(nm->sub);
}

static const char GPT2_RE[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+"
                              "|\\s+(?!\\S)|\\s+";
/* Rust regex's Unicode \w and \s, spelled out so PCRE2 agrees with them */
static const char WHITESPACE_RE[] =
    "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]+|"
    "[^\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}"
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}"
    "\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}]+";

static int parse_behavior(const json_t *j, enum tok_split_behavior *b, enum tok_split_behavior dflt,
                          const char *src)
{
    const char *s = jstr(j, "behavior");
    static const char *const names[TOK_SPLIT_COUNT] = {"Removed", "Isolated", "MergedWithPrevious",
                                                       "MergedWithNext", "Contiguous"};
    if (!s) {
        *b = dflt;
        return 0;
    }
    for (int i = 0; i < TOK_SPLIT_COUNT; i++) {
        if (!strcmp(s, names[i])) {
            *b = (enum tok_split_behavior)i;
            return 0;
        }
    }
    return llm_err_set(LLM_EFORMAT, "'%s': unknown split behavior '%s'", src, s);
}

int tok_pre_parse(struct tok_pre *pre, const void *jv, const char *src)
{
    const json_t *j = jv;
    memset(pre, 0, sizeof(*pre));
    const char *type = jstr(j, "type");
    if (!json_is_object(j) || !type)
        return llm_err_set(LLM_EFORMAT, "'%s': pre_tokenizer without a \"type\"", src);
    int rc = 0;
    if (!strcmp(type, "ByteLevel")) {
        pre->kind = TOK_PRE_BYTELEVEL;
        pre->add_prefix_space = jbool(j, "add_prefix_space", 1);
        pre->use_regex = jbool(j, "use_regex", 1);
        if (pre->use_regex) rc = tok_re_compile(&pre->re, GPT2_RE, strlen(GPT2_RE), 0, src);
    } else if (!strcmp(type, "Split")) {
        pre->kind = TOK_PRE_SPLIT;
        pre->invert = jbool(j, "invert", 0);
        rc = parse_behavior(j, &pre->behavior, TOK_SPLIT_ISOLATED, src);
        if (!rc) rc = parse_pattern(json_object_get(j, "pattern"), &pre->re, "Split", src);
    } else if (!strcmp(type, "Metaspace")) {
        pre->kind = TOK_PRE_METASPACE;
        rc = one_char(json_object_get(j, "replacement"), &pre->ch, "Metaspace replacement", src);
        const char *ps = jstr(j, "prepend_scheme");
        if (ps) {
            if (!strcmp(ps, "always"))
                pre->prepend = TOK_PREPEND_ALWAYS;
            else if (!strcmp(ps, "first"))
                pre->prepend = TOK_PREPEND_FIRST;
            else if (!strcmp(ps, "never"))
                pre->prepend = TOK_PREPEND_NEVER;
            else
                return llm_err_set(LLM_EFORMAT, "'%s': unknown prepend_scheme '%s'", src, ps);
        } else {
            pre->prepend = jbool(j, "add_prefix_space", 1) ? TOK_PREPEND_ALWAYS : TOK_PREPEND_NEVER;
        }
        pre->split = jbool(j, "split", 1);
    } else if (!strcmp(type, "Digits")) {
        pre->kind = TOK_PRE_DIGITS;
        pre->individual_digits = jbool(j, "individual_digits", 0);
    } else if (!strcmp(type, "Punctuation")) {
        pre->kind = TOK_PRE_PUNCTUATION;
        rc = parse_behavior(j, &pre->behavior, TOK_SPLIT_ISOLATED, src);
    } else if (!strcmp(type, "Whitespace")) {
        pre->kind = TOK_PRE_WHITESPACE;
        rc = tok_re_compile(&pre->re, WHITESPACE_RE, strlen(WHITESPACE_RE), 0, src);
    } else if (!strcmp(type, "WhitespaceSplit")) {
        pre->kind = TOK_PRE_WHITESPACE_SPLIT;
    } else if (!strcmp(type, "CharDelimiterSplit")) {
        pre->kind = TOK_PRE_CHAR_DELIMITER;
        rc = one_char(json_object_get(j, "delimiter"), &pre->ch, "CharDelimiterSplit delimiter",
                      src);
    } else if (!strcmp(type, "BertPreTokenizer")) {
        pre->kind = TOK_PRE_BERT;
        pre->sub = calloc(2, sizeof(*pre->sub));
        if (!pre->sub) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
        pre->nsub = 2;
        pre->sub[0].kind = TOK_PRE_WHITESPACE_SPLIT;
        pre->sub[1].kind = TOK_PRE_PUNCTUATION;
        pre->sub[1].behavior = TOK_SPLIT_ISOLATED;
    } else if (!strcmp(type, "Sequence")) {
        pre->kind = TOK_PRE_SEQUENCE;
        json_t *a = json_object_get(j, "pretokenizers");
        if (!json_is_array(a))
            return llm_err_set(LLM_EFORMAT,
                               "'%s': Sequence pre_tokenizer without a "
                               "\"pretokenizers\" array",
                               src);
        pre->sub = calloc(json_array_size(a) + 1, sizeof(*pre->sub));
        if (!pre->sub) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
        for (size_t i = 0; i < json_array_size(a) && !rc; i++) {
            rc = tok_pre_parse(&pre->sub[i], json_array_get(a, i), src);
            pre->nsub = i + 1;
        }
    } else {
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': pre_tokenizer '%s' is not supported", src,
                           type);
    }
    return rc;
}

void tok_pre_free(struct tok_pre *pre)
{
    if (!pre) return;
    tok_re_free(&pre->re);
    for (size_t i = 0; i < pre->nsub; i++)
        tok_pre_free(&pre->sub[i]);
    free(pre->sub);
}
