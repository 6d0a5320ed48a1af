/* Unit tests of awaitload's use of the shared parser (load_resp: where a
 * response ends, however the bytes are split) and of its URL parsing. */
#include "awaitload/load_resp.h"
#include "awaitload/load_url.h"
#include "check_main.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static struct http_response scratch;

/*
 * Feed msg the way a connection does: step bytes per read, unconsumed bytes
 * (a split head) carried into the next feed. Returns the bytes consumed
 * when the response ended, -1 on a parse error, -2 if the input ran out.
 */
static long feed_steps(struct load_resp *r, const char *msg, size_t len, size_t step) {
    static char buf[65536];
    size_t have = 0, pos = 0, total = 0;
    for (;;) {
        size_t n = len - pos < step ? len - pos : step;
        memcpy(buf + have, msg + pos, n);
        pos += n;
        have += n;
        const char *why = NULL;
        ssize_t used = load_resp_feed(r, buf, have, &scratch, &why);
        if (used < 0) {
            ck_assert_ptr_nonnull(why);
            return -1;
        }
        total += (size_t)used;
        memmove(buf, buf + used, have - (size_t)used);
        have -= (size_t)used;
        if (r->state == LOAD_RESP_DONE)
            return (long)total;
        if (n == 0)
            return -2;
    }
}

/* Whole, byte by byte, and a few odd split sizes: the result must not change. */
static void expect_response(const char *msg, int head_request, long want_len, int status,
                            int keep_alive) {
    size_t len = strlen(msg);
    const size_t steps[] = {len, 1, 2, 3, 7, 16};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        struct load_resp r;
        load_resp_begin(&r, head_request);
        long got = feed_steps(&r, msg, len, steps[i]);
        ck_assert_msg(got == want_len, "step %zu: consumed %ld, want %ld", steps[i], got, want_len);
        ck_assert_int_eq(r.status, status);
        ck_assert_int_eq(r.keep_alive, keep_alive);
    }
}

START_TEST(test_content_length) {
    const char *m = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    expect_response(m, 0, (long)strlen(m), 200, 1);
    const char *empty = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    expect_response(empty, 0, (long)strlen(empty), 404, 1);
}
END_TEST

START_TEST(test_chunked) {
    const char *m = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
    expect_response(m, 0, (long)strlen(m), 200, 1);
}
END_TEST

START_TEST(test_extra_bytes_left) {
    /* Bytes after the end stay unconsumed, at the end of the buffer. */
    char m[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nJUNK";
    struct load_resp r;
    load_resp_begin(&r, 0);
    const char *why;
    ssize_t used = load_resp_feed(&r, m, strlen(m), &scratch, &why);
    ck_assert_int_eq(r.state, LOAD_RESP_DONE);
    ck_assert_int_eq(used, (ssize_t)strlen(m) - 4);
    ck_assert(memcmp(m + used, "JUNK", 4) == 0);

    char n[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1";
    load_resp_begin(&r, 0);
    used = load_resp_feed(&r, n, strlen(n), &scratch, &why);
    ck_assert_int_eq(used, (ssize_t)strlen(n) - 8);
}
END_TEST

START_TEST(test_no_body) {
    /* HEAD: the Content-Length describes the GET, no body follows. */
    const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 159\r\n\r\n";
    expect_response(head, 1, (long)strlen(head), 200, 1);
    const char *nc = "HTTP/1.1 204 No Content\r\n\r\n";
    expect_response(nc, 0, (long)strlen(nc), 204, 1);
    const char *nm = "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n";
    expect_response(nm, 0, (long)strlen(nm), 304, 1);
}
END_TEST

START_TEST(test_interim) {
    const char *m =
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    expect_response(m, 0, (long)strlen(m), 201, 1);
    struct load_resp r;
    load_resp_begin(&r, 0);
    const char *sw = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n";
    ck_assert_int_eq(feed_steps(&r, sw, strlen(sw), 1000), -1);
}
END_TEST

START_TEST(test_close_delimited) {
    const char *m = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close";
    struct load_resp r;
    load_resp_begin(&r, 0);
    ck_assert_int_eq(feed_steps(&r, m, strlen(m), 7), -2); /* never ends by itself */
    ck_assert_int_eq(r.state, LOAD_RESP_UNTIL_CLOSE);
    ck_assert_int_eq(r.keep_alive, 0);
    ck_assert_int_eq(load_resp_eof(&r), 1);
    /* A close in the middle of a Content-Length body is a cut response. */
    const char *cut = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    load_resp_begin(&r, 0);
    ck_assert_int_eq(feed_steps(&r, cut, strlen(cut), 100), -2);
    ck_assert_int_eq(load_resp_eof(&r), 0);
}
END_TEST

START_TEST(test_keep_alive_flags) {
    const char *c = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    expect_response(c, 0, (long)strlen(c), 200, 0);
    const char *k = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx";
    expect_response(k, 0, (long)strlen(k), 200, 1);
}
END_TEST

START_TEST(test_garbage) {
    static const char *const bad[] = {
        "garbage\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "SSH-2.0-OpenSSH_9.2\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct load_resp r;
        load_resp_begin(&r, 0);
        ck_assert_msg(feed_steps(&r, bad[i], strlen(bad[i]), 1000) == -1, "case %zu", i);
    }
    /* A head that never ends is refused at the limit, not buffered forever. */
    size_t n = LOAD_RESP_MAX_HEAD + 100;
    char *big = malloc(n + 1);
    strcpy(big, "HTTP/1.1 200 OK\r\nX: ");
    memset(big + strlen(big), 'a', n - strlen(big));
    big[n] = '\0';
    struct load_resp r;
    load_resp_begin(&r, 0);
    const char *why;
    ck_assert_int_eq(load_resp_feed(&r, big, n, &scratch, &why), -1);
    free(big);
}
END_TEST

START_TEST(test_url_ok) {
    struct load_url u;
    char err[128];
    ck_assert_int_eq(load_url_parse("http://127.0.0.1:8080/get?a=1#frag", &u, err, sizeof err), 0);
    ck_assert_str_eq(u.host, "127.0.0.1");
    ck_assert_str_eq(u.port, "8080");
    ck_assert_str_eq(u.target, "/get?a=1");
    ck_assert_str_eq(u.host_header, "127.0.0.1:8080");
    ck_assert_int_eq(load_url_parse("HTTP://[::1]:9/", &u, err, sizeof err), 0);
    ck_assert_str_eq(u.host, "::1");
    ck_assert_str_eq(u.host_header, "[::1]:9");
    ck_assert_int_eq(load_url_parse("http://example.com", &u, err, sizeof err), 0);
    ck_assert_str_eq(u.port, "80");
    ck_assert_str_eq(u.target, "/");
    ck_assert_int_eq(load_url_parse("http://h?q", &u, err, sizeof err), 0);
    ck_assert_str_eq(u.target, "/?q");
    ck_assert_int_eq(load_url_parse("https://h/", &u, err, sizeof err), 0);
    ck_assert_int_eq(u.tls, 1);
    ck_assert_str_eq(u.port, "443");
}
END_TEST

START_TEST(test_url_bad) {
    static const char *const bad[] = {
        "",
        "127.0.0.1:8080",
        "ftp://h/",
        "http://",
        "http://:80/",
        "http://h:0/",
        "http://h:65536/",
        "http://h:8x/",
        "http://h:/",
        "http://u@h/",
        "http://[::1/",
        "http://[zz]:80/",
        "http://[::1]x/",
        "http://h/a b",
        "http://h/\x01",
        "http://ho st/",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct load_url u;
        char err[128] = "";
        ck_assert_msg(load_url_parse(bad[i], &u, err, sizeof err) == -1, "accepted '%s'", bad[i]);
        ck_assert_msg(err[0] != '\0', "no message for '%s'", bad[i]);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("load_resp");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_content_length);
    tcase_add_test(tc, test_chunked);
    tcase_add_test(tc, test_extra_bytes_left);
    tcase_add_test(tc, test_no_body);
    tcase_add_test(tc, test_interim);
    tcase_add_test(tc, test_close_delimited);
    tcase_add_test(tc, test_keep_alive_flags);
    tcase_add_test(tc, test_garbage);
    tcase_add_test(tc, test_url_ok);
    tcase_add_test(tc, test_url_bad);
    suite_add_tcase(s, tc);
    return check_run(s);
}
