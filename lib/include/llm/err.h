/* err.h - error codes and the last-error detail message.
 *
 * Every libllm function that can fail returns 0 (LLM_OK) or a negative
 * enum llm_err.  The code says what kind of failure it was; the detail
 * message says where and why, in one lower-case line that names the subject
 * in quotes: "'model.safetensors': tensor 'w' ends at 4096, past end of file
 * (3000 bytes)".  The detail is thread-local, so threads never see each
 * other's messages; it stays until the next llm_err_set on that thread.
 */
#ifndef LLM_ERR_H
#define LLM_ERR_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

enum llm_err {
    LLM_OK = 0,
    LLM_EIO = -1,          /* open/read/write/mmap failed (errno text in detail) */
    LLM_ENOMEM = -2,       /* allocation failed (host or device) */
    LLM_EINVAL = -3,       /* bad argument or parameter from the caller */
    LLM_EFORMAT = -4,      /* malformed or corrupt input */
    LLM_ETRUNC = -5,       /* input ends before its declared size */
    LLM_EVERSION = -6,     /* format major version we cannot read */
    LLM_EUNSUPPORTED = -7, /* well-formed but not supported (arch, dtype, feature) */
    LLM_ECHECKSUM = -8,    /* stored checksum does not match the data */
    LLM_ENOTFOUND = -9,    /* named file, tensor or key missing */
    LLM_ESHAPE = -10,      /* tensor shape or size disagrees with what is expected */
    LLM_EDEVICE = -11,     /* CUDA, cuBLAS or NCCL failure */
    LLM_ERANGE = -12,      /* value out of range or integer overflow */
    LLM_ECAPACITY = -13,   /* request does not fit the engine's limits */
    LLM_ERR_COUNT = 14     /* number of codes, LLM_OK included */
};

/* Short fixed name of a code ("corrupt or malformed input"). */
const char *llm_strerror(int err);

/* Record a detail message for the calling thread and return err, so that
 * failures read `return llm_err_set(LLM_EFORMAT, "'%s': bad magic", path);`. */
int llm_err_set(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int llm_err_setv(int err, const char *fmt, va_list ap);

/* Prefix the current detail with "prefix: " (adds context on the way up). */
int llm_err_wrap(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The calling thread's last detail message ("" when none). */
const char *llm_errmsg(void);
int llm_errcode(void);
void llm_err_clear(void);

#ifdef __cplusplus
}
#endif
#endif
