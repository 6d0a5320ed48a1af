/*
 * probe_int: what the probe handlers share across their files (probe.c,
 * probe_form.c, probe_inspect.c, ...): the request echo, its pieces, and
 * how an answer built in the probe's buffer is sent. Not for other areas.
 */
#ifndef AWAITD_PROBE_INT_H
#define AWAITD_PROBE_INT_H

#include "api/probe.h"
#include "core/buf.h"

#include <stddef.h>

struct http_request;
struct http_header;

/* Fields of the echo beyond args, headers, origin and url. */
enum echo_fields { ECHO_BODY = 1, ECHO_METHOD = 2, ECHO_JSON = 4 };

/* The httpbin echo ({"args", ..., "url"}) of req into o, with a newline.
 * 0 or -1 (no memory). */
int probe_render_echo(struct conn *c, const struct http_request *req, const char *body,
                      size_t len, int fields, struct buf *o);

/* The pieces: the "headers" object (httpbin's proxy headers hidden unless
 * ?show_env), the client address as a JSON string ("origin": the peer, or
 * X-Forwarded-For with [probe] trust_forwarded), the request URL as a JSON
 * string (X-Forwarded-Proto / -Protocol / -Ssl and -Host honoured the same
 * way), the query as a JSON object (repeated keys become lists). */
int probe_append_headers(struct buf *o, const struct http_request *req);
int probe_append_origin(struct buf *o, struct conn *c, const struct http_request *req);
int probe_append_url(struct buf *o, struct conn *c, const struct http_request *req);
int probe_append_args(struct buf *o, const struct http_request *req);
/* a=1&b=2 (form-urlencoded) s[0..n) as a JSON object, as args. */
int probe_append_pairs(struct buf *o, const char *s, size_t n);

/* "scheme://host" of the request (as in url) into o, unquoted. */
int probe_append_base_url(struct buf *o, struct conn *c, const struct http_request *req);

/* A request header by name (case-insensitive), or NULL. */
const struct http_header *probe_header(const struct http_request *req, const char *name);

/* Send p->body with status and type (extra: header lines or NULL); the
 * buffer is emptied. Always HANDLER_DONE. */
enum handler_result probe_send(struct probe *p, struct conn *c, int status, const char *ctype,
                               const char *extra);

/* httpbin's answer for a status code: Location on 3xx, the teapot, ... */
enum handler_result probe_status_reply(struct conn *c, int code);

/* Out of memory while building an answer: 500, connection closed. */
enum handler_result probe_oom(struct probe *p, struct conn *c);

/* ---- probe_form.c: request bodies as httpbin reads them ---- */

enum probe_body_kind { BODY_RAW, BODY_URLENCODED, BODY_MULTIPART };

/* Which kind req's body is (by Content-Type). */
enum probe_body_kind probe_body_kind(const struct http_request *req);

/* A multipart body that cannot be read: answer 400 (malformed) or 413 (too
 * many parts, naming max_form_parts) and return 1; 0 when the body is fine
 * or not multipart. Handlers call it before rendering the echo. */
int probe_form_refuse(struct conn *c, const struct http_request *req, const char *body,
                      size_t len);

/* "files": {...}, "form": {...} as httpbin fills them for this body. */
int probe_append_form_files(struct buf *o, struct conn *c, const struct http_request *req,
                            const char *body, size_t len);

/* httpbin's json_safe: s as a JSON string when it is UTF-8, else a data
 * URL "data:<ctype>;base64,...". */
int probe_append_json_safe(struct buf *o, const char *s, size_t n, const char *ctype,
                           size_t ctype_len);

/* Percent-decode s[0..n) onto o ('+' as a space when plus), NUL after it
 * (not counted). 0 or -1. */
int probe_urldecode(struct buf *o, const char *s, size_t n, int plus);

struct probe_kv {
    const char *k, *v; /* raw, not decoded */
    size_t klen, vlen;
};

/* Split "a=1&b" into pairs (at most max); the count. */
size_t probe_pairs(const char *s, size_t n, struct probe_kv *out, size_t max);

/* The '/'-separated segments of the path after its first skip bytes, as
 * keys (k, klen) of out; their count, or -1 when there are more than max. */
int probe_path_args(const struct http_request *req, size_t skip, struct probe_kv *out,
                    size_t max);

/* ---- the handlers of the other probe files ---- */

PROBE_HANDLER(probe_headers);          /* probe_inspect.c */
PROBE_HANDLER(probe_ip);
PROBE_HANDLER(probe_user_agent);
PROBE_HANDLER(probe_response_headers);
PROBE_HANDLER(probe_cookies);
PROBE_HANDLER(probe_cookies_set);
PROBE_HANDLER(probe_hostname);
PROBE_HANDLER(probe_dump_request);
PROBE_HANDLER(probe_trailers);
PROBE_HANDLER(probe_upload);
PROBE_HANDLER(probe_env);
PROBE_HANDLER(probe_version);
PROBE_HANDLER(probe_unstable);         /* probe_dynamic.c */
PROBE_HANDLER(probe_sse);              /* probe_sse.c */
PROBE_HANDLER(probe_jsonl);
PROBE_HANDLER(probe_stream_bytes);     /* probe_bytes.c */
PROBE_HANDLER(probe_range);
PROBE_HANDLER(probe_websocket_echo); /* probe_ws.c */
PROBE_HANDLER(probe_redirect);         /* probe_redirect.c */
PROBE_HANDLER(probe_redirect_to);
PROBE_HANDLER(probe_basic_auth);       /* probe_auth.c */
PROBE_HANDLER(probe_bearer);
PROBE_HANDLER(probe_digest_auth);
PROBE_HANDLER(probe_uuid);             /* probe_cache.c */
PROBE_HANDLER(probe_cache);
PROBE_HANDLER(probe_cache_n);
PROBE_HANDLER(probe_etag);
PROBE_HANDLER(probe_document);         /* probe_format.c */
PROBE_HANDLER(probe_links);
PROBE_HANDLER(probe_base64);
PROBE_HANDLER(probe_image);
PROBE_HANDLER(probe_compressed);

/* The random bytes' seed: ?seed=N (0 to 2^32-1, the same bytes every time)
 * or a random one. 0, or -1 when seed is not a whole number. */
int probe_seed(const struct http_request *req, uint64_t *seed);

#endif
