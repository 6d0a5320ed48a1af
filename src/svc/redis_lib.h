/*
 * redis_lib: a Redis Functions library on every master of a redis_conn
 * (one for a standalone server, each master of a cluster): asks each for
 * the library's version (FCALL awaitd_version) and, when one has another
 * version or none, loads it on every master (FUNCTION LOAD REPLACE).
 * Call it from the redis_conn on_up hook: on_up runs again for a new
 * master (a failover) or after a reconnection, which makes a round still
 * in flight moot (its done never runs).
 */
#ifndef AWAITD_REDIS_LIB_H
#define AWAITD_REDIS_LIB_H

struct redis_conn;

/* The round's end: err NULL when every master has the library (loaded: 1 when this round
 * loaded it somewhere), or why FUNCTION LOAD was refused. Not run when a connection went
 * meanwhile (its return runs on_up, and so a new round). */
typedef void (*redis_lib_done_fn)(void *arg, int loaded, const char *err);

/* Start a round for text (the library, with version in it). 0, or -1 (not sent: the caller
 * says redis_conn_fail). text must last until done runs (or the next round starts). */
int redis_lib_ensure(struct redis_conn *rc, const char *version, const char *text,
                     redis_lib_done_fn done, void *arg);

#endif
