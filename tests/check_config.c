/* Unit tests for config.c: value parsers, the file syntax, every error class. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "core/config.h"
#include "core/log.h"
#include "check_main.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char err[1024];

/* Parse text as "t.conf"; it must succeed. */
static struct config *ok(const char *text) {
    struct config *c = NULL;
    err[0] = '\0';
    int rc = config_parse_text("t.conf", text, &c, err, sizeof err);
    ck_assert_msg(rc == 0, "expected success, got: %s", err);
    ck_assert_ptr_nonnull(c);
    return c;
}

/* Parse text; it must fail with a message containing every given piece. */
static void bad_(const char *text, const char *const *want) {
    struct config *c = (struct config *)1;
    err[0] = '\0';
    int rc = config_parse_text("t.conf", text, &c, err, sizeof err);
    ck_assert_msg(rc == -1, "expected failure for:\n%s", text);
    ck_assert_ptr_null(c);
    for (; *want; want++)
        ck_assert_msg(strstr(err, *want), "message '%s' lacks '%s'", err, *want);
}
#define bad(text, ...) bad_(text, (const char *const[]){__VA_ARGS__, NULL})

static char *cwd_join(const char *rel) {
    char *cwd = getcwd(NULL, 0), *r;
    ck_assert_int_ge(asprintf(&r, "%s/%s", cwd, rel), 0);
    free(cwd);
    return r;
}

/* ---- value parsers ------------------------------------------------------- */

START_TEST(sizes) {
    static const struct {
        const char *s;
        uint64_t v;
    } good[] = {{"0", 0},
                {"1", 1},
                {"512", 512},
                {"8k", 8192},
                {"8K", 8192},
                {"1m", 1048576},
                {"2M", 2097152},
                {"1g", 1073741824ULL},
                {"3G", 3221225472ULL},
                {"18446744073709551615", UINT64_MAX},
                {"17179869183g", 17179869183ULL << 30}};
    static const char *const nope[] = {"",
                                       "k",
                                       "-1",
                                       "1.5k",
                                       "1kb",
                                       "1 k",
                                       " 1",
                                       "1t",
                                       "0x10",
                                       "+1",
                                       "18446744073709551616",
                                       "17179869184g",
                                       "99999999999999999999k"};
    uint64_t v;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ck_assert_msg(config_parse_size(good[i].s, &v) == 0, "%s", good[i].s);
        ck_assert_uint_eq(v, good[i].v);
    }
    for (size_t i = 0; i < sizeof nope / sizeof nope[0]; i++)
        ck_assert_msg(config_parse_size(nope[i], &v) == -1, "'%s' accepted", nope[i]);
}
END_TEST

START_TEST(durations) {
    static const struct {
        const char *s;
        uint64_t ms;
    } good[] = {{"0", 0},
                {"0s", 0},
                {"1", 1000},
                {"1s", 1000},
                {"250ms", 250},
                {"2m", 120000},
                {"1h", 3600000},
                {"0.5s", 500},
                {"1.5", 1500},
                {"0.25m", 15000},
                {"1.5h", 5400000},
                {"0.0001s", 1},
                {"1.0005s", 1001},
                {"0.5ms", 1},
                {"10.000s", 10000},
                {"0.001", 1},
                {"123456789.123456789s", 123456789124ULL}};
    static const char *const nope[] = {"",
                                       "s",
                                       "-1",
                                       "-0.5s",
                                       "nan",
                                       "inf",
                                       "1e3",
                                       ".5",
                                       "1.",
                                       "1.s",
                                       "1 s",
                                       "1S",
                                       "1d",
                                       "1sec",
                                       "0x1",
                                       "1.2.3",
                                       "1.0000000001",
                                       "18446744073709551615h",
                                       "18446744073709551616"};
    uint64_t v;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ck_assert_msg(config_parse_duration_ms(good[i].s, &v) == 0, "%s", good[i].s);
        ck_assert_msg(v == good[i].ms, "%s: %llu", good[i].s, (unsigned long long)v);
    }
    for (size_t i = 0; i < sizeof nope / sizeof nope[0]; i++)
        ck_assert_msg(config_parse_duration_ms(nope[i], &v) == -1, "'%s' accepted", nope[i]);
}
END_TEST

START_TEST(listen_values) {
    struct config_listen l;
    char buf[64];

    ck_assert_int_eq(config_parse_listen("127.0.0.1:8080", &l), 0);
    const struct sockaddr_in *a4 = (const void *)&l.addr;
    ck_assert_int_eq(a4->sin_family, AF_INET);
    ck_assert_int_eq(ntohs(a4->sin_port), 8080);
    ck_assert_uint_eq(l.addrlen, sizeof(struct sockaddr_in));
    ck_assert_str_eq(inet_ntop(AF_INET, &a4->sin_addr, buf, sizeof buf), "127.0.0.1");
    ck_assert_str_eq(l.text, "127.0.0.1:8080");

    ck_assert_int_eq(config_parse_listen("[::1]:443", &l), 0);
    const struct sockaddr_in6 *a6 = (const void *)&l.addr;
    ck_assert_int_eq(a6->sin6_family, AF_INET6);
    ck_assert_int_eq(ntohs(a6->sin6_port), 443);
    ck_assert_uint_eq(l.addrlen, sizeof(struct sockaddr_in6));
    ck_assert_str_eq(inet_ntop(AF_INET6, &a6->sin6_addr, buf, sizeof buf), "::1");
    ck_assert_str_eq(l.text, "[::1]:443");

    ck_assert_int_eq(config_parse_listen("*:65535", &l), 0);
    ck_assert_uint_eq(a4->sin_addr.s_addr, htonl(INADDR_ANY));
    ck_assert_int_eq(ntohs(a4->sin_port), 65535);
    ck_assert_int_eq(config_parse_listen("[::]:1", &l), 0);
    ck_assert_int_eq(config_parse_listen("[::ffff:10.0.0.1]:80", &l), 0);
    ck_assert_int_eq(config_parse_listen("0.0.0.0:1", &l), 0);

    static const char *const nope[] = {
        "",
        "8080",
        ":8080",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "127.0.0.1:80x",
        "localhost:80",
        "127.1:80",
        "256.0.0.1:80",
        "::1:8080",
        "[::1]8080",
        "[::1]:",
        "[]:80",
        "[127.0.0.1]:80",
        "[fe80::1%lo]:80",
        "[::1:80",
        "1.2.3.4:99999999999999999999",
        "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535xxxxxxxxxxxxxx"};
    for (size_t i = 0; i < sizeof nope / sizeof nope[0]; i++)
        ck_assert_msg(config_parse_listen(nope[i], &l) == -1, "'%s' accepted", nope[i]);
}
END_TEST

/* ---- whole files ---------------------------------------------------------- */

START_TEST(defaults) {
    struct config *d = config_defaults();
    struct config *c = ok("");
    struct config *both[] = {d, c};
    for (int i = 0; i < 2; i++) {
        struct config *x = both[i];
        ck_assert_uint_eq(x->nlisten, 1);
        ck_assert_str_eq(x->listen[0].text, "127.0.0.1:8080");
        ck_assert_uint_eq(x->max_connections, 10000);
        ck_assert_uint_eq(x->backlog, 4096);
        ck_assert_int_eq(x->log_level, LOG_LVL_INFO);
        ck_assert_uint_eq(x->header_timeout_ms, 10000);
        ck_assert_uint_eq(x->body_timeout_ms, 10000);
        ck_assert_uint_eq(x->keepalive_timeout_ms, 75000);
        ck_assert_uint_eq(x->write_timeout_ms, 30000);
        ck_assert_uint_eq(x->shutdown_grace_ms, 10000);
        ck_assert_uint_eq(x->drain_delay_ms, 0);
        ck_assert_uint_eq(x->max_header_bytes, 8192);
        ck_assert_uint_eq(x->max_headers, 100);
        ck_assert_uint_eq(x->max_uri, 4096);
        ck_assert_uint_eq(x->max_body, 1048576);
        ck_assert_uint_eq(x->max_delay_ms, 60000);
        ck_assert_uint_eq(x->max_bytes, 1048576);
        ck_assert_uint_eq(x->max_stream, 1000);
        ck_assert_uint_eq(x->ntls_listen, 0);
        ck_assert_ptr_null(x->tls_cert);
        ck_assert_ptr_null(x->tls_key);
        ck_assert_ptr_null(x->tls_chain);
        ck_assert_ptr_null(x->tls_client_ca);
        ck_assert_int_eq(x->fsync, FSYNC_ALWAYS);
        ck_assert_uint_eq(x->fsync_interval_ms, 50);
        ck_assert_ptr_null(x->auth_token);
        ck_assert_ptr_null(x->auth_token_file);
        ck_assert_uint_eq(x->nqueues, 0);
        char *j = cwd_join("var/awaitd.journal");
        ck_assert_str_eq(x->journal_path, j); /* "t.conf" lives in the cwd */
        free(j);
    }
    ck_assert_ptr_null(d->path);
    ck_assert_str_eq(c->path, "t.conf");
    char *cwd = getcwd(NULL, 0);
    ck_assert_str_eq(d->dir, cwd);
    ck_assert_str_eq(c->dir, cwd);
    free(cwd);
    config_free(d);
    config_free(c);
    config_free(NULL);
}
END_TEST

START_TEST(full_file) {
    struct config *c = ok("# a full file\n"
                          "; semicolon comment\n"
                          "\n"
                          "[server]\n"
                          "listen = 127.0.0.1:9000\n"
                          "  listen=[::1]:9000   # IPv6 too\n"
                          "listen = *:9001\n"
                          "max_connections = 20000\n"
                          "backlog = 511\n"
                          "log_level = debug\n"
                          "header_timeout = 5s\n"
                          "body_timeout = 1.5\n"
                          "keepalive_timeout = 2m\n"
                          "write_timeout = 500ms\n"
                          "shutdown_grace = 0\n"
                          "max_header_bytes = 16k\n"
                          "max_headers = 128\n"
                          "max_uri = 2k\n"
                          "max_body = 10m\n"
                          "[probe]\n"
                          "max_delay = 1h\n"
                          "max_bytes = 1g\n"
                          "max_stream = 0\n"
                          "[tls]\n"
                          "listen = 127.0.0.1:8443\n"
                          "listen = [::1]:8443\n"
                          "cert = /etc/awaitd/cert.pem\n"
                          "key = keys/key.pem\n"
                          "chain = /etc/awaitd/chain.pem\n"
                          "client_ca = /etc/awaitd/ca.pem\n"
                          "[journal]\n"
                          "path = /var/lib/awaitd/journal\n"
                          "fsync = batch\n"
                          "fsync_interval = 20ms\n"
                          "[auth]\n"
                          "token = \"abcdefghijklmnop#qr\" ; quoted keeps '#'\n"
                          "[queue emails]\n"
                          "maxsize = 1000\n"
                          "lease = 45s\n"
                          "max_attempts = 3\n"
                          "max_payload = 64m\n"
                          "[queue a.b-c_D9]\n");
    ck_assert_uint_eq(c->nlisten, 3);
    ck_assert_str_eq(c->listen[0].text, "127.0.0.1:9000");
    ck_assert_str_eq(c->listen[1].text, "[::1]:9000");
    ck_assert_str_eq(c->listen[2].text, "*:9001");
    ck_assert_uint_eq(c->max_connections, 20000);
    ck_assert_uint_eq(c->backlog, 511);
    ck_assert_int_eq(c->log_level, LOG_LVL_DEBUG);
    ck_assert_uint_eq(c->header_timeout_ms, 5000);
    ck_assert_uint_eq(c->body_timeout_ms, 1500);
    ck_assert_uint_eq(c->keepalive_timeout_ms, 120000);
    ck_assert_uint_eq(c->write_timeout_ms, 500);
    ck_assert_uint_eq(c->shutdown_grace_ms, 0);
    ck_assert_uint_eq(c->max_header_bytes, 16384);
    ck_assert_uint_eq(c->max_headers, 128);
    ck_assert_uint_eq(c->max_uri, 2048);
    ck_assert_uint_eq(c->max_body, 10485760);
    ck_assert_uint_eq(c->max_delay_ms, 3600000);
    ck_assert_uint_eq(c->max_bytes, 1073741824ULL);
    ck_assert_uint_eq(c->max_stream, 0);
    ck_assert_uint_eq(c->ntls_listen, 2);
    ck_assert_str_eq(c->tls_listen[1].text, "[::1]:8443");
    ck_assert_str_eq(c->tls_cert, "/etc/awaitd/cert.pem");
    char *k = cwd_join("keys/key.pem");
    ck_assert_str_eq(c->tls_key, k);
    free(k);
    ck_assert_str_eq(c->tls_chain, "/etc/awaitd/chain.pem");
    ck_assert_str_eq(c->tls_client_ca, "/etc/awaitd/ca.pem");
    ck_assert_str_eq(c->journal_path, "/var/lib/awaitd/journal");
    ck_assert_int_eq(c->fsync, FSYNC_BATCH);
    ck_assert_uint_eq(c->fsync_interval_ms, 20);
    ck_assert_str_eq(c->auth_token, "abcdefghijklmnop#qr");
    ck_assert_ptr_null(c->auth_token_file);
    ck_assert_uint_eq(c->nqueues, 2);
    ck_assert_str_eq(c->queues[0].name, "emails");
    ck_assert_uint_eq(c->queues[0].maxsize, 1000);
    ck_assert_uint_eq(c->queues[0].lease_ms, 45000);
    ck_assert_uint_eq(c->queues[0].max_attempts, 3);
    ck_assert_uint_eq(c->queues[0].max_payload, 64 << 20);
    /* an empty [queue NAME] gets the defaults */
    ck_assert_str_eq(c->queues[1].name, "a.b-c_D9");
    ck_assert_uint_eq(c->queues[1].maxsize, 0);
    ck_assert_uint_eq(c->queues[1].lease_ms, 30000);
    ck_assert_uint_eq(c->queues[1].max_attempts, 5);
    ck_assert_uint_eq(c->queues[1].max_payload, 1 << 20);
    config_free(c);
}
END_TEST

START_TEST(syntax_details) {
    /* CRLF, tabs, no final newline, comments glued to values, "off" fsync */
    struct config *c = ok("[journal]\r\n\tfsync\t=\toff\t\r\n[server]\r\n"
                          "log_level = warn\t; a comment\n");
    ck_assert_int_eq(c->fsync, FSYNC_OFF);
    ck_assert_int_eq(c->log_level, LOG_LVL_WARN);
    config_free(c);
    /* ';' or '#' glued to a value is part of it */
    bad("[server]\nlog_level = warn;x\n", "t.conf:2: [server] log_level:", "got 'warn;x'");
    c = ok("[auth]\ntoken = abcdefghijklmnop#q;r\n[server] # comment after a section\n"
           "log_level=error");
    ck_assert_str_eq(c->auth_token, "abcdefghijklmnop#q;r");
    ck_assert_int_eq(c->log_level, LOG_LVL_ERROR);
    config_free(c);
    /* a UTF-8 byte order mark before the first line is skipped */
    c = ok("\xEF\xBB\xBF[server]\nbacklog = 7\n");
    ck_assert_uint_eq(c->backlog, 7);
    config_free(c);
    /* a 4096-character line is fine; 4097 is not */
    char *text = malloc(8300);
    memset(text, ' ', 8300);
    memcpy(text, "[server]\n", 9);
    memcpy(text + 9, "# ", 2);
    text[9 + 4096] = '\n';
    text[9 + 4097] = '\0';
    c = ok(text);
    config_free(c);
    text[9 + 4096] = ' ';
    text[9 + 4097] = '\n';
    text[9 + 4098] = '\0';
    bad(text, "t.conf:2: ", "longer than 4096");
    free(text);
}
END_TEST

START_TEST(error_classes) {
    bad("max_connections = 5\n", "t.conf:1: ", "max_connections", "outside any section");
    bad("# c\nhello\n", "t.conf:2: ", "'hello'", "[section]");
    bad("[server]\n\nmax_connections = lots\n",
        "t.conf:3: [server] max_connections: expected a whole number from 1 to 10000000, "
        "got 'lots'");
    bad("[server]\nmax_connections = 0\n", "t.conf:2: [server] max_connections:", "got '0'");
    bad("[server]\nmax_connections = 10000001\n", "t.conf:2:", "10000000");
    bad("[server]\nmax_connections = -1\n", "t.conf:2:", "got '-1'");
    bad("[server]\nmax_connections = 1k\n", "t.conf:2:", "got '1k'");
    bad("[server]\nbacklog = 65536\n", "t.conf:2: [server] backlog:", "1 to 65535");
    bad("[server]\nmax_headers = 129\n", "[server] max_headers:", "1 to 128");
    bad("[server]\nmax_header_bytes = 255\n", "[server] max_header_bytes:", "256 to 1m",
        "got '255'");
    bad("[server]\nmax_header_bytes = 255\n",
        "t.conf:2: [server] max_header_bytes: expected a size from 256 to 1m (bytes, or with a "
        "k, m or g suffix), got '255'");
    bad("[server]\nheader_timeout = 10x\n",
        "t.conf:2: [server] header_timeout: expected a duration from 1ms to 8760h (a number "
        "with ms, s, m or h; bare means seconds), got '10x'");
    bad("[server]\nmax_header_bytes = 2m\n", "[server] max_header_bytes:", "256 to 1m");
    bad("[server]\nmax_uri = 15\n", "[server] max_uri:", "16 to 1m");
    bad("[server]\nmax_uri = 16k\n", "t.conf:2: [server] max_uri:", "max_header_bytes (8k)");
    bad("[server]\nmax_uri = 2k\nmax_header_bytes = 1k\n",
        "t.conf:2: [server] max_uri:", "larger than max_header_bytes");
    bad("[server]\nheader_timeout = 0\n", "[server] header_timeout:", "from 1ms");
    bad("[server]\nbody_timeout = -1s\n", "[server] body_timeout:", "got '-1s'");
    bad("[server]\nwrite_timeout = nan\n", "[server] write_timeout:", "got 'nan'");
    bad("[server]\nkeepalive_timeout = 99999999999999999999h\n", "[server] keepalive_timeout:");
    bad("[server]\nkeepalive_timeout = 8761h\n", "[server] keepalive_timeout:", "8760h");
    bad("[server]\nlog_level = loud\n",
        "t.conf:2: [server] log_level:", "expected one of error, warn, info, debug", "got 'loud'");
    bad("[journal]\nfsync = sometimes\n", "[journal] fsync:", "one of always, batch, off");
    bad("[journal]\nfsync_interval = 0\n", "[journal] fsync_interval:");
    bad("[server]\nmax_body = 2g\n", "[server] max_body:", "0 to 1g");
    bad("[probe]\nmax_stream = many\n", "t.conf:2: [probe] max_stream:");
    bad("[probe]\nmax_bytes = 1.5m\n", "[probe] max_bytes:", "got '1.5m'");
    bad("[server]\nlisten = localhost:80\n", "t.conf:2: [server] listen:", "got 'localhost:80'");
    bad("[server]\nbogus = 1\n", "t.conf:2: [server] bogus: unknown key", "max_connections");
    bad("[probe]\nlisten = 127.0.0.1:1\n", "t.conf:2: [probe] listen: unknown key");
    bad("[server]\nmax_connections\n", "t.conf:2: [server] 'max_connections'", "key = value");
    bad("[server]\n= 5\n", "t.conf:2:", "missing key");
    bad("[server]\nmax_connections =\n", "t.conf:2: [server] max_connections: empty value");
    bad("[server]\nmax_connections =   # only a comment\n", "t.conf:2:", "empty value");
    bad("[server]\nmax_connections = \"\"\n", "t.conf:2:", "empty value");
    bad("[server]\nlog_level = \"info\n", "t.conf:2: [server] log_level: unterminated quote");
    bad("[server]\nlog_level = \"info\" x\n", "t.conf:2: [server] log_level:", "after the closing");
    bad("[servers]\n", "t.conf:1: [servers]: unknown section");
    bad("[server\n", "t.conf:1:", "expected ']'");
    bad("[server] junk\n", "t.conf:1:", "after ']'");
    bad("[Server]\n", "t.conf:1:", "unknown section");
}
END_TEST

START_TEST(repeats) {
    bad("[server]\n[probe]\n[server]\n", "t.conf:3: [server]: repeated section (first on line 1)");
    bad("[queue a]\n[queue b]\n[queue a]\n", "t.conf:3: [queue a]: repeated section", "line 1");
    bad("[server]\nbacklog = 1\n\nbacklog = 2\n",
        "t.conf:4: [server] backlog: repeated key (first set on line 2)");
    bad("[queue a]\nlease = 1s\nlease = 2s\n", "t.conf:3: [queue a] lease: repeated key");
    bad("[auth]\ntoken = abcdefghijklmnopq\ntoken = abcdefghijklmnopq\n",
        "t.conf:3:", "repeated key");
    /* the same key in two different [queue] sections is fine */
    struct config *c = ok("[queue a]\nlease = 1s\n[queue b]\nlease = 2s\n");
    ck_assert_uint_eq(c->queues[0].lease_ms, 1000);
    ck_assert_uint_eq(c->queues[1].lease_ms, 2000);
    config_free(c);
}
END_TEST

START_TEST(listen_repeat) {
    char text[4096];
    int n = snprintf(text, sizeof text, "[server]\n");
    for (int i = 0; i < CONFIG_MAX_LISTEN; i++)
        n += snprintf(text + n, sizeof text - n, "listen = 127.0.0.1:%d\n", 9000 + i);
    struct config *c = ok(text);
    ck_assert_uint_eq(c->nlisten, CONFIG_MAX_LISTEN);
    ck_assert_str_eq(c->listen[15].text, "127.0.0.1:9015");
    config_free(c);
    snprintf(text + n, sizeof text - n, "listen = 127.0.0.1:1\n");
    bad(text, "t.conf:18: [server] listen: too many");

    bad("[server]\nlisten = 127.0.0.1:80\nlisten = 127.0.0.1:80\n",
        "t.conf:3: [server] listen: 127.0.0.1:80 is already listened on (line 2)");
    bad("[server]\nlisten = [::1]:80\n[tls]\nlisten = [0:0::1]:80\ncert=/c\nkey=/k\n",
        "t.conf:4: [tls] listen:", "line 2");
    /* [tls] listen colliding with the default [server] listen */
    bad("[tls]\nlisten = 127.0.0.1:8080\ncert = /c\nkey = /k\n",
        "t.conf:2: [tls] listen:", "default");
    /* an explicit [server] listen replaces the default */
    c = ok("[server]\nlisten = [::1]:1\n");
    ck_assert_uint_eq(c->nlisten, 1);
    ck_assert_str_eq(c->listen[0].text, "[::1]:1");
    config_free(c);
}
END_TEST

START_TEST(queues) {
    bad("[queue]\n", "t.conf:1:", "[queue NAME]");
    bad("[queue bad!name]\n", "t.conf:1: [queue bad!name]: bad queue name 'bad!name'");
    bad("[queue a b]\n", "t.conf:1:", "bad queue name 'a b'");
    bad("[queue .]\n", "t.conf:1: [queue .]: bad queue name '.'");
    bad("[queue ..]\n", "t.conf:1: [queue ..]: bad queue name '..'");
    bad("[queue "
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n",
        "t.conf:1:", "bad queue name");
    bad("[queue q]\nmax_attempts = 0\n", "t.conf:2: [queue q] max_attempts:", "1 to 65535");
    bad("[queue q]\nmax_attempts = 65536\n", "[queue q] max_attempts:");
    bad("[queue q]\nmax_payload = 0\n", "[queue q] max_payload:", "1 to 64m");
    bad("[queue q]\nmax_payload = 65m\n", "[queue q] max_payload:");
    bad("[queue q]\nlease = 0\n", "[queue q] lease:");
    bad("[queue q]\nmaxsize = -3\n", "t.conf:2: [queue q] maxsize:");
    bad("[queue q]\nmax_connections = 3\n", "t.conf:2: [queue q] max_connections: unknown key",
        "maxsize");
    struct config *c =
        ok("[queue  "
           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa ]\nmaxsize=0\n");
    ck_assert_uint_eq(strlen(c->queues[0].name), 64);
    config_free(c);

    /* CONFIG_MAX_QUEUES and no more */
    size_t cap = (CONFIG_MAX_QUEUES + 1) * 16, n = 0;
    char *text = malloc(cap);
    for (int i = 0; i < CONFIG_MAX_QUEUES; i++)
        n += snprintf(text + n, cap - n, "[queue q%d]\n", i);
    c = ok(text);
    ck_assert_uint_eq(c->nqueues, CONFIG_MAX_QUEUES);
    config_free(c);
    snprintf(text + n, cap - n, "[queue last]\n");
    bad(text, "t.conf:257:", "too many queues");
    free(text);
}
END_TEST

START_TEST(tls_required) {
    bad("[tls]\nlisten = 127.0.0.1:8443\nkey = /k\n", "t.conf:1: [tls] cert: missing");
    bad("[server]\n[tls]\ncert = /c\nlisten = 127.0.0.1:8443\n[journal]\n",
        "t.conf:2: [tls] key: missing");
    /* cert and key without a tls listen are accepted (not used) */
    struct config *c = ok("[tls]\ncert = /c\n");
    ck_assert_str_eq(c->tls_cert, "/c");
    config_free(c);
}
END_TEST

static char tmpdir[] = "/tmp/check_config.XXXXXX";

static char *write_file(const char *name, const char *content) {
    char *p;
    ck_assert_int_ge(asprintf(&p, "%s/%s", tmpdir, name), 0);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(content, f);
    fclose(f);
    return p;
}

START_TEST(auth_tokens) {
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    char *tok = write_file("token", "s3cret-token-0123456789  \r\nsecond line\n");
    char *empty = write_file("empty", "\n");
    char *shortf = write_file("short", "abc\n");
    char *conf, *text;

    /* an absolute token_file */
    ck_assert_int_ge(asprintf(&text, "[auth]\ntoken_file = %s\n", tok), 0);
    struct config *c = ok(text);
    free(text);
    ck_assert_str_eq(c->auth_token, "s3cret-token-0123456789");
    ck_assert_str_eq(c->auth_token_file, tok);
    config_free(c);

    /* a relative token_file, resolved against the config file's directory */
    conf = write_file("a.conf", "[auth]\ntoken_file = token\n");
    ck_assert_int_eq(config_load(conf, &c, err, sizeof err), 0);
    ck_assert_str_eq(c->auth_token, "s3cret-token-0123456789");
    ck_assert_str_eq(c->auth_token_file, tok);
    config_free(c);
    unlink(conf);
    free(conf);

    ck_assert_int_ge(asprintf(&text, "[auth]\ntoken_file = %s\n", empty), 0);
    bad(text, "t.conf:2: [auth] token_file:", empty, "is empty");
    free(text);
    ck_assert_int_ge(asprintf(&text, "[auth]\ntoken_file = %s\n", shortf), 0);
    bad(text, "t.conf:2: [auth] token_file:", "at least 16");
    free(text);
    bad("[auth]\ntoken_file = /nonexistent/awaitd-token\n",
        "t.conf:2: [auth] token_file: cannot read /nonexistent/awaitd-token");
    ck_assert_int_ge(asprintf(&text, "[auth]\ntoken_file = %s\ntoken = abcdefghijklmnopq\n", tok),
                     0);
    bad(text, "t.conf:3: [auth] token:", "both");
    free(text);
    ck_assert_int_ge(asprintf(&text, "[auth]\ntoken = abcdefghijklmnopq\ntoken_file = %s\n", tok),
                     0);
    bad(text, "t.conf:3: [auth] token_file:", "both", "line 2");
    free(text);
    bad("[auth]\ntoken = short\n", "t.conf:2: [auth] token:", "at least 16");
    bad("[auth]\ntoken = \"has a space inside!!\"\n", "t.conf:2: [auth] token:", "without spaces");
    /* the secret is not echoed in messages */
    ck_assert_ptr_null(strstr(err, "has a space"));

    unlink(tok);
    unlink(empty);
    unlink(shortf);
    free(tok);
    free(empty);
    free(shortf);
    rmdir(tmpdir);
}
END_TEST

START_TEST(paths) {
    char dir[] = "/tmp/check_config_paths.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char *sub, *conf;
    ck_assert_int_ge(asprintf(&sub, "%s/etc", dir), 0);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    ck_assert_int_ge(asprintf(&conf, "%s/awaitd.conf", sub), 0);
    FILE *f = fopen(conf, "w");
    fputs("[tls]\ncert = certs/c.pem\nkey = ../k.pem\nchain = /abs/chain.pem\n", f);
    fclose(f);

    /* load through a relative path from the temp dir: stored absolute anyway */
    char *old = getcwd(NULL, 0);
    ck_assert_int_eq(chdir(dir), 0);
    struct config *c;
    ck_assert_msg(config_load("etc/awaitd.conf", &c, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(chdir(old), 0);
    char *want;
    char *real = realpath(sub, NULL);
    ck_assert_str_eq(c->dir, real);
    ck_assert_str_eq(c->path, "etc/awaitd.conf");
    ck_assert_int_ge(asprintf(&want, "%s/certs/c.pem", real), 0);
    ck_assert_str_eq(c->tls_cert, want);
    free(want);
    ck_assert_int_ge(asprintf(&want, "%s/../k.pem", real), 0);
    ck_assert_str_eq(c->tls_key, want);
    free(want);
    ck_assert_str_eq(c->tls_chain, "/abs/chain.pem");
    ck_assert_int_ge(asprintf(&want, "%s/var/awaitd.journal", real), 0);
    ck_assert_str_eq(c->journal_path, want);
    free(want);
    config_free(c);

    /* a directory that does not exist: joined onto the cwd */
    ck_assert_int_eq(
        config_parse_text("no/such/dir/x.conf", "[journal]\npath = j\n", &c, err, sizeof err), 0);
    want = cwd_join("no/such/dir/j");
    ck_assert_str_eq(c->journal_path, want);
    free(want);
    config_free(c);

    /* an absolute config path in "/" */
    ck_assert_int_eq(config_parse_text("/x.conf", "[journal]\npath = j\n", &c, err, sizeof err), 0);
    ck_assert_str_eq(c->journal_path, "/j");
    ck_assert_str_eq(c->dir, "/");
    config_free(c);

    /* config_load errors name the file and say why */
    ck_assert_int_eq(config_load("/nonexistent/awaitd.conf", &c, err, sizeof err), -1);
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/awaitd.conf: cannot open: No such file"));
    ck_assert_int_eq(config_load(dir, &c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "Is a directory"));
    f = fopen(conf, "w");
    fputs("[server]\nbacklog = 0\n", f);
    fclose(f);
    ck_assert_int_eq(config_load(conf, &c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, ":2: [server] backlog:"));
    ck_assert_ptr_nonnull(strstr(err, conf));
    f = fopen(conf, "w");
    fwrite("[server]\n\0\n", 1, 11, f);
    fclose(f);
    ck_assert_int_eq(config_load(conf, &c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "NUL"));

    unlink(conf);
    rmdir(sub);
    rmdir(dir);
    free(conf);
    free(sub);
    free(real);
    free(old);
}
END_TEST

START_TEST(sample_file) {
    /* make check sets AWAITD_SRCDIR; by hand, run from the top or from tests/ */
    const char *src = getenv("AWAITD_SRCDIR");
    char env_path[4096] = "";
    if (src)
        snprintf(env_path, sizeof env_path, "%s/conf/awaitd.conf", src);
    const char *const cands[] = {env_path, "conf/awaitd.conf", "../conf/awaitd.conf"};
    const char *path = NULL;
    for (int i = 0; i < 3 && !path; i++)
        if (cands[i][0] && access(cands[i], R_OK) == 0)
            path = cands[i];
    ck_assert_msg(path != NULL, "conf/awaitd.conf not found (set AWAITD_SRCDIR)");
    struct config *c;
    ck_assert_msg(config_load(path, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(c->nlisten, 2);
    ck_assert_str_eq(c->listen[0].text, "127.0.0.1:8080");
    ck_assert_str_eq(c->listen[1].text, "[::1]:8080");
    ck_assert_uint_eq(c->ntls_listen, 0);
    ck_assert_ptr_null(c->auth_token);
    ck_assert_uint_eq(c->nqueues, 0);
    size_t n = strlen(c->journal_path);
    ck_assert(n > 19 && strcmp(c->journal_path + n - 19, "/var/awaitd.journal") == 0);
    ck_assert(c->journal_path[0] == '/');
    /* the sample states the defaults: it must equal config_defaults() otherwise */
    struct config *d = config_defaults();
    ck_assert_uint_eq(c->max_connections, d->max_connections);
    ck_assert_uint_eq(c->backlog, d->backlog);
    ck_assert_int_eq(c->log_level, d->log_level);
    ck_assert_uint_eq(c->header_timeout_ms, d->header_timeout_ms);
    ck_assert_uint_eq(c->body_timeout_ms, d->body_timeout_ms);
    ck_assert_uint_eq(c->keepalive_timeout_ms, d->keepalive_timeout_ms);
    ck_assert_uint_eq(c->write_timeout_ms, d->write_timeout_ms);
    ck_assert_uint_eq(c->shutdown_grace_ms, d->shutdown_grace_ms);
    ck_assert_uint_eq(c->max_header_bytes, d->max_header_bytes);
    ck_assert_uint_eq(c->max_headers, d->max_headers);
    ck_assert_uint_eq(c->max_uri, d->max_uri);
    ck_assert_uint_eq(c->max_body, d->max_body);
    ck_assert_uint_eq(c->max_delay_ms, d->max_delay_ms);
    ck_assert_uint_eq(c->max_bytes, d->max_bytes);
    ck_assert_uint_eq(c->max_stream, d->max_stream);
    ck_assert_int_eq(c->fsync, d->fsync);
    ck_assert_uint_eq(c->fsync_interval_ms, d->fsync_interval_ms);
    config_free(d);
    config_free(c);
}
END_TEST

/* The commented-out optional sections of the sample must load when uncommented. */
START_TEST(sample_optional_sections) {
    struct config *c = ok("[tls]\nlisten = 127.0.0.1:8443\ncert = /etc/awaitd/cert.pem\n"
                          "key = /etc/awaitd/key.pem\nchain = /etc/awaitd/chain.pem\n"
                          "client_ca = /etc/awaitd/client-ca.pem\n"
                          "[auth]\ntoken = change-me-to-a-long-random-string\n"
                          "[queue emails]\nmaxsize = 1000\nlease = 30s\nmax_attempts = 5\n"
                          "max_payload = 1m\n");
    config_free(c);
    c = ok("[store]\nbackend = local\n[redis]\nnodes = 127.0.0.1:6379\nuser = awaitd\n"
           "prefix = awaitd:\nconnect_timeout = 2s\ncommand_timeout = 5s\nreplicas_ack = 0\n");
    config_free(c);
}
END_TEST

START_TEST(max_uri_follows_header_bytes) {
    struct config *c = ok("[server]\nmax_header_bytes = 1k\n");
    ck_assert_uint_eq(c->max_uri, 1024); /* default 4k would exceed it */
    config_free(c);
    c = ok("[server]\nmax_header_bytes = 1k\nmax_uri = 1k\n");
    ck_assert_uint_eq(c->max_uri, 1024);
    config_free(c);
}
END_TEST

/* Issue 12, findings 2 and 5: [timers] max_timers, [metrics] per_queue and public. */
START_TEST(timers_and_metrics) {
    struct config *c = ok("");
    ck_assert_uint_eq(c->timers_max, 1000000);
    ck_assert_uint_eq(c->metrics_per_queue, 100);
    ck_assert_int_eq(c->metrics_public, 0);
    config_free(c);
    c = ok("[timers]\nmax_timers = 0\n[metrics]\nper_queue = on\npublic = on\n");
    ck_assert_uint_eq(c->timers_max, 0);
    ck_assert_uint_eq(c->metrics_per_queue, CONFIG_PER_QUEUE_ALL);
    ck_assert_int_eq(c->metrics_public, 1);
    config_free(c);
    c = ok("[metrics]\nper_queue = off\n");
    ck_assert_uint_eq(c->metrics_per_queue, 0);
    config_free(c);
    c = ok("[metrics]\nper_queue = top  25   # the largest\n");
    ck_assert_uint_eq(c->metrics_per_queue, 25);
    config_free(c);
    c = ok("[metrics]\nper_queue = top 1000000\n");
    ck_assert_uint_eq(c->metrics_per_queue, 1000000);
    config_free(c);
    bad("[timers]\nmax_timers = 2.5\n", "t.conf:2:", "[timers] max_timers", "2.5");
    bad("[timers]\nmax_timers = -1\n", "[timers] max_timers");
    bad("[timers]\nmax_timerz = 5\n", "max_timerz", "max_timers");
    bad("[metrics]\nper_queue = top\n", "t.conf:2:", "[metrics] per_queue", "top N");
    bad("[metrics]\nper_queue = top 0\n", "[metrics] per_queue", "'top 0'");
    bad("[metrics]\nper_queue = top 1000001\n", "[metrics] per_queue");
    bad("[metrics]\nper_queue = top 2.5\n", "[metrics] per_queue");
    bad("[metrics]\nper_queue = top5\n", "[metrics] per_queue");
    bad("[metrics]\nper_queue = 10\n", "[metrics] per_queue", "on, off or top N");
    bad("[metrics]\npublic = yes\n", "[metrics] public", "off, on");
    bad("[metrics]\npublic = on\n[metrics]\n", "t.conf:3:", "repeated section");
}
END_TEST

/* Issue 17: [console] enabled, on by default. */
START_TEST(console_section) {
    struct config *c = ok("");
    ck_assert_int_eq(c->console_enabled, 1);
    config_free(c);
    c = ok("[console]\nenabled = off\n");
    ck_assert_int_eq(c->console_enabled, 0);
    config_free(c);
    bad("[console]\nenabled = maybe\n", "t.conf:2:", "[console] enabled", "off, on");
    bad("[console]\nport = 1\n", "t.conf:2:", "port");
    bad("[consol]\n", "[consol]", "[console]");
}
END_TEST

START_TEST(small_err_buffer) {
    struct config *c;
    char small[12];
    ck_assert_int_eq(config_parse_text("t.conf", "[x]\n", &c, small, sizeof small), -1);
    ck_assert_str_eq(small, "t.conf:1: [");
    ck_assert_int_eq(config_parse_text("t.conf", "[x]\n", &c, NULL, 0), -1);
    ck_assert_int_eq(config_parse_text(NULL, "[x]\n", &c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, ":1: [x]"));
}
END_TEST

START_TEST(redis_section) {
    /* local stays the default; [redis] is not checked then. */
    struct config *c = ok("[redis]\nnodes = nonsense\n");
    ck_assert_int_eq(c->store_backend, STORE_BACKEND_LOCAL);
    config_free(c);
    c = ok("[store]\nbackend = redis\n");
    ck_assert_int_eq(c->store_backend, STORE_BACKEND_REDIS);
    ck_assert_uint_eq(c->nredis_nodes, 1);
    ck_assert_str_eq(c->redis_nodes[0].host, "127.0.0.1");
    ck_assert_int_eq(c->redis_nodes[0].port, 6379);
    ck_assert_str_eq(c->redis_prefix, "awaitd:");
    ck_assert_uint_eq(c->redis_connect_timeout_ms, 2000);
    ck_assert_uint_eq(c->redis_command_timeout_ms, 5000);
    ck_assert_uint_eq(c->redis_replicas_ack, 0);
    ck_assert_ptr_null(c->redis_password);
    config_free(c);
    c = ok("[store]\nbackend = redis\n[redis]\n"
           "nodes = 10.0.0.1:7000, redis.internal:7001,[::1]:7002\n"
           "user = app\npassword = s3cret\nprefix = prod:\nconnect_timeout = 500ms\n"
           "command_timeout = 1s\nreplicas_ack = 1\n");
    ck_assert_uint_eq(c->nredis_nodes, 3);
    ck_assert_str_eq(c->redis_nodes[1].host, "redis.internal");
    ck_assert_int_eq(c->redis_nodes[1].port, 7001);
    ck_assert_str_eq(c->redis_nodes[2].host, "::1");
    ck_assert_int_eq(c->redis_nodes[2].port, 7002);
    ck_assert_str_eq(c->redis_user, "app");
    ck_assert_str_eq(c->redis_password, "s3cret");
    ck_assert_str_eq(c->redis_prefix, "prod:");
    ck_assert_uint_eq(c->redis_connect_timeout_ms, 500);
    ck_assert_uint_eq(c->redis_command_timeout_ms, 1000);
    ck_assert_uint_eq(c->redis_replicas_ack, 1);
    config_free(c);

    bad("[store]\nbackend = memcached\n", "t.conf:2:", "[store] backend", "local, redis");
    bad("[store]\nbackend = redis\n[redis]\nnodes = localhost\n", "t.conf:4:", "[redis] nodes",
        "HOST:PORT", "'localhost'");
    bad("[store]\nbackend = redis\n[redis]\nnodes = a:1, b:99999\n", "[redis] nodes", "'b:99999'");
    bad("[store]\nbackend = redis\n[redis]\nnodes = ,\n", "[redis] nodes", "at least one");
    bad("[store]\nbackend = redis\n[redis]\nprefix = a{b}\n", "t.conf:4:", "[redis] prefix",
        "hash tag");
    bad("[redis]\nreplicas_ack = 17\n", "[redis] replicas_ack", "0 to 16");
    bad("[redis]\ncommand_timeout = 0\n", "[redis] command_timeout");
    bad("[store]\nbackend = redis\n[redis]\npassword = x\npassword_file = /nonexistent\n",
        "t.conf:5:", "password and password_file");
    bad("[store]\nbackend = redis\n[redis]\npassword_file = /nonexistent/pw\n",
        "[redis] password_file", "cannot read /nonexistent/pw");

    char path[] = "/tmp/awaitd-redis-pw-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "from-file\n", 10), 10);
    close(fd);
    char text[256];
    snprintf(text, sizeof text, "[store]\nbackend = redis\n[redis]\npassword_file = %s\n", path);
    c = ok(text);
    ck_assert_str_eq(c->redis_password, "from-file");
    config_free(c);
    unlink(path);
}
END_TEST

static Suite *config_suite(void) {
    Suite *s = suite_create("config");
    TCase *t = tcase_create("values");
    tcase_add_test(t, sizes);
    tcase_add_test(t, durations);
    tcase_add_test(t, listen_values);
    suite_add_tcase(s, t);
    t = tcase_create("files");
    tcase_add_test(t, defaults);
    tcase_add_test(t, full_file);
    tcase_add_test(t, syntax_details);
    tcase_add_test(t, error_classes);
    tcase_add_test(t, repeats);
    tcase_add_test(t, listen_repeat);
    tcase_add_test(t, queues);
    tcase_add_test(t, tls_required);
    tcase_add_test(t, auth_tokens);
    tcase_add_test(t, paths);
    tcase_add_test(t, sample_file);
    tcase_add_test(t, sample_optional_sections);
    tcase_add_test(t, max_uri_follows_header_bytes);
    tcase_add_test(t, small_err_buffer);
    tcase_add_test(t, timers_and_metrics);
    tcase_add_test(t, redis_section);
    tcase_add_test(t, console_section);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    return check_run(config_suite());
}
