#include "load_queue.h"

#include "core/buf.h"
#include "http/http_parse.h"
#include "load_hist.h"
#include "load_report.h"
#include "load_resp.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define GIVE_UP_ERRORS 100 /* errors in a row, no step succeeding between them, end the run */
#define RESERVE_MAX 100    /* the daemon's bound on a reserve's count= */
#define READ_CHUNK (64 * 1024)
#define MAX_RESPONSE (16u * 1024 * 1024) /* a larger answer is a parse error */
#define DRAIN_NS 2000000000u             /* after -d, what is under way gets this long */
#define RETRY_NS 10000000u /* pause before a put refused at once (wait=0), or after an error */
#define TICK_MS 100
#define FRAMES_CT "application/x-awaitd-frames"

enum role { ROLE_CYCLE, ROLE_PRODUCER, ROLE_CONSUMER };
enum step { STEP_PUT, STEP_RESERVE, STEP_ACK, STEPS };
static const char *const step_names[STEPS] = {"put", "reserve", "ack"};
enum qerr { QE_CONNECT, QE_READ, QE_TIMEOUT, QE_PARSE, QE_STATUS, QE_KINDS };
static const char *const qerr_names[QE_KINDS] = {"connect", "read", "timeout", "parse", "status"};

static const struct http_limits resp_limits = {
    .max_header_bytes = LOAD_RESP_MAX_HEAD,
    .max_headers = HTTP_MAX_HEADERS,
    .max_uri = LOAD_RESP_MAX_HEAD,
    .max_body = UINT64_MAX,
};

/* What every worker shares: read-only once the threads start, but for the atomics. */
struct qplan {
    const struct sockaddr *addr;
    socklen_t addrlen;
    struct buf put;          /* the whole put request (its body: one payload or N frames) */
    struct buf put_wait;     /* the same with wait= (producers: backpressure) */
    struct buf reserve;      /* the reserve request for count = reserve_max */
    struct buf reserve_head; /* "POST /queues/NAME/reserve?wait=1&count=" */
    struct buf ack_head;     /* "POST /queues/NAME/jobs/" */
    struct buf tail;         /* " HTTP/1.1\r\n" + fields + "Content-Length: 0\r\n\r\n" */
    unsigned batch;          /* jobs per put */
    unsigned reserve_max;    /* count= of a reserve: min(batch, RESERVE_MAX) */
    uint64_t producers;      /* split run: connections [0, producers) put ... */
    int split;               /* ... and the rest reserve and ack */
    int has_consumers;       /* someone acks: jobs/s counts acks, else puts */
    uint64_t timeout_us, put_wait_us;
    uint64_t t0_ns, end_ns;
    atomic_int *stop;
    atomic_int gave_up;
    atomic_uint_least64_t put_total, acked_total, producers_live;
};

struct qstats {
    uint64_t cycles, jobs_put, jobs_acked;
    uint64_t requests, full, empty; /* full: puts answered 503; empty: reserves answered 204 */
    uint64_t status[6];
    uint64_t errors[QE_KINDS];
    char first_error[QE_KINDS][200];
    uint64_t bytes_in, bytes_out, connects, reconnects;
    uint64_t last_ns; /* the last cycle completed */
    uint64_t end_ns;
    struct load_hist cycle, step[STEPS];
};

struct qworker;

struct qconn {
    struct qworker *w;
    struct event ev;
    int fd;
    int ev_fd;     /* what ev is assigned for: fd ... */
    short ev_what; /* ... and events; 0 = unassigned */
    unsigned char role, step;
    unsigned char connecting, paused, resume_next, done, opened;
    unsigned gen;       /* bumped when the socket closes: stale callers stop */
    unsigned expect;    /* answers outstanding */
    unsigned asked;     /* count= of the reserve outstanding */
    unsigned remaining; /* cycle: jobs put in this cycle not yet reserved */
    uint64_t cycle_ns, step_ns;
    struct buf out; /* request bytes not yet sent */
    struct buf in;  /* an answer not yet whole */
};

struct qworker {
    struct qplan *p;
    uint64_t first, nconns, quota, started, live;
    int ending; /* -d is over: no cycle starts */
    uint64_t err_run;
    struct event_base *base;
    const struct timeval *tv_step[STEPS], *tv_connect;
    struct event tick_ev, end_ev, drain_ev;
    struct qconn *conns;
    char *rbuf;
    struct http_response res;
    uint64_t ids[RESERVE_MAX];
    struct qstats st;
    atomic_uint_least64_t pub_cycles, pub_errors;
    atomic_int done;
    pthread_t thread;
    char setup_error[128];
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct timeval tv_of_ns(uint64_t ns) {
    struct timeval tv = {(time_t)(ns / 1000000000u), (suseconds_t)(ns % 1000000000u / 1000u)};
    return tv;
}

static int stopping(const struct qworker *w) {
    return atomic_load_explicit(w->p->stop, memory_order_relaxed);
}

/* "wait=1.5" and the like: seconds, as short as exact. */
static void fmt_seconds(char *out, size_t n, uint64_t us) {
    if (us % 1000000 == 0)
        snprintf(out, n, "%" PRIu64, us / 1000000);
    else
        snprintf(out, n, "%.6g", (double)us / 1e6);
}

static int parse_u64(const char *s, size_t n, uint64_t *out) {
    uint64_t v = 0;
    if (n == 0 || n > 19)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* The "error" string of a JSON error body, else its first line, into out. */
static void error_text(const char *body, size_t len, char *out, size_t n) {
    static const char key[] = "\"error\": \"";
    const char *k = len >= sizeof key - 1 ? memmem(body, len, key, sizeof key - 1) : NULL;
    size_t o = 0;
    if (k) {
        for (const char *s = k + sizeof key - 1; s < body + len && *s != '"' && o + 1 < n; s++) {
            if (*s == '\\' && s + 1 < body + len)
                s++;
            out[o++] = *s;
        }
    } else {
        for (size_t i = 0; i < len && body[i] != '\n' && body[i] != '\r' && o + 1 < n && i < 100;
             i++)
            out[o++] = (body[i] >= 32 && body[i] < 127) ? body[i] : '?';
    }
    if (o == 0 && n > 10)
        o = (size_t)snprintf(out, n, "no body");
    out[o < n ? o : n - 1] = '\0';
}

/* ---- connection plumbing ----------------------------------------------------- */

static void q_cb(evutil_socket_t fd, short what, void *arg);
static void q_next(struct qconn *c);
static void q_flush(struct qconn *c);

static void q_watch(struct qconn *c, int fd, short what, const struct timeval *tv) {
    if (c->ev_what != what || c->ev_fd != fd) {
        if (c->ev_what)
            event_del(&c->ev);
        event_assign(&c->ev, c->w->base, fd, what, q_cb, c);
        c->ev_what = what;
        c->ev_fd = fd;
    }
    event_add(&c->ev, tv);
}

static void q_close(struct qconn *c, int abort) {
    if (c->ev_what)
        event_del(&c->ev);
    c->ev_what = 0;
    if (c->fd >= 0) {
        if (abort) {
            struct linger lg = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        close(c->fd);
    }
    c->fd = -1;
    c->connecting = 0;
    c->gen++;
}

/* The connection is through: no more requests. */
static void q_finish(struct qconn *c) {
    struct qworker *w = c->w;
    if (c->done)
        return;
    q_close(c, c->expect > 0); /* a reset drops a pending wait at once */
    buf_free(&c->in);
    buf_free(&c->out);
    c->done = 1;
    c->expect = 0;
    if (c->role == ROLE_PRODUCER)
        atomic_fetch_sub(&w->p->producers_live, 1);
    if (--w->live == 0)
        event_base_loopbreak(w->base);
}

/* Wait ns, then send what is in out (or, resume_next, start over). */
static void q_pause(struct qconn *c, uint64_t ns) {
    struct timeval tv = tv_of_ns(ns);
    c->paused = 1;
    if (c->fd >= 0)
        q_watch(c, c->fd, EV_READ | EV_PERSIST, &tv);
    else
        q_watch(c, -1, 0, &tv);
}

static void q_fail(struct qconn *c, int kind, const char *why) {
    struct qworker *w = c->w;
    struct qstats *s = &w->st;
    s->errors[kind]++;
    if (!s->first_error[kind][0])
        snprintf(s->first_error[kind], sizeof s->first_error[kind], "%s", why);
    q_close(c, 1);
    buf_reset(&c->in);
    buf_reset(&c->out);
    c->expect = 0;
    c->remaining = 0; /* jobs leased to this connection come back when their lease ends */
    if (++w->err_run >= GIVE_UP_ERRORS && !atomic_load(&w->p->gave_up)) {
        atomic_store(&w->p->gave_up, 1);
        atomic_store(w->p->stop, 1);
        event_base_loopbreak(w->base);
        return;
    }
    if (stopping(w) || w->ending) {
        q_finish(c);
        return;
    }
    c->resume_next = 1;
    q_pause(c, RETRY_NS);
}

static void q_fail_errno(struct qconn *c, int kind, const char *what, int err) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
    q_fail(c, kind, msg);
}

static void q_connected(struct qconn *c) {
    c->connecting = 0;
    c->w->st.connects++;
    q_flush(c);
}

static void q_open(struct qconn *c) {
    struct qworker *w = c->w;
    const struct qplan *p = w->p;
    if (c->opened)
        w->st.reconnects++;
    c->opened = 1;
    c->gen++;
    c->fd = socket(p->addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        q_fail_errno(c, QE_CONNECT, "socket", errno);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, p->addr, p->addrlen) == 0) {
        q_connected(c);
        return;
    }
    if (errno != EINPROGRESS) {
        q_fail_errno(c, QE_CONNECT, "connect", errno);
        return;
    }
    c->connecting = 1;
    q_watch(c, c->fd, EV_WRITE | EV_PERSIST, w->tv_connect);
}

/* Send what out holds (connecting first if need be), then wait for the answers. */
static void q_flush(struct qconn *c) {
    struct qworker *w = c->w;
    if (c->fd < 0) {
        q_open(c);
        return;
    }
    if (c->connecting)
        return;
    while (c->out.len) {
        ssize_t n = send(c->fd, buf_start(&c->out), c->out.len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                q_watch(c, c->fd, EV_READ | EV_WRITE | EV_PERSIST, w->tv_step[c->step]);
                return;
            }
            q_fail_errno(c, QE_READ, "send", errno);
            return;
        }
        w->st.bytes_out += (uint64_t)n;
        buf_consume(&c->out, (size_t)n);
    }
    q_watch(c, c->fd, EV_READ | EV_PERSIST, w->tv_step[c->step]);
}

/* ---- the steps ---------------------------------------------------------------- */

static void q_start(struct qconn *c, int step, unsigned expect) {
    c->step = (unsigned char)step;
    c->expect = expect;
    c->step_ns = now_ns();
    c->w->st.requests += expect;
    q_flush(c);
}

/* A cycle's put is put_nowait (a full queue answers 503 at once and the put
 * is repeated after a pause); a producer's waits, up to --put-wait. */
static int out_put(struct qconn *c) {
    const struct qplan *p = c->w->p;
    const struct buf *b = c->role == ROLE_PRODUCER && p->put_wait_us ? &p->put_wait : &p->put;
    return buf_append(&c->out, buf_start(b), b->len);
}

static void q_put(struct qconn *c) {
    if (out_put(c) < 0) {
        q_fail(c, QE_READ, "out of memory");
        return;
    }
    q_start(c, STEP_PUT, 1);
}

static void q_reserve(struct qconn *c, unsigned count) {
    const struct qplan *p = c->w->p;
    int r;
    if (count == p->reserve_max) {
        r = buf_append(&c->out, buf_start(&p->reserve), p->reserve.len);
    } else {
        r = buf_append(&c->out, buf_start(&p->reserve_head), p->reserve_head.len);
        r |= buf_append_u64(&c->out, count);
        r |= buf_append(&c->out, buf_start(&p->tail), p->tail.len);
    }
    if (r < 0) {
        q_fail(c, QE_READ, "out of memory");
        return;
    }
    c->asked = count;
    q_start(c, STEP_RESERVE, 1);
}

/* Every ack in one write: pipelined. */
static void q_acks(struct qconn *c, const uint64_t *ids, unsigned n) {
    const struct qplan *p = c->w->p;
    int r = buf_reserve(&c->out, n * (p->ack_head.len + p->tail.len + 24));
    for (unsigned i = 0; i < n && r == 0; i++) {
        r |= buf_append(&c->out, buf_start(&p->ack_head), p->ack_head.len);
        r |= buf_append_u64(&c->out, ids[i]);
        r |= buf_append(&c->out, "/ack", 4);
        r |= buf_append(&c->out, buf_start(&p->tail), p->tail.len);
    }
    if (r < 0) {
        q_fail(c, QE_READ, "out of memory");
        return;
    }
    q_start(c, STEP_ACK, n);
}

static int take_slot(struct qworker *w) {
    if (w->started == w->quota)
        return 0;
    w->started++;
    return 1;
}

/* Split run: the producers are through and every job they put is acked. */
static int consumers_through(const struct qplan *p) {
    return p->split && p->producers > 0 && atomic_load(&p->producers_live) == 0 &&
           atomic_load(&p->acked_total) >= atomic_load(&p->put_total);
}

static unsigned min_u(unsigned a, unsigned b) {
    return a < b ? a : b;
}

/* Start the connection's next cycle, or finish it. */
static void q_next(struct qconn *c) {
    struct qworker *w = c->w;
    const struct qplan *p = w->p;
    c->paused = 0;
    c->resume_next = 0;
    if (stopping(w) || w->ending) {
        q_finish(c);
        return;
    }
    switch (c->role) {
    case ROLE_CYCLE:
    case ROLE_PRODUCER:
        if (!take_slot(w)) {
            q_finish(c);
            return;
        }
        c->cycle_ns = now_ns();
        c->remaining = c->role == ROLE_CYCLE ? p->batch : 0;
        q_put(c);
        return;
    default:
        if (consumers_through(p) || (p->producers == 0 && !take_slot(w))) {
            q_finish(c);
            return;
        }
        c->cycle_ns = now_ns();
        q_reserve(c, p->reserve_max);
        return;
    }
}

static void cycle_done(struct qconn *c, uint64_t now) {
    struct qstats *s = &c->w->st;
    s->cycles++;
    s->last_ns = now;
    load_hist_record(&s->cycle, now > c->cycle_ns ? (now - c->cycle_ns) / 1000u : 0);
}

static void step_done(struct qconn *c, uint64_t now) {
    load_hist_record(&c->w->st.step[c->step], now > c->step_ns ? (now - c->step_ns) / 1000u : 0);
    c->w->err_run = 0;
}

/* The job ids of a reserve's answer into w->ids; how many, or -1 (malformed). */
static int reserve_ids(struct qworker *w, const struct http_response *res, const char *body,
                       size_t len) {
    const struct http_header *ct = http_find_header(res->headers, res->nheaders, "content-type");
    if (!ct || ct->value_len < sizeof FRAMES_CT - 1 ||
        strncasecmp(ct->value, FRAMES_CT, sizeof FRAMES_CT - 1) != 0) {
        const struct http_header *id = http_find_header(res->headers, res->nheaders, "job-id");
        if (!id || parse_u64(id->value, id->value_len, &w->ids[0]) < 0)
            return -1;
        return 1;
    }
    /* "<id> <attempt> <priority> <lease_deadline> <len>\n<payload>\n" per job */
    int n = 0;
    size_t off = 0;
    while (off < len) {
        const char *line = body + off;
        const char *nl = memchr(line, '\n', len - off);
        if (!nl || n == RESERVE_MAX)
            return -1;
        const char *sp = memchr(line, ' ', (size_t)(nl - line));
        const char *last = nl;
        while (last > line && last[-1] != ' ')
            last--;
        uint64_t plen;
        if (!sp || parse_u64(line, (size_t)(sp - line), &w->ids[n]) < 0 ||
            parse_u64(last, (size_t)(nl - last), &plen) < 0)
            return -1;
        size_t start = (size_t)(nl + 1 - body);
        if (plen > len || start + plen + 1 > len || body[start + plen] != '\n')
            return -1;
        off = start + (size_t)plen + 1;
        n++;
    }
    return n;
}

static void status_error(struct qconn *c, int status, const char *body, size_t len) {
    char text[120], msg[200];
    error_text(body, len, text, sizeof text);
    snprintf(msg, sizeof msg, "%s answered %d: %s", step_names[c->step], status, text);
    q_fail(c, QE_STATUS, msg);
}

/* One whole answer to the step under way. */
static void q_answer(struct qconn *c, int status, const struct http_response *res, const char *body,
                     size_t len) {
    struct qworker *w = c->w;
    struct qplan *p = w->p;
    struct qstats *s = &w->st;
    uint64_t now = now_ns();
    switch (c->step) {
    case STEP_PUT:
        if (status == 201) {
            step_done(c, now);
            c->expect = 0;
            s->jobs_put += p->batch;
            atomic_fetch_add_explicit(&p->put_total, p->batch, memory_order_relaxed);
            if (c->role == ROLE_PRODUCER) {
                cycle_done(c, now);
                q_next(c);
            } else {
                q_reserve(c, min_u(c->remaining, p->reserve_max));
            }
            return;
        }
        if (status == 503) { /* full (after wait=), or the journal is busy */
            s->full++;
            c->expect = 0;
            if (stopping(w) || w->ending) {
                q_finish(c); /* nothing of this cycle is in the queue */
                return;
            }
            if (out_put(c) < 0) {
                q_fail(c, QE_READ, "out of memory");
                return;
            }
            if (c->role == ROLE_PRODUCER && p->put_wait_us) {
                q_start(c, STEP_PUT, 1); /* the daemon waited already */
                return;
            }
            q_pause(c, RETRY_NS);
            return;
        }
        break;
    case STEP_RESERVE:
        if (status == 200) {
            int n = reserve_ids(w, res, body, len);
            if (n <= 0 || (unsigned)n > c->asked) {
                char msg[96];
                snprintf(msg, sizeof msg, "reserve with count=%u answered %d jobs, or garbled",
                         c->asked, n);
                q_fail(c, QE_PARSE, msg);
                return;
            }
            step_done(c, now);
            if (c->role == ROLE_CYCLE)
                c->remaining -= min_u((unsigned)n, c->remaining);
            q_acks(c, w->ids, (unsigned)n);
            return;
        }
        if (status == 204) { /* wait=1 passed with nothing */
            s->empty++;
            c->expect = 0;
            if (c->role == ROLE_CONSUMER && (w->ending || stopping(w) || consumers_through(p))) {
                q_finish(c);
                return;
            }
            q_reserve(c,
                      c->role == ROLE_CYCLE ? min_u(c->remaining, p->reserve_max) : p->reserve_max);
            return;
        }
        break;
    case STEP_ACK:
        if (status == 200) {
            s->jobs_acked++;
            atomic_fetch_add_explicit(&p->acked_total, 1, memory_order_relaxed);
            if (--c->expect > 0)
                return;
            step_done(c, now);
            if (c->role == ROLE_CYCLE && c->remaining > 0) {
                q_reserve(c, min_u(c->remaining, p->reserve_max));
                return;
            }
            cycle_done(c, now);
            q_next(c);
            return;
        }
        break;
    }
    status_error(c, status, body, len);
}

/* Answers in data[0..len): handled in order. Returns the bytes used, or -1
 * when the connection was closed or reset meanwhile (data may be gone). */
static ssize_t q_parse(struct qconn *c, const char *data, size_t len) {
    struct qworker *w = c->w;
    size_t off = 0;
    while (off < len) {
        const char *why = "malformed response";
        if (c->expect == 0 || c->paused) {
            q_fail(c, QE_PARSE, "data from the server with no request outstanding");
            return -1;
        }
        int hl = http_parse_response(data + off, len - off, &resp_limits, &w->res, &why);
        if (hl == HTTP_INCOMPLETE)
            break;
        if (hl < 0) {
            q_fail(c, QE_PARSE, why);
            return -1;
        }
        int status = w->res.status;
        if (status == 101) {
            q_fail(c, QE_PARSE, "101 Switching Protocols is not supported");
            return -1;
        }
        if (status < 200) { /* interim: the answer follows */
            off += (size_t)hl;
            continue;
        }
        uint64_t cl = 0;
        if (status != 204 && status != 304) {
            if (w->res.chunked || w->res.content_length < 0) {
                q_fail(c, QE_PARSE, "an answer without Content-Length (not awaitd?)");
                return -1;
            }
            cl = (uint64_t)w->res.content_length;
            if (cl > MAX_RESPONSE) {
                q_fail(c, QE_PARSE, "an answer over 16 MiB");
                return -1;
            }
        }
        if (len - off - (size_t)hl < cl)
            break;
        int cls = status / 100;
        w->st.status[cls >= 1 && cls <= 5 ? cls : 0]++;
        int closing = !w->res.keep_alive;
        if (closing) {
            if (c->expect > 1) {
                q_fail(c, QE_READ, "the server closed the connection with answers outstanding");
                return -1;
            }
            q_close(c, 0); /* the next request opens a new one */
        }
        unsigned gen = c->gen;
        q_answer(c, status, &w->res, data + off + hl, (size_t)cl);
        if (closing) { /* whatever followed on the old connection is moot */
            if (!c->done)
                buf_reset(&c->in);
            return -1;
        }
        if (c->gen != gen || c->done)
            return -1;
        off += (size_t)hl + (size_t)cl;
    }
    return (ssize_t)off;
}

static void q_read(struct qconn *c) {
    struct qworker *w = c->w;
    ssize_t n = recv(c->fd, w->rbuf, READ_CHUNK, 0);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            q_fail_errno(c, QE_READ, "recv", errno);
        return;
    }
    if (n == 0) {
        if (c->expect > 0 && !c->paused) {
            q_fail(c, QE_READ,
                   c->in.len ? "connection closed mid-answer"
                             : "connection closed before the answer");
            return;
        }
        /* An idle keep-alive connection closed: the next request opens another. */
        int paused = c->paused;
        q_close(c, 0);
        if (paused)
            q_pause(c, RETRY_NS);
        return;
    }
    w->st.bytes_in += (uint64_t)n;
    const char *data = w->rbuf;
    size_t len = (size_t)n;
    int in_buf = c->in.len > 0;
    if (in_buf) {
        if (c->in.len + len > MAX_RESPONSE + LOAD_RESP_MAX_HEAD ||
            buf_append(&c->in, data, len) < 0) {
            q_fail(c, QE_PARSE, "an answer over 16 MiB");
            return;
        }
        data = buf_start(&c->in);
        len = c->in.len;
    }
    ssize_t used = q_parse(c, data, len);
    if (used < 0)
        return;
    if (in_buf) {
        buf_consume(&c->in, (size_t)used);
    } else if ((size_t)used < len) {
        if (len - (size_t)used > MAX_RESPONSE + LOAD_RESP_MAX_HEAD ||
            buf_append(&c->in, data + used, len - (size_t)used) < 0)
            q_fail(c, QE_PARSE, "an answer over 16 MiB");
    }
}

static void q_cb(evutil_socket_t fd, short what, void *arg) {
    struct qconn *c = arg;
    if (c->done)
        return;
    if (c->paused) {
        if ((what & EV_READ) && c->fd >= 0) {
            q_read(c); /* a close, or stray bytes */
            return;
        }
        if (what & EV_TIMEOUT) {
            c->paused = 0;
            if (c->resume_next) {
                q_next(c);
            } else {
                if (stopping(c->w) || c->w->ending) {
                    q_finish(c);
                    return;
                }
                q_start(c, c->step, 1); /* the request waiting in out */
            }
        }
        return;
    }
    if (c->connecting) {
        if (what & EV_TIMEOUT) {
            q_fail(c, QE_CONNECT, "connect timed out");
            return;
        }
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err)
            q_fail_errno(c, QE_CONNECT, "connect", err);
        else
            q_connected(c);
        return;
    }
    unsigned gen = c->gen;
    if (what & EV_READ) {
        q_read(c);
        if (c->gen != gen || c->done)
            return;
    }
    if (what & EV_WRITE) {
        q_flush(c);
        return;
    }
    if ((what & EV_TIMEOUT) && !(what & EV_READ)) {
        char msg[96];
        snprintf(msg, sizeof msg, "no %s answer within --timeout (plus its wait)",
                 step_names[c->step]);
        q_fail(c, QE_TIMEOUT, msg);
    }
}

/* ---- the worker --------------------------------------------------------------- */

static void publish(struct qworker *w) {
    uint64_t errs = 0;
    for (int k = 0; k < QE_KINDS; k++)
        errs += w->st.errors[k];
    atomic_store_explicit(&w->pub_cycles, w->st.cycles, memory_order_relaxed);
    atomic_store_explicit(&w->pub_errors, errs, memory_order_relaxed);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
    struct qworker *w = arg;
    publish(w);
    if (stopping(w)) {
        event_base_loopbreak(w->base);
        return;
    }
    /* Consumers waiting in a reserve once every job is acked: nothing will come. */
    if (consumers_through(w->p))
        for (uint64_t i = 0; i < w->nconns; i++) {
            struct qconn *c = &w->conns[i];
            if (!c->done && c->role == ROLE_CONSUMER && c->step == STEP_RESERVE && !c->paused &&
                c->expect > 0)
                q_finish(c);
        }
}

static void drain_cb(evutil_socket_t fd, short what, void *arg) {
    struct qworker *w = arg;
    for (uint64_t i = 0; i < w->nconns; i++)
        q_finish(&w->conns[i]);
    event_base_loopbreak(w->base);
}

/* -d is over: nothing new starts; what holds jobs finishes, within DRAIN_NS. */
static void end_cb(evutil_socket_t fd, short what, void *arg) {
    struct qworker *w = arg;
    w->ending = 1;
    for (uint64_t i = 0; i < w->nconns && w->live; i++) {
        struct qconn *c = &w->conns[i];
        if (c->done)
            continue;
        if (c->paused || (c->role == ROLE_CONSUMER && c->step == STEP_RESERVE))
            q_finish(c); /* holds no job */
    }
    struct timeval tv = tv_of_ns(DRAIN_NS);
    event_add(&w->drain_ev, &tv);
}

static int worker_setup(struct qworker *w) {
    const struct qplan *p = w->p;
    struct event_config *cfg = event_config_new();
    if (!cfg)
        return -1;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!w->base)
        return -1;
    uint64_t waits[STEPS] = {p->put_wait_us, 1000000, 0};
    for (int i = 0; i < STEPS; i++) {
        struct timeval tv = tv_of_ns((p->timeout_us + waits[i]) * 1000u);
        if (!(w->tv_step[i] = event_base_init_common_timeout(w->base, &tv)))
            return -1;
    }
    struct timeval tv = tv_of_ns(p->timeout_us * 1000u);
    w->tv_connect = event_base_init_common_timeout(w->base, &tv);
    w->rbuf = malloc(READ_CHUNK);
    w->conns = calloc(w->nconns ? w->nconns : 1, sizeof *w->conns);
    if (!w->tv_connect || !w->rbuf || !w->conns)
        return -1;
    event_assign(&w->tick_ev, w->base, -1, EV_PERSIST, tick_cb, w);
    struct timeval tick = {0, TICK_MS * 1000};
    event_add(&w->tick_ev, &tick);
    event_assign(&w->end_ev, w->base, -1, 0, end_cb, w);
    event_assign(&w->drain_ev, w->base, -1, 0, drain_cb, w);
    uint64_t now = now_ns();
    if (p->end_ns != UINT64_MAX) {
        struct timeval end = tv_of_ns(p->end_ns > now ? p->end_ns - now : 0);
        event_add(&w->end_ev, &end);
    }
    w->live = w->nconns;
    for (uint64_t i = 0; i < w->nconns; i++) {
        struct qconn *c = &w->conns[i];
        uint64_t index = w->first + i;
        c->w = w;
        c->fd = -1;
        c->ev_fd = -1;
        c->role = !p->split ? ROLE_CYCLE : index < p->producers ? ROLE_PRODUCER : ROLE_CONSUMER;
    }
    for (uint64_t i = 0; i < w->nconns; i++)
        q_next(&w->conns[i]);
    return 0;
}

static void worker_teardown(struct qworker *w) {
    for (uint64_t i = 0; w->conns && i < w->nconns; i++) {
        struct qconn *c = &w->conns[i];
        q_close(c, 1);
        buf_free(&c->in);
        buf_free(&c->out);
    }
    if (w->base) {
        event_del(&w->tick_ev);
        event_del(&w->end_ev);
        event_del(&w->drain_ev);
        event_base_free(w->base);
        w->base = NULL;
    }
    free(w->conns);
    w->conns = NULL;
    free(w->rbuf);
    w->rbuf = NULL;
}

static void *worker_main(void *arg) {
    struct qworker *w = arg;
    if (worker_setup(w) < 0)
        snprintf(w->setup_error, sizeof w->setup_error, "cannot set up an event loop: %s",
                 strerror(errno ? errno : ENOMEM));
    else if (w->live > 0)
        event_base_dispatch(w->base);
    w->st.end_ns = now_ns();
    worker_teardown(w);
    publish(w);
    atomic_store(&w->done, 1);
    return NULL;
}

/* ---- blocking requests before and after the run ------------------------------ */

/* One request on its own connection (Connection: close); the status, and the
 * body into *body. Returns -1 with err set when there is no answer. */
static int q_http(const struct load_addr *a, const struct buf *req, uint64_t timeout_us,
                  struct buf *body, char *err, size_t errlen) {
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    struct timeval tv = tv_of_ns(timeout_us * 1000u);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct buf in = BUF_INIT;
    int status = -1;
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
        snprintf(err, errlen, "connect: %s", strerror(errno));
        goto out;
    }
    for (size_t off = 0; off < req->len;) {
        ssize_t n = send(fd, buf_start(req) + off, req->len - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            snprintf(err, errlen, "send: %s", strerror(errno));
            goto out;
        }
        off += (size_t)n;
    }
    for (;;) {
        if (in.len > MAX_RESPONSE || buf_reserve(&in, 16384) < 0) {
            snprintf(err, errlen, "answer too large");
            goto out;
        }
        ssize_t n = recv(fd, buf_start(&in) + in.len, 16384, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "%s",
                     errno == EAGAIN || errno == EWOULDBLOCK ? "no answer within --timeout"
                                                             : strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        in.len += (size_t)n;
    }
    struct http_response *res = malloc(sizeof *res);
    const char *why = "malformed response";
    int hl = res ? http_parse_response(buf_start(&in), in.len, &resp_limits, res, &why)
                 : HTTP_INCOMPLETE;
    if (hl <= 0) {
        snprintf(err, errlen, "%s",
                 in.len == 0             ? "connection closed before the answer"
                 : hl == HTTP_INCOMPLETE ? "the answer was cut short"
                                         : why);
        free(res);
        goto out;
    }
    size_t blen = in.len - (size_t)hl;
    if (res->content_length >= 0 && (uint64_t)res->content_length < blen)
        blen = (size_t)res->content_length;
    status = res->status;
    free(res);
    if (buf_append(body, buf_start(&in) + hl, blen) < 0) {
        snprintf(err, errlen, "out of memory");
        status = -1;
    }
out:
    close(fd);
    buf_free(&in);
    return status;
}

static int render_control(const struct load_opts *o, const struct load_url *u, const char *method,
                          const char *path, const char *body, struct buf *out) {
    int r = buf_appendf(out, "%s %s HTTP/1.1\r\n", method, path);
    r |= load_opts_render_fields(o, u->host_header, out);
    r |= buf_appends(out, "Connection: close\r\n");
    if (body) {
        r |= buf_appendf(out, "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                         strlen(body), body);
    } else {
        r |= buf_appends(out, "\r\n");
    }
    return r ? -1 : 0;
}

/* ---- plan --------------------------------------------------------------------- */

static int plan_build(struct qplan *p, const struct load_opts *o, const struct load_url *u,
                      const char *qpath) {
    int r = 0;
    char wait[32];
    p->batch = (unsigned)o->batch;
    p->reserve_max = min_u(p->batch, RESERVE_MAX);
    p->producers = o->split ? o->producers : 0;
    p->split = o->split;
    p->has_consumers = !o->split || o->consumers > 0;
    p->timeout_us = o->timeout_us;
    p->put_wait_us = o->put_wait_us;

    struct buf fields = BUF_INIT;
    r |= load_opts_render_fields(o, u->host_header, &fields);
    r |= buf_appends(&p->tail, " HTTP/1.1\r\n");
    r |= buf_append(&p->tail, buf_start(&fields), fields.len);
    r |= buf_appends(&p->tail, "Content-Length: 0\r\n\r\n");

    /* put: batch=1 with framed jobs; put_wait adds wait= for backpressure */
    fmt_seconds(wait, sizeof wait, o->put_wait_us);
    for (int waiting = 0; waiting < 2; waiting++) {
        struct buf *b = waiting ? &p->put_wait : &p->put;
        char sep = '?';
        r |= buf_appendf(b, "POST %s/jobs", qpath);
        if (waiting && o->put_wait_us) {
            r |= buf_appendf(b, "?wait=%s", wait);
            sep = '&';
        }
        if (p->batch > 1)
            r |= buf_appendf(b, "%cbatch=1", sep);
        r |= buf_appends(b, " HTTP/1.1\r\n");
        r |= buf_append(b, buf_start(&fields), fields.len);
        if (p->batch > 1) {
            char frame[32];
            int fl = snprintf(frame, sizeof frame, "%zu\n", o->body_len);
            size_t len = (size_t)p->batch * ((size_t)fl + o->body_len + 1);
            r |= buf_appendf(b, "Content-Type: " FRAMES_CT "\r\nContent-Length: %zu\r\n\r\n", len);
            r |= buf_reserve(b, len);
            for (unsigned i = 0; i < p->batch && r == 0; i++) {
                r |= buf_append(b, frame, (size_t)fl);
                r |= buf_append(b, o->body, o->body_len);
                r |= buf_append(b, "\n", 1);
            }
        } else {
            r |= buf_appendf(b, "Content-Length: %zu\r\n\r\n", o->body_len);
            r |= buf_append(b, o->body, o->body_len);
        }
    }

    r |= buf_appendf(&p->reserve_head, "POST %s/reserve?wait=1&count=", qpath);
    if (p->reserve_max > 1) {
        r |= buf_append(&p->reserve, buf_start(&p->reserve_head), p->reserve_head.len);
        r |= buf_append_u64(&p->reserve, p->reserve_max);
    } else {
        r |= buf_appendf(&p->reserve, "POST %s/reserve?wait=1", qpath);
    }
    r |= buf_append(&p->reserve, buf_start(&p->tail), p->tail.len);
    r |= buf_appendf(&p->ack_head, "POST %s/jobs/", qpath);
    buf_free(&fields);
    return r ? -1 : 0;
}

static void plan_free(struct qplan *p) {
    buf_free(&p->put);
    buf_free(&p->put_wait);
    buf_free(&p->reserve);
    buf_free(&p->reserve_head);
    buf_free(&p->ack_head);
    buf_free(&p->tail);
}

/* ---- the report --------------------------------------------------------------- */

struct qsummary {
    const struct load_opts *o;
    unsigned threads;
    double duration_s;
    int interrupted;
    struct qstats t;
    const struct buf *queue; /* GET /queues/NAME's answer after the run; empty if none */
};

static void stats_merge(struct qstats *d, const struct qstats *s) {
    d->cycles += s->cycles;
    d->jobs_put += s->jobs_put;
    d->jobs_acked += s->jobs_acked;
    d->requests += s->requests;
    d->full += s->full;
    d->empty += s->empty;
    for (int i = 0; i < 6; i++)
        d->status[i] += s->status[i];
    for (int k = 0; k < QE_KINDS; k++) {
        d->errors[k] += s->errors[k];
        if (!d->first_error[k][0])
            memcpy(d->first_error[k], s->first_error[k], sizeof d->first_error[k]);
    }
    d->bytes_in += s->bytes_in;
    d->bytes_out += s->bytes_out;
    d->connects += s->connects;
    d->reconnects += s->reconnects;
    if (s->last_ns > d->last_ns)
        d->last_ns = s->last_ns;
    if (s->end_ns > d->end_ns)
        d->end_ns = s->end_ns;
    load_hist_merge(&d->cycle, &s->cycle);
    for (int i = 0; i < STEPS; i++)
        load_hist_merge(&d->step[i], &s->step[i]);
}

static double per_s(const struct qsummary *s, uint64_t n) {
    return s->duration_s > 0 ? (double)n / s->duration_s : 0.0;
}

static uint64_t jobs_done(const struct qsummary *s) {
    return s->o->split && s->o->consumers == 0 ? s->t.jobs_put : s->t.jobs_acked;
}

static uint64_t error_count(const struct qstats *t) {
    uint64_t n = 0;
    for (int k = 0; k < QE_KINDS; k++)
        n += t->errors[k];
    return n;
}

/* A number from the queue's stats JSON ("size": 3), or -1. */
static long long stat_field(const struct buf *q, const char *name) {
    char key[48];
    int kl = snprintf(key, sizeof key, "\"%s\": ", name);
    const char *s = q->len ? memmem(buf_start(q), q->len, key, (size_t)kl) : NULL;
    return s ? strtoll(s + kl, NULL, 10) : -1;
}

static void hist_text(FILE *f, const char *label, const struct load_hist *h) {
    char a[32], b[32], c[32], d[32], e[32], m[32];
    if (h->total == 0) {
        fprintf(f, "  %-11s none\n", label);
        return;
    }
    fprintf(f, "  %-11s p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s\n", label,
            load_report_fmt_us(a, sizeof a, load_hist_percentile(h, 50)),
            load_report_fmt_us(b, sizeof b, load_hist_percentile(h, 90)),
            load_report_fmt_us(c, sizeof c, load_hist_percentile(h, 99)),
            load_report_fmt_us(d, sizeof d, load_hist_percentile(h, 99.9)),
            load_report_fmt_us(e, sizeof e, h->max),
            load_report_fmt_us(m, sizeof m, (uint64_t)(load_hist_mean(h) + 0.5)));
}

static void report_text(FILE *f, const struct qsummary *s) {
    const struct load_opts *o = s->o;
    const struct qstats *t = &s->t;
    fprintf(f, "awaitload %s (queue scenario)\n", o->url);
    if (o->split)
        fprintf(f,
                "  %" PRIu64 " producer%s (put, wait=%gs), %" PRIu64 " consumer%s (reserve, ack)",
                o->producers, o->producers == 1 ? "" : "s", (double)o->put_wait_us / 1e6,
                o->consumers, o->consumers == 1 ? "" : "s");
    else
        fprintf(f, "  %" PRIu64 " connection%s looping put -> reserve -> ack", o->connections,
                o->connections == 1 ? "" : "s");
    fprintf(f, ", batch %" PRIu64 ", %u thread%s, %.2f s%s\n", o->batch, s->threads,
            s->threads == 1 ? "" : "s", s->duration_s, s->interrupted ? " (interrupted)" : "");
    fprintf(f, "  cycles      %" PRIu64 " (%.1f/s)\n", t->cycles, per_s(s, t->cycles));
    fprintf(f, "  jobs        %" PRIu64 " put, %" PRIu64 " acked (%.1f/s)\n", t->jobs_put,
            t->jobs_acked, per_s(s, jobs_done(s)));
    fprintf(f,
            "  requests    %" PRIu64 " (%.1f/s); %" PRIu64 " puts refused (503), %" PRIu64
            " empty reserves (204)\n",
            t->requests, per_s(s, t->requests), t->full, t->empty);
    hist_text(f, "cycle", &t->cycle);
    for (int i = 0; i < STEPS; i++)
        hist_text(f, step_names[i], &t->step[i]);
    fprintf(f, "  status     ");
    int any = 0;
    for (int i = 1; i <= 5; i++)
        if (t->status[i]) {
            fprintf(f, " %dxx %" PRIu64, i, t->status[i]);
            any = 1;
        }
    fprintf(f, "%s\n", any ? "" : " none");
    fprintf(f, "  errors     ");
    if (!error_count(t)) {
        fprintf(f, " none\n");
    } else {
        for (int k = 0; k < QE_KINDS; k++)
            fprintf(f, " %s %" PRIu64, qerr_names[k], t->errors[k]);
        fprintf(f, "\n");
        for (int k = 0; k < QE_KINDS; k++)
            if (t->errors[k])
                fprintf(f, "    first %s error: %s\n", qerr_names[k], t->first_error[k]);
    }
    fprintf(f, "  bytes       %" PRIu64 " in, %" PRIu64 " out\n", t->bytes_in, t->bytes_out);
    fprintf(f, "  connections %" PRIu64 " established, %" PRIu64 " reconnects\n", t->connects,
            t->reconnects);
    if (s->queue->len)
        fprintf(f,
                "  queue after size %lld, reserved %lld, unfinished %lld, total_put %lld, "
                "total_acked %lld\n",
                stat_field(s->queue, "size"), stat_field(s->queue, "reserved"),
                stat_field(s->queue, "unfinished"), stat_field(s->queue, "total_put"),
                stat_field(s->queue, "total_acked"));
}

static int hist_json(struct buf *b, const struct load_hist *h) {
    return buf_appendf(
        b,
        "{\"count\": %" PRIu64 ", \"p50\": %" PRIu64 ", \"p90\": %" PRIu64 ", \"p99\": %" PRIu64
        ", \"p999\": %" PRIu64 ", \"max\": %" PRIu64 ", \"mean\": %.1f}",
        h->total, load_hist_percentile(h, 50), load_hist_percentile(h, 90),
        load_hist_percentile(h, 99), load_hist_percentile(h, 99.9), h->max, load_hist_mean(h));
}

static void report_json(FILE *f, const struct qsummary *s) {
    const struct load_opts *o = s->o;
    const struct qstats *t = &s->t;
    struct buf b = BUF_INIT;
    int r = buf_appendf(
        &b,
        "{\"scenario\": \"queue\", \"mode\": \"%s\", \"cycles\": %" PRIu64
        ", \"cycles_per_s\": %.1f, \"jobs_put\": %" PRIu64 ", \"jobs_acked\": %" PRIu64
        ", \"jobs_per_s\": %.1f, \"puts_per_s\": %.1f, \"acks_per_s\": %.1f, \"batch\": %" PRIu64
        ", \"producers\": %" PRIu64 ", \"consumers\": %" PRIu64 ", \"requests\": %" PRIu64
        ", \"rps\": %.1f, \"duration_s\": %.3f, \"full\": %" PRIu64 ", \"empty\": %" PRIu64
        ", \"status\": {",
        o->split ? "split" : "cycle", t->cycles, per_s(s, t->cycles), t->jobs_put, t->jobs_acked,
        per_s(s, jobs_done(s)), per_s(s, t->jobs_put), per_s(s, t->jobs_acked), o->batch,
        o->split ? o->producers : 0, o->split ? o->consumers : 0, t->requests,
        per_s(s, t->requests), s->duration_s, t->full, t->empty);
    for (int i = 1; i <= 5; i++)
        r |= buf_appendf(&b, "%s\"%dxx\": %" PRIu64, i > 1 ? ", " : "", i, t->status[i]);
    r |= buf_appends(&b, "}, \"errors\": {");
    for (int k = 0; k < QE_KINDS; k++)
        r |= buf_appendf(&b, "%s\"%s\": %" PRIu64, k ? ", " : "", qerr_names[k], t->errors[k]);
    r |= buf_appends(&b, "}, \"first_error\": ");
    const char *first = "";
    for (int k = 0; k < QE_KINDS && !first[0]; k++)
        first = t->first_error[k];
    if (first[0])
        r |= buf_append_json_str(&b, first, strlen(first));
    else
        r |= buf_appends(&b, "null");
    r |= buf_appends(&b, ", \"latency_us\": ");
    r |= hist_json(&b, &t->cycle);
    r |= buf_appends(&b, ", \"steps\": {");
    for (int i = 0; i < STEPS; i++) {
        r |= buf_appendf(&b, "%s\"%s\": ", i ? ", " : "", step_names[i]);
        r |= hist_json(&b, &t->step[i]);
    }
    r |= buf_appendf(&b,
                     "}, \"bytes_in\": %" PRIu64 ", \"bytes_out\": %" PRIu64
                     ", \"connections\": %" PRIu64 ", \"threads\": %u, \"reconnects\": %" PRIu64
                     ", \"interrupted\": %s, \"url\": ",
                     t->bytes_in, t->bytes_out, o->connections, s->threads, t->reconnects,
                     s->interrupted ? "true" : "false");
    r |= buf_append_json_str(&b, o->url, strlen(o->url));
    r |= buf_appends(&b, ", \"queue\": ");
    /* The daemon's own stats, as it gave them (one JSON object), or null. */
    if (s->queue->len && buf_start(s->queue)[0] == '{') {
        size_t n = s->queue->len;
        while (n && (buf_start(s->queue)[n - 1] == '\n' || buf_start(s->queue)[n - 1] == '\r'))
            n--;
        r |= buf_append(&b, buf_start(s->queue), n);
    } else {
        r |= buf_appends(&b, "null");
    }
    r |= buf_appends(&b, "}\n");
    if (r == 0)
        fwrite(buf_start(&b), 1, b.len, f);
    buf_free(&b);
}

/* ---- the run ------------------------------------------------------------------ */

int load_queue_name(const char *target, char *name, size_t n) {
    static const char prefix[] = "/queues/";
    if (strncmp(target, prefix, sizeof prefix - 1) != 0)
        return -1;
    const char *s = target + sizeof prefix - 1;
    size_t len = strcspn(s, "/?#");
    if (len == 0 || s[len] != '\0' || len >= n)
        return -1;
    memcpy(name, s, len);
    name[len] = '\0';
    return 0;
}

/* Wait for the workers, with a progress line once a second on a terminal.
 * Returns 1 if SIGINT or SIGTERM cut the run short. */
static int run_wait(struct qworker **w, unsigned n, atomic_int *stop, uint64_t t0) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int tty = isatty(STDERR_FILENO), interrupted = 0;
    uint64_t last_ns = t0, last = 0;
    for (;;) {
        unsigned live = 0;
        for (unsigned i = 0; i < n; i++)
            live += !atomic_load(&w[i]->done);
        if (!live)
            break;
        struct timespec wait = {0, 100 * 1000000};
        if (sigtimedwait(&set, NULL, &wait) > 0) {
            if (interrupted)
                _exit(130);
            interrupted = 1;
            atomic_store(stop, 1);
        }
        uint64_t now = now_ns();
        if (tty && now - last_ns >= 1000000000u) {
            uint64_t cycles = 0, errs = 0;
            for (unsigned i = 0; i < n; i++) {
                cycles += atomic_load_explicit(&w[i]->pub_cycles, memory_order_relaxed);
                errs += atomic_load_explicit(&w[i]->pub_errors, memory_order_relaxed);
            }
            fprintf(stderr,
                    "\r\033[K[%5.0fs] %.0f cycles/s, %" PRIu64 " cycles, %" PRIu64 " errors",
                    (double)(now - t0) / 1e9,
                    (double)(cycles - last) * 1e9 / (double)(now - last_ns), cycles, errs);
            fflush(stderr);
            last_ns = now;
            last = cycles;
        }
    }
    if (tty && last_ns != t0) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    return interrupted;
}

/* Split -n over the workers in proportion to the connections that take
 * cycles from it (all of them, or the producers, or the consumers). */
static uint64_t worker_quota(const struct load_opts *o, uint64_t first, uint64_t nconns) {
    if (!o->requests)
        return UINT64_MAX;
    uint64_t lo = 0, hi = o->connections; /* the connections that count cycles */
    if (o->split && o->producers > 0)
        hi = o->producers;
    else if (o->split)
        lo = o->producers;
    uint64_t total = hi - lo;
    uint64_t a = first < lo ? lo : first > hi ? hi : first;
    uint64_t b = first + nconns < lo ? lo : first + nconns > hi ? hi : first + nconns;
    unsigned __int128 qa = (unsigned __int128)o->requests * (a - lo) / total;
    unsigned __int128 qb = (unsigned __int128)o->requests * (b - lo) / total;
    return (uint64_t)(qb - qa);
}

static int create_queue(const struct load_opts *o, const struct load_url *u,
                        const struct load_addr *a, const char *qpath) {
    struct buf req = BUF_INIT, body = BUF_INIT;
    char json[64], err[256];
    snprintf(json, sizeof json, "{\"maxsize\": %" PRIu64 "}", o->maxsize);
    if (render_control(o, u, "PUT", qpath, json, &req) < 0) {
        fprintf(stderr, "awaitload: out of memory\n");
        return -1;
    }
    int status = q_http(a, &req, o->timeout_us, &body, err, sizeof err);
    int rc = 0;
    if (status < 0) {
        fprintf(stderr, "awaitload: PUT %s: %s\n", qpath, err);
        rc = -1;
    } else if (status != 200 && status != 201) {
        char text[160];
        error_text(buf_start(&body), body.len, text, sizeof text);
        fprintf(stderr, "awaitload: cannot create the queue: PUT %s answered %d %s: %s\n", qpath,
                status, http_reason(status), text);
        rc = -1;
    }
    buf_free(&req);
    buf_free(&body);
    return rc;
}

static void fetch_stats(const struct load_opts *o, const struct load_url *u,
                        const struct load_addr *a, const char *qpath, struct buf *out) {
    struct buf req = BUF_INIT;
    char err[256];
    if (render_control(o, u, "GET", qpath, NULL, &req) == 0 &&
        q_http(a, &req, o->timeout_us, out, err, sizeof err) != 200)
        buf_reset(out);
    buf_free(&req);
}

int load_queue_run(const struct load_opts *o, const struct load_url *u, const struct load_addr *a) {
    char name[LOAD_URL_MAX], qpath[LOAD_URL_MAX + 16];
    if (load_queue_name(u->target, name, sizeof name) < 0) {
        fprintf(stderr,
                "awaitload: --scenario queue: the URL must be http://host:port/queues/NAME "
                "(got target '%s')\n",
                u->target);
        return 2;
    }
    snprintf(qpath, sizeof qpath, "/queues/%s", name);
    if (create_queue(o, u, a, qpath) < 0)
        return 1;

    atomic_int stop;
    atomic_init(&stop, 0);
    struct qplan *p = calloc(1, sizeof *p);
    if (!p || plan_build(p, o, u, qpath) < 0) {
        fprintf(stderr, "awaitload: out of memory\n");
        if (p)
            plan_free(p);
        free(p);
        return 1;
    }
    p->addr = (const struct sockaddr *)&a->ss;
    p->addrlen = a->len;
    p->stop = &stop;
    atomic_init(&p->gave_up, 0);
    atomic_init(&p->put_total, 0);
    atomic_init(&p->acked_total, 0);
    atomic_init(&p->producers_live, p->producers);

    unsigned threads = o->threads;
    if (threads > o->connections)
        threads = (unsigned)o->connections;

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    struct qworker *w[256];
    p->t0_ns = now_ns();
    p->end_ns = o->duration_us ? p->t0_ns + o->duration_us * 1000u : UINT64_MAX;
    uint64_t first = 0;
    unsigned started = 0;
    for (unsigned i = 0; i < threads; i++) {
        uint64_t nconns = o->connections / threads + (i < o->connections % threads);
        w[i] = calloc(1, sizeof *w[i]);
        if (w[i]) {
            w[i]->p = p;
            w[i]->first = first;
            w[i]->nconns = nconns;
            w[i]->quota = worker_quota(o, first, nconns);
            load_hist_init(&w[i]->st.cycle);
            for (int k = 0; k < STEPS; k++)
                load_hist_init(&w[i]->st.step[k]);
            atomic_init(&w[i]->pub_cycles, 0);
            atomic_init(&w[i]->pub_errors, 0);
            atomic_init(&w[i]->done, 0);
        }
        if (!w[i] || pthread_create(&w[i]->thread, NULL, worker_main, w[i]) != 0) {
            fprintf(stderr, "awaitload: cannot start thread %u: %s\n", i, strerror(errno));
            atomic_store(&stop, 1);
            free(w[i]);
            break;
        }
        started++;
        first += nconns;
    }
    int interrupted = run_wait(w, started, &stop, p->t0_ns);

    struct qsummary s;
    memset(&s, 0, sizeof s);
    load_hist_init(&s.t.cycle);
    for (int k = 0; k < STEPS; k++)
        load_hist_init(&s.t.step[k]);
    const char *setup_error = NULL;
    for (unsigned i = 0; i < started; i++) {
        pthread_join(w[i]->thread, NULL);
        stats_merge(&s.t, &w[i]->st);
        if (!setup_error && w[i]->setup_error[0])
            setup_error = w[i]->setup_error;
    }
    int rc = 0;
    struct buf qstats = BUF_INIT;
    if (started < threads || setup_error) {
        if (setup_error)
            fprintf(stderr, "awaitload: %s\n", setup_error);
        rc = 1;
        goto out;
    }
    fetch_stats(o, u, a, qpath, &qstats);
    s.o = o;
    s.threads = threads;
    s.interrupted = interrupted;
    s.queue = &qstats;
    s.duration_s = (double)((s.t.last_ns ? s.t.last_ns : s.t.end_ns) - p->t0_ns) / 1e9;
    if (o->json)
        report_json(stdout, &s);
    else
        report_text(stdout, &s);
    fflush(stdout);
    const char *first_error = "";
    for (int k = QE_STATUS; k >= 0 && !first_error[0]; k--) /* status errors say the most */
        first_error = s.t.first_error[k];
    if (atomic_load(&p->gave_up)) {
        fprintf(stderr, "awaitload: gave up after %d errors in a row (first: %s)\n", GIVE_UP_ERRORS,
                first_error);
        rc = 1;
    } else if (s.t.cycles == 0 && !interrupted) {
        if (error_count(&s.t))
            fprintf(stderr, "awaitload: no cycle completed (%" PRIu64 " errors; first: %s)\n",
                    error_count(&s.t), first_error);
        else
            fprintf(stderr, "awaitload: no cycle completed before the run ended\n");
        rc = 1;
    }
out:
    for (unsigned i = 0; i < started; i++)
        free(w[i]);
    buf_free(&qstats);
    plan_free(p);
    free(p);
    return rc;
}
