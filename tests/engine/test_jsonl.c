/* test_jsonl.c - llm-run's request-line parser and answer formatter: every
 * field of both forms, defaults and derived seeds, a table of malformed
 * lines (each must fail with a message naming what was wrong, and still
 * carry the line's id for its error line), and answer lines parsed back. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/batch.h"
#include "llm/engine.h"
#include "llm/err.h"

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

static struct llm_jsonl_defaults defs;

static int parse(struct llm_jsonl_req *q, const char *line, long lineno)
{
    return llm_jsonl_parse(q, line, strlen(line), lineno, &defs, 1000);
}

static void test_simple(void)
{
    struct llm_jsonl_req q;
    const char *line =
        "{\"id\": \"a1\", \"input_ids\": [1, 2, 999], \"max_tokens\": 7, \"min_tokens\": 2, "
        "\"temperature\": 0.5, \"top_k\": 40, \"top_p\": 0.9, \"min_p\": 0.05, "
        "\"repetition_penalty\": 1.2, \"presence_penalty\": -0.5, \"frequency_penalty\": 1.5, "
        "\"stop\": [\"\\n\\n\", \"END\"], \"stop_token_ids\": [5, 6], \"ignore_eos\": true, "
        "\"seed\": -1, \"n\": 3, \"logprobs\": 4}";
    int rc = parse(&q, line, 3);
    CHECK(rc == 0, "full simple line: %s", llm_errmsg());
    const struct llm_request *r = &q.req;
    const struct llm_sampling *p = &r->sampling;
    CHECK(q.form == LLM_JSONL_SIMPLE && q.form_known && q.line == 3, "form/line");
    CHECK(!strcmp(q.key, "\"a1\""), "key %s", q.key);
    CHECK(r->n_prompt == 3 && r->prompt[2] == 999 && !r->text, "input_ids");
    CHECK(r->max_tokens == 7 && r->min_tokens == 2 && r->n == 3 && r->ignore_eos == 1, "ints");
    CHECK(p->temperature == 0.5 && p->top_k == 40 && p->top_p == 0.9 && p->min_p == 0.05 &&
              p->repetition_penalty == 1.2 && p->presence_penalty == -0.5 &&
              p->frequency_penalty == 1.5,
          "sampling fields");
    CHECK(p->seed == UINT64_MAX && q.seed_given, "seed -1 -> 2^64-1");
    CHECK(p->logprobs == 4 && q.logprobs_requested, "logprobs");
    CHECK(r->n_stop == 2 && !strcmp(r->stop[0], "\n\n") && !strcmp(r->stop[1], "END"), "stop");
    CHECK(r->n_stop_ids == 2 && r->stop_ids[1] == 6, "stop_token_ids");
    llm_jsonl_req_free(&q);

    /* defaults, text prompt, no id: the line number is the id */
    rc = parse(&q, "{\"prompt\": \"Hello \\u00e9\", \"stop\": \"x\"}", 12);
    CHECK(rc == 0 && !strcmp(q.key, "12") && json_integer_value(q.id) == 12, "no id -> line");
    CHECK(q.req.text && q.req.text_len == 8 && !strcmp(q.req.text, "Hello \xc3\xa9"), "text");
    CHECK(q.req.max_tokens == defs.max_tokens && q.req.n == 1 && q.req.sampling.temperature == 0 &&
              q.req.sampling.logprobs == -1 && q.req.n_stop == 1,
          "defaults");
    uint64_t seed12 = q.req.sampling.seed;
    llm_jsonl_req_free(&q);
    /* derived seeds: a function of the id (and the run's seed) */
    parse(&q, "{\"prompt\": \"x\"}", 12);
    CHECK(q.req.sampling.seed == seed12, "same id, same derived seed");
    llm_jsonl_req_free(&q);
    parse(&q, "{\"prompt\": \"x\"}", 13);
    CHECK(q.req.sampling.seed != seed12, "another id, another seed");
    llm_jsonl_req_free(&q);
    defs.sampling.seed = 1;
    parse(&q, "{\"prompt\": \"x\"}", 12);
    CHECK(q.req.sampling.seed != seed12, "another run seed, another seed");
    llm_jsonl_req_free(&q);
    defs.sampling.seed = 0;

    /* null means default; top_k -1 means off; logprobs true -> 0 */
    rc = parse(&q,
               "{\"id\": 5, \"prompt\": [4, 5], \"max_tokens\": null, \"top_k\": -1, "
               "\"logprobs\": true}",
               1);
    CHECK(rc == 0 && q.req.max_tokens == defs.max_tokens && q.req.sampling.top_k == 0 &&
              q.req.sampling.logprobs == 0 && q.req.n_prompt == 2,
          "null/-1/true: %s", llm_errmsg());
    llm_jsonl_req_free(&q);
    printf("simple form: all fields, defaults, derived seeds\n");
}

static void test_openai(void)
{
    struct llm_jsonl_req q;
    const char *line =
        "{\"custom_id\": \"r-1\", \"method\": \"POST\", \"url\": \"/v1/completions\", "
        "\"body\": {\"model\": \"llama\", \"prompt\": [\"Say hi\"], \"max_tokens\": 5, "
        "\"temperature\": 0.2, \"n\": 2, \"best_of\": 2, \"stream\": false, \"echo\": false, "
        "\"user\": \"u\", \"logprobs\": 3, \"seed\": 9, \"logit_bias\": {}, \"top_k\": 5}}";
    int rc = parse(&q, line, 1);
    CHECK(rc == 0, "OpenAI line: %s", llm_errmsg());
    CHECK(q.form == LLM_JSONL_OPENAI && !strcmp(q.key, "\"r-1\"") && !strcmp(q.model, "llama"),
          "custom_id, model");
    CHECK(q.req.text && !strcmp(q.req.text, "Say hi") && q.req.max_tokens == 5 && q.req.n == 2 &&
              q.req.sampling.seed == 9 && q.req.sampling.logprobs == 3 && q.req.sampling.top_k == 5,
          "body fields");
    llm_jsonl_req_free(&q);
    printf("OpenAI batch form: body fields, accepted no-op fields\n");
}

static void test_malformed(void)
{
    static const struct {
        const char *line;
        int rc;
        const char *needle; /* in the message */
        const char *key;    /* id carried to the error line */
    } cases[] = {
        {"", LLM_EFORMAT, "invalid JSON", "7"},
        {"{\"id\": 1, \"prompt\": \"x\"", LLM_EFORMAT, "invalid JSON", "7"},
        {"[1, 2]", LLM_EFORMAT, "object", "7"},
        {"\"text\"", LLM_EFORMAT, "object", "7"},
        {"{\"id\": 1, \"prompt\": \"x\"} trailing", LLM_EFORMAT, "invalid JSON", "7"},
        {"{\"id\": 1, \"id\": 2, \"prompt\": \"x\"}", LLM_EFORMAT, "duplicate", "7"},
        {"{\"id\": \"k\"}", LLM_EINVAL, "no 'prompt'", "\"k\""},
        {"{\"id\": \"k\", \"prompt\": 5}", LLM_EINVAL, "'prompt'", "\"k\""},
        {"{\"id\": \"k\", \"prompt\": [\"a\", \"b\"]}", LLM_EINVAL, "2 prompts", "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"input_ids\": [1]}", LLM_EINVAL, "not both", "\"k\""},
        {"{\"id\": \"k\", \"input_ids\": [1, 1000]}", LLM_EINVAL, "vocabulary", "\"k\""},
        {"{\"id\": \"k\", \"input_ids\": [1, -1]}", LLM_EINVAL, "input_ids", "\"k\""},
        {"{\"id\": \"k\", \"input_ids\": [1, 2.5]}", LLM_EINVAL, "integer id", "\"k\""},
        {"{\"id\": \"k\", \"input_ids\": \"1 2\"}", LLM_EINVAL, "array", "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"max_tokens\": 0}", LLM_EINVAL, "max_tokens",
         "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"max_tokens\": 2.0}", LLM_EINVAL, "integer", "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"max_tokens\": \"5\"}", LLM_EINVAL, "integer",
         "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"min_tokens\": 9, \"max_tokens\": 3}", LLM_EINVAL,
         "min_tokens", "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"temperature\": -0.1}", LLM_EINVAL, "temperature",
         "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"temperature\": \"hot\"}", LLM_EINVAL, "number",
         "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"top_p\": 0}", LLM_EINVAL, "top_p", "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"top_p\": 1.5}", LLM_EINVAL, "top_p", "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"top_k\": -2}", LLM_EINVAL, "top_k", "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"min_p\": 2}", LLM_EINVAL, "min_p", "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"repetition_penalty\": 0}", LLM_EINVAL,
         "repetition_penalty", "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"presence_penalty\": 3}", LLM_EINVAL,
         "presence_penalty", "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"n\": 0}", LLM_EINVAL, "'n'", "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"logprobs\": 21}", LLM_EINVAL, "logprobs", "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"seed\": 1.5}", LLM_EINVAL, "seed", "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"stop\": \"\"}", LLM_EINVAL, "empty", "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"stop\": [1]}", LLM_EINVAL, "string", "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"stop_token_ids\": [5000]}", LLM_EINVAL, "vocabulary",
         "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"ignore_eos\": 1}", LLM_EINVAL, "ignore_eos",
         "\"k\""},
        {"{\"id\": \"k\", \"prompt\": \"a\", \"max_token\": 5}", LLM_EINVAL,
         "unknown field "
         "'max_token'",
         "\"k\""},
        {"{\"id\": [1, {\"b\": 2, \"a\": 1}], \"prompt\": \"a\", \"model\": \"m\"}", LLM_EINVAL,
         "'model'", "[1,{\"a\":1,\"b\":2}]"},
        {"{\"custom_id\": \"c\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\", "
         "\"body\": {\"prompt\": \"a\"}}",
         LLM_EINVAL, "/v1/chat/completions", "\"c\""},
        {"{\"custom_id\": \"c\", \"method\": \"GET\", \"url\": \"/v1/completions\", "
         "\"body\": {\"prompt\": \"a\"}}",
         LLM_EINVAL, "method", "\"c\""},
        {"{\"custom_id\": \"c\", \"url\": \"/v1/completions\", \"body\": 3}", LLM_EINVAL, "body",
         "\"c\""},
        {"{\"custom_id\": \"c\", \"url\": \"/v1/completions\", \"body\": {\"prompt\": \"a\"}, "
         "\"extra\": 1}",
         LLM_EINVAL, "'extra'", "\"c\""},
        {"{\"custom_id\": \"c\", \"url\": \"/v1/completions\", \"body\": {\"prompt\": \"a\", "
         "\"stream\": true}}",
         LLM_EINVAL, "stream", "\"c\""},
        {"{\"custom_id\": \"c\", \"url\": \"/v1/completions\", \"body\": {\"prompt\": \"a\", "
         "\"logit_bias\": {\"5\": 10}}}",
         LLM_EINVAL, "logit_bias", "\"c\""},
        {"{\"custom_id\": \"c\", \"url\": \"/v1/completions\", \"body\": {\"prompt\": \"a\", "
         "\"n\": 2, \"best_of\": 3}}",
         LLM_EINVAL, "best_of", "\"c\""},
        {"{\"custom_id\": \"c\", \"url\": \"/v1/completions\", \"body\": {\"prompt\": \"a\", "
         "\"suffix\": \"z\"}}",
         LLM_EINVAL, "suffix", "\"c\""},
    };
    int n = (int)(sizeof(cases) / sizeof(cases[0]));
    for (int i = 0; i < n; i++) {
        struct llm_jsonl_req q;
        int rc = parse(&q, cases[i].line, 7);
        CHECK(rc == cases[i].rc && strstr(llm_errmsg(), cases[i].needle),
              "case %d '%s': rc %d, message '%s' (expected %d with '%s')", i, cases[i].line, rc,
              llm_errmsg(), cases[i].rc, cases[i].needle);
        CHECK(q.key && !strcmp(q.key, cases[i].key), "case %d: key %s, expected %s", i,
              q.key ? q.key : "(null)", cases[i].key);
        /* the error line names the id and the line, and resumes by that id */
        char *el = llm_jsonl_format_error(&q, rc, llm_errmsg());
        int dup = 1, err = 0;
        char *k = el ? llm_jsonl_output_key(el, strlen(el), &dup, &err) : NULL;
        CHECK(el && strstr(el, "\"line\":7") && k && !strcmp(k, q.key) && !dup && err,
              "case %d: error line %s", i, el ? el : "(null)");
        free(k);
        free(el);
        llm_jsonl_req_free(&q);
    }
    /* the model field is fine in the OpenAI body but not in the simple form */
    printf("malformed lines: %d cases rejected with a message and their id kept\n", n);
}

static void test_format(void)
{
    struct llm_jsonl_req q;
    parse(&q, "{\"id\": {\"x\": 1}, \"input_ids\": [3, 4], \"logprobs\": 2}", 4);
    int32_t toks[3] = {10, 11, 12};
    float lps[3] = {-0.5f, -1.25f, -INFINITY};
    int32_t tids[6] = {10, 7, 11, 10, 12, -1};
    float tlps[6] = {-0.5f, -2.0f, -1.25f, -1.5f, -3.0f, 0};
    struct llm_choice ch = {0};
    ch.tokens = toks;
    ch.n_tokens = 3;
    ch.text = "a\xff"
              "b"; /* invalid UTF-8 is repaired */
    ch.text_len = 3;
    ch.finish_reason = LLM_FINISH_LENGTH;
    ch.logprobs = lps;
    ch.n_top = 2;
    ch.top_ids = tids;
    ch.top_logprobs = tlps;
    struct llm_result res = {0};
    res.n_prompt = 2;
    res.completion_tokens = 3;
    res.n_choices = 1;
    res.choices = &ch;
    struct llm_jsonl_fmt f = {NULL, "model-x", 1700000000};
    char *line = llm_jsonl_format_result(&q, &res, &f);
    json_t *j = line ? json_loads(line, 0, NULL) : NULL;
    CHECK(j && line[strlen(line) - 1] == '\n', "simple answer parses: %s", line ? line : "");
    if (j) {
        CHECK(json_integer_value(json_object_get(json_object_get(j, "id"), "x")) == 1, "id");
        CHECK(!strcmp(json_string_value(json_object_get(j, "text")), "a\xef\xbf\xbd"
                                                                     "b"),
              "text repaired");
        CHECK(json_array_size(json_object_get(j, "output_ids")) == 3, "output_ids");
        CHECK(!strcmp(json_string_value(json_object_get(j, "finish_reason")), "length"), "finish");
        json_t *u = json_object_get(j, "usage");
        CHECK(json_integer_value(json_object_get(u, "prompt_tokens")) == 2 &&
                  json_integer_value(json_object_get(u, "completion_tokens")) == 3,
              "usage");
        json_t *lp = json_object_get(j, "logprobs");
        CHECK(json_array_size(lp) == 3, "logprobs per token");
        json_t *t0 = json_array_get(lp, 0), *t2 = json_array_get(lp, 2);
        CHECK(json_integer_value(json_object_get(t0, "id")) == 10 &&
                  json_real_value(json_object_get(t0, "logprob")) == -0.5 &&
                  json_array_size(json_object_get(t0, "top")) == 2,
              "token 0 logprobs");
        CHECK(json_real_value(json_object_get(t2, "logprob")) == -9999.0 &&
                  json_array_size(json_object_get(t2, "top")) == 1,
              "-inf -> -9999, missing alternatives dropped");
        int dup, err = 1;
        char *k = llm_jsonl_output_key(line, strlen(line), &dup, &err);
        CHECK(k && !strcmp(k, "{\"x\":1}") && !dup && !err, "answer key");
        free(k);
    }
    json_decref(j);
    free(line);

    /* n > 1: choices */
    struct llm_choice two[2] = {ch, ch};
    two[1].index = 1;
    two[1].finish_reason = LLM_FINISH_STOP;
    res.n_choices = 2;
    res.choices = two;
    line = llm_jsonl_format_result(&q, &res, &f);
    j = line ? json_loads(line, 0, NULL) : NULL;
    json_t *chs = json_object_get(j, "choices");
    CHECK(json_array_size(chs) == 2 &&
              json_integer_value(json_object_get(json_array_get(chs, 1), "index")) == 1 &&
              !strcmp(json_string_value(json_object_get(json_array_get(chs, 1), "finish_reason")),
                      "stop") &&
              !json_object_get(j, "text"),
          "n > 1 answer: %s", line ? line : "");
    json_decref(j);
    free(line);
    llm_jsonl_req_free(&q);

    /* OpenAI */
    parse(&q,
          "{\"custom_id\": \"r9\", \"method\": \"POST\", \"url\": \"/v1/completions\", "
          "\"body\": {\"prompt\": [1], \"logprobs\": 2}}",
          9);
    line = llm_jsonl_format_result(&q, &res, &f);
    j = line ? json_loads(line, 0, NULL) : NULL;
    json_t *resp = json_object_get(j, "response"), *body = json_object_get(resp, "body");
    CHECK(j && !strcmp(json_string_value(json_object_get(j, "custom_id")), "r9") &&
              json_is_null(json_object_get(j, "error")) &&
              json_integer_value(json_object_get(resp, "status_code")) == 200,
          "OpenAI batch line: %s", line ? line : "");
    CHECK(!strcmp(json_string_value(json_object_get(body, "object")), "text_completion") &&
              json_integer_value(json_object_get(body, "created")) == 1700000000 &&
              !strcmp(json_string_value(json_object_get(body, "model")), "model-x"),
          "completion object");
    json_t *c1 = json_array_get(json_object_get(body, "choices"), 1);
    CHECK(json_integer_value(json_object_get(c1, "index")) == 1 &&
              json_array_size(json_object_get(json_object_get(c1, "logprobs"), "tokens")) == 3 &&
              json_array_size(json_object_get(json_object_get(c1, "logprobs"), "top_logprobs")) ==
                  3,
          "choices with OpenAI logprobs");
    CHECK(json_integer_value(json_object_get(json_object_get(body, "usage"), "total_tokens")) == 5,
          "total_tokens");
    int dup, err = 1;
    char *k = line ? llm_jsonl_output_key(line, strlen(line), &dup, &err) : NULL;
    CHECK(k && !strcmp(k, "\"r9\"") && !err, "OpenAI answer key, not an error");
    free(k);
    json_decref(j);
    free(line);
    /* a duplicate's error line is marked for --resume */
    q.duplicate = 1;
    line = llm_jsonl_format_error(&q, LLM_EINVAL, "duplicate id");
    k = line ? llm_jsonl_output_key(line, strlen(line), &dup, &err) : NULL;
    CHECK(k && dup && err && strstr(line, "\"status_code\":400"), "duplicate error line: %s", line);
    free(k);
    free(line);
    llm_jsonl_req_free(&q);
    k = llm_jsonl_output_key("not json", 8, &dup, NULL);
    CHECK(!k, "foreign output lines have no key");
    printf("answer lines: simple, n > 1, OpenAI completion object, resume keys\n");
}

int main(void)
{
    llm_jsonl_defaults_init(&defs, NULL);
    test_simple();
    test_openai();
    test_malformed();
    test_format();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("all JSONL checks passed\n");
    return 0;
}
