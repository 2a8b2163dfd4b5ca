/* mkckpt.c - write a Hugging Face style checkpoint folder with random
 * weights for a Llama-family config.json: config.json, model.safetensors
 * (or N shards plus model.safetensors.index.json) and, on request, small
 * tokenizer files.  Used by the command-line tests and the conversion
 * benchmark, which need real HF inputs of any size.
 *
 * Design: HF names are spelled here from the description, independently
 * of the converter's own mapping, so the tests cross-check it.  Small
 * models get distinct weights per tensor (seeded by name, so a sharded and
 * a single-file checkpoint of the same seed hold the same tensors); with
 * --alias every tensor shares one buffer the size of the largest, so a
 * checkpoint of many GB is written with about one tensor of memory.
 *
 * Usage: mkckpt [--shards N] [--seed S] [--tokenizer] [--alias] CONFIG_JSON OUT_DIR
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <xxhash.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/io.h"
#include "llm/hf.h"
#include "llm/model.h"
#include "llm/safetensors.h"

struct ent {
    char name[LLM_NAME_MAX];
    int ndim;
    int64_t shape[2];
    uint64_t nbytes;
    uint8_t *data;
};

static struct ent *ents;
static size_t n_ents, cap_ents;

static void add(const char *name, int ndim, int64_t d0, int64_t d1, int dt)
{
    if (n_ents == cap_ents) {
        cap_ents = cap_ents ? cap_ents * 2 : 64;
        ents = realloc(ents, cap_ents * sizeof(*ents));
        if (!ents) exit(1);
    }
    struct ent *e = &ents[n_ents++];
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->ndim = ndim;
    e->shape[0] = d0;
    e->shape[1] = d1;
    uint64_t numel = (uint64_t)d0 * (uint64_t)(ndim == 2 ? d1 : 1);
    llm_dtype_nbytes(dt, numel, &e->nbytes);
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Approximately normal values, std 0.02, converted to dt. */
static int fill(uint8_t *dst, int dt, uint64_t numel, uint64_t seed)
{
    float chunk[4096];
    size_t esz = (size_t)llm_dtype_bits(dt) / 8;
    for (uint64_t i = 0; i < numel; i += 4096) {
        size_t m = numel - i < 4096 ? (size_t)(numel - i) : 4096;
        for (size_t j = 0; j < m; j++) {
            uint64_t r = splitmix64(&seed);
            uint32_t s = (uint32_t)(r & 0xffff) + (uint32_t)((r >> 16) & 0xffff) +
                         (uint32_t)((r >> 32) & 0xffff) + (uint32_t)(r >> 48);
            chunk[j] = ((float)s - 131070.0f) * (0.02f / 37837.23f);
        }
        int rc = llm_convert(dst + i * esz, dt, chunk, LLM_DTYPE_F32, m);
        if (rc) return rc;
    }
    return 0;
}

static int write_text(const char *path, const char *text)
{
    struct llm_out o;
    int rc = llm_out_open(&o, path);
    if (rc) return rc;
    rc = llm_out_write(&o, text, strlen(text));
    if (rc) {
        llm_out_abort(&o);
        return rc;
    }
    return llm_out_commit(&o);
}

static void usage(void)
{
    fprintf(stderr, "usage: mkckpt [--shards N] [--seed S] [--tokenizer] [--alias] CONFIG_JSON "
                    "OUT_DIR\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int shards = 1, tokenizer = 0, alias = 0;
    uint64_t seed = 0;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--shards") && i + 1 < argc)
            shards = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--tokenizer"))
            tokenizer = 1;
        else if (!strcmp(argv[i], "--alias"))
            alias = 1;
        else
            usage();
    }
    if (argc - i != 2 || shards < 1 || shards > 99) usage();

    const char *cfg_path = argv[i], *out = argv[i + 1];

    char *cfg_text;
    size_t cfg_len;
    json_error_t je;
    int rc = llm_read_file(cfg_path, &cfg_text, &cfg_len, 1 << 24);
    json_t *cfg = rc ? NULL : json_loadb(cfg_text, cfg_len, 0, &je);
    struct llm_model_desc d;
    if (!cfg || llm_hfconfig_parse(cfg, NULL, cfg_path, &d, NULL)) {
        fprintf(stderr, "mkckpt: %s\n", cfg ? llm_errmsg() : "cannot read the config");
        return 1;
    }
    json_decref(cfg);
    int dt = d.dtype;
    if (dt != LLM_DTYPE_F32 && dt != LLM_DTYPE_F16 && dt != LLM_DTYPE_BF16) dt = LLM_DTYPE_BF16;

    /* HF Llama-family names */
    int64_t H = d.hidden, I = d.intermediate, V = d.vocab_size, hd = d.head_dim;
    add("model.embed_tokens.weight", 2, V, H, dt);
    for (int l = 0; l < d.n_layers; l++) {
        char p[64], nm[LLM_NAME_MAX + 64];
#define L(suffix, nd, a, b)                                                                  \
    do {                                                                                     \
        snprintf(nm, sizeof(nm), "%s%s", p, suffix);                                         \
        add(nm, nd, a, b, dt);                                                               \
    } while (0)
        snprintf(p, sizeof(p), "model.layers.%d.", l);
        L("input_layernorm.weight", 1, H, 0);
        L("self_attn.q_proj.weight", 2, d.n_heads * hd, H);
        L("self_attn.k_proj.weight", 2, d.n_kv_heads * hd, H);
        L("self_attn.v_proj.weight", 2, d.n_kv_heads * hd, H);
        if (d.qkv_bias) {
            L("self_attn.q_proj.bias", 1, d.n_heads * hd, 0);
            L("self_attn.k_proj.bias", 1, d.n_kv_heads * hd, 0);
            L("self_attn.v_proj.bias", 1, d.n_kv_heads * hd, 0);
        }
        L("self_attn.o_proj.weight", 2, H, d.n_heads * hd);
        L("post_attention_layernorm.weight", 1, H, 0);
        L("mlp.gate_proj.weight", 2, I, H);
        L("mlp.up_proj.weight", 2, I, H);
        L("mlp.down_proj.weight", 2, H, I);
#undef L
    }
    add("model.norm.weight", 1, H, 0, dt);
    if (!d.tied_embeddings) add("lm_head.weight", 2, V, H, dt);

    uint64_t total = 0, largest = 0;
    for (size_t k = 0; k < n_ents; k++) {
        total += ents[k].nbytes;
        if (ents[k].nbytes > largest) largest = ents[k].nbytes;
    }
    uint8_t *shared = NULL;
    if (alias) {
        shared = malloc(largest);
        if (!shared || fill(shared, dt, largest / ((size_t)llm_dtype_bits(dt) / 8), seed)) {
            fprintf(stderr, "mkckpt: out of memory\n");
            return 1;
        }
    }
    struct llm_tensor *ts = calloc(n_ents, sizeof(*ts));
    for (size_t k = 0; k < n_ents; k++) {
        struct ent *e = &ents[k];
        if (alias) {
            e->data = shared;
        } else {
            e->data = malloc(e->nbytes ? e->nbytes : 1);
            uint64_t s = seed ^ XXH3_64bits(e->name, strlen(e->name));
            int ones = strstr(e->name, "norm.weight") != NULL;
            if (ones) {
                /* norms near 1 with a little noise, so a wrong norm is visible */
                float *f = malloc(e->nbytes / ((size_t)llm_dtype_bits(dt) / 8) * sizeof(float));
                size_t m = (size_t)(e->shape[0]);
                for (size_t j = 0; j < m; j++)
                    f[j] = 1.0f + (float)((splitmix64(&s) >> 40) % 1000) * 1e-4f;
                llm_convert(e->data, dt, f, LLM_DTYPE_F32, m);
                free(f);
            } else if (fill(e->data, dt, e->nbytes / ((size_t)llm_dtype_bits(dt) / 8), s)) {
                return 1;
            }
        }
        ts[k].name = e->name;
        ts[k].dtype = dt;
        ts[k].ndim = e->ndim;
        ts[k].shape[0] = e->shape[0];
        ts[k].shape[1] = e->shape[1];
        ts[k].nbytes = e->nbytes;
        ts[k].data = e->data;
    }

    if (mkdir(out, 0755) && errno != EEXIST) {
        fprintf(stderr, "mkckpt: unable to create '%s': %s\n", out, strerror(errno));
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", out);
    if ((rc = write_text(path, cfg_text))) goto fail;
    if (shards == 1) {
        snprintf(path, sizeof(path), "%s/model.safetensors", out);
        if ((rc = llm_st_write(path, ts, n_ents, "{\"format\": \"pt\"}"))) goto fail;
    } else {
        /* contiguous groups of about n/shards tensors, in order */
        json_t *wm = json_object();
        size_t k = 0;
        for (int s = 0; s < shards; s++) {
            size_t first = k;
            k = (size_t)(s + 1) * n_ents / (size_t)shards;
            char file[64];
            snprintf(file, sizeof(file), "model-%05d-of-%05d.safetensors", s + 1, shards);
            for (size_t j = first; j < k; j++) json_object_set_new(wm, ents[j].name,
                                                                   json_string(file));
            snprintf(path, sizeof(path), "%s/%s", out, file);
            if ((rc = llm_st_write(path, ts + first, k - first, "{\"format\": \"pt\"}"))) {
                json_decref(wm);
                goto fail;
            }
        }
        json_t *idx = json_pack("{s:{s:I}, s:o}", "metadata", "total_size", (json_int_t)total,
                                "weight_map", wm);
        char *text = json_dumps(idx, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(idx);
        snprintf(path, sizeof(path), "%s/model.safetensors.index.json", out);
        rc = write_text(path, text);
        free(text);
        if (rc) goto fail;
    }
    if (tokenizer) {
        /* a byte-level vocabulary of the printable ASCII characters */
        json_t *vocab = json_object();
        for (int c = 33; c < 127; c++) {
            char s[2] = {(char)c, 0};
            json_object_set_new(vocab, s, json_integer(c - 33));
        }
        json_t *tok = json_pack("{s:s, s:{s:s, s:o, s:[]}}", "version", "1.0", "model", "type",
                                "BPE", "vocab", vocab, "merges");
        char *text = json_dumps(tok, JSON_INDENT(1));
        json_decref(tok);
        snprintf(path, sizeof(path), "%s/tokenizer.json", out);
        rc = write_text(path, text);
        free(text);
        snprintf(path, sizeof(path), "%s/tokenizer_config.json", out);
        if (!rc) rc = write_text(path, "{\"bos_token\": \"!\", \"eos_token\": \"~\"}\n");
        snprintf(path, sizeof(path), "%s/special_tokens_map.json", out);
        if (!rc) rc = write_text(path, "{\"bos_token\": \"!\"}\n");
        snprintf(path, sizeof(path), "%s/generation_config.json", out);
        if (!rc) rc = write_text(path, "{\"temperature\": 0.7, \"top_p\": 0.9, \"do_sample\": true}\n");
        if (rc) goto fail;
    }
    fprintf(stderr, "mkckpt: wrote '%s': %zu tensors, %llu bytes in %d file(s)\n", out, n_ents,
            (unsigned long long)total, shards);
    if (!alias)
        for (size_t k = 0; k < n_ents; k++) free(ents[k].data);
    free(shared);
    free(ts);
    free(ents);
    free(cfg_text);
    llm_desc_free(&d);
    return 0;
fail:
    fprintf(stderr, "mkckpt: %s\n", llm_errmsg());
    return 1;
}
