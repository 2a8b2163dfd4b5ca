/* log.c - levelled, line-atomic logging to stderr. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "llm/log.h"

static int log_level = LLM_LOG_INFO;
static const char *log_prog;

void llm_log_set_level(int level)
{
    log_level = level;
}

int llm_log_get_level(void)
{
    return log_level;
}

void llm_log_set_prog(const char *prog)
{
    log_prog = prog;
}

void llm_log(int level, const char *fmt, ...)
{
    if (level > log_level) return;
    char line[2048];
    size_t n = 0;
    if (log_prog) n = (size_t)snprintf(line, sizeof(line), "%s: ", log_prog);
    if (level == LLM_LOG_WARN && n < sizeof(line))
        n += (size_t)snprintf(line + n, sizeof(line) - n, "warning: ");
    va_list ap;
    va_start(ap, fmt);
    if (n < sizeof(line)) n += (size_t)vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (n >= sizeof(line) - 1) n = sizeof(line) - 2;
    if (n == 0 || line[n - 1] != '\n') line[n++] = '\n';
    fwrite(line, 1, n, stderr); /* one write: lines from threads do not interleave */
}
