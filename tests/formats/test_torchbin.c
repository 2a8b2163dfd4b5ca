/* test_torchbin.c - the PyTorch .bin reader (lib/formats/torchbin.c through
 * the llm_st_* API) against the fixtures of torchbin/gen_torchbin.py:
 * every tensor of tiny.bin (and of its ZIP64 rewrite, its in-memory open,
 * and the sharded pair through its index) equals the one in
 * tiny.safetensors byte for byte; the tied pair shares its bytes; tensors
 * come by offset; folders open .bin only when they hold no safetensors;
 * and every file under torchbin/bad/ (listed in bad/cases.tsv) is refused
 * with its error code and a one-line message naming the file, without
 * running anything it names. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llm/err.h"
#include "llm/safetensors.h"
#include "tcheck.h"

static char fx[4000]; /* the fixture folder */

static char *fixture(const char *name)
{
    static char p[4][4096 + 700];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof(p[k]), "%s/%s", fx, name);
    return p[k];
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Every tensor of ref is in st with the same dtype, shape and bytes, and
 * st has no others. */
static void same_tensors(const struct llm_st *st, const struct llm_st *ref, const char *what)
{
    CHECK(llm_st_count(st) == llm_st_count(ref), "%s: %zu tensors, expected %zu", what,
          llm_st_count(st), llm_st_count(ref));
    for (size_t i = 0; i < llm_st_count(ref); i++) {
        const struct llm_tensor *r = llm_st_get(ref, i);
        const struct llm_tensor *t = llm_st_find(st, r->name);
        CHECK(t != NULL, "%s: tensor '%s' missing", what, r->name);
        if (!t) continue;
        CHECK(t->dtype == r->dtype && t->ndim == r->ndim && t->nbytes == r->nbytes &&
                  !memcmp(t->shape, r->shape, (size_t)r->ndim * sizeof(int64_t)),
              "%s: tensor '%s' differs in dtype, shape or size", what, r->name);
        CHECK(t->nbytes != r->nbytes || !memcmp(t->data, r->data, (size_t)r->nbytes),
              "%s: tensor '%s' differs in its bytes", what, r->name);
    }
}

/* Tensors come shard by shard, by offset within each. */
static void by_offset(const struct llm_st *st, const char *what)
{
    for (size_t i = 1; i < llm_st_count(st); i++) {
        int a = llm_st_shard_of(st, i - 1), b = llm_st_shard_of(st, i);
        const uint8_t *pa = llm_st_get(st, i - 1)->data, *pb = llm_st_get(st, i)->data;
        CHECK(a < b || (a == b && pa <= pb), "%s: tensor %zu out of order", what, i);
    }
}

static void test_tiny(const struct llm_st *ref)
{
    struct llm_st *st = NULL;
    CHECK_OK(llm_st_open(&st, fixture("tiny.bin")));
    if (!st) return;
    same_tensors(st, ref, "tiny.bin");
    by_offset(st, "tiny.bin");
    const struct llm_tensor *a = llm_st_find(st, "model.embed_tokens.weight");
    const struct llm_tensor *b = llm_st_find(st, "lm_head.weight");
    CHECK(a && b && a->data == b->data, "the tied pair does not share its bytes");
    CHECK_INT(llm_st_nfiles(st), 1);
    CHECK(ends_with(llm_st_file_path(st, 0), "tiny.bin"), "file path %s", llm_st_file_path(st, 0));
    CHECK(llm_st_index_path(st) == NULL, "an index for a single file");
    /* file data and sizes, for hashing */
    size_t len;
    unsigned char *buf = t_slurp(fixture("tiny.bin"), &len);
    CHECK_INT(llm_st_file_size(st, 0), len);
    CHECK(!memcmp(llm_st_file_data(st, 0), buf, len), "file data differs from the file");
    for (size_t i = 0; i < llm_st_count(st); i++)
        llm_st_release(st, i);
    llm_st_release_file(st, 0);
    same_tensors(st, ref, "tiny.bin after release"); /* still readable */
    llm_st_close(st);

    /* the same bytes in memory */
    CHECK_OK(llm_st_open_torchbin_mem(&st, buf, len, "tiny-in-memory.bin"));
    if (st) {
        same_tensors(st, ref, "tiny.bin in memory");
        CHECK_STR(llm_st_file_path(st, 0), "tiny-in-memory.bin");
        llm_st_close(st);
    }
    /* a torch.save archive is not a safetensors file, nor the reverse */
    CHECK_ERR(llm_st_open_mem(&st, buf, len, "x.safetensors"), LLM_EFORMAT, "x.safetensors");
    free(buf);
    buf = t_slurp(fixture("tiny.safetensors"), &len);
    CHECK_ERR(llm_st_open_torchbin_mem(&st, buf, len, "y.bin"), LLM_EFORMAT,
              "'y.bin': not a zip archive");
    free(buf);
    CHECK_ERR(llm_st_open_torchbin_mem(&st, "", 0, "e.bin"), LLM_ETRUNC, "'e.bin'");
}

static void test_zip64_and_shards(const struct llm_st *ref)
{
    struct llm_st *st = NULL;
    CHECK_OK(llm_st_open(&st, fixture("zip64.bin")));
    if (st) {
        same_tensors(st, ref, "zip64.bin");
        llm_st_close(st);
    }
    /* the folder, and the index itself */
    const char *ways[] = {fixture("sharded"), fixture("sharded/pytorch_model.bin.index.json")};
    for (int w = 0; w < 2; w++) {
        CHECK_OK(llm_st_open(&st, ways[w]));
        if (!st) continue;
        same_tensors(st, ref, ways[w]);
        by_offset(st, ways[w]);
        CHECK_INT(llm_st_nfiles(st), 2);
        CHECK(llm_st_nfiles(st) == 2 &&
                  ends_with(llm_st_file_path(st, 0), "pytorch_model-00001-of-00002.bin") &&
                  ends_with(llm_st_file_path(st, 1), "pytorch_model-00002-of-00002.bin"),
              "shard files");
        CHECK(llm_st_index_path(st) &&
                  ends_with(llm_st_index_path(st), "sharded/pytorch_model.bin.index.json"),
              "index path %s", llm_st_index_path(st) ? llm_st_index_path(st) : "(none)");
        llm_st_close(st);
    }
}

static void copy_file(const char *from, const char *to)
{
    size_t len;
    unsigned char *b = t_slurp(from, &len);
    t_spit(to, b, len);
    free(b);
}

/* A folder opens pytorch_model.bin only when it has no safetensors. */
static void test_folders(const struct llm_st *ref)
{
    char *d = t_mkdtemp(), p[4200], q[4200];
    struct llm_st *st = NULL;
    snprintf(p, sizeof(p), "%s/pytorch_model.bin", d);
    copy_file(fixture("tiny.bin"), p);
    CHECK_OK(llm_st_open(&st, d));
    if (st) {
        same_tensors(st, ref, "folder with pytorch_model.bin");
        CHECK(ends_with(llm_st_file_path(st, 0), "/pytorch_model.bin"), "%s",
              llm_st_file_path(st, 0));
        llm_st_close(st);
    }
    snprintf(q, sizeof(q), "%s/model.safetensors", d);
    copy_file(fixture("tiny.safetensors"), q);
    CHECK_OK(llm_st_open(&st, d));
    if (st) {
        CHECK(ends_with(llm_st_file_path(st, 0), "/model.safetensors"),
              "safetensors not preferred: %s", llm_st_file_path(st, 0));
        llm_st_close(st);
    }
    unlink(q);
    unlink(p);
    CHECK_ERR(llm_st_open(&st, d), LLM_ENOTFOUND, "nor pytorch_model.bin");
    /* a broken pytorch_model.bin is reported, not skipped */
    copy_file(fixture("bad/truncated.bin"), p);
    CHECK_ERR(llm_st_open(&st, d), LLM_ETRUNC, "/pytorch_model.bin'");
    t_rmtree(d);
}

static void test_bad(void)
{
    char line[1024];
    FILE *fp = fopen(fixture("bad/cases.tsv"), "r");
    CHECK(fp != NULL, "unable to open %s", fixture("bad/cases.tsv"));
    if (!fp) return;
    const char *pwned = "/tmp/llm-torchbin-pwned"; /* what the os.system payloads would touch */
    unlink(pwned);
    int listed = 0;
    while (fgets(line, sizeof(line), fp)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, "\n")] = 0;
        char *file = strtok(line, "\t"), *code = strtok(NULL, "\t"), *sub = strtok(NULL, "\t");
        CHECK(file && code && sub, "bad line in cases.tsv");
        if (!file || !code || !sub) continue;
        listed++;
        char rel[600];
        snprintf(rel, sizeof(rel), "bad/%s", file);
        const char *path = fixture(rel);
        struct llm_st *st = NULL;
        CHECK_ERR(llm_st_open(&st, path), t_code_of(code), sub);
        CHECK(st == NULL, "%s: a handle on failure", file);
        const char *msg = llm_errmsg();
        CHECK(strstr(msg, path) && !strchr(msg, '\n'), "%s: message '%s' is not one line naming it",
              file, msg);
        /* and the same in memory */
        size_t len;
        unsigned char *b = t_slurp(path, &len);
        CHECK_ERR(llm_st_open_torchbin_mem(&st, b, len, file), t_code_of(code), sub);
        free(b);
    }
    fclose(fp);
    CHECK(access(pwned, F_OK) != 0, "something ran a payload: %s exists", pwned);
    /* every file under bad/ is listed */
    DIR *d = opendir(fixture("bad"));
    int files = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (ends_with(de->d_name, ".bin")) files++;
    if (d) closedir(d);
    CHECK_INT(files, listed);
}

int main(void)
{
    snprintf(fx, sizeof(fx), "%s/tests/formats/torchbin", t_srcdir());
    struct llm_st *ref = NULL;
    CHECK_OK(llm_st_open(&ref, fixture("tiny.safetensors")));
    if (!ref) return t_report("torchbin");
    CHECK(llm_st_count(ref) == 8, "tiny.safetensors has %zu tensors", llm_st_count(ref));
    test_tiny(ref);
    test_zip64_and_shards(ref);
    test_folders(ref);
    test_bad();
    llm_st_close(ref);
    return t_report("torchbin");
}
