/*
 * access_log: one line per answered request (issue 16), in nginx's
 * "combined" format plus two fields:
 *
 *   ADDR - - [03/Dec/2026:12:32:24 +0000] "GET /get HTTP/1.1" 200 312 "REFERER" "USER-AGENT" 0.001 ID
 *
 * the request time in seconds with milliseconds (nginx's $request_time:
 * from the request's dispatch to its answer fully handed to the
 * connection) and the queue job or timer id the answer is about, "-" when
 * there is none. The byte count is the body (nginx's $body_bytes_sent).
 * Quotes, backslashes and bytes outside printable ASCII inside the quoted
 * fields are written as \xHH, so a line always splits the same way.
 *
 * Lines go to an in-memory buffer, written with one write(2) per loop turn
 * (or at once past 64 KiB). The loop never waits for the log: when the file
 * or pipe does not take the lines (disk full, slow reader), at most 1 MiB
 * waits; lines past it are dropped and counted
 * (awaitd_access_log_dropped_total). SIGUSR1 reopens the file.
 */
#ifndef AWAITD_ACCESS_LOG_H
#define AWAITD_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>

struct access_log;
struct conn;
struct config;
struct event_base;
struct http_request;

/* What a connection keeps of its current request for its access log line;
 * filled only while the access log is on (the request's start is the
 * connection's start_us). */
struct access_req {
    uint64_t bytes;      /* body bytes of the answer (http_reply counts them) */
    uint64_t id;         /* the job or timer id, when has_id */
    char *saved;         /* the request's quoted fields, copied when it is answered after
                            its handler returned (pending, streamed); NULL otherwise */
    uint32_t saved_split; /* saved: the "request" part, then the "referer" "agent" part */
    uint32_t saved_len;
    uint16_t status;     /* of the answer's head; 0 before one is written */
    uint8_t has_id;
};

/*
 * Open the access log cfg asks for ([log] access): NULL with *err empty if it
 * is off, NULL with a message in err if it cannot be opened. Lines dropped
 * are added to *dropped.
 */
struct access_log *access_log_new(struct event_base *base, const struct config *cfg,
                                  uint64_t *dropped, char *err, size_t errlen);

/* Flush what is buffered (a last try, never waiting) and close. */
void access_log_free(struct access_log *al);

/* SIGUSR1: open the path again (after logrotate renamed it). 0 or -1 (logged,
 * the old file stays in use). */
int access_log_reopen(struct access_log *al);

/* -t: can the files [log] names be opened for appending? 0, or -1 with a
 * message naming the key in err. */
int log_files_check(const struct config *cfg, char *err, size_t errlen);

/* A request is dispatched: reset r. */
void access_req_start(struct access_req *r);

/* The answer finishes after the handler returned: copy what the line needs
 * of req (its memory goes). On no memory the line will say "-". */
void access_req_save(struct access_req *r, const struct http_request *req);

/* Free what access_req_save copied (the connection closes unlogged). */
void access_req_drop(struct access_req *r);

/* Append the line for c's current answer: from req if given, else from what
 * access_req_save kept. status 0 (no head written: the client went) is 499. */
void access_log_write(struct access_log *al, struct conn *c,
                      const struct http_request *req);

#endif
