/*
 * engine.c - stream workers.
 */
#include "engine.h"

#include <glib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "acl/acl_base.h"
#include "event.h"
#include "notify.h"
#include "npuemu/futex.h"
#include "reduce.h"

typedef struct QueuedTask {
    EmuTask task;
    uint32_t seq;
    void *obj;              /* referenced synchronisation object, or NULL */
} QueuedTask;

struct EngineStream {
    int device;
    EmuStreamState *state;
    uint32_t *doorbell;     /* the channel's cb_doorbell, or NULL */
    EngineResolve resolve;
    void *opaque;
    GMutex lock;
    GCond cond;
    GQueue queue;           /* QueuedTask * */
    uint32_t last_seq;
    int pending;            /* tasks queued (atomic: the idle worker polls it) */
    bool sleeping;          /* the worker waits on cond: a submission must signal */
    bool stopping;
    bool drop;
    int cancel;             /* interrupts a wait: forced destroy, abort, stop */
    bool stop_on_failure;
    EngineGroup *group;     /* the context's streams in stop mode, or NULL */
    bool failed;            /* stopped by a failure: drops everything */
    uint32_t abort_upto;    /* abort: tasks up to this number are dropped */
    bool running_cancelled; /* the task running now was interrupted by abort / stop */
    bool running;           /* a task is running now */
    bool running_waits;     /* ... and it waits (only such a task can be interrupted) */
    uint32_t *wait_word;    /* the futex a STREAM_WAIT sleeps on, to wake it */
    GThread *worker;
};

/* An idle worker polls its queue this long before it sleeps on its condition. */
#define ENGINE_IDLE_SPIN_NS 30000ull
/* A wait on a futex looks at the stream's cancel flag this often. */
#define CANCEL_SLICE_NS 50000000ll

/* ---- value waits: woken by the engine's writes, and checked every slice ---- */

static GMutex value_lock;
static GCond value_cond;
static int value_waiters;

/* Device memory changed: a task wrote it. */
static void value_changed(void)
{
    if (!__atomic_load_n(&value_waiters, __ATOMIC_ACQUIRE))
        return;
    g_mutex_lock(&value_lock);
    g_cond_broadcast(&value_cond);
    g_mutex_unlock(&value_lock);
}

/* Host copies (aclrtMemcpy through the client's own mapping) wake no one, so a
 * waiter also looks again after a short, growing pause. */
#define VALUE_SLICE_MIN_US 50
#define VALUE_SLICE_MAX_US 2000

/* One side of a transfer: the piece of memory it resolved last, reused while
 * the transfer stays inside it. */
typedef struct Side {
    EngineResolve resolve;
    void *opaque;
    int device;
    uint32_t access;
    uint64_t end;       /* the side's footprint ends here: resolve up to it */
    uint64_t va;
    uint64_t len;
    uint8_t *host;
    MemObj *ref;
} Side;

static Side side_new(EngineResolve resolve, void *opaque, int device, uint32_t access,
                     uint64_t start, uint64_t span)
{
    return (Side){ .resolve = resolve, .opaque = opaque, .device = device, .access = access,
                   .end = start + span };
}

/* Host address of va; *n is cut to the bytes contiguous from it.  NULL: fault. */
static uint8_t *side_get(Side *s, uint64_t va, uint64_t *n)
{
    if (!s->ref || va < s->va || va - s->va >= s->len) {
        memobj_unref(s->ref);
        s->ref = NULL;
        uint64_t len = s->end > va ? s->end - va : *n;
        uint8_t *p = s->resolve(s->opaque, s->device, va, &len, s->access, &s->ref);
        if (!p)
            return NULL;
        s->va = va;
        s->len = len;
        s->host = p;
    }
    uint64_t avail = s->len - (va - s->va);
    if (*n > avail)
        *n = avail;
    return s->host + (va - s->va);
}

static void side_done(Side *s)
{
    memobj_unref(s->ref);
    s->ref = NULL;
}

/* True when all of [va, va + n) is accessible: a task checks its footprint
 * first, so that a fault leaves the memory as it was. */
static bool side_check(Side *s, uint64_t va, uint64_t n)
{
    while (n > 0) {
        uint64_t c = n;
        if (!side_get(s, va, &c))
            return false;
        va += c;
        n -= c;
    }
    return true;
}

/* Large copies: a task cut into pieces (2 MiB handles of a VMM range, say)
 * would make memmove use ordinary stores for each piece, where one memmove
 * of the whole would have streamed past the cache.  Streaming stores keep the
 * bandwidth of one big copy; overlapping ranges fall back to memmove. */
#define STREAM_MIN (4ull << 20)

static void copy_piece(uint8_t *dst, const uint8_t *src, uint64_t n, bool stream)
{
#ifdef __SSE2__
    if (stream && (dst + n <= src || src + n <= dst)) {
        while (((uintptr_t)dst & 15) && n) {
            *dst++ = *src++;
            n--;
        }
        __m128i *d = (__m128i *)(void *)dst;
        const __m128i *s = (const __m128i *)(const void *)src;
        uint64_t blocks = n / 64;
        for (uint64_t i = 0; i < blocks; i++, d += 4, s += 4) {
            __m128i a = _mm_loadu_si128(s), b = _mm_loadu_si128(s + 1);
            __m128i c = _mm_loadu_si128(s + 2), e = _mm_loadu_si128(s + 3);
            _mm_stream_si128(d, a);
            _mm_stream_si128(d + 1, b);
            _mm_stream_si128(d + 2, c);
            _mm_stream_si128(d + 3, e);
        }
        _mm_sfence();
        memcpy(d, s, n % 64);
        return;
    }
#else
    (void)stream;
#endif
    memmove(dst, src, n);
}

static bool copy_bytes(Side *d, Side *s, uint64_t dva, uint64_t sva, uint64_t n)
{
    bool stream = n >= STREAM_MIN;
    while (n > 0) {
        uint64_t dn = n, sn = n;
        uint8_t *dp = side_get(d, dva, &dn);
        uint8_t *sp = dp ? side_get(s, sva, &sn) : NULL;
        if (!sp)
            return false;
        uint64_t c = dn < sn ? dn : sn;
        copy_piece(dp, sp, c, stream);
        dva += c;
        sva += c;
        n -= c;
    }
    return true;
}

/* Fills n bytes from dva with the 4-byte pattern v (a byte pattern is v with
 * four equal bytes); the pattern's phase follows the byte offset. */
static bool fill_bytes(Side *d, uint64_t dva, uint64_t n, uint32_t v)
{
    uint64_t done = 0;
    while (done < n) {
        uint64_t c = n - done;
        uint8_t *p = side_get(d, dva + done, &c);
        if (!p)
            return false;
        unsigned phase = (unsigned)(done % 4);
        uint32_t w = phase ? (v >> (8 * phase)) | (v << (32 - 8 * phase)) : v;
        uint8_t pat[4];
        memcpy(pat, &w, 4);
        uint64_t i = 0;
        if (pat[0] == pat[1] && pat[1] == pat[2] && pat[2] == pat[3]) {
            memset(p, pat[0], c);
            i = c;
        }
        for (; i + 4 <= c; i += 4)
            memcpy(p + i, pat, 4);
        for (; i < c; i++)
            p[i] = pat[i % 4];
        done += c;
    }
    return true;
}

/* A 2D copy resolves each side's footprint as it goes, reusing every piece
 * for all the rows inside it: one descriptor for any height. */
static int run_memcpy2d(const EmuTask *t, int device, EngineResolve resolve, void *opaque)
{
    uint64_t dspan, sspan;
    if (!emu_span_2d(t->size, t->height, t->dpitch, &dspan) ||
        !emu_span_2d(t->size, t->height, t->spitch, &sspan))
        return ACL_ERROR_RT_PARAM_INVALID;
    if (dspan == 0)
        return ACL_SUCCESS;
    Side d = side_new(resolve, opaque, device, ENGINE_WRITE, t->dst, dspan);
    Side s = side_new(resolve, opaque, device, ENGINE_READ, t->src, sspan);
    bool ok = side_check(&d, t->dst, dspan) && side_check(&s, t->src, sspan);
    if (ok && t->dpitch == t->size && t->spitch == t->size)
        ok = copy_bytes(&d, &s, t->dst, t->src, dspan);
    else
        for (uint64_t row = 0; ok && row < t->height; row++)
            ok = copy_bytes(&d, &s, t->dst + row * t->dpitch, t->src + row * t->spitch,
                            t->size);
    side_done(&d);
    side_done(&s);
    return ok ? ACL_SUCCESS : ACL_ERROR_RT_SYS_DMA;
}

/* The base address stored at `at` (device or pinned memory), read now. */
static bool load_base(uint64_t at, int device, EngineResolve resolve, void *opaque,
                      uint64_t *base)
{
    uint8_t buf[sizeof(*base)];
    Side s = side_new(resolve, opaque, device, ENGINE_READ, at, sizeof(buf));
    uint64_t got = 0;
    bool ok = true;
    while (ok && got < sizeof(buf)) {
        uint64_t n = sizeof(buf) - got;
        uint8_t *p = side_get(&s, at + got, &n);
        if ((ok = p != NULL)) {
            memcpy(buf + got, p, n);
            got += n;
        }
    }
    side_done(&s);
    memcpy(base, buf, sizeof(buf));
    return ok;
}

/* A copy whose bases may live in memory the device reads when the task runs
 * (aclrtMemcpyAsyncWithOffset); both ends must be memory of one device. */
static int run_memcpy_ptr(const EmuTask *t, int device, EngineResolve resolve, void *opaque)
{
    if (t->flags & ~(EMU_TASK_DST_INDIRECT | EMU_TASK_SRC_INDIRECT))
        return ACL_ERROR_RT_PARAM_INVALID;
    uint64_t dst = t->dst, src = t->src;
    if (((t->flags & EMU_TASK_DST_INDIRECT) &&
         !load_base(t->dst, device, resolve, opaque, &dst)) ||
        ((t->flags & EMU_TASK_SRC_INDIRECT) && !load_base(t->src, device, resolve, opaque, &src)))
        return ACL_ERROR_RT_SYS_DMA;
    dst += t->doff;
    src += t->soff;
    if (emu_va_device(dst) < 0 || emu_va_device(dst) != emu_va_device(src))
        return ACL_ERROR_RT_SYS_DMA;
    EmuTask copy = { .type = EMU_TASK_MEMCPY, .dst = dst, .src = src, .size = t->size };
    return engine_run_task(&copy, device, resolve, opaque);
}

/* Moves n bytes between a side and a host buffer (true: to the buffer). */
static bool side_io(Side *s, uint64_t va, uint8_t *buf, uint64_t n, bool read)
{
    while (n > 0) {
        uint64_t c = n;
        uint8_t *p = side_get(s, va, &c);
        if (!p)
            return false;
        if (read)
            memcpy(buf, p, c);
        else
            memcpy(p, buf, c);
        va += c;
        buf += c;
        n -= c;
    }
    return true;
}

/* aclrtReduceAsync: dst = dst op src, in chunks through two buffers so that
 * an element split across pages (or handles) is combined whole. */
#define REDUCE_CHUNK (64u << 10)

static int run_reduce(const EmuTask *t, int device, EngineResolve resolve, void *opaque)
{
    size_t es = reduce_elem_size(t->flags);
    if (!es || !reduce_kind_valid(t->value) || t->size % es)
        return ACL_ERROR_RT_PARAM_INVALID;
    Side d = side_new(resolve, opaque, device, ENGINE_READ | ENGINE_WRITE, t->dst, t->size);
    Side s = side_new(resolve, opaque, device, ENGINE_READ, t->src, t->size);
    bool ok = side_check(&d, t->dst, t->size) && side_check(&s, t->src, t->size);
    uint8_t *bd = ok ? g_malloc(REDUCE_CHUNK) : NULL, *bs = ok ? g_malloc(REDUCE_CHUNK) : NULL;
    for (uint64_t off = 0; ok && off < t->size; off += REDUCE_CHUNK) {
        uint64_t n = t->size - off < REDUCE_CHUNK ? t->size - off : REDUCE_CHUNK;
        ok = side_io(&s, t->src + off, bs, n, true) && side_io(&d, t->dst + off, bd, n, true);
        if (ok) {
            reduce_apply(t->value, t->flags, bd, bs, n / es);
            ok = side_io(&d, t->dst + off, bd, n, false);
        }
    }
    g_free(bd);
    g_free(bs);
    side_done(&d);
    side_done(&s);
    return ok ? ACL_SUCCESS : ACL_ERROR_RT_SYS_DMA;
}

int engine_run_task(const EmuTask *t, int device, EngineResolve resolve, void *opaque)
{
    if (t->type == EMU_TASK_MEMCPY2D)
        return run_memcpy2d(t, device, resolve, opaque);
    if (t->size == 0)
        return ACL_SUCCESS;
    if (t->type == EMU_TASK_MEMCPY_PTR)
        return run_memcpy_ptr(t, device, resolve, opaque);
    if (t->type == EMU_TASK_REDUCE)
        return run_reduce(t, device, resolve, opaque);
    if (t->type != EMU_TASK_MEMCPY && t->type != EMU_TASK_MEMSET && t->type != EMU_TASK_MEMSET32)
        return ACL_ERROR_RT_PARAM_INVALID;
    Side d = side_new(resolve, opaque, device, ENGINE_WRITE, t->dst, t->size);
    bool ok = side_check(&d, t->dst, t->size);
    switch (ok ? t->type : 0u) {
    case 0:
        break;
    case EMU_TASK_MEMCPY: {
        Side s = side_new(resolve, opaque, device, ENGINE_READ, t->src, t->size);
        ok = side_check(&s, t->src, t->size) && copy_bytes(&d, &s, t->dst, t->src, t->size);
        side_done(&s);
        break;
    }
    case EMU_TASK_MEMSET:
        ok = fill_bytes(&d, t->dst, t->size, (uint32_t)(t->value & 0xff) * 0x01010101u);
        break;
    default:    /* EMU_TASK_MEMSET32 */
        ok = fill_bytes(&d, t->dst, t->size, (uint32_t)t->value);
        break;
    }
    side_done(&d);
    return ok ? ACL_SUCCESS : ACL_ERROR_RT_SYS_DMA;
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

static bool is_event_task(uint32_t type)
{
    return type == EMU_TASK_EVENT_RECORD || type == EMU_TASK_EVENT_WAIT ||
           type == EMU_TASK_EVENT_RESET;
}

/* Tasks that wait for something else: abort, stop and failures interrupt them. */
static bool is_wait_task(uint32_t type)
{
    return type == EMU_TASK_NOTIFY_WAIT || type == EMU_TASK_EVENT_WAIT ||
           type == EMU_TASK_VALUE_WAIT || type == EMU_TASK_HOST_FUNC ||
           type == EMU_TASK_STREAM_WAIT;
}

static void sync_unref(QueuedTask *q)
{
    if (q->task.type == EMU_TASK_STREAM_WAIT)
        return;         /* obj is the other stream's state, owned by the session */
    if (is_event_task(q->task.type))
        event_unref(q->obj);
    else
        notify_unref(q->obj);
}

static bool value_met(uint64_t cur, uint64_t value, uint32_t cmp)
{
    switch (cmp) {
    case 0: return (int64_t)(cur - value) >= 0;    /* ACL_STREAM_WAIT_VALUE_GEQ */
    case 1: return cur == value;                   /* EQ */
    case 2: return (cur & value) != 0;             /* AND */
    default: return ~(cur | value) != 0;           /* NOR */
    }
}

/* The 64-bit word at addr, read atomically; false when not readable. */
static bool value_load(EngineStream *s, uint64_t addr, uint64_t *out)
{
    uint64_t len = 8;
    MemObj *ref = NULL;
    uint8_t *p = s->resolve(s->opaque, s->device, addr, &len, ENGINE_READ, &ref);
    if (p && len >= 8)
        *out = __atomic_load_n((uint64_t *)(void *)p, __ATOMIC_ACQUIRE);
    memobj_unref(ref);
    return p && len >= 8;
}

static int run_value_write(EngineStream *s, const EmuTask *t)
{
    uint64_t len = 8;
    MemObj *ref = NULL;
    uint8_t *p = s->resolve(s->opaque, s->device, t->dst, &len, ENGINE_WRITE, &ref);
    bool ok = p && len >= 8;
    if (ok)
        __atomic_store_n((uint64_t *)(void *)p, t->value, __ATOMIC_RELEASE);
    memobj_unref(ref);
    return ok ? ACL_SUCCESS : ACL_ERROR_RT_SYS_DMA;
}

static int run_value_wait(EngineStream *s, const EmuTask *t)
{
    uint64_t cur = 0, slice = VALUE_SLICE_MIN_US;
    for (;;) {
        if (!value_load(s, t->dst, &cur))
            return ACL_ERROR_RT_SYS_DMA;
        if (value_met(cur, t->value, t->flags))
            return ACL_SUCCESS;
        if (__atomic_load_n(&s->cancel, __ATOMIC_ACQUIRE))
            return ACL_SUCCESS;     /* the stream is going */
        g_mutex_lock(&value_lock);
        __atomic_add_fetch(&value_waiters, 1, __ATOMIC_ACQ_REL);
        g_cond_wait_until(&value_cond, &value_lock,
                          g_get_monotonic_time() + (gint64)slice);
        __atomic_sub_fetch(&value_waiters, 1, __ATOMIC_ACQ_REL);
        g_mutex_unlock(&value_lock);
        slice = slice * 2 < VALUE_SLICE_MAX_US ? slice * 2 : VALUE_SLICE_MAX_US;
    }
}

/* A host callback: publish it, wake the client's callback thread, wait until
 * the client says it ran (checking every 50 ms whether the stream is going). */
static int run_host_func(EngineStream *s, uint32_t seq)
{
    if (!s->doorbell)
        return ACL_SUCCESS;
    __atomic_store_n(&s->state->cb_seq, seq, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(s->doorbell, 1, __ATOMIC_SEQ_CST);
    emu_futex_wake(s->doorbell, INT32_MAX);
    for (;;) {
        uint32_t done = __atomic_load_n(&s->state->cb_done, __ATOMIC_ACQUIRE);
        if (done == seq)
            break;
        if (__atomic_load_n(&s->cancel, __ATOMIC_ACQUIRE))
            break;
        emu_futex_wait(&s->state->cb_done, done, CANCEL_SLICE_NS);
    }
    __atomic_store_n(&s->state->cb_seq, 0, __ATOMIC_RELEASE);
    return ACL_SUCCESS;
}

struct EngineGroup {
    GMutex lock;            /* taken before a member's lock */
    GPtrArray *members;     /* EngineStream * */
    int failed;             /* the first failure of a member, or 0 */
    int refs;               /* the session's table, and a worker spreading a failure */
};

static void cancel_running(EngineStream *s);

/* Stopped by its group's failure: drops what is queued and interrupts a task
 * that waits (lock held). */
static void stream_fail(EngineStream *s, int err)
{
    if (!s->stop_on_failure || s->failed)
        return;
    s->failed = true;
    __atomic_store_n(&s->state->stopped, err, __ATOMIC_RELEASE);
    cancel_running(s);
}

/* A member failed: every stream of the context stops ("停止执行该Context中所有
 * Stream上的任务"). */
static void group_fail(EngineGroup *g, EngineStream *from, int err)
{
    g_mutex_lock(&g->lock);
    if (g->failed == ACL_SUCCESS) {
        g->failed = err;
        for (guint i = 0; i < g->members->len; i++) {
            EngineStream *m = g->members->pdata[i];
            if (m == from)
                continue;
            g_mutex_lock(&m->lock);
            stream_fail(m, err);
            g_mutex_unlock(&m->lock);
            /* A host callback waits on its futex: wake it to see the cancel. */
            emu_futex_wake(&m->state->cb_done, INT32_MAX);
        }
    }
    g_mutex_unlock(&g->lock);
}

/* Until the other stream (its shared state in obj) has run task `size`: a
 * futex wait on its `done`, as a client waits, looking at the cancel flag
 * between slices.  The state lives in the client's channel, so a client can
 * only confuse its own streams' waits. */
static int run_stream_wait(EngineStream *s, const QueuedTask *q)
{
    EmuStreamState *st = q->obj;
    uint32_t seq = (uint32_t)q->task.size;
    g_mutex_lock(&s->lock);
    s->wait_word = &st->done;
    g_mutex_unlock(&s->lock);
    uint64_t spin_until = emu_now_ns() + ENGINE_IDLE_SPIN_NS;
    while (!emu_seq_reached(__atomic_load_n(&st->done, __ATOMIC_ACQUIRE), seq) &&
           emu_poll_step(spin_until))
        ;
    __atomic_add_fetch(&st->waiters, 1, __ATOMIC_SEQ_CST);
    for (;;) {
        uint32_t done = __atomic_load_n(&st->done, __ATOMIC_SEQ_CST);
        if (emu_seq_reached(done, seq) || __atomic_load_n(&s->cancel, __ATOMIC_ACQUIRE))
            break;
        emu_futex_wait(&st->done, done, CANCEL_SLICE_NS);
    }
    __atomic_sub_fetch(&st->waiters, 1, __ATOMIC_SEQ_CST);
    g_mutex_lock(&s->lock);
    s->wait_word = NULL;
    g_mutex_unlock(&s->lock);
    return ACL_SUCCESS;
}

/* A queued task: synchronisation tasks here, data tasks by engine_run_task. */
static int run_queued(EngineStream *s, QueuedTask *q)
{
    switch (q->task.type) {
    case EMU_TASK_NOTIFY_RECORD:
        notify_record(q->obj);
        return ACL_SUCCESS;
    case EMU_TASK_NOTIFY_WAIT: {
        int err = notify_wait(q->obj, q->task.size * 1000000000ull, &s->cancel);
        return err < 0 ? ACL_SUCCESS : err;    /* cancelled: the stream is going */
    }
    case EMU_TASK_EVENT_RECORD:
        event_record_ran(q->obj, q->task.size, emu_now_ns() / 1000);
        return ACL_SUCCESS;
    case EMU_TASK_EVENT_WAIT: {
        int err = event_wait(q->obj, q->task.size, q->task.height * 1000000000ull, &s->cancel);
        return err < 0 ? ACL_SUCCESS : err;
    }
    case EMU_TASK_EVENT_RESET:
        event_reset(q->obj);
        return ACL_SUCCESS;
    case EMU_TASK_VALUE_WRITE: {
        int err = run_value_write(s, &q->task);
        value_changed();
        return err;
    }
    case EMU_TASK_VALUE_WAIT:
        return run_value_wait(s, &q->task);
    case EMU_TASK_HOST_FUNC:
        return run_host_func(s, q->seq);
    case EMU_TASK_STREAM_WAIT:
        return run_stream_wait(s, q);
    default: {
        int err = engine_run_task(&q->task, s->device, s->resolve, s->opaque);
        value_changed();
        return err;
    }
    }
}

static gpointer stream_worker(gpointer data)
{
    EngineStream *s = data;
    g_mutex_lock(&s->lock);
    for (;;) {
        if (g_queue_is_empty(&s->queue) && !s->stopping) {
            /* Tasks come in bursts: look again for a moment before sleeping, so
             * that a task queued meanwhile costs its submitter no wake-up. */
            g_mutex_unlock(&s->lock);
            uint64_t until = emu_now_ns() + ENGINE_IDLE_SPIN_NS;
            while (!__atomic_load_n(&s->pending, __ATOMIC_ACQUIRE) &&
                   !__atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE) && emu_poll_step(until))
                ;
            g_mutex_lock(&s->lock);
        }
        while (g_queue_is_empty(&s->queue) && !s->stopping) {
            s->sleeping = true;
            g_cond_wait(&s->cond, &s->lock);
            s->sleeping = false;
        }
        QueuedTask *q = g_queue_pop_head(&s->queue);
        if (!q)
            break;      /* stopping and drained */
        __atomic_sub_fetch(&s->pending, 1, __ATOMIC_RELEASE);
        bool aborted = emu_seq_reached(s->abort_upto, q->seq) && s->abort_upto != 0;
        bool drop = s->drop || s->failed || aborted;
        s->running_cancelled = false;
        s->running = true;
        s->running_waits = is_wait_task(q->task.type);
        if (!s->drop)   /* an abort or stop interrupts only the task it met */
            __atomic_store_n(&s->cancel, 0, __ATOMIC_RELEASE);
        g_mutex_unlock(&s->lock);
        int err = drop ? ACL_SUCCESS : run_queued(s, q);
        g_mutex_lock(&s->lock);
        s->running = false;
        /* Interrupted: by abort / stop (107023, which the user asked for: not
         * a failure that stops the stream), or by a failure of its group. */
        bool interrupted = s->running_cancelled && !drop;
        if (interrupted)
            err = s->failed ? __atomic_load_n(&s->state->stopped, __ATOMIC_ACQUIRE)
                            : ACL_ERROR_RT_STREAM_ABORT;
        if (aborted)
            err = ACL_ERROR_RT_STREAM_ABORT;
        EngineGroup *spread = NULL;
        if (err != ACL_SUCCESS && s->stop_on_failure && !s->failed && !aborted &&
            !interrupted) {
            s->failed = true;
            __atomic_store_n(&s->state->stopped, err, __ATOMIC_RELEASE);
            /* The session may take the stream out of its group meanwhile. */
            if ((spread = s->group))
                g_atomic_int_inc(&spread->refs);
        }
        g_mutex_unlock(&s->lock);
        if (spread) {
            group_fail(spread, s, err);
            engine_group_unref(spread);
        }
        /* A dropped record still completes, so that nobody waits for it forever. */
        if (drop && q->task.type == EMU_TASK_EVENT_RECORD)
            event_record_ran(q->obj, q->task.size, emu_now_ns() / 1000);
        publish(s, q->seq, err);
        if (q->obj)
            sync_unref(q);
        g_free(q);
        g_mutex_lock(&s->lock);
    }
    g_mutex_unlock(&s->lock);
    return NULL;
}

EngineStream *engine_stream_new(int device, EmuStreamState *state, uint32_t *doorbell,
                                EngineResolve resolve, void *opaque)
{
    EngineStream *s = g_new0(EngineStream, 1);
    s->device = device;
    s->state = state;
    s->doorbell = doorbell;
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

bool engine_stream_submit(EngineStream *s, const EmuTask *t, void *obj, uint32_t *seq)
{
    g_mutex_lock(&s->lock);
    if (g_queue_get_length(&s->queue) >= ENGINE_QUEUE_DEPTH) {
        g_mutex_unlock(&s->lock);
        return false;
    }
    QueuedTask *q = g_new(QueuedTask, 1);
    q->task = *t;
    q->obj = obj;
    /* Read the number under the lock: once it is released the worker may run
     * and free the task. */
    *seq = q->seq = ++s->last_seq;
    g_queue_push_tail(&s->queue, q);
    __atomic_add_fetch(&s->pending, 1, __ATOMIC_RELEASE);
    if (s->sleeping)        /* a futex wake only when the worker sleeps */
        g_cond_signal(&s->cond);
    g_mutex_unlock(&s->lock);
    return true;
}

EngineGroup *engine_group_new(void)
{
    EngineGroup *g = g_new0(EngineGroup, 1);
    g_mutex_init(&g->lock);
    g->members = g_ptr_array_new();
    g->refs = 1;
    return g;
}

void engine_group_unref(EngineGroup *g)
{
    if (!g || !g_atomic_int_dec_and_test(&g->refs))
        return;
    g_ptr_array_free(g->members, TRUE);
    g_mutex_clear(&g->lock);
    g_free(g);
}

bool engine_group_empty(EngineGroup *g)
{
    g_mutex_lock(&g->lock);
    bool empty = g->members->len == 0;
    g_mutex_unlock(&g->lock);
    return empty;
}

/* Leaves its group (the session thread, which alone changes membership). */
static void group_leave(EngineStream *s)
{
    EngineGroup *g = s->group;
    if (!g)
        return;
    g_mutex_lock(&g->lock);
    g_ptr_array_remove_fast(g->members, s);
    g_mutex_lock(&s->lock);
    s->group = NULL;
    g_mutex_unlock(&s->lock);
    g_mutex_unlock(&g->lock);
}

void engine_stream_set_stop_on_failure(EngineStream *s, bool stop, EngineGroup *g)
{
    group_leave(s);
    if (stop && g) {
        g_mutex_lock(&g->lock);
        g_ptr_array_add(g->members, s);
    }
    g_mutex_lock(&s->lock);
    s->stop_on_failure = stop;
    if (stop && g) {
        s->group = g;
        if (g->failed != ACL_SUCCESS)
            stream_fail(s, g->failed);
    }
    g_mutex_unlock(&s->lock);
    if (stop && g)
        g_mutex_unlock(&g->lock);
}

int engine_stream_stopped(EngineStream *s)
{
    g_mutex_lock(&s->lock);
    int err = s->failed ? __atomic_load_n(&s->state->stopped, __ATOMIC_ACQUIRE) : 0;
    g_mutex_unlock(&s->lock);
    return err;
}

/* Interrupts the running task if it waits; a copy or a memset finishes. */
static void cancel_running(EngineStream *s)
{
    if (!s->running || !s->running_waits)
        return;
    s->running_cancelled = true;
    __atomic_store_n(&s->cancel, 1, __ATOMIC_RELEASE);
    if (s->wait_word)
        emu_futex_wake(s->wait_word, INT32_MAX);
}

void engine_stream_abort(EngineStream *s)
{
    g_mutex_lock(&s->lock);
    s->abort_upto = s->last_seq;
    cancel_running(s);
    g_mutex_unlock(&s->lock);
    /* A host callback waits on its futex: wake it to see the cancel. */
    emu_futex_wake(&s->state->cb_done, INT32_MAX);
}

void engine_stream_stop(EngineStream *s)
{
    g_mutex_lock(&s->lock);
    cancel_running(s);
    g_mutex_unlock(&s->lock);
    emu_futex_wake(&s->state->cb_done, INT32_MAX);
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
    group_leave(s);
    g_mutex_lock(&s->lock);
    __atomic_store_n(&s->stopping, true, __ATOMIC_RELEASE);
    s->drop = force;
    if (force) {
        __atomic_store_n(&s->cancel, 1, __ATOMIC_RELEASE);
        if (s->wait_word)
            emu_futex_wake(s->wait_word, INT32_MAX);
    }
    g_cond_signal(&s->cond);
    g_mutex_unlock(&s->lock);
    if (force)
        emu_futex_wake(&s->state->cb_done, INT32_MAX);
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
