/* workload.c - benchmark requests as token ids: synthetic (seeded) or
 * loaded from a dataset file (trtllm-bench JSONL, llm-run JSONL, ShareGPT).
 *
 * Design choice: everything that varies from run to run is decided here,
 * before the clock starts, and reduced to ids and output lengths.  Random
 * draws come from Philox keyed by the seed with the request index in the
 * stream, so request i is the same whatever the request count, the order
 * of generation or the machine; the only input besides the parameters is
 * the vocabulary size.  A dataset's text is tokenized once here.  The
 * workload hash then identifies the run's input exactly.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "llm/bench.h"
#include "llm/batch.h"
#include "llm/engine.h"
#include "llm/err.h"
#include "llm/io.h"
#include "llm/philox.h"
#include "llm/tokenizer.h"

#define MAX_LEN (1 << 24) /* tokens in one prompt or output */

static const char *const ds_names[LLM_BENCH_DS_COUNT] = {"auto", "trtllm", "llm-run", "sharegpt"};

const char *llm_bench_dataset_name(int f)
{
    return f >= 0 && f < LLM_BENCH_DS_COUNT ? ds_names[f] : "";
}

int llm_bench_dataset_from_name(const char *s)
{
    for (int i = 0; i < LLM_BENCH_DS_COUNT; i++)
        if (!strcmp(s, ds_names[i])) return i;
    return -1;
}

void llm_bench_synth_init(struct llm_bench_synth *s)
{
    memset(s, 0, sizeof(*s));
    s->n_requests = 1;
    s->input_mean = 128;
    s->output_mean = 128;
}

void llm_bench_workload_free(struct llm_bench_workload *w)
{
    if (!w) return;
    free(w->reqs);
    free(w->ids);
    memset(w, 0, sizeof(*w));
}

/* ---- building ------------------------------------------------------------ */

struct builder {
    struct llm_bench_workload *w;
    int64_t *off; /* prompt offsets, turned into pointers at the end */
    int cap_reqs;
    int64_t cap_ids;
};

static int b_grow_ids(struct builder *b, int64_t need)
{
    if (need <= b->cap_ids) return 0;
    int64_t cap = b->cap_ids ? b->cap_ids : 4096;
    while (cap < need)
        cap *= 2;
    int32_t *p = realloc(b->w->ids, (size_t)cap * sizeof(*p));
    if (!p) return llm_err_set(LLM_ENOMEM, "workload: out of memory (%lld ids)", (long long)cap);
    b->w->ids = p;
    b->cap_ids = cap;
    return 0;
}

/* Append a request whose n_prompt ids are filled by the caller at the
 * returned pointer. */
static int b_add(struct builder *b, int n_prompt, int n_output, int32_t **ids)
{
    struct llm_bench_workload *w = b->w;
    if (w->n == b->cap_reqs) {
        int cap = b->cap_reqs ? b->cap_reqs * 2 : 64;
        struct llm_bench_req *r = realloc(w->reqs, (size_t)cap * sizeof(*r));
        if (!r) return llm_err_set(LLM_ENOMEM, "workload: out of memory");
        w->reqs = r;
        int64_t *o = realloc(b->off, (size_t)cap * sizeof(*o));
        if (!o) return llm_err_set(LLM_ENOMEM, "workload: out of memory");
        b->off = o;
        b->cap_reqs = cap;
    }
    int rc = b_grow_ids(b, w->n_ids + n_prompt);
    if (rc) return rc;
    b->off[w->n] = w->n_ids;
    w->reqs[w->n] =
        (struct llm_bench_req){.prompt = NULL, .n_prompt = n_prompt, .n_output = n_output};
    *ids = w->ids + w->n_ids;
    w->n_ids += n_prompt;
    w->n++;
    w->prompt_tokens += n_prompt;
    w->output_tokens += n_output;
    if (n_prompt > w->max_prompt) w->max_prompt = n_prompt;
    if (n_output > w->max_output) w->max_output = n_output;
    return 0;
}

static void b_finish(struct builder *b)
{
    for (int i = 0; i < b->w->n; i++)
        b->w->reqs[i].prompt = b->w->ids + b->off[i];
    free(b->off);
    b->off = NULL;
}

static void b_abort(struct builder *b)
{
    free(b->off);
    b->off = NULL;
    llm_bench_workload_free(b->w);
}

/* ---- synthetic ----------------------------------------------------------- */

static void draw_ids(int32_t *ids, int n, uint64_t seed, uint32_t stream, int64_t vocab)
{
    uint32_t x[4];
    for (int j = 0; j < n; j++) {
        if ((j & 3) == 0) llm_philox_block(seed, stream, (uint64_t)j >> 2, x);
        ids[j] = (int32_t)(((uint64_t)x[j & 3] * (uint64_t)vocab) >> 32);
    }
}

static int draw_len(double mean, double std, int lo, int hi, uint64_t seed, uint64_t index)
{
    double v = mean;
    if (std > 0) {
        double u1 = llm_philox_uniform(seed, 0, index);
        double u2 = llm_philox_uniform(seed, 0, index + 1);
        v = mean + std * sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
    }
    if (lo < 1) lo = 1;
    if (hi <= 0 || hi > MAX_LEN) hi = MAX_LEN;
    v = floor(v + 0.5);
    if (!(v >= lo)) return lo; /* NaN too */
    if (v > hi) return hi;
    return (int)v;
}

static int check_vocab(int64_t vocab)
{
    if (vocab <= 0 || vocab > INT32_MAX)
        return llm_err_set(LLM_EINVAL, "workload: vocabulary size %lld out of range",
                           (long long)vocab);
    return 0;
}

int llm_bench_workload_synth(struct llm_bench_workload *w, const struct llm_bench_synth *s)
{
    memset(w, 0, sizeof(*w));
    int rc = check_vocab(s->vocab);
    if (rc) return rc;
    if (s->n_requests < 1)
        return llm_err_set(LLM_EINVAL, "workload: %d requests (need at least 1)", s->n_requests);
    if (!(s->input_mean >= 1 && s->input_mean <= MAX_LEN && s->output_mean >= 1 &&
          s->output_mean <= MAX_LEN))
        return llm_err_set(LLM_EINVAL, "workload: mean lengths %g / %g out of range 1..%d",
                           s->input_mean, s->output_mean, MAX_LEN);
    if (!(s->input_std >= 0 && s->output_std >= 0 && isfinite(s->input_std) &&
          isfinite(s->output_std)))
        return llm_err_set(LLM_EINVAL, "workload: length standard deviations must be >= 0");
    struct builder b = {.w = w};
    for (int i = 0; i < s->n_requests; i++) {
        uint64_t base = (uint64_t)i * 4;
        int np = draw_len(s->input_mean, s->input_std, s->input_min, s->input_max, s->seed, base);
        int no = draw_len(s->output_mean, s->output_std, s->output_min, s->output_max, s->seed,
                          base + 2);
        int32_t *ids;
        if ((rc = b_add(&b, np, no, &ids))) {
            b_abort(&b);
            return rc;
        }
        draw_ids(ids, np, s->seed, (uint32_t)i + 1, s->vocab);
    }
    b_finish(&b);
    return 0;
}

int llm_bench_workload_fixed(struct llm_bench_workload *w, int n, int n_prompt, int n_output,
                             uint64_t seed, int64_t vocab)
{
    struct llm_bench_synth s;
    llm_bench_synth_init(&s);
    s.n_requests = n;
    s.input_mean = n_prompt;
    s.output_mean = n_output;
    s.seed = seed;
    s.vocab = vocab;
    return llm_bench_workload_synth(w, &s);
}

int llm_bench_workload_save(const struct llm_bench_workload *w, const char *path)
{
    struct llm_out out;
    int rc = llm_out_open(&out, path);
    if (rc) return rc;
    size_t cap = 0;
    char *line = NULL;
    for (int i = 0; i < w->n && !rc; i++) {
        const struct llm_bench_req *r = &w->reqs[i];
        size_t need = 64 + (size_t)r->n_prompt * 12;
        if (need > cap) {
            char *p = realloc(line, need);
            if (!p) {
                rc = llm_err_set(LLM_ENOMEM, "out of memory");
                break;
            }
            line = p;
            cap = need;
        }
        size_t k = (size_t)snprintf(line, cap, "{\"task_id\": %d, \"input_ids\": [", i);
        for (int j = 0; j < r->n_prompt; j++)
            k += (size_t)snprintf(line + k, cap - k, j ? ", %d" : "%d", r->prompt[j]);
        k += (size_t)snprintf(line + k, cap - k, "], \"output_tokens\": %d}\n", r->n_output);
        rc = llm_out_write(&out, line, k);
    }
    free(line);
    if (!rc)
        rc = llm_out_commit(&out);
    else
        llm_out_abort(&out);
    return rc;
}

/* ---- hashing --------------------------------------------------------------- */

static void put32(XXH3_state_t *st, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    XXH3_64bits_update(st, b, 4);
}

uint64_t llm_bench_workload_hash(const struct llm_bench_workload *w)
{
    XXH3_state_t *st = XXH3_createState();
    if (!st) return 0;
    XXH3_64bits_reset(st);
    put32(st, (uint32_t)w->n);
    for (int i = 0; i < w->n; i++) {
        const struct llm_bench_req *r = &w->reqs[i];
        put32(st, (uint32_t)r->n_prompt);
        put32(st, (uint32_t)r->n_output);
        for (int j = 0; j < r->n_prompt; j++)
            put32(st, (uint32_t)r->prompt[j]);
    }
    uint64_t h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h;
}

int llm_bench_file_hash(const char *path, uint64_t *h)
{
    FILE *f = fopen(path, "rb");
    if (!f) return llm_err_set(LLM_EIO, "unable to open '%s': %s", path, strerror(errno));
    XXH3_state_t *st = XXH3_createState();
    char *buf = malloc(1 << 20);
    int rc = 0;
    if (!st || !buf) {
        rc = llm_err_set(LLM_ENOMEM, "'%s': out of memory", path);
        goto out;
    }
    XXH3_64bits_reset(st);
    size_t got;
    while ((got = fread(buf, 1, 1 << 20, f)) > 0)
        XXH3_64bits_update(st, buf, got);
    if (ferror(f)) {
        rc = llm_err_set(LLM_EIO, "unable to read '%s'", path);
        goto out;
    }
    *h = XXH3_64bits_digest(st);
out:
    free(buf);
    if (st) XXH3_freeState(st);
    fclose(f);
    return rc;
}

/* ---- datasets -------------------------------------------------------------- */

struct loader {
    const char *path;
    const struct llm_bench_load_opts *o;
    struct builder b;
    long line;
};

static int ld_err(struct loader *L, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int ld_err(struct loader *L, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (L->line > 0) return llm_err_set(code, "'%s': line %ld: %s", L->path, L->line, msg);
    return llm_err_set(code, "'%s': %s", L->path, msg);
}

static int ld_tokenize(struct loader *L, const char *text, size_t len, int add_special,
                       const char *what, int32_t **ids, size_t *n)
{
    if (!L->o->tok)
        return ld_err(L, LLM_EUNSUPPORTED,
                      "%s is text but there is no tokenizer (the model carries none: give "
                      "--tokenizer DIR, or input_ids)",
                      what);
    int rc = llm_tok_encode(L->o->tok, text, len, add_special, ids, n);
    if (rc) return ld_err(L, rc, "%s: %s", what, llm_errmsg());
    return 0;
}

static int ld_add_ids(struct loader *L, const int32_t *src, size_t n, int n_output)
{
    if (n == 0) return ld_err(L, LLM_EFORMAT, "empty prompt");
    if (n > MAX_LEN) return ld_err(L, LLM_ERANGE, "prompt of %zu tokens is too long", n);
    if (n_output < 1 || n_output > MAX_LEN)
        return ld_err(L, LLM_ERANGE, "output length %d out of range 1..%d", n_output, MAX_LEN);
    for (size_t i = 0; i < n; i++)
        if (src[i] < 0 || src[i] >= L->o->vocab)
            return ld_err(L, LLM_ERANGE,
                          "token id %d (index %zu) is outside the vocabulary (0..%lld)", src[i], i,
                          (long long)L->o->vocab - 1);
    int32_t *dst;
    int rc = b_add(&L->b, (int)n, n_output, &dst);
    if (rc) return rc;
    memcpy(dst, src, n * sizeof(*dst));
    return 0;
}

static int ld_trtllm_line(struct loader *L, const char *s, size_t len)
{
    json_error_t je;
    json_t *j = json_loadb(s, len, 0, &je);
    int rc = 0;
    int32_t *ids = NULL;
    size_t n = 0;
    if (!j) return ld_err(L, LLM_EFORMAT, "not JSON: %s", je.text);
    if (!json_is_object(j)) {
        rc = ld_err(L, LLM_EFORMAT, "expected a JSON object");
        goto out;
    }
    json_t *ot = json_object_get(j, "output_tokens");
    if (!json_is_integer(ot) || json_integer_value(ot) < 1 || json_integer_value(ot) > MAX_LEN) {
        rc = ld_err(L, LLM_EFORMAT, "'output_tokens' must be an integer in 1..%d", MAX_LEN);
        goto out;
    }
    json_t *ii = json_object_get(j, "input_ids"), *pr = json_object_get(j, "prompt");
    if (ii && pr) {
        rc = ld_err(L, LLM_EFORMAT, "both 'prompt' and 'input_ids'");
        goto out;
    }
    if (ii) {
        if (!json_is_array(ii)) {
            rc = ld_err(L, LLM_EFORMAT, "'input_ids' must be an array of integers");
            goto out;
        }
        n = json_array_size(ii);
        ids = malloc((n ? n : 1) * sizeof(*ids));
        if (!ids) {
            rc = llm_err_set(LLM_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_array_get(ii, i);
            if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
                json_integer_value(v) > INT32_MAX) {
                rc = ld_err(L, LLM_EFORMAT, "'input_ids'[%zu] is not a 32-bit integer", i);
                goto out;
            }
            ids[i] = (int32_t)json_integer_value(v);
        }
    } else if (json_is_string(pr)) {
        if ((rc = ld_tokenize(L, json_string_value(pr), json_string_length(pr), 1, "'prompt'", &ids,
                              &n)))
            goto out;
    } else {
        rc = ld_err(L, LLM_EFORMAT, "needs 'prompt' (a string) or 'input_ids'");
        goto out;
    }
    rc = ld_add_ids(L, ids, n, (int)json_integer_value(ot));
out:
    free(ids);
    json_decref(j);
    return rc;
}

static int ld_llmrun_line(struct loader *L, const char *s, size_t len)
{
    struct llm_jsonl_defaults d;
    llm_jsonl_defaults_init(&d, NULL);
    if (L->o->default_output > 0) d.max_tokens = L->o->default_output;
    struct llm_jsonl_req q;
    memset(&q, 0, sizeof q);
    int rc = llm_jsonl_parse(&q, s, len, L->line, &d, L->o->vocab);
    if (rc) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", llm_errmsg());
        rc = ld_err(L, rc, "%s", msg);
        goto out;
    }
    if (q.req.prompt) {
        rc = ld_add_ids(L, q.req.prompt, (size_t)q.req.n_prompt, q.req.max_tokens);
    } else {
        int32_t *ids = NULL;
        size_t n = 0;
        rc = ld_tokenize(L, q.req.text, q.req.text_len, 1, "'prompt'", &ids, &n);
        if (!rc) rc = ld_add_ids(L, ids, n, q.req.max_tokens);
        free(ids);
    }
out:
    llm_jsonl_req_free(&q);
    return rc;
}

static int full(const struct loader *L)
{
    return L->o->max_requests > 0 && L->b.w->n >= L->o->max_requests;
}

static int ld_jsonl(struct loader *L, const char *buf, size_t len, int fmt)
{
    size_t at = 0;
    L->line = 0;
    while (at < len && !full(L)) {
        const char *nl = memchr(buf + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - buf) : len;
        L->line++;
        size_t a = at, e = end;
        while (a < e && isspace((unsigned char)buf[a]))
            a++;
        while (e > a && isspace((unsigned char)buf[e - 1]))
            e--;
        at = end + 1;
        if (a == e) continue;
        int rc = fmt == LLM_BENCH_DS_TRTLLM ? ld_trtllm_line(L, buf + a, e - a)
                                            : ld_llmrun_line(L, buf + a, e - a);
        if (rc) return rc;
    }
    L->line = 0;
    if (L->b.w->n == 0) return ld_err(L, LLM_EFORMAT, "no requests in the file");
    return 0;
}

static int ld_sharegpt(struct loader *L, const char *buf, size_t len)
{
    json_error_t je;
    json_t *j = json_loadb(buf, len, 0, &je);
    if (!j) return ld_err(L, LLM_EFORMAT, "not JSON: %s (line %d)", je.text, je.line);
    int rc = 0;
    if (!json_is_array(j)) {
        rc = ld_err(L, LLM_EFORMAT, "expected a JSON array of conversations");
        goto out;
    }
    for (size_t i = 0; i < json_array_size(j) && !full(L); i++) {
        json_t *c = json_array_get(j, i);
        json_t *turns = json_is_object(c) ? json_object_get(c, "conversations") : NULL;
        if (!json_is_array(turns)) {
            rc = ld_err(L, LLM_EFORMAT, "entry %zu: no 'conversations' array", i);
            goto out;
        }
        if (json_array_size(turns) < 2) {
            L->b.w->skipped++;
            continue;
        }
        const char *txt[2];
        size_t tl[2];
        for (int k = 0; k < 2; k++) {
            json_t *t = json_array_get(turns, (size_t)k);
            json_t *v = json_is_object(t) ? json_object_get(t, "value") : NULL;
            if (!json_is_string(v)) {
                rc = ld_err(L, LLM_EFORMAT, "entry %zu: turn %d has no 'value' string", i, k);
                goto out;
            }
            txt[k] = json_string_value(v);
            tl[k] = json_string_length(v);
        }
        int32_t *p = NULL, *r = NULL;
        size_t np = 0, nr = 0;
        char what[64];
        snprintf(what, sizeof what, "entry %zu prompt", i);
        rc = ld_tokenize(L, txt[0], tl[0], 1, what, &p, &np);
        snprintf(what, sizeof what, "entry %zu reply", i);
        if (!rc) rc = ld_tokenize(L, txt[1], tl[1], 0, what, &r, &nr);
        free(r);
        if (!rc) {
            if (np == 0 || nr == 0 || nr > MAX_LEN ||
                (L->o->max_context > 0 && np + nr > (size_t)L->o->max_context))
                L->b.w->skipped++;
            else
                rc = ld_add_ids(L, p, np, (int)nr);
        }
        free(p);
        if (rc) goto out;
    }
    if (L->b.w->n == 0) rc = ld_err(L, LLM_EFORMAT, "no usable conversations");
out:
    json_decref(j);
    return rc;
}

static int detect(const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)buf[i]))
        i++;
    if (i < len && buf[i] == '[') return LLM_BENCH_DS_SHAREGPT;
    const char *nl = memchr(buf + i, '\n', len - i);
    size_t e = nl ? (size_t)(nl - buf) : len;
    json_t *j = json_loadb(buf + i, e - i, 0, NULL);
    int f = LLM_BENCH_DS_LLMRUN;
    if (json_is_object(j) && (json_object_get(j, "output_tokens") || json_object_get(j, "task_id")))
        f = LLM_BENCH_DS_TRTLLM;
    json_decref(j);
    return f;
}

int llm_bench_workload_load(struct llm_bench_workload *w, const char *path,
                            const struct llm_bench_load_opts *o, int *format_found)
{
    memset(w, 0, sizeof(*w));
    int rc = check_vocab(o->vocab);
    if (rc) return rc;
    if (o->format < 0 || o->format >= LLM_BENCH_DS_COUNT)
        return llm_err_set(LLM_EINVAL, "'%s': unknown dataset format %d", path, o->format);
    char *buf = NULL;
    size_t len = 0;
    if ((rc = llm_read_file(path, &buf, &len, 0))) return rc;
    struct loader L = {.path = path, .o = o, .b = {.w = w}};
    int fmt = o->format == LLM_BENCH_DS_AUTO ? detect(buf, len) : o->format;
    if (format_found) *format_found = fmt;
    if (fmt == LLM_BENCH_DS_SHAREGPT)
        rc = ld_sharegpt(&L, buf, len);
    else
        rc = ld_jsonl(&L, buf, len, fmt);
    free(buf);
    if (rc) {
        int sk = w->skipped;
        b_abort(&L.b);
        w->skipped = sk;
        return rc;
    }
    b_finish(&L.b);
    return 0;
}
