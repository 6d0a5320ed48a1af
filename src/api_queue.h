/*
 * api_queue: /queues over HTTP (docs/QUEUES.md). It binds the pure queue
 * engine (queue.h) to connections, and its events to the journal
 * (journal.h, journal_writer.h) through the record codec (queue_journal.h).
 *
 * Durability flow. The engine reports every change as an event; each is
 * encoded into the current batch, and the batch is submitted to the
 * journal writer once per loop iteration (a zero-timeout event), so every
 * request of that iteration shares one write and, with fsync = always, one
 * fsync. A request whose change must be durable before it is answered
 * (put, ack, nack, settings, purge, ...) waits on a FIFO list, tagged with
 * the sequence number of the batch holding its records; a completion for
 * sequence n answers every request up to n. With fsync = off the answer is
 * sent at once (the records are still written, in order).
 *
 * Blocking calls (reserve and put with wait=, join) embed a queue_waiter in
 * a per-request struct; the wait= deadline is a wheel timer; a client that
 * leaves cancels both at once.
 */
#ifndef AWAITD_API_QUEUE_H
#define AWAITD_API_QUEUE_H

#include "conn.h"

#include <stddef.h>

struct server;
struct buf;
struct http_request;
struct qsvc;

/* Open (or create) the journal, replay it into a new engine, declare the
 * config's queues, start the writer. 0, or -1 with the reason logged. */
int qsvc_open(struct server *s, int repair);

/* Flush and close the journal (every acknowledged record is on disk). */
void qsvc_close(struct server *s);

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
