/* Unit tests of svc/result_waits.h, the table of result waits both queue
 * backends keep by job id: a new table's buckets are empty, every id maps
 * inside it and always to the same bucket, and ids in a row (as a queue
 * hands them out) spread over the buckets instead of piling into a few. */
#include "svc/result_waits.h"

#include "check_main.h"

#include <stdint.h>
#include <stdlib.h>

START_TEST(test_new_table_is_empty) {
    struct list *t = result_waits_new();
    ck_assert_ptr_nonnull(t);
    for (size_t i = 0; i < RESULT_WAITS_BUCKETS; i++)
        EXPECT(list_empty(&t[i]));
    free(t);
}
END_TEST

START_TEST(test_buckets_in_range_and_stable) {
    struct list *t = result_waits_new();
    ck_assert_ptr_nonnull(t);
    static const uint64_t ids[] = {0, 1, 2, 1023, 1024, UINT32_MAX, UINT64_MAX / 3, UINT64_MAX};
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        struct list *b = result_waits_bucket(t, ids[k]);
        EXPECT(b >= t && b < t + RESULT_WAITS_BUCKETS);
        EXPECT(b == result_waits_bucket(t, ids[k]));
    }
    free(t);
}
END_TEST

START_TEST(test_ids_in_a_row_spread) {
    struct list *t = result_waits_new();
    ck_assert_ptr_nonnull(t);
    static unsigned count[RESULT_WAITS_BUCKETS];
    unsigned most = 0, used = 0;
    for (uint64_t id = 1; id <= 4 * RESULT_WAITS_BUCKETS; id++) {
        size_t b = (size_t)(result_waits_bucket(t, id) - t);
        used += count[b] == 0;
        if (++count[b] > most)
            most = count[b];
    }
    /* 4096 ids over 1024 buckets: a Fibonacci hash fills nearly all of them, 4 or 5 each */
    EXPECT(used >= RESULT_WAITS_BUCKETS * 9 / 10);
    EXPECT(most <= 8);
    free(t);
}
END_TEST

int main(void) {
    Suite *s = suite_create("result_waits");
    TCase *tc = tcase_create("result_waits");
    tcase_add_test(tc, test_new_table_is_empty);
    tcase_add_test(tc, test_buckets_in_range_and_stable);
    tcase_add_test(tc, test_ids_in_a_row_spread);
    suite_add_tcase(s, tc);
    return check_run(s);
}
