/*
 * h2: HTTP/2 (RFC 9113) on a connection, with libnghttp2 doing the framing,
 * HPACK and flow control (issue 15). docs/HTTP2.md says what is supported.
 *
 * A connection becomes HTTP/2 in one of two ways: a plain connection whose
 * first bytes are the client preface ("PRI * HTTP/2.0", prior knowledge:
 * conn_read.c finds it where the HTTP/1.1 parser refuses it, so HTTP/1.1 pays
 * nothing), or a TLS connection whose ALPN chose "h2". From then on h2.c
 * (the session) and h2_io.c (its socket) own the connection's event and
 * deadline; conn.c only closes or drains it.
 *
 * Each stream is a struct conn of its own (no socket: h2_stream set), handed
 * to the same handler with a struct http_request built from its header
 * block. Handlers answer exactly as on HTTP/1.1 (http_reply into
 * conn_out(), conn_pending/conn_done, conn_stream, conn_flush); the stream
 * behaves as an HTTP/1.0 connection (no chunked framing), and h2_stream.c
 * turns the answer's head into a HEADERS frame and the rest into DATA. A stream reset
 * by the client (RST_STREAM) or a closed connection runs the stream's cancel
 * callback and releases its producer, as a closed HTTP/1.1 connection does.
 *
 * Protection (each closes the connection with a GOAWAY and is counted in
 * awaitd_h2_closes_total{reason}): see enum h2_close.
 */
#ifndef AWAITD_H2_H
#define AWAITD_H2_H

#include <stddef.h>

struct conn;
struct h2_session;

/* Why an HTTP/2 connection was closed by the server (for /metrics). */
enum h2_close {
    H2_CLOSE_RAPID_RESET,  /* streams reset by the client faster than the budget */
    H2_CLOSE_CONTINUATION, /* a header block in too many CONTINUATION frames */
    H2_CLOSE_HEADER_LIST,  /* a decoded header list past max_header_list_size (HPACK bomb) */
    H2_CLOSE_SETTINGS,     /* SETTINGS frames faster than the budget */
    H2_CLOSE_PING,         /* PING frames faster than the budget */
    H2_CLOSE_EMPTY_DATA,   /* empty DATA (or other no-op) frames faster than the budget */
    H2_CLOSE_OUTBOUND,     /* our control frames (ACKs, RSTs) queued unread by the client */
    H2_CLOSE_STALLED,      /* output waiting on a client that does not read (write_timeout) */
    H2_CLOSE_FLOW_CONTROL, /* a flow-control error (window update overflow, ...) */
    H2_CLOSE_PROTOCOL,     /* any other protocol error: bad preface, frame size, ... */
    H2_CLOSE_PING_TIMEOUT, /* [http2] ping_timeout: a PING not answered in time */
    H2_CLOSE_KINDS,
};
extern const char *const h2_close_names[H2_CLOSE_KINDS];

/* The ALPN protocol list the TLS server offers: "h2" first when enabled. */
extern const unsigned char h2_alpn_h2_h11[];
extern const unsigned int h2_alpn_h2_h11_len;

/* Is this the start of the client connection preface (RFC 9113 3.4)? */
int h2_is_preface(const char *data, size_t len);

/* Turn c into an HTTP/2 connection and feed it data[0..len) (already read;
 * may be empty, data may point into c->in). Always returns -1: c is no
 * longer the caller's (it may even be closed). */
int h2_takeover(struct conn *c, const char *data, size_t len);

/* An HTTP/1.1 request with "Connection: upgrade" asking for h2c (Upgrade:
 * h2c, HTTP2-Settings, no body) on a plain connection, with [http2] on? */
struct http_request;
int h2_upgrade_wanted(const struct conn *c, const struct http_request *req);

/* Answer 101, turn c into HTTP/2 with req as stream 1, feed rest[0..len)
 * (what followed the request: the client preface). Returns -1 as
 * h2_takeover does. */
int h2_upgrade(struct conn *c, const struct http_request *req, const char *rest, size_t len);

/* The listener l of an HTTP/2 connection closed (a reload): 1 (and forgotten)
 * when c came in on it, so that the caller sends it a GOAWAY. */
int h2_listener_gone(struct conn *c, const void *l);

/* conn.c's hooks (conn_write.c's for conn_flush): the HTTP/2 side of
 * conn_close, conn_drain (GOAWAY, close once the open streams are done),
 * and of a stream's conn_done, conn_flush and conn_close. */
void h2_free(struct conn *c);
void h2_drain(struct conn *c);
void h2_stream_done(struct conn *sc);
int h2_stream_flush(struct conn *sc);
void h2_stream_close(struct conn *sc);

#endif
