/*
 * h2: an HTTP/2 session (the contract is net/h2.h; docs/HTTP2.md). h2_start
 * makes a connection HTTP/2: an nghttp2 server session whose allocations
 * are counted in awaitd_h2_memory_bytes, our SETTINGS, and from then on the
 * connection's event and deadline belong to h2_io.c. h2_free ends it, its
 * streams first.
 *
 * nghttp2 calls back here while h2_io.c feeds it bytes: a request's HEADERS
 * open a stream (h2_stream.c) and its fields are kept (on_header, within
 * max_header_list_size); DATA is its body; END_STREAM dispatches it. Frames
 * a flood is made of are counted per second against their budgets
 * (rate_hit); past one, or on any error nghttp2 finds fatal, h2_fatal
 * writes a GOAWAY raw and the connection closes, its reason counted once
 * (awaitd_h2_closes_total). Private declarations: h2_int.h.
 */
#include "net/h2.h"

#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/list.h"
#include "core/log.h"
#include "core/timer.h"
#include "net/conn.h"
#include "net/h2_int.h"
#include "net/server.h"

#include <event2/event.h>
#include <malloc.h>
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>

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

static const uint8_t rate_kind[RATE_KINDS] = {H2_CLOSE_RAPID_RESET, H2_CLOSE_SETTINGS,
                                              H2_CLOSE_PING, H2_CLOSE_EMPTY_DATA};

int h2_is_preface(const char *data, size_t len) {
    size_t n = len < sizeof preface - 1 ? len : sizeof preface - 1;
    return len >= 14 && memcmp(data, preface, n) == 0;
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

/* ---- nghttp2 callbacks --------------------------------------------------------- */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
    struct h2_session *h = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    return h2_st_new(h, f->hd.stream_id) ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

/* One field of a stream's header block, as on_header keeps it. */
int h2_hdr_add(struct h2_stream *st, const char *name, size_t namelen, const char *value,
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
    if (h2_hdr_add(st, (const char *)name, namelen, (const char *)value, valuelen) < 0)
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
        h2_st_dispatch(st, 413, "request body too large");
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
        h2_st_dispatch(st, 0, NULL);
    }
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
        if (st && !st->dispatched)
            h2_st_dispatch(st, 0, NULL);
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
        h2_st_free(st);
    }
    return 0;
}

/* ---- the session ---------------------------------------------------------------- */

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
void h2_fatal(struct h2_session *h, ssize_t rv) {
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

/* Make c an HTTP/2 connection: NULL (c closed) if that cannot be done. */
struct h2_session *h2_start(struct conn *c) {
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

void h2_free(struct conn *c) {
    struct h2_session *h = c->as.h2;
    struct server *s = c->srv;
    while (!list_empty(&h->streams)) {
        struct h2_stream *st = container_of(h->streams.next, struct h2_stream, link);
        h2_st_free(st);
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
