/* llm-convert - turn a Hugging Face checkpoint folder into an llm artifact.
 *
 * The converter is the library's (lib/model/convert.c: streaming, one
 * tensor at a time, through the architecture registry's rules); this tool
 * parses options and maps errors to exit codes.  --random writes random
 * weights in the exact shapes a config.json gives, without any checkpoint.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/hf.h"
#include "llm/log.h"
#include "llm_build_config.h"
#include "llm_commit.h"
#include "tool.h"

static const char usage_text[] =
    "Usage: llm-convert [OPTIONS] HF_DIR [-o OUT]\n"
    "       llm-convert [OPTIONS] --random CONFIG_JSON [--seed N] [-o OUT]\n"
    "Convert a Hugging Face checkpoint folder (config.json, *.safetensors, tokenizer\n"
    "files) into one llm artifact.  Without -o the artifact goes to standard output,\n"
    "which must not be a terminal.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE       write FILE (written under a temporary name, renamed\n"
    "                          when complete); '-' is standard output\n"
    "      --dtype TYPE        keep|f32|f16|bf16: element type of float tensors\n"
    "                          (default keep)\n"
    "      --compress[=LEVEL]  zstd-compress each tensor that shrinks, LEVEL 1..22\n"
    "                          (default 3)\n"
    "      --random CONFIG     random weights in the shapes CONFIG (a config.json)\n"
    "                          gives; no checkpoint, no tokenizer; CONFIG:MODE[,OPT...]\n"
    "                          quantized as llm-quantize -m MODE writes it (fp8,\n"
    "                          fp8-pc, int8-sq, w8a16, w4a16, int4-awq, w4a8-awq;\n"
    "                          options group-size=N, act=static|dynamic,\n"
    "                          kv=fp8|int8)\n"
    "      --seed N            seed for --random (default 0)\n"
    "  -q, --quiet             print only errors\n"
    "  -v, --verbose           print each tensor as it is written\n"
    "  -h, --help              print this help and exit\n"
    "      --version           print the version and exit\n";

enum { OPT_DTYPE = 256, OPT_COMPRESS, OPT_RANDOM, OPT_SEED, OPT_VERSION };

struct opts {
    const char *in;      /* HF_DIR */
    const char *out;     /* NULL or "-" = stdout */
    const char *random;  /* CONFIG_JSON */
    unsigned long long seed;
    int have_seed;
    int dtype;           /* -1 keep */
    int level;           /* 0 = no compression */
    int verbose;         /* -1 quiet, 0, 1 */
};

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
    tool_init("llm-convert");
    struct opts o = {.dtype = -1};
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"dtype", required_argument, NULL, OPT_DTYPE},
        {"compress", optional_argument, NULL, OPT_COMPRESS},
        {"random", required_argument, NULL, OPT_RANDOM},
        {"seed", required_argument, NULL, OPT_SEED},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:qvh", longopts, NULL)) != -1) {
        long v;
        switch (c) {
        case 'o': o.out = optarg; break;
        case 'q': o.verbose = -1; break;
        case 'v': o.verbose = 1; break;
        case 'h': fputs(usage_text, stdout); return TOOL_EXIT_OK;
        case OPT_VERSION:
            return tool_version();
        case OPT_DTYPE:
            if (!strcmp(optarg, "keep")) {
                o.dtype = -1;
            } else {
                o.dtype = llm_dtype_from_name(optarg);
                if (o.dtype != LLM_DTYPE_F32 && o.dtype != LLM_DTYPE_F16 &&
                    o.dtype != LLM_DTYPE_BF16)
                    return tool_usage_error("--dtype must be keep, f32, f16 or bf16, not '%s'",
                                            optarg);
            }
            break;
        case OPT_COMPRESS:
            if (!optarg) {
                o.level = 3;
            } else if (tool_parse_int(optarg, 1, 22, &v)) {
                return tool_usage_error("--compress level must be 1..22, not '%s'", optarg);
            } else {
                o.level = (int)v;
            }
            break;
        case OPT_RANDOM: o.random = optarg; break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            o.seed = strtoull(optarg, &end, 0);
            if (!*optarg || *end || errno || *optarg == '-')
                return tool_usage_error("--seed must be a non-negative integer, not '%s'",
                                        optarg);
            o.have_seed = 1;
            break;
        }
        case ':': return tool_usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return tool_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    int npos = argc - optind;
    if (o.random) {
        if (npos)
            return tool_usage_error("--random takes no checkpoint folder (got '%s')",
                                    argv[optind]);
    } else {
        if (o.have_seed) return tool_usage_error("--seed needs --random");
        if (npos == 0) return tool_usage_error("missing the checkpoint folder HF_DIR");
        if (npos > 1) return tool_usage_error("one checkpoint folder only (got '%s' too)",
                                              argv[optind + 1]);
        o.in = argv[optind];
    }
    if ((!o.out || !strcmp(o.out, "-")) && isatty(STDOUT_FILENO))
        return tool_usage_error("refusing to write an artifact to a terminal; use -o FILE or "
                                "redirect standard output");
    if (o.verbose < 0) llm_log_set_level(LLM_LOG_ERROR);

    struct llm_convert_opts co;
    llm_convert_opts_init(&co);
    co.out = o.out;
    co.dtype = o.dtype;
    co.compress_level = o.level;
    co.verbose = o.verbose;
    int rc = o.random ? llm_convert_random(o.random, o.seed, &co) : llm_convert_hf(o.in, &co);
    return rc ? tool_fail(rc) : TOOL_EXIT_OK;
}
