/* engine.h - the generation engine: requests in, finished results out, over
 * any struct llm_backend (CPU now, CUDA later) through the same calls.
 *
 * The engine owns a paged-KV block allocator and an in-flight batching
 * scheduler (docs/SCHEDULER.md): requests are admitted as soon as their
 * prompt's KV blocks are free, long prompts are prefilled in chunks under a
 * per-step token budget mixed with the decodes of running sequences, a
 * sequence leaves the batch the step it finishes, and when KV memory runs
 * out the youngest running request is preempted (its blocks freed) and
 * later recomputed, with output identical to an uninterrupted run.
 *
 * Design choice: the caller drives the loop (submit, step, take results),
 * so one engine serves a batch tool (llm-run: stream requests in as slots
 * free up) and a benchmark (llm-bench: submit on an arrival schedule and
 * read the per-request and per-step timings).  Nothing here spawns threads
 * or blocks; each llm_engine_step() is one forward pass of the backend.
 *
 * Determinism contract: a request's tokens depend only on its prompt, its
 * parameters and its seed - never on the batch it shared, the token budget,
 * the pool size, preemptions or the order of submission - provided the
 * backend's logits for a row depend only on that row's sequence.  Choice c
 * of a request with n > 1 draws from Philox stream c of the same seed.
 *
 * The second half of this header is the JSONL batch format of llm-run
 * (request line parser, result formatter, and the streaming batch runner
 * with --ordered and --resume), kept in the library so that it is fuzzed
 * and tested without a process, and reusable by llm-bench.
 */
#ifndef LLM_ENGINE_H
#define LLM_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

#include "backend.h"
#include "model.h"
#include "sample.h"

#ifdef __cplusplus
extern "C" {
#endif

struct llm_tokenizer;
struct llm_engine;

enum llm_finish {
    LLM_FINISH_NONE = 0, /* still running (or failed) */
    LLM_FINISH_STOP,     /* EOS, a stop token id or a stop string */
    LLM_FINISH_LENGTH,   /* max_tokens reached, or the context is full */
    LLM_FINISH_COUNT
};
const char *llm_finish_name(int finish); /* "stop", "length", "" */

/* ---- requests -------------------------------------------------------- */

struct llm_request {
    /* The prompt: text (encoded with the engine's tokenizer, special tokens
     * added as HF's encode does) or token ids, used when text is NULL.  Both
     * are copied at submit. */
    const char *text;
    size_t text_len;
    const int32_t *prompt;
    int n_prompt;

    struct llm_sampling sampling;
    int max_tokens;        /* >= 1; generation also stops when the context is full */
    int min_tokens;        /* EOS and stop ids are banned, stop strings ignored, before this */
    int n;                 /* choices; choice c samples from stream c */
    int ignore_eos;        /* do not stop on (nor ban) the model's EOS ids */
    const int32_t *stop_ids;
    int n_stop_ids;
    const char *const *stop; /* stop strings (need a tokenizer); output text ends before them */
    int n_stop;

    double arrival;        /* llm_engine_now() time the request arrived; 0 = at submit */
    void *user;            /* returned in events and results */
};
/* Greedy, max_tokens 16, n 1, no stops, no logprobs. */
void llm_request_init(struct llm_request *r);

/* ---- engine ---------------------------------------------------------- */

/* Emitted for every sampled token, in the step that sampled it. */
struct llm_token_event {
    uint64_t req_id;
    void *user;
    int choice;
    int index;        /* index of the token in the choice's output */
    int32_t token;
    float logprob;    /* raw log-softmax */
    double time;      /* llm_engine_now() at the end of the step */
    int finish;       /* enum llm_finish: nonzero when this token ended the choice */
};

struct llm_engine_opts {
    const struct llm_tokenizer *tok; /* NULL: token ids only, no text in results */
    int max_batch_tokens;   /* token budget of one step; 0 = backend's */
    int max_seqs;           /* sequences running at once; 0 = backend's */
    double watermark;       /* fraction of KV blocks kept free at admission; <0 = default 0.01 */
    /* Admission policy.  0 (default): admit while the pool holds the prompts
     * (and what running requests already need), preempting the youngest when
     * it runs out - the most requests in flight.  1 ("no evict"): admit a
     * request only when the pool can hold it and every running request at
     * their maximum lengths (prompt + max_tokens), so nothing is preempted
     * and recomputed; fewer requests in flight when max_tokens is large. */
    int no_evict;
    int record_token_times; /* keep every token's time in the results (for ITL) */
    /* Model EOS ids; n_eos < 0 takes them from the backend's model (or the
     * tokenizer's EOS when the model names none). */
    const int32_t *eos_ids;
    int n_eos;
    void (*on_token)(void *ctx, const struct llm_token_event *ev);
    void *ctx;
};
void llm_engine_opts_init(struct llm_engine_opts *o);

/* What the engine runs with (for the start-up report and llm-bench). */
struct llm_engine_info {
    int n_blocks;           /* KV pool */
    int block_size;         /* tokens per block */
    int64_t kv_tokens;      /* n_blocks * block_size */
    uint64_t kv_bytes;
    int max_batch_tokens;
    int max_seqs;
    int max_seq_len;
    int64_t vocab;
    int watermark_blocks;
    const char *backend;    /* ops->name */
    const char *device;     /* device_name */
};

/* One step, as llm_engine_step reports it. */
struct llm_step_stats {
    uint64_t step;          /* 1, 2, ... */
    int n_tokens;           /* rows in this forward pass */
    int n_prefill_tokens;   /* of which prompt (or recomputed) tokens */
    int n_decode_tokens;    /* of which one-token decodes */
    int n_seqs;             /* sequences in the pass */
    int n_sampled;          /* tokens sampled */
    int n_admitted;         /* requests admitted this step */
    int n_preempted;        /* requests preempted this step */
    int n_finished;         /* requests finished this step */
    int n_running;          /* requests running after the step */
    int n_waiting;          /* requests waiting after the step */
    int kv_blocks_used;     /* after the step */
    int kv_blocks_total;
    double t_start, t_end;  /* llm_engine_now() around the step */
};

/* Totals since creation. */
struct llm_engine_stats {
    uint64_t steps;
    uint64_t submitted, finished, rejected;
    uint64_t prompt_tokens;     /* prompt tokens of finished requests */
    uint64_t generated_tokens;  /* tokens sampled */
    uint64_t computed_tokens;   /* rows run by the backend (prefill + decode + recompute) */
    uint64_t recomputed_tokens; /* rows run again after a preemption */
    uint64_t preemptions;
    int peak_blocks_used;
    double busy_time;           /* seconds inside llm_engine_step */
};

struct llm_choice {
    int index;
    int32_t *tokens;        /* generated ids (a final EOS / stop id included) */
    int n_tokens;
    char *text;             /* detokenized output, stop string excluded; NULL without tokenizer */
    size_t text_len;
    int finish_reason;      /* enum llm_finish */
    int32_t stop_token;     /* id that stopped it, or -1 */
    int stop_string;        /* index of the stop string that matched, or -1 */
    float *logprobs;        /* [n_tokens] when sampling.logprobs >= 0, else NULL */
    int n_top;              /* alternatives per token (sampling.logprobs) */
    int32_t *top_ids;       /* [n_tokens][n_top] */
    float *top_logprobs;    /* [n_tokens][n_top] */
    double *token_times;    /* [n_tokens] with record_token_times, else NULL */
};

struct llm_result {
    uint64_t id;            /* as returned by llm_engine_submit */
    void *user;
    int status;             /* 0, or the negative llm_err that ended it */
    char error[256];
    int n_prompt;
    int completion_tokens;  /* over all choices */
    int n_choices;
    struct llm_choice *choices;
    double t_arrival;
    double t_scheduled;     /* first admitted */
    double t_first_token;   /* first token of any choice */
    double t_finish;
    int n_preemptions;
};
void llm_result_free(struct llm_result *r);

/* The engine borrows be (and opts.tok) for its lifetime and logs the KV
 * budget at info level. */
int llm_engine_create(struct llm_engine **out, struct llm_backend *be,
                      const struct llm_engine_opts *o);
void llm_engine_free(struct llm_engine *e);
void llm_engine_get_info(const struct llm_engine *e, struct llm_engine_info *info);
const struct llm_engine_stats *llm_engine_get_stats(const struct llm_engine *e);

/* Validate and queue a request.  Bad parameters fail with LLM_EINVAL, a
 * prompt that does not fit the context or the KV pool with LLM_ECAPACITY
 * (detail in llm_errmsg()); nothing is queued then and the engine goes on.
 * *id (may be NULL) receives the request's id, increasing from 1. */
int llm_engine_submit(struct llm_engine *e, const struct llm_request *r, uint64_t *id);

/* Run one step: schedule (admit, chunk, preempt), one forward pass, sample,
 * apply stop conditions.  st (may be NULL) receives the step's figures.
 * Returns 0, or a negative error when the backend failed (the engine is
 * then unusable). A step with nothing to do returns 0 with n_tokens 0. */
int llm_engine_step(struct llm_engine *e, struct llm_step_stats *st);

int llm_engine_n_waiting(const struct llm_engine *e);  /* queued, not running */
int llm_engine_n_running(const struct llm_engine *e);
int llm_engine_has_work(const struct llm_engine *e);   /* waiting or running */

/* Next finished request (in the order they finished), or NULL.  The caller
 * frees it with llm_result_free. */
struct llm_result *llm_engine_next_result(struct llm_engine *e);

/* Drop every waiting and running request and every result not yet taken
 * (their KV blocks are freed); the engine stays usable. */
void llm_engine_clear(struct llm_engine *e);

/* Monotonic clock in seconds, the engine's time base. */
double llm_engine_now(void);

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
 * *duplicate is set when the line answers a repeated id. */
char *llm_jsonl_output_key(const char *line, size_t len, int *duplicate);

/* ---- streaming batch runner --------------------------------------------
 * Reads requests line by line, keeps only as many in flight as the engine
 * can run plus a small read-ahead window, and writes one line per request,
 * flushed per line.  Memory does not grow with the number of requests
 * (beyond a 64-bit hash per id, kept for duplicate detection). */

struct llm_run_progress {
    long done;              /* lines answered (results and errors) */
    long errors;            /* of which error lines */
    long skipped;           /* lines skipped by --resume */
    long total;             /* request lines in the input, -1 when unknown (pipe) */
    uint64_t prompt_tokens, completion_tokens;
    double elapsed;         /* seconds since the run started */
    const struct llm_step_stats *step; /* last step, or NULL */
};

struct llm_run_opts {
    FILE *in;
    const char *in_name;    /* for messages */
    const char *out_path;   /* NULL or "-": stdout */
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
