/*
 * conn: one client connection. It owns the socket, its single libevent
 * event (read or write interest), its one deadline on the server's wheel,
 * and input/output buffers that exist only while a request is in flight
 * (struct conn_busy): an idle keep-alive connection is this struct, with
 * its event, nothing more.
 *
 * Bytes flow socket -> io -> conn (framing) -> http_parse -> router ->
 * handler -> http_reply -> conn_out() -> io -> socket. Handlers see the
 * parsed request and write their answer with the http_reply functions;
 * they never touch the socket.
 *
 * A handler either answers at once (returns HANDLER_DONE) or later: it calls
 * conn_pending() with a cancel callback, returns HANDLER_PENDING, and when
 * ready writes its answer and calls conn_done(). If the client goes away
 * first, the cancel callback runs (exactly once) and the handler must drop
 * every reference to the conn. Pipelined requests behind a pending one wait,
 * so responses leave in order.
 *
 * Output is bounded (issue 12): while more than [server] max_output of a
 * connection's answers is unsent (or, past [server] output_budget for all
 * connections together, while any of it is), the connection parses no
 * further pipelined request and reads nothing; it goes on once its output
 * falls to a quarter of max_output (to nothing, over the budget). A large
 * body is not built whole: the handler writes the head and hands the body
 * to conn_stream(), whose producer fills it in slices as the socket drains.
 */
#ifndef AWAITD_CONN_H
#define AWAITD_CONN_H

#include "core/buf.h"
#include "core/list.h"
#include "core/timer.h"
#include "net/access_log.h"

#include <event2/event_struct.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

struct server;
struct conn;
struct io_ops;
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */
struct http_request;
struct h2_session;
struct hop;

enum handler_result { HANDLER_DONE = 0, HANDLER_PENDING = 1 };

enum conn_state {
    CONN_READY,   /* reading and answering requests */
    CONN_BUSY,    /* a handler answers later; input waits */
    CONN_CLOSING, /* last response being written, then lingering close */
    CONN_LINGER,  /* write side shut; discarding input until EOF or deadline */
    CONN_HANDSHAKE, /* TLS handshake in progress: nothing is parsed yet */
};

enum conn_deadline {
    DL_NONE,
    DL_HEADER,    /* the whole request head must arrive by then (slowloris) */
    DL_BODY,      /* idle limit between body reads */
    DL_KEEPALIVE, /* idle between requests */
    DL_WRITE,     /* a blocked write must make progress by then */
    DL_LINGER,    /* lingering close gives up */
    DL_HANDSHAKE, /* the TLS handshake must be done by then */
    DL_PING,      /* HTTP/2: silent with streams open, send a PING then */
    DL_PING_ACK,  /* HTTP/2: the PING must be answered by then */
};

typedef void (*conn_cancel_fn)(void *arg);

/* Answers one parsed request: now (HANDLER_DONE, the answer written with
 * http_reply), or later (HANDLER_PENDING after conn_pending()). ctx is what
 * the handler was registered with. */
typedef enum handler_result (*conn_handler_fn)(void *ctx, struct conn *c,
                                               const struct http_request *req, const char *body,
                                               size_t body_len);

struct conn_chunked; /* chunked-body decoding state, allocated while one is read */
struct conn_stream;  /* a body producer, allocated while a body streams (conn_stream) */

/*
 * A body producer: append the next part of the current answer's body to
 * out, framed as its head promised (Content-Length: raw bytes; chunked:
 * chunks), about room bytes (out has room for that and 64 bytes more). Returns 1 while more is to come, 0 when the
 * body is complete, -1 if it cannot go on (out of memory): the connection
 * then closes after what is queued, and the short body tells the client.
 */
typedef int (*conn_produce_fn)(void *arg, struct buf *out, size_t room);

/* A connection taken over after a 101 (conn_takeover): bytes that arrive
 * are appended to c->in and handed to this, which consumes them
 * (buf_consume). Returns 0, or -1 when c may be gone (closed, or ended
 * with conn_done): the caller then touches nothing. */
typedef int (*conn_input_fn)(void *arg, struct conn *c);

union conn_addr {
    struct sockaddr sa;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
};

/* The client's address as a connection keeps it (17 bytes instead of a
 * 28-byte sockaddr_in6): the family and the address, not the port, which
 * nothing reads (the access log, /get's origin and the per-address limit
 * want the address). */
struct conn_peer {
    uint8_t family;   /* AF_INET or AF_INET6; 0: unknown (the address is zero) */
    uint8_t addr[16]; /* AF_INET: the first 4 bytes */
};

/* What a connection is, beyond HTTP/1.1 on a socket: the roles exclude each
 * other, so their pointers share one word (struct conn's size is an idle
 * connection's memory). */
enum conn_role {
    CONN_ROLE_PLAIN, /* HTTP/1.1 (as.listener) */
    CONN_ROLE_H2,    /* an HTTP/2 connection (as.h2) */
    CONN_ROLE_TAKEN, /* taken over after a 101 (as.on_input) */
    CONN_ROLE_HOP,   /* a worker handover's proxy (as.hop) */
};

/*
 * What a connection holds only while it is busy (issue 19): partial or
 * pipelined input, unsent output, a body being read or streamed, and the
 * access log's view of the answer. An idle keep-alive connection points
 * c->b at its server's idle_busy instead, which is always empty: reading
 * through c->b needs no test, and a connection takes a busy struct of its
 * own (conn_busy, from a free list) before it keeps anything in it, and
 * gives it back when it goes idle again (conn_busy.c).
 *
 * idle_busy's alog fields other than saved are scratch: http_reply and
 * conn_log_id write them on every answer, with the access log off nobody
 * reads them; with it on, conn_dispatch takes a busy struct first.
 */
struct conn_busy {
    struct buf in;              /* unparsed input */
    struct buf out;             /* unwritten output */
    uint64_t need;              /* bytes of in that complete a Content-Length request; 0 unknown */
    struct conn_chunked *chunked;
    struct conn_stream *stream; /* the current answer's body producer, or NULL */
    size_t out_counted;         /* out.len as last added to metrics.output_bytes */
    struct access_req alog;     /* the current request, for its access log line (if on) */
    struct conn_busy *next;     /* on the server's free list */
    uint8_t pooled;             /* from conn_busy (else part of an HTTP/2 stream or a proxy) */
};

struct conn {
    struct list link;           /* on the server's list of open connections */
    struct server *srv;
    int fd;
    uint8_t state;              /* enum conn_state */
    uint8_t deadline_kind;      /* enum conn_deadline */
    uint8_t keep_alive;         /* current request allows another after it */
    uint8_t head_only;          /* current request is HEAD: headers, no body */
    uint8_t http10;             /* current request is HTTP/1.0 */
    uint8_t ev_write;           /* ev waits for writability (else readability) */
    uint8_t reading_paused;     /* input backlog full while busy: ev removed */
    uint8_t io_flip;            /* TLS needs the other readiness than ev_write says */
    uint8_t ev_flip;            /* io_flip as it was when ev was assigned */
    uint8_t dispatching;        /* inside the handler: conn_close only marks close_pending */
    uint8_t close_pending;      /* closed while dispatching; conn_dispatch finishes it */
    uint8_t peer_counted;       /* counted in the server's per-address table */
    uint8_t failed;             /* an answer could not be built (no memory): close after
                                   the answers before it, send nothing more */
    uint8_t backlogged;         /* parsing stopped for unsent output (max_output, budget) */
    uint8_t route_class;        /* the current request's enum metrics_route (router sets it) */
    uint8_t h2_stream;          /* an HTTP/2 stream (net/h2.h), not a socket of its own */
    uint8_t role;               /* enum conn_role: which member of as is set */
    struct conn_peer peer;      /* in what would be padding */
    union {                     /* one pointer for the roles a connection takes in turn */
        const void *listener;   /* PLAIN: the listener it came in on (NULL once that closed) */
        struct h2_session *h2;  /* H2: its session (net/h2_io.c owns the I/O; keeps the listener) */
        conn_input_fn on_input; /* TAKEN (conn_takeover): input goes here, with cancel_arg */
        struct hop *hop;        /* HOP (workers): a proxy for a request handed over from
                                   another worker's client (net/workers.c), no socket */
    } as;
    struct event ev;            /* the one event: read or write interest */
    struct timer deadline;      /* the one deadline, kind in deadline_kind */
    const struct io_ops *io;    /* byte seam: io_plain, or io_tls (tls_server.h) */
    void *io_ctx;               /* io_tls: the SSL */
    struct conn_busy *b;        /* its own while busy, else &srv->idle_busy (never NULL) */
    conn_cancel_fn cancel;      /* set while a handler's answer is pending */
    void *cancel_arg;
    uint64_t start_us;          /* monotonic, at the current request's dispatch (the latency
                                   histogram's and the access log's start); idle under
                                   DL_KEEPALIVE: the keep-alive deadline (conn_set_keepalive) */
};

/* c's own busy struct (taken now if it has none), or NULL: no memory. */
struct conn_busy *conn_busy(struct conn *c);

/* Free the server's spare busy structs past keep. */
void conn_busy_trim(struct server *s, unsigned keep);

/* A busy struct that is part of something else (an HTTP/2 stream, a
 * workers proxy): c uses it for as long as c lives. */
void conn_busy_embed(struct conn *c, struct conn_busy *b);

/* The answer is about this queue job or timer: the access log line names it. */
static inline void conn_log_id(struct conn *c, uint64_t id) {
    c->b->alog.id = id;
    c->b->alog.has_id = 1;
}

/* Take over an accepted, non-blocking socket; with tls (an SSL_CTX), a TLS
 * handshake comes first, under the handshake deadline. NULL on allocation
 * failure (fd closed). */
struct conn *conn_new(struct server *s, int fd, const struct sockaddr *peer, socklen_t len,
                      struct ssl_ctx_st *tls);

/* Close now: cancels a pending handler, the deadline and the event, frees all. */
void conn_close(struct conn *c);

/* Where the current response's bytes go. */
struct buf *conn_out(struct conn *c);

/* The handler will answer later; cancel(arg) runs if the client goes first. */
void conn_pending(struct conn *c, conn_cancel_fn cancel, void *arg);

/* The current request's answer is complete: count it in the request latency
 * histogram (from alog.start_us, by route_class). HTTP/1.1 and HTTP/2 call it. */
void conn_observe(struct conn *c);

/*
 * Take the connection over after a 101 (an upgrade: /websocket/echo): the
 * handler has written the 101 head, called conn_pending (its cancel runs if
 * the client goes) and returns HANDLER_PENDING; from then on what the client
 * sends is not parsed as HTTP but handed to on_input(cancel_arg, c) as it
 * arrives. Bytes that came behind the upgrade request are already in c->in
 * (the taker looks at them once the handler has returned). The taker writes
 * with conn_out()/conn_flush(), and nothing is read while its output waits
 * for the socket. It ends with c->keep_alive = 0 and conn_done(c): the
 * connection then closes once its output has gone.
 */
void conn_takeover(struct conn *c, conn_input_fn on_input);

/* A pending answer is complete (written with http_reply): send it and go on. */
void conn_done(struct conn *c);

/*
 * Stream the rest of the current answer (its head already written with
 * reply_head) from produce(arg), in slices as the socket drains, instead of
 * building it whole. release(arg) runs exactly once: when the body is
 * complete, or the connection closes first, or at once for a HEAD request
 * (no body) or a connection already failed. Requests behind it wait.
 * Returns 0, or -1 (no memory: the connection is failed, see conn_fail).
 */
int conn_stream(struct conn *c, conn_produce_fn produce, void (*release)(void *arg), void *arg);

/* For HTTP/2 (h2_stream.c), which pulls a streamed body itself: the next slice of
 * it into out (as conn_produce_fn; the producer is released when it returns
 * 0 or -1), and dropping it early (the stream was reset). */
int conn_stream_next(struct conn *c, struct buf *out, size_t room);
void conn_stream_stop(struct conn *c);

/* Send what conn_out() holds now, for answers that stream over time (/drip).
 * Returns 0, or -1 if the connection was closed (do not touch c). */
int conn_flush(struct conn *c);

/* Keep sa's address in p (conn_new does for its peer). */
void conn_peer_set(struct conn_peer *p, const struct sockaddr *sa, socklen_t len);

/* c's peer as a sockaddr again (port 0), for the per-address table. */
void conn_peer_sockaddr(const struct conn *c, union conn_addr *out);

/* Peer address as text ("127.0.0.1", "::1") into out; returns out. */
const char *conn_peer_text(const struct conn *c, char *out, size_t len);

/* An answer could not be built whole (out of memory): send nothing more
 * on this connection and close it once what was answered before has gone.
 * Safe anywhere (inside a handler or a timer callback): it frees nothing. */
void conn_fail(struct conn *c);

/* Drain: close now if idle, else after the current response. */
void conn_drain(struct conn *c);

/* Did this connection come in on a TLS listener (https:// for its URLs)? */
int conn_is_tls(const struct conn *c);

/* The verified TLS client certificate's subject (RFC 2253, "CN=ops,O=Example")
 * into out: its length, or -1 if the connection has none (plain, or no
 * [tls] client_ca). For letting a client certificate stand in for a token. */
int conn_tls_subject(const struct conn *c, char *out, size_t len);

#endif
