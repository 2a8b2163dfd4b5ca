/* llm-convert - turn a Hugging Face checkpoint folder into an llm artifact.
 *
 * Design: conversion streams one canonical tensor at a time in the order of
 * the conversion plan (which follows the checkpoint's file order), so the
 * source is read sequentially and its pages are dropped from the resident
 * set as soon as each tensor is written: peak memory is about one tensor,
 * whatever the model size.  Single-source tensors in the kept dtype are
 * written straight from the mapping; only fused (q;k;v) or converted
 * tensors go through a buffer.  Input files are hashed as the conversion
 * passes over them (a frontier per shard), and the hashes go into the
 * artifact's trailer, since they are known only at the end.  Nothing
 * depends on time or place: the same inputs and options give the same
 * bytes, to a file or a pipe.
 *
 * --random writes random weights in the exact shapes a config.json gives,
 * without any checkpoint: a cheap counter-based generator seeded per tensor
 * name, so each tensor is independent of the others and of the order.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <xxhash.h>

#include "llm/artifact.h"
#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/io.h"
#include "llm/log.h"
#include "llm/model.h"
#include "llm/safetensors.h"
#include "llm_build_config.h"
#include "tool.h"

static const char usage_text[] =
    "Usage: llm-convert [OPTIONS] HF_DIR [-o OUT]\n"
    "       llm-convert [OPTIONS] --random CONFIG_JSON [--seed N] [-o OUT]\n"
    "Convert a Hugging Face checkpoint folder (config.json, *.safetensors, tokenizer\n"
    "files) into one llm artifact.  Without -o the artifact goes to standard output,\n"
    "which must not be a terminal.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE       write FILE (written under a temporary name, renamed\n"
    "                          when complete); '-' is standard output\n"
    "      --dtype TYPE        keep|f32|f16|bf16: element type of float tensors\n"
    "                          (default keep)\n"
    "      --compress[=LEVEL]  zstd-compress each tensor that shrinks, LEVEL 1..22\n"
    "                          (default 3)\n"
    "      --random CONFIG     random weights in the shapes CONFIG (a config.json)\n"
    "                          gives; no checkpoint, no tokenizer\n"
    "      --seed N            seed for --random (default 0)\n"
    "  -q, --quiet             print only errors\n"
    "  -v, --verbose           print each tensor as it is written\n"
    "  -h, --help              print this help and exit\n"
    "      --version           print the version and exit\n";

enum { OPT_DTYPE = 256, OPT_COMPRESS, OPT_RANDOM, OPT_SEED, OPT_VERSION };

struct opts {
    const char *in;      /* HF_DIR */
    const char *out;     /* NULL or "-" = stdout */
    const char *random;  /* CONFIG_JSON */
    unsigned long long seed;
    int have_seed;
    int dtype;           /* -1 keep */
    int level;           /* 0 = no compression */
    int verbose;         /* -1 quiet, 0, 1 */
};

/* ---- helpers ------------------------------------------------------------- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t len = n + 1 + strlen(name) + 1;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%.*s/%s", (int)n, dir, name);
    return p;
}

static void hex64(char out[17], uint64_t v)
{
    snprintf(out, 17, "%016llx", (unsigned long long)v);
}

/* Drop the whole pages inside [p, p+len) of a read-only file mapping from
 * the resident set (the data stays readable: it comes back from the page
 * cache).  Used on the checkpoint's mappings as conversion passes them. */
static void drop_pages(const void *p, uint64_t len)
{
    static uintptr_t page;
    if (!page) page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + page - 1) & ~(page - 1);
    uintptr_t e = ((uintptr_t)p + len) & ~(page - 1);
    if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
}

/* The writer's release callback: only data read straight from a mapping
 * may be dropped (never a buffer of ours). */
struct release_ctx {
    int mapped;
};

static void release_written(void *ctx, const void *data, uint64_t len)
{
    if (((struct release_ctx *)ctx)->mapped) drop_pages(data, len);
}

#define CHUNK ((uint64_t)32 << 20)

/* {"path", "size", "xxh3"} */
static json_t *input_entry(const char *path, uint64_t size, uint64_t hash)
{
    char h[17];
    hex64(h, hash);
    return json_pack("{s:s, s:I, s:s}", "path", path, "size", (json_int_t)size, "xxh3", h);
}

/* The provenance entry; argv in canonical form (options that change the
 * contents, then the input), so that -o, -q, -v and option spelling do not
 * change the output. */
static json_t *provenance_entry(const struct opts *o)
{
    json_t *argv = json_array();
    json_array_append_new(argv, json_string("llm-convert"));
    if (o->dtype >= 0) {
        json_array_append_new(argv, json_string("--dtype"));
        json_array_append_new(argv, json_string(llm_dtype_name(o->dtype)));
    }
    if (o->level) {
        char b[32];
        snprintf(b, sizeof(b), "--compress=%d", o->level);
        json_array_append_new(argv, json_string(b));
    }
    if (o->random) {
        char b[32];
        snprintf(b, sizeof(b), "%llu", o->seed);
        json_array_append_new(argv, json_string("--random"));
        json_array_append_new(argv, json_string(o->random));
        json_array_append_new(argv, json_string("--seed"));
        json_array_append_new(argv, json_string(b));
    } else {
        json_array_append_new(argv, json_string(o->in));
    }
    return json_pack("{s:s, s:s, s:s, s:o}", "tool", "llm-convert", "version", LLM_VERSION,
                     "commit", LLM_GIT_COMMIT, "argv", argv);
}

static json_t *base_meta(const struct llm_model_desc *d, const struct llm_gen_defaults *g,
                         json_t *tokenizer, json_t *prov)
{
    json_t *model = llm_desc_to_json(d);
    json_t *gen = llm_gen_defaults_to_json(g);
    if (!model || !gen) {
        json_decref(model);
        json_decref(gen);
        json_decref(tokenizer);
        json_decref(prov);
        return NULL;
    }
    return json_pack("{s:o, s:o, s:o, s:{s:n, s:n}, s:{s:i, s:i, s:i, s:i, s:i}, s:[o]}",
                     "model", model, "generation", gen, "tokenizer",
                     tokenizer ? tokenizer : json_null(), "quantization", "quant_algo",
                     "kv_cache_quant_algo", "mapping", "world_size", 1, "tp_size", 1, "pp_size",
                     1, "tp_rank", 0, "pp_rank", 0, "provenance", prov);
}

/* Output dtype of a tensor stored as src_dt. */
static int out_dtype(const struct opts *o, int src_dt)
{
    if (o->dtype < 0 || !llm_dtype_is_float(src_dt)) return src_dt;
    return o->dtype;
}

/* Create the writer; with no -o, standard output must not be a terminal. */
static int open_writer(const struct opts *o, json_t *meta, struct llm_aw **w,
                       struct release_ctx *rel)
{
    struct llm_aw_opts ao = {.compress_level = o->level,
                             .compress_min = 0,
                             .release = rel ? release_written : NULL,
                             .release_ctx = rel};
    return llm_aw_create(w, o->out ? o->out : "-", meta, &ao);
}

struct stats {
    uint64_t tensors, bytes, t0_bytes;
    double t0;
};

static void progress(const struct opts *o, struct stats *s, size_t i, size_t n, const char *name,
                     int dt, int ndim, const int64_t *shape, uint64_t nbytes)
{
    s->tensors++;
    s->bytes += nbytes;
    if (o->verbose > 0) {
        char sh[256];
        llm_info("[%zu/%zu] %s %s %s", i + 1, n, name, llm_dtype_name(dt),
                 tool_shape_str(sh, sizeof(sh), ndim, shape));
    }
}

static void summary(const struct opts *o, const struct stats *s)
{
    if (o->verbose < 0) return;
    double dt = now() - s->t0;
    int file = o->out && strcmp(o->out, "-");
    double mb = s->bytes / 1e6;
    llm_info("wrote %s%s%s: %llu tensors, %.*f MB in %.2f s (%.0f MB/s)", file ? "'" : "",
             file ? o->out : "standard output", file ? "'" : "", (unsigned long long)s->tensors,
             mb < 10 ? 3 : 0, mb, dt, dt > 0 ? mb / dt : 0.0);
}

/* Store the provenance (with its list of inputs) as the trailer, finish the
 * artifact and report it.  Once llm_aw_finish has run, *w is NULL (finished or
 * failed, the writer is gone); before that it is left to the caller's
 * llm_aw_abort. */
static int finish_writer(const struct opts *o, struct llm_aw **w, json_t *prov, json_t *inputs,
                         const struct stats *s)
{
    json_object_set(prov, "inputs", inputs);
    json_t *trailer = json_pack("{s:[O]}", "provenance", prov);
    int rc = trailer ? llm_aw_set_trailer(*w, trailer) : LLM_ENOMEM;
    json_decref(trailer);
    if (!rc) {
        rc = llm_aw_finish(*w);
        *w = NULL;
    }
    if (!rc) summary(o, s);
    return rc;
}

/* ---- hashing the inputs -------------------------------------------------- */

/* A whole small file: hashed as it is read. */
static int hash_small_file(const char *path, json_t *inputs, json_t **parsed)
{
    char *buf;
    size_t len;
    int rc = llm_read_file(path, &buf, &len, (size_t)1 << 30);
    if (rc) return rc;
    json_array_append_new(inputs, input_entry(path, len, XXH3_64bits(buf, len)));
    if (parsed) {
        json_error_t e;
        *parsed = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &e);
        if (!*parsed || !json_is_object(*parsed)) {
            json_decref(*parsed);
            *parsed = NULL;
            rc = llm_err_set(LLM_EFORMAT, "'%s': not a JSON object: %s (line %d)", path,
                             *e.text ? e.text : "top level is not an object", e.line);
        }
    }
    free(buf);
    return rc;
}

/* Shards are hashed behind a frontier: per file, everything before the
 * first tensor not yet converted.  Pages hashed are dropped again. */
struct shard_hash {
    XXH3_state_t *st;
    uint64_t upto;  /* bytes hashed */
    size_t next;    /* next tensor (llm_st index) in this file not yet passed */
    size_t end;     /* one past the file's last tensor */
};

/* Hash a shard up to byte e, a chunk at a time, dropping each chunk. */
static void hash_upto(struct shard_hash *s, const uint8_t *base, uint64_t e)
{
    while (s->upto < e) {
        uint64_t step = e - s->upto < CHUNK ? e - s->upto : CHUNK;
        XXH3_64bits_update(s->st, base + s->upto, (size_t)step);
        drop_pages(base + s->upto, step);
        s->upto += step;
    }
}

static void shard_advance(const struct llm_st *st, struct shard_hash *h, size_t f,
                          const unsigned char *done, int final)
{
    const uint8_t *base = llm_st_file_data(st, f);
    uint64_t size = llm_st_file_size(st, f);
    struct shard_hash *s = &h[f];
    while (s->next < s->end && done[s->next]) {
        const struct llm_tensor *t = llm_st_get(st, s->next);
        uint64_t e = (uint64_t)((const uint8_t *)t->data - base) + t->nbytes;
        hash_upto(s, base, e);
        llm_st_release(st, s->next);
        s->next++;
    }
    if (final) {
        hash_upto(s, base, size);
        llm_st_release_file(st, f);
    }
}

/* Copy (or convert to dt) one source tensor of n elements into dst, a
 * chunk at a time, dropping the source's pages as they are read. */
static int copy_source(uint8_t *dst, int dt, const struct llm_tensor *t, uint64_t n,
                       uint64_t dst_bytes)
{
    const uint8_t *src = t->data;
    if (t->dtype == dt) {
        for (uint64_t off = 0; off < dst_bytes; off += CHUNK) {
            uint64_t m = dst_bytes - off < CHUNK ? dst_bytes - off : CHUNK;
            memcpy(dst + off, src + off, (size_t)m);
            drop_pages(src + off, m);
        }
        return 0;
    }
    uint64_t ssz = (uint64_t)llm_dtype_bits(t->dtype) / 8, dsz = (uint64_t)llm_dtype_bits(dt) / 8;
    const uint64_t per = CHUNK / 8; /* elements per chunk */
    for (uint64_t e = 0; e < n; e += per) {
        uint64_t m = n - e < per ? n - e : per;
        int rc = llm_convert(dst + e * dsz, dt, src + e * ssz, t->dtype, (size_t)m);
        if (rc) return llm_err_wrap(rc, "tensor '%s'", t->name);
        drop_pages(src + e * ssz, m * ssz);
    }
    return 0;
}

/* ---- HF checkpoint ------------------------------------------------------- */

static const char *const tokenizer_files[] = {"tokenizer.json", "tokenizer_config.json",
                                              "special_tokens_map.json",
                                              "generation_config.json"};

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int convert_hf(const struct opts *o)
{
    struct stats stats = {.t0 = now()};
    struct llm_model_desc d;
    struct llm_gen_defaults g;
    struct llm_st *st = NULL;
    struct llm_plan_item *items = NULL;
    size_t n_items = 0;
    struct llm_aw *w = NULL;
    json_t *inputs = json_array(), *tokfiles = json_object(), *meta = NULL, *prov = NULL;
    struct shard_hash *sh = NULL;
    unsigned char *done = NULL;
    uint8_t *buf = NULL;
    size_t nfiles = 0;
    struct release_ctx rel = {0};
    int rc;

    llm_desc_init(&d);
    llm_gen_defaults_init(&g);
    struct stat sb;
    if (stat(o->in, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        rc = llm_err_set(LLM_ENOTFOUND, "'%s': not a folder (expected a Hugging Face "
                         "checkpoint folder)", o->in);
        goto out;
    }
    if ((rc = llm_hfconfig_load(o->in, &d, &g))) goto out;
    char *p = join(o->in, "config.json");
    rc = p ? hash_small_file(p, inputs, NULL) : LLM_ENOMEM;
    free(p);
    if (rc) goto out;
    for (size_t i = 0; i < sizeof(tokenizer_files) / sizeof(tokenizer_files[0]); i++) {
        p = join(o->in, tokenizer_files[i]);
        if (!p) {
            rc = llm_err_set(LLM_ENOMEM, "out of memory");
            goto out;
        }
        if (file_exists(p)) {
            json_t *j = NULL;
            rc = hash_small_file(p, inputs, &j);
            if (!rc) json_object_set_new(tokfiles, tokenizer_files[i], j);
        }
        free(p);
        if (rc) goto out;
    }
    p = join(o->in, "model.safetensors.index.json");
    if (p && file_exists(p)) rc = hash_small_file(p, inputs, NULL);
    free(p);
    if (rc) goto out;

    if ((rc = llm_st_open(&st, o->in))) goto out;
    if ((rc = llm_hfmap_plan(&d, st, &items, &n_items))) goto out;

    /* the artifact's description says what its tensors are */
    if (o->dtype >= 0 && llm_dtype_is_float(d.dtype)) d.dtype = o->dtype;

    nfiles = llm_st_nfiles(st);
    size_t nst = llm_st_count(st);
    sh = calloc(nfiles ? nfiles : 1, sizeof(*sh));
    done = calloc(nst ? nst : 1, 1);
    if (!sh || !done) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t f = 0; f < nfiles; f++) {
        sh[f].st = XXH3_createState();
        if (!sh[f].st) {
            rc = llm_err_set(LLM_ENOMEM, "out of memory");
            goto out;
        }
        XXH3_64bits_reset(sh[f].st);
        sh[f].next = sh[f].end = nst;
    }
    /* tensors come shard by shard, by offset: find each shard's range; tensors the
     * plan does not use count as done, so that the frontier passes them */
    for (size_t i = nst; i-- > 0;) {
        size_t f = (size_t)llm_st_shard_of(st, i);
        if (f >= nfiles) continue;
        sh[f].next = i;
        if (sh[f].end == nst) sh[f].end = i + 1;
        done[i] = 1;
    }
    for (size_t k = 0; k < n_items; k++)
        for (int s = 0; s < items[k].n_src; s++) done[items[k].src[s]] = 0;

    prov = provenance_entry(o);
    meta = base_meta(&d, &g, json_object_size(tokfiles) ? json_pack("{s:O}", "files", tokfiles)
                                                          : NULL,
                     json_deep_copy(prov));
    if (!meta || !prov) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory building the metadata");
        goto out;
    }
    if ((rc = open_writer(o, meta, &w, &rel))) goto out;

    for (size_t k = 0; k < n_items; k++) {
        const struct llm_plan_item *it = &items[k];
        const struct llm_tensor *s0 = llm_st_get(st, it->src[0]);
        int dt = out_dtype(o, s0->dtype);
        uint64_t numel, nbytes;
        if (llm_shape_numel(it->ndim, it->shape, &numel) ||
            llm_dtype_nbytes(dt, numel, &nbytes)) {
            rc = llm_err_set(LLM_ERANGE, "tensor '%s': shape overflows", it->name);
            goto out;
        }
        const void *data;
        uint64_t src_numel = 0;
        for (int s = 0; s < it->n_src; s++) {
            const struct llm_tensor *t = llm_st_get(st, it->src[s]);
            uint64_t n;
            if (t->dtype != s0->dtype && o->dtype < 0) {
                rc = llm_err_set(LLM_EUNSUPPORTED, "'%s': tensors '%s' (%s) and '%s' (%s) "
                                 "form '%s' but differ in dtype; use --dtype",
                                 llm_st_file_path(st, (size_t)llm_st_shard_of(st, it->src[s])),
                                 s0->name, llm_dtype_name(s0->dtype), t->name,
                                 llm_dtype_name(t->dtype), it->name);
                goto out;
            }
            if (llm_shape_numel(t->ndim, t->shape, &n) || n > UINT64_MAX - src_numel) {
                rc = llm_err_set(LLM_ERANGE, "tensor '%s': shape overflows", t->name);
                goto out;
            }
            src_numel += n;
        }
        if (src_numel != numel) {
            rc = llm_err_set(LLM_ESHAPE, "tensor '%s': sources hold %llu elements, shape needs "
                             "%llu", it->name, (unsigned long long)src_numel,
                             (unsigned long long)numel);
            goto out;
        }
        if (it->n_src == 1 && dt == s0->dtype) {
            data = s0->data; /* straight from the mapping */
        } else {
            buf = malloc(nbytes ? nbytes : 1);
            if (!buf) {
                rc = llm_err_set(LLM_ENOMEM, "tensor '%s': out of memory (%llu bytes)", it->name,
                                 (unsigned long long)nbytes);
                goto out;
            }
            uint64_t off = 0;
            for (int s = 0; s < it->n_src; s++) {
                const struct llm_tensor *t = llm_st_get(st, it->src[s]);
                uint64_t n, nb;
                llm_shape_numel(t->ndim, t->shape, &n);
                llm_dtype_nbytes(dt, n, &nb);
                if ((rc = copy_source(buf + off, dt, t, n, nb))) goto out;
                off += nb;
                llm_st_release(st, it->src[s]);
            }
            data = buf;
        }
        rel.mapped = data != buf;
        if ((rc = llm_aw_add(w, it->name, dt, it->ndim, it->shape, data, nbytes))) goto out;
        free(buf);
        buf = NULL;
        for (int s = 0; s < it->n_src; s++) {
            llm_st_release(st, it->src[s]);
            done[it->src[s]] = 1;
        }
        for (int s = 0; s < it->n_src; s++)
            shard_advance(st, sh, (size_t)llm_st_shard_of(st, it->src[s]), done, 0);
        progress(o, &stats, k, n_items, it->name, dt, it->ndim, it->shape, nbytes);
    }
    for (size_t f = 0; f < nfiles; f++) {
        shard_advance(st, sh, f, done, 1);
        json_array_append_new(inputs, input_entry(llm_st_file_path(st, f),
                                                  llm_st_file_size(st, f),
                                                  XXH3_64bits_digest(sh[f].st)));
    }
    rc = finish_writer(o, &w, prov, inputs, &stats);

out:
    llm_aw_abort(w);
    free(buf);
    if (sh)
        for (size_t f = 0; f < nfiles; f++) XXH3_freeState(sh[f].st);
    free(sh);
    free(done);
    free(items);
    llm_st_close(st);
    llm_desc_free(&d);
    json_decref(inputs);
    json_decref(tokfiles);
    json_decref(meta);
    json_decref(prov);
    return rc;
}

/* ---- random weights ------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* What a tensor is filled with: 1 (norm weights), 0 (norm biases), or
 * approximately normal values with std 0.02. */
enum fill { FILL_ONE, FILL_ZERO, FILL_NORMAL };

static enum fill fill_of(const char *name)
{
    int norm = strstr(name, "layernorm.") || strstr(name, "ln_f.") || strstr(name, "norm.");
    if (norm && ends_with(name, ".weight")) return FILL_ONE;
    if (norm && ends_with(name, ".bias")) return FILL_ZERO;
    return FILL_NORMAL;
}

/* Fill n f32 values: the sum of four 16-bit uniforms of one 64-bit draw is
 * close to normal (Irwin-Hall); scaled to mean 0, std 0.02. */
static void fill_normal(float *dst, size_t n, uint64_t *state)
{
    const float scale = 0.02f / 37837.23f; /* std of the sum: 65536 * sqrt(4 / 12) */
    for (size_t i = 0; i < n; i++) {
        uint64_t r = splitmix64(state);
        uint32_t sum = (uint32_t)(r & 0xffff) + (uint32_t)((r >> 16) & 0xffff) +
                       (uint32_t)((r >> 32) & 0xffff) + (uint32_t)(r >> 48);
        dst[i] = ((float)sum - 131070.0f) * scale;
    }
}

static int convert_random(const struct opts *o)
{
    struct stats stats = {.t0 = now()};
    struct llm_model_desc d;
    struct llm_gen_defaults g;
    json_t *inputs = json_array(), *config = NULL, *meta = NULL, *prov = NULL;
    char (*names)[LLM_NAME_MAX] = NULL;
    size_t n = 0;
    struct llm_aw *w = NULL;
    uint8_t *buf = NULL;
    float *chunk = NULL;
    const size_t CH = 1 << 16;
    int rc;

    llm_desc_init(&d);
    llm_gen_defaults_init(&g);
    if ((rc = hash_small_file(o->random, inputs, &config))) goto out;
    if ((rc = llm_hfconfig_parse(config, NULL, o->random, &d, &g))) goto out;
    int dt = o->dtype >= 0 ? o->dtype : d.dtype;
    if (!llm_dtype_is_float(dt) || dt == LLM_DTYPE_F8E4M3 || dt == LLM_DTYPE_F8E5M2 ||
        dt == LLM_DTYPE_F64)
        dt = LLM_DTYPE_BF16;
    d.dtype = dt;
    if ((rc = llm_desc_tensor_names(&d, &names, &n))) goto out;
    prov = provenance_entry(o);
    meta = base_meta(&d, &g, NULL, json_deep_copy(prov));
    chunk = malloc(CH * sizeof(float));
    if (!meta || !prov || !chunk) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = open_writer(o, meta, &w, NULL))) goto out;
    size_t esz = (size_t)llm_dtype_bits(dt) / 8;
    for (size_t k = 0; k < n; k++) {
        int ndim;
        int64_t shape[LLM_MAX_DIMS];
        uint64_t numel, nbytes;
        if ((rc = llm_desc_tensor_shape(&d, names[k], &ndim, shape))) goto out;
        if (llm_shape_numel(ndim, shape, &numel) || llm_dtype_nbytes(dt, numel, &nbytes)) {
            rc = llm_err_set(LLM_ERANGE, "'%s': tensor '%s' is too large", o->random, names[k]);
            goto out;
        }
        buf = malloc(nbytes ? nbytes : 1);
        if (!buf) {
            rc = llm_err_set(LLM_ENOMEM, "tensor '%s': out of memory (%llu bytes)", names[k],
                             (unsigned long long)nbytes);
            goto out;
        }
        uint64_t state = o->seed ^ XXH3_64bits(names[k], strlen(names[k]));
        enum fill fl = fill_of(names[k]);
        for (uint64_t i = 0; i < numel; i += CH) {
            size_t m = numel - i < CH ? (size_t)(numel - i) : CH;
            if (fl == FILL_NORMAL)
                fill_normal(chunk, m, &state);
            else
                for (size_t j = 0; j < m; j++) chunk[j] = fl == FILL_ONE ? 1.0f : 0.0f;
            if ((rc = llm_convert(buf + i * esz, dt, chunk, LLM_DTYPE_F32, m))) goto out;
        }
        rc = llm_aw_add(w, names[k], dt, ndim, shape, buf, nbytes);
        free(buf);
        buf = NULL;
        if (rc) goto out;
        progress(o, &stats, k, n, names[k], dt, ndim, shape, nbytes);
    }
    rc = finish_writer(o, &w, prov, inputs, &stats);
out:
    llm_aw_abort(w);
    free(buf);
    free(chunk);
    free(names);
    llm_desc_free(&d);
    json_decref(inputs);
    json_decref(config);
    json_decref(meta);
    json_decref(prov);
    return rc;
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
    tool_init("llm-convert");
    struct opts o = {.dtype = -1};
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"dtype", required_argument, NULL, OPT_DTYPE},
        {"compress", optional_argument, NULL, OPT_COMPRESS},
        {"random", required_argument, NULL, OPT_RANDOM},
        {"seed", required_argument, NULL, OPT_SEED},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:qvh", longopts, NULL)) != -1) {
        long v;
        switch (c) {
        case 'o': o.out = optarg; break;
        case 'q': o.verbose = -1; break;
        case 'v': o.verbose = 1; break;
        case 'h': fputs(usage_text, stdout); return TOOL_EXIT_OK;
        case OPT_VERSION:
            return tool_version();
        case OPT_DTYPE:
            if (!strcmp(optarg, "keep")) {
                o.dtype = -1;
            } else {
                o.dtype = llm_dtype_from_name(optarg);
                if (o.dtype != LLM_DTYPE_F32 && o.dtype != LLM_DTYPE_F16 &&
                    o.dtype != LLM_DTYPE_BF16)
                    return tool_usage_error("--dtype must be keep, f32, f16 or bf16, not '%s'",
                                            optarg);
            }
            break;
        case OPT_COMPRESS:
            if (!optarg) {
                o.level = 3;
            } else if (tool_parse_int(optarg, 1, 22, &v)) {
                return tool_usage_error("--compress level must be 1..22, not '%s'", optarg);
            } else {
                o.level = (int)v;
            }
            break;
        case OPT_RANDOM: o.random = optarg; break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            o.seed = strtoull(optarg, &end, 0);
            if (!*optarg || *end || errno || *optarg == '-')
                return tool_usage_error("--seed must be a non-negative integer, not '%s'",
                                        optarg);
            o.have_seed = 1;
            break;
        }
        case ':': return tool_usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return tool_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    int npos = argc - optind;
    if (o.random) {
        if (npos)
            return tool_usage_error("--random takes no checkpoint folder (got '%s')",
                                    argv[optind]);
    } else {
        if (o.have_seed) return tool_usage_error("--seed needs --random");
        if (npos == 0) return tool_usage_error("missing the checkpoint folder HF_DIR");
        if (npos > 1) return tool_usage_error("one checkpoint folder only (got '%s' too)",
                                              argv[optind + 1]);
        o.in = argv[optind];
    }
    if ((!o.out || !strcmp(o.out, "-")) && isatty(STDOUT_FILENO))
        return tool_usage_error("refusing to write an artifact to a terminal; use -o FILE or "
                                "redirect standard output");
    if (o.verbose < 0) llm_log_set_level(LLM_LOG_ERROR);

    int rc = o.random ? convert_random(&o) : convert_hf(&o);
    return rc ? tool_fail(rc) : TOOL_EXIT_OK;
}
