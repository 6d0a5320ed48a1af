/*
 * api_queue: /queues over HTTP (docs/QUEUES.md). It binds the pure queue
 * engine (queue.h) to connections, and its events to the journal through
 * the record codec (queue_journal.h) and the store (store.h), which batches
 * records per loop turn and completes waits once their batch is durable.
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
struct store;
struct http_request;
struct qsvc;
struct queue_engine;

/* Create the queue engine and register it as a client of store, which
 * replays the journal into it when the store starts. NULL (logged). */
struct qsvc *qsvc_new(struct server *s, struct store *store);

/* The queues as a service (net/service.h), ctx = the qsvc: start journals
 * from then on and declares the config's queues; reload applies the memory
 * limit and newly declared queues; drain answers every waiting reserve,
 * put and join (503); close frees the engine. */
extern const struct service_ops qsvc_service;

/* The queue engine (for timers, whose action is a put). */
struct queue_engine *qsvc_engine(struct qsvc *svc);

/* Every /queues request; ctx = the qsvc. */
enum handler_result api_queues(void *ctx, struct conn *c, const struct http_request *req,
                               const char *body, size_t body_len);

#endif
