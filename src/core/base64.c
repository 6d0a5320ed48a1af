#include "core/base64.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_append(struct buf *b, const void *s, size_t n) {
    if (buf_reserve(b, (n + 2) / 3 * 4) < 0)
        return -1;
    char *w = buf_start(b) + b->len;
    const unsigned char *p = s;
    size_t i = 0;
    for (; i + 2 < n; i += 3, w += 4) {
        w[0] = alphabet[p[i] >> 2];
        w[1] = alphabet[(p[i] & 3) << 4 | p[i + 1] >> 4];
        w[2] = alphabet[(p[i + 1] & 15) << 2 | p[i + 2] >> 6];
        w[3] = alphabet[p[i + 2] & 63];
    }
    if (i < n) {
        w[0] = alphabet[p[i] >> 2];
        w[1] = alphabet[(p[i] & 3) << 4 | (i + 1 < n ? p[i + 1] >> 4 : 0)];
        w[2] = i + 1 < n ? alphabet[(p[i + 1] & 15) << 2] : '=';
        w[3] = '=';
        w += 4;
    }
    b->len = (size_t)(w - buf_start(b));
    return 0;
}

static int sextet(unsigned char ch) {
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+' || ch == '-')
        return 62;
    if (ch == '/' || ch == '_')
        return 63;
    return -1;
}

long base64_decode(const char *s, size_t n, unsigned char *out) {
    while (n > 0 && s[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -1;
    unsigned acc = 0;
    int bits = 0;
    long o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = sextet((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6 | (unsigned)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return o;
}
