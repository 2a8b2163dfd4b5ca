/* tool.c - shared command-line helpers for the llm-* programs. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "llm/io.h"
#include "llm/log.h"
#include "llm_build_config.h"
#include "tool.h"

const char *tool_prog = "llm";

void tool_init(const char *prog)
{
    tool_prog = prog;
    llm_log_set_prog(prog);
    llm_out_install_cleanup();
}

int tool_fail(int rc)
{
    const char *m = llm_errmsg();
    fprintf(stderr, "%s: %s\n", tool_prog, (m && *m) ? m : llm_strerror(rc));
    return TOOL_EXIT_FAIL;
}

int tool_version(void)
{
    printf("%s %s (commit %s)\n", tool_prog, LLM_VERSION, LLM_GIT_COMMIT);
    return TOOL_EXIT_OK;
}

int tool_usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", tool_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", tool_prog);
    return TOOL_EXIT_USAGE;
}

int tool_die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", tool_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return TOOL_EXIT_FAIL;
}

int tool_parse_size(const char *s, uint64_t *out)
{
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0) return -1;
    while (isspace((unsigned char)*end)) end++;
    double mul = 1;
    switch (toupper((unsigned char)*end)) {
    case 0: break;
    case 'B': mul = 1; end++; break;
    case 'K': mul = 1024.0; end++; break;
    case 'M': mul = 1024.0 * 1024; end++; break;
    case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
    case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: return -1;
    }
    if (mul > 1 && (*end == 'i' || *end == 'I')) end++;
    if (mul > 1 && (*end == 'b' || *end == 'B')) end++;
    if (*end) return -1;
    v *= mul;
    if (v > 1.8e19) return -1;
    *out = (uint64_t)v;
    return 0;
}

int tool_parse_int(const char *s, long lo, long hi, long *out)
{
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int tool_parse_double(const char *s, double lo, double hi, double *out)
{
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v) || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

int tool_parse_kv(const char *s, uint64_t *bytes, double *frac)
{
    *bytes = 0;
    *frac = 0;
    int plain = s[strspn(s, "0123456789.")] == 0;
    if (plain && (strchr(s, '.') || !strcmp(s, "1")))
        return tool_parse_double(s, 0, 1, frac) || *frac <= 0 ? -1 : 0;
    return tool_parse_size(s, bytes) || *bytes == 0 ? -1 : 0;
}

int tool_parse_list(const char *s, long lo, long hi, long *v, int cap, int *n)
{
    const char *p = s;
    *n = 0;
    for (;;) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < lo || x > hi || (*end && *end != ',')) return -1;
        if (*n == cap) return -1;
        v[(*n)++] = x;
        if (!*end) return 0;
        p = end + 1;
    }
}

const char *tool_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
    return buf;
}
