#include "api/probe.h"
#include "api/auth.h"
#include "api/probe_int.h"

#include "ac_config.h"

#include "core/base64.h"
#include "core/buf.h"
#include "core/config.h"
#include "http/http_parse.h"
#include "http/http_query.h"
#include "net/http_reply.h"
#include "net/metrics.h"
#include "net/metrics_process.h"
#include "net/server.h"
#include "net/workers.h"
#include "core/list.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Query arguments kept per request; more are ignored in echoes. */
#define MAX_ARGS 64

/* ---- request echo (the JSON httpbin answers /get, /post, /anything with) ---- */

static int hexval(int ch) {
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* application/x-www-form-urlencoded decoding: %XX and '+' for space. */
static int append_urldecoded_json(struct buf *o, const char *s, size_t n) {
    char small[256] = "";
    char *tmp = n <= sizeof small ? small : malloc(n);
    if (!tmp)
        return -1;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '+')
            tmp[j++] = ' ';
        else if (s[i] == '%' && i + 2 < n &&
                 (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
                 (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            tmp[j++] = (char)(hi << 4 | lo);
            i += 2;
        } else
            tmp[j++] = s[i];
    }
    int r = buf_append_json_str(o, tmp, j);
    if (tmp != small)
        free(tmp);
    return r;
}

/* {"k": "v", "k2": ["a", "b"]}: repeated keys become lists, as in httpbin. */
static int append_pairs_json(struct buf *o, const char *s, size_t n) {
    struct probe_kv kv[MAX_ARGS];
    size_t count = probe_pairs(s, n, kv, MAX_ARGS);
    int r = buf_append(o, "{", 1);
    int first = 1;
    for (size_t i = 0; i < count; i++) {
        size_t dups = 0, seen = 0;
        for (size_t j = 0; j < count; j++)
            if (kv[j].klen == kv[i].klen && memcmp(kv[j].k, kv[i].k, kv[i].klen) == 0) {
                if (j < i)
                    seen = 1;
                dups++;
            }
        if (seen)
            continue;
        r |= buf_appends(o, first ? "" : ", ");
        first = 0;
        r |= append_urldecoded_json(o, kv[i].k, kv[i].klen);
        r |= buf_append(o, ": ", 2);
        if (dups > 1)
            r |= buf_append(o, "[", 1);
        for (size_t j = i, k = 0; j < count; j++) {
            if (kv[j].klen != kv[i].klen || memcmp(kv[j].k, kv[i].k, kv[i].klen) != 0)
                continue;
            if (k++)
                r |= buf_append(o, ", ", 2);
            r |= append_urldecoded_json(o, kv[j].v, kv[j].vlen);
        }
        if (dups > 1)
            r |= buf_append(o, "]", 1);
    }
    r |= buf_append(o, "}", 1);
    return r;
}

/* httpbin's ENV_HEADERS: what its hosting proxy added, hidden from the
 * headers echo unless the query has show_env. */
static int env_header(const struct http_header *h) {
    static const char *const env[] = {
        "x-varnish", "x-request-start", "x-heroku-queue-depth", "x-real-ip", "x-forwarded-proto",
        "x-forwarded-protocol", "x-forwarded-ssl", "x-heroku-queue-wait-time", "x-forwarded-for",
        "x-heroku-dynos-in-use", "x-forwarded-port", "x-request-id", "via", "total-route-time",
        "connect-time", NULL};
    int c0 = h->name[0] | 0x20;
    if (c0 != 'x' && c0 != 'v' && c0 != 't' && c0 != 'c')
        return 0;
    for (size_t i = 0; env[i]; i++)
        if (strlen(env[i]) == h->name_len && strncasecmp(env[i], h->name, h->name_len) == 0)
            return 1;
    return 0;
}

/* Header names title-cased as httpbin shows them ("User-Agent"); repeated
 * fields joined with ",". */
static int append_headers_json(struct buf *o, const struct http_request *req) {
    int r = buf_append(o, "{", 1);
    int show_env = -1, first = 1;
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        if (env_header(h)) {
            if (show_env < 0) {
                size_t n;
                show_env = http_query_get(req, "show_env", &n) != NULL;
            }
            if (!show_env)
                continue;
        }
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = req->headers[j].name_len == h->name_len &&
                   strncasecmp(req->headers[j].name, h->name, h->name_len) == 0;
        if (seen)
            continue;
        char name[256];
        size_t nl = h->name_len < sizeof name ? h->name_len : sizeof name;
        for (size_t k = 0, up = 1; k < nl; k++) { /* ASCII only, as toupper in the C locale */
            unsigned char ch = (unsigned char)h->name[k];
            if ((unsigned)(ch - (up ? 'a' : 'A')) < 26u)
                ch ^= 0x20;
            name[k] = (char)ch;
            up = ch == '-';
        }
        if (!first)
            r |= buf_append(o, ", ", 2);
        first = 0;
        r |= buf_append_json_str(o, name, nl);
        r |= buf_append(o, ": ", 2);
        size_t ndup = 0;
        for (size_t j = i + 1; j < req->nheaders; j++)
            ndup += req->headers[j].name_len == h->name_len &&
                    strncasecmp(req->headers[j].name, h->name, h->name_len) == 0;
        if (!ndup) {
            r |= buf_append_json_str(o, h->value, h->value_len);
            continue;
        }
        struct buf joined = BUF_INIT;
        for (size_t j = i; j < req->nheaders; j++) {
            const struct http_header *g = &req->headers[j];
            if (g->name_len != h->name_len || strncasecmp(g->name, h->name, h->name_len) != 0)
                continue;
            if (joined.len)
                r |= buf_append(&joined, ",", 1);
            r |= buf_append(&joined, g->value, g->value_len);
        }
        r |= buf_append_json_str(o, buf_start(&joined), joined.len);
        buf_free(&joined);
    }
    r |= buf_append(o, "}", 1);
    return r;
}

static const struct http_header *find(const struct http_request *req, const char *name) {
    return http_find_header(req->headers, req->nheaders, name);
}

static int append_body_fields(struct buf *o, struct conn *c, const struct http_request *req,
                              const char *body, size_t len) {
    int r = buf_appends(o, "\"data\": ");
    if (probe_body_kind(req) != BODY_RAW) {
        /* werkzeug reads form bodies into form and files: data stays "". */
        r |= buf_appends(o, "\"\"");
    } else if (utf8_valid(body, len)) {
        r |= buf_append_json_str(o, body, len);
    } else {
        /* Binary bodies as a data URL, as httpbin does. */
        r |= probe_append_json_safe(o, body, len, CT_OCTETS, sizeof CT_OCTETS - 1);
    }
    r |= buf_appends(o, ", ");
    r |= probe_append_form_files(o, c, req, body, len);
    return r;
}

static int append_json_field(struct buf *o, const char *body, size_t len) {
    int r = buf_appends(o, ", \"json\": ");
    json_t *j = len ? json_loadb(body, len, JSON_DECODE_ANY, NULL) : NULL;
    if (!j)
        return r | buf_appends(o, "null");
    char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    if (!text)
        return -1;
    r |= buf_appends(o, text);
    free(text);
    return r;
}

static int render_echo(struct conn *c, const struct http_request *req, const char *body,
                       size_t len, int fields, struct buf *o) {
    int r = buf_appends(o, "{\"args\": ");
    r |= append_pairs_json(o, req->query, req->query_len);
    if (fields & ECHO_BODY) {
        r |= buf_appends(o, ", ");
        r |= append_body_fields(o, c, req, body, len);
    }
    r |= buf_appends(o, ", \"headers\": ");
    r |= append_headers_json(o, req);
    if (fields & ECHO_JSON)
        r |= append_json_field(o, body, len);
    if (fields & ECHO_METHOD) {
        r |= buf_appends(o, ", \"method\": ");
        r |= buf_append_json_str(o, req->method_str, req->method_len);
    }
    r |= buf_appends(o, ", \"origin\": ");
    r |= probe_append_origin(o, c, req);
    r |= buf_appends(o, ", \"url\": ");
    r |= probe_append_url(o, c, req);
    r |= buf_appends(o, "}\n");
    return r ? -1 : 0;
}

/* ---- the pieces, shared with the other probe files (probe_int.h) ---- */

int probe_render_echo(struct conn *c, const struct http_request *req, const char *body,
                      size_t len, int fields, struct buf *o) {
    return render_echo(c, req, body, len, fields, o);
}

int probe_append_headers(struct buf *o, const struct http_request *req) {
    return append_headers_json(o, req);
}

int probe_append_args(struct buf *o, const struct http_request *req) {
    return append_pairs_json(o, req->query, req->query_len);
}

int probe_append_pairs(struct buf *o, const char *s, size_t n) {
    return append_pairs_json(o, s, n);
}

const struct http_header *probe_header(const struct http_request *req, const char *name) {
    return find(req, name);
}

static int trusted(const struct conn *c) {
    return c->srv->cfg->probe_trust_forwarded;
}

/* Does any field name start with x (the X-Forwarded-* ones)? One pass
 * instead of four lookups when a client sends none (the usual case). */
static int any_x_header(const struct http_request *req) {
    for (size_t i = 0; i < req->nheaders; i++)
        if ((req->headers[i].name[0] | 0x20) == 'x')
            return 1;
    return 0;
}

int probe_append_origin(struct buf *o, struct conn *c, const struct http_request *req) {
    const struct http_header *xff =
        trusted(c) && any_x_header(req) ? find(req, "x-forwarded-for") : NULL;
    if (xff)
        return buf_append_json_str(o, xff->value, xff->value_len);
    /* An address as text is digits, hex, '.' and ':': nothing to escape. */
    char origin[64];
    origin[0] = '"';
    size_t n = strlen(conn_peer_text(c, origin + 1, sizeof origin - 2));
    origin[n + 1] = '"';
    return buf_append(o, origin, n + 2);
}

int probe_append_base_url(struct buf *o, struct conn *c, const struct http_request *req) {
    const struct http_header *proto = NULL, *host = NULL;
    int https = conn_is_tls(c);
    if (trusted(c) && any_x_header(req)) {
        const struct http_header *ssl;
        if (!(proto = find(req, "x-forwarded-proto")))
            proto = find(req, "x-forwarded-protocol");
        if (!proto && (ssl = find(req, "x-forwarded-ssl")) && ssl->value_len == 2 &&
            strncasecmp(ssl->value, "on", 2) == 0)
            https = 1;
        host = find(req, "x-forwarded-host");
    }
    int r;
    if (proto) {
        r = buf_append_json_chars(o, proto->value, proto->value_len);
        r |= buf_append(o, "://", 3);
    } else {
        r = https ? buf_append(o, "https://", 8) : buf_append(o, "http://", 7);
    }
    if (host)
        r |= buf_append_json_chars(o, host->value, host->value_len);
    else if (req->host)
        r |= buf_append_json_chars(o, req->host, req->host_len);
    return r;
}

int probe_append_url(struct buf *o, struct conn *c, const struct http_request *req) {
    if (!req->target_len || req->target[0] != '/')
        return buf_append_json_str(o, req->target, req->target_len);
    int r = buf_append(o, "\"", 1);
    r |= probe_append_base_url(o, c, req);
    r |= buf_append_json_chars(o, req->target, req->target_len);
    r |= buf_append(o, "\"", 1);
    return r;
}

struct probe *probe_new(void) {
    return calloc(1, sizeof(struct probe));
}

void probe_free(struct probe *p) {
    if (p) {
        buf_free(&p->body);
        free(p);
    }
}

/* Send the body built in p->body. Answers are built and sent within one
 * handler or timer callback, so the buffer is always empty in between. */
/* The render buffer keeps its memory up to this size; a larger answer
 * (/metrics with many queues) frees it once sent into conn_out(). */
#define BODY_KEEP 65536

static enum handler_result reply_body(struct probe *p, struct conn *c, int status,
                                      const char *ctype) {
    struct buf *b = &p->body;
    reply(c, status, ctype, NULL, buf_start(b), b->len);
    if (b->cap > BODY_KEEP)
        buf_free(b);
    else
        buf_reset(b);
    return HANDLER_DONE;
}

static enum handler_result oom(struct probe *p, struct conn *c) {
    buf_reset(&p->body);
    c->keep_alive = 0;
    reply_error(c, 500, "out of memory");
    return HANDLER_DONE;
}

enum handler_result probe_send(struct probe *p, struct conn *c, int status, const char *ctype,
                               const char *extra) {
    struct buf *b = &p->body;
    reply(c, status, ctype, extra, buf_start(b), b->len);
    buf_reset(b);
    return HANDLER_DONE;
}

enum handler_result probe_oom(struct probe *p, struct conn *c) {
    return oom(p, c);
}

PROBE_HANDLER(probe_get) {
    struct probe *p = ctx;
    if (render_echo(c, req, body, body_len, 0, &p->body) < 0)
        return oom(p, c);
    return reply_body(p, c, 200, CT_JSON);
}

PROBE_HANDLER(probe_anything) {
    struct probe *p = ctx;
    int fields = ECHO_BODY | ECHO_JSON;
    if (req->path_len >= 9 && memcmp(req->path, "/anything", 9) == 0)
        fields |= ECHO_METHOD;
    if (probe_form_refuse(c, req, body, body_len))
        return HANDLER_DONE;
    if (render_echo(c, req, body, body_len, fields, &p->body) < 0)
        return oom(p, c);
    return reply_body(p, c, 200, CT_JSON);
}

/* ---- parameters --------------------------------------------------------- */

/* ---- /delay/{s} ----------------------------------------------------------- */

struct delay_op {
    struct timer t;
    struct conn *c;
    struct probe *p;
    size_t len;
    const char *extra; /* the dispatcher's header lines (CORS), in body[] after the answer */
    char body[];       /* the answer, rendered when the request arrived */
};

/* The dispatcher's header lines for this request, copied for a later answer. */
static char *extra_copy(struct conn *c, char *to) {
    const char *x = reply_extra_lines(c);
    return x ? strcpy(to, x) : NULL;
}

static size_t extra_size(struct conn *c) {
    const char *x = reply_extra_lines(c);
    return x ? strlen(x) + 1 : 0;
}

static void delay_cancel(void *arg) {
    struct delay_op *op = arg;
    timer_cancel(&op->c->srv->wheel, &op->t);
    op->p->delays_pending--;
    free(op);
}

static void delay_fire(struct timer *t) {
    struct delay_op *op = container_of(t, struct delay_op, t);
    struct conn *c = op->c;
    op->p->delays_pending--;
    reply(c, 200, CT_JSON, op->extra, op->body, op->len);
    free(op);
    conn_done(c);
}

PROBE_HANDLER(probe_delay) {
    struct probe *p = ctx;
    struct server *s = c->srv;
    const char *arg = req->path + 7;
    size_t arglen = req->path_len - 7;
    int64_t ms = http_parse_seconds_ms(arg, arglen);
    if (ms < 0)
        return reply_fail(c, 400, "delay must be a non-negative number of seconds, got '%.*s'",
                           (int)(arglen > 64 ? 64 : arglen), arg);
    if ((uint64_t)ms > s->cfg->max_delay_ms)
        return reply_fail(c, 400, "delay %.*s s is over the maximum of %.3f s (max_delay)",
                           (int)(arglen > 64 ? 64 : arglen), arg, s->cfg->max_delay_ms / 1000.0);
    if (probe_form_refuse(c, req, body, body_len))
        return HANDLER_DONE;
    struct buf *b = &p->body;
    if (render_echo(c, req, body, body_len, ECHO_BODY, b) < 0)
        return oom(p, c);
    struct delay_op *op = malloc(sizeof *op + b->len + extra_size(c));
    if (!op)
        return oom(p, c);
    op->c = c;
    op->p = p;
    op->len = b->len;
    memcpy(op->body, buf_start(b), b->len);
    op->extra = extra_copy(c, op->body + b->len);
    buf_reset(b);
    timer_init(&op->t, delay_fire);
    server_timer_after_arrival(s, c, &op->t, (uint64_t)ms); /* from when the request came */
    p->delays_pending++;
    conn_pending(c, delay_cancel, op);
    return HANDLER_PENDING;
}

/* ---- /drip ------------------------------------------------------------------ */

struct drip_op {
    struct timer t;
    struct conn *c;
    struct probe *p;
    uint64_t bytes_left;
    uint64_t ticks_left;
    uint64_t interval_ms;
    int code;
    int started;
    char *extra; /* the dispatcher's header lines (CORS), or NULL */
};

static void drip_cancel(void *arg) {
    struct drip_op *op = arg;
    timer_cancel(&op->c->srv->wheel, &op->t);
    op->p->delays_pending--;
    free(op->extra);
    free(op);
}

static void drip_fire(struct timer *t) {
    struct drip_op *op = container_of(t, struct drip_op, t);
    struct conn *c = op->c;
    char stars[4096];
    if (!op->started) {
        op->started = 1;
        reply_head(c, op->code, CT_OCTETS, (int64_t)op->bytes_left, op->extra);
    }
    if (op->ticks_left > 0 && !c->head_only) {
        uint64_t n = op->bytes_left / op->ticks_left;
        op->bytes_left -= n;
        op->ticks_left--;
        memset(stars, '*', sizeof stars);
        for (uint64_t sent = 0; sent < n;) {
            size_t k = n - sent > sizeof stars ? sizeof stars : (size_t)(n - sent);
            buf_append(conn_out(c), stars, k);
            c->b->alog.bytes += k; /* the access log's body bytes (written past http_reply) */
            sent += k;
        }
    } else {
        op->ticks_left = 0;
    }
    if (op->ticks_left == 0) {
        /* The answer ends with its last byte: httpbin sleeps one more
         * interval after it, which only keeps a reused connection waiting
         * (issue 14); the bytes themselves leave as in httpbin. */
        op->p->delays_pending--;
        free(op->extra);
        free(op);
        conn_done(c);
        return;
    }
    /* Schedule the next byte before sending: if sending closes the
     * connection, drip_cancel then finds the timer pending and frees op. */
    server_timer_in(c->srv, &op->t, op->interval_ms);
    conn_flush(c);
}

PROBE_HANDLER(probe_drip) {
    struct probe *p = ctx;
    struct server *s = c->srv;
    size_t n;
    const char *v;
    int64_t duration = 2000, delay = 0, numbytes = 10, code = 200;
    if ((v = http_query_get(req, "duration", &n)) && (duration = http_parse_seconds_ms(v, n)) < 0)
        return reply_fail(c, 400, "duration must be a non-negative number of seconds");
    if ((v = http_query_get(req, "delay", &n)) && (delay = http_parse_seconds_ms(v, n)) < 0)
        return reply_fail(c, 400, "delay must be a non-negative number of seconds");
    if ((v = http_query_get(req, "numbytes", &n)) && (numbytes = http_parse_uint(v, n, s->cfg->max_bytes)) < 0)
        return reply_fail(c, 400, "numbytes must be a whole number from 0 to %llu (max_bytes)",
                           (unsigned long long)s->cfg->max_bytes);
    if ((v = http_query_get(req, "code", &n)) &&
        ((code = http_parse_uint(v, n, 599)) < 200))
        return reply_fail(c, 400, "code must be an HTTP status from 200 to 599");
    if ((uint64_t)(duration + delay) > s->cfg->max_delay_ms)
        return reply_fail(c, 400, "duration + delay is over the maximum of %.3f s (max_delay)",
                           s->cfg->max_delay_ms / 1000.0);
    struct drip_op *op = calloc(1, sizeof *op);
    if (!op)
        return oom(p, c);
    op->c = c;
    op->p = p;
    op->code = (int)code;
    if (reply_extra_lines(c) && !(op->extra = strdup(reply_extra_lines(c)))) {
        free(op);
        return oom(p, c);
    }
    op->bytes_left = (uint64_t)numbytes;
    /* One tick per byte, but no faster than one per 10 ms. */
    op->ticks_left = (uint64_t)numbytes;
    if (op->ticks_left > (uint64_t)duration / 10)
        op->ticks_left = (uint64_t)duration / 10;
    if (op->ticks_left == 0 && numbytes > 0)
        op->ticks_left = 1;
    op->interval_ms = op->ticks_left ? (uint64_t)duration / op->ticks_left : 0;
    timer_init(&op->t, drip_fire);
    /* The first byte leaves after delay, the rest one interval apart (httpbin). */
    server_timer_in(s, &op->t, (uint64_t)delay);
    p->delays_pending++;
    conn_pending(c, drip_cancel, op);
    return HANDLER_PENDING;
}

/* ---- /status/{codes} ---------------------------------------------------------- */

PROBE_HANDLER(probe_status) {
    const char *p = req->path + 8, *end = req->path + req->path_len;
    int codes[32];
    double weights[32], total = 0;
    size_t n = 0;
    while (p < end && n < 32) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        const char *colon = memchr(p, ':', (size_t)(stop - p));
        int64_t code = http_parse_uint(p, (size_t)((colon ? colon : stop) - p), 599);
        double w = 1;
        if (colon) {
            char tmp[32];
            size_t wl = (size_t)(stop - colon - 1);
            char *e;
            if (wl == 0 || wl >= sizeof tmp)
                code = -1;
            else {
                memcpy(tmp, colon + 1, wl);
                tmp[wl] = '\0';
                w = strtod(tmp, &e);
                if (*e || !isfinite(w) || w < 0)
                    code = -1;
            }
        }
        if (code < 200)
            return reply_fail(c, 400, "status codes must be from 200 to 599 (optionally "
                                       "weighted: 200:0.9,500:0.1), got '%.*s'",
                               (int)(req->path_len - 8 > 64 ? 64 : req->path_len - 8),
                               req->path + 8);
        codes[n] = (int)code;
        weights[n++] = w;
        total += w;
        p = stop + 1;
        if (comma && p == end)
            return reply_fail(c, 400, "empty status code after ','");
    }
    if (n == 0)
        return reply_fail(c, 400, "no status code given");
    int code = codes[0];
    if (n > 1) {
        double x = (double)random() / RAND_MAX * total;
        for (size_t i = 0; i < n; i++) {
            code = codes[i];
            if ((x -= weights[i]) <= 0)
                break;
        }
    }
    return probe_status_reply(c, code);
}

static const char teapot[] = "\n    -=[ teapot ]=-\n\n       _...._\n     .'  _ _ `.\n"
                             "    | .\"` ^ `\". _,\n    \\_;`\"---\"`|//\n      |       ;/\n"
                             "      \\_     _/\n        `\"\"\"`\n";

/* httpbin's status_code(): the bodies and headers some codes come with. */
enum handler_result probe_status_reply(struct conn *c, int code) {
    const char *extra = NULL, *body = "", *ctype = CT_TEXT;
    switch (code) {
    case 301: case 302: case 303: case 305: case 307:
        extra = "Location: /redirect/1\r\n";
        break;
    case 401:
        extra = "WWW-Authenticate: Basic realm=\"Fake Realm\"\r\n";
        break;
    case 402:
        body = "Fuck you, pay me!";
        extra = "X-More-Info: http://vimeo.com/22053820\r\n";
        break;
    case 406:
        body = "{\"message\": \"Client did not request a supported media type.\", \"accept\": "
               "[\"image/webp\", \"image/svg+xml\", \"image/jpeg\", \"image/png\", \"image/*\"]}";
        ctype = CT_JSON;
        break;
    case 407:
        extra = "Proxy-Authenticate: Basic realm=\"Fake Realm\"\r\n";
        break;
    case 418:
        body = teapot;
        extra = "X-More-Info: http://tools.ietf.org/html/rfc2324\r\n";
        break;
    }
    reply(c, code, code >= 200 && code != 204 && code != 304 ? ctype : NULL, extra, body,
          strlen(body));
    return HANDLER_DONE;
}

/* ---- /bytes/{n} and /stream/{n} -------------------------------------------------- */

static uint64_t xorshift64(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Bodies larger than this are streamed (conn_stream) rather than built whole. */
#define BYTES_STREAM_MIN 65536

/* A /bytes body being streamed: the generator's state and what is left. */
struct bytes_gen {
    uint64_t seed;
    uint64_t left;
};

/* Whole 8-byte words until the last slice, so the bytes are those that
 * building the body whole gives (the same seed, the same body). */
static int bytes_produce(void *arg, struct buf *out, size_t room) {
    struct bytes_gen *g = arg;
    size_t n = room & ~(size_t)7;
    if (n == 0)
        n = 8;
    if (n > g->left)
        n = (size_t)g->left;
    if (buf_reserve(out, n + 8) < 0)
        return -1;
    char *w = buf_start(out) + out->len;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = xorshift64(&g->seed);
        memcpy(w + i, &r, 8);
    }
    out->len += n;
    g->left -= n;
    return g->left > 0;
}

int probe_seed(const struct http_request *req, uint64_t *seed) {
    size_t sl;
    const char *sv = http_query_get(req, "seed", &sl);
    if (sv) {
        int64_t v = http_parse_uint(sv, sl, UINT32_MAX);
        if (v < 0)
            return -1;
        *seed = (uint64_t)v * 0x9E3779B97F4A7C15ull + 1;
    } else if (getrandom(seed, sizeof *seed, GRND_NONBLOCK) != sizeof *seed || *seed == 0) {
        *seed = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull + 1;
    }
    return 0;
}

PROBE_HANDLER(probe_bytes) {
    struct probe *p = ctx;
    struct server *s = c->srv;
    int64_t n = http_parse_uint(req->path + 7, req->path_len - 7, s->cfg->max_bytes);
    if (n < 0)
        return reply_fail(c, 400, "n must be a whole number from 0 to %llu (max_bytes)",
                           (unsigned long long)s->cfg->max_bytes);
    uint64_t seed;
    if (probe_seed(req, &seed) < 0)
        return reply_fail(c, 400, "seed must be a whole number");
    if (n > BYTES_STREAM_MIN) {
        /* Large: the head now, the body as the socket takes it. */
        if (reply_head(c, 200, CT_OCTETS, n, NULL) < 0)
            return HANDLER_DONE;
        struct bytes_gen *g = malloc(sizeof *g);
        if (!g) {
            conn_fail(c);
            return HANDLER_DONE;
        }
        g->seed = seed;
        g->left = (uint64_t)n;
        conn_stream(c, bytes_produce, free, g);
        return HANDLER_DONE;
    }
    struct buf *b = &p->body;
    if (buf_reserve(b, (size_t)n + 8) < 0)
        return oom(p, c);
    char *w = buf_start(b);
    for (int64_t i = 0; i < n; i += 8) {
        uint64_t r = xorshift64(&seed);
        memcpy(w + i, &r, 8);
    }
    b->len = (size_t)n;
    return reply_body(p, c, 200, CT_OCTETS);
}

/* A /stream/{n} answer being streamed: httpbin's lines are the /get
 * answer with an "id" first, each line one chunk (raw for HTTP/1.0, where
 * the close ends the body). */
struct stream_gen {
    int64_t i, n;
    int http10;
    size_t len;
    char rest[]; /* the /get answer after its '{' */
};

static int stream_produce(void *arg, struct buf *out, size_t room) {
    struct stream_gen *g = arg;
    size_t start = out->len;
    while (g->i < g->n && out->len - start < room) {
        char id[48];
        int idl = snprintf(id, sizeof id, "{\"id\": %lld, ", (long long)g->i);
        int r = 0;
        if (!g->http10)
            r |= buf_appendf(out, "%zx\r\n", (size_t)idl + g->len);
        r |= buf_append(out, id, (size_t)idl);
        r |= buf_append(out, g->rest, g->len);
        if (!g->http10)
            r |= buf_append(out, "\r\n", 2);
        if (r)
            return -1;
        g->i++;
    }
    if (g->i < g->n)
        return 1;
    if (!g->http10 && buf_append(out, "0\r\n\r\n", 5) < 0)
        return -1;
    return 0;
}

PROBE_HANDLER(probe_stream) {
    struct probe *p = ctx;
    struct server *s = c->srv;
    int64_t n = http_parse_uint(req->path + 8, req->path_len - 8, s->cfg->max_stream);
    if (n < 0)
        return reply_fail(c, 400, "n must be a whole number from 0 to %llu (max_stream)",
                           (unsigned long long)s->cfg->max_stream);
    struct buf *b = &p->body;
    if (render_echo(c, req, body, body_len, 0, b) < 0)
        return oom(p, c);
    struct stream_gen *g = malloc(sizeof *g + b->len);
    if (!g)
        return oom(p, c);
    g->i = 0;
    g->n = n;
    g->len = b->len - 1;
    memcpy(g->rest, buf_start(b) + 1, g->len);
    buf_reset(b);
    /* The lines are produced as the socket drains (conn_stream), never
     * all at once: max_stream may allow a million of them. */
    if (reply_head(c, 200, CT_JSON, -1, NULL) < 0) {
        free(g);
        return HANDLER_DONE;
    }
    g->http10 = c->http10;
    conn_stream(c, stream_produce, free, g);
    return HANDLER_DONE;
}

/* ---- /health and /metrics ---------------------------------------------------------- */

PROBE_HANDLER(probe_health) {
    struct probe *p = ctx;
    struct server *s = c->srv;
    struct buf *b = &p->body;
    char why[256];
    int draining = s->draining || s->announcing; /* announcing: [server] drain_delay */
    int degraded = !draining && server_services_health(s, why, sizeof why);
    buf_appendf(b,
                "{\"status\": \"%s\", \"connections\": %llu, \"uptime_seconds\": %lld, "
                "\"version\": \"%s\"",
                draining ? "draining" : degraded ? "degraded" : "ok",
                (unsigned long long)(s->group ? workers_conns_open(s) : s->metrics.conns_open),
                (long long)(time(NULL) - s->start_time), PACKAGE_VERSION);
    if (degraded) /* a service cannot serve (its backend is unreachable): say which and why */
        buf_appends(b, ", \"why\": "), buf_append_json_str(b, why, strlen(why));
    buf_appends(b, "}\n");
    return reply_body(p, c, draining || degraded ? 503 : 200, CT_JSON);
}

PROBE_HANDLER(probe_metrics) {
    struct probe *p = ctx;
    struct server *s = c->srv;
    /* It names every queue: behind [auth] unless [metrics] public = on. */
    if (!s->cfg->metrics_public && !api_authorized(c, req))
        return HANDLER_DONE;
    struct metrics_gauges g = {
        .timers_pending = s->wheel.count,
        .delays_pending = p->delays_pending,
        .start_time = (uint64_t)s->start_time,
        .max_connections = s->cfg->max_connections,
        .output_budget = s->cfg->output_budget,
    };
    const struct metrics *m = &s->metrics;
    struct metrics sum; /* workers: every loop's counters, summed (net/workers.h) */
    if (s->group) {
        workers_metrics_sum(s, &sum, &g);
        m = &sum;
    }
    if (metrics_render(m, &g, &p->body) < 0 ||
        server_services_metrics(s, &p->body) < 0 || process_metrics_render(&p->body) < 0)
        return oom(p, c);
    return reply_body(p, c, 200, "text/plain; version=0.0.4; charset=utf-8");
}
