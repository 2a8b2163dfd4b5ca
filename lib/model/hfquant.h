/* hfquant.h - inside lib/model: the conversion plan's hooks for pre-quantized
 * sources (hfmap.c plans, hfquant.c checks and writes them; llm/hf.h). */
#ifndef LLM_HFQUANT_H
#define LLM_HFQUANT_H

#include <stddef.h>
#include <stdint.h>

#include "llm/hf.h"

/* hfmap.c's index of the checkpoint's tensors, sorted by name. */
struct by_name {
    const char *name;
    size_t idx;
};
/* A source by name, or without the base-model prefix, or under one of the
 * alternative prefixes (pairs from, to; NULL-terminated or NULL); NULL
 * when absent. */
const struct by_name *llm_hfmap_find(const struct by_name *ix, size_t n, const char *name,
                                     const char *prefix, const char *const *alt);

struct llm_hfq_lookup {
    const struct llm_st *st;
    const struct by_name *ix;
    size_t n;
    const char *prefix;
    const char *const *alt;
    unsigned char *used;
};

/* Part k of a quantized linear item: HF name hf (its ".weight" form; idx
 * SIZE_MAX when absent), expected logical shape (nd, es) [out, in].  1 when
 * the part is quantized (it->src[k], it->qside[k] and it->quant filled,
 * sources marked used), 0 when it is dense (planned as usual), -1 on error. */
int llm_hfq_plan_source(const struct llm_hfq *q, const struct llm_hfq_lookup *lk,
                        const char *hf, size_t idx, int nd, const int64_t *es,
                        struct llm_plan_item *it, int k);
/* After every part: all quantized or all dense, and a transform quantized
 * weights take (copy, concat). */
int llm_hfq_plan_check(const struct llm_hfq *q, const struct llm_st *st, const char *ck,
                       const struct llm_plan_item *it);

#endif
