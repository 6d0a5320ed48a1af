/*
 * probe_format: fixed documents in httpbin's formats (/html, /xml, /json,
 * /robots.txt, /deny, /encoding/utf8, /forms/post), generated ones
 * (/links, /base64), images by name or by Accept (/image), and the echo
 * compressed (/gzip, /deflate with zlib, /brotli with libbrotlienc).
 */
#include "api/probe_int.h"
#include "api/probe_images.h"

#include "core/base64.h"
#include "core/buf.h"
#include "http/http_parse.h"
#include "http/http_query.h"
#include "net/http_reply.h"

#include <brotli/encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define CT_HTML "text/html; charset=utf-8"

static const char html_doc[] =
    "<!DOCTYPE html>\n<html>\n  <head>\n  </head>\n  <body>\n"
    "      <h1>Herman Melville - Moby-Dick</h1>\n\n      <div>\n        <p>\n"
    "          Call me Ishmael. Some years ago--never mind how long precisely--having little or "
    "no money in my purse, and nothing particular to interest me on shore, I thought I would "
    "sail about a little and see the watery part of the world. It is a way I have of driving "
    "off the spleen and regulating the circulation.\n        </p>\n      </div>\n"
    "  </body>\n</html>";

static const char xml_doc[] =
    "<?xml version='1.0' encoding='us-ascii'?>\n\n<!--  A SAMPLE set of slides  -->\n\n"
    "<slideshow \n    title=\"Sample Slide Show\"\n    date=\"Date of publication\"\n"
    "    author=\"Yours Truly\"\n    >\n\n    <!-- TITLE SLIDE -->\n    <slide type=\"all\">\n"
    "      <title>Wake up to WonderWidgets!</title>\n    </slide>\n\n    <!-- OVERVIEW -->\n"
    "    <slide type=\"all\">\n        <title>Overview</title>\n"
    "        <item>Why <em>WonderWidgets</em> are great</item>\n        <item/>\n"
    "        <item>Who <em>buys</em> WonderWidgets</item>\n    </slide>\n\n</slideshow>";

static const char json_doc[] =
    "{\n  \"slideshow\": {\n    \"author\": \"Yours Truly\", \n"
    "    \"date\": \"date of publication\", \n    \"slides\": [\n      {\n"
    "        \"title\": \"Wake up to WonderWidgets!\", \n        \"type\": \"all\"\n      }, \n"
    "      {\n        \"items\": [\n          \"Why <em>WonderWidgets</em> are great\", \n"
    "          \"Who <em>buys</em> WonderWidgets\"\n        ], \n"
    "        \"title\": \"Overview\", \n        \"type\": \"all\"\n      }\n    ], \n"
    "    \"title\": \"Sample Slide Show\"\n  }\n}\n";

static const char robots_doc[] = "User-agent: *\nDisallow: /deny\n";

static const char deny_doc[] = "\n          .-''''''-.\n        .' _      _ '.\n"
                               "       /   O      O   \\\n      :                :\n"
                               "      |                |\n      :       __       :\n"
                               "       \\  .-\"`  `\"-.  /\n        '.          .'\n"
                               "          '-......-'\n     YOU SHOULDN'T BE HERE\n";

static const char utf8_doc[] =
    "<h1>UTF-8 encoded sample plain-text file</h1>\n<pre>\n"
    "Greek: \xce\x9a\xce\xb1\xce\xbb\xce\xb7\xce\xbc\xce\xad\xcf\x81\xce\xb1 "
    "\xce\xba\xcf\x8c\xcf\x83\xce\xbc\xce\xb5\n"
    "Russian: \xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, \xd0\xbc\xd0\xb8\xd1\x80\n"
    "Japanese: \xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3\x81\xaf\n"
    "Math: \xe2\x88\x80x\xe2\x88\x88\xe2\x84\x9d: \xe2\x8c\x88x\xe2\x8c\x89 = "
    "\xe2\x88\x92\xe2\x8c\x8a\xe2\x88\x92x\xe2\x8c\x8b\n"
    "Emoji: \xf0\x9f\x90\xb7 \xf0\x9f\x90\xb3\n</pre>\n";

static const char form_doc[] =
    "<!DOCTYPE html>\n<html>\n  <head>\n  </head>\n  <body>\n"
    "    <form method=\"post\" action=\"/post\">\n"
    "      <p><label>First name: <input type=\"text\" name=\"firstname\"></label></p>\n"
    "      <p><label>Last name: <input type=\"text\" name=\"lastname\"></label></p>\n"
    "      <input type=\"submit\" value=\"submit\">\n    </form>\n  </body>\n</html>";

static enum handler_result fixed(struct conn *c, const char *ctype, const char *doc, size_t n) {
    reply(c, 200, ctype, NULL, doc, n);
    return HANDLER_DONE;
}

/* The fixed documents, by path. */
PROBE_HANDLER(probe_document) {
    (void)ctx, (void)body, (void)body_len;
    static const struct {
        const char *path, *ctype, *doc;
        size_t len;
    } docs[] = {
#define DOC(path, ctype, doc) {path, ctype, doc, sizeof doc - 1}
        DOC("/html", CT_HTML, html_doc),
        DOC("/xml", "application/xml", xml_doc),
        DOC("/json", CT_JSON, json_doc),
        DOC("/robots.txt", "text/plain", robots_doc),
        DOC("/deny", "text/plain", deny_doc),
        DOC("/encoding/utf8", CT_HTML, utf8_doc),
        DOC("/forms/post", CT_HTML, form_doc),
#undef DOC
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        if (strlen(docs[i].path) == req->path_len &&
            memcmp(docs[i].path, req->path, req->path_len) == 0)
            return fixed(c, docs[i].ctype, docs[i].doc, docs[i].len);
    return reply_fail(c, 404, "no such document");
}

/* /links/{n}/{offset}: n links, the one at offset as plain text; /links/{n}
 * redirects to /links/{n}/0. */
PROBE_HANDLER(probe_links) {
    struct probe *p = ctx;
    (void)body, (void)body_len;
    struct probe_kv seg[3];
    int ns = probe_path_args(req, 7, seg, 3);
    int64_t n = ns >= 1 ? http_parse_uint(seg[0].k, seg[0].klen, 1000000) : -1;
    int64_t off = ns == 2 ? http_parse_uint(seg[1].k, seg[1].klen, 1000000) : ns == 1 ? 0 : -1;
    if (n < 0 || off < 0)
        return reply_fail(c, 400, "use /links/{n}/{offset} with whole numbers");
    if (ns == 1) {
        char loc[64];
        snprintf(loc, sizeof loc, "Location: /links/%lld/0\r\n", (long long)n);
        reply(c, 302, CT_HTML, loc, "", 0);
        return HANDLER_DONE;
    }
    n = n < 1 ? 1 : n > 200 ? 200 : n; /* httpbin's bounds */
    int r = buf_appends(&p->body, "<html><head><title>Links</title></head><body>");
    for (int64_t i = 0; i < n; i++)
        r |= i == off ? buf_appendf(&p->body, "%lld ", (long long)i)
                      : buf_appendf(&p->body, "<a href='/links/%lld/%lld'>%lld</a> ", (long long)n,
                                    (long long)i, (long long)i);
    r |= buf_appends(&p->body, "</body></html>");
    return r ? probe_oom(p, c) : probe_send(p, c, 200, CT_HTML, NULL);
}

/* /base64/{value} and /base64/decode/{value}: the decoded text;
 * /base64/encode/{value}: the value encoded (go-httpbin's). */
PROBE_HANDLER(probe_base64) {
    struct probe *p = ctx;
    (void)body, (void)body_len;
    const char *v = req->path + 8;
    size_t n = req->path_len - 8;
    if (n > 7 && memcmp(v, "encode/", 7) == 0) {
        struct buf raw = BUF_INIT;
        int r = probe_urldecode(&raw, v + 7, n - 7, 0);
        r |= base64_append(&p->body, buf_start(&raw), raw.len);
        buf_free(&raw);
        for (size_t i = 0; !r && i < p->body.len; i++) /* URL-safe, as the decoder reads */
            if (buf_start(&p->body)[i] == '+' || buf_start(&p->body)[i] == '/')
                buf_start(&p->body)[i] = buf_start(&p->body)[i] == '+' ? '-' : '_';
        return r ? probe_oom(p, c) : probe_send(p, c, 200, CT_HTML, NULL);
    }
    if (n > 7 && memcmp(v, "decode/", 7) == 0)
        v += 7, n -= 7;
    if (buf_reserve(&p->body, n) < 0)
        return probe_oom(p, c);
    long len = base64_decode(v, n, (unsigned char *)buf_start(&p->body));
    if (len < 0 || !utf8_valid(buf_start(&p->body), (size_t)len)) {
        buf_reset(&p->body);
        return reply_fail(c, 400, "not base64 (standard or URL-safe) of UTF-8 text: '%.*s'",
                          (int)(n > 64 ? 64 : n), v);
    }
    p->body.len = (size_t)len;
    return probe_send(p, c, 200, CT_HTML, NULL);
}

static const struct probe_image *image_named(const char *name, size_t n) {
    for (const struct probe_image *im = probe_images; im->name; im++)
        if (strlen(im->name) == n && memcmp(im->name, name, n) == 0)
            return im;
    return NULL;
}

/* /image by Accept (httpbin's order: webp, svg, jpeg, png or any image, else
 * 406; png without Accept), /image/{png,jpeg,webp,svg}. */
PROBE_HANDLER(probe_image) {
    (void)ctx, (void)body, (void)body_len;
    const struct probe_image *im = NULL;
    if (req->path_len > 7) {
        if (!(im = image_named(req->path + 7, req->path_len - 7)))
            return reply_fail(c, 404, "images: /image/png, /image/jpeg, /image/webp, /image/svg");
    } else {
        const struct http_header *a = probe_header(req, "accept");
        char acc[512];
        size_t n = a ? (a->value_len < sizeof acc - 1 ? a->value_len : sizeof acc - 1) : 0;
        for (size_t i = 0; i < n; i++)
            acc[i] = (char)((a->value[i] >= 'A' && a->value[i] <= 'Z') ? a->value[i] | 0x20
                                                                       : a->value[i]);
        acc[n] = '\0';
        if (!a)
            im = image_named("png", 3);
        else if (strstr(acc, "image/webp"))
            im = image_named("webp", 4);
        else if (strstr(acc, "image/svg+xml"))
            im = image_named("svg", 3);
        else if (strstr(acc, "image/jpeg"))
            im = image_named("jpeg", 4);
        else if (strstr(acc, "image/png") || strstr(acc, "image/*"))
            im = image_named("png", 3);
        else
            return probe_status_reply(c, 406);
    }
    reply(c, 200, im->ctype, NULL, im->data, im->len);
    return HANDLER_DONE;
}

/* ---- /gzip, /deflate, /brotli ---------------------------------------------------- */

static int zcompress(const char *in, size_t n, struct buf *out, int gzip) {
    z_stream z = {0};
    if (deflateInit2(&z, 6, Z_DEFLATED, gzip ? 31 : 15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t cap = deflateBound(&z, (uLong)n);
    if (buf_reserve(out, cap) < 0) {
        deflateEnd(&z);
        return -1;
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)buf_start(out) + out->len;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    out->len += cap - z.avail_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : -1;
}

static int bcompress(const char *in, size_t n, struct buf *out) {
    size_t cap = BrotliEncoderMaxCompressedSize(n);
    if (!cap || buf_reserve(out, cap) < 0)
        return -1;
    if (!BrotliEncoderCompress(5, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_TEXT, n,
                               (const uint8_t *)in, &cap, (uint8_t *)buf_start(out) + out->len))
        return -1;
    out->len += cap;
    return 0;
}

PROBE_HANDLER(probe_compressed) {
    struct probe *p = ctx;
    (void)body, (void)body_len;
    char kind = req->path[1]; /* g(zip), d(eflate), b(rotli) */
    struct buf plain = BUF_INIT;
    int r = buf_appends(&plain, kind == 'g' ? "{\"gzipped\": true" : kind == 'd' ? "{\"deflated\": true"
                                                                                 : "{\"brotli\": true");
    r |= buf_appends(&plain, ", \"headers\": ");
    r |= probe_append_headers(&plain, req);
    r |= buf_appends(&plain, ", \"method\": ");
    r |= buf_append_json_str(&plain, req->method_str, req->method_len);
    r |= buf_appends(&plain, ", \"origin\": ");
    r |= probe_append_origin(&plain, c, req);
    r |= buf_appends(&plain, "}\n");
    if (!r)
        r = kind == 'b' ? bcompress(buf_start(&plain), plain.len, &p->body)
                        : zcompress(buf_start(&plain), plain.len, &p->body, kind == 'g');
    buf_free(&plain);
    if (r)
        return probe_oom(p, c);
    return probe_send(p, c, 200, CT_JSON,
                      kind == 'g'   ? "Content-Encoding: gzip\r\n"
                      : kind == 'd' ? "Content-Encoding: deflate\r\n"
                                    : "Content-Encoding: br\r\n");
}
