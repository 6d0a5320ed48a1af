/*
 * redis_lib: see redis_lib.h. A round is one command to every master (the
 * version check, then FUNCTION LOAD where needed); its answers count down,
 * and a round started under an older redis_conn_epoch() is moot.
 */
#include "svc/redis_lib.h"

#include "svc/redis_conn.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct round {
    struct redis_conn *rc;
    unsigned epoch;
    int refs, load, stale, lost;
    const char *version, *text;
    redis_lib_done_fn done;
    void *arg;
    char err[200];
};

static int round_send(struct round *r);

static void on_answer(void *arg, struct redisReply *reply, const char *why) {
    struct round *r = arg;
    (void)why;
    if (!reply) {
        r->lost = 1; /* the connection went; its return runs on_up again */
    } else if (reply->type == REDIS_REPLY_ERROR &&
               (!strncmp(reply->str, "READONLY", 8) || !strncmp(reply->str, "MOVED", 5))) {
        r->lost = 1; /* a master became a replica meanwhile: the new map runs on_up again */
    } else if (r->load && reply->type == REDIS_REPLY_ERROR) {
        snprintf(r->err, sizeof r->err, "FUNCTION LOAD of the awaitd library failed: %.150s",
                 reply->str);
    } else if (!r->load &&
               !(reply->type == REDIS_REPLY_STRING && strcmp(reply->str, r->version) == 0)) {
        r->stale = 1; /* absent ("Function not found") or another version */
    }
    if (--r->refs > 0)
        return;
    /* Every answer is in. The round is moot when on_up ran again (or the link went down). */
    if (r->lost || r->epoch != redis_conn_epoch(r->rc)) {
        free(r);
        return;
    }
    if (r->err[0]) {
        r->done(r->arg, 0, r->err);
    } else if (r->stale && !r->load) {
        r->load = 1;
        if (round_send(r) == 0)
            return; /* the same round goes on with the load */
        r->done(r->arg, 0, "cannot send FUNCTION LOAD");
    } else {
        r->done(r->arg, r->load, NULL);
    }
    free(r);
}

/* Send this round's command to every master: 0, or -1 (nothing sent). */
static int round_send(struct round *r) {
    const char *check[] = {"FCALL", "awaitd_version", "0"};
    const char *load[] = {"FUNCTION", "LOAD", "REPLACE", r->text};
    r->refs = 1 << 30; /* no answer can count down to 0 before every command is sent */
    int n = r->load ? redis_conn_command_all(r->rc, on_answer, r, 4, load, NULL)
                    : redis_conn_command_all(r->rc, on_answer, r, 3, check, NULL);
    if (n < 0)
        return -1;
    r->refs -= (1 << 30) - n; /* answers arrive from the loop, never inside the sends */
    return 0;
}

int redis_lib_ensure(struct redis_conn *rc, const char *version, const char *text,
                     redis_lib_done_fn done, void *arg) {
    struct round *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    r->rc = rc;
    r->epoch = redis_conn_epoch(rc);
    r->version = version;
    r->text = text;
    r->done = done;
    r->arg = arg;
    if (round_send(r) < 0) {
        free(r);
        return -1;
    }
    return 0;
}
