/* test_cpu_forward.c - the CPU backend's whole forward on in-memory models.
 *
 * Against a naive double-precision transformer written here (no paging, no
 * batching: the textbook formulas), and against itself under changes that
 * must not change a bit: prefill at once vs in chunks vs token by token,
 * sequences batched together vs alone, shuffled block tables, copied
 * blocks, GQA vs the same weights expanded to MHA, tied vs untied with
 * copied weights.  Also: sliding windows (per layer), every rope scaling
 * type through the forward, f16/bf16 weights and KV, and the errors a bad
 * batch or model must give. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/backend.h"
#include "llm/err.h"
#include "llm/sample.h"
#include "cpu_model.h"
#include "cpu_ops.h"
#include "cpu_test.h"

/* ---- naive reference ------------------------------------------------------ */

/* A tensor widened to fp32 (malloc'd); layer -1 means a global name. */
static float *wf(struct mem_model *mm, int l, const char *suffix)
{
    char name[LLM_NAME_MAX];
    if (l >= 0)
        snprintf(name, sizeof name, "transformer.layers.%d.%s", l, suffix);
    else
        snprintf(name, sizeof name, "%s", suffix);
    struct mm_tensor *e = mm_find(mm, name);
    int64_t n = e->t.shape[0] * (e->t.ndim > 1 ? e->t.shape[1] : 1);
    float *f = malloc(sizeof(float) * (size_t)n);
    llm_cpu_to_f32(f, e->data, e->t.dtype, 0, n);
    return f;
}

static void ref_rms(double *out, const double *x, int64_t H, const float *w, double eps)
{
    double ss = 0.0;
    for (int64_t k = 0; k < H; k++)
        ss += x[k] * x[k];
    double r = 1.0 / sqrt(ss / H + eps);
    for (int64_t k = 0; k < H; k++)
        out[k] = x[k] * r * w[k];
}

/* Logits of every position of one sequence: rope "none"/linear only, RMSNorm,
 * SwiGLU, optional qkv bias, GQA, per-layer windows. */
static double *ref_forward(struct mem_model *mm, const int32_t *tok, int N)
{
    const struct llm_model_desc *d = &mm->m.desc;
    int64_t H = d->hidden, V = d->vocab_size, I = d->intermediate;
    int nh = d->n_heads, nkv = d->n_kv_heads, hd = d->head_dim, g = nh / nkv;
    int64_t QKV = (int64_t)(nh + 2 * nkv) * hd, A = (int64_t)nh * hd;
    double *h = calloc((size_t)(N * H), sizeof(double)),
           *xn = malloc(sizeof(double) * (size_t)(N * H));
    double *qkv = malloc(sizeof(double) * (size_t)(N * QKV)),
           *att = malloc(sizeof(double) * (size_t)(N * A));
    double *f1 = malloc(sizeof(double) * (size_t)I),
           *logits = malloc(sizeof(double) * (size_t)(N * V));
    float *emb = wf(mm, -1, "transformer.vocab_embedding.weight");
    for (int t = 0; t < N; t++)
        for (int64_t k = 0; k < H; k++)
            h[t * H + k] = emb[tok[t] * H + k];
    for (int l = 0; l < d->n_layers; l++) {
        float *n1 = wf(mm, l, "input_layernorm.weight"), *n2 = wf(mm, l, "post_layernorm.weight");
        float *wqkv = wf(mm, l, "attention.qkv.weight"), *wo = wf(mm, l, "attention.dense.weight");
        float *bqkv = d->qkv_bias ? wf(mm, l, "attention.qkv.bias") : NULL;
        float *wfc = wf(mm, l, "mlp.fc.weight"), *wg = wf(mm, l, "mlp.gate.weight");
        float *wp = wf(mm, l, "mlp.proj.weight");
        for (int t = 0; t < N; t++)
            ref_rms(xn + t * H, h + t * H, H, n1, d->norm_eps);
        for (int t = 0; t < N; t++)
            for (int64_t o = 0; o < QKV; o++) {
                double s = bqkv ? bqkv[o] : 0.0;
                for (int64_t k = 0; k < H; k++)
                    s += xn[t * H + k] * wqkv[o * H + k];
                qkv[t * QKV + o] = s;
            }
        /* rotate halves: angle p / (theta^(2i/d) * factor) */
        int rot = d->rope.rot_dims, half = rot / 2;
        double lin = d->rope.scaling == LLM_ROPE_SCALING_LINEAR ? d->rope.factor : 1.0;
        for (int t = 0; t < N; t++)
            for (int hh = 0; hh < nh + nkv; hh++) {
                double *v = qkv + t * QKV + (int64_t)hh * hd;
                for (int i = 0; i < half; i++) {
                    double ang = t * pow(d->rope.theta, -2.0 * i / rot) / lin;
                    double a = v[i], b = v[i + half];
                    v[i] = a * cos(ang) - b * sin(ang);
                    v[i + half] = b * cos(ang) + a * sin(ang);
                }
            }
        int win = d->sliding_window && d->layer_window[l] ? d->sliding_window : 0;
        for (int t = 0; t < N; t++)
            for (int hh = 0; hh < nh; hh++) {
                double sc[512], mx = -INFINITY, sum = 0.0;
                const double *q = qkv + t * QKV + (int64_t)hh * hd;
                for (int j = 0; j <= t; j++) {
                    const double *kk = qkv + j * QKV + (int64_t)(nh + hh / g) * hd;
                    double s = 0.0;
                    for (int i = 0; i < hd; i++)
                        s += q[i] * kk[i];
                    sc[j] = win && j <= t - win ? -INFINITY : s / sqrt((double)hd);
                    mx = fmax(mx, sc[j]);
                }
                for (int j = 0; j <= t; j++)
                    sum += exp(sc[j] - mx);
                for (int i = 0; i < hd; i++) {
                    double o = 0.0;
                    for (int j = 0; j <= t; j++)
                        o += exp(sc[j] - mx) / sum *
                             qkv[j * QKV + (int64_t)(nh + nkv + hh / g) * hd + i];
                    att[t * A + (int64_t)hh * hd + i] = o;
                }
            }
        for (int t = 0; t < N; t++)
            for (int64_t o = 0; o < H; o++) {
                double s = 0.0;
                for (int64_t k = 0; k < A; k++)
                    s += att[t * A + k] * wo[o * A + k];
                h[t * H + o] += s;
            }
        for (int t = 0; t < N; t++) {
            ref_rms(xn + t * H, h + t * H, H, n2, d->norm_eps);
            for (int64_t i = 0; i < I; i++) {
                double a = 0.0, b = 0.0;
                for (int64_t k = 0; k < H; k++) {
                    a += xn[t * H + k] * wfc[i * H + k];
                    b += xn[t * H + k] * wg[i * H + k];
                }
                f1[i] = a / (1.0 + exp(-a)) * b;
            }
            for (int64_t o = 0; o < H; o++) {
                double s = 0.0;
                for (int64_t i = 0; i < I; i++)
                    s += f1[i] * wp[o * I + i];
                h[t * H + o] += s;
            }
        }
        free(n1), free(n2), free(wqkv), free(wo), free(bqkv), free(wfc), free(wg), free(wp);
    }
    float *nf = wf(mm, -1, "transformer.ln_f.weight");
    float *head = d->tied_embeddings ? emb : wf(mm, -1, "lm_head.weight");
    for (int t = 0; t < N; t++) {
        ref_rms(xn + t * H, h + t * H, H, nf, d->norm_eps);
        for (int64_t v = 0; v < V; v++) {
            double s = 0.0;
            for (int64_t k = 0; k < H; k++)
                s += xn[t * H + k] * head[v * H + k];
            logits[t * V + v] = s;
        }
    }
    if (head != emb) free(head);
    free(emb), free(nf);
    free(h), free(xn), free(qkv), free(att), free(f1);
    return logits;
}

/* ---- driving the backend -------------------------------------------------- */

struct seq {
    const int32_t *tok;
    int n;          /* prompt + continuation tokens */
    int done;       /* tokens already in KV */
    int32_t bt[64]; /* block table */
};

/* One step: sequence i of ss advances by adv[i] tokens; logits of every new
 * row go to out (rows in batch order). */
static int step(struct llm_backend *be, struct seq **ss, const int *adv, int ns, float *out)
{
    int32_t tokens[512], pos[512], seq_start[65], seq_len[64], bts[64 * 64], rows[512];
    int n = 0;
    for (int i = 0; i < ns; i++) {
        seq_start[i] = n;
        for (int k = 0; k < adv[i]; k++, n++) {
            tokens[n] = ss[i]->tok[ss[i]->done + k];
            pos[n] = ss[i]->done + k;
        }
        seq_len[i] = ss[i]->done + adv[i];
        memcpy(bts + i * 64, ss[i]->bt, sizeof ss[i]->bt);
    }
    seq_start[ns] = n;
    for (int r = 0; r < n; r++)
        rows[r] = r;
    struct llm_batch b = {n, tokens, pos, ns, seq_start, seq_len, bts, 64, n, rows};
    int rc = be->ops->forward(be, &b);
    if (rc) return rc;
    if ((rc = be->ops->get_logits(be, out))) return rc;
    for (int i = 0; i < ns; i++)
        ss[i]->done += adv[i];
    return 0;
}

/* Run one sequence to the end in chunks of `chunk` tokens; logits [n][V]. */
static int run_seq(struct llm_backend *be, struct seq *s, int chunk, float *logits)
{
    int64_t V = be->vocab;
    while (s->done < s->n) {
        int adv = s->n - s->done < chunk ? s->n - s->done : chunk;
        int at = s->done;
        int rc = step(be, &s, &adv, 1, logits + at * V);
        if (rc) return rc;
    }
    return 0;
}

static void seq_init(struct seq *s, const int32_t *tok, int n, int first_block, int stride)
{
    memset(s, 0, sizeof *s);
    s->tok = tok;
    s->n = n;
    for (int i = 0; i < 64; i++)
        s->bt[i] = first_block + i * stride;
}

static struct llm_backend *make_be(struct mem_model *mm, int kv_dt, int block_size, int n_blocks)
{
    struct llm_backend_opts o;
    llm_backend_opts_init(&o);
    o.kv_dtype = kv_dt;
    o.block_size = block_size;
    o.n_threads = 2;
    struct llm_cpu_kv proto = {
        NULL, NULL, kv_dt, 0, block_size, mm->m.desc.n_kv_heads, mm->m.desc.head_dim};
    o.kv_bytes =
        llm_cpu_kv_block_bytes(&proto) * 2 * (uint64_t)mm->m.desc.n_layers * (uint64_t)n_blocks;
    struct llm_backend *be = NULL;
    int rc = llm_backend_create(&be, "cpu", &mm->m, &o);
    CHECK(rc == 0, "backend create: %s", llm_errmsg());
    if (!rc)
        CHECK(be->n_blocks == n_blocks, "pool has %d blocks, asked for %d", be->n_blocks, n_blocks);
    return be;
}

static int32_t *tokens_rand(int n, int64_t V)
{
    int32_t *t = malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++)
        t[i] = (int32_t)rng_int((int)V);
    return t;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_reference(int qkv_bias, int tied, int window, int mixed_window, int dt)
{
    struct llm_model_desc d;
    mm_desc_llama(&d, 40, 32, 2, 4, 2, 48, 256);
    d.qkv_bias = qkv_bias;
    d.tied_embeddings = tied;
    d.sliding_window = window;
    for (int l = 0; l < d.n_layers; l++)
        d.layer_window[l] = window && (!mixed_window || l == 1);
    struct mem_model *mm = mm_build(&d, dt, 7);
    struct llm_backend *be = make_be(mm, LLM_DTYPE_F32, 4, 32);
    int N = 19;
    int32_t *tok = tokens_rand(N, d.vocab_size);
    float *lg = malloc(sizeof(float) * (size_t)(N * d.vocab_size));
    struct seq s;
    seq_init(&s, tok, N, 3, 5);
    int rc = be ? run_seq(be, &s, N, lg) : -1;
    CHECK(rc == 0, "forward: %s", llm_errmsg());
    double *ref = ref_forward(mm, tok, N);
    double md = 0.0, mx = 0.0;
    for (int64_t i = 0; i < N * d.vocab_size; i++) {
        md = fmax(md, fabs(lg[i] - ref[i]));
        mx = fmax(mx, fabs(ref[i]));
    }
    CHECK(!rc && md / mx < 1e-5,
          "reference (bias %d tied %d window %d%s dt %s): max |diff| %.3g of "
          "max |logit| %.3g",
          qkv_bias, tied, window, mixed_window ? " mixed" : "", llm_dtype_name(dt), md, mx);
    printf("ok vs double reference: qkv_bias %d tied %d window %d%s weights %s: rel %.2e\n",
           qkv_bias, tied, window, mixed_window ? " (layer 1 only)" : "", llm_dtype_name(dt),
           md / mx);
    free(ref), free(lg), free(tok);
    llm_backend_destroy(be);
    mm_free(mm);
}

/* prefill at once == chunks == token by token, bitwise, for one rope type */
static void test_chunking(int scaling, int wdt, int kv_dt)
{
    struct llm_model_desc d;
    mm_desc_llama(&d, 50, 64, 2, 4, 1, 96, 64);
    float lf[8] = {1, 1.5f, 2, 3, 4, 6, 8, 12},
          sf[8] = {1, 1.1f, 1.2f, 1.3f, 1.4f, 1.5f, 1.6f, 1.7f};
    d.rope.scaling = scaling;
    d.rope.factor = 4.0;
    d.rope.orig_max_pos = 16;
    d.rope.low_freq_factor = 1.0;
    d.rope.high_freq_factor = 4.0;
    if (scaling == LLM_ROPE_SCALING_LONGROPE) {
        d.rope.n_factors = 8;
        d.rope.long_factor = lf;
        d.rope.short_factor = sf;
    }
    struct mem_model *mm = mm_build(&d, wdt, 11);
    struct llm_backend *be = make_be(mm, kv_dt, 8, 40);
    if (!be) {
        mm_free(mm);
        return;
    }
    /* dynamic and longrope depend on the sequence length of the step (as in
     * HF), so for them the check stays within the original length */
    int N = scaling == LLM_ROPE_SCALING_DYNAMIC    ? 60
            : scaling == LLM_ROPE_SCALING_LONGROPE ? 16
                                                   : 37;
    int32_t *tok = tokens_rand(N, d.vocab_size);
    size_t sz = sizeof(float) * (size_t)(N * d.vocab_size);
    float *a = malloc(sz), *b = malloc(sz), *c = malloc(sz);
    struct seq s;
    seq_init(&s, tok, N, 0, 1);
    int rc = run_seq(be, &s, N, a);
    seq_init(&s, tok, N, 8, 1);
    rc |= run_seq(be, &s, 5, b);
    seq_init(&s, tok, N, 16, 1);
    rc |= run_seq(be, &s, 1, c);
    CHECK(rc == 0, "forward: %s", llm_errmsg());
    CHECK(!memcmp(a, b, sz), "scaling %s: prefill vs chunks of 5 differ (rel %.3g)",
          llm_rope_scaling_name(scaling), rel_err(b, a, sz / 4));
    CHECK(!memcmp(a, c, sz), "scaling %s: prefill vs token by token differ (rel %.3g)",
          llm_rope_scaling_name(scaling), rel_err(c, a, sz / 4));
    printf("ok prefill == chunked == decode (bitwise): rope %s, weights %s, kv %s, %d tokens\n",
           llm_rope_scaling_name(scaling), llm_dtype_name(wdt), llm_dtype_name(kv_dt), N);
    free(a), free(b), free(c), free(tok);
    llm_backend_destroy(be);
    mm_free(mm);
}

/* past the original length dynamic NTK changes theta, and longrope switches factors */
static void test_long_rope(void)
{
    for (int sc = LLM_ROPE_SCALING_DYNAMIC; sc <= LLM_ROPE_SCALING_LONGROPE; sc += 3) {
        struct llm_model_desc d;
        mm_desc_llama(&d, 30, 32, 1, 2, 2, 32, 16);
        float lf[8] = {1, 2, 4, 8, 16, 32, 64, 128}, sf[8] = {1, 1, 1, 1, 1, 1, 1, 1};
        d.rope.factor = 2.0;
        d.rope.orig_max_pos = 16;
        d.rope.n_factors = 8;
        d.rope.long_factor = lf;
        d.rope.short_factor = sf;
        struct mem_model *mm = mm_build(&d, LLM_DTYPE_F32, 5);
        int N = 24;
        int32_t *tok = tokens_rand(N, d.vocab_size);
        size_t sz = sizeof(float) * (size_t)(N * d.vocab_size);
        float *a = malloc(sz), *b = malloc(sz);
        struct llm_backend_opts o;
        llm_backend_opts_init(&o);
        o.kv_bytes = 1 << 20;
        o.max_seq_len = 64;
        mm->m.desc.rope.scaling = LLM_ROPE_SCALING_NONE;
        mm->m.desc.rope.n_factors = 0; /* factor lists belong to longrope only */
        struct llm_backend *be0 = NULL, *be1 = NULL;
        int rc = llm_backend_cpu_create(&be0, &mm->m, &o);
        if (rc) printf("FAIL: cpu backend: %s\n", llm_errmsg());
        struct seq s;
        seq_init(&s, tok, N, 0, 1);
        rc |= run_seq(be0, &s, N, a);
        mm->m.desc.rope.scaling = sc;
        mm->m.desc.rope.n_factors = sc == LLM_ROPE_SCALING_LONGROPE ? 8 : 0;
        rc |= llm_backend_cpu_create(&be1, &mm->m, &o);
        seq_init(&s, tok, N, 0, 1);
        rc |= run_seq(be1, &s, N, b);
        CHECK(rc == 0, "forward: %s", llm_errmsg());
        /* longrope with short factors all 1 is plain rope only at or below the original length */
        if (sc == LLM_ROPE_SCALING_DYNAMIC) {
            CHECK(memcmp(a, b, sz), "dynamic rope past max_pos gave plain rope logits");
        } else {
            CHECK(memcmp(a, b, sz), "longrope past the original length gave plain rope logits");
        }
        /* below the original length, one step at a time: the same as plain rope */
        mm->m.desc.rope.scaling = sc;
        seq_init(&s, tok, 16, 0, 1);
        rc = run_seq(be1, &s, 1, b);
        float *a16 = malloc(sizeof(float) * 16 * (size_t)d.vocab_size);
        seq_init(&s, tok, 16, 0, 1);
        rc |= run_seq(be0, &s, 1, a16);
        if (sc == LLM_ROPE_SCALING_DYNAMIC)
            CHECK(!rc && !memcmp(a16, b, sizeof(float) * 16 * (size_t)d.vocab_size),
                  "dynamic rope within max_pos differs from plain rope");
        else /* the magnitude scale sqrt(1 + ln 2 / ln 16) still applies */
            CHECK(!rc && memcmp(a16, b, sizeof(float) * 16 * (size_t)d.vocab_size),
                  "longrope magnitude scaling had no effect");
        free(a16), free(a), free(b), free(tok);
        llm_backend_destroy(be0);
        llm_backend_destroy(be1);
        mm_free(mm);
    }
    printf("ok dynamic/longrope: plain within the original length (dynamic), changed past it\n");
}

/* sequences batched together (mixed prefill chunks and decodes) == alone */
static void test_batching(void)
{
    struct llm_model_desc d;
    mm_desc_llama(&d, 64, 48, 2, 6, 2, 80, 128);
    d.qkv_bias = 1;
    d.tied_embeddings = 1;
    struct mem_model *mm = mm_build(&d, LLM_DTYPE_BF16, 21);
    struct llm_backend *be = make_be(mm, LLM_DTYPE_F32, 4, 96);
    if (!be) {
        mm_free(mm);
        return;
    }
    enum { NS = 4 };
    int lens[NS] = {23, 9, 31, 14};
    int32_t *tok[NS];
    float *alone[NS], *mixed[NS];
    int64_t V = d.vocab_size;
    /* block ids: a shuffled pool shared out among the sequences */
    int perm[96];
    for (int i = 0; i < 96; i++)
        perm[i] = i;
    for (int i = 95; i > 0; i--) {
        int j = rng_int(i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (int i = 0; i < NS; i++) {
        tok[i] = tokens_rand(lens[i], V);
        alone[i] = malloc(sizeof(float) * (size_t)(lens[i] * V));
        mixed[i] = malloc(sizeof(float) * (size_t)(lens[i] * V));
        struct seq s;
        seq_init(&s, tok[i], lens[i], 0, 1); /* alone: blocks 0, 1, 2, ... */
        CHECK(run_seq(be, &s, lens[i], alone[i]) == 0, "forward: %s", llm_errmsg());
    }
    struct seq ss[NS];
    for (int i = 0; i < NS; i++) {
        seq_init(&ss[i], tok[i], lens[i], 0, 1);
        for (int k = 0; k < 8; k++)
            ss[i].bt[k] = perm[i * 8 + k];
    }
    /* steps: each live sequence advances by a varying amount (prefill chunks, then decode) */
    float *buf = malloc(sizeof(float) * 512 * (size_t)V);
    int rc = 0;
    for (int it = 0; !rc; it++) {
        struct seq *live[NS];
        int adv[NS], n = 0;
        for (int i = 0; i < NS; i++) {
            int left = ss[i].n - ss[i].done;
            if (!left || (it + i) % 3 == 2) continue; /* some sequences sit some steps out */
            int a = ss[i].done < 6 ? 1 + (it * 7 + i * 3) % 8 : 1;
            live[n] = &ss[i];
            adv[n++] = a < left ? a : left;
        }
        int all_done = 1;
        for (int i = 0; i < NS; i++)
            all_done &= ss[i].done == ss[i].n;
        if (all_done) break;
        if (!n) continue;
        int at[NS];
        for (int k = 0; k < n; k++)
            at[k] = live[k]->done;
        rc = step(be, live, adv, n, buf);
        CHECK(rc == 0, "forward: %s", llm_errmsg());
        for (int k = 0, r = 0; k < n && !rc; r += adv[k], k++) {
            int i = (int)(live[k] - ss);
            memcpy(mixed[i] + at[k] * V, buf + r * V, sizeof(float) * (size_t)(adv[k] * V));
        }
    }
    for (int i = 0; i < NS; i++)
        CHECK(!memcmp(alone[i], mixed[i], sizeof(float) * (size_t)(lens[i] * V)),
              "sequence %d: batched with others (shuffled blocks) differs from alone (rel %.3g)", i,
              rel_err(mixed[i], alone[i], (size_t)(lens[i] * V)));
    printf("ok batching: %d sequences in mixed prefill/decode steps over shuffled blocks == alone "
           "(bitwise)\n",
           NS);
    /* copy_blocks: continue a copy of sequence 0's prefix and compare */
    {
        struct seq a, b;
        float *la = malloc(sizeof(float) * (size_t)(lens[0] * V)),
              *lb = malloc(sizeof(float) * (size_t)(lens[0] * V));
        seq_init(&a, tok[0], lens[0], 0, 1);
        a.n = 16;
        rc = run_seq(be, &a, 16, la);
        a.n = lens[0];
        seq_init(&b, tok[0], lens[0], 40, 1);
        int32_t src[4] = {0, 1, 2, 3}, dst[4] = {40, 41, 42, 43};
        rc |= be->ops->copy_blocks(be, src, dst, 4);
        b.done = 16;
        rc |= run_seq(be, &a, 1, la);
        rc |= run_seq(be, &b, 1, lb);
        CHECK(rc == 0, "copy_blocks run: %s", llm_errmsg());
        CHECK(!memcmp(la + 16 * V, lb + 16 * V, sizeof(float) * (size_t)((lens[0] - 16) * V)),
              "decoding from copied blocks differs");
        int32_t bad[1] = {96};
        CHECK(be->ops->copy_blocks(be, bad, dst, 1) == LLM_EINVAL, "copy_blocks accepted block 96");
        free(la), free(lb);
        printf("ok copy_blocks: decoding from a copied prefix == from the original\n");
    }
    free(buf);
    for (int i = 0; i < NS; i++)
        free(tok[i]), free(alone[i]), free(mixed[i]);
    llm_backend_destroy(be);
    mm_free(mm);
}

/* GQA weights expanded to MHA, and tied vs untied with copied weights: bitwise */
static void test_equivalent_models(void)
{
    struct llm_model_desc d;
    mm_desc_llama(&d, 40, 32, 2, 4, 2, 40, 64);
    d.qkv_bias = 1;
    d.tied_embeddings = 1;
    struct mem_model *g = mm_build(&d, LLM_DTYPE_F16, 3);
    struct llm_model_desc d2 = d;
    d2.n_kv_heads = d.n_heads;
    d2.tied_embeddings = 0;
    struct mem_model *m = mm_build(&d2, LLM_DTYPE_F16, 99);
    int64_t H = d.hidden, hd = d.head_dim;
    int nh = d.n_heads, grp = d.n_heads / d.n_kv_heads;
    for (int i = 0; i < g->n; i++) {
        struct mm_tensor *src = &g->ts[i], *dst = mm_find(m, src->name);
        if (!dst) continue;
        if (strstr(src->name, "attention.qkv")) {
            /* q as is; kv head h/grp copied to each of the grp heads */
            int64_t cols = src->t.ndim == 2 ? H : 1;
            const uint16_t *s = src->data;
            uint16_t *o = dst->data;
            for (int part = 0; part < 3; part++)
                for (int h = 0; h < nh; h++) {
                    int sh = part == 0 ? h : nh + (part - 1) * d.n_kv_heads + h / grp;
                    if (part == 0) sh = h;
                    int dh = part * nh + h;
                    memcpy(o + dh * hd * cols, s + sh * hd * cols,
                           sizeof(uint16_t) * (size_t)(hd * cols));
                }
        } else {
            memcpy(dst->data, src->data, src->t.nbytes);
        }
    }
    memcpy(mm_find(m, "lm_head.weight")->data,
           mm_find(g, "transformer.vocab_embedding.weight")->data,
           mm_find(m, "lm_head.weight")->t.nbytes);
    struct llm_backend *bg = make_be(g, LLM_DTYPE_F32, 4, 16),
                       *bm = make_be(m, LLM_DTYPE_F32, 4, 16);
    int N = 21;
    int32_t *tok = tokens_rand(N, d.vocab_size);
    size_t sz = sizeof(float) * (size_t)(N * d.vocab_size);
    float *a = malloc(sz), *b = malloc(sz);
    struct seq s;
    seq_init(&s, tok, N, 0, 1);
    int rc = run_seq(bg, &s, 4, a);
    seq_init(&s, tok, N, 0, 1);
    rc |= run_seq(bm, &s, 4, b);
    CHECK(rc == 0, "forward: %s", llm_errmsg());
    CHECK(!memcmp(a, b, sz), "GQA (tied) vs expanded MHA (untied copy) differ (rel %.3g)",
          rel_err(a, b, sz / 4));
    printf("ok GQA == expanded MHA, tied == untied copy (bitwise)\n");
    free(a), free(b), free(tok);
    llm_backend_destroy(bg);
    llm_backend_destroy(bm);
    mm_free(g);
    mm_free(m);
}

/* one layer with a window: logits at p >= window ignore tokens before p - window + 1 */
static void test_window(void)
{
    struct llm_model_desc d;
    mm_desc_llama(&d, 40, 32, 1, 4, 4, 40, 64);
    d.arch = LLM_ARCH_MISTRAL;
    d.sliding_window = 4;
    d.layer_window[0] = 1;
    struct mem_model *mm = mm_build(&d, LLM_DTYPE_F32, 8);
    struct llm_backend *be = make_be(mm, LLM_DTYPE_F32, 4, 16);
    int N = 12;
    int32_t t1[12], t2[12];
    for (int i = 0; i < N; i++)
        t1[i] = t2[i] = (int32_t)rng_int(40);
    t2[0] = (t1[0] + 1) % 40, t2[1] = (t1[1] + 7) % 40;
    size_t sz = sizeof(float) * (size_t)(N * d.vocab_size);
    float *a = malloc(sz), *b = malloc(sz);
    struct seq s;
    seq_init(&s, t1, N, 0, 1);
    int rc = run_seq(be, &s, 5, a);
    seq_init(&s, t2, N, 4, 1);
    rc |= run_seq(be, &s, 5, b);
    CHECK(rc == 0, "forward: %s", llm_errmsg());
    for (int p = 0; p < N; p++) {
        int same = !memcmp(a + p * d.vocab_size, b + p * d.vocab_size,
                           sizeof(float) * (size_t)d.vocab_size);
        /* position p sees p-3..p: tokens 0 and 1 are out of sight from p = 5 on */
        CHECK(same == (p >= 5), "window 4: position %d logits %s", p,
              same ? "unchanged" : "changed");
    }
    printf("ok sliding window: position p ignores tokens at or before p - window\n");
    free(a), free(b);
    llm_backend_destroy(be);
    mm_free(mm);
}

static void test_kv_dtypes(void)
{
    struct llm_model_desc d;
    mm_desc_llama(&d, 40, 32, 2, 4, 2, 40, 64);
    struct mem_model *mm = mm_build(&d, LLM_DTYPE_BF16, 4);
    int N = 15;
    int32_t *tok = tokens_rand(N, d.vocab_size);
    size_t sz = sizeof(float) * (size_t)(N * d.vocab_size);
    float *ref = malloc(sz), *x = malloc(sz);
    int kvs[3] = {LLM_DTYPE_F32, LLM_DTYPE_F16, LLM_DTYPE_BF16};
    for (int i = 0; i < 3; i++) {
        struct llm_backend *be = make_be(mm, kvs[i], 4, 8);
        struct seq s;
        seq_init(&s, tok, N, 0, 1);
        CHECK(be && run_seq(be, &s, 6, i ? x : ref) == 0, "forward kv %s", llm_dtype_name(kvs[i]));
        if (i) {
            double e = rel_err(x, ref, sz / 4);
            CHECK(e < (kvs[i] == LLM_DTYPE_F16 ? 5e-3 : 3e-2), "kv %s: rel err %.3g vs f32 kv",
                  llm_dtype_name(kvs[i]), e);
            printf("ok kv %s: logits within %.2e of f32 kv\n", llm_dtype_name(kvs[i]), e);
        }
        llm_backend_destroy(be);
    }
    free(ref), free(x), free(tok);
    mm_free(mm);
}

static void test_errors(void)
{
    struct llm_model_desc d;
    mm_desc_llama(&d, 40, 32, 1, 4, 2, 40, 64);
    struct mem_model *mm = mm_build(&d, LLM_DTYPE_F32, 2);
    struct llm_backend *be = make_be(mm, LLM_DTYPE_F32, 4, 8);
    if (!be) return;
    int32_t tok[3] = {1, 2, 3}, pos[3] = {0, 1, 2}, ss[2] = {0, 3}, sl[1] = {3}, bt[2] = {0, 1},
            rows[1] = {2};
    struct llm_batch ok = {3, tok, pos, 1, ss, sl, bt, 2, 1, rows};
    CHECK(be->ops->forward(be, &ok) == 0, "good batch refused: %s", llm_errmsg());
    float lg[40];
    CHECK(be->ops->get_logits(be, lg) == 0, "get_logits");
    struct llm_batch b = ok;
    int32_t badpos[3] = {0, 2, 2};
    b.pos = badpos;
    CHECK(be->ops->forward(be, &b) == LLM_EINVAL, "positions not continuing the sequence accepted");
    CHECK(be->ops->get_logits(be, lg) == LLM_EINVAL, "logits served after a failed step");
    b = ok;
    int32_t badbt[2] = {8, 0};
    b.block_table = badbt;
    CHECK(be->ops->forward(be, &b) == LLM_EINVAL, "block id 8 of 8 accepted");
    b = ok;
    int32_t badtok[3] = {1, 40, 3};
    b.tokens = badtok;
    CHECK(be->ops->forward(be, &b) == LLM_ERANGE, "token 40 of vocab 40 accepted");
    b = ok;
    int32_t badrows[2] = {2, 1};
    b.n_out = 2, b.out_rows = badrows;
    CHECK(be->ops->forward(be, &b) == LLM_EINVAL, "decreasing out_rows accepted");
    b = ok;
    int32_t longlen[1] = {65};
    b.seq_len = longlen;
    CHECK(be->ops->forward(be, &b) != 0, "sequence past max_seq_len accepted");
    b = ok;
    b.bt_stride = 0;
    CHECK(be->ops->forward(be, &b) == LLM_EINVAL, "bt_stride 0 accepted");
    llm_backend_destroy(be);

    /* models the backend must refuse */
    struct llm_backend *x = NULL;
    struct llm_backend_opts o;
    llm_backend_opts_init(&o);
    o.kv_bytes = 1 << 20;
    struct mm_tensor *t = mm_find(mm, "transformer.layers.0.mlp.proj.weight");
    char saved = t->name[0];
    t->name[0] = 'X';
    CHECK(llm_backend_cpu_create(&x, &mm->m, &o) == LLM_ENOTFOUND && !x, "missing tensor accepted");
    CHECK(strstr(llm_errmsg(), "mlp.proj") != NULL, "error does not name the tensor: %s",
          llm_errmsg());
    t->name[0] = saved;
    t->t.dtype = LLM_DTYPE_I8;
    CHECK(llm_backend_cpu_create(&x, &mm->m, &o) == LLM_EFORMAT &&
              strstr(llm_errmsg(), "'transformer.layers.0.mlp.proj.weight' is i8 but the "
                                   "quantization section says the weights are not quantized"),
          "i8 weight accepted: %s", llm_errmsg());
    t->t.dtype = LLM_DTYPE_F32;
    t->t.nbytes -= 4;
    CHECK(llm_backend_cpu_create(&x, &mm->m, &o) == LLM_ESHAPE, "short tensor data accepted");
    t->t.nbytes += 4;
    /* a feature a backend lacks is refused by name, whatever the architecture (the
     * CPU backend runs every structure;
     * a table like CUDA's without the logit soft cap must say so) */
    mm->m.desc.final_softcap = 30.0;
    struct llm_backend_caps lacking = llm_cuda_caps;
    lacking.features &= ~LLM_FEAT_BIT(LLM_FEAT_FINAL_SOFTCAP);
    CHECK(llm_model_supported(&mm->m, &lacking) == LLM_EUNSUPPORTED &&
              strstr(llm_errmsg(), "the cuda backend cannot run this llama model: it needs a soft "
                                   "cap on the logits (the cpu backend runs it: --device cpu)"),
          "a soft cap accepted by a table without it: %s", llm_errmsg());
    CHECK(llm_backend_cpu_create(&x, &mm->m, &o) == 0 && x, "the cpu backend refused a soft cap: %s",
          llm_errmsg());
    llm_backend_destroy(x);
    x = NULL;
    mm->m.desc.final_softcap = 0.0;
    /* a rank holding some of the experts (llm-shard --ep) is the CPU's alone:
     * the CUDA backend refuses it by name before it binds a weight */
    mm->m.desc.part.ep = 2;
    CHECK(llm_model_supported(&mm->m, &llm_cuda_caps) == LLM_EUNSUPPORTED &&
              strstr(llm_errmsg(), "it needs experts split across ranks by expert (llm-shard "
                                   "--ep) (the cpu backend runs it: --device cpu)"),
          "an expert-parallel rank accepted by the cuda table: %s", llm_errmsg());
    CHECK(llm_model_supported(&mm->m, &llm_cpu_caps) == 0, "the cpu table refused --ep: %s",
          llm_errmsg());
    mm->m.desc.part.ep = 0;
    /* weights on permuted inputs (GPTQ act-order, <stem>.perm): the section's
     * act_order is a feature both tables list (the CUDA backend gathers the
     * inputs in stored order before the product), and one a table without it
     * refuses by name */
    mm->m.quant.act_order = 1;
    CHECK(llm_model_supported(&mm->m, &llm_cuda_caps) == 0, "the cuda table refused act_order: %s",
          llm_errmsg());
    CHECK(llm_model_supported(&mm->m, &llm_cpu_caps) == 0, "the cpu table refused act_order: %s",
          llm_errmsg());
    lacking.features = llm_cuda_caps.features & ~LLM_FEAT_BIT(LLM_FEAT_W_PERM);
    CHECK(llm_model_supported(&mm->m, &lacking) == LLM_EUNSUPPORTED &&
              strstr(llm_errmsg(), "it needs weights on permuted inputs (GPTQ act-order) (the "
                                   "cpu backend runs it: --device cpu)"),
          "act-order weights accepted by a table without them: %s", llm_errmsg());
    mm->m.quant.act_order = 0;
    o.kv_bytes = 10;
    CHECK(llm_backend_cpu_create(&x, &mm->m, &o) == LLM_ECAPACITY, "10-byte kv pool accepted");
    o.kv_bytes = 1 << 20;
    o.kv_dtype = LLM_DTYPE_F8E4M3;
    CHECK(llm_backend_cpu_create(&x, &mm->m, &o) == LLM_EUNSUPPORTED, "fp8 kv accepted");
    o.kv_dtype = LLM_DTYPE_F32;

    /* selection by name */
    CHECK(llm_backend_create(&x, "bogus", &mm->m, &o) == LLM_EINVAL, "backend 'bogus' accepted");
    CHECK(llm_backend_create(&x, "auto", &mm->m, &o) == 0 && x, "auto: %s", llm_errmsg());
    if (x)
        CHECK(!strcmp(x->ops->name, "cpu") || !strcmp(x->ops->name, "cuda"), "auto gave '%s'",
              x->ops->name);
    llm_backend_destroy(x);
    /* defaults: a pool is sized from RAM and holds blocks */
    o.kv_bytes = 0;
    CHECK(llm_backend_cpu_create(&x, &mm->m, &o) == 0 && x->n_blocks > 0 && x->block_size == 32,
          "default pool: %s", llm_errmsg());
    llm_backend_destroy(x);
    mm_free(mm);
    printf("ok errors: bad batches and models refused with the right codes\n");
}

/* sample() is llm_sample_cpu per row: greedy is the argmax */
static void test_sample(void)
{
    struct llm_model_desc d;
    mm_desc_llama(&d, 40, 32, 1, 4, 2, 40, 64);
    struct mem_model *mm = mm_build(&d, LLM_DTYPE_F32, 12);
    struct llm_backend *be = make_be(mm, LLM_DTYPE_F32, 4, 8);
    int32_t tok[5] = {1, 2, 3, 4, 5}, pos[5] = {0, 1, 2, 0, 1}, ss[3] = {0, 3, 5}, sl[2] = {3, 2},
            bt[4] = {0, 1, 2, 3}, rows[2] = {2, 4};
    struct llm_batch b = {5, tok, pos, 2, ss, sl, bt, 2, 2, rows};
    CHECK(be->ops->forward(be, &b) == 0, "forward: %s", llm_errmsg());
    float lg[80];
    be->ops->get_logits(be, lg);
    struct llm_sampling p;
    llm_sampling_init(&p);
    struct llm_sample_row r[2] = {{.p = &p}, {.p = &p}};
    struct llm_sample_result res[2];
    CHECK(be->ops->sample(be, r, 2, res) == 0, "sample: %s", llm_errmsg());
    for (int i = 0; i < 2; i++) {
        int best = 0;
        for (int v = 1; v < 40; v++)
            if (lg[i * 40 + v] > lg[i * 40 + best]) best = v;
        CHECK(res[i].token == best, "greedy row %d: %d, argmax %d", i, res[i].token, best);
    }
    CHECK(be->ops->sample(be, r, 1, res) == LLM_EINVAL, "sample with the wrong row count accepted");
    printf("ok sample: greedy rows are the argmax of their logits\n");
    llm_backend_destroy(be);
    mm_free(mm);
}

int main(void)
{
    rng_seed(2);
    test_reference(0, 0, 0, 0, LLM_DTYPE_F32);
    test_reference(1, 1, 0, 0, LLM_DTYPE_BF16);
    test_reference(0, 0, 5, 0, LLM_DTYPE_F32);
    test_reference(1, 0, 3, 1, LLM_DTYPE_F16);
    for (int sc = 0; sc < LLM_ROPE_SCALING_COUNT; sc++)
        test_chunking(sc, LLM_DTYPE_BF16, LLM_DTYPE_F32);
    test_chunking(LLM_ROPE_SCALING_NONE, LLM_DTYPE_F16, LLM_DTYPE_F16);
    test_chunking(LLM_ROPE_SCALING_LLAMA3, LLM_DTYPE_F32, LLM_DTYPE_BF16);
    test_long_rope();
    test_batching();
    test_equivalent_models();
    test_window();
    test_kv_dtypes();
    test_errors();
    test_sample();
    return finish("test-cpu-forward");
}
