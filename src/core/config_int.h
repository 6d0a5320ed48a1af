/*
 * config_int: what the config loader's files share (config.c, the key
 * table and a config's life; config_value.c, the value syntax;
 * config_parse.c, the lines of the file; config_check.c, the checks that
 * need the whole file): the sections, the key table's types, the parser's
 * state, and the functions one file calls in another. Not for use outside
 * src/core/config*.c; config.h is the contract.
 */
#ifndef AWAITD_CONFIG_INT_H
#define AWAITD_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/config.h"

#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define SECOND 1000ULL /* durations are in milliseconds */
#define MINUTE (60 * SECOND)
#define HOUR (60 * MINUTE)
#define YEAR (8760 * HOUR)

typedef unsigned long long ull; /* for printf */

enum section {
    SEC_NONE = -1,
    SEC_SERVER,
    SEC_PROBE,
    SEC_TLS,
    SEC_JOURNAL,
    SEC_AUTH,
    SEC_QUEUES,
    SEC_TIMERS,
    SEC_METRICS,
    SEC_STORE,
    SEC_REDIS,
    SEC_CONSOLE,
    SEC_LOG,
    SEC_HTTP2,
    SEC_QUEUE
};
#define NFIXED SEC_QUEUE /* sections other than [queue NAME] */
extern const char *const config_section_names[NFIXED];

/* Numbers first, strings last: defaults and config_free rely on the order. */
enum vtype { V_COUNT, V_SIZE, V_DURATION, V_TOPN, V_ENUM, V_LISTEN, V_PATH, V_TOKEN, V_TOKEN_FILE, V_STRING };

struct keydef {
    enum section sec;
    const char *name;
    enum vtype type;
    size_t off;               /* into struct config, or struct config_queue for SEC_QUEUE */
    uint64_t min, max, def;   /* numbers: accepted range and default; enums: default */
    const char *const *names; /* V_ENUM: the accepted words, in value order */
};

#define C(f) offsetof(struct config, f)
#define Q(f) offsetof(struct config_queue, f)

/* config.c: the key table, every key of every section with its default. */
extern const struct keydef config_keys[];
extern const size_t config_nkeys;
#define CONFIG_NKEYS_MAX 128 /* room in struct parser; config.c asserts the table fits */

/* The index of key name in section sec, or -1. */
int config_find_key(enum section sec, const char *name);
/* Number and enum defaults from the table; queue picks which struct base is. */
void config_apply_defaults(void *base, bool queue);
/* A config with every default except listen (see config_add_default_listen). */
struct config *config_new(const char *path);
/* 127.0.0.1:8080 when the file set no [server] listen. */
int config_add_default_listen(struct config *c);
/* dir + "/" + v unless v is absolute; NULL when out of memory. */
char *config_resolve_path(const char *dir, const char *v);

/* config_value.c: units, and numbers as a user writes them. */
struct config_unit {
    const char *name;
    uint64_t mult;
};
/* Largest first, ending in a unit of 1, then {0, 0}. */
extern const struct config_unit config_size_units[], config_count_units[],
    config_duration_units[];
/* A limit as a user would write it in messages: "1m" rather than 1048576. */
const char *config_fmt_unit(char *buf, size_t len, uint64_t v, const struct config_unit *u);
/* Leading decimal digits of s; *end is the first non-digit. 0, or -1. */
int config_parse_digits(const char *s, uint64_t *out, const char **end);
/* A whole number and nothing else. 0, or -1. */
int config_parse_count(const char *s, uint64_t *out);

static inline bool is_space(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

static inline bool is_digit(char ch) { /* not isdigit(): no locale surprises */
    return ch >= '0' && ch <= '9';
}

static inline char *skip_ws(char *s) {
    return s + strspn(s, " \t\r\v\f");
}

static inline bool same_addr(const struct config_listen *a, const struct config_listen *b) {
    return a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0;
}

/* config_parse.c: the state of one parse, for its messages and the whole-file checks. */
struct parser {
    const char *path;
    struct config *c;
    char *err;
    size_t errlen;
    int line;
    enum section sec;
    char secname[80];     /* "server" or "queue NAME", for messages */
    int sec_line[NFIXED]; /* where each fixed section opened; 0 = not seen */
    int queue_line[CONFIG_MAX_QUEUES];
    struct config_queue *q;                /* the open [queue NAME] */
    int key_line[CONFIG_NKEYS_MAX];        /* where each key was last set in its section; 0 = not */
    int listen_line[2][CONFIG_MAX_LISTEN]; /* [server], [tls]: for duplicate messages */
};

/* "PATH:LINE: message", or "PATH:LINE: [section] key: message" when k is given. Returns -1. */
int config_report(struct parser *p, int line, const struct keydef *k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define fail(p, line, ...) config_report(p, line, NULL, __VA_ARGS__)
#define key_fail(p, k, ...) config_report(p, (p)->line, k, __VA_ARGS__)

/* config_check.c: checks that need the whole file, after its last line. 0, or -1 (reported). */
int config_check(struct parser *p);

#endif
