/*
 * holdconns: open N keep-alive connections to an HTTP server, send one
 * request on each, read the whole answer, then hold them all open and idle.
 * bench/run.sh uses it to measure a server's memory per idle connection.
 *
 *   holdconns [-a ADDR] -p PORT [-n N] [-r RATE] [-s SETUP_S] [-t HOLD_S] [-u PATH]
 *
 *   -a ADDR    IPv4 address of the server (default 127.0.0.1)
 *   -p PORT    its port (required)
 *   -n N       connections (default 10000)
 *   -r RATE    new connections started per second (default 5000), so that
 *              the server's listen backlog never overflows
 *   -s SETUP_S give up on connections not answered after this (default 60)
 *   -t HOLD_S  hold at most this long, then exit (default 120)
 *   -u PATH    request target (default /get)
 *
 * Output, one line each on stdout:
 *   ready established=E answered=A failed=F pending=P seconds=S
 *       once every connection is answered or has failed (or SETUP_S passed);
 *       the connections are then held idle;
 *   done held=H closed_by_peer=C
 *       on SIGTERM, SIGINT or SIGUSR1, when HOLD_S has passed, or when the
 *       server has closed every connection held.
 * Exit status: 0 if every connection was answered with a 2xx and none was
 * closed by the server while held, 1 otherwise, 2 on a usage error.
 *
 * Linux only (epoll). Needs N + a few file descriptors (ulimit -n).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { ST_CONNECTING, ST_READING, ST_IDLE, ST_DEAD };

struct hconn {
    int fd;
    enum state st;
    char *buf;   /* the answer so far, only while reading */
    size_t len;
    size_t want; /* head + body length once the head is parsed; 0 unknown */
};

#define RBUF 8192

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die_usage(void) {
    fprintf(stderr, "usage: holdconns [-a ADDR] -p PORT [-n N] [-r RATE] [-s SETUP_S] "
                    "[-t HOLD_S] [-u PATH]\n");
    exit(2);
}

static long arg_long(const char *s, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        die_usage();
    return v;
}

static struct hconn *conns;
static int epfd;
static long n_established, n_answered, n_failed, n_closed_by_peer;

static void hconn_kill(struct hconn *h) {
    if (h->fd >= 0)
        close(h->fd); /* also leaves the epoll set */
    h->fd = -1;
    free(h->buf);
    h->buf = NULL;
    h->st = ST_DEAD;
}

/* The head is complete in h->buf: check the status, find Content-Length. */
static int parse_head(struct hconn *h) {
    char *end = memmem(h->buf, h->len, "\r\n\r\n", 4);
    if (!end)
        return h->len < RBUF ? 0 : -1; /* need more, or a head too large */
    size_t head_len = (size_t)(end - h->buf) + 4;
    if (h->len < 12 || memcmp(h->buf, "HTTP/1.", 7) != 0 || h->buf[9] != '2')
        return -1; /* not a 2xx */
    long clen = -1;
    for (char *p = h->buf; p < end; p++) {
        if (*p == '\n' && strncasecmp(p + 1, "content-length:", 15) == 0) {
            clen = strtol(p + 16, NULL, 10);
            break;
        }
    }
    if (clen < 0)
        return -1; /* both servers measured here send a Content-Length */
    h->want = head_len + (size_t)clen;
    return 0;
}

static void on_connected(struct hconn *h, const char *req, size_t req_len) {
    int err = 0;
    socklen_t elen = sizeof err;
    if (getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err) {
        n_failed++;
        hconn_kill(h);
        return;
    }
    n_established++;
    /* A request this small fits in any fresh socket buffer. */
    if (write(h->fd, req, req_len) != (ssize_t)req_len || !(h->buf = malloc(RBUF))) {
        n_failed++;
        hconn_kill(h);
        return;
    }
    h->st = ST_READING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = h};
    epoll_ctl(epfd, EPOLL_CTL_MOD, h->fd, &ev);
}

static void on_readable(struct hconn *h) {
    if (h->st == ST_IDLE) {
        /* An idle connection should hear nothing: EOF or data means the
         * server closed it (or misbehaved). Either way it is not held. */
        char junk[512];
        ssize_t n = read(h->fd, junk, sizeof junk);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        n_closed_by_peer++;
        hconn_kill(h);
        return;
    }
    for (;;) {
        ssize_t n = read(h->fd, h->buf + h->len, RBUF - h->len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            n_failed++;
            hconn_kill(h);
            return;
        }
        h->len += (size_t)n;
        if (!h->want && parse_head(h) < 0) {
            n_failed++;
            hconn_kill(h);
            return;
        }
        if (h->want && h->len >= h->want) {
            n_answered++;
            free(h->buf);
            h->buf = NULL;
            h->st = ST_IDLE;
            return;
        }
        if (h->len == RBUF) {
            /* Keep only what is needed to count the body. */
            if (!h->want) {
                n_failed++;
                hconn_kill(h);
                return;
            }
            h->want -= h->len;
            h->len = 0;
        }
    }
}

int main(int argc, char **argv) {
    const char *addr = "127.0.0.1", *path = "/get";
    long port = 0, n = 10000, rate = 5000, setup_s = 60, hold_s = 120;
    int opt;
    while ((opt = getopt(argc, argv, "a:p:n:r:s:t:u:")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 'p': port = arg_long(optarg, 1, 65535); break;
        case 'n': n = arg_long(optarg, 1, 1000000); break;
        case 'r': rate = arg_long(optarg, 1, 1000000); break;
        case 's': setup_s = arg_long(optarg, 1, 3600); break;
        case 't': hold_s = arg_long(optarg, 0, 86400); break;
        case 'u': path = optarg; break;
        default: die_usage();
        }
    }
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (!port || optind != argc || inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
        die_usage();

    char req[512];
    int req_len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%ld\r\n\r\n", path, addr,
                           port);
    if (req_len <= 0 || (size_t)req_len >= sizeof req)
        die_usage();

    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: wake epoll_wait */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    conns = calloc((size_t)n, sizeof *conns);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || epfd < 0) {
        perror("holdconns: setup");
        return 1;
    }
    struct epoll_event evs[512];
    double t0 = now_s();
    long started = 0;

    /* Phase 1: connect at RATE per second, send, read each whole answer. */
    while (!stop && n_answered + n_failed < n && now_s() - t0 < setup_s) {
        long due = (long)((now_s() - t0) * (double)rate) + 1;
        for (; started < n && started < due; started++) {
            struct hconn *h = &conns[started];
            h->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (h->fd < 0) {
                if (started == n_failed) /* nothing works at all: say why once */
                    perror("holdconns: socket");
                n_failed++;
                h->st = ST_DEAD;
                continue;
            }
            int one = 1;
            setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            h->st = ST_CONNECTING;
            struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = h};
            if ((connect(h->fd, (struct sockaddr *)&sin, sizeof sin) < 0 && errno != EINPROGRESS) ||
                epoll_ctl(epfd, EPOLL_CTL_ADD, h->fd, &ev) < 0) {
                n_failed++;
                hconn_kill(h);
            }
        }
        int k = epoll_wait(epfd, evs, 512, started < n ? 1 : 50);
        for (int i = 0; i < k; i++) {
            struct hconn *h = evs[i].data.ptr;
            if (h->st == ST_CONNECTING)
                on_connected(h, req, (size_t)req_len);
            else if (h->st == ST_READING || h->st == ST_IDLE)
                on_readable(h);
        }
    }
    long pending = n - n_answered - n_failed;
    printf("ready established=%ld answered=%ld failed=%ld pending=%ld seconds=%.2f\n",
           n_established, n_answered, n_failed, pending, now_s() - t0);

    /* Phase 2: hold, watching for connections the server closes. */
    double t1 = now_s();
    while (!stop && now_s() - t1 < hold_s && n_answered > n_closed_by_peer) {
        int k = epoll_wait(epfd, evs, 512, 100);
        for (int i = 0; i < k; i++) {
            struct hconn *h = evs[i].data.ptr;
            if (h->st == ST_IDLE)
                on_readable(h);
            else if (h->st != ST_DEAD) /* late answers are not counted: drop them */
                hconn_kill(h);
        }
    }
    long held = 0;
    for (long i = 0; i < n; i++)
        held += conns[i].st == ST_IDLE;
    printf("done held=%ld closed_by_peer=%ld\n", held, n_closed_by_peer);
    return n_answered == n && n_closed_by_peer == 0 ? 0 : 1;
}
