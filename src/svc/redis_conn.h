/*
 * redis_conn: awaitd's link to Redis, on the daemon's own libevent loop
 * (hiredis's async API and its libevent adapter). One node at a time:
 * a command connection (pipelined: every command of every caller goes
 * down it in order) and a subscriber connection (one SUBSCRIBE to the
 * backend's notification channel, whatever the number of waiters).
 *
 * Life: connect with [redis] connect_timeout, AUTH (user and password if
 * set), then the owner's on_up() runs (it loads the function library) and
 * the owner says redis_conn_ready(). A lost connection, a failed AUTH or a
 * command older than command_timeout closes both connections: every
 * command in flight gets its callback with NULL (the caller answers 503),
 * and the link reconnects by itself with backoff (100 ms doubling to 2 s),
 * trying the seed nodes in turn. While it is down, redis_conn_why() says
 * why, for /health and for 503 bodies.
 *
 * Cluster: not yet. Commands already carry the key they route by
 * (redis_key_slot gives its slot), so a slot map (CLUSTER SLOTS, MOVED,
 * ASK) can pick the node per command without changing callers.
 */
#ifndef AWAITD_REDIS_CONN_H
#define AWAITD_REDIS_CONN_H

#include <stddef.h>
#include <stdint.h>

struct server;
struct redis_conn;
struct redisReply;

/* A command's answer: reply NULL when the connection failed (why says how). */
typedef void (*redis_reply_fn)(void *arg, struct redisReply *reply, const char *why);

struct redis_conn_hooks {
    void (*on_up)(void *ctx);                                /* connected and authenticated */
    void (*on_message)(void *ctx, const char *msg, size_t len); /* a notification */
    void (*on_down)(void *ctx);                              /* both connections lost */
    void *ctx;
};

/* channel: what the subscriber connection subscribes to. NULL (logged) when out of memory. */
struct redis_conn *redis_conn_new(struct server *s, const char *channel,
                                  const struct redis_conn_hooks *hooks);
/* Start connecting (and keep at it). */
void redis_conn_start(struct redis_conn *rc);
void redis_conn_free(struct redis_conn *rc);

/* The owner is done with on_up's work: commands may flow. */
void redis_conn_ready(struct redis_conn *rc);
/* 1 when commands may be sent (connected, authenticated, ready). */
int redis_conn_up(const struct redis_conn *rc);
/* Why it is not up ("redis 127.0.0.1:6379: Connection refused"). */
const char *redis_conn_why(const struct redis_conn *rc);
/* Close both connections now (as on a failure) with this reason; they come back by themselves. */
void redis_conn_fail(struct redis_conn *rc, const char *why);

/*
 * Send a command (argv/lens as hiredis's redisAsyncCommandArgv) routed by
 * key (its slot, once there is a cluster map). fn runs once, from the
 * loop, with the reply or NULL. Also allowed before redis_conn_ready()
 * (from on_up). 0 sent, -1 not connected (fn does not run).
 */
int redis_conn_command(struct redis_conn *rc, const char *key, size_t keylen, redis_reply_fn fn,
                       void *arg, int argc, const char **argv, const size_t *lens);

/* Redis Cluster's key slot: CRC16 (XMODEM) of the hash tag, mod 16384. Pure. */
unsigned redis_key_slot(const char *key, size_t len);

#endif
