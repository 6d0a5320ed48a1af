/* Unit tests of load_hist: the bucket mapping's error bound, percentiles
 * against a sorted reference, merging, extremes and clamping. */
#include "awaitload/load_hist.h"
#include "check_main.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The documented bound: |reported - true| <= true / 256. */
static int within_bound(uint64_t reported, uint64_t truth) {
    uint64_t diff = reported > truth ? reported - truth : truth - reported;
    return diff * 256 <= truth;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The value a sorted array puts at percentile p (1-based rank ceil(p*n/100)). */
static uint64_t ref_percentile(const uint64_t *sorted, size_t n, double p) {
    size_t rank = (size_t)ceil(p * (double)n / 100.0 - 1e-9);
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

/* A small deterministic generator, so failures reproduce. */
static uint64_t rng_state = 88172645463325252ull;
static double rng_unit(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

START_TEST(test_mapping_bound) {
    /* Every value up to 2^20 exhaustively, then a sparse sweep to the top. */
    unsigned last = 0;
    for (uint64_t v = 0; v < (1u << 20); v++) {
        unsigned i = load_hist_index(v);
        ck_assert_uint_lt(i, LOAD_HIST_BUCKETS);
        ck_assert_uint_ge(i, last); /* monotone */
        last = i;
        ck_assert_msg(within_bound(load_hist_bucket_value(i), v), "v=%llu", (unsigned long long)v);
        ck_assert_uint_eq(load_hist_index(load_hist_bucket_value(i)), i);
    }
    for (uint64_t v = 1u << 20; v <= LOAD_HIST_MAX_VALUE; v += v / 997 + 1) {
        unsigned i = load_hist_index(v);
        ck_assert_uint_lt(i, LOAD_HIST_BUCKETS);
        ck_assert(within_bound(load_hist_bucket_value(i), v));
    }
    ck_assert_uint_eq(load_hist_index(LOAD_HIST_MAX_VALUE), LOAD_HIST_BUCKETS - 1);
    ck_assert_uint_eq(load_hist_index(UINT64_MAX), LOAD_HIST_BUCKETS - 1);
    for (uint64_t v = 0; v < 256; v++)
        ck_assert_uint_eq(load_hist_bucket_value(load_hist_index(v)), v); /* exact */
}
END_TEST

/* Record n values drawn by gen, then compare percentiles with a sort. */
static void check_against_sort(uint64_t (*gen)(void), size_t n) {
    uint64_t *v = malloc(n * sizeof *v);
    struct load_hist *h = malloc(sizeof *h);
    ck_assert(v && h);
    load_hist_init(h);
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        v[i] = gen();
        sum += v[i];
        load_hist_record(h, v[i]);
    }
    qsort(v, n, sizeof *v, cmp_u64);
    static const double ps[] = {0.1, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        uint64_t want = ref_percentile(v, n, ps[i]), got = load_hist_percentile(h, ps[i]);
        ck_assert_msg(within_bound(got, want), "p%g: got %llu, sorted reference %llu", ps[i],
                      (unsigned long long)got, (unsigned long long)want);
    }
    ck_assert_uint_eq(h->max, v[n - 1]);
    ck_assert_uint_eq(h->min, v[0]);
    ck_assert_uint_eq(h->total, n);
    ck_assert(fabs(load_hist_mean(h) - (double)sum / (double)n) <
              1e-6 * (double)sum / (double)n + 1e-9);
    free(v);
    free(h);
}

static uint64_t gen_uniform(void) {
    return (uint64_t)(rng_unit() * 2000000.0);
}

static uint64_t gen_lognormal(void) {
    /* Box-Muller; median ~ 1 ms with a long tail, like real latencies. */
    double u1 = rng_unit(), u2 = rng_unit();
    double z = sqrt(-2.0 * log(u1 + 1e-300)) * cos(2 * M_PI * u2);
    return (uint64_t)exp(log(1000.0) + 1.5 * z);
}

static uint64_t gen_stall(void) {
    /* Mostly ~200 us, with 3% stuck behind a one-second stall. */
    return rng_unit() < 0.03 ? 1000000 + (uint64_t)(rng_unit() * 1000)
                             : 150 + (uint64_t)(rng_unit() * 100);
}

START_TEST(test_percentiles_uniform) {
    check_against_sort(gen_uniform, 200000);
}
END_TEST

START_TEST(test_percentiles_lognormal) {
    check_against_sort(gen_lognormal, 200000);
}
END_TEST

START_TEST(test_percentiles_stall) {
    check_against_sort(gen_stall, 100000);
}
END_TEST

START_TEST(test_small_counts) {
    struct load_hist h;
    load_hist_init(&h);
    ck_assert_uint_eq(load_hist_percentile(&h, 50), 0); /* empty */
    ck_assert(load_hist_mean(&h) == 0.0);
    load_hist_record(&h, 12345);
    ck_assert_uint_eq(load_hist_percentile(&h, 0.001), 12345); /* clamped to the exact min/max */
    ck_assert_uint_eq(load_hist_percentile(&h, 100), 12345);
    load_hist_record(&h, 10);
    ck_assert_uint_eq(load_hist_percentile(&h, 50), 10);
    ck_assert(within_bound(load_hist_percentile(&h, 51), 12345)); /* a bucket midpoint */
}
END_TEST

START_TEST(test_merge) {
    struct load_hist *a = malloc(sizeof *a), *b = malloc(sizeof *b), *all = malloc(sizeof *all);
    load_hist_init(a);
    load_hist_init(b);
    load_hist_init(all);
    for (int i = 0; i < 50000; i++) {
        uint64_t v = gen_lognormal();
        load_hist_record(i % 3 ? a : b, v);
        load_hist_record(all, v);
    }
    load_hist_merge(a, b);
    ck_assert(memcmp(a->counts, all->counts, sizeof a->counts) == 0);
    ck_assert_uint_eq(a->total, all->total);
    ck_assert_uint_eq(a->sum, all->sum);
    ck_assert_uint_eq(a->min, all->min);
    ck_assert_uint_eq(a->max, all->max);
    ck_assert_uint_eq(load_hist_percentile(a, 99.9), load_hist_percentile(all, 99.9));
    free(a);
    free(b);
    free(all);
}
END_TEST

START_TEST(test_clamp) {
    struct load_hist h;
    load_hist_init(&h);
    load_hist_record(&h, 5);
    load_hist_record(&h, 500000000); /* 500 s: past the 134 s range */
    ck_assert_uint_eq(h.clamped, 1);
    ck_assert_uint_eq(h.max, 500000000);
    ck_assert_uint_eq(load_hist_percentile(&h, 100), 500000000);
    /* p99 lands in the top bucket: reported as at least the range's end. */
    ck_assert_uint_ge(load_hist_percentile(&h, 99),
                      LOAD_HIST_MAX_VALUE - LOAD_HIST_MAX_VALUE / 256);
}
END_TEST

int main(void) {
    Suite *s = suite_create("load_hist");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_mapping_bound);
    tcase_add_test(tc, test_percentiles_uniform);
    tcase_add_test(tc, test_percentiles_lognormal);
    tcase_add_test(tc, test_percentiles_stall);
    tcase_add_test(tc, test_small_counts);
    tcase_add_test(tc, test_merge);
    tcase_add_test(tc, test_clamp);
    suite_add_tcase(s, tc);
    return check_run(s);
}
