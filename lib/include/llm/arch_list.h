/* arch_list.h - the architectures llm knows, one line each (an X-macro list).
 *
 * LLM_ARCH_ENTRY(ID, name): enum value LLM_ARCH_<ID>, the name stored in
 * artifacts ("model.arch") and the registry entry llm_arch_<name> defined
 * in lib/model/arch/<name>.c.  Adding an architecture is one line here,
 * its file, and that file in lib/model/meson.build (docs/ADDING_A_MODEL.md).
 * Entries are never renamed or removed: the name is a file format value.
 */
#ifndef LLM_ARCH_ENTRY /* included alone (the header check): expands to nothing */
#define LLM_ARCH_ENTRY(id, name)
#define LLM_ARCH_ENTRY_DEFAULTED
#endif
LLM_ARCH_ENTRY(LLAMA, llama)
LLM_ARCH_ENTRY(MISTRAL, mistral)
LLM_ARCH_ENTRY(QWEN2, qwen2)
LLM_ARCH_ENTRY(GPT2, gpt2)
LLM_ARCH_ENTRY(GPTJ, gptj)
LLM_ARCH_ENTRY(GPTNEOX, gptneox)
LLM_ARCH_ENTRY(FALCON, falcon)
LLM_ARCH_ENTRY(MPT, mpt)
LLM_ARCH_ENTRY(BLOOM, bloom)
LLM_ARCH_ENTRY(GEMMA, gemma)
LLM_ARCH_ENTRY(PHI3, phi3)
LLM_ARCH_ENTRY(MIXTRAL, mixtral)
LLM_ARCH_ENTRY(GEMMA2, gemma2)
LLM_ARCH_ENTRY(OPT, opt)
LLM_ARCH_ENTRY(QWEN3, qwen3)
LLM_ARCH_ENTRY(QWEN3MOE, qwen3moe)
LLM_ARCH_ENTRY(STABLELM, stablelm)
LLM_ARCH_ENTRY(STARCODER2, starcoder2)
LLM_ARCH_ENTRY(PHI, phi)
LLM_ARCH_ENTRY(GPTBIGCODE, gptbigcode)
LLM_ARCH_ENTRY(GEMMA3, gemma3)
LLM_ARCH_ENTRY(GLM, glm)
LLM_ARCH_ENTRY(SMOLLM3, smollm3)
LLM_ARCH_ENTRY(COHERE, cohere)
LLM_ARCH_ENTRY(GRANITE, granite)
LLM_ARCH_ENTRY(OLMO2, olmo2)
LLM_ARCH_ENTRY(OLMO3, olmo3)
LLM_ARCH_ENTRY(GRANITEMOE, granitemoe)
LLM_ARCH_ENTRY(OLMOE, olmoe)
LLM_ARCH_ENTRY(OLMO, olmo)
LLM_ARCH_ENTRY(NEMOTRON, nemotron)
LLM_ARCH_ENTRY(ARCEE, arcee)
LLM_ARCH_ENTRY(QWEN2MOE, qwen2moe)
LLM_ARCH_ENTRY(SEEDOSS, seedoss)
LLM_ARCH_ENTRY(ERNIE45, ernie45)
LLM_ARCH_ENTRY(HELIUM, helium)
LLM_ARCH_ENTRY(GPTOSS, gptoss)
LLM_ARCH_ENTRY(EXAONE4, exaone4)
LLM_ARCH_ENTRY(DEEPSEEK3, deepseek3)
LLM_ARCH_ENTRY(DEEPSEEK2, deepseek2)
LLM_ARCH_ENTRY(GLM4MOE, glm4moe)
LLM_ARCH_ENTRY(MINIMAXM2, minimaxm2)
LLM_ARCH_ENTRY(DOTS1, dots1)
LLM_ARCH_ENTRY(MINISTRAL3, ministral3)
LLM_ARCH_ENTRY(GRANITEMOESHARED, granitemoeshared)
LLM_ARCH_ENTRY(ERNIE45MOE, ernie45moe)
LLM_ARCH_ENTRY(QWEN2VL, qwen2vl)
LLM_ARCH_ENTRY(QWEN3VL, qwen3vl)
LLM_ARCH_ENTRY(QWEN3VLMOE, qwen3vlmoe)
#ifdef LLM_ARCH_ENTRY_DEFAULTED
#undef LLM_ARCH_ENTRY
#undef LLM_ARCH_ENTRY_DEFAULTED
#endif
