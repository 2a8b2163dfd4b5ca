/* artifact.h - the llm artifact: one self-contained, versioned file that
 * every tool reads and writes (formats/artifact.md specifies it byte by
 * byte).
 *
 * Layout: fixed header, JSON metadata, tensor records (each with its own
 * small header, an XXH3-64 checksum and 64-byte aligned data, optionally
 * zstd-compressed), an end record, a trailing JSON (facts known only at the
 * end, such as input hashes), and a trailing index + footer for random
 * access.  A writer never seeks, so it can write to a pipe; a reader reads
 * a regular file by mmap (zero copy, random access through the index) and
 * a pipe sequentially.
 */
#ifndef LLM_ARTIFACT_H
#define LLM_ARTIFACT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LLM_ARTIFACT_MAJOR 1
#define LLM_ARTIFACT_MINOR 1

/* ---- writer ---------------------------------------------------------- */

struct llm_aw;

struct llm_aw_opts {
    int compress_level;       /* 0: store raw; 1..22: zstd level for each tensor */
    uint64_t compress_min;    /* tensors smaller than this stay raw (default 4096 when 0) */
    /* Optional: called for each range of a tensor's data the writer has
     * finished reading (it reads data in chunks of at most 32 MiB), so a
     * caller streaming from a mapping can drop those pages at once and keep
     * its resident set near one chunk.  NULL: nothing is called. */
    void (*release)(void *ctx, const void *data, uint64_t len);
    void *release_ctx;
};

/* Create path ("-" = stdout).  A file is written under a temporary name in
 * the same folder and renamed by llm_aw_finish; llm_aw_abort (or any
 * failure) removes it, so no partial artifact is ever left.  meta is the
 * metadata object (model, tokenizer, quantization, mapping, provenance);
 * the writer adds the "format" member.  It is written immediately. */
int llm_aw_create(struct llm_aw **out, const char *path, const json_t *meta,
                  const struct llm_aw_opts *opts);
/* Append one tensor; data holds nbytes = numel x dtype size. */
int llm_aw_add(struct llm_aw *w, const char *name, int dtype, int ndim, const int64_t *shape,
               const void *data, uint64_t nbytes);
/* Members to put in the trailing JSON (merged into the metadata by readers;
 * e.g. {"inputs": [...]} for provenance).  Optional, once, before finish. */
int llm_aw_set_trailer(struct llm_aw *w, const json_t *trailer);
/* Write end record, trailer, index, footer; flush; rename into place. */
int llm_aw_finish(struct llm_aw *w);
/* Discard: remove the temporary file and free. Safe on NULL. */
void llm_aw_abort(struct llm_aw *w);

/* ---- reader ---------------------------------------------------------- */

struct llm_artifact;

enum llm_ar_flags {
    LLM_AR_VERIFY = 1 << 0,   /* check every tensor's checksum as it is read */
    LLM_AR_LOAD_ALL = 1 << 1, /* pipe input: read every tensor into memory so
                                 llm_ar_find works as for a file */
};

/* Open path ("-" = stdin).  Regular files are mmapped and indexed; pipes are
 * read sequentially.  The header, metadata (and for files, the index and
 * trailer) are validated here. */
int llm_ar_open(struct llm_artifact **out, const char *path, unsigned flags);
/* Open an artifact already in memory (fuzzing, tests); buf must outlive it. */
int llm_ar_open_mem(struct llm_artifact **out, const void *buf, size_t len, const char *name,
                    unsigned flags);
void llm_ar_close(struct llm_artifact *a);

/* Format version found in the file. */
void llm_ar_version(const struct llm_artifact *a, int *major, int *minor);
/* Metadata object, with the trailer merged in once it has been read (files:
 * at open; pipes: after the last tensor). Owned by the artifact. */
const json_t *llm_ar_meta(const struct llm_artifact *a);
int llm_ar_is_seekable(const struct llm_artifact *a);

/* Sequential access, both modes: fills t with the next tensor; returns 1,
 * 0 at the end, or a negative error.  For pipes t->data is valid until the
 * next call; for files, until close.  t->xxh3 holds the stored checksum. */
int llm_ar_next(struct llm_artifact *a, struct llm_tensor *t);

/* Random access (files, or pipes opened with LLM_AR_LOAD_ALL). */
size_t llm_ar_count(const struct llm_artifact *a);
int llm_ar_get(struct llm_artifact *a, size_t i, struct llm_tensor *t);
int llm_ar_find(struct llm_artifact *a, const char *name, struct llm_tensor *t);

/* Header facts of the i-th tensor without touching its data (t->data is
 * NULL): for listings that must not decompress or page in a whole model. */
int llm_ar_info(const struct llm_artifact *a, size_t i, struct llm_tensor *t);
/* Done with the i-th tensor: free its decompressed copy, or drop its mapped
 * pages from the resident set (MADV_DONTNEED; mapped data stays readable).
 * Pointers to a compressed tensor's data from earlier calls become invalid.
 * Lets a reader stream a whole model through bounded memory. */
void llm_ar_release(struct llm_artifact *a, size_t i);

/* Recompute a tensor's XXH3-64 and compare with the stored one
 * (LLM_ECHECKSUM naming the tensor on mismatch). */
int llm_ar_verify_tensor(const struct llm_artifact *a, const struct llm_tensor *t);

/* Check every tensor's checksum now (random access only): stored data is
 * hashed where it lies, so a mapped file's pages are read (and paged in)
 * once, spread over the OpenMP threads; compressed tensors are
 * decompressed and kept for llm_ar_get.  The first mismatch in file order
 * fails with LLM_ECHECKSUM naming the file and the tensor.  Verified
 * tensors are not hashed again by later calls or by LLM_AR_VERIFY. */
int llm_ar_verify_all(struct llm_artifact *a);

/* Byte offset of the i-th record (file mode; for messages and llm-info). */
uint64_t llm_ar_offset(const struct llm_artifact *a, size_t i);
/* Stored (possibly compressed) size of the i-th tensor's data. */
uint64_t llm_ar_stored_size(const struct llm_artifact *a, size_t i);
/* The metadata as the file's header holds it, without the trailer's
 * members (llm_ar_meta merges them in), and the trailer itself (NULL until
 * read: at open for a file, after the last tensor for a stream).  A tool
 * that must rewrite a file byte for byte needs both. */
const json_t *llm_ar_header_meta(const struct llm_artifact *a);
const json_t *llm_ar_trailer(const struct llm_artifact *a);
const char *llm_ar_path(const struct llm_artifact *a);

#ifdef __cplusplus
}
#endif
#endif
