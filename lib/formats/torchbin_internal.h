/* torchbin_internal.h - the restricted reader of PyTorch zip checkpoints
 * (torchbin.c), as the safetensors reader uses it; not installed.
 *
 * Design choice: torchbin.c only parses one file held in memory and returns
 * plain tensor records (name, dtype, shape, absolute byte range in the
 * file); safetensors.c owns the mapping, the tensor table, the ordering and
 * the llm_st_* API, so a .bin checkpoint opens as the same struct llm_st as
 * a safetensors one.  formats/torchbin.md says what is accepted.
 */
#ifndef LLM_TORCHBIN_INTERNAL_H
#define LLM_TORCHBIN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "llm/dtype.h"

struct llm_tb_tensor {
    char *name; /* malloc'd; the caller may take it (and set it to NULL) */
    int dtype;  /* enum llm_dtype */
    int ndim;
    int64_t shape[LLM_MAX_DIMS];
    uint64_t offset; /* of the first byte, from the start of the file */
    uint64_t nbytes; /* contiguous, row-major; inside one storage entry */
};

/* Parse the torch.save zip archive base[0, size) (path names it in
 * messages): its central directory, then data.pkl through a pickle
 * interpreter that knows only what a state dict needs.  On success *out
 * holds *n tensors in the pickle's order (several may share bytes: tied
 * weights); free them with llm_tb_free.  On failure a negative enum
 * llm_err with a one-line message naming path. */
int llm_tb_parse(const uint8_t *base, uint64_t size, const char *path, struct llm_tb_tensor **out,
                 size_t *n);
void llm_tb_free(struct llm_tb_tensor *t, size_t n);

#endif
