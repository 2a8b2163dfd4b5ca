/* test_engine_artifact.c - the engine artifact (llm/engine_artifact.h) on a
 * machine with or without a GPU:
 *   1. architecture names, the arch check and its exact rebuild message;
 *   2. the "engine" member: JSON round trip (measured choices included) and
 *      malformed members refused naming the field;
 *   3. limits and the GEMM plan (shapes match the CUDA backend's products,
 *      the lookup rule);
 *   4. builds from artifacts written here (f32 -> f32/bf16/f16, bf16 -> bf16,
 *      biased and tied models, gate before fc): every tensor equals its
 *      source converted, the fused tensor bit for bit; the same input gives
 *      the same bytes;
 *   5. the CPU backend runs an engine and gives exactly the logits of the
 *      artifact in the same dtype (built from that artifact: an engine made
 *      from f32 keeps lm_head.bias in f32, where a bf16 artifact rounded it);
 *   6. bad inputs fail with one message and leave no file behind;
 *   7. the CUDA side fails cleanly without a GPU (and, with one, refuses an
 *      engine of another architecture with the rebuild message).
 */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ea_test.h"

static char dir[256];

static char *pathf(const char *name)
{
    static char b[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(b[k], sizeof b[k], "%s/%s", dir, name);
    return b[k];
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Files in the test folder (temporary outputs would show up here). */
static int count_files(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static int same_file(const char *a, const char *b)
{
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    FILE *f = fopen(a, "rb"), *g = fopen(b, "rb");
    int same = 0;
    if (f && g) {
        fseek(f, 0, SEEK_END);
        fseek(g, 0, SEEK_END);
        nx = (size_t)ftell(f);
        ny = (size_t)ftell(g);
        rewind(f);
        rewind(g);
        x = malloc(nx + 1);
        y = malloc(ny + 1);
        same =
            nx == ny && fread(x, 1, nx, f) == nx && fread(y, 1, ny, g) == ny && !memcmp(x, y, nx);
    }
    if (f) fclose(f);
    if (g) fclose(g);
    free(x);
    free(y);
    return same;
}

/* ---- 1. architectures -------------------------------------------------------- */

static void test_arch(void)
{
    struct {
        const char *s;
        int ok, maj, min;
        char sfx;
    } cases[] = {
        {"sm_90", 1, 9, 0, 0},      {"sm_90a", 1, 9, 0, 'a'}, {"sm_80", 1, 8, 0, 0},
        {"sm_86", 1, 8, 6, 0},      {"sm_100", 1, 10, 0, 0},  {"sm_120f", 1, 12, 0, 'f'},
        {"sm_100a", 1, 10, 0, 'a'}, {"9.0", 1, 9, 0, 0},      {"12.1", 1, 12, 1, 0},
        {"sm_9", 0, 0, 0, 0},       {"sm_", 0, 0, 0, 0},      {"sm_90b", 0, 0, 0, 0},
        {"sm_90aa", 0, 0, 0, 0},    {"90", 0, 0, 0, 0},       {"", 0, 0, 0, 0},
        {"sm_1000", 0, 0, 0, 0},    {"9.", 0, 0, 0, 0},       {"x9.0", 0, 0, 0, 0},
        {"sm_05", 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int maj = -1, min = -1;
        char sfx = 'x', back[16];
        int rc = llm_ea_parse_arch(cases[i].s, &maj, &min, &sfx);
        if (cases[i].ok) {
            CHECK(!rc && maj == cases[i].maj && min == cases[i].min && sfx == cases[i].sfx,
                  "parse '%s': rc %d, %d.%d suffix %d", cases[i].s, rc, maj, min, sfx);
            /* sm_ names come back as they were given, suffix included */
            llm_ea_arch_name(maj, min, sfx, back, sizeof back);
            CHECK(strncmp(cases[i].s, "sm_", 3) || !strcmp(back, cases[i].s),
                  "'%s' named back as '%s'", cases[i].s, back);
        } else {
            CHECK(rc == LLM_EINVAL && strstr(llm_errmsg(), "architecture"),
                  "parse '%s' should fail: rc %d", cases[i].s, rc);
        }
    }
    char b[16];
    llm_ea_arch_name(10, 0, 0, b, sizeof b);
    CHECK(!strcmp(b, "sm_100"), "arch name %s", b);

    struct llm_ea_info e;
    llm_ea_info_init(&e);
    e.cc_major = 8;
    e.cc_minor = 0;
    CHECK(llm_ea_check_arch(&e, "x.engine", 8, 0, "NVIDIA A100") == 0, "same arch accepted");
    int rc = llm_ea_check_arch(&e, "x.engine", 9, 0, "NVIDIA H100 80GB HBM3");
    CHECK(rc == LLM_EINVAL, "other arch refused with LLM_EINVAL (so 'auto' does not fall back)");
    CHECK(!strcmp(llm_errmsg(), "'x.engine': built for sm_80, this GPU is sm_90 (NVIDIA H100 "
                                "80GB HBM3); rebuild it with llm-build"),
          "rebuild message: %s", llm_errmsg());
    rc = llm_ea_check_arch(&e, "x.engine", 8, 6, NULL);
    CHECK(rc == LLM_EINVAL && !strcmp(llm_errmsg(), "'x.engine': built for sm_80, this GPU is "
                                                    "sm_86; rebuild it with llm-build"),
          "minor version differs: %s", llm_errmsg());
    printf("arch: %zu names parsed, arch check and its message\n", sizeof cases / sizeof cases[0]);
}

/* ---- 2. the engine member ---------------------------------------------------- */

static void test_json(void)
{
    struct llm_model_desc d;
    CHECK(!ea_desc(ea_config_biased, &d, 1), "desc");
    struct llm_ea_info e, r;
    llm_ea_info_init(&e);
    e.cc_major = 9;
    e.arch_suffix = 'a';
    e.compute_dtype = LLM_DTYPE_F16;
    snprintf(e.device, sizeof e.device, "NVIDIA H100 80GB HBM3");
    llm_ea_limits_default(&d, LLM_DTYPE_F16, &e.lim);
    e.lim.n_graph = 3;
    e.lim.graph_sizes[0] = 1;
    e.lim.graph_sizes[1] = 8;
    e.lim.graph_sizes[2] = 64;
    e.fused_gate = 1;
    CHECK(!llm_ea_plan_gemms(&d, e.compute_dtype, &e.lim, &e.gemm, &e.n_gemm), "plan");
    for (int i = 0; i < e.n_gemm; i += 2) { /* every other one measured */
        e.gemm[i].measured = 1;
        for (int k = 0; k < 8; k++)
            e.gemm[i].algo[k] = 0x0123456789abcdefull * (uint64_t)(i + k);
        e.gemm[i].time_us = 1.5 + i;
        e.gemm[i].candidates = 8;
    }
    e.cublaslt_version = 130100;
    e.gemm_workspace = 32u << 20;
    json_t *j = llm_ea_info_to_json(&e);
    json_t *meta = json_pack("{s:o}", "engine", j);
    CHECK(meta && llm_ea_present(meta), "to_json");
    int rc = llm_ea_info_from_meta(meta, "x.engine", &r);
    CHECK(!rc, "from_meta: rc %d", rc);
    if (!rc) {
        CHECK(r.cc_major == 9 && r.cc_minor == 0 && r.arch_suffix == 'a' &&
                  r.compute_dtype == LLM_DTYPE_F16 && !strcmp(r.device, e.device) &&
                  r.fused_gate == 1,
              "target (sm_90a) and dtype back");
        CHECK(!strcmp(json_string_value(json_object_get(json_object_get(j, "target"), "arch")),
                      "sm_90a"),
              "target.arch is 'sm_90a'");
        CHECK(!memcmp(&r.lim, &e.lim, sizeof r.lim), "limits back");
        CHECK(r.cublaslt_version == 130100 && r.gemm_workspace == (32u << 20) && !r.gemm_measured &&
                  r.n_gemm == e.n_gemm,
              "gemm header back (%d choices)", r.n_gemm);
        int same = 1;
        for (int i = 0; i < r.n_gemm && same; i++) {
            const struct llm_gemm_choice *a = &e.gemm[i], *b = &r.gemm[i];
            same = a->op == b->op && a->m == b->m && a->n == b->n && a->k == b->k &&
                   a->ldx == b->ldx && a->ldy == b->ldy && a->out_dtype == b->out_dtype &&
                   a->bias == b->bias && a->accumulate == b->accumulate &&
                   a->measured == b->measured && a->candidates == b->candidates &&
                   (!a->measured ||
                    (!memcmp(a->algo, b->algo, sizeof a->algo) && a->time_us == b->time_us));
            CHECK(same, "choice %d differs after the round trip", i);
        }
        llm_ea_info_free(&r);
    }
    /* malformed members, each refused naming the field */
    struct {
        const char *path; /* member to change, "a.b" */
        json_t *value;
        int code;
        const char *want;
    } bad[] = {
        {"version", json_integer(2), LLM_EVERSION, "newer than this reader"},
        {"version", json_string("1"), LLM_EFORMAT, "'version'"},
        {"target.arch", json_string("ampere"), LLM_EFORMAT, "'target.arch'"},
        {"compute_dtype", json_string("f8e4m3"), LLM_EFORMAT, "'compute_dtype'"},
        {"limits.max_batch", json_integer(0), LLM_EFORMAT, "'limits.max_batch'"},
        {"limits.block_size", json_integer(5000), LLM_EFORMAT, "'limits.block_size'"},
        {"limits.kv_dtype", json_string("x"), LLM_EFORMAT, "'limits.kv_dtype'"},
        {"limits.graph_batch_sizes", json_pack("[i, i]", 8, 4), LLM_EFORMAT, "graph_batch_sizes"},
        {"limits.graph_batch_sizes", json_pack("[i]", 100000), LLM_EFORMAT, "graph_batch_sizes"},
        {"weights.fused", json_null(), LLM_EFORMAT, "'weights.fused'"},
        {"gemm.choices", json_object(), LLM_EFORMAT, "'gemm.choices'"},
        {"gemm.workspace", json_integer(-1), LLM_EFORMAT, "'gemm.workspace'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *m = json_deep_copy(meta), *o = json_object_get(m, "engine");
        char key[64];
        snprintf(key, sizeof key, "%s", bad[i].path);
        char *dot = strchr(key, '.');
        if (dot) {
            *dot = 0;
            o = json_object_get(o, key);
        }
        json_object_set_new(o, dot ? dot + 1 : key, bad[i].value);
        rc = llm_ea_info_from_meta(m, "x.engine", &r);
        CHECK(rc == bad[i].code && strstr(llm_errmsg(), bad[i].want) &&
                  strstr(llm_errmsg(), "'x.engine'"),
              "malformed %s: rc %d", bad[i].path, rc);
        if (!rc) llm_ea_info_free(&r);
        json_decref(m);
    }
    /* a measured choice with a broken algorithm, an unknown op */
    const char *mut[][2] = {{"algo", "0123"}, {"op", "attention"}, {"source", "guess"}};
    for (size_t i = 0; i < 3; i++) {
        json_t *m = json_deep_copy(meta);
        json_t *c0 = json_array_get(
            json_object_get(json_object_get(json_object_get(m, "engine"), "gemm"), "choices"), 0);
        json_object_set_new(c0, mut[i][0], json_string(mut[i][1]));
        rc = llm_ea_info_from_meta(m, "x.engine", &r);
        CHECK(rc == LLM_EFORMAT && strstr(llm_errmsg(), "gemm.choices[0]"), "choice %s '%s': rc %d",
              mut[i][0], mut[i][1], rc);
        if (!rc) llm_ea_info_free(&r);
        json_decref(m);
    }
    json_t *none = json_object();
    CHECK(!llm_ea_present(none) && llm_ea_info_from_meta(none, "a.llm", &r) == LLM_ENOTFOUND,
          "an artifact is not an engine");
    json_decref(none);
    json_decref(meta);
    llm_ea_info_free(&e);
    llm_desc_free(&d);
    printf("engine member: round trip and %zu malformed members refused\n",
           sizeof bad / sizeof bad[0] + 3);
}

/* ---- 3. limits and GEMM plan ----------------------------------------------------- */

static void test_limits_plan(void)
{
    struct llm_model_desc d;
    CHECK(!ea_desc(ea_config_biased, &d, 1), "desc");
    struct llm_ea_limits l, x;
    llm_ea_limits_default(&d, LLM_DTYPE_BF16, &l);
    CHECK(l.max_batch == 256 && l.max_tokens == 8192 && l.max_seq_len == 128 &&
              l.block_size == 32 && l.kv_dtype == LLM_DTYPE_BF16 && l.n_graph == 0,
          "defaults");
    CHECK(!llm_ea_limits_check(&d, LLM_DTYPE_BF16, &l), "defaults pass");
    x = l;
    x.max_batch = 9000;
    CHECK(llm_ea_limits_check(&d, LLM_DTYPE_BF16, &x) == LLM_EINVAL &&
              strstr(llm_errmsg(), "--max-batch"),
          "max_batch > max_tokens");
    x = l;
    x.kv_dtype = LLM_DTYPE_F16;
    CHECK(llm_ea_limits_check(&d, LLM_DTYPE_BF16, &x) == LLM_EUNSUPPORTED &&
              strstr(llm_errmsg(), "--kv-dtype"),
          "kv dtype other than the compute dtype");
    x = l;
    x.n_graph = 2;
    x.graph_sizes[0] = 4;
    x.graph_sizes[1] = 4;
    CHECK(llm_ea_limits_check(&d, LLM_DTYPE_BF16, &x) == LLM_EINVAL &&
              strstr(llm_errmsg(), "--graph-batch-sizes"),
          "graph sizes not increasing");
    x = l;
    CHECK(llm_ea_limits_check(&d, LLM_DTYPE_F8E4M3, &x) == LLM_EINVAL, "fp8 compute refused");
    struct llm_model_desc odd = d;
    odd.intermediate = 44;
    CHECK(llm_ea_limits_check(&odd, LLM_DTYPE_BF16, &l) == LLM_EUNSUPPORTED &&
              strstr(llm_errmsg(), "multiples of 8"),
          "intermediate not a multiple of 8");
    struct llm_model_desc dyn = d;
    dyn.rope.scaling = LLM_ROPE_SCALING_DYNAMIC;
    x = l;
    x.max_seq_len = 256;
    CHECK(llm_ea_limits_check(&dyn, LLM_DTYPE_BF16, &x) == LLM_EINVAL &&
              strstr(llm_errmsg(), "--max-seq-len"),
          "dynamic rope past max positions");

    /* the plan: the CUDA backend's five products at each row count */
    l.max_tokens = 100;
    l.max_batch = 20;
    struct llm_gemm_choice *c;
    int n;
    CHECK(!llm_ea_plan_gemms(&d, LLM_DTYPE_BF16, &l, &c, &n), "plan");
    /* layer products: m in 1, 4, 16, 20, 64, 100; lm_head: 1, 4, 16, 20 */
    CHECK(n == 4 * 6 + 4, "%d choices", n);
    int H = 32, I = 40, V = 64, qkv = (4 + 2 * 2) * 8;
    int seen[LLM_GEMM_OP_COUNT] = {0};
    for (int i = 0; i < n; i++) {
        const struct llm_gemm_choice *g = &c[i];
        seen[g->op]++;
        int ok = 1;
        switch (g->op) {
        case LLM_GEMM_QKV:
            ok = g->n == qkv && g->k == H && g->ldx == H && g->ldy == qkv && g->bias &&
                 !g->accumulate && g->out_dtype == LLM_DTYPE_BF16;
            break;
        case LLM_GEMM_DENSE:
            ok = g->n == H && g->k == 32 && g->ldx == 32 && g->ldy == H && g->bias && g->accumulate;
            break;
        case LLM_GEMM_FC:
            ok = g->n == 2 * I && g->k == H && g->ldx == H && g->ldy == 2 * I && g->bias &&
                 !g->accumulate;
            break;
        case LLM_GEMM_PROJ:
            ok = g->n == H && g->k == I && g->ldx == 2 * I && g->ldy == H && g->accumulate;
            break;
        case LLM_GEMM_LM_HEAD:
            ok = g->n == V && g->k == H && g->ldy == V && g->out_dtype == LLM_DTYPE_F32 &&
                 g->bias && g->m <= 20;
            break;
        }
        CHECK(ok && !g->measured, "choice %d (%s m %d) has the wrong shape", i,
              llm_gemm_op_name(g->op), g->m);
    }
    CHECK(seen[0] == 6 && seen[4] == 4, "row counts per op");
    const struct llm_gemm_choice *f;
    f = llm_ea_gemm_find(c, n, 5, 2 * I, H, H, 2 * I, LLM_DTYPE_BF16, 1, 0);
    CHECK(f && f->op == LLM_GEMM_FC && f->m == 16, "m 5 uses the m 16 choice");
    f = llm_ea_gemm_find(c, n, 64, 2 * I, H, H, 2 * I, LLM_DTYPE_BF16, 1, 0);
    CHECK(f && f->m == 64, "exact m");
    f = llm_ea_gemm_find(c, n, 5000, 2 * I, H, H, 2 * I, LLM_DTYPE_BF16, 1, 0);
    CHECK(f && f->m == 100, "past the largest m: the largest");
    f = llm_ea_gemm_find(c, n, 5, 2 * I, H, H, 2 * I, LLM_DTYPE_BF16, 0, 0);
    CHECK(!f, "no bias: another product");
    free(c);
    llm_desc_free(&d);
    printf("limits and GEMM plan: %d products\n", n);
}

/* ---- 4/5. builds and the CPU backend ---------------------------------------------- */

static void cpu_same(const char *a, const char *b, const char *label)
{
    struct llm_model *ma = NULL, *mb = NULL;
    struct llm_backend *ba = NULL, *bb = NULL;
    struct llm_backend_opts o;
    llm_backend_opts_init(&o);
    o.n_threads = 1;
    o.max_seqs = 4;
    o.max_seq_len = 128;
    int rc = llm_model_open(&ma, a);
    if (!rc) rc = llm_model_open(&mb, b);
    if (!rc) rc = llm_backend_cpu_create(&ba, ma, &o);
    if (!rc) rc = llm_backend_cpu_create(&bb, mb, &o);
    CHECK(!rc, "%s: cpu backends: rc %d", label, rc);
    if (!rc) {
        int n = 9;
        size_t cnt = (size_t)(n + 2) * (size_t)ba->vocab;
        float *la = calloc(cnt, sizeof(float)), *lb = calloc(cnt, sizeof(float));
        int ra = ea_forward(ba, n, la), rb = ea_forward(bb, n, lb);
        CHECK(!ra && !rb, "%s: forward %d %d", label, ra, rb);
        size_t diff = 0;
        for (size_t i = 0; i < cnt; i++)
            diff += memcmp(&la[i], &lb[i], sizeof(float)) != 0;
        CHECK(diff == 0 && !ra, "%s: %zu of %zu logits differ", label, diff, cnt);
        printf("cpu %s: %zu logits identical (prefill %d + 2 decodes)\n", label, cnt, n);
        free(la);
        free(lb);
    }
    llm_backend_destroy(ba);
    llm_backend_destroy(bb);
    llm_model_close(ma);
    llm_model_close(mb);
}

static void test_builds(void)
{
    struct llm_model_desc d, t, g;
    CHECK(!ea_desc(ea_config_biased, &d, 1), "biased desc");
    CHECK(!ea_desc(ea_config_tied, &t, 0), "tied desc");
    CHECK(!ea_desc(ea_config_plain, &g, 0) && !g.gated_mlp, "plain desc");
    struct ea_write w32 = {.dtype = LLM_DTYPE_F32, .seed = 7};
    struct ea_write w16 = {.dtype = LLM_DTYPE_BF16, .seed = 7};
    struct ea_write wh = {.dtype = LLM_DTYPE_F16, .seed = 7};
    CHECK(!ea_write_model(pathf("b32.llm"), &d, &w32), "write b32");
    CHECK(!ea_write_model(pathf("b16.llm"), &d, &w16), "write b16");
    CHECK(!ea_write_model(pathf("bh.llm"), &d, &wh), "write bh");
    CHECK(!ea_write_model(pathf("t16.llm"), &t, &w16), "write t16");
    CHECK(!ea_write_model(pathf("g32.llm"), &g, &w32), "write g32");
    struct {
        const char *src, *out;
        int dt, fused; /* fused tensors expected: weight (+ bias) per layer */
    } b[] = {
        {"b32.llm", "b32-f32.engine", LLM_DTYPE_F32, 6},
        {"b32.llm", "b32-bf16.engine", LLM_DTYPE_BF16, 6},
        {"b32.llm", "b32-f16.engine", LLM_DTYPE_F16, 6},
        {"b16.llm", "b16-bf16.engine", LLM_DTYPE_BF16, 6},
        {"bh.llm", "bh-f16.engine", LLM_DTYPE_F16, 6},
        {"t16.llm", "t16-f16.engine", LLM_DTYPE_F16, 2},
        {"t16.llm", "t16-bf16.engine", LLM_DTYPE_BF16, 2},
        {"g32.llm", "g32-f16.engine", LLM_DTYPE_F16, 0},
    };
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
        int rc = ea_build(pathf(b[i].src), pathf(b[i].out), b[i].dt, "sm_90");
        CHECK(!rc, "build %s -> %s: rc %d", b[i].src, b[i].out, rc);
        if (rc) continue;
        int nf = 0, bad = ea_compare(pathf(b[i].src), pathf(b[i].out), &nf);
        CHECK(!bad && nf == b[i].fused, "%s: %d tensors differ, %d fused (want %d)", b[i].out, bad,
              nf, b[i].fused);
        printf("build %s -> %s (%s): every tensor equals its source converted, %d fused bit for "
               "bit\n",
               b[i].src, b[i].out, llm_dtype_name(b[i].dt), nf);
    }
    /* the engine's own description says its dtype and the chain grows by one */
    struct llm_model *m = NULL;
    if (!llm_model_open(&m, pathf("b32-bf16.engine"))) {
        const json_t *chain = json_object_get(m->meta, "provenance");
        const json_t *last = json_array_get(chain, json_array_size(chain) - 1);
        const json_t *in0 = json_array_get(json_object_get(last, "inputs"), 0);
        CHECK(m->desc.dtype == LLM_DTYPE_BF16, "model.dtype is the compute dtype");
        CHECK(json_array_size(chain) == 2 &&
                  !strcmp(json_string_value(json_object_get(last, "tool")), "llm-build") &&
                  json_integer_value(json_object_get(in0, "size")) > 0 &&
                  strlen(json_string_value(json_object_get(in0, "xxh3")) ?: "") == 16,
              "provenance: input chain + llm-build with the input's size and hash");
        llm_model_close(m);
    } else {
        CHECK(0, "open the engine as a model");
    }
    /* deterministic */
    CHECK(!ea_build(pathf("b32.llm"), pathf("again.engine"), LLM_DTYPE_BF16, "sm_90") &&
              same_file(pathf("again.engine"), pathf("b32-bf16.engine")),
          "the same input and settings give the same bytes");
    /* the CPU backend: an engine answers as the artifact in the same dtype */
    cpu_same(pathf("b32.llm"), pathf("b32-f32.engine"), "f32 artifact vs f32 engine");
    cpu_same(pathf("b16.llm"), pathf("b16-bf16.engine"), "bf16 artifact vs bf16 engine");
    cpu_same(pathf("bh.llm"), pathf("bh-f16.engine"), "f16 artifact vs f16 engine");
    cpu_same(pathf("t16.llm"), pathf("t16-bf16.engine"), "tied bf16 artifact vs bf16 engine");
    /* nothing fused: the engine says so and keeps mlp.fc */
    struct llm_artifact *a = NULL;
    struct llm_ea_info gi;
    struct llm_tensor tt;
    if (!llm_ar_open(&a, pathf("g32-f16.engine"), 0) &&
        !llm_ea_info_from_meta(llm_ar_meta(a), "g32-f16.engine", &gi)) {
        CHECK(!gi.fused_gate && !llm_ar_find(a, "transformer.layers.1.mlp.fc.weight", &tt) &&
                  tt.dtype == LLM_DTYPE_F16 &&
                  !llm_ar_find(a, "transformer.position_embedding.weight", &tt),
              "plain MLP: no fc_gate, mlp.fc and positions kept");
        llm_ea_info_free(&gi);
    } else {
        CHECK(0, "open the plain engine");
    }
    llm_ar_close(a);
    llm_desc_free(&d);
    llm_desc_free(&t);
    llm_desc_free(&g);
}

/* ---- 6. bad inputs ------------------------------------------------------------------- */

static void bad_build(const char *label, const struct llm_model_desc *d, const struct ea_write *w,
                      int code, const char *want)
{
    int before;
    CHECK(!ea_write_model(pathf("bad.llm"), d, w), "%s: write", label);
    before = count_files();
    int rc = ea_build(pathf("bad.llm"), pathf("bad.engine"), LLM_DTYPE_BF16, "sm_90");
    CHECK(rc == code && strstr(llm_errmsg(), want) && strstr(llm_errmsg(), "bad.llm"),
          "%s: rc %d (want %d, '%s')", label, rc, code, want);
    CHECK(!exists(pathf("bad.engine")) && count_files() == before,
          "%s: nothing left behind (%d files, %d before)", label, count_files(), before);
    printf("bad input, %s: %s\n", label, llm_errmsg());
    unlink(pathf("bad.llm"));
}

static void test_bad(void)
{
    struct llm_model_desc d;
    CHECK(!ea_desc(ea_config_biased, &d, 1), "desc");
    struct ea_write w = {.dtype = LLM_DTYPE_F32, .seed = 3};
    w.skip = "transformer.layers.1.mlp.gate.weight";
    bad_build("gate missing", &d, &w, LLM_ENOTFOUND, "transformer.layers.1.mlp.gate.weight");
    w.skip = "transformer.ln_f.weight";
    bad_build("final norm missing", &d, &w, LLM_ENOTFOUND, "transformer.ln_f.weight");
    w.skip = NULL;
    w.short_rows = "transformer.layers.2.mlp.fc.weight";
    bad_build("fc misshapen", &d, &w, LLM_ESHAPE, "transformer.layers.2.mlp.fc.weight");
    w.short_rows = NULL;
    w.world_size = 2;
    bad_build("one rank of two", &d, &w, LLM_EUNSUPPORTED, "2-way");
    w.world_size = 0;
    w.engine_member = 1;
    bad_build("already an engine", &d, &w, LLM_EINVAL, "already an engine");
    w.engine_member = 0;

    /* a truncated input: refused by the reader, nothing written */
    CHECK(!ea_write_model(pathf("whole.llm"), &d, &w), "write");
    FILE *f = fopen(pathf("whole.llm"), "rb"), *g = fopen(pathf("cut.llm"), "wb");
    char buf[4096];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (g) fwrite(buf, 1, n / 2, g);
    if (f) fclose(f);
    if (g) fclose(g);
    int before = count_files();
    int rc = ea_build(pathf("cut.llm"), pathf("cut.engine"), LLM_DTYPE_BF16, "sm_90");
    CHECK(rc < 0 && strstr(llm_errmsg(), "cut.llm") && !exists(pathf("cut.engine")) &&
              count_files() == before,
          "truncated input: rc %d", rc);
    printf("bad input, truncated: %s\n", llm_errmsg());
    /* an unknown compute dtype or limits the model cannot take: nothing written */
    rc = ea_build(pathf("whole.llm"), pathf("x.engine"), LLM_DTYPE_I8, "sm_90");
    CHECK(rc == LLM_EINVAL && !exists(pathf("x.engine")), "i8 compute dtype refused");
    unlink(pathf("whole.llm"));
    unlink(pathf("cut.llm"));
    llm_desc_free(&d);
}

/* ---- 7. the CUDA side without (or with) a GPU -------------------------------------- */

static void test_cuda(void)
{
    int maj = 0, min = 0;
    char name[128] = "";
    int rc = llm_cuda_device_query(0, &maj, &min, name, sizeof name);
    struct llm_gemm_choice c = {.op = LLM_GEMM_QKV,
                                .m = 4,
                                .n = 64,
                                .k = 32,
                                .ldx = 32,
                                .ldy = 64,
                                .out_dtype = LLM_DTYPE_BF16};
    uint64_t ver = 0;
    if (rc) {
        CHECK(rc == LLM_EUNSUPPORTED && strstr(llm_errmsg(), "no CUDA device"),
              "device query without a GPU: rc %d", rc);
        rc = llm_cuda_gemm_tune(0, LLM_DTYPE_BF16, &c, 1, 32u << 20, &ver);
        CHECK(rc == LLM_EUNSUPPORTED && !c.measured, "gemm tuning without a GPU: rc %d", rc);
        printf("cuda without a GPU: device query and tuning fail cleanly (%s)\n", llm_errmsg());
    } else {
        rc = llm_cuda_gemm_tune(0, LLM_DTYPE_BF16, &c, 1, 32u << 20, &ver);
        CHECK(!rc && c.measured && c.candidates > 0 && c.time_us > 0 && ver > 0,
              "gemm tuning on %s: rc %d", name, rc);
        printf("cuda on %s (sm_%d%d): one product measured, %.1f us\n", name, maj, min, c.time_us);
    }
    /* an engine for an architecture no GPU has: the backend refuses it cleanly either way */
    struct llm_model *m = NULL;
    struct llm_backend *be = NULL;
    CHECK(!ea_build(pathf("b32.llm"), pathf("old.engine"), LLM_DTYPE_BF16, "sm_11"), "build");
    rc = llm_model_open(&m, pathf("old.engine"));
    if (!rc) rc = llm_backend_cuda_create(&be, m, NULL);
    if (maj)
        CHECK(rc == LLM_EINVAL && strstr(llm_errmsg(), "built for sm_11, this GPU is") &&
                  strstr(llm_errmsg(), "rebuild it with llm-build"),
              "wrong-arch engine on a GPU: rc %d", rc);
    else
        CHECK(rc == LLM_EUNSUPPORTED && !be, "cuda backend without a GPU: rc %d", rc);
    printf("cuda backend, engine for sm_11: %s\n", llm_errmsg());
    llm_backend_destroy(be);
    /* "auto" runs an engine on the CPU where there is no GPU */
    if (!maj && m) {
        struct llm_backend_opts o;
        llm_backend_opts_init(&o);
        o.n_threads = 1;
        o.max_seqs = 4;
        o.max_seq_len = 128;
        rc = llm_backend_create(&be, "auto", m, &o);
        CHECK(!rc && be && !strcmp(be->ops->name, "cpu"), "auto falls back to the cpu: rc %d", rc);
        llm_backend_destroy(be);
    }
    llm_model_close(m);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/test-engine-artifact-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_arch();
    test_json();
    test_limits_plan();
    test_builds();
    test_bad();
    test_cuda();
    /* clean up */
    DIR *dd = opendir(dir);
    struct dirent *e;
    while (dd && (e = readdir(dd)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(pathf(e->d_name));
    if (dd) closedir(dd);
    rmdir(dir);
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
