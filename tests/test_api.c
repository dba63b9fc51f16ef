/*
 * test_api.c - integration tests of libascendcl.so's aclrt* API against a real
 * npu-emu (chapters 02 init, 04 devices, 05 contexts, 06 streams, 11 memory and
 * copies, 13 errors).
 *
 * One emulator is started for the whole program (profile a2: 8 x Ascend910B1,
 * 64 GiB HBM each).  Most tests run in this process, which calls aclInit once
 * and aclFinalize near the end; tests of process-wide life cycle (before
 * aclInit, bad config, finalize counting, re-init, visible devices, host faults)
 * run in forked children, which call aclInit themselves and report failed
 * checks on stderr and in their exit status.  The very last test kills the
 * emulator under a waiting child.
 *
 * Every expected failure is checked three ways: the exact return code, the
 * thread's last error (aclrtPeekAtLastError twice, then aclrtGetLastError, which
 * must clear it) and the recent error message (non-NULL text once, then NULL).
 * Every expected success must leave no last error and no message behind.
 *
 * Device use in this process: 0 is the main thread's device; 1 and 2 carry
 * explicit contexts and per-thread tests; 3 reference counting; 4 reset and
 * memory; 6 the 1984-stream limit; 7 the stream budget of a context created
 * without aclrtSetDevice (5 is used by a fault child).  Devices 3, 4, 6 and 7
 * are only touched from short-lived threads, so the main thread's current
 * context is never theirs; 3 is back to unset (no reference, closed) after each
 * test that uses it, which the default-context state and stream-count tests
 * rely on.
 */
#define _GNU_SOURCE
#include <CUnit/Basic.h>
#include <glib.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acl/acl.h"
#include "acl_check.h"
#include "harness.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define HBM_BYTES (64ull * GiB)
#define WINDOW_LO 0x100000000000ull
#define WINDOW_HI 0x180000000000ull
#define BIG (256ull * MiB)
#define ALIGN_UP(x, a) ((((uint64_t)(x)) + (a) - 1) / (a) * (a))

static TestEmu g_emu;
static aclrtContext g_ctx0;     /* device 0's default context, the main thread's */

/* ------------------------------------------------------------------ */
/* Checks that work both in this process (CUnit) and in forked children  */
/* (printed to stderr and counted; the child's exit status is the count). */


/* ------------------------------------------------------------------ */
/* Helpers.                                                              */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct TestTime {
    const char *name;
    double secs;
} TestTime;
static TestTime g_times[128];
static int g_ntimes;

static void record_time(const char *name, double secs)
{
    if (g_ntimes < (int)G_N_ELEMENTS(g_times))
        g_times[g_ntimes++] = (TestTime){ name, secs };
}

static bool emu_alive(void);

/* Declares a CUnit test that records its own run time.  Once the emulator is
 * gone every later test fails at once instead of tripping over NULL buffers. */
#define TEST(name)                                                  \
    static void name##_body(void);                                  \
    static void name(void)                                          \
    {                                                               \
        if (!emu_alive()) {                                         \
            CU_FAIL("npu-emu died earlier: test not run");          \
            return;                                                 \
        }                                                           \
        double t0_ = now_s();                                       \
        name##_body();                                              \
        record_time(#name, now_s() - t0_);                          \
    }                                                               \
    static void name##_body(void)

static bool g_emu_dead;

static bool emu_alive(void)
{
    if (!g_emu_dead && g_emu.pid > 0 && waitpid(g_emu.pid, NULL, WNOHANG) != 0) {
        g_emu_dead = true;
        g_emu.pid = 0;
        fprintf(stderr, "test_api: npu-emu exited or died\n");
    }
    return !g_emu_dead;
}

static bool in_window(const void *p)
{
    uint64_t a = (uint64_t)(uintptr_t)p;
    return a >= WINDOW_LO && a < WINDOW_HI;
}

/* Reads n bytes of device memory at dev (synchronous copy) into a new buffer. */
static uint8_t *dev_read(const void *dev, size_t n)
{
    uint8_t *h = g_malloc(n);
    memset(h, 0x5c, n);
    if (!CHECKF(in_window(dev) && in_window((const uint8_t *)dev + n - 1),
                "dev_read: %p is not a device pointer (an earlier allocation failed?)", dev))
        return h;
    aclError e = aclrtMemcpy(h, n, dev, n, ACL_MEMCPY_DEVICE_TO_HOST);
    CHECKF(e == ACL_SUCCESS, "aclrtMemcpy D2H of %zu bytes from %p returned %d", n, dev, e);
    drain_errors();
    return h;
}

static bool dev_equals(const void *dev, const void *host, size_t n)
{
    uint8_t *h = dev_read(dev, n);
    bool eq = memcmp(h, host, n) == 0;
    g_free(h);
    return eq;
}

static bool dev_all_bytes(const void *dev, size_t n, uint8_t v)
{
    uint8_t *h = dev_read(dev, n);
    bool eq = all_bytes(h, n, v);
    g_free(h);
    return eq;
}

static void use_dev0(void)
{
    aclError e = aclrtSetCurrentContext(g_ctx0);
    CHECKF(e == ACL_SUCCESS, "restoring device 0's context returned %d", e);
    drain_errors();
}

static void run_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, fn, arg) == 0);
    pthread_join(t, NULL);
}

/* Runs body() in a forked child; the child's exit status is its failure count. */
static void run_child(void (*fn)(void), const char *name)
{
    int st = run_checked_child(fn, NULL);
    CHECKF(st == 0, "child '%s' ended with status %d (1..100: failed checks, printed above; "
                    ">128: killed by signal %d)", name, st, st > 128 ? st - 128 : 0);
}

/* ================================================================== */
/* Before aclInit (child).                                              */

static void child_preinit(void)
{
    void *p = NULL;
    uint32_t n = 0;
    char a[16] = "abc", b[16];
    aclrtStream s = NULL;
    EXPECT_ERR(aclrtSetDevice(0), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMalloc(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtGetDeviceCount(&n), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMemcpy(b, sizeof(b), a, sizeof(a), ACL_MEMCPY_HOST_TO_HOST),
               ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtCreateStream(&s), ACL_ERROR_UNINITIALIZE);
    aclrtDeviceStatus st;
    int32_t lo, hi, active;
    aclrtUtilizationInfo ui;
    uint32_t res;
    EXPECT_ERR(aclrtQueryDeviceStatus(0, &st), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtDeviceGetStreamPriorityRange(&lo, &hi), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtGetDeviceUtilizationRate(0, &ui), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtGetPrimaryCtxState(0, NULL, &active), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtGetStreamAvailableNum(&n), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMallocWithCfg(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST, NULL),
               ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMallocForTaskScheduler(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST, NULL),
               ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtFreeWithDevSync(a), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMemFlush(a, sizeof(a)), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMemInvalidate(a, sizeof(a)), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMallocHostWithCfg(&p, 4096, NULL), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtFreeHostWithDevSync(a), ACL_ERROR_UNINITIALIZE);
    void *list[1] = { a };
    EXPECT_ERR(aclrtCheckMemType(list, 1, ACL_RT_MEM_TYPE_DEV, &res, 0), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclFinalize(), ACL_ERROR_REPEAT_FINALIZE);
    CHECK(aclrtGetSocName() == NULL);
    drain_errors();
}

TEST(test_preinit)
{
    run_child(child_preinit, "before aclInit");
}

/* ================================================================== */
/* aclInit / aclFinalize.                                               */

TEST(test_init_repeat)
{
    EXPECT_OK(aclInit(NULL));
    EXPECT_ERR(aclInit(NULL), ACL_ERROR_REPEAT_INITIALIZE);
    /* Still initialised and usable. */
    uint32_t n = 0;
    EXPECT_OK(aclrtGetDeviceCount(&n));
    CHECK(n == 8);
}

static void child_bad_config(void)
{
    EXPECT_ERR(aclInit("/nonexistent/npu-emu-test/acl.json"), ACL_ERROR_INVALID_FILE);
    /* The failed call did not initialise anything. */
    uint32_t n = 0;
    EXPECT_ERR(aclrtGetDeviceCount(&n), ACL_ERROR_UNINITIALIZE);
    EXPECT_OK(aclInit(NULL));
    EXPECT_OK(aclFinalize());
}

TEST(test_init_bad_config)
{
    run_child(child_bad_config, "aclInit with a missing config file");
}

static void child_finalize_reference(void)
{
    uint64_t rc = 99;
    uint32_t n = 0;
    void *p = NULL;
    EXPECT_OK(aclInit(NULL));
    EXPECT_ERR(aclInit(NULL), ACL_ERROR_REPEAT_INITIALIZE);
    EXPECT_OK(aclFinalizeReference(&rc));
    CHECKF(rc == 1, "refCount after the first aclFinalizeReference is %" PRIu64 ", expected 1",
           rc);
    /* Still usable. */
    EXPECT_OK(aclrtGetDeviceCount(&n));
    CHECK(n == 8);
    EXPECT_OK(aclrtSetDevice(0));
    EXPECT_OK(aclrtMalloc(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtFree(p));
    rc = 99;
    EXPECT_OK(aclFinalizeReference(&rc));
    CHECKF(rc == 0, "refCount after the second aclFinalizeReference is %" PRIu64
                    ", expected 0", rc);
    EXPECT_ERR(aclrtGetDeviceCount(&n), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtSetDevice(0), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclFinalizeReference(&rc), ACL_ERROR_REPEAT_FINALIZE);
    EXPECT_ERR(aclFinalize(), ACL_ERROR_REPEAT_FINALIZE);
}

TEST(test_finalize_reference)
{
    run_child(child_finalize_reference, "aclFinalizeReference counting");
}

static void child_reinit(void)
{
    /* Init -> work -> Finalize -> Init ... is the documented sequential use;
     * repeat it so a slow teardown on either side shows up. */
    for (int round = 0; round < 300; round++) {
        void *d = NULL;
        char in[256], out[256];
        fill_pattern(in, sizeof(in), (uint32_t)round);
        memset(out, 0, sizeof(out));
        if (!EXPECT_OK(aclInit(NULL))) {
            fprintf(stderr, "    (round %d)\n", round);
            return;
        }
        EXPECT_OK(aclrtSetDevice(0));
        EXPECT_OK(aclrtMalloc(&d, sizeof(in), ACL_MEM_MALLOC_HUGE_FIRST));
        EXPECT_OK(aclrtMemcpy(d, sizeof(in), in, sizeof(in), ACL_MEMCPY_HOST_TO_DEVICE));
        EXPECT_OK(aclrtMemcpy(out, sizeof(out), d, sizeof(in), ACL_MEMCPY_DEVICE_TO_HOST));
        CHECKF(memcmp(in, out, sizeof(in)) == 0, "round %d: data did not round-trip", round);
        EXPECT_OK(aclrtFree(d));
        EXPECT_OK(aclFinalize());
        uint32_t n;
        EXPECT_ERR(aclrtGetDeviceCount(&n), ACL_ERROR_UNINITIALIZE);
    }
}

TEST(test_reinit_after_finalize)
{
    run_child(child_reinit, "aclInit after aclFinalize");
}

/* ================================================================== */
/* Devices.                                                             */

static int suite_devices_init(void)
{
    if (aclrtSetDevice(0) != ACL_SUCCESS || aclrtGetCurrentContext(&g_ctx0) != ACL_SUCCESS)
        return 1;
    drain_errors();
    return 0;
}

TEST(test_device_queries)
{
    uint32_t n = 0;
    aclrtRunMode mode = ACL_DEVICE;
    int32_t dev = -1;
    EXPECT_OK(aclrtGetDeviceCount(&n));
    CHECKF(n == 8, "aclrtGetDeviceCount gave %u, expected 8", n);
    const char *soc = aclrtGetSocName();
    CHECKF(soc && strcmp(soc, "Ascend910B1") == 0, "aclrtGetSocName gave \"%s\"",
           soc ? soc : "(null)");
    drain_errors();
    EXPECT_OK(aclrtGetRunMode(&mode));
    CHECK(mode == ACL_HOST);
    EXPECT_OK(aclrtGetDevice(&dev));
    CHECK(dev == 0);
    EXPECT_ERR(aclrtGetDeviceCount(NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtGetDevice(NULL), ACL_ERROR_RT_PARAM_INVALID);
}

TEST(test_device_bad_ids)
{
    EXPECT_ERR(aclrtSetDevice(-1), ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtSetDevice(8), ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtResetDevice(8), ACL_ERROR_RT_INVALID_DEVICEID);
    /* The failed calls did not change the thread's device. */
    int32_t dev = -1;
    EXPECT_OK(aclrtGetDevice(&dev));
    CHECK(dev == 0);
}

static void *thread_no_device(void *arg)
{
    (void)arg;
    int32_t dev = -1;
    aclrtContext ctx = NULL;
    EXPECT_ERR(aclrtGetDevice(&dev), ACL_ERROR_RT_CONTEXT_NULL);
    EXPECT_ERR(aclrtGetCurrentContext(&ctx), ACL_ERROR_RT_CONTEXT_NULL);
    return NULL;
}

TEST(test_device_none_in_new_thread)
{
    run_thread(thread_no_device, NULL);
}

typedef struct PerThread {
    pthread_barrier_t *bar;
    int32_t want;
    aclError set_err, get_err, get2_err;
    int32_t seen, seen2;
} PerThread;

static void *thread_per_device(void *arg)
{
    PerThread *t = arg;
    t->set_err = aclrtSetDevice(t->want);
    pthread_barrier_wait(t->bar);   /* both threads have set their device */
    t->get_err = aclrtGetDevice(&t->seen);
    pthread_barrier_wait(t->bar);
    g_usleep(1000);
    t->get2_err = aclrtGetDevice(&t->seen2);
    drain_errors();
    return NULL;
}

TEST(test_device_per_thread)
{
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    PerThread a = { .bar = &bar, .want = 1, .seen = -1, .seen2 = -1 };
    PerThread b = { .bar = &bar, .want = 2, .seen = -1, .seen2 = -1 };
    pthread_t ta, tb;
    CU_ASSERT_FATAL(pthread_create(&ta, NULL, thread_per_device, &a) == 0);
    CU_ASSERT_FATAL(pthread_create(&tb, NULL, thread_per_device, &b) == 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&bar);
    CHECK(a.set_err == ACL_SUCCESS && b.set_err == ACL_SUCCESS);
    CHECK(a.get_err == ACL_SUCCESS && b.get_err == ACL_SUCCESS);
    CHECKF(a.seen == 1 && a.seen2 == 1, "thread A set device 1 but saw %d, %d", a.seen, a.seen2);
    CHECKF(b.seen == 2 && b.seen2 == 2, "thread B set device 2 but saw %d, %d", b.seen, b.seen2);
    int32_t dev = -1;
    EXPECT_OK(aclrtGetDevice(&dev));
    CHECKF(dev == 0, "the main thread's device changed to %d", dev);
}

TEST(test_device_info)
{
    int64_t v = -1;
    EXPECT_OK(aclrtGetDeviceInfo(0, ACL_DEV_ATTR_TOTAL_GLOBAL_MEM_SIZE, &v));
    CHECKF(v == (int64_t)HBM_BYTES, "TOTAL_GLOBAL_MEM_SIZE is %" PRId64, v);
    v = -1;
    EXPECT_OK(aclrtGetDeviceInfo(7, ACL_DEV_ATTR_NPU_ARCH, &v));
    CHECKF(v == 2201, "NPU_ARCH is %" PRId64, v);
    EXPECT_ERR(aclrtGetDeviceInfo(0, ACL_DEV_ATTR_HD_CONNECT_TYPE, &v),
               ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    EXPECT_ERR(aclrtGetDeviceInfo(0, (aclrtDevAttr)12345, &v), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtGetDeviceInfo(8, ACL_DEV_ATTR_NPU_ARCH, &v), ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtGetDeviceInfo(0, ACL_DEV_ATTR_NPU_ARCH, NULL), ACL_ERROR_RT_PARAM_INVALID);
}

TEST(test_device_status)
{
    aclrtDeviceStatus st = ACL_RT_DEVICE_STATUS_END;
    EXPECT_OK(aclrtQueryDeviceStatus(0, &st));
    CHECKF(st == ACL_RT_DEVICE_STATUS_NORMAL, "device 0 status %d, expected NORMAL", (int)st);
    /* A device this process never opened is just as healthy. */
    st = ACL_RT_DEVICE_STATUS_END;
    EXPECT_OK(aclrtQueryDeviceStatus(7, &st));
    CHECKF(st == ACL_RT_DEVICE_STATUS_NORMAL, "device 7 status %d, expected NORMAL", (int)st);
    EXPECT_ERR(aclrtQueryDeviceStatus(0, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtQueryDeviceStatus(8, &st), ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtQueryDeviceStatus(-1, &st), ACL_ERROR_RT_INVALID_DEVICEID);
}

TEST(test_stream_priority_range)
{
    int32_t least = -1, greatest = -1;
    EXPECT_OK(aclrtDeviceGetStreamPriorityRange(&least, &greatest));
    CHECKF(least == 7 && greatest == 0, "priority range least %d greatest %d, expected 7 / 0",
           least, greatest);
    /* Both ends are priorities a stream can be created with. */
    aclrtStream hi = NULL, lo = NULL;
    EXPECT_OK(aclrtCreateStreamWithConfig(&hi, (uint32_t)greatest, 0));
    EXPECT_OK(aclrtCreateStreamWithConfig(&lo, (uint32_t)least, 0));
    EXPECT_OK(aclrtDestroyStream(hi));
    EXPECT_OK(aclrtDestroyStream(lo));
    EXPECT_ERR(aclrtDeviceGetStreamPriorityRange(NULL, &greatest), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtDeviceGetStreamPriorityRange(&least, NULL), ACL_ERROR_RT_PARAM_INVALID);
}

TEST(test_device_utilization)
{
    /* Nothing can run on the emulated Cube / Vector / AI CPU cores: 0; memory
     * utilisation is documented as unsupported: -1.  The reserved extension
     * pointer is not the call's to write. */
    static const int32_t devs[] = { 0, 5 };
    int sentinel;
    for (size_t i = 0; i < G_N_ELEMENTS(devs); i++) {
        aclrtUtilizationInfo ui = { 11, 22, 33, 44, (aclrtUtilizationExtendInfo *)&sentinel };
        EXPECT_OK(aclrtGetDeviceUtilizationRate(devs[i], &ui));
        CHECKF(ui.cubeUtilization == 0 && ui.vectorUtilization == 0 &&
                   ui.aicpuUtilization == 0 && ui.memoryUtilization == -1,
               "device %d: cube %d vector %d aicpu %d memory %d", devs[i], ui.cubeUtilization,
               ui.vectorUtilization, ui.aicpuUtilization, ui.memoryUtilization);
        CHECK(ui.utilizationExtend == (aclrtUtilizationExtendInfo *)&sentinel);
    }
    aclrtUtilizationInfo ui;
    EXPECT_ERR(aclrtGetDeviceUtilizationRate(0, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtGetDeviceUtilizationRate(8, &ui), ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtGetDeviceUtilizationRate(-1, &ui), ACL_ERROR_RT_INVALID_DEVICEID);
}

static void *thread_set_reset(void *arg)
{
    (void)arg;
    void *p = NULL;
    int32_t dev = -1;
    aclrtContext def = NULL;
    aclrtStream s = NULL;
    EXPECT_OK(aclrtSetDevice(3));
    EXPECT_OK(aclrtSetDevice(3));
    EXPECT_OK(aclrtGetCurrentContext(&def));
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtResetDevice(3));
    /* One reference left: the device and its default context stay. */
    EXPECT_OK(aclrtGetDevice(&dev));
    CHECK(dev == 3);
    EXPECT_OK(aclrtMalloc(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMemset(p, 4096, 0x11, 4096));
    EXPECT_OK(aclrtFree(p));
    EXPECT_OK(aclrtResetDevice(3));
    /* Count 0: the default context is gone, and so is this thread's context. */
    EXPECT_ERR(aclrtGetDevice(&dev), ACL_ERROR_RT_CONTEXT_NULL);
    EXPECT_ERR(aclrtResetDevice(3), ACL_ERROR_RT_PARAM_INVALID);
    /* Its default context and the streams created in it went with it. */
    EXPECT_ERR(aclrtSetCurrentContext(def), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_OK(aclrtSetDevice(3));
    EXPECT_ERR(aclrtDestroyStream(s), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_ERR(aclrtSynchronizeStream(s), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_OK(aclrtResetDevice(3));
    return NULL;
}

TEST(test_device_set_reset_count)
{
    run_thread(thread_set_reset, NULL);
}

static void *thread_reset_force(void *arg)
{
    (void)arg;
    EXPECT_OK(aclrtSetDevice(3));
    EXPECT_OK(aclrtSetDevice(3));
    EXPECT_OK(aclrtResetDeviceForce(3));
    EXPECT_ERR(aclrtResetDeviceForce(3), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtResetDevice(3), ACL_ERROR_RT_PARAM_INVALID);
    /* Set -> ResetForce -> Set -> ResetForce is valid. */
    EXPECT_OK(aclrtSetDevice(3));
    EXPECT_OK(aclrtResetDeviceForce(3));
    return NULL;
}

TEST(test_device_reset_force)
{
    run_thread(thread_reset_force, NULL);
}

static void *thread_reset_frees_memory(void *arg)
{
    (void)arg;
    size_t free0 = 0, total = 0, free1 = 0, free2 = 0;
    void *big = NULL, *small = NULL, *page = NULL;
    char buf[64] = { 0 };
    EXPECT_OK(aclrtSetDevice(4));
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM, &free0, &total));
    EXPECT_OK(aclrtMalloc(&big, GiB, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMalloc(&small, 100, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMalloc(&page, 4096, ACL_MEM_MALLOC_NORMAL_ONLY));
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM, &free1, &total));
    CHECKF(free0 - free1 >= GiB, "1 GiB allocated but free dropped by %zu", free0 - free1);
    EXPECT_OK(aclrtResetDevice(4));
    EXPECT_OK(aclrtSetDevice(4));
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM, &free2, &total));
    CHECKF(free2 == free0, "after aclrtResetDevice free is %zu, baseline %zu (%zd bytes leaked)",
           free2, free0, (ssize_t)(free0 - free2));
    /* The old pointers are dead. */
    EXPECT_ERR(aclrtMemcpy(buf, sizeof(buf), big, sizeof(buf), ACL_MEMCPY_DEVICE_TO_HOST),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtFree(big), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtFree(small), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtFree(page), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtResetDevice(4));
    return NULL;
}

TEST(test_device_reset_frees_memory)
{
    run_thread(thread_reset_frees_memory, NULL);
}

typedef struct VisibleCase {
    const char *env;            /* NULL: unset */
    uint32_t count;
    int32_t ids[8];
} VisibleCase;

static const VisibleCase k_visible[] = {
    { "1,3", 2, { 1, 3 } },
    { "1, 2,3", 1, { 1 } },
    { "1,3,8", 2, { 1, 3 } },
    { "3,1", 1, { 3 } },
    { NULL, 8, { 0, 1, 2, 3, 4, 5, 6, 7 } },
};
static const VisibleCase *g_visible;

static void child_visible(void)
{
    const VisibleCase *c = g_visible;
    if (c->env)
        setenv("ASCEND_RT_VISIBLE_DEVICES", c->env, 1);
    else
        unsetenv("ASCEND_RT_VISIBLE_DEVICES");
    if (!EXPECT_OK(aclInit(NULL)))
        return;
    uint32_t n = 0;
    EXPECT_OK(aclrtGetDeviceCount(&n));
    CHECKF(n == c->count, "ASCEND_RT_VISIBLE_DEVICES=%s: count %u, expected %u",
           c->env ? c->env : "(unset)", n, c->count);
    for (uint32_t i = 0; i < c->count && i < n; i++) {
        int32_t phys = -1, user = -1;
        EXPECT_OK(aclrtGetPhyDevIdByUserDevId((int32_t)i, &phys));
        CHECKF(phys == c->ids[i], "ASCEND_RT_VISIBLE_DEVICES=%s: user %u -> phys %d, expected %d",
               c->env ? c->env : "(unset)", i, phys, c->ids[i]);
        EXPECT_OK(aclrtGetUserDevIdByPhyDevId(c->ids[i], &user));
        CHECK(user == (int32_t)i);
    }
    EXPECT_ERR(aclrtSetDevice((int32_t)c->count), ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_OK(aclrtSetDevice((int32_t)c->count - 1));
    int32_t dev = -1;
    EXPECT_OK(aclrtGetDevice(&dev));
    CHECK(dev == (int32_t)c->count - 1);
    /* Memory reports the user id, like every other API. */
    void *p = NULL;
    aclrtPtrAttributes at;
    EXPECT_OK(aclrtMalloc(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtPointerGetAttributes(p, &at));
    CHECKF(at.location.type == ACL_MEM_LOCATION_TYPE_DEVICE &&
           at.location.id == c->count - 1, "user device %u: memory reports device %u",
           c->count - 1, at.location.id);
    EXPECT_OK(aclrtFree(p));
    EXPECT_OK(aclFinalize());
}

TEST(test_visible_devices)
{
    for (size_t i = 0; i < G_N_ELEMENTS(k_visible); i++) {
        g_visible = &k_visible[i];
        run_child(child_visible, k_visible[i].env ? k_visible[i].env : "(unset)");
    }
}

/* ================================================================== */
/* Last error and error messages.                                        */

TEST(test_errors_newest_first)
{
    void *p = NULL;
    drain_errors();
    aclError e1 = aclrtSetDevice(-1);
    aclError e2 = aclrtMalloc(NULL, 16, ACL_MEM_MALLOC_HUGE_FIRST);
    CHECK(e1 == ACL_ERROR_RT_INVALID_DEVICEID && e2 == ACL_ERROR_RT_PARAM_INVALID);
    /* The last error is overwritten by every error... */
    CHECK(aclrtPeekAtLastError(ACL_RT_THREAD_LEVEL) == ACL_ERROR_RT_PARAM_INVALID);
    /* ...but not cleared by a success. */
    uint32_t n;
    CHECK(aclrtGetDeviceCount(&n) == ACL_SUCCESS);
    CHECK(aclrtMalloc(&p, 16, ACL_MEM_MALLOC_HUGE_FIRST) == ACL_SUCCESS);
    CHECK(aclrtFree(p) == ACL_SUCCESS);
    CHECK(aclrtPeekAtLastError(ACL_RT_THREAD_LEVEL) == ACL_ERROR_RT_PARAM_INVALID);
    CHECK(aclrtGetLastError(ACL_RT_THREAD_LEVEL) == ACL_ERROR_RT_PARAM_INVALID);
    CHECK(aclrtGetLastError(ACL_RT_THREAD_LEVEL) == ACL_SUCCESS);
    /* Both messages in one string, newest first. */
    const char *msg = aclGetRecentErrMsg();
    CHECK(msg != NULL);
    if (msg) {
        const char *m = strstr(msg, "aclrtMalloc"), *s = strstr(msg, "aclrtSetDevice");
        CHECKF(m && s && m < s, "expected the aclrtMalloc message before the aclrtSetDevice "
                                "one in:\n%s", msg);
    }
    CHECK(aclGetRecentErrMsg() == NULL);
}

static void *thread_fail_once(void *arg)
{
    (void)arg;
    aclrtSetDevice(-1);     /* left pending in this thread */
    return NULL;
}

TEST(test_errors_per_thread)
{
    drain_errors();
    run_thread(thread_fail_once, NULL);
    CHECK(aclrtPeekAtLastError(ACL_RT_THREAD_LEVEL) == ACL_SUCCESS);
    CHECK(aclGetRecentErrMsg() == NULL);
}

/* ================================================================== */
/* Contexts.                                                            */

TEST(test_ctx_create_is_current)
{
    aclrtContext c = NULL, cur = NULL;
    aclrtStream ds = NULL, ds0 = NULL;
    int32_t dev = -1;
    EXPECT_OK(aclrtCtxGetCurrentDefaultStream(&ds0));
    EXPECT_OK(aclrtCreateContext(&c, 1));
    CHECK(c != NULL && c != g_ctx0);
    EXPECT_OK(aclrtGetCurrentContext(&cur));
    CHECK(cur == c);
    EXPECT_OK(aclrtGetDevice(&dev));
    CHECK(dev == 1);
    EXPECT_OK(aclrtCtxGetCurrentDefaultStream(&ds));
    CHECK(ds != NULL && ds != ds0);
    EXPECT_OK(aclrtDestroyContext(c));
    use_dev0();
}

TEST(test_ctx_switch_device)
{
    aclrtContext c2 = NULL, cur = NULL;
    int32_t dev = -1;
    EXPECT_OK(aclrtCreateContext(&c2, 2));
    EXPECT_OK(aclrtSetCurrentContext(g_ctx0));
    EXPECT_OK(aclrtGetDevice(&dev));
    CHECK(dev == 0);
    EXPECT_OK(aclrtSetCurrentContext(c2));
    EXPECT_OK(aclrtGetDevice(&dev));
    CHECK(dev == 2);
    EXPECT_OK(aclrtGetCurrentContext(&cur));
    CHECK(cur == c2);
    /* Memory follows the context's device. */
    void *p = NULL;
    aclrtPtrAttributes at;
    EXPECT_OK(aclrtMalloc(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtPointerGetAttributes(p, &at));
    CHECK(at.location.type == ACL_MEM_LOCATION_TYPE_DEVICE && at.location.id == 2);
    EXPECT_OK(aclrtFree(p));
    EXPECT_OK(aclrtDestroyContext(c2));
    use_dev0();
}

TEST(test_ctx_destroy_default)
{
    aclrtContext def = NULL;
    EXPECT_OK(aclrtGetCurrentContext(&def));
    CHECK(def == g_ctx0);
    EXPECT_ERR(aclrtDestroyContext(def), ACL_ERROR_RT_PARAM_INVALID);
    /* Still alive and current. */
    void *p = NULL;
    EXPECT_OK(aclrtMalloc(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtFree(p));
}

TEST(test_ctx_destroy_twice)
{
    aclrtContext c = NULL;
    EXPECT_OK(aclrtCreateContext(&c, 1));
    EXPECT_OK(aclrtDestroyContext(c));
    EXPECT_ERR(aclrtDestroyContext(c), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_ERR(aclrtSetCurrentContext(c), ACL_ERROR_RT_INVALID_HANDLE);
    use_dev0();
}

TEST(test_ctx_destroy_takes_streams)
{
    aclrtContext c = NULL;
    aclrtStream s = NULL, ds = NULL;
    EXPECT_OK(aclrtCreateContext(&c, 1));
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtCtxGetCurrentDefaultStream(&ds));
    use_dev0();
    EXPECT_OK(aclrtDestroyContext(c));     /* not the current one */
    EXPECT_ERR(aclrtSynchronizeStream(s), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_ERR(aclrtSynchronizeStream(ds), ACL_ERROR_RT_INVALID_HANDLE);
    /* This thread's context is untouched. */
    aclrtContext cur = NULL;
    EXPECT_OK(aclrtGetCurrentContext(&cur));
    CHECK(cur == g_ctx0);
}

TEST(test_ctx_null_args)
{
    EXPECT_ERR(aclrtCreateContext(NULL, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtDestroyContext(NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtSetCurrentContext(NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtGetCurrentContext(NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtCtxGetCurrentDefaultStream(NULL), ACL_ERROR_RT_PARAM_INVALID);
    aclrtContext c = NULL;
    EXPECT_ERR(aclrtCreateContext(&c, 8), ACL_ERROR_RT_INVALID_DEVICEID);
    /* The failures left device 0's context current. */
    aclrtContext cur = NULL;
    EXPECT_OK(aclrtGetCurrentContext(&cur));
    CHECK(cur == g_ctx0);
}

TEST(test_ctx_destroyed_current)
{
    aclrtContext c = NULL, cur = NULL;
    aclrtStream s = NULL;
    int32_t dev = -1;
    void *p = NULL;
    size_t fr, tot;
    char h[16] = { 0 };
    EXPECT_OK(aclrtCreateContext(&c, 1));
    EXPECT_OK(aclrtDestroyContext(c));
    EXPECT_ERR(aclrtGetDevice(&dev), ACL_ERROR_RT_CONTEXT_NULL);
    EXPECT_ERR(aclrtGetCurrentContext(&cur), ACL_ERROR_RT_CONTEXT_NULL);
    EXPECT_ERR(aclrtMalloc(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST), ACL_ERROR_RT_CONTEXT_NULL);
    EXPECT_ERR(aclrtCreateStream(&s), ACL_ERROR_RT_CONTEXT_NULL);
    EXPECT_ERR(aclrtCtxGetCurrentDefaultStream(&s), ACL_ERROR_RT_CONTEXT_NULL);
    EXPECT_ERR(aclrtGetMemInfo(ACL_HBM_MEM, &fr, &tot), ACL_ERROR_RT_CONTEXT_NULL);
    EXPECT_ERR(aclrtSynchronizeDevice(), ACL_ERROR_RT_CONTEXT_NULL);
    EXPECT_ERR(aclrtSynchronizeStream(NULL), ACL_ERROR_RT_CONTEXT_NULL);
    EXPECT_ERR(aclrtMemsetAsync(h, sizeof(h), 0, sizeof(h), NULL), ACL_ERROR_RT_CONTEXT_NULL);
    use_dev0();
}

static int32_t primary_active(int32_t dev)
{
    int32_t active = -1;
    uint32_t flags = 0xdead;
    aclError e = aclrtGetPrimaryCtxState(dev, &flags, &active);
    CHECKF(e == ACL_SUCCESS && flags == 0, "aclrtGetPrimaryCtxState(%d) returned %d, flags 0x%x",
           dev, e, flags);
    int32_t again = -1;
    e = aclrtGetPrimaryCtxState(dev, NULL, &again);     /* flags: NULL, as documented */
    CHECKF(e == ACL_SUCCESS && again == active, "with flags NULL: %d, active %d", e, again);
    drain_errors();
    return active;
}

static void *thread_primary_ctx(void *arg)
{
    (void)arg;
    aclrtContext c = NULL;
    CHECKF(primary_active(3) == 0, "device 3 has no aclrtSetDevice reference yet");
    /* An explicit context opens the device, not its default context. */
    EXPECT_OK(aclrtCreateContext(&c, 3));
    CHECKF(primary_active(3) == 0, "aclrtCreateContext activated the default context");
    EXPECT_OK(aclrtSetDevice(3));
    CHECK(primary_active(3) == 1);
    EXPECT_OK(aclrtSetDevice(3));
    EXPECT_OK(aclrtResetDevice(3));
    CHECKF(primary_active(3) == 1, "one reference is left");
    EXPECT_OK(aclrtDestroyContext(c));
    EXPECT_OK(aclrtResetDevice(3));
    CHECKF(primary_active(3) == 0, "the last reference is gone");
    EXPECT_OK(aclrtSetDevice(3));
    EXPECT_OK(aclrtSetDevice(3));
    CHECK(primary_active(3) == 1);
    EXPECT_OK(aclrtResetDeviceForce(3));
    CHECK(primary_active(3) == 0);
    return NULL;
}

TEST(test_primary_ctx_state)
{
    CHECK(primary_active(0) == 1);      /* the main thread's device */
    run_thread(thread_primary_ctx, NULL);
    int32_t active = -1;
    EXPECT_ERR(aclrtGetPrimaryCtxState(0, NULL, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtGetPrimaryCtxState(8, NULL, &active), ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtGetPrimaryCtxState(-1, NULL, &active), ACL_ERROR_RT_INVALID_DEVICEID);
}

/* ================================================================== */
/* Device memory.                                                       */

TEST(test_malloc_bad_args)
{
    void *p = NULL;
    EXPECT_ERR(aclrtMalloc(NULL, 4096, ACL_MEM_MALLOC_HUGE_FIRST), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMalloc(&p, 0, ACL_MEM_MALLOC_HUGE_FIRST), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMalloc(&p, 65 * GiB, ACL_MEM_MALLOC_HUGE_FIRST),
               ACL_ERROR_RT_MEMORY_ALLOCATION);
    EXPECT_ERR(aclrtMalloc(&p, 65 * GiB, ACL_MEM_MALLOC_NORMAL_ONLY),
               ACL_ERROR_RT_MEMORY_ALLOCATION);
    EXPECT_ERR(aclrtMallocAlign32(&p, 0, ACL_MEM_MALLOC_HUGE_FIRST), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMallocCached(&p, 0, ACL_MEM_MALLOC_HUGE_FIRST), ACL_ERROR_RT_PARAM_INVALID);
}

static uint32_t expected_page(uint32_t policy, uint64_t size)
{
    switch (policy) {
    case ACL_MEM_MALLOC_HUGE_FIRST:
    case ACL_MEM_MALLOC_HUGE_FIRST_P2P:
        return size <= MiB ? 4096u : (uint32_t)(2 * MiB);
    case ACL_MEM_MALLOC_HUGE_ONLY:
    case ACL_MEM_MALLOC_HUGE_ONLY_P2P:
        return (uint32_t)(2 * MiB);
    case ACL_MEM_MALLOC_NORMAL_ONLY:
    case ACL_MEM_MALLOC_NORMAL_ONLY_P2P:
        return 4096u;
    case ACL_MEM_MALLOC_HUGE1G_ONLY:
    case ACL_MEM_MALLOC_HUGE1G_ONLY_P2P:
        return (uint32_t)GiB;
    default:    /* out of range: huge pages from 2 MiB on, else normal */
        return size >= 2 * MiB ? (uint32_t)(2 * MiB) : 4096u;
    }
}

TEST(test_malloc_policies)
{
    static const uint32_t policies[] = { 0, 1, 2, 3, 4, 5, 6, 7, 42 };
    static const uint64_t sizes[] = { 100, 4096, MiB, MiB + 1, 2 * MiB - 1, 2 * MiB, 3 * MiB };
    for (size_t i = 0; i < G_N_ELEMENTS(policies); i++) {
        for (size_t j = 0; j < G_N_ELEMENTS(sizes); j++) {
            uint32_t pol = policies[i];
            uint64_t size = sizes[j];
            void *p = NULL;
            aclrtPtrAttributes at;
            memset(&at, 0xff, sizeof(at));
            if (!EXPECT_OK(aclrtMalloc(&p, size, (aclrtMemMallocPolicy)pol)))
                continue;
            CHECKF(((uintptr_t)p & 63) == 0, "policy %u size %" PRIu64 ": %p not 64-byte aligned",
                   pol, size, p);
            CHECKF(in_window(p), "policy %u size %" PRIu64 ": %p outside the device window", pol,
                   size, p);
            EXPECT_OK(aclrtPointerGetAttributes(p, &at));
            CHECKF(at.location.type == ACL_MEM_LOCATION_TYPE_DEVICE && at.location.id == 0,
                   "policy %u size %" PRIu64 ": location type %d id %u", pol, size,
                   (int)at.location.type, at.location.id);
            CHECKF(at.pageSize == expected_page(pol, size),
                   "policy %u size %" PRIu64 ": pageSize %u, expected %u", pol, size, at.pageSize,
                   expected_page(pol, size));
            /* The whole requested range is usable. */
            uint8_t tail[64];
            fill_pattern(tail, sizeof(tail), (uint32_t)(i * 16 + j));
            size_t n = size < sizeof(tail) ? size : sizeof(tail);
            uint8_t *end = (uint8_t *)p + size - n;
            EXPECT_OK(aclrtMemcpy(end, n, tail, n, ACL_MEMCPY_HOST_TO_DEVICE));
            CHECK(dev_equals(end, tail, n));
            EXPECT_OK(aclrtFree(p));
        }
    }
}

TEST(test_malloc_small_slices)
{
    /* Small allocations may share a page (not page aligned: allowed), but they
     * must be 64-byte aligned and must not overlap. */
    enum { N = 8, SZ = 100 };
    void *p[N];
    uint8_t data[N][SZ];
    for (int i = 0; i < N; i++) {
        p[i] = NULL;
        EXPECT_OK(aclrtMalloc(&p[i], SZ, ACL_MEM_MALLOC_HUGE_FIRST));
        CHECK(((uintptr_t)p[i] & 63) == 0);
        fill_pattern(data[i], SZ, 1000u + (uint32_t)i);
        EXPECT_OK(aclrtMemcpy(p[i], SZ, data[i], SZ, ACL_MEMCPY_HOST_TO_DEVICE));
    }
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < N; j++) {
            uint64_t a = (uintptr_t)p[i], b = (uintptr_t)p[j];
            if (i != j)
                CHECKF(a + SZ <= b || b + SZ <= a, "allocations %p and %p overlap", p[i], p[j]);
        }
        CHECKF(dev_equals(p[i], data[i], SZ), "allocation %d was overwritten by a neighbour", i);
    }
    for (int i = 0; i < N; i++)
        EXPECT_OK(aclrtFree(p[i]));
}

TEST(test_malloc_align32_cached)
{
    void *p = NULL;
    uint8_t data[1000];
    fill_pattern(data, sizeof(data), 7);
    EXPECT_OK(aclrtMallocAlign32(&p, sizeof(data), ACL_MEM_MALLOC_HUGE_FIRST));
    CHECK(((uintptr_t)p & 31) == 0 && in_window(p));
    EXPECT_OK(aclrtMemcpy(p, sizeof(data), data, sizeof(data), ACL_MEMCPY_HOST_TO_DEVICE));
    CHECK(dev_equals(p, data, sizeof(data)));
    EXPECT_OK(aclrtFree(p));

    static const aclrtMemMallocPolicy ok[] = { ACL_MEM_MALLOC_HUGE_FIRST, ACL_MEM_MALLOC_HUGE_ONLY,
                                               ACL_MEM_MALLOC_NORMAL_ONLY,
                                               ACL_MEM_MALLOC_HUGE1G_ONLY };
    for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
        p = NULL;
        EXPECT_OK(aclrtMallocCached(&p, sizeof(data), ok[i]));
        CHECK(((uintptr_t)p & 63) == 0 && in_window(p));
        EXPECT_OK(aclrtMemcpy(p, sizeof(data), data, sizeof(data), ACL_MEMCPY_HOST_TO_DEVICE));
        CHECK(dev_equals(p, data, sizeof(data)));
        EXPECT_OK(aclrtFree(p));
    }
    static const aclrtMemMallocPolicy p2p[] = { ACL_MEM_MALLOC_HUGE_FIRST_P2P,
                                                ACL_MEM_MALLOC_HUGE_ONLY_P2P,
                                                ACL_MEM_MALLOC_NORMAL_ONLY_P2P,
                                                ACL_MEM_MALLOC_HUGE1G_ONLY_P2P };
    for (size_t i = 0; i < G_N_ELEMENTS(p2p); i++)
        EXPECT_ERR(aclrtMallocCached(&p, sizeof(data), p2p[i]), ACL_ERROR_RT_PARAM_INVALID);
}

TEST(test_mem_info)
{
    size_t free0 = 0, total = 0, free1 = 0, free2 = 0, t2 = 0;
    void *p = NULL;
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM, &free0, &total));
    CHECKF(total == HBM_BYTES, "HBM total %zu, expected 64 GiB", total);
    CHECK(free0 <= total);

    EXPECT_OK(aclrtMalloc(&p, GiB, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM, &free1, &t2));
    /* ALIGN_UP(size, 32) + 32, in 2 MiB pages. */
    uint64_t rounded = ALIGN_UP(ALIGN_UP(GiB, 32) + 32, 2 * MiB);
    CHECKF(free0 - free1 >= rounded, "1 GiB malloc: free dropped by %zu, expected >= %" PRIu64,
           free0 - free1, rounded);
    EXPECT_OK(aclrtFree(p));
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM, &free2, &t2));
    CHECKF(free2 == free0, "after aclrtFree free is %zu, baseline %zu", free2, free0);

    /* 1 GiB pages: 1.5 GiB takes 2 GiB. */
    EXPECT_OK(aclrtMalloc(&p, GiB + GiB / 2, ACL_MEM_MALLOC_HUGE1G_ONLY));
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM, &free1, &t2));
    CHECKF(free0 - free1 >= 2 * GiB, "1.5 GiB in 1 GiB pages: free dropped by %zu",
           free0 - free1);
    EXPECT_OK(aclrtFree(p));
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM, &free2, &t2));
    CHECK(free2 == free0);

    size_t f = 1, t = 1;
    EXPECT_OK(aclrtGetMemInfo(ACL_DDR_MEM, &f, &t));
    CHECKF(f == 0 && t == 0, "ACL_DDR_MEM gave free %zu total %zu, expected 0 / 0", f, t);
    EXPECT_ERR(aclrtGetMemInfo((aclrtMemAttr)99, &f, &t), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtGetMemInfo(ACL_HBM_MEM, NULL, &t), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtGetMemInfo(ACL_HBM_MEM, &f, NULL), ACL_ERROR_RT_PARAM_INVALID);
}

static void *thread_no_device_memory(void *arg)
{
    (void)arg;
    size_t f, t;
    void *p = NULL;
    EXPECT_ERR(aclrtGetMemInfo(ACL_HBM_MEM, &f, &t), ACL_ERROR_RT_CONTEXT_NULL);
    EXPECT_ERR(aclrtMalloc(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST), ACL_ERROR_RT_CONTEXT_NULL);
    return NULL;
}

TEST(test_mem_no_device)
{
    run_thread(thread_no_device_memory, NULL);
}

TEST(test_free_bad)
{
    void *p = NULL, *q = NULL, *h = NULL;
    EXPECT_ERR(aclrtFree(NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtMalloc(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtFree(p));
    EXPECT_ERR(aclrtFree(p), ACL_ERROR_RT_PARAM_INVALID);

    EXPECT_OK(aclrtMalloc(&q, 4096, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_ERR(aclrtFree((uint8_t *)q + 64), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtFree(q));     /* the failed interior free left it alive */

    EXPECT_ERR(aclrtFree((void *)(uintptr_t)0x150000000000ull), ACL_ERROR_RT_PARAM_INVALID);

    void *m = malloc(4096);
    EXPECT_ERR(aclrtFree(m), ACL_ERROR_RT_PARAM_INVALID);
    free(m);

    uint8_t data[4096], back[4096];
    if (!EXPECT_OK(aclrtMallocHost(&h, sizeof(data))))
        return;
    EXPECT_ERR(aclrtFree(h), ACL_ERROR_RT_PARAM_INVALID);
    /* The pinned buffer still works. */
    fill_pattern(data, sizeof(data), 99);
    memcpy(h, data, sizeof(data));
    EXPECT_OK(aclrtMalloc(&q, sizeof(data), ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMemcpy(q, sizeof(data), h, sizeof(data), ACL_MEMCPY_HOST_TO_DEVICE));
    memset(h, 0, sizeof(data));
    EXPECT_OK(aclrtMemcpy(h, sizeof(data), q, sizeof(data), ACL_MEMCPY_DEVICE_TO_HOST));
    memcpy(back, h, sizeof(back));
    CHECK(memcmp(back, data, sizeof(data)) == 0);
    EXPECT_OK(aclrtFree(q));
    EXPECT_OK(aclrtFreeHost(h));
}

TEST(test_host_memory)
{
    void *h = NULL, *d = NULL;
    EXPECT_ERR(aclrtMallocHost(NULL, 4096), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMallocHost(&h, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtMallocHost(&h, MiB + 5));
    CHECK(h != NULL && ((uintptr_t)h & 63) == 0 && !in_window(h));
    if (h) {
        memset(h, 0xa7, MiB + 5);
        CHECK(all_bytes(h, MiB + 5, 0xa7));
    }
    EXPECT_OK(aclrtFreeHost(h));
    EXPECT_ERR(aclrtFreeHost(h), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtFreeHost(NULL), ACL_ERROR_RT_PARAM_INVALID);
    void *m = malloc(4096);
    EXPECT_ERR(aclrtFreeHost(m), ACL_ERROR_RT_PARAM_INVALID);
    free(m);
    EXPECT_OK(aclrtMalloc(&d, 4096, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_ERR(aclrtFreeHost(d), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtFree(d));
}

TEST(test_pointer_attributes)
{
    void *d = NULL, *d1 = NULL, *h = NULL;
    aclrtPtrAttributes at;
    aclrtContext c1 = NULL;
    int on_stack = 0;

    EXPECT_OK(aclrtMalloc(&d, 3 * MiB, ACL_MEM_MALLOC_HUGE_FIRST));
    memset(&at, 0xff, sizeof(at));
    EXPECT_OK(aclrtPointerGetAttributes(d, &at));
    CHECK(at.location.type == ACL_MEM_LOCATION_TYPE_DEVICE && at.location.id == 0);
    CHECK(at.pageSize == 2 * MiB);
    memset(&at, 0xff, sizeof(at));
    EXPECT_OK(aclrtPointerGetAttributes((uint8_t *)d + MiB, &at));   /* interior */
    CHECK(at.location.type == ACL_MEM_LOCATION_TYPE_DEVICE && at.location.id == 0);

    EXPECT_OK(aclrtCreateContext(&c1, 1));
    EXPECT_OK(aclrtMalloc(&d1, 4096, ACL_MEM_MALLOC_NORMAL_ONLY));
    use_dev0();
    memset(&at, 0xff, sizeof(at));
    EXPECT_OK(aclrtPointerGetAttributes(d1, &at));
    CHECKF(at.location.type == ACL_MEM_LOCATION_TYPE_DEVICE && at.location.id == 1,
           "device 1 memory: type %d id %u", (int)at.location.type, at.location.id);
    CHECK(at.pageSize == 4096);

    EXPECT_OK(aclrtMallocHost(&h, 4096));
    memset(&at, 0xff, sizeof(at));
    EXPECT_OK(aclrtPointerGetAttributes(h, &at));
    CHECK(at.location.type == ACL_MEM_LOCATION_TYPE_HOST);

    void *m = malloc(64);
    memset(&at, 0xff, sizeof(at));
    EXPECT_OK(aclrtPointerGetAttributes(m, &at));
    CHECK(at.location.type == ACL_MEM_LOCATION_TYPE_UNREGISTERED);
    free(m);
    memset(&at, 0xff, sizeof(at));
    EXPECT_OK(aclrtPointerGetAttributes(&on_stack, &at));
    CHECK(at.location.type == ACL_MEM_LOCATION_TYPE_UNREGISTERED);

    EXPECT_ERR(aclrtPointerGetAttributes(NULL, &at), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtPointerGetAttributes(d, NULL), ACL_ERROR_RT_PARAM_INVALID);

    EXPECT_OK(aclrtFreeHost(h));
    EXPECT_OK(aclrtFree(d1));
    EXPECT_OK(aclrtFree(d));
    EXPECT_OK(aclrtSetCurrentContext(c1));
    EXPECT_OK(aclrtDestroyContext(c1));
    use_dev0();
}

/* ---- aclrtMallocWithCfg, aclrtMallocForTaskScheduler ---- */

static aclrtMallocAttribute attr_of(aclrtMallocAttrType type, uint32_t v)
{
    aclrtMallocAttribute a;
    memset(&a, 0, sizeof(a));
    a.attr = type;
    if (type == ACL_RT_MEM_ATTR_MODULE_ID)
        a.value.moduleId = (uint16_t)v;
    else
        a.value.deviceId = v;   /* deviceId and vaFlag share the same 4 bytes */
    return a;
}

/* Allocates with `fn`, checks alignment, location and page size, and that the
 * whole range holds data; frees with aclrtFree.  Returns the page size. */
static uint32_t cfg_alloc_roundtrip(aclError (*fn)(void **, size_t, aclrtMemMallocPolicy,
                                                   aclrtMallocConfig *),
                                    uint32_t policy, uint64_t size, aclrtMallocConfig *cfg)
{
    void *p = NULL;
    aclrtPtrAttributes at;
    memset(&at, 0, sizeof(at));
    if (!EXPECT_OK(fn(&p, size, (aclrtMemMallocPolicy)policy, cfg)))
        return 0;
    CHECKF(in_window(p) && ((uintptr_t)p & 63) == 0, "policy 0x%x: %p", policy, p);
    EXPECT_OK(aclrtPointerGetAttributes(p, &at));
    CHECKF(at.location.type == ACL_MEM_LOCATION_TYPE_DEVICE && at.location.id == 0,
           "policy 0x%x: location %d / %u", policy, (int)at.location.type, at.location.id);
    uint8_t head[256], tail[256];
    size_t n = size < sizeof(head) ? size : sizeof(head);
    fill_pattern(head, n, policy);
    fill_pattern(tail, n, policy + 1);
    EXPECT_OK(aclrtMemcpy(p, n, head, n, ACL_MEMCPY_HOST_TO_DEVICE));
    uint8_t *end = (uint8_t *)p + size - n;
    EXPECT_OK(aclrtMemcpy(end, n, tail, n, ACL_MEMCPY_HOST_TO_DEVICE));
    CHECKF(dev_equals(end, tail, n) && (size < 2 * n || dev_equals(p, head, n)),
           "policy 0x%x size %" PRIu64 ": data did not survive", policy, size);
    EXPECT_OK(aclrtFree(p));
    return at.pageSize;
}

TEST(test_malloc_with_cfg)
{
    size_t free0 = 0, free1 = 0, total = 0;
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM, &free0, &total));
    /* cfg NULL: as aclrtMalloc. */
    CHECK(cfg_alloc_roundtrip(aclrtMallocWithCfg, ACL_MEM_MALLOC_HUGE_FIRST, 1000, NULL) == 4096);
    /* One bandwidth bit, READONLY and a base policy may be ORed; the base
     * policy alone chooses the pages. */
    static const struct {
        uint32_t policy;
        uint64_t size;
        uint32_t page;
    } cases[] = {
        { ACL_MEM_TYPE_HIGH_BAND_WIDTH | ACL_MEM_ACCESS_USER_SPACE_READONLY |
              ACL_MEM_MALLOC_HUGE_ONLY, 3 * MiB, 2 * MiB },
        { ACL_MEM_TYPE_LOW_BAND_WIDTH | ACL_MEM_MALLOC_NORMAL_ONLY, 3 * MiB, 4096 },
        { ACL_MEM_TYPE_HIGH_BAND_WIDTH, 3 * MiB, 2 * MiB },  /* base HUGE_FIRST (0) */
        { ACL_MEM_ACCESS_USER_SPACE_READONLY | ACL_MEM_MALLOC_HUGE_FIRST, MiB, 4096 },
        { ACL_MEM_ACCESS_USER_SPACE_READONLY | ACL_MEM_MALLOC_HUGE_FIRST_P2P, MiB + 1, 2 * MiB },
        { ACL_MEM_TYPE_LOW_BAND_WIDTH | ACL_MEM_MALLOC_NORMAL_ONLY_P2P, 64, 4096 },
        /* A base policy outside the enum: the size decides (huge from 2 MiB). */
        { ACL_MEM_TYPE_HIGH_BAND_WIDTH | 42, 3 * MiB, 2 * MiB },
        { ACL_MEM_TYPE_HIGH_BAND_WIDTH | 42, MiB + MiB / 2, 4096 },
        { 0x200, MiB + MiB / 2, 4096 },
        { 0x200, 2 * MiB, 2 * MiB },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        uint32_t page = cfg_alloc_roundtrip(aclrtMallocWithCfg, cases[i].policy, cases[i].size,
                                            NULL);
        CHECKF(page == cases[i].page, "policy 0x%x size %" PRIu64 ": page %u, expected %u",
               cases[i].policy, cases[i].size, page, cases[i].page);
    }
    /* Every documented attribute that applies to device memory. */
    aclrtMallocAttribute attrs[3] = {
        attr_of(ACL_RT_MEM_ATTR_MODULE_ID, 33),
        attr_of(ACL_RT_MEM_ATTR_DEVICE_ID, 0),
        attr_of(ACL_RT_MEM_ATTR_RSV, 0),
    };
    aclrtMallocConfig cfg = { attrs, 3 };
    CHECK(cfg_alloc_roundtrip(aclrtMallocWithCfg, ACL_MEM_MALLOC_HUGE_FIRST, 5000, &cfg) == 4096);
    aclrtMallocConfig empty = { NULL, 0 };
    CHECK(cfg_alloc_roundtrip(aclrtMallocWithCfg, ACL_MEM_MALLOC_HUGE_ONLY, 4096, &empty) ==
          2 * MiB);
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM, &free1, &total));
    CHECKF(free1 == free0, "HBM free %zu before, %zu after: memory leaked", free0, free1);
}

TEST(test_malloc_with_cfg_bad)
{
    void *p = (void *)0x1234;
    aclrtMallocAttribute a;
    aclrtMallocConfig cfg = { &a, 1 };
    size_t free0 = 0, free1 = 0, total = 0;
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM, &free0, &total));
    EXPECT_ERR(aclrtMallocWithCfg(NULL, 4096, ACL_MEM_MALLOC_HUGE_FIRST, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMallocWithCfg(&p, 0, ACL_MEM_MALLOC_HUGE_FIRST, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMallocWithCfg(&p, 4096,
                                  (aclrtMemMallocPolicy)(ACL_MEM_TYPE_LOW_BAND_WIDTH |
                                                         ACL_MEM_TYPE_HIGH_BAND_WIDTH),
                                  NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMallocWithCfg(&p, 65 * GiB, ACL_MEM_MALLOC_HUGE_FIRST, NULL),
               ACL_ERROR_RT_MEMORY_ALLOCATION);
    aclrtMallocConfig no_attrs = { NULL, 1 };
    EXPECT_ERR(aclrtMallocWithCfg(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST, &no_attrs),
               ACL_ERROR_RT_PARAM_INVALID);
    a = attr_of(ACL_RT_MEM_ATTR_DEVICE_ID, 1);      /* valid, but not current */
    EXPECT_ERR(aclrtMallocWithCfg(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST, &cfg),
               ACL_ERROR_RT_PARAM_INVALID);
    a = attr_of(ACL_RT_MEM_ATTR_DEVICE_ID, 8);
    EXPECT_ERR(aclrtMallocWithCfg(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST, &cfg),
               ACL_ERROR_RT_INVALID_DEVICEID);
    a = attr_of(ACL_RT_MEM_ATTR_VA_FLAG, 0);        /* host memory only */
    EXPECT_ERR(aclrtMallocWithCfg(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST, &cfg),
               ACL_ERROR_RT_PARAM_INVALID);
    a = attr_of((aclrtMallocAttrType)99, 0);
    EXPECT_ERR(aclrtMallocWithCfg(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST, &cfg),
               ACL_ERROR_RT_PARAM_INVALID);
    a = attr_of(ACL_RT_MEM_ATTR_RSV, 0);
    a.value.rsv[7] = 1;                             /* reserved bytes must be 0 */
    EXPECT_ERR(aclrtMallocWithCfg(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST, &cfg),
               ACL_ERROR_RT_PARAM_INVALID);
    /* A bad attribute after good ones still fails the call. */
    aclrtMallocAttribute two[2] = { attr_of(ACL_RT_MEM_ATTR_MODULE_ID, 33),
                                    attr_of(ACL_RT_MEM_ATTR_VA_FLAG, 1) };
    aclrtMallocConfig cfg2 = { two, 2 };
    EXPECT_ERR(aclrtMallocWithCfg(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST, &cfg2),
               ACL_ERROR_RT_PARAM_INVALID);
    CHECKF(p == (void *)0x1234, "a failed call wrote *devPtr = %p", p);
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM, &free1, &total));
    CHECKF(free1 == free0, "failed calls took HBM: %zu before, %zu after", free0, free1);
}

TEST(test_malloc_for_task_scheduler)
{
    CHECK(cfg_alloc_roundtrip(aclrtMallocForTaskScheduler, ACL_MEM_MALLOC_HUGE_FIRST, 3 * MiB,
                              NULL) == 2 * MiB);
    CHECK(cfg_alloc_roundtrip(aclrtMallocForTaskScheduler, ACL_MEM_MALLOC_NORMAL_ONLY, 100,
                              NULL) == 4096);
    aclrtMallocAttribute a = attr_of(ACL_RT_MEM_ATTR_MODULE_ID, 33);
    aclrtMallocConfig cfg = { &a, 1 };
    CHECK(cfg_alloc_roundtrip(aclrtMallocForTaskScheduler, ACL_MEM_MALLOC_HUGE_ONLY, 4096, &cfg) ==
          2 * MiB);
    void *p = NULL;
    EXPECT_ERR(aclrtMallocForTaskScheduler(NULL, 4096, ACL_MEM_MALLOC_HUGE_FIRST, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMallocForTaskScheduler(&p, 0, ACL_MEM_MALLOC_HUGE_FIRST, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    a = attr_of(ACL_RT_MEM_ATTR_DEVICE_ID, 2);
    EXPECT_ERR(aclrtMallocForTaskScheduler(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST, &cfg),
               ACL_ERROR_RT_PARAM_INVALID);
}

static void *thread_cfg_no_device(void *arg)
{
    (void)arg;
    void *p = NULL;
    aclrtMallocAttribute a = attr_of(ACL_RT_MEM_ATTR_DEVICE_ID, 0);
    aclrtMallocConfig cfg = { &a, 1 };
    EXPECT_ERR(aclrtMallocWithCfg(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST, NULL),
               ACL_ERROR_RT_CONTEXT_NULL);
    EXPECT_ERR(aclrtMallocForTaskScheduler(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST, NULL),
               ACL_ERROR_RT_CONTEXT_NULL);
    /* Host memory needs no device, unless the configuration names one. */
    EXPECT_OK(aclrtMallocHostWithCfg(&p, 4096, NULL));
    EXPECT_OK(aclrtFreeHost(p));
    EXPECT_ERR(aclrtMallocHostWithCfg(&p, 4096, &cfg), ACL_ERROR_RT_CONTEXT_NULL);
    return NULL;
}

TEST(test_malloc_cfg_no_device)
{
    run_thread(thread_cfg_no_device, NULL);
}

/* ---- cache maintenance, memory types ---- */

TEST(test_mem_flush_invalidate)
{
    void *d = NULL, *h = NULL;
    uint8_t data[4096];
    fill_pattern(data, sizeof(data), 77);
    EXPECT_OK(aclrtMalloc(&d, sizeof(data), ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMemcpy(d, sizeof(data), data, sizeof(data), ACL_MEMCPY_HOST_TO_DEVICE));
    EXPECT_OK(aclrtMemFlush(d, sizeof(data)));
    EXPECT_OK(aclrtMemInvalidate(d, 1));
    /* Coherent memory: the data is what it was, nothing was dropped. */
    CHECK(dev_equals(d, data, sizeof(data)));
    EXPECT_OK(aclrtMallocHost(&h, sizeof(data)));
    EXPECT_OK(aclrtMemFlush(h, sizeof(data)));
    EXPECT_OK(aclrtMemInvalidate(h, sizeof(data)));

    EXPECT_ERR(aclrtMemFlush(NULL, 64), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemInvalidate(NULL, 64), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemFlush(d, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemInvalidate(d, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemFlush(d, SIZE_MAX), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemInvalidate(d, SIZE_MAX), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtFreeHost(h));
    EXPECT_OK(aclrtFree(d));
}

static uint32_t mem_type_of(void **list, uint32_t n, uint32_t type)
{
    uint32_t r = 0xdead;
    aclError e = aclrtCheckMemType(list, n, type, &r, 0);
    CHECKF(e == ACL_SUCCESS && (r == 0 || r == 1), "aclrtCheckMemType(type 0x%x) returned %d, "
                                                  "result %u", type, e, r);
    drain_errors();
    return r;
}

TEST(test_check_mem_type)
{
    void *d = NULL, *d1 = NULL, *h = NULL, *gone = NULL;
    aclrtContext c1 = NULL;
    int on_stack = 0;
    EXPECT_OK(aclrtMalloc(&d, 3 * MiB, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtCreateContext(&c1, 1));
    EXPECT_OK(aclrtMallocWithCfg(&d1, 100, ACL_MEM_MALLOC_NORMAL_ONLY, NULL));
    use_dev0();
    EXPECT_OK(aclrtMallocHost(&h, 4096));
    EXPECT_OK(aclrtMalloc(&gone, 4096, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtFree(gone));

    void *devs[] = { d, (uint8_t *)d + MiB, (uint8_t *)d + 3 * MiB - 1, d1 };
    CHECK(mem_type_of(devs, 4, ACL_RT_MEM_TYPE_DEV) == 1);
    CHECK(mem_type_of(devs, 4, ACL_RT_MEM_TYPE_DEV | ACL_RT_MEM_TYPE_DVPP) == 1);
    CHECK(mem_type_of(devs, 4, ACL_RT_MEM_TYPE_DEV | ACL_RT_MEM_TYPE_RSVD) == 1);
    /* No DVPP memory or reserved ranges exist. */
    CHECK(mem_type_of(devs, 4, ACL_RT_MEM_TYPE_DVPP) == 0);
    CHECK(mem_type_of(devs, 4, ACL_RT_MEM_TYPE_RSVD) == 0);
    CHECK(mem_type_of(devs, 4, ACL_RT_MEM_TYPE_DVPP | ACL_RT_MEM_TYPE_RSVD) == 0);
    /* One address of another kind spoils the whole list. */
    void *mixed[] = { d, h };
    CHECK(mem_type_of(mixed, 2, ACL_RT_MEM_TYPE_DEV) == 0);
    void *host[] = { &on_stack };
    CHECK(mem_type_of(host, 1, ACL_RT_MEM_TYPE_DEV) == 0);
    void *freed[] = { d, gone };
    CHECK(mem_type_of(freed, 2, ACL_RT_MEM_TYPE_DEV) == 0);
    void *null_entry[] = { NULL };
    CHECK(mem_type_of(null_entry, 1, ACL_RT_MEM_TYPE_DEV) == 0);
    void *past[] = { (uint8_t *)d + ALIGN_UP(3 * MiB + 64, 2 * MiB) };
    CHECK(mem_type_of(past, 1, ACL_RT_MEM_TYPE_DEV) == 0);

    uint32_t r = 0xdead;
    EXPECT_ERR(aclrtCheckMemType(NULL, 1, ACL_RT_MEM_TYPE_DEV, &r, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtCheckMemType(devs, 1, ACL_RT_MEM_TYPE_DEV, NULL, 0),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtCheckMemType(devs, 0, ACL_RT_MEM_TYPE_DEV, &r, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtCheckMemType(devs, 1, 0, &r, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtCheckMemType(devs, 1, 0x1, &r, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtCheckMemType(devs, 1, ACL_RT_MEM_TYPE_DEV | 0x4, &r, 0),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtCheckMemType(devs, 1, ACL_RT_MEM_TYPE_DEV, &r, 1), ACL_ERROR_RT_PARAM_INVALID);
    CHECKF(r == 0xdead, "a failed check wrote the result %u", r);

    EXPECT_OK(aclrtFreeHost(h));
    EXPECT_OK(aclrtFree(d1));
    EXPECT_OK(aclrtFree(d));
    EXPECT_OK(aclrtSetCurrentContext(c1));
    EXPECT_OK(aclrtDestroyContext(c1));
    use_dev0();
}

/* ---- pinned host memory with a configuration ---- */

TEST(test_host_with_cfg)
{
    enum { N = 64 * 1024 };
    void *h = NULL, *d = NULL;
    uint8_t data[N];
    aclrtPtrAttributes at;
    fill_pattern(data, N, 88);
    EXPECT_OK(aclrtMalloc(&d, N, ACL_MEM_MALLOC_HUGE_FIRST));
    aclrtMallocAttribute attrs[4] = {
        attr_of(ACL_RT_MEM_ATTR_MODULE_ID, 33), attr_of(ACL_RT_MEM_ATTR_DEVICE_ID, 0),
        attr_of(ACL_RT_MEM_ATTR_VA_FLAG, 1), attr_of(ACL_RT_MEM_ATTR_RSV, 0),
    };
    aclrtMallocConfig full = { attrs, 4 };
    aclrtMallocAttribute va0 = attr_of(ACL_RT_MEM_ATTR_VA_FLAG, 0);
    aclrtMallocConfig off = { &va0, 1 };
    aclrtMallocConfig *cfgs[] = { NULL, &full, &off };
    for (size_t i = 0; i < G_N_ELEMENTS(cfgs); i++) {
        h = NULL;
        if (!EXPECT_OK(aclrtMallocHostWithCfg(&h, N, cfgs[i])))
            continue;
        CHECK(h != NULL && ((uintptr_t)h & 63) == 0 && !in_window(h));
        memset(&at, 0, sizeof(at));
        EXPECT_OK(aclrtPointerGetAttributes(h, &at));
        CHECK(at.location.type == ACL_MEM_LOCATION_TYPE_HOST);
        /* Pinned: a truly asynchronous copy reads it from the stream. */
        memcpy(h, data, N);
        EXPECT_OK(aclrtMemcpyAsync(d, N, h, N, ACL_MEMCPY_HOST_TO_DEVICE, NULL));
        EXPECT_OK(aclrtSynchronizeStream(NULL));
        CHECKF(dev_equals(d, data, N), "cfg %zu: the copy from pinned memory lost data", i);
        EXPECT_OK(aclrtMemset(d, N, 0, N));
        EXPECT_OK(aclrtFreeHost(h));
    }

    void *p = (void *)0x1234;
    aclrtMallocAttribute a;
    aclrtMallocConfig one = { &a, 1 };
    EXPECT_ERR(aclrtMallocHostWithCfg(NULL, N, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMallocHostWithCfg(&p, 0, NULL), ACL_ERROR_RT_PARAM_INVALID);
    aclrtMallocConfig no_attrs = { NULL, 2 };
    EXPECT_ERR(aclrtMallocHostWithCfg(&p, N, &no_attrs), ACL_ERROR_RT_PARAM_INVALID);
    a = attr_of(ACL_RT_MEM_ATTR_VA_FLAG, 2);
    EXPECT_ERR(aclrtMallocHostWithCfg(&p, N, &one), ACL_ERROR_RT_PARAM_INVALID);
    a = attr_of(ACL_RT_MEM_ATTR_DEVICE_ID, 1);
    EXPECT_ERR(aclrtMallocHostWithCfg(&p, N, &one), ACL_ERROR_RT_PARAM_INVALID);
    a = attr_of(ACL_RT_MEM_ATTR_DEVICE_ID, 9);
    EXPECT_ERR(aclrtMallocHostWithCfg(&p, N, &one), ACL_ERROR_RT_INVALID_DEVICEID);
    a = attr_of((aclrtMallocAttrType)77, 0);
    EXPECT_ERR(aclrtMallocHostWithCfg(&p, N, &one), ACL_ERROR_RT_PARAM_INVALID);
    CHECKF(p == (void *)0x1234, "a failed call wrote *ptr = %p", p);
    EXPECT_OK(aclrtFree(d));
}

/* aclrtGetMemUsageInfo stays unsupported (see docs/api-notes.tsv). */
/* Device-wide figures from the pool: an allocation of this process shows in
 * the aclrtMalloc component (other tests' memory may be there too). */
TEST(test_mem_usage_info)
{
    aclrtMemUsageInfo info[4];
    size_t n = 99;
    EXPECT_ERR(aclrtGetMemUsageInfo(0, NULL, 4, &n), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtGetMemUsageInfo(0, info, 4, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtGetMemUsageInfo(0, info, 0, &n), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtGetMemUsageInfo(8, info, 4, &n), ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtGetMemUsageInfo(-1, info, 4, &n), ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_OK(aclrtGetMemUsageInfo(0, info, 4, &n));
    CHECK(n == 2);
    uint64_t before = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(info[i].name, "aclrtMalloc") == 0)
            before = info[i].curMemSize;
    void *p = NULL;
    EXPECT_OK(aclrtMalloc(&p, 64 * MiB, ACL_MEM_MALLOC_HUGE_ONLY));
    EXPECT_OK(aclrtGetMemUsageInfo(0, info, 1, &n));
    CHECK(n == 1);
    CHECK(strcmp(info[0].name, "aclrtMalloc") == 0);
    /* 64 MiB + 32 bytes in huge pages: 33 of them */
    CHECKF(info[0].curMemSize == before + 66 * MiB, "aclrtMalloc component %" PRIu64
           " bytes, expected %" PRIu64, (uint64_t)info[0].curMemSize, (uint64_t)(before + 66 * MiB));
    CHECK(info[0].memPeakSize >= info[0].curMemSize);
    EXPECT_OK(aclrtFree(p));
    EXPECT_OK(aclrtGetMemUsageInfo(0, info, 4, &n));
    for (size_t i = 0; i < n; i++)
        if (strcmp(info[i].name, "aclrtMalloc") == 0)
            CHECK(info[i].curMemSize == before);
}

/* ================================================================== */
/* Copies and memsets.                                                  */

TEST(test_memcpy_all_kinds)
{
    enum { N = 64 * 1024 + 13 };
    static const int kinds[] = { 0, 1, 2, 3, 4, 5, 6, 7 };
    uint8_t *src = g_malloc(N), *dst = g_malloc(N), *hh = g_malloc(N);
    void *d1 = NULL, *d2 = NULL, *pin = NULL;
    EXPECT_OK(aclrtMalloc(&d1, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMalloc(&d2, N, ACL_MEM_MALLOC_HUGE_FIRST));
    if (!EXPECT_OK(aclrtMallocHost(&pin, N)))
        return;
    for (size_t i = 0; i < G_N_ELEMENTS(kinds); i++) {
        aclrtMemcpyKind k = (aclrtMemcpyKind)kinds[i];
        fill_pattern(src, N, 500u + (uint32_t)i);
        uint64_t sum = checksum(src, N);
        memset(dst, 0, N);
        memset(hh, 0, N);
        EXPECT_OK(aclrtMemset(d1, N, 0, N));
        EXPECT_OK(aclrtMemset(d2, N, 0, N));
        /* Pageable host -> device -> device -> host, and host -> host. */
        EXPECT_OK(aclrtMemcpy(d1, N, src, N, k));
        CHECKF(dev_equals(d1, src, N), "kind %d: H2D data wrong", kinds[i]);
        EXPECT_OK(aclrtMemcpy(d2, N, d1, N, k));
        CHECKF(dev_equals(d2, src, N), "kind %d: D2D data wrong", kinds[i]);
        EXPECT_OK(aclrtMemcpy(dst, N, d2, N, k));
        CHECKF(checksum(dst, N) == sum, "kind %d: D2H checksum %016" PRIx64 ", expected %016"
               PRIx64, kinds[i], checksum(dst, N), sum);
        EXPECT_OK(aclrtMemcpy(hh, N, src, N, k));
        CHECKF(checksum(hh, N) == sum, "kind %d: H2H checksum wrong", kinds[i]);
        /* Pinned host memory on either side. */
        memset(pin, 0, N);
        EXPECT_OK(aclrtMemcpy(pin, N, d2, N, k));
        CHECKF(checksum(pin, N) == sum, "kind %d: D2H into pinned memory wrong", kinds[i]);
        EXPECT_OK(aclrtMemset(d1, N, 0, N));
        EXPECT_OK(aclrtMemcpy(d1, N, pin, N, k));
        CHECKF(dev_equals(d1, src, N), "kind %d: H2D from pinned memory wrong", kinds[i]);
    }
    EXPECT_OK(aclrtFreeHost(pin));
    EXPECT_OK(aclrtFree(d1));
    EXPECT_OK(aclrtFree(d2));
    g_free(src);
    g_free(dst);
    g_free(hh);
}

TEST(test_memcpy_bad_args)
{
    uint8_t h[256];
    void *d = NULL;
    memset(h, 1, sizeof(h));
    EXPECT_OK(aclrtMalloc(&d, sizeof(h), ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_ERR(aclrtMemcpy(d, sizeof(h), h, sizeof(h), (aclrtMemcpyKind)99),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy(d, sizeof(h) - 1, h, sizeof(h), ACL_MEMCPY_HOST_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy(NULL, sizeof(h), h, sizeof(h), ACL_MEMCPY_HOST_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy(d, sizeof(h), NULL, sizeof(h), ACL_MEMCPY_HOST_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtMemcpy(d, sizeof(h), h, 0, ACL_MEMCPY_HOST_TO_DEVICE));
    EXPECT_OK(aclrtMemcpy(d, 0, h, 0, ACL_MEMCPY_HOST_TO_DEVICE));
    /* An unallocated device address. */
    EXPECT_ERR(aclrtMemcpy(h, sizeof(h), (void *)(uintptr_t)0x150000000000ull, sizeof(h),
                           ACL_MEMCPY_DEVICE_TO_HOST), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtFree(d));
}

TEST(test_memcpy_freed)
{
    /* A buffer that has its own pages. */
    uint8_t h[64];
    void *d = NULL;
    memset(h, 3, sizeof(h));
    EXPECT_OK(aclrtMalloc(&d, 4 * MiB, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtFree(d));
    EXPECT_ERR(aclrtMemcpy(h, sizeof(h), d, sizeof(h), ACL_MEMCPY_DEVICE_TO_HOST),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy(d, sizeof(h), h, sizeof(h), ACL_MEMCPY_HOST_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemset(d, sizeof(h), 0, sizeof(h)), ACL_ERROR_RT_PARAM_INVALID);
}

TEST(test_memcpy_freed_small)
{
    /* A small allocation freed while a neighbour keeps its shared block alive. */
    uint8_t h[64];
    void *a = NULL, *b = NULL;
    memset(h, 3, sizeof(h));
    EXPECT_OK(aclrtMalloc(&a, 100, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMalloc(&b, 100, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtFree(a));
    EXPECT_ERR(aclrtMemcpy(h, sizeof(h), a, sizeof(h), ACL_MEMCPY_DEVICE_TO_HOST),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy(a, sizeof(h), h, sizeof(h), ACL_MEMCPY_HOST_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtFree(b));
}

TEST(test_memcpy_past_segment)
{
    /* 8160 bytes in 4 KiB pages: ALIGN_UP(8160, 32) + 32 = 8192, exactly two
     * pages, so the allocation ends where its memory ends. */
    enum { SZ = 8160, SEG = 8192 };
    uint8_t h[2 * SEG];
    void *p = NULL, *q = NULL;
    fill_pattern(h, sizeof(h), 11);
    EXPECT_OK(aclrtMalloc(&p, SZ, ACL_MEM_MALLOC_NORMAL_ONLY));
    EXPECT_OK(aclrtMalloc(&q, SZ, ACL_MEM_MALLOC_NORMAL_ONLY));
    uint8_t *end = (uint8_t *)p + SEG;
    EXPECT_OK(aclrtMemcpy(p, SZ, h, SZ, ACL_MEMCPY_HOST_TO_DEVICE));
    EXPECT_OK(aclrtMemcpy(h, SZ, p, SZ, ACL_MEMCPY_DEVICE_TO_HOST));
    EXPECT_ERR(aclrtMemcpy(h, 32, end - 16, 32, ACL_MEMCPY_DEVICE_TO_HOST),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy(end - 16, 32, h, 32, ACL_MEMCPY_HOST_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemset(end - 16, 32, 0, 32), ACL_ERROR_RT_PARAM_INVALID);
    /* Even when the next allocation's memory follows directly. */
    uint8_t *lo = (uint8_t *)(p < q ? p : q), *hi = (uint8_t *)(p < q ? q : p);
    if (hi == lo + SEG)
        EXPECT_ERR(aclrtMemcpy(h, sizeof(h), lo, sizeof(h), ACL_MEMCPY_DEVICE_TO_HOST),
                   ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy(q, SEG, p, SEG + 64, ACL_MEMCPY_DEVICE_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtFree(p));
    EXPECT_OK(aclrtFree(q));
}

TEST(test_memset)
{
    enum { N = 4096 };
    void *d = NULL;
    EXPECT_OK(aclrtMalloc(&d, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMemset(d, N, 0x12345ab, N));
    CHECKF(dev_all_bytes(d, N, 0xab), "aclrtMemset must use the low byte of value");
    EXPECT_OK(aclrtMemset(d, N, 0x11, 100));
    uint8_t *h = dev_read(d, N);
    CHECK(all_bytes(h, 100, 0x11) && all_bytes(h + 100, N - 100, 0xab));
    g_free(h);
    EXPECT_ERR(aclrtMemset(d, 100, 0, 101), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemset(NULL, 100, 0, 100), ACL_ERROR_RT_PARAM_INVALID);
    CHECK(dev_all_bytes((uint8_t *)d + 100, N - 100, 0xab));
    /* Pinned host memory too. */
    void *pin = NULL;
    if (!EXPECT_OK(aclrtMallocHost(&pin, N)))
        return;
    EXPECT_OK(aclrtMemset(pin, N, -1, N));
    CHECK(all_bytes(pin, N, 0xff));
    EXPECT_OK(aclrtFreeHost(pin));
    EXPECT_OK(aclrtFree(d));
}

TEST(test_memset_d32)
{
    enum { WORDS = 1024 };
    void *d = NULL;
    uint32_t h[WORDS];
    EXPECT_OK(aclrtMalloc(&d, sizeof(h), ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMemset(d, sizeof(h), 0, sizeof(h)));
    EXPECT_OK(aclrtMemsetD32(d, sizeof(h), 0xdeadbeefu, 1000));
    EXPECT_OK(aclrtMemcpy(h, sizeof(h), d, sizeof(h), ACL_MEMCPY_DEVICE_TO_HOST));
    bool ok = true;
    for (int i = 0; i < WORDS; i++)
        ok &= h[i] == (i < 1000 ? 0xdeadbeefu : 0u);
    CHECKF(ok, "aclrtMemsetD32 must fill exactly N 32-bit words");
    EXPECT_ERR(aclrtMemsetD32(d, 3999, 1, 1000), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemsetD32(NULL, 4000, 1, 1000), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtFree(d));
}

/* Two big device buffers that keep a stream busy for a while. */
typedef struct Busy {
    void *a, *b;
} Busy;

static bool busy_alloc(Busy *bz)
{
    bz->a = bz->b = NULL;
    return EXPECT_OK(aclrtMalloc(&bz->a, BIG, ACL_MEM_MALLOC_HUGE_FIRST)) &&
           EXPECT_OK(aclrtMalloc(&bz->b, BIG, ACL_MEM_MALLOC_HUGE_FIRST)) &&
           EXPECT_OK(aclrtMemsetD32(bz->a, BIG, 0x5a5a0001u, BIG / 4)) &&
           EXPECT_OK(aclrtMemset(bz->b, BIG, 0, BIG));
}

static void busy_free(Busy *bz)
{
    EXPECT_OK(aclrtFree(bz->a));
    EXPECT_OK(aclrtFree(bz->b));
}

TEST(test_memcpy_async_pinned)
{
    enum { N = 64 * 1024 };
    Busy bz;
    aclrtStream s = NULL;
    void *pin = NULL, *pin2 = NULL, *d = NULL, *d2 = NULL;
    uint8_t data[N], data2[N];
    fill_pattern(data, N, 21);
    fill_pattern(data2, N, 22);
    if (!busy_alloc(&bz))
        return;
    EXPECT_OK(aclrtCreateStream(&s));
    if (!EXPECT_OK(aclrtMallocHost(&pin, N)) || !EXPECT_OK(aclrtMallocHost(&pin2, N)))
        return;
    EXPECT_OK(aclrtMalloc(&d, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMalloc(&d2, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMemcpy(d, N, data, N, ACL_MEMCPY_HOST_TO_DEVICE));
    EXPECT_OK(aclrtMemset(d2, N, 0x77, N));
    memset(pin, 0xee, N);
    memcpy(pin2, data2, N);

    /* Behind a 256 MiB copy nothing has happened yet when the calls return. */
    EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    EXPECT_OK(aclrtMemcpyAsync(pin, N, d, N, ACL_MEMCPY_DEVICE_TO_HOST, s));
    EXPECT_OK(aclrtMemcpyAsync(d2, N, pin2, N, ACL_MEMCPY_HOST_TO_DEVICE, s));
    CHECKF(all_bytes(pin, N, 0xee), "D2H into pinned memory is not asynchronous");
    CHECKF(dev_all_bytes(d2, N, 0x77), "H2D from pinned memory is not asynchronous");
    EXPECT_OK(aclrtSynchronizeStream(s));
    CHECKF(memcmp(pin, data, N) == 0, "async D2H into pinned memory: wrong data after sync");
    CHECKF(dev_equals(d2, data2, N), "async H2D from pinned memory: wrong data after sync");
    uint8_t *tail = dev_read((uint8_t *)bz.b + BIG - N, N);
    uint8_t *want = dev_read((uint8_t *)bz.a + BIG - N, N);
    CHECKF(memcmp(tail, want, N) == 0, "async D2D: wrong data after sync");
    g_free(tail);
    g_free(want);

    EXPECT_OK(aclrtDestroyStream(s));
    EXPECT_OK(aclrtFreeHost(pin));
    EXPECT_OK(aclrtFreeHost(pin2));
    EXPECT_OK(aclrtFree(d));
    EXPECT_OK(aclrtFree(d2));
    busy_free(&bz);
}

TEST(test_memcpy_async_pageable)
{
    enum { N = 64 * 1024 };
    Busy bz;
    aclrtStream s = NULL;
    void *d = NULL;
    uint8_t *data = g_malloc(N), *back = g_malloc(N);
    fill_pattern(data, N, 31);
    memset(back, 0, N);
    if (!busy_alloc(&bz))
        return;
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtMalloc(&d, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    /* Pageable host memory: the copy is done (in stream order) on return. */
    EXPECT_OK(aclrtMemcpyAsync(d, N, data, N, ACL_MEMCPY_HOST_TO_DEVICE, s));
    CHECKF(dev_equals(d, data, N), "async H2D from pageable memory not done on return");
    uint8_t *tail = dev_read((uint8_t *)bz.b + BIG - 64, 64);
    CHECKF(all_bytes(tail, 64, 0) == false, "the earlier D2D copy had not finished");
    g_free(tail);
    EXPECT_OK(aclrtMemcpyAsync(back, N, d, N, ACL_MEMCPY_DEVICE_TO_HOST, s));
    CHECKF(memcmp(back, data, N) == 0, "async D2H into pageable memory not done on return");
    EXPECT_OK(aclrtSynchronizeStream(s));
    EXPECT_OK(aclrtDestroyStream(s));
    EXPECT_OK(aclrtFree(d));
    busy_free(&bz);
    g_free(data);
    g_free(back);
}

TEST(test_memcpy_async_bad)
{
    enum { N = 4096 };
    void *pin = NULL, *pin2 = NULL, *d = NULL;
    uint8_t a[N], b[N];
    memset(a, 1, N);
    EXPECT_OK(aclrtMallocHost(&pin, N));
    EXPECT_OK(aclrtMallocHost(&pin2, N));
    EXPECT_OK(aclrtMalloc(&d, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_ERR(aclrtMemcpyAsync(b, N, a, N, ACL_MEMCPY_HOST_TO_HOST, NULL),
               ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    EXPECT_ERR(aclrtMemcpyAsync(pin2, N, pin, N, ACL_MEMCPY_HOST_TO_HOST, NULL),
               ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    EXPECT_ERR(aclrtMemcpyAsync(d, N, pin, N, (aclrtMemcpyKind)99, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpyAsync(d, N - 1, pin, N, ACL_MEMCPY_HOST_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpyAsync(NULL, N, pin, N, ACL_MEMCPY_HOST_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpyAsync(d, N, NULL, N, ACL_MEMCPY_HOST_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemsetAsync(d, 100, 0, 101, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemsetD32Async(d, 399, 0, 100, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    EXPECT_OK(aclrtFreeHost(pin));
    EXPECT_OK(aclrtFreeHost(pin2));
    EXPECT_OK(aclrtFree(d));
}

TEST(test_memcpy_async_default_stream)
{
    enum { N = 64 * 1024 };
    Busy bz;
    aclrtStream def = NULL;
    void *pin = NULL, *d = NULL;
    uint8_t data[N];
    fill_pattern(data, N, 41);
    if (!busy_alloc(&bz))
        return;
    EXPECT_OK(aclrtCtxGetCurrentDefaultStream(&def));
    CHECK(def != NULL);
    if (!EXPECT_OK(aclrtMallocHost(&pin, N)))
        return;
    EXPECT_OK(aclrtMalloc(&d, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMemcpy(d, N, data, N, ACL_MEMCPY_HOST_TO_DEVICE));
    memset(pin, 0, N);
    EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, NULL));
    EXPECT_OK(aclrtMemcpyAsync(pin, N, d, N, ACL_MEMCPY_DEVICE_TO_HOST, NULL));
    /* Synchronising the default stream by its handle waits for NULL's tasks. */
    EXPECT_OK(aclrtSynchronizeStream(def));
    CHECKF(memcmp(pin, data, N) == 0, "a copy queued on NULL was not on the default stream");
    uint8_t *tail = dev_read((uint8_t *)bz.b + BIG - 64, 64);
    CHECK(!all_bytes(tail, 64, 0));
    g_free(tail);
    EXPECT_OK(aclrtFreeHost(pin));
    EXPECT_OK(aclrtFree(d));
    busy_free(&bz);
}

TEST(test_async_other_device_stream)
{
    enum { N = 4096 };
    aclrtStream s1 = NULL;
    aclrtContext c1 = NULL;
    void *pin = NULL, *d = NULL;
    EXPECT_OK(aclrtMallocHost(&pin, N));
    EXPECT_OK(aclrtMalloc(&d, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtSetDevice(1));
    EXPECT_OK(aclrtGetCurrentContext(&c1));
    EXPECT_OK(aclrtCreateStream(&s1));
    use_dev0();
    EXPECT_ERR(aclrtMemcpyAsync(d, N, pin, N, ACL_MEMCPY_HOST_TO_DEVICE, s1),
               ACL_ERROR_RT_STREAM_CONTEXT);
    EXPECT_ERR(aclrtMemsetAsync(d, N, 0, N, s1), ACL_ERROR_RT_STREAM_CONTEXT);
    EXPECT_ERR(aclrtMemsetD32Async(d, N, 0, N / 4, s1), ACL_ERROR_RT_STREAM_CONTEXT);
    EXPECT_ERR(aclrtDestroyStream(s1), ACL_ERROR_RT_STREAM_CONTEXT);
    EXPECT_OK(aclrtSetCurrentContext(c1));
    EXPECT_OK(aclrtDestroyStream(s1));
    EXPECT_OK(aclrtResetDevice(1));
    use_dev0();
    EXPECT_OK(aclrtFreeHost(pin));
    EXPECT_OK(aclrtFree(d));
}

TEST(test_memset_async)
{
    enum { N = 4096 };
    aclrtStream s = NULL;
    void *d = NULL, *pin = NULL;
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtMalloc(&d, N, ACL_MEM_MALLOC_HUGE_FIRST));
    if (!EXPECT_OK(aclrtMallocHost(&pin, N)))
        return;
    EXPECT_OK(aclrtMemsetAsync(d, N, 0x1c7, N, s));
    EXPECT_OK(aclrtSynchronizeStream(s));
    CHECKF(dev_all_bytes(d, N, 0xc7), "aclrtMemsetAsync: wrong bytes after sync");
    EXPECT_OK(aclrtMemsetD32Async(d, N, 0xcafef00du, 1000, s));
    EXPECT_OK(aclrtSynchronizeStream(s));
    uint32_t w[N / 4];
    EXPECT_OK(aclrtMemcpy(w, N, d, N, ACL_MEMCPY_DEVICE_TO_HOST));
    bool ok = true;
    for (int i = 0; i < N / 4; i++)
        ok &= w[i] == (i < 1000 ? 0xcafef00du : 0xc7c7c7c7u);
    CHECKF(ok, "aclrtMemsetD32Async must fill exactly N words");
    /* Default stream, pinned memory. */
    EXPECT_OK(aclrtMemsetAsync(pin, N, 0x3c, N, NULL));
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    CHECK(all_bytes(pin, N, 0x3c));
    EXPECT_OK(aclrtMemsetD32Async(pin, N, 0x01020304u, N / 4, NULL));
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    CHECK(((uint32_t *)pin)[0] == 0x01020304u && ((uint32_t *)pin)[N / 4 - 1] == 0x01020304u);
    EXPECT_OK(aclrtDestroyStream(s));
    EXPECT_OK(aclrtFree(d));
    EXPECT_OK(aclrtFreeHost(pin));
}

TEST(test_async_dma_error)
{
    enum { N = 4096 };
    aclrtStream s1 = NULL, s2 = NULL;
    void *d = NULL, *d2 = NULL, *pin = NULL;
    uint8_t data[N];
    fill_pattern(data, N, 51);
    EXPECT_OK(aclrtCreateStream(&s1));
    EXPECT_OK(aclrtCreateStream(&s2));
    EXPECT_OK(aclrtMalloc(&d, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMalloc(&d2, N, ACL_MEM_MALLOC_HUGE_FIRST));
    if (!EXPECT_OK(aclrtMallocHost(&pin, N)))
        return;
    memcpy(pin, data, N);
    /* Queued fine; the device finds out. */
    EXPECT_OK(aclrtMemcpyAsync(d, N, (void *)(uintptr_t)0x150000000000ull, N,
                               ACL_MEMCPY_DEVICE_TO_DEVICE, s1));
    EXPECT_OK(aclrtMemcpyAsync(d2, N, pin, N, ACL_MEMCPY_HOST_TO_DEVICE, s2));
    EXPECT_OK(aclrtSynchronizeStream(s2));
    CHECKF(dev_equals(d2, data, N), "a stream beside the failing one lost its copy");
    EXPECT_ERR(aclrtSynchronizeStream(s1), ACL_ERROR_RT_SYS_DMA);
    EXPECT_OK(aclrtSynchronizeStream(s1));     /* the error was consumed */
    /* The stream keeps working. */
    EXPECT_OK(aclrtMemcpyAsync(d, N, pin, N, ACL_MEMCPY_HOST_TO_DEVICE, s1));
    EXPECT_OK(aclrtSynchronizeStream(s1));
    CHECK(dev_equals(d, data, N));
    EXPECT_OK(aclrtSynchronizeStream(s2));
    /* aclrtSynchronizeDevice reports (and consumes) a stream's failure too. */
    EXPECT_OK(aclrtMemcpyAsync(d, N, (void *)(uintptr_t)0x150000000000ull, N,
                               ACL_MEMCPY_DEVICE_TO_DEVICE, s1));
    EXPECT_ERR(aclrtSynchronizeDevice(), ACL_ERROR_RT_SYS_DMA);
    EXPECT_OK(aclrtSynchronizeStream(s1));
    EXPECT_OK(aclrtSynchronizeDevice());
    EXPECT_OK(aclrtDestroyStream(s1));
    EXPECT_OK(aclrtDestroyStream(s2));
    EXPECT_OK(aclrtFree(d));
    EXPECT_OK(aclrtFree(d2));
    EXPECT_OK(aclrtFreeHost(pin));
}

/* ---- 2D copies ---- */

/* 65504 bytes in 4 KiB pages: ALIGN_UP(65504, 32) + 32 = 65536, 16 whole pages,
 * so the allocation ends exactly where its memory ends. */
#define SUB_ALLOC 65504u
#define SUB_END   65536u

/* Whether buf[0, n) holds, from off on, the w x h rectangle of src (rows sp
 * apart) with rows dp apart, and bg everywhere else. */
static bool rect_ok(const uint8_t *buf, size_t n, size_t off, size_t dp, const uint8_t *src,
                    size_t sp, size_t w, size_t h, uint8_t bg)
{
    for (size_t i = 0; i < n; i++) {
        size_t rel = i - off;
        bool inside = i >= off && rel / dp < h && rel % dp < w;
        if (buf[i] != (inside ? src[rel / dp * sp + rel % dp] : bg))
            return false;
    }
    return true;
}

TEST(test_memcpy2d)
{
    enum { N = SUB_END, W = 100, H = 50, SP = 300, DP = 256, SOFF = 7, DOFF = 13 };
    void *d = NULL, *pin = NULL;
    uint8_t *src = g_malloc(N), *back = g_malloc(N), *got = NULL;
    fill_pattern(src, N, 61);
    EXPECT_OK(aclrtMalloc(&d, SUB_ALLOC, ACL_MEM_MALLOC_NORMAL_ONLY));
    EXPECT_OK(aclrtMallocHost(&pin, N));
    if (!d || !pin)
        goto out;
    /* pageable host -> device: a sub-rectangle between different pitches */
    EXPECT_OK(aclrtMemset(d, N, 0xee, N));
    EXPECT_OK(aclrtMemcpy2d((uint8_t *)d + DOFF, DP, src + SOFF, SP, W, H,
                            ACL_MEMCPY_HOST_TO_DEVICE));
    got = dev_read(d, N);
    CHECKF(rect_ok(got, N, DOFF, DP, src + SOFF, SP, W, H, 0xee),
           "H2D 2D copy from pageable memory: wrong bytes inside or outside the rectangle");
    g_free(got);
    /* device -> pageable host, into a third pitch */
    memset(back, 0x11, N);
    EXPECT_OK(aclrtMemcpy2d(back + 5, 120, (uint8_t *)d + DOFF, DP, W, H,
                            ACL_MEMCPY_DEVICE_TO_HOST));
    CHECKF(rect_ok(back, N, 5, 120, src + SOFF, SP, W, H, 0x11),
           "D2H 2D copy into pageable memory: wrong bytes");
    /* pinned host memory both ways; dpitch == width packs the rows */
    memcpy(pin, src, N);
    EXPECT_OK(aclrtMemset(d, N, 0xee, N));
    EXPECT_OK(aclrtMemcpy2d(d, 64, pin, 1000, 64, 60, ACL_MEMCPY_HOST_TO_DEVICE));
    got = dev_read(d, N);
    CHECKF(rect_ok(got, N, 0, 64, src, 1000, 64, 60, 0xee), "H2D 2D copy from pinned memory");
    g_free(got);
    memset(pin, 0x22, N);
    EXPECT_OK(aclrtMemcpy2d((uint8_t *)pin + 1, 2000, d, 64, 64, 30, ACL_MEMCPY_DEVICE_TO_HOST));
    CHECKF(rect_ok(pin, N, 1, 2000, src, 1000, 64, 30, 0x22), "D2H 2D copy into pinned memory");
    /* the last row may end exactly at the end of the allocation */
    EXPECT_OK(aclrtMemset(d, N, 0xee, N));
    EXPECT_OK(aclrtMemcpy2d((uint8_t *)d + N - 2010, 1000, src, 10, 10, 3,
                            ACL_MEMCPY_HOST_TO_DEVICE));
    got = dev_read(d, N);
    CHECK(rect_ok(got, N, N - 2010, 1000, src, 10, 10, 3, 0xee));
    g_free(got);
    /* one row as wide as the allocation */
    EXPECT_OK(aclrtMemcpy2d(d, N, src, N, N, 1, ACL_MEMCPY_HOST_TO_DEVICE));
    CHECK(dev_equals(d, src, N));
out:
    if (pin)
        EXPECT_OK(aclrtFreeHost(pin));
    if (d)
        EXPECT_OK(aclrtFree(d));
    g_free(src);
    g_free(back);
}

/* aclrtMemcpy2d's width and height limits are documented for the asynchronous
 * call only; the synchronous one copies rows wider than 5000000 bytes. */
TEST(test_memcpy2d_wide_rows)
{
    enum { W = 5000001, P = 5000064 };
    void *d = NULL;
    uint8_t *h = g_malloc(2 * P), *back = g_malloc(2 * P);
    fill_pattern(h, 2 * P, 62);
    memset(back, 0, 2 * P);
    if (EXPECT_OK(aclrtMalloc(&d, 2 * P, ACL_MEM_MALLOC_HUGE_FIRST))) {
        EXPECT_OK(aclrtMemcpy2d(d, P, h, P, W, 2, ACL_MEMCPY_HOST_TO_DEVICE));
        EXPECT_OK(aclrtMemcpy2d(back, P, d, P, W, 2, ACL_MEMCPY_DEVICE_TO_HOST));
        CHECK(rect_ok(back, 2 * P, 0, P, h, P, W, 2, 0));
        EXPECT_ERR(aclrtMemcpy2dAsync(d, P, h, P, W, 2, ACL_MEMCPY_HOST_TO_DEVICE, NULL),
                   ACL_ERROR_RT_PARAM_INVALID);
        EXPECT_OK(aclrtFree(d));
    }
    g_free(h);
    g_free(back);
}

TEST(test_memcpy2d_bad)
{
    enum { N = SUB_END };
    void *d = NULL, *d2 = NULL, *gone = NULL, *pin = NULL;
    uint8_t *h = g_malloc(N), *h2 = g_malloc(N);
    fill_pattern(h, N, 63);
    memset(h2, 0x33, N);
    EXPECT_OK(aclrtMalloc(&d, SUB_ALLOC, ACL_MEM_MALLOC_NORMAL_ONLY));
    EXPECT_OK(aclrtMalloc(&d2, SUB_ALLOC, ACL_MEM_MALLOC_NORMAL_ONLY));
    EXPECT_OK(aclrtMalloc(&gone, 4096, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtFree(gone));
    EXPECT_OK(aclrtMallocHost(&pin, 4096));
    if (!d || !d2 || !pin)
        goto out;
    EXPECT_OK(aclrtMemset(d, N, 0xee, N));

    /* Only host-to-device and device-to-host: ACL_ERROR_INVALID_PARAM otherwise. */
    const aclrtMemcpyKind bad_kinds[] = {
        ACL_MEMCPY_HOST_TO_HOST, ACL_MEMCPY_DEVICE_TO_DEVICE, ACL_MEMCPY_DEFAULT,
        ACL_MEMCPY_HOST_TO_BUF_TO_DEVICE, ACL_MEMCPY_INNER_DEVICE_TO_DEVICE,
        ACL_MEMCPY_INTER_DEVICE_TO_DEVICE, (aclrtMemcpyKind)8, (aclrtMemcpyKind)-1,
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad_kinds); i++)
        EXPECT_ERR(aclrtMemcpy2d(d, 64, d2, 64, 64, 2, bad_kinds[i]), ACL_ERROR_INVALID_PARAM);
    EXPECT_ERR(aclrtMemcpy2d(h2, 64, h, 64, 64, 2, ACL_MEMCPY_HOST_TO_HOST),
               ACL_ERROR_INVALID_PARAM);
    /* NULL pointers, nothing to copy, rows wider than a pitch */
    EXPECT_ERR(aclrtMemcpy2d(NULL, 64, h, 64, 64, 2, ACL_MEMCPY_HOST_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2d(d, 64, NULL, 64, 64, 2, ACL_MEMCPY_HOST_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2d(d, 64, h, 64, 0, 2, ACL_MEMCPY_HOST_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2d(d, 64, h, 64, 64, 0, ACL_MEMCPY_HOST_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2d(d, 64, h, 128, 65, 2, ACL_MEMCPY_HOST_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2d(d, 128, h, 64, 65, 2, ACL_MEMCPY_HOST_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2d(d, 64, h, 128, 65, 1, ACL_MEMCPY_HOST_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    /* a footprint past the end of the address space */
    EXPECT_ERR(aclrtMemcpy2d(d, SIZE_MAX / 2, h, 64, 64, 3, ACL_MEMCPY_HOST_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    /* pointers that contradict the kind */
    EXPECT_ERR(aclrtMemcpy2d(h2, 64, h, 64, 64, 2, ACL_MEMCPY_HOST_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2d(d, 64, d2, 64, 64, 2, ACL_MEMCPY_HOST_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2d(d, 64, h, 64, 64, 2, ACL_MEMCPY_DEVICE_TO_HOST),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2d(h2, 64, pin, 64, 64, 2, ACL_MEMCPY_DEVICE_TO_HOST),
               ACL_ERROR_RT_PARAM_INVALID);
    /* a last row past the end of the allocation, and freed memory: nothing moves */
    EXPECT_ERR(aclrtMemcpy2d((uint8_t *)d + N - 2010, 1000, h, 10, 10, 3 + 1,
                             ACL_MEMCPY_HOST_TO_DEVICE), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2d((uint8_t *)d + N - 2009, 1000, h, 10, 10, 3,
                             ACL_MEMCPY_HOST_TO_DEVICE), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2d(h2, 64, (uint8_t *)d + N - 64, 64, 64, 2,
                             ACL_MEMCPY_DEVICE_TO_HOST), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2d(gone, 64, h, 64, 64, 2, ACL_MEMCPY_HOST_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2d(h2, 64, gone, 64, 64, 2, ACL_MEMCPY_DEVICE_TO_HOST),
               ACL_ERROR_RT_PARAM_INVALID);
    CHECKF(dev_all_bytes(d, N, 0xee), "a rejected 2D copy wrote device memory");
    CHECKF(all_bytes(h2, N, 0x33), "a rejected 2D copy wrote host memory");
out:
    if (pin)
        EXPECT_OK(aclrtFreeHost(pin));
    if (d)
        EXPECT_OK(aclrtFree(d));
    if (d2)
        EXPECT_OK(aclrtFree(d2));
    g_free(h);
    g_free(h2);
}

TEST(test_memcpy2d_async)
{
    enum { N = SUB_END, W = 100, H = 50 };
    Busy bz;
    aclrtStream s = NULL;
    void *d = NULL, *d2 = NULL, *pin = NULL;
    uint8_t *src = g_malloc(N), *got = NULL;
    fill_pattern(src, N, 64);
    if (!busy_alloc(&bz))
        goto out;
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtMalloc(&d, SUB_ALLOC, ACL_MEM_MALLOC_NORMAL_ONLY));
    EXPECT_OK(aclrtMalloc(&d2, SUB_ALLOC, ACL_MEM_MALLOC_NORMAL_ONLY));
    EXPECT_OK(aclrtMallocHost(&pin, N));
    if (!d || !d2 || !pin)
        goto out;
    EXPECT_OK(aclrtMemcpy(d, N, src, N, ACL_MEMCPY_HOST_TO_DEVICE));
    EXPECT_OK(aclrtMemset(d2, N, 0xee, N));

    /* device to device behind a 256 MiB copy: queued, not done, until the sync */
    EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    EXPECT_OK(aclrtMemcpy2dAsync((uint8_t *)d2 + 3, 200, (uint8_t *)d + 9, 333, W, H,
                                 ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    CHECKF(dev_all_bytes(d2, N, 0xee), "async D2D 2D copy ran before the stream reached it");
    EXPECT_OK(aclrtSynchronizeStream(s));
    got = dev_read(d2, N);
    CHECKF(rect_ok(got, N, 3, 200, src + 9, 333, W, H, 0xee), "async D2D 2D copy: wrong bytes");
    g_free(got);

    /* pinned memory: asynchronous both ways */
    memset(pin, 0x44, N);
    EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    EXPECT_OK(aclrtMemcpy2dAsync(pin, 128, d, 256, W, H, ACL_MEMCPY_DEVICE_TO_HOST, s));
    CHECKF(all_bytes(pin, N, 0x44), "async D2H 2D copy into pinned memory is not asynchronous");
    EXPECT_OK(aclrtSynchronizeStream(s));
    CHECKF(rect_ok(pin, N, 0, 128, src, 256, W, H, 0x44), "async D2H 2D copy: wrong bytes");
    memcpy(pin, src, N);
    EXPECT_OK(aclrtMemset(d2, N, 0xee, N));
    EXPECT_OK(aclrtMemcpy2dAsync(d2, 64, (uint8_t *)pin + 100, 500, 64, 100,
                                 ACL_MEMCPY_HOST_TO_DEVICE, NULL));
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    got = dev_read(d2, N);
    CHECKF(rect_ok(got, N, 0, 64, src + 100, 500, 64, 100, 0xee),
           "async H2D 2D copy from pinned memory: wrong bytes");
    g_free(got);

    /* pageable memory: done, in stream order, when the call returns */
    uint8_t *back = g_malloc(N);
    memset(back, 0x55, N);
    EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    EXPECT_OK(aclrtMemcpy2dAsync(back + 2, 300, d, 256, W, H, ACL_MEMCPY_DEVICE_TO_HOST, s));
    CHECKF(rect_ok(back, N, 2, 300, src, 256, W, H, 0x55),
           "async D2H 2D copy into pageable memory not done on return");
    EXPECT_OK(aclrtMemset(d2, N, 0xee, N));
    EXPECT_OK(aclrtMemcpy2dAsync((uint8_t *)d2 + 1, 99, src, 1000, 99, 60,
                                 ACL_MEMCPY_HOST_TO_DEVICE, s));
    got = dev_read(d2, N);
    CHECKF(rect_ok(got, N, 1, 99, src, 1000, 99, 60, 0xee),
           "async H2D 2D copy from pageable memory not done on return");
    g_free(got);
    g_free(back);
    EXPECT_OK(aclrtSynchronizeStream(s));
out:
    if (s)
        EXPECT_OK(aclrtDestroyStream(s));
    if (pin)
        EXPECT_OK(aclrtFreeHost(pin));
    if (d)
        EXPECT_OK(aclrtFree(d));
    if (d2)
        EXPECT_OK(aclrtFree(d2));
    if (bz.a)
        busy_free(&bz);
    g_free(src);
}

/* The documented maximum height is one task: 5 Mi rows of one byte. */
TEST(test_memcpy2d_async_max_height)
{
    enum { H = 5 * 1024 * 1024, P = 2 };
    void *a = NULL, *b = NULL;
    uint8_t *h = g_malloc((size_t)H * P), *got = NULL;
    fill_pattern(h, (size_t)H * P, 65);
    EXPECT_OK(aclrtMalloc(&a, (size_t)H * P, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMalloc(&b, (size_t)H * P, ACL_MEM_MALLOC_HUGE_FIRST));
    if (!a || !b)
        goto out;
    EXPECT_OK(aclrtMemcpy(a, (size_t)H * P, h, (size_t)H * P, ACL_MEMCPY_HOST_TO_DEVICE));
    EXPECT_OK(aclrtMemset(b, (size_t)H * P, 0xee, (size_t)H * P));
    double t0 = now_s();
    EXPECT_OK(aclrtMemcpy2dAsync(b, P, a, P, 1, H, ACL_MEMCPY_DEVICE_TO_DEVICE, NULL));
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    double secs = now_s() - t0;
    got = dev_read(b, (size_t)H * P);
    CHECKF(rect_ok(got, (size_t)H * P, 0, P, h, P, 1, H, 0xee), "5 Mi-row copy: wrong bytes");
    CHECKF(secs < 5, "5 Mi rows took %.2f s", secs);
    EXPECT_ERR(aclrtMemcpy2dAsync(b, P, a, P, 1, H + 1, ACL_MEMCPY_DEVICE_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
out:
    g_free(got);
    g_free(h);
    if (a)
        EXPECT_OK(aclrtFree(a));
    if (b)
        EXPECT_OK(aclrtFree(b));
}

TEST(test_memcpy2d_async_bad)
{
    enum { N = 4096 };
    void *d = NULL, *d2 = NULL, *pin = NULL, *gone = NULL;
    uint8_t h[N];
    memset(h, 1, N);
    EXPECT_OK(aclrtMalloc(&d, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMalloc(&d2, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMalloc(&gone, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtFree(gone));
    EXPECT_OK(aclrtMallocHost(&pin, N));
    const aclrtMemcpyKind bad_kinds[] = {
        ACL_MEMCPY_HOST_TO_HOST, ACL_MEMCPY_DEFAULT, ACL_MEMCPY_HOST_TO_BUF_TO_DEVICE,
        ACL_MEMCPY_INNER_DEVICE_TO_DEVICE, ACL_MEMCPY_INTER_DEVICE_TO_DEVICE,
        (aclrtMemcpyKind)8, (aclrtMemcpyKind)-1,
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad_kinds); i++)
        EXPECT_ERR(aclrtMemcpy2dAsync(d, 64, d2, 64, 64, 2, bad_kinds[i], NULL),
                   ACL_ERROR_INVALID_PARAM);
    EXPECT_ERR(aclrtMemcpy2dAsync(NULL, 64, pin, 64, 64, 2, ACL_MEMCPY_HOST_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2dAsync(d, 64, NULL, 64, 64, 2, ACL_MEMCPY_HOST_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2dAsync(d, 64, pin, 64, 0, 2, ACL_MEMCPY_HOST_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2dAsync(d, 64, pin, 64, 64, 0, ACL_MEMCPY_HOST_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2dAsync(d, 63, pin, 64, 64, 2, ACL_MEMCPY_HOST_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2dAsync(d, 64, pin, 63, 64, 2, ACL_MEMCPY_HOST_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2dAsync(d, 8000000, pin, 8000000, 5000001, 1,
                                  ACL_MEMCPY_HOST_TO_DEVICE, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2dAsync(d, 1, pin, 1, 1, 5242881, ACL_MEMCPY_HOST_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2dAsync(pin, 64, h, 64, 64, 2, ACL_MEMCPY_HOST_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2dAsync(d, 64, pin, 64, 64, 2, ACL_MEMCPY_DEVICE_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy2dAsync(h, 64, d, 64, 64, 2, ACL_MEMCPY_DEVICE_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    /* freed memory with pageable host memory is caught before anything runs ... */
    EXPECT_ERR(aclrtMemcpy2dAsync(gone, 64, h, 64, 64, 2, ACL_MEMCPY_HOST_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    /* ... device to device the device finds out, and the next synchronise says so */
    EXPECT_OK(aclrtMemcpy2dAsync(d, 64, gone, 64, 64, 2, ACL_MEMCPY_DEVICE_TO_DEVICE, NULL));
    EXPECT_ERR(aclrtSynchronizeStream(NULL), ACL_ERROR_RT_SYS_DMA);
    /* rows past the end of the buffers' memory (4096 + 32 bytes take two 4 KiB pages) */
    EXPECT_OK(aclrtMemcpy2dAsync(d, 64, d2, 64, 64, 2 * N / 64 + 1, ACL_MEMCPY_DEVICE_TO_DEVICE,
                                 NULL));
    EXPECT_ERR(aclrtSynchronizeStream(NULL), ACL_ERROR_RT_SYS_DMA);
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    if (pin)
        EXPECT_OK(aclrtFreeHost(pin));
    EXPECT_OK(aclrtFree(d));
    EXPECT_OK(aclrtFree(d2));
}

/* ---- batch copies ---- */

enum { NB = 200, SLOT = 3000 };

/* A batch of NB copies between a device buffer of NB slots and two host
 * buffers: copies 0..99 use pageable memory, 100..199 pinned memory. */
typedef struct BatchFix {
    void *dev, *pin, *gone;
    uint8_t *page;
    void *dsts[NB], *srcs[NB];
    size_t destMaxs[NB], sizes[NB], idx[2];
    aclrtMemcpyBatchAttr attrs[2];
} BatchFix;

static size_t item_size(size_t i)
{
    return 1 + i * 37 % SLOT;
}

static aclrtMemLocation loc(aclrtMemLocationType type, uint32_t id)
{
    return (aclrtMemLocation){ .id = id, .type = type };
}

static bool batch_fix_new(BatchFix *f)
{
    memset(f, 0, sizeof(*f));
    f->page = g_malloc(NB * SLOT);
    return EXPECT_OK(aclrtMalloc(&f->dev, NB * SLOT, ACL_MEM_MALLOC_HUGE_FIRST)) &&
           EXPECT_OK(aclrtMallocHost(&f->pin, NB * SLOT)) &&
           EXPECT_OK(aclrtMalloc(&f->gone, 4096, ACL_MEM_MALLOC_HUGE_FIRST)) &&
           EXPECT_OK(aclrtFree(f->gone));
}

static void batch_fix_free(BatchFix *f)
{
    if (f->pin)
        EXPECT_OK(aclrtFreeHost(f->pin));
    if (f->dev)
        EXPECT_OK(aclrtFree(f->dev));
    g_free(f->page);
}

/* Host slot i: in pageable memory for the first half, pinned for the second. */
static uint8_t *host_slot(BatchFix *f, size_t i)
{
    return (i < NB / 2 ? f->page : (uint8_t *)f->pin) + i * SLOT;
}

/* Host to device (h2d) or device to host, with fresh data at the source and
 * 0xee at the destination. */
static void batch_fix_setup(BatchFix *f, bool h2d)
{
    fill_pattern(f->page, NB * SLOT, h2d ? 71 : 72);
    fill_pattern(f->pin, NB * SLOT, h2d ? 73 : 74);
    uint8_t *scratch = g_malloc(NB * SLOT);
    fill_pattern(scratch, NB * SLOT, 75);
    EXPECT_OK(aclrtMemcpy(f->dev, NB * SLOT, scratch, NB * SLOT, ACL_MEMCPY_HOST_TO_DEVICE));
    g_free(scratch);
    if (h2d)
        EXPECT_OK(aclrtMemset(f->dev, NB * SLOT, 0xee, NB * SLOT));
    else {
        memset(f->page, 0xee, NB * SLOT);
        memset(f->pin, 0xee, NB * SLOT);
    }
    aclrtMemLocation dev = loc(ACL_MEM_LOCATION_TYPE_DEVICE, 0);
    aclrtMemLocation pageable = loc(ACL_MEM_LOCATION_TYPE_UNREGISTERED, 0);
    aclrtMemLocation pinned = loc(ACL_MEM_LOCATION_TYPE_HOST, 0);
    for (size_t i = 0; i < NB; i++) {
        uint8_t *ds = (uint8_t *)f->dev + i * SLOT;
        f->dsts[i] = h2d ? (void *)ds : host_slot(f, i);
        f->srcs[i] = h2d ? host_slot(f, i) : (void *)ds;
        f->sizes[i] = item_size(i);
        f->destMaxs[i] = SLOT;
    }
    f->idx[0] = 0;
    f->idx[1] = NB / 2;
    memset(f->attrs, 0, sizeof(f->attrs));
    f->attrs[0] = (aclrtMemcpyBatchAttr){ .dstLoc = h2d ? dev : pageable,
                                          .srcLoc = h2d ? pageable : dev };
    f->attrs[1] = (aclrtMemcpyBatchAttr){ .dstLoc = h2d ? dev : pinned,
                                          .srcLoc = h2d ? pinned : dev };
}

/* Checksums every destination slot against its source, and the bytes after
 * each copy against 0xee.  The device side is read back first. */
static bool batch_fix_done(BatchFix *f, bool h2d)
{
    uint8_t *dev = dev_read(f->dev, NB * SLOT);
    bool ok = true;
    for (size_t i = 0; i < NB; i++) {
        const uint8_t *d = h2d ? dev + i * SLOT : host_slot(f, i);
        const uint8_t *s = h2d ? host_slot(f, i) : dev + i * SLOT;
        size_t n = item_size(i);
        ok &= checksum(d, n) == checksum(s, n) && all_bytes(d + n, SLOT - n, 0xee);
    }
    g_free(dev);
    return ok;
}

/* Nothing was copied: every destination byte is still 0xee. */
static bool batch_fix_untouched(BatchFix *f, bool h2d)
{
    if (h2d)
        return dev_all_bytes(f->dev, NB * SLOT, 0xee);
    return all_bytes(f->page, NB * SLOT, 0xee) && all_bytes(f->pin, NB * SLOT, 0xee);
}

#define BATCH_CALL(f, nb, na, fail) \
    aclrtMemcpyBatch((f)->dsts, (f)->destMaxs, (f)->srcs, (f)->sizes, (nb), (f)->attrs, \
                     (f)->idx, (na), (fail))

TEST(test_memcpy_batch)
{
    BatchFix f;
    size_t fail = 12345;
    if (!batch_fix_new(&f))
        goto out;
    for (int h2d = 1; h2d >= 0; h2d--) {
        batch_fix_setup(&f, h2d);
        fail = 12345;
        EXPECT_OK(BATCH_CALL(&f, NB, 2, &fail));
        CHECKF(batch_fix_done(&f, h2d), "aclrtMemcpyBatch %s: wrong data",
               h2d ? "H2D" : "D2H");
        CHECK(fail == SIZE_MAX);
        batch_fix_setup(&f, h2d);
        EXPECT_OK(aclrtMemcpyBatchV2(f.dsts, f.destMaxs, f.srcs, f.sizes, NB, f.attrs, f.idx,
                                     2));
        CHECKF(batch_fix_done(&f, h2d), "aclrtMemcpyBatchV2 %s: wrong data",
               h2d ? "H2D" : "D2H");
    }
    /* one attribute entry for a batch of one, and copies of 0 bytes */
    batch_fix_setup(&f, true);
    f.attrs[0] = f.attrs[1];
    f.sizes[NB / 2] = 0;
    EXPECT_OK(aclrtMemcpyBatch(f.dsts + NB / 2, f.destMaxs, f.srcs + NB / 2, f.sizes + NB / 2, 1,
                               f.attrs, f.idx, 1, &fail));
    CHECK(dev_all_bytes(f.dev, NB * SLOT, 0xee));
    EXPECT_OK(aclrtMemcpyBatch(f.dsts + NB / 2 + 1, f.destMaxs, f.srcs + NB / 2 + 1,
                               f.sizes + NB / 2 + 1, 1, f.attrs, f.idx, 1, &fail));
    CHECK(dev_equals(f.dsts[NB / 2 + 1], f.srcs[NB / 2 + 1], item_size(NB / 2 + 1)));
out:
    batch_fix_free(&f);
}

/* A copy whose memory its attributes do not describe, or whose direction is not
 * the batch's, fails the batch with its index; nothing is copied. */
TEST(test_memcpy_batch_fail_index)
{
    BatchFix f;
    size_t fail = 0;
    int on_stack[4] = { 0 };
    if (!batch_fix_new(&f))
        goto out;
    batch_fix_setup(&f, true);
    /* device memory of another device id */
    f.attrs[1].dstLoc.id = 1;
    EXPECT_ERR(BATCH_CALL(&f, NB, 2, &fail), ACL_ERROR_RT_PARAM_INVALID);
    CHECKF(fail == NB / 2, "failIndex %zu, expected %d", fail, NB / 2);
    f.attrs[1].dstLoc.id = 0;
    /* pinned memory described as pageable, and pageable memory as pinned */
    void *keep = f.srcs[57];
    f.srcs[57] = f.srcs[NB - 1];
    EXPECT_ERR(BATCH_CALL(&f, NB, 2, &fail), ACL_ERROR_RT_PARAM_INVALID);
    CHECKF(fail == 57, "failIndex %zu, expected 57", fail);
    f.srcs[57] = keep;
    keep = f.srcs[150];
    f.srcs[150] = on_stack;
    EXPECT_ERR(BATCH_CALL(&f, NB, 2, &fail), ACL_ERROR_RT_PARAM_INVALID);
    CHECKF(fail == 150, "failIndex %zu, expected 150", fail);
    f.srcs[150] = keep;
    /* a freed device pointer, and a range running past its allocation */
    keep = f.dsts[3];
    f.dsts[3] = f.gone;
    EXPECT_ERR(BATCH_CALL(&f, NB, 2, &fail), ACL_ERROR_RT_PARAM_INVALID);
    CHECKF(fail == 3, "failIndex %zu, expected 3", fail);
    f.dsts[3] = keep;
    size_t keep_size = f.sizes[NB - 1];
    f.sizes[NB - 1] = SLOT;
    f.dsts[NB - 1] = (uint8_t *)f.dev + ALIGN_UP(NB * SLOT + 32, 4096) - SLOT / 2;
    EXPECT_ERR(BATCH_CALL(&f, NB, 2, &fail), ACL_ERROR_RT_PARAM_INVALID);
    CHECKF(fail == NB - 1, "failIndex %zu, expected %d", fail, NB - 1);
    f.dsts[NB - 1] = (uint8_t *)f.dev + (NB - 1) * SLOT;
    f.sizes[NB - 1] = keep_size;
    /* directions: device to host inside a host-to-device batch ... */
    const aclrtMemcpyBatchAttr h2d_pageable = f.attrs[0], h2d_pinned = f.attrs[1];
    const aclrtMemcpyBatchAttr d2h_pageable = { .dstLoc = h2d_pageable.srcLoc,
                                                .srcLoc = h2d_pageable.dstLoc };
    void *d9 = f.dsts[9];
    f.dsts[9] = f.srcs[9];
    f.srcs[9] = d9;
    aclrtMemcpyBatchAttr four[4] = { h2d_pageable, d2h_pageable, h2d_pageable, h2d_pinned };
    size_t idx4[4] = { 0, 9, 10, NB / 2 };
    EXPECT_ERR(aclrtMemcpyBatch(f.dsts, f.destMaxs, f.srcs, f.sizes, NB, four, idx4, 4, &fail),
               ACL_ERROR_RT_PARAM_INVALID);
    CHECKF(fail == 9, "failIndex %zu, expected 9", fail);
    /* ... and as the first copy: then the next one disagrees */
    aclrtMemcpyBatchAttr three[3] = { d2h_pageable, h2d_pageable, h2d_pinned };
    size_t idx3[3] = { 0, 1, NB / 2 - 9 };
    EXPECT_ERR(aclrtMemcpyBatch(f.dsts + 9, f.destMaxs + 9, f.srcs + 9, f.sizes + 9, NB - 9,
                                three, idx3, 3, &fail), ACL_ERROR_RT_PARAM_INVALID);
    CHECKF(fail == 1, "failIndex %zu, expected 1", fail);
    f.srcs[9] = f.dsts[9];
    f.dsts[9] = d9;
    /* device to device, host to host */
    four[1].dstLoc = four[1].srcLoc = loc(ACL_MEM_LOCATION_TYPE_DEVICE, 0);
    idx4[1] = 20;
    idx4[2] = 21;
    keep = f.srcs[20];
    f.srcs[20] = (uint8_t *)f.dev + (NB - 1) * SLOT;
    EXPECT_ERR(aclrtMemcpyBatch(f.dsts, f.destMaxs, f.srcs, f.sizes, NB, four, idx4, 4, &fail),
               ACL_ERROR_RT_PARAM_INVALID);
    CHECKF(fail == 20, "failIndex %zu, expected 20", fail);
    f.srcs[20] = keep;
    four[1].dstLoc = four[1].srcLoc = loc(ACL_MEM_LOCATION_TYPE_UNREGISTERED, 0);
    keep = f.dsts[20];
    f.dsts[20] = on_stack;
    EXPECT_ERR(aclrtMemcpyBatch(f.dsts, f.destMaxs, f.srcs, f.sizes, NB, four, idx4, 4, &fail),
               ACL_ERROR_RT_PARAM_INVALID);
    CHECKF(fail == 20, "failIndex %zu, expected 20", fail);
    f.dsts[20] = keep;
    /* types no memory here has: managed, NUMA host */
    f.attrs[1].srcLoc = loc(ACL_MEM_LOCATION_TYPE_MANAGED, 0);
    EXPECT_ERR(BATCH_CALL(&f, NB, 2, &fail), ACL_ERROR_RT_PARAM_INVALID);
    CHECKF(fail == NB / 2, "failIndex %zu, expected %d", fail, NB / 2);
    f.attrs[1].srcLoc = loc(ACL_MEM_LOCATION_TYPE_HOST_NUMA, 0);
    EXPECT_ERR(BATCH_CALL(&f, NB, 2, &fail), ACL_ERROR_RT_PARAM_INVALID);
    CHECKF(fail == NB / 2, "failIndex %zu, expected %d", fail, NB / 2);
    f.attrs[1].srcLoc = loc(ACL_MEM_LOCATION_TYPE_HOST, 0);
    CHECKF(batch_fix_untouched(&f, true), "a failed batch copied something");
    /* the V2 calls check the same, without an index to report */
    f.attrs[0].srcLoc = loc(ACL_MEM_LOCATION_TYPE_HOST, 0);
    EXPECT_ERR(aclrtMemcpyBatchV2(f.dsts, f.destMaxs, f.srcs, f.sizes, NB, f.attrs, f.idx, 2),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpyBatchAsyncV2(f.dsts, f.destMaxs, f.srcs, f.sizes, NB, f.attrs, f.idx, 2,
                                       NULL), ACL_ERROR_RT_PARAM_INVALID);
    CHECKF(batch_fix_untouched(&f, true), "a failed batch copied something");
    f.attrs[0].srcLoc = loc(ACL_MEM_LOCATION_TYPE_UNREGISTERED, 0);
    EXPECT_OK(BATCH_CALL(&f, NB, 2, &fail));
    CHECK(batch_fix_done(&f, true));
out:
    batch_fix_free(&f);
}

/* Errors that are not about one copy leave failIndex at SIZE_MAX. */
TEST(test_memcpy_batch_bad_args)
{
    BatchFix f;
    size_t fail = 0;
    if (!batch_fix_new(&f))
        goto out;
    batch_fix_setup(&f, true);
#define EXPECT_BATCH_ERR(call)                                                    \
    do {                                                                          \
        fail = 12345;                                                             \
        EXPECT_ERR(call, ACL_ERROR_RT_PARAM_INVALID);                             \
        CHECKF(fail == SIZE_MAX, "failIndex %zu, expected SIZE_MAX", fail);       \
    } while (0)
    EXPECT_BATCH_ERR(aclrtMemcpyBatch(NULL, f.destMaxs, f.srcs, f.sizes, NB, f.attrs, f.idx, 2,
                                      &fail));
    EXPECT_BATCH_ERR(aclrtMemcpyBatch(f.dsts, NULL, f.srcs, f.sizes, NB, f.attrs, f.idx, 2,
                                      &fail));
    EXPECT_BATCH_ERR(aclrtMemcpyBatch(f.dsts, f.destMaxs, NULL, f.sizes, NB, f.attrs, f.idx, 2,
                                      &fail));
    EXPECT_BATCH_ERR(aclrtMemcpyBatch(f.dsts, f.destMaxs, f.srcs, NULL, NB, f.attrs, f.idx, 2,
                                      &fail));
    EXPECT_BATCH_ERR(aclrtMemcpyBatch(f.dsts, f.destMaxs, f.srcs, f.sizes, NB, NULL, f.idx, 2,
                                      &fail));
    EXPECT_BATCH_ERR(aclrtMemcpyBatch(f.dsts, f.destMaxs, f.srcs, f.sizes, NB, f.attrs, NULL, 2,
                                      &fail));
    EXPECT_BATCH_ERR(BATCH_CALL(&f, 0, 2, &fail));
    EXPECT_BATCH_ERR(BATCH_CALL(&f, NB, 0, &fail));
    EXPECT_BATCH_ERR(BATCH_CALL(&f, 1, 2, &fail));          /* numAttrs > numBatches */
    EXPECT_BATCH_ERR(BATCH_CALL(&f, NB / 2, 2, &fail));     /* attrsIndexes[1] == numBatches */
    f.idx[0] = 1;
    EXPECT_BATCH_ERR(BATCH_CALL(&f, NB, 2, &fail));         /* first entry not 0 */
    f.idx[0] = 0;
    f.idx[1] = 0;
    EXPECT_BATCH_ERR(BATCH_CALL(&f, NB, 2, &fail));         /* not increasing */
    f.idx[1] = NB / 2;
    f.attrs[1].rsv[15] = 1;
    EXPECT_BATCH_ERR(BATCH_CALL(&f, NB, 2, &fail));
    f.attrs[1].rsv[15] = 0;
    f.attrs[1].dstLoc.type = (aclrtMemLocationType)5;
    EXPECT_BATCH_ERR(BATCH_CALL(&f, NB, 2, &fail));
    f.attrs[1].dstLoc.type = ACL_MEM_LOCATION_TYPE_DEVICE;
    void *keep = f.dsts[77];
    f.dsts[77] = NULL;
    EXPECT_BATCH_ERR(BATCH_CALL(&f, NB, 2, &fail));
    f.dsts[77] = keep;
    f.srcs[78] = NULL;
    EXPECT_BATCH_ERR(BATCH_CALL(&f, NB, 2, &fail));
    f.srcs[78] = host_slot(&f, 78);
    f.sizes[79] = SLOT + 1;
    EXPECT_BATCH_ERR(BATCH_CALL(&f, NB, 2, &fail));
    f.sizes[79] = item_size(79);
    EXPECT_ERR(BATCH_CALL(&f, NB, 2, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpyBatchAsync(f.dsts, f.destMaxs, f.srcs, f.sizes, NB, f.attrs, f.idx, 2,
                                     NULL, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_BATCH_ERR(aclrtMemcpyBatchAsync(NULL, f.destMaxs, f.srcs, f.sizes, NB, f.attrs,
                                           f.idx, 2, &fail, NULL));
    EXPECT_ERR(aclrtMemcpyBatchV2(f.dsts, f.destMaxs, f.srcs, f.sizes, 0, f.attrs, f.idx, 1),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpyBatchAsyncV2(f.dsts, f.destMaxs, f.srcs, f.sizes, NB, f.attrs, f.idx,
                                       0, NULL), ACL_ERROR_RT_PARAM_INVALID);
#undef EXPECT_BATCH_ERR
    CHECKF(batch_fix_untouched(&f, true), "a rejected batch copied something");
out:
    batch_fix_free(&f);
}

#define BATCH_ASYNC(f, fail, s) \
    aclrtMemcpyBatchAsync((f)->dsts, (f)->destMaxs, (f)->srcs, (f)->sizes, NB, (f)->attrs, \
                          (f)->idx, 2, (fail), (s))

TEST(test_memcpy_batch_async)
{
    BatchFix f;
    Busy bz;
    aclrtStream s = NULL;
    size_t fail = 0;
    bz.a = NULL;
    if (!batch_fix_new(&f) || !busy_alloc(&bz))
        goto out;
    EXPECT_OK(aclrtCreateStream(&s));
    for (int h2d = 1; h2d >= 0; h2d--) {
        /* pinned memory only: a few copies queued behind a 256 MiB copy are not
         * done when the call returns (a few: on a loaded 2-CPU host, hundreds
         * of round trips can outlast the big copy) ... */
        batch_fix_setup(&f, h2d);
        for (size_t i = 0; i < NB / 2; i++)
            (h2d ? f.srcs : f.dsts)[i] = (uint8_t *)f.pin + i * SLOT;
        f.attrs[0] = f.attrs[1];
        EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
        EXPECT_OK(aclrtMemcpyBatchAsync(f.dsts, f.destMaxs, f.srcs, f.sizes, 4, f.attrs, f.idx,
                                        1, &fail, s));
        CHECKF(h2d ? dev_all_bytes(f.dev, NB * SLOT, 0xee)
                   : all_bytes(f.pin, NB * SLOT, 0xee),
               "a batch on pinned memory is not asynchronous");
        /* ... and all of them are after the sync */
        EXPECT_OK(BATCH_ASYNC(&f, &fail, s));
        EXPECT_OK(aclrtSynchronizeStream(s));
        bool ok = true;
        uint8_t *dev = dev_read(f.dev, NB * SLOT);
        for (size_t i = 0; i < NB; i++) {
            const uint8_t *d = h2d ? dev + i * SLOT : (uint8_t *)f.dsts[i];
            const uint8_t *sp = h2d ? (uint8_t *)f.srcs[i] : dev + i * SLOT;
            ok &= checksum(d, item_size(i)) == checksum(sp, item_size(i));
        }
        g_free(dev);
        CHECKF(ok, "async batch on pinned memory (%s): wrong data", h2d ? "H2D" : "D2H");
        /* pageable memory anywhere: the whole batch is done on return */
        batch_fix_setup(&f, h2d);
        EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
        EXPECT_OK(aclrtMemcpyBatchAsyncV2(f.dsts, f.destMaxs, f.srcs, f.sizes, NB, f.attrs,
                                          f.idx, 2, s));
        CHECKF(batch_fix_done(&f, h2d), "async batch with pageable memory not done on return");
        EXPECT_OK(aclrtSynchronizeStream(s));
    }
    /* a bad copy: its index, nothing queued */
    batch_fix_setup(&f, true);
    f.dsts[NB - 2] = f.gone;
    EXPECT_ERR(BATCH_ASYNC(&f, &fail, s), ACL_ERROR_RT_PARAM_INVALID);
    CHECKF(fail == NB - 2, "failIndex %zu, expected %d", fail, NB - 2);
    EXPECT_OK(aclrtSynchronizeStream(s));
    CHECK(batch_fix_untouched(&f, true));
out:
    if (s)
        EXPECT_OK(aclrtDestroyStream(s));
    if (bz.a)
        busy_free(&bz);
    batch_fix_free(&f);
}

/* More copies than a stream's queue holds: the call waits for room. */
TEST(test_memcpy_batch_async_many)
{
    enum { M = 5000, SZ = 64 };
    void *d = NULL, *pin = NULL;
    void **dsts = g_new(void *, M), **srcs = g_new(void *, M);
    size_t *sizes = g_new(size_t, M), *maxs = g_new(size_t, M), idx = 0, fail = 0;
    uint8_t *data = g_malloc(M * SZ);
    fill_pattern(data, M * SZ, 76);
    EXPECT_OK(aclrtMalloc(&d, M * SZ, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMallocHost(&pin, M * SZ));
    if (!d || !pin)
        goto out;
    EXPECT_OK(aclrtMemcpy(d, M * SZ, data, M * SZ, ACL_MEMCPY_HOST_TO_DEVICE));
    memset(pin, 0, M * SZ);
    for (size_t i = 0; i < M; i++) {
        /* reversed order, so a batch that ignored the arrays would show */
        dsts[i] = (uint8_t *)pin + (M - 1 - i) * SZ;
        srcs[i] = (uint8_t *)d + i * SZ;
        sizes[i] = maxs[i] = SZ;
    }
    aclrtMemcpyBatchAttr attr = { .dstLoc = loc(ACL_MEM_LOCATION_TYPE_HOST, 0),
                                  .srcLoc = loc(ACL_MEM_LOCATION_TYPE_DEVICE, 0) };
    EXPECT_OK(aclrtMemcpyBatchAsync(dsts, maxs, srcs, sizes, M, &attr, &idx, 1, &fail, NULL));
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    bool ok = true;
    for (size_t i = 0; i < M; i++)
        ok &= memcmp((uint8_t *)pin + (M - 1 - i) * SZ, data + i * SZ, SZ) == 0;
    CHECKF(ok, "%d queued copies: wrong data", M);
out:
    if (pin)
        EXPECT_OK(aclrtFreeHost(pin));
    if (d)
        EXPECT_OK(aclrtFree(d));
    g_free(dsts);
    g_free(srcs);
    g_free(sizes);
    g_free(maxs);
    g_free(data);
}

/* ---- copies through stored base addresses ---- */

TEST(test_memcpy_async_with_offset)
{
    enum { N = 64 * 1024 };
    Busy bz;
    void *a = NULL, *b = NULL, *slots = NULL, *pin = NULL;
    uint8_t *data = g_malloc(N);
    fill_pattern(data, N, 81);
    bz.a = NULL;
    if (!busy_alloc(&bz))
        goto out;
    EXPECT_OK(aclrtMalloc(&a, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMalloc(&b, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMalloc(&slots, 64, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMallocHost(&pin, 64));
    if (!a || !b || !slots || !pin)
        goto out;
    EXPECT_OK(aclrtMemcpy(a, N, data, N, ACL_MEMCPY_HOST_TO_DEVICE));
    EXPECT_OK(aclrtMemset(b, N, 0xee, N));
    void **dslot = slots, **sslot = (void **)slots + 1;

    /* bases stored in device memory, read when the task runs */
    void *bases[2] = { b, a };
    EXPECT_OK(aclrtMemcpy(slots, 16, bases, 16, ACL_MEMCPY_HOST_TO_DEVICE));
    EXPECT_OK(aclrtMemcpyAsyncWithOffset(dslot, 1000, 24, (const void **)sslot, 1000, 100,
                                         ACL_MEMCPY_INNER_DEVICE_TO_DEVICE, NULL));
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    uint8_t *got = dev_read(b, N);
    CHECKF(memcmp(got + 24, data + 100, 1000) == 0 && all_bytes(got, 24, 0xee) &&
           all_bytes(got + 1024, N - 1024, 0xee), "copy through bases in device memory");
    g_free(got);
    /* a base changed after the call, before the task runs, is the one used */
    EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, NULL));
    EXPECT_OK(aclrtMemcpyAsyncWithOffset(dslot, 500, 0, (const void **)sslot, 500, 0,
                                         ACL_MEMCPY_INNER_DEVICE_TO_DEVICE, NULL));
    void *later = (uint8_t *)b + 8192;
    EXPECT_OK(aclrtMemcpy(dslot, 8, &later, 8, ACL_MEMCPY_HOST_TO_DEVICE));
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    got = dev_read(b, N);
    CHECKF(memcmp(got + 8192, data, 500) == 0 && all_bytes(got, 24, 0xee),
           "the base was not read when the task ran");
    g_free(got);
    /* bases in pinned memory, and in pageable memory (read at the call) */
    ((void **)pin)[0] = (uint8_t *)b + 20000;
    ((void **)pin)[1] = a;
    EXPECT_OK(aclrtMemcpyAsyncWithOffset((void **)pin, 300, 1, (const void **)pin + 1, 300, 2,
                                         ACL_MEMCPY_INNER_DEVICE_TO_DEVICE, NULL));
    void *dst_base = (uint8_t *)b + 30000;
    const void *src_base = a;
    EXPECT_OK(aclrtMemcpyAsyncWithOffset(&dst_base, 400, 5, &src_base, 400, 7,
                                         ACL_MEMCPY_INNER_DEVICE_TO_DEVICE, NULL));
    dst_base = NULL;    /* already taken */
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    got = dev_read(b, N);
    CHECKF(memcmp(got + 20001, data + 2, 300) == 0, "copy through bases in pinned memory");
    CHECKF(memcmp(got + 30005, data + 7, 400) == 0, "copy through bases in pageable memory");
    g_free(got);
    /* count 0 reads nothing */
    EXPECT_OK(aclrtMemcpyAsyncWithOffset((void **)(uintptr_t)0x10, 0, 0,
                                         (const void **)(uintptr_t)0x10, 0, 0,
                                         ACL_MEMCPY_INNER_DEVICE_TO_DEVICE, NULL));

    /* bad arguments */
    const aclrtMemcpyKind bad_kinds[] = {
        ACL_MEMCPY_HOST_TO_HOST, ACL_MEMCPY_HOST_TO_DEVICE, ACL_MEMCPY_DEVICE_TO_HOST,
        ACL_MEMCPY_DEVICE_TO_DEVICE, ACL_MEMCPY_DEFAULT, ACL_MEMCPY_HOST_TO_BUF_TO_DEVICE,
        ACL_MEMCPY_INTER_DEVICE_TO_DEVICE, (aclrtMemcpyKind)8,
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad_kinds); i++)
        EXPECT_ERR(aclrtMemcpyAsyncWithOffset(dslot, 8, 0, (const void **)sslot, 8, 0,
                                              bad_kinds[i], NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpyAsyncWithOffset(NULL, 8, 0, (const void **)sslot, 8, 0,
                                          ACL_MEMCPY_INNER_DEVICE_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpyAsyncWithOffset(dslot, 8, 0, NULL, 8, 0,
                                          ACL_MEMCPY_INNER_DEVICE_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpyAsyncWithOffset(dslot, 7, 0, (const void **)sslot, 8, 0,
                                          ACL_MEMCPY_INNER_DEVICE_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    /* a base read now that is host memory, or on another device */
    void *host_base = data;
    EXPECT_ERR(aclrtMemcpyAsyncWithOffset(&host_base, 8, 0, (const void **)sslot, 8, 0,
                                          ACL_MEMCPY_INNER_DEVICE_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpyAsyncWithOffset(dslot, 8, 0, (const void **)&host_base, 8, 0,
                                          ACL_MEMCPY_INNER_DEVICE_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    void *dev1_base = (void *)(uintptr_t)(WINDOW_LO + (512ull << 30) + (4ull << 30));
    src_base = a;
    EXPECT_ERR(aclrtMemcpyAsyncWithOffset(&dev1_base, 8, 0, &src_base, 8, 0,
                                          ACL_MEMCPY_INNER_DEVICE_TO_DEVICE, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    /* a stored base that points at nothing: the device finds out */
    void *nowhere = (void *)(uintptr_t)0x150000000000ull;
    EXPECT_OK(aclrtMemcpy(sslot, 8, &nowhere, 8, ACL_MEMCPY_HOST_TO_DEVICE));
    EXPECT_OK(aclrtMemcpyAsyncWithOffset(dslot, 8, 0, (const void **)sslot, 8, 0,
                                         ACL_MEMCPY_INNER_DEVICE_TO_DEVICE, NULL));
    EXPECT_ERR(aclrtSynchronizeStream(NULL), ACL_ERROR_RT_SYS_DMA);
    /* an offset that leads into unmapped memory (the device's page table has
     * nothing 200 GiB further: the heap is nowhere near that full) */
    EXPECT_OK(aclrtMemcpy(sslot, 8, &src_base, 8, ACL_MEMCPY_HOST_TO_DEVICE));
    EXPECT_OK(aclrtMemcpyAsyncWithOffset(dslot, 8, 0, (const void **)sslot, 8, 200 * GiB,
                                         ACL_MEMCPY_INNER_DEVICE_TO_DEVICE, NULL));
    EXPECT_ERR(aclrtSynchronizeStream(NULL), ACL_ERROR_RT_SYS_DMA);
    EXPECT_OK(aclrtSynchronizeStream(NULL));
out:
    if (pin)
        EXPECT_OK(aclrtFreeHost(pin));
    if (slots)
        EXPECT_OK(aclrtFree(slots));
    if (a)
        EXPECT_OK(aclrtFree(a));
    if (b)
        EXPECT_OK(aclrtFree(b));
    if (bz.a)
        busy_free(&bz);
    g_free(data);
}

/* Every copy call of this chapter refuses a stream of another device (107003). */
TEST(test_copy_ext_other_device_stream)
{
    enum { N = 4096 };
    aclrtStream s1 = NULL;
    aclrtContext c1 = NULL;
    void *pin = NULL, *d = NULL;
    size_t fail = 0, idx = 0;
    EXPECT_OK(aclrtMallocHost(&pin, N));
    EXPECT_OK(aclrtMalloc(&d, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtSetDevice(1));
    EXPECT_OK(aclrtGetCurrentContext(&c1));
    EXPECT_OK(aclrtCreateStream(&s1));
    use_dev0();
    EXPECT_ERR(aclrtMemcpy2dAsync(d, 64, pin, 64, 64, 4, ACL_MEMCPY_HOST_TO_DEVICE, s1),
               ACL_ERROR_RT_STREAM_CONTEXT);
    void *dsts[1] = { d }, *srcs[1] = { pin };
    size_t sizes[1] = { N }, maxs[1] = { N };
    aclrtMemcpyBatchAttr attr = { .dstLoc = loc(ACL_MEM_LOCATION_TYPE_DEVICE, 0),
                                  .srcLoc = loc(ACL_MEM_LOCATION_TYPE_HOST, 0) };
    EXPECT_ERR(aclrtMemcpyBatchAsync(dsts, maxs, srcs, sizes, 1, &attr, &idx, 1, &fail, s1),
               ACL_ERROR_RT_STREAM_CONTEXT);
    CHECK(fail == SIZE_MAX);
    EXPECT_ERR(aclrtMemcpyBatchAsyncV2(dsts, maxs, srcs, sizes, 1, &attr, &idx, 1, s1),
               ACL_ERROR_RT_STREAM_CONTEXT);
    void *base = d;
    const void *sbase = d;
    EXPECT_ERR(aclrtMemcpyAsyncWithOffset(&base, 8, 0, &sbase, 8, 64,
                                          ACL_MEMCPY_INNER_DEVICE_TO_DEVICE, s1),
               ACL_ERROR_RT_STREAM_CONTEXT);
    /* the same with the right stream works */
    EXPECT_OK(aclrtMemcpyBatchAsync(dsts, maxs, srcs, sizes, 1, &attr, &idx, 1, &fail, NULL));
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    EXPECT_OK(aclrtSetCurrentContext(c1));
    EXPECT_OK(aclrtDestroyStream(s1));
    EXPECT_OK(aclrtResetDevice(1));
    use_dev0();
    EXPECT_OK(aclrtFreeHost(pin));
    EXPECT_OK(aclrtFree(d));
}

/* ---- frees that wait for the device ---- */

TEST(test_free_with_dev_sync)
{
    enum { N = 4096 };
    Busy bz;
    aclrtStream s = NULL, s2 = NULL;
    void *pin = NULL, *d = NULL, *d2 = NULL;
    if (!busy_alloc(&bz))
        return;
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtCreateStream(&s2));
    EXPECT_OK(aclrtMallocHost(&pin, N));
    EXPECT_OK(aclrtMallocWithCfg(&d2, N, ACL_MEM_MALLOC_HUGE_FIRST, NULL));
    EXPECT_OK(aclrtMemsetD32(d2, N, 0x77665544u, N / 4));
    if (!pin)
        return;
    memset(pin, 0, N);
    /* s: a long copy into b, then a copy of b's tail to pinned memory; s2: a
     * copy out of d2.  Freeing b and d2 must wait for both streams. */
    for (int i = 0; i < 3; i++)
        EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    EXPECT_OK(aclrtMemcpyAsync(pin, N, (uint8_t *)bz.b + BIG - N, N, ACL_MEMCPY_DEVICE_TO_HOST,
                               s));
    EXPECT_OK(aclrtMemcpyAsync(bz.a, N, d2, N, ACL_MEMCPY_DEVICE_TO_DEVICE, s2));
    double t0 = now_s();
    EXPECT_OK(aclrtFreeWithDevSync(bz.b));
    double waited = now_s() - t0;
    /* No synchronise of our own: the copy that read b must be done. */
    bool tail_ok = true;
    for (int k = 0; k < N; k += 4)
        tail_ok &= *(uint32_t *)((uint8_t *)pin + k) == 0x5a5a0001u;
    CHECKF(tail_ok, "aclrtFreeWithDevSync returned (after %.3f s) before the queued copy out of "
                    "the freed buffer finished", waited);
    EXPECT_OK(aclrtFreeWithDevSync(d2));
    uint8_t *head = dev_read(bz.a, 64);
    CHECK(*(uint32_t *)head == 0x77665544u);
    g_free(head);
    /* The tasks ran before the memory went: the streams have no error. */
    EXPECT_OK(aclrtSynchronizeStream(s));
    EXPECT_OK(aclrtSynchronizeStream(s2));
    EXPECT_ERR(aclrtFree(bz.b), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtFreeWithDevSync(d2), ACL_ERROR_RT_PARAM_INVALID);

    /* A failed task's error is left for the stream's synchronise. */
    EXPECT_OK(aclrtMalloc(&d, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMemcpyAsync(bz.a, N, (void *)(uintptr_t)0x150000000000ull, N,
                               ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    EXPECT_OK(aclrtFreeWithDevSync(d));
    EXPECT_ERR(aclrtSynchronizeStream(s), ACL_ERROR_RT_SYS_DMA);

    /* Memory of another device (and a stream there) is freed the same way. */
    aclrtContext c1 = NULL;
    aclrtStream s1 = NULL;
    void *e1 = NULL, *f1 = NULL;
    EXPECT_OK(aclrtCreateContext(&c1, 1));
    EXPECT_OK(aclrtCreateStream(&s1));
    EXPECT_OK(aclrtMalloc(&e1, BIG, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMalloc(&f1, BIG, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMemset(e1, BIG, 0x3c, BIG));
    EXPECT_OK(aclrtMemcpyAsync(f1, BIG, e1, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, s1));
    memset(pin, 0, N);
    EXPECT_OK(aclrtMemcpyAsync(pin, N, (uint8_t *)f1 + BIG - N, N, ACL_MEMCPY_DEVICE_TO_HOST,
                               s1));
    use_dev0();
    EXPECT_OK(aclrtFreeWithDevSync(f1));    /* from device 0's context */
    CHECKF(all_bytes(pin, N, 0x3c), "device 1's queued copy had not finished");
    EXPECT_OK(aclrtFreeWithDevSync(e1));
    EXPECT_OK(aclrtSetCurrentContext(c1));
    EXPECT_OK(aclrtSynchronizeStream(s1));
    EXPECT_OK(aclrtDestroyContext(c1));
    use_dev0();

    void *m = malloc(64);
    EXPECT_ERR(aclrtFreeWithDevSync(NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtFreeWithDevSync(d), ACL_ERROR_RT_PARAM_INVALID);            /* freed */
    EXPECT_ERR(aclrtFreeWithDevSync((uint8_t *)bz.a + 64), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtFreeWithDevSync(pin), ACL_ERROR_RT_PARAM_INVALID);          /* host */
    EXPECT_ERR(aclrtFreeWithDevSync(m), ACL_ERROR_RT_PARAM_INVALID);
    free(m);
    EXPECT_OK(aclrtFreeWithDevSync(bz.a));  /* the failed calls left it alive */
    EXPECT_OK(aclrtFreeHost(pin));
    EXPECT_OK(aclrtDestroyStream(s));
    EXPECT_OK(aclrtDestroyStream(s2));
}

TEST(test_free_host_with_dev_sync)
{
    enum { N = 64 * 1024 };
    Busy bz;
    aclrtStream s = NULL;
    void *pin = NULL, *d = NULL, *cfg_pin = NULL;
    uint8_t data[N];
    fill_pattern(data, N, 93);
    if (!busy_alloc(&bz))
        return;
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtMalloc(&d, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMemset(d, N, 0, N));
    if (!EXPECT_OK(aclrtMallocHost(&pin, N)))
        return;
    memcpy(pin, data, N);
    /* The copy out of the pinned buffer waits behind long copies. */
    for (int i = 0; i < 3; i++)
        EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    EXPECT_OK(aclrtMemcpyAsync(d, N, pin, N, ACL_MEMCPY_HOST_TO_DEVICE, s));
    EXPECT_OK(aclrtFreeHostWithDevSync(pin));
    CHECKF(dev_equals(d, data, N), "aclrtFreeHostWithDevSync returned before the queued copy "
                                   "out of the buffer ran");
    EXPECT_OK(aclrtSynchronizeStream(s));
    EXPECT_ERR(aclrtFreeHost(pin), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtFreeHostWithDevSync(pin), ACL_ERROR_RT_PARAM_INVALID);

    /* Memory from aclrtMallocHostWithCfg, nothing queued. */
    EXPECT_OK(aclrtMallocHostWithCfg(&cfg_pin, N, NULL));
    EXPECT_OK(aclrtFreeHostWithDevSync(cfg_pin));

    void *m = malloc(64);
    EXPECT_ERR(aclrtFreeHostWithDevSync(NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtFreeHostWithDevSync(d), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtFreeHostWithDevSync(m), ACL_ERROR_RT_PARAM_INVALID);
    free(m);
    EXPECT_OK(aclrtFree(d));
    EXPECT_OK(aclrtDestroyStream(s));
    busy_free(&bz);
}

/* ================================================================== */
/* Streams.                                                             */

TEST(test_stream_create_destroy)
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

TEST(test_stream_destroy_waits)
{
    Busy bz;
    aclrtStream s = NULL;
    if (!busy_alloc(&bz))
        return;
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    EXPECT_OK(aclrtDestroyStream(s));
    /* Documented: pending tasks finish before the stream goes. */
    uint8_t *tail = dev_read((uint8_t *)bz.b + BIG - 64, 64);
    CHECKF(!all_bytes(tail, 64, 0), "aclrtDestroyStream returned before its copy finished");
    g_free(tail);
    busy_free(&bz);
}

TEST(test_stream_sync_timeout_args)
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

TEST(test_stream_limit)
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

TEST(test_stream_available_num)
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

TEST(test_stream_limit_with_context)
{
    run_thread(thread_ctx_stream_budget, NULL);
}

typedef struct SyncLock {
    Busy bz;
    aclrtStream s;
    double sync_start, sync_end, other_start, other_end;
    aclError sync_err, other_err;
} SyncLock;

static void *thread_sync_device(void *arg)
{
    SyncLock *t = arg;
    aclrtSetCurrentContext(g_ctx0);
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

TEST(test_sync_device_blocks_only_caller)
{
    /* While one thread waits in aclrtSynchronizeDevice for device 0, another
     * thread's calls on device 2 must not wait for device 0's copies. */
    SyncLock t;
    memset(&t, 0, sizeof(t));
    if (!busy_alloc(&t.bz))
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
    busy_free(&t.bz);
}

TEST(test_sync_device)
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

/* ================================================================== */
/* Host access to device memory (children that die).                  */

typedef struct FaultCase {
    bool write;
    uint64_t offset;
    int device;
    bool after_reset;
} FaultCase;
static const FaultCase *g_fault;

static void child_fault(void)
{
    const FaultCase *c = g_fault;
    void *p = NULL;
    if (aclInit(NULL) != ACL_SUCCESS || aclrtSetDevice(c->device) != ACL_SUCCESS) {
        fprintf(stderr, "TESTINFO setup failed\n");
        _exit(90);
    }
    if (c->after_reset) {
        /* Small allocations share a block; the device is reset; a new
         * allocation lands where the block was. */
        void *a = NULL, *b = NULL;
        if (aclrtMalloc(&a, 100, ACL_MEM_MALLOC_HUGE_FIRST) != ACL_SUCCESS ||
            aclrtMalloc(&b, 100, ACL_MEM_MALLOC_HUGE_FIRST) != ACL_SUCCESS ||
            aclrtResetDevice(c->device) != ACL_SUCCESS ||
            aclrtSetDevice(c->device) != ACL_SUCCESS)
            _exit(91);
    }
    if (aclrtMalloc(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST) != ACL_SUCCESS)
        _exit(92);
    volatile int *at = (volatile int *)((uint8_t *)p + c->offset);
    fprintf(stderr, "TESTINFO base=0x%llx addr=0x%llx\n", (unsigned long long)(uintptr_t)p,
            (unsigned long long)(uintptr_t)at);
    fflush(stderr);
    if (c->write) {
        *at = 1;
    } else {
        int v = *at;
        fprintf(stderr, "read %d\n", v);
    }
    _exit(93);  /* not reached */
}

static void run_fault_case(const FaultCase *c)
{
    g_fault = c;
    int fd = -1;
    ChildBody b = { child_fault };
    pid_t pid = child_run_stderr(child_trampoline, &b, &fd);
    CU_ASSERT_FATAL(pid > 0);
    char *err = child_collect(fd);
    int st = child_wait(pid);
    CHECKF(st == 128 + SIGSEGV, "the child ended with status %d, expected death by SIGSEGV (%d)",
           st, 128 + SIGSEGV);
    unsigned long long base = 0, addr = 0;
    const char *info = strstr(err, "TESTINFO base=");
    CHECKF(info && sscanf(info, "TESTINFO base=0x%llx addr=0x%llx", &base, &addr) == 2,
           "the child did not get as far as the access; stderr:\n%s", err);
    if (info) {
        const char *msg = strstr(info, "npu-emu:");
        char *want_addr = g_strdup_printf("0x%llx", addr);
        char *want_dev = g_strdup_printf("device %d", c->device);
        char *want_base = g_strdup_printf("allocation 0x%llx", base);
        /* The size as asked for, as rounded by the ACL rule, or as reserved. */
        bool size_ok = msg && (strstr(msg, "size 0x1000") || strstr(msg, "size 0x1020") ||
                               strstr(msg, "size 0x2000"));
        CHECKF(msg != NULL, "no npu-emu fault message; stderr:\n%s", err);
        if (msg) {
            CHECKF(strstr(msg, c->write ? "write" : "read") != NULL, "no '%s' in:\n%s",
                   c->write ? "write" : "read", msg);
            if (!c->write)
                CHECKF(strstr(msg, "write") == NULL, "a read reported as a write:\n%s", msg);
            CHECKF(strstr(msg, "4 bytes") != NULL, "no '4 bytes' in:\n%s", msg);
            CHECKF(strstr(msg, want_addr) != NULL, "no address %s in:\n%s", want_addr, msg);
            CHECKF(strstr(msg, want_dev) != NULL, "no '%s' in:\n%s", want_dev, msg);
            CHECKF(strstr(msg, want_base) != NULL, "no '%s' in:\n%s", want_base, msg);
            CHECKF(size_ok, "no allocation size (0x1000, 0x1020 or 0x2000) in:\n%s", msg);
        }
        g_free(want_addr);
        g_free(want_dev);
        g_free(want_base);
    }
    g_free(err);
}

TEST(test_fault_write)
{
    static const FaultCase c = { .write = true, .offset = 0, .device = 0 };
    run_fault_case(&c);
}

TEST(test_fault_read)
{
    static const FaultCase c = { .write = false, .offset = 0x40, .device = 0 };
    run_fault_case(&c);
}

TEST(test_fault_after_reset)
{
    /* The report must name the live allocation, not one forgotten by a reset. */
    static const FaultCase c = { .write = false, .offset = 0xc8, .device = 5,
                                 .after_reset = true };
    run_fault_case(&c);
}

/* ================================================================== */
/* aclFinalize of this process.                                         */

TEST(test_finalize)
{
    uint32_t n = 0;
    /* aclInit ran twice (one repeat): one aclFinalize ends it all. */
    EXPECT_OK(aclFinalize());
    EXPECT_ERR(aclrtGetDeviceCount(&n), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclFinalize(), ACL_ERROR_REPEAT_FINALIZE);
    CHECK(aclrtGetSocName() == NULL);
    drain_errors();
}

/* ================================================================== */
/* The emulator dies while a client waits (last: it ends the emulator).  */

static int g_death_pipe[2] = { -1, -1 };

static void child_wait_through_death(void)
{
    aclrtStream s = NULL;
    Busy bz;
    close(g_death_pipe[0]);
    aclrtDeviceStatus st = ACL_RT_DEVICE_STATUS_END;
    if (!EXPECT_OK(aclInit(NULL)) || !EXPECT_OK(aclrtSetDevice(0)) ||
        !EXPECT_OK(aclrtCreateStream(&s)) || !busy_alloc(&bz))
        _exit(90);
    EXPECT_OK(aclrtQueryDeviceStatus(0, &st));
    CHECK(st == ACL_RT_DEVICE_STATUS_NORMAL);
    for (int i = 0; i < 8; i++)
        EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    if (write(g_death_pipe[1], "q", 1) != 1)
        _exit(91);
    double t0 = now_s();
    aclError e = aclrtSynchronizeStream(s);   /* no timeout */
    double waited = now_s() - t0;
    CHECKF(e == ACL_ERROR_RT_SOCKET_CLOSE, "aclrtSynchronizeStream returned %d when npu-emu "
                                           "died, expected 507901", e);
    CHECKF(waited < 2.0, "aclrtSynchronizeStream noticed the death after %.3f s", waited);
    drain_errors();
    /* The device is unusable now; saying so is the query's answer, not a failure. */
    st = ACL_RT_DEVICE_STATUS_END;
    EXPECT_OK(aclrtQueryDeviceStatus(0, &st));
    CHECKF(st == ACL_RT_DEVICE_STATUS_ABNORMAL, "device status %d after npu-emu died, expected "
                                                "ABNORMAL", (int)st);
}

TEST(test_emulator_dies_during_sync)
{
    /* docs/decisions.md: a client waiting when the emulator dies gets 507901
     * within about 100 ms. */
    CU_ASSERT_FATAL(pipe(g_death_pipe) == 0);
    ChildBody b = { child_wait_through_death };
    pid_t pid = child_run(child_trampoline, &b);
    CU_ASSERT_FATAL(pid > 0);
    close(g_death_pipe[1]);
    char c;
    bool queued = read(g_death_pipe[0], &c, 1) == 1;
    close(g_death_pipe[0]);
    CHECKF(queued, "the child did not get as far as queueing its copies");
    g_usleep(50000);    /* the child is asleep in aclrtSynchronizeStream */
    kill(g_emu.pid, SIGKILL);
    waitpid(g_emu.pid, NULL, 0);
    g_emu.pid = 0;
    g_emu_dead = true;
    int st = -1;
    for (int i = 0; i < 500; i++) {     /* 5 s */
        int raw;
        pid_t r = waitpid(pid, &raw, WNOHANG);
        if (r == pid) {
            st = WIFSIGNALED(raw) ? 128 + WTERMSIG(raw) : WEXITSTATUS(raw);
            break;
        }
        g_usleep(10000);
    }
    if (st < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    CHECKF(st == 0, st < 0 ? "the child still waited in aclrtSynchronizeStream 5 s after "
                             "npu-emu was killed" :
                             "the child ended with status %d (failed checks printed above)", st);
}

/* ================================================================== */

/* ---- regressions of races found in review ---- */

static int race_failures;

static void *race_worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    if (aclrtSetDevice(2) != ACL_SUCCESS) {
        __atomic_add_fetch(&race_failures, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    uint8_t out[64], in[64];
    for (int i = 0; i < 3000; i++) {
        void *d = NULL;
        memset(out, (id * 31 + i) & 0xff, sizeof(out));
        if (aclrtMalloc(&d, 100, ACL_MEM_MALLOC_HUGE_FIRST) != ACL_SUCCESS ||
            aclrtMemcpy(d, 100, out, sizeof(out), ACL_MEMCPY_HOST_TO_DEVICE) != ACL_SUCCESS ||
            aclrtMemcpy(in, sizeof(in), d, sizeof(in), ACL_MEMCPY_DEVICE_TO_HOST) != ACL_SUCCESS ||
            memcmp(in, out, sizeof(in)) != 0 || aclrtFree(d) != ACL_SUCCESS)
            __atomic_add_fetch(&race_failures, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

/* aclrtFree in one thread while others allocate: the emulator reuses addresses
 * at once, so the runtime's tables must never drop another thread's memory. */
TEST(test_malloc_free_race)
{
    EXPECT_OK(aclrtSetDevice(2));
    size_t before = 0, after = 0, total = 0;
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM, &before, &total));
    race_failures = 0;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, race_worker, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECKF(race_failures == 0, "%d failed malloc/copy/free rounds", race_failures);
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM, &after, &total));
    CHECKF(after == before, "HBM free %zu before, %zu after", before, after);
    use_dev0();
}

/* A destroyed stream's handle stays invalid even after many new streams. */
TEST(test_stale_stream_handle)
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
TEST(test_reset_blocks_only_caller)
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
TEST(test_queue_full_blocks)
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

/* Per-page-size free memory comes from the pool and shows fragmentation: one
 * small allocation splits a 1 GiB chunk into 2 MiB blocks and one block into
 * 4 KiB pages. */
TEST(test_mem_info_page_sizes)
{
    EXPECT_OK(aclrtSetDevice(7));
    size_t f_all, f_norm, f_huge, f_1g, f_mem_huge, total;
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM_HUGE1G, &f_1g, &total));
    CHECK(total == HBM_BYTES);
    CHECKF(f_1g == HBM_BYTES, "fresh device: %zu bytes fit 1 GiB pages", f_1g);
    void *p = NULL;
    EXPECT_OK(aclrtMalloc(&p, 100, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM, &f_all, &total));
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM_NORMAL, &f_norm, &total));
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM_HUGE, &f_huge, &total));
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM_HUGE1G, &f_1g, &total));
    EXPECT_OK(aclrtGetMemInfo(ACL_MEM_HUGE, &f_mem_huge, &total));
    CHECKF(f_all == HBM_BYTES - 2 * MiB, "HBM free %zu", f_all);
    CHECKF(f_norm == HBM_BYTES - 2 * MiB, "normal-page free %zu", f_norm);
    CHECKF(f_huge == HBM_BYTES - 2 * MiB, "huge-page free %zu", f_huge);
    CHECKF(f_1g == HBM_BYTES - GiB, "1 GiB-page free %zu", f_1g);
    CHECK(f_mem_huge == f_huge);
    EXPECT_OK(aclrtFree(p));
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM_HUGE1G, &f_1g, &total));
    CHECKF(f_1g == HBM_BYTES, "after the free: %zu bytes fit 1 GiB pages", f_1g);
    EXPECT_OK(aclrtResetDevice(7));
    EXPECT_OK(aclrtSetDevice(0));
}

typedef struct TestDef {
    const char *name;
    CU_TestFunc fn;
} TestDef;

#define T(f) { #f, f }

static bool add_suite(const char *name, CU_InitializeFunc init, const TestDef *tests, size_t n)
{
    CU_pSuite s = CU_add_suite(name, init, NULL);
    if (!s)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!CU_add_test(s, tests[i].name, tests[i].fn))
            return false;
    return true;
}

int main(void)
{
    /* Children inherit this; let their stderr through unbuffered. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!emu_start(&g_emu, "a2", NULL)) {
        fprintf(stderr, "test_api: cannot start npu-emu\n");
        emu_stop(&g_emu);
        return 1;
    }
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;

    static const TestDef preinit[] = { T(test_preinit) };
    static const TestDef init[] = {
        T(test_init_repeat), T(test_init_bad_config), T(test_finalize_reference),
        T(test_reinit_after_finalize),
    };
    static const TestDef devices[] = {
        T(test_device_queries), T(test_device_bad_ids), T(test_device_none_in_new_thread),
        T(test_device_per_thread), T(test_device_info), T(test_device_status),
        T(test_stream_priority_range), T(test_device_utilization), T(test_device_set_reset_count),
        T(test_device_reset_force), T(test_device_reset_frees_memory), T(test_visible_devices),
    };
    static const TestDef errors[] = { T(test_errors_newest_first), T(test_errors_per_thread) };
    static const TestDef contexts[] = {
        T(test_ctx_create_is_current), T(test_ctx_switch_device), T(test_ctx_destroy_default),
        T(test_ctx_destroy_twice), T(test_ctx_destroy_takes_streams), T(test_ctx_null_args), T(test_ctx_destroyed_current),
        T(test_primary_ctx_state),
    };
    static const TestDef memory[] = {
        T(test_malloc_bad_args), T(test_malloc_policies), T(test_malloc_small_slices),
        T(test_malloc_align32_cached), T(test_mem_info), T(test_mem_no_device),
        T(test_free_bad), T(test_host_memory), T(test_pointer_attributes),
        T(test_malloc_free_race), T(test_mem_info_page_sizes), T(test_malloc_with_cfg), T(test_malloc_with_cfg_bad),
        T(test_malloc_for_task_scheduler), T(test_malloc_cfg_no_device),
        T(test_mem_flush_invalidate), T(test_check_mem_type), T(test_host_with_cfg),
        T(test_mem_usage_info), T(test_free_with_dev_sync),
        T(test_free_host_with_dev_sync),
    };
    static const TestDef copies[] = {
        T(test_memcpy_all_kinds), T(test_memcpy_bad_args), T(test_memcpy_freed),
        T(test_memcpy_freed_small), T(test_memcpy_past_segment), T(test_memset),
        T(test_memset_d32), T(test_memcpy_async_pinned), T(test_memcpy_async_pageable),
        T(test_memcpy_async_bad), T(test_memcpy_async_default_stream),
        T(test_async_other_device_stream), T(test_memset_async), T(test_async_dma_error),
        T(test_memcpy2d), T(test_memcpy2d_wide_rows), T(test_memcpy2d_bad),
        T(test_memcpy2d_async), T(test_memcpy2d_async_max_height), T(test_memcpy2d_async_bad),
        T(test_memcpy_batch), T(test_memcpy_batch_fail_index), T(test_memcpy_batch_bad_args),
        T(test_memcpy_batch_async), T(test_memcpy_batch_async_many),
        T(test_memcpy_async_with_offset), T(test_copy_ext_other_device_stream),
    };
    static const TestDef streams[] = {
        T(test_stream_create_destroy), T(test_stream_destroy_waits),
        T(test_stream_sync_timeout_args), T(test_stream_limit), T(test_stream_limit_with_context),
        T(test_stream_available_num),
        T(test_sync_device), T(test_sync_device_blocks_only_caller),
        T(test_stale_stream_handle), T(test_reset_blocks_only_caller),
        T(test_queue_full_blocks),
    };
    static const TestDef faults[] = {
        T(test_fault_write), T(test_fault_read), T(test_fault_after_reset),
    };
    static const TestDef fin[] = { T(test_finalize) };
    static const TestDef death[] = { T(test_emulator_dies_during_sync) };

    bool ok = add_suite("preinit", NULL, preinit, G_N_ELEMENTS(preinit)) &&
              add_suite("init", NULL, init, G_N_ELEMENTS(init)) &&
              add_suite("devices", suite_devices_init, devices, G_N_ELEMENTS(devices)) &&
              add_suite("errors", NULL, errors, G_N_ELEMENTS(errors)) &&
              add_suite("contexts", NULL, contexts, G_N_ELEMENTS(contexts)) &&
              add_suite("memory", NULL, memory, G_N_ELEMENTS(memory)) &&
              add_suite("copies", NULL, copies, G_N_ELEMENTS(copies)) &&
              add_suite("streams", NULL, streams, G_N_ELEMENTS(streams)) &&
              add_suite("faults", NULL, faults, G_N_ELEMENTS(faults)) &&
              add_suite("finalize", NULL, fin, G_N_ELEMENTS(fin)) &&
              add_suite("emulator death", NULL, death, G_N_ELEMENTS(death));
    if (!ok) {
        fprintf(stderr, "test_api: cannot register tests: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        emu_stop(&g_emu);
        return 1;
    }

    double t0 = now_s();
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    double total = now_s() - t0;
    unsigned failures = CU_get_number_of_failures();
    unsigned tests_failed = CU_get_number_of_tests_failed();
    unsigned suites_failed = CU_get_number_of_suites_failed();

    printf("\nRun times:\n");
    for (int i = 0; i < g_ntimes; i++)
        printf("  %-36s %8.3f s\n", g_times[i].name, g_times[i].secs);
    printf("  %-36s %8.3f s\n", "total", total);

    CU_cleanup_registry();
    emu_stop(&g_emu);
    return failures || tests_failed || suites_failed ? 1 : 0;
}
