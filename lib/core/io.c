/* io.c - whole-file reads, read-only mappings, and all-or-nothing outputs.
 *
 * Outputs go to a temporary file in the destination folder and are renamed
 * into place only when complete.  Open temporaries are tracked in a small
 * table so that a fatal signal (SIGINT, SIGTERM, SIGPIPE, SIGHUP) removes
 * them before the process dies: a killed tool leaves nothing behind. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "llm/err.h"
#include "llm/io.h"

int llm_read_file(const char *path, char **buf, size_t *len, size_t max)
{
    *buf = NULL;
    if (len) *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return llm_err_set(LLM_EIO, "unable to open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    if (!b) {
        fclose(fp);
        return llm_err_set(LLM_ENOMEM, "'%s': out of memory", path);
    }
    for (;;) {
        if (n + 1 >= cap) {
            if (max && cap - 1 > max) break; /* (not max + 1: SIZE_MAX would wrap) */
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                fclose(fp);
                return llm_err_set(LLM_ENOMEM, "'%s': out of memory", path);
            }
            b = nb;
            cap *= 2;
        }
        size_t r = fread(b + n, 1, cap - 1 - n, fp);
        n += r;
        if (r == 0) break;
    }
    int err = ferror(fp);
    fclose(fp);
    if (err) {
        free(b);
        return llm_err_set(LLM_EIO, "unable to read '%s'", path);
    }
    if (max && n > max) {
        free(b);
        return llm_err_set(LLM_ERANGE, "'%s': larger than %zu bytes", path, max);
    }
    b[n] = 0;
    *buf = b;
    if (len) *len = n;
    return 0;
}

int llm_map_file(const char *path, struct llm_map *m)
{
    memset(m, 0, sizeof(*m));
    m->fd = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return llm_err_set(LLM_EIO, "unable to open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return llm_err_set(LLM_EIO, "unable to stat '%s': %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return llm_err_set(LLM_EINVAL, "'%s': not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return llm_err_set(LLM_EIO, "unable to map '%s': %s", path, strerror(errno));
        }
        m->data = p;
        m->len = (size_t)st.st_size;
    }
    m->fd = fd;
    return 0;
}

void llm_unmap(struct llm_map *m)
{
    if (m->data) munmap(m->data, m->len);
    if (m->fd >= 0) close(m->fd);
    m->data = NULL;
    m->len = 0;
    m->fd = -1;
}

void llm_map_release(const struct llm_map *m, uint64_t off, uint64_t len)
{
    if (!m->data || off >= m->len) return;
    long pg = sysconf(_SC_PAGESIZE);
    uint64_t a = off & ~(uint64_t)(pg - 1);
    uint64_t e = off + len;
    if (e > m->len) e = m->len;
    if (e <= a) return;
    madvise((char *)m->data + a, (size_t)(e - a), MADV_DONTNEED);
}

/* ---- all-or-nothing outputs --------------------------------------------- */

#define MAX_TMP 16
static char *tmp_paths[MAX_TMP];
static pthread_mutex_t tmp_lock = PTHREAD_MUTEX_INITIALIZER;

static void tmp_track(char *p)
{
    pthread_mutex_lock(&tmp_lock);
    for (int i = 0; i < MAX_TMP; i++)
        if (!tmp_paths[i]) {
            tmp_paths[i] = p;
            break;
        }
    pthread_mutex_unlock(&tmp_lock);
}

static void tmp_untrack(const char *p)
{
    pthread_mutex_lock(&tmp_lock);
    for (int i = 0; i < MAX_TMP; i++)
        if (tmp_paths[i] == p) tmp_paths[i] = NULL;
    pthread_mutex_unlock(&tmp_lock);
}

static void tmp_cleanup_all(void)
{
    for (int i = 0; i < MAX_TMP; i++)
        if (tmp_paths[i]) unlink(tmp_paths[i]); /* async-signal-safe */
}

static void on_fatal_signal(int sig)
{
    tmp_cleanup_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

void llm_out_install_cleanup(void)
{
    static int done;
    if (done) return;
    done = 1;
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_fatal_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
    atexit(tmp_cleanup_all);
}

/* What is at an output path: 0 nothing (or a regular file, replaced by
 * rename), 1 a device, FIFO or socket (written in place), <0 an error (a
 * folder, or a path that cannot be looked at). */
static int out_kind(const char *path)
{
    struct stat st;
    size_t n = strlen(path);
    if (n == 0) return llm_err_set(LLM_EINVAL, "empty output path");
    int found = stat(path, &st) == 0;
    if (path[n - 1] == '/' || (found && S_ISDIR(st.st_mode)))
        return llm_err_set(LLM_EINVAL, "unable to create '%s': it is a folder", path);
    if (!found)
        return errno == ENOENT || errno == ENOTDIR
                   ? 0 /* llm_out_open's mkstemp names the missing folder */
                   : llm_err_set(LLM_EIO, "unable to create '%s': %s", path, strerror(errno));
    return S_ISREG(st.st_mode) ? 0 : 1;
}

/* Open a device or FIFO path for writing as it is (no temporary). */
static int out_open_special(struct llm_out *o, const char *path)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return llm_err_set(LLM_EIO, "unable to open '%s': %s", path, strerror(errno));
    o->fp = fdopen(fd, "wb");
    o->path = strdup(path);
    if (!o->fp || !o->path) {
        if (o->fp)
            fclose(o->fp);
        else
            close(fd);
        free(o->path);
        memset(o, 0, sizeof(*o));
        return llm_err_set(LLM_ENOMEM, "out of memory");
    }
    return 0;
}

int llm_out_check(const char *path)
{
    if (!path || !strcmp(path, "-")) return 0;
    int k = out_kind(path);
    if (k < 0) return k;
    if (k == 1) {
        int fd = open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0 && errno != ENXIO) /* ENXIO: a FIFO nobody reads yet */
            return llm_err_set(LLM_EIO, "unable to open '%s': %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return 0;
    }
    struct llm_out o;
    int rc = llm_out_open(&o, path);
    if (rc) return rc;
    llm_out_abort(&o);
    return 0;
}

int llm_out_open(struct llm_out *o, const char *path)
{
    memset(o, 0, sizeof(*o));
    if (!path || !strcmp(path, "-")) {
        o->fp = stdout;
        return 0;
    }
    int kind = out_kind(path);
    if (kind < 0) return kind;
    if (kind == 1) return out_open_special(o, path);
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
    const char *base = slash ? slash + 1 : path;
    size_t tl = dirlen + strlen(base) + 32;
    o->tmp = malloc(tl);
    o->path = strdup(path);
    if (!o->tmp || !o->path) {
        free(o->tmp);
        free(o->path);
        o->tmp = o->path = NULL; /* llm_out_abort may follow */
        return llm_err_set(LLM_ENOMEM, "out of memory");
    }
    snprintf(o->tmp, tl, "%.*s.%s.tmp-XXXXXX", (int)dirlen, path, base);
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        int e = errno;
        free(o->tmp);
        free(o->path);
        o->tmp = o->path = NULL;
        return llm_err_set(LLM_EIO, "unable to create '%s': %s", path, strerror(e));
    }
    fchmod(fd, 0644);
    o->fp = fdopen(fd, "wb");
    if (!o->fp) {
        close(fd);
        unlink(o->tmp);
        free(o->tmp);
        free(o->path);
        o->tmp = o->path = NULL;
        return llm_err_set(LLM_EIO, "unable to open '%s'", path);
    }
    tmp_track(o->tmp);
    return 0;
}

int llm_out_write(struct llm_out *o, const void *buf, size_t len)
{
    if (o->failed) return LLM_EIO;
    if (len && fwrite(buf, 1, len, o->fp) != len) {
        o->failed = 1;
        return llm_err_set(LLM_EIO, "unable to write '%s': %s", o->path ? o->path : "<stdout>",
                           strerror(errno));
    }
    o->written += len;
    return 0;
}

int llm_out_commit(struct llm_out *o)
{
    const char *name = o->path ? o->path : "<stdout>";
    int rc = 0;
    if (o->failed) rc = LLM_EIO;
    if (!rc && fflush(o->fp) != 0)
        rc = llm_err_set(LLM_EIO, "unable to write '%s': %s", name, strerror(errno));
    if (!o->path) { /* stdout stays open for the caller */
        o->fp = NULL;
        return rc;
    }
    if (!o->tmp) { /* a device or FIFO, written in place */
        if (fclose(o->fp) != 0 && !rc)
            rc = llm_err_set(LLM_EIO, "unable to write '%s': %s", name, strerror(errno));
        free(o->path);
        memset(o, 0, sizeof(*o));
        return rc;
    }
    if (fclose(o->fp) != 0 && !rc)
        rc = llm_err_set(LLM_EIO, "unable to write '%s': %s", name, strerror(errno));
    o->fp = NULL;
    if (!rc && rename(o->tmp, o->path) != 0)
        rc = llm_err_set(LLM_EIO, "unable to rename into '%s': %s", name, strerror(errno));
    if (rc) unlink(o->tmp);
    tmp_untrack(o->tmp);
    free(o->tmp);
    free(o->path);
    o->tmp = o->path = NULL;
    return rc;
}

void llm_out_abort(struct llm_out *o)
{
    if (!o) return;
    if (o->path && !o->tmp) { /* a device or FIFO: nothing to remove */
        if (o->fp) fclose(o->fp);
        free(o->path);
    } else if (o->path) {
        if (o->fp) fclose(o->fp);
        unlink(o->tmp);
        tmp_untrack(o->tmp);
        free(o->tmp);
        free(o->path);
    } else if (o->fp) {
        fflush(o->fp);
    }
    memset(o, 0, sizeof(*o));
}

int llm_read_full(FILE *fp, void *buf, size_t len, const char *what)
{
    size_t n = fread(buf, 1, len, fp);
    if (n == len) return 0;
    if (ferror(fp)) return llm_err_set(LLM_EIO, "%s: read error: %s", what, strerror(errno));
    return llm_err_set(LLM_ETRUNC, "%s: input ends after %zu of %zu bytes", what, n, len);
}
