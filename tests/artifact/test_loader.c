/* test_loader.c - llm_model_open / llm_model_tensor over artifacts written
 * here: description and generation defaults come back from the metadata,
 * tokenizer files are found, tensors are found by canonical name with their
 * shapes checked against the description (except for extra tensors; one
 * rank of a sharded model against the rank's part), standard input is read
 * through a pipe, and
 * an in-memory tensor source works without an artifact.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "llm/artifact.h"
#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/hf.h"
#include "llm/io.h"
#include "llm/model.h"

static int failures, checks;

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        checks++;                                                                            \
        if (!(cond)) {                                                                       \
            failures++;                                                                      \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                             \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fprintf(stderr, " [last error: %s]\n", llm_errmsg());                            \
        }                                                                                    \
    } while (0)

static const char config_text[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 32,"
    " \"intermediate_size\": 48, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
    " \"num_key_value_heads\": 2, \"vocab_size\": 50, \"max_position_embeddings\": 64,"
    " \"rms_norm_eps\": 1e-06, \"hidden_act\": \"silu\", \"tie_word_embeddings\": false,"
    " \"torch_dtype\": \"float32\", \"bos_token_id\": 1, \"eos_token_id\": 2}";

/* Write an artifact of the description's tensors (f32, value = tensor
 * index); wrong_shape names one tensor written with a row fewer; extra adds
 * a non-canonical tensor; world_size goes into the mapping. */
static int write_model(const char *path, const struct llm_model_desc *d, const char *wrong_shape,
                       int world_size)
{
    char(*names)[LLM_NAME_MAX];
    size_t n;
    int rc = llm_desc_tensor_names(d, &names, &n);
    if (rc) return rc;
    struct llm_gen_defaults g;
    llm_gen_defaults_init(&g);
    g.temperature = 0.25;
    g.top_k = 7;
    json_t *meta = json_pack("{s:o, s:o, s:{s:{s:{s:s}, s:{s:s}}}, s:{s:i}}", "model",
                             llm_desc_to_json(d), "generation", llm_gen_defaults_to_json(&g),
                             "tokenizer", "files", "tokenizer.json", "version", "1.0",
                             "tokenizer_config.json", "bos_token", "<s>", "mapping", "world_size",
                             world_size);
    struct llm_aw *w;
    rc = llm_aw_create(&w, path, meta, NULL);
    json_decref(meta);
    for (size_t i = 0; !rc && i < n; i++) {
        int ndim;
        int64_t shape[LLM_MAX_DIMS];
        uint64_t numel;
        llm_desc_tensor_shape(d, names[i], &ndim, shape);
        if (wrong_shape && !strcmp(names[i], wrong_shape)) shape[0]--;
        llm_shape_numel(ndim, shape, &numel);
        float *v = malloc((numel ? numel : 1) * sizeof(float));
        for (uint64_t k = 0; k < numel; k++) v[k] = (float)i;
        rc = llm_aw_add(w, names[i], LLM_DTYPE_F32, ndim, shape, v, numel * 4);
        free(v);
    }
    float one = 1;
    int64_t s1[1] = {1};
    if (!rc) rc = llm_aw_add(w, "transformer.layers.0.attention.qkv.weights_scaling_factor",
                             LLM_DTYPE_F32, 1, s1, &one, 4);
    free(names);
    if (!rc) return llm_aw_finish(w);
    llm_aw_abort(w);
    return rc;
}

static int fake_tensor(void *ctx, const char *name, struct llm_tensor *t)
{
    static float v[32];
    if (strcmp(name, "transformer.ln_f.weight")) return LLM_ENOTFOUND;
    memset(t, 0, sizeof(*t));
    t->name = "transformer.ln_f.weight";
    t->dtype = LLM_DTYPE_F32;
    t->ndim = 1;
    t->shape[0] = *(int *)ctx;
    t->nbytes = (uint64_t)t->shape[0] * 4;
    t->data = v;
    return 0;
}

int main(void)
{
    json_error_t je;
    json_t *cfg = json_loads(config_text, 0, &je);
    struct llm_model_desc d;
    if (!cfg || llm_hfconfig_parse(cfg, NULL, "config.json", &d, NULL)) {
        fprintf(stderr, "config: %s\n", llm_errmsg());
        return 1;
    }
    json_decref(cfg);
    char dir[] = "/tmp/test-loader-XXXXXX", path[256], bad[256], rank[256];
    if (!mkdtemp(dir)) return 1;
    snprintf(path, sizeof(path), "%s/m.llm", dir);
    snprintf(bad, sizeof(bad), "%s/bad.llm", dir);
    snprintf(rank, sizeof(rank), "%s/rank.llm", dir);
    CHECK(write_model(path, &d, NULL, 1) == 0, "write model");
    CHECK(write_model(bad, &d, "transformer.layers.1.mlp.proj.weight", 1) == 0, "write bad");
    CHECK(write_model(rank, &d, "transformer.layers.1.mlp.proj.weight", 2) == 0, "write rank");

    struct llm_model *m;
    struct llm_tensor t;
    CHECK(llm_model_open(&m, path) == 0, "open");
    if (m) {
        CHECK(m->desc.n_layers == 2 && m->desc.hidden == 32 && m->desc.n_kv_heads == 2 &&
                  m->desc.vocab_size == 50 && m->desc.head_dim == 8,
              "description from the metadata");
        CHECK(m->gen.temperature == 0.25 && m->gen.top_k == 7, "generation defaults");
        CHECK(m->tokenizer_json && m->tokenizer_config, "tokenizer files found");
        CHECK(llm_model_tensor(m, "transformer.layers.1.attention.qkv.weight", &t) == 0 &&
                  t.ndim == 2 && t.shape[0] == 64 && t.shape[1] == 32,
              "qkv [(4+2+2)*8, 32]");
        CHECK(llm_model_tensor(m, "transformer.layers.0.attention.qkv.weights_scaling_factor",
                               &t) == 0,
              "a non-canonical tensor is returned unchecked");
        CHECK(llm_model_tensor(m, "transformer.layers.5.mlp.fc.weight", &t) == LLM_ENOTFOUND &&
                  strstr(llm_errmsg(), "transformer.layers.5.mlp.fc.weight"),
              "missing tensor named");
        llm_model_close(m);
        printf("ok: model opened from a file: description, defaults, tokenizer, tensors\n");
    }

    CHECK(llm_model_open(&m, bad) == 0, "open bad");
    if (m) {
        CHECK(llm_model_tensor(m, "transformer.layers.1.mlp.proj.weight", &t) == LLM_ESHAPE,
              "wrong shape refused");
        CHECK(strstr(llm_errmsg(), "[31, 48], expected [32, 48]") != NULL,
              "message gives both shapes: %s", llm_errmsg());
        printf("ok: %s\n", llm_errmsg());
        llm_model_close(m);
    }
    CHECK(llm_model_open(&m, rank) == 0, "open rank");
    if (m) {
        /* world_size 2 alone: two tensor-parallel ranks, this one rank 0 */
        CHECK(m->desc.intermediate == 24 && m->desc.part.tp == 2,
              "the rank's description is its part: intermediate %lld",
              (long long)m->desc.intermediate);
        CHECK(llm_model_tensor(m, "transformer.layers.1.mlp.proj.weight", &t) == LLM_ESHAPE &&
                  strstr(llm_errmsg(), "expected [32, 24]"),
              "one rank of a sharded model: its slices are checked against its part: %s",
              llm_errmsg());
        llm_model_close(m);
    }

    /* standard input through a pipe */
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        int fd = open(path, O_RDONLY);
        char buf[65536];
        ssize_t r;
        while ((r = read(fd, buf, sizeof(buf))) > 0)
            if (write(fds[1], buf, (size_t)r) != r) _exit(1);
        _exit(0);
    }
    close(fds[1]);
    int saved = dup(0);
    dup2(fds[0], 0);
    close(fds[0]);
    CHECK(llm_model_open(&m, "-") == 0, "open stdin");
    dup2(saved, 0);
    close(saved);
    waitpid(pid, NULL, 0);
    if (m) {
        CHECK(llm_model_tensor(m, "transformer.ln_f.weight", &t) == 0 && t.shape[0] == 32 &&
                  ((const float *)t.data)[0] > 0,
              "tensor from a piped artifact");
        llm_model_close(m);
        printf("ok: model read from a pipe on standard input\n");
    }

    /* a model without an artifact: tensors from a callback, still shape-checked */
    m = calloc(1, sizeof(*m));
    m->desc = d;
    int rows = 32;
    m->get_tensor = fake_tensor;
    m->get_tensor_ctx = &rows;
    CHECK(llm_model_tensor(m, "transformer.ln_f.weight", &t) == 0, "callback tensor");
    rows = 31;
    CHECK(llm_model_tensor(m, "transformer.ln_f.weight", &t) == LLM_ESHAPE,
          "callback tensor shape checked");
    CHECK(llm_model_tensor(m, "lm_head.weight", &t) == LLM_ENOTFOUND, "callback missing");
    free(m);
    printf("ok: in-memory tensor source\n");

    /* one changed byte in one tensor: refused at open, naming the file and
     * the tensor; LLM_MODEL_NO_VERIFY opens it */
    char corrupt[256];
    snprintf(corrupt, sizeof(corrupt), "%s/corrupt.llm", dir);
    char *buf = NULL;
    size_t len = 0;
    struct llm_artifact *a = NULL;
    CHECK(llm_read_file(path, &buf, &len, 0) == 0, "read %s", path);
    CHECK(buf && llm_ar_open_mem(&a, buf, len, "mem", 0) == 0 &&
              llm_ar_find(a, "transformer.layers.1.mlp.proj.weight", &t) == 0,
          "find the tensor");
    if (a && buf) {
        size_t at = (size_t)((const char *)t.data - buf) + 100;
        llm_ar_close(a);
        buf[at] ^= 0x01;
        FILE *fp = fopen(corrupt, "wb");
        CHECK(fp && fwrite(buf, 1, len, fp) == len && fclose(fp) == 0, "write %s", corrupt);
        m = NULL;
        int rc = llm_model_open(&m, corrupt);
        CHECK(rc == LLM_ECHECKSUM && m == NULL &&
                  strstr(llm_errmsg(), "corrupt.llm': tensor 'transformer.layers.1.mlp.proj."
                                       "weight' checksum mismatch"),
              "corrupt tensor refused at open: %d", rc);
        printf("ok: %s\n", llm_errmsg());
        CHECK(llm_model_open_flags(&m, corrupt, LLM_MODEL_NO_VERIFY) == 0, "open unverified");
        if (m) {
            CHECK(llm_model_tensor(m, "transformer.layers.1.mlp.proj.weight", &t) == 0,
                  "unverified tensor readable");
            llm_model_close(m);
        }
        unlink(corrupt);
    }
    free(buf);

    CHECK(llm_model_open(&m, "/nonexistent/x.llm") < 0 && m == NULL, "missing file");
    unlink(path);
    unlink(bad);
    unlink(rank);
    rmdir(dir);
    llm_desc_free(&d);
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
