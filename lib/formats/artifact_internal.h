/* artifact_internal.h - the byte layout of the llm artifact, shared by its
 * reader (artifact_read.c) and its writer (artifact_write.c); not
 * installed.  formats/artifact.md is the specification.
 *
 * Design choice: the magic numbers, fixed lengths and limits, the
 * little-endian helpers and the set of tensor names (duplicate checks,
 * lookup by name) are written once here, so the two sides cannot drift
 * apart.  Everything is static inline: the fuzz target compiles the reader
 * into itself and gets these with it.
 */
#ifndef LLM_ARTIFACT_INTERNAL_H
#define LLM_ARTIFACT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "llm/dtype.h"
#include "llm/err.h"

/* ---- layout constants (formats/artifact.md) ------------------------------ */

static const uint8_t HEAD_MAGIC[8] = {0x89, 'L', 'L', 'M', '\r', '\n', 0x1a, '\n'};
static const uint8_t FOOT_MAGIC[8] = {0x89, 'L', 'L', 'M', 'E', 'N', 'D', '\n'};
static const uint8_t REC_MAGIC[4] = {'T', 'N', 'S', 'R'};
static const uint8_t END_MAGIC[4] = {'T', 'E', 'N', 'D'};

#define HEAD_LEN 64u
#define HEAD_MAX 4096u
#define FOOT_LEN 64u
#define END_LEN 48u
#define REC_FIXED 40u
#define NAME_MAX_LEN 1024u
#define REC_MAX (REC_FIXED + 8u * LLM_MAX_DIMS + NAME_MAX_LEN + 8u + 8u)
#define JSON_MAX ((uint64_t)1 << 30)
#define ALIGN 64u
#define ZSTD_MAX_RATIO 32768u
#define COMP_NONE 0
#define COMP_ZSTD 1

static inline uint64_t align64(uint64_t x)
{
    return (x + (ALIGN - 1)) & ~(uint64_t)(ALIGN - 1);
}

static inline uint64_t align8(uint64_t x)
{
    return (x + 7) & ~(uint64_t)7;
}

static inline uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32);
}

static inline void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline void wr64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static inline int name_ok(const uint8_t *p, size_t n)
{
    if (n == 0 || n > NAME_MAX_LEN) return 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x21 || p[i] > 0x7e) return 0;
    return 1;
}

/* Record header length for a name and rank: fixed part, shape, name, pad to
 * 8, checksum. */
static inline uint32_t rec_header_len(unsigned ndim, unsigned name_len)
{
    return (uint32_t)(align8(REC_FIXED + 8u * ndim + name_len) + 8u);
}

/* ---- a set of names (duplicate checks, lookup by name) ------------------- */

struct nameset {
    size_t *slot; /* index + 1; 0 = empty */
    size_t cap;
    size_t n;
};

static inline size_t name_hash(const char *s)
{
    return (size_t)XXH3_64bits(s, strlen(s));
}

/* Index of name among names[] through the set, or (size_t)-1. */
static inline size_t nameset_find(const struct nameset *s, char *const *names, const char *name)
{
    if (!s->cap) return (size_t)-1;
    for (size_t h = name_hash(name) & (s->cap - 1);; h = (h + 1) & (s->cap - 1)) {
        if (!s->slot[h]) return (size_t)-1;
        if (!strcmp(names[s->slot[h] - 1], name)) return s->slot[h] - 1;
    }
}

static inline int nameset_add(struct nameset *s, char *const *names, size_t idx)
{
    if ((s->n + 1) * 2 > s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        size_t *ns = calloc(ncap, sizeof(*ns));
        if (!ns) return LLM_ENOMEM;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->slot[i]) continue;
            size_t h = name_hash(names[s->slot[i] - 1]) & (ncap - 1);
            while (ns[h]) h = (h + 1) & (ncap - 1);
            ns[h] = s->slot[i];
        }
        free(s->slot);
        s->slot = ns;
        s->cap = ncap;
    }
    size_t h = name_hash(names[idx]) & (s->cap - 1);
    while (s->slot[h]) h = (h + 1) & (s->cap - 1);
    s->slot[h] = idx + 1;
    s->n++;
    return 0;
}

static inline void nameset_free(struct nameset *s)
{
    free(s->slot);
    memset(s, 0, sizeof(*s));
}

#endif
