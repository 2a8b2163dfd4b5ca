/* mock_backend.h - a struct llm_backend for scheduler tests: no model, but
 * it keeps a real paged KV pool and its logits depend on the whole history
 * of the sequence as stored in that pool.
 *
 * Each KV slot holds (token, position, h) with h = mix(h of the previous
 * position, token, position).  A row reads the previous position through
 * the block table, and every out row re-walks its whole chain, so a wrong
 * block table, a shared block written by another sequence, a lost block or
 * a wrong position changes the logits (or fails the forward with a message)
 * instead of passing silently.  The batch limits the backend announces are
 * enforced. */
#ifndef LLM_TEST_MOCK_BACKEND_H
#define LLM_TEST_MOCK_BACKEND_H

#include <stdint.h>
#include "llm/backend.h"

struct mock_opts {
    int vocab;
    int n_blocks;
    int block_size;
    int max_batch_tokens;
    int max_seqs;
    int max_seq_len;
    int32_t eos;        /* model EOS id (-1: none) */
    float eos_bias;     /* added to the EOS logit */
};

struct mock_counters {
    uint64_t forwards, rows, out_rows, copies;
    int max_rows_seen, max_seqs_seen;
    int max_chunk_seen; /* most rows of one sequence in one step */
};

void mock_opts_init(struct mock_opts *o);
int mock_backend_create(struct llm_backend **out, const struct mock_opts *o);
const struct mock_counters *mock_counters(const struct llm_backend *be);
/* The logits the mock gives after a sequence of tokens (for hand checks). */
void mock_logits_for(const struct llm_backend *be, const int32_t *tokens, int n, float *logits);

#endif
