/* ea_test.h - shared by the engine tests: a CHECK macro, small model
 * descriptions, an artifact writer with seeded random weights (and ways to
 * break it), the bit-for-bit comparison of an engine with its source, and a
 * one-sequence forward through any backend.
 *
 * Design: the source artifact is written here with llm_aw (not through
 * llm-convert), so each test controls exactly what the builder sees: the
 * dtype, the tensor order (gate before fc in odd layers, so pairing must not
 * depend on order), a missing or misshapen tensor, quantization and
 * mapping members.  Values are generated in f32 and rounded once to the
 * stored dtype, so two artifacts of the same seed in different dtypes hold
 * the same numbers rounded differently.
 */
#ifndef EA_TEST_H
#define EA_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "llm/artifact.h"
#include "llm/backend.h"
#include "llm/dtype.h"
#include "llm/engine_artifact.h"
#include "llm/err.h"
#include "llm/hf.h"
#include "llm/model.h"

static int failures __attribute__((unused)), checks __attribute__((unused));

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, " [last error: %s]\n", llm_errmsg());                                  \
        }                                                                                          \
    } while (0)

/* Llama-style with GQA and every bias the CPU backend knows (q/k/v, o, MLP,
 * lm_head), so every tensor kind goes through the build. */
static const char ea_config_biased[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 32,"
    " \"intermediate_size\": 40, \"num_hidden_layers\": 3, \"num_attention_heads\": 4,"
    " \"num_key_value_heads\": 2, \"vocab_size\": 64, \"max_position_embeddings\": 128,"
    " \"rms_norm_eps\": 1e-06, \"hidden_act\": \"silu\", \"tie_word_embeddings\": false,"
    " \"attention_bias\": true, \"mlp_bias\": true,"
    " \"torch_dtype\": \"float32\", \"bos_token_id\": 1, \"eos_token_id\": 2}";

/* Qwen2-style: q/k/v biases only, tied embeddings. */
static const char ea_config_tied[] =
    "{\"architectures\": [\"Qwen2ForCausalLM\"], \"model_type\": \"qwen2\", \"hidden_size\": 32,"
    " \"intermediate_size\": 48, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
    " \"num_key_value_heads\": 1, \"vocab_size\": 80, \"max_position_embeddings\": 64,"
    " \"rms_norm_eps\": 1e-06, \"hidden_act\": \"silu\", \"tie_word_embeddings\": true,"
    " \"torch_dtype\": \"bfloat16\", \"bos_token_id\": 1, \"eos_token_id\": 2}";

/* GPT-2-style: plain (non-gated) MLP, LayerNorm with biases, learned
 * positions: nothing to fuse. */
static const char ea_config_plain[] =
    "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\", \"n_embd\": 32,"
    " \"n_inner\": 64, \"n_layer\": 2, \"n_head\": 4, \"vocab_size\": 72, \"n_positions\": 48,"
    " \"torch_dtype\": \"float32\", \"bos_token_id\": 1, \"eos_token_id\": 2}";

static inline int ea_desc(const char *config, struct llm_model_desc *d, int lm_head_bias)
{
    json_error_t je;
    json_t *c = json_loads(config, 0, &je);
    struct llm_gen_defaults g;
    llm_desc_init(d);
    int rc = c ? llm_hfconfig_parse(c, NULL, "config.json", d, &g) : LLM_EFORMAT;
    json_decref(c);
    if (!rc) d->lm_head_bias = lm_head_bias; /* not a Llama option; the backends read it */
    return rc;
}

static inline uint64_t ea_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t ea_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

struct ea_write {
    int dtype; /* stored dtype of every tensor */
    uint64_t seed;
    const char *skip;       /* leave this tensor out */
    const char *short_rows; /* write this tensor with 8 rows fewer */
    const char *quant_algo; /* quantization.quant_algo (NULL: null) */
    int world_size;         /* mapping (0: 1) */
    int engine_member;      /* add a (bogus) "engine" member */
};

/* Write the description's tensors to path; odd layers put mlp.gate before
 * mlp.fc. */
static inline int ea_write_model(const char *path, const struct llm_model_desc *d,
                                 const struct ea_write *o)
{
    char(*names)[LLM_NAME_MAX];
    size_t n;
    int rc = llm_desc_tensor_names(d, &names, &n);
    if (rc) return rc;
    for (size_t i = 0; i + 1 < n; i++) { /* swap fc and gate in odd layers */
        int l;
        char rest[LLM_NAME_MAX];
        if (sscanf(names[i], "transformer.layers.%d.%127s", &l, rest) == 2 && (l & 1) &&
            !strcmp(rest, "mlp.fc.weight") && strstr(names[i + 1], "mlp.gate.weight")) {
            char t[LLM_NAME_MAX];
            memcpy(t, names[i], LLM_NAME_MAX);
            memcpy(names[i], names[i + 1], LLM_NAME_MAX);
            memcpy(names[i + 1], t, LLM_NAME_MAX);
            i++;
        }
    }
    struct llm_gen_defaults g;
    llm_gen_defaults_init(&g);
    json_t *meta = json_pack(
        "{s:o, s:o, s:n, s:{s:o, s:n}, s:{s:i, s:i, s:i, s:i, s:i},"
        " s:[{s:s, s:s, s:s, s:[s]}]}",
        "model", llm_desc_to_json(d), "generation", llm_gen_defaults_to_json(&g), "tokenizer",
        "quantization", "quant_algo", o->quant_algo ? json_string(o->quant_algo) : json_null(),
        "kv_cache_quant_algo", "mapping", "world_size", o->world_size ? o->world_size : 1,
        "tp_size", o->world_size ? o->world_size : 1, "pp_size", 1, "tp_rank", 0, "pp_rank", 0,
        "provenance", "tool", "ea-test", "version", "0", "commit", "none", "argv", "ea-test");
    if (meta && o->engine_member)
        json_object_set_new(meta, "engine", json_pack("{s:i}", "version", 1));
    struct llm_aw *w = NULL;
    rc = meta ? llm_aw_create(&w, path, meta, NULL) : LLM_ENOMEM;
    json_decref(meta);
    for (size_t i = 0; i < n && !rc; i++) {
        if (o->skip && !strcmp(names[i], o->skip)) continue;
        int nd;
        int64_t sh[LLM_MAX_DIMS];
        if ((rc = llm_desc_tensor_shape(d, names[i], &nd, sh))) break;
        if (o->short_rows && !strcmp(names[i], o->short_rows)) sh[0] -= 8;
        uint64_t numel = 1, nb;
        for (int k = 0; k < nd; k++)
            numel *= (uint64_t)sh[k];
        float *f = malloc(sizeof(float) * (numel ? numel : 1));
        void *buf = malloc(8 * (numel ? numel : 1));
        uint64_t s = o->seed ^ ea_hash(names[i]);
        int norm = strstr(names[i], "layernorm") || strstr(names[i], "ln_f");
        for (uint64_t k = 0; k < numel; k++) {
            double u = (double)(ea_rng(&s) >> 11) * 0x1p-53 * 2.0 - 1.0;
            f[k] = norm ? (float)(1.0 + 0.1 * u) : (float)(0.3 * u);
        }
        llm_dtype_nbytes(o->dtype, numel, &nb);
        rc = llm_convert(buf, o->dtype, f, LLM_DTYPE_F32, (size_t)numel);
        if (!rc) rc = llm_aw_add(w, names[i], o->dtype, nd, sh, buf, nb);
        free(f);
        free(buf);
    }
    free(names);
    if (rc) {
        llm_aw_abort(w);
        return rc;
    }
    return llm_aw_finish(w);
}

/* Build path -> out with defaults for the description and arch sm_XY. */
static inline int ea_build(const char *in, const char *out, int dtype, const char *arch)
{
    struct llm_ea_builder *b = NULL;
    struct llm_ea_info e;
    llm_ea_info_init(&e);
    int rc = llm_ea_build_open(&b, in);
    if (!rc) {
        const struct llm_model_desc *d = llm_ea_build_desc(b);
        e.compute_dtype = dtype;
        llm_ea_limits_default(d, dtype, &e.lim);
        e.lim.max_tokens = 256;
        e.lim.max_batch = 16;
        rc = llm_ea_parse_arch(arch, &e.cc_major, &e.cc_minor, &e.arch_suffix);
        if (!rc) rc = llm_ea_plan_gemms(d, dtype, &e.lim, &e.gemm, &e.n_gemm);
    }
    json_t *prov = json_pack("{s:s, s:s, s:s, s:[s]}", "tool", "llm-build", "version", "test",
                             "commit", "none", "argv", "llm-build");
    if (!rc) rc = llm_ea_build_run(b, out, &e, prov, NULL);
    json_decref(prov);
    llm_ea_info_free(&e);
    llm_ea_build_close(b);
    return rc;
}

/* Every tensor of the engine equals its source converted to the engine's
 * dtype (f32 for lm_head.bias), and each mlp.fc_gate equals fc's rows then
 * gate's, byte for byte.  Returns the number of mismatches. */
static inline int ea_compare(const char *src_path, const char *eng_path, int *n_fused)
{
    struct llm_artifact *s = NULL, *e = NULL;
    int bad = 0;
    *n_fused = 0;
    if (llm_ar_open(&s, src_path, LLM_AR_VERIFY) || llm_ar_open(&e, eng_path, LLM_AR_VERIFY)) {
        fprintf(stderr, "cannot open: %s\n", llm_errmsg());
        llm_ar_close(s);
        return 1;
    }
    struct llm_ea_info info;
    if (llm_ea_info_from_meta(llm_ar_meta(e), eng_path, &info)) {
        fprintf(stderr, "no engine info: %s\n", llm_errmsg());
        bad++;
        goto out;
    }
    int dt = info.compute_dtype;
    llm_ea_info_free(&info);
    for (size_t i = 0; i < llm_ar_count(e); i++) {
        struct llm_tensor t;
        if (llm_ar_get(e, i, &t)) {
            bad++;
            continue;
        }
        const char *fg = strstr(t.name, "mlp.fc_gate.");
        char src[2][LLM_NAME_MAX];
        int nsrc = 1;
        snprintf(src[0], LLM_NAME_MAX, "%s", t.name);
        if (fg) {
            nsrc = 2;
            snprintf(src[0], LLM_NAME_MAX, "%.*smlp.fc.%s", (int)(fg - t.name), t.name,
                     fg + strlen("mlp.fc_gate."));
            snprintf(src[1], LLM_NAME_MAX, "%.*smlp.gate.%s", (int)(fg - t.name), t.name,
                     fg + strlen("mlp.fc_gate."));
            (*n_fused)++;
        }
        int want_dt = !strcmp(t.name, "lm_head.bias") ? LLM_DTYPE_F32 : dt;
        uint64_t off = 0;
        uint8_t *ref = malloc(t.nbytes ? t.nbytes : 1);
        int ok = t.dtype == want_dt;
        for (int k = 0; k < nsrc && ok; k++) {
            struct llm_tensor u;
            uint64_t numel = 1, nb;
            ok = !llm_ar_find(s, src[k], &u);
            for (int j = 0; ok && j < u.ndim; j++)
                numel *= (uint64_t)u.shape[j];
            ok = ok && !llm_dtype_nbytes(want_dt, numel, &nb) && off + nb <= t.nbytes &&
                 !llm_convert(ref + off, want_dt, u.data, u.dtype, (size_t)numel);
            if (ok) off += nb;
            ok = ok && u.ndim == t.ndim && u.shape[0] * nsrc == t.shape[0];
        }
        ok = ok && off == t.nbytes && !memcmp(ref, t.data, t.nbytes);
        if (!ok) {
            fprintf(stderr, "  engine tensor '%s' (%s) differs from its source\n", t.name,
                    llm_dtype_name(t.dtype));
            bad++;
        }
        free(ref);
    }
out:
    llm_ar_close(s);
    llm_ar_close(e);
    return bad;
}

/* One sequence of n tokens as a prefill, then two decode steps; all logits
 * into out ([n + 2][vocab]). */
static inline int ea_forward(struct llm_backend *be, int n, float *out)
{
    int32_t tok[64], pos[64], rows[64], bt[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    int64_t V = be->vocab;
    for (int i = 0; i < n; i++) {
        tok[i] = (int32_t)((i * 7 + 3) % V);
        pos[i] = i;
        rows[i] = i;
    }
    int32_t ss[2] = {0, n}, sl[1] = {n};
    struct llm_batch b = {n, tok, pos, 1, ss, sl, bt, 8, n, rows};
    int rc = be->ops->forward(be, &b);
    if (!rc) rc = be->ops->get_logits(be, out);
    for (int step = 0; step < 2 && !rc; step++) {
        int32_t t1[1] = {(int32_t)((step * 5 + 11) % V)}, p1[1] = {n + step}, r1[1] = {0};
        int32_t ss1[2] = {0, 1}, sl1[1] = {n + step + 1};
        struct llm_batch d = {1, t1, p1, 1, ss1, sl1, bt, 8, 1, r1};
        rc = be->ops->forward(be, &d);
        if (!rc) rc = be->ops->get_logits(be, out + (size_t)(n + step) * (size_t)V);
    }
    return rc;
}

#endif
