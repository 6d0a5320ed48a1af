#include "http/cookie.h"

#include <string.h>

static int ows(char ch) {
    return ch == ' ' || ch == '\t';
}

size_t http_cookie_parse(const char *s, size_t n, struct http_cookie *out, size_t max) {
    size_t count = 0, i = 0;
    while (i < n && count < max) {
        const char *semi = memchr(s + i, ';', n - i);
        size_t end = semi ? (size_t)(semi - s) : n;
        const char *eq = memchr(s + i, '=', end - i);
        if (eq) {
            size_t a = i, b = (size_t)(eq - s), va = b + 1, vb = end;
            while (a < b && ows(s[a]))
                a++;
            while (b > a && ows(s[b - 1]))
                b--;
            while (va < vb && ows(s[va]))
                va++;
            while (vb > va && ows(s[vb - 1]))
                vb--;
            if (vb - va >= 2 && s[va] == '"' && s[vb - 1] == '"')
                va++, vb--;
            if (b > a)
                out[count++] = (struct http_cookie){s + a, b - a, s + va, vb - va};
        }
        i = end + 1;
    }
    return count;
}
