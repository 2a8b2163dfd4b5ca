/* check_answers.c - helper for test_quickstart.sh: llm-run's answers to
 * lib/data/prompts.jsonl against the committed expected answers.
 *
 *   check-answers PROMPTS.jsonl EXPECTED.jsonl ANSWERS.jsonl
 *
 * Checks, naming every mismatch, exit 1 on any:
 *   - the expected file is worth comparing with: one answer per prompt id,
 *     each with non-empty text, output ids whose count is its
 *     completion_tokens, a finish_reason, and not every text the same;
 *   - ANSWERS holds exactly one answer line per prompt, ids matching the
 *     prompts' (in any order: llm-run writes answers as they finish), and
 *     no error line;
 *   - each answer's text, output ids, finish_reason and usage equal the
 *     expected answer of the same id.
 * The comparison is exact: on the CPU backend the greedy choices and the
 * seeded sampler (keyed by seed and token index, not by the batch) give
 * the same tokens whatever the instruction set or thread count. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static int fails;

/* one failure line: fmt takes the id and what was wrong */
#define bad(fmt, id, what) (fails++, fprintf(stderr, "FAIL: " fmt "\n", (id), (what)))

/* every line of a JSONL file, as an array; NULL after a message */
static json_t *load_lines(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "check-answers: unable to open '%s'\n", path);
        return NULL;
    }
    json_t *a = json_array();
    char *line = NULL;
    size_t cap = 0, no = 0;
    ssize_t r;
    while ((r = getline(&line, &cap, fp)) > 0) {
        no++;
        if (r == 1 && line[0] == '\n') continue;
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)r, 0, &je);
        if (!j || !json_is_object(j)) {
            fprintf(stderr, "check-answers: '%s': line %zu: %s\n", path, no,
                    j ? "not an object" : je.text);
            json_decref(j);
            json_decref(a);
            a = NULL;
            break;
        }
        json_array_append_new(a, j);
    }
    free(line);
    fclose(fp);
    return a;
}

static const char *id_of(const json_t *o)
{
    return json_string_value(json_object_get(o, "id"));
}

static json_t *find(const json_t *arr, const char *id, int *count)
{
    json_t *hit = NULL, *o;
    size_t i;
    *count = 0;
    json_array_foreach(arr, i, o)
    {
        const char *x = id_of(o);
        if (x && !strcmp(x, id)) {
            if (!hit) hit = o;
            (*count)++;
        }
    }
    return hit;
}

/* the expected answers must be a real oracle, not empty or degenerate */
static void check_expected(const json_t *prompts, const json_t *exp)
{
    size_t i;
    json_t *p, *e;
    int distinct = 0;
    const char *first = NULL;
    json_array_foreach(prompts, i, p)
    {
        const char *id = id_of(p);
        int n;
        e = id ? find(exp, id, &n) : NULL;
        if (!id) {
            bad("prompt line %s%s has no string id", "", "");
            continue;
        }
        if (n != 1) {
            bad("expected answers: %s: %s", id, n ? "more than one line" : "missing");
            continue;
        }
        const char *text = json_string_value(json_object_get(e, "text"));
        const json_t *ids = json_object_get(e, "output_ids");
        json_int_t used = json_integer_value(
            json_object_get(json_object_get(e, "usage"), "completion_tokens"));
        if (!text || !*text) bad("expected answers: %s: %s", id, "empty text");
        if (!json_is_array(ids) || json_array_size(ids) == 0 ||
            (json_int_t)json_array_size(ids) != used)
            bad("expected answers: %s: %s", id,
                "no output ids, or not as many as usage.completion_tokens");
        if (!json_string_value(json_object_get(e, "finish_reason")))
            bad("expected answers: %s: %s", id, "no finish_reason");
        if (text && !first) first = text;
        if (text && first && strcmp(text, first)) distinct = 1;
    }
    if (json_array_size(exp) != json_array_size(prompts))
        bad("expected answers: %s%s", "", "not one line per prompt");
    if (json_array_size(prompts) < 2 || !distinct)
        bad("expected answers: %s%s", "", "fewer than two prompts, or every text the same");
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: check-answers PROMPTS.jsonl EXPECTED.jsonl ANSWERS.jsonl\n");
        return 2;
    }
    json_t *prompts = load_lines(argv[1]), *exp = load_lines(argv[2]),
           *got = load_lines(argv[3]);
    if (!prompts || !exp || !got) return 1;
    check_expected(prompts, exp);

    size_t i;
    json_t *a, *p;
    json_array_foreach(got, i, a)
    {
        const char *id = id_of(a);
        int n;
        if (json_object_get(a, "error"))
            bad("answer line %s: %s", id ? id : "(no id)", "is an error line");
        if (!id || !find(prompts, id, &n))
            bad("answer %s: %s", id ? id : "(no id)", "matches no prompt id");
    }
    int same = 0;
    json_array_foreach(prompts, i, p)
    {
        const char *id = id_of(p);
        int n, ne;
        if (!id) continue;
        a = find(got, id, &n);
        json_t *e = find(exp, id, &ne);
        if (n != 1) {
            bad("%s: %s", id, n ? "answered more than once" : "not answered");
            continue;
        }
        if (!e) continue; /* reported above */
        static const char *const keys[] = {"text", "output_ids", "finish_reason", "usage"};
        int ok = 1;
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
            if (!json_equal(json_object_get(a, keys[k]), json_object_get(e, keys[k]))) {
                bad("%s: %s differs from the expected answer", id, keys[k]);
                ok = 0;
            }
        }
        if (!ok) {
            char *ws = json_dumps(json_object_get(e, "text"), JSON_ENCODE_ANY);
            char *gs = json_dumps(json_object_get(a, "text"), JSON_ENCODE_ANY);
            fprintf(stderr, "    want: %s\n    got : %s\n", ws ? ws : "?", gs ? gs : "?");
            free(ws);
            free(gs);
        }
        same += ok;
    }
    printf("%d of %zu answers equal the expected ones (%zu answer lines)\n", same,
           json_array_size(prompts), json_array_size(got));
    json_decref(prompts);
    json_decref(exp);
    json_decref(got);
    return fails ? 1 : 0;
}
