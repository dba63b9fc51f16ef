/*
 * stream.c - streams (chapter 06) on the client side.
 *
 * A stream is executed by the device's stream engine inside npu-emu; the
 * client only remembers the sequence number of the last task it queued and
 * waits in the channel for the engine to reach it.  Synchronising therefore
 * costs no request to the emulator.  A failed task leaves its error in the
 * stream's shared state; the next synchronise reports it (and clears it).
 * The rest of chapter 06 (queries, attributes, failure mode, abort, stop,
 * state callbacks) is in stream2.c.
 */
#include "rt.h"

#define STREAM_MAGIC 0x53545231u /* "STR1" */

/* Called with g_rt.lock held (or during context set-up under it). */
RtStream *rt_stream_new(RtContext *ctx, bool is_default, uint32_t priority, uint32_t flags,
                        aclError *err)
{
    EmuReqStreamCreate q = { .device = rt_device_phys(ctx->device), .priority = priority,
                             .flags = flags };
    EmuRespStreamCreate r;
    *err = rt_call(EMU_CMD_STREAM_CREATE, &q, sizeof(q), &r, sizeof(r), NULL);
    if (*err != ACL_SUCCESS)
        return NULL;
    RtStream *s = g_new0(RtStream, 1);
    s->magic = STREAM_MAGIC;
    s->ctx = ctx;
    s->device = ctx->device;
    s->id = r.stream;
    s->is_default = is_default;
    s->priority = priority;
    s->flags = flags;
    s->submitted = __atomic_load_n(&g_rt.conn.states[r.stream].done, __ATOMIC_ACQUIRE);
    g_hash_table_add(g_rt.streams, s);
    rt_stream_apply_ctx_mode(s);
    rt_stream_state_created(s);
    return s;
}

void rt_stream_free(RtStream *s)
{
    g_hash_table_remove(g_rt.streams, s);
    s->magic = 0;
    rt_retire_handle(s);
}

bool rt_stream_valid(RtStream *s)
{
    return s && g_rt.streams && g_hash_table_contains(g_rt.streams, s);
}

static RtStream *lookup(aclrtStream stream, const char *api, bool same_device, aclError *err)
{
    RtContext *ctx = rt_require_ctx(api, err);
    if (!ctx)
        return NULL;
    if (!stream)
        return ctx->default_stream;
    pthread_mutex_lock(&g_rt.lock);
    bool ok = rt_stream_valid(stream);
    pthread_mutex_unlock(&g_rt.lock);
    RtStream *s = stream;
    if (!ok) {
        *err = rt_fail(ACL_ERROR_RT_INVALID_HANDLE, api, "%p is not a live stream", stream);
        return NULL;
    }
    if (same_device && s->device != ctx->device) {
        *err = rt_fail(ACL_ERROR_RT_STREAM_CONTEXT, api,
                       "the stream belongs to device %d, the current context to device %d",
                       s->device, ctx->device);
        return NULL;
    }
    return s;
}

RtStream *rt_stream_resolve(aclrtStream stream, const char *api, aclError *err)
{
    return lookup(stream, api, true, err);
}

RtStream *rt_stream_lookup_any(aclrtStream stream, const char *api, aclError *err)
{
    return lookup(stream, api, false, err);
}

aclError rt_stream_submit(RtStream *s, const EmuTask *t)
{
    uint32_t seq;
    return rt_stream_submit_seq(s, t, &seq);
}

/* The number of the last task this thread put on an explicitly created
 * stream, not a default one (aclrtGetThreadLastTaskId); 0 before the first. */
static __thread uint32_t t_last_task;

static aclError submit(RtStream *s, const EmuTask *t, uint32_t *seq, uint64_t *gen, bool user)
{
    if (s->flags & RT_STREAM_NO_HOST_TASKS)
        return rt_fail(ACL_ERROR_RT_FEATURE_NOT_SUPPORT, "stream task",
                       "the stream was created with flag 0x%x (ACL_STREAM_PERSISTENT, "
                       "DEVICE_USE_ONLY or CPU_SCHEDULE): its tasks would come from a model "
                       "runtime instance, device code or the AI CPU scheduler, none of which "
                       "npu-emu has, so it takes no host task", s->flags);
    EmuReqSubmit q = { .stream = s->id, .task = *t };
    EmuRespSubmit r;
    aclError err;
    /* A full queue blocks the caller until the stream makes room, as on hardware. */
    while ((err = rt_call(EMU_CMD_STREAM_SUBMIT, &q, sizeof(q), &r, sizeof(r), NULL)) ==
           ACL_ERROR_RT_STREAM_TASK_FULL) {
        uint32_t done = __atomic_load_n(&g_rt.conn.states[s->id].done, __ATOMIC_ACQUIRE);
        rt_wait_stream(s->id, done + 1, 100);
    }
    if (err != ACL_SUCCESS)
        return err;
    /* Keep the newest number when threads submit to one stream concurrently. */
    uint32_t cur = __atomic_load_n(&s->submitted, __ATOMIC_RELAXED);
    while (emu_seq_reached(r.seq, cur) &&
           !__atomic_compare_exchange_n(&s->submitted, &cur, r.seq, true, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED))
        ;
    *seq = r.seq;
    if (gen)
        *gen = r.gen;
    if (user && !s->is_default)
        t_last_task = r.seq;
    return ACL_SUCCESS;
}

aclError rt_stream_submit_seq(RtStream *s, const EmuTask *t, uint32_t *seq)
{
    return submit(s, t, seq, NULL, true);
}

aclError rt_stream_submit_gen(RtStream *s, const EmuTask *t, uint32_t *seq, uint64_t *gen)
{
    return submit(s, t, seq, gen, true);
}

aclError rt_stream_submit_internal(RtStream *s, const EmuTask *t, uint32_t *seq)
{
    return submit(s, t, seq, NULL, false);
}

RT_EXPORT aclError aclrtGetThreadLastTaskId(uint32_t *taskId)
{
    RT_CHECK_INIT();
    if (!taskId)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "taskId must not be NULL");
    *taskId = t_last_task;
    return ACL_SUCCESS;
}

uint32_t rt_stream_mark(RtStream *s)
{
    return __atomic_load_n(&s->submitted, __ATOMIC_ACQUIRE);
}

aclError rt_stream_wait_mark(uint32_t id, uint32_t seq, int64_t timeout_ms)
{
    aclError err = rt_wait_stream(id, seq, timeout_ms);
    if (err != ACL_SUCCESS)
        return err;
    EmuStreamState *st = &g_rt.conn.states[id];
    /* Only an error of a task we waited for: a later task's failure belongs to
     * a later synchronise. */
    if (__atomic_load_n(&st->error, __ATOMIC_ACQUIRE) != ACL_SUCCESS &&
        emu_seq_reached(seq, __atomic_load_n(&st->error_seq, __ATOMIC_ACQUIRE)))
        return __atomic_exchange_n(&st->error, ACL_SUCCESS, __ATOMIC_ACQ_REL);
    return ACL_SUCCESS;
}

aclError rt_stream_sync(RtStream *s, int64_t timeout_ms)
{
    aclError err = rt_stream_wait_mark(s->id, rt_stream_mark(s), timeout_ms);
    if (err != ACL_SUCCESS)
        return err;
    /* A stream a failure stopped (ACL_STOP_ON_FAILURE) stays failed: every
     * synchronise says so, and nothing more runs in its order. */
    return __atomic_load_n(&g_rt.conn.states[s->id].stopped, __ATOMIC_ACQUIRE);
}

/* The (stream, last task) pairs of the streams match() selects, taken under
 * g_rt.lock so that the wait itself can run without it. */
static GArray *snapshot(bool (*match)(RtStream *, const void *), const void *arg)
{
    GArray *list = g_array_new(FALSE, FALSE, sizeof(RtStreamMark));
    pthread_mutex_lock(&g_rt.lock);
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init(&it, g_rt.streams);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        RtStream *s = key;
        if (match(s, arg))
            g_array_append_val(list, ((RtStreamMark){ s->id, rt_stream_mark(s) }));
    }
    pthread_mutex_unlock(&g_rt.lock);
    return list;
}

/* Waits, without g_rt.lock, for the work queued so far on the streams for which
 * match(stream, arg) holds; returns the first error. */
aclError rt_streams_wait(bool (*match)(RtStream *, const void *), const void *arg,
                         int64_t timeout_ms)
{
    GArray *list = snapshot(match, arg);
    aclError first = ACL_SUCCESS;
    for (unsigned i = 0; i < list->len; i++) {
        RtStreamMark *m = &g_array_index(list, RtStreamMark, i);
        aclError err = rt_stream_wait_mark(m->id, m->seq, timeout_ms);
        if (err != ACL_SUCCESS && first == ACL_SUCCESS)
            first = err;
    }
    g_array_free(list, TRUE);
    return first;
}

static bool any_stream(RtStream *s, const void *arg)
{
    (void)s;
    (void)arg;
    return true;
}

aclError rt_streams_drain(void)
{
    GArray *list = snapshot(any_stream, NULL);
    aclError first = ACL_SUCCESS;
    for (unsigned i = 0; i < list->len; i++) {
        RtStreamMark *m = &g_array_index(list, RtStreamMark, i);
        aclError err = rt_wait_stream(m->id, m->seq, -1);
        if (err != ACL_SUCCESS && first == ACL_SUCCESS)
            first = err;
    }
    g_array_free(list, TRUE);
    return first;
}

bool rt_stream_on_device(RtStream *s, const void *dev)
{
    return s->device == *(const int32_t *)dev;
}

/* Called with g_rt.lock held: forgets the device's streams.  The caller waited
 * for their work beforehand; the emulator runs anything queued since before it
 * destroys them when the device closes. */
void rt_stream_drop_device(int32_t device)
{
    GPtrArray *gone = g_ptr_array_new();
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init(&it, g_rt.streams);
    while (g_hash_table_iter_next(&it, &key, NULL))
        if (((RtStream *)key)->device == device)
            g_ptr_array_add(gone, key);
    for (unsigned i = 0; i < gone->len; i++) {
        rt_stream_free(g_ptr_array_index(gone, i));
    }
    g_ptr_array_free(gone, TRUE);
}

/* The ACL_STREAM_* flags of aclrtCreateStreamWithConfig. */
#define STREAM_FLAGS_KNOWN 0x3Fu

static aclError create(const char *api, aclrtStream *stream, uint32_t priority, uint32_t flags)
{
    RT_CHECK_INIT();
    if (!stream)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "stream must not be NULL");
    /* Documented: a value that is not one flag or an OR of flags gives the
     * stream aclrtCreateStream gives; the flags that cannot be ORed are refused.
     * PERSISTENT, DEVICE_USE_ONLY and CPU_SCHEDULE each name a kind of stream
     * (model-bound, device-only, AI CPU scheduling): at most one of them. */
    if (flags & ~STREAM_FLAGS_KNOWN)
        flags = 0;
    uint32_t kinds = flags & RT_STREAM_NO_HOST_TASKS;
    if (kinds & (kinds - 1))
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "flag 0x%x: ACL_STREAM_PERSISTENT, ACL_STREAM_DEVICE_USE_ONLY and "
                       "ACL_STREAM_CPU_SCHEDULE cannot be combined", flags);
    /* The priority range of aclrtDeviceGetStreamPriorityRange: 0 (highest) .. 7. */
    if (priority > 7)
        priority = 7;
    aclError err;
    RtContext *ctx = rt_require_ctx(api, &err);
    if (!ctx)
        return err;
    pthread_mutex_lock(&g_rt.lock);
    RtStream *s = rt_ctx_valid(ctx) ? rt_stream_new(ctx, false, priority, flags, &err) : NULL;
    pthread_mutex_unlock(&g_rt.lock);
    rt_stream_state_flush();
    if (!s)
        return rt_fail(err, api, "cannot create a stream on device %d (at most %d streams "
                                 "per device, default streams included)",
                       ctx->device, EMU_STREAMS_PER_DEVICE);
    *stream = s;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtCreateStream(aclrtStream *stream)
{
    return create(__func__, stream, 0, 0);
}

RT_EXPORT aclError aclrtCreateStreamWithConfig(aclrtStream *stream, uint32_t priority,
                                               uint32_t flag)
{
    return create(__func__, stream, priority, flag);
}

static aclError destroy(const char *api, aclrtStream stream, bool force)
{
    RT_CHECK_INIT();
    if (!stream)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "stream must not be NULL");
    aclError err;
    RtStream *s = lookup(stream, api, true, &err);
    if (!s)
        return err;
    if (s->is_default)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "a default stream is released with its context or device");
    rt_stream_state_destroying(s);
    pthread_mutex_lock(&g_rt.lock);
    if (!rt_stream_valid(s)) {
        pthread_mutex_unlock(&g_rt.lock);
        return rt_fail(ACL_ERROR_RT_INVALID_HANDLE, api, "%p is not a live stream", stream);
    }
    g_hash_table_remove(g_rt.streams, s);
    pthread_mutex_unlock(&g_rt.lock);
    if (!force)
        rt_stream_sync(s, -1);      /* documented: pending tasks finish first */
    EmuReqStreamDestroy q = { .stream = s->id, .force = force };
    err = rt_call(EMU_CMD_STREAM_DESTROY, &q, sizeof(q), NULL, 0, NULL);
    s->magic = 0;
    rt_retire_handle(s);
    return err == ACL_SUCCESS ? ACL_SUCCESS : rt_fail(err, api, "the emulator refused");
}

RT_EXPORT aclError aclrtDestroyStream(aclrtStream stream)
{
    return destroy(__func__, stream, false);
}

RT_EXPORT aclError aclrtDestroyStreamForce(aclrtStream stream)
{
    return destroy(__func__, stream, true);
}

static aclError sync_stream(const char *api, aclrtStream stream, int64_t timeout_ms)
{
    RT_CHECK_INIT();
    aclError err;
    RtStream *s = lookup(stream, api, false, &err);
    if (!s)
        return err;
    /* Documented: these streams' synchronise does nothing and succeeds. */
    if (s->flags & RT_STREAM_NO_HOST_TASKS)
        return ACL_SUCCESS;
    err = rt_stream_sync(s, timeout_ms);
    if (err == ACL_ERROR_RT_STREAM_SYNC_TIMEOUT)
        return rt_fail(err, api, "the stream's tasks did not finish within %lld ms",
                       (long long)timeout_ms);
    if (err == ACL_ERROR_RT_STREAM_ABORT)
        return rt_fail(err, api, "aclrtStreamAbort dropped or interrupted tasks of the stream");
    if (err != ACL_SUCCESS &&
        __atomic_load_n(&g_rt.conn.states[s->id].stopped, __ATOMIC_ACQUIRE) != ACL_SUCCESS)
        return rt_fail(err, api, "a task on the stream failed on device %d and stopped the "
                                 "stream (ACL_STOP_ON_FAILURE): it takes no new task",
                       s->device);
    if (err != ACL_SUCCESS)
        return rt_fail(err, api, "a task on the stream failed on device %d", s->device);
    rt_mempool_synced(s, s->device);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtSynchronizeStream(aclrtStream stream)
{
    return sync_stream(__func__, stream, -1);
}

RT_EXPORT aclError aclrtSynchronizeStreamWithTimeout(aclrtStream stream, int32_t timeout)
{
    if (timeout < -1 || timeout == 0) {
        RT_CHECK_INIT();
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "timeout %d: use -1 (forever) or > 0 ms",
                       timeout);
    }
    return sync_stream(__func__, stream, timeout);
}

RT_EXPORT aclError aclrtGetStreamAvailableNum(uint32_t *streamCount)
{
    RT_CHECK_INIT();
    if (!streamCount)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "streamCount must not be NULL");
    aclError err;
    RtContext *ctx = rt_require_ctx(__func__, &err);
    if (!ctx)
        return err;
    /* The limit is per device and process and counts default streams too, which
     * are in the registry like any other; every context's streams count. */
    uint32_t used = 0;
    pthread_mutex_lock(&g_rt.lock);
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init(&it, g_rt.streams);
    while (g_hash_table_iter_next(&it, &key, NULL))
        used += ((RtStream *)key)->device == ctx->device;
    pthread_mutex_unlock(&g_rt.lock);
    *streamCount = used < EMU_STREAMS_PER_DEVICE ? EMU_STREAMS_PER_DEVICE - used : 0;
    return ACL_SUCCESS;
}
