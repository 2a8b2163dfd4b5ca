/* graph.c - the model definition (llm/graph.h): the steps of a forward
 * pass, derived from the description once.
 *
 * Design: three short lists (before the layers, one layer, after the
 * layers) built by a handful of helpers, one per sub-block: the attention
 * block, the MLP block, and how their outputs reach the residual stream
 * (accumulated by the projection, or reduced over tensor-parallel ranks and
 * added).  Every structural switch of the description is read here and
 * nowhere else above lib/model.
 */
#include <stdio.h>
#include <string.h>

#include "llm/err.h"
#include "llm/graph.h"

static const char *const op_names[] = {"EMBED", "NORM",   "LINEAR",   "QK_NORM",  "CLIP",
                                       "ROPE_KV", "ATTN", "MOE",      "ADD",      "GATHER",
                                       "SOFTCAP", "ALLREDUCE", "ALLGATHER", "SEND", "RECV",
                                       "SCALE", "RSCALE", "MLA"};
_Static_assert(sizeof(op_names) / sizeof(op_names[0]) == LLM_OP_COUNT, "op_names");

static const char *const buf_names[] = {"X",  "XN", "XN2", "QKV",  "ATT",
                                        "AO", "H",  "FIN", "FIN2", "LOGITS"};
_Static_assert(sizeof(buf_names) / sizeof(buf_names[0]) == LLM_BUF_COUNT, "buf_names");

const char *llm_op_name(int op)
{
    return op >= 0 && op < LLM_OP_COUNT ? op_names[op] : "?";
}

const char *llm_buf_name(int buf)
{
    return buf >= 0 && buf < LLM_BUF_COUNT ? buf_names[buf] : "-";
}

/* A list being filled. */
struct list {
    struct llm_step *s;
    int *n;
    int overflow;
};

static struct llm_step *add(struct list *l, int op, int out, int in, int slot)
{
    static struct llm_step sink;
    if (*l->n >= LLM_GRAPH_MAX_STEPS) {
        l->overflow = 1;
        return &sink;
    }
    struct llm_step *s = &l->s[(*l->n)++];
    memset(s, 0, sizeof *s);
    s->op = (uint8_t)op;
    s->out = (uint8_t)out;
    s->in = (uint8_t)in;
    s->add = LLM_BUF_NONE;
    s->slot = (uint8_t)slot;
    s->rows = LLM_ROWS_ALL;
    s->act = -1;
    return s;
}

static void norm(struct list *l, int out, int in, int slot)
{
    add(l, LLM_OP_NORM, out, in, slot);
}

/* A projection whose output joins the residual stream: accumulated into X
 * by the product itself on one rank, or written to AO, summed over the
 * ranks and added.  With sandwich norms the output is normalised first,
 * and with a residual scale (Granite) multiplied by it. */
static void to_residual(struct list *l, const struct llm_graph *g,
                        const struct llm_model_desc *d, int in, int slot, int post_norm)
{
    int scaled = d->residual_scale > 0.0 && d->residual_scale != 1.0;
    if (!g->reduce && post_norm < 0 && !scaled) {
        add(l, LLM_OP_LINEAR, LLM_BUF_X, in, slot)->accumulate = 1;
        return;
    }
    add(l, LLM_OP_LINEAR, LLM_BUF_AO, in, slot);
    if (g->reduce) add(l, LLM_OP_ALLREDUCE, LLM_BUF_AO, LLM_BUF_AO, 0);
    if (post_norm >= 0) norm(l, LLM_BUF_AO, LLM_BUF_AO, post_norm);
    if (scaled) add(l, LLM_OP_RSCALE, LLM_BUF_AO, LLM_BUF_AO, 0);
    add(l, LLM_OP_ADD, LLM_BUF_X, LLM_BUF_AO, 0);
}

/* q, k, v from `in`, positions, cache, attention: leaves ATT. */
static void attention(struct list *l, const struct llm_model_desc *d, int in)
{
    if (d->kv_lora_rank > 0) {
        add(l, LLM_OP_MLA, LLM_BUF_QKV, in, LLM_W_Q_B);
        add(l, LLM_OP_ROPE_KV, LLM_BUF_QKV, LLM_BUF_QKV, 0);
        add(l, LLM_OP_ATTN, LLM_BUF_ATT, LLM_BUF_QKV, 0);
        return;
    }
    add(l, LLM_OP_LINEAR, LLM_BUF_QKV, in, LLM_W_QKV);
    if (d->clip_qkv > 0.0) add(l, LLM_OP_CLIP, LLM_BUF_QKV, LLM_BUF_QKV, 0);
    if (d->qk_norm != LLM_QK_NORM_NONE) add(l, LLM_OP_QK_NORM, LLM_BUF_QKV, LLM_BUF_QKV, LLM_W_Q_NORM);
    add(l, LLM_OP_ROPE_KV, LLM_BUF_QKV, LLM_BUF_QKV, 0);
    add(l, LLM_OP_ATTN, LLM_BUF_ATT, LLM_BUF_QKV, 0);
}

/* The MLP's inner activations from `in` (a dense MLP; MoE is one step). */
static void mlp_in(struct list *l, const struct llm_model_desc *d, int in)
{
    struct llm_step *s = add(l, LLM_OP_LINEAR, LLM_BUF_H, in, LLM_W_MLP_FC);
    s->gated = (uint8_t)d->gated_mlp;
    s->act = (int8_t)d->act;
}

/* A whole MLP block from `in` into the residual stream. */
static void mlp_block(struct list *l, const struct llm_graph *g, const struct llm_model_desc *d,
                      int in)
{
    int post = d->sandwich_norm ? LLM_W_MLP_POST_NORM : -1;
    if (d->n_experts > 0) {
        const int scaled = d->residual_scale > 0.0 && d->residual_scale != 1.0; /* GraniteMoe */
        if (!g->reduce && post < 0 && !scaled) {
            add(l, LLM_OP_MOE, LLM_BUF_X, in, LLM_W_ROUTER)->accumulate = 1;
            return;
        }
        add(l, LLM_OP_MOE, LLM_BUF_AO, in, LLM_W_ROUTER);
        if (g->reduce) add(l, LLM_OP_ALLREDUCE, LLM_BUF_AO, LLM_BUF_AO, 0);
        if (post >= 0) norm(l, LLM_BUF_AO, LLM_BUF_AO, post);
        if (scaled) add(l, LLM_OP_RSCALE, LLM_BUF_AO, LLM_BUF_AO, 0);
        add(l, LLM_OP_ADD, LLM_BUF_X, LLM_BUF_AO, 0);
        return;
    }
    mlp_in(l, d, in);
    to_residual(l, g, d, LLM_BUF_H, LLM_W_MLP_OUT, post);
}

static void layer_steps(struct list *l, const struct llm_graph *g, const struct llm_model_desc *d)
{
    if (d->norm_after) {
        /* post-LN (OPT-350m): x = norm(x + attn(x)); x = norm(x + mlp(x)) */
        attention(l, d, LLM_BUF_X);
        to_residual(l, g, d, LLM_BUF_ATT, LLM_W_ATTN_OUT, -1);
        norm(l, LLM_BUF_X, LLM_BUF_X, LLM_W_ATTN_NORM);
        mlp_block(l, g, d, LLM_BUF_X);
        norm(l, LLM_BUF_X, LLM_BUF_X, LLM_W_MLP_NORM);
        return;
    }
    if (d->no_input_norm) {
        /* OLMo 2: x = x + n1(attn(x)); x = x + n2(mlp(x)) */
        attention(l, d, LLM_BUF_X);
        to_residual(l, g, d, LLM_BUF_ATT, LLM_W_ATTN_OUT, LLM_W_ATTN_POST_NORM);
        mlp_block(l, g, d, LLM_BUF_X);
        return;
    }
    norm(l, LLM_BUF_XN, LLM_BUF_X, LLM_W_ATTN_NORM);
    if (!d->parallel_residual) {
        attention(l, d, LLM_BUF_XN);
        to_residual(l, g, d, LLM_BUF_ATT, LLM_W_ATTN_OUT,
                    d->sandwich_norm ? LLM_W_ATTN_POST_NORM : -1);
        norm(l, LLM_BUF_XN, LLM_BUF_X, LLM_W_MLP_NORM);
        mlp_block(l, g, d, LLM_BUF_XN);
        return;
    }
    /* parallel: x + (attn(n1(x)) + mlp(n2(x))), the two outputs summed first */
    int min = LLM_BUF_XN;
    if (!d->shared_input_norm) {
        norm(l, LLM_BUF_XN2, LLM_BUF_X, LLM_W_MLP_NORM);
        min = LLM_BUF_XN2;
    }
    attention(l, d, LLM_BUF_XN);
    add(l, LLM_OP_LINEAR, LLM_BUF_AO, LLM_BUF_ATT, LLM_W_ATTN_OUT);
    if (d->n_experts > 0) {
        add(l, LLM_OP_MOE, LLM_BUF_AO, min, LLM_W_ROUTER)->accumulate = 1;
    } else {
        mlp_in(l, d, min);
        add(l, LLM_OP_LINEAR, LLM_BUF_AO, LLM_BUF_H, LLM_W_MLP_OUT)->accumulate = 1;
    }
    if (g->reduce) add(l, LLM_OP_ALLREDUCE, LLM_BUF_AO, LLM_BUF_AO, 0);
    add(l, LLM_OP_ADD, LLM_BUF_X, LLM_BUF_AO, 0);
}

int llm_graph_build(struct llm_graph *g, const struct llm_model_desc *d,
                    const struct llm_graph_opts *o)
{
    memset(g, 0, sizeof *g);
    int rc = llm_desc_validate(d);
    if (rc) return rc;
    g->tp = o && o->tp > 0 ? o->tp : llm_part_tp(d);
    g->reduce = g->tp > 1 || (o && o->reduce);
    g->first_layer = 0;
    g->n_layers = d->n_layers;
    const int pp = llm_part_pp(d), tp = llm_part_tp(d);
    const int first = llm_part_first_stage(d), last = llm_part_last_stage(d);
    const int me = d->part.pp_rank * tp + d->part.tp_rank;
    if (d->part.end_layer) {
        g->first_layer = d->part.first_layer;
        g->n_layers = d->part.end_layer - d->part.first_layer;
    }

    struct list pre = {g->pre, &g->n_pre, 0}, lay = {g->layer, &g->n_layer, 0},
                post = {g->post, &g->n_post, 0};
    /* embeddings: EMBED (project_in and positions inside), then BLOOM's norm;
     * a later pipeline stage receives the residual stream instead */
    if (first) {
        add(&pre, LLM_OP_EMBED, LLM_BUF_X, LLM_BUF_NONE, LLM_W_EMBED);
        if (d->embed_norm) norm(&pre, LLM_BUF_X, LLM_BUF_X, LLM_W_EMBED_NORM);
    } else {
        add(&pre, LLM_OP_RECV, LLM_BUF_X, LLM_BUF_X, 0)->peer = (int16_t)(me - tp);
    }

    layer_steps(&lay, g, d);

    if (!last) { /* the next stage continues; rank 0 gets the logits from the last */
        add(&post, LLM_OP_SEND, LLM_BUF_X, LLM_BUF_X, 0)->peer = (int16_t)(me + tp);
        if (me == 0) {
            struct llm_step *r = add(&post, LLM_OP_RECV, LLM_BUF_LOGITS, LLM_BUF_LOGITS, 0);
            r->rows = LLM_ROWS_OUT;
            r->peer = (int16_t)((pp - 1) * tp);
        }
        goto done;
    }

    /* logits of the out rows */
    struct llm_step *s = add(&post, LLM_OP_GATHER, LLM_BUF_FIN, LLM_BUF_X, 0);
    s->rows = LLM_ROWS_OUT;
    int cur = LLM_BUF_FIN;
    if (d->final_norm) {
        add(&post, LLM_OP_NORM, LLM_BUF_FIN2, cur, LLM_W_FINAL_NORM)->rows = LLM_ROWS_OUT;
        cur = LLM_BUF_FIN2;
    }
    if (d->embed_dim > 0 && d->embed_dim != d->hidden) {
        int nxt = cur == LLM_BUF_FIN ? LLM_BUF_FIN2 : LLM_BUF_FIN;
        add(&post, LLM_OP_LINEAR, nxt, cur, LLM_W_PROJ_OUT)->rows = LLM_ROWS_OUT;
        cur = nxt;
    }
    add(&post, LLM_OP_LINEAR, LLM_BUF_LOGITS, cur, LLM_W_LM_HEAD)->rows = LLM_ROWS_OUT;
    if (g->reduce)
        add(&post, LLM_OP_ALLGATHER, LLM_BUF_LOGITS, LLM_BUF_LOGITS, 0)->rows = LLM_ROWS_OUT;
    if (d->logit_scale > 0.0 && d->logit_scale != 1.0)
        add(&post, LLM_OP_SCALE, LLM_BUF_LOGITS, LLM_BUF_LOGITS, 0)->rows = LLM_ROWS_OUT;
    if (d->final_softcap > 0.0)
        add(&post, LLM_OP_SOFTCAP, LLM_BUF_LOGITS, LLM_BUF_LOGITS, 0)->rows = LLM_ROWS_OUT;
    if (pp > 1 && d->part.tp_rank == 0) {
        s = add(&post, LLM_OP_SEND, LLM_BUF_LOGITS, LLM_BUF_LOGITS, 0);
        s->rows = LLM_ROWS_OUT;
        s->peer = 0;
    }
done:
    if (pre.overflow || lay.overflow || post.overflow)
        return llm_err_set(LLM_ERANGE, "model definition: more than %d steps in a list",
                           LLM_GRAPH_MAX_STEPS);
    return 0;
}

int llm_graph_run(const struct llm_graph *g, const struct llm_exec *x)
{
    int rc;
    for (int i = 0; i < g->n_pre; i++)
        if ((rc = x->step(x->ctx, &g->pre[i], -1))) return rc;
    for (int l = g->first_layer; l < g->first_layer + g->n_layers; l++)
        for (int i = 0; i < g->n_layer; i++)
            if ((rc = x->step(x->ctx, &g->layer[i], l))) return rc;
    for (int i = 0; i < g->n_post; i++)
        if ((rc = x->step(x->ctx, &g->post[i], -1))) return rc;
    return 0;
}

/* ---- where a norm's output goes ------------------------------------------------ */

/* Whether step s reads buffer b (before writing it, for the in-place ops). */
static int step_reads(const struct llm_step *s, int b)
{
    if (s->op == LLM_OP_RECV || s->op == LLM_OP_EMBED) return 0;
    if (s->in == b || s->add == b) return 1;
    if (s->out != b) return 0;
    switch (s->op) {
    case LLM_OP_LINEAR:
    case LLM_OP_MOE: return s->accumulate;
    case LLM_OP_NORM:
    case LLM_OP_ATTN:
    case LLM_OP_GATHER: return 0;
    default: return 1; /* ADD, CLIP, QK_NORM, ROPE_KV, SOFTCAP, ALLREDUCE, ALLGATHER, SEND */
    }
}

/* Whether step s replaces what buffer b held. */
static int step_kills(const struct llm_step *s, int b)
{
    if (s->out != b) return 0;
    switch (s->op) {
    case LLM_OP_EMBED:
    case LLM_OP_NORM:
    case LLM_OP_ATTN:
    case LLM_OP_GATHER:
    case LLM_OP_RECV: return 1;
    case LLM_OP_LINEAR:
    case LLM_OP_MOE: return !s->accumulate;
    default: return 0;
    }
}

/* The readers of what step i of list `part` (a NORM) writes: the rest of
 * its list, then the lists that run after it (the next layer, the steps
 * after the layers), until something overwrites the buffer.  Only products
 * of the same list (so of the same layer) may read it. */
static int norm_use(const struct llm_graph *g, int part, int i, struct llm_norm_use *u)
{
    const struct llm_step *lists[3] = {g->pre, g->layer, g->post};
    const int ns[3] = {g->n_pre, g->n_layer, g->n_post};
    const struct llm_step *nm = &lists[part][i];
    const int b = nm->out;
    /* what runs after: the rest of this list, then each later list (the
     * layer list twice after the pre list: a buffer may outlive a layer) */
    int seq[4], nseq = 0;
    seq[nseq++] = part;
    if (part == 0 && g->n_layers > 0) seq[nseq++] = 1, seq[nseq++] = 1;
    if (part == 1) seq[nseq++] = 1;
    if (part < 2) seq[nseq++] = 2;
    memset(u, 0, sizeof *u);
    u->norm = nm->slot;
    if (nm->in == b) return 0; /* normalised in place: the stream itself */
    for (int k = 0; k < nseq; k++) {
        const struct llm_step *l = lists[seq[k]];
        for (int j = k == 0 ? i + 1 : 0; j < ns[seq[k]]; j++) {
            const struct llm_step *s = &l[j];
            if (step_reads(s, b)) {
                if (k > 0 || s->op != LLM_OP_LINEAR || s->in != b || s->add == b ||
                    (s->out == b && s->accumulate) || u->n + 1 + s->gated > LLM_NORM_USE_MAX)
                    return 0;
                u->linear[u->n++] = s->slot;
                if (s->gated) u->linear[u->n++] = LLM_W_MLP_GATE;
            }
            if (step_kills(s, b)) return u->n > 0;
        }
    }
    return u->n > 0;
}

int llm_graph_norm_uses(const struct llm_graph *g, struct llm_norm_use *u, int max)
{
    const struct llm_step *lists[3] = {g->pre, g->layer, g->post};
    const int ns[3] = {g->n_pre, g->n_layer, g->n_post};
    int n = 0;
    for (int p = 0; p < 3; p++)
        for (int i = 0; i < ns[p]; i++) {
            struct llm_norm_use one;
            if (lists[p][i].op != LLM_OP_NORM || !norm_use(g, p, i, &one)) continue;
            if (n < max) u[n] = one;
            n++;
        }
    return n;
}

static size_t describe_step(const struct llm_step *s, char *buf, size_t cap)
{
    const char *w = s->slot || s->op == LLM_OP_EMBED || s->op == LLM_OP_LINEAR ||
                            s->op == LLM_OP_NORM || s->op == LLM_OP_MOE
                        ? llm_wslot_stem(s->slot)
                        : NULL;
    int n;
    switch (s->op) {
    case LLM_OP_LINEAR:
        n = snprintf(buf, cap, "LINEAR %s %s %s . %s%s%s%s", llm_buf_name(s->out),
                     s->accumulate ? "+=" : "=", llm_buf_name(s->in), w,
                     s->gated ? " (gated)" : "", s->act >= 0 ? " act " : "",
                     s->act >= 0 ? llm_act_name(s->act) : "");
        break;
    case LLM_OP_NORM:
        n = snprintf(buf, cap, "NORM %s = %s(%s)", llm_buf_name(s->out), w, llm_buf_name(s->in));
        break;
    case LLM_OP_MOE:
        n = snprintf(buf, cap, "MOE %s %s experts(%s)", llm_buf_name(s->out),
                     s->accumulate ? "+=" : "=", llm_buf_name(s->in));
        break;
    case LLM_OP_ADD:
        n = snprintf(buf, cap, "ADD %s += %s", llm_buf_name(s->out), llm_buf_name(s->in));
        break;
    default:
        n = snprintf(buf, cap, "%s %s", llm_op_name(s->op), llm_buf_name(s->out));
        break;
    }
    if (n < 0) n = 0;
    if (s->rows == LLM_ROWS_OUT && (size_t)n < cap) n += snprintf(buf + n, cap - n, " [out rows]");
    return (size_t)n;
}

size_t llm_graph_describe(const struct llm_graph *g, char *buf, size_t cap)
{
    size_t len = 0;
    char line[200];
    const struct {
        const char *head;
        const struct llm_step *s;
        int n;
    } parts[3] = {{"before the layers:", g->pre, g->n_pre},
                  {"each layer:", g->layer, g->n_layer},
                  {"after the layers:", g->post, g->n_post}};
    for (int p = 0; p < 3; p++) {
        int k = snprintf(line, sizeof line, "%s\n", parts[p].head);
        for (int i = -1; i < parts[p].n; i++) {
            if (i >= 0) {
                size_t m = describe_step(&parts[p].s[i], line + 2, sizeof line - 3);
                if (m > sizeof line - 4) m = sizeof line - 4;
                line[0] = line[1] = ' ';
                line[m + 2] = '\n';
                line[m + 3] = 0;
                k = (int)m + 3;
            }
            if (len + (size_t)k < cap) memcpy(buf + len, line, (size_t)k + 1);
            len += (size_t)k;
        }
    }
    if (cap) buf[len < cap ? len : cap - 1] = 0;
    return len;
}
