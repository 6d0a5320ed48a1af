#include "api/router.h"

#include "core/config.h"
#include "http/http_parse.h"
#include "net/http_reply.h"
#include "net/metrics.h"
#include "net/server.h"

#include <stdio.h>
#include <string.h>

_Static_assert(ROUTER_MAX_ROUTES < 256, "route.next and router.first hold 1 + an index in a byte");

int router_add_doc(struct router *r, const char *path, unsigned methods, const char *allow,
                   conn_handler_fn handler, void *ctx, const char *doc) {
    if (r->n == ROUTER_MAX_ROUTES)
        return -1;
    size_t n = strlen(path);
    if (n > UINT16_MAX)
        return -1;
    size_t i = r->n++;
    r->routes[i] = (struct route){path, methods, allow, handler, ctx, doc,
                                  (uint8_t)metrics_route_of_path(path), (uint16_t)n, 0};
    if (n >= 2) { /* "/" (exact) matches only the one-byte path */
        uint8_t *link = &r->first[(unsigned char)path[1]];
        while (*link)
            link = &r->routes[*link - 1].next;
        *link = (uint8_t)(i + 1);
    }
    return 0;
}

int router_add(struct router *r, const char *path, unsigned methods, const char *allow,
               conn_handler_fn handler, void *ctx) {
    return router_add_doc(r, path, methods, allow, handler, ctx, NULL);
}

int router_set_doc(struct router *r, const char *path, const char *doc) {
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->routes[i].path, path) == 0) {
            r->routes[i].doc = doc;
            return 0;
        }
    return -1;
}

static int route_matches(const struct route *r, const char *path, size_t len) {
    size_t n = r->path_len;
    /* Most routes differ in their first letter: no memcmp call for them
     * (the queue routes come after some 50 of the probe's). */
    if (len < n || (n > 1 && r->path[1] != path[1]))
        return 0;
    if (n > 1 && r->path[n - 1] == '/')
        return (len > n || (len == n && (r->methods & ROUTE_DIR))) &&
               memcmp(path, r->path, n) == 0;
    return len == n && memcmp(path, r->path, n) == 0;
}

static const char cors_any[] = "Access-Control-Allow-Origin: *\r\n"
                               "Access-Control-Allow-Credentials: true\r\n";

/* httpbin's after_request: the lines every answer gets, and the preflight's;
 * their length in *len (the head copies them without a strlen). */
static const char *cors_lines(struct router *rt, const struct http_request *req, int preflight,
                              size_t *len) {
    const struct http_header *origin = http_find_header(req->headers, req->nheaders, "origin");
    *len = sizeof cors_any - 1;
    if (!origin && !preflight)
        return cors_any; /* the /get hot path: no formatting */
    struct buf *b = &rt->cors;
    buf_reset(b);
    int r = 0;
    if (origin) {
        r |= buf_appends(b, "Access-Control-Allow-Origin: ");
        r |= buf_append(b, origin->value, origin->value_len);
        r |= buf_appends(b, "\r\nAccess-Control-Allow-Credentials: true\r\n");
    } else {
        r |= buf_appends(b, cors_any);
    }
    if (preflight) {
        const struct http_header *h =
            http_find_header(req->headers, req->nheaders, "access-control-request-headers");
        r |= buf_appends(b, "Access-Control-Allow-Methods: GET, POST, PUT, DELETE, PATCH, "
                            "OPTIONS\r\nAccess-Control-Max-Age: 3600\r\n");
        if (h) {
            r |= buf_appends(b, "Access-Control-Allow-Headers: ");
            r |= buf_append(b, h->value, h->value_len);
            r |= buf_append(b, "\r\n", 2);
        }
    }
    r |= buf_append(b, "", 1); /* NUL: the lines are a C string */
    if (r)
        return cors_any;
    *len = b->len - 1;
    return buf_start(b);
}

/* "Allow: GET, HEAD, OPTIONS" for the preflight, from the route's methods. */
static void allow_line(const struct route *r, char *out, size_t len) {
    static const char *const names[] = {"",      "GET",   "HEAD",    "POST", "PUT",
                                        "DELETE", "PATCH", "OPTIONS", "TRACE"};
    size_t n = (size_t)snprintf(out, len, "Allow: ");
    for (unsigned m = HTTP_M_GET; m <= HTTP_M_TRACE && n < len; m++)
        if (m != HTTP_M_OPTIONS && (r->methods & (1u << m)))
            n += (size_t)snprintf(out + n, len - n, "%s, ", names[m]);
    if (n < len)
        snprintf(out + n, len - n, "OPTIONS\r\n");
}

static enum handler_result route(struct conn *c, const struct http_request *req,
                                 const struct route *r, int cors, const char *body,
                                 size_t body_len) {
    if (!r) {
        reply_error(c, 404, "no such endpoint: %.*s",
                    (int)(req->path_len > 200 ? 200 : req->path_len), req->path);
        return HANDLER_DONE;
    }
    if (cors && req->method == HTTP_M_OPTIONS) {
        char allow[96];
        allow_line(r, allow, sizeof allow);
        reply(c, 200, "text/html; charset=utf-8", allow, "", 0);
        return HANDLER_DONE;
    }
    if (!(r->methods & (1u << req->method))) {
        char allow[96];
        snprintf(allow, sizeof allow, "Allow: %s\r\n", r->allow);
        reply_error_hdr(c, 405, allow, "method %.*s not allowed on %.*s", (int)req->method_len,
                        req->method_str, (int)(req->path_len > 200 ? 200 : req->path_len),
                        req->path);
        return HANDLER_DONE;
    }
    return r->handler(r->ctx, c, req, body, body_len);
}

enum handler_result router_dispatch(void *ctx, struct conn *c, const struct http_request *req,
                                    const char *body, size_t body_len) {
    struct router *rt = ctx;
    const struct route *r = NULL;
    if (req->path_len >= 2) {
        /* Only the routes with the same second byte, in the order added. */
        for (unsigned i = rt->first[(unsigned char)req->path[1]]; i && !r;
             i = rt->routes[i - 1].next)
            if (route_matches(&rt->routes[i - 1], req->path, req->path_len))
                r = &rt->routes[i - 1];
    } else {
        for (size_t i = 0; i < rt->n && !r; i++)
            if (route_matches(&rt->routes[i], req->path, req->path_len))
                r = &rt->routes[i];
    }
    c->route_class = r ? r->route_class : METRICS_ROUTE_OTHER;
    struct server *s = c->srv;
    int cors = s->cfg->probe_cors && !(r && (r->methods & ROUTE_NOCORS));
    if (!cors)
        return route(c, req, r, 0, body, body_len);
    s->reply_extra = cors_lines(rt, req, r && req->method == HTTP_M_OPTIONS, &s->reply_extra_len);
    s->reply_extra_conn = c;
    enum handler_result res = route(c, req, r, 1, body, body_len);
    s->reply_extra_conn = NULL;
    s->reply_extra = NULL;
    return res;
}
