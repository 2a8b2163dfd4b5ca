/* tcheck.h - small checking helpers shared by the C tests (tests/formats,
 * tests/artifact, tests/quant).
 *
 * Each check prints what it compared when it fails and counts the failure;
 * a test runs everything and exits 1 if anything failed, so one run shows
 * every mismatch, the first one on top. */
#ifndef TCHECK_H
#define TCHECK_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llm/err.h"

static int t_failures;
static int t_checks;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        t_checks++;                                                                                \
        if (!(cond)) {                                                                             \
            t_failures++;                                                                          \
            fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond);                      \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    CHECK((long long)(a) == (long long)(b), "%s = %lld, expected %lld", #a, (long long)(a),        \
          (long long)(b))

#define CHECK_DBL(a, b)                                                                            \
    CHECK((double)(a) == (double)(b), "%s = %.17g, expected %.17g", #a, (double)(a), (double)(b))

#define CHECK_STR(a, b) CHECK(strcmp((a), (b)) == 0, "%s = '%s', expected '%s'", #a, (a), (b))

/* A call that must succeed. */
#define CHECK_OK(call)                                                                             \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        CHECK(rc_ == 0, "%s returned %d (%s): %s", #call, rc_, llm_strerror(rc_), llm_errmsg());   \
    } while (0)

/* A call that must fail with code and a detail containing sub. */
#define CHECK_ERR(call, code, sub)                                                                 \
    do {                                                                                           \
        llm_err_clear();                                                                           \
        int rc_ = (call);                                                                          \
        CHECK(rc_ == (code) && strstr(llm_errmsg(), (sub)) != NULL,                                \
              "%s returned %d (%s) '%s', expected %d (%s) with '%s'", #call, rc_,                  \
              llm_strerror(rc_), llm_errmsg(), (code), llm_strerror(code), (sub));                 \
    } while (0)

static inline int t_report(const char *name)
{
    if (t_failures) {
        fprintf(stderr, "%s: %d of %d checks failed\n", name, t_failures, t_checks);
        return 1;
    }
    printf("%s: all %d checks passed\n", name, t_checks);
    return 0;
}

/* Error codes by their enum names, as the bad-input manifests spell them:
 * t_code_name(-4) is "LLM_EFORMAT"; t_code_of("LLM_EFORMAT") is -4 (1 when
 * the name is unknown). */
static inline const char *t_code_name(int code)
{
    static const char *const names[LLM_ERR_COUNT] = {
        "LLM_OK",     "LLM_EIO",      "LLM_ENOMEM",       "LLM_EINVAL",    "LLM_EFORMAT",
        "LLM_ETRUNC", "LLM_EVERSION", "LLM_EUNSUPPORTED", "LLM_ECHECKSUM", "LLM_ENOTFOUND",
        "LLM_ESHAPE", "LLM_EDEVICE",  "LLM_ERANGE",       "LLM_ECAPACITY",
    };
    return code <= 0 && code > -LLM_ERR_COUNT ? names[-code] : "?";
}

static inline int t_code_of(const char *name)
{
    for (int i = 0; i < LLM_ERR_COUNT; i++)
        if (!strcmp(t_code_name(-i), name)) return -i;
    return 1;
}

/* The source tree (LLM_SRCDIR from meson, else the current folder). */
static inline const char *t_srcdir(void)
{
    const char *s = getenv("LLM_SRCDIR");
    return s && *s ? s : ".";
}

static int t_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* A fresh temporary folder (removed by t_rmtree); exits on failure. */
static inline char *t_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/llm-formats-XXXXXX", base && *base ? base : "/tmp");
    if (!p || !mkdtemp(p)) {
        perror("mkdtemp");
        exit(1);
    }
    return p;
}

static inline void t_rmtree(char *path)
{
    if (path) nftw(path, t_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(path);
}

/* Whole file into memory (exits on failure). */
static inline unsigned char *t_slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "unable to open '%s'\n", path);
        exit(1);
    }
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    if (!b || fread(b, 1, (size_t)n, fp) != (size_t)n) exit(1);
    fclose(fp);
    *len = (size_t)n;
    return b;
}

static inline void t_spit(const char *path, const void *buf, size_t len)
{
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(buf, 1, len, fp) != len || fclose(fp) != 0) {
        fprintf(stderr, "unable to write '%s'\n", path);
        exit(1);
    }
}

#endif
