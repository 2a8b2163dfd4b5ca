/* test_random_quant.c - synthetic quantized models ("random:CONFIG.json:MODE",
 * llm_model_random): the codes the header makes equal dtype.c's rounding
 * over every value a random weight can take; for each mode the model has
 * llm-quantize's quantization section, dtypes and side tensors (constant
 * scales on the host from the open), its weights' codes are the dense
 * random values under those scales (checked element by element against
 * dtype.c, independently of llm/random.h's encoders) with the dense
 * spread (int8-sq: smoothers only on the products no norm feeds, the
 * norms that take the factors in f32), it binds, and greedy generation on
 * the CPU backend gives finite logits close to the dense model's, through
 * 40 layers too; bad specs fail in one line.  (tests/cli/random_quant.sh
 * compares the layout with llm-quantize's own output and runs the tools.)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llm/backend.h"
#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/model.h"
#include "llm/random.h"
#include "llm/weight.h"
#include "../formats/tcheck.h"

static const char *srcdir(void)
{
    const char *s = getenv("LLM_SRCDIR");
    return s ? s : ".";
}

/* Every value llm_rand_value can return is (sum - mean) * LLM_RAND_SCALE
 * for an integer sum in [0, 4 * 65535]: the codes of all of them. */
static void check_codes(void)
{
    int bad8 = 0, badi8 = 0, badi4 = 0, clamped = 0;
    for (int c = -131070; c <= 131070; c++) {
        float v = (float)c * LLM_RAND_SCALE;
        if (llm_rand_to_e4m3(v) != llm_f32_to_e4m3(v / LLM_RAND_FP8_SCALE)) bad8++;
        double q = nearbyint((double)v / LLM_RAND_INT8_SCALE);
        q = q < -127 ? -127 : q > 127 ? 127 : q;
        clamped += fabs((double)v / LLM_RAND_INT8_SCALE) > 127.5;
        if (llm_rand_to_i8(v) != (int8_t)q) badi8++;
        double q4 = nearbyint((double)v / LLM_RAND_INT4_SCALE);
        q4 = q4 < -8 ? -8 : q4 > 7 ? 7 : q4;
        uint8_t b = llm_rand_to_i4(v);
        float dec;
        if (llm_convert(&dec, LLM_DTYPE_F32, &b, LLM_DTYPE_I4, 1) || dec != (float)q4) badi4++;
    }
    CHECK(!bad8, "%d e4m3 codes differ from llm_f32_to_e4m3", bad8);
    CHECK(!badi8, "%d int8 codes differ", badi8);
    CHECK(!badi4, "%d int4 codes differ (as dtype.c decodes them)", badi4);
    CHECK(clamped > 0, "no int8 value is clamped");
    /* how many weights are clamped: a few in 10^4 */
    uint64_t st0 = llm_rand_state(1, "y.weight");
    int many = 0;
    for (uint64_t i = 0; i < 1u << 20; i++)
        many += fabsf(llm_rand_value(st0, i) / LLM_RAND_INT8_SCALE) > 127.5f;
    CHECK(many < (1 << 20) / 1000, "%d of 2^20 int8 weights clamped", many);
    printf("int8: %d of 2^20 weights clamped to +-127\n", many);
    /* the packing: element 2k low nibble, a lone last element alone */
    uint64_t st = llm_rand_state(3, "x.weight");
    uint8_t packed[3];
    for (int k = 0; k < 3; k++) packed[k] = llm_rand_i4_byte(st, (uint64_t)k, 5, LLM_RAND_NORMAL);
    float dec[5];
    CHECK(llm_convert(dec, LLM_DTYPE_F32, packed, LLM_DTYPE_I4, 5) == 0, "decode i4");
    int same = 1;
    for (int i = 0; i < 5; i++) {
        uint8_t one = llm_rand_to_i4(llm_rand_value(st, (uint64_t)i));
        float want;
        llm_convert(&want, LLM_DTYPE_F32, &one, LLM_DTYPE_I4, 1);
        same &= dec[i] == want;
    }
    CHECK(same && !(packed[2] >> 4), "int4 packing is element 2k in the low nibble");
}

struct mode {
    const char *spec;
    int algo, kv, group, wdt, scale_kind;
    float scale;
    const char *sides; /* the side tensors after each weight, space-separated */
    double min_corr;   /* of the first logits with the dense model's */
};

static const struct mode modes[] = {
    {"fp8", LLM_QUANT_FP8, 0, 0, LLM_DTYPE_F8E4M3, LLM_WSCALE_TENSOR, LLM_RAND_FP8_SCALE,
     "weights_scaling_factor activation_scaling_factor", 0.95},
    {"fp8-pc", LLM_QUANT_FP8_PC_PT, 0, 0, LLM_DTYPE_F8E4M3, LLM_WSCALE_CHANNEL, LLM_RAND_FP8_SCALE,
     "weights_scaling_factor", 0.95},
    {"int8-sq", LLM_QUANT_W8A8_SQ_PC_PT, 0, 0, LLM_DTYPE_I8, LLM_WSCALE_CHANNEL,
     LLM_RAND_INT8_SCALE, "per_channel_scale smoother", 0.95},
    {"int8-sq,act=static", LLM_QUANT_W8A8_SQ_PC, 0, 0, LLM_DTYPE_I8, LLM_WSCALE_CHANNEL,
     LLM_RAND_INT8_SCALE, "per_channel_scale smoother act_scale", 0.8},
    {"w8a16", LLM_QUANT_W8A16, 0, 0, LLM_DTYPE_I8, LLM_WSCALE_CHANNEL, LLM_RAND_INT8_SCALE,
     "per_channel_scale", 0.99},
    {"w4a16,group-size=32", LLM_QUANT_W4A16, 0, 32, LLM_DTYPE_I4, LLM_WSCALE_GROUP,
     LLM_RAND_INT4_SCALE, "weights_scaling_factor", 0.9},
    {"int4-awq,group-size=16,kv=fp8", LLM_QUANT_W4A16_AWQ, LLM_KV_QUANT_FP8, 16, LLM_DTYPE_I4,
     LLM_WSCALE_GROUP, LLM_RAND_INT4_SCALE, "weights_scaling_factor prequant_scaling_factor", 0.9},
    {"w4a8-awq,group-size=16", LLM_QUANT_W4A8_AWQ, 0, 16, LLM_DTYPE_I4, LLM_WSCALE_GROUP,
     LLM_RAND_INT4_SCALE,
     "weights_scaling_factor prequant_scaling_factor activation_scaling_factor", 0.9},
    {"kv=int8", LLM_QUANT_NONE, LLM_KV_QUANT_INT8, 0, -1, 0, 0, "", 0.95},
};

/* Greedy generation of `steps` tokens after a 5-token prompt on the CPU
 * backend; the first step's logits into first[vocab]; 0 when every logit
 * was finite. */
static int greedy(struct llm_model *m, int steps, float *first)
{
    struct llm_backend_opts o;
    llm_backend_opts_init(&o);
    o.n_threads = 2;
    o.kv_bytes = 8u << 20;
    o.max_seq_len = 64;
    struct llm_backend *be = NULL;
    int rc = llm_backend_create(&be, "cpu", m, &o);
    if (rc) return rc;
    int64_t V = be->vocab;
    float *logits = malloc(sizeof(float) * (size_t)V);
    int32_t tok[64] = {3, 17, 42, 7, 11}, pos[64], bt[64];
    for (int i = 0; i < 64; i++) pos[i] = i, bt[i] = i;
    int n = 5, past = 0, bad = 0;
    for (int s = 0; s < steps && !rc && logits; s++) {
        int32_t start[2] = {0, n - past}, len[1] = {n}, out[1] = {n - past - 1};
        struct llm_batch b = {.n_tokens = n - past, .tokens = tok + past, .pos = pos + past,
                              .n_seqs = 1, .seq_start = start, .seq_len = len,
                              .block_table = bt, .bt_stride = 64, .n_out = 1, .out_rows = out};
        if ((rc = be->ops->forward(be, &b)) || (rc = be->ops->get_logits(be, logits))) break;
        int64_t best = 0;
        for (int64_t v = 0; v < V; v++) {
            bad += !isfinite(logits[v]);
            if (logits[v] > logits[best]) best = v;
        }
        if (s == 0 && first) memcpy(first, logits, sizeof(float) * (size_t)V);
        past = n;
        tok[n++] = (int32_t)best;
    }
    free(logits);
    be->ops->destroy(be);
    return rc ? rc : !logits ? LLM_ENOMEM : bad ? -1 : 0;
}

static double corr(const float *a, const float *b, int64_t n)
{
    double sa = 0, sb = 0, sab = 0, saa = 0, sbb = 0;
    for (int64_t i = 0; i < n; i++) {
        sa += a[i], sb += b[i];
        sab += (double)a[i] * b[i], saa += (double)a[i] * a[i], sbb += (double)b[i] * b[i];
    }
    double ca = saa - sa * sa / n, cb = sbb - sb * sb / n;
    return ca > 0 && cb > 0 ? (sab - sa * sb / n) / sqrt(ca * cb) : 0;
}

/* The codes of weight `name` against dtype.c, element by element, and
 * the dequantized spread. */
static void check_weight(const struct llm_tensor *t, const char *name, float scale)
{
    uint64_t n = (uint64_t)(t->shape[0] * t->shape[1]), st = llm_rand_state(0, name);
    float *dec = malloc(sizeof(float) * n);
    if (!dec || llm_convert(dec, LLM_DTYPE_F32, t->data, t->dtype, n)) {
        CHECK(0, "'%s': decode", name);
        free(dec);
        return;
    }
    uint64_t wrong = 0;
    double s2 = 0;
    for (uint64_t i = 0; i < n; i++) {
        double v = llm_rand_value(st, i) / (double)scale, want;
        if (t->dtype == LLM_DTYPE_F8E4M3) {
            want = llm_e4m3_to_f32(llm_f32_to_e4m3((float)v));
        } else {
            double lim = t->dtype == LLM_DTYPE_I8 ? 127 : 7;
            want = nearbyint(v);
            want = want > lim ? lim : want < (t->dtype == LLM_DTYPE_I8 ? -127 : -8)
                                          ? (t->dtype == LLM_DTYPE_I8 ? -127 : -8)
                                          : want;
        }
        wrong += dec[i] != (float)want;
        s2 += (double)dec[i] * scale * dec[i] * scale;
    }
    double sd = sqrt(s2 / (double)n);
    CHECK(!wrong, "'%s': %llu of %llu codes differ", name, (unsigned long long)wrong,
          (unsigned long long)n);
    CHECK(fabs(sd - 0.02) < 0.002, "'%s': dequantized std %g", name, sd);
    free(dec);
}

/* int8-sq: the products that read a norm's output (these Llamas: qkv, fc,
 * gate) have their smoothing factors folded into that norm, no smoother. */
static int folded_slot(int slot)
{
    return slot == LLM_W_QKV || slot == LLM_W_MLP_FC || slot == LLM_W_MLP_GATE;
}

/* Checks weight `name`'s side tensors; returns how many it has. */
static size_t check_sides(struct llm_model *m, const struct mode *md, const char *name, int slot,
                          int64_t out, int64_t in)
{
    char stem[LLM_NAME_MAX], sn[LLM_NAME_MAX + 40], list[128];
    size_t have = 0;
    snprintf(stem, sizeof stem, "%.*s", (int)(strlen(name) - strlen(".weight")), name);
    snprintf(list, sizeof list, "%s", md->sides);
    for (char *sfx = strtok(list, " "); sfx; sfx = strtok(NULL, " ")) {
        struct llm_tensor t;
        snprintf(sn, sizeof sn, "%s.%s", stem, sfx);
        if (!strcmp(sfx, "smoother") && folded_slot(slot)) {
            CHECK(llm_model_tensor(m, sn, &t) == LLM_ENOTFOUND, "%s: '%s' present (folded)",
                  md->spec, sn);
            llm_err_clear();
            continue;
        }
        have++;
        if (llm_model_tensor(m, sn, &t) || !t.data || t.dtype != LLM_DTYPE_F32) {
            CHECK(0, "%s: '%s' missing or without host data", md->spec, sn);
            continue;
        }
        uint64_t n = 1;
        for (int i = 0; i < t.ndim; i++) n *= (uint64_t)t.shape[i];
        float want = !strcmp(sfx, "weights_scaling_factor") || !strcmp(sfx, "per_channel_scale")
                         ? md->scale
                     : !strcmp(sfx, "activation_scaling_factor") ? LLM_RAND_FP8_ACT_SCALE
                     : !strcmp(sfx, "act_scale")                 ? LLM_RAND_INT8_ACT_SCALE
                                                                 : 1.0f;
        uint64_t want_n = !strcmp(sfx, "smoother") || !strcmp(sfx, "prequant_scaling_factor")
                              ? (uint64_t)in
                          : md->scale_kind == LLM_WSCALE_TENSOR || !strcmp(sfx, "act_scale") ||
                                  !strcmp(sfx, "activation_scaling_factor")
                              ? 1
                          : md->scale_kind == LLM_WSCALE_GROUP ? (uint64_t)(in / md->group * out)
                                                               : (uint64_t)out;
        int ok = n == want_n;
        for (uint64_t i = 0; ok && i < n; i++) ok = ((const float *)t.data)[i] == want;
        CHECK(ok, "%s: '%s': %llu values, expected %llu of %g", md->spec, sn,
              (unsigned long long)n, (unsigned long long)want_n, want);
    }
    return have;
}

static void check_mode(const char *cfg, const struct mode *md, const float *dense_logits)
{
    char spec[1200];
    snprintf(spec, sizeof spec, "random:%s:%s", cfg, md->spec);
    struct llm_model *m = NULL;
    int rc = llm_model_open(&m, spec);
    CHECK(rc == 0 && m && m->synthetic && !strcmp(m->path, spec), "%s: open: %s", md->spec,
          llm_errmsg());
    if (rc) return;
    const struct llm_quant *q = &m->quant;
    CHECK(q->algo == md->algo && q->kv_algo == md->kv && q->group_size == md->group &&
              q->pre_quant_scale ==
                  (md->algo == LLM_QUANT_W4A16_AWQ || md->algo == LLM_QUANT_W4A8_AWQ) &&
              !q->has_zero_point && q->n_exclude == 2 && !strcmp(q->exclude[0], "lm_head") &&
              !strcmp(q->exclude[1], "*router*"),
          "%s: quantization section (algo %d kv %d group %d)", md->spec, q->algo, q->kv_algo,
          q->group_size);
    char(*names)[LLM_NAME_MAX] = NULL;
    size_t n = 0, nq = 0, extra = 0;
    llm_desc_tensor_names(&m->desc, &names, &n);
    /* before host data: weights have none, side tensors have theirs */
    for (size_t k = 0; k < n; k++) {
        struct llm_tensor t;
        int slot, layer, is_bias;
        if (llm_model_tensor(m, names[k], &t) || llm_name_to_slot(names[k], &slot, &layer, &is_bias)) {
            CHECK(0, "%s: '%s' missing", md->spec, names[k]);
            continue;
        }
        int lin = !is_bias && llm_wslot_kind(slot) == LLM_WK_LINEAR && slot != LLM_W_LM_HEAD;
        int want = lin && md->algo ? md->wdt : m->desc.dtype;
        CHECK(t.dtype == want && !t.data, "%s: '%s' is %s (want %s), data %p", md->spec,
              names[k], llm_dtype_name(t.dtype), llm_dtype_name(want), t.data);
        if (lin && md->algo) {
            nq++;
            extra += check_sides(m, md, names[k], slot, t.shape[0], t.shape[1]);
        }
    }
    CHECK(!md->algo || nq == 5 * (size_t)m->desc.n_layers, "%s: %zu weights quantized", md->spec,
          nq);
    extra += md->kv ? (size_t)m->desc.n_layers : 0;
    CHECK(llm_model_random_count(m) == n + extra, "%s: %zu tensors, expected %zu", md->spec,
          llm_model_random_count(m), n + extra);
    for (int l = 0; md->kv && l < m->desc.n_layers; l++) {
        char kn[LLM_NAME_MAX];
        struct llm_tensor t;
        llm_name_layer(kn, sizeof kn, l, "attention." LLM_WQ_KV_SCALE);
        float want = md->kv == LLM_KV_QUANT_FP8 ? LLM_RAND_KV_FP8_SCALE : LLM_RAND_KV_INT8_SCALE;
        CHECK(!llm_model_tensor(m, kn, &t) && t.data && t.ndim == 1 && t.shape[0] == 2 &&
                  ((const float *)t.data)[0] == want && ((const float *)t.data)[1] == want,
              "%s: '%s'", md->spec, kn);
    }
    /* the host values, and the binding */
    llm_model_host_data(m);
    for (size_t k = 0; md->algo && k < n; k++) {
        struct llm_tensor t;
        if (!llm_model_tensor(m, names[k], &t) && t.dtype == md->wdt)
            check_weight(&t, names[k], md->scale);
    }
    struct llm_weights w;
    rc = llm_weights_bind(&w, m);
    CHECK(rc == 0, "%s: bind: %s", md->spec, llm_errmsg());
    if (!rc) {
        const struct llm_weight *qkv = llm_weights_get(&w, LLM_W_QKV, 1),
                                *lm = llm_weights_get(&w, LLM_W_LM_HEAD, -1),
                                *dense = llm_weights_get(&w, LLM_W_ATTN_OUT, 1);
        int fmt = md->wdt == LLM_DTYPE_F8E4M3 ? LLM_WFMT_FP8 : md->wdt == LLM_DTYPE_I8 ? LLM_WFMT_INT8
                  : md->wdt == LLM_DTYPE_I4                                          ? LLM_WFMT_INT4
                                                                                     : LLM_WFMT_DENSE;
        /* the activations: fp8 for fp8, fp8-pc and w4a8-awq, int8 for int8-sq */
        int act = md->wdt == LLM_DTYPE_F8E4M3 || md->algo == LLM_QUANT_W4A8_AWQ ? LLM_WACT_FP8
                  : md->algo == LLM_QUANT_W8A8_SQ_PC || md->algo == LLM_QUANT_W8A8_SQ_PC_PT
                      ? LLM_WACT_INT8
                      : LLM_WACT_NONE;
        CHECK(qkv->fmt == fmt && qkv->data && lm->fmt == LLM_WFMT_DENSE &&
                  (!md->algo || (qkv->scale_kind == md->scale_kind &&
                                 qkv->group_size == (md->group ? md->group : 0))) &&
                  !qkv->act_scale.data ==
                      !(strstr(md->sides, "activation_") || strstr(md->sides, "act_scale")) &&
                  !qkv->smoother.data && !dense->smoother.data == !strstr(md->sides, "smoother") &&
                  !qkv->prequant.data == !strstr(md->sides, "prequant") && qkv->act == act,
              "%s: bound as %s, scale kind %d, group %d, activations %d", md->spec,
              llm_wfmt_name(qkv->fmt), qkv->scale_kind, qkv->group_size, qkv->act);
        llm_weights_free(&w);
    }
    llm_err_clear();
    float *first = malloc(sizeof(float) * (size_t)m->desc.vocab_size);
    rc = first ? greedy(m, 8, first) : LLM_ENOMEM;
    CHECK(rc == 0, "%s: greedy generation: %s", md->spec, rc < 0 ? "a logit not finite" : llm_errmsg());
    if (!rc && dense_logits) {
        double c = corr(first, dense_logits, m->desc.vocab_size);
        CHECK(c >= md->min_corr, "%s: first logits' correlation with the dense model %.4f",
              md->spec, c);
        printf("%s: first logits' correlation with the dense model's: %.4f\n", md->spec, c);
    }
    free(first);
    free(names);
    llm_model_close(m);
}

/* A deep, narrow Llama: 40 layers, for activations through many layers. */
static void write_deep(const char *p)
{
    FILE *f = fopen(p, "w");
    if (!f) return;
    fputs("{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
          "\"hidden_size\": 128, \"intermediate_size\": 256, \"num_attention_heads\": 4, "
          "\"num_key_value_heads\": 2, \"num_hidden_layers\": 40, \"vocab_size\": 256, "
          "\"max_position_embeddings\": 128, \"rms_norm_eps\": 1e-5, \"torch_dtype\": \"bfloat16\"}",
          f);
    fclose(f);
}

static void check_deep(void)
{
    char p[1024], spec[1200];
    snprintf(p, sizeof p, "%s/llm-random-deep-%d.json", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    write_deep(p);
    static const char *const specs[] = {"fp8",   "fp8-pc", "int8-sq",          "int8-sq,act=static",
                                        "w8a16", "w4a16",  "int4-awq,kv=int8", "w4a8-awq",
                                        "kv=fp8"};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        struct llm_model *m = NULL;
        snprintf(spec, sizeof spec, "random:%s:%s", p, specs[i]);
        int rc = llm_model_open(&m, spec);
        if (!rc && !strncmp(specs[i], "int8-sq", 7)) { /* bf16, the folded norms f32 */
            struct llm_tensor a, b, c;
            CHECK(!llm_model_tensor(m, "transformer.layers.39.input_layernorm.weight", &a) &&
                      !llm_model_tensor(m, "transformer.layers.39.post_layernorm.weight", &b) &&
                      !llm_model_tensor(m, "transformer.ln_f.weight", &c) &&
                      a.dtype == LLM_DTYPE_F32 && b.dtype == LLM_DTYPE_F32 &&
                      c.dtype == LLM_DTYPE_BF16,
                  "40 layers, %s: folded norms f32, the final norm bf16", specs[i]);
        }
        if (!rc) rc = greedy(m, 4, NULL);
        CHECK(rc == 0, "40 layers, %s: %s", specs[i], rc < 0 ? "a logit not finite" : llm_errmsg());
        llm_model_close(m);
        llm_err_clear();
    }
    unlink(p);
}

static void check_bad(const char *cfg)
{
    static const struct {
        const char *q, *want;
    } bad[] = {
        {"fp9", "unknown quantization mode 'fp9'"},
        {"w4a16", "group size 128 does not divide the 64 input channels"},
        {"w4a8-awq", "group size 128 does not divide the 64 input channels"},
        {"w4a8-awq,act=static", "act is for int8-sq"},
        {"w4a16,group-size=0", "group-size=0 is not an even number"},
        {"fp8-pc,act=dynamic", "act is for int8-sq"},
        {"w8a16,kv=int4", "kv=int4 is not fp8 or int8"},
        {"w8a16,zero=1", "unknown quantization option 'zero'"},
        {"", "an empty quantization item"},
    };
    char spec[1200];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct llm_model *m = (struct llm_model *)1;
        snprintf(spec, sizeof spec, "random:%s:%s", cfg, bad[i].q);
        int rc = llm_model_open(&m, spec);
        CHECK(rc != 0 && m == NULL && strstr(llm_errmsg(), bad[i].want) &&
                  strstr(llm_errmsg(), spec) && !strchr(llm_errmsg(), '\n'),
              "'%s': '%s'", spec, llm_errmsg());
        llm_err_clear();
    }
    const char *q;
    CHECK(llm_rand_spec_split("a/b.json:fp8", &q) == 8 && q && !strcmp(q, "fp8"), "split a mode");
    CHECK(llm_rand_spec_split("a/b.json", &q) == 8 && !q, "split without a mode");
    CHECK(llm_rand_spec_split("x:y/b.json", &q) == 10 && !q, "a ':' in a folder is no mode");
    CHECK(llm_rand_spec_split("x:b.json", &q) == 8 && !q, "a ':' in a file name is no mode");
}

int main(void)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "%s/tests/fixtures/llama3-f32/config.json", srcdir());
    check_codes();
    struct llm_model *dense = NULL;
    float *dl = NULL;
    int rc = llm_model_random(&dense, cfg, -1, 0);
    CHECK(rc == 0 && dense->quant.algo == LLM_QUANT_NONE && dense->quant.n_exclude == 0,
          "the dense model: %s", llm_errmsg());
    if (!rc && (dl = malloc(sizeof(float) * (size_t)dense->desc.vocab_size)))
        CHECK(greedy(dense, 8, dl) == 0, "dense greedy: %s", llm_errmsg());
    llm_model_close(dense);
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) check_mode(cfg, &modes[i], dl);
    free(dl);
    check_deep();
    check_bad(cfg);
    printf("%d checks, %d failed\n", t_checks, t_failures);
    return t_failures ? 1 : 0;
}
