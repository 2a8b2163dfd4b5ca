/* telemetry.c - what the device did while a repetition ran: clocks, power,
 * the reasons the clocks were held down, and the energy spent.
 *
 * Design choice: a sustained run on a GPU is often bound by its power
 * limit rather than by its kernels (the SM clock drops well below its
 * maximum while each kernel alone, timed at full clock, looks fast), so a
 * throughput figure is only readable beside the clock and power it was
 * measured at.  A thread reads the device every 100 ms during the timed
 * region (and once at its start and end) and the repetition reports
 * percentiles of the SM clock and power, the share of samples held down by
 * the power cap or by heat, and the energy from the driver's counter (exact
 * over the run, not sampled).  The source is a table of functions: NVML
 * through dlopen (no link dependency, and nothing at all where the driver
 * has no NVML), or a scripted one in the tests.
 */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llm/bench.h"
#include "llm/err.h"
#include "llm_build_config.h"

#if defined(LLM_HAVE_CUDA) && LLM_HAVE_CUDA
#include <cuda_runtime_api.h>
#define TELE_CUDA 1
#else
#define TELE_CUDA 0
#endif

/* ---- NVML ------------------------------------------------------------- */

/* The few NVML entry points used, declared here by their documented C
 * signatures (nvmlReturn_t is an int enum, NVML_SUCCESS 0; nvmlDevice_t an
 * opaque pointer). */
typedef void *nvml_dev;
enum { NVML_OK = 0, NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2, NVML_TEMPERATURE_GPU = 0 };

struct nvml {
    void *lib;
    nvml_dev dev;
    int (*shutdown)(void);
    int (*clock)(nvml_dev, int, unsigned *);
    int (*max_clock)(nvml_dev, int, unsigned *);
    int (*power)(nvml_dev, unsigned *); /* mW */
    int (*limit)(nvml_dev, unsigned *); /* mW */
    int (*temp)(nvml_dev, int, unsigned *);
    int (*reasons)(nvml_dev, unsigned long long *);
    int (*energy)(nvml_dev, unsigned long long *); /* mJ since the driver loaded */
};

static void *sym(void *lib, const char *a, const char *b)
{
    void *p = dlsym(lib, a);
    return p || !b ? p : dlsym(lib, b);
}

static int nvml_sample(void *ctx, struct llm_bench_tele_sample *s)
{
    struct nvml *n = ctx;
    unsigned v = 0;
    unsigned long long r = 0;
    memset(s, 0, sizeof(*s));
    s->sm_mhz = s->mem_mhz = s->power_w = s->temp_c = NAN;
    if (n->clock(n->dev, NVML_CLOCK_SM, &v) == NVML_OK) s->sm_mhz = v;
    if (n->clock(n->dev, NVML_CLOCK_MEM, &v) == NVML_OK) s->mem_mhz = v;
    if (n->power && n->power(n->dev, &v) == NVML_OK) s->power_w = v * 1e-3;
    if (n->temp && n->temp(n->dev, NVML_TEMPERATURE_GPU, &v) == NVML_OK) s->temp_c = v;
    if (n->reasons && n->reasons(n->dev, &r) == NVML_OK) {
        s->reasons = r;
        s->have_reasons = 1;
    }
    return isnan(s->sm_mhz) ? -1 : 0;
}

static int nvml_energy(void *ctx, double *joules)
{
    struct nvml *n = ctx;
    unsigned long long mj = 0;
    if (!n->energy || n->energy(n->dev, &mj) != NVML_OK) return -1;
    *joules = (double)mj * 1e-3;
    return 0;
}

static int nvml_limits(void *ctx, struct llm_bench_tele_limits *l)
{
    struct nvml *n = ctx;
    unsigned v = 0;
    l->power_limit_w = l->sm_max_mhz = l->mem_max_mhz = NAN;
    if (n->limit && n->limit(n->dev, &v) == NVML_OK) l->power_limit_w = v * 1e-3;
    if (n->max_clock && n->max_clock(n->dev, NVML_CLOCK_SM, &v) == NVML_OK) l->sm_max_mhz = v;
    if (n->max_clock && n->max_clock(n->dev, NVML_CLOCK_MEM, &v) == NVML_OK) l->mem_max_mhz = v;
    return 0;
}

static void nvml_close(void *ctx)
{
    struct nvml *n = ctx;
    if (!n) return;
    if (n->shutdown) n->shutdown();
    dlclose(n->lib);
    free(n);
}

int llm_bench_tele_nvml(struct llm_bench_tele_source *src, int device)
{
    memset(src, 0, sizeof(*src));
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return llm_err_set(LLM_EUNSUPPORTED, "telemetry: no libnvidia-ml.so.1");
    struct nvml *n = calloc(1, sizeof(*n));
    if (!n) {
        dlclose(lib);
        return llm_err_set(LLM_ENOMEM, "out of memory");
    }
    n->lib = lib;
    int (*init)(void) = (int (*)(void))sym(lib, "nvmlInit_v2", "nvmlInit");
    int (*by_bus)(const char *, nvml_dev *) = (int (*)(const char *, nvml_dev *))sym(
        lib, "nvmlDeviceGetHandleByPciBusId_v2", "nvmlDeviceGetHandleByPciBusId");
    int (*by_index)(unsigned, nvml_dev *) = (int (*)(unsigned, nvml_dev *))sym(
        lib, "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex");
    n->shutdown = (int (*)(void))sym(lib, "nvmlShutdown", NULL);
    n->clock = (int (*)(nvml_dev, int, unsigned *))sym(lib, "nvmlDeviceGetClockInfo", NULL);
    n->max_clock = (int (*)(nvml_dev, int, unsigned *))sym(lib, "nvmlDeviceGetMaxClockInfo", NULL);
    n->power = (int (*)(nvml_dev, unsigned *))sym(lib, "nvmlDeviceGetPowerUsage", NULL);
    n->limit = (int (*)(nvml_dev, unsigned *))sym(lib, "nvmlDeviceGetEnforcedPowerLimit", NULL);
    n->temp = (int (*)(nvml_dev, int, unsigned *))sym(lib, "nvmlDeviceGetTemperature", NULL);
    /* renamed in CUDA 12.2's NVML; the old name stays as an alias */
    n->reasons = (int (*)(nvml_dev, unsigned long long *))sym(
        lib, "nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons");
    n->energy = (int (*)(nvml_dev, unsigned long long *))sym(
        lib, "nvmlDeviceGetTotalEnergyConsumption", NULL);
    if (!init || !n->clock || (!by_bus && !by_index) || init() != NVML_OK) {
        n->shutdown = NULL;
        nvml_close(n);
        return llm_err_set(LLM_EUNSUPPORTED, "telemetry: NVML did not start");
    }
    int found = 0;
#if TELE_CUDA
    /* NVML numbers devices its own way (all of them, by PCI order), CUDA
     * after CUDA_VISIBLE_DEVICES: the bus id names the same device */
    char bus[32];
    if (by_bus && cudaDeviceGetPCIBusId(bus, sizeof bus, device) == cudaSuccess)
        found = by_bus(bus, &n->dev) == NVML_OK;
#endif
    if (!found && by_index) found = by_index((unsigned)device, &n->dev) == NVML_OK;
    unsigned v;
    if (!found || n->clock(n->dev, NVML_CLOCK_SM, &v) != NVML_OK) {
        nvml_close(n);
        return llm_err_set(LLM_EUNSUPPORTED, "telemetry: NVML has no clock for device %d", device);
    }
    src->ctx = n;
    src->sample = nvml_sample;
    src->energy = nvml_energy;
    src->limits = nvml_limits;
    src->close = nvml_close;
    return 0;
}

void llm_bench_tele_close(struct llm_bench_tele_source *src)
{
    if (src->close) src->close(src->ctx);
    memset(src, 0, sizeof(*src));
}

/* ---- the sampler ---------------------------------------------------------- */

struct llm_bench_tele {
    const struct llm_bench_tele_source *src;
    double period;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, failed;
    struct llm_bench_tele_sample *s;
    size_t n, cap;
    double e0;
    int have_e0;
};

static void take(struct llm_bench_tele *t)
{
    struct llm_bench_tele_sample s;
    if (t->src->sample(t->src->ctx, &s)) return;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        void *p = realloc(t->s, cap * sizeof(*t->s));
        if (!p) {
            t->failed = 1;
            return;
        }
        t->s = p;
        t->cap = cap;
    }
    t->s[t->n++] = s;
}

static void *loop(void *arg)
{
    struct llm_bench_tele *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        double whole = floor(t->period);
        until.tv_sec += (time_t)whole;
        until.tv_nsec += (long)((t->period - whole) * 1e9);
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        int rc = 0;
        while (!t->stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&t->cv, &t->mu, &until);
        if (!t->stop) take(t);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int llm_bench_tele_start(struct llm_bench_tele **out, const struct llm_bench_tele_source *src,
                         double period_s)
{
    *out = NULL;
    struct llm_bench_tele *t = calloc(1, sizeof(*t));
    if (!t) return llm_err_set(LLM_ENOMEM, "out of memory");
    t->src = src;
    t->period = period_s > 0 ? period_s : 0.1;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    if (src->energy) t->have_e0 = src->energy(src->ctx, &t->e0) == 0;
    take(t);
    if (pthread_create(&t->thread, NULL, loop, t)) {
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        free(t->s);
        free(t);
        return llm_err_set(LLM_ENOMEM, "telemetry: cannot start the sampling thread");
    }
    *out = t;
    return 0;
}

static int put(json_t *f, const char *k, double v)
{
    if (!isfinite(v)) return 0; /* left out rather than wrong */
    return json_object_set_new(f, k, json_real(v)) ? llm_err_set(LLM_ENOMEM, "out of memory") : 0;
}

int llm_bench_tele_summary(const struct llm_bench_tele_sample *s, size_t n, double joules,
                           double wall_s, double output_tokens, json_t *f)
{
    int rc = 0;
    double *v = n ? malloc(n * sizeof(*v)) : NULL;
    if (n && !v) return llm_err_set(LLM_ENOMEM, "out of memory");
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(s[i].sm_mhz)) v[m++] = s[i].sm_mhz;
    if (m) {
        rc = put(f, "sm_clock_p10", llm_bench_percentile(v, m, 10));
        if (!rc) rc = put(f, "sm_clock_p50", llm_bench_percentile(v, m, 50));
        if (!rc) rc = put(f, "sm_clock_p90", llm_bench_percentile(v, m, 90));
    }
    m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(s[i].power_w)) v[m++] = s[i].power_w;
    if (!rc && m) {
        rc = put(f, "power_p50", llm_bench_percentile(v, m, 50));
        if (!rc) rc = put(f, "power_p90", llm_bench_percentile(v, m, 90));
    }
    double tmax = NAN;
    size_t nr = 0, cap = 0, hot = 0;
    for (size_t i = 0; i < n; i++) {
        if (isfinite(s[i].temp_c) && !(s[i].temp_c <= tmax)) tmax = s[i].temp_c;
        if (!s[i].have_reasons) continue;
        nr++;
        cap += (s[i].reasons & LLM_TELE_POWER_CAP) != 0;
        hot += (s[i].reasons & LLM_TELE_HEAT) != 0;
    }
    if (!rc) rc = put(f, "temp_max", tmax);
    if (!rc && nr) rc = put(f, "power_capped_share", (double)cap / (double)nr);
    if (!rc && nr) rc = put(f, "heat_capped_share", (double)hot / (double)nr);
    if (!rc && joules >= 0 && wall_s > 0) {
        rc = put(f, "energy", joules);
        if (!rc) rc = put(f, "power_mean", joules / wall_s);
        if (!rc && joules > 0 && output_tokens > 0)
            rc = put(f, "output_tokens_per_j", output_tokens / joules);
    }
    free(v);
    return rc;
}

int llm_bench_tele_stop(struct llm_bench_tele *t, double wall_s, double output_tokens, json_t *f)
{
    if (!t) return 0;
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    take(t);
    double e1 = 0, joules = -1;
    if (t->have_e0 && t->src->energy(t->src->ctx, &e1) == 0 && e1 >= t->e0) joules = e1 - t->e0;
    int rc = !f          ? 0
             : t->failed ? llm_err_set(LLM_ENOMEM, "out of memory")
                         : llm_bench_tele_summary(t->s, t->n, joules, wall_s, output_tokens, f);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t->s);
    free(t);
    return rc;
}
