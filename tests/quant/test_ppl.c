/* test_ppl.c - the accuracy report's perplexity against transformers': each
 * fixture of tests/quant/ppl_reference.json (made by gen_ppl_ref.py) is
 * converted, the bundled held-out text tokenized by its own tokenizer (the
 * first ids must match), and llm_q_evaluate run with the model as both
 * parent and "quantized" model: the perplexity must be transformers' to
 * 1e-4 relative, the KL divergence 0 and the top-1 agreement 1. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llm/err.h"
#include "llm/hf.h"
#include "llm/io.h"
#include "llm/model.h"
#include "llm/quantize.h"
#include "llm/tokenizer.h"
#include "../formats/tcheck.h"


static void check_fixture(const char *src, const char *name, const json_t *ref, const char *text,
                          size_t len)
{
    char dir[1024], art[1024];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/%s", src, name);
    snprintf(art, sizeof art, "%s/llm-ppl-%s-%d.llm", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             name, (int)getpid());
    struct llm_convert_opts co;
    llm_convert_opts_init(&co);
    co.out = art;
    co.verbose = -1;
    struct llm_model *m = NULL;
    struct llm_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = llm_convert_hf(dir, &co);
    CHECK(!rc, "%s: convert", name);
    if (!rc) rc = llm_model_open(&m, art);
    if (!rc) rc = llm_tok_load(&tok, m->tokenizer_json, m->tokenizer_config, art);
    if (!rc) rc = llm_tok_encode(tok, text, len, 1, &ids, &n);
    CHECK(!rc, "%s: open and tokenize", name);
    if (!rc) {
        long want_n = (long)json_integer_value(json_object_get(ref, "tokens"));
        int window = (int)json_integer_value(json_object_get(ref, "window"));
        const json_t *first = json_object_get(ref, "first_ids");
        for (size_t i = 0; i < json_array_size(first) && i < n; i++)
            CHECK(ids[i] == json_integer_value(json_array_get(first, i)), "%s: id %zu is %d, "
                  "transformers %lld", name, i, ids[i],
                  (long long)json_integer_value(json_array_get(first, i)));
        long use = (long)n < want_n ? (long)n : want_n;
        CHECK(use == want_n, "%s: %ld tokens, transformers had %ld", name, use, want_n);
        struct llm_backend_opts bo;
        llm_backend_opts_init(&bo);
        struct llm_q_report r;
        rc = llm_q_evaluate(m, m, ids, use, window, "cpu", &bo, NULL, NULL, &r);
        double want = json_number_value(json_object_get(ref, "ppl"));
        double rel = fabs(r.ppl_parent - want) / want;
        CHECK(!rc && rel <= 1e-4, "%s: perplexity %.6f, transformers %.6f (rel %.1e)", name,
              r.ppl_parent, want, rel);
        CHECK(!rc && r.tokens == json_integer_value(json_object_get(ref, "predictions")),
              "%s: %ld predictions", name, r.tokens);
        CHECK(!rc && r.kld_mean == 0 && r.kld_max == 0 && r.top1 == 1 &&
                  r.ppl_quant == r.ppl_parent,
              "%s: a model against itself: KLD %g, top-1 %g", name, r.kld_mean, r.top1);
        printf("%-12s perplexity %.6f, transformers %.6f (rel %.1e)\n", name, r.ppl_parent, want,
               rel);
    }
    free(ids);
    llm_tok_free(tok);
    llm_model_close(m);
    unlink(art);
}

int main(void)
{
    const char *src = getenv("LLM_SRCDIR") ? getenv("LLM_SRCDIR") : ".";
    char p[1024];
    snprintf(p, sizeof p, "%s/tests/quant/ppl_reference.json", src);
    json_error_t je;
    json_t *refs = json_load_file(p, 0, &je);
    if (!refs) {
        fprintf(stderr, "%s: %s\n", p, je.text);
        return 1;
    }
    snprintf(p, sizeof p, "%s/lib/data/eval.txt", src);
    char *text = NULL;
    size_t len = 0;
    if (llm_read_file(p, &text, &len, 1 << 20)) {
        fprintf(stderr, "%s\n", llm_errmsg());
        return 1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(refs, k, v) check_fixture(src, k, v, text, len);
    CHECK(json_object_size(refs) >= 5, "%zu references", json_object_size(refs));
    free(text);
    json_decref(refs);
    printf("%d checks, %d failed\n", t_checks, t_failures);
    return t_failures ? 1 : 0;
}
