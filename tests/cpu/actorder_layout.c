/* actorder_layout.c - an act-order GPTQ checkpoint's weights as llm-convert
 * stores them, against the checkpoint's own values recomputed here.
 *
 * Usage: actorder-layout CHECKPOINT.safetensors ARTIFACT N_LAYERS
 * For each Llama linear of each layer, the checkpoint's weight is
 * dequantized straight from its GPTQ tensors (qweight inputs packed low bits
 * first, qzeros stored minus one, g_idx any group per input):
 *   w[o][i] = scales[g_idx[i]][o] * (q[i][o] - (qzeros[g_idx[i]][o] + 1)),
 * and the artifact's from its own (column j of the int4 weight reads input
 * perm[j]):  w[o][perm[j]] = scale[j / g][o] * (code[o][j] - zero[j / g][o]).
 * The two must be equal, bit for bit (both are one product of the same
 * floats), and at least one weight must have a perm that is not the identity.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/model.h"
#include "llm/safetensors.h"
#include "llm/weight.h"

static int fails, permuted;

static uint32_t u32(const struct llm_tensor *t, int64_t i)
{
    uint32_t v;
    memcpy(&v, (const char *)t->data + 4 * i, 4);
    return v;
}

static float f32_at(const struct llm_tensor *t, int64_t i)
{
    float v;
    llm_convert(&v, LLM_DTYPE_F32, (const char *)t->data + i * (llm_dtype_bits(t->dtype) / 8),
                t->dtype, 1);
    return v;
}

static const struct llm_tensor *hf(struct llm_st *st, const char *stem, const char *what)
{
    char name[256];
    snprintf(name, sizeof name, "%s.%s", stem, what);
    const struct llm_tensor *t = llm_st_find(st, name);
    if (!t) {
        fprintf(stderr, "FAIL: checkpoint has no '%s'\n", name);
        exit(1);
    }
    return t;
}

static struct llm_tensor art(struct llm_model *m, const char *stem, const char *what)
{
    char name[256];
    struct llm_tensor t;
    snprintf(name, sizeof name, "%s.%s", stem, what);
    if (llm_model_tensor(m, name, &t)) {
        fprintf(stderr, "FAIL: %s\n", llm_errmsg());
        exit(1);
    }
    return t;
}

/* HF linear hstem (4 bits) against rows [r0, r0 + out) of artifact stem astem. */
static void check(struct llm_st *st, const char *hstem, struct llm_model *m, const char *astem,
                  int64_t r0)
{
    const struct llm_tensor *qw = hf(st, hstem, "qweight"), *qz = hf(st, hstem, "qzeros"),
                            *sc = hf(st, hstem, "scales"), *gi = hf(st, hstem, "g_idx");
    const int64_t in = gi->shape[0], out = sc->shape[1];
    struct llm_tensor w = art(m, astem, "weight"), s = art(m, astem, LLM_WQ_SCALE),
                      z = art(m, astem, LLM_WQ_ZERO), p = art(m, astem, LLM_WQ_PERM);
    const int64_t OUT = w.shape[0], g = in / s.shape[0];
    float *code = malloc(sizeof(float) * (size_t)(OUT * in));
    if (!code || llm_convert(code, LLM_DTYPE_F32, w.data, LLM_DTYPE_I4, (size_t)(OUT * in))) {
        fprintf(stderr, "FAIL: reading '%s.weight'\n", astem);
        exit(1);
    }
    int bad = 0;
    for (int64_t j = 0; j < in; j++) {
        int64_t i = (int32_t)u32(&p, j);
        permuted |= i != j;
        int64_t gg = (int32_t)u32(gi, i);
        for (int64_t o = 0; o < out && bad < 3; o++) {
            unsigned q = (u32(qw, (i / 8) * out + o) >> (4 * (i % 8))) & 15u;
            unsigned zs = (u32(qz, gg * (out / 8) + o / 8) >> (4 * (o % 8))) & 15u;
            float want = f32_at(sc, gg * out + o) * ((float)q - (float)(zs + 1));
            int64_t a = j / g * OUT + r0 + o;
            float got = f32_at(&s, a) * (code[(r0 + o) * in + j] - f32_at(&z, a));
            if (got != want) {
                fprintf(stderr, "FAIL: %s[%lld][%lld] (%s row %lld, column %lld): %g, "
                        "checkpoint %g\n", hstem, (long long)o, (long long)i, astem,
                        (long long)(r0 + o), (long long)j, (double)got, (double)want);
                bad++;
            }
        }
    }
    fails += bad;
    free(code);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: actorder-layout CHECKPOINT.safetensors ARTIFACT N_LAYERS\n");
        return 2;
    }
    struct llm_st *st;
    struct llm_model *m;
    if (llm_st_open(&st, argv[1]) || llm_model_open(&m, argv[2])) {
        fprintf(stderr, "FAIL: %s\n", llm_errmsg());
        return 1;
    }
    static const char *const qkv[] = {"q_proj", "k_proj", "v_proj"};
    static const struct { const char *hf, *art; } one[] = {
        {"self_attn.o_proj", "attention.dense"}, {"mlp.gate_proj", "mlp.fc"},
        {"mlp.up_proj", "mlp.gate"},             {"mlp.down_proj", "mlp.proj"}};
    for (int l = 0; l < atoi(argv[3]); l++) {
        char h[128], a[128];
        snprintf(a, sizeof a, "transformer.layers.%d.attention.qkv", l);
        int64_t r0 = 0;
        for (int k = 0; k < 3; k++) {
            snprintf(h, sizeof h, "model.layers.%d.self_attn.%s", l, qkv[k]);
            check(st, h, m, a, r0);
            r0 += hf(st, h, "scales")->shape[1];
        }
        for (size_t k = 0; k < sizeof one / sizeof one[0]; k++) {
            snprintf(h, sizeof h, "model.layers.%d.%s", l, one[k].hf);
            snprintf(a, sizeof a, "transformer.layers.%d.%s", l, one[k].art);
            check(st, h, m, a, 0);
        }
    }
    if (!permuted) {
        fprintf(stderr, "FAIL: no weight has a permutation other than the identity\n");
        fails++;
    }
    llm_model_close(m);
    llm_st_close(st);
    printf("act-order layout: %s\n", fails ? "FAILED" : "every weight equals the checkpoint's");
    return fails ? 1 : 0;
}
