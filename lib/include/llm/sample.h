/* sample.h - logits processing and sampling.
 *
 * One function defines what a sampled token is: llm_sample_cpu().  The CUDA
 * backend implements the same steps in the same order with the same
 * counter-based random numbers (philox.h), so for a given request a token
 * depends only on the logits, the request's parameters, its seed and the
 * token's index in the output, never on the rest of the batch.
 *
 * Order of operations (documented in docs/SAMPLING.md):
 *   1. raw log-softmax of the logits -> logprobs reported to the user;
 *   2. banned ids (EOS and stop ids before min_tokens) -> -inf;
 *   3. repetition penalty over prompt and output tokens (HF rule: positive
 *      logits divided, negative multiplied), then presence and frequency
 *      penalties over output tokens (OpenAI rule);
 *   4. temperature 0 (or top_k 1): argmax, lowest id on ties; else divide
 *      by temperature, softmax, keep top_k, then top_p (smallest prefix of
 *      the descending order whose mass reaches top_p), then min_p (relative
 *      to the largest probability); draw u in [0,1) from
 *      philox(seed, stream, index) and take the first token of the sorted
 *      survivors whose cumulative mass exceeds u x total.
 */
#ifndef LLM_SAMPLE_H
#define LLM_SAMPLE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LLM_MAX_LOGPROBS 20

struct llm_sampling {
    double temperature;        /* 0 = greedy */
    int top_k;                 /* 0 = off */
    double top_p;              /* 1 = off */
    double min_p;              /* 0 = off */
    double repetition_penalty; /* 1 = off */
    double presence_penalty;   /* 0 = off */
    double frequency_penalty;  /* 0 = off */
    uint64_t seed;
    int logprobs;              /* top-N alternatives to report, 0..LLM_MAX_LOGPROBS; -1 = none */
};

/* Neutral values: greedy, no filters, no penalties, seed 0, no logprobs. */
void llm_sampling_init(struct llm_sampling *p);
/* LLM_EINVAL naming the first out-of-range field (temperature >= 0,
 * top_k >= 0, top_p in (0,1], min_p in [0,1], repetition_penalty > 0,
 * penalties finite, logprobs -1..LLM_MAX_LOGPROBS). */
int llm_sampling_check(const struct llm_sampling *p);

/* What the sampler needs to know of one sequence for one token. */
struct llm_sample_row {
    const struct llm_sampling *p;
    uint32_t stream;          /* choice index when n > 1 */
    uint64_t index;           /* index of this token in the output (0 = first) */
    const int32_t *prompt;    /* for the repetition penalty */
    int n_prompt;
    const int32_t *output;    /* tokens generated so far */
    int n_output;
    const int32_t *banned;    /* ids that must not be sampled now */
    int n_banned;
};

struct llm_sample_result {
    int32_t token;
    float logprob;                           /* raw log-softmax of the chosen token */
    int n_top;
    int32_t top_ids[LLM_MAX_LOGPROBS];       /* most likely first */
    float top_logprobs[LLM_MAX_LOGPROBS];
};

/* Sample one token from logits[vocab] (the row is not modified).
 * scratch: at least llm_sample_scratch_size(vocab) bytes, or NULL to
 * allocate internally. */
int llm_sample_cpu(const float *logits, int64_t vocab, const struct llm_sample_row *row,
                   struct llm_sample_result *res, void *scratch);
uint64_t llm_sample_scratch_size(int64_t vocab);

#ifdef __cplusplus
}
#endif
#endif
