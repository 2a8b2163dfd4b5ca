/* text.c - text helpers for error messages shared by the library's readers
 * (see text_internal.h).
 *
 * Design choice: names and strings that come from a file are never put into
 * a message as they are: llm_quote bounds their length and replaces control
 * characters, so a crafted name cannot forge extra lines or flood the log. */
#include <stdio.h>
#include <string.h>

#include "text_internal.h"

const char *llm_quote(const char *s, char *buf, size_t cap)
{
    size_t n = 0, i = 0;
    for (; s[i] && n + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (s[i]) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = 0;
    return buf;
}

const char *llm_json_dup_key(const char *text, char *buf, size_t cap)
{
    const char *near = strstr(text, "near '");
    if (!near) return "(unknown)";
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s", near + 6);
    size_t n = strlen(tmp);
    if (n && tmp[n - 1] == '\'') tmp[n - 1] = 0;
    return llm_quote(tmp, buf, cap);
}

const char *llm_json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

const char *llm_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
    return buf;
}
