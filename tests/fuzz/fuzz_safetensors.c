/* fuzz_safetensors.c - libFuzzer target for the safetensors reader.
 *
 * The input is opened as one in-memory safetensors file.  When it opens,
 * every byte of every tensor is read (so ASan checks that each range the
 * reader vouched for lies inside the input), every tensor is found again by
 * name, and the file queries are exercised; when it does not, the error
 * must carry a one-line message.  Nothing may crash, leak or read out of
 * bounds.
 *
 * The reader's source is compiled into this target (its definitions take
 * precedence over libllm's) so that libFuzzer's coverage instrumentation,
 * applied to the target's own objects only, sees the parser's edges.
 */
#include "../../lib/formats/safetensors.c"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "llm/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct llm_st *st = NULL;
    llm_err_clear();
    int rc = llm_st_open_mem(&st, data, size, "fuzz.safetensors");
    if (rc) {
        const char *msg = llm_errmsg();
        if (st || rc >= 0 || !msg[0] || strchr(msg, '\n')) abort();
        return 0;
    }
    volatile uint8_t sink = 0;
    uint64_t total = 0;
    size_t n = llm_st_count(st);
    for (size_t i = 0; i < n; i++) {
        const struct llm_tensor *t = llm_st_get(st, i);
        const uint8_t *p = t->data;
        for (uint64_t k = 0; k < t->nbytes; k++)
            sink ^= p[k];
        total += t->nbytes;
        if (llm_st_find(st, t->name) != t) abort();
        if (llm_st_shard_of(st, i) != 0) abort();
        /* tensors come by offset */
        if (i && (const uint8_t *)t->data < (const uint8_t *)llm_st_get(st, i - 1)->data) abort();
        llm_st_release(st, i);
    }
    if (total > size) abort(); /* ranges cannot overlap */
    if (llm_st_nfiles(st) != 1 || llm_st_file_size(st, 0) != size) abort();
    if (llm_st_get(st, n) != NULL) abort();
    const json_t *meta = llm_st_metadata(st);
    if (meta && !json_is_object(meta)) abort();
    llm_st_release_file(st, 0);
    llm_st_close(st);
    (void)sink;
    return 0;
}
