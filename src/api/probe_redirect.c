/*
 * probe_redirect: httpbin's redirect chains. /redirect/n (relative hops,
 * or absolute ones with ?absolute=true), /relative-redirect/n,
 * /absolute-redirect/n each answer 302 toward n-1 and, at 1, toward /get;
 * /redirect-to?url=&status_code= answers with exactly that Location.
 */
#include "api/probe_int.h"

#include "core/buf.h"
#include "http/http_parse.h"
#include "http/http_query.h"
#include "net/http_reply.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_HOPS 1000000

static enum handler_result redirect(struct probe *p, struct conn *c,
                                    const struct http_request *req, int absolute,
                                    const char *kind, int64_t n) {
    struct buf loc = BUF_INIT;
    int r = buf_appends(&loc, "Location: ");
    if (absolute)
        r |= probe_append_base_url(&loc, c, req);
    if (n <= 1)
        r |= buf_appends(&loc, "/get\r\n");
    else
        r |= buf_appendf(&loc, "/%s-redirect/%lld\r\n", kind, (long long)n - 1);
    r |= buf_append(&loc, "", 1);
    if (r) {
        buf_free(&loc);
        return probe_oom(p, c);
    }
    buf_reset(&p->body);
    enum handler_result res = probe_send(p, c, 302, "text/html; charset=utf-8", buf_start(&loc));
    buf_free(&loc);
    return res;
}

static int64_t hops(const struct http_request *req, size_t skip) {
    return http_parse_uint(req->path + skip, req->path_len - skip, MAX_HOPS);
}

/* /redirect/{n}, /relative-redirect/{n}, /absolute-redirect/{n} */
PROBE_HANDLER(probe_redirect) {
    struct probe *p = ctx;
    (void)body, (void)body_len;
    const char *slash = memchr(req->path + 1, '/', req->path_len - 1);
    size_t skip = (size_t)(slash - req->path) + 1;
    int64_t n = hops(req, skip);
    if (n < 1)
        return reply_fail(c, 400, "n must be a whole number from 1 to %d", MAX_HOPS);
    int absolute = req->path[1] == 'a';
    if (req->path[1] == 'r' && req->path[2] == 'e' && req->path[3] == 'd') { /* /redirect/ */
        size_t vl;
        const char *v = http_query_get(req, "absolute", &vl);
        absolute = v && vl == 4 && strncasecmp(v, "true", 4) == 0;
    }
    return redirect(p, c, req, absolute, absolute ? "absolute" : "relative", n);
}

PROBE_HANDLER(probe_redirect_to) {
    struct probe *p = ctx;
    (void)body, (void)body_len;
    struct probe_kv kv[64];
    size_t n = probe_pairs(req->query, req->query_len, kv, 64);
    const struct probe_kv *url = NULL, *code = NULL;
    for (size_t i = 0; i < n; i++) { /* httpbin reads them case-insensitively; the last wins */
        if (kv[i].klen == 3 && strncasecmp(kv[i].k, "url", 3) == 0)
            url = &kv[i];
        else if (kv[i].klen == 11 && strncasecmp(kv[i].k, "status_code", 11) == 0)
            code = &kv[i];
    }
    if (!url)
        return reply_fail(c, 400, "redirect-to needs url=");
    int status = 302;
    if (code) {
        int64_t s = http_parse_uint(code->v, code->vlen, 999);
        if (s < 0)
            return reply_fail(c, 400, "status_code must be a whole number");
        if (s >= 300 && s < 400)
            status = (int)s;
    }
    struct buf loc = BUF_INIT;
    int r = buf_appends(&loc, "Location: ");
    size_t at = loc.len;
    r |= probe_urldecode(&loc, url->v, url->vlen, 1);
    for (size_t i = at; !r && i < loc.len; i++)
        if ((unsigned char)buf_start(&loc)[i] < 0x20 || buf_start(&loc)[i] == 0x7f) {
            buf_free(&loc);
            return reply_fail(c, 400, "url must not hold control characters");
        }
    r |= buf_appends(&loc, "\r\n");
    r |= buf_append(&loc, "", 1);
    if (r) {
        buf_free(&loc);
        return probe_oom(p, c);
    }
    buf_reset(&p->body);
    enum handler_result res = probe_send(p, c, status, "text/html; charset=utf-8", buf_start(&loc));
    buf_free(&loc);
    return res;
}
