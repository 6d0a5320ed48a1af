/*
 * config_parse: the file's lines (config_parse_text, config_load): sections,
 * "key = value" lines, comments, each value set through the key table with
 * its range checked, each message "FILE:LINE: [section] key: what was
 * expected". Pure except for token_file (and config_check's password_file),
 * which are read, and config_load, which reads the file first.
 *
 * Choices beyond config.h (conf/awaitd.conf documents them for users):
 * - A value may be wrapped in double quotes (no escapes) to keep a '#' or ';'
 *   after whitespace; unquoted, a '#' or ';' glued to text is part of it.
 * - [auth] tokens are at least 16 visible ASCII characters (a Bearer header
 *   must carry them) and never appear in messages.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* explicit_bzero */
#endif
#include "core/config.h"
#include "core/config_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_LEN 4096
#define TOKEN_MIN 16

static char *trim(char *s) {
    s = skip_ws(s);
    size_t n = strlen(s);
    while (n > 0 && is_space(s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* "PATH:LINE: message", or "PATH:LINE: [section] key: message" when k is given. */
int config_report(struct parser *p, int line, const struct keydef *k, const char *fmt, ...) {
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

/* How each kind of number is parsed and described in messages. */
struct numtype {
    int (*parse)(const char *, uint64_t *);
    const struct config_unit *units;
    const char *what, *hint;
};
static const struct numtype numtypes[] = {
    [V_COUNT] = {config_parse_count, config_count_units, "a whole number", ""},
    [V_SIZE] = {config_parse_size, config_size_units, "a size",
                " (bytes, or with a k, m or g suffix)"},
    [V_DURATION] = {config_parse_duration_ms, config_duration_units, "a duration",
                    " (a number with ms, s, m or h; bare means seconds)"},
};

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
        int other = config_find_key(SEC_AUTH, k->type == V_TOKEN ? "token_file" : "token");
        if (p->key_line[other])
            return key_fail(p, k, "token and token_file cannot both be set (%s is on line %d)",
                            config_keys[other].name, p->key_line[other]);
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
                            config_fmt_unit(lo, sizeof lo, k->min, t->units),
                            config_fmt_unit(hi, sizeof hi, k->max, t->units), t->hint, v);
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
        if (strncmp(v, "top", 3) == 0 && is_space(v[3]) &&
            config_parse_count(skip_ws((char *)v + 3), &u) == 0 && u >= 1 && u <= k->max) {
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
            s = config_resolve_path(p->c->dir, v);
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
    config_apply_defaults(p->q, true);
    strcpy(p->q->name, name);
    p->sec = SEC_QUEUE;
    snprintf(p->secname, sizeof p->secname, "queue %s", name);
    for (size_t i = 0; i < config_nkeys; i++) /* each [queue NAME] starts afresh */
        if (config_keys[i].sec == SEC_QUEUE)
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
        if (strcmp(name, config_section_names[i]) != 0)
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
        n += (size_t)snprintf(list + n, sizeof list - n, "[%s], ", config_section_names[i]);
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
    int idx = config_find_key(p->sec, name);
    if (idx < 0) {
        char list[512];
        size_t n = 0;
        list[0] = '\0';
        for (size_t i = 0; i < config_nkeys && n < sizeof list; i++)
            if (config_keys[i].sec == p->sec)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "",
                                      config_keys[i].name);
        return fail(p, p->line, "[%s] %s: unknown key; expected one of %s", p->secname, name, list);
    }
    const struct keydef *k = &config_keys[idx];
    if (p->key_line[idx] && k->type != V_LISTEN)
        return key_fail(p, k, "repeated key (first set on line %d)", p->key_line[idx]);
    char *v = clean_value(p, k, eq + 1);
    if (!v || set_value(p, k, v) < 0)
        return -1;
    p->key_line[idx] = p->line;
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
    struct config *c = config_new(path);
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
        rc = config_check(p);
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
