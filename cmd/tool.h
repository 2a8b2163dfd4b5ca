/* tool.h - what every cmd/llm-*.c shares: exit codes, error reporting,
 * size parsing, shape text.  Exit codes: 0 success, 1 runtime failure, 2 usage error. */
#ifndef LLM_TOOL_H
#define LLM_TOOL_H

#include <stddef.h>
#include <stdint.h>

enum { TOOL_EXIT_OK = 0, TOOL_EXIT_FAIL = 1, TOOL_EXIT_USAGE = 2 };

/* Set the program name for messages and the log prefix. */
void tool_init(const char *prog);
/* Print "prog: <detail or strerror>" for a libllm error; returns 1. */
int tool_fail(int rc);
/* Print "prog: <message>" and "Try 'prog --help'." ; returns 2. */
int tool_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "prog VERSION (commit HASH)" on stdout, the same form in every
 * tool; returns 0. */
int tool_version(void);
/* Print "prog: <message>"; returns 1. */
int tool_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parse "123", "4K", "16MiB", "2G", "1.5GB" (K=1024); -1 on error. */
int tool_parse_size(const char *s, uint64_t *out);
/* Parse an integer in [lo, hi]; -1 on error. */
int tool_parse_int(const char *s, long lo, long hi, long *out);
/* Parse a finite number in [lo, hi]; -1 on error. */
int tool_parse_double(const char *s, double lo, double hi, double *out);
/* KV cache amount: a plain number with a point, or "1", is a fraction of the
 * memory in (0, 1] ("0.5"); anything else is a positive size ("2GiB",
 * "512M", "1000000").  Sets exactly one of *bytes / *frac (the other 0);
 * -1 on error. */
int tool_parse_kv(const char *s, uint64_t *bytes, double *frac);
/* Comma-separated integers in [lo, hi] ("1,8,64"), at most cap of them;
 * -1 on error. */
int tool_parse_list(const char *s, long lo, long hi, long *v, int cap, int *n);
/* "[d0, d1, ...]" for the first ndim sizes of shape, cut short to fit cap;
 * returns buf. */
const char *tool_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);
extern const char *tool_prog;

#endif
