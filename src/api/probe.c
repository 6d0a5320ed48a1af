#include "api/probe.h"

#include "ac_config.h"

#include "core/buf.h"
#include "core/config.h"
#include "http/http_parse.h"
#include "http/http_query.h"
#include "net/http_reply.h"
#include "net/metrics.h"
#include "net/server.h"
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

enum echo_fields { ECHO_BODY = 1, ECHO_METHOD = 2, ECHO_JSON = 4 };

struct kv {
    const char *k, *v;
    size_t klen, vlen;
};

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

static size_t split_pairs(const char *s, size_t n, struct kv *out, size_t max) {
    size_t count = 0;
    const char *end = s + n;
    while (s < end && count < max) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *stop = amp ? amp : end;
        if (stop > s) {
            const char *eq = memchr(s, '=', (size_t)(stop - s));
            out[count].k = s;
            out[count].klen = (size_t)((eq ? eq : stop) - s);
            out[count].v = eq ? eq + 1 : stop;
            out[count].vlen = eq ? (size_t)(stop - eq - 1) : 0;
            count++;
        }
        s = stop + 1;
    }
    return count;
}

/* {"k": "v", "k2": ["a", "b"]}: repeated keys become lists, as in httpbin. */
static int append_pairs_json(struct buf *o, const char *s, size_t n) {
    struct kv kv[MAX_ARGS];
    size_t count = s ? split_pairs(s, n, kv, MAX_ARGS) : 0;
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

/* Header names title-cased as httpbin shows them ("User-Agent"); repeated
 * fields joined with ",". */
static int append_headers_json(struct buf *o, const struct http_request *req) {
    int r = buf_append(o, "{", 1);
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = req->headers[j].name_len == h->name_len &&
                   strncasecmp(req->headers[j].name, h->name, h->name_len) == 0;
        if (seen)
            continue;
        char name[256];
        size_t nl = h->name_len < sizeof name ? h->name_len : sizeof name;
        for (size_t k = 0; k < nl; k++) {
            int up = k == 0 || h->name[k - 1] == '-';
            name[k] = (char)(up ? toupper((unsigned char)h->name[k])
                                : tolower((unsigned char)h->name[k]));
        }
        r |= buf_appends(o, i ? ", " : "");
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

static int has_prefix_ci(const struct http_header *h, const char *p) {
    size_t n = strlen(p);
    return h && h->value_len >= n && strncasecmp(h->value, p, n) == 0;
}

static int append_body_fields(struct buf *o, const struct http_request *req, const char *body,
                              size_t len) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const struct http_header *ct = find(req, "content-type");
    int r = buf_appends(o, "\"data\": ");
    if (utf8_valid(body, len)) {
        r |= buf_append_json_str(o, body, len);
    } else {
        /* Binary bodies as a data URL, as httpbin does. */
        r |= buf_appends(o, "\"data:application/octet-stream;base64,");
        r |= buf_reserve(o, (len + 2) / 3 * 4 + 2);
        if (r)
            return -1;
        char *w = buf_start(o) + o->len;
        const unsigned char *p = (const unsigned char *)body;
        size_t i = 0;
        for (; i + 2 < len; i += 3, w += 4) {
            w[0] = b64[p[i] >> 2];
            w[1] = b64[(p[i] & 3) << 4 | p[i + 1] >> 4];
            w[2] = b64[(p[i + 1] & 15) << 2 | p[i + 2] >> 6];
            w[3] = b64[p[i + 2] & 63];
        }
        if (i < len) {
            w[0] = b64[p[i] >> 2];
            w[1] = b64[(p[i] & 3) << 4 | (i + 1 < len ? p[i + 1] >> 4 : 0)];
            w[2] = i + 1 < len ? b64[(p[i + 1] & 15) << 2] : '=';
            w[3] = '=';
            w += 4;
        }
        o->len = (size_t)(w - buf_start(o));
        r |= buf_append(o, "\"", 1);
    }
    r |= buf_appends(o, ", \"files\": {}, \"form\": ");
    if (has_prefix_ci(ct, "application/x-www-form-urlencoded"))
        r |= append_pairs_json(o, body, len);
    else
        r |= buf_appends(o, "{}");
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
    char origin[64];
    int r = buf_appends(o, "{\"args\": ");
    r |= append_pairs_json(o, req->query, req->query_len);
    if (fields & ECHO_BODY) {
        r |= buf_appends(o, ", ");
        r |= append_body_fields(o, req, body, len);
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
    conn_peer_text(c, origin, sizeof origin);
    r |= buf_append_json_str(o, origin, strlen(origin));
    r |= buf_appends(o, ", \"url\": ");
    if (req->target_len && req->target[0] == '/') {
        r |= conn_is_tls(c) ? buf_append(o, "\"https://", 9) : buf_append(o, "\"http://", 8);
        if (req->host)
            r |= buf_append_json_chars(o, req->host, req->host_len);
        r |= buf_append_json_chars(o, req->target, req->target_len);
        r |= buf_append(o, "\"", 1);
    } else {
        r |= buf_append_json_str(o, req->target, req->target_len);
    }
    r |= buf_appends(o, "}\n");
    return r ? -1 : 0;
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
static enum handler_result reply_body(struct probe *p, struct conn *c, int status,
                                      const char *ctype) {
    struct buf *b = &p->body;
    reply(c, status, ctype, NULL, buf_start(b), b->len);
    buf_reset(b);
    return HANDLER_DONE;
}

static enum handler_result oom(struct probe *p, struct conn *c) {
    buf_reset(&p->body);
    c->keep_alive = 0;
    reply_error(c, 500, "out of memory");
    return HANDLER_DONE;
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
    char body[]; /* the answer, rendered when the request arrived */
};

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
    reply(c, 200, CT_JSON, NULL, op->body, op->len);
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
    struct buf *b = &p->body;
    if (render_echo(c, req, body, body_len, ECHO_BODY, b) < 0)
        return oom(p, c);
    struct delay_op *op = malloc(sizeof *op + b->len);
    if (!op)
        return oom(p, c);
    op->c = c;
    op->p = p;
    op->len = b->len;
    memcpy(op->body, buf_start(b), b->len);
    buf_reset(b);
    timer_init(&op->t, delay_fire);
    server_timer_in(s, &op->t, (uint64_t)ms);
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
    int finishing; /* last byte sent; the next tick ends the answer */
};

static void drip_cancel(void *arg) {
    struct drip_op *op = arg;
    timer_cancel(&op->c->srv->wheel, &op->t);
    op->p->delays_pending--;
    free(op);
}

static void drip_fire(struct timer *t) {
    struct drip_op *op = container_of(t, struct drip_op, t);
    struct conn *c = op->c;
    char stars[4096];
    if (!op->started) {
        op->started = 1;
        reply_head(c, op->code, CT_OCTETS, (int64_t)op->bytes_left, NULL);
    }
    if (op->finishing) {
        op->p->delays_pending--;
        free(op);
        conn_done(c);
        return;
    }
    if (op->ticks_left > 0 && !c->head_only) {
        uint64_t n = op->bytes_left / op->ticks_left;
        op->bytes_left -= n;
        op->ticks_left--;
        memset(stars, '*', sizeof stars);
        for (uint64_t sent = 0; sent < n;) {
            size_t k = n - sent > sizeof stars ? sizeof stars : (size_t)(n - sent);
            buf_append(conn_out(c), stars, k);
            sent += k;
        }
    } else {
        op->ticks_left = 0;
    }
    if (op->ticks_left == 0) {
        /* httpbin pauses after every byte, the last one too: the answer
         * ends one interval after it, so the whole takes delay + duration. */
        op->finishing = 1;
        if (op->interval_ms == 0) {
            drip_fire(t);
            return;
        }
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
    reply(c, code, code >= 200 && code != 204 && code != 304 ? CT_TEXT : NULL,
          code == 401 ? "WWW-Authenticate: Basic realm=\"Fake Realm\"\r\n" : NULL, "", 0);
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

PROBE_HANDLER(probe_bytes) {
    struct probe *p = ctx;
    struct server *s = c->srv;
    int64_t n = http_parse_uint(req->path + 7, req->path_len - 7, s->cfg->max_bytes);
    if (n < 0)
        return reply_fail(c, 400, "n must be a whole number from 0 to %llu (max_bytes)",
                           (unsigned long long)s->cfg->max_bytes);
    size_t sl;
    const char *sv = http_query_get(req, "seed", &sl);
    uint64_t seed;
    if (sv) {
        int64_t v = http_parse_uint(sv, sl, UINT32_MAX);
        if (v < 0)
            return reply_fail(c, 400, "seed must be a whole number");
        seed = (uint64_t)v * 0x9E3779B97F4A7C15ull + 1;
    } else if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed || seed == 0) {
        seed = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull + 1;
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
    /* httpbin's lines are the /get answer with an "id" first. */
    struct buf line = BUF_INIT;
    int r = reply_head(c, 200, CT_JSON, -1, NULL);
    for (int64_t i = 0; i < n && !r; i++) {
        buf_reset(&line);
        r |= buf_appendf(&line, "{\"id\": %lld, ", (long long)i);
        r |= buf_append(&line, buf_start(b) + 1, b->len - 1);
        r |= reply_chunk(c, buf_start(&line), line.len);
    }
    r |= reply_chunk_end(c);
    buf_free(&line);
    buf_reset(b);
    if (r)
        c->keep_alive = 0; /* a broken chunked stream must end with the connection */
    return HANDLER_DONE;
}

/* ---- /health and /metrics ---------------------------------------------------------- */

PROBE_HANDLER(probe_health) {
    struct probe *p = ctx;
    struct server *s = c->srv;
    struct buf *b = &p->body;
    char why[256];
    int degraded = !s->draining && server_services_health(s, why, sizeof why);
    buf_appendf(b,
                "{\"status\": \"%s\", \"connections\": %llu, \"uptime_seconds\": %lld, "
                "\"version\": \"%s\"",
                s->draining ? "draining" : degraded ? "degraded" : "ok",
                (unsigned long long)s->metrics.conns_open,
                (long long)(time(NULL) - s->start_time), PACKAGE_VERSION);
    if (degraded) /* a service cannot serve (its backend is unreachable): say which and why */
        buf_appends(b, ", \"why\": "), buf_append_json_str(b, why, strlen(why));
    buf_appends(b, "}\n");
    return reply_body(p, c, s->draining || degraded ? 503 : 200, CT_JSON);
}

PROBE_HANDLER(probe_metrics) {
    struct probe *p = ctx;
    struct server *s = c->srv;
    struct metrics_gauges g = {
        .timers_pending = s->wheel.count,
        .delays_pending = p->delays_pending,
        .start_time = (uint64_t)s->start_time,
        .max_connections = s->cfg->max_connections,
    };
    if (metrics_render(&s->metrics, &g, &p->body) < 0 ||
        server_services_metrics(s, &p->body) < 0)
        return oom(p, c);
    return reply_body(p, c, 200, "text/plain; version=0.0.4; charset=utf-8");
}
