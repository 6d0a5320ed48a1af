/*
 * http_reply: writes responses into conn_out(). It knows the current
 * request's version, keep-alive and HEAD-ness from the conn, adds Date,
 * Server, Content-Length and Connection, and counts the status class.
 * Allocation failure while building a response closes the connection
 * rather than sending a truncated answer: the part written is dropped, the
 * connection is marked failed (conn_fail), every later reply on it is a
 * no-op returning -1, and it closes after the answers before this one
 * have gone. Callers may therefore ignore the -1: there is nothing left
 * to do but return.
 */
#ifndef AWAITD_HTTP_REPLY_H
#define AWAITD_HTTP_REPLY_H

#include "net/conn.h"

#include <stddef.h>
#include <stdint.h>

struct conn;

#define CT_JSON "application/json"
#define CT_TEXT "text/plain; charset=utf-8"
#define CT_OCTETS "application/octet-stream"

/*
 * Status line and headers. content_length < 0 means the body is sent with
 * chunked coding (reply_chunk / reply_chunk_end). extra is NULL or header
 * lines each ending in CRLF. Returns 0 or -1 (out of memory).
 */
int reply_head(struct conn *c, int status, const char *ctype, int64_t content_length,
               const char *extra);

/* A whole response: head and body (the body is dropped for HEAD). */
int reply(struct conn *c, int status, const char *ctype, const char *extra, const void *body,
          size_t len);

/* A JSON error: {"error": "<message>", "status": N}. */
int reply_error(struct conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The same with extra header lines (each ending in CRLF), e.g. Allow. */
int reply_error_hdr(struct conn *c, int status, const char *extra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The same with more JSON members after "status" (fields: raw JSON text
 * starting with ", ", e.g. ", \"reason\": \"storage\""), and exactly the
 * header lines in extra (NULL: none; no Retry-After is added to a 503). */
int reply_error_fields(struct conn *c, int status, const char *extra, const char *fields,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* One chunk of a chunked body, and the terminating chunk. */
int reply_chunk(struct conn *c, const void *data, size_t len);
int reply_chunk_end(struct conn *c);

/* The header lines the dispatcher set for every answer to the current
 * request (server.reply_extra: CORS), or NULL. A handler that answers
 * later, from a timer, copies them and passes them as extra. */
const char *reply_extra_lines(const struct conn *c);

/* The interim "100 Continue" response. */
int reply_continue(struct conn *c);

/* reply_error for a handler's early exit: return reply_fail(c, 400, ...). */
enum handler_result reply_fail(struct conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
