#include "load_hist.h"

#include <math.h>
#include <string.h>

#define SUB_COUNT (1u << LOAD_HIST_SUB_BITS) /* 128 */
#define EXACT_LIMIT (2u * SUB_COUNT)         /* 256: below this each value has a bucket */

void load_hist_init(struct load_hist *h) {
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

unsigned load_hist_index(uint64_t us) {
    if (us > LOAD_HIST_MAX_VALUE)
        us = LOAD_HIST_MAX_VALUE;
    if (us < EXACT_LIMIT)
        return (unsigned)us;
    unsigned m = 63u - (unsigned)__builtin_clzll(us); /* 2^m <= us < 2^(m+1), m >= 8 */
    unsigned shift = m - LOAD_HIST_SUB_BITS;
    unsigned sub = (unsigned)(us >> shift) - SUB_COUNT; /* 0..127 */
    return EXACT_LIMIT + (m - LOAD_HIST_SUB_BITS - 1) * SUB_COUNT + sub;
}

uint64_t load_hist_bucket_value(unsigned index) {
    if (index < EXACT_LIMIT)
        return index;
    unsigned k = index - EXACT_LIMIT;
    unsigned m = LOAD_HIST_SUB_BITS + 1 + k / SUB_COUNT;
    unsigned shift = m - LOAD_HIST_SUB_BITS;
    uint64_t lower = (uint64_t)(SUB_COUNT + k % SUB_COUNT) << shift;
    /* The midpoint halves the worst-case error against either edge. */
    return lower + (UINT64_C(1) << (shift - 1));
}

void load_hist_record(struct load_hist *h, uint64_t us) {
    h->counts[load_hist_index(us)]++;
    h->total++;
    h->sum += us;
    if (us < h->min)
        h->min = us;
    if (us > h->max)
        h->max = us;
    if (us > LOAD_HIST_MAX_VALUE)
        h->clamped++;
}

void load_hist_merge(struct load_hist *dst, const struct load_hist *src) {
    for (unsigned i = 0; i < LOAD_HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    dst->sum += src->sum;
    dst->clamped += src->clamped;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t load_hist_percentile(const struct load_hist *h, double p) {
    if (h->total == 0)
        return 0;
    if (p >= 100.0)
        return h->max;
    /* Rank of the wanted value, 1-based, as a sorted array would have it;
     * the epsilon keeps 99.9 * 1000 / 100 from rounding up past 999. */
    uint64_t rank = (uint64_t)ceil(p * (double)h->total / 100.0 - 1e-9);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < LOAD_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = load_hist_bucket_value(i);
            /* The exact extremes are better answers than a bucket midpoint. */
            if (v < h->min)
                v = h->min;
            if (v > h->max)
                v = h->max;
            return v;
        }
    }
    return h->max;
}

double load_hist_mean(const struct load_hist *h) {
    return h->total ? (double)h->sum / (double)h->total : 0.0;
}
