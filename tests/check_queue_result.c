/*
 * Unit tests for job results and job listing in the queue engine
 * (engine/queue_result.c), on a fake clock: results kept on ack and on a
 * dying nack, their expiry, the memory limit, the journal codec round trip
 * of RESULT records and the result ttl, replay and snapshot, delete and
 * requeue forgetting them, dead reasons, and listing pages by state.
 */
#include "engine/queue.h"
#include "core/buf.h"
#include "core/timer.h"
#include "journal/journal.h"
#include "journal/queue_journal.h"
#include "check_main.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define T0 1000

static struct timer_wheel W;
static struct queue_engine *E;

/* ---- a recorder keeping every event as its journal record ------------------ */

static struct buf J; /* the records, encoded as the journal would */
static const struct qj_clock CLK = {0};

static void on_event(void *ctx, const struct queue_event *ev) {
    (void)ctx;
    EXPECT(qj_encode(&J, ev, &CLK) == 0);
}

/* Replay every record of J into e (decoding each: the codec round trip). */
static void replay_all(struct queue_engine *e) {
    size_t off = 0;
    const char *d = buf_start(&J);
    while (off < J.len) {
        struct journal_record rec;
        ck_assert_int_eq(journal_record_parse(d + off, J.len - off, &rec), JOURNAL_PARSE_OK);
        struct queue_event ev;
        ck_assert_int_eq(qj_decode(rec.type, rec.payload, rec.len, &CLK, &ev), 0);
        int rc = queue_engine_replay(e, &ev);
        ck_assert_msg(rc == QUEUE_OK || rc == QUEUE_ERR_NOTFOUND, "replay type %d: %d", ev.type, rc);
        off += rec.size;
    }
}

static struct queue_engine *engine(size_t limit, int record) {
    struct queue_engine_config cfg = {.mem_limit = limit, .on_event = record ? on_event : NULL,
                                      .hash_seed = 7};
    return queue_engine_new(&W, &cfg);
}

static void setup(void) {
    timer_wheel_init(&W, T0);
    buf_free(&J);
    E = engine(0, 1);
    ck_assert_ptr_nonnull(E);
}

static void teardown(void) {
    queue_engine_free(E);
    E = NULL;
    ck_assert_uint_eq(W.count, 0); /* every timer (results' too) cancelled */
    buf_free(&J);
}

static struct queue *mkq(struct queue_engine *e, const char *name, uint32_t max_attempts,
                         uint64_t ttl) {
    struct queue_settings s;
    struct queue *q = NULL;
    queue_settings_default(&s);
    s.max_attempts = max_attempts;
    s.result_ttl_ms = ttl;
    ck_assert_int_eq(queue_create(e, name, strlen(name), &s, &q), QUEUE_OK);
    return q;
}

static uint64_t put(struct queue *q, const char *payload, int32_t prio, uint64_t delay) {
    struct queue_put p = {payload, strlen(payload), prio, delay, NULL, 0};
    uint64_t id = 0;
    ck_assert_int_eq(queue_put(q, &p, &id, NULL), QUEUE_OK);
    return id;
}

static uint64_t take(struct queue *q, uint32_t *attempt) {
    struct queue_job_info j;
    unsigned n = 0;
    ck_assert_int_eq(queue_reserve(q, 1, 0, &j, &n), QUEUE_OK);
    if (attempt)
        *attempt = j.attempt;
    return j.id;
}

static void expect_result(struct queue *q, uint64_t id, int outcome, const char *body) {
    struct queue_result_info r;
    ck_assert_int_eq(queue_result_get(q, id, &r), QUEUE_OK);
    ck_assert_int_eq(r.outcome, outcome);
    ck_assert_uint_eq(r.len, strlen(body));
    ck_assert(memcmp(r.body, body, r.len) == 0);
}

/* ---- tests ---------------------------------------------------------------------------- */

START_TEST(test_ack_result_kept_until_ttl) {
    struct queue *q = mkq(E, "r", 0, 1000);
    uint64_t id = put(q, "job", 0, 0);
    uint32_t a;
    take(q, &a);
    struct queue_engine_stats before;
    queue_engine_stats(E, &before);
    ck_assert_int_eq(queue_ack_result(q, id, a, "text/plain", 10, "answer", 6), QUEUE_OK);
    struct queue_result_info r;
    ck_assert_int_eq(queue_result_get(q, id, &r), QUEUE_OK);
    ck_assert_int_eq(r.ctype_len, 10);
    ck_assert(memcmp(r.ctype, "text/plain", 10) == 0);
    ck_assert_uint_eq(r.attempt, 1);
    ck_assert_uint_eq(r.expires, T0 + 1000);
    expect_result(q, id, QUEUE_OUTCOME_ACKED, "answer");
    struct queue_engine_stats st;
    queue_engine_stats(E, &st);
    /* The job's cost went, the result's came. */
    ck_assert_uint_eq(st.mem_used, before.mem_used - QUEUE_JOB_COST(3) + QUEUE_RESULT_COST(6, 10));
    ck_assert_uint_eq(queue_results_count(q), 1);
    timer_wheel_advance(&W, T0 + 999);
    ck_assert_int_eq(queue_result_get(q, id, &r), QUEUE_OK);
    timer_wheel_advance(&W, T0 + 1000);
    ck_assert_int_eq(queue_result_get(q, id, &r), QUEUE_ERR_NOTFOUND);
    queue_engine_stats(E, &st);
    ck_assert_uint_eq(st.mem_used, 0);
    ck_assert_uint_eq(queue_results_count(q), 0);
}
END_TEST

START_TEST(test_ack_result_errors_leave_the_job) {
    struct queue_engine *e = engine(4096, 0);
    struct queue_settings s;
    queue_settings_default(&s);
    s.max_payload = 3000;
    struct queue *q;
    ck_assert_int_eq(queue_create(e, "m", 1, &s, &q), QUEUE_OK);
    struct queue_put p = {"x", 1, 0, 0, NULL, 0};
    uint64_t id;
    ck_assert_int_eq(queue_put(q, &p, &id, NULL), QUEUE_OK);
    uint32_t a;
    take(q, &a);
    static char big[8000];
    ck_assert_int_eq(queue_ack_result(q, id, a, "", 0, big, 3001), QUEUE_ERR_TOOBIG);
    char ct[QUEUE_CTYPE_MAX + 1];
    memset(ct, 'a', sizeof ct);
    ck_assert_int_eq(queue_ack_result(q, id, a, ct, sizeof ct, "", 0), QUEUE_ERR_INVALID);
    /* 3000 + overhead does not fit beside the job in 4096 - put 3000 more: MEMORY */
    ck_assert_int_eq(queue_ack_result(q, id, a, "", 0, big, 3000), QUEUE_OK);
    ck_assert_int_eq(queue_put(q, &p, &id, NULL), QUEUE_OK);
    take(q, &a);
    ck_assert_int_eq(queue_ack_result(q, id, a, "", 0, big, 3000), QUEUE_ERR_MEMORY);
    struct queue_stats qs;
    queue_stats(q, &qs);
    ck_assert_uint_eq(qs.reserved, 1); /* refused: still reserved, ackable */
    ck_assert_int_eq(queue_ack_result(q, id, a + 1, "", 0, "", 0), QUEUE_ERR_STATE);
    ck_assert_int_eq(queue_ack_result(q, 999, 0, "", 0, "", 0), QUEUE_ERR_NOTFOUND);
    ck_assert_int_eq(queue_ack_result(q, id, a, "", 0, "ok", 2), QUEUE_OK);
    queue_engine_free(e);
}
END_TEST

START_TEST(test_nack_error_and_dead_reasons) {
    struct queue *q = mkq(E, "d", 2, 100000);
    uint64_t a1 = put(q, "a", 0, 0), b1 = put(q, "b", 0, 0);
    int dead = -1;
    take(q, NULL);
    ck_assert_int_eq(queue_nack_error(q, a1, 0, 0, "first", 5, &dead), QUEUE_OK);
    ck_assert_int_eq(dead, 0);
    struct queue_result_info r;
    ck_assert_int_eq(queue_result_get(q, a1, &r), QUEUE_ERR_NOTFOUND); /* it lives on */
    ck_assert_uint_eq(take(q, NULL), a1);
    ck_assert_int_eq(queue_nack_error(q, a1, 0, 0, "boom", 4, &dead), QUEUE_OK);
    ck_assert_int_eq(dead, 1);
    expect_result(q, a1, QUEUE_OUTCOME_DEAD, "boom");
    /* b1 dies by its lease, on its second delivery */
    ck_assert_uint_eq(take(q, NULL), b1);
    timer_wheel_advance(&W, T0 + 30000);
    ck_assert_uint_eq(take(q, NULL), b1);
    timer_wheel_advance(&W, T0 + 60000);
    struct queue_job_info out[4];
    size_t n;
    ck_assert_int_eq(queue_dead_list(q, 0, out, 4, &n), QUEUE_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(out[0].id, a1);
    ck_assert_int_eq(out[0].reason, QUEUE_DEAD_NACKED);
    ck_assert_uint_eq(out[0].error_len, 4);
    ck_assert(memcmp(out[0].error, "boom", 4) == 0);
    ck_assert_uint_eq(out[1].id, b1);
    ck_assert_int_eq(out[1].reason, QUEUE_DEAD_LEASE);
    ck_assert_ptr_null(out[1].error);
    ck_assert_str_eq(queue_dead_reason_name(QUEUE_DEAD_LEASE), "lease_expired");
    /* Requeue forgets the DEAD result; the next ack keeps its own. */
    ck_assert_int_eq(queue_dead_requeue(q, a1, NULL), QUEUE_OK);
    ck_assert_int_eq(queue_result_get(q, a1, &r), QUEUE_ERR_NOTFOUND);
    uint32_t at;
    ck_assert_uint_eq(take(q, &at), a1);
    ck_assert_int_eq(queue_ack_result(q, a1, at, "", 0, "fine", 4), QUEUE_OK);
    expect_result(q, a1, QUEUE_OUTCOME_ACKED, "fine");
}
END_TEST

START_TEST(test_replay_and_snapshot_keep_results) {
    struct queue *q = mkq(E, "j", 1, 100000);
    uint64_t a = put(q, "a", 0, 0), b = put(q, "b", 0, 0), c = put(q, "c", 0, 0);
    uint32_t at;
    take(q, &at);
    ck_assert_int_eq(queue_ack_result(q, a, at, "x/y", 3, "AAA", 3), QUEUE_OK);
    take(q, NULL);
    ck_assert_int_eq(queue_nack_error(q, b, 0, 0, "BBB", 3, NULL), QUEUE_OK);
    take(q, NULL); /* c: its lease runs out on its only attempt */
    timer_wheel_advance(&W, T0 + 30001);
    /* Replayed from the records (each decoded: the codec round trip). */
    struct queue_engine *e2 = engine(0, 0);
    replay_all(e2);
    struct queue *q2 = queue_find(e2, "j", 1);
    ck_assert_ptr_nonnull(q2);
    ck_assert_uint_eq(queue_settings_of(q2)->result_ttl_ms, 100000);
    expect_result(q2, a, QUEUE_OUTCOME_ACKED, "AAA");
    expect_result(q2, b, QUEUE_OUTCOME_DEAD, "BBB");
    struct queue_job_info j;
    ck_assert_int_eq(queue_peek(q2, b, &j), QUEUE_OK);
    ck_assert_int_eq(j.reason, QUEUE_DEAD_NACKED);
    ck_assert_int_eq(queue_peek(q2, c, &j), QUEUE_OK);
    ck_assert_int_eq(j.reason, QUEUE_DEAD_LEASE);
    /* A snapshot of e2 replayed again keeps the same. */
    buf_free(&J);
    queue_engine_snapshot(e2, on_event, NULL);
    struct queue_engine *e3 = engine(0, 0);
    replay_all(e3);
    struct queue *q3 = queue_find(e3, "j", 1);
    expect_result(q3, a, QUEUE_OUTCOME_ACKED, "AAA");
    expect_result(q3, b, QUEUE_OUTCOME_DEAD, "BBB");
    ck_assert_int_eq(queue_peek(q3, c, &j), QUEUE_OK);
    ck_assert_int_eq(j.reason, QUEUE_DEAD_LEASE);
    /* Past their expiry, replay does not bring them back. */
    queue_engine_free(e3);
    timer_wheel_advance(&W, T0 + 200000);
    e3 = engine(0, 0);
    replay_all(e3);
    struct queue_result_info r;
    ck_assert_int_eq(queue_result_get(queue_find(e3, "j", 1), a, &r), QUEUE_ERR_NOTFOUND);
    queue_engine_free(e3);
    queue_engine_free(e2);
}
END_TEST

START_TEST(test_delete_forgets_results) {
    struct queue *q = mkq(E, "del", 0, 10000);
    uint64_t a = put(q, "a", 0, 0);
    uint32_t at;
    take(q, &at);
    ck_assert_int_eq(queue_ack_result(q, a, at, "", 0, "res", 3), QUEUE_OK);
    ck_assert_int_eq(queue_delete(q), QUEUE_OK);
    queue_engine_reap(E, SIZE_MAX);
    struct queue_engine_stats st;
    queue_engine_stats(E, &st);
    ck_assert_uint_eq(st.mem_used, 0);
    q = mkq(E, "del", 0, 10000); /* a new queue of the same name sees nothing */
    struct queue_result_info r;
    ck_assert_int_eq(queue_result_get(q, a, &r), QUEUE_ERR_NOTFOUND);
}
END_TEST

START_TEST(test_old_records_read_with_defaults) {
    /* A CREATE record as written before results: no trailing ttl. */
    struct queue_event ev = {.type = QUEUE_EV_CREATE, .queue = "old", .queue_len = 3};
    queue_settings_default(&ev.settings);
    struct buf b = BUF_INIT;
    ck_assert_int_eq(qj_encode(&b, &ev, &CLK), 0);
    struct journal_record rec;
    ck_assert_int_eq(journal_record_parse(buf_start(&b), b.len, &rec), JOURNAL_PARSE_OK);
    struct queue_event out;
    ck_assert_int_eq(qj_decode(rec.type, rec.payload, rec.len - 8, &CLK, &out), 0);
    ck_assert_uint_eq(out.settings.result_ttl_ms, 300000);
    ck_assert_int_eq(qj_decode(rec.type, rec.payload, rec.len - 3, &CLK, &out), -1);
    ck_assert_int_eq(qj_decode(rec.type, rec.payload, rec.len, &CLK, &out), 0);
    buf_free(&b);
}
END_TEST

START_TEST(test_listing_pages) {
    struct queue *q = mkq(E, "l", 0, 1000);
    int prios[] = {5, 1, 3, 1, 0, 9, 3, -2};
    uint64_t ids[8];
    for (int i = 0; i < 8; i++)
        ids[i] = put(q, "p", prios[i], 0);
    uint64_t d1 = put(q, "d", 0, 5000), d2 = put(q, "d", 0, 2000);
    /* Expected delivery order: (-2,7) (0,4) (1,1) (1,3) (3,2) (3,6) (5,0) (9,5) */
    int order[] = {7, 4, 1, 3, 2, 6, 0, 5};
    struct queue_job_info out[3];
    struct queue_cursor cur, *after = NULL;
    size_t n, seen = 0;
    int more;
    do {
        ck_assert_int_eq(queue_jobs_list(q, QUEUE_JOB_READY, after, out, 3, &n, &more, &cur),
                         QUEUE_OK);
        for (size_t i = 0; i < n; i++)
            ck_assert_uint_eq(out[i].id, ids[order[seen++]]);
        after = &cur;
    } while (more);
    ck_assert_uint_eq(seen, 8);
    ck_assert_int_eq(queue_jobs_list(q, QUEUE_JOB_DELAYED, NULL, out, 3, &n, &more, &cur),
                     QUEUE_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(out[0].id, d2);
    ck_assert_uint_eq(out[1].id, d1);
    ck_assert_int_eq(more, 0);
    take(q, NULL);
    ck_assert_int_eq(queue_jobs_list(q, QUEUE_JOB_RESERVED, NULL, out, 3, &n, &more, &cur),
                     QUEUE_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(out[0].id, ids[7]);
    ck_assert_uint_eq(out[0].attempt, 1);
    ck_assert_int_eq(queue_jobs_list(q, 9, NULL, out, 3, &n, &more, &cur), QUEUE_ERR_INVALID);
    /* In slices of 2 positions, with the engine changing in between: a job reserved
     * meanwhile is left out of the ready page, the rest as a one-piece pass. */
    struct queue_cursor cand[4];
    struct queue_jobs_scan sc;
    queue_jobs_scan_init(&sc, QUEUE_JOB_READY, NULL, cand, 4);
    int steps = 0;
    while (!queue_jobs_scan_step(q, &sc, 2)) {
        if (++steps == 2)
            take(q, NULL); /* ids[4] (0) leaves READY */
    }
    struct queue_job_info four[4];
    queue_jobs_scan_finish(q, &sc, four, &n, &more, &cur);
    ck_assert_int_ge(steps, 3);
    ck_assert_int_eq(more, 1);
    /* ids[4], the first ready, left READY during the pass: if the pass had seen it, the
     * finish drops it (3 jobs), else the four smallest left are listed. */
    static const int want[] = {1, 3, 2, 6};
    ck_assert_uint_ge(n, 3);
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(four[i].id, ids[want[i]]);
    cur.id = 12345;
    ck_assert_int_eq(queue_jobs_list(q, QUEUE_JOB_DEAD, &cur, out, 3, &n, &more, NULL),
                     QUEUE_ERR_NOTFOUND);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("queue_result");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_ack_result_kept_until_ttl);
    tcase_add_test(tc, test_ack_result_errors_leave_the_job);
    tcase_add_test(tc, test_nack_error_and_dead_reasons);
    tcase_add_test(tc, test_replay_and_snapshot_keep_results);
    tcase_add_test(tc, test_delete_forgets_results);
    tcase_add_test(tc, test_old_records_read_with_defaults);
    tcase_add_test(tc, test_listing_pages);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return check_run(suite());
}
