/*
 * conn_write: a connection's bytes out. An answer is built in conn_out():
 * the server's shared write buffer (wbuf) while the connection has nothing
 * queued, else its own (c->b->out), so bytes leave in order. conn_flush
 * (conn_send) writes at once and keeps what the socket does not take,
 * under the write deadline, watching writability meanwhile (input waits:
 * backpressure). A large body is not built: its producer (conn_stream) is
 * asked for STREAM_CHUNK at a time whenever the output has gone, at most
 * STREAM_TURN per connection per loop turn.
 *
 * Output is bounded: conn_pump sends, and answers the requests that waited
 * in c->b->in behind the output (conn_read.c parsed none past the bound),
 * a loop, never recursion. Once the output has drained, conn_after_write
 * decides what follows: idle (the busy struct goes back, the keep-alive
 * deadline runs), the next request, or a lingering close. Each function
 * that returns int returns -1 once c has been closed.
 *
 * conn_observe (an answer is complete: the latency histogram) lives here
 * with the keep-alive deadline that reuses its clock read.
 */
#include "net/conn.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/timer.h"
#include "net/access_log.h"
#include "net/conn_int.h"
#include "net/h2.h"
#include "net/io.h"
#include "net/metrics.h"
#include "net/server.h"
#include "net/tls_server.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

/* How long a lingering close waits for the client to finish sending. */
#define LINGER_MS 2000
/* A body producer is asked for about this much at a time... */
#define STREAM_CHUNK 65536
/* ...and for at most this much per loop turn before the others' turn. */
#define STREAM_TURN (256 * 1024)

struct conn_stream {
    conn_produce_fn produce;
    void (*release)(void *arg);
    void *arg;
};

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
_Thread_local struct conn_observed conn_observed;

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
    if (conn_observed.c == c) {
        conn_observed.c = NULL;
        now_ms = conn_observed.us / 1000;
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

/* The current request's answer is complete: into the latency histogram. */
void conn_observe(struct conn *c) {
    uint64_t now = clock_now_us();
    metrics_request_observe(&c->srv->metrics, c->route_class, now - c->start_us);
    conn_observed.c = c;
    conn_observed.us = now;
}

/* The body producer is done (or the connection closes): let it go. */
void conn_stream_end(struct conn *c) {
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
    struct conn_stream *st = conn_busy_own(c) ? malloc(sizeof *st) : NULL;
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

/* conn_out when c's bytes cannot go to the shared buffer: its own. */
static __attribute__((noinline)) struct buf *conn_out_own(struct conn *c) {
    if (!conn_busy_own(c)) {
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
int conn_send(struct conn *c) {
    struct server *s = c->srv;
    if (s->wbuf_owner == c) {
        int r = 0;
        if (c->b->out.len == 0) {
            r = conn_write_buf(c, &s->wbuf);
            if (r == 1 && (!conn_busy_own(c) ||
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
int conn_pump(struct conn *c) {
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
