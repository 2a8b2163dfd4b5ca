/* tokenizer.h - Hugging Face tokenizer.json, reimplemented to give the same
 * ids as the `tokenizers` library: BPE models with byte-level or
 * SentencePiece-style (metaspace, byte fallback) pre-processing, the
 * normalizers, pre-tokenizers (regex splits with \p{..} classes and
 * lookahead, via PCRE2), added and special tokens, the post-processor's
 * BOS/EOS, and the decoders, with streaming detokenization that never emits
 * half a UTF-8 character. */
#ifndef LLM_TOKENIZER_H
#define LLM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

struct llm_tokenizer;

/* tok: the parsed tokenizer.json; cfg: tokenizer_config.json or NULL (for
 * bos/eos names and add_bos/add_eos overrides).  src names the origin in
 * messages. Unsupported model/normalizer/pre-tokenizer kinds fail with
 * LLM_EUNSUPPORTED naming the kind. */
int llm_tok_load(struct llm_tokenizer **out, const json_t *tok, const json_t *cfg,
                 const char *src);
/* Convenience: read DIR/tokenizer.json (+ tokenizer_config.json). */
int llm_tok_load_dir(struct llm_tokenizer **out, const char *dir);
void llm_tok_free(struct llm_tokenizer *t);

/* Encode UTF-8 text. add_special: apply the post-processor (BOS/EOS) as
 * HF's encode(text, add_special_tokens=True) does.  *ids is malloc'd.
 * Invalid UTF-8 is first made valid: each maximal invalid subpart becomes
 * U+FFFD (as Python's bytes.decode("utf-8", "replace")). */
int llm_tok_encode(const struct llm_tokenizer *t, const char *text, size_t len, int add_special,
                   int32_t **ids, size_t *n);
/* Decode ids to UTF-8 (HF decode; skip_special drops special tokens).
 * *text is malloc'd and NUL-terminated. */
int llm_tok_decode(const struct llm_tokenizer *t, const int32_t *ids, size_t n,
                   int skip_special, char **text, size_t *len);

int64_t llm_tok_vocab_size(const struct llm_tokenizer *t); /* incl. added tokens */
/* Token text as stored in the vocab (NULL for an unknown id). */
const char *llm_tok_id_to_piece(const struct llm_tokenizer *t, int32_t id);
int32_t llm_tok_piece_to_id(const struct llm_tokenizer *t, const char *piece); /* -1 if none */
int llm_tok_is_special(const struct llm_tokenizer *t, int32_t id);
int32_t llm_tok_bos(const struct llm_tokenizer *t); /* -1 when none */
int32_t llm_tok_eos(const struct llm_tokenizer *t); /* -1 when none */

/* Streaming detokenizer: push ids one at a time, get the text that is now
 * final (complete UTF-8, decoder rules such as a leading-space strip
 * applied as HF's full decode would).  The concatenation of everything
 * pushed equals llm_tok_decode of all ids. */
struct llm_tok_stream;
int llm_tok_stream_new(struct llm_tok_stream **out, const struct llm_tokenizer *t,
                       int skip_special);
/* Appends newly final text to *out (malloc'd, NUL-terminated; caller frees). */
int llm_tok_stream_push(struct llm_tok_stream *s, int32_t id, char **out, size_t *len);
/* Whatever is left at the end (an incomplete UTF-8 tail becomes U+FFFD). */
int llm_tok_stream_flush(struct llm_tok_stream *s, char **out, size_t *len);
void llm_tok_stream_free(struct llm_tok_stream *s);

#ifdef __cplusplus
}
#endif
#endif
