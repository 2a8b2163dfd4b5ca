/* graph.h - the model definition: one forward pass as a list of steps,
 * derived once from the description, executed by every backend.
 *
 * The layer structure (where the norms sit, parallel or sequential
 * residual, post-LN, sandwich norms, q/k norms, clamping, gated or plain or
 * mixture-of-experts MLP, the final norm, projections and soft caps) is
 * decided here and only here.  A backend supplies one function that runs a
 * single step on its own buffers (llm_exec); llm_graph_run walks the steps.
 * So the CPU reference and the CUDA backend compute the same thing by
 * construction, and a structure a backend lacks an op for is refused by
 * llm_model_supported before anything runs.
 *
 * Buffers are activations of the step's rows, named by role; their
 * widths follow from the description (hidden, the fused qkv width, heads x
 * head_dim, vocab), except LLM_BUF_H, the MLP's inner activations, whose
 * layout is the backend's own.  The residual stream LLM_BUF_X carries the
 * running hidden state; a sub-block's output is added into it by the
 * projection that produces it (LINEAR with accumulate), or through the
 * tensor-parallel reduction points when the model is split:
 *     LINEAR AO = ATT . Wo  ->  ALLREDUCE AO  ->  ADD X += AO
 * A pipeline stage (a partitioned description, llm_desc_partition) runs
 * its own layers: a stage after the first starts by receiving the
 * residual stream X from the stage before (RECV), a stage before the last
 * ends by sending it on (SEND); the last stage's first tensor-parallel
 * rank sends the logits to rank 0, which samples (RECV LOGITS last).
 * Additions happen in Hugging Face's order: for a parallel residual the
 * attention and MLP outputs are summed first, then added to the residual.
 */
#ifndef LLM_GRAPH_H
#define LLM_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

enum llm_buf {
    LLM_BUF_X = 0,   /* residual stream [rows][hidden] */
    LLM_BUF_XN,      /* a sub-block's normalised input [rows][hidden] */
    LLM_BUF_XN2,     /* the MLP's own normalised input (parallel residual, two norms) */
    LLM_BUF_QKV,     /* fused q, k, v [rows][(nh + 2 nkv) hd] */
    LLM_BUF_ATT,     /* attention output [rows][nh hd] */
    LLM_BUF_AO,      /* a sub-block's projected output [rows][hidden] */
    LLM_BUF_H,       /* MLP inner activations (layout: the backend's) */
    LLM_BUF_FIN,     /* rows that need logits [n_out][hidden] */
    LLM_BUF_FIN2,    /* the same, normalised */
    LLM_BUF_LOGITS,  /* [n_out][vocab] fp32 */
    LLM_BUF_COUNT,
    LLM_BUF_NONE = 255
};

enum llm_op {
    LLM_OP_EMBED = 0,  /* out = embedding[token] * embed_scale (+ position_embedding[pos + offset]) */
    LLM_OP_NORM,       /* with add: in += add first; then out = norm(in) with the slot's weight */
    LLM_OP_LINEAR,     /* out = in . W^T + b (out += with accumulate); gated: the slot is
                          mlp.fc and out = act(in . Wfc^T + bfc) * (in . Wgate^T + bgate);
                          act >= 0 and not gated: out = act(in . W^T + b) */
    LLM_OP_QK_NORM,    /* per-head norm of QKV's q and k heads (slots q/k_layernorm) */
    LLM_OP_CLIP,       /* QKV clamped to [-clip_qkv, clip_qkv] */
    LLM_OP_ROPE_KV,    /* rotary on q and k (rope models), then K and V into the layer's pool */
    LLM_OP_ATTN,       /* ATT = causal attention of QKV's q over the sequence's cached K/V */
    LLM_OP_MOE,        /* out (+)= sum over the chosen experts of weight * expert(in) */
    LLM_OP_ADD,        /* out += in */
    LLM_OP_GATHER,     /* out[i] = in[out_rows[i]] */
    LLM_OP_SOFTCAP,    /* out = final_softcap * tanh(out / final_softcap) */
    LLM_OP_ALLREDUCE,  /* out summed over the tensor-parallel ranks */
    LLM_OP_ALLGATHER,  /* vocab-parallel logits gathered from every rank: each rank's
                          LINEAR wrote [rows][vocab_part]; out becomes [rows][vocab] */
    LLM_OP_SEND,       /* pipeline: out (its rows) to global rank `peer` */
    LLM_OP_RECV,       /* pipeline: out (its rows) from global rank `peer` */
    LLM_OP_SCALE,      /* out *= logit_scale */
    LLM_OP_RSCALE,     /* out *= residual_scale (a branch before its residual add) */
    LLM_OP_MLA,        /* latent attention's q, k, v from in (slots attention.q_a ...
                          kv_b), laid out in QKV as the other models' (kv heads =
                          heads; each head's rotary dims first, v zero-padded to
                          head_dim); ATTN then leaves the heads' v_head_dim values */
    LLM_OP_COUNT
};

enum llm_rows { LLM_ROWS_ALL = 0, LLM_ROWS_OUT };

struct llm_step {
    uint8_t op;         /* enum llm_op */
    uint8_t out, in, add; /* enum llm_buf (LLM_BUF_NONE when unused) */
    uint8_t slot;       /* enum llm_wslot of the weight, when the op has one */
    uint8_t rows;       /* enum llm_rows: every row of the step, or the out rows */
    uint8_t accumulate; /* LINEAR / MOE: add into out instead of writing it */
    uint8_t gated;      /* LINEAR: gated MLP input (slots mlp.fc and mlp.gate) */
    int8_t act;         /* LINEAR: activation epilogue (enum llm_act), -1 none */
    int16_t peer;       /* SEND / RECV: the other rank (global rank) */
};

#define LLM_GRAPH_MAX_STEPS 32

struct llm_graph_opts {
    int tp;         /* tensor-parallel ranks: reduction steps when > 1 (0: the
                       description's partition, llm_desc_partition) */
    int reduce;     /* emit the reduction steps even for one rank (tests) */
};

struct llm_graph {
    int tp, reduce;
    int n_pre, n_layer, n_post;
    struct llm_step pre[LLM_GRAPH_MAX_STEPS];   /* before the layers */
    struct llm_step layer[LLM_GRAPH_MAX_STEPS]; /* every layer (weights and window per layer) */
    struct llm_step post[LLM_GRAPH_MAX_STEPS];  /* after the layers: logits of the out rows */
    int first_layer, n_layers;                   /* the layers this graph runs */
};

/* Derive the steps from d (which must be valid).  o may be NULL. */
int llm_graph_build(struct llm_graph *g, const struct llm_model_desc *d,
                    const struct llm_graph_opts *o);

/* A backend's executor: run step s (layer -1 for the pre and post steps). */
struct llm_exec {
    int (*step)(void *ctx, const struct llm_step *s, int layer);
    void *ctx;
};
/* Run every step in order; stops at the first error. */
int llm_graph_run(const struct llm_graph *g, const struct llm_exec *x);

/* A norm whose output goes into linear products and nowhere else (not the
 * residual stream, an addition, a router or a later layer): the norm's
 * slot and those products' weight slots in step order, a gated MLP's
 * mlp.fc and mlp.gate both.  Every such product reads the same rows, so a
 * scaling of their input channels can be moved into the norm's weight
 * (SmoothQuant's factors, llm-quantize).  The same for every layer when
 * the norm is a per-layer slot. */
#define LLM_NORM_USE_MAX 4
struct llm_norm_use {
    int norm;                     /* enum llm_wslot */
    int n;                        /* products that read it */
    int linear[LLM_NORM_USE_MAX]; /* their enum llm_wslot */
};
/* Every such norm of g: up to max into u; returns how many there are. */
int llm_graph_norm_uses(const struct llm_graph *g, struct llm_norm_use *u, int max);

const char *llm_op_name(int op);   /* "EMBED", "NORM", ... */
const char *llm_buf_name(int buf); /* "X", "XN", ... */
/* The steps as text, one per line ("LINEAR X += ATT . attention.dense"),
 * for tests, llm-info and the docs.  Returns the length it needed. */
size_t llm_graph_describe(const struct llm_graph *g, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
