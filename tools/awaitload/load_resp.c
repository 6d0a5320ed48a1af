#include "load_resp.h"

#include <string.h>

static const struct http_limits resp_limits = {
    .max_header_bytes = LOAD_RESP_MAX_HEAD,
    .max_headers = HTTP_MAX_HEADERS,
    .max_uri = LOAD_RESP_MAX_HEAD,
    .max_body = UINT64_MAX,
};

void load_resp_begin(struct load_resp *r, int head_request) {
    r->state = LOAD_RESP_HEAD;
    r->head_request = head_request;
    r->status = 0;
    r->keep_alive = 0;
    r->remaining = 0;
}

/* A complete head of head_len bytes was parsed into res: choose the body's framing. */
static int resp_on_head(struct load_resp *r, const struct http_response *res, const char **why) {
    if (res->status == 101) {
        *why = "101 Switching Protocols is not supported";
        return -1;
    }
    if (res->status < 200)
        return 0; /* interim: the final response follows on the same stream */
    r->status = res->status;
    r->keep_alive = res->keep_alive;
    if (r->head_request || res->status == 204 || res->status == 304) {
        r->state = LOAD_RESP_DONE;
    } else if (res->chunked) {
        http_chunked_init(&r->chunked);
        r->state = LOAD_RESP_CHUNKED;
    } else if (res->content_length >= 0) {
        r->remaining = (uint64_t)res->content_length;
        r->state = r->remaining ? LOAD_RESP_LENGTH : LOAD_RESP_DONE;
    } else {
        r->state = LOAD_RESP_UNTIL_CLOSE;
        r->keep_alive = 0;
    }
    return 0;
}

ssize_t load_resp_feed(struct load_resp *r, char *buf, size_t len, struct http_response *scratch,
                       const char **why) {
    size_t off = 0;
    while (off < len && r->state != LOAD_RESP_DONE) {
        switch (r->state) {
        case LOAD_RESP_HEAD: {
            int rc = http_parse_response(buf + off, len - off, &resp_limits, scratch, why);
            if (rc == HTTP_INCOMPLETE)
                return (ssize_t)off;
            if (rc < 0)
                return -1;
            off += (size_t)rc;
            if (resp_on_head(r, scratch, why) < 0)
                return -1;
            break;
        }
        case LOAD_RESP_LENGTH: {
            size_t n = len - off;
            if ((uint64_t)n > r->remaining)
                n = (size_t)r->remaining;
            off += n;
            r->remaining -= n;
            if (r->remaining == 0)
                r->state = LOAD_RESP_DONE;
            break;
        }
        case LOAD_RESP_CHUNKED: {
            size_t raw = len - off, decoded = raw;
            ssize_t rc = http_chunked_decode(&r->chunked, buf + off, &decoded, UINT64_MAX, why);
            if (rc == HTTP_INCOMPLETE) {
                off = len;
                break;
            }
            if (rc < 0)
                return -1;
            /* The decoder moved the bytes after the message to just past the
             * decoded payload; put them back at the end so "consumed" stays a
             * prefix of the input. */
            memmove(buf + len - (size_t)rc, buf + off + decoded, (size_t)rc);
            off = len - (size_t)rc;
            r->state = LOAD_RESP_DONE;
            break;
        }
        case LOAD_RESP_UNTIL_CLOSE:
            off = len;
            break;
        case LOAD_RESP_DONE:
            break;
        }
    }
    return (ssize_t)off;
}

int load_resp_eof(const struct load_resp *r) {
    return r->state == LOAD_RESP_UNTIL_CLOSE || r->state == LOAD_RESP_DONE;
}
