/* cuda_internal.h - shared by the CUDA backend's host files: the one
 * checking path for CUDA runtime, kernel launch and cuBLASLt status codes,
 * and the cuBLASLt matrix-product wrapper.
 *
 * Design: every device call goes through CK() (CUDA runtime calls and our
 * kernel launchers, which return the launch status) or CKB() (cuBLASLt);
 * both end in cu_fail(), which sets LLM_EDEVICE with file:line, the call
 * and the library's own error name, and make the caller return it.
 */
#ifndef LLM_CUDA_INTERNAL_H
#define LLM_CUDA_INTERNAL_H

#include <stdint.h>
#include <cuda_runtime_api.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <cublasLt.h>
#pragma GCC diagnostic pop

#include "llm/err.h"

enum cu_lib { CU_LIB_RT = 0, CU_LIB_BLAS = 1 };

/* Set LLM_EDEVICE "file:line: call: NAME (description)" and return it. */
int cu_fail(int lib, int code, const char *call, const char *file, int line);

#define CK(call)                                                                                   \
    do {                                                                                           \
        int ck_e_ = (int)(call);                                                                   \
        if (ck_e_ != 0) return cu_fail(CU_LIB_RT, ck_e_, #call, __FILE__, __LINE__);              \
    } while (0)
#define CKB(call)                                                                                  \
    do {                                                                                           \
        int ck_e_ = (int)(call);                                                                   \
        if (ck_e_ != 0) return cu_fail(CU_LIB_BLAS, ck_e_, #call, __FILE__, __LINE__);            \
    } while (0)

/* ---- matrix products through cuBLASLt -------------------------------------
 * y[m][n] = x[m][k] . w[n][k]^T (+ bias[n]) (+ y[m][n] when accumulate):
 * the weights stay in their (out, in) row-major layout and cuBLASLt sees
 * the column-major product y^T = w . x^T ("TN").  Inputs and y share the
 * compute dtype, except that y may be fp32 (logits) with yt = F32; bias is
 * in y's type.  Descriptors and the heuristic's algorithm are cached per
 * shape, so a steady decode loop does no cuBLASLt setup. */
struct cu_gemm;
int cu_gemm_create(struct cu_gemm **out, int dt, size_t workspace_bytes);
void cu_gemm_destroy(struct cu_gemm *g);
int cu_gemm_run(struct cu_gemm *g, cudaStream_t st, int m, int n, int k, const void *x, int ldx,
                const void *w, const void *bias, void *y, int ldy, int yt, int accumulate);

/* Engines (llm/engine_artifact.h): measured algorithm choices, tried before
 * the heuristic for every product they fit (copied); and measuring one
 * product's candidates on buffers w, x, y, bias of its shape. */
struct llm_gemm_choice;
int cu_gemm_set_choices(struct cu_gemm *g, const struct llm_gemm_choice *c, int n);
int cu_gemm_tune(struct cu_gemm *g, cudaStream_t st, struct llm_gemm_choice *c, const void *w,
                 const void *x, void *y, const void *bias);

#endif
