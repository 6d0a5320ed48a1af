/*
 * Unit tests for http_parse: request and response heads, the chunked
 * decoder, and the small lookups. The error tables are the smuggling
 * defence's specification: each row is a message another implementation
 * might frame differently, and the status it must get here.
 */
#include "http/http_parse.h"
#include "http/http_query.h"
#include "check_main.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
/* A literal with its length, so that embedded NULs count. */
#define LIT(s) s, sizeof(s) - 1

static const struct http_limits lim_default = {8192, 100, 2048, 1 << 20};

/* The request struct is 4 KiB of headers: keep it off the test stack. */
static struct http_request req;
static struct http_response res;
static const char *why;

static int parse_n(const char *s, size_t n) {
    why = NULL;
    return http_parse_request(s, n, &lim_default, &req, &why);
}

static int parse(const char *s) {
    return parse_n(s, strlen(s));
}

static int parse_res(const char *s) {
    why = NULL;
    return http_parse_response(s, strlen(s), &lim_default, &res, &why);
}

/* Compare a (pointer, length) field with a C string. */
#define ck_assert_span(p, n, s)                                                                    \
    do {                                                                                           \
        ck_assert_uint_eq((n), strlen(s));                                                         \
        ck_assert_mem_eq((p), (s), (n));                                                           \
    } while (0)

/* ---- the word-at-a-time scans: every stop position in a word ------------ */

/* A target and a field value of every length up to 24, each followed by its
 * terminator, and a value with a tab or a space at every position (both are
 * value bytes the word test stops at): the spans are exact. Every method
 * and a near-miss of each. */
START_TEST(test_scan_stops) {
    char target[32], value[32], msg[128];
    for (size_t n = 1; n <= 24; n++) {
        memset(target, 0, sizeof target);
        target[0] = '/';
        for (size_t i = 1; i < n; i++)
            target[i] = (char)('a' + i % 26);
        for (size_t k = 0; k <= n; k++) {
            memset(value, 0, sizeof value);
            for (size_t i = 0; i < n; i++)
                value[i] = (char)('A' + i % 26);
            if (k > 0 && k < n - 1)
                value[k] = k % 2 ? '\t' : ' ';
            int len = snprintf(msg, sizeof msg, "GET %s HTTP/1.1\r\nHost: h\r\nX-V: %s\r\n\r\n",
                               target, value);
            ck_assert_int_eq(parse(msg), len);
            ck_assert_span(req.target, req.target_len, target);
            ck_assert_span(req.headers[1].value, req.headers[1].value_len, value);
            ck_assert_span(req.host, req.host_len, "h");
        }
    }
    static const struct {
        const char *m;
        enum http_method want;
    } methods[] = {{"GET", HTTP_M_GET},         {"HEAD", HTTP_M_HEAD},   {"POST", HTTP_M_POST},
                   {"PUT", HTTP_M_PUT},         {"DELETE", HTTP_M_DELETE}, {"PATCH", HTTP_M_PATCH},
                   {"OPTIONS", HTTP_M_OPTIONS}, {"TRACE", HTTP_M_TRACE}, {"GEt", HTTP_M_OTHER},
                   {"PUTS", HTTP_M_OTHER},      {"HEAP", HTTP_M_OTHER},  {"PATCHY", HTTP_M_OTHER},
                   {"DELETES", HTTP_M_OTHER},   {"OPTION", HTTP_M_OTHER}, {"TRACF", HTTP_M_OTHER},
                   {"", HTTP_M_OTHER}};
    for (size_t i = 0; i < NELEM(methods); i++)
        ck_assert_int_eq(http_method_lookup(methods[i].m, strlen(methods[i].m)), methods[i].want);
    /* Host: a bad byte at every position of a 4-at-a-time check. */
    for (size_t k = 0; k < 9; k++) {
        char host[16] = "example.c";
        host[k] = '"';
        snprintf(msg, sizeof msg, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host);
        ck_assert_int_eq(parse(msg), HTTP_ERR_BAD);
    }
}
END_TEST

/* ---- valid requests ------------------------------------------------------ */

START_TEST(test_simple_get) {
    const char *s = "GET /index.html HTTP/1.1\r\nHost: example.com\r\n"
                    "User-Agent: t/1.0\r\nAccept: */*\r\nX-Empty:\r\n\r\n";
    ck_assert_int_eq(parse(s), (int)strlen(s));
    ck_assert_int_eq(req.method, HTTP_M_GET);
    ck_assert_span(req.method_str, req.method_len, "GET");
    ck_assert_span(req.target, req.target_len, "/index.html");
    ck_assert_span(req.path, req.path_len, "/index.html");
    ck_assert_ptr_null(req.query);
    ck_assert_int_eq(req.minor_version, 1);
    ck_assert_uint_eq(req.nheaders, 4);
    ck_assert_span(req.headers[1].name, req.headers[1].name_len, "User-Agent");
    ck_assert_span(req.headers[1].value, req.headers[1].value_len, "t/1.0");
    ck_assert_uint_eq(req.headers[3].value_len, 0);
    ck_assert_span(req.host, req.host_len, "example.com");
    ck_assert_int_eq(req.content_length, -1);
    ck_assert_int_eq(req.chunked, 0);
    ck_assert_int_eq(req.keep_alive, 1);
    ck_assert_int_eq(req.expect_continue, 0);
}
END_TEST

START_TEST(test_bare_lf_and_ows) {
    const char *s = "GET / HTTP/1.1\nHost:a\nX-A: \t v a\tl \t\nX-B: caf\xc3\xa9\n\n";
    ck_assert_int_eq(parse(s), (int)strlen(s));
    ck_assert_span(req.host, req.host_len, "a");
    ck_assert_span(req.headers[1].value, req.headers[1].value_len, "v a\tl");
    ck_assert_span(req.headers[2].value, req.headers[2].value_len, "caf\xc3\xa9");
    /* Tabs inside long values, and names as long as the framing ones. */
    s = "GET / HTTP/1.1\r\nHost: a\r\nX-Tab: a\tbcdefg\thijklmnopqrstuvwxyz\t\r\n"
        "Accept-Charset: utf-8\r\nIf-Modified-Since: x\r\n\r\n";
    ck_assert_int_eq(parse(s), (int)strlen(s));
    ck_assert_span(req.headers[1].value, req.headers[1].value_len,
                   "a\tbcdefg\thijklmnopqrstuvwxyz");
    ck_assert_int_eq(req.content_length, -1);
    ck_assert_int_eq(req.chunked, 0);
    /* why is optional. */
    ck_assert_int_eq(http_parse_request(LIT("GET / HTTP/1.1\r\n\r\n"), &lim_default, &req, NULL),
                     HTTP_ERR_BAD);
    ck_assert_int_eq(http_parse_response(LIT("HTTP/1.1 2 \r\n\r\n"), &lim_default, &res, NULL),
                     HTTP_ERR_BAD);
}
END_TEST

START_TEST(test_http10) {
    ck_assert_int_gt(parse("GET / HTTP/1.0\r\n\r\n"), 0);
    ck_assert_int_eq(req.minor_version, 0);
    ck_assert_int_eq(req.keep_alive, 0);
    ck_assert_ptr_null(req.host);
    ck_assert_int_gt(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), 0);
    ck_assert_int_eq(req.keep_alive, 1);
    ck_assert_int_gt(parse("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"), 0);
    ck_assert_int_eq(req.keep_alive, 0);
    /* A 1.0 server must ignore 100-continue (RFC 9110 10.1.1). */
    ck_assert_int_gt(parse("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"),
                     0);
    ck_assert_int_eq(req.expect_continue, 0);
}
END_TEST

START_TEST(test_connection_and_expect) {
    ck_assert_int_gt(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade , CLOSE\r\n\r\n"), 0);
    ck_assert_int_eq(req.keep_alive, 0);
    ck_assert_int_eq(req.upgrade, 1); /* an h2c upgrade is looked at only then (issue 15) */
    ck_assert_int_gt(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n"), 0);
    ck_assert_int_eq(req.keep_alive, 1);
    ck_assert_int_eq(req.upgrade, 0);
    ck_assert_int_gt(parse("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: upgrades\r\n\r\n"), 0);
    ck_assert_int_eq(req.upgrade, 0);
    ck_assert_int_gt(parse("PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
                           "Content-Length: 3\r\n\r\n"),
                     0);
    ck_assert_int_eq(req.method, HTTP_M_PUT);
    ck_assert_int_eq(req.expect_continue, 1);
    /* Other expectations are ignored rather than answered with 417. */
    ck_assert_int_gt(parse("PUT /x HTTP/1.1\r\nHost: a\r\nExpect: foo\r\n\r\n"), 0);
    ck_assert_int_eq(req.expect_continue, 0);
}
END_TEST

START_TEST(test_post_content_length) {
    const char *head = "POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n";
    char s[256];
    snprintf(s, sizeof s, "%shello", head);
    ck_assert_int_eq(parse(s), (int)strlen(head));
    ck_assert_int_eq(req.method, HTTP_M_POST);
    ck_assert_int_eq(req.content_length, 5);
    ck_assert_int_eq(req.chunked, 0);
    /* Identical repeats, as fields or as a list, are one value (RFC 9110 8.6). */
    ck_assert_int_gt(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n"
                           "content-length: 7\r\n\r\n"),
                     0);
    ck_assert_int_eq(req.content_length, 7);
    ck_assert_int_gt(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 ,5,  5\r\n\r\n"), 0);
    ck_assert_int_eq(req.content_length, 5);
    ck_assert_int_gt(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), 0);
    ck_assert_int_eq(req.content_length, 0);
    ck_assert_int_gt(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 01048576\r\n\r\n"), 0);
    ck_assert_int_eq(req.content_length, 1048576);
}
END_TEST

START_TEST(test_chunked_post) {
    const char *s = "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
                    "5\r\nhello\r\n0\r\n\r\n";
    ck_assert_int_eq(parse(s), (int)(strstr(s, "\r\n\r\n") - s + 4));
    ck_assert_int_eq(req.chunked, 1);
    ck_assert_int_eq(req.content_length, -1);
    ck_assert_int_gt(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  chunked \r\n\r\n"),
                     0);
    ck_assert_int_eq(req.chunked, 1);
}
END_TEST

START_TEST(test_pipelined) {
    const char *first = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
    char s[256];
    snprintf(s, sizeof s, "%sGET /b HTTP/1.1\r\nHost: a\r\n\r\nGET /c", first);
    ck_assert_int_eq(parse(s), (int)strlen(first));
    ck_assert_span(req.path, req.path_len, "/a");
    int n = parse(s + strlen(first));
    ck_assert_int_eq(n, (int)strlen(first));
    ck_assert_span(req.path, req.path_len, "/b");
    ck_assert_int_eq(parse(s + 2 * strlen(first)), HTTP_INCOMPLETE);
}
END_TEST

START_TEST(test_methods_and_forms) {
    static const struct {
        const char *line;
        enum http_method m;
    } cases[] = {
        {"GET", HTTP_M_GET},         {"HEAD", HTTP_M_HEAD},     {"POST", HTTP_M_POST},
        {"PUT", HTTP_M_PUT},         {"DELETE", HTTP_M_DELETE}, {"PATCH", HTTP_M_PATCH},
        {"OPTIONS", HTTP_M_OPTIONS}, {"TRACE", HTTP_M_TRACE},
    };
    char s[128];
    for (size_t i = 0; i < NELEM(cases); i++) {
        snprintf(s, sizeof s, "%s /x HTTP/1.1\r\nHost: a\r\n\r\n", cases[i].line);
        ck_assert_int_gt(parse(s), 0);
        ck_assert_int_eq(req.method, cases[i].m);
    }
    ck_assert_int_gt(parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    ck_assert_int_eq(req.method, HTTP_M_OPTIONS);
    ck_assert_span(req.path, req.path_len, "*");
    ck_assert_ptr_null(req.query);
}
END_TEST

START_TEST(test_query_split) {
    ck_assert_int_gt(parse("GET /s?q=1&r=?2 HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    ck_assert_span(req.path, req.path_len, "/s");
    ck_assert_span(req.query, req.query_len, "q=1&r=?2");
    ck_assert_int_gt(parse("GET /s? HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    ck_assert_ptr_nonnull(req.query);
    ck_assert_uint_eq(req.query_len, 0);
    ck_assert_span(req.target, req.target_len, "/s?");
}
END_TEST

/* Unknown query parameters are named (issue 16: "?dealy=5" was ignored). */
START_TEST(test_query_unknown) {
    static const char *const names[] = {"wait", "delay", NULL};
    static const char *const none[] = {NULL};
    size_t n = 99;
    ck_assert_int_gt(parse("GET /q?wait=1&delay=2&wait HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    ck_assert_ptr_null(http_query_unknown(&req, names, &n));
    ck_assert_int_gt(parse("GET /q?wait=1&dealy=5 HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    const char *u = http_query_unknown(&req, names, &n);
    ck_assert_ptr_nonnull(u);
    ck_assert_span(u, n, "dealy");
    ck_assert_int_gt(parse("GET /q?waitx HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    u = http_query_unknown(&req, names, &n);
    ck_assert_ptr_nonnull(u);
    ck_assert_span(u, n, "waitx");
    ck_assert_int_gt(parse("GET /q?&wait=1& HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    ck_assert_ptr_null(http_query_unknown(&req, names, &n)); /* empty pairs */
    ck_assert_int_gt(parse("GET /q?=3 HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    u = http_query_unknown(&req, names, &n);
    ck_assert_ptr_nonnull(u); /* a value without a name is not known */
    ck_assert_uint_eq(n, 0);
    ck_assert_int_gt(parse("GET /q HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    ck_assert_ptr_null(http_query_unknown(&req, none, &n));
    ck_assert_int_gt(parse("GET /q?a=1 HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    ck_assert_ptr_nonnull(http_query_unknown(&req, none, &n));
}
END_TEST

START_TEST(test_absolute_form) {
    ck_assert_int_gt(parse("GET http://example.com:8080/p/q?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
    ck_assert_span(req.target, req.target_len, "http://example.com:8080/p/q?x=1");
    ck_assert_span(req.path, req.path_len, "/p/q");
    ck_assert_span(req.query, req.query_len, "x=1");
    ck_assert_int_gt(parse("GET HTTPS://example.com HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
    ck_assert_span(req.path, req.path_len, "/");
    ck_assert_ptr_null(req.query);
    ck_assert_int_gt(parse("GET http://example.com?y HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
    ck_assert_span(req.path, req.path_len, "/");
    ck_assert_span(req.query, req.query_len, "y");
}
END_TEST

START_TEST(test_leading_crlf) {
    const char *s = "\r\n\n\r\nHEAD / HTTP/1.1\r\nHost: a\r\n\r\n";
    ck_assert_int_eq(parse(s), (int)strlen(s));
    ck_assert_int_eq(req.method, HTTP_M_HEAD);
    ck_assert_int_eq(parse("\r\n\r\n\r\n\r\n"), HTTP_INCOMPLETE);
    ck_assert_int_eq(parse("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_ERR_BAD);
}
END_TEST

/* Every proper prefix of a valid head is incomplete; the whole is complete. */
START_TEST(test_incomplete_prefixes) {
    static const char *const valid[] = {
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "\r\nPOST /p?q HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nX:  y \r\n\r\n",
        "PATCH http://h/p HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n",
        "OPTIONS * HTTP/1.0\r\n\r\n",
    };
    for (size_t i = 0; i < NELEM(valid); i++) {
        size_t n = strlen(valid[i]);
        for (size_t k = 0; k < n; k++)
            ck_assert_msg(parse_n(valid[i], k) == HTTP_INCOMPLETE, "case %zu prefix %zu", i, k);
        ck_assert_int_eq(parse_n(valid[i], n), (int)n);
    }
}
END_TEST

/* Invalid bytes fail at once, without waiting for the rest of the head. */
START_TEST(test_early_rejection) {
    ck_assert_int_eq(parse("GET /a\x01"), HTTP_ERR_BAD);
    ck_assert_int_eq(parse("FOO "), HTTP_ERR_METHOD);
    ck_assert_int_eq(parse("G(T"), HTTP_ERR_BAD);
    ck_assert_int_eq(parse("GET / XTTP"), HTTP_ERR_BAD);
    ck_assert_int_eq(parse("GET / HTTP/2"), HTTP_INCOMPLETE);
    ck_assert_int_eq(parse("GET / HTTP/2.0"), HTTP_ERR_VERSION);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: a\r\nX: \x7f"), HTTP_ERR_BAD);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: a\r\n x"), HTTP_ERR_BAD);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: a\rX"), HTTP_ERR_BAD);
    ck_assert_str_eq(why, "bare CR in field value");
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n"), HTTP_ERR_BAD);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nContent-Length: x"), HTTP_INCOMPLETE);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nContent-Length: x\r"), HTTP_INCOMPLETE);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nContent-Length: x\r\n"), HTTP_ERR_BAD);
}
END_TEST

/* ---- request errors ------------------------------------------------------ */

static const struct bad_case {
    const char *name;
    const char *raw;
    size_t len;
    int want;
} bad_requests[] = {
#define RL "POST / HTTP/1.1\r\nHost: a\r\n"
#define BAD(name, s, want)                                                                         \
    { name, LIT(s), want }
    BAD("CL then TE", RL "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_ERR_BAD),
    BAD("TE then CL", RL "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", HTTP_ERR_BAD),
    BAD("differing CL", RL "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", HTTP_ERR_BAD),
    BAD("differing CL list", RL "Content-Length: 5, 6\r\n\r\n", HTTP_ERR_BAD),
    BAD("CL plus sign", RL "Content-Length: +5\r\n\r\n", HTTP_ERR_BAD),
    BAD("CL minus sign", RL "Content-Length: -5\r\n\r\n", HTTP_ERR_BAD),
    BAD("CL inner space", RL "Content-Length: 1 2\r\n\r\n", HTTP_ERR_BAD),
    BAD("CL empty", RL "Content-Length: \r\n\r\n", HTTP_ERR_BAD),
    BAD("CL hex", RL "Content-Length: 0x5\r\n\r\n", HTTP_ERR_BAD),
    BAD("CL empty element", RL "Content-Length: 5,,5\r\n\r\n", HTTP_ERR_BAD),
    BAD("CL trailing comma", RL "Content-Length: 5,\r\n\r\n", HTTP_ERR_BAD),
    BAD("CL overflow", RL "Content-Length: 99999999999999999999\r\n\r\n", HTTP_ERR_BAD),
    BAD("CL over int64", RL "Content-Length: 9223372036854775808\r\n\r\n", HTTP_ERR_BAD),
    BAD("TE gzip", RL "Transfer-Encoding: gzip\r\n\r\n", HTTP_ERR_TE),
    BAD("TE gzip, chunked", RL "Transfer-Encoding: gzip, chunked\r\n\r\n", HTTP_ERR_TE),
    BAD("TE chunked, gzip", RL "Transfer-Encoding: chunked, gzip\r\n\r\n", HTTP_ERR_BAD),
    BAD("TE chunked then gzip field",
        RL "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", HTTP_ERR_BAD),
    BAD("TE chunked twice", RL "Transfer-Encoding: chunked, chunked\r\n\r\n", HTTP_ERR_BAD),
    BAD("TE chunked twice in fields",
        RL "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_ERR_BAD),
    BAD("TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_ERR_BAD),
    BAD("TE empty", RL "Transfer-Encoding: \r\n\r\n", HTTP_ERR_BAD),
    BAD("TE empty element", RL "Transfer-Encoding: , chunked\r\n\r\n", HTTP_ERR_BAD),
    BAD("TE trailing comma", RL "Transfer-Encoding: chunked,\r\n\r\n", HTTP_ERR_BAD),
    BAD("TE chunked parameter", RL "Transfer-Encoding: chunked;a=b\r\n\r\n", HTTP_ERR_BAD),
    BAD("TE quoted", RL "Transfer-Encoding: \"chunked\"\r\n\r\n", HTTP_ERR_BAD),
    BAD("TE vertical tab", RL "Transfer-Encoding: chunked\x0b\r\n\r\n", HTTP_ERR_BAD),
    BAD("TE xchunked", RL "Transfer-Encoding: xchunked\r\n\r\n", HTTP_ERR_TE),
    BAD("TE gzip with parameter", RL "Transfer-Encoding: gzip;q=1, chunked\r\n\r\n", HTTP_ERR_TE),
    BAD("TE two words", RL "Transfer-Encoding: chunked x\r\n\r\n", HTTP_ERR_BAD),
    BAD("obs-fold", RL "X-A: b\r\n  c\r\n\r\n", HTTP_ERR_BAD),
    BAD("obs-fold tab", RL "X-A: b\r\n\tc\r\n\r\n", HTTP_ERR_BAD),
    BAD("space before first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("bare CR ends request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("bare CR in target", "GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("bare CR in value", RL "X-A: b\rc\r\n\r\n", HTTP_ERR_BAD),
    BAD("CR CR LF", RL "X-A: b\r\r\n\r\n", HTTP_ERR_BAD),
    BAD("bare CR ends head", RL "\r\r\n", HTTP_ERR_BAD),
    BAD("bare CR leading", "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", HTTP_ERR_BAD),
    BAD("tab before colon", RL "X-A\t: b\r\n\r\n", HTTP_ERR_BAD),
    BAD("@ in name", RL "X@A: b\r\n\r\n", HTTP_ERR_BAD),
    BAD("quote in name", RL "X\"A: b\r\n\r\n", HTTP_ERR_BAD),
    BAD("slash in name", RL "X/A: b\r\n\r\n", HTTP_ERR_BAD),
    BAD("obs-text in name", RL "X\xc3\xa9: b\r\n\r\n", HTTP_ERR_BAD),
    BAD("empty name", RL ": b\r\n\r\n", HTTP_ERR_BAD),
    BAD("no colon", RL "X-A\r\n\r\n", HTTP_ERR_BAD),
    BAD("NUL in name", RL "X\0A: b\r\n\r\n", HTTP_ERR_BAD),
    BAD("NUL in value", RL "X-A: b\0c\r\n\r\n", HTTP_ERR_BAD),
    BAD("DEL in value", RL "X-A: b\x7f\r\n\r\n", HTTP_ERR_BAD),
    BAD("ESC in value", RL "X-A: \x1b[0m\r\n\r\n", HTTP_ERR_BAD),
    BAD("NUL in target", "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("tab in target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("missing Host", "GET / HTTP/1.1\r\n\r\n", HTTP_ERR_BAD),
    BAD("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("two Hosts in 1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", HTTP_ERR_BAD),
    BAD("space in Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", HTTP_ERR_BAD),
    BAD("slash in Host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", HTTP_ERR_BAD),
    BAD("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", HTTP_ERR_VERSION),
    BAD("HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", HTTP_ERR_VERSION),
    BAD("HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", HTTP_ERR_VERSION),
    BAD("lowercase version", "GET / http/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("version 1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("version 11", "GET / HTTP/11\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("version missing", "GET /\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("HTTP/0.9 style", "GET /\r\n\r\n", HTTP_ERR_BAD),
    BAD("two spaces after method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("two spaces before version", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("space after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("leading space", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("unknown method", "FOO / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_METHOD),
    BAD("lowercase method", "get / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_METHOD),
    BAD("lowercase trace", "trace / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_METHOD),
    BAD("CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_METHOD),
    BAD("method with (", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("method with NUL", "GE\0T / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("asterisk with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("asterisk plus", "OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("relative target", "GET index.html HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("authority-form", "GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("ftp scheme", "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("empty authority", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("userinfo", "GET http://u:p@a/x HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ERR_BAD),
    BAD("too many empty lines", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        HTTP_ERR_BAD),
#undef BAD
#undef RL
};

START_TEST(test_error_reasons) {
    ck_assert_int_eq(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n"),
                     HTTP_ERR_BAD);
    ck_assert_str_eq(why, "both Content-Length and Transfer-Encoding");
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: a\r\nX : b\r\n\r\n"), HTTP_ERR_BAD);
    ck_assert_str_eq(why, "whitespace before colon");
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\n\r\n"), HTTP_ERR_BAD);
    ck_assert_str_eq(why, "missing Host");
}
END_TEST

START_TEST(test_request_errors) {
    const struct bad_case *c = &bad_requests[_i];
    int rc = parse_n(c->raw, c->len);
    ck_assert_msg(rc == c->want, "%s: got %d want %d (%s)", c->name, rc, c->want,
                  why ? why : "no reason");
    ck_assert_ptr_nonnull(why);
    ck_assert_uint_gt(strlen(why), 0);
    /* The error does not depend on bytes after the head. */
    char tail[512];
    ck_assert_uint_lt(c->len + 20, sizeof tail);
    memcpy(tail, c->raw, c->len);
    memcpy(tail + c->len, "GET / HTTP/1.1\r\n\r\n", 18);
    ck_assert_int_eq(parse_n(tail, c->len + 18), c->want);
}
END_TEST

/* ---- limits -------------------------------------------------------------- */

START_TEST(test_limit_uri) {
    struct http_limits lim = {8192, 100, 16, 100};
    const char *ok = "GET /234567890123456 HTTP/1.1\r\nHost: a\r\n\r\n"; /* exactly 16 */
    const char *big = "GET /2345678901234567 HTTP/1.1\r\nHost: a\r\n\r\n";
    ck_assert_int_eq(http_parse_request(ok, strlen(ok), &lim, &req, &why), (int)strlen(ok));
    ck_assert_int_eq(http_parse_request(big, strlen(big), &lim, &req, &why), HTTP_ERR_URI_SIZE);
    /* Incomplete: the 17th target byte is enough to know. */
    ck_assert_int_eq(http_parse_request(big, 21, &lim, &req, &why), HTTP_ERR_URI_SIZE);
    ck_assert_int_eq(http_parse_request(big, 20, &lim, &req, &why), HTTP_INCOMPLETE);
    ck_assert_int_eq(http_parse_request(ok, 20, &lim, &req, &why), HTTP_INCOMPLETE);
    ck_assert_int_eq(http_err_status(HTTP_ERR_URI_SIZE), 414);
}
END_TEST

START_TEST(test_limit_head_bytes) {
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\nX-Long: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    size_t n = strlen(s);
    struct http_limits exact = {n, 100, 100, 100};
    struct http_limits small = {n - 1, 100, 100, 100};
    ck_assert_int_eq(http_parse_request(s, n, &exact, &req, &why), (int)n);
    ck_assert_int_eq(http_parse_request(s, n, &small, &req, &why), HTTP_ERR_HEADER_SIZE);
    /* Incomplete: once max_header_bytes arrived without the end of the head. */
    ck_assert_int_eq(http_parse_request(s, n - 1, &small, &req, &why), HTTP_ERR_HEADER_SIZE);
    ck_assert_int_eq(http_parse_request(s, n - 2, &small, &req, &why), HTTP_INCOMPLETE);
    ck_assert_int_eq(http_parse_request(s, n - 1, &exact, &req, &why), HTTP_INCOMPLETE);
    /* A slow client's endless field line. */
    char big[10000];
    int k = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    memset(big + k, 'a', sizeof big - k);
    ck_assert_int_eq(parse_n(big, sizeof big), HTTP_ERR_HEADER_SIZE);
    ck_assert_int_eq(http_err_status(HTTP_ERR_HEADER_SIZE), 431);
}
END_TEST

START_TEST(test_limit_header_count) {
    struct http_limits lim = {8192, 3, 100, 100};
    const char *ok = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    const char *big = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    ck_assert_int_eq(http_parse_request(ok, strlen(ok), &lim, &req, &why), (int)strlen(ok));
    ck_assert_uint_eq(req.nheaders, 3);
    ck_assert_int_eq(http_parse_request(big, strlen(big), &lim, &req, &why), HTTP_ERR_HEADER_COUNT);
    ck_assert_int_eq(http_parse_request(big, strlen(ok) - 1, &lim, &req, &why),
                     HTTP_ERR_HEADER_COUNT);
    /* The configured limit is capped by the array size. */
    struct http_limits huge = {1 << 20, 1000, 100, 100};
    static char many[8192];
    size_t n = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < HTTP_MAX_HEADERS; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "X: %d\r\n", i);
    n += (size_t)snprintf(many + n, sizeof many - n, "\r\n");
    ck_assert_int_eq(http_parse_request(many, n, &huge, &req, &why), HTTP_ERR_HEADER_COUNT);
    ck_assert_int_eq(http_err_status(HTTP_ERR_HEADER_COUNT), 431);
}
END_TEST

START_TEST(test_limit_body) {
    struct http_limits lim = {8192, 100, 100, 1000};
    const char *ok = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n";
    const char *big = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n";
    ck_assert_int_gt(http_parse_request(ok, strlen(ok), &lim, &req, &why), 0);
    ck_assert_int_eq(http_parse_request(big, strlen(big), &lim, &req, &why), HTTP_ERR_BODY_SIZE);
    ck_assert_int_eq(http_err_status(HTTP_ERR_BODY_SIZE), 413);
}
END_TEST

/* ---- responses ----------------------------------------------------------- */

START_TEST(test_response_ok) {
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello";
    ck_assert_int_eq(parse_res(s), (int)strlen(s) - 5);
    ck_assert_int_eq(res.status, 200);
    ck_assert_int_eq(res.minor_version, 1);
    ck_assert_span(res.reason, res.reason_len, "OK");
    ck_assert_int_eq(res.content_length, 5);
    ck_assert_int_eq(res.chunked, 0);
    ck_assert_int_eq(res.keep_alive, 1);
    ck_assert_uint_eq(res.nheaders, 2);
    ck_assert_ptr_nonnull(http_find_header(res.headers, res.nheaders, "server"));

    ck_assert_int_gt(parse_res("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), 0);
    ck_assert_int_eq(res.chunked, 1);
    ck_assert_int_eq(res.content_length, -1);
    ck_assert_int_gt(parse_res("HTTP/1.1 204 No Content\r\n\r\n"), 0);
    ck_assert_int_eq(res.status, 204);
    ck_assert_int_eq(res.content_length, -1);
    ck_assert_int_gt(parse_res("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n"), 0);
    ck_assert_int_eq(res.keep_alive, 0);
    ck_assert_int_gt(parse_res("HTTP/1.0 200 OK\r\n\r\n"), 0);
    ck_assert_int_eq(res.keep_alive, 0);
    ck_assert_int_gt(parse_res("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n"), 0);
    ck_assert_int_eq(res.keep_alive, 1);
    ck_assert_int_gt(parse_res("HTTP/1.1 500 \r\n\r\n"), 0);
    ck_assert_uint_eq(res.reason_len, 0);
    ck_assert_int_gt(parse_res("HTTP/1.1 503\n\n"), 0);
    ck_assert_int_eq(res.status, 503);
    /* Host means nothing in a response. */
    ck_assert_int_gt(parse_res("HTTP/1.1 200 OK\r\nHost: a\r\nHost: b c\r\n\r\n"), 0);
}
END_TEST

START_TEST(test_response_errors) {
    ck_assert_int_eq(parse_res("HTTP/1.1 20 OK\r\n\r\n"), HTTP_ERR_BAD);
    ck_assert_int_eq(parse_res("HTTP/1.1 2000 OK\r\n\r\n"), HTTP_ERR_BAD);
    ck_assert_int_eq(parse_res("HTTP/1.1 099 X\r\n\r\n"), HTTP_ERR_BAD);
    ck_assert_int_eq(parse_res("HTTP/1.1 600 X\r\n\r\n"), HTTP_ERR_BAD);
    ck_assert_int_eq(parse_res("HTTP/1.1 abc X\r\n\r\n"), HTTP_ERR_BAD);
    ck_assert_int_eq(parse_res("HTTP/1.1  200 OK\r\n\r\n"), HTTP_ERR_BAD);
    ck_assert_int_eq(parse_res("HTTP/1.1 200 O\x01K\r\n\r\n"), HTTP_ERR_BAD);
    ck_assert_int_eq(parse_res("http/1.1 200 OK\r\n\r\n"), HTTP_ERR_BAD);
    ck_assert_int_eq(parse_res("HTTP/2.0 200 OK\r\n\r\n"), HTTP_ERR_VERSION);
    ck_assert_int_eq(parse_res("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n"),
                     HTTP_ERR_BAD);
    ck_assert_int_eq(parse_res("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
                     HTTP_ERR_BAD);
    ck_assert_int_eq(parse_res("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"), HTTP_ERR_BAD);
    ck_assert_int_eq(parse_res("HTTP/1.1 200 OK\rX: a\r\n\r\n"), HTTP_ERR_BAD);

    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    size_t n = strlen(s);
    for (size_t k = 0; k < n; k++) {
        why = NULL;
        ck_assert_int_eq(http_parse_response(s, k, &lim_default, &res, &why), HTTP_INCOMPLETE);
    }
    struct http_limits small = {n - 1, 100, 0, 0};
    ck_assert_int_eq(http_parse_response(s, n, &small, &res, &why), HTTP_ERR_HEADER_SIZE);
    struct http_limits few = {8192, 0, 0, 0};
    ck_assert_int_eq(http_parse_response(s, n, &few, &res, &why), HTTP_ERR_HEADER_COUNT);
}
END_TEST

/* ---- chunked decoding ---------------------------------------------------- */

struct decoded {
    ssize_t rc;      /* last return value */
    char out[16384]; /* payload */
    size_t out_len;
    char rest[512]; /* bytes after the message */
    size_t rest_len;
};

/*
 * Feed raw[0..len) to a fresh decoder in pieces of the given sizes (the
 * last size repeats), the way a connection would hand over reads.
 */
static void decode_pieces(const char *raw, size_t len, const size_t *sizes, size_t nsizes,
                          uint64_t max_body, struct decoded *out) {
    static char piece[16384];
    struct http_chunked d;
    http_chunked_init(&d);
    memset(out, 0, sizeof *out);
    out->rc = HTTP_INCOMPLETE;
    size_t off = 0, i = 0;
    while (off < len) {
        size_t n = sizes[i < nsizes ? i : nsizes - 1];
        i++;
        if (n > len - off)
            n = len - off;
        memcpy(piece, raw + off, n);
        off += n;
        size_t dlen = n;
        out->rc = http_chunked_decode(&d, piece, &dlen, max_body, &why);
        ck_assert_uint_le(dlen, n);
        ck_assert_uint_le(out->out_len + dlen, sizeof out->out);
        memcpy(out->out + out->out_len, piece, dlen);
        out->out_len += dlen;
        if (out->rc >= 0) {
            ck_assert_uint_le(dlen + (size_t)out->rc, n);
            memcpy(out->rest, piece + dlen, (size_t)out->rc);
            memcpy(out->rest + out->rc, raw + off, len - off);
            out->rest_len = (size_t)out->rc + len - off;
            ck_assert_uint_eq(d.total, out->out_len);
            return;
        }
        if (out->rc != HTTP_INCOMPLETE)
            return;
    }
}

static void decode_whole(const char *raw, size_t len, uint64_t max_body, struct decoded *out) {
    size_t whole = len ? len : 1;
    decode_pieces(raw, len, &whole, 1, max_body, out);
}

/* Valid messages: payload and what follows, checked whole, split and bytewise. */
static const struct chunk_case {
    const char *raw;
    size_t len;
    const char *payload;
    size_t payload_len;
    const char *rest;
} good_chunks[] = {
#define GOOD(raw, payload, rest)                                                                   \
    { LIT(raw), LIT(payload), rest }
    GOOD("5\r\nhello\r\n0\r\n\r\n", "hello", ""),
    GOOD("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", ""),
    GOOD("5;name=value\r\nhello\r\n1 ; a=\"b;c\"\r\n!\r\n0;last\r\n\r\n", "hello!", ""),
    GOOD("3\r\nabc\r\n0\r\nX-Trailer: 1\r\nY:2\r\n\r\n", "abc", ""),
    GOOD("A\r\n0123456789\r\nb\r\nabcdefghijk\r\n00000\r\n\r\n", "0123456789abcdefghijk", ""),
    GOOD("0000000000000003\r\nxyz\r\n0\r\n\r\n", "xyz", ""),
    GOOD("2\nhi\n0\nT: x\n\n", "hi", ""),
    GOOD("2;a\nhi\r\n0;b\nT: x\r\n\n", "hi", ""),
    GOOD("0\r\n\r\n", "", ""),
    GOOD("4\r\n\r\n\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "\r\n\r\n", "GET / HTTP/1.1\r\n"),
    GOOD("1\r\n\0\r\n0\r\n\r\n\r\nX", "\0", "\r\nX"),
#undef GOOD
};

static void check_good_chunk(const struct chunk_case *c, const struct decoded *r, const char *how) {
    ck_assert_msg(r->rc >= 0, "%s %s: rc %zd (%s)", c->raw, how, r->rc, why ? why : "");
    ck_assert_uint_eq(r->out_len, c->payload_len);
    ck_assert(memcmp(r->out, c->payload, c->payload_len) == 0);
    ck_assert_uint_eq(r->rest_len, strlen(c->rest));
    ck_assert(memcmp(r->rest, c->rest, r->rest_len) == 0);
}

START_TEST(test_chunked_good) {
    static struct decoded r;
    const struct chunk_case *c = &good_chunks[_i];
    decode_whole(c->raw, c->len, 1 << 20, &r);
    check_good_chunk(c, &r, "whole");
    size_t one = 1;
    decode_pieces(c->raw, c->len, &one, 1, 1 << 20, &r);
    check_good_chunk(c, &r, "bytewise");
    for (size_t k = 1; k < c->len; k++) {
        size_t sizes[2] = {k, c->len};
        decode_pieces(c->raw, c->len, sizes, 2, 1 << 20, &r);
        check_good_chunk(c, &r, "split");
    }
}
END_TEST

static const struct chunk_error {
    const char *name;
    const char *raw;
    size_t len;
    uint64_t max_body;
    int want;
} bad_chunks[] = {
#define CBAD(name, raw, max, want)                                                                 \
    { name, LIT(raw), max, want }
    CBAD("bad hex", "g\r\n", 100, HTTP_ERR_BAD),
    CBAD("negative", "-5\r\nhello\r\n0\r\n\r\n", 100, HTTP_ERR_BAD),
    CBAD("plus", "+5\r\nhello\r\n0\r\n\r\n", 100, HTTP_ERR_BAD),
    CBAD("0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", 100, HTTP_ERR_BAD),
    CBAD("empty size", "\r\nhello\r\n0\r\n\r\n", 100, HTTP_ERR_BAD),
    CBAD("leading space", " 5\r\nhello\r\n0\r\n\r\n", 100, HTTP_ERR_BAD),
    CBAD("trailing space", "5 \r\nhello\r\n0\r\n\r\n", 100, HTTP_ERR_BAD),
    CBAD("17 digits", "00000000000000005\r\nhello\r\n0\r\n\r\n", 100, HTTP_ERR_BAD),
    CBAD("overflow", "10000000000000000\r\n", UINT64_MAX, HTTP_ERR_BAD),
    CBAD("2^64-1", "FFFFFFFFFFFFFFFF\r\n", 100, HTTP_ERR_BODY_SIZE),
    CBAD("missing CRLF after data", "5\r\nhelloX\r\n0\r\n\r\n", 100, HTTP_ERR_BAD),
    CBAD("long data", "5\r\nhello!\r\n0\r\n\r\n", 100, HTTP_ERR_BAD),
    CBAD("CR X after data", "5\r\nhello\rX0\r\n\r\n", 100, HTTP_ERR_BAD),
    CBAD("bare CR in size line", "5\rhello\r\n0\r\n\r\n", 100, HTTP_ERR_BAD),
    CBAD("NUL in extension", "5;a\0\r\nhello\r\n0\r\n\r\n", 100, HTTP_ERR_BAD),
    CBAD("body too large", "b\r\nhello world\r\n0\r\n\r\n", 10, HTTP_ERR_BODY_SIZE),
    CBAD("body too large in sum", "6\r\nhello \r\n6\r\nworld!\r\n0\r\n\r\n", 11,
         HTTP_ERR_BODY_SIZE),
    CBAD("obs-fold in trailer", "0\r\nA: b\r\n c\r\n\r\n", 100, HTTP_ERR_BAD),
    CBAD("bare CR in trailer", "0\r\nA: b\rc\r\n\r\n", 100, HTTP_ERR_BAD),
    CBAD("bare CR at end", "0\r\n\rX", 100, HTTP_ERR_BAD),
    CBAD("NUL in trailer", "0\r\nA: \0\r\n\r\n", 100, HTTP_ERR_BAD),
    CBAD("NUL starts trailer", "0\r\n\0A: b\r\n\r\n", 100, HTTP_ERR_BAD),
    CBAD("space then CRLF", "5 \r\nhello\r\n0\r\n\r\n", 100, HTTP_ERR_BAD),
#undef CBAD
};

START_TEST(test_chunked_errors) {
    static struct decoded r;
    const struct chunk_error *c = &bad_chunks[_i];
    decode_whole(c->raw, c->len, c->max_body, &r);
    ck_assert_msg(r.rc == c->want, "%s: got %zd want %d", c->name, r.rc, c->want);
    ck_assert_ptr_nonnull(why);
    size_t one = 1;
    decode_pieces(c->raw, c->len, &one, 1, c->max_body, &r);
    ck_assert_msg(r.rc == c->want, "%s bytewise: got %zd want %d", c->name, r.rc, c->want);
}
END_TEST

START_TEST(test_chunked_bounds) {
    static char raw[20000];
    static struct decoded r;
    /* Extensions: 4096 bytes per size line, line end excluded. */
    size_t n = (size_t)snprintf(raw, sizeof raw, "1;");
    memset(raw + n, 'x', 4094);
    n += 4094;
    n += (size_t)snprintf(raw + n, sizeof raw - n, "\r\nA\r\n0\r\n\r\n");
    decode_whole(raw, n, 100, &r);
    ck_assert_int_eq(r.rc, 0);
    memmove(raw + 3, raw + 2, n - 2); /* one byte more */
    decode_whole(raw, n + 1, 100, &r);
    ck_assert_int_eq(r.rc, HTTP_ERR_BAD);

    /* Whitespace before ";" counts too: "1", spaces, ";" make 4096 bytes. */
    raw[0] = '1';
    memset(raw + 1, ' ', 4094);
    memcpy(raw + 4095, ";\r\nA\r\n0\r\n\r\n", 11);
    decode_whole(raw, 4106, 100, &r);
    ck_assert_int_eq(r.rc, 0);
    decode_whole(raw + 1, 4105, 100, &r);
    ck_assert_int_eq(r.rc, HTTP_ERR_BAD); /* no size at all */
    memmove(raw + 2, raw + 1, 4105);      /* one space more */
    decode_whole(raw, 4107, 100, &r);
    ck_assert_int_eq(r.rc, HTTP_ERR_BAD);

    /* Trailers: 64 lines of at most 8192 bytes. */
    n = (size_t)snprintf(raw, sizeof raw, "0\r\n");
    for (int i = 0; i < 64; i++)
        n += (size_t)snprintf(raw + n, sizeof raw - n, "T%d: v\r\n", i);
    memcpy(raw + n, "\r\n", 2);
    decode_whole(raw, n + 2, 100, &r);
    ck_assert_int_eq(r.rc, 0);
    memcpy(raw + n, "T: v\r\n\r\n", 8);
    decode_whole(raw, n + 8, 100, &r);
    ck_assert_int_eq(r.rc, HTTP_ERR_BAD);
    ck_assert_str_eq(why, "too many trailer fields");

    n = (size_t)snprintf(raw, sizeof raw, "0\r\nT: ");
    memset(raw + n, 'v', 8189); /* an 8192-byte line */
    memcpy(raw + n + 8189, "\r\n\r\n", 4);
    decode_whole(raw, n + 8193, 100, &r);
    ck_assert_int_eq(r.rc, 0);
    memset(raw + n, 'v', 8190);
    memcpy(raw + n + 8190, "\r\n\r\n", 4);
    decode_whole(raw, n + 8194, 100, &r);
    ck_assert_int_eq(r.rc, HTTP_ERR_BAD);
    ck_assert_str_eq(why, "trailer field line too long");
}
END_TEST

START_TEST(test_chunked_state) {
    struct http_chunked d;
    char buf[64];
    size_t len;
    /* Errors stick: the stream cannot be resynchronised. */
    http_chunked_init(&d);
    memcpy(buf, "z\r\n", 3);
    len = 3;
    ck_assert_int_eq(http_chunked_decode(&d, buf, &len, 100, &why), HTTP_ERR_BAD);
    memcpy(buf, "0\r\n\r\n", 5);
    len = 5;
    ck_assert_int_eq(http_chunked_decode(&d, buf, &len, 100, &why), HTTP_ERR_BAD);
    /* After the end, everything is the next message. */
    http_chunked_init(&d);
    memcpy(buf, "0\r\n\r\n", 5);
    len = 5;
    ck_assert_int_eq(http_chunked_decode(&d, buf, &len, 100, &why), 0);
    ck_assert_uint_eq(len, 0);
    memcpy(buf, "abc", 3);
    len = 3;
    ck_assert_int_eq(http_chunked_decode(&d, buf, &len, 100, &why), 3);
    ck_assert_uint_eq(len, 0);
    ck_assert_mem_eq(buf, "abc", 3);
    /* Empty input is merely incomplete; why is optional. */
    http_chunked_init(&d);
    len = 0;
    ck_assert_int_eq(http_chunked_decode(&d, buf, &len, 100, NULL), HTTP_INCOMPLETE);
    /* Data in flight: decoded bytes are handed over as they arrive. */
    memcpy(buf, "a\r\n01234", 8);
    len = 8;
    ck_assert_int_eq(http_chunked_decode(&d, buf, &len, 100, &why), HTTP_INCOMPLETE);
    ck_assert_uint_eq(len, 5);
    ck_assert_mem_eq(buf, "01234", 5);
    ck_assert_uint_eq(d.total, 5);
}
END_TEST

/* ---- lookups ------------------------------------------------------------- */

START_TEST(test_find_header) {
    ck_assert_int_gt(parse("GET / HTTP/1.1\r\nHost: a\r\nX-Thing: 1\r\nx-thing: 2\r\n\r\n"), 0);
    const struct http_header *h = http_find_header(req.headers, req.nheaders, "X-THING");
    ck_assert_ptr_nonnull(h);
    ck_assert_span(h->value, h->value_len, "1");
    ck_assert_ptr_null(http_find_header(req.headers, req.nheaders, "X-Thin"));
    ck_assert_ptr_null(http_find_header(req.headers, req.nheaders, "X-Things"));
    ck_assert_ptr_null(http_find_header(req.headers, 0, "Host"));
}
END_TEST

/* Seconds to ms: whole seconds take a path without strtod; both agree. */
START_TEST(test_seconds_ms) {
    static const struct { const char *s; int64_t ms; } t[] = {
        {"0", 0}, {"1", 1000}, {"007", 7000}, {"30", 30000}, {"999999999", 999999999000},
        {"1000000000", 1000000000000}, {"1000000001", -1}, {"1.5", 1500}, {"0.001", 1},
        {"0.0001", 1}, {"1.", 1000}, {".5", 500}, {"", -1}, {"abc", -1}, {"1e3", -1},
        {"-1", -1}, {"1 ", -1}, {"12345678901234567890123456789012", -1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        ck_assert_msg(http_parse_seconds_ms(t[i].s, strlen(t[i].s)) == t[i].ms, "%s", t[i].s);
    char d[16];
    for (int64_t v = 0; v < 100000; v += 7) { /* against the strtod path: "N.0" */
        int n = snprintf(d, sizeof d, "%lld", (long long)v);
        int64_t whole = http_parse_seconds_ms(d, (size_t)n);
        memcpy(d + n, ".0", 2);
        ck_assert_int_eq(whole, http_parse_seconds_ms(d, (size_t)n + 2));
    }
}
END_TEST

START_TEST(test_reason_and_status) {
    static const int known[] = {100, 101, 200, 201, 202, 203, 204, 205, 206, 300, 301, 302, 303,
                                304, 305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408,
                                409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421, 422, 425,
                                426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505, 507, 511};
    for (size_t i = 0; i < NELEM(known); i++)
        ck_assert_msg(strcmp(http_reason(known[i]), "Unknown") != 0, "%d", known[i]);
    ck_assert_str_eq(http_reason(200), "OK");
    ck_assert_str_eq(http_reason(404), "Not Found");
    ck_assert_str_eq(http_reason(431), "Request Header Fields Too Large");
    ck_assert_str_eq(http_reason(511), "Network Authentication Required");
    static const int unknown[] = {-1, 0, 99, 102, 199, 306, 309, 419, 452, 499, 506, 512, 600};
    for (size_t i = 0; i < NELEM(unknown); i++)
        ck_assert_str_eq(http_reason(unknown[i]), "Unknown");
    ck_assert_int_eq(http_err_status(HTTP_ERR_BAD), 400);
    ck_assert_int_eq(http_err_status(HTTP_ERR_METHOD), 501);
    ck_assert_int_eq(http_err_status(HTTP_ERR_TE), 501);
    ck_assert_int_eq(http_err_status(HTTP_ERR_VERSION), 505);
    ck_assert_int_eq(http_err_status(HTTP_INCOMPLETE), 400);
}
END_TEST

static Suite *http_parse_suite(void) {
    Suite *s = suite_create("http_parse");
    TCase *tc = tcase_create("request");
    tcase_add_test(tc, test_simple_get);
    tcase_add_test(tc, test_bare_lf_and_ows);
    tcase_add_test(tc, test_http10);
    tcase_add_test(tc, test_connection_and_expect);
    tcase_add_test(tc, test_post_content_length);
    tcase_add_test(tc, test_chunked_post);
    tcase_add_test(tc, test_pipelined);
    tcase_add_test(tc, test_methods_and_forms);
    tcase_add_test(tc, test_query_split);
    tcase_add_test(tc, test_absolute_form);
    tcase_add_test(tc, test_leading_crlf);
    tcase_add_test(tc, test_incomplete_prefixes);
    tcase_add_test(tc, test_early_rejection);
    tcase_add_test(tc, test_error_reasons);
    tcase_add_loop_test(tc, test_request_errors, 0, (int)NELEM(bad_requests));
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_test(tc, test_limit_uri);
    tcase_add_test(tc, test_limit_head_bytes);
    tcase_add_test(tc, test_limit_header_count);
    tcase_add_test(tc, test_limit_body);
    suite_add_tcase(s, tc);

    tc = tcase_create("response");
    tcase_add_test(tc, test_response_ok);
    tcase_add_test(tc, test_response_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("chunked");
    tcase_add_loop_test(tc, test_chunked_good, 0, (int)NELEM(good_chunks));
    tcase_add_loop_test(tc, test_chunked_errors, 0, (int)NELEM(bad_chunks));
    tcase_add_test(tc, test_chunked_bounds);
    tcase_add_test(tc, test_chunked_state);
    suite_add_tcase(s, tc);

    tc = tcase_create("lookup");
    tcase_add_test(tc, test_find_header);
    tcase_add_test(tc, test_scan_stops);
    tcase_add_test(tc, test_query_unknown);
    tcase_add_test(tc, test_reason_and_status);
    tcase_add_test(tc, test_seconds_ms);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return check_run(http_parse_suite());
}
