/*
 * beanstalk_cycle: the peer's side of bench/queue.sh. Drives beanstalkd
 * (its text protocol, plain sockets and poll) the way `awaitload --scenario
 * queue` drives awaitd:
 *
 *   -m cycle  every connection loops put -> reserve-with-timeout 0 -> delete
 *             of the job it got, closed loop (one request outstanding);
 *   -m put    every connection only puts, -P puts in flight (pipelined).
 *
 *   beanstalk_cycle -p PORT [-c CONNS] [-d SECONDS] [-m cycle|put] [-s BYTES]
 *                   [-n MAX_PUTS] [-P DEPTH] [-w epoll|poll]
 *
 * -c connections (default 50), -d how long (default 5 s; after it no cycle
 * starts and the ones under way finish, so the tube is left empty), -s the
 * payload size (default 100 bytes of 'x'), -n put mode: stop after this
 * many puts in all, -P put mode: puts in flight per connection (default 1),
 * -w how the client waits for answers (default epoll).
 *
 * Why -w matters to the server's figure: on loopback the server's send runs
 * the client's side of TCP too, wake-up included. A client that waits in
 * epoll keeps a wait entry on every socket, so each answer runs its
 * callback (ep_poll_callback) in the server's send; a poll client has
 * entries only while it sleeps in poll(). awaitload waits in epoll
 * (libevent), as asyncio and most clients do, so this client does too by
 * default: both servers then pay the same per answer. Measured here
 * (2026-12-03, beanstalkd on CPU 0, 50 connections): beanstalkd's CPU per
 * cycle was 14.2 us with a poll client and 15.4 us with an epoll one.
 * Prints one JSON line: cycles, puts, reserves, deletes, timed_out (a
 * reserve that found nothing and was repeated), duration_s and the rates.
 * Any answer other than the expected ones is an error: the first is printed
 * and the exit status is 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ST_PUT, ST_RESERVE, ST_DELETE, ST_IDLE };

struct conn {
    int fd;
    int state;
    unsigned inflight; /* put mode: puts not yet answered */
    char *out;
    size_t out_len, out_cap;
    char *in;
    size_t in_len, in_cap;
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "beanstalk_cycle: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

static void out_add(struct conn *c, const char *p, size_t n) {
    if (c->out_len + n > c->out_cap) {
        c->out_cap = (c->out_len + n) * 2;
        c->out = realloc(c->out, c->out_cap);
        if (!c->out)
            die("%s", "out of memory");
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

static char *put_req;
static size_t put_len;
static uint64_t cycles, nputs, reserves, deletes, timed_out, max_puts, puts_sent;
static int mode_put, ending, use_poll;
static unsigned depth = 1;

static void send_put(struct conn *c) {
    out_add(c, put_req, put_len);
    c->state = ST_PUT;
    c->inflight++;
    puts_sent++;
}

static void send_reserve(struct conn *c) {
    static const char r[] = "reserve-with-timeout 0\r\n";
    out_add(c, r, sizeof r - 1);
    c->state = ST_RESERVE;
}

static int may_put(void) {
    return !ending && (!max_puts || puts_sent < max_puts);
}

/* Start the next cycle, or go idle. */
static void next(struct conn *c) {
    if (mode_put) {
        while (c->inflight < depth && may_put())
            send_put(c);
        if (c->inflight == 0)
            c->state = ST_IDLE;
        return;
    }
    if (may_put())
        send_put(c);
    else
        c->state = ST_IDLE;
}

/* One answer line (without CRLF) of length n, plus for RESERVED the body
 * after it. Returns the bytes used, or 0 if more are needed. */
static size_t answer(struct conn *c, const char *p, size_t avail) {
    const char *nl = memmem(p, avail, "\r\n", 2);
    if (!nl)
        return 0;
    size_t n = (size_t)(nl - p), used = n + 2;
    char line[160];
    snprintf(line, sizeof line, "%.*s", (int)(n < 150 ? n : 150), p);
    if (strncmp(line, "INSERTED ", 9) == 0 && (c->state == ST_PUT || mode_put)) {
        nputs++;
        if (mode_put) {
            c->inflight--;
            next(c);
        } else {
            c->inflight = 0;
            send_reserve(c);
        }
        return used;
    }
    if (c->state == ST_RESERVE && strncmp(line, "RESERVED ", 9) == 0) {
        unsigned long long id, bytes;
        if (sscanf(line + 9, "%llu %llu", &id, &bytes) != 2)
            die("bad answer: %s", line);
        if (avail < used + bytes + 2)
            return 0;
        used += bytes + 2;
        reserves++;
        char del[48];
        int dl = snprintf(del, sizeof del, "delete %llu\r\n", id);
        out_add(c, del, (size_t)dl);
        c->state = ST_DELETE;
        return used;
    }
    if (c->state == ST_RESERVE &&
        (strcmp(line, "TIMED_OUT") == 0 || strcmp(line, "DEADLINE_SOON") == 0)) {
        timed_out++;
        send_reserve(c);
        return used;
    }
    if (c->state == ST_DELETE && strcmp(line, "DELETED") == 0) {
        deletes++;
        cycles++;
        next(c);
        return used;
    }
    die("unexpected answer: %s", line);
    return 0;
}

int main(int argc, char **argv) {
    int port = 0, nconns = 50, size = 100, ch;
    double secs = 5;
    while ((ch = getopt(argc, argv, "p:c:d:m:s:n:P:w:")) != -1) {
        switch (ch) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'c':
            nconns = atoi(optarg);
            break;
        case 'd':
            secs = atof(optarg);
            break;
        case 'm':
            if (strcmp(optarg, "put") == 0)
                mode_put = 1;
            else if (strcmp(optarg, "cycle") != 0)
                die("-m %s: expected cycle or put", optarg);
            break;
        case 's':
            size = atoi(optarg);
            break;
        case 'n':
            max_puts = strtoull(optarg, NULL, 10);
            break;
        case 'P':
            depth = (unsigned)atoi(optarg);
            break;
        case 'w':
            if (strcmp(optarg, "poll") == 0)
                use_poll = 1;
            else if (strcmp(optarg, "epoll") != 0)
                die("-w %s: expected epoll or poll", optarg);
            break;
        default:
            fprintf(stderr, "usage: beanstalk_cycle -p PORT [-c CONNS] [-d SECONDS] "
                            "[-m cycle|put] [-s BYTES] [-n MAX_PUTS] [-P DEPTH] [-w epoll|poll]\n");
            return 2;
        }
    }
    if (port <= 0 || nconns <= 0 || size < 0 || secs <= 0 || depth < 1)
        die("%s", "bad options (see the comment at the top of beanstalk_cycle.c)");
    signal(SIGPIPE, SIG_IGN);

    char head[64];
    int hl = snprintf(head, sizeof head, "put 0 0 120 %d\r\n", size);
    put_len = (size_t)hl + (size_t)size + 2;
    put_req = malloc(put_len);
    memcpy(put_req, head, (size_t)hl);
    memset(put_req + hl, 'x', (size_t)size);
    memcpy(put_req + hl + size, "\r\n", 2);

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    struct pollfd *pfd = calloc((size_t)nconns, sizeof *pfd);
    struct epoll_event *evs = calloc((size_t)nconns, sizeof *evs);
    int *ready = calloc((size_t)nconns, sizeof *ready);
    int ep = use_poll ? -1 : epoll_create1(EPOLL_CLOEXEC);
    if (!pfd || !evs || !ready || (!use_poll && ep < 0))
        die("%s", "out of memory or no epoll");
    for (int i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            die("connect: %s", strerror(errno));
        c->in_cap = 1 << 16;
        c->in = malloc(c->in_cap);
        /* epoll: registered once, level-triggered, as libevent does for awaitload */
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (!use_poll && epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e) < 0)
            die("epoll_ctl: %s", strerror(errno));
    }
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9), last = t0;
    uint64_t hard_end = end + 10000000000u;
    for (int i = 0; i < nconns; i++)
        next(&conns[i]);
    for (;;) {
        uint64_t now = now_ns();
        if (!ending && now >= end)
            ending = 1;
        if (now >= hard_end)
            die("%s", "cycles under way did not finish within 10 s of the end");
        int live = 0;
        for (int i = 0; i < nconns; i++) {
            struct conn *c = &conns[i];
            /* write what is pending (blocking sockets: small requests go at once) */
            size_t off = 0;
            while (off < c->out_len) {
                ssize_t n = send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);
                if (n < 0) {
                    if (errno == EINTR)
                        continue;
                    die("send: %s", strerror(errno));
                }
                off += (size_t)n;
            }
            c->out_len = 0;
            if (!use_poll && c->state == ST_IDLE && pfd[i].fd >= 0)
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); /* done: no more readiness */
            pfd[i].fd = c->state == ST_IDLE ? -1 : c->fd;
            pfd[i].events = POLLIN;
            live += c->state != ST_IDLE;
        }
        if (!live)
            break;
        int ms = ending ? 100 : (int)((end - now) / 1000000u) + 1;
        int n = use_poll ? poll(pfd, (nfds_t)nconns, ms) : epoll_wait(ep, evs, nconns, ms);
        if (n < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        int nready = 0;
        for (int i = 0; i < nconns && n > 0; i++) {
            if (use_poll ? pfd[i].revents != 0 : i < n)
                ready[nready++] = use_poll ? i : (int)evs[i].data.u32;
        }
        for (int k = 0; k < nready; k++) {
            int i = ready[k];
            struct conn *c = &conns[i];
            if (c->in_cap - c->in_len < 4096) {
                c->in_cap *= 2;
                c->in = realloc(c->in, c->in_cap);
            }
            ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
            if (r == 0)
                die("%s", "beanstalkd closed a connection");
            if (r < 0) {
                if (errno == EINTR || errno == EAGAIN)
                    continue;
                die("recv: %s", strerror(errno));
            }
            c->in_len += (size_t)r;
            size_t off = 0, used;
            while (off < c->in_len && c->state != ST_IDLE &&
                   (used = answer(c, c->in + off, c->in_len - off)) > 0) {
                off += used;
                last = now_ns();
            }
            memmove(c->in, c->in + off, c->in_len - off);
            c->in_len -= off;
        }
    }
    double dur = (double)(last - t0) / 1e9;
    printf("{\"mode\": \"%s\", \"connections\": %d, \"cycles\": %llu, \"puts\": %llu, "
           "\"reserves\": %llu, \"deletes\": %llu, \"timed_out\": %llu, \"duration_s\": %.3f, "
           "\"cycles_per_s\": %.1f, \"puts_per_s\": %.1f}\n",
           mode_put ? "put" : "cycle", nconns, (unsigned long long)cycles,
           (unsigned long long)nputs, (unsigned long long)reserves, (unsigned long long)deletes,
           (unsigned long long)timed_out, dur, dur > 0 ? (double)cycles / dur : 0.0,
           dur > 0 ? (double)nputs / dur : 0.0);
    for (int i = 0; i < nconns; i++) {
        close(conns[i].fd);
        free(conns[i].in);
        free(conns[i].out);
    }
    free(conns);
    free(pfd);
    free(evs);
    free(ready);
    if (ep >= 0)
        close(ep);
    free(put_req);
    return 0;
}
