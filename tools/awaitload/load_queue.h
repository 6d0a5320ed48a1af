/*
 * load_queue: the "queue" scenario, load on awaitd's work queues
 * (docs/QUEUES.md). The queue is created first (PUT /queues/NAME), then
 * every connection loops, keep-alive and closed loop:
 *
 *   cycle     put (POST /queues/NAME/jobs) -> reserve (POST .../reserve?wait=1)
 *             -> ack (POST .../jobs/ID/ack) of the job it got; a put refused
 *             (503, queue full) is repeated after 10 ms;
 *   producer  put only, with wait= (blocks while the queue is full);
 *   consumer  reserve (wait=1), then ack what it got.
 *
 * With --batch N a put carries N jobs (the framed batch form), a reserve
 * asks for up to N (count=N, at most 100) and the acks of a reserve go out
 * together, pipelined. A cycle then moves N jobs: its put, as many reserves
 * as it takes to get N jobs back, and N acks.
 *
 * Counted: cycles (a whole connection loop: put -> reserve -> ack, or a
 * producer's put, or a consumer's reserve and its acks), jobs put and acked,
 * and the latency of cycles and of each step. -n bounds the cycles (in a
 * split run, the producers' puts; the consumers then stop once every job
 * put is acked). After -d, no new cycle starts and the ones under way get
 * up to 2 s to finish, so a combined run leaves no job behind.
 *
 * The scenario is a load_driver (load_worker.h): load_conn.c connects,
 * sends, reads and frames for it; this file says what each step sends
 * (an ack names its job; the acks of a batch go out pipelined) and what
 * each whole answer means (a reserve's body holds the job ids).
 */
#ifndef AWAITD_LOAD_QUEUE_H
#define AWAITD_LOAD_QUEUE_H

#include "load_opts.h"
#include "load_url.h"

#include <stddef.h>

/* The queue name in a request target "/queues/NAME" (no further path, no
 * query): copied to name (size n). Returns 0, or -1 if target is not that. */
int load_queue_name(const char *target, char *name, size_t n);

/* Runs the scenario and returns the exit status: 0, 1 after a one-line
 * error on stderr (the queue could not be created, the run gave up on
 * errors or completed nothing), 2 for a URL that names no queue. */
int load_queue_run(const struct load_opts *o, const struct load_url *u, const struct load_addr *a);

#endif
