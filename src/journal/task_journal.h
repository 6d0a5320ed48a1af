/*
 * task_journal: timer-task events <-> journal records (pure), beside
 * queue_journal.h. Record type = 0x20 + event type. Times are stored as
 * unix ms (wheel ms + wall_minus_wheel) and come back as wheel ms of the
 * new boot (possibly negative: the past).
 *
 * Payload, little-endian: u64 id, i64 now, i64 tick, u32 fires, u32 skips,
 * i32 last_error; CREATE adds u8 kind, u64 every_ms, the cron masks (u64
 * minutes, u32 hours, u32 mdays, u16 months, u8 wdays, u8 flags), u32
 * count, u32 jitter_ms, u8 full policy, u8 missed policy, u32 action
 * length, action.
 */
#ifndef AWAITD_TASK_JOURNAL_H
#define AWAITD_TASK_JOURNAL_H

#include "engine/task.h"
#include "journal/journal.h"
#include "journal/records.h"

#include <stddef.h>
#include <stdint.h>

struct buf;

/* Record types: journal/records.h. */
#define TJ_TYPE_BASE REC_TASK_FIRST
#define TJ_TYPE_LAST REC_TASK_LAST
#define TJ_TYPE_NEXT_ID REC_TASK_NEXT_ID

/* A CREATE record's bytes besides the action; the longest action that
 * still fits one journal record. */
#define TJ_CREATE_OVERHEAD 79u
#define TJ_ACTION_MAX (JOURNAL_RECORD_MAX - TJ_CREATE_OVERHEAD)

/* Append ev as one record. 0, or -1 (ENOMEM, or an action over TJ_ACTION_MAX). */
int tj_encode(struct buf *out, const struct task_event *ev, int64_t wall_minus_wheel);

/* Decode a record into ev (and spec, which ev->spec points to for CREATE);
 * pointers point into payload. 0, or -1 when malformed or not a task record. */
int tj_decode(uint8_t type, const char *payload, size_t len, int64_t wall_minus_wheel,
              struct task_event *ev, struct task_spec *spec);

#endif
