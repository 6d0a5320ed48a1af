#include "api/console.h"

#include "core/config.h"
#include "http/http_parse.h"
#include "net/http_reply.h"
#include "net/server.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Scripts and styles only from the console's own files (no inline script,
 * no eval), data only from this origin; nothing may frame the console. */
#define CONSOLE_CSP                                                                                \
    "Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self'; "          \
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "              \
    "form-action 'self'; frame-ancestors 'none'\r\n"                                              \
    "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"                          \
    "X-Frame-Options: DENY\r\n"

const char *console_ctype(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot)
        return CT_OCTETS;
    if (strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (strcmp(dot, ".js") == 0)
        return "text/javascript; charset=utf-8";
    if (strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    if (strcmp(dot, ".svg") == 0)
        return "image/svg+xml";
    return CT_OCTETS;
}

/* A strong ETag of the bytes (64-bit FNV-1a): the same build serves the
 * same tags; a changed file gets a new one. */
static uint64_t fnv1a(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* 1 when If-None-Match names etag (or is "*"). */
static int etag_matches(const struct http_request *req, const char *etag) {
    const struct http_header *h = http_find_header(req->headers, req->nheaders, "if-none-match");
    if (!h)
        return 0;
    size_t el = strlen(etag);
    const char *v = h->value, *end = h->value + h->value_len;
    while (v < end) {
        while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
            v++;
        const char *s = v;
        while (v < end && *v != ',')
            v++;
        const char *e = v;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e - s >= 2 && s[0] == 'W' && s[1] == '/') /* weak comparison, RFC 9110 13.1.2 */
            s += 2;
        if ((size_t)(e - s) == el && memcmp(s, etag, el) == 0)
            return 1;
        if (e - s == 1 && *s == '*')
            return 1;
    }
    return 0;
}

enum handler_result console_serve(void *ctx, struct conn *c, const struct http_request *req,
                                  const char *body, size_t body_len) {
    (void)ctx;
    (void)body;
    (void)body_len;
    int plen = req->path_len > 200 ? 200 : (int)req->path_len;
    if (!c->srv->cfg->console_enabled)
        return reply_fail(c, 404, "no such endpoint: %.*s (the console is off: [console] enabled)",
                          plen, req->path);
    /* "/console" and "/console/" are the page; "/console/{file}" its files. */
    const char *name = "index.html";
    size_t nlen = strlen(name);
    if (req->path_len > 9) {
        name = req->path + 9;
        nlen = req->path_len - 9;
    }
    const struct console_asset *a = NULL;
    for (size_t i = 0; i < console_nassets && !a; i++)
        if (strlen(console_assets[i].name) == nlen && memcmp(console_assets[i].name, name, nlen) == 0)
            a = &console_assets[i];
    if (!a)
        return reply_fail(c, 404, "no such console file: %.*s", plen, req->path);
    char etag[24], extra[600];
    snprintf(etag, sizeof etag, "\"%016" PRIx64 "\"", fnv1a(a->data, a->len));
    snprintf(extra, sizeof extra, "ETag: %s\r\nCache-Control: no-cache\r\n" CONSOLE_CSP, etag);
    if (etag_matches(req, etag)) {
        reply(c, 304, NULL, extra, "", 0);
        return HANDLER_DONE;
    }
    reply(c, 200, console_ctype(a->name), extra, a->data, a->len);
    return HANDLER_DONE;
}
