/*
 * config_diff: after a reload, one log line per setting that changed
 * (issue 16), so an operator sees what a SIGHUP did: "reload: [server]
 * max_body: 1048576 -> 2097152". It walks the key table (config_key_info),
 * as config_dump does; tokens are compared, never printed.
 */
#include "core/config.h"
#include "core/log.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int same_str(const char *a, const char *b) {
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* One value of key k in the struct at base, as text, for the reload lines. */
static const char *key_text(const struct config *c, const void *base,
                            const struct config_key_info *k, char *out, size_t len) {
    const char *slot = (const char *)base + k->off;
    switch (k->kind) {
    case CONFIG_KIND_COUNT: case CONFIG_KIND_SIZE: case CONFIG_KIND_DURATION: case CONFIG_KIND_TOPN:
        snprintf(out, len, "%llu%s", (unsigned long long)*(const uint64_t *)slot,
                 k->kind == CONFIG_KIND_DURATION ? "ms" : "");
        return out;
    case CONFIG_KIND_ENUM:
        return k->names[*(const int *)slot];
    case CONFIG_KIND_LISTEN: {
        int tls = strcmp(k->section, "tls") == 0;
        size_t n = tls ? c->ntls_listen : c->nlisten, at = 0;
        out[0] = '\0';
        for (size_t i = 0; i < n && at < len; i++)
            at += (size_t)snprintf(out + at, len - at, "%s%s", i ? " " : "",
                                   (tls ? c->tls_listen : c->listen)[i].text);
        return out;
    }
    case CONFIG_KIND_TOKEN: case CONFIG_KIND_TOKEN_FILE:
        return *(char *const *)slot ? "(secret)" : "(none)"; /* compared, never printed */
    default: {
        const char *v = *(char *const *)slot;
        return v ? v : "(none)";
    }
    }
}

/* After a reload, one line per key that changed (issue 16): what an operator did. */
void config_log_changes(const struct config *old, const struct config *nc) {
    struct config_key_info k;
    char a[256], b[256];
    unsigned changed = 0;
    for (size_t i = 0; config_key_info(i, &k) == 0; i++) {
        if (k.per_queue)
            continue;
        const char *x = key_text(old, old, &k, a, sizeof a), *y = key_text(nc, nc, &k, b, sizeof b);
        int secret = k.kind == CONFIG_KIND_TOKEN || k.kind == CONFIG_KIND_TOKEN_FILE;
        if (secret) {
            const char *p = *(char *const *)((const char *)old + k.off);
            const char *q = *(char *const *)((const char *)nc + k.off);
            if (same_str(p, q))
                continue;
        } else if (strcmp(x, y) == 0) {
            continue;
        }
        changed++;
        log_info("reload: [%s] %s: %s -> %s", k.section, k.name, x, secret ? "(changed)" : y);
    }
    for (size_t i = 0; i < nc->nqueues; i++) {
        const struct config_queue *q = &nc->queues[i], *was = NULL;
        for (size_t j = 0; j < old->nqueues && !was; j++)
            if (strcmp(old->queues[j].name, q->name) == 0)
                was = &old->queues[j];
        if (!was) {
            changed++;
            log_info("reload: [queue %s] added", q->name);
            continue;
        }
        for (size_t j = 0; config_key_info(j, &k) == 0; j++) {
            if (!k.per_queue)
                continue;
            const char *x = key_text(old, was, &k, a, sizeof a), *y = key_text(nc, q, &k, b, sizeof b);
            if (strcmp(x, y) != 0) {
                changed++;
                log_info("reload: [queue %s] %s: %s -> %s", q->name, k.name, x, y);
            }
        }
    }
    for (size_t j = 0; j < old->nqueues; j++) {
        int kept = 0;
        for (size_t i = 0; i < nc->nqueues && !kept; i++)
            kept = strcmp(old->queues[j].name, nc->queues[i].name) == 0;
        if (!kept) {
            changed++;
            log_info("reload: [queue %s] removed from the file", old->queues[j].name);
        }
    }
    if (!changed)
        log_info("reload: no setting changed");
}
