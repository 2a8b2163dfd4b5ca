/* mpt.c - MPT (MptForCausalLM): LayerNorm without bias, no biases anywhere
 * (transformers' MPT builds its layers without them whatever no_bias says),
 * ALiBi (attn_config.alibi, alibi_bias_max), q/k/v clamping
 * (attn_config.clip_qkv), plain GELU MLP of expansion_ratio x d_model, and
 * always tied embeddings.  Wqkv is already q; k; v. */
#include <math.h>
#include <string.h>

#include "arch.h"
#include "../../core/text_internal.h"

#define L "transformer.blocks.{i}."
static const struct llm_hf_rule rules[] = {
    {LLM_W_EMBED, 0, LLM_XF_COPY, {"transformer.wte.weight"}, 0},
    {LLM_W_POS_EMBED, 0, LLM_XF_COPY, {"transformer.wpe.weight"}, 0},
    {LLM_W_FINAL_NORM, 0, LLM_XF_COPY, {"transformer.norm_f.weight"}, 0},
    {LLM_W_LM_HEAD, 0, LLM_XF_COPY, {"lm_head.weight"}, 0},
    {LLM_W_ATTN_NORM, 0, LLM_XF_COPY, {L "norm_1.weight"}, 0},
    {LLM_W_QKV, 0, LLM_XF_COPY, {L "attn.Wqkv.weight"}, 0},
    {LLM_W_ATTN_OUT, 0, LLM_XF_COPY, {L "attn.out_proj.weight"}, 0},
    {LLM_W_MLP_NORM, 0, LLM_XF_COPY, {L "norm_2.weight"}, 0},
    {LLM_W_MLP_FC, 0, LLM_XF_COPY, {L "ffn.up_proj.weight"}, 0},
    {LLM_W_MLP_OUT, 0, LLM_XF_COPY, {L "ffn.down_proj.weight"}, 0},
};
LLM_RULES(mpt_rules, rules)

/* attn_config: MptAttentionConfig's defaults */
static int read_attn(const struct llm_hfc *c, struct llm_model_desc *d, int *alibi)
{
    const json_t *ac = json_object_get(c->o, "attn_config");
    if (ac && !json_is_null(ac) && !json_is_object(ac))
        return llm_err_set(LLM_EFORMAT, "'%s': field 'attn_config' must be an object, found %s",
                           c->src, llm_json_type_name(ac));
    struct llm_hfc a = {c->src, json_is_object(ac) ? ac : NULL, "attn_config."};
    double softmax_scale = 0, bias_max = 8, clip = 0;
    const char *type = NULL;
    int rc = llm_hfc_bool(&a, KEYS("alibi"), 1, alibi);
    if (!rc) rc = llm_hfc_refuse(&a, "qk_ln");
    if (!rc) rc = llm_hfc_refuse(&a, "prefix_lm");
    if (!rc) rc = llm_hfc_num(&a, KEYS("softmax_scale"), 0, 0, 0, 0, 1e6, &softmax_scale);
    if (!rc) rc = llm_hfc_num(&a, KEYS("alibi_bias_max"), 0, 8, 0, 1, 1e6, &bias_max);
    if (!rc) rc = llm_hfc_num(&a, KEYS("clip_qkv"), 0, 0, 0, 0, 1e9, &clip);
    if (!rc) rc = llm_hfc_str(&a, KEYS("attn_type"), &type);
    if (rc) return rc;
    if (!type || !strcmp(type, "multihead_attention")) {
        d->n_kv_heads = d->n_heads;
    } else if (!strcmp(type, "multiquery_attention")) {
        d->n_kv_heads = 1;
    } else if (!strcmp(type, "grouped_query_attention")) {
        rc = llm_hfc_i32(&a, KEYS("kv_n_heads"), 1, 0, 1, 1 << 16, &d->n_kv_heads);
        if (!rc) rc = llm_hfc_check_kv(c, d, "attn_config.kv_n_heads");
        if (rc) return rc;
    } else {
        char b[96];
        return llm_err_set(LLM_EUNSUPPORTED, "'%s': unsupported attn_config.attn_type '%s'",
                           c->src, llm_quote(type, b, sizeof(b)));
    }
    d->attn_scale = softmax_scale;
    d->alibi_max_bias = bias_max;
    d->clip_qkv = clip;
    return 0;
}

static int read_config(const struct llm_hfc *c, struct llm_model_desc *d)
{
    const struct llm_hfc_sizes k = {KEYS("d_model", "hidden_size"),
                                    KEYS("n_layers", "num_hidden_layers"),
                                    KEYS("n_heads", "num_attention_heads")};
    int rc = llm_hfc_core(c, d, &k);
    if (!rc) rc = llm_hfc_head_dim(c, d, "d_model", "n_heads");
    double ratio = 4;
    if (!rc) rc = llm_hfc_num(c, KEYS("expansion_ratio"), 0, 4, 0, 1, 1 << 12, &ratio);
    if (!rc) {
        double inter = floor((double)d->hidden * ratio);
        if (inter < 1 || inter > (1 << 22))
            rc = llm_err_set(LLM_ERANGE, "'%s': expansion_ratio %g gives an MLP of %g", c->src,
                             ratio, inter);
        d->intermediate = (int64_t)inter;
    }
    if (!rc) rc = llm_hfc_int(c, KEYS("max_seq_len"), 0, 2048, 1, INT32_MAX, &d->max_pos);
    if (!rc) rc = llm_hfc_num(c, KEYS("layer_norm_epsilon"), 0, 1e-5, 0, 1, 1, &d->norm_eps);
    int learned = 1, alibi = 1;
    if (!rc) rc = llm_hfc_bool(c, KEYS("learned_pos_emb"), 1, &learned);
    if (!rc) rc = llm_hfc_bool(c, KEYS("tie_word_embeddings"), 1, &d->tied_embeddings);
    if (!rc && !d->tied_embeddings)
        rc = llm_err_set(LLM_EUNSUPPORTED, "'%s': MPT without tied embeddings is not supported",
                         c->src);
    if (!rc) rc = llm_hfc_refuse(c, "logit_scale");
    const char *ls = NULL;
    if (!rc) rc = llm_hfc_str(c, KEYS("norm_type"), &ls);
    if (!rc && ls && strcmp(ls, "low_precision_layernorm") && strcmp(ls, "layernorm")) {
        char b[96];
        rc = llm_err_set(LLM_EUNSUPPORTED, "'%s': unsupported norm_type '%s'", c->src,
                         llm_quote(ls, b, sizeof(b)));
    }
    if (!rc) rc = read_attn(c, d, &alibi);
    if (rc) return rc;
    d->norm = LLM_NORM_LAYER;
    d->norm_bias = 0;
    d->qkv_bias = d->o_bias = d->mlp_bias = 0;
    d->act = LLM_ACT_GELU;
    d->gated_mlp = 0;
    d->pos = alibi ? LLM_POS_ALIBI : learned ? LLM_POS_LEARNED : LLM_POS_NONE;
    d->rope.rot_dims = 0;
    return 0;
}

const struct llm_arch_def llm_arch_mpt = {
    .classes = KEYS("MPTForCausalLM", "MptForCausalLM"),
    .model_types = KEYS("mpt"),
    .read_config = read_config,
    .rules = mpt_rules,
    .base_prefix = "transformer.",
    .ignore = NULL,
    .bos = -1,
    .eos = -1,
    .pad = -1,
};
