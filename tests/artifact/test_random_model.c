/* test_random_model.c - a model of random weights without a file
 * (llm_model_random, "random:CONFIG.json") is the model llm-convert --random
 * writes: the same description and, once asked for on the host, the same
 * bytes in every tensor, for every family's fixture config; before that its
 * tensors have shapes and no data.  Bad configs fail with one message
 * naming the file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/hf.h"
#include "llm/model.h"
#include "llm/random.h"
#include "../formats/tcheck.h"


static const char *srcdir(void)
{
    const char *s = getenv("LLM_SRCDIR");
    return s ? s : ".";
}

/* The fixture's config converted with --random (dtype dt) against the
 * same config opened as random:, tensor by tensor. */
static void check_family(const char *family, int dt)
{
    char cfg[1024], art[1024], spec[1100];
    snprintf(cfg, sizeof cfg, "%s/tests/fixtures/%s/config.json", srcdir(), family);
    snprintf(art, sizeof art, "%s/llm-random-%s-%d-%d.llm",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", family, dt, (int)getpid());
    struct llm_convert_opts co;
    llm_convert_opts_init(&co);
    co.out = art;
    co.dtype = dt;
    co.verbose = -1;
    int rc = llm_convert_random(cfg, 0, &co);
    CHECK(rc == 0, "%s: llm-convert --random", family);
    if (rc) return;
    struct llm_model *a = NULL, *r = NULL, *r0 = NULL;
    rc = llm_model_open(&a, art);
    CHECK(rc == 0, "%s: open the converted artifact", family);
    rc = rc ? rc : llm_model_random(&r, cfg, dt, 0);
    CHECK(rc == 0, "%s: llm_model_random", family);
    snprintf(spec, sizeof spec, "random:%s", cfg);
    int rc0 = llm_model_open(&r0, spec); /* the config's own dtype */
    CHECK(rc0 == 0 && r0 && r0->synthetic && !strcmp(r0->path, spec), "%s: open '%s'", family,
          spec);
    if (!rc) {
        CHECK(r->synthetic && !a->synthetic, "%s: synthetic flags", family);
        CHECK(r->desc.arch == a->desc.arch && r->desc.dtype == a->desc.dtype &&
                  r->desc.n_layers == a->desc.n_layers && r->desc.hidden == a->desc.hidden &&
                  r->desc.vocab_size == a->desc.vocab_size && r->desc.n_experts == a->desc.n_experts &&
                  llm_desc_n_params(&r->desc) == llm_desc_n_params(&a->desc),
              "%s: descriptions differ", family);
        char(*names)[LLM_NAME_MAX] = NULL;
        size_t n = 0;
        CHECK(llm_desc_tensor_names(&a->desc, &names, &n) == 0 && n > 0, "%s: names", family);
        /* shapes without data first */
        for (size_t k = 0; k < n; k++) {
            struct llm_tensor tr;
            int e = llm_model_tensor(r, names[k], &tr);
            CHECK(e == 0 && tr.data == NULL && tr.nbytes > 0, "%s: '%s' before host data", family,
                  names[k]);
        }
        struct llm_tensor none;
        CHECK(llm_model_tensor(r, "no.such.tensor", &none) == LLM_ENOTFOUND,
              "%s: an unknown name is not found", family);
        llm_err_clear();
        llm_model_host_data(r);
        size_t same = 0;
        for (size_t k = 0; k < n; k++) {
            struct llm_tensor ta, tr, tr2;
            if (llm_model_tensor(a, names[k], &ta) || llm_model_tensor(r, names[k], &tr) ||
                llm_model_tensor(r, names[k], &tr2)) {
                CHECK(0, "%s: tensor '%s' missing", family, names[k]);
                continue;
            }
            int eq = ta.dtype == tr.dtype && ta.ndim == tr.ndim && ta.nbytes == tr.nbytes &&
                     !memcmp(ta.shape, tr.shape, sizeof ta.shape) && tr.data &&
                     !memcmp(ta.data, tr.data, ta.nbytes);
            CHECK(eq, "%s: tensor '%s' differs from the converted one", family, names[k]);
            CHECK(tr.data == tr2.data, "%s: '%s' made twice", family, names[k]);
            same += eq;
        }
        CHECK(same == n, "%s: %zu of %zu tensors equal", family, same, n);
        free(names);
    }
    llm_model_close(a);
    llm_model_close(r);
    llm_model_close(r0);
    unlink(art);
}

/* The values themselves: element i needs no other element, and their
 * spread is what the header says. */
static void check_values(void)
{
    enum { N = 1 << 16 };
    float *v = malloc(N * sizeof(float)), *w = malloc(64 * sizeof(float));
    uint64_t st = llm_rand_state(7, "layers.3.attn.qkv.weight");
    llm_rand_fill(v, N, LLM_RAND_NORMAL, st, 0);
    llm_rand_fill(w, 64, LLM_RAND_NORMAL, st, 1000);
    CHECK(!memcmp(v + 1000, w, 64 * sizeof(float)), "element i depends on the start");
    double s = 0, s2 = 0, mx = 0;
    for (int i = 0; i < N; i++) {
        s += v[i];
        s2 += (double)v[i] * v[i];
        if (fabs(v[i]) > mx) mx = fabs(v[i]);
    }
    double mean = s / N, sd = sqrt(s2 / N - mean * mean);
    CHECK(fabs(mean) < 1e-3 && fabs(sd - 0.02) < 1e-3 && mx < 0.07, "mean %g std %g max %g",
          mean, sd, mx);
    CHECK(llm_rand_fill_of("layers.0.input_layernorm.weight") == LLM_RAND_ONE &&
              llm_rand_fill_of("final_norm.bias") == LLM_RAND_ZERO &&
              llm_rand_fill_of("layers.0.mlp.fc.weight") == LLM_RAND_NORMAL,
          "fill kinds");
    llm_rand_fill(w, 64, LLM_RAND_ONE, st, 0);
    CHECK(w[0] == 1.0f && w[63] == 1.0f, "ones");
    free(v);
    free(w);
}

static void check_bad(void)
{
    struct llm_model *m = (struct llm_model *)1;
    int rc = llm_model_open(&m, "random:/nonexistent/config.json");
    CHECK(rc != 0 && m == NULL && strstr(llm_errmsg(), "/nonexistent/config.json"),
          "a missing config names the file");
    char p[1024];
    snprintf(p, sizeof p, "%s/llm-random-bad-%d.json", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    static const char *const bad[] = {
        "{\"architectures\": [\"NoSuchForCausalLM\"], \"model_type\": \"nosuch\"}",
        "[1, 2, 3]",
        "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(p, "w");
        if (!f) continue;
        fputs(bad[i], f);
        fclose(f);
        m = (struct llm_model *)1;
        rc = llm_model_random(&m, p, -1, 0);
        CHECK(rc != 0 && m == NULL && strstr(llm_errmsg(), p), "bad config %zu: '%s'", i,
              llm_errmsg());
        llm_err_clear();
    }
    unlink(p);
}

int main(void)
{
    static const char *const families[] = {
        "llama3-f32",      "gpt2",       "gptj",          "neox-parallel", "falcon-7b",
        "falcon-40b",      "mpt-clip",   "bloom",         "opt-350m",      "gemma",
        "gemma2",          "phi3",       "mixtral",       "qwen3",         "qwen3-moe",
        "stablelm",        "starcoder2", "rope-longrope", "phi",           "gpt-bigcode",
        "gpt-bigcode-mha", "gemma3",     "gemma3-mm",     "glm",           "glm4",
        "smollm3",         "cohere",     "cohere2",       "granite",       "mistral3-mm",
        "olmo2",           "olmo3",      "granitemoe",    "olmoe",         "olmo",
        "nemotron",        "arcee",      "qwen2-moe",     "seed-oss",      "ernie4_5",
        "helium",          "gpt-oss",    "exaone4",       "deepseek-v3",   "deepseek-v3-qproj",
        "deepseek-v2",     "glm4-moe",   "minimax-m2",    "dots1",
        "ministral",       "ministral3", "granitemoeshared", "ernie4_5-moe",
        "qwen2_5-vl",      "qwen3-vl",   "qwen3-vl-moe",
    };
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        check_family(families[i], i % 3 == 0 ? LLM_DTYPE_F32 : i % 3 == 1 ? LLM_DTYPE_BF16
                                                                        : LLM_DTYPE_F16);
    check_values();
    check_bad();
    printf("%d checks, %d failed\n", t_checks, t_failures);
    return t_failures ? 1 : 0;
}
