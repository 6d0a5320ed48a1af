/*
 * service: what the server knows of a service (queues, timers, the
 * journal): a small vtable registered by main.c. The server calls the
 * services in registration order at start and in reverse order at close,
 * and knows none of them by name.
 *
 * Life of a service:
 *   start   after the listeners are bound, before the loop runs (replay,
 *           arm timers). 0, or -1 (logged): the daemon does not start.
 *   reload  SIGHUP, after the new config is in force (s->cfg).
 *   drain   SIGTERM: answer long waits now, so the drain does not wait
 *           for them; the loop still runs.
 *   close   after the loop and every connection are gone: flush, free.
 *   metrics append Prometheus text for GET /metrics; 0 or -1 (no memory).
 *   health  0 healthy, or 1 degraded with why filled (GET /health says so).
 * Any member may be NULL.
 */
#ifndef AWAITD_SERVICE_H
#define AWAITD_SERVICE_H

#include <stddef.h>

struct buf;

struct service_ops {
    const char *name;
    int (*start)(void *ctx);
    void (*reload)(void *ctx);
    void (*drain)(void *ctx);
    void (*close)(void *ctx);
    int (*metrics)(void *ctx, struct buf *out);
    int (*health)(void *ctx, char *why, size_t len);
};

struct service {
    const struct service_ops *ops;
    void *ctx;
};

#define SERVER_MAX_SERVICES 8

#endif
