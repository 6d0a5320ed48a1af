/*
 * router: method + path -> handler. main.c registers the routes (each with
 * the context its handler needs, such as a service); they are searched in
 * the order added. A path that matches with the wrong method answers 405
 * with Allow, an unknown path 404.
 *
 * CORS, as httpbin does it, is the router's: with [probe] cors on, every
 * answer (404s too) carries Access-Control-Allow-Origin (the request's
 * Origin, or *) and Access-Control-Allow-Credentials, and an OPTIONS
 * request to a route is the preflight answer (200, Access-Control-Allow-
 * Methods, -Max-Age, -Headers echoing Access-Control-Request-Headers), not
 * the handler's. Routes registered with ROUTE_NOCORS (the authenticated
 * /queues and /timers) get neither: a browser page must not read them with
 * the user's TLS client certificate.
 */
#ifndef AWAITD_ROUTER_H
#define AWAITD_ROUTER_H

#include "core/buf.h"
#include "net/conn.h"

#include <stddef.h>

struct http_request;

#define ROUTER_MAX_ROUTES 128

/* Methods a route takes: bits of enum http_method. ROUTE_ANY leaves out
 * TRACE: only the httpbin routes that answer it name it. */
#define ROUTE_M(x) (1u << HTTP_M_##x)
#define ROUTE_ANY                                                                                  \
    (ROUTE_M(GET) | ROUTE_M(HEAD) | ROUTE_M(POST) | ROUTE_M(PUT) | ROUTE_M(DELETE) |             \
     ROUTE_M(PATCH) | ROUTE_M(OPTIONS))
/* Or'ed into methods: no CORS headers and no preflight on this route. */
#define ROUTE_NOCORS (1u << 30)
/* Or'ed into a prefix route's methods: it takes the bare prefix too
 * ("/console/" as well as "/console/{file}"). */
#define ROUTE_DIR (1u << 29)

struct route {
    const char *path;  /* exact path, or a prefix when it ends in '/' (but "/" is exact) */
    unsigned methods;  /* bit mask of enum http_method, and ROUTE_NOCORS */
    const char *allow; /* the Allow header for 405 */
    conn_handler_fn handler;
    void *ctx;
    const char *doc;   /* one line for the index page, or NULL (not listed) */
    uint8_t route_class; /* enum metrics_route, from path: the latency histogram's label */
    uint16_t path_len;   /* strlen(path), once: every request tries the routes in turn */
    uint8_t next;        /* 1 + the next route whose path has the same second byte, or 0 */
};

struct router {
    struct route routes[ROUTER_MAX_ROUTES];
    size_t n;
    /* 1 + the first route whose path's second byte (the one after '/') is
     * the index, then on through route.next, in the order added; 0: none.
     * A path of two or more bytes can only match those. */
    uint8_t first[256];
    struct buf cors; /* the CORS lines of the request being dispatched */
};

/* Add a route (searched in the order added). 0, or -1 (table full). */
int router_add(struct router *r, const char *path, unsigned methods, const char *allow,
               conn_handler_fn handler, void *ctx);

/* The same with the index page's line for it. */
int router_add_doc(struct router *r, const char *path, unsigned methods, const char *allow,
                   conn_handler_fn handler, void *ctx, const char *doc);

/* Set the index line of the route added with this path; -1 if none. */
int router_set_doc(struct router *r, const char *path, const char *doc);

/* The server's request handler; ctx is the struct router. */
enum handler_result router_dispatch(void *ctx, struct conn *c, const struct http_request *req,
                                    const char *body, size_t body_len);

#endif
