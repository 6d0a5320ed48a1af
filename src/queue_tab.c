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
#include "queue_int.h"

#include <string.h>

#define TAB_MIN 16 /* smallest capacity: an empty queue's put/ack churn never reallocates */

static inline uint64_t elem_key(const struct queue_tab *t, const void *elem) {
    uint64_t k;
    memcpy(&k, (const char *)elem + t->key_off, sizeof k);
    return k;
}

static inline size_t home(const struct queue_tab *t, uint64_t key) {
    return (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> t->shift);
}

void queue_tab_init(struct queue_tab *t, size_t key_off) {
    t->slots = NULL;
    t->mask = 0;
    t->count = 0;
    t->shift = 63;
    t->key_off = key_off;
}

static void place(struct queue_tab *t, void *elem) {
    size_t i = home(t, elem_key(t, elem));
    while (t->slots[i])
        i = (i + 1) & t->mask;
    t->slots[i] = elem;
}

/* Move every element to a new array of cap slots; -1 (table unchanged) on
 * allocation failure. */
static int rehash(struct queue_engine *e, struct queue_tab *t, size_t cap) {
    void **slots = queue_alloc(e, cap * sizeof *slots);
    if (!slots)
        return -1;
    memset(slots, 0, cap * sizeof *slots);
    void **old = t->slots;
    size_t oldcap = old ? t->mask + 1 : 0;
    t->slots = slots;
    t->mask = cap - 1;
    t->shift = 64u - (unsigned)__builtin_ctzll(cap);
    for (size_t i = 0; i < oldcap; i++)
        if (old[i])
            place(t, old[i]);
    queue_dealloc(e, old);
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
    return rehash(e, t, ncap);
}

void queue_tab_insert(struct queue_tab *t, void *elem) {
    place(t, elem);
    t->count++;
}

void *queue_tab_find(const struct queue_tab *t, uint64_t key,
                     int (*eq)(const void *elem, const void *arg), const void *arg) {
    if (!t->count)
        return NULL;
    void *p;
    for (size_t i = home(t, key); (p = t->slots[i]) != NULL; i = (i + 1) & t->mask)
        if (elem_key(t, p) == key && (!eq || eq(p, arg)))
            return p;
    return NULL;
}

void queue_tab_remove(struct queue_engine *e, struct queue_tab *t, void *elem) {
    size_t i = home(t, elem_key(t, elem));
    while (t->slots[i] != elem)
        i = (i + 1) & t->mask;
    /*
     * Backward shift: walk the cluster after the hole and move back each
     * element whose home is not in (hole, its slot], i.e. whose probe
     * distance reaches the hole, so every element stays reachable from
     * its home without tombstones.
     */
    for (size_t j = (i + 1) & t->mask; t->slots[j]; j = (j + 1) & t->mask) {
        size_t h = home(t, elem_key(t, t->slots[j]));
        if (((j - h) & t->mask) >= ((j - i) & t->mask)) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i] = NULL;
    t->count--;
    size_t cap = t->mask + 1;
    /* Give memory back after a drain; failing to is harmless. */
    if (cap > TAB_MIN && t->count * 8 < cap)
        (void)rehash(e, t, cap / 2);
}

void queue_tab_free(struct queue_engine *e, struct queue_tab *t) {
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
