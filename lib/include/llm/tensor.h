/* tensor.h - a read-only view of one named tensor's bytes. */
#ifndef LLM_TENSOR_H
#define LLM_TENSOR_H

#include <stdint.h>
#include "dtype.h"

struct llm_tensor {
    const char *name;
    int dtype;                    /* enum llm_dtype */
    int ndim;
    int64_t shape[LLM_MAX_DIMS];
    uint64_t nbytes;              /* bytes of data (uncompressed) */
    const void *data;             /* host pointer, valid while its owner lives */
    uint64_t xxh3;                /* XXH3-64 of the data when known, else 0 */
};

#endif
