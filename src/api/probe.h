/*
 * probe: httpbin-compatible endpoints for testing clients and load:
 * /get /post /anything /delay/{s} /status/{code} /bytes/{n} /stream/{n}
 * /drip /health /metrics. JSON bodies are shaped like httpbin's so clients
 * written against httpbin.org work unchanged. Delayed answers (/delay,
 * /drip) wait on the server's timer wheel, never on a blocked thread, and
 * a client that leaves cancels its timer.
 */
#ifndef AWAITD_PROBE_H
#define AWAITD_PROBE_H

#include "core/buf.h"
#include "net/conn.h"

#include <stddef.h>
#include <stdint.h>

struct http_request;

/* The probes' state: the buffer answers are built in (owned here, so no
 * other handler can reset it mid-answer) and the pending-delay gauge. */
struct probe {
    struct buf body;
    uint64_t delays_pending; /* /delay and /drip answers not yet sent */
};

struct probe *probe_new(void);
void probe_free(struct probe *p);

/* Every handler's ctx is the struct probe. */
#define PROBE_HANDLER(name)                                                                        \
    enum handler_result name(void *ctx, struct conn *c, const struct http_request *req,          \
                             const char *body, size_t body_len)

PROBE_HANDLER(probe_get);
PROBE_HANDLER(probe_anything); /* /post, /put, /patch, /delete, /anything[/...] */
PROBE_HANDLER(probe_delay);
PROBE_HANDLER(probe_status);
PROBE_HANDLER(probe_bytes);
PROBE_HANDLER(probe_stream);
PROBE_HANDLER(probe_drip);
PROBE_HANDLER(probe_health);
PROBE_HANDLER(probe_metrics);

struct router;
/* The httpbin routes beyond the ones main.c lists itself (probe_routes.c),
 * "/" (the index page, generated from the router's table) last, and the
 * index lines of main.c's probe routes; -1 when the table is full. */
int probe_routes_add(struct router *r, struct probe *p);

#endif
