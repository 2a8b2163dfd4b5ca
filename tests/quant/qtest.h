/* qtest.h - helpers the quantization tests share: a tensor of a model as
 * f32, a text's tokens as llm-quantize reads them, and a model's logits on
 * the CPU backend. */
#ifndef QTEST_H
#define QTEST_H

#include <stdio.h>
#include <stdlib.h>

#include "llm/backend.h"
#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/model.h"
#include "llm/tokenizer.h"

#define QT_MAX_TOKENS 256

/* A tensor of m as f32 (NULL when absent). */
static inline float *tensor_f32(struct llm_model *m, const char *name, uint64_t *n)
{
    struct llm_tensor t;
    if (llm_model_tensor(m, name, &t)) {
        llm_err_clear();
        return NULL;
    }
    uint64_t k = 1;
    for (int i = 0; i < t.ndim; i++) k *= (uint64_t)t.shape[i];
    float *v = malloc(sizeof(float) * (size_t)k);
    if (v && llm_convert(v, LLM_DTYPE_F32, t.data, t.dtype, (size_t)k)) {
        free(v);
        return NULL;
    }
    *n = k;
    return v;
}

/* Tokens of a text file as llm-quantize reads --calib / --eval text: one
 * encoding with the special tokens, at most max of them. */
static inline int32_t *text_tokens(const struct llm_model *m, const char *path, long max, long *n)
{
    struct llm_tokenizer *tok = NULL;
    FILE *f = fopen(path, "rb");
    char *text = malloc(1 << 20);
    size_t len = f && text ? fread(text, 1, (1 << 20) - 1, f) : 0, cnt = 0;
    int32_t *ids = NULL;
    if (f) fclose(f);
    if (!len || llm_tok_load(&tok, m->tokenizer_json, m->tokenizer_config, m->path) ||
        llm_tok_encode(tok, text, len, 1, &ids, &cnt))
        cnt = 0;
    llm_tok_free(tok);
    free(text);
    *n = (long)cnt < max ? (long)cnt : max;
    return ids;
}

/* Logits of every row of tokens[n <= QT_MAX_TOKENS] as one sequence, on the CPU
 * backend (NULL on failure, the error set). */
static inline float *logits_of(struct llm_model *m, const int32_t *tokens, int n)
{
    struct llm_backend_opts o;
    llm_backend_opts_init(&o);
    o.kv_bytes = 16u << 20;
    o.max_seq_len = n;
    o.max_batch_tokens = n;
    struct llm_backend *be = NULL;
    if (n > QT_MAX_TOKENS || llm_backend_create(&be, "cpu", m, &o)) return NULL;
    int32_t pos[QT_MAX_TOKENS], bt[QT_MAX_TOKENS], rows[QT_MAX_TOKENS];
    for (int i = 0; i < n; i++) pos[i] = rows[i] = i, bt[i] = i;
    int32_t start[2] = {0, n}, len[1] = {n};
    struct llm_batch b = {n, tokens, pos, 1, start, len, bt, QT_MAX_TOKENS, n, rows};
    float *l = malloc(sizeof(float) * (size_t)n * (size_t)be->vocab);
    if (l && (be->ops->forward(be, &b) || be->ops->get_logits(be, l))) {
        free(l);
        l = NULL;
    }
    llm_backend_destroy(be);
    return l;
}

#endif
