/* cuda_sample.c - sampling on the GPU: the reference sampler's rules
 * (lib/sample) for every row at once, with the rows the kernel cannot do
 * (temperature sampling without top-k: a full sort) handed to the reference
 * itself on the host.
 *
 * Design: one pinned buffer carries every row's parameters and token lists
 * (prompt, output, banned ids) to the device in two copies; one kernel
 * launch samples all rows; one copy brings the results back.  The step's
 * end is recorded here for the device timer (last_step_time).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm/backend.h"
#include "llm/err.h"
#include "llm/sample.h"
#include "kernels/kernels.h"
#include "cuda_internal.h"

_Static_assert(sizeof(((struct llm_k_sample_out *)0)->top_ids) ==
                   sizeof(int32_t) * LLM_MAX_LOGPROBS,
               "the sampling kernel's alternatives must match LLM_MAX_LOGPROBS");

/* The reference's parameter rules (llm_sample_cpu refuses the same). */
static int check_sampling(const struct llm_sampling *p, int row)
{
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return llm_err_set(LLM_EINVAL, "sample: row %d: temperature %g must be a finite number >= 0",
                           row, p->temperature);
    if (p->top_k < 0) return llm_err_set(LLM_EINVAL, "sample: row %d: top_k %d must be >= 0", row,
                                         p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return llm_err_set(LLM_EINVAL, "sample: row %d: top_p %g must be in (0, 1]", row, p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1))
        return llm_err_set(LLM_EINVAL, "sample: row %d: min_p %g must be in [0, 1]", row, p->min_p);
    if (!(p->repetition_penalty > 0) || !isfinite(p->repetition_penalty))
        return llm_err_set(LLM_EINVAL, "sample: row %d: repetition_penalty %g must be a finite "
                           "number > 0", row, p->repetition_penalty);
    if (!isfinite(p->presence_penalty) || !isfinite(p->frequency_penalty))
        return llm_err_set(LLM_EINVAL, "sample: row %d: presence/frequency penalty must be finite",
                           row);
    if (p->logprobs < -1 || p->logprobs > LLM_MAX_LOGPROBS)
        return llm_err_set(LLM_EINVAL, "sample: row %d: logprobs %d must be in 0..%d", row,
                           p->logprobs, LLM_MAX_LOGPROBS);
    return 0;
}

/* Whether the kernel reads a row's prompt and output ids (its penalties do). */
static int row_lists(const struct llm_sampling *p)
{
    return p->repetition_penalty != 1.0 || p->presence_penalty != 0.0 ||
           p->frequency_penalty != 0.0;
}

/* One row on the host: the reference sampler over a copy of its logits. */
static int sample_host(struct cu_be *c, int i, const struct llm_sample_row *row,
                       struct llm_sample_result *res)
{
    int64_t V = c->d->vocab_size;
    if (!c->h_logits) CK(cudaMallocHost((void **)&c->h_logits, sizeof(float) * (size_t)V));
    if (!c->sample_scratch && !(c->sample_scratch = malloc(llm_sample_scratch_size(V))))
        return llm_err_set(LLM_ENOMEM, "sample: out of memory");
    CK(cudaMemcpyAsync(c->h_logits, (float *)c->buf[LLM_BUF_LOGITS] + (int64_t)i * V, sizeof(float) * (size_t)V,
                       cudaMemcpyDeviceToHost, c->st));
    CK(cudaStreamSynchronize(c->st));
    int rc = llm_sample_cpu(c->h_logits, V, row, res, c->sample_scratch);
    return rc ? llm_err_wrap(rc, "sample: row %d", i) : 0;
}

int cu_sample(struct llm_backend *be, const struct llm_sample_row *rows, int n,
                     struct llm_sample_result *out)
{
    struct cu_be *c = cu_of(be);
    if (c->n_out < 0) return llm_err_set(LLM_EINVAL, "sample: no successful forward step");
    if (n != c->n_out)
        return llm_err_set(LLM_EINVAL, "sample: %d rows given, the last step kept %d", n, c->n_out);
    if (n == 0) return 0; /* nothing to wait for: the step's end is recorded when asked */
    int64_t V = c->d->vocab_size;
    size_t ntok = 0;
    for (int i = 0; i < n; i++) {
        if (!rows[i].p) return llm_err_set(LLM_EINVAL, "sample: row %d has no parameters", i);
        int rc = check_sampling(rows[i].p, i);
        if (rc) return rc;
        if (rows[i].n_prompt < 0 || rows[i].n_output < 0 || rows[i].n_banned < 0 ||
            (rows[i].n_prompt && !rows[i].prompt) || (rows[i].n_output && !rows[i].output) ||
            (rows[i].n_banned && !rows[i].banned))
            return llm_err_set(LLM_EINVAL, "sample: row %d: bad token lists", i);
        ntok += (size_t)rows[i].n_banned;
        if (row_lists(rows[i].p)) ntok += (size_t)rows[i].n_prompt + (size_t)rows[i].n_output;
    }
    size_t par_bytes = sizeof(struct llm_k_sampler) * (size_t)n;
    size_t out_bytes = sizeof(struct llm_k_sample_out) * (size_t)n;
    size_t need = par_bytes + out_bytes + sizeof(int32_t) * ntok + 64;
    if (need > c->samp_cap) {
        if (c->h_samp) cudaFreeHost(c->h_samp);
        cudaFree(c->d_samp);
        c->h_samp = c->d_samp = NULL;
        c->samp_cap = 0;
        size_t cap = need + need / 2 + 4096;
        CK(cudaMallocHost((void **)&c->h_samp, cap));
        CK(cudaMalloc((void **)&c->d_samp, cap));
        c->samp_cap = cap;
    }
    if (n > c->s_rows) {
        CK(cudaStreamSynchronize(c->st));
        cudaFree(c->s_work);
        cudaFree(c->s_mark);
        c->s_work = NULL;
        c->s_mark = NULL;
        c->s_rows = 0;
        CK(cudaMalloc((void **)&c->s_work, sizeof(float) * (size_t)n * (size_t)V));
        CK(cudaMalloc((void **)&c->s_mark, sizeof(int32_t) * (size_t)n * (size_t)V));
        c->s_rows = n;
    }
    struct llm_k_sampler *hp = (struct llm_k_sampler *)c->h_samp;
    struct llm_k_sample_out *ho = (struct llm_k_sample_out *)(c->h_samp + par_bytes);
    int32_t *ht = (int32_t *)(c->h_samp + par_bytes + out_bytes);
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        const struct llm_sampling *p = rows[i].p;
        struct llm_k_sampler *k = &hp[i];
        memset(k, 0, sizeof *k);
        k->temperature = p->temperature;
        k->top_p = p->top_p;
        k->min_p = p->min_p;
        k->rep = p->repetition_penalty;
        k->pres = p->presence_penalty;
        k->freq = p->frequency_penalty;
        k->seed = p->seed;
        k->index = rows[i].index;
        k->stream = rows[i].stream;
        k->top_k = p->top_k;
        k->n_top = p->logprobs > 0 ? p->logprobs : 0;
        /* the prompt and output ids only where a penalty reads them: a batch of long
         * sequences would otherwise copy megabytes each step for nothing */
        const int lists = row_lists(p);
        k->prompt_off = (int)o;
        k->n_prompt = lists ? rows[i].n_prompt : 0;
        if (k->n_prompt) memcpy(ht + o, rows[i].prompt, sizeof(int32_t) * (size_t)k->n_prompt);
        o += (size_t)k->n_prompt;
        k->output_off = (int)o;
        k->n_output = lists ? rows[i].n_output : 0;
        if (k->n_output) memcpy(ht + o, rows[i].output, sizeof(int32_t) * (size_t)k->n_output);
        o += (size_t)k->n_output;
        k->banned_off = (int)o;
        k->n_banned = rows[i].n_banned;
        if (k->n_banned) memcpy(ht + o, rows[i].banned, sizeof(int32_t) * (size_t)k->n_banned);
        o += (size_t)k->n_banned;
    }
    const struct llm_k_sampler *dp = (const struct llm_k_sampler *)c->d_samp;
    struct llm_k_sample_out *dout = (struct llm_k_sample_out *)(c->d_samp + par_bytes);
    const int32_t *dt = (const int32_t *)(c->d_samp + par_bytes + out_bytes);
    CK(cudaMemcpyAsync(c->d_samp, c->h_samp, par_bytes, cudaMemcpyHostToDevice, c->st));
    if (ntok)
        CK(cudaMemcpyAsync((void *)dt, ht, sizeof(int32_t) * ntok, cudaMemcpyHostToDevice, c->st));
    CK(llm_k_sample((const float *)c->buf[LLM_BUF_LOGITS], V, n, dp, dt, c->s_work, c->s_mark, dout, c->st));
    CK(cudaMemcpyAsync(ho, dout, out_bytes, cudaMemcpyDeviceToHost, c->st));
    if (c->t_state == 1) {
        CK(cudaEventRecord(c->t_end, c->st));
        c->t_state = 2;
    }
    CK(cudaStreamSynchronize(c->st));
    for (int i = 0; i < n; i++) {
        struct llm_sample_result *r = &out[i];
        if (ho[i].status == 1) {
            int rc = sample_host(c, i, &rows[i], r);
            if (rc) return rc;
            continue;
        }
        if (ho[i].status != 0)
            return llm_err_set(LLM_EINVAL, "sample: row %d: no token can be sampled: every id is "
                               "banned", i);
        memset(r, 0, sizeof *r);
        r->token = ho[i].token;
        r->logprob = ho[i].logprob;
        r->n_top = ho[i].n_top;
        for (int j = 0; j < r->n_top && j < LLM_MAX_LOGPROBS; j++) {
            r->top_ids[j] = ho[i].top_ids[j];
            r->top_logprobs[j] = ho[i].top_logprobs[j];
        }
    }
    return 0;
}

