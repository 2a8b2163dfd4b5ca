/* convert.c - the converter: a Hugging Face checkpoint folder, or random
 * weights in a config's shapes, into one artifact (llm/hf.h).
 *
 * Design: conversion streams one canonical tensor at a time in the order of
 * the conversion plan (which follows the checkpoint's file order), so the
 * source is read sequentially and its pages are dropped from the resident
 * set as soon as each tensor is written: peak memory is about one tensor,
 * whatever the model size.  Single-source tensors kept in their dtype and
 * layout are written straight from the mapping; only transformed (fused,
 * transposed, regrouped, stacked) or converted tensors go through a buffer.
 * Input files are hashed as the conversion passes over them (a frontier per
 * shard), and the hashes go into the artifact's trailer, since they are
 * known only at the end.  Nothing depends on time or place: the same inputs
 * and options give the same bytes, to a file or a pipe.
 *
 * Random weights come from a cheap counter-based generator seeded per
 * tensor name, so each tensor is independent of the others and of the order.
 */
#include <errno.h>
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
#include "llm/hf.h"
#include "llm/io.h"
#include "llm/log.h"
#include "llm/model.h"
#include "llm/random.h"
#include "llm/safetensors.h"
#include "llm_build_config.h"
#include "llm_commit.h"

#include "../core/text_internal.h"

void llm_convert_opts_init(struct llm_convert_opts *o)
{
    memset(o, 0, sizeof *o);
    o->dtype = -1;
}

/* One conversion's options and inputs. */
struct opts {
    const char *in;     /* HF_DIR */
    const char *out;    /* NULL or "-" = stdout */
    const char *random; /* CONFIG_JSON */
    unsigned long long seed;
    int dtype;          /* -1 keep */
    int level;          /* 0 = no compression */
    int verbose;        /* -1 quiet, 0, 1 */
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
                 llm_shape_str(sh, sizeof(sh), ndim, shape));
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
        rc = llm_hf_json_parse(buf, len, path, parsed);
        if (!rc && !json_is_object(*parsed)) {
            json_decref(*parsed);
            *parsed = NULL;
            rc = llm_err_set(LLM_EFORMAT, "'%s': not a JSON object", path);
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

/* ---- HF checkpoint ------------------------------------------------------- */

static const char *const tokenizer_files[] = {"tokenizer.json", "tokenizer_config.json",
                                              "special_tokens_map.json",
                                              "generation_config.json"};

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* config.json (hashed) and the tokenizer files (hashed, embedded): the small
 * inputs, before the shard index and any tensor. */
/* ModelOpt's exports may say what they are only in hf_quant_config.json
 * (hashed as an input when read). */
static int read_modelopt(const struct opts *o, struct llm_hf_quant *hq, json_t *inputs)
{
    char *p = join(o->in, "hf_quant_config.json");
    if (!p) return llm_err_set(LLM_ENOMEM, "out of memory");
    json_t *j = NULL;
    int rc = file_exists(p) ? hash_small_file(p, inputs, &j) : 0;
    if (!rc && j && !hq->method[0]) {
        snprintf(hq->method, sizeof hq->method, "modelopt");
        hq->raw = json_incref(j);
    }
    json_decref(j);
    free(p);
    return rc;
}

static int read_small_files(const struct opts *o, struct llm_model_desc *d,
                            struct llm_gen_defaults *g, json_t *inputs, json_t *tokfiles,
                            struct llm_hfq *hfq)
{
    struct stat sb;
    if (stat(o->in, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return llm_err_set(LLM_ENOTFOUND, "'%s': not a folder (expected a Hugging Face "
                           "checkpoint folder)", o->in);
    struct llm_hf_quant hq;
    int rc = llm_hfconfig_load_ex(o->in, d, g, &hq);
    if (rc) return rc;
    char *p = join(o->in, "config.json");
    rc = p ? hash_small_file(p, inputs, NULL) : llm_err_set(LLM_ENOMEM, "out of memory");
    if (!rc) rc = read_modelopt(o, &hq, inputs);
    if (!rc) rc = llm_hfq_scheme(&hq, p, hfq);
    llm_hf_quant_free(&hq);
    free(p);
    for (size_t i = 0; !rc && i < sizeof(tokenizer_files) / sizeof(tokenizer_files[0]); i++) {
        if (!(p = join(o->in, tokenizer_files[i]))) return llm_err_set(LLM_ENOMEM, "out of memory");
        if (file_exists(p)) {
            json_t *j = NULL;
            rc = hash_small_file(p, inputs, &j);
            if (!rc) json_object_set_new(tokfiles, tokenizer_files[i], j);
        }
        free(p);
    }
    return rc;
}

/* One hashing frontier per shard; the tensors the plan does not use count
 * as done, so that the frontier passes them. */
static int frontier_init(const struct llm_st *st, const struct llm_plan_item *items,
                         size_t n_items, struct shard_hash **shp, unsigned char **donep)
{
    size_t nfiles = llm_st_nfiles(st), nst = llm_st_count(st);
    struct shard_hash *sh = calloc(nfiles ? nfiles : 1, sizeof(*sh));
    unsigned char *done = calloc(nst ? nst : 1, 1);
    *shp = sh;
    *donep = done;
    if (!sh || !done) return llm_err_set(LLM_ENOMEM, "out of memory");
    for (size_t f = 0; f < nfiles; f++) {
        if (!(sh[f].st = XXH3_createState())) return llm_err_set(LLM_ENOMEM, "out of memory");
        XXH3_64bits_reset(sh[f].st);
        sh[f].next = sh[f].end = nst;
    }
    /* tensors come shard by shard, by offset: find each shard's range */
    for (size_t i = nst; i-- > 0;) {
        size_t f = (size_t)llm_st_shard_of(st, i);
        if (f >= nfiles) continue;
        sh[f].next = i;
        if (sh[f].end == nst) sh[f].end = i + 1;
        done[i] = 1;
    }
    for (size_t k = 0; k < n_items; k++) {
        for (int s = 0; s < items[k].n_src; s++) done[items[k].src[s]] = 0;
        for (int s = 0; (items[k].quant || items[k].mx || items[k].fp8b) && s < items[k].n_src;
             s++)
            for (int j = 0; j < 3; j++)
                if (items[k].qside[s][j] != SIZE_MAX) done[items[k].qside[s][j]] = 0;
    }
    return 0;
}

/* Build and write one plan item: straight from the mapping when it needs
 * no transform, else through a buffer of one tensor. */
static int write_item(const struct opts *o, struct llm_aw *w, const struct llm_st *st,
                      const struct llm_plan_item *it, struct release_ctx *rel, int *dtp,
                      uint64_t *nbp)
{
    const struct llm_tensor *s0 = llm_st_get(st, it->src[0]);
    /* MXFP4 expands to bf16 (or the --dtype asked for) */
    int dt = out_dtype(o, it->mx || (it->fp8b && s0->dtype == LLM_DTYPE_F8E4M3) ? LLM_DTYPE_BF16
                                                                               : s0->dtype);
    uint64_t numel, nbytes;
    if (llm_shape_numel(it->ndim, it->shape, &numel) || llm_dtype_nbytes(dt, numel, &nbytes))
        return llm_err_set(LLM_ERANGE, "tensor '%s': shape overflows", it->name);
    for (int s = 1; s < it->n_src; s++) {
        const struct llm_tensor *t = llm_st_get(st, it->src[s]);
        if (t->dtype != s0->dtype && o->dtype < 0)
            return llm_err_set(LLM_EUNSUPPORTED, "'%s': tensors '%s' (%s) and '%s' (%s) "
                               "form '%s' but differ in dtype; use --dtype",
                               llm_st_file_path(st, (size_t)llm_st_shard_of(st, it->src[s])),
                               s0->name, llm_dtype_name(s0->dtype), t->name,
                               llm_dtype_name(t->dtype), it->name);
    }
    const void *data;
    uint8_t *buf = NULL;
    if (it->xform == LLM_XF_COPY && dt == s0->dtype && !it->mx) {
        data = s0->data; /* straight from the mapping */
    } else if (it->xform == LLM_XF_ROWS && it->ndim == 2 && dt == s0->dtype && !it->mx) {
        data = (const uint8_t *)s0->data + (nbytes / (uint64_t)it->shape[0]) * (uint64_t)it->row0;
    } else {
        if (!(buf = malloc(nbytes ? nbytes : 1)))
            return llm_err_set(LLM_ENOMEM, "tensor '%s': out of memory (%llu bytes)", it->name,
                               (unsigned long long)nbytes);
        int rc = llm_hfmap_build(it, st, dt, buf, nbytes);
        if (rc) {
            free(buf);
            return rc;
        }
        data = buf;
    }
    rel->mapped = data != buf;
    int rc = llm_aw_add(w, it->name, dt, it->ndim, it->shape, data, nbytes);
    free(buf);
    *dtp = dt;
    *nbp = nbytes;
    return rc;
}

static int convert_hf(const struct opts *o)
{
    struct stats stats = {.t0 = now()};
    struct llm_model_desc d;
    struct llm_gen_defaults g;
    struct llm_st *st = NULL;
    struct llm_plan_item *items = NULL;
    size_t n_items = 0, nfiles = 0;
    struct llm_aw *w = NULL;
    json_t *inputs = json_array(), *tokfiles = json_object(), *meta = NULL, *prov = NULL;
    struct shard_hash *sh = NULL;
    unsigned char *done = NULL;
    struct release_ctx rel = {0};
    struct llm_hfq hfq;
    int rc;

    llm_desc_init(&d);
    llm_gen_defaults_init(&g);
    memset(&hfq, 0, sizeof hfq);
    if ((rc = read_small_files(o, &d, &g, inputs, tokfiles, &hfq))) goto out;
    if ((rc = llm_st_open(&st, o->in))) goto out;
    /* the shard index the checkpoint opened through (safetensors or .bin) */
    if (llm_st_index_path(st) && (rc = hash_small_file(llm_st_index_path(st), inputs, NULL)))
        goto out;
    if ((rc = llm_hfmap_plan_q(&d, st, &hfq, &items, &n_items))) goto out;
    if ((rc = llm_hfq_act_order(&hfq, st, items, n_items, &hfq.quant.act_order))) goto out;
    /* the artifact's description says what its tensors are */
    if (o->dtype >= 0 && llm_dtype_is_float(d.dtype)) d.dtype = o->dtype;
    nfiles = llm_st_nfiles(st);
    if ((rc = frontier_init(st, items, n_items, &sh, &done))) goto out;

    prov = provenance_entry(o);
    meta = base_meta(&d, &g, json_object_size(tokfiles) ? json_pack("{s:O}", "files", tokfiles)
                                                          : NULL,
                     json_deep_copy(prov));
    if (!meta || !prov ||
        (hfq.kind && json_object_set_new(meta, "quantization", llm_quant_to_json(&hfq.quant)))) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory building the metadata");
        goto out;
    }
    if ((rc = open_writer(o, meta, &w, &rel))) goto out;
    for (size_t k = 0; k < n_items; k++) {
        const struct llm_plan_item *it = &items[k];
        int dt = 0;
        uint64_t nbytes = 0;
        rel.mapped = 0;
        if (it->quant)
            dt = hfq.kind == LLM_HFQ_FP8 ? LLM_DTYPE_F8E4M3 : hfq.bits == 4 ? LLM_DTYPE_I4
                                                                             : LLM_DTYPE_I8;
        if ((rc = it->quant ? llm_hfq_write(it, st, &hfq, w, &nbytes)
                            : write_item(o, w, st, it, &rel, &dt, &nbytes)))
            goto out;
        for (int s = 0; s < it->n_src; s++) {
            llm_st_release(st, it->src[s]);
            done[it->src[s]] = 1;
            for (int j = 0; it->quant && j < 3; j++)
                if (it->qside[s][j] != SIZE_MAX) {
                    llm_st_release(st, it->qside[s][j]);
                    done[it->qside[s][j]] = 1;
                }
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

/* Random weights: the tensors of the synthetic model llm_model_random opens
 * from the same spec ("CONFIG.json[:QUANT]"), each made here in turn (its
 * side tensors' values are the model's own), with its quantization section. */
static int convert_random(const struct opts *o)
{
    struct stats stats = {.t0 = now()};
    struct llm_model_desc d;
    struct llm_gen_defaults g;
    json_t *inputs = json_array(), *config = NULL, *meta = NULL, *prov = NULL;
    struct llm_model *m = NULL;
    struct llm_aw *w = NULL;
    uint8_t *buf = NULL;
    const char *qtext;
    char *cfg = strndup(o->random, llm_rand_spec_split(o->random, &qtext));
    int rc = cfg ? 0 : llm_err_set(LLM_ENOMEM, "out of memory");

    llm_desc_init(&d);
    llm_gen_defaults_init(&g);
    if (rc || (rc = llm_model_random(&m, o->random, o->dtype, o->seed))) goto out;
    if ((rc = hash_small_file(cfg, inputs, &config))) goto out;
    if ((rc = llm_hfconfig_parse(config, NULL, cfg, &d, &g))) goto out;
    d.dtype = llm_rand_dtype(o->dtype >= 0 ? o->dtype : d.dtype);
    prov = provenance_entry(o);
    meta = base_meta(&d, &g, NULL, json_deep_copy(prov));
    if (!meta || !prov || ((m->quant.algo || m->quant.kv_algo) &&
                           json_object_set_new(meta, "quantization", llm_quant_to_json(&m->quant)))) {
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = open_writer(o, meta, &w, NULL))) goto out;
    size_t n = llm_model_random_count(m);
    for (size_t k = 0; k < n; k++) {
        const char *name = llm_model_random_name(m, k);
        struct llm_tensor t;
        uint64_t numel;
        if ((rc = llm_model_tensor(m, name, &t))) goto out;
        if (llm_shape_numel(t.ndim, t.shape, &numel)) {
            rc = llm_err_set(LLM_ERANGE, "'%s': tensor '%s' is too large", o->random, name);
            goto out;
        }
        const void *data = t.data;
        if (!data) {
            if (!(buf = malloc(t.nbytes ? t.nbytes : 1))) {
                rc = llm_err_set(LLM_ENOMEM, "tensor '%s': out of memory (%llu bytes)", name,
                                 (unsigned long long)t.nbytes);
                goto out;
            }
            if ((rc = llm_rand_tensor(buf, t.dtype, numel, name, o->seed))) goto out;
            data = buf;
        }
        rc = llm_aw_add(w, name, t.dtype, t.ndim, t.shape, data, t.nbytes);
        free(buf);
        buf = NULL;
        if (rc) goto out;
        progress(o, &stats, k, n, name, t.dtype, t.ndim, t.shape, t.nbytes);
    }
    rc = finish_writer(o, &w, prov, inputs, &stats);
out:
    llm_aw_abort(w);
    free(buf);
    free(cfg);
    llm_model_close(m);
    llm_desc_free(&d);
    json_decref(inputs);
    json_decref(config);
    json_decref(meta);
    json_decref(prov);
    return rc;
}


/* ---- entry points ---------------------------------------------------------- */

int llm_convert_hf(const char *dir, const struct llm_convert_opts *co)
{
    struct opts o = {.in = dir, .out = co->out, .dtype = co->dtype, .level = co->compress_level,
                     .verbose = co->verbose};
    if (!dir) return llm_err_set(LLM_EINVAL, "no checkpoint folder given");
    return convert_hf(&o);
}

int llm_convert_random(const char *config_path, uint64_t seed, const struct llm_convert_opts *co)
{
    struct opts o = {.random = config_path, .seed = seed, .out = co->out, .dtype = co->dtype,
                     .level = co->compress_level, .verbose = co->verbose};
    if (!config_path) return llm_err_set(LLM_EINVAL, "no config.json given");
    return convert_random(&o);
}
