/*
 * mem_budget: one memory limit shared by several owners (issue 12, finding
 * 2). The queue engine and the timer engine both charge what they keep
 * (jobs, keys, timers: payload plus bookkeeping, as each engine documents)
 * to the same budget, so `[queues] mem_limit` bounds them together and a
 * timer cannot hold memory the queues were refused. Pure, no allocation:
 * the owner of the budget (the local queue backend) embeds it, each engine
 * keeps a pointer and its own share for its statistics.
 */
#ifndef AWAITD_MEM_BUDGET_H
#define AWAITD_MEM_BUDGET_H

#include <stddef.h>

struct mem_budget {
    size_t used;  /* bytes charged by every owner */
    size_t limit; /* 0 = none */
};

/* Would charging n more bytes stay within the limit? */
static inline int mem_budget_fits(const struct mem_budget *b, size_t n) {
    return !b->limit || (n <= b->limit && b->used <= b->limit - n);
}

/* Charge without checking (replay: what was accepted once is kept). */
static inline void mem_budget_charge(struct mem_budget *b, size_t n) {
    b->used += n;
}

static inline void mem_budget_release(struct mem_budget *b, size_t n) {
    b->used = n <= b->used ? b->used - n : 0;
}

#endif
