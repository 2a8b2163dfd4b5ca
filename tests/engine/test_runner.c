/* test_runner.c - the JSONL batch runner (llm-run's loop) over the mock
 * backend: one answer line per request line whatever the pool, budget and
 * --ordered; and crash recovery: runs stopped at random points (as a kill
 * would: what was flushed stays, what was in flight is lost, sometimes with
 * a half-written last line) and resumed with --resume until done must end
 * with exactly the answers of an uninterrupted run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llm/batch.h"
#include "llm/engine.h"
#include "llm/err.h"
#include "llm/log.h"
#include "mock_backend.h"

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static uint64_t rng = 0x853c49e6748fea9bull;
static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static char dir[256], in_path[300];
static int n_answers; /* request lines in the input */

/* The input: simple and OpenAI lines, seeded sampling, n > 1, bad lines. */
static void write_input(void)
{
    FILE *fp = fopen(in_path, "w");
    int lines = 0;
    for (int i = 0; i < 70; i++) {
        int kind = (int)(rnd() % 20);
        char ids[512];
        int P = 1 + (int)(rnd() % 30), o = 0;
        for (int j = 0; j < P; j++)
            o +=
                snprintf(ids + o, sizeof(ids) - (size_t)o, "%s%d", j ? "," : "", (int)(rnd() % 32));
        int max_tokens = 1 + (int)(rnd() % 20);
        if (kind == 0) {
            fprintf(fp, "{\"id\": \"bad-%d\", \"input_ids\": [1,2], \"top_p\": 7}\n", i);
        } else if (kind == 1) {
            fprintf(fp, "{\"id\": %d, \"input_ids\": [%s\n", 1000 + i, ids); /* malformed */
        } else if (kind == 2) {
            fprintf(fp, "\n"); /* blank: no answer */
            continue;
        } else if (kind <= 6) {
            fprintf(fp,
                    "{\"custom_id\": \"req-%d\", \"method\": \"POST\", \"url\": "
                    "\"/v1/completions\", \"body\": {\"model\": \"m\", \"prompt\": [%s], "
                    "\"max_tokens\": %d, \"temperature\": 0.8, \"n\": %d, \"logprobs\": 2}}\n",
                    i, ids, max_tokens, 1 + (int)(rnd() % 2));
        } else if (kind <= 9) {
            /* no id: the line number is the id */
            fprintf(fp,
                    "{\"input_ids\": [%s], \"max_tokens\": %d, \"temperature\": 1.0, "
                    "\"top_k\": 8}\n",
                    ids, max_tokens);
        } else {
            fprintf(fp,
                    "{\"id\": %d, \"input_ids\": [%s], \"max_tokens\": %d, \"min_tokens\": %d, "
                    "\"temperature\": %s, \"seed\": %d, \"n\": %d, \"repetition_penalty\": 1.1, "
                    "\"stop_token_ids\": [%d], \"logprobs\": %s}\n",
                    i, ids, max_tokens, (int)(rnd() % 2), (rnd() % 2) ? "0" : "0.7",
                    (int)(rnd() % 1000), 1 + (int)(rnd() % 3), 2 + (int)(rnd() % 30),
                    (rnd() % 2) ? "true" : "0");
        }
        lines++;
    }
    /* a duplicate id and a request longer than the context */
    fprintf(fp, "{\"id\": \"dup\", \"input_ids\": [3]}\n");
    fprintf(fp, "{\"id\": \"dup\", \"input_ids\": [4]}\n");
    fprintf(fp, "{\"id\": \"long\", \"input_ids\": [");
    for (int j = 0; j < 300; j++)
        fprintf(fp, "%s5", j ? "," : "");
    fprintf(fp, "]}\n");
    lines += 3;
    fclose(fp);
    n_answers = lines;
}

struct setup {
    int n_blocks, block_size, max_batch_tokens, max_seqs;
};

struct stopper {
    long calls, stop_at;
};

static int stop_cb(void *ctx, const struct llm_run_progress *p)
{
    struct stopper *s = ctx;
    (void)p;
    return ++s->calls >= s->stop_at;
}

static int run(const struct setup *su, const char *out, int ordered, int resume, long stop_at)
{
    struct mock_opts mo;
    mock_opts_init(&mo);
    mo.vocab = 32;
    mo.n_blocks = su->n_blocks;
    mo.block_size = su->block_size;
    mo.max_batch_tokens = su->max_batch_tokens;
    mo.max_seqs = su->max_seqs;
    mo.max_seq_len = 128;
    struct llm_backend *be;
    mock_backend_create(&be, &mo);
    struct llm_engine *e;
    llm_engine_create(&e, be, NULL);
    struct llm_run_opts ro;
    llm_run_opts_init(&ro);
    ro.in = fopen(in_path, "r");
    ro.in_name = in_path;
    ro.out_path = out;
    ro.ordered = ordered;
    ro.resume = resume;
    ro.fmt.created = 1700000000;
    ro.fmt.model_name = "mock";
    ro.defaults.max_tokens = 8;
    struct stopper st = {0, stop_at};
    if (stop_at > 0) {
        ro.progress = stop_cb;
        ro.ctx = &st;
    }
    struct llm_run_progress fin;
    int rc = llm_run_jsonl(e, &ro, &fin);
    if (rc < 0) fprintf(stderr, "run: %s\n", llm_errmsg());
    fclose(ro.in);
    llm_engine_free(e);
    llm_backend_destroy(be);
    return rc;
}

static char **read_lines(const char *path, int *n)
{
    FILE *fp = fopen(path, "r");
    char **v = NULL, *line = NULL;
    size_t cap = 0;
    ssize_t len;
    *n = 0;
    if (!fp) return NULL;
    while ((len = getline(&line, &cap, fp)) > 0) {
        v = realloc(v, sizeof(*v) * (size_t)(*n + 1));
        v[(*n)++] = strdup(line);
    }
    free(line);
    fclose(fp);
    return v;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_lines(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* 0 when the two files hold the same lines (in order, or as multisets). */
static int compare_files(const char *a, const char *b, int ordered, const char *what)
{
    int na, nb;
    char **la = read_lines(a, &na), **lb = read_lines(b, &nb);
    int bad = na != nb;
    if (bad) fprintf(stderr, "  %s: %d lines vs %d\n", what, na, nb);
    if (!ordered) {
        qsort(la, (size_t)na, sizeof(*la), cmp_str);
        qsort(lb, (size_t)nb, sizeof(*lb), cmp_str);
    }
    for (int i = 0; !bad && i < na; i++)
        if (strcmp(la[i], lb[i])) {
            fprintf(stderr, "  %s: line %d differs:\n    %s    %s", what, i + 1, la[i], lb[i]);
            bad = 1;
        }
    free_lines(la, na);
    free_lines(lb, nb);
    return bad;
}

int main(void)
{
    llm_log_set_level(LLM_LOG_ERROR);
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/llm-runner-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(in_path, sizeof(in_path), "%s/in.jsonl", dir);
    write_input();
    char ref[300], out[300];
    snprintf(ref, sizeof(ref), "%s/ref.jsonl", dir);
    snprintf(out, sizeof(out), "%s/out.jsonl", dir);

    struct setup big = {1024, 4, 256, 16};
    CHECK(run(&big, ref, 1, 0, 0) == 0, "reference run");
    int nref;
    char **lref = read_lines(ref, &nref);
    CHECK(nref == n_answers, "reference: %d answer lines for %d request lines", nref, n_answers);
    int errors = 0, openai = 0;
    for (int i = 0; i < nref; i++) {
        errors += strstr(lref[i], "\"error\":{") != NULL ||
                  strstr(lref[i], "\"status_code\":400") != NULL;
        openai += strstr(lref[i], "\"custom_id\"") != NULL;
    }
    CHECK(strstr(lref[nref - 1], "\"id\":\"long\"") && strstr(lref[nref - 1], "context"),
          "the over-long prompt gets an error line naming the context");
    CHECK(strstr(lref[nref - 2], "duplicate id"), "the duplicate id gets an error line: %s",
          lref[nref - 2]);
    free_lines(lref, nref);
    printf("reference: %d answers (%d errors, %d OpenAI form)\n", nref, errors, openai);
    CHECK(errors >= 3 && openai >= 5, "the input mixes forms and errors");

    /* other pools and budgets, ordered and not */
    struct setup setups[] = {{40, 4, 256, 16}, {96, 1, 7, 4}, {30, 8, 16, 16}, {48, 2, 3, 3}};
    for (size_t k = 0; k < sizeof(setups) / sizeof(setups[0]); k++) {
        for (int ordered = 0; ordered < 2; ordered++) {
            char what[96];
            snprintf(what, sizeof(what), "pool %d x %d, budget %d, %d seqs, %s", setups[k].n_blocks,
                     setups[k].block_size, setups[k].max_batch_tokens, setups[k].max_seqs,
                     ordered ? "ordered" : "unordered");
            CHECK(run(&setups[k], out, ordered, 0, 0) == 0, "%s: run", what);
            CHECK(compare_files(ref, out, ordered, what) == 0, "%s: answers differ", what);
            printf("%-46s same answers\n", what);
        }
    }

    /* kill and resume, until done */
    for (int trial = 0; trial < 6; trial++) {
        int ordered = trial % 2;
        struct setup *su = &setups[trial % 4];
        unlink(out);
        int rounds = 0, rc;
        do {
            long stop_at = 1 + (long)(rnd() % 40);
            rc = run(su, out, ordered, 1, stop_at);
            rounds++;
            if (rc == 1 && rnd() % 3 == 0) {
                /* a kill in the middle of a write */
                FILE *fp = fopen(out, "a");
                fputs("{\"id\":12,\"text\":\"cut sh", fp);
                fclose(fp);
            }
        } while (rc == 1 && rounds < 500);
        CHECK(rc == 0, "trial %d: resumed run finished (rc %d after %d rounds)", trial, rc, rounds);
        char what[64];
        snprintf(what, sizeof(what), "kill/resume trial %d (%s)", trial,
                 ordered ? "ordered" : "unordered");
        CHECK(compare_files(ref, out, ordered, what) == 0, "%s: answers differ", what);
        printf("%-46s %3d interrupted runs, same answers\n", what, rounds - 1);
    }
    /* a finished output resumes to nothing new */
    CHECK(run(&big, out, 1, 1, 0) == 0 &&
              compare_files(ref, out, 1, "resume of a finished run") == 0,
          "resume of a finished run adds nothing");

    unlink(in_path);
    unlink(ref);
    unlink(out);
    rmdir(dir);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("all runner checks passed\n");
    return 0;
}
