/*
 * libFuzzer target for the config file (core/config.c, config_parse_text,
 * the parser config_load uses after reading the file). Beyond "no crash,
 * no leak, no UB", a config that parses keeps the promises config.h
 * makes (a listen address, max_uri within max_header_bytes, the loopback
 * reserve below max_connections, an absolute journal path, valid queue
 * names), and an error is one line naming the file and a line number.
 * The value parsers (size, duration, listen) also get the input whole.
 *
 * token_file reads a file: the harness runs in a temporary directory
 * holding a good, a short and an empty token file, and skips inputs that
 * could name any other file (a '/' or ".." after token_file).
 */
#include "fuzz.h"

#include "core/config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);

static char tmpdir[] = "/tmp/awaitd-fuzz-config-XXXXXX";

static void remove_tmpdir(void) {
    static const char *const files[] = {"tok", "short", "empty"};
    for (size_t i = 0; i < 3; i++) {
        char path[sizeof tmpdir + 8];
        snprintf(path, sizeof path, "%s/%s", tmpdir, files[i]);
        unlink(path);
    }
    rmdir(tmpdir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    char *dir = mkdtemp(tmpdir);
    CHECK(dir && chdir(dir) == 0);
    atexit(remove_tmpdir);
    FILE *f = fopen("tok", "w");
    CHECK(f);
    fputs("0123456789abcdef0123456789abcdef\n", f);
    fclose(f);
    f = fopen("short", "w");
    CHECK(f);
    fputs("abc\n", f);
    fclose(f);
    f = fopen("empty", "w");
    CHECK(f);
    fclose(f);
    return 0;
}

static int names_other_file(const char *s) {
    const char *t = strstr(s, "token_file");
    if (!t)
        return 0;
    return strchr(t, '/') != NULL || strstr(t, "..") != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    CHECK(text);
    memcpy(text, data, size);
    text[size] = '\0'; /* config_load refuses a NUL byte; stop at the first */
    if (names_other_file(text)) {
        free(text);
        return 0;
    }
    struct config *c = (struct config *)1;
    char err[512];
    int rc = config_parse_text("fuzz.conf", text, &c, err, sizeof err);
    if (rc == 0) {
        CHECK(c != NULL);
        CHECK(c->nlisten >= 1 && c->nlisten <= CONFIG_MAX_LISTEN);
        CHECK(c->ntls_listen <= CONFIG_MAX_LISTEN);
        CHECK(c->ntls_listen == 0 || (c->tls_cert && c->tls_key));
        CHECK(c->max_uri <= c->max_header_bytes);
        CHECK(c->loopback_reserve < c->max_connections);
        CHECK(c->max_headers >= 1 && c->max_headers <= 128);
        CHECK(c->journal_path && c->journal_path[0] == '/');
        CHECK(c->nqueues <= CONFIG_MAX_QUEUES);
        for (size_t i = 0; i < c->nqueues; i++) {
            const char *n = c->queues[i].name;
            size_t l = strlen(n);
            CHECK(l >= 1 && l <= 64 && strcmp(n, ".") && strcmp(n, ".."));
            CHECK(strspn(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == l);
            for (size_t j = 0; j < i; j++)
                CHECK(strcmp(n, c->queues[j].name) != 0);
            CHECK(c->queues[i].max_attempts >= 1 && c->queues[i].max_payload >= 1);
        }
        if (c->auth_token)
            CHECK(strlen(c->auth_token) >= 16);
        config_free(c);
    } else {
        CHECK(rc == -1 && c == NULL);
        CHECK(strncmp(err, "fuzz.conf:", 10) == 0 && strchr(err, '\n') == NULL);
    }

    /* The value parsers, on the whole text. */
    uint64_t v;
    struct config_listen l;
    if (config_parse_size(text, &v) == 0)
        CHECK(text[0] >= '0' && text[0] <= '9');
    if (config_parse_duration_ms(text, &v) == 0)
        CHECK(text[0] >= '0' && text[0] <= '9');
    if (config_parse_listen(text, &l) == 0)
        CHECK(l.addrlen > 0 && strcmp(l.text, text) == 0);
    free(text);
    return 0;
}
