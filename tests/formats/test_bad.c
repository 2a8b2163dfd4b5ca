/* test_bad.c - runs the bad-input corpus (tests/formats/bad/, listed in
 * bad/cases.tsv) through what a converter does with a checkpoint folder:
 * read config.json, open the safetensors, plan the conversion.  Each case
 * must fail at the first defect with the listed error code and a message
 * containing the listed text, on one line; the valid checkpoint the cases
 * are derived from (good/tiny-llama) must pass.  Every folder under bad/
 * must be listed, so no case is silently skipped. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "llm/log.h"
#include "llm/hf.h"
#include "llm/model.h"
#include "llm/safetensors.h"
#include "tcheck.h"

/* config, safetensors, plan: the first failure's code (0 if none). */
static int convert_dry(const char *dir, size_t *n_items)
{
    struct llm_model_desc d;
    struct llm_st *st = NULL;
    struct llm_plan_item *items = NULL;
    size_t n = 0;
    struct llm_hf_quant q;
    llm_err_clear();
    int rc = llm_hfconfig_load_ex(dir, &d, NULL, &q);
    if (rc) return rc;
    rc = llm_hf_quant_importable(&q, "config.json");
    llm_hf_quant_free(&q);
    if (rc) {
        llm_desc_free(&d);
        return rc;
    }
    rc = llm_st_open(&st, dir);
    if (!rc) rc = llm_hfmap_plan(&d, st, &items, &n);
    free(items);
    llm_st_close(st);
    llm_desc_free(&d);
    if (n_items) *n_items = n;
    return rc;
}

int main(void)
{
    llm_log_set_level(LLM_LOG_ERROR);
    char base[4096], path[4200];
    snprintf(base, sizeof(base), "%s/tests/formats", t_srcdir());

    snprintf(path, sizeof(path), "%s/good/tiny-llama", base);
    size_t n = 0;
    int rc = convert_dry(path, &n);
    CHECK(rc == 0 && n == 10, "good/tiny-llama: %d (%s) %s, %zu items", rc, llm_strerror(rc),
          llm_errmsg(), n);

    snprintf(path, sizeof(path), "%s/bad/cases.tsv", base);
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "unable to open '%s'\n", path);
        return 1;
    }
    char line[1024], listed[128][64];
    int nlisted = 0;
    while (fgets(line, sizeof(line), fp)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        char *name = strtok(line, "\t"), *code = strtok(NULL, "\t"), *sub = strtok(NULL, "");
        if (!name || !code || !sub) {
            CHECK(0, "malformed manifest line '%s'", line);
            continue;
        }
        if (nlisted < 128) snprintf(listed[nlisted++], sizeof(listed[0]), "%s", name);
        int want = t_code_of(code);
        CHECK(want <= 0, "%s: unknown error code name '%s'", name, code);
        char dir[4400];
        snprintf(dir, sizeof(dir), "%s/bad/%s", base, name);
        rc = convert_dry(dir, NULL);
        const char *msg = llm_errmsg();
        CHECK(rc == want && strstr(msg, sub), "%s: got %s '%s', expected %s with '%s'", name,
              t_code_name(rc), msg, code, sub);
        CHECK(!strchr(msg, '\n'), "%s: message spans lines", name);
        CHECK(strchr(msg, '\'') != NULL, "%s: message quotes no subject: '%s'", name, msg);
        printf("%-28s %-17s %s\n", name, t_code_name(rc), msg);
    }
    fclose(fp);
    CHECK(nlisted >= 14, "only %d cases listed", nlisted);

    /* every case folder is in the manifest */
    snprintf(path, sizeof(path), "%s/bad", base);
    DIR *dd = opendir(path);
    struct dirent *e;
    while (dd && (e = readdir(dd))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "cases.tsv")) continue;
        int found = 0;
        for (int i = 0; i < nlisted; i++)
            found |= !strcmp(listed[i], e->d_name);
        CHECK(found, "bad/%s is not listed in cases.tsv", e->d_name);
    }
    if (dd) closedir(dd);
    return t_report("test-bad");
}
