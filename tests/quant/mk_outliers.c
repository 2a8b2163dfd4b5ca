/* mk_outliers.c - give a trained model the activation outliers real LLMs
 * have, without changing what it computes.
 *
 *   mk-outliers IN.llm OUT.llm [FACTOR]
 *
 * In every layer, channels 5, 17, 101 and 200 of the attention and MLP
 * norms' weights are multiplied by FACTOR (default 64, a power of two) and
 * the matching input columns of the linear layers that read those norms
 * (qkv; fc and gate) divided by it.  A power of two scales floats exactly,
 * so the model's outputs are bit for bit the same while those four input
 * channels of every such linear layer are FACTOR times larger than they
 * were - the shape that defeats per-tensor activation scales.  Pre-norm
 * models with separate attention and MLP norms only (the bundled model).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "llm/artifact.h"
#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/model.h"

static const int chans[] = {5, 17, 101, 200};
#define NCH ((int)(sizeof chans / sizeof chans[0]))

static int ends(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: mk-outliers IN.llm OUT.llm [FACTOR]\n");
        return 2;
    }
    float f = argc == 4 ? (float)atof(argv[3]) : 64.0f;
    struct llm_artifact *a = NULL;
    int rc = llm_ar_open(&a, argv[1], 0);
    if (rc) {
        fprintf(stderr, "mk-outliers: %s\n", llm_errmsg());
        return 1;
    }
    json_t *meta = json_deep_copy(llm_ar_meta(a));
    json_t *prov = json_object_get(meta, "provenance");
    char fs[32];
    snprintf(fs, sizeof fs, "%g", f);
    if (json_is_array(prov))
        json_array_append_new(prov, json_pack("{s:s, s:[s, s, s, s]}", "tool", "mk-outliers",
                                              "argv", "mk-outliers", argv[1], argv[2], fs));
    struct llm_aw *w = NULL;
    struct llm_aw_opts ao = {0};
    rc = llm_aw_create(&w, argv[2], meta, &ao);
    size_t n = llm_ar_count(a);
    int touched = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        struct llm_tensor t;
        if ((rc = llm_ar_get(a, i, &t))) break;
        int norm = ends(t.name, "input_layernorm.weight") || ends(t.name, "post_layernorm.weight");
        int lin = ends(t.name, "attention.qkv.weight") || ends(t.name, "mlp.fc.weight") ||
                  ends(t.name, "mlp.gate.weight");
        if (!norm && !lin) {
            rc = llm_aw_add(w, t.name, t.dtype, t.ndim, t.shape, t.data, t.nbytes);
            continue;
        }
        uint64_t numel = 1;
        for (int d = 0; d < t.ndim; d++) numel *= (uint64_t)t.shape[d];
        float *v = malloc(sizeof(float) * numel);
        void *o = malloc(t.nbytes);
        if (!v || !o) rc = LLM_ENOMEM;
        if (!rc) rc = llm_convert(v, LLM_DTYPE_F32, t.data, t.dtype, numel);
        int64_t in = t.shape[t.ndim - 1], rows = (int64_t)numel / in;
        for (int c = 0; !rc && c < NCH; c++) {
            if (chans[c] >= in) continue;
            for (int64_t r = 0; r < rows; r++) v[r * in + chans[c]] *= norm ? f : 1.0f / f;
        }
        if (!rc) rc = llm_convert(o, t.dtype, v, LLM_DTYPE_F32, numel);
        if (!rc) rc = llm_aw_add(w, t.name, t.dtype, t.ndim, t.shape, o, t.nbytes);
        touched++;
        free(v);
        free(o);
    }
    if (!rc && !touched) rc = llm_err_set(LLM_EINVAL, "'%s': no norm or linear to change", argv[1]);
    if (!rc) rc = llm_aw_finish(w);
    else llm_aw_abort(w);
    json_decref(meta);
    llm_ar_close(a);
    if (rc) {
        fprintf(stderr, "mk-outliers: %s\n", llm_errmsg());
        return 1;
    }
    return 0;
}
