#include "net/peer_limit.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* The address as 16 bytes: IPv6 as is, IPv4 (and IPv4-mapped IPv6) as
 * ::ffff:a.b.c.d, so one client counts once whichever way it came. */
static void peer_key(const struct sockaddr *sa, uint8_t key[16]) {
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    } else if (sa->sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    }
}

static size_t peer_hash(const struct peer_table *t, const uint8_t key[16]) {
    uint64_t a, b;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    uint64_t h = (a ^ t->seed) * 0x9E3779B97F4A7C15ull;
    h = (h ^ (h >> 29) ^ b) * 0xBF58476D1CE4E5B9ull;
    return (size_t)(h ^ (h >> 32)) & (t->cap - 1);
}

static struct peer_slot *peer_find(const struct peer_table *t, const uint8_t key[16]) {
    if (!t->cap)
        return NULL;
    for (size_t i = peer_hash(t, key);; i = (i + 1) & (t->cap - 1)) {
        struct peer_slot *s = &t->slots[i];
        if (s->n == 0)
            return NULL;
        if (memcmp(s->addr, key, 16) == 0)
            return s;
    }
}

static struct peer_slot *peer_insert(struct peer_table *t, const uint8_t key[16]) {
    size_t i = peer_hash(t, key);
    while (t->slots[i].n)
        i = (i + 1) & (t->cap - 1);
    memcpy(t->slots[i].addr, key, 16);
    t->used++;
    return &t->slots[i];
}

/* Keep the table at most half full. */
static int peer_grow(struct peer_table *t) {
    if (t->cap && (t->used + 1) * 2 <= t->cap)
        return 0;
    size_t cap = t->cap ? t->cap * 2 : 64;
    struct peer_slot *old = t->slots;
    size_t oldcap = t->cap;
    t->slots = calloc(cap, sizeof *t->slots);
    if (!t->slots) {
        t->slots = old;
        return -1;
    }
    if (!oldcap)
        t->seed = (uint64_t)(uintptr_t)t->slots * 0x94D049BB133111EBull ^ (uint64_t)rand();
    t->cap = cap;
    t->used = 0;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].n)
            peer_insert(t, old[i].addr)->n = old[i].n;
    free(old);
    return 0;
}

int peer_limit_take(struct peer_table *t, const struct sockaddr *sa, uint32_t limit) {
    uint8_t key[16];
    peer_key(sa, key);
    struct peer_slot *s = peer_find(t, key);
    if (s) {
        if (s->n >= limit)
            return 1;
        s->n++;
        return 0;
    }
    if (limit == 0)
        return 1;
    if (peer_grow(t) < 0)
        return -1;
    peer_insert(t, key)->n = 1;
    return 0;
}

void peer_limit_release(struct peer_table *t, const struct sockaddr *sa) {
    uint8_t key[16];
    peer_key(sa, key);
    struct peer_slot *s = peer_find(t, key);
    if (!s || --s->n > 0)
        return;
    /* Backward-shift deletion: move later entries of the run into the
     * hole when their home slot allows, so lookups never need tombstones. */
    size_t hole = (size_t)(s - t->slots);
    for (size_t i = (hole + 1) & (t->cap - 1); t->slots[i].n; i = (i + 1) & (t->cap - 1)) {
        size_t home = peer_hash(t, t->slots[i].addr);
        /* Movable when home is not cyclically in (hole, i]. */
        if (((i - home) & (t->cap - 1)) >= ((i - hole) & (t->cap - 1))) {
            t->slots[hole] = t->slots[i];
            hole = i;
        }
    }
    t->slots[hole].n = 0;
    t->used--;
}

uint32_t peer_limit_count(const struct peer_table *t, const struct sockaddr *sa) {
    uint8_t key[16];
    peer_key(sa, key);
    const struct peer_slot *s = peer_find(t, key);
    return s ? s->n : 0;
}

void peer_limit_free(struct peer_table *t) {
    free(t->slots);
    memset(t, 0, sizeof *t);
}

int peer_is_loopback(const struct sockaddr *sa) {
    static const uint8_t v6_loopback[16] = {[15] = 1};
    static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
    uint8_t key[16];
    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
        return 0;
    peer_key(sa, key);
    if (memcmp(key, v6_loopback, 16) == 0)
        return 1;
    return memcmp(key, mapped, 12) == 0 && key[12] == 127;
}
