/*
 * http_parse: a pure HTTP/1.1 message parser (RFC 9112). No I/O, no
 * allocation, no logging: it reads a byte range and fills a caller's struct.
 * The daemon parses requests with it; awaitload parses responses with it.
 *
 * Framing is strict because request smuggling lives here: anything that two
 * implementations could read differently is an error, never a guess.
 */
#ifndef AWAITD_HTTP_PARSE_H
#define AWAITD_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Hard cap on the header array; the configured limit may only be lower. */
#define HTTP_MAX_HEADERS 128

/* Results. A positive parse result is the length of the message head. */
enum http_status_code {
    HTTP_INCOMPLETE = -1,     /* need more bytes */
    HTTP_ERR_BAD = -2,        /* 400: malformed or ambiguous */
    HTTP_ERR_HEADER_SIZE = -3, /* 431: head longer than max_header_bytes */
    HTTP_ERR_HEADER_COUNT = -4, /* 431: more than max_headers fields */
    HTTP_ERR_URI_SIZE = -5,   /* 414: request-target longer than max_uri */
    HTTP_ERR_BODY_SIZE = -6,  /* 413: Content-Length or chunked total > max_body */
    HTTP_ERR_METHOD = -7,     /* 501: a well-formed method token we do not implement */
    HTTP_ERR_VERSION = -8,    /* 505: HTTP/2.0, HTTP/3.x, ... (not 1.0 or 1.1) */
    HTTP_ERR_TE = -9,         /* 501: a transfer coding other than chunked */
};

enum http_method {
    HTTP_M_OTHER = 0,
    HTTP_M_GET,
    HTTP_M_HEAD,
    HTTP_M_POST,
    HTTP_M_PUT,
    HTTP_M_DELETE,
    HTTP_M_PATCH,
    HTTP_M_OPTIONS,
    HTTP_M_TRACE, /* parsed for httpbin's TRACE routes; no other route takes it */
};

/* A method name (case-sensitive, RFC 9110 9.1): its enum, or HTTP_M_OTHER
 * ("not implemented"). HTTP/1.1 and HTTP/2 (:method) read it the same way. */
enum http_method http_method_lookup(const char *m, size_t n);

struct http_limits {
    size_t max_header_bytes; /* request line + fields + final empty line */
    size_t max_headers;      /* number of fields, <= HTTP_MAX_HEADERS */
    size_t max_uri;          /* request-target bytes */
    uint64_t max_body;       /* Content-Length, or decoded chunked total */
};

struct http_header {
    const char *name; /* points into the parsed buffer; not NUL-terminated */
    size_t name_len;
    const char *value; /* leading/trailing OWS stripped */
    size_t value_len;
};

struct http_request {
    enum http_method method;
    const char *method_str; /* the token as sent */
    size_t method_len;
    const char *target; /* request-target as sent (origin-form or absolute-form) */
    size_t target_len;
    const char *path; /* target up to '?' (absolute-form: the path part) */
    size_t path_len;
    const char *query; /* after '?', NULL when there is no '?' */
    size_t query_len;
    int minor_version; /* 0 or 1 (HTTP/1.0 or HTTP/1.1); net/h2_stream.c: 2 for HTTP/2 */
    struct http_header headers[HTTP_MAX_HEADERS];
    size_t nheaders;
    /* Framing, derived from the fields above: */
    int64_t content_length; /* -1 when absent */
    int chunked;            /* Transfer-Encoding ends in chunked */
    int keep_alive;         /* 1.1 unless "Connection: close"; 1.0 only with keep-alive */
    int expect_continue;    /* "Expect: 100-continue" */
    const char *host;       /* Host field value or NULL */
    size_t host_len;
    int upgrade;            /* "Connection: upgrade" (the Upgrade field names to what) */
};

struct http_response {
    int minor_version;
    int status;
    const char *reason;
    size_t reason_len;
    struct http_header headers[HTTP_MAX_HEADERS];
    size_t nheaders;
    int64_t content_length; /* -1 when absent */
    int chunked;
    int keep_alive;
};

/*
 * Parse a request head from buf[0..len). Returns the head length (> 0,
 * counting the final empty line) when complete, HTTP_INCOMPLETE when more
 * bytes may complete it, or a negative HTTP_ERR_*; *why then points to a
 * static string naming the problem ("both Content-Length and
 * Transfer-Encoding", "bare CR in field value", ...). Bare LF is accepted as
 * a line end (RFC 9112 2.2 allows it); bare CR, obs-fold, whitespace before
 * the colon, invalid token characters, differing duplicate Content-Length,
 * Content-Length with Transfer-Encoding, chunked repeated or not the last
 * coding, HTTP/1.0 with Transfer-Encoding, and a missing Host in HTTP/1.1
 * are errors (400); any coding other than chunked is HTTP_ERR_TE (501). Leading empty lines before the request line are
 * skipped (RFC 9112 2.2) and counted in the returned length.
 */
int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
                       struct http_request *req, const char **why);

/*
 * Parse a response head (for clients). Same return convention; limits on
 * header bytes and count only (max_uri and max_body are ignored).
 * A response to HEAD, 1xx, 204 and 304 have no body whatever the fields say:
 * that is the caller's knowledge, not the parser's.
 */
int http_parse_response(const char *buf, size_t len, const struct http_limits *lim,
                        struct http_response *res, const char **why);

/* Incremental chunked-body decoder (after picohttpparser's phr_decode_chunked). */
struct http_chunked {
    int state;          /* private */
    uint64_t remaining; /* private: bytes left in the current chunk */
    uint64_t total;     /* decoded bytes so far */
    size_t line_bytes;  /* private: bytes of the current size/trailer line seen */
};

/*
 * Decode chunked data in place. On entry buf[0..*len) holds raw bytes that
 * follow what earlier calls consumed; on return buf[0..*len) holds the
 * decoded payload bytes from this call. Returns:
 *   >= 0  the message ended (terminating chunk and trailers read); the
 *         value is the count of raw bytes after it, not consumed, which are
 *         moved to buf[*len .. *len + value) right after the decoded bytes
 *         (the start of the next pipelined message);
 *   HTTP_INCOMPLETE  all input consumed, more needed;
 *   HTTP_ERR_BAD / HTTP_ERR_BODY_SIZE with *why set.
 * Chunk extensions are skipped (a size line may hold 4 KiB), trailer
 * fields are skipped (at most 64 lines of 8 KiB); sizes must be hex without
 * sign, whitespace or overflow.
 */
ssize_t http_chunked_decode(struct http_chunked *d, char *buf, size_t *len, uint64_t max_body,
                            const char **why);

/* Initialise a decoder before the first call. */
void http_chunked_init(struct http_chunked *d);

/* Case-insensitive header lookup of name[0..len); returns the first match
 * or NULL. */
const struct http_header *http_find_header_n(const struct http_header *h, size_t n,
                                             const char *name, size_t len);

/* The same for a NUL-terminated name; inline, so a literal's
 * length is folded at compile time (a probe looks up several per request). */
static inline const struct http_header *http_find_header(const struct http_header *h, size_t n,
                                                         const char *name) {
    return http_find_header_n(h, n, name, __builtin_strlen(name));
}

/* Reason phrase for a status code ("OK", "Not Found", ...); "Unknown" if none. */
const char *http_reason(int status);

/* Maps an HTTP_ERR_* to the status to answer with (400, 431, 414, 413, 501, 505). */
int http_err_status(int err);

#endif
