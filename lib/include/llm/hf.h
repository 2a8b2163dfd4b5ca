/* hf.h - Hugging Face checkpoints in: their metadata files read as
 * published, the conversion plan from HF tensors to canonical ones, and
 * the converter that writes an artifact.
 *
 * The architecture registry (lib/model/arch/, one file per family) says,
 * for each family, which HF classes it covers, how its config.json reads
 * and which HF tensors make each canonical tensor, with the transforms real
 * checkpoints need.  Everything here goes through it; nothing else in the
 * library knows HF names.
 *
 * Metadata files are read tolerantly: integers beyond 64 bits (the usual
 * tokenizer_config.json "model_max_length"), NaN and Infinity, null for
 * absent, duplicate keys (the last one wins, as in Python) and fields never
 * seen before are accepted; only the fields the model needs are strict.
 */
#ifndef LLM_HF_H
#define LLM_HF_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- metadata files ---------------------------------------------------------- */

/* Parse a JSON document from a Hugging Face checkpoint tolerantly (see
 * above): integers that do not fit 64 bits become reals, NaN becomes null,
 * +-Infinity the largest finite doubles.  src names the file in messages
 * ("'DIR/config.json': not valid JSON: ... (line 3, column 5)"). */
int llm_hf_json_parse(const char *buf, size_t len, const char *src, json_t **out);
/* The same from a file (at most 64 MiB). */
int llm_hf_json_load(const char *path, json_t **out);

/* What config.json's quantization_config says (pre-quantized checkpoints:
 * AutoAWQ, GPTQ, compressed-tensors, ModelOpt FP8, bitsandbytes, ...).
 * Parsed for the importers; raw keeps the whole object. */
struct llm_hf_quant {
    char method[32];        /* quant_method: "awq", "gptq", "fp8", "compressed-tensors", ...; "" none */
    int bits;               /* 4, 8; 0 unknown */
    int group_size;         /* -1 per channel; 0 unknown */
    int zero_point;         /* AWQ "zero_point" / GPTQ !sym; -1 unknown */
    int desc_act;           /* GPTQ act-order; -1 unknown */
    char fmt[32];           /* "fp8", "e4m3", AWQ "version" ("gemm"), ... */
    json_t *raw;            /* owned reference, or NULL */
};
void llm_hf_quant_free(struct llm_hf_quant *q);

/* Read DIR/config.json (and DIR/generation_config.json when present) into
 * a description.  DIR may also name the config.json file itself.
 * Unknown architectures fail with LLM_EUNSUPPORTED naming the class;
 * missing required fields with LLM_EFORMAT naming the field. */
int llm_hfconfig_load(const char *dir, struct llm_model_desc *d, struct llm_gen_defaults *g);
/* The same, with the quantization_config (q may be NULL). */
int llm_hfconfig_load_ex(const char *dir, struct llm_model_desc *d, struct llm_gen_defaults *g,
                         struct llm_hf_quant *q);
/* Whether the converter can import a checkpoint quantized this way: 0 for
 * none, else LLM_EUNSUPPORTED naming the method (src names config.json). */
int llm_hf_quant_importable(const struct llm_hf_quant *q, const char *src);
/* Same from already-parsed JSON (config, generation_config may be NULL);
 * src names the file in messages.  q (may be NULL) receives the
 * quantization_config; with q NULL a pre-quantized config is still read. */
int llm_hfconfig_parse(const json_t *config, const json_t *gen_config, const char *src,
                       struct llm_model_desc *d, struct llm_gen_defaults *g);
int llm_hfconfig_parse_ex(const json_t *config, const json_t *gen_config, const char *src,
                          struct llm_model_desc *d, struct llm_gen_defaults *g,
                          struct llm_hf_quant *q);

/* The architecture a config names: its architectures[0] class (or
 * model_type when there is none) looked up in the registry; -1 when
 * unknown.  For messages and tests. */
int llm_hf_arch_of_class(const char *hf_class);
int llm_hf_arch_of_model_type(const char *model_type);
/* The canonical HF class of an architecture ("LlamaForCausalLM"). */
const char *llm_hf_arch_class(int arch);

/* ---- HF tensors -> canonical tensors ------------------------------------------
 * A conversion plan: for each canonical tensor, its HF sources and the
 * transform that makes it from them.  Planning touches no tensor data:
 * every source is checked for presence, shape and dtype up front (errors
 * name the HF tensor and its file), so executing a plan cannot fail on a
 * missing or misshapen input.  Items come in the order their first source
 * appears in the checkpoint, so a converter reads the files front to back. */
enum llm_xform {
    LLM_XF_COPY = 0,    /* one source, as it is */
    LLM_XF_CONCAT,      /* sources' rows one after the other (q; k; v) */
    LLM_XF_TRANSPOSE,   /* one 2-D source [in][out] (GPT-2's Conv1D) -> [out][in] */
    LLM_XF_QKV_HEADS,   /* one fused source whose rows are per KV-head groups of
                           [q heads of the group][k][v], each head_dim rows (GPT-NeoX,
                           BLOOM, Falcon): regrouped into q; k; v */
    LLM_XF_ROWS,        /* a row range [row0, row0 + shape[0]) of one source (Phi-3's
                           fused gate_up: fc is the first half, gate the second) */
    LLM_XF_STACK,       /* n_src sources of equal shape stacked on a new leading dim
                           (MoE experts) */
    LLM_XF_COUNT
};
const char *llm_xform_name(int x);

struct llm_st;
#define LLM_PLAN_MAX_SRC 256   /* an expert stack has one source per expert */
struct llm_plan_item {
    char name[LLM_NAME_MAX];              /* canonical name */
    int ndim;
    int64_t shape[LLM_MAX_DIMS];          /* canonical shape */
    int xform;                            /* enum llm_xform */
    int64_t row0;                         /* LLM_XF_ROWS: first source row */
    int qkv_groups, qkv_q_per_group;      /* LLM_XF_QKV_HEADS layout, head_dim rows each */
    int head_dim;
    int n_src;
    size_t src[LLM_PLAN_MAX_SRC];         /* indices into the llm_st tensor list */
};
int llm_hfmap_plan(const struct llm_model_desc *d, const struct llm_st *st,
                   struct llm_plan_item **items, size_t *n);

/* Build one canonical tensor of a plan item into dst (nbytes of dtype dt,
 * row-major in the canonical shape), converting the sources' dtype to dt. */
int llm_hfmap_build(const struct llm_plan_item *it, const struct llm_st *st, int dt, void *dst,
                    uint64_t nbytes);

/* ---- the converter (lib/model/convert.c) ------------------------------------- */

struct llm_convert_opts {
    const char *out;        /* output path; NULL or "-" = standard output */
    int dtype;              /* float tensors' dtype: -1 keep, else f32/f16/bf16 */
    int compress_level;     /* 0 none, 1..22 zstd per tensor */
    int verbose;            /* -1 errors only, 0 summary, 1 every tensor (on the log) */
};
void llm_convert_opts_init(struct llm_convert_opts *o);
/* A Hugging Face checkpoint folder (config.json, *.safetensors, tokenizer
 * files) -> one artifact.  Streams one tensor at a time in file order;
 * nothing is left behind on failure. */
int llm_convert_hf(const char *dir, const struct llm_convert_opts *o);
/* Random weights (seeded per tensor name) in the shapes a config.json gives.
 * Both record "llm-convert" and the options in canonical form as the
 * artifact's provenance (formats/artifact.md). */
int llm_convert_random(const char *config_path, uint64_t seed, const struct llm_convert_opts *o);

#ifdef __cplusplus
}
#endif
#endif
