/*
 * config_check: the checks that need the whole file, run once after its
 * last line (config_check): [redis] as a whole (nodes parsed, the password
 * read from password_file, the prefix checked, the local engine's limits
 * noted as ignored), [tls] cert and key when [tls] listen is set, and the
 * limits that depend on each other (loopback_reserve below
 * max_connections; a default max_uri shrinks to a smaller
 * max_header_bytes, an explicit one above it is an error). Messages point
 * at the section or key line. Reads only password_file.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "core/config.h"
#include "core/config_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* [redis] as a whole: nodes parsed, the password read, the prefix checked. */
static int finish_redis(struct parser *p) {
    struct config *c = p->c;
    snprintf(p->secname, sizeof p->secname, "redis");
    p->line = p->sec_line[SEC_REDIS];
    int ki = config_find_key(SEC_REDIS, "nodes");
    const char *text = c->redis_nodes_text ? c->redis_nodes_text : "127.0.0.1:6379";
    if (p->key_line[ki])
        p->line = p->key_line[ki];
    c->nredis_nodes = 0;
    for (const char *s = text; *s;) {
        while (*s == ',' || is_space(*s))
            s++;
        if (!*s)
            break;
        size_t n = strcspn(s, ", \t");
        char one[300];
        if (c->nredis_nodes == CONFIG_MAX_REDIS_NODES)
            return key_fail(p, &config_keys[ki], "too many nodes; at most %d",
                            CONFIG_MAX_REDIS_NODES);
        if (n >= sizeof one || (memcpy(one, s, n), one[n] = '\0',
                                config_parse_redis_node(one, &c->redis_nodes[c->nredis_nodes]) < 0))
            return key_fail(p, &config_keys[ki], "expected HOST:PORT[, HOST:PORT...], got '%.*s'",
                            (int)(n > 200 ? 200 : n), s);
        c->nredis_nodes++;
        s += n;
    }
    if (c->nredis_nodes == 0)
        return key_fail(p, &config_keys[ki], "expected at least one HOST:PORT");
    int pi = config_find_key(SEC_REDIS, "password"),
        fi = config_find_key(SEC_REDIS, "password_file");
    if (c->redis_password && c->redis_password_file) {
        p->line = p->key_line[fi];
        return key_fail(p, &config_keys[fi],
                        "password and password_file cannot both be set "
                        "(password is on line %d)",
                        p->key_line[pi]);
    }
    if (c->redis_password_file) {
        p->line = p->key_line[fi];
        char *line = NULL;
        size_t cap = 0;
        FILE *f = fopen(c->redis_password_file, "re");
        if (!f)
            return key_fail(p, &config_keys[fi], "cannot read %s: %s", c->redis_password_file,
                            strerror(errno));
        ssize_t n = getline(&line, &cap, f);
        fclose(f);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n <= 0) {
            free(line);
            return key_fail(p, &config_keys[fi],
                            "%s is empty; expected the password on its first line",
                            c->redis_password_file);
        }
        c->redis_password = line;
    }
    /* The local engine's limits do not apply on Redis (its maxmemory is the limit): noted, not
     * refused, so one file can switch backends; -t and the start say so (issue 13). */
    static const struct { int sec; const char *key, *name; } local_only[] = {
        {SEC_QUEUES, "mem_limit", "[queues] mem_limit"},
        {SEC_TIMERS, "max_timers", "[timers] max_timers"},
    };
    c->redis_ignored[0] = '\0';
    for (size_t i = 0; i < sizeof local_only / sizeof local_only[0]; i++) {
        int line = p->key_line[config_find_key(local_only[i].sec, local_only[i].key)];
        size_t used = strlen(c->redis_ignored);
        if (line)
            snprintf(c->redis_ignored + used, sizeof c->redis_ignored - used, "%s%s (line %d)",
                     used ? ", " : "", local_only[i].name, line);
    }
    int xi = config_find_key(SEC_REDIS, "prefix");
    if (!c->redis_prefix && !(c->redis_prefix = strdup("awaitd:")))
        return key_fail(p, &config_keys[xi], "out of memory");
    size_t pl = strlen(c->redis_prefix);
    if (pl > 64 || strpbrk(c->redis_prefix, "{} \t")) {
        p->line = p->key_line[xi];
        return key_fail(p, &config_keys[xi],
                        "expected at most 64 characters without '{', '}' or "
                        "spaces (it goes inside the keys' hash tag), got '%s'",
                        c->redis_prefix);
    }
    return 0;
}

/* Checks that need the whole file; their messages point at the section or key line. */
int config_check(struct parser *p) {
    struct config *c = p->c;
    if (c->store_backend == STORE_BACKEND_REDIS && finish_redis(p) < 0)
        return -1;
    if (c->ntls_listen > 0 && (!c->tls_cert || !c->tls_key)) {
        p->line = p->sec_line[SEC_TLS];
        snprintf(p->secname, sizeof p->secname, "tls");
        return key_fail(p, &config_keys[config_find_key(SEC_TLS, c->tls_cert ? "key" : "cert")],
                        "missing; required when [tls] listen is set (a PEM file path)");
    }
    int li = config_find_key(SEC_SERVER, "loopback_reserve");
    if (c->loopback_reserve >= c->max_connections) {
        if (!p->key_line[li]) {
            c->loopback_reserve = 0; /* only the default was too big: a tiny max_connections */
        } else {
            p->line = p->key_line[li];
            snprintf(p->secname, sizeof p->secname, "server");
            return key_fail(p, &config_keys[li],
                            "%llu leaves no connection for other clients; it must be "
                            "below max_connections (%llu)",
                            (unsigned long long)c->loopback_reserve,
                            (unsigned long long)c->max_connections);
        }
    }
    int ui = config_find_key(SEC_SERVER, "max_uri");
    if (c->max_uri > c->max_header_bytes) {
        char a[32], b[32];
        if (!p->key_line[ui]) {
            c->max_uri = c->max_header_bytes; /* only the default was too big */
        } else {
            p->line = p->key_line[ui];
            snprintf(p->secname, sizeof p->secname, "server");
            return key_fail(p, &config_keys[ui], "%s is larger than max_header_bytes (%s)",
                            config_fmt_unit(a, sizeof a, c->max_uri, config_size_units),
                            config_fmt_unit(b, sizeof b, c->max_header_bytes, config_size_units));
        }
    }
    if (c->nlisten == 0) {
        config_add_default_listen(c);
        for (size_t i = 0; i < c->ntls_listen; i++)
            if (same_addr(&c->tls_listen[i], &c->listen[0]))
                return fail(p, p->listen_line[1][i],
                            "[tls] listen: %s is also the default [server] listen address; "
                            "set [server] listen",
                            c->tls_listen[i].text);
    }
    return 0;
}
