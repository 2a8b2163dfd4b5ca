/* schedule.c - the scheduling policy of the in-flight batching engine:
 * which tokens of which sequences each step runs, which waiting request is
 * admitted, which running one is preempted (docs/SCHEDULER.md states the
 * policy; engine.c runs what it plans).
 *
 * Design choice: the policy works on KV blocks alone.  Running requests are
 * served oldest first, decodes before prefill chunks, and the step's token
 * budget is filled in that order; a request is admitted in strict arrival
 * order only when the free blocks cover what it needs to recompute plus
 * what every running request has been promised (and, with no-evict, every
 * running request at full length), keeping a watermark back.  When blocks
 * run short the youngest running request is preempted: its blocks are
 * freed and it goes back to the front of the waiting queue, to be
 * recomputed later.  Nothing here touches what a request has produced.
 */
#include "engine_internal.h"
#include "llm/log.h"

/* Grow an int-counted array (see grow). */
static int grow_int(void *pp, int *cap, int need, size_t sz)
{
    size_t c = (size_t)*cap;
    int rc = grow(pp, &c, (size_t)need, sz);
    *cap = (int)c;
    return rc;
}

/* ---- block accounting ------------------------------------------------------- */

/* Blocks a waiting (or restarting) request needs to recompute everything
 * it has: the prefix once, then each unfinished choice's own blocks. */
static int need_blocks(const struct llm_engine *e, const struct req *r)
{
    int bs = e->bs;
    if (r->n == 1) return blocks_for(seq_target(&r->ch[0]), bs);
    int pre = r->P - 1, shared = pre / bs, partial = pre % bs != 0;
    int need = blocks_for(pre, bs);
    for (int c = 0; c < r->n; c++)
        if (!r->ch[c].finished) need += blocks_for(seq_target(&r->ch[c]), bs) - shared;
    if (partial && r->n_active > 0) need--; /* the first choice keeps the prefix's block */
    return need;
}

/* Blocks a running request will still take to finish its current work. */
static int promised_blocks(const struct llm_engine *e, const struct req *r)
{
    if (!r->forked) {
        int held = r->prefix.n_bt;
        int need = need_blocks(e, r);
        return need > held ? need - held : 0;
    }
    int p = 0;
    for (int c = 0; c < r->n; c++) {
        const struct seq *s = &r->ch[c];
        if (s->finished) continue;
        int want = blocks_for(seq_target(s), e->bs);
        if (want > s->n_bt) p += want - s->n_bt;
    }
    return p;
}

/* Blocks r may still take before it finishes, every unfinished choice at
 * its maximum length (the no-evict admission's reservation). */
static int reserve_blocks(const struct llm_engine *e, const struct req *r)
{
    int bs = e->bs, full = blocks_for(r->max_len - 1, bs);
    if (r->forked) {
        int p = 0;
        for (int c = 0; c < r->n; c++)
            if (!r->ch[c].finished && full > r->ch[c].n_bt) p += full - r->ch[c].n_bt;
        return p;
    }
    /* not forked yet: the shared prompt blocks once, each choice its own tail */
    int shared = (r->P - 1) / bs;
    int need = full + (r->n - 1) * (full - shared);
    return need > r->prefix.n_bt ? need - r->prefix.n_bt : 0;
}

/* ---- scheduling ------------------------------------------------------------ */

static int add_entry(struct llm_engine *e, struct seq *s, int ntok)
{
    if (grow_int(&e->ent, &e->cap_ent, e->n_ent + 1, sizeof(*e->ent))) return LLM_ENOMEM;
    e->ent[e->n_ent++] = (struct entry){s, ntok};
    s->in_step = 1;
    e->budget -= ntok;
    return 0;
}

/* Free every block of r, drop its entries from this step, and put it at
 * the front of the waiting queue (it is older than everything there). */
static void preempt(struct llm_engine *e, struct req *r)
{
    for (int i = 0; i < e->n_ent; i++) {
        struct seq *s = e->ent[i].s;
        if (s && s->r == r) {
            e->budget += e->ent[i].ntok;
            e->ent[i].s = NULL;
            s->in_step = 0;
        }
    }
    seq_drop_blocks(e, &r->prefix);
    for (int c = 0; c < r->n; c++)
        if (!r->ch[c].finished) seq_drop_blocks(e, &r->ch[c]);
    if (r->n > 1) r->forked = 0;
    list_remove(&e->running, r);
    e->run_slots -= r->n_active;
    list_push_front(&e->waiting, r);
    r->n_preempt++;
    e->preempted++;
    e->st.n_preempted++;
    e->stats.preemptions++;
    llm_debug("preempted request %llu (%d running, %d blocks free)", (unsigned long long)r->id,
              e->running.n, e->pool.n_free);
}

/* Make `need` blocks free by preempting requests younger than r.  When r is
 * itself the youngest and blocks are still short: returns 1 (r untouched). */
static int make_room(struct llm_engine *e, struct req *r, int need)
{
    while (e->pool.n_free < need) {
        struct req *victim = e->running.tail;
        if (victim == r) return 1;
        preempt(e, victim);
    }
    return 0;
}

static int seq_add_blocks(struct llm_engine *e, struct seq *s, int upto_tokens)
{
    int want = blocks_for(upto_tokens, e->bs);
    if (grow_int(&s->bt, &s->cap_bt, want, sizeof(*s->bt))) return LLM_ENOMEM;
    while (s->n_bt < want) {
        int32_t b = llm_kvpool_alloc(&e->pool);
        if (b < 0) return llm_err_set(LLM_ECAPACITY, "kv pool exhausted (internal)");
        s->bt[s->n_bt++] = b;
    }
    return 0;
}

/* Schedule up to `want` tokens of s.  decode: it must run whole, or r is
 * preempted (returns 1); chunk: it shrinks to the blocks there are.
 * Returns 0 scheduled (or nothing fit), 1 when r was preempted, <0 error. */
static int schedule_seq(struct llm_engine *e, struct seq *s, int want, int decode)
{
    struct req *r = s->r;
    if (want > e->budget) want = e->budget;
    if (want <= 0) return 0;
    int need = blocks_for(s->kv_len + want, e->bs) - s->n_bt;
    if (need > 0 && make_room(e, r, need)) {
        if (decode) {
            preempt(e, r);
            return 1;
        }
        want = (s->n_bt + e->pool.n_free) * e->bs - s->kv_len;
        if (want <= 0) return 0;
    }
    int rc = seq_add_blocks(e, s, s->kv_len + want);
    if (rc) return rc;
    return add_entry(e, s, want);
}

/* Turn the finished prefix of an n > 1 request into per-choice tables. */
static int fork_choices(struct llm_engine *e, struct req *r)
{
    int pre = r->P - 1, bs = e->bs;
    int nfull = pre / bs, partial = pre % bs != 0;
    int need = partial ? r->n_active - 1 : 0;
    if (need > 0 && make_room(e, r, need)) {
        preempt(e, r);
        return 1;
    }
    if (need > 0 && !e->be->ops->copy_blocks)
        return llm_err_set(LLM_EUNSUPPORTED, "backend '%s' cannot copy KV blocks",
                           e->be->ops->name);
    int32_t src[64], dst[64];
    int ncopy = 0, first = 1, rc = 0;
    for (int c = 0; c < r->n; c++) {
        struct seq *s = &r->ch[c];
        if (s->finished) continue;
        if (grow_int(&s->bt, &s->cap_bt, r->prefix.n_bt + 1, sizeof(*s->bt))) return LLM_ENOMEM;
        for (int i = 0; i < nfull; i++) {
            s->bt[i] = r->prefix.bt[i];
            if (!first) llm_kvpool_share(&e->pool, s->bt[i]);
        }
        if (partial) {
            if (first) {
                s->bt[nfull] = r->prefix.bt[nfull];
            } else {
                int32_t b = llm_kvpool_alloc(&e->pool);
                if (b < 0) return llm_err_set(LLM_ECAPACITY, "kv pool exhausted (internal)");
                s->bt[nfull] = b;
                src[ncopy] = r->prefix.bt[nfull];
                dst[ncopy++] = b;
                if (ncopy == 64) {
                    rc = e->be->ops->copy_blocks(e->be, src, dst, ncopy);
                    if (rc) return rc;
                    ncopy = 0;
                }
            }
        }
        s->n_bt = r->prefix.n_bt;
        s->kv_len = pre;
        first = 0;
    }
    if (ncopy > 0) {
        rc = e->be->ops->copy_blocks(e->be, src, dst, ncopy);
        if (rc) return rc;
    }
    r->prefix.n_bt = 0; /* its references now belong to the first choice */
    r->prefix.kv_len = 0;
    r->forked = 1;
    return 0;
}

/* Phase for schedule_req: decodes (one pending token) or chunks. */
enum { PH_DECODE, PH_CHUNK };

/* Returns 1 when r was preempted, 0 otherwise, <0 on error. */
static int schedule_req(struct llm_engine *e, struct req *r, int phase)
{
    int rc;
    if (!r->forked) {
        int pending = r->P - 1 - r->prefix.kv_len;
        if (pending > 0) {
            if (phase == PH_CHUNK && !r->prefix.in_step)
                return schedule_seq(e, &r->prefix, pending, 0);
            return 0;
        }
        if (r->prefix.in_step) return 0;
        rc = fork_choices(e, r);
        if (rc) return rc;
    }
    for (int c = 0; c < r->n; c++) {
        struct seq *s = &r->ch[c];
        if (s->finished || s->in_step) continue;
        int pending = seq_target(s) - s->kv_len;
        if (pending <= 0) continue;
        if ((pending == 1) != (phase == PH_DECODE)) continue;
        rc = schedule_seq(e, s, pending, phase == PH_DECODE);
        if (rc) return rc;
    }
    return 0;
}

int llm_sched_plan(struct llm_engine *e)
{
    e->n_ent = 0;
    e->budget = e->max_batch_tokens;
    e->preempted = 0;
    for (int phase = PH_DECODE; phase <= PH_CHUNK; phase++) {
        struct req *r = e->running.head;
        while (r && e->budget > 0) {
            int rc = schedule_req(e, r, phase);
            if (rc < 0) return rc;
            r = rc == 1 ? NULL : r->next; /* r preempted: it was the youngest */
        }
    }
    /* admission: strict arrival order, none after a preemption */
    while (!e->preempted && e->waiting.head && e->budget > 0) {
        struct req *r = e->waiting.head;
        if (e->run_slots + r->n_active > e->max_seqs) break;
        int promised = 0, reserved = 0;
        for (struct req *q = e->running.head; q; q = q->next) {
            promised += promised_blocks(e, q);
            if (e->no_evict) reserved += reserve_blocks(e, q);
        }
        int margin = e->running.n > 0 ? e->watermark : 0;
        if (e->pool.n_free - promised - margin < need_blocks(e, r)) break;
        /* no-evict: r and every running request at full length (alone, r always runs) */
        if (e->no_evict && e->running.n > 0 && e->pool.n_free - reserved < reserve_blocks(e, r))
            break;
        list_remove(&e->waiting, r);
        list_push_back(&e->running, r);
        e->run_slots += r->n_active;
        if (r->t_sched == 0) r->t_sched = llm_engine_now();
        e->st.n_admitted++;
        for (int phase = PH_DECODE; phase <= PH_CHUNK; phase++) {
            int rc = schedule_req(e, r, phase);
            if (rc < 0) return rc;
            if (rc == 1) break;
        }
    }
    return 0;
}
