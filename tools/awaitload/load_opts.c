#include "load_opts.h"

#include "ac_config.h"
#include "core/buf.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LOAD_VERSION PACKAGE_VERSION
#define MAX_BODY_FILE (64u * 1024 * 1024)

static const char usage_text[] =
    "usage: awaitload [options] URL\n"
    "       awaitload --scenario seed [--delays LIST] URL\n"
    "       awaitload --scenario queue [queue options] http://host:port/queues/NAME\n"
    "\n"
    "Load an HTTP/1.1 server over keep-alive connections and report latency\n"
    "percentiles, status classes and errors. URL is http[s]://host[:port]/path?query\n"
    "(host: a name, IPv4, or [IPv6]). Over https:// the TLS handshakes of new\n"
    "connections are timed apart from the requests (no session resumption).\n"
    "\n"
    "  -c, --connections N   connections to hold open (default 10)\n"
    "  -d, --duration D      run this long: 10s, 500ms, 2m, 1h; bare = seconds\n"
    "                        (default 10s unless -n is given)\n"
    "  -n, --requests N      stop after N requests (responses plus failures);\n"
    "                        with --scenario queue, after N cycles\n"
    "  -t, --threads N       threads, each with its own event loop (default 1)\n"
    "  -R, --rate N          open loop: N requests/s in total, spread evenly over\n"
    "                        the connections; latency counts from when each request\n"
    "                        was due, so a stall is not hidden (coordinated\n"
    "                        omission). Without -R: closed loop (each connection\n"
    "                        sends its next request when the answer arrives).\n"
    "  -m, --method M        request method (default GET; HEAD expects no body)\n"
    "  -H, --header 'N: V'   add a request header (repeatable; Host replaces ours)\n"
    "  -b, --body S          request body (sent with Content-Length); with\n"
    "                        --scenario queue, each job's payload (default 100 x's)\n"
    "      --body-file F     request body from a file (at most 64 MiB)\n"
    "      --timeout D       a connect, or a response making no progress, fails\n"
    "                        after D (default 10s)\n"
    "      --connect-rate N  new connections per second, all threads together\n"
    "                        (default 20000, in bursts of at most 10 ms worth), so\n"
    "                        opening thousands does not overflow a listen backlog\n"
    "      --fit-fds         if -c needs more file descriptors than the limit\n"
    "                        allows, open what fits instead of refusing to start\n"
    "      --json            print one JSON summary on stdout instead of text, with\n"
    "                        the latency histogram and a per-second timeline; a\n"
    "                        failed run prints {\"error\": ...} too\n"
    "      --histogram       add the latency histogram to the text report\n"
    "      --insecure        https:// without verifying the server's certificate\n"
    "                        (self-signed targets); by default it must chain to\n"
    "                        the system's CAs and name the URL's host\n"
    "      --h2              HTTP/2 with prior knowledge (h2c, http:// only), GET or\n"
    "                        HEAD without a body, closed loop\n"
    "      --streams N       --h2: requests in flight on each connection (default 1)\n"
    "      --scenario NAME   seed: fetch /delay/D for each of --delays one after\n"
    "                        another, then all at once, and print both times;\n"
    "                        queue: awaitd's work queue (see below)\n"
    "      --delays LIST     seconds for the seed scenario (default 1,2,3)\n"
    "  -h, --help            this text\n"
    "  -V, --version         print the version\n"
    "\n"
    "--scenario queue creates the queue (PUT /queues/NAME), then each connection\n"
    "loops put (POST .../jobs) -> reserve (POST .../reserve?wait=1) -> ack (POST\n"
    ".../jobs/ID/ack): a cycle. Reported: cycles/s, jobs/s, cycle latency and\n"
    "each step's latency. -H applies to every request (Authorization: Bearer T).\n"
    "      --producers P     P connections only put (with wait=, backpressure) ...\n"
    "      --consumers C     ... and C only reserve and ack; replaces -c with P+C\n"
    "                        (either may be 0: --consumers 0 is a put-only run)\n"
    "      --batch N         N jobs per put (framed batch) and up to N per reserve\n"
    "                        (count=N), acked with one batch ack (POST .../acks)\n"
    "                        (default 1; reserve takes at most 100)\n"
    "      --maxsize N       the queue's maxsize, set by the PUT (default 0: none)\n"
    "      --put-wait D      a producer's wait= while the queue is full (default 5s;\n"
    "                        cycles put without wait and retry a 503 after 10 ms)\n"
    "\n"
    "Numbers take k (1000) or M (1000000) suffixes: -c 10k. A progress line is\n"
    "shown once a second when stderr is a terminal. Exit status: 0 when the run\n"
    "got responses, 1 when it got none (cannot connect, garbage, timeouts), 2 for\n"
    "bad options or limits, 3 when an open loop (-R) reached less than 90% of its\n"
    "target rate (said on stderr: the numbers then describe a slower load).\n";

enum {
    OPT_BODY_FILE = 256,
    OPT_TIMEOUT,
    OPT_CONNECT_RATE,
    OPT_FIT_FDS,
    OPT_JSON,
    OPT_HISTOGRAM,
    OPT_SCENARIO,
    OPT_INSECURE,
    OPT_DELAYS,
    OPT_PRODUCERS,
    OPT_CONSUMERS,
    OPT_BATCH,
    OPT_MAXSIZE,
    OPT_PUT_WAIT,
    OPT_H2,
    OPT_STREAMS,
};

static const struct option long_opts[] = {
    {"connections", required_argument, NULL, 'c'},
    {"duration", required_argument, NULL, 'd'},
    {"requests", required_argument, NULL, 'n'},
    {"threads", required_argument, NULL, 't'},
    {"rate", required_argument, NULL, 'R'},
    {"method", required_argument, NULL, 'm'},
    {"header", required_argument, NULL, 'H'},
    {"body", required_argument, NULL, 'b'},
    {"body-file", required_argument, NULL, OPT_BODY_FILE},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"connect-rate", required_argument, NULL, OPT_CONNECT_RATE},
    {"fit-fds", no_argument, NULL, OPT_FIT_FDS},
    {"json", no_argument, NULL, OPT_JSON},
    {"histogram", no_argument, NULL, OPT_HISTOGRAM},
    {"scenario", required_argument, NULL, OPT_SCENARIO},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"h2", no_argument, NULL, OPT_H2},
    {"streams", required_argument, NULL, OPT_STREAMS},
    {"delays", required_argument, NULL, OPT_DELAYS},
    {"producers", required_argument, NULL, OPT_PRODUCERS},
    {"consumers", required_argument, NULL, OPT_CONSUMERS},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"maxsize", required_argument, NULL, OPT_MAXSIZE},
    {"put-wait", required_argument, NULL, OPT_PUT_WAIT},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* The last option error, for --json (load_opts_error). */
static char last_error[512];

const char *load_opts_error(void) {
    return last_error;
}

/* One line on stderr, then -1: every option error ends the same way. */
static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    fprintf(stderr, "awaitload: %s (see awaitload -h)\n", last_error);
    return -1;
}

int64_t load_parse_duration_us(const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v) || v < 0 || isspace((unsigned char)*s))
        return -1;
    double mult = 1e6;
    if (strcmp(end, "ms") == 0)
        mult = 1e3;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        mult = 1e6;
    else if (strcmp(end, "m") == 0)
        mult = 60e6;
    else if (strcmp(end, "h") == 0)
        mult = 3600e6;
    else
        return -1;
    double us = v * mult;
    if (us > 8760.0 * 3600e6) /* a year is plenty */
        return -1;
    return (int64_t)us;
}

/* A positive number with an optional k or M suffix; -1 if bad. */
static double parse_count(const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v) || v <= 0 || isspace((unsigned char)*s))
        return -1;
    if (*end == 'k' || *end == 'K')
        v *= 1e3, end++;
    else if (*end == 'M')
        v *= 1e6, end++;
    return *end ? -1 : v;
}

/* A count that may be 0 (k and M suffixes as above); -1 if bad. */
static int parse_count0(const char *arg, double max, uint64_t *out) {
    if (strcmp(arg, "0") == 0) {
        *out = 0;
        return 0;
    }
    double v = parse_count(arg);
    if (v < 1 || v > max || v != floor(v))
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int parse_int_opt(const char *arg, double max, uint64_t *out, const char *what) {
    double v = parse_count(arg);
    if (v < 1 || v > max || v != floor(v))
        return bad(what, arg);
    *out = (uint64_t)v;
    return 0;
}

static int is_tchar(unsigned char c) {
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int check_header(const char *h) {
    const char *colon = strchr(h, ':');
    if (!colon || colon == h)
        return bad("-H '%s': expected 'Name: value'", h);
    for (const char *p = h; p < colon; p++)
        if (!is_tchar((unsigned char)*p))
            return bad("-H '%s': invalid character in the header name", h);
    if (strpbrk(h, "\r\n"))
        return bad("-H '%s': line breaks are not allowed", h);
    size_t n = (size_t)(colon - h);
    if ((n == 14 && strncasecmp(h, "Content-Length", n) == 0) ||
        (n == 17 && strncasecmp(h, "Transfer-Encoding", n) == 0))
        return bad("-H '%s': awaitload frames the body itself (use -b or --body-file)", h);
    return 0;
}

static int read_body_file(struct load_opts *o, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        return bad("--body-file %s: %s", path, strerror(errno));
    }
    struct buf b = BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > MAX_BODY_FILE || buf_append(&b, chunk, n) < 0) {
            fclose(f);
            buf_free(&b);
            return bad("--body-file %s: larger than 64 MiB", path);
        }
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        buf_free(&b);
        return bad("--body-file %s: read error", path);
    }
    o->body = b.data; /* off is 0: nothing was consumed */
    o->body_len = b.len;
    o->has_body = 1;
    return 0;
}

static int parse_delays(struct load_opts *o, const char *arg) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", arg);
    o->ndelays = 0;
    for (char *save, *tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        double v = strtod(tok, &end);
        if (end == tok || *end || !isfinite(v) || v < 0 || v > 3600 ||
            o->ndelays == LOAD_MAX_DELAYS)
            return bad("--delays '%s': expected up to 64 comma-separated seconds", arg);
        o->delays[o->ndelays++] = v;
    }
    return o->ndelays ? 0 : bad("--delays '%s': empty list", arg);
}

struct seen {
    int d, c, n, m, R, queue_opt;
};

static int parse_one(struct load_opts *o, int ch, const char *arg, struct seen *saw) {
    int64_t us;
    uint64_t v = 0;
    switch (ch) {
    case 'c':
        saw->c = 1;
        return parse_int_opt(arg, 1e6, &o->connections, "-c %s: expected 1 to 1000000");
    case 'd':
        if ((us = load_parse_duration_us(arg)) <= 0)
            return bad("-d %s: expected a duration > 0 such as 10s or 500ms", arg);
        o->duration_us = (uint64_t)us;
        saw->d = 1;
        return 0;
    case 'n':
        return parse_int_opt(arg, 1e15, &o->requests, "-n %s: expected a count >= 1");
    case 't':
        if (parse_int_opt(arg, 256, &v, "-t %s: expected 1 to 256") < 0)
            return -1;
        o->threads = (unsigned)v;
        return 0;
    case 'R':
        saw->R = 1;
        if ((o->rate = parse_count(arg)) <= 0 || o->rate > 1e8)
            return bad("-R %s: expected a rate > 0 (requests per second)", arg);
        return 0;
    case 'm':
        saw->m = 1;
        for (const char *p = arg; *p; p++)
            if (!is_tchar((unsigned char)*p))
                return bad("-m '%s': not a method token", arg);
        if (!*arg)
            return bad("-m '%s': empty method", arg);
        o->method = arg;
        return 0;
    case 'H':
        if (check_header(arg) < 0)
            return -1;
        if (o->nheaders == LOAD_MAX_HEADERS)
            return bad("-H %s: at most 64 headers", arg);
        o->headers[o->nheaders++] = arg;
        return 0;
    case 'b':
        if (o->has_body)
            return bad("-b: a body was already given");
        o->body = strdup(arg);
        if (!o->body)
            return bad("out of memory");
        o->body_len = strlen(arg);
        o->has_body = 1;
        return 0;
    case OPT_BODY_FILE:
        if (o->has_body)
            return bad("--body-file: a body was already given");
        return read_body_file(o, arg);
    case OPT_TIMEOUT:
        if ((us = load_parse_duration_us(arg)) <= 0)
            return bad("--timeout %s: expected a duration > 0", arg);
        o->timeout_us = (uint64_t)us;
        return 0;
    case OPT_CONNECT_RATE:
        if ((o->connect_rate = parse_count(arg)) <= 0)
            return bad("--connect-rate %s: expected connections per second > 0", arg);
        return 0;
    case OPT_FIT_FDS:
        o->fit_fds = 1;
        return 0;
    case OPT_JSON:
        o->json = 1;
        return 0;
    case OPT_HISTOGRAM:
        o->histogram = 1;
        return 0;
    case OPT_INSECURE:
        o->insecure = 1;
        return 0;
    case OPT_H2:
        o->h2 = 1;
        return 0;
    case OPT_STREAMS:
        if (parse_int_opt(arg, 1e5, &v, "--streams %s: expected 1 to 100000") < 0)
            return -1;
        o->streams = (unsigned)v;
        return 0;
    case OPT_SCENARIO:
        if (strcmp(arg, "seed") == 0)
            o->scenario = LOAD_SCENARIO_SEED;
        else if (strcmp(arg, "queue") == 0)
            o->scenario = LOAD_SCENARIO_QUEUE;
        else
            return bad("--scenario %s: expected seed or queue", arg);
        return 0;
    case OPT_DELAYS:
        return parse_delays(o, arg);
    case OPT_PRODUCERS:
    case OPT_CONSUMERS:
        saw->queue_opt = 1;
        o->split = 1;
        if (parse_count0(arg, 1e6, ch == OPT_PRODUCERS ? &o->producers : &o->consumers) < 0)
            return bad("--%s %s: expected 0 to 1000000",
                       ch == OPT_PRODUCERS ? "producers" : "consumers", arg);
        return 0;
    case OPT_BATCH:
        saw->queue_opt = 1;
        return parse_int_opt(arg, 100000, &o->batch, "--batch %s: expected 1 to 100000");
    case OPT_MAXSIZE:
        saw->queue_opt = 1;
        if (parse_count0(arg, 1e15, &o->maxsize) < 0)
            return bad("--maxsize %s: expected a count (0: no limit)", arg);
        return 0;
    case OPT_PUT_WAIT:
        saw->queue_opt = 1;
        if ((us = load_parse_duration_us(arg)) < 0 || us > 3600000000)
            return bad("--put-wait %s: expected a duration from 0 to 1h", arg);
        o->put_wait_us = (uint64_t)us;
        return 0;
    default:
        return bad("unknown option");
    }
}

int load_opts_parse(struct load_opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    o->connections = 10;
    o->threads = 1;
    o->method = "GET";
    o->timeout_us = 10000000;
    o->connect_rate = 20000;
    o->delays[0] = 1, o->delays[1] = 2, o->delays[2] = 3;
    o->ndelays = 3;
    o->batch = 1;
    o->put_wait_us = 5000000;

    struct seen saw = {0};
    int ch;
    opterr = 0; /* our own one-line messages */
    while ((ch = getopt_long(argc, argv, ":c:d:n:t:R:m:H:b:hV", long_opts, NULL)) != -1) {
        if (ch == 'h') {
            fputs(usage_text, stdout);
            return 1;
        }
        if (ch == 'V') {
            printf("awaitload " LOAD_VERSION "\n");
            return 1;
        }
        if (ch == ':')
            return bad("option %s needs a value", argv[optind - 1]);
        if (ch == '?')
            return optopt ? bad("unknown option -%c", optopt)
                          : bad("unknown option %s", argv[optind - 1]);
        if (parse_one(o, ch, optarg, &saw) < 0)
            return -1;
    }
    if (optind == argc)
        return bad("missing URL");
    if (optind + 1 < argc)
        return bad("unexpected argument '%s' (one URL only)", argv[optind + 1]);
    o->url = argv[optind];
    if (o->scenario == LOAD_SCENARIO_QUEUE) {
        if (saw.R)
            return bad("-R: the queue scenario is a closed loop");
        if (saw.m)
            return bad("-m: the queue scenario chooses its own methods");
        if (o->split) {
            if (o->producers + o->consumers == 0)
                return bad("--producers and --consumers: at least one connection is needed");
            if (saw.c && o->connections != o->producers + o->consumers)
                return bad("-c %llu: with --producers and --consumers the connections are "
                           "P + C (%llu)",
                           (unsigned long long)o->connections,
                           (unsigned long long)(o->producers + o->consumers));
            o->connections = o->producers + o->consumers;
        }
        if (!o->has_body) {
            o->body = malloc(100);
            if (!o->body)
                return bad("out of memory");
            memset(o->body, 'x', 100);
            o->body_len = 100;
            o->has_body = 1;
        }
    } else if (saw.queue_opt) {
        return bad("--producers, --consumers, --batch, --maxsize and --put-wait need "
                   "--scenario queue");
    }
    if (o->h2 && (saw.R || o->has_body || o->scenario != LOAD_SCENARIO_URL || o->nheaders))
        return bad("--h2: a closed loop of one GET or HEAD without -R, -H, a body or "
                   "--scenario");
    if (o->streams && !o->h2)
        return bad("--streams needs --h2");
    if (!saw.d && !o->requests)
        o->duration_us = 10000000; /* the default run is 10 s */
    if (o->threads > o->connections) {
        return bad("-t %u is more than -c %llu: each thread needs a connection", o->threads,
                   (unsigned long long)o->connections);
    }
    return 0;
}

void load_opts_free(struct load_opts *o) {
    free(o->body);
    o->body = NULL;
}

static int has_header(const struct load_opts *o, const char *name) {
    size_t n = strlen(name);
    for (unsigned i = 0; i < o->nheaders; i++)
        if (strncasecmp(o->headers[i], name, n) == 0 && o->headers[i][n] == ':')
            return 1;
    return 0;
}

int load_opts_render_fields(const struct load_opts *o, const char *host_header, struct buf *out) {
    int r = 0;
    if (!has_header(o, "Host"))
        r |= buf_appendf(out, "Host: %s\r\n", host_header);
    for (unsigned i = 0; i < o->nheaders; i++)
        r |= buf_appendf(out, "%s\r\n", o->headers[i]);
    return r ? -1 : 0;
}

/* Only Host and the user's fields: every byte more is parsing the server
 * does per request, which a benchmark should not add (wrk sends the same). */
int load_opts_render_request(const struct load_opts *o, const char *host_header, const char *target,
                             struct buf *out) {
    int r = buf_appendf(out, "%s %s HTTP/1.1\r\n", o->method, target);
    r |= load_opts_render_fields(o, host_header, out);
    if (o->has_body) {
        r |= buf_appendf(out, "Content-Length: %zu\r\n\r\n", o->body_len);
        r |= buf_append(out, o->body, o->body_len);
    } else {
        r |= buf_appends(out, "\r\n");
    }
    return r ? -1 : 0;
}
