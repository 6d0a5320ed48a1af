/*
 * peer_limit: open connections per client address, for [server]
 * max_connections_per_ip (nginx's limit_conn on $binary_remote_addr). A
 * hash table of addresses (IPv4 as v4-mapped IPv6) to counts, open
 * addressing with linear probing and backward-shift deletion, seeded so a
 * client cannot choose addresses that collide. Pure: no I/O.
 */
#ifndef AWAITD_PEER_LIMIT_H
#define AWAITD_PEER_LIMIT_H

#include <stddef.h>
#include <stdint.h>

struct sockaddr;

struct peer_slot {
    uint8_t addr[16];
    uint32_t n; /* 0: empty */
};

struct peer_table {
    struct peer_slot *slots;
    size_t cap; /* a power of two, or 0 */
    size_t used;
    uint64_t seed;
};

/* Count one more connection from sa unless it already has limit.
 * 0 counted, 1 over the limit (not counted), -1 out of memory (not counted). */
int peer_limit_take(struct peer_table *t, const struct sockaddr *sa, uint32_t limit);

/* One connection from sa closed (one that peer_limit_take counted). */
void peer_limit_release(struct peer_table *t, const struct sockaddr *sa);

/* Connections counted for sa (0 if none). */
uint32_t peer_limit_count(const struct peer_table *t, const struct sockaddr *sa);

void peer_limit_free(struct peer_table *t);

/* 1 if sa is a loopback address: 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104. */
int peer_is_loopback(const struct sockaddr *sa);

#endif
