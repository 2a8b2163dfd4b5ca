/* sched_internal.h - pieces of lib/sched shared between its files and its
 * tests (not installed): the paged-KV block allocator and the stop-string
 * scanner.
 *
 * Design choice: the allocator is a plain LIFO free list with a reference
 * count per block.  Blocks of a shared prompt prefix (n > 1 choices) carry
 * one reference per sequence that names them; a block returns to the free
 * list when its last reference goes.  LIFO keeps recently freed (warm)
 * blocks in use and makes block ids a deterministic function of the
 * schedule, which the tests rely on. */
#ifndef LLM_SCHED_INTERNAL_H
#define LLM_SCHED_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

struct llm_kvpool {
    int n_blocks;
    int block_size;
    int32_t *ref;       /* [n_blocks] references; 0 = free */
    int32_t *free_list; /* stack of free block ids */
    int n_free;
};

int llm_kvpool_init(struct llm_kvpool *p, int n_blocks, int block_size);
void llm_kvpool_release(struct llm_kvpool *p);
/* A free block with one reference, or -1 when none is left. */
int32_t llm_kvpool_alloc(struct llm_kvpool *p);
/* One more reference to an allocated block. */
void llm_kvpool_share(struct llm_kvpool *p, int32_t b);
/* Drop a reference; the block is free again when it was the last. */
void llm_kvpool_unref(struct llm_kvpool *p, int32_t b);
static inline int llm_kvpool_used(const struct llm_kvpool *p)
{
    return p->n_blocks - p->n_free;
}
/* 0 when the free list and the counts agree (every free block has count 0
 * and appears once, every other block has a positive count). */
int llm_kvpool_check(const struct llm_kvpool *p);

/* Earliest match of any stop string in text[from..len): returns its offset
 * and sets *which, or returns -1.  On equal offsets the first listed stop
 * string wins. */
long llm_stop_scan(const char *text, size_t len, size_t from, char *const *stop,
                   const size_t *stop_len, int n_stop, int *which);

#endif
