/*
 * h2_int: what the files of HTTP/2 share, private to them (the public
 * contract is net/h2.h). HTTP/2 is three files:
 *
 *   h2.c         the session: h2_start makes a connection HTTP/2 (its
 *                nghttp2 session, counted memory, SETTINGS, its event and
 *                deadline), h2_free ends it; nghttp2's callbacks for the
 *                frames in and out, the flood budgets, and the fatal
 *                GOAWAY (h2_fatal)
 *   h2_stream.c  a stream as a connection: its struct conn (h2_st_new,
 *                h2_st_free, h2_st_reset), its request from the header
 *                block and the handler's run (h2_st_dispatch), its answer
 *                turned into HEADERS and DATA (st_take, st_read), and
 *                the hooks of conn.c and conn_write.c for a stream
 *                (h2_stream_done, _flush, _close)
 *   h2_io.c      the socket: reads fed to nghttp2, frames written, event
 *                interest and the one deadline after each turn (h2_settle,
 *                h2_on_deadline); the ways in (h2_takeover, h2c's
 *                h2_upgrade) and out (h2_drain, h2_listener_gone)
 *
 * The helpers below run on every stream: they stay static inline here, as
 * they were inside the one h2.c, rather than calls between files.
 */
#ifndef AWAITD_H2_INT_H
#define AWAITD_H2_INT_H

#include "core/buf.h"
#include "core/list.h"
#include "core/timer.h"
#include "net/conn.h"
#include "net/h2.h"
#include "net/server.h"

#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

/* The shared write buffer keeps up to this much memory (as conn_int.h). */
#define H2_WBUF_KEEP 65536

enum { RATE_RST, RATE_SETTINGS, RATE_PING, RATE_NOOP, RATE_KINDS };

struct h2_session {
    struct conn *c;
    const void *listener;   /* the listener c came in on (NULL once that closed) */
    nghttp2_session *ng;
    struct event wev;       /* writability while output waits (c->ev is readability) */
    struct list streams;    /* open struct h2_stream, link */
    size_t nstreams;
    size_t nreceiving;      /* of those, requests not yet complete (body_timeout applies) */
    uint64_t rate_start_ms; /* the current one-second window of the budgets */
    uint32_t rate_n[RATE_KINDS];
    int flood;              /* enum h2_close a callback found, or -1 */
    uint8_t wev_on;         /* wev added */
    uint8_t read_off;       /* c->ev removed: output over max_output, or closing */
    uint8_t closing;        /* GOAWAY queued raw: close once it is written and read */
    uint8_t lingering;      /* write side shut: discard input until EOF or deadline */
    uint8_t counted;        /* this connection's close reason was counted */
    uint8_t kicked;         /* wev activated to send what a handler answered */
    uint8_t in_io;          /* inside nghttp2: kicks need no event */
    uint8_t read_wants_write; /* TLS: a read waits for writability (a record to send first) */
    struct buf scratch;     /* lowercased response header names */
    struct h2_stream *upgraded; /* stream 1 of an h2c upgrade, answered after the preface */
    struct buf cookies;     /* the dispatched request's Cookie fields joined (RFC 9113 8.2.3) */
};

struct h2_stream {
    struct conn c; /* what the handler sees; first, for container_of */
    struct conn_busy busy; /* c's, for as long as the stream lives */
    struct list link;
    struct h2_session *h;
    int32_t id;
    uint32_t hlist;     /* header list size so far (RFC 9113 6.5.2 counting) */
    struct buf hdr;     /* the header block: records of u16 name len, u32 value len, name, value */
    struct buf body;    /* the request body */
    struct buf data;    /* answer body bytes not yet in DATA frames */
    uint8_t dispatched; /* handed to the handler (or answered with an error) */
    uint8_t complete;   /* the answer is all in data (no producer, not pending) */
    uint8_t head_sent;  /* HEADERS submitted */
    uint8_t has_body;   /* submitted with a data provider */
    uint8_t deferred;   /* the data provider returned DEFERRED */
    uint8_t rst_after;  /* answered early (413): reset once the answer is sent */
};

static inline struct h2_stream *st_of(struct conn *sc) {
    return container_of(sc, struct h2_stream, c);
}

static inline void count_close(struct h2_session *h, int kind) {
    if (h->counted)
        return;
    h->counted = 1;
    h->c->srv->metrics.h2_closes[kind]++;
}

/* Send what handlers answered at the next loop turn (never on their stack). */
static inline void h2_kick(struct h2_session *h) {
    if (h->in_io || h->kicked)
        return;
    h->kicked = 1;
    event_active(&h->wev, EV_WRITE, 0);
}

static inline void wbuf_release(struct server *s) {
    s->wbuf_owner = NULL;
    if (s->wbuf.cap > H2_WBUF_KEEP)
        buf_free(&s->wbuf);
    else
        buf_reset(&s->wbuf);
}

static inline int is_conn_specific(const char *n, size_t l) {
    static const char *const drop[] = {"connection", "keep-alive", "transfer-encoding",
                                       "proxy-connection", "upgrade"};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        if (strlen(drop[i]) == l && strncasecmp(n, drop[i], l) == 0)
            return 1;
    return 0;
}

/* h2.c */
/* Make c an HTTP/2 connection: NULL (c closed) if that cannot be done. */
struct h2_session *h2_start(struct conn *c);
/* A connection error: GOAWAY written raw, then close (h2_settle). */
void h2_fatal(struct h2_session *h, ssize_t rv);
/* One field of a stream's header block, as on_header keeps it; 0 or -1. */
int h2_hdr_add(struct h2_stream *st, const char *name, size_t namelen, const char *value,
               size_t valuelen);

/* h2_stream.c */
/* A new stream id of h (its struct conn ready for a handler), or NULL. */
struct h2_stream *h2_st_new(struct h2_session *h, int32_t id);
/* The stream is closed (or its connection is): cancel, release, free. */
void h2_st_free(struct h2_stream *st);
/* Give up on a stream: its pending work is cancelled now, RST_STREAM follows. */
void h2_st_reset(struct h2_stream *st, uint32_t code);
/* The request is complete (or refused early with status): run the handler. */
void h2_st_dispatch(struct h2_stream *st, int status, const char *why);

/* h2_io.c: the connection's event callbacks and deadline, set by h2_start. */
void h2_on_read(evutil_socket_t fd, short what, void *arg);
void h2_on_write(evutil_socket_t fd, short what, void *arg);
void h2_on_deadline(struct timer *t);

#endif
