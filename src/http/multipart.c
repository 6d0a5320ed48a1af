#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "http/multipart.h"

#include <string.h>
#include <strings.h>

static int is_ws(char ch) {
    return ch == ' ' || ch == '\t';
}

/* RFC 2046 bchars, without the space (a boundary may not end in one and
 * we need not accept it inside either: no client sends it). */
static int is_bchar(unsigned char ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("'()+_,-./:=?", ch) != NULL);
}

/* RFC 9110 tchar. */
static int is_tchar(unsigned char ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

int multipart_boundary(const char *ct, size_t len, const char **b) {
    static const char type[] = "multipart/form-data";
    size_t i = sizeof type - 1;
    if (len < i || strncasecmp(ct, type, i) != 0)
        return -1;
    while (i < len) {
        while (i < len && is_ws(ct[i]))
            i++;
        if (i == len)
            break;
        if (ct[i] != ';')
            return -1;
        i++;
        while (i < len && is_ws(ct[i]))
            i++;
        size_t k = i;
        while (i < len && is_tchar((unsigned char)ct[i]))
            i++;
        size_t klen = i - k;
        if (i == len || ct[i] != '=')
            return -1;
        i++;
        const char *v = ct + i;
        size_t vlen;
        if (i < len && ct[i] == '"') {
            const char *q = memchr(ct + i + 1, '"', len - i - 1);
            if (!q)
                return -1;
            v = ct + i + 1;
            vlen = (size_t)(q - v);
            i = (size_t)(q - ct) + 1;
        } else {
            while (i < len && ct[i] != ';' && !is_ws(ct[i]))
                i++;
            vlen = (size_t)(ct + i - v);
        }
        if (klen == 8 && strncasecmp(ct + k, "boundary", 8) == 0) {
            if (vlen == 0 || vlen > MULTIPART_MAX_BOUNDARY)
                return -1;
            for (size_t j = 0; j < vlen; j++)
                if (!is_bchar((unsigned char)v[j]) && !(v[j] == ' ' && j + 1 < vlen))
                    return -1;
            *b = v;
            return (int)vlen;
        }
    }
    return -1;
}

/* Content-Disposition: form-data; name="x"; filename="y" -> the part. */
static int parse_disposition(const char *v, size_t n, struct multipart_part *p) {
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)v[i]))
        i++;
    if (i == 0)
        return -1;
    while (i < n) {
        while (i < n && is_ws(v[i]))
            i++;
        if (i == n)
            break;
        if (v[i] != ';')
            return -1;
        i++;
        while (i < n && is_ws(v[i]))
            i++;
        if (i == n)
            break; /* a trailing ';' */
        size_t k = i;
        while (i < n && is_tchar((unsigned char)v[i]) && v[i] != '=')
            i++;
        size_t klen = i - k;
        while (i < n && is_ws(v[i]))
            i++;
        if (klen == 0 || i == n || v[i] != '=')
            return -1;
        i++;
        while (i < n && is_ws(v[i]))
            i++;
        const char *val = v + i;
        size_t vlen;
        if (i < n && v[i] == '"') {
            size_t j = i + 1;
            while (j < n && v[j] != '"')
                j += v[j] == '\\' && j + 1 < n ? 2 : 1;
            if (j >= n)
                return -1;
            val = v + i + 1;
            vlen = j - i - 1;
            i = j + 1;
        } else {
            while (i < n && is_tchar((unsigned char)v[i]))
                i++;
            vlen = (size_t)(v + i - val);
        }
        if (klen == 4 && strncasecmp(v + k, "name", 4) == 0) {
            p->name = val;
            p->name_len = vlen;
        } else if (klen == 8 && strncasecmp(v + k, "filename", 8) == 0) {
            p->filename = val;
            p->filename_len = vlen;
        } /* others (filename*, size, ...) are ignored */
    }
    return 0;
}

/* The part's head at s[0..n): header lines, then an empty line. Returns the
 * bytes it took (up to and including the empty line) or -1. */
static long parse_head(const char *s, size_t n, size_t max, struct multipart_part *p,
                       const char **why) {
    size_t i = 0;
    for (;;) {
        const char *nl = memchr(s + i, '\n', n - i);
        if (!nl || (size_t)(nl - s) + 1 > max) {
            *why = nl ? "a part's header block is over the limit" : "a part's head does not end";
            return -1;
        }
        size_t end = (size_t)(nl - s);
        if (end == i || s[end - 1] != '\r') {
            *why = "a part's header line does not end in CRLF";
            return -1;
        }
        size_t line = end - 1 - i; /* without the CRLF */
        const char *l = s + i;
        i = end + 1;
        if (line == 0)
            return (long)i;
        const char *colon = memchr(l, ':', line);
        if (!colon || colon == l) {
            *why = "a part's header line has no name";
            return -1;
        }
        size_t nlen = (size_t)(colon - l);
        const char *v = colon + 1, *ve = l + line;
        while (v < ve && is_ws(*v))
            v++;
        while (ve > v && is_ws(ve[-1]))
            ve--;
        if (nlen == 19 && strncasecmp(l, "content-disposition", 19) == 0) {
            if (parse_disposition(v, (size_t)(ve - v), p) < 0) {
                *why = "a part's Content-Disposition is malformed";
                return -1;
            }
        } else if (nlen == 12 && strncasecmp(l, "content-type", 12) == 0) {
            p->ctype = v;
            p->ctype_len = (size_t)(ve - v);
        }
    }
}

/* After a delimiter at s[0..n): 1 the close delimiter ("--"), 0 a part
 * follows (padding then CRLF, both consumed into *used), -1 junk. */
static int after_delimiter(const char *s, size_t n, size_t *used) {
    if (n >= 2 && s[0] == '-' && s[1] == '-') {
        *used = 2;
        return 1;
    }
    size_t i = 0;
    while (i < n && is_ws(s[i]))
        i++;
    if (i + 1 < n && s[i] == '\r' && s[i + 1] == '\n') {
        *used = i + 2;
        return 0;
    }
    return -1;
}

int multipart_parse(const char *body, size_t len, const char *b, size_t blen,
                    const struct multipart_limits *lim, struct multipart_part *parts, size_t max,
                    const char **why) {
    char delim[4 + MULTIPART_MAX_BOUNDARY];
    if (blen == 0 || blen > MULTIPART_MAX_BOUNDARY) {
        *why = "the boundary must be 1 to 70 characters";
        return -1;
    }
    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, b, blen);
    size_t dlen = 4 + blen;
    /* The first delimiter may open the body (no CRLF before it). */
    size_t pos;
    if (len >= dlen - 2 && memcmp(body, delim + 2, dlen - 2) == 0) {
        pos = dlen - 2;
    } else {
        const char *d = memmem(body, len, delim, dlen);
        if (!d) {
            *why = "the body has no multipart boundary";
            return -1;
        }
        pos = (size_t)(d - body) + dlen;
    }
    size_t n = 0, seen = 0;
    for (;;) {
        size_t used;
        int r = after_delimiter(body + pos, len - pos, &used);
        if (r < 0) {
            *why = "a multipart boundary is followed by something other than CRLF or '--'";
            return -1;
        }
        pos += used;
        if (r == 1)
            return (int)n; /* the epilogue, if any, is ignored */
        if (++seen > lim->max_parts || seen > max) {
            *why = "too many parts in the multipart body";
            return -2;
        }
        struct multipart_part p = {0};
        long h = parse_head(body + pos, len - pos, lim->max_head_bytes, &p, why);
        if (h < 0)
            return -1;
        pos += (size_t)h;
        const char *d = memmem(body + pos, len - pos, delim, dlen);
        if (!d) {
            *why = "the multipart body has no closing boundary";
            return -1;
        }
        p.data = body + pos;
        p.data_len = (size_t)(d - p.data);
        pos = (size_t)(d - body) + dlen;
        if (p.name)
            parts[n++] = p;
    }
}
