/* Unit tests of api_kept (src/api/api_kept.h), the parts that need no
 * connection: keep() moving a request state to the heap (the whole state,
 * the queue name into its own copy) and a call answered at once (rendered
 * once, owned memory freed, nothing allocated). The kept paths (done,
 * cancel) answer on a connection: tests/e2e/test_results.py,
 * test_queue_acks.py and test_redis_results.py drive them. */
#include "api/api_kept.h"

#include "check_main.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct treq {
    struct api_kept k;
    uint64_t tail[3]; /* the handler's own fields, after the api_kept */
};

static int renders, render_st;
static uint64_t render_tail;

static void trender(const struct api_kept *k, int st) {
    const struct treq *r = (const struct treq *)k;
    renders++;
    render_st = st;
    render_tail = r->tail[2];
    if (k->owned) /* still there while the answer is written */
        render_tail += *(const uint64_t *)k->owned;
}

START_TEST(test_keep_copies_all) {
    char name[] = "jobs.high";
    struct treq r;
    memset(&r, 0, sizeof r);
    api_kept_init(&r.k, sizeof r, NULL, trender, name, strlen(name));
    r.tail[0] = 11;
    r.tail[2] = 33;
    r.k.call.res.id = 42;
    ck_assert_ptr_null(r.k.kept);
    struct qsvc_call *call = r.k.call.keep(&r.k.call);
    ck_assert_ptr_nonnull(call);
    struct treq *k = (struct treq *)call;
    ck_assert_ptr_eq(r.k.kept, k); /* the stack state says where it went */
    ck_assert_ptr_ne(k, &r);
    ck_assert_int_eq(k->tail[0], 11);
    ck_assert_int_eq(k->tail[2], 33);
    ck_assert_int_eq(k->k.call.res.id, 42);
    ck_assert(k->k.call.done == r.k.call.done);
    ck_assert(k->k.render == trender);
    ck_assert_int_eq(k->k.size, sizeof r);
    /* the name is the copy's own: the path it came from goes with the request */
    ck_assert_ptr_eq(k->k.qname, k->k.qcopy);
    ck_assert_int_eq(k->k.qlen, strlen(name));
    memset(name, 'x', sizeof name - 1);
    ck_assert_int_eq(memcmp(k->k.qname, "jobs.high", 9), 0);
    ck_assert_ptr_eq(r.k.qname, name); /* the stack state keeps pointing at the path */
    free(k);
}
END_TEST

START_TEST(test_keep_no_name) { /* GET /queues: no queue name */
    struct treq r;
    memset(&r, 0, sizeof r);
    api_kept_init(&r.k, sizeof r, NULL, trender, NULL, 0);
    struct treq *k = (struct treq *)r.k.call.keep(&r.k.call);
    ck_assert_ptr_nonnull(k);
    ck_assert_int_eq(k->k.qlen, 0);
    ck_assert_ptr_eq(k->k.qname, k->k.qcopy);
    free(k);
}
END_TEST

START_TEST(test_finish_now) { /* answered at once: rendered once, owned freed (ASan, valgrind) */
    struct treq r;
    memset(&r, 0, sizeof r);
    api_kept_init(&r.k, sizeof r, NULL, trender, "q", 1);
    r.tail[2] = 5;
    uint64_t *owned = malloc(sizeof *owned);
    ck_assert_ptr_nonnull(owned);
    *owned = 100;
    r.k.owned = owned;
    renders = 0;
    ck_assert_int_eq(api_kept_finish(&r.k, QSVC_ERR_NOTFOUND), HANDLER_DONE);
    ck_assert_int_eq(renders, 1);
    ck_assert_int_eq(render_st, QSVC_ERR_NOTFOUND);
    ck_assert_int_eq(render_tail, 105);
    ck_assert_ptr_null(r.k.kept);
    renders = 0;
    r.k.owned = NULL;
    ck_assert_int_eq(api_kept_finish(&r.k, QSVC_OK), HANDLER_DONE);
    ck_assert_int_eq(renders, 1);
    ck_assert_int_eq(render_st, QSVC_OK);
}
END_TEST

int main(void) {
    Suite *s = suite_create("api_kept");
    TCase *tc = tcase_create("api_kept");
    tcase_add_test(tc, test_keep_copies_all);
    tcase_add_test(tc, test_keep_no_name);
    tcase_add_test(tc, test_finish_now);
    suite_add_tcase(s, tc);
    return check_run(s);
}
