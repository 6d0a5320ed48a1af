/*
 * redis_slot: Redis Cluster's pure parts (no I/O): the key slot of a key
 * (CRC16/XMODEM of its hash tag, mod 16384) and the parsing of a
 * redirection error ("MOVED 3999 127.0.0.1:6381", "ASK ..."), and the
 * slot ranges of a CLUSTER SLOTS answer. Unit-tested in
 * tests/check_redis_slot.c (slots against CLUSTER KEYSLOT).
 */
#ifndef AWAITD_REDIS_SLOT_H
#define AWAITD_REDIS_SLOT_H

#include <stddef.h>

#define REDIS_SLOTS 16384

/* Redis Cluster's key slot: CRC16 (XMODEM) of the hash tag, mod 16384. */
unsigned redis_key_slot(const char *key, size_t len);

/* A redirection parsed from an error reply. */
struct redis_redirect {
    int ask; /* 1: ASK (this command only), 0: MOVED (the slot moved) */
    unsigned slot;
    char host[256]; /* without brackets for IPv6 */
    int port;
};

/* err (an error reply's text): 0 and *out filled when it is a MOVED or ASK
 * redirection, -1 otherwise (any other error, or a malformed one). */
int redis_parse_redirect(const char *err, size_t len, struct redis_redirect *out);

struct redisReply;

/* One range of a CLUSTER SLOTS answer and its master. host NULL: the node that answered
 * (it said "" or "?"). */
struct redis_slot_range {
    unsigned first, last;
    const char *host;
    int port;
};

/* Each range of a CLUSTER SLOTS answer r: fn(arg, range), which returns 0 to go on. 0, or
 * -1 when r is not a usable map (or fn said -1). */
int redis_parse_slots(const struct redisReply *r,
                      int (*fn)(void *arg, const struct redis_slot_range *range), void *arg);

#endif
