/* Unit tests of peer_limit: per-address counts against a plain model,
 * through growth and backward-shift deletion. */
#include "net/peer_limit.h"

#include "check_main.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

static struct sockaddr_in v4(uint32_t host_order) {
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(host_order);
    return a;
}

START_TEST(test_limit_and_release) {
    struct peer_table t = {0};
    struct sockaddr_in a = v4(0x7f000001), b = v4(0x7f000002);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(peer_limit_take(&t, (struct sockaddr *)&a, 3), 0);
    ck_assert_int_eq(peer_limit_take(&t, (struct sockaddr *)&a, 3), 1);
    ck_assert_int_eq(peer_limit_take(&t, (struct sockaddr *)&b, 3), 0);
    ck_assert_uint_eq(peer_limit_count(&t, (struct sockaddr *)&a), 3);
    peer_limit_release(&t, (struct sockaddr *)&a);
    ck_assert_int_eq(peer_limit_take(&t, (struct sockaddr *)&a, 3), 0);
    peer_limit_free(&t);
}
END_TEST

/* ::ffff:127.0.0.1 (a dual-stack socket's view) counts as 127.0.0.1. */
START_TEST(test_v4_mapped_is_v4) {
    struct peer_table t = {0};
    struct sockaddr_in a = v4(0x7f000001);
    struct sockaddr_in6 m = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &m.sin6_addr);
    ck_assert_int_eq(peer_limit_take(&t, (struct sockaddr *)&a, 2), 0);
    ck_assert_int_eq(peer_limit_take(&t, (struct sockaddr *)&m, 2), 0);
    ck_assert_int_eq(peer_limit_take(&t, (struct sockaddr *)&a, 2), 1);
    peer_limit_free(&t);
}
END_TEST

static int loopback6(const char *text) {
    struct sockaddr_in6 a = {.sin6_family = AF_INET6};
    ck_assert_int_eq(inet_pton(AF_INET6, text, &a.sin6_addr), 1);
    return peer_is_loopback((struct sockaddr *)&a);
}

/* Loopback is 127.0.0.0/8, ::1 and their v4-mapped form; nothing else. */
START_TEST(test_is_loopback) {
    struct sockaddr_in a = v4(0x7f000001), b = v4(0x7f0a0b0c), c = v4(0xc0000201), d = v4(0x80000001);
    ck_assert(peer_is_loopback((struct sockaddr *)&a));
    ck_assert(peer_is_loopback((struct sockaddr *)&b));
    ck_assert(!peer_is_loopback((struct sockaddr *)&c));
    ck_assert(!peer_is_loopback((struct sockaddr *)&d));
    ck_assert(loopback6("::1"));
    ck_assert(loopback6("::ffff:127.0.0.1"));
    ck_assert(!loopback6("::2"));
    ck_assert(!loopback6("::"));
    ck_assert(!loopback6("::ffff:10.0.0.1"));
    ck_assert(!loopback6("::127.0.0.1")); /* v4-compatible (deprecated), not mapped */
    ck_assert(!loopback6("fe80::1"));
    struct sockaddr un = {.sa_family = AF_UNIX};
    ck_assert(!peer_is_loopback(&un));
}
END_TEST

/* Random takes and releases over many addresses, checked against an array. */
START_TEST(test_random_model) {
    enum { ADDRS = 5000, OPS = 400000, LIMIT = 4 };
    static uint32_t model[ADDRS];
    memset(model, 0, sizeof model);
    struct peer_table t = {0};
    srand(7);
    for (int op = 0; op < OPS; op++) {
        uint32_t k = (uint32_t)rand() % ADDRS;
        struct sockaddr_in a = v4(0x0a000000 + k * 7919);
        if (rand() % 2) {
            int r = peer_limit_take(&t, (struct sockaddr *)&a, LIMIT);
            ck_assert_int_eq(r, model[k] >= LIMIT ? 1 : 0);
            if (r == 0)
                model[k]++;
        } else if (model[k]) {
            peer_limit_release(&t, (struct sockaddr *)&a);
            model[k]--;
        }
        if (op % 50000 == 0)
            for (uint32_t j = 0; j < ADDRS; j++) {
                struct sockaddr_in b = v4(0x0a000000 + j * 7919);
                ck_assert_uint_eq(peer_limit_count(&t, (struct sockaddr *)&b), model[j]);
            }
    }
    size_t live = 0;
    for (uint32_t j = 0; j < ADDRS; j++)
        live += model[j] > 0;
    ck_assert_uint_eq(t.used, live);
    ck_assert(t.used * 2 <= t.cap);
    peer_limit_free(&t);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("peer_limit");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_limit_and_release);
    tcase_add_test(tc, test_v4_mapped_is_v4);
    tcase_add_test(tc, test_is_loopback);
    tcase_add_test(tc, test_random_model);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return check_run(suite());
}
