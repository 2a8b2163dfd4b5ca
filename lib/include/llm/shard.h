/* shard.h - how each tensor of a whole model is split over the ranks of a
 * tensor/pipeline-parallel job (llm-shard writes the rank files, and merges
 * them back).
 *
 * The rules are TensorRT-LLM's: the fused qkv column-parallel by heads (KV
 * heads replicated when tp exceeds them), the attention output and MLP down
 * projections row-parallel (their bias on tp rank 0 only: it is added once,
 * after the sum), fc / gate column-parallel (inside each expert for MoE),
 * the lm_head vocab-parallel (rows padded with zeros to a multiple of tp),
 * everything else whole.  With expert parallelism (ep groups of tp / ep
 * ranks, group tp_rank / (tp / ep)) an expert stack's leading axis is cut
 * too: each group holds its whole experts, split inside the group as above
 * over tp / ep ranks (rank tp_rank % (tp / ep)), the down projection's
 * bias on the group's first rank.  Quantization scales follow their weight's split
 * axis (int4 group scales [in / group][out] split by groups when the input
 * is split).  Pipeline stages take contiguous layers (llm_partition_layers);
 * the embeddings live on the first stage, the final norm and lm_head on the
 * last.  A tied lm_head becomes a tensor of its own on the last stage.
 */
#ifndef LLM_SHARD_H
#define LLM_SHARD_H

#include <stdint.h>

#include "model.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

enum llm_split_kind {
    LLM_SPLIT_WHOLE = 0, /* every rank of the stage holds all of it */
    LLM_SPLIT_FIRST,     /* tp rank 0 of the stage holds all of it, the others nothing */
    LLM_SPLIT_EVEN,      /* axis in tp equal parts */
    LLM_SPLIT_QKV,       /* axis is q; k; v heads: each rank its query heads and KV heads */
    LLM_SPLIT_KV_HEADS,  /* axis is KV heads */
    LLM_SPLIT_VOCAB,     /* axis is the vocabulary: tp parts of ceil(vocab / tp), zero-padded */
};

struct llm_split {
    int kind;            /* enum llm_split_kind */
    int axis;            /* the split axis (kinds EVEN..VOCAB) */
    int layer;           /* the tensor's layer, or -1 */
    int stage_first;     /* on the first pipeline stage only (embeddings) */
    int stage_last;      /* on the last pipeline stage only (final norm, lm_head) */
    int experts;         /* axis 0 is the experts (an expert stack or its biases) */
};

/* The rule for tensor `name` (shape as stored) of the whole model d. */
int llm_split_of(const struct llm_model_desc *d, const char *name, int ndim, const int64_t *shape,
                 struct llm_split *s);

/* Whether tensor-parallel rank tp_rank of stage pp_rank holds it (ep
 * expert groups). */
int llm_split_held(const struct llm_model_desc *d, const struct llm_split *s, int tp, int ep,
                   int pp, int tp_rank, int pp_rank);
/* Whether a rank holding it holds all of it (ep expert groups). */
int llm_split_whole(const struct llm_split *s, int ep);

#define LLM_SPLIT_MAX_RANGES 3
struct llm_split_ranges {
    int n;
    int64_t start[LLM_SPLIT_MAX_RANGES], len[LLM_SPLIT_MAX_RANGES];
    int64_t pad;  /* zero entries appended (vocab padding) */
    int64_t local; /* the rank's length of the axis: sum of len + pad */
    int64_t expert_first, experts; /* the experts held (axis 0); experts 0 = all */
};
/* The parts of the axis (length `whole` in the whole model) rank tp_rank
 * holds, and its experts of an expert stack under ep groups. */
int llm_split_ranges(const struct llm_model_desc *d, const struct llm_split *s, int64_t whole,
                     int tp, int ep, int tp_rank, struct llm_split_ranges *r);
/* The whole model's axis length from a rank's (merging); an expert stack's
 * axis 0 is d->n_experts. */
int64_t llm_split_whole_len(const struct llm_model_desc *d, const struct llm_split *s,
                            int64_t local, int tp, int ep);

/* Copy between a whole tensor and one rank's slice along s->axis (the
 * element size in bits, 4 for packed int4), within the rank's experts
 * when r->experts: to_slice 1 fills part from whole (zeros in the
 * padding), 0 writes part's ranges back into whole. */
int llm_split_copy(const struct llm_split *s, const struct llm_split_ranges *r, int ndim,
                   const int64_t *whole_shape, int bits, void *whole, void *part, int to_slice);

#ifdef __cplusplus
}
#endif
#endif
