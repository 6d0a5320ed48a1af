/*
 * api_queue: /queues over HTTP (docs/QUEUES.md). It binds the pure queue
 * engine (queue.h) to connections, and its events to the journal through
 * the record codec (queue_journal.h) and the store (store.h), which batches
 * records per loop turn and holds answers until their batch is durable.
 *
 * Blocking calls (reserve and put with wait=, join) embed a queue_waiter in
 * a per-request struct; the wait= deadline is a wheel timer; a client that
 * leaves cancels both at once.
 */
#ifndef AWAITD_API_QUEUE_H
#define AWAITD_API_QUEUE_H

#include "net/conn.h"

#include <stddef.h>

struct server;
struct buf;
struct http_request;
struct qsvc;

struct store_client;

/* Create the queue engine (s->qsvc) and fill client for store_open(), which
 * replays the journal into it. 0, or -1 logged. */
int qsvc_init(struct server *s, struct store_client *client);

/* After store_open: journal from now on, declare the config's queues. */
void qsvc_start(struct server *s);

/* Free the engine (after store_close). */
void qsvc_close(struct server *s);

/* The queue engine (for timers, whose action is a put). */
struct queue_engine *qsvc_engine(struct server *s);

/* SIGTERM: answer every waiting reserve/put/join now (503), so the drain
 * does not wait for long polls. */
void qsvc_drain(struct server *s);

/* Apply a reloaded config: memory limit, queues newly declared. */
void qsvc_reload(struct server *s);

/* Every /queues request. */
enum handler_result api_queues(struct conn *c, const struct http_request *req, const char *body,
                               size_t body_len);

/* Queue and journal figures in Prometheus text. */
int qsvc_metrics(struct server *s, struct buf *out);

/* Authorization check shared with /timers: 1 allowed, 0 answered 401. */
int api_authorized(struct conn *c, const struct http_request *req);

#endif
