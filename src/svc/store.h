/*
 * store: the journal as the local services (queues, timers) use it:
 * replay at start, one batch of records per loop turn, completions once a
 * batch is durable, the journal's health, and compaction. It speaks no
 * HTTP: callers learn by callback when their change is durable and answer
 * their clients themselves.
 *
 * Flow. A service encodes records straight into store_batch() and calls
 * store_added(); a zero-timeout event hands the batch to the writer thread
 * at the end of the loop turn, so every request of that turn shares one
 * write (and, with fsync = always, one fsync). store_when_durable() says
 * at once when nothing needs waiting for (fsync = off, or nothing was
 * journaled this turn), else keeps the caller's wait, tagged with the
 * batch's sequence number, until the writer's completion for that batch
 * arrives on the loop. With fsync = off the loop writes the batch itself
 * while the writer thread is idle (jw_write_now), skipping the handoff.
 *
 * Order: records are applied in memory first and journaled at the end of
 * the turn (not journal-first as journal_writer.h prefers): before any
 * change a service calls store_check(), which refuses while the journal
 * is unhealthy or full, so a change the journal then refuses is the rare
 * race between those two moments. That change stays in memory, its wait
 * completes with an error, and it is logged.
 *
 * Compaction runs in a forked child (journal_writer.h): the clients'
 * snapshot callbacks run there, on the child's copy-on-write image.
 */
#ifndef AWAITD_STORE_H
#define AWAITD_STORE_H

#include "core/list.h"

#include <stddef.h>
#include <stdint.h>

struct server;
struct buf;
struct store;
struct service_ops;

/* A service of the store: how it replays its records and snapshots its state. */
struct store_client {
    /* Apply one record at start-up: 1 it was this service's, 0 not its type, -1 refuse start. */
    int (*replay)(void *ctx, uint8_t type, const char *payload, size_t len, uint64_t offset);
    /* Append records rebuilding the live state (compaction; runs in the forked child). 0 or -1. */
    int (*snapshot)(void *ctx, struct buf *out);
    /* Bytes the live state takes, to judge whether compaction pays. */
    uint64_t (*live_bytes)(void *ctx);
    void *ctx;
};

#define STORE_MAX_CLIENTS 4

/* Outcomes of store_check() and of a durability wait. */
enum store_status {
    STORE_OK = 0,
    STORE_UNAVAILABLE = -1, /* the journal cannot write (I/O error, writer refused) */
    STORE_NOSPACE = -2,     /* the journal's disk is full */
};

/* Create the store for s->cfg's journal (not opened yet). repair: cut a
 * corrupt journal at start instead of refusing. NULL when out of memory. */
struct store *store_new(struct server *s, int repair);

/* Register a client before the store starts (replay goes to clients in
 * order; the first that takes a record wins). 0, or -1 (too many). */
int store_add_client(struct store *st, const struct store_client *client);

/* The store as a service (net/service.h), ctx = the store: start opens and
 * replays the journal and starts the writer; close flushes, fsyncs and
 * frees (every acknowledged record is on disk); metrics are the journal's. */
extern const struct service_ops store_service;

/* Where a service encodes its records; call store_added() after. */
struct buf *store_batch(struct store *st);
void store_added(struct store *st);

/* STORE_OK when the journal takes writes; else the status, with a reason
 * for the client in why. Call before changing state. */
int store_check(struct store *st, char *why, size_t len);

/* Called once the records of the turn a wait began in are durable, or
 * when the journal failed them (status < 0, why says how). */
typedef void (*store_done_fn)(void *arg, int status, const char *why);

/* A wait for durability, embedded in the caller's request state. */
struct store_wait {
    struct list node;     /* the store's waits, oldest first */
    uint64_t seq;         /* the batch it waits for */
    store_done_fn done;
    void *arg;
};

/*
 * Is what this loop turn journaled already as durable as configured?
 * 0: yes (fsync = off, or nothing journaled): done is not called.
 * 1: done(arg, ...) is called later from the loop, unless
 *    store_wait_cancel(w) comes first.
 */
int store_when_durable(struct store *st, struct store_wait *w, store_done_fn done, void *arg);

/* Forget a wait (its client left). Safe on a wait that is not pending. */
void store_wait_cancel(struct store_wait *w);

/* Hand the current batch to the writer now (before a snapshot). */
void store_flush(struct store *st);

/* A record holding one u64 (a service's next id beside its snapshot). */
int store_encode_u64(struct buf *out, uint8_t type, uint64_t v);
/* 0 with *v set, or -1 when the payload is not 8 bytes. */
int store_decode_u64(const char *payload, size_t len, uint64_t *v);

#endif
