/*
 * conn_read: a connection's bytes in, up to the handler. A readable socket
 * is read into the server's shared read buffer (rbuf); every complete
 * request in it is parsed and dispatched from there, and only leftover
 * bytes are copied into the connection's own input (c->b->in). A request
 * whose body is incomplete waits there (Content-Length: c->b->need;
 * chunked: decoded in place, struct conn_chunked), under the body deadline.
 *
 * Contract with the rest of conn*.c (conn_int.h): conn_on_readable reads
 * once for one event and answers what it read (conn_process), then lets
 * the output go (conn_pump); conn_process parses only while the output is
 * within its bound (else the connection is backlogged and conn_pump calls
 * it again once the output has drained). On a plain socket the read
 * interest is edge-triggered: a read that may have left bytes behind runs
 * the callback again (conn_read_again). Framing errors are answered with
 * their status and close the connection (conn_reject). Each function
 * returns -1 once c has been closed: the caller touches nothing.
 *
 * The TLS handshake (conn_handshake) comes first on a [tls] listener; a
 * client that speaks plain HTTP there is told so in plain HTTP.
 */
#include "net/conn.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "http/http_parse.h"
#include "net/conn_int.h"
#include "net/h2.h"
#include "net/http_reply.h"
#include "net/io.h"
#include "net/server.h"
#include "net/tls_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <sys/socket.h>

/* Pipelined input buffered behind a pending answer before reading pauses. */
#define BUSY_INPUT_MAX 65536

struct conn_chunked {
    struct http_chunked dec;
    size_t head_len; /* bytes of the head at the front of in */
    size_t body_len; /* decoded body bytes after the head */
};

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

/* Copy input not yet consumed into the connection's own buffer. */
static int conn_stash(struct conn *c, const char *data, size_t len) {
    if (data == NULL || len == 0)
        return 0;
    if (!conn_busy_own(c))
        return -1;
    return buf_append(&c->b->in, data, len);
}

/* Answer a framing error and close after it. */
static void conn_reject(struct conn *c, int status, const char *why) {
    c->keep_alive = 0;
    c->srv->metrics.parse_errors++;
    c->start_us = clock_now_us();
    if (c->srv->alog) {
        conn_busy_own(c); /* no memory: the line may say less */
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
        conn_busy_own(c); /* the line's fields; no memory: it may say less */
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
int conn_process(struct conn *c, const char *data, size_t len) {
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
            if (!conn_busy_own(c))
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
            if (!conn_busy_own(c))
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
int conn_on_readable(struct conn *c, short what) {
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
        if (!conn_busy_own(c) || buf_reserve(&c->b->in, 4096) < 0) {
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
int conn_handshake(struct conn *c) {
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
