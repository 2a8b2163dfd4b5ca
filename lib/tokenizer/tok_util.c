/* tok_util.c - small building blocks of the tokenizer: growable buffers,
 * UTF-8 checking with the "maximal subpart" replacement rule, a string hash
 * map, PCRE2 wrappers and the byte-level alphabet.
 *
 * Design: everything here is allocation-checked and length-based (token
 * strings may contain NUL), and the regex wrapper keeps per-call match state
 * separate from the compiled pattern so that one tokenizer can be used from
 * several threads.
 */
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "tok_internal.h"

int tok_buf_put(struct tok_buf *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc < b->n + n + 1) {
            if (nc > SIZE_MAX / 2) return llm_err_set(LLM_ENOMEM, "tokenizer: buffer overflow");
            nc *= 2;
        }
        char *np = realloc(b->p, nc);
        if (!np) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory (%zu bytes)", nc);
        b->p = np;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

int tok_buf_putc(struct tok_buf *b, char c)
{
    return tok_buf_put(b, &c, 1);
}

int tok_buf_put_cp(struct tok_buf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return tok_buf_put(b, u, n);
}

void tok_buf_free(struct tok_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

int tok_utf8_check(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return -1;
    }
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n) return 0;
        unsigned d = s[k];
        if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) return -k;
    }
    return need + 1;
}

int tok_utf8_dec(const char *s, size_t n, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80 || n < 2) {
        *cp = u[0];
        return 1;
    }
    if (u[0] < 0xE0) {
        *cp = ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
        return 2;
    }
    if (u[0] < 0xF0 || n < 4) {
        if (n < 3) {
            *cp = 0xFFFD;
            return (int)n;
        }
        *cp = ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
        return 3;
    }
    *cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
          ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
    return 4;
}

int tok_utf8_lossy(struct tok_buf *out, const char *src, size_t n)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t i = 0, run = 0; /* run: start of the pending valid stretch */
    int rc;
    while (i < n) {
        int k = tok_utf8_check(s + i, n - i);
        if (k > 0) {
            i += (size_t)k;
            continue;
        }
        if ((rc = tok_buf_put(out, src + run, i - run))) return rc;
        if ((rc = tok_buf_put(out, "\xEF\xBF\xBD", 3))) return rc;
        i += k == 0 ? n - i : (size_t)-k;
        run = i;
    }
    return tok_buf_put(out, src + run, i - run);
}

int tok_is_whitespace(uint32_t cp)
{
    if (cp >= 0x09 && cp <= 0x0D) return 1;
    switch (cp) {
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
        return 1;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

/* ---- hash map -------------------------------------------------------- */

uint64_t tok_hash(const void *s, size_t n)
{
    const unsigned char *p = s;
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

static int smap_grow(struct tok_smap *m)
{
    size_t nc = m->cap ? m->cap * 2 : 1024;
    uint32_t *ns = calloc(nc, sizeof(*ns));
    if (!ns) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory (vocab map)");
    for (size_t e = 0; e < m->n; e++) {
        size_t h = tok_hash(m->key[e], m->klen[e]) & (nc - 1);
        while (ns[h])
            h = (h + 1) & (nc - 1);
        ns[h] = (uint32_t)(e + 1);
    }
    free(m->slot);
    m->slot = ns;
    m->cap = nc;
    return 0;
}

int tok_smap_put(struct tok_smap *m, const char *k, size_t kn, int32_t v, int overwrite)
{
    int rc;
    if ((m->n + 1) * 2 > m->cap && (rc = smap_grow(m))) return rc;
    size_t h = tok_hash(k, kn) & (m->cap - 1);
    while (m->slot[h]) {
        size_t e = m->slot[h] - 1;
        if (m->klen[e] == kn && memcmp(m->key[e], k, kn) == 0) {
            if (overwrite) m->val[e] = v;
            return 0;
        }
        h = (h + 1) & (m->cap - 1);
    }
    if (m->n == m->ncap) {
        size_t nc = m->ncap ? m->ncap * 2 : 1024;
        const char **nk = realloc(m->key, nc * sizeof(*nk));
        if (!nk) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory (vocab map)");
        m->key = nk;
        size_t *nl = realloc(m->klen, nc * sizeof(*nl));
        if (!nl) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory (vocab map)");
        m->klen = nl;
        int32_t *nv = realloc(m->val, nc * sizeof(*nv));
        if (!nv) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory (vocab map)");
        m->val = nv;
        m->ncap = nc;
    }
    m->key[m->n] = k;
    m->klen[m->n] = kn;
    m->val[m->n] = v;
    m->slot[h] = (uint32_t)(++m->n);
    return 0;
}

int32_t tok_smap_get(const struct tok_smap *m, const char *k, size_t kn)
{
    if (!m->cap) return -1;
    size_t h = tok_hash(k, kn) & (m->cap - 1);
    while (m->slot[h]) {
        size_t e = m->slot[h] - 1;
        if (m->klen[e] == kn && memcmp(m->key[e], k, kn) == 0) return m->val[e];
        h = (h + 1) & (m->cap - 1);
    }
    return -1;
}

void tok_smap_free(struct tok_smap *m)
{
    free(m->slot);
    free(m->key);
    free(m->klen);
    free(m->val);
    memset(m, 0, sizeof(*m));
}

/* ---- regex ----------------------------------------------------------- */

int tok_re_compile(struct tok_re *re, const char *pat, size_t n, int literal, const char *src)
{
    int err;
    PCRE2_SIZE off;
    uint32_t opt = PCRE2_UTF | PCRE2_NO_UTF_CHECK;
    opt |= literal ? PCRE2_LITERAL : PCRE2_UCP;
    re->code = pcre2_compile((PCRE2_SPTR)pat, n, opt, &err, &off, NULL);
    if (!re->code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof(msg));
        return llm_err_set(LLM_EFORMAT, "'%s': bad regex '%.*s' at offset %zu: %s", src,
                           (int)(n > 200 ? 200 : n), pat, (size_t)off, (char *)msg);
    }
    re->jit = pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0;
    return 0;
}

void tok_re_free(struct tok_re *re)
{
    if (re->code) pcre2_code_free(re->code);
    re->code = NULL;
}

int tok_rematch_init(struct tok_rematch *m, const struct tok_re *re)
{
    memset(m, 0, sizeof(*m));
    m->md = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (!m->md) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory (regex)");
    if (re->jit) {
        m->mc = pcre2_match_context_create(NULL);
        m->js = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, NULL);
        if (!m->mc || !m->js) {
            tok_rematch_free(m);
            return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory (regex stack)");
        }
        pcre2_jit_stack_assign(m->mc, NULL, m->js);
    }
    return 0;
}

void tok_rematch_free(struct tok_rematch *m)
{
    if (m->md) pcre2_match_data_free(m->md);
    if (m->mc) pcre2_match_context_free(m->mc);
    if (m->js) pcre2_jit_stack_free(m->js);
    memset(m, 0, sizeof(*m));
}

int tok_re_next(const struct tok_re *re, struct tok_rematch *m, const char *s, size_t n, size_t pos,
                size_t *ms, size_t *me)
{
    int rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, m->md, m->mc);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_MATCHLIMIT ||
        rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT) {
        /* retry with the interpreter, whose heap-based backtracking has no
         * small stack limit */
        rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, m->md,
                         NULL);
    }
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(rc, msg, sizeof(msg));
        return llm_err_set(LLM_ERANGE, "tokenizer: regex match failed: %s", (char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
    *ms = ov[0];
    *me = ov[1];
    if (*me < *ms) *me = *ms; /* \K tricks; not used by tokenizers */
    return 1;
}

/* ---- pieces ---------------------------------------------------------- */

int tok_pieces_add(struct tok_pieces *p, const char *s, size_t n, int32_t id, int first)
{
    int rc;
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 16;
        struct tok_piece *nv = realloc(p->v, nc * sizeof(*nv));
        if (!nv) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory (pieces)");
        p->v = nv;
        p->cap = nc;
    }
    size_t off = p->text.n;
    if ((rc = tok_buf_put(&p->text, s, n))) return rc;
    p->v[p->n++] = (struct tok_piece){off, n, id, first};
    return 0;
}

void tok_pieces_free(struct tok_pieces *p)
{
    tok_buf_free(&p->text);
    free(p->v);
    p->v = NULL;
    p->n = p->cap = 0;
}

/* ---- byte-level alphabet (GPT-2's bytes_to_unicode) ------------------ */

static int byte_printable(unsigned b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
}

static uint16_t b2cp[256];
static int16_t cp2b[256 + 68];
static pthread_once_t bl_once = PTHREAD_ONCE_INIT;

static void bl_init(void)
{
    uint32_t k = 0;
    for (unsigned i = 0; i < 256 + 68; i++)
        cp2b[i] = -1;
    for (unsigned i = 0; i < 256; i++) {
        b2cp[i] = (uint16_t)(byte_printable(i) ? i : 256 + k++);
        cp2b[b2cp[i]] = (int16_t)i;
    }
}

uint32_t tok_byte_to_cp(uint8_t b)
{
    pthread_once(&bl_once, bl_init);
    return b2cp[b];
}

int tok_cp_to_byte(uint32_t cp)
{
    pthread_once(&bl_once, bl_init);
    return cp < 256 + 68 ? cp2b[cp] : -1;
}
