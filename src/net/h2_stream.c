/*
 * h2_stream: an HTTP/2 stream as a connection. Each stream is a struct conn
 * of its own (no socket: h2_stream set; its busy struct embedded), made
 * when its HEADERS arrive (h2_st_new; h2c's stream 1 from the upgraded
 * HTTP/1.1 request) and freed when nghttp2 closes it or the connection
 * goes (h2_st_free: its cancel callback and producer first, a 499 in the
 * access log if unanswered). Once the request is complete
 * (h2_st_dispatch) a struct http_request is built from its header block
 * (st_request) and handed to the same handler as HTTP/1.1's.
 *
 * The handler answers into conn_out() as on HTTP/1.1, as an HTTP/1.0
 * connection would (no chunked framing); st_take turns that answer's head
 * into HEADERS and the rest into the stream's data, which nghttp2 pulls as
 * DATA (st_read, which also asks a conn_stream producer for more, only
 * when the stream may send). The hooks of conn.c (h2_stream_done,
 * h2_stream_close) and conn_write.c (h2_stream_flush) for a stream land
 * here; what they produce is sent at the next loop turn (h2_kick), never
 * on the handler's stack. A stream given up on is reset (h2_st_reset).
 * Private declarations: h2_int.h.
 */
#include "net/h2.h"

#include "core/buf.h"
#include "core/clock.h"
#include "core/list.h"
#include "http/http_parse.h"
#include "net/access_log.h"
#include "net/conn.h"
#include "net/h2_int.h"
#include "net/http_reply.h"
#include "net/server.h"

#include <malloc.h>
#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* A body producer is asked for about this much at a time (as conn_write.c). */
#define H2_STREAM_CHUNK 65536

struct h2_stream *h2_st_new(struct h2_session *h, int32_t id) {
    struct conn *c = h->c;
    struct h2_stream *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    struct conn *sc = &st->c;
    sc->srv = c->srv;
    conn_busy_embed(sc, &st->busy);
    sc->fd = -1;
    sc->h2_stream = 1;
    sc->state = CONN_READY;
    sc->keep_alive = 1;
    sc->http10 = 1; /* unframed bodies: the end of the answer ends the body */
    sc->io = c->io;
    sc->io_ctx = c->io_ctx;
    sc->peer = c->peer;
    c->srv->metrics.h2_memory_bytes += malloc_usable_size(st);
    st->h = h;
    st->id = id;
    nghttp2_session_set_stream_user_data(h->ng, id, st);
    list_push(&h->streams, &st->link);
    h->nstreams++;
    h->nreceiving++;
    c->srv->metrics.h2_streams_open++;
    c->srv->metrics.h2_streams_total++;
    return st;
}

void h2_st_free(struct h2_stream *st) {
    struct conn *sc = &st->c;
    struct server *s = sc->srv;
    if (sc->cancel) {
        conn_cancel_fn fn = sc->cancel;
        sc->cancel = NULL;
        fn(sc->cancel_arg);
        if (s->alog) /* the client went before the answer: 499 */
            access_log_write(s->alog, sc, NULL);
    }
    if (sc->b->stream)
        conn_stream_stop(sc);
    if (s->wbuf_owner == sc)
        wbuf_release(s);
    buf_free(&sc->b->out);
    buf_free(&st->hdr);
    buf_free(&st->body);
    buf_free(&st->data);
    access_req_drop(&sc->b->alog);
    s->metrics.h2_memory_bytes -= malloc_usable_size(st);
    list_unlink(&st->link);
    if (st->h->upgraded == st)
        st->h->upgraded = NULL;
    if (!st->dispatched)
        st->h->nreceiving--;
    st->h->nstreams--;
    s->metrics.h2_streams_open--;
    free(st);
}

/* Give up on a stream: its pending work is cancelled now, RST_STREAM follows. */
void h2_st_reset(struct h2_stream *st, uint32_t code) {
    struct conn *sc = &st->c;
    if (sc->cancel) {
        conn_cancel_fn fn = sc->cancel;
        sc->cancel = NULL;
        fn(sc->cancel_arg);
    }
    if (sc->b->stream)
        conn_stream_stop(sc);
    st->complete = 1;
    nghttp2_submit_rst_stream(st->h->ng, NGHTTP2_FLAG_NONE, st->id, code);
    h2_kick(st->h);
}

static ssize_t st_read(nghttp2_session *ng, int32_t id, uint8_t *out, size_t len,
                       uint32_t *flags, nghttp2_data_source *src, void *ud) {
    struct h2_stream *st = src->ptr;
    struct conn *sc = &st->c;
    if (st->data.len == 0 && sc->b->stream) {
        if (buf_reserve(&st->data, H2_STREAM_CHUNK) < 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        int r = conn_stream_next(sc, &st->data, H2_STREAM_CHUNK - 64);
        sc->b->alog.bytes += st->data.len;
        if (r < 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* a short body: reset */
        if (r == 0 && sc->state != CONN_BUSY)
            st->complete = 1;
    }
    size_t n = st->data.len < len ? st->data.len : len;
    if (n) {
        memcpy(out, buf_start(&st->data), n);
        buf_consume(&st->data, n);
    }
    if (st->data.len == 0) {
        buf_free(&st->data);
        if (st->complete)
            *flags |= NGHTTP2_DATA_FLAG_EOF;
        else if (n == 0 && !sc->b->stream) {
            st->deferred = 1;
            return NGHTTP2_ERR_DEFERRED;
        }
    }
    return (ssize_t)n;
}

/* The answer's HTTP/1.1 head at p[0..n) as HEADERS. Returns its length, or -1. */
static int st_submit_head(struct h2_stream *st, const char *p, size_t n) {
    struct conn *sc = &st->c;
    struct h2_session *h = st->h;
    static const struct http_limits lim = {1 << 20, HTTP_MAX_HEADERS, 0, 0};
    struct http_response res;
    const char *why = NULL;
    int hl = http_parse_response(p, n, &lim, &res, &why);
    if (hl <= 0)
        return -1;
    nghttp2_nv nv[HTTP_MAX_HEADERS + 1];
    char status[4] = {(char)('0' + res.status / 100), (char)('0' + res.status / 10 % 10),
                      (char)('0' + res.status % 10), 0};
    nv[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE};
    size_t k = 1;
    buf_reset(&h->scratch);
    if (buf_reserve(&h->scratch, (size_t)hl) < 0)
        return -1;
    char *names = buf_start(&h->scratch);
    for (size_t i = 0; i < res.nheaders; i++) {
        const struct http_header *f = &res.headers[i];
        if (is_conn_specific(f->name, f->name_len))
            continue;
        char *ln = names;
        for (size_t j = 0; j < f->name_len; j++)
            ln[j] = (char)(f->name[j] >= 'A' && f->name[j] <= 'Z' ? f->name[j] + 32 : f->name[j]);
        names += f->name_len;
        nv[k++] = (nghttp2_nv){(uint8_t *)ln, (uint8_t *)f->value, f->name_len, f->value_len,
                               NGHTTP2_NV_FLAG_NONE};
    }
    size_t rest = n - (size_t)hl;
    int body = !(sc->head_only || res.status == 204 || res.status == 304 ||
                 (st->complete && rest == 0 && !sc->b->stream));
    nghttp2_data_provider prd = {.source = {.ptr = st}, .read_callback = st_read};
    if (nghttp2_submit_response(h->ng, st->id, nv, k, body ? &prd : NULL) != 0)
        return -1;
    st->head_sent = 1;
    st->has_body = (uint8_t)body;
    return hl;
}

/* Move what the handler wrote (conn_out) into HEADERS and the stream's data. */
static void st_take(struct h2_stream *st) {
    struct conn *sc = &st->c;
    struct server *s = sc->srv;
    struct buf *b = s->wbuf_owner == sc ? &s->wbuf : &sc->b->out;
    if (sc->failed) {
        buf_reset(b);
        if (b == &s->wbuf)
            wbuf_release(s);
        h2_st_reset(st, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    if (b->len) {
        const char *p = buf_start(b);
        size_t n = b->len;
        while (!st->head_sent && n > 0) {
            int hl = st_submit_head(st, p, n);
            if (hl < 0) {
                buf_reset(b);
                if (b == &s->wbuf)
                    wbuf_release(s);
                h2_st_reset(st, NGHTTP2_INTERNAL_ERROR);
                return;
            }
            p += hl;
            n -= (size_t)hl;
        }
        int r = 0;
        if (n && st->has_body)
            r = buf_append(&st->data, p, n);
        if (b == &s->wbuf)
            wbuf_release(s);
        else
            buf_free(b);
        if (r < 0) {
            h2_st_reset(st, NGHTTP2_INTERNAL_ERROR);
            return;
        }
    }
    if (st->complete && !st->head_sent) {
        /* A handler that said done and wrote nothing: a bug, not the client's. */
        reply_error(sc, 500, "the handler wrote no answer");
        st_take(st);
        return;
    }
    if (st->deferred && (st->data.len || st->complete || sc->b->stream)) {
        st->deferred = 0;
        nghttp2_session_resume_data(st->h->ng, st->id);
    }
    h2_kick(st->h);
}

/* The request from the stream's header block; 0, or an HTTP status with *why. */
static int st_request(struct h2_stream *st, struct http_request *req, const char **why) {
    struct server *s = st->c.srv;
    const char *p = buf_start(&st->hdr), *end = p + st->hdr.len;
    const char *authority = NULL;
    size_t authority_len = 0;
    memset(req, 0, offsetof(struct http_request, headers));
    req->nheaders = 0;
    req->content_length = -1;
    req->keep_alive = 1;
    req->minor_version = 2; /* HTTP/2: the access log says so; handlers read it as 1.1 */
    req->chunked = 0;
    req->expect_continue = 0;
    req->host = NULL;
    req->host_len = 0;
    req->upgrade = 0;
    struct http_header *cookie = NULL;
    buf_reset(&st->h->cookies);
    while (p < end) {
        uint16_t nl;
        uint32_t vl;
        memcpy(&nl, p, 2);
        memcpy(&vl, p + 2, 4);
        const char *name = p + 6, *value = name + nl;
        p = value + vl;
        if (nl && name[0] == ':') {
            if (nl == 7 && memcmp(name, ":method", 7) == 0) {
                req->method_str = value;
                req->method_len = vl;
            } else if (nl == 5 && memcmp(name, ":path", 5) == 0) {
                req->target = value;
                req->target_len = vl;
            } else if (nl == 10 && memcmp(name, ":authority", 10) == 0) {
                authority = value;
                authority_len = vl;
            }
            continue;
        }
        if (nl == 6 && memcmp(name, "cookie", 6) == 0 && cookie) {
            /* A split Cookie (RFC 9113 8.2.3): one field for HTTP/1.1 handlers. */
            struct buf *b = &st->h->cookies;
            int r = b->len ? 0 : buf_append(b, cookie->value, cookie->value_len);
            r |= buf_append(b, "; ", 2);
            r |= buf_append(b, value, vl);
            if (r < 0) {
                *why = "out of memory joining Cookie fields";
                return 503;
            }
            cookie->value = buf_start(b);
            cookie->value_len = b->len;
            continue;
        }
        if (req->nheaders == s->limits.max_headers) {
            *why = "too many header fields";
            return 431;
        }
        struct http_header *f = &req->headers[req->nheaders++];
        *f = (struct http_header){name, nl, value, vl};
        if (nl == 6 && memcmp(name, "cookie", 6) == 0)
            cookie = f;
        if (nl == 4 && memcmp(name, "host", 4) == 0) {
            req->host = value;
            req->host_len = vl;
        } else if (nl == 14 && memcmp(name, "content-length", 14) == 0) {
            req->content_length = (int64_t)st->body.len;
        }
    }
    if (!req->host && authority) {
        req->host = authority;
        req->host_len = authority_len;
        if (req->nheaders < s->limits.max_headers && req->nheaders < HTTP_MAX_HEADERS)
            req->headers[req->nheaders++] = (struct http_header){"host", 4, authority,
                                                                 authority_len};
    }
    if (!req->method_str || !req->target) {
        *why = "missing :method or :path";
        return 400;
    }
    req->method = http_method_lookup(req->method_str, req->method_len);
    if (req->method == HTTP_M_OTHER) {
        *why = "method not implemented";
        return 501;
    }
    if (req->target_len > s->limits.max_uri) {
        *why = "request-target too long";
        return 414;
    }
    if (req->target[0] != '/' && !(req->target_len == 1 && req->target[0] == '*')) {
        *why = ":path must begin with /";
        return 400;
    }
    const char *q = memchr(req->target, '?', req->target_len);
    req->path = req->target;
    req->path_len = q ? (size_t)(q - req->target) : req->target_len;
    if (q) {
        req->query = q + 1;
        req->query_len = req->target_len - req->path_len - 1;
    }
    if (st->body.len && req->content_length < 0)
        req->content_length = (int64_t)st->body.len;
    return 0;
}

/* The request is complete (or refused early): run the handler for it. */
void h2_st_dispatch(struct h2_stream *st, int status, const char *why) {
    struct conn *sc = &st->c;
    struct server *s = sc->srv;
    struct http_request req;
    st->dispatched = 1;
    st->h->nreceiving--;
    if (!status)
        status = st_request(st, &req, &why);
    sc->start_us = clock_now_us(); /* the latency histogram's and the access log's start */
    if (s->alog)
        access_req_start(&sc->b->alog);
    sc->route_class = METRICS_ROUTE_OTHER;
    enum handler_result r = HANDLER_DONE;
    if (status) {
        s->metrics.parse_errors++;
        reply_error(sc, status, "%s", why);
        if (s->alog)
            access_log_write(s->alog, sc, NULL);
    } else {
        sc->head_only = req.method == HTTP_M_HEAD;
        sc->dispatching = 1;
        r = s->handler(s->handler_ctx, sc, &req, buf_start(&st->body), st->body.len);
        sc->dispatching = 0;
        if (r == HANDLER_DONE && !sc->b->stream)
            conn_observe(sc);
        if (s->alog) {
            if (r == HANDLER_DONE && !sc->b->stream)
                access_log_write(s->alog, sc, &req);
            else
                access_req_save(&sc->b->alog, &req);
        }
    }
    buf_free(&st->hdr);
    buf_free(&st->body);
    buf_free(&st->h->cookies);
    if (sc->close_pending) {
        sc->close_pending = 0;
        h2_st_reset(st, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    if (r == HANDLER_PENDING)
        sc->state = CONN_BUSY;
    else if (!sc->b->stream)
        st->complete = 1;
    st_take(st);
}

void h2_stream_done(struct conn *sc) {
    struct h2_stream *st = st_of(sc);
    sc->cancel = NULL;
    sc->cancel_arg = NULL;
    sc->state = CONN_READY;
    if (!sc->b->stream)
        conn_observe(sc);
    if (sc->srv->alog && !sc->b->stream)
        access_log_write(sc->srv->alog, sc, NULL);
    if (!sc->b->stream)
        st->complete = 1;
    st_take(st);
}

int h2_stream_flush(struct conn *sc) {
    st_take(st_of(sc));
    return 0;
}

void h2_stream_close(struct conn *sc) {
    if (sc->dispatching) {
        sc->close_pending = 1;
        return;
    }
    h2_st_reset(st_of(sc), NGHTTP2_INTERNAL_ERROR);
}
