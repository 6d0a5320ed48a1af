/* Unit tests for svc/redis_slot.c: Redis Cluster's key slots and MOVED/ASK parsing. */
#include "svc/redis_slot.h"
#include "check_main.h"

#include <check.h>
#include <string.h>

static unsigned slot(const char *k) {
    return redis_key_slot(k, strlen(k));
}

START_TEST(crc16_vectors) {
    /* CRC16/XMODEM check value of "123456789" is 0x31C3 (Redis Cluster spec, appendix A). */
    ck_assert_uint_eq(slot("123456789"), 0x31C3);
    ck_assert_uint_eq(slot("foo"), 12182);
    ck_assert_uint_lt(slot(""), 16384);
}
END_TEST

START_TEST(hash_tags) {
    ck_assert_uint_eq(slot("{user1000}.following"), slot("user1000"));
    ck_assert_uint_eq(slot("{user1000}.followers"), slot("user1000"));
    ck_assert_uint_eq(slot("foo{}{bar}"), slot("foo{}{bar}")); /* empty tag: the whole key */
    ck_assert_uint_ne(slot("foo{}{bar}"), slot("bar"));
    ck_assert_uint_eq(slot("foo{{bar}}zap"), slot("{bar"));    /* first { to the first } */
    ck_assert_uint_eq(slot("foo{bar}{zap}"), slot("bar"));
    ck_assert_uint_eq(slot("{awaitd:q}:r"), slot("{awaitd:q}:m")); /* one queue, one slot */
}
END_TEST

START_TEST(cluster_keyslot) {
    /* Answers of CLUSTER KEYSLOT from redis-server 7.0.15 for awaitd's own keys and others. */
    ck_assert_uint_eq(slot("{awaitd:orders}:m"), 14740);
    ck_assert_uint_eq(slot("{awaitd:spread0}"), 15165);
    ck_assert_uint_eq(slot("awaitd:queues"), 11092); /* the queue directory: one fixed slot */
    ck_assert_uint_eq(slot("{awaitd:emails}:k:1.2:abc"), 14189); /* an idempotency key */
    ck_assert_uint_eq(slot("user:1000"), 1649);
    ck_assert_uint_eq(slot("{}"), 15257);
    ck_assert_uint_eq(slot("a{b}c{d}"), 3300);
    ck_assert_uint_eq(slot("\xc3\xbcmlaut"), 5498); /* bytes, not characters */
}
END_TEST

static int parse(const char *s, struct redis_redirect *r) {
    return redis_parse_redirect(s, strlen(s), r);
}

START_TEST(redirects) {
    struct redis_redirect r;
    ck_assert_int_eq(parse("MOVED 3999 127.0.0.1:6381", &r), 0);
    ck_assert_int_eq(r.ask, 0);
    ck_assert_uint_eq(r.slot, 3999);
    ck_assert_str_eq(r.host, "127.0.0.1");
    ck_assert_int_eq(r.port, 6381);
    ck_assert_int_eq(parse("ASK 16383 [::1]:7000", &r), 0);
    ck_assert_int_eq(r.ask, 1);
    ck_assert_uint_eq(r.slot, 16383);
    ck_assert_str_eq(r.host, "::1");
    ck_assert_int_eq(r.port, 7000);
    ck_assert_int_eq(parse("MOVED 0 redis-a.example:6379", &r), 0);
    ck_assert_str_eq(r.host, "redis-a.example");
    /* not redirections, or malformed ones */
    ck_assert_int_eq(parse("ERR unknown command", &r), -1);
    ck_assert_int_eq(parse("CLUSTERDOWN The cluster is down", &r), -1);
    ck_assert_int_eq(parse("MOVED 16384 127.0.0.1:6381", &r), -1);
    ck_assert_int_eq(parse("MOVED x 127.0.0.1:6381", &r), -1);
    ck_assert_int_eq(parse("MOVED 1 127.0.0.1", &r), -1);
    ck_assert_int_eq(parse("MOVED 1 127.0.0.1:", &r), -1);
    ck_assert_int_eq(parse("MOVED 1 127.0.0.1:70000", &r), -1);
    ck_assert_int_eq(parse("MOVED 1 :6379", &r), -1);
    ck_assert_int_eq(parse("MOVED 1", &r), -1);
    ck_assert_int_eq(parse("ASK", &r), -1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("redis_slot");
    TCase *t = tcase_create("slots");
    tcase_add_test(t, crc16_vectors);
    tcase_add_test(t, hash_tags);
    tcase_add_test(t, cluster_keyslot);
    tcase_add_test(t, redirects);
    suite_add_tcase(s, t);
    return check_run(s);
}
