/*
 * Hierarchical timing wheel; timer.h is the contract.
 *
 * Terms. At level L a slot spans 2^(6L) ms and a lap 64 slots, 2^(6L+6)
 * ms. Slot s of level L is the absolute number t >> 6L of the times in it;
 * it lives in slots[L][s & 127], so the 128 list heads hold two laps: the
 * lap now is in and the next one. "Position" counts slots from the start
 * of now's lap (0..127); now's own slot is position p0 = (now >> 6L) & 63,
 * and "+k" means position p0 + k.
 *
 * Placement. A timer with expiry e >= now goes to its natural level: the
 * lowest L whose two laps hold e, i.e. (e >> 6(L+1)) - (now >> 6(L+1)) <= 1;
 * beyond level 5's two laps it is parked. At level 0 that is e's exact
 * millisecond. At a level L >= 1 the natural slot is always +2 or later
 * (were e within +1, its lap at level L-1 would be now's or the next).
 * Choosing the level is a few shifts and compares.
 *
 * Moving down (draining). A level-L slot (L >= 1) spans exactly one lap of
 * level L-1. While it is +1, all of its timers belong to level L-1's next
 * lap (or lower): they are moved there while now crosses the slot before
 * theirs, at most TIMER_DRAIN_BUDGET per advance(), highest level first.
 * timer_wheel_next() answers now while such work is pending, so an event
 * loop gives it a slice per turn. If time reaches the slot's start (its
 * deadline) before it is empty, advance() moves the rest at once: the old
 * cascade, now only a fallback when more than a budget per loop turn
 * arrives. So 100,000 timers due in the same 4-second block are moved in
 * slices, not in one 5-10 ms stall. Bit L of w->pend says level L's +1
 * slot may be non-empty. Upper positions change only when now enters a
 * new 64 ms block, and a non-empty slot becoming +1 is an event there, so
 * w->pend is recomputed at such events (settle()); otherwise a +1 slot can
 * only gain timers by the rule below, which needs it non-empty already: a
 * clear bit is exact and a set one at worst stale.
 *
 * Ties. Timers with equal expiries fire in insertion order. A timer that
 * joins a list is behind everything in it, so order only breaks if a later
 * timer could be placed below an earlier one still waiting above. Hence:
 * when some slot above the natural one that could hold e (at each level M,
 * slot e >> 6M) is non-empty, the timer joins the highest such slot, and
 * drains take timers from the front. Such a slot is +1 (pending drain) or,
 * only inside a forced drain, +0 (+1 a moment before); w->pend says which
 * levels to look at.
 *
 * Parked timers. Once per top-level lap (2^36 ms) the parked list is
 * placed again; those still too far stay parked, in order.
 *
 * Due timers. An expiry <= now when added cannot go into a slot; it is
 * appended to the due list and treated as expiring at now (among due
 * timers, insertion order). advance() runs the due list once at its start
 * and once after each millisecond it fires, so a timer made due by a
 * callback fires right after that millisecond's timers. Timers made due
 * while the due list itself is running go to the deferred list instead,
 * which only the next advance() call runs. So a timer that keeps re-adding
 * itself at <= now fires at most twice per advance() (once at its expiry,
 * once from the due list), and every advance() call terminates.
 *
 * advance() is not reentrant: callbacks must not call it.
 */
#include "core/timer.h"

#define LEVEL_BITS 6
#define LAP_SLOTS (2 * TIMER_SLOTS)
#define TOP_LAP_BITS (TIMER_LEVELS * LEVEL_BITS) /* 36: the top level's lap */

_Static_assert(sizeof(struct timer) == 32, "struct timer must stay 32 bytes");
_Static_assert(TIMER_SLOTS == 1 << LEVEL_BITS, "one 64-bit bitmap per lap");

static void list_init(struct timer *h) {
    h->next = h->prev = h;
}

static int list_empty(const struct timer *h) {
    return h->next == h;
}

static void list_append(struct timer *h, struct timer *t) {
    t->prev = h->prev;
    t->next = h;
    h->prev->next = t;
    h->prev = t;
}

/* Move every node of src to the tail of dst, keeping their order. */
static void list_splice(struct timer *dst, struct timer *src) {
    if (list_empty(src))
        return;
    src->next->prev = dst->prev;
    dst->prev->next = src->next;
    src->prev->next = dst;
    dst->prev = src->prev;
    list_init(src);
}

static int occupied(const struct timer_wheel *w, unsigned level, unsigned slot) {
    return (int)(w->occupied[level][slot >> 6] >> (slot & 63) & 1);
}

static void unlink_timer(struct timer_wheel *w, struct timer *t) {
    struct timer *n = t->next, *p = t->prev;
    n->prev = p;
    p->next = n;
    t->next = t->prev = NULL;
    /*
     * n == p only when the list is now empty and n is its head. The head's
     * address tells us which slot it was (if any: the due, deferred and
     * parked lists and local batches are not slots), so no expiry
     * arithmetic is needed.
     */
    if (n == p) {
        uintptr_t off = (uintptr_t)n - (uintptr_t)w->slots;
        if (off < sizeof w->slots) {
            size_t i = off / sizeof(struct timer); /* a shift: 32 bytes */
            size_t slot = i % LAP_SLOTS;
            w->occupied[i / LAP_SLOTS][slot >> 6] &= ~(UINT64_C(1) << (slot & 63));
        }
    }
}

/*
 * The lowest level whose two laps hold e (e >= now); TIMER_LEVELS: park.
 * Start at the highest 6-bit digit in which e and now differ (its level's
 * lap holds e) and step down while the lap below still does: usually once
 * or not at all (more only when now's lower digits are all 63).
 */
static unsigned natural_level(uint64_t e, uint64_t now) {
    /* "| 1" keeps clz defined; bit * 43 >> 8 == bit / 6 for bit < 64. */
    unsigned l = (63u - (unsigned)__builtin_clzll((e ^ now) | 1)) * 43u >> 8;
    if (l >= TIMER_LEVELS) {
        if ((e >> TOP_LAP_BITS) - (now >> TOP_LAP_BITS) > 1)
            return TIMER_LEVELS;
        l = TIMER_LEVELS - 1;
    }
    while (l > 0 && (e >> (l * LEVEL_BITS)) - (now >> (l * LEVEL_BITS)) <= 1)
        l--;
    return l;
}

/*
 * Put t (expire >= now) where it belongs for the current now. Levels at or
 * above limit are not considered (a drain passes the level it takes from).
 */
static void place(struct timer_wheel *w, struct timer *t, unsigned limit) {
    uint64_t e = t->expire;
    unsigned l = natural_level(e, w->now);
    if (l == TIMER_LEVELS) {
        list_append(&w->parked, t);
        return;
    }
    unsigned above = w->pend & ~((2u << l) - 1) & ((1u << limit) - 1);
    while (above) { /* highest first: join the earliest-inserted company */
        unsigned m = 31u - (unsigned)__builtin_clz(above);
        if (occupied(w, m, (unsigned)(e >> (m * LEVEL_BITS)) % LAP_SLOTS)) {
            l = m;
            break;
        }
        above &= ~(1u << m);
    }
    unsigned slot = (unsigned)(e >> (l * LEVEL_BITS)) % LAP_SLOTS;
    w->occupied[l][slot >> 6] |= UINT64_C(1) << (slot & 63);
    list_append(&w->slots[l][slot], t);
}

/* Slot number (0..127) of position now + k at level l. */
static unsigned slot_ahead(const struct timer_wheel *w, unsigned l, unsigned k) {
    return (unsigned)((w->now >> (l * LEVEL_BITS)) + k) % LAP_SLOTS;
}

/* Move up to budget timers of slot (l, slot) down; returns the budget left. */
static size_t drain(struct timer_wheel *w, unsigned l, unsigned slot, size_t budget) {
    struct timer *head = &w->slots[l][slot];
    while (budget && !list_empty(head)) {
        struct timer *t = head->next;
        unlink_timer(w, t);
        place(w, t, l);
        budget--;
    }
    return budget;
}

static void pend_update(struct timer_wheel *w) {
    unsigned p = 0;
    for (unsigned l = 1; l < TIMER_LEVELS; l++)
        if (occupied(w, l, slot_ahead(w, l, 1)))
            p |= 1u << l;
    w->pend = p;
}

/* The first occupied position >= from (0..128) in lap words lo, hi; -1 if none. */
static int first_from(uint64_t lo, uint64_t hi, unsigned from) {
    if (from < 64) {
        uint64_t m = lo & (~UINT64_C(0) << from);
        if (m)
            return __builtin_ctzll(m);
        from = 64;
    }
    if (from < LAP_SLOTS) {
        uint64_t m = hi & (~UINT64_C(0) << (from - 64));
        if (m)
            return 64 + __builtin_ctzll(m);
    }
    return -1;
}

/*
 * The first time after now at which the structure needs advance(): a
 * level-0 expiry; for a higher level, the deadline of its +1 slot (its
 * start) or the start of the slot before its next occupied one (when that
 * one becomes +1); the next top-level lap for parked timers. UINT64_MAX
 * if none. Assumes the +0 slots above level 0 are empty (settle()).
 */
static uint64_t next_event(const struct timer_wheel *w) {
    uint64_t best = UINT64_MAX;
    for (unsigned l = 0; l < TIMER_LEVELS; l++) {
        unsigned shift = l * LEVEL_BITS;
        uint64_t cur = w->now >> shift; /* now's slot number */
        /* Events of level l and above come at or after now's next slot at
         * level l begins. */
        if (best <= (cur + 1) << shift)
            return best;
        unsigned p0 = (unsigned)cur & (TIMER_SLOTS - 1);
        unsigned lap = (unsigned)(cur >> LEVEL_BITS) & 1;
        int pos = first_from(w->occupied[l][lap], w->occupied[l][lap ^ 1], p0 + 1);
        if (pos < 0)
            continue;
        unsigned p = (unsigned)pos;
        if (l > 0 && p > p0 + 1)
            p--; /* it starts moving down when the slot before it begins */
        uint64_t at = (cur - p0 + p) << shift;
        if (at < best)
            best = at;
    }
    if (!list_empty(&w->parked)) {
        uint64_t at = ((w->now >> TOP_LAP_BITS) + 1) << TOP_LAP_BITS;
        if (at < best)
            best = at;
    }
    return best;
}

/*
 * now has just moved to an event: move down, in full, every upper slot
 * whose deadline this is (now's own slot, highest level first, so a timer
 * moved into a lower +0 slot is moved again when its level's turn comes),
 * place the parked timers at a new top-level lap, and refresh w->pend.
 */
static void settle(struct timer_wheel *w) {
    /* w->pend still describes the slots as they were before now moved:
     * every +0 slot that may be non-empty now was +1 then, so place() looks
     * at it (lower ones are moved after, so their timers keep their turn). */
    for (unsigned l = TIMER_LEVELS - 1; l > 0; l--) {
        unsigned slot = slot_ahead(w, l, 0);
        if (occupied(w, l, slot))
            drain(w, l, slot, SIZE_MAX);
    }
    if (!list_empty(&w->parked) && !(w->now & ((UINT64_C(1) << TOP_LAP_BITS) - 1))) {
        struct timer batch;
        list_init(&batch);
        list_splice(&batch, &w->parked);
        while (!list_empty(&batch)) {
            struct timer *t = batch.next;
            unlink_timer(w, t);
            place(w, t, TIMER_LEVELS);
        }
    }
    pend_update(w);
}

/* Fire batch front to back. Callbacks may cancel or move timers still in it. */
static size_t fire(struct timer_wheel *w, struct timer *batch) {
    size_t n = 0;
    while (!list_empty(batch)) {
        struct timer *t = batch->next;
        unlink_timer(w, t);
        w->count--;
        t->cb(t);
        n++;
    }
    return n;
}

static size_t run_due(struct timer_wheel *w) {
    struct timer batch;
    list_init(&batch);
    list_splice(&batch, &w->due);
    w->in_due_round = 1; /* due adds from here on wait for the next call */
    size_t n = fire(w, &batch);
    w->in_due_round = 0;
    return n;
}

void timer_wheel_init(struct timer_wheel *w, uint64_t now_ms) {
    w->now = now_ms;
    w->count = 0;
    w->pend = 0;
    w->in_due_round = 0;
    w->drain_budget = TIMER_DRAIN_BUDGET;
    w->sync_min = 0;
    list_init(&w->due);
    list_init(&w->deferred);
    list_init(&w->parked);
    for (unsigned l = 0; l < TIMER_LEVELS; l++) {
        w->occupied[l][0] = w->occupied[l][1] = 0;
        for (unsigned s = 0; s < LAP_SLOTS; s++)
            list_init(&w->slots[l][s]);
    }
}

void timer_init(struct timer *t, timer_cb cb) {
    t->next = t->prev = NULL;
    t->expire = 0;
    t->cb = cb;
}

void timer_add(struct timer_wheel *w, struct timer *t, uint64_t expire_ms) {
    if (timer_pending(t))
        unlink_timer(w, t);
    else
        w->count++;
    t->expire = expire_ms;
    if (expire_ms < w->sync_min)
        w->sync_min = expire_ms;
    if (expire_ms > w->now)
        place(w, t, TIMER_LEVELS);
    else
        list_append(w->in_due_round ? &w->deferred : &w->due, t);
}

void timer_cancel(struct timer_wheel *w, struct timer *t) {
    if (!timer_pending(t))
        return;
    unlink_timer(w, t);
    w->count--;
}

uint64_t timer_wheel_next(const struct timer_wheel *w) {
    if (!list_empty(&w->due) || !list_empty(&w->deferred) || w->pend)
        return w->now;
    return next_event(w);
}

size_t timer_wheel_advance(struct timer_wheel *w, uint64_t now_ms) {
    /* Within the millisecond already advanced to, with nothing due and
     * nothing to move down: no slot can hold a timer at or before now_ms
     * (those went to the due list when added), so there is nothing to do.
     * The queue engine catches up on every request (many per ms). */
    if (now_ms <= w->now && !w->pend && list_empty(&w->due) && list_empty(&w->deferred))
        return 0;
    /* Deferred timers were made due during the previous call, so they are
     * older than anything added to due since: run them first. */
    list_splice(&w->deferred, &w->due);
    list_splice(&w->due, &w->deferred);
    size_t n = run_due(w);
    int moved = n != 0;

    uint64_t at;
    while ((at = next_event(w)) <= now_ms && at != UINT64_MAX) {
        moved = 1;
        /* Callbacks below see w->now == the millisecond being fired. */
        w->now = at;
        if (!(at & (TIMER_SLOTS - 1)))
            settle(w); /* upper slots change places only at a new 64 ms block */
        unsigned slot = slot_ahead(w, 0, 0);
        if (occupied(w, 0, slot)) {
            struct timer batch;
            list_init(&batch);
            list_splice(&batch, &w->slots[0][slot]);
            w->occupied[0][slot >> 6] &= ~(UINT64_C(1) << (slot & 63));
            n += fire(w, &batch);
        }
        n += run_due(w);
    }
    /* No event lies in (w->now, now_ms]: no upper slot changes between +0,
     * +1 and later, so every timer and w->pend stay right for now_ms. */
    if (now_ms > w->now)
        w->now = now_ms;

    /* A slice of the moving down, highest level first. */
    size_t budget = w->drain_budget ? w->drain_budget : 1;
    for (unsigned l = TIMER_LEVELS - 1; l > 0 && budget; l--) {
        if (!(w->pend >> l & 1))
            continue;
        budget = drain(w, l, slot_ahead(w, l, 1), budget);
        if (!occupied(w, l, slot_ahead(w, l, 1)))
            w->pend &= ~(1u << l);
    }
    if (moved || w->pend)
        w->sync_min = 0; /* the next event may have moved: the owner looks again */
    return n;
}
