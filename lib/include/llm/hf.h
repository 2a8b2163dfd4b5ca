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
 * none or a scheme llm_hfq_scheme maps, else LLM_EUNSUPPORTED in one line
 * naming the method or scheme (src names config.json). */
int llm_hf_quant_importable(const struct llm_hf_quant *q, const char *src);

/* A pre-quantized checkpoint as the importer (lib/model/hfquant.c) maps it
 * onto the formats llm-quantize writes (formats/artifact.md):
 *   FP8 (compressed-tensors float-quantized / naive-quantized, ModelOpt):
 *     e4m3 weights with a scale per tensor or per output channel; static
 *     per-tensor input scales -> "FP8", dynamic per-token -> "FP8_PER_CHANNEL_
 *     PER_TOKEN";
 *   AutoAWQ GEMM 4 bits -> "W4A16_AWQ" (int4 groups with zero points);
 *   GPTQ 4 bits -> "W4A16_GPTQ" (int4 groups, zero points), 8 bits with one
 *     group per channel -> "W8A16_GPTQ" (int8 per channel).
 * Whatever the formats cannot hold exactly is refused, naming the scheme. */
enum llm_hfq_kind { LLM_HFQ_NONE = 0, LLM_HFQ_FP8, LLM_HFQ_AWQ, LLM_HFQ_GPTQ };
struct llm_hfq {
    int kind;               /* enum llm_hfq_kind */
    int bits;               /* AWQ, GPTQ: 4 or 8 */
    int group_size;         /* AWQ, GPTQ: inputs per group; -1 one group per channel */
    int act_static;         /* FP8: a static per-tensor input scale (else dynamic per token) */
    int zero_offset;        /* GPTQ: stored zeros are zero - 1 (checkpoint_format "gptq") */
    int mxfp4;              /* quant_method mxfp4 (GPT-OSS's experts): kind stays NONE, the
                               stacks are expanded to bf16 when converted */
    int fp8_block[2];       /* quant_method fp8 with weight_block_size (DeepSeek V3, Qwen3-FP8):
                               rows and columns of a block of one scale; kind stays NONE, the
                               F8_E4M3 weights are expanded to bf16 (w * weight_scale_inv in
                               fp32, rounded once) when converted */
    char scheme[128];       /* in words, for messages ("compressed-tensors FP8 ...") */
    struct llm_quant quant; /* the artifact's quantization section */
};
/* The scheme of q (LLM_HFQ_NONE when not quantized); src names config.json. */
int llm_hfq_scheme(const struct llm_hf_quant *q, const char *src, struct llm_hfq *s);
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
    LLM_XF_COPY = 0,  /* one source, as it is */
    LLM_XF_CONCAT,    /* sources' rows one after the other (q; k; v) */
    LLM_XF_TRANSPOSE, /* one 2-D source [in][out] (GPT-2's Conv1D) -> [out][in]; of a
                         3-D item, each leading index's matrix (GPT-OSS's down_proj
                         [E][in][out]) */
    LLM_XF_QKV_HEADS, /* one fused source whose rows are per KV-head groups of
                         [q heads of the group][k][v], each head_dim rows (GPT-NeoX,
                         BLOOM, Falcon): regrouped into q; k; v */
    LLM_XF_ROWS,      /* a row range [row0, row0 + shape[0]) of one source (Phi-3's
                         fused gate_up: fc is the first half, gate the second); of a
                         3-D item, the range of rows of each leading index (GraniteMoe's
                         experts [E][2 I][hidden]) */
    LLM_XF_STACK,     /* n_src sources of equal shape stacked on a new leading dim
                         (MoE experts); the rule's second name, when it has one, is
                         copied in a layer without experts (DeepSeek's dense layers) */
    LLM_XF_ONES,      /* ones, for a norm the checkpoint has no weight for (OLMo's
                         LayerNorm without parameters); the one source names a tensor
                         whose dtype the ones take */
    LLM_XF_DEINTERLEAVE, /* every other column of an x @ W expert stack (GPT-OSS's
                         gate_up_proj [E][in][2 out], gate in the even columns): the
                         columns half, half + 2, ... as [E][out][in]; of a bias
                         [E][2 out], its entries half, half + 2, ... */
    LLM_XF_COLS,      /* a column half of an x @ W expert stack [E][in][2 out]
                         (Qwen3-VL-MoE's gate_up_proj as published): the columns
                         row0 .. row0 + out - 1 as [E][out][in] */
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
    int64_t row0;                         /* LLM_XF_ROWS: first source row;
                                             LLM_XF_DEINTERLEAVE: first column (0, 1) */
    int qkv_groups, qkv_q_per_group;      /* LLM_XF_QKV_HEADS layout, head_dim rows each */
    int head_dim;
    int n_src;
    size_t src[LLM_PLAN_MAX_SRC];         /* indices into the llm_st tensor list */
    /* a pre-quantized weight (COPY or CONCAT only): quant is the llm_hfq_kind,
     * src[k] the quantized weight (FP8 weight, AWQ / GPTQ qweight) of part k and
     * qside[k] its side tensors: scale (weight_scale, scales), then FP8's
     * input_scale or AWQ / GPTQ's qzeros, then GPTQ's g_idx (SIZE_MAX: none) */
    int quant;
    size_t qside[3][3];
    /* an MXFP4 expert stack (GPT-OSS; transform COPY, TRANSPOSE or
     * DEINTERLEAVE): src[0] is <name>_blocks [E][rows][cols / 32][16] and
     * qside[0][0] <name>_scales [E][rows][cols / 32], both in the [E][out][in]
     * orientation whatever the dense tensor's (DEINTERLEAVE: rows 2 out,
     * gate in the even rows); expanded to bf16 exactly (value * 2^(scale - 127)) */
    int mx;
    /* sources that are block-FP8 weights (quant_method fp8 with
     * weight_block_size; COPY, CONCAT or STACK): qside[k][0] is source k's
     * weight_scale_inv [ceil(rows / block)][ceil(cols / block)], SIZE_MAX
     * for a source stored dense */
    int fp8b;
    int fp8_block[2];
};
int llm_hfmap_plan(const struct llm_model_desc *d, const struct llm_st *st,
                   struct llm_plan_item **items, size_t *n);
/* The same for a pre-quantized checkpoint (q NULL or LLM_HFQ_NONE: as above):
 * every quantized source's side tensors are checked up front too. */
int llm_hfmap_plan_q(const struct llm_model_desc *d, const struct llm_st *st,
                     const struct llm_hfq *q, struct llm_plan_item **items, size_t *n);
/* Write a quantized item (it->quant) as the weight and its side tensors
 * under the canonical stem; *nbytes gets the bytes written. */
struct llm_aw;
int llm_hfq_write(const struct llm_plan_item *it, const struct llm_st *st,
                  const struct llm_hfq *q, struct llm_aw *w, uint64_t *nbytes);

/* Whether any GPTQ weight of the plan is act-order (a g_idx other than
 * i / group, written with an input permutation): *any, for the section's
 * act_order before the first tensor is written.  Reads every g_idx, and
 * refuses one naming an out-of-range group or groups of uneven size. */
int llm_hfq_act_order(const struct llm_hfq *q, const struct llm_st *st,
                      const struct llm_plan_item *items, size_t n, int *any);

/* Elements of the canonical tensors a conversion makes without a checkpoint
 * tensor behind them (LLM_XF_ONES: OLMo's parameterless norms), so that
 * llm_desc_n_params(d) less this is what the checkpoint itself holds. */
uint64_t llm_hfmap_made_params(const struct llm_model_desc *d);

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
