#include "net/access_log.h"

#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "http/http_parse.h"
#include "net/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Write at once past this much buffered... */
#define FLUSH_AT (64 * 1024)
/* ...and let at most this much wait for a file or pipe that does not take it. */
#define PENDING_MAX (1024 * 1024)
/* Output left over (a pipe that was full) is tried again after this long. */
#define RETRY_MS 100

struct access_log {
    struct event_base *base;
    struct event *flush_ev; /* no fd: activated for the end of the loop turn, or a retry */
    char *path;             /* NULL: stderr */
    int fd;
    int is_sock;            /* stderr is a socket (journald): send without waiting */
    int failing;            /* the last write failed (logged once until one works) */
    int stalled;            /* output is left over: only the retry timer writes */
    uint64_t *dropped;
    struct buf buf;
    time_t tsec;            /* tstr is for this second */
    char tstr[40];          /* "[03/Dec/2026:12:32:24 +0000] " */
};

static int open_append(const char *path) {
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

static int access_on(const struct config *cfg) {
    return cfg->log_access && strcmp(cfg->log_access, "off") != 0;
}

int log_files_check(const struct config *cfg, char *err, size_t errlen) {
    const char *paths[2] = {access_on(cfg) && strcmp(cfg->log_access, "stderr") != 0
                                ? cfg->log_access : NULL,
                            cfg->log_error};
    static const char *const keys[2] = {"access", "error"};
    for (int i = 0; i < 2; i++) {
        if (!paths[i])
            continue;
        int fd = open_append(paths[i]);
        if (fd < 0) {
            snprintf(err, errlen, "%s: [log] %s: cannot open %s for appending: %s", cfg->path,
                     keys[i], paths[i], strerror(errno));
            return -1;
        }
        close(fd);
    }
    return 0;
}

/* One write of what is buffered; what is not taken stays (bounded). */
static void flush(struct access_log *al) {
    struct buf *b = &al->buf;
    while (b->len > 0) {
        ssize_t n = al->is_sock ? send(al->fd, buf_start(b), b->len, MSG_DONTWAIT | MSG_NOSIGNAL)
                                : write(al->fd, buf_start(b), b->len);
        if (n > 0) {
            buf_consume(b, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (!al->failing && !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) {
            al->failing = 1;
            log_warn("access log %s: write failed (lines past 1 MiB waiting are dropped)",
                     al->path ? al->path : "stderr");
        }
        struct timeval tv = {0, RETRY_MS * 1000};
        al->stalled = 1;
        event_add(al->flush_ev, &tv);
        return;
    }
    al->stalled = 0;
    if (al->failing) {
        al->failing = 0;
        log_info("access log %s: writing again", al->path ? al->path : "stderr");
    }
    if (b->cap > 2 * FLUSH_AT)
        buf_free(b);
    else
        buf_reset(b);
}

static void on_flush(evutil_socket_t fd, short what, void *arg) {
    flush(arg);
}

struct access_log *access_log_new(struct event_base *base, const struct config *cfg,
                                  uint64_t *dropped, char *err, size_t errlen) {
    err[0] = '\0';
    if (!access_on(cfg))
        return NULL;
    struct access_log *al = calloc(1, sizeof *al);
    if (!al) {
        snprintf(err, errlen, "[log] access: out of memory");
        return NULL;
    }
    al->base = base;
    al->dropped = dropped;
    al->fd = STDERR_FILENO;
    if (strcmp(cfg->log_access, "stderr") != 0) {
        al->path = strdup(cfg->log_access);
        al->fd = al->path ? open_append(al->path) : -1;
        if (al->fd < 0) {
            snprintf(err, errlen, "[log] access: cannot open %s for appending: %s",
                     cfg->log_access, al->path ? strerror(errno) : "out of memory");
            free(al->path);
            free(al);
            return NULL;
        }
    }
    struct stat st;
    al->is_sock = fstat(al->fd, &st) == 0 && S_ISSOCK(st.st_mode);
    al->flush_ev = event_new(base, -1, 0, on_flush, al);
    if (!al->flush_ev) {
        snprintf(err, errlen, "[log] access: out of memory");
        access_log_free(al);
        return NULL;
    }
    return al;
}

void access_log_free(struct access_log *al) {
    if (!al)
        return;
    if (al->buf.len)
        flush(al);
    if (al->flush_ev)
        event_free(al->flush_ev);
    if (al->path && al->fd >= 0)
        close(al->fd);
    buf_free(&al->buf);
    free(al->path);
    free(al);
}

int access_log_reopen(struct access_log *al) {
    if (!al->path)
        return 0;
    flush(al); /* what was logged before goes to the old file */
    int fd = open_append(al->path);
    if (fd < 0) {
        log_warn("SIGUSR1: cannot reopen the access log %s, still writing the old file",
                 al->path);
        return -1;
    }
    /* dup2 swaps the file under the same descriptor in one step. */
    if (dup2(fd, al->fd) < 0) {
        log_warn("SIGUSR1: cannot reopen the access log %s", al->path);
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

void access_req_start(struct access_req *r) {
    free(r->saved);
    *r = (struct access_req){0};
}

void access_req_drop(struct access_req *r) {
    free(r->saved);
    r->saved = NULL;
}

/* s[0..n) with '"', '\\' and bytes outside printable ASCII as \xHH. */
static int append_escaped(struct buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    if (buf_reserve(b, n * 4) < 0)
        return -1;
    char *o = buf_start(b) + b->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
            *o++ = (char)ch;
        } else {
            *o++ = '\\';
            *o++ = 'x';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        }
    }
    b->len = (size_t)(o - buf_start(b));
    return 0;
}

static int append_header(struct buf *b, const struct http_request *req, const char *name) {
    const struct http_header *h = http_find_header(req->headers, req->nheaders, name);
    if (!h || h->value_len == 0)
        return buf_append(b, "\"-\"", 3);
    int r = buf_append(b, "\"", 1);
    r |= append_escaped(b, h->value, h->value_len);
    return r | buf_append(b, "\"", 1);
}

/* "METHOD TARGET HTTP/1.x" */
static int append_request(struct buf *b, const struct http_request *req) {
    int r = buf_append(b, "\"", 1);
    r |= append_escaped(b, req->method_str, req->method_len);
    r |= buf_append(b, " ", 1);
    r |= append_escaped(b, req->target, req->target_len);
    return r | buf_appends(b, req->minor_version == 2 ? " HTTP/2.0\""
                              : req->minor_version ? " HTTP/1.1\"" : " HTTP/1.0\"");
}

/* "REFERER" "USER-AGENT" */
static int append_agents(struct buf *b, const struct http_request *req) {
    int r = append_header(b, req, "Referer");
    r |= buf_append(b, " ", 1);
    return r | append_header(b, req, "User-Agent");
}

void access_req_save(struct access_req *r, const struct http_request *req) {
    struct buf b = BUF_INIT;
    free(r->saved);
    r->saved = NULL;
    int e = append_request(&b, req);
    size_t split = b.len;
    if ((e | append_agents(&b, req)) < 0 || b.len > UINT32_MAX) {
        buf_free(&b);
        return;
    }
    /* Kept while the answer waits (10,000 pending /delay answers: 10,000
     * copies), so exactly its size, not the buffer's 256 bytes and up. */
    r->saved = malloc(b.len);
    if (r->saved) {
        memcpy(r->saved, buf_start(&b), b.len);
        r->saved_split = (uint32_t)split;
        r->saved_len = (uint32_t)b.len;
    }
    buf_free(&b);
}

/* " STATUS BYTES " without printf: this runs once per request. */
static int append_status(struct buf *b, unsigned status, uint64_t bytes) {
    int e = buf_append(b, " ", 1);
    e |= buf_append_u64(b, status);
    e |= buf_append(b, " ", 1);
    e |= buf_append_u64(b, (unsigned long long)bytes);
    return e | buf_append(b, " ", 1);
}

static const char *stamp(struct access_log *al) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != al->tsec) {
        struct tm tm;
        al->tsec = ts.tv_sec;
        localtime_r(&ts.tv_sec, &tm);
        strftime(al->tstr, sizeof al->tstr, " - - [%d/%b/%Y:%H:%M:%S %z] ", &tm);
    }
    return al->tstr;
}

void access_log_write(struct access_log *al, struct conn *c,
                      const struct http_request *req) {
    struct access_req *r = &c->b->alog;
    struct buf *b = &al->buf;
    size_t mark = b->len;
    char peer[INET6_ADDRSTRLEN + 1];
    int e = buf_appends(b, conn_peer_text(c, peer, sizeof peer));
    e |= buf_appends(b, stamp(al));
    unsigned status = r->status ? r->status : 499u; /* 499: the client went first */
    if (req) {
        e |= append_request(b, req);
        e |= append_status(b, status, r->bytes);
        e |= append_agents(b, req);
    } else if (r->saved) {
        e |= buf_append(b, r->saved, r->saved_split);
        e |= append_status(b, status, r->bytes);
        e |= buf_append(b, r->saved + r->saved_split, r->saved_len - r->saved_split);
    } else {
        /* No request (a framing error), or no memory to keep it. */
        e |= buf_append(b, "\"-\"", 3);
        e |= append_status(b, status, r->bytes);
        e |= buf_append(b, "\"-\" \"-\"", 7);
    }
    uint64_t us = c->start_us ? clock_now_us() - c->start_us : 0;
    unsigned ms = (unsigned)(us / 1000 % 1000);
    char frac[6] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10),
                    ' '};
    e |= buf_append(b, " ", 1);
    e |= buf_append_u64(b, (unsigned long long)(us / 1000000));
    e |= buf_append(b, frac, 5);
    if (r->has_id)
        e |= buf_append_u64(b, (unsigned long long)r->id);
    else
        e |= buf_append(b, "-", 1);
    e |= buf_append(b, "\n", 1);
    access_req_drop(r);
    if (e || b->len > PENDING_MAX) {
        b->len = mark; /* no memory, or the file is not taking lines: drop this one */
        (*al->dropped)++;
        return;
    }
    if (al->stalled)
        return; /* the retry timer writes */
    if (b->len >= FLUSH_AT)
        flush(al);
    else if (mark == 0)
        event_active(al->flush_ev, EV_TIMEOUT, 0);
}
