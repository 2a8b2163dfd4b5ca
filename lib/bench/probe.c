/* probe.c - the device's ceilings (copy bandwidth, matrix-product rate)
 * measured at start, and peak memory.
 *
 * Design choice: a fraction of peak is only honest against a ceiling
 * measured on the same machine in the same run, with the kernels that the
 * backend itself would use at their best; so the measuring lives in the
 * backends (llm_backend_cpu_probe, llm_backend_cuda_probe: a threaded
 * memcpy and the CPU backend's fp32 linear; cudaMemcpy and the CUDA
 * backend's cuBLASLt path) and this file only reports them.  Bandwidth
 * counts bytes read plus bytes written, as the published copy figures do.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/backend.h"
#include "llm/bench.h"
#include "llm/err.h"

static void copy_ceiling(struct llm_bench_ceiling *c, const struct llm_backend_ceiling *b)
{
    memset(c, 0, sizeof(*c));
    c->mem_bw = b->mem_bw;
    c->flops = b->flops;
    snprintf(c->bw_how, sizeof c->bw_how, "%s", b->bw_how);
    snprintf(c->flops_how, sizeof c->flops_how, "%s", b->flops_how);
    c->flops_fp8 = b->flops_fp8;
    c->flops_int8 = b->flops_int8;
    snprintf(c->fp8_how, sizeof c->fp8_how, "%s", b->fp8_how);
    snprintf(c->int8_how, sizeof c->int8_how, "%s", b->int8_how);
}

int llm_bench_probe_cpu(struct llm_bench_ceiling *c, int n_threads)
{
    struct llm_backend_ceiling b;
    memset(c, 0, sizeof(*c));
    int rc = llm_backend_cpu_probe(&b, n_threads);
    if (!rc) copy_ceiling(c, &b);
    return rc;
}

int llm_bench_probe_cuda(struct llm_bench_ceiling *c, int device)
{
    struct llm_backend_ceiling b;
    memset(c, 0, sizeof(*c));
    int rc = llm_backend_cuda_probe(&b, device);
    if (!rc) copy_ceiling(c, &b);
    return rc;
}

/* ---- peak memory ------------------------------------------------------------ */

int llm_bench_mem_reset(int cuda, int device)
{
    (void)device;
    if (cuda) return 0; /* device memory is sampled, nothing to reset */
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    ok &= fclose(f) == 0;
    return ok ? 0 : -1;
}

int llm_bench_mem_peak(int cuda, int device, uint64_t *bytes)
{
    *bytes = 0;
    if (cuda) {
        return llm_backend_cuda_mem_used(device, bytes);
    }
    (void)device;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return llm_err_set(LLM_EIO, "'/proc/self/status': %s", strerror(errno));
    char line[256];
    int rc = llm_err_set(LLM_ENOTFOUND, "'/proc/self/status': no VmHWM");
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "VmHWM: %llu kB", &kb) == 1) {
            *bytes = (uint64_t)kb * 1024;
            rc = 0;
            llm_err_clear();
            break;
        }
    }
    fclose(f);
    return rc;
}
