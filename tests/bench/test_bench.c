/* test_bench.c - the library half of llm-bench without a process: workload
 * determinism, dataset parsing and its errors, statistics, the cost model,
 * a timed run on the mock backend, rendering in every format, and the
 * baseline gate.
 *
 * Each check prints what it compared; the first failing check of a group
 * is reported and the program exits 1 if any failed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llm/bench.h"
#include "llm/engine.h"
#include "llm/err.h"
#include "llm/log.h"
#include "../engine/mock_backend.h"

static int fails;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            printf("ok: " __VA_ARGS__);                                                            \
            printf("\n");                                                                          \
        } else {                                                                                   \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf(" [%s]\n", llm_errmsg());                                                       \
            fails++;                                                                               \
        }                                                                                          \
    } while (0)

static char tmpdir[256];

static const char *write_tmp(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    return path;
}

static int same_workload(const struct llm_bench_workload *a, const struct llm_bench_workload *b)
{
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++) {
        if (a->reqs[i].n_prompt != b->reqs[i].n_prompt ||
            a->reqs[i].n_output != b->reqs[i].n_output)
            return 0;
        if (memcmp(a->reqs[i].prompt, b->reqs[i].prompt,
                   (size_t)a->reqs[i].n_prompt * sizeof(int32_t)))
            return 0;
    }
    return 1;
}

/* ---- workloads ----------------------------------------------------------------- */

static void test_synth(void)
{
    struct llm_bench_synth s;
    llm_bench_synth_init(&s);
    s.n_requests = 200;
    s.input_mean = 100;
    s.input_std = 30;
    s.input_max = 150;
    s.output_mean = 50;
    s.output_std = 10;
    s.seed = 42;
    s.vocab = 32000;
    struct llm_bench_workload a, b, c, d;
    CHECK(llm_bench_workload_synth(&a, &s) == 0, "synthetic workload, seed 42");
    CHECK(llm_bench_workload_synth(&b, &s) == 0, "same again");
    CHECK(same_workload(&a, &b), "same seed: same ids and lengths for all %d requests", a.n);
    CHECK(llm_bench_workload_hash(&a) == llm_bench_workload_hash(&b), "same seed: same hash");
    s.seed = 43;
    CHECK(llm_bench_workload_synth(&c, &s) == 0, "seed 43");
    CHECK(!same_workload(&a, &c), "different seed: different workload");
    CHECK(llm_bench_workload_hash(&a) != llm_bench_workload_hash(&c),
          "different seed: different hash");
    int in_range = 1, varied = 0;
    double sum = 0;
    for (int i = 0; i < a.n; i++) {
        const struct llm_bench_req *r = &a.reqs[i];
        if (r->n_prompt < 1 || r->n_prompt > 150 || r->n_output < 1) in_range = 0;
        if (r->n_prompt != a.reqs[0].n_prompt) varied = 1;
        for (int j = 0; j < r->n_prompt; j++)
            if (r->prompt[j] < 0 || r->prompt[j] >= 32000) in_range = 0;
        sum += r->n_output;
    }
    CHECK(in_range, "lengths clamped to [1, 150], ids in [0, 32000)");
    CHECK(varied, "std 30: prompt lengths vary");
    CHECK(fabs(sum / a.n - 50) < 3, "mean output length %.2f near 50", sum / a.n);
    /* request i does not depend on the request count */
    s.seed = 42;
    s.n_requests = 20;
    CHECK(llm_bench_workload_synth(&d, &s) == 0, "20 requests, seed 42");
    int prefix = 1;
    for (int i = 0; i < d.n; i++)
        if (d.reqs[i].n_prompt != a.reqs[i].n_prompt ||
            memcmp(d.reqs[i].prompt, a.reqs[i].prompt, (size_t)d.reqs[i].n_prompt * 4))
            prefix = 0;
    CHECK(prefix, "the first 20 requests equal those of the 200-request workload");
    llm_bench_workload_free(&a);
    llm_bench_workload_free(&b);
    llm_bench_workload_free(&c);
    llm_bench_workload_free(&d);

    /* fixed lengths */
    struct llm_bench_workload f;
    CHECK(llm_bench_workload_fixed(&f, 4, 512, 129, 7, 1000) == 0 && f.n == 4 &&
              f.prompt_tokens == 4 * 512 && f.output_tokens == 4 * 129 && f.max_prompt == 512,
          "fixed workload: 4 x (512 in, 129 out)");
    llm_bench_workload_free(&f);
    CHECK(llm_bench_workload_fixed(&f, 0, 1, 1, 0, 1000) == LLM_EINVAL, "0 requests refused");
    CHECK(llm_bench_workload_fixed(&f, 1, 1, 1, 0, 0) == LLM_EINVAL, "vocab 0 refused");
}

static void test_datasets(void)
{
    struct llm_bench_load_opts o = {.format = LLM_BENCH_DS_AUTO, .vocab = 100};
    struct llm_bench_workload w;
    int fmt = -1;
    const char *p = write_tmp("t.jsonl", "{\"task_id\": 0, \"input_ids\": [1, 2, 3], "
                                         "\"output_tokens\": 5}\n\n"
                                         "{\"task_id\": 1, \"input_ids\": [99], "
                                         "\"output_tokens\": 1}\n");
    CHECK(llm_bench_workload_load(&w, p, &o, &fmt) == 0 && fmt == LLM_BENCH_DS_TRTLLM && w.n == 2 &&
              w.reqs[0].n_prompt == 3 && w.reqs[0].n_output == 5 && w.reqs[1].prompt[0] == 99,
          "trtllm JSONL detected and read (%d requests)", w.n);
    /* saving and loading back keeps the hash */
    uint64_t h = llm_bench_workload_hash(&w);
    char saved[512];
    snprintf(saved, sizeof saved, "%s/saved.jsonl", tmpdir);
    CHECK(llm_bench_workload_save(&w, saved) == 0, "workload saved as trtllm JSONL");
    llm_bench_workload_free(&w);
    CHECK(llm_bench_workload_load(&w, saved, &o, &fmt) == 0 && llm_bench_workload_hash(&w) == h,
          "saved workload loads back with the same hash");
    llm_bench_workload_free(&w);

    p = write_tmp("r.jsonl", "{\"id\": \"a\", \"input_ids\": [4, 5], \"max_tokens\": 3}\n"
                             "{\"custom_id\": \"b\", \"method\": \"POST\", \"url\": "
                             "\"/v1/completions\", \"body\": {\"prompt\": [7, 8, 9]}}\n");
    o.default_output = 11;
    CHECK(llm_bench_workload_load(&w, p, &o, &fmt) == 0 && fmt == LLM_BENCH_DS_LLMRUN && w.n == 2 &&
              w.reqs[0].n_output == 3 && w.reqs[1].n_output == 11 && w.reqs[1].n_prompt == 3,
          "llm-run JSONL (simple and OpenAI lines, default output 11)");
    llm_bench_workload_free(&w);

    o.max_requests = 1;
    CHECK(llm_bench_workload_load(&w, p, &o, NULL) == 0 && w.n == 1, "max_requests 1 keeps one");
    llm_bench_workload_free(&w);
    o.max_requests = 0;

    p = write_tmp("bad.jsonl", "{\"task_id\": 0, \"input_ids\": [1], \"output_tokens\": 2}\n"
                               "{\"task_id\": 1, \"input_ids\": [1]\n");
    int rc = llm_bench_workload_load(&w, p, &o, NULL);
    CHECK(rc == LLM_EFORMAT && strstr(llm_errmsg(), "line 2") && strstr(llm_errmsg(), "bad.jsonl"),
          "malformed line 2: %s", llm_errmsg());
    p = write_tmp("noout.jsonl", "{\"task_id\": 0, \"input_ids\": [1]}\n");
    o.format = LLM_BENCH_DS_TRTLLM;
    rc = llm_bench_workload_load(&w, p, &o, NULL);
    CHECK(rc == LLM_EFORMAT && strstr(llm_errmsg(), "output_tokens"), "missing output_tokens: %s",
          llm_errmsg());
    p = write_tmp("vocab.jsonl",
                  "{\"task_id\": 0, \"input_ids\": [1, 100], \"output_tokens\": 2}\n");
    rc = llm_bench_workload_load(&w, p, &o, NULL);
    CHECK(rc == LLM_ERANGE && strstr(llm_errmsg(), "line 1"), "id 100 outside vocab 100: %s",
          llm_errmsg());
    p = write_tmp("text.jsonl", "{\"task_id\": 0, \"prompt\": \"hello\", \"output_tokens\": 2}\n");
    rc = llm_bench_workload_load(&w, p, &o, NULL);
    CHECK(rc == LLM_EUNSUPPORTED && strstr(llm_errmsg(), "tokenizer"),
          "text prompt without tokenizer: %s", llm_errmsg());
    p = write_tmp("empty.jsonl", "\n\n");
    rc = llm_bench_workload_load(&w, p, &o, NULL);
    CHECK(rc == LLM_EFORMAT && strstr(llm_errmsg(), "no requests"), "empty dataset: %s",
          llm_errmsg());
    o.format = LLM_BENCH_DS_AUTO;
    p = write_tmp("sg.json", "[{\"conversations\": [{\"from\": \"human\", \"value\": \"hi\"}, "
                             "{\"from\": \"gpt\", \"value\": \"yo\"}]}]");
    rc = llm_bench_workload_load(&w, p, &o, &fmt);
    CHECK(rc == LLM_EUNSUPPORTED && fmt == LLM_BENCH_DS_SHAREGPT,
          "ShareGPT detected; needs a tokenizer: %s", llm_errmsg());
    p = write_tmp("sgbad.json", "[{\"conversations\": 1}]");
    rc = llm_bench_workload_load(&w, p, &o, NULL);
    CHECK(rc == LLM_EFORMAT && strstr(llm_errmsg(), "entry 0"), "ShareGPT entry without turns: %s",
          llm_errmsg());
    rc = llm_bench_workload_load(&w, "/nonexistent/x.jsonl", &o, NULL);
    CHECK(rc == LLM_EIO, "missing file: %s", llm_errmsg());
    CHECK(llm_bench_dataset_from_name("sharegpt") == LLM_BENCH_DS_SHAREGPT &&
              llm_bench_dataset_from_name("nope") == -1,
          "dataset format names");
}

/* ---- statistics and figures ------------------------------------------------------ */

static void test_stats(void)
{
    double x[] = {4, 1, 3, 2};
    CHECK(fabs(llm_bench_percentile(x, 4, 90) - 3.7) < 1e-12, "p90 of 1..4 = 3.7 (numpy linear)");
    CHECK(llm_bench_percentile(x, 4, 50) == 2.5 && llm_bench_percentile(x, 4, 100) == 4 &&
              llm_bench_percentile(x, 4, 0) == 1,
          "p50 2.5, p100 4, p0 1");
    CHECK(isnan(llm_bench_percentile(x, 0, 50)), "percentile of nothing is NaN");
    struct llm_bench_stat s;
    double y[] = {2, 4, 4, 4, 5, 5, 7, 9};
    llm_bench_stat(y, 8, &s);
    CHECK(s.mean == 5 && fabs(s.stddev - sqrt(32.0 / 7)) < 1e-12 && s.min == 2 && s.max == 9,
          "mean 5, sample stddev sqrt(32/7), min 2, max 9");
    llm_bench_stat(y, 1, &s);
    CHECK(s.stddev == 0 && s.mean == 2, "one sample: stddev 0");

    json_t *acc = json_object();
    json_t *r1 = json_pack("{s:f, s:f}", "output_tokens_per_s", 100.0, "ttft_p50", 0.5);
    json_t *r2 = json_pack("{s:f, s:f}", "output_tokens_per_s", 110.0, "ttft_p50", 0.7);
    CHECK(llm_bench_figures_add(acc, r1) == 0 && llm_bench_figures_add(acc, r2) == 0,
          "two repetitions added");
    json_t *bad = json_pack("{s:f}", "no_such_figure", 1.0);
    CHECK(llm_bench_figures_add(acc, bad) == LLM_EINVAL, "unknown figure refused");
    json_t *f = llm_bench_figures_finish(acc);
    json_t *o = json_object_get(f, "output_tokens_per_s");
    CHECK(json_number_value(json_object_get(o, "mean")) == 105 &&
              fabs(json_number_value(json_object_get(o, "stddev")) - sqrt(50.0)) < 1e-9 &&
              json_array_size(json_object_get(o, "samples")) == 2 &&
              !strcmp(json_string_value(json_object_get(o, "better")), "higher"),
          "aggregate: mean 105, stddev sqrt(50), 2 samples, higher is better");
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(f, "ttft_p50"), "better")),
                  "lower"),
          "ttft is lower-is-better");
    size_t n;
    const struct llm_bench_figdef *d = llm_bench_figdefs(&n);
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        if (!d[i].unit || !d[i].what || llm_bench_figdef(d[i].name) != &d[i]) ok = 0;
    CHECK(ok, "%zu figure definitions, unique names, unit and meaning each", n);
    json_decref(acc);
    json_decref(r1);
    json_decref(r2);
    json_decref(bad);
    json_decref(f);
}

/* ---- cost model ----------------------------------------------------------------------- */

static void test_cost(void)
{
    struct llm_model_desc d;
    llm_desc_init(&d);
    d.vocab_size = 1000;
    d.hidden = 64;
    d.n_layers = 2;
    d.n_heads = 4;
    d.n_kv_heads = 2;
    d.head_dim = 16;
    d.intermediate = 128;
    d.gated_mlp = 1;
    struct llm_bench_cost c;
    llm_bench_cost_init(&c, &d, 2, 4);
    /* per layer: qkv (4+4)*16*64 = 8192, dense 64*64 = 4096, mlp 3*128*64 = 24576 */
    CHECK(c.layer_params == 2 * (8192 + 4096 + 24576), "layer params %.0f", c.layer_params);
    CHECK(c.kv_token_bytes == 2.0 * 2 * 2 * 16 * 4, "KV bytes per token %.0f", c.kv_token_bytes);
    int32_t start[] = {0, 3, 4}, len[] = {3, 10}, rows[] = {2, 3};
    struct llm_batch b = {.n_tokens = 4,
                          .n_seqs = 2,
                          .seq_start = start,
                          .seq_len = len,
                          .n_out = 2,
                          .out_rows = rows};
    double by, fl;
    llm_bench_cost_batch(&c, &b, &by, &fl);
    /* pairs: seq 0 prefill 3 -> 1+2+3 = 6; seq 1 decode at position 9 -> 10 */
    double want_fl = 2 * c.layer_params * 4 + 2 * 1000.0 * 64 * 2 + 4.0 * 2 * 4 * 16 * 16;
    double want_by =
        c.layer_weight_bytes + c.head_bytes + 4 * c.embed_row_bytes + (13 + 4) * c.kv_token_bytes;
    CHECK(fabs(fl - want_fl) < 1e-6 && fabs(by - want_by) < 1e-6,
          "batch of a 3-token prefill and a decode: %.0f FLOPs, %.0f bytes", fl, by);

    /* MoE, 8 experts top 2: a step reads the experts its tokens reach */
    d.n_experts = 8;
    d.n_experts_per_tok = 2;
    llm_bench_cost_init(&c, &d, 2, 4);
    double expert = 24576.0 * 2 /* layers */ * 2 /* bytes */;
    CHECK(c.expert_bytes == expert && c.layer_params == 2 * (8192 + 4096 + 2 * 24576 + 64 * 8),
          "MoE: one expert %.0f bytes, params per token %.0f", c.expert_bytes, c.layer_params);
    CHECK(llm_bench_experts_read(&c, 1) == 2 && llm_bench_experts_read(&c, 0) == 0 &&
              fabs(llm_bench_experts_read(&c, 2) - 8 * (1 - 0.75 * 0.75)) < 1e-12 &&
              llm_bench_experts_read(&c, 1000) > 7.999999,
          "experts read: 1 token %g, 2 tokens %g, 1000 tokens %g", llm_bench_experts_read(&c, 1),
          llm_bench_experts_read(&c, 2), llm_bench_experts_read(&c, 1000));
    int32_t s1[] = {0, 1}, l1[] = {20}, r1[] = {0};
    struct llm_batch one = {.n_tokens = 1, .n_seqs = 1, .seq_start = s1, .seq_len = l1,
                            .n_out = 1, .out_rows = r1};
    llm_bench_cost_batch(&c, &one, &by, &fl);
    want_by = c.layer_weight_bytes + 2 * expert + c.head_bytes + c.embed_row_bytes +
              21 * c.kv_token_bytes;
    CHECK(fabs(by - want_by) < 1e-6, "MoE decode of one token reads two experts: %.0f bytes, "
          "expected %.0f", by, want_by);
    llm_desc_free(&d);
}

/* ---- the timing clock: host monotonic, or a device clock when the backend has one ---------- */

/* The mock backend the runs here use: vocabulary 64, 64 blocks of 4 tokens, 32 tokens
 * and 8 sequences a step, 64 positions.  NULL (a failed check) when it cannot be made. */
static struct llm_backend *small_mock(void)
{
    struct mock_opts mo;
    mock_opts_init(&mo);
    mo.vocab = 64;
    mo.n_blocks = 64;
    mo.block_size = 4;
    mo.max_batch_tokens = 32;
    mo.max_seqs = 8;
    mo.max_seq_len = 64;
    struct llm_backend *be = NULL;
    CHECK(mock_backend_create(&be, &mo) == 0, "mock backend");
    return be;
}

static int fake_steps;
static int fake_step_time(struct llm_backend *be, double *seconds)
{
    (void)be;
    fake_steps++;
    *seconds = 1e-9; /* what a device clock would report for the step */
    return 0;
}

/* Telemetry for timing_run's repetitions (NULL: none). */
static const struct llm_bench_tele_source *timing_tele;

/* One throughput repetition over be; returns its figures. */
static json_t *timing_run(struct llm_backend *be, const char **timing, double *busy)
{
    struct llm_model_desc d;
    llm_desc_init(&d);
    d.vocab_size = 64;
    d.hidden = 16;
    d.n_layers = 1;
    d.n_heads = 2;
    d.n_kv_heads = 2;
    d.head_dim = 8;
    d.intermediate = 32;
    struct llm_bench_cost cost;
    llm_bench_cost_init(&cost, &d, 4, 4);
    llm_desc_free(&d);
    struct llm_bench_meter m;
    json_t *f = NULL;
    if (llm_bench_meter_init(&m, be, &cost)) return NULL;
    *timing = llm_bench_meter_timing(&m);
    struct llm_engine_opts eo;
    llm_engine_opts_init(&eo);
    eo.record_token_times = 1;
    struct llm_engine *e = NULL;
    if (llm_engine_create(&e, &m.be, &eo)) return NULL;
    struct llm_bench_workload w;
    if (llm_bench_workload_fixed(&w, 6, 9, 5, 11, 64) == 0) {
        struct llm_bench_exec x;
        llm_bench_exec_init(&x);
        x.tele = timing_tele;
        struct llm_bench_totals t;
        if (llm_bench_run_once(e, &m, &w, &x, &f, &t)) f = NULL;
        *busy = m.device_busy;
        llm_bench_workload_free(&w);
    }
    llm_engine_free(e);
    return f;
}

static void test_timing(void)
{
    struct llm_backend *be = small_mock();
    if (!be) return;
    const char *timing = NULL;
    double busy = -1;
    json_t *f = timing_run(be, &timing, &busy);
    CHECK(f != NULL, "repetition on the mock");
    CHECK(timing && !strcmp(timing, "monotonic"),
          "no last_step_time: timed by the monotonic clock (%s)", timing ? timing : "null");
    double idle = json_number_value(json_object_get(f, "device_idle_share"));
    double dbusy = json_number_value(json_object_get(f, "device_busy_s"));
    double wall = json_number_value(json_object_get(f, "wall_s"));
    double smax = json_number_value(json_object_get(f, "step_idle_share_max"));
    CHECK(json_is_number(json_object_get(f, "device_idle_share")) && idle >= 0 && idle <= 1,
          "monotonic: device idle share %.4f within [0, 1]", idle);
    CHECK(dbusy >= 0 && dbusy <= wall && fabs(idle - (1 - dbusy / wall)) < 1e-9,
          "monotonic: idle share = 1 - busy %.6f / wall %.6f", dbusy, wall);
    CHECK(json_is_number(json_object_get(f, "step_idle_share_max")) && smax >= 0 && smax <= 1,
          "largest idle share of a step %.4f within [0, 1]", smax);
    json_decref(f);

    /* the same backend with a device clock: the figures come from it */
    struct llm_backend_ops ops = *be->ops;
    ops.last_step_time = fake_step_time;
    struct llm_backend dev = *be;
    dev.ops = &ops;
    fake_steps = 0;
    f = timing_run(&dev, &timing, &busy);
    CHECK(f != NULL, "repetition with a device clock");
    CHECK(timing && !strcmp(timing, "cuda-events"), "last_step_time present: timed by it (%s)",
          timing ? timing : "null");
    dbusy = json_number_value(json_object_get(f, "device_busy_s"));
    idle = json_number_value(json_object_get(f, "device_idle_share"));
    wall = json_number_value(json_object_get(f, "wall_s"));
    CHECK(fake_steps > 0 && fabs(dbusy - fake_steps * 1e-9) < 1e-12 && fabs(busy - dbusy) < 1e-9,
          "device busy = %d steps x 1 ns (%.9f s)", fake_steps, dbusy);
    double want = 1 - dbusy / wall;
    if (want < 0) want = 0;
    CHECK(idle > 0.5 && idle <= 1 && fabs(idle - want) < 1e-9,
          "device clock: idle share %.4f = 1 - %.6f / %.6f", idle, dbusy, wall);
    json_decref(f);
    llm_backend_destroy(be);
}

/* ---- device telemetry: the reduction, the sampler, a repetition with readings ------------- */

struct script {
    int samples, energies;
    double joules_step; /* added to the energy counter at each read */
    double joules;
};
static int script_sample(void *ctx, struct llm_bench_tele_sample *s)
{
    struct script *k = ctx;
    k->samples++;
    memset(s, 0, sizeof(*s));
    s->sm_mhz = 1500;
    s->mem_mhz = 3200;
    s->power_w = 690;
    s->temp_c = 60;
    s->reasons = LLM_TELE_POWER_CAP;
    s->have_reasons = 1;
    return 0;
}
static int script_energy(void *ctx, double *joules)
{
    struct script *k = ctx;
    k->energies++;
    k->joules += k->joules_step;
    *joules = k->joules;
    return 0;
}

static void test_telemetry(void)
{
    /* the reduction over known readings */
    struct llm_bench_tele_sample s[12];
    for (int i = 0; i < 10; i++) {
        memset(&s[i], 0, sizeof s[i]);
        s[i].sm_mhz = 1000 + 100 * i; /* 1000 .. 1900 */
        s[i].mem_mhz = 3200;
        s[i].power_w = 600 + 10 * i;
        s[i].temp_c = 50 + (i == 4 ? 30 : i);
        s[i].have_reasons = i < 8;
        s[i].reasons = i < 3 ? LLM_TELE_POWER_CAP : i == 3 ? 0x20 : i == 9 ? 0x4 : 0;
    }
    s[10] = s[0];
    s[10].sm_mhz = s[10].power_w = s[10].temp_c = NAN; /* a failed reading counts for nothing */
    s[10].have_reasons = 0;
    json_t *f = json_object();
    int rc = llm_bench_tele_summary(s, 11, 1000, 2, 4000, f);
#define F(k) json_number_value(json_object_get(f, k))
    CHECK(rc == 0 && fabs(F("sm_clock_p10") - 1090) < 1e-9 &&
              fabs(F("sm_clock_p50") - 1450) < 1e-9 && fabs(F("sm_clock_p90") - 1810) < 1e-9,
          "SM clock percentiles over 10 readings: %.1f %.1f %.1f MHz", F("sm_clock_p10"),
          F("sm_clock_p50"), F("sm_clock_p90"));
    CHECK(fabs(F("power_p50") - 645) < 1e-9 && fabs(F("power_p90") - 681) < 1e-9 &&
              F("temp_max") == 80,
          "power p50 %.1f W, p90 %.1f W, hottest %.0f C", F("power_p50"), F("power_p90"),
          F("temp_max"));
    CHECK(fabs(F("power_capped_share") - 3.0 / 8) < 1e-12 &&
              fabs(F("heat_capped_share") - 1.0 / 8) < 1e-12,
          "capped shares over the 8 readings with reasons: power %.3f, heat %.3f",
          F("power_capped_share"), F("heat_capped_share"));
    CHECK(F("energy") == 1000 && F("power_mean") == 500 && F("output_tokens_per_j") == 4,
          "1000 J over 2 s for 4000 tokens: %.0f W mean, %.1f tok/J", F("power_mean"),
          F("output_tokens_per_j"));
    json_decref(f);
    f = json_object();
    rc = llm_bench_tele_summary(s + 10, 1, -1, 2, 4000, f);
    CHECK(rc == 0 && json_object_size(f) == 0,
          "no readings and no energy counter: no figures (%zu)", json_object_size(f));
    json_decref(f);

    /* the sampler: readings at start, at stop, and every period between */
    struct script k = {0, 0, 5, 100};
    struct llm_bench_tele_source src = {&k, script_sample, script_energy, NULL, NULL};
    struct llm_bench_tele *t = NULL;
    CHECK(llm_bench_tele_start(&t, &src, 0.01) == 0 && t, "sampler starts");
    usleep(300000);
    f = json_object();
    rc = llm_bench_tele_stop(t, 0.3, 30, f);
    CHECK(rc == 0 && k.samples >= 3 && k.energies == 2,
          "300 ms at 10 ms a reading: %d readings, %d energy reads", k.samples, k.energies);
    CHECK(F("sm_clock_p50") == 1500 && F("power_capped_share") == 1 && F("energy") == 5 &&
              fabs(F("power_mean") - 5 / 0.3) < 1e-9,
          "sampled figures: %.0f MHz, all power-capped, %.0f J", F("sm_clock_p50"), F("energy"));
    json_decref(f);
    k.joules_step = -1; /* a counter that went back (driver reloaded): no energy figures */
    CHECK(llm_bench_tele_start(&t, &src, 10) == 0, "sampler starts (10 s period)");
    f = json_object();
    rc = llm_bench_tele_stop(t, 0.3, 30, f);
    CHECK(rc == 0 && !json_object_get(f, "energy") && !json_object_get(f, "power_mean") &&
              F("sm_clock_p50") == 1500,
          "energy counter going back: no energy figure, clocks kept");
    json_decref(f);
    CHECK(llm_bench_tele_stop(NULL, 1, 1, NULL) == 0, "stopping no sampler does nothing");

    /* a repetition on the mock with readings: the figures ride with the others */
    struct llm_backend *be = small_mock();
    if (be) {
        k = (struct script){0, 0, 2, 0};
        const char *timing = NULL;
        double busy = 0;
        timing_tele = &src;
        f = timing_run(be, &timing, &busy);
        timing_tele = NULL;
        double wall = F("wall_s"), out = F("output_tokens_per_s") * wall;
        CHECK(f && F("energy") == 2 && F("sm_clock_p10") == 1500 &&
                  fabs(F("output_tokens_per_j") - out / 2) < 1e-9 && k.samples >= 2,
              "repetition with telemetry: %.0f J, %.1f tok/J, %d readings", F("energy"),
              F("output_tokens_per_j"), k.samples);
        json_t *acc = json_object();
        CHECK(acc && f && llm_bench_figures_add(acc, f) == 0,
              "telemetry figures are defined figures");
        json_decref(acc);
        json_decref(f);
        llm_backend_destroy(be);
    }
#undef F

    /* NVML where the driver has it (a GPU machine), a clean refusal elsewhere */
    struct llm_bench_tele_source nv;
    rc = llm_bench_tele_nvml(&nv, 0);
    if (rc == 0) {
        struct llm_bench_tele_sample one;
        CHECK(nv.sample(nv.ctx, &one) == 0 && one.sm_mhz > 0, "NVML: SM clock %.0f MHz",
              one.sm_mhz);
        llm_bench_tele_close(&nv);
    } else {
        CHECK(rc == LLM_EUNSUPPORTED && strstr(llm_errmsg(), "telemetry"),
              "no NVML here: refused with '%s'", llm_errmsg());
        llm_err_clear();
    }
}

/* ---- a run on the mock backend ----------------------------------------------------------- */

static void test_run(void)
{
    struct llm_backend *be = small_mock();
    if (!be) return;
    struct llm_model_desc d;
    llm_desc_init(&d);
    d.vocab_size = 64;
    d.hidden = 16;
    d.n_layers = 1;
    d.n_heads = 2;
    d.n_kv_heads = 2;
    d.head_dim = 8;
    d.intermediate = 32;
    struct llm_bench_cost cost;
    llm_bench_cost_init(&cost, &d, 4, 4);
    struct llm_bench_meter m;
    CHECK(llm_bench_meter_init(&m, be, &cost) == 0 && !strcmp(m.be.ops->name, be->ops->name),
          "meter wraps the backend under its name");
    struct llm_engine_opts eo;
    llm_engine_opts_init(&eo);
    eo.record_token_times = 1;
    eo.n_eos = 0;
    struct llm_engine *e = NULL;
    CHECK(llm_engine_create(&e, &m.be, &eo) == 0, "engine over the meter");
    struct llm_bench_workload w;
    struct llm_bench_synth s;
    llm_bench_synth_init(&s);
    s.n_requests = 10;
    s.input_mean = 12;
    s.input_std = 4;
    s.output_mean = 6;
    s.output_std = 2;
    s.vocab = 64;
    s.seed = 3;
    llm_bench_workload_synth(&w, &s);
    struct llm_bench_exec x;
    llm_bench_exec_init(&x);
    struct llm_bench_ceiling ceil = {.mem_bw = 1e9, .flops = 1e9};
    x.ceiling = &ceil;
    json_t *f1 = NULL, *f2 = NULL;
    struct llm_bench_totals t1, t2;
    int rc = llm_bench_run_once(e, &m, &w, &x, &f1, &t1);
    CHECK(rc == 0, "throughput repetition on the mock");
    rc = llm_bench_run_once(e, &m, &w, &x, &f2, &t2);
    CHECK(rc == 0 && !llm_engine_has_work(e), "second repetition; engine idle after");
    CHECK(t1.requests == 10 && t1.output_tokens == w.output_tokens &&
              t1.prompt_tokens == w.prompt_tokens,
          "forced lengths: %lld of %lld output tokens", (long long)t1.output_tokens,
          (long long)w.output_tokens);
    CHECK(t1.rows == (uint64_t)(w.prompt_tokens + w.output_tokens - w.n) || t1.preemptions > 0,
          "rows run = prompt + output - one per request (%llu)", (unsigned long long)t1.rows);
    CHECK(t1.rows == t2.rows && t1.forwards == t2.forwards && t1.bytes == t2.bytes &&
              t1.flops == t2.flops && t1.kv_blocks_peak == t2.kv_blocks_peak,
          "two repetitions: identical counts (%llu forwards, %.0f FLOPs)",
          (unsigned long long)t1.forwards, t1.flops);
    static const char *const want[] = {"requests_per_s",
                                       "output_tokens_per_s",
                                       "ttft_p99",
                                       "tpot_p50",
                                       "itl_p95",
                                       "e2e_p90",
                                       "mem_bw_fraction",
                                       "flops_fraction",
                                       "host_overhead_share",
                                       "kv_util_peak"};
    int have = 1;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!json_is_number(json_object_get(f1, want[i]))) {
            printf("  missing figure %s\n", want[i]);
            have = 0;
        }
    CHECK(have, "throughput figures present");
    json_t *acc = json_object();
    llm_bench_figures_add(acc, f1);
    llm_bench_figures_add(acc, f2);
    json_t *figs = llm_bench_figures_finish(acc);
    json_decref(acc);
    json_decref(f1);
    json_decref(f2);

    x.one_at_a_time = 1;
    rc = llm_bench_run_once(e, &m, &w, &x, &f1, &t1);
    CHECK(rc == 0 && t1.requests == 10 && t1.forwards >= (uint64_t)w.output_tokens,
          "latency repetition: one request at a time (%llu forwards >= %lld tokens)",
          (unsigned long long)t1.forwards, (long long)w.output_tokens);
    json_decref(f1);
    x.one_at_a_time = 0;
    x.phases = 1;
    rc = llm_bench_run_once(e, &m, &w, &x, &f1, &t1);
    double tpp = json_number_value(json_object_get(f1, "t_pp"));
    double t = json_number_value(json_object_get(f1, "t"));
    CHECK(rc == 0 && tpp > 0 && tpp <= t && json_is_number(json_object_get(f1, "s_tg")),
          "batched phases: 0 < T_PP %.6f <= T %.6f", tpp, t);
    json_decref(f1);

    struct llm_bench_workload big;
    llm_bench_workload_fixed(&big, 1, 60, 10, 0, 64);
    rc = llm_bench_run_once(e, &m, &big, &x, &f1, &t1);
    CHECK(rc == LLM_ECAPACITY && strstr(llm_errmsg(), "request 0"),
          "request longer than the context: %s", llm_errmsg());
    llm_bench_workload_free(&big);

    /* a document from these figures, in every format */
    char hex[17];
    llm_bench_hex64(llm_bench_workload_hash(&w), hex);
    json_t *res =
        json_pack("{s:s, s:s, s:s, s:{s:s, s:s}, s:{s:s}, s:{}, s:o}", "id", "throughput", "kind",
                  "throughput", "test", "throughput", "engine", "backend", "mock", "device",
                  "mock, device", "workload", "hash", hex, "params", "figures", figs);
    json_t *doc = json_pack("{s:s, s:i, s:{s:s, s:i}, s:{s:s, s:s}, s:o, s:[o]}", "format",
                            LLM_BENCH_FORMAT, "version", LLM_BENCH_VERSION, "run", "mode",
                            "throughput", "seed", 0, "model", "path", "mock.llm", "hash",
                            "0000000000000001", "env", llm_bench_env(0, 0), "results", res);
    CHECK(doc != NULL, "result document built");
    for (int fmt = 0; fmt < LLM_BENCH_FMT_COUNT; fmt++) {
        char *text = llm_bench_render(doc, fmt);
        CHECK(text && *text, "rendered as %s (%zu bytes)", llm_bench_fmt_name(fmt),
              text ? strlen(text) : 0);
        if (!text) continue;
        char name[32];
        snprintf(name, sizeof name, "doc.%s", llm_bench_fmt_name(fmt));
        const char *path = write_tmp(name, text);
        if (fmt == LLM_BENCH_JSON || fmt == LLM_BENCH_JSONL) {
            json_t *back = NULL;
            rc = llm_bench_doc_load(path, &back);
            CHECK(rc == 0 &&
                      json_equal(json_object_get(back, "results"), json_object_get(doc, "results")),
                  "%s reads back to the same results", name);
            json_decref(back);
        }
        if (fmt == LLM_BENCH_CSV) {
            /* every row has the header's column count (quotes respected) */
            int cols = -1, okc = 1, rows = 0, c = 1, q = 0;
            for (const char *p = text; *p; p++) {
                if (*p == '"')
                    q = !q;
                else if (*p == ',' && !q)
                    c++;
                else if (*p == '\n' && !q) {
                    if (cols < 0)
                        cols = c;
                    else if (c != cols)
                        okc = 0;
                    rows++;
                    c = 1;
                }
            }
            CHECK(okc && cols == 18 && rows > 10, "csv: %d rows of %d columns", rows, cols);
        }
        if (fmt == LLM_BENCH_MD)
            CHECK(strstr(text, "| test | req/s |") && strstr(text, "| test | figure |"),
                  "md has the summary and the figure tables");
        free(text);
    }
    const char *p = write_tmp("notours.json", "{\"format\": \"something\", \"results\": []}");
    json_t *x2 = NULL;
    CHECK(llm_bench_doc_load(p, &x2) == LLM_EFORMAT, "foreign JSON refused: %s", llm_errmsg());
    p = write_tmp("garbage.json", "not json\n");
    CHECK(llm_bench_doc_load(p, &x2) == LLM_EFORMAT, "garbage refused: %s", llm_errmsg());

    /* the gate: a baseline 20% faster / 20% slower than this document.
     * The mock's timings vary between repetitions; the spread-aware bar is
     * tested on synthetic results in test_gate.c, so the two figures
     * changed here get stddev 0 (the plain threshold applies). */
    const char *const quiet[] = {"output_tokens_per_s", "ttft_p99"};
    for (size_t q = 0; q < 2; q++)
        json_object_set_new(json_object_get(json_object_get(json_array_get(
                                                json_object_get(doc, "results"), 0),
                                                "figures"),
                                            quiet[q]),
                            "stddev", json_real(0));
    json_t *base = json_deep_copy(doc);
    json_t *bf = json_object_get(
        json_object_get(json_array_get(json_object_get(base, "results"), 0), "figures"),
        "output_tokens_per_s");
    double cur = json_number_value(json_object_get(bf, "mean"));
    json_object_set_new(bf, "mean", json_real(cur * 1.25));
    struct llm_bench_cmp *cmp = NULL;
    size_t n = 0;
    int reg = llm_bench_compare(base, doc, 10, &cmp, &n);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(cmp[i].figure, "output_tokens_per_s") && cmp[i].regressed &&
            fabs(cmp[i].change_pct - 20) < 1e-6)
            found = 1;
    CHECK(reg == 1 && found, "baseline 25%% faster: 1 regression (-20%% > 10%%), %zu compared", n);
    free(cmp);
    reg = llm_bench_compare(base, doc, 25, &cmp, &n);
    CHECK(reg == 0, "same with 25%% allowed: no regression");
    free(cmp);
    json_object_set_new(bf, "mean", json_real(cur * 0.5));
    reg = llm_bench_compare(base, doc, 0.0001, &cmp, &n);
    CHECK(reg == 0, "baseline slower than this run: no regression");
    free(cmp);
    json_object_set_new(bf, "mean", json_real(cur));
    json_t *lat = json_object_get(
        json_object_get(json_array_get(json_object_get(base, "results"), 0), "figures"),
        "ttft_p99");
    double l = json_number_value(json_object_get(lat, "mean"));
    json_object_set_new(lat, "mean", json_real(l / 2));
    reg = llm_bench_compare(base, doc, 50, &cmp, &n);
    CHECK(reg == 1, "baseline TTFT p99 half of this run's: latency regression (100%% > 50%%)");
    free(cmp);
    json_object_set_new(json_array_get(json_object_get(base, "results"), 0), "id",
                        json_string("other"));
    reg = llm_bench_compare(base, doc, 50, &cmp, &n);
    CHECK(reg == 0 && n == 0, "no matching test id: nothing compared");
    free(cmp);
    json_decref(base);
    json_decref(doc);

    llm_bench_workload_free(&w);
    llm_engine_free(e);
    llm_backend_destroy(be);
    llm_desc_free(&d);
}

static void test_probe(void)
{
    struct llm_bench_ceiling c;
    int rc = llm_bench_probe_cpu(&c, 1);
    CHECK(rc == 0 && c.mem_bw > 0 && isfinite(c.mem_bw) && c.flops > 0 && isfinite(c.flops) &&
              c.bw_how[0] && c.flops_how[0],
          "CPU probe: copy %.2f GB/s, fp32 linear %.2f GFLOP/s", c.mem_bw * 1e-9, c.flops * 1e-9);
    uint64_t peak = 0;
    CHECK(llm_bench_mem_peak(0, 0, &peak) == 0 && peak > 0, "peak RSS %llu bytes",
          (unsigned long long)peak);
    json_t *env = llm_bench_env(0, 0);
    CHECK(env && json_is_object(json_object_get(env, "host")) &&
              json_integer_value(json_object_get(json_object_get(env, "host"), "cpu_cores")) > 0 &&
              json_is_string(json_object_get(json_object_get(env, "build"), "commit")),
          "environment: host, cores, build commit");
    json_decref(env);
}

int main(void)
{
    llm_log_set_level(LLM_LOG_ERROR);
    snprintf(tmpdir, sizeof tmpdir, "%s/test-bench-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_synth();
    test_datasets();
    test_stats();
    test_cost();
    test_run();
    test_timing();
    test_telemetry();
    test_probe();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmpdir);
    if (fails) {
        printf("%d check(s) failed\n", fails);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
