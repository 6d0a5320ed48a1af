/*
 * store: the journal as the services (queues, timers) use it: replay at
 * start, one batch of records per loop turn, answers that wait until
 * their batch is durable, the journal's health, and compaction.
 *
 * Flow. A service encodes records straight into store_batch() and calls
 * store_added(); a zero-timeout event hands the batch to the writer thread
 * at the end of the loop turn, so every request of that turn shares one
 * write (and, with fsync = always, one fsync). store_answer() sends a
 * reply at once when nothing needs waiting for (fsync = off, or nothing
 * was journaled), else keeps it, tagged with the batch's sequence number,
 * until the writer's completion for that batch arrives on the loop.
 *
 * Order: records are applied in memory first and journaled at the end of
 * the turn (not journal-first as journal_writer.h prefers): before any
 * change a service calls store_ready(), which refuses (503/507) while the
 * journal is unhealthy or full, so a change the journal then refuses is
 * the rare race between those two moments. That change stays in memory,
 * its request answers 503, and it is logged.
 */
#ifndef AWAITD_STORE_H
#define AWAITD_STORE_H

#include "net/conn.h"

#include <stddef.h>
#include <stdint.h>

struct server;
struct buf;
struct store;

/* A service of the store: how it replays its records and snapshots its state. */
struct store_client {
    /* Apply one record at start-up: 1 it was this service's, 0 not its type, -1 refuse start. */
    int (*replay)(void *ctx, uint8_t type, const char *payload, size_t len, uint64_t offset);
    /* Append records rebuilding the live state (compaction), on the loop thread. 0 or -1. */
    int (*snapshot)(void *ctx, struct buf *out);
    /* Bytes the live state takes, to judge whether compaction pays. */
    uint64_t (*live_bytes)(void *ctx);
    void *ctx;
};

#define STORE_MAX_CLIENTS 4

/*
 * Open the journal of s->cfg and replay it through clients (in order; the
 * first that takes a record wins), then start the writer. repair: cut a
 * corrupt journal instead of refusing. Sets s->store. 0, or -1 logged.
 */
int store_open(struct server *s, int repair, const struct store_client *clients, size_t n);

/* Flush, fsync and close (every acknowledged record is on disk). */
void store_close(struct server *s);

/* Where a service encodes its records; call store_added() after. */
struct buf *store_batch(struct store *st);
void store_added(struct store *st);

/* 0 when the journal takes writes; else answers 503 (507: disk full) and returns -1. */
int store_ready(struct store *st, struct conn *c);

/* Must an answer given now wait for the journal? */
int store_must_wait(const struct store *st);

/*
 * Send a reply now, or once the records of this loop turn are durable (the
 * reply is copied; conn_pending is set). A journal failure then answers
 * 503/507 instead.
 */
enum handler_result store_answer(struct store *st, struct conn *c, int status, const char *ctype,
                                 const char *extra, const void *body, size_t len);

/* Hand the current batch to the writer now (before a snapshot). */
void store_flush(struct store *st);

/* A record holding one u64 (a service's next id beside its snapshot). */
int store_encode_u64(struct buf *out, uint8_t type, uint64_t v);
/* 0 with *v set, or -1 when the payload is not 8 bytes. */
int store_decode_u64(const char *payload, size_t len, uint64_t *v);

/* Journal figures in Prometheus text. */
int store_metrics(struct store *st, struct buf *out);

#endif
