/*
 * probe_ws: go-httpbin's /websocket/echo?max_fragment_size=&max_message_size=
 * (RFC 6455). The handshake is checked and answered 101 here; then the
 * connection is taken over (conn_takeover) and every text or binary
 * message the client sends comes back whole, in frames of at most
 * max_fragment_size; pings are answered with pongs; a close is answered
 * with a close of the same code; a protocol error, bad UTF-8 in text or a
 * message over max_message_size ends it with 1002, 1007 or 1009. Frames
 * are read by http/ws_frame.c (pure). A connection lasts at most
 * [probe] max_delay (go-httpbin: its max duration), then is closed with
 * 1001.
 */
#include "api/probe_int.h"

#include "core/base64.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/timer.h"
#include "http/http_parse.h"
#include "http/http_query.h"
#include "http/ws_frame.h"
#include "net/http_reply.h"
#include "net/server.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct ws_echo {
    struct timer t; /* at once: the bytes behind the handshake; then the lifetime */
    struct conn *c;
    struct probe *p;
    struct ws_reader rd;
    struct buf msg; /* the message being received */
    uint64_t max_fragment;
    int started;
};

static void ws_free(struct ws_echo *ws) {
    timer_cancel(&ws->c->srv->wheel, &ws->t);
    ws->p->delays_pending--;
    buf_free(&ws->msg);
    free(ws);
}

static void ws_cancel(void *arg) {
    ws_free(arg);
}

static int frame_out(struct conn *c, int fin, int opcode, const void *data, size_t len) {
    unsigned char head[10];
    size_t hl = ws_head_write(head, fin, opcode, len);
    struct buf *o = conn_out(c);
    int r = buf_append(o, head, hl) | buf_append(o, data, len);
    if (!r)
        c->b->alog.bytes += hl + len;
    return r;
}

/* Send a close (code, reason) and end the connection: it closes once the
 * close has gone (and the client's close, if it comes, was read). */
static int ws_end(struct ws_echo *ws, int code, const char *why) {
    struct conn *c = ws->c;
    unsigned char pl[125];
    size_t n = 0;
    if (code != WS_CLOSE_NO_STATUS) {
        pl[0] = (unsigned char)(code >> 8);
        pl[1] = (unsigned char)code;
        n = 2;
        if (why) {
            size_t wl = strlen(why);
            if (wl > sizeof pl - 2)
                wl = sizeof pl - 2;
            memcpy(pl + 2, why, wl);
            n += wl;
        }
    }
    if (frame_out(c, 1, WS_OP_CLOSE, pl, n) < 0)
        conn_fail(c);
    ws_free(ws);
    c->keep_alive = 0;
    buf_free(&c->b->in);
    conn_done(c);
    return -1;
}

/* The whole message back, in frames of at most max_fragment (go-httpbin). */
static int echo(struct ws_echo *ws, int binary) {
    const char *d = buf_start(&ws->msg);
    size_t len = ws->msg.len, off = 0;
    int opcode = binary ? WS_OP_BINARY : WS_OP_TEXT, r = 0;
    do {
        size_t k = len - off > ws->max_fragment ? (size_t)ws->max_fragment : len - off;
        r |= frame_out(ws->c, off + k == len, opcode, d + off, k);
        opcode = WS_OP_CONT;
        off += k;
    } while (off < len);
    buf_reset(&ws->msg);
    if (ws->msg.cap > 65536)
        buf_free(&ws->msg); /* a large message's memory goes back */
    return r;
}

/* Everything in c->b->in: events answered, then sent. -1 when c may be gone. */
static int ws_input(void *arg, struct conn *c) {
    struct ws_echo *ws = arg;
    unsigned char *p = (unsigned char *)buf_start(&c->b->in);
    size_t n = c->b->in.len, off = 0;
    for (;;) {
        struct ws_event ev;
        off += ws_read(&ws->rd, p + off, n - off, &ev);
        if (ev.kind == WS_EV_NONE)
            break;
        int r = 0;
        switch (ev.kind) {
        case WS_EV_DATA:
            r = buf_append(&ws->msg, ev.data, ev.len);
            break;
        case WS_EV_END:
            r = echo(ws, ev.binary);
            break;
        case WS_EV_PING:
            r = frame_out(c, 1, WS_OP_PONG, ev.data, ev.len);
            break;
        case WS_EV_CLOSE:
            return ws_end(ws, ev.code, NULL); /* the client's code back (RFC 6455 5.5.1) */
        case WS_EV_ERROR:
            return ws_end(ws, ev.code, ev.why);
        default:
            break;
        }
        if (r) /* out of memory: say so and end */
            return ws_end(ws, 1011, "out of memory");
    }
    buf_consume(&c->b->in, off);
    return conn_flush(c);
}

static void ws_fire(struct timer *t) {
    struct ws_echo *ws = container_of(t, struct ws_echo, t);
    struct conn *c = ws->c;
    if (!ws->started) {
        /* The handler has returned: frames that came with the handshake
         * are in c->b->in. Then the lifetime runs. */
        ws->started = 1;
        server_timer_in(c->srv, &ws->t, c->srv->cfg->max_delay_ms);
        if (c->b->in.len)
            ws_input(ws, c);
        return;
    }
    ws_end(ws, WS_CLOSE_GOING_AWAY, "max_delay reached");
}

/* A token in a comma-separated header value (case-insensitive). */
static int has_token(const struct http_header *h, const char *tok) {
    if (!h)
        return 0;
    size_t tl = strlen(tok);
    const char *s = h->value, *e = h->value + h->value_len;
    while (s < e) {
        while (s < e && (*s == ' ' || *s == '\t' || *s == ','))
            s++;
        const char *t = s;
        while (t < e && *t != ',')
            t++;
        const char *te = t;
        while (te > s && (te[-1] == ' ' || te[-1] == '\t'))
            te--;
        if ((size_t)(te - s) == tl && strncasecmp(s, tok, tl) == 0)
            return 1;
        s = t;
    }
    return 0;
}

static int64_t size_param(const struct http_request *req, const char *name, int64_t dflt,
                          uint64_t max) {
    size_t n;
    const char *v = http_query_get(req, name, &n);
    if (!v)
        return dflt;
    int64_t k = http_parse_uint(v, n, max);
    return k < 1 ? -1 : k;
}

PROBE_HANDLER(probe_websocket_echo) {
    struct probe *p = ctx;
    (void)body, (void)body_len;
    struct server *s = c->srv;
    uint64_t max = s->cfg->max_bytes ? s->cfg->max_bytes : 1;
    int64_t maxm = size_param(req, "max_message_size", (int64_t)max, max);
    int64_t maxf = size_param(req, "max_fragment_size", (int64_t)(max / 2 ? max / 2 : 1), max);
    if (maxm < 0)
        return reply_fail(c, 400, "max_message_size must be a whole number from 1 to %llu (max_bytes)",
                          (unsigned long long)max);
    if (maxf < 0)
        return reply_fail(c, 400, "max_fragment_size must be a whole number from 1 to %llu (max_bytes)",
                          (unsigned long long)max);
    if (!http_query_get(req, "max_fragment_size", &(size_t){0}) && maxf > maxm)
        maxf = maxm; /* only the message size given: fragments no larger */
    if (maxf > maxm)
        return reply_fail(c, 400, "max_fragment_size %lld must not be over max_message_size %lld",
                          (long long)maxf, (long long)maxm);
    /* RFC 6455 4.2.1: the opening handshake. */
    if (req->method != HTTP_M_GET || c->http10)
        return reply_fail(c, 400, "a WebSocket handshake is a GET in HTTP/1.1");
    if (!has_token(probe_header(req, "upgrade"), "websocket"))
        return reply_fail(c, 400, "missing Upgrade: websocket");
    if (!has_token(probe_header(req, "connection"), "upgrade"))
        return reply_fail(c, 400, "missing Connection: Upgrade");
    const struct http_header *ver = probe_header(req, "sec-websocket-version");
    if (!ver || ver->value_len != 2 || memcmp(ver->value, "13", 2) != 0) {
        reply_error_hdr(c, 400, "Sec-WebSocket-Version: 13\r\n",
                        "only WebSocket version 13 is supported (Sec-WebSocket-Version)");
        return HANDLER_DONE;
    }
    const struct http_header *key = probe_header(req, "sec-websocket-key");
    unsigned char raw[32];
    if (!key || key->value_len != 24 || base64_decode(key->value, 24, raw) != 16)
        return reply_fail(c, 400, "Sec-WebSocket-Key must be 16 bytes in base64");
    if (s->draining)
        return reply_fail(c, 503, "shutting down");
    unsigned char sha[EVP_MAX_MD_SIZE], in[24 + sizeof WS_GUID];
    unsigned shal = 0;
    memcpy(in, key->value, 24);
    memcpy(in + 24, WS_GUID, sizeof WS_GUID - 1);
    EVP_Digest(in, 24 + sizeof WS_GUID - 1, sha, &shal, EVP_sha1(), NULL);
    struct buf extra = BUF_INIT;
    int r = buf_appends(&extra, "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
    r |= base64_append(&extra, sha, shal);
    r |= buf_appends(&extra, "\r\n");
    r |= buf_append(&extra, "", 1);
    struct ws_echo *ws = r ? NULL : calloc(1, sizeof *ws);
    if (!ws) {
        buf_free(&extra);
        return probe_oom(p, c);
    }
    c->keep_alive = 1; /* no Connection: close on the 101 */
    c->head_only = 0;
    r = reply_head(c, 101, NULL, -1, buf_start(&extra));
    buf_free(&extra);
    if (r < 0) {
        free(ws);
        return HANDLER_DONE;
    }
    ws->c = c;
    ws->p = p;
    ws->max_fragment = (uint64_t)maxf;
    ws_reader_init(&ws->rd, (uint64_t)maxf, (uint64_t)maxm);
    timer_init(&ws->t, ws_fire);
    server_timer_in(s, &ws->t, 0);
    p->delays_pending++;
    conn_pending(c, ws_cancel, ws);
    conn_takeover(c, ws_input);
    return HANDLER_PENDING;
}
