/* test_hfconfig.c - config.json -> model description, field by field, for a
 * sample config of every supported family (tests/formats/configs/<name>/,
 * modelled on the published checkpoints), every RoPE scaling type in both
 * the rope_scaling and the transformers v5 rope_parameters form, and the
 * errors for bad configs.  The expected values were cross-checked against
 * transformers' own config classes and models (hf_crosscheck.py; parameter
 * counts are those of the instantiated HF models).
 *
 * With --dump DIR... it prints each description as JSON instead (one line
 * per folder, plus "n_params"), which hf_crosscheck.py compares with what
 * transformers made of the same config (the expected.json committed in each
 * folder, written by hub/gen_expected.py). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/hf.h"
#include "llm/model.h"
#include "tcheck.h"

struct expect {
    const char *dir;
    const char *arch, *hf_arch, *model_type, *dtype;
    long long vocab, hidden;
    int layers, heads, kv, head_dim;
    long long inter, max_pos;
    const char *norm;
    double eps;
    const char *act;
    int gated;
    const char *pos;
    double theta;
    int rot, neox;
    const char *scaling;
    double factor;
    int orig;
    int par, shared, tied, qkvb, ob, mlpb, normb, lmb;
    int window, win_first, win_n; /* layers [win_first, win_first + win_n) use it */
    double embed_scale, attn_scale;
    int experts, per_tok;
    int bos, pad, neos, eos[3];
    unsigned long long params;
};

/* clang-format off */
static const struct expect cases[] = {
    {"llama1-7b", "llama", "LLaMAForCausalLM", "llama", "f16", 32000, 4096, 32, 32, 32, 128, 11008,
     2048, "rmsnorm", 1e-6, "silu", 1, "rope", 10000, 128, 1, "none", 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, 1, {1}, 6738415616ull},
    {"llama2-7b", "llama", "LlamaForCausalLM", "llama", "f16", 32000, 4096, 32, 32, 32, 128, 11008,
     4096, "rmsnorm", 1e-5, "silu", 1, "rope", 10000, 128, 1, "none", 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, {2}, 6738415616ull},
    {"llama3-8b", "llama", "LlamaForCausalLM", "llama", "bf16", 128256, 4096, 32, 32, 8, 128, 14336,
     8192, "rmsnorm", 1e-5, "silu", 1, "rope", 500000, 128, 1, "none", 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128000, -1, 2, {128001, 128009},
     8030261248ull},
    {"llama3.1-8b-instruct", "llama", "LlamaForCausalLM", "llama", "bf16", 128256, 4096, 32, 32, 8,
     128, 14336, 131072, "rmsnorm", 1e-5, "silu", 1, "rope", 500000, 128, 1, "llama3", 8, 8192,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128000, -1, 3, {128001, 128008, 128009},
     8030261248ull},
    {"llama-linear", "llama", "LlamaForCausalLM", "llama", "bf16", 32000, 2048, 22, 32, 4, 64, 5632,
     8192, "rmsnorm", 1e-5, "silu", 1, "rope", 10000, 64, 1, "linear", 4, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, -1, 1, {2}, 1100048384ull},
    {"llama-dynamic", "llama", "LlamaForCausalLM", "llama", "f32", 32000, 2048, 22, 32, 4, 64, 5632,
     2048, "rmsnorm", 1e-5, "silu", 1, "rope", 10000, 64, 1, "dynamic", 2, 2048,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, -1, 1, {2}, 1100048384ull},
    {"llama-yarn", "llama", "LlamaForCausalLM", "llama", "bf16", 32000, 4096, 32, 32, 32, 128,
     11008, 65536, "rmsnorm", 1e-5, "silu", 1, "rope", 10000, 128, 1, "yarn", 16, 4096,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, -1, 1, {2}, 6738415616ull},
    {"llama-v5-params", "llama", "LlamaForCausalLM", "llama", "bf16", 128256, 2048, 16, 32, 8, 64,
     8192, 131072, "rmsnorm", 1e-5, "silu", 1, "rope", 500000, 64, 1, "llama3", 32, 8192,
     0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128000, -1, 1, {128009}, 1236191232ull},
    {"llama-v5-yarn", "llama", "LlamaForCausalLM", "llama", "f16", 1000, 2048, 4, 16, 16, 128, 5632,
     163840, "rmsnorm", 1e-6, "silu", 1, "rope", 10000, 128, 1, "yarn", 40, 4096,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, -1, 1, {2}, 209635328ull},
    {"mistral-7b-v0.1", "mistral", "MistralForCausalLM", "mistral", "bf16", 32000, 4096, 32, 32, 8,
     128, 14336, 32768, "rmsnorm", 1e-5, "silu", 1, "rope", 10000, 128, 1, "none", 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 4096, 0, 32, 0, 0, 0, 0, 1, -1, 1, {2}, 7241732096ull},
    {"mistral-7b-v0.3", "mistral", "MistralForCausalLM", "mistral", "bf16", 32768, 4096, 32, 32, 8,
     128, 14336, 32768, "rmsnorm", 1e-5, "silu", 1, "rope", 1e6, 128, 1, "none", 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, -1, 1, {2}, 7248023552ull},
    {"qwen2.5-0.5b-instruct", "qwen2", "Qwen2ForCausalLM", "qwen2", "bf16", 151936, 896, 24, 14, 2,
     64, 4864, 32768, "rmsnorm", 1e-6, "silu", 1, "rope", 1e6, 64, 1, "none", 0, 0,
     0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 151643, 151643, 2, {151645, 151643},
     494032768ull},
    {"qwen2-sliding-yarn", "qwen2", "Qwen2ForCausalLM", "qwen2", "bf16", 151936, 896, 24, 14, 2, 64,
     4864, 131072, "rmsnorm", 1e-6, "silu", 1, "rope", 1e6, 64, 1, "yarn", 4, 32768,
     0, 0, 1, 1, 0, 0, 0, 0, 4096, 20, 4, 0, 0, 0, 0, 151643, -1, 1, {151643}, 494032768ull},
    {"mixtral-8x7b", "mixtral", "MixtralForCausalLM", "mixtral", "bf16", 32000, 4096, 32, 32, 8,
     128, 14336, 32768, "rmsnorm", 1e-5, "silu", 1, "rope", 1e6, 128, 1, "none", 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 2, 1, -1, 1, {2}, 46702792704ull},
    {"gemma-2b", "gemma", "GemmaForCausalLM", "gemma", "bf16", 256000, 2048, 18, 8, 1, 256, 16384,
     8192, "rmsnorm", 1e-6, "gelu_tanh", 1, "rope", 10000, 256, 1, "none", 0, 0,
     0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 45.254833995939045, 0, 0, 0, 2, 0, 1, {1},
     2506172416ull},
    {"phi3-mini-4k", "phi3", "Phi3ForCausalLM", "phi3", "bf16", 32064, 3072, 32, 32, 32, 96, 8192,
     4096, "rmsnorm", 1e-5, "silu", 1, "rope", 10000, 96, 1, "none", 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 2047, 0, 32, 0, 0, 0, 0, 1, 32000, 3, {32000, 32001, 32007},
     3821079552ull},
    {"phi3-mini-128k", "phi3", "Phi3ForCausalLM", "phi3", "bf16", 32064, 3072, 32, 32, 32, 96, 8192,
     131072, "rmsnorm", 1e-5, "silu", 1, "rope", 10000, 96, 1, "longrope", 32, 4096,
     0, 0, 0, 0, 0, 0, 0, 0, 262144, 0, 32, 0, 0, 0, 0, 1, 32000, 1, {32000}, 3821079552ull},
    {"phi4-mini", "phi3", "Phi3ForCausalLM", "phi3", "bf16", 200064, 3072, 32, 24, 8, 128, 8192,
     131072, "rmsnorm", 1e-5, "silu", 1, "rope", 10000, 96, 1, "longrope", 32, 4096,
     0, 0, 1, 0, 0, 0, 0, 0, 262144, 0, 32, 0, 0, 0, 0, 199999, 199999, 1, {199999},
     3836021760ull},
    {"gpt2", "gpt2", "GPT2LMHeadModel", "gpt2", "f32", 50257, 768, 12, 12, 12, 64, 3072, 1024,
     "layernorm", 1e-5, "gelu_tanh", 0, "learned", 10000, 0, 1, "none", 0, 0,
     0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 50256, -1, 1, {50256}, 124439808ull},
    {"gpt-j-6b", "gptj", "GPTJForCausalLM", "gptj", "f32", 50400, 4096, 28, 16, 16, 256, 16384,
     2048, "layernorm", 1e-5, "gelu_tanh", 0, "rope", 10000, 64, 0, "none", 0, 0,
     1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 50256, -1, 1, {50256}, 6050882784ull},
    {"pythia-160m", "gptneox", "GPTNeoXForCausalLM", "gpt_neox", "f16", 50304, 768, 12, 12, 12, 64,
     3072, 2048, "layernorm", 1e-5, "gelu", 0, "rope", 10000, 16, 1, "none", 0, 0,
     1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, 1, {0}, 162322944ull},
    {"falcon-7b", "falcon", "FalconForCausalLM", "falcon", "bf16", 65024, 4544, 32, 71, 1, 64,
     18176, 2048, "layernorm", 1e-5, "gelu", 0, "rope", 10000, 64, 1, "none", 0, 0,
     1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 11, -1, 1, {11}, 6921720704ull},
    {"falcon-40b", "falcon", "FalconForCausalLM", "falcon", "bf16", 65024, 8192, 60, 128, 8, 64,
     32768, 2048, "layernorm", 1e-5, "gelu", 0, "rope", 10000, 64, 1, "none", 0, 0,
     1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 11, -1, 1, {11}, 41303293952ull},
    {"falcon-rw-1b", "falcon", "RWForCausalLM", "RefinedWebModel", "bf16", 50304, 2048, 24, 32, 32,
     64, 8192, 2048, "layernorm", 1e-5, "gelu", 0, "alibi", 10000, 0, 1, "none", 0, 0,
     0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, -1, 1, {2}, 1311625216ull},
    {"mpt-7b", "mpt", "MPTForCausalLM", "mpt", "bf16", 50432, 4096, 32, 32, 32, 128, 16384, 2048,
     "layernorm", 1e-5, "gelu", 0, "alibi", 10000, 0, 1, "none", 0, 0,
     0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, -1, 1, {0}, 6649286656ull},
    {"bloom-560m", "bloom", "BloomForCausalLM", "bloom", "f32", 250880, 1024, 24, 16, 16, 64, 4096,
     2048, "layernorm", 1e-5, "gelu_tanh", 0, "alibi", 10000, 0, 1, "none", 0, 0,
     0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 1, {2}, 559214592ull},
};
/* clang-format on */

static char *cfg_dir(const char *name)
{
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/tests/formats/configs/%s", t_srcdir(), name);
    return p;
}

static void check_case(const struct expect *e)
{
    char *dir = cfg_dir(e->dir);
    struct llm_model_desc d;
    struct llm_gen_defaults g;
    int rc = llm_hfconfig_load(dir, &d, &g);
    CHECK(rc == 0, "%s: %s", e->dir, llm_errmsg());
    free(dir);
    if (rc) return;
    const char *n = e->dir;
#define F(cond, ...) CHECK(cond, "%s: " __VA_ARGS__)
#define FI(got, want)                                                                              \
    F((long long)(got) == (long long)(want), "%s = %lld, expected %lld", n, #got,                  \
      (long long)(got), (long long)(want))
#define FD(got, want)                                                                              \
    F((double)(got) == (double)(want), "%s = %.17g, expected %.17g", n, #got, (double)(got),       \
      (double)(want))
#define FS(got, want) F(!strcmp((got), (want)), "%s = '%s', expected '%s'", n, #got, (got), (want))
    FS(llm_arch_name(d.arch), e->arch);
    FS(d.hf_arch, e->hf_arch);
    FS(d.model_type, e->model_type);
    FS(llm_dtype_name(d.dtype), e->dtype);
    FI(d.vocab_size, e->vocab);
    FI(d.hidden, e->hidden);
    FI(d.n_layers, e->layers);
    FI(d.n_heads, e->heads);
    FI(d.n_kv_heads, e->kv);
    FI(d.head_dim, e->head_dim);
    FI(d.intermediate, e->inter);
    FI(d.max_pos, e->max_pos);
    FS(llm_norm_name(d.norm), e->norm);
    FD(d.norm_eps, e->eps);
    FS(llm_act_name(d.act), e->act);
    FI(d.gated_mlp, e->gated);
    FS(llm_pos_name(d.pos), e->pos);
    FD(d.rope.theta, e->theta);
    FI(d.rope.rot_dims, e->rot);
    FI(d.rope.neox, e->neox);
    FS(llm_rope_scaling_name(d.rope.scaling), e->scaling);
    FD(d.rope.factor, e->factor);
    FI(d.rope.orig_max_pos, e->orig);
    FI(d.parallel_residual, e->par);
    FI(d.shared_input_norm, e->shared);
    FI(d.tied_embeddings, e->tied);
    FI(d.qkv_bias, e->qkvb);
    FI(d.o_bias, e->ob);
    FI(d.mlp_bias, e->mlpb);
    FI(d.norm_bias, e->normb);
    FI(d.lm_head_bias, e->lmb);
    FI(d.sliding_window, e->window);
    for (int i = 0; i < LLM_MAX_LAYERS; i++) {
        int want = i >= e->win_first && i < e->win_first + e->win_n;
        if (d.layer_window[i] != want) {
            F(0, "layer %d window flag %d, expected %d", n, i, d.layer_window[i], want);
            break;
        }
    }
    FD(d.embed_scale, e->embed_scale);
    FD(d.attn_scale, e->attn_scale);
    FD(d.attn_softcap, 0);
    FI(d.n_experts, e->experts);
    FI(d.n_experts_per_tok, e->per_tok);
    FI(d.bos_id, e->bos);
    FI(d.pad_id, e->pad);
    FI(d.n_eos, e->neos);
    for (int i = 0; i < e->neos && i < d.n_eos; i++)
        FI(d.eos_ids[i], e->eos[i]);
    F(llm_desc_n_params(&d) == e->params, "%llu parameters, expected %llu", n,
      (unsigned long long)llm_desc_n_params(&d), e->params);
    CHECK_OK(llm_desc_validate(&d));

    /* the scaling-specific parameters */
    const struct llm_rope *r = &d.rope;
    if (!strcmp(e->scaling, "llama3")) {
        FD(r->low_freq_factor, 1.0);
        FD(r->high_freq_factor, 4.0);
    } else {
        FD(r->low_freq_factor, 0);
        FD(r->high_freq_factor, 0);
    }
    if (!strcmp(e->dir, "llama-v5-yarn")) {
        FD(r->beta_fast, 32);
        FD(r->beta_slow, 1);
        FD(r->attn_factor, 1.25);
        FD(r->mscale, 0.707);
        FD(r->mscale_all_dim, 0.707);
    } else {
        FD(r->attn_factor, 0);
        FD(r->mscale, 0);
        FD(r->mscale_all_dim, 0);
    }
    if (!strcmp(e->scaling, "longrope")) {
        FI(r->n_factors, r->rot_dims / 2);
        if (r->n_factors == 48) {
            FD(r->long_factor[0], 1.0f);
            FD(r->long_factor[47], 12.75f);
            FD(r->short_factor[0], 1.0f);
            FD(r->short_factor[47], 1.47f);
        }
    } else {
        FI(r->n_factors, 0);
        F(!r->long_factor && !r->short_factor, "factor lists without longrope", n);
    }
#undef F
#undef FI
#undef FD
#undef FS
    llm_desc_free(&d);
}

static void check_gen(void)
{
    struct llm_model_desc d;
    struct llm_gen_defaults g;
    char *dir = cfg_dir("qwen2.5-0.5b-instruct");
    CHECK_OK(llm_hfconfig_load(dir, &d, &g));
    CHECK_DBL(g.temperature, 0.7);
    CHECK_INT(g.top_k, 20);
    CHECK_DBL(g.top_p, 0.8);
    CHECK_DBL(g.min_p, 0.0);
    CHECK_DBL(g.repetition_penalty, 1.1);
    CHECK_INT(g.do_sample, 1);
    CHECK_INT(g.max_new_tokens, 0);
    llm_desc_free(&d);
    free(dir);
    /* no generation_config.json: the neutral defaults */
    dir = cfg_dir("mistral-7b-v0.1");
    CHECK_OK(llm_hfconfig_load(dir, &d, &g));
    CHECK_DBL(g.temperature, 1.0);
    CHECK_INT(g.top_k, 0);
    CHECK_DBL(g.top_p, 1.0);
    CHECK_INT(g.do_sample, 0);
    llm_desc_free(&d);
    free(dir);
    /* the config.json path itself works too, and g may be NULL */
    char path[4200];
    dir = cfg_dir("llama2-7b");
    snprintf(path, sizeof(path), "%s/config.json", dir);
    CHECK_OK(llm_hfconfig_load(path, &d, NULL));
    CHECK_INT(d.pad_id, 0); /* from generation_config.json next to it */
    llm_desc_free(&d);
    free(dir);
}

/* ---- inline configs -------------------------------------------------------- */

#define LLAMA_CORE                                                                                 \
    "\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 100, \"hidden_size\": 64, "        \
    "\"intermediate_size\": 128, \"num_hidden_layers\": 4, \"num_attention_heads\": 4"

static int parse2(const char *cfg, const char *gen, struct llm_model_desc *d,
                  struct llm_gen_defaults *g)
{
    json_error_t je;
    json_t *c = json_loads(cfg, 0, &je), *gj = gen ? json_loads(gen, 0, &je) : NULL;
    if (!c || (gen && !gj)) {
        fprintf(stderr, "bad test JSON: %s\n%s\n", je.text, gj ? cfg : gen);
        exit(1);
    }
    int rc = llm_hfconfig_parse(c, gj, "d/config.json", d, g);
    json_decref(c);
    json_decref(gj);
    return rc;
}

static int parse(const char *cfg, struct llm_model_desc *d)
{
    return parse2(cfg, NULL, d, NULL);
}

static void check_inline(void)
{
    struct llm_model_desc d;
    struct llm_gen_defaults g;

    /* defaults of LlamaConfig for what is left out */
    CHECK_OK(parse("{" LLAMA_CORE "}", &d));
    CHECK_INT(d.n_kv_heads, 4);
    CHECK_INT(d.head_dim, 16);
    CHECK_INT(d.max_pos, 2048);
    CHECK_DBL(d.norm_eps, 1e-6);
    CHECK_DBL(d.rope.theta, 10000);
    CHECK_INT(d.bos_id, 1);
    CHECK_INT(d.n_eos, 1);
    CHECK_INT(d.eos_ids[0], 2);
    CHECK_INT(d.pad_id, -1);
    CHECK_INT(d.dtype, LLM_DTYPE_F32);
    CHECK_STR(d.model_type, "llama");
    llm_desc_free(&d);

    /* FP8 weights, v5's "dtype" */
    CHECK_OK(parse("{" LLAMA_CORE ", \"dtype\": \"float8_e4m3fn\"}", &d));
    CHECK_INT(d.dtype, LLM_DTYPE_F8E4M3);
    llm_desc_free(&d);
    CHECK_OK(parse("{" LLAMA_CORE ", \"torch_dtype\": \"torch.float16\"}", &d));
    CHECK_INT(d.dtype, LLM_DTYPE_F16);
    llm_desc_free(&d);

    /* model_type alone names the architecture; integral reals are integers */
    CHECK_OK(parse("{\"model_type\": \"mistral\", \"vocab_size\": 100.0, \"hidden_size\": 64, "
                   "\"intermediate_size\": 128, \"num_hidden_layers\": 2, "
                   "\"num_attention_heads\": 4, \"num_key_value_heads\": 2}",
                   &d));
    CHECK_STR(d.hf_arch, "MistralForCausalLM");
    CHECK_INT(d.vocab_size, 100);
    CHECK_INT(d.sliding_window, 4096); /* MistralConfig's default */
    CHECK_INT(d.layer_window[1], 1);
    llm_desc_free(&d);

    /* head_dim given explicitly differs from hidden / heads */
    CHECK_OK(parse("{" LLAMA_CORE ", \"head_dim\": 32, \"num_key_value_heads\": 1}", &d));
    CHECK_INT(d.head_dim, 32);
    CHECK_INT(d.rope.rot_dims, 32);
    CHECK_INT(llm_desc_n_params(&d),
              100 * 64 * 2 + 4 * (64 * 2 + (4 + 2) * 32 * 64 + 64 * 4 * 32 + 3 * 128 * 64) + 64);
    llm_desc_free(&d);

    /* rope_type wins over type; "default" means none */
    CHECK_OK(parse("{" LLAMA_CORE ", \"rope_scaling\": {\"type\": \"linear\", \"rope_type\": "
                   "\"default\"}}",
                   &d));
    CHECK_INT(d.rope.scaling, LLM_ROPE_SCALING_NONE);
    llm_desc_free(&d);

    /* rope_parameters: theta and partial factor inside win over the top level */
    CHECK_OK(parse("{" LLAMA_CORE ", \"rope_theta\": 5.0, \"partial_rotary_factor\": 1.0, "
                   "\"rope_parameters\": {\"rope_type\": \"linear\", \"factor\": 2, "
                   "\"rope_theta\": 1000000.0, \"partial_rotary_factor\": 0.5}}",
                   &d));
    CHECK_DBL(d.rope.theta, 1e6);
    CHECK_INT(d.rope.rot_dims, 8);
    CHECK_DBL(d.rope.factor, 2.0);
    llm_desc_free(&d);
    /* ... per layer type, when all agree */
    CHECK_OK(parse("{" LLAMA_CORE ", \"rope_parameters\": {\"full_attention\": {\"rope_type\": "
                   "\"default\", \"rope_theta\": 7.0}, \"sliding_attention\": {\"rope_type\": "
                   "\"default\", \"rope_theta\": 7.0}}}",
                   &d));
    CHECK_DBL(d.rope.theta, 7.0);
    llm_desc_free(&d);
    CHECK_ERR(parse("{" LLAMA_CORE ", \"rope_parameters\": {\"full_attention\": {\"rope_theta\": "
                    "7.0}, \"sliding_attention\": {\"rope_theta\": 8.0}}}",
                    &d),
              LLM_EUNSUPPORTED, "rope_parameters differ between layer types");

    /* yarn without original_max_position_embeddings uses max_position_embeddings;
     * a top-level original_max_position_embeddings wins over the dict's */
    CHECK_OK(parse("{" LLAMA_CORE ", \"max_position_embeddings\": 8192, \"rope_scaling\": "
                   "{\"type\": \"yarn\", \"factor\": 2.0, \"beta_fast\": 0, \"beta_slow\": null}}",
                   &d));
    CHECK_INT(d.rope.orig_max_pos, 8192);
    CHECK_DBL(d.rope.beta_fast, 32);
    CHECK_DBL(d.rope.beta_slow, 1);
    llm_desc_free(&d);
    CHECK_OK(parse("{" LLAMA_CORE ", \"original_max_position_embeddings\": 1024, "
                   "\"max_position_embeddings\": 8192, \"rope_scaling\": {\"rope_type\": "
                   "\"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1, \"high_freq_factor\": 4, "
                   "\"original_max_position_embeddings\": 2048}}",
                   &d));
    CHECK_INT(d.rope.orig_max_pos, 1024);
    llm_desc_free(&d);
    /* yarn factor null: max_pos / original */
    CHECK_OK(parse("{" LLAMA_CORE ", \"max_position_embeddings\": 8192, \"rope_scaling\": "
                   "{\"type\": \"yarn\", \"factor\": null, \"original_max_position_embeddings\": "
                   "2048}}",
                   &d));
    CHECK_DBL(d.rope.factor, 4.0);
    llm_desc_free(&d);

    /* Qwen2: layer_types, when present, decide which layers use the window */
    const char *q2 = "{\"architectures\": [\"Qwen2ForCausalLM\"], \"vocab_size\": 100, "
                     "\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 3, "
                     "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
                     "\"use_sliding_window\": true, \"sliding_window\": 16, "
                     "\"max_window_layers\": 1, \"layer_types\": [\"sliding_attention\", "
                     "\"full_attention\", \"sliding_attention\"]}";
    CHECK_OK(parse(q2, &d));
    CHECK_INT(d.sliding_window, 16);
    CHECK(d.layer_window[0] == 1 && d.layer_window[1] == 0 && d.layer_window[2] == 1,
          "layer_types not followed");
    CHECK_INT(d.qkv_bias, 1);
    CHECK_INT(d.o_bias, 0);
    CHECK_INT(d.bos_id, -1); /* Qwen2Config has none */
    CHECK_INT(d.n_eos, 0);
    llm_desc_free(&d);
    /* max_window_layers >= layers: no layer uses the window, so there is none */
    CHECK_OK(parse("{\"architectures\": [\"Qwen2ForCausalLM\"], \"vocab_size\": 100, "
                   "\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 3, "
                   "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
                   "\"use_sliding_window\": true, \"sliding_window\": 16}",
                   &d));
    CHECK_INT(d.sliding_window, 0);
    CHECK_INT(d.layer_window[2], 0);
    llm_desc_free(&d);

    /* generation_config: ids there win, sampling defaults */
    CHECK_OK(parse2("{" LLAMA_CORE ", \"bos_token_id\": [5, 6], \"eos_token_id\": [2, 2, 3], "
                    "\"pad_token_id\": null}",
                    "{\"eos_token_id\": 9, \"pad_token_id\": 7, \"bos_token_id\": null, "
                    "\"temperature\": 0.5, \"top_k\": 0, \"min_p\": 0.05, \"max_new_tokens\": 64, "
                    "\"do_sample\": false}",
                    &d, &g));
    CHECK_INT(d.bos_id, 5);
    CHECK_INT(d.n_eos, 1);
    CHECK_INT(d.eos_ids[0], 9);
    CHECK_INT(d.pad_id, 7);
    CHECK_DBL(g.temperature, 0.5);
    CHECK_DBL(g.min_p, 0.05);
    CHECK_INT(g.max_new_tokens, 64);
    llm_desc_free(&d);
    CHECK_OK(parse("{" LLAMA_CORE ", \"eos_token_id\": [2, 2, 3]}", &d));
    CHECK(d.n_eos == 2 && d.eos_ids[0] == 2 && d.eos_ids[1] == 3, "eos list not deduplicated");
    llm_desc_free(&d);

    /* Gemma: legacy "gelu" means the tanh form; hidden_activation wins */
    CHECK_OK(parse("{\"architectures\": [\"GemmaForCausalLM\"], \"vocab_size\": 100, "
                   "\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2, "
                   "\"num_attention_heads\": 4, \"num_key_value_heads\": 1, \"head_dim\": 32, "
                   "\"hidden_act\": \"gelu\", \"hidden_activation\": \"gelu\"}",
                   &d));
    CHECK_INT(d.act, LLM_ACT_GELU);
    CHECK_DBL(d.embed_scale, 8.0);
    llm_desc_free(&d);

    /* Falcon in the original RW form: RefinedWeb = the new layout */
    CHECK_OK(parse("{\"architectures\": [\"RWForCausalLM\"], \"model_type\": \"RefinedWeb\", "
                   "\"vocab_size\": 100, \"hidden_size\": 64, \"n_layer\": 2, \"n_head\": 8, "
                   "\"n_head_kv\": 2, \"parallel_attn\": true, \"bias\": false}",
                   &d));
    CHECK_INT(d.n_heads, 8);
    CHECK_INT(d.n_kv_heads, 2);
    CHECK_INT(d.parallel_residual, 1);
    CHECK_INT(d.shared_input_norm, 0);
    CHECK_INT(d.intermediate, 256);
    llm_desc_free(&d);
    /* Falcon-11B style: new layout with one norm */
    CHECK_OK(parse("{\"architectures\": [\"FalconForCausalLM\"], \"vocab_size\": 100, "
                   "\"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 8, "
                   "\"num_kv_heads\": 8, \"new_decoder_architecture\": true, "
                   "\"num_ln_in_parallel_attn\": 1, \"ffn_hidden_size\": 100}",
                   &d));
    CHECK_INT(d.shared_input_norm, 1);
    CHECK_INT(d.intermediate, 100);
    llm_desc_free(&d);

    /* MPT: grouped-query attention, softmax_scale, learned positions */
    CHECK_OK(parse("{\"architectures\": [\"MPTForCausalLM\"], \"vocab_size\": 100, "
                   "\"d_model\": 64, \"n_layers\": 2, \"n_heads\": 8, \"expansion_ratio\": 2.5, "
                   "\"no_bias\": false, \"attn_config\": {\"alibi\": false, \"attn_type\": "
                   "\"grouped_query_attention\", \"kv_n_heads\": 2, \"softmax_scale\": 0.5}}",
                   &d));
    CHECK_INT(d.n_kv_heads, 2);
    CHECK_INT(d.intermediate, 160);
    CHECK_DBL(d.attn_scale, 0.5);
    CHECK_INT(d.pos, LLM_POS_LEARNED);
    /* transformers' MPT has no biases whatever no_bias says */
    CHECK_INT(d.norm_bias, 0);
    CHECK_INT(d.qkv_bias, 0);
    llm_desc_free(&d);

    /* MPT: clip_qkv and alibi_bias_max are read, not refused */
    CHECK_OK(parse("{\"architectures\": [\"MPTForCausalLM\"], \"vocab_size\": 100, "
                   "\"d_model\": 64, \"n_layers\": 2, \"n_heads\": 4, \"attn_config\": "
                   "{\"clip_qkv\": 6, \"alibi_bias_max\": 16}}",
                   &d));
    CHECK_DBL(d.clip_qkv, 6);
    CHECK_DBL(d.alibi_max_bias, 16);
    CHECK_INT(d.pos, LLM_POS_ALIBI);
    llm_desc_free(&d);

    /* a pre-quantized config reads, its quantization_config parsed and kept */
    {
        json_t *cj = json_loads("{" LLAMA_CORE ", \"quantization_config\": {\"quant_method\": "
                                "\"awq\", \"bits\": 4, \"group_size\": 128, \"zero_point\": "
                                "true, \"version\": \"gemm\"}}",
                                0, NULL);
        struct llm_hf_quant q;
        CHECK_OK(llm_hfconfig_parse_ex(cj, NULL, "c.json", &d, NULL, &q));
        CHECK(!strcmp(q.method, "awq") && q.bits == 4 && q.group_size == 128 &&
                  q.zero_point == 1 && !strcmp(q.fmt, "gemm") && q.raw,
              "awq quantization_config parsed: %s %d %d %d %s", q.method, q.bits, q.group_size,
              q.zero_point, q.fmt);
        /* AutoAWQ GEMM 4-bit is imported (lib/model/hfquant.c) */
        CHECK_OK(llm_hf_quant_importable(&q, "c.json"));
        llm_hf_quant_free(&q);
        snprintf(q.method, sizeof q.method, "bitsandbytes");
        CHECK_ERR(llm_hf_quant_importable(&q, "c.json"), LLM_EUNSUPPORTED,
                  "pre-quantized checkpoints are not supported "
                  "(quantization_config.quant_method 'bitsandbytes')");
        q.bits = 3;
        snprintf(q.method, sizeof q.method, "awq");
        CHECK_ERR(llm_hf_quant_importable(&q, "c.json"), LLM_EUNSUPPORTED,
                  "(AutoAWQ gemm, 3 bits, group 0) not imported: only 4-bit AWQ");
        llm_desc_free(&d);
        json_decref(cj);
    }

    /* a quantization_config's own strings reach its messages quoted: one line whatever they
     * hold (a fuzzer's find: a strategy of "tok\n") */
    {
        json_t *cj = json_loads(
            "{" LLAMA_CORE ", \"quantization_config\": {\"quant_method\": "
            "\"compressed-tensors\", \"config_groups\": {\"g\\n0\": {\"weights\": {\"type\": "
            "\"float\", \"num_bits\": 8, \"strategy\": \"channel\"}, \"input_activations\": "
            "{\"type\": \"float\", \"num_bits\": 8, \"dynamic\": true, \"strategy\": "
            "\"tok\\n\"}}}}}",
            0, NULL);
        struct llm_hf_quant q;
        CHECK(cj != NULL, "the compressed-tensors config parses as JSON");
        CHECK_OK(llm_hfconfig_parse_ex(cj, NULL, "c.json", &d, NULL, &q));
        CHECK_ERR(llm_hf_quant_importable(&q, "c.json"), LLM_EUNSUPPORTED,
                  "(compressed-tensors group 'g?0': inputs float8 tok? dynamic) not imported");
        CHECK(!strchr(llm_errmsg(), '\n'), "one line: %s", llm_errmsg());
        llm_hf_quant_free(&q);
        llm_desc_free(&d);
        json_decref(cj);
    }

    /* GPT-2 without attention scaling */
    CHECK_OK(parse("{\"architectures\": [\"GPT2LMHeadModel\"], \"vocab_size\": 100, "
                   "\"n_embd\": 64, \"n_layer\": 2, \"n_head\": 4, \"scale_attn_weights\": false, "
                   "\"activation_function\": \"relu\"}",
                   &d));
    CHECK_DBL(d.attn_scale, 1.0);
    CHECK_INT(d.act, LLM_ACT_RELU);
    CHECK_INT(d.intermediate, 256);
    llm_desc_free(&d);

    /* GPT-NeoX in the v5 form */
    CHECK_OK(parse("{\"architectures\": [\"GPTNeoXForCausalLM\"], \"vocab_size\": 100, "
                   "\"hidden_size\": 64, \"intermediate_size\": 256, \"num_hidden_layers\": 2, "
                   "\"num_attention_heads\": 4, \"rope_parameters\": {\"rope_type\": \"default\", "
                   "\"rope_theta\": 10000.0, \"partial_rotary_factor\": 0.5}}",
                   &d));
    CHECK_INT(d.rope.rot_dims, 8);
    llm_desc_free(&d);
}

static void check_errors(void)
{
    struct llm_model_desc d;
    static const struct {
        const char *cfg;
        int code;
        const char *sub;
    } bad[] = {
        {"[]", LLM_EFORMAT, "'d/config.json': not a JSON object"},
        {"{}", LLM_EFORMAT, "'d/config.json': missing field 'architectures' (and no 'model_type')"},
        {"{\"architectures\": [\"FooForCausalLM\"]}", LLM_EUNSUPPORTED,
         "'d/config.json': unsupported architecture 'FooForCausalLM'"},
        {"{\"architectures\": \"LlamaForCausalLM\"}", LLM_EFORMAT,
         "field 'architectures' must be a list of strings, found a string"},
        {"{\"architectures\": [1]}", LLM_EFORMAT, "must be a list of strings, found an integer in"},
        {"{\"model_type\": \"t5\"}", LLM_EUNSUPPORTED, "unsupported model_type 't5'"},
        {"{\"model_type\": 5}", LLM_EFORMAT,
         "field 'model_type' must be a string, found an integer"},
        {"{\"architectures\": [\"LlamaForCausalLM\"]}", LLM_EFORMAT, "missing field 'vocab_size'"},
        {"{" LLAMA_CORE ", \"hidden_size\": null}", LLM_EFORMAT, "missing field 'hidden_size'"},
        {"{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 100, \"hidden_size\": 64, "
         "\"num_hidden_layers\": 4, \"num_attention_heads\": 4}",
         LLM_EFORMAT, "missing field 'intermediate_size'"},
        {"{" LLAMA_CORE ", \"vocab_size\": \"100\"}", LLM_EFORMAT,
         "field 'vocab_size' must be an integer, found a string"},
        {"{" LLAMA_CORE ", \"vocab_size\": 1.5}", LLM_EFORMAT,
         "field 'vocab_size' must be an integer, found a real number"},
        {"{" LLAMA_CORE ", \"num_hidden_layers\": 0}", LLM_ERANGE,
         "field 'num_hidden_layers' is 0, expected 1..512"},
        {"{" LLAMA_CORE ", \"num_hidden_layers\": 513}", LLM_ERANGE, "is 513, expected 1..512"},
        {"{" LLAMA_CORE ", \"hidden_size\": 66}", LLM_EFORMAT,
         "hidden_size 66 is not a multiple of num_attention_heads 4"},
        {"{" LLAMA_CORE ", \"num_key_value_heads\": 3}", LLM_EFORMAT,
         "num_key_value_heads 3 does not divide the 4 attention heads"},
        {"{" LLAMA_CORE ", \"rms_norm_eps\": \"1e-5\"}", LLM_EFORMAT,
         "field 'rms_norm_eps' must be a number, found a string"},
        {"{" LLAMA_CORE ", \"rms_norm_eps\": 0}", LLM_ERANGE, "field 'rms_norm_eps' is 0"},
        {"{" LLAMA_CORE ", \"hidden_act\": \"quick_gelu\"}", LLM_EUNSUPPORTED,
         "unsupported hidden_act 'quick_gelu'"},
        {"{" LLAMA_CORE ", \"hidden_act\": 3}", LLM_EFORMAT, "field 'hidden_act' must be a string"},
        {"{" LLAMA_CORE ", \"tie_word_embeddings\": \"yes\"}", LLM_EFORMAT,
         "field 'tie_word_embeddings' must be true or false, found a string"},
        {"{" LLAMA_CORE ", \"torch_dtype\": \"int8\"}", LLM_EUNSUPPORTED,
         "unsupported torch_dtype 'int8'"},
        {"{" LLAMA_CORE ", \"quantization_config\": [1]}", LLM_EFORMAT,
         "field 'quantization_config' must be an object, found an array"},
        {"{" LLAMA_CORE ", \"rope_theta\": -1}", LLM_ERANGE, "field 'rope_theta' is -1"},
        {"{" LLAMA_CORE ", \"rope_scaling\": 2}", LLM_EFORMAT,
         "field 'rope_scaling' must be an object or null, found an integer"},
        {"{" LLAMA_CORE ", \"rope_parameters\": []}", LLM_EFORMAT,
         "field 'rope_parameters' must be an object, found an array"},
        {"{" LLAMA_CORE ", \"rope_scaling\": {\"type\": \"linear\"}}", LLM_EFORMAT,
         "missing field 'rope_scaling.factor'"},
        {"{" LLAMA_CORE ", \"rope_parameters\": {\"rope_type\": \"dynamic\"}}", LLM_EFORMAT,
         "missing field 'rope_parameters.factor'"},
        {"{" LLAMA_CORE ", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 0}}", LLM_ERANGE,
         "field 'rope_scaling.factor' is 0"},
        {"{" LLAMA_CORE ", \"rope_scaling\": {\"type\": 1}}", LLM_EFORMAT,
         "field 'rope_scaling.type' must be a string, found an integer"},
        {"{" LLAMA_CORE ", \"rope_scaling\": {\"rope_type\": \"mrope\"}}", LLM_EUNSUPPORTED,
         "unsupported rope_scaling.type 'mrope'"},
        {"{" LLAMA_CORE ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8}}",
         LLM_EFORMAT, "missing field 'rope_scaling.low_freq_factor'"},
        {"{" LLAMA_CORE ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8, "
         "\"low_freq_factor\": 4, \"high_freq_factor\": 1}}",
         LLM_ERANGE, "field 'rope_scaling.high_freq_factor' (1) must exceed low_freq_factor (4)"},
        {"{" LLAMA_CORE ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4, "
         "\"truncate\": \"no\"}}",
         LLM_EFORMAT, "rope_scaling.truncate"},
        {"{" LLAMA_CORE ", \"rope_scaling\": {\"rope_type\": \"longrope\", \"short_factor\": [1], "
         "\"long_factor\": [1]}}",
         LLM_EFORMAT,
         "field 'rope_scaling.long_factor' has 1 entries, expected 8 (rotary dims / 2)"},
        {"{" LLAMA_CORE ", \"rope_scaling\": {\"rope_type\": \"longrope\", \"long_factor\": "
         "[1,1,1,1,1,1,1,1]}}",
         LLM_EFORMAT, "missing field 'rope_scaling.short_factor'"},
        {"{" LLAMA_CORE ", \"rope_scaling\": {\"rope_type\": \"longrope\", \"long_factor\": "
         "[1,1,1,1,1,1,1,-1], \"short_factor\": [1,1,1,1,1,1,1,1]}}",
         LLM_EFORMAT, "field 'rope_scaling.long_factor' entry 7 is not a positive number"},
        {"{" LLAMA_CORE ", \"rope_scaling\": {\"rope_type\": \"longrope\", \"long_factor\": 3}}",
         LLM_EFORMAT, "field 'rope_scaling.long_factor' must be a list of numbers"},
        {"{" LLAMA_CORE ", \"partial_rotary_factor\": 0.01}", LLM_ERANGE,
         "leaves no even number of rotary dims"},
        {"{" LLAMA_CORE ", \"partial_rotary_factor\": 1.5}", LLM_ERANGE,
         "field 'partial_rotary_factor' is 1.5"},
        {"{" LLAMA_CORE ", \"eos_token_id\": \"2\"}", LLM_EFORMAT,
         "field 'eos_token_id' must be a token id, a list of them or null"},
        {"{" LLAMA_CORE ", \"bos_token_id\": 1.5}", LLM_EFORMAT, "field 'bos_token_id' must be a"},
        {"{" LLAMA_CORE ", \"eos_token_id\": [1,2,3,4,5,6,7,8,9]}", LLM_ERANGE,
         "field 'eos_token_id' has more than 8 ids"},
        {"{\"architectures\": [\"Qwen2ForCausalLM\"], \"vocab_size\": 100, \"hidden_size\": 64, "
         "\"intermediate_size\": 128, \"num_hidden_layers\": 2, \"num_attention_heads\": 4}",
         LLM_EFORMAT, "num_key_value_heads 32 does not divide the 4 attention heads"},
        {"{\"architectures\": [\"MistralForCausalLM\"], \"vocab_size\": 100, \"hidden_size\": 64, "
         "\"intermediate_size\": 128, \"num_hidden_layers\": 2, \"num_attention_heads\": 8, "
         "\"layer_types\": [\"full_attention\"]}",
         LLM_EFORMAT, "field 'layer_types' has 1 entries, expected 2 (num_hidden_layers)"},
        {"{\"architectures\": [\"MistralForCausalLM\"], \"vocab_size\": 100, \"hidden_size\": 64, "
         "\"intermediate_size\": 128, \"num_hidden_layers\": 1, \"num_attention_heads\": 8, "
         "\"layer_types\": [\"chunked_attention\"]}",
         LLM_EUNSUPPORTED, "layer_types[0] is 'chunked_attention'"},
        {"{\"architectures\": [\"MistralForCausalLM\"], \"vocab_size\": 100, \"hidden_size\": 64, "
         "\"intermediate_size\": 128, \"num_hidden_layers\": 1, \"num_attention_heads\": 8, "
         "\"sliding_window\": -5}",
         LLM_ERANGE, "field 'sliding_window' is -5"},
        {"{\"architectures\": [\"MixtralForCausalLM\"], \"vocab_size\": 100, \"hidden_size\": 64, "
         "\"intermediate_size\": 128, \"num_hidden_layers\": 1, \"num_attention_heads\": 8, "
         "\"num_local_experts\": 4, \"num_experts_per_tok\": 5}",
         LLM_ERANGE, "field 'num_experts_per_tok' is 5, expected 1..4"},
        {"{\"architectures\": [\"GPT2LMHeadModel\"], \"vocab_size\": 100, \"n_embd\": 64, "
         "\"n_layer\": 2}",
         LLM_EFORMAT, "missing field 'n_head'"},
        {"{\"architectures\": [\"GPT2LMHeadModel\"], \"vocab_size\": 100, \"n_embd\": 64, "
         "\"n_layer\": 2, \"n_head\": 4, \"scale_attn_by_inverse_layer_idx\": true}",
         LLM_EUNSUPPORTED, "scale_attn_by_inverse_layer_idx is not supported"},
        {"{\"architectures\": [\"GPTJForCausalLM\"], \"vocab_size\": 100, \"n_embd\": 64, "
         "\"n_layer\": 2, \"n_head\": 4, \"rotary_dim\": 7}",
         LLM_ERANGE, "field 'rotary_dim' is 7, must be even"},
        {"{\"architectures\": [\"GPTJForCausalLM\"], \"vocab_size\": 100, \"n_embd\": 64, "
         "\"n_layer\": 2, \"n_head\": 4, \"rotary_dim\": 32}",
         LLM_ERANGE, "field 'rotary_dim' is 32, expected 2..16"},
        {"{\"architectures\": [\"FalconForCausalLM\"], \"vocab_size\": 100, \"hidden_size\": 64, "
         "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
         "\"apply_residual_connection_post_layernorm\": true}",
         LLM_EUNSUPPORTED, "apply_residual_connection_post_layernorm is not supported"},
        {"{\"architectures\": [\"FalconForCausalLM\"], \"vocab_size\": 100, \"hidden_size\": 64, "
         "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"new_decoder_architecture\": "
         "true, \"num_kv_heads\": 3}",
         LLM_EFORMAT, "num_kv_heads 3 does not divide"},
        {"{\"architectures\": [\"MPTForCausalLM\"], \"vocab_size\": 100, \"d_model\": 64, "
         "\"n_layers\": 2, \"n_heads\": 4, \"attn_config\": {\"qk_ln\": true}}",
         LLM_EUNSUPPORTED, "attn_config.qk_ln is not supported"},
        {"{\"architectures\": [\"MPTForCausalLM\"], \"vocab_size\": 100, \"d_model\": 64, "
         "\"n_layers\": 2, \"n_heads\": 4, \"attn_config\": {\"alibi_bias_max\": 0}}",
         LLM_ERANGE, "field 'attn_config.alibi_bias_max' is 0"},
        {"{\"architectures\": [\"MPTForCausalLM\"], \"vocab_size\": 100, \"d_model\": 64, "
         "\"n_layers\": 2, \"n_heads\": 4, \"attn_config\": 1}",
         LLM_EFORMAT, "field 'attn_config' must be an object, found an integer"},
        {"{\"architectures\": [\"MPTForCausalLM\"], \"vocab_size\": 100, \"d_model\": 64, "
         "\"n_layers\": 2, \"n_heads\": 4, \"attn_config\": {\"attn_type\": \"x\"}}",
         LLM_EUNSUPPORTED, "unsupported attn_config.attn_type 'x'"},
        {"{\"architectures\": [\"MPTForCausalLM\"], \"vocab_size\": 100, \"d_model\": 64, "
         "\"n_layers\": 2, \"n_heads\": 4, \"logit_scale\": \"inv_sqrt_d_model\"}",
         LLM_EUNSUPPORTED, "logit_scale is not supported"},
        {"{\"architectures\": [\"MPTForCausalLM\"], \"vocab_size\": 100, \"d_model\": 64, "
         "\"n_layers\": 2, \"n_heads\": 4, \"norm_type\": \"rmsnorm\"}",
         LLM_EUNSUPPORTED, "unsupported norm_type 'rmsnorm'"},
        {"{\"architectures\": [\"BloomForCausalLM\"], \"vocab_size\": 100, \"n_embed\": 64, "
         "\"n_layer\": 2, \"n_head\": 4, \"apply_residual_connection_post_layernorm\": true}",
         LLM_EUNSUPPORTED, "apply_residual_connection_post_layernorm is not supported"},
        {"{\"architectures\": [\"Phi3ForCausalLM\"], \"vocab_size\": 100, \"hidden_size\": 64, "
         "\"intermediate_size\": 128, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
         "\"original_max_position_embeddings\": 0, \"rope_scaling\": {\"type\": \"su\"}}",
         LLM_ERANGE, "field 'original_max_position_embeddings' is 0"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        llm_err_clear();
        int rc = parse(bad[i].cfg, &d);
        CHECK(rc == bad[i].code && strstr(llm_errmsg(), bad[i].sub),
              "config %s: got %d (%s) '%s', expected %d (%s) with '%s'", bad[i].cfg, rc,
              llm_strerror(rc), llm_errmsg(), bad[i].code, llm_strerror(bad[i].code), bad[i].sub);
        if (!rc) llm_desc_free(&d);
    }

    /* generation_config.json errors name that file */
    struct llm_gen_defaults g;
    CHECK_ERR(parse2("{" LLAMA_CORE "}", "{\"top_p\": 2}", &d, &g), LLM_ERANGE,
              "'d/generation_config.json': field 'top_p' is 2");
    CHECK_ERR(parse2("{" LLAMA_CORE "}", "{\"do_sample\": \"yes\"}", &d, &g), LLM_EFORMAT,
              "'d/generation_config.json': field 'do_sample' must be true or false");
    CHECK_ERR(parse2("{" LLAMA_CORE "}", "{\"eos_token_id\": {}}", &d, &g), LLM_EFORMAT,
              "'d/generation_config.json': field 'eos_token_id' must be a token id");
    CHECK_ERR(parse2("{" LLAMA_CORE "}", "[]", &d, &g), LLM_EFORMAT,
              "'d/generation_config.json': not a JSON object");

    /* files */
    CHECK_ERR(llm_hfconfig_load("/nonexistent/dir", &d, NULL), LLM_ENOTFOUND,
              "'/nonexistent/dir': no such file or folder");
    char *dir = cfg_dir("");
    CHECK_ERR(llm_hfconfig_load(dir, &d, NULL), LLM_ENOTFOUND, "config.json': no such file");
    free(dir);
    char *tmp = t_mkdtemp();
    char p[4200];
    snprintf(p, sizeof(p), "%s/config.json", tmp);
    /* a repeated key keeps its last value, as Python's json module does */
    const char *dup = "{" LLAMA_CORE ", \"num_hidden_layers\": 7}";
    t_spit(p, dup, strlen(dup));
    CHECK_OK(llm_hfconfig_load(tmp, &d, NULL));
    CHECK_INT(d.n_layers, 7);
    llm_desc_free(&d);
    t_spit(p, "{\"a\": 1,\n}", 10);
    CHECK_ERR(llm_hfconfig_load(tmp, &d, NULL), LLM_EFORMAT, "config.json': not valid JSON: ");
    t_spit(p, "{" LLAMA_CORE "}", strlen("{" LLAMA_CORE "}"));
    snprintf(p, sizeof(p), "%s/generation_config.json", tmp);
    t_spit(p, "{", 1);
    CHECK_ERR(llm_hfconfig_load(tmp, &d, NULL), LLM_EFORMAT, "generation_config.json': not valid");
    t_rmtree(tmp);
}

static int dump(int argc, char **argv)
{
    int rc = 0;
    for (int i = 0; i < argc; i++) {
        struct llm_model_desc d;
        struct llm_gen_defaults g;
        if (llm_hfconfig_load(argv[i], &d, &g)) {
            fprintf(stderr, "%s\n", llm_errmsg());
            rc = 1;
            continue;
        }
        json_t *j = llm_desc_to_json(&d);
        /* what the checkpoint holds: not the norms a conversion writes as ones (OLMo) */
        json_object_set_new(
            j, "n_params",
            json_integer((json_int_t)(llm_desc_n_params(&d) - llm_hfmap_made_params(&d))));
        json_object_set_new(j, "generation", llm_gen_defaults_to_json(&g));
        json_object_set_new(j, "dir", json_string(argv[i]));
        char *s = json_dumps(j, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(j);
        llm_desc_free(&d);
    }
    return rc;
}

/* The reader of Python-written JSON: what Python writes and jansson does
 * not read, each on its own and at the very end of the buffer, where a
 * replacement must not read or write past it. */
static json_t *pyjson(const char *text, size_t len)
{
    json_t *j = NULL;
    int rc = llm_hf_json_parse(text, len, "t/x.json", &j);
    CHECK(rc == 0, "'%.*s': %s", (int)len, text, llm_errmsg());
    return j;
}

static void check_pyjson(void)
{
    json_t *j = pyjson("{\"a\": 1000000000000000019884624838656, \"b\": 9223372036854775807,"
                       " \"c\": -9223372036854775809, \"d\": NaN, \"e\": Infinity,"
                       " \"f\": -Infinity, \"g\": [-Infinity,Infinity,NaN],"
                       " \"s\": \"NaN -Infinity 99999999999999999999\"}",
                       strlen("{\"a\": 1000000000000000019884624838656, \"b\": 9223372036854775807,"
                              " \"c\": -9223372036854775809, \"d\": NaN, \"e\": Infinity,"
                              " \"f\": -Infinity, \"g\": [-Infinity,Infinity,NaN],"
                              " \"s\": \"NaN -Infinity 99999999999999999999\"}"));
    if (j) {
        CHECK(json_is_real(json_object_get(j, "a")), "a big integer is a real");
        CHECK_DBL(json_real_value(json_object_get(j, "a")), 1e30);
        CHECK_INT(json_integer_value(json_object_get(j, "b")), INT64_MAX);
        CHECK_DBL(json_real_value(json_object_get(j, "c")), -9223372036854775809.0);
        CHECK(json_is_null(json_object_get(j, "d")), "NaN reads as null");
        CHECK_DBL(json_real_value(json_object_get(j, "e")), 1.7976931348623157e308);
        CHECK_DBL(json_real_value(json_object_get(j, "f")), -1.7976931348623157e308);
        json_t *g = json_object_get(j, "g");
        CHECK_INT(json_array_size(g), 3);
        CHECK_DBL(json_real_value(json_array_get(g, 0)), -1.7976931348623157e308);
        CHECK_DBL(json_real_value(json_array_get(g, 1)), 1.7976931348623157e308);
        CHECK(json_is_null(json_array_get(g, 2)), "NaN in a list reads as null");
        CHECK_STR(json_string_value(json_object_get(j, "s")),
                  "NaN -Infinity 99999999999999999999");
        json_decref(j);
    }
    /* a replaced word or number ending the buffer (an unterminated list:
     * an error, read without overrun; exactly n bytes, so ASan sees one) */
    static const char *ends[] = {"[-Infinity", "[Infinity", "[NaN", "[123456789012345678901"};
    for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
        size_t n = strlen(ends[i]);
        char *b = malloc(n);
        memcpy(b, ends[i], n);
        json_t *v = NULL;
        int rc = llm_hf_json_parse(b, n, "t/x.json", &v);
        CHECK(rc == LLM_EFORMAT && strstr(llm_errmsg(), "t/x.json"), "'%s': rc %d: %s", ends[i],
              rc, llm_errmsg());
        json_decref(v);
        free(b);
    }
    /* broken words are errors, not crashes (a fuzzer's find: "-Inf..." cut short) */
    static const char *bad[] = {"-", "-Inf", "{\"a\": -Infinit", "{\"a\": -}", "NaNa", "Infinityx"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *v = NULL;
        int rc = llm_hf_json_parse(bad[i], strlen(bad[i]), "t/x.json", &v);
        CHECK(rc == LLM_EFORMAT && strstr(llm_errmsg(), "t/x.json"),
              "bad[%zu]: rc %d: %s", i, rc, llm_errmsg());
        json_decref(v);
    }
    /* the fuzzer's input itself: a string left open, then "-Infinity" at the end */
    static const char crash[] = "{J  \"arz\n  \"architec \0chitre-\0\0\315\336\0302\376\177\0\0\0-Infinity";
    json_t *v = NULL;
    int rc = llm_hf_json_parse(crash, sizeof crash - 1, "t/x.json", &v);
    CHECK(rc == LLM_EFORMAT, "the fuzzer's input: rc %d", rc);
    json_decref(v);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--dump")) return dump(argc - 2, argv + 2);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_case(&cases[i]);
    check_gen();
    check_inline();
    check_errors();
    check_pyjson();
    return t_report("test-hfconfig");
}
