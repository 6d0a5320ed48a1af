/*
 * result_waits: the table both queue backends hold their result waits in
 * (GET /queues/{q}/jobs/{id}/result?wait=S), by job id. Waits are few (one
 * per awaiting client), so it is a fixed array of list heads, allocated at
 * the first wait; a wait links itself into its job's bucket and a job's
 * end looks only there (a deleted queue walks them all).
 */
#ifndef AWAITD_RESULT_WAITS_H
#define AWAITD_RESULT_WAITS_H

#include "core/list.h"

#include <stdint.h>
#include <stdlib.h>

#define RESULT_WAITS_BUCKETS 1024

/* A table of RESULT_WAITS_BUCKETS empty buckets (free() it), or NULL when out of memory. */
static inline struct list *result_waits_new(void) {
    struct list *t = malloc(RESULT_WAITS_BUCKETS * sizeof *t);
    for (size_t i = 0; t && i < RESULT_WAITS_BUCKETS; i++)
        list_init(&t[i]);
    return t;
}

/* The bucket of job id: the top bits of a Fibonacci hash, so ids in a row spread. */
static inline struct list *result_waits_bucket(struct list *t, uint64_t id) {
    return &t[(id * UINT64_C(0x9E3779B97F4A7C15)) >> 54];
}

_Static_assert(RESULT_WAITS_BUCKETS == 1 << 10, "result_waits_bucket() takes the top 10 bits");

#endif
