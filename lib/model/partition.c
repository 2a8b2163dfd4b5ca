/* partition.c - which part of a model one rank of a tensor/pipeline-
 * parallel job runs (llm/model.h, "partitions").
 *
 * The rank's description is the model's with its own sizes: its query and
 * KV heads, its slice of the MLP, and in d->part where the slice sits (the
 * first head, the stage's layers, the lm_head rows, the experts it holds
 * under expert parallelism).  Everything that
 * derives shapes from a description (names.c, weights.c, the backends)
 * then sees the rank's tensors without knowing about ranks; only ALiBi
 * (slopes depend on the head's index among all heads), the vocab-parallel
 * logits and the experts a rank runs (its router scores all of them) look
 * at d->part.
 */
#include <string.h>

#include "llm/err.h"
#include "llm/model.h"

void llm_partition_layers(int n_layers, int pp, int stage, int *first, int *end)
{
    if (pp < 1) pp = 1;
    int base = n_layers / pp, extra = n_layers % pp;
    int f = stage * base + (stage < extra ? stage : extra);
    *first = f;
    *end = f + base + (stage < extra ? 1 : 0);
}

/* Expert parallelism: ep groups of the tp ranks, each with whole experts. */
static int check_ep(const struct llm_model_desc *d, int tp, int ep)
{
    if (ep < 1 || ep > 4096) return llm_err_set(LLM_EINVAL, "ep %d must be within 1..4096", ep);
    if (ep == 1) return 0;
    if (d->n_experts <= 0)
        return llm_err_set(LLM_EINVAL, "ep %d: the model has no experts to split", ep);
    if (ep > tp)
        return llm_err_set(LLM_EINVAL, "ep %d exceeds tp %d: the experts are split among the "
                           "tensor-parallel ranks", ep, tp);
    if (tp % ep)
        return llm_err_set(LLM_EINVAL, "ep %d does not divide tp %d", ep, tp);
    if (d->n_experts % ep)
        return llm_err_set(LLM_EINVAL, "ep %d does not divide the model's %d experts", ep,
                           d->n_experts);
    return 0;
}

int llm_partition_check(const struct llm_model_desc *d, const struct llm_quant *q, int tp, int pp,
                        int ep)
{
    if (tp < 1 || pp < 1 || tp > 4096 || pp > 4096)
        return llm_err_set(LLM_EINVAL, "tp %d and pp %d must be within 1..4096", tp, pp);
    int rc = check_ep(d, tp, ep);
    if (rc) return rc;
    if (pp > d->n_layers)
        return llm_err_set(LLM_EINVAL, "pp %d exceeds the model's %d layers", pp, d->n_layers);
    if (d->n_heads % tp)
        return llm_err_set(LLM_EINVAL, "tp %d does not divide the model's %d attention heads", tp,
                           d->n_heads);
    int nkv = d->n_kv_heads;
    if (nkv >= tp ? nkv % tp : tp % nkv)
        return llm_err_set(LLM_EINVAL, "tp %d and the model's %d KV heads: one must divide the "
                           "other", tp, nkv);
    /* an expert's inner size is split over its group's tp / ep ranks */
    const int mtp = tp / ep;
    if (d->intermediate % mtp) {
        if (ep > 1)
            return llm_err_set(LLM_EINVAL, "tp %d / ep %d = %d does not divide the experts' inner "
                               "size %lld", tp, ep, mtp, (long long)d->intermediate);
        return llm_err_set(LLM_EINVAL, "tp %d does not divide the MLP's inner size %lld", tp,
                           (long long)d->intermediate);
    }
    if (q && q->group_size < 0 && tp > 1)
        return llm_err_set(LLM_EUNSUPPORTED,
                           "tp %d: int4 weights with one group per channel "
                           "(group_size -1) are not split across ranks (pp splits them)",
                           tp);
    if (q && q->group_size > 0 && tp > 1) {
        int64_t g = q->group_size, att = (int64_t)d->n_heads * d->head_dim / tp;
        if (att % g || (d->intermediate / mtp) % g)
            return llm_err_set(LLM_EINVAL, "tp %d splits the int4 groups of %lld: each rank's "
                               "attention output input (%lld) and MLP inner size (%lld) must be "
                               "multiples of the group size", tp, (long long)g, (long long)att,
                               (long long)(d->intermediate / mtp));
    }
    if (d->kv_lora_rank > 0 && tp > 1)
        return llm_err_set(LLM_EUNSUPPORTED, "latent attention (MLA) is not split across ranks "
                                             "(pp splits the model)");
    if (d->moe_first_layer > 0 && (tp > 1 || ep > 1))
        return llm_err_set(LLM_EUNSUPPORTED, "dense layers before the experts are not split "
                                             "across ranks (pp splits the model)");
    if (d->shared_expert_inter > 0 && (tp > 1 || ep > 1))
        return llm_err_set(LLM_EUNSUPPORTED, "a shared expert (Qwen2-MoE) is not split across "
                                             "ranks (pp splits the model)");
    if (q && q->algo && d->n_experts > 0 && tp > 1)
        return llm_err_set(LLM_EUNSUPPORTED, "quantized experts are not split across ranks");
    /* the norm's statistic is over every head of the row: a rank holds only some */
    if (d->qk_norm == LLM_QK_NORM_RMS_ALL && tp > 1)
        return llm_err_set(LLM_EUNSUPPORTED,
                           "tp %d: q/k norms over all the heads at once (OLMo 2) "
                           "are not split across ranks (pp splits it)",
                           tp);
    return 0;
}

int llm_desc_partition(struct llm_model_desc *d, const struct llm_mapping *mp,
                       const struct llm_quant *q)
{
    int tp = mp->tp_size, pp = mp->pp_size, ep = mp->ep_size > 1 ? mp->ep_size : 1;
    if (tp == 1 && pp == 1 && ep == 1) return 0;
    int rc = llm_partition_check(d, q, tp, pp, ep);
    if (rc) return rc;
    struct llm_part *p = &d->part;
    memset(p, 0, sizeof *p);
    p->tp = tp;
    p->tp_rank = mp->tp_rank;
    p->pp = pp;
    p->pp_rank = mp->pp_rank;
    llm_partition_layers(d->n_layers, pp, mp->pp_rank, &p->first_layer, &p->end_layer);
    p->heads_total = d->n_heads;
    d->n_heads /= tp;
    p->head_offset = mp->tp_rank * d->n_heads;
    d->n_kv_heads = d->n_kv_heads >= tp ? d->n_kv_heads / tp : 1;
    /* a dense MLP over all tp ranks; an expert over its group's tp / ep */
    const int mtp = tp / ep;
    d->intermediate /= mtp;
    if (ep > 1) {
        p->ep = ep;
        p->ep_rank = mp->tp_rank % ep; /* TensorRT-LLM's moe_ep_rank, moe_tp_rank */
        p->moe_tp_rank = mp->tp_rank / ep;
        p->experts = d->n_experts / ep;
        p->expert_first = p->ep_rank * p->experts;
    } else {
        p->moe_tp_rank = mp->tp_rank;
    }
    p->vocab_part = (d->vocab_size + tp - 1) / tp;
    /* the lm_head is a tensor of its own on the last stage */
    d->tied_embeddings = 0;
    return 0;
}

int llm_part_tp(const struct llm_model_desc *d)
{
    return d->part.tp > 1 ? d->part.tp : 1;
}

int llm_part_pp(const struct llm_model_desc *d)
{
    return d->part.pp > 1 ? d->part.pp : 1;
}

int llm_part_experts(const struct llm_model_desc *d, int *first)
{
    *first = d->part.experts > 0 ? d->part.expert_first : 0;
    return d->part.experts > 0 ? d->part.experts : d->n_experts;
}

int llm_part_has_layer(const struct llm_model_desc *d, int l)
{
    if (l < 0 || l >= d->n_layers) return 0;
    if (!d->part.end_layer) return 1;
    return l >= d->part.first_layer && l < d->part.end_layer;
}

int llm_part_first_stage(const struct llm_model_desc *d)
{
    return d->part.pp_rank == 0;
}

int llm_part_last_stage(const struct llm_model_desc *d)
{
    return d->part.pp_rank == llm_part_pp(d) - 1;
}
