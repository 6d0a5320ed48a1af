/*
 * load_opts: awaitload's command line, its usage text, and the one request
 * every connection sends, rendered once before the run.
 */
#ifndef AWAITD_LOAD_OPTS_H
#define AWAITD_LOAD_OPTS_H

#include <stddef.h>
#include <stdint.h>

#define LOAD_MAX_HEADERS 64
#define LOAD_MAX_DELAYS 64

struct buf;

enum load_scenario { LOAD_SCENARIO_URL = 0, LOAD_SCENARIO_SEED, LOAD_SCENARIO_QUEUE };

struct load_opts {
    uint64_t connections;                  /* -c */
    uint64_t duration_us;                  /* -d; 0 = none (then -n ends the run) */
    uint64_t requests;                     /* -n; 0 = no limit */
    unsigned threads;                      /* -t */
    double rate;                           /* -R; 0 = closed loop */
    const char *method;                    /* -m */
    const char *headers[LOAD_MAX_HEADERS]; /* -H, as given */
    unsigned nheaders;
    char *body; /* -b or --body-file (owned) */
    size_t body_len;
    int has_body;
    uint64_t timeout_us; /* --timeout */
    double connect_rate; /* --connect-rate, connections/s */
    int json;            /* --json */
    int histogram;       /* --histogram */
    int fit_fds;         /* --fit-fds: fewer connections rather than fail */
    int insecure;        /* --insecure: https:// without checking the server's certificate */
    int h2;              /* --h2: HTTP/2 with prior knowledge (h2c) */
    unsigned streams;    /* --streams: HTTP/2 requests in flight per connection (default 1) */
    enum load_scenario scenario;
    double delays[LOAD_MAX_DELAYS]; /* --delays, seconds, for --scenario seed */
    unsigned ndelays;
    /* --scenario queue: */
    uint64_t producers, consumers; /* --producers/--consumers; both 0 = combined cycles */
    int split;                     /* either was given: producers and consumers apart */
    uint64_t batch;                /* --batch: jobs per put and per reserve (default 1) */
    uint64_t maxsize;              /* --maxsize: the queue's maxsize when created (0) */
    uint64_t put_wait_us;          /* --put-wait: a put's wait= (default 5s) */
    const char *url;
};

/* Parsed from argv. Returns 0 to run, 1 when -h or -V was answered (exit 0),
 * or -1 after printing a one-line error (exit 2). */
int load_opts_parse(struct load_opts *o, int argc, char **argv);
void load_opts_free(struct load_opts *o);
/* The message of the last option error ("" if none), without "awaitload: ". */
const char *load_opts_error(void);

/* Render "METHOD target HTTP/1.1" plus Host (unless -H gives one), the -H fields,
 * Content-Length and the body. Returns 0 or -1 (out of memory). */
int load_opts_render_request(const struct load_opts *o, const char *host_header, const char *target,
                             struct buf *out);

/* The header fields every request carries: Host (unless -H gives one) and the
 * -H fields, each ending in CRLF. Returns 0 or -1 (out of memory). */
int load_opts_render_fields(const struct load_opts *o, const char *host_header, struct buf *out);

/* "1.5s", "250ms", "2m", "1h", or bare seconds -> microseconds; -1 if bad. */
int64_t load_parse_duration_us(const char *s);

#endif
