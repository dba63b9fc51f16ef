/*
 * test_api_device.c - integration tests of the aclrt* device and context calls
 * (chapters 04 and 05) against a real npu-emu: counts and queries, bad ids,
 * devices per thread, reference counting and resets, ASCEND_RT_VISIBLE_DEVICES
 * (in forked children, which call aclInit themselves), explicit and default
 * contexts, and the primary context's state.
 *
 * Device use: 0 is the main thread's device; 1 and 2 carry explicit contexts
 * and per-thread tests; 3 reference counting; 4 reset and memory; 5 and 7 are
 * only queried.  Devices 3 and 4 are only touched from short-lived threads, so
 * the main thread's current context is never theirs; 3 is back to unset (no
 * reference, closed) after each test that uses it, which the default-context
 * state test relies on.
 */
#define _GNU_SOURCE
#include <CUnit/Basic.h>
#include <glib.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "acl/acl.h"
#include "acl_check.h"
#include "harness.h"

#define GiB (1ull << 30)
#define HBM_BYTES (64ull * GiB)

/* ================================================================== */
/* Devices.                                                             */

API_TEST(test_device_queries)
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

API_TEST(test_device_bad_ids)
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

API_TEST(test_device_none_in_new_thread)
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

API_TEST(test_device_per_thread)
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

API_TEST(test_device_info)
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

API_TEST(test_device_status)
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

API_TEST(test_stream_priority_range)
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

API_TEST(test_device_utilization)
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

API_TEST(test_device_set_reset_count)
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

API_TEST(test_device_reset_force)
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

API_TEST(test_device_reset_frees_memory)
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

API_TEST(test_visible_devices)
{
    for (size_t i = 0; i < G_N_ELEMENTS(k_visible); i++) {
        g_visible = &k_visible[i];
        check_child(child_visible, k_visible[i].env ? k_visible[i].env : "(unset)");
    }
}

/* ================================================================== */
/* Contexts.                                                            */

API_TEST(test_ctx_create_is_current)
{
    aclrtContext c = NULL, cur = NULL;
    aclrtStream ds = NULL, ds0 = NULL;
    int32_t dev = -1;
    EXPECT_OK(aclrtCtxGetCurrentDefaultStream(&ds0));
    EXPECT_OK(aclrtCreateContext(&c, 1));
    CHECK(c != NULL && c != g_api_ctx0);
    EXPECT_OK(aclrtGetCurrentContext(&cur));
    CHECK(cur == c);
    EXPECT_OK(aclrtGetDevice(&dev));
    CHECK(dev == 1);
    EXPECT_OK(aclrtCtxGetCurrentDefaultStream(&ds));
    CHECK(ds != NULL && ds != ds0);
    EXPECT_OK(aclrtDestroyContext(c));
    use_dev0();
}

API_TEST(test_ctx_switch_device)
{
    aclrtContext c2 = NULL, cur = NULL;
    int32_t dev = -1;
    EXPECT_OK(aclrtCreateContext(&c2, 2));
    EXPECT_OK(aclrtSetCurrentContext(g_api_ctx0));
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

API_TEST(test_ctx_destroy_default)
{
    aclrtContext def = NULL;
    EXPECT_OK(aclrtGetCurrentContext(&def));
    CHECK(def == g_api_ctx0);
    EXPECT_ERR(aclrtDestroyContext(def), ACL_ERROR_RT_PARAM_INVALID);
    /* Still alive and current. */
    void *p = NULL;
    EXPECT_OK(aclrtMalloc(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtFree(p));
}

API_TEST(test_ctx_destroy_twice)
{
    aclrtContext c = NULL;
    EXPECT_OK(aclrtCreateContext(&c, 1));
    EXPECT_OK(aclrtDestroyContext(c));
    EXPECT_ERR(aclrtDestroyContext(c), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_ERR(aclrtSetCurrentContext(c), ACL_ERROR_RT_INVALID_HANDLE);
    use_dev0();
}

API_TEST(test_ctx_destroy_takes_streams)
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
    CHECK(cur == g_api_ctx0);
}

API_TEST(test_ctx_null_args)
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
    CHECK(cur == g_api_ctx0);
}

API_TEST(test_ctx_destroyed_current)
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

API_TEST(test_primary_ctx_state)
{
    CHECK(primary_active(0) == 1);      /* the main thread's device */
    run_thread(thread_primary_ctx, NULL);
    int32_t active = -1;
    EXPECT_ERR(aclrtGetPrimaryCtxState(0, NULL, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtGetPrimaryCtxState(8, NULL, &active), ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtGetPrimaryCtxState(-1, NULL, &active), ACL_ERROR_RT_INVALID_DEVICEID);
}

int main(void)
{
    static const TestCase devices[] = {
        T(test_device_queries), T(test_device_bad_ids),
        T(test_device_none_in_new_thread), T(test_device_per_thread),
        T(test_device_info), T(test_device_status), T(test_stream_priority_range),
        T(test_device_utilization), T(test_device_set_reset_count),
        T(test_device_reset_force), T(test_device_reset_frees_memory),
        T(test_visible_devices),
    };
    static const TestCase contexts[] = {
        T(test_ctx_create_is_current), T(test_ctx_switch_device),
        T(test_ctx_destroy_default), T(test_ctx_destroy_twice),
        T(test_ctx_destroy_takes_streams), T(test_ctx_null_args),
        T(test_ctx_destroyed_current), T(test_primary_ctx_state),
    };
    static const TestSuite suites[] = {
        SUITE("devices", NULL, NULL, devices),
        SUITE("contexts", NULL, NULL, contexts),
    };
    return api_run("test_api_device", true, suites, G_N_ELEMENTS(suites));
}
