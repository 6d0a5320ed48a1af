/*
 * router: method + path -> handler. main.c registers the routes (each with
 * the context its handler needs, such as a service); they are searched in
 * the order added. A path that matches with the wrong method answers 405
 * with Allow, an unknown path 404.
 */
#ifndef AWAITD_ROUTER_H
#define AWAITD_ROUTER_H

#include "net/conn.h"

#include <stddef.h>

struct http_request;

#define ROUTER_MAX_ROUTES 32

/* Methods a route takes: bits of enum http_method. */
#define ROUTE_M(x) (1u << HTTP_M_##x)
#define ROUTE_ANY                                                                                  \
    (ROUTE_M(GET) | ROUTE_M(HEAD) | ROUTE_M(POST) | ROUTE_M(PUT) | ROUTE_M(DELETE) |             \
     ROUTE_M(PATCH) | ROUTE_M(OPTIONS))

struct route {
    const char *path;  /* exact path, or a prefix when it ends in '/' */
    unsigned methods;  /* bit mask of enum http_method */
    const char *allow; /* the Allow header for 405 */
    conn_handler_fn handler;
    void *ctx;
};

struct router {
    struct route routes[ROUTER_MAX_ROUTES];
    size_t n;
};

/* Add a route (searched in the order added). 0, or -1 (table full). */
int router_add(struct router *r, const char *path, unsigned methods, const char *allow,
               conn_handler_fn handler, void *ctx);

/* The server's request handler; ctx is the struct router. */
enum handler_result router_dispatch(void *ctx, struct conn *c, const struct http_request *req,
                                    const char *body, size_t body_len);

#endif
