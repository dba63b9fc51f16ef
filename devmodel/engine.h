/*
 * engine.h - a device's stream engine.
 *
 * Concepts: a stream is an in-order queue of tasks served by its own worker
 * thread, so tasks of one stream run in order and streams run concurrently, with
 * no host call needed for progress.  After every task the engine publishes the
 * task's sequence number in the stream's EmuStreamState (in the owner's channel)
 * and wakes waiters; a failed task records its error there (first one wins) and
 * the stream goes on with the next task (continue-on-failure, the default mode).
 * Addresses are turned into host pointers at execution time by the owner's
 * resolve callback (the owner's page table of the stream's device), piece by
 * piece as they are contiguous in one memory object, and each piece pins its
 * memory object while it is copied.
 * All functions are thread-safe; a stream is used by one session at a time.
 */
#ifndef DEVMODEL_ENGINE_H
#define DEVMODEL_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "memobj.h"
#include "npuemu/proto.h"

/* Rights an access needs (the PT_* values of pagetable.h). */
#define ENGINE_READ  1u
#define ENGINE_WRITE 2u

/* Host pointer for addr on behalf of the stream's owner, as device `device`
 * sees it, with the rights in `access`; on entry *len is the bytes wanted, on
 * return the bytes (at least one) that follow contiguously in one memory object
 * of which *ref receives a reference to drop after use.  NULL when addr is not
 * accessible. */
typedef uint8_t *(*EngineResolve)(void *opaque, int device, uint64_t addr, uint64_t *len,
                                  uint32_t access, MemObj **ref);

typedef struct EngineStream EngineStream;
/* The streams of one client context in stop-on-failure mode. */
typedef struct EngineGroup EngineGroup;

/* Starts a stream of device `device` publishing its progress into *state;
 * host-callback tasks bump *doorbell (may be NULL: they then complete at once). */
EngineStream *engine_stream_new(int device, EmuStreamState *state, uint32_t *doorbell,
                                EngineResolve resolve, void *opaque);
/* Stop on failure (aclrtSetStreamFailureMode): after a failed task the
 * stream drops what is queued, sets state->stopped and takes no new task.
 * In stop mode a stream joins `g` (may be NULL): the first failure of any
 * member stops every member, interrupting a task that waits; a stream that
 * joins a failed group is stopped at once.  Membership is changed by one
 * thread only (the session's); a group is freed after its streams. */
EngineGroup *engine_group_new(void);
/* Drops the creator's reference; a worker spreading a failure holds its own. */
void engine_group_unref(EngineGroup *g);
bool engine_group_empty(EngineGroup *g);
void engine_stream_set_stop_on_failure(EngineStream *s, bool stop, EngineGroup *g);
/* The error that stopped the stream (its own failure or its group's), or 0. */
int engine_stream_stopped(EngineStream *s);
/* aclrtStreamAbort: drops the queued tasks (their numbers are published, with
 * ACL_ERROR_RT_STREAM_ABORT as the stream's error) and interrupts a task that
 * waits; later tasks run normally.  aclrtStreamStop: interrupts only the task
 * running now, if it waits (it fails with ACL_ERROR_RT_STREAM_ABORT). */
void engine_stream_abort(EngineStream *s);
void engine_stream_stop(EngineStream *s);
/* Tasks a stream holds at most, like a hardware submission queue. */
#define ENGINE_QUEUE_DEPTH 4096

/* Sequence number of the last task queued. */
uint32_t engine_stream_last(EngineStream *s);

/* Queues a task and stores its sequence number in *seq; false (nothing queued)
 * when ENGINE_QUEUE_DEPTH tasks are already waiting.  `obj` is the task's
 * synchronisation object (a Notify for the NOTIFY tasks, an Event for the
 * EVENT tasks, with a reference the engine drops once the task ran or was
 * dropped), NULL for the others. */
bool engine_stream_submit(EngineStream *s, const EmuTask *t, void *obj, uint32_t *seq);
/* Stops the stream: runs what is queued (or drops it if `force`, which also
 * interrupts a task waiting on a notify), joins the worker and frees the
 * stream.  The last task's number is published either way. */
void engine_stream_destroy(EngineStream *s, bool force);
int engine_stream_device(const EngineStream *s);

/* Runs one task now on device `device` (the stream workers use it; so do
 * tests).  Returns an aclError: a page that is not accessible fails the task
 * with ACL_ERROR_RT_SYS_DMA, after the bytes before it were transferred. */
int engine_run_task(const EmuTask *t, int device, EngineResolve resolve, void *opaque);

#endif
