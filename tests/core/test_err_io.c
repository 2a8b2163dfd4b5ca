/* test_err_io.c - error names and detail messages (err.c), and the file
 * helpers (io.c): whole-file reads and their limits, mappings, outputs that
 * appear only when committed, and the cleanup of temporaries on a fatal
 * signal or exit.
 *
 * Everything happens in a fresh folder under $LLM_BUILDDIR (or /tmp), which
 * is removed at the end; after each output operation the folder is listed to
 * prove that no temporary file is left behind.  The first mismatch is printed
 * and the test exits 1.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "llm/err.h"
#include "llm/io.h"

static char root[PATH_MAX];

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void expect_str(const char *got, const char *want, const char *what)
{
    if (strcmp(got, want)) fail("%s: got '%s', expected '%s'", what, got, want);
}

static void expect_has(const char *got, const char *part, const char *what)
{
    if (!strstr(got, part)) fail("%s: '%s' does not contain '%s'", what, got, part);
}

static void path_join(char *buf, size_t cap, const char *dir, const char *name)
{
    if ((size_t)snprintf(buf, cap, "%s/%s", dir, name) >= cap) fail("path too long: %s", name);
}

static void path_in(char *buf, size_t cap, const char *name)
{
    path_join(buf, cap, root, name);
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(data, 1, len, fp) != len || fclose(fp) != 0)
        fail("unable to write fixture '%s': %s", path, strerror(errno));
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Names in folder dir, excluding . and .., joined by spaces, sorted order
 * not guaranteed; returns the count. */
static int list_dir(const char *dir, char *names, size_t cap)
{
    DIR *d = opendir(dir);
    if (!d) fail("unable to list '%s': %s", dir, strerror(errno));
    int n = 0;
    names[0] = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        size_t l = strlen(names);
        snprintf(names + l, cap - l, "%s%s", l ? " " : "", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

/* The folder must hold exactly the names given (NULL-terminated). */
static void expect_dir(const char *dir, const char *what, ...)
{
    char names[4096];
    int n = list_dir(dir, names, sizeof(names)), want = 0;
    va_list ap;
    va_start(ap, what);
    const char *name;
    while ((name = va_arg(ap, const char *))) {
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s", dir, name);
        if (!exists(p)) fail("%s: '%s' missing (folder holds: %s)", what, name, names);
        want++;
    }
    va_end(ap);
    if (n != want) fail("%s: folder holds %d entries (%s), expected %d", what, n, names, want);
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* ---- err.c ---------------------------------------------------------------- */

static void test_strerror(void)
{
    const char *names[LLM_ERR_COUNT];
    for (int i = 0; i < LLM_ERR_COUNT; i++) {
        names[i] = llm_strerror(-i);
        if (!names[i] || !names[i][0]) fail("llm_strerror(%d) is empty", -i);
        if (!strcmp(names[i], "unknown error")) fail("llm_strerror(%d) is 'unknown error'", -i);
        for (int j = 0; j < i; j++)
            if (!strcmp(names[i], names[j]))
                fail("llm_strerror(%d) and llm_strerror(%d) are both '%s'", -i, -j, names[i]);
    }
    expect_str(llm_strerror(LLM_OK), "success", "llm_strerror(LLM_OK)");
    expect_str(llm_strerror(LLM_EFORMAT), "corrupt or malformed input", "llm_strerror(EFORMAT)");
    expect_str(llm_strerror(LLM_ECAPACITY), "exceeds engine capacity", "llm_strerror(ECAPACITY)");
    const int bad[] = {1, 7, -LLM_ERR_COUNT, -100, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_str(llm_strerror(bad[i]), "unknown error", "llm_strerror(out of range)");
    printf("ok: llm_strerror: %d distinct names, out-of-range codes give 'unknown error'\n",
           LLM_ERR_COUNT);
}

static int setv_helper(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = llm_err_setv(err, fmt, ap);
    va_end(ap);
    return rc;
}

static void test_err_set_wrap(void)
{
    llm_err_clear();
    expect_str(llm_errmsg(), "", "detail after clear");
    if (llm_errcode() != 0) fail("code after clear: %d", llm_errcode());

    int rc = llm_err_set(LLM_EFORMAT, "'%s': bad magic %d", "x.bin", 7);
    if (rc != LLM_EFORMAT || llm_errcode() != LLM_EFORMAT)
        fail("llm_err_set returned %d, code %d, expected %d", rc, llm_errcode(), LLM_EFORMAT);
    expect_str(llm_errmsg(), "'x.bin': bad magic 7", "llm_err_set detail");
    if (setv_helper(LLM_ETRUNC, "%s ends at %u", "'y'", 3u) != LLM_ETRUNC)
        fail("llm_err_setv return value");
    expect_str(llm_errmsg(), "'y' ends at 3", "llm_err_setv detail");

    /* the new detail may quote the old one */
    llm_err_set(LLM_EIO, "inner %d", 1);
    llm_err_set(LLM_EIO, "outer: %s", llm_errmsg());
    expect_str(llm_errmsg(), "outer: inner 1", "llm_err_set quoting the previous detail");

    /* wrap prefixes, also repeatedly */
    llm_err_set(LLM_EFORMAT, "'a': bad");
    if (llm_err_wrap(LLM_EFORMAT, "loading '%s'", "m") != LLM_EFORMAT) fail("wrap return value");
    expect_str(llm_errmsg(), "loading 'm': 'a': bad", "llm_err_wrap");
    llm_err_wrap(LLM_EUNSUPPORTED, "outer");
    expect_str(llm_errmsg(), "outer: loading 'm': 'a': bad", "llm_err_wrap twice");
    if (llm_errcode() != LLM_EUNSUPPORTED) fail("wrap did not set the code");
    /* with no detail, the code's name stands in */
    llm_err_clear();
    llm_err_wrap(LLM_ENOMEM, "'%s'", "w");
    expect_str(llm_errmsg(), "'w': out of memory", "llm_err_wrap without detail");

    /* long messages are cut, never overrun */
    char big[3000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    llm_err_set(LLM_EIO, "%s", big);
    size_t l = strlen(llm_errmsg());
    if (l < 500 || l >= sizeof(big) - 1) fail("long detail has length %zu", l);
    llm_err_wrap(LLM_EIO, "%s", big);
    l = strlen(llm_errmsg());
    if (l < 500 || l >= sizeof(big) - 1 || llm_errmsg()[0] != 'a') fail("long wrap: length %zu", l);
    llm_err_set(LLM_EIO, "short");
    llm_err_wrap(LLM_EIO, "%s", big);
    l = strlen(llm_errmsg());
    if (l < 500 || l >= sizeof(big) - 1) fail("long wrap prefix: length %zu", l);
    llm_err_clear();
    printf("ok: llm_err_set/setv/wrap/clear: return values, codes, messages, quoting the previous "
           "detail, nested wraps, truncation of long messages\n");
}

static pthread_barrier_t barrier;

static void *thread_main(void *arg)
{
    const char *name = arg;
    char *bad = NULL;
    if (llm_errmsg()[0] || llm_errcode() != 0) bad = "new thread sees another thread's detail";
    llm_err_set(LLM_EFORMAT, "'%s': thread detail", name);
    pthread_barrier_wait(&barrier); /* every thread has set its own */
    char want[64];
    snprintf(want, sizeof(want), "'%s': thread detail", name);
    if (!bad && strcmp(llm_errmsg(), want)) bad = "thread detail overwritten by another thread";
    if (!bad && llm_errcode() != LLM_EFORMAT) bad = "thread code overwritten by another thread";
    pthread_barrier_wait(&barrier);
    return bad;
}

static void test_err_threads(void)
{
    llm_err_set(LLM_EIO, "main detail");
    pthread_t t[3];
    char *names[3] = {"t0", "t1", "t2"};
    if (pthread_barrier_init(&barrier, NULL, 4)) fail("pthread_barrier_init");
    for (int i = 0; i < 3; i++)
        if (pthread_create(&t[i], NULL, thread_main, names[i])) fail("pthread_create");
    pthread_barrier_wait(&barrier);
    llm_err_set(LLM_ENOMEM, "main detail 2");
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < 3; i++) {
        void *r;
        pthread_join(t[i], &r);
        if (r) fail("thread %d: %s", i, (char *)r);
    }
    pthread_barrier_destroy(&barrier);
    expect_str(llm_errmsg(), "main detail 2", "main thread detail after threads");
    if (llm_errcode() != LLM_ENOMEM) fail("main thread code changed by threads");
    printf("ok: detail messages and codes are per thread (3 threads and main, interleaved)\n");
}

/* ---- io.c: reads and mappings ------------------------------------------- */

static unsigned char *pattern(size_t n)
{
    unsigned char *p = malloc(n ? n : 1);
    if (!p) fail("out of memory");
    uint32_t s = (uint32_t)n * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        p[i] = (unsigned char)(s >> 16); /* NUL bytes included */
    }
    return p;
}

static void test_read_file(void)
{
    char path[PATH_MAX], *buf = (char *)1;
    size_t len = 99;
    path_in(path, sizeof(path), "missing.txt");
    llm_err_clear();
    int rc = llm_read_file(path, &buf, &len, 0);
    if (rc != LLM_EIO || buf != NULL || len != 0)
        fail("read of a missing file: rc %d, buf %p, len %zu", rc, (void *)buf, len);
    expect_has(llm_errmsg(), "missing.txt'", "missing file message");
    expect_has(llm_errmsg(), strerror(ENOENT), "missing file message");

    const size_t sizes[] = {0, 1, 100, 65534, 65535, 65536, 65537, 131071, 131072, 200000};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k];
        unsigned char *data = pattern(n);
        path_in(path, sizeof(path), "r.bin");
        write_bytes(path, data, n);
        const size_t maxes[] = {0, n, n + 1, SIZE_MAX};
        for (size_t m = 0; m < sizeof(maxes) / sizeof(maxes[0]); m++) {
            if (maxes[m] == 0 && m > 0) continue; /* n = 0: "no limit" already done */
            rc = llm_read_file(path, &buf, &len, maxes[m]);
            if (rc != 0) fail("read of %zu bytes with max %zu: %s", n, maxes[m], llm_errmsg());
            if (len != n || memcmp(buf, data, n) || buf[n] != 0)
                fail("read of %zu bytes with max %zu: got %zu bytes%s", n, maxes[m], len,
                     len == n ? " with different content or no NUL" : "");
            free(buf);
        }
        if (n > 1) { /* (max 0 means no limit) */
            rc = llm_read_file(path, &buf, NULL, n - 1);
            if (rc != LLM_ERANGE || buf != NULL)
                fail("read of %zu bytes with max %zu: rc %d, expected ERANGE", n, n - 1, rc);
            expect_has(llm_errmsg(), "r.bin'", "over-limit message");
        }
        free(data);
    }
    rc = llm_read_file(root, &buf, &len, 0);
    if (rc != LLM_EIO || buf) fail("reading a folder: rc %d, expected EIO", rc);
    unlink(path);
    printf("ok: llm_read_file: missing file, folder, sizes 0..200000 around the buffer growth "
           "steps, limits exact/one over/none/SIZE_MAX, NUL terminator\n");
}

static void test_map(void)
{
    char path[PATH_MAX];
    struct llm_map m;
    path_in(path, sizeof(path), "m.bin");
    unsigned char *data = pattern(10000);
    write_bytes(path, data, 10000);
    if (llm_map_file(path, &m)) fail("map: %s", llm_errmsg());
    if (m.len != 10000 || !m.data || memcmp(m.data, data, 10000) || m.fd < 0)
        fail("mapping of 10000 bytes differs");
    llm_map_release(&m, 0, 5000);
    llm_map_release(&m, 9000, 1u << 30); /* past the end: clipped */
    llm_map_release(&m, 20000, 10);      /* wholly past the end: ignored */
    if (memcmp(m.data, data, 10000)) fail("mapping differs after llm_map_release");
    llm_unmap(&m);
    if (m.data || m.len || m.fd != -1) fail("llm_unmap does not reset the map");
    llm_unmap(&m); /* twice is harmless */
    write_bytes(path, "", 0);
    if (llm_map_file(path, &m) || m.data || m.len) fail("empty file map: %s", llm_errmsg());
    llm_unmap(&m);
    if (llm_map_file(root, &m) != LLM_EINVAL) fail("mapping a folder is not EINVAL");
    expect_has(llm_errmsg(), "not a regular file", "folder map message");
    path_in(path, sizeof(path), "nope.bin");
    if (llm_map_file(path, &m) != LLM_EIO) fail("mapping a missing file is not EIO");
    expect_has(llm_errmsg(), "nope.bin'", "missing map message");
    path_in(path, sizeof(path), "m.bin");
    unlink(path);
    free(data);
    printf("ok: llm_map_file: content, release, unmap, empty file, folder, missing file\n");
}

static void test_read_full(void)
{
    char src[] = "abcde", buf[8];
    FILE *fp = fmemopen(src, 5, "rb");
    if (!fp) fail("fmemopen: %s", strerror(errno));
    if (llm_read_full(fp, buf, 3, "'s'")) fail("read_full of 3 of 5 bytes: %s", llm_errmsg());
    if (memcmp(buf, "abc", 3)) fail("read_full content");
    if (llm_read_full(fp, buf, 5, "'s'") != LLM_ETRUNC) fail("short read_full is not ETRUNC");
    expect_str(llm_errmsg(), "'s': input ends after 2 of 5 bytes", "short read_full message");
    fclose(fp);

    /* a pipe fed in small pieces */
    int p[2];
    if (pipe(p)) fail("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) fail("fork: %s", strerror(errno));
    if (pid == 0) {
        close(p[0]);
        for (int i = 0; i < 100; i++) {
            char c = (char)i;
            if (write(p[1], &c, 1) != 1) _exit(1);
            if (i % 10 == 0) usleep(1000);
        }
        _exit(0);
    }
    close(p[1]);
    FILE *in = fdopen(p[0], "rb");
    unsigned char got[100];
    if (llm_read_full(in, got, 100, "pipe")) fail("read_full from a pipe: %s", llm_errmsg());
    for (int i = 0; i < 100; i++)
        if (got[i] != i) fail("pipe byte %d is %d", i, got[i]);
    fclose(in);
    waitpid(pid, NULL, 0);
    printf("ok: llm_read_full: exact, short (ETRUNC with counts), pipe in pieces\n");
}

/* ---- io.c: outputs ---------------------------------------------------------- */

static void expect_file(const char *path, const void *data, size_t len, const char *what)
{
    char *buf;
    size_t n;
    if (llm_read_file(path, &buf, &n, 0)) fail("%s: %s", what, llm_errmsg());
    if (n != len || memcmp(buf, data, len)) fail("%s: %zu bytes, expected %zu", what, n, len);
    free(buf);
}

static void test_out_commit_abort(void)
{
    char dir[PATH_MAX], final[PATH_MAX], prefix[PATH_MAX];
    path_in(dir, sizeof(dir), "out");
    if (mkdir(dir, 0755)) fail("mkdir '%s': %s", dir, strerror(errno));
    path_join(final, sizeof(final), dir, "model.llm");
    path_join(prefix, sizeof(prefix), dir, ".model.llm.tmp-");
    unsigned char *data = pattern(300000);
    struct llm_out o;

    /* commit: nothing under the final name until commit, then only it */
    if (llm_out_open(&o, final)) fail("llm_out_open: %s", llm_errmsg());
    if (!o.fp || !o.tmp || strncmp(o.tmp, prefix, strlen(prefix)) || strcmp(o.path, final))
        fail("llm_out_open: temporary '%s' is not '%s*'", o.tmp ? o.tmp : "", prefix);
    if (exists(final)) fail("final file exists before commit");
    if (!exists(o.tmp)) fail("temporary '%s' does not exist", o.tmp);
    if (llm_out_write(&o, data, 100) || llm_out_write(&o, data + 100, 299900) ||
        llm_out_write(&o, data, 0))
        fail("llm_out_write: %s", llm_errmsg());
    if (o.written != 300000) fail("written = %llu", (unsigned long long)o.written);
    if (exists(final)) fail("final file exists before commit");
    if (llm_out_commit(&o)) fail("llm_out_commit: %s", llm_errmsg());
    if (o.fp || o.tmp || o.path) fail("llm_out_commit leaves pointers behind");
    expect_file(final, data, 300000, "committed file");
    expect_dir(dir, "after commit", "model.llm", (char *)NULL);
    struct stat st;
    if (stat(final, &st) || (st.st_mode & 0777) != 0644)
        fail("committed file mode %o, expected 644", (unsigned)(st.st_mode & 0777));
    llm_out_abort(&o); /* after commit: a no-op */
    expect_dir(dir, "abort after commit", "model.llm", (char *)NULL);

    /* commit replaces an existing file */
    if (llm_out_open(&o, final) || llm_out_write(&o, "new", 3) || llm_out_commit(&o))
        fail("replace: %s", llm_errmsg());
    expect_file(final, "new", 3, "replaced file");
    expect_dir(dir, "after replace", "model.llm", (char *)NULL);

    /* abort: the old file stays as it was, the temporary goes */
    if (llm_out_open(&o, final) || llm_out_write(&o, data, 300000))
        fail("abort setup: %s", llm_errmsg());
    llm_out_abort(&o);
    if (o.fp || o.tmp || o.path) fail("llm_out_abort leaves pointers behind");
    expect_file(final, "new", 3, "file kept by abort");
    expect_dir(dir, "after abort", "model.llm", (char *)NULL);
    unlink(final);
    if (llm_out_open(&o, final)) fail("abort setup: %s", llm_errmsg());
    llm_out_abort(&o);
    llm_out_abort(&o); /* twice is harmless */
    expect_dir(dir, "after abort without any write", (char *)NULL);

    /* two outputs at once: one committed, one aborted */
    struct llm_out a, b;
    char fa[PATH_MAX], fb[PATH_MAX];
    path_join(fa, sizeof(fa), dir, "a.bin");
    path_join(fb, sizeof(fb), dir, "b.bin");
    if (llm_out_open(&a, fa) || llm_out_open(&b, fb) || llm_out_write(&a, "A", 1) ||
        llm_out_write(&b, "B", 1))
        fail("two outputs: %s", llm_errmsg());
    llm_out_abort(&b);
    if (llm_out_commit(&a)) fail("two outputs: %s", llm_errmsg());
    expect_dir(dir, "two outputs", "a.bin", (char *)NULL);
    unlink(fa);

    /* a write error: the commit fails and leaves nothing */
    if (llm_out_open(&o, final) || llm_out_write(&o, "x", 1)) fail("%s", llm_errmsg());
    close(fileno(o.fp)); /* the stream's descriptor goes away under it */
    int rc = llm_out_write(&o, data, 300000);
    if (rc != LLM_EIO) fail("write to a closed descriptor returned %d, expected EIO", rc);
    expect_has(llm_errmsg(), "model.llm'", "write error message");
    rc = llm_out_commit(&o);
    if (rc != LLM_EIO) fail("commit after a write error returned %d, expected EIO", rc);
    expect_dir(dir, "after a failed commit", (char *)NULL);

    /* the final name is a folder: refused at open (and by llm_out_check),
     * before any work; one that appears after the open fails the commit,
     * temporary removed */
    char sub[PATH_MAX];
    path_join(sub, sizeof(sub), dir, "sub");
    if (mkdir(sub, 0755)) fail("mkdir: %s", strerror(errno));
    if (llm_out_open(&o, sub) != LLM_EINVAL || llm_out_check(sub) != LLM_EINVAL)
        fail("an output onto a folder is not refused at open");
    expect_has(llm_errmsg(), "it is a folder", "output onto a folder message");
    expect_dir(dir, "after refusing a folder", "sub", (char *)NULL);
    rmdir(sub);
    if (llm_out_open(&o, sub) || llm_out_write(&o, "x", 1)) fail("%s", llm_errmsg());
    if (mkdir(sub, 0755)) fail("mkdir: %s", strerror(errno));
    if (llm_out_commit(&o) != LLM_EIO) fail("commit onto a folder did not fail");
    expect_has(llm_errmsg(), "sub'", "commit onto a folder message");
    expect_dir(dir, "after commit onto a folder", "sub", (char *)NULL);
    rmdir(sub);

    /* a path without a folder part is relative to the working folder */
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd)) || chdir(dir)) fail("chdir: %s", strerror(errno));
    if (llm_out_open(&o, "rel.bin") || llm_out_write(&o, "rel", 3) || llm_out_commit(&o))
        fail("relative output: %s", llm_errmsg());
    if (chdir(cwd)) fail("chdir back: %s", strerror(errno));
    expect_dir(dir, "relative output", "rel.bin", (char *)NULL);
    path_join(fa, sizeof(fa), dir, "rel.bin");
    expect_file(fa, "rel", 3, "relative output");
    unlink(fa);
    free(data);
    printf("ok: llm_out: commit (large, replace, mode 644), abort (old file kept), two at once, "
           "write error, folder in the way, relative path; no temporary left each time\n");
}

static void test_out_errors(void)
{
    char path[PATH_MAX];
    struct llm_out o;
    path_in(path, sizeof(path), "no/such/folder/x.bin");
    llm_err_clear();
    int rc = llm_out_open(&o, path);
    if (rc != LLM_EIO) fail("output in a missing folder: rc %d, expected EIO", rc);
    if (o.fp || o.tmp || o.path) fail("failed llm_out_open leaves pointers behind");
    char quoted[PATH_MAX + 2];
    snprintf(quoted, sizeof(quoted), "'%s'", path);
    expect_has(llm_errmsg(), quoted, "missing folder message");
    expect_has(llm_errmsg(), strerror(ENOENT), "missing folder message");
    llm_out_abort(&o); /* safe after a failed open */
    printf("ok: output in a missing folder: EIO, \"%s\"\n", llm_errmsg());

    path_in(path, sizeof(path), "out/");
    if (llm_out_open(&o, path) != LLM_EINVAL) fail("output path ending in '/' is not EINVAL");
    expect_has(llm_errmsg(), "folder", "trailing slash message");

    /* llm_out_check: the same verdicts as llm_out_open, nothing left behind */
    path_in(path, sizeof(path), "no/such/folder/x.bin");
    if (llm_out_check(path) != LLM_EIO) fail("llm_out_check of a missing folder is not EIO");
    expect_has(llm_errmsg(), strerror(ENOENT), "llm_out_check missing folder message");
    path_in(path, sizeof(path), "checked.bin");
    if (llm_out_check(path) || llm_out_check("-") || llm_out_check(NULL))
        fail("llm_out_check of a writable path: %s", llm_errmsg());
    if (access(path, F_OK) == 0) fail("llm_out_check created '%s'", path);

    /* a device is written in place, never replaced by a rename */
    struct stat before, after;
    if (stat("/dev/null", &before)) fail("stat /dev/null: %s", strerror(errno));
    if (llm_out_check("/dev/null") || llm_out_open(&o, "/dev/null"))
        fail("output to /dev/null: %s", llm_errmsg());
    if (o.tmp) { /* never commit: the rename would replace the device */
        fail("output to /dev/null goes through a temporary '%s'", o.tmp);
        llm_out_abort(&o);
    } else if (llm_out_write(&o, "x", 1) || llm_out_commit(&o)) {
        fail("output to /dev/null: %s", llm_errmsg());
    }
    if (llm_out_open(&o, "/dev/null")) fail("output to /dev/null: %s", llm_errmsg());
    llm_out_abort(&o);
    if (stat("/dev/null", &after) || !S_ISCHR(after.st_mode) || after.st_rdev != before.st_rdev)
        fail("/dev/null is no longer the null device");

    /* "-" is stdout, left open by commit */
    if (llm_out_open(&o, "-") || o.fp != stdout || o.path || o.tmp) fail("'-' is not stdout");
    if (llm_out_write(&o, "", 0) || llm_out_commit(&o)) fail("stdout output: %s", llm_errmsg());
    if (llm_out_open(&o, NULL) || o.fp != stdout) fail("NULL is not stdout");
    llm_out_abort(&o);
    if (fflush(stdout) != 0 || fcntl(fileno(stdout), F_GETFD) == -1)
        fail("stdout closed by llm_out");
    printf("ok: output path ending in '/' refused; llm_out_check; /dev/null written in place; '-' "
           "and NULL write stdout and leave it open\n");
}

/* In a child: open an output, write, then die by SIGTERM or exit without
 * committing; the temporary must be gone either way. */
static void test_out_cleanup(void)
{
    char dir[PATH_MAX];
    path_in(dir, sizeof(dir), "out");
    for (int mode = 0; mode < 2; mode++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) fail("fork: %s", strerror(errno));
        if (pid == 0) {
            char p[PATH_MAX];
            struct llm_out o;
            path_join(p, sizeof(p), dir, "child.bin");
            llm_out_install_cleanup();
            if (llm_out_open(&o, p) || llm_out_write(&o, "partial", 7) || fflush(o.fp)) _exit(3);
            if (!exists(o.tmp)) _exit(4);
            if (mode == 0) raise(SIGTERM);
            exit(0); /* atexit cleanup */
        }
        int status;
        if (waitpid(pid, &status, 0) != pid) fail("waitpid: %s", strerror(errno));
        if (mode == 0 && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM))
            fail("child did not die by SIGTERM (status 0x%x)", status);
        if (mode == 1 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            fail("child did not exit 0 (status 0x%x)", status);
        expect_dir(dir, mode == 0 ? "after SIGTERM" : "after exit without commit", (char *)NULL);
    }
    printf("ok: llm_out_install_cleanup: temporary removed on SIGTERM and on exit without "
           "commit\n");
}

int main(void)
{
    const char *base = getenv("LLM_BUILDDIR");
    snprintf(root, sizeof(root), "%s/test-err-io-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(root)) fail("mkdtemp '%s': %s", root, strerror(errno));
    test_strerror();
    test_err_set_wrap();
    test_err_threads();
    test_read_file();
    test_map();
    test_read_full();
    test_out_commit_abort();
    test_out_errors();
    test_out_cleanup();
    rm_tree(root);
    printf("all err/io checks passed\n");
    return 0;
}
