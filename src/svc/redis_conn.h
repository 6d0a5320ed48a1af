/*
 * redis_conn: awaitd's link to Redis, on the daemon's own libevent loop
 * (hiredis's async API and its libevent adapter): a standalone server or
 * a Redis Cluster, told apart at each (re)connection by asking the first
 * seed node that answers for CLUSTER SLOTS.
 *
 * Standalone: a command connection (pipelined: every command of every
 * caller goes down it in order) and a subscriber connection (one
 * SUBSCRIBE to the backend's notification channel, whatever the number of
 * waiters).
 *
 * Cluster: the slot map from CLUSTER SLOTS, one pipelined command
 * connection per master, each command sent to the master of its key's
 * slot (redis_key_slot, redis_slot.h). A MOVED answer updates that slot,
 * resends the command to the named master and refreshes the whole map;
 * ASK resends it once after ASKING. The subscriber connection goes to any
 * one node: a PUBLISH on one node of a cluster reaches the subscribers of
 * every node. Losing one master fails only the commands in flight on it
 * (their callbacks get NULL) and those routed to its slots meanwhile
 * (-1): the map is asked again from another node with backoff until the
 * promoted replica is there, and a new master (or the subscriber
 * connection coming back elsewhere) runs the owner's on_up() again, so
 * the function library is checked on every master.
 *
 * Life: connect with [redis] connect_timeout, AUTH (user and password if
 * set), then the owner's on_up() runs (it loads the function library on
 * every master, redis_lib.h) and the owner says
 * redis_conn_ready(). A lost connection (standalone), no node left to ask
 * (cluster), a failed AUTH or redis_conn_fail() closes everything: every
 * command in flight gets its callback with NULL (the caller answers 503),
 * on_down() runs, and the link reconnects by itself with backoff (100 ms
 * doubling to 2 s), trying the seed nodes (then the nodes it learnt) in
 * turn. A connection that answers nothing for command_timeout while a
 * command waits (since it was sent and since the last answer) closes. While
 * anything is down, redis_conn_why() says why, for /health and 503 bodies.
 */
#ifndef AWAITD_REDIS_CONN_H
#define AWAITD_REDIS_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "svc/redis_slot.h"

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
/* 1 when commands may be sent (connected, authenticated, ready). In a cluster, commands
 * routed to a master that is down meanwhile still fail (-1): see redis_conn_degraded. */
int redis_conn_up(const struct redis_conn *rc);
/* 1 when not up, or (cluster) a master or the subscriber connection is down. */
int redis_conn_degraded(const struct redis_conn *rc);
/* Masters in the slot map (1 for a standalone server, 0 before the first connection). */
size_t redis_conn_masters(const struct redis_conn *rc);
/* Changes with every on_up call and every full down: work started under an older epoch is
 * moot (redis_lib.c's rounds). */
unsigned redis_conn_epoch(const struct redis_conn *rc);
/* Why it is not up ("redis 127.0.0.1:6379: Connection refused"). */
const char *redis_conn_why(const struct redis_conn *rc);
/* Close both connections now (as on a failure) with this reason; they come back by themselves. */
void redis_conn_fail(struct redis_conn *rc, const char *why);

/*
 * Send a command (argv/lens as hiredis's redisAsyncCommandArgv) routed by
 * key: to the master of redis_key_slot(key) in a cluster (key NULL: any
 * one master; give the key for anything that touches a key, and for WAIT
 * the key of the write it waits for). fn runs once, from the loop, with
 * the reply (after following MOVED/ASK) or NULL. Also allowed before
 * redis_conn_ready() (from on_up). 0 sent, -1 not connected (fn does not run).
 */
int redis_conn_command(struct redis_conn *rc, const char *key, size_t keylen, redis_reply_fn fn,
                       void *arg, int argc, const char **argv, const size_t *lens);

/*
 * Send a command to every master (FUNCTION LOAD, a version check): fn runs
 * once per master with that master's reply (or NULL). Returns the number
 * of masters it went to, or -1 (nothing sent) when a master is not connected.
 */
int redis_conn_command_all(struct redis_conn *rc, redis_reply_fn fn, void *arg, int argc,
                           const char **argv, const size_t *lens);

#endif
