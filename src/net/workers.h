/*
 * workers: [server] workers = N (issue 18). N event loops, one per thread,
 * each a struct server of its own: its own event_base, listeners on the
 * same addresses (SO_REUSEPORT: the kernel spreads new connections),
 * timing wheel, connections, scratch buffers, Date cache, access log file
 * descriptor and metric counters. Nothing on the request path is shared.
 *
 * Worker 0 is the main thread's server, the owner: the services (journal,
 * queues, timers) live on its loop only. A request for them (the routes
 * main.c wires to workers_hop: /queues, /timers, /metrics, /health) that
 * arrives on another worker is handed to the owner: the worker copies the
 * request (head re-serialised, body de-chunked) into a hop, pushes it on
 * the owner's inbox (a lock-free list) and writes the owner's eventfd; the
 * owner parses it again and runs its router on a proxy connection (no
 * socket) whose answer, once complete (at once, or at conn_done after a
 * long poll), goes back the same way and leaves from the worker's
 * connection. A client that leaves while its hop is pending cancels it:
 * the owner runs the proxy's cancel callback (the waiter goes), then acks.
 *
 * workers = 1 builds none of this: server.group is NULL and every path is
 * the single-loop one.
 */
#ifndef AWAITD_WORKERS_H
#define AWAITD_WORKERS_H

#include "net/conn.h"
#include "net/metrics.h"

#include <stdint.h>

struct server;
struct config;
struct buf;

/* The number of loops cfg asks for: workers, or the online CPUs for auto (0). */
unsigned workers_count(const struct config *cfg);

/* Builds worker w's request handler (its own router and probe state):
 * called on the main thread before the worker runs. 0 or -1. */
typedef int (*workers_compose_fn)(struct server *w, unsigned id, void *arg);

/*
 * Create workers 1..n-1 beside the owner s (worker 0, already built by
 * server_init and composed): each binds its listeners; compose wires its
 * routes. Call after server_init and before server_run; the threads start
 * in server_run once the services have started. 0 or -1 (logged).
 */
int workers_create(struct server *s, unsigned n, workers_compose_fn compose, void *arg);

/* The handler for routes served by the owner only (ctx unused): on the
 * owner it is never registered; on another worker it hands the request over. */
enum handler_result workers_hop(void *ctx, struct conn *c, const struct http_request *req,
                                const char *body, size_t body_len);

/* A proxy connection's pending answer is complete (conn_done calls this). */
void workers_proxy_done(struct conn *c);
/* Is the client behind proxy c on TLS; its certificate subject (conn.h). */
int workers_proxy_tls(const struct conn *c);
int workers_proxy_subject(const struct conn *c, char *out, size_t len);

/* Owner: start the worker threads (server_run). 0 or -1. */
int workers_start(struct server *s);
/* Owner: tell every worker to reload (after the owner's reload succeeded),
 * to reopen its access log, or to drain. */
void workers_reload(struct server *s);
void workers_reopen(struct server *s);
void workers_shutdown(struct server *s);
/* Owner: have all workers finished (drained)? 1 without workers. */
int workers_done(const struct server *s);
/* Owner, after its loop: stop the workers now and join them; then free. */
void workers_stop(struct server *s);
void workers_free(struct server *s);

/* Counters summed over every worker (read without locks: each is a
 * word written by its own thread, read here as it is now). */
void workers_metrics_sum(const struct server *s, struct metrics *out, struct metrics_gauges *g);
uint64_t workers_conns_open(const struct server *s);

#endif
