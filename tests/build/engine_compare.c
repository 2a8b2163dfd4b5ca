/* engine_compare.c - `engine-compare SOURCE ENGINE`: exit 0 when every tensor
 * of ENGINE equals its SOURCE tensor converted to the engine's dtype and each
 * mlp.fc_gate equals fc's rows then gate's, byte for byte (ea_compare in
 * ea_test.h); prints what it compared.  Used by test_llm_build.sh on engines
 * that llm-build wrote from llm-convert's artifacts. */
#include "ea_test.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: engine-compare SOURCE ENGINE\n");
        return 2;
    }
    int fused = 0, bad = ea_compare(argv[1], argv[2], &fused);
    if (bad) {
        printf("FAIL: %d tensors of '%s' differ from '%s'\n", bad, argv[2], argv[1]);
        return 1;
    }
    printf("every tensor equals its source converted, %d fused tensors bit for bit\n", fused);
    return 0;
}
