/* io.h - file helpers shared by every format: whole-file reads, read-only
 * mappings, and output files that appear only when complete. */
#ifndef LLM_IO_H
#define LLM_IO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Read a whole file into a NUL-terminated malloc'd buffer (len excludes the
 * NUL). max: refuse files larger than this (0 = no limit). */
int llm_read_file(const char *path, char **buf, size_t *len, size_t max);

struct llm_map {
    void *data;
    size_t len;
    int fd;
};
/* Map a regular file read-only (empty files map to data = NULL, len = 0). */
int llm_map_file(const char *path, struct llm_map *m);
void llm_unmap(struct llm_map *m);
/* Drop resident pages of [off, off+len) of a mapping (MADV_DONTNEED). */
void llm_map_release(const struct llm_map *m, uint64_t off, uint64_t len);

/* Output that never leaves a partial file: path is written as
 * "DIR/.NAME.tmp-XXXXXX" and renamed on llm_out_commit; llm_out_abort
 * unlinks it.  path "-" (or NULL) writes stdout directly; an existing
 * device, FIFO or socket (/dev/null, a named pipe) is written in place.
 * A folder is refused at open ("unable to create 'x': it is a folder"). */
struct llm_out {
    FILE *fp;
    char *path;     /* final path, NULL for stdout */
    char *tmp;      /* temporary path, NULL for stdout */
    uint64_t written;
    int failed;
};
int llm_out_open(struct llm_out *o, const char *path);
/* Check, before any work, that llm_out_open(path) will succeed: the
 * folder exists and takes a new file (a temporary is created and removed
 * at once), path is not a folder; a device or FIFO opens for writing.
 * 0, or the error llm_out_open would give. */
int llm_out_check(const char *path);
int llm_out_write(struct llm_out *o, const void *buf, size_t len);
int llm_out_commit(struct llm_out *o);
void llm_out_abort(struct llm_out *o);

/* Remove every temporary output still open (called from signal handlers
 * installed by llm_out_install_cleanup, and at exit). */
void llm_out_install_cleanup(void);

/* Read exactly len bytes from a stream (pipes deliver short reads);
 * LLM_ETRUNC naming what at end of input. */
int llm_read_full(FILE *fp, void *buf, size_t len, const char *what);

#ifdef __cplusplus
}
#endif
#endif
