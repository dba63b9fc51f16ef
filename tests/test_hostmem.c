/*
 * test_hostmem.c - integration tests of host memory registration (chapter
 * 11-02: aclrtHostRegister[V2], aclrtHostGetDevicePointer, aclrtHostUnregister,
 * aclrtHostMemMapCapabilities) and managed memory (chapter 11-05:
 * aclrtMemAllocManaged, aclrtMemManagedAdvise, GetAttr[s], Prefetch[Batch]Async)
 * against one real npu-emu (profile a2).
 *
 * This process calls aclInit once and uses device 0.  Data is checked where
 * it arrives: asynchronous copies from and to registered and managed memory
 * (checksums), host contents across register / unregister, and what a forked
 * child sees.  Children that need their own session (fork, aclFinalize, death)
 * call aclInit themselves; the emulator's log says what it reclaimed when they
 * went.  Every expected failure is checked with its exact code, last error
 * and message (acl_check.h).
 */
#define _GNU_SOURCE
#include <CUnit/Basic.h>
#include <glib.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acl/acl.h"
#include "acl_check.h"
#include "harness.h"

#define KiB 1024ull
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)
#define UVM_LO 0x90000000000ull
#define UVM_HI (UVM_LO + 3 * 1024 * GiB)
#define BIG (256 * MiB)

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#else
#define UNDER_ASAN 0
#endif

static TestEmu g_emu;
static aclrtStream g_stream;

/* ---- helpers ---- */

static bool emu_alive(void)
{
    return emu_running(&g_emu);
}

#define TEST(name) EMU_TEST(name, emu_alive)

static void *page_alloc(size_t n)
{
    void *p = NULL;
    return posix_memalign(&p, 4096, n) == 0 ? p : NULL;
}

/* Device memory filled with pattern `seed`. */
static void *dev_with(size_t n, uint32_t seed)
{
    void *d = NULL;
    uint8_t *tmp = g_malloc(n);
    fill_pattern(tmp, n, seed);
    if (EXPECT_OK(aclrtMalloc(&d, n, ACL_MEM_MALLOC_HUGE_FIRST)))
        EXPECT_OK(aclrtMemcpy(d, n, tmp, n, ACL_MEMCPY_HOST_TO_DEVICE));
    g_free(tmp);
    return d;
}

static uint64_t dev_sum(const void *d, size_t n)
{
    uint8_t *tmp = g_malloc0(n);
    EXPECT_OK(aclrtMemcpy(tmp, n, d, n, ACL_MEMCPY_DEVICE_TO_HOST));
    uint64_t s = checksum(tmp, n);
    g_free(tmp);
    return s;
}

static uint64_t pattern_sum(size_t n, uint32_t seed)
{
    uint8_t *tmp = g_malloc(n);
    fill_pattern(tmp, n, seed);
    uint64_t s = checksum(tmp, n);
    g_free(tmp);
    return s;
}

/* Two 256 MiB device buffers: a copy between them keeps a stream busy long
 * enough that work queued behind it has visibly not run yet. */
typedef struct Busy {
    void *a, *b;
} Busy;

static bool busy_alloc(Busy *bz)
{
    bz->a = bz->b = NULL;
    return EXPECT_OK(aclrtMalloc(&bz->a, BIG, ACL_MEM_MALLOC_HUGE_FIRST)) &&
           EXPECT_OK(aclrtMalloc(&bz->b, BIG, ACL_MEM_MALLOC_HUGE_FIRST)) &&
           EXPECT_OK(aclrtMemset(bz->a, BIG, 0x11, BIG));
}

static void busy_free(Busy *bz)
{
    EXPECT_OK(aclrtFree(bz->a));
    EXPECT_OK(aclrtFree(bz->b));
}

/* Copies from device memory into `host` behind a busy copy: the data must not
 * be there when the call returns (it is a stream task, so `host` is pinned for
 * the runtime), and must be after the synchronise. */
static void check_async_d2h(void *host, size_t n, uint32_t seed, const char *what)
{
    Busy bz;
    void *d = dev_with(n, seed);
    if (!busy_alloc(&bz) || !d)
        return;
    memset(host, 0xee, n);
    EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, g_stream));
    EXPECT_OK(aclrtMemcpyAsync(host, n, d, n, ACL_MEMCPY_DEVICE_TO_HOST, g_stream));
    CHECKF(all_bytes(host, n, 0xee), "%s: the D2H copy ran before the stream got to it "
                                     "(treated as pageable memory?)", what);
    EXPECT_OK(aclrtSynchronizeStream(g_stream));
    CHECKF(checksum(host, n) == pattern_sum(n, seed), "%s: async D2H delivered wrong data", what);
    EXPECT_OK(aclrtFree(d));
    busy_free(&bz);
}

/* The reverse: host memory to device memory through the stream engine. */
static void check_async_h2d(void *host, size_t n, uint32_t seed, const char *what)
{
    void *d = NULL;
    fill_pattern(host, n, seed);
    if (!EXPECT_OK(aclrtMalloc(&d, n, ACL_MEM_MALLOC_HUGE_FIRST)))
        return;
    EXPECT_OK(aclrtMemset(d, n, 0, n));
    EXPECT_OK(aclrtMemcpyAsync(d, n, host, n, ACL_MEMCPY_HOST_TO_DEVICE, g_stream));
    EXPECT_OK(aclrtSynchronizeStream(g_stream));
    CHECKF(dev_sum(d, n) == pattern_sum(n, seed), "%s: async H2D delivered wrong data", what);
    EXPECT_OK(aclrtFree(d));
}

static aclrtPtrAttributes attrs_of(const void *p)
{
    aclrtPtrAttributes a;
    memset(&a, 0xff, sizeof(a));
    EXPECT_OK(aclrtPointerGetAttributes(p, &a));
    return a;
}

/* Pages of [p, p + n) that are resident. */
static size_t resident_pages(const void *p, size_t n)
{
    size_t pages = n / 4096, r = 0;
    unsigned char *v = g_malloc(pages);
    if (mincore((void *)p, n, v) == 0)
        for (size_t i = 0; i < pages; i++)
            r += v[i] & 1;
    g_free(v);
    return r;
}

/* Runs fn in a forked child; returns its pid (already waited for) after
 * checking that it exited with `want_status`. */
static pid_t run_child(void (*fn)(void), int want_status, const char *name)
{
    int pid = 0;
    int st = run_checked_child(fn, &pid);
    CHECKF(st == want_status, "child '%s' ended with status %d, not %d", name, st, want_status);
    return pid;
}

/* ---- registration ---- */

TEST(test_register_pageable)
{
    enum { N = 5 * 4096 + 100 };
    uint8_t *p = page_alloc(3 * 4096 * 4);
    CU_ASSERT_FATAL(p != NULL);
    fill_pattern(p, N, 1);
    uint64_t before = checksum(p, N);
    void *dev = NULL;
    if (!EXPECT_OK(aclrtHostRegister(p, N, ACL_HOST_REGISTER_MAPPED, &dev)))
        return;
    CHECKF(checksum(p, N) == before, "registering changed the host contents");
    CHECK(dev != NULL && dev != p);
    void *q = NULL;
    EXPECT_OK(aclrtHostGetDevicePointer(p, &q, 0));
    CHECK(q == dev);
    EXPECT_OK(aclrtHostGetDevicePointer(p + 4100, &q, 0));
    CHECK(q == (uint8_t *)dev + 4100);
    /* The device address is a view of the same pages. */
    CHECK(memcmp(dev, p, N) == 0);
    aclrtPtrAttributes a = attrs_of(p + 10);
    CHECK(a.location.type == ACL_MEM_LOCATION_TYPE_HOST);

    /* Pinned now: copies are stream tasks in both directions. */
    check_async_d2h(p, N, 2, "registered pageable memory");
    check_async_h2d(p, N, 3, "registered pageable memory");

    /* The same memory again, or any overlap. */
    EXPECT_ERR(aclrtHostRegister(p, 4096, ACL_HOST_REGISTER_MAPPED, &q),
               ACL_ERROR_HOST_MEMORY_ALREADY_REGISTERED);
    EXPECT_ERR(aclrtHostRegister(p + 4 * 4096, 8192, ACL_HOST_REGISTER_MAPPED, &q),
               ACL_ERROR_HOST_MEMORY_ALREADY_REGISTERED);
    EXPECT_ERR(aclrtHostRegisterV2(p, N, ACL_HOST_REG_PINNED),
               ACL_ERROR_HOST_MEMORY_ALREADY_REGISTERED);
    /* aclrtFreeHost only takes aclrtMallocHost memory: the pages stay. */
    EXPECT_ERR(aclrtFreeHost(p), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtFreeHostWithDevSync(p), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtHostUnregister(p + 4096), ACL_ERROR_HOST_MEMORY_NOT_REGISTERED);

    fill_pattern(p, N, 4);
    EXPECT_OK(aclrtHostUnregister(p));
    CHECKF(checksum(p, N) == pattern_sum(N, 4), "unregistering lost the host contents");
    a = attrs_of(p);
    CHECK(a.location.type == ACL_MEM_LOCATION_TYPE_UNREGISTERED);
    EXPECT_ERR(aclrtHostUnregister(p), ACL_ERROR_HOST_MEMORY_NOT_REGISTERED);
    EXPECT_ERR(aclrtHostGetDevicePointer(p, &q, 0), ACL_ERROR_HOST_MEMORY_NOT_REGISTERED);
    /* Private pages again: ordinary memory, copies are done before returning. */
    memset(p, 0x5a, N);
    CHECK(all_bytes(p, N, 0x5a));
    free(p);
}

TEST(test_register_mmap_large)
{
    const size_t n = 64 * MiB;
    uint8_t *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(p != MAP_FAILED);
    fill_pattern(p, n, 11);
    void *dev = NULL;
    EXPECT_OK(aclrtHostRegister(p, n, ACL_HOST_REGISTER_MAPPED, &dev));
    CHECK(checksum(p, n) == pattern_sum(n, 11));
    check_async_d2h(p, n, 12, "64 MiB of registered mmap memory");
    EXPECT_OK(aclrtHostUnregister(p));
    CHECK(checksum(p, n) == pattern_sum(n, 12));
    /* The mapping is the application's again: it can give pages back. */
    CHECK(madvise(p, n, MADV_DONTNEED) == 0 && all_bytes(p, 4096, 0));
    CHECK(munmap(p, n) == 0);
}

TEST(test_register_v2)
{
    enum { N = 8192 };
    uint8_t *p = page_alloc(N), *p2 = page_alloc(N);
    CU_ASSERT_FATAL(p && p2);
    fill_pattern(p, N, 21);
    void *q = NULL;
    /* PINNED alone: pinned, but the device has no address for it. */
    EXPECT_OK(aclrtHostRegisterV2(p, N, ACL_HOST_REG_PINNED));
    CHECK(checksum(p, N) == pattern_sum(N, 21));
    EXPECT_ERR(aclrtHostGetDevicePointer(p, &q, 0), ACL_ERROR_RT_PARAM_INVALID);
    check_async_d2h(p, N, 22, "memory registered PINNED");
    EXPECT_OK(aclrtHostUnregister(p));
    CHECK(checksum(p, N) == pattern_sum(N, 22));
    /* MAPPED | PINNED, and MAPPED alone (pageable memory is pinned anyway). */
    EXPECT_OK(aclrtHostRegisterV2(p, N, ACL_HOST_REG_MAPPED | ACL_HOST_REG_PINNED));
    EXPECT_OK(aclrtHostRegisterV2(p2, N, ACL_HOST_REG_MAPPED));
    EXPECT_OK(aclrtHostGetDevicePointer(p, &q, 0));
    CHECK(q != NULL && q != p);
    EXPECT_OK(aclrtHostGetDevicePointer(p2, &q, 0));
    check_async_h2d(p2, N, 23, "memory registered MAPPED");
    EXPECT_OK(aclrtHostUnregister(p));
    EXPECT_OK(aclrtHostUnregister(p2));
    CHECK(checksum(p2, N) == pattern_sum(N, 23));
    free(p);
    free(p2);
}

TEST(test_register_pinned)
{
    uint8_t *h = NULL;
    void *dev = NULL, *q = NULL;
    if (!EXPECT_OK(aclrtMallocHost((void **)&h, 4 * 4096)))
        return;
    fill_pattern(h, 4 * 4096, 31);
    /* A page-aligned range inside the buffer: a second address for it. */
    EXPECT_OK(aclrtHostRegister(h + 4096, 8192, ACL_HOST_REGISTER_MAPPED, &dev));
    CHECK(dev != NULL && dev != h + 4096);
    CHECK(memcmp(dev, h + 4096, 8192) == 0);
    EXPECT_OK(aclrtHostGetDevicePointer(h + 4096 + 5, &q, 0));
    CHECK(q == (uint8_t *)dev + 5);
    EXPECT_ERR(aclrtHostRegister(h + 8192, 4096, ACL_HOST_REGISTER_MAPPED, &q),
               ACL_ERROR_HOST_MEMORY_ALREADY_REGISTERED);
    /* PINNED is for pageable memory only; a range past the buffer is neither. */
    EXPECT_ERR(aclrtHostRegisterV2(h, 4096, ACL_HOST_REG_PINNED), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtHostRegister(h + 3 * 4096, 8192, ACL_HOST_REGISTER_MAPPED, &q),
               ACL_ERROR_RT_PARAM_INVALID);
    check_async_d2h(h + 4096, 8192, 32, "registered aclrtMallocHost memory");
    CHECK(memcmp(dev, h + 4096, 8192) == 0);
    EXPECT_OK(aclrtHostUnregister(h + 4096));
    CHECK(checksum(h + 4096, 8192) == pattern_sum(8192, 32));
    /* Registered again, then freed: the free drops the registration. */
    EXPECT_OK(aclrtHostRegister(h, 4096, ACL_HOST_REGISTER_MAPPED, &dev));
    EXPECT_OK(aclrtFreeHost(h));
    EXPECT_ERR(aclrtHostUnregister(h), ACL_ERROR_HOST_MEMORY_NOT_REGISTERED);

    /* vaFlag = 1: the device address is the host address. */
    aclrtMallocAttribute attr = { .attr = ACL_RT_MEM_ATTR_VA_FLAG, .value.vaFlag = 1 };
    aclrtMallocConfig cfg = { .attrs = &attr, .numAttrs = 1 };
    void *v = NULL;
    if (EXPECT_OK(aclrtMallocHostWithCfg(&v, 8192, &cfg))) {
        EXPECT_OK(aclrtHostRegister(v, 8192, ACL_HOST_REGISTER_MAPPED, &dev));
        CHECK(dev == v);
        EXPECT_OK(aclrtHostGetDevicePointer(v, &q, 0));
        CHECK(q == v);
        EXPECT_OK(aclrtHostUnregister(v));
        EXPECT_OK(aclrtFreeHost(v));
    }
    /* vaFlag = 0 (the default): they differ. */
    attr.value.vaFlag = 0;
    if (EXPECT_OK(aclrtMallocHostWithCfg(&v, 8192, &cfg))) {
        EXPECT_OK(aclrtHostRegister(v, 8192, ACL_HOST_REGISTER_MAPPED, &dev));
        CHECK(dev != v);
        EXPECT_OK(aclrtHostUnregister(v));
        EXPECT_OK(aclrtFreeHost(v));
    }
}

static void *register_in_new_thread(void *p)
{
    void *dev = NULL;
    EXPECT_ERR(aclrtHostRegister(p, 4096, ACL_HOST_REGISTER_MAPPED, &dev),
               ACL_ERROR_RT_CONTEXT_NULL);
    return NULL;
}

TEST(test_register_bad_args)
{
    uint8_t *p = page_alloc(8192);
    void *dev = NULL, *d = NULL, *m = NULL;
    CU_ASSERT_FATAL(p != NULL);
    EXPECT_ERR(aclrtHostRegister(NULL, 4096, ACL_HOST_REGISTER_MAPPED, &dev),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtHostRegister(p, 0, ACL_HOST_REGISTER_MAPPED, &dev),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtHostRegister(p + 64, 4096, ACL_HOST_REGISTER_MAPPED, &dev),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtHostRegister(p, 4096, ACL_HOST_REGISTER_MAPPED, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtHostRegister(p, UINT64_MAX - 100, ACL_HOST_REGISTER_MAPPED, &dev),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtHostRegister(p, 4096, ACL_HOST_REGISTER_IOMEMORY, &dev),
               ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    EXPECT_ERR(aclrtHostRegister(p, 4096, ACL_HOST_REGISTER_READONLY, &dev),
               ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    EXPECT_ERR(aclrtHostRegister(p, 4096, (aclrtHostRegisterType)1, &dev),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtHostRegisterV2(p, 4096, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtHostRegisterV2(p, 4096, 0x1), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtHostRegisterV2(p, 4096, ACL_HOST_REG_MAPPED | 0x100),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtHostRegisterV2(p, 4096, ACL_HOST_REG_MAPPED | ACL_HOST_REG_IOMEMORY),
               ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    EXPECT_ERR(aclrtHostRegisterV2(p, 4096, ACL_HOST_REG_READONLY),
               ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    EXPECT_ERR(aclrtHostRegisterV2(NULL, 4096, ACL_HOST_REG_PINNED), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtHostRegisterV2(p + 1, 4096, ACL_HOST_REG_PINNED), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtHostRegisterV2(p, 0, ACL_HOST_REG_PINNED), ACL_ERROR_RT_PARAM_INVALID);

    /* Device memory and managed memory are not host memory to register. */
    if (EXPECT_OK(aclrtMalloc(&d, 2 * MiB, ACL_MEM_MALLOC_HUGE_ONLY))) {
        EXPECT_ERR(aclrtHostRegister(d, 4096, ACL_HOST_REGISTER_MAPPED, &dev),
                   ACL_ERROR_RT_PARAM_INVALID);
        EXPECT_OK(aclrtFree(d));
    }
    if (EXPECT_OK(aclrtMemAllocManaged(&m, 2 * MiB, ACL_RT_MEM_ATTACH_GLOBAL))) {
        EXPECT_ERR(aclrtHostRegister(m, 4096, ACL_HOST_REGISTER_MAPPED, &dev),
                   ACL_ERROR_RT_PARAM_INVALID);
        EXPECT_ERR(aclrtHostRegisterV2(m, 4096, ACL_HOST_REG_PINNED), ACL_ERROR_RT_PARAM_INVALID);
        EXPECT_OK(aclrtFree(m));
    }
    /* Unmapped, read-only and shared memory. */
    uint8_t *u = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(u != MAP_FAILED);
    munmap(u + 4096, 4096);
    EXPECT_ERR(aclrtHostRegister(u + 4096, 4096, ACL_HOST_REGISTER_MAPPED, &dev),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtHostRegister(u, 3 * 4096, ACL_HOST_REGISTER_MAPPED, &dev),
               ACL_ERROR_RT_PARAM_INVALID);
    mprotect(u, 4096, PROT_READ);
    EXPECT_ERR(aclrtHostRegister(u, 4096, ACL_HOST_REGISTER_MAPPED, &dev),
               ACL_ERROR_RT_PARAM_INVALID);
    munmap(u, 3 * 4096);
    uint8_t *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(sh != MAP_FAILED);
    EXPECT_ERR(aclrtHostRegister(sh, 4096, ACL_HOST_REGISTER_MAPPED, &dev),
               ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    munmap(sh, 4096);

    /* Unregister and device pointers of what was never registered. */
    EXPECT_ERR(aclrtHostUnregister(NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtHostUnregister(p), ACL_ERROR_HOST_MEMORY_NOT_REGISTERED);
    EXPECT_ERR(aclrtHostGetDevicePointer(NULL, &dev, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtHostGetDevicePointer(p, NULL, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtHostGetDevicePointer(p, &dev, 1), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtHostGetDevicePointer(p, &dev, 0), ACL_ERROR_HOST_MEMORY_NOT_REGISTERED);

    /* MAPPED maps for the current device: a thread without one cannot. */
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, register_in_new_thread, p) == 0);
    pthread_join(t, NULL);
    free(p);
}

TEST(test_host_mem_map_capabilities)
{
    aclrtHostMemMapCapability c = 99;
    static const struct {
        aclrtHacType hac;
        aclrtHostMemMapCapability want;
    } table[] = {
        { ACL_RT_HAC_TYPE_STARS, ACL_RT_HOST_MEM_MAP_SUPPORTED },
        { ACL_RT_HAC_TYPE_AICPU, ACL_RT_HOST_MEM_MAP_NOT_SUPPORTED },
        { ACL_RT_HAC_TYPE_AIC, ACL_RT_HOST_MEM_MAP_SUPPORTED },
        { ACL_RT_HAC_TYPE_AIV, ACL_RT_HOST_MEM_MAP_SUPPORTED },
        { ACL_RT_HAC_TYPE_PCIEDMA, ACL_RT_HOST_MEM_MAP_NOT_SUPPORTED },
        { ACL_RT_HAC_TYPE_RDMA, ACL_RT_HOST_MEM_MAP_NOT_SUPPORTED },
        { ACL_RT_HAC_TYPE_SDMA, ACL_RT_HOST_MEM_MAP_SUPPORTED },
        { ACL_RT_HAC_TYPE_DVPP, ACL_RT_HOST_MEM_MAP_NOT_SUPPORTED },
        { ACL_RT_HAC_TYPE_UDMA, ACL_RT_HOST_MEM_MAP_NOT_SUPPORTED },
        { ACL_RT_HAC_TYPE_CCU, ACL_RT_HOST_MEM_MAP_NOT_SUPPORTED },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(table); i++) {
        c = 99;
        EXPECT_OK(aclrtHostMemMapCapabilities(7, table[i].hac, &c));
        CHECKF(c == table[i].want, "hac %d: capability %d", (int)table[i].hac, (int)c);
    }
    EXPECT_ERR(aclrtHostMemMapCapabilities(0, ACL_RT_HAC_TYPE_SDMA, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtHostMemMapCapabilities(8, ACL_RT_HAC_TYPE_SDMA, &c),
               ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtHostMemMapCapabilities(0, (aclrtHacType)10, &c), ACL_ERROR_RT_PARAM_INVALID);
}

/* ---- fork and death ---- */

static uint8_t *g_fork_buf;

static void child_writes_registered(void)
{
    /* The child has the parent's contents, in pages of its own. */
    CHECK(checksum(g_fork_buf, 8192) == pattern_sum(8192, 41));
    memset(g_fork_buf, 0x77, 8192);
    CHECK(all_bytes(g_fork_buf, 8192, 0x77));
}

static void child_registers_and_dies(void)
{
    if (!EXPECT_OK(aclInit(NULL)) || !EXPECT_OK(aclrtSetDevice(1)))
        _exit(90);
    uint8_t *p = page_alloc(16384);
    void *dev = NULL, *m = NULL, *d = NULL;
    fill_pattern(p, 16384, 42);
    EXPECT_OK(aclrtHostRegister(p, 16384, ACL_HOST_REGISTER_MAPPED, &dev));
    EXPECT_OK(aclrtMemAllocManaged(&m, 4 * MiB, ACL_RT_MEM_ATTACH_GLOBAL));
    EXPECT_OK(aclrtMalloc(&d, 16384, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMemcpyAsync(d, 16384, p, 16384, ACL_MEMCPY_HOST_TO_DEVICE, NULL));
    EXPECT_OK(aclrtMemcpyAsync(m, 16384, d, 16384, ACL_MEMCPY_DEVICE_TO_HOST, NULL));
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    CHECK(checksum(m, 16384) == pattern_sum(16384, 42));
    fflush(NULL);
    if (g_child_fails == 0)
        raise(SIGKILL);     /* no unregister, no free, no aclFinalize */
}

TEST(test_register_fork)
{
    g_fork_buf = page_alloc(8192);
    CU_ASSERT_FATAL(g_fork_buf != NULL);
    fill_pattern(g_fork_buf, 8192, 41);
    void *dev = NULL;
    EXPECT_OK(aclrtHostRegister(g_fork_buf, 8192, ACL_HOST_REGISTER_MAPPED, &dev));
    run_child(child_writes_registered, 0, "writes registered memory");
    CHECKF(checksum(g_fork_buf, 8192) == pattern_sum(8192, 41),
           "a child's write reached the parent's registered memory");
    check_async_h2d(g_fork_buf, 8192, 43, "registered memory after a fork");

    /* A child that dies with a registration, managed memory and device memory. */
    pid_t pid = run_child(child_registers_and_dies, 128 + SIGKILL, "registers and dies");
    char *line = emu_gone_line(&g_emu, pid);
    CHECKF(line != NULL, "the emulator did not log the dead child %d", (int)pid);
    /* Pinned buffers: the registration, its device address, the managed memory. */
    if (line)
        CHECKF(strstr(line, "1 allocations") && strstr(line, "3 pinned host buffers"),
               "reclaim: %s", line);
    g_free(line);
    CHECK(emu_alive());
    EXPECT_OK(aclrtHostUnregister(g_fork_buf));
    CHECK(checksum(g_fork_buf, 8192) == pattern_sum(8192, 43));
    free(g_fork_buf);
}

static void child_finalizes_with_registrations(void)
{
    if (!EXPECT_OK(aclInit(NULL)) || !EXPECT_OK(aclrtSetDevice(2)))
        _exit(90);
    uint8_t *p = page_alloc(8192), *h = NULL;
    void *dev = NULL, *m = NULL;
    fill_pattern(p, 8192, 51);
    EXPECT_OK(aclrtHostRegister(p, 8192, ACL_HOST_REGISTER_MAPPED, &dev));
    EXPECT_OK(aclrtMallocHost((void **)&h, 8192));
    EXPECT_OK(aclrtHostRegister(h, 8192, ACL_HOST_REGISTER_MAPPED, &dev));
    EXPECT_OK(aclrtMemAllocManaged(&m, 2 * MiB, ACL_RT_MEM_ATTACH_GLOBAL));
    EXPECT_OK(aclFinalize());
    /* The application's pages are its own again, contents and all. */
    CHECK(checksum(p, 8192) == pattern_sum(8192, 51));
    memset(p, 1, 8192);
    free(p);
    /* A new session starts clean and reuses the UVM range. */
    if (!EXPECT_OK(aclInit(NULL)) || !EXPECT_OK(aclrtSetDevice(2)))
        _exit(91);
    void *m2 = NULL;
    EXPECT_OK(aclrtMemAllocManaged(&m2, 2 * MiB, ACL_RT_MEM_ATTACH_GLOBAL));
    CHECK(m2 == m);
    memset(m2, 3, 2 * MiB);
    EXPECT_OK(aclrtFree(m2));
    EXPECT_OK(aclFinalize());
}

TEST(test_finalize_returns_everything)
{
    pid_t pid = run_child(child_finalizes_with_registrations, 0, "finalizes");
    /* The first session's end.  aclFinalize gave back the pageable
     * registration, the device address of the pinned one and the managed
     * memory; it leaves the aclrtMallocHost buffer itself to the session's end
     * (memory.c), which is the one buffer reclaimed. */
    char *line = emu_gone_line(&g_emu, pid);
    CHECKF(line && strstr(line, " 1 pinned host buffers"), "reclaim: %s", line ? line : "-");
    g_free(line);
}

/* ---- managed memory ---- */

TEST(test_managed_alloc)
{
    enum { N = 3 * MiB + 5 };
    uint8_t *m = NULL, *m2 = NULL;
    if (!EXPECT_OK(aclrtMemAllocManaged((void **)&m, N, ACL_RT_MEM_ATTACH_GLOBAL)))
        return;
    uint64_t a = (uint64_t)(uintptr_t)m;
    CHECK(a % (2 * MiB) == 0);
    if (!UNDER_ASAN)
        CHECKF(a >= UVM_LO && a + 4 * MiB <= UVM_HI, "managed memory at %p", (void *)m);
    /* Rounded up to 2 MiB: the whole 4 MiB is ours, host-accessible. */
    fill_pattern(m, 4 * MiB, 61);
    aclrtPtrAttributes at = attrs_of(m + 4 * MiB - 1);
    CHECK(at.location.type == ACL_MEM_LOCATION_TYPE_MANAGED);

    /* Device-accessible: the stream engine copies to and from it. */
    void *d = NULL;
    if (EXPECT_OK(aclrtMalloc(&d, 4 * MiB, ACL_MEM_MALLOC_HUGE_FIRST))) {
        EXPECT_OK(aclrtMemcpyAsync(d, 4 * MiB, m, 4 * MiB, ACL_MEMCPY_HOST_TO_DEVICE, g_stream));
        EXPECT_OK(aclrtSynchronizeStream(g_stream));
        CHECK(dev_sum(d, 4 * MiB) == pattern_sum(4 * MiB, 61));
        EXPECT_OK(aclrtFree(d));
    }
    check_async_d2h(m, N, 62, "managed memory");
    check_async_h2d(m + MiB, MiB, 63, "managed memory at an offset");
    EXPECT_OK(aclrtMemsetAsync(m, N, 0x3c, N, g_stream));
    EXPECT_OK(aclrtSynchronizeStream(g_stream));
    CHECK(all_bytes(m, N, 0x3c));

    /* Allocations do not overlap; freed ranges are reused. */
    EXPECT_OK(aclrtMemAllocManaged((void **)&m2, 1, ACL_RT_MEM_ATTACH_GLOBAL));
    CHECK(m2 >= m + 4 * MiB || m2 + 2 * MiB <= m);
    EXPECT_ERR(aclrtFreeHost(m), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtFree(m + 4096), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtFree(m));
    EXPECT_ERR(aclrtFree(m), ACL_ERROR_RT_PARAM_INVALID);
    at = attrs_of(m);
    CHECK(at.location.type == ACL_MEM_LOCATION_TYPE_UNREGISTERED);
    uint8_t *m3 = NULL;
    EXPECT_OK(aclrtMemAllocManaged((void **)&m3, 4 * MiB, ACL_RT_MEM_ATTACH_GLOBAL));
    CHECK(m3 == m);
    EXPECT_OK(aclrtFree(m3));
    EXPECT_OK(aclrtFree(m2));

    /* Bad arguments. */
    EXPECT_ERR(aclrtMemAllocManaged(NULL, MiB, ACL_RT_MEM_ATTACH_GLOBAL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemAllocManaged((void **)&m, 0, ACL_RT_MEM_ATTACH_GLOBAL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemAllocManaged((void **)&m, MiB, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemAllocManaged((void **)&m, MiB, 2), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemAllocManaged((void **)&m, 3 * 1024 * GiB + 1, ACL_RT_MEM_ATTACH_GLOBAL),
               ACL_ERROR_RT_PARAM_INVALID);
    /* Within the 3 TiB, but more than the emulator backs with one buffer. */
    EXPECT_ERR(aclrtMemAllocManaged((void **)&m, 2 * 1024 * GiB, ACL_RT_MEM_ATTACH_GLOBAL),
               ACL_ERROR_RT_MEMORY_ALLOCATION);
}

TEST(test_managed_big_and_many)
{
    /* 1 TiB of address space and a dozen more; only touched pages cost memory. */
    void *big = NULL, *m[12];
    EXPECT_OK(aclrtMemAllocManaged(&big, 1024 * GiB, ACL_RT_MEM_ATTACH_GLOBAL));
    for (int i = 0; i < 12; i++)
        EXPECT_OK(aclrtMemAllocManaged(&m[i], 2 * MiB, ACL_RT_MEM_ATTACH_GLOBAL));
    if (big) {
        memset((uint8_t *)big + 1024 * GiB - 4096, 7, 4096);
        CHECK(all_bytes((uint8_t *)big + 1024 * GiB - 4096, 4096, 7));
        EXPECT_OK(aclrtFree(big));
    }
    for (int i = 0; i < 12; i++)
        EXPECT_OK(aclrtFree(m[i]));
}

static int32_t get_i32(aclrtMemManagedRangeAttribute attr, const void *p, size_t n)
{
    int32_t v = 12345;
    EXPECT_OK(aclrtMemManagedGetAttr(attr, p, n, &v, sizeof(v)));
    return v;
}

static aclrtMemManagedLocationType get_type(aclrtMemManagedRangeAttribute attr, const void *p,
                                            size_t n)
{
    aclrtMemManagedLocationType t = (aclrtMemManagedLocationType)99;
    EXPECT_OK(aclrtMemManagedGetAttr(attr, p, n, &t, sizeof(t)));
    return t;
}

#define LOC(t, i) ((aclrtMemManagedLocation){ .type = (t), .id = (i) })

TEST(test_managed_advise)
{
    uint8_t *m = NULL;
    const size_t N = 8 * MiB, H = 4 * MiB;
    if (!EXPECT_OK(aclrtMemAllocManaged((void **)&m, N, ACL_RT_MEM_ATTACH_GLOBAL)))
        return;
    aclrtMemManagedLocation host = LOC(ACL_MEM_LOCATIONTYPE_HOST, 0);
    aclrtMemManagedLocation dev0 = LOC(ACL_MEM_LOCATIONTYPE_DEVICE, 0);
    aclrtMemManagedLocation dev3 = LOC(ACL_MEM_LOCATIONTYPE_DEVICE, 3);
    aclrtMemManagedLocation none = LOC(ACL_MEM_LOCATIONTYPE_INVALID, 0);

    /* Nothing set yet. */
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_READ_MOSTLY, m, N) == 0);
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION, m, N) == -2);
    CHECK(get_type(ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_TYPE, m, N) ==
          ACL_MEM_LOCATIONTYPE_INVALID);
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_ID, m, N) == -2);
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION, m, N) == -2);
    CHECK(resident_pages(m, N) == 0);

    /* read mostly on the first half; the location is ignored. */
    EXPECT_OK(aclrtMemManagedAdvise(m, H, ACL_MEM_ADVISE_SET_READ_MOSTLY, LOC(77, 77)));
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_READ_MOSTLY, m, H) == 1);
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_READ_MOSTLY, m + 100, 5) == 1);
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_READ_MOSTLY, m, N) == 0);
    EXPECT_OK(aclrtMemManagedAdvise(m, H, ACL_MEM_ADVISE_UNSET_READ_MOSTLY, none));
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_READ_MOSTLY, m, H) == 0);

    /* Preferred location: device 3 for the first half, the host for the second. */
    EXPECT_OK(aclrtMemManagedAdvise(m, H, ACL_MEM_ADVISE_SET_PREFERRED_LOCATION, dev3));
    EXPECT_OK(aclrtMemManagedAdvise(m + H, H, ACL_MEM_ADVISE_SET_PREFERRED_LOCATION, host));
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION, m, H) == 3);
    CHECK(get_type(ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_TYPE, m, H) ==
          ACL_MEM_LOCATIONTYPE_DEVICE);
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_ID, m, H) == 3);
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION, m + H, H) == -1);
    CHECK(get_type(ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_TYPE, m + H, H) ==
          ACL_MEM_LOCATIONTYPE_HOST);
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_ID, m + H, H) == -2);
    /* Mixed over the whole range. */
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION, m, N) == -2);
    CHECK(get_type(ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_TYPE, m, N) ==
          ACL_MEM_LOCATIONTYPE_INVALID);
    /* Placing memory maps it: its pages are resident now. */
    CHECK(resident_pages(m, N) == N / 4096);
    EXPECT_OK(aclrtMemManagedAdvise(m, N, ACL_MEM_ADVISE_UNSET_PREFERRED_LOCATION, LOC(99, -5)));
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION, m, N) == -2);

    /* NUMA node 0 (every host has it), and the current node. */
    EXPECT_OK(aclrtMemManagedAdvise(m, H, ACL_MEM_ADVISE_SET_PREFERRED_LOCATION,
                                    LOC(ACL_MEM_LOCATIONTYPE_HOST_NUMA, 0)));
    CHECK(get_type(ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_TYPE, m, H) ==
          ACL_MEM_LOCATIONTYPE_HOST_NUMA);
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_ID, m, H) == 0);
    EXPECT_OK(aclrtMemManagedAdvise(m + H, H, ACL_MEM_ADVISE_SET_PREFERRED_LOCATION,
                                    LOC(ACL_MEM_LOCATIONTYPE_HOST_NUMA_CURRENT, 1234)));
    CHECK(get_type(ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_TYPE, m + H, H) ==
          ACL_MEM_LOCATIONTYPE_HOST_NUMA);

    /* Accessed by: the host and device 0 everywhere, device 3 on the first half. */
    EXPECT_OK(aclrtMemManagedAdvise(m, N, ACL_MEM_ADVISE_SET_ACCESSED_BY, host));
    EXPECT_OK(aclrtMemManagedAdvise(m, N, ACL_MEM_ADVISE_SET_ACCESSED_BY, dev0));
    EXPECT_OK(aclrtMemManagedAdvise(m, H, ACL_MEM_ADVISE_SET_ACCESSED_BY, dev3));
    int32_t ids[4];
    EXPECT_OK(aclrtMemManagedGetAttr(ACL_MEM_RANGE_ATTRIBUTE_ACCESSED_BY, m, H, ids, sizeof(ids)));
    CHECK(ids[0] == -1 && ids[1] == 0 && ids[2] == 3 && ids[3] == -2);
    EXPECT_OK(aclrtMemManagedGetAttr(ACL_MEM_RANGE_ATTRIBUTE_ACCESSED_BY, m, N, ids, sizeof(ids)));
    CHECK(ids[0] == -1 && ids[1] == 0 && ids[2] == -2 && ids[3] == -2);
    EXPECT_OK(aclrtMemManagedGetAttr(ACL_MEM_RANGE_ATTRIBUTE_ACCESSED_BY, m, N, ids, 4));
    CHECK(ids[0] == -1 && ids[1] == 0);
    EXPECT_OK(aclrtMemManagedAdvise(m, N, ACL_MEM_ADVISE_UNSET_ACCESSED_BY, host));
    EXPECT_OK(aclrtMemManagedGetAttr(ACL_MEM_RANGE_ATTRIBUTE_ACCESSED_BY, m, H, ids, sizeof(ids)));
    CHECK(ids[0] == 0 && ids[1] == 3 && ids[2] == -2);

    /* Several attributes at once. */
    aclrtMemManagedRangeAttribute which[] = { ACL_MEM_RANGE_ATTRIBUTE_READ_MOSTLY,
                                              ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_TYPE,
                                              ACL_MEM_RANGE_ATTRIBUTE_ACCESSED_BY };
    int32_t rm = 7;
    aclrtMemManagedLocationType t = (aclrtMemManagedLocationType)99;
    int32_t by[2] = { 7, 7 };
    void *data[] = { &rm, &t, by };
    size_t sizes[] = { 4, sizeof(t), sizeof(by) };
    EXPECT_OK(aclrtMemManagedGetAttrs(which, 3, m, H, data, sizes));
    CHECK(rm == 0 && t == ACL_MEM_LOCATIONTYPE_HOST_NUMA && by[0] == 0 && by[1] == 3);
    /* All or nothing: a bad third entry leaves the first untouched. */
    rm = 7;
    sizes[2] = 6;
    EXPECT_ERR(aclrtMemManagedGetAttrs(which, 3, m, H, data, sizes), ACL_ERROR_RT_PARAM_INVALID);
    CHECK(rm == 7);
    EXPECT_OK(aclrtFree(m));
}

TEST(test_managed_advise_bad)
{
    uint8_t *m = NULL, *h = NULL;
    const size_t N = 4 * MiB;
    int32_t v = 0;
    if (!EXPECT_OK(aclrtMemAllocManaged((void **)&m, N, ACL_RT_MEM_ATTACH_GLOBAL)))
        return;
    aclrtMemManagedLocation dev0 = LOC(ACL_MEM_LOCATIONTYPE_DEVICE, 0);
    EXPECT_ERR(aclrtMemManagedAdvise(NULL, N, ACL_MEM_ADVISE_SET_ACCESSED_BY, dev0),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedAdvise(m, 0, ACL_MEM_ADVISE_SET_ACCESSED_BY, dev0),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedAdvise(m, MiB, ACL_MEM_ADVISE_SET_ACCESSED_BY, dev0),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedAdvise(m + 4096, 2 * MiB, ACL_MEM_ADVISE_SET_ACCESSED_BY, dev0),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedAdvise(m, N + 2 * MiB, ACL_MEM_ADVISE_SET_ACCESSED_BY, dev0),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedAdvise(m, N, (aclrtMemManagedAdviseType)6, dev0),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedAdvise(m, N, ACL_MEM_ADVISE_SET_ACCESSED_BY,
                                     LOC(ACL_MEM_LOCATIONTYPE_DEVICE, 8)),
               ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtMemManagedAdvise(m, N, ACL_MEM_ADVISE_SET_PREFERRED_LOCATION,
                                     LOC(ACL_MEM_LOCATIONTYPE_DEVICE, -1)),
               ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtMemManagedAdvise(m, N, ACL_MEM_ADVISE_SET_PREFERRED_LOCATION,
                                     LOC(ACL_MEM_LOCATIONTYPE_INVALID, 0)),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedAdvise(m, N, ACL_MEM_ADVISE_SET_ACCESSED_BY,
                                     LOC((aclrtMemManagedLocationType)9, 0)),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedAdvise(m, N, ACL_MEM_ADVISE_SET_ACCESSED_BY,
                                     LOC(ACL_MEM_LOCATIONTYPE_HOST_NUMA, 64)),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedAdvise(m, N, ACL_MEM_ADVISE_UNSET_READ_MOSTLY,
                                     LOC(ACL_MEM_LOCATIONTYPE_DEVICE, 99)),
               ACL_ERROR_RT_INVALID_DEVICEID);
    /* Not managed memory: device, pinned, pageable; outside the UVM range. */
    void *d = NULL;
    if (EXPECT_OK(aclrtMalloc(&d, 2 * MiB, ACL_MEM_MALLOC_HUGE_ONLY))) {
        EXPECT_ERR(aclrtMemManagedAdvise(d, 2 * MiB, ACL_MEM_ADVISE_SET_READ_MOSTLY, dev0),
                   ACL_ERROR_RT_PARAM_INVALID);
        EXPECT_ERR(aclrtMemManagedGetAttr(ACL_MEM_RANGE_ATTRIBUTE_READ_MOSTLY, d, 4, &v, 4),
                   ACL_ERROR_RT_PARAM_INVALID);
        EXPECT_OK(aclrtFree(d));
    }
    if (EXPECT_OK(aclrtMallocHost((void **)&h, 4 * MiB))) {
        EXPECT_ERR(aclrtMemManagedAdvise(h, 2 * MiB, ACL_MEM_ADVISE_SET_READ_MOSTLY, dev0),
                   ACL_ERROR_RT_PARAM_INVALID);
        EXPECT_OK(aclrtFreeHost(h));
    }
    if (!UNDER_ASAN) {
        /* Inside the UVM range, but not allocated. */
        EXPECT_ERR(aclrtMemManagedAdvise((void *)(UVM_HI - 2 * MiB), 2 * MiB,
                                         ACL_MEM_ADVISE_SET_READ_MOSTLY, dev0),
                   ACL_ERROR_RT_PARAM_INVALID);
    }

    /* GetAttr: data sizes, attributes, NULLs, ranges. */
    EXPECT_ERR(aclrtMemManagedGetAttr(ACL_MEM_RANGE_ATTRIBUTE_READ_MOSTLY, m, N, &v, 8),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedGetAttr(ACL_MEM_RANGE_ATTRIBUTE_ACCESSED_BY, m, N, &v, 0),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedGetAttr(ACL_MEM_RANGE_ATTRIBUTE_ACCESSED_BY, m, N, &v, 6),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedGetAttr(ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_TYPE, m, N, &v,
                                      2),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedGetAttr((aclrtMemManagedRangeAttribute)0, m, N, &v, 4),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedGetAttr((aclrtMemManagedRangeAttribute)9, m, N, &v, 4),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedGetAttr(ACL_MEM_RANGE_ATTRIBUTE_READ_MOSTLY, m, N, NULL, 4),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedGetAttr(ACL_MEM_RANGE_ATTRIBUTE_READ_MOSTLY, NULL, N, &v, 4),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedGetAttr(ACL_MEM_RANGE_ATTRIBUTE_READ_MOSTLY, m, 0, &v, 4),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedGetAttr(ACL_MEM_RANGE_ATTRIBUTE_READ_MOSTLY, m + 1, N, &v, 4),
               ACL_ERROR_RT_PARAM_INVALID);
    aclrtMemManagedRangeAttribute one = ACL_MEM_RANGE_ATTRIBUTE_READ_MOSTLY;
    void *data = &v;
    size_t size = 4;
    EXPECT_ERR(aclrtMemManagedGetAttrs(NULL, 1, m, N, &data, &size), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedGetAttrs(&one, 1, m, N, NULL, &size), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedGetAttrs(&one, 1, m, N, &data, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedGetAttrs(&one, 0, m, N, &data, &size), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedGetAttrs(&one, 1, NULL, N, &data, &size),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtMemManagedGetAttrs(&one, 1, m, N, &data, &size));
    EXPECT_OK(aclrtFree(m));
    /* Freed: no longer managed memory. */
    EXPECT_ERR(aclrtMemManagedAdvise(m, N, ACL_MEM_ADVISE_SET_READ_MOSTLY, dev0),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedGetAttr(ACL_MEM_RANGE_ATTRIBUTE_READ_MOSTLY, m, N, &v, 4),
               ACL_ERROR_RT_PARAM_INVALID);
}

TEST(test_managed_prefetch)
{
    uint8_t *m = NULL;
    const size_t P = 2 * MiB;
    if (!EXPECT_OK(aclrtMemAllocManaged((void **)&m, 4 * P, ACL_RT_MEM_ATTACH_GLOBAL)))
        return;
    aclrtMemManagedLocation host = LOC(ACL_MEM_LOCATIONTYPE_HOST, 0);
    aclrtMemManagedLocation dev0 = LOC(ACL_MEM_LOCATIONTYPE_DEVICE, 0);
    aclrtMemManagedLocation dev5 = LOC(ACL_MEM_LOCATIONTYPE_DEVICE, 5);
    CHECK(resident_pages(m, 4 * P) == 0);

    /* One range: recorded at once, resident, and a task in stream order. */
    EXPECT_OK(aclrtMemManagedPrefetchAsync(m + P, P, dev0, 0, g_stream));
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION, m + P, P) == 0);
    CHECK(get_type(ACL_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION_TYPE, m + P, P) ==
          ACL_MEM_LOCATIONTYPE_DEVICE);
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION_ID, m + P, P) == 0);
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION, m, 2 * P) == -2);
    CHECK(resident_pages(m + P, P) == P / 4096);
    CHECK(resident_pages(m, P) == 0);
    EXPECT_OK(aclrtSynchronizeStream(g_stream));
    /* The default stream, and the host. */
    EXPECT_OK(aclrtMemManagedPrefetchAsync(m + P, P, host, 0, NULL));
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION, m + P, P) == -1);
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION_ID, m + P, P) == -2);
    EXPECT_OK(aclrtSynchronizeStream(NULL));

    /* A batch: ranges 0 and 1 to device 5, range 2 to the host. */
    const void *ptrs[] = { m, m + 2 * P, m + 3 * P };
    size_t sizes[] = { P, P, P };
    aclrtMemManagedLocation locs[] = { dev5, host };
    size_t idx[] = { 0, 2 };
    EXPECT_OK(aclrtMemManagedPrefetchBatchAsync(ptrs, sizes, 3, locs, idx, 2, 0, g_stream));
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION, m, P) == 5);
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION, m + 2 * P, P) == 5);
    CHECK(get_type(ACL_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION_TYPE, m + 3 * P, P) ==
          ACL_MEM_LOCATIONTYPE_HOST);
    CHECK(resident_pages(m, 4 * P) == 4 * P / 4096);
    EXPECT_OK(aclrtSynchronizeStream(g_stream));
    /* Prefetching moves no data. */
    fill_pattern(m, 4 * P, 71);
    EXPECT_OK(aclrtMemManagedPrefetchAsync(m, 4 * P, dev0, 0, g_stream));
    EXPECT_OK(aclrtSynchronizeStream(g_stream));
    CHECK(checksum(m, 4 * P) == pattern_sum(4 * P, 71));

    /* Bad arguments. */
    EXPECT_ERR(aclrtMemManagedPrefetchAsync(m, P, dev0, 1, g_stream), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedPrefetchAsync(m, P + 1, dev0, 0, g_stream),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedPrefetchAsync(NULL, P, dev0, 0, g_stream),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedPrefetchAsync(m, 0, dev0, 0, g_stream), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedPrefetchAsync(m, 5 * P, dev0, 0, g_stream),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedPrefetchAsync(m, P, LOC(ACL_MEM_LOCATIONTYPE_INVALID, 0), 0,
                                            g_stream),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedPrefetchAsync(m, P, LOC(ACL_MEM_LOCATIONTYPE_DEVICE, 8), 0,
                                            g_stream),
               ACL_ERROR_RT_INVALID_DEVICEID);
    EXPECT_ERR(aclrtMemManagedPrefetchAsync(m, P, dev0, 0, (aclrtStream)&host),
               ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_ERR(aclrtMemManagedPrefetchBatchAsync(NULL, sizes, 3, locs, idx, 2, 0, g_stream),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedPrefetchBatchAsync(ptrs, NULL, 3, locs, idx, 2, 0, g_stream),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedPrefetchBatchAsync(ptrs, sizes, 3, NULL, idx, 2, 0, g_stream),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedPrefetchBatchAsync(ptrs, sizes, 3, locs, NULL, 2, 0, g_stream),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedPrefetchBatchAsync(ptrs, sizes, 0, locs, idx, 2, 0, g_stream),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedPrefetchBatchAsync(ptrs, sizes, 3, locs, idx, 0, 0, g_stream),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedPrefetchBatchAsync(ptrs, sizes, 1, locs, idx, 2, 0, g_stream),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedPrefetchBatchAsync(ptrs, sizes, 3, locs, idx, 2, 1, g_stream),
               ACL_ERROR_RT_PARAM_INVALID);
    size_t bad_first[] = { 1, 2 }, not_up[] = { 0, 0 }, too_far[] = { 0, 3 };
    EXPECT_ERR(aclrtMemManagedPrefetchBatchAsync(ptrs, sizes, 3, locs, bad_first, 2, 0, g_stream),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedPrefetchBatchAsync(ptrs, sizes, 3, locs, not_up, 2, 0, g_stream),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemManagedPrefetchBatchAsync(ptrs, sizes, 3, locs, too_far, 2, 0, g_stream),
               ACL_ERROR_RT_PARAM_INVALID);
    aclrtMemManagedLocation bad_locs[] = { dev0, LOC(ACL_MEM_LOCATIONTYPE_DEVICE, 9) };
    EXPECT_ERR(aclrtMemManagedPrefetchBatchAsync(ptrs, sizes, 3, bad_locs, idx, 2, 0, g_stream),
               ACL_ERROR_RT_INVALID_DEVICEID);
    /* One bad range refuses the whole batch: nothing is recorded. */
    size_t bad_sizes[] = { P, P, 3 * P };
    locs[0] = dev0;
    EXPECT_ERR(aclrtMemManagedPrefetchBatchAsync(ptrs, bad_sizes, 3, locs, idx, 2, 0, g_stream),
               ACL_ERROR_RT_PARAM_INVALID);
    CHECK(get_i32(ACL_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION, m + 2 * P, P) == 0);
    EXPECT_OK(aclrtFree(m));
    EXPECT_ERR(aclrtMemManagedPrefetchAsync(m, P, dev0, 0, g_stream), ACL_ERROR_RT_PARAM_INVALID);
}

TEST(test_p2p_map_unsupported)
{
    void *d = NULL;
    if (EXPECT_OK(aclrtMalloc(&d, 2 * MiB, ACL_MEM_MALLOC_HUGE_ONLY))) {
        EXPECT_ERR(aclrtMemP2PMap(d, 2 * MiB, 1, 0), ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
        EXPECT_OK(aclrtFree(d));
    }
}

/* ---- before aclInit (child) ---- */

static void child_preinit(void)
{
    void *p = NULL;
    int32_t v;
    aclrtHostMemMapCapability c;
    aclrtMemManagedLocation l = LOC(ACL_MEM_LOCATIONTYPE_HOST, 0);
    EXPECT_ERR(aclrtHostRegister(&v, 4, ACL_HOST_REGISTER_MAPPED, &p), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtHostRegisterV2(&v, 4, ACL_HOST_REG_PINNED), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtHostUnregister(&v), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtHostGetDevicePointer(&v, &p, 0), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtHostMemMapCapabilities(0, ACL_RT_HAC_TYPE_SDMA, &c), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMemAllocManaged(&p, MiB, ACL_RT_MEM_ATTACH_GLOBAL), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMemManagedAdvise(&v, MiB, ACL_MEM_ADVISE_SET_READ_MOSTLY, l),
               ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMemManagedGetAttr(ACL_MEM_RANGE_ATTRIBUTE_READ_MOSTLY, &v, 4, &v, 4),
               ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMemManagedPrefetchAsync(&v, MiB, l, 0, NULL), ACL_ERROR_UNINITIALIZE);
}

TEST(test_preinit)
{
    run_child(child_preinit, 0, "before aclInit");
}

/* ---- main ---- */

int main(void)
{
    static const TestCase before[] = { T(test_preinit) };
    static const TestCase tests[] = {
        T(test_register_pageable), T(test_register_mmap_large),
        T(test_register_v2), T(test_register_pinned), T(test_register_bad_args),
        T(test_host_mem_map_capabilities), T(test_register_fork),
        T(test_finalize_returns_everything), T(test_managed_alloc), T(test_managed_big_and_many),
        T(test_managed_advise), T(test_managed_advise_bad), T(test_managed_prefetch),
        T(test_p2p_map_unsupported),
    };
    /* The preinit child must fork before this process calls aclInit. */
    static const TestProgram prog = {
        .name = "test_hostmem", .emus = { EMU(&g_emu, "a2") },
        .suites = { SUITE("before aclInit", NULL, NULL, before),
                    SUITE("host memory", NULL, NULL, tests) },
        .pre_init = 1, .devices = DEV(0), .reset = DEV(0), .stream = &g_stream,
    };
    return test_main(&prog);
}
