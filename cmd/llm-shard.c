/* llm-shard - split an artifact over the ranks of a tensor/pipeline-parallel
 * job, and merge the rank files back.
 *
 * Design: one pass over the parent (mapped, or streamed from a pipe), one
 * tensor at a time: each tensor is cut for every rank that holds any of it
 * (llm/shard.h says how) and appended to that rank's writer, so memory is
 * bounded by the largest tensor.  Every rank file is a complete artifact:
 * the parent's metadata with its own "mapping", and in the trailer (known
 * only at the end of a stream) the parent's hash, its trailer, its tensor
 * order and the provenance entry.  Those are what --merge needs to write
 * the parent again byte for byte.  All rank files appear together or not
 * at all.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <xxhash.h>

#include "llm/artifact.h"
#include "llm/dist.h"
#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/log.h"
#include "llm/model.h"
#include "llm/weight.h"
#include "llm/shard.h"
#include "llm_build_config.h"
#include "llm_commit.h"
#include "tool.h"

static const char usage_text[] =
    "Usage: llm-shard --tp N [--pp M] [--ep E] ARTIFACT -o DIR\n"
    "       llm-shard --merge DIR -o OUT\n"
    "Split an llm artifact ('-' reads standard input) over the ranks of a tensor- and\n"
    "pipeline-parallel job: DIR/rank-K.llm for K = pp_rank * tp + tp_rank, each a\n"
    "complete artifact with its mapping, its slice of the weights and its parent's\n"
    "hash.  Run them with 'mpirun -np N llm-run DIR requests.jsonl'.  --merge\n"
    "rebuilds the parent from a directory of rank files, byte for byte.\n"
    "\n"
    "Options:\n"
    "      --tp N            tensor-parallel ranks: attention heads, MLP inner size and\n"
    "                        vocabulary split N ways (default 1)\n"
    "      --pp M            pipeline stages of contiguous layers (default 1)\n"
    "      --ep E            expert parallelism: the tp ranks form E groups (group =\n"
    "                        tp rank mod E), each with whole experts split over its\n"
    "                        tp / E ranks (default 1)\n"
    "      --merge DIR       the reverse: one artifact from DIR's rank files\n"
    "  -o, --output PATH     the directory to write (created if missing), or with\n"
    "                        --merge the artifact ('-' = standard output)\n"
    "      --compress[=L]    zstd-compress each tensor that shrinks (level 1..22, default\n"
    "                        3); a merge is byte-identical to a parent written with the\n"
    "                        same level\n"
    "      --no-verify       skip checking the input's checksums first\n"
    "  -q, --quiet           no progress messages\n"
    "  -h, --help            this text\n"
    "      --version         version and commit\n"
    "\n"
    "Exit status: 0 done, 1 failure (nothing written), 2 usage error.\n";

struct opts {
    long tp, pp, ep;
    const char *in, *out, *merge;
    int level, no_verify, quiet;
};

/* ---- the parent's identity: the same hash llm-bench and llm-quantize record --- */

static void hash_tensor(XXH3_state_t *st, const struct llm_tensor *t)
{
    XXH3_64bits_update(st, t->name, strlen(t->name) + 1);
    int64_t hdr[2 + LLM_MAX_DIMS] = {t->dtype, t->ndim};
    for (int d = 0; d < t->ndim && d < LLM_MAX_DIMS; d++)
        hdr[2 + d] = t->shape[d];
    XXH3_64bits_update(st, hdr, sizeof hdr);
    XXH3_64bits_update(st, &t->xxh3, sizeof t->xxh3);
}

/* ---- split ------------------------------------------------------------------ */

struct writers {
    int n;
    struct llm_aw **w;
    char **path;
};

static void writers_abort(struct writers *ws)
{
    for (int i = 0; i < ws->n; i++) {
        if (ws->w) llm_aw_abort(ws->w[i]);
        if (ws->path) free(ws->path[i]);
    }
    free(ws->w);
    free(ws->path);
    memset(ws, 0, sizeof *ws);
}

/* A directory for the rank files: created if missing; rank files of
 * another split left in it would be mistaken for ours, so they refuse it. */
static int prepare_dir(const char *dir, int world)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (mkdir(dir, 0777) != 0)
            return llm_err_set(LLM_EIO, "unable to create '%s': %s", dir, strerror(errno));
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) return llm_err_set(LLM_EINVAL, "'%s' is not a directory", dir);
    DIR *d = opendir(dir);
    if (!d) return llm_err_set(LLM_EIO, "unable to read '%s': %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        int k;
        char tail[8];
        if (sscanf(e->d_name, "rank-%d.ll%1s", &k, tail) == 2 && !strcmp(tail, "m") &&
            k >= world)
            rc = llm_err_set(LLM_EINVAL, "'%s' holds '%s' of another split into more ranks; use "
                             "an empty directory", dir, e->d_name);
    }
    closedir(d);
    return rc;
}

/* The rank's header: the parent's with its mapping (a model with experts
 * also says how they are split, as TensorRT-LLM's moe_tp_size x moe_ep_size). */
static json_t *rank_meta(const json_t *head, const struct llm_model_desc *d, int tp, int pp,
                         int ep, int tp_rank, int pp_rank)
{
    json_t *m = json_deep_copy(head);
    if (!m) return NULL;
    json_t *mp = json_pack("{s:i, s:i, s:i, s:i, s:i}", "world_size", tp * pp, "tp_size", tp,
                           "pp_size", pp, "tp_rank", tp_rank, "pp_rank", pp_rank);
    if (mp && d->n_experts > 0 &&
        (json_object_set_new(mp, "moe_tp_size", json_integer(tp / ep)) ||
         json_object_set_new(mp, "moe_ep_size", json_integer(ep)))) {
        json_decref(mp);
        mp = NULL;
    }
    if (!mp || json_object_set_new(m, "mapping", mp)) {
        json_decref(m);
        return NULL;
    }
    return m;
}

/* The trailer of every rank file: provenance, and what a merge needs. */
static json_t *rank_trailer(const struct opts *o, struct llm_artifact *a, uint64_t hash,
                            json_t *order)
{
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)hash);
    const json_t *meta = llm_ar_meta(a), *head = llm_ar_header_meta(a);
    char tpb[16], ppb[16], epb[16];
    snprintf(tpb, sizeof tpb, "%ld", o->tp);
    snprintf(ppb, sizeof ppb, "%ld", o->pp);
    snprintf(epb, sizeof epb, "%ld", o->ep);
    json_t *argv = o->ep > 1 ? json_pack("[s, s, s, s, s, s, s, s]", "llm-shard", "--tp", tpb,
                                         "--pp", ppb, "--ep", epb, o->in)
                             : json_pack("[s, s, s, s, s, s]", "llm-shard", "--tp", tpb, "--pp",
                                         ppb, o->in);
    json_t *entry = json_pack("{s:s, s:s, s:s, s:o, s:{s:s, s:s}}", "tool", "llm-shard",
                              "version", LLM_VERSION, "commit", LLM_GIT_COMMIT, "argv", argv,
                              "parent", "path", o->in, "hash", hex);
    json_t *chain = json_array();
    const json_t *c0 = json_object_get(meta, "provenance");
    if (!entry || !chain || (json_is_array(c0) && json_array_extend(chain, (json_t *)c0)) ||
        json_array_append_new(chain, entry)) {
        json_decref(entry);
        json_decref(chain);
        json_decref(order);
        return NULL;
    }
    const json_t *pm = json_object_get(head, "mapping"), *ptr = llm_ar_trailer(a);
    return json_pack("{s:o, s:{s:s, s:O, s:O, s:o}}", "provenance", chain, "shard",
                     "parent_hash", hex, "parent_mapping", pm ? pm : json_null(),
                     "parent_trailer", ptr ? ptr : json_null(), "order", order);
}

static int split(const struct opts *o)
{
    struct llm_artifact *a = NULL;
    struct llm_model_desc d;
    struct llm_quant q;
    struct writers ws = {0};
    XXH3_state_t *hs = XXH3_createState();
    json_t *order = json_array();
    void *part = NULL;
    size_t part_cap = 0;
    int tp = (int)o->tp, pp = (int)o->pp, ep = (int)o->ep, world = tp * pp;
    llm_desc_init(&d);
    llm_quant_init(&q);
    int rc = hs && order ? 0 : llm_err_set(LLM_ENOMEM, "out of memory");
    /* every tensor's checksum checked as it is read (a file's or a stream's) */
    if (!rc) rc = llm_ar_open(&a, o->in, o->no_verify ? 0 : LLM_AR_VERIFY);
    const json_t *meta = rc ? NULL : llm_ar_meta(a);
    const char *src = o->in;
    if (!rc) {
        const json_t *mp = json_object_get(meta, "mapping");
        const json_t *ws_j = json_object_get(mp, "world_size");
        if (json_object_get(meta, "engine"))
            rc = llm_err_set(LLM_EINVAL, "'%s' is an engine (llm-build); shard the artifact it "
                             "was built from", src);
        else if (json_is_integer(ws_j) && json_integer_value(ws_j) > 1)
            rc = llm_err_set(LLM_EINVAL, "'%s' is already one rank of %lld", src,
                             (long long)json_integer_value(ws_j));
        else if ((rc = llm_desc_from_json(&d, json_object_get(meta, "model"))))
            llm_err_wrap(rc, "'%s': model description", src);
        else if (!(rc = llm_quant_from_json(&q, json_object_get(meta, "quantization"), src)) &&
                 (rc = llm_partition_check(&d, &q, tp, pp, ep)))
            llm_err_wrap(rc, "'%s'", src);
    }
    if (!rc) rc = prepare_dir(o->out, world);
    if (!rc) {
        ws.n = world;
        ws.w = calloc((size_t)world, sizeof *ws.w);
        ws.path = calloc((size_t)world, sizeof *ws.path);
        if (!ws.w || !ws.path) rc = llm_err_set(LLM_ENOMEM, "out of memory");
    }
    for (int k = 0; !rc && k < world; k++) {
        char p[4096];
        if ((rc = llm_job_rank_path(p, sizeof p, o->out, k))) break;
        if (!(ws.path[k] = strdup(p))) {
            rc = llm_err_set(LLM_ENOMEM, "out of memory");
            break;
        }
        json_t *m = rank_meta(llm_ar_header_meta(a), &d, tp, pp, ep, k % tp, k / tp);
        struct llm_aw_opts ao = {.compress_level = o->level};
        rc = m ? llm_aw_create(&ws.w[k], p, m, &ao) : llm_err_set(LLM_ENOMEM, "out of memory");
        json_decref(m);
    }
    if (!rc) XXH3_64bits_reset(hs);
    const int tied = d.tied_embeddings && (tp > 1 || pp > 1);
    struct llm_tensor t;
    int more;
    while (!rc && (more = llm_ar_next(a, &t)) == 1) {
        hash_tensor(hs, &t);
        if (json_array_append_new(order, json_string(t.name))) {
            rc = llm_err_set(LLM_ENOMEM, "out of memory");
            break;
        }
        struct llm_split s;
        if ((rc = llm_split_of(&d, t.name, t.ndim, t.shape, &s))) {
            llm_err_wrap(rc, "'%s'", src);
            break;
        }
        size_t nl = strlen(t.name), pl = strlen("." LLM_WQ_PERM);
        if (tp > 1 && !llm_split_whole(&s, ep) && nl > pl &&
            !strcmp(t.name + nl - pl, "." LLM_WQ_PERM)) {
            rc = llm_err_set(LLM_EUNSUPPORTED, "'%s': tensor '%s': a weight on permuted inputs "
                             "(GPTQ act-order) cannot be split along its inputs (--tp 1 keeps "
                             "it whole)", src, t.name);
            break;
        }
        /* the embedding also gives a tied lm_head its own rows on the last stage */
        for (int pass = 0; pass < 1 + (tied && !strcmp(t.name, "transformer.vocab_embedding.weight"));
             pass++) {
            const char *name = pass ? "lm_head.weight" : t.name;
            if (pass) s = (struct llm_split){.kind = LLM_SPLIT_VOCAB, .layer = -1, .stage_last = 1};
            for (int k = 0; !rc && k < world; k++) {
                int tr = k % tp, pr = k / tp;
                if (!llm_split_held(&d, &s, tp, ep, pp, tr, pr)) continue;
                struct llm_split_ranges r;
                int bits = llm_dtype_bits(t.dtype);
                int64_t shape[LLM_MAX_DIMS];
                memcpy(shape, t.shape, sizeof shape);
                int whole = llm_split_whole(&s, ep);
                if (!whole) {
                    if ((rc = llm_split_ranges(&d, &s, t.shape[s.axis], tp, ep, tr, &r))) {
                        llm_err_wrap(rc, "'%s': tensor '%s'", src, t.name);
                        break;
                    }
                    shape[s.axis] = r.local;
                    if (r.experts) shape[0] = r.experts;
                }
                uint64_t nb = 0, n = 1;
                for (int i = 0; i < t.ndim; i++)
                    n *= (uint64_t)shape[i];
                if (llm_dtype_nbytes(t.dtype, n, &nb)) {
                    rc = llm_err_set(LLM_ERANGE, "'%s': tensor '%s' is too large", src, t.name);
                    break;
                }
                const void *data = t.data;
                if (!whole) {
                    if (nb > part_cap) {
                        void *np = realloc(part, nb);
                        if (!np) {
                            rc = llm_err_set(LLM_ENOMEM, "out of memory for a %llu-byte slice",
                                             (unsigned long long)nb);
                            break;
                        }
                        part = np;
                        part_cap = nb;
                    }
                    if ((rc = llm_split_copy(&s, &r, t.ndim, t.shape, bits, (void *)t.data, part,
                                             1))) {
                        llm_err_wrap(rc, "'%s': tensor '%s'", src, t.name);
                        break;
                    }
                    data = part;
                }
                rc = llm_aw_add(ws.w[k], name, t.dtype, t.ndim, shape, data, nb);
            }
        }
    }
    if (!rc && more < 0) rc = more;
    if (!rc) {
        uint64_t h = XXH3_64bits_digest(hs);
        for (int k = 0; !rc && k < world; k++) {
            json_t *tr = rank_trailer(o, a, h, json_incref(order));
            rc = tr ? llm_aw_set_trailer(ws.w[k], tr) : llm_err_set(LLM_ENOMEM, "out of memory");
            json_decref(tr);
        }
    }
    /* all or nothing: finish every file, and remove the finished ones if one fails */
    int done = 0;
    for (int k = 0; !rc && k < world; k++, done++) {
        rc = llm_aw_finish(ws.w[k]);
        ws.w[k] = NULL;
    }
    if (rc)
        for (int k = 0; k < done; k++)
            unlink(ws.path[k]);
    if (!rc && !o->quiet && ep > 1)
        llm_info("%s: %d rank files (tp %d x pp %d, the experts in %d groups) in %s", src, world,
                 tp, pp, ep, o->out);
    else if (!rc && !o->quiet)
        llm_info("%s: %d rank files (tp %d x pp %d) in %s", src, world, tp, pp, o->out);
    writers_abort(&ws);
    free(part);
    json_decref(order);
    if (hs) XXH3_freeState(hs);
    llm_ar_close(a);
    llm_desc_free(&d);
    return rc;
}

/* ---- merge ------------------------------------------------------------------ */

/* The expert groups a rank file's mapping names (1 when it names none). */
static int mapping_ep(const json_t *mp)
{
    const json_t *v = json_object_get(mp, "moe_ep_size");
    return json_is_integer(v) ? (int)json_integer_value(v) : 1;
}

static int merge(const struct opts *o)
{
    struct llm_artifact **ar = NULL, *a0 = NULL;
    struct llm_aw *w = NULL;
    struct llm_model_desc d;
    void *buf = NULL;
    json_t *meta = NULL;
    llm_desc_init(&d);
    char p[4096];
    int world = 0, tp = 1, pp = 1, ep = 1;
    int rc = llm_job_rank_path(p, sizeof p, o->merge, 0);
    if (!rc) rc = llm_ar_open(&a0, p, 0);
    const json_t *m0 = rc ? NULL : llm_ar_meta(a0);
    const json_t *sh = json_object_get(m0, "shard"), *mp = json_object_get(m0, "mapping");
    if (!rc && (!json_is_object(sh) || !json_is_array(json_object_get(sh, "order")) ||
                !json_is_object(mp)))
        rc = llm_err_set(LLM_EFORMAT, "'%s' is not a rank file of llm-shard (no shard section)", p);
    if (!rc) {
        world = (int)json_integer_value(json_object_get(mp, "world_size"));
        tp = (int)json_integer_value(json_object_get(mp, "tp_size"));
        pp = (int)json_integer_value(json_object_get(mp, "pp_size"));
        ep = mapping_ep(mp);
        if (world < 1 || tp < 1 || pp < 1 || world != tp * pp || world > 65536 || ep < 1 ||
            tp % ep)
            rc = llm_err_set(LLM_EFORMAT, "'%s': mapping is inconsistent", p);
    }
    if (!rc && (rc = llm_desc_from_json(&d, json_object_get(m0, "model"))))
        llm_err_wrap(rc, "'%s': model description", p);
    const char *hash = rc ? NULL : json_string_value(json_object_get(sh, "parent_hash"));
    if (!rc && !hash) rc = llm_err_set(LLM_EFORMAT, "'%s': shard section has no parent hash", p);
    if (!rc && !(ar = calloc((size_t)world, sizeof *ar)))
        rc = llm_err_set(LLM_ENOMEM, "out of memory");
    for (int k = 0; !rc && k < world; k++) {
        if (k == 0) {
            ar[0] = a0;
            a0 = NULL;
        } else {
            llm_job_rank_path(p, sizeof p, o->merge, k);
            if ((rc = llm_ar_open(&ar[k], p, 0))) break;
        }
        if (!o->no_verify && (rc = llm_ar_verify_all(ar[k]))) break;
        const json_t *mk = llm_ar_meta(ar[k]), *mpk = json_object_get(mk, "mapping");
        const char *hk = json_string_value(json_object_get(json_object_get(mk, "shard"),
                                                           "parent_hash"));
        int tpk = (int)json_integer_value(json_object_get(mpk, "tp_size"));
        int rk = (int)(json_integer_value(json_object_get(mpk, "pp_rank")) * tpk +
                       json_integer_value(json_object_get(mpk, "tp_rank")));
        if (!hk || strcmp(hk, hash) || tpk != tp || mapping_ep(mpk) != ep ||
            json_integer_value(json_object_get(mpk, "world_size")) != world)
            rc = llm_err_set(LLM_EINVAL, "'%s' is not a part of the same split as rank 0's",
                             llm_ar_path(ar[k]));
        else if (rk != k)
            rc = llm_err_set(LLM_EINVAL, "'%s' holds rank %d, not %d", llm_ar_path(ar[k]), rk, k);
    }
    /* the parent's header metadata: ours with the parent's mapping */
    if (!rc) {
        const json_t *pm = json_object_get(sh, "parent_mapping");
        meta = json_deep_copy(llm_ar_header_meta(ar[0]));
        if (!meta) rc = llm_err_set(LLM_ENOMEM, "out of memory");
        else if (!pm || json_is_null(pm)) json_object_del(meta, "mapping");
        else json_object_set(meta, "mapping", (json_t *)pm);
    }
    struct llm_aw_opts ao = {.compress_level = o->level};
    if (!rc) rc = llm_aw_create(&w, o->out, meta, &ao);
    const json_t *ptr = json_object_get(sh, "parent_trailer");
    if (!rc && json_is_object(ptr) && json_object_size(ptr))
        rc = llm_aw_set_trailer(w, ptr);
    const json_t *order = json_object_get(sh, "order");
    size_t i;
    json_t *nm;
    json_array_foreach(order, i, nm) {
        if (rc) break;
        const char *name = json_string_value(nm);
        struct llm_tensor t;
        if (!name) {
            rc = llm_err_set(LLM_EFORMAT, "'%s': bad tensor order", llm_ar_path(ar[0]));
            break;
        }
        /* the first rank holding it says its dtype and slice shape */
        int k0 = -1;
        for (int k = 0; k < world && k0 < 0; k++)
            if (llm_ar_find(ar[k], name, &t) == 0) k0 = k;
            else llm_err_clear();
        if (k0 < 0) {
            rc = llm_err_set(LLM_ENOTFOUND, "'%s': no rank file holds tensor '%s'", o->merge,
                             name);
            break;
        }
        struct llm_split s;
        if ((rc = llm_split_of(&d, name, t.ndim, t.shape, &s))) break;
        int64_t shape[LLM_MAX_DIMS];
        memcpy(shape, t.shape, sizeof shape);
        int whole = llm_split_whole(&s, ep);
        if (!whole) shape[s.axis] = llm_split_whole_len(&d, &s, t.shape[s.axis], tp, ep);
        if (!whole && s.experts) shape[0] = d.n_experts;
        uint64_t n = 1, nb;
        for (int j = 0; j < t.ndim; j++) n *= (uint64_t)shape[j];
        if (llm_dtype_nbytes(t.dtype, n, &nb)) {
            rc = llm_err_set(LLM_ERANGE, "tensor '%s' is too large", name);
            break;
        }
        void *nbuf = whole ? NULL : realloc(buf, nb ? nb : 1);
        if (!whole && !nbuf) {
            rc = llm_err_set(LLM_ENOMEM, "out of memory for tensor '%s'", name);
            break;
        }
        if (!whole) buf = nbuf;
        const void *data = t.data;
        for (int k = 0; !whole && !rc && k < world; k++) {
            struct llm_tensor tk;
            if (!llm_split_held(&d, &s, tp, ep, pp, k % tp, k / tp)) continue;
            if ((rc = llm_ar_find(ar[k], name, &tk))) break;
            struct llm_split_ranges r;
            if ((rc = llm_split_ranges(&d, &s, shape[s.axis], tp, ep, k % tp, &r))) break;
            /* an expert stack's bias held whole per group (GPT-OSS's down bias) is
             * split by experts alone */
            const int by_axis = s.kind != LLM_SPLIT_WHOLE && s.kind != LLM_SPLIT_FIRST;
            if (tk.dtype != t.dtype || tk.ndim != t.ndim ||
                (by_axis && tk.shape[s.axis] != r.local) ||
                (r.experts && tk.shape[0] != r.experts)) {
                rc = llm_err_set(LLM_ESHAPE, "'%s': tensor '%s' has a slice of another shape",
                                 llm_ar_path(ar[k]), name);
                break;
            }
            rc = llm_split_copy(&s, &r, t.ndim, shape, llm_dtype_bits(t.dtype), buf,
                                (void *)tk.data, 0);
        }
        if (!whole) data = buf;
        if (!rc) rc = llm_aw_add(w, name, t.dtype, t.ndim, shape, data, nb);
    }
    if (!rc) {
        rc = llm_aw_finish(w);
        w = NULL;
    }
    llm_aw_abort(w);
    json_decref(meta);
    free(buf);
    for (int k = 0; ar && k < world; k++)
        llm_ar_close(ar[k]);
    free(ar);
    llm_ar_close(a0);
    llm_desc_free(&d);
    return rc;
}

/* ---- main ------------------------------------------------------------------- */

enum { OPT_VERSION = 256, OPT_TP, OPT_PP, OPT_EP, OPT_MERGE, OPT_COMPRESS, OPT_NO_VERIFY };

int main(int argc, char **argv)
{
    tool_init("llm-shard");
    struct opts o = {.tp = 1, .pp = 1, .ep = 1};
    int given = 0;
    static const struct option lo[] = {
        {"tp", required_argument, NULL, OPT_TP},
        {"pp", required_argument, NULL, OPT_PP},
        {"ep", required_argument, NULL, OPT_EP},
        {"merge", required_argument, NULL, OPT_MERGE},
        {"output", required_argument, NULL, 'o'},
        {"compress", optional_argument, NULL, OPT_COMPRESS},
        {"no-verify", no_argument, NULL, OPT_NO_VERIFY},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:qh", lo, NULL)) != -1) {
        long v;
        switch (c) {
        case OPT_TP:
        case OPT_PP:
        case OPT_EP:
            if (tool_parse_int(optarg, 1, 4096, &v))
                return tool_usage_error("--%s must be a whole number in 1..4096, not '%s'",
                                        c == OPT_TP ? "tp" : c == OPT_PP ? "pp" : "ep", optarg);
            if (c == OPT_TP) o.tp = v;
            else if (c == OPT_PP) o.pp = v;
            else o.ep = v;
            given = 1;
            break;
        case OPT_MERGE: o.merge = optarg; break;
        case 'o': o.out = optarg; break;
        case OPT_COMPRESS:
            o.level = 3;
            if (optarg) {
                if (tool_parse_int(optarg, 1, 22, &v))
                    return tool_usage_error("--compress level must be 1..22, not '%s'", optarg);
                o.level = (int)v;
            }
            break;
        case OPT_NO_VERIFY: o.no_verify = 1; break;
        case 'q': o.quiet = 1; break;
        case 'h': fputs(usage_text, stdout); return TOOL_EXIT_OK;
        case OPT_VERSION: return tool_version();
        case ':': return tool_usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return tool_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    int nargs = argc - optind;
    if (!o.out) return tool_usage_error("missing -o (%s)", o.merge ? "the output artifact"
                                                                   : "the directory to write");
    if (o.merge) {
        if (given) return tool_usage_error("--merge takes the split from the rank files, not "
                                           "--tp / --pp / --ep");
        if (nargs) return tool_usage_error("--merge DIR takes no other input");
    } else {
        if (nargs != 1) return tool_usage_error(nargs ? "one artifact at a time"
                                                      : "missing the artifact to split");
        if (!strcmp(o.out, "-")) return tool_usage_error("-o names a directory, not '-'");
        o.in = argv[optind];
    }
    llm_log_set_level(o.quiet ? LLM_LOG_ERROR : LLM_LOG_INFO);
    int rc = o.merge ? merge(&o) : split(&o);
    return rc ? tool_fail(rc) : TOOL_EXIT_OK;
}
