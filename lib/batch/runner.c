/* runner.c - the streaming JSONL batch loop behind llm-run: read request
 * lines as the engine has room, step the engine, write one answer line per
 * request, flushed as soon as it is known.
 *
 * Design choices:
 * - Bounded memory: a line is read only while fewer than `read_ahead`
 *   requests wait for a slot (and, with --ordered, while the lines not yet
 *   written fit the reorder window), so memory depends on the batch, not on
 *   the input.  What grows is a set of 64-bit id hashes (duplicate ids).
 * - Crash safety instead of all-or-nothing output: answers are appended
 *   and flushed line by line, so a killed run keeps every finished answer
 *   and --resume skips those ids (counting them: the k-th occurrence of an
 *   id is skipped when the output has k lines with it).  A last line cut
 *   short by the kill is removed before appending.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "llm/batch.h"
#include "llm/engine.h"
#include "llm/err.h"
#include "llm/log.h"

#define MAX_LINE (64u << 20)
#define MAX_WARN 20

/* ---- small hash tables ---------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h ? h : 1; /* 0 marks an empty slot */
}

struct hset { /* set of nonzero 64-bit hashes */
    uint64_t *v;
    size_t cap, n;
};

static int hset_grow(struct hset *s)
{
    size_t nc = s->cap ? s->cap * 2 : 1024;
    uint64_t *nv = calloc(nc, sizeof(*nv));
    if (!nv) return llm_err_set(LLM_ENOMEM, "id set: out of memory");
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->v[i]) continue;
        size_t j = s->v[i] & (nc - 1);
        while (nv[j])
            j = (j + 1) & (nc - 1);
        nv[j] = s->v[i];
    }
    free(s->v);
    s->v = nv;
    s->cap = nc;
    return 0;
}

/* 1 if h was there, 0 if added, <0 on error. */
static int hset_add(struct hset *s, uint64_t h)
{
    if ((s->n + 1) * 2 > s->cap && hset_grow(s)) return LLM_ENOMEM;
    size_t j = h & (s->cap - 1);
    while (s->v[j]) {
        if (s->v[j] == h) return 1;
        j = (j + 1) & (s->cap - 1);
    }
    s->v[j] = h;
    s->n++;
    return 0;
}

struct kcount {
    char *key;
    uint64_t h;
    int count;
    int errors; /* of those, error lines */
};

struct cmap { /* key -> count of answers already in the output */
    struct kcount *v;
    size_t cap, n;
};

static struct kcount *cmap_find(struct cmap *m, const char *key, uint64_t h, int insert)
{
    if (insert && (m->n + 1) * 2 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 1024;
        struct kcount *nv = calloc(nc, sizeof(*nv));
        if (!nv) return NULL;
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->v[i].key) continue;
            size_t j = m->v[i].h & (nc - 1);
            while (nv[j].key)
                j = (j + 1) & (nc - 1);
            nv[j] = m->v[i];
        }
        free(m->v);
        m->v = nv;
        m->cap = nc;
    }
    if (!m->cap) return NULL;
    size_t j = h & (m->cap - 1);
    while (m->v[j].key) {
        if (m->v[j].h == h && !strcmp(m->v[j].key, key)) return &m->v[j];
        j = (j + 1) & (m->cap - 1);
    }
    if (!insert) return NULL;
    m->v[j].key = strdup(key);
    if (!m->v[j].key) return NULL;
    m->v[j].h = h;
    m->n++;
    return &m->v[j];
}

static void cmap_free(struct cmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->v[i].key);
    free(m->v);
}

/* ---- lines ------------------------------------------------------------------ */

/* Read one line (newline stripped, and a CR before it).  Returns 1 with a
 * line, 0 at end of input, <0 on a read error.  A line longer than
 * MAX_LINE is consumed and reported with *too_long. */
static int read_line(FILE *fp, char **buf, size_t *cap, size_t *len, int *too_long)
{
    *len = 0;
    *too_long = 0;
    int c, any = 0;
    while ((c = getc_unlocked(fp)) != EOF) {
        any = 1;
        if (c == '\n') break;
        if (*len >= MAX_LINE) {
            *too_long = 1;
            continue;
        }
        if (*len + 2 > *cap) {
            size_t nc = *cap ? *cap * 2 : 4096;
            char *nb = realloc(*buf, nc);
            if (!nb) return llm_err_set(LLM_ENOMEM, "input line: out of memory");
            *buf = nb;
            *cap = nc;
        }
        (*buf)[(*len)++] = (char)c;
    }
    if (ferror(fp)) return llm_err_set(LLM_EIO, "read error: %s", strerror(errno));
    if (!any) return 0;
    if (*len > 0 && (*buf)[*len - 1] == '\r') (*len)--;
    if (*buf) (*buf)[*len] = 0;
    return 1;
}

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

/* Request lines in a regular file, counted without keeping them. */
static long count_lines(FILE *fp)
{
    struct stat st;
    if (fstat(fileno(fp), &st) || !S_ISREG(st.st_mode)) return -1;
    off_t start = ftello(fp);
    if (start < 0) return -1;
    long n = 0;
    char *buf = NULL;
    size_t cap = 0, len;
    int tl;
    while (read_line(fp, &buf, &cap, &len, &tl) == 1)
        if (tl || !is_blank(buf ? buf : "", len)) n++;
    free(buf);
    clearerr(fp);
    if (fseeko(fp, start, SEEK_SET)) return -1;
    return n;
}

/* Load the keys of the answers already in path; cut a partial last line. */
static int scan_output(const char *path, struct cmap *m, struct cmap *dups, long *n_lines)
{
    *n_lines = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        if (errno == ENOENT) return 0;
        return llm_err_set(LLM_EIO, "unable to open '%s': %s", path, strerror(errno));
    }
    char *buf = NULL;
    size_t cap = 0, len;
    int tl, rc = 0;
    off_t good = 0;
    for (;;) {
        off_t at = ftello(fp);
        int r = read_line(fp, &buf, &cap, &len, &tl);
        if (r <= 0) {
            rc = r;
            break;
        }
        off_t end = ftello(fp);
        int complete = end > at && (fseeko(fp, end - 1, SEEK_SET), getc_unlocked(fp) == '\n');
        if (!complete) break; /* cut short by a kill: dropped below */
        good = end;
        int dup = 0, err = 0;
        char *key = tl ? NULL : llm_jsonl_output_key(buf, len, &dup, &err);
        if (key) {
            struct kcount *k = cmap_find(dup ? dups : m, key, hash_str(key), 1);
            free(key);
            if (!k) {
                rc = llm_err_set(LLM_ENOMEM, "resume: out of memory");
                break;
            }
            k->count++;
            k->errors += err;
        }
        (*n_lines)++;
    }
    free(buf);
    fseeko(fp, 0, SEEK_END);
    off_t size = ftello(fp);
    fclose(fp);
    if (rc == 0 && size > good) {
        llm_warn("'%s': removing an incomplete last line (%lld bytes)", path,
                 (long long)(size - good));
        if (truncate(path, good))
            return llm_err_set(LLM_EIO, "unable to truncate '%s': %s", path, strerror(errno));
    }
    return rc;
}

/* ---- the run ---------------------------------------------------------------- */

struct pend {
    long seq; /* position among answer lines */
    struct llm_jsonl_req q;
    struct pend *prev, *next; /* requests in the engine */
};

struct run {
    const struct llm_run_opts *o;
    struct llm_engine *e;
    FILE *out;
    const char *out_name;
    /* ordered output: ring of lines indexed by seq */
    char **ring;
    long ring_cap, base, next_seq;
    struct llm_run_progress prog;
    int n_warn;
    int last_form;
    struct pend *live; /* submitted, not answered */
    /* input side */
    struct llm_engine_info info;
    int window; /* requests read ahead while they wait for a slot */
    int to_stdout;
    struct cmap done; /* --resume: ids answered in the output */
    struct cmap dups; /* --resume: duplicate-id errors in the output */
    struct hset seen; /* hashes of the ids read so far */
    char *buf;        /* the line being read */
    size_t cap;
    long lineno;
    int eof;
};

static void live_add(struct run *R, struct pend *p)
{
    p->prev = NULL;
    p->next = R->live;
    if (R->live) R->live->prev = p;
    R->live = p;
}

static void live_remove(struct run *R, struct pend *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        R->live = p->next;
    if (p->next) p->next->prev = p->prev;
}

static int write_line(struct run *R, const char *line)
{
    size_t n = strlen(line);
    if (fwrite(line, 1, n, R->out) != n || fflush(R->out))
        return llm_err_set(LLM_EIO, "'%s': write failed: %s", R->out_name, strerror(errno));
    return 0;
}

/* Hand over one answer line (owned) for answer position seq. */
static int emit(struct run *R, long seq, char *line)
{
    if (!line) return llm_err_set(LLM_ENOMEM, "output line: out of memory");
    R->prog.done++;
    if (!R->o->ordered) {
        int rc = write_line(R, line);
        free(line);
        return rc;
    }
    R->ring[seq % R->ring_cap] = line;
    while (R->base < R->next_seq && R->ring[R->base % R->ring_cap]) {
        char **slot = &R->ring[R->base % R->ring_cap];
        int rc = write_line(R, *slot);
        free(*slot);
        *slot = NULL;
        if (rc) return rc;
        R->base++;
    }
    return 0;
}

static int emit_error(struct run *R, struct llm_jsonl_req *q, long seq, int code, const char *msg)
{
    R->prog.errors++;
    if (R->n_warn < MAX_WARN)
        llm_warn("'%s' line %ld: %s", R->o->in_name ? R->o->in_name : "-", q->line, msg);
    else if (R->n_warn == MAX_WARN)
        llm_warn("further request errors are only reported in the output");
    R->n_warn++;
    return emit(R, seq, llm_jsonl_format_error(q, code, msg));
}

static int report(struct run *R, const struct llm_step_stats *st, double t0)
{
    R->prog.elapsed = llm_engine_now() - t0;
    R->prog.step = st;
    if (R->o->progress && R->o->progress(R->o->ctx, &R->prog)) return 1;
    return 0;
}

void llm_run_opts_init(struct llm_run_opts *o)
{
    memset(o, 0, sizeof(*o));
    llm_jsonl_defaults_init(&o->defaults, NULL);
}

/* Open the output named by the options (or adopt the caller's, truncated
 * unless resuming), scan it first with --resume, and set up the reorder
 * ring and the progress total. */
static int start_run(struct run *R)
{
    const struct llm_run_opts *o = R->o;
    if (o->resume) {
        long n = 0;
        int rc = scan_output(o->out_path, &R->done, &R->dups, &n);
        if (rc) return rc;
        if (n > 0) llm_info("resuming: '%s' has %ld answers", o->out_path, n);
    }
    struct stat ost;
    if (o->out) { /* opened by the caller before its slow setup */
        R->out = o->out;
        if (!o->resume && fstat(fileno(R->out), &ost) == 0 && S_ISREG(ost.st_mode) &&
            (ftruncate(fileno(R->out), 0) || fseeko(R->out, 0, SEEK_SET)))
            return llm_err_set(LLM_EIO, "unable to truncate '%s': %s", R->out_name,
                               strerror(errno));
    } else if (R->to_stdout) {
        R->out = stdout;
    } else {
        R->out = fopen(o->out_path, o->resume ? "ab" : "wb");
        if (!R->out)
            return llm_err_set(LLM_EIO, "unable to open '%s': %s", o->out_path, strerror(errno));
    }
    if (o->ordered) {
        R->ring = calloc((size_t)R->ring_cap, sizeof(*R->ring));
        if (!R->ring) return llm_err_set(LLM_ENOMEM, "out of memory");
    }
    R->prog.total = count_lines(o->in);
    return 0;
}

/* Make a pending request from the line in R->buf (or one standing in for a
 * line too long to keep); *prc gets the parse result.  Nonzero when out of
 * memory. */
static int parse_request(struct run *R, size_t len, int too_long, struct pend **pp, int *prc)
{
    struct pend *p = calloc(1, sizeof(*p));
    if (!p) return llm_err_set(LLM_ENOMEM, "out of memory");
    if (too_long)
        *prc = llm_err_set(LLM_EFORMAT, "line longer than %u bytes", MAX_LINE);
    else
        *prc = llm_jsonl_parse(&p->q, R->buf, len, R->lineno, &R->o->defaults, R->info.vocab);
    if (too_long) {
        p->q.line = R->lineno;
        p->q.id = json_integer(R->lineno);
        p->q.key = json_dumps(p->q.id, JSON_ENCODE_ANY);
    }
    if (p->q.form_known)
        R->last_form = p->q.form;
    else
        p->q.form = R->last_form;
    if (!p->q.key) {
        llm_jsonl_req_free(&p->q);
        free(p);
        return llm_err_set(LLM_ENOMEM, "out of memory");
    }
    *pp = p;
    return 0;
}

/* --resume: 1 (counted as skipped) when the output already answers this
 * occurrence of the id: the first occurrence when the output answers it,
 * the k-th repeat when it holds k duplicate errors. */
static int already_answered(struct run *R, const char *key, uint64_t h, int dup)
{
    struct cmap *cm = dup ? &R->dups : &R->done;
    struct kcount *k = cm->n ? cmap_find(cm, key, h, 0) : NULL;
    if (!k || k->count <= 0) return 0;
    k->count--;
    if (k->errors > 0) { /* an id answers once, so its one line */
        k->errors--;
        R->prog.skipped_errors++;
    }
    R->prog.skipped++;
    if (R->prog.total > 0) R->prog.total--;
    return 1;
}

/* Give the request its answer position and submit it to the engine, or
 * answer it at once with its error (a parse error or a duplicate id). */
static int submit_request(struct run *R, struct pend *p, int dup, int prc)
{
    p->seq = R->next_seq++;
    if (dup) {
        p->q.duplicate = 1;
        prc =
            llm_err_set(LLM_EINVAL, "duplicate id %s (ids must be unique for --resume)", p->q.key);
    }
    if (prc == 0) {
        p->q.req.user = p;
        prc = llm_engine_submit(R->e, &p->q.req, NULL);
        if (prc == 0) live_add(R, p);
    }
    if (prc) {
        int rc = emit_error(R, &p->q, p->seq, prc, llm_errmsg());
        llm_jsonl_req_free(&p->q);
        free(p);
        return rc;
    }
    return 0;
}

/* Read the next input line and queue its request (or answer it); sets
 * R->eof at the end of the input.  Nonzero stops the run. */
static int read_request(struct run *R)
{
    size_t len;
    int too_long;
    int r = read_line(R->o->in, &R->buf, &R->cap, &len, &too_long);
    if (r < 0) return llm_err_wrap(r, "'%s'", R->o->in_name ? R->o->in_name : "-");
    if (r == 0) {
        R->eof = 1;
        return 0;
    }
    R->lineno++;
    if (!too_long && is_blank(R->buf ? R->buf : "", len)) return 0;
    struct pend *p = NULL;
    int prc = 0;
    int rc = parse_request(R, len, too_long, &p, &prc);
    if (rc) return rc;
    uint64_t h = hash_str(p->q.key);
    int dup = hset_add(&R->seen, h);
    if (dup < 0 || already_answered(R, p->q.key, h, dup)) {
        llm_jsonl_req_free(&p->q);
        free(p);
        return dup < 0 ? dup : 0;
    }
    return submit_request(R, p, dup, prc);
}

/* Write (or hold for order) the answers of the requests the last step
 * finished. */
static int collect_results(struct run *R)
{
    struct llm_result *res;
    while ((res = llm_engine_next_result(R->e))) {
        struct pend *p = res->user;
        live_remove(R, p);
        R->prog.prompt_tokens += (uint64_t)res->n_prompt;
        R->prog.completion_tokens += (uint64_t)res->completion_tokens;
        int rc = emit(R, p->seq, llm_jsonl_format_result(&p->q, res, &R->o->fmt));
        llm_result_free(res);
        llm_jsonl_req_free(&p->q);
        free(p);
        if (rc) return rc;
    }
    return 0;
}

/* Read requests as the engine has room and step it until the input is
 * answered; 1 when the progress callback stops the run. */
static int run_loop(struct run *R, double t0)
{
    const struct llm_run_opts *o = R->o;
    for (;;) {
        /* read while the engine has room and the reorder window allows */
        while (!R->eof && llm_engine_n_waiting(R->e) < R->window &&
               (!o->ordered || R->next_seq - R->base < R->ring_cap - 1)) {
            int rc = read_request(R);
            if (rc) return rc;
        }
        if (!llm_engine_has_work(R->e)) {
            if (R->eof) break;
            if (report(R, NULL, t0)) return 1;
            continue;
        }
        struct llm_step_stats st;
        int rc = llm_engine_step(R->e, &st);
        if (rc) return rc;
        rc = collect_results(R);
        if (rc) return rc;
        if (report(R, &st, t0)) return 1;
    }
    report(R, NULL, t0);
    return 0;
}

/* Fill *final, drop what a stopped or failed run still has in flight,
 * close or flush the output (its failure is the result when rc is 0) and
 * free the rest. */
static int end_run(struct run *R, int rc, double t0, struct llm_run_progress *final)
{
    const struct llm_run_opts *o = R->o;
    if (final) {
        R->prog.elapsed = llm_engine_now() - t0;
        R->prog.step = NULL;
        *final = R->prog;
    }
    if (R->live) {
        llm_engine_clear(R->e);
        while (R->live) {
            struct pend *p = R->live;
            live_remove(R, p);
            llm_jsonl_req_free(&p->q);
            free(p);
        }
    }
    if (R->out && o->out) {
        if (fflush(R->out) && rc == 0)
            rc = llm_err_set(LLM_EIO, "'%s': %s", R->out_name, strerror(errno));
    } else if (R->out && !R->to_stdout) {
        if (fclose(R->out) && rc == 0)
            rc = llm_err_set(LLM_EIO, "'%s': %s", o->out_path, strerror(errno));
    } else if (R->out && fflush(R->out) && rc == 0) {
        rc = llm_err_set(LLM_EIO, "stdout: %s", strerror(errno));
    }
    if (R->ring) {
        for (long i = 0; i < R->ring_cap; i++)
            free(R->ring[i]);
        free(R->ring);
    }
    cmap_free(&R->done);
    cmap_free(&R->dups);
    free(R->seen.v);
    free(R->buf);
    return rc;
}

int llm_run_jsonl(struct llm_engine *e, const struct llm_run_opts *o,
                  struct llm_run_progress *final)
{
    struct run R;
    memset(&R, 0, sizeof(R));
    R.o = o;
    R.e = e;
    double t0 = llm_engine_now();
    R.to_stdout = !o->out_path || !strcmp(o->out_path, "-");
    R.out_name = R.to_stdout ? "stdout" : o->out_path;

    llm_engine_get_info(e, &R.info);
    R.window = o->read_ahead > 0 ? o->read_ahead : (R.info.max_seqs > 8 ? R.info.max_seqs : 8);
    R.ring_cap = 4L * R.info.max_seqs + 64 + R.window;
    if (o->resume && R.to_stdout)
        return llm_err_set(LLM_EINVAL, "--resume needs an output file (-o FILE)");

    int rc = start_run(&R);
    if (rc == 0) rc = run_loop(&R, t0);
    return end_run(&R, rc, t0, final);
}
