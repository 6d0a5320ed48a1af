/*
 * task_index: the timer-task engine's id index (task.c has the engine).
 *
 * The id index is one array of words in id order, because ids only grow:
 * creating appends. A word is a task pointer, or for a removed task its
 * id shifted left with the low bit set (a tombstone), so every slot still
 * has an id to search on. Tombstones are squeezed out when they outnumber
 * live tasks. Lookups interpolate on the id, which lands on the answer at
 * once while ids are dense, and fall back to halving otherwise. Unlike a
 * hash table, the same array pages GET /timers in id order, at 8 bytes
 * per task.
 *
 */
#include "engine/task_int.h"

/* ---- id index ----------------------------------------------------------- */

static uint64_t tk_slot_id(uintptr_t v) {
    return v & 1 ? v >> 1 : tid((const struct task *)v);
}

/* First slot whose id is >= id (e->n if none). */
size_t tk_lower_bound(const struct task_engine *e, uint64_t id) {
    const uintptr_t *v = e->slots;
    size_t lo = 0, hi = e->n; /* the answer is in [lo, hi] */
    while (hi - lo > 4) {
        size_t width = hi - lo;
        uint64_t a = tk_slot_id(v[lo]), b = tk_slot_id(v[hi - 1]);
        if (id <= a)
            return lo;
        if (id > b)
            return hi;
        /* Ids are strictly increasing, so b - a >= hi - 1 - lo > 0. */
        size_t p = lo + (size_t)((double)(id - a) / (double)(b - a) * (double)(hi - 1 - lo));
        if (p >= hi)
            p = hi - 1;
        if (tk_slot_id(v[p]) >= id) {
            if (p == lo || tk_slot_id(v[p - 1]) < id)
                return p;
            hi = p - 1;
        } else {
            if (p + 1 == hi || tk_slot_id(v[p + 1]) >= id)
                return p + 1;
            lo = p + 2;
        }
        if (hi - lo > width / 2) { /* a poor guess: halve, so we stay O(log n) */
            size_t m = lo + (hi - lo) / 2;
            if (tk_slot_id(v[m]) < id)
                lo = m + 1;
            else
                hi = m;
        }
    }
    while (lo < hi && tk_slot_id(v[lo]) < id)
        lo++;
    return lo;
}

/* Resize the index to cap slots, squeezing out tombstones; -1 on NOMEM. */
static int tk_index_rebuild(struct task_engine *e, size_t cap) {
    uintptr_t *v = e->slots;
    if (cap != e->cap) {
        v = e_alloc(e, cap * sizeof *v);
        if (!v)
            return -1;
    }
    size_t j = 0;
    for (size_t i = 0; i < e->n; i++)
        if (!(e->slots[i] & 1))
            v[j++] = e->slots[i];
    if (v != e->slots) {
        e_free(e, e->slots);
        e->slots = v;
        e->cap = cap;
    }
    e->n = j;
    return 0;
}

/* Insert t at its place by id (the end, except in an out-of-order replay). */
int tk_index_insert(struct task_engine *e, struct task *t) {
    if (e->n == e->cap) { /* full: squeeze out tombstones if they are many, else grow */
        size_t cap = !e->cap ? INDEX_MIN : e->n - e->live >= e->n / 4 ? e->cap : e->cap * 2;
        if (cap > SIZE_MAX / 16 || tk_index_rebuild(e, cap) < 0)
            return -1;
    }
    uint64_t id = tid(t);
    size_t pos = (e->n && tk_slot_id(e->slots[e->n - 1]) < id) ? e->n : tk_lower_bound(e, id);
    if (pos < e->n && tk_slot_id(e->slots[pos]) == id) {
        e->slots[pos] = (uintptr_t)t; /* reuse the tombstone of the same id */
    } else {
        memmove(e->slots + pos + 1, e->slots + pos, (e->n - pos) * sizeof *e->slots);
        e->slots[pos] = (uintptr_t)t;
        e->n++;
    }
    e->live++;
    return 0;
}

void tk_index_remove(struct task_engine *e, struct task *t) {
    size_t pos = tk_lower_bound(e, tid(t));
    e->slots[pos] = (uintptr_t)tid(t) << 1 | 1;
    e->live--;
    size_t dead = e->n - e->live;
    if (dead > e->live && dead > INDEX_MIN) {
        /* Squeeze, and shrink to a fill above 1/2, so that memory follows
         * the tasks held down as well as up. */
        size_t cap = INDEX_MIN;
        while (cap < e->live && cap < e->cap)
            cap *= 2;
        if (tk_index_rebuild(e, cap) < 0) /* cannot shrink: squeeze in place */
            tk_index_rebuild(e, e->cap);
    }
}

/* ---- lookups ------------------------------------------------------------ */

struct task *task_find(const struct task_engine *e, uint64_t id) {
    size_t pos = tk_lower_bound(e, id);
    if (pos == e->n || (e->slots[pos] & 1) || tk_slot_id(e->slots[pos]) != id)
        return NULL;
    return (struct task *)e->slots[pos];
}

size_t task_list(const struct task_engine *e, uint64_t after, struct task **out, size_t max) {
    size_t n = 0;
    if (after >= TASK_ID_MAX)
        return 0;
    for (size_t i = tk_lower_bound(e, after + 1); i < e->n && n < max; i++)
        if (!(e->slots[i] & 1))
            out[n++] = (struct task *)e->slots[i];
    return n;
}
