/* tok_internal.h - shared structures of the tokenizer module (not public).
 *
 * The tokenizer is a pipeline of tagged-union components, each parsed once
 * from tokenizer.json: normalizers (string -> string), pre-tokenizers (list
 * of pieces -> list of pieces), the BPE model (piece -> ids), the
 * post-processor (ids -> ids) and decoders (streaming transducers over token
 * text, see tok_decode.c).  Text between stages is always valid UTF-8: the
 * encoder replaces invalid input first.
 */
#ifndef LLM_TOK_INTERNAL_H
#define LLM_TOK_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* ---- growable byte buffer -------------------------------------------- */
struct tok_buf {
    char *p;
    size_t n, cap;
};
int tok_buf_put(struct tok_buf *b, const void *s, size_t n);
int tok_buf_putc(struct tok_buf *b, char c);
int tok_buf_put_cp(struct tok_buf *b, uint32_t cp); /* UTF-8 encode a code point */
void tok_buf_free(struct tok_buf *b);

/* ---- UTF-8 helpers --------------------------------------------------- */
/* Length of the valid UTF-8 sequence at s (1..4), or -k when the first k
 * bytes are a maximal invalid subpart, or 0 when s[0..n) is a valid but
 * incomplete prefix (only possible when the sequence runs past n). */
int tok_utf8_check(const unsigned char *s, size_t n);
/* Decode one code point from valid UTF-8; returns its length. */
int tok_utf8_dec(const char *s, size_t n, uint32_t *cp);
/* Append src to out, replacing each maximal invalid subpart with U+FFFD
 * (what Rust's from_utf8_lossy and Python's errors="replace" do). */
int tok_utf8_lossy(struct tok_buf *out, const char *src, size_t n);
int tok_is_whitespace(uint32_t cp); /* Rust char::is_whitespace */

/* ---- string -> int32 hash map (open addressing, keys not owned) ------- */
struct tok_smap {
    uint32_t *slot; /* entry index + 1, 0 = empty */
    size_t cap;     /* power of two */
    const char **key;
    size_t *klen;
    int32_t *val;
    size_t n, ncap;
};
int tok_smap_put(struct tok_smap *m, const char *k, size_t kn, int32_t v, int overwrite);
int32_t tok_smap_get(const struct tok_smap *m, const char *k, size_t kn); /* -1 if absent */
void tok_smap_free(struct tok_smap *m);
uint64_t tok_hash(const void *s, size_t n);

/* ---- regex ----------------------------------------------------------- */
struct tok_re {
    pcre2_code *code;
    int jit;
};
int tok_re_compile(struct tok_re *re, const char *pat, size_t n, int literal, const char *src);
void tok_re_free(struct tok_re *re);
/* Per-call match state (match data and JIT stack are not shareable). */
struct tok_rematch {
    pcre2_match_data *md;
    pcre2_match_context *mc;
    pcre2_jit_stack *js;
};
int tok_rematch_init(struct tok_rematch *m, const struct tok_re *re);
void tok_rematch_free(struct tok_rematch *m);
/* Next match at or after *pos in s[0..n): 1 with [*ms, *me), 0 when none,
 * negative llm_err on a matching failure.  Empty matches are returned; the
 * caller steps over them. */
int tok_re_next(const struct tok_re *re, struct tok_rematch *m, const char *s, size_t n, size_t pos,
                size_t *ms, size_t *me);

/* ---- normalizers ----------------------------------------------------- */
enum tok_norm_kind {
    TOK_NORM_NFC,
    TOK_NORM_NFD,
    TOK_NORM_NFKC,
    TOK_NORM_NFKD,
    TOK_NORM_LOWERCASE,
    TOK_NORM_PREPEND,
    TOK_NORM_REPLACE,
    TOK_NORM_STRIP,
    TOK_NORM_STRIP_ACCENTS,
    TOK_NORM_BERT,
    TOK_NORM_SEQUENCE,
    TOK_NORM_COUNT
};
struct tok_norm {
    enum tok_norm_kind kind;
    char *str; /* Prepend text, Replace content */
    size_t str_len;
    struct tok_re re;                                  /* Replace pattern */
    int left, right;                                   /* Strip */
    int clean_text, chinese, strip_accents, lowercase; /* Bert */
    struct tok_norm *sub;
    size_t nsub;
};

/* ---- pre-tokenizers -------------------------------------------------- */
enum tok_split_behavior {
    TOK_SPLIT_REMOVED,
    TOK_SPLIT_ISOLATED,
    TOK_SPLIT_MERGED_PREV,
    TOK_SPLIT_MERGED_NEXT,
    TOK_SPLIT_CONTIGUOUS,
    TOK_SPLIT_COUNT
};
enum tok_pre_kind {
    TOK_PRE_BYTELEVEL,
    TOK_PRE_SPLIT,
    TOK_PRE_METASPACE,
    TOK_PRE_DIGITS,
    TOK_PRE_PUNCTUATION,
    TOK_PRE_WHITESPACE,
    TOK_PRE_WHITESPACE_SPLIT,
    TOK_PRE_BERT,
    TOK_PRE_CHAR_DELIMITER,
    TOK_PRE_SEQUENCE,
    TOK_PRE_COUNT
};
enum tok_prepend { TOK_PREPEND_ALWAYS, TOK_PREPEND_FIRST, TOK_PREPEND_NEVER };
struct tok_pre {
    enum tok_pre_kind kind;
    int add_prefix_space, use_regex; /* ByteLevel */
    struct tok_re re;                /* ByteLevel (GPT-2), Split, Whitespace */
    enum tok_split_behavior behavior;
    int invert;
    uint32_t ch; /* Metaspace replacement, CharDelimiterSplit delimiter */
    enum tok_prepend prepend;
    int split;             /* Metaspace */
    int individual_digits; /* Digits */
    struct tok_pre *sub;
    size_t nsub;
};

/* A list of text pieces in one buffer; a piece with id >= 0 is an added
 * token already decided and is passed through untouched. */
struct tok_piece {
    size_t off, len;
    int32_t id;
    int first; /* starts at original offset 0 (Metaspace prepend_scheme "first") */
};
struct tok_pieces {
    struct tok_buf text;
    struct tok_piece *v;
    size_t n, cap;
};
int tok_pieces_add(struct tok_pieces *p, const char *s, size_t n, int32_t id, int first);
void tok_pieces_free(struct tok_pieces *p);

/* ---- decoders -------------------------------------------------------- */
enum tok_dec_kind {
    TOK_DEC_BYTELEVEL,
    TOK_DEC_BYTEFALLBACK,
    TOK_DEC_FUSE,
    TOK_DEC_STRIP,
    TOK_DEC_REPLACE,
    TOK_DEC_METASPACE,
    TOK_DEC_BPE,
    TOK_DEC_WORDPIECE,
    TOK_DEC_JOIN, /* no decoder: tokens joined with " " */
    TOK_DEC_COUNT
};
struct tok_dec {
    enum tok_dec_kind kind;
    char *pat; /* Replace literal pattern; BPE suffix; WordPiece prefix */
    size_t pat_len;
    char *content; /* Replace content */
    size_t content_len;
    struct tok_re re; /* Replace regex (re.code NULL when literal) */
    uint32_t ch;      /* Strip content, Metaspace replacement */
    size_t start, stop;
    enum tok_prepend prepend;
    int cleanup;
};

/* ---- post-processor -------------------------------------------------- */
struct tok_post {
    /* resolved single-sequence template: ids before and after $A */
    int32_t *pre, *post;
    size_t npre, npost;
    int active; /* 0: adds nothing */
};

/* ---- the tokenizer --------------------------------------------------- */
struct tok_added {
    char *content;
    size_t len;
    int32_t id;
    int special, single_word, lstrip, rstrip, normalized;
    char *norm; /* content after the normalizer (normalized tokens) */
    size_t norm_len;
};

/* Leftmost-longest literal matcher over a set of added tokens. */
struct tok_matcher {
    size_t *idx; /* indices into tok->added, grouped by first byte, longest first */
    size_t first[257];
    int normalized; /* match the normalized form */
};

struct tok_merge_ent {
    uint64_t key; /* (a << 32) | b, +1 so 0 means empty */
    uint32_t rank;
    int32_t id;
};

struct tok_cache_ent {
    char *word;
    size_t len;
    int32_t *ids;
    size_t nids;
};

struct llm_tokenizer {
    char *src;
    /* model */
    char **piece; /* by id, NUL-terminated (may contain NULs; see piece_len) */
    size_t *piece_len;
    uint8_t *special;   /* by id */
    int32_t nid;        /* ids are 0..nid-1 */
    char **vocab_extra; /* vocab strings of ids named twice */
    size_t nextra;
    struct tok_smap vocab;    /* model vocab */
    struct tok_smap addedmap; /* added token content -> id */
    struct tok_merge_ent *merges;
    size_t merges_cap;
    int byte_fallback, fuse_unk, ignore_merges;
    int32_t unk_id;
    char *cont_prefix, *eow_suffix;
    size_t cont_prefix_len, eow_suffix_len;
    int32_t byte_id[256]; /* <0xXX> tokens, -1 if absent */

    struct tok_norm *norm; /* NULL: none */
    struct tok_pre *pre;   /* NULL: none */
    struct tok_dec *dec;   /* flattened chain */
    size_t ndec;
    struct tok_post post;

    struct tok_added *added;
    size_t nadded;
    struct tok_matcher m_raw, m_norm;

    int32_t bos, eos;

    pthread_mutex_t cache_lock;
    struct tok_cache_ent *cache;
    size_t cache_cap, cache_n;
};

/* tok_text.c */
int tok_normalize(const struct tok_norm *nm, const char *s, size_t n, struct tok_buf *out);
int tok_pretokenize(const struct tok_pre *pre, struct tok_pieces *in);
void tok_norm_free(struct tok_norm *nm);
void tok_pre_free(struct tok_pre *pre);
int tok_norm_parse(struct tok_norm *nm, const void *json, const char *src);
int tok_pre_parse(struct tok_pre *pre, const void *json, const char *src);

/* tok_bpe.c */
int tok_bpe_word(const struct llm_tokenizer *t, const char *w, size_t n, int32_t **ids,
                 size_t *nids, size_t *cap);
int tok_merge_put(struct llm_tokenizer *t, int32_t a, int32_t b, uint32_t rank, int32_t id);

/* tok_decode.c */
int tok_dec_parse(struct llm_tokenizer *t, const void *json, const char *src);
void tok_dec_free(struct tok_dec *d);

/* byte-level alphabet: byte -> code point, code point -> byte (-1 if none) */
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp);

#endif
