/*
 * records: every journal record type in one place. A record's type byte
 * says which service replays it; ranges must never overlap, or a replay
 * would hand one service's record to another. The asserts below keep
 * that true at compile time.
 *
 *   0x01..0x0B  queue engine events (QUEUE_EV_* + 1)        queue_journal.c
 *               (0x0B, RESULT: a kept job result, issue 17)
 *   0x20..0x25  timer task events (TASK_EV_* + 0x20)         task_journal.c
 *   0x40        the queue engine's next job id (snapshot)    svc (queues)
 *   0x41        the task engine's next task id (snapshot)    svc (timers)
 *   0xF0..0xFF  reserved by the journal format itself        journal.h
 */
#ifndef AWAITD_RECORDS_H
#define AWAITD_RECORDS_H

#include "engine/queue.h"
#include "engine/task.h"
#include "journal/journal.h"

#define REC_QUEUE_FIRST 0x01
#define REC_QUEUE_LAST (REC_QUEUE_FIRST + QUEUE_EV_RESULT)
#define REC_TASK_FIRST 0x20
#define REC_TASK_LAST (REC_TASK_FIRST + TASK_EV_REMOVE)
#define REC_QUEUE_NEXT_ID 0x40
#define REC_TASK_NEXT_ID 0x41

_Static_assert(REC_QUEUE_FIRST > 0, "type 0 never parses as a record");
_Static_assert(REC_QUEUE_LAST < REC_TASK_FIRST, "queue and task records overlap");
_Static_assert(REC_TASK_LAST < REC_QUEUE_NEXT_ID, "task records reach the next-id records");
_Static_assert(REC_QUEUE_NEXT_ID != REC_TASK_NEXT_ID, "next-id records share a type");
_Static_assert(REC_TASK_NEXT_ID < JOURNAL_TYPE_RESERVED, "a service record in the reserved range");

#endif
