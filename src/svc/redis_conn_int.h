/*
 * redis_conn_int: what redis_conn.c (links, commands, connections) and
 * redis_conn_slots.c (the cluster's slot map) share. Not for use outside
 * them; redis_conn.h is the contract.
 */
#ifndef AWAITD_REDIS_CONN_INT_H
#define AWAITD_REDIS_CONN_INT_H

#include "svc/redis_conn.h"

#include "core/list.h"
#include "core/timer.h"

#include <hiredis/async.h>
#include <stddef.h>
#include <stdint.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define TICK_MS 100 /* how often deadlines are checked while a link connects or has commands */
#define MAX_NODES 64
#define MAX_REDIRECTS 5
#define NO_NODE 0xff

enum mode { M_UNKNOWN, M_STANDALONE, M_CLUSTER };

struct rnode;

struct link {
    struct redis_conn *rc;
    struct rnode *node;    /* where it goes (the subscriber: the node it went to) */
    redisAsyncContext *ac; /* NULL when closed */
    int sub;               /* the subscriber connection */
    int authed;            /* connected and authenticated (and subscribed, for sub) */
    uint64_t started_ms;   /* when it began connecting */
    uint64_t answered_ms;  /* when the last answer came */
    struct list inflight;  /* struct pending, oldest first (answers come in order) */
    struct list parked;    /* struct pending redirected here while it connects */
    struct timer tick_t;
};

struct rnode {
    char host[256];
    int port;
    struct link cmd;
    int master; /* a master in the current map */
    int fresh;  /* connected since the owner's last on_up */
};

/* A command in flight. The formatted command is kept for a redirection. */
struct pending {
    struct redis_conn *rc;
    redis_reply_fn fn;
    void *arg;
    uint64_t sent_ms;
    struct list node;
    int redirects;
    int asking; /* parked after an ASK: send ASKING first */
    size_t len;
    char *cmd;
};

struct redis_conn {
    struct server *srv;
    struct redis_conn_hooks hooks;
    char *channel;
    struct rnode *nodes[MAX_NODES];
    size_t nnodes;
    unsigned char slots[REDIS_SLOTS]; /* index in nodes, or NO_NODE */
    int mode;
    struct link sub;
    int sub_fresh;
    size_t boot_next;   /* the next candidate to boot from: seeds, then known nodes */
    struct rnode *boot; /* asked for the map now */
    int up_called;      /* on_up ran since the last full down */
    int ready;          /* the owner said redis_conn_ready() */
    unsigned epoch;     /* on_up calls and full downs so far (redis_conn_epoch) */
    int asking;         /* a CLUSTER SLOTS in flight */
    uint64_t backoff_ms;
    struct timer retry_t;
    char why[256];
};

/* redis_conn.c */
struct rnode *rconn_node_get(struct redis_conn *rc, const char *host, int port);
size_t rconn_node_index(const struct redis_conn *rc, const struct rnode *n);
void rconn_link_connect(struct link *l, struct rnode *n);
void rconn_link_failed(struct link *l, const char *what);
void rconn_schedule_retry(struct redis_conn *rc, uint64_t ms);
void rconn_backoff_grow(struct redis_conn *rc);
int rconn_send_argv(struct link *l, redis_reply_fn fn, void *arg, int argc, const char **argv,
                    const size_t *lens);

/* redis_conn_slots.c: ask n for the slot map (CLUSTER SLOTS). */
void rconn_send_slots(struct rnode *n);
/* All masters and the subscriber connected: the owner's on_up, the first
 * time and whenever a master is new or the subscriber came back. */
void rconn_check_up(struct redis_conn *rc);

#endif
