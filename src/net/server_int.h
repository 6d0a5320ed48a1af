/*
 * server_int: what server.c needs of server_listen.c, private to the two
 * (the public contract is net/server.h). struct listener stays inside
 * server_listen.c; server.c holds only the list's head (s->listeners).
 */
#ifndef AWAITD_SERVER_INT_H
#define AWAITD_SERVER_INT_H

#include "net/server.h"

struct config;
struct config_listen;
struct listener;
struct timer;

/* Once per process, before any worker starts: the canned refusals. */
void listeners_init_once(void);

/* Bind and listen on a (a [tls] line if tls), watched from then on unless
 * draining. NULL on failure (logged). */
struct listener *listener_open(struct server *s, const struct config_listen *a, int tls);

/* Take the listening sockets systemd passed: how many (0: none), or -1. */
int listeners_inherit(struct server *s);

/* A worker's own copies of the owner's socket-activated listeners: how
 * many, or -1. */
int listeners_share(struct server *s, const struct server *owner);

/* Close every listener (shutdown, server_free). */
void listeners_close(struct server *s);

/* A reload's listen lines: bind the new addresses (all or none: -1, the
 * running set unchanged), then close the ones cfg no longer lists. 0. */
int listeners_apply(struct server *s, const struct config *cfg);

/* Does cfg (with the sockets systemd passed, which override its listen
 * lines) need a TLS context? */
int listeners_tls_needed(const struct server *s, const struct config *cfg);

/* The accept_resume timer's callback: listen again after the EMFILE pause. */
void listeners_on_resume(struct timer *t);

#endif
