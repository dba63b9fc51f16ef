/*
 * engine.c - stream workers.
 */
#include "engine.h"

#include <glib.h>
#include <string.h>

#include "acl/acl_base.h"
#include "npuemu/futex.h"

typedef struct QueuedTask {
    EmuTask task;
    uint32_t seq;
} QueuedTask;

struct EngineStream {
    int device;
    EmuStreamState *state;
    EngineResolve resolve;
    void *opaque;
    GMutex lock;
    GCond cond;
    GQueue queue;           /* QueuedTask * */
    uint32_t last_seq;
    bool stopping;
    bool drop;
    GThread *worker;
};

static void fill32(uint8_t *p, uint64_t bytes, uint32_t v)
{
    uint64_t n = bytes / 4;
    uint32_t *w = (uint32_t *)(void *)p;
    for (uint64_t i = 0; i < n; i++)
        memcpy(&w[i], &v, 4);
}

/* A 2D copy resolves each side's whole footprint once, then copies the rows:
 * one descriptor for any height, and its footprint must be mapped like any
 * other range. */
static int run_memcpy2d(const EmuTask *t, EngineResolve resolve, void *opaque)
{
    uint64_t dspan, sspan;
    if (!emu_span_2d(t->size, t->height, t->dpitch, &dspan) ||
        !emu_span_2d(t->size, t->height, t->spitch, &sspan))
        return ACL_ERROR_RT_PARAM_INVALID;
    if (dspan == 0)
        return ACL_SUCCESS;
    MemObj *dref = NULL, *sref = NULL;
    uint8_t *dst = resolve(opaque, t->dst, dspan, &dref);
    uint8_t *src = dst ? resolve(opaque, t->src, sspan, &sref) : NULL;
    if (src) {
        if (t->dpitch == t->size && t->spitch == t->size)
            memmove(dst, src, dspan);
        else
            for (uint64_t row = 0; row < t->height; row++)
                memmove(dst + row * t->dpitch, src + row * t->spitch, t->size);
    }
    memobj_unref(sref);
    memobj_unref(dref);
    return src ? ACL_SUCCESS : ACL_ERROR_RT_SYS_DMA;
}

/* The base address stored at `at` (device or pinned memory), read now. */
static bool load_base(uint64_t at, EngineResolve resolve, void *opaque, uint64_t *base)
{
    MemObj *ref = NULL;
    uint8_t *p = resolve(opaque, at, sizeof(*base), &ref);
    if (!p)
        return false;
    memcpy(base, p, sizeof(*base));
    memobj_unref(ref);
    return true;
}

/* A copy whose bases may live in memory the device reads when the task runs
 * (aclrtMemcpyAsyncWithOffset); both ends must be memory of one device. */
static int run_memcpy_ptr(const EmuTask *t, EngineResolve resolve, void *opaque)
{
    if (t->flags & ~(EMU_TASK_DST_INDIRECT | EMU_TASK_SRC_INDIRECT))
        return ACL_ERROR_RT_PARAM_INVALID;
    uint64_t dst = t->dst, src = t->src;
    if (((t->flags & EMU_TASK_DST_INDIRECT) && !load_base(t->dst, resolve, opaque, &dst)) ||
        ((t->flags & EMU_TASK_SRC_INDIRECT) && !load_base(t->src, resolve, opaque, &src)))
        return ACL_ERROR_RT_SYS_DMA;
    dst += t->doff;
    src += t->soff;
    if (emu_va_device(dst) < 0 || emu_va_device(dst) != emu_va_device(src))
        return ACL_ERROR_RT_SYS_DMA;
    EmuTask copy = { .type = EMU_TASK_MEMCPY, .dst = dst, .src = src, .size = t->size };
    return engine_run_task(&copy, resolve, opaque);
}

int engine_run_task(const EmuTask *t, EngineResolve resolve, void *opaque)
{
    MemObj *dref = NULL, *sref = NULL;
    int err = ACL_SUCCESS;
    if (t->type == EMU_TASK_MEMCPY2D)
        return run_memcpy2d(t, resolve, opaque);
    if (t->size == 0)
        return ACL_SUCCESS;
    if (t->type == EMU_TASK_MEMCPY_PTR)
        return run_memcpy_ptr(t, resolve, opaque);
    uint8_t *dst = resolve(opaque, t->dst, t->size, &dref);
    if (!dst)
        return ACL_ERROR_RT_SYS_DMA;
    switch (t->type) {
    case EMU_TASK_MEMCPY: {
        uint8_t *src = resolve(opaque, t->src, t->size, &sref);
        if (!src) {
            err = ACL_ERROR_RT_SYS_DMA;
            break;
        }
        memmove(dst, src, t->size);
        break;
    }
    case EMU_TASK_MEMSET:
        memset(dst, (int)(t->value & 0xff), t->size);
        break;
    case EMU_TASK_MEMSET32:
        fill32(dst, t->size, (uint32_t)t->value);
        break;
    default:
        err = ACL_ERROR_RT_PARAM_INVALID;
    }
    memobj_unref(sref);
    memobj_unref(dref);
    return err;
}

static void publish(EngineStream *s, uint32_t seq, int err)
{
    if (err != ACL_SUCCESS &&
        __atomic_load_n(&s->state->error, __ATOMIC_ACQUIRE) == ACL_SUCCESS) {
        __atomic_store_n(&s->state->error_seq, seq, __ATOMIC_RELAXED);
        __atomic_store_n(&s->state->error, err, __ATOMIC_RELEASE);
    }
    /* seq_cst pairs with the waiter's increment of `waiters`: either we see it,
     * or it sees the new `done` before sleeping. */
    __atomic_store_n(&s->state->done, seq, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&s->state->waiters, __ATOMIC_SEQ_CST))
        emu_futex_wake(&s->state->done, INT32_MAX);
}

static gpointer stream_worker(gpointer data)
{
    EngineStream *s = data;
    g_mutex_lock(&s->lock);
    for (;;) {
        while (g_queue_is_empty(&s->queue) && !s->stopping)
            g_cond_wait(&s->cond, &s->lock);
        QueuedTask *q = g_queue_pop_head(&s->queue);
        if (!q)
            break;      /* stopping and drained */
        bool drop = s->drop;
        g_mutex_unlock(&s->lock);
        int err = drop ? ACL_SUCCESS : engine_run_task(&q->task, s->resolve, s->opaque);
        publish(s, q->seq, err);
        g_free(q);
        g_mutex_lock(&s->lock);
    }
    g_mutex_unlock(&s->lock);
    return NULL;
}

EngineStream *engine_stream_new(int device, EmuStreamState *state, EngineResolve resolve,
                                void *opaque)
{
    EngineStream *s = g_new0(EngineStream, 1);
    s->device = device;
    s->state = state;
    s->resolve = resolve;
    s->opaque = opaque;
    g_mutex_init(&s->lock);
    g_cond_init(&s->cond);
    g_queue_init(&s->queue);
    s->last_seq = __atomic_load_n(&state->done, __ATOMIC_ACQUIRE);
    GError *err = NULL;
    s->worker = g_thread_try_new("npu-stream", stream_worker, s, &err);
    if (!s->worker) {
        g_error_free(err);
        g_mutex_clear(&s->lock);
        g_cond_clear(&s->cond);
        g_free(s);
        return NULL;
    }
    return s;
}

bool engine_stream_submit(EngineStream *s, const EmuTask *t, uint32_t *seq)
{
    g_mutex_lock(&s->lock);
    if (g_queue_get_length(&s->queue) >= ENGINE_QUEUE_DEPTH) {
        g_mutex_unlock(&s->lock);
        return false;
    }
    QueuedTask *q = g_new(QueuedTask, 1);
    q->task = *t;
    /* Read the number under the lock: once it is released the worker may run
     * and free the task. */
    *seq = q->seq = ++s->last_seq;
    g_queue_push_tail(&s->queue, q);
    g_cond_signal(&s->cond);
    g_mutex_unlock(&s->lock);
    return true;
}

uint32_t engine_stream_last(EngineStream *s)
{
    g_mutex_lock(&s->lock);
    uint32_t seq = s->last_seq;
    g_mutex_unlock(&s->lock);
    return seq;
}

void engine_stream_destroy(EngineStream *s, bool force)
{
    if (!s)
        return;
    g_mutex_lock(&s->lock);
    s->stopping = true;
    s->drop = force;
    g_cond_signal(&s->cond);
    g_mutex_unlock(&s->lock);
    g_thread_join(s->worker);
    g_queue_clear(&s->queue);
    g_mutex_clear(&s->lock);
    g_cond_clear(&s->cond);
    g_free(s);
}

int engine_stream_device(const EngineStream *s)
{
    return s->device;
}
