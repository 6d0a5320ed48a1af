/*
 * redis_conn: see redis_conn.h. Deadlines (connect, command, backoff) are
 * wheel timers, like every other deadline of the daemon. Nodes are kept
 * for the connection's life (a few per cluster, at most MAX_NODES), so a
 * command's callback never outlives the node it was sent to. The slot map
 * (which node holds a key in a cluster) is redis_conn_slots.c.
 */
#include "svc/redis_conn_int.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/list.h"
#include "core/log.h"
#include "core/timer.h"
#include "net/server.h"

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_why(struct redis_conn *rc, const char *host, int port, const char *what) {
    int v6 = strchr(host, ':') != NULL;
    snprintf(rc->why, sizeof rc->why, "redis %s%.100s%s:%d: %.140s", v6 ? "[" : "", host,
             v6 ? "]" : "", port, what);
}

static void link_init(struct link *l, struct redis_conn *rc, struct rnode *n, int sub);

struct rnode *rconn_node_get(struct redis_conn *rc, const char *host, int port) {
    for (size_t i = 0; i < rc->nnodes; i++)
        if (rc->nodes[i]->port == port && strcmp(rc->nodes[i]->host, host) == 0)
            return rc->nodes[i];
    if (rc->nnodes == MAX_NODES || strlen(host) >= sizeof rc->nodes[0]->host)
        return NULL;
    struct rnode *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    strcpy(n->host, host);
    n->port = port;
    link_init(&n->cmd, rc, n, 0);
    rc->nodes[rc->nnodes++] = n;
    return n;
}

size_t rconn_node_index(const struct redis_conn *rc, const struct rnode *n) {
    for (size_t i = 0; i < rc->nnodes; i++)
        if (rc->nodes[i] == n)
            return i;
    return NO_NODE;
}

static void flush_parked(struct link *l, const char *why);

static void link_close(struct link *l) {
    redisAsyncContext *ac = l->ac;
    struct redis_conn *rc = l->rc;
    l->authed = 0;
    timer_cancel(&rc->srv->wheel, &l->tick_t);
    if (ac) {
        l->ac = NULL;
        ac->data = NULL;    /* its callbacks (disconnect) now ignore it */
        redisAsyncFree(ac); /* runs the callbacks in flight with NULL; deferred inside its own */
    }
    if (!list_empty(&l->parked))
        flush_parked(l, rc->why[0] ? rc->why : "connection closed");
}

void rconn_schedule_retry(struct redis_conn *rc, uint64_t ms) {
    if (!timer_pending(&rc->retry_t))
        server_timer_in(rc->srv, &rc->retry_t, ms);
}

void rconn_backoff_grow(struct redis_conn *rc) {
    rc->backoff_ms *= 2;
    if (rc->backoff_ms > BACKOFF_MAX_MS)
        rc->backoff_ms = BACKOFF_MAX_MS;
}

/* Everything goes; it comes back after the backoff (the map is asked again). */
static void down_all(struct redis_conn *rc) {
    int was_up = rc->ready;
    rc->ready = 0;
    rc->up_called = 0;
    rc->epoch++;
    rc->asking = 0;
    rc->boot = NULL;
    rc->mode = M_UNKNOWN;
    for (size_t i = 0; i < rc->nnodes; i++) {
        rc->nodes[i]->master = 0;
        link_close(&rc->nodes[i]->cmd);
    }
    link_close(&rc->sub);
    memset(rc->slots, NO_NODE, sizeof rc->slots);
    if (was_up)
        log_warnx("%s; reconnecting", rc->why);
    else if (rc->backoff_ms == BACKOFF_MIN_MS) /* the first failure of a run (issue 13) */
        log_warnx("%s; the connections of channel %s retry with backoff (%d ms, doubling up "
                  "to %d ms; later failures are logged at debug)", rc->why, rc->channel,
                  BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    else
        log_debug("%s; retrying in %llu ms", rc->why, (unsigned long long)rc->backoff_ms);
    timer_cancel(&rc->srv->wheel, &rc->retry_t);
    server_timer_in(rc->srv, &rc->retry_t, was_up ? 0 : rc->backoff_ms);
    if (!was_up) {
        rc->boot_next++; /* a candidate that did not come up: try the next one */
        rconn_backoff_grow(rc);
    }
    if (was_up && rc->hooks.on_down)
        rc->hooks.on_down(rc->hooks.ctx);
}

/* Link l failed (what: why). Standalone, or while finding the map: everything goes. In a
 * cluster: that link goes and the map is asked again (after the backoff). */
void rconn_link_failed(struct link *l, const char *what) {
    struct redis_conn *rc = l->rc;
    struct rnode *n = l->node;
    set_why(rc, n ? n->host : "?", n ? n->port : 0, what);
    if (rc->mode != M_CLUSTER || (!l->sub && n == rc->boot)) {
        down_all(rc);
        return;
    }
    int mattered = l->sub || (n && n->master);
    link_close(l);
    if (!mattered)
        return;
    log_warnx("%s; asking the cluster for its map again", rc->why);
    rconn_schedule_retry(rc, rc->backoff_ms);
    rconn_backoff_grow(rc);
}

void redis_conn_fail(struct redis_conn *rc, const char *why) {
    snprintf(rc->why, sizeof rc->why, "%s", why);
    down_all(rc);
}

/* The retry timer: boot from a seed (or a known node) after a full down, or ask a
 * connected node of the cluster for the map. */
static void on_retry(struct timer *t) {
    struct redis_conn *rc = container_of(t, struct redis_conn, retry_t);
    if (rc->mode == M_CLUSTER) {
        if (rc->asking)
            return;
        for (size_t i = 0; i < rc->nnodes; i++) {
            if (rc->nodes[i]->cmd.authed) {
                rconn_send_slots(rc->nodes[i]);
                return;
            }
        }
        set_why(rc, "cluster", 0, "no node of the cluster answers");
        down_all(rc);
        return;
    }
    const struct config *cfg = rc->srv->cfg;
    size_t cand = rc->boot_next % (cfg->nredis_nodes + rc->nnodes);
    struct rnode *n = cand < cfg->nredis_nodes
                          ? rconn_node_get(rc, cfg->redis_nodes[cand].host, cfg->redis_nodes[cand].port)
                          : rc->nodes[cand - cfg->nredis_nodes];
    if (!n) {
        set_why(rc, cfg->redis_nodes[0].host, cfg->redis_nodes[0].port, "out of memory");
        down_all(rc);
        return;
    }
    rc->boot = n;
    rconn_link_connect(&n->cmd, n);
}

static void on_tick(struct timer *t) {
    struct link *l = container_of(t, struct link, tick_t);
    struct redis_conn *rc = l->rc;
    const struct config *cfg = rc->srv->cfg;
    uint64_t now = clock_now_ms();
    char what[96];
    if (l->ac && !l->authed && now - l->started_ms >= cfg->redis_connect_timeout_ms) {
        snprintf(what, sizeof what, "no answer within connect_timeout (%llu ms)",
                 (unsigned long long)cfg->redis_connect_timeout_ms);
        rconn_link_failed(l, what);
        return;
    }
    struct list *first = list_first(&l->inflight);
    if (first) {
        /* The oldest command has waited command_timeout since it was sent and since the last
         * answer: a pipelined connection whose answers keep coming (behind a WAIT, which
         * answers within command_timeout / 2) is alive, one that answers nothing is not. */
        struct pending *p = container_of(first, struct pending, node);
        uint64_t since = p->sent_ms > l->answered_ms ? p->sent_ms : l->answered_ms;
        if (now - since >= cfg->redis_command_timeout_ms) {
            snprintf(what, sizeof what, "no answer within command_timeout (%llu ms)",
                     (unsigned long long)cfg->redis_command_timeout_ms);
            rconn_link_failed(l, what);
            return;
        }
    }
    if (l->ac && (!l->authed || first))
        server_timer_in(rc->srv, &l->tick_t, TICK_MS);
}

static void arm_tick(struct link *l) {
    if (!timer_pending(&l->tick_t))
        server_timer_in(l->rc->srv, &l->tick_t, TICK_MS);
}

/* ---- commands ------------------------------------------------------------------------- */

static void on_reply(redisAsyncContext *ac, void *r, void *priv);

/* Send p on l (authed). 0 or -1 (p untouched). */
static int pending_send(struct link *l, struct pending *p) {
    if (redisAsyncFormattedCommand(l->ac, on_reply, p, p->cmd, p->len) != REDIS_OK)
        return -1;
    p->sent_ms = clock_now_ms();
    list_push(&l->inflight, &p->node);
    arm_tick(l);
    return 0;
}

static void pending_free(struct pending *p) {
    free(p->cmd);
    free(p);
}

/* The parked commands of l: sent (l authed), or answered NULL with why. */
static void flush_parked(struct link *l, const char *why) {
    struct list *it;
    while ((it = list_first(&l->parked))) {
        struct pending *p = container_of(it, struct pending, node);
        list_unlink(&p->node);
        if (!why && l->ac && l->authed) {
            const char *argv[] = {"ASKING"};
            if ((!p->asking ||
                 redisAsyncCommandArgv(l->ac, NULL, NULL, 1, argv, NULL) == REDIS_OK) &&
                pending_send(l, p) == 0)
                continue;
        }
        p->fn(p->arg, NULL, why ? why : "cannot send the redirected command");
        pending_free(p);
    }
}

static void ignore_reply(void *arg, struct redisReply *r, const char *why) {
    (void)arg;
    (void)r;
    (void)why;
}

int rconn_send_argv(struct link *l, redis_reply_fn fn, void *arg, int argc, const char **argv,
                    const size_t *lens) {
    struct pending *p = calloc(1, sizeof *p);
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (!p || len < 0) {
        free(p);
        free(cmd);
        return -1;
    }
    p->rc = l->rc;
    p->fn = fn;
    p->arg = arg;
    p->cmd = cmd;
    p->len = (size_t)len;
    list_init(&p->node);
    if (pending_send(l, p) < 0) {
        pending_free(p);
        return -1;
    }
    if (l->rc->mode != M_CLUSTER) { /* no redirection to come: do not hold a copy */
        free(p->cmd);
        p->cmd = NULL;
    }
    return 0;
}

/* A MOVED or ASK answer: resend p where it says (0), or -1 (answer the error). */
static int redirect(struct redis_conn *rc, struct pending *p, const redisReply *r) {
    struct redis_redirect to;
    if (rc->mode != M_CLUSTER || !p->cmd || p->redirects >= MAX_REDIRECTS ||
        redis_parse_redirect(r->str, r->len, &to) < 0)
        return -1;
    struct rnode *n = rconn_node_get(rc, to.host, to.port);
    if (!n)
        return -1;
    if (!to.ask) {
        /* The slot moved (resharding, failover): route it there now, and learn the rest
         * (which nodes are masters now: the map's answer, not this one, runs on_up). */
        rc->slots[to.slot] = (unsigned char)rconn_node_index(rc, n);
        rconn_schedule_retry(rc, 0);
    }
    p->redirects++;
    if (!n->cmd.authed) {
        /* A master not met yet (a promoted replica, a new node): the command waits for the
         * connection (connect_timeout bounds it), then goes. */
        rconn_link_connect(&n->cmd, n);
        if (!n->cmd.ac)
            return -1;
        p->asking = to.ask;
        list_push(&n->cmd.parked, &p->node);
        return 0;
    }
    if (to.ask) {
        const char *argv[] = {"ASKING"};
        if (rconn_send_argv(&n->cmd, ignore_reply, NULL, 1, argv, NULL) < 0)
            return -1;
    }
    return pending_send(&n->cmd, p);
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv) {
    struct pending *p = priv;
    struct redis_conn *rc = p->rc;
    redisReply *reply = r;
    list_unlink(&p->node);
    struct link *l = ac->data;
    if (reply && l)
        l->answered_ms = clock_now_ms();
    if (reply && reply->type == REDIS_REPLY_ERROR && redirect(rc, p, reply) == 0)
        return;
    p->fn(p->arg, reply,
          reply           ? NULL
          : ac->errstr[0] ? ac->errstr
          : rc->why[0]    ? rc->why
                          : "connection closed");
    pending_free(p);
}

static struct link *route(struct redis_conn *rc, const char *key, size_t keylen) {
    if (key) {
        unsigned i = rc->slots[redis_key_slot(key, keylen)];
        return i == NO_NODE ? NULL : &rc->nodes[i]->cmd;
    }
    for (size_t i = 0; i < rc->nnodes; i++)
        if (rc->nodes[i]->master && rc->nodes[i]->cmd.authed)
            return &rc->nodes[i]->cmd;
    return NULL;
}

int redis_conn_command(struct redis_conn *rc, const char *key, size_t keylen, redis_reply_fn fn,
                       void *arg, int argc, const char **argv, const size_t *lens) {
    if (!rc->up_called)
        return -1;
    struct link *l = route(rc, key, keylen);
    if (!l || !l->ac || !l->authed)
        return -1;
    return rconn_send_argv(l, fn, arg, argc, argv, lens);
}

int redis_conn_command_all(struct redis_conn *rc, redis_reply_fn fn, void *arg, int argc,
                           const char **argv, const size_t *lens) {
    if (!rc->up_called)
        return -1;
    int n = 0;
    for (size_t i = 0; i < rc->nnodes; i++)
        if (rc->nodes[i]->master && !rc->nodes[i]->cmd.authed)
            return -1;
    for (size_t i = 0; i < rc->nnodes; i++)
        if (rc->nodes[i]->master && rconn_send_argv(&rc->nodes[i]->cmd, fn, arg, argc, argv, lens) == 0)
            n++;
    return n > 0 ? n : -1;
}

/* ---- connections -------------------------------------------------------------------- */

static void link_authed(struct link *l) {
    struct redis_conn *rc = l->rc;
    l->authed = 1;
    if (l->sub) {
        rc->sub_fresh = 1;
    } else {
        l->node->fresh = 1;
        flush_parked(l, NULL); /* commands redirected here while it connected */
        if (rc->mode == M_UNKNOWN && l->node == rc->boot) {
            rconn_send_slots(l->node); /* standalone or cluster? */
            return;
        }
    }
    if (!list_first(&l->inflight))
        timer_cancel(&rc->srv->wheel, &l->tick_t);
    rconn_check_up(rc);
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *priv) {
    struct link *l = priv;
    redisReply *reply = r;
    if (!reply || ac->data != l || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return;
    const redisReply *kind = reply->element[0];
    if (kind->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(kind->str, "subscribe") == 0) {
        link_authed(l);
    } else if (strcmp(kind->str, "message") == 0 && reply->element[2]->type == REDIS_REPLY_STRING) {
        struct redis_conn *rc = l->rc;
        if (rc->hooks.on_message)
            rc->hooks.on_message(rc->hooks.ctx, reply->element[2]->str, reply->element[2]->len);
    }
}

static void subscribe(struct link *l) {
    const char *argv[] = {"SUBSCRIBE", l->rc->channel};
    redisAsyncCommandArgv(l->ac, on_sub_reply, l, 2, argv, NULL);
}

static void on_auth(redisAsyncContext *ac, void *r, void *priv) {
    struct link *l = priv;
    redisReply *reply = r;
    if (!reply || ac->data != l)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        char what[200];
        snprintf(what, sizeof what, "AUTH refused: %.150s", reply->str);
        set_why(l->rc, l->node->host, l->node->port, what);
        down_all(l->rc);
        return;
    }
    if (l->sub)
        subscribe(l);
    else
        link_authed(l);
}

static void on_connected(const redisAsyncContext *ac, int status) {
    struct link *l = ac->data;
    if (!l)
        return;
    if (status != REDIS_OK) {
        l->ac = NULL; /* hiredis frees it after this callback */
        rconn_link_failed(l, ac->errstr[0] ? ac->errstr : "cannot connect");
        return;
    }
    const struct config *cfg = l->rc->srv->cfg;
    if (cfg->redis_password) {
        const char *argv[] = {"AUTH", cfg->redis_user ? cfg->redis_user : cfg->redis_password,
                              cfg->redis_password};
        redisAsyncCommandArgv(l->ac, on_auth, l, cfg->redis_user ? 3 : 2, argv, NULL);
    } else if (l->sub) {
        subscribe(l);
    } else {
        link_authed(l);
    }
}

static void on_disconnected(const redisAsyncContext *ac, int status) {
    struct link *l = ac->data;
    (void)status;
    if (!l)
        return;
    l->ac = NULL; /* hiredis frees it after this callback */
    rconn_link_failed(l, ac->errstr[0] ? ac->errstr : "connection closed by the server");
}

static void link_init(struct link *l, struct redis_conn *rc, struct rnode *n, int sub) {
    l->rc = rc;
    l->node = n;
    l->sub = sub;
    list_init(&l->inflight);
    list_init(&l->parked);
    timer_init(&l->tick_t, on_tick);
}

void rconn_link_connect(struct link *l, struct rnode *n) {
    struct redis_conn *rc = l->rc;
    if (l->ac)
        return;
    l->node = n;
    redisAsyncContext *ac = redisAsyncConnect(n->host, n->port);
    if (!ac || ac->err) {
        char what[160];
        snprintf(what, sizeof what, "%s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        rconn_link_failed(l, what);
        return;
    }
    if (redisLibeventAttach(ac, rc->srv->base) != REDIS_OK) {
        redisAsyncFree(ac);
        rconn_link_failed(l, "cannot attach to the event loop");
        return;
    }
    ac->data = l;
    l->ac = ac;
    l->started_ms = clock_now_ms();
    redisAsyncSetConnectCallback(ac, on_connected);
    redisAsyncSetDisconnectCallback(ac, on_disconnected);
    arm_tick(l);
}

/* ---- life ------------------------------------------------------------------------------ */

struct redis_conn *redis_conn_new(struct server *s, const char *channel,
                                  const struct redis_conn_hooks *hooks) {
    struct redis_conn *rc = calloc(1, sizeof *rc);
    if (!rc || !(rc->channel = strdup(channel))) {
        free(rc);
        log_error("out of memory for the redis connection");
        return NULL;
    }
    rc->srv = s;
    rc->hooks = *hooks;
    link_init(&rc->sub, rc, NULL, 1);
    rc->backoff_ms = BACKOFF_MIN_MS;
    memset(rc->slots, NO_NODE, sizeof rc->slots);
    timer_init(&rc->retry_t, on_retry);
    const struct config_redis_node *n = &s->cfg->redis_nodes[0];
    set_why(rc, n->host, n->port, "connecting");
    return rc;
}

void redis_conn_start(struct redis_conn *rc) {
    on_retry(&rc->retry_t);
}

void redis_conn_free(struct redis_conn *rc) {
    if (!rc)
        return;
    timer_cancel(&rc->srv->wheel, &rc->retry_t);
    rc->hooks.on_down = NULL;
    rc->mode = M_UNKNOWN;
    for (size_t i = 0; i < rc->nnodes; i++)
        link_close(&rc->nodes[i]->cmd); /* runs the callbacks in flight with NULL */
    link_close(&rc->sub);
    for (size_t i = 0; i < rc->nnodes; i++)
        free(rc->nodes[i]);
    free(rc->channel);
    free(rc);
}

void redis_conn_ready(struct redis_conn *rc) {
    if (!rc->up_called)
        return; /* it went down again meanwhile */
    int was = rc->ready;
    rc->ready = 1;
    if (!redis_conn_degraded(rc)) {
        rc->backoff_ms = BACKOFF_MIN_MS;
        rc->why[0] = '\0';
    }
    if (rc->mode == M_CLUSTER)
        log_info("redis cluster: %zu masters connected%s", redis_conn_masters(rc),
                 was ? " (map changed)" : "");
    else if (!was)
        log_info("redis %s:%d: connected", rc->sub.node->host, rc->sub.node->port);
}

int redis_conn_up(const struct redis_conn *rc) {
    return rc->ready;
}

int redis_conn_degraded(const struct redis_conn *rc) {
    if (!rc->ready || !rc->sub.authed)
        return 1;
    for (size_t i = 0; i < rc->nnodes; i++)
        if (rc->nodes[i]->master && !rc->nodes[i]->cmd.authed)
            return 1;
    for (size_t s = 0; s < REDIS_SLOTS; s++)
        if (rc->slots[s] == NO_NODE)
            return 1;
    return 0;
}

unsigned redis_conn_epoch(const struct redis_conn *rc) {
    return rc->epoch;
}

size_t redis_conn_masters(const struct redis_conn *rc) {
    size_t n = 0;
    for (size_t i = 0; i < rc->nnodes; i++)
        n += rc->nodes[i]->master != 0;
    return n;
}

const char *redis_conn_why(const struct redis_conn *rc) {
    return rc->why[0] ? rc->why : "redis: not ready";
}
