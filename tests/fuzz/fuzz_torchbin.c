/* fuzz_torchbin.c - libFuzzer target for the PyTorch .bin reader.
 *
 * The input is opened as one in-memory torch.save archive (zip + pickle).
 * When it opens, every byte of every tensor is read (so ASan checks that
 * each range the reader vouched for lies inside the input), every tensor is
 * found again by name, tensors come by offset, and the file queries are
 * exercised; when it does not, the error must carry a one-line message
 * naming the input.  Nothing may crash, leak, read out of bounds or run
 * away with memory.
 *
 * The readers' sources are compiled into this target (their definitions
 * take precedence over libllm's) so that libFuzzer's coverage
 * instrumentation, applied to the target's own objects only, sees the zip
 * and pickle parsers' edges.
 */
#include "../../lib/formats/safetensors.c"
#include "../../lib/formats/torchbin.c"

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
    int rc = llm_st_open_torchbin_mem(&st, data, size, "fuzz.bin");
    if (rc) {
        const char *msg = llm_errmsg();
        if (st || rc >= 0 || !msg[0] || strchr(msg, '\n') || !strstr(msg, "fuzz.bin")) abort();
        return 0;
    }
    volatile uint8_t sink = 0;
    size_t n = llm_st_count(st);
    for (size_t i = 0; i < n; i++) {
        const struct llm_tensor *t = llm_st_get(st, i);
        const uint8_t *p = t->data;
        if (p < data || (uint64_t)(p - data) > size || t->nbytes > size - (size_t)(p - data))
            abort();
        for (uint64_t k = 0; k < t->nbytes; k++)
            sink ^= p[k];
        if (llm_st_find(st, t->name) != t) abort();
        if (llm_st_shard_of(st, i) != 0) abort();
        if (i && p < (const uint8_t *)llm_st_get(st, i - 1)->data) abort();
        llm_st_release(st, i);
    }
    if (llm_st_nfiles(st) != 1 || llm_st_file_size(st, 0) != size) abort();
    if (llm_st_get(st, n) != NULL || llm_st_index_path(st) != NULL) abort();
    llm_st_release_file(st, 0);
    llm_st_close(st);
    (void)sink;
    return 0;
}
