#include "load_queue.h"

#include "core/buf.h"
#include "http/http_parse.h"
#include "load_conn.h"
#include "load_hist.h"
#include "load_report.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define GIVE_UP_ERRORS 100 /* errors in a row, no step succeeding between them, end the run */
#define RESERVE_MAX 100    /* the daemon's bound on a reserve's count= */
#define MAX_RESPONSE (16u * 1024 * 1024) /* a larger answer is a parse error */
#define DRAIN_NS 2000000000u             /* after -d, what is under way gets this long */
#define RETRY_NS 10000000u /* pause before a put refused at once (wait=0), or after an error */
#define FRAMES_CT "application/x-awaitd-frames"

enum role { ROLE_CYCLE, ROLE_PRODUCER, ROLE_CONSUMER };
enum step { STEP_PUT, STEP_RESERVE, STEP_ACK, STEPS };
static const char *const step_names[STEPS] = {"put", "reserve", "ack"};
/* load_conn's error kinds (enum load_err), then the queue's own. */
enum qerr { QE_STATUS = LOAD_ERR_KINDS, QE_KINDS };
static const char *const qerr_names[QE_KINDS] = {"connect", "read", "timeout", "parse", "status"};

/* For the blocking requests before and after the run. */
static const struct http_limits resp_limits = {
    .max_header_bytes = LOAD_RESP_MAX_HEAD,
    .max_headers = HTTP_MAX_HEADERS,
    .max_uri = LOAD_RESP_MAX_HEAD,
    .max_body = UINT64_MAX,
};

/* The scenario's shared plan (load_plan.driver_plan): read-only once the
 * threads start, but for the atomics. */
struct qplan {
    struct buf put;          /* the whole put request (its body: one payload or N frames) */
    struct buf put_wait;     /* the same with wait= (producers: backpressure) */
    struct buf reserve;      /* the reserve request for count = reserve_max */
    struct buf reserve_head; /* "POST /queues/NAME/reserve?wait=1&count=" */
    struct buf ack_head;     /* "POST /queues/NAME/jobs/" */
    struct buf acks_head;    /* batch: "POST /queues/NAME/acks HTTP/1.1\r\n" + fields */
    struct buf tail;         /* " HTTP/1.1\r\n" + fields + "Content-Length: 0\r\n\r\n" */
    unsigned batch;          /* jobs per put */
    unsigned reserve_max;    /* count= of a reserve: min(batch, RESERVE_MAX) */
    uint64_t producers;      /* split run: connections [0, producers) put ... */
    int split;               /* ... and the rest reserve and ack */
    int has_consumers;       /* someone acks: jobs/s counts acks, else puts */
    uint64_t timeout_us, put_wait_us;
    atomic_int gave_up;
    atomic_uint_least64_t put_total, acked_total, producers_live;
};

/* Beside load_conn's struct load_stats (bytes, connections, statuses and
 * its error kinds), what the scenario counts. */
struct qstats {
    uint64_t cycles, jobs_put, jobs_acked;
    uint64_t requests, full, empty; /* full: puts answered 503; empty: reserves answered 204 */
    uint64_t status_errors;         /* answers the step did not expect */
    char first_status_error[200];
    uint64_t last_ns; /* the last cycle completed */
    struct load_hist cycle, step[STEPS];
};

/* A connection's place in its loop (load_conn.data). */
struct qconn {
    struct load_conn *c;
    unsigned char role, step, done, resume_next;
    unsigned asked;     /* count= of the reserve outstanding; batch: ids of the batch ack */
    unsigned remaining; /* cycle: jobs put in this cycle not yet reserved */
    uint64_t cycle_ns, step_ns;
    struct buf out; /* the request of the step (kept until its answers are in) */
};

/* A worker's share (load_worker data); outlives the loop for its stats. */
struct qworker {
    struct load_worker *lw;
    struct qplan *p;
    uint64_t live; /* connections not through */
    int ending;    /* -d is over: no cycle starts */
    uint64_t err_run;
    const struct timeval *tv_step[STEPS];
    struct event drain_ev;
    struct qconn *conns;
    uint64_t ids[RESERVE_MAX];
    struct qstats st;
};

static struct qconn *qc_of(const struct load_conn *c) {
    return c->data;
}

static struct qworker *qw_of(const struct load_conn *c) {
    return c->w->data;
}

static int stopping(const struct qworker *w) {
    return load_worker_stopping(w->lw) || w->ending;
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

/* ---- the steps ---------------------------------------------------------------- */

static void q_next(struct qconn *qc);

/* The connection is through: no more requests. */
static void q_finish(struct qconn *qc) {
    struct qworker *w = qw_of(qc->c);
    if (qc->done)
        return;
    load_conn_close(qc->c, qc->c->expect > 0); /* a reset drops a pending wait at once */
    qc->c->expect = 0;
    buf_free(&qc->out);
    qc->done = 1;
    if (qc->role == ROLE_PRODUCER)
        atomic_fetch_sub(&w->p->producers_live, 1);
    if (--w->live == 0)
        event_base_loopbreak(w->lw->base);
}

/* The connection failed (counted, closed): after a pause, a new cycle. */
static void q_failed(struct load_conn *c) {
    struct qworker *w = qw_of(c);
    struct qconn *qc = qc_of(c);
    qc->remaining = 0; /* jobs leased to this connection come back when their lease ends */
    if (++w->err_run >= GIVE_UP_ERRORS && !atomic_load(&w->p->gave_up)) {
        atomic_store(&w->p->gave_up, 1);
        atomic_store(w->lw->plan->stop, 1);
        event_base_loopbreak(w->lw->base);
        return;
    }
    if (stopping(w)) {
        q_finish(qc);
        return;
    }
    qc->resume_next = 1;
    load_conn_pause(c, RETRY_NS);
}

/* Send the step's request (in out), expecting that many answers. */
static void q_start(struct qconn *qc, int step, unsigned expect) {
    struct qworker *w = qw_of(qc->c);
    qc->step = (unsigned char)step;
    qc->step_ns = load_now_ns();
    w->st.requests += expect;
    load_conn_send(qc->c, buf_start(&qc->out), qc->out.len, expect, w->tv_step[step]);
}

static void q_oom(struct qconn *qc) {
    load_conn_fail(qc->c, LOAD_ERR_READ, "out of memory");
}

/* A cycle's put is put_nowait (a full queue answers 503 at once and the put
 * is repeated after a pause); a producer's waits, up to --put-wait. */
static void q_put(struct qconn *qc) {
    const struct qplan *p = qw_of(qc->c)->p;
    const struct buf *b = qc->role == ROLE_PRODUCER && p->put_wait_us ? &p->put_wait : &p->put;
    buf_reset(&qc->out);
    if (buf_append(&qc->out, buf_start(b), b->len) < 0) {
        q_oom(qc);
        return;
    }
    q_start(qc, STEP_PUT, 1);
}

static void q_reserve(struct qconn *qc, unsigned count) {
    const struct qplan *p = qw_of(qc->c)->p;
    int r;
    buf_reset(&qc->out);
    if (count == p->reserve_max) {
        r = buf_append(&qc->out, buf_start(&p->reserve), p->reserve.len);
    } else {
        r = buf_append(&qc->out, buf_start(&p->reserve_head), p->reserve_head.len);
        r |= buf_append_u64(&qc->out, count);
        r |= buf_append(&qc->out, buf_start(&p->tail), p->tail.len);
    }
    if (r < 0) {
        q_oom(qc);
        return;
    }
    qc->asked = count;
    q_start(qc, STEP_RESERVE, 1);
}

/* --batch: one batch ack (POST .../acks, an id per line) for every job of the reserve. */
static void q_batch_ack(struct qconn *qc, const uint64_t *ids, unsigned n) {
    const struct qplan *p = qw_of(qc->c)->p;
    char body[RESERVE_MAX * 21];
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) {
        len += (size_t)(text_u64(body + len, ids[i]) - (body + len));
        body[len++] = '\n';
    }
    buf_reset(&qc->out);
    int r = buf_append(&qc->out, buf_start(&p->acks_head), p->acks_head.len);
    r |= buf_appendf(&qc->out, "Content-Length: %zu\r\n\r\n", len);
    r |= buf_append(&qc->out, body, len);
    if (r < 0) {
        q_oom(qc);
        return;
    }
    qc->asked = n;
    q_start(qc, STEP_ACK, 1);
}

/* Every ack in one write: pipelined (--batch: one batch ack). */
static void q_acks(struct qconn *qc, const uint64_t *ids, unsigned n) {
    const struct qplan *p = qw_of(qc->c)->p;
    if (p->batch > 1) {
        q_batch_ack(qc, ids, n);
        return;
    }
    buf_reset(&qc->out);
    int r = buf_reserve(&qc->out, n * (p->ack_head.len + p->tail.len + 24));
    for (unsigned i = 0; i < n && r == 0; i++) {
        r |= buf_append(&qc->out, buf_start(&p->ack_head), p->ack_head.len);
        r |= buf_append_u64(&qc->out, ids[i]);
        r |= buf_append(&qc->out, "/ack", 4);
        r |= buf_append(&qc->out, buf_start(&p->tail), p->tail.len);
    }
    if (r < 0) {
        q_oom(qc);
        return;
    }
    q_start(qc, STEP_ACK, n);
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
static void q_next(struct qconn *qc) {
    struct qworker *w = qw_of(qc->c);
    const struct qplan *p = w->p;
    qc->resume_next = 0;
    if (stopping(w)) {
        q_finish(qc);
        return;
    }
    switch (qc->role) {
    case ROLE_CYCLE:
    case ROLE_PRODUCER:
        if (!load_worker_take(w->lw)) {
            q_finish(qc);
            return;
        }
        qc->cycle_ns = load_now_ns();
        qc->remaining = qc->role == ROLE_CYCLE ? p->batch : 0;
        q_put(qc);
        return;
    default:
        if (consumers_through(p) || (p->producers == 0 && !load_worker_take(w->lw))) {
            q_finish(qc);
            return;
        }
        qc->cycle_ns = load_now_ns();
        q_reserve(qc, p->reserve_max);
        return;
    }
}

static void cycle_done(struct qconn *qc, uint64_t now) {
    struct qstats *s = &qw_of(qc->c)->st;
    s->cycles++;
    s->last_ns = now;
    load_hist_record(&s->cycle, now > qc->cycle_ns ? (now - qc->cycle_ns) / 1000u : 0);
}

static void step_done(struct qconn *qc, uint64_t now) {
    struct qworker *w = qw_of(qc->c);
    load_hist_record(&w->st.step[qc->step], now > qc->step_ns ? (now - qc->step_ns) / 1000u : 0);
    w->err_run = 0;
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

/* An answer the step did not expect: a "status" error, and the connection
 * is reset like after any other. */
static void status_error(struct qconn *qc, int status, const char *body, size_t len) {
    struct qstats *s = &qw_of(qc->c)->st;
    char text[120];
    error_text(body, len, text, sizeof text);
    s->status_errors++;
    if (!s->first_status_error[0])
        snprintf(s->first_status_error, sizeof s->first_status_error, "%s answered %d: %s",
                 step_names[qc->step], status, text);
    load_conn_close(qc->c, 1);
    qc->c->expect = 0;
    q_failed(qc->c);
}

/* The driver's response hook: one whole answer to the step under way. */
static void q_answer(struct load_conn *c, const struct http_response *res, const char *body,
                     size_t len) {
    struct qworker *w = qw_of(c);
    struct qconn *qc = qc_of(c);
    struct qplan *p = w->p;
    struct qstats *s = &w->st;
    int status = res->status;
    uint64_t now = load_now_ns();
    if (len > MAX_RESPONSE) {
        load_conn_fail(c, LOAD_ERR_PARSE, "an answer over 16 MiB");
        return;
    }
    switch (qc->step) {
    case STEP_PUT:
        if (status == 201) {
            step_done(qc, now);
            s->jobs_put += p->batch;
            atomic_fetch_add_explicit(&p->put_total, p->batch, memory_order_relaxed);
            if (qc->role == ROLE_PRODUCER) {
                cycle_done(qc, now);
                q_next(qc);
            } else {
                q_reserve(qc, min_u(qc->remaining, p->reserve_max));
            }
            return;
        }
        if (status == 503) { /* full (after wait=), or the journal is busy */
            s->full++;
            if (stopping(w))
                q_finish(qc); /* nothing of this cycle is in the queue */
            else if (qc->role == ROLE_PRODUCER && p->put_wait_us)
                q_start(qc, STEP_PUT, 1); /* the daemon waited already */
            else
                load_conn_pause(c, RETRY_NS); /* then the same put again */
            return;
        }
        break;
    case STEP_RESERVE:
        if (status == 200) {
            int n = reserve_ids(w, res, body, len);
            if (n <= 0 || (unsigned)n > qc->asked) {
                char msg[96];
                snprintf(msg, sizeof msg, "reserve with count=%u answered %d jobs, or garbled",
                         qc->asked, n);
                load_conn_fail(c, LOAD_ERR_PARSE, msg);
                return;
            }
            step_done(qc, now);
            if (qc->role == ROLE_CYCLE)
                qc->remaining -= min_u((unsigned)n, qc->remaining);
            q_acks(qc, w->ids, (unsigned)n);
            return;
        }
        if (status == 204) { /* wait=1 passed with nothing */
            s->empty++;
            if (qc->role == ROLE_CONSUMER && (stopping(w) || consumers_through(p))) {
                q_finish(qc);
                return;
            }
            q_reserve(qc, qc->role == ROLE_CYCLE ? min_u(qc->remaining, p->reserve_max)
                                                 : p->reserve_max);
            return;
        }
        break;
    case STEP_ACK:
        if (status == 200) {
            unsigned acked = 1;
            if (p->batch > 1) { /* {"acked": K, ...}: every id of the batch, or an error */
                static const char key[] = "{\"acked\": ";
                const char *e = len > sizeof key ? memchr(body + sizeof key - 1, ',', len - (sizeof key - 1)) : NULL;
                uint64_t k;
                if (!e || memcmp(body, key, sizeof key - 1) != 0 ||
                    parse_u64(body + sizeof key - 1, (size_t)(e - body) - (sizeof key - 1), &k) < 0 ||
                    k != qc->asked)
                    break;
                acked = qc->asked;
            }
            s->jobs_acked += acked;
            atomic_fetch_add_explicit(&p->acked_total, acked, memory_order_relaxed);
            if (c->expect > 0)
                return;
            step_done(qc, now);
            if (qc->role == ROLE_CYCLE && qc->remaining > 0) {
                q_reserve(qc, min_u(qc->remaining, p->reserve_max));
                return;
            }
            cycle_done(qc, now);
            q_next(qc);
            return;
        }
        break;
    }
    status_error(qc, status, body, len);
}

/* The pause is over: a new cycle (after an error), or the step's request again. */
static void q_resume(struct load_conn *c) {
    struct qconn *qc = qc_of(c);
    if (qc->resume_next)
        q_next(qc);
    else if (stopping(qw_of(c)))
        q_finish(qc);
    else
        q_start(qc, qc->step, 1);
}

/* ---- the worker's hooks ----------------------------------------------------------- */

static int is_paused(const struct qconn *qc) {
    return qc->c->state == CS_PAUSED;
}

static void q_tick(struct load_worker *lw) {
    struct qworker *w = lw->data;
    /* Consumers waiting in a reserve once every job is acked: nothing will come. */
    if (consumers_through(w->p))
        for (uint64_t i = 0; i < lw->nconns; i++) {
            struct qconn *qc = &w->conns[i];
            if (!qc->done && qc->role == ROLE_CONSUMER && qc->step == STEP_RESERVE &&
                !is_paused(qc) && qc->c->expect > 0)
                q_finish(qc);
        }
}

static void drain_cb(evutil_socket_t fd, short what, void *arg) {
    struct qworker *w = arg;
    for (uint64_t i = 0; i < w->lw->nconns; i++)
        q_finish(&w->conns[i]);
    event_base_loopbreak(w->lw->base);
}

/* -d is over: nothing new starts; what holds jobs finishes, within DRAIN_NS. */
static void q_end(struct load_worker *lw) {
    struct qworker *w = lw->data;
    w->ending = 1;
    for (uint64_t i = 0; i < lw->nconns && w->live; i++) {
        struct qconn *qc = &w->conns[i];
        if (qc->done)
            continue;
        if (is_paused(qc) || (qc->role == ROLE_CONSUMER && qc->step == STEP_RESERVE))
            q_finish(qc); /* holds no job */
    }
    struct timeval tv = load_tv_from_ns(DRAIN_NS);
    event_add(&w->drain_ev, &tv);
}

static int q_start_worker(struct load_worker *lw) {
    const struct qplan *p = lw->plan->driver_plan;
    struct qworker *w = calloc(1, sizeof *w);
    if (!w)
        return -1;
    lw->data = w;
    w->lw = lw;
    w->p = lw->plan->driver_plan;
    load_hist_init(&w->st.cycle);
    for (int k = 0; k < STEPS; k++)
        load_hist_init(&w->st.step[k]);
    uint64_t waits[STEPS] = {p->put_wait_us, 1000000, 0};
    for (int i = 0; i < STEPS; i++) {
        struct timeval tv = load_tv_from_ns((p->timeout_us + waits[i]) * 1000u);
        if (!(w->tv_step[i] = event_base_init_common_timeout(lw->base, &tv)))
            return -1;
    }
    w->conns = calloc(lw->nconns ? lw->nconns : 1, sizeof *w->conns);
    if (!w->conns)
        return -1;
    event_assign(&w->drain_ev, lw->base, -1, 0, drain_cb, w);
    w->live = lw->nconns;
    for (uint64_t i = 0; i < lw->nconns; i++) {
        struct qconn *qc = &w->conns[i];
        qc->c = &lw->conns[i];
        qc->c->data = qc;
        uint64_t index = qc->c->index;
        qc->role = !p->split ? ROLE_CYCLE : index < p->producers ? ROLE_PRODUCER : ROLE_CONSUMER;
    }
    for (uint64_t i = 0; i < lw->nconns; i++)
        q_next(&w->conns[i]);
    return 0;
}

static void q_teardown(struct load_worker *lw) {
    struct qworker *w = lw->data;
    if (!w)
        return;
    if (w->conns) {
        event_del(&w->drain_ev);
        for (uint64_t i = 0; i < lw->nconns; i++)
            buf_free(&w->conns[i].out);
    }
    free(w->conns);
    w->conns = NULL;
}

static uint64_t q_progress(const struct load_worker *lw) {
    const struct qworker *w = lw->data;
    return w ? w->st.cycles : 0;
}

static const struct load_driver queue_driver = {
    .start = q_start_worker,
    .response = q_answer,
    .failed = q_failed,
    .resume = q_resume,
    .tick = q_tick,
    .end = q_end,
    .teardown = q_teardown,
    .progress = q_progress,
};

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
    struct timeval tv = load_tv_from_ns(timeout_us * 1000u);
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
    r |= buf_appendf(&p->acks_head, "POST %s/acks HTTP/1.1\r\n", qpath);
    r |= buf_append(&p->acks_head, buf_start(&fields), fields.len);
    buf_free(&fields);
    return r ? -1 : 0;
}

static void plan_free(struct qplan *p) {
    buf_free(&p->put);
    buf_free(&p->put_wait);
    buf_free(&p->reserve);
    buf_free(&p->reserve_head);
    buf_free(&p->ack_head);
    buf_free(&p->acks_head);
    buf_free(&p->tail);
}

/* ---- the report --------------------------------------------------------------- */

struct qsummary {
    const struct load_opts *o;
    unsigned threads;
    double duration_s;
    int interrupted;
    struct load_stats l; /* load_conn's counts */
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
    d->status_errors += s->status_errors;
    if (!d->first_status_error[0])
        memcpy(d->first_status_error, s->first_status_error, sizeof d->first_status_error);
    if (s->last_ns > d->last_ns)
        d->last_ns = s->last_ns;
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

/* Errors of kind k: load_conn's kinds, then the queue's own "status". */
static uint64_t err_of(const struct qsummary *s, int k) {
    return k == QE_STATUS ? s->t.status_errors : s->l.errors[k];
}

static const char *first_err_of(const struct qsummary *s, int k) {
    return k == QE_STATUS ? s->t.first_status_error : s->l.first_error[k];
}

static uint64_t error_count(const struct qsummary *s) {
    uint64_t n = 0;
    for (int k = 0; k < QE_KINDS; k++)
        n += err_of(s, k);
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
    if (h->total == 0)
        fprintf(f, "  %-11s none\n", label);
    else
        load_report_latency(f, label, h);
}

static void report_text(FILE *f, const struct qsummary *s) {
    const struct load_opts *o = s->o;
    const struct qstats *t = &s->t;
    const struct load_stats *l = &s->l;
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
        if (l->status[i]) {
            fprintf(f, " %dxx %" PRIu64, i, l->status[i]);
            any = 1;
        }
    fprintf(f, "%s\n", any ? "" : " none");
    fprintf(f, "  errors     ");
    if (!error_count(s)) {
        fprintf(f, " none\n");
    } else {
        for (int k = 0; k < QE_KINDS; k++)
            fprintf(f, " %s %" PRIu64, qerr_names[k], err_of(s, k));
        fprintf(f, "\n");
        for (int k = 0; k < QE_KINDS; k++)
            if (err_of(s, k))
                fprintf(f, "    first %s error: %s\n", qerr_names[k], first_err_of(s, k));
    }
    fprintf(f, "  bytes       %" PRIu64 " in, %" PRIu64 " out\n", l->bytes_in, l->bytes_out);
    fprintf(f, "  connections %" PRIu64 " established, %" PRIu64 " reconnects\n", l->connects,
            l->reconnects);
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
    const struct load_stats *l = &s->l;
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
        r |= buf_appendf(&b, "%s\"%dxx\": %" PRIu64, i > 1 ? ", " : "", i, l->status[i]);
    r |= buf_appends(&b, "}, \"errors\": {");
    for (int k = 0; k < QE_KINDS; k++)
        r |= buf_appendf(&b, "%s\"%s\": %" PRIu64, k ? ", " : "", qerr_names[k], err_of(s, k));
    r |= buf_appends(&b, "}, \"first_error\": ");
    const char *first = "";
    for (int k = 0; k < QE_KINDS && !first[0]; k++)
        first = first_err_of(s, k);
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
                     l->bytes_in, l->bytes_out, o->connections, s->threads, l->reconnects,
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

/* Split -n over the workers in proportion to the connections that take
 * cycles from it (all of them, or the producers, or the consumers). */
static uint64_t worker_quota(const void *arg, unsigned i, unsigned threads, uint64_t first,
                             uint64_t nconns) {
    const struct load_opts *o = arg;
    (void)i;
    (void)threads;
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
        load_report_fail(o->json, o->url, 1, "out of memory");
        return -1;
    }
    int status = q_http(a, &req, o->timeout_us, &body, err, sizeof err);
    int rc = 0;
    if (status < 0) {
        load_report_fail(o->json, o->url, 1, "PUT %s: %s", qpath, err);
        rc = -1;
    } else if (status != 200 && status != 201) {
        char text[160];
        error_text(buf_start(&body), body.len, text, sizeof text);
        load_report_fail(o->json, o->url, 1, "cannot create the queue: PUT %s answered %d %s: %s",
                         qpath, status, http_reason(status), text);
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
        return load_report_fail(o->json, o->url, 2,
                                "--scenario queue: the URL must be http://host:port/queues/NAME "
                                "(got target '%s')",
                                u->target);
    }
    snprintf(qpath, sizeof qpath, "/queues/%s", name);
    if (create_queue(o, u, a, qpath) < 0)
        return 1;

    atomic_int stop;
    atomic_init(&stop, 0);
    struct qplan *p = calloc(1, sizeof *p);
    if (!p || plan_build(p, o, u, qpath) < 0) {
        load_report_fail(o->json, o->url, 1, "out of memory");
        if (p)
            plan_free(p);
        free(p);
        return 1;
    }
    atomic_init(&p->gave_up, 0);
    atomic_init(&p->put_total, 0);
    atomic_init(&p->acked_total, 0);
    atomic_init(&p->producers_live, p->producers);
    unsigned threads = o->threads;
    if (threads > o->connections)
        threads = (unsigned)o->connections;
    struct load_plan plan = {
        .addr = (const struct sockaddr *)&a->ss,
        .addrlen = a->len,
        .total_conns = o->connections,
        .threads = threads,
        .timeout_us = o->timeout_us,
        .connect_rate = o->connect_rate,
        .stop = &stop,
        .driver = &queue_driver,
        .driver_plan = p,
    };

    struct load_worker *w[256];
    int interrupted;
    unsigned started =
        load_run(&plan, o->duration_us, worker_quota, o, "cycles", "cycles", w, &interrupted);

    struct qsummary s;
    memset(&s, 0, sizeof s);
    load_hist_init(&s.l.hist);
    load_hist_init(&s.l.handshake_hist);
    load_hist_init(&s.t.cycle);
    for (int k = 0; k < STEPS; k++)
        load_hist_init(&s.t.step[k]);
    const char *setup_error = NULL;
    for (unsigned i = 0; i < started; i++) {
        struct qworker *qw = load_worker_data(w[i]);
        load_stats_merge(&s.l, load_worker_stats(w[i]));
        if (qw)
            stats_merge(&s.t, &qw->st);
        if (!setup_error && load_worker_setup_error(w[i])[0])
            setup_error = load_worker_setup_error(w[i]);
    }
    int rc = 0;
    struct buf qstats = BUF_INIT;
    if (started < threads || setup_error) {
        rc = load_report_fail(o->json, o->url, 1, "%s",
                              setup_error ? setup_error : "could not start the worker threads");
        goto out;
    }
    fetch_stats(o, u, a, qpath, &qstats);
    s.o = o;
    s.threads = threads;
    s.interrupted = interrupted;
    s.queue = &qstats;
    s.duration_s = (double)((s.t.last_ns ? s.t.last_ns : s.l.end_ns) - plan.t0_ns) / 1e9;
    if (o->json)
        report_json(stdout, &s);
    else
        report_text(stdout, &s);
    fflush(stdout);
    const char *first_error = "";
    for (int k = QE_STATUS; k >= 0 && !first_error[0]; k--) /* status errors say the most */
        first_error = first_err_of(&s, k);
    if (atomic_load(&p->gave_up)) {
        fprintf(stderr, "awaitload: gave up after %d errors in a row (first: %s)\n", GIVE_UP_ERRORS,
                first_error);
        rc = 1;
    } else if (s.t.cycles == 0 && !interrupted) {
        if (error_count(&s))
            fprintf(stderr, "awaitload: no cycle completed (%" PRIu64 " errors; first: %s)\n",
                    error_count(&s), first_error);
        else
            fprintf(stderr, "awaitload: no cycle completed before the run ended\n");
        rc = 1;
    }
out:
    for (unsigned i = 0; i < started; i++) {
        free(load_worker_data(w[i]));
        load_worker_free(w[i]);
    }
    buf_free(&qstats);
    plan_free(p);
    free(p);
    return rc;
}
