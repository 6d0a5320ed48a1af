/* Unit tests for redis_key_slot (svc/redis_conn.c): Redis Cluster's key slots. */
#include "svc/redis_conn.h"
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

int main(void) {
    Suite *s = suite_create("redis_slot");
    TCase *t = tcase_create("slots");
    tcase_add_test(t, crc16_vectors);
    tcase_add_test(t, hash_tags);
    suite_add_tcase(s, t);
    return check_run(s);
}
