/*
 * event.h - events: markers a stream records, that other streams, the host
 * and other processes wait on (chapter 07).
 *
 * Concepts: a record captures the work queued on its stream so far: it is a
 * task, and when the stream's worker reaches it everything before it has run.
 * Records are numbered per event (`gen`, taken when the record is queued);
 * `done` is the highest record whose task ran, with the device clock at that
 * moment (the timestamp).  A wait captures the latest record at the time it is
 * queued and blocks its stream until that record ran (a condition variable
 * wakes it; no polling); an event never recorded does not block.  Reset
 * forgets the records and clears the event's flag (`set`, raised by every
 * record that runs): a wait whose record a reset forgot, or that was queued
 * after a reset of a recorded event, waits for the next record to run, as hardware waits on the
 * flag.  A device has DEV_EVENT_MAX (65536) events, shared by
 * every process; an Event holds one from creation, from its first record or
 * never (EventResource).  Reference counted like notifies.  Thread-safe.
 */
#ifndef DEVMODEL_EVENT_H
#define DEVMODEL_EVENT_H

#include <stdbool.h>
#include <stdint.h>

#include "device.h"

typedef struct Event Event;

/* When an event takes one of its device's DEV_EVENT_MAX events (its id): at
 * creation, at its first record (a record then may have to wait for one,
 * as the reference says), or only if its id is asked for. */
typedef enum EventResource {
    EVENT_RES_NOW,
    EVENT_RES_AT_RECORD,
    EVENT_RES_NONE,
} EventResource;

#define EVENT_NO_ID UINT32_MAX

/* NULL: EVENT_RES_NOW and the device has no event left. */
Event *event_new(Device *d, EventResource res);
Event *event_ref(Event *e);
void event_unref(Event *e);
/* Its device event, or EVENT_NO_ID while it holds none. */
uint32_t event_id(Event *e);
/* Takes a device event if the event needs one and holds none: for a record
 * (only EVENT_RES_AT_RECORD events) or for its id (any event).
 * ACL_ERROR_RT_NO_EVENT_RESOURCE when none is free. */
int event_acquire(Event *e, bool for_record);
Device *event_device(const Event *e);

/* A record is queued: its number. */
uint64_t event_record_queued(Event *e);
/* Record `gen` ran at device time ts_us. */
void event_record_ran(Event *e, uint64_t gen, uint64_t ts_us);
/* Record `gen` was numbered but never queued (the stream was full, or a
 * failure stopped it): as if it had not been numbered. */
void event_record_dropped(Event *e, uint64_t gen);
/* The record a wait queued now must wait for (0: none). */
uint64_t event_latest(Event *e);
/* Waits until record `gen` ran: ACL_SUCCESS, ACL_ERROR_RT_WAIT_TIMEOUT after
 * timeout_ns (0: forever), -1 once *cancel is nonzero (checked every 50 ms). */
int event_wait(Event *e, uint64_t gen, uint64_t timeout_ns, const int *cancel);
void event_reset(Event *e);
/* Whether record `gen` ran (or was dropped, or reset away). */
bool event_record_done(Event *e, uint64_t gen);
/* Records queued and ran, and the timestamp of the last one that ran. */
void event_status(Event *e, uint64_t *queued, uint64_t *ran, uint64_t *ts_us);
/* Device events held: the ones aclrtGetEventAvailNum does not count. */
unsigned event_count(Device *d);

#endif
