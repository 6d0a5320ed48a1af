/*
 * config: a hand-written parser for the INI-style file of SPEC.md, rather
 * than libinih, because Debian's libinih gives its handler no line numbers and
 * we need them in every message, and we must catch repeated sections and keys.
 *
 * Choices beyond config.h (conf/awaitd.conf documents them for users):
 * - A value may be wrapped in double quotes (no escapes) to keep a '#' or ';'
 *   after whitespace; unquoted, a '#' or ';' glued to text is part of it.
 * - Durations round a sub-millisecond remainder up ("0.0001s" is 1 ms, never
 *   0, which often means "no wait"); at most 9 decimals, lowercase units, and
 *   at most 8760h so "now + timeout" elsewhere can never wrap.
 * - listen "*:PORT" means 0.0.0.0:PORT; IPv6 needs brackets, no scope ids.
 * - [auth] tokens are at least 16 visible ASCII characters (a Bearer header
 *   must carry them) and never appear in messages.
 * - A default max_uri shrinks to a smaller max_header_bytes; an explicit one
 *   above it is an error. journal_path is always set (default resolved).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf, strndup, explicit_bzero */
#endif
#include "core/config.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define SECOND 1000ULL /* durations are in milliseconds */
#define MINUTE (60 * SECOND)
#define HOUR (60 * MINUTE)
#define YEAR (8760 * HOUR)
#define LINE_MAX_LEN 4096
#define TOKEN_MIN 16
#define DEFAULT_LISTEN "127.0.0.1:8080"
#define DEFAULT_JOURNAL "var/awaitd.journal"

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
static const char *const section_names[] = {"server", "probe", "tls", "journal", "auth", "queues",
                                            "timers", "metrics", "store", "redis", "console", "log",
                                            "http2"};
#define NFIXED SEC_QUEUE /* sections other than [queue NAME] */

/* Numbers first, strings last: defaults and config_free rely on the order. */
enum vtype { V_COUNT, V_SIZE, V_DURATION, V_TOPN, V_ENUM, V_LISTEN, V_PATH, V_TOKEN, V_TOKEN_FILE, V_STRING };

static const char *const level_names[] = {"error", "warn", "info", "debug", NULL}; /* LOG_LVL_* */
static const char *const fsync_names[] = {"always", "batch", "off", NULL};         /* FSYNC_* */
static const char *const onoff_names[] = {"off", "on", NULL};
static const char *const backend_names[] = {"local", "redis", NULL}; /* STORE_BACKEND_* */
_Static_assert(sizeof(enum config_fsync) == sizeof(int), "V_ENUM stores through an int");

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

/* Every key of every section, with its default: adding a key is one line here. */
static const struct keydef keys[] = {
    {SEC_SERVER, "listen", V_LISTEN, 0, 0, 0, 0, NULL},
    {SEC_SERVER, "max_connections", V_COUNT, C(max_connections), 1, 10000000, 10000, NULL},
    {SEC_SERVER, "max_connections_per_ip", V_COUNT, C(max_connections_per_ip), 0, 10000000, 0, NULL},
    {SEC_SERVER, "loopback_reserve", V_COUNT, C(loopback_reserve), 0, 10000000, 8, NULL},
    {SEC_SERVER, "backlog", V_COUNT, C(backlog), 1, 65535, 4096, NULL},
    {SEC_SERVER, "log_level", V_ENUM, C(log_level), 0, 0, LOG_LVL_INFO, level_names},
    {SEC_SERVER, "header_timeout", V_DURATION, C(header_timeout_ms), 1, YEAR, 10 * SECOND, NULL},
    {SEC_SERVER, "body_timeout", V_DURATION, C(body_timeout_ms), 1, YEAR, 10 * SECOND, NULL},
    {SEC_SERVER, "keepalive_timeout", V_DURATION, C(keepalive_timeout_ms), 1, YEAR, 75 * SECOND,
     NULL},
    {SEC_SERVER, "write_timeout", V_DURATION, C(write_timeout_ms), 1, YEAR, 30 * SECOND, NULL},
    {SEC_SERVER, "shutdown_grace", V_DURATION, C(shutdown_grace_ms), 0, YEAR, 10 * SECOND, NULL},
    /* issue 16: /health answers 503 draining this long before the listeners close */
    {SEC_SERVER, "drain_delay", V_DURATION, C(drain_delay_ms), 0, HOUR, 0, NULL},
    {SEC_SERVER, "max_header_bytes", V_SIZE, C(max_header_bytes), 256, MIB, 8 * KIB, NULL},
    {SEC_SERVER, "max_headers", V_COUNT, C(max_headers), 1, 128, 100, NULL}, /* HTTP_MAX_HEADERS */
    {SEC_SERVER, "max_uri", V_SIZE, C(max_uri), 16, MIB, 4 * KIB, NULL}, /* <= max_header_bytes */
    {SEC_SERVER, "max_body", V_SIZE, C(max_body), 0, GIB, MIB, NULL},
    {SEC_SERVER, "max_output", V_SIZE, C(max_output), 4 * KIB, GIB, 256 * KIB, NULL},
    {SEC_SERVER, "output_budget", V_SIZE, C(output_budget), 0, 1024 * GIB, 64 * MIB, NULL},
    /* event-loop threads; 0 is "auto" (online CPUs), as the word auto is (issue 18) */
    {SEC_SERVER, "workers", V_COUNT, C(workers), 0, CONFIG_MAX_WORKERS, 1, NULL},
    {SEC_PROBE, "max_delay", V_DURATION, C(max_delay_ms), 0, YEAR, 60 * SECOND, NULL},
    {SEC_PROBE, "max_bytes", V_SIZE, C(max_bytes), 0, GIB, MIB, NULL},
    {SEC_PROBE, "max_stream", V_COUNT, C(max_stream), 0, 1000000, 1000, NULL},
    {SEC_PROBE, "trust_forwarded", V_ENUM, C(probe_trust_forwarded), 0, 0, 1, onoff_names},
    {SEC_PROBE, "cors", V_ENUM, C(probe_cors), 0, 0, 1, onoff_names},
    {SEC_PROBE, "max_form_parts", V_COUNT, C(max_form_parts), 1, 1000000, 1000, NULL},
    {SEC_TLS, "listen", V_LISTEN, 0, 0, 0, 0, NULL},
    {SEC_TLS, "cert", V_PATH, C(tls_cert), 0, 0, 0, NULL},
    {SEC_TLS, "key", V_PATH, C(tls_key), 0, 0, 0, NULL},
    {SEC_TLS, "chain", V_PATH, C(tls_chain), 0, 0, 0, NULL},
    {SEC_TLS, "client_ca", V_PATH, C(tls_client_ca), 0, 0, 0, NULL},
    {SEC_TLS, "session_tickets", V_ENUM, C(tls_session_tickets), 0, 0, 1, onoff_names},
    {SEC_TLS, "handshake_timeout", V_DURATION, C(tls_handshake_timeout_ms), 1, YEAR, 10 * SECOND,
     NULL},
    {SEC_JOURNAL, "path", V_PATH, C(journal_path), 0, 0, 0, NULL}, /* default: new_config */
    {SEC_JOURNAL, "fsync", V_ENUM, C(fsync), 0, 0, FSYNC_ALWAYS, fsync_names},
    {SEC_JOURNAL, "fsync_interval", V_DURATION, C(fsync_interval_ms), 1, YEAR, 50, NULL},
    {SEC_JOURNAL, "compact_min", V_SIZE, C(journal_compact_min), 0, 1024 * GIB, 64 * MIB, NULL},
    {SEC_AUTH, "token", V_TOKEN, C(auth_token), 0, 0, 0, NULL},
    {SEC_AUTH, "token_file", V_TOKEN_FILE, C(auth_token_file), 0, 0, 0, NULL},
    {SEC_AUTH, "client_subject", V_STRING, C(auth_client_subject), 0, 0, 0, NULL},
    {SEC_QUEUES, "max_wait", V_DURATION, C(queue_max_wait_ms), 0, YEAR, 20 * SECOND, NULL},
    {SEC_QUEUES, "mem_limit", V_SIZE, C(queue_mem_limit), 0, 1024 * GIB, GIB, NULL},
    {SEC_QUEUES, "key_window", V_DURATION, C(queue_key_window_ms), 1, YEAR, 5 * MINUTE, NULL},
    /* [timers], [metrics] (issue 12, findings 2 and 5) */
    {SEC_TIMERS, "max_timers", V_COUNT, C(timers_max), 0, 1000000000, 1000000, NULL},
    {SEC_METRICS, "per_queue", V_TOPN, C(metrics_per_queue), 0, 1000000, 100, NULL},
    {SEC_METRICS, "public", V_ENUM, C(metrics_public), 0, 0, 0, onoff_names},
    {SEC_STORE, "backend", V_ENUM, C(store_backend), 0, 0, STORE_BACKEND_LOCAL, backend_names},
    {SEC_REDIS, "connect_timeout", V_DURATION, C(redis_connect_timeout_ms), 1, HOUR, 2 * SECOND,
     NULL},
    {SEC_REDIS, "command_timeout", V_DURATION, C(redis_command_timeout_ms), 1, HOUR, 5 * SECOND,
     NULL},
    {SEC_REDIS, "replicas_ack", V_COUNT, C(redis_replicas_ack), 0, 16, 0, NULL},
    {SEC_REDIS, "nodes", V_STRING, C(redis_nodes_text), 0, 0, 0, NULL},
    {SEC_REDIS, "user", V_STRING, C(redis_user), 0, 0, 0, NULL},
    {SEC_REDIS, "password", V_STRING, C(redis_password), 0, 0, 0, NULL},
    {SEC_REDIS, "password_file", V_PATH, C(redis_password_file), 0, 0, 0, NULL},
    {SEC_REDIS, "prefix", V_STRING, C(redis_prefix), 0, 0, 0, NULL},
    /* [console] (issue 17) */
    {SEC_CONSOLE, "enabled", V_ENUM, C(console_enabled), 0, 0, 1, onoff_names},
    /* [log] (issue 16): access = off | stderr | PATH; error = PATH (besides stderr) */
    {SEC_LOG, "access", V_PATH, C(log_access), 0, 0, 0, NULL},
    {SEC_LOG, "error", V_PATH, C(log_error), 0, 0, 0, NULL},
    /* [http2] (issue 15) */
    {SEC_HTTP2, "enabled", V_ENUM, C(h2_enabled), 0, 0, 1, onoff_names},
    {SEC_HTTP2, "max_concurrent_streams", V_COUNT, C(h2_max_streams), 1, 100000, 100, NULL},
    {SEC_HTTP2, "initial_window_size", V_SIZE, C(h2_initial_window), 1, 2147483647, 65535, NULL},
    {SEC_HTTP2, "max_header_list_size", V_SIZE, C(h2_max_header_list), 256, 16 * MIB, 16 * KIB,
     NULL},
    {SEC_HTTP2, "idle_timeout", V_DURATION, C(h2_idle_timeout_ms), 1, YEAR, 75 * SECOND, NULL},
    {SEC_HTTP2, "ping_timeout", V_DURATION, C(h2_ping_timeout_ms), 0, YEAR, 0, NULL},
    {SEC_QUEUE, "maxsize", V_COUNT, Q(maxsize), 0, 1000000000, 0, NULL},
    {SEC_QUEUE, "lease", V_DURATION, Q(lease_ms), 1, YEAR, 30 * SECOND, NULL},
    {SEC_QUEUE, "max_attempts", V_COUNT, Q(max_attempts), 1, 65535, 5, NULL},
    {SEC_QUEUE, "max_payload", V_SIZE, Q(max_payload), 1, 64 * MIB, MIB, NULL},
    {SEC_QUEUE, "result_ttl", V_DURATION, Q(result_ttl_ms), 0, YEAR, 5 * MINUTE, NULL},
};
#define NKEYS (sizeof keys / sizeof keys[0])

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
    int key_line[NKEYS];                   /* where each key was last set in its section; 0 = not */
    int listen_line[2][CONFIG_MAX_LISTEN]; /* [server], [tls]: for duplicate messages */
};

/* ---- small helpers ------------------------------------------------------ */

static bool is_space(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

static bool is_digit(char ch) { /* not isdigit(): no locale surprises */
    return ch >= '0' && ch <= '9';
}

static char *skip_ws(char *s) {
    return s + strspn(s, " \t\r\v\f");
}

static char *trim(char *s) {
    s = skip_ws(s);
    size_t n = strlen(s);
    while (n > 0 && is_space(s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* "PATH:LINE: message", or "PATH:LINE: [section] key: message" when k is given. */
static int __attribute__((format(printf, 4, 5)))
report(struct parser *p, int line, const struct keydef *k, const char *fmt, ...) {
    if (!p->err || p->errlen == 0)
        return -1;
    int n = snprintf(p->err, p->errlen, "%s:%d: ", p->path, line);
    if (k && n >= 0 && (size_t)n < p->errlen)
        n += snprintf(p->err + n, p->errlen - n, "[%s] %s: ", p->secname, k->name);
    if (n >= 0 && (size_t)n < p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - n, fmt, ap);
        va_end(ap);
    }
    return -1;
}
#define fail(p, line, ...) report(p, line, NULL, __VA_ARGS__)
#define key_fail(p, k, ...) report(p, (p)->line, k, __VA_ARGS__)

struct unit {
    const char *name;
    uint64_t mult;
};
/* Largest first, ending in a unit of 1, so formatting picks the largest exact one. */
static const struct unit size_units[] = {{"g", GIB}, {"m", MIB}, {"k", KIB}, {"", 1}, {0, 0}};
static const struct unit count_units[] = {{"", 1}, {0, 0}};
static const struct unit duration_units[] = {
    {"h", HOUR}, {"m", MINUTE}, {"s", SECOND}, {"ms", 1}, {0, 0}};

/* A limit as a user would write it in messages: "1m" rather than 1048576. */
static const char *fmt_unit(char *buf, size_t len, uint64_t v, const struct unit *u) {
    while (v % u->mult)
        u++;
    snprintf(buf, len, "%llu%s", (ull)(v / u->mult), v ? u->name : "");
    return buf;
}

/* Leading decimal digits of s; *end is the first non-digit. */
static int parse_digits(const char *s, uint64_t *out, const char **end) {
    if (!is_digit(*s))
        return -1;
    uint64_t v = 0;
    for (; is_digit(*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    *end = s;
    return 0;
}

static int parse_count(const char *s, uint64_t *out) {
    const char *end;
    return parse_digits(s, out, &end) == 0 && *end == '\0' ? 0 : -1;
}

/* dir + "/" + v unless v is absolute. */
static char *resolve_path(const char *dir, const char *v) {
    if (v[0] == '/')
        return strdup(v);
    char *r;
    size_t n = strlen(dir);
    if (asprintf(&r, "%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", v) < 0)
        return NULL;
    return r;
}

/* The absolute directory of path: realpath when it exists, else cwd-joined. */
static char *config_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *d = !slash ? strdup(".") : strndup(path, slash == path ? 1 : (size_t)(slash - path));
    char *r = d ? realpath(d, NULL) : NULL;
    if (!r && d && d[0] == '/') {
        r = d;
        d = NULL;
    } else if (!r && d) {
        char *cwd = getcwd(NULL, 0);
        r = cwd ? resolve_path(cwd, d) : NULL;
        free(cwd);
    }
    free(d);
    return r;
}

/* ---- public value parsers ----------------------------------------------- */

int config_parse_size(const char *s, uint64_t *out) {
    uint64_t v;
    const char *end;
    const struct unit *u = size_units;
    if (!s || parse_digits(s, &v, &end) < 0)
        return -1;
    while (u->name && strcasecmp(end, u->name) != 0)
        u++;
    if (!u->name || v > UINT64_MAX / u->mult)
        return -1;
    *out = v * u->mult;
    return 0;
}

int config_parse_duration_ms(const char *s, uint64_t *out) {
    uint64_t whole, frac = 0, scale = 1, unit;
    const char *p;
    /* Digits by hand rather than strtod: no NaN, inf, exponents, signs or locale. */
    if (!s || parse_digits(s, &whole, &p) < 0)
        return -1;
    if (*p == '.') {
        if (!is_digit(*++p))
            return -1;
        for (; is_digit(*p); p++) {
            if (scale == 1000000000ULL) /* keeps frac * unit far below 2^64 */
                return -1;
            frac = frac * 10 + (uint64_t)(*p - '0');
            scale *= 10;
        }
    }
    const struct unit *u = duration_units;
    while (u->name && *p && strcmp(p, u->name) != 0)
        u++;
    if (!u->name)
        return -1;
    unit = *p ? u->mult : SECOND; /* a bare number is seconds */
    if (whole > UINT64_MAX / unit)
        return -1;
    uint64_t ms = whole * unit, f = (frac * unit + scale - 1) / scale; /* round up */
    if (ms > UINT64_MAX - f)
        return -1;
    *out = ms + f;
    return 0;
}

int config_parse_listen(const char *s, struct config_listen *out) {
    struct config_listen l = {0};
    char host[64];
    const char *end;
    uint64_t port;

    if (!s || strlen(s) >= sizeof l.text)
        return -1;
    bool v6 = s[0] == '[';
    const char *colon = v6 ? strchr(s, ']') : strchr(s, ':');
    if (v6 && colon)
        colon++;
    if (!colon || *colon != ':' || (!v6 && strchr(colon + 1, ':'))) /* IPv6 needs brackets */
        return -1;
    size_t hl = (size_t)(colon - s) - 2 * v6;
    memcpy(host, s + v6, hl);
    host[hl] = '\0';
    if (parse_digits(colon + 1, &port, &end) < 0 || *end || port < 1 || port > 65535)
        return -1;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&l.addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&l.addr;
    if (v6 && inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        l.addrlen = sizeof *a6;
    } else if (!v6 && (strcmp(host, "*") == 0 || inet_pton(AF_INET, host, &a4->sin_addr) == 1)) {
        a4->sin_family = AF_INET; /* "*" leaves sin_addr zero: INADDR_ANY */
        a4->sin_port = htons((uint16_t)port);
        l.addrlen = sizeof *a4;
    } else {
        return -1;
    }
    strcpy(l.text, s);
    *out = l;
    return 0;
}

/* How each kind of number is parsed and described in messages. */
struct numtype {
    int (*parse)(const char *, uint64_t *);
    const struct unit *units;
    const char *what, *hint;
};
static const struct numtype numtypes[] = {
    [V_COUNT] = {parse_count, count_units, "a whole number", ""},
    [V_SIZE] = {config_parse_size, size_units, "a size", " (bytes, or with a k, m or g suffix)"},
    [V_DURATION] = {config_parse_duration_ms, duration_units, "a duration",
                    " (a number with ms, s, m or h; bare means seconds)"},
};

/* ---- building a config -------------------------------------------------- */

static bool same_addr(const struct config_listen *a, const struct config_listen *b) {
    return a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0;
}

/* Number and enum defaults come from the table; queue picks which struct base is. */
static void apply_defaults(void *base, bool queue) {
    for (const struct keydef *k = keys; k < keys + NKEYS; k++) {
        if ((k->sec == SEC_QUEUE) != queue || k->type > V_ENUM)
            continue;
        if (k->type == V_ENUM)
            *(int *)((char *)base + k->off) = (int)k->def;
        else
            *(uint64_t *)((char *)base + k->off) = k->def;
    }
}

/* A config with every default except listen (filled in at the end). */
static struct config *new_config(const char *path) {
    struct config *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    apply_defaults(c, false);
    c->path = path ? strdup(path) : NULL;
    c->dir = path ? config_dir(path) : getcwd(NULL, 0);
    c->journal_path = c->dir ? resolve_path(c->dir, DEFAULT_JOURNAL) : NULL;
    if ((path && !c->path) || !c->journal_path) {
        config_free(c);
        return NULL;
    }
    return c;
}

static int add_default_listen(struct config *c) {
    if (c->nlisten > 0)
        return 0;
    c->nlisten = 1;
    return config_parse_listen(DEFAULT_LISTEN, &c->listen[0]);
}

struct config *config_defaults(void) {
    struct config *c = new_config(NULL);
    if (c)
        add_default_listen(c);
    return c;
}

void config_free(struct config *c) {
    if (!c)
        return;
    if (c->auth_token) /* a secret: do not leave it in freed memory */
        explicit_bzero(c->auth_token, strlen(c->auth_token));
    if (c->redis_password)
        explicit_bzero(c->redis_password, strlen(c->redis_password));
    for (const struct keydef *k = keys; k < keys + NKEYS; k++)
        if (k->type >= V_PATH) /* every string key owns its value */
            free(*(char **)((char *)c + k->off));
    free(c->path);
    free(c->dir);
    free(c);
}

/* ---- setting values ----------------------------------------------------- */

static int find_key(enum section sec, const char *name) {
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].sec == sec && strcmp(keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int add_listen(struct parser *p, const struct keydef *k, const char *v) {
    struct config *c = p->c;
    int t = p->sec == SEC_TLS;
    struct config_listen *arr = t ? c->tls_listen : c->listen;
    size_t *n = t ? &c->ntls_listen : &c->nlisten;
    struct config_listen l;

    if (config_parse_listen(v, &l) < 0)
        return key_fail(p, k,
                        "expected IPv4:port or [IPv6]:port with a numeric address (no host "
                        "names) and a port from 1 to 65535, got '%s'",
                        v);
    for (int s = 0; s < 2; s++) {
        const struct config_listen *other = s ? c->tls_listen : c->listen;
        size_t no = s ? c->ntls_listen : c->nlisten;
        for (size_t i = 0; i < no; i++)
            if (same_addr(&other[i], &l))
                return key_fail(p, k, "%s is already listened on (line %d)", v,
                                p->listen_line[s][i]);
    }
    if (*n >= CONFIG_MAX_LISTEN)
        return key_fail(p, k, "too many listen addresses; at most %d per section",
                        CONFIG_MAX_LISTEN);
    p->listen_line[t][*n] = p->line;
    arr[(*n)++] = l;
    return 0;
}

/* Bearer tokens: long enough to resist guessing, and sendable in a header. */
static int check_token(struct parser *p, const struct keydef *k, const char *tok,
                       const char *file) {
    size_t n = strlen(tok);
    for (size_t i = 0; i < n; i++)
        if (tok[i] <= ' ' || tok[i] > '~')
            return key_fail(p, k, "%s%s must be printable ASCII without spaces",
                            file ? "the token in " : "the token", file ? file : "");
    if (n < TOKEN_MIN)
        return key_fail(p, k, "%s%s is %zu characters; expected at least %d",
                        file ? "the token in " : "the token", file ? file : "", n, TOKEN_MIN);
    return 0;
}

static int read_token_file(struct parser *p, const struct keydef *k, const char *file) {
    char *line = NULL;
    size_t cap = 0;
    FILE *f = fopen(file, "re");
    if (!f)
        return key_fail(p, k, "cannot read %s: %s", file, strerror(errno));
    ssize_t n = getline(&line, &cap, f);
    int rerr = n < 0 && ferror(f) ? errno : 0;
    fclose(f);
    while (n > 0 && (line[n - 1] == '\n' || is_space(line[n - 1])))
        line[--n] = '\0';
    int rc = rerr     ? key_fail(p, k, "cannot read %s: %s", file, strerror(rerr))
             : n <= 0 ? key_fail(p, k, "%s is empty; expected the token on its first line", file)
                      : check_token(p, k, line, file);
    if (rc == 0) {
        p->c->auth_token = line;
        return 0;
    }
    if (line)
        explicit_bzero(line, cap);
    free(line);
    return rc;
}

static int set_value(struct parser *p, const struct keydef *k, const char *v) {
    char *slot = (char *)(k->sec == SEC_QUEUE ? (void *)p->q : (void *)p->c) + k->off;
    char lo[32], hi[32], words[128] = "";
    uint64_t u = 0;
    char *s;

    if (k->type == V_TOKEN || k->type == V_TOKEN_FILE) {
        int other = find_key(SEC_AUTH, k->type == V_TOKEN ? "token_file" : "token");
        if (p->key_line[other])
            return key_fail(p, k, "token and token_file cannot both be set (%s is on line %d)",
                            keys[other].name, p->key_line[other]);
    }
    switch (k->type) {
    case V_COUNT:
    case V_SIZE:
    case V_DURATION: {
        const struct numtype *t = &numtypes[k->type];
        if (k->off == C(workers) && k->sec == SEC_SERVER && strcmp(v, "auto") == 0)
            v = "0";
        if (t->parse(v, &u) < 0 || u < k->min || u > k->max)
            return key_fail(p, k, "expected %s from %s to %s%s, got '%s'", t->what,
                            fmt_unit(lo, sizeof lo, k->min, t->units),
                            fmt_unit(hi, sizeof hi, k->max, t->units), t->hint, v);
        *(uint64_t *)slot = u;
        return 0;
    }
    case V_TOPN: /* on | off | top N (1..max) */
        if (strcmp(v, "on") == 0) {
            *(uint64_t *)slot = CONFIG_PER_QUEUE_ALL;
            return 0;
        }
        if (strcmp(v, "off") == 0) {
            *(uint64_t *)slot = 0;
            return 0;
        }
        if (strncmp(v, "top", 3) == 0 && is_space(v[3]) && parse_count(skip_ws((char *)v + 3), &u) == 0 &&
            u >= 1 && u <= k->max) {
            *(uint64_t *)slot = u;
            return 0;
        }
        return key_fail(p, k, "expected on, off or top N with N from 1 to %llu, got '%s'",
                        (ull)k->max, v);
    case V_ENUM:
        for (int i = 0; k->names[i]; i++)
            if (strcmp(v, k->names[i]) == 0) {
                *(int *)slot = i;
                return 0;
            }
        for (int i = 0, n = 0; k->names[i] && n >= 0 && (size_t)n < sizeof words; i++)
            n += snprintf(words + n, sizeof words - n, "%s%s", i ? ", " : "", k->names[i]);
        return key_fail(p, k, "expected one of %s, got '%s'", words, v);
    case V_LISTEN:
        return add_listen(p, k, v);
    case V_TOKEN:
        if (check_token(p, k, v, NULL) < 0)
            return -1;
        if (!(*(char **)slot = strdup(v)))
            return key_fail(p, k, "out of memory");
        return 0;
    case V_STRING:
        free(*(char **)slot);
        if (!(*(char **)slot = strdup(v)))
            return key_fail(p, k, "out of memory");
        return 0;
    case V_PATH:
    case V_TOKEN_FILE:
        /* [log] access: "off" and "stderr" are words, not file names. */
        if (k->off == C(log_access) && (strcmp(v, "off") == 0 || strcmp(v, "stderr") == 0))
            s = strdup(v);
        else
            s = resolve_path(p->c->dir, v);
        if (!s)
            return key_fail(p, k, "out of memory");
        free(*(char **)slot);
        *(char **)slot = s;
        if (k->sec == SEC_TLS) /* a TLS file that cannot be read names this line */
            p->c->tls_lines[k->off == C(tls_cert) ? 0 : k->off == C(tls_key) ? 1
                             : k->off == C(tls_chain) ? 2 : 3] = p->line;
        return k->type == V_TOKEN_FILE ? read_token_file(p, k, s) : 0;
    }
    return key_fail(p, k, "internal error: unhandled type");
}

/* ---- lines -------------------------------------------------------------- */

static bool valid_queue_name(const char *s) {
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");
    /* "." and ".." would read as path segments in /queues/{q} URLs. */
    return n >= 1 && n <= 64 && s[n] == '\0' && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int open_queue(struct parser *p, const char *name) {
    struct config *c = p->c;
    if (!valid_queue_name(name))
        return fail(p, p->line,
                    "[queue %s]: bad queue name '%s'; expected 1 to 64 characters from "
                    "A-Z a-z 0-9 _ . -, not \".\" or \"..\"",
                    name, name);
    for (size_t i = 0; i < c->nqueues; i++)
        if (strcmp(c->queues[i].name, name) == 0)
            return fail(p, p->line, "[queue %s]: repeated section (first on line %d)", name,
                        p->queue_line[i]);
    if (c->nqueues >= CONFIG_MAX_QUEUES)
        return fail(p, p->line, "[queue %s]: too many queues; at most %d", name, CONFIG_MAX_QUEUES);
    p->queue_line[c->nqueues] = p->line;
    p->q = &c->queues[c->nqueues++];
    apply_defaults(p->q, true);
    strcpy(p->q->name, name);
    p->sec = SEC_QUEUE;
    snprintf(p->secname, sizeof p->secname, "queue %s", name);
    for (size_t i = 0; i < NKEYS; i++) /* each [queue NAME] starts afresh */
        if (keys[i].sec == SEC_QUEUE)
            p->key_line[i] = 0;
    return 0;
}

static int open_section(struct parser *p, char *s) {
    char *rb = strchr(s, ']');
    if (!rb)
        return fail(p, p->line, "'%s': expected ']' to close the section name", s);
    char *after = skip_ws(rb + 1);
    if (*after && *after != '#' && *after != ';')
        return fail(p, p->line, "unexpected '%s' after ']'; expected a comment or nothing", after);
    *rb = '\0';
    char *name = trim(s + 1);
    if (strncmp(name, "queue", 5) == 0 && (name[5] == '\0' || is_space(name[5]))) {
        if (name[5] == '\0')
            return fail(p, p->line, "[queue]: expected [queue NAME] with the queue's name");
        return open_queue(p, skip_ws(name + 5));
    }
    for (int i = 0; i < NFIXED; i++) {
        if (strcmp(name, section_names[i]) != 0)
            continue;
        if (p->sec_line[i])
            return fail(p, p->line, "[%s]: repeated section (first on line %d)", name,
                        p->sec_line[i]);
        p->sec = (enum section)i;
        p->sec_line[i] = p->line;
        snprintf(p->secname, sizeof p->secname, "%s", name);
        return 0;
    }
    char list[256]; /* every section of the table, so a new one is listed by itself */
    size_t n = 0;
    for (int i = 0; i < NFIXED && n < sizeof list; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "[%s], ", section_names[i]);
    return fail(p, p->line, "[%s]: unknown section; expected %sor [queue NAME]", name, list);
}

/* Cut the value at a comment and unquote it; NULL with the message set on error. */
static char *clean_value(struct parser *p, const struct keydef *k, char *v) {
    v = skip_ws(v);
    if (*v == '"') {
        char *q = strchr(v + 1, '"');
        if (!q)
            return key_fail(p, k, "unterminated quote; expected a closing '\"'"), NULL;
        char *rest = skip_ws(q + 1);
        if (*rest && *rest != '#' && *rest != ';')
            return key_fail(p, k, "unexpected text after the closing quote"), NULL;
        *q = '\0';
        v++;
    } else {
        for (char *t = v; *t; t++)
            if ((*t == '#' || *t == ';') && (t == v || is_space(t[-1]))) {
                *t = '\0';
                break;
            }
        v = trim(v);
    }
    if (*v == '\0')
        return key_fail(p, k, "empty value; expected a value after '='"), NULL;
    return v;
}

static int parse_line(struct parser *p, char *s) {
    s = trim(s);
    if (*s == '\0' || *s == '#' || *s == ';')
        return 0;
    if (*s == '[')
        return open_section(p, s);

    char *eq = strchr(s, '=');
    if (!eq) {
        if (p->sec == SEC_NONE)
            return fail(p, p->line, "'%s': expected a [section] line or a comment", s);
        return fail(p, p->line, "[%s] '%s': expected 'key = value'", p->secname, s);
    }
    *eq = '\0';
    char *name = trim(s);
    if (*name == '\0')
        return fail(p, p->line, "missing key before '='");
    if (p->sec == SEC_NONE)
        return fail(p, p->line, "%s: key outside any section; expected a [section] line first",
                    name);
    int idx = find_key(p->sec, name);
    if (idx < 0) {
        char list[512];
        size_t n = 0;
        list[0] = '\0';
        for (size_t i = 0; i < NKEYS && n < sizeof list; i++)
            if (keys[i].sec == p->sec)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "",
                                      keys[i].name);
        return fail(p, p->line, "[%s] %s: unknown key; expected one of %s", p->secname, name, list);
    }
    const struct keydef *k = &keys[idx];
    if (p->key_line[idx] && k->type != V_LISTEN)
        return key_fail(p, k, "repeated key (first set on line %d)", p->key_line[idx]);
    char *v = clean_value(p, k, eq + 1);
    if (!v || set_value(p, k, v) < 0)
        return -1;
    p->key_line[idx] = p->line;
    return 0;
}

/* ---- [redis] ------------------------------------------------------------ */

/* "HOST:PORT" or "[V6]:PORT" -> node. 0 ok, -1 bad. */
int config_parse_redis_node(const char *s, struct config_redis_node *out) {
    const char *colon, *host = s;
    size_t hl;
    if (*s == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return -1;
        host = s + 1;
        hl = (size_t)(rb - host);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return -1;
        hl = (size_t)(colon - s);
    }
    uint64_t port;
    const char *end;
    if (hl == 0 || hl >= sizeof out->host || parse_digits(colon + 1, &port, &end) < 0 || *end ||
        port == 0 || port > 65535)
        return -1;
    for (size_t i = 0; i < hl; i++)
        if (host[i] <= ' ' || host[i] > '~' || host[i] == ',')
            return -1;
    memcpy(out->host, host, hl);
    out->host[hl] = '\0';
    out->port = (int)port;
    return 0;
}

/* [redis] as a whole: nodes parsed, the password read, the prefix checked. */
static int finish_redis(struct parser *p) {
    struct config *c = p->c;
    snprintf(p->secname, sizeof p->secname, "redis");
    p->line = p->sec_line[SEC_REDIS];
    int ki = find_key(SEC_REDIS, "nodes");
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
            return key_fail(p, &keys[ki], "too many nodes; at most %d", CONFIG_MAX_REDIS_NODES);
        if (n >= sizeof one || (memcpy(one, s, n), one[n] = '\0',
                                config_parse_redis_node(one, &c->redis_nodes[c->nredis_nodes]) < 0))
            return key_fail(p, &keys[ki], "expected HOST:PORT[, HOST:PORT...], got '%.*s'",
                            (int)(n > 200 ? 200 : n), s);
        c->nredis_nodes++;
        s += n;
    }
    if (c->nredis_nodes == 0)
        return key_fail(p, &keys[ki], "expected at least one HOST:PORT");
    int pi = find_key(SEC_REDIS, "password"), fi = find_key(SEC_REDIS, "password_file");
    if (c->redis_password && c->redis_password_file) {
        p->line = p->key_line[fi];
        return key_fail(p, &keys[fi], "password and password_file cannot both be set "
                        "(password is on line %d)", p->key_line[pi]);
    }
    if (c->redis_password_file) {
        p->line = p->key_line[fi];
        char *line = NULL;
        size_t cap = 0;
        FILE *f = fopen(c->redis_password_file, "re");
        if (!f)
            return key_fail(p, &keys[fi], "cannot read %s: %s", c->redis_password_file,
                            strerror(errno));
        ssize_t n = getline(&line, &cap, f);
        fclose(f);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n <= 0) {
            free(line);
            return key_fail(p, &keys[fi], "%s is empty; expected the password on its first line",
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
        int line = p->key_line[find_key(local_only[i].sec, local_only[i].key)];
        size_t used = strlen(c->redis_ignored);
        if (line)
            snprintf(c->redis_ignored + used, sizeof c->redis_ignored - used, "%s%s (line %d)",
                     used ? ", " : "", local_only[i].name, line);
    }
    int xi = find_key(SEC_REDIS, "prefix");
    if (!c->redis_prefix && !(c->redis_prefix = strdup("awaitd:")))
        return key_fail(p, &keys[xi], "out of memory");
    size_t pl = strlen(c->redis_prefix);
    if (pl > 64 || strpbrk(c->redis_prefix, "{} \t")) {
        p->line = p->key_line[xi];
        return key_fail(p, &keys[xi], "expected at most 64 characters without '{', '}' or "
                        "spaces (it goes inside the keys' hash tag), got '%s'", c->redis_prefix);
    }
    return 0;
}

/* Checks that need the whole file; their messages point at the section or key line. */
static int finish(struct parser *p) {
    struct config *c = p->c;
    if (c->store_backend == STORE_BACKEND_REDIS && finish_redis(p) < 0)
        return -1;
    if (c->ntls_listen > 0 && (!c->tls_cert || !c->tls_key)) {
        p->line = p->sec_line[SEC_TLS];
        snprintf(p->secname, sizeof p->secname, "tls");
        return key_fail(p, &keys[find_key(SEC_TLS, c->tls_cert ? "key" : "cert")],
                        "missing; required when [tls] listen is set (a PEM file path)");
    }
    int li = find_key(SEC_SERVER, "loopback_reserve");
    if (c->loopback_reserve >= c->max_connections) {
        if (!p->key_line[li]) {
            c->loopback_reserve = 0; /* only the default was too big: a tiny max_connections */
        } else {
            p->line = p->key_line[li];
            snprintf(p->secname, sizeof p->secname, "server");
            return key_fail(p, &keys[li], "%llu leaves no connection for other clients; it must be "
                            "below max_connections (%llu)",
                            (unsigned long long)c->loopback_reserve,
                            (unsigned long long)c->max_connections);
        }
    }
    int ui = find_key(SEC_SERVER, "max_uri");
    if (c->max_uri > c->max_header_bytes) {
        char a[32], b[32];
        if (!p->key_line[ui]) {
            c->max_uri = c->max_header_bytes; /* only the default was too big */
        } else {
            p->line = p->key_line[ui];
            snprintf(p->secname, sizeof p->secname, "server");
            return key_fail(p, &keys[ui], "%s is larger than max_header_bytes (%s)",
                            fmt_unit(a, sizeof a, c->max_uri, size_units),
                            fmt_unit(b, sizeof b, c->max_header_bytes, size_units));
        }
    }
    if (c->nlisten == 0) {
        add_default_listen(c);
        for (size_t i = 0; i < c->ntls_listen; i++)
            if (same_addr(&c->tls_listen[i], &c->listen[0]))
                return fail(p, p->listen_line[1][i],
                            "[tls] listen: %s is also the default [server] listen address; "
                            "set [server] listen",
                            c->tls_listen[i].text);
    }
    return 0;
}

int config_parse_text(const char *path, const char *text, struct config **out, char *err,
                      size_t errlen) {
    struct parser parser, *p = &parser; /* ~1.5 KB: fine on the stack */
    int rc = 0;

    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!path)
        path = "(config)";
    struct config *c = new_config(path);
    if (!c) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot set up the config: %s", path, strerror(errno));
        return -1;
    }
    *p = (struct parser){.path = path, .c = c, .err = err, .errlen = errlen, .sec = SEC_NONE};
    const char *s = text ? text : "";
    if (strncmp(s, "\xEF\xBB\xBF", 3) == 0) /* a UTF-8 BOM some editors add */
        s += 3;
    while (*s && rc == 0) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        char buf[LINE_MAX_LEN + 1];
        p->line++;
        if (len > 0 && s[len - 1] == '\r') /* CRLF files */
            len--;
        if (len > LINE_MAX_LEN) {
            rc = fail(p, p->line, "line is longer than %d characters", LINE_MAX_LEN);
        } else {
            memcpy(buf, s, len);
            buf[len] = '\0';
            rc = parse_line(p, buf);
        }
        s = nl ? nl + 1 : s + strlen(s);
    }
    if (rc == 0)
        rc = finish(p);
    if (rc < 0) {
        config_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

int config_load(const char *path, struct config **out, char *err, size_t errlen) {
    char *buf = NULL;
    size_t cap = 0;
    int rc = -1;

    *out = NULL;
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    /* Reading up to a NUL reads all of a text file; stopping short means a NUL byte. */
    ssize_t n = getdelim(&buf, &cap, '\0', f);
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    if (rerr)
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(rerr));
    else if (n > 0 && buf[n - 1] == '\0')
        snprintf(err, errlen, "%s: contains a NUL byte; expected a text file", path);
    else
        rc = config_parse_text(path, n > 0 ? buf : "", out, err, errlen);
    free(buf);
    return rc;
}

/* ---- the key table, for printers (config_dump.c) -------------------------- */

_Static_assert((int)V_COUNT == CONFIG_KIND_COUNT && (int)V_TOPN == CONFIG_KIND_TOPN &&
                   (int)V_ENUM == CONFIG_KIND_ENUM &&
                   (int)V_PATH == CONFIG_KIND_PATH && (int)V_STRING == CONFIG_KIND_STRING,
               "enum config_kind mirrors enum vtype");

int config_key_info(size_t i, struct config_key_info *out) {
    if (i >= NKEYS)
        return -1;
    const struct keydef *k = &keys[i];
    *out = (struct config_key_info){
        .section = k->sec == SEC_QUEUE ? "queue" : section_names[k->sec],
        .per_queue = k->sec == SEC_QUEUE,
        .name = k->name,
        .kind = (enum config_kind)k->type,
        .off = k->off,
        .names = k->names,
    };
    return 0;
}
