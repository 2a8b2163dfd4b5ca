/* test_xform.c - every architecture's HF tensor rules and the transforms
 * real checkpoints need, on tiny synthetic checkpoints named as
 * transformers names them (written out by hand here, independently of the
 * registry's tables).
 *
 * For each family: the plan must use every tensor of the checkpoint (no
 * "not used" warning, except the buffers transformers saves), produce the
 * canonical shapes, and each canonical tensor built by llm_hfmap_build must
 * hold exactly the values the transform defines, checked element by
 * element against a reference written here (Conv1D transpose, per-head
 * q/k/v regrouping for MHA, MQA and GQA, halves of a fused gate/up, stacked
 * experts and per-head norms).  Also: a checkpoint saved without the base
 * model's prefix ("h.0..." for "transformer.h.0...") plans the same. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/hf.h"
#include "llm/log.h"
#include "llm/model.h"
#include "llm/safetensors.h"
#include "tcheck.h"

#define MAXT 256

struct ckpt {
    struct llm_tensor t[MAXT];
    char names[MAXT][128];
    float *data[MAXT];
    size_t n;
};

/* Tensor k holds 1000 k + element index (exact in f32 for these sizes). */
static void add(struct ckpt *c, const char *name, int64_t d0, int64_t d1)
{
    struct llm_tensor *t = &c->t[c->n];
    memset(t, 0, sizeof(*t));
    snprintf(c->names[c->n], sizeof(c->names[0]), "%s", name);
    t->name = c->names[c->n];
    t->dtype = LLM_DTYPE_F32;
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    int64_t n = d0 * (d1 ? d1 : 1);
    float *p = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)(1000 * (int64_t)c->n + i);
    t->data = p;
    t->nbytes = sizeof(float) * (uint64_t)n;
    c->data[c->n++] = p;
}

/* A 3-D tensor [d0][d1][d2] (experts stacked in one tensor), values as add's. */
static void add3(struct ckpt *c, const char *name, int64_t d0, int64_t d1, int64_t d2)
{
    add(c, name, d0, d1 * d2);
    struct llm_tensor *t = &c->t[c->n - 1];
    t->ndim = 3;
    t->shape[1] = d1;
    t->shape[2] = d2;
}

/* Per layer: the name with "%d" replaced by the layer. */
static void addl(struct ckpt *c, int layers, const char *tmpl, int64_t d0, int64_t d1)
{
    const char *at = strstr(tmpl, "%d");
    for (int l = 0; l < layers; l++) {
        char b[160];
        snprintf(b, sizeof b, "%.*s%d%s", (int)(at - tmpl), tmpl, l, at + 2);
        add(c, b, d0, d1);
    }
}

static const float *src_of(const struct ckpt *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->names[i], name)) return c->data[i];
    return NULL;
}

static void ckpt_free(struct ckpt *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->data[i]);
    c->n = 0;
}

static int parse_cfg(const char *cfg, struct llm_model_desc *d)
{
    json_t *j = NULL;
    int rc = llm_hf_json_parse(cfg, strlen(cfg), "t/config.json", &j);
    if (!rc) rc = llm_hfconfig_parse(j, NULL, "t/config.json", d, NULL);
    json_decref(j);
    return rc;
}

/* Plan c for d; the library's stderr is captured into *log. */
static int plan(const char *dir, const struct ckpt *c, const struct llm_model_desc *d,
                struct llm_st **st, struct llm_plan_item **items, size_t *n, char **log)
{
    char path[4200], lp[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (llm_st_write(path, c->t, c->n, NULL) || llm_st_open(st, path)) {
        fprintf(stderr, "fixture: %s\n", llm_errmsg());
        exit(1);
    }
    snprintf(lp, sizeof lp, "%s/log.txt", dir);
    fflush(stderr);
    int fd = open(lp, O_WRONLY | O_CREAT | O_TRUNC, 0644), saved = dup(2);
    dup2(fd, 2);
    close(fd);
    int rc = llm_hfmap_plan(d, *st, items, n);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    size_t len;
    unsigned char *b = t_slurp(lp, &len);
    *log = realloc(b, len + 1);
    (*log)[len] = 0;
    return rc;
}

static const struct llm_plan_item *item(const struct llm_plan_item *it, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(it[i].name, name)) return &it[i];
    return NULL;
}

/* Build a canonical tensor as f32. */
static float *build(const struct llm_plan_item *it, const struct llm_st *st)
{
    uint64_t numel = 1;
    for (int i = 0; i < it->ndim; i++)
        numel *= (uint64_t)it->shape[i];
    float *out = malloc(sizeof(float) * (size_t)numel);
    int rc = llm_hfmap_build(it, st, LLM_DTYPE_F32, out, numel * 4);
    CHECK(rc == 0, "build '%s': %s", it->name, llm_errmsg());
    return out;
}

/* Plans the family's checkpoint, checks every tensor is used and the
 * number of canonical tensors; returns the items for closer checks. */
static size_t plan_all(const char *what, const char *dir, const struct ckpt *c,
                       const struct llm_model_desc *d, struct llm_st **st,
                       struct llm_plan_item **items, size_t want_items)
{
    size_t n = 0;
    char *log = NULL;
    int rc = plan(dir, c, d, st, items, &n, &log);
    CHECK(rc == 0, "%s: plan: %s", what, llm_errmsg());
    CHECK(!strstr(log, "not used"), "%s: tensors left unused:\n%s", what, log);
    CHECK(n == want_items, "%s: %zu canonical tensors, expected %zu", what, n, want_items);
    for (size_t i = 0; i < n && !rc; i++) {
        int nd;
        int64_t s[LLM_MAX_DIMS];
        CHECK(llm_desc_tensor_shape(d, (*items)[i].name, &nd, s) == 0 && nd == (*items)[i].ndim,
              "%s: '%s' shape", what, (*items)[i].name);
    }
    free(log);
    return n;
}

/* ---- GPT-2: Conv1D weights transposed; checkpoints without "transformer." -------- */

static void test_gpt2(const char *dir)
{
    struct llm_model_desc d;
    CHECK_OK(parse_cfg("{\"architectures\": [\"GPT2LMHeadModel\"], \"vocab_size\": 20, "
                       "\"n_embd\": 8, \"n_layer\": 2, \"n_head\": 2, \"n_positions\": 16}",
                       &d));
    for (int prefixed = 0; prefixed < 2; prefixed++) {
        struct ckpt c = {0};
        const char *p = prefixed ? "transformer." : "";
        char f[160];
#define NAME(s) (snprintf(f, sizeof f, "%s%s", p, s), f)
        add(&c, NAME("wte.weight"), 20, 8);
        add(&c, NAME("wpe.weight"), 16, 8);
        addl(&c, 2, NAME("h.%d.ln_1.weight"), 8, 0);
        addl(&c, 2, NAME("h.%d.ln_1.bias"), 8, 0);
        addl(&c, 2, NAME("h.%d.attn.bias"), 16, 16); /* the causal mask buffer */
        addl(&c, 2, NAME("h.%d.attn.c_attn.weight"), 8, 24);
        addl(&c, 2, NAME("h.%d.attn.c_attn.bias"), 24, 0);
        addl(&c, 2, NAME("h.%d.attn.c_proj.weight"), 8, 8);
        addl(&c, 2, NAME("h.%d.attn.c_proj.bias"), 8, 0);
        addl(&c, 2, NAME("h.%d.ln_2.weight"), 8, 0);
        addl(&c, 2, NAME("h.%d.ln_2.bias"), 8, 0);
        addl(&c, 2, NAME("h.%d.mlp.c_fc.weight"), 8, 32);
        addl(&c, 2, NAME("h.%d.mlp.c_fc.bias"), 32, 0);
        addl(&c, 2, NAME("h.%d.mlp.c_proj.weight"), 32, 8);
        addl(&c, 2, NAME("h.%d.mlp.c_proj.bias"), 8, 0);
        add(&c, NAME("ln_f.weight"), 8, 0);
        add(&c, NAME("ln_f.bias"), 8, 0);
        struct llm_st *st;
        struct llm_plan_item *it = NULL;
        size_t n = plan_all(prefixed ? "gpt2" : "gpt2 without prefix", dir, &c, &d, &st, &it,
                            2 + 2 * 12 + 2);
        const struct llm_plan_item *q = item(it, n, "transformer.layers.1.attention.qkv.weight");
        const struct llm_plan_item *fc = item(it, n, "transformer.layers.0.mlp.fc.weight");
        CHECK(q && q->xform == LLM_XF_TRANSPOSE && q->shape[0] == 24 && q->shape[1] == 8,
              "gpt2 qkv transposed [24, 8]");
        if (q && fc) {
            float *a = build(q, st), *b = build(fc, st);
            const float *sa = src_of(&c, NAME("h.1.attn.c_attn.weight"));
            const float *sb = src_of(&c, NAME("h.0.mlp.c_fc.weight"));
            int bad = 0;
            for (int o = 0; o < 24; o++)
                for (int i = 0; i < 8; i++) bad += a[o * 8 + i] != sa[i * 24 + o];
            for (int o = 0; o < 32; o++)
                for (int i = 0; i < 8; i++) bad += b[o * 8 + i] != sb[i * 32 + o];
            CHECK(bad == 0, "gpt2: out[o][i] == conv1d[i][o] (%d differ)", bad);
            free(a);
            free(b);
        }
#undef NAME
        free(it);
        llm_st_close(st);
        ckpt_free(&c);
    }
    printf("ok gpt2: Conv1D transposed, with and without the transformer. prefix\n");
    llm_desc_free(&d);
}

/* ---- per-head fused q/k/v: NeoX and BLOOM (MHA), Falcon (MQA, GQA) -------------- */

/* The canonical fused qkv from a [groups][q per group + 2][hd] source. */
static int check_regroup(const float *out, const float *src, int nh, int nkv, int hd, int cols)
{
    int G = nkv, Q = nh / nkv, bad = 0;
    for (int h = 0; h < nh; h++)
        for (int r = 0; r < hd; r++)
            for (int k = 0; k < cols; k++)
                bad += out[((size_t)h * hd + r) * cols + k] !=
                       src[(((size_t)(h / Q) * (Q + 2) + h % Q) * hd + r) * cols + k];
    for (int g = 0; g < G; g++)
        for (int r = 0; r < hd; r++)
            for (int k = 0; k < cols; k++) {
                bad += out[(((size_t)nh + g) * hd + r) * cols + k] !=
                       src[(((size_t)g * (Q + 2) + Q) * hd + r) * cols + k];
                bad += out[(((size_t)nh + nkv + g) * hd + r) * cols + k] !=
                       src[(((size_t)g * (Q + 2) + Q + 1) * hd + r) * cols + k];
            }
    return bad;
}

static void test_neox(const char *dir)
{
    struct llm_model_desc d;
    CHECK_OK(parse_cfg("{\"architectures\": [\"GPTNeoXForCausalLM\"], \"vocab_size\": 20, "
                       "\"hidden_size\": 8, \"intermediate_size\": 16, \"num_hidden_layers\": 1, "
                       "\"num_attention_heads\": 2, \"rotary_pct\": 0.5}",
                       &d));
    struct ckpt c = {0};
    add(&c, "gpt_neox.embed_in.weight", 20, 8);
    add(&c, "gpt_neox.layers.0.input_layernorm.weight", 8, 0);
    add(&c, "gpt_neox.layers.0.input_layernorm.bias", 8, 0);
    add(&c, "gpt_neox.layers.0.post_attention_layernorm.weight", 8, 0);
    add(&c, "gpt_neox.layers.0.post_attention_layernorm.bias", 8, 0);
    add(&c, "gpt_neox.layers.0.attention.bias", 16, 16);
    add(&c, "gpt_neox.layers.0.attention.masked_bias", 1, 0);
    add(&c, "gpt_neox.layers.0.attention.rotary_emb.inv_freq", 1, 0);
    add(&c, "gpt_neox.layers.0.attention.query_key_value.weight", 24, 8);
    add(&c, "gpt_neox.layers.0.attention.query_key_value.bias", 24, 0);
    add(&c, "gpt_neox.layers.0.attention.dense.weight", 8, 8);
    add(&c, "gpt_neox.layers.0.attention.dense.bias", 8, 0);
    add(&c, "gpt_neox.layers.0.mlp.dense_h_to_4h.weight", 16, 8);
    add(&c, "gpt_neox.layers.0.mlp.dense_h_to_4h.bias", 16, 0);
    add(&c, "gpt_neox.layers.0.mlp.dense_4h_to_h.weight", 8, 16);
    add(&c, "gpt_neox.layers.0.mlp.dense_4h_to_h.bias", 8, 0);
    add(&c, "gpt_neox.final_layer_norm.weight", 8, 0);
    add(&c, "gpt_neox.final_layer_norm.bias", 8, 0);
    add(&c, "embed_out.weight", 20, 8);
    struct llm_st *st;
    struct llm_plan_item *it = NULL;
    size_t n = plan_all("gpt-neox", dir, &c, &d, &st, &it, 1 + 12 + 3);
    const struct llm_plan_item *w = item(it, n, "transformer.layers.0.attention.qkv.weight");
    const struct llm_plan_item *b = item(it, n, "transformer.layers.0.attention.qkv.bias");
    CHECK(w && b && w->xform == LLM_XF_QKV_HEADS && b->xform == LLM_XF_QKV_HEADS,
          "neox qkv regrouped");
    if (w && b) {
        float *a = build(w, st), *ab = build(b, st);
        CHECK(!check_regroup(a, src_of(&c, "gpt_neox.layers.0.attention.query_key_value.weight"),
                             2, 2, 4, 8) &&
                  !check_regroup(ab, src_of(&c, "gpt_neox.layers.0.attention.query_key_value.bias"),
                                 2, 2, 4, 1),
              "neox: per head [q, k, v] -> q; k; v");
        free(a);
        free(ab);
    }
    free(it);
    llm_st_close(st);
    ckpt_free(&c);
    llm_desc_free(&d);
    printf("ok gpt-neox: per-head q/k/v regrouped, buffers ignored\n");
}

static void test_falcon(const char *dir)
{
    /* new architecture, GQA: 4 query heads in 2 groups, ln_attn and ln_mlp */
    const char *cfgs[2] = {
        "{\"architectures\": [\"FalconForCausalLM\"], \"vocab_size\": 20, \"hidden_size\": 16, "
        "\"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"new_decoder_architecture\": "
        "true, \"num_kv_heads\": 2}",
        /* Falcon-7B style: MQA, one shared norm */
        "{\"architectures\": [\"FalconForCausalLM\"], \"vocab_size\": 20, \"hidden_size\": 16, "
        "\"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"multi_query\": true, "
        "\"parallel_attn\": true}"};
    for (int k = 0; k < 2; k++) {
        struct llm_model_desc d;
        CHECK_OK(parse_cfg(cfgs[k], &d));
        int nkv = k ? 1 : 2, rows = (4 + 2 * nkv) * 4;
        struct ckpt c = {0};
        add(&c, "transformer.word_embeddings.weight", 20, 16);
        if (k) {
            add(&c, "transformer.h.0.input_layernorm.weight", 16, 0);
            add(&c, "transformer.h.0.input_layernorm.bias", 16, 0);
        } else {
            add(&c, "transformer.h.0.ln_attn.weight", 16, 0);
            add(&c, "transformer.h.0.ln_attn.bias", 16, 0);
            add(&c, "transformer.h.0.ln_mlp.weight", 16, 0);
            add(&c, "transformer.h.0.ln_mlp.bias", 16, 0);
        }
        add(&c, "transformer.h.0.self_attention.query_key_value.weight", rows, 16);
        add(&c, "transformer.h.0.self_attention.dense.weight", 16, 16);
        add(&c, "transformer.h.0.mlp.dense_h_to_4h.weight", 64, 16);
        add(&c, "transformer.h.0.mlp.dense_4h_to_h.weight", 16, 64);
        add(&c, "transformer.ln_f.weight", 16, 0);
        add(&c, "transformer.ln_f.bias", 16, 0);
        struct llm_st *st;
        struct llm_plan_item *it = NULL;
        size_t n = plan_all(k ? "falcon mqa" : "falcon gqa", dir, &c, &d, &st, &it,
                            1 + (k ? 2 : 4) + 4 + 2);
        const struct llm_plan_item *w = item(it, n, "transformer.layers.0.attention.qkv.weight");
        if (w) {
            float *a = build(w, st);
            CHECK(!check_regroup(a,
                                 src_of(&c, "transformer.h.0.self_attention.query_key_value.weight"),
                                 4, nkv, 4, 16),
                  "falcon %s: [groups][q.., k, v] -> q; k; v", k ? "mqa" : "gqa");
            free(a);
        }
        free(it);
        llm_st_close(st);
        ckpt_free(&c);
        llm_desc_free(&d);
    }
    printf("ok falcon: GQA groups and MQA regrouped, ln_attn/ln_mlp and one shared norm\n");
}

/* ---- fused gate/up halves (Phi-3), stacked experts (Mixtral), per-head norms ---- */

static void test_phi3(const char *dir)
{
    struct llm_model_desc d;
    CHECK_OK(parse_cfg("{\"architectures\": [\"Phi3ForCausalLM\"], \"vocab_size\": 20, "
                       "\"hidden_size\": 8, \"intermediate_size\": 12, \"num_hidden_layers\": 1, "
                       "\"num_attention_heads\": 2}",
                       &d));
    struct ckpt c = {0};
    add(&c, "model.embed_tokens.weight", 20, 8);
    add(&c, "model.layers.0.input_layernorm.weight", 8, 0);
    add(&c, "model.layers.0.self_attn.qkv_proj.weight", 24, 8);
    add(&c, "model.layers.0.self_attn.o_proj.weight", 8, 8);
    add(&c, "model.layers.0.post_attention_layernorm.weight", 8, 0);
    add(&c, "model.layers.0.mlp.gate_up_proj.weight", 24, 8);
    add(&c, "model.layers.0.mlp.down_proj.weight", 8, 12);
    add(&c, "model.norm.weight", 8, 0);
    add(&c, "lm_head.weight", 20, 8);
    struct llm_st *st;
    struct llm_plan_item *it = NULL;
    size_t n = plan_all("phi3", dir, &c, &d, &st, &it, 10);
    const struct llm_plan_item *fc = item(it, n, "transformer.layers.0.mlp.fc.weight");
    const struct llm_plan_item *gt = item(it, n, "transformer.layers.0.mlp.gate.weight");
    if (fc && gt) {
        float *a = build(fc, st), *b = build(gt, st);
        const float *s = src_of(&c, "model.layers.0.mlp.gate_up_proj.weight");
        CHECK(!memcmp(a, s, 12 * 8 * 4) && !memcmp(b, s + 12 * 8, 12 * 8 * 4),
              "phi3: gate rows -> mlp.fc, up rows -> mlp.gate");
        free(a);
        free(b);
    }
    free(it);
    llm_st_close(st);
    ckpt_free(&c);
    llm_desc_free(&d);
    printf("ok phi3: fused gate_up split into fc and gate\n");
}

static void test_mixtral(const char *dir)
{
    struct llm_model_desc d;
    CHECK_OK(parse_cfg("{\"architectures\": [\"MixtralForCausalLM\"], \"vocab_size\": 20, "
                       "\"hidden_size\": 8, \"intermediate_size\": 12, \"num_hidden_layers\": 1, "
                       "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, "
                       "\"num_local_experts\": 3, \"num_experts_per_tok\": 2}",
                       &d));
    struct ckpt c = {0};
    add(&c, "model.embed_tokens.weight", 20, 8);
    add(&c, "model.layers.0.input_layernorm.weight", 8, 0);
    add(&c, "model.layers.0.self_attn.q_proj.weight", 8, 8);
    add(&c, "model.layers.0.self_attn.k_proj.weight", 4, 8);
    add(&c, "model.layers.0.self_attn.v_proj.weight", 4, 8);
    add(&c, "model.layers.0.self_attn.o_proj.weight", 8, 8);
    add(&c, "model.layers.0.post_attention_layernorm.weight", 8, 0);
    add(&c, "model.layers.0.block_sparse_moe.gate.weight", 3, 8);
    for (int e = 0; e < 3; e++) {
        char b[128];
        snprintf(b, sizeof b, "model.layers.0.block_sparse_moe.experts.%d.w1.weight", e);
        add(&c, b, 12, 8);
        snprintf(b, sizeof b, "model.layers.0.block_sparse_moe.experts.%d.w2.weight", e);
        add(&c, b, 8, 12);
        snprintf(b, sizeof b, "model.layers.0.block_sparse_moe.experts.%d.w3.weight", e);
        add(&c, b, 12, 8);
    }
    add(&c, "model.norm.weight", 8, 0);
    add(&c, "lm_head.weight", 20, 8);
    struct llm_st *st;
    struct llm_plan_item *it = NULL;
    size_t n = plan_all("mixtral", dir, &c, &d, &st, &it, 11);
    const struct llm_plan_item *pr = item(it, n, "transformer.layers.0.mlp.proj.weight");
    CHECK(pr && pr->ndim == 3 && pr->shape[0] == 3 && pr->shape[1] == 8 && pr->shape[2] == 12,
          "mixtral: mlp.proj [3, 8, 12]");
    if (pr) {
        float *a = build(pr, st);
        int bad = 0;
        for (int e = 0; e < 3; e++) {
            char b[128];
            snprintf(b, sizeof b, "model.layers.0.block_sparse_moe.experts.%d.w2.weight", e);
            bad += memcmp(a + e * 96, src_of(&c, b), 96 * 4) != 0;
        }
        CHECK(bad == 0, "mixtral: expert e's w2 is mlp.proj[e]");
        free(a);
    }
    free(it);
    llm_st_close(st);
    ckpt_free(&c);
    llm_desc_free(&d);
    printf("ok mixtral: router and stacked experts\n");
}

/* GraniteMoe: every expert in one tensor; input_linear [E][2 I][H] holds each
 * expert's activated rows, then its multiplied rows. */
static void test_granitemoe(const char *dir)
{
    struct llm_model_desc d;
    CHECK_OK(parse_cfg("{\"architectures\": [\"GraniteMoeForCausalLM\"], \"vocab_size\": 20, "
                       "\"hidden_size\": 8, \"intermediate_size\": 12, \"num_hidden_layers\": 1, "
                       "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, "
                       "\"num_local_experts\": 3, \"num_experts_per_tok\": 2, "
                       "\"residual_multiplier\": 0.5}",
                       &d));
    struct ckpt c = {0};
    add(&c, "model.embed_tokens.weight", 20, 8);
    add(&c, "model.layers.0.input_layernorm.weight", 8, 0);
    add(&c, "model.layers.0.self_attn.q_proj.weight", 8, 8);
    add(&c, "model.layers.0.self_attn.k_proj.weight", 4, 8);
    add(&c, "model.layers.0.self_attn.v_proj.weight", 4, 8);
    add(&c, "model.layers.0.self_attn.o_proj.weight", 8, 8);
    add(&c, "model.layers.0.post_attention_layernorm.weight", 8, 0);
    add(&c, "model.layers.0.block_sparse_moe.router.layer.weight", 3, 8);
    add3(&c, "model.layers.0.block_sparse_moe.input_linear.weight", 3, 24, 8);
    add3(&c, "model.layers.0.block_sparse_moe.output_linear.weight", 3, 8, 12);
    add(&c, "model.norm.weight", 8, 0);
    add(&c, "lm_head.weight", 20, 8);
    struct llm_st *st;
    struct llm_plan_item *it = NULL;
    size_t n = plan_all("granitemoe", dir, &c, &d, &st, &it, 11);
    const struct llm_plan_item *fc = item(it, n, "transformer.layers.0.mlp.fc.weight");
    const struct llm_plan_item *gt = item(it, n, "transformer.layers.0.mlp.gate.weight");
    const struct llm_plan_item *pr = item(it, n, "transformer.layers.0.mlp.proj.weight");
    CHECK(fc && fc->ndim == 3 && fc->shape[0] == 3 && fc->shape[1] == 12 && fc->shape[2] == 8,
          "granitemoe: mlp.fc [3, 12, 8]");
    CHECK(pr && pr->ndim == 3 && pr->shape[0] == 3 && pr->shape[1] == 8 && pr->shape[2] == 12,
          "granitemoe: mlp.proj [3, 8, 12]");
    if (fc && gt && pr) {
        float *a = build(fc, st), *b = build(gt, st), *p = build(pr, st);
        const float *in = src_of(&c, "model.layers.0.block_sparse_moe.input_linear.weight");
        const float *out = src_of(&c, "model.layers.0.block_sparse_moe.output_linear.weight");
        int bad = 0;
        for (int e = 0; e < 3; e++) /* expert e's 24 rows of 8: the first 12, then the rest */
            bad += memcmp(a + e * 96, in + e * 192, 96 * 4) != 0 ||
                   memcmp(b + e * 96, in + e * 192 + 96, 96 * 4) != 0;
        CHECK(bad == 0,
              "granitemoe: input_linear[e] rows 0..11 -> mlp.fc[e], 12..23 -> mlp.gate[e]");
        CHECK(!memcmp(p, out, 3 * 96 * 4), "granitemoe: output_linear is mlp.proj");
        free(a);
        free(b);
        free(p);
    }
    CHECK(d.residual_scale == 0.5 && d.n_experts == 3 && d.moe_norm_topk,
          "granitemoe: residual scale 0.5, 3 experts, top-k renormalised");
    free(it);
    llm_st_close(st);
    ckpt_free(&c);
    llm_desc_free(&d);
    printf("ok granitemoe: experts' gate and up halves from one 3-D tensor each\n");
}

/* ---- GPT-OSS: experts in the x @ W orientation, gate and up interleaved ----------- */

static void test_gptoss(const char *dir)
{
    struct llm_model_desc d;
    CHECK_OK(parse_cfg("{\"architectures\": [\"GptOssForCausalLM\"], \"vocab_size\": 20, "
                       "\"hidden_size\": 8, \"intermediate_size\": 4, \"num_hidden_layers\": 1, "
                       "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, "
                       "\"head_dim\": 4, \"num_local_experts\": 3, \"num_experts_per_tok\": 2}",
                       &d));
    struct ckpt c = {0};
    add(&c, "model.embed_tokens.weight", 20, 8);
    add(&c, "model.layers.0.input_layernorm.weight", 8, 0);
    add(&c, "model.layers.0.self_attn.q_proj.weight", 8, 8);
    add(&c, "model.layers.0.self_attn.q_proj.bias", 8, 0);
    add(&c, "model.layers.0.self_attn.k_proj.weight", 4, 8);
    add(&c, "model.layers.0.self_attn.k_proj.bias", 4, 0);
    add(&c, "model.layers.0.self_attn.v_proj.weight", 4, 8);
    add(&c, "model.layers.0.self_attn.v_proj.bias", 4, 0);
    add(&c, "model.layers.0.self_attn.o_proj.weight", 8, 8);
    add(&c, "model.layers.0.self_attn.o_proj.bias", 8, 0);
    add(&c, "model.layers.0.self_attn.sinks", 2, 0);
    add(&c, "model.layers.0.post_attention_layernorm.weight", 8, 0);
    add(&c, "model.layers.0.mlp.router.weight", 3, 8);
    add(&c, "model.layers.0.mlp.router.bias", 3, 0);
    add3(&c, "model.layers.0.mlp.experts.gate_up_proj", 3, 8, 8); /* [E][hidden][2 I] */
    add(&c, "model.layers.0.mlp.experts.gate_up_proj_bias", 3, 8);
    add3(&c, "model.layers.0.mlp.experts.down_proj", 3, 4, 8); /* [E][I][hidden] */
    add(&c, "model.layers.0.mlp.experts.down_proj_bias", 3, 8);
    add(&c, "model.norm.weight", 8, 0);
    add(&c, "lm_head.weight", 20, 8);
    struct llm_st *st;
    struct llm_plan_item *it = NULL;
    size_t n = plan_all("gpt-oss", dir, &c, &d, &st, &it, 18);
    const char *nm[5] = {"transformer.layers.0.mlp.fc.weight", "transformer.layers.0.mlp.gate.weight",
                         "transformer.layers.0.mlp.fc.bias", "transformer.layers.0.mlp.gate.bias",
                         "transformer.layers.0.mlp.proj.weight"};
    const struct llm_plan_item *x[5];
    for (int i = 0; i < 5; i++)
        x[i] = item(it, n, nm[i]);
    if (x[0] && x[1] && x[2] && x[3] && x[4]) {
        float *fc = build(x[0], st), *gt = build(x[1], st), *fb = build(x[2], st),
              *gb = build(x[3], st), *pr = build(x[4], st);
        const float *gu = src_of(&c, "model.layers.0.mlp.experts.gate_up_proj");
        const float *gub = src_of(&c, "model.layers.0.mlp.experts.gate_up_proj_bias");
        const float *dn = src_of(&c, "model.layers.0.mlp.experts.down_proj");
        int bad = 0;
        for (int e = 0; e < 3; e++)
            for (int j = 0; j < 4; j++) {
                for (int k = 0; k < 8; k++) { /* gate_up[e][k][2j] is gate, [2j + 1] up */
                    bad += fc[(e * 4 + j) * 8 + k] != gu[(e * 8 + k) * 8 + 2 * j];
                    bad += gt[(e * 4 + j) * 8 + k] != gu[(e * 8 + k) * 8 + 2 * j + 1];
                    bad += pr[(e * 8 + k) * 4 + j] != dn[(e * 4 + j) * 8 + k];
                }
                bad += fb[e * 4 + j] != gub[e * 8 + 2 * j] || gb[e * 4 + j] != gub[e * 8 + 2 * j + 1];
            }
        CHECK(bad == 0, "gpt-oss: gate_up's even columns -> mlp.fc, odd -> mlp.gate (biases "
                        "too), down_proj transposed per expert: %d wrong",
              bad);
        free(fc), free(gt), free(fb), free(gb), free(pr);
    }
    CHECK(d.attn_sinks && d.router_bias && d.mlp_bias && d.moe_norm_topk &&
              d.act == LLM_ACT_SWIGLU_OAI && d.rope.scaling == LLM_ROPE_SCALING_YARN &&
              d.rope.yarn_no_truncate && d.sliding_window == 128 && d.layer_window[0],
          "gpt-oss: sinks, router bias, expert biases, swiglu_oai, yarn without truncation, "
          "window 128 on layer 0");
    free(it);
    llm_st_close(st);
    ckpt_free(&c);
    llm_desc_free(&d);
    printf("ok gpt-oss: sinks, router bias, interleaved gate/up stacks and transposed down "
           "stacks\n");
}

static void test_stablelm(const char *dir)
{
    struct llm_model_desc d;
    CHECK_OK(parse_cfg("{\"architectures\": [\"StableLmForCausalLM\"], \"vocab_size\": 20, "
                       "\"hidden_size\": 16, \"intermediate_size\": 24, \"num_hidden_layers\": 1, "
                       "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, "
                       "\"qk_layernorm\": true, \"use_qkv_bias\": true}",
                       &d));
    struct ckpt c = {0};
    add(&c, "model.embed_tokens.weight", 20, 16);
    add(&c, "model.layers.0.input_layernorm.weight", 16, 0);
    add(&c, "model.layers.0.input_layernorm.bias", 16, 0);
    const char *qkv[3] = {"q", "k", "v"};
    for (int k = 0; k < 3; k++) {
        char b[128];
        snprintf(b, sizeof b, "model.layers.0.self_attn.%s_proj.weight", qkv[k]);
        add(&c, b, k ? 8 : 16, 16);
        snprintf(b, sizeof b, "model.layers.0.self_attn.%s_proj.bias", qkv[k]);
        add(&c, b, k ? 8 : 16, 0);
    }
    add(&c, "model.layers.0.self_attn.q_layernorm.norms.0.weight", 8, 0);
    add(&c, "model.layers.0.self_attn.q_layernorm.norms.1.weight", 8, 0);
    add(&c, "model.layers.0.self_attn.k_layernorm.norms.0.weight", 8, 0);
    add(&c, "model.layers.0.self_attn.o_proj.weight", 16, 16);
    add(&c, "model.layers.0.post_attention_layernorm.weight", 16, 0);
    add(&c, "model.layers.0.post_attention_layernorm.bias", 16, 0);
    add(&c, "model.layers.0.mlp.gate_proj.weight", 24, 16);
    add(&c, "model.layers.0.mlp.up_proj.weight", 24, 16);
    add(&c, "model.layers.0.mlp.down_proj.weight", 16, 24);
    add(&c, "model.norm.weight", 16, 0);
    add(&c, "model.norm.bias", 16, 0);
    add(&c, "lm_head.weight", 20, 16);
    struct llm_st *st;
    struct llm_plan_item *it = NULL;
    size_t n = plan_all("stablelm", dir, &c, &d, &st, &it, 16);
    const struct llm_plan_item *q = item(it, n, "transformer.layers.0.attention.q_layernorm.weight");
    CHECK(q && q->ndim == 2 && q->shape[0] == 2 && q->shape[1] == 8, "stablelm q norms [2, 8]");
    if (q) {
        float *a = build(q, st);
        CHECK(!memcmp(a, src_of(&c, "model.layers.0.self_attn.q_layernorm.norms.0.weight"), 32) &&
                  !memcmp(a + 8, src_of(&c, "model.layers.0.self_attn.q_layernorm.norms.1.weight"),
                          32),
              "stablelm: head h's LayerNorm is row h");
        free(a);
    }
    free(it);
    llm_st_close(st);
    ckpt_free(&c);
    llm_desc_free(&d);
    printf("ok stablelm: per-head q/k LayerNorms stacked, q/k/v biases\n");
}

/* ---- GPT-BigCode: one fused c_attn, per head [q, k, v] or MQA's q; k; v --------- */

static void test_bigcode(const char *dir)
{
    for (int mq = 1; mq >= 0; mq--) {
        struct llm_model_desc d;
        char cfg[512];
        snprintf(cfg, sizeof cfg,
                 "{\"architectures\": [\"GPTBigCodeForCausalLM\"], \"vocab_size\": 20, "
                 "\"n_embd\": 8, \"n_layer\": 1, \"n_head\": 2, \"n_positions\": 16, "
                 "\"n_inner\": 32, \"multi_query\": %s}",
                 mq ? "true" : "false");
        CHECK_OK(parse_cfg(cfg, &d));
        int kv = mq ? 1 : 2, rows = 8 + 2 * 4 * kv;
        CHECK(d.n_kv_heads == kv && d.head_dim == 4 && d.pos == LLM_POS_LEARNED &&
                  d.tied_embeddings && d.qkv_bias && d.mlp_bias,
              "gpt-bigcode multi_query %d: %d kv heads, learned positions, tied, biases", mq,
              d.n_kv_heads);
        struct ckpt c = {0};
        add(&c, "transformer.wte.weight", 20, 8);
        add(&c, "transformer.wpe.weight", 16, 8);
        add(&c, "transformer.h.0.ln_1.weight", 8, 0);
        add(&c, "transformer.h.0.ln_1.bias", 8, 0);
        add(&c, "transformer.h.0.attn.c_attn.weight", rows, 8);
        add(&c, "transformer.h.0.attn.c_attn.bias", rows, 0);
        add(&c, "transformer.h.0.attn.c_proj.weight", 8, 8);
        add(&c, "transformer.h.0.attn.c_proj.bias", 8, 0);
        add(&c, "transformer.h.0.ln_2.weight", 8, 0);
        add(&c, "transformer.h.0.ln_2.bias", 8, 0);
        add(&c, "transformer.h.0.mlp.c_fc.weight", 32, 8);
        add(&c, "transformer.h.0.mlp.c_fc.bias", 32, 0);
        add(&c, "transformer.h.0.mlp.c_proj.weight", 8, 32);
        add(&c, "transformer.h.0.mlp.c_proj.bias", 8, 0);
        add(&c, "transformer.ln_f.weight", 8, 0);
        add(&c, "transformer.ln_f.bias", 8, 0);
        struct llm_st *st;
        struct llm_plan_item *it = NULL;
        size_t n = plan_all(mq ? "gpt-bigcode" : "gpt-bigcode mha", dir, &c, &d, &st, &it,
                            2 + 12 + 2);
        const struct llm_plan_item *w = item(it, n, "transformer.layers.0.attention.qkv.weight");
        const struct llm_plan_item *b = item(it, n, "transformer.layers.0.attention.qkv.bias");
        CHECK(w && b && w->shape[0] == rows && w->shape[1] == 8, "gpt-bigcode qkv [%d, 8]", rows);
        if (w && b) {
            float *a = build(w, st), *ab = build(b, st);
            const float *sw = src_of(&c, "transformer.h.0.attn.c_attn.weight");
            const float *sb = src_of(&c, "transformer.h.0.attn.c_attn.bias");
            /* MQA: rows already q (2 heads); k; v.  MHA: per head [q, k, v]. */
            int bad = mq ? memcmp(a, sw, sizeof(float) * (size_t)rows * 8) != 0 ||
                               memcmp(ab, sb, sizeof(float) * (size_t)rows) != 0
                         : check_regroup(a, sw, 2, 2, 4, 8) + check_regroup(ab, sb, 2, 2, 4, 1);
            CHECK(!bad, "gpt-bigcode multi_query %d: c_attn rows -> q; k; v", mq);
            free(a);
            free(ab);
        }
        free(it);
        llm_st_close(st);
        ckpt_free(&c);
        llm_desc_free(&d);
    }
    printf("ok gpt-bigcode: fused c_attn for MQA and per head for MHA\n");
}

/* ---- the remaining families: names only (their transforms are the above) ------- */

static void test_phi(const char *dir)
{
    struct llm_model_desc d;
    CHECK_OK(parse_cfg("{\"architectures\": [\"PhiForCausalLM\"], \"vocab_size\": 20, "
                       "\"hidden_size\": 16, \"intermediate_size\": 32, "
                       "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, "
                       "\"partial_rotary_factor\": 0.5, \"rope_theta\": 10000.0}",
                       &d));
    CHECK(d.parallel_residual && d.shared_input_norm && d.lm_head_bias && d.rope.rot_dims == 4 &&
              d.rope.neox && !d.gated_mlp && d.n_kv_heads == 2,
          "phi: parallel from one norm, lm_head bias, rotate-half on 4 of 8 dims");
    struct ckpt c = {0};
    add(&c, "model.embed_tokens.weight", 20, 16);
    add(&c, "model.layers.0.input_layernorm.weight", 16, 0);
    add(&c, "model.layers.0.input_layernorm.bias", 16, 0);
    const char *qkv[4] = {"q_proj", "k_proj", "v_proj", "dense"};
    for (int k = 0; k < 4; k++) {
        char b[128];
        snprintf(b, sizeof b, "model.layers.0.self_attn.%s.weight", qkv[k]);
        add(&c, b, 16, 16);
        snprintf(b, sizeof b, "model.layers.0.self_attn.%s.bias", qkv[k]);
        add(&c, b, 16, 0);
    }
    add(&c, "model.layers.0.mlp.fc1.weight", 32, 16);
    add(&c, "model.layers.0.mlp.fc1.bias", 32, 0);
    add(&c, "model.layers.0.mlp.fc2.weight", 16, 32);
    add(&c, "model.layers.0.mlp.fc2.bias", 16, 0);
    add(&c, "model.final_layernorm.weight", 16, 0);
    add(&c, "model.final_layernorm.bias", 16, 0);
    add(&c, "lm_head.weight", 20, 16);
    add(&c, "lm_head.bias", 20, 0);
    struct llm_st *st;
    struct llm_plan_item *it = NULL;
    size_t n = plan_all("phi", dir, &c, &d, &st, &it, 1 + 10 + 4);
    const struct llm_plan_item *b = item(it, n, "transformer.layers.0.attention.qkv.bias");
    if (b) {
        float *a = build(b, st);
        CHECK(!memcmp(a, src_of(&c, "model.layers.0.self_attn.q_proj.bias"), 64) &&
                  !memcmp(a + 16, src_of(&c, "model.layers.0.self_attn.k_proj.bias"), 64) &&
                  !memcmp(a + 32, src_of(&c, "model.layers.0.self_attn.v_proj.bias"), 64),
              "phi: q, k, v biases concatenated");
        free(a);
    }
    CHECK(b != NULL, "phi: qkv bias planned");
    free(it);
    llm_st_close(st);
    ckpt_free(&c);
    llm_desc_free(&d);
    struct llm_model_desc e;
    int rc = parse_cfg("{\"architectures\": [\"PhiForCausalLM\"], \"vocab_size\": 20, "
                       "\"hidden_size\": 16, \"intermediate_size\": 32, "
                       "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, "
                       "\"qk_layernorm\": true}",
                       &e);
    CHECK(rc == LLM_EUNSUPPORTED && strstr(llm_errmsg(), "qk_layernorm"),
          "phi: qk_layernorm refused (%s)", llm_errmsg());
    if (!rc) llm_desc_free(&e);
    llm_err_clear();
    printf("ok phi: names, parallel block, q/k/v biases, qk_layernorm refused\n");
}

static void test_names(const char *dir)
{
    /* BLOOM, published without "transformer.": embedding LayerNorm, per-head qkv */
    struct llm_model_desc d;
    CHECK_OK(parse_cfg("{\"architectures\": [\"BloomForCausalLM\"], \"vocab_size\": 20, "
                       "\"hidden_size\": 8, \"n_layer\": 1, \"n_head\": 2}",
                       &d));
    struct ckpt c = {0};
    add(&c, "word_embeddings.weight", 20, 8);
    add(&c, "word_embeddings_layernorm.weight", 8, 0);
    add(&c, "word_embeddings_layernorm.bias", 8, 0);
    const char *ln[2] = {"input_layernorm", "post_attention_layernorm"};
    for (int k = 0; k < 2; k++) {
        char b[128];
        snprintf(b, sizeof b, "h.0.%s.weight", ln[k]);
        add(&c, b, 8, 0);
        snprintf(b, sizeof b, "h.0.%s.bias", ln[k]);
        add(&c, b, 8, 0);
    }
    add(&c, "h.0.self_attention.query_key_value.weight", 24, 8);
    add(&c, "h.0.self_attention.query_key_value.bias", 24, 0);
    add(&c, "h.0.self_attention.dense.weight", 8, 8);
    add(&c, "h.0.self_attention.dense.bias", 8, 0);
    add(&c, "h.0.mlp.dense_h_to_4h.weight", 32, 8);
    add(&c, "h.0.mlp.dense_h_to_4h.bias", 32, 0);
    add(&c, "h.0.mlp.dense_4h_to_h.weight", 8, 32);
    add(&c, "h.0.mlp.dense_4h_to_h.bias", 8, 0);
    add(&c, "ln_f.weight", 8, 0);
    add(&c, "ln_f.bias", 8, 0);
    struct llm_st *st;
    struct llm_plan_item *it = NULL;
    plan_all("bloom", dir, &c, &d, &st, &it, 3 + 12 + 2);
    free(it);
    llm_st_close(st);
    ckpt_free(&c);
    llm_desc_free(&d);

    /* OPT-350m's shape: narrower embeddings with project_in/out, post-LN, no final norm */
    CHECK_OK(parse_cfg("{\"architectures\": [\"OPTForCausalLM\"], \"vocab_size\": 20, "
                       "\"hidden_size\": 16, \"ffn_dim\": 32, \"num_hidden_layers\": 1, "
                       "\"num_attention_heads\": 2, \"max_position_embeddings\": 10, "
                       "\"word_embed_proj_dim\": 8, \"do_layer_norm_before\": false}",
                       &d));
    CHECK(d.norm_after && !d.final_norm && d.embed_dim == 8 && d.pos_offset == 2,
          "opt-350m: post-LN, no final norm, project 8 <-> 16, positions at offset 2");
    add(&c, "model.decoder.embed_tokens.weight", 20, 8);
    add(&c, "model.decoder.embed_positions.weight", 12, 16);
    add(&c, "model.decoder.project_in.weight", 16, 8);
    add(&c, "model.decoder.project_out.weight", 8, 16);
    const char *opt_ln[2] = {"self_attn_layer_norm", "final_layer_norm"};
    for (int k = 0; k < 2; k++) {
        char b[128];
        snprintf(b, sizeof b, "model.decoder.layers.0.%s.weight", opt_ln[k]);
        add(&c, b, 16, 0);
        snprintf(b, sizeof b, "model.decoder.layers.0.%s.bias", opt_ln[k]);
        add(&c, b, 16, 0);
    }
    const char *qkv[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    for (int k = 0; k < 4; k++) {
        char b[128];
        snprintf(b, sizeof b, "model.decoder.layers.0.self_attn.%s.weight", qkv[k]);
        add(&c, b, 16, 16);
        snprintf(b, sizeof b, "model.decoder.layers.0.self_attn.%s.bias", qkv[k]);
        add(&c, b, 16, 0);
    }
    add(&c, "model.decoder.layers.0.fc1.weight", 32, 16);
    add(&c, "model.decoder.layers.0.fc1.bias", 32, 0);
    add(&c, "model.decoder.layers.0.fc2.weight", 16, 32);
    add(&c, "model.decoder.layers.0.fc2.bias", 16, 0);
    add(&c, "lm_head.weight", 20, 8); /* tied: saved anyway */
    plan_all("opt-350m", dir, &c, &d, &st, &it, 4 + 12);
    free(it);
    llm_st_close(st);
    ckpt_free(&c);
    llm_desc_free(&d);

    /* Gemma 2: norms around both sub-blocks */
    CHECK_OK(parse_cfg("{\"architectures\": [\"Gemma2ForCausalLM\"], \"vocab_size\": 20, "
                       "\"hidden_size\": 8, \"intermediate_size\": 12, \"num_hidden_layers\": 2, "
                       "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 4}",
                       &d));
    CHECK(d.sandwich_norm && d.final_softcap == 30 && d.attn_softcap == 50 && d.layer_window[0] &&
              !d.layer_window[1] && d.norm_offset == 1,
          "gemma2: sandwich norms, soft caps 50/30, window on even layers, 1 + w norms");
    add(&c, "model.embed_tokens.weight", 20, 8);
    const char *g2[4] = {"input_layernorm", "post_attention_layernorm",
                         "pre_feedforward_layernorm", "post_feedforward_layernorm"};
    for (int k = 0; k < 4; k++) {
        char b[128];
        snprintf(b, sizeof b, "model.layers.%%d.%s.weight", g2[k]);
        addl(&c, 2, b, 8, 0);
    }
    addl(&c, 2, "model.layers.%d.self_attn.q_proj.weight", 8, 8);
    addl(&c, 2, "model.layers.%d.self_attn.k_proj.weight", 4, 8);
    addl(&c, 2, "model.layers.%d.self_attn.v_proj.weight", 4, 8);
    addl(&c, 2, "model.layers.%d.self_attn.o_proj.weight", 8, 8);
    addl(&c, 2, "model.layers.%d.mlp.gate_proj.weight", 12, 8);
    addl(&c, 2, "model.layers.%d.mlp.up_proj.weight", 12, 8);
    addl(&c, 2, "model.layers.%d.mlp.down_proj.weight", 8, 12);
    add(&c, "model.norm.weight", 8, 0);
    plan_all("gemma2", dir, &c, &d, &st, &it, 1 + 2 * 9 + 1);
    free(it);
    llm_st_close(st);
    ckpt_free(&c);
    llm_desc_free(&d);

    /* Gemma 3 (text): Gemma 2's names plus q_norm and k_norm; every 6th layer global */
    CHECK_OK(parse_cfg("{\"architectures\": [\"Gemma3ForCausalLM\"], \"vocab_size\": 20, "
                       "\"hidden_size\": 8, \"intermediate_size\": 12, \"num_hidden_layers\": 7, "
                       "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 4, "
                       "\"sliding_window\": 16, \"rope_local_base_freq\": 10000.0, "
                       "\"rope_theta\": 1000000.0}",
                       &d));
    int pattern_ok = 1;
    for (int i = 0; i < 7; i++)
        pattern_ok &= d.layer_window[i] == (i != 5) && d.layer_local_rope[i] == (i != 5);
    CHECK(pattern_ok && d.rope_local_theta == 10000 && d.rope.theta == 1e6 &&
              d.qk_norm == LLM_QK_NORM_RMS && d.attn_softcap == 0 && d.final_softcap == 0,
          "gemma3: layer 5 global, the rest sliding with base 1e4; q/k norms; no soft caps");
    for (int k = 0; k < 4; k++) {
        char b[128];
        snprintf(b, sizeof b, "model.layers.%%d.%s.weight", g2[k]);
        addl(&c, 7, b, 8, 0);
    }
    add(&c, "model.embed_tokens.weight", 20, 8);
    addl(&c, 7, "model.layers.%d.self_attn.q_proj.weight", 8, 8);
    addl(&c, 7, "model.layers.%d.self_attn.k_proj.weight", 4, 8);
    addl(&c, 7, "model.layers.%d.self_attn.v_proj.weight", 4, 8);
    addl(&c, 7, "model.layers.%d.self_attn.q_norm.weight", 4, 0);
    addl(&c, 7, "model.layers.%d.self_attn.k_norm.weight", 4, 0);
    addl(&c, 7, "model.layers.%d.self_attn.o_proj.weight", 8, 8);
    addl(&c, 7, "model.layers.%d.mlp.gate_proj.weight", 12, 8);
    addl(&c, 7, "model.layers.%d.mlp.up_proj.weight", 12, 8);
    addl(&c, 7, "model.layers.%d.mlp.down_proj.weight", 8, 12);
    add(&c, "model.norm.weight", 8, 0);
    plan_all("gemma3", dir, &c, &d, &st, &it, 1 + 7 * 11 + 1);
    free(it);
    llm_st_close(st);
    ckpt_free(&c);
    llm_desc_free(&d);

    /* Gemma 3 multimodal: text_config leaves sizes to Gemma3TextConfig; the language
     * model under model.language_model. (transformers 5's layout), a vision tower beside */
    CHECK_OK(parse_cfg("{\"architectures\": [\"Gemma3ForConditionalGeneration\"], "
                       "\"model_type\": \"gemma3\", \"eos_token_id\": [1, 106], "
                       "\"text_config\": {\"hidden_size\": 8, \"intermediate_size\": 12, "
                       "\"num_hidden_layers\": 2, \"head_dim\": 4, \"sliding_window\": 4}, "
                       "\"vision_config\": {\"hidden_size\": 16}}",
                       &d));
    CHECK(d.vocab_size == 262208 && d.n_heads == 8 && d.n_kv_heads == 4 && d.tied_embeddings &&
              d.layer_local_rope[0] && d.layer_local_rope[1] && d.n_eos == 2,
          "gemma3 multimodal: vocab %lld and 8/4 heads from the class, tied, eos [1, 106]",
          (long long)d.vocab_size);
    llm_desc_free(&d);
    CHECK_OK(parse_cfg("{\"architectures\": [\"Gemma3ForConditionalGeneration\"], "
                       "\"model_type\": \"gemma3\", \"text_config\": {\"vocab_size\": 20, "
                       "\"hidden_size\": 8, \"intermediate_size\": 12, \"num_hidden_layers\": 2, "
                       "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 4}}",
                       &d));
    add(&c, "model.language_model.embed_tokens.weight", 20, 8);
    for (int k = 0; k < 4; k++) {
        char b[128];
        snprintf(b, sizeof b, "model.language_model.layers.%%d.%s.weight", g2[k]);
        addl(&c, 2, b, 8, 0);
    }
    addl(&c, 2, "model.language_model.layers.%d.self_attn.q_proj.weight", 8, 8);
    addl(&c, 2, "model.language_model.layers.%d.self_attn.k_proj.weight", 4, 8);
    addl(&c, 2, "model.language_model.layers.%d.self_attn.v_proj.weight", 4, 8);
    addl(&c, 2, "model.language_model.layers.%d.self_attn.q_norm.weight", 4, 0);
    addl(&c, 2, "model.language_model.layers.%d.self_attn.k_norm.weight", 4, 0);
    addl(&c, 2, "model.language_model.layers.%d.self_attn.o_proj.weight", 8, 8);
    addl(&c, 2, "model.language_model.layers.%d.mlp.gate_proj.weight", 12, 8);
    addl(&c, 2, "model.language_model.layers.%d.mlp.up_proj.weight", 12, 8);
    addl(&c, 2, "model.language_model.layers.%d.mlp.down_proj.weight", 8, 12);
    add(&c, "model.language_model.norm.weight", 8, 0);
    add(&c, "model.vision_tower.vision_model.embeddings.patch_embedding.weight", 16, 8);
    add(&c, "model.multi_modal_projector.mm_input_projection_weight", 16, 8);
    add(&c, "lm_head.weight", 20, 8); /* tied: the copy some savers write */
    size_t nm = plan_all("gemma3 multimodal", dir, &c, &d, &st, &it, 1 + 2 * 11 + 1);
    const struct llm_plan_item *e = item(it, nm, "transformer.vocab_embedding.weight");
    if (e) {
        float *a = build(e, st);
        CHECK(!memcmp(a, src_of(&c, "model.language_model.embed_tokens.weight"), 20 * 8 * 4),
              "gemma3 multimodal: the embeddings from model.language_model.");
        free(a);
    }
    CHECK(e != NULL, "gemma3 multimodal: embeddings planned");
    free(it);
    llm_st_close(st);
    ckpt_free(&c);
    llm_desc_free(&d);
    /* GLM-4-0414: fused gate_up (gate first), four norms, q/k/v biases */
    CHECK_OK(parse_cfg("{\"architectures\": [\"Glm4ForCausalLM\"], \"vocab_size\": 20, "
                       "\"hidden_size\": 8, \"intermediate_size\": 12, \"num_hidden_layers\": 1, "
                       "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 4, "
                       "\"partial_rotary_factor\": 0.5}",
                       &d));
    CHECK(d.sandwich_norm && !d.rope.neox && d.rope.rot_dims == 2 && d.qkv_bias && !d.o_bias &&
              d.norm_offset == 0,
          "glm4: sandwich norms, interleaved rotary on 2 of 4 dims, q/k/v biases");
    add(&c, "model.embed_tokens.weight", 20, 8);
    const char *g4[4] = {"input_layernorm", "post_self_attn_layernorm",
                         "post_attention_layernorm", "post_mlp_layernorm"};
    for (int k = 0; k < 4; k++) {
        char b[128];
        snprintf(b, sizeof b, "model.layers.0.%s.weight", g4[k]);
        add(&c, b, 8, 0);
    }
    add(&c, "model.layers.0.self_attn.q_proj.weight", 8, 8);
    add(&c, "model.layers.0.self_attn.q_proj.bias", 8, 0);
    add(&c, "model.layers.0.self_attn.k_proj.weight", 4, 8);
    add(&c, "model.layers.0.self_attn.k_proj.bias", 4, 0);
    add(&c, "model.layers.0.self_attn.v_proj.weight", 4, 8);
    add(&c, "model.layers.0.self_attn.v_proj.bias", 4, 0);
    add(&c, "model.layers.0.self_attn.o_proj.weight", 8, 8);
    add(&c, "model.layers.0.mlp.gate_up_proj.weight", 24, 8);
    add(&c, "model.layers.0.mlp.down_proj.weight", 8, 12);
    add(&c, "model.norm.weight", 8, 0);
    add(&c, "lm_head.weight", 20, 8);
    size_t ng = plan_all("glm4", dir, &c, &d, &st, &it, 1 + 10 + 2);
    const struct llm_plan_item *fc = item(it, ng, "transformer.layers.0.mlp.fc.weight");
    const struct llm_plan_item *up = item(it, ng, "transformer.layers.0.mlp.gate.weight");
    if (fc && up) {
        float *a = build(fc, st), *b = build(up, st);
        const float *src = src_of(&c, "model.layers.0.mlp.gate_up_proj.weight");
        CHECK(!memcmp(a, src, 12 * 8 * 4) && !memcmp(b, src + 12 * 8, 12 * 8 * 4),
              "glm4: gate_up rows 0..11 are the gate (fc), 12..23 the up projection");
        free(a);
        free(b);
    }
    CHECK(fc && up, "glm4: fc and gate planned");
    free(it);
    llm_st_close(st);
    ckpt_free(&c);
    llm_desc_free(&d);

    /* SmolLM3: without no_rope_layers every 4th layer goes without rotary */
    CHECK_OK(parse_cfg("{\"architectures\": [\"SmolLM3ForCausalLM\"], \"vocab_size\": 20, "
                       "\"hidden_size\": 8, \"intermediate_size\": 12, \"num_hidden_layers\": 8, "
                       "\"num_attention_heads\": 2, \"num_key_value_heads\": 1}",
                       &d));
    int nope_ok = 1;
    for (int i = 0; i < 8; i++)
        nope_ok &= d.layer_no_rope[i] == (i == 3 || i == 7);
    CHECK(nope_ok && d.sliding_window == 0 && d.tied_embeddings,
          "smollm3: layers 3 and 7 without rotary, no window, tied");
    llm_desc_free(&d);
    /* use_sliding_window without layer_types: transformers slides the layers without rotary */
    CHECK_OK(parse_cfg("{\"architectures\": [\"SmolLM3ForCausalLM\"], \"vocab_size\": 20, "
                       "\"hidden_size\": 8, \"intermediate_size\": 12, \"num_hidden_layers\": 8, "
                       "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, "
                       "\"use_sliding_window\": true, \"sliding_window\": 16}",
                       &d));
    int slide_ok = d.sliding_window == 16;
    for (int i = 0; i < 8; i++)
        slide_ok &= d.layer_window[i] == (i == 3 || i == 7);
    CHECK(slide_ok, "smollm3: window 16 on layers 3 and 7 (the ones without rotary)");
    llm_desc_free(&d);
    CHECK(parse_cfg("{\"architectures\": [\"SmolLM3ForCausalLM\"], \"vocab_size\": 20, "
                    "\"hidden_size\": 8, \"intermediate_size\": 12, \"num_hidden_layers\": 2, "
                    "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, "
                    "\"no_rope_layers\": [1, 2]}",
                    &d) == LLM_EFORMAT &&
              strstr(llm_errmsg(), "no_rope_layers' entry 1"),
          "smollm3: a flag other than 0 or 1 refused: %s", llm_errmsg());
    llm_err_clear();

    /* Command R+: per-head q/k LayerNorm weights as one [heads, head_dim] tensor */
    CHECK_OK(parse_cfg("{\"architectures\": [\"CohereForCausalLM\"], \"vocab_size\": 20, "
                       "\"hidden_size\": 8, \"intermediate_size\": 12, \"num_hidden_layers\": 1, "
                       "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, "
                       "\"use_qk_norm\": true, \"logit_scale\": 0.125}",
                       &d));
    CHECK(d.parallel_residual && d.shared_input_norm && d.norm == LLM_NORM_LAYER &&
              !d.norm_bias && !d.rope.neox && d.qk_norm == LLM_QK_NORM_LAYER &&
              d.logit_scale == 0.125 && d.tied_embeddings,
          "cohere: parallel, bias-free LayerNorm, interleaved rotary, q/k norms, logits x 0.125");
    add(&c, "model.embed_tokens.weight", 20, 8);
    add(&c, "model.layers.0.input_layernorm.weight", 8, 0);
    add(&c, "model.layers.0.self_attn.q_proj.weight", 8, 8);
    add(&c, "model.layers.0.self_attn.k_proj.weight", 4, 8);
    add(&c, "model.layers.0.self_attn.v_proj.weight", 4, 8);
    add(&c, "model.layers.0.self_attn.q_norm.weight", 2, 4);
    add(&c, "model.layers.0.self_attn.k_norm.weight", 1, 4);
    add(&c, "model.layers.0.self_attn.o_proj.weight", 8, 8);
    add(&c, "model.layers.0.mlp.gate_proj.weight", 12, 8);
    add(&c, "model.layers.0.mlp.up_proj.weight", 12, 8);
    add(&c, "model.layers.0.mlp.down_proj.weight", 8, 12);
    add(&c, "model.norm.weight", 8, 0);
    size_t nc = plan_all("cohere", dir, &c, &d, &st, &it, 1 + 8 + 1);
    const struct llm_plan_item *qn =
        item(it, nc, "transformer.layers.0.attention.q_layernorm.weight");
    CHECK(qn && qn->ndim == 2 && qn->shape[0] == 2 && qn->shape[1] == 4,
          "cohere: q norm [2, 4], one row a head");
    free(it);
    llm_st_close(st);
    ckpt_free(&c);
    llm_desc_free(&d);
    /* Command R7B: every 4th layer global, and only the sliding ones rotate */
    CHECK_OK(parse_cfg("{\"architectures\": [\"Cohere2ForCausalLM\"], \"vocab_size\": 20, "
                       "\"hidden_size\": 8, \"intermediate_size\": 12, \"num_hidden_layers\": 8, "
                       "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, "
                       "\"sliding_window\": 16, \"sliding_window_pattern\": 4}",
                       &d));
    int c2_ok = d.sliding_window == 16;
    for (int i = 0; i < 8; i++)
        c2_ok &= d.layer_window[i] == (i % 4 != 3) && d.layer_no_rope[i] == (i % 4 == 3);
    CHECK(c2_ok && d.logit_scale == 0.0625,
          "cohere2: layers 3 and 7 global without rotary, the rest sliding with it");
    llm_desc_free(&d);

    /* Mistral 3 (Mistral Small 3.1): text_config's untied lm_head wins over the outer
     * class default; transformers 5's layout (model.language_model., lm_head.) */
    CHECK_OK(parse_cfg("{\"architectures\": [\"Mistral3ForConditionalGeneration\"], "
                       "\"model_type\": \"mistral3\", \"text_config\": {\"vocab_size\": 20, "
                       "\"hidden_size\": 8, \"intermediate_size\": 12, \"num_hidden_layers\": 1, "
                       "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 4, "
                       "\"sliding_window\": null}, \"vision_config\": {\"hidden_size\": 16}}",
                       &d));
    CHECK(!d.tied_embeddings && d.sliding_window == 0 && d.n_kv_heads == 1,
          "mistral3: untied, no window, text_config's sizes");
    add(&c, "model.language_model.embed_tokens.weight", 20, 8);
    add(&c, "model.language_model.layers.0.input_layernorm.weight", 8, 0);
    add(&c, "model.language_model.layers.0.post_attention_layernorm.weight", 8, 0);
    add(&c, "model.language_model.layers.0.self_attn.q_proj.weight", 8, 8);
    add(&c, "model.language_model.layers.0.self_attn.k_proj.weight", 4, 8);
    add(&c, "model.language_model.layers.0.self_attn.v_proj.weight", 4, 8);
    add(&c, "model.language_model.layers.0.self_attn.o_proj.weight", 8, 8);
    add(&c, "model.language_model.layers.0.mlp.gate_proj.weight", 12, 8);
    add(&c, "model.language_model.layers.0.mlp.up_proj.weight", 12, 8);
    add(&c, "model.language_model.layers.0.mlp.down_proj.weight", 8, 12);
    add(&c, "model.language_model.norm.weight", 8, 0);
    add(&c, "lm_head.weight", 20, 8);
    add(&c, "model.vision_tower.transformer.layers.0.attention.q_proj.weight", 16, 16);
    add(&c, "model.multi_modal_projector.linear_1.weight", 8, 16);
    plan_all("mistral3", dir, &c, &d, &st, &it, 1 + 7 + 2);
    free(it);
    llm_st_close(st);
    ckpt_free(&c);
    llm_desc_free(&d);

    struct llm_model_desc bad;
    CHECK(parse_cfg("{\"architectures\": [\"Gemma3ForConditionalGeneration\"], "
                    "\"model_type\": \"gemma3\"}",
                    &bad) == LLM_EFORMAT &&
              strstr(llm_errmsg(), "text_config"),
          "gemma3 multimodal without text_config: %s", llm_errmsg());
    llm_err_clear();
    printf("ok bloom, opt-350m, gemma2, gemma3: every published tensor has its canonical place\n");
}

int main(void)
{
    llm_log_set_level(LLM_LOG_WARN);
    char *dir = t_mkdtemp();
    test_gpt2(dir);
    test_neox(dir);
    test_falcon(dir);
    test_phi3(dir);
    test_mixtral(dir);
    test_granitemoe(dir);
    test_gptoss(dir);
    test_stablelm(dir);
    test_bigcode(dir);
    test_phi(dir);
    test_names(dir);
    t_rmtree(dir);
    return t_report("test-xform");
}
