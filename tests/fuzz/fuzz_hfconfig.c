/* fuzz_hfconfig.c - libFuzzer target for the HF config reader and the
 * model description's JSON form.
 *
 * The input is parsed as a Hugging Face JSON document (the tolerant reader:
 * huge integers, NaN, Infinity) and then used three ways: as config.json
 * (with its "generation_config" member, when it is an object, as
 * generation_config.json), as a description object for llm_desc_from_json,
 * and as generation defaults.  Whatever is accepted must validate, list
 * canonical tensors that all have shapes, build a model definition, and
 * survive to_json -> text -> from_json -> to_json unchanged.  Its
 * quantization_config goes through the importers' scheme mapping: a scheme
 * that maps must give a quantization section that round-trips through its
 * JSON form; one that does not must be refused in one line.  Errors must
 * carry a one-line message.  (Fuzz builds instrument the whole library, so
 * coverage sees the readers' and every architecture file's edges.)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "llm/err.h"
#include "llm/graph.h"
#include "llm/hf.h"
#include "llm/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(int rc)
{
    const char *msg = llm_errmsg();
    if (rc >= 0 || !msg[0] || strchr(msg, '\n')) abort();
}

/* An accepted description must be consistent and round-trip exactly. */
static void check_desc(const struct llm_model_desc *d)
{
    if (llm_desc_validate(d)) abort();
    json_t *j = llm_desc_to_json(d);
    if (!j) abort();
    char *text = json_dumps(j, JSON_COMPACT);
    json_error_t je;
    json_t *j2 = text ? json_loads(text, 0, &je) : NULL;
    struct llm_model_desc e;
    if (!j2 || llm_desc_from_json(&e, j2)) abort();
    json_t *j3 = llm_desc_to_json(&e);
    if (!j3 || !json_equal(j, j3)) abort();
    char(*names)[LLM_NAME_MAX];
    size_t n;
    if (llm_desc_tensor_names(&e, &names, &n)) abort();
    for (size_t i = 0; i < n; i++) {
        int nd;
        int64_t s[LLM_MAX_DIMS];
        if (llm_desc_tensor_shape(&e, names[i], &nd, s)) abort();
    }
    free(names);
    (void)llm_desc_n_params(&e);
    struct llm_graph g;
    if (llm_graph_build(&g, &e, NULL)) abort();
    llm_desc_free(&e);
    json_decref(j3);
    json_decref(j2);
    free(text);
    json_decref(j);
}

/* A quantization_config: importable or refused in one line; the section a
 * mapped scheme gives must survive to_json -> from_json -> to_json. */
static void check_quant(const struct llm_hf_quant *hq)
{
    llm_err_clear();
    int rc = llm_hf_quant_importable(hq, "fuzz/config.json");
    if (rc) {
        check_error(rc);
        return;
    }
    struct llm_hfq s;
    rc = llm_hfq_scheme(hq, "fuzz/config.json", &s);
    if (rc) {
        check_error(rc);
        return;
    }
    json_t *a = llm_quant_to_json(&s.quant);
    struct llm_quant q2;
    if (!a || llm_quant_from_json(&q2, a, "fuzz")) abort();
    json_t *b = llm_quant_to_json(&q2);
    if (!b || !json_equal(a, b)) abort();
    json_decref(a);
    json_decref(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j = NULL;
    llm_err_clear();
    int prc = llm_hf_json_parse((const char *)data, size, "fuzz/config.json", &j);
    if (prc) {
        check_error(prc);
        return 0;
    }
    struct llm_model_desc d;
    struct llm_gen_defaults g;

    const json_t *gen = json_object_get(j, "generation_config");
    struct llm_hf_quant hq;
    memset(&hq, 0, sizeof hq);
    llm_err_clear();
    int rc = llm_hfconfig_parse_ex(j, json_is_object(gen) ? gen : NULL, "fuzz/config.json", &d, &g,
                                   &hq);
    if (rc) {
        check_error(rc);
    } else {
        check_desc(&d);
        llm_desc_free(&d);
        check_quant(&hq);
    }
    llm_hf_quant_free(&hq);

    llm_err_clear();
    rc = llm_desc_from_json(&d, j);
    if (rc) {
        check_error(rc);
    } else {
        check_desc(&d);
        llm_desc_free(&d);
    }

    llm_gen_defaults_init(&g);
    rc = llm_gen_defaults_from_json(&g, j);
    if (rc) {
        check_error(rc);
    } else {
        json_t *gj = llm_gen_defaults_to_json(&g);
        struct llm_gen_defaults h;
        llm_gen_defaults_init(&h);
        if (!gj || llm_gen_defaults_from_json(&h, gj) || memcmp(&g, &h, sizeof(g))) abort();
        json_decref(gj);
    }
    json_decref(j);
    return 0;
}
