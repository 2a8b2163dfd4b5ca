/* jsonl.c - llm-run's request lines and answer lines (both forms: the
 * simple one and OpenAI's batch format for /v1/completions).
 *
 * Design choice: strict.  A field with the wrong type or range, an unknown
 * field, or an OpenAI feature we do not implement (streaming, echo,
 * logit_bias, several prompts per line) gets an error line naming the
 * field, rather than being ignored and silently producing something other
 * than what was asked.  Fields that OpenAI clients send routinely but that
 * change nothing here ("model", "user") are accepted.  An absent field and
 * a null one both mean "use the default".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/batch.h"
#include "llm/engine.h"
#include "llm/err.h"
#include "llm/tokenizer.h"

#define MAX_STOP 64
#define MAX_N 256

void llm_jsonl_defaults_init(struct llm_jsonl_defaults *d, const struct llm_gen_defaults *g)
{
    memset(d, 0, sizeof(*d));
    llm_sampling_init(&d->sampling);
    d->max_tokens = 256;
    d->n = 1;
    if (!g) return;
    if (g->do_sample) {
        d->sampling.temperature = g->temperature;
        d->sampling.top_k = g->top_k;
        d->sampling.top_p = g->top_p;
        d->sampling.min_p = g->min_p;
    }
    d->sampling.repetition_penalty = g->repetition_penalty;
    if (g->max_new_tokens > 0) d->max_tokens = g->max_new_tokens;
}

void llm_jsonl_req_free(struct llm_jsonl_req *q)
{
    if (!q) return;
    json_decref(q->id);
    free(q->key);
    free(q->model);
    free(q->text_buf);
    free(q->ids_buf);
    free(q->stop_ids_buf);
    if (q->stop_buf)
        for (int i = 0; i < q->req.n_stop; i++)
            free(q->stop_buf[i]);
    free(q->stop_buf);
    memset(q, 0, sizeof(*q));
}

static uint64_t key_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static int set_id(struct llm_jsonl_req *q, json_t *id)
{
    json_decref(q->id);
    free(q->key);
    q->id = id;
    q->key = json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    if (!q->id || !q->key) return llm_err_set(LLM_ENOMEM, "out of memory");
    return 0;
}

/* ---- field readers ------------------------------------------------------ */

static int get_int(const json_t *v, const char *name, long long lo, long long hi, long long *out)
{
    if (!json_is_integer(v)) return llm_err_set(LLM_EINVAL, "'%s': expected an integer", name);
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return llm_err_set(LLM_EINVAL, "'%s': %lld is out of range (%lld..%lld)", name, x, lo, hi);
    *out = x;
    return 0;
}

static int get_num(const json_t *v, const char *name, double *out)
{
    if (!json_is_number(v)) return llm_err_set(LLM_EINVAL, "'%s': expected a number", name);
    *out = json_number_value(v);
    return 0;
}

static int get_ids(const json_t *v, const char *name, int64_t vocab, int32_t **out, int *n)
{
    if (!json_is_array(v)) return llm_err_set(LLM_EINVAL, "'%s': expected an array of ids", name);
    size_t len = json_array_size(v);
    if (len > (1u << 28)) return llm_err_set(LLM_EINVAL, "'%s': too many ids", name);
    int32_t *ids = malloc((len ? len : 1) * sizeof(*ids));
    if (!ids) return llm_err_set(LLM_ENOMEM, "out of memory");
    for (size_t i = 0; i < len; i++) {
        const json_t *e = json_array_get(v, i);
        long long x = json_is_integer(e) ? json_integer_value(e) : -1;
        if (!json_is_integer(e) || x < 0 || x > INT32_MAX || (vocab > 0 && x >= vocab)) {
            free(ids);
            if (!json_is_integer(e))
                return llm_err_set(LLM_EINVAL, "'%s'[%zu]: expected an integer id", name, i);
            return llm_err_set(LLM_EINVAL, "'%s'[%zu]: id %lld is outside the vocabulary (0..%lld)",
                               name, i, x, (long long)vocab - 1);
        }
        ids[i] = (int32_t)x;
    }
    free(*out);
    *out = ids;
    *n = (int)len;
    return 0;
}

/* Sampling and stop fields shared by both forms.  Returns 1 when name is
 * not one of them, 0 when read, <0 on a bad value. */
static int read_field(struct llm_jsonl_req *q, const char *name, const json_t *v, int64_t vocab)
{
    struct llm_request *r = &q->req;
    struct llm_sampling *p = &r->sampling;
    long long x = 0;
    double d = 0;
    int rc;
    if (!strcmp(name, "max_tokens")) {
        if ((rc = get_int(v, name, 1, 1 << 30, &x))) return rc;
        r->max_tokens = (int)x;
    } else if (!strcmp(name, "min_tokens")) {
        if ((rc = get_int(v, name, 0, 1 << 30, &x))) return rc;
        r->min_tokens = (int)x;
    } else if (!strcmp(name, "temperature")) {
        if ((rc = get_num(v, name, &d))) return rc;
        if (!(d >= 0) || !isfinite(d))
            return llm_err_set(LLM_EINVAL, "'temperature': %g must be >= 0", d);
        p->temperature = d;
    } else if (!strcmp(name, "top_k")) {
        if ((rc = get_int(v, name, -1, INT32_MAX, &x))) return rc;
        p->top_k = x < 0 ? 0 : (int)x; /* -1: off, as vLLM */
    } else if (!strcmp(name, "top_p")) {
        if ((rc = get_num(v, name, &d))) return rc;
        if (!(d > 0 && d <= 1)) return llm_err_set(LLM_EINVAL, "'top_p': %g must be in (0, 1]", d);
        p->top_p = d;
    } else if (!strcmp(name, "min_p")) {
        if ((rc = get_num(v, name, &d))) return rc;
        if (!(d >= 0 && d <= 1)) return llm_err_set(LLM_EINVAL, "'min_p': %g must be in [0, 1]", d);
        p->min_p = d;
    } else if (!strcmp(name, "repetition_penalty")) {
        if ((rc = get_num(v, name, &d))) return rc;
        if (!(d > 0) || !isfinite(d))
            return llm_err_set(LLM_EINVAL, "'repetition_penalty': %g must be > 0", d);
        p->repetition_penalty = d;
    } else if (!strcmp(name, "presence_penalty") || !strcmp(name, "frequency_penalty")) {
        if ((rc = get_num(v, name, &d))) return rc;
        if (!(d >= -2 && d <= 2))
            return llm_err_set(LLM_EINVAL, "'%s': %g must be in [-2, 2]", name, d);
        if (name[0] == 'p')
            p->presence_penalty = d;
        else
            p->frequency_penalty = d;
    } else if (!strcmp(name, "seed")) {
        if (!json_is_integer(v)) return llm_err_set(LLM_EINVAL, "'seed': expected an integer");
        p->seed = (uint64_t)json_integer_value(v);
        q->seed_given = 1;
    } else if (!strcmp(name, "n")) {
        if ((rc = get_int(v, name, 1, MAX_N, &x))) return rc;
        r->n = (int)x;
    } else if (!strcmp(name, "logprobs")) {
        if (json_is_boolean(v)) {
            p->logprobs = json_is_true(v) ? 0 : -1;
        } else {
            if ((rc = get_int(v, name, 0, LLM_MAX_LOGPROBS, &x))) return rc;
            p->logprobs = (int)x;
        }
        q->logprobs_requested = p->logprobs >= 0;
    } else if (!strcmp(name, "ignore_eos")) {
        if (!json_is_boolean(v))
            return llm_err_set(LLM_EINVAL, "'ignore_eos': expected true or false");
        r->ignore_eos = json_is_true(v);
    } else if (!strcmp(name, "stop_token_ids")) {
        if ((rc = get_ids(v, name, vocab, &q->stop_ids_buf, &r->n_stop_ids))) return rc;
        r->stop_ids = q->stop_ids_buf;
    } else if (!strcmp(name, "stop")) {
        size_t n = json_is_string(v) ? 1 : json_is_array(v) ? json_array_size(v) : 0;
        if (!json_is_string(v) && !json_is_array(v))
            return llm_err_set(LLM_EINVAL, "'stop': expected a string or an array of strings");
        if (n > MAX_STOP) return llm_err_set(LLM_EINVAL, "'stop': more than %d strings", MAX_STOP);
        if (q->stop_buf) return llm_err_set(LLM_EINVAL, "'stop' given twice");
        q->stop_buf = calloc(n ? n : 1, sizeof(char *));
        if (!q->stop_buf) return llm_err_set(LLM_ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            const json_t *s = json_is_string(v) ? v : json_array_get(v, i);
            if (!json_is_string(s))
                return llm_err_set(LLM_EINVAL, "'stop'[%zu]: expected a string", i);
            size_t len = json_string_length(s);
            if (len == 0 || memchr(json_string_value(s), 0, len))
                return llm_err_set(LLM_EINVAL, "'stop'[%zu]: empty or contains NUL", i);
            q->stop_buf[i] = strdup(json_string_value(s));
            if (!q->stop_buf[i]) return llm_err_set(LLM_ENOMEM, "out of memory");
            r->n_stop = (int)i + 1;
        }
        r->stop = (const char *const *)q->stop_buf;
    } else if (!strcmp(name, "input_ids")) {
        if (q->text_buf || q->ids_buf)
            return llm_err_set(LLM_EINVAL, "give either 'prompt' or 'input_ids', not both");
        if ((rc = get_ids(v, name, vocab, &q->ids_buf, &r->n_prompt))) return rc;
        r->prompt = q->ids_buf;
    } else if (!strcmp(name, "prompt")) {
        if (q->text_buf || q->ids_buf)
            return llm_err_set(LLM_EINVAL, "give either 'prompt' or 'input_ids', not both");
        const json_t *pv = v;
        /* OpenAI: a string, an array of ids, or a list of those (one allowed here) */
        if (json_is_array(v) && json_array_size(v) > 0 && !json_is_integer(json_array_get(v, 0))) {
            if (json_array_size(v) != 1)
                return llm_err_set(LLM_EINVAL, "'prompt': %zu prompts in one line; give one",
                                   json_array_size(v));
            pv = json_array_get(v, 0);
        }
        if (json_is_string(pv)) {
            size_t len = json_string_length(pv);
            q->text_buf = malloc(len + 1);
            if (!q->text_buf) return llm_err_set(LLM_ENOMEM, "out of memory");
            memcpy(q->text_buf, json_string_value(pv), len + 1);
            r->text = q->text_buf;
            r->text_len = len;
        } else if (json_is_array(pv)) {
            if ((rc = get_ids(pv, "prompt", vocab, &q->ids_buf, &r->n_prompt))) return rc;
            r->prompt = q->ids_buf;
        } else {
            return llm_err_set(LLM_EINVAL, "'prompt': expected a string or an array of ids");
        }
    } else {
        return 1;
    }
    return 0;
}

/* OpenAI body fields accepted without effect, and the values allowed. */
static int openai_ignored(struct llm_jsonl_req *q, const char *name, const json_t *v)
{
    if (!strcmp(name, "model")) {
        if (!json_is_string(v)) return llm_err_set(LLM_EINVAL, "'model': expected a string");
        free(q->model);
        q->model = strdup(json_string_value(v));
        return q->model ? 0 : llm_err_set(LLM_ENOMEM, "out of memory");
    }
    if (!strcmp(name, "user")) return 0;
    if (!strcmp(name, "stream") || !strcmp(name, "echo")) {
        if (json_is_false(v)) return 0;
        return llm_err_set(LLM_EINVAL, "'%s': only false is supported in a batch", name);
    }
    if (!strcmp(name, "best_of")) {
        if (json_is_integer(v) && json_integer_value(v) == q->req.n) return 0;
        return llm_err_set(LLM_EINVAL, "'best_of': only equal to n is supported");
    }
    if (!strcmp(name, "logit_bias")) {
        if (json_is_object(v) && json_object_size(v) == 0) return 0;
        return llm_err_set(LLM_EINVAL, "'logit_bias' is not supported");
    }
    if (!strcmp(name, "suffix")) return llm_err_set(LLM_EINVAL, "'suffix' is not supported");
    return 1;
}

static int read_object(struct llm_jsonl_req *q, const json_t *obj, int openai, int64_t vocab,
                       const char *skip)
{
    const char *name;
    json_t *v;
    /* n first: best_of is checked against it */
    json_t *nv = json_object_get(obj, "n");
    if (nv && !json_is_null(nv)) {
        int rc = read_field(q, "n", nv, vocab);
        if (rc) return rc;
    }
    json_object_foreach((json_t *)obj, name, v)
    {
        if (skip && !strcmp(name, skip)) continue;
        if (!strcmp(name, "n") || json_is_null(v)) continue;
        int rc = read_field(q, name, v, vocab);
        if (rc == 1 && openai) rc = openai_ignored(q, name, v);
        if (rc == 1) return llm_err_set(LLM_EINVAL, "unknown field '%s'", name);
        if (rc) return rc;
    }
    return 0;
}

int llm_jsonl_parse(struct llm_jsonl_req *q, const char *line, size_t len, long lineno,
                    const struct llm_jsonl_defaults *d, int64_t vocab)
{
    memset(q, 0, sizeof(*q));
    q->line = lineno;
    q->form = LLM_JSONL_SIMPLE;
    int rc = set_id(q, json_integer(lineno));
    if (rc) return rc;
    struct llm_request *r = &q->req;
    llm_request_init(r);
    r->sampling = d->sampling;
    r->sampling.logprobs = -1;
    r->max_tokens = d->max_tokens;
    r->n = d->n;
    r->ignore_eos = d->ignore_eos;

    json_error_t err;
    json_t *root =
        json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &err);
    if (!root)
        return llm_err_set(LLM_EFORMAT, "invalid JSON at column %d: %s", err.column, err.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return llm_err_set(LLM_EFORMAT, "expected a JSON object");
    }
    int openai = json_object_get(root, "custom_id") || json_object_get(root, "body") ||
                 json_object_get(root, "url") || json_object_get(root, "method");
    q->form = openai ? LLM_JSONL_OPENAI : LLM_JSONL_SIMPLE;
    q->form_known = 1;
    json_t *id = json_object_get(root, openai ? "custom_id" : "id");
    if (id && !json_is_null(id)) {
        rc = set_id(q, json_incref(id));
        if (rc) goto out;
    }
    if (openai) {
        const char *name;
        json_t *v;
        json_object_foreach(root, name, v)
        {
            if (strcmp(name, "custom_id") && strcmp(name, "method") && strcmp(name, "url") &&
                strcmp(name, "body")) {
                rc = llm_err_set(LLM_EINVAL, "unknown field '%s' in a batch request", name);
                goto out;
            }
        }
        json_t *m = json_object_get(root, "method"), *u = json_object_get(root, "url");
        json_t *body = json_object_get(root, "body");
        if (m && (!json_is_string(m) || strcmp(json_string_value(m), "POST"))) {
            rc = llm_err_set(LLM_EINVAL, "'method': only \"POST\" is supported");
            goto out;
        }
        if (!u || !json_is_string(u) || strcmp(json_string_value(u), "/v1/completions")) {
            rc = llm_err_set(LLM_EINVAL, "'url': only \"/v1/completions\" is supported%s%s%s",
                             json_is_string(u) ? " (got \"" : "",
                             json_is_string(u) ? json_string_value(u) : "",
                             json_is_string(u) ? "\")" : "");
            goto out;
        }
        if (!json_is_object(body)) {
            rc = llm_err_set(LLM_EINVAL, "'body': expected an object");
            goto out;
        }
        rc = read_object(q, body, 1, vocab, NULL);
    } else {
        rc = read_object(q, root, 0, vocab, "id");
    }
    if (rc) goto out;
    if (!r->text && !r->prompt) {
        rc = llm_err_set(LLM_EINVAL, "no 'prompt' or 'input_ids'");
        goto out;
    }
    if (r->min_tokens > r->max_tokens) {
        rc = llm_err_set(LLM_EINVAL, "'min_tokens' %d is larger than 'max_tokens' %d",
                         r->min_tokens, r->max_tokens);
        goto out;
    }
    if (!q->seed_given) {
        /* default seed: the run's seed mixed with the id */
        uint64_t h = key_hash(q->key) ^ (d->sampling.seed * 0x9e3779b97f4a7c15ull);
        h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
        h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
        r->sampling.seed = h ^ (h >> 31);
    }
    if (!q->logprobs_requested) r->sampling.logprobs = -1;
out:
    json_decref(root);
    return rc;
}

/* ---- output lines --------------------------------------------------------- */

static json_t *jreal(double v)
{
    return json_real(isfinite(v) ? v : -9999.0);
}

static char *token_text(const struct llm_tokenizer *tok, int32_t id)
{
    char *t = NULL;
    size_t n = 0;
    if (tok && llm_tok_decode(tok, &id, 1, 0, &t, &n) == 0) return t;
    return NULL;
}

/* JSON string from bytes that may not be valid UTF-8 (bad bytes -> U+FFFD). */
static json_t *jstr(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    if (j) return j;
    char *b = malloc(n * 3 + 1);
    if (!b) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t l = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (l && i + l <= n) {
            json_t *t = json_stringn(s + i, l);
            if (t) {
                json_decref(t);
                memcpy(b + o, s + i, l);
                o += l;
                i += l;
                continue;
            }
        }
        memcpy(b + o, "\xef\xbf\xbd", 3);
        o += 3;
        i++;
    }
    j = json_stringn(b, o);
    free(b);
    return j;
}

static json_t *token_json(const struct llm_tokenizer *tok, int32_t id)
{
    char *t = token_text(tok, id);
    json_t *j = t ? jstr(t, strlen(t)) : json_null();
    free(t);
    return j;
}

/* Simple form: one object per token. */
static json_t *logprobs_simple(const struct llm_choice *c, const struct llm_tokenizer *tok)
{
    json_t *arr = json_array();
    for (int i = 0; i < c->n_tokens; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(c->tokens[i]));
        if (tok) json_object_set_new(o, "token", token_json(tok, c->tokens[i]));
        json_object_set_new(o, "logprob", jreal(c->logprobs[i]));
        if (c->n_top > 0) {
            json_t *top = json_array();
            for (int k = 0; k < c->n_top; k++) {
                int32_t id = c->top_ids[(size_t)i * c->n_top + k];
                if (id < 0) break;
                json_t *t = json_object();
                json_object_set_new(t, "id", json_integer(id));
                if (tok) json_object_set_new(t, "token", token_json(tok, id));
                json_object_set_new(t, "logprob", jreal(c->top_logprobs[(size_t)i * c->n_top + k]));
                json_array_append_new(top, t);
            }
            json_object_set_new(o, "top", top);
        }
        json_array_append_new(arr, o);
    }
    return arr;
}

/* OpenAI legacy completions logprobs: tokens, token_logprobs, top_logprobs. */
static json_t *logprobs_openai(const struct llm_choice *c, const struct llm_tokenizer *tok)
{
    json_t *o = json_object(), *toks = json_array(), *lps = json_array();
    json_t *tops = c->n_top > 0 ? json_array() : json_null();
    for (int i = 0; i < c->n_tokens; i++) {
        json_array_append_new(toks,
                              tok ? token_json(tok, c->tokens[i]) : json_integer(c->tokens[i]));
        json_array_append_new(lps, jreal(c->logprobs[i]));
        if (c->n_top > 0) {
            json_t *d = json_object();
            for (int k = 0; k < c->n_top; k++) {
                int32_t id = c->top_ids[(size_t)i * c->n_top + k];
                if (id < 0) break;
                char key[32], *t = token_text(tok, id);
                if (!t) snprintf(key, sizeof(key), "%d", id);
                json_t *ks = t ? jstr(t, strlen(t)) : NULL;
                const char *kk = ks ? json_string_value(ks) : key;
                if (!json_object_get(d, kk))
                    json_object_set_new(d, kk, jreal(c->top_logprobs[(size_t)i * c->n_top + k]));
                json_decref(ks);
                free(t);
            }
            json_array_append_new(tops, d);
        }
    }
    json_object_set_new(o, "tokens", toks);
    json_object_set_new(o, "token_logprobs", lps);
    json_object_set_new(o, "top_logprobs", tops);
    return o;
}

static json_t *ids_json(const int32_t *ids, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_integer(ids[i]));
    return a;
}

static char *dump_line(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(j);
    if (!s) return NULL;
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (!line) {
        free(s);
        return NULL;
    }
    line[n] = '\n';
    line[n + 1] = 0;
    return line;
}

static json_t *simple_choice(const struct llm_choice *c, const struct llm_jsonl_req *q,
                             const struct llm_jsonl_fmt *f, int with_index)
{
    json_t *o = json_object();
    if (with_index) json_object_set_new(o, "index", json_integer(c->index));
    if (c->text) json_object_set_new(o, "text", jstr(c->text, c->text_len));
    json_object_set_new(o, "output_ids", ids_json(c->tokens, c->n_tokens));
    json_object_set_new(o, "finish_reason", json_string(llm_finish_name(c->finish_reason)));
    if (q->logprobs_requested && c->logprobs)
        json_object_set_new(o, "logprobs", logprobs_simple(c, f->tok));
    return o;
}

char *llm_jsonl_format_result(const struct llm_jsonl_req *q, const struct llm_result *res,
                              const struct llm_jsonl_fmt *f)
{
    json_t *o = json_object();
    json_t *usage = json_object();
    json_object_set_new(usage, "prompt_tokens", json_integer(res->n_prompt));
    json_object_set_new(usage, "completion_tokens", json_integer(res->completion_tokens));
    if (q->form == LLM_JSONL_SIMPLE) {
        json_object_set(o, "id", q->id);
        if (res->n_choices == 1) {
            json_t *c = simple_choice(&res->choices[0], q, f, 0);
            json_object_update(o, c);
            json_decref(c);
            json_t *lp = json_object_get(o, "logprobs");
            if (lp) { /* keep usage before logprobs: logprobs last */
                json_incref(lp);
                json_object_del(o, "logprobs");
                json_object_set_new(o, "usage", usage);
                json_object_set_new(o, "logprobs", lp);
                return dump_line(o);
            }
        } else {
            json_t *arr = json_array();
            for (int i = 0; i < res->n_choices; i++)
                json_array_append_new(arr, simple_choice(&res->choices[i], q, f, 1));
            json_object_set_new(o, "choices", arr);
        }
        json_object_set_new(o, "usage", usage);
        return dump_line(o);
    }
    /* OpenAI batch output line around a completion object */
    char buf[64];
    snprintf(buf, sizeof(buf), "batch_req_%ld", q->line);
    json_object_set_new(o, "id", json_string(buf));
    json_object_set(o, "custom_id", q->id);
    json_t *resp = json_object(), *body = json_object(), *choices = json_array();
    json_object_set_new(resp, "status_code", json_integer(200));
    snprintf(buf, sizeof(buf), "req_%ld", q->line);
    json_object_set_new(resp, "request_id", json_string(buf));
    snprintf(buf, sizeof(buf), "cmpl-%ld", q->line);
    json_object_set_new(body, "id", json_string(buf));
    json_object_set_new(body, "object", json_string("text_completion"));
    json_object_set_new(body, "created", json_integer(f->created));
    const char *model = q->model ? q->model : f->model_name ? f->model_name : "";
    json_object_set_new(body, "model", json_string(model));
    for (int i = 0; i < res->n_choices; i++) {
        const struct llm_choice *c = &res->choices[i];
        json_t *ch = json_object();
        json_object_set_new(ch, "text", c->text ? jstr(c->text, c->text_len) : json_string(""));
        json_object_set_new(ch, "index", json_integer(c->index));
        json_object_set_new(ch, "logprobs",
                            (q->logprobs_requested && c->logprobs) ? logprobs_openai(c, f->tok)
                                                                   : json_null());
        json_object_set_new(ch, "finish_reason", json_string(llm_finish_name(c->finish_reason)));
        json_array_append_new(choices, ch);
    }
    json_object_set_new(body, "choices", choices);
    json_object_set_new(usage, "total_tokens",
                        json_integer((json_int_t)res->n_prompt + res->completion_tokens));
    json_object_set_new(body, "usage", usage);
    json_object_set_new(resp, "body", body);
    json_object_set_new(o, "response", resp);
    json_object_set_new(o, "error", json_null());
    return dump_line(o);
}

static const char *err_type(int code)
{
    switch (code) {
    case LLM_EFORMAT:
        return "invalid_json";
    case LLM_ECAPACITY:
        return "context_length_exceeded";
    case LLM_EINVAL:
        return "invalid_request_error";
    default:
        return "server_error";
    }
}

char *llm_jsonl_format_error(const struct llm_jsonl_req *q, int code, const char *message)
{
    json_t *o = json_object();
    json_t *err = json_object();
    json_t *msg = jstr(message ? message : "", message ? strlen(message) : 0);
    if (q->form == LLM_JSONL_SIMPLE) {
        json_object_set(o, "id", q->id);
        json_object_set_new(err, "message", msg);
        json_object_set_new(err, "type",
                            json_string(q->duplicate ? "duplicate_id" : err_type(code)));
        json_object_set_new(err, "line", json_integer(q->line));
        json_object_set_new(o, "error", err);
        return dump_line(o);
    }
    char buf[64];
    snprintf(buf, sizeof(buf), "batch_req_%ld", q->line);
    json_object_set_new(o, "id", json_string(buf));
    json_object_set(o, "custom_id", q->id);
    json_t *resp = json_object(), *body = json_object();
    json_object_set_new(
        resp, "status_code",
        json_integer(code == LLM_EINVAL || code == LLM_EFORMAT || code == LLM_ECAPACITY ? 400
                                                                                        : 500));
    snprintf(buf, sizeof(buf), "req_%ld", q->line);
    json_object_set_new(resp, "request_id", json_string(buf));
    json_object_set_new(err, "message", msg);
    json_object_set_new(
        err, "type",
        json_string(code == LLM_EINVAL || code == LLM_ECAPACITY || code == LLM_EFORMAT
                        ? "invalid_request_error"
                        : "server_error"));
    json_object_set_new(err, "param", json_null());
    json_object_set_new(err, "code", json_string(q->duplicate ? "duplicate_id" : err_type(code)));
    json_object_set_new(err, "line", json_integer(q->line));
    json_object_set_new(body, "error", err);
    json_object_set_new(resp, "body", body);
    json_object_set_new(o, "response", resp);
    json_object_set_new(o, "error", json_null());
    return dump_line(o);
}

char *llm_jsonl_output_key(const char *line, size_t len, int *duplicate, int *error)
{
    *duplicate = 0;
    if (error) *error = 0;
    json_t *root = json_loadb(line, len, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return NULL;
    }
    json_t *id = json_object_get(root, "custom_id");
    json_t *resp = json_object_get(root, "response");
    if (!id || !resp) id = json_object_get(root, "id");
    /* simple: error.type; OpenAI: response.body.error.code */
    json_t *err = resp ? json_object_get(json_object_get(resp, "body"), "error")
                       : json_object_get(root, "error");
    json_t *kind = json_object_get(err, resp ? "code" : "type");
    *duplicate = json_is_string(kind) && !strcmp(json_string_value(kind), "duplicate_id");
    if (error) *error = json_is_object(err);
    char *key = id ? json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    return key;
}
