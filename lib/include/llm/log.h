/* log.h - levelled logging to stderr.  The library never writes stdout. */
#ifndef LLM_LOG_H
#define LLM_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

enum llm_log_level {
    LLM_LOG_QUIET = -1, /* nothing, not even errors */
    LLM_LOG_ERROR = 0,
    LLM_LOG_WARN = 1,
    LLM_LOG_INFO = 2,   /* default */
    LLM_LOG_DEBUG = 3,
    LLM_LOG_LEVEL_COUNT = 4
};

void llm_log_set_level(int level);
int llm_log_get_level(void);
/* Tool name printed before each line ("llm-convert: ..."); NULL for none. */
void llm_log_set_prog(const char *prog);
void llm_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define llm_error(...) llm_log(LLM_LOG_ERROR, __VA_ARGS__)
#define llm_warn(...) llm_log(LLM_LOG_WARN, __VA_ARGS__)
#define llm_info(...) llm_log(LLM_LOG_INFO, __VA_ARGS__)
#define llm_debug(...) llm_log(LLM_LOG_DEBUG, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
