/* quant_internal.h - helpers shared by the quantizers' searches (not a
 * public header). */
#ifndef LLM_QUANT_INTERNAL_H
#define LLM_QUANT_INTERNAL_H

#include <stddef.h>

/* Sum of squared differences of n floats, in double: the output error the
 * searches (AWQ's scales and clipping, --alpha auto) minimise. */
static inline double q_sq_err(const float *y, const float *ref, size_t n)
{
    double e = 0;
    for (size_t k = 0; k < n; k++) {
        double d = (double)y[k] - ref[k];
        e += d * d;
    }
    return e;
}

#endif
