/*
 * conn_int: what the files of a connection share, private to them (the
 * public contract is net/conn.h). A connection is four files:
 *
 *   conn.c        its life: conn_new, the one event (conn_watch,
 *                 conn_on_event), the one deadline (conn_on_deadline),
 *                 pending answers (conn_pending, conn_done), conn_close,
 *                 conn_drain, the peer's address
 *   conn_busy.c   the busy structs: taken when a connection keeps
 *                 something, given back when it goes idle (issue 19)
 *   conn_read.c   bytes in: socket -> requests parsed and dispatched
 *                 (edge-triggered reads, chunked bodies, the TLS
 *                 handshake, framing errors)
 *   conn_write.c  bytes out: conn_out, conn_flush, streamed bodies, the
 *                 output bound (conn_pump) and what follows a drained
 *                 output (idle, lingering close)
 *
 * The helpers below run on every request: they stay static inline here,
 * as they were inside the one conn.c, rather than calls between files.
 */
#ifndef AWAITD_CONN_INT_H
#define AWAITD_CONN_INT_H

#include "core/buf.h"
#include "core/config.h"
#include "core/timer.h"
#include "net/conn.h"
#include "net/server.h"

#include <stdint.h>
#include <stdlib.h>

/* The shared write buffer keeps its memory up to this size; past it
 * (after a burst of large answers) it is freed when released. */
#define WBUF_KEEP 65536
/* Busy structs given back are kept for the next busy connection, up to this many. */
#define BUSY_FREE_MAX 64

static inline void conn_set_deadline(struct conn *c, enum conn_deadline kind, uint64_t ms) {
    c->deadline_kind = (uint8_t)kind;
    server_timer_in(c->srv, &c->deadline, ms);
}

static inline void conn_clear_deadline(struct conn *c) {
    c->deadline_kind = DL_NONE;
    timer_cancel(&c->srv->wheel, &c->deadline);
}

/* The clock as conn_observe read it when an answer completed (conn_write.c
 * says why); forgotten at the start of every callback (conn.c). */
struct conn_observed {
    const struct conn *c;
    uint64_t us;
};
extern _Thread_local struct conn_observed conn_observed;

/* conn_busy.c */
struct conn_busy *conn_busy_take(struct conn *c);
void conn_busy_free(struct server *s, struct conn_busy *b);
void conn_idle_busy_check(const struct server *s);

/* conn_busy(), inline for conn*.c: c's own busy struct (taken now if it
 * has none), or NULL: no memory. */
static inline struct conn_busy *conn_busy_own(struct conn *c) {
    return c->b != &c->srv->idle_busy ? c->b : conn_busy_take(c);
}

/* c is idle (or lingering): its busy struct goes back once nothing is left
 * in it. Called where out is freed, out_counted synced and stream ended
 * already (conn_send's end). */
static inline void conn_busy_put(struct conn *c) {
    struct conn_busy *b = c->b;
    struct server *s = c->srv;
    if (b == &s->idle_busy || !b->pooled || b->in.data || b->chunked || b->need ||
        b->alog.saved)
        return;
    c->b = &s->idle_busy;
    b->next = s->busy_free; /* conn_busy_free, inline: the access log's path takes this per request */
    if (s->busy_nfree < BUSY_FREE_MAX) {
        s->busy_free = b;
        s->busy_nfree++;
    } else {
        free(b);
    }
}

/* The shared write buffer is free again; after a burst it shrinks back. */
static inline void conn_wbuf_release(struct server *s) {
    s->wbuf_owner = NULL;
    if (s->wbuf.cap > WBUF_KEEP)
        buf_free(&s->wbuf);
    else
        buf_reset(&s->wbuf);
}

/* Unsent output of c: its own buffer, and the shared one while c holds it. */
static inline size_t conn_queued(const struct conn *c) {
    return c->b->out.len + (c->srv->wbuf_owner == c ? c->srv->wbuf.len : 0);
}

/* Unsent output past which a connection answers no further request:
 * max_output, or nothing at all while every connection's together is over
 * output_budget (so the clients that do not read stop, and a client whose
 * answers leave at once, such as a health check, goes on). */
static inline size_t conn_out_high(const struct server *s) {
    const struct config *cfg = s->cfg;
    if (cfg->output_budget && s->metrics.output_bytes > s->output_budget)
        return 0;
    return (size_t)cfg->max_output;
}

/* Bring metrics.output_bytes up to date with c->b->out. */
static inline void conn_out_sync(struct conn *c) {
    c->srv->metrics.output_bytes += c->b->out.len - c->b->out_counted;
    c->b->out_counted = c->b->out.len;
}

/* The request is answered: prepare for the next one, or for closing. */
static inline void conn_request_finished(struct conn *c) {
    if (!c->keep_alive)
        c->state = CONN_CLOSING;
}

/* conn.c: switch the one event between read and write interest (0, or -1:
 * c is not closed, the caller closes it). */
int conn_watch(struct conn *c, int for_write);

/* conn_read.c. Each returns -1 if c was closed. */
/* Read what the socket has (what: the event's flags) and answer it. */
int conn_on_readable(struct conn *c, short what);
/* Drive the TLS handshake (CONN_HANDSHAKE). */
int conn_handshake(struct conn *c);
/* Parse and answer every complete request: data[0..len), or c->b->in when
 * data is NULL. */
int conn_process(struct conn *c, const char *data, size_t len);

/* conn_write.c. */
/* The body producer is done (or the connection closes): let it go. */
void conn_stream_end(struct conn *c);
/* conn_flush for a connection with a socket. -1 if c was closed. */
int conn_send(struct conn *c);
/* Send, and answer the requests waiting behind the output. -1 if c was closed. */
int conn_pump(struct conn *c);

#endif
