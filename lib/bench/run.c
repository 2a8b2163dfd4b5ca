/* run.c - one timed repetition of a workload on the engine, reduced to
 * figures.
 *
 * Design choice: the loop is the engine's own (submit, step, take
 * results), with nothing added inside the timed region but reading the
 * step's statistics: every timestamp comes from the engine
 * (llm_engine_now at arrival, at the end of the step that sampled a token,
 * at finish), so the figures describe what a user of the engine sees.
 * Offline throughput submits every request before the first step; latency
 * submits the next request only when the previous one has finished.
 * Output lengths are forced (min_tokens = max_tokens, EOS ignored) unless
 * the run honours EOS, so the work done is fixed by the workload.
 * Each step is also bracketed by the host clock and the meter's device time
 * read before and after it, so the device's idle share is the part of the
 * wall time no step kept the device busy (device time from CUDA events
 * where the backend has them, else the host time inside backend calls).
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llm/bench.h"
#include "llm/engine.h"
#include "llm/err.h"

void llm_bench_exec_init(struct llm_bench_exec *x)
{
    memset(x, 0, sizeof(*x));
    llm_sampling_init(&x->sampling);
}

int llm_bench_trace_header(FILE *f)
{
    return fputs("# test\trep\tstep\ttokens\tprefill\tdecode\tseqs\tkv_blocks\twall_ms\t"
                 "device_ms\tbytes\tflops\n",
                 f) < 0
               ? llm_err_set(LLM_EIO, "bench: writing the step trace failed")
               : 0;
}

struct dvec {
    double *v;
    size_t n, cap;
};

static int dvec_push(struct dvec *d, double x)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 256;
        double *p = realloc(d->v, cap * sizeof(*p));
        if (!p) return llm_err_set(LLM_ENOMEM, "out of memory");
        d->v = p;
        d->cap = cap;
    }
    d->v[d->n++] = x;
    return 0;
}

struct acc {
    struct dvec ttft, tpot, itl, e2e, user;
    double first_max; /* latest first token */
    int64_t done;
};

static void acc_free(struct acc *a)
{
    free(a->ttft.v);
    free(a->tpot.v);
    free(a->itl.v);
    free(a->e2e.v);
    free(a->user.v);
}

static int submit_one(struct llm_engine *e, const struct llm_bench_workload *w, int i,
                      const struct llm_bench_exec *x)
{
    const struct llm_bench_req *q = &w->reqs[i];
    struct llm_request r;
    llm_request_init(&r);
    r.prompt = q->prompt;
    r.n_prompt = q->n_prompt;
    r.max_tokens = q->n_output;
    r.min_tokens = x->honor_eos ? 0 : q->n_output;
    r.ignore_eos = !x->honor_eos;
    r.sampling = x->sampling;
    r.sampling.seed = x->sampling.seed + (uint64_t)i; /* distinct per request, same every run */
    r.user = (void *)(intptr_t)i;
    int rc = llm_engine_submit(e, &r, NULL);
    if (rc)
        return llm_err_wrap(rc, "request %d (%d prompt + %d output tokens)", i, q->n_prompt,
                            q->n_output);
    return 0;
}

static int take_results(struct llm_engine *e, struct acc *a, struct llm_bench_totals *tot)
{
    struct llm_result *r;
    while ((r = llm_engine_next_result(e))) {
        int rc = 0;
        int idx = (int)(intptr_t)r->user;
        if (r->status) {
            rc = llm_err_set(r->status, "request %d failed: %s", idx, r->error);
            llm_result_free(r);
            return rc;
        }
        int n = r->completion_tokens;
        double e2e = r->t_finish - r->t_arrival;
        tot->requests++;
        tot->prompt_tokens += r->n_prompt;
        tot->output_tokens += n;
        a->done++;
        if (n > 0) {
            if (r->t_first_token > a->first_max) a->first_max = r->t_first_token;
            rc = dvec_push(&a->ttft, r->t_first_token - r->t_arrival);
            if (!rc && n > 1) rc = dvec_push(&a->tpot, (r->t_finish - r->t_first_token) / (n - 1));
            if (!rc && e2e > 0) rc = dvec_push(&a->user, n / e2e);
        }
        if (!rc) rc = dvec_push(&a->e2e, e2e);
        for (int c = 0; !rc && c < r->n_choices; c++) {
            const struct llm_choice *ch = &r->choices[c];
            if (!ch->token_times) continue;
            for (int k = 1; !rc && k < ch->n_tokens; k++)
                rc = dvec_push(&a->itl, ch->token_times[k] - ch->token_times[k - 1]);
        }
        llm_result_free(r);
        if (rc) return rc;
    }
    return 0;
}

/* Wall and device time of every step, added up over the repetition. */
struct steptime {
    double wall, device;
    double idle_max; /* the largest idle share of one step */
};

static int run_steps(struct llm_engine *e, struct llm_bench_meter *m,
                     const struct llm_bench_exec *x, struct acc *a, struct llm_bench_totals *tot,
                     double *kv_sum, uint64_t *steps, struct steptime *stt)
{
    int idle = 0;
    while (llm_engine_has_work(e)) {
        struct llm_step_stats st;
        double d0 = m->device_busy, t0 = llm_engine_now(), b0 = m->bytes, f0 = m->flops;
        int rc = llm_engine_step(e, &st);
        if (!rc) rc = llm_bench_meter_settle(m);
        double w = llm_engine_now() - t0, dv = m->device_busy - d0;
        if (rc) return rc;
        if (x->trace && st.n_tokens > 0 &&
            fprintf(x->trace, "%s\t%d\t%" PRIu64 "\t%d\t%d\t%d\t%d\t%d\t%.4f\t%.4f\t%.6g\t%.6g\n",
                    x->trace_id ? x->trace_id : "", x->trace_rep, st.step, st.n_tokens,
                    st.n_prefill_tokens, st.n_decode_tokens, st.n_seqs, st.kv_blocks_used,
                    w * 1e3, dv * 1e3, m->bytes - b0, m->flops - f0) < 0)
            return llm_err_set(LLM_EIO, "bench: writing the step trace failed");
        stt->wall += w;
        stt->device += dv;
        if (w > 0 && st.n_tokens > 0) {
            double sh = 1.0 - dv / w;
            if (sh > stt->idle_max) stt->idle_max = sh > 1 ? 1 : sh;
        }
        if (st.kv_blocks_total > 0) {
            *kv_sum += (double)st.kv_blocks_used / st.kv_blocks_total;
            (*steps)++;
        }
        if (st.kv_blocks_used > tot->kv_blocks_peak) tot->kv_blocks_peak = st.kv_blocks_used;
        tot->kv_blocks_total = st.kv_blocks_total;
        tot->preemptions += st.n_preempted;
        if (st.n_tokens == 0 && ++idle > 1000)
            return llm_err_set(LLM_ECAPACITY,
                               "engine made no progress for 1000 steps "
                               "(%d requests waiting)",
                               st.n_waiting);
        if (st.n_tokens) idle = 0;
        if ((rc = take_results(e, a, tot))) return rc;
    }
    return take_results(e, a, tot);
}

static int put(json_t *o, const char *k, double v)
{
    if (!isfinite(v)) return 0;
    return json_object_set_new(o, k, json_real(v)) ? llm_err_set(LLM_ENOMEM, "out of memory") : 0;
}

static int put_dist(json_t *o, const char *name, struct dvec *d)
{
    if (d->n == 0) return 0;
    char k[48];
    double sum = 0;
    for (size_t i = 0; i < d->n; i++)
        sum += d->v[i];
    static const double ps[] = {50, 90, 95, 99};
    int rc;
    snprintf(k, sizeof k, "%s_mean", name);
    if ((rc = put(o, k, sum / (double)d->n))) return rc;
    for (int i = 0; i < 4; i++) {
        snprintf(k, sizeof k, "%s_p%d", name, (int)ps[i]);
        if ((rc = put(o, k, llm_bench_percentile(d->v, d->n, ps[i])))) return rc;
    }
    return 0;
}

int llm_bench_run_once(struct llm_engine *e, struct llm_bench_meter *m,
                       const struct llm_bench_workload *w, const struct llm_bench_exec *x,
                       json_t **figures, struct llm_bench_totals *tot)
{
    *figures = NULL;
    memset(tot, 0, sizeof(*tot));
    if (llm_engine_has_work(e)) return llm_err_set(LLM_EINVAL, "bench: the engine is not idle");
    if (w->n < 1) return llm_err_set(LLM_EINVAL, "bench: empty workload");
    struct llm_engine_info info;
    llm_engine_get_info(e, &info);
    for (int i = 0; i < w->n; i++) {
        int64_t need = (int64_t)w->reqs[i].n_prompt + w->reqs[i].n_output;
        if (need > info.max_seq_len)
            return llm_err_set(LLM_ECAPACITY,
                               "request %d: %d prompt + %d output tokens exceed the context of %d "
                               "tokens",
                               i, w->reqs[i].n_prompt, w->reqs[i].n_output, info.max_seq_len);
    }
    struct acc a;
    memset(&a, 0, sizeof a);
    double kv_sum = 0;
    uint64_t steps = 0;
    struct steptime stt = {0, 0, 0};
    int rc = 0;
    int mem_reset_ok = llm_bench_mem_reset(x->cuda, x->device) == 0;
    llm_bench_meter_reset(m);
    struct llm_bench_tele *tele = NULL;
    if (x->tele && (rc = llm_bench_tele_start(&tele, x->tele, 0.1))) return rc;
    double t0 = llm_engine_now();
    if (x->one_at_a_time) {
        for (int i = 0; i < w->n && !rc; i++) {
            rc = submit_one(e, w, i, x);
            if (!rc) rc = run_steps(e, m, x, &a, tot, &kv_sum, &steps, &stt);
        }
    } else {
        for (int i = 0; i < w->n && !rc; i++)
            rc = submit_one(e, w, i, x);
        if (!rc) rc = run_steps(e, m, x, &a, tot, &kv_sum, &steps, &stt);
    }
    double wall = llm_engine_now() - t0;
    json_t *f = rc ? NULL : json_object();
    if (!rc && !f) rc = llm_err_set(LLM_ENOMEM, "out of memory");
    int trc = llm_bench_tele_stop(tele, wall, (double)tot->output_tokens, f);
    if (!rc) rc = trc;
    if (rc) {
        json_decref(f);
        llm_engine_clear(e);
        acc_free(&a);
        return rc;
    }
    tot->rows = m->tokens;
    tot->forwards = m->forwards;
    tot->bytes = m->bytes;
    tot->flops = m->flops;

    double n = (double)tot->requests, out = (double)tot->output_tokens;
    double prompt = (double)tot->prompt_tokens;
    if (wall <= 0) wall = 1e-9;
    rc = put(f, "requests_per_s", n / wall);
    if (!rc) rc = put(f, "output_tokens_per_s", out / wall);
    if (!rc) rc = put(f, "total_tokens_per_s", (prompt + out) / wall);
    if (!rc && x->count_tokens) rc = put(f, "tokens_per_s", (double)m->tokens / wall);
    if (!rc && a.user.n) {
        double s = 0;
        for (size_t i = 0; i < a.user.n; i++)
            s += a.user.v[i];
        rc = put(f, "per_user_tokens_per_s", s / (double)a.user.n);
    }
    if (!rc) rc = put_dist(f, "ttft", &a.ttft);
    if (!rc) rc = put_dist(f, "tpot", &a.tpot);
    if (!rc) rc = put_dist(f, "itl", &a.itl);
    if (!rc) rc = put_dist(f, "e2e", &a.e2e);
    if (!rc && x->phases && a.first_max > t0) {
        double t_pp = a.first_max - t0, t_tg = wall - t_pp;
        double tg = out - (double)a.ttft.n; /* tokens after each request's first */
        rc = put(f, "t_pp", t_pp);
        if (!rc) rc = put(f, "s_pp", prompt / t_pp);
        if (!rc) rc = put(f, "t_tg", t_tg);
        if (!rc && t_tg > 0 && tg > 0) rc = put(f, "s_tg", tg / t_tg);
        if (!rc) rc = put(f, "t", wall);
        if (!rc) rc = put(f, "s", (prompt + tg) / wall);
    }
    if (!rc) rc = put(f, "mem_bw", m->bytes / wall);
    if (!rc && x->ceiling && x->ceiling->mem_bw > 0)
        rc = put(f, "mem_bw_fraction", m->bytes / wall / x->ceiling->mem_bw);
    if (!rc) rc = put(f, "flops", m->flops / wall);
    if (!rc && x->ceiling && x->ceiling->flops > 0)
        rc = put(f, "flops_fraction", m->flops / wall / x->ceiling->flops);
    if (!rc) {
        double share = 1.0 - m->busy / wall;
        rc = put(f, "host_overhead_share", share < 0 ? 0 : share);
    }
    if (!rc) rc = put(f, "device_busy_s", stt.device);
    if (!rc) {
        /* the device clock and the host clock differ slightly: clamp to [0, 1] */
        double share = 1.0 - stt.device / wall;
        rc = put(f, "device_idle_share", share < 0 ? 0 : share > 1 ? 1 : share);
    }
    if (!rc) rc = put(f, "step_idle_share_max", stt.idle_max);
    uint64_t peak;
    if (!rc && (x->cuda || mem_reset_ok)) {
        if (llm_bench_mem_peak(x->cuda, x->device, &peak) == 0)
            rc = put(f, "peak_mem_bytes", (double)peak);
        else
            llm_err_clear(); /* no figure rather than a wrong one */
    }
    if (!rc && tot->kv_blocks_total > 0)
        rc = put(f, "kv_util_peak", (double)tot->kv_blocks_peak / tot->kv_blocks_total);
    if (!rc && steps) rc = put(f, "kv_util_mean", kv_sum / (double)steps);
    if (!rc) rc = put(f, "preemptions", (double)tot->preemptions);
    if (!rc) rc = put(f, "wall_s", wall);
    acc_free(&a);
    if (rc) {
        json_decref(f);
        return rc;
    }
    *figures = f;
    return 0;
}
