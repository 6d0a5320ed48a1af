/* Unit tests of buf: growth, consume/compaction, formatting, JSON strings. */
#include "core/buf.h"
#include "check_main.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int eq(const struct buf *b, const char *s) {
    return b->len == strlen(s) && memcmp(buf_start(b), s, b->len) == 0;
}

START_TEST(test_text_numbers) {
    /* Each agrees with the printf it replaces on the queue's answers. */
    static const unsigned long long us[] = {0, 7, 10, 999, 1000, 18446744073709551615ULL};
    static const long long is[] = {0, -1, 5, -2147483648LL, -9223372036854775807LL - 1,
                                   9223372036854775807LL};
    static const unsigned long long ms[] = {0, 1, 999, 1000, 1764748800123ULL, 1764748800010ULL};
    char got[64], want[64];
    for (size_t i = 0; i < sizeof us / sizeof us[0]; i++) {
        *text_u64(got, us[i]) = '\0';
        snprintf(want, sizeof want, "%llu", us[i]);
        ck_assert_str_eq(got, want);
    }
    for (size_t i = 0; i < sizeof is / sizeof is[0]; i++) {
        *text_i64(got, is[i]) = '\0';
        snprintf(want, sizeof want, "%lld", is[i]);
        ck_assert_str_eq(got, want);
    }
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        *text_ms3(got, ms[i]) = '\0';
        snprintf(want, sizeof want, "%.3f", (double)ms[i] / 1000.0);
        ck_assert_str_eq(got, want);
    }
    *text_mem(got, "ab", 2) = '\0';
    ck_assert_str_eq(got, "ab");
}
END_TEST

START_TEST(test_append_grow) {
    struct buf b = BUF_INIT;
    for (int i = 0; i < 10000; i++)
        ck_assert_int_eq(buf_append(&b, "abc", 3), 0);
    ck_assert_uint_eq(b.len, 30000);
    ck_assert(memcmp(buf_start(&b) + 29997, "abc", 3) == 0);
    buf_free(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
}
END_TEST

START_TEST(test_consume_compact) {
    struct buf b = BUF_INIT;
    buf_appends(&b, "hello world");
    buf_consume(&b, 6);
    ck_assert(eq(&b, "world"));
    /* A reserve that needs the consumed room compacts instead of growing. */
    size_t cap = b.cap;
    ck_assert_int_eq(buf_reserve(&b, cap - 5), 0);
    ck_assert_uint_eq(b.cap, cap);
    ck_assert(eq(&b, "world"));
    buf_consume(&b, 100);
    ck_assert_uint_eq(b.len, 0);
    buf_free(&b);
}
END_TEST

START_TEST(test_appendf_u64) {
    struct buf b = BUF_INIT;
    buf_appendf(&b, "%d-%s", 42, "x");
    buf_append_u64(&b, 0);
    buf_append_u64(&b, 18446744073709551615ull);
    ck_assert(eq(&b, "42-x018446744073709551615"));
    buf_reset(&b);
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    buf_appendf(&b, "<%s>", big);
    ck_assert_uint_eq(b.len, 1001);
    buf_free(&b);
}
END_TEST

START_TEST(test_json_str) {
    struct buf b = BUF_INIT;
    buf_append_json_str(&b, "a\"b\\c\n\t\x01", 8);
    ck_assert(eq(&b, "\"a\\\"b\\\\c\\n\\t\\u0001\""));
    buf_reset(&b);
    /* Valid UTF-8 passes through; invalid bytes become U+FFFD. */
    buf_append_json_str(&b, "\xc3\xa9\xff", 3);
    ck_assert(eq(&b, "\"\xc3\xa9\xef\xbf\xbd\""));
    buf_reset(&b);
    buf_append_json_str(&b, "\xed\xa0\x80", 3); /* a surrogate */
    ck_assert(eq(&b, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""));
    buf_free(&b);
}
END_TEST

/* The reference: the byte-at-a-time escaping the word loop must equal. */
static void json_ref(struct buf *b, const unsigned char *p, size_t n) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        char e[8];
        if (c == '"' || c == '\\') {
            e[0] = '\\', e[1] = (char)c;
            buf_append(b, e, 2);
        } else if (c == '\n' || c == '\r' || c == '\t') {
            e[0] = '\\', e[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            buf_append(b, e, 2);
        } else if (c < 0x20) {
            e[0] = '\\', e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[c >> 4], e[5] = hex[c & 15];
            buf_append(b, e, 6);
        } else if (c < 0x80) {
            buf_append(b, &c, 1);
        } else {
            size_t l = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                     : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
            if (l && l <= n - i && utf8_valid((const char *)p + i, l)) {
                buf_append(b, p + i, l);
                i += l;
                continue;
            }
            buf_append(b, "\xEF\xBF\xBD", 3);
        }
        i++;
    }
}

/* Eight bytes at a time while no byte needs escaping: every length and
 * every position of a special byte (each kind) against the reference. */
START_TEST(test_json_words) {
    static const unsigned char specials[] = {'"', '\\', '\n', 0x01, 0x1f, 0x7f, 0x80, 0xc3, 0xe2, 0xff};
    struct buf got = BUF_INIT, want = BUF_INIT;
    unsigned char s[40];
    uint32_t seed = 12345;
    for (size_t n = 0; n <= sizeof s; n++)
        for (size_t at = 0; at <= n; at++)
            for (size_t k = 0; k < sizeof specials; k++) {
                for (size_t i = 0; i < n; i++)
                    s[i] = (unsigned char)(' ' + '!' + i % 90);
                if (at < n)
                    s[at] = specials[k];
                if (at + 1 < n && specials[k] == 0xc3)
                    s[at + 1] = 0xa9; /* a whole two-byte sequence */
                seed = seed * 1103515245u + 12345u;
                if (n && seed >> 28 == 0)
                    s[(seed >> 8) % n] = (unsigned char)(seed >> 16); /* one random byte more */
                buf_reset(&got);
                buf_reset(&want);
                ck_assert_int_eq(buf_append_json_chars(&got, (const char *)s, n), 0);
                json_ref(&want, s, n);
                ck_assert_uint_eq(got.len, want.len);
                ck_assert(got.len == 0 || memcmp(buf_start(&got), buf_start(&want), got.len) == 0);
            }
    buf_free(&got);
    buf_free(&want);
}
END_TEST

START_TEST(test_utf8_valid) {
    ck_assert(utf8_valid("plain", 5));
    ck_assert(utf8_valid("\xf0\x9f\x98\x80", 4));
    ck_assert(!utf8_valid("\xc0\xaf", 2)); /* overlong '/' */
    ck_assert(!utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    ck_assert(!utf8_valid("\xe2\x82", 2)); /* truncated */
}
END_TEST

int main(void) {
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_append_grow);
    tcase_add_test(tc, test_consume_compact);
    tcase_add_test(tc, test_appendf_u64);
    tcase_add_test(tc, test_json_str);
    tcase_add_test(tc, test_json_words);
    tcase_add_test(tc, test_utf8_valid);
    tcase_add_test(tc, test_text_numbers);
    suite_add_tcase(s, tc);
    return check_run(s);
}
