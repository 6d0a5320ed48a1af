/*
 * load_hist: a log-linear latency histogram in microseconds, after
 * HdrHistogram. Pure: no I/O, no allocation, fixed memory (about 21 KiB).
 *
 * Layout: values 0..255 us each have their own bucket (exact). Above that,
 * every power of two [2^m, 2^(m+1)) is split into 128 equal buckets of width
 * 2^(m-7). A bucket is reported as its midpoint, so a reported value differs
 * from the true one by at most 2^(m-8) <= v/256: the relative error is at
 * most 1/256 (0.39%) for every value, and zero below 256 us.
 *
 * Range: 0 to 2^27 - 1 us (134 s). Larger values are counted in the top
 * bucket (so percentiles stay honest about "at least this"), and the exact
 * max, min and mean are kept beside the buckets. Histograms merge by adding
 * buckets, so each thread keeps its own and the totals are exact.
 */
#ifndef AWAITD_LOAD_HIST_H
#define AWAITD_LOAD_HIST_H

#include <stdint.h>

#define LOAD_HIST_SUB_BITS 7  /* 128 linear buckets per power of two */
#define LOAD_HIST_MAX_BITS 27 /* values below 2^27 us are kept distinct */
#define LOAD_HIST_BUCKETS                                                                          \
    ((2u << LOAD_HIST_SUB_BITS) +                                                                  \
     (LOAD_HIST_MAX_BITS - LOAD_HIST_SUB_BITS - 1) * (1u << LOAD_HIST_SUB_BITS))
#define LOAD_HIST_MAX_VALUE ((UINT64_C(1) << LOAD_HIST_MAX_BITS) - 1)

struct load_hist {
    uint64_t counts[LOAD_HIST_BUCKETS];
    uint64_t total;   /* values recorded */
    uint64_t sum;     /* of the exact values, for the mean */
    uint64_t min;     /* exact; UINT64_MAX when empty */
    uint64_t max;     /* exact */
    uint64_t clamped; /* values above LOAD_HIST_MAX_VALUE */
};

void load_hist_init(struct load_hist *h);
void load_hist_record(struct load_hist *h, uint64_t us);
/* dst += src. */
void load_hist_merge(struct load_hist *dst, const struct load_hist *src);

/*
 * The value at percentile p (0 < p <= 100): the smallest recorded value v
 * such that at least p% of the values are <= v, within the error above and
 * clamped to [min, max]. 0 for an empty histogram.
 */
uint64_t load_hist_percentile(const struct load_hist *h, double p);
double load_hist_mean(const struct load_hist *h);

/* Bucket mapping, exposed for the unit tests. */
unsigned load_hist_index(uint64_t us);
uint64_t load_hist_bucket_value(unsigned index);

#endif
