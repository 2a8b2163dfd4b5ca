/* llm-quantize - quantize an llm artifact's linear weights and say, in
 * numbers, what it cost.
 *
 * Design: the parent is opened (mapped, checksums verified), every linear
 * weight that is not excluded is quantized in memory (lib/quant/quantize.c)
 * and the rest is used in place; the quantized model is then evaluated
 * against its parent on held-out text before a byte is written (the CPU
 * backend, the reference, runs both), so the accuracy report goes into the
 * output's metadata and --max-kld can refuse the result with no file left
 * behind.  The output records its parent's hash, the mode and every
 * parameter in its provenance.  SmoothQuant's factors (int8-sq) go into
 * the norm before the products where the model definition says that norm
 * feeds nothing else (llm_graph_norm_uses), and into smoother tensors
 * elsewhere.  Calibration runs on --device (auto: the GPU when there
 * is one), in f32 on either backend, the statistics reduced where the
 * activations are (lib/quant/calib.c).
 */
#include <fnmatch.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "llm/artifact.h"
#include "llm/bench.h"
#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/graph.h"
#include "llm/io.h"
#include "llm/log.h"
#include "llm/model.h"
#include "llm/quantize.h"
#include "llm/tokenizer.h"
#include "llm/weight.h"
#include "llm_build_config.h"
#include "llm_commit.h"
#include "tool.h"

static const char usage_text[] =
    "Usage: llm-quantize -m MODE [--kv fp8|int8] [OPTIONS] ARTIFACT [-o OUT]\n"
    "       llm-quantize --kv fp8|int8 [OPTIONS] ARTIFACT [-o OUT]\n"
    "Quantize the linear weights of an llm artifact ('-' reads standard input) and\n"
    "report the accuracy cost against the parent: KL divergence of the next-token\n"
    "distributions (mean, 99th percentile), top-1 agreement and both perplexities on\n"
    "held-out text.  The report is printed and stored in the output's metadata.\n"
    "Without -o the output goes to standard output, which must not be a terminal.\n"
    "\n"
    "Modes:\n"
    "  w8a16                       int8 weights, one scale per output channel\n"
    "  w4a16                       int4 weights, one scale per group of input channels\n"
    "  fp8-pc                      fp8 e4m3 weights per output channel, activations\n"
    "                              quantized per token at run time\n"
    "  fp8                         fp8 e4m3 weights with one scale per tensor, activations\n"
    "                              with a static scale from calibration (max |x| / 448)\n"
    "  int8-sq                     SmoothQuant W8A8: input channels smoothed (--alpha), int8\n"
    "                              weights per output channel, int8 activations per token\n"
    "                              (--act dynamic) or per tensor (--act static)\n"
    "  int4-awq                    AWQ: int4 groups as w4a16, each input channel first scaled\n"
    "                              by its mean |x|^a, a searched per layer for the least\n"
    "                              output error on calibration rows (a = 0: w4a16); --clip\n"
    "                              adds the search for each group's clipped maximum\n"
    "  w4a8-awq                    int4-awq's weights, activations rounded to fp8 e4m3\n"
    "                              after the pre-quant scale, under a static scale per\n"
    "                              weight from calibration (max |x pre| / 448)\n"
    "  --kv fp8|int8               the KV cache too (with any mode, or alone): K and V\n"
    "                              stored in 8 bits under a scale each per layer, from\n"
    "                              calibration (max |K| or |V| / 448 or / 127)\n"
    "\n"
    "Options:\n"
    "  -m, --mode MODE             one of the modes above (required)\n"
    "  -o, --output FILE           write FILE (temporary name, renamed when complete)\n"
    "      --group-size N          w4a16, int4-awq, w4a8-awq: input channels per scale\n"
    "                              (default 128)\n"
    "      --exclude PATTERN       keep matching weights dense (shell pattern on the\n"
    "                              tensor name, or a part of it; repeatable; default:\n"
    "                              lm_head and MoE routers)\n"
    "      --alpha A               int8-sq: migration strength in [0, 1] (default 0.5);\n"
    "                              auto: searched per layer over 0, 0.05, ..., 1 for the\n"
    "                              least output error on calibration rows (-v prints each\n"
    "                              layer's); none: no smoothing (plain W8A8)\n"
    "      --act dynamic|static    int8-sq activations: a scale per token at run time\n"
    "                              (default) or one per tensor from calibration\n"
    "      --no-fold               int8-sq: keep every smoothing factor as a smoother\n"
    "                              tensor; by default (--fold) the products that alone\n"
    "                              read a norm's output share one s, divided into the\n"
    "                              norm's weight and bias instead\n"
    "      --clip                  int4-awq, w4a8-awq: after the scale search, shrink each\n"
    "                              group's max |w| (1, 0.95, ..., 0.5) for the least error\n"
    "                              of the group's output on calibration rows, kept per\n"
    "                              layer when it lowers the layer's output error (default:\n"
    "                              off)\n"
    "      --calib FILE            calibration text (fp8, int8-sq, int4-awq, w4a8-awq):\n"
    "                              plain text, or llm-run JSONL\n"
    "                              (its prompts) when FILE ends in .jsonl (default: the\n"
    "                              bundled text); 'random': uniformly random token ids,\n"
    "                              all the windows (benchmarks, models without a tokenizer)\n"
    "      --calib-samples N       windows of calibration text at most (default 512)\n"
    "      --calib-len N           tokens per window (default 512, at most the model's\n"
    "                              maximum)\n"
    "      --device NAME           where calibration runs: auto (the GPU when there is\n"
    "                              one), cpu or cuda; f32 on either (default: auto)\n"
    "      --eval FILE             held-out text for the report (default: the bundled\n"
    "                              text)\n"
    "      --eval-tokens N         tokens of it to use (default 4096)\n"
    "      --eval-len N            tokens per window of context (default 256, at most\n"
    "                              the model's maximum)\n"
    "      --no-eval               no report (the output says so)\n"
    "      --max-kld X             fail (exit 3, no output) when the mean KLD is above X\n"
    "      --no-verify             do not check the artifact's tensor checksums\n"
    "  -q, --quiet                 print only errors\n"
    "  -v, --verbose               print each tensor\n"
    "  -h, --help                  print this help and exit\n"
    "      --version               print the version and exit\n"
    "\n"
    "Exit status: 0 written; 1 error; 2 usage; 3 the mean KLD is above --max-kld.\n";

enum {
    OPT_GROUP = 256,
    OPT_EXCLUDE,
    OPT_EVAL,
    OPT_EVAL_TOKENS,
    OPT_EVAL_LEN,
    OPT_NO_EVAL,
    OPT_MAX_KLD,
    OPT_NO_VERIFY,
    OPT_VERSION,
    OPT_CALIB,
    OPT_CALIB_SAMPLES,
    OPT_CALIB_LEN,
    OPT_ALPHA,
    OPT_ACT,
    OPT_KV,
    OPT_CLIP,
    OPT_FOLD,
    OPT_NO_FOLD,
    OPT_DEVICE,
};

enum { EXIT_KLD = 3 };

/* Input rows of each linear layer kept from calibration for the searches
 * that measure output error (AWQ's scales and clipping, --alpha auto). */
#define SEARCH_ROWS 128

/* A mean KLD above this prints a warning even without --max-kld. */
#define WARN_KLD 0.1

struct opts {
    const char *in, *out, *mode, *eval, *calib, *device;
    long calib_samples, calib_len;
    double alpha;   /* < 0: no smoothing */
    int alpha_auto; /* int8-sq: alpha searched per layer (llm_q_smooth_search) */
    int clip;       /* int4-awq, w4a8-awq: AWQ's clipping search too */
    int act_static; /* int8-sq: static per-tensor activations */
    int no_fold;    /* int8-sq: every smoother kept as a tensor, none folded into a norm */
    int kv;         /* enum llm_kv_quant */
    int algo;
    long group, eval_tokens, eval_len;
    int no_eval, no_verify, verbose;
    double max_kld; /* < 0: none */
    int n_exclude;
    const char *exclude[LLM_QUANT_MAX_EXCLUDE];
};

/* AWQ's modes: int4-awq, and w4a8-awq (the same weights, fp8 activations). */
static int is_awq(int algo)
{
    return algo == LLM_QUANT_W4A16_AWQ || algo == LLM_QUANT_W4A8_AWQ;
}

/* The modes with int4 groups (--group-size). */
static int is_int4(int algo)
{
    return algo == LLM_QUANT_W4A16 || is_awq(algo);
}

/* ---- the quantized tensors, held in memory ---------------------------------- */

struct qt {
    char name[LLM_NAME_MAX + 40];
    int dtype, ndim;
    int64_t shape[3];
    void *data;
    uint64_t nbytes;
    int n_side; /* a weight: how many side tensors (its scales) follow it in the set */
    int extra;  /* a new tensor of its own (KV scales): written after the parent's */
};

/* int8-sq: a norm and the products that alone read its output
 * (llm_graph_norm_uses), sharing one s that is folded into the norm. */
struct fold {
    char norm[LLM_NAME_MAX];                  /* the norm's weight */
    char lin[LLM_NORM_USE_MAX][LLM_NAME_MAX]; /* the products' weights */
    int n;
    float *s; /* [in] */
};

struct qset {
    struct qt *t;
    size_t n, cap;
    struct llm_model *parent;
    struct fold *fold;
    int n_fold;
    /* what the per-layer searches chose, for the summary line and the metadata */
    json_t *alphas; /* --alpha auto: {weight name: alpha} */
    double alpha_min, alpha_max, alpha_sum;
    int n_searched, n_clipped;
};

static int qset_add(struct qset *s, const char *name, int dtype, int ndim, const int64_t *shape,
                    void *data, uint64_t nbytes)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        struct qt *t = realloc(s->t, cap * sizeof *t);
        if (!t) return llm_err_set(LLM_ENOMEM, "out of memory");
        s->t = t;
        s->cap = cap;
    }
    struct qt *q = &s->t[s->n++];
    snprintf(q->name, sizeof q->name, "%s", name);
    q->dtype = dtype;
    q->ndim = ndim;
    q->shape[0] = shape[0];
    q->shape[1] = ndim > 1 ? shape[1] : 0;
    q->shape[2] = ndim > 2 ? shape[2] : 0;
    q->data = data;
    q->nbytes = nbytes;
    q->n_side = 0;
    q->extra = 0;
    return 0;
}

static void qset_free(struct qset *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->t[i].data);
    free(s->t);
    for (int i = 0; i < s->n_fold; i++) free(s->fold[i].s);
    free(s->fold);
    json_decref(s->alphas);
}

/* The fold group a product's weight belongs to, or NULL. */
static const struct fold *fold_of(const struct qset *s, const char *name)
{
    for (int i = 0; i < s->n_fold; i++)
        for (int k = 0; k < s->fold[i].n; k++)
            if (!strcmp(s->fold[i].lin[k], name)) return &s->fold[i];
    return NULL;
}

static const struct qt *qset_find(const struct qset *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->t[i].name, name)) return &s->t[i];
    return NULL;
}

/* The quantized model's tensors: ours first, the parent's otherwise (but
 * never the parent's dense copy of a weight we replaced - it is ours). */
static int q_get(void *ctx, const char *name, struct llm_tensor *t)
{
    const struct qset *s = ctx;
    const struct qt *q = qset_find(s, name);
    if (q) {
        memset(t, 0, sizeof *t);
        t->name = q->name;
        t->dtype = q->dtype;
        t->ndim = q->ndim;
        t->shape[0] = q->shape[0];
        t->shape[1] = q->shape[1];
        t->shape[2] = q->shape[2];
        t->nbytes = q->nbytes;
        t->data = q->data;
        return 0;
    }
    int rc = llm_ar_find(s->parent->ar, name, t);
    if (rc == LLM_ENOTFOUND) llm_err_clear();
    return rc;
}

static int excluded(const struct opts *o, const char *name)
{
    for (int i = 0; i < o->n_exclude; i++) {
        const char *p = o->exclude[i];
        if (!fnmatch(p, name, 0) || (!strpbrk(p, "*?[") && strstr(name, p))) return 1;
    }
    return 0;
}

/* --alpha auto chose a for weight `name` (output error e of alpha 0.5's):
 * into the metadata, the summary and -v's line. */
static int alpha_chosen(const struct opts *o, struct qset *s, const char *name, double a, double e)
{
    if ((!s->alphas && !(s->alphas = json_object())) ||
        json_object_set_new(s->alphas, name, json_real(a)))
        return llm_err_set(LLM_ENOMEM, "out of memory quantizing '%s'", name);
    s->alpha_min = s->n_searched ? fmin(s->alpha_min, a) : a;
    s->alpha_max = s->n_searched ? fmax(s->alpha_max, a) : a;
    s->alpha_sum += a;
    s->n_searched++;
    if (o->verbose > 0)
        llm_info("%s: SmoothQuant alpha %.2f, output error %.3f of alpha 0.5", name, a, e);
    return 0;
}

/* Quantize one [out][in] weight into the set (weight + its scales); its
 * calibration statistics are those of `key` (the name, or an expert's
 * "<name>#<e>"). */
static int quantize_one(const struct opts *o, struct qset *s, const struct llm_tensor *t,
                        const struct llm_q_stats *st, const char *key)
{
    const int64_t out = t->shape[0], in = t->shape[1];
    const size_t n = (size_t)(out * in);
    char stem[LLM_NAME_MAX + 8], sn[LLM_NAME_MAX + 40];
    snprintf(stem, sizeof stem, "%.*s", (int)(strlen(t->name) - strlen(".weight")), t->name);
    float *w = malloc(sizeof(float) * n);
    if (!w) return llm_err_set(LLM_ENOMEM, "out of memory for '%s'", t->name);
    int rc = llm_convert(w, LLM_DTYPE_F32, t->data, t->dtype, n);
    void *q = NULL;
    float *sc = NULL;
    int64_t ws[2] = {out, in};
    if (rc) goto out;
    if (o->algo == LLM_QUANT_W8A16) {
        q = malloc(n);
        sc = malloc(sizeof(float) * (size_t)out);
        if (!q || !sc) goto oom;
        llm_q_int8_channel(w, out, in, q, sc);
        int64_t ss[1] = {out};
        snprintf(sn, sizeof sn, "%s.per_channel_scale", stem);
        if ((rc = qset_add(s, t->name, LLM_DTYPE_I8, 2, ws, q, n))) goto out;
        q = NULL;
        rc = qset_add(s, sn, LLM_DTYPE_F32, 1, ss, sc, sizeof(float) * (size_t)out);
    } else if (o->algo == LLM_QUANT_W4A16) {
        int64_t g = in / o->group;
        q = malloc(n / 2);
        sc = malloc(sizeof(float) * (size_t)(g * out));
        if (!q || !sc) goto oom;
        llm_q_int4_group(w, out, in, (int)o->group, q, sc);
        int64_t ss[2] = {g, out};
        snprintf(sn, sizeof sn, "%s.weights_scaling_factor", stem);
        if ((rc = qset_add(s, t->name, LLM_DTYPE_I4, 2, ws, q, n / 2))) goto out;
        q = NULL;
        rc = qset_add(s, sn, LLM_DTYPE_F32, 2, ss, sc, sizeof(float) * (size_t)(g * out));
    } else if (is_awq(o->algo)) {
        const struct llm_q_stat *x = llm_q_stats_find(st, key);
        if (!x || !x->rows || x->in != in || !x->n_sample) {
            rc = llm_err_set(LLM_EINVAL, "calibration never reached '%s'", key);
            goto out;
        }
        int64_t g = in / o->group;
        double *mean = malloc(sizeof(double) * (size_t)in), a = 0, e = 1;
        int clipped = 0;
        float *pre = malloc(sizeof(float) * (size_t)in);
        q = malloc(n / 2);
        sc = malloc(sizeof(float) * (size_t)(g * out));
        if (!q || !sc || !mean || !pre) {
            free(mean);
            free(pre);
            goto oom;
        }
        for (int64_t j = 0; j < in; j++) mean[j] = x->chan_sum[j] / (double)x->rows;
        rc = llm_q_awq(w, out, in, (int)o->group, mean, x->sample, x->n_sample, o->clip, q, sc,
                       pre, &a, &clipped, &e);
        free(mean);
        s->n_searched++;
        s->n_clipped += clipped;
        if (!rc && o->verbose > 0)
            llm_info("%s: AWQ exponent %.2f%s, output error %.3f of round to nearest", key, a,
                     !o->clip ? "" : clipped ? ", clipped" : ", not clipped (no gain)", e);
        int64_t ss[2] = {g, out}, si[1] = {in};
        if (!rc) rc = qset_add(s, t->name, LLM_DTYPE_I4, 2, ws, q, n / 2);
        if (!rc) q = NULL;
        snprintf(sn, sizeof sn, "%s.weights_scaling_factor", stem);
        if (!rc) rc = qset_add(s, sn, LLM_DTYPE_F32, 2, ss, sc, sizeof(float) * (size_t)(g * out));
        if (!rc) sc = NULL;
        /* w4a8-awq: the static fp8 scale of the input as the weight sees it (x pre) */
        float *as = NULL;
        if (!rc && o->algo == LLM_QUANT_W4A8_AWQ) {
            float am = 0.f;
            for (int64_t j = 0; j < in; j++)
                am = fmaxf(am, x->chan[j] * pre[j]);
            if (!(as = malloc(sizeof(float))))
                rc = llm_err_set(LLM_ENOMEM, "out of memory quantizing '%s'", t->name);
            else
                *as = am > 0.f ? am / 448.0f : 1.0f;
        }
        snprintf(sn, sizeof sn, "%s.prequant_scaling_factor", stem);
        if (!rc) rc = qset_add(s, sn, LLM_DTYPE_F32, 1, si, pre, sizeof(float) * (size_t)in);
        if (!rc) pre = NULL;
        free(pre);
        if (!rc && as) {
            int64_t one[1] = {1};
            snprintf(sn, sizeof sn, "%s.activation_scaling_factor", stem);
            if (!(rc = qset_add(s, sn, LLM_DTYPE_F32, 1, one, as, sizeof(float)))) as = NULL;
        }
        free(as);
    } else if (o->algo == LLM_QUANT_FP8) { /* per tensor, static activations */
        const struct llm_q_stat *x = llm_q_stats_find(st, key);
        if (!x || !x->rows) {
            rc = llm_err_set(LLM_EINVAL, "calibration never reached '%s'", key);
            goto out;
        }
        float *as = malloc(sizeof(float));
        q = malloc(n);
        sc = malloc(sizeof(float));
        if (!q || !sc || !as) {
            free(as);
            goto oom;
        }
        llm_q_fp8_tensor(w, n, q, sc);
        *as = x->amax > 0.f ? x->amax / 448.0f : 1.0f;
        int64_t one[1] = {1};
        snprintf(sn, sizeof sn, "%s.weights_scaling_factor", stem);
        if ((rc = qset_add(s, t->name, LLM_DTYPE_F8E4M3, 2, ws, q, n))) {
            free(as);
            goto out;
        }
        q = NULL;
        if ((rc = qset_add(s, sn, LLM_DTYPE_F32, 1, one, sc, sizeof(float)))) {
            free(as);
            goto out;
        }
        sc = NULL;
        snprintf(sn, sizeof sn, "%s.activation_scaling_factor", stem);
        rc = qset_add(s, sn, LLM_DTYPE_F32, 1, one, as, sizeof(float));
        if (rc) free(as);
    } else if (o->algo == LLM_QUANT_W8A8_SQ_PC || o->algo == LLM_QUANT_W8A8_SQ_PC_PT) {
        const struct llm_q_stat *x = llm_q_stats_find(st, key);
        if (!x || !x->rows || x->in != in || (o->alpha_auto && !x->n_sample)) {
            rc = llm_err_set(LLM_EINVAL, "calibration never reached '%s'", key);
            goto out;
        }
        float *sm = malloc(sizeof(float) * (size_t)in), *as = malloc(sizeof(float));
        q = malloc(n);
        sc = malloc(sizeof(float) * (size_t)out);
        if (!q || !sc || !sm || !as) {
            free(sm);
            free(as);
            goto oom;
        }
        const struct fold *f = fold_of(s, t->name);
        if (f) { /* s shared with the group, folded into its norm */
            memcpy(sm, f->s, sizeof(float) * (size_t)in);
            for (int64_t r = 0; r < out; r++)
                for (int64_t j = 0; j < in; j++) w[r * in + j] *= sm[j];
        } else if (o->alpha_auto) {
            double a = 0.5, e = 1;
            rc = llm_q_smooth_search(x->chan, w, out, in, x->sample, x->n_sample,
                                     o->algo == LLM_QUANT_W8A8_SQ_PC, sm, &a, &e);
            if (!rc) rc = alpha_chosen(o, s, key, a, e);
            if (rc) {
                free(sm);
                free(as);
                goto out;
            }
            for (int64_t r = 0; r < out; r++)
                for (int64_t j = 0; j < in; j++) w[r * in + j] *= sm[j];
        } else if (o->alpha >= 0) {
            llm_q_smooth(x->chan, w, out, in, o->alpha, sm);
            for (int64_t r = 0; r < out; r++)
                for (int64_t j = 0; j < in; j++) w[r * in + j] *= sm[j];
        } else {
            for (int64_t j = 0; j < in; j++) sm[j] = 1.0f;
        }
        float am = 0.f; /* the smoothed input's maximum: the static scale */
        for (int64_t j = 0; j < in; j++) am = fmaxf(am, x->chan[j] / sm[j]);
        *as = am > 0.f ? am / 127.0f : 1.0f;
        llm_q_int8_channel(w, out, in, q, sc);
        int64_t ss[1] = {out}, si[1] = {in}, one[1] = {1};
        snprintf(sn, sizeof sn, "%s.per_channel_scale", stem);
        rc = qset_add(s, t->name, LLM_DTYPE_I8, 2, ws, q, n);
        if (!rc) q = NULL;
        if (!rc) rc = qset_add(s, sn, LLM_DTYPE_F32, 1, ss, sc, sizeof(float) * (size_t)out);
        if (!rc) sc = NULL;
        if (!rc && !f && (o->alpha >= 0 || o->alpha_auto)) {
            snprintf(sn, sizeof sn, "%s.smoother", stem);
            rc = qset_add(s, sn, LLM_DTYPE_F32, 1, si, sm, sizeof(float) * (size_t)in);
            if (!rc) sm = NULL;
        }
        if (!rc && o->algo == LLM_QUANT_W8A8_SQ_PC) {
            snprintf(sn, sizeof sn, "%s.act_scale", stem);
            rc = qset_add(s, sn, LLM_DTYPE_F32, 1, one, as, sizeof(float));
            if (!rc) as = NULL;
        }
        free(sm);
        free(as);
    } else { /* fp8, per channel */
        q = malloc(n);
        sc = malloc(sizeof(float) * (size_t)out);
        if (!q || !sc) goto oom;
        llm_q_fp8_channel(w, out, in, q, sc);
        int64_t ss[1] = {out};
        snprintf(sn, sizeof sn, "%s.weights_scaling_factor", stem);
        if ((rc = qset_add(s, t->name, LLM_DTYPE_F8E4M3, 2, ws, q, n))) goto out;
        q = NULL;
        rc = qset_add(s, sn, LLM_DTYPE_F32, 1, ss, sc, sizeof(float) * (size_t)out);
    }
    if (!rc) sc = NULL;
    goto out;
oom:
    rc = llm_err_set(LLM_ENOMEM, "out of memory quantizing '%s'", t->name);
out:
    free(w);
    free(q);
    free(sc);
    return rc;
}

/* Quantize an expert stack [E][out][in]: each expert as its own [out][in]
 * weight (its own statistics, "<name>#<e>"), the results stacked along a
 * new first dimension - the weight [E][out][in], each side tensor [E][...]
 * (a per-tensor scale [E][1]). */
static int quantize_stack(const struct opts *o, struct qset *s, const struct llm_tensor *t,
                          const struct llm_q_stats *st)
{
    const int64_t E = t->shape[0];
    uint64_t mat;
    llm_dtype_nbytes(t->dtype, (uint64_t)(t->shape[1] * t->shape[2]), &mat);
    struct qset one = {0};
    one.parent = s->parent;
    int rc = 0;
    size_t per = 0;
    for (int64_t e = 0; e < E && !rc; e++) {
        struct llm_tensor v = *t;
        char key[LLM_NAME_MAX + 24];
        snprintf(key, sizeof key, "%s#%lld", t->name, (long long)e);
        v.ndim = 2;
        v.shape[0] = t->shape[1];
        v.shape[1] = t->shape[2];
        v.shape[2] = 0;
        v.data = (const char *)t->data + (uint64_t)e * mat;
        v.nbytes = mat;
        size_t first = one.n;
        rc = quantize_one(o, &one, &v, st, key);
        if (!rc && e == 0) per = one.n;
        if (!rc && one.n - first != per)
            rc = llm_err_set(LLM_EINVAL, "'%s': expert %lld quantized into %zu tensors, expert 0 "
                             "into %zu", t->name, (long long)e, one.n - first, per);
    }
    for (size_t k = 0; k < per && !rc; k++) {
        const struct qt *q0 = &one.t[k];
        int64_t shape[3] = {E, q0->shape[0], q0->shape[1]};
        char *buf = malloc((size_t)(q0->nbytes * (uint64_t)E));
        if (!buf) {
            rc = llm_err_set(LLM_ENOMEM, "out of memory quantizing '%s'", t->name);
            break;
        }
        for (int64_t e = 0; e < E; e++)
            memcpy(buf + (uint64_t)e * q0->nbytes, one.t[(size_t)e * per + k].data, q0->nbytes);
        if ((rc = qset_add(s, q0->name, q0->dtype, q0->ndim + 1, shape, buf,
                           q0->nbytes * (uint64_t)E)))
            free(buf);
    }
    /* the alphas --alpha auto chose per expert */
    if (!rc && one.alphas) {
        if (!s->alphas) {
            s->alphas = one.alphas;
            one.alphas = NULL;
        } else if (json_object_update(s->alphas, one.alphas)) {
            rc = llm_err_set(LLM_ENOMEM, "out of memory quantizing '%s'", t->name);
        }
    }
    if (one.n_searched) {
        s->alpha_min = s->n_searched ? fmin(s->alpha_min, one.alpha_min) : one.alpha_min;
        s->alpha_max = s->n_searched ? fmax(s->alpha_max, one.alpha_max) : one.alpha_max;
    }
    s->alpha_sum += one.alpha_sum;
    s->n_searched += one.n_searched;
    s->n_clipped += one.n_clipped;
    qset_free(&one);
    return rc;
}

/* ---- int8-sq: smoothing factors folded into the norms ------------------------- */

/* A tensor of the parent as f32 (n values), or NULL with the error set. */
static float *parent_f32(const struct llm_tensor *t, size_t n)
{
    float *v = malloc(sizeof(float) * (n ? n : 1));
    if (!v) {
        llm_err_set(LLM_ENOMEM, "out of memory for '%s'", t->name);
        return NULL;
    }
    if (llm_convert(v, LLM_DTYPE_F32, t->data, t->dtype, n)) {
        free(v);
        return NULL;
    }
    return v;
}

/* v[n] (f32, freed here) into the set in place of the parent's norm
 * tensor t: in f32 (or t's dtype, when wider).  A folded norm in a 16-bit
 * dtype would round (offset + w) / s once more, the product's input with
 * it: README.md ("Quantization") has what that cost. */
static int replace_tensor(struct qset *s, const struct llm_tensor *t, float *v, size_t n)
{
    uint64_t nb = 0;
    void *o = NULL;
    int dt = llm_dtype_bits(t->dtype) > 32 ? t->dtype : LLM_DTYPE_F32;
    int rc = llm_dtype_nbytes(dt, n, &nb);
    if (!rc && !(o = malloc(nb ? nb : 1)))
        rc = llm_err_set(LLM_ENOMEM, "out of memory for '%s'", t->name);
    if (!rc) rc = llm_convert(o, dt, v, LLM_DTYPE_F32, n);
    int64_t sh[1] = {(int64_t)n};
    if (!rc) rc = qset_add(s, t->name, dt, 1, sh, o, nb);
    if (rc) free(o);
    free(v);
    return rc;
}

/* One norm of layer l and the products that alone read its output: when
 * every one of them is quantized here, one s from their weights together
 * (the column maxima over all of them; --alpha auto: searched on them
 * stacked), the norm's weight and bias divided by it in the set, and the
 * group recorded for quantize_one.  A group with a product kept dense
 * keeps its smoothers. */
static int fold_one(const struct opts *o, struct llm_model *m, struct qset *s,
                    const struct llm_q_stats *st, const struct llm_norm_use *u, int l,
                    json_t *folded)
{
    struct fold f = {0};
    struct llm_tensor w[LLM_NORM_USE_MAX], nw, nb;
    int64_t in = 0, rows = 0;
    for (int k = 0; k < u->n; k++) {
        llm_name_of_slot(f.lin[k], sizeof f.lin[k], u->linear[k], l, 0);
        if (llm_ar_find(m->ar, f.lin[k], &w[k]) || w[k].ndim != 2 || excluded(o, f.lin[k]) ||
            (k && w[k].shape[1] != in)) {
            llm_err_clear();
            return 0;
        }
        in = w[k].shape[1];
        rows += w[k].shape[0];
    }
    f.n = u->n;
    llm_name_of_slot(f.norm, sizeof f.norm, u->norm, l, 0);
    if (llm_ar_find(m->ar, f.norm, &nw) || nw.ndim != 1 || nw.shape[0] != in ||
        !llm_dtype_is_float(nw.dtype)) {
        llm_err_clear();
        return 0;
    }
    char bname[LLM_NAME_MAX];
    llm_name_of_slot(bname, sizeof bname, u->norm, l, 1);
    int has_b = !llm_ar_find(m->ar, bname, &nb);
    llm_err_clear();
    if (has_b && (nb.ndim != 1 || nb.shape[0] != in || !llm_dtype_is_float(nb.dtype))) return 0;
    const struct llm_q_stat *x = llm_q_stats_find(st, f.lin[0]);
    if (!x || !x->rows || x->in != in || (o->alpha_auto && !x->n_sample))
        return llm_err_set(LLM_EINVAL, "calibration never reached '%s'", f.lin[0]);
    /* s from the products' weights */
    float *wf = NULL, *nwf = NULL, *nbf = NULL;
    int rc = 0;
    if (!(f.s = calloc((size_t)in, sizeof(float)))) goto oom;
    if (o->alpha_auto) {
        if (!(wf = malloc(sizeof(float) * (size_t)(rows * in)))) goto oom;
        for (int64_t k = 0, r0 = 0; k < f.n && !rc; r0 += w[k].shape[0], k++)
            rc = llm_convert(wf + (int64_t)r0 * in, LLM_DTYPE_F32, w[k].data, w[k].dtype,
                             (size_t)(w[k].shape[0] * in));
        double a = 0.5, e = 1;
        if (!rc)
            rc = llm_q_smooth_search(x->chan, wf, rows, in, x->sample, x->n_sample,
                                     o->algo == LLM_QUANT_W8A8_SQ_PC, f.s, &a, &e);
        for (int k = 0; k < f.n && !rc; k++) rc = alpha_chosen(o, s, f.lin[k], a, e);
    } else {
        for (int k = 0; k < f.n && !rc; k++) {
            float *v = parent_f32(&w[k], (size_t)(w[k].shape[0] * in));
            if (!v) {
                rc = llm_errcode() ? llm_errcode() : LLM_ENOMEM;
                break;
            }
            llm_q_col_amax(v, w[k].shape[0], in, f.s);
            free(v);
        }
        if (!rc) llm_q_smooth_amax(x->chan, f.s, in, o->alpha, f.s);
    }
    free(wf);
    wf = NULL;
    if (rc) goto out;
    /* the norm divided by it */
    if (!(nwf = parent_f32(&nw, (size_t)in)) || (has_b && !(nbf = parent_f32(&nb, (size_t)in)))) {
        rc = llm_errcode() ? llm_errcode() : LLM_ENOMEM;
        goto out;
    }
    llm_q_fold_norm(nwf, nbf, f.s, in, m->desc.norm_offset);
    rc = replace_tensor(s, &nw, nwf, (size_t)in);
    nwf = NULL;
    if (!rc && has_b) rc = replace_tensor(s, &nb, nbf, (size_t)in);
    nbf = NULL;
    char stem[LLM_NAME_MAX];
    snprintf(stem, sizeof stem, "%.*s", (int)(strlen(f.norm) - strlen(".weight")), f.norm);
    if (!rc && json_array_append_new(folded, json_string(stem)))
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
    struct fold *nf = rc ? NULL : realloc(s->fold, sizeof *nf * (size_t)(s->n_fold + 1));
    if (!rc && !nf) goto oom;
    if (!rc) {
        s->fold = nf;
        s->fold[s->n_fold++] = f;
        f.s = NULL;
        if (o->verbose > 0) {
            char who[LLM_NORM_USE_MAX * (LLM_NAME_MAX + 2)] = "";
            for (int k = 0; k < f.n; k++)
                snprintf(who + strlen(who), sizeof who - strlen(who), "%s%s", k ? ", " : "",
                         f.lin[k]);
            llm_info("%s: smoothing factors folded in (shared by %s)", f.norm, who);
        }
    }
    goto out;
oom:
    rc = llm_err_set(LLM_ENOMEM, "out of memory folding into '%s'", f.norm);
out:
    free(wf);
    free(nwf);
    free(nbf);
    free(f.s);
    return rc;
}

/* Every norm whose output only int8-sq products read (the model
 * definition says which: llm_graph_norm_uses), in every layer; their
 * names into `folded`. */
static int plan_folds(const struct opts *o, struct llm_model *m, struct qset *s,
                      const struct llm_q_stats *st, json_t *folded)
{
    const struct llm_model_desc *d = &m->desc;
    /* LayerNorm with an offset (no family converts to one): the backends do not
     * agree on whether the offset applies there, so its smoothers stay */
    if (d->norm == LLM_NORM_LAYER && d->norm_offset != 0) return 0;
    struct llm_graph g;
    struct llm_norm_use u[8];
    int rc = llm_graph_build(&g, d, NULL);
    if (rc) return rc;
    int nu = llm_graph_norm_uses(&g, u, 8);
    for (int k = 0; k < nu && k < 8 && !rc; k++) {
        int per = llm_wslot_per_layer(u[k].norm);
        for (int l = 0; l < (per ? d->n_layers : 1) && !rc; l++)
            rc = fold_one(o, m, s, st, &u[k], l, folded);
    }
    return rc;
}

/* Which of the parent's tensors are quantized: linear weights [out][in]
 * that no pattern excludes.  Checks what the mode needs of each; dry: only
 * the checks (and the count), nothing quantized. */
static int plan_and_quantize(const struct opts *o, struct llm_model *m, struct qset *s,
                             const struct llm_q_stats *st, size_t *n_q, int dry, json_t *folded)
{
    size_t n = llm_ar_count(m->ar);
    *n_q = 0;
    if (!dry && folded && (o->alpha >= 0 || o->alpha_auto) && !o->no_fold &&
        (o->algo == LLM_QUANT_W8A8_SQ_PC || o->algo == LLM_QUANT_W8A8_SQ_PC_PT)) {
        int rc = plan_folds(o, m, s, st, folded);
        if (rc) return rc;
    }
    for (size_t i = 0; i < n; i++) {
        struct llm_tensor t;
        int rc = llm_ar_info(m->ar, i, &t);
        if (rc) return rc;
        int slot, layer, is_bias;
        if (llm_name_to_slot(t.name, &slot, &layer, &is_bias)) {
            llm_err_clear();
            continue;
        }
        /* linear weights [out][in], and expert stacks [experts][out][in] */
        if (is_bias || llm_wslot_kind(slot) != LLM_WK_LINEAR ||
            (t.ndim != 2 && !(t.ndim == 3 && m->desc.n_experts > 0)) || excluded(o, t.name))
            continue;
        const int64_t in = t.shape[t.ndim - 1];
        if (!llm_dtype_is_float(t.dtype) || llm_dtype_bits(t.dtype) < 16)
            return llm_err_set(LLM_EFORMAT, "'%s': tensor '%s' is %s, not a float weight",
                               m->path, t.name, llm_dtype_name(t.dtype));
        if (is_int4(o->algo) && (in % o->group || o->group % 2))
            return llm_err_set(LLM_EINVAL, "'%s': --group-size %ld does not divide the %lld "
                               "input channels of '%s'", m->path, o->group, (long long)in,
                               t.name);
        if (dry) {
            ++*n_q;
            continue;
        }
        if ((rc = llm_ar_get(m->ar, i, &t))) return rc;
        size_t first = s->n;
        rc = t.ndim == 3 ? quantize_stack(o, s, &t, st) : quantize_one(o, s, &t, st, t.name);
        if (rc) return rc;
        s->t[first].n_side = (int)(s->n - first - 1);
        ++*n_q;
        if (o->verbose > 0) llm_info("quantized %s", t.name);
    }
    if (!*n_q)
        return llm_err_set(LLM_EINVAL, "'%s': no linear weight left to quantize (every one is "
                           "excluded)", m->path);
    return 0;
}

/* ---- the evaluation text ------------------------------------------------------ */

static int eval_tokens(const struct opts *o, const struct llm_model *m, int32_t **ids, long *n)
{
    char dflt[4096];
    const char *path = o->eval;
    if (!path) {
        snprintf(dflt, sizeof dflt, "%s/eval.txt", LLM_DATADIR);
        FILE *f = fopen(dflt, "rb");
        if (!f) {
            snprintf(dflt, sizeof dflt, "%s/eval.txt", LLM_SRC_DATADIR);
        } else {
            fclose(f);
        }
        path = dflt;
    }
    if (!m->tokenizer_json)
        return llm_err_set(LLM_EINVAL, "'%s' holds no tokenizer: the report needs one (or "
                           "--no-eval)", m->path);
    struct llm_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = llm_tok_load(&tok, m->tokenizer_json, m->tokenizer_config, m->path);
    if (!rc) rc = llm_read_file(path, &text, &len, (size_t)1 << 30);
    if (!rc && len == 0) rc = llm_err_set(LLM_EINVAL, "'%s': empty evaluation text", path);
    size_t cnt = 0;
    if (!rc) rc = llm_tok_encode(tok, text, len, 1, ids, &cnt);
    if (!rc && cnt < 2)
        rc = llm_err_set(LLM_EINVAL, "'%s': evaluation text of %zu tokens", path, cnt);
    if (!rc) *n = (long)cnt < o->eval_tokens ? (long)cnt : o->eval_tokens;
    free(text);
    llm_tok_free(tok);
    return rc;
}

/* Calibration tokens: plain text, or the prompts of llm-run JSONL lines
 * (FILE ending in .jsonl), each encoded on its own, concatenated. */
static int calib_tokens(const struct opts *o, const struct llm_model *m, long window,
                        int32_t **ids, long *n)
{
    char dflt[4096];
    const char *path = o->calib;
    long want = o->calib_samples * window;
    if (path && !strcmp(path, "random")) { /* every window, ids drawn uniformly (seeded) */
        if (!(*ids = malloc(sizeof(int32_t) * (size_t)want)))
            return llm_err_set(LLM_ENOMEM, "out of memory");
        uint64_t x = 0x9e3779b97f4a7c15ull;
        for (long i = 0; i < want; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            (*ids)[i] = (int32_t)((x >> 33) % (uint64_t)m->desc.vocab_size);
        }
        *n = want;
        return 0;
    }
    if (!path) {
        snprintf(dflt, sizeof dflt, "%s/calib.txt", LLM_DATADIR);
        FILE *f = fopen(dflt, "rb");
        if (f) fclose(f);
        else snprintf(dflt, sizeof dflt, "%s/calib.txt", LLM_SRC_DATADIR);
        path = dflt;
    }
    if (!m->tokenizer_json)
        return llm_err_set(LLM_EINVAL, "'%s' holds no tokenizer: calibration needs one", m->path);
    struct llm_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0, cnt = 0, cap = 0;
    int32_t *all = NULL;
    int rc = llm_tok_load(&tok, m->tokenizer_json, m->tokenizer_config, m->path);
    if (!rc) rc = llm_read_file(path, &text, &len, (size_t)1 << 30);
    size_t pl = strlen(path);
    int jsonl = pl > 6 && !strcmp(path + pl - 6, ".jsonl");
    for (size_t at = 0, line = 1; !rc && at < len && (long)cnt < want; line++) {
        const char *p = text + at, *e = jsonl ? memchr(p, '\n', len - at) : NULL;
        size_t l = jsonl ? (e ? (size_t)(e - p) : len - at) : len;
        at += l + 1;
        const char *piece = p;
        size_t plen = l;
        json_t *j = NULL;
        if (jsonl) {
            if (!l || (l == 1 && *p == '\r')) continue;
            json_error_t je;
            j = json_loadb(p, l, 0, &je);
            const json_t *pr = json_object_get(j, "prompt");
            if (!json_is_string(pr)) {
                json_decref(j);
                rc = llm_err_set(LLM_EFORMAT, "'%s': line %zu: not an llm-run request with a "
                                 "\"prompt\" string", path, line);
                break;
            }
            piece = json_string_value(pr);
            plen = json_string_length(pr);
        }
        int32_t *v = NULL;
        size_t k = 0;
        rc = llm_tok_encode(tok, piece, plen, 1, &v, &k);
        json_decref(j);
        if (!rc && cnt + k > cap) {
            size_t nc = 2 * (cnt + k) + 1024;
            int32_t *t2 = realloc(all, nc * sizeof *t2);
            if (!t2) rc = llm_err_set(LLM_ENOMEM, "out of memory");
            else all = t2, cap = nc;
        }
        if (!rc) memcpy(all + cnt, v, k * sizeof *v), cnt += k;
        free(v);
    }
    if (!rc && cnt == 0) rc = llm_err_set(LLM_EINVAL, "'%s': empty calibration text", path);
    if (!rc) {
        *ids = all;
        *n = (long)cnt < want ? (long)cnt : want;
    } else {
        free(all);
    }
    free(text);
    llm_tok_free(tok);
    return rc;
}

static void on_progress(void *ctx, long done, long total)
{
    const struct opts *o = ctx;
    if (o->verbose >= 0 && isatty(2))
        fprintf(stderr, "\rllm-quantize: evaluating %ld/%ld tokens", done, total);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Calibration's progress: a bar on a terminal (which device, tokens, time
 * left); where stderr is not a terminal, a line at every tenth. */
struct calib_progress {
    const struct opts *o;
    const struct llm_q_stats *st;
    double t0;
    int tenth;
};

static void on_calib_progress(void *ctx, long done, long total)
{
    struct calib_progress *p = ctx;
    if (p->o->verbose < 0 || total <= 0) return;
    double el = now_s() - p->t0, left = done > 0 ? el * (double)(total - done) / (double)done : 0;
    int tty = isatty(2), pct = (int)(100 * done / total);
    if (!tty) {
        if (10 * done / total <= p->tenth) return;
        p->tenth = (int)(10 * done / total);
    }
    char bar[31];
    int fill = (int)(30 * done / total);
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    fprintf(stderr, "%sllm-quantize: calibrating on %s [%s] %3d%% %ld/%ld tokens, %.0f s, ~%.0f s "
            "left%s", tty ? "\r" : "", p->st->backend, bar, pct, done, total, el, left,
            tty ? "" : "\n");
}

/* ---- output ------------------------------------------------------------------- */

static json_t *report_json(const struct llm_q_report *r, const struct opts *o, long window)
{
    return json_pack("{s:s, s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "text",
                     o->eval ? o->eval : "bundled", "backend", "cpu", "tokens",
                     (json_int_t)r->tokens, "window", (json_int_t)window, "kld_mean", r->kld_mean,
                     "kld_p99", r->kld_p99, "kld_max", r->kld_max, "top1_agreement", r->top1,
                     "ppl_parent", r->ppl_parent, "ppl_quantized", r->ppl_quant);
}

static json_t *prov_entry(const struct opts *o, const char *parent_hash)
{
    json_t *argv = json_pack("[s, s, s]", "llm-quantize", "-m", o->mode);
    char b[32];
    if (is_int4(o->algo)) {
        snprintf(b, sizeof b, "%ld", o->group);
        json_array_append_new(argv, json_string("--group-size"));
        json_array_append_new(argv, json_string(b));
    }
    if (o->clip) json_array_append_new(argv, json_string("--clip"));
    if (o->kv) {
        json_array_append_new(argv, json_string("--kv"));
        json_array_append_new(argv, json_string(o->kv == LLM_KV_QUANT_FP8 ? "fp8" : "int8"));
    }
    if (o->algo == LLM_QUANT_W8A8_SQ_PC || o->algo == LLM_QUANT_W8A8_SQ_PC_PT) {
        if (o->alpha_auto) snprintf(b, sizeof b, "auto");
        else if (o->alpha < 0) snprintf(b, sizeof b, "none");
        else snprintf(b, sizeof b, "%g", o->alpha);
        json_array_append_new(argv, json_string("--alpha"));
        json_array_append_new(argv, json_string(b));
        json_array_append_new(argv, json_string("--act"));
        json_array_append_new(argv, json_string(o->algo == LLM_QUANT_W8A8_SQ_PC ? "static"
                                                                                 : "dynamic"));
        json_array_append_new(argv, json_string(o->no_fold ? "--no-fold" : "--fold"));
    }
    if (o->kv || (o->algo != LLM_QUANT_NONE && o->algo != LLM_QUANT_W8A16 &&
                  o->algo != LLM_QUANT_W4A16 && o->algo != LLM_QUANT_FP8_PC_PT)) {
        json_array_append_new(argv, json_string("--calib"));
        json_array_append_new(argv, json_string(o->calib ? o->calib : "bundled"));
        snprintf(b, sizeof b, "%ld", o->calib_samples);
        json_array_append_new(argv, json_string("--calib-samples"));
        json_array_append_new(argv, json_string(b));
        snprintf(b, sizeof b, "%ld", o->calib_len);
        json_array_append_new(argv, json_string("--calib-len"));
        json_array_append_new(argv, json_string(b));
    }
    for (int i = 0; i < o->n_exclude; i++) {
        json_array_append_new(argv, json_string("--exclude"));
        json_array_append_new(argv, json_string(o->exclude[i]));
    }
    if (o->no_eval) {
        json_array_append_new(argv, json_string("--no-eval"));
    } else {
        json_array_append_new(argv, json_string("--eval"));
        json_array_append_new(argv, json_string(o->eval ? o->eval : "bundled"));
        snprintf(b, sizeof b, "%ld", o->eval_tokens);
        json_array_append_new(argv, json_string("--eval-tokens"));
        json_array_append_new(argv, json_string(b));
        snprintf(b, sizeof b, "%ld", o->eval_len);
        json_array_append_new(argv, json_string("--eval-len"));
        json_array_append_new(argv, json_string(b));
    }
    if (o->device && strcmp(o->device, "auto")) {
        json_array_append_new(argv, json_string("--device"));
        json_array_append_new(argv, json_string(o->device));
    }
    json_array_append_new(argv, json_string(o->in));
    return json_pack("{s:s, s:s, s:s, s:o, s:{s:s, s:s}}", "tool", "llm-quantize", "version",
                     LLM_VERSION, "commit", LLM_GIT_COMMIT, "argv", argv, "parent", "path", o->in,
                     "hash", parent_hash);
}

/* The parent's metadata with the quantization section, the report and our
 * provenance entry. */
static json_t *out_meta(const struct llm_model *m, const struct llm_quant *q, json_t *report,
                        json_t *entry)
{
    json_t *meta = json_deep_copy(m->meta), *chain = json_array();
    if (!meta || !chain) {
        json_decref(meta);
        json_decref(chain);
        return NULL;
    }
    const json_t *c0 = json_object_get(meta, "provenance");
    int bad = json_is_array(c0) && json_array_extend(chain, (json_t *)c0);
    bad |= json_array_append(chain, entry);
    bad |= json_object_set_new(meta, "provenance", chain);
    bad |= json_object_set_new(meta, "quantization", llm_quant_to_json(q));
    bad |= json_object_set(meta, "quantization_report", report ? report : json_null());
    if (bad) {
        json_decref(meta);
        return NULL;
    }
    return meta;
}

static int write_out(const struct opts *o, struct llm_model *m, const struct qset *s,
                     json_t *meta)
{
    struct llm_aw *w = NULL;
    struct llm_aw_opts ao = {0};
    int rc = llm_aw_create(&w, o->out ? o->out : "-", meta, &ao);
    size_t n = llm_ar_count(m->ar);
    for (size_t i = 0; !rc && i < n; i++) {
        struct llm_tensor t;
        if ((rc = llm_ar_get(m->ar, i, &t))) break;
        const struct qt *q = qset_find(s, t.name);
        if (!q) {
            rc = llm_aw_add(w, t.name, t.dtype, t.ndim, t.shape, t.data, t.nbytes);
            continue;
        }
        /* a quantized weight, then its scales (added to the set after it) */
        for (int k = 0, nk = 1 + q->n_side; k < nk && !rc; k++, q++)
            rc = llm_aw_add(w, q->name, q->dtype, q->ndim, q->shape, q->data, q->nbytes);
    }
    for (size_t k = 0; !rc && k < s->n; k++)
        if (s->t[k].extra)
            rc = llm_aw_add(w, s->t[k].name, s->t[k].dtype, s->t[k].ndim, s->t[k].shape,
                            s->t[k].data, s->t[k].nbytes);
    if (!rc) rc = llm_aw_finish(w);
    else llm_aw_abort(w);
    return rc;
}

/* ---- main ---------------------------------------------------------------------- */

static int mode_algo(const char *m)
{
    if (!strcmp(m, "w8a16")) return LLM_QUANT_W8A16;
    if (!strcmp(m, "w4a16")) return LLM_QUANT_W4A16;
    if (!strcmp(m, "fp8-pc")) return LLM_QUANT_FP8_PC_PT;
    if (!strcmp(m, "fp8")) return LLM_QUANT_FP8;
    if (!strcmp(m, "int8-sq")) return LLM_QUANT_W8A8_SQ_PC_PT;
    if (!strcmp(m, "int4-awq")) return LLM_QUANT_W4A16_AWQ;
    if (!strcmp(m, "w4a8-awq")) return LLM_QUANT_W4A8_AWQ;
    return -1;
}

/* One tensor per layer, attention.kv_cache_scaling_factor [2]: K's scale,
 * then V's, from the largest |K| and |V| calibration put in the cache. */
static int kv_scales(const struct opts *o, const struct llm_model *m, struct qset *s,
                     const struct llm_q_stats *st)
{
    const float top = o->kv == LLM_KV_QUANT_FP8 ? 448.0f : 127.0f;
    for (int l = 0; l < m->desc.n_layers; l++) {
        char name[LLM_NAME_MAX];
        llm_name_layer(name, sizeof name, l, "attention." LLM_WQ_KV_SCALE);
        float *v = malloc(2 * sizeof(float));
        if (!v) return llm_err_set(LLM_ENOMEM, "out of memory");
        for (int j = 0; j < 2; j++) {
            float a = st->kv_amax ? st->kv_amax[2 * l + j] : 0.f;
            v[j] = a > 0.f ? a / top : 1.0f;
        }
        int64_t two[1] = {2};
        int rc = qset_add(s, name, LLM_DTYPE_F32, 1, two, v, 2 * sizeof(float));
        if (rc) {
            free(v);
            return rc;
        }
        s->t[s->n - 1].extra = 1;
    }
    return 0;
}

static int run(struct opts *o)
{
    struct llm_model *m = NULL, qm = {0};
    struct qset s = {0};
    int32_t *ids = NULL;
    json_t *report = NULL, *entry = NULL, *meta = NULL, *calib_json = NULL, *folded = NULL;
    struct llm_q_stats stats = {0};
    int rc = llm_model_open_flags(&m, o->in, o->no_verify ? LLM_MODEL_NO_VERIFY : 0);
    if (rc) return tool_fail(rc);
    s.parent = m;
    int code = TOOL_EXIT_FAIL;
    if (m->quant.algo || m->quant.kv_algo) {
        rc = llm_err_set(LLM_EINVAL, "'%s' is already quantized (%s); quantize its unquantized "
                         "parent", m->path,
                         m->quant.algo ? llm_quant_algo_name(m->quant.algo)
                                       : llm_kv_quant_name(m->quant.kv_algo));
        goto out;
    }
    if (json_object_get(m->meta, "engine")) {
        rc = llm_err_set(LLM_EINVAL, "'%s' is an engine (llm-build); quantize the artifact it "
                         "was built from", m->path);
        goto out;
    }
    if (m->mapping.world_size > 1) {
        rc = llm_err_set(LLM_EINVAL, "'%s' is one rank of a sharded model; quantize the whole "
                         "model, then shard it", m->path);
        goto out;
    }
    uint64_t h = 0;
    char hex[17] = "";
    if (llm_bench_model_hash(m, &h) == 0) llm_bench_hex64(h, hex);
    llm_err_clear();
    size_t n_q = 0;
    double t0 = (double)clock() / CLOCKS_PER_SEC;
    /* every check on the weights before the (long) calibration */
    if (o->algo && (rc = plan_and_quantize(o, m, &s, NULL, &n_q, 1, NULL))) goto out;
    if (o->kv || o->algo == LLM_QUANT_FP8 || o->algo == LLM_QUANT_W8A8_SQ_PC ||
        o->algo == LLM_QUANT_W8A8_SQ_PC_PT || is_awq(o->algo)) {
        long cw = o->calib_len < m->desc.max_pos ? o->calib_len : m->desc.max_pos, cn = 0;
        int32_t *cids = NULL;
        if ((rc = calib_tokens(o, m, cw, &cids, &cn))) goto out;
        struct llm_backend_opts bo;
        llm_backend_opts_init(&bo);
        bo.compute_dtype = LLM_DTYPE_F32; /* the reference's arithmetic (docs/CUDA.md) */
        int keep = is_awq(o->algo) || o->alpha_auto ? SEARCH_ROWS : 0;
        struct calib_progress cp = {o, &stats, now_s(), 0};
        rc = llm_q_calibrate(m, cids, cn, (int)cw, keep, o->device, &bo, on_calib_progress, &cp,
                             &stats);
        free(cids);
        if (o->verbose >= 0 && isatty(2)) fputc('\n', stderr);
        if (rc) goto out;
        double ct = now_s() - cp.t0;
        if (o->verbose >= 0)
            fprintf(stderr, "llm-quantize: calibrated on %ld tokens in windows of %ld on %s%s%s%s, "
                    "%s, in %.1f s\n", cn, cw, strcmp(stats.backend, "cpu") ? stats.backend : "",
                    strcmp(stats.backend, "cpu") ? " (" : "", stats.device,
                    strcmp(stats.backend, "cpu") ? ")" : "", llm_dtype_name(stats.dtype), ct);
        calib_json = json_pack("{s:s, s:I, s:I, s:s, s:s, s:s}", "text",
                               o->calib ? o->calib : "bundled", "tokens", (json_int_t)cn,
                               "window", (json_int_t)cw, "backend", stats.backend, "device",
                               stats.device, "dtype", llm_dtype_name(stats.dtype));
    }
    int sq = o->algo == LLM_QUANT_W8A8_SQ_PC || o->algo == LLM_QUANT_W8A8_SQ_PC_PT;
    if (sq && !(folded = json_array())) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory building the metadata");
        goto out;
    }
    if (o->algo && (rc = plan_and_quantize(o, m, &s, &stats, &n_q, 0, folded))) goto out;
    if ((s.alphas && calib_json && json_object_set(calib_json, "alpha", s.alphas)) ||
        (folded && calib_json && json_object_set(calib_json, "folded", folded))) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory building the metadata");
        goto out;
    }
    if (o->kv && (rc = kv_scales(o, m, &s, &stats))) goto out;
    /* the quantized model, in memory */
    qm.desc = m->desc;
    qm.gen = m->gen;
    llm_model_init_mem(&qm);
    qm.quant.algo = o->algo;
    qm.quant.kv_algo = o->kv;
    qm.quant.group_size = is_int4(o->algo) ? (int)o->group : 0;
    qm.quant.pre_quant_scale = is_awq(o->algo);
    qm.quant.n_exclude = o->n_exclude;
    for (int i = 0; i < o->n_exclude; i++)
        snprintf(qm.quant.exclude[i], sizeof qm.quant.exclude[i], "%s", o->exclude[i]);
    qm.path = (char *)(o->out ? o->out : "<output>");
    qm.get_tensor = q_get;
    qm.get_tensor_ctx = &s;
    qm.meta = m->meta;
    qm.tokenizer_json = m->tokenizer_json;
    qm.tokenizer_config = m->tokenizer_config;
    if (o->verbose >= 0 && o->algo)
        fprintf(stderr, "llm-quantize: %zu weights quantized (%s) in %.1f s\n", n_q,
                llm_quant_algo_name(o->algo), (double)clock() / CLOCKS_PER_SEC - t0);
    if (o->verbose >= 0 && o->alpha_auto && s.n_searched)
        fprintf(stderr, "llm-quantize: --alpha auto chose %.2f to %.2f (mean %.2f) over %d "
                "weights (-v: each)\n", s.alpha_min, s.alpha_max, s.alpha_sum / s.n_searched,
                s.n_searched);
    if (o->verbose >= 0 && folded && !o->no_fold && (o->alpha >= 0 || o->alpha_auto)) {
        size_t nw = 0;
        for (int i = 0; i < s.n_fold; i++) nw += (size_t)s.fold[i].n;
        fprintf(stderr, "llm-quantize: smoothing factors of %zu weights folded into %d norms, "
                "%zu keep a smoother\n", nw, s.n_fold, n_q - nw);
    }
    if (o->verbose >= 0 && o->clip)
        fprintf(stderr, "llm-quantize: --clip kept for %d of %d weights (the others lost "
                "nothing to it)\n", s.n_clipped, s.n_searched);
    if (o->verbose >= 0 && o->kv)
        fprintf(stderr, "llm-quantize: KV cache %s, K and V scales for %d layers\n",
                llm_kv_quant_name(o->kv), m->desc.n_layers);
    struct llm_q_report r = {0};
    long window = o->eval_len < m->desc.max_pos ? o->eval_len : m->desc.max_pos;
    if (!o->no_eval) {
        long n = 0;
        if ((rc = eval_tokens(o, m, &ids, &n))) goto out;
        struct llm_backend_opts bo;
        llm_backend_opts_init(&bo);
        rc = llm_q_evaluate(m, &qm, ids, n, (int)window, "cpu", &bo, on_progress, o, &r);
        if (o->verbose >= 0 && isatty(2)) fputc('\n', stderr);
        if (rc) goto out;
        report = report_json(&r, o, window);
        if (o->verbose >= 0)
            fprintf(stderr,
                    "llm-quantize: %s vs parent over %ld tokens: KLD mean %.5f, p99 %.5f, max "
                    "%.4f; top-1 agreement %.2f%%; perplexity %.4f (parent %.4f)\n",
                    o->mode, r.tokens, r.kld_mean, r.kld_p99, r.kld_max, 100 * r.top1,
                    r.ppl_quant, r.ppl_parent);
        if (o->max_kld >= 0 && r.kld_mean > o->max_kld) {
            llm_err_set(LLM_EINVAL, "'%s': mean KLD %.5f is above --max-kld %g; nothing written",
                        m->path, r.kld_mean, o->max_kld);
            tool_fail(LLM_EINVAL);
            code = EXIT_KLD;
            rc = 0;
            goto done;
        }
        if (r.kld_mean > WARN_KLD)
            fprintf(stderr, "llm-quantize: WARNING: mean KLD %.4f is above %.2f: the quantized "
                    "model is far from its parent\n", r.kld_mean, WARN_KLD);
    }
    if (!(entry = prov_entry(o, hex)) || !(meta = out_meta(m, &qm.quant, report, entry)) ||
        (calib_json && json_object_set(meta, "quantization_calibration", calib_json))) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory building the metadata");
        goto out;
    }
    if ((rc = write_out(o, m, &s, meta))) goto out;
    code = TOOL_EXIT_OK;
    goto done;
out:
    if (rc) code = tool_fail(rc);
done:
    json_decref(report);
    json_decref(calib_json);
    json_decref(folded);
    llm_q_stats_free(&stats);
    json_decref(entry);
    json_decref(meta);
    free(ids);
    qset_free(&s);
    llm_model_close(m);
    return code;
}

int main(int argc, char **argv)
{
    tool_init("llm-quantize");
    struct opts o = {.group = 128, .eval_tokens = 4096, .eval_len = 256, .max_kld = -1,
                     .calib_samples = 512, .calib_len = 512, .alpha = 0.5, .device = "auto"};
    static const struct option lo[] = {
        {"mode", required_argument, NULL, 'm'},
        {"output", required_argument, NULL, 'o'},
        {"group-size", required_argument, NULL, OPT_GROUP},
        {"exclude", required_argument, NULL, OPT_EXCLUDE},
        {"eval", required_argument, NULL, OPT_EVAL},
        {"calib", required_argument, NULL, OPT_CALIB},
        {"calib-samples", required_argument, NULL, OPT_CALIB_SAMPLES},
        {"calib-len", required_argument, NULL, OPT_CALIB_LEN},
        {"device", required_argument, NULL, OPT_DEVICE},
        {"alpha", required_argument, NULL, OPT_ALPHA},
        {"act", required_argument, NULL, OPT_ACT},
        {"clip", no_argument, NULL, OPT_CLIP},
        {"fold", no_argument, NULL, OPT_FOLD},
        {"no-fold", no_argument, NULL, OPT_NO_FOLD},
        {"kv", required_argument, NULL, OPT_KV},
        {"eval-tokens", required_argument, NULL, OPT_EVAL_TOKENS},
        {"eval-len", required_argument, NULL, OPT_EVAL_LEN},
        {"no-eval", no_argument, NULL, OPT_NO_EVAL},
        {"max-kld", required_argument, NULL, OPT_MAX_KLD},
        {"no-verify", no_argument, NULL, OPT_NO_VERIFY},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    int c, excl_given = 0, alpha_given = 0, act_given = 0, fold_given = 0;
    while ((c = getopt_long(argc, argv, "m:o:qvh", lo, NULL)) != -1) {
        switch (c) {
        case 'm': o.mode = optarg; break;
        case 'o': o.out = optarg; break;
        case OPT_GROUP:
            if (tool_parse_int(optarg, 2, 1 << 20, &o.group))
                return tool_usage_error("--group-size: bad value '%s'", optarg);
            break;
        case OPT_EXCLUDE:
            if (o.n_exclude == LLM_QUANT_MAX_EXCLUDE)
                return tool_usage_error("--exclude: at most %d patterns", LLM_QUANT_MAX_EXCLUDE);
            if (!*optarg || strlen(optarg) >= 64)
                return tool_usage_error("--exclude: bad pattern '%s'", optarg);
            o.exclude[o.n_exclude++] = optarg;
            excl_given = 1;
            break;
        case OPT_EVAL: o.eval = optarg; break;
        case OPT_CALIB: o.calib = optarg; break;
        case OPT_DEVICE:
            if (strcmp(optarg, "auto") && strcmp(optarg, "cpu") && strcmp(optarg, "cuda"))
                return tool_usage_error("--device '%s': expected auto, cpu or cuda", optarg);
            o.device = optarg;
            break;
        case OPT_ALPHA:
            o.alpha_auto = !strcmp(optarg, "auto");
            if (o.alpha_auto) o.alpha = 0.5; /* unused: each layer's is searched */
            else if (!strcmp(optarg, "none")) o.alpha = -1;
            else if (tool_parse_double(optarg, 0, 1, &o.alpha))
                return tool_usage_error("--alpha: bad value '%s' (0 to 1, auto or none)", optarg);
            alpha_given = 1;
            break;
        case OPT_CLIP: o.clip = 1; break;
        case OPT_FOLD:
        case OPT_NO_FOLD:
            o.no_fold = c == OPT_NO_FOLD;
            fold_given = 1;
            break;
        case OPT_KV:
            if (!strcmp(optarg, "fp8")) o.kv = LLM_KV_QUANT_FP8;
            else if (!strcmp(optarg, "int8")) o.kv = LLM_KV_QUANT_INT8;
            else return tool_usage_error("--kv: '%s' is not fp8 or int8", optarg);
            break;
        case OPT_ACT:
            if (strcmp(optarg, "dynamic") && strcmp(optarg, "static"))
                return tool_usage_error("--act: '%s' is not dynamic or static", optarg);
            o.act_static = !strcmp(optarg, "static");
            act_given = 1;
            break;
        case OPT_CALIB_SAMPLES:
            if (tool_parse_int(optarg, 1, 1L << 24, &o.calib_samples))
                return tool_usage_error("--calib-samples: bad value '%s'", optarg);
            break;
        case OPT_CALIB_LEN:
            if (tool_parse_int(optarg, 2, 1 << 20, &o.calib_len))
                return tool_usage_error("--calib-len: bad value '%s'", optarg);
            break;
        case OPT_EVAL_TOKENS:
            if (tool_parse_int(optarg, 2, 1L << 30, &o.eval_tokens))
                return tool_usage_error("--eval-tokens: bad value '%s'", optarg);
            break;
        case OPT_EVAL_LEN:
            if (tool_parse_int(optarg, 2, 1 << 20, &o.eval_len))
                return tool_usage_error("--eval-len: bad value '%s'", optarg);
            break;
        case OPT_NO_EVAL: o.no_eval = 1; break;
        case OPT_MAX_KLD:
            if (tool_parse_double(optarg, 0, 1e9, &o.max_kld))
                return tool_usage_error("--max-kld: bad value '%s'", optarg);
            break;
        case OPT_NO_VERIFY: o.no_verify = 1; break;
        case 'q': o.verbose = -1; break;
        case 'v': o.verbose = 1; break;
        case 'h': fputs(usage_text, stdout); return TOOL_EXIT_OK;
        case OPT_VERSION: return tool_version();
        default: return tool_usage_error("unknown or incomplete option");
        }
    }
    llm_log_set_level(o.verbose < 0 ? LLM_LOG_ERROR : o.verbose > 0 ? LLM_LOG_DEBUG
                                                                     : LLM_LOG_WARN);
    if (!o.mode && !o.kv)
        return tool_usage_error("-m MODE or --kv is required (w8a16, w4a16, fp8-pc, fp8, "
                                "int8-sq, int4-awq, w4a8-awq)");
    if (!o.mode) o.mode = "none";
    o.algo = !strcmp(o.mode, "none") && o.kv ? LLM_QUANT_NONE : mode_algo(o.mode);
    if (o.algo < 0) {
        return tool_usage_error("-m: unknown mode '%s' (w8a16, w4a16, fp8-pc, fp8, int8-sq, "
                                "int4-awq, w4a8-awq)",
                                o.mode);
    }
    if (o.no_eval && o.max_kld >= 0) return tool_usage_error("--max-kld needs the report");
    int sq = o.algo == LLM_QUANT_W8A8_SQ_PC_PT;
    if (o.calib && o.algo != LLM_QUANT_FP8 && !is_awq(o.algo) && !sq && !o.kv)
        return tool_usage_error("--calib: mode %s takes no calibration", o.mode);
    if ((alpha_given || act_given) && !sq)
        return tool_usage_error("--alpha and --act are for -m int8-sq");
    if (fold_given && !sq) return tool_usage_error("--fold and --no-fold are for -m int8-sq");
    if (o.clip && !is_awq(o.algo))
        return tool_usage_error("--clip is for -m int4-awq and w4a8-awq");
    if (sq && o.act_static) o.algo = LLM_QUANT_W8A8_SQ_PC;
    if (optind + 1 != argc) return tool_usage_error("expected one ARTIFACT");
    o.in = argv[optind];
    if (!excl_given) {
        o.exclude[o.n_exclude++] = "lm_head";
        o.exclude[o.n_exclude++] = "*router*";
    }
    if ((!o.out || !strcmp(o.out, "-")) && isatty(1))
        return tool_usage_error("standard output is a terminal; name the output with -o");
    int crc = llm_out_check(o.out);
    if (crc) return tool_fail(crc);
    return run(&o);
}
