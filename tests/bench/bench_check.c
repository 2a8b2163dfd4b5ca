/* bench_check.c - checks on llm-bench's output files for the CLI test:
 *
 *   bench_check json FILE            a result document: format, version,
 *                                    results, every figure with n samples
 *   bench_check jsonl FILE N         N lines, each a JSON object with "result"
 *   bench_check csv FILE             every row has the header's column count
 *   bench_check get FILE PATH        print result 0's value at a dotted path
 *   bench_check count FILE           print the number of results
 *   bench_check same A B FACTOR      same tests, workload hashes and counts;
 *                                    every gated figure's means within a factor
 *                                    FACTOR of each other or within 4 pooled
 *                                    standard deviations (FACTOR 0: counts and
 *                                    workloads only)
 *   bench_check tweak IN OUT FIG F   multiply FIG in every result by F (mean,
 *                                    stddev, min, max and samples: every
 *                                    repetition F times the recorded one);
 *                                    FIG '*': every gated figure made F times
 *                                    better (F < 1: worse)
 *   bench_check quiet IN OUT N       every figure as if its N repetitions had
 *                                    been identical (stddev 0, n N): the
 *                                    gate's bar is then the plain threshold
 *
 * Prints what it compared; exit 0 when the check holds, 1 when it does not,
 * 2 on bad usage.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

static json_t *load(const char *path)
{
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    if (!j) printf("FAIL: '%s' is not JSON: %s (line %d)\n", path, e.text, e.line);
    return j;
}

static const json_t *at(const json_t *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *cur = o;
    char *sv;
    for (char *t = strtok_r(buf, ".", &sv); t && cur; t = strtok_r(NULL, ".", &sv))
        cur = json_object_get(cur, t);
    return cur;
}

static int check_doc(const json_t *doc, const char *what)
{
    if (!json_is_string(json_object_get(doc, "format")) ||
        strcmp(json_string_value(json_object_get(doc, "format")), "llm-bench-result")) {
        printf("FAIL: %s: no \"format\": \"llm-bench-result\"\n", what);
        return 1;
    }
    static const char *const need[] = {"env.host.cpu_model", "env.build.commit", "model.hash",
                                       "run.mode",           "run.seed",         "run.engine"};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (!at(doc, need[i])) {
            printf("FAIL: %s: no %s\n", what, need[i]);
            return 1;
        }
    const json_t *res = json_object_get(doc, "results");
    if (!json_is_array(res) || !json_array_size(res)) {
        printf("FAIL: %s: no results\n", what);
        return 1;
    }
    size_t i, nfig = 0;
    const json_t *r;
    json_array_foreach(res, i, r)
    {
        const char *name;
        json_t *f;
        json_object_foreach(json_object_get(r, "figures"), name, f)
        {
            json_int_t n = json_integer_value(json_object_get(f, "n"));
            if (n < 1 || (json_int_t)json_array_size(json_object_get(f, "samples")) != n ||
                !json_is_number(json_object_get(f, "mean")) ||
                !json_is_number(json_object_get(f, "stddev"))) {
                printf("FAIL: %s: result %zu figure %s malformed\n", what, i, name);
                return 1;
            }
            nfig++;
        }
        if (!json_is_string(at(r, "workload.hash"))) {
            printf("FAIL: %s: result %zu has no workload hash\n", what, i);
            return 1;
        }
    }
    printf("ok: %s: %zu results, %zu figures with samples\n", what, json_array_size(res), nfig);
    return 0;
}

static int cmd_json(const char *path)
{
    json_t *d = load(path);
    if (!d) return 1;
    int rc = check_doc(d, path);
    json_decref(d);
    return rc;
}

static int cmd_jsonl(const char *path, long want)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("FAIL: cannot open '%s'\n", path);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    long n = 0;
    int rc = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t e;
        json_t *j = json_loads(line, 0, &e);
        n++;
        if (!j || !json_is_object(json_object_get(j, "result"))) {
            printf("FAIL: '%s' line %ld: not a JSON object with \"result\"\n", path, n);
            rc = 1;
        } else {
            json_t *doc = json_copy(j);
            json_object_set_new(doc, "results", json_pack("[O]", json_object_get(j, "result")));
            char what[64];
            snprintf(what, sizeof what, "line %ld", n);
            rc |= check_doc(doc, what);
            json_decref(doc);
        }
        json_decref(j);
    }
    free(line);
    fclose(f);
    if (n != want) {
        printf("FAIL: '%s': %ld lines, expected %ld\n", path, n, want);
        return 1;
    }
    if (!rc) printf("ok: '%s': %ld JSON lines\n", path, n);
    return rc;
}

static int cmd_csv(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("FAIL: cannot open '%s'\n", path);
        return 1;
    }
    int c, cols = 1, q = 0, header = -1;
    long rows = 0;
    while ((c = fgetc(f)) != EOF) {
        if (c == '"')
            q = !q;
        else if (c == ',' && !q)
            cols++;
        else if (c == '\n' && !q) {
            if (header < 0)
                header = cols;
            else if (cols != header) {
                printf("FAIL: '%s' row %ld: %d columns, header has %d\n", path, rows + 1, cols,
                       header);
                fclose(f);
                return 1;
            }
            rows++;
            cols = 1;
        }
    }
    fclose(f);
    if (rows < 2 || q) {
        printf("FAIL: '%s': %ld rows%s\n", path, rows, q ? ", unterminated quote" : "");
        return 1;
    }
    printf("ok: '%s': %ld rows of %d columns\n", path, rows, header);
    return 0;
}

static int cmd_get(const char *path, const char *p)
{
    json_t *d = load(path);
    if (!d) return 1;
    const json_t *v = at(json_array_get(json_object_get(d, "results"), 0), p);
    int rc = 0;
    if (json_is_string(v))
        printf("%s\n", json_string_value(v));
    else if (json_is_integer(v))
        printf("%lld\n", (long long)json_integer_value(v));
    else if (json_is_number(v))
        printf("%.17g\n", json_number_value(v));
    else
        rc = 1;
    json_decref(d);
    return rc;
}

static int cmd_same(const char *pa, const char *pb, double factor)
{
    json_t *a = load(pa), *b = load(pb);
    if (!a || !b) return 1;
    int rc = 0;
    size_t i;
    json_t *ra;
    json_array_foreach(json_object_get(a, "results"), i, ra)
    {
        json_t *rb = json_array_get(json_object_get(b, "results"), i);
        const char *id = json_string_value(json_object_get(ra, "id"));
        if (!rb || !id || !json_equal(json_object_get(ra, "id"), json_object_get(rb, "id"))) {
            printf("FAIL: result %zu: tests differ\n", i);
            rc = 1;
            continue;
        }
        if (!json_equal(json_object_get(ra, "workload"), json_object_get(rb, "workload"))) {
            printf("FAIL: %s: workloads differ\n", id);
            rc = 1;
        } else {
            printf("ok: %s: same workload (hash %s)\n", id,
                   json_string_value(at(ra, "workload.hash")));
        }
        json_t *ta = json_deep_copy(json_object_get(ra, "totals"));
        json_t *tb = json_deep_copy(json_object_get(rb, "totals"));
        if (!json_equal(ta, tb)) {
            printf("FAIL: %s: counts differ\n", id);
            rc = 1;
        } else {
            printf("ok: %s: same counts (rows %lld, forwards %lld, FLOPs %.0f)\n", id,
                   (long long)json_integer_value(json_object_get(ta, "rows")),
                   (long long)json_integer_value(json_object_get(ta, "forwards")),
                   json_number_value(json_object_get(ta, "flops")));
        }
        json_decref(ta);
        json_decref(tb);
        const char *name;
        json_t *fa;
        int nf = 0, bad = 0;
        json_object_foreach(json_object_get(ra, "figures"), name, fa)
        {
            json_t *fb = json_object_get(json_object_get(rb, "figures"), name);
            if (!fb) {
                printf("FAIL: %s: %s missing in '%s'\n", id, name, pb);
                rc = 1;
                continue;
            }
            const char *better = json_string_value(json_object_get(fa, "better"));
            if (!better || !strcmp(better, "info")) continue;
            if (factor <= 0) continue; /* counts and workloads only */
            double ma = json_number_value(json_object_get(fa, "mean"));
            double mb = json_number_value(json_object_get(fb, "mean"));
            double sa = json_number_value(json_object_get(fa, "stddev"));
            double sb = json_number_value(json_object_get(fb, "stddev"));
            double diff = fabs(ma - mb);
            double lo = fmin(ma, mb), hi = fmax(ma, mb);
            nf++;
            if (!((lo > 0 && hi <= factor * lo) || diff <= 4 * sqrt(sa * sa + sb * sb))) {
                printf("FAIL: %s: %s %.6g vs %.6g (stddev %.3g, %.3g)\n", id, name, ma, mb, sa, sb);
                bad++;
            }
        }
        if (bad)
            rc = 1;
        else if (factor > 0)
            printf("ok: %s: %d gated figures agree within a factor %g or 4 stddev\n", id, nf,
                   factor);
    }
    json_decref(a);
    json_decref(b);
    return rc;
}

static int cmd_tweak(const char *in, const char *out, const char *figname, double factor)
{
    json_t *d = load(in);
    if (!d) return 1;
    size_t i, n = 0;
    json_t *r;
    json_array_foreach(json_object_get(d, "results"), i, r)
    {
        const char *name;
        json_t *f;
        json_object_foreach(json_object_get(r, "figures"), name, f)
        {
            const char *better = json_string_value(json_object_get(f, "better"));
            double m = json_number_value(json_object_get(f, "mean")), x = factor;
            if (strcmp(figname, "*") ? strcmp(name, figname) != 0
                                     : !better || !strcmp(better, "info"))
                continue;
            if (!strcmp(figname, "*") && !strcmp(better, "lower")) x = 1.0 / factor;
            json_object_set_new(f, "mean", json_real(m * x));
            static const char *const scaled[] = {"stddev", "min", "max"};
            for (size_t k = 0; k < 3; k++) {
                json_t *v = json_object_get(f, scaled[k]);
                if (json_is_number(v))
                    json_object_set_new(f, scaled[k],
                                        json_real(json_number_value(v) * (k ? x : fabs(x))));
            }
            size_t j;
            json_t *smp;
            json_array_foreach(json_object_get(f, "samples"), j, smp)
                json_array_set_new(json_object_get(f, "samples"), j,
                                   json_real(json_number_value(smp) * x));
            if (x < 0) { /* min and max swap */
                json_t *lo = json_incref(json_object_get(f, "min"));
                json_object_set(f, "min", json_object_get(f, "max"));
                json_object_set_new(f, "max", lo);
            }
            n++;
        }
    }
    int rc = n && json_dump_file(d, out, JSON_INDENT(1)) == 0 ? 0 : 1;
    printf("%s: %s x %g in %zu figures -> '%s'\n", rc ? "FAIL" : "ok", figname, factor, n, out);
    json_decref(d);
    return rc;
}

static int cmd_quiet(const char *in, const char *out, long reps)
{
    json_t *d = load(in);
    if (!d || reps < 1) return 1;
    size_t i, n = 0;
    json_t *r;
    json_array_foreach(json_object_get(d, "results"), i, r)
    {
        const char *name;
        json_t *f;
        json_object_foreach(json_object_get(r, "figures"), name, f)
        {
            double m = json_number_value(json_object_get(f, "mean"));
            json_t *smp = json_array();
            for (long k = 0; k < reps; k++)
                json_array_append_new(smp, json_real(m));
            json_object_set_new(f, "n", json_integer(reps));
            json_object_set_new(f, "stddev", json_real(0));
            json_object_set_new(f, "min", json_real(m));
            json_object_set_new(f, "max", json_real(m));
            json_object_set_new(f, "samples", smp);
            n++;
        }
    }
    int rc = n && json_dump_file(d, out, JSON_INDENT(1)) == 0 ? 0 : 1;
    printf("%s: %zu figures with %ld identical repetitions -> '%s'\n", rc ? "FAIL" : "ok", n, reps,
           out);
    json_decref(d);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "json")) return cmd_json(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "jsonl")) return cmd_jsonl(argv[2], atol(argv[3]));
    if (argc == 3 && !strcmp(argv[1], "csv")) return cmd_csv(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "get")) return cmd_get(argv[2], argv[3]);
    if (argc == 3 && !strcmp(argv[1], "count")) {
        json_t *d = load(argv[2]);
        if (!d) return 1;
        printf("%zu\n", json_array_size(json_object_get(d, "results")));
        json_decref(d);
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "same")) return cmd_same(argv[2], argv[3], atof(argv[4]));
    if (argc == 6 && !strcmp(argv[1], "tweak"))
        return cmd_tweak(argv[2], argv[3], argv[4], atof(argv[5]));
    if (argc == 5 && !strcmp(argv[1], "quiet")) return cmd_quiet(argv[2], argv[3], atol(argv[4]));
    fprintf(stderr, "usage: bench_check json|jsonl|csv|get|count|same|tweak|quiet ...\n");
    return 2;
}
