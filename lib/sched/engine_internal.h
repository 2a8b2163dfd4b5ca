/* engine_internal.h - the engine's state, shared by the engine
 * (engine.c: requests in, steps run, results out) and the scheduling
 * policy (schedule.c: what each step runs); not installed.
 *
 * Design choice: one struct llm_engine holds everything, and the split is
 * by who decides and who does.  The policy reads the queues and the block
 * tables, moves requests between the waiting and running lists, allocates,
 * shares and frees KV blocks, and fills the step's entries; the engine
 * turns those entries into a batch, runs the backend, and owns everything
 * a request produces (tokens, text, logprobs, results).
 */
#ifndef LLM_ENGINE_INTERNAL_H
#define LLM_ENGINE_INTERNAL_H

#include <stdint.h>
#include <stdlib.h>

#include "llm/engine.h"
#include "llm/err.h"
#include "llm/tokenizer.h"
#include "sched_internal.h"

/* ---- request and sequence state ---------------------------------------- */

struct seq {
    struct req *r;
    int choice;  /* -1: the shared prefix of an n > 1 request */
    int kv_len;  /* tokens whose K/V are in the blocks */
    int32_t *bt; /* block table */
    int n_bt, cap_bt;
    /* choices only */
    int32_t *out;
    int n_out, cap_out;
    float *lp;
    int32_t *top_ids;
    float *top_lp;
    double *times;
    char *text;
    size_t text_len, text_cap;
    struct llm_tok_stream *ds;
    int finished;
    int finish_reason;
    int32_t stop_token;
    int stop_string;
    int in_step; /* scheduled in the current step */
    int hw;      /* most tokens ever in K/V (recompute accounting) */
};

struct req {
    uint64_t id;
    void *user;
    struct llm_sampling sp;
    int max_tokens, min_tokens, n, ignore_eos;
    int32_t *prompt;
    int P;
    int32_t *stop_ids;
    int n_stop_ids;
    char **stop;
    size_t *stop_len;
    int n_stop;
    size_t max_stop;
    int32_t *banned;
    int n_banned;
    int max_len; /* P + max_tokens, capped by the context */
    int forked;  /* choices own their block tables (always for n == 1) */
    struct seq prefix;
    struct seq *ch; /* [n] */
    int n_active;   /* unfinished choices */
    double t_arrival, t_sched, t_first;
    int n_preempt;
    struct req *prev, *next;
};

struct entry {
    struct seq *s; /* NULL: removed by a preemption */
    int ntok;
};

struct rlist {
    struct req *head, *tail;
    int n;
};

struct llm_engine {
    struct llm_backend *be;
    const struct llm_tokenizer *tok;
    struct llm_kvpool pool;
    int bs, max_batch_tokens, max_seqs, max_seq_len;
    int64_t vocab;
    int watermark;
    int no_evict;
    int32_t *eos;
    int n_eos;
    int record_times;
    void (*on_token)(void *ctx, const struct llm_token_event *ev);
    void *ctx;

    struct rlist waiting, running;
    int run_slots; /* unfinished choices of running requests */
    struct llm_result **res;
    size_t res_head, res_n, res_cap;
    uint64_t next_id;
    int failed;

    /* per-step state */
    struct entry *ent;
    int n_ent, cap_ent;
    int budget;
    int preempted;  /* requests preempted in this step */
    int idle_steps; /* consecutive steps that ran nothing while work was left */
    struct llm_step_stats st;
    /* batch arrays, grown as needed */
    int32_t *tokens, *pos, *seq_start, *seq_len, *btab, *out_rows;
    size_t cap_tokens, cap_seqs, cap_btab;
    struct llm_sample_row *rows;
    struct llm_sample_result *sres;
    struct seq **out_seq;
    size_t cap_out;

    struct llm_engine_stats stats;
};

/* Grow *p (elements of size sz) to hold at least need; 0 or LLM_ENOMEM. */
static inline int grow(void *pp, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc < need)
        nc *= 2;
    void *np = realloc(*(void **)pp, nc * sz);
    if (!np) return llm_err_set(LLM_ENOMEM, "engine: out of memory");
    *(void **)pp = np;
    *cap = nc;
    return 0;
}

/* Blocks of bs tokens that hold `tokens` tokens. */
static inline int blocks_for(int tokens, int bs)
{
    return (tokens + bs - 1) / bs;
}

/* ---- lists --------------------------------------------------------------- */

/* Take r out of l. */
static inline void list_remove(struct rlist *l, struct req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        l->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        l->tail = r->prev;
    r->prev = r->next = NULL;
    l->n--;
}

/* Append r to l (the youngest). */
static inline void list_push_back(struct rlist *l, struct req *r)
{
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    l->n++;
}

/* Put r first in l (the oldest). */
static inline void list_push_front(struct rlist *l, struct req *r)
{
    r->prev = NULL;
    r->next = l->head;
    if (l->head)
        l->head->prev = r;
    else
        l->tail = r;
    l->head = r;
    l->n++;
}

/* ---- sequences ------------------------------------------------------------ */

/* Tokens the sequence must have in K/V before it samples (prefix: P-1). */
static inline int seq_target(const struct seq *s)
{
    return s->choice < 0 ? s->r->P - 1 : s->r->P + s->n_out;
}

/* Give back every block of s; none of its tokens has K/V any more. */
static inline void seq_drop_blocks(struct llm_engine *e, struct seq *s)
{
    for (int i = 0; i < s->n_bt; i++)
        llm_kvpool_unref(&e->pool, s->bt[i]);
    s->n_bt = 0;
    s->kv_len = 0;
}

/* ---- the policy (schedule.c) ------------------------------------------------ */

/* Plan the next step into e->ent: decodes of running requests first, then
 * prefill chunks, then admission of waiting requests, within the token
 * budget, preempting the youngest requests when blocks run short.  0, or
 * <0 on an error (the engine is then unusable). */
int llm_sched_plan(struct llm_engine *e);

#endif
