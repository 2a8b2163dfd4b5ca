/* fuzz_artifact.c - libFuzzer target for the artifact reader.
 *
 * Each input is read twice through llm_ar_open_mem: as it is, and after
 * its checksums have been recomputed from whatever layout the bytes
 * suggest, so that mutations reach the record, trailer and index checks
 * behind the checksums instead of stopping at the first one.  Every tensor
 * is then listed, fetched (decompressing), verified and released, and a
 * name lookup is made.  Nothing may crash, leak or read out of bounds.
 *
 * The reader's source is compiled into this target (its definitions take
 * precedence over libllm's), because the fuzz build instruments only the
 * target's own objects for coverage; without this libFuzzer would see no
 * edges inside the parser it is meant to explore.
 */
#include "../../lib/formats/artifact_read.c"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "llm/artifact.h"
#include "llm/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* rd32, rd64, wr64 and align64 come with artifact_read.c (artifact_internal.h) */

/* Recompute every checksum (and the index entries) the bytes allow. */
static void fixup(uint8_t *b, size_t len)
{
    if (len < 128) return;
    uint64_t hl = rd32(b + 12), ml = rd64(b + 16);
    if (hl < 64 || hl > 4096 || hl % 8 || hl > len) return;
    if (ml <= len - hl) wr64(b + 24, XXH3_64bits(b + hl, ml));
    wr64(b + hl - 8, XXH3_64bits(b, hl - 8));
    if (ml > len - hl) return;
    uint64_t offs[256];
    size_t n = 0;
    uint64_t pos = align64(hl + ml), end = 0;
    while (pos <= len - 8) {
        if (!memcmp(b + pos, "TNSR", 4)) {
            uint64_t rl = rd32(b + pos + 4);
            if (rl < 16 || rl > len - pos) return;
            wr64(b + pos + rl - 8, XXH3_64bits(b + pos, rl - 8));
            if (n < 256) offs[n++] = pos;
            uint64_t st = rl >= 32 ? rd64(b + pos + 24) : 0;
            uint64_t d = align64(pos + rl);
            if (st > len || d > len - st) return;
            pos = align64(d + st);
        } else if (!memcmp(b + pos, "TEND", 4)) {
            end = pos;
            break;
        } else {
            return;
        }
    }
    if (!end || end > len - 48) return;
    uint64_t tl = rd64(b + end + 16);
    if (tl <= len - end - 48) wr64(b + end + 24, XXH3_64bits(b + end + 48, tl));
    wr64(b + end + 40, XXH3_64bits(b + end, 40));
    uint8_t *f = b + len - 64;
    uint64_t io = rd64(f), cnt = rd64(f + 8);
    if (io > len - 64 || cnt > (len - 64 - io) / 8) return;
    for (uint64_t i = 0; i < cnt && i < n; i++) wr64(b + io + 8 * i, offs[i]);
    wr64(f + 16, XXH3_64bits(b + io, cnt * 8));
    wr64(f + 48, XXH3_64bits(f, 48));
}

static void exercise(const uint8_t *data, size_t size)
{
    struct llm_artifact *a;
    if (llm_ar_open_mem(&a, data, size, "fuzz.llm", LLM_AR_VERIFY)) return;
    struct llm_tensor t;
    volatile uint8_t sink = 0;
    while (llm_ar_next(a, &t) == 1)
        if (t.nbytes) sink ^= ((const uint8_t *)t.data)[t.nbytes - 1];
    for (size_t i = 0; i < llm_ar_count(a); i++) {
        if (llm_ar_info(a, i, &t) == 0 && t.name) sink ^= (uint8_t)t.name[0];
        if (llm_ar_get(a, i, &t) == 0) {
            llm_ar_verify_tensor(a, &t);
            sink ^= (uint8_t)llm_ar_offset(a, i) ^ (uint8_t)llm_ar_stored_size(a, i);
        }
        llm_ar_release(a, i);
    }
    llm_ar_find(a, "transformer.ln_f.weight", &t);
    (void)llm_ar_meta(a);
    (void)sink;
    llm_ar_close(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    exercise(data, size);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    fixup(copy, size);
    exercise(copy, size);
    free(copy);
    llm_err_clear();
    return 0;
}
