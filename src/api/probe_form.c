/*
 * probe_form: request bodies read as httpbin (werkzeug) reads them: an
 * application/x-www-form-urlencoded body fills "form", a multipart/form-data
 * body fills "form" (parts without a filename) and "files" (parts with
 * one, as text or as a data URL of the part's type), and neither is echoed
 * in "data". Repeated names become lists, in the order sent.
 */
#include "api/probe_int.h"

#include "core/base64.h"
#include "core/buf.h"
#include "core/config.h"
#include "http/http_parse.h"
#include "http/multipart.h"
#include "net/http_reply.h"
#include "net/server.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MULTIPART_HEAD_MAX 8192 /* one part's header block */

static int has_prefix_ci(const struct http_header *h, const char *p) {
    size_t n = strlen(p);
    return h && h->value_len >= n && strncasecmp(h->value, p, n) == 0;
}

enum probe_body_kind probe_body_kind(const struct http_request *req) {
    const struct http_header *ct = probe_header(req, "content-type");
    if (has_prefix_ci(ct, "application/x-www-form-urlencoded"))
        return BODY_URLENCODED;
    if (has_prefix_ci(ct, "multipart/form-data"))
        return BODY_MULTIPART;
    return BODY_RAW;
}

int probe_append_json_safe(struct buf *o, const char *s, size_t n, const char *ctype,
                           size_t ctype_len) {
    if (utf8_valid(s, n))
        return buf_append_json_str(o, s, n);
    int r = buf_appends(o, "\"data:");
    r |= buf_append_json_chars(o, ctype, ctype_len);
    r |= buf_appends(o, ";base64,");
    r |= base64_append(o, s, n);
    r |= buf_append(o, "\"", 1);
    return r;
}

/* The parsed parts (malloc'd, *n of them), or NULL with *status and *why. */
static struct multipart_part *parse_parts(struct conn *c, const struct http_request *req,
                                          const char *body, size_t len, int *n, int *status,
                                          const char **why) {
    const struct http_header *ct = probe_header(req, "content-type");
    const char *b;
    int blen = multipart_boundary(ct->value, ct->value_len, &b);
    *status = 400;
    if (blen < 0) {
        *why = "multipart/form-data without a valid boundary parameter";
        return NULL;
    }
    size_t max = c->srv->cfg->max_form_parts;
    /* No more parts than the body could hold (one takes at least 2+blen+2 bytes). */
    size_t fit = len / ((size_t)blen + 4) + 1;
    struct multipart_part *parts = malloc((fit < max ? fit : max) * sizeof *parts);
    if (!parts) {
        *status = 500;
        *why = "out of memory";
        return NULL;
    }
    struct multipart_limits lim = {max, MULTIPART_HEAD_MAX};
    *n = multipart_parse(body, len, b, (size_t)blen, &lim, parts, fit < max ? fit : max, why);
    if (*n < 0) {
        if (*n == -2)
            *status = 413;
        free(parts);
        return NULL;
    }
    return parts;
}

int probe_form_refuse(struct conn *c, const struct http_request *req, const char *body,
                      size_t len) {
    if (probe_body_kind(req) != BODY_MULTIPART)
        return 0;
    int n, status;
    const char *why;
    struct multipart_part *parts = parse_parts(c, req, body, len, &n, &status, &why);
    if (parts) {
        free(parts);
        return 0;
    }
    if (status == 413)
        reply_error(c, 413, "%s: more than %llu ([probe] max_form_parts)", why,
                    (unsigned long long)c->srv->cfg->max_form_parts);
    else
        reply_error(c, status, "%s", why);
    return 1;
}

/* One object of the parts with (files) or without (form) a filename. */
static int append_parts(struct buf *o, const struct multipart_part *p, int n, int files) {
    int r = buf_append(o, "{", 1), first = 1;
    for (int i = 0; i < n; i++) {
        if (!p[i].filename != !files)
            continue;
        int dups = 0, seen = 0;
        for (int j = 0; j < n; j++)
            if (!p[j].filename == !files && p[j].name_len == p[i].name_len &&
                memcmp(p[j].name, p[i].name, p[i].name_len) == 0) {
                seen |= j < i;
                dups++;
            }
        if (seen)
            continue;
        r |= buf_appends(o, first ? "" : ", ");
        first = 0;
        r |= buf_append_json_str(o, p[i].name, p[i].name_len);
        r |= buf_appends(o, dups > 1 ? ": [" : ": ");
        for (int j = i, k = 0; j < n; j++) {
            if (!p[j].filename != !files || p[j].name_len != p[i].name_len ||
                memcmp(p[j].name, p[i].name, p[i].name_len) != 0)
                continue;
            if (k++)
                r |= buf_append(o, ", ", 2);
            if (!files) /* werkzeug decodes fields as UTF-8, errors replaced */
                r |= buf_append_json_str(o, p[j].data, p[j].data_len);
            else if (p[j].ctype && p[j].ctype_len)
                r |= probe_append_json_safe(o, p[j].data, p[j].data_len, p[j].ctype,
                                            p[j].ctype_len);
            else
                r |= probe_append_json_safe(o, p[j].data, p[j].data_len, CT_OCTETS,
                                            sizeof CT_OCTETS - 1);
        }
        if (dups > 1)
            r |= buf_append(o, "]", 1);
    }
    r |= buf_append(o, "}", 1);
    return r;
}

int probe_append_form_files(struct buf *o, struct conn *c, const struct http_request *req,
                            const char *body, size_t len) {
    enum probe_body_kind kind = probe_body_kind(req);
    if (kind == BODY_URLENCODED) {
        int r = buf_appends(o, "\"files\": {}, \"form\": ");
        return r | probe_append_pairs(o, body, len);
    }
    if (kind != BODY_MULTIPART)
        return buf_appends(o, "\"files\": {}, \"form\": {}");
    int n, status;
    const char *why;
    struct multipart_part *parts = parse_parts(c, req, body, len, &n, &status, &why);
    if (!parts) /* refused before rendering (probe_form_refuse); memory ran out */
        return status == 500 ? -1 : buf_appends(o, "\"files\": {}, \"form\": {}");
    int r = buf_appends(o, "\"files\": ");
    r |= append_parts(o, parts, n, 1);
    r |= buf_appends(o, ", \"form\": ");
    r |= append_parts(o, parts, n, 0);
    free(parts);
    return r;
}

static int hexval(int ch) {
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

int probe_urldecode(struct buf *o, const char *s, size_t n, int plus) {
    if (buf_reserve(o, n + 1) < 0)
        return -1;
    char *w = buf_start(o) + o->len;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (plus && s[i] == '+')
            *w++ = ' ';
        else if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
                 (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            *w++ = (char)(hi << 4 | lo);
            i += 2;
        } else
            *w++ = s[i];
    }
    o->len = (size_t)(w - buf_start(o));
    buf_start(o)[o->len] = '\0'; /* room reserved above */
    return 0;
}

size_t probe_pairs(const char *s, size_t n, struct probe_kv *out, size_t max) {
    size_t count = 0;
    const char *end = s ? s + n : s;
    while (s && s < end && count < max) {
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

int probe_path_args(const struct http_request *req, size_t skip, struct probe_kv *out,
                    size_t max) {
    const char *s = req->path + skip, *end = req->path + req->path_len;
    size_t n = 0;
    while (s <= end) {
        const char *slash = memchr(s, '/', (size_t)(end - s));
        const char *stop = slash ? slash : end;
        if (n == max)
            return -1;
        out[n].k = s;
        out[n].klen = (size_t)(stop - s);
        n++;
        if (!slash)
            break;
        s = slash + 1;
    }
    return (int)n;
}
