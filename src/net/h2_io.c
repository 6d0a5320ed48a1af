/*
 * h2_io: an HTTP/2 connection's socket. A readable socket is read into the
 * server's shared read buffer and fed to nghttp2 (h2_recv, H2_READ_TURN
 * per readiness); what nghttp2 frames goes into c->b->out and is written
 * at once (h2_send), up to max_output, past which nothing more is read or
 * framed. After each turn h2_settle decides what follows: writability
 * watched while output waits, a lingering close after a GOAWAY, and the
 * one deadline (write_timeout, [http2] idle_timeout, body_timeout while a
 * request arrives, ping_timeout while streams wait), which h2_on_deadline
 * acts on. h2_send and h2_recv return -1 once c was closed: the caller
 * touches nothing more.
 *
 * The ways in: h2_takeover (the preface, or ALPN's h2) and h2_upgrade (an
 * HTTP/1.1 request asking for h2c: 101, then that request is stream 1);
 * both make the session (h2_start, h2.c) and feed it what was read already
 * (h2_go). The ways out: h2_drain (GOAWAY, close once the open streams are
 * done) and h2_listener_gone (a reload closed the listener).
 * Private declarations: h2_int.h.
 */
#include "net/h2.h"

#include "core/buf.h"
#include "core/config.h"
#include "core/timer.h"
#include "http/http_parse.h"
#include "net/conn.h"
#include "net/h2_int.h"
#include "net/io.h"
#include "net/server.h"
#include "net/tls_server.h"

#include <errno.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* Bytes read per readiness before the other connections' turn. */
#define H2_READ_TURN (256 * 1024)
/* A closing connection waits this long for the client to read its GOAWAY. */
#define H2_LINGER_MS 2000

/* Write what nghttp2 has and what waits in c->b->out. 1 if bytes went, 0 if
 * none, -1 if c was closed. */
static int h2_send(struct h2_session *h) {
    struct conn *c = h->c;
    struct server *s = c->srv;
    int progress = 0;
    for (;;) {
        while (!h->closing && c->b->out.len < s->cfg->max_output) {
            const uint8_t *d;
            h->in_io++;
            ssize_t n = nghttp2_session_mem_send(h->ng, &d);
            h->in_io--;
            if (n < 0) {
                h2_fatal(h, n);
                break;
            }
            if (n == 0)
                break;
            if (buf_append(&c->b->out, d, (size_t)n) < 0) {
                conn_close(c);
                return -1;
            }
        }
        if (c->b->out.len == 0)
            break;
        ssize_t w = c->io->write(c->fd, c->io_ctx, buf_start(&c->b->out), c->b->out.len);
        if (w > 0) {
            s->metrics.bytes_out += (uint64_t)w;
            buf_consume(&c->b->out, (size_t)w);
            progress = 1;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        conn_close(c);
        return -1;
    }
    if (c->b->out.len == 0 && c->b->out.data)
        buf_free(&c->b->out);
    return progress;
}

/* Read and feed nghttp2 until the socket has nothing, within a turn. */
static int h2_recv(struct h2_session *h) {
    struct conn *c = h->c;
    struct server *s = c->srv;
    size_t turn = 0;
    for (;;) {
        ssize_t n = c->io->read(c->fd, c->io_ctx, s->rbuf, SERVER_RBUF_SIZE);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            conn_close(c);
            return -1;
        }
        if (n < 0) {
            h->read_wants_write = c->io->pending && c->io->want(c->io_ctx, 0) == IO_WANT_WRITE;
            return 0;
        }
        s->metrics.bytes_in += (uint64_t)n;
        if (h->lingering || h->closing)
            continue; /* the answer is given: read to the client's close */
        h->in_io++;
        ssize_t rv = nghttp2_session_mem_recv(h->ng, (const uint8_t *)s->rbuf, (size_t)n);
        h->in_io--;
        if (rv < 0) {
            h2_fatal(h, rv);
            return 0;
        }
        turn += (size_t)n;
        if (h2_send(h) < 0)
            return -1;
        if (c->b->out.len > s->cfg->max_output)
            return 0; /* the client does not read: neither do we */
        if (turn >= H2_READ_TURN) {
            event_active(&c->ev, EV_READ, 0);
            return 0;
        }
    }
}

/* After I/O: close, linger, or watch what is needed now; set the deadline. */
static int h2_settle(struct h2_session *h, int progress) {
    struct conn *c = h->c;
    struct server *s = c->srv;
    if (!h->closing && !nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng)) {
        h->closing = 1; /* nghttp2 sent its GOAWAY (an error, or the drain is done) */
    }
    if (h->closing && c->b->out.len == 0 && !h->lingering) {
        /* GOAWAY written: shut our side, read until the client closes. */
        if (c->io == &io_tls)
            tls_close_notify(c->io_ctx);
        shutdown(c->fd, SHUT_WR);
        h->lingering = 1;
        c->deadline_kind = DL_LINGER;
        server_timer_in(s, &c->deadline, H2_LINGER_MS);
    }
    int want_write = c->b->out.len > 0 || h->read_wants_write;
    if (want_write != h->wev_on) {
        if (want_write)
            event_add(&h->wev, NULL);
        else
            event_del(&h->wev);
        h->wev_on = (uint8_t)want_write;
    }
    int read_off = c->b->out.len > s->cfg->max_output;
    if (read_off != h->read_off) {
        if (read_off)
            event_del(&c->ev);
        else
            event_add(&c->ev, NULL);
        h->read_off = (uint8_t)read_off;
    }
    if (h->lingering)
        return 0;
    if (want_write) {
        if (c->deadline_kind != DL_WRITE || progress) {
            c->deadline_kind = DL_WRITE;
            server_timer_in(s, &c->deadline, s->cfg->write_timeout_ms);
        }
    } else if (h->nstreams == 0) {
        if (c->deadline_kind != DL_KEEPALIVE || progress) {
            c->deadline_kind = DL_KEEPALIVE;
            server_timer_in(s, &c->deadline, s->cfg->h2_idle_timeout_ms);
        }
    } else if (h->nreceiving > 0) {
        /* A request still arriving: as HTTP/1.1's body_timeout (slowloris). */
        if (c->deadline_kind != DL_BODY || progress) {
            c->deadline_kind = DL_BODY;
            server_timer_in(s, &c->deadline, s->cfg->body_timeout_ms);
        }
    } else if (s->cfg->h2_ping_timeout_ms) {
        /* Streams wait (long polls): a silent peer is asked whether it is there. */
        if ((c->deadline_kind != DL_PING && c->deadline_kind != DL_PING_ACK) || progress) {
            c->deadline_kind = DL_PING;
            server_timer_in(s, &c->deadline, s->cfg->h2_ping_timeout_ms);
        }
    } else if (c->deadline_kind != DL_NONE) {
        c->deadline_kind = DL_NONE;
        timer_cancel(&s->wheel, &c->deadline);
    }
    return 0;
}

void h2_on_read(evutil_socket_t fd, short what, void *arg) {
    struct conn *c = arg;
    struct h2_session *h = c->as.h2;
    struct server *s = c->srv;
    if (h2_recv(h) == 0) {
        int p = h2_send(h);
        if (p >= 0)
            h2_settle(h, 1);
    }
    server_timers_sync(s);
}

void h2_on_write(evutil_socket_t fd, short what, void *arg) {
    struct h2_session *h = arg;
    struct server *s = h->c->srv;
    h->kicked = 0;
    if (h->read_wants_write) {
        h->read_wants_write = 0;
        if (h2_recv(h) < 0) {
            server_timers_sync(s);
            return;
        }
    }
    int p = h2_send(h);
    if (p >= 0)
        h2_settle(h, p);
    server_timers_sync(s);
}

void h2_on_deadline(struct timer *t) {
    struct conn *c = container_of(t, struct conn, deadline);
    struct h2_session *h = c->as.h2;
    struct server *s = c->srv;
    if (c->deadline_kind == DL_PING) {
        nghttp2_submit_ping(h->ng, NGHTTP2_FLAG_NONE, NULL);
        if (h2_send(h) < 0)
            return;
        c->deadline_kind = DL_PING_ACK;
        server_timer_in(s, &c->deadline, s->cfg->h2_ping_timeout_ms);
        return;
    }
    if (c->deadline_kind == DL_PING_ACK) {
        count_close(h, H2_CLOSE_PING_TIMEOUT);
    } else if (c->deadline_kind == DL_WRITE) {
        s->metrics.timeouts[3]++;
        count_close(h, H2_CLOSE_STALLED);
    } else if (c->deadline_kind == DL_KEEPALIVE || c->deadline_kind == DL_BODY) {
        s->metrics.timeouts[c->deadline_kind == DL_BODY ? 1 : 2]++;
        nghttp2_session_terminate_session(h->ng, NGHTTP2_NO_ERROR);
        if (h2_send(h) < 0) /* best effort: the GOAWAY, then close */
            return;
    }
    conn_close(c);
}

/* Feed what was read already, then send and watch as any HTTP/2 connection. */
static void h2_go(struct h2_session *h, const char *data, size_t len) {
    struct conn *c = h->c;
    struct server *s = c->srv;
    if (len && !h->closing) {
        h->in_io++;
        ssize_t r = nghttp2_session_mem_recv(h->ng, (const uint8_t *)data, len);
        h->in_io--;
        if (r < 0)
            h2_fatal(h, r);
    }
    buf_free(&c->b->in);
    int p = h2_send(h);
    if (p >= 0 && h2_settle(h, 1) == 0 && c->io->pending && c->io->pending(c->io_ctx))
        event_active(&c->ev, EV_READ, 0); /* TLS read ahead what follows the handshake */
    server_timers_sync(s);
}

int h2_takeover(struct conn *c, const char *data, size_t len) {
    struct h2_session *h = h2_start(c);
    if (h)
        h2_go(h, data, len);
    return -1;
}

/* Does the field's comma-separated value hold this token (case-insensitive)? */
static int has_token(const struct http_header *f, const char *tok) {
    size_t n = strlen(tok);
    const char *p = f->value, *e = f->value + f->value_len;
    while (p < e) {
        while (p < e && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *t = p;
        while (p < e && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        if ((size_t)(p - t) == n && strncasecmp(t, tok, n) == 0)
            return 1;
    }
    return 0;
}

/* base64url (RFC 4648 5, padding optional) into out; its length, or -1. */
static ssize_t b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap) {
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        int v = ch >= 'A' && ch <= 'Z'   ? ch - 'A'
                : ch >= 'a' && ch <= 'z' ? ch - 'a' + 26
                : ch >= '0' && ch <= '9' ? ch - '0' + 52
                : ch == '-' || ch == '+' ? 62
                : ch == '_' || ch == '/' ? 63
                : ch == '='              ? -2
                                         : -1;
        if (v == -2)
            break;
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap)
                return -1;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return (ssize_t)o;
}

int h2_upgrade_wanted(const struct conn *c, const struct http_request *req) {
    if (!c->srv->cfg->h2_enabled || c->io != &io_plain || req->chunked ||
        req->content_length > 0)
        return 0;
    const struct http_header *up = http_find_header(req->headers, req->nheaders, "upgrade");
    const struct http_header *set = http_find_header(req->headers, req->nheaders, "http2-settings");
    return up && set && has_token(up, "h2c");
}

int h2_upgrade(struct conn *c, const struct http_request *req, const char *rest, size_t len) {
    uint8_t settings[256];
    const struct http_header *sf = http_find_header(req->headers, req->nheaders, "http2-settings");
    ssize_t n = b64url_decode(sf->value, sf->value_len, settings, sizeof settings);
    struct h2_session *h = h2_start(c);
    if (!h)
        return -1;
    static const char switching[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                                    "Upgrade: h2c\r\n\r\n";
    if (buf_append(&c->b->out, switching, sizeof switching - 1) < 0) {
        conn_close(c);
        return -1;
    }
    c->srv->metrics.requests[1]++;
    int rv = n < 0 ? NGHTTP2_ERR_PROTO
                   : nghttp2_session_upgrade2(h->ng, settings, (size_t)n,
                                              req->method == HTTP_M_HEAD, NULL);
    struct h2_stream *st = rv == 0 ? h2_st_new(h, 1) : NULL;
    if (!st) {
        h2_fatal(h, rv ? rv : NGHTTP2_ERR_NOMEM);
        h2_go(h, NULL, 0);
        return -1;
    }
    /* The HTTP/1.1 request is stream 1's (RFC 7540 3.2), half-closed already. */
    int r = h2_hdr_add(st, ":method", 7, req->method_str, req->method_len);
    r |= h2_hdr_add(st, ":path", 5, req->target, req->target_len);
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *f = &req->headers[i];
        char name[64];
        if (f->name_len >= sizeof name || is_conn_specific(f->name, f->name_len) ||
            (f->name_len == 14 && strncasecmp(f->name, "http2-settings", 14) == 0))
            continue;
        for (size_t j = 0; j < f->name_len; j++)
            name[j] = (char)(f->name[j] >= 'A' && f->name[j] <= 'Z' ? f->name[j] + 32 : f->name[j]);
        r |= h2_hdr_add(st, name, f->name_len, f->value, f->value_len);
    }
    if (r < 0)
        h2_st_reset(st, NGHTTP2_INTERNAL_ERROR);
    else
        h->upgraded = st;
    h2_go(h, rest, len);
    return -1;
}

int h2_listener_gone(struct conn *c, const void *l) {
    struct h2_session *h = c->as.h2;
    if (h->listener != l)
        return 0;
    h->listener = NULL;
    return 1;
}

void h2_drain(struct conn *c) {
    struct h2_session *h = c->as.h2;
    if (h->closing)
        return;
    nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->ng),
                          NGHTTP2_NO_ERROR, NULL, 0);
    h->kicked = 0;
    h2_kick(h);
}
