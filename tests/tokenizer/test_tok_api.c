/* test_tok_api.c - tokenizer API contracts that the HF comparison does not
 * cover: malformed tokenizer.json structures fail with the right code and a
 * one-line message naming the source, unsupported kinds say which kind,
 * tokenizer_config.json (bos/eos names, add_bos_token/add_eos_token), the
 * accessors, and the streaming edge cases (push after flush, unknown ids).
 * Usage: test_tok_api DATA_DIR (tests/tokenizer/data).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "llm/tokenizer.h"

static int failed, checks;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failed++;                                                                              \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

/* a valid tokenizer.json; cases below replace one member of it */
static const char BASE[] =
    "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":3,\"content\":\"<s>\",\"special\":true,"
    "\"normalized\":false,\"lstrip\":false,\"rstrip\":false,\"single_word\":false},"
    "{\"id\":11,\"content\":\"</s>\",\"special\":true,\"normalized\":false,\"lstrip\":false,"
    "\"rstrip\":false,\"single_word\":false}],"
    "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\","
    "\"prepend_scheme\":\"first\",\"split\":true},"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":"
    "\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[],"
    "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[3],\"tokens\":[\"<s>\"]}}},"
    "\"decoder\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":"
    "\"first\"},"
    "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":true,\"fuse_unk\":true,"
    "\"vocab\":{\"<unk>\":0,\"\\u2581\":1,\"H\":2,\"<s>\":3,\"e\":4,\"l\":5,\"o\":6,\"He\":7,"
    "\"ll\":8,\"\\u2581He\":9,\"<0x41>\":10,\"</s>\":11},"
    "\"merges\":[\"H e\",\"l l\",[\"\\u2581\",\"He\"]]}}";

static json_t *base_with(const char *key, const char *value)
{
    json_error_t je;
    json_t *j = json_loads(BASE, 0, &je);
    if (!j) {
        fprintf(stderr, "bad BASE: %s\n", je.text);
        exit(1);
    }
    if (key) {
        json_t *v = json_loads(value, JSON_DECODE_ANY, &je);
        if (!v) {
            fprintf(stderr, "bad case value %s: %s\n", value, je.text);
            exit(1);
        }
        json_t *target = j;
        if (!strncmp(key, "model.", 6)) {
            target = json_object_get(j, "model");
            key += 6;
        }
        json_object_set_new(target, key, v);
    }
    return j;
}

struct bad_case {
    const char *key, *value;
    int code;
    const char *needle;
};

static const struct bad_case bad[] = {
    {"model", "null", LLM_EFORMAT, "\"model\" missing"},
    {"model", "[1,2]", LLM_EFORMAT, "\"model\" missing"},
    {"model.type", "\"WordPiece\"", LLM_EUNSUPPORTED, "model 'WordPiece'"},
    {"model.type", "\"Unigram\"", LLM_EUNSUPPORTED, "model 'Unigram'"},
    {"model.vocab", "[]", LLM_EFORMAT, "\"vocab\""},
    {"model.vocab", "{\"a\": -1}", LLM_EFORMAT, "id must be"},
    {"model.vocab", "{\"a\": \"x\"}", LLM_EFORMAT, "id must be"},
    {"model.vocab", "{\"a\": 99999999999}", LLM_EFORMAT, "id must be"},
    {"model.merges", "{}", LLM_EFORMAT, "\"merges\""},
    {"model.merges", "[\"H\"]", LLM_EFORMAT, "merge 0"},
    {"model.merges", "[\"H e l\"]", LLM_EFORMAT, "merge 0"},
    {"model.merges", "[[\"H\"]]", LLM_EFORMAT, "merge 0"},
    {"model.merges", "[\"H e\", \"H x\"]", LLM_EFORMAT, "token 'x' is not in the vocab"},
    {"model.merges", "[\"e l\"]", LLM_EFORMAT, "token 'el' is not in the vocab"},
    {"added_tokens", "{}", LLM_EFORMAT, "added_tokens"},
    {"added_tokens", "[7]", LLM_EFORMAT, "added_tokens[0]"},
    {"added_tokens", "[{\"id\": 1}]", LLM_EFORMAT, "\"content\""},
    {"added_tokens", "[{\"content\": \"x\"}]", LLM_EFORMAT, "id must be"},
    {"normalizer", "{\"type\": \"Precompiled\"}", LLM_EUNSUPPORTED, "normalizer 'Precompiled'"},
    {"normalizer", "{\"kind\": \"NFC\"}", LLM_EFORMAT, "normalizer without"},
    {"normalizer", "{\"type\": \"Sequence\"}", LLM_EFORMAT, "\"normalizers\""},
    {"normalizer", "{\"type\": \"Replace\", \"pattern\": {\"Regex\": \"(\"}, \"content\": \"\"}",
     LLM_EFORMAT, "bad regex"},
    {"normalizer", "{\"type\": \"Replace\", \"pattern\": {\"Glob\": \"*\"}, \"content\": \"\"}",
     LLM_EFORMAT, "pattern must be"},
    {"pre_tokenizer", "{\"type\": \"UnicodeScripts\"}", LLM_EUNSUPPORTED,
     "pre_tokenizer 'UnicodeScripts'"},
    {"pre_tokenizer",
     "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"[a-\"}, \"behavior\": "
     "\"Isolated\"}",
     LLM_EFORMAT, "bad regex"},
    {"pre_tokenizer",
     "{\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": "
     "\"Sideways\"}",
     LLM_EFORMAT, "behavior 'Sideways'"},
    {"pre_tokenizer", "{\"type\": \"Metaspace\", \"replacement\": \"ab\"}", LLM_EFORMAT,
     "one-character"},
    {"pre_tokenizer",
     "{\"type\": \"Metaspace\", \"replacement\": \"_\", \"prepend_scheme\": "
     "\"sometimes\"}",
     LLM_EFORMAT, "prepend_scheme 'sometimes'"},
    {"pre_tokenizer", "{\"type\": \"Sequence\", \"pretokenizers\": 3}", LLM_EFORMAT,
     "\"pretokenizers\""},
    {"decoder", "{\"type\": \"CTC\"}", LLM_EUNSUPPORTED, "decoder 'CTC'"},
    {"decoder", "{\"type\": \"Strip\", \"content\": \" \", \"start\": -1}", LLM_EFORMAT,
     "\"start\""},
    {"decoder", "{\"type\": \"Replace\", \"pattern\": {\"String\": \"x\"}}", LLM_EFORMAT,
     "\"content\""},
    {"decoder", "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Fuse\"}, {}]}", LLM_EFORMAT,
     "decoder without"},
    {"post_processor",
     "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": "
     "{\"id\": \"<x>\"}}, {\"Sequence\": {\"id\": \"A\"}}], \"special_tokens\": {}}",
     LLM_EFORMAT, "'<x>'"},
    {"post_processor",
     "{\"type\": \"TemplateProcessing\", \"single\": [], \"special_tokens\": "
     "{}}",
     LLM_EFORMAT, "no sequence A"},
    {"post_processor",
     "{\"type\": \"TemplateProcessing\", \"single\": [{\"Sequence\": {\"id\": "
     "\"B\"}}], \"special_tokens\": {}}",
     LLM_EFORMAT, "sequence A"},
    {"post_processor",
     "{\"type\": \"RobertaProcessing\", \"sep\": [\"</s>\"], \"cls\": "
     "[\"<s>\", 3]}",
     LLM_EFORMAT, "\"sep\""},
    {"post_processor",
     "{\"type\": \"BertProcessing\", \"sep\": [\"</s>\", 500], \"cls\": "
     "[\"<s>\", 3]}",
     LLM_EFORMAT, "id 500"},
    {"post_processor", "{\"type\": \"Magic\"}", LLM_EUNSUPPORTED, "post_processor 'Magic'"},
};

static void test_bad(void)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = base_with(bad[i].key, bad[i].value);
        struct llm_tokenizer *t = NULL;
        llm_err_clear();
        int rc = llm_tok_load(&t, j, NULL, "bad.json");
        const char *msg = llm_errmsg();
        CHECK(rc == bad[i].code && !t, "%s=%s: want %s, got %d (%s)", bad[i].key, bad[i].value,
              llm_strerror(bad[i].code), rc, msg);
        CHECK(strstr(msg, "'bad.json'") && strstr(msg, bad[i].needle) && !strchr(msg, '\n'),
              "%s=%s: message '%s' should name 'bad.json' and contain \"%s\"", bad[i].key,
              bad[i].value, msg, bad[i].needle);
        llm_tok_free(t);
        json_decref(j);
    }
    struct llm_tokenizer *t = NULL;
    json_t *arr = json_array();
    CHECK(llm_tok_load(&t, arr, NULL, "arr.json") == LLM_EFORMAT && !t, "array top level");
    json_decref(arr);
    CHECK(llm_tok_load_dir(&t, "/nonexistent/dir") == LLM_ENOTFOUND && !t, "missing dir: %s",
          llm_errmsg());
}

static void test_base(void)
{
    json_t *j = base_with(NULL, NULL);
    struct llm_tokenizer *t;
    int rc = llm_tok_load(&t, j, NULL, "base.json");
    CHECK(rc == 0, "base load: %s", llm_errmsg());
    json_decref(j);
    if (rc) return;
    int32_t *ids;
    size_t n;
    /* "▁Hello" -> ▁He ll o, after the template's <s> */
    CHECK(llm_tok_encode(t, "Hello", 5, 1, &ids, &n) == 0, "encode");
    CHECK(n == 4 && ids[0] == 3 && ids[1] == 9 && ids[2] == 8 && ids[3] == 6,
          "encode 'Hello' with BOS: got %zu ids", n);
    free(ids);
    CHECK(llm_tok_encode(t, "HA\xff", 3, 0, &ids, &n) == 0, "encode invalid utf-8");
    /* "▁HA\uFFFD": no merge applies; A falls back to <0x41>; U+FFFD has no
     * byte tokens, so it becomes <unk> */
    CHECK(n == 4 && ids[0] == 1 && ids[1] == 2 && ids[2] == 10 && ids[3] == 0,
          "'HA\\xff': got %zu ids", n);
    free(ids);
    CHECK(llm_tok_vocab_size(t) == 12, "vocab size %lld", (long long)llm_tok_vocab_size(t));
    CHECK(llm_tok_piece_to_id(t, "He") == 7 && llm_tok_piece_to_id(t, "nope") == -1, "p2id");
    CHECK(!strcmp(llm_tok_id_to_piece(t, 9), "\xE2\x96\x81He") && !llm_tok_id_to_piece(t, 12) &&
              !llm_tok_id_to_piece(t, -1),
          "id2p");
    CHECK(llm_tok_is_special(t, 3) && !llm_tok_is_special(t, 2) && !llm_tok_is_special(t, 99),
          "is_special");
    CHECK(llm_tok_bos(t) == 3 && llm_tok_eos(t) == 11, "bos %d eos %d", llm_tok_bos(t),
          llm_tok_eos(t));
    /* decode drops unknown ids; push after flush is refused */
    int32_t dids[] = {3, 9, 77, -5, 8, 6};
    char *s;
    size_t sl;
    CHECK(llm_tok_decode(t, dids, 6, 1, &s, &sl) == 0 && !strcmp(s, "Hello"), "decode '%s'",
          s ? s : "");
    free(s);
    CHECK(llm_tok_decode(t, dids, 6, 0, &s, &sl) == 0 && !strcmp(s, "<s> Hello"),
          "decode keeping specials '%s'", s ? s : "");
    free(s);
    struct llm_tok_stream *st;
    CHECK(llm_tok_stream_new(&st, t, 1) == 0, "stream");
    CHECK(llm_tok_stream_push(st, 9, &s, &sl) == 0 && !strcmp(s, "He"), "push");
    free(s);
    CHECK(llm_tok_stream_flush(st, &s, &sl) == 0 && sl == 0, "flush");
    free(s);
    CHECK(llm_tok_stream_push(st, 9, &s, &sl) == LLM_EINVAL && !s, "push after flush");
    llm_tok_stream_free(st);
    llm_tok_free(t);
}

static void test_config(const char *data)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/tiny-l3/tokenizer.json", data);
    json_error_t je;
    json_t *tok = json_load_file(dir, 0, &je);
    CHECK(tok != NULL, "load '%s': %s", dir, je.text);
    if (!tok) return;
    struct llm_tokenizer *t;
    int32_t *ids;
    size_t n;
    /* no config: BOS from the template, EOS from the known names */
    CHECK(llm_tok_load(&t, tok, NULL, "l3") == 0, "load: %s", llm_errmsg());
    int32_t bot = llm_tok_piece_to_id(t, "<|begin_of_text|>");
    int32_t eot = llm_tok_piece_to_id(t, "<|eot_id|>");
    int32_t eoft = llm_tok_piece_to_id(t, "<|end_of_text|>");
    CHECK(llm_tok_bos(t) == bot && llm_tok_eos(t) == eoft, "bos/eos without config");
    CHECK(llm_tok_encode(t, "hi", 2, 1, &ids, &n) == 0 && n >= 2 && ids[0] == bot, "bos added");
    free(ids);
    llm_tok_free(t);
    /* config: eos as an object, BOS off, EOS on */
    json_t *cfg = json_loads("{\"bos_token\": \"<|begin_of_text|>\", \"eos_token\": "
                             "{\"content\": \"<|eot_id|>\", \"lstrip\": false}, "
                             "\"add_bos_token\": false, \"add_eos_token\": true}",
                             0, &je);
    CHECK(llm_tok_load(&t, tok, cfg, "l3") == 0, "load with cfg: %s", llm_errmsg());
    CHECK(llm_tok_bos(t) == bot && llm_tok_eos(t) == eot, "cfg bos/eos %d %d", llm_tok_bos(t),
          llm_tok_eos(t));
    CHECK(llm_tok_encode(t, "hi", 2, 1, &ids, &n) == 0 && n >= 2 && ids[0] != bot &&
              ids[n - 1] == eot,
          "add_bos false / add_eos true");
    free(ids);
    CHECK(llm_tok_encode(t, "hi", 2, 0, &ids, &n) == 0 && ids[n - 1] != eot, "no specials");
    free(ids);
    llm_tok_free(t);
    json_decref(cfg);
    /* a folder with tokenizer_config.json (tiny-spm: the config agrees with
     * the template, so the HF cases still hold) */
    snprintf(dir, sizeof(dir), "%s/tiny-spm", data);
    CHECK(llm_tok_load_dir(&t, dir) == 0, "load_dir: %s", llm_errmsg());
    if (t) {
        CHECK(llm_tok_bos(t) == 1 && llm_tok_eos(t) == 2, "tiny-spm bos %d eos %d", llm_tok_bos(t),
              llm_tok_eos(t));
        CHECK(llm_tok_encode(t, "a", 1, 1, &ids, &n) == 0 && n >= 2 && ids[0] == 1 &&
                  ids[n - 1] != 2,
              "tiny-spm add_bos_token");
        free(ids);
        llm_tok_free(t);
    }
    cfg = json_loads("[1]", 0, &je);
    CHECK(llm_tok_load(&t, tok, cfg, "l3") == LLM_EFORMAT, "config not an object");
    json_decref(cfg);
    json_decref(tok);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_tok_api DATA_DIR\n");
        return 2;
    }
    test_bad();
    test_base();
    test_config(argv[1]);
    printf("%d passed, %d failed\n", checks - failed, failed);
    return failed ? 1 : 0;
}
