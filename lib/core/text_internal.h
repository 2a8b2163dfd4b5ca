/* text_internal.h - small text helpers the library's readers share when they
 * build error messages (not installed, not public API).
 *
 * Design choice: every helper writes into a buffer the caller owns and
 * returns it, so a message can use several of them in one llm_err_set call
 * without allocation and without a failure path of its own. */
#ifndef LLM_TEXT_INTERNAL_H
#define LLM_TEXT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* A one-line, bounded copy of s (a name or string taken from a file) for a
 * message: control characters and DEL become '?', and a copy cut short ends
 * in "...".  cap must be at least 4.  Returns buf. */
const char *llm_quote(const char *s, char *buf, size_t cap);

/* The key named by jansson's duplicate-key error text (duplicate object key
 * near '"name"'), quoted as by llm_quote, or "(unknown)" when the text does
 * not have that form.  Returns buf or that constant. */
const char *llm_json_dup_key(const char *text, char *buf, size_t cap);

/* "an object", "an array", "a string", "an integer", "a real number",
 * "a boolean" or "null": v's JSON type for "must be X, found Y" messages. */
const char *llm_json_type_name(const json_t *v);

/* "[d0, d1, ...]" for the first ndim sizes of shape, cut short to fit cap.
 * Returns buf. */
const char *llm_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);

#endif
