/* test_engine_gpu.c - engines on a GPU (suite gpu; exit 77 without one):
 *   1. a build for the present GPU measures every product (a choice, a time
 *      and at least one candidate each) and records the cuBLASLt version;
 *   2. the CUDA backend refuses an engine built for another architecture
 *      with the rebuild message, before uploading anything;
 *   3. it takes the engine's limits as its defaults (block size, tokens and
 *      sequences per step, context);
 *   4. the engine's logits (fused gate/up used as stored, measured
 *      algorithms, decode steps through the engine's CUDA graph sizes) agree
 *      with the plain artifact's on the same GPU and with the CPU backend
 *      running the same engine.
 */
#include <dirent.h>
#include <math.h>
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

/* Build in -> out for (maj, min), measuring on device 0 when measure. */
static int build(const char *in, const char *out, int maj, int min, int measure,
                 struct llm_ea_info *keep)
{
    struct llm_ea_builder *b = NULL;
    struct llm_ea_info e;
    llm_ea_info_init(&e);
    int rc = llm_ea_build_open(&b, in);
    if (!rc) {
        const struct llm_model_desc *d = llm_ea_build_desc(b);
        e.compute_dtype = LLM_DTYPE_BF16;
        llm_ea_limits_default(d, e.compute_dtype, &e.lim);
        e.lim.max_tokens = 96;
        e.lim.max_batch = 12;
        e.lim.max_seq_len = 100;
        e.lim.block_size = 16;
        e.lim.n_graph = 3;
        e.lim.graph_sizes[0] = 1;
        e.lim.graph_sizes[1] = 2;
        e.lim.graph_sizes[2] = 4;
        e.cc_major = maj;
        e.cc_minor = min;
        e.gemm_workspace = 32u << 20;
        rc = llm_ea_plan_gemms(d, e.compute_dtype, &e.lim, &e.gemm, &e.n_gemm);
        if (!rc && measure) {
            rc = llm_cuda_gemm_tune(0, e.compute_dtype, e.gemm, e.n_gemm, e.gemm_workspace,
                                    &e.cublaslt_version);
            e.gemm_measured = !rc;
        }
    }
    json_t *prov = json_pack("{s:s, s:s, s:s, s:[s]}", "tool", "llm-build", "version", "test",
                             "commit", "none", "argv", "llm-build");
    if (!rc) rc = llm_ea_build_run(b, out, &e, prov, NULL);
    json_decref(prov);
    if (keep && !rc) {
        *keep = e;
        e.gemm = NULL;
    }
    llm_ea_info_free(&e);
    llm_ea_build_close(b);
    return rc;
}

static double nmse(const float *a, const float *ref, size_t n, size_t *argmax_diff, int64_t V)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (double)(a[i] - ref[i]) * (a[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    *argmax_diff = 0;
    for (size_t r = 0; r < n / (size_t)V; r++) {
        int64_t ia = 0, ib = 0;
        for (int64_t v = 1; v < V; v++) {
            if (a[r * V + v] > a[r * V + ia]) ia = v;
            if (ref[r * V + v] > ref[r * V + ib]) ib = v;
        }
        *argmax_diff += ia != ib;
    }
    return den > 0 ? num / den : num;
}

int main(void)
{
    int maj = 0, min = 0;
    char name[128];
    if (llm_cuda_device_query(0, &maj, &min, name, sizeof name)) {
        printf("skip: %s\n", llm_errmsg());
        return 77;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/test-engine-gpu-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) return 1;
    struct llm_model_desc d;
    CHECK(!ea_desc(ea_config_biased, &d, 1), "desc");
    struct ea_write w = {.dtype = LLM_DTYPE_F32, .seed = 11};
    CHECK(!ea_write_model(pathf("m.llm"), &d, &w), "write");

    /* 1. measured build */
    struct llm_ea_info e;
    llm_ea_info_init(&e);
    int rc = build(pathf("m.llm"), pathf("m.engine"), maj, min, 1, &e);
    CHECK(!rc && e.gemm_measured && e.cublaslt_version > 0, "measured build: rc %d", rc);
    int all = 1;
    for (int i = 0; i < e.n_gemm; i++)
        all &= e.gemm[i].measured && e.gemm[i].candidates > 0 && e.gemm[i].time_us > 0;
    CHECK(all, "every product measured");
    printf("build for sm_%d%d (%s): %d products measured\n", maj, min, name, e.n_gemm);
    llm_ea_info_free(&e);

    /* 2. another architecture */
    int omaj = maj == 9 ? 8 : 9;
    CHECK(!build(pathf("m.llm"), pathf("other.engine"), omaj, 0, 0, NULL), "build other");
    struct llm_model *mo = NULL, *me = NULL, *ma = NULL;
    struct llm_backend *bo = NULL, *be = NULL, *ba = NULL, *bc = NULL;
    char want[320];
    snprintf(want, sizeof want,
             "built for sm_%d0, this GPU is sm_%d%d (%s); rebuild it with "
             "llm-build",
             omaj, maj, min, name);
    rc = llm_model_open(&mo, pathf("other.engine"));
    if (!rc) rc = llm_backend_cuda_create(&bo, mo, NULL);
    CHECK(rc == LLM_EINVAL && !bo && strstr(llm_errmsg(), want), "wrong arch: rc %d", rc);
    printf("wrong arch: %s\n", llm_errmsg());
    rc = llm_backend_create(&bo, "auto", mo, NULL);
    CHECK(rc == LLM_EINVAL && !bo, "auto does not fall back to the cpu for a wrong-arch engine");
    llm_model_close(mo);

    /* 3. limits as defaults */
    struct llm_backend_opts o;
    llm_backend_opts_init(&o);
    o.block_size = 0;
    o.kv_bytes = 64u << 20;
    rc = llm_model_open(&me, pathf("m.engine"));
    if (!rc) rc = llm_backend_cuda_create(&be, me, &o);
    CHECK(!rc, "engine on the GPU: rc %d", rc);
    if (!rc)
        CHECK(be->block_size == 16 && be->max_batch_tokens == 96 && be->max_seqs == 12 &&
                  be->max_seq_len == 100,
              "limits: block %d, tokens %d, seqs %d, context %d", be->block_size,
              be->max_batch_tokens, be->max_seqs, be->max_seq_len);

    /* 4. the same logits as the artifact (bf16 on the GPU) and as the CPU */
    llm_backend_opts_init(&o);
    o.compute_dtype = LLM_DTYPE_BF16;
    o.kv_bytes = 64u << 20;
    o.block_size = 16;
    if (!rc) rc = llm_model_open(&ma, pathf("m.llm"));
    if (!rc) rc = llm_backend_cuda_create(&ba, ma, &o);
    struct llm_backend_opts oc;
    llm_backend_opts_init(&oc);
    oc.n_threads = 2;
    oc.block_size = 16;
    oc.max_seqs = 4;
    oc.max_seq_len = 100;
    if (!rc) rc = llm_backend_cpu_create(&bc, me, &oc);
    CHECK(!rc, "backends: rc %d", rc);
    if (!rc) {
        int n = 20;
        size_t cnt = (size_t)(n + 2) * (size_t)be->vocab, am1 = 0, am2 = 0;
        float *le = calloc(cnt, 4), *la = calloc(cnt, 4), *lc = calloc(cnt, 4);
        int r1 = ea_forward(be, n, le), r2 = ea_forward(ba, n, la), r3 = ea_forward(bc, n, lc);
        CHECK(!r1 && !r2 && !r3, "forward: %d %d %d", r1, r2, r3);
        double e1 = nmse(le, la, cnt, &am1, be->vocab), e2 = nmse(le, lc, cnt, &am2, be->vocab);
        CHECK(e1 < 1e-4 && am1 <= 1, "engine vs artifact on the GPU: nmse %.3g, %zu argmax", e1,
              am1);
        CHECK(e2 < 1e-3 && am2 <= 2, "engine on the GPU vs the CPU: nmse %.3g, %zu argmax", e2,
              am2);
        printf("logits, %zu values: engine vs artifact nmse %.3g (%zu argmax differ), vs cpu "
               "%.3g (%zu)\n",
               cnt, e1, am1, e2, am2);
        free(le);
        free(la);
        free(lc);
    }
    llm_backend_destroy(be);
    llm_backend_destroy(ba);
    llm_backend_destroy(bc);
    llm_model_close(me);
    llm_model_close(ma);
    llm_desc_free(&d);
    DIR *dd = opendir(dir);
    struct dirent *ent;
    while (dd && (ent = readdir(dd)))
        if (strcmp(ent->d_name, ".") && strcmp(ent->d_name, "..")) unlink(pathf(ent->d_name));
    if (dd) closedir(dd);
    rmdir(dir);
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
