/* check_convert.c - is an artifact an exact conversion of its HF checkpoint?
 *
 * Usage: check-convert HF_DIR ARTIFACT|-
 *
 * Checks, printing what it compared and stopping at nothing (every
 * mismatch is listed): the model description equals the one read from
 * config.json; the tensor set is exactly the canonical set the description
 * implies; each canonical tensor is bit for bit its HF source, or the row
 * concatenation q;k;v of its sources, with the HF dtype kept; every
 * checksum verifies; the embedded tokenizer files are the JSON of the
 * files; the provenance lists every shard with its size and XXH3.
 *
 * Design: the HF names are spelled here from the canonical names by a
 * table of its own (Llama-family names: llama, mistral, qwen2; under
 * language_model. in a multimodal checkpoint), not taken from the
 * converter's plan, so a wrong mapping in the converter cannot also hide
 * in the check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <xxhash.h>

#include "llm/artifact.h"
#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/hf.h"
#include "llm/model.h"
#include "llm/safetensors.h"

static int fails;

#define FAIL(...)                                                                            \
    do {                                                                                     \
        fails++;                                                                             \
        fprintf(stderr, "FAIL: ");                                                           \
        fprintf(stderr, __VA_ARGS__);                                                        \
        fprintf(stderr, "\n");                                                               \
    } while (0)

/* HF source names of a canonical tensor; returns their number (0 = unknown). */
static int hf_sources(const char *name, char src[3][LLM_NAME_MAX + 64])
{
    static const struct {
        const char *canon, *hf;
    } layer_map[] = {
        {"input_layernorm", "input_layernorm"},
        {"attention.dense", "self_attn.o_proj"},
        {"post_layernorm", "post_attention_layernorm"},
        {"mlp.fc", "mlp.gate_proj"},
        {"mlp.gate", "mlp.up_proj"},
        {"mlp.proj", "mlp.down_proj"},
    };
    int layer, n = 0;
    char rest[LLM_NAME_MAX];
    if (!strcmp(name, "transformer.vocab_embedding.weight")) {
        strcpy(src[0], "model.embed_tokens.weight");
        return 1;
    }
    if (!strcmp(name, "transformer.ln_f.weight")) {
        strcpy(src[0], "model.norm.weight");
        return 1;
    }
    if (!strcmp(name, "lm_head.weight")) {
        strcpy(src[0], "lm_head.weight");
        return 1;
    }
    if (sscanf(name, "transformer.layers.%d.%127s%n", &layer, rest, &n) != 2) return 0;
    const char *kind = strrchr(rest, '.'); /* ".weight" or ".bias" */
    if (!kind) return 0;
    size_t stem = (size_t)(kind - rest);
    if (stem == strlen("attention.qkv") && !strncmp(rest, "attention.qkv", stem)) {
        const char *p[3] = {"q_proj", "k_proj", "v_proj"};
        for (int i = 0; i < 3; i++)
            snprintf(src[i], sizeof(src[i]), "model.layers.%d.self_attn.%s%s", layer, p[i], kind);
        return 3;
    }
    for (size_t i = 0; i < sizeof(layer_map) / sizeof(layer_map[0]); i++)
        if (strlen(layer_map[i].canon) == stem && !strncmp(rest, layer_map[i].canon, stem)) {
            snprintf(src[0], sizeof(src[0]), "model.layers.%d.%s%s", layer, layer_map[i].hf, kind);
            return 1;
        }
    return 0;
}

static void check_tensor(struct llm_artifact *a, const struct llm_st *st, const char *name,
                         size_t *checked)
{
    struct llm_tensor t;
    if (llm_ar_find(a, name, &t)) {
        FAIL("%s", llm_errmsg());
        return;
    }
    char src[3][LLM_NAME_MAX + 64];
    int ns = hf_sources(name, src);
    if (!ns) {
        FAIL("no HF name known for canonical tensor '%s'", name);
        return;
    }
    uint64_t off = 0;
    for (int i = 0; i < ns; i++) {
        const struct llm_tensor *s = llm_st_find(st, src[i]);
        if (!s) { /* a multimodal checkpoint keeps its language model under language_model. */
            char mm[sizeof src[i] + 16];
            int k = snprintf(mm, sizeof mm, "language_model.%s", src[i]);
            if (k > 0 && (size_t)k < sizeof src[i] && (s = llm_st_find(st, mm)))
                memcpy(src[i], mm, (size_t)k + 1);
        }
        if (!s) {
            FAIL("'%s': HF source '%s' not in the checkpoint", name, src[i]);
            return;
        }
        if (s->dtype != t.dtype) {
            FAIL("'%s': dtype %s, HF '%s' is %s", name, llm_dtype_name(t.dtype), src[i],
                 llm_dtype_name(s->dtype));
            return;
        }
        if (off + s->nbytes > t.nbytes) {
            FAIL("'%s': %llu bytes, its HF sources hold more", name,
                 (unsigned long long)t.nbytes);
            return;
        }
        if (memcmp((const uint8_t *)t.data + off, s->data, (size_t)s->nbytes)) {
            const uint8_t *x = (const uint8_t *)t.data + off, *y = s->data;
            uint64_t k = 0;
            while (x[k] == y[k]) k++;
            FAIL("'%s': byte %llu (of HF '%s' at %llu) is %02x, HF has %02x", name,
                 (unsigned long long)(off + k), src[i], (unsigned long long)k, x[k], y[k]);
            return;
        }
        off += s->nbytes;
    }
    if (off != t.nbytes) {
        FAIL("'%s': %llu bytes, its HF sources hold %llu", name, (unsigned long long)t.nbytes,
             (unsigned long long)off);
        return;
    }
    if (llm_ar_verify_tensor(a, &t)) {
        FAIL("%s", llm_errmsg());
        return;
    }
    (*checked)++;
}

static void check_meta(const char *dir, const json_t *meta, const struct llm_model_desc *d,
                       const struct llm_st *st)
{
    json_t *want = llm_desc_to_json(d);
    if (!json_equal(want, json_object_get(meta, "model"))) {
        char *a = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
        char *b = json_dumps(json_object_get(meta, "model"), JSON_COMPACT | JSON_SORT_KEYS);
        FAIL("model description differs:\n  config.json: %s\n  artifact:    %s", a, b);
        free(a);
        free(b);
    } else {
        printf("ok: model description equals config.json's\n");
    }
    json_decref(want);

    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json",
                                        "special_tokens_map.json", "generation_config.json"};
    const json_t *emb = json_object_get(json_object_get(meta, "tokenizer"), "files");
    int n = 0;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        FILE *fp = fopen(path, "rb");
        if (!fp) {
            if (json_object_get(emb, files[i])) FAIL("'%s' embedded but not in %s", files[i], dir);
            continue;
        }
        fclose(fp);
        json_error_t e;
        json_t *j = json_load_file(path, 0, &e);
        if (!json_equal(j, json_object_get(emb, files[i])))
            FAIL("embedded '%s' differs from the file", files[i]);
        else
            n++;
        json_decref(j);
    }
    printf("ok: %d tokenizer/generation files embedded as they are\n", n);

    /* the last provenance entry lists each shard with its size and hash */
    const json_t *chain = json_object_get(meta, "provenance");
    const json_t *inputs = json_object_get(json_array_get(chain, json_array_size(chain) - 1),
                                           "inputs");
    for (size_t f = 0; f < llm_st_nfiles(st); f++) {
        const char *path = llm_st_file_path(st, f);
        char h[17];
        snprintf(h, sizeof(h), "%016llx",
                 (unsigned long long)XXH3_64bits(llm_st_file_data(st, f),
                                                 (size_t)llm_st_file_size(st, f)));
        size_t i;
        const json_t *in;
        int found = 0;
        json_array_foreach(inputs, i, in)
        {
            const char *p = json_string_value(json_object_get(in, "path"));
            if (!p || strcmp(p, path)) continue;
            found = 1;
            const char *x = json_string_value(json_object_get(in, "xxh3"));
            if (!x || strcmp(x, h) ||
                json_integer_value(json_object_get(in, "size")) !=
                    (json_int_t)llm_st_file_size(st, f))
                FAIL("provenance of '%s': xxh3 %s size %lld, file has %s %llu", path,
                     x ? x : "?", (long long)json_integer_value(json_object_get(in, "size")), h,
                     (unsigned long long)llm_st_file_size(st, f));
        }
        if (!found) FAIL("provenance does not list input '%s'", path);
    }
    printf("ok: provenance lists the %zu checkpoint file(s) with size and xxh3\n",
           llm_st_nfiles(st));
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: check-convert HF_DIR ARTIFACT|-\n");
        return 2;
    }
    const char *dir = argv[1], *art = argv[2];
    struct llm_model_desc d;
    struct llm_gen_defaults g;
    struct llm_st *st = NULL;
    struct llm_artifact *a = NULL;
    if (llm_hfconfig_load(dir, &d, &g) || llm_st_open(&st, dir) ||
        llm_ar_open(&a, art, LLM_AR_LOAD_ALL)) {
        fprintf(stderr, "FAIL: %s\n", llm_errmsg());
        return 1;
    }
    check_meta(dir, llm_ar_meta(a), &d, st);

    char(*names)[LLM_NAME_MAX] = NULL;
    size_t n = 0, checked = 0;
    if (llm_desc_tensor_names(&d, &names, &n)) {
        FAIL("%s", llm_errmsg());
    } else {
        for (size_t i = 0; i < n; i++) check_tensor(a, st, names[i], &checked);
        if (llm_ar_count(a) != n)
            FAIL("artifact holds %zu tensors, the description implies %zu", llm_ar_count(a), n);
    }
    printf("ok: %zu of %zu canonical tensors bit-identical to their HF sources\n", checked, n);
    free(names);
    llm_ar_close(a);
    llm_st_close(st);
    llm_desc_free(&d);
    if (fails) printf("%d mismatches\n", fails);
    return fails ? 1 : 0;
}
