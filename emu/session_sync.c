/*
 * session_sync.c - a session's notifies, events, stream control and task
 * submission.
 */
#include "session_int.h"

#include "acl/acl_base.h"
#include "devmodel/event.h"
#include "devmodel/notify.h"
#include "devmodel/reduce.h"

/* ---- notifies (devmodel/notify.h) ---- */

/* The session's notify (event: false) or event (true) named handle. */
static SessNotify *sess_sync(Session *s, uint64_t handle, bool event)
{
    SessNotify *sn = g_hash_table_lookup(s->notifies, &handle);
    return sn && sn->event == event ? sn : NULL;
}

static SessNotify *sess_notify(Session *s, uint64_t handle)
{
    return sess_sync(s, handle, false);
}

static uint64_t new_notify_handle(Session *s)
{
    uint64_t h;
    do
        h = ((uint64_t)g_random_int() << 32) | g_random_int();
    while (h == 0 || g_hash_table_contains(s->notifies, &h));
    return h;
}

static SessNotify *sess_sync_add(Session *s, bool event, void *obj, int device, bool imported,
                                  bool peer)
{
    SessNotify *sn = g_new0(SessNotify, 1);
    *sn = (SessNotify){ .handle = new_notify_handle(s), .event = event, .obj = obj,
                        .device = device, .imported = imported, .peer = peer };
    g_hash_table_insert(s->notifies, &sn->handle, sn);
    return sn;
}

static SessNotify *sess_notify_add(Session *s, Notify *n, int device, bool imported, bool peer)
{
    return sess_sync_add(s, false, n, device, imported, peer);
}

void sess_notify_free(gpointer p)
{
    SessNotify *sn = p;
    if (sn->event)
        event_unref(sn->obj);
    else
        notify_unref(sn->obj);
    g_free(sn);
}

/* A record or wait task on a notify: a notify of this session; waiting only
 * on one it created; a stream of another device needs peer access to the
 * notify's device (or the import's flag).  *obj gets a reference. */
static int notify_task_check(Session *s, int stream_dev, const EmuTask *t, Notify **obj)
{
    SessNotify *sn = sess_notify(s, t->value);
    if (!sn || t->flags || (t->type == EMU_TASK_NOTIFY_WAIT && sn->imported))
        return ACL_ERROR_RT_PARAM_INVALID;
    if (t->type == EMU_TASK_NOTIFY_RECORD && t->size)
        return ACL_ERROR_RT_PARAM_INVALID;
    if (sn->device != stream_dev && !sn->peer &&
        !aspace_has_peer(s->as, stream_dev, sn->device))
        return ACL_ERROR_RT_PARAM_INVALID;
    *obj = notify_ref(sn->obj);
    return ACL_SUCCESS;
}

int handle_notify_create(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqDevice, q);
    Device *d = session_device(s, q->device);
    if (!d)
        return ACL_ERROR_RT_INVALID_DEVICEID;
    Notify *n = notify_new(d);
    if (!n)
        return ACL_ERROR_RT_NO_NOTIFY_RESOURCE;
    SessNotify *sn = sess_notify_add(s, n, q->device, false, false);
    RESP(EmuRespNotify, p);
    *p = (EmuRespNotify){ .handle = sn->handle, .id = notify_id(n), .device = q->device };
    return ACL_SUCCESS;
}

int handle_notify_destroy(Session *s, const void *req, uint32_t len)
{
    REQ(EmuReqNotify, q);
    SessNotify *sn = sess_notify(s, q->handle);
    if (!sn)
        return ACL_ERROR_RT_PARAM_INVALID;
    if (!sn->imported)
        share_withdraw_notify(s->srv->shares, s->id, q->handle);
    g_hash_table_remove(s->notifies, &q->handle);
    return ACL_SUCCESS;
}

int handle_notify_reset(Session *s, const void *req, uint32_t len)
{
    REQ(EmuReqNotify, q);
    SessNotify *sn = sess_notify(s, q->handle);
    if (!sn)
        return ACL_ERROR_RT_PARAM_INVALID;
    notify_reset(sn->obj);
    return ACL_SUCCESS;
}

int handle_notify_export(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqNotify, q);
    SessNotify *sn = sess_notify(s, q->handle);
    if (!sn || sn->imported || q->flags > 1)
        return ACL_ERROR_RT_PARAM_INVALID;
    RESP(EmuRespToken, p);
    p->server = s->server;
    return share_export_sync(s->srv->shares, SHARE_NOTIFY, s->id, s->pid, s->server,
                             notify_ref(sn->obj), q->handle, q->flags != 0, p->token);
}

int handle_notify_import(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqShareImport, q);
    if (q->name.kind != EMU_SHARE_NOTIFY || q->name.len != EMU_TOKEN_LEN || q->pad > 1)
        return ACL_ERROR_RT_PARAM_INVALID;
    if (!session_device(s, q->device))
        return ACL_ERROR_RT_INVALID_DEVICEID;
    ShareGrant g;
    int err = share_import(s->srv->shares, SHARE_NOTIFY, q->name.token, EMU_TOKEN_LEN, s->id,
                           s->pid, s->server, &g);
    if (err != ACL_SUCCESS) {
        if (err == ACL_ERROR_RT_NO_PERMISSION)
            emu_log("pid %d refused a notify key it is not whitelisted for", (int)s->pid);
        return err;
    }
    /* The notify's device, as this server numbers it (another server's: -1). */
    Device *nd = notify_device(g.sync);
    int dev = -1;
    for (int d = 0; d < s->srv->profile->devices_per_server; d++)
        if (s->srv->devices[s->server][d] == nd)
            dev = d;
    SessNotify *sn = sess_notify_add(s, g.sync, dev, true, q->pad != 0 || dev < 0);
    RESP(EmuRespNotify, p);
    *p = (EmuRespNotify){ .handle = sn->handle, .id = notify_id(g.sync), .device = dev };
    return ACL_SUCCESS;
}

static gboolean group_unused(gpointer key, gpointer value, gpointer data)
{
    (void)key;
    (void)data;
    return engine_group_empty(value);
}

int handle_stream_ctl(Session *s, const void *req, uint32_t len)
{
    REQ(EmuReqStreamCtl, q);
    EngineStream *st = session_stream(s, q->stream);
    if (!st)
        return ACL_ERROR_RT_PARAM_INVALID;
    switch (q->op) {
    case EMU_STREAM_SET_MODE: {
        if ((q->value & 0xffffffffu) > 1)
            return ACL_ERROR_RT_PARAM_INVALID;
        uint32_t group = (uint32_t)(q->value >> 32);
        EngineGroup *g = NULL;
        if (group) {
            g = g_hash_table_lookup(s->groups, GUINT_TO_POINTER(group));
            if (!g) {
                /* Groups whose streams are all gone go first: the table never
                 * holds more groups than live streams, whatever the client. */
                g_hash_table_foreach_remove(s->groups, group_unused, NULL);
                g = engine_group_new();
                g_hash_table_insert(s->groups, GUINT_TO_POINTER(group), g);
            }
        }
        engine_stream_set_stop_on_failure(st, (q->value & 1) == 1, g);
        return ACL_SUCCESS;
    }
    case EMU_STREAM_ABORT:
        engine_stream_abort(st);
        return ACL_SUCCESS;
    case EMU_STREAM_STOP:
        engine_stream_stop(st);
        return ACL_SUCCESS;
    default:
        return ACL_ERROR_RT_PARAM_INVALID;
    }
}

/* ---- events (devmodel/event.h) ---- */

/* An event task: the session's event; a record takes the event's next
 * record number, a wait the latest record queued so far; imported events
 * take no reset.  *obj gets a reference. */
static int event_task_prepare(Session *s, EmuTask *t, Event **obj)
{
    SessNotify *sn = sess_sync(s, t->value, true);
    if (!sn || t->flags || (t->type == EMU_TASK_EVENT_RESET && sn->imported))
        return ACL_ERROR_RT_PARAM_INVALID;
    Event *e = sn->obj;
    if (t->type == EMU_TASK_EVENT_RECORD) {
        int err = event_acquire(e, true);
        if (err != ACL_SUCCESS)
            return err;     /* the runtime waits for a device event and tries again */
        t->size = event_record_queued(e);
    }
    else if (t->type == EMU_TASK_EVENT_WAIT)
        t->size = event_latest(e);
    *obj = event_ref(e);
    return ACL_SUCCESS;
}

int handle_event_create(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqEventCreate, q);
    Device *d = session_device(s, q->device);
    if (!d)
        return ACL_ERROR_RT_INVALID_DEVICEID;
    /* Events that hold no device event cost only memory: still bounded, so a
     * client creating them in a loop cannot grow the shared emulator. */
    if (g_hash_table_size(s->notifies) >= EMU_SESSION_SYNC_MAX)
        return ACL_ERROR_RT_NO_EVENT_RESOURCE;
    if (q->resource > EMU_EVENT_RES_NONE)
        return ACL_ERROR_RT_PARAM_INVALID;
    static const EventResource res[] = { EVENT_RES_NOW, EVENT_RES_AT_RECORD, EVENT_RES_NONE };
    Event *e = event_new(d, res[q->resource]);
    if (!e)
        return ACL_ERROR_RT_NO_EVENT_RESOURCE;
    SessNotify *sn = sess_sync_add(s, true, e, q->device, false, false);
    RESP(EmuRespNotify, p);
    *p = (EmuRespNotify){ .handle = sn->handle, .id = event_id(e), .device = q->device };
    return ACL_SUCCESS;
}

int handle_event_destroy(Session *s, const void *req, uint32_t len)
{
    REQ(EmuReqNotify, q);
    SessNotify *sn = sess_sync(s, q->handle, true);
    if (!sn)
        return ACL_ERROR_RT_PARAM_INVALID;
    if (!sn->imported)
        share_withdraw_notify(s->srv->shares, s->id, q->handle);
    g_hash_table_remove(s->notifies, &q->handle);
    return ACL_SUCCESS;
}

int handle_event_query(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqEventQuery, q);
    SessNotify *sn = sess_sync(s, q->handle, true);
    if (!sn)
        return ACL_ERROR_RT_PARAM_INVALID;
    if (q->take_id > 1)
        return ACL_ERROR_RT_PARAM_INVALID;
    if (q->take_id) {
        int err = event_acquire(sn->obj, false);
        if (err != ACL_SUCCESS)
            return err;
    }
    RESP(EmuRespEvent, p);
    event_status(sn->obj, &p->queued, &p->ran, &p->ts_us);
    p->gen_done = q->gen ? event_record_done(sn->obj, q->gen) : 1;
    p->id = event_id(sn->obj);
    return ACL_SUCCESS;
}

int handle_event_export(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqNotify, q);
    SessNotify *sn = sess_sync(s, q->handle, true);
    if (!sn || sn->imported || q->flags)
        return ACL_ERROR_RT_PARAM_INVALID;
    RESP(EmuRespToken, p);
    p->server = s->server;
    return share_export_sync(s->srv->shares, SHARE_EVENT, s->id, s->pid, s->server,
                             event_ref(sn->obj), q->handle, false, p->token);
}

int handle_event_import(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqShareImport, q);
    if (q->name.kind != EMU_SHARE_EVENT || q->name.len != EMU_TOKEN_LEN || q->pad)
        return ACL_ERROR_RT_PARAM_INVALID;
    if (!session_device(s, q->device))
        return ACL_ERROR_RT_INVALID_DEVICEID;
    ShareGrant g;
    int err = share_import(s->srv->shares, SHARE_EVENT, q->name.token, EMU_TOKEN_LEN, s->id,
                           s->pid, s->server, &g);
    if (err != ACL_SUCCESS)
        return err;
    Device *ed = event_device(g.sync);
    int dev = -1;
    for (int d = 0; d < s->srv->profile->devices_per_server; d++)
        if (s->srv->devices[s->server][d] == ed)
            dev = d;
    SessNotify *sn = sess_sync_add(s, true, g.sync, dev, true, true);
    RESP(EmuRespNotify, p);
    *p = (EmuRespNotify){ .handle = sn->handle, .id = event_id(g.sync), .device = dev };
    return ACL_SUCCESS;
}

int handle_event_avail(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqDevice, q);
    Device *d = session_device(s, q->device);
    if (!d)
        return ACL_ERROR_RT_INVALID_DEVICEID;
    RESP(EmuRespEvent, p);
    *p = (EmuRespEvent){ .queued = DEV_EVENT_MAX - event_count(d) };
    return ACL_SUCCESS;
}

int handle_stream_submit(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqSubmit, q);
    void *obj = NULL;
    EmuTask task = q->task;     /* the emulator fills in some fields */
    EngineStream *st = session_stream(s, q->stream);
    if (!st)
        return ACL_ERROR_RT_PARAM_INVALID;
    /* A stream a failure stopped (ACL_STOP_ON_FAILURE) takes no new task:
     * refused before anything is numbered or taken. */
    int stopped = engine_stream_stopped(st);
    if (stopped != ACL_SUCCESS)
        return stopped;
    switch (q->task.type) {
    case EMU_TASK_MEMCPY:
    case EMU_TASK_MEMSET:
        break;
    case EMU_TASK_MEMSET32:
        if (q->task.size % 4)
            return ACL_ERROR_RT_PARAM_INVALID;
        break;
    case EMU_TASK_MEMCPY2D: {
        uint64_t span;
        if (!emu_span_2d(q->task.size, q->task.height, q->task.dpitch, &span) ||
            !emu_span_2d(q->task.size, q->task.height, q->task.spitch, &span))
            return ACL_ERROR_RT_PARAM_INVALID;
        break;
    }
    case EMU_TASK_MEMCPY_PTR:
        if (q->task.flags & ~(EMU_TASK_DST_INDIRECT | EMU_TASK_SRC_INDIRECT))
            return ACL_ERROR_RT_PARAM_INVALID;
        break;
    case EMU_TASK_REDUCE: {
        size_t es = reduce_elem_size(task.flags);
        if (!es || !reduce_kind_valid(task.value) || task.size % es)
            return ACL_ERROR_RT_PARAM_INVALID;
        break;
    }
    case EMU_TASK_NOTIFY_RECORD:
    case EMU_TASK_NOTIFY_WAIT: {
        Notify *n = NULL;
        int err = notify_task_check(s, engine_stream_device(st), &q->task, &n);
        if (err != ACL_SUCCESS)
            return err;
        obj = n;
        break;
    }
    case EMU_TASK_HOST_FUNC:
        if (task.flags)
            return ACL_ERROR_RT_PARAM_INVALID;
        break;
    case EMU_TASK_STREAM_WAIT:
        /* Another live stream of this session; a stream never waits for itself. */
        if (task.flags || task.value >= EMU_CHAN_STREAMS || task.value == q->stream ||
            task.size > UINT32_MAX)
            return ACL_ERROR_RT_PARAM_INVALID;
        EngineStream *other = session_stream(s, (uint32_t)task.value);
        /* A task queued there already: the wait always ends, and waits alone
         * cannot form a cycle. */
        if (!other || !emu_seq_reached(engine_stream_last(other), (uint32_t)task.size))
            return ACL_ERROR_RT_PARAM_INVALID;
        obj = &s->states[task.value];
        break;
    case EMU_TASK_VALUE_WRITE:
    case EMU_TASK_VALUE_WAIT:
        if (task.dst % 8 || (task.type == EMU_TASK_VALUE_WRITE && task.flags) ||
            (task.type == EMU_TASK_VALUE_WAIT && task.flags > 3))
            return ACL_ERROR_RT_PARAM_INVALID;
        break;
    case EMU_TASK_EVENT_RECORD:
    case EMU_TASK_EVENT_WAIT:
    case EMU_TASK_EVENT_RESET: {
        Event *e = NULL;
        int err = event_task_prepare(s, &task, &e);
        if (err != ACL_SUCCESS)
            return err;
        obj = e;
        break;
    }
    default:
        return ACL_ERROR_RT_PARAM_INVALID;
    }
    RESP(EmuRespSubmit, p);
    bool numbered = task.type == EMU_TASK_EVENT_RECORD || task.type == EMU_TASK_EVENT_WAIT;
    p->gen = numbered ? task.size : 0;
    /* Stopped meanwhile (a failure of its group), or full. */
    stopped = engine_stream_stopped(st);
    if (stopped == ACL_SUCCESS && engine_stream_submit(st, &task, obj, &p->seq))
        return ACL_SUCCESS;
    if (obj && task.type == EMU_TASK_EVENT_RECORD)
        event_record_dropped(obj, task.size);
    if (obj && (task.type == EMU_TASK_EVENT_RECORD || task.type == EMU_TASK_EVENT_WAIT ||
                task.type == EMU_TASK_EVENT_RESET))
        event_unref(obj);
    else if (obj && task.type != EMU_TASK_STREAM_WAIT)
        notify_unref(obj);
    return stopped != ACL_SUCCESS ? stopped : ACL_ERROR_RT_STREAM_TASK_FULL;
}
