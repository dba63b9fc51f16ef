/*
 * event.c - events (chapter 07): create (plain, with flags, Ex), destroy,
 * record / reset / stream wait as stream tasks, queries, host synchronisation,
 * elapsed time and timestamps, ids, and IPC events (get / open handle).
 *
 * The emulator owns the events (devmodel/event.h) and numbers the records; a
 * stream's wait captures the latest record when it is queued.  The client
 * keeps, per event, where its last record and its last wait in each stream were queued
 * (stream and task number), so that host synchronisation and the wait status
 * are futex waits and reads of the shared stream state, with no request.
 * Events another process recorded (IPC) are synchronised by asking the
 * emulator.  Timestamps come from the device clock (microseconds since boot).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "npuemu/futex.h"
#include "rt.h"
#include "rt_unsupported.h"

#define EVENT_IPC_MAGIC 0x4e505645u     /* "EVPN" */

typedef enum EventKind {
    EVENT_PLAIN,                /* aclrtCreateEvent */
    EVENT_FLAGS,                /* aclrtCreateEventWithFlag */
    EVENT_EX,                   /* aclrtCreateEventExWithFlag */
    EVENT_OPENED,               /* aclrtIpcOpenEventHandle */
} EventKind;

typedef struct RtEvent {
    uint64_t handle;            /* the emulator's name for it in our session */
    uint32_t id;
    int32_t device;             /* user id of the device it was created on */
    uint32_t flags;
    EventKind kind;
    bool exported;
    bool recorded;              /* a record of ours is queued (since the last reset) */
    RtStreamMark record;        /* where it is */
    uint64_t record_gen;        /* its number in the emulator */
    GArray *waits;              /* RtStreamMark: our last wait on it in each stream
                                 * (NULL: none); guarded by event_lock */
} RtEvent;

/* The 64-byte aclrtIpcEventHandle. */
typedef struct IpcEventLayout {
    uint32_t magic;
    int32_t server;
    uint8_t token[EMU_TOKEN_LEN];
} IpcEventLayout;

static pthread_mutex_t event_lock = PTHREAD_MUTEX_INITIALIZER;
static GHashTable *live;        /* RtEvent * -> itself */
static uint32_t op_wait_timeout; /* aclrtSetOpWaitTimeout, seconds; 0: none */

/* A copy of the live event, or false. */
static bool event_get(aclrtEvent e, RtEvent *out)
{
    pthread_mutex_lock(&event_lock);
    bool ok = e && live && g_hash_table_contains(live, e);
    if (ok)
        *out = *(RtEvent *)e;
    pthread_mutex_unlock(&event_lock);
    return ok;
}

/* Out of `live` (event_lock held): the handle is never reused. */
static void event_retire(RtEvent *e)
{
    if (e->waits)
        g_array_free(e->waits, TRUE);
    e->waits = NULL;
    rt_retire_handle(e);
}

static bool mark_done(const RtStreamMark *m)
{
    return emu_seq_reached(__atomic_load_n(&g_rt.conn.states[m->id].done, __ATOMIC_ACQUIRE),
                           m->seq);
}

/* A wait was queued at m: it replaces an earlier wait in the same stream
 * (streams run in order), and waits that ran are forgotten (event_lock held). */
static void note_wait(RtEvent *e, RtStreamMark m)
{
    if (!e->waits)
        e->waits = g_array_new(FALSE, FALSE, sizeof(RtStreamMark));
    for (guint i = e->waits->len; i-- > 0;) {
        RtStreamMark *w = &g_array_index(e->waits, RtStreamMark, i);
        /* Two threads may note waits of one stream in either order: keep the later. */
        if (w->id == m.id && emu_seq_reached(w->seq, m.seq))
            return;
        if (w->id == m.id || mark_done(w))
            g_array_remove_index_fast(e->waits, i);
    }
    g_array_append_val(e->waits, m);
}

static aclError dead(const char *api, aclrtEvent e)
{
    return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                   "%p is not an event of this process (or it was destroyed)", e);
}

/* When the event takes one of the device's 65536 events.  The reference:
 * aclrtCreateEvent and Ex events with SYNC take it at aclrtRecordEvent ("并不会
 * 实际申请Event资源…可能会出现线程阻塞"); WithFlag events with SYNC or EXTERNAL
 * are limited at creation; other events are not limited.  IPC events are
 * device objects other processes open: at creation. */
static uint32_t resource_mode(uint32_t flags, EventKind kind)
{
    if (flags == ACL_EVENT_IPC)
        return EMU_EVENT_RES_NOW;
    if (kind == EVENT_PLAIN || (kind == EVENT_EX && (flags & ACL_EVENT_SYNC)))
        return EMU_EVENT_RES_AT_RECORD;
    if (kind == EVENT_FLAGS && ((flags & ACL_EVENT_SYNC) || flags == ACL_EVENT_EXTERNAL))
        return EMU_EVENT_RES_NOW;
    return EMU_EVENT_RES_NONE;
}

static aclError create(const char *api, aclrtEvent *event, uint32_t flags, EventKind kind)
{
    RT_CHECK_INIT();
    if (!event)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "event must not be NULL");
    aclError err;
    RtContext *ctx = rt_require_ctx(api, &err);
    if (!ctx)
        return err;
    EmuReqEventCreate q = { .device = rt_device_phys(ctx->device),
                            .resource = resource_mode(flags, kind) };
    EmuRespNotify r;
    err = rt_call(EMU_CMD_EVENT_CREATE, &q, sizeof(q), &r, sizeof(r), NULL);
    if (err != ACL_SUCCESS)
        return rt_fail(err, api, "device %d has no event left (65536 per device)", ctx->device);
    RtEvent *e = g_new0(RtEvent, 1);
    *e = (RtEvent){ .handle = r.handle, .id = r.id, .device = ctx->device, .flags = flags,
                    .kind = kind };
    pthread_mutex_lock(&event_lock);
    if (!live)
        live = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_hash_table_add(live, e);
    pthread_mutex_unlock(&event_lock);
    *event = e;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtCreateEvent(aclrtEvent *event)
{
    return create(__func__, event, ACL_EVENT_SYNC | ACL_EVENT_TIME_LINE, EVENT_PLAIN);
}

#define FLAGS_ORABLE (ACL_EVENT_SYNC | ACL_EVENT_CAPTURE_STREAM_PROGRESS | ACL_EVENT_TIME_LINE)

RT_EXPORT aclError aclrtCreateEventWithFlag(aclrtEvent *event, uint32_t flag)
{
    RT_CHECK_INIT();
    bool ok = flag != 0 && (!(flag & ~(FLAGS_ORABLE | ACL_EVENT_DEVICE_USE_ONLY)) ||
                            flag == ACL_EVENT_EXTERNAL);
    if (!ok)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "flag 0x%x: TIME_LINE, SYNC, CAPTURE_STREAM_PROGRESS, DEVICE_USE_ONLY, "
                       "or EXTERNAL alone", flag);
    return create(__func__, event, flag, EVENT_FLAGS);
}

RT_EXPORT aclError aclrtCreateEventExWithFlag(aclrtEvent *event, uint32_t flag)
{
    RT_CHECK_INIT();
    bool ok = flag != 0 && (!(flag & ~FLAGS_ORABLE) || flag == ACL_EVENT_IPC);
    if (!ok)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "flag 0x%x: TIME_LINE, SYNC, CAPTURE_STREAM_PROGRESS, or IPC alone", flag);
    return create(__func__, event, flag, EVENT_EX);
}

RT_EXPORT aclError aclrtDestroyEvent(aclrtEvent event)
{
    RT_CHECK_INIT();
    pthread_mutex_lock(&event_lock);
    bool ok = event && live && g_hash_table_remove(live, event);
    EmuReqNotify q = { .handle = ok ? ((RtEvent *)event)->handle : 0 };
    if (ok)
        event_retire(event);
    pthread_mutex_unlock(&event_lock);
    if (!ok)
        return dead(__func__, event);
    /* Queued tasks hold their own references: nothing waits here. */
    aclError err = rt_call(EMU_CMD_EVENT_DESTROY, &q, sizeof(q), NULL, 0, NULL);
    return err == ACL_SUCCESS ? ACL_SUCCESS : RT_FAIL(err, "the emulator refused the destroy");
}

static bool is_ipc(const RtEvent *e)
{
    return e->kind == EVENT_OPENED || e->flags == ACL_EVENT_IPC;
}

/* Queues an event task on `stream` and remembers where (for records and waits). */
static aclError queue(const char *api, aclrtEvent event, const RtEvent *e, aclrtStream stream,
                      uint32_t type, uint32_t timeout_s)
{
    aclError err;
    RtStream *s;
    EmuTask t = { .type = type, .value = e->handle, .height = timeout_s };
    RtStreamMark m;
    uint64_t gen = 0;
    /* A record that must take a device event waits until one is free; the
     * stream is looked up again each time, as another thread may destroy it. */
    unsigned pause_us = 100;
    for (;;) {
        if (!(s = rt_stream_resolve(stream, api, &err)))
            return err;
        m = (RtStreamMark){ .id = s->id };
        err = rt_stream_submit_gen(s, &t, &m.seq, &gen);
        if (err != ACL_ERROR_RT_NO_EVENT_RESOURCE || type != EMU_TASK_EVENT_RECORD)
            break;
        g_usleep(pause_us);
        pause_us = pause_us < 10000 ? pause_us * 2 : 10000;
    }
    if (err != ACL_SUCCESS)
        return rt_fail(err, api, "cannot queue the task");
    bool follow = false;
    RtStreamMark rec = { 0 };
    pthread_mutex_lock(&event_lock);
    if (live && g_hash_table_contains(live, event)) {
        RtEvent *le = event;
        if (type == EMU_TASK_EVENT_RECORD) {
            /* Threads may note their records in either order: keep the newest. */
            if (!le->recorded || gen > le->record_gen) {
                le->record = m;
                le->record_gen = gen;
            }
            le->recorded = true;
        } else if (type == EMU_TASK_EVENT_WAIT) {
            note_wait(le, m);
            /* The pool may follow only a wait that surely waits for our record:
             * the record the emulator gave it is ours, it has no timeout (a
             * timed-out wait lets the stream go on), and the event can be
             * neither reset (plain and Ex events cannot) nor recorded by
             * another process (IPC). */
            follow = le->recorded && gen == le->record_gen && timeout_s == 0 &&
                     (le->kind == EVENT_PLAIN || le->kind == EVENT_EX) && !is_ipc(le);
            rec = le->record;
        } else {
            le->recorded = false;
        }
    }
    pthread_mutex_unlock(&event_lock);
    if (follow && rec.id != s->id)
        rt_mempool_event_waited(s, rec.id, rec.seq);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtRecordEvent(aclrtEvent event, aclrtStream stream)
{
    RT_CHECK_INIT();
    RtEvent e;
    if (!event_get(event, &e))
        return dead(__func__, event);
    return queue(__func__, event, &e, stream, EMU_TASK_EVENT_RECORD, 0);
}

RT_EXPORT aclError aclrtRecordEventWithFlag(aclrtEvent event, aclrtStream stream, uint32_t flag)
{
    RT_CHECK_INIT();
    if (flag == ACL_EVENT_RECORD_EXTERNAL)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "ACL_EVENT_RECORD_EXTERNAL is for a stream being captured into a graph, "
                       "and no stream is");
    if (flag != ACL_EVENT_RECORD_DEFAULT)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "flag 0x%x is not a record flag", flag);
    return aclrtRecordEvent(event, stream);
}

RT_EXPORT aclError aclrtResetEvent(aclrtEvent event, aclrtStream stream)
{
    RT_CHECK_INIT();
    RtEvent e;
    if (!event_get(event, &e))
        return dead(__func__, event);
    if (e.kind != EVENT_FLAGS || !(e.flags & ACL_EVENT_SYNC))
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "only an event of aclrtCreateEventWithFlag with ACL_EVENT_SYNC can be "
                       "reset");
    return queue(__func__, event, &e, stream, EMU_TASK_EVENT_RESET, 0);
}

/* Whether every record queued so far ran (the emulator's view); with `gen`,
 * out->gen_done says whether that record ran. */
static aclError query_gen(const char *api, const RtEvent *e, uint64_t gen, bool *done,
                          EmuRespEvent *out)
{
    EmuReqEventQuery q = { .handle = e->handle, .gen = gen };
    EmuRespEvent r;
    aclError err = rt_call(EMU_CMD_EVENT_QUERY, &q, sizeof(q), &r, sizeof(r), NULL);
    if (err != ACL_SUCCESS)
        return rt_fail(err, api, "cannot query the event");
    *done = r.ran >= r.queued;
    if (out)
        *out = r;
    return ACL_SUCCESS;
}

static aclError query(const char *api, const RtEvent *e, bool *done, EmuRespEvent *out)
{
    return query_gen(api, e, 0, done, out);
}

RT_EXPORT aclError aclrtQueryEvent(aclrtEvent event, aclrtEventStatus *status)
{
    RT_CHECK_INIT();
    RtEvent e;
    if (!status)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "status must not be NULL");
    if (!event_get(event, &e))
        return dead(__func__, event);
    if (e.kind == EVENT_EX || is_ipc(&e))
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "events of aclrtCreateEventExWithFlag and IPC events are not queried "
                       "this way: use aclrtQueryEventStatus");
    bool done = false;
    aclError err = query(__func__, &e, &done, NULL);
    if (err == ACL_SUCCESS)
        *status = done ? ACL_EVENT_STATUS_COMPLETE : ACL_EVENT_STATUS_NOT_READY;
    return err;
}

RT_EXPORT aclError aclrtQueryEventStatus(aclrtEvent event, aclrtEventRecordedStatus *status)
{
    RT_CHECK_INIT();
    RtEvent e;
    if (!status)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "status must not be NULL");
    if (!event_get(event, &e))
        return dead(__func__, event);
    bool done = false;
    aclError err = query(__func__, &e, &done, NULL);
    if (err == ACL_SUCCESS)
        *status = done ? ACL_EVENT_RECORDED_STATUS_COMPLETE : ACL_EVENT_RECORDED_STATUS_NOT_READY;
    return err;
}

RT_EXPORT aclError aclrtQueryEventWaitStatus(aclrtEvent event, aclrtEventWaitStatus *status)
{
    RT_CHECK_INIT();
    RtEvent e;
    if (!status)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "status must not be NULL");
    if (!event_get(event, &e))
        return dead(__func__, event);
    if (e.kind == EVENT_EX || is_ipc(&e))
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "not for events of aclrtCreateEventExWithFlag or IPC events");
    /* "等待任务是否都执行完成": every wait of ours, in every stream. */
    bool done = true;
    pthread_mutex_lock(&event_lock);
    GArray *waits = live && g_hash_table_contains(live, event) ? ((RtEvent *)event)->waits : NULL;
    for (guint i = 0; waits && i < waits->len && done; i++)
        done = mark_done(&g_array_index(waits, RtStreamMark, i));
    pthread_mutex_unlock(&event_lock);
    *status = done ? ACL_EVENT_WAIT_STATUS_COMPLETE : ACL_EVENT_WAIT_STATUS_NOT_READY;
    return ACL_SUCCESS;
}

/* Host wait for the event's records: our own through the stream state, other
 * processes' by asking the emulator (backing off to 1 ms). */
static aclError sync_event(const char *api, aclrtEvent event, int64_t timeout_ms)
{
    RtEvent e;
    if (!event_get(event, &e))
        return dead(api, event);
    if (e.kind != EVENT_OPENED) {
        if (!e.recorded)
            return ACL_SUCCESS;
        aclError err = rt_wait_stream(e.record.id, e.record.seq, timeout_ms);
        if (err == ACL_ERROR_RT_STREAM_SYNC_TIMEOUT)
            return rt_fail(ACL_ERROR_RT_EVENT_SYNC_TIMEOUT, api,
                           "the event was not reached within %" PRId64 " ms", timeout_ms);
        return err == ACL_SUCCESS ? ACL_SUCCESS : rt_fail(err, api, "waiting failed");
    }
    uint64_t start = emu_now_ns(), pause_us = 20;
    EmuRespEvent first;
    bool done = false;
    aclError err = query(api, &e, &done, &first);
    /* Wait for the record that was latest when we started, itself: a later
     * record that ran first on another stream does not count. */
    while (err == ACL_SUCCESS && first.queued) {
        EmuRespEvent now;
        err = query_gen(api, &e, first.queued, &done, &now);
        if (err != ACL_SUCCESS || now.gen_done)
            break;
        if (timeout_ms >= 0 && emu_now_ns() - start >= (uint64_t)timeout_ms * 1000000ull)
            return rt_fail(ACL_ERROR_RT_EVENT_SYNC_TIMEOUT, api,
                           "the event was not reached within %" PRId64 " ms", timeout_ms);
        usleep((useconds_t)pause_us);
        pause_us = pause_us < 1000 ? pause_us * 2 : 1000;
    }
    return err;
}

RT_EXPORT aclError aclrtSynchronizeEvent(aclrtEvent event)
{
    RT_CHECK_INIT();
    return sync_event(__func__, event, -1);
}

RT_EXPORT aclError aclrtSynchronizeEventWithTimeout(aclrtEvent event, int32_t timeout)
{
    RT_CHECK_INIT();
    if (timeout < -1 || timeout == 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "timeout %d: -1 (forever) or > 0 ms",
                       timeout);
    return sync_event(__func__, event, timeout);
}

/* The timestamp of the event's record, which must have run. */
static aclError stamp(const char *api, aclrtEvent event, uint64_t *ts)
{
    RtEvent e;
    if (!event_get(event, &e))
        return dead(api, event);
    if (is_ipc(&e))
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "IPC events carry no timestamps");
    if (e.kind != EVENT_PLAIN && !(e.flags & ACL_EVENT_TIME_LINE))
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "the event was created without ACL_EVENT_TIME_LINE");
    bool done = false;
    EmuRespEvent r;
    aclError err = query(api, &e, &done, &r);
    if (err != ACL_SUCCESS)
        return err;
    if (r.queued == 0 || !done)
        return rt_fail(ACL_ERROR_RT_EVENT_NOT_COMPLETE, api,
                       "the event is not recorded, or its record has not run yet");
    *ts = r.ts_us;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtEventElapsedTime(float *ms, aclrtEvent startEvent, aclrtEvent endEvent)
{
    RT_CHECK_INIT();
    if (!ms)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "ms must not be NULL");
    uint64_t t0, t1;
    aclError err = stamp(__func__, startEvent, &t0);
    if (err == ACL_SUCCESS)
        err = stamp(__func__, endEvent, &t1);
    if (err != ACL_SUCCESS)
        return err;
    if (t1 < t0)
        return RT_FAIL(ACL_ERROR_RT_EVENT_TIMESTAMP_REVERSAL,
                       "endEvent's record ran before startEvent's");
    *ms = (float)((double)(t1 - t0) / 1000.0);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtEventGetTimestamp(aclrtEvent event, uint64_t *timestamp)
{
    RT_CHECK_INIT();
    if (!timestamp)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "timestamp must not be NULL");
    return stamp(__func__, event, timestamp);
}

static aclError stream_wait(const char *api, aclrtStream stream, aclrtEvent event,
                            uint32_t timeout_s)
{
    RtEvent e;
    if (!event_get(event, &e))
        return dead(api, event);
    if ((e.kind == EVENT_FLAGS || e.kind == EVENT_EX) && !(e.flags & ACL_EVENT_SYNC) &&
        e.flags != ACL_EVENT_IPC)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "the event was created without ACL_EVENT_SYNC");
    return queue(api, event, &e, stream, EMU_TASK_EVENT_WAIT, timeout_s);
}

RT_EXPORT aclError aclrtStreamWaitEvent(aclrtStream stream, aclrtEvent event)
{
    RT_CHECK_INIT();
    return stream_wait(__func__, stream, event, __atomic_load_n(&op_wait_timeout,
                                                                __ATOMIC_RELAXED));
}

RT_EXPORT aclError aclrtStreamWaitEventWithTimeout(aclrtStream stream, aclrtEvent event,
                                                   int32_t timeout)
{
    RT_CHECK_INIT();
    if (timeout < 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "timeout %d: >= 0 s (0: forever)", timeout);
    return stream_wait(__func__, stream, event, (uint32_t)timeout);
}

RT_EXPORT aclError aclrtStreamWaitEventWithFlag(aclrtStream stream, aclrtEvent event,
                                                uint32_t timeout, uint32_t flag)
{
    RT_CHECK_INIT();
    if (flag == ACL_EVENT_WAIT_EXTERNAL)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "ACL_EVENT_WAIT_EXTERNAL is for a stream being captured into a graph, "
                       "and no stream is");
    if (flag != ACL_EVENT_WAIT_DEFAULT)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "flag 0x%x is not a wait flag", flag);
    return stream_wait(__func__, stream, event, timeout);
}

RT_EXPORT aclError aclrtSetOpWaitTimeout(uint32_t timeout)
{
    RT_CHECK_INIT();
    __atomic_store_n(&op_wait_timeout, timeout, __ATOMIC_RELAXED);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtGetEventId(aclrtEvent event, uint32_t *eventId)
{
    RT_CHECK_INIT();
    RtEvent e;
    if (!eventId)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "eventId must not be NULL");
    if (!event_get(event, &e))
        return dead(__func__, event);
    if (is_ipc(&e))
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "IPC events have no id to give");
    if (e.id == UINT32_MAX) {
        /* It holds no device event yet: the id is one, so take it now. */
        EmuReqEventQuery q = { .handle = e.handle, .take_id = 1 };
        EmuRespEvent r;
        aclError err = rt_call(EMU_CMD_EVENT_QUERY, &q, sizeof(q), &r, sizeof(r), NULL);
        if (err == ACL_ERROR_RT_NO_EVENT_RESOURCE)
            return RT_FAIL(err, "device %d has no event left to give the event an id (65536 "
                                "per device)", e.device);
        if (err != ACL_SUCCESS)
            return RT_FAIL(err, "cannot give the event an id");
        e.id = r.id;
        pthread_mutex_lock(&event_lock);
        if (live && g_hash_table_contains(live, event))
            ((RtEvent *)event)->id = r.id;
        pthread_mutex_unlock(&event_lock);
    }
    *eventId = e.id;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtGetEventAvailNum(uint32_t *eventCount)
{
    RT_CHECK_INIT();
    if (!eventCount)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "eventCount must not be NULL");
    aclError err;
    RtContext *ctx = rt_require_ctx(__func__, &err);
    if (!ctx)
        return err;
    EmuReqDevice q = { .device = rt_device_phys(ctx->device) };
    EmuRespEvent r;
    err = rt_call(EMU_CMD_EVENT_AVAIL, &q, sizeof(q), &r, sizeof(r), NULL);
    if (err != ACL_SUCCESS)
        return RT_FAIL(err, "cannot query device %d", ctx->device);
    *eventCount = (uint32_t)r.queued;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtIpcGetEventHandle(aclrtEvent event, aclrtIpcEventHandle *handle)
{
    RT_CHECK_INIT();
    RtEvent e;
    if (!handle)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "handle must not be NULL");
    if (!event_get(event, &e))
        return dead(__func__, event);
    if (e.kind != EVENT_EX || e.flags != ACL_EVENT_IPC)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "only an event of aclrtCreateEventExWithFlag with ACL_EVENT_IPC can be "
                       "shared");
    EmuReqNotify q = { .handle = e.handle };
    EmuRespToken r;
    aclError err = rt_call(EMU_CMD_EVENT_EXPORT, &q, sizeof(q), &r, sizeof(r), NULL);
    if (err != ACL_SUCCESS)
        return RT_FAIL(err, "cannot export the event (once per event)");
    IpcEventLayout l = { .magic = EVENT_IPC_MAGIC, .server = r.server };
    memcpy(l.token, r.token, EMU_TOKEN_LEN);
    memset(handle, 0, sizeof(*handle));
    memcpy(handle->reserved, &l, sizeof(l));
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtIpcOpenEventHandle(aclrtIpcEventHandle handle, aclrtEvent *event)
{
    RT_CHECK_INIT();
    if (!event)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "event must not be NULL");
    IpcEventLayout l;
    memcpy(&l, handle.reserved, sizeof(l));
    if (l.magic != EVENT_IPC_MAGIC)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "not an IPC event handle");
    aclError err;
    RtContext *ctx = rt_require_ctx(__func__, &err);
    if (!ctx)
        return err;
    EmuReqShareImport q = { .name = { .kind = EMU_SHARE_EVENT, .len = EMU_TOKEN_LEN },
                            .device = rt_device_phys(ctx->device) };
    memcpy(q.name.token, l.token, EMU_TOKEN_LEN);
    EmuRespNotify r;
    err = rt_call(EMU_CMD_EVENT_IMPORT, &q, sizeof(q), &r, sizeof(r), NULL);
    if (err != ACL_SUCCESS)
        return RT_FAIL(err, "cannot open the handle: unknown, destroyed, of this process, or "
                       "of another server");
    RtEvent *e = g_new0(RtEvent, 1);
    *e = (RtEvent){ .handle = r.handle, .id = r.id, .device = -1, .flags = ACL_EVENT_IPC,
                    .kind = EVENT_OPENED };
    pthread_mutex_lock(&event_lock);
    if (!live)
        live = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_hash_table_add(live, e);
    pthread_mutex_unlock(&event_lock);
    *event = e;
    return ACL_SUCCESS;
}

void rt_event_drop_device(int32_t device)
{
    pthread_mutex_lock(&event_lock);
    if (live) {
        GHashTableIter it;
        gpointer key;
        g_hash_table_iter_init(&it, live);
        while (g_hash_table_iter_next(&it, &key, NULL)) {
            if (((RtEvent *)key)->device == device) {
                g_hash_table_iter_remove(&it);
                event_retire(key);
            }
        }
    }
    pthread_mutex_unlock(&event_lock);
}

void rt_event_release(void)
{
    pthread_mutex_lock(&event_lock);
    if (live) {
        GHashTableIter it;
        gpointer key;
        g_hash_table_iter_init(&it, live);
        while (g_hash_table_iter_next(&it, &key, NULL))
            event_retire(key);
        g_hash_table_destroy(live);
        live = NULL;
    }
    op_wait_timeout = 0;
    pthread_mutex_unlock(&event_lock);
}

void rt_event_forget_after_fork(void)
{
    pthread_mutex_init(&event_lock, NULL);
    live = NULL;
    op_wait_timeout = 0;
}
