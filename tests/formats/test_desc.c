/* test_desc.c - the model description: name tables, the JSON form (exact
 * round trip for every sample config and for descriptions using every
 * field; every field missing or mistyped is named), validation, canonical
 * tensor names and shapes, and parameter counts. */
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

static const char *samples[] = {
    "llama1-7b",
    "llama2-7b",
    "llama3-8b",
    "llama3.1-8b-instruct",
    "llama-linear",
    "llama-dynamic",
    "llama-yarn",
    "llama-v5-params",
    "llama-v5-yarn",
    "mistral-7b-v0.1",
    "mistral-7b-v0.3",
    "qwen2.5-0.5b-instruct",
    "qwen2-sliding-yarn",
    "mixtral-8x7b",
    "gemma-2b",
    "phi3-mini-4k",
    "phi3-mini-128k",
    "phi4-mini",
    "gpt2",
    "gpt-j-6b",
    "pythia-160m",
    "falcon-7b",
    "falcon-40b",
    "falcon-rw-1b",
    "mpt-7b",
    "bloom-560m",
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

static int load(const char *name, struct llm_model_desc *d)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/tests/formats/configs/%s", t_srcdir(), name);
    int rc = llm_hfconfig_load(dir, d, NULL);
    CHECK(rc == 0, "%s: %s", name, llm_errmsg());
    return rc;
}

/* Two descriptions are the same, field by field. */
static int same_desc(const struct llm_model_desc *a, const struct llm_model_desc *b,
                     const char *what)
{
    struct llm_model_desc x = *a, y = *b;
    int ok = 1;
    /* the factor arrays are compared by value, the rest bytewise */
    x.rope.long_factor = x.rope.short_factor = NULL;
    y.rope.long_factor = y.rope.short_factor = NULL;
    if (memcmp(&x, &y, sizeof(x)) != 0) {
        ok = 0;
        CHECK(0, "%s: descriptions differ after the round trip", what);
    }
    for (int i = 0; ok && i < a->rope.n_factors; i++)
        if (a->rope.long_factor[i] != b->rope.long_factor[i] ||
            a->rope.short_factor[i] != b->rope.short_factor[i]) {
            ok = 0;
            CHECK(0, "%s: rope factor %d differs", what, i);
        }
    return ok;
}

/* to_json -> text -> from_json gives the same description and JSON. */
static void round_trip(const struct llm_model_desc *d, const char *what)
{
    json_t *j = llm_desc_to_json(d);
    CHECK(j != NULL, "%s: to_json failed", what);
    if (!j) return;
    char *text = json_dumps(j, JSON_COMPACT);
    json_error_t je;
    json_t *j2 = json_loads(text, 0, &je);
    struct llm_model_desc e;
    int rc = llm_desc_from_json(&e, j2);
    CHECK(rc == 0, "%s: from_json failed: %s", what, llm_errmsg());
    if (!rc) {
        same_desc(d, &e, what);
        json_t *j3 = llm_desc_to_json(&e);
        CHECK(json_equal(j, j3), "%s: JSON differs after the round trip", what);
        json_decref(j3);
        llm_desc_free(&e);
    }
    json_decref(j2);
    free(text);
    json_decref(j);
}

/* A description that sets every field away from its default. */
/* Description fields added after artifact format 1.0 (optional on reading). */
static int since_1_0(const char *key)
{
    static const char *const k[] = {
        "embed_dim",      "norm_offset",         "pos_offset",        "alibi_max_bias",
        "alibi_scaled",   "norm_after",          "sandwich_norm",     "qk_norm",
        "clip_qkv",       "embed_norm",          "final_norm",        "final_softcap",
        "moe_norm_topk",  "rope_local_theta",    "nope_layers",       "logit_scale",
        "residual_scale", "shared_expert_inter", "shared_expert_gate", "attn_sinks",
        "router_bias", "moe_scale", "attn_qscale_beta"};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (!strcmp(key, k[i])) return 1;
    return 0;
}

static void make_full(struct llm_model_desc *d)
{
    llm_desc_init(d);
    d->arch = LLM_ARCH_PHI3;
    snprintf(d->hf_arch, sizeof(d->hf_arch), "Phi3ForCausalLM");
    snprintf(d->model_type, sizeof(d->model_type), "phi3");
    d->dtype = LLM_DTYPE_BF16;
    d->vocab_size = 1000;
    d->hidden = 96;
    d->n_layers = 5;
    d->n_heads = 6;
    d->n_kv_heads = 2;
    d->head_dim = 20;
    d->intermediate = 250;
    d->max_pos = 4096;
    d->norm = LLM_NORM_LAYER;
    d->norm_eps = 1.2345678901234567e-7;
    d->act = LLM_ACT_GELU_TANH;
    d->gated_mlp = 0;
    d->pos = LLM_POS_ROPE;
    d->rope.theta = 123456.789;
    d->rope.rot_dims = 12;
    d->rope.neox = 0;
    d->rope.scaling = LLM_ROPE_SCALING_LONGROPE;
    d->rope.factor = 3.3;
    d->rope.orig_max_pos = 1024;
    d->rope.low_freq_factor = 0.1;
    d->rope.high_freq_factor = 0.7;
    d->rope.beta_fast = 31.5;
    d->rope.beta_slow = 0.5;
    d->rope.attn_factor = 1.0 / 3.0;
    d->rope.mscale = 0.707;
    d->rope.mscale_all_dim = 0.1;
    d->rope.n_factors = 6;
    d->rope.long_factor = malloc(6 * sizeof(float));
    d->rope.short_factor = malloc(6 * sizeof(float));
    for (int i = 0; i < 6; i++) {
        d->rope.long_factor[i] = 1.0f + (float)i / 7.0f;
        d->rope.short_factor[i] = 1.0f / (float)(i + 1);
    }
    d->parallel_residual = 1;
    d->shared_input_norm = 1;
    d->tied_embeddings = 1;
    d->qkv_bias = d->o_bias = d->mlp_bias = d->norm_bias = d->lm_head_bias = 1;
    d->sliding_window = 77;
    d->layer_window[1] = d->layer_window[4] = 1;
    d->rope_local_theta = 55.5;
    d->layer_local_rope[0] = d->layer_local_rope[3] = 1;
    d->layer_no_rope[2] = 1;
    d->logit_scale = 0.0625;
    d->attn_scale = 0.125;
    d->embed_scale = sqrt(96.0);
    d->attn_softcap = 30.0;
    d->n_experts = 4;
    d->n_experts_per_tok = 2;
    d->shared_expert_inter = 48;
    d->shared_expert_gate = 1;
    d->attn_sinks = 1;
    d->router_bias = 1;
    d->moe_scale = 2.5;
    d->bos_id = 7;
    d->n_eos = 3;
    d->eos_ids[0] = 1;
    d->eos_ids[1] = 999;
    d->eos_ids[2] = 0;
    d->pad_id = 0;
}

static void test_tables(void)
{
    const char *(*fns[])(int) = {llm_arch_name, llm_act_name, llm_norm_name, llm_pos_name,
                                 llm_rope_scaling_name};
    int counts[] = {LLM_ARCH_COUNT, LLM_ACT_COUNT, LLM_NORM_COUNT, LLM_POS_COUNT,
                    LLM_ROPE_SCALING_COUNT};
    for (int t = 0; t < 5; t++) {
        for (int v = 0; v < counts[t]; v++) {
            const char *n = fns[t](v);
            CHECK(n && strcmp(n, "?") && *n, "table %d value %d has no name", t, v);
            for (int w = 0; w < v; w++)
                CHECK(strcmp(n, fns[t](w)), "table %d: values %d and %d share '%s'", t, v, w, n);
        }
        CHECK_STR(fns[t](counts[t]), "?");
        CHECK_STR(fns[t](-1), "?");
    }
    for (int v = 0; v < LLM_ARCH_COUNT; v++)
        CHECK(llm_arch_from_name(llm_arch_name(v)) == v, "arch '%s' does not parse back",
              llm_arch_name(v));
    CHECK(llm_arch_from_name("llama2") == LLM_EINVAL, "unknown arch name parsed");
    CHECK(llm_arch_from_name(NULL) == LLM_EINVAL, "NULL arch name parsed");
    CHECK_STR(llm_arch_name(LLM_ARCH_LLAMA), "llama");
    CHECK_STR(llm_rope_scaling_name(LLM_ROPE_SCALING_LONGROPE), "longrope");

    struct llm_model_desc d;
    llm_desc_init(&d);
    CHECK_DBL(d.rope.theta, 10000);
    CHECK_DBL(d.norm_eps, 1e-5);
    CHECK_INT(d.bos_id, -1);
    CHECK_INT(d.pad_id, -1);
    CHECK_INT(d.rope.neox, 1);
    CHECK_ERR(llm_desc_validate(&d), LLM_EFORMAT, "model field 'vocab_size'");
    llm_desc_free(&d);
    llm_desc_free(NULL);
    struct llm_gen_defaults g;
    llm_gen_defaults_init(&g);
    CHECK_DBL(g.temperature, 1.0);
    CHECK_DBL(g.top_p, 1.0);
    CHECK_DBL(g.repetition_penalty, 1.0);
    CHECK_INT(g.top_k, 0);
}

static void test_round_trips(void)
{
    for (size_t i = 0; i < NSAMPLES; i++) {
        struct llm_model_desc d;
        if (load(samples[i], &d)) continue;
        round_trip(&d, samples[i]);
        llm_desc_free(&d);
    }
    struct llm_model_desc d;
    make_full(&d);
    CHECK_OK(llm_desc_validate(&d));
    round_trip(&d, "every field");
    /* the residual scale, which needs sequential dense blocks */
    d.parallel_residual = d.shared_input_norm = 0;
    d.n_experts = d.n_experts_per_tok = 0;
    d.shared_expert_inter = d.shared_expert_gate = d.router_bias = 0;
    d.residual_scale = 0.22;
    CHECK_OK(llm_desc_validate(&d));
    round_trip(&d, "residual_scale");
    d.residual_scale = 0;
    d.parallel_residual = d.shared_input_norm = 1;
    d.n_experts = 4;
    d.n_experts_per_tok = 2;
    d.shared_expert_inter = 48;
    d.shared_expert_gate = 1;
    /* every name of every enum survives too */
    for (int a = 0; a < LLM_ARCH_COUNT; a++) {
        d.arch = a;
        for (int act = 0; act < LLM_ACT_COUNT; act++) {
            d.act = act;
            d.gated_mlp = act == LLM_ACT_SWIGLU_OAI; /* gated only */
            round_trip(&d, llm_arch_name(a));
        }
    }
    d.act = LLM_ACT_SWIGLU_OAI; /* with its two constants */
    d.gated_mlp = 1;
    d.swiglu_alpha = 1.5;
    d.swiglu_limit = 0.25;
    round_trip(&d, "swiglu_oai");
    d.gated_mlp = 0;
    d.swiglu_limit = 0;
    CHECK_ERR(llm_desc_validate(&d), LLM_EFORMAT, "swiglu_oai needs a gated MLP");
    d.act = LLM_ACT_SILU;
    /* yarn without truncation */
    llm_desc_free(&d);
    make_full(&d);
    d.rope.scaling = LLM_ROPE_SCALING_YARN;
    d.rope.yarn_no_truncate = 1;
    free(d.rope.long_factor), free(d.rope.short_factor);
    d.rope.long_factor = d.rope.short_factor = NULL;
    d.rope.n_factors = 0;
    CHECK_OK(llm_desc_validate(&d));
    round_trip(&d, "yarn truncate false");
    d.rope.scaling = LLM_ROPE_SCALING_LINEAR;
    CHECK_ERR(llm_desc_validate(&d), LLM_EFORMAT, "rope.yarn_truncate");
    d.rope.yarn_no_truncate = 0;
    /* DeepSeek V3: latent attention, grouped sigmoid routing, dense first layers */
    d.qkv_bias = 0;
    d.parallel_residual = d.shared_input_norm = 0;
    d.n_kv_heads = d.n_heads;
    d.kv_lora_rank = 24;
    d.q_lora_rank = 32;
    d.v_head_dim = 12;
    d.moe_router = LLM_ROUTER_SIGMOID_GROUPS;
    d.moe_groups = 2;
    d.moe_topk_groups = 1;
    d.moe_corr_bias = 1;
    d.moe_first_layer = 2;
    d.dense_inter = 300;
    d.attn_qscale_beta = 0.1; /* Ministral 3's query scaling, over rope.orig_max_pos */
    d.rope.orig_max_pos = 16;
    CHECK_OK(llm_desc_validate(&d));
    round_trip(&d, "latent attention, grouped routing, dense first layers, query scaling");
    d.rope.orig_max_pos = 0;
    CHECK_ERR(llm_desc_validate(&d), LLM_EFORMAT, "attn_qscale_beta");
    d.rope.orig_max_pos = 16;
    d.moe_topk_groups = 3;
    CHECK_ERR(llm_desc_validate(&d), LLM_EFORMAT, "moe_groups");
    d.moe_topk_groups = 1;
    d.n_kv_heads = 2;
    CHECK_ERR(llm_desc_validate(&d), LLM_EFORMAT, "kv_lora_rank");
    d.n_kv_heads = d.n_heads;
    d.dense_inter = 0;
    CHECK_ERR(llm_desc_validate(&d), LLM_EFORMAT, "moe_first_layer");
    llm_desc_free(&d);

    struct llm_gen_defaults g, h;
    llm_gen_defaults_init(&g);
    g.temperature = 0.7;
    g.top_k = 40;
    g.top_p = 0.95;
    g.min_p = 0.05;
    g.repetition_penalty = 1.1;
    g.do_sample = 1;
    g.max_new_tokens = 512;
    json_t *j = llm_gen_defaults_to_json(&g);
    llm_gen_defaults_init(&h);
    CHECK_OK(llm_gen_defaults_from_json(&h, j));
    CHECK(!memcmp(&g, &h, sizeof(g)), "generation defaults differ after the round trip");
    json_decref(j);
    /* absent members keep what was there */
    j = json_pack("{s:f}", "top_p", 0.5);
    CHECK_OK(llm_gen_defaults_from_json(&h, j));
    CHECK_DBL(h.top_p, 0.5);
    CHECK_INT(h.top_k, 40);
    json_decref(j);
    j = json_pack("{s:f}", "top_p", 1.5);
    CHECK_ERR(llm_gen_defaults_from_json(&h, j), LLM_EFORMAT, "generation.top_p");
    json_decref(j);
    j = json_pack("{s:s}", "top_k", "x");
    CHECK_ERR(llm_gen_defaults_from_json(&h, j), LLM_EFORMAT, "'generation.top_k' must be an");
    json_decref(j);
    CHECK_ERR(llm_gen_defaults_from_json(&h, NULL), LLM_EFORMAT, "not a JSON object");
}

/* 1.0 readers require logit_softcap: it is written with the attention cap's value. */
static void test_softcap_names(void)
{
    struct llm_model_desc d, e;
    make_full(&d);
    json_t *j = llm_desc_to_json(&d);
    CHECK(json_real_value(json_object_get(j, "logit_softcap")) == d.attn_softcap &&
              json_real_value(json_object_get(j, "attn_softcap")) == d.attn_softcap,
          "attention cap not written under both names");
    json_object_del(j, "attn_softcap");
    json_object_del(j, "logit_softcap");
    CHECK_ERR(llm_desc_from_json(&e, j), LLM_EFORMAT, "model field 'attn_softcap' is missing");
    json_object_set_new(j, "logit_softcap", json_real(12.5));
    CHECK_OK(llm_desc_from_json(&e, j));
    CHECK(e.attn_softcap == 12.5, "1.0 name not read: %g", e.attn_softcap);
    llm_desc_free(&e);
    json_object_set_new(j, "attn_softcap", json_real(7.0));
    CHECK_OK(llm_desc_from_json(&e, j));
    CHECK(e.attn_softcap == 7.0, "1.1 name does not win: %g", e.attn_softcap);
    llm_desc_free(&e);
    json_decref(j);
    llm_desc_free(&d);
}

/* Every member (and rope member) missing, then of the wrong type. */
static void test_from_json_fields(void)
{
    struct llm_model_desc d, e;
    make_full(&d);
    json_t *full = llm_desc_to_json(&d);
    llm_desc_free(&d);
    for (int level = 0; level < 2; level++) {
        json_t *obj = level ? json_object_get(full, "rope") : full;
        const char *key;
        json_t *val;
        void *tmp;
        json_object_foreach_safe(obj, tmp, key, val)
        {
            char field[64], want[128];
            snprintf(field, sizeof(field), "%s%s", level ? "rope." : "", key);
            if (!level && !strcmp(key, "rope")) continue;
            json_t *copy = json_deep_copy(full);
            json_t *o = level ? json_object_get(copy, "rope") : copy;
            json_object_del(o, key);
            snprintf(want, sizeof(want), "model field '%s' is missing", field);
            if (!level && (!strcmp(key, "attn_softcap") || !strcmp(key, "logit_softcap"))) {
                /* the attention cap under its 1.1 and 1.0 names: either one suffices, the
                 * 1.1 name wins, so a wrong type under the 1.0 name alone goes unread */
                CHECK_OK(llm_desc_from_json(&e, copy));
                CHECK(e.attn_softcap == 30.0, "%s deleted: attention cap %g", key, e.attn_softcap);
                llm_desc_free(&e);
                json_decref(copy);
                continue;
            }
            if (!level && !strcmp(key, "local_rope_layers")) {
                /* the layers go with rope_local_theta: required beside it */
                CHECK_ERR(llm_desc_from_json(&e, copy), LLM_EFORMAT, want);
            } else if (!level && since_1_0(key)) {
                /* added after format 1.0: optional, absent means the 1.0 behaviour */
                CHECK_OK(llm_desc_from_json(&e, copy));
                llm_desc_free(&e);
            } else {
                CHECK_ERR(llm_desc_from_json(&e, copy), LLM_EFORMAT, want);
            }
            /* wrong type: a string where a number is, else a number */
            json_object_set_new(o, key, json_is_string(val) ? json_integer(5) : json_string("5"));
            snprintf(want, sizeof(want), "model field '%s'", field);
            CHECK_ERR(llm_desc_from_json(&e, copy), LLM_EFORMAT, want);
            json_decref(copy);
        }
    }
    CHECK_ERR(llm_desc_from_json(&e, NULL), LLM_EFORMAT, "not a JSON object");
    json_t *arr = json_array();
    CHECK_ERR(llm_desc_from_json(&e, arr), LLM_EFORMAT, "not a JSON object");
    json_decref(arr);

    /* values that are well-typed but wrong */
    static const struct {
        const char *key, *json;
        const char *sub;
    } bad[] = {
        {"arch", "\"llama9\"", "model field 'arch' has unknown value 'llama9'"},
        {"norm", "\"batchnorm\"", "model field 'norm' has unknown value"},
        {"act", "\"swiglu\"", "model field 'act' has unknown value 'swiglu'"},
        {"pos", "\"xpos\"", "model field 'pos' has unknown value"},
        {"dtype", "\"f12\"", "model field 'dtype' is not a known dtype name"},
        {"hf_arch", "\"0123456789012345678901234567890123456789012345678901234567890123\"",
         "model field 'hf_arch' is longer than 63 bytes"},
        {"n_layers", "0", "model field 'n_layers' is 0, outside 1..512"},
        {"n_layers", "513", "model field 'n_layers' is 513, outside 1..512"},
        {"n_heads", "-1", "model field 'n_heads' is -1"},
        {"n_kv_heads", "4", "model field 'n_kv_heads': must divide n_heads (6), found 4"},
        {"head_dim", "5", "model field 'rope.rot_dims': must be even and within 2..head_dim (5)"},
        {"vocab_size", "4294967296", "model field 'vocab_size' is 4294967296"},
        {"norm_eps", "0.0", "model field 'norm_eps': must be within (0, 1), found 0"},
        {"norm_eps", "-1e-5", "model field 'norm_eps': must be within (0, 1)"},
        {"window_layers", "[5]", "model field 'window_layers' entry 0 is not a distinct layer"},
        {"window_layers", "[1, 1]", "model field 'window_layers' entry 1 is not a distinct"},
        {"window_layers", "[\"1\"]", "model field 'window_layers' entry 0 is not"},
        {"sliding_window", "0",
         "model field 'window_layers': layer 1 uses a window but "
         "sliding_window is 0"},
        {"local_rope_layers", "[99]", "model field 'local_rope_layers' entry 0 is not a distinct"},
        {"local_rope_layers", "[3, 3]", "model field 'local_rope_layers' entry 1 is not a"},
        {"rope_local_theta", "-1", "model field 'rope_local_theta': must be a non-negative"},
        {"logit_scale", "-2", "model field 'logit_scale': must be a non-negative number"},
        {"residual_scale", "-2", "model field 'residual_scale': must be a non-negative number"},
        {"residual_scale", "0.5", "model field 'residual_scale': only sequential pre-norm blocks"},
        {"nope_layers", "[9]", "model field 'nope_layers' entry 0 is not a distinct layer"},
        {"nope_layers", "[0]", "model field 'nope_layers': layer 0 is also in local_rope_layers"},
        {"rope_local_theta", "0",
         "model field 'local_rope_layers': layer 0 uses the local rotary base but "
         "rope_local_theta is 0"},
        {"eos_ids", "[1,2,3,4,5,6,7,8,9]", "model field 'eos_ids' has 9 entries, at most 8"},
        {"eos_ids", "[-3]", "model field 'eos_ids' entry 0 is not a token id"},
        {"bos_id", "-2", "model field 'bos_id' is -2, outside -1.."},
        {"n_experts_per_tok", "5", "model field 'n_experts_per_tok': must be within 1..n_experts"},
        {"shared_expert_inter", "-1", "model field 'shared_expert_inter'"},
        {"n_experts", "0", "model field 'n_experts_per_tok': must be within 1..n_experts (0)"},
        {"attn_scale", "-0.5", "model field 'attn_scale': must be a non-negative number"},
        {"parallel_residual", "false",
         "model field 'shared_input_norm': set without "
         "parallel_residual"},
        {"norm", "\"rmsnorm\"", "model field 'norm_bias': only LayerNorm has a bias"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *copy = json_deep_copy(full);
        json_error_t je;
        json_object_set_new(copy, bad[i].key, json_loads(bad[i].json, JSON_DECODE_ANY, &je));
        llm_err_clear();
        int rc = llm_desc_from_json(&e, copy);
        CHECK(rc == LLM_EFORMAT && strstr(llm_errmsg(), bad[i].sub),
              "%s = %s: got %d '%s', expected '%s'", bad[i].key, bad[i].json, rc, llm_errmsg(),
              bad[i].sub);
        if (!rc) llm_desc_free(&e);
        json_decref(copy);
    }
    static const struct {
        const char *key, *json;
        const char *sub;
    } rbad[] = {
        {"scaling", "\"ntk\"", "model field 'rope.scaling' has unknown value 'ntk'"},
        {"theta", "0", "model field 'rope.theta': must be a positive number"},
        {"rot_dims", "11", "model field 'rope.rot_dims': must be even"},
        {"rot_dims", "22", "model field 'rope.rot_dims': must be even and within 2..head_dim (20)"},
        {"long_factor", "[1,2]", "model field 'rope.short_factor' has 6 entries, long_factor 2"},
        {"long_factor", "[1,2,3,4,5,\"6\"]", "model field 'rope.long_factor' entry 5 is not a"},
        {"long_factor", "[1,2,3,4,5,-6]", "model field 'rope.long_factor': factor 5 is not a"},
        {"orig_max_pos", "0", "model field 'rope.orig_max_pos': longrope scaling needs the"},
        {"factor", "0", "model field 'rope.factor': longrope scaling needs a positive factor"},
        {"attn_factor", "-1", "model field 'rope.attn_factor': must be a non-negative number"},
    };
    for (size_t i = 0; i < sizeof(rbad) / sizeof(rbad[0]); i++) {
        json_t *copy = json_deep_copy(full);
        json_error_t je;
        json_object_set_new(json_object_get(copy, "rope"), rbad[i].key,
                            json_loads(rbad[i].json, JSON_DECODE_ANY, &je));
        llm_err_clear();
        int rc = llm_desc_from_json(&e, copy);
        CHECK(rc == LLM_EFORMAT && strstr(llm_errmsg(), rbad[i].sub),
              "rope.%s = %s: got %d '%s', expected '%s'", rbad[i].key, rbad[i].json, rc,
              llm_errmsg(), rbad[i].sub);
        if (!rc) llm_desc_free(&e);
        json_decref(copy);
    }
    json_decref(full);
}

static void test_validate(void)
{
    struct llm_model_desc d;
    make_full(&d);
    d.pos = LLM_POS_ALIBI;
    CHECK_ERR(llm_desc_validate(&d), LLM_EFORMAT,
              "model field 'rope': set although the position "
              "encoding is alibi");
    d.pos = LLM_POS_ROPE;
    d.rope.scaling = LLM_ROPE_SCALING_LLAMA3;
    CHECK_ERR(llm_desc_validate(&d), LLM_EFORMAT, "model field 'rope.long_factor': only longrope");
    free(d.rope.long_factor);
    free(d.rope.short_factor);
    d.rope.long_factor = d.rope.short_factor = NULL;
    d.rope.n_factors = 0;
    d.rope.high_freq_factor = 0.05;
    CHECK_ERR(llm_desc_validate(&d), LLM_EFORMAT, "llama3 scaling needs 0 < low_freq_factor");
    d.rope.high_freq_factor = 4;
    CHECK_OK(llm_desc_validate(&d));
    d.gated_mlp = 2;
    CHECK_ERR(llm_desc_validate(&d), LLM_EFORMAT, "model field 'gated_mlp': must be 0 or 1");
    d.gated_mlp = 0;
    d.layer_window[7] = 1; /* beyond n_layers */
    CHECK_ERR(llm_desc_validate(&d), LLM_EFORMAT, "layer 7 uses a window but there is no such");
    d.layer_window[7] = 0;
    d.layer_local_rope[7] = 1;
    CHECK_ERR(llm_desc_validate(&d), LLM_EFORMAT,
              "layer 7 uses the local rotary base but there is no such");
    d.layer_local_rope[7] = 0;
    d.rope_local_theta = INFINITY;
    CHECK_ERR(llm_desc_validate(&d), LLM_EFORMAT, "model field 'rope_local_theta'");
    d.rope_local_theta = 55.5;
    d.layer_no_rope[6] = 1;
    CHECK_ERR(llm_desc_validate(&d), LLM_EFORMAT,
              "layer 6 is without rotary but there is no such layer");
    d.layer_no_rope[6] = 0;
    d.arch = LLM_ARCH_COUNT;
    CHECK_ERR(llm_desc_validate(&d), LLM_EFORMAT, "model field 'arch': unknown value");
    d.arch = LLM_ARCH_LLAMA;
    d.norm_eps = NAN;
    CHECK_ERR(llm_desc_validate(&d), LLM_EFORMAT, "model field 'norm_eps'");
    d.norm_eps = 1e-5;
    d.hf_arch[sizeof(d.hf_arch) - 1] = 'x';
    memset(d.hf_arch, 'x', sizeof(d.hf_arch));
    CHECK_ERR(llm_desc_validate(&d), LLM_EFORMAT, "model field 'hf_arch': not terminated");
    json_t *j = llm_desc_to_json(&d);
    CHECK(j != NULL, "to_json of an unterminated hf_arch");
    json_decref(j);
    llm_desc_free(&d);
    CHECK_ERR(llm_desc_validate(NULL), LLM_EINVAL, "no model description");
}

/* ---- canonical tensors --------------------------------------------------------- */

static void expect_shape(const struct llm_model_desc *d, const char *name, int nd, int64_t a,
                         int64_t b, int64_t c)
{
    int ndim = -1;
    int64_t s[LLM_MAX_DIMS];
    int rc = llm_desc_tensor_shape(d, name, &ndim, s);
    CHECK(rc == 0, "shape of '%s': %s", name, llm_errmsg());
    if (rc) return;
    int64_t w[3] = {a, b, c};
    int ok = ndim == nd;
    for (int i = 0; ok && i < nd; i++)
        ok = s[i] == w[i];
    CHECK(ok, "'%s' has %d dims [%lld, %lld, %lld], expected %d [%lld, %lld, %lld]", name, ndim,
          (long long)s[0], (long long)(ndim > 1 ? s[1] : 0), (long long)(ndim > 2 ? s[2] : 0), nd,
          (long long)a, (long long)b, (long long)c);
}

static void expect_absent(const struct llm_model_desc *d, const char *name)
{
    int ndim;
    int64_t s[LLM_MAX_DIMS];
    CHECK_ERR(llm_desc_tensor_shape(d, name, &ndim, s), LLM_ENOTFOUND, "no such tensor");
}

static void test_names(void)
{
    struct llm_model_desc d;
    char(*names)[LLM_NAME_MAX];
    size_t n;

    if (!load("llama2-7b", &d)) {
        CHECK_OK(llm_desc_tensor_names(&d, &names, &n));
        CHECK(n == 3 + 32 * 7, "llama2-7b has %zu tensors, expected 227", n);
        static const char *first[] = {
            "transformer.vocab_embedding.weight",
            "transformer.layers.0.input_layernorm.weight",
            "transformer.layers.0.attention.qkv.weight",
            "transformer.layers.0.attention.dense.weight",
            "transformer.layers.0.post_layernorm.weight",
            "transformer.layers.0.mlp.fc.weight",
            "transformer.layers.0.mlp.gate.weight",
            "transformer.layers.0.mlp.proj.weight",
            "transformer.layers.1.input_layernorm.weight",
        };
        for (size_t i = 0; i < 9 && i < n; i++)
            CHECK_STR(names[i], first[i]);
        if (n == 227) {
            CHECK_STR(names[225], "transformer.ln_f.weight");
            CHECK_STR(names[226], "lm_head.weight");
            CHECK_STR(names[224], "transformer.layers.31.mlp.proj.weight");
        }
        free(names);
        expect_shape(&d, "transformer.vocab_embedding.weight", 2, 32000, 4096, 0);
        expect_shape(&d, "transformer.layers.0.attention.qkv.weight", 2, 12288, 4096, 0);
        expect_shape(&d, "transformer.layers.31.attention.dense.weight", 2, 4096, 4096, 0);
        expect_shape(&d, "transformer.layers.5.mlp.fc.weight", 2, 11008, 4096, 0);
        expect_shape(&d, "transformer.layers.5.mlp.gate.weight", 2, 11008, 4096, 0);
        expect_shape(&d, "transformer.layers.5.mlp.proj.weight", 2, 4096, 11008, 0);
        expect_shape(&d, "transformer.layers.5.post_layernorm.weight", 1, 4096, 0, 0);
        expect_shape(&d, "lm_head.weight", 2, 32000, 4096, 0);
        expect_absent(&d, "transformer.layers.32.input_layernorm.weight");
        expect_absent(&d, "transformer.layers.01.input_layernorm.weight");
        expect_absent(&d, "transformer.layers.-1.input_layernorm.weight");
        expect_absent(&d, "transformer.layers.0.attention.qkv.bias");
        expect_absent(&d, "transformer.layers.0.input_layernorm.bias");
        expect_absent(&d, "transformer.layers.0.mlp.router.weight");
        expect_absent(&d, "transformer.layers.0");
        expect_absent(&d, "transformer.layers.0.");
        expect_absent(&d, "transformer.position_embedding.weight");
        expect_absent(&d, "transformer.ln_f.bias");
        expect_absent(&d, "lm_head.bias");
        expect_absent(&d, "model.embed_tokens.weight");
        expect_absent(&d, "");
        CHECK_ERR(llm_desc_tensor_shape(&d, "x\ny", &(int){0}, (int64_t[LLM_MAX_DIMS]){0}),
                  LLM_ENOTFOUND, "'x?y': no such tensor in this llama model");
        llm_desc_free(&d);
    }
    if (!load("qwen2.5-0.5b-instruct", &d)) {
        CHECK_OK(llm_desc_tensor_names(&d, &names, &n));
        CHECK(n == 2 + 24 * 8, "qwen2 has %zu tensors, expected 194 (tied, qkv bias)", n);
        free(names);
        expect_shape(&d, "transformer.layers.0.attention.qkv.weight", 2, 1152, 896, 0);
        expect_shape(&d, "transformer.layers.0.attention.qkv.bias", 1, 1152, 0, 0);
        expect_shape(&d, "transformer.layers.0.attention.dense.weight", 2, 896, 896, 0);
        expect_absent(&d, "transformer.layers.0.attention.dense.bias");
        expect_absent(&d, "lm_head.weight");
        llm_desc_free(&d);
    }
    if (!load("gpt2", &d)) {
        CHECK_OK(llm_desc_tensor_names(&d, &names, &n));
        CHECK(n == 2 + 12 * 12 + 2, "gpt2 has %zu tensors, expected 148", n);
        if (n == 148) {
            CHECK_STR(names[1], "transformer.position_embedding.weight");
            CHECK_STR(names[2], "transformer.layers.0.input_layernorm.weight");
            CHECK_STR(names[3], "transformer.layers.0.input_layernorm.bias");
            CHECK_STR(names[13], "transformer.layers.0.mlp.proj.bias");
            CHECK_STR(names[147], "transformer.ln_f.bias");
        }
        free(names);
        expect_shape(&d, "transformer.position_embedding.weight", 2, 1024, 768, 0);
        expect_shape(&d, "transformer.layers.11.mlp.fc.bias", 1, 3072, 0, 0);
        expect_shape(&d, "transformer.layers.11.mlp.proj.bias", 1, 768, 0, 0);
        expect_absent(&d, "transformer.layers.0.mlp.gate.weight");
        llm_desc_free(&d);
    }
    if (!load("gpt-j-6b", &d)) {
        expect_absent(&d, "transformer.layers.0.post_layernorm.weight");
        expect_shape(&d, "lm_head.bias", 1, 50400, 0, 0);
        expect_shape(&d, "transformer.layers.0.attention.qkv.weight", 2, 3 * 4096, 4096, 0);
        llm_desc_free(&d);
    }
    if (!load("falcon-40b", &d)) {
        expect_shape(&d, "transformer.layers.0.attention.qkv.weight", 2, (128 + 16) * 64, 8192, 0);
        expect_shape(&d, "transformer.layers.0.post_layernorm.bias", 1, 8192, 0, 0);
        llm_desc_free(&d);
    }
    if (!load("mixtral-8x7b", &d)) {
        expect_shape(&d, "transformer.layers.3.mlp.router.weight", 2, 8, 4096, 0);
        expect_shape(&d, "transformer.layers.3.mlp.fc.weight", 3, 8, 14336, 4096);
        expect_shape(&d, "transformer.layers.3.mlp.gate.weight", 3, 8, 14336, 4096);
        expect_shape(&d, "transformer.layers.3.mlp.proj.weight", 3, 8, 4096, 14336);
        llm_desc_free(&d);
    }
    if (!load("bloom-560m", &d)) {
        expect_shape(&d, "transformer.ln_embed.weight", 2 - 1, 1024, 0, 0);
        expect_shape(&d, "transformer.ln_embed.bias", 1, 1024, 0, 0);
        llm_desc_free(&d);
    }
    if (!load("mpt-7b", &d)) {
        expect_absent(&d, "transformer.layers.0.input_layernorm.bias"); /* no_bias */
        expect_absent(&d, "transformer.ln_embed.weight");
        llm_desc_free(&d);
    }

    /* for every sample: names are unique and each has a shape */
    for (size_t i = 0; i < NSAMPLES; i++) {
        if (load(samples[i], &d)) continue;
        CHECK_OK(llm_desc_tensor_names(&d, &names, &n));
        for (size_t k = 0; k < n; k++) {
            int nd;
            int64_t s[LLM_MAX_DIMS];
            CHECK(llm_desc_tensor_shape(&d, names[k], &nd, s) == 0,
                  "%s: '%s' listed but has no "
                  "shape",
                  samples[i], names[k]);
            if (k) CHECK(strcmp(names[k], names[k - 1]), "%s: '%s' twice", samples[i], names[k]);
        }
        free(names);
        llm_desc_free(&d);
    }

    char buf[40];
    CHECK_OK(llm_name_layer(buf, sizeof(buf), 7, "mlp.fc.weight"));
    CHECK_STR(buf, "transformer.layers.7.mlp.fc.weight");
    CHECK_ERR(llm_name_layer(buf, 20, 7, "mlp.fc.weight"), LLM_ERANGE, "does not fit 20 bytes");
    CHECK_ERR(llm_name_layer(buf, sizeof(buf), -1, "x"), LLM_EINVAL, "bad layer name");
}

int main(void)
{
    test_tables();
    test_round_trips();
    test_from_json_fields();
    test_softcap_names();
    test_validate();
    test_names();
    return t_report("test-desc");
}
