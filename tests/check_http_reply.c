/*
 * Unit tests of http_reply's contract when memory runs out: the part of an
 * answer that was written is dropped (never a truncated answer that reads
 * as whole), the connection is marked failed and will close, and later
 * replies on it write nothing. Growth is made to fail through buf's
 * realloc seam. No socket is needed: replies only fill conn_out().
 */
#include "core/buf.h"
#include "net/conn.h"
#include "net/http_reply.h"
#include "net/server.h"
#include "check_main.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static void *fail_realloc(void *p, size_t n) {
    (void)p;
    (void)n;
    return NULL;
}

static struct server srv;
static struct conn conn;

static void setup(void) {
    memset(&srv, 0, sizeof srv);
    memset(&conn, 0, sizeof conn);
    conn.srv = &srv;
    conn.b = &srv.idle_busy; /* idle: nothing of its own (conn_new) */
    conn.keep_alive = 1;
    buf_realloc = realloc;
}

static void teardown(void) {
    buf_realloc = realloc;
    buf_free(&srv.wbuf);
    buf_free(&srv.errbuf);
    buf_free(&conn.b->out);
    if (conn.b != &srv.idle_busy)
        free(conn.b);
    conn_busy_trim(&srv, 0);
}

static int starts(const struct buf *b, const char *s) {
    return b->len >= strlen(s) && memcmp(buf_start(b), s, strlen(s)) == 0;
}

START_TEST(test_reply_whole) {
    ck_assert_int_eq(reply(&conn, 200, CT_JSON, NULL, "{}", 2), 0);
    struct buf *o = conn_out(&conn);
    ck_assert(starts(o, "HTTP/1.1 200 OK\r\n"));
    ck_assert(memcmp(buf_start(o) + o->len - 6, "\r\n\r\n{}", 6) == 0);
    ck_assert_int_eq(conn.failed, 0);
    ck_assert_int_eq(conn.keep_alive, 1);
    ck_assert_uint_eq(srv.metrics.requests[2], 1);
}
END_TEST

/* A pipelined first answer stays; the second, which cannot grow the
 * buffer for its body, leaves no byte behind. */
/* An idle connection holds no buffer of its own (issue 19): an answer
 * goes to the shared one; while another connection holds that, the
 * connection takes a busy struct of its own and the answer goes there,
 * and idle_busy stays empty. */
START_TEST(test_own_buffer_only_when_shared_is_taken) {
    ck_assert_ptr_eq(conn.b, &srv.idle_busy);
    ck_assert_int_eq(reply(&conn, 200, CT_JSON, NULL, "{}", 2), 0);
    ck_assert_ptr_eq(conn.b, &srv.idle_busy);
    ck_assert_ptr_eq(srv.wbuf_owner, &conn);
    buf_reset(&srv.wbuf);
    static struct conn other;
    srv.wbuf_owner = &other;
    ck_assert_int_eq(reply(&conn, 201, CT_JSON, NULL, "{}", 2), 0);
    ck_assert_ptr_ne(conn.b, &srv.idle_busy);
    ck_assert(starts(&conn.b->out, "HTTP/1.1 201 Created\r\n"));
    ck_assert_uint_eq(conn.b->alog.status, 201);
    ck_assert_uint_eq(srv.wbuf.len, 0);
    ck_assert_ptr_null(srv.idle_busy.out.data);
    ck_assert_uint_eq(srv.idle_busy.out.len, 0);
    srv.wbuf_owner = NULL;
}
END_TEST

START_TEST(test_body_failure_drops_partial_answer) {
    ck_assert_int_eq(reply(&conn, 200, CT_TEXT, NULL, "first", 5), 0);
    struct buf *o = conn_out(&conn);
    size_t first = o->len;
    static char big[1 << 20];
    memset(big, 'x', sizeof big);
    buf_realloc = fail_realloc;
    ck_assert_int_eq(reply(&conn, 200, CT_OCTETS, NULL, big, sizeof big), -1);
    ck_assert_uint_eq(o->len, first);
    ck_assert_int_eq(conn.failed, 1);
    ck_assert_int_eq(conn.keep_alive, 0);
    ck_assert_uint_eq(srv.metrics.reply_failures, 1);
    /* Nothing more is written on a failed connection, even with memory back. */
    buf_realloc = realloc;
    ck_assert_int_eq(reply(&conn, 200, CT_TEXT, NULL, "late", 4), -1);
    ck_assert_int_eq(reply_error(&conn, 500, "late"), -1);
    ck_assert_int_eq(reply_chunk(&conn, "late", 4), -1);
    ck_assert_uint_eq(o->len, first);
    ck_assert_uint_eq(srv.metrics.reply_failures, 1);
}
END_TEST

/* Head failure: fill the buffer to its capacity so the head must grow it. */
START_TEST(test_head_failure_drops_partial_head) {
    struct buf *o = conn_out(&conn);
    ck_assert_int_eq(buf_reserve(o, 256), 0);
    while (o->cap - o->len > 20)
        buf_append(o, "y", 1);
    size_t before = o->len;
    buf_realloc = fail_realloc;
    ck_assert_int_eq(reply_head(&conn, 200, CT_JSON, 10, "X-Long: aaaaaaaaaaaaaaaaaaaa\r\n"), -1);
    ck_assert_uint_eq(o->len, before);
    ck_assert_int_eq(conn.failed, 1);
    ck_assert_uint_eq(srv.metrics.requests[2], 0); /* not counted as answered */
}
END_TEST

START_TEST(test_error_body_failure) {
    buf_realloc = fail_realloc;
    ck_assert_int_eq(reply_error(&conn, 400, "bad %s", "thing"), -1);
    ck_assert_uint_eq(conn_out(&conn)->len, 0);
    ck_assert_int_eq(conn.failed, 1);
    ck_assert_int_eq(conn.keep_alive, 0);
}
END_TEST

START_TEST(test_chunk_failure_keeps_earlier_chunks) {
    ck_assert_int_eq(reply_head(&conn, 200, CT_TEXT, -1, NULL), 0);
    ck_assert_int_eq(reply_chunk(&conn, "abc", 3), 0);
    struct buf *o = conn_out(&conn);
    size_t before = o->len;
    static char big[1 << 20];
    buf_realloc = fail_realloc;
    ck_assert_int_eq(reply_chunk(&conn, big, sizeof big), -1);
    ck_assert_uint_eq(o->len, before);
    ck_assert_int_eq(conn.failed, 1);
    ck_assert_int_eq(reply_chunk_end(&conn), -1);
    ck_assert_uint_eq(o->len, before);
}
END_TEST

START_TEST(test_reply_fail_answers) {
    ck_assert_int_eq(reply_fail(&conn, 404, "no such %s", "thing"), HANDLER_DONE);
    struct buf *o = conn_out(&conn);
    ck_assert(starts(o, "HTTP/1.1 404 Not Found\r\n"));
    ck_assert_ptr_nonnull(memmem(buf_start(o), o->len, "{\"error\": \"no such thing\", \"status\": 404}",
                                 40));
}
END_TEST

/* The head's first lines are kept per status and second: each answer
 * still carries its own status line and the current Date. */
static int head_is(struct buf *o, size_t at, const char *status_line) {
    char want[256];
    snprintf(want, sizeof want, "%s\r\nServer: awaitd\r\nDate: %s\r\n", status_line, srv.date);
    return o->len - at >= strlen(want) && memcmp(buf_start(o) + at, want, strlen(want)) == 0;
}

START_TEST(test_head_lines_follow_status_and_date) {
    struct buf *o = conn_out(&conn);
    size_t at = o->len;
    ck_assert_int_eq(reply(&conn, 200, CT_JSON, NULL, "{}", 2), 0);
    ck_assert(head_is(o, at, "HTTP/1.1 200 OK"));
    at = o->len;
    ck_assert_int_eq(reply(&conn, 404, CT_JSON, NULL, "{}", 2), 0);
    ck_assert(head_is(o, at, "HTTP/1.1 404 Not Found"));
    at = o->len;
    ck_assert_int_eq(reply(&conn, 200, CT_JSON, NULL, "{}", 2), 0);
    ck_assert(head_is(o, at, "HTTP/1.1 200 OK"));
    /* Into the next second: the same status gets the new Date. */
    time_t t0 = time(NULL);
    while (time(NULL) == t0)
        usleep(10000);
    at = o->len;
    ck_assert_int_eq(reply(&conn, 200, CT_JSON, NULL, "{}", 2), 0);
    ck_assert(head_is(o, at, "HTTP/1.1 200 OK"));
    ck_assert(srv.date_sec != t0);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("http_reply");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_reply_whole);
    tcase_add_test(tc, test_own_buffer_only_when_shared_is_taken);
    tcase_add_test(tc, test_body_failure_drops_partial_answer);
    tcase_add_test(tc, test_head_failure_drops_partial_head);
    tcase_add_test(tc, test_error_body_failure);
    tcase_add_test(tc, test_chunk_failure_keeps_earlier_chunks);
    tcase_add_test(tc, test_reply_fail_answers);
    tcase_add_test(tc, test_head_lines_follow_status_and_date);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return check_run(suite());
}
