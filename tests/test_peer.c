/*
 * test_peer.c - integration tests of peer access and device topology (chapter
 * 04: aclrtDeviceCanAccessPeer, aclrtDeviceEnablePeerAccess,
 * aclrtDeviceDisablePeerAccess, aclrtDevicePeerAccessStatus,
 * aclrtGetDevicesTopo, aclrtDeviceGetBareTgid) against a real npu-emu
 * (profile a2, 8 devices), and a child with its own a3 emulator for the A3
 * topology.
 *
 * This process calls aclInit once; device 0 is its home.  Peer access is
 * checked where it matters: a stream task of a device without access to the
 * other device's memory fails with 507013 and leaves the destination as it
 * was, a synchronous copy between two devices is refused (107000) unless the
 * current device has access to the other one, and data that does move is
 * checked.  Every test leaves no pair enabled behind it.  Every expected
 * failure is checked with its exact code, last error and message
 * (acl_check.h).
 */
#define _GNU_SOURCE
#include <CUnit/Basic.h>
#include <glib.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl/acl.h"
#include "acl_check.h"
#include "harness.h"

#define MiB (1024ull * 1024)
#define N (4 * MiB)
#define NDEV 8

static TestEmu g_emu;
static pid_t g_parent_pid;
static aclrtContext g_ctx[NDEV];    /* each device's default context */

/* ---- helpers ---- */

static bool emu_alive(void)
{
    return emu_running(&g_emu);
}

#define TEST(name) EMU_TEST(name, emu_alive)

static pid_t run_child(void (*fn)(void), const char *name)
{
    int pid = 0;
    int st = run_checked_child(fn, &pid);
    CHECKF(st == 0, "child '%s' ended with status %d", name, st);
    return pid;
}

/* Makes `dev` the current device without taking an aclrtSetDevice reference
 * (main sets every device once). */
static void use(int32_t dev)
{
    EXPECT_OK(aclrtSetCurrentContext(g_ctx[dev]));
}

/* Opens `dev` again after its last reference went (aclrtResetDevice). */
static void reopen(int32_t dev)
{
    EXPECT_OK(aclrtSetDevice(dev));
    EXPECT_OK(aclrtGetCurrentContext(&g_ctx[dev]));
}

/* n bytes of device memory on `dev`, filled with pattern `seed`; the current
 * device is `dev` afterwards. */
static void *dev_with(int32_t dev, size_t n, uint32_t seed)
{
    void *d = NULL;
    uint8_t *tmp = g_malloc(n);
    fill_pattern(tmp, n, seed);
    use(dev);
    if (EXPECT_OK(aclrtMalloc(&d, n, ACL_MEM_MALLOC_HUGE_FIRST)))
        EXPECT_OK(aclrtMemcpy(d, n, tmp, n, ACL_MEMCPY_HOST_TO_DEVICE));
    g_free(tmp);
    return d;
}

/* Whether device memory d holds pattern `seed` (copied out from the current
 * device: a copy to the host needs no peer access). */
static bool dev_has(const void *d, size_t n, uint32_t seed)
{
    uint8_t *want = g_malloc(n), *got = g_malloc0(n);
    fill_pattern(want, n, seed);
    bool ok = EXPECT_OK(aclrtMemcpy(got, n, d, n, ACL_MEMCPY_DEVICE_TO_HOST)) &&
              memcmp(got, want, n) == 0;
    g_free(want);
    g_free(got);
    return ok;
}

static int32_t status_of(int32_t dev, int32_t peer)
{
    int32_t st = -1;
    EXPECT_OK(aclrtDevicePeerAccessStatus(dev, peer, &st));
    return st;
}

/* Runs fn in a new thread, which has no current context. */
static void in_thread(void *(*fn)(void *))
{
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, fn, NULL) == 0);
    pthread_join(t, NULL);
}

/* ---- aclrtDeviceCanAccessPeer ---- */

TEST(test_can_access_peer)
{
    for (int32_t a = 0; a < NDEV; a++)
        for (int32_t b = 0; b < NDEV; b++) {
            if (a == b)
                continue;
            int32_t can = -1;
            EXPECT_OK(aclrtDeviceCanAccessPeer(&can, a, b));
            CHECKF(can == 1, "devices %d and %d: canAccessPeer %d", a, b, can);
        }
    int32_t can = 7;
    EXPECT_ERR(aclrtDeviceCanAccessPeer(NULL, 0, 1), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtDeviceCanAccessPeer(&can, 2, 2), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtDeviceCanAccessPeer(&can, -1, 1), ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtDeviceCanAccessPeer(&can, 0, NDEV), ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtDeviceCanAccessPeer(&can, NDEV, 0), ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtDeviceCanAccessPeer(&can, 0, -5), ACL_ERROR_RT_INVALID_DEVICEID);
    CHECK(can == 7);
}

/* ---- Enable / Disable / Status: arguments ---- */

static void *thread_no_context(void *arg)
{
    (void)arg;
    EXPECT_ERR(aclrtDeviceEnablePeerAccess(1, 0), ACL_ERROR_RT_CONTEXT_NULL);
    EXPECT_ERR(aclrtDeviceDisablePeerAccess(1), ACL_ERROR_RT_CONTEXT_NULL);
    /* The status query names both devices and needs no context. */
    int32_t st = -1;
    EXPECT_OK(aclrtDevicePeerAccessStatus(0, 1, &st));
    CHECK(st == 0);
    return NULL;
}

TEST(test_enable_disable_bad_args)
{
    EXPECT_ERR(aclrtDeviceEnablePeerAccess(1, 1), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtDeviceEnablePeerAccess(1, 0x80000000u), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtDeviceEnablePeerAccess(0, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtDeviceEnablePeerAccess(-1, 0), ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtDeviceEnablePeerAccess(NDEV, 0), ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtDeviceDisablePeerAccess(0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtDeviceDisablePeerAccess(-1), ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtDeviceDisablePeerAccess(NDEV), ACL_ERROR_RT_INVALID_DEVICEID);
    int32_t st = 7;
    EXPECT_ERR(aclrtDevicePeerAccessStatus(0, 1, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtDevicePeerAccessStatus(3, 3, &st), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtDevicePeerAccessStatus(-1, 0, &st), ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtDevicePeerAccessStatus(0, NDEV, &st), ACL_ERROR_RT_INVALID_DEVICEID);
    CHECK(st == 7);
    in_thread(thread_no_context);
    /* Nothing was enabled by any of it. */
    for (int32_t p = 1; p < NDEV; p++)
        CHECKF(status_of(0, p) == 0, "0 -> %d enabled by a refused call", p);
}

/* A switch: on twice is on, off twice is off; status follows. */
TEST(test_status_follows)
{
    for (int32_t a = 0; a < NDEV; a++)
        for (int32_t b = 0; b < NDEV; b++)
            if (a != b)
                CHECKF(status_of(a, b) == 0, "%d -> %d enabled from the start", a, b);
    EXPECT_OK(aclrtDeviceEnablePeerAccess(1, 0));
    CHECK(status_of(0, 1) == 1);
    CHECK(status_of(1, 0) == 0);
    CHECK(status_of(0, 2) == 0);
    EXPECT_OK(aclrtDeviceEnablePeerAccess(1, 0));
    CHECK(status_of(0, 1) == 1);
    EXPECT_OK(aclrtDeviceEnablePeerAccess(7, 0));
    CHECK(status_of(0, 7) == 1);
    EXPECT_OK(aclrtDeviceDisablePeerAccess(1));
    CHECK(status_of(0, 1) == 0);
    CHECK(status_of(0, 7) == 1);
    EXPECT_OK(aclrtDeviceDisablePeerAccess(1));
    CHECK(status_of(0, 1) == 0);
    EXPECT_OK(aclrtDeviceDisablePeerAccess(7));
    CHECK(status_of(0, 7) == 0);
    /* From another device's context: that device's side. */
    use(5);
    EXPECT_OK(aclrtDeviceEnablePeerAccess(0, 0));
    CHECK(status_of(5, 0) == 1);
    CHECK(status_of(0, 5) == 0);
    EXPECT_OK(aclrtDeviceDisablePeerAccess(0));
    CHECK(status_of(5, 0) == 0);
    use(0);
}

/* ---- stream tasks: one direction at a time ---- */

/* Queues a copy from src to dst on `s` and synchronises. */
static aclError copy_on(aclrtStream s, void *dst, const void *src)
{
    aclError err = aclrtMemcpyAsync(dst, N, src, N, ACL_MEMCPY_DEVICE_TO_DEVICE, s);
    return err == ACL_SUCCESS ? aclrtSynchronizeStream(s) : err;
}

TEST(test_async_one_directional)
{
    aclrtStream s0 = NULL, s1 = NULL;
    void *a1 = dev_with(1, N, 11);
    EXPECT_OK(aclrtCreateStream(&s1));
    void *a0 = dev_with(0, N, 10);
    void *b0 = dev_with(0, N, 12);
    EXPECT_OK(aclrtCreateStream(&s0));
    if (!a0 || !b0 || !a1 || !s0 || !s1)
        goto out;

    /* Without peer access neither device reaches the other's memory. */
    EXPECT_ERR(copy_on(s0, a0, a1), ACL_ERROR_RT_SYS_DMA);
    CHECK(dev_has(a0, N, 10));
    EXPECT_ERR(copy_on(s0, a1, a0), ACL_ERROR_RT_SYS_DMA);
    CHECK(dev_has(a1, N, 11));

    /* 0 -> 1: device 0's streams read and write device 1's memory ... */
    EXPECT_OK(aclrtDeviceEnablePeerAccess(1, 0));
    EXPECT_OK(copy_on(s0, a0, a1));
    CHECK(dev_has(a0, N, 11));
    EXPECT_OK(copy_on(s0, a1, b0));
    CHECK(dev_has(a1, N, 12));

    /* ... while device 1's streams still reach nothing of device 0. */
    use(1);
    EXPECT_ERR(copy_on(s1, a1, a0), ACL_ERROR_RT_SYS_DMA);
    CHECK(dev_has(a1, N, 12));
    EXPECT_ERR(copy_on(s1, a0, a1), ACL_ERROR_RT_SYS_DMA);
    CHECK(dev_has(a0, N, 11));
    /* Until device 1 enables its own direction; disabling takes it away. */
    EXPECT_OK(aclrtDeviceEnablePeerAccess(0, 0));
    EXPECT_OK(copy_on(s1, a1, a0));
    CHECK(dev_has(a1, N, 11));
    EXPECT_OK(aclrtDeviceDisablePeerAccess(0));
    EXPECT_ERR(copy_on(s1, a1, b0), ACL_ERROR_RT_SYS_DMA);
    CHECK(dev_has(a1, N, 11));

    /* Disabling 0 -> 1 takes device 0's access away again, reads and writes. */
    use(0);
    EXPECT_OK(aclrtDeviceDisablePeerAccess(1));
    EXPECT_ERR(copy_on(s0, b0, a1), ACL_ERROR_RT_SYS_DMA);
    CHECK(dev_has(b0, N, 12));
    EXPECT_OK(aclrtMemsetAsync(a1, N, 0, N, s0));
    EXPECT_ERR(aclrtSynchronizeStream(s0), ACL_ERROR_RT_SYS_DMA);
    CHECK(dev_has(a1, N, 11));
out:
    use(0);
    if (s0)
        EXPECT_OK(aclrtDestroyStream(s0));
    if (a0)
        EXPECT_OK(aclrtFree(a0));
    if (b0)
        EXPECT_OK(aclrtFree(b0));
    use(1);
    if (s1)
        EXPECT_OK(aclrtDestroyStream(s1));
    if (a1)
        EXPECT_OK(aclrtFree(a1));
    use(0);
}

/* ---- synchronous copies ---- */

static void *g_a0, *g_a1;

static void *thread_sync_copy(void *arg)
{
    (void)arg;
    EXPECT_ERR(aclrtMemcpy(g_a1, N, g_a0, N, ACL_MEMCPY_DEVICE_TO_DEVICE),
               ACL_ERROR_RT_CONTEXT_NULL);
    return NULL;
}

#define D2D ACL_MEMCPY_DEVICE_TO_DEVICE

TEST(test_sync_copy_needs_peer_access)
{
    void *a1 = dev_with(1, N, 21);
    void *a2 = dev_with(2, N, 22);
    void *a0 = dev_with(0, N, 20);
    void *b0 = dev_with(0, N, 23);
    if (!a0 || !a1 || !a2 || !b0)
        goto out;

    /* Refused both ways without peer access, nothing copied, whatever kind. */
    EXPECT_ERR(aclrtMemcpy(a1, N, a0, N, D2D), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy(a0, N, a1, N, D2D), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy(a0, N, a1, N, ACL_MEMCPY_DEFAULT), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy(a0, 64, (uint8_t *)a1 + 64, 64, ACL_MEMCPY_INTER_DEVICE_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    CHECK(dev_has(a0, N, 20));
    CHECK(dev_has(a1, N, 21));
    /* Within one device, or with the host, nothing is needed, whatever the
     * current device. */
    EXPECT_OK(aclrtMemcpy(b0, N, a0, N, D2D));
    CHECK(dev_has(b0, N, 20));
    use(1);
    EXPECT_OK(aclrtMemcpy(b0, N, a0, N, D2D));
    use(0);
    /* Without a current context there is no device to make the copy. */
    g_a0 = a0;
    g_a1 = a1;
    in_thread(thread_sync_copy);

    /* The current device (0) with access to 1 makes the copy either way ... */
    EXPECT_OK(aclrtDeviceEnablePeerAccess(1, 0));
    EXPECT_OK(aclrtMemcpy(a1, N, a0, N, D2D));
    CHECK(dev_has(a1, N, 20));
    EXPECT_OK(aclrtMemcpy(b0, N, a1, N, D2D));
    CHECK(dev_has(b0, N, 20));
    /* ... but not with device 2. */
    EXPECT_ERR(aclrtMemcpy(a0, N, a2, N, D2D), ACL_ERROR_RT_PARAM_INVALID);
    CHECK(dev_has(a0, N, 20));
    /* Device 1 has no access to device 0 or 2: its context may not copy. */
    use(1);
    EXPECT_ERR(aclrtMemcpy(a1, N, a2, N, D2D), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy(a0, N, a1, N, D2D), ACL_ERROR_RT_PARAM_INVALID);
    CHECK(dev_has(a1, N, 20));
    /* A third device copying between 0 and 1 needs access to both. */
    use(2);
    EXPECT_OK(aclrtDeviceEnablePeerAccess(0, 0));
    EXPECT_ERR(aclrtMemcpy(a1, N, a2, N, D2D), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy(a0, N, a1, N, D2D), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtDeviceEnablePeerAccess(1, 0));
    EXPECT_OK(aclrtMemcpy(a1, N, a2, N, D2D));
    CHECK(dev_has(a1, N, 22));
    EXPECT_OK(aclrtMemcpy(a0, N, a1, N, D2D));
    CHECK(dev_has(a0, N, 22));
    EXPECT_OK(aclrtDeviceDisablePeerAccess(0));
    EXPECT_OK(aclrtDeviceDisablePeerAccess(1));
    /* Disabled again: refused again. */
    use(0);
    EXPECT_OK(aclrtDeviceDisablePeerAccess(1));
    EXPECT_ERR(aclrtMemcpy(a1, N, a0, N, D2D), ACL_ERROR_RT_PARAM_INVALID);
    CHECK(dev_has(a1, N, 22));
out:
    use(0);
    if (a0)
        EXPECT_OK(aclrtFree(a0));
    if (b0)
        EXPECT_OK(aclrtFree(b0));
    if (a1)
        EXPECT_OK(aclrtFree(a1));
    if (a2)
        EXPECT_OK(aclrtFree(a2));
}

/* ---- resetting a device drops its pairs ---- */

TEST(test_reset_drops_peer_access)
{
    aclrtStream s0 = NULL;
    use(3);
    EXPECT_OK(aclrtDeviceEnablePeerAccess(0, 0));
    EXPECT_OK(aclrtDeviceEnablePeerAccess(4, 0));
    use(0);
    EXPECT_OK(aclrtDeviceEnablePeerAccess(3, 0));
    EXPECT_OK(aclrtDeviceEnablePeerAccess(4, 0));
    CHECK(status_of(3, 0) == 1 && status_of(0, 3) == 1 && status_of(3, 4) == 1);
    /* Device 3's last reference: every pair with device 3 in it goes. */
    EXPECT_OK(aclrtResetDevice(3));
    CHECK(status_of(3, 0) == 0);
    CHECK(status_of(3, 4) == 0);
    CHECK(status_of(0, 3) == 0);
    CHECK(status_of(0, 4) == 1);
    /* The emulator forgot it too: device 0's streams no longer reach device 3,
     * and the runtime refuses a synchronous copy. */
    reopen(3);
    CHECK(status_of(3, 0) == 0 && status_of(0, 3) == 0);
    void *a3 = dev_with(3, N, 33);
    void *a4 = dev_with(4, N, 34);
    void *a0 = dev_with(0, N, 30);
    EXPECT_OK(aclrtCreateStream(&s0));
    if (a3 && a4 && a0 && s0) {
        EXPECT_ERR(copy_on(s0, a0, a3), ACL_ERROR_RT_SYS_DMA);
        CHECK(dev_has(a0, N, 30));
        EXPECT_ERR(aclrtMemcpy(a0, N, a3, N, D2D), ACL_ERROR_RT_PARAM_INVALID);
        /* A pair without device 3 is untouched. */
        EXPECT_OK(copy_on(s0, a0, a4));
        CHECK(dev_has(a0, N, 34));
    }
    /* Disabling what the reset took away is harmless (the reference's own
     * sample disables after resetting the peer). */
    EXPECT_OK(aclrtDeviceDisablePeerAccess(3));
    EXPECT_OK(aclrtDeviceDisablePeerAccess(4));
    if (s0)
        EXPECT_OK(aclrtDestroyStream(s0));
    if (a0)
        EXPECT_OK(aclrtFree(a0));
    if (a3)
        EXPECT_OK(aclrtFree(a3));
    if (a4)
        EXPECT_OK(aclrtFree(a4));
}

/* The sample of the multi-device chapter, in a process of its own. */
static void child_reference_sample(void)
{
    enum { M = 10 };
    if (!EXPECT_OK(aclInit(NULL)))
        return;
    int32_t can = 0;
    EXPECT_OK(aclrtDeviceCanAccessPeer(&can, 0, 1));
    CHECK(can == 1);
    EXPECT_OK(aclrtSetDevice(0));
    EXPECT_OK(aclrtDeviceEnablePeerAccess(1, 0));
    void *dev0 = NULL, *dev1 = NULL;
    EXPECT_OK(aclrtMalloc(&dev0, M, ACL_MEM_MALLOC_HUGE_FIRST_P2P));
    EXPECT_OK(aclrtMemcpy(dev0, M, "0123456789", M, ACL_MEMCPY_HOST_TO_DEVICE));
    EXPECT_OK(aclrtSetDevice(1));
    EXPECT_OK(aclrtDeviceEnablePeerAccess(0, 0));
    EXPECT_OK(aclrtMalloc(&dev1, M, ACL_MEM_MALLOC_HUGE_FIRST_P2P));
    EXPECT_OK(aclrtMemcpy(dev1, M, dev0, M, ACL_MEMCPY_DEVICE_TO_DEVICE));
    char got[M] = { 0 };
    EXPECT_OK(aclrtMemcpy(got, M, dev1, M, ACL_MEMCPY_DEVICE_TO_HOST));
    CHECK(memcmp(got, "0123456789", M) == 0);
    EXPECT_OK(aclrtDeviceDisablePeerAccess(0));
    EXPECT_OK(aclrtFree(dev1));
    EXPECT_OK(aclrtResetDevice(1));
    EXPECT_OK(aclrtSetDevice(0));
    EXPECT_OK(aclrtDeviceDisablePeerAccess(1));
    EXPECT_OK(aclrtFree(dev0));
    EXPECT_OK(aclrtResetDeviceForce(0));
    EXPECT_OK(aclFinalize());
}

TEST(test_reference_sample)
{
    run_child(child_reference_sample, "reference sample");
}

/* ---- topology ---- */

TEST(test_topology_a2)
{
    for (uint32_t a = 0; a < NDEV; a++)
        for (uint32_t b = 0; b < NDEV; b++) {
            if (a == b)
                continue;
            uint64_t v = 0;
            EXPECT_OK(aclrtGetDevicesTopo(a, b, &v));
            CHECKF(v == ACL_RT_DEVS_TOPOLOGY_HCCS, "a2 devices %u, %u: topology 0x%llx", a, b,
                   (unsigned long long)v);
        }
    uint64_t v = 99;
    EXPECT_ERR(aclrtGetDevicesTopo(0, 1, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtGetDevicesTopo(4, 4, &v), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtGetDevicesTopo(0, NDEV, &v), ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtGetDevicesTopo(NDEV, 0, &v), ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtGetDevicesTopo(UINT32_MAX, 0, &v), ACL_ERROR_RT_INVALID_DEVICEID);
    CHECK(v == 99);
}

static uint64_t topo(uint32_t a, uint32_t b)
{
    uint64_t v = 0;
    EXPECT_OK(aclrtGetDevicesTopo(a, b, &v));
    return v;
}

/* An a3 emulator of its own: 16 dies, two per chip. */
static void child_topology_a3(void)
{
    TestEmu e3;
    if (!CHECK(emu_start(&e3, "a3", NULL)))
        return;
    if (EXPECT_OK(aclInit(NULL))) {
        uint32_t n = 0;
        EXPECT_OK(aclrtGetDeviceCount(&n));
        CHECK(n == 16);
        for (uint32_t a = 0; a < n; a++)
            for (uint32_t b = 0; b < n; b++) {
                if (a == b)
                    continue;
                uint64_t want = a / 2 == b / 2 ? ACL_RT_DEVS_TOPOLOGY_SIO
                                               : ACL_RT_DEVS_TOPOLOGY_HCCS_SW;
                uint64_t v = topo(a, b);
                CHECKF(v == want, "a3 devices %u, %u: topology 0x%llx", a, b,
                       (unsigned long long)v);
                int32_t can = 0;
                EXPECT_OK(aclrtDeviceCanAccessPeer(&can, (int32_t)a, (int32_t)b));
                CHECK(can == 1);
            }
        EXPECT_ERR(aclrtGetDevicesTopo(0, 16, &(uint64_t){ 0 }), ACL_ERROR_RT_INVALID_DEVICEID);
        /* Peer access works the same on A3: die 0 reaches die 1 once enabled. */
        void *d0 = NULL, *d1 = NULL;
        EXPECT_OK(aclrtSetDevice(1));
        EXPECT_OK(aclrtMalloc(&d1, 64, ACL_MEM_MALLOC_HUGE_FIRST));
        EXPECT_OK(aclrtSetDevice(0));
        EXPECT_OK(aclrtMalloc(&d0, 64, ACL_MEM_MALLOC_HUGE_FIRST));
        EXPECT_ERR(aclrtMemcpy(d0, 64, d1, 64, ACL_MEMCPY_DEVICE_TO_DEVICE),
                   ACL_ERROR_RT_PARAM_INVALID);
        EXPECT_OK(aclrtDeviceEnablePeerAccess(1, 0));
        EXPECT_OK(aclrtMemcpy(d0, 64, d1, 64, ACL_MEMCPY_DEVICE_TO_DEVICE));
        EXPECT_OK(aclFinalize());
    }
    /* The model is of physical devices: user ids 0, 1, 2 are dies 1, 2, 3. */
    setenv("ASCEND_RT_VISIBLE_DEVICES", "1,2,3", 1);
    if (EXPECT_OK(aclInit(NULL))) {
        CHECK(topo(0, 1) == ACL_RT_DEVS_TOPOLOGY_HCCS_SW);
        CHECK(topo(1, 2) == ACL_RT_DEVS_TOPOLOGY_SIO);
        CHECK(topo(2, 1) == ACL_RT_DEVS_TOPOLOGY_SIO);
        CHECK(topo(0, 2) == ACL_RT_DEVS_TOPOLOGY_HCCS_SW);
        EXPECT_ERR(aclrtGetDevicesTopo(0, 3, &(uint64_t){ 0 }), ACL_ERROR_RT_INVALID_DEVICEID);
        EXPECT_OK(aclFinalize());
    }
    unsetenv("ASCEND_RT_VISIBLE_DEVICES");
    emu_stop(&e3);
}

TEST(test_topology_a3)
{
    run_child(child_topology_a3, "a3 topology");
}

/* ---- aclrtDeviceGetBareTgid ---- */

static void child_bare_tgid(void)
{
    if (!EXPECT_OK(aclInit(NULL)))
        return;
    int32_t pid = 0;
    EXPECT_OK(aclrtDeviceGetBareTgid(&pid));
    CHECKF(pid == getpid(), "child: bare tgid %d, getpid() %d", pid, (int)getpid());
    CHECK(pid != g_parent_pid);
    EXPECT_OK(aclFinalize());
}

TEST(test_bare_tgid)
{
    int32_t pid = 0;
    EXPECT_OK(aclrtDeviceGetBareTgid(&pid));
    CHECKF(pid == getpid(), "bare tgid %d, getpid() %d", pid, (int)getpid());
    EXPECT_ERR(aclrtDeviceGetBareTgid(NULL), ACL_ERROR_RT_PARAM_INVALID);
    g_parent_pid = getpid();
    run_child(child_bare_tgid, "bare tgid");
}

/* ---- before aclInit ---- */

static void child_preinit(void)
{
    int32_t i = 0;
    uint64_t v = 0;
    EXPECT_ERR(aclrtDeviceCanAccessPeer(&i, 0, 1), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtDeviceEnablePeerAccess(1, 0), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtDeviceDisablePeerAccess(1), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtDevicePeerAccessStatus(0, 1, &i), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtGetDevicesTopo(0, 1, &v), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtDeviceGetBareTgid(&i), ACL_ERROR_UNINITIALIZE);
}

TEST(test_preinit)
{
    run_child(child_preinit, "before aclInit");
}

/* ---- main ---- */

int main(void)
{
    static const TestCase before[] = { T(test_preinit) };
    static const TestCase tests[] = {
        T(test_can_access_peer), T(test_enable_disable_bad_args),
        T(test_status_follows), T(test_async_one_directional),
        T(test_sync_copy_needs_peer_access), T(test_reset_drops_peer_access),
        T(test_reference_sample), T(test_topology_a2), T(test_topology_a3), T(test_bare_tgid),
    };
    /* The preinit child must fork before this process calls aclInit.  Then
     * every device is set, device 0 last: it is current. */
    static const TestProgram prog = {
        .name = "test_peer", .emus = { EMU(&g_emu, "a2") },
        .suites = { SUITE("before aclInit", NULL, NULL, before),
                    SUITE("peer access", NULL, NULL, tests) },
        .pre_init = 1, .devices = DEV(NDEV) - 1, .ctx = g_ctx,
    };
    return test_main(&prog);
}
