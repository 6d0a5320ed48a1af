/*
 * load_seed: the "seed" scenario, the article's demonstration. The same
 * /delay/D requests are fetched one after another (the time is the sum of
 * the delays) and then all at once (the time is the longest delay), and
 * both times are printed: waiting need not cost a thread.
 */
#ifndef AWAITD_LOAD_SEED_H
#define AWAITD_LOAD_SEED_H

#include "load_opts.h"
#include "load_url.h"

/* Runs the scenario and returns the exit status (0, or 1 after a one-line
 * error on stderr). */
int load_seed_run(const struct load_opts *o, const struct load_url *u, const struct load_addr *a);

#endif
