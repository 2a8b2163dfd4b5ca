/* err.c - error names and the thread-local detail message. */
#include <stdio.h>
#include <string.h>

#include "llm/err.h"

static const char *const err_names[LLM_ERR_COUNT] = {
    "success",
    "input/output error",
    "out of memory",
    "invalid argument",
    "corrupt or malformed input",
    "truncated input",
    "unsupported format version",
    "unsupported",
    "checksum mismatch",
    "not found",
    "shape mismatch",
    "device error",
    "value out of range",
    "exceeds engine capacity",
};
_Static_assert(sizeof(err_names) / sizeof(err_names[0]) == LLM_ERR_COUNT, "err_names");

static _Thread_local char err_msg[1024];
static _Thread_local int err_code;

const char *llm_strerror(int err)
{
    if (err > 0 || err <= -LLM_ERR_COUNT) return "unknown error";
    return err_names[-err];
}

int llm_err_setv(int err, const char *fmt, va_list ap)
{
    char msg[sizeof(err_msg)]; /* the arguments may quote llm_errmsg() itself */
    vsnprintf(msg, sizeof(msg), fmt, ap);
    memcpy(err_msg, msg, strlen(msg) + 1);
    err_code = err;
    return err;
}

int llm_err_set(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    llm_err_setv(err, fmt, ap);
    va_end(ap);
    return err;
}

int llm_err_wrap(int err, const char *fmt, ...)
{
    char prefix[512], old[sizeof(err_msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err_msg, sizeof(old));
    if (old[0])
        snprintf(err_msg, sizeof(err_msg), "%s: %s", prefix, old);
    else
        snprintf(err_msg, sizeof(err_msg), "%s: %s", prefix, llm_strerror(err));
    err_code = err;
    return err;
}

const char *llm_errmsg(void)
{
    return err_msg;
}

int llm_errcode(void)
{
    return err_code;
}

void llm_err_clear(void)
{
    err_msg[0] = 0;
    err_code = 0;
}
