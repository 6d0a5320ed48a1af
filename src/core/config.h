/*
 * config: the INI-style config file of SPEC.md. Loading builds a fresh
 * struct config (a reload parses a new one and swaps), fills defaults,
 * validates everything, and on error says "FILE:LINE: [section] key: what
 * was expected". Parsing is pure (config_parse_text); config_load only
 * reads the file first.
 *
 * Syntax: "[section]" or "[queue NAME]" lines, "key = value" lines, "#" or
 * ";" comments (whole line, or after whitespace at the end of a value),
 * blank lines. Sizes take k/m/g suffixes (powers of 1024); durations take
 * ms/s/m/h (a bare number is seconds; fractions allowed: 0.5s).
 * A repeated section or key is an error, except keys marked "may repeat".
 */
#ifndef AWAITD_CONFIG_H
#define AWAITD_CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/socket.h>

#define CONFIG_MAX_LISTEN 16
#define CONFIG_MAX_WORKERS 256 /* [server] workers */
#define CONFIG_MAX_QUEUES 256
#define CONFIG_PER_QUEUE_ALL UINT64_MAX /* [metrics] per_queue = on */

struct config_listen {
    struct sockaddr_storage addr; /* numeric address and port, no DNS */
    socklen_t addrlen;
    char text[64]; /* as written, e.g. "127.0.0.1:8080" or "[::1]:8080" */
};

enum config_fsync { FSYNC_ALWAYS, FSYNC_BATCH, FSYNC_OFF };

/* [store] backend: where queues live. */
enum config_store_backend { STORE_BACKEND_LOCAL, STORE_BACKEND_REDIS };

#define CONFIG_MAX_REDIS_NODES 16
struct config_redis_node {
    char host[256]; /* a name or an address, as written ("::1" without brackets) */
    int port;
};

/* Log levels: LOG_ERR .. LOG_DEBUG as in log.h (0 error, 1 warn, 2 info, 3 debug). */

struct config_queue {
    char name[65];         /* [A-Za-z0-9_.-]{1,64} */
    uint64_t maxsize;      /* maxsize: jobs, 0 = unbounded (default 0) */
    uint64_t lease_ms;     /* lease: default 30s */
    uint64_t max_attempts; /* max_attempts: default 5; then dead letters */
    uint64_t max_payload;  /* max_payload: size, default 1m */
    uint64_t result_ttl_ms; /* result_ttl: how long job results are kept, default 5m, 0 none */
};

struct config {
    char *path; /* the file as given */
    char *dir;  /* its directory: relative paths in the file are relative to it */

    /* [server] */
    struct config_listen listen[CONFIG_MAX_LISTEN]; /* listen: may repeat; default 127.0.0.1:8080 */
    size_t nlisten;
    uint64_t max_connections;    /* default 10000 */
    uint64_t max_connections_per_ip; /* 0: no limit (default) */
    uint64_t loopback_reserve;   /* of max_connections, kept for loopback peers; default 8 */
    uint64_t backlog;            /* default 4096 (capped by net.core.somaxconn) */
    int log_level;               /* log_level: error|warn|info|debug, default info */
    uint64_t header_timeout_ms;  /* whole request head must arrive within; default 10s */
    uint64_t body_timeout_ms;    /* idle limit between body reads; default 10s */
    uint64_t keepalive_timeout_ms; /* idle keep-alive connection; default 75s */
    uint64_t write_timeout_ms;   /* a blocked response write; default 30s */
    uint64_t shutdown_grace_ms;  /* SIGTERM drain limit; default 10s */
    uint64_t drain_delay_ms;     /* after SIGTERM, serve on (health 503) this long first; default 0 */
    uint64_t max_header_bytes;   /* size, default 8k (431 past it) */
    uint64_t max_headers;        /* default 100 (431), at most 128 */
    uint64_t max_uri;            /* size, default 4k (414) */
    uint64_t max_body;           /* size, default 1m (413) */
    uint64_t max_output;         /* size, default 256k: a connection's unsent answers past which
                                    it parses and reads no more requests */
    uint64_t output_budget;      /* size, default 64m: all connections' unsent answers past
                                    which a connection answers only with nothing queued; 0 none */
    uint64_t workers;            /* event-loop threads (issue 18); 0: auto, the online CPUs */

    /* [probe] */
    uint64_t max_delay_ms;       /* max_delay: /delay/{s} and /drip upper bound, default 60s */
    uint64_t max_bytes;          /* max_bytes: /bytes/{n} and /drip upper bound, default 1m */
    uint64_t max_stream;         /* max_stream: /stream/{n} upper bound, default 1000 */
    int probe_trust_forwarded;   /* trust_forwarded: off|on, default on: X-Forwarded-For/-Proto/-Host
                                    make origin and url (as httpbin behind its proxy) */
    int probe_cors;              /* cors: off|on, default on: httpbin's CORS headers on the probes */
    uint64_t max_form_parts;     /* max_form_parts: parts of a multipart body, default 1000 (413) */

    /* [tls] (served by the TLS issue; parsed and checked for presence now) */
    struct config_listen tls_listen[CONFIG_MAX_LISTEN]; /* listen: may repeat */
    size_t ntls_listen;
    char *tls_cert, *tls_key, *tls_chain, *tls_client_ca; /* absolute paths or NULL */
    int tls_lines[4]; /* the config lines of cert, key, chain, client_ca (0: unset), for errors */
    int tls_session_tickets;          /* session_tickets: off|on, default on */
    uint64_t tls_handshake_timeout_ms; /* handshake_timeout: default 10s */

    /* [http2] (issue 15, docs/HTTP2.md) */
    int h2_enabled;              /* enabled: off|on, default on: h2 by ALPN, h2c by prior knowledge */
    uint64_t h2_max_streams;     /* max_concurrent_streams: default 100 (as nginx) */
    uint64_t h2_initial_window;  /* initial_window_size: a stream's receive window, default 65535 */
    uint64_t h2_max_header_list; /* max_header_list_size: decoded header block, default 16k */
    uint64_t h2_idle_timeout_ms; /* idle_timeout: no stream open for this long closes; default 75s */
    uint64_t h2_ping_timeout_ms; /* ping_timeout: silent this long with streams open, a PING; no
                                    ACK this long after it closes; 0 (default) = off */

    /* [journal] */
    char *journal_path;          /* path: absolute; default var/awaitd.journal beside the config */
    enum config_fsync fsync;     /* fsync: always|batch|off, default always */
    uint64_t fsync_interval_ms;  /* fsync_interval: default 50ms */
    uint64_t journal_compact_min; /* compact_min: size; rewrite a journal past it that is mostly dead; default 64m */

    /* [auth] */
    char *auth_token;            /* token, or the first line of token_file; NULL = open */
    char *auth_token_file;       /* token_file: absolute path or NULL */
    char *auth_client_subject;   /* client_subject: a TLS client certificate subject (RFC 2253)
                                    that is accepted in place of the token; NULL = none */

    /* [queues]: settings for every queue */
    uint64_t queue_max_wait_ms;   /* max_wait: longest wait= a put, reserve or join may ask; default 20s */
    uint64_t queue_mem_limit;     /* mem_limit: size, bytes all queued jobs may take; 0 = none; default 1g */
    uint64_t queue_key_window_ms; /* key_window: how long Idempotency-Keys are remembered; default 5m */

    /* [timers] */
    uint64_t timers_max;          /* max_timers: scheduled timers at most; 0 = no limit; default 1000000 */

    /* [metrics] */
    uint64_t metrics_per_queue;   /* per_queue: series per queue for the N largest queues (top N,
                                     default 100); 0 = off; CONFIG_PER_QUEUE_ALL = on (every queue) */
    int metrics_public;           /* public: off|on; off (default) puts /metrics behind [auth] */

    /* [store] */
    int store_backend;           /* backend: local|redis (enum config_store_backend), default local */

    /* [redis]: checked only with backend = redis (docs/REDIS.md) */
    char *redis_nodes_text;      /* nodes: "HOST:PORT, ..." as written; default 127.0.0.1:6379 */
    struct config_redis_node redis_nodes[CONFIG_MAX_REDIS_NODES]; /* parsed from it */
    size_t nredis_nodes;
    char *redis_user;            /* user: ACL user for AUTH, or NULL */
    char *redis_password;        /* password, or the first line of password_file; NULL = none */
    char *redis_password_file;   /* password_file: absolute path or NULL */
    char *redis_prefix;          /* prefix: of every key; default "awaitd:" */
    uint64_t redis_connect_timeout_ms; /* connect_timeout: default 2s */
    uint64_t redis_command_timeout_ms; /* command_timeout: default 5s */
    uint64_t redis_replicas_ack;  /* replicas_ack: WAIT for N replicas before a durable answer; 0 */
    char redis_ignored[200];      /* with backend = redis: the local engine's limits set in the file
                                     ("[queues] mem_limit (line 4)"), which do not apply; "" = none */
    /* [console] */
    int console_enabled;          /* enabled: off|on, default on: the web console at /console */
    /* [log] */
    char *log_access;             /* access: NULL or "off" (default: no access log), "stderr", or
                                     an absolute path (relative ones resolved beside the config) */
    char *log_error;              /* error: absolute path the log lines also go to; NULL = stderr only */

    /* [queue NAME] sections */
    struct config_queue queues[CONFIG_MAX_QUEUES];
    size_t nqueues;
};

/*
 * Parse text (a whole file's contents, NUL-terminated) named path for
 * messages. On success returns 0 and *out is a new config (free with
 * config_free). On error returns -1, *out is NULL and err holds one line
 * "PATH:LINE: message". Pure except for token_file, which is read.
 */
int config_parse_text(const char *path, const char *text, struct config **out, char *err,
                      size_t errlen);

/* Read path and parse it. Errors as above (an unreadable file says why). */
int config_load(const char *path, struct config **out, char *err, size_t errlen);

/* Defaults only (no file), for tests and for running without -c. */
struct config *config_defaults(void);

void config_free(struct config *c);

/* Value parsers, exposed for reuse and tests; 0 ok, -1 bad. */
int config_parse_size(const char *s, uint64_t *out);
int config_parse_duration_ms(const char *s, uint64_t *out);
int config_parse_listen(const char *s, struct config_listen *out);
int config_parse_redis_node(const char *s, struct config_redis_node *out);

/*
 * The key table, read-only, for printers such as config_dump (awaitd -T).
 * Kinds mirror config.c's value types: numbers are uint64_t (durations in
 * ms), enums an int indexing names, paths and strings a char * or NULL.
 */
enum config_kind {
    CONFIG_KIND_COUNT, CONFIG_KIND_SIZE, CONFIG_KIND_DURATION, CONFIG_KIND_TOPN, CONFIG_KIND_ENUM,
    CONFIG_KIND_LISTEN, CONFIG_KIND_PATH, CONFIG_KIND_TOKEN, CONFIG_KIND_TOKEN_FILE,
    CONFIG_KIND_STRING
};
struct config_key_info {
    const char *section;      /* "server", "tls", ...; "queue" for every [queue NAME] */
    int per_queue;            /* 1: off is into struct config_queue, else struct config */
    const char *name;
    enum config_kind kind;
    size_t off;               /* of the value (unused for listen) */
    const char *const *names; /* CONFIG_KIND_ENUM: the words, in value order */
};
/* CONFIG_KIND_TOPN: a uint64_t, 0 = off, CONFIG_PER_QUEUE_ALL = on, else top N. */
/* The i-th key, in table order (sections together); 0, or -1 past the last. */
int config_key_info(size_t i, struct config_key_info *out);

/* awaitd -T: write c as a config file (every key, defaults included) to f. */
void config_dump(const struct config *c, FILE *f);

/* After a reload: log one line per setting that differs from old to nc. */
void config_log_changes(const struct config *old, const struct config *nc);

#endif
