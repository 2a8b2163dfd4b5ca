/* hfmap.c - not written yet */
typedef int llm_placeholder_hfmap;
