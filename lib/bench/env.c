/* env.c - the environment fingerprint of a benchmark result and the model
 * artifact's hash.
 *
 * Design choice: record what changes a figure and can be read cheaply and
 * without privileges: CPU model and cores, memory, kernel; when built with
 * CUDA the GPUs, the kernel driver, the CUDA driver and runtime, cuBLASLt
 * and NCCL versions (NCCL through dlopen, so that the library does not
 * have to link it); the project's version and commit.  The model is
 * identified by a hash over the checksums the artifact already stores for
 * every tensor, so fingerprinting a 16 GB model reads a few kilobytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <xxhash.h>

#include "llm/artifact.h"
#include "llm/bench.h"
#include "llm/err.h"
#include "llm_build_config.h"

#if defined(LLM_HAVE_CUDA) && LLM_HAVE_CUDA
#define BENCH_CUDA 1
#include <dlfcn.h>
#include <cuda_runtime_api.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <cublasLt.h>
#pragma GCC diagnostic pop
#else
#define BENCH_CUDA 0
#endif

void llm_bench_hex64(uint64_t h, char out[17])
{
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = 0;
    size_t a = 0;
    while (s[a] == ' ' || s[a] == '\t')
        a++;
    memmove(s, s + a, strlen(s + a) + 1);
}

static json_t *host_info(void)
{
    char model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            char *colon = strchr(line, ':');
            if (colon && !strncmp(line, "model name", 10)) {
                snprintf(model, sizeof model, "%s", colon + 1);
                trim(model);
                break;
            }
        }
        fclose(f);
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    struct utsname u;
    char os[256] = "unknown";
    if (uname(&u) == 0) snprintf(os, sizeof os, "%s %s %s", u.sysname, u.release, u.machine);
    /* load at the start: other work on the machine shows in the figures */
    double load[3] = {-1, -1, -1};
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (fscanf(lf, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
        fclose(lf);
    }
    return json_pack(
        "{s:s, s:I, s:I, s:s, s:o}", "cpu_model", model, "cpu_cores", (json_int_t)cores,
        "mem_bytes", (json_int_t)(pages > 0 && psz > 0 ? (long long)pages * psz : 0), "os", os,
        "loadavg", load[0] >= 0 ? json_pack("[f,f,f]", load[0], load[1], load[2]) : json_null());
}

#if BENCH_CUDA
static json_t *version_string(int v, int div)
{
    char s[32];
    snprintf(s, sizeof s, "%d.%d", v / div, (v % div) / 10);
    return json_string(s);
}

static json_t *nccl_version(void)
{
    void *h = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) return json_null();
    int (*get)(int *) = (int (*)(int *))dlsym(h, "ncclGetVersion");
    int v = 0;
    json_t *out = json_null();
    if (get && get(&v) == 0 && v > 0) {
        char s[32];
        if (v >= 10000) /* 2.9 and later: major*10000 + minor*100 + patch */
            snprintf(s, sizeof s, "%d.%d.%d", v / 10000, (v / 100) % 100, v % 100);
        else
            snprintf(s, sizeof s, "%d.%d.%d", v / 1000, (v / 100) % 10, v % 100);
        json_decref(out);
        out = json_string(s);
    }
    dlclose(h);
    return out;
}

static json_t *gpu_info(int device)
{
    json_t *g = json_object();
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) n = 0;
    json_object_set_new(g, "count", json_integer(n));
    json_t *names = json_array();
    for (int i = 0; i < n; i++) {
        struct cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
        json_array_append_new(names, json_string(p.name));
        if (i == device) {
            json_object_set_new(g, "name", json_string(p.name));
            json_object_set_new(g, "mem_bytes", json_integer((json_int_t)p.totalGlobalMem));
            char cc[16];
            snprintf(cc, sizeof cc, "%d.%d", p.major, p.minor);
            json_object_set_new(g, "compute_capability", json_string(cc));
            json_object_set_new(g, "sm_count", json_integer(p.multiProcessorCount));
        }
    }
    json_object_set_new(g, "devices", names);
    json_object_set_new(g, "device", json_integer(device));
    char drv[128] = "";
    FILE *f = fopen("/proc/driver/nvidia/version", "r");
    if (f) {
        char line[512];
        /* "NVRM version: NVIDIA UNIX [Open] Kernel Module [for x86_64]  580.95.05  Release
         * Build ...": the first word made of digits and dots, with a dot */
        if (fgets(line, sizeof line, f)) {
            char *sv;
            for (char *w = strtok_r(line, " \t\n", &sv); w; w = strtok_r(NULL, " \t\n", &sv))
                if (w[0] >= '0' && w[0] <= '9' && strchr(w, '.') &&
                    strspn(w, "0123456789.") == strlen(w)) {
                    snprintf(drv, sizeof drv, "%s", w);
                    break;
                }
        }
        fclose(f);
    }
    json_object_set_new(g, "driver", drv[0] ? json_string(drv) : json_null());
    int v = 0;
    json_object_set_new(g, "cuda_driver",
                        cudaDriverGetVersion(&v) == cudaSuccess && v ? version_string(v, 1000)
                                                                     : json_null());
    v = 0;
    json_object_set_new(g, "cuda_runtime",
                        cudaRuntimeGetVersion(&v) == cudaSuccess && v ? version_string(v, 1000)
                                                                      : json_null());
    size_t lt = cublasLtGetVersion();
    char s[32];
    snprintf(s, sizeof s, "%zu.%zu.%zu", lt / 10000, (lt / 100) % 100, lt % 100);
    json_object_set_new(g, "cublaslt", json_string(s));
    json_object_set_new(g, "nccl", nccl_version());
    return g;
}
#endif

json_t *llm_bench_env(int cuda, int device)
{
    json_t *env = json_object();
    if (!env) return NULL;
    json_object_set_new(env, "host", host_info());
#if BENCH_CUDA
    (void)cuda;
    json_object_set_new(env, "gpu", gpu_info(device));
#else
    (void)cuda;
    (void)device;
    json_object_set_new(env, "gpu", json_null());
#endif
#ifdef __VERSION__
    const char *cc = "gcc-compatible " __VERSION__;
#else
    const char *cc = "unknown";
#endif
#ifdef NDEBUG
    int asserts = 0;
#else
    int asserts = 1;
#endif
    json_object_set_new(env, "build",
                        json_pack("{s:s, s:s, s:b, s:s, s:b}", "version", LLM_VERSION, "commit",
                                  LLM_GIT_COMMIT, "cuda", BENCH_CUDA, "compiler", cc, "asserts",
                                  asserts));
    return env;
}

int llm_bench_model_hash(const struct llm_model *m, uint64_t *h)
{
    if (!m->ar || !llm_ar_is_seekable(m->ar))
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': model hash needs an artifact file",
                           m->path ? m->path : "model");
    XXH3_state_t *st = XXH3_createState();
    if (!st) return llm_err_set(LLM_ENOMEM, "out of memory");
    XXH3_64bits_reset(st);
    size_t n = llm_ar_count(m->ar);
    for (size_t i = 0; i < n; i++) {
        struct llm_tensor t;
        int rc = llm_ar_info(m->ar, i, &t);
        if (rc) {
            XXH3_freeState(st);
            return rc;
        }
        XXH3_64bits_update(st, t.name, strlen(t.name) + 1);
        int64_t hdr[2 + LLM_MAX_DIMS] = {t.dtype, t.ndim};
        for (int d = 0; d < t.ndim && d < LLM_MAX_DIMS; d++)
            hdr[2 + d] = t.shape[d];
        XXH3_64bits_update(st, hdr, sizeof hdr);
        XXH3_64bits_update(st, &t.xxh3, sizeof t.xxh3);
    }
    *h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return 0;
}
