/*
 * probe_cache: conditional requests and caching headers as httpbin
 * answers them (/cache, /cache/{n}, /etag/{etag}), and /uuid.
 */
#include "api/probe_int.h"

#include "core/buf.h"
#include "http/http_parse.h"
#include "http/http_query.h"
#include "net/http_reply.h"
#include "net/server.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

/* A version 4 UUID as text (37 bytes with the NUL); hex without dashes
 * when plain. */
static void uuid4(char *out, int plain) {
    unsigned char u[16];
    if (getrandom(u, sizeof u, GRND_NONBLOCK) != (ssize_t)sizeof u)
        memset(u, 0x42, sizeof u);
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
    size_t w = 0;
    for (int i = 0; i < 16; i++) {
        if (!plain && (i == 4 || i == 6 || i == 8 || i == 10))
            out[w++] = '-';
        w += (size_t)snprintf(out + w, 3, "%02x", u[i]);
    }
    out[w] = '\0';
}

PROBE_HANDLER(probe_uuid) {
    struct probe *p = ctx;
    (void)req, (void)body, (void)body_len;
    char u[40];
    uuid4(u, 0);
    buf_appendf(&p->body, "{\"uuid\": \"%s\"}\n", u);
    return probe_send(p, c, 200, CT_JSON, NULL);
}

static enum handler_result echo_with(struct probe *p, struct conn *c,
                                     const struct http_request *req, const char *extra) {
    if (probe_render_echo(c, req, NULL, 0, 0, &p->body) < 0)
        return probe_oom(p, c);
    return probe_send(p, c, 200, CT_JSON, extra);
}

PROBE_HANDLER(probe_cache) {
    struct probe *p = ctx;
    (void)body, (void)body_len;
    if (probe_header(req, "if-modified-since") || probe_header(req, "if-none-match")) {
        reply(c, 304, NULL, NULL, "", 0);
        return HANDLER_DONE;
    }
    char u[40], extra[160];
    uuid4(u, 1);
    snprintf(extra, sizeof extra, "Last-Modified: %s\r\nETag: %s\r\n", server_date(c->srv), u);
    return echo_with(p, c, req, extra);
}

PROBE_HANDLER(probe_cache_n) {
    struct probe *p = ctx;
    (void)body, (void)body_len;
    int64_t n = http_parse_uint(req->path + 7, req->path_len - 7, UINT32_MAX);
    if (n < 0)
        return reply_fail(c, 400, "max-age must be a whole number of seconds");
    char extra[80];
    snprintf(extra, sizeof extra, "Cache-Control: public, max-age=%lld\r\n", (long long)n);
    return echo_with(p, c, req, extra);
}

/* httpbin's parse_multi_value_header: does the list in h name etag (or *)? */
static int etag_listed(const struct http_header *h, const char *etag, size_t n) {
    const char *s = h->value, *end = h->value + h->value_len;
    while (s <= end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *a = s, *b = comma ? comma : end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (b - a >= 2 && a[0] == 'W' && a[1] == '/')
            a += 2;
        if (a < b && *a == '"')
            a++;
        if (b > a && b[-1] == '"')
            b--;
        if (((size_t)(b - a) == n && memcmp(a, etag, n) == 0) || (b - a == 1 && *a == '*'))
            return 1;
        if (!comma)
            break;
        s = comma + 1;
    }
    return 0;
}

PROBE_HANDLER(probe_etag) {
    struct probe *p = ctx;
    (void)body, (void)body_len;
    const char *etag = req->path + 6;
    size_t n = req->path_len - 6;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)etag[i] < 0x21 || etag[i] == 0x7f)
            return reply_fail(c, 400, "an etag must be visible characters");
    if (n > 200)
        return reply_fail(c, 400, "an etag must be at most 200 characters");
    char extra[224];
    snprintf(extra, sizeof extra, "ETag: %.*s\r\n", (int)n, etag);
    const struct http_header *inm = probe_header(req, "if-none-match");
    const struct http_header *im = probe_header(req, "if-match");
    if (inm && inm->value_len) {
        if (etag_listed(inm, etag, n)) {
            reply(c, 304, NULL, extra, "", 0);
            return HANDLER_DONE;
        }
    } else if (im && im->value_len && !etag_listed(im, etag, n)) {
        reply(c, 412, CT_TEXT, NULL, "", 0);
        return HANDLER_DONE;
    }
    return echo_with(p, c, req, extra);
}
