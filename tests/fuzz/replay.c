/* replay.c - runs a fuzz target over files and folders of inputs, so the
 * corpora replay as ordinary tests (under the sanitizers in CI) without
 * libFuzzer.
 *
 *   fuzz-<name>-replay PATH...                 every input once (folders are walked)
 *   fuzz-<name>-replay --mutate N PATH...      and N mutants of each (the slow suite)
 *
 * A mutant is its input with 1 to 8 edits (bit flips, bytes set to
 * boundary values, inserted, deleted or duplicated runs, truncation,
 * splices from the previous input), drawn from a fixed-seed generator: the
 * same command runs the same inputs, so a failure reproduces; with
 * LLM_REPLAY_KEEP=FILE in the environment each mutant is written to FILE
 * before it runs, so a crash leaves the input behind (replay it on its
 * own).  No inputs at all is a failure: an empty or missing corpus must
 * not pass. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static long mutations;          /* --mutate N: mutants per input */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint8_t *prev;           /* the previous input, for splices */
static size_t prev_n;
static long n_mutants;

static uint64_t next(void) /* xorshift64* */
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}

static size_t below(size_t n)
{
    return n ? (size_t)(next() % n) : 0;
}

/* one mutant of in[0..n) into a new buffer (room for growth), its size in *m */
static uint8_t *mutate(const uint8_t *in, size_t n, size_t *m)
{
    size_t cap = n * 2 + 64;
    uint8_t *b = malloc(cap);
    if (!b) return NULL;
    memcpy(b, in, n);
    size_t len = n;
    int edits = 1 + (int)below(8);
    static const uint8_t special[] = {0, 1, 0x7f, 0x80, 0xff, '"', '{', '}', '[', ']',
                                      ',', ':', '\\', '0', '9', '-', 'e'};
    for (int e = 0; e < edits; e++) {
        size_t at = below(len + 1), run = 1 + below(16);
        switch (below(7)) {
        case 0: /* flip a bit */
            if (len) b[below(len)] ^= (uint8_t)(1u << below(8));
            break;
        case 1: /* a boundary or syntax byte */
            if (len) b[below(len)] = special[below(sizeof special)];
            break;
        case 2: /* insert random bytes */
            if (len + run > cap) break;
            memmove(b + at + run, b + at, len - at);
            for (size_t i = 0; i < run; i++)
                b[at + i] = (uint8_t)next();
            len += run;
            break;
        case 3: /* delete a run */
            if (at + run > len) run = len - at;
            memmove(b + at, b + at + run, len - at - run);
            len -= run;
            break;
        case 4: /* duplicate a run */
            if (at + run > len || len + run > cap) break;
            memmove(b + at + run, b + at, len - at);
            len += run;
            break;
        case 5: /* truncate */
            len = below(len + 1);
            break;
        default: /* splice a run of the previous input */
            if (!prev_n || len + run > cap) break;
            if (run > prev_n) run = prev_n;
            memmove(b + at + run, b + at, len - at);
            memcpy(b + at, prev + below(prev_n - run + 1), run);
            len += run;
            break;
        }
    }
    *m = len;
    return b;
}

/* LLM_REPLAY_KEEP: where the mutant about to run is written, or NULL */
static const char *keep_path;

static void save_current(const uint8_t *b, size_t n)
{
    if (!keep_path) return;
    FILE *fp = fopen(keep_path, "wb");
    if (fp) {
        fwrite(b, 1, n, fp);
        fclose(fp);
    }
}

static int run_mutants(const uint8_t *in, size_t n)
{
    for (long k = 0; k < mutations; k++) {
        size_t m;
        uint8_t *b = mutate(in, n, &m);
        if (!b) return 1;
        /* exact-size copy so ASan catches reads past the end */
        uint8_t *exact = malloc(m ? m : 1);
        memcpy(exact, b, m);
        free(b);
        n_mutants++;
        save_current(exact, m);
        LLVMFuzzerTestOneInput(exact, m);
        free(exact);
    }
    return 0;
}

static int run_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "replay: unable to open '%s'\n", path);
        return 1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, fp)) > 0) {
        n += r;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
    }
    fclose(fp);
    if (!buf) return 1;
    /* exact-size copy so ASan catches reads past the end */
    uint8_t *exact = malloc(n ? n : 1);
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    int rc = mutations ? run_mutants(exact, n) : 0;
    free(prev);
    prev = exact;
    prev_n = n;
    return rc;
}

static int run_path(const char *path, int *count)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: no such path '%s'\n", path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*count)++;
        return run_file(path);
    }
    DIR *d = opendir(path);
    if (!d) return 1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char sub[4096];
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        rc |= run_path(sub, count);
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = 0, count = 0, i = 1;
    if (argc > 2 && !strcmp(argv[1], "--mutate")) {
        char *end;
        mutations = strtol(argv[2], &end, 10);
        if (*end || mutations < 1) {
            fprintf(stderr, "replay: --mutate needs a positive count, not '%s'\n", argv[2]);
            return 2;
        }
        i = 3;
        keep_path = getenv("LLM_REPLAY_KEEP");
        if (keep_path && !*keep_path) keep_path = NULL;
    }
    for (; i < argc; i++) rc |= run_path(argv[i], &count);
    free(prev);
    if (mutations)
        printf("replayed %d inputs and %ld mutants\n", count, n_mutants);
    else
        printf("replayed %d inputs\n", count);
    if (count == 0) {
        fprintf(stderr, "replay: no inputs: an empty corpus tests nothing\n");
        rc = 1;
    }
    return rc;
}
