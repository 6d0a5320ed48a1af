/*
 * Hash tables of the queue engine (see struct queue_tab in queue_int.h):
 * the id -> job index, which ack, nack, touch and peek go through, and
 * each queue's idempotency keys.
 *
 * Why open addressing of bare pointers: a slot is 8 bytes, so the id
 * index costs 8/load bytes per job (10.7..21.3), which the memory target
 * needs. The key lives in the element, so a probe touches the element.
 * Fibonacci hashing spreads the engine's consecutive ids evenly over the
 * table, so clusters stay short.
 */
#include "engine/queue_int.h"

#include <string.h>

#define TAB_MIN 16 /* smallest capacity: an empty queue's put/ack churn never reallocates */
/*
 * Work per insert or removal while a resize is in progress: move up to
 * MIGRATE_MOVES elements of the old array, looking at up to
 * MIGRATE_LOOKS of its slots (an empty one is a NULL test in a sequential
 * walk). Growth doubles a table of capacity C at 3C/4 elements and the
 * next growth comes 3C/4 inserts later: the old array is empty within
 * C/5 of them. A shrink halves it at C/8 elements: its slots are all
 * looked at within C/64 removals.
 */
#define MIGRATE_MOVES 4
#define MIGRATE_LOOKS 64

static inline uint64_t elem_key(const struct queue_tab *t, const void *elem) {
    uint64_t k;
    memcpy(&k, (const char *)elem + t->key_off, sizeof k);
    return k;
}

static inline size_t home(uint64_t key, unsigned shift) {
    return (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> shift);
}

void queue_tab_init(struct queue_tab *t, size_t key_off) {
    t->slots = NULL;
    t->mask = 0;
    t->count = 0;
    t->shift = 63;
    t->old = NULL;
    t->old_mask = 0;
    t->old_shift = 63;
    t->old_pos = 0;
    t->key_off = key_off;
}

/* Put elem into the current array (there is room: reserve). */
static void place(struct queue_tab *t, void *elem) {
    size_t i = home(elem_key(t, elem), t->shift);
    while (t->slots[i])
        i = (i + 1) & t->mask;
    t->slots[i] = elem;
}

/*
 * Empty slots[i] of an array by backward shift: walk the cluster after the
 * hole and move back each element whose home is not in (hole, its slot],
 * i.e. whose probe distance reaches the hole, so every element stays
 * reachable from its home without tombstones.
 */
static void shift_out(const struct queue_tab *t, void **slots, size_t mask, unsigned shift,
                      size_t i) {
    for (size_t j = (i + 1) & mask; slots[j]; j = (j + 1) & mask) {
        size_t h = home(elem_key(t, slots[j]), shift);
        if (((j - h) & mask) >= ((j - i) & mask)) {
            slots[i] = slots[j];
            i = j;
        }
    }
    slots[i] = NULL;
}

/*
 * Move up to moves elements of the old array to the current one, looking
 * at up to looks slots. Slots are emptied in order with shift_out, so the
 * old array stays a valid table (lookups still find what is left) and
 * the slots before old_pos stay empty: a shift only moves an element back
 * to a hole, and holes appear only at or after old_pos. Frees the old
 * array once it is empty.
 */
static void migrate(struct queue_engine *e, struct queue_tab *t, size_t moves, size_t looks) {
    while (t->old && moves && looks) {
        if (t->old_pos > t->old_mask || !t->count) {
            queue_dealloc(e, t->old);
            t->old = NULL;
            break;
        }
        void *p = t->old[t->old_pos];
        looks--;
        if (!p) {
            t->old_pos++;
            continue;
        }
        moves--;
        shift_out(t, t->old, t->old_mask, t->old_shift, t->old_pos);
        place(t, p); /* and look at old_pos again: the shift may have filled it */
    }
}

/*
 * Start moving to a new array of cap slots (a previous move is finished
 * first, at once: only when inserts outrun the migration, e.g. one huge
 * batch); -1 (table unchanged) on allocation failure.
 */
static int resize(struct queue_engine *e, struct queue_tab *t, size_t cap) {
    migrate(e, t, SIZE_MAX, SIZE_MAX);
    void **slots = queue_zalloc(e, cap * sizeof *slots);
    if (!slots)
        return -1;
    if (t->count) {
        t->old = t->slots;
        t->old_mask = t->mask;
        t->old_shift = t->shift;
        t->old_pos = 0;
    } else {
        queue_dealloc(e, t->slots);
    }
    t->slots = slots;
    t->mask = cap - 1;
    t->shift = 64u - (unsigned)__builtin_ctzll(cap);
    return 0;
}

int queue_tab_reserve(struct queue_engine *e, struct queue_tab *t, size_t n) {
    size_t cap = t->slots ? t->mask + 1 : 0;
    size_t need = t->count + n;
    if (need * 4 <= cap * 3)
        return 0;
    size_t ncap = cap ? cap : TAB_MIN;
    while (need * 4 > ncap * 3) {
        if (ncap > SIZE_MAX / 16)
            return -1;
        ncap *= 2;
    }
    return resize(e, t, ncap);
}

void queue_tab_insert(struct queue_engine *e, struct queue_tab *t, void *elem) {
    place(t, elem);
    t->count++;
    migrate(e, t, MIGRATE_MOVES, MIGRATE_LOOKS);
}

/* Look for key in one array; NULL if absent. */
static void *probe(const struct queue_tab *t, void *const *slots, size_t mask, unsigned shift,
                   uint64_t key, int (*eq)(const void *elem, const void *arg), const void *arg) {
    void *p;
    for (size_t i = home(key, shift); (p = slots[i]) != NULL; i = (i + 1) & mask)
        if (elem_key(t, p) == key && (!eq || eq(p, arg)))
            return p;
    return NULL;
}

void *queue_tab_find(const struct queue_tab *t, uint64_t key,
                     int (*eq)(const void *elem, const void *arg), const void *arg) {
    if (!t->count)
        return NULL;
    void *p = probe(t, t->slots, t->mask, t->shift, key, eq, arg);
    if (!p && t->old)
        p = probe(t, t->old, t->old_mask, t->old_shift, key, eq, arg);
    return p;
}

/* The slot of elem in one array, or SIZE_MAX if it is not there. */
static size_t slot_of(const struct queue_tab *t, void *const *slots, size_t mask, unsigned shift,
                      const void *elem) {
    for (size_t i = home(elem_key(t, elem), shift); slots[i]; i = (i + 1) & mask)
        if (slots[i] == elem)
            return i;
    return SIZE_MAX;
}

void queue_tab_remove(struct queue_engine *e, struct queue_tab *t, void *elem) {
    size_t i = slot_of(t, t->slots, t->mask, t->shift, elem);
    if (i != SIZE_MAX)
        shift_out(t, t->slots, t->mask, t->shift, i);
    else
        shift_out(t, t->old, t->old_mask, t->old_shift,
                  slot_of(t, t->old, t->old_mask, t->old_shift, elem));
    t->count--;
    migrate(e, t, MIGRATE_MOVES, MIGRATE_LOOKS);
    size_t cap = t->mask + 1;
    /* Give memory back after a drain; failing to is harmless. */
    if (!t->old && cap > TAB_MIN && t->count * 8 < cap)
        (void)resize(e, t, cap / 2);
}

size_t queue_tab_span(const struct queue_tab *t) {
    return (t->old ? t->old_mask + 1 : 0) + (t->slots ? t->mask + 1 : 0);
}

void *queue_tab_at(const struct queue_tab *t, size_t pos) {
    if (t->old) {
        if (pos <= t->old_mask)
            return t->old[pos];
        pos -= t->old_mask + 1;
    }
    return t->slots[pos];
}

void queue_tab_free(struct queue_engine *e, struct queue_tab *t) {
    queue_dealloc(e, t->old);
    queue_dealloc(e, t->slots);
    queue_tab_init(t, t->key_off);
}

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

/*
 * Idempotency keys come from clients, so the hash is seeded: without the
 * seed nobody can precompute colliding keys (it is not a cryptographic
 * PRF like SipHash; keys are bounded in number by the window and the
 * memory limit, and queue endpoints sit behind a token).
 */
uint64_t queue_hash_bytes(uint64_t seed, const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = mix64(seed ^ (n * UINT64_C(0x9E3779B97F4A7C15)));
    uint64_t w;
    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        h = mix64(h ^ w) + UINT64_C(0x9E3779B97F4A7C15);
    }
    w = 0;
    memcpy(&w, s, n);
    return mix64(h ^ w ^ ((uint64_t)n << 56));
}
