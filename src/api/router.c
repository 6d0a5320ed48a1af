#include "api/router.h"

#include "http/http_parse.h"
#include "net/http_reply.h"

#include <stdio.h>
#include <string.h>

int router_add(struct router *r, const char *path, unsigned methods, const char *allow,
               conn_handler_fn handler, void *ctx) {
    if (r->n == ROUTER_MAX_ROUTES)
        return -1;
    r->routes[r->n++] = (struct route){path, methods, allow, handler, ctx};
    return 0;
}

static int route_matches(const struct route *r, const char *path, size_t len) {
    size_t n = strlen(r->path);
    if (r->path[n - 1] == '/')
        return len > n && memcmp(path, r->path, n) == 0;
    return len == n && memcmp(path, r->path, n) == 0;
}

enum handler_result router_dispatch(void *ctx, struct conn *c, const struct http_request *req,
                                    const char *body, size_t body_len) {
    const struct router *rt = ctx;
    for (size_t i = 0; i < rt->n; i++) {
        const struct route *r = &rt->routes[i];
        if (!route_matches(r, req->path, req->path_len))
            continue;
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
    reply_error(c, 404, "no such endpoint: %.*s", (int)(req->path_len > 200 ? 200 : req->path_len),
                req->path);
    return HANDLER_DONE;
}
