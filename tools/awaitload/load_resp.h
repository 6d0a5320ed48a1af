/*
 * load_resp: finds where one HTTP/1.1 response ends in a byte stream, using
 * the shared parser (http_parse.h) for the head and the chunked decoder for
 * chunked bodies. Pure: the caller does the reads and owns the bytes. Body
 * bytes are never stored, only counted (or decoded in place and dropped),
 * so a connection needs memory only for a head split across reads.
 *
 * Framing, in RFC 9112 6.3 order: a response to HEAD, a 1xx, 204 or 304 has
 * no body; then chunked; then Content-Length; otherwise the body runs until
 * the server closes the connection. Interim 1xx responses (100 Continue,
 * 103 Early Hints) are skipped; 101 Switching Protocols is an error, since
 * a load client has nothing to switch to.
 */
#ifndef AWAITD_LOAD_RESP_H
#define AWAITD_LOAD_RESP_H

#include "http/http_parse.h"

#include <stdint.h>
#include <sys/types.h>

/* Largest response head accepted; past it the response is a parse error. */
#define LOAD_RESP_MAX_HEAD (64 * 1024)

enum load_resp_state {
    LOAD_RESP_HEAD,        /* waiting for (the rest of) a head */
    LOAD_RESP_LENGTH,      /* Content-Length body: remaining bytes to go */
    LOAD_RESP_CHUNKED,     /* chunked body in the decoder */
    LOAD_RESP_UNTIL_CLOSE, /* body ends when the server closes */
    LOAD_RESP_DONE,        /* a whole response was read */
};

struct load_resp {
    enum load_resp_state state;
    int head_request; /* the request was HEAD: no body whatever the fields say */
    int status;       /* of the final (non-1xx) response, once its head is read */
    int keep_alive;   /* the connection may carry another request */
    uint64_t remaining;
    struct http_chunked chunked;
};

/* Prepare for the response to a new request. */
void load_resp_begin(struct load_resp *r, int head_request);

/*
 * Feed buf[0..len), which follows whatever earlier calls consumed. Returns
 * the bytes consumed, or -1 with *why set when the response is malformed.
 * It stops at the end of a response (state DONE): unconsumed bytes after it
 * are the caller's to judge. While the head is incomplete nothing of it is
 * consumed: the caller keeps those bytes and feeds them again with more.
 * Chunked bodies are decoded in place, so buf is modified; any unconsumed
 * bytes are left at buf[consumed..len) as usual. scratch is the caller's
 * (large) parse result, reused to keep this struct small.
 */
ssize_t load_resp_feed(struct load_resp *r, char *buf, size_t len, struct http_response *scratch,
                       const char **why);

/* The server closed the connection: 1 if that completes the response (a
 * body delimited by the close), 0 if the response was cut short. */
int load_resp_eof(const struct load_resp *r);

#endif
