/*
 * config_dump (awaitd -T): the printed configuration parses back to the
 * same values, every key of the table is printed (as a value or as a
 * commented-out unset key), and printing is a fixpoint.
 */
#include "check_main.h"
#include "core/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dump(const struct config *c) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    config_dump(c, f);
    ck_assert_int_eq(fclose(f), 0);
    return text;
}

static struct config *parse(const char *text) {
    struct config *c;
    char err[512];
    int rc = config_parse_text("/etc/awaitd/test.conf", text, &c, err, sizeof err);
    if (rc != 0)
        ck_abort_msg("parse failed: %s\n--- text:\n%s", err, text);
    return c;
}

/* Every number and enum of the table is equal in a and b. */
static void same_values(const struct config *a, const struct config *b) {
    struct config_key_info k;
    ck_assert_uint_eq(a->nqueues, b->nqueues);
    ck_assert_uint_eq(a->nlisten, b->nlisten);
    ck_assert_uint_eq(a->ntls_listen, b->ntls_listen);
    for (size_t i = 0; config_key_info(i, &k) == 0; i++) {
        size_t n = k.per_queue ? a->nqueues : 1;
        for (size_t q = 0; q < n; q++) {
            const char *pa = k.per_queue ? (const char *)&a->queues[q] : (const char *)a;
            const char *pb = k.per_queue ? (const char *)&b->queues[q] : (const char *)b;
            if (k.kind <= CONFIG_KIND_DURATION)
                ck_assert_msg(*(const uint64_t *)(pa + k.off) == *(const uint64_t *)(pb + k.off),
                              "[%s] %s differs", k.section, k.name);
            else if (k.kind == CONFIG_KIND_ENUM)
                ck_assert_msg(*(const int *)(pa + k.off) == *(const int *)(pb + k.off),
                              "[%s] %s differs", k.section, k.name);
            else if (k.kind == CONFIG_KIND_PATH || k.kind == CONFIG_KIND_STRING) {
                const char *sa = *(char *const *)(pa + k.off), *sb = *(char *const *)(pb + k.off);
                ck_assert_msg((!sa && !sb) || (sa && sb && strcmp(sa, sb) == 0),
                              "[%s] %s differs", k.section, k.name);
            }
        }
    }
}

static const char *const texts[] = {
    "",
    "[server]\nlisten = 127.0.0.1:9000\nlisten = [::1]:9000\nmax_body = 3m\n"
    "keepalive_timeout = 1.5\nheader_timeout = 90m\nlog_level = debug\nshutdown_grace = 0\n"
    "[probe]\nmax_delay = 2h\nmax_bytes = 1000\n"
    "[journal]\npath = \"/tmp/a #b/j\"\nfsync = off\nfsync_interval = 7ms\n"
    "[auth]\ntoken = 0123456789abcdefXYZ\nclient_subject = CN=x;O=y\n"
    "[queues]\nmem_limit = 0\nkey_window = 1s\n"
    "[queue a]\nlease = 1ms\nmax_attempts = 1000\n[queue b.c-d_e]\nmaxsize = 7\n",
};

START_TEST(test_round_trip) {
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        struct config *a = parse(texts[t]);
        char *d1 = dump(a);
        struct config *b = parse(d1);
        same_values(a, b);
        char *d2 = dump(b);
        /* The same text but for the file name in the first comment line. */
        ck_assert_str_eq(strchr(d1, '\n'), strchr(d2, '\n'));
        free(d1);
        free(d2);
        config_free(a);
        config_free(b);
    }
}
END_TEST

START_TEST(test_every_key_printed) {
    struct config *c = parse("");
    char *d = dump(c);
    struct config_key_info k;
    for (size_t i = 0; config_key_info(i, &k) == 0; i++) {
        if (k.per_queue)
            continue;
        char sec[64], line[128], unset[128];
        snprintf(sec, sizeof sec, "\n[%s]\n", k.section);
        const char *s = strstr(d, sec);
        ck_assert_msg(s != NULL, "[%s] not printed", k.section);
        const char *end = strstr(s + 1, "\n[");
        snprintf(line, sizeof line, "\n%s = ", k.name);
        snprintf(unset, sizeof unset, "\n# %s = ", k.name);
        const char *at = strstr(s, line), *at2 = strstr(s, unset);
        ck_assert_msg((at && (!end || at < end)) || (at2 && (!end || at2 < end)),
                      "[%s] %s not printed", k.section, k.name);
    }
    ck_assert_ptr_nonnull(strstr(d, "\nmax_connections = 10000\n"));
    ck_assert_ptr_nonnull(strstr(d, "\nmax_body = 1m\n"));
    ck_assert_ptr_nonnull(strstr(d, "\nkeepalive_timeout = 75s\n"));
    ck_assert_ptr_nonnull(strstr(d, "\nfsync_interval = 50ms\n"));
    ck_assert_ptr_nonnull(strstr(d, "\n# cert =  (not set)\n"));
    free(d);
    config_free(c);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("config_dump");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_every_key_printed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return check_run(suite());
}
