#include "load_seed.h"

#include "core/buf.h"
#include "core/clock.h"
#include "load_report.h"
#include "load_resp.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { F_CONNECTING, F_WRITING, F_READING, F_DONE };

struct fetch {
    int fd;
    int state;
    double delay;
    struct buf req;
    size_t wpos;
    struct buf in; /* a response head not yet complete */
    struct load_resp resp;
};

static int fetch_fail(struct fetch *f, const char *what, const char *detail, char *err,
                      size_t errlen) {
    snprintf(err, errlen, "/delay/%g: %s%s%s", f->delay, what, detail ? ": " : "",
             detail ? detail : "");
    return -1;
}

static int fetch_start(struct fetch *f, const struct load_addr *a, char *err, size_t errlen) {
    f->fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (f->fd < 0)
        return fetch_fail(f, "socket", strerror(errno), err, errlen);
    int one = 1;
    setsockopt(f->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    f->state = F_CONNECTING;
    f->wpos = 0;
    if (connect(f->fd, (const struct sockaddr *)&a->ss, a->len) < 0 && errno != EINPROGRESS)
        return fetch_fail(f, "connect", strerror(errno), err, errlen);
    return 0;
}

/* One step on readiness. Returns 0 (progress or done) or -1 with err set. */
static int fetch_step(struct fetch *f, short revents, struct http_response *scratch, char *err,
                      size_t errlen) {
    if (f->state == F_CONNECTING) {
        int e = 0;
        socklen_t len = sizeof e;
        getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &e, &len);
        if (e)
            return fetch_fail(f, "connect", strerror(e), err, errlen);
        f->state = F_WRITING;
    }
    if (f->state == F_WRITING) {
        ssize_t n = send(f->fd, buf_start(&f->req) + f->wpos, f->req.len - f->wpos, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return fetch_fail(f, "send", strerror(errno), err, errlen);
        if (n > 0 && (f->wpos += (size_t)n) == f->req.len)
            f->state = F_READING;
        return 0;
    }
    if (!(revents & (POLLIN | POLLHUP | POLLERR)))
        return 0;
    char chunk[16384];
    ssize_t n = recv(f->fd, chunk, sizeof chunk, 0);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR
                   ? 0
                   : fetch_fail(f, "recv", strerror(errno), err, errlen);
    if (n == 0) {
        if (!load_resp_eof(&f->resp))
            return fetch_fail(f, "connection closed before the response ended", NULL, err, errlen);
        f->state = F_DONE;
        return 0;
    }
    if (buf_append(&f->in, chunk, (size_t)n) < 0)
        return fetch_fail(f, "out of memory", NULL, err, errlen);
    const char *why = "malformed response";
    ssize_t used = load_resp_feed(&f->resp, buf_start(&f->in), f->in.len, scratch, &why);
    if (used < 0)
        return fetch_fail(f, "bad response", why, err, errlen);
    buf_consume(&f->in, (size_t)used);
    if (f->resp.state == LOAD_RESP_DONE)
        f->state = F_DONE;
    return 0;
}

/* Run fetches f[0..n) at once until all are done; -1 with err on the first failure. */
static int fetch_batch(struct fetch *f, size_t n, const struct load_addr *a, uint64_t timeout_ms,
                       struct http_response *scratch, char *err, size_t errlen) {
    struct pollfd pfd[LOAD_MAX_DELAYS];
    uint64_t deadline = clock_now_ms() + timeout_ms;
    for (size_t i = 0; i < n; i++)
        if (fetch_start(&f[i], a, err, errlen) < 0)
            return -1;
    for (;;) {
        size_t live = 0;
        for (size_t i = 0; i < n; i++) {
            pfd[i].fd = f[i].state == F_DONE ? -1 : f[i].fd;
            pfd[i].events = f[i].state == F_READING ? POLLIN : POLLOUT;
            pfd[i].revents = 0;
            live += f[i].state != F_DONE;
        }
        if (!live)
            return 0;
        uint64_t now = clock_now_ms();
        if (now >= deadline) {
            snprintf(err, errlen, "no answer within %.1f s", (double)timeout_ms / 1e3);
            return -1;
        }
        if (poll(pfd, n, (int)(deadline - now)) < 0 && errno != EINTR) {
            snprintf(err, errlen, "poll: %s", strerror(errno));
            return -1;
        }
        for (size_t i = 0; i < n; i++)
            if (pfd[i].revents && fetch_step(&f[i], pfd[i].revents, scratch, err, errlen) < 0)
                return -1;
    }
}

static void fetch_reset(struct fetch *f, size_t n, int head_request) {
    for (size_t i = 0; i < n; i++) {
        if (f[i].fd >= 0)
            close(f[i].fd);
        f[i].fd = -1;
        f[i].state = F_CONNECTING;
        buf_reset(&f[i].in);
        load_resp_begin(&f[i].resp, head_request);
    }
}

/* Both runs' statuses must be 2xx, or the times mean nothing. */
static int fetch_check_status(const struct fetch *f, size_t n, char *err, size_t errlen) {
    for (size_t i = 0; i < n; i++) {
        if (f[i].resp.status / 100 != 2) {
            snprintf(err, errlen, "/delay/%g answered %d (is it over the server's max_delay?)",
                     f[i].delay, f[i].resp.status);
            return -1;
        }
    }
    return 0;
}

int load_seed_run(const struct load_opts *o, const struct load_url *u, const struct load_addr *a) {
    size_t n = o->ndelays;
    struct fetch f[LOAD_MAX_DELAYS];
    struct http_response *scratch = malloc(sizeof *scratch);
    double sum = 0, longest = 0;
    int head_request = strcmp(o->method, "HEAD") == 0, rc = 1;
    char err[256] = "out of memory";
    memset(f, 0, sizeof f);
    for (size_t i = 0; i < n; i++)
        f[i].fd = -1;
    for (size_t i = 0; i < n; i++) {
        char target[64];
        f[i].delay = o->delays[i];
        snprintf(target, sizeof target, "/delay/%g", o->delays[i]);
        if (load_opts_render_request(o, u->host_header, target, &f[i].req) < 0)
            goto out;
        sum += o->delays[i];
        if (o->delays[i] > longest)
            longest = o->delays[i];
    }
    if (!scratch)
        goto out;
    uint64_t timeout_ms = (uint64_t)(sum * 1e3) + o->timeout_us / 1000u;

    fetch_reset(f, n, head_request);
    uint64_t t0 = clock_now_us();
    for (size_t i = 0; i < n; i++)
        if (fetch_batch(&f[i], 1, a, timeout_ms, scratch, err, sizeof err) < 0 ||
            fetch_check_status(&f[i], 1, err, sizeof err) < 0)
            goto out;
    double seq = (double)(clock_now_us() - t0) / 1e6;

    fetch_reset(f, n, head_request);
    t0 = clock_now_us();
    if (fetch_batch(f, n, a, timeout_ms, scratch, err, sizeof err) < 0 ||
        fetch_check_status(f, n, err, sizeof err) < 0)
        goto out;
    double conc = (double)(clock_now_us() - t0) / 1e6;

    if (o->json) {
        printf("{\"scenario\": \"seed\", \"delays_s\": [");
        for (size_t i = 0; i < n; i++)
            printf("%s%g", i ? ", " : "", o->delays[i]);
        printf("], \"sequential_s\": %.3f, \"concurrent_s\": %.3f, \"speedup\": %.2f}\n", seq, conc,
               conc > 0 ? seq / conc : 0.0);
    } else {
        printf("seed: %zu requests to /delay/{", n);
        for (size_t i = 0; i < n; i++)
            printf("%s%g", i ? "," : "", o->delays[i]);
        printf("} on %s\n", a->text);
        printf("  sequential  %.3f s  (one after another: about the sum of the delays, %.3f s)\n",
               seq, sum);
        printf("  concurrent  %.3f s  (all at once: about the longest delay, %.3f s)\n", conc,
               longest);
        printf("  speedup     %.2fx\n", conc > 0 ? seq / conc : 0.0);
    }
    rc = 0;
out:
    if (rc)
        load_report_fail(o->json, o->url, rc, "seed: %s", err);
    fetch_reset(f, n, head_request);
    for (size_t i = 0; i < n; i++) {
        buf_free(&f[i].req);
        buf_free(&f[i].in);
    }
    free(scratch);
    return rc;
}
