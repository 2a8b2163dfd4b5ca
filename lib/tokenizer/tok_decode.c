/* tok_decode.c - decoders (ids -> text) and the streaming detokenizer.
 *
 * Design: a Hugging Face decoder maps the whole list of token strings to a
 * new list (the Sequence decoder chains them) and the result is
 * concatenated.  Here every decoder is a streaming transducer over
 * "chunks": pieces of token text tagged START (first chunk of a token) and
 * END (last chunk).  A stage emits only output that no later token can
 * change, and keeps the rest as state:
 *
 *   ByteLevel    needs whole tokens; appends their bytes to one output token
 *                and emits complete UTF-8 (lossy, maximal-subpart U+FFFD),
 *                holding an incomplete tail of at most 3 bytes;
 *   ByteFallback holds a run of <0xXX> tokens until a non-byte token (or the
 *                end) shows whether the run is valid UTF-8 (else one U+FFFD
 *                per byte, as `tokenizers` does);
 *   Fuse         turns everything into one token that ends at flush;
 *   Strip        drops up to `start` leading content chars of a token and
 *                holds a trailing run of content chars until the token
 *                ends;
 *   Replace      literal patterns stream with a hold-back shorter than the
 *                pattern; regex patterns wait for the whole token;
 *   Metaspace    per character; the first token drops its replacement
 *                chars unless prepend_scheme is "never";
 *   BPEDecoder   holds the previous token (the last one loses its suffix);
 *   WordPiece    per whole token.
 *
 * llm_tok_decode runs the same stages over all ids and flushes, so the
 * streamed text and the full decode agree by construction.  Stages pass
 * valid UTF-8 cut at character boundaries, so no emitted piece ends inside
 * a character.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "llm/tokenizer.h"
#include "tok_internal.h"

#define F_START 1
#define F_END 2

struct dstate {
    struct tok_buf acc;   /* whole-token accumulation / unscanned tail */
    struct tok_buf bytes; /* ByteLevel / ByteFallback pending bytes */
    struct tok_buf prev;  /* BPEDecoder held token */
    int have_prev;
    int started;   /* single-output-token stages: START sent */
    int64_t ntok;  /* input tokens started so far */
    int lead_done; /* Strip */
    size_t lead, nchars, held;
    int all_c;
};

struct llm_tok_stream {
    const struct llm_tokenizer *t;
    int skip_special, done;
    struct dstate *st;
    struct tok_buf out;
};

static int feed(struct llm_tok_stream *s, size_t k, const char *p, size_t n, int fl);

static int collect(struct dstate *d, const char *p, size_t n, int fl, int *done)
{
    if (fl & F_START) d->acc.n = 0;
    int rc = tok_buf_put(&d->acc, p, n);
    *done = !rc && (fl & F_END);
    return rc;
}

static int put_n(struct tok_buf *b, uint32_t cp, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = tok_buf_put_cp(b, cp);
    return rc;
}

/* ---- ByteFallback ---------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "<0xHH>" as u8::from_str_radix reads HH (a leading '+' is allowed) */
static int byte_token(const char *p, size_t n)
{
    if (n != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
    if (p[3] == '+') return hexval(p[4]);
    int a = hexval(p[3]), b = hexval(p[4]);
    return a < 0 || b < 0 ? -1 : a * 16 + b;
}

static int utf8_valid(const char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        int k = tok_utf8_check((const unsigned char *)p + i, n - i);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

static int bf_flush_group(struct llm_tok_stream *s, size_t k)
{
    struct dstate *d = &s->st[k];
    int rc = 0;
    if (!d->bytes.n) return 0;
    if (utf8_valid(d->bytes.p, d->bytes.n)) {
        rc = feed(s, k + 1, d->bytes.p, d->bytes.n, F_START | F_END);
    } else {
        for (size_t i = 0; i < d->bytes.n && !rc; i++)
            rc = feed(s, k + 1, "\xEF\xBF\xBD", 3, F_START | F_END);
    }
    d->bytes.n = 0;
    return rc;
}

/* ---- ByteLevel ------------------------------------------------------- */

/* emit the complete part of d->bytes (all of it when final) */
static int bl_emit(struct llm_tok_stream *s, size_t k, int final)
{
    struct dstate *d = &s->st[k];
    struct tok_buf o = {0};
    const unsigned char *b = (const unsigned char *)d->bytes.p;
    size_t n = d->bytes.n, i = 0, run = 0;
    int rc = 0;
    while (i < n && !rc) {
        int c = tok_utf8_check(b + i, n - i);
        if (c > 0) {
            i += (size_t)c;
            continue;
        }
        if (c == 0 && !final) break;
        rc = tok_buf_put(&o, b + run, i - run);
        if (!rc) rc = tok_buf_put(&o, "\xEF\xBF\xBD", 3);
        i += c == 0 ? n - i : (size_t)-c;
        run = i;
    }
    if (!rc && i > run) rc = tok_buf_put(&o, b + run, i - run);
    if (!rc) {
        if (n > i) memmove(d->bytes.p, d->bytes.p + i, n - i);
        d->bytes.n = n - i;
        int fl = (d->started ? 0 : F_START) | (final ? F_END : 0);
        d->started = 1;
        if (o.n || fl) rc = feed(s, k + 1, o.p ? o.p : "", o.n, fl);
    }
    tok_buf_free(&o);
    return rc;
}

/* ---- literal / regex replace ----------------------------------------- */

static int regex_replace(const struct tok_re *re, const char *s, size_t n, const char *c, size_t cn,
                         struct tok_buf *out)
{
    struct tok_rematch m;
    int rc = tok_rematch_init(&m, re);
    if (rc) return rc;
    size_t pos = 0, ms, me;
    while (pos <= n) {
        int r = tok_re_next(re, &m, s, n, pos, &ms, &me);
        if (r <= 0) {
            rc = r;
            break;
        }
        if ((rc = tok_buf_put(out, s + pos, ms - pos))) break;
        if ((rc = tok_buf_put(out, c, cn))) break;
        if (me == ms) {
            if (ms >= n) {
                pos = n;
                break;
            }
            uint32_t cp;
            size_t kk = (size_t)tok_utf8_dec(s + ms, n - ms, &cp);
            if ((rc = tok_buf_put(out, s + ms, kk))) break;
            me = ms + kk;
        }
        pos = me;
    }
    if (!rc && pos < n) rc = tok_buf_put(out, s + pos, n - pos);
    tok_rematch_free(&m);
    return rc;
}

static int str_replace_all(const char *s, size_t n, const char *p, size_t pn, const char *c,
                           size_t cn, size_t maxcount, struct tok_buf *out)
{
    size_t i = 0, done = 0;
    int rc = 0;
    while (i < n && !rc) {
        if (pn && done < maxcount && n - i >= pn && memcmp(s + i, p, pn) == 0) {
            rc = tok_buf_put(out, c, cn);
            i += pn;
            done++;
        } else {
            rc = tok_buf_put(out, s + i, 1);
            i++;
        }
    }
    return rc;
}

/* ---- the stages ------------------------------------------------------ */

/* ByteFallback: hold <0xXX> tokens as bytes; any other token flushes the
 * held run and passes on whole. */
static int feed_bytefallback(struct llm_tok_stream *s, size_t k, const char *p, size_t n, int fl)
{
    struct dstate *d = &s->st[k];
    int rc, done = 0;
    if ((rc = collect(d, p, n, fl, &done)) || !done) return rc;
    int b = byte_token(d->acc.p, d->acc.n);
    if (b >= 0) {
        char c = (char)b;
        return tok_buf_put(&d->bytes, &c, 1);
    }
    if ((rc = bf_flush_group(s, k))) return rc;
    return feed(s, k + 1, d->acc.p, d->acc.n, F_START | F_END);
}

/* ByteLevel: map a whole token's chars back to bytes (a token that is not
 * all byte-level chars passes as its raw text) and emit complete UTF-8. */
static int feed_bytelevel(struct llm_tok_stream *s, size_t k, const char *p, size_t n, int fl)
{
    struct dstate *d = &s->st[k];
    int rc, done = 0;
    if ((rc = collect(d, p, n, fl, &done)) || !done) return rc;
    size_t mark = d->bytes.n;
    for (size_t i = 0; i < d->acc.n && !rc;) {
        uint32_t cp;
        i += (size_t)tok_utf8_dec(d->acc.p + i, d->acc.n - i, &cp);
        int byte = tok_cp_to_byte(cp);
        if (byte < 0) { /* not all byte-level chars: the raw text */
            d->bytes.n = mark;
            rc = tok_buf_put(&d->bytes, d->acc.p, d->acc.n);
            break;
        }
        char c = (char)byte;
        rc = tok_buf_put(&d->bytes, &c, 1);
    }
    return rc ? rc : bl_emit(s, k, 0);
}

/* Strip: drop leading content chars of a token and hold a trailing run of
 * them until the token ends; output into o. */
static int strip_chunk(const struct tok_dec *dc, struct dstate *d, const char *p, size_t n, int fl,
                       struct tok_buf *o)
{
    int rc = 0;
    if (fl & F_START) {
        d->lead_done = dc->start == 0;
        d->lead = d->nchars = d->held = 0;
        d->all_c = 1;
    }
    for (size_t i = 0; i < n && !rc;) {
        uint32_t cp;
        size_t kk = (size_t)tok_utf8_dec(p + i, n - i, &cp);
        d->nchars++;
        if (!d->lead_done) {
            if (cp == dc->ch && d->lead < dc->start) {
                d->lead++;
                i += kk;
                continue;
            }
            d->lead_done = 1;
        }
        if (cp == dc->ch && dc->stop > 0) {
            d->held++;
        } else {
            if (cp != dc->ch) d->all_c = 0;
            rc = put_n(o, dc->ch, d->held);
            d->held = 0;
            if (!rc) rc = tok_buf_put(o, p + i, kk);
        }
        i += kk;
    }
    if (!rc && (fl & F_END)) {
        size_t trail = d->all_c ? d->nchars : d->held;
        size_t cut = trail < dc->stop ? trail : dc->stop;
        rc = put_n(o, dc->ch, d->held > cut ? d->held - cut : 0);
        d->held = 0;
    }
    return rc;
}

/* Replace with a regex pattern: on the whole token, passed on whole. */
static int feed_regex_replace(struct llm_tok_stream *s, size_t k, const char *p, size_t n, int fl)
{
    const struct tok_dec *dc = &s->t->dec[k];
    struct dstate *d = &s->st[k];
    struct tok_buf o = {0};
    int rc, done = 0;
    if ((rc = collect(d, p, n, fl, &done)) || !done) return rc;
    rc = regex_replace(&dc->re, d->acc.p, d->acc.n, dc->content, dc->content_len, &o);
    if (!rc) rc = feed(s, k + 1, o.p ? o.p : "", o.n, F_START | F_END);
    tok_buf_free(&o);
    return rc;
}

/* Replace with a literal pattern: streams, holding back a tail that could
 * still become a match until the token ends; output into o. */
static int replace_chunk(const struct tok_dec *dc, struct dstate *d, const char *p, size_t n,
                         int fl, struct tok_buf *o)
{
    int rc;
    if (fl & F_START) d->acc.n = 0;
    if ((rc = tok_buf_put(&d->acc, p, n))) return rc;
    size_t i = 0, an = d->acc.n, pn = dc->pat_len;
    const char *a = d->acc.p;
    while (i < an && !rc) {
        if (pn && an - i >= pn && memcmp(a + i, dc->pat, pn) == 0) {
            rc = tok_buf_put(o, dc->content, dc->content_len);
            i += pn;
        } else if (pn && an - i < pn && !(fl & F_END) && memcmp(a + i, dc->pat, an - i) == 0) {
            break; /* could become a match */
        } else {
            rc = tok_buf_put(o, a + i, 1);
            i++;
        }
    }
    if (an > i) memmove(d->acc.p, a + i, an - i);
    d->acc.n = an - i;
    return rc;
}

/* Metaspace: the replacement char becomes a space, except in the first
 * token unless prepend_scheme is "never"; output into o. */
static int metaspace_chunk(const struct tok_dec *dc, struct dstate *d, const char *p, size_t n,
                           int fl, struct tok_buf *o)
{
    int rc = 0;
    if (fl & F_START) d->ntok++;
    for (size_t i = 0; i < n && !rc;) {
        uint32_t cp;
        size_t kk = (size_t)tok_utf8_dec(p + i, n - i, &cp);
        if (cp == dc->ch) {
            if (!(d->ntok == 1 && dc->prepend != TOK_PREPEND_NEVER)) rc = tok_buf_putc(o, ' ');
        } else {
            rc = tok_buf_put(o, p + i, kk);
        }
        i += kk;
    }
    return rc;
}

/* BPEDecoder: pass on the held token with its suffix turned into a space,
 * and hold this one (flush_from passes the last without it). */
static int feed_bpe(struct llm_tok_stream *s, size_t k, const char *p, size_t n, int fl)
{
    const struct tok_dec *dc = &s->t->dec[k];
    struct dstate *d = &s->st[k];
    struct tok_buf o = {0};
    int rc, done = 0;
    if ((rc = collect(d, p, n, fl, &done)) || !done) return rc;
    if (d->have_prev) {
        rc = str_replace_all(d->prev.p, d->prev.n, dc->pat, dc->pat_len, " ", 1, SIZE_MAX, &o);
        if (!rc) rc = feed(s, k + 1, o.p ? o.p : "", o.n, F_START | F_END);
    }
    d->prev.n = 0;
    if (!rc) rc = tok_buf_put(&d->prev, d->acc.p, d->acc.n);
    d->have_prev = 1;
    tok_buf_free(&o);
    return rc;
}

/* WordPiece: a whole token loses its continuing-subword prefix (or gains a
 * leading space), then the optional cleanup of spaces before punctuation
 * and contractions. */
static int feed_wordpiece(struct llm_tok_stream *s, size_t k, const char *p, size_t n, int fl)
{
    const struct tok_dec *dc = &s->t->dec[k];
    struct dstate *d = &s->st[k];
    struct tok_buf o = {0};
    int rc, done = 0;
    if ((rc = collect(d, p, n, fl, &done)) || !done) return rc;
    struct tok_buf w = {0};
    const char *a = d->acc.p;
    size_t an = d->acc.n;
    if (d->ntok++ != 0) {
        if (an >= dc->pat_len && memcmp(a, dc->pat, dc->pat_len) == 0)
            rc = tok_buf_put(&w, a + dc->pat_len, an - dc->pat_len);
        else if (!(rc = tok_buf_putc(&w, ' ')))
            rc = tok_buf_put(&w, a, an);
    } else {
        rc = tok_buf_put(&w, a, an);
    }
    if (!rc && dc->cleanup) {
        static const char *const rep[][2] = {
            {" .", "."},   {" ?", "?"},     {" !", "!"},    {" ,", ","},
            {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},  {" do not", " don't"},
            {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
        for (size_t r = 0; r < sizeof(rep) / sizeof(rep[0]) && !rc; r++) {
            o.n = 0;
            rc = str_replace_all(w.p ? w.p : "", w.n, rep[r][0], strlen(rep[r][0]), rep[r][1],
                                 strlen(rep[r][1]), SIZE_MAX, &o);
            struct tok_buf sw = w;
            w = o;
            o = sw;
        }
    }
    if (!rc) rc = feed(s, k + 1, w.p ? w.p : "", w.n, F_START | F_END);
    tok_buf_free(&w);
    tok_buf_free(&o);
    return rc;
}

/* ---- the chain ------------------------------------------------------- */

/* Pass one chunk (flags fl) to stage k; past the last stage it is output. */
static int feed(struct llm_tok_stream *s, size_t k, const char *p, size_t n, int fl)
{
    const struct llm_tokenizer *t = s->t;
    if (k == t->ndec) return tok_buf_put(&s->out, p, n);
    const struct tok_dec *dc = &t->dec[k];
    struct dstate *d = &s->st[k];
    struct tok_buf o = {0};
    int rc = 0;
    switch (dc->kind) {
    case TOK_DEC_BYTEFALLBACK:
        return feed_bytefallback(s, k, p, n, fl);
    case TOK_DEC_BYTELEVEL:
        return feed_bytelevel(s, k, p, n, fl);
    case TOK_DEC_FUSE: {
        int f = d->started ? 0 : F_START;
        d->started = 1;
        return feed(s, k + 1, p, n, f);
    }
    case TOK_DEC_STRIP:
        rc = strip_chunk(dc, d, p, n, fl, &o);
        break;
    case TOK_DEC_REPLACE:
        if (dc->re.code) return feed_regex_replace(s, k, p, n, fl);
        rc = replace_chunk(dc, d, p, n, fl, &o);
        break;
    case TOK_DEC_METASPACE:
        rc = metaspace_chunk(dc, d, p, n, fl, &o);
        break;
    case TOK_DEC_BPE:
        return feed_bpe(s, k, p, n, fl);
    case TOK_DEC_WORDPIECE:
        return feed_wordpiece(s, k, p, n, fl);
    case TOK_DEC_JOIN:
        if ((fl & F_START) && d->ntok++ > 0) rc = tok_buf_putc(&o, ' ');
        if (!rc) rc = tok_buf_put(&o, p, n);
        break;
    default:
        return llm_err_set(LLM_EINVAL, "tokenizer: bad decoder kind");
    }
    if (!rc) rc = feed(s, k + 1, o.p ? o.p : "", o.n, fl);
    tok_buf_free(&o);
    return rc;
}

static int flush_from(struct llm_tok_stream *s, size_t k)
{
    const struct llm_tokenizer *t = s->t;
    int rc = 0;
    if (k == t->ndec) return 0;
    const struct tok_dec *dc = &t->dec[k];
    struct dstate *d = &s->st[k];
    switch (dc->kind) {
    case TOK_DEC_BYTEFALLBACK:
        rc = bf_flush_group(s, k);
        break;
    case TOK_DEC_BYTELEVEL:
        rc = bl_emit(s, k, 1);
        break;
    case TOK_DEC_FUSE:
        rc = feed(s, k + 1, "", 0, (d->started ? 0 : F_START) | F_END);
        d->started = 1;
        break;
    case TOK_DEC_BPE:
        if (d->have_prev) {
            struct tok_buf o = {0};
            rc = str_replace_all(d->prev.p, d->prev.n, dc->pat, dc->pat_len, "", 0, SIZE_MAX, &o);
            if (!rc) rc = feed(s, k + 1, o.p ? o.p : "", o.n, F_START | F_END);
            tok_buf_free(&o);
            d->have_prev = 0;
        }
        break;
    default:
        break;
    }
    return rc ? rc : flush_from(s, k + 1);
}

/* ---- public API ------------------------------------------------------ */

int llm_tok_stream_new(struct llm_tok_stream **out, const struct llm_tokenizer *t, int skip_special)
{
    *out = NULL;
    if (!t) return llm_err_set(LLM_EINVAL, "tokenizer: stream on a NULL tokenizer");
    struct llm_tok_stream *s = calloc(1, sizeof(*s));
    if (!s) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
    s->st = calloc(t->ndec + 1, sizeof(*s->st));
    if (!s->st) {
        free(s);
        return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
    }
    s->t = t;
    s->skip_special = skip_special;
    *out = s;
    return 0;
}

void llm_tok_stream_free(struct llm_tok_stream *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->t->ndec; i++) {
        tok_buf_free(&s->st[i].acc);
        tok_buf_free(&s->st[i].bytes);
        tok_buf_free(&s->st[i].prev);
    }
    free(s->st);
    tok_buf_free(&s->out);
    free(s);
}

static int stream_push_id(struct llm_tok_stream *s, int32_t id)
{
    const struct llm_tokenizer *t = s->t;
    if (id < 0 || id >= t->nid || !t->piece[id]) return 0; /* unknown ids decode to nothing */
    if (s->skip_special && t->special[id]) return 0;
    return feed(s, 0, t->piece[id], t->piece_len[id], F_START | F_END);
}

static int take_out(struct llm_tok_stream *s, char **out, size_t *len)
{
    char *r = malloc(s->out.n + 1);
    if (!r) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
    if (s->out.n) memcpy(r, s->out.p, s->out.n);
    r[s->out.n] = 0;
    *out = r;
    if (len) *len = s->out.n;
    s->out.n = 0;
    return 0;
}

int llm_tok_stream_push(struct llm_tok_stream *s, int32_t id, char **out, size_t *len)
{
    *out = NULL;
    if (len) *len = 0;
    if (s->done) return llm_err_set(LLM_EINVAL, "tokenizer: push after flush on a stream");
    s->out.n = 0;
    int rc = stream_push_id(s, id);
    if (rc) return rc;
    return take_out(s, out, len);
}

int llm_tok_stream_flush(struct llm_tok_stream *s, char **out, size_t *len)
{
    *out = NULL;
    if (len) *len = 0;
    s->out.n = 0;
    if (!s->done) {
        s->done = 1;
        int rc = flush_from(s, 0);
        if (rc) return rc;
    }
    return take_out(s, out, len);
}

int llm_tok_decode(const struct llm_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                   char **text, size_t *len)
{
    struct llm_tok_stream *s;
    *text = NULL;
    if (len) *len = 0;
    int rc = llm_tok_stream_new(&s, t, skip_special);
    if (rc) return rc;
    for (size_t i = 0; i < n && !rc; i++)
        rc = stream_push_id(s, ids[i]);
    if (!rc) {
        s->done = 1;
        rc = flush_from(s, 0);
    }
    if (!rc) rc = take_out(s, text, len);
    llm_tok_stream_free(s);
    return rc;
}

/* ---- parsing --------------------------------------------------------- */

static int dec_add(struct llm_tokenizer *t, struct tok_dec *d)
{
    struct tok_dec *nv = realloc(t->dec, (t->ndec + 1) * sizeof(*nv));
    if (!nv) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
    t->dec = nv;
    t->dec[t->ndec++] = *d;
    return 0;
}

static int dup_js(const json_t *v, char **out, size_t *len)
{
    size_t n = json_string_length(v);
    *out = malloc(n + 1);
    if (!*out) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
    memcpy(*out, json_string_value(v), n);
    (*out)[n] = 0;
    *len = n;
    return 0;
}

static int dec_char(const json_t *v, uint32_t *cp, const char *what, const char *src)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (!s || !n || (size_t)tok_utf8_dec(s, n, cp) != n)
        return llm_err_set(LLM_EFORMAT, "'%s': decoder %s must be a one-character string", src,
                           what);
    return 0;
}

static int dec_size(const json_t *j, const char *k, size_t *out, const char *src)
{
    json_t *v = json_object_get(j, k);
    if (!v) {
        *out = 0;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1 << 20)
        return llm_err_set(LLM_EFORMAT,
                           "'%s': Strip decoder \"%s\" must be a small "
                           "non-negative integer",
                           src, k);
    *out = (size_t)json_integer_value(v);
    return 0;
}

int tok_dec_parse(struct llm_tokenizer *t, const void *jv, const char *src)
{
    const json_t *j = jv;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!json_is_object(j) || !type)
        return llm_err_set(LLM_EFORMAT, "'%s': decoder without a \"type\"", src);
    if (!strcmp(type, "Sequence")) {
        json_t *a = json_object_get(j, "decoders");
        if (!json_is_array(a))
            return llm_err_set(LLM_EFORMAT,
                               "'%s': Sequence decoder without a \"decoders\" "
                               "array",
                               src);
        for (size_t i = 0; i < json_array_size(a); i++) {
            int rc = tok_dec_parse(t, json_array_get(a, i), src);
            if (rc) return rc;
        }
        return 0;
    }
    struct tok_dec d;
    memset(&d, 0, sizeof(d));
    int rc = 0;
    if (!strcmp(type, "ByteLevel")) {
        d.kind = TOK_DEC_BYTELEVEL;
    } else if (!strcmp(type, "ByteFallback")) {
        d.kind = TOK_DEC_BYTEFALLBACK;
    } else if (!strcmp(type, "Fuse")) {
        d.kind = TOK_DEC_FUSE;
    } else if (!strcmp(type, "Strip")) {
        d.kind = TOK_DEC_STRIP;
        rc = dec_char(json_object_get(j, "content"), &d.ch, "Strip content", src);
        if (!rc) rc = dec_size(j, "start", &d.start, src);
        if (!rc) rc = dec_size(j, "stop", &d.stop, src);
    } else if (!strcmp(type, "Replace")) {
        d.kind = TOK_DEC_REPLACE;
        json_t *c = json_object_get(j, "content"), *p = json_object_get(j, "pattern");
        json_t *ps = json_object_get(p, "String"), *pr = json_object_get(p, "Regex");
        if (!json_is_string(c))
            return llm_err_set(LLM_EFORMAT, "'%s': Replace decoder without \"content\"", src);
        if (json_is_string(ps)) {
            rc = dup_js(ps, &d.pat, &d.pat_len);
        } else if (json_is_string(pr)) {
            rc = tok_re_compile(&d.re, json_string_value(pr), json_string_length(pr), 0, src);
        } else {
            return llm_err_set(LLM_EFORMAT,
                               "'%s': Replace decoder pattern must be "
                               "{\"String\": ...} or {\"Regex\": ...}",
                               src);
        }
        if (!rc) rc = dup_js(c, &d.content, &d.content_len);
    } else if (!strcmp(type, "Metaspace")) {
        d.kind = TOK_DEC_METASPACE;
        rc = dec_char(json_object_get(j, "replacement"), &d.ch, "Metaspace replacement", src);
        const char *ps = json_string_value(json_object_get(j, "prepend_scheme"));
        if (ps) {
            if (!strcmp(ps, "always"))
                d.prepend = TOK_PREPEND_ALWAYS;
            else if (!strcmp(ps, "first"))
                d.prepend = TOK_PREPEND_FIRST;
            else if (!strcmp(ps, "never"))
                d.prepend = TOK_PREPEND_NEVER;
            else
                rc = llm_err_set(LLM_EFORMAT, "'%s': unknown prepend_scheme '%s'", src, ps);
        } else {
            json_t *aps = json_object_get(j, "add_prefix_space");
            d.prepend = !aps || json_is_true(aps) ? TOK_PREPEND_ALWAYS : TOK_PREPEND_NEVER;
        }
    } else if (!strcmp(type, "BPEDecoder")) {
        d.kind = TOK_DEC_BPE;
        json_t *sfx = json_object_get(j, "suffix");
        d.pat = strdup(json_is_string(sfx) ? json_string_value(sfx) : "</w>");
        if (!d.pat) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
        d.pat_len = strlen(d.pat);
    } else if (!strcmp(type, "WordPiece")) {
        d.kind = TOK_DEC_WORDPIECE;
        json_t *pf = json_object_get(j, "prefix");
        d.pat = strdup(json_is_string(pf) ? json_string_value(pf) : "##");
        if (!d.pat) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
        d.pat_len = strlen(d.pat);
        json_t *cl = json_object_get(j, "cleanup");
        d.cleanup = !cl || json_is_true(cl);
    } else {
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': decoder '%s' is not supported", src, type);
    }
    if (!rc) rc = dec_add(t, &d);
    if (rc) tok_dec_free(&d);
    return rc;
}

void tok_dec_free(struct tok_dec *d)
{
    free(d->pat);
    free(d->content);
    tok_re_free(&d->re);
    d->pat = d->content = NULL;
}
