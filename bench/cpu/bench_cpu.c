/* bench_cpu.c - prefill and decode speed of the CPU backend on a model made in memory.
 *
 * Usage: bench-cpu [1b|8b|tiny] [prompt_tokens] [decode_tokens] [threads] [decode_batch]
 * (defaults: 1b 128 16 all-cores 8).  "1b" has the shapes of Llama 3.2 1B
 * (hidden 2048, 16 layers, 32/8 heads, ffn 8192, vocab 128256, tied), "8b"
 * of Llama 3 8B; weights are bf16 random values (a random 1 MiB pattern
 * tiled at random offsets, so building the model costs memcpy time only).
 *
 * Reports tokens/s, and the weight traffic each step implies (every weight
 * matrix read once per step; the embedding gather is not counted) as GB/s,
 * which for decode is the figure to hold against the machine's memory
 * bandwidth.  A benchmark, not a test: registered with meson benchmark().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llm/backend.h"
#include "llm/err.h"
#include "llm/model.h"

struct tens {
    char name[LLM_NAME_MAX];
    struct llm_tensor t;
};

struct bmodel {
    struct llm_model m;
    struct tens *ts;
    int n;
    uint16_t *pool;
    size_t pool_n;
    uint64_t rng;
    uint64_t linear_bytes;
};

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int get(void *ctx, const char *name, struct llm_tensor *t)
{
    struct bmodel *b = ctx;
    for (int i = 0; i < b->n; i++)
        if (!strcmp(b->ts[i].name, name)) {
            *t = b->ts[i].t;
            return 0;
        }
    return LLM_ENOTFOUND;
}

/* bf16 tensor [d0] or [d0][d1]; norm weights (1-D) are 1.0 */
static int add(struct bmodel *b, const char *name, int64_t d0, int64_t d1, int is_linear)
{
    struct tens *e = &b->ts[b->n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    size_t n = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    uint16_t *p = malloc(n * 2);
    if (!p) return -1;
    if (!d1) {
        for (size_t i = 0; i < n; i++)
            p[i] = 0x3f80;
    } else {
        for (size_t off = 0; off < n;) {
            size_t start = rnd(&b->rng) % (b->pool_n / 2), m = b->pool_n - start;
            if (m > n - off) m = n - off;
            memcpy(p + off, b->pool + start, m * 2);
            off += m;
        }
    }
    e->t.name = e->name;
    e->t.dtype = LLM_DTYPE_BF16;
    e->t.ndim = d1 ? 2 : 1;
    e->t.shape[0] = d0;
    e->t.shape[1] = d1;
    e->t.nbytes = n * 2;
    e->t.data = p;
    if (is_linear) b->linear_bytes += n * 2;
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    const char *cfg = argc > 1 ? argv[1] : "1b";
    int P = argc > 2 ? atoi(argv[2]) : 128, D = argc > 3 ? atoi(argv[3]) : 16;
    int threads = argc > 4 ? atoi(argv[4]) : 0, B = argc > 5 ? atoi(argv[5]) : 8;
    if (P < 1 || D < 1 || B < 1 || threads < 0) {
        fprintf(stderr, "usage: bench-cpu [1b|8b|tiny] [prompt_tokens] [decode_tokens] [threads] "
                        "[decode_batch]\n");
        return 2;
    }
    struct llm_model_desc d;
    llm_desc_init(&d);
    d.vocab_size = 128256, d.hidden = 2048, d.n_layers = 16, d.n_heads = 32, d.n_kv_heads = 8;
    d.intermediate = 8192, d.tied_embeddings = 1;
    if (!strcmp(cfg, "8b")) {
        d.hidden = 4096, d.n_layers = 32, d.intermediate = 14336, d.tied_embeddings = 0;
    } else if (!strcmp(cfg, "tiny")) {
        d.vocab_size = 32000, d.hidden = 512, d.n_layers = 4, d.n_heads = 8, d.n_kv_heads = 2;
        d.intermediate = 1536;
    } else if (strcmp(cfg, "1b")) {
        fprintf(stderr, "bench-cpu: unknown config '%s' (1b, 8b, tiny)\n", cfg);
        return 2;
    }
    d.head_dim = (int)(d.hidden / d.n_heads);
    d.max_pos = 8192;
    d.rope.theta = 500000.0;
    d.rope.rot_dims = d.head_dim;
    d.dtype = LLM_DTYPE_BF16;

    struct bmodel *b = calloc(1, sizeof *b);
    b->ts = calloc((size_t)(d.n_layers * 7 + 3), sizeof *b->ts);
    b->pool_n = 1 << 19;
    b->pool = malloc(b->pool_n * 2);
    b->rng = 42;
    for (size_t i = 0; i < b->pool_n; i++) {
        /* |w| in [2^-8, 2^-5): sign, exponent 119..121, random mantissa */
        uint64_t r = rnd(&b->rng);
        b->pool[i] = (uint16_t)(((r & 1) << 15) | ((119 + (r >> 1) % 3) << 7) | ((r >> 8) & 0x7f));
    }
    int64_t H = d.hidden, I = d.intermediate, hd = d.head_dim;
    int64_t qkv = (int64_t)(d.n_heads + 2 * d.n_kv_heads) * hd;
    int bad = add(b, "transformer.vocab_embedding.weight", d.vocab_size, H, d.tied_embeddings);
    char nm[LLM_NAME_MAX];
    for (int l = 0; l < d.n_layers && !bad; l++) {
        static const struct {
            const char *suffix;
            int rows, cols, lin; /* 0 hidden, 1 intermediate, 2 qkv, -1 none */
        } sh[7] = {{"input_layernorm.weight", 0, -1, 0}, {"post_layernorm.weight", 0, -1, 0},
                   {"attention.qkv.weight", 2, 0, 1},    {"attention.dense.weight", 0, 0, 1},
                   {"mlp.fc.weight", 1, 0, 1},           {"mlp.gate.weight", 1, 0, 1},
                   {"mlp.proj.weight", 0, 1, 1}};
        for (int k = 0; k < 7 && !bad; k++) {
            int64_t dim[3] = {H, I, qkv};
            snprintf(nm, sizeof nm, "transformer.layers.%d.%s", l, sh[k].suffix);
            bad |= add(b, nm, dim[sh[k].rows], sh[k].cols < 0 ? 0 : dim[sh[k].cols], sh[k].lin);
        }
    }
    bad |= add(b, "transformer.ln_f.weight", H, 0, 0);
    if (!d.tied_embeddings) bad |= add(b, "lm_head.weight", d.vocab_size, H, 1);
    if (bad) {
        fprintf(stderr, "bench-cpu: out of memory building the model\n");
        return 1;
    }
    b->m.desc = d;
    b->m.get_tensor = get;
    b->m.get_tensor_ctx = b;
    uint64_t params = llm_desc_n_params(&d);

    struct llm_backend_opts o;
    llm_backend_opts_init(&o);
    o.n_threads = threads;
    o.max_seqs = B + 1;
    o.max_seq_len = P + D + 1;
    o.max_batch_tokens = P > B ? P : B;
    struct llm_backend *be;
    int rc = llm_backend_create(&be, "cpu", &b->m, &o);
    if (rc) {
        fprintf(stderr, "bench-cpu: %s\n", llm_errmsg());
        return 1;
    }
    int bs = be->block_size, nbps = (P + D + bs) / bs;
    if (be->n_blocks < nbps * B) {
        fprintf(stderr, "bench-cpu: kv pool of %d blocks too small\n", be->n_blocks);
        return 1;
    }
    printf(
        "model: %s shapes, %.2fB params, bf16 weights %.2f GB (matrices read per step %.2f GB)\n",
        cfg, (double)params / 1e9, (double)params * 2 / 1e9, (double)b->linear_bytes / 1e9);
    printf("backend: %s, kv pool %d blocks x %d tokens (%.2f GB)\n", be->device_name, be->n_blocks,
           bs, (double)be->kv_bytes / 1e9);

    int n_max = P > B ? P : B;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)n_max),
            *pos = malloc(sizeof(int32_t) * (size_t)n_max);
    int32_t *bt = malloc(sizeof(int32_t) * (size_t)(nbps * B)), ss[2], sl[1], row[1];
    int32_t *sst = malloc(sizeof(int32_t) * (size_t)(B + 1)),
            *sln = malloc(sizeof(int32_t) * (size_t)B);
    int32_t *rows = malloc(sizeof(int32_t) * (size_t)B);
    for (int i = 0; i < nbps * B; i++)
        bt[i] = i;
    for (int i = 0; i < n_max; i++)
        tok[i] = (int32_t)(rnd(&b->rng) % (uint64_t)d.vocab_size);

    /* prefill: one step of P tokens, logits of the last */
    for (int i = 0; i < P; i++)
        pos[i] = i;
    ss[0] = 0, ss[1] = P, sl[0] = P, row[0] = P - 1;
    struct llm_batch pb = {P, tok, pos, 1, ss, sl, bt, nbps, 1, row};
    double t0 = now();
    rc = be->ops->forward(be, &pb);
    double tp = now() - t0;
    if (rc) {
        fprintf(stderr, "bench-cpu: prefill: %s\n", llm_errmsg());
        return 1;
    }
    printf("prefill %d tokens: %.3f s, %.1f tok/s, %.1f GFLOP/s, weights %.2f GB/s\n", P, tp,
           P / tp, 2.0 * (double)params * P / tp / 1e9, (double)b->linear_bytes / tp / 1e9);

    /* decode, batch 1, continuing the prompt */
    t0 = now();
    for (int s = 0; s < D && !rc; s++) {
        int32_t p1 = P + s, r0 = 0, st[2] = {0, 1}, len = P + s + 1;
        struct llm_batch db = {1, tok, &p1, 1, st, &len, bt, nbps, 1, &r0};
        rc = be->ops->forward(be, &db);
    }
    double td = now() - t0;
    if (rc) {
        fprintf(stderr, "bench-cpu: decode: %s\n", llm_errmsg());
        return 1;
    }
    printf("decode batch 1: %d tokens, %.1f ms/token, %.2f tok/s, weights %.2f GB/s\n", D,
           1e3 * td / D, D / td, (double)b->linear_bytes * D / td / 1e9);

    /* decode, batch B: B sequences sharing nothing, each at a context of P tokens */
    if (B > 1) {
        /* fill their KV with a prefill of P tokens each (not timed) */
        for (int q = 1; q < B && !rc; q++) {
            struct llm_batch fb = pb;
            fb.block_table = bt + (int64_t)q * nbps;
            rc = be->ops->forward(be, &fb);
        }
        t0 = now();
        for (int s = 0; s < D && !rc; s++) {
            for (int q = 0; q < B; q++) {
                pos[q] = P + s, sst[q] = q, sln[q] = P + s + 1, rows[q] = q;
            }
            sst[B] = B;
            struct llm_batch db = {B, tok, pos, B, sst, sln, bt, nbps, B, rows};
            rc = be->ops->forward(be, &db);
        }
        double tb = now() - t0;
        if (rc) {
            fprintf(stderr, "bench-cpu: batched decode: %s\n", llm_errmsg());
            return 1;
        }
        printf("decode batch %d: %d steps, %.1f ms/step, %.2f tok/s, weights %.2f GB/s\n", B, D,
               1e3 * tb / D, (double)B * D / tb, (double)b->linear_bytes * D / tb / 1e9);
    }
    llm_backend_destroy(be);
    for (int i = 0; i < b->n; i++)
        free((void *)b->ts[i].t.data);
    free(b->ts), free(b->pool), free(b);
    free(tok), free(pos), free(bt), free(sst), free(sln), free(rows);
    return 0;
}
