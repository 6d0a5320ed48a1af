#include "api/router.h"

#include "http/http_parse.h"
#include "net/http_reply.h"
#include "api/api_queue.h"
#include "api/api_timer.h"
#include "api/probe.h"

#include <stdio.h>
#include <string.h>

#define M(x) (1u << HTTP_M_##x)
#define M_ANY (M(GET) | M(HEAD) | M(POST) | M(PUT) | M(DELETE) | M(PATCH) | M(OPTIONS))

struct route {
    const char *path; /* exact path, or a prefix when it ends in '/' */
    unsigned methods; /* bit mask of enum http_method */
    const char *allow; /* the Allow header for 405 */
    handler_fn handler;
};

/* Searched in order; the first path match decides (405 if its method is wrong). */
static const struct route routes[] = {
    {"/get", M(GET) | M(HEAD), "GET, HEAD", probe_get},
    {"/post", M(POST), "POST", probe_anything},
    {"/put", M(PUT), "PUT", probe_anything},
    {"/patch", M(PATCH), "PATCH", probe_anything},
    {"/delete", M(DELETE), "DELETE", probe_anything},
    {"/anything", M_ANY, NULL, probe_anything},
    {"/anything/", M_ANY, NULL, probe_anything},
    {"/delay/", M_ANY & ~M(OPTIONS), "GET, HEAD, POST, PUT, DELETE, PATCH", probe_delay},
    {"/status/", M_ANY, NULL, probe_status},
    {"/bytes/", M(GET) | M(HEAD), "GET, HEAD", probe_bytes},
    {"/stream/", M(GET) | M(HEAD), "GET, HEAD", probe_stream},
    {"/drip", M(GET) | M(HEAD), "GET, HEAD", probe_drip},
    {"/health", M(GET) | M(HEAD), "GET, HEAD", probe_health},
    {"/metrics", M(GET) | M(HEAD), "GET, HEAD", probe_metrics},
    {"/queues", M_ANY, NULL, api_queues},
    {"/queues/", M_ANY, NULL, api_queues},
    {"/timers", M_ANY, NULL, api_timers},
    {"/timers/", M_ANY, NULL, api_timers},
};

static int route_matches(const struct route *r, const char *path, size_t len) {
    size_t n = strlen(r->path);
    if (r->path[n - 1] == '/')
        return len > n && memcmp(path, r->path, n) == 0;
    return len == n && memcmp(path, r->path, n) == 0;
}

enum handler_result router_dispatch(struct conn *c, const struct http_request *req,
                                    const char *body, size_t body_len) {
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const struct route *r = &routes[i];
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
        return r->handler(c, req, body, body_len);
    }
    reply_error(c, 404, "no such endpoint: %.*s", (int)(req->path_len > 200 ? 200 : req->path_len),
                req->path);
    return HANDLER_DONE;
}
