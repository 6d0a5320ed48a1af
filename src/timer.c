/*
 * Hierarchical timing wheel; timer.h is the contract.
 *
 * Placement. A timer with expiry e > now lives at the level of the highest
 * 6-bit digit in which e and now differ, in the slot named by e's digit at
 * that level. So a level-L timer shares every digit above L with now, and
 * its slot lies strictly after now's digit: level-0 slots hold exact
 * expiries, and level L's next occupied slot starts before anything at
 * level L+1. Choosing the level is one xor, one clz and a multiply.
 *
 * Cascading. When now reaches the start of an occupied slot above level 0,
 * the slot's timers are placed again against the new now, which drops each
 * one to a strictly lower level (or to level 0 at its exact expiry).
 * advance() steps from one occupied slot to the next using the bitmaps, so
 * a jump of days costs the slots touched, not the milliseconds elapsed.
 * Because a timer's slot depends only on (expiry, now) and cascading is
 * eager, timers with equal expiries always share one list, kept in
 * insertion order (a move counts as a new insertion): that is how ties
 * fire in insertion order without a sequence number.
 *
 * Clamping. If e and now differ above bit 35 (e is past the end of the
 * current 2^36 ms epoch) the timer is parked in level 5, slot 0. No other
 * timer uses that slot (a normal level-5 slot is after now's digit, so >=
 * 1); it is read as "the start of the next epoch", which is <= e. There
 * the timers are placed again, possibly back into the parked slot, so they
 * still fire at their exact expiry, never early.
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
#include "timer.h"

#define LEVEL_BITS 6
#define WHEEL_BITS (TIMER_LEVELS * LEVEL_BITS) /* 36: beyond this, clamp */

_Static_assert(sizeof(struct timer) == 32, "struct timer must stay 32 bytes");
_Static_assert(TIMER_SLOTS == 1 << LEVEL_BITS, "one 64-bit bitmap per level");

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

static void unlink_timer(struct timer_wheel *w, struct timer *t) {
    struct timer *n = t->next, *p = t->prev;
    n->prev = p;
    p->next = n;
    t->next = t->prev = NULL;
    /*
     * n == p only when the list is now empty and n is its head. The head's
     * address tells us which slot it was (if any: the due lists and the
     * local batches are not slots), so no expiry arithmetic is needed.
     */
    if (n == p) {
        uintptr_t off = (uintptr_t)n - (uintptr_t)w->slots;
        if (off < sizeof w->slots) {
            size_t i = off / sizeof(struct timer); /* a shift: 32 bytes */
            w->occupied[i / TIMER_SLOTS] &= ~(UINT64_C(1) << (i % TIMER_SLOTS));
        }
    }
}

/* Put t into its slot for the current now; requires t->expire >= now. */
static void place(struct timer_wheel *w, struct timer *t) {
    uint64_t e = t->expire;
    /* "| 1" keeps clz defined and sends e == now (cascade only) to level 0. */
    unsigned bit = 63u - (unsigned)__builtin_clzll((e ^ w->now) | 1);
    unsigned level, slot;
    if (bit < WHEEL_BITS) {
        level = bit * 43u >> 8; /* == bit / 6 for bit < 64, without a divide */
        slot = (unsigned)(e >> (level * LEVEL_BITS)) & (TIMER_SLOTS - 1);
    } else {
        level = TIMER_LEVELS - 1; /* clamped: parked until the next epoch */
        slot = 0;
    }
    w->occupied[level] |= UINT64_C(1) << slot;
    list_append(&w->slots[level][slot], t);
}

/* Detach slot (level, slot) into the empty list batch. */
static void take_slot(struct timer_wheel *w, unsigned level, unsigned slot, struct timer *batch) {
    list_splice(batch, &w->slots[level][slot]);
    w->occupied[level] &= ~(UINT64_C(1) << slot);
}

/*
 * Start time of the first occupied slot after now: exact for level 0, a
 * lower bound for the timers of higher slots. Lower levels always come
 * first (level L's slots end where level L+1's next slot begins), so the
 * first level with an occupied later slot wins. Returns 0 when empty.
 */
static int next_slot(const struct timer_wheel *w, uint64_t *at) {
    uint64_t now = w->now;
    for (unsigned l = 0; l < TIMER_LEVELS; l++) {
        unsigned shift = l * LEVEL_BITS;
        unsigned digit = (unsigned)(now >> shift) & (TIMER_SLOTS - 1);
        /* 2 << 63 is 0, so digit 63 leaves no later slot, as it should. */
        uint64_t later = w->occupied[l] & ~((UINT64_C(2) << digit) - 1);
        if (later) {
            uint64_t base = now & ~((UINT64_C(1) << (shift + LEVEL_BITS)) - 1);
            *at = base | (uint64_t)__builtin_ctzll(later) << shift;
            return 1;
        }
    }
    if (w->occupied[TIMER_LEVELS - 1] & 1) {
        /* Parked timers: the next epoch. It cannot overflow: parking needs
         * an expiry in a later epoch, so now is not in the last one. */
        *at = (now | ((UINT64_C(1) << WHEEL_BITS) - 1)) + 1;
        return 1;
    }
    return 0;
}

/*
 * now has just reached a slot start: re-place the timers of every slot
 * that starts exactly here. Their expiries are >= now and share all digits
 * from the slot's level up with now, so each lands strictly lower (or back
 * in the parked slot, which we detached first, so this cannot loop).
 */
static void cascade(struct timer_wheel *w) {
    for (unsigned l = TIMER_LEVELS - 1; l > 0; l--) {
        unsigned shift = l * LEVEL_BITS;
        unsigned digit = (unsigned)(w->now >> shift) & (TIMER_SLOTS - 1);
        if ((w->now & ((UINT64_C(1) << shift) - 1)) || !(w->occupied[l] >> digit & 1))
            continue;
        struct timer batch;
        list_init(&batch);
        take_slot(w, l, digit, &batch);
        while (!list_empty(&batch)) {
            struct timer *t = batch.next;
            unlink_timer(w, t);
            place(w, t);
        }
    }
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
    w->in_due_round = 0;
    list_init(&w->due);
    list_init(&w->deferred);
    for (unsigned l = 0; l < TIMER_LEVELS; l++) {
        w->occupied[l] = 0;
        for (unsigned s = 0; s < TIMER_SLOTS; s++)
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
    if (expire_ms > w->now)
        place(w, t);
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
    uint64_t at;
    if (!list_empty(&w->due) || !list_empty(&w->deferred))
        return w->now;
    return next_slot(w, &at) ? at : UINT64_MAX;
}

size_t timer_wheel_advance(struct timer_wheel *w, uint64_t now_ms) {
    /* Deferred timers were made due during the previous call, so they are
     * older than anything added to due since: run them first. */
    list_splice(&w->deferred, &w->due);
    list_splice(&w->due, &w->deferred);
    size_t n = run_due(w);

    uint64_t at;
    while (next_slot(w, &at) && at <= now_ms) {
        /* Callbacks below see w->now == the millisecond being fired. */
        w->now = at;
        cascade(w);
        unsigned slot = (unsigned)at & (TIMER_SLOTS - 1);
        if (w->occupied[0] >> slot & 1) {
            struct timer batch;
            list_init(&batch);
            take_slot(w, 0, slot, &batch);
            n += fire(w, &batch);
        }
        n += run_due(w);
    }
    /* No slot starts in (w->now, now_ms], so every pending timer is still
     * placed correctly relative to now_ms. */
    if (now_ms > w->now)
        w->now = now_ms;
    return n;
}
