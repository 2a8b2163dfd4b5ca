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
 * The JSONL batch front end of llm-run (request lines, answer lines, the
 * streaming runner) sits one layer above, in llm/batch.h.
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

#ifdef __cplusplus
}
#endif
#endif
