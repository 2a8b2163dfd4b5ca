/* run_golden.c - helper for test_llm_run.sh: turns a fixture's
 * reference.json (greedy generations recorded with Hugging Face
 * transformers) into llm-run requests, and checks llm-run's answers
 * against it: the prompt token count (tokenization with BOS), every
 * generated id, and the decoded text.
 *
 *   run-golden input REFERENCE.json            requests on stdout
 *   run-golden check REFERENCE.json ANSWERS    exit 1 naming the first mismatch
 *
 * Each prompt is asked twice: as text and as its HF prompt ids, greedy,
 * with min_tokens = max_tokens = the reference length, as the reference
 * was made (EOS masked for the whole generation). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "llm/err.h"
#include "llm/tokenizer.h"

static json_t *load(const char *path)
{
    json_error_t err;
    json_t *j = json_load_file(path, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!j) fprintf(stderr, "run-golden: '%s': %s (line %d)\n", path, err.text, err.line);
    return j;
}

static int make_input(const json_t *ref)
{
    size_t i;
    const json_t *p;
    json_array_foreach(json_object_get(ref, "prompts"), i, p)
    {
        size_t n = json_array_size(json_object_get(p, "generated_ids"));
        for (int ids = 0; ids < 2; ids++) {
            json_t *r = json_object();
            char id[32];
            snprintf(id, sizeof(id), "%s%zu", ids ? "ids-" : "text-", i);
            json_object_set_new(r, "id", json_string(id));
            if (ids)
                json_object_set(r, "input_ids", json_object_get(p, "prompt_ids"));
            else
                json_object_set(r, "prompt", json_object_get(p, "text"));
            json_object_set_new(r, "max_tokens", json_integer((json_int_t)n));
            json_object_set_new(r, "min_tokens", json_integer((json_int_t)n));
            json_object_set_new(r, "temperature", json_integer(0));
            /* the reference applies none of generation_config's sampling fields */
            json_object_set_new(r, "repetition_penalty", json_integer(1));
            char *s = json_dumps(r, JSON_COMPACT);
            puts(s);
            free(s);
            json_decref(r);
        }
    }
    return 0;
}

/* Does the generation hold a special token?  Our text skips them (as
 * vLLM and HF's skip_special_tokens), the reference text keeps them. */
static int has_special(const struct llm_tokenizer *tok, const json_t *ids)
{
    size_t i;
    const json_t *v;
    json_array_foreach(ids, i, v)
    {
        if (tok && llm_tok_is_special(tok, (int32_t)json_integer_value(v))) return 1;
    }
    return 0;
}

static int check(const json_t *ref, const char *ref_path, const char *answers)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", ref_path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof(dir), ".");
    struct llm_tokenizer *tok = NULL;
    if (llm_tok_load_dir(&tok, dir)) {
        fprintf(stderr, "run-golden: tokenizer of '%s': %s\n", dir, llm_errmsg());
        return 1;
    }
    FILE *fp = fopen(answers, "r");
    if (!fp) {
        fprintf(stderr, "run-golden: unable to open '%s'\n", answers);
        return 1;
    }
    json_t *by_id = json_object();
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, fp) > 0) {
        json_t *a = json_loads(line, JSON_ALLOW_NUL, NULL);
        const char *id = json_string_value(json_object_get(a, "id"));
        if (id) json_object_set(by_id, id, a);
        json_decref(a);
    }
    free(line);
    fclose(fp);
    int bad = 0, n = 0;
    size_t i;
    const json_t *p;
    json_array_foreach(json_object_get(ref, "prompts"), i, p)
    {
        for (int ids = 0; ids < 2; ids++) {
            char id[32];
            snprintf(id, sizeof(id), "%s%zu", ids ? "ids-" : "text-", i);
            const json_t *a = json_object_get(by_id, id);
            const json_t *want = json_object_get(p, "generated_ids");
            const json_t *got = json_object_get(a, "output_ids");
            long np = (long)json_integer_value(json_object_get(p, "n_prompt"));
            long gp = (long)json_integer_value(
                json_object_get(json_object_get(a, "usage"), "prompt_tokens"));
            const char *wt = json_string_value(json_object_get(p, "generated_text"));
            const char *gt = json_string_value(json_object_get(a, "text"));
            n++;
            if (!a || !got) {
                printf("FAIL %s: no answer (or an error line)\n", id);
                bad++;
            } else if (np != gp) {
                printf("FAIL %s: %ld prompt tokens, HF has %ld\n", id, gp, np);
                bad++;
            } else if (!json_equal(want, got)) {
                size_t k = 0;
                while (k < json_array_size(want) &&
                       json_equal(json_array_get(want, k), json_array_get(got, k)))
                    k++;
                printf("FAIL %s: generated ids differ from HF at token %zu (%lld vs %lld)\n", id, k,
                       (long long)json_integer_value(json_array_get(got, k)),
                       (long long)json_integer_value(json_array_get(want, k)));
                bad++;
            } else if (wt && !has_special(tok, want) && (!gt || strcmp(wt, gt))) {
                printf("FAIL %s: text differs from HF's decode\n", id);
                bad++;
            } else {
                printf("ok %s: %zu ids%s match HF\n", id, json_array_size(want),
                       !wt                      ? ""
                       : has_special(tok, want) ? " (text holds a special token)"
                                                : " and text");
            }
        }
    }
    json_decref(by_id);
    llm_tok_free(tok);
    printf("%d of %d answers match\n", n - bad, n);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "input") && strcmp(argv[1], "check")) ||
        (!strcmp(argv[1], "check") && argc != 4)) {
        fprintf(stderr, "usage: run-golden input REF | run-golden check REF ANSWERS\n");
        return 2;
    }
    json_t *ref = load(argv[2]);
    if (!ref) return 1;
    int rc = !strcmp(argv[1], "input") ? make_input(ref) : check(ref, argv[2], argv[3]);
    json_decref(ref);
    return rc;
}
