/*
 * redis_conn_slots: where redis_conn.c sends a key in a Redis Cluster: the
 * slot map from CLUSTER SLOTS (parsed by redis_slot.c), a standalone server
 * found by its refusal, and the owner's on_up once every master and the
 * subscriber are connected.
 */
#include "svc/redis_conn_int.h"

#include "core/log.h"
#include "svc/redis_slot.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

/* ---- the slot map ------------------------------------------------------------------- */

/* Applying a CLUSTER SLOTS answer: the new map, built aside. */
struct map_build {
    struct redis_conn *rc;
    const struct rnode *asked;
    unsigned char slots[REDIS_SLOTS];
    int master[MAX_NODES];
};

static int map_range(void *arg, const struct redis_slot_range *range) {
    struct map_build *mb = arg;
    struct rnode *n = rconn_node_get(mb->rc, range->host ? range->host : mb->asked->host, range->port);
    if (!n)
        return -1;
    size_t idx = rconn_node_index(mb->rc, n);
    mb->master[idx] = 1;
    memset(mb->slots + range->first, (int)idx, range->last - range->first + 1);
    return 0;
}

/* Apply a CLUSTER SLOTS answer; -1 when it makes no sense. */
static int apply_slots(struct redis_conn *rc, const redisReply *r, struct rnode *asked) {
    static struct map_build mb;
    memset(&mb, 0, sizeof mb);
    mb.rc = rc;
    mb.asked = asked;
    memset(mb.slots, NO_NODE, sizeof mb.slots);
    if (redis_parse_slots(r, map_range, &mb) < 0)
        return -1;
    memcpy(rc->slots, mb.slots, sizeof mb.slots);
    for (size_t i = 0; i < rc->nnodes; i++) {
        struct rnode *n = rc->nodes[i];
        if (mb.master[i] && !n->master)
            n->fresh = 1; /* a new master: the owner checks the library there */
        n->master = mb.master[i];
    }
    return 0;
}

static void sub_connect(struct redis_conn *rc, struct rnode *n) {
    if (!rc->sub.ac)
        rconn_link_connect(&rc->sub, n);
}

static void on_slots(void *arg, struct redisReply *r, const char *why) {
    struct rnode *asked = arg;
    struct redis_conn *rc = asked->cmd.rc;
    (void)why;
    rc->asking = 0;
    if (!r) { /* the link failed: a standalone server or a boot node takes everything down */
        if (rc->mode == M_CLUSTER)
            rconn_schedule_retry(rc, rc->backoff_ms); /* ask another node */
        return;
    }
    if (r->type == REDIS_REPLY_ERROR && rc->mode == M_UNKNOWN && !strstr(r->str, "LOADING") &&
        !strstr(r->str, "NOAUTH") && !strstr(r->str, "MASTERDOWN")) {
        /* "ERR This instance has cluster support disabled" (or CLUSTER refused by a proxy
         * or an ACL): one standalone server. */
        if (!strstr(r->str, "cluster support disabled"))
            log_info("redis %s:%d: CLUSTER SLOTS answered \"%.100s\": a standalone server",
                     asked->host, asked->port, r->str);
        rc->mode = M_STANDALONE;
        memset(rc->slots, (int)rconn_node_index(rc, asked), sizeof rc->slots);
        asked->master = 1;
        sub_connect(rc, asked);
        rconn_check_up(rc);
        return;
    }
    if (apply_slots(rc, r, asked) < 0) {
        char what[200];
        snprintf(what, sizeof what, "CLUSTER SLOTS: %.150s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "no usable slot map");
        rconn_link_failed(&asked->cmd, what);
        if (rc->mode == M_CLUSTER)
            rconn_schedule_retry(rc, rc->backoff_ms); /* ask another node */
        return;
    }
    if (rc->mode != M_CLUSTER)
        log_info("redis %s:%d: a cluster", asked->host, asked->port);
    rc->mode = M_CLUSTER;
    rc->boot = NULL;
    size_t missing = 0;
    for (size_t i = 0; i < rc->nnodes; i++) {
        struct rnode *n = rc->nodes[i];
        if (n->master && !n->cmd.authed) {
            rconn_link_connect(&n->cmd, n);
            missing++;
        }
    }
    sub_connect(rc, asked);
    for (size_t s = 0; s < REDIS_SLOTS; s++)
        if (rc->slots[s] == NO_NODE)
            missing++;
    if (missing) /* a master not connected yet, or slots without one (a failover going on) */
        rconn_schedule_retry(rc, rc->backoff_ms), rconn_backoff_grow(rc);
    rconn_check_up(rc);
}

void rconn_send_slots(struct rnode *n) {
    const char *argv[] = {"CLUSTER", "SLOTS"};
    if (rconn_send_argv(&n->cmd, on_slots, n, 2, argv, NULL) == 0)
        n->cmd.rc->asking = 1;
    else
        rconn_link_failed(&n->cmd, "cannot send CLUSTER SLOTS");
}

/* All masters and the subscriber connected: the owner's on_up, the first time and whenever a
 * master is new or the subscriber came back (a notification may have been missed). */
void rconn_check_up(struct redis_conn *rc) {
    if (rc->mode == M_UNKNOWN || !rc->sub.authed)
        return;
    int fresh = rc->sub_fresh || !rc->up_called;
    size_t masters = 0;
    for (size_t i = 0; i < rc->nnodes; i++) {
        struct rnode *n = rc->nodes[i];
        if (!n->master)
            continue;
        if (!n->cmd.authed)
            return;
        masters++;
        fresh |= n->fresh;
    }
    if (!fresh || !masters)
        return;
    for (size_t i = 0; i < rc->nnodes; i++)
        rc->nodes[i]->fresh = 0;
    rc->sub_fresh = 0;
    rc->up_called = 1;
    rc->epoch++;
    if (rc->hooks.on_up)
        rc->hooks.on_up(rc->hooks.ctx);
}
