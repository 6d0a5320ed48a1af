/*
 * redis_conn: see redis_conn.h. Deadlines (connect, command, backoff) are
 * wheel timers, like every other deadline of the daemon.
 */
#include "svc/redis_conn.h"

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

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define TICK_MS 100 /* how often command ages are checked while commands are in flight */

struct link {
    struct redis_conn *rc;
    redisAsyncContext *ac; /* NULL when closed */
    int sub;               /* the subscriber connection */
    int authed;            /* connected and authenticated (and subscribed, for sub) */
};

/* A command in flight, oldest first (the command connection answers in order). */
struct pending {
    struct redis_conn *rc;
    redis_reply_fn fn;
    void *arg;
    uint64_t sent_ms;
    struct list node;
};

struct redis_conn {
    struct server *srv;
    struct redis_conn_hooks hooks;
    char *channel;
    struct link cmd, sub;
    size_t node;         /* the seed node tried now */
    int up_called;       /* on_up ran for this connection */
    int ready;           /* the owner said redis_conn_ready() */
    int retry_scheduled;
    uint64_t backoff_ms;
    struct timer connect_t, retry_t, tick_t;
    struct list inflight;
    char why[256];
};

static const struct config_redis_node *node_of(const struct redis_conn *rc) {
    return &rc->srv->cfg->redis_nodes[rc->node % rc->srv->cfg->nredis_nodes];
}

static void set_why(struct redis_conn *rc, const char *what) {
    const struct config_redis_node *n = node_of(rc);
    snprintf(rc->why, sizeof rc->why, "redis %s%s%s:%d: %s", strchr(n->host, ':') ? "[" : "",
             n->host, strchr(n->host, ':') ? "]" : "", n->port, what);
}

static void link_connect(struct link *l);

static void link_close(struct link *l) {
    redisAsyncContext *ac = l->ac;
    l->authed = 0;
    if (!ac)
        return;
    l->ac = NULL;
    ac->data = NULL; /* its callbacks (disconnect) now ignore it */
    redisAsyncFree(ac); /* deferred by hiredis when inside one of its callbacks */
}

/* Both connections go; they come back after the backoff. */
static void conn_down(struct redis_conn *rc, const char *what) {
    int was_up = rc->ready;
    if (what)
        set_why(rc, what);
    rc->ready = 0;
    rc->up_called = 0;
    timer_cancel(&rc->srv->wheel, &rc->connect_t);
    timer_cancel(&rc->srv->wheel, &rc->tick_t);
    link_close(&rc->cmd);
    link_close(&rc->sub);
    if (was_up)
        log_warnx("%s; reconnecting", rc->why);
    else
        log_debug("%s; retrying in %llu ms", rc->why, (unsigned long long)rc->backoff_ms);
    if (!was_up)
        rc->node++; /* a seed that did not come up: try the next one */
    if (!rc->retry_scheduled) {
        rc->retry_scheduled = 1;
        server_timer_in(rc->srv, &rc->retry_t, was_up ? 0 : rc->backoff_ms);
        if (!was_up) {
            rc->backoff_ms *= 2;
            if (rc->backoff_ms > BACKOFF_MAX_MS)
                rc->backoff_ms = BACKOFF_MAX_MS;
        }
    }
    if (was_up && rc->hooks.on_down)
        rc->hooks.on_down(rc->hooks.ctx);
}

void redis_conn_fail(struct redis_conn *rc, const char *why) {
    conn_down(rc, why);
}

static void on_retry(struct timer *t) {
    struct redis_conn *rc = container_of(t, struct redis_conn, retry_t);
    rc->retry_scheduled = 0;
    link_connect(&rc->cmd);
    link_connect(&rc->sub);
}

static void on_connect_timeout(struct timer *t) {
    struct redis_conn *rc = container_of(t, struct redis_conn, connect_t);
    char what[96];
    snprintf(what, sizeof what, "no answer within connect_timeout (%llu ms)",
             (unsigned long long)rc->srv->cfg->redis_connect_timeout_ms);
    conn_down(rc, what);
}

static void on_tick(struct timer *t) {
    struct redis_conn *rc = container_of(t, struct redis_conn, tick_t);
    struct list *n = list_first(&rc->inflight);
    if (!n)
        return;
    struct pending *p = container_of(n, struct pending, node);
    uint64_t limit = rc->srv->cfg->redis_command_timeout_ms;
    if (clock_now_ms() - p->sent_ms >= limit) {
        char what[96];
        snprintf(what, sizeof what, "no answer within command_timeout (%llu ms)",
                 (unsigned long long)limit);
        conn_down(rc, what);
        return;
    }
    server_timer_in(rc->srv, &rc->tick_t, TICK_MS);
}

static void link_authed(struct link *l) {
    struct redis_conn *rc = l->rc;
    l->authed = 1;
    if (rc->cmd.authed && rc->sub.authed && !rc->up_called) {
        timer_cancel(&rc->srv->wheel, &rc->connect_t);
        rc->up_called = 1;
        if (rc->hooks.on_up)
            rc->hooks.on_up(rc->hooks.ctx);
    }
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

static void on_auth(redisAsyncContext *ac, void *r, void *priv) {
    struct link *l = priv;
    redisReply *reply = r;
    if (!reply || ac->data != l)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        char what[200];
        snprintf(what, sizeof what, "AUTH refused: %.150s", reply->str);
        conn_down(l->rc, what);
        return;
    }
    if (l->sub) {
        const char *argv[] = {"SUBSCRIBE", l->rc->channel};
        redisAsyncCommandArgv(ac, on_sub_reply, l, 2, argv, NULL);
    } else {
        link_authed(l);
    }
}

static void on_connected(const redisAsyncContext *ac, int status) {
    struct link *l = ac->data;
    if (!l)
        return;
    if (status != REDIS_OK) {
        l->ac = NULL; /* hiredis frees it after this callback */
        conn_down(l->rc, ac->errstr[0] ? ac->errstr : "cannot connect");
        return;
    }
    const struct config *cfg = l->rc->srv->cfg;
    if (cfg->redis_password) {
        const char *argv[] = {"AUTH", cfg->redis_user ? cfg->redis_user : cfg->redis_password,
                              cfg->redis_password};
        redisAsyncCommandArgv(l->ac, on_auth, l, cfg->redis_user ? 3 : 2, argv, NULL);
    } else if (l->sub) {
        const char *argv[] = {"SUBSCRIBE", l->rc->channel};
        redisAsyncCommandArgv(l->ac, on_sub_reply, l, 2, argv, NULL);
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
    conn_down(l->rc, ac->errstr[0] ? ac->errstr : "connection closed by the server");
}

static void link_connect(struct link *l) {
    struct redis_conn *rc = l->rc;
    if (l->ac)
        return;
    const struct config_redis_node *n = node_of(rc);
    redisAsyncContext *ac = redisAsyncConnect(n->host, n->port);
    if (!ac || ac->err) {
        char what[160];
        snprintf(what, sizeof what, "%s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        conn_down(rc, what);
        return;
    }
    if (redisLibeventAttach(ac, rc->srv->base) != REDIS_OK) {
        redisAsyncFree(ac);
        conn_down(rc, "cannot attach to the event loop");
        return;
    }
    ac->data = l;
    l->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connected);
    redisAsyncSetDisconnectCallback(ac, on_disconnected);
    if (!timer_pending(&rc->connect_t))
        server_timer_in(rc->srv, &rc->connect_t, rc->srv->cfg->redis_connect_timeout_ms);
}

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
    rc->cmd.rc = rc->sub.rc = rc;
    rc->sub.sub = 1;
    rc->backoff_ms = BACKOFF_MIN_MS;
    list_init(&rc->inflight);
    timer_init(&rc->connect_t, on_connect_timeout);
    timer_init(&rc->retry_t, on_retry);
    timer_init(&rc->tick_t, on_tick);
    set_why(rc, "connecting");
    return rc;
}

void redis_conn_start(struct redis_conn *rc) {
    link_connect(&rc->cmd);
    link_connect(&rc->sub);
}

void redis_conn_free(struct redis_conn *rc) {
    if (!rc)
        return;
    struct timer_wheel *w = &rc->srv->wheel;
    timer_cancel(w, &rc->connect_t);
    timer_cancel(w, &rc->retry_t);
    timer_cancel(w, &rc->tick_t);
    rc->hooks.on_down = NULL;
    link_close(&rc->cmd); /* runs the callbacks in flight with NULL */
    link_close(&rc->sub);
    free(rc->channel);
    free(rc);
}

void redis_conn_ready(struct redis_conn *rc) {
    if (!rc->up_called)
        return; /* it went down again meanwhile */
    rc->ready = 1;
    rc->backoff_ms = BACKOFF_MIN_MS;
    rc->why[0] = '\0';
    const struct config_redis_node *n = node_of(rc);
    log_info("redis %s:%d: connected", n->host, n->port);
}

int redis_conn_up(const struct redis_conn *rc) {
    return rc->ready;
}

const char *redis_conn_why(const struct redis_conn *rc) {
    return rc->why[0] ? rc->why : "redis: not ready";
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv) {
    struct pending *p = priv;
    struct redis_conn *rc = p->rc;
    (void)ac;
    list_unlink(&p->node);
    p->fn(p->arg, r, r ? NULL : redis_conn_why(rc));
    free(p);
}

int redis_conn_command(struct redis_conn *rc, const char *key, size_t keylen, redis_reply_fn fn,
                       void *arg, int argc, const char **argv, const size_t *lens) {
    (void)key; /* standalone: one node; a cluster map would route by redis_key_slot(key) */
    (void)keylen;
    if (!rc->cmd.ac || !rc->up_called)
        return -1;
    struct pending *p = malloc(sizeof *p);
    if (!p)
        return -1;
    p->rc = rc;
    p->fn = fn;
    p->arg = arg;
    p->sent_ms = clock_now_ms();
    if (redisAsyncCommandArgv(rc->cmd.ac, on_reply, p, argc, argv, lens) != REDIS_OK) {
        free(p);
        return -1;
    }
    list_push(&rc->inflight, &p->node);
    if (!timer_pending(&rc->tick_t))
        server_timer_in(rc->srv, &rc->tick_t, TICK_MS);
    return 0;
}

/* ---- key slots ------------------------------------------------------------------------ */

static uint16_t crc16(const char *buf, size_t len) {
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int k = 0; k < 8; k++)
            crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned redis_key_slot(const char *key, size_t len) {
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open + 1 - key);
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) & 16383;
    }
    return crc16(key, len) & 16383;
}
