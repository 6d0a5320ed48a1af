/*
 * config_dump: awaitd -T, the effective configuration as a config file
 * (nginx -T). Every key of every section is printed with its value,
 * defaults included, by walking config.c's key table (config_key_info), so
 * a key added there is printed without an edit here. The output is itself
 * a valid config: awaitd -t accepts it and loads the same values.
 *
 * - Numbers are written in the largest unit that is exact: 1m, 75s, 50ms.
 * - Relative paths were resolved at load time, so paths print absolute.
 * - An unset optional key (a path or string with no value, [tls] listen
 *   with no address) prints as a comment: "# cert =  (not set)".
 * - A secret KEY that came from KEY_file (token / token_file, and the same
 *   pattern in any section) prints only KEY_file, as the file said; a
 *   secret written inline in the file prints as written (whoever can run
 *   -T on the file can read it).
 */
#include "core/config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct unit {
    const char *name;
    uint64_t mult;
};
/* Largest first, ending in a unit of 1: the first exact one is printed. */
static const struct unit size_units[] = {
    {"g", 1024ULL * 1024 * 1024}, {"m", 1024ULL * 1024}, {"k", 1024}, {"", 1}};
static const struct unit duration_units[] = {
    {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};

static void put_unit(FILE *f, uint64_t v, const struct unit *u) {
    if (v == 0) {
        fputs("0", f);
        return;
    }
    while (v % u->mult)
        u++;
    fprintf(f, "%llu%s", (unsigned long long)(v / u->mult), u->name);
}

/* A string value, quoted when the parser would otherwise trim or cut it. */
static void put_string(FILE *f, const char *s) {
    size_t n = strlen(s);
    bool quote = n == 0 || s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t' ||
                 s[0] == '"' || strpbrk(s, "#;") != NULL;
    /* A value holding both a '"' and something needing quotes cannot be
     * written in this syntax; it is printed as is (the parser has no escapes). */
    if (quote && !strchr(s, '"'))
        fprintf(f, "\"%s\"", s);
    else
        fputs(s, f);
}

/* Is "NAME_file" a key of the same section, and set? Then NAME came from it. */
static bool from_file(const void *base, const struct config_key_info *k) {
    struct config_key_info o;
    char want[96];
    snprintf(want, sizeof want, "%s_file", k->name);
    for (size_t i = 0; config_key_info(i, &o) == 0; i++)
        if (strcmp(o.section, k->section) == 0 && strcmp(o.name, want) == 0 &&
            (o.kind == CONFIG_KIND_TOKEN_FILE || o.kind == CONFIG_KIND_PATH))
            return *(char *const *)((const char *)base + o.off) != NULL;
    return false;
}

static void put_key(FILE *f, const struct config *c, const void *base,
                    const struct config_key_info *k) {
    const char *slot = (const char *)base + k->off;
    switch (k->kind) {
    case CONFIG_KIND_COUNT:
        if (strcmp(k->name, "workers") == 0 && *(const uint64_t *)slot == 0) {
            fprintf(f, "%s = auto\n", k->name);
            return;
        }
        fprintf(f, "%s = %llu\n", k->name, (unsigned long long)*(const uint64_t *)slot);
        return;
    case CONFIG_KIND_SIZE:
    case CONFIG_KIND_DURATION:
        fprintf(f, "%s = ", k->name);
        put_unit(f, *(const uint64_t *)slot,
                 k->kind == CONFIG_KIND_SIZE ? size_units : duration_units);
        fputc('\n', f);
        return;
    case CONFIG_KIND_TOPN: {
        uint64_t n = *(const uint64_t *)slot;
        if (n == 0 || n == CONFIG_PER_QUEUE_ALL)
            fprintf(f, "%s = %s\n", k->name, n ? "on" : "off");
        else
            fprintf(f, "%s = top %llu\n", k->name, (unsigned long long)n);
        return;
    }
    case CONFIG_KIND_ENUM: {
        int v = *(const int *)slot, n = 0;
        while (k->names && k->names[n])
            n++;
        if (v >= 0 && v < n)
            fprintf(f, "%s = %s\n", k->name, k->names[v]);
        else
            fprintf(f, "# %s = %d  (out of range)\n", k->name, v);
        return;
    }
    case CONFIG_KIND_LISTEN: {
        bool tls = strcmp(k->section, "tls") == 0;
        const struct config_listen *l = tls ? c->tls_listen : c->listen;
        size_t n = tls ? c->ntls_listen : c->nlisten;
        for (size_t i = 0; i < n; i++)
            fprintf(f, "%s = %s\n", k->name, l[i].text);
        if (n == 0)
            fprintf(f, "# %s =  (not set)\n", k->name);
        return;
    }
    case CONFIG_KIND_TOKEN:
    case CONFIG_KIND_PATH:
    case CONFIG_KIND_TOKEN_FILE:
    case CONFIG_KIND_STRING: {
        const char *s = *(char *const *)slot;
        if (s && k->kind != CONFIG_KIND_PATH && k->kind != CONFIG_KIND_TOKEN_FILE &&
            from_file(base, k))
            fprintf(f, "# %s =  (read from %s_file)\n", k->name, k->name);
        else if (!s)
            fprintf(f, "# %s =  (not set)\n", k->name);
        else {
            fprintf(f, "%s = ", k->name);
            put_string(f, s);
            fputc('\n', f);
        }
        return;
    }
    }
    fprintf(f, "# %s =  (a value of a kind this printer does not know)\n", k->name);
}

/* One section: every key of the table that belongs to it, in table order. */
static void put_section(FILE *f, const struct config *c, const char *section,
                        const struct config_queue *q) {
    struct config_key_info k;
    if (q)
        fprintf(f, "\n[queue %s]\n", q->name);
    else
        fprintf(f, "\n[%s]\n", section);
    for (size_t i = 0; config_key_info(i, &k) == 0; i++)
        if (strcmp(k.section, section) == 0)
            put_key(f, c, q ? (const void *)q : (const void *)c, &k);
}

void config_dump(const struct config *c, FILE *f) {
    struct config_key_info k, e;
    fprintf(f, "# awaitd -T: the effective configuration of %s\n"
               "# (every key with its value, defaults included; relative paths resolved)\n",
            c->path ? c->path : "(defaults)");
    /* Fixed sections in the order their first key appears in the table. */
    for (size_t i = 0; config_key_info(i, &k) == 0; i++) {
        bool seen = k.per_queue;
        for (size_t j = 0; !seen && j < i && config_key_info(j, &e) == 0; j++)
            seen = strcmp(e.section, k.section) == 0;
        if (!seen)
            put_section(f, c, k.section, NULL);
    }
    for (size_t i = 0; i < c->nqueues; i++)
        put_section(f, c, "queue", &c->queues[i]);
}
