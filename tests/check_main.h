/*
 * What every tests/check_*.c shares: assertions for loops of many checks,
 * and the runner main() calls.
 */
#ifndef AWAITD_CHECK_MAIN_H
#define AWAITD_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

/*
 * Check logs every passing ck_assert (a write per call), which dominates
 * loops of many checks; these reach Check only when they fail. EXPECT_EQ
 * compares as long long: equal exactly when the values are equal modulo
 * 2^64, as an unsigned comparison would be.
 */
#define EXPECT(c)                                                                                  \
    do {                                                                                           \
        if (!(c))                                                                                  \
            ck_abort_msg("%s:%d: failed: %s", __FILE__, __LINE__, #c);                             \
    } while (0)
#define EXPECT_EQ(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_)                                                                              \
            ck_abort_msg("%s:%d: failed: %s == %s (%lld != %lld)", __FILE__, __LINE__, #a, #b, a_, \
                         b_);                                                                      \
    } while (0)

/* Runs the suite's tests; the exit status says whether one failed. */
static inline int check_run(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
