/* batch.h - offline batch generation: the JSONL request and answer lines of
 * llm-run and the streaming runner that feeds an engine from them.
 *
 * This is the front end above the scheduler (llm/engine.h): it turns lines
 * into struct llm_request, drives llm_engine_step, and turns results back
 * into lines.  It is kept in the library, not in the tool, so that it is
 * fuzzed and tested without a process and reused by llm-bench.
 */
#ifndef LLM_BATCH_H
#define LLM_BATCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

#include "engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- JSONL batch files (llm-run) ---------------------------------------
 * One request per line, either form:
 *   simple: {"id", "prompt" | "input_ids", "max_tokens", "min_tokens",
 *            "temperature", "top_k", "top_p", "min_p", "repetition_penalty",
 *            "presence_penalty", "frequency_penalty", "stop",
 *            "stop_token_ids", "ignore_eos", "seed", "n", "logprobs"}
 *   OpenAI batch: {"custom_id", "method": "POST", "url": "/v1/completions",
 *            "body": {same fields with OpenAI's names; "model" ignored}}
 * Answers in the same form (docs and man/llm-run.1). */

enum llm_jsonl_form { LLM_JSONL_SIMPLE = 0, LLM_JSONL_OPENAI, LLM_JSONL_FORM_COUNT };

/* Values for fields a line leaves out. */
struct llm_jsonl_defaults {
    struct llm_sampling sampling; /* seed: mixed with the request's id, see below */
    int max_tokens;
    int n;
    int ignore_eos;
};
/* Built-in defaults, then the model's generation_config (g may be NULL):
 * greedy unless do_sample, max_tokens = max_new_tokens or 256. */
void llm_jsonl_defaults_init(struct llm_jsonl_defaults *d, const struct llm_gen_defaults *g);

struct llm_jsonl_req {
    int form;                 /* enum llm_jsonl_form; SIMPLE when it could not be told */
    int form_known;           /* the line was a JSON object, so form is what it said */
    long line;                /* 1-based line number */
    json_t *id;               /* "id" / "custom_id", or the line number */
    char *key;                /* compact JSON text of id: what --resume matches */
    char *model;              /* OpenAI body.model, or NULL */
    int logprobs_requested;   /* the line asked for logprobs */
    int seed_given;           /* the line named its seed */
    int duplicate;            /* set by the caller: the id was seen before (error type
                                 "duplicate_id", which --resume counts apart) */
    struct llm_request req;   /* pointers into the storage below */
    /* owned storage */
    char *text_buf;
    int32_t *ids_buf;
    int32_t *stop_ids_buf;
    char **stop_buf;
};

/* Parse one line (without its newline).  vocab > 0 bounds input_ids and
 * stop_token_ids.  When the line names no seed, the seed is the default
 * seed mixed with the id's key, so requests differ from each other yet a
 * rerun (or --resume) draws the same tokens.  On failure returns a
 * negative error with the detail in llm_errmsg(), and still fills form,
 * line, id and key as far as the line allowed, for the error line. */
int llm_jsonl_parse(struct llm_jsonl_req *q, const char *line, size_t len, long lineno,
                    const struct llm_jsonl_defaults *d, int64_t vocab);
void llm_jsonl_req_free(struct llm_jsonl_req *q);

/* Context for output lines. */
struct llm_jsonl_fmt {
    const struct llm_tokenizer *tok; /* token text for logprobs; NULL: ids only */
    const char *model_name;          /* OpenAI "model" when the body names none */
    int64_t created;                 /* OpenAI "created" (unix seconds) */
};
/* One output line (malloc'd, ending in '\n') for a finished request. */
char *llm_jsonl_format_result(const struct llm_jsonl_req *q, const struct llm_result *res,
                              const struct llm_jsonl_fmt *f);
/* One error line for a request that could not be served. code: the llm_err;
 * message: the detail.  The line number is included. */
char *llm_jsonl_format_error(const struct llm_jsonl_req *q, int code, const char *message);
/* The resume key of an output line (the "id" of a simple line, "custom_id"
 * of an OpenAI one), malloc'd, or NULL when the line is not one of ours.
 * *duplicate is set when the line answers a repeated id; *error (may be
 * NULL) when it is an error line. */
char *llm_jsonl_output_key(const char *line, size_t len, int *duplicate, int *error);

/* ---- streaming batch runner --------------------------------------------
 * Reads requests line by line, keeps only as many in flight as the engine
 * can run plus a small read-ahead window, and writes one line per request,
 * flushed per line.  Memory does not grow with the number of requests
 * (beyond a 64-bit hash per id, kept for duplicate detection). */

struct llm_run_progress {
    long done;              /* lines answered (results and errors) */
    long errors;            /* of which error lines */
    long skipped;           /* lines skipped by --resume */
    long skipped_errors;    /* of which the output already held an error line */
    long total;             /* request lines in the input, -1 when unknown (pipe) */
    uint64_t prompt_tokens, completion_tokens;
    double elapsed;         /* seconds since the run started */
    const struct llm_step_stats *step; /* last step, or NULL */
};

struct llm_run_opts {
    FILE *in;
    const char *in_name;    /* for messages */
    const char *out_path;   /* NULL or "-": stdout */
    /* Optional: out_path already open for writing (O_APPEND with resume),
     * so that a tool can find a bad output path before loading a model.
     * The runner truncates a regular file first (unless resume), flushes
     * every line, and leaves closing it to the caller.  NULL: the runner
     * opens out_path itself. */
    FILE *out;
    int ordered;            /* output lines in input order */
    int resume;             /* skip requests already answered in out_path, append */
    struct llm_jsonl_defaults defaults;
    struct llm_jsonl_fmt fmt;
    int read_ahead;         /* requests queued beyond those running; 0 = default */
    /* Called after every step and every output line; a nonzero return
     * stops the run (what was written stays written). */
    int (*progress)(void *ctx, const struct llm_run_progress *p);
    void *ctx;
};
void llm_run_opts_init(struct llm_run_opts *o);

/* Returns 0 when every line was answered, 1 when stopped by the progress
 * callback, or a negative error (input/output failure, backend failure). */
int llm_run_jsonl(struct llm_engine *e, const struct llm_run_opts *o,
                  struct llm_run_progress *final);

#ifdef __cplusplus
}
#endif
#endif
