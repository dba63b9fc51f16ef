/*
 * callback.c - host callbacks and operator timeouts (chapter 12):
 * aclrtLaunchHostFunc, aclrtLaunchCallback, aclrtSubscribeReport /
 * aclrtProcessReport / aclrtUnSubscribeReport, aclrtGetOpTimeOutInterval,
 * aclrtSetOpExecuteTimeOut[V2], aclrtGetOpExecuteTimeout.
 *
 * A callback is an EMU_TASK_HOST_FUNC task on the stream.  When the stream's
 * worker reaches it, it stores the task's number in the stream's
 * EmuStreamState.cb_seq, bumps the channel's cb_doorbell and waits until we
 * store that number in cb_done.  The launch call records (stream id, task
 * number) -> function in `pending`; one process-wide thread, started by the
 * first launch, sleeps on cb_doorbell, finds pending callbacks whose stream
 * published their number, and:
 *  - runs the function itself (aclrtLaunchHostFunc, and callbacks of a stream
 *    nobody subscribes to any more), then acknowledges;
 *  - or hands it to the queue of the thread subscribed to the stream
 *    (aclrtSubscribeReport), which runs it in aclrtProcessReport and then
 *    acknowledges; ACL_CALLBACK_NO_BLOCK is acknowledged before it is handed
 *    over, so the stream goes on at once.
 * Task numbers of a stream's EmuStreamState never repeat (a new stream on a
 * reused state continues from its `done`), so a callback the stream passed
 * without us (forced destroy, abort, stop on failure) is recognised by `done`
 * having reached its number and forgotten.
 *
 * Locking: cb.lock guards everything here.  It is never held while a user
 * function runs, and never taken with g_rt.lock inside it (aclFinalize takes
 * cb.lock under g_rt.lock).  The channel is only touched under cb.lock or by
 * the callback thread, and aclFinalize stops that thread and bumps `epoch`
 * before the channel is unmapped, so a late acknowledgement never writes into
 * an unmapped page.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <time.h>

#include "npuemu/futex.h"
#include "rt.h"

#define MAX_REPORT_THREADS 1024     /* documented limit of aclrtSubscribeReport */

typedef struct CbEntry {
    RtStream *s;
    RtContext *ctx;             /* the launching stream's context */
    uint32_t id;                /* its EmuStreamState */
    uint32_t seq;               /* the HOST_FUNC task's number */
    void (*fn)(void *);
    void *arg;
    bool host_func;             /* aclrtLaunchHostFunc: never goes to a subscriber */
    bool block;                 /* the stream waits until fn returned */
    bool acked;
    uint64_t epoch;
} CbEntry;

typedef struct CbSub {          /* a thread registered by aclrtSubscribeReport */
    uint64_t tid;
    int32_t device;             /* user id: one device per thread */
    uint32_t nstreams;
    GQueue ready;               /* CbEntry * handed to it, in order */
} CbSub;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;        /* a subscriber queue grew, or subscriptions changed */
    bool cond_ready;
    GHashTable *pending;        /* (id << 32 | seq) -> CbEntry *, not reached yet */
    GQueue orphans;             /* CbEntry * for the callback thread to run now */
    GHashTable *subs;           /* RtStream * -> CbSub * */
    GHashTable *threads;        /* thread id -> CbSub * */
    pthread_t thread;
    bool running;
    bool stop;
    uint64_t epoch;             /* bumped by aclFinalize */
} cb = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Operator execution timeout (aclrtSetOpExecuteTimeOut*), microseconds. */
#define OP_TIMEOUT_INTERVAL_US 4294967ull  /* 2^32 ns: 254 of them are the documented 1091 s */
#define OP_TIMEOUT_MAX_N 254ull
static uint64_t op_timeout_us = OP_TIMEOUT_INTERVAL_US * OP_TIMEOUT_MAX_N;

static inline gpointer key_of(uint32_t id, uint32_t seq)
{
    return (gpointer)(uintptr_t)((uint64_t)id << 32 | seq);
}

/* Called with cb.lock held. */
static void tables_init_locked(void)
{
    if (!cb.cond_ready) {
        pthread_condattr_t a;
        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(&cb.cond, &a);
        pthread_condattr_destroy(&a);
        cb.cond_ready = true;
    }
    if (!cb.pending) {
        cb.pending = g_hash_table_new(g_direct_hash, g_direct_equal);
        cb.subs = g_hash_table_new(g_direct_hash, g_direct_equal);
        cb.threads = g_hash_table_new(g_int64_hash, g_int64_equal);
        g_queue_init(&cb.orphans);
    }
}

static bool stream_gone(RtStream *s)
{
    return __atomic_load_n(&s->magic, __ATOMIC_ACQUIRE) == 0;
}

/* Called with cb.lock held: tells the stream its callback ran (or, for
 * NO_BLOCK, that it need not wait).  Nothing is written once aclFinalize
 * released the channel. */
static void ack_locked(CbEntry *e)
{
    if (e->acked)
        return;
    e->acked = true;
    if (e->epoch != cb.epoch || !g_rt.conn.states)
        return;
    EmuStreamState *st = &g_rt.conn.states[e->id];
    __atomic_store_n(&st->cb_done, e->seq, __ATOMIC_SEQ_CST);
    emu_futex_wake(&st->cb_done, INT32_MAX);
}

static void subs_drop(CbSub *sub)
{
    g_hash_table_remove(cb.threads, &sub->tid);
    g_queue_clear(&sub->ready);
    g_free(sub);
}

/* Called with cb.lock held: ends the subscription of s; the callbacks its
 * thread did not run yet go to the callback thread. */
static void unsubscribe_locked(RtStream *s, CbSub *sub)
{
    g_hash_table_remove(cb.subs, s);
    bool gone = stream_gone(s);
    for (GList *l = sub->ready.head; l;) {
        GList *next = l->next;
        CbEntry *e = l->data;
        if (e->s == s) {
            g_queue_delete_link(&sub->ready, l);
            if (gone)
                g_free(e);      /* destroyed with the stream: never runs */
            else
                g_queue_push_tail(&cb.orphans, e);
        }
        l = next;
    }
    if (--sub->nstreams == 0)
        subs_drop(sub);
    if (cb.cond_ready)
        pthread_cond_broadcast(&cb.cond);
}

/* Called with cb.lock held: forgets subscriptions of destroyed streams. */
static void subs_prune_locked(void)
{
    if (!cb.subs)
        return;
    GHashTableIter it;
    gpointer k, v;
    GPtrArray *gone = NULL;
    g_hash_table_iter_init(&it, cb.subs);
    while (g_hash_table_iter_next(&it, &k, &v))
        if (stream_gone(k)) {
            if (!gone)
                gone = g_ptr_array_new();
            g_ptr_array_add(gone, k);
        }
    for (unsigned i = 0; gone && i < gone->len; i++) {
        RtStream *s = g_ptr_array_index(gone, i);
        unsubscribe_locked(s, g_hash_table_lookup(cb.subs, s));
    }
    if (gone)
        g_ptr_array_free(gone, TRUE);
}

static void ring(void)
{
    if (!g_rt.conn.hdr)
        return;
    __atomic_add_fetch(&g_rt.conn.hdr->cb_doorbell, 1, __ATOMIC_SEQ_CST);
    emu_futex_wake(&g_rt.conn.hdr->cb_doorbell, INT32_MAX);
}

/* Called with cb.lock held: the next callback to run in the callback thread,
 * after handing every reached subscriber callback to its thread.  Forgets
 * callbacks their stream passed without us. */
static CbEntry *next_locked(void)
{
    CbEntry *run = g_queue_pop_head(&cb.orphans);
    if (run)
        return run;
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, cb.pending);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        CbEntry *e = v;
        EmuStreamState *st = &g_rt.conn.states[e->id];
        if (__atomic_load_n(&st->cb_seq, __ATOMIC_ACQUIRE) != e->seq) {
            if (emu_seq_reached(__atomic_load_n(&st->done, __ATOMIC_ACQUIRE), e->seq)) {
                g_hash_table_iter_remove(&it);      /* dropped by the stream */
                g_free(e);
            }
            continue;
        }
        g_hash_table_iter_remove(&it);
        CbSub *sub = e->host_func ? NULL : g_hash_table_lookup(cb.subs, e->s);
        if (sub && !stream_gone(e->s)) {
            if (!e->block)
                ack_locked(e);
            g_queue_push_tail(&sub->ready, e);
            pthread_cond_broadcast(&cb.cond);
            continue;
        }
        if (!run)
            run = e;
        else
            g_queue_push_tail(&cb.orphans, e);
    }
    return run;
}

static void *callback_thread(void *arg)
{
    uint64_t epoch = (uintptr_t)arg;    /* a new session (aclInit again) has its own thread */
    uint32_t *bell = &g_rt.conn.hdr->cb_doorbell;
    pthread_mutex_lock(&cb.lock);
    for (;;) {
        if (cb.stop || cb.epoch != epoch)
            break;
        uint32_t seen = __atomic_load_n(bell, __ATOMIC_SEQ_CST);
        CbEntry *e = next_locked();
        if (!e) {
            pthread_mutex_unlock(&cb.lock);
            emu_futex_wait(bell, seen, -1);
            pthread_mutex_lock(&cb.lock);
            continue;
        }
        pthread_mutex_unlock(&cb.lock);
        /* The function may call aclrt functions: it runs in the stream's
         * context, with no lock of ours held. */
        rt_set_current_ctx(e->ctx);
        e->fn(e->arg);
        rt_set_current_ctx(NULL);
        pthread_mutex_lock(&cb.lock);
        ack_locked(e);
        g_free(e);
    }
    pthread_mutex_unlock(&cb.lock);
    return NULL;
}

/* Called with cb.lock held: starts the callback thread once. */
static aclError thread_start_locked(const char *api)
{
    if (cb.running)
        return ACL_SUCCESS;
    cb.stop = false;
    int rc = pthread_create(&cb.thread, NULL, callback_thread, (void *)(uintptr_t)cb.epoch);
    if (rc != 0)
        return rt_fail(ACL_ERROR_RT_RESOURCE_ALLOC_FAIL, api,
                       "cannot start the callback thread: %s", strerror(rc));
    pthread_setname_np(cb.thread, "acl-callback");
    cb.running = true;
    return ACL_SUCCESS;
}

/* Queues a HOST_FUNC task on s and returns its number. */
static aclError submit_host_func(RtStream *s, uint32_t *seq)
{
    EmuTask t = { .type = EMU_TASK_HOST_FUNC };
    return rt_stream_submit_seq(s, &t, seq);
}

static aclError launch(const char *api, aclrtStream stream, void (*fn)(void *), void *arg,
                       bool host_func, bool block)
{
    aclError err;
    RtStream *s = rt_stream_resolve(stream, api, &err);
    if (!s)
        return err;
    pthread_mutex_lock(&cb.lock);
    tables_init_locked();
    if (!host_func) {
        subs_prune_locked();
        if (!g_hash_table_contains(cb.subs, s)) {
            pthread_mutex_unlock(&cb.lock);
            return rt_fail(ACL_ERROR_RT_STREAM_NO_CB_REG, api,
                           "no thread is subscribed to the stream: call aclrtSubscribeReport "
                           "first (or use aclrtLaunchHostFunc)");
        }
    }
    err = thread_start_locked(api);
    pthread_mutex_unlock(&cb.lock);
    if (err != ACL_SUCCESS)
        return err;
    uint32_t seq = 0;
    err = submit_host_func(s, &seq);
    if (err == ACL_ERROR_RT_FEATURE_NOT_SUPPORT)
        return err;     /* rt_stream_submit said why */
    if (err != ACL_SUCCESS)
        return rt_fail(err, api, "cannot queue the callback on the stream");
    CbEntry *e = g_new0(CbEntry, 1);
    *e = (CbEntry){ .s = s, .ctx = s->ctx, .id = s->id, .seq = seq, .fn = fn, .arg = arg,
                    .host_func = host_func, .block = block };
    pthread_mutex_lock(&cb.lock);
    e->epoch = cb.epoch;
    g_hash_table_insert(cb.pending, key_of(e->id, e->seq), e);
    pthread_mutex_unlock(&cb.lock);
    ring();     /* the stream may have reached it before it was in the table */
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtLaunchHostFunc(aclrtStream stream, aclrtHostFunc fn, void *args)
{
    RT_CHECK_INIT();
    if (!fn)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "fn must not be NULL");
    return launch(__func__, stream, fn, args, true, true);
}

RT_EXPORT aclError aclrtLaunchCallback(aclrtCallback fn, void *userData,
                                       aclrtCallbackBlockType blockType, aclrtStream stream)
{
    RT_CHECK_INIT();
    if (!fn)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "fn must not be NULL");
    if (blockType != ACL_CALLBACK_NO_BLOCK && blockType != ACL_CALLBACK_BLOCK)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "blockType %d: use ACL_CALLBACK_NO_BLOCK (0) or ACL_CALLBACK_BLOCK (1)",
                       (int)blockType);
    return launch(__func__, stream, fn, userData, false, blockType == ACL_CALLBACK_BLOCK);
}

RT_EXPORT aclError aclrtSubscribeReport(uint64_t threadId, aclrtStream stream)
{
    RT_CHECK_INIT();
    aclError err;
    RtStream *s = rt_stream_resolve(stream, __func__, &err);
    if (!s)
        return err;
    pthread_mutex_lock(&cb.lock);
    tables_init_locked();
    subs_prune_locked();
    CbSub *owner = g_hash_table_lookup(cb.subs, s);
    if (owner) {
        uint64_t other = owner->tid;
        pthread_mutex_unlock(&cb.lock);
        return RT_FAIL(ACL_ERROR_RT_STREAM_SUBSCRIBE,
                       "the stream is already subscribed by thread %#llx%s",
                       (unsigned long long)other,
                       other == threadId ? " (this one)" : "; one thread per stream");
    }
    CbSub *sub = g_hash_table_lookup(cb.threads, &threadId);
    if (sub && sub->device != s->device) {
        int32_t dev = sub->device;
        pthread_mutex_unlock(&cb.lock);
        return RT_FAIL(ACL_ERROR_RT_THREAD_SUBSCRIBE,
                       "thread %#llx already serves streams of device %d; a thread serves "
                       "one device (this stream is on device %d)",
                       (unsigned long long)threadId, dev, s->device);
    }
    if (!sub && g_hash_table_size(cb.threads) >= MAX_REPORT_THREADS) {
        pthread_mutex_unlock(&cb.lock);
        return RT_FAIL(ACL_ERROR_RT_OVER_LIMIT,
                       "%d threads are subscribed already (the limit)", MAX_REPORT_THREADS);
    }
    if (!sub) {
        sub = g_new0(CbSub, 1);
        sub->tid = threadId;
        sub->device = s->device;
        g_queue_init(&sub->ready);
        g_hash_table_insert(cb.threads, &sub->tid, sub);
    }
    sub->nstreams++;
    g_hash_table_insert(cb.subs, s, sub);
    pthread_mutex_unlock(&cb.lock);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtUnSubscribeReport(uint64_t threadId, aclrtStream stream)
{
    RT_CHECK_INIT();
    aclError err;
    RtStream *s = rt_stream_resolve(stream, __func__, &err);
    if (!s)
        return err;
    pthread_mutex_lock(&cb.lock);
    tables_init_locked();
    CbSub *sub = g_hash_table_lookup(cb.subs, s);
    if (!sub) {
        pthread_mutex_unlock(&cb.lock);
        return RT_FAIL(ACL_ERROR_RT_STREAM_SUBSCRIBE, "no thread is subscribed to the stream");
    }
    if (sub->tid != threadId) {
        uint64_t other = sub->tid;
        pthread_mutex_unlock(&cb.lock);
        return RT_FAIL(ACL_ERROR_RT_THREAD_SUBSCRIBE,
                       "the stream is subscribed by thread %#llx, not %#llx",
                       (unsigned long long)other, (unsigned long long)threadId);
    }
    unsubscribe_locked(s, sub);
    pthread_mutex_unlock(&cb.lock);
    ring();     /* its unprocessed callbacks now run in the callback thread */
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtProcessReport(int32_t timeout)
{
    RT_CHECK_INIT();
    if (timeout < -1 || timeout == 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "timeout %d: use -1 (forever) or > 0 ms",
                       timeout);
    uint64_t tid = (uint64_t)pthread_self();
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    if (timeout > 0) {
        until.tv_sec += timeout / 1000;
        until.tv_nsec += (long)(timeout % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
    }
    pthread_mutex_lock(&cb.lock);
    tables_init_locked();
    subs_prune_locked();
    GQueue todo = G_QUEUE_INIT;
    for (;;) {
        CbSub *sub = g_hash_table_lookup(cb.threads, &tid);
        if (!sub) {
            pthread_mutex_unlock(&cb.lock);
            return RT_FAIL(ACL_ERROR_RT_THREAD_SUBSCRIBE,
                           "this thread (%#llx) is subscribed to no stream: call "
                           "aclrtSubscribeReport first", (unsigned long long)tid);
        }
        if (!g_queue_is_empty(&sub->ready)) {
            todo = sub->ready;
            g_queue_init(&sub->ready);
            break;
        }
        int rc = timeout < 0 ? pthread_cond_wait(&cb.cond, &cb.lock)
                             : pthread_cond_timedwait(&cb.cond, &cb.lock, &until);
        if (rc == ETIMEDOUT) {
            sub = g_hash_table_lookup(cb.threads, &tid);
            if (sub && !g_queue_is_empty(&sub->ready))
                continue;
            pthread_mutex_unlock(&cb.lock);
            if (!sub)
                return RT_FAIL(ACL_ERROR_RT_THREAD_SUBSCRIBE,
                               "this thread (%#llx) was unsubscribed while it waited",
                               (unsigned long long)tid);
            return RT_FAIL(ACL_ERROR_RT_REPORT_TIMEOUT,
                           "no callback reached this thread within %d ms", timeout);
        }
    }
    pthread_mutex_unlock(&cb.lock);
    CbEntry *e;
    while ((e = g_queue_pop_head(&todo))) {
        e->fn(e->arg);
        pthread_mutex_lock(&cb.lock);
        ack_locked(e);
        pthread_mutex_unlock(&cb.lock);
        g_free(e);
    }
    return ACL_SUCCESS;
}

/* ---- aclFinalize and fork ---- */

void rt_callback_before_finalize(void)
{
    pthread_mutex_lock(&cb.lock);
    /* Inside a host function the drain would wait for that very function. */
    bool active = cb.running && !pthread_equal(cb.thread, pthread_self());
    if (active && cb.subs) {
        /* Nobody may be left to process a subscriber's blocking callback: the
         * callback thread runs whatever the subscribers did not take yet. */
        GHashTableIter it;
        gpointer k, v;
        GPtrArray *all = g_ptr_array_new();
        g_hash_table_iter_init(&it, cb.subs);
        while (g_hash_table_iter_next(&it, &k, &v))
            g_ptr_array_add(all, k);
        for (unsigned i = 0; i < all->len; i++) {
            RtStream *s = g_ptr_array_index(all, i);
            unsubscribe_locked(s, g_hash_table_lookup(cb.subs, s));
        }
        g_ptr_array_free(all, TRUE);
    }
    pthread_mutex_unlock(&cb.lock);
    if (active) {
        ring();
        /* Run the callbacks still queued before aclFinalize takes g_rt.lock:
         * a callback may call aclrt functions that need it. */
        rt_streams_drain();
    }
}

void rt_callback_release(void)
{
    pthread_mutex_lock(&cb.lock);
    cb.epoch++;
    bool join = cb.running;
    pthread_t t = cb.thread;
    cb.stop = true;
    cb.running = false;
    pthread_mutex_unlock(&cb.lock);
    if (join) {
        ring();
        if (pthread_equal(t, pthread_self()))
            pthread_detach(t);  /* aclFinalize inside a host function */
        else
            pthread_join(t, NULL);
    }
    pthread_mutex_lock(&cb.lock);
    if (cb.pending) {
        GHashTableIter it;
        gpointer v;
        g_hash_table_iter_init(&it, cb.pending);
        while (g_hash_table_iter_next(&it, NULL, &v))
            g_free(v);
        g_hash_table_destroy(cb.pending);
        CbEntry *e;
        while ((e = g_queue_pop_head(&cb.orphans)))
            g_free(e);
        GHashTableIter ti;
        g_hash_table_iter_init(&ti, cb.threads);
        while (g_hash_table_iter_next(&ti, NULL, &v)) {
            CbSub *sub = v;
            while ((e = g_queue_pop_head(&sub->ready)))
                g_free(e);
            g_free(sub);
        }
        g_hash_table_destroy(cb.threads);
        g_hash_table_destroy(cb.subs);
        cb.pending = cb.subs = cb.threads = NULL;
    }
    if (cb.cond_ready)
        pthread_cond_broadcast(&cb.cond);
    pthread_mutex_unlock(&cb.lock);
}

void rt_callback_forget_after_fork(void)
{
    /* The thread and the parent's callbacks stay in the parent (tables leaked). */
    pthread_mutex_init(&cb.lock, NULL);
    cb.cond_ready = false;
    cb.pending = cb.subs = cb.threads = NULL;
    g_queue_init(&cb.orphans);
    cb.running = false;
    cb.stop = false;
    cb.epoch++;
}

/* ---- operator execution timeout ---- */

RT_EXPORT aclError aclrtGetOpTimeOutInterval(uint64_t *interval)
{
    RT_CHECK_INIT();
    if (!interval)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "interval must not be NULL");
    *interval = OP_TIMEOUT_INTERVAL_US;
    return ACL_SUCCESS;
}

/* us rounded up to a whole number of intervals in [1, 254]; 0 is the maximum. */
static uint64_t op_timeout_round(uint64_t us)
{
    if (us == 0)
        return OP_TIMEOUT_INTERVAL_US * OP_TIMEOUT_MAX_N;
    uint64_t n = us / OP_TIMEOUT_INTERVAL_US + (us % OP_TIMEOUT_INTERVAL_US != 0);
    if (n > OP_TIMEOUT_MAX_N)
        n = OP_TIMEOUT_MAX_N;
    return n * OP_TIMEOUT_INTERVAL_US;
}

RT_EXPORT aclError aclrtSetOpExecuteTimeOut(uint32_t timeout)
{
    RT_CHECK_INIT();
    __atomic_store_n(&op_timeout_us, op_timeout_round((uint64_t)timeout * 1000000u),
                     __ATOMIC_RELAXED);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtSetOpExecuteTimeOutV2(uint64_t timeout, uint64_t *actualTimeout)
{
    RT_CHECK_INIT();
    if (!actualTimeout)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "actualTimeout must not be NULL");
    uint64_t us = op_timeout_round(timeout);
    __atomic_store_n(&op_timeout_us, us, __ATOMIC_RELAXED);
    *actualTimeout = us;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtGetOpExecuteTimeout(uint32_t *const timeoutMs)
{
    RT_CHECK_INIT();
    if (!timeoutMs)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "timeoutMs must not be NULL");
    *timeoutMs = (uint32_t)(__atomic_load_n(&op_timeout_us, __ATOMIC_RELAXED) / 1000);
    return ACL_SUCCESS;
}
