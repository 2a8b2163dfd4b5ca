/* fuzz_jsonl.c - fuzz target for llm-run's request-line parser: any bytes
 * as one line, parsed with a small vocabulary; whatever comes out is
 * formatted as an error line and (when it parsed) as an answer line with a
 * made-up result, and the resume key is read back from both. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llm/batch.h"
#include "llm/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct llm_jsonl_defaults d;
    llm_jsonl_defaults_init(&d, NULL);
    struct llm_jsonl_req q;
    int rc = llm_jsonl_parse(&q, (const char *)data, size, 1, &d, 4096);
    int dup;
    char *line = llm_jsonl_format_error(&q, rc ? rc : -3, "fuzz");
    if (line) free(llm_jsonl_output_key(line, strlen(line), &dup, NULL));
    free(line);
    if (rc == 0) {
        int32_t toks[2] = {1, 2};
        float lps[2] = {-0.5f, -1.0f};
        int32_t tids[4] = {1, 3, 2, -1};
        float tlps[4] = {-0.5f, -2.0f, -1.0f, 0};
        struct llm_choice ch[2];
        memset(ch, 0, sizeof(ch));
        for (int i = 0; i < 2; i++) {
            ch[i].index = i;
            ch[i].tokens = toks;
            ch[i].n_tokens = 2;
            ch[i].finish_reason = 1 + i;
            ch[i].logprobs = lps;
            ch[i].n_top = 2;
            ch[i].top_ids = tids;
            ch[i].top_logprobs = tlps;
        }
        struct llm_result res;
        memset(&res, 0, sizeof(res));
        res.n_prompt = q.req.n_prompt;
        res.completion_tokens = 4;
        res.n_choices = q.req.n > 1 ? 2 : 1;
        res.choices = ch;
        struct llm_jsonl_fmt f = {NULL, "fuzz", 0};
        line = llm_jsonl_format_result(&q, &res, &f);
        if (line) free(llm_jsonl_output_key(line, strlen(line), &dup, NULL));
        free(line);
    }
    free(llm_jsonl_output_key((const char *)data, size, &dup, NULL));
    llm_jsonl_req_free(&q);
    return 0;
}
