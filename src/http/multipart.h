/*
 * multipart: a pure multipart/form-data parser (RFC 7578 over RFC 2046).
 * No I/O, no allocation: it reads a whole body in memory and fills the
 * caller's array of parts with pointers into it. Limits on the number of
 * parts and on each part's header block keep a hostile body cheap; the
 * body itself is already capped by [server] max_body.
 *
 * Strict where two readers could disagree (a missing closing delimiter, a
 * part head without its empty line, a boundary over 70 characters are
 * errors), lenient where clients differ harmlessly (the preamble and
 * epilogue are ignored, transport padding after a delimiter is skipped,
 * parts without a name are skipped as werkzeug does).
 */
#ifndef AWAITD_MULTIPART_H
#define AWAITD_MULTIPART_H

#include <stddef.h>

#define MULTIPART_MAX_BOUNDARY 70 /* RFC 2046 5.1.1 */

struct multipart_part {
    const char *name; /* the form field name (Content-Disposition name=) */
    size_t name_len;
    const char *filename; /* filename= as sent (quotes removed, escapes kept); NULL: a field */
    size_t filename_len;
    const char *ctype; /* the part's Content-Type value, NULL when absent */
    size_t ctype_len;
    const char *data; /* the part's bytes */
    size_t data_len;
};

struct multipart_limits {
    size_t max_parts;      /* more parts than this are an error */
    size_t max_head_bytes; /* one part's header block, CRLFs included */
};

/*
 * The boundary parameter of a Content-Type value ("multipart/form-data;
 * boundary=xyz", quotes allowed). Returns its length (1..70) and sets *b
 * to point into ctype, or -1 when ctype is not multipart/form-data or has
 * no valid boundary.
 */
int multipart_boundary(const char *ctype, size_t len, const char **b);

/*
 * Parse body[0..len) delimited by boundary b[0..blen). Fills parts[0..n)
 * and returns n (parts without a name are not counted), or -1 with *why
 * naming the problem; -2 when there are more than lim->max_parts parts
 * (or more than max, the array's size).
 */
int multipart_parse(const char *body, size_t len, const char *b, size_t blen,
                    const struct multipart_limits *lim, struct multipart_part *parts, size_t max,
                    const char **why);

#endif
