/* kvpool.c - the paged-KV block allocator: a LIFO free list plus one
 * reference count per block (shared prompt prefixes of n > 1 requests).
 * The backend never allocates: it only reads and writes the blocks a batch
 * names, so this table is the whole truth about KV memory. */
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "sched_internal.h"

int llm_kvpool_init(struct llm_kvpool *p, int n_blocks, int block_size)
{
    memset(p, 0, sizeof(*p));
    if (n_blocks <= 0 || block_size <= 0)
        return llm_err_set(LLM_EINVAL, "kv pool: %d blocks of %d tokens", n_blocks, block_size);
    p->ref = calloc((size_t)n_blocks, sizeof(*p->ref));
    p->free_list = malloc((size_t)n_blocks * sizeof(*p->free_list));
    if (!p->ref || !p->free_list) {
        llm_kvpool_release(p);
        return llm_err_set(LLM_ENOMEM, "kv pool of %d blocks: out of memory", n_blocks);
    }
    p->n_blocks = n_blocks;
    p->block_size = block_size;
    /* stack top is the end: hand out 0, 1, 2, ... first */
    for (int i = 0; i < n_blocks; i++)
        p->free_list[i] = n_blocks - 1 - i;
    p->n_free = n_blocks;
    return 0;
}

void llm_kvpool_release(struct llm_kvpool *p)
{
    free(p->ref);
    free(p->free_list);
    memset(p, 0, sizeof(*p));
}

int32_t llm_kvpool_alloc(struct llm_kvpool *p)
{
    if (p->n_free == 0) return -1;
    int32_t b = p->free_list[--p->n_free];
    p->ref[b] = 1;
    return b;
}

void llm_kvpool_share(struct llm_kvpool *p, int32_t b)
{
    p->ref[b]++;
}

void llm_kvpool_unref(struct llm_kvpool *p, int32_t b)
{
    if (--p->ref[b] == 0) p->free_list[p->n_free++] = b;
}

int llm_kvpool_check(const struct llm_kvpool *p)
{
    unsigned char *seen = calloc((size_t)p->n_blocks, 1);
    if (!seen) return llm_err_set(LLM_ENOMEM, "kv pool check: out of memory");
    int bad = 0;
    for (int i = 0; i < p->n_free && !bad; i++) {
        int32_t b = p->free_list[i];
        if (b < 0 || b >= p->n_blocks || seen[b] || p->ref[b] != 0)
            bad = 1;
        else
            seen[b] = 1;
    }
    for (int b = 0; b < p->n_blocks && !bad; b++)
        if (!seen[b] && p->ref[b] <= 0) bad = 1;
    free(seen);
    return bad ? llm_err_set(LLM_EFORMAT, "kv pool: free list and reference counts disagree") : 0;
}
