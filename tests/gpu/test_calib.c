/* test_calib.c - calibration on the CUDA backend against the CPU backend.
 *
 *   test_gpu_calib [MODEL [TEXT]]          the statistics of both backends compared
 *   test_gpu_calib --compare A B [A B...]  two quantized artifacts' tensors compared
 *
 * The first form calibrates MODEL (default: the bundled lib/data/default.llm)
 * on TEXT (default: lib/data/calib.txt) with llm_q_calibrate on the CPU
 * backend (the reference) and on the CUDA backend in f32, for a few window
 * and sample sizes (last windows shorter, samples far smaller than the row
 * count so that rows replace rows inside one product), and checks that the
 * CUDA statistics are the reference's: the same weights, row counts and
 * sample sizes; every channel maximum and the overall maximum within
 * 1e-5 relative (plus 1e-6 of the weight's maximum: the two forwards agree
 * to f32 rounding, not bit for bit); every channel sum within 1e-5
 * relative; the same sampled rows (each element within 1e-5 of the
 * weight's maximum - another row would differ by the activations' own
 * size); each layer's K and V maxima within 1e-5 relative.  The same in bf16
 * compute is printed, not checked (what f32 calibration avoids).
 *
 * The second form is the end of `tests/gpu/run.sh calib`: llm-quantize with
 * --device cpu and --device cuda must write the same tensors - the same
 * names, dtypes and shapes, float tensors (scales, smoothers, folded norms,
 * pre-quant scales) within 1e-4 relative, and 8- and 4-bit codes equal but
 * for at most 1 in 10,000 that moved by one step (a value on a rounding
 * boundary of the weight times a factor computed from the statistics).
 * Exit 77 without a CUDA device.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime_api.h>

#include "llm/artifact.h"
#include "llm/backend.h"
#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/io.h"
#include "llm/log.h"
#include "llm/model.h"
#include "llm/quantize.h"
#include "llm/tokenizer.h"
#include "llm_build_config.h"

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("FAIL: ");                                                                      \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* ---- statistics ------------------------------------------------------------------ */

struct errs {
    double chan, amax, sum, sample, kv; /* the largest error of each, in its bound's units */
};

static double rel(double a, double b, double floor)
{
    double d = fabs(a - b), s = fmax(fabs(b), floor);
    return s > 0 ? d / s : d;
}

/* Errors of g against the reference r, each as a fraction of its bound (<= 1 passes). */
static int compare_stats(const struct llm_q_stats *r, const struct llm_q_stats *g, struct errs *e)
{
    memset(e, 0, sizeof *e);
    int bad = 0;
    if (r->n != g->n) {
        printf("  %d weights on the cpu, %d on cuda\n", r->n, g->n);
        return 1;
    }
    for (int i = 0; i < r->n; i++) {
        const struct llm_q_stat *a = &r->stat[i], *b = llm_q_stats_find(g, a->name);
        if (!b || b->in != a->in || b->rows != a->rows || b->n_sample != a->n_sample) {
            printf("  '%s': %s\n", a->name, b ? "widths, row counts or sample sizes differ"
                                              : "missing on cuda");
            bad = 1;
            continue;
        }
        double am = a->amax;
        e->amax = fmax(e->amax, rel(b->amax, a->amax, 0) / 1e-5);
        for (int64_t j = 0; j < a->in; j++) {
            double d = fabs((double)b->chan[j] - a->chan[j]);
            e->chan = fmax(e->chan, d / (1e-5 * fabs(a->chan[j]) + 1e-6 * am + 1e-30));
            e->sum = fmax(e->sum, rel(b->chan_sum[j], a->chan_sum[j], 1e-30) / 1e-5);
        }
        for (int64_t k = 0; k < (int64_t)a->n_sample * a->in; k++)
            e->sample = fmax(e->sample,
                             fabs((double)b->sample[k] - a->sample[k]) / (1e-5 * am + 1e-30));
    }
    for (int l = 0; l < 2 * r->n_layers; l++)
        e->kv = fmax(e->kv, rel(g->kv_amax[l], r->kv_amax[l], 1e-30) / 1e-5);
    return bad;
}

static int32_t *text_tokens(struct llm_model *m, const char *path, long *n)
{
    struct llm_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0, cnt = 0;
    int32_t *ids = NULL;
    if (llm_tok_load(&tok, m->tokenizer_json, m->tokenizer_config, m->path) ||
        llm_read_file(path, &text, &len, (size_t)1 << 30) ||
        llm_tok_encode(tok, text, len, 1, &ids, &cnt))
        ids = NULL;
    free(text);
    llm_tok_free(tok);
    *n = (long)cnt;
    return ids;
}

static int run_stats(const char *model, const char *text)
{
    struct llm_model *m = NULL;
    if (llm_model_open(&m, model)) {
        printf("FAIL: %s\n", llm_errmsg());
        return 1;
    }
    long n = 0;
    int32_t *ids = text_tokens(m, text, &n);
    if (!ids || n < 64) {
        printf("FAIL: '%s': no tokens (%s)\n", text, llm_errmsg());
        llm_model_close(m);
        return 1;
    }
    printf("%s: %ld tokens of %s\n", model, n, text);
    const struct {
        int window, keep;
    } cases[] = {{256, 128}, {100, 16}, {512, 128}, {37, 5}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int W = cases[c].window < m->desc.max_pos ? cases[c].window : (int)m->desc.max_pos;
        int K = cases[c].keep;
        struct llm_backend_opts bo;
        llm_backend_opts_init(&bo);
        bo.compute_dtype = LLM_DTYPE_F32;
        struct llm_q_stats r, g;
        if (llm_q_calibrate(m, ids, n, W, K, "cpu", &bo, NULL, NULL, &r)) {
            CHECK(0, "cpu calibration (window %d): %s", W, llm_errmsg());
            continue;
        }
        if (llm_q_calibrate(m, ids, n, W, K, "cuda", &bo, NULL, NULL, &g)) {
            CHECK(0, "cuda calibration (window %d): %s", W, llm_errmsg());
            llm_q_stats_free(&r);
            continue;
        }
        struct errs e;
        int bad = compare_stats(&r, &g, &e);
        int ok = !bad && e.chan <= 1 && e.amax <= 1 && e.sum <= 1 && e.sample <= 1 && e.kv <= 1;
        printf("%s: window %d, keep %d, %d weights on %s (f32): errors / bound: chan max %.3f, "
               "amax %.3f, chan sum %.3f, sample %.3f, kv %.3f\n",
               ok ? "ok" : "FAIL", W, K, r.n, g.device, e.chan, e.amax, e.sum, e.sample, e.kv);
        if (!ok) failures++;
        llm_q_stats_free(&g);
        if (c == 0) { /* bf16 compute: how far its statistics are (printed, not checked) */
            bo.compute_dtype = LLM_DTYPE_BF16;
            if (!llm_q_calibrate(m, ids, n, W, K, "cuda", &bo, NULL, NULL, &g)) {
                compare_stats(&r, &g, &e);
                printf("info: bf16 compute, window %d: errors / the f32 bounds: chan max %.0f, "
                       "amax %.0f, chan sum %.0f, sample %.0f, kv %.0f\n",
                       W, e.chan, e.amax, e.sum, e.sample, e.kv);
                llm_q_stats_free(&g);
            }
        }
        llm_q_stats_free(&r);
    }
    free(ids);
    llm_model_close(m);
    return 0;
}

/* ---- two quantized artifacts ---------------------------------------------------------- */

static int is_float(int dt)
{
    return dt == LLM_DTYPE_F32 || dt == LLM_DTYPE_F16 || dt == LLM_DTYPE_BF16;
}

static void compare_files(const char *pa, const char *pb)
{
    struct llm_model *a = NULL, *b = NULL;
    if (llm_model_open(&a, pa) || llm_model_open(&b, pb)) {
        CHECK(0, "%s", llm_errmsg());
        llm_model_close(a);
        return;
    }
    size_t nt = llm_ar_count(a->ar);
    int bad = 0;
    long n_same = 0;
    uint64_t codes = 0, moved = 0;
    int step = 0;
    double ferr = 0;
    for (size_t i = 0; i < nt; i++) {
        struct llm_tensor x, y;
        if (llm_ar_get(a->ar, i, &x) || llm_model_tensor(b, x.name, &y)) {
            printf("  '%s': %s\n", x.name, llm_errmsg());
            bad = 1;
            continue;
        }
        int shape = x.dtype == y.dtype && x.ndim == y.ndim && x.nbytes == y.nbytes;
        for (int d = 0; shape && d < x.ndim; d++) shape = x.shape[d] == y.shape[d];
        if (!shape) {
            printf("  '%s': dtype or shape differ\n", x.name);
            bad = 1;
            continue;
        }
        if (!memcmp(x.data, y.data, x.nbytes)) {
            n_same++;
            if (!is_float(x.dtype)) codes += x.nbytes * (x.dtype == LLM_DTYPE_I4 ? 2 : 1);
            continue;
        }
        if (is_float(x.dtype)) {
            size_t ne = (size_t)(x.nbytes / (x.dtype == LLM_DTYPE_F32 ? 4 : 2));
            float *fx = malloc(ne * sizeof(float)), *fy = malloc(ne * sizeof(float));
            if (fx && fy && !llm_to_f32(fx, x.data, x.dtype, ne) &&
                !llm_to_f32(fy, y.data, y.dtype, ne)) {
                double e = 0;
                for (size_t k = 0; k < ne; k++) e = fmax(e, rel(fy[k], fx[k], 1e-30));
                if (e > ferr) ferr = e;
                if (e > 1e-4) printf("  '%s': relative difference %.3g\n", x.name, e);
            }
            free(fx);
            free(fy);
            continue;
        }
        const uint8_t *p = x.data, *q = y.data;
        for (uint64_t k = 0; k < x.nbytes; k++) {
            if (x.dtype == LLM_DTYPE_I4) {
                for (int h = 0; h < 2; h++) {
                    int u = (p[k] >> (4 * h)) & 15, v = (q[k] >> (4 * h)) & 15;
                    u = u >= 8 ? u - 16 : u;
                    v = v >= 8 ? v - 16 : v;
                    codes++;
                    if (u != v) moved++, step = abs(u - v) > step ? abs(u - v) : step;
                }
                continue;
            }
            codes++;
            if (p[k] == q[k]) continue;
            moved++;
            /* int8: signed steps; e4m3 / u8: neighbours of one sign are one code apart */
            int d = x.dtype == LLM_DTYPE_I8 ? abs((int)(int8_t)p[k] - (int)(int8_t)q[k])
                                            : abs((int)p[k] - (int)q[k]);
            if (d > step) step = d;
        }
    }
    int ok = !bad && ferr <= 1e-4 && moved * 10000 <= codes && step <= 1;
    printf("%s: %s vs %s: %zu tensors, %ld byte-equal; float tensors within %.2g relative; "
           "%llu of %llu codes moved (at most %d step%s)\n",
           ok ? "ok" : "FAIL", pa, pb, nt, n_same, ferr, (unsigned long long)moved,
           (unsigned long long)codes, step, step == 1 ? "" : "s");
    if (!ok) failures++;
    llm_model_close(a);
    llm_model_close(b);
}

int main(int argc, char **argv)
{
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    llm_log_set_level(LLM_LOG_WARN);
    if (argc > 1 && !strcmp(argv[1], "--compare")) {
        if (argc < 4 || (argc - 2) % 2) {
            fprintf(stderr, "usage: test_gpu_calib --compare A B [A B ...]\n");
            return 2;
        }
        for (int i = 2; i + 1 < argc; i += 2) compare_files(argv[i], argv[i + 1]);
    } else {
        char model[4096], text[4096];
        const char *src = getenv("LLM_SRCDIR");
        if (src) {
            snprintf(model, sizeof model, "%s/lib/data/default.llm", src);
            snprintf(text, sizeof text, "%s/lib/data/calib.txt", src);
        } else {
            snprintf(model, sizeof model, "%s/default.llm", LLM_SRC_DATADIR);
            snprintf(text, sizeof text, "%s/calib.txt", LLM_SRC_DATADIR);
        }
        run_stats(argc > 1 ? argv[1] : model, argc > 2 ? argv[2] : text);
    }
    printf("%s\n", failures ? "FAILED" : "all ok");
    return failures ? 1 : 0;
}
