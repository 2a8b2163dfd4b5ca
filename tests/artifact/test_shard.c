/* test_shard.c - the split rules of llm/shard.h for expert stacks under
 * expert parallelism (llm-shard --ep), the part a rank's description gets
 * (llm_desc_partition) and the refusals of llm_partition_check.
 *
 * A MoE description with MLP biases (no fixture has them): every expert
 * tensor is cut for each rank of tp 4 with ep 1, 2 and 4, each slice is
 * checked against the shape the rank's description expects and against
 * the whole tensor element by element, and the slices written back give
 * the whole tensor again (what --merge does).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "llm/model.h"
#include "llm/shard.h"
#include "llm/weight.h"

static int failures, checks;

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        checks++;                                                                            \
        if (!(cond)) {                                                                       \
            failures++;                                                                      \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                             \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fprintf(stderr, " [last error: %s]\n", llm_errmsg());                            \
        }                                                                                    \
    } while (0)

enum { NE = 4, H = 8, I = 12, TP = 4 };

static void moe_desc(struct llm_model_desc *d)
{
    llm_desc_init(d);
    d->n_layers = 2;
    d->hidden = H;
    d->n_heads = 4;
    d->n_kv_heads = 2;
    d->head_dim = 2;
    d->intermediate = I;
    d->vocab_size = 64;
    d->n_experts = NE;
    d->n_experts_per_tok = 2;
    d->gated_mlp = 1;
    d->mlp_bias = 1;
}

/* Tensor `name` of the whole model (shape ndim/shape, values 0, 1, 2...)
 * cut for every rank of tp TP with ep groups: each slice matches the rank's
 * description and the whole tensor, and the slices put back give it again. */
static void round_trip(const struct llm_model_desc *d, int ep, const char *name, int slot,
                       int is_bias, int ndim, const int64_t *shape)
{
    struct llm_split s;
    CHECK(llm_split_of(d, name, ndim, shape, &s) == 0 && s.experts, "%s: rule", name);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *whole = malloc(sizeof(float) * (size_t)n), *back = calloc((size_t)n, sizeof(float));
    float *part = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) whole[i] = (float)i;
    int holders = 0;
    for (int r = 0; r < TP; r++) {
        if (!llm_split_held(d, &s, TP, ep, 1, r, 0)) continue;
        holders++;
        struct llm_split_ranges g;
        int64_t ps[LLM_MAX_DIMS] = {0};
        memcpy(ps, shape, sizeof(int64_t) * (size_t)ndim);
        CHECK(llm_split_ranges(d, &s, shape[s.axis], TP, ep, r, &g) == 0, "%s: ranges", name);
        if (!llm_split_whole(&s, ep)) ps[s.axis] = g.local;
        if (g.experts) ps[0] = g.experts;
        /* the rank's description expects that shape */
        struct llm_model_desc rd = *d;
        struct llm_mapping mp = {TP, TP, 1, r, 0, ep};
        CHECK(llm_desc_partition(&rd, &mp, NULL) == 0, "partition tp %d ep %d rank %d", TP, ep,
              r);
        int wn, bn;
        int64_t ws[LLM_MAX_DIMS], bs[LLM_MAX_DIMS];
        CHECK(llm_desc_slot_shape(&rd, slot, -1, &wn, ws, &bn, bs) == 0, "%s: slot shape", name);
        const int en = is_bias ? bn : wn;
        const int64_t *es = is_bias ? bs : ws;
        CHECK(en == ndim && !memcmp(es, ps, sizeof(int64_t) * (size_t)ndim),
              "%s ep %d rank %d: slice [%lld, %lld, ...] but the rank expects %d-d [%lld, %lld, ...]",
              name, ep, r, (long long)ps[0], (long long)ps[1], en, (long long)es[0],
              (long long)es[1]);
        CHECK(llm_split_copy(&s, &g, ndim, shape, 32, whole, part, 1) == 0, "%s: cut", name);
        /* expert e of the slice is expert e + first of the whole; the split
         * axis holds the rank's range inside the group */
        int first = rd.part.experts ? rd.part.expert_first : 0;
        int64_t inner = 1;
        for (int i = 1; i < ndim; i++) inner *= ps[i];
        int ok = 1;
        for (int64_t e = 0; e < ps[0] && ok; e++)
            for (int64_t j = 0; j < inner && ok; j++) {
                int64_t row = j, col = 0, wcol = 0;
                if (ndim == 3) {
                    row = j / ps[2];
                    col = j % ps[2];
                }
                int64_t wrow = row;
                if (!llm_split_whole(&s, ep) && s.axis == 1) wrow = g.start[0] + row;
                wcol = col;
                if (!llm_split_whole(&s, ep) && s.axis == 2) wcol = g.start[0] + col;
                int64_t wi = ((e + first) * shape[1] + wrow) * (ndim == 3 ? shape[2] : 1) + wcol;
                ok = part[e * inner + j] == whole[wi];
            }
        CHECK(ok, "%s ep %d rank %d: the slice holds other values", name, ep, r);
        CHECK(llm_split_copy(&s, &g, ndim, shape, 32, back, part, 0) == 0, "%s: put back", name);
    }
    CHECK(!memcmp(back, whole, sizeof(float) * (size_t)n), "%s ep %d: the slices do not give the "
          "whole tensor again", name, ep);
    /* the down projection's bias: the first rank of each expert group */
    if (slot == LLM_W_MLP_OUT && is_bias)
        CHECK(holders == ep, "%s ep %d: held by %d ranks", name, ep, holders);
    free(whole), free(back), free(part);
}

static void test_rules(void)
{
    struct llm_model_desc d;
    moe_desc(&d);
    const int64_t fc[3] = {NE, I, H}, fcb[2] = {NE, I}, pj[3] = {NE, H, I}, pjb[2] = {NE, H};
    for (int ep = 1; ep <= TP; ep *= 2) {
        round_trip(&d, ep, "transformer.layers.0.mlp.fc.weight", LLM_W_MLP_FC, 0, 3, fc);
        round_trip(&d, ep, "transformer.layers.1.mlp.gate.weight", LLM_W_MLP_GATE, 0, 3, fc);
        round_trip(&d, ep, "transformer.layers.0.mlp.fc.bias", LLM_W_MLP_FC, 1, 2, fcb);
        round_trip(&d, ep, "transformer.layers.0.mlp.proj.weight", LLM_W_MLP_OUT, 0, 3, pj);
        round_trip(&d, ep, "transformer.layers.1.mlp.proj.bias", LLM_W_MLP_OUT, 1, 2, pjb);
    }
    /* the router is whole on every rank: it scores all the experts */
    struct llm_split s;
    const int64_t rt[2] = {NE, H};
    CHECK(llm_split_of(&d, "transformer.layers.0.mlp.router.weight", 2, rt, &s) == 0 &&
              !s.experts && llm_split_whole(&s, 2),
          "the router is cut");
    llm_desc_free(&d);
    printf("ok rules: expert stacks and biases over tp %d with ep 1, 2, 4 cut and put back\n", TP);
}

static void test_partition(void)
{
    struct llm_model_desc d;
    moe_desc(&d);
    struct llm_mapping mp = {TP, TP, 1, 3, 0, 2};
    CHECK(llm_desc_partition(&d, &mp, NULL) == 0, "tp 4 ep 2 rank 3");
    CHECK(d.n_experts == NE && d.part.ep == 2 && d.part.ep_rank == 1 && d.part.moe_tp_rank == 1 &&
              d.part.expert_first == 2 && d.part.experts == 2 && d.intermediate == I / 2 &&
              d.n_heads == 1,
          "tp 4 ep 2 rank 3: experts %d (first %d, group %d, rank %d in it), inner %lld, heads %d",
          d.part.experts, d.part.expert_first, d.part.ep_rank, d.part.moe_tp_rank,
          (long long)d.intermediate, d.n_heads);
    int first = -1;
    CHECK(llm_part_experts(&d, &first) == 2 && first == 2, "llm_part_experts");
    llm_desc_free(&d);
    /* groups interleave as TensorRT-LLM's mapping: rank 1 is in group 1, first in it */
    moe_desc(&d);
    struct llm_mapping mp1 = {TP, TP, 1, 1, 0, 2};
    CHECK(llm_desc_partition(&d, &mp1, NULL) == 0 && d.part.ep_rank == 1 &&
              d.part.moe_tp_rank == 0 && d.part.expert_first == 2,
          "tp 4 ep 2 rank 1: group %d, rank %d in it, first expert %d (want 1, 0, 2)",
          d.part.ep_rank, d.part.moe_tp_rank, d.part.expert_first);
    CHECK(llm_desc_features(&d) & LLM_FEAT_BIT(LLM_FEAT_EXPERT_PARALLEL), "no --ep feature");
    llm_desc_free(&d);
    moe_desc(&d);
    CHECK(llm_part_experts(&d, &first) == NE && first == 0, "a whole model runs every expert");
    static const struct {
        int tp, ep, experts;
        const char *msg;
    } bad[] = {
        {2, 4, NE, "ep 4 exceeds tp 2"},
        {4, 3, NE, "ep 3 does not divide tp 4"},
        {2, 2, 5, "ep 2 does not divide the model's 5 experts"},
        {2, 2, 0, "ep 2: the model has no experts to split"},
        {4, 1, NE, "tp 4 does not divide the MLP's inner size 5"},
        {4, 2, NE, "tp 4 / ep 2 = 2 does not divide the experts' inner size 5"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        moe_desc(&d);
        d.n_experts = bad[i].experts;
        d.n_experts_per_tok = bad[i].experts ? 2 : 0;
        if (strstr(bad[i].msg, "inner size")) d.intermediate = 5;
        CHECK(llm_partition_check(&d, NULL, bad[i].tp, 1, bad[i].ep) == LLM_EINVAL &&
                  strstr(llm_errmsg(), bad[i].msg),
              "tp %d ep %d: want '%s'", bad[i].tp, bad[i].ep, bad[i].msg);
        llm_desc_free(&d);
    }
    moe_desc(&d);
    d.intermediate = 5;
    CHECK(llm_partition_check(&d, NULL, 4, 1, 4) == 0, "tp 4 ep 4: one rank per expert group, "
          "whole experts: %s", llm_errmsg());
    llm_desc_free(&d);
    printf("ok partition: a rank's experts, and ep that does not fit refused by name\n");
}

int main(void)
{
    test_rules();
    test_partition();
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
