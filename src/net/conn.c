#include "net/conn.h"

#include "core/clock.h"
#include "core/config.h"
#include "http/http_parse.h"
#include "net/h2.h"
#include "net/http_reply.h"
#include "net/io.h"
#include "core/log.h"
#include "net/server.h"
#include "net/tls_server.h"
#include "net/workers.h"
#include "core/list.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* How long a lingering close waits for the client to finish sending. */
#define LINGER_MS 2000
/* Pipelined input buffered behind a pending answer before reading pauses. */
#define BUSY_INPUT_MAX 65536
/* A body producer is asked for about this much at a time... */
#define STREAM_CHUNK 65536
/* ...and for at most this much per loop turn before the others' turn. */
#define STREAM_TURN (256 * 1024)
/* The shared write buffer keeps its memory up to this size; past it
 * (after a burst of large answers) it is freed when released. */
#define WBUF_KEEP 65536

struct conn_stream {
    conn_produce_fn produce;
    void (*release)(void *arg);
    void *arg;
};

struct conn_chunked {
    struct http_chunked dec;
    size_t head_len; /* bytes of the head at the front of in */
    size_t body_len; /* decoded body bytes after the head */
};

static void conn_on_event(evutil_socket_t fd, short what, void *arg);
static void conn_on_deadline(struct timer *t);
static int conn_process(struct conn *c, const char *data, size_t len);
static int conn_on_readable(struct conn *c, short what);
static int conn_pump(struct conn *c);

_Static_assert(TLS_FAIL_KINDS == METRICS_TLS_FAIL_KINDS, "metrics.h and tls_server.h disagree");

static void conn_set_deadline(struct conn *c, enum conn_deadline kind, uint64_t ms) {
    c->deadline_kind = (uint8_t)kind;
    server_timer_in(c->srv, &c->deadline, ms);
}

/*
 * The clock as conn_observe read it when an answer completed, for the
 * keep-alive deadline armed once that answer has been written in the same
 * callback: one clock read per request fewer (vDSO clock_gettime was about
 * 1.2% of the server's CPU per GET /get at three reads a request). Only
 * for the connection that read it, and forgotten at the start of every
 * callback (conn_on_event, conn_done), so it is never older than the
 * callback's own work: the deadline is early by at most the time the
 * answer's write took.
 */
static _Thread_local struct {
    const struct conn *c;
    uint64_t us;
} observed;

/* The keep-alive deadline, from the answer's observed end when there is one. */
/*
 * Lazily, as nginx's timers: an idle connection's start_us (dead between
 * requests) holds its keep-alive deadline in us, and a keep-alive timer
 * already on the wheel at or before it stays where it is; when it fires,
 * conn_on_deadline moves it to the deadline in start_us. A request
 * dispatched since rewrote start_us with a time already past, so a timer
 * that fires then closes as before. Saves moving the timer on the wheel
 * (unlink + place) for every answer of a keep-alive connection.
 */
static void conn_set_keepalive(struct conn *c) {
    uint64_t ms = c->srv->cfg->keepalive_timeout_ms, now_ms;
    if (observed.c == c) {
        observed.c = NULL;
        now_ms = observed.us / 1000;
    } else {
        now_ms = clock_now_ms();
    }
    /* As server_timer_in: +1, since the clock truncates to the millisecond. */
    uint64_t at = now_ms + ms + 1;
    c->start_us = at * 1000;
    if (c->deadline_kind == DL_KEEPALIVE && timer_pending(&c->deadline) &&
        c->deadline.expire <= at)
        return;
    c->deadline_kind = DL_KEEPALIVE;
    timer_add(&c->srv->wheel, &c->deadline, at);
}

static void conn_clear_deadline(struct conn *c) {
    c->deadline_kind = DL_NONE;
    timer_cancel(&c->srv->wheel, &c->deadline);
}

/* Busy structs given back are kept for the next busy connection, up to this many. */
#define BUSY_FREE_MAX 64

static __attribute__((noinline)) struct conn_busy *conn_busy_take(struct conn *c) {
    struct server *s = c->srv;
    /* One from the free list is empty already (conn_busy_put checked, or
     * conn_close cleared it); its alog fields are scratch until the next
     * dispatch resets them (access_req_start), as idle_busy's are. */
    struct conn_busy *b = s->busy_free;
    if (b) {
        s->busy_free = b->next;
        s->busy_nfree--;
    } else {
        b = malloc(sizeof *b);
        if (!b)
            return NULL;
        *b = (struct conn_busy){.pooled = 1};
    }
    c->b = b;
    return b;
}

struct conn_busy *conn_busy(struct conn *c) {
    return c->b != &c->srv->idle_busy ? c->b : conn_busy_take(c);
}

void conn_busy_embed(struct conn *c, struct conn_busy *b) {
    *b = (struct conn_busy){.pooled = 0};
    c->b = b;
}

static void conn_busy_free(struct server *s, struct conn_busy *b) {
    if (s->busy_nfree < BUSY_FREE_MAX) {
        b->next = s->busy_free;
        s->busy_free = b;
        s->busy_nfree++;
    } else {
        free(b);
    }
}

void conn_busy_trim(struct server *s, unsigned keep) {
    while (s->busy_nfree > keep) {
        struct conn_busy *b = s->busy_free;
        s->busy_free = b->next;
        s->busy_nfree--;
        free(b);
    }
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

/* idle_busy is shared by every idle connection: anything kept in it would
 * be seen by all of them. A bug, caught here (conn_close) in the tests. */
static void conn_idle_busy_check(const struct server *s) {
    const struct conn_busy *b = &s->idle_busy;
    if (b->in.data || b->in.len || b->out.data || b->out.len || b->need || b->chunked ||
        b->stream || b->out_counted || b->alog.saved) {
        log_error("internal error: state left in idle_busy");
        abort();
    }
}

/*
 * The flags of the one event. A plain socket's read interest is
 * edge-triggered (EPOLLET, as nginx reads): epoll then reports a socket
 * once per arrival instead of polling it again on the next epoll_wait to
 * find it drained, which was a second tcp_poll per request (tcp_poll,
 * sock_poll and ep_item_poll were 7% of the server's CPU per GET /get).
 * Edge-triggered, a read must leave nothing behind unannounced: a read
 * shorter than it asked for emptied the socket, one that filled its buffer
 * runs the callback again (conn_read_again), and EV_CLOSED (EPOLLRDHUP)
 * says when the end of the stream waits behind the bytes read. Writes
 * and TLS stay level-triggered.
 */
static short conn_ev_flags(const struct conn *c, int for_write) {
    if (for_write ^ c->io_flip)
        return EV_WRITE | EV_PERSIST;
    if (c->io == &io_plain)
        return EV_READ | EV_PERSIST | EV_ET | EV_CLOSED;
    return EV_READ | EV_PERSIST;
}

/* Switch the one event between read and write interest. ev_write is what
 * the connection waits to do; the readiness watched is the other one while
 * TLS needs it (io_flip: a read that must write first, or the reverse). */
static int conn_watch(struct conn *c, int for_write) {
    if (c->ev_write == for_write && c->ev_flip == c->io_flip && !c->reading_paused)
        return 0;
    event_del(&c->ev);
    event_assign(&c->ev, c->srv->base, c->fd, conn_ev_flags(c, for_write), conn_on_event, c);
    c->ev_write = (uint8_t)for_write;
    c->ev_flip = c->io_flip;
    c->reading_paused = 0;
    return event_add(&c->ev, NULL);
}

/*
 * TLS only, after the connection's work for an event: watch the readiness
 * TLS needs now, and if OpenSSL already holds input (records read ahead,
 * or more than the last read had room for), run the read callback again
 * at once, since the socket will not become readable for bytes it no longer has.
 */
static int conn_io_rearm(struct conn *c) {
    if (c->reading_paused)
        return 0;
    if (c->ev_flip != c->io_flip && conn_watch(c, c->ev_write) < 0) {
        conn_close(c);
        return -1;
    }
    if (!c->ev_write && !c->io_flip && c->state != CONN_HANDSHAKE && c->io->pending(c->io_ctx))
        event_active(&c->ev, EV_READ, 0);
    return 0;
}

struct conn *conn_new(struct server *s, int fd, const struct sockaddr *peer, socklen_t len,
                      struct ssl_ctx_st *tls) {
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return NULL;
    }
    c->srv = s;
    c->b = &s->idle_busy;
    c->fd = fd;
    c->io = &io_plain;
    if (tls) {
        c->io_ctx = tls_conn_new(tls, fd);
        if (!c->io_ctx) {
            close(fd);
            free(c);
            return NULL;
        }
        c->io = &io_tls;
        c->state = CONN_HANDSHAKE;
    }
    c->keep_alive = 1;
    conn_peer_set(&c->peer, peer, len);
    timer_init(&c->deadline, conn_on_deadline);
    event_assign(&c->ev, s->base, fd, conn_ev_flags(c, 0), conn_on_event, c);
    if (event_add(&c->ev, NULL) < 0) {
        c->io->release(c->io_ctx);
        close(fd);
        free(c);
        return NULL;
    }
    list_push(&s->conns, &c->link);
    s->metrics.conns_open++;
    if (tls) {
        struct tls_settings ts;
        tls_settings_from_config(s->cfg, &ts);
        conn_set_deadline(c, DL_HANDSHAKE, ts.handshake_timeout_ms);
        return c;
    }
    /* The first request has header_timeout to arrive, as every later one does. */
    conn_set_deadline(c, DL_HEADER, s->cfg->header_timeout_ms);
    return c;
}

/* The current request's answer is complete: into the latency histogram. */
void conn_observe(struct conn *c) {
    uint64_t now = clock_now_us();
    metrics_request_observe(&c->srv->metrics, c->route_class, now - c->start_us);
    observed.c = c;
    observed.us = now;
}

/* The shared write buffer is free again; after a burst it shrinks back. */
static void conn_wbuf_release(struct server *s) {
    s->wbuf_owner = NULL;
    if (s->wbuf.cap > WBUF_KEEP)
        buf_free(&s->wbuf);
    else
        buf_reset(&s->wbuf);
}

/* The body producer is done (or the connection closes): let it go. */
static void conn_stream_end(struct conn *c) {
    struct conn_stream *st = c->b->stream;
    c->b->stream = NULL;
    if (c->state != CONN_BUSY)
        conn_observe(c);
    if (c->srv->alog && c->state != CONN_BUSY)
        access_log_write(c->srv->alog, c, NULL); /* the streamed answer is complete */
    st->release(st->arg);
    free(st);
}

int conn_stream(struct conn *c, conn_produce_fn produce, void (*release)(void *arg), void *arg) {
    if (c->failed || c->head_only || c->b->stream) {
        /* Failed: nothing more is sent. HEAD: the head was the answer. A
         * second producer for one answer is a bug: refuse it, close. */
        release(arg);
        if (c->failed || c->b->stream) {
            conn_fail(c);
            return -1;
        }
        return 0;
    }
    struct conn_stream *st = conn_busy(c) ? malloc(sizeof *st) : NULL;
    if (!st) {
        release(arg);
        conn_fail(c);
        return -1;
    }
    st->produce = produce;
    st->release = release;
    st->arg = arg;
    c->b->stream = st;
    return 0;
}

int conn_stream_next(struct conn *c, struct buf *out, size_t room) {
    int r = c->b->stream->produce(c->b->stream->arg, out, room);
    if (r <= 0)
        conn_stream_end(c);
    return r;
}

void conn_stream_stop(struct conn *c) {
    if (c->b->stream)
        conn_stream_end(c);
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

/* Stop parsing: requests wait in c->b->in until the output drains (conn_pump). */
static void conn_backlog(struct conn *c) {
    if (c->backlogged)
        return;
    c->backlogged = 1;
    if (c->b->stream)
        return; /* waiting for a streamed body is no backpressure */
    struct server *s = c->srv;
    s->metrics.output_paused++;
    if (s->cfg->output_budget && s->metrics.output_bytes > s->output_budget)
        s->metrics.output_over_budget++;
}

void conn_close(struct conn *c) {
    struct server *s = c->srv;
    if (c->h2_stream) {
        h2_stream_close(c);
        return;
    }
    if (c->role == CONN_ROLE_H2)
        h2_free(c);
    if (c->dispatching) {
        /* Inside the handler's stack (a failed flush): conn_dispatch closes
         * it once the handler returns, so nothing below touches freed memory. */
        c->close_pending = 1;
        return;
    }
    if (c->cancel) {
        conn_cancel_fn fn = c->cancel;
        c->cancel = NULL;
        fn(c->cancel_arg);
        if (s->alog) /* the client went before the answer: 499, as nginx says */
            access_log_write(s->alog, c, NULL);
    }
    timer_cancel(&s->wheel, &c->deadline);
    event_del(&c->ev);
    c->io->release(c->io_ctx);
    close(c->fd);
    if (c->b->stream)
        conn_stream_end(c);
    s->metrics.output_bytes -= c->b->out_counted;
    buf_free(&c->b->in);
    buf_free(&c->b->out);
    free(c->b->chunked);
    access_req_drop(&c->b->alog);
    if (c->b != &s->idle_busy && c->b->pooled) {
        *c->b = (struct conn_busy){.pooled = 1}; /* chunked was freed, need and out_counted stale */
        conn_busy_free(s, c->b);
    }
    conn_idle_busy_check(s);
    list_unlink(&c->link);
    if (s->wbuf_owner == c)
        conn_wbuf_release(s);
    s->metrics.conns_open--;
    if (c->peer_counted)
        server_peer_release(s, c);
    free(c);
    if (s->draining && list_empty(&s->conns))
        server_shutdown(s);
}

/* conn_out when c's bytes cannot go to the shared buffer: its own. */
static __attribute__((noinline)) struct buf *conn_out_own(struct conn *c) {
    if (!conn_busy(c)) {
        /* No memory for a buffer of its own: the answer goes nowhere,
         * and the connection closes after what it answered before. */
        conn_fail(c);
        buf_reset(&c->srv->lost);
        return &c->srv->lost;
    }
    return &c->b->out;
}

struct buf *conn_out(struct conn *c) {
    struct server *s = c->srv;
    /* The shared buffer serves one connection at a time and only while
     * nothing of this connection's is queued, so bytes stay in order. */
    if (c->b->out.len == 0 && (s->wbuf_owner == NULL || s->wbuf_owner == c)) {
        s->wbuf_owner = c;
        return &s->wbuf;
    }
    return conn_out_own(c);
}

/* Copy input not yet consumed into the connection's own buffer. */
static int conn_stash(struct conn *c, const char *data, size_t len) {
    if (data == NULL || len == 0)
        return 0;
    if (!conn_busy(c))
        return -1;
    return buf_append(&c->b->in, data, len);
}

/* The request is answered: prepare for the next one, or for closing. */
static void conn_request_finished(struct conn *c) {
    if (!c->keep_alive)
        c->state = CONN_CLOSING;
}

/* After output drained completely: idle, lingering close, or next request. */
static int conn_after_write(struct conn *c) {
    if (c->state == CONN_CLOSING) {
        /* Lingering close (as nginx): shut our side and read what the client
         * still sends, so unread input does not turn our last answer into an
         * RST that the client never sees. TLS says goodbye first. */
        if (c->io == &io_tls)
            tls_close_notify(c->io_ctx);
        shutdown(c->fd, SHUT_WR);
        c->state = CONN_LINGER;
        buf_free(&c->b->in);
        conn_busy_put(c);
        conn_set_deadline(c, DL_LINGER, LINGER_MS);
        return conn_watch(c, 0) < 0 ? (conn_close(c), -1) : 0;
    }
    if (c->state == CONN_READY) {
        if (c->srv->draining && c->b->in.len == 0) {
            conn_close(c);
            return -1;
        }
        if (conn_watch(c, 0) < 0) {
            conn_close(c);
            return -1;
        }
        if (c->b->in.len == 0) {
            /* Idle: give the memory back; keep-alive deadline runs. */
            buf_free(&c->b->in);
            conn_busy_put(c);
            /* O(1) on the wheel, so the idle clock simply restarts. */
            conn_set_keepalive(c);
        }
    }
    return 0;
}

static int conn_write_buf(struct conn *c, struct buf *b) {
    while (b->len > 0) {
        ssize_t n = c->io->write(c->fd, c->io_ctx, buf_start(b), b->len);
        if (n > 0) {
            c->srv->metrics.bytes_out += (uint64_t)n;
            buf_consume(b, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->io->pending) /* TLS: a write may wait for readability */
                c->io_flip = c->io->want(c->io_ctx, 1) == IO_WANT_READ;
            return 1;
        }
        return -1;
    }
    return 0;
}

/* Wait for writability under the write deadline (renewed on progress);
 * input waits too: backpressure on pipelining clients. */
static int conn_wait_write(struct conn *c) {
    conn_out_sync(c);
    if (c->deadline_kind != DL_WRITE)
        conn_set_deadline(c, DL_WRITE, c->srv->cfg->write_timeout_ms);
    if (conn_watch(c, 1) < 0) {
        conn_close(c);
        return -1;
    }
    return 0;
}

/* conn_flush for a connection with a socket (an HTTP/2 stream has none). */
static int conn_send(struct conn *c) {
    struct server *s = c->srv;
    if (s->wbuf_owner == c) {
        int r = 0;
        if (c->b->out.len == 0) {
            r = conn_write_buf(c, &s->wbuf);
            if (r == 1 && (!conn_busy(c) ||
                           buf_append(&c->b->out, buf_start(&s->wbuf), s->wbuf.len) < 0))
                r = -1;
        } else if (buf_append(&c->b->out, buf_start(&s->wbuf), s->wbuf.len) < 0) {
            r = -1;
        }
        conn_wbuf_release(s);
        if (r < 0) {
            conn_close(c);
            return -1;
        }
    }
    /* Write what is queued; then, while a body streams, ask its producer
     * for the next slice whenever the output is (nearly) gone. */
    size_t produced = 0;
    for (;;) {
        if (c->b->out.len > 0) {
            int r = conn_write_buf(c, &c->b->out);
            if (r < 0) {
                conn_close(c);
                return -1;
            }
            if (r == 1)
                return conn_wait_write(c);
        }
        if (!c->b->stream)
            break;
        if (produced >= STREAM_TURN)
            return conn_wait_write(c); /* writable: back at the next loop turn */
        /* One slice of exactly STREAM_CHUNK bytes of memory (a buffer
         * grows by doubling: asking for more would double it). */
        if (buf_reserve(&c->b->out, STREAM_CHUNK) < 0) {
            conn_close(c);
            return -1;
        }
        int r = c->b->stream->produce(c->b->stream->arg, &c->b->out, STREAM_CHUNK - 64);
        produced += c->b->out.len;
        c->b->alog.bytes += c->b->out.len; /* out was empty: all of it is this slice */
        if (r <= 0) {
            conn_stream_end(c);
            if (r < 0) {
                /* A short body: send what there is, then close. */
                conn_fail(c);
                if (c->state == CONN_READY)
                    c->state = CONN_CLOSING;
            }
        }
    }
    if (c->b->out.data)
        buf_free(&c->b->out);
    if (c->b->out_counted)
        conn_out_sync(c);
    if (c->state == CONN_BUSY) {
        /* Output drained behind a pending answer: no deadline (the handler
         * bounds its own wait), and read again to see the client leave. */
        if (c->deadline_kind == DL_WRITE)
            conn_clear_deadline(c);
        if (c->ev_write && conn_watch(c, 0) < 0) {
            conn_close(c);
            return -1;
        }
        return 0;
    }
    return conn_after_write(c);
}

int conn_flush(struct conn *c) {
    if (c->h2_stream)
        return h2_stream_flush(c);
    return conn_send(c);
}

/*
 * Send what is queued and, while the output allows, answer the requests
 * that wait behind it in c->b->in (conn_backlog), then send again: a loop,
 * never recursion. Parsing resumes once the unsent output is down to a
 * quarter of the bound. Returns -1 if c was closed.
 */
static int conn_pump(struct conn *c) {
    for (;;) {
        if (conn_send(c) < 0)
            return -1;
        if (!c->backlogged || c->state != CONN_READY || c->b->stream)
            return 0;
        if (c->b->out.len > conn_out_high(c->srv) / 4)
            return 0;
        c->backlogged = 0;
        if (conn_process(c, NULL, 0) < 0)
            return -1;
    }
}

void conn_pending(struct conn *c, conn_cancel_fn cancel, void *arg) {
    c->cancel = cancel;
    c->cancel_arg = arg;
}

void conn_takeover(struct conn *c, conn_input_fn on_input) {
    c->role = CONN_ROLE_TAKEN; /* the listener is forgotten: only HTTP/2 needs it */
    c->as.on_input = on_input;
}

void conn_done(struct conn *c) {
    if (c->h2_stream) {
        h2_stream_done(c);
        return;
    }
    if (c->role == CONN_ROLE_HOP) { /* a proxy (workers): the answer goes back to the worker that asked */
        workers_proxy_done(c);
        return;
    }
    observed.c = NULL;
    c->cancel = NULL;
    c->cancel_arg = NULL;
    if (c->role == CONN_ROLE_TAKEN) {
        c->role = CONN_ROLE_PLAIN;
        c->as.listener = NULL;
    }
    c->state = CONN_READY;
    if (!c->b->stream)
        conn_observe(c);
    if (c->srv->alog && !c->b->stream)
        access_log_write(c->srv->alog, c, NULL);
    conn_request_finished(c);
    if (c->reading_paused && conn_watch(c, 0) < 0) {
        conn_close(c);
        return;
    }
    /* Requests that arrived behind the pending one go next (they are in c->b->in). */
    struct server *s = c->srv; /* c may be freed by what follows */
    if (c->state == CONN_READY && c->b->in.len > 0) {
        if (conn_process(c, NULL, 0) < 0)
            return;
    }
    if (conn_pump(c) == 0 && c->io->pending)
        conn_io_rearm(c);
    server_timers_sync(s);
}

void conn_fail(struct conn *c) {
    if (!c->failed) {
        c->failed = 1;
        c->srv->metrics.reply_failures++;
    }
    c->keep_alive = 0;
}

void conn_drain(struct conn *c) {
    if (c->role == CONN_ROLE_H2)
        h2_drain(c);
    else if (c->state == CONN_HANDSHAKE)
        conn_close(c); /* nothing asked yet: nothing to finish */
    else if (c->state == CONN_READY && c->b->in.len == 0 && c->b->out.len == 0 && !c->b->stream &&
             c->srv->wbuf_owner != c)
        conn_close(c);
    else if (c->state != CONN_BUSY || c->b->in.len == 0)
        c->keep_alive = 0;
    /* else a request is in flight with the next one already read behind it
     * (pipelined): the answer in flight keeps the connection, so that the
     * next request is answered too, with Connection: close (the flags of a
     * request read while draining), and /health's 503 "draining" can be
     * seen (issue 16). Whatever follows it is not read. */
}

int conn_is_tls(const struct conn *c) {
    if (c->role == CONN_ROLE_HOP)
        return workers_proxy_tls(c);
    return c->io == &io_tls;
}

int conn_tls_subject(const struct conn *c, char *out, size_t len) {
    if (c->role == CONN_ROLE_HOP)
        return workers_proxy_subject(c, out, len);
    if (c->io != &io_tls || c->state == CONN_HANDSHAKE)
        return -1;
    return tls_conn_subject(c->io_ctx, out, len);
}

/* a.b.c.d without inet_ntop's sprintf: /get's origin asks on every
 * request (perf: inet_ntop was 2% of the server's CPU per /get). */
static void ipv4_text(const unsigned char *a, char *out) {
    for (int i = 0; i < 4; i++) {
        unsigned v = a[i];
        if (v >= 100)
            *out++ = (char)('0' + v / 100);
        if (v >= 10)
            *out++ = (char)('0' + v / 10 % 10);
        *out++ = (char)('0' + v % 10);
        *out++ = i < 3 ? '.' : '\0';
    }
}

void conn_peer_set(struct conn_peer *p, const struct sockaddr *sa, socklen_t len) {
    memset(p, 0, sizeof *p);
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        p->family = AF_INET;
        memcpy(p->addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        p->family = AF_INET6;
        memcpy(p->addr, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    }
}

void conn_peer_sockaddr(const struct conn *c, union conn_addr *out) {
    memset(out, 0, sizeof *out);
    out->sa.sa_family = c->peer.family;
    if (c->peer.family == AF_INET)
        memcpy(&out->sin.sin_addr, c->peer.addr, 4);
    else if (c->peer.family == AF_INET6)
        memcpy(&out->sin6.sin6_addr, c->peer.addr, 16);
}

const char *conn_peer_text(const struct conn *c, char *out, size_t len) {
    out[0] = '\0';
    if (c->peer.family == AF_INET) {
        if (len >= INET_ADDRSTRLEN)
            ipv4_text(c->peer.addr, out);
    } else if (c->peer.family == AF_INET6) {
        /* An IPv4-mapped peer on a dual-stack socket reads best as IPv4. */
        struct in6_addr a;
        memcpy(&a, c->peer.addr, 16);
        if (IN6_IS_ADDR_V4MAPPED(&a)) {
            if (len >= INET_ADDRSTRLEN)
                ipv4_text(&c->peer.addr[12], out);
        } else
            inet_ntop(AF_INET6, &a, out, (socklen_t)len);
    }
    return out;
}

/* Answer a framing error and close after it. */
static void conn_reject(struct conn *c, int status, const char *why) {
    c->keep_alive = 0;
    c->srv->metrics.parse_errors++;
    c->start_us = clock_now_us();
    if (c->srv->alog) {
        conn_busy(c); /* no memory: the line may say less */
        access_req_start(&c->b->alog);
    }
    reply_error(c, status, "%s", why);
    if (c->srv->alog)
        access_log_write(c->srv->alog, c, NULL);
    c->state = CONN_CLOSING;
}

/* Run the handler for one complete request. Returns -1 if c was closed. */
static int conn_dispatch(struct conn *c, const struct http_request *req, const char *body,
                         size_t body_len) {
    struct server *s = c->srv;
    c->start_us = clock_now_us(); /* the latency histogram's and the access log's start */
    if (s->alog) {
        conn_busy(c); /* the line's fields; no memory: it may say less */
        access_req_start(&c->b->alog);
    }
    c->route_class = METRICS_ROUTE_OTHER;
    c->dispatching = 1;
    enum handler_result r = s->handler(s->handler_ctx, c, req, body, body_len);
    c->dispatching = 0;
    if (r == HANDLER_DONE && !c->b->stream)
        conn_observe(c);
    if (s->alog) {
        /* The line now, while req is there; an answer that ends later
         * (pending, streamed) keeps what its line needs. */
        if (r == HANDLER_DONE && !c->b->stream)
            access_log_write(s->alog, c, req);
        else if (c->b != &s->idle_busy)
            access_req_save(&c->b->alog, req);
    }
    if (c->close_pending) {
        conn_close(c);
        return -1;
    }
    if (r == HANDLER_PENDING) {
        c->state = CONN_BUSY;
        conn_clear_deadline(c);
        return 0;
    }
    conn_request_finished(c);
    return 0;
}

static void conn_take_request_flags(struct conn *c, const struct http_request *req) {
    c->keep_alive = (uint8_t)(req->keep_alive && !c->srv->draining && !c->srv->announcing);
    c->head_only = req->method == HTTP_M_HEAD;
    c->http10 = req->minor_version == 0;
}

/* Continue a chunked body held in c->b->in. Returns 1 if a request was
 * dispatched, 0 if more input is needed, -1 if c was closed. */
static int conn_continue_chunked(struct conn *c) {
    struct conn_chunked *ch = c->b->chunked;
    char *base = buf_start(&c->b->in);
    size_t start = ch->head_len + ch->body_len;
    size_t raw = c->b->in.len - start;
    const char *why = NULL;
    ssize_t left = http_chunked_decode(&ch->dec, base + start, &raw, c->srv->limits.max_body, &why);
    if (left == HTTP_INCOMPLETE) {
        ch->body_len += raw;
        c->b->in.len = ch->head_len + ch->body_len;
        conn_set_deadline(c, DL_BODY, c->srv->cfg->body_timeout_ms);
        return 0;
    }
    if (left < 0) {
        free(c->b->chunked);
        c->b->chunked = NULL;
        conn_reject(c, http_err_status((int)left), why ? why : "bad chunked body");
        return 1;
    }
    ch->body_len += raw;
    c->b->in.len = ch->head_len + ch->body_len + (size_t)left;
    /* Parse the head again for pointers into the buffer as it now is. */
    struct http_request req;
    http_parse_request(base, ch->head_len, &c->srv->limits, &req, &why);
    size_t head_len = ch->head_len, body_len = ch->body_len;
    free(c->b->chunked);
    c->b->chunked = NULL;
    conn_take_request_flags(c, &req);
    if (conn_dispatch(c, &req, base + head_len, body_len) < 0)
        return -1;
    buf_consume(&c->b->in, head_len + body_len);
    return 1;
}

/*
 * Parse and answer every complete request in the input: data[0..len) when
 * data is the shared read buffer, else c->b->in. Leftover bytes end up in
 * c->b->in. Returns -1 if c was closed.
 */
static int conn_process(struct conn *c, const char *data, size_t len) {
    struct server *s = c->srv;
    for (;;) {
        if (c->state != CONN_READY)
            break;
        if (data == NULL) {
            data = buf_start(&c->b->in);
            len = c->b->in.len;
            if (len == 0) {
                data = NULL;
                break;
            }
        }
        /* Output first: past the bound (or behind a streaming body) the
         * requests wait in c->b->in, and nothing more is read. */
        if (c->b->stream || conn_queued(c) > conn_out_high(s)) {
            conn_backlog(c);
            break;
        }
        /* Waiting for the rest of a body: only new bytes can change that. */
        if (c->b->chunked) {
            int r = conn_continue_chunked(c);
            if (r <= 0)
                return r;
            data = NULL;
            continue;
        }
        if (c->b->need && len < c->b->need) {
            conn_set_deadline(c, DL_BODY, s->cfg->body_timeout_ms);
            break;
        }
        struct http_request req;
        const char *why = "bad request";
        int r = http_parse_request(data, len, &s->limits, &req, &why);
        if (r == HTTP_INCOMPLETE) {
            if (c->deadline_kind != DL_HEADER)
                conn_set_deadline(c, DL_HEADER, s->cfg->header_timeout_ms);
            break;
        }
        if (r < 0) {
            if (h2_is_preface(data, len) && s->cfg->h2_enabled && c->io == &io_plain)
                return h2_takeover(c, data, len); /* prior knowledge (h2c) */
            conn_reject(c, http_err_status(r), why);
            len = 0;
            break;
        }
        size_t head_len = (size_t)r;
        if (req.upgrade && h2_upgrade_wanted(c, &req))
            return h2_upgrade(c, &req, data + head_len, len - head_len); /* h2c */
        conn_take_request_flags(c, &req);
        if (req.chunked) {
            /* The body is decoded in place in c->b->in. */
            if (data != buf_start(&c->b->in)) {
                if (conn_stash(c, data, len) < 0)
                    goto oom;
            }
            data = NULL;
            if (!conn_busy(c))
                goto oom;
            c->b->chunked = calloc(1, sizeof *c->b->chunked);
            if (!c->b->chunked)
                goto oom;
            http_chunked_init(&c->b->chunked->dec);
            c->b->chunked->head_len = head_len;
            if (req.expect_continue && !c->http10)
                reply_continue(c);
            continue;
        }
        uint64_t total = head_len + (uint64_t)(req.content_length > 0 ? req.content_length : 0);
        if (len < total) {
            if (req.expect_continue && !c->http10 && len == head_len)
                reply_continue(c);
            if (!conn_busy(c))
                goto oom;
            c->b->need = total;
            conn_set_deadline(c, DL_BODY, s->cfg->body_timeout_ms);
            break;
        }
        c->b->need = 0;
        if (conn_dispatch(c, &req, data + head_len, (size_t)(total - head_len)) < 0)
            return -1;
        if (data == buf_start(&c->b->in)) {
            buf_consume(&c->b->in, (size_t)total);
            data = NULL;
        } else {
            data += total;
            len -= (size_t)total;
        }
        if (len == 0 && data != NULL)
            data = NULL;
    }
    /* Keep what is left for the next read. */
    if (data != NULL && data != buf_start(&c->b->in) && len > 0) {
        if (c->state == CONN_READY || c->state == CONN_BUSY) {
            if (conn_stash(c, data, len) < 0)
                goto oom;
        }
    }
    return 0;
oom:
    log_warnx("out of memory buffering a request; closing connection");
    conn_close(c);
    return -1;
}

/*
 * After a read of an edge-triggered socket (conn_ev_flags): run the
 * callback again if the socket may still hold bytes no new edge will
 * announce: the read filled all it asked for, or the peer's end of stream
 * (EV_CLOSED) waits behind what was read. Only while the event still
 * watches readability (else the next conn_watch re-arms it, and epoll
 * polls the socket again then).
 */
static void conn_read_again(struct conn *c, int more) {
    if (more && !c->ev_write && (event_get_events(&c->ev) & EV_ET) &&
        event_pending(&c->ev, EV_READ, NULL))
        event_active(&c->ev, EV_READ, 0);
}

/* Returns -1 if c was closed. what: the event's flags (EV_CLOSED: the peer
 * ended its stream, under an edge-triggered read interest). */
static int conn_on_readable(struct conn *c, short what) {
    struct server *s = c->srv;
    ssize_t n;
    size_t asked;
    if (c->state == CONN_LINGER) {
        n = c->io->read(c->fd, c->io_ctx, s->rbuf, SERVER_RBUF_SIZE);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            conn_close(c);
            return -1;
        }
        conn_read_again(c, n == SERVER_RBUF_SIZE || (n > 0 && (what & EV_CLOSED)));
        return 0;
    }
    if (c->state == CONN_BUSY || c->state == CONN_CLOSING) {
        /* Read while an answer is pending to see the client leave (that
         * cancels the pending work); keep pipelined bytes, within bounds. */
        if (!conn_busy(c) || buf_reserve(&c->b->in, 4096) < 0) {
            conn_close(c);
            return -1;
        }
        asked = c->b->in.cap - c->b->in.off - c->b->in.len;
        n = c->io->read(c->fd, c->io_ctx, buf_start(&c->b->in) + c->b->in.len, asked);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            conn_close(c);
            return -1;
        }
        if (n > 0) {
            s->metrics.bytes_in += (uint64_t)n;
            c->b->in.len += (size_t)n;
            if (c->role == CONN_ROLE_TAKEN && c->as.on_input(c->cancel_arg, c) < 0)
                return -1; /* taken over (conn_takeover): c may be gone */
            if (c->b->in.len >= BUSY_INPUT_MAX) {
                event_del(&c->ev);
                c->reading_paused = 1;
            }
            conn_read_again(c, (size_t)n == asked || (what & EV_CLOSED));
        } else if (c->io->pending) {
            c->io_flip = c->io->want(c->io_ctx, 0) == IO_WANT_WRITE;
        }
        return 0;
    }
    if (c->b->in.len == 0) {
        asked = SERVER_RBUF_SIZE;
        n = c->io->read(c->fd, c->io_ctx, s->rbuf, asked);
        if (n > 0) {
            s->metrics.bytes_in += (uint64_t)n;
            if (conn_process(c, s->rbuf, (size_t)n) < 0)
                return -1;
        }
    } else {
        size_t want = SERVER_RBUF_SIZE;
        if (c->b->need > c->b->in.len && c->b->need - c->b->in.len > want)
            want = c->b->need - c->b->in.len;
        if (buf_reserve(&c->b->in, want) < 0) {
            conn_close(c);
            return -1;
        }
        asked = want;
        n = c->io->read(c->fd, c->io_ctx, buf_start(&c->b->in) + c->b->in.len, want);
        if (n > 0) {
            s->metrics.bytes_in += (uint64_t)n;
            c->b->in.len += (size_t)n;
            if (conn_process(c, NULL, 0) < 0)
                return -1;
        }
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        conn_close(c);
        return -1;
    }
    if (n < 0 && c->io->pending)
        c->io_flip = c->io->want(c->io_ctx, 0) == IO_WANT_WRITE;
    int more = n > 0 && ((size_t)n == asked || (what & EV_CLOSED));
    if (conn_pump(c) < 0)
        return -1;
    conn_read_again(c, more);
    return 0;
}

/* A TLS client that spoke plain HTTP gets told so in plain HTTP (as nginx does). */
#define PLAIN_ON_TLS_BODY "{\"error\": \"plain HTTP request sent to the HTTPS port\", \"status\": 400}\n"
static const char plain_on_tls[] =
    "HTTP/1.1 400 Bad Request\r\nServer: awaitd\r\nContent-Type: application/json\r\n"
    "Content-Length: 70\r\nConnection: close\r\n\r\n" PLAIN_ON_TLS_BODY;
_Static_assert(sizeof PLAIN_ON_TLS_BODY - 1 == 70, "Content-Length of plain_on_tls");

/* Drive the TLS handshake; once done, the connection reads requests like
 * any other. Returns -1 if c was closed. */
static int conn_handshake(struct conn *c) {
    struct server *s = c->srv;
    enum tls_fail why = TLS_FAIL_OTHER;
    const char *detail = "";
    int r = tls_handshake(c->io_ctx, &why, &detail);
    if (r == 0) {
        c->io_flip = c->io->want(c->io_ctx, 0) == IO_WANT_WRITE;
        if (conn_watch(c, 0) < 0) {
            conn_close(c);
            return -1;
        }
        return 0;
    }
    if (r < 0) {
        s->metrics.tls_handshake_failures[why]++;
        if (log_level_current >= LOG_LVL_DEBUG) {
            char peer[INET6_ADDRSTRLEN];
            log_debug("TLS handshake with %s failed (%s): %s", conn_peer_text(c, peer, sizeof peer),
                      tls_fail_names[why], detail);
        }
        if (r == -2) {
            ssize_t w = send(c->fd, plain_on_tls, sizeof plain_on_tls - 1, MSG_NOSIGNAL);
            (void)w;
        }
        conn_close(c);
        return -1;
    }
    s->metrics.tls_handshakes++;
    if (tls_conn_resumed(c->io_ctx))
        s->metrics.tls_resumed++;
    c->state = CONN_READY;
    c->io_flip = 0;
    if (tls_conn_h2(c->io_ctx))
        return h2_takeover(c, NULL, 0); /* ALPN chose h2 */
    if (conn_watch(c, 0) < 0) {
        conn_close(c);
        return -1;
    }
    conn_set_deadline(c, DL_HEADER, s->cfg->header_timeout_ms);
    /* A client usually sends its request right behind its Finished, and
     * read-ahead may already hold it: no readiness would announce it. */
    return conn_on_readable(c, 0);
}

static void conn_on_event(evutil_socket_t fd, short what, void *arg) {
    struct conn *c = arg;
    struct server *s = c->srv;
    int r;
    observed.c = NULL;
    c->io_flip = 0;
    if (c->ev_write) {
        if (c->deadline_kind == DL_WRITE)
            conn_set_deadline(c, DL_WRITE, s->cfg->write_timeout_ms);
        /* Requests that waited behind the output go once it drains. */
        if (c->state == CONN_READY && c->b->in.len > 0)
            c->backlogged = 1;
        r = conn_pump(c);
    } else if (c->state == CONN_HANDSHAKE) {
        r = conn_handshake(c);
    } else {
        r = conn_on_readable(c, what);
    }
    if (r == 0 && c->io->pending)
        conn_io_rearm(c);
    server_timers_sync(s);
}

static void conn_on_deadline(struct timer *t) {
    struct conn *c = container_of(t, struct conn, deadline);
    struct metrics *m = &c->srv->metrics;
    switch (c->deadline_kind) {
    case DL_HEADER:
    case DL_BODY:
        m->timeouts[c->deadline_kind == DL_HEADER ? 0 : 1]++;
        if (c->b->in.len > 0 && c->b->out.len == 0 && !c->b->stream && c->state == CONN_READY) {
            /* A request was started: say why we hang up. */
            c->keep_alive = 0;
            free(c->b->chunked);
            c->b->chunked = NULL;
            c->b->need = 0;
            buf_free(&c->b->in);
            reply_error(c, 408, "request %s not received in time",
                        c->deadline_kind == DL_HEADER ? "head" : "body");
            c->state = CONN_CLOSING;
            c->deadline_kind = DL_NONE;
            conn_send(c);
            return;
        }
        break;
    case DL_KEEPALIVE:
        if (c->start_us / 1000 > c->srv->wheel.now) {
            /* Answered since it was placed: the deadline moved on (conn_set_keepalive). */
            timer_add(&c->srv->wheel, t, c->start_us / 1000);
            return;
        }
        m->timeouts[2]++;
        break;
    case DL_WRITE:
        m->timeouts[3]++;
        break;
    case DL_HANDSHAKE:
        m->tls_handshake_failures[TLS_FAIL_TIMEOUT]++;
        break;
    default:
        break;
    }
    conn_close(c);
}
