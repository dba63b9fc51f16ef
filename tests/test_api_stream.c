/*
 * test_api_stream.c - integration tests of stream management (chapter 06)
 * against a real npu-emu: create and destroy, the 1984-stream limit and
 * aclrtGetStreamAvailableNum, aclrtSynchronizeDevice, and calls that must hold
 * up only their own thread.
 *
 * Device use: 0 is the main thread's device; 1, 2 and 3 other threads'
 * streams; 6 the 1984-stream limit, then a reset with long work queued; 7 the
 * stream budget of a context created without aclrtSetDevice.  The stream-count
 * tests rely on devices 1, 3, 6 and 7 having no streams of this process yet.
 */
#define _GNU_SOURCE
#include <CUnit/Basic.h>
#include <glib.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "acl/acl.h"
#include "acl_check.h"
#include "harness.h"

#define BIG BUSY_BYTES

/* ================================================================== */
/* Streams.                                                             */

API_TEST(test_stream_create_destroy)
{
    aclrtStream s = NULL, f = NULL, def = NULL;
    void *d = NULL, *pin = NULL;
    EXPECT_OK(aclrtCreateStream(&s));
    CHECK(s != NULL);
    EXPECT_OK(aclrtSynchronizeStream(s));
    EXPECT_OK(aclrtDestroyStream(s));
    EXPECT_ERR(aclrtDestroyStream(s), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_ERR(aclrtSynchronizeStream(s), ACL_ERROR_RT_INVALID_HANDLE);

    /* Force: queued work may be dropped, the stream goes at once. */
    EXPECT_OK(aclrtMalloc(&d, 4096, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMallocHost(&pin, 4096));
    EXPECT_OK(aclrtCreateStream(&f));
    EXPECT_OK(aclrtMemcpyAsync(d, 4096, pin, 4096, ACL_MEMCPY_HOST_TO_DEVICE, f));
    EXPECT_OK(aclrtDestroyStreamForce(f));
    EXPECT_ERR(aclrtDestroyStreamForce(f), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_OK(aclrtFree(d));
    EXPECT_OK(aclrtFreeHost(pin));

    EXPECT_ERR(aclrtDestroyStream(NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtDestroyStreamForce(NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtCreateStream(NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtCtxGetCurrentDefaultStream(&def));
    EXPECT_ERR(aclrtDestroyStream(def), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtDestroyStreamForce(def), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtSynchronizeStream(def));     /* still alive */
}

API_TEST(test_stream_destroy_waits)
{
    BusyBufs bz;
    aclrtStream s = NULL;
    if (!busy_bufs_alloc(&bz))
        return;
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    EXPECT_OK(aclrtDestroyStream(s));
    /* Documented: pending tasks finish before the stream goes. */
    uint8_t *tail = dev_read((uint8_t *)bz.b + BIG - 64, 64);
    CHECKF(!all_bytes(tail, 64, 0), "aclrtDestroyStream returned before its copy finished");
    g_free(tail);
    busy_bufs_free(&bz);
}

API_TEST(test_stream_sync_timeout_args)
{
    aclrtStream s = NULL;
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_ERR(aclrtSynchronizeStreamWithTimeout(s, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtSynchronizeStreamWithTimeout(s, -2), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(s, -1));
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(s, 1000));
    EXPECT_OK(aclrtDestroyStream(s));
}

typedef struct LimitResult {
    int created;
} LimitResult;

static void *thread_stream_limit(void *arg)
{
    LimitResult *r = arg;
    enum { MAX_TRY = 2100 };
    aclrtStream *s = g_new0(aclrtStream, MAX_TRY);
    aclError last = ACL_SUCCESS;
    uint32_t avail = 0;
    EXPECT_OK(aclrtSetDevice(6));
    EXPECT_OK(aclrtGetStreamAvailableNum(&avail));
    CHECKF(avail == 1983, "after aclrtSetDevice %u streams available, expected 1984 - 1", avail);
    int n = 0;
    while (n < MAX_TRY) {
        last = aclrtCreateStream(&s[n]);
        if (last != ACL_SUCCESS)
            break;
        n++;
    }
    r->created = n;
    /* The default stream of the default context is number 1984 - n. */
    CHECKF(n == 1983, "created %d streams besides the default stream, expected 1983", n);
    EXPECT_ERR(last, ACL_ERROR_RT_NO_STREAM_RESOURCE);
    aclrtStream extra = NULL;
    EXPECT_ERR(aclrtCreateStream(&extra), ACL_ERROR_RT_NO_STREAM_RESOURCE);
    EXPECT_OK(aclrtGetStreamAvailableNum(&avail));
    CHECKF(avail == 0, "at the limit %u streams are still reported available", avail);
    /* Freeing one makes room for exactly one. */
    if (n > 0) {
        EXPECT_OK(aclrtDestroyStream(s[n - 1]));
        EXPECT_OK(aclrtGetStreamAvailableNum(&avail));
        CHECK(avail == 1);
        EXPECT_OK(aclrtCreateStream(&s[n - 1]));
        EXPECT_ERR(aclrtCreateStream(&extra), ACL_ERROR_RT_NO_STREAM_RESOURCE);
    }
    bool all_ok = true;
    for (int i = 0; i < n; i++)
        all_ok &= aclrtDestroyStream(s[i]) == ACL_SUCCESS;
    CHECK(all_ok);
    drain_errors();
    EXPECT_OK(aclrtCreateStream(&extra));
    EXPECT_OK(aclrtDestroyStream(extra));
    EXPECT_OK(aclrtResetDevice(6));
    g_free(s);
    return NULL;
}

API_TEST(test_stream_limit)
{
    LimitResult r = { 0 };
    run_thread(thread_stream_limit, &r);
}

static uint32_t streams_available(void)
{
    uint32_t n = UINT32_MAX;
    aclError e = aclrtGetStreamAvailableNum(&n);
    CHECKF(e == ACL_SUCCESS, "aclrtGetStreamAvailableNum returned %d", e);
    drain_errors();
    return n;
}

typedef struct AvailResult {
    uint32_t seen;
} AvailResult;

static void *thread_other_thread_stream(void *arg)
{
    AvailResult *r = arg;
    aclrtStream s = NULL;
    EXPECT_OK(aclrtSetDevice(3));
    EXPECT_OK(aclrtCreateStream(&s));
    r->seen = streams_available();
    EXPECT_OK(aclrtDestroyStream(s));
    EXPECT_OK(aclrtResetDevice(3));
    return NULL;
}

static void *thread_stream_available(void *arg)
{
    (void)arg;
    uint32_t n = 0;
    aclrtStream s[3] = { NULL, NULL, NULL };
    aclrtContext c = NULL, def3 = NULL;
    EXPECT_ERR(aclrtGetStreamAvailableNum(&n), ACL_ERROR_RT_CONTEXT_NULL);
    /* Device 3 is unset here: its default stream is the only one. */
    EXPECT_OK(aclrtSetDevice(3));
    EXPECT_OK(aclrtGetCurrentContext(&def3));
    CHECK(streams_available() == 1983);
    for (int i = 0; i < 3; i++)
        EXPECT_OK(aclrtCreateStream(&s[i]));
    CHECK(streams_available() == 1980);
    EXPECT_OK(aclrtDestroyStream(s[1]));
    CHECK(streams_available() == 1981);
    /* Another context's streams, default stream included, count too. */
    EXPECT_OK(aclrtCreateContext(&c, 3));
    aclrtStream cs = NULL;
    EXPECT_OK(aclrtCreateStream(&cs));
    CHECK(streams_available() == 1979);
    EXPECT_OK(aclrtDestroyContext(c));
    CHECK(aclrtGetStreamAvailableNum(&n) == ACL_ERROR_RT_CONTEXT_NULL);    /* c was current */
    drain_errors();
    /* So do other threads' streams; another device's do not. */
    AvailResult r = { 0 };
    run_thread(thread_other_thread_stream, &r);
    CHECKF(r.seen == 1980, "another thread saw %u available, expected 1984 - 4", r.seen);
    EXPECT_OK(aclrtSetCurrentContext(def3));
    CHECK(streams_available() == 1981);
    EXPECT_OK(aclrtSetDevice(1));
    uint32_t on1 = streams_available();
    CHECKF(on1 == 1983, "device 1 (only its default stream) has %u available", on1);
    EXPECT_OK(aclrtSetCurrentContext(def3));
    EXPECT_OK(aclrtDestroyStream(s[0]));
    EXPECT_OK(aclrtDestroyStream(s[2]));
    CHECK(streams_available() == 1983);
    EXPECT_ERR(aclrtGetStreamAvailableNum(NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtResetDevice(3));
    EXPECT_OK(aclrtResetDevice(1));
    return NULL;
}

API_TEST(test_stream_available_num)
{
    run_thread(thread_stream_available, NULL);
}

static void *thread_ctx_stream_budget(void *arg)
{
    (void)arg;
    enum { MAX_TRY = 2100 };
    aclrtStream *s = g_new0(aclrtStream, MAX_TRY);
    aclrtContext c = NULL;
    aclError last = ACL_SUCCESS;
    uint32_t avail = 0;
    /* No aclrtSetDevice(7) anywhere: the context costs two default streams. */
    EXPECT_OK(aclrtCreateContext(&c, 7));
    EXPECT_OK(aclrtGetStreamAvailableNum(&avail));
    int n = 0;
    while (n < MAX_TRY && (last = aclrtCreateStream(&s[n])) == ACL_SUCCESS)
        n++;
    CHECKF(avail == (uint32_t)n, "aclrtGetStreamAvailableNum said %u, %d could be created",
           avail, n);
    CHECKF(n == 1982, "after aclrtCreateContext without aclrtSetDevice %d streams could be "
                      "created, expected 1984 - 2 = 1982", n);
    EXPECT_ERR(last, ACL_ERROR_RT_NO_STREAM_RESOURCE);
    bool all_ok = true;
    for (int i = 0; i < n; i++)
        all_ok &= aclrtDestroyStream(s[i]) == ACL_SUCCESS;
    CHECK(all_ok);
    drain_errors();
    EXPECT_OK(aclrtDestroyContext(c));
    g_free(s);
    return NULL;
}

API_TEST(test_stream_limit_with_context)
{
    run_thread(thread_ctx_stream_budget, NULL);
}

typedef struct SyncLock {
    BusyBufs bz;
    aclrtStream s;
    double sync_start, sync_end, other_start, other_end;
    aclError sync_err, other_err;
} SyncLock;

static void *thread_sync_device(void *arg)
{
    SyncLock *t = arg;
    aclrtSetCurrentContext(g_api_ctx0);
    t->sync_start = now_s();
    t->sync_err = aclrtSynchronizeDevice();
    t->sync_end = now_s();
    drain_errors();
    return NULL;
}

static void *thread_other_device(void *arg)
{
    SyncLock *t = arg;
    aclrtStream s = NULL;
    t->other_start = now_s();
    t->other_err = aclrtSetDevice(2);
    if (t->other_err == ACL_SUCCESS)
        t->other_err = aclrtCreateStream(&s);
    if (t->other_err == ACL_SUCCESS)
        t->other_err = aclrtDestroyStream(s);
    t->other_end = now_s();
    drain_errors();
    return NULL;
}

API_TEST(test_sync_device_blocks_only_caller)
{
    /* While one thread waits in aclrtSynchronizeDevice for device 0, another
     * thread's calls on device 2 must not wait for device 0's copies. */
    SyncLock t;
    memset(&t, 0, sizeof(t));
    if (!busy_bufs_alloc(&t.bz))
        return;
    EXPECT_OK(aclrtCreateStream(&t.s));
    for (int i = 0; i < 4; i++)
        EXPECT_OK(aclrtMemcpyAsync(t.bz.b, BIG, t.bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, t.s));
    pthread_t a, b;
    CU_ASSERT_FATAL(pthread_create(&a, NULL, thread_sync_device, &t) == 0);
    g_usleep(30000);
    CU_ASSERT_FATAL(pthread_create(&b, NULL, thread_other_device, &t) == 0);
    pthread_join(b, NULL);
    pthread_join(a, NULL);
    CHECK(t.sync_err == ACL_SUCCESS && t.other_err == ACL_SUCCESS);
    double sync_len = t.sync_end - t.sync_start, other_len = t.other_end - t.other_start;
    CHECKF(sync_len > 0.1 ? other_len < sync_len / 2 : true,
           "aclrtSetDevice/aclrtCreateStream/aclrtDestroyStream on device 2 took %.3f s while "
           "another thread's aclrtSynchronizeDevice on device 0 took %.3f s: they waited for it",
           other_len, sync_len);
    if (sync_len <= 0.1)
        printf("\n    (copies too quick to tell: sync took %.3f s)\n", sync_len);
    EXPECT_OK(aclrtDestroyStream(t.s));
    busy_bufs_free(&t.bz);
}

API_TEST(test_sync_device)
{
    enum { NS = 3, CHUNK = 64 * 1024 };
    aclrtStream s[NS];
    void *src = NULL, *dst[NS];
    uint8_t mark[CHUNK];
    fill_pattern(mark, CHUNK, 61);
    EXPECT_OK(aclrtMalloc(&src, BIG, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMemsetD32(src, BIG, 0x13572468u, BIG / 4));
    EXPECT_OK(aclrtMemcpy(src, CHUNK, mark, CHUNK, ACL_MEMCPY_HOST_TO_DEVICE));
    EXPECT_OK(aclrtMemcpy((uint8_t *)src + BIG - CHUNK, CHUNK, mark, CHUNK,
                          ACL_MEMCPY_HOST_TO_DEVICE));
    for (int i = 0; i < NS; i++) {
        dst[i] = NULL;
        s[i] = NULL;
        EXPECT_OK(aclrtCreateStream(&s[i]));
        EXPECT_OK(aclrtMalloc(&dst[i], BIG, ACL_MEM_MALLOC_HUGE_FIRST));
        EXPECT_OK(aclrtMemset(dst[i], BIG, 0, BIG));
    }
    for (int i = 0; i < NS; i++)
        EXPECT_OK(aclrtMemcpyAsync(dst[i], BIG, src, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, s[i]));
    EXPECT_OK(aclrtSynchronizeDevice());
    for (int i = 0; i < NS; i++) {
        CHECKF(dev_equals(dst[i], mark, CHUNK), "stream %d: head not copied", i);
        CHECKF(dev_equals((uint8_t *)dst[i] + BIG - CHUNK, mark, CHUNK),
               "stream %d: tail not copied after aclrtSynchronizeDevice", i);
        uint8_t *mid = dev_read((uint8_t *)dst[i] + BIG / 2, 64);
        bool ok = true;
        for (int k = 0; k < 64; k += 4)
            ok &= *(uint32_t *)(mid + k) == 0x13572468u;
        CHECKF(ok, "stream %d: middle not copied", i);
        g_free(mid);
    }
    for (int i = 0; i < NS; i++) {
        EXPECT_OK(aclrtDestroyStream(s[i]));
        EXPECT_OK(aclrtFree(dst[i]));
    }
    EXPECT_OK(aclrtFree(src));
}

/* ---- regressions of races found in review ---- */

/* A destroyed stream's handle stays invalid even after many new streams. */
API_TEST(test_stale_stream_handle)
{
    EXPECT_OK(aclrtSetDevice(0));
    aclrtStream old[64], fresh[64];
    for (int i = 0; i < 64; i++) {
        EXPECT_OK(aclrtCreateStream(&old[i]));
        EXPECT_OK(aclrtDestroyStream(old[i]));
    }
    for (int i = 0; i < 64; i++)
        EXPECT_OK(aclrtCreateStream(&fresh[i]));
    for (int i = 0; i < 64; i++)
        EXPECT_ERR(aclrtSynchronizeStream(old[i]), ACL_ERROR_RT_INVALID_HANDLE);
    for (int i = 0; i < 64; i++)
        EXPECT_OK(aclrtDestroyStream(fresh[i]));
}

static int reset_done;

static void *reset_worker(void *arg)
{
    (void)arg;
    /* Releases the main thread's reference: waits for the queued memsets. */
    if (aclrtResetDeviceForce(6) != ACL_SUCCESS)
        __atomic_store_n(&reset_done, -1, __ATOMIC_RELEASE);
    else
        __atomic_store_n(&reset_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* Resetting a device with long work queued holds up only the resetting thread. */
API_TEST(test_reset_blocks_only_caller)
{
    EXPECT_OK(aclrtSetDevice(6));
    void *d = NULL;
    EXPECT_OK(aclrtMalloc(&d, 1ull << 30, ACL_MEM_MALLOC_HUGE_ONLY));
    for (int i = 0; i < 4; i++)
        EXPECT_OK(aclrtMemsetAsync(d, 1ull << 30, i, 1ull << 30, NULL));
    reset_done = 0;
    pthread_t t;
    pthread_create(&t, NULL, reset_worker, NULL);
    usleep(20000);
    /* Meanwhile this thread works on device 0: it must finish while the reset
     * still waits for 4 GiB of memsets, not after it. */
    int32_t dev = -1;
    EXPECT_OK(aclrtSetDevice(0));
    EXPECT_OK(aclrtGetDevice(&dev));
    bool reset_finished_first = __atomic_load_n(&reset_done, __ATOMIC_ACQUIRE) != 0;
    CHECK(dev == 0);
    pthread_join(t, NULL);
    CHECK(reset_done == 1);
    CHECKF(!reset_finished_first, "aclrtSetDevice/aclrtGetDevice on device 0 waited for a "
                                  "reset of device 6");
    /* The forced reset released the memory with the device. */
    EXPECT_ERR(aclrtFree(d), ACL_ERROR_RT_PARAM_INVALID);
}

/* More tasks than a stream's queue holds: submitting waits for room, as on
 * hardware, and every task runs in order. */
API_TEST(test_queue_full_blocks)
{
    EXPECT_OK(aclrtSetDevice(0));
    aclrtStream st = NULL;
    EXPECT_OK(aclrtCreateStream(&st));
    void *d = NULL;
    EXPECT_OK(aclrtMalloc(&d, 4096, ACL_MEM_MALLOC_HUGE_FIRST));
    for (int i = 0; i < 10000; i++)
        EXPECT_OK(aclrtMemsetAsync(d, 4096, i & 0xff, 4096, st));
    EXPECT_OK(aclrtSynchronizeStream(st));
    uint8_t back[4096];
    EXPECT_OK(aclrtMemcpy(back, sizeof(back), d, sizeof(back), ACL_MEMCPY_DEVICE_TO_HOST));
    CHECK(back[0] == (9999 & 0xff) && back[4095] == (9999 & 0xff));
    EXPECT_OK(aclrtFree(d));
    EXPECT_OK(aclrtDestroyStream(st));
}

int main(void)
{
    static const TestCase streams[] = {
        T(test_stream_create_destroy), T(test_stream_destroy_waits),
        T(test_stream_sync_timeout_args), T(test_stream_limit),
        T(test_stream_limit_with_context), T(test_stream_available_num),
        T(test_sync_device), T(test_sync_device_blocks_only_caller),
        T(test_stale_stream_handle), T(test_reset_blocks_only_caller),
        T(test_queue_full_blocks),
    };
    static const TestSuite suites[] = { SUITE("streams", NULL, NULL, streams) };
    return api_run("test_api_stream", true, suites, G_N_ELEMENTS(suites));
}
