/* tok_bpe.c - the BPE model: one pre-tokenized word -> token ids.
 *
 * Design: the word starts as one symbol per character (with the
 * continuing-subword prefix and end-of-word suffix where configured, byte
 * fallback to <0xXX> tokens, and unknown characters fused into one unk as
 * `tokenizers` does); symbols form a doubly linked list in arrays, and a
 * binary min-heap of candidate merges ordered by (rank, position) drives the
 * merging.  Heap entries go stale when a neighbour changes and are checked
 * on pop, so each merge costs O(log n).  Merge ranks live in an
 * open-addressing table keyed by the (left id, right id) pair.  Words of up
 * to CACHE_WORD_MAX bytes are cached (string -> ids) behind a mutex, since
 * encode may run on several threads over one tokenizer.
 */
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "tok_internal.h"

#define CACHE_WORD_MAX 64
#define CACHE_MAX_ENTRIES 65536

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* the caller sizes t->merges (power of two, at least twice the merges) */
int tok_merge_put(struct llm_tokenizer *t, int32_t a, int32_t b, uint32_t rank, int32_t id)
{
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t mask = t->merges_cap - 1, h = mix64(key) & mask;
    while (t->merges[h].key && t->merges[h].key != key)
        h = (h + 1) & mask;
    /* a repeated pair takes the later rank, as a hash map collect would */
    t->merges[h] = (struct tok_merge_ent){key, rank, id};
    return 0;
}

static const struct tok_merge_ent *merge_get(const struct llm_tokenizer *t, int32_t a, int32_t b)
{
    if (!t->merges_cap) return NULL;
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t mask = t->merges_cap - 1, h = mix64(key) & mask;
    while (t->merges[h].key) {
        if (t->merges[h].key == key) return &t->merges[h];
        h = (h + 1) & mask;
    }
    return NULL;
}

struct sym {
    int32_t id;
    int32_t prev, next;
    int alive;
};

struct cand {
    uint32_t rank;
    uint32_t pos;
    int32_t id;
};

static int cand_less(const struct cand *x, const struct cand *y)
{
    return x->rank != y->rank ? x->rank < y->rank : x->pos < y->pos;
}

static void heap_push(struct cand *h, size_t *n, struct cand c)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static struct cand heap_pop(struct cand *h, size_t *n)
{
    struct cand top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct cand *best = &last;
        if (l < *n && cand_less(&h[l], best)) {
            m = l;
            best = &h[l];
        }
        if (r < *n && cand_less(&h[r], best)) m = r;
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*n) h[i] = last;
    return top;
}

static int push_id(int32_t **ids, size_t *n, size_t *cap, int32_t id)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        int32_t *nv = realloc(*ids, nc * sizeof(*nv));
        if (!nv) return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory (ids)");
        *ids = nv;
        *cap = nc;
    }
    (*ids)[(*n)++] = id;
    return 0;
}

static int cache_lookup(const struct llm_tokenizer *t, const char *w, size_t n, int32_t **ids,
                        size_t *nids, size_t *cap, int *hit)
{
    struct llm_tokenizer *mt = (struct llm_tokenizer *)t; /* the cache is the mutable part */
    *hit = 0;
    int rc = 0;
    pthread_mutex_lock(&mt->cache_lock);
    if (mt->cache_cap) {
        size_t mask = mt->cache_cap - 1, h = tok_hash(w, n) & mask;
        while (mt->cache[h].word) {
            struct tok_cache_ent *e = &mt->cache[h];
            if (e->len == n && memcmp(e->word, w, n) == 0) {
                for (size_t i = 0; i < e->nids && !rc; i++)
                    rc = push_id(ids, nids, cap, e->ids[i]);
                *hit = 1;
                break;
            }
            h = (h + 1) & mask;
        }
    }
    pthread_mutex_unlock(&mt->cache_lock);
    return rc;
}

static void cache_store(const struct llm_tokenizer *t, const char *w, size_t n, const int32_t *ids,
                        size_t nids)
{
    struct llm_tokenizer *mt = (struct llm_tokenizer *)t;
    pthread_mutex_lock(&mt->cache_lock);
    if (!mt->cache_cap) {
        mt->cache = calloc(2 * CACHE_MAX_ENTRIES, sizeof(*mt->cache));
        if (mt->cache) mt->cache_cap = 2 * CACHE_MAX_ENTRIES;
    }
    if (mt->cache_cap && mt->cache_n < CACHE_MAX_ENTRIES) {
        size_t mask = mt->cache_cap - 1, h = tok_hash(w, n) & mask;
        while (mt->cache[h].word) {
            if (mt->cache[h].len == n && memcmp(mt->cache[h].word, w, n) == 0) goto out;
            h = (h + 1) & mask;
        }
        char *cw = malloc(n + 1);
        int32_t *ci = malloc((nids ? nids : 1) * sizeof(*ci));
        if (!cw || !ci) {
            free(cw);
            free(ci);
            goto out;
        }
        memcpy(cw, w, n);
        cw[n] = 0;
        if (nids) memcpy(ci, ids, nids * sizeof(*ci));
        mt->cache[h] = (struct tok_cache_ent){cw, n, ci, nids};
        mt->cache_n++;
    }
out:
    pthread_mutex_unlock(&mt->cache_lock);
}

/* vocab lookup of prefix + s + suffix */
static int32_t lookup_affixed(const struct llm_tokenizer *t, const char *s, size_t n, int prefix,
                              int suffix, struct tok_buf *tmp)
{
    if (!prefix && !suffix) return tok_smap_get(&t->vocab, s, n);
    tmp->n = 0;
    if (prefix && tok_buf_put(tmp, t->cont_prefix, t->cont_prefix_len)) return -2;
    if (tok_buf_put(tmp, s, n)) return -2;
    if (suffix && tok_buf_put(tmp, t->eow_suffix, t->eow_suffix_len)) return -2;
    return tok_smap_get(&t->vocab, tmp->p, tmp->n);
}

int tok_bpe_word(const struct llm_tokenizer *t, const char *w, size_t n, int32_t **ids,
                 size_t *nids, size_t *cap)
{
    if (n == 0) return 0;
    if (t->ignore_merges) {
        int32_t id = tok_smap_get(&t->vocab, w, n);
        if (id >= 0) return push_id(ids, nids, cap, id);
    }
    int hit, rc;
    if (n <= CACHE_WORD_MAX) {
        if ((rc = cache_lookup(t, w, n, ids, nids, cap, &hit))) return rc;
        if (hit) return 0;
    }
    struct sym *sy = malloc((n + 1) * sizeof(*sy));
    struct cand *heap = malloc((2 * n + 2) * sizeof(*heap));
    struct tok_buf tmp = {0};
    if (!sy || !heap) {
        free(sy);
        free(heap);
        return llm_err_set(LLM_ENOMEM, "tokenizer: out of memory (bpe word of %zu bytes)", n);
    }
    size_t ns = 0;
    int32_t unk = -1; /* pending (fused) unknown */
    rc = 0;
    for (size_t i = 0; i < n && !rc;) {
        uint32_t cp;
        size_t k = (size_t)tok_utf8_dec(w + i, n - i, &cp);
        int is_first = i == 0, is_last = i + k >= n;
        int32_t id = lookup_affixed(t, w + i, k, !is_first && t->cont_prefix,
                                    is_last && t->eow_suffix, &tmp);
        if (id == -2) {
            rc = llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
            break;
        }
        if (id >= 0) {
            if (unk >= 0) {
                sy[ns++] = (struct sym){unk, 0, 0, 1};
                unk = -1;
            }
            sy[ns++] = (struct sym){id, 0, 0, 1};
            i += k;
            continue;
        }
        if (t->byte_fallback) {
            /* the bytes of the (affixed) character, all or nothing */
            const char *bs = w + i;
            size_t bn = k;
            if (t->cont_prefix || t->eow_suffix) {
                tmp.n = 0;
                if (!is_first && t->cont_prefix)
                    rc = tok_buf_put(&tmp, t->cont_prefix, t->cont_prefix_len);
                if (!rc) rc = tok_buf_put(&tmp, w + i, k);
                if (!rc && is_last && t->eow_suffix)
                    rc = tok_buf_put(&tmp, t->eow_suffix, t->eow_suffix_len);
                if (rc) break;
                bs = tmp.p;
                bn = tmp.n;
            }
            size_t b;
            for (b = 0; b < bn; b++)
                if (t->byte_id[(uint8_t)bs[b]] < 0) break;
            if (b == bn) {
                struct sym *nsy = sy;
                if (bn > k) { /* affixes can make more symbols than bytes */
                    nsy = realloc(sy, (ns + bn + (n - i) + 1) * sizeof(*sy));
                    struct cand *nh =
                        nsy ? realloc(heap, 2 * (ns + bn + (n - i) + 1) * sizeof(*heap)) : NULL;
                    if (!nsy || !nh) {
                        if (nsy) sy = nsy;
                        rc = llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
                        break;
                    }
                    sy = nsy;
                    heap = nh;
                }
                for (b = 0; b < bn; b++)
                    sy[ns++] = (struct sym){t->byte_id[(uint8_t)bs[b]], 0, 0, 1};
                i += k;
                continue;
            }
        }
        if (t->unk_id >= 0) {
            if (unk >= 0 && !t->fuse_unk) sy[ns++] = (struct sym){unk, 0, 0, 1};
            unk = t->unk_id;
        }
        i += k;
    }
    if (!rc && unk >= 0) sy[ns++] = (struct sym){unk, 0, 0, 1};
    tok_buf_free(&tmp);
    if (rc) {
        free(sy);
        free(heap);
        return rc;
    }
    for (size_t i = 0; i < ns; i++) {
        sy[i].prev = (int32_t)i - 1;
        sy[i].next = i + 1 < ns ? (int32_t)i + 1 : -1;
    }
    size_t nh = 0;
    for (size_t i = 0; i + 1 < ns; i++) {
        const struct tok_merge_ent *m = merge_get(t, sy[i].id, sy[i + 1].id);
        if (m) heap_push(heap, &nh, (struct cand){m->rank, (uint32_t)i, m->id});
    }
    size_t heap_cap = 2 * n + 2 > 2 * ns ? 2 * n + 2 : 2 * ns;
    while (nh) {
        struct cand c = heap_pop(heap, &nh);
        struct sym *s = &sy[c.pos];
        if (!s->alive || s->next < 0) continue;
        struct sym *r = &sy[s->next];
        const struct tok_merge_ent *m = merge_get(t, s->id, r->id);
        if (!m || m->id != c.id) continue; /* stale */
        s->id = c.id;
        r->alive = 0;
        s->next = r->next;
        if (r->next >= 0) sy[r->next].prev = (int32_t)c.pos;
        if (nh + 2 > heap_cap) {
            struct cand *nhp = realloc(heap, 2 * heap_cap * sizeof(*heap));
            if (!nhp) {
                rc = llm_err_set(LLM_ENOMEM, "tokenizer: out of memory");
                break;
            }
            heap = nhp;
            heap_cap *= 2;
        }
        if (s->prev >= 0) {
            m = merge_get(t, sy[s->prev].id, s->id);
            if (m) heap_push(heap, &nh, (struct cand){m->rank, (uint32_t)s->prev, m->id});
        }
        if (s->next >= 0) {
            m = merge_get(t, s->id, sy[s->next].id);
            if (m) heap_push(heap, &nh, (struct cand){m->rank, c.pos, m->id});
        }
    }
    size_t start = *nids;
    for (size_t i = 0; i < ns && !rc; i++)
        if (sy[i].alive) rc = push_id(ids, nids, cap, sy[i].id);
    if (!rc && n <= CACHE_WORD_MAX && *nids > start)
        cache_store(t, w, n, *ids + start, *nids - start);
    free(sy);
    free(heap);
    return rc;
}
