/*
 * context.c - contexts (chapter 05): the default context of each device, explicit
 * contexts, and the calling thread's current context.
 *
 * A context is a device plus its default stream.  The current context is per
 * thread; aclrtSetDevice makes the device's default context current.  Handles
 * are checked against the registry (g_rt.contexts) before use, so a destroyed or
 * forged handle yields an error.
 */
#include "rt.h"

#define CTX_MAGIC 0x43545831u /* "CTX1" */

static __thread RtContext *t_ctx;

RtContext *rt_ctx_new(int32_t device, bool is_default, aclError *err)
{
    RtContext *ctx = g_new0(RtContext, 1);
    static uint32_t next_group;
    ctx->magic = CTX_MAGIC;
    ctx->device = device;
    ctx->group = __atomic_add_fetch(&next_group, 1, __ATOMIC_RELAXED);
    ctx->is_default = is_default;
    ctx->default_stream = rt_stream_new(ctx, true, 0, 0, err);
    if (!ctx->default_stream) {
        g_free(ctx);
        return NULL;
    }
    g_hash_table_add(g_rt.contexts, ctx);
    return ctx;
}

/* Called with g_rt.lock held. */
void rt_ctx_free(RtContext *ctx)
{
    g_hash_table_remove(g_rt.contexts, ctx);
    ctx->magic = 0;
    rt_retire_handle(ctx);
}

bool rt_ctx_valid(RtContext *ctx)
{
    return ctx && g_rt.contexts && g_hash_table_contains(g_rt.contexts, ctx);
}

RtContext *rt_current_ctx(void)
{
    RtContext *ctx = t_ctx;
    if (!ctx)
        return NULL;
    pthread_mutex_lock(&g_rt.lock);
    bool ok = rt_ctx_valid(ctx);
    pthread_mutex_unlock(&g_rt.lock);
    if (!ok)
        t_ctx = NULL;   /* destroyed, or its device was reset */
    return ok ? ctx : NULL;
}

void rt_set_current_ctx(RtContext *ctx)
{
    t_ctx = ctx;
}

RtContext *rt_require_ctx(const char *api, aclError *err)
{
    RtContext *ctx = rt_current_ctx();
    if (!ctx)
        *err = rt_fail(ACL_ERROR_RT_CONTEXT_NULL, api,
                       "no current context: call aclrtSetDevice or aclrtSetCurrentContext "
                       "in this thread first");
    return ctx;
}

/* Called with g_rt.lock held, after the streams of the device were dropped. */
void rt_ctx_drop_device(int32_t device)
{
    GPtrArray *gone = g_ptr_array_new();
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init(&it, g_rt.contexts);
    while (g_hash_table_iter_next(&it, &key, NULL))
        if (((RtContext *)key)->device == device)
            g_ptr_array_add(gone, key);
    for (unsigned i = 0; i < gone->len; i++)
        rt_ctx_free(g_ptr_array_index(gone, i));
    g_ptr_array_free(gone, TRUE);
}

RT_EXPORT aclError aclrtCreateContext(aclrtContext *context, int32_t deviceId)
{
    RT_CHECK_INIT();
    if (!context)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "context must not be NULL");
    if (!rt_device_valid(deviceId))
        return RT_FAIL(ACL_ERROR_RT_INVALID_DEVICEID,
                       "invalid device id %d; the valid range is [0, %d)", deviceId, g_rt.ndev);
    aclError err = rt_device_open(deviceId);
    if (err != ACL_SUCCESS)
        return RT_FAIL(err, "cannot open device %d", deviceId);
    pthread_mutex_lock(&g_rt.lock);
    RtContext *ctx = rt_ctx_new(deviceId, false, &err);
    pthread_mutex_unlock(&g_rt.lock);
    rt_stream_state_flush();    /* CREATE_POST of the new default stream(s) */
    if (!ctx)
        return RT_FAIL(err, "cannot create the context's default stream");
    t_ctx = ctx;
    *context = ctx;
    return ACL_SUCCESS;
}

static bool in_context(RtStream *s, const void *ctx)
{
    return s->ctx == ctx;
}

RT_EXPORT aclError aclrtDestroyContext(aclrtContext context)
{
    RT_CHECK_INIT();
    if (!context)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "context must not be NULL");
    RtContext *ctx = context;
    rt_streams_wait(in_context, ctx, -1);
    rt_stream_state_pre_destroy(rt_stream_in_destroyable_ctx, ctx);
    pthread_mutex_lock(&g_rt.lock);
    if (!rt_ctx_valid(ctx)) {
        pthread_mutex_unlock(&g_rt.lock);
        return RT_FAIL(ACL_ERROR_RT_INVALID_HANDLE, "%p is not a live context", context);
    }
    if (ctx->is_default) {
        pthread_mutex_unlock(&g_rt.lock);
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "a device's default context is released by aclrtResetDevice, "
                       "not aclrtDestroyContext");
    }
    /* Its streams go with it, default stream included. */
    GPtrArray *streams = g_ptr_array_new();
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init(&it, g_rt.streams);
    while (g_hash_table_iter_next(&it, &key, NULL))
        if (((RtStream *)key)->ctx == ctx)
            g_ptr_array_add(streams, key);
    for (unsigned i = 0; i < streams->len; i++) {
        RtStream *s = g_ptr_array_index(streams, i);
        EmuReqStreamDestroy q = { .stream = s->id };
        rt_call(EMU_CMD_STREAM_DESTROY, &q, sizeof(q), NULL, 0, NULL);
        rt_stream_free(s);
    }
    g_ptr_array_free(streams, TRUE);
    rt_ctx_free(ctx);
    pthread_mutex_unlock(&g_rt.lock);
    if (t_ctx == ctx)
        t_ctx = NULL;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtSetCurrentContext(aclrtContext context)
{
    RT_CHECK_INIT();
    if (!context)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "context must not be NULL");
    pthread_mutex_lock(&g_rt.lock);
    bool ok = rt_ctx_valid(context);
    pthread_mutex_unlock(&g_rt.lock);
    if (!ok)
        return RT_FAIL(ACL_ERROR_RT_INVALID_HANDLE,
                       "%p is not a live context (destroyed, or its device was reset)", context);
    t_ctx = context;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtGetCurrentContext(aclrtContext *context)
{
    RT_CHECK_INIT();
    if (!context)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "context must not be NULL");
    aclError err;
    RtContext *ctx = rt_require_ctx(__func__, &err);
    if (!ctx)
        return err;
    *context = ctx;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtCtxGetCurrentDefaultStream(aclrtStream *stream)
{
    RT_CHECK_INIT();
    if (!stream)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "stream must not be NULL");
    aclError err;
    RtContext *ctx = rt_require_ctx(__func__, &err);
    if (!ctx)
        return err;
    *stream = ctx->default_stream;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtGetPrimaryCtxState(int32_t deviceId, uint32_t *flags, int32_t *active)
{
    RT_CHECK_INIT();
    if (!active)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "active must not be NULL");
    if (!rt_device_valid(deviceId))
        return RT_FAIL(ACL_ERROR_RT_INVALID_DEVICEID,
                       "invalid device id %d; the valid range is [0, %d)", deviceId, g_rt.ndev);
    /* Active while aclrtSetDevice references hold it.  aclrtCreateContext
     * alone opens the device (for its per-device default stream) but does not
     * take a reference, so the default context is not active then. */
    pthread_mutex_lock(&g_rt.lock);
    bool on = g_rt.dev[deviceId].open && g_rt.dev[deviceId].set_count > 0;
    pthread_mutex_unlock(&g_rt.lock);
    /* flags is reserved (callers pass NULL); no flag is defined, so report none. */
    if (flags)
        *flags = 0;
    *active = on ? 1 : 0;
    return ACL_SUCCESS;
}
