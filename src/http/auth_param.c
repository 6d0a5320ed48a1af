#include "http/auth_param.h"

#include <string.h>
#include <strings.h>

static int tchar(unsigned char ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static size_t skip_ows(const char *s, size_t i, size_t n) {
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

int http_auth_params(const char *s, size_t n, const char **scheme, size_t *scheme_len,
                     struct http_param *out, size_t max) {
    size_t i = 0, count = 0;
    while (i < n && tchar((unsigned char)s[i]))
        i++;
    if (i == 0)
        return -1;
    *scheme = s;
    *scheme_len = i;
    i = skip_ows(s, i, n);
    while (i < n) {
        size_t k = i;
        while (i < n && tchar((unsigned char)s[i]) && s[i] != '=')
            i++;
        size_t klen = i - k;
        i = skip_ows(s, i, n);
        if (klen == 0 || i == n || s[i] != '=')
            return -1;
        i = skip_ows(s, i + 1, n);
        const char *v = s + i;
        size_t vlen;
        if (i < n && s[i] == '"') {
            size_t j = i + 1;
            while (j < n && s[j] != '"')
                j += s[j] == '\\' && j + 1 < n ? 2 : 1;
            if (j >= n)
                return -1;
            v = s + i + 1;
            vlen = j - i - 1;
            i = j + 1;
        } else {
            while (i < n && tchar((unsigned char)s[i]))
                i++;
            vlen = (size_t)(s + i - v);
        }
        if (count == max)
            return -1;
        out[count++] = (struct http_param){s + k, klen, v, vlen};
        i = skip_ows(s, i, n);
        if (i < n) {
            if (s[i] != ',')
                return -1;
            i = skip_ows(s, i + 1, n);
        }
    }
    return (int)count;
}

const struct http_param *http_param_find(const struct http_param *p, size_t n, const char *name) {
    size_t len = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (p[i].name_len == len && strncasecmp(p[i].name, name, len) == 0)
            return &p[i];
    return NULL;
}
