/* registry.c - the architecture registry: every family's entry (lib/model/
 * arch/<name>.c), indexed by enum llm_arch, and lookups by HF class and
 * model_type.  The list itself is llm/arch_list.h. */
#include <string.h>

#include "arch/arch.h"

static const struct llm_arch_def *const defs[] = {
#define LLM_ARCH_ENTRY(id, name) &llm_arch_##name,
#include "llm/arch_list.h"
#undef LLM_ARCH_ENTRY
};
_Static_assert(sizeof(defs) / sizeof(defs[0]) == LLM_ARCH_COUNT, "registry");

const struct llm_arch_def *llm_arch_def_of(int arch)
{
    return arch >= 0 && arch < LLM_ARCH_COUNT ? defs[arch] : NULL;
}

static int find(const char *s, int types)
{
    if (!s) return -1;
    for (int a = 0; a < LLM_ARCH_COUNT; a++) {
        const char *const *t = types ? defs[a]->model_types : defs[a]->classes;
        for (; t && *t; t++)
            if (!strcmp(*t, s)) return a;
    }
    return -1;
}

int llm_hf_arch_of_class(const char *hf_class)
{
    return find(hf_class, 0);
}

int llm_hf_arch_of_model_type(const char *model_type)
{
    return find(model_type, 1);
}

const char *llm_hf_arch_class(int arch)
{
    const struct llm_arch_def *d = llm_arch_def_of(arch);
    return d ? d->classes[0] : "";
}
