/* cpu_backend.c - the CPU backend: llm_backend_ops over the reference ops.
 *
 * Design: weights are never copied; each is looked up once at creation
 * (llm_model_tensor, canonical names) and read in its stored dtype by the
 * ops (an engine's stacked mlp.fc_gate as its fc and gate halves).  The KV pool is one allocation, layer-major: for layer l, K then V,
 * each [n_blocks][n_kv_heads][block_size][head_dim], so a block id indexes
 * every layer the same way and copy_blocks copies 2 x n_layers slices.
 * The forward runs the whole ragged batch through each op at once (all
 * tokens of all sequences in one matrix product, so a weight row is read
 * once per step); only attention and rotary embedding look at sequence
 * boundaries.  The layer loop is written once for every architecture, with
 * the description's switches (norm kind and biases, parallel residual with
 * shared or separate norms, gated or plain MLP, rotary / learned / ALiBi /
 * no positions, per-layer sliding window, soft-cap) choosing the steps; the
 * set of architectures accepted is listed in cpu_arch_ok() and grows as
 * each is checked against Hugging Face.
 *
 * Residual stream: resid holds the running hidden state; the output of
 * each sub-block is added into it by the next norm (fused add + norm), so
 * the additions happen in HF's order, in fp32.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "llm/backend.h"
#include "llm/engine_artifact.h"
#include "llm/err.h"
#include "llm/sample.h"
#include "cpu_ops.h"

#define DEFAULT_BLOCK_SIZE 32
#define DEFAULT_MAX_BATCH_TOKENS 2048
#define DEFAULT_MAX_SEQS 256
#define DEFAULT_KV_FRACTION 0.25
#define DEFAULT_KV_CAP (8ull << 30)

struct cw {
    const void *p; /* NULL when the model has no such tensor */
    int dt;
};

struct cpu_layer {
    struct cw norm1, norm1_b, qkv, qkv_b, o, o_b;
    struct cw norm2, norm2_b, fc, fc_b, gate, gate_b, proj, proj_b;
    struct llm_cpu_kv kv;
    int window; /* 0 = full attention */
};

struct cpu_be {
    struct llm_backend pub;
    const struct llm_model_desc *d;
    struct llm_rope rope; /* desc's rope with rot_dims resolved */
    int n_threads;

    struct cw emb, pos_emb, norm_f, norm_f_b, lm_head, lm_head_b;
    struct cpu_layer *layers;
    float *alibi; /* [n_heads] or NULL */

    void *kv_mem;
    uint64_t kv_layer_bytes; /* K (or V) of one layer: n_blocks blocks */

    /* activations, grown to the largest batch seen (<= max_batch_tokens) */
    int cap_tokens;
    float *resid, *xn, *xn2, *qkv, *att, *ao, *mo, *fc, *gate;
    /* final rows and logits, grown to the largest n_out seen */
    int cap_out;
    float *fin, *logits;
    int n_out; /* rows of logits from the last forward; -1 = none */
    void *sample_scratch;
};

static struct cpu_be *cpu_of(struct llm_backend *be)
{
    return (struct cpu_be *)be->priv;
}

/* ---- creation ------------------------------------------------------------ */

static int cpu_arch_ok(int arch)
{
    return arch == LLM_ARCH_LLAMA || arch == LLM_ARCH_MISTRAL || arch == LLM_ARCH_QWEN2;
}

/* Look up a canonical tensor, require dtype f32/f16/bf16 and the shape
 * [d0] (d1 == 0) or [d0][d1]. */
static int get_w(struct llm_model *m, const char *name, int64_t d0, int64_t d1, struct cw *w)
{
    struct llm_tensor t;
    int rc = llm_model_tensor(m, name, &t);
    if (rc) return rc;
    if (!llm_cpu_dtype_ok(t.dtype))
        return llm_err_set(LLM_EUNSUPPORTED,
                           "'%s': dtype %s is not supported by the cpu backend (f32, f16, bf16)",
                           name, llm_dtype_name(t.dtype));
    int ndim = d1 ? 2 : 1;
    if (t.ndim != ndim || t.shape[0] != d0 || (d1 && t.shape[1] != d1))
        return llm_err_set(LLM_ESHAPE,
                           "'%s': expected shape [%lld%s%lld], found %d dims [%lld, %lld]", name,
                           (long long)d0, d1 ? ", " : "", d1 ? (long long)d1 : 0LL, t.ndim,
                           (long long)t.shape[0], (long long)(t.ndim > 1 ? t.shape[1] : 0));
    uint64_t need = (uint64_t)d0 * (uint64_t)(d1 ? d1 : 1) * (t.dtype == LLM_DTYPE_F32 ? 4u : 2u);
    if (!t.data || t.nbytes < need)
        return llm_err_set(LLM_ESHAPE, "'%s': %llu bytes of data, expected %llu", name,
                           (unsigned long long)t.nbytes, (unsigned long long)need);
    w->p = t.data;
    w->dt = t.dtype;
    return 0;
}

static int get_lw(struct llm_model *m, int layer, const char *suffix, int64_t d0, int64_t d1,
                  struct cw *w)
{
    char name[LLM_NAME_MAX];
    snprintf(name, sizeof name, "transformer.layers.%d.%s", layer, suffix);
    return get_w(m, name, d0, d1, w);
}

static int check_desc(const struct llm_model_desc *d)
{
    if (!cpu_arch_ok(d->arch))
        return llm_err_set(LLM_EUNSUPPORTED,
                           "architecture '%s' is not supported by the cpu backend yet",
                           d->model_type[0] ? d->model_type : d->hf_arch);
    if (d->n_layers <= 0 || d->n_layers > LLM_MAX_LAYERS || d->hidden <= 0 || d->vocab_size <= 0 ||
        d->n_heads <= 0 || d->n_kv_heads <= 0 || d->head_dim <= 0 || d->intermediate <= 0)
        return llm_err_set(LLM_EINVAL,
                           "model: sizes must be positive (layers %d, hidden %lld, "
                           "vocab %lld, heads %d/%d, head_dim %d, intermediate %lld)",
                           d->n_layers, (long long)d->hidden, (long long)d->vocab_size, d->n_heads,
                           d->n_kv_heads, d->head_dim, (long long)d->intermediate);
    if (d->n_heads % d->n_kv_heads)
        return llm_err_set(LLM_EINVAL, "model: %d kv heads do not divide %d heads", d->n_kv_heads,
                           d->n_heads);
    if (d->head_dim > 1024 || d->head_dim % 2)
        return llm_err_set(LLM_EUNSUPPORTED, "model: head_dim %d (cpu backend: even, <= 1024)",
                           d->head_dim);
    if (d->norm != LLM_NORM_RMS && d->norm != LLM_NORM_LAYER)
        return llm_err_set(LLM_EINVAL, "model: unknown norm %d", d->norm);
    if (d->act < 0 || d->act >= LLM_ACT_COUNT)
        return llm_err_set(LLM_EINVAL, "model: unknown activation %d", d->act);
    if (d->pos < 0 || d->pos >= LLM_POS_COUNT)
        return llm_err_set(LLM_EINVAL, "model: unknown position encoding %d", d->pos);
    if (d->n_experts > 0)
        return llm_err_set(LLM_EUNSUPPORTED,
                           "model: mixture of experts is not supported by the cpu "
                           "backend yet");
    if (d->sliding_window < 0)
        return llm_err_set(LLM_EINVAL, "model: sliding_window %d is negative", d->sliding_window);
    return 0;
}

static uint64_t phys_ram(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    return pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : (4ull << 30);
}

static void cpu_destroy(struct llm_backend *be);

static const struct llm_backend_ops cpu_ops_table;

int llm_backend_cpu_create(struct llm_backend **out, const struct llm_model *m,
                           const struct llm_backend_opts *o)
{
    *out = NULL;
    struct llm_backend_opts defaults;
    if (!o) {
        llm_backend_opts_init(&defaults);
        o = &defaults;
    }
    const struct llm_model_desc *d = &m->desc;
    int rc = check_desc(d);
    if (rc) return rc;
    struct llm_model *mm = (struct llm_model *)m; /* lookups do not modify the model */

    struct cpu_be *c = calloc(1, sizeof *c);
    if (!c) return llm_err_set(LLM_ENOMEM, "cpu backend: out of memory");
    c->pub.ops = &cpu_ops_table;
    c->pub.model = m;
    c->pub.priv = c;
    c->d = d;
    c->n_out = -1;
    c->layers = calloc((size_t)d->n_layers, sizeof *c->layers);
    if (!c->layers) {
        rc = llm_err_set(LLM_ENOMEM, "cpu backend: out of memory");
        goto fail;
    }

    int64_t H = d->hidden, V = d->vocab_size, I = d->intermediate, hd = d->head_dim;
    int nh = d->n_heads, nkv = d->n_kv_heads;
    int64_t qkv_rows = (int64_t)(nh + 2 * nkv) * hd;

    c->rope = d->rope;
    if (d->pos == LLM_POS_ROPE) {
        if (c->rope.rot_dims == 0) c->rope.rot_dims = (int)hd;
        float inv[512], ms;
        if (c->rope.rot_dims > hd) {
            rc = llm_err_set(LLM_EINVAL, "model: rope rot_dims %d exceeds head_dim %lld",
                             c->rope.rot_dims, (long long)hd);
            goto fail;
        }
        if ((rc = llm_cpu_rope_freqs(&c->rope, d->max_pos, 1, inv, &ms))) goto fail;
    }
    if (d->pos == LLM_POS_ALIBI) {
        c->alibi = malloc(sizeof(float) * (size_t)nh);
        if (!c->alibi) {
            rc = llm_err_set(LLM_ENOMEM, "cpu backend: out of memory");
            goto fail;
        }
        llm_cpu_alibi_slopes(c->alibi, nh, 8.0);
    }

    /* weights */
    int fused = 0;
    if (m->meta && llm_ea_present(m->meta)) {
        struct llm_ea_info eng;
        if ((rc = llm_ea_info_from_meta(m->meta, m->path, &eng))) goto fail;
        fused = eng.fused_gate;
        llm_ea_info_free(&eng);
    }
    if ((rc = get_w(mm, "transformer.vocab_embedding.weight", V, H, &c->emb))) goto fail;
    if (d->pos == LLM_POS_LEARNED &&
        (rc = get_w(mm, "transformer.position_embedding.weight", d->max_pos, H, &c->pos_emb)))
        goto fail;
    for (int l = 0; l < d->n_layers; l++) {
        struct cpu_layer *L = &c->layers[l];
        int two_norms = !(d->parallel_residual && d->shared_input_norm);
        if ((rc = get_lw(mm, l, "input_layernorm.weight", H, 0, &L->norm1))) goto fail;
        if (d->norm_bias && (rc = get_lw(mm, l, "input_layernorm.bias", H, 0, &L->norm1_b)))
            goto fail;
        if ((rc = get_lw(mm, l, "attention.qkv.weight", qkv_rows, H, &L->qkv))) goto fail;
        if (d->qkv_bias && (rc = get_lw(mm, l, "attention.qkv.bias", qkv_rows, 0, &L->qkv_b)))
            goto fail;
        if ((rc = get_lw(mm, l, "attention.dense.weight", H, (int64_t)nh * hd, &L->o))) goto fail;
        if (d->o_bias && (rc = get_lw(mm, l, "attention.dense.bias", H, 0, &L->o_b))) goto fail;
        if (two_norms) {
            if ((rc = get_lw(mm, l, "post_layernorm.weight", H, 0, &L->norm2))) goto fail;
            if (d->norm_bias && (rc = get_lw(mm, l, "post_layernorm.bias", H, 0, &L->norm2_b)))
                goto fail;
        }
        if (d->gated_mlp && fused) {
            /* an engine (llm-build): fc rows then gate rows of one tensor, read in place */
            struct cw fg, fgb = {NULL, 0};
            if ((rc = get_lw(mm, l, LLM_EA_FC_GATE_WEIGHT, 2 * I, H, &fg))) goto fail;
            if (d->mlp_bias && (rc = get_lw(mm, l, LLM_EA_FC_GATE_BIAS, 2 * I, 0, &fgb)))
                goto fail;
            size_t es = fg.dt == LLM_DTYPE_F32 ? 4 : 2, bes = fgb.dt == LLM_DTYPE_F32 ? 4 : 2;
            L->fc = fg;
            L->gate = (struct cw){(const char *)fg.p + (size_t)(I * H) * es, fg.dt};
            if (fgb.p) {
                L->fc_b = fgb;
                L->gate_b = (struct cw){(const char *)fgb.p + (size_t)I * bes, fgb.dt};
            }
        } else {
            if ((rc = get_lw(mm, l, "mlp.fc.weight", I, H, &L->fc))) goto fail;
            if (d->mlp_bias && (rc = get_lw(mm, l, "mlp.fc.bias", I, 0, &L->fc_b))) goto fail;
        }
        if (d->gated_mlp && !fused) {
            if ((rc = get_lw(mm, l, "mlp.gate.weight", I, H, &L->gate))) goto fail;
            if (d->mlp_bias && (rc = get_lw(mm, l, "mlp.gate.bias", I, 0, &L->gate_b))) goto fail;
        }
        if ((rc = get_lw(mm, l, "mlp.proj.weight", H, I, &L->proj))) goto fail;
        if (d->mlp_bias && (rc = get_lw(mm, l, "mlp.proj.bias", H, 0, &L->proj_b))) goto fail;
        L->window = d->sliding_window > 0 && d->layer_window[l] ? d->sliding_window : 0;
    }
    if ((rc = get_w(mm, "transformer.ln_f.weight", H, 0, &c->norm_f))) goto fail;
    if (d->norm_bias && (rc = get_w(mm, "transformer.ln_f.bias", H, 0, &c->norm_f_b))) goto fail;
    if (d->tied_embeddings)
        c->lm_head = c->emb;
    else if ((rc = get_w(mm, "lm_head.weight", V, H, &c->lm_head)))
        goto fail;
    if (d->lm_head_bias && (rc = get_w(mm, "lm_head.bias", V, 0, &c->lm_head_b))) goto fail;

    /* limits */
    struct llm_backend *be = &c->pub;
    be->block_size = o->block_size > 0 ? o->block_size : DEFAULT_BLOCK_SIZE;
    be->max_batch_tokens = o->max_batch_tokens > 0 ? o->max_batch_tokens : DEFAULT_MAX_BATCH_TOKENS;
    be->max_seqs = o->max_seqs > 0 ? o->max_seqs : DEFAULT_MAX_SEQS;
    be->max_seq_len =
        o->max_seq_len > 0 ? o->max_seq_len : (int)(d->max_pos > 0 ? d->max_pos : 4096);
    be->vocab = V;
    if (d->pos == LLM_POS_LEARNED && be->max_seq_len > d->max_pos)
        be->max_seq_len = (int)d->max_pos;
#ifdef _OPENMP
    c->n_threads = o->n_threads > 0 ? o->n_threads : omp_get_num_procs();
#else
    c->n_threads = 1;
#endif
    snprintf(be->device_name, sizeof be->device_name, "cpu (%d thread%s, %s)", c->n_threads,
             c->n_threads == 1 ? "" : "s", llm_cpu_isa());

    /* KV pool */
    int kv_dt = o->kv_dtype;
    if (!llm_cpu_dtype_ok(kv_dt)) {
        rc = llm_err_set(LLM_EUNSUPPORTED, "cpu backend: kv dtype %s (f32, f16 or bf16)",
                         llm_dtype_name(kv_dt));
        goto fail;
    }
    struct llm_cpu_kv proto = {NULL, NULL, kv_dt, 0, be->block_size, nkv, (int)hd};
    uint64_t per_block = llm_cpu_kv_block_bytes(&proto) * 2u * (uint64_t)d->n_layers;
    uint64_t want = o->kv_bytes;
    if (!want) {
        double f = o->kv_fraction > 0.0 ? o->kv_fraction : DEFAULT_KV_FRACTION;
        want = (uint64_t)(f * (double)phys_ram());
        if (o->kv_fraction <= 0.0 && want > DEFAULT_KV_CAP) want = DEFAULT_KV_CAP;
        /* no point in more than every sequence at full length */
        uint64_t useful = (uint64_t)be->max_seqs *
                          (uint64_t)((be->max_seq_len + be->block_size - 1) / be->block_size) *
                          per_block;
        if (want > useful) want = useful;
    }
    uint64_t nb = want / per_block;
    if (nb > 0x7fffffffu) nb = 0x7fffffffu;
    if (nb < 1) {
        rc = llm_err_set(LLM_ECAPACITY,
                         "cpu backend: kv pool of %llu bytes holds no block of %llu "
                         "bytes",
                         (unsigned long long)want, (unsigned long long)per_block);
        goto fail;
    }
    be->n_blocks = (int)nb;
    be->kv_bytes = nb * per_block;
    c->kv_mem = calloc(1, be->kv_bytes);
    if (!c->kv_mem) {
        rc = llm_err_set(LLM_ENOMEM, "cpu backend: cannot allocate a %llu-byte kv pool",
                         (unsigned long long)be->kv_bytes);
        goto fail;
    }
    c->kv_layer_bytes = nb * llm_cpu_kv_block_bytes(&proto);
    for (int l = 0; l < d->n_layers; l++) {
        struct llm_cpu_kv *kv = &c->layers[l].kv;
        *kv = proto;
        kv->n_blocks = be->n_blocks;
        kv->k = (char *)c->kv_mem + (uint64_t)(2 * l) * c->kv_layer_bytes;
        kv->v = (char *)c->kv_mem + (uint64_t)(2 * l + 1) * c->kv_layer_bytes;
    }
    *out = be;
    return 0;
fail:
    cpu_destroy(&c->pub);
    return rc;
}

static void cpu_destroy(struct llm_backend *be)
{
    if (!be) return;
    struct cpu_be *c = cpu_of(be);
    free(c->layers);
    free(c->alibi);
    free(c->kv_mem);
    float *bufs[] = {c->resid, c->xn, c->xn2,  c->qkv, c->att,   c->ao,
                     c->mo,    c->fc, c->gate, c->fin, c->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(c->sample_scratch);
    free(c);
}

/* ---- forward ------------------------------------------------------------- */

static int grow(float **p, size_t n)
{
    float *q = realloc(*p, (n ? n : 1) * sizeof(float));
    if (!q) return llm_err_set(LLM_ENOMEM, "cpu backend: out of memory for %zu activations", n);
    *p = q;
    return 0;
}

static int ensure_tokens(struct cpu_be *c, int n)
{
    if (n <= c->cap_tokens) return 0;
    const struct llm_model_desc *d = c->d;
    size_t t = (size_t)n, H = (size_t)d->hidden, I = (size_t)d->intermediate;
    size_t hd = (size_t)d->head_dim, nh = (size_t)d->n_heads, nkv = (size_t)d->n_kv_heads;
    int rc;
    if ((rc = grow(&c->resid, t * H)) || (rc = grow(&c->xn, t * H)) || (rc = grow(&c->ao, t * H)) ||
        (rc = grow(&c->mo, t * H)) || (rc = grow(&c->qkv, t * (nh + 2 * nkv) * hd)) ||
        (rc = grow(&c->att, t * nh * hd)) || (rc = grow(&c->fc, t * I)))
        return rc;
    if (d->gated_mlp && (rc = grow(&c->gate, t * I))) return rc;
    if (d->parallel_residual && !d->shared_input_norm && (rc = grow(&c->xn2, t * H))) return rc;
    c->cap_tokens = n;
    return 0;
}

static int ensure_out(struct cpu_be *c, int n_out)
{
    if (n_out <= c->cap_out) return 0;
    int rc;
    if ((rc = grow(&c->fin, (size_t)n_out * (size_t)c->d->hidden)) ||
        (rc = grow(&c->logits, (size_t)n_out * (size_t)c->d->vocab_size)))
        return rc;
    c->cap_out = n_out;
    return 0;
}


static void norm(const struct cpu_be *c, float *out, const float *x, float *residual,
                 const struct cw *w, const struct cw *bias, int n)
{
    const struct llm_model_desc *d = c->d;
    if (d->norm == LLM_NORM_RMS)
        llm_cpu_rmsnorm(out, x, residual, w->p, w->dt, n, d->hidden, (float)d->norm_eps);
    else
        llm_cpu_layernorm(out, x, residual, w->p, w->dt, bias->p, bias->dt, n, d->hidden,
                          (float)d->norm_eps);
}

static int linear(float *y, const float *x, int n, int64_t in, const struct cw *w, int64_t out,
                  const struct cw *bias)
{
    return llm_cpu_linear(y, x, n, in, w->p, w->dt, out, bias->p, bias->dt);
}

/* Attention sub-block: xn -> c->ao (projected), K/V of the step appended. */
static int attn_block(struct cpu_be *c, const struct cpu_layer *L, const float *xn,
                      const struct llm_batch *b)
{
    const struct llm_model_desc *d = c->d;
    int n = b->n_tokens, nh = d->n_heads, nkv = d->n_kv_heads;
    int64_t H = d->hidden, hd = d->head_dim, qkv_w = (int64_t)(nh + 2 * nkv) * hd;
    int rc = linear(c->qkv, xn, n, H, &L->qkv, qkv_w, &L->qkv_b);
    if (rc) return rc;
    if (d->pos == LLM_POS_ROPE &&
        (rc = llm_cpu_rope_batch(c->qkv, qkv_w, nh, nkv, (int)hd, &c->rope, d->max_pos, b)))
        return rc;
    llm_cpu_kv_append(&L->kv, c->qkv + (int64_t)nh * hd, c->qkv + (int64_t)(nh + nkv) * hd, qkv_w,
                      b);
    struct llm_cpu_attn a = {
        .n_heads = nh,
        .scale = (float)(d->attn_scale > 0.0 ? d->attn_scale : 1.0 / sqrt((double)hd)),
        .window = L->window,
        .softcap = (float)d->logit_softcap,
        .alibi = c->alibi,
    };
    if ((rc = llm_cpu_attention(c->att, (int64_t)nh * hd, c->qkv, qkv_w, &L->kv, b, &a))) return rc;
    return linear(c->ao, c->att, n, (int64_t)nh * hd, &L->o, H, &L->o_b);
}

/* MLP sub-block: xn -> c->mo. */
static int mlp_block(struct cpu_be *c, const struct cpu_layer *L, const float *xn, int n)
{
    const struct llm_model_desc *d = c->d;
    int64_t H = d->hidden, I = d->intermediate;
    int rc = linear(c->fc, xn, n, H, &L->fc, I, &L->fc_b);
    if (rc) return rc;
    if (d->gated_mlp) {
        if ((rc = linear(c->gate, xn, n, H, &L->gate, I, &L->gate_b))) return rc;
        llm_cpu_gated(c->fc, c->fc, c->gate, (int64_t)n * I, d->act);
    } else {
        llm_cpu_act(c->fc, (int64_t)n * I, d->act);
    }
    return linear(c->mo, c->fc, n, I, &L->proj, H, &L->proj_b);
}

static int cpu_forward(struct llm_backend *be, const struct llm_batch *b)
{
    struct cpu_be *c = cpu_of(be);
    const struct llm_model_desc *d = c->d;
    c->n_out = -1;
    int rc = llm_batch_check(&c->pub, b);
    if (rc) return rc;
    if ((rc = ensure_tokens(c, b->n_tokens)) || (rc = ensure_out(c, b->n_out))) return rc;
#ifdef _OPENMP
    omp_set_num_threads(c->n_threads);
#endif
    int n = b->n_tokens;
    int64_t H = d->hidden;
    float esc = d->embed_scale > 0.0 ? (float)d->embed_scale : 1.0f;
    if ((rc = llm_cpu_embed(c->resid, b->tokens, n, c->emb.p, c->emb.dt, d->vocab_size, H, esc)))
        return rc;
    if (d->pos == LLM_POS_LEARNED &&
        (rc = llm_cpu_add_rows(c->resid, b->pos, n, c->pos_emb.p, c->pos_emb.dt, d->max_pos, H)))
        return rc;

    /* c->mo carries the previous layer's pending output into the next norm */
    for (int l = 0; l < d->n_layers; l++) {
        const struct cpu_layer *L = &c->layers[l];
        norm(c, c->xn, l ? c->mo : c->resid, l ? c->resid : NULL, &L->norm1, &L->norm1_b, n);
        if (!d->parallel_residual) {
            if ((rc = attn_block(c, L, c->xn, b))) return rc;
            norm(c, c->xn, c->ao, c->resid, &L->norm2, &L->norm2_b, n);
            if ((rc = mlp_block(c, L, c->xn, n))) return rc;
        } else {
            const float *xin2 = c->xn;
            if (!d->shared_input_norm) {
                norm(c, c->xn2, c->resid, NULL, &L->norm2, &L->norm2_b, n);
                xin2 = c->xn2;
            }
            if ((rc = attn_block(c, L, c->xn, b))) return rc;
            if ((rc = mlp_block(c, L, xin2, n))) return rc;
            llm_cpu_add(c->mo, c->ao, (int64_t)n * H); /* attn + mlp, then + residual */
        }
    }

    /* final norm and lm_head over the rows that need logits only */
    int no = b->n_out;
    for (int i = 0; i < no; i++) {
        int64_t r = b->out_rows[i];
        memcpy(c->fin + i * H, c->resid + r * H, sizeof(float) * (size_t)H);
        llm_cpu_add(c->fin + i * H, c->mo + r * H, H);
    }
    if (no > 0) {
        norm(c, c->fin, c->fin, NULL, &c->norm_f, &c->norm_f_b, no);
        if ((rc = linear(c->logits, c->fin, no, H, &c->lm_head, d->vocab_size, &c->lm_head_b)))
            return rc;
    }
    c->n_out = no;
    return 0;
}

static int cpu_get_logits(struct llm_backend *be, float *dst)
{
    struct cpu_be *c = cpu_of(be);
    if (c->n_out < 0) return llm_err_set(LLM_EINVAL, "get_logits: no successful forward step");
    memcpy(dst, c->logits, sizeof(float) * (size_t)c->n_out * (size_t)c->d->vocab_size);
    return 0;
}

static int cpu_sample(struct llm_backend *be, const struct llm_sample_row *rows, int n,
                      struct llm_sample_result *out)
{
    struct cpu_be *c = cpu_of(be);
    if (c->n_out < 0) return llm_err_set(LLM_EINVAL, "sample: no successful forward step");
    if (n != c->n_out)
        return llm_err_set(LLM_EINVAL, "sample: %d rows given, the last step kept %d", n, c->n_out);
    if (!c->sample_scratch && n > 0) {
        c->sample_scratch = malloc(llm_sample_scratch_size(c->d->vocab_size));
        if (!c->sample_scratch) return llm_err_set(LLM_ENOMEM, "sample: out of memory");
    }
    for (int i = 0; i < n; i++) {
        int rc = llm_sample_cpu(c->logits + (int64_t)i * c->d->vocab_size, c->d->vocab_size,
                                &rows[i], &out[i], c->sample_scratch);
        if (rc) return llm_err_wrap(rc, "sample: row %d", i);
    }
    return 0;
}

static int cpu_copy_blocks(struct llm_backend *be, const int32_t *src, const int32_t *dst, int n)
{
    struct cpu_be *c = cpu_of(be);
    for (int i = 0; i < n; i++)
        if (src[i] < 0 || src[i] >= be->n_blocks || dst[i] < 0 || dst[i] >= be->n_blocks)
            return llm_err_set(LLM_EINVAL,
                               "copy_blocks: pair %d (%d -> %d) outside the pool of %d "
                               "blocks",
                               i, src[i], dst[i], be->n_blocks);
    const struct llm_cpu_kv *kv0 = &c->layers[0].kv;
    uint64_t bb = llm_cpu_kv_block_bytes(kv0);
    for (int l = 0; l < c->d->n_layers; l++) {
        const struct llm_cpu_kv *kv = &c->layers[l].kv;
        for (int i = 0; i < n; i++) {
            if (src[i] == dst[i]) continue;
            memcpy((char *)kv->k + (uint64_t)dst[i] * bb, (char *)kv->k + (uint64_t)src[i] * bb,
                   bb);
            memcpy((char *)kv->v + (uint64_t)dst[i] * bb, (char *)kv->v + (uint64_t)src[i] * bb,
                   bb);
        }
    }
    return 0;
}

static const struct llm_backend_ops cpu_ops_table = {
    .name = "cpu",
    .forward = cpu_forward,
    .get_logits = cpu_get_logits,
    .sample = cpu_sample,
    .copy_blocks = cpu_copy_blocks,
    .last_step_time = NULL, /* no device clock: callers time steps on the host */
    .destroy = cpu_destroy,
};
