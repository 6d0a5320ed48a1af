/*
 * probe_inspect: the request looked at piece by piece (/headers, /ip,
 * /user-agent), the response shaped by the query (/response-headers), and
 * cookies (/cookies, /cookies/set, /cookies/delete), as httpbin answers.
 */
#include "ac_config.h"
#include "api/probe_int.h"

#include "core/buf.h"
#include "http/cookie.h"
#include "http/http_parse.h"
#include "http/http_query.h"
#include "net/http_reply.h"

#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_PAIRS 64

extern char **environ;

PROBE_HANDLER(probe_headers) {
    struct probe *p = ctx;
    (void)body, (void)body_len;
    int r = buf_appends(&p->body, "{\"headers\": ");
    r |= probe_append_headers(&p->body, req);
    r |= buf_appends(&p->body, "}\n");
    return r ? probe_oom(p, c) : probe_send(p, c, 200, CT_JSON, NULL);
}

PROBE_HANDLER(probe_ip) {
    struct probe *p = ctx;
    (void)body, (void)body_len;
    int r = buf_appends(&p->body, "{\"origin\": ");
    r |= probe_append_origin(&p->body, c, req);
    r |= buf_appends(&p->body, "}\n");
    return r ? probe_oom(p, c) : probe_send(p, c, 200, CT_JSON, NULL);
}

PROBE_HANDLER(probe_user_agent) {
    struct probe *p = ctx;
    (void)body, (void)body_len;
    const struct http_header *ua = probe_header(req, "user-agent");
    int r = buf_appends(&p->body, "{\"user-agent\": ");
    r |= ua ? buf_append_json_str(&p->body, ua->value, ua->value_len) : buf_appends(&p->body, "null");
    r |= buf_appends(&p->body, "}\n");
    return r ? probe_oom(p, c) : probe_send(p, c, 200, CT_JSON, NULL);
}

/* The query's pairs decoded into lines "Name: value\r\n" (lines) and JSON
 * members (json, after Content-Type and Content-Length); -2 when a name is
 * not a token or a value holds a control character (header injection). */
static int query_headers(const struct http_request *req, struct buf *lines, struct buf *json) {
    struct probe_kv kv[MAX_PAIRS];
    size_t n = probe_pairs(req->query, req->query_len, kv, MAX_PAIRS);
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        struct buf k = BUF_INIT, v = BUF_INIT;
        r |= probe_urldecode(&k, kv[i].k, kv[i].klen, 1);
        r |= probe_urldecode(&v, kv[i].v, kv[i].vlen, 1);
        int bad = r || k.len == 0;
        for (size_t j = 0; !bad && j < k.len; j++)
            bad = !strchr("!#$%&'*+-.^_`|~", buf_start(&k)[j]) &&
                  !((buf_start(&k)[j] | 0x20) >= 'a' && (buf_start(&k)[j] | 0x20) <= 'z') &&
                  !(buf_start(&k)[j] >= '0' && buf_start(&k)[j] <= '9');
        for (size_t j = 0; !bad && j < v.len; j++)
            bad = (unsigned char)buf_start(&v)[j] < 0x20 && buf_start(&v)[j] != '\t';
        /* The answer's own framing is not the query's to change. */
        static const char *const framing[] = {"content-length", "transfer-encoding",
                                              "connection", "keep-alive", "upgrade", "trailer",
                                              NULL};
        for (size_t j = 0; !bad && framing[j]; j++)
            bad = k.len == strlen(framing[j]) && strncasecmp(buf_start(&k), framing[j], k.len) == 0;
        if (!bad) {
            r |= buf_append(lines, buf_start(&k), k.len);
            r |= buf_append(lines, ": ", 2);
            r |= buf_append(lines, buf_start(&v), v.len);
            r |= buf_append(lines, "\r\n", 2);
            /* Repeated names become lists, as werkzeug's get_all does. */
            int first = 1, count = 0;
            for (size_t j = 0; j < n; j++)
                if (kv[j].klen == kv[i].klen && memcmp(kv[j].k, kv[i].k, kv[i].klen) == 0) {
                    first &= j >= i;
                    count++;
                }
            if (first) {
                r |= buf_appends(json, ", ");
                r |= buf_append_json_str(json, buf_start(&k), k.len);
                r |= buf_appends(json, count > 1 ? ": [" : ": ");
                for (size_t j = i, m = 0; j < n; j++) {
                    if (kv[j].klen != kv[i].klen || memcmp(kv[j].k, kv[i].k, kv[i].klen) != 0)
                        continue;
                    struct buf w = BUF_INIT;
                    r |= probe_urldecode(&w, kv[j].v, kv[j].vlen, 1);
                    r |= buf_appends(json, m++ ? ", " : "");
                    r |= buf_append_json_str(json, buf_start(&w), w.len);
                    buf_free(&w);
                }
                if (count > 1)
                    r |= buf_appends(json, "]");
            }
        }
        buf_free(&k);
        buf_free(&v);
        if (bad && !r)
            return -2;
    }
    r |= buf_append(lines, "", 1);
    return r;
}

/* httpbin: the query becomes response headers, and the body is the JSON
 * of the answer's headers, its own Content-Length included (iterated
 * until the length no longer changes). */
PROBE_HANDLER(probe_response_headers) {
    struct probe *p = ctx;
    (void)body, (void)body_len;
    struct buf lines = BUF_INIT, json = BUF_INIT;
    int r = query_headers(req, &lines, &json);
    if (r == -2) {
        buf_free(&lines);
        buf_free(&json);
        return reply_fail(c, 400, "response-headers: a header name must be a token other than "
                                  "the framing ones (Content-Length, Transfer-Encoding, "
                                  "Connection, ...) and a value must not hold control characters");
    }
    size_t len = 0, prev;
    do {
        prev = len;
        buf_reset(&p->body);
        r |= buf_appendf(&p->body, "{\"Content-Length\": \"%zu\", \"Content-Type\": \"%s\"",
                         prev, CT_JSON);
        r |= buf_append(&p->body, buf_start(&json), json.len);
        r |= buf_appends(&p->body, "}\n");
        len = p->body.len;
    } while (!r && len != prev);
    enum handler_result res =
        r ? probe_oom(p, c) : probe_send(p, c, 200, CT_JSON, lines.len ? buf_start(&lines) : NULL);
    buf_free(&lines);
    buf_free(&json);
    return res;
}

/* ---- cookies ---------------------------------------------------------------- */

/* httpbin hides what its hosting added (analytics cookies) unless show_env. */
static int env_cookie(const char *k, size_t n) {
    static const char *const env[] = {"_gauges_unique", "_gauges_unique_year",
                                      "_gauges_unique_month", "_gauges_unique_day",
                                      "_gauges_unique_hour", "__utmz", "__utma", "__utmb", NULL};
    for (size_t i = 0; env[i]; i++)
        if (strlen(env[i]) == n && memcmp(env[i], k, n) == 0)
            return 1;
    return 0;
}

PROBE_HANDLER(probe_cookies) {
    struct probe *p = ctx;
    (void)body, (void)body_len;
    size_t sl;
    int show_env = http_query_get(req, "show_env", &sl) != NULL;
    struct http_cookie ck[MAX_PAIRS];
    size_t n = 0;
    int r = buf_appends(&p->body, "{\"cookies\": {");
    for (size_t h = 0; h < req->nheaders; h++) {
        const struct http_header *f = &req->headers[h];
        if (f->name_len != 6 || strncasecmp(f->name, "cookie", 6) != 0)
            continue;
        n += http_cookie_parse(f->value, f->value_len, ck + n, MAX_PAIRS - n);
    }
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if (!show_env && env_cookie(ck[i].name, ck[i].name_len))
            continue;
        /* A repeated name: the first value, as werkzeug's dict(cookies) keeps. */
        int dup = 0;
        for (size_t j = 0; j < i && !dup; j++)
            dup = ck[j].name_len == ck[i].name_len &&
                  memcmp(ck[j].name, ck[i].name, ck[i].name_len) == 0;
        if (dup)
            continue;
        r |= buf_appends(&p->body, first ? "" : ", ");
        first = 0;
        r |= buf_append_json_str(&p->body, ck[i].name, ck[i].name_len);
        r |= buf_appends(&p->body, ": ");
        r |= buf_append_json_str(&p->body, ck[i].value, ck[i].value_len);
    }
    r |= buf_appends(&p->body, "}}\n");
    return r ? probe_oom(p, c) : probe_send(p, c, 200, CT_JSON, NULL);
}

/* Set-Cookie lines are built from decoded names and values: refuse what
 * would break the header or the cookie syntax. */
static int cookie_ok(const char *s, size_t n, int name) {
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x21 || ch == 0x7f || ch == ';' || ch == ',' || ch == '"' || ch == '\\' ||
            (name && ch == '='))
            return 0;
    }
    return !name || n > 0;
}

static enum handler_result cookie_redirect(struct probe *p, struct conn *c, struct buf *lines) {
    static const char html[] =
        "<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n<h1>Redirecting...</h1>\n"
        "<p>You should be redirected automatically to the target URL: <a href=\"/cookies\">"
        "/cookies</a>. If not, click the link.\n";
    int r = buf_appends(lines, "Location: /cookies\r\n");
    r |= buf_append(lines, "", 1);
    buf_reset(&p->body);
    r |= buf_appends(&p->body, html);
    enum handler_result res =
        r ? probe_oom(p, c) : probe_send(p, c, 302, "text/html; charset=utf-8", buf_start(lines));
    buf_free(lines);
    return res;
}

/* /cookies/set?name=value..., /cookies/set/{name}/{value}, /cookies/delete?name... */
PROBE_HANDLER(probe_cookies_set) {
    struct probe *p = ctx;
    (void)body, (void)body_len;
    int del = req->path_len >= 15 && memcmp(req->path, "/cookies/delete", 15) == 0;
    struct probe_kv kv[MAX_PAIRS];
    size_t n;
    if (!del && req->path_len > 13) { /* /cookies/set/{name}/{value} */
        struct probe_kv seg[3];
        if (probe_path_args(req, 13, seg, 3) != 2)
            return reply_fail(c, 404, "use /cookies/set/{name}/{value}");
        kv[0] = (struct probe_kv){seg[0].k, seg[1].k, seg[0].klen, seg[1].klen};
        n = 1;
    } else {
        n = probe_pairs(req->query, req->query_len, kv, MAX_PAIRS);
    }
    struct buf lines = BUF_INIT;
    int r = 0;
    for (size_t i = 0; i < n && !r; i++) {
        struct buf k = BUF_INIT, v = BUF_INIT;
        r |= probe_urldecode(&k, kv[i].k, kv[i].klen, 1);
        r |= probe_urldecode(&v, kv[i].v, kv[i].vlen, 1);
        if (!r && (!cookie_ok(buf_start(&k), k.len, 1) || !cookie_ok(buf_start(&v), v.len, 0))) {
            buf_free(&k);
            buf_free(&v);
            buf_free(&lines);
            return reply_fail(c, 400, "a cookie name must be a non-empty token and a value must "
                                      "not hold spaces, control characters, ';', ',', '\"' or '\\'");
        }
        r |= buf_appends(&lines, "Set-Cookie: ");
        r |= buf_append(&lines, buf_start(&k), k.len);
        if (del)
            r |= buf_appends(&lines, "=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/");
        else {
            r |= buf_append(&lines, "=", 1);
            r |= buf_append(&lines, buf_start(&v), v.len);
            r |= buf_appends(&lines, conn_is_tls(c) ? "; Secure; Path=/" : "; Path=/");
        }
        r |= buf_append(&lines, "\r\n", 2);
        buf_free(&k);
        buf_free(&v);
    }
    if (r) {
        buf_free(&lines);
        return probe_oom(p, c);
    }
    return cookie_redirect(p, c, &lines);
}

/* ---- go-httpbin's /hostname and /dump/request ------------------------------- */

/* go-httpbin answers a fixed name unless told to show the real one; awaitd
 * never shows the machine's. */
PROBE_HANDLER(probe_hostname) {
    struct probe *p = ctx;
    (void)req, (void)body, (void)body_len;
    buf_appends(&p->body, "{\"hostname\": \"awaitd\"}\n");
    return probe_send(p, c, 200, CT_JSON, NULL);
}

/* The request as it came (head rebuilt from the parsed fields, Host first,
 * then the body), as text. */
PROBE_HANDLER(probe_dump_request) {
    struct probe *p = ctx;
    struct buf *o = &p->body;
    int r = buf_append(o, req->method_str, req->method_len);
    r |= buf_append(o, " ", 1);
    r |= buf_append(o, req->target, req->target_len);
    r |= buf_appends(o, req->minor_version ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
    if (req->host) {
        r |= buf_appends(o, "Host: ");
        r |= buf_append(o, req->host, req->host_len);
        r |= buf_append(o, "\r\n", 2);
    }
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        if (h->name_len == 4 && strncasecmp(h->name, "host", 4) == 0)
            continue;
        r |= buf_append(o, h->name, h->name_len);
        r |= buf_append(o, ": ", 2);
        r |= buf_append(o, h->value, h->value_len);
        r |= buf_append(o, "\r\n", 2);
    }
    r |= buf_append(o, "\r\n", 2);
    if (body_len)
        r |= buf_append(o, body, body_len);
    return r ? probe_oom(p, c) : probe_send(p, c, 200, CT_TEXT, NULL);
}

/* ---- go-httpbin's /trailers?name=value ------------------------------------------- */

/* Fields that frame, route, authenticate or describe the body may not be
 * trailers (RFC 9110 6.5.1). */
static int forbidden_trailer(const char *k, size_t n) {
    static const char *const no[] = {
        "content-length", "transfer-encoding", "trailer", "connection", "keep-alive", "upgrade",
        "te", "host", "authorization", "proxy-authorization", "www-authenticate",
        "proxy-authenticate", "set-cookie", "cookie", "content-type", "content-encoding",
        "content-range", "cache-control", "expect", "max-forwards", "pragma", "range", "age",
        "expires", "date", "location", "retry-after", "vary", "warning", NULL};
    for (size_t i = 0; no[i]; i++)
        if (strlen(no[i]) == n && strncasecmp(no[i], k, n) == 0)
            return 1;
    return 0;
}

/* The /anything echo, chunked, then the query's pairs as trailer fields
 * (announced in Trailer). */
PROBE_HANDLER(probe_trailers) {
    struct probe *p = ctx;
    struct probe_kv kv[MAX_PAIRS];
    size_t n = probe_pairs(req->query, req->query_len, kv, MAX_PAIRS);
    struct buf announce = BUF_INIT, fields = BUF_INIT;
    int r = buf_appends(&announce, "Trailer: "), bad = 0;
    for (size_t i = 0; i < n && !r && !bad; i++) {
        struct buf k = BUF_INIT, v = BUF_INIT;
        r |= probe_urldecode(&k, kv[i].k, kv[i].klen, 1);
        r |= probe_urldecode(&v, kv[i].v, kv[i].vlen, 1);
        const char *ks = buf_start(&k);
        bad = r || k.len == 0 || forbidden_trailer(ks, k.len);
        for (size_t j = 0; !bad && j < k.len; j++)
            bad = !(((ks[j] | 0x20) >= 'a' && (ks[j] | 0x20) <= 'z') ||
                    (ks[j] >= '0' && ks[j] <= '9') || strchr("!#$%&'*+-.^_`|~", ks[j]));
        for (size_t j = 0; !bad && j < v.len; j++)
            bad = (unsigned char)buf_start(&v)[j] < 0x20 && buf_start(&v)[j] != '\t';
        if (!bad) {
            r |= buf_appends(&announce, i ? ", " : "");
            r |= buf_append(&announce, ks, k.len);
            r |= buf_append(&fields, ks, k.len);
            r |= buf_append(&fields, ": ", 2);
            r |= buf_append(&fields, buf_start(&v), v.len);
            r |= buf_append(&fields, "\r\n", 2);
        }
        buf_free(&k);
        buf_free(&v);
    }
    r |= buf_appends(&announce, "\r\n");
    r |= buf_append(&announce, "", 1);
    if (!r && !bad)
        r |= probe_render_echo(c, req, body, body_len, ECHO_BODY | ECHO_JSON | ECHO_METHOD,
                               &p->body);
    enum handler_result res = HANDLER_DONE;
    if (bad && !r) {
        reply_error(c, 400, "trailers: each name must be a token that may be a trailer (not "
                            "Content-Length, Authorization, Content-Type, ...), each value free "
                            "of control characters");
    } else if (r) {
        res = probe_oom(p, c);
    } else {
        reply_head(c, 200, CT_JSON, -1, n ? buf_start(&announce) : NULL);
        reply_chunk(c, buf_start(&p->body), p->body.len);
        if (c->head_only || c->http10) {
            reply_chunk_end(c); /* no chunked framing, so no trailers */
        } else if (!c->failed) {
            struct buf *o = conn_out(c);
            if (buf_append(o, "0\r\n", 3) < 0 || buf_append(o, buf_start(&fields), fields.len) < 0 ||
                buf_append(o, "\r\n", 2) < 0)
                conn_fail(c);
        }
    }
    buf_reset(&p->body);
    buf_free(&announce);
    buf_free(&fields);
    return res;
}

/* go-httpbin's /upload: the /get echo with the method and the body's
 * length ("bytes_received") instead of the body. */
PROBE_HANDLER(probe_upload) {
    struct probe *p = ctx;
    struct buf *o = &p->body;
    if (probe_render_echo(c, req, body, body_len, ECHO_METHOD, o) < 0)
        return probe_oom(p, c);
    o->len -= 2; /* "}\n" */
    if (buf_appendf(o, ", \"bytes_received\": %zu}\n", body_len) < 0)
        return probe_oom(p, c);
    return probe_send(p, c, 200, CT_JSON, NULL);
}

/* go-httpbin's /env: the daemon's environment variables named HTTPBIN_*
 * only (the operator's choice to show them), as {"env": {...}}. */
PROBE_HANDLER(probe_env) {
    struct probe *p = ctx;
    (void)req, (void)body, (void)body_len;
    struct buf *o = &p->body;
    int r = buf_appends(o, "{\"env\": {");
    int first = 1;
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (strncmp(*e, "HTTPBIN_", 8) != 0 || !eq)
            continue;
        r |= buf_appends(o, first ? "" : ", ");
        r |= buf_append_json_str(o, *e, (size_t)(eq - *e));
        r |= buf_appends(o, ": ");
        r |= buf_append_json_str(o, eq + 1, strlen(eq + 1));
        first = 0;
    }
    r |= buf_appends(o, "}}\n");
    return r ? probe_oom(p, c) : probe_send(p, c, 200, CT_JSON, NULL);
}

/* go-httpbin's /version, for awaitd. */
PROBE_HANDLER(probe_version) {
    struct probe *p = ctx;
    (void)req, (void)body, (void)body_len;
    buf_appends(&p->body, "{\"service\": \"awaitd\", \"version\": \"" PACKAGE_VERSION "\"}\n");
    return probe_send(p, c, 200, CT_JSON, NULL);
}
