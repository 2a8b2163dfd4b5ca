/* engine_artifact.h - the deployable engine that llm-build makes: an
 * artifact (same container, same reader) whose metadata gains an "engine"
 * member and whose weights are already in the layouts the CUDA kernels use
 * (formats/artifact.md, section "Engine").
 *
 * What differs from a plain artifact:
 *   - every float weight is in the engine's compute dtype (f16, bf16 or
 *     f32), except lm_head.bias, kept in f32 because the logits are f32;
 *   - for gated MLPs, mlp.fc and mlp.gate are one tensor
 *       transformer.layers.{i}.mlp.fc_gate.weight  [2 inter, hidden]
 *       transformer.layers.{i}.mlp.fc_gate.bias    [2 inter] (mlp biases)
 *     whose rows are fc's then gate's, so one product computes both;
 *   - "engine" records the target GPU architecture, the build limits
 *     (defaults for the runtime), the weight layouts and the cuBLASLt
 *     algorithm chosen for each matrix product.
 *
 * Design: the library part is plain data and streaming; nothing here
 * touches a GPU except the two llm_cuda_* functions at the end, which live
 * in lib/backend/cuda (and fail with LLM_EUNSUPPORTED where there is no
 * CUDA), so an engine can be built, read and checked on any machine.
 */
#ifndef LLM_ENGINE_ARTIFACT_H
#define LLM_ENGINE_ARTIFACT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "model.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LLM_EA_VERSION 1
#define LLM_EA_MAX_GRAPHS 32
/* Per-layer suffixes of the fused gate/up tensors. */
#define LLM_EA_FC_GATE_WEIGHT "mlp.fc_gate.weight"
#define LLM_EA_FC_GATE_BIAS "mlp.fc_gate.bias"

/* Limits the engine is built for; the runtime takes them as defaults. */
struct llm_ea_limits {
    int max_batch;   /* sequences in one step */
    int max_tokens;  /* tokens in one forward step */
    int max_seq_len; /* context length (prompt + generated) */
    int kv_dtype;    /* KV cache element type (the compute dtype today) */
    int block_size;  /* tokens per KV block */
    int n_graph;     /* CUDA graph batch sizes, increasing; 0 = eager launches */
    int graph_sizes[LLM_EA_MAX_GRAPHS];
};

/* Products of a forward step, in the order the backend runs them. */
enum llm_gemm_op {
    LLM_GEMM_QKV = 0, /* attention.qkv */
    LLM_GEMM_DENSE,   /* attention.dense, accumulated into the residual */
    LLM_GEMM_FC,      /* mlp.fc_gate (gated) or mlp.fc */
    LLM_GEMM_PROJ,    /* mlp.proj, accumulated into the residual */
    LLM_GEMM_LM_HEAD, /* lm_head, f32 logits */
    LLM_GEMM_OP_COUNT
};
const char *llm_gemm_op_name(int op); /* "qkv", "dense", "fc", "proj", "lm_head" */

/* One product y[m][n] (ldy) = x[m][k] (ldx) . w[n][k]^T (+ bias) (+ y), and
 * the cuBLASLt algorithm chosen for it.  At run time a product of m rows
 * uses the choice of the same shape with the smallest m >= its m (or the
 * largest m when none is that large). */
struct llm_gemm_choice {
    int op; /* enum llm_gemm_op */
    int m, n, k, ldx, ldy;
    int out_dtype; /* compute dtype, or f32 for the logits */
    int bias, accumulate;
    int measured;     /* 1: algo was timed on the target GPU; 0: heuristic at run time */
    uint64_t algo[8]; /* cublasLtMatmulAlgo_t, opaque (measured only) */
    double time_us;   /* mean time of the chosen algorithm (measured only) */
    int candidates;   /* algorithms the heuristic offered and were timed */
};

struct llm_ea_info {
    int version;
    int cc_major, cc_minor; /* target compute capability (sm_90: 9, 0) */
    char arch_suffix;       /* 'a' (sm_90a), 'f' (sm_100f) or 0, as given to --arch */
    char device[128];       /* GPU the build measured on; "" when built by --arch alone */
    int compute_dtype;
    struct llm_ea_limits lim;
    int fused_gate; /* gated MLP stored as mlp.fc_gate */
    /* GEMM choices */
    int gemm_measured;         /* 1 when every choice was measured on the GPU */
    uint64_t cublaslt_version; /* cublasLtGetVersion() at the measurement, 0 when none */
    uint64_t gemm_workspace;   /* workspace bytes the choices may use */
    int n_gemm;
    struct llm_gemm_choice *gemm; /* owned (malloc) */
};

void llm_ea_info_init(struct llm_ea_info *e);
void llm_ea_info_free(struct llm_ea_info *e);

/* "sm_90", "sm_90a", "sm_100f", "9.0" -> (major, minor) and the suffix
 * ('a', 'f' or 0; suffix may be NULL); LLM_EINVAL naming s. */
int llm_ea_parse_arch(const char *s, int *major, int *minor, char *suffix);
/* (9, 0, 0) -> "sm_90"; (9, 0, 'a') -> "sm_90a". */
void llm_ea_arch_name(int major, int minor, char suffix, char *buf, size_t cap);

/* Whether an artifact's metadata holds an "engine" member. */
int llm_ea_present(const json_t *meta);
/* Read meta's "engine" member; LLM_ENOTFOUND when there is none, LLM_EFORMAT
 * naming path and the field when it is malformed. */
int llm_ea_info_from_meta(const json_t *meta, const char *path, struct llm_ea_info *e);
json_t *llm_ea_info_to_json(const struct llm_ea_info *e);

/* The check every GPU runtime makes before using an engine: 0 when it was
 * built for compute capability major.minor, else LLM_EINVAL with
 *   "'x.engine': built for sm_80, this GPU is sm_90 (NVIDIA H100 80GB HBM3);
 *    rebuild it with llm-build"
 * gpu_name may be NULL. */
int llm_ea_check_arch(const struct llm_ea_info *e, const char *path, int major, int minor,
                      const char *gpu_name);

/* Default limits for a model: 256 sequences and 8192 tokens per step,
 * context max_position_embeddings (4096 when unknown), KV in the compute
 * dtype, blocks of 32 tokens, no graphs. */
void llm_ea_limits_default(const struct llm_model_desc *d, int compute_dtype,
                           struct llm_ea_limits *lim);
/* Check limits against the model and the CUDA backend's rules; LLM_EINVAL
 * or LLM_EUNSUPPORTED naming the option (--max-batch, --kv-dtype, ...). */
int llm_ea_limits_check(const struct llm_model_desc *d, int compute_dtype,
                        const struct llm_ea_limits *lim);

/* The products a forward step runs for this model, for every row count m
 * worth a choice (1, 4, 16, 64, ... up to max_tokens, and max_tokens and
 * max_batch themselves; lm_head up to max_batch), unmeasured. */
int llm_ea_plan_gemms(const struct llm_model_desc *d, int compute_dtype,
                      const struct llm_ea_limits *lim, struct llm_gemm_choice **out, int *n);
/* The choice a product of m rows uses (rule above), or NULL. */
const struct llm_gemm_choice *llm_ea_gemm_find(const struct llm_gemm_choice *c, int n_c, int m,
                                               int n, int k, int ldx, int ldy, int out_dtype,
                                               int bias, int accumulate);

/* ---- building ----------------------------------------------------------
 * Two steps, so that a tool can plan (limits, GEMM measurement) from the
 * model description before any tensor is written:
 *   llm_ea_build_open(&b, "model.llm")   validates the input: a whole,
 *       unquantized model with a description, not already an engine;
 *   llm_ea_build_desc(b)                 its description;
 *   llm_ea_build_run(b, out, &info, prov) streams the tensors to out
 *       ("-" = stdout), converted and fused, through llm_aw_* (temporary
 *       name, renamed when complete, removed on any failure); once per
 *       builder, which reads its input only once.
 * Input "-" is read from a pipe in one pass.  Memory stays near the size
 * of the largest tensor (plus any fc half waiting for its gate). */
struct llm_ea_builder;

struct llm_ea_build_cb {
    /* Called after each tensor is written (i from 0); NULL: nothing. */
    void (*tensor)(void *ctx, size_t i, const char *name, int dtype, int ndim, const int64_t *shape,
                   uint64_t nbytes);
    void *ctx;
};

int llm_ea_build_open(struct llm_ea_builder **out, const char *in_path);
/* The same with flags: LLM_MODEL_NO_VERIFY skips the tensor checksums,
 * which are otherwise checked for a whole file here, before any output
 * exists (a pipe's tensors as they are read, in llm_ea_build_run). */
int llm_ea_build_open_flags(struct llm_ea_builder **out, const char *in_path, unsigned flags);
const struct llm_model_desc *llm_ea_build_desc(const struct llm_ea_builder *b);
/* prov_entry: this tool's provenance entry ({"tool", "version", "commit",
 * "argv"}); the input's name, size and XXH3 are added as its "inputs" (a
 * pipe has no size or hash) and it is appended to the input's chain. */
int llm_ea_build_run(struct llm_ea_builder *b, const char *out_path, const struct llm_ea_info *info,
                     const json_t *prov_entry, const struct llm_ea_build_cb *cb);
void llm_ea_build_close(struct llm_ea_builder *b);

/* ---- the GPU side of a build (lib/backend/cuda/cuda_engine.c) ---------
 * Both return LLM_EUNSUPPORTED when built without CUDA or no device is
 * present. */

/* Compute capability and name of CUDA device `device`. */
int llm_cuda_device_query(int device, int *cc_major, int *cc_minor, char *name, size_t cap);
/* For each choice, ask cuBLASLt's heuristic for its candidate algorithms
 * (with at most `workspace` bytes of workspace), time each on device
 * `device` and keep the fastest (measured = 1, algo, time_us, candidates).
 * *version gets cublasLtGetVersion(). */
int llm_cuda_gemm_tune(int device, int compute_dtype, struct llm_gemm_choice *c, int n,
                       uint64_t workspace, uint64_t *version);

#ifdef __cplusplus
}
#endif
#endif
