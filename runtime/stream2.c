/*
 * stream2.c - the rest of chapter 06 on the client side: queries (status, id,
 * flags, priority), attributes, the failure mode, abort and stop, the overflow
 * switch, persistent-stream cleaning and stream state callbacks.
 *
 * Concepts:
 *  - A query reads the stream's shared state in the channel (EmuStreamState):
 *    the stream is complete when `done` reached the last task queued.  No
 *    request is sent.
 *  - The failure mode is the engine's (EMU_CMD_STREAM_CTL, EMU_STREAM_SET_MODE).
 *    ACL_STOP_ON_FAILURE on one stream puts its whole context in that mode:
 *    every stream of the context, and every stream created in it later
 *    (rt_stream_apply_ctx_mode), stops at its first failed task, drops what
 *    it holds and takes no new task; its synchronise reports the failure.
 *  - Abort and stop are engine operations too (EMU_STREAM_ABORT / STOP).
 *    Abort returns once the dropped tasks are accounted for; the stream's next
 *    synchronise returns ACL_ERROR_RT_STREAM_ABORT for them, and the stream
 *    works again afterwards.
 *  - Priority, overflow switch, custom tag and op-info cache switch are
 *    recorded per stream and reported; they change nothing in the engine
 *    (see docs/decisions.md).
 *  - State callbacks run on the thread that creates or destroys a stream,
 *    always outside g_rt.lock (see rt.h), in registration order.
 * Locking: stream fields are read and written under g_rt.lock; the callback
 * table has its own lock and is never held while a callback runs.
 */
#include <string.h>

#include "rt.h"

/* ---- stream state callbacks ---- */

typedef struct StateCb {
    char *name;
    aclrtStreamStateCallback fn;
    void *args;
} StateCb;

static pthread_mutex_t cb_lock = PTHREAD_MUTEX_INITIALIZER;
static GArray *cb_table;        /* StateCb, in registration order */
static int cb_count;            /* atomic: entries in cb_table */

/* Streams created by this thread under g_rt.lock, not reported yet.  A call
 * creates at most two (a device's default stream, then a context's). */
static __thread RtStream *t_created[8];
static __thread unsigned t_ncreated;

static GArray *cb_snapshot(void)
{
    GArray *list = g_array_new(FALSE, FALSE, sizeof(StateCb));
    pthread_mutex_lock(&cb_lock);
    if (cb_table)
        g_array_append_vals(list, cb_table->data, cb_table->len);
    pthread_mutex_unlock(&cb_lock);
    return list;
}

static void cb_call(const GArray *list, RtStream *s, aclrtStreamState state)
{
    for (unsigned i = 0; i < list->len; i++) {
        const StateCb *c = &g_array_index(list, StateCb, i);
        c->fn(s, state, c->args);
    }
}

void rt_stream_state_created(RtStream *s)
{
    if (__atomic_load_n(&cb_count, __ATOMIC_ACQUIRE) == 0)
        return;
    if (t_ncreated < G_N_ELEMENTS(t_created))
        t_created[t_ncreated++] = s;
}

void rt_stream_state_flush(void)
{
    unsigned n = t_ncreated;
    if (n == 0)
        return;
    RtStream *made[G_N_ELEMENTS(t_created)];
    memcpy(made, t_created, n * sizeof(made[0]));
    t_ncreated = 0;
    GArray *list = cb_snapshot();
    for (unsigned i = 0; i < n; i++) {
        pthread_mutex_lock(&g_rt.lock);
        bool live = rt_stream_valid(made[i]);
        pthread_mutex_unlock(&g_rt.lock);
        if (live)       /* not already gone with its device (another thread) */
            cb_call(list, made[i], ACL_RT_STREAM_STATE_CREATE_POST);
    }
    g_array_free(list, TRUE);
}

void rt_stream_state_destroying(RtStream *s)
{
    if (__atomic_load_n(&cb_count, __ATOMIC_ACQUIRE) == 0)
        return;
    GArray *list = cb_snapshot();
    cb_call(list, s, ACL_RT_STREAM_STATE_DESTROY_PRE);
    g_array_free(list, TRUE);
}

void rt_stream_state_pre_destroy(bool (*match)(RtStream *, const void *), const void *arg)
{
    if (__atomic_load_n(&cb_count, __ATOMIC_ACQUIRE) == 0)
        return;
    GPtrArray *gone = g_ptr_array_new();
    pthread_mutex_lock(&g_rt.lock);
    if (g_rt.streams) {
        GHashTableIter it;
        gpointer key;
        g_hash_table_iter_init(&it, g_rt.streams);
        while (g_hash_table_iter_next(&it, &key, NULL))
            if (!match || match(key, arg))
                g_ptr_array_add(gone, key);
    }
    pthread_mutex_unlock(&g_rt.lock);
    GArray *list = cb_snapshot();
    for (unsigned i = 0; i < gone->len; i++)
        cb_call(list, g_ptr_array_index(gone, i), ACL_RT_STREAM_STATE_DESTROY_PRE);
    g_array_free(list, TRUE);
    g_ptr_array_free(gone, TRUE);
}

bool rt_stream_in_destroyable_ctx(RtStream *s, const void *ctx)
{
    RtContext *c = (RtContext *)ctx;
    return rt_ctx_valid(c) && !c->is_default && s->ctx == c;
}

RT_EXPORT aclError aclrtRegStreamStateCallback(const char *regName,
                                               aclrtStreamStateCallback callback, void *args)
{
    RT_CHECK_INIT();
    if (!regName || !*regName)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "regName must be a non-empty string");
    aclError err = ACL_SUCCESS;
    pthread_mutex_lock(&cb_lock);
    if (!cb_table)
        cb_table = g_array_new(FALSE, FALSE, sizeof(StateCb));
    unsigned i;
    for (i = 0; i < cb_table->len; i++)
        if (strcmp(g_array_index(cb_table, StateCb, i).name, regName) == 0)
            break;
    bool found = i < cb_table->len;
    if (callback && found) {
        err = ACL_ERROR_RT_PARAM_INVALID;
    } else if (callback) {
        StateCb c = { .name = g_strdup(regName), .fn = callback, .args = args };
        g_array_append_val(cb_table, c);
    } else if (found) {
        g_free(g_array_index(cb_table, StateCb, i).name);
        g_array_remove_index(cb_table, i);
    } else {
        err = ACL_ERROR_RT_PARAM_INVALID;
    }
    __atomic_store_n(&cb_count, (int)cb_table->len, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&cb_lock);
    if (err != ACL_SUCCESS)
        return RT_FAIL(err, callback ? "a callback is already registered as '%s' (registering "
                                       "twice is not supported; pass NULL to unregister)"
                                     : "no callback is registered as '%s'",
                       regName);
    return ACL_SUCCESS;
}

/* ---- failure mode ---- */

static aclError stream_ctl(RtStream *s, uint32_t op, uint64_t value)
{
    EmuReqStreamCtl q = { .stream = s->id, .op = op, .value = value };
    return rt_call(EMU_CMD_STREAM_CTL, &q, sizeof(q), NULL, 0, NULL);
}

void rt_stream_apply_ctx_mode(RtStream *s)
{
    if (s->ctx->stop_on_failure)
        stream_ctl(s, EMU_STREAM_SET_MODE, 1 | (uint64_t)s->ctx->group << 32);
}

static aclError set_failure_mode(const char *api, RtStream *s, uint64_t mode)
{
    if (mode != ACL_CONTINUE_ON_FAILURE && mode != ACL_STOP_ON_FAILURE)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "mode %llu: use ACL_CONTINUE_ON_FAILURE (0) or ACL_STOP_ON_FAILURE (1)",
                       (unsigned long long)mode);
    aclError err = ACL_SUCCESS;
    const char *why = NULL;
    pthread_mutex_lock(&g_rt.lock);
    RtContext *ctx = s->ctx;
    if (!rt_stream_valid(s)) {
        err = ACL_ERROR_RT_INVALID_HANDLE;
        why = "the stream is gone";
    } else if (s->mode_set) {
        err = ACL_ERROR_RT_PARAM_INVALID;
        why = "the failure mode of a stream can be set only once";
    } else if (mode == ACL_CONTINUE_ON_FAILURE && ctx->stop_on_failure) {
        err = ACL_ERROR_RT_PARAM_INVALID;
        why = "a stream of its context is in ACL_STOP_ON_FAILURE mode, which holds for "
              "every stream of the context";
    } else if (mode == ACL_STOP_ON_FAILURE && !ctx->stop_on_failure) {
        /* Documented: the other streams of the context stop on failure too. */
        GHashTableIter it;
        gpointer key;
        g_hash_table_iter_init(&it, g_rt.streams);
        while (err == ACL_SUCCESS && g_hash_table_iter_next(&it, &key, NULL))
            if (((RtStream *)key)->ctx == ctx)
                err = stream_ctl(key, EMU_STREAM_SET_MODE, 1 | (uint64_t)ctx->group << 32);
        if (err == ACL_SUCCESS)
            ctx->stop_on_failure = true;
        else
            why = "the emulator refused the mode";
    }
    if (err == ACL_SUCCESS)
        s->mode_set = true;
    pthread_mutex_unlock(&g_rt.lock);
    return err == ACL_SUCCESS ? ACL_SUCCESS : rt_fail(err, api, "%s", why);
}

RT_EXPORT aclError aclrtSetStreamFailureMode(aclrtStream stream, uint64_t mode)
{
    RT_CHECK_INIT();
    aclError err;
    RtStream *s = rt_stream_resolve(stream, __func__, &err);
    if (!s)
        return err;
    return set_failure_mode(__func__, s, mode);
}

/* ---- status and properties ---- */

RT_EXPORT aclError aclrtStreamQuery(aclrtStream stream, aclrtStreamStatus *status)
{
    RT_CHECK_INIT();
    if (!status)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "status must not be NULL");
    aclError err;
    RtStream *s = rt_stream_lookup_any(stream, __func__, &err);
    if (!s)
        return err;
    /* Complete when the engine published the number of the last task queued
     * (dropped and failed tasks are published too). */
    uint32_t done = __atomic_load_n(&g_rt.conn.states[s->id].done, __ATOMIC_ACQUIRE);
    *status = emu_seq_reached(done, rt_stream_mark(s)) ? ACL_STREAM_STATUS_COMPLETE
                                                       : ACL_STREAM_STATUS_NOT_READY;
    return ACL_SUCCESS;
}

/* Reads one field of a live stream under g_rt.lock. */
typedef enum { F_ID, F_FLAGS, F_PRIORITY, F_OVERFLOW } Field;

static aclError get_field(const char *api, aclrtStream stream, Field f, uint32_t *out)
{
    RT_CHECK_INIT();
    if (!out)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "the output pointer must not be NULL");
    aclError err;
    RtStream *s = rt_stream_lookup_any(stream, api, &err);
    if (!s)
        return err;
    pthread_mutex_lock(&g_rt.lock);
    switch (f) {
    case F_ID: *out = s->id; break;
    case F_FLAGS: *out = s->flags; break;
    case F_PRIORITY: *out = s->priority; break;
    default: *out = s->overflow; break;
    }
    pthread_mutex_unlock(&g_rt.lock);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtStreamGetId(aclrtStream stream, int32_t *streamId)
{
    uint32_t id = 0;
    aclError err = get_field(__func__, stream, F_ID, streamId ? &id : NULL);
    if (err == ACL_SUCCESS)
        *streamId = (int32_t)id;
    return err;
}

RT_EXPORT aclError aclrtStreamGetFlags(aclrtStream stream, uint32_t *flags)
{
    return get_field(__func__, stream, F_FLAGS, flags);
}

RT_EXPORT aclError aclrtStreamGetPriority(aclrtStream stream, uint32_t *priority)
{
    return get_field(__func__, stream, F_PRIORITY, priority);
}

RT_EXPORT aclError aclrtGetStreamOverflowSwitch(aclrtStream stream, uint32_t *flag)
{
    return get_field(__func__, stream, F_OVERFLOW, flag);
}

RT_EXPORT aclError aclrtSetStreamOverflowSwitch(aclrtStream stream, uint32_t flag)
{
    RT_CHECK_INIT();
    if (flag > 1)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "flag %u: use 0 (off) or 1 (on)", flag);
    aclError err;
    RtStream *s = rt_stream_resolve(stream, __func__, &err);
    if (!s)
        return err;
    pthread_mutex_lock(&g_rt.lock);
    s->overflow = flag == 1;
    pthread_mutex_unlock(&g_rt.lock);
    return ACL_SUCCESS;
}

/* ---- attributes ---- */

RT_EXPORT aclError aclrtSetStreamAttribute(aclrtStream stream, aclrtStreamAttr stmAttrType,
                                           aclrtStreamAttrValue *value)
{
    RT_CHECK_INIT();
    if (!value)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "value must not be NULL");
    aclError err;
    RtStream *s = rt_stream_resolve(stream, __func__, &err);
    if (!s)
        return err;
    uint32_t v = value->overflowSwitch;     /* every 32-bit member is the first word */
    switch (stmAttrType) {
    case ACL_STREAM_ATTR_FAILURE_MODE:
        if (s->is_default)
            return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                           "the failure mode of a default stream cannot be set through this "
                           "attribute");
        return set_failure_mode(__func__, s, value->failureMode);
    case ACL_STREAM_ATTR_FLOAT_OVERFLOW_CHECK:
    case ACL_STREAM_ATTR_CACHE_OP_INFO:
        if (v > 1)
            return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "attribute %d: value %u, use 0 or 1",
                           (int)stmAttrType, v);
        break;
    case ACL_STREAM_ATTR_PRIORITY:
        if (v > 7)
            return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                           "priority %u: the range is 0 (highest) .. 7", v);
        break;
    case ACL_STREAM_ATTR_USER_CUSTOM_TAG:
        break;
    default:
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "unknown stream attribute %d",
                       (int)stmAttrType);
    }
    pthread_mutex_lock(&g_rt.lock);
    bool live = rt_stream_valid(s);
    if (live) {
        if (stmAttrType == ACL_STREAM_ATTR_FLOAT_OVERFLOW_CHECK)
            s->overflow = v == 1;
        else if (stmAttrType == ACL_STREAM_ATTR_CACHE_OP_INFO)
            s->cache_op_info = v == 1;
        else if (stmAttrType == ACL_STREAM_ATTR_PRIORITY)
            s->priority = v;
        else
            s->custom_tag = v;
    }
    pthread_mutex_unlock(&g_rt.lock);
    return live ? ACL_SUCCESS
                : RT_FAIL(ACL_ERROR_RT_INVALID_HANDLE, "%p is not a live stream", stream);
}

RT_EXPORT aclError aclrtGetStreamAttribute(aclrtStream stream, aclrtStreamAttr stmAttrType,
                                           aclrtStreamAttrValue *value)
{
    RT_CHECK_INIT();
    if (!value)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "value must not be NULL");
    if (stmAttrType < ACL_STREAM_ATTR_FAILURE_MODE || stmAttrType > ACL_STREAM_ATTR_PRIORITY)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "unknown stream attribute %d",
                       (int)stmAttrType);
    aclError err;
    RtStream *s = rt_stream_lookup_any(stream, __func__, &err);
    if (!s)
        return err;
    aclrtStreamAttrValue v;
    memset(&v, 0, sizeof(v));
    pthread_mutex_lock(&g_rt.lock);
    switch (stmAttrType) {
    case ACL_STREAM_ATTR_FAILURE_MODE:
        v.failureMode = s->ctx->stop_on_failure ? ACL_STOP_ON_FAILURE : ACL_CONTINUE_ON_FAILURE;
        break;
    case ACL_STREAM_ATTR_FLOAT_OVERFLOW_CHECK:
        v.overflowSwitch = s->overflow;
        break;
    case ACL_STREAM_ATTR_USER_CUSTOM_TAG:
        v.userCustomTag = s->custom_tag;
        break;
    case ACL_STREAM_ATTR_CACHE_OP_INFO:
        /* Documented: reported on only while a capture (aclmdlRICaptureBegin)
         * is under way, which npu-emu never has. */
        v.cacheOpInfoSwitch = 0;
        break;
    default:
        v.streamPriority = s->priority;
        break;
    }
    pthread_mutex_unlock(&g_rt.lock);
    *value = v;
    return ACL_SUCCESS;
}

/* ---- abort, stop, persistent tasks ---- */

RT_EXPORT aclError aclrtStreamAbort(aclrtStream stream)
{
    RT_CHECK_INIT();
    aclError err;
    RtStream *s = rt_stream_resolve(stream, __func__, &err);
    if (!s)
        return err;
    if (s->flags & RT_STREAM_NO_HOST_TASKS)
        return ACL_SUCCESS;     /* it never holds a task */
    uint32_t mark = rt_stream_mark(s);
    err = stream_ctl(s, EMU_STREAM_ABORT, 0);
    if (err != ACL_SUCCESS)
        return RT_FAIL(err, "the emulator refused the abort");
    /* The dropped tasks' numbers are published at once and a waiting task is
     * interrupted; return when the stream has let go of all of them.  Their
     * error (107023) stays for the stream's next synchronise. */
    err = rt_wait_stream(s->id, mark, -1);
    return err == ACL_SUCCESS ? ACL_SUCCESS : RT_FAIL(err, "the emulator went away");
}

RT_EXPORT aclError aclrtStreamStop(aclrtStream stream)
{
    RT_CHECK_INIT();
    if (!stream)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "the default stream (NULL) cannot be stopped");
    aclError err;
    RtStream *s = rt_stream_resolve(stream, __func__, &err);
    if (!s)
        return err;
    if (s->is_default)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "a default stream cannot be stopped");
    err = stream_ctl(s, EMU_STREAM_STOP, 0);
    return err == ACL_SUCCESS ? ACL_SUCCESS : RT_FAIL(err, "the emulator refused the stop");
}

RT_EXPORT aclError aclrtPersistentTaskClean(aclrtStream stream)
{
    RT_CHECK_INIT();
    aclError err;
    RtStream *s = rt_stream_resolve(stream, __func__, &err);
    if (!s)
        return err;
    if (!(s->flags & ACL_STREAM_PERSISTENT))
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "only a stream created with ACL_STREAM_PERSISTENT holds persistent "
                       "tasks");
    /* npu-emu queues no task on a persistent stream (rt_stream_submit refuses
     * them: no model runtime instance would ever run them), so it holds none
     * and is ready for new ones: the documented outcome. */
    return ACL_SUCCESS;
}
