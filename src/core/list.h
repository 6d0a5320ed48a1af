/*
 * list: an intrusive, circular, doubly linked list (the kernel's list_head,
 * h2o's linklist). A struct embeds a `struct list` node; the owner holds a
 * `struct list` head. Unlink is O(1) and safe on a node that is not
 * linked (after list_init or list_unlink), so a cancel path need not know
 * whether its node is on a list.
 */
#ifndef AWAITD_LIST_H
#define AWAITD_LIST_H

#include <stddef.h>

/* The struct that holds member, from a pointer to that member. */
#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

struct list {
    struct list *next, *prev;
};

#define LIST_INIT(name) {&(name), &(name)}

static inline void list_init(struct list *l) {
    l->next = l->prev = l;
}

static inline int list_empty(const struct list *head) {
    return head->next == head;
}

/* Is node on some list? (false after list_init or list_unlink) */
static inline int list_linked(const struct list *node) {
    return node->next != node;
}

static inline void list_insert_before(struct list *pos, struct list *node) {
    node->prev = pos->prev;
    node->next = pos;
    pos->prev->next = node;
    pos->prev = node;
}

/* Append at the tail (oldest first when taken from list_first). */
static inline void list_push(struct list *head, struct list *node) {
    list_insert_before(head, node);
}

static inline void list_unlink(struct list *node) {
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->next = node->prev = node;
}

/* The first node, or NULL when empty. */
static inline struct list *list_first(const struct list *head) {
    return head->next == head ? NULL : head->next;
}

/* Walk nodes; n may be unlinked (and freed) inside the loop. */
#define list_for_each_safe(n, tmp, head)                                                           \
    for ((n) = (head)->next, (tmp) = (n)->next; (n) != (head); (n) = (tmp), (tmp) = (n)->next)

#endif
