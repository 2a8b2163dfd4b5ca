/* safetensors.h - a validating, mmapping reader for safetensors checkpoints.
 *
 * Opens one .safetensors file, a sharded checkpoint through its
 * model.safetensors.index.json, or a directory holding either.  Every file
 * is mmapped read-only; tensor data pointers point into the mappings (zero
 * copy).  Opening validates everything: 8-byte header length within bounds
 * (<= 100 MB and <= file size), JSON well-formed with no duplicate keys,
 * known dtype, shape x dtype size equal to the byte range, ranges inside
 * the data section, no two ranges overlapping, no integer overflow, every
 * tensor the index names present in the shard it names, and no shard
 * missing.  Each violation is a distinct error whose detail names the file
 * (and tensor) and what was wrong.
 *
 * PyTorch checkpoints open through the same API: a file named *.bin is read
 * as a torch.save zip archive by a restricted pickle interpreter that runs
 * nothing and knows only the globals a state dict needs (formats/torchbin.md);
 * a folder with no .safetensors file opens its pytorch_model.bin.index.json
 * or pytorch_model.bin.  Their tensors may share bytes (tied weights).
 */
#ifndef LLM_SAFETENSORS_H
#define LLM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

struct llm_st;

/* path: file (*.safetensors, or *.bin: PyTorch), index json, or directory
 * (safetensors first: model.safetensors.index.json, model.safetensors, the
 * only *.safetensors; then pytorch_model.bin.index.json, pytorch_model.bin). */
int llm_st_open(struct llm_st **out, const char *path);
/* Parse one file already in memory (fuzzing, tests); buf must outlive st. */
int llm_st_open_mem(struct llm_st **out, const void *buf, size_t len, const char *name);
/* The same for one PyTorch zip checkpoint (torch.save) in memory. */
int llm_st_open_torchbin_mem(struct llm_st **out, const void *buf, size_t len, const char *name);
void llm_st_close(struct llm_st *st);

/* Tensors in a stable order: shard by shard, by offset within each shard. */
size_t llm_st_count(const struct llm_st *st);
/* i-th tensor (name, dtype, shape, nbytes, data; xxh3 = 0). */
const struct llm_tensor *llm_st_get(const struct llm_st *st, size_t i);
const struct llm_tensor *llm_st_find(const struct llm_st *st, const char *name);
/* Shard of the i-th tensor, and the shard files. */
int llm_st_shard_of(const struct llm_st *st, size_t i);
size_t llm_st_nfiles(const struct llm_st *st);
const char *llm_st_file_path(const struct llm_st *st, size_t file);
uint64_t llm_st_file_size(const struct llm_st *st, size_t file);
/* The shard index the checkpoint was opened through, or NULL. */
const char *llm_st_index_path(const struct llm_st *st);
/* Start of a shard's mapping (whole file), for hashing inputs. */
const void *llm_st_file_data(const struct llm_st *st, size_t file);
/* The "__metadata__" string map of file 0 as a JSON object (may be NULL). */
const void *llm_st_metadata(const struct llm_st *st); /* const json_t * */

/* Drop the pages behind a tensor (or a whole file) from this process's
 * resident set once done with them, so that streaming a model keeps RSS
 * bounded (madvise DONTNEED on the mapping; the data stays valid to read). */
void llm_st_release(const struct llm_st *st, size_t i);
void llm_st_release_file(const struct llm_st *st, size_t file);

/* ---- writer (tests, fixtures, llm-convert --random) ----------------------
 * Write tensors as one safetensors file at path (temp name + rename). */
int llm_st_write(const char *path, const struct llm_tensor *tensors, size_t n,
                 const char *metadata_json /* object or NULL */);

#ifdef __cplusplus
}
#endif
#endif
