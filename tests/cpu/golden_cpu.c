/* golden_cpu.c - the CPU backend against Hugging Face transformers' own logits.
 *
 * Usage: golden-cpu FIXTURE_DIR ARTIFACT [FIXTURE_DIR ARTIFACT]...
 * FIXTURE_DIR is a folder of tests/fixtures (reference.json: prompts and the
 * greedy tokens transformers generated; reference.safetensors: its f32
 * logits after prefill and at each of the 24 greedy steps, every one
 * required: a fixture lacking any step's logits fails); ARTIFACT is
 * that checkpoint converted by llm-convert.  For each prompt the backend
 * prefills the prompt ids in one step, then feeds transformers' own
 * generated tokens back one at a time (teacher forcing, so a near-tie
 * cannot derail the comparison), and at every step compares
 *   - the logits with transformers': max |ours - HF| / max |HF| <= BOUND,
 *   - the greedy token (eos ids masked, as the reference did) with HF's,
 *     except at steps whose recorded top-1/top-2 margin is below
 *     2 x the largest logit difference seen there (a near-tie).
 * BOUND is 1e-5: both sides compute in fp32 from the same stored weights,
 * so differences are summation-order rounding (about 1e-6 relative).  A
 * fixture may state its own ("logit_bound" in reference.json: the
 * pre-quantized ones of tests/fixtures/quant, whose 8-bit activations can
 * round to a neighbouring code where the sums differ in their last bit).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/backend.h"
#include "llm/err.h"
#include "llm/model.h"
#include "llm/safetensors.h"

#define DEFAULT_BOUND 1e-5

static int fails;

static const float *ref_tensor(struct llm_st *st, const char *name, int64_t rows, int64_t vocab)
{
    const struct llm_tensor *t = llm_st_find(st, name);
    if (!t || t->dtype != LLM_DTYPE_F32 || (uint64_t)(rows * vocab) * 4 != t->nbytes) return NULL;
    return t->data;
}

/* logits vs reference row: relative max difference; the absolute one in *absd */
static double compare(const float *a, const float *ref, int64_t n, double *absd)
{
    double md = 0.0, mx = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (!(d <= md)) md = d; /* NaN wins */
        if (fabs(ref[i]) > mx) mx = fabs(ref[i]);
    }
    *absd = md;
    return md / mx;
}

static int argmax_masked(const float *l, int64_t vocab, const json_t *suppressed)
{
    int best = -1;
    for (int64_t v = 0; v < vocab; v++) {
        int masked = 0;
        size_t i;
        json_t *s;
        json_array_foreach(suppressed, i, s) masked |= json_integer_value(s) == v;
        if (masked) continue;
        if (best < 0 || l[v] > l[best]) best = (int)v;
    }
    return best;
}

/* one fixture against its converted artifact; 0 when every check held */
static int check_fixture(const char *dir, const char *artifact)
{
    fails = 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    json_error_t je;
    json_t *ref = json_load_file(path, JSON_ALLOW_NUL, &je);
    if (!ref) {
        fprintf(stderr, "golden-cpu: '%s': %s\n", path, je.text);
        return 1;
    }
    snprintf(path, sizeof path, "%s/reference.safetensors", dir);
    struct llm_st *st;
    struct llm_model *m;
    if (llm_st_open(&st, path) || llm_model_open(&m, artifact)) {
        fprintf(stderr, "golden-cpu: %s\n", llm_errmsg());
        return 1;
    }
    const char *name = json_string_value(json_object_get(ref, "fixture"));
    const json_t *jb = json_object_get(ref, "logit_bound");
    const double BOUND = json_is_number(jb) ? json_number_value(jb) : DEFAULT_BOUND;
    const json_t *prompts = json_object_get(ref, "prompts");
    const json_t *suppressed = json_object_get(ref, "suppressed_ids");
    int64_t V = m->desc.vocab_size;

    struct llm_backend_opts o;
    llm_backend_opts_init(&o);
    o.kv_bytes = 32u << 20;
    o.block_size = 16;
    o.max_seq_len = 512;
    struct llm_backend *be;
    if (llm_backend_create(&be, "cpu", m, &o)) {
        fprintf(stderr, "golden-cpu: %s: %s\n", name, llm_errmsg());
        return 1;
    }
    float *lg = malloc(sizeof(float) * (size_t)V);
    int32_t bt[32];
    for (int i = 0; i < 32; i++)
        bt[i] = i;
    double worst_pre = 0.0, worst_step = 0.0;
    int n_greedy = 0, n_ties = 0, n_want = 0, n_steps = 0;
    size_t k;
    json_t *p;
    json_array_foreach(prompts, k, p)
    {
        const json_t *ids = json_object_get(p, "prompt_ids"),
                     *gen = json_object_get(p, "generated_ids");
        const json_t *margins = json_object_get(p, "step_margins");
        int np = (int)json_array_size(ids), ng = (int)json_array_size(gen);
        char tn[64];
        snprintf(tn, sizeof tn, "logits.%zu", k);
        const float *pre = ref_tensor(st, tn, 1, V);
        snprintf(tn, sizeof tn, "step_logits.%zu", k);
        const float *steps = ref_tensor(st, tn, ng, V);
        n_want += ng;
        if (!pre || !steps || np < 1 || ng < 1 || np + ng > 16 * 32 ||
            (int)json_array_size(margins) != ng) {
            fprintf(stderr,
                    "FAIL %s prompt %zu: %s (want logits.%zu [%lld] and step_logits.%zu "
                    "[%d, %lld] f32, %d prompt ids, %d generated ids)\n",
                    name, k,
                    !pre || !steps ? "reference logits missing or of the wrong shape"
                                   : "prompt or generation empty or too long",
                    k, (long long)V, k, ng, (long long)V, np, ng);
            fails++;
            continue;
        }
        int32_t *tok = malloc(sizeof(int32_t) * (size_t)(np + ng)),
                *pos = malloc(sizeof(int32_t) * (size_t)np);
        for (int i = 0; i < np; i++)
            tok[i] = (int32_t)json_integer_value(json_array_get(ids, (size_t)i));
        for (int i = 0; i < ng; i++)
            tok[np + i] = (int32_t)json_integer_value(json_array_get(gen, (size_t)i));
        for (int i = 0; i < np; i++)
            pos[i] = i;
        /* step 0: the whole prompt; step t: HF's token t-1 */
        for (int t = 0; t < ng; t++) {
            int n = t ? 1 : np, at = t ? np + t - 1 : 0;
            int32_t p1 = at, ss[2] = {0, n}, len = np + (t ? t : 0), row = n - 1;
            struct llm_batch b = {n, tok + at, t ? &p1 : pos, 1, ss, &len, bt, 32, 1, &row};
            if (be->ops->forward(be, &b) || be->ops->get_logits(be, lg)) {
                fprintf(stderr, "FAIL %s prompt %zu step %d: %s\n", name, k, t, llm_errmsg());
                fails++;
                break;
            }
            n_steps++;
            double absd, rel = compare(lg, t ? steps + (int64_t)t * V : pre, V, &absd);
            if (t == 0 && rel > worst_pre) worst_pre = rel;
            if (t > 0 && rel > worst_step) worst_step = rel;
            if (!(rel <= BOUND)) {
                fprintf(stderr,
                        "FAIL %s prompt %zu step %d: logits differ from transformers by %.3g "
                        "relative (%.3g absolute), bound %g\n",
                        name, k, t, rel, absd, BOUND);
                fails++;
            }
            int want = (int)json_integer_value(json_array_get(gen, (size_t)t));
            int got = argmax_masked(lg, V, suppressed);
            double margin = json_real_value(json_array_get(margins, (size_t)t));
            if (got == want) {
                n_greedy++;
            } else if (margin < 2 * absd) {
                n_ties++;
            } else {
                fprintf(stderr,
                        "FAIL %s prompt %zu step %d: greedy token %d, transformers %d "
                        "(margin %.3g)\n",
                        name, k, t, got, want, margin);
                fails++;
            }
        }
        free(tok), free(pos);
    }
    if (json_array_size(prompts) == 0) {
        fprintf(stderr, "FAIL %s: no prompts in reference.json\n", name);
        fails++;
    }
    if (n_steps != n_want) {
        fprintf(stderr, "FAIL %s: %d of %d steps checked\n", name, n_steps, n_want);
        fails++;
    }
    printf("%s: %zu prompts, %d of %d steps checked, prefill logits max rel diff %.2e, step "
           "logits %.2e (bound %.0e); greedy tokens equal %d, near-ties skipped %d\n",
           name, json_array_size(prompts), n_steps, n_want, worst_pre, worst_step, BOUND,
           n_greedy, n_ties);
    free(lg);
    llm_backend_destroy(be);
    llm_model_close(m);
    llm_st_close(st);
    json_decref(ref);
    return fails ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc % 2 == 0) {
        fprintf(stderr, "usage: golden-cpu FIXTURE_DIR ARTIFACT [FIXTURE_DIR ARTIFACT]...\n");
        return 2;
    }
    int rc = 0;
    for (int i = 1; i + 1 < argc; i += 2)
        rc |= check_fixture(argv[i], argv[i + 1]);
    return rc;
}
