/* Unit tests of multipart: the boundary from Content-Type, bodies as real
 * clients send them, limits, and malformed bodies (each an error). */
#include "http/multipart.h"

#include "check_main.h"

#include <string.h>

static const struct multipart_limits lim = {16, 1024};

static int eq(const char *p, size_t n, const char *s) {
    return p && n == strlen(s) && memcmp(p, s, n) == 0;
}

static int parse(const char *body, const char *b, struct multipart_part *parts, size_t max,
                 const char **why) {
    *why = NULL;
    return multipart_parse(body, strlen(body), b, strlen(b), &lim, parts, max, why);
}

START_TEST(test_boundary) {
    const char *b;
    const char *ct = "multipart/form-data; boundary=abc123";
    ck_assert_int_eq(multipart_boundary(ct, strlen(ct), &b), 6);
    ck_assert(memcmp(b, "abc123", 6) == 0);
    ct = "Multipart/Form-Data;charset=utf-8; BOUNDARY=\"a b:c\"";
    ck_assert_int_eq(multipart_boundary(ct, strlen(ct), &b), 5);
    ck_assert(memcmp(b, "a b:c", 5) == 0);
    static const char *bad[] = {
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=\"unterminated",
        "multipart/form-data; boundary=a{b",
        "multipart/mixed; boundary=abc",
        "text/plain; boundary=abc",
        "multipart/form-data; boundary=0123456789012345678901234567890123456789012345678901234567890123456789X",
        "multipart/form-data junk; boundary=abc",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(multipart_boundary(bad[i], strlen(bad[i]), &b) == -1, "%s", bad[i]);
}
END_TEST

/* What requests/urllib3 sends for data={"a": "1"}, files={"f": ...}. */
START_TEST(test_fields_and_files) {
    const char *body = "--xyz\r\n"
                       "Content-Disposition: form-data; name=\"a\"\r\n\r\n"
                       "1\r\n"
                       "--xyz\r\n"
                       "Content-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\n"
                       "Content-Type: text/plain\r\n\r\n"
                       "line1\r\nline2\r\n"
                       "--xyz\r\n"
                       "content-disposition: form-data; name=empty\r\n\r\n"
                       "\r\n"
                       "--xyz--\r\n";
    struct multipart_part p[8];
    const char *why;
    ck_assert_int_eq(parse(body, "xyz", p, 8, &why), 3);
    ck_assert(eq(p[0].name, p[0].name_len, "a") && eq(p[0].data, p[0].data_len, "1"));
    ck_assert(p[0].filename == NULL && p[0].ctype == NULL);
    ck_assert(eq(p[1].name, p[1].name_len, "f"));
    ck_assert(eq(p[1].filename, p[1].filename_len, "x.txt"));
    ck_assert(eq(p[1].ctype, p[1].ctype_len, "text/plain"));
    ck_assert(eq(p[1].data, p[1].data_len, "line1\r\nline2"));
    ck_assert(eq(p[2].name, p[2].name_len, "empty") && p[2].data_len == 0);
}
END_TEST

/* A preamble, padding after a delimiter, an epilogue, binary data holding
 * a near-boundary, a part with no headers and one with no name. */
START_TEST(test_lenient_edges) {
    static const char body[] = "preamble\r\n--b1 \t\r\n"
                               "Content-Disposition: form-data; name=\"bin\"; filename=\"\"\r\n\r\n"
                               "\0\r\n--b2\r\n-\xff\r\n"
                               "--b1\r\n\r\nno name\r\n"
                               "--b1\r\n"
                               "Content-Disposition: form-data; filename=\"n.txt\"\r\n\r\nx\r\n"
                               "--b1--epilogue";
    struct multipart_part p[8];
    const char *why = NULL;
    int n = multipart_parse(body, sizeof body - 1, "b1", 2, &lim, p, 8, &why);
    ck_assert_msg(n == 1, "%d %s", n, why ? why : "");
    ck_assert(p[0].filename && p[0].filename_len == 0);
    ck_assert_uint_eq(p[0].data_len, 11);
    ck_assert(memcmp(p[0].data, "\0\r\n--b2\r\n-\xff", 11) == 0);
}
END_TEST

START_TEST(test_quoted_params) {
    const char *body = "--q\r\n"
                       "Content-Disposition: form-data ; name = \"a;b\" ; filename=\"say \\\"hi\\\".txt\";\r\n"
                       "\r\nv\r\n--q--";
    struct multipart_part p[2];
    const char *why;
    ck_assert_int_eq(parse(body, "q", p, 2, &why), 1);
    ck_assert(eq(p[0].name, p[0].name_len, "a;b"));
    ck_assert(eq(p[0].filename, p[0].filename_len, "say \\\"hi\\\".txt"));
}
END_TEST

START_TEST(test_limits) {
    const char *body = "--z\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n"
                       "--z\r\nContent-Disposition: form-data; name=b\r\n\r\n2\r\n"
                       "--z\r\nContent-Disposition: form-data; name=c\r\n\r\n3\r\n--z--";
    struct multipart_part p[8];
    const char *why;
    struct multipart_limits two = {2, 1024};
    ck_assert_int_eq(multipart_parse(body, strlen(body), "z", 1, &two, p, 8, &why), -2);
    ck_assert_int_eq(multipart_parse(body, strlen(body), "z", 1, &lim, p, 2, &why), -2);
    ck_assert_int_eq(multipart_parse(body, strlen(body), "z", 1, &lim, p, 3, &why), 3);
    struct multipart_limits tiny = {16, 20};
    ck_assert_int_eq(multipart_parse(body, strlen(body), "z", 1, &tiny, p, 8, &why), -1);
    ck_assert_str_eq(why, "a part's header block is over the limit");
}
END_TEST

START_TEST(test_malformed) {
    static const char *bad[] = {
        "",
        "no boundary here",
        "--z\r\nContent-Disposition: form-data; name=a\r\n\r\n1",     /* no closing delimiter */
        "--z\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--z", /* delimiter, no CRLF */
        "--zz\r\n\r\n1\r\n--z--",                                        /* longer boundary */
        "--z\r\nContent-Disposition: form-data; name=a\r\n1\r\n--z--", /* head never ends */
        "--z\r\nContent-Disposition: form-data; name=a\n\n1\r\n--z--", /* bare LF */
        "--z\r\nno colon\r\n\r\n1\r\n--z--",
        "--z\r\nContent-Disposition: form-data; name=\"a\r\n\r\n1\r\n--z--",
        "--z\r\nContent-Disposition: ; name=a\r\n\r\n1\r\n--z--",
        "--z\r\nContent-Disposition: form-data; name\r\n\r\n1\r\n--z--",
        "--z\r\nContent-Disposition: form-data, name=a\r\n\r\n1\r\n--z--",
        "--z\r\n\r\n1\r\n--zX\r\n\r\n--z--",
    };
    struct multipart_part p[4];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        int r = parse(bad[i], "z", p, 4, &why);
        ck_assert_msg(r == -1 && why && *why, "case %zu: %d", i, r);
    }
}
END_TEST

/* Every prefix of a valid body is an error or a (shorter) success that
 * never points outside the prefix. */
START_TEST(test_prefixes) {
    const char *body = "--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
                       "--xyz\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n"
                       "Content-Type: text/plain\r\n\r\nabc\r\n--xyz--\r\n";
    size_t len = strlen(body);
    struct multipart_part p[4];
    for (size_t n = 0; n <= len; n++) {
        const char *why = NULL;
        int r = multipart_parse(body, n, "xyz", 3, &lim, p, 4, &why);
        if (r < 0) {
            ck_assert(why != NULL);
            continue;
        }
        ck_assert_int_eq(r, 2);
        ck_assert_uint_ge(n, len - 2);
        for (int i = 0; i < r; i++)
            ck_assert(p[i].data >= body && p[i].data + p[i].data_len <= body + n);
    }
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("multipart");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_boundary);
    tcase_add_test(tc, test_fields_and_files);
    tcase_add_test(tc, test_lenient_edges);
    tcase_add_test(tc, test_quoted_params);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_prefixes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return check_run(suite());
}
