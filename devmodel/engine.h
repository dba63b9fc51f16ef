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
 * resolve callback, which pins the memory object for the duration of the task.
 * All functions are thread-safe; a stream is used by one session at a time.
 */
#ifndef DEVMODEL_ENGINE_H
#define DEVMODEL_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "memobj.h"
#include "npuemu/proto.h"

/* Host pointer for [addr, addr + len) on behalf of the stream's owner, or NULL. */
typedef uint8_t *(*EngineResolve)(void *opaque, uint64_t addr, uint64_t len, MemObj **ref);

typedef struct EngineStream EngineStream;

/* Starts a stream of device `device` publishing its progress into *state. */
EngineStream *engine_stream_new(int device, EmuStreamState *state, EngineResolve resolve,
                                void *opaque);
/* Tasks a stream holds at most, like a hardware submission queue. */
#define ENGINE_QUEUE_DEPTH 4096

/* Sequence number of the last task queued. */
uint32_t engine_stream_last(EngineStream *s);

/* Queues a task and stores its sequence number in *seq; false (nothing queued)
 * when ENGINE_QUEUE_DEPTH tasks are already waiting. */
bool engine_stream_submit(EngineStream *s, const EmuTask *t, uint32_t *seq);
/* Stops the stream: runs what is queued (or drops it if `force`), joins the worker
 * and frees the stream.  The last task's number is published either way. */
void engine_stream_destroy(EngineStream *s, bool force);
int engine_stream_device(const EngineStream *s);

/* Runs one task now (the stream workers use it; so do tests). Returns an aclError. */
int engine_run_task(const EmuTask *t, EngineResolve resolve, void *opaque);

#endif
