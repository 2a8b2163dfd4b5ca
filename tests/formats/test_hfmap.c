/* test_hfmap.c - the HF -> canonical conversion plan on tiny synthetic
 * Llama, Qwen2 and Mistral checkpoints written with llm_st_write: every
 * item's sources and shape, the order (by first source in the files), tied
 * embeddings, biases, shards, the warnings about unused tensors, and each
 * error (missing tensor, wrong shape, mixed dtypes, unsupported arch). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/log.h"
#include "llm/hf.h"
#include "llm/model.h"
#include "llm/safetensors.h"
#include "tcheck.h"

/* ---- a checkpoint under construction ----------------------------------------- */

#define MAXT 64
struct ckpt {
    struct llm_tensor t[MAXT];
    char names[MAXT][96];
    void *data[MAXT];
    size_t n;
};

static void add(struct ckpt *c, const char *name, int dt, int64_t d0, int64_t d1)
{
    struct llm_tensor *t = &c->t[c->n];
    memset(t, 0, sizeof(*t));
    snprintf(c->names[c->n], sizeof(c->names[0]), "%s", name);
    t->name = c->names[c->n];
    t->dtype = dt;
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    uint64_t n = (uint64_t)d0 * (uint64_t)(d1 ? d1 : 1), nb;
    llm_dtype_nbytes(dt, n, &nb);
    unsigned char *p = malloc(nb ? nb : 1);
    for (uint64_t i = 0; i < nb; i++)
        p[i] = (unsigned char)(c->n * 31 + i);
    t->data = p;
    t->nbytes = nb;
    c->data[c->n++] = p;
}

static void ckpt_free(struct ckpt *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->data[i]);
    c->n = 0;
}

static int find(const struct ckpt *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->names[i], name)) return (int)i;
    return -1;
}

/* A tiny Llama-layout model: hidden 8, 2 heads of 4, 1 KV head, MLP 12,
 * vocabulary 16, 2 layers.  Written lm_head first and layers last to
 * first, so that the file order differs from the canonical order. */
static void llama_tensors(struct ckpt *c, int tied, int qkv_bias, int o_bias, int mlp_bias, int dt)
{
    add(c, "lm_head.weight", dt, 16, 8);
    for (int l = 1; l >= 0; l--) {
        char b[96];
#define L(suffix, d0, d1)                                                                          \
    do {                                                                                           \
        snprintf(b, sizeof(b), "model.layers.%d.%s", l, suffix);                                   \
        add(c, b, dt, d0, d1);                                                                     \
    } while (0)
        L("mlp.down_proj.weight", 8, 12);
        L("mlp.up_proj.weight", 12, 8);
        L("mlp.gate_proj.weight", 12, 8);
        if (mlp_bias) {
            L("mlp.down_proj.bias", 8, 0);
            L("mlp.up_proj.bias", 12, 0);
            L("mlp.gate_proj.bias", 12, 0);
        }
        L("post_attention_layernorm.weight", 8, 0);
        L("self_attn.o_proj.weight", 8, 8);
        if (o_bias) L("self_attn.o_proj.bias", 8, 0);
        L("self_attn.v_proj.weight", 4, 8);
        L("self_attn.k_proj.weight", 4, 8);
        L("self_attn.q_proj.weight", 8, 8);
        if (qkv_bias) {
            L("self_attn.v_proj.bias", 4, 0);
            L("self_attn.k_proj.bias", 4, 0);
            L("self_attn.q_proj.bias", 8, 0);
        }
        L("input_layernorm.weight", 8, 0);
#undef L
    }
    add(c, "model.norm.weight", dt, 8, 0);
    add(c, "model.embed_tokens.weight", dt, 16, 8);
    (void)tied;
}

static int desc_of(const char *arch, int tied, const char *extra, struct llm_model_desc *d)
{
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "{\"architectures\": [\"%s\"], \"vocab_size\": 16, \"hidden_size\": 8, "
             "\"intermediate_size\": 12, \"num_hidden_layers\": 2, \"num_attention_heads\": 2, "
             "\"num_key_value_heads\": 1, \"tie_word_embeddings\": %s%s}",
             arch, tied ? "true" : "false", extra ? extra : "");
    json_error_t je;
    json_t *j = json_loads(cfg, 0, &je);
    int rc = llm_hfconfig_parse(j, NULL, "t/config.json", d, NULL);
    json_decref(j);
    CHECK(rc == 0, "config for %s: %s", arch, llm_errmsg());
    return rc;
}

/* Captures what the library logs to stderr while planning. */
struct capture {
    int saved;
    char path[4200];
};

static void cap_start(struct capture *cp, const char *dir)
{
    fflush(stderr);
    snprintf(cp->path, sizeof(cp->path), "%s/stderr.txt", dir);
    int fd = open(cp->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cp->saved = dup(2);
    dup2(fd, 2);
    close(fd);
}

static char *cap_end(struct capture *cp)
{
    fflush(stderr);
    dup2(cp->saved, 2);
    close(cp->saved);
    size_t len;
    unsigned char *b = t_slurp(cp->path, &len);
    char *s = realloc(b, len + 1);
    s[len] = 0;
    remove(cp->path);
    return s;
}

/* Plans d over the checkpoint c written to dir/model.safetensors. */
static int plan(const char *dir, const struct ckpt *c, const struct llm_model_desc *d,
                struct llm_st **st, struct llm_plan_item **items, size_t *n, char **log)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    if (llm_st_write(path, c->t, c->n, NULL) || llm_st_open(st, path)) {
        fprintf(stderr, "fixture: %s\n", llm_errmsg());
        exit(1);
    }
    struct capture cp;
    cap_start(&cp, dir);
    llm_err_clear();
    int rc = llm_hfmap_plan(d, *st, items, n);
    char *l = cap_end(&cp);
    if (log)
        *log = l;
    else
        free(l);
    return rc;
}

/* The HF names each canonical tensor of the Llama layout comes from. */
static int expected_sources(const char *canon, char src[3][96])
{
    int layer;
    char suffix[96];
    if (!strcmp(canon, "transformer.vocab_embedding.weight")) {
        strcpy(src[0], "model.embed_tokens.weight");
        return 1;
    }
    if (!strcmp(canon, "transformer.ln_f.weight")) {
        strcpy(src[0], "model.norm.weight");
        return 1;
    }
    if (!strcmp(canon, "lm_head.weight")) {
        strcpy(src[0], "lm_head.weight");
        return 1;
    }
    if (sscanf(canon, "transformer.layers.%d.%95s", &layer, suffix) != 2) return 0;
    static const struct {
        const char *canon, *hf;
    } one[] = {
        {"input_layernorm.weight", "input_layernorm.weight"},
        {"post_layernorm.weight", "post_attention_layernorm.weight"},
        {"attention.dense.weight", "self_attn.o_proj.weight"},
        {"attention.dense.bias", "self_attn.o_proj.bias"},
        {"mlp.fc.weight", "mlp.gate_proj.weight"},
        {"mlp.fc.bias", "mlp.gate_proj.bias"},
        {"mlp.gate.weight", "mlp.up_proj.weight"},
        {"mlp.gate.bias", "mlp.up_proj.bias"},
        {"mlp.proj.weight", "mlp.down_proj.weight"},
        {"mlp.proj.bias", "mlp.down_proj.bias"},
    };
    for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++)
        if (!strcmp(suffix, one[i].canon)) {
            snprintf(src[0], 96, "model.layers.%d.%s", layer, one[i].hf);
            return 1;
        }
    const char *kind = !strcmp(suffix, "attention.qkv.weight") ? "weight"
                       : !strcmp(suffix, "attention.qkv.bias") ? "bias"
                                                               : NULL;
    if (!kind) return 0;
    snprintf(src[0], 96, "model.layers.%d.self_attn.q_proj.%s", layer, kind);
    snprintf(src[1], 96, "model.layers.%d.self_attn.k_proj.%s", layer, kind);
    snprintf(src[2], 96, "model.layers.%d.self_attn.v_proj.%s", layer, kind);
    return 3;
}

/* Every item has the right sources and shape; items come in file order. */
static void check_plan(const struct llm_model_desc *d, const struct llm_st *st,
                       const struct llm_plan_item *items, size_t n, const char *what)
{
    char(*names)[LLM_NAME_MAX];
    size_t nn;
    CHECK_OK(llm_desc_tensor_names(d, &names, &nn));
    CHECK(n == nn, "%s: %zu items for %zu canonical tensors", what, n, nn);
    free(names);
    size_t prev_key = 0;
    for (size_t i = 0; i < n; i++) {
        const struct llm_plan_item *it = &items[i];
        char src[3][96];
        int ns = expected_sources(it->name, src);
        CHECK(ns == it->n_src, "%s: '%s' has %d sources, expected %d", what, it->name, it->n_src,
              ns);
        size_t key = SIZE_MAX;
        for (int k = 0; k < it->n_src && k < ns; k++) {
            const struct llm_tensor *t = llm_st_get(st, it->src[k]);
            CHECK(t && !strcmp(t->name, src[k]), "%s: '%s' source %d is '%s', expected '%s'", what,
                  it->name, k, t ? t->name : "(none)", src[k]);
            if (it->src[k] < key) key = it->src[k];
        }
        int nd;
        int64_t s[LLM_MAX_DIMS];
        CHECK_OK(llm_desc_tensor_shape(d, it->name, &nd, s));
        CHECK(nd == it->ndim && !memcmp(s, it->shape, sizeof(int64_t) * (size_t)nd),
              "%s: '%s' shape differs from the description", what, it->name);
        /* the rows of the sources add up to the canonical rows */
        int64_t rows = 0;
        for (int k = 0; k < it->n_src; k++)
            rows += llm_st_get(st, it->src[k])->shape[0];
        CHECK(rows == it->shape[0], "%s: '%s' sources have %lld rows, canonical %lld", what,
              it->name, (long long)rows, (long long)it->shape[0]);
        CHECK(i == 0 || key > prev_key, "%s: item %zu ('%s') is out of file order", what, i,
              it->name);
        prev_key = key;
    }
}

static void test_llama(const char *dir)
{
    struct ckpt c = {0};
    struct llm_model_desc d;
    struct llm_st *st;
    struct llm_plan_item *items;
    size_t n;
    char *log;

    llama_tensors(&c, 0, 0, 0, 0, LLM_DTYPE_BF16);
    add(&c, "model.layers.0.self_attn.rotary_emb.inv_freq", LLM_DTYPE_F32, 2, 0);
    if (!desc_of("LlamaForCausalLM", 0, NULL, &d)) {
        CHECK_OK(plan(dir, &c, &d, &st, &items, &n, &log));
        if (items) {
            check_plan(&d, st, items, n, "llama");
            CHECK_STR(items[0].name, "lm_head.weight");
            CHECK_STR(items[n - 1].name, "transformer.vocab_embedding.weight");
            const struct llm_plan_item *q = NULL;
            for (size_t i = 0; i < n; i++)
                if (!strcmp(items[i].name, "transformer.layers.1.attention.qkv.weight"))
                    q = &items[i];
            CHECK(q && q->ndim == 2 && q->shape[0] == 16 && q->shape[1] == 8,
                  "qkv shape [(2 + 2) * 4, 8]");
        }
        CHECK(log && !strstr(log, "inv_freq"), "warned about rotary_emb.inv_freq: %s", log);
        free(log);
        free(items);
        llm_st_close(st);
        llm_desc_free(&d);
    }

    /* tied: lm_head.weight in the file is ignored without a warning */
    if (!desc_of("LlamaForCausalLM", 1, NULL, &d)) {
        CHECK_OK(plan(dir, &c, &d, &st, &items, &n, &log));
        if (items) {
            check_plan(&d, st, items, n, "llama tied");
            for (size_t i = 0; i < n; i++)
                CHECK(strcmp(items[i].name, "lm_head.weight"), "tied");
        }
        CHECK(log && !*log, "tied model logged: %s", log);
        free(log);
        free(items);
        llm_st_close(st);
        llm_desc_free(&d);
    }

    /* a tensor nobody uses is named in a warning */
    add(&c, "model.layers.0.self_attn.extra.weight", LLM_DTYPE_BF16, 4, 0);
    if (!desc_of("LlamaForCausalLM", 0, NULL, &d)) {
        CHECK_OK(plan(dir, &c, &d, &st, &items, &n, &log));
        CHECK(log && strstr(log, "model.safetensors': tensor "
                                 "'model.layers.0.self_attn.extra.weight' is not used"),
              "no warning about the unused tensor: '%s'", log);
        free(log);
        free(items);
        llm_st_close(st);
        llm_desc_free(&d);
    }
    /* many: eight by name, then a count */
    for (int i = 0; i < 11; i++) {
        char b[64];
        snprintf(b, sizeof(b), "unused.%d", i);
        add(&c, b, LLM_DTYPE_BF16, 2, 0);
    }
    if (!desc_of("LlamaForCausalLM", 0, NULL, &d)) {
        CHECK_OK(plan(dir, &c, &d, &st, &items, &n, &log));
        int lines = 0;
        for (char *p = log; p && *p; p++)
            lines += *p == '\n';
        CHECK(lines == 9 && strstr(log, ": 4 more tensors are not used"),
              "expected 8 warnings and a count, got %d lines: %s", lines, log);
        free(log);
        free(items);
        llm_st_close(st);
        llm_desc_free(&d);
    }
    ckpt_free(&c);

    /* Llama with attention_bias and mlp_bias */
    llama_tensors(&c, 0, 1, 1, 1, LLM_DTYPE_F16);
    if (!desc_of("LlamaForCausalLM", 0, ", \"attention_bias\": true, \"mlp_bias\": true", &d)) {
        CHECK_OK(plan(dir, &c, &d, &st, &items, &n, NULL));
        if (items) {
            CHECK(n == 3 + 2 * 12, "biased llama: %zu items", n);
            check_plan(&d, st, items, n, "biased llama");
        }
        free(items);
        llm_st_close(st);
        llm_desc_free(&d);
    }
    ckpt_free(&c);
}

static void test_qwen2_mistral(const char *dir)
{
    struct ckpt c = {0};
    struct llm_model_desc d;
    struct llm_st *st;
    struct llm_plan_item *items;
    size_t n;
    llama_tensors(&c, 1, 1, 0, 0, LLM_DTYPE_BF16);
    if (!desc_of("Qwen2ForCausalLM", 1, NULL, &d)) {
        CHECK_OK(plan(dir, &c, &d, &st, &items, &n, NULL));
        if (items) {
            CHECK(n == 2 + 2 * 8, "qwen2: %zu items", n);
            check_plan(&d, st, items, n, "qwen2");
        }
        free(items);
        llm_st_close(st);
        llm_desc_free(&d);
    }
    /* Qwen2 without the q/k/v biases it needs */
    ckpt_free(&c);
    llama_tensors(&c, 1, 0, 0, 0, LLM_DTYPE_BF16);
    if (!desc_of("Qwen2ForCausalLM", 1, NULL, &d)) {
        CHECK_ERR(plan(dir, &c, &d, &st, &items, &n, NULL), LLM_ENOTFOUND,
                  "tensor 'model.layers.0.self_attn.q_proj.bias' not found (needed for "
                  "'transformer.layers.0.attention.qkv.bias')");
        llm_st_close(st);
        llm_desc_free(&d);
    }
    if (!desc_of("MistralForCausalLM", 0, NULL, &d)) {
        CHECK_OK(plan(dir, &c, &d, &st, &items, &n, NULL));
        if (items) check_plan(&d, st, items, n, "mistral");
        free(items);
        llm_st_close(st);
        llm_desc_free(&d);
    }
    ckpt_free(&c);
}

static void test_sharded(const char *dir)
{
    struct ckpt c = {0};
    llama_tensors(&c, 0, 0, 0, 0, LLM_DTYPE_BF16);
    /* shard 1: the second half of the tensors, shard 2: the first half, so
     * that the plan starts with what is first in shard 1 */
    char p1[4200], p2[4200], ix[4200];
    snprintf(p1, sizeof(p1), "%s/model-00001-of-00002.safetensors", dir);
    snprintf(p2, sizeof(p2), "%s/model-00002-of-00002.safetensors", dir);
    snprintf(ix, sizeof(ix), "%s/model.safetensors.index.json", dir);
    size_t half = c.n / 2;
    CHECK_OK(llm_st_write(p1, c.t + half, c.n - half, NULL));
    CHECK_OK(llm_st_write(p2, c.t, half, NULL));
    json_t *wm = json_object();
    for (size_t i = 0; i < c.n; i++)
        json_object_set_new(wm, c.names[i],
                            json_string(i < half ? "model-00002-of-00002.safetensors"
                                                 : "model-00001-of-00002.safetensors"));
    json_t *root = json_pack("{s:o}", "weight_map", wm);
    json_dump_file(root, ix, 0);
    json_decref(root);
    struct llm_model_desc d;
    struct llm_st *st = NULL;
    struct llm_plan_item *items = NULL;
    size_t n;
    if (!desc_of("LlamaForCausalLM", 0, NULL, &d)) {
        CHECK_OK(llm_st_open(&st, dir));
        if (st) {
            CHECK_OK(llm_hfmap_plan(&d, st, &items, &n));
            if (items) {
                check_plan(&d, st, items, n, "sharded");
                /* the first item's first source is the first tensor of shard 1 */
                CHECK(llm_st_shard_of(st, items[0].src[0]) == 0, "plan does not start in shard 1");
                CHECK(!strcmp(llm_st_get(st, items[0].src[0])->name, c.names[half]),
                      "plan starts with '%s'", llm_st_get(st, items[0].src[0])->name);
            }
            /* a missing tensor names the checkpoint folder */
            free(items);
            items = NULL;
            llm_st_close(st);
        }
        llm_desc_free(&d);
    }
    remove(p1);
    remove(p2);
    remove(ix);
    ckpt_free(&c);
}

static void test_errors(const char *dir)
{
    struct ckpt c = {0};
    struct llm_model_desc d;
    struct llm_st *st;
    struct llm_plan_item *items;
    size_t n;
    if (desc_of("LlamaForCausalLM", 0, NULL, &d)) return;

    /* each defect on a fresh copy of the good checkpoint */
    static const struct {
        const char *name;
        int dt;
        int64_t d0, d1;
        int drop;
        int code;
        const char *sub;
    } cases[] = {
        {"model.layers.1.self_attn.k_proj.weight", 0, 0, 0, 1, LLM_ENOTFOUND,
         "model.safetensors': tensor 'model.layers.1.self_attn.k_proj.weight' not found (needed "
         "for 'transformer.layers.1.attention.qkv.weight')"},
        {"lm_head.weight", 0, 0, 0, 1, LLM_ENOTFOUND,
         "tensor 'lm_head.weight' not found (needed "
         "for 'lm_head.weight')"},
        {"model.embed_tokens.weight", 0, 0, 0, 1, LLM_ENOTFOUND,
         "'model.embed_tokens.weight' "
         "not found"},
        {"model.layers.0.self_attn.k_proj.weight", LLM_DTYPE_BF16, 8, 8, 0, LLM_ESHAPE,
         "model.safetensors': tensor 'model.layers.0.self_attn.k_proj.weight' expected [4, 8], "
         "found [8, 8]"},
        {"model.layers.0.mlp.down_proj.weight", LLM_DTYPE_BF16, 12, 8, 0, LLM_ESHAPE,
         "tensor 'model.layers.0.mlp.down_proj.weight' expected [8, 12], found [12, 8]"},
        {"model.norm.weight", LLM_DTYPE_BF16, 8, 1, 0, LLM_ESHAPE,
         "tensor 'model.norm.weight' expected [8], found [8, 1]"},
        {"model.layers.0.self_attn.v_proj.weight", LLM_DTYPE_F32, 4, 8, 0, LLM_EFORMAT,
         "tensor 'model.layers.0.self_attn.v_proj.weight' is f32 but "
         "'model.layers.0.self_attn.k_proj.weight' is bf16; the parts of "
         "'transformer.layers.0.attention.qkv.weight' must share a dtype"},
        {"model.norm.weight", LLM_DTYPE_I32, 8, 0, 0, LLM_EUNSUPPORTED,
         "tensor 'model.norm.weight' has dtype i32, not a float type"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ckpt_free(&c);
        llama_tensors(&c, 0, 0, 0, 0, LLM_DTYPE_BF16);
        int k = find(&c, cases[i].name);
        if (cases[i].drop) {
            free(c.data[k]);
            for (size_t j = (size_t)k; j + 1 < c.n; j++) {
                c.t[j] = c.t[j + 1];
                memcpy(c.names[j], c.names[j + 1], sizeof(c.names[0]));
                c.t[j].name = c.names[j];
                c.data[j] = c.data[j + 1];
            }
            c.n--;
        } else {
            /* replace in place: same name, other dtype/shape */
            char name[96];
            snprintf(name, sizeof(name), "%s", cases[i].name);
            struct ckpt one = {0};
            add(&one, name, cases[i].dt, cases[i].d0, cases[i].d1);
            free(c.data[k]);
            c.t[k] = one.t[0];
            c.t[k].name = c.names[k];
            c.data[k] = one.data[0];
        }
        items = (struct llm_plan_item *)1;
        int rc = plan(dir, &c, &d, &st, &items, &n, NULL);
        CHECK(rc == cases[i].code && strstr(llm_errmsg(), cases[i].sub) && items == NULL,
              "%s: got %d (%s) '%s', expected %d with '%s'", cases[i].name, rc, llm_strerror(rc),
              llm_errmsg(), cases[i].code, cases[i].sub);
        llm_st_close(st);
    }
    llm_desc_free(&d);

    /* another architecture's checkpoint: the first missing tensor is named */
    ckpt_free(&c);
    llama_tensors(&c, 0, 0, 0, 0, LLM_DTYPE_BF16);
    json_error_t je;
    json_t *j = json_loads("{\"architectures\": [\"GPT2LMHeadModel\"], \"vocab_size\": 16, "
                           "\"n_embd\": 8, \"n_layer\": 2, \"n_head\": 2}",
                           0, &je);
    CHECK_OK(llm_hfconfig_parse(j, NULL, "t/config.json", &d, NULL));
    json_decref(j);
    CHECK_ERR(plan(dir, &c, &d, &st, &items, &n, NULL), LLM_ENOTFOUND,
              "tensor 'transformer.wte.weight' not found (needed for "
              "'transformer.vocab_embedding.weight')");
    llm_st_close(st);
    /* an invalid description is refused before looking at tensors */
    d.arch = LLM_ARCH_LLAMA;
    d.n_kv_heads = 3;
    CHECK_OK(llm_st_open(&st, dir));
    CHECK_ERR(llm_hfmap_plan(&d, st, &items, &n), LLM_EFORMAT, "model field 'n_kv_heads'");
    CHECK_ERR(llm_hfmap_plan(NULL, st, &items, &n), LLM_EINVAL, "no description");
    llm_st_close(st);
    llm_desc_free(&d);
    ckpt_free(&c);
}

int main(void)
{
    llm_log_set_level(LLM_LOG_WARN);
    char *dir = t_mkdtemp();
    test_llama(dir);
    test_qwen2_mistral(dir);
    test_errors(dir);
    char *sub = malloc(4300);
    snprintf(sub, 4300, "%s/sharded", dir);
    mkdir(sub, 0755);
    test_sharded(sub);
    free(sub);
    t_rmtree(dir);
    return t_report("test-hfmap");
}
