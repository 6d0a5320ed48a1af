/* Unit tests for svc/redis_slot.c: Redis Cluster's key slots and MOVED/ASK parsing. */
#include "svc/redis_slot.h"
#include "check_main.h"

#include <check.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
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

/* Replies built by hand, as hiredis hands them over. */
static redisReply *rnum(long long v) {
    static redisReply pool[64];
    static size_t n;
    redisReply *r = &pool[n++ % 64];
    memset(r, 0, sizeof *r);
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}

static redisReply *rstr(const char *s) {
    redisReply *r = rnum(0);
    r->type = REDIS_REPLY_STRING;
    r->str = (char *)s;
    r->len = strlen(s);
    return r;
}

static redisReply *rarr(redisReply **el, size_t n) {
    redisReply *r = rnum(0);
    r->type = REDIS_REPLY_ARRAY;
    r->element = el;
    r->elements = n;
    return r;
}

struct seen {
    struct redis_slot_range r[4];
    char host[4][32];
    int n;
};

static int collect(void *arg, const struct redis_slot_range *range) {
    struct seen *s = arg;
    s->r[s->n] = *range;
    snprintf(s->host[s->n], sizeof s->host[0], "%s", range->host ? range->host : "(asked)");
    s->n++;
    return 0;
}

START_TEST(cluster_slots) {
    /* Redis 7's answer: [first, last, [host, port, id, {hostname}], replica...] */
    redisReply *m1[] = {rstr("127.0.0.1"), rnum(7001), rstr("id1"), rarr(NULL, 0)};
    redisReply *r1[] = {rstr("127.0.0.1"), rnum(7004), rstr("id4"), rarr(NULL, 0)};
    redisReply *e1[] = {rnum(0), rnum(5460), rarr(m1, 4), rarr(r1, 4)};
    redisReply *m2[] = {rstr("?"), rnum(7002), rstr("id2")};
    redisReply *e2[] = {rnum(5461), rnum(16383), rarr(m2, 3)};
    redisReply *all[] = {rarr(e1, 4), rarr(e2, 3)};
    struct seen s = {0};
    ck_assert_int_eq(redis_parse_slots(rarr(all, 2), collect, &s), 0);
    ck_assert_int_eq(s.n, 2);
    ck_assert_uint_eq(s.r[0].first, 0);
    ck_assert_uint_eq(s.r[0].last, 5460);
    ck_assert_str_eq(s.host[0], "127.0.0.1");
    ck_assert_int_eq(s.r[0].port, 7001); /* the master, not the replica */
    ck_assert_uint_eq(s.r[1].first, 5461);
    ck_assert_uint_eq(s.r[1].last, 16383);
    ck_assert_str_eq(s.host[1], "(asked)"); /* "?": the node that answered */
    ck_assert_int_eq(s.r[1].port, 7002);
    /* not maps */
    redisReply *bad_range[] = {rnum(10), rnum(5), rarr(m1, 4)};
    redisReply *bad1[] = {rarr(bad_range, 3)};
    ck_assert_int_eq(redis_parse_slots(rarr(bad1, 1), collect, &s), -1);
    redisReply *big[] = {rnum(0), rnum(16384), rarr(m1, 4)};
    redisReply *bad2[] = {rarr(big, 3)};
    ck_assert_int_eq(redis_parse_slots(rarr(bad2, 1), collect, &s), -1);
    redisReply *noport[] = {rstr("127.0.0.1")};
    redisReply *e3[] = {rnum(0), rnum(1), rarr(noport, 1)};
    redisReply *bad3[] = {rarr(e3, 3)};
    ck_assert_int_eq(redis_parse_slots(rarr(bad3, 1), collect, &s), -1);
    ck_assert_int_eq(redis_parse_slots(rarr(NULL, 0), collect, &s), -1);
    ck_assert_int_eq(redis_parse_slots(rstr("ERR"), collect, &s), -1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("redis_slot");
    TCase *t = tcase_create("slots");
    tcase_add_test(t, crc16_vectors);
    tcase_add_test(t, hash_tags);
    tcase_add_test(t, cluster_keyslot);
    tcase_add_test(t, redirects);
    tcase_add_test(t, cluster_slots);
    suite_add_tcase(s, t);
    return check_run(s);
}
