/* test_artifact.c - the artifact writer and both readers (formats/artifact.md).
 *
 * Round trips through a file (mmap), a pipe (sequential, and slurped with
 * LLM_AR_LOAD_ALL) and memory, raw and zstd-compressed; then every reader
 * rejection on a crafted file.  Crafted files start from a valid artifact:
 * its layout is read once, a field is changed, and every checksum except
 * the one under test is recomputed from that layout, so each case reaches
 * exactly the check it is meant for.  Each case runs through the memory
 * reader (expecting a given error code and message) and through the stream
 * reader (expecting a failure naming the input).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>

#include <xxhash.h>

#include "llm/artifact.h"
#include "llm/dtype.h"
#include "llm/err.h"

static int failures, checks;

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        checks++;                                                                            \
        if (!(cond)) {                                                                       \
            failures++;                                                                      \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                             \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fprintf(stderr, " [last error: %s]\n", llm_errmsg());                            \
        }                                                                                    \
    } while (0)

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static void wr64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- the sample artifact ------------------------------------------------- */

#define NT 8 /* samples; crafted layouts hold at most this many records */
struct sample {
    const char *name;
    int dtype, ndim;
    int64_t shape[LLM_MAX_DIMS];
    uint8_t *data;
    uint64_t nbytes;
};
static struct sample S[NT];

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void make_samples(void)
{
    struct sample defs[NT] = {
        {"t.f32", LLM_DTYPE_F32, 2, {3, 5}, 0, 0},
        {"t.bf16", LLM_DTYPE_BF16, 2, {64, 128}, 0, 0},
        {"t.rand", LLM_DTYPE_U8, 1, {8192}, 0, 0},
        {"t.scalar", LLM_DTYPE_F32, 0, {0}, 0, 0},
        {"t.empty", LLM_DTYPE_F16, 2, {0, 7}, 0, 0},
        {"t.i4", LLM_DTYPE_I4, 1, {5}, 0, 0},
        {"t.big", LLM_DTYPE_F16, 2, {256, 256}, 0, 0},
        {"t.b", LLM_DTYPE_I32, 3, {2, 3, 4}, 0, 0},
    };
    for (int i = 0; i < NT; i++) {
        S[i] = defs[i];
        uint64_t numel;
        llm_shape_numel(S[i].ndim, S[i].shape, &numel);
        llm_dtype_nbytes(S[i].dtype, numel, &S[i].nbytes);
        S[i].data = malloc(S[i].nbytes ? S[i].nbytes : 1);
        for (uint64_t k = 0; k < S[i].nbytes; k++) {
            if (!strcmp(S[i].name, "t.rand"))
                S[i].data[k] = (uint8_t)next_rand();
            else /* compressible: small repeating patterns */
                S[i].data[k] = (uint8_t)((k * 7 + i) % 13 == 0 ? k % 251 : 0);
        }
    }
}

static json_t *sample_meta(void)
{
    return json_pack("{s:{s:s, s:i}, s:{s:i}, s:[{s:s}], s:s}", "model", "arch", "llama",
                     "layers", 2, "extra", "b", 2, "provenance", "tool", "test", "note",
                     "a note that keeps the metadata long enough for the crafted cases .......");
}

static json_t *sample_trailer(void)
{
    return json_pack("{s:{s:i}, s:[{s:s, s:[]}]}", "extra", "a", 1, "provenance", "tool", "test",
                     "inputs");
}

static int write_sample(const char *path, int level)
{
    struct llm_aw *w;
    json_t *meta = sample_meta();
    struct llm_aw_opts o = {.compress_level = level, .compress_min = 0};
    int rc = llm_aw_create(&w, path, meta, &o);
    json_decref(meta);
    if (rc) return rc;
    for (int i = 0; i < NT; i++) {
        rc = llm_aw_add(w, S[i].name, S[i].dtype, S[i].ndim, S[i].shape, S[i].data,
                        S[i].nbytes);
        if (rc) {
            llm_aw_abort(w);
            return rc;
        }
    }
    json_t *tr = sample_trailer();
    rc = llm_aw_set_trailer(w, tr);
    json_decref(tr);
    if (rc) {
        llm_aw_abort(w);
        return rc;
    }
    return llm_aw_finish(w);
}

static int read_file(const char *path, uint8_t **buf, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    *buf = malloc(n ? (size_t)n : 1);
    *len = fread(*buf, 1, (size_t)n, fp);
    fclose(fp);
    return *len == (size_t)n ? 0 : -1;
}

/* Compare everything a reader gives with the samples. */
static void check_contents(struct llm_artifact *a, const char *how, int random)
{
    int major, minor;
    llm_ar_version(a, &major, &minor);
    CHECK(major == 1 && minor == LLM_ARTIFACT_MINOR, "%s: version %d.%d", how, major, minor);
    struct llm_tensor t;
    int i = 0, rc;
    while ((rc = llm_ar_next(a, &t)) == 1) {
        CHECK(i < NT, "%s: more tensors than written", how);
        if (i >= NT) break;
        CHECK(!strcmp(t.name, S[i].name), "%s: tensor %d is '%s', expected '%s'", how, i, t.name,
              S[i].name);
        CHECK(t.dtype == S[i].dtype && t.ndim == S[i].ndim, "%s: '%s' dtype/ndim", how, t.name);
        CHECK(!memcmp(t.shape, S[i].shape, sizeof(int64_t) * (size_t)t.ndim), "%s: '%s' shape",
              how, t.name);
        CHECK(t.nbytes == S[i].nbytes, "%s: '%s' %llu bytes, expected %llu", how, t.name,
              (unsigned long long)t.nbytes, (unsigned long long)S[i].nbytes);
        CHECK(t.nbytes == 0 || !memcmp(t.data, S[i].data, t.nbytes), "%s: '%s' data differs",
              how, t.name);
        CHECK(t.xxh3 == XXH3_64bits(S[i].data, S[i].nbytes), "%s: '%s' checksum", how, t.name);
        CHECK(((uintptr_t)t.data & 63) == 0, "%s: '%s' data not 64-byte aligned", how, t.name);
        CHECK(llm_ar_verify_tensor(a, &t) == 0, "%s: verify '%s'", how, t.name);
        CHECK(llm_ar_offset(a, (size_t)i) % 64 == 0, "%s: record offset", how);
        i++;
    }
    CHECK(rc == 0, "%s: iteration ended with %d", how, rc);
    CHECK(i == NT, "%s: %d tensors, expected %d", how, i, NT);
    CHECK(llm_ar_count(a) == NT, "%s: count %zu", how, llm_ar_count(a));
    /* trailer merged: extra = {b: 2, a: 1}, provenance replaced */
    const json_t *m = llm_ar_meta(a);
    const json_t *ex = json_object_get(m, "extra");
    CHECK(json_integer_value(json_object_get(ex, "a")) == 1 &&
              json_integer_value(json_object_get(ex, "b")) == 2,
          "%s: trailer not merged into metadata", how);
    const json_t *pv = json_array_get(json_object_get(m, "provenance"), 0);
    CHECK(json_is_array(json_object_get(pv, "inputs")), "%s: provenance not from the trailer",
          how);
    const json_t *fm = json_object_get(m, "format");
    CHECK(json_is_string(json_object_get(fm, "name")), "%s: no format member", how);
    CHECK(llm_ar_is_seekable(a) == random, "%s: seekable %d", how, llm_ar_is_seekable(a));
    if (random) {
        CHECK(llm_ar_find(a, "t.big", &t) == 0 && t.nbytes == S[6].nbytes &&
                  !memcmp(t.data, S[6].data, t.nbytes),
              "%s: find t.big", how);
        CHECK(llm_ar_find(a, "nope", &t) == LLM_ENOTFOUND, "%s: find missing", how);
        CHECK(strstr(llm_errmsg(), "'nope'") != NULL, "%s: missing tensor message", how);
        CHECK(llm_ar_get(a, 2, &t) == 0 && !strcmp(t.name, "t.rand"), "%s: get 2", how);
        CHECK(llm_ar_get(a, NT, &t) == LLM_EINVAL, "%s: get past the end", how);
    } else {
        CHECK(llm_ar_find(a, "t.big", &t) == LLM_EINVAL, "%s: find on a stream", how);
    }
}

/* ---- pipes --------------------------------------------------------------- */

struct feeder {
    int fd;
    const uint8_t *buf;
    size_t len;
};

static void *feed(void *arg)
{
    struct feeder *f = arg;
    size_t off = 0;
    while (off < f->len) {
        ssize_t n = write(f->fd, f->buf + off, f->len - off);
        if (n <= 0) break; /* reader closed early */
        off += (size_t)n;
    }
    close(f->fd);
    return NULL;
}

/* Open buf through a pipe (as /dev/fd/N); the feeding thread is joined by
 * pipe_close. */
struct piped {
    pthread_t th;
    struct feeder f;
    int rfd;
    char path[64];
};

static int pipe_open(struct piped *p, const uint8_t *buf, size_t len, unsigned flags,
                     struct llm_artifact **a)
{
    int fds[2];
    if (pipe(fds)) return -1;
    p->rfd = fds[0];
    p->f = (struct feeder){fds[1], buf, len};
    pthread_create(&p->th, NULL, feed, &p->f);
    snprintf(p->path, sizeof(p->path), "/dev/fd/%d", fds[0]);
    return llm_ar_open(a, p->path, flags);
}

static void pipe_close(struct piped *p)
{
    close(p->rfd);
    pthread_join(p->th, NULL);
}

/* Run the writer in a child whose stdout is a pipe; return the bytes. */
static int write_through_pipe(int level, uint8_t **buf, size_t *len)
{
    int fds[2];
    if (pipe(fds)) return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 1);
        close(fds[1]);
        int rc = write_sample("-", level);
        fflush(stdout);
        _exit(rc ? 1 : 0);
    }
    close(fds[1]);
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    ssize_t r;
    while ((r = read(fds[0], b + n, cap - n)) > 0) {
        n += (size_t)r;
        if (n == cap) b = realloc(b, cap *= 2);
    }
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    *buf = b;
    *len = n;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* ---- round trips --------------------------------------------------------- */

static char tmpdir[256];

static void test_round_trips(int level)
{
    char path[512], how[64];
    snprintf(path, sizeof(path), "%s/sample-%d.llm", tmpdir, level);
    CHECK(write_sample(path, level) == 0, "write %s", path);

    struct llm_artifact *a;
    snprintf(how, sizeof(how), "file (level %d)", level);
    CHECK(llm_ar_open(&a, path, LLM_AR_VERIFY) == 0, "%s: open", how);
    if (a) {
        for (int i = 0; i < NT; i++) {
            uint64_t st = llm_ar_stored_size(a, (size_t)i);
            int compressible = strcmp(S[i].name, "t.rand") && S[i].nbytes >= 4096;
            if (level && compressible)
                CHECK(st < S[i].nbytes, "%s: '%s' not compressed (%llu)", how, S[i].name,
                      (unsigned long long)st);
            else
                CHECK(st == S[i].nbytes, "%s: '%s' stored %llu of %llu", how, S[i].name,
                      (unsigned long long)st, (unsigned long long)S[i].nbytes);
        }
        check_contents(a, how, 1);
        llm_ar_close(a);
    }
    /* every tensor verified up front, raw and compressed, then read */
    CHECK(llm_ar_open(&a, path, 0) == 0, "%s: open", how);
    if (a) {
        CHECK(llm_ar_verify_all(a) == 0, "%s: verify_all", how);
        CHECK(llm_ar_verify_all(a) == 0, "%s: verify_all twice", how);
        check_contents(a, how, 1);
        llm_ar_close(a);
    }

    uint8_t *fbuf = NULL, *pbuf = NULL;
    size_t flen = 0, plen = 0;
    CHECK(read_file(path, &fbuf, &flen) == 0, "read back %s", path);
    CHECK(write_through_pipe(level, &pbuf, &plen) == 0, "write to a pipe (level %d)", level);
    CHECK(plen == flen && !memcmp(pbuf, fbuf, flen),
          "level %d: pipe output (%zu bytes) differs from file output (%zu bytes)", level, plen,
          flen);
    printf("ok: level %d: %zu bytes, same through a file and a pipe\n", level, flen);

    snprintf(how, sizeof(how), "memory (level %d)", level);
    CHECK(llm_ar_open_mem(&a, fbuf, flen, "mem", 0) == 0, "%s: open", how);
    if (a) {
        /* the memory buffer comes from malloc: alignment is the caller's; skip that check */
        struct llm_tensor t;
        size_t n = 0;
        while (llm_ar_next(a, &t) == 1) {
            CHECK(!memcmp(t.data, S[n].data, t.nbytes), "%s: '%s' data", how, t.name);
            n++;
        }
        CHECK(n == NT, "%s: %zu tensors", how, n);
        llm_ar_close(a);
    }

    struct piped p;
    snprintf(how, sizeof(how), "pipe (level %d)", level);
    CHECK(pipe_open(&p, fbuf, flen, LLM_AR_VERIFY, &a) == 0, "%s: open", how);
    if (a) {
        CHECK(!json_object_get(json_object_get(llm_ar_meta(a), "extra"), "a"),
              "%s: trailer visible before the tensors", how);
        check_contents(a, how, 0);
        llm_ar_close(a);
    }
    pipe_close(&p);

    snprintf(how, sizeof(how), "pipe, load all (level %d)", level);
    CHECK(pipe_open(&p, fbuf, flen, LLM_AR_LOAD_ALL | LLM_AR_VERIFY, &a) == 0, "%s: open", how);
    if (a) {
        check_contents(a, how, 1);
        llm_ar_close(a);
    }
    pipe_close(&p);

    /* stdin that is a regular file is mapped */
    int saved = dup(0);
    int fd = open(path, O_RDONLY);
    dup2(fd, 0);
    close(fd);
    snprintf(how, sizeof(how), "stdin file (level %d)", level);
    CHECK(llm_ar_open(&a, "-", 0) == 0, "%s: open", how);
    if (a) {
        check_contents(a, how, 1);
        llm_ar_close(a);
    }
    dup2(saved, 0);
    close(saved);
    free(fbuf);
    free(pbuf);
    printf("ok: round trips at level %d: file, memory, pipe, pipe+load-all, stdin\n", level);
}

/* ---- crafted files ------------------------------------------------------- */

struct layout {
    uint32_t hl;
    uint64_t meta_len, first, end, trailer_len, index, count, len;
    uint64_t rec[NT];
    uint32_t rl[NT];
    uint64_t data[NT], stored[NT];
};

static void get_layout(const uint8_t *b, size_t len, struct layout *L)
{
    memset(L, 0, sizeof(*L));
    L->len = len;
    L->hl = rd32(b + 12);
    L->meta_len = rd64(b + 16);
    const uint8_t *f = b + len - 64;
    L->index = rd64(f);
    L->count = rd64(f + 8);
    L->end = rd64(f + 24);
    for (uint64_t i = 0; i < L->count && i < NT; i++) {
        L->rec[i] = rd64(b + L->index + 8 * i);
        L->rl[i] = rd32(b + L->rec[i] + 4);
        L->data[i] = (L->rec[i] + L->rl[i] + 63) & ~63ull;
        L->stored[i] = rd64(b + L->rec[i] + 24);
    }
    L->trailer_len = rd64(b + L->end + 16);
}

/* Recompute every checksum from the layout. */
static void refix(uint8_t *b, const struct layout *L)
{
    wr64(b + 24, XXH3_64bits(b + L->hl, L->meta_len));
    wr64(b + L->hl - 8, XXH3_64bits(b, L->hl - 8));
    for (uint64_t i = 0; i < L->count; i++)
        wr64(b + L->rec[i] + L->rl[i] - 8, XXH3_64bits(b + L->rec[i], L->rl[i] - 8));
    wr64(b + L->end + 24, XXH3_64bits(b + L->end + 48, L->trailer_len));
    wr64(b + L->end + 40, XXH3_64bits(b + L->end, 40));
    uint8_t *f = b + L->len - 64;
    wr64(f + 16, XXH3_64bits(b + L->index, 8 * L->count));
    wr64(f + 48, XXH3_64bits(f, 48));
}

/* Replace the metadata (or trailer) text in place, padded with spaces. */
static void set_json(uint8_t *b, uint64_t off, uint64_t len, const char *text)
{
    size_t n = strlen(text);
    if (n > len) {
        fprintf(stderr, "crafted JSON does not fit (%zu > %llu)\n", n, (unsigned long long)len);
        exit(99);
    }
    memset(b + off, ' ', len);
    memcpy(b + off, text, n);
}

static int find_rec(const char *name)
{
    for (int i = 0; i < NT; i++)
        if (!strcmp(S[i].name, name)) return i;
    return -1;
}

/* Read every tensor (verifying); returns the first error or 0. */
static int read_all(struct llm_artifact *a)
{
    struct llm_tensor t;
    int rc;
    while ((rc = llm_ar_next(a, &t)) == 1) {
    }
    return rc;
}

/* code 0: any failure */
static void expect_reject(const char *what, const uint8_t *b, size_t len, int code,
                          const char *msg)
{
    struct llm_artifact *a = NULL;
    int rc = llm_ar_open_mem(&a, b, len, "crafted.llm", LLM_AR_VERIFY);
    if (!rc) {
        rc = read_all(a);
        llm_ar_close(a);
    }
    CHECK(code ? rc == code : rc < 0, "%s: memory reader returned %d (%s), expected %d", what,
          rc, llm_strerror(rc), code);
    CHECK(!msg || strstr(llm_errmsg(), msg), "%s: message '%s' lacks '%s'", what, llm_errmsg(),
          msg);
    CHECK(!strncmp(llm_errmsg(), "'crafted.llm'", 13), "%s: message does not name the file: %s",
          what, llm_errmsg());

    struct piped p;
    a = NULL;
    rc = pipe_open(&p, b, len, LLM_AR_VERIFY, &a);
    if (!rc) {
        rc = read_all(a);
        llm_ar_close(a);
    }
    pipe_close(&p);
    CHECK(rc < 0, "%s: stream reader accepted it", what);
    CHECK(strstr(llm_errmsg(), "'/dev/fd/"), "%s: stream message does not name the input: %s",
          what, llm_errmsg());
    printf("ok: rejects %s: %s\n", what, llm_errmsg());
}

static void test_rejections(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/sample-0.llm", tmpdir);
    uint8_t *orig, *b;
    size_t len;
    if (read_file(path, &orig, &len)) {
        CHECK(0, "no sample file");
        return;
    }
    struct layout L;
    get_layout(orig, len, &L);
    CHECK(L.count == NT, "layout count %llu", (unsigned long long)L.count);
    b = malloc(len + 128);
    int ib = find_rec("t.b"), i32 = find_rec("t.f32");
    uint8_t *rb = NULL;
#define FRESH() (memcpy(b, orig, len), rb = b + L.rec[ib])

    /* header */
    FRESH();
    b[1] = 'X';
    expect_reject("bad magic", b, len, LLM_EFORMAT, "bad magic");
    FRESH();
    b[8] = 2;
    b[10] = 0;
    expect_reject("major 2", b, len, LLM_EVERSION,
                  "artifact format version 2.0 is newer than this reader (1.1); upgrade llm");
    FRESH();
    b[8] = 0;
    expect_reject("major 0", b, len, LLM_EVERSION, "unknown artifact format version 0.1");
    FRESH();
    wr32(b + 12, 65);
    expect_reject("header length not a multiple of 8", b, len, LLM_EFORMAT, "header length");
    FRESH();
    wr32(b + 12, 8192);
    expect_reject("header length too large", b, len, LLM_EFORMAT, "header length");
    FRESH();
    b[40] = 1;
    refix(b, &L);
    expect_reject("reserved header bytes", b, len, LLM_EFORMAT, "reserved");
    FRESH();
    b[57] ^= 1;
    expect_reject("header checksum", b, len, LLM_ECHECKSUM, "header checksum");
    FRESH();
    wr64(b + 16, len * 2);
    wr64(b + 56, XXH3_64bits(b, 56));
    expect_reject("metadata past the end", b, len, LLM_ETRUNC, "metadata");
    FRESH();
    wr64(b + 16, ((uint64_t)1 << 30) + 1);
    wr64(b + 56, XXH3_64bits(b, 56));
    expect_reject("metadata over 1 GiB", b, len, LLM_EFORMAT, "metadata length");
    expect_reject("file shorter than header + footer", orig, 100, LLM_ETRUNC, "too short");

    /* metadata */
    FRESH();
    b[L.hl + 3] ^= 0x20;
    expect_reject("metadata checksum", b, len, LLM_ECHECKSUM, "metadata checksum");
    FRESH();
    set_json(b, L.hl, L.meta_len, "{\"a\": 1, \"a\": 2}");
    refix(b, &L);
    expect_reject("duplicate metadata keys", b, len, LLM_EFORMAT, "duplicate");
    FRESH();
    set_json(b, L.hl, L.meta_len,
             "{\"format\":{\"name\":\"llm-artifact\",\"major\":1,\"minor\":1},"
             "\"m\":{\"x\":1,\"x\":1}}");
    refix(b, &L);
    expect_reject("nested duplicate metadata keys", b, len, LLM_EFORMAT, "duplicate");
    FRESH();
    set_json(b, L.hl, L.meta_len, "[1, 2]");
    refix(b, &L);
    expect_reject("metadata not an object", b, len, LLM_EFORMAT, "not a JSON object");
    FRESH();
    set_json(b, L.hl, L.meta_len, "{\"format\": {\"name\": \"llm-artifact\", \"major\": 1, "
                                  "\"minor\": 2}}");
    refix(b, &L);
    expect_reject("format member disagrees", b, len, LLM_EFORMAT, "disagrees");
    FRESH();
    set_json(b, L.hl, L.meta_len, "{\"model\": {}}");
    refix(b, &L);
    expect_reject("no format member", b, len, LLM_EFORMAT, "\"format\"");
    FRESH();
    set_json(b, L.hl, L.meta_len, "{\"format\": 1, ");
    refix(b, &L);
    expect_reject("metadata not JSON", b, len, LLM_EFORMAT, "not valid JSON");
    FRESH();
    b[L.hl + L.meta_len] = 1; /* padding after the metadata */
    if ((L.hl + L.meta_len) % 64) expect_reject("metadata padding", b, len, LLM_EFORMAT,
                                                "padding after the metadata");

    /* records */
    FRESH();
    rb[0] = 'X';
    expect_reject("record magic", b, len, LLM_EFORMAT, "no tensor record");
    FRESH();
    wr32(rb + 4, L.rl[ib] + 8);
    expect_reject("record header length", b, len, LLM_EFORMAT, "header length");
    FRESH();
    rb[8] = 0;
    rb[9] = 0;
    refix(b, &L);
    expect_reject("empty name", b, len, LLM_EFORMAT, "name length");
    FRESH();
    rb[11] = 9;
    refix(b, &L);
    expect_reject("ndim 9", b, len, LLM_EFORMAT, "dimensions");
    FRESH();
    rb[10] = 99;
    refix(b, &L);
    expect_reject("unknown dtype", b, len, LLM_EFORMAT, "unknown dtype");
    FRESH();
    rb[12] = 5;
    refix(b, &L);
    expect_reject("unknown compression", b, len, LLM_EFORMAT, "unknown compression");
    FRESH();
    rb[14] = 1;
    refix(b, &L);
    expect_reject("reserved record bytes", b, len, LLM_EFORMAT, "reserved");
    FRESH();
    wr64(rb + 40, (uint64_t)-2);
    refix(b, &L);
    expect_reject("negative dimension", b, len, LLM_EFORMAT, "negative dimension");
    FRESH();
    wr64(rb + 40, (uint64_t)1 << 62);
    wr64(rb + 48, (uint64_t)1 << 62);
    refix(b, &L);
    expect_reject("shape overflow", b, len, LLM_ERANGE, "overflows");
    FRESH();
    wr64(rb + 40, 3);
    refix(b, &L);
    expect_reject("numel x dtype size != raw size", b, len, LLM_ESHAPE, "give 144 bytes");
    FRESH();
    wr64(rb + 24, L.stored[ib] + 64);
    refix(b, &L);
    expect_reject("stored != raw uncompressed", b, len, LLM_EFORMAT, "stored size");
    FRESH();
    rb[12] = 1; /* zstd, but stored == raw */
    refix(b, &L);
    expect_reject("compressed not smaller", b, len, LLM_EFORMAT, "impossible");
    FRESH();
    memcpy(rb + 40 + 8 * 3, "t b", 3); /* "t.b" -> "t b" */
    refix(b, &L);
    expect_reject("space in a name", b, len, LLM_EFORMAT, "printable");
    FRESH();
    rb[40 + 8 * 3 + 3] = 1; /* header padding after the name */
    refix(b, &L);
    expect_reject("non-zero header padding", b, len, LLM_EFORMAT, "padding");
    FRESH();
    memcpy(b + L.rec[find_rec("t.rand")] + 40 + 8, "t.bf16", 6); /* same length */
    refix(b, &L);
    expect_reject("duplicate tensor names", b, len, LLM_EFORMAT, "'t.bf16' appears twice");
    FRESH();
    rb[L.rl[ib] - 8] ^= 1;
    expect_reject("record header checksum", b, len, LLM_ECHECKSUM, "header checksum");
    FRESH();
    b[L.data[i32] + 1] ^= 0x40;
    expect_reject("tensor data checksum", b, len, LLM_ECHECKSUM,
                  "tensor 't.f32' checksum mismatch (stored ");
    /* llm_ar_verify_all (what loading a model does): without LLM_AR_VERIFY
     * the lazy reads trust the data, verify_all finds the first changed
     * tensor in file order */
    FRESH();
    int ilast = NT - 1, ifirst = i32 < ilast ? i32 : 0;
    b[L.data[ilast] + L.stored[ilast] / 2] ^= 0x01;
    b[L.data[ifirst] + 1] ^= 0x40;
    {
        struct llm_artifact *a = NULL;
        CHECK(llm_ar_open_mem(&a, b, len, "crafted.llm", 0) == 0, "verify_all: open");
        if (a) {
            int rc = llm_ar_verify_all(a);
            char want[128];
            snprintf(want, sizeof want, "'crafted.llm': tensor '%s' checksum mismatch",
                     S[ifirst].name);
            CHECK(rc == LLM_ECHECKSUM && strstr(llm_errmsg(), want),
                  "verify_all: %d '%s', expected '%s'", rc, llm_errmsg(), want);
            printf("ok: verify_all reports the first changed tensor: %s\n", llm_errmsg());
            llm_ar_close(a);
        }
    }
    FRESH();
    b[L.data[i32] + L.stored[i32]] = 7; /* padding after data */
    expect_reject("data padding", b, len, LLM_EFORMAT, "padding after data");

    /* index, end record, trailer, footer */
    uint8_t *f;
    FRESH();
    wr64(b + L.index + 8, L.rec[1] + 64);
    refix(b, &L);
    expect_reject("index entry disagrees", b, len, LLM_EFORMAT, "index entry 1");
    FRESH();
    b[L.index + 3] ^= 1;
    expect_reject("index checksum", b, len, LLM_ECHECKSUM, "index checksum");
    FRESH();
    wr64(b + L.end + 8, NT + 1);
    refix(b, &L);
    expect_reject("end record count", b, len, LLM_EFORMAT, "end record counts");
    FRESH();
    b[L.end + 41] ^= 1;
    expect_reject("end record checksum", b, len, LLM_ECHECKSUM, "end record checksum");
    FRESH();
    b[L.end + 48 + 2] ^= 1;
    expect_reject("trailer checksum", b, len, LLM_ECHECKSUM, "trailer checksum");
    FRESH();
    set_json(b, L.end + 48, L.trailer_len, "{\"x\":1,\"x\":2}");
    refix(b, &L);
    expect_reject("duplicate trailer keys", b, len, LLM_EFORMAT, "duplicate");
    FRESH();
    set_json(b, L.end + 48, L.trailer_len, "{\"format\":{}}");
    refix(b, &L);
    expect_reject("format in the trailer", b, len, LLM_EFORMAT, "\"format\"");
    FRESH();
    f = b + len - 64;
    f[50] ^= 1;
    expect_reject("footer checksum", b, len, LLM_ECHECKSUM, "footer checksum");
    FRESH();
    f = b + len - 64;
    f[63] = 'X';
    expect_reject("footer magic", b, len, LLM_EFORMAT, "footer magic");
    FRESH();
    f = b + len - 64;
    wr64(f + 32, len + 64);
    refix(b, &L);
    expect_reject("footer file size", b, len, LLM_EFORMAT, "footer disagrees");
    FRESH();
    f = b + len - 64;
    wr64(f + 24, L.end - 64);
    refix(b, &L);
    expect_reject("footer end offset", b, len, LLM_EFORMAT, "footer disagrees");
    FRESH();
    f = b + len - 64;
    wr64(f + 8, 1000000);
    refix(b, &L);
    expect_reject("footer index count", b, len, LLM_EFORMAT, "index");
    expect_reject("truncated by one byte", orig, len - 1, LLM_EFORMAT, "footer");
    expect_reject("truncated by the footer", orig, len - 64, LLM_EFORMAT, "footer");
    FRESH();
    memset(b + len, 0, 64);
    expect_reject("trailing junk", b, len + 64, LLM_EFORMAT, "footer");

    /* a newer minor is read; reserved bytes are then ignored */
    FRESH();
    b[10] = 3;
    b[40] = 0x55;
    {
        char *m = memmem(b + L.hl, L.meta_len, "\"minor\":1", 9);
        CHECK(m != NULL, "no minor in the metadata");
        if (m) m[8] = '3';
    }
    refix(b, &L);
    struct llm_artifact *a;
    CHECK(llm_ar_open_mem(&a, b, len, "newer.llm", LLM_AR_VERIFY) == 0, "newer minor refused");
    if (a) {
        int ma, mi;
        llm_ar_version(a, &ma, &mi);
        CHECK(ma == 1 && mi == 3, "newer minor: version %d.%d", ma, mi);
        CHECK(read_all(a) == 0, "newer minor: tensors");
        llm_ar_close(a);
        printf("ok: accepts a newer minor (1.3) with reserved bytes set\n");
    }
    /* an older minor too: the bundled model was written in 1.0 */
    char dflt[4200];
    snprintf(dflt, sizeof dflt, "%s/lib/data/default.llm", getenv("LLM_SRCDIR") ? getenv("LLM_SRCDIR") : ".");
    CHECK(llm_ar_open(&a, dflt, LLM_AR_VERIFY) == 0, "a 1.0 file refused: %s", llm_errmsg());
    if (a) {
        int ma, mi;
        llm_ar_version(a, &ma, &mi);
        CHECK(ma == 1 && mi == 0 && read_all(a) == 0, "1.0 file: version %d.%d", ma, mi);
        llm_ar_close(a);
        printf("ok: reads a 1.0 file (lib/data/default.llm)\n");
    }
    free(b);
    free(orig);
}

/* zstd records: crafted from the compressed sample */
static void test_zstd_rejections(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/sample-3.llm", tmpdir);
    uint8_t *orig, *b;
    size_t len;
    if (read_file(path, &orig, &len)) {
        CHECK(0, "no compressed sample file");
        return;
    }
    struct layout L;
    get_layout(orig, len, &L);
    int ib = find_rec("t.big");
    b = malloc(len);
    uint8_t *rb = b + L.rec[ib];
    CHECK(orig[L.rec[ib] + 12] == 1, "t.big is not compressed in the sample");
#define ZFRESH() (memcpy(b, orig, len))
    ZFRESH();
    b[L.data[ib]] ^= 0xff; /* frame magic */
    expect_reject("bad zstd frame", b, len, LLM_EFORMAT, "zstd");
    ZFRESH();
    b[L.data[ib] + L.stored[ib] / 2] ^= 0x5a;
    expect_reject("corrupt zstd data", b, len, 0, "t.big");
    if (L.stored[ib] % 64) {
        ZFRESH();
        wr64(rb + 24, L.stored[ib] + 1);
        refix(b, &L);
        expect_reject("zstd frame shorter than stored size", b, len, LLM_EFORMAT,
                      "does not fill");
    }
    ZFRESH();
    wr64(rb + 24, 1);
    refix(b, &L);
    expect_reject("impossible compression ratio", b, len, LLM_EFORMAT, "impossible");
    free(b);
    free(orig);
}

static void test_writer_errors(void)
{
    char dir[512], path[600];
    snprintf(dir, sizeof(dir), "%s/w", tmpdir);
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/out.llm", dir);
    json_t *meta = sample_meta();
    struct llm_aw *w;
    int64_t shp[2] = {2, 2};
    float d[4] = {1, 2, 3, 4};
    CHECK(llm_aw_create(&w, path, meta, NULL) == 0, "create");
    if (w) {
        CHECK(llm_aw_add(w, "x", LLM_DTYPE_F32, 2, shp, d, 16) == 0, "add x");
        CHECK(llm_aw_add(w, "x", LLM_DTYPE_F32, 2, shp, d, 16) == LLM_EINVAL, "duplicate add");
        CHECK(llm_aw_add(w, "a b", LLM_DTYPE_F32, 2, shp, d, 16) == LLM_EINVAL, "name space");
        CHECK(llm_aw_add(w, "", LLM_DTYPE_F32, 2, shp, d, 16) == LLM_EINVAL, "empty name");
        CHECK(llm_aw_add(w, "y", LLM_DTYPE_F32, 2, shp, d, 12) == LLM_ESHAPE, "size mismatch");
        CHECK(llm_aw_add(w, "y", LLM_DTYPE_COUNT, 2, shp, d, 16) == LLM_EINVAL, "bad dtype");
        CHECK(llm_aw_add(w, "y", LLM_DTYPE_F32, 9, shp, d, 16) == LLM_EINVAL, "ndim 9");
        json_t *bad = json_pack("{s:i}", "format", 1);
        CHECK(llm_aw_set_trailer(w, bad) == LLM_EINVAL, "format in trailer");
        json_decref(bad);
        llm_aw_abort(w);
    }
    DIR *dd = opendir(dir);
    int left = 0;
    struct dirent *e;
    while (dd && (e = readdir(dd)))
        if (e->d_name[0] != '.' || strlen(e->d_name) > 2) left++;
    if (dd) closedir(dd);
    CHECK(left == 0, "abort left %d files in %s", left, dir);
    snprintf(path, sizeof(path), "%s/missing/out.llm", dir);
    CHECK(llm_aw_create(&w, path, meta, NULL) == LLM_EIO, "create in a missing folder");
    CHECK(strstr(llm_errmsg(), "missing/out.llm") != NULL, "message names the path: %s",
          llm_errmsg());
    struct llm_aw_opts o = {.compress_level = 99};
    snprintf(path, sizeof(path), "%s/out.llm", dir);
    CHECK(llm_aw_create(&w, path, meta, &o) == LLM_EINVAL, "compression level 99");
    json_decref(meta);
    rmdir(dir);
    printf("ok: writer rejects bad tensors and leaves nothing behind on abort\n");
}

/* Tensors over one 32 MiB chunk: data is read (hashed, compressed) and
 * written a chunk at a time, and each chunk is handed to the release
 * callback in order once the writer is done with it. */
struct rel_log {
    const uint8_t *base;
    uint64_t next, total, calls, max;
    int out_of_order;
};

static void log_release(void *ctx, const void *p, uint64_t len)
{
    struct rel_log *l = ctx;
    uint64_t off = (uint64_t)((const uint8_t *)p - l->base);
    if (off != l->next && off != 0) l->out_of_order = 1; /* 0: the next pass */
    l->next = off + len;
    l->total += len;
    l->calls++;
}

static void test_big(int level)
{
    const uint64_t n = (uint64_t)40 << 20;
    uint8_t *d = malloc(n);
    for (uint64_t k = 0; k < n; k++) d[k] = (uint8_t)((k >> 12) * 7 + (k % 3 == 0 ? k : 0));
    char path[600];
    snprintf(path, sizeof(path), "%s/big.llm", tmpdir);
    struct rel_log lg = {.base = d, .max = n};
    struct llm_aw_opts o = {.compress_level = level, .release = log_release, .release_ctx = &lg};
    struct llm_aw *w;
    json_t *meta = json_object();
    int64_t shape[1] = {(int64_t)n};
    int rc = llm_aw_create(&w, path, meta, &o);
    json_decref(meta);
    if (!rc) rc = llm_aw_add(w, "big", LLM_DTYPE_U8, 1, shape, d, n);
    if (!rc) rc = llm_aw_finish(w);
    CHECK(rc == 0, "big tensor (level %d) written", level);
    CHECK(!lg.out_of_order, "level %d: released ranges out of order", level);
    /* hashed (and compressed) in one pass; raw data is read once more to write it */
    uint64_t want = level ? n : 2 * n;
    CHECK(lg.total == want && lg.calls == (level ? 2u : 4u),
          "level %d: released %llu bytes in %llu calls, expected %llu in %u", level,
          (unsigned long long)lg.total, (unsigned long long)lg.calls, (unsigned long long)want,
          level ? 2u : 4u);
    struct llm_artifact *a;
    struct llm_tensor t;
    CHECK(llm_ar_open(&a, path, LLM_AR_VERIFY) == 0, "big: open");
    if (a) {
        CHECK(llm_ar_find(a, "big", &t) == 0 && t.nbytes == n && !memcmp(t.data, d, n),
              "level %d: big tensor read back differs", level);
        CHECK(level ? llm_ar_stored_size(a, 0) < n / 4 : llm_ar_stored_size(a, 0) == n,
              "level %d: stored %llu", level, (unsigned long long)llm_ar_stored_size(a, 0));
        printf("ok: 40 MiB tensor at level %d: %llu stored, released in %llu chunks\n", level,
               (unsigned long long)llm_ar_stored_size(a, 0), (unsigned long long)lg.calls);
        llm_ar_release(a, 0);
        llm_ar_close(a);
    }
    unlink(path);
    free(d);
}

static void cleanup(void)
{
    char path[600];
    for (int lv = 0; lv <= 3; lv += 3) {
        snprintf(path, sizeof(path), "%s/sample-%d.llm", tmpdir, lv);
        unlink(path);
    }
    rmdir(tmpdir);
}

/* Seed corpus of the artifact fuzz target (tests/fuzz/corpus/artifact):
 * small valid files of each kind and a few broken ones. */
static int write_blob(const char *dir, const char *name, const uint8_t *b, size_t n)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(b, 1, n, fp) != n) return 1;
    return fclose(fp) ? 1 : 0;
}

static int write_small(const char *path, int level, int ntensors)
{
    struct llm_aw *w;
    json_t *meta = json_pack("{s:n, s:{s:i}}", "model", "mapping", "world_size", 1);
    struct llm_aw_opts o = {.compress_level = level, .compress_min = 1};
    int rc = llm_aw_create(&w, path, meta, &o);
    json_decref(meta);
    if (rc) return rc;
    static uint8_t zeros[2048];
    float f[6] = {1, 2, 3, 4, 5, 6};
    uint8_t i4[3] = {0x12, 0x34, 0x05};
    int64_t s23[2] = {2, 3}, s5[1] = {5}, s0[2] = {0, 4}, s1k[1] = {1024};
    if (ntensors > 0) rc = llm_aw_add(w, "a.weight", LLM_DTYPE_F32, 2, s23, f, sizeof(f));
    if (!rc && ntensors > 1) rc = llm_aw_add(w, "b.i4", LLM_DTYPE_I4, 1, s5, i4, 3);
    if (!rc && ntensors > 2) rc = llm_aw_add(w, "c.empty", LLM_DTYPE_U8, 2, s0, zeros, 0);
    if (!rc && ntensors > 3)
        rc = llm_aw_add(w, "transformer.ln_f.weight", LLM_DTYPE_BF16, 1, s1k, zeros, 2048);
    json_t *tr = json_pack("{s:[{s:s}]}", "provenance", "tool", "test");
    if (!rc) rc = llm_aw_set_trailer(w, tr);
    json_decref(tr);
    if (rc) {
        llm_aw_abort(w);
        return rc;
    }
    return llm_aw_finish(w);
}

static int write_corpus(const char *dir)
{
    char path[1024];
    const struct {
        const char *name;
        int level, n;
    } kinds[] = {{"raw.llm", 0, 4}, {"zstd.llm", 3, 4}, {"empty.llm", 0, 0}, {"one.llm", 0, 1}};
    uint8_t *b;
    size_t len;
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        snprintf(path, sizeof(path), "%s/%s", dir, kinds[k].name);
        if (write_small(path, kinds[k].level, kinds[k].n)) return 1;
    }
    snprintf(path, sizeof(path), "%s/raw.llm", dir);
    if (read_file(path, &b, &len)) return 1;
    int rc = write_blob(dir, "truncated.llm", b, len - 10);
    b[8] = 2; /* major 2 */
    rc |= write_blob(dir, "major2.llm", b, len);
    b[8] = 1;
    b[10] = 3; /* minor 3: the metadata must say so too */
    char *m = memmem(b + 64, len - 64, "\"minor\":0", 9);
    if (m) m[8] = '3';
    struct layout L;
    get_layout(b, len, &L);
    refix(b, &L);
    rc |= write_blob(dir, "minor3.llm", b, len);
    free(b);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--corpus")) return write_corpus(argv[2]);
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmpdir, sizeof(tmpdir), "%s/test-artifact-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    make_samples();
    test_round_trips(0);
    test_round_trips(3);
    test_rejections();
    test_zstd_rejections();
    test_writer_errors();
    test_big(0);
    test_big(1);
    cleanup();
    for (int i = 0; i < NT; i++) free(S[i].data);
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
