/*
 * test_callback.c - integration tests of host callbacks and operator timeouts
 * (chapter 12: aclrtLaunchHostFunc, aclrtLaunchCallback, aclrtSubscribeReport,
 * aclrtProcessReport, aclrtUnSubscribeReport, aclrtGetOpTimeOutInterval,
 * aclrtSetOpExecuteTimeOut[V2|WithMs], aclrtGetOpExecuteTimeout) against a
 * real npu-emu (profile a2).
 *
 * Ordering is checked by data: a host function that sleeps and then fills a
 * pinned buffer is followed on its stream by an asynchronous copy of that
 * buffer to the device, which would copy the old bytes if the stream did not
 * wait.  NO_BLOCK is checked by a task that completes while the callback
 * still sleeps; aclrtProcessReport by the thread that ran the callback.
 * Finalisation and fork run in children.  Every expected failure is checked
 * with its exact code, last error and message (acl_check.h).
 */
#define _GNU_SOURCE
#include <CUnit/Basic.h>
#include <glib.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acl/acl.h"
#include "acl_check.h"
#include "harness.h"

#define N (1024 * 1024)

static TestEmu g_emu;
static aclrtContext g_ctx0;     /* device 0's default context */

static bool emu_alive(void)
{
    return emu_running(&g_emu);
}

#define TEST(name) EMU_TEST(name, emu_alive)

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t self_id(void)
{
    return (uint64_t)pthread_self();
}

static void child_check(void (*fn)(void), const char *name)
{
    int pid = 0;
    int st = run_checked_child(fn, &pid);
    CHECKF(st == 0, "child '%s' ended with status %d", name, st);
}

/* ---- callback bodies ---- */

typedef struct Rec {
    int ran;                    /* atomically incremented when fn returns */
    int started;
    int sleep_ms;
    pthread_t tid;
    aclrtContext ctx;           /* the current context inside the callback */
    aclError ctx_err;
    uint8_t *fill;              /* filled with `value` after the sleep, if set */
    size_t fill_len;
    uint8_t value;
    int *order;                 /* order[(*pos)++] = tag */
    int *pos;
    int tag;
} Rec;

static void record(void *arg)
{
    Rec *r = arg;
    __atomic_store_n(&r->started, 1, __ATOMIC_RELEASE);
    r->tid = pthread_self();
    r->ctx = NULL;
    r->ctx_err = aclrtGetCurrentContext(&r->ctx);
    if (r->ctx_err != ACL_SUCCESS)
        aclGetRecentErrMsg();
    if (r->sleep_ms)
        g_usleep((gulong)r->sleep_ms * 1000);
    if (r->fill)
        memset(r->fill, r->value, r->fill_len);
    if (r->order)
        r->order[__atomic_fetch_add(r->pos, 1, __ATOMIC_ACQ_REL)] = r->tag;
    __atomic_add_fetch(&r->ran, 1, __ATOMIC_ACQ_REL);
}

static int ran(Rec *r)
{
    return __atomic_load_n(&r->ran, __ATOMIC_ACQUIRE);
}

static bool started_cond(void *arg)
{
    return __atomic_load_n(&((Rec *)arg)->started, __ATOMIC_ACQUIRE) != 0;
}

static bool ran_cond(void *arg)
{
    return ran(arg) > 0;
}

/* A thread subscribed to streams, calling aclrtProcessReport until told to stop. */
typedef struct Server {
    pthread_t t;
    aclrtContext ctx;
    int stop;
    int calls;
} Server;

static void *serve(void *arg)
{
    Server *sv = arg;
    aclrtSetCurrentContext(sv->ctx);
    while (!__atomic_load_n(&sv->stop, __ATOMIC_ACQUIRE)) {
        aclrtProcessReport(20);
        __atomic_add_fetch(&sv->calls, 1, __ATOMIC_RELAXED);
    }
    aclGetRecentErrMsg();
    return NULL;
}

static void server_start(Server *sv)
{
    memset(sv, 0, sizeof(*sv));
    sv->ctx = g_ctx0;
    CHECK(pthread_create(&sv->t, NULL, serve, sv) == 0);
}

static void server_stop(Server *sv)
{
    __atomic_store_n(&sv->stop, 1, __ATOMIC_RELEASE);
    pthread_join(sv->t, NULL);
}

/* ---- before aclInit ---- */

static void preinit_body(void)
{
    uint64_t u;
    uint32_t v;
    Rec r = { 0 };
    EXPECT_ERR(aclrtLaunchHostFunc(NULL, record, &r), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtLaunchCallback(record, &r, ACL_CALLBACK_BLOCK, NULL), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtSubscribeReport(self_id(), NULL), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtUnSubscribeReport(self_id(), NULL), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtProcessReport(10), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtGetOpTimeOutInterval(&u), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtSetOpExecuteTimeOut(1), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtSetOpExecuteTimeOutV2(1, &u), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtGetOpExecuteTimeout(&v), ACL_ERROR_UNINITIALIZE);
    CHECK(ran(&r) == 0);
}

static void test_preinit(void)
{
    child_check(preinit_body, "preinit");
}

/* ---- aclrtLaunchHostFunc ---- */

/* The stream waits for the host function: the copy queued after it sees the
 * bytes the function wrote after sleeping. */
TEST(test_host_func_orders_stream)
{
    aclrtStream s;
    EXPECT_OK(aclrtCreateStream(&s));
    uint8_t *pin, *back;
    void *dev;
    EXPECT_OK(aclrtMallocHost((void **)&pin, N));
    EXPECT_OK(aclrtMallocHost((void **)&back, N));
    EXPECT_OK(aclrtMalloc(&dev, N, ACL_MEM_MALLOC_HUGE_FIRST));
    memset(pin, 0x11, N);
    memset(back, 0, N);
    Rec r = { .sleep_ms = 300, .fill = pin, .fill_len = N, .value = 0xA5 };
    int64_t t0 = now_ms();
    EXPECT_OK(aclrtLaunchHostFunc(s, record, &r));
    EXPECT_OK(aclrtMemcpyAsync(dev, N, pin, N, ACL_MEMCPY_HOST_TO_DEVICE, s));
    EXPECT_OK(aclrtMemcpyAsync(back, N, dev, N, ACL_MEMCPY_DEVICE_TO_HOST, s));
    CHECKF(now_ms() - t0 < 250, "the launch calls waited for the host function");
    EXPECT_OK(aclrtSynchronizeStream(s));
    CHECK(now_ms() - t0 >= 300);
    CHECK(ran(&r) == 1);
    CHECKF(all_bytes(back, N, 0xA5), "the copy after the host function did not see its data");
    /* It ran in the runtime's own thread, in the stream's context. */
    CHECK(!pthread_equal(r.tid, pthread_self()));
    CHECK(r.ctx_err == ACL_SUCCESS && r.ctx == g_ctx0);

    /* The default stream (NULL) too, and args may be NULL. */
    Rec r2 = { .fill = pin, .fill_len = N, .value = 0x3C };
    EXPECT_OK(aclrtLaunchHostFunc(NULL, record, &r2));
    EXPECT_OK(aclrtMemcpyAsync(dev, N, pin, N, ACL_MEMCPY_HOST_TO_DEVICE, NULL));
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    EXPECT_OK(aclrtMemcpy(back, N, dev, N, ACL_MEMCPY_DEVICE_TO_HOST));
    CHECK(ran(&r2) == 1 && all_bytes(back, N, 0x3C));

    EXPECT_OK(aclrtFree(dev));
    EXPECT_OK(aclrtFreeHost(pin));
    EXPECT_OK(aclrtFreeHost(back));
    EXPECT_OK(aclrtDestroyStream(s));
}

/* Many host functions in a row run in order, each once. */
TEST(test_host_func_sequence)
{
    aclrtStream s;
    EXPECT_OK(aclrtCreateStream(&s));
    enum { K = 200 };
    int order[K], pos = 0;
    static Rec r[K];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < K; i++) {
        r[i] = (Rec){ .order = order, .pos = &pos, .tag = i };
        EXPECT_OK(aclrtLaunchHostFunc(s, record, &r[i]));
    }
    EXPECT_OK(aclrtSynchronizeStream(s));
    CHECK(pos == K);
    bool ok = true;
    for (int i = 0; i < K; i++)
        ok = ok && order[i] == i && ran(&r[i]) == 1;
    CHECKF(ok, "host functions ran out of order or not exactly once");
    EXPECT_OK(aclrtDestroyStream(s));
}

/* Host functions on several streams at once, each stream in its own order,
 * with copies between them checked by data; one subscriber serves two more
 * streams at the same time. */
typedef struct Worker {
    aclrtStream s;
    uint8_t *pin;
    uint8_t *back;
    void *dev;
    Rec r[4];
    int order[4];
    int pos;
} Worker;

static void *launch_worker(void *arg)
{
    Worker *w = arg;
    aclrtSetCurrentContext(g_ctx0);
    for (int i = 0; i < 4; i++) {
        w->r[i] = (Rec){ .sleep_ms = 20, .fill = w->pin, .fill_len = N, .value = (uint8_t)(i + 1),
                         .order = w->order, .pos = &w->pos, .tag = i };
        aclrtLaunchHostFunc(w->s, record, &w->r[i]);
        aclrtMemcpyAsync((uint8_t *)w->dev + i * 4096, 4096, w->pin, 4096,
                         ACL_MEMCPY_HOST_TO_DEVICE, w->s);
    }
    aclrtMemcpyAsync(w->back, 4 * 4096, w->dev, 4 * 4096, ACL_MEMCPY_DEVICE_TO_HOST, w->s);
    return NULL;
}

TEST(test_several_streams)
{
    enum { W = 4 };
    Worker w[W];
    pthread_t t[W];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < W; i++) {
        EXPECT_OK(aclrtCreateStream(&w[i].s));
        EXPECT_OK(aclrtMallocHost((void **)&w[i].pin, N));
        EXPECT_OK(aclrtMallocHost((void **)&w[i].back, N));
        EXPECT_OK(aclrtMalloc(&w[i].dev, N, ACL_MEM_MALLOC_HUGE_FIRST));
    }
    /* Two more streams served by one subscribed thread. */
    Server sv;
    server_start(&sv);
    aclrtStream sub[2];
    Rec cr[2][3];
    memset(cr, 0, sizeof(cr));
    for (int i = 0; i < 2; i++) {
        EXPECT_OK(aclrtCreateStream(&sub[i]));
        EXPECT_OK(aclrtSubscribeReport((uint64_t)sv.t, sub[i]));
    }
    for (int i = 0; i < W; i++)
        CHECK(pthread_create(&t[i], NULL, launch_worker, &w[i]) == 0);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 2; i++) {
            cr[i][k].sleep_ms = 10;
            EXPECT_OK(aclrtLaunchCallback(record, &cr[i][k],
                                          k == 1 ? ACL_CALLBACK_NO_BLOCK : ACL_CALLBACK_BLOCK,
                                          sub[i]));
        }
    for (int i = 0; i < W; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < W; i++) {
        EXPECT_OK(aclrtSynchronizeStream(w[i].s));
        CHECKF(w[i].pos == 4, "stream %d: %d host functions ran", i, w[i].pos);
        bool ok = true;
        for (int k = 0; k < 4; k++)
            ok = ok && w[i].order[k] == k && all_bytes(w[i].back + k * 4096, 4096, (uint8_t)(k + 1));
        CHECKF(ok, "stream %d: wrong order or data", i);
    }
    for (int i = 0; i < 2; i++)
        EXPECT_OK(aclrtSynchronizeStream(sub[i]));
    /* The NO_BLOCK one may still be running: wait for it. */
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 3; k++) {
            CHECK(wait_until(ran_cond, &cr[i][k], 5000));
            CHECK(pthread_equal(cr[i][k].tid, sv.t));
        }
    for (int i = 0; i < 2; i++) {
        EXPECT_OK(aclrtUnSubscribeReport((uint64_t)sv.t, sub[i]));
        EXPECT_OK(aclrtDestroyStream(sub[i]));
    }
    server_stop(&sv);
    for (int i = 0; i < W; i++) {
        EXPECT_OK(aclrtFree(w[i].dev));
        EXPECT_OK(aclrtFreeHost(w[i].pin));
        EXPECT_OK(aclrtFreeHost(w[i].back));
        EXPECT_OK(aclrtDestroyStream(w[i].s));
    }
}

/* A host function may call the runtime: here a synchronous copy of what the
 * stream wrote to the device just before it. */
typedef struct CopyBack {
    void *dev;
    uint8_t *host;
    aclError err;
    int ran;
} CopyBack;

static void copy_back(void *arg)
{
    CopyBack *c = arg;
    c->err = aclrtMemcpy(c->host, N, c->dev, N, ACL_MEMCPY_DEVICE_TO_HOST);
    if (c->err != ACL_SUCCESS)
        aclGetRecentErrMsg();
    __atomic_store_n(&c->ran, 1, __ATOMIC_RELEASE);
}

TEST(test_callback_calls_memcpy)
{
    aclrtStream s;
    EXPECT_OK(aclrtCreateStream(&s));
    void *dev;
    EXPECT_OK(aclrtMalloc(&dev, N, ACL_MEM_MALLOC_HUGE_FIRST));
    uint8_t *host = g_malloc0(N);
    CopyBack c = { .dev = dev, .host = host };
    EXPECT_OK(aclrtMemsetAsync(dev, N, 0x5A, N, s));
    EXPECT_OK(aclrtLaunchHostFunc(s, copy_back, &c));
    EXPECT_OK(aclrtSynchronizeStream(s));
    CHECK(c.ran && c.err == ACL_SUCCESS);
    CHECKF(all_bytes(host, N, 0x5A), "the host function's copy did not see the memset");

    /* The same from a subscribed thread (this one), in aclrtProcessReport. */
    memset(host, 0, N);
    c.ran = 0;
    EXPECT_OK(aclrtSubscribeReport(self_id(), s));
    EXPECT_OK(aclrtMemsetAsync(dev, N, 0x77, N, s));
    EXPECT_OK(aclrtLaunchCallback(copy_back, &c, ACL_CALLBACK_BLOCK, s));
    EXPECT_OK(aclrtProcessReport(5000));
    CHECK(c.ran && c.err == ACL_SUCCESS && all_bytes(host, N, 0x77));
    EXPECT_OK(aclrtSynchronizeStream(s));
    EXPECT_OK(aclrtUnSubscribeReport(self_id(), s));
    g_free(host);
    EXPECT_OK(aclrtFree(dev));
    EXPECT_OK(aclrtDestroyStream(s));
}

/* ---- aclrtLaunchCallback / aclrtProcessReport ---- */

/* Callbacks run in the thread that calls aclrtProcessReport; BLOCK holds the
 * stream until then; without a callback the call times out. */
TEST(test_process_report_in_calling_thread)
{
    aclrtStream s;
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtSubscribeReport(self_id(), s));
    uint8_t *pin;
    void *dev;
    EXPECT_OK(aclrtMallocHost((void **)&pin, N));
    EXPECT_OK(aclrtMalloc(&dev, N, ACL_MEM_MALLOC_HUGE_FIRST));
    memset(pin, 0, N);
    Rec r = { .fill = pin, .fill_len = N, .value = 0xC3 };
    EXPECT_OK(aclrtLaunchCallback(record, &r, ACL_CALLBACK_BLOCK, s));
    EXPECT_OK(aclrtMemcpyAsync(dev, N, pin, N, ACL_MEMCPY_HOST_TO_DEVICE, s));
    /* Nobody processed it yet: the stream waits. */
    EXPECT_ERR(aclrtSynchronizeStreamWithTimeout(s, 200), ACL_ERROR_RT_STREAM_SYNC_TIMEOUT);
    CHECK(ran(&r) == 0);
    EXPECT_OK(aclrtProcessReport(5000));
    CHECK(ran(&r) == 1);
    CHECK(pthread_equal(r.tid, pthread_self()));
    EXPECT_OK(aclrtSynchronizeStream(s));
    uint8_t *back = g_malloc0(N);
    EXPECT_OK(aclrtMemcpy(back, N, dev, N, ACL_MEMCPY_DEVICE_TO_HOST));
    CHECKF(all_bytes(back, N, 0xC3), "the copy after a BLOCK callback did not see its data");

    /* Nothing pending: the documented timeout, after the time asked for. */
    int64_t t0 = now_ms();
    EXPECT_ERR(aclrtProcessReport(100), ACL_ERROR_RT_REPORT_TIMEOUT);
    int64_t dt = now_ms() - t0;
    CHECKF(dt >= 95 && dt < 2000, "aclrtProcessReport(100) returned after %lld ms", (long long)dt);

    /* Several callbacks queued before one aclrtProcessReport all run in it, in order. */
    int order[3], pos = 0;
    Rec rs[3];
    for (int i = 0; i < 3; i++) {
        rs[i] = (Rec){ .order = order, .pos = &pos, .tag = i };
        EXPECT_OK(aclrtLaunchCallback(record, &rs[i], ACL_CALLBACK_NO_BLOCK, s));
    }
    EXPECT_OK(aclrtSynchronizeStream(s));   /* NO_BLOCK: the stream went on */
    CHECK(pos == 0);
    int got = 0;
    for (int i = 0; i < 10 && got < 3; i++)
        if (aclrtProcessReport(1000) == ACL_SUCCESS)
            got = pos;
    CHECK(pos == 3 && order[0] == 0 && order[1] == 1 && order[2] == 2);

    EXPECT_OK(aclrtUnSubscribeReport(self_id(), s));
    /* Subscribed to nothing any more. */
    EXPECT_ERR(aclrtProcessReport(10), ACL_ERROR_RT_THREAD_SUBSCRIBE);
    g_free(back);
    EXPECT_OK(aclrtFree(dev));
    EXPECT_OK(aclrtFreeHost(pin));
    EXPECT_OK(aclrtDestroyStream(s));
}

/* NO_BLOCK does not hold the stream: the next task completes while the
 * callback still sleeps; BLOCK does. */
TEST(test_no_block_does_not_hold_stream)
{
    aclrtStream s;
    EXPECT_OK(aclrtCreateStream(&s));
    Server sv;
    server_start(&sv);
    EXPECT_OK(aclrtSubscribeReport((uint64_t)sv.t, s));
    void *dev;
    EXPECT_OK(aclrtMalloc(&dev, N, ACL_MEM_MALLOC_HUGE_FIRST));
    uint8_t *back = g_malloc0(N);

    Rec r = { .sleep_ms = 800 };
    EXPECT_OK(aclrtLaunchCallback(record, &r, ACL_CALLBACK_NO_BLOCK, s));
    EXPECT_OK(aclrtMemsetAsync(dev, N, 0x42, N, s));
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(s, 5000));
    CHECKF(ran(&r) == 0, "the stream waited for a NO_BLOCK callback");
    EXPECT_OK(aclrtMemcpy(back, N, dev, N, ACL_MEMCPY_DEVICE_TO_HOST));
    CHECK(all_bytes(back, N, 0x42));
    CHECK(wait_until(started_cond, &r, 5000));
    CHECK(wait_until(ran_cond, &r, 5000));
    CHECK(pthread_equal(r.tid, sv.t));

    Rec b = { .sleep_ms = 300 };
    int64_t t0 = now_ms();
    EXPECT_OK(aclrtLaunchCallback(record, &b, ACL_CALLBACK_BLOCK, s));
    EXPECT_OK(aclrtMemsetAsync(dev, N, 0x43, N, s));
    EXPECT_OK(aclrtSynchronizeStream(s));
    CHECK(ran(&b) == 1 && now_ms() - t0 >= 300);

    EXPECT_OK(aclrtUnSubscribeReport((uint64_t)sv.t, s));
    server_stop(&sv);
    g_free(back);
    EXPECT_OK(aclrtFree(dev));
    EXPECT_OK(aclrtDestroyStream(s));
}

/* Unsubscribing hands the callbacks the thread did not take to the runtime's
 * thread: the stream never waits for a thread that stopped listening. */
TEST(test_unsubscribe_with_pending)
{
    aclrtStream s;
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtSubscribeReport(self_id(), s));
    Rec r = { 0 };
    EXPECT_OK(aclrtLaunchCallback(record, &r, ACL_CALLBACK_BLOCK, s));
    EXPECT_ERR(aclrtSynchronizeStreamWithTimeout(s, 100), ACL_ERROR_RT_STREAM_SYNC_TIMEOUT);
    EXPECT_OK(aclrtUnSubscribeReport(self_id(), s));
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(s, 5000));
    CHECK(ran(&r) == 1 && !pthread_equal(r.tid, pthread_self()));
    /* Not subscribed any more: launching is refused. */
    EXPECT_ERR(aclrtLaunchCallback(record, &r, ACL_CALLBACK_BLOCK, s),
               ACL_ERROR_RT_STREAM_NO_CB_REG);
    EXPECT_OK(aclrtDestroyStream(s));
}

/* A forced destroy of a stream waiting for a callback does not hang, and the
 * subscription goes with the stream. */
TEST(test_destroy_with_pending_callback)
{
    aclrtStream s;
    EXPECT_OK(aclrtCreateStream(&s));
    Rec r = { .sleep_ms = 1500 };
    EXPECT_OK(aclrtLaunchHostFunc(s, record, &r));
    CHECK(wait_until(started_cond, &r, 5000));
    int64_t t0 = now_ms();
    EXPECT_OK(aclrtDestroyStreamForce(s));
    CHECKF(now_ms() - t0 < 1000, "the forced destroy waited for the host function");
    CHECK(wait_until(ran_cond, &r, 5000));

    /* A subscriber's BLOCK callback nobody processes. */
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtSubscribeReport(self_id(), s));
    Rec b = { 0 };
    EXPECT_OK(aclrtLaunchCallback(record, &b, ACL_CALLBACK_BLOCK, s));
    EXPECT_ERR(aclrtSynchronizeStreamWithTimeout(s, 100), ACL_ERROR_RT_STREAM_SYNC_TIMEOUT);
    t0 = now_ms();
    EXPECT_OK(aclrtDestroyStreamForce(s));
    CHECK(now_ms() - t0 < 1000);
    /* The stream is gone, so is the subscription, and its callback never runs. */
    EXPECT_ERR(aclrtProcessReport(10), ACL_ERROR_RT_THREAD_SUBSCRIBE);
    g_usleep(100000);
    CHECK(ran(&b) == 0);

    /* The stream state is reused by a new stream: callbacks there work. */
    EXPECT_OK(aclrtCreateStream(&s));
    Rec c = { 0 };
    EXPECT_OK(aclrtLaunchHostFunc(s, record, &c));
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(s, 5000));
    CHECK(ran(&c) == 1 && ran(&b) == 0);
    EXPECT_OK(aclrtDestroyStream(s));
}

/* ---- bad input ---- */

static void *no_ctx_thread(void *arg)
{
    Rec *r = arg;
    EXPECT_ERR(aclrtLaunchHostFunc(NULL, record, r), ACL_ERROR_RT_CONTEXT_NULL);
    EXPECT_ERR(aclrtLaunchCallback(record, r, ACL_CALLBACK_BLOCK, NULL), ACL_ERROR_RT_CONTEXT_NULL);
    EXPECT_ERR(aclrtSubscribeReport(self_id(), NULL), ACL_ERROR_RT_CONTEXT_NULL);
    EXPECT_ERR(aclrtUnSubscribeReport(self_id(), NULL), ACL_ERROR_RT_CONTEXT_NULL);
    EXPECT_ERR(aclrtProcessReport(10), ACL_ERROR_RT_THREAD_SUBSCRIBE);
    return NULL;
}

TEST(test_bad_input)
{
    aclrtStream s, gone, s1;
    Rec r = { 0 };
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtCreateStream(&gone));
    EXPECT_OK(aclrtDestroyStream(gone));

    EXPECT_ERR(aclrtLaunchHostFunc(s, NULL, &r), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtLaunchHostFunc(gone, record, &r), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_ERR(aclrtLaunchHostFunc((aclrtStream)&r, record, &r), ACL_ERROR_RT_INVALID_HANDLE);

    EXPECT_ERR(aclrtLaunchCallback(NULL, &r, ACL_CALLBACK_BLOCK, s), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtLaunchCallback(record, &r, (aclrtCallbackBlockType)2, s),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtLaunchCallback(record, &r, (aclrtCallbackBlockType)-1, s),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtLaunchCallback(record, &r, ACL_CALLBACK_BLOCK, s),
               ACL_ERROR_RT_STREAM_NO_CB_REG);
    EXPECT_ERR(aclrtLaunchCallback(record, &r, ACL_CALLBACK_NO_BLOCK, NULL),
               ACL_ERROR_RT_STREAM_NO_CB_REG);
    EXPECT_ERR(aclrtLaunchCallback(record, &r, ACL_CALLBACK_BLOCK, gone),
               ACL_ERROR_RT_INVALID_HANDLE);

    EXPECT_ERR(aclrtSubscribeReport(self_id(), gone), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_ERR(aclrtUnSubscribeReport(self_id(), gone), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_ERR(aclrtUnSubscribeReport(self_id(), s), ACL_ERROR_RT_STREAM_SUBSCRIBE);
    EXPECT_OK(aclrtSubscribeReport(self_id(), s));
    /* The same stream twice, by the same or another thread. */
    EXPECT_ERR(aclrtSubscribeReport(self_id(), s), ACL_ERROR_RT_STREAM_SUBSCRIBE);
    EXPECT_ERR(aclrtSubscribeReport(self_id() + 1, s), ACL_ERROR_RT_STREAM_SUBSCRIBE);
    /* Another thread's subscription cannot be cancelled by naming a wrong one. */
    EXPECT_ERR(aclrtUnSubscribeReport(self_id() + 1, s), ACL_ERROR_RT_THREAD_SUBSCRIBE);
    EXPECT_ERR(aclrtProcessReport(0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtProcessReport(-2), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtProcessReport(INT32_MIN), ACL_ERROR_RT_PARAM_INVALID);

    /* A thread serves one device: the same id on device 1 is refused. */
    EXPECT_OK(aclrtSetDevice(1));
    EXPECT_OK(aclrtCreateStream(&s1));
    EXPECT_ERR(aclrtSubscribeReport(self_id(), s1), ACL_ERROR_RT_THREAD_SUBSCRIBE);
    EXPECT_OK(aclrtSubscribeReport(self_id() + 1, s1));
    EXPECT_OK(aclrtUnSubscribeReport(self_id() + 1, s1));
    /* A stream of device 0 from device 1's context. */
    EXPECT_ERR(aclrtLaunchHostFunc(s, record, &r), ACL_ERROR_RT_STREAM_CONTEXT);
    EXPECT_ERR(aclrtLaunchCallback(record, &r, ACL_CALLBACK_BLOCK, s), ACL_ERROR_RT_STREAM_CONTEXT);
    EXPECT_ERR(aclrtSubscribeReport(self_id() + 2, s), ACL_ERROR_RT_STREAM_CONTEXT);
    EXPECT_ERR(aclrtUnSubscribeReport(self_id(), s), ACL_ERROR_RT_STREAM_CONTEXT);
    EXPECT_OK(aclrtDestroyStream(s1));
    EXPECT_OK(aclrtResetDevice(1));
    EXPECT_OK(aclrtSetCurrentContext(g_ctx0));

    /* A stream that takes no host task (rt_stream_submit's rule). */
    aclrtStream ps;
    EXPECT_OK(aclrtCreateStreamWithConfig(&ps, 0, ACL_STREAM_PERSISTENT));
    EXPECT_ERR(aclrtLaunchHostFunc(ps, record, &r), ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    EXPECT_OK(aclrtSubscribeReport(self_id(), ps));
    EXPECT_ERR(aclrtLaunchCallback(record, &r, ACL_CALLBACK_BLOCK, ps),
               ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    EXPECT_OK(aclrtUnSubscribeReport(self_id(), ps));
    EXPECT_OK(aclrtDestroyStream(ps));

    pthread_t t;
    CHECK(pthread_create(&t, NULL, no_ctx_thread, &r) == 0);
    pthread_join(t, NULL);

    EXPECT_OK(aclrtUnSubscribeReport(self_id(), s));
    EXPECT_ERR(aclrtUnSubscribeReport(self_id(), s), ACL_ERROR_RT_STREAM_SUBSCRIBE);
    CHECK(ran(&r) == 0);
    EXPECT_OK(aclrtDestroyStream(s));
}

/* At most 1024 threads are subscribed at once. */
TEST(test_thread_limit)
{
    enum { M = 1025 };
    aclrtStream *s = g_new0(aclrtStream, M);
    bool ok = true;
    for (int i = 0; i < M && ok; i++)
        ok = aclrtCreateStream(&s[i]) == ACL_SUCCESS;
    CHECK(ok);
    for (int i = 0; i < M - 1 && ok; i++)
        ok = aclrtSubscribeReport(0x1000 + i, s[i]) == ACL_SUCCESS;
    CHECK(ok);
    EXPECT_ERR(aclrtSubscribeReport(0x1000 + M, s[M - 1]), ACL_ERROR_RT_OVER_LIMIT);
    /* A thread already counted may take another stream. */
    EXPECT_OK(aclrtSubscribeReport(0x1000, s[M - 1]));
    EXPECT_OK(aclrtUnSubscribeReport(0x1000, s[M - 1]));
    for (int i = 0; i < M - 1 && ok; i++)
        ok = aclrtUnSubscribeReport(0x1000 + i, s[i]) == ACL_SUCCESS;
    CHECK(ok);
    for (int i = 0; i < M; i++)
        if (s[i])
            aclrtDestroyStream(s[i]);
    g_free(s);
}

/* ---- operator timeouts ---- */

TEST(test_op_timeout)
{
    uint64_t interval = 0, actual = 0;
    uint32_t ms = 0;
    EXPECT_OK(aclrtGetOpTimeOutInterval(&interval));
    CHECK(interval == 4294967);
    /* Default: the maximum, 254 intervals (the documented 1091 s). */
    EXPECT_OK(aclrtGetOpExecuteTimeout(&ms));
    CHECK(ms == 4294967ull * 254 / 1000);
    EXPECT_OK(aclrtSetOpExecuteTimeOut(1));
    EXPECT_OK(aclrtGetOpExecuteTimeout(&ms));
    CHECK(ms == 4294);
    EXPECT_OK(aclrtSetOpExecuteTimeOut(10));  /* 3 intervals */
    EXPECT_OK(aclrtGetOpExecuteTimeout(&ms));
    CHECK(ms == 4294967ull * 3 / 1000);
    EXPECT_OK(aclrtSetOpExecuteTimeOut(0));   /* the maximum */
    EXPECT_OK(aclrtGetOpExecuteTimeout(&ms));
    CHECK(ms == 4294967ull * 254 / 1000);
    EXPECT_OK(aclrtSetOpExecuteTimeOut(UINT32_MAX));
    EXPECT_OK(aclrtGetOpExecuteTimeout(&ms));
    CHECK(ms == 4294967ull * 254 / 1000);
    EXPECT_OK(aclrtSetOpExecuteTimeOutV2(50, &actual));
    CHECK(actual == 4294967);
    EXPECT_OK(aclrtSetOpExecuteTimeOutV2(4294967 * 2 + 1, &actual));
    CHECK(actual == 4294967ull * 3);
    EXPECT_OK(aclrtGetOpExecuteTimeout(&ms));
    CHECK(ms == 4294967ull * 3 / 1000);
    EXPECT_OK(aclrtSetOpExecuteTimeOutV2(0, &actual));  /* interval >= 100 ms: the maximum */
    CHECK(actual == 4294967ull * 254);
    EXPECT_OK(aclrtSetOpExecuteTimeOutV2(UINT64_MAX, &actual));
    CHECK(actual == 4294967ull * 254);

    EXPECT_ERR(aclrtGetOpTimeOutInterval(NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtSetOpExecuteTimeOutV2(1, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtGetOpExecuteTimeout(NULL), ACL_ERROR_RT_PARAM_INVALID);
    /* Not on A2 / A3. */
    EXPECT_ERR(aclrtSetOpExecuteTimeOutWithMs(100), ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    EXPECT_OK(aclrtGetOpExecuteTimeout(&ms));
    CHECK(ms == 4294967ull * 254 / 1000);
}

/* ---- aclFinalize and fork (children) ---- */

typedef struct Looper {
    pthread_t t;
    int stop;
    aclError last;
    int ran_cb;
} Looper;

static void *loop_reports(void *arg)
{
    Looper *l = arg;
    while (!__atomic_load_n(&l->stop, __ATOMIC_ACQUIRE)) {
        aclError e = aclrtProcessReport(20);
        __atomic_store_n(&l->last, e, __ATOMIC_RELEASE);
        if (e == ACL_ERROR_UNINITIALIZE || e == ACL_ERROR_RT_THREAD_SUBSCRIBE)
            g_usleep(1000);
    }
    aclGetRecentErrMsg();
    return NULL;
}

static void finalize_body(void)
{
    aclrtStream s;
    EXPECT_OK(aclInit(NULL));
    EXPECT_OK(aclrtSetDevice(0));
    Rec r = { 0 };
    EXPECT_OK(aclrtLaunchHostFunc(NULL, record, &r));  /* starts the callback thread */
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    CHECK(ran(&r) == 1);
    /* A subscriber that keeps calling aclrtProcessReport, and a BLOCK callback
     * of a subscribed stream nobody processes. */
    Looper l = { 0 };
    CHECK(pthread_create(&l.t, NULL, loop_reports, &l) == 0);
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtSubscribeReport((uint64_t)l.t, s));
    aclrtStream s2;
    EXPECT_OK(aclrtCreateStream(&s2));
    EXPECT_OK(aclrtSubscribeReport(self_id(), s2));
    Rec a = { 0 }, b = { 0 };
    EXPECT_OK(aclrtLaunchCallback(record, &a, ACL_CALLBACK_BLOCK, s));
    EXPECT_OK(aclrtLaunchCallback(record, &b, ACL_CALLBACK_BLOCK, s2));
    CHECK(wait_until(ran_cond, &a, 5000));
    int64_t t0 = now_ms();
    EXPECT_OK(aclFinalize());
    CHECKF(now_ms() - t0 < 3000, "aclFinalize took %lld ms", (long long)(now_ms() - t0));
    CHECK(ran(&b) == 1);    /* run by the runtime's thread at aclFinalize */
    g_usleep(50000);
    aclError last = __atomic_load_n(&l.last, __ATOMIC_ACQUIRE);
    CHECKF(last == ACL_ERROR_UNINITIALIZE || last == ACL_ERROR_RT_THREAD_SUBSCRIBE,
           "aclrtProcessReport after aclFinalize: %d", last);
    __atomic_store_n(&l.stop, 1, __ATOMIC_RELEASE);
    pthread_join(l.t, NULL);

    /* Again, with a new thread. */
    EXPECT_OK(aclInit(NULL));
    EXPECT_OK(aclrtSetDevice(0));
    Rec c = { 0 };
    EXPECT_OK(aclrtLaunchHostFunc(NULL, record, &c));
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    CHECK(ran(&c) == 1);
    EXPECT_OK(aclFinalize());
}

TEST(test_finalize_with_thread_running)
{
    child_check(finalize_body, "finalize");
}

/* A child forked while the callback thread runs starts over with aclInit. */
static void forked_body(void)
{
    EXPECT_OK(aclInit(NULL));
    EXPECT_OK(aclrtSetDevice(0));
    Rec r = { .sleep_ms = 50 };
    EXPECT_OK(aclrtLaunchHostFunc(NULL, record, &r));
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(NULL, 5000));
    CHECK(ran(&r) == 1 && !pthread_equal(r.tid, pthread_self()));
    EXPECT_OK(aclFinalize());
}

TEST(test_fork_with_thread_running)
{
    Rec r = { 0 };
    EXPECT_OK(aclrtLaunchHostFunc(NULL, record, &r));
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    child_check(forked_body, "forked");
    /* The parent's thread still serves the parent. */
    Rec r2 = { 0 };
    EXPECT_OK(aclrtLaunchHostFunc(NULL, record, &r2));
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    CHECK(ran(&r2) == 1);
}

/* ---- main ---- */

int main(void)
{
    static const TestCase before[] = { T(test_preinit) };
    static const TestCase tests[] = {
        T(test_host_func_orders_stream), T(test_host_func_sequence),
        T(test_several_streams), T(test_callback_calls_memcpy),
        T(test_process_report_in_calling_thread), T(test_no_block_does_not_hold_stream),
        T(test_unsubscribe_with_pending), T(test_destroy_with_pending_callback),
        T(test_bad_input), T(test_thread_limit), T(test_op_timeout),
        T(test_finalize_with_thread_running), T(test_fork_with_thread_running),
    };
    /* The preinit child must fork before this process calls aclInit. */
    static const TestProgram prog = {
        .name = "test_callback", .emus = { EMU(&g_emu, "a2") },
        .suites = { SUITE("before aclInit", NULL, NULL, before),
                    SUITE("callbacks", NULL, NULL, tests) },
        .pre_init = 1, .devices = DEV(0), .ctx = &g_ctx0,
    };
    return test_main(&prog);
}
