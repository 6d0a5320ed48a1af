/*
 * http_parse: strict HTTP/1.1 head parser and chunked decoder (RFC 9112).
 *
 * Every request passes through here, so the code avoids allocation, never
 * walks the buffer twice where once will do, and classifies bytes with one
 * table load. Parsing restarts from the first byte on each call (the caller
 * keeps no parser state); max_header_bytes bounds that rescanning.
 *
 * Strictness is the point: a byte sequence that another HTTP implementation
 * could frame differently (and so smuggle a second request past a proxy) is
 * rejected, never repaired. Choices where the RFC leaves room:
 *  - Content-Length may repeat (as fields or as a "5, 5" list) only with
 *    identical values; RFC 9110 8.6 allows that, anything else is 400.
 *  - Transfer-Encoding: "chunked" must appear once and last. If it appears
 *    but not last, 400 (RFC 9112 6.3). If another coding is present and
 *    chunked is absent or last, 501: we implement no other coding.
 *  - Expect values other than 100-continue are ignored (no 417); Expect is
 *    ignored in HTTP/1.0 as RFC 9110 10.1.1 requires.
 *  - The request-target may hold obs-text (bytes >= 0x80): it cannot change
 *    framing, and the router decides what it matches. Absolute-form is
 *    accepted for http and https only, without userinfo.
 *  - Host, when present, must hold only authority characters; it may be
 *    empty (RFC 9110 7.2).
 */
#include "http/http_parse.h"

#include <limits.h>
#include <string.h>

#define MAX_LEADING_EOLS 4    /* empty lines skipped before a request line */
#define MAX_CHUNK_LINE 4096   /* bytes of one chunk-size line, extensions included */
#define MAX_TRAILER_LINE 8192 /* bytes of one trailer field line */
#define MAX_TRAILERS 64       /* trailer fields per message */
#define MAX_CHUNK_DIGITS 16   /* hex digits of a chunk size: 64 bits */

/* Byte classes, one table load per byte in the hot loops. */
enum {
    C_TCHAR = 1,  /* token (RFC 9110 5.6.2): methods, field names, codings */
    C_VALUE = 2,  /* field-value / reason-phrase: HTAB, SP, VCHAR, obs-text */
    C_TARGET = 4, /* request-target: VCHAR and obs-text, no SP, no CTL */
    C_HOST = 8,   /* Host: unreserved, sub-delims, ':', '[', ']', '%' */
};

static const unsigned char char_class[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  2,  0,  0,  0,  0,  0,  0,  /* 0x00 */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
    2,  15, 6,  7,  15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15, 6,  /* 0x20 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 14, 6,  14, 6,  6,  /* 0x30 */
    6,  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* 0x40 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 6,  14, 7,  15, /* 0x50 */
    7,  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* 0x60 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 6,  7,  6,  15, 0,  /* 0x70 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0x80 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0x90 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xa0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xb0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xc0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xd0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xe0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xf0 */
};

#define IS(c, cls) (char_class[(unsigned char)(c)] & (cls))
#define IS_OWS(c) ((c) == ' ' || (c) == '\t')
#define IS_DIGIT(c) ((unsigned char)((c) - '0') < 10)

#define FAIL(code, msg)                                                                            \
    do {                                                                                           \
        *why = (msg);                                                                              \
        return (code);                                                                             \
    } while (0)

/*
 * Skip a run of class-cls bytes, eight at a time while no byte of the word
 * is below `low` or DEL (SWAR: the bit tricks give an exact "any byte"
 * answer), then byte by byte through the word that stops it. Values and
 * targets are long enough for this to halve parse time.
 */
#define ONES 0x0101010101010101ULL
#define HAS_LESS(x, n) (((x)-ONES * (n)) & ~(x) & (ONES * 0x80))

static const char *scan_run(const char *p, const char *end, unsigned low, int cls) {
    for (;;) {
        while (end - p >= 8) {
            uint64_t x;
            memcpy(&x, p, 8);
            uint64_t stop = HAS_LESS(x, low) | HAS_LESS(x ^ (ONES * 0x7f), 1);
            if (stop) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                /* The lowest flagged byte is exact (no borrow reaches it):
                 * every byte before it is in the run, so skip them. */
                p += __builtin_ctzll(stop) >> 3;
#endif
                break;
            }
            p += 8;
        }
        const char *stop = end - p > 8 ? p + 8 : end;
        while (p < stop && IS(*p, cls))
            p++;
        if (p < stop || p == end)
            return p;
    }
}

static unsigned char ascii_lower(unsigned char c) {
    return c >= 'A' && c <= 'Z' ? c | 0x20 : c;
}

/*
 * Compare s[0..n) with a lowercase literal, ignoring case, a word at a time.
 * Only for bytes already validated as token, target or field-value: the
 * only bytes that | 0x20 maps onto a literal's '-', '/', ':' or digit
 * without being that byte are control characters, which never get here.
 */
static inline int eq_lower(const char *s, const char *lower, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t a, b;
        memcpy(&a, s + i, 8);
        memcpy(&b, lower + i, 8);
        if ((a | ONES * 0x20) != b)
            return 0;
    }
    for (; i < n; i++)
        if ((s[i] | 0x20) != lower[i])
            return 0;
    return 1;
}

/* Skip token characters, four per bound check: field names are short. */
static const char *scan_token(const char *p, const char *end) {
    while (end - p >= 4 && IS(p[0], C_TCHAR) && IS(p[1], C_TCHAR) && IS(p[2], C_TCHAR) &&
           IS(p[3], C_TCHAR))
        p += 4;
    while (p < end && IS(*p, C_TCHAR))
        p++;
    return p;
}

/*
 * Consume the line end at *pp (which must be < end): CRLF or bare LF.
 * A CR as the last byte may still become CRLF, so that is incomplete.
 */
static int eat_eol(const char **pp, const char *end, const char *what, const char **why) {
    const char *p = *pp;
    if (*p == '\r') {
        if (++p == end)
            return HTTP_INCOMPLETE;
        if (*p != '\n')
            FAIL(HTTP_ERR_BAD, "bare CR");
    } else if (*p != '\n') {
        FAIL(HTTP_ERR_BAD, what);
    }
    *pp = p + 1;
    return 0;
}

/*
 * "HTTP/d.d" at *pp. Each byte is checked as it becomes available so that
 * garbage fails at once, while a valid prefix is merely incomplete. Only
 * 1.0 and 1.1 are served; other well-formed versions get 505.
 */
static int parse_version(const char **pp, const char *end, int *minor, const char **why) {
    const char *p = *pp;
    size_t avail = (size_t)(end - p);
    if (avail < 8 || memcmp(p, "HTTP/1.1", 8) != 0) { /* fast path for the usual case */
        for (size_t i = 0; i < 8; i++) {
            if (i == avail)
                return HTTP_INCOMPLETE;
            int ok = i < 5 ? p[i] == "HTTP/"[i] : i == 6 ? p[i] == '.' : IS_DIGIT(p[i]);
            if (!ok)
                FAIL(HTTP_ERR_BAD, "malformed HTTP version");
        }
        if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
            FAIL(HTTP_ERR_VERSION, "unsupported HTTP version");
    }
    *minor = p[7] - '0';
    *pp = p + 8;
    return 0;
}

/* Framing facts gathered from the fields, judged once the head is complete. */
struct framing {
    int request; /* parsing a request, not a response */
    int64_t content_length;
    int te_seen, te_chunked, te_last_chunked, te_other;
    int conn_close, conn_keep_alive, conn_upgrade;
    int expect_continue;
    int host_count;
    const char *host;
    size_t host_len;
};

/* Skip OWS in [p, e). */
static const char *skip_ows(const char *p, const char *e) {
    while (p < e && IS_OWS(*p))
        p++;
    return p;
}

/*
 * Content-Length = 1*DIGIT, or a list of identical ones (RFC 9110 8.6).
 * No sign, no inner space, no empty element; int64 overflow is an error.
 */
static int note_content_length(struct framing *f, const char *p, const char *e, const char **why) {
    for (;;) {
        if (p == e || !IS_DIGIT(*p))
            FAIL(HTTP_ERR_BAD, "invalid Content-Length");
        int64_t v = 0;
        for (; p < e && IS_DIGIT(*p); p++) {
            int digit = *p - '0';
            if (v > (INT64_MAX - digit) / 10)
                FAIL(HTTP_ERR_BAD, "Content-Length overflow");
            v = v * 10 + digit;
        }
        if (f->content_length >= 0 && f->content_length != v)
            FAIL(HTTP_ERR_BAD, "differing Content-Length values");
        f->content_length = v;
        p = skip_ows(p, e);
        if (p == e)
            return 0;
        if (*p != ',')
            FAIL(HTTP_ERR_BAD, "invalid Content-Length");
        p = skip_ows(p + 1, e);
    }
}

/*
 * Transfer-Encoding is a list of codings, possibly across several fields.
 * Only the order of chunked and "anything else" matters: the verdict is
 * given once all fields are read (see judge_framing).
 */
static int note_transfer_encoding(struct framing *f, const char *p, const char *e,
                                  const char **why) {
    f->te_seen = 1;
    for (;;) {
        const char *tok = p;
        p = scan_token(p, e);
        if (p == tok)
            FAIL(HTTP_ERR_BAD, "invalid Transfer-Encoding");
        int chunked = p - tok == 7 && eq_lower(tok, "chunked", 7);
        p = skip_ows(p, e);
        if (p < e && *p == ';') {
            /* chunked takes no parameters; others are refused anyway. */
            if (chunked)
                FAIL(HTTP_ERR_BAD, "parameters on chunked");
            const char *comma = memchr(p, ',', (size_t)(e - p));
            p = comma ? comma : e;
        }
        if (chunked && f->te_chunked)
            FAIL(HTTP_ERR_BAD, "chunked applied more than once");
        f->te_chunked |= chunked;
        f->te_other |= !chunked;
        f->te_last_chunked = chunked;
        if (p == e)
            return 0;
        if (*p != ',')
            FAIL(HTTP_ERR_BAD, "invalid Transfer-Encoding");
        p = skip_ows(p + 1, e);
    }
}

/* Connection options: only close and keep-alive matter here; others pass. */
static void note_connection(struct framing *f, const char *p, const char *e) {
    while (p < e) {
        const char *comma = memchr(p, ',', (size_t)(e - p));
        const char *te = comma ? comma : e;
        const char *s = skip_ows(p, te);
        while (te > s && IS_OWS(te[-1]))
            te--;
        size_t n = (size_t)(te - s);
        if (n == 5 && eq_lower(s, "close", 5))
            f->conn_close = 1;
        else if (n == 10 && eq_lower(s, "keep-alive", 10))
            f->conn_keep_alive = 1;
        else if (n == 7 && eq_lower(s, "upgrade", 7))
            f->conn_upgrade = 1;
        p = comma ? comma + 1 : e;
    }
}

/* Record the fields that decide framing; dispatch on length keeps this cheap. */
static int note_field(struct framing *f, const struct http_header *h, const char **why) {
    const char *v = h->value, *e = h->value + h->value_len;
    switch (h->name_len) {
    case 4: /* Host matters to requests only */
        if (!f->request || !eq_lower(h->name, "host", 4))
            break;
        if (++f->host_count > 1)
            FAIL(HTTP_ERR_BAD, "more than one Host");
        const char *p = v;
        while (e - p >= 4 && (IS(p[0], C_HOST) & IS(p[1], C_HOST) & IS(p[2], C_HOST) &
                              IS(p[3], C_HOST)))
            p += 4;
        for (; p < e; p++)
            if (!IS(*p, C_HOST))
                FAIL(HTTP_ERR_BAD, "invalid character in Host");
        f->host = v;
        f->host_len = h->value_len;
        break;
    case 6:
        if (eq_lower(h->name, "expect", 6) && h->value_len == 12 && eq_lower(v, "100-continue", 12))
            f->expect_continue = 1;
        break;
    case 10:
        if (eq_lower(h->name, "connection", 10))
            note_connection(f, v, e);
        break;
    case 14:
        if (eq_lower(h->name, "content-length", 14))
            return note_content_length(f, v, e, why);
        break;
    case 17:
        if (eq_lower(h->name, "transfer-encoding", 17))
            return note_transfer_encoding(f, v, e, why);
        break;
    }
    return 0;
}

/*
 * Field lines up to and including the empty line that ends the head.
 * On success *pp points just past that empty line.
 */
static int parse_fields(const char **pp, const char *end, struct http_header *hdrs,
                        size_t max_headers, size_t *nheaders, struct framing *f, const char **why) {
    const char *p = *pp;
    size_t n = 0;
    int rc;
    for (;;) {
        if (p == end)
            return HTTP_INCOMPLETE;
        if (*p == '\r' || *p == '\n') {
            if ((rc = eat_eol(&p, end, "expected a line end", why)) != 0)
                return rc;
            break;
        }
        /* A line starting with whitespace is obs-fold (or, first, a hidden field). */
        if (IS_OWS(*p))
            FAIL(HTTP_ERR_BAD, "obs-fold or whitespace before field line");
        if (n == max_headers)
            FAIL(HTTP_ERR_HEADER_COUNT, "too many header fields");

        struct http_header *h = &hdrs[n];
        h->name = p;
        p = scan_token(p, end);
        if (p == end)
            return HTTP_INCOMPLETE;
        if (*p != ':') {
            if (IS_OWS(*p))
                FAIL(HTTP_ERR_BAD, "whitespace before colon");
            FAIL(HTTP_ERR_BAD, "invalid character in field name");
        }
        if (p == h->name)
            FAIL(HTTP_ERR_BAD, "empty field name");
        h->name_len = (size_t)(p - h->name);

        p = skip_ows(p + 1, end);
        h->value = p;
        p = scan_run(p, end, 0x20, C_VALUE);
        if (p == end)
            return HTTP_INCOMPLETE;
        const char *vend = p;
        if (*p == '\r' && p + 1 < end && p[1] != '\n')
            FAIL(HTTP_ERR_BAD, "bare CR in field value");
        if ((rc = eat_eol(&p, end, "control character in field value", why)) != 0)
            return rc;
        while (vend > h->value && IS_OWS(vend[-1]))
            vend--;
        h->value_len = (size_t)(vend - h->value);
        n++;
        if ((rc = note_field(f, h, why)) != 0)
            return rc;
    }
    *nheaders = n;
    *pp = p;
    return 0;
}

/* Content-Length and Transfer-Encoding rules shared by requests and responses. */
static int judge_framing(const struct framing *f, int minor, const char **why) {
    if (!f->te_seen)
        return 0;
    if (f->content_length >= 0)
        FAIL(HTTP_ERR_BAD, "both Content-Length and Transfer-Encoding");
    if (minor == 0)
        FAIL(HTTP_ERR_BAD, "Transfer-Encoding in HTTP/1.0");
    if (f->te_chunked && !f->te_last_chunked)
        FAIL(HTTP_ERR_BAD, "chunked is not the final transfer coding");
    if (f->te_other)
        FAIL(HTTP_ERR_TE, "unsupported transfer coding");
    return 0;
}

static void framing_init(struct framing *f, int request) {
    memset(f, 0, sizeof *f);
    f->request = request;
    f->content_length = -1;
}

/* By length, then compares of a constant size (inlined, no memcmp call). */
enum http_method http_method_lookup(const char *m, size_t n) {
#define IS_M(lit) (memcmp(m, lit, sizeof(lit) - 1) == 0)
    switch (n) {
    case 3:
        return IS_M("GET") ? HTTP_M_GET : IS_M("PUT") ? HTTP_M_PUT : HTTP_M_OTHER;
    case 4:
        return IS_M("HEAD") ? HTTP_M_HEAD : IS_M("POST") ? HTTP_M_POST : HTTP_M_OTHER;
    case 5:
        return IS_M("PATCH") ? HTTP_M_PATCH : IS_M("TRACE") ? HTTP_M_TRACE : HTTP_M_OTHER;
    case 6:
        return IS_M("DELETE") ? HTTP_M_DELETE : HTTP_M_OTHER;
    case 7:
        return IS_M("OPTIONS") ? HTTP_M_OPTIONS : HTTP_M_OTHER;
    }
    return HTTP_M_OTHER;
#undef IS_M
}

/*
 * Set path and query from the target: origin-form "/p?q", asterisk-form
 * "*" (OPTIONS only) or absolute-form "http://authority/p?q".
 */
static int split_target(struct http_request *req, const char **why) {
    const char *t = req->target, *e = t + req->target_len, *path = t;
    if (*t == '*') { /* then the path is "*" */
        if (req->target_len != 1 || req->method != HTTP_M_OPTIONS)
            FAIL(HTTP_ERR_BAD, "asterisk-form only with OPTIONS");
    } else if (*t != '/') {
        size_t skip = 0;
        if (req->target_len >= 7 && eq_lower(t, "http://", 7))
            skip = 7;
        else if (req->target_len >= 8 && eq_lower(t, "https://", 8))
            skip = 8;
        else
            FAIL(HTTP_ERR_BAD, "invalid request-target");
        const char *auth = t + skip;
        path = auth;
        while (path < e && *path != '/' && *path != '?')
            path++;
        if (path == auth)
            FAIL(HTTP_ERR_BAD, "empty authority in request-target");
        if (memchr(auth, '@', (size_t)(path - auth)))
            FAIL(HTTP_ERR_BAD, "userinfo in request-target");
    }
    const char *q = memchr(path, '?', (size_t)(e - path));
    const char *pend = q ? q : e;
    req->path = path;
    req->path_len = (size_t)(pend - path);
    if (req->path_len == 0) { /* "http://host" or "http://host?q": the path is "/" */
        req->path = "/";
        req->path_len = 1;
    }
    req->query = q ? q + 1 : NULL;
    req->query_len = q ? (size_t)(e - q - 1) : 0;
    return 0;
}

/* The request parser proper, over a buffer already cut to max_header_bytes. */
static int parse_request(const char *buf, const char *end, const struct http_limits *lim,
                         struct http_request *req, const char **why) {
    const char *p = buf;
    int rc;

    /* RFC 9112 2.2: tolerate a few empty lines (CRLF after a previous body). */
    for (int i = 0;; i++) {
        if (p == end)
            return HTTP_INCOMPLETE;
        if (*p != '\r' && *p != '\n')
            break;
        if (i == MAX_LEADING_EOLS)
            FAIL(HTTP_ERR_BAD, "too many empty lines before request line");
        if ((rc = eat_eol(&p, end, "expected a line end", why)) != 0)
            return rc;
    }

    /* method SP: rejected as soon as the token ends, before reading on. */
    const char *m = p;
    p = scan_token(p, end);
    if (p == end)
        return HTTP_INCOMPLETE;
    if (*p != ' ' || p == m)
        FAIL(HTTP_ERR_BAD, "invalid method");
    req->method_str = m;
    req->method_len = (size_t)(p - m);
    req->method = http_method_lookup(m, req->method_len);
    if (req->method == HTTP_M_OTHER)
        FAIL(HTTP_ERR_METHOD, "method not implemented");

    /* request-target SP: bounded by max_uri even before the SP arrives. */
    const char *t = ++p;
    const char *tlim = (size_t)(end - t) > lim->max_uri ? t + lim->max_uri : end;
    p = scan_run(p, tlim, 0x21, C_TARGET);
    if (p == end)
        return HTTP_INCOMPLETE;
    if (*p != ' ') {
        if (IS(*p, C_TARGET))
            FAIL(HTTP_ERR_URI_SIZE, "request-target longer than max_uri");
        FAIL(HTTP_ERR_BAD, *p == '\r' || *p == '\n' ? "missing HTTP version"
                                                    : "invalid character in request-target");
    }
    if (p == t)
        FAIL(HTTP_ERR_BAD, "empty request-target");
    req->target = t;
    req->target_len = (size_t)(p - t);
    if ((rc = split_target(req, why)) != 0)
        return rc;

    /* HTTP-version line-end */
    p++;
    if ((rc = parse_version(&p, end, &req->minor_version, why)) != 0)
        return rc;
    if (p == end)
        return HTTP_INCOMPLETE;
    if ((rc = eat_eol(&p, end, "junk after HTTP version", why)) != 0)
        return rc;

    struct framing f;
    framing_init(&f, 1);
    size_t max_headers = lim->max_headers < HTTP_MAX_HEADERS ? lim->max_headers : HTTP_MAX_HEADERS;
    if ((rc = parse_fields(&p, end, req->headers, max_headers, &req->nheaders, &f, why)) != 0)
        return rc;

    if ((rc = judge_framing(&f, req->minor_version, why)) != 0)
        return rc;
    if (req->minor_version == 1 && f.host_count == 0)
        FAIL(HTTP_ERR_BAD, "missing Host");
    if (f.content_length >= 0 && (uint64_t)f.content_length > lim->max_body)
        FAIL(HTTP_ERR_BODY_SIZE, "Content-Length larger than max_body");

    req->content_length = f.content_length;
    req->chunked = f.te_seen; /* judge_framing accepted only a lone "chunked" */
    req->keep_alive = !f.conn_close && (req->minor_version == 1 || f.conn_keep_alive);
    req->expect_continue = req->minor_version == 1 && f.expect_continue;
    req->upgrade = f.conn_upgrade;
    req->host = f.host;
    req->host_len = f.host_len;
    return (int)(p - buf);
}

/*
 * Heads are parsed within the first head_limit() bytes only; once that many
 * bytes are buffered without a complete head, waiting cannot help (a slow
 * client must not grow the buffer forever). INT_MAX keeps lengths in int.
 */
static size_t head_limit(const struct http_limits *lim) {
    return lim->max_header_bytes < INT_MAX ? lim->max_header_bytes : INT_MAX;
}

int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
                       struct http_request *req, const char **why) {
    const char *ignored;
    if (!why)
        why = &ignored;
    /* Only scalars are reset: the 4 KiB header array is written as filled. */
    req->method = HTTP_M_OTHER;
    req->method_str = req->target = req->path = req->query = req->host = NULL;
    req->method_len = req->target_len = req->path_len = req->query_len = req->host_len = 0;
    req->minor_version = 0;
    req->nheaders = 0;
    req->content_length = -1;
    req->chunked = req->keep_alive = req->expect_continue = req->upgrade = 0;

    size_t max = head_limit(lim);
    int rc = parse_request(buf, buf + (len < max ? len : max), lim, req, why);
    if (rc == HTTP_INCOMPLETE && len >= max)
        FAIL(HTTP_ERR_HEADER_SIZE, "request head larger than max_header_bytes");
    return rc;
}

/* The status line and fields, over a buffer already cut to max_header_bytes. */
static int parse_response(const char *buf, const char *end, const struct http_limits *lim,
                          struct http_response *res, const char **why) {
    const char *p = buf;
    int rc;
    if ((rc = parse_version(&p, end, &res->minor_version, why)) != 0)
        return rc;

    /* SP 3DIGIT, checked byte by byte so garbage fails before it completes. */
    for (int i = 0; i < 4; i++) {
        if (p + i == end)
            return HTTP_INCOMPLETE;
        if (i == 0 ? p[i] != ' ' : !IS_DIGIT(p[i]))
            FAIL(HTTP_ERR_BAD, "malformed status line");
    }
    res->status = (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
    if (res->status < 100 || res->status > 599)
        FAIL(HTTP_ERR_BAD, "status code out of range");
    p += 4;

    /* [SP reason-phrase] line-end: a missing SP before an empty reason is tolerated. */
    if (p == end)
        return HTTP_INCOMPLETE;
    if (*p == ' ')
        p++;
    else if (*p != '\r' && *p != '\n')
        FAIL(HTTP_ERR_BAD, "malformed status line");
    res->reason = p;
    while (p < end && IS(*p, C_VALUE))
        p++;
    if (p == end)
        return HTTP_INCOMPLETE;
    res->reason_len = (size_t)(p - res->reason);
    if ((rc = eat_eol(&p, end, "invalid character in reason phrase", why)) != 0)
        return rc;

    struct framing f;
    framing_init(&f, 0);
    size_t max_headers = lim->max_headers < HTTP_MAX_HEADERS ? lim->max_headers : HTTP_MAX_HEADERS;
    if ((rc = parse_fields(&p, end, res->headers, max_headers, &res->nheaders, &f, why)) != 0)
        return rc;
    if ((rc = judge_framing(&f, res->minor_version, why)) != 0)
        return rc;

    res->content_length = f.content_length;
    res->chunked = f.te_seen;
    res->keep_alive = !f.conn_close && (res->minor_version == 1 || f.conn_keep_alive);
    return (int)(p - buf);
}

int http_parse_response(const char *buf, size_t len, const struct http_limits *lim,
                        struct http_response *res, const char **why) {
    const char *ignored;
    if (!why)
        why = &ignored;
    res->minor_version = res->status = 0;
    res->reason = NULL;
    res->reason_len = res->nheaders = 0;
    res->content_length = -1;
    res->chunked = res->keep_alive = 0;

    size_t max = head_limit(lim);
    int rc = parse_response(buf, buf + (len < max ? len : max), lim, res, why);
    if (rc == HTTP_INCOMPLETE && len >= max)
        FAIL(HTTP_ERR_HEADER_SIZE, "response head larger than max_header_bytes");
    return rc;
}

/* ---- chunked decoding ------------------------------------------------ */

enum {
    CH_SIZE_FIRST,    /* at the first hex digit of a chunk size */
    CH_SIZE,          /* in the hex digits */
    CH_SIZE_WS,       /* BWS after the size: only ";" may follow (RFC 9112 7.1.1) */
    CH_EXT,           /* skipping chunk extensions up to the line end */
    CH_DATA,          /* in chunk data; remaining counts what is left */
    CH_DATA_END,      /* after chunk data: a line end must follow */
    CH_TRAILER_START, /* start of a trailer line or of the final empty line */
    CH_TRAILER,       /* in a trailer line */
    CH_DONE,
    CH_ERROR,            /* sticky: the stream cannot be resynchronised */
    CH_AWAIT_LF = 0x100, /* flag: a CR was read, LF must follow, then the state below */
};

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20; /* only 'A'..'F' fold onto 'a'..'f' */
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

void http_chunked_init(struct http_chunked *d) {
    d->state = CH_SIZE_FIRST;
    d->remaining = 0;
    d->total = 0;
    d->line_bytes = 0;
}

/* c (CR or LF) ends a framing line; the next one is parsed in state next. */
static void chunked_line_end(struct http_chunked *d, unsigned char c, int next) {
    d->state = c == '\n' ? next : next | CH_AWAIT_LF;
    d->line_bytes = 0;
}

/*
 * One byte of framing (anything but chunk data). A byte-at-a-time state
 * machine makes the result independent of how the input was split. In the
 * trailer section, remaining (0 after the last chunk) counts trailer lines.
 */
static int chunked_step(struct http_chunked *d, unsigned char c, uint64_t max_body,
                        const char **why) {
    int eol = c == '\r' || c == '\n', h;
    if (d->state & CH_AWAIT_LF) {
        if (c != '\n')
            FAIL(HTTP_ERR_BAD, "bare CR in chunked framing");
        d->state &= ~CH_AWAIT_LF;
        return 0;
    }
    switch (d->state) {
    case CH_SIZE_FIRST:
    case CH_SIZE:
        if ((h = hex_value(c)) >= 0) {
            if (++d->line_bytes > MAX_CHUNK_DIGITS)
                FAIL(HTTP_ERR_BAD, "chunk size overflow");
            d->remaining = d->remaining << 4 | (uint64_t)h;
            d->state = CH_SIZE;
            return 0;
        }
        if (d->state == CH_SIZE_FIRST)
            FAIL(HTTP_ERR_BAD, "missing or invalid chunk size");
        /* The size is known: refuse an oversized body before reading it. */
        if (d->total > max_body || d->remaining > max_body - d->total)
            FAIL(HTTP_ERR_BODY_SIZE, "chunked body larger than max_body");
        if (eol) {
            chunked_line_end(d, c, d->remaining ? CH_DATA : CH_TRAILER_START);
        } else if (c == ';' || IS_OWS(c)) {
            d->state = c == ';' ? CH_EXT : CH_SIZE_WS;
            d->line_bytes++;
        } else {
            FAIL(HTTP_ERR_BAD, "invalid character in chunk size");
        }
        return 0;
    case CH_SIZE_WS:
    case CH_EXT: /* line_bytes counts the size line without its end */
        if (eol && d->state == CH_EXT) {
            chunked_line_end(d, c, d->remaining ? CH_DATA : CH_TRAILER_START);
            return 0;
        }
        if (d->state == CH_SIZE_WS && c != ';' && !IS_OWS(c))
            FAIL(HTTP_ERR_BAD, "whitespace after chunk size");
        if (!IS(c, C_VALUE))
            FAIL(HTTP_ERR_BAD, "control character in chunk extension");
        if (++d->line_bytes > MAX_CHUNK_LINE)
            FAIL(HTTP_ERR_BAD, "chunk size line too long");
        if (c == ';')
            d->state = CH_EXT;
        return 0;
    case CH_DATA_END:
        if (!eol)
            FAIL(HTTP_ERR_BAD, "missing CRLF after chunk data");
        chunked_line_end(d, c, CH_SIZE_FIRST);
        return 0;
    case CH_TRAILER_START:
        if (eol) {
            chunked_line_end(d, c, CH_DONE);
            return 0;
        }
        if (IS_OWS(c))
            FAIL(HTTP_ERR_BAD, "obs-fold in trailer section");
        if (++d->remaining > MAX_TRAILERS)
            FAIL(HTTP_ERR_BAD, "too many trailer fields");
        if (!IS(c, C_VALUE))
            FAIL(HTTP_ERR_BAD, "control character in trailer field");
        d->state = CH_TRAILER;
        d->line_bytes = 1;
        return 0;
    case CH_TRAILER:
        if (eol)
            chunked_line_end(d, c, CH_TRAILER_START);
        else if (!IS(c, C_VALUE))
            FAIL(HTTP_ERR_BAD, "control character in trailer field");
        else if (++d->line_bytes > MAX_TRAILER_LINE)
            FAIL(HTTP_ERR_BAD, "trailer field line too long");
        return 0;
    }
    FAIL(HTTP_ERR_BAD, "chunked decoder in an invalid state");
}

ssize_t http_chunked_decode(struct http_chunked *d, char *buf, size_t *len, uint64_t max_body,
                            const char **why) {
    const char *ignored;
    if (!why)
        why = &ignored;
    size_t n = *len, src = 0, dst = 0;
    if (d->state == CH_ERROR) {
        *len = 0;
        FAIL(HTTP_ERR_BAD, "chunked decoder already failed");
    }
    while (src < n && d->state != CH_DONE) {
        if (d->state == CH_DATA) {
            /* Data moves in bulk; dst never passes src, so memmove is safe. */
            size_t take = n - src;
            if (take > d->remaining)
                take = (size_t)d->remaining;
            if (dst != src)
                memmove(buf + dst, buf + src, take);
            dst += take;
            src += take;
            d->remaining -= take;
            d->total += take;
            if (d->remaining == 0)
                d->state = CH_DATA_END;
            continue;
        }
        int rc = chunked_step(d, (unsigned char)buf[src++], max_body, why);
        if (rc != 0) {
            d->state = CH_ERROR;
            *len = dst;
            return rc;
        }
    }
    *len = dst;
    if (d->state != CH_DONE)
        return HTTP_INCOMPLETE;
    /* Hand back the start of the next message right after the payload. */
    if (dst != src)
        memmove(buf + dst, buf + src, n - src);
    return (ssize_t)(n - src);
}

/* ---- lookups ------------------------------------------------------------ */

const struct http_header *http_find_header_n(const struct http_header *h, size_t n,
                                             const char *name, size_t len) {
    for (size_t i = 0; i < n; i++) {
        if (h[i].name_len != len)
            continue;
        size_t j = 0;
        while (j < len &&
               ascii_lower((unsigned char)h[i].name[j]) == ascii_lower((unsigned char)name[j]))
            j++;
        if (j == len)
            return &h[i];
    }
    return NULL;
}

/* Indexed by status % 100 within each class: O(1) on the reply path. */
/* clang-format off */
static const char *const reasons_1xx[] = {"Continue", "Switching Protocols"};
static const char *const reasons_2xx[] = {
    "OK", "Created", "Accepted", "Non-Authoritative Information", "No Content",
    "Reset Content", "Partial Content"};
static const char *const reasons_3xx[] = {
    "Multiple Choices", "Moved Permanently", "Found", "See Other", "Not Modified",
    "Use Proxy", [7] = "Temporary Redirect", "Permanent Redirect"};
static const char *const reasons_4xx[] = {
    "Bad Request", "Unauthorized", "Payment Required", "Forbidden", "Not Found",
    "Method Not Allowed", "Not Acceptable", "Proxy Authentication Required", "Request Timeout",
    "Conflict", "Gone", "Length Required", "Precondition Failed", "Content Too Large",
    "URI Too Long", "Unsupported Media Type", "Range Not Satisfiable", "Expectation Failed",
    "I'm a teapot", [21] = "Misdirected Request", "Unprocessable Content",
    [25] = "Too Early", "Upgrade Required", [28] = "Precondition Required", "Too Many Requests",
    [31] = "Request Header Fields Too Large", [51] = "Unavailable For Legal Reasons"};
static const char *const reasons_5xx[] = {
    "Internal Server Error", "Not Implemented", "Bad Gateway", "Service Unavailable",
    "Gateway Timeout", "HTTP Version Not Supported", [7] = "Insufficient Storage",
    [11] = "Network Authentication Required"};
/* clang-format on */

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

const char *http_reason(int status) {
    static const struct {
        const char *const *names;
        size_t n;
    } classes[] = {{reasons_1xx, NELEM(reasons_1xx)},
                   {reasons_2xx, NELEM(reasons_2xx)},
                   {reasons_3xx, NELEM(reasons_3xx)},
                   {reasons_4xx, NELEM(reasons_4xx)},
                   {reasons_5xx, NELEM(reasons_5xx)}};
    if (status < 100 || status > 599)
        return "Unknown";
    int c = status / 100 - 1, i = status % 100;
    const char *name = (size_t)i < classes[c].n ? classes[c].names[i] : NULL;
    return name ? name : "Unknown";
}

int http_err_status(int err) {
    switch (err) {
    case HTTP_ERR_HEADER_SIZE:
    case HTTP_ERR_HEADER_COUNT:
        return 431;
    case HTTP_ERR_URI_SIZE:
        return 414;
    case HTTP_ERR_BODY_SIZE:
        return 413;
    case HTTP_ERR_METHOD:
    case HTTP_ERR_TE:
        return 501;
    case HTTP_ERR_VERSION:
        return 505;
    }
    /* HTTP_ERR_BAD, and anything unexpected (a truncated head at EOF): 400. */
    return 400;
}
