/* test_moe_quant.c - quantized experts: llm-quantize on the tiny Mixtral
 * and Qwen3-MoE fixtures in every mode.  Checked here: each expert stack
 * is stored [experts][out][in] with its side tensors [experts][...]; every
 * expert got its own scales (its own calibration rows where the mode
 * calibrates: per-expert static activation scales and smoothing factors
 * differ); and, for the weight-only modes, the CPU forward of the quantized
 * model equals the forward of a dense f32 model made here from its codes and
 * scales with the formulas written below (expert by expert, AWQ's pre-quant
 * scale folded into the columns), to f32 summation order.  w4a8-awq's
 * stacks are int4-awq's with, per expert, the static fp8 activation scale
 * max_j (max|X_j| pre_j) / 448 of that expert's calibration rows (run here
 * again), [experts][1]; its forward moves off int4-awq's (the activations
 * are rounded) but stays close. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/backend.h"
#include "llm/dtype.h"
#include "llm/model.h"
#include "llm/quantize.h"
#include "../formats/tcheck.h"
#include "qtest.h"

#define GROUP 16
#define N_TOK 24
#define CALIB_SAMPLES 4
#define CALIB_LEN 64

/* ---- the dense model made from a quantized one ---------------------------------- */

#define DQ_MAX 64
struct dq {
    struct llm_model *q;
    char names[DQ_MAX][LLM_NAME_MAX];
    float *v[DQ_MAX];
    int ndim[DQ_MAX];
    int64_t shape[DQ_MAX][3];
    int n;
};

static int dq_get(void *ctx, const char *name, struct llm_tensor *t)
{
    struct dq *d = ctx;
    for (int i = 0; i < d->n; i++) {
        if (strcmp(d->names[i], name)) continue;
        memset(t, 0, sizeof *t);
        t->name = d->names[i];
        t->dtype = LLM_DTYPE_F32;
        t->ndim = d->ndim[i];
        uint64_t k = 1;
        for (int j = 0; j < t->ndim; j++) k *= (uint64_t)(t->shape[j] = d->shape[i][j]);
        t->nbytes = sizeof(float) * k;
        t->data = d->v[i];
        return 0;
    }
    return llm_model_tensor(d->q, name, t);
}

/* f32 values of the float tensor "<stem>.<suffix>" of m, or NULL when absent. */
static float *side_f32(struct llm_model *m, const char *stem, const char *suffix, uint64_t *n)
{
    char name[LLM_NAME_MAX + 40];
    snprintf(name, sizeof name, "%s.%s", stem, suffix);
    return tensor_f32(m, name, n);
}

/* Signed int4 element k of a packed tensor (element 2i in the low nibble). */
static int nib(const uint8_t *p, int64_t k)
{
    int v = (p[k >> 1] >> (4 * (k & 1))) & 15;
    return v >= 8 ? v - 16 : v;
}

/* The weight `name` of q dense: [E][out][in] (E = 1 for a 2-D weight) from
 * its codes q and scales s: int8 w = q s[e][o]; int4 w = q s[e][j / g][o]
 * (times pre[e][j] with AWQ's pre-quant scale, which multiplies x[j]). */
static int dequant(struct dq *d, const char *name)
{
    struct llm_tensor t;
    if (llm_model_tensor(d->q, name, &t) || d->n == DQ_MAX) return -1;
    const int E = t.ndim == 3 ? (int)t.shape[0] : 1;
    const int64_t out = t.shape[t.ndim - 2], in = t.shape[t.ndim - 1];
    char stem[LLM_NAME_MAX];
    snprintf(stem, sizeof stem, "%.*s", (int)(strlen(name) - strlen(".weight")), name);
    uint64_t ns = 0, np = 0;
    int i4 = t.dtype == LLM_DTYPE_I4;
    float *s = side_f32(d->q, stem, i4 ? "weights_scaling_factor" : "per_channel_scale", &ns);
    float *pre = side_f32(d->q, stem, "prequant_scaling_factor", &np);
    float *w = malloc(sizeof(float) * (size_t)(E * out * in));
    int rc = s && w && (t.dtype == LLM_DTYPE_I8 || i4) ? 0 : -1;
    const int64_t groups = i4 && s ? (int64_t)ns / E / out : 1;
    for (int e = 0; e < E && !rc; e++)
        for (int64_t o = 0; o < out; o++)
            for (int64_t j = 0; j < in; j++) {
                const int64_t k = (e * out + o) * in + j;
                float v;
                if (i4)
                    v = (float)nib(t.data, k) * s[(e * groups + j / (in / groups)) * out + o];
                else
                    v = (float)((const int8_t *)t.data)[k] * s[e * out + o];
                if (pre) v *= pre[e * in + j];
                w[k] = v;
            }
    free(s);
    free(pre);
    if (rc) {
        free(w);
        return rc;
    }
    snprintf(d->names[d->n], sizeof d->names[0], "%s", name);
    d->v[d->n] = w;
    d->ndim[d->n] = t.ndim;
    for (int j = 0; j < t.ndim; j++) d->shape[d->n][j] = t.shape[j];
    d->n++;
    return 0;
}

/* ---- one fixture, one mode ------------------------------------------------------ */

struct mode {
    const char *label, *name, *args;
    int dtype;                 /* of the expert stacks */
    const char *scale;         /* the scale tensor's suffix */
    int scale_per_expert;      /* values per expert: 0 = out, -1 = (in / GROUP) x out, else n */
    const char *own;           /* a side tensor that must differ between experts (calibrated) */
    int weight_only, calibrated;
};

static int differs(struct llm_model *m, const char *stem, const char *suffix, int E)
{
    uint64_t n = 0;
    float *v = side_f32(m, stem, suffix, &n);
    int d = 0;
    for (uint64_t k = 0; v && k < n / (uint64_t)E; k++)
        for (int e = 1; e < E; e++) d |= v[e * (n / (uint64_t)E) + k] != v[k];
    free(v);
    return d;
}

/* w4a8-awq's model q against int4-awq's (awq_path) of the same parent and
 * calibration. */
static void w4a8_case(const char *fixture, struct llm_model *q, const char *parent,
                      const char *awq_path)
{
    struct llm_model *a = NULL, *p = NULL;
    struct llm_q_stats st = {0};
    float *la = NULL, *lq = NULL, *lp = NULL;
    char calib[4200];
    snprintf(calib, sizeof calib, "%s/lib/data/calib.txt", t_srcdir());
    if (llm_model_open(&a, awq_path) || llm_model_open(&p, parent)) {
        CHECK(0, "%s w4a8-awq: open: %s", fixture, llm_errmsg());
        goto done;
    }
    long cw = CALIB_LEN < p->desc.max_pos ? CALIB_LEN : p->desc.max_pos, cn = 0;
    int32_t *cids = text_tokens(p, calib, CALIB_SAMPLES * cw, &cn);
    struct llm_backend_opts bo;
    llm_backend_opts_init(&bo);
    int rc =
        cids && cn ? llm_q_calibrate(p, cids, cn, (int)cw, 0, "cpu", &bo, NULL, NULL, &st) : -1;
    free(cids);
    CHECK(rc == 0, "%s w4a8-awq: calibration: %s", fixture, llm_errmsg());
    if (rc) goto done;
    const int E = q->desc.n_experts;
    static const char *const lin[] = {"mlp.fc", "mlp.gate", "mlp.proj"};
    static const char *const same[] = {"weight", "weights_scaling_factor",
                                       "prequant_scaling_factor"};
    int same_ok = 1, scale_ok = 1;
    for (int l = 0; l < q->desc.n_layers; l++)
        for (int k = 0; k < 3; k++) {
            char stem[LLM_NAME_MAX], name[LLM_NAME_MAX + 40], key[LLM_NAME_MAX + 48];
            snprintf(stem, sizeof stem, "transformer.layers.%d.%s", l, lin[k]);
            for (int i = 0; i < 3; i++) {
                struct llm_tensor x, y;
                snprintf(name, sizeof name, "%s.%s", stem, same[i]);
                int ok = !llm_model_tensor(q, name, &x) && !llm_model_tensor(a, name, &y) &&
                         x.nbytes == y.nbytes && !memcmp(x.data, y.data, x.nbytes);
                if (!ok && same_ok) CHECK(0, "%s w4a8-awq: '%s' is not int4-awq's", fixture, name);
                same_ok &= ok;
            }
            llm_err_clear();
            struct llm_tensor at;
            uint64_t np = 0, na = 0;
            float *pre = side_f32(q, stem, "prequant_scaling_factor", &np);
            float *as = side_f32(q, stem, "activation_scaling_factor", &na);
            snprintf(name, sizeof name, "%s.activation_scaling_factor", stem);
            int ok = pre && as && na == (uint64_t)E && !llm_model_tensor(q, name, &at) &&
                     at.ndim == 2 && at.shape[0] == E && at.shape[1] == 1;
            const int64_t in = ok ? (int64_t)(np / (uint64_t)E) : 0;
            for (int e = 0; ok && e < E; e++) {
                snprintf(key, sizeof key, "%s.weight#%d", stem, e);
                const struct llm_q_stat *x = llm_q_stats_find(&st, key);
                float am = 0.f;
                for (int64_t j = 0; x && x->in == in && j < in; j++)
                    am = fmaxf(am, x->chan[j] * pre[e * in + j]);
                ok = x && x->rows && x->in == in && as[e] == (am > 0.f ? am / 448.0f : 1.0f);
                if (!ok && scale_ok)
                    CHECK(0, "%s w4a8-awq: '%s' of expert %d is %g, not max|x pre| / 448 = %g",
                          fixture, name, e, as[e], am / 448.0f);
            }
            scale_ok &= ok;
            free(pre);
            free(as);
            llm_err_clear();
        }
    CHECK(same_ok, "%s w4a8-awq: the expert stacks, scales and pre-quant scales are int4-awq's",
          fixture);
    CHECK(scale_ok,
          "%s w4a8-awq: each expert's activation scale is its max|x pre| / 448, "
          "[experts][1]",
          fixture);
    int32_t tok[N_TOK];
    for (int i = 0; i < N_TOK; i++)
        tok[i] = (int32_t)((i * 131 + 7) % q->desc.vocab_size);
    lq = logits_of(q, tok, N_TOK);
    la = logits_of(a, tok, N_TOK);
    lp = logits_of(p, tok, N_TOK);
    CHECK(lq && la && lp, "%s w4a8-awq: forward: %s", fixture, llm_errmsg());
    if (lq && la && lp) { /* fp8 activations move the logits less than int4 weights do */
        double dq = 0, dw = 0;
        int finite = 1;
        for (int64_t i = 0; i < (int64_t)N_TOK * q->desc.vocab_size; i++) {
            finite &= isfinite(lq[i]);
            dq += ((double)lq[i] - la[i]) * ((double)lq[i] - la[i]);
            dw += ((double)la[i] - lp[i]) * ((double)la[i] - lp[i]);
        }
        CHECK(finite && dq > 0 && dq < 0.5 * dw,
              "%s w4a8-awq: L2 distance of the logits "
              "from int4-awq's %.3g, int4-awq's from the parent's %.3g",
              fixture, sqrt(dq), sqrt(dw));
        printf("%s w4a8-awq: L2 distance of the logits from int4-awq's %.3g, int4-awq's from "
               "the parent's %.3g, over %d rows\n",
               fixture, sqrt(dq), sqrt(dw), N_TOK);
    }
done:
    free(la);
    free(lq);
    free(lp);
    llm_q_stats_free(&st);
    llm_model_close(a);
    llm_model_close(p);
}

static void one_case(const char *fixture, const struct mode *md, const char *tmp)
{
    const char *B = getenv("LLM_BUILDDIR"), *S = t_srcdir();
    char parent[4096], out[4096], cmd[16384];
    snprintf(parent, sizeof parent, "%s/%s.llm", tmp, fixture);
    snprintf(out, sizeof out, "%s/%s-%s.llm", tmp, fixture, md->label);
    char calib[4200] = "";
    if (md->calibrated)
        snprintf(calib, sizeof calib,
                 "--calib '%s/lib/data/calib.txt' --calib-samples %d "
                 "--calib-len %d",
                 S, CALIB_SAMPLES, CALIB_LEN);
    snprintf(cmd, sizeof cmd, "'%s/cmd/llm-quantize' -q -m %s %s --no-eval --device cpu %s '%s' "
             "-o '%s'", B, md->name, md->args, calib, parent, out);
    if (system(cmd)) {
        CHECK(0, "%s %s: %s failed", fixture, md->label, cmd);
        return;
    }
    struct llm_model *q = NULL;
    if (llm_model_open(&q, out)) {
        CHECK(0, "%s %s: open: %s", fixture, md->label, llm_errmsg());
        return;
    }
    const int E = q->desc.n_experts;
    static const char *const lin[] = {"mlp.fc", "mlp.gate", "mlp.proj"};
    int stacks_ok = 1, own_ok = 1;
    for (int l = 0; l < q->desc.n_layers; l++)
        for (int k = 0; k < 3; k++) {
            char name[LLM_NAME_MAX + 8], stem[LLM_NAME_MAX], sn[LLM_NAME_MAX + 40];
            snprintf(stem, sizeof stem, "transformer.layers.%d.%s", l, lin[k]);
            snprintf(name, sizeof name, "%s.weight", stem);
            snprintf(sn, sizeof sn, "%s.%s", stem, md->scale);
            struct llm_tensor t, sc;
            if (llm_model_tensor(q, name, &t) || llm_model_tensor(q, sn, &sc)) {
                llm_err_clear();
                CHECK(0, "%s %s: no '%s' or '%s'", fixture, md->label, name, sn);
                stacks_ok = 0;
                continue;
            }
            const int64_t out_d = t.shape[1], in_d = t.shape[2];
            const int64_t per = md->scale_per_expert == 0    ? out_d
                                : md->scale_per_expert == -1 ? in_d / GROUP * out_d
                                                             : md->scale_per_expert;
            uint64_t n = 1;
            for (int i = 0; i < sc.ndim; i++) n *= (uint64_t)sc.shape[i];
            if (t.ndim != 3 || t.shape[0] != E || t.dtype != md->dtype || sc.shape[0] != E ||
                n != (uint64_t)(E * per)) {
                if (stacks_ok)
                    CHECK(0, "%s %s: '%s' is %s %dD, its scales %llu values; expected %s "
                          "[%d][out][in], %lld per expert", fixture, md->label, name,
                          llm_dtype_name(t.dtype), t.ndim, (unsigned long long)n,
                          llm_dtype_name(md->dtype), E, (long long)per);
                stacks_ok = 0;
            }
            if (md->own && !differs(q, stem, md->own, E)) {
                if (own_ok)
                    CHECK(0, "%s %s: every expert of '%s' has the same %s (not calibrated "
                          "one by one)", fixture, md->label, stem, md->own);
                own_ok = 0;
            }
        }
    CHECK(stacks_ok, "%s %s: expert stacks", fixture, md->label);
    CHECK(own_ok, "%s %s: per-expert calibration", fixture, md->label);
    if (!strcmp(md->name, "w4a8-awq")) { /* after int4-awq, with the same calibration */
        char awq[4200];
        snprintf(awq, sizeof awq, "%s/%s-int4-awq.llm", tmp, fixture);
        w4a8_case(fixture, q, parent, awq);
    }

    /* every quantized weight dense, then both forwards */
    struct dq d = {q, {{0}}, {0}, {0}, {{0}}, 0};
    int rc = 0;
    float *lq = NULL, *ld = NULL;
    if (md->weight_only) {
        size_t nt = 0;
        char (*names)[LLM_NAME_MAX] = NULL;
        rc = llm_desc_tensor_names(&q->desc, &names, &nt);
        for (size_t i = 0; !rc && i < nt; i++) {
            struct llm_tensor t;
            if (llm_model_tensor(q, names[i], &t)) {
                llm_err_clear();
                continue;
            }
            if (t.dtype == LLM_DTYPE_I8 || t.dtype == LLM_DTYPE_I4) rc = dequant(&d, names[i]);
        }
        free(names);
        CHECK(rc == 0, "%s %s: dequantizing: %s", fixture, md->label, llm_errmsg());
        struct llm_model dm;
        memset(&dm, 0, sizeof dm);
        dm.desc = q->desc;
        dm.gen = q->gen;
        llm_model_init_mem(&dm);
        dm.path = (char *)"dequantized";
        dm.get_tensor = dq_get;
        dm.get_tensor_ctx = &d;
        int32_t tok[N_TOK];
        for (int i = 0; i < N_TOK; i++) tok[i] = (int32_t)((i * 131 + 7) % q->desc.vocab_size);
        lq = rc ? NULL : logits_of(q, tok, N_TOK);
        ld = rc ? NULL : logits_of(&dm, tok, N_TOK);
        CHECK(lq && ld, "%s %s: forward: %s", fixture, md->label, llm_errmsg());
        if (lq && ld) {
            double mx = 0, md_ = 0;
            for (int64_t i = 0; i < (int64_t)N_TOK * q->desc.vocab_size; i++) {
                mx = fmax(mx, fabs(ld[i]));
                md_ = fmax(md_, fabs((double)lq[i] - ld[i]));
            }
            CHECK(md_ <= 2e-5 * mx, "%s %s: quantized forward vs its dense dequantization: "
                  "max |d| %.3g of max %.3g", fixture, md->label, md_, mx);
            printf("%s %s: max |d| / max |logit| %.2e over %d rows (%d quantized tensors)\n",
                   fixture, md->label, mx > 0 ? md_ / mx : 0, N_TOK, d.n);
        }
    }
    free(lq);
    free(ld);
    for (int i = 0; i < d.n; i++) free(d.v[i]);
    llm_model_close(q);
}

int main(void)
{
    const char *B = getenv("LLM_BUILDDIR");
    char tool[4096];
    snprintf(tool, sizeof tool, "%s/cmd/llm-quantize", B ? B : ".");
    if (!B || access(tool, X_OK)) {
        printf("quantized experts: skipped (no llm-quantize in LLM_BUILDDIR)\n");
        return 77;
    }
    static const struct mode modes[] = {
        {"w8a16", "w8a16", "", LLM_DTYPE_I8, "per_channel_scale", 0, NULL, 1, 0},
        {"w4a16", "w4a16", "--group-size 16", LLM_DTYPE_I4, "weights_scaling_factor", -1, NULL, 1,
         0},
        {"int4-awq", "int4-awq", "--group-size 16", LLM_DTYPE_I4, "weights_scaling_factor", -1,
         "prequant_scaling_factor", 1, 1},
        {"w4a8-awq", "w4a8-awq", "--group-size 16", LLM_DTYPE_I4, "weights_scaling_factor", -1,
         "activation_scaling_factor", 0, 1},
        {"fp8-pc", "fp8-pc", "", LLM_DTYPE_F8E4M3, "weights_scaling_factor", 0, NULL, 0, 0},
        {"fp8", "fp8", "", LLM_DTYPE_F8E4M3, "weights_scaling_factor", 1,
         "activation_scaling_factor", 0, 1},
        {"int8-sq", "int8-sq", "", LLM_DTYPE_I8, "per_channel_scale", 0, "smoother", 0, 1},
        {"int8-sq-static", "int8-sq", "--act static", LLM_DTYPE_I8, "per_channel_scale", 0,
         "act_scale", 0, 1},
    };
    static const char *const fixtures[] = {"mixtral", "qwen3-moe"};
    char *tmp = t_mkdtemp();
    for (size_t f = 0; f < 2; f++) {
        char cmd[16384];
        snprintf(cmd, sizeof cmd, "'%s/cmd/llm-convert' -q '%s/tests/fixtures/%s' -o '%s/%s.llm'",
                 B, t_srcdir(), fixtures[f], tmp, fixtures[f]);
        if (system(cmd)) {
            CHECK(0, "%s failed", cmd);
            continue;
        }
        for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
            one_case(fixtures[f], &modes[m], tmp);
    }
    t_rmtree(tmp);
    printf("%d checks, %d failed\n", t_checks, t_failures);
    return t_failures ? 1 : 0;
}
