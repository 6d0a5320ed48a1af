/*
 * The READY jobs of a queue: a pairing heap ordered by (priority, id).
 *
 * Why a pairing heap: it is intrusive. Its three links live in the job's
 * timer union, unused while a job is READY, so the ready structure costs
 * no memory per job, where a binary heap of pointers costs 8-16 bytes and
 * a reallocation of the whole array as it grows. Insert is O(1), pop and
 * removal of any node O(log n) amortized. Removal of any node matters:
 * replay acks a job that is READY, and purge walks the heap.
 *
 * Ordering by id rather than by arrival in READY makes the order a pure
 * function of the set of jobs, so a journal replay reproduces it without
 * recording reserves or lease expiries. A released job therefore goes
 * back before younger jobs of its priority (beanstalkd does the same).
 *
 * Links: heap.child is the first child; heap.next and heap.prev chain
 * siblings, and a first child's prev is its parent. A root has no
 * siblings and prev NULL.
 */
#include "engine/queue_int.h"

static inline int before(const struct queue_job *a, const struct queue_job *b) {
    return a->priority < b->priority || (a->priority == b->priority && a->id < b->id);
}

/* Meld two roots; the loser becomes the winner's first child. The winner's
 * own sibling links are left for the caller to set. */
static struct queue_job *link(struct queue_job *a, struct queue_job *b) {
    if (before(b, a)) {
        struct queue_job *t = a;
        a = b;
        b = t;
    }
    b->u.heap.next = a->u.heap.child;
    if (b->u.heap.next)
        b->u.heap.next->u.heap.prev = b;
    b->u.heap.prev = a;
    a->u.heap.child = b;
    return a;
}

/*
 * The standard two-pass merge of a sibling list: meld pairs left to right,
 * then meld the results right to left. Iterative (a list may hold a
 * million children after a million puts), with the first pass's results
 * stacked through heap.prev.
 */
static struct queue_job *merge_pairs(struct queue_job *first) {
    struct queue_job *stack = NULL;
    while (first) {
        struct queue_job *a = first, *b = a->u.heap.next;
        if (b) {
            first = b->u.heap.next;
            b->u.heap.next = NULL;
            a->u.heap.next = NULL;
            a = link(a, b);
        } else {
            first = NULL;
            a->u.heap.next = NULL;
        }
        a->u.heap.prev = stack;
        stack = a;
    }
    struct queue_job *root = NULL;
    while (stack) {
        struct queue_job *a = stack;
        stack = a->u.heap.prev;
        a->u.heap.prev = NULL;
        root = root ? link(a, root) : a;
        root->u.heap.next = root->u.heap.prev = NULL;
    }
    return root;
}

struct queue_job *queue_heap_insert(struct queue_job *root, struct queue_job *j) {
    j->u.heap.child = j->u.heap.next = j->u.heap.prev = NULL;
    if (!root)
        return j;
    root = link(root, j);
    root->u.heap.next = root->u.heap.prev = NULL;
    return root;
}

struct queue_job *queue_heap_pop(struct queue_job *root) {
    return merge_pairs(root->u.heap.child);
}

struct queue_job *queue_heap_remove(struct queue_job *root, struct queue_job *j) {
    if (j == root)
        return queue_heap_pop(root);
    struct queue_job *p = j->u.heap.prev;
    if (p->u.heap.child == j)
        p->u.heap.child = j->u.heap.next;
    else
        p->u.heap.next = j->u.heap.next;
    if (j->u.heap.next)
        j->u.heap.next->u.heap.prev = p;
    struct queue_job *sub = merge_pairs(j->u.heap.child);
    if (!sub)
        return root;
    root = link(root, sub);
    root->u.heap.next = root->u.heap.prev = NULL;
    return root;
}
