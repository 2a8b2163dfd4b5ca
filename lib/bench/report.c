/* report.c - a result document rendered as a Markdown table, CSV, JSON or
 * JSON lines, read back from JSON or JSON lines, and compared with a
 * baseline (the gate, at the end: its own design note is there).
 *
 * Design choice: the document is the only thing written; the other forms
 * are views of it.  Markdown is for people (one summary table per kind of
 * test with the headline figures as mean +- standard deviation, then every
 * figure); CSV has one row per (test, figure) with a fixed set of columns
 * so that a spreadsheet or a shell loop can take it apart; JSON is the
 * whole document; JSON lines repeat the run's context on each line with
 * one result, like llama-bench's jsonl, and merge back into the same
 * document when loaded.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/bench.h"
#include "llm/err.h"
#include "llm/io.h"
#include "llm/log.h"

static const char *const fmt_names[LLM_BENCH_FMT_COUNT] = {"md", "csv", "json", "jsonl"};

const char *llm_bench_fmt_name(int f)
{
    return f >= 0 && f < LLM_BENCH_FMT_COUNT ? fmt_names[f] : "";
}

int llm_bench_fmt_from_name(const char *s)
{
    for (int i = 0; i < LLM_BENCH_FMT_COUNT; i++)
        if (!strcmp(s, fmt_names[i])) return i;
    return -1;
}

/* ---- string builder --------------------------------------------------------- */

struct sb {
    char *s;
    size_t n, cap;
    int oom;
};

static void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap : 1024;
        while (cap <= b->n + (size_t)k)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
}

static char *sb_done(struct sb *b)
{
    if (b->oom) {
        free(b->s);
        llm_err_set(LLM_ENOMEM, "out of memory");
        return NULL;
    }
    if (!b->s) sb_printf(b, "%s", "");
    return b->s;
}

/* ---- field access ------------------------------------------------------------ */

static const char *jstr(const json_t *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *cur = o;
    for (char *sv, *tok = strtok_r(buf, ".", &sv); tok && cur; tok = strtok_r(NULL, ".", &sv))
        cur = json_object_get(cur, tok);
    return json_is_string(cur) ? json_string_value(cur) : NULL;
}

static const json_t *jget(const json_t *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *cur = o;
    for (char *sv, *tok = strtok_r(buf, ".", &sv); tok && cur; tok = strtok_r(NULL, ".", &sv))
        cur = json_object_get(cur, tok);
    return cur;
}

static int fig(const json_t *res, const char *name, const char *stat, double *v)
{
    const json_t *f = json_object_get(json_object_get(res, "figures"), name);
    const json_t *x = json_object_get(f, stat);
    if (!json_is_number(x)) return 0;
    *v = json_number_value(x);
    return 1;
}

/* ---- Markdown -------------------------------------------------------------------- */

/* How a column shows a figure: scale factor and decimals. */
struct col {
    const char *head;
    const char *fig;
    double scale;
    int dec;
};

static void md_cell(struct sb *b, const json_t *res, const struct col *c)
{
    double m, s;
    if (!fig(res, c->fig, "mean", &m)) {
        sb_printf(b, " - |");
        return;
    }
    int has_s = fig(res, c->fig, "stddev", &s) && s > 0;
    if (c->dec < 0) /* significant digits, for times that span orders of magnitude */
        sb_printf(b, has_s ? " %.4g ± %.2g |" : " %.4g |", m * c->scale, s * c->scale);
    else if (has_s)
        sb_printf(b, " %.*f ± %.*f |", c->dec, m * c->scale, c->dec, s * c->scale);
    else
        sb_printf(b, " %.*f |", c->dec, m * c->scale);
}

static const struct col cols_thr[] = {{"req/s", "requests_per_s", 1, 2},
                                      {"out tok/s", "output_tokens_per_s", 1, 1},
                                      {"total tok/s", "total_tokens_per_s", 1, 1},
                                      {"TTFT p50 ms", "ttft_p50", 1e3, 2},
                                      {"TTFT p99 ms", "ttft_p99", 1e3, 2},
                                      {"TPOT p50 ms", "tpot_p50", 1e3, 2},
                                      {"TPOT p99 ms", "tpot_p99", 1e3, 2},
                                      {"ITL p99 ms", "itl_p99", 1e3, 2},
                                      {"E2E p50 s", "e2e_p50", 1, -1},
                                      {"BW %", "mem_bw_fraction", 100, 1},
                                      {"FLOP %", "flops_fraction", 100, 1},
                                      {"host %", "host_overhead_share", 100, 1},
                                      {NULL, NULL, 0, 0}};
static const struct col cols_grid[] = {{"t/s", "tokens_per_s", 1, 2},
                                       {"GB/s", "mem_bw", 1e-9, 2},
                                       {"BW %", "mem_bw_fraction", 100, 1},
                                       {"GFLOP/s", "flops", 1e-9, 2},
                                       {"FLOP %", "flops_fraction", 100, 1},
                                       {"host %", "host_overhead_share", 100, 1},
                                       {NULL, NULL, 0, 0}};
static const struct col cols_batched[] = {{"T_PP s", "t_pp", 1, -1},
                                          {"S_PP t/s", "s_pp", 1, 2},
                                          {"T_TG s", "t_tg", 1, -1},
                                          {"S_TG t/s", "s_tg", 1, 2},
                                          {"T s", "t", 1, -1},
                                          {"S t/s", "s", 1, 2},
                                          {"BW %", "mem_bw_fraction", 100, 1},
                                          {"FLOP %", "flops_fraction", 100, 1},
                                          {NULL, NULL, 0, 0}};

static void md_group(struct sb *b, const json_t *results, const char *kind)
{
    const struct col *cols = !strcmp(kind, "grid")      ? cols_grid
                             : !strcmp(kind, "batched") ? cols_batched
                                                        : cols_thr;
    int any = 0;
    size_t i;
    const json_t *r;
    json_array_foreach(results, i, r)
    {
        const char *k = jstr(r, "kind");
        if (!k || strcmp(k, kind)) continue;
        if (!any) {
            sb_printf(b, "\n| test |");
            if (!strcmp(kind, "batched")) sb_printf(b, " PP | TG | B | N_KV |");
            for (const struct col *c = cols; c->head; c++)
                sb_printf(b, " %s |", c->head);
            sb_printf(b, "\n|---|");
            if (!strcmp(kind, "batched")) sb_printf(b, "---:|---:|---:|---:|");
            for (const struct col *c = cols; c->head; c++)
                sb_printf(b, "---:|");
            sb_printf(b, "\n");
            any = 1;
        }
        const char *id = jstr(r, "id");
        sb_printf(b, "| %s |", id ? id : "?");
        if (!strcmp(kind, "batched")) {
            const json_t *p = json_object_get(r, "params");
            long long pp = json_integer_value(json_object_get(p, "pp"));
            long long tg = json_integer_value(json_object_get(p, "tg"));
            long long bb = json_integer_value(json_object_get(p, "b"));
            sb_printf(b, " %lld | %lld | %lld | %lld |", pp, tg, bb, bb * (pp + tg));
        }
        for (const struct col *c = cols; c->head; c++)
            md_cell(b, r, c);
        sb_printf(b, "\n");
    }
}

static void md_value(struct sb *b, double v, const char *unit)
{
    if (!strcmp(unit, "s"))
        sb_printf(b, "%.3f ms", v * 1e3);
    else if (!strcmp(unit, "B"))
        sb_printf(b, "%.1f MiB", v / (1024.0 * 1024.0));
    else if (!strcmp(unit, "B/s"))
        sb_printf(b, "%.3f GB/s", v * 1e-9);
    else if (!strcmp(unit, "FLOP/s"))
        sb_printf(b, "%.3f GFLOP/s", v * 1e-9);
    else if (!strcmp(unit, "1"))
        sb_printf(b, "%.4g", v);
    else
        sb_printf(b, "%.2f %s", v, unit);
}

static char *render_md(const json_t *doc)
{
    struct sb b = {0};
    const json_t *results = json_object_get(doc, "results");
    const json_t *r0 = json_array_get(results, 0);
    const char *mode = jstr(doc, "run.mode");
    const char *dev = jstr(r0, "engine.device");
    const char *be = jstr(r0, "engine.backend");
    sb_printf(&b, "## llm-bench %s: %s (%s)\n\n", mode ? mode : "?", dev ? dev : "?",
              be ? be : "?");
    const char *mp = jstr(doc, "model.path"), *mh = jstr(doc, "model.hash");
    const char *arch = jstr(doc, "model.arch");
    double np = json_number_value(jget(doc, "model.n_params"));
    sb_printf(&b,
              "model `%s` (%s, %.3g M parameters, hash %s); llm %s commit %s; seed %lld; "
              "%lld repetition(s) after %lld warm-up\n",
              mp ? mp : "?", arch ? arch : "?", np / 1e6, mh ? mh : "?",
              jstr(doc, "env.build.version") ? jstr(doc, "env.build.version") : "?",
              jstr(doc, "env.build.commit") ? jstr(doc, "env.build.commit") : "?",
              (long long)json_integer_value(jget(doc, "run.seed")),
              (long long)json_integer_value(jget(doc, "run.repetitions")),
              (long long)json_integer_value(jget(doc, "run.warmup")));
    double bw = json_number_value(jget(doc, "ceilings.mem_bw"));
    double fl = json_number_value(jget(doc, "ceilings.flops"));
    if (bw > 0 || fl > 0)
        sb_printf(&b, "\nceilings: copy %.2f GB/s (%s); matrix product %.2f GFLOP/s (%s)\n",
                  bw * 1e-9, jstr(doc, "ceilings.bw_how") ? jstr(doc, "ceilings.bw_how") : "?",
                  fl * 1e-9,
                  jstr(doc, "ceilings.flops_how") ? jstr(doc, "ceilings.flops_how") : "?");
    static const char *const kinds[] = {"throughput", "latency", "grid", "batched"};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        md_group(&b, results, kinds[k]);

    sb_printf(&b, "\n| test | figure | mean | stddev | min | max | n |\n"
                  "|---|---|---:|---:|---:|---:|---:|\n");
    size_t i;
    const json_t *r;
    json_array_foreach(results, i, r)
    {
        const char *id = jstr(r, "id");
        const char *name;
        const json_t *f;
        json_object_foreach((json_t *)json_object_get(r, "figures"), name, f)
        {
            const char *unit = jstr(f, "unit");
            if (!unit) unit = "";
            sb_printf(&b, "| %s | %s |", id ? id : "?", name);
            static const char *const st[] = {"mean", "stddev", "min", "max"};
            for (int s = 0; s < 4; s++) {
                sb_printf(&b, " ");
                md_value(&b, json_number_value(json_object_get(f, st[s])), unit);
                sb_printf(&b, " |");
            }
            sb_printf(&b, " %lld |\n", (long long)json_integer_value(json_object_get(f, "n")));
        }
    }
    return sb_done(&b);
}

/* ---- CSV ----------------------------------------------------------------------------- */

static void csv_field(struct sb *b, const char *s, int last)
{
    if (!s) s = "";
    if (strpbrk(s, ",\"\n\r")) {
        sb_printf(b, "\"");
        for (const char *p = s; *p; p++)
            sb_printf(b, *p == '"' ? "\"\"" : "%c", *p);
        sb_printf(b, "\"");
    } else {
        sb_printf(b, "%s", s);
    }
    sb_printf(b, last ? "\n" : ",");
}

static void csv_num(struct sb *b, double v, int last)
{
    char s[40];
    snprintf(s, sizeof s, "%.10g", v);
    csv_field(b, s, last);
}

static char *render_csv(const json_t *doc)
{
    struct sb b = {0};
    sb_printf(&b, "id,kind,mode,backend,device,model_hash,commit,seed,workload_hash,figure,unit,"
                  "better,n,mean,stddev,min,max,samples\n");
    const char *mode = jstr(doc, "run.mode"), *mh = jstr(doc, "model.hash");
    const char *commit = jstr(doc, "env.build.commit");
    char seed[32];
    snprintf(seed, sizeof seed, "%lld", (long long)json_integer_value(jget(doc, "run.seed")));
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(doc, "results"), i, r)
    {
        const char *name;
        const json_t *f;
        json_object_foreach((json_t *)json_object_get(r, "figures"), name, f)
        {
            csv_field(&b, jstr(r, "id"), 0);
            csv_field(&b, jstr(r, "kind"), 0);
            csv_field(&b, mode, 0);
            csv_field(&b, jstr(r, "engine.backend"), 0);
            csv_field(&b, jstr(r, "engine.device"), 0);
            csv_field(&b, mh, 0);
            csv_field(&b, commit, 0);
            csv_field(&b, seed, 0);
            csv_field(&b, jstr(r, "workload.hash"), 0);
            csv_field(&b, name, 0);
            csv_field(&b, jstr(f, "unit"), 0);
            csv_field(&b, jstr(f, "better"), 0);
            csv_num(&b, (double)json_integer_value(json_object_get(f, "n")), 0);
            csv_num(&b, json_number_value(json_object_get(f, "mean")), 0);
            csv_num(&b, json_number_value(json_object_get(f, "stddev")), 0);
            csv_num(&b, json_number_value(json_object_get(f, "min")), 0);
            csv_num(&b, json_number_value(json_object_get(f, "max")), 0);
            struct sb s = {0};
            size_t k;
            const json_t *x;
            json_array_foreach(json_object_get(f, "samples"), k, x)
                sb_printf(&s, "%s%.10g", k ? ";" : "", json_number_value(x));
            char *ss = sb_done(&s);
            if (!ss) {
                b.oom = 1;
                break;
            }
            csv_field(&b, ss, 1);
            free(ss);
        }
    }
    return sb_done(&b);
}

/* ---- JSON and JSON lines ---------------------------------------------------------------- */

static char *render_json(const json_t *doc)
{
    char *s = json_dumps(doc, JSON_INDENT(2));
    if (!s) {
        llm_err_set(LLM_ENOMEM, "out of memory");
        return NULL;
    }
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        llm_err_set(LLM_ENOMEM, "out of memory");
        return NULL;
    }
    t[n] = '\n';
    t[n + 1] = 0;
    return t;
}

static char *render_jsonl(const json_t *doc)
{
    struct sb b = {0};
    json_t *ctx = json_copy((json_t *)doc);
    if (!ctx) {
        llm_err_set(LLM_ENOMEM, "out of memory");
        return NULL;
    }
    json_object_del(ctx, "results");
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(doc, "results"), i, r)
    {
        json_object_set(ctx, "result", (json_t *)r);
        char *line = json_dumps(ctx, JSON_COMPACT);
        if (!line) {
            b.oom = 1;
            break;
        }
        sb_printf(&b, "%s\n", line);
        free(line);
    }
    json_decref(ctx);
    return sb_done(&b);
}

char *llm_bench_render(const json_t *doc, int fmt)
{
    switch (fmt) {
    case LLM_BENCH_MD:
        return render_md(doc);
    case LLM_BENCH_CSV:
        return render_csv(doc);
    case LLM_BENCH_JSON:
        return render_json(doc);
    case LLM_BENCH_JSONL:
        return render_jsonl(doc);
    default:
        llm_err_set(LLM_EINVAL, "unknown output format %d", fmt);
        return NULL;
    }
}

/* ---- loading ---------------------------------------------------------------------------- */

static int check_doc(const json_t *doc, const char *path)
{
    const char *f = jstr(doc, "format");
    if (!f || strcmp(f, LLM_BENCH_FORMAT))
        return llm_err_set(LLM_EFORMAT, "'%s': not an llm-bench result (no \"format\": \"%s\")",
                           path, LLM_BENCH_FORMAT);
    const json_t *v = json_object_get(doc, "version");
    if (!json_is_integer(v) || json_integer_value(v) != LLM_BENCH_VERSION)
        return llm_err_set(LLM_EVERSION, "'%s': result version %lld, this llm-bench reads %d", path,
                           (long long)json_integer_value(v), LLM_BENCH_VERSION);
    if (!json_is_array(json_object_get(doc, "results")))
        return llm_err_set(LLM_EFORMAT, "'%s': no \"results\" array", path);
    return 0;
}

int llm_bench_doc_load(const char *path, json_t **out)
{
    *out = NULL;
    char *buf;
    size_t len;
    int rc = llm_read_file(path, &buf, &len, (size_t)1 << 30);
    if (rc) return rc;
    json_error_t je;
    json_t *doc = json_loadb(buf, len, 0, &je);
    if (doc && !json_object_get(doc, "results") && json_object_get(doc, "result")) {
        json_decref(doc); /* a single JSON line */
        doc = NULL;
    }
    if (!doc) { /* JSON lines: one result per line */
        json_t *results = json_array();
        size_t at = 0;
        long line = 0;
        rc = results ? 0 : llm_err_set(LLM_ENOMEM, "out of memory");
        while (!rc && at < len) {
            const char *nl = memchr(buf + at, '\n', len - at);
            size_t end = nl ? (size_t)(nl - buf) : len;
            line++;
            size_t a = at;
            at = end + 1;
            while (a < end && (buf[a] == ' ' || buf[a] == '\r' || buf[a] == '\t'))
                a++;
            if (a == end) continue;
            json_t *o = json_loadb(buf + a, end - a, 0, &je);
            json_t *r = json_object_get(o, "result");
            if (!json_is_object(r)) {
                rc = llm_err_set(LLM_EFORMAT, "'%s': line %ld: %s", path, line,
                                 o ? "no \"result\" object" : je.text);
                json_decref(o);
                break;
            }
            json_array_append(results, r);
            if (!doc) {
                doc = o;
                json_object_del(doc, "result");
            } else {
                json_decref(o);
            }
        }
        if (!rc && !doc) rc = llm_err_set(LLM_EFORMAT, "'%s': empty", path);
        if (!rc) json_object_set(doc, "results", results);
        json_decref(results);
    }
    free(buf);
    if (!rc) rc = check_doc(doc, path);
    if (rc) {
        json_decref(doc);
        return rc;
    }
    *out = doc;
    return 0;
}

/* ---- baseline gate -------------------------------------------------------------------- */

/* Design choice: a figure regresses only when it got worse by more than
 * the threshold AND by more than the noise both runs measured.  The noise
 * is the spread of one repetition: sqrt(stddev_base^2 + stddev_new^2),
 * the standard deviation of the difference of two repetitions, relative
 * to the baseline mean.  Repetitions' standard deviations rather than the
 * standard errors of the means, because tail figures (itl_p99) are heavy
 * tailed and a stddev over three repetitions underestimates more often
 * than not: the gate must not flake on two identical runs.  With one
 * repetition on either side nothing was measured, and the plain threshold
 * applies (said on standard error and in the comparison). */

static const json_t *find_result(const json_t *doc, const char *id)
{
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(doc, "results"), i, r)
    {
        const char *x = jstr(r, "id");
        if (x && !strcmp(x, id)) return r;
    }
    return NULL;
}

/* repetitions and their standard deviation; n 1 (sd 0) when not recorded */
static int fig_reps(const json_t *res, const char *name, double *sd)
{
    double n = 1, s = 0;
    if (!fig(res, name, "n", &n) || !(n >= 1)) n = 1;
    if (!fig(res, name, "stddev", &s) || !isfinite(s) || s < 0) s = 0;
    *sd = n >= 2 ? s : 0;
    return (int)n;
}

int llm_bench_compare(const json_t *base, const json_t *cur, double max_pct,
                      struct llm_bench_cmp **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t cap = 0;
    int regressions = 0;
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(cur, "results"), i, r)
    {
        const char *id = jstr(r, "id");
        const json_t *br = id ? find_result(base, id) : NULL;
        if (!br) continue;
        const char *name;
        const json_t *f;
        int plain = 0, plain_nb = 0, plain_nc = 0;
        json_object_foreach((json_t *)json_object_get(r, "figures"), name, f)
        {
            const struct llm_bench_figdef *d = llm_bench_figdef(name);
            double c, bv;
            if (!d || d->better == LLM_BENCH_INFO) continue;
            if (!fig(r, name, "mean", &c) || !fig(br, name, "mean", &bv)) continue;
            if (!(bv > 0) || !isfinite(c)) continue;
            if (*n == cap) {
                cap = cap ? cap * 2 : 32;
                struct llm_bench_cmp *p = realloc(*out, cap * sizeof(*p));
                if (!p) {
                    free(*out);
                    *out = NULL;
                    *n = 0;
                    return llm_err_set(LLM_ENOMEM, "out of memory");
                }
                *out = p;
            }
            struct llm_bench_cmp *e = &(*out)[(*n)++];
            memset(e, 0, sizeof(*e));
            snprintf(e->test, sizeof e->test, "%s", id);
            snprintf(e->figure, sizeof e->figure, "%s", name);
            e->better = d->better;
            e->base = bv;
            e->cur = c;
            e->change_pct =
                d->better == LLM_BENCH_HIGHER ? (bv - c) / bv * 100.0 : (c - bv) / bv * 100.0;
            double sdb, sdc;
            e->n_base = fig_reps(br, name, &sdb);
            e->n_cur = fig_reps(r, name, &sdc);
            e->threshold_pct = max_pct;
            if (e->n_base >= 2 && e->n_cur >= 2) {
                e->spread_pct = sqrt(sdb * sdb + sdc * sdc) / bv * 100.0;
                if (LLM_BENCH_NOISE_K * e->spread_pct > max_pct)
                    e->threshold_pct = LLM_BENCH_NOISE_K * e->spread_pct;
            } else {
                e->spread_pct = -1;
                if (!plain) plain_nb = e->n_base, plain_nc = e->n_cur;
                plain = 1;
            }
            e->regressed = e->change_pct > e->threshold_pct;
            regressions += e->regressed;
        }
        if (plain)
            llm_warn("baseline gate: '%s': %d repetition%s in the baseline, %d in this run: "
                     "no spread measured, gated on the plain %g%% threshold",
                     id, plain_nb, plain_nb == 1 ? "" : "s", plain_nc, max_pct);
    }
    return regressions;
}
