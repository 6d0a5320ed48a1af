#include "net/h2.h"

#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/list.h"
#include "core/log.h"
#include "core/timer.h"
#include "http/http_parse.h"
#include "net/access_log.h"
#include "net/conn.h"
#include "net/http_reply.h"
#include "net/io.h"
#include "net/server.h"
#include "net/tls_server.h"

#include <errno.h>
#include <event2/event.h>
#include <malloc.h>
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* A body producer is asked for about this much at a time (as conn_write.c). */
#define H2_STREAM_CHUNK 65536
/* Bytes read per readiness before the other connections' turn. */
#define H2_READ_TURN (256 * 1024)
/* The shared write buffer keeps up to this much memory (as conn_int.h). */
#define H2_WBUF_KEEP 65536
/* A closing connection waits this long for the client to read its GOAWAY. */
#define H2_LINGER_MS 2000
/* CONTINUATION frames allowed after one HEADERS frame (nghttp2's default). */
#define H2_MAX_CONTINUATIONS 8
/* Budgets per second, per connection: past them the client is flooding. */
#define H2_RST_PER_SEC 1000     /* streams reset by the client (or 2x max streams) */
#define H2_SETTINGS_PER_SEC 100 /* SETTINGS frames */
#define H2_PING_PER_SEC 100     /* PING frames */
#define H2_NOOP_PER_SEC 100     /* empty DATA without END_STREAM, PRIORITY */

_Static_assert(H2_CLOSE_KINDS == METRICS_H2_CLOSE_KINDS, "metrics.h and h2.h disagree");

const char *const h2_close_names[H2_CLOSE_KINDS] = {
    "rapid_reset", "continuation", "header_list", "settings", "ping",
    "empty_data",  "outbound",     "stalled",     "flow_control", "protocol", "ping_timeout"};

const unsigned char h2_alpn_h2_h11[] = "\x02h2\x08http/1.1";
const unsigned int h2_alpn_h2_h11_len = sizeof h2_alpn_h2_h11 - 1;

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum { RATE_RST, RATE_SETTINGS, RATE_PING, RATE_NOOP, RATE_KINDS };
static const uint8_t rate_kind[RATE_KINDS] = {H2_CLOSE_RAPID_RESET, H2_CLOSE_SETTINGS,
                                              H2_CLOSE_PING, H2_CLOSE_EMPTY_DATA};

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

static void h2_on_read(evutil_socket_t fd, short what, void *arg);
static void h2_on_write(evutil_socket_t fd, short what, void *arg);
static void h2_on_deadline(struct timer *t);
static int h2_settle(struct h2_session *h, int progress);

static struct h2_stream *st_of(struct conn *sc) {
    return container_of(sc, struct h2_stream, c);
}

int h2_is_preface(const char *data, size_t len) {
    size_t n = len < sizeof preface - 1 ? len : sizeof preface - 1;
    return len >= 14 && memcmp(data, preface, n) == 0;
}

static void count_close(struct h2_session *h, int kind) {
    if (h->counted)
        return;
    h->counted = 1;
    h->c->srv->metrics.h2_closes[kind]++;
}

/* One more frame of a budgeted kind; 0, or -1 (flood: h->flood set). */
static int rate_hit(struct h2_session *h, int kind) {
    uint64_t now = clock_now_ms();
    if (now - h->rate_start_ms >= 1000) {
        h->rate_start_ms = now;
        memset(h->rate_n, 0, sizeof h->rate_n);
    }
    uint32_t limit = kind == RATE_RST ? H2_RST_PER_SEC
                     : kind == RATE_SETTINGS ? H2_SETTINGS_PER_SEC
                     : kind == RATE_PING ? H2_PING_PER_SEC
                                         : H2_NOOP_PER_SEC;
    if (kind == RATE_RST && h->c->srv->cfg->h2_max_streams * 2 > limit)
        limit = (uint32_t)(h->c->srv->cfg->h2_max_streams * 2);
    if (++h->rate_n[kind] <= limit)
        return 0;
    h->flood = rate_kind[kind];
    return -1;
}

/* ---- memory: nghttp2's allocations and the stream structs, counted ---------------- */

static void *mem_malloc(size_t n, void *ud) {
    void *p = malloc(n);
    if (p)
        *(uint64_t *)ud += malloc_usable_size(p);
    return p;
}

static void mem_free(void *p, void *ud) {
    if (p)
        *(uint64_t *)ud -= malloc_usable_size(p);
    free(p);
}

static void *mem_calloc(size_t n, size_t size, void *ud) {
    void *p = calloc(n, size);
    if (p)
        *(uint64_t *)ud += malloc_usable_size(p);
    return p;
}

static void *mem_realloc(void *p, size_t n, void *ud) {
    size_t old = p ? malloc_usable_size(p) : 0;
    void *q = realloc(p, n);
    if (q) {
        *(uint64_t *)ud -= old;
        *(uint64_t *)ud += malloc_usable_size(q);
    } else if (n == 0 && p) {
        *(uint64_t *)ud -= old;
    }
    return q;
}

/* Send what handlers answered at the next loop turn (never on their stack). */
static void h2_kick(struct h2_session *h) {
    if (h->in_io || h->kicked)
        return;
    h->kicked = 1;
    event_active(&h->wev, EV_WRITE, 0);
}

static void wbuf_release(struct server *s) {
    s->wbuf_owner = NULL;
    if (s->wbuf.cap > H2_WBUF_KEEP)
        buf_free(&s->wbuf);
    else
        buf_reset(&s->wbuf);
}

/* ---- streams ----------------------------------------------------------------- */

static void st_free(struct h2_stream *st) {
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
static void st_reset(struct h2_stream *st, uint32_t code) {
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

static int is_conn_specific(const char *n, size_t l) {
    static const char *const drop[] = {"connection", "keep-alive", "transfer-encoding",
                                       "proxy-connection", "upgrade"};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        if (strlen(drop[i]) == l && strncasecmp(n, drop[i], l) == 0)
            return 1;
    return 0;
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
        st_reset(st, NGHTTP2_INTERNAL_ERROR);
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
                st_reset(st, NGHTTP2_INTERNAL_ERROR);
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
            st_reset(st, NGHTTP2_INTERNAL_ERROR);
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
static void st_dispatch(struct h2_stream *st, int status, const char *why) {
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
        st_reset(st, NGHTTP2_INTERNAL_ERROR);
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
    st_reset(st_of(sc), NGHTTP2_INTERNAL_ERROR);
}

/* ---- nghttp2 callbacks --------------------------------------------------------- */

static struct h2_stream *st_new(struct h2_session *h, int32_t id) {
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

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
    struct h2_session *h = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    return st_new(h, f->hd.stream_id) ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

/* One field of a stream's header block, as on_header keeps it. */
static int hdr_add(struct h2_stream *st, const char *name, size_t namelen, const char *value,
                   size_t valuelen) {
    uint16_t nl = (uint16_t)namelen;
    uint32_t vl = (uint32_t)valuelen;
    if (buf_reserve(&st->hdr, 6 + namelen + valuelen) < 0)
        return -1;
    buf_append(&st->hdr, &nl, 2);
    buf_append(&st->hdr, &vl, 4);
    buf_append(&st->hdr, name, namelen);
    buf_append(&st->hdr, value, valuelen);
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud) {
    struct h2_session *h = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers: not passed on */
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (!st)
        return 0;
    st->hlist += (uint32_t)(namelen + valuelen + 32);
    if (st->hlist > h->c->srv->cfg->h2_max_header_list) {
        h->flood = H2_CLOSE_HEADER_LIST;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    if (hdr_add(st, (const char *)name, namelen, (const char *)value, valuelen) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud) {
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (!st || st->dispatched)
        return 0; /* answered early (413): the rest is read and dropped */
    if (st->body.len + len > st->c.srv->limits.max_body) {
        st->rst_after = 1;
        st_dispatch(st, 413, "request body too large");
        return 0;
    }
    if (buf_append(&st->body, data, len) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *ud) {
    struct h2_session *h = ud;
    int r = 0;
    switch (hd->type) {
    case NGHTTP2_SETTINGS:
        if (!(hd->flags & NGHTTP2_FLAG_ACK))
            r = rate_hit(h, RATE_SETTINGS);
        break;
    case NGHTTP2_PING:
        if (!(hd->flags & NGHTTP2_FLAG_ACK))
            r = rate_hit(h, RATE_PING);
        break;
    case NGHTTP2_RST_STREAM:
        r = rate_hit(h, RATE_RST);
        break;
    case NGHTTP2_PRIORITY:
        r = rate_hit(h, RATE_NOOP);
        break;
    case NGHTTP2_DATA:
        if (hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_STREAM))
            r = rate_hit(h, RATE_NOOP);
        break;
    default:
        break;
    }
    return r < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
    struct h2_session *h = ud;
    if (h->upgraded && f->hd.type == NGHTTP2_SETTINGS) {
        /* The client speaks HTTP/2 now: its upgraded request's answer may go
         * (before, a client reading the 101 may not hold what follows it). */
        struct h2_stream *st = h->upgraded;
        h->upgraded = NULL;
        st_dispatch(st, 0, NULL);
    }
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
        if (st && !st->dispatched)
            st_dispatch(st, 0, NULL);
    }
    return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
    struct h2_session *h = ud;
    if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code != NGHTTP2_NO_ERROR)
        count_close(h, f->goaway.error_code == NGHTTP2_FLOW_CONTROL_ERROR  ? H2_CLOSE_FLOW_CONTROL
                       : f->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM ? H2_CLOSE_RAPID_RESET
                                                                            : H2_CLOSE_PROTOCOL);
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
        if (st && st->rst_after)
            nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud) {
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (st) {
        nghttp2_session_set_stream_user_data(ng, id, NULL);
        st_free(st);
    }
    return 0;
}

/* ---- the connection -------------------------------------------------------------- */

static nghttp2_session_callbacks *callbacks(void) {
    static nghttp2_session_callbacks *cb;
    if (cb)
        return cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return NULL;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    return cb;
}

/* A connection error found by us or fatal to nghttp2: GOAWAY (written raw,
 * the session is not to be used again), then close. */
static void h2_fatal(struct h2_session *h, ssize_t rv) {
    int kind = h->flood >= 0                            ? h->flood
               : rv == NGHTTP2_ERR_FLOODED              ? H2_CLOSE_OUTBOUND
               : rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS ? H2_CLOSE_CONTINUATION
                                                        : H2_CLOSE_PROTOCOL;
    uint32_t code = kind == H2_CLOSE_PROTOCOL ? NGHTTP2_PROTOCOL_ERROR : NGHTTP2_ENHANCE_YOUR_CALM;
    if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC)
        code = NGHTTP2_PROTOCOL_ERROR;
    count_close(h, kind);
    if (log_level_current >= LOG_LVL_DEBUG) {
        char peer[64];
        log_debug("HTTP/2 connection from %s closed: %s (%s)",
                  conn_peer_text(h->c, peer, sizeof peer), h2_close_names[kind],
                  nghttp2_strerror((int)rv));
    }
    int32_t last = nghttp2_session_get_last_proc_stream_id(h->ng);
    uint8_t f[17] = {0, 0, 8, NGHTTP2_GOAWAY, 0, 0, 0, 0, 0};
    f[9] = (uint8_t)(last >> 24 & 0x7f), f[10] = (uint8_t)(last >> 16), f[11] = (uint8_t)(last >> 8),
    f[12] = (uint8_t)last;
    f[13] = (uint8_t)(code >> 24), f[14] = (uint8_t)(code >> 16), f[15] = (uint8_t)(code >> 8),
    f[16] = (uint8_t)code;
    buf_append(&h->c->b->out, f, sizeof f);
    h->closing = 1;
}

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

static void h2_on_read(evutil_socket_t fd, short what, void *arg) {
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

static void h2_on_write(evutil_socket_t fd, short what, void *arg) {
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

static void h2_on_deadline(struct timer *t) {
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

/* Make c an HTTP/2 connection: NULL (c closed) if that cannot be done. */
static struct h2_session *h2_start(struct conn *c) {
    struct server *s = c->srv;
    struct h2_session *h = conn_busy(c) ? calloc(1, sizeof *h) : NULL; /* c->out: its frames */
    nghttp2_session_callbacks *cb = callbacks();
    nghttp2_option *opt = NULL;
    if (!h || !cb || nghttp2_option_new(&opt) != 0) {
        free(h);
        conn_close(c);
        return NULL;
    }
    nghttp2_option_set_max_continuations(opt, H2_MAX_CONTINUATIONS);
    nghttp2_mem mem = {&s->metrics.h2_memory_bytes, mem_malloc, mem_free, mem_calloc, mem_realloc};
    int rv = nghttp2_session_server_new3(&h->ng, cb, h, opt, &mem);
    nghttp2_option_del(opt);
    if (rv != 0) {
        free(h);
        conn_close(c);
        return NULL;
    }
    h->c = c;
    h->flood = -1;
    list_init(&h->streams);
    const struct config *cfg = s->cfg;
    nghttp2_settings_entry set[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)cfg->h2_max_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)cfg->h2_initial_window},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)cfg->h2_max_header_list},
    };
    nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, set, sizeof set / sizeof set[0]);
    /* Uploads on many streams at once share the connection window: make it roomy. */
    nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0, 1 << 20);

    /* HTTP/1.1 answers still in the shared buffer go first, in c->b->out. */
    if (s->wbuf_owner == c) {
        int r = buf_append(&c->b->out, buf_start(&s->wbuf), s->wbuf.len);
        wbuf_release(s);
        if (r < 0) {
            nghttp2_session_del(h->ng);
            free(h);
            conn_close(c);
            return NULL;
        }
    }
    /* From here h2.c owns the connection's event and deadline. */
    event_del(&c->ev);
    timer_cancel(&s->wheel, &c->deadline);
    timer_init(&c->deadline, h2_on_deadline);
    c->deadline_kind = DL_NONE;
    event_assign(&c->ev, s->base, c->fd, EV_READ | EV_PERSIST, h2_on_read, c);
    event_assign(&h->wev, s->base, c->fd, EV_WRITE | EV_PERSIST, h2_on_write, h);
    h->listener = c->role == CONN_ROLE_PLAIN ? c->as.listener : NULL;
    c->role = CONN_ROLE_H2;
    c->as.h2 = h;
    c->state = CONN_READY;
    c->reading_paused = 0;
    c->ev_write = 0;
    c->b->need = 0;
    s->metrics.output_bytes -= c->b->out_counted;
    c->b->out_counted = 0;
    s->metrics.h2_conns_open++;
    s->metrics.h2_conns_total++;
    if (event_add(&c->ev, NULL) < 0) {
        conn_close(c);
        return NULL;
    }
    return h;
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
    struct h2_stream *st = rv == 0 ? st_new(h, 1) : NULL;
    if (!st) {
        h2_fatal(h, rv ? rv : NGHTTP2_ERR_NOMEM);
        h2_go(h, NULL, 0);
        return -1;
    }
    /* The HTTP/1.1 request is stream 1's (RFC 7540 3.2), half-closed already. */
    int r = hdr_add(st, ":method", 7, req->method_str, req->method_len);
    r |= hdr_add(st, ":path", 5, req->target, req->target_len);
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *f = &req->headers[i];
        char name[64];
        if (f->name_len >= sizeof name || is_conn_specific(f->name, f->name_len) ||
            (f->name_len == 14 && strncasecmp(f->name, "http2-settings", 14) == 0))
            continue;
        for (size_t j = 0; j < f->name_len; j++)
            name[j] = (char)(f->name[j] >= 'A' && f->name[j] <= 'Z' ? f->name[j] + 32 : f->name[j]);
        r |= hdr_add(st, name, f->name_len, f->value, f->value_len);
    }
    if (r < 0)
        st_reset(st, NGHTTP2_INTERNAL_ERROR);
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

void h2_free(struct conn *c) {
    struct h2_session *h = c->as.h2;
    struct server *s = c->srv;
    while (!list_empty(&h->streams)) {
        struct h2_stream *st = container_of(h->streams.next, struct h2_stream, link);
        st_free(st);
    }
    nghttp2_session_del(h->ng);
    event_del(&h->wev);
    buf_free(&h->scratch);
    buf_free(&h->cookies);
    s->metrics.h2_conns_open--;
    c->role = CONN_ROLE_PLAIN;
    c->as.listener = NULL;
    free(h);
}
