/*
 * test_mempool.c - integration tests of stream-ordered memory pools (chapter
 * 11-10, aclrtMemPool*) and of the custom allocator registry (chapter 11-08,
 * aclrtAllocator*) against a real npu-emu.
 *
 * Two emulators: one with profile a2 (8 devices), which this process uses, and
 * one with profile a3, which only a forked child talks to (pools are an A2
 * feature).  Another child runs before aclInit.  Data moved through pool memory
 * is checked by checksum; stream ordering is checked with a stream that is
 * still busy when it frees memory another stream then asks for, so a pool that
 * handed the block over early would corrupt the first stream's result.
 *
 * Devices: 0 is the main thread's; 1 gives a stream of another device; 3 is
 * reset under a pool (from a short-lived thread).
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

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define WINDOW_LO 0x100000000000ull
#define WINDOW_HI 0x180000000000ull

static TestEmu g_emu;           /* a2: this process */
static TestEmu g_emu3;          /* a3: the refusal child */

/* ---- helpers ---- */

static void run_in_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, fn, arg) == 0);
    pthread_join(t, NULL);
}

static void run_child(void (*fn)(void), const char *name)
{
    int st = run_checked_child(fn, NULL);
    CHECKF(st == 0, "child '%s' ended with status %d", name, st);
}

static aclrtMemPoolProps props(int32_t dev, size_t max)
{
    aclrtMemPoolProps pp;
    memset(&pp, 0, sizeof(pp));
    pp.allocType = ACL_MEM_ALLOCATION_TYPE_PINNED;
    pp.handleType = ACL_MEM_HANDLE_TYPE_NONE;
    pp.location.id = (uint32_t)dev;
    pp.location.type = ACL_MEM_LOCATION_TYPE_DEVICE;
    pp.maxSize = max;
    return pp;
}

static aclrtMemPool make_pool(int32_t dev, size_t max)
{
    aclrtMemPoolProps pp = props(dev, max);
    aclrtMemPool p = NULL;
    EXPECT_OK(aclrtMemPoolCreate(&p, &pp));
    return p;
}

static uint64_t get64(aclrtMemPool p, aclrtMemPoolAttr a)
{
    uint64_t v = 0xdeadbeef;
    EXPECT_OK(aclrtMemPoolGetAttr(p, a, &v));
    return v;
}

static uint32_t get32(aclrtMemPool p, aclrtMemPoolAttr a)
{
    uint32_t v = 0xdeadbeef;
    EXPECT_OK(aclrtMemPoolGetAttr(p, a, &v));
    return v;
}

static void set64(aclrtMemPool p, aclrtMemPoolAttr a, uint64_t v)
{
    EXPECT_OK(aclrtMemPoolSetAttr(p, a, &v));
}

static void set32(aclrtMemPool p, aclrtMemPoolAttr a, uint32_t v)
{
    EXPECT_OK(aclrtMemPoolSetAttr(p, a, &v));
}

static size_t hbm_free(void)
{
    size_t f = 0, t = 0;
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM, &f, &t));
    return f;
}

static bool in_window(const void *p)
{
    uint64_t a = (uint64_t)(uintptr_t)p;
    return a >= WINDOW_LO && a < WINDOW_HI;
}

static void *pinned(size_t n)
{
    void *h = NULL;
    EXPECT_OK(aclrtMallocHost(&h, n));
    return h;
}

/* Keeps a stream busy for a while (tens of ms) with copies that do not touch
 * any pool memory: 16 x 64 MiB device-to-device. */
typedef struct Busy {
    void *a, *b;
} Busy;

static Busy busy_new(void)
{
    Busy b = { NULL, NULL };
    EXPECT_OK(aclrtMalloc(&b.a, 64 * MiB, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMalloc(&b.b, 64 * MiB, ACL_MEM_MALLOC_HUGE_FIRST));
    return b;
}

static void busy_queue(Busy *b, aclrtStream s)
{
    for (int i = 0; i < 16; i++)
        EXPECT_OK(aclrtMemcpyAsync(i & 1 ? b->a : b->b, 64 * MiB, i & 1 ? b->b : b->a, 64 * MiB,
                                   ACL_MEMCPY_DEVICE_TO_DEVICE, s));
}

static void busy_free(Busy *b)
{
    EXPECT_OK(aclrtFree(b->a));
    EXPECT_OK(aclrtFree(b->b));
}

/* ---- before aclInit, and on A3 (children) ---- */

static void child_preinit(void)
{
    aclrtMemPoolProps pp = props(0, 0);
    aclrtMemPool p = NULL;
    void *ptr = NULL;
    uint64_t v = 0;
    EXPECT_ERR(aclrtMemPoolCreate(&p, &pp), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMemPoolDestroy(&v), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMemPoolSetAttr(&v, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD, &v),
               ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMemPoolGetAttr(&v, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD, &v),
               ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMemPoolMallocAsync(&ptr, 64, &v, NULL), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMemPoolFreeAsync(&v, NULL), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMemPoolTrimTo(&v, 0), ACL_ERROR_UNINITIALIZE);
    aclrtAllocatorDesc d = aclrtAllocatorCreateDesc();
    CHECK(d == NULL);
    EXPECT_ERR(aclrtPeekAtLastError(ACL_RT_THREAD_LEVEL), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtAllocatorDestroyDesc(NULL), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtAllocatorSetObjToDesc(NULL, &v), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtAllocatorRegister(&v, NULL), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtAllocatorUnregister(&v), ACL_ERROR_UNINITIALIZE);
    aclrtAllocatorDesc od;
    aclrtAllocator oa;
    aclrtAllocatorAllocFunc of;
    aclrtAllocatorFreeFunc ofr;
    aclrtAllocatorAllocAdviseFunc oad;
    aclrtAllocatorGetAddrFromBlockFunc oga;
    EXPECT_ERR(aclrtAllocatorGetByStream(&v, &od, &oa, &of, &ofr, &oad, &oga),
               ACL_ERROR_UNINITIALIZE);
}

static void test_preinit(void)
{
    run_child(child_preinit, "preinit");
}

static void *dummy_alloc(aclrtAllocator a, size_t n)
{
    (void)a;
    (void)n;
    return NULL;
}

static void dummy_free(aclrtAllocator a, aclrtAllocatorBlock b)
{
    (void)a;
    (void)b;
}

static void *dummy_advise(aclrtAllocator a, size_t n, aclrtAllocatorAddr addr)
{
    (void)a;
    (void)n;
    return addr;
}

static void *dummy_addr(aclrtAllocatorBlock b)
{
    return b;
}

static aclrtAllocatorDesc full_desc(void *obj)
{
    aclrtAllocatorDesc d = aclrtAllocatorCreateDesc();
    CHECK(d != NULL);
    EXPECT_OK(aclrtAllocatorSetObjToDesc(d, obj));
    EXPECT_OK(aclrtAllocatorSetAllocFuncToDesc(d, dummy_alloc));
    EXPECT_OK(aclrtAllocatorSetFreeFuncToDesc(d, dummy_free));
    EXPECT_OK(aclrtAllocatorSetAllocAdviseFuncToDesc(d, dummy_advise));
    EXPECT_OK(aclrtAllocatorSetGetAddrFromBlockFuncToDesc(d, dummy_addr));
    return d;
}

static void child_a3(void)
{
    setenv("NPU_EMU_SOCKET", g_emu3.sock, 1);
    if (!EXPECT_OK(aclInit(NULL)))
        return;
    EXPECT_OK(aclrtSetDevice(0));
    CHECK(strcmp(aclrtGetSocName(), "Ascend910_9391") == 0);
    aclrtMemPoolProps pp = props(0, 0);
    aclrtMemPool p = NULL;
    void *ptr = NULL;
    uint64_t v = 0;
    EXPECT_ERR(aclrtMemPoolCreate(&p, &pp), ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    CHECK(p == NULL);
    EXPECT_ERR(aclrtMemPoolDestroy(&v), ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    EXPECT_ERR(aclrtMemPoolSetAttr(&v, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD, &v),
               ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    EXPECT_ERR(aclrtMemPoolGetAttr(&v, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD, &v),
               ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    EXPECT_ERR(aclrtMemPoolMallocAsync(&ptr, 64, &v, NULL), ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    CHECK(ptr == NULL);
    EXPECT_ERR(aclrtMemPoolFreeAsync(&v, NULL), ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    EXPECT_ERR(aclrtMemPoolTrimTo(&v, 0), ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    /* The allocator registry is documented for A3 too. */
    aclrtStream s = NULL;
    EXPECT_OK(aclrtCreateStream(&s));
    int obj;
    aclrtAllocatorDesc d = full_desc(&obj);
    EXPECT_OK(aclrtAllocatorRegister(s, d));
    aclrtAllocatorDesc od;
    aclrtAllocator oa;
    aclrtAllocatorAllocFunc of;
    aclrtAllocatorFreeFunc ofr;
    aclrtAllocatorAllocAdviseFunc oad;
    aclrtAllocatorGetAddrFromBlockFunc oga;
    EXPECT_OK(aclrtAllocatorGetByStream(s, &od, &oa, &of, &ofr, &oad, &oga));
    CHECK(od == d && oa == &obj && of == dummy_alloc);
    EXPECT_OK(aclrtAllocatorUnregister(s));
    EXPECT_OK(aclrtAllocatorDestroyDesc(d));
    EXPECT_OK(aclrtDestroyStream(s));
    EXPECT_OK(aclFinalize());
}

static void test_a3_unsupported(void)
{
    run_child(child_a3, "a3");
}

/* ---- pool creation and attributes ---- */

static void test_create_bad(void)
{
    aclrtMemPool p = NULL;
    aclrtMemPoolProps pp = props(0, 0);
    EXPECT_ERR(aclrtMemPoolCreate(NULL, &pp), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolCreate(&p, NULL), ACL_ERROR_RT_PARAM_INVALID);
    pp.allocType = (aclrtMemAllocationType)1;
    EXPECT_ERR(aclrtMemPoolCreate(&p, &pp), ACL_ERROR_RT_PARAM_INVALID);
    pp = props(0, 0);
    pp.handleType = (aclrtMemHandleType)1;
    EXPECT_ERR(aclrtMemPoolCreate(&p, &pp), ACL_ERROR_RT_PARAM_INVALID);
    pp = props(0, 0);
    pp.location.type = ACL_MEM_LOCATION_TYPE_HOST;
    EXPECT_ERR(aclrtMemPoolCreate(&p, &pp), ACL_ERROR_RT_PARAM_INVALID);
    pp = props(8, 0);
    EXPECT_ERR(aclrtMemPoolCreate(&p, &pp), ACL_ERROR_RT_INVALID_DEVICEID);
    pp = props(0, 0);
    pp.reserved[31] = 1;
    EXPECT_ERR(aclrtMemPoolCreate(&p, &pp), ACL_ERROR_RT_PARAM_INVALID);
    CHECK(p == NULL);
    /* POSIX handles are a valid choice; the pool works like any other. */
    pp = props(0, 0);
    pp.handleType = ACL_MEM_HANDLE_TYPE_POSIX;
    EXPECT_OK(aclrtMemPoolCreate(&p, &pp));
    CHECK(p != NULL);
    EXPECT_OK(aclrtMemPoolDestroy(p));
    /* A pool of another device than the current one needs no context switch. */
    aclrtMemPool p7 = make_pool(7, 0);
    EXPECT_OK(aclrtMemPoolDestroy(p7));
}

static void test_attrs(void)
{
    aclrtMemPool p = make_pool(0, 0);
    /* Defaults. */
    CHECK(get32(p, ACL_RT_MEM_POOL_REUSE_FOLLOW_EVENT_DEPENDENCIES) == 1);
    CHECK(get32(p, ACL_RT_MEM_POOL_REUSE_ALLOW_OPPORTUNISTIC) == 1);
    CHECK(get32(p, ACL_RT_MEM_POOL_REUSE_ALLOW_INTERNAL_DEPENDENCIES) == 1);
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD) == 0);
    for (int a = ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT; a <= ACL_RT_MEM_POOL_ATTR_USED_MEM_HIGH; a++)
        CHECKF(get64(p, (aclrtMemPoolAttr)a) == 0, "attribute %d of a new pool", a);
    /* Round trips; the last setting wins. */
    for (int a = ACL_RT_MEM_POOL_REUSE_FOLLOW_EVENT_DEPENDENCIES;
         a <= ACL_RT_MEM_POOL_REUSE_ALLOW_INTERNAL_DEPENDENCIES; a++) {
        set32(p, (aclrtMemPoolAttr)a, 0);
        CHECK(get32(p, (aclrtMemPoolAttr)a) == 0);
        set32(p, (aclrtMemPoolAttr)a, 1);
        set32(p, (aclrtMemPoolAttr)a, 0);
        CHECK(get32(p, (aclrtMemPoolAttr)a) == 0);
        uint32_t two = 2;
        EXPECT_ERR(aclrtMemPoolSetAttr(p, (aclrtMemPoolAttr)a, &two), ACL_ERROR_RT_PARAM_INVALID);
        CHECK(get32(p, (aclrtMemPoolAttr)a) == 0);
    }
    set64(p, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD, 5 * GiB + 3);
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD) == 5 * GiB + 3);
    uint64_t v = 0;
    EXPECT_ERR(aclrtMemPoolSetAttr(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT, &v),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolSetAttr(p, ACL_RT_MEM_POOL_ATTR_USED_MEM_CURRENT, &v),
               ACL_ERROR_RT_PARAM_INVALID);
    v = 1;
    EXPECT_ERR(aclrtMemPoolSetAttr(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_HIGH, &v),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolSetAttr(p, ACL_RT_MEM_POOL_ATTR_USED_MEM_HIGH, &v),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolSetAttr(p, (aclrtMemPoolAttr)0, &v), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolSetAttr(p, (aclrtMemPoolAttr)9, &v), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolGetAttr(p, (aclrtMemPoolAttr)9, &v), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolSetAttr(p, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolGetAttr(p, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolGetAttr(NULL, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD, &v),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolGetAttr(&v, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD, &v),
               ACL_ERROR_RT_PARAM_INVALID);

    /* Usage figures and their peaks; a peak reset starts from the current value. */
    aclrtStream s = NULL;
    EXPECT_OK(aclrtCreateStream(&s));
    set64(p, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD, UINT64_MAX);
    void *a = NULL, *b = NULL;
    EXPECT_OK(aclrtMemPoolMallocAsync(&a, 3 * MiB, p, s));
    EXPECT_OK(aclrtMemPoolMallocAsync(&b, 1000, p, s));
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_USED_MEM_CURRENT) == 3 * MiB + 1024);
    uint64_t reserved = get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT);
    CHECKF(reserved >= 3 * MiB + 1024 && reserved % (2 * MiB) == 0, "reserved %llu",
           (unsigned long long)reserved);
    EXPECT_OK(aclrtMemPoolFreeAsync(a, s));
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_USED_MEM_CURRENT) == 1024);
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_USED_MEM_HIGH) == 3 * MiB + 1024);
    v = 0;
    EXPECT_OK(aclrtMemPoolSetAttr(p, ACL_RT_MEM_POOL_ATTR_USED_MEM_HIGH, &v));
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_USED_MEM_HIGH) == 1024);
    EXPECT_OK(aclrtMemPoolFreeAsync(b, s));
    EXPECT_OK(aclrtSynchronizeStream(s));
    EXPECT_OK(aclrtMemPoolTrimTo(p, 0));
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT) == 0);
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_HIGH) == reserved);
    EXPECT_OK(aclrtMemPoolSetAttr(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_HIGH, &v));
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_HIGH) == 0);
    EXPECT_OK(aclrtMemPoolDestroy(p));
    EXPECT_OK(aclrtDestroyStream(s));
}

/* ---- data through pool memory ---- */

static void test_data(void)
{
    aclrtMemPool p = make_pool(0, 0);
    aclrtStream s = NULL;
    EXPECT_OK(aclrtCreateStream(&s));
    const size_t big = 3 * MiB + 17, small = 100;
    void *b1 = NULL, *b2 = NULL, *c = NULL, *tiny = NULL;
    EXPECT_OK(aclrtMemPoolMallocAsync(&b1, big, p, s));
    EXPECT_OK(aclrtMemPoolMallocAsync(&c, small, p, s));
    EXPECT_OK(aclrtMemPoolMallocAsync(&b2, big, p, s));
    EXPECT_OK(aclrtMemPoolMallocAsync(&tiny, 1, p, s));
    void *all[] = { b1, b2, c, tiny };
    size_t sizes[] = { big, big, small, 1 };
    for (int i = 0; i < 4; i++) {
        CHECKF(in_window(all[i]) && (uintptr_t)all[i] % 512 == 0, "block %d at %p", i, all[i]);
        for (int j = 0; j < i; j++) {
            uintptr_t x = (uintptr_t)all[i], y = (uintptr_t)all[j];
            CHECKF(x + sizes[i] <= y || y + sizes[j] <= x, "blocks %d and %d overlap", i, j);
        }
    }
    aclrtPtrAttributes at;
    EXPECT_OK(aclrtPointerGetAttributes(b2, &at));
    CHECK(at.location.type == ACL_MEM_LOCATION_TYPE_DEVICE && at.location.id == 0);
    /* Pool memory is not aclrtMalloc memory: aclrtFree refuses it, and the
     * pool's chunk survives the attempt. */
    EXPECT_ERR(aclrtFree(b1), ACL_ERROR_RT_PARAM_INVALID);

    uint8_t *src = pinned(big), *dst = pinned(big), *dsmall = pinned(small);
    fill_pattern(src, big, 42);
    memset(dst, 0, big);
    memset(dsmall, 0, small);
    EXPECT_OK(aclrtMemcpyAsync(b1, big, src, big, ACL_MEMCPY_HOST_TO_DEVICE, s));
    EXPECT_OK(aclrtMemcpyAsync(b2, big, b1, big, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    EXPECT_OK(aclrtMemcpyAsync(dst, big, b2, big, ACL_MEMCPY_DEVICE_TO_HOST, s));
    EXPECT_OK(aclrtMemsetAsync(c, small, 0x7a, small, s));
    EXPECT_OK(aclrtMemcpyAsync(dsmall, small, c, small, ACL_MEMCPY_DEVICE_TO_HOST, s));
    /* Freed in stream order, before the copies have run. */
    for (int i = 0; i < 4; i++)
        EXPECT_OK(aclrtMemPoolFreeAsync(all[i], s));
    EXPECT_OK(aclrtSynchronizeStream(s));
    CHECK(checksum(dst, big) == checksum(src, big));
    CHECK(all_bytes(dsmall, small, 0x7a));
    /* Synchronous copies reach pool memory too. */
    void *d = NULL;
    EXPECT_OK(aclrtMemPoolMallocAsync(&d, 4096, p, NULL));
    fill_pattern(src, 4096, 7);
    EXPECT_OK(aclrtMemcpy(d, 4096, src, 4096, ACL_MEMCPY_HOST_TO_DEVICE));
    EXPECT_OK(aclrtMemcpy(dst, 4096, d, 4096, ACL_MEMCPY_DEVICE_TO_HOST));
    CHECK(checksum(dst, 4096) == checksum(src, 4096));
    EXPECT_OK(aclrtMemPoolFreeAsync(d, NULL));
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_USED_MEM_CURRENT) == 0);
    EXPECT_OK(aclrtFreeHost(src));
    EXPECT_OK(aclrtFreeHost(dst));
    EXPECT_OK(aclrtFreeHost(dsmall));
    EXPECT_OK(aclrtMemPoolDestroy(p));
    EXPECT_OK(aclrtDestroyStream(s));
}

/* ---- reuse ---- */

/* The freeing stream reuses at once (no synchronise), the closest size first. */
static void test_same_stream_reuse(void)
{
    aclrtMemPool p = make_pool(0, 0);
    set64(p, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD, UINT64_MAX);
    aclrtStream s = NULL;
    EXPECT_OK(aclrtCreateStream(&s));
    Busy busy = busy_new();
    void *a = NULL, *keep1 = NULL, *b = NULL, *keep2 = NULL;
    EXPECT_OK(aclrtMemPoolMallocAsync(&a, 1 * MiB, p, s));
    EXPECT_OK(aclrtMemPoolMallocAsync(&keep1, 512, p, s));
    EXPECT_OK(aclrtMemPoolMallocAsync(&b, 64 * KiB, p, s));
    EXPECT_OK(aclrtMemPoolMallocAsync(&keep2, 512, p, s));
    busy_queue(&busy, s);
    EXPECT_OK(aclrtMemPoolFreeAsync(a, s));
    EXPECT_OK(aclrtMemPoolFreeAsync(b, s));
    uint64_t reserved = get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT);
    void *x = NULL, *y = NULL;
    EXPECT_OK(aclrtMemPoolMallocAsync(&x, 60 * KiB, p, s));
    CHECKF(x == b, "60 KiB on the freeing stream: got %p, the freed 64 KiB block is %p", x, b);
    EXPECT_OK(aclrtMemPoolMallocAsync(&y, 1 * MiB, p, s));
    CHECKF(y == a, "1 MiB on the freeing stream: got %p, the freed 1 MiB block is %p", y, a);
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT) == reserved);
    EXPECT_OK(aclrtMemPoolFreeAsync(x, s));
    EXPECT_OK(aclrtMemPoolFreeAsync(y, s));
    EXPECT_OK(aclrtMemPoolFreeAsync(keep1, s));
    EXPECT_OK(aclrtMemPoolFreeAsync(keep2, s));
    EXPECT_OK(aclrtSynchronizeStream(s));
    busy_free(&busy);
    EXPECT_OK(aclrtMemPoolDestroy(p));
    EXPECT_OK(aclrtDestroyStream(s));
}

/* Stream A writes X, stays busy, reads X back and frees X.  Stream B asks for a
 * block only X can provide (the pool cannot grow).  Handing X to B before A has
 * read it would let B's memset land in A's result. */
typedef struct CrossStream {
    aclrtMemPool pool;
    aclrtStream a, b;
    Busy busy;
    uint8_t *src, *out, *out2;
    void *x;
} CrossStream;

#define XSIZE (3 * MiB / 2)

/* gate (may be NULL): A waits for it before anything else. */
static void cross_begin(CrossStream *c, uint32_t opportunistic, uint32_t internal,
                        aclrtNotify gate)
{
    c->pool = make_pool(0, 2 * MiB);
    set64(c->pool, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD, UINT64_MAX);
    set32(c->pool, ACL_RT_MEM_POOL_REUSE_ALLOW_OPPORTUNISTIC, opportunistic);
    set32(c->pool, ACL_RT_MEM_POOL_REUSE_ALLOW_INTERNAL_DEPENDENCIES, internal);
    EXPECT_OK(aclrtCreateStream(&c->a));
    EXPECT_OK(aclrtCreateStream(&c->b));
    c->busy = busy_new();
    c->src = pinned(XSIZE);
    c->out = pinned(XSIZE);
    c->out2 = pinned(XSIZE);
    fill_pattern(c->src, XSIZE, 99);
    memset(c->out, 0, XSIZE);
    memset(c->out2, 0, XSIZE);
    c->x = NULL;
    if (gate)
        EXPECT_OK(aclrtWaitAndResetNotify(gate, c->a, 0));
    EXPECT_OK(aclrtMemPoolMallocAsync(&c->x, XSIZE, c->pool, c->a));
    EXPECT_OK(aclrtMemcpyAsync(c->x, XSIZE, c->src, XSIZE, ACL_MEMCPY_HOST_TO_DEVICE, c->a));
    busy_queue(&c->busy, c->a);
    EXPECT_OK(aclrtMemcpyAsync(c->out, XSIZE, c->x, XSIZE, ACL_MEMCPY_DEVICE_TO_HOST, c->a));
    EXPECT_OK(aclrtMemPoolFreeAsync(c->x, c->a));
}

/* B uses y (expected to be X), then both streams finish; A's result must be intact. */
static void cross_end(CrossStream *c, void *y)
{
    if (y) {
        EXPECT_OK(aclrtMemsetAsync(y, XSIZE, 0xee, XSIZE, c->b));
        EXPECT_OK(aclrtMemcpyAsync(c->out2, XSIZE, y, XSIZE, ACL_MEMCPY_DEVICE_TO_HOST, c->b));
        EXPECT_OK(aclrtMemPoolFreeAsync(y, c->b));
    }
    EXPECT_OK(aclrtSynchronizeStream(c->b));
    EXPECT_OK(aclrtSynchronizeStream(c->a));
    CHECKF(checksum(c->out, XSIZE) == checksum(c->src, XSIZE),
           "stream A's data in X was overwritten (first byte 0x%02x)", c->out[0]);
    if (y)
        CHECK(all_bytes(c->out2, XSIZE, 0xee));
    busy_free(&c->busy);
    EXPECT_OK(aclrtFreeHost(c->src));
    EXPECT_OK(aclrtFreeHost(c->out));
    EXPECT_OK(aclrtFreeHost(c->out2));
    EXPECT_OK(aclrtMemPoolDestroy(c->pool));
    EXPECT_OK(aclrtDestroyStream(c->a));
    EXPECT_OK(aclrtDestroyStream(c->b));
}

/* Default attributes: B gets X at once, and B's stream waits in the engine
 * until A has run the free.  A is held at a gate meanwhile: a call that waited
 * for A on the host would not return, and a B that did not wait would write
 * X before A has read it. */
static void test_cross_stream_waits(void)
{
    CrossStream c;
    aclrtNotify gate = NULL;
    EXPECT_OK(aclrtCreateNotify(&gate, 0));
    cross_begin(&c, 1, 1, gate);
    void *y = NULL;
    uint32_t last = 0, after = 0;
    EXPECT_OK(aclrtGetThreadLastTaskId(&last));
    EXPECT_OK(aclrtMemPoolMallocAsync(&y, XSIZE, c.pool, c.b));
    CHECKF(y == c.x, "the only block that fits is X=%p, got %p", c.x, y);
    /* The wait the runtime queued is not the thread's task. */
    EXPECT_OK(aclrtGetThreadLastTaskId(&after));
    CHECK(after == last);
    EXPECT_OK(aclrtMemsetAsync(y, XSIZE, 0xee, XSIZE, c.b));
    usleep(50000);
    aclrtStreamStatus st = ACL_STREAM_STATUS_RESERVED;
    EXPECT_OK(aclrtStreamQuery(c.b, &st));
    CHECKF(st == ACL_STREAM_STATUS_NOT_READY, "B ran while A, which still uses X, is held");
    CHECK(all_bytes(c.out, XSIZE, 0));
    EXPECT_OK(aclrtRecordNotify(gate, NULL));
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    cross_end(&c, y);       /* A's copy of X is intact, B's memset landed */
    EXPECT_OK(aclrtDestroyNotify(gate));
}

/* No reuse across streams allowed: B fails while A's free is pending, and gets
 * X once A has been synchronised. */
static void test_cross_stream_no_reuse(void)
{
    CrossStream c;
    cross_begin(&c, 0, 0, NULL);
    void *y = NULL;
    EXPECT_ERR(aclrtMemPoolMallocAsync(&y, XSIZE, c.pool, c.b), ACL_ERROR_RT_MEMORY_ALLOCATION);
    CHECK(y == NULL);
    EXPECT_OK(aclrtSynchronizeStream(c.a));
    EXPECT_OK(aclrtMemPoolMallocAsync(&y, XSIZE, c.pool, c.b));
    CHECKF(y == c.x, "after A's synchronise, X=%p is free for B; got %p", c.x, y);
    cross_end(&c, y);
}

/* Opportunistic reuse only: B fails while A runs, and gets X without any
 * synchronise once A has run past the free. */
static void test_cross_stream_opportunistic(void)
{
    CrossStream c;
    cross_begin(&c, 1, 0, NULL);
    void *y = NULL;
    EXPECT_ERR(aclrtMemPoolMallocAsync(&y, XSIZE, c.pool, c.b), ACL_ERROR_RT_MEMORY_ALLOCATION);
    /* A's last task fills `out`; wait for it from the host side only. */
    for (int i = 0; i < 5000 && checksum(c.out, XSIZE) != checksum(c.src, XSIZE); i++)
        usleep(1000);
    usleep(20000);
    EXPECT_OK(aclrtMemPoolMallocAsync(&y, XSIZE, c.pool, c.b));
    CHECKF(y == c.x, "A has passed the free: X=%p is reusable, got %p", c.x, y);
    cross_end(&c, y);
}

/* Event dependencies only (no opportunistic or internal reuse): B may take
 * what A freed once B waits for an event A recorded after the free.  A is held
 * at a gate meanwhile, so B's use must land after A's last read. */
typedef enum { DEP_FOLLOW, DEP_OFF, DEP_TIMED_WAIT, DEP_RESETTABLE } DepMode;

/* DEP_FOLLOW: the dependency is followed.  Not followed: the switch off; a wait
 * with a timeout (it lets its stream go on); a resettable event (a reset can
 * release a wait before the record ran). */
static void event_dependency_round(DepMode mode)
{
    bool follow = mode == DEP_FOLLOW;
    aclrtMemPool p = make_pool(0, 2 * MiB);
    set32(p, ACL_RT_MEM_POOL_REUSE_ALLOW_OPPORTUNISTIC, 0);
    set32(p, ACL_RT_MEM_POOL_REUSE_ALLOW_INTERNAL_DEPENDENCIES, 0);
    set32(p, ACL_RT_MEM_POOL_REUSE_FOLLOW_EVENT_DEPENDENCIES, mode != DEP_OFF);
    set64(p, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD, UINT64_MAX);
    aclrtStream a = NULL, b = NULL;
    aclrtNotify gate = NULL;
    aclrtEvent e = NULL;
    EXPECT_OK(aclrtCreateStream(&a));
    EXPECT_OK(aclrtCreateStream(&b));
    EXPECT_OK(aclrtCreateNotify(&gate, 0));
    if (mode == DEP_RESETTABLE)
        EXPECT_OK(aclrtCreateEventWithFlag(&e, ACL_EVENT_SYNC));
    else
        EXPECT_OK(aclrtCreateEvent(&e));
    uint8_t *out = pinned(XSIZE), *out2 = pinned(XSIZE);
    memset(out, 0, XSIZE);
    memset(out2, 0, XSIZE);
    void *x = NULL, *y = NULL;
    EXPECT_OK(aclrtMemPoolMallocAsync(&x, XSIZE, p, a));
    EXPECT_OK(aclrtWaitAndResetNotify(gate, a, 0));
    EXPECT_OK(aclrtMemsetAsync(x, XSIZE, 0x11, XSIZE, a));
    EXPECT_OK(aclrtMemcpyAsync(out, XSIZE, x, XSIZE, ACL_MEMCPY_DEVICE_TO_HOST, a));
    EXPECT_OK(aclrtMemPoolFreeAsync(x, a));
    /* No dependency yet, and the pool cannot grow. */
    EXPECT_ERR(aclrtMemPoolMallocAsync(&y, XSIZE, p, b), ACL_ERROR_RT_MEMORY_ALLOCATION);
    EXPECT_OK(aclrtRecordEvent(e, a));
    if (mode == DEP_TIMED_WAIT)
        EXPECT_OK(aclrtStreamWaitEventWithTimeout(b, e, 30));
    else
        EXPECT_OK(aclrtStreamWaitEvent(b, e));
    if (follow) {
        EXPECT_OK(aclrtMemPoolMallocAsync(&y, XSIZE, p, b));
        CHECKF(y == x, "B waited for A's event after the free: X=%p, got %p", x, y);
        EXPECT_OK(aclrtMemsetAsync(y, XSIZE, 0x22, XSIZE, b));
        EXPECT_OK(aclrtMemcpyAsync(out2, XSIZE, y, XSIZE, ACL_MEMCPY_DEVICE_TO_HOST, b));
        EXPECT_OK(aclrtMemPoolFreeAsync(y, b));
    } else {
        EXPECT_ERR(aclrtMemPoolMallocAsync(&y, XSIZE, p, b), ACL_ERROR_RT_MEMORY_ALLOCATION);
    }
    CHECK(all_bytes(out, XSIZE, 0));
    EXPECT_OK(aclrtRecordNotify(gate, NULL));
    EXPECT_OK(aclrtSynchronizeStream(a));
    EXPECT_OK(aclrtSynchronizeStream(b));
    CHECKF(all_bytes(out, XSIZE, 0x11), "A's read of X saw 0x%02x", out[0]);
    if (follow)
        CHECKF(all_bytes(out2, XSIZE, 0x22), "B's use of X: 0x%02x", out2[0]);
    EXPECT_OK(aclrtFreeHost(out));
    EXPECT_OK(aclrtFreeHost(out2));
    EXPECT_OK(aclrtDestroyEvent(e));
    EXPECT_OK(aclrtDestroyNotify(gate));
    EXPECT_OK(aclrtMemPoolDestroy(p));
    EXPECT_OK(aclrtDestroyStream(a));
    EXPECT_OK(aclrtDestroyStream(b));
}

static void test_cross_stream_event_dependency(void)
{
    event_dependency_round(DEP_FOLLOW);
    event_dependency_round(DEP_OFF);
    event_dependency_round(DEP_TIMED_WAIT);
    event_dependency_round(DEP_RESETTABLE);
}

/* The freeing stream is gone (its frees ran): its blocks are reused with no
 * wait task, even when its slot is empty or now another stream's. */
static void test_reuse_after_stream_destroyed(void)
{
    aclrtMemPool p = make_pool(0, 2 * MiB);
    set32(p, ACL_RT_MEM_POOL_REUSE_ALLOW_OPPORTUNISTIC, 0);
    set64(p, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD, UINT64_MAX);
    aclrtStream a = NULL, b = NULL, c = NULL;
    EXPECT_OK(aclrtCreateStream(&a));
    EXPECT_OK(aclrtCreateStream(&b));
    void *keep = NULL, *x = NULL, *y = NULL, *z = NULL;
    EXPECT_OK(aclrtMemPoolMallocAsync(&keep, 512, p, a));
    EXPECT_OK(aclrtMemPoolMallocAsync(&x, XSIZE, p, b));
    EXPECT_OK(aclrtMemsetAsync(x, XSIZE, 0x5a, XSIZE, b));
    EXPECT_OK(aclrtMemPoolFreeAsync(x, b));
    EXPECT_OK(aclrtDestroyStream(b));
    EXPECT_OK(aclrtMemPoolMallocAsync(&y, XSIZE, p, a));
    CHECKF(y == x, "the freed block %p, got %p", x, y);
    EXPECT_OK(aclrtMemPoolFreeAsync(y, a));
    EXPECT_OK(aclrtSynchronizeStream(a));
    /* Again, with the slot of the freeing stream taken by the new stream. */
    EXPECT_OK(aclrtCreateStream(&b));
    EXPECT_OK(aclrtMemPoolMallocAsync(&x, XSIZE, p, b));
    EXPECT_OK(aclrtMemPoolFreeAsync(x, b));
    EXPECT_OK(aclrtDestroyStream(b));
    EXPECT_OK(aclrtCreateStream(&c));
    EXPECT_OK(aclrtMemPoolMallocAsync(&z, XSIZE, p, c));
    CHECKF(z == x, "the freed block %p, got %p", x, z);
    EXPECT_OK(aclrtMemPoolFreeAsync(z, c));
    EXPECT_OK(aclrtMemPoolFreeAsync(keep, a));
    EXPECT_OK(aclrtSynchronizeStream(a));
    EXPECT_OK(aclrtSynchronizeStream(c));
    EXPECT_OK(aclrtMemPoolDestroy(p));
    EXPECT_OK(aclrtDestroyStream(a));
    EXPECT_OK(aclrtDestroyStream(c));
}

/* ---- giving memory back ---- */

static void test_trim(void)
{
    aclrtMemPool p = make_pool(0, 0);
    set64(p, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD, UINT64_MAX);
    aclrtStream s = NULL;
    EXPECT_OK(aclrtCreateStream(&s));
    size_t free0 = hbm_free();
    void *a = NULL, *b = NULL;
    EXPECT_OK(aclrtMemPoolMallocAsync(&a, 8 * MiB, p, s));
    EXPECT_OK(aclrtMemPoolMallocAsync(&b, 16 * MiB, p, s));
    uint64_t reserved = get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT);
    CHECKF(reserved == 28 * MiB, "reserved %llu (two chunks: 10 + 18 MiB)",
           (unsigned long long)reserved);
    CHECK(hbm_free() == free0 - reserved);
    /* Nothing in use is released. */
    EXPECT_OK(aclrtMemPoolTrimTo(p, 0));
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT) == reserved);
    EXPECT_OK(aclrtMemsetAsync(b, 16 * MiB, 0x33, 16 * MiB, s));
    EXPECT_OK(aclrtMemPoolFreeAsync(a, s));
    EXPECT_OK(aclrtMemPoolFreeAsync(b, s));
    EXPECT_OK(aclrtSynchronizeStream(s));
    /* The threshold keeps everything through the synchronise. */
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT) == reserved);
    CHECK(hbm_free() == free0 - reserved);
    /* Keep 10 MiB: the 18 MiB chunk goes, the 10 MiB one stays. */
    EXPECT_OK(aclrtMemPoolTrimTo(p, 10 * MiB));
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT) == 10 * MiB);
    CHECK(hbm_free() == free0 - 10 * MiB);
    EXPECT_OK(aclrtMemPoolTrimTo(p, 0));
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT) == 0);
    CHECK(hbm_free() == free0);
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_HIGH) == reserved);

    /* A free the stream has not reached yet keeps its chunk. */
    Busy busy = busy_new();
    size_t free1 = hbm_free();
    EXPECT_OK(aclrtMemPoolMallocAsync(&a, 1 * MiB, p, s));
    busy_queue(&busy, s);
    EXPECT_OK(aclrtMemsetAsync(a, 1 * MiB, 1, 1 * MiB, s));
    EXPECT_OK(aclrtMemPoolFreeAsync(a, s));
    EXPECT_OK(aclrtMemPoolTrimTo(p, 0));
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT) == 2 * MiB);
    EXPECT_OK(aclrtSynchronizeStream(s));
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT) == 2 * MiB);
    EXPECT_OK(aclrtMemPoolTrimTo(p, 0));
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT) == 0);
    CHECK(hbm_free() == free1);
    busy_free(&busy);

    EXPECT_ERR(aclrtMemPoolTrimTo(NULL, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtMemPoolDestroy(p));
    EXPECT_ERR(aclrtMemPoolTrimTo(p, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtDestroyStream(s));
}

/* Idle memory above the release threshold goes back at the next synchronise. */
static void test_release_threshold(void)
{
    aclrtMemPool p = make_pool(0, 0);
    aclrtStream s = NULL;
    EXPECT_OK(aclrtCreateStream(&s));
    size_t free0 = hbm_free();
    void *a = NULL;
    /* Default threshold 0: everything idle goes. */
    EXPECT_OK(aclrtMemPoolMallocAsync(&a, 32 * MiB, p, s));
    EXPECT_OK(aclrtMemsetAsync(a, 32 * MiB, 9, 32 * MiB, s));
    EXPECT_OK(aclrtMemPoolFreeAsync(a, s));
    CHECK(hbm_free() == free0 - 34 * MiB);
    EXPECT_OK(aclrtSynchronizeStream(s));
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT) == 0);
    CHECK(hbm_free() == free0);
    /* A threshold above what is held keeps it. */
    set64(p, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD, 64 * MiB);
    EXPECT_OK(aclrtMemPoolMallocAsync(&a, 32 * MiB, p, s));
    EXPECT_OK(aclrtMemPoolFreeAsync(a, s));
    EXPECT_OK(aclrtSynchronizeStream(s));
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT) == 34 * MiB);
    CHECK(hbm_free() == free0 - 34 * MiB);
    /* A device synchronise counts as well. */
    set64(p, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD, 0);
    EXPECT_OK(aclrtSynchronizeDevice());
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT) == 0);
    CHECK(hbm_free() == free0);
    EXPECT_OK(aclrtMemPoolDestroy(p));
    EXPECT_OK(aclrtDestroyStream(s));
}

static void test_max_size(void)
{
    aclrtMemPool p = make_pool(0, 4 * MiB);
    void *a = NULL, *b = NULL;
    EXPECT_ERR(aclrtMemPoolMallocAsync(&a, 8 * MiB, p, NULL), ACL_ERROR_RT_MEMORY_ALLOCATION);
    EXPECT_OK(aclrtMemPoolMallocAsync(&a, 3 * MiB, p, NULL));
    EXPECT_ERR(aclrtMemPoolMallocAsync(&b, 3 * MiB, p, NULL), ACL_ERROR_RT_MEMORY_ALLOCATION);
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT) <= 4 * MiB);
    EXPECT_OK(aclrtMemPoolFreeAsync(a, NULL));
    EXPECT_OK(aclrtMemPoolMallocAsync(&b, 3 * MiB, p, NULL));
    CHECK(b == a);
    EXPECT_OK(aclrtMemPoolFreeAsync(b, NULL));
    EXPECT_OK(aclrtMemPoolDestroy(p));
    /* A pool smaller than a huge page still holds what it may. */
    p = make_pool(0, 64 * KiB);
    EXPECT_OK(aclrtMemPoolMallocAsync(&a, 60 * KiB, p, NULL));
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT) <= 64 * KiB);
    EXPECT_OK(aclrtMemPoolFreeAsync(a, NULL));
    EXPECT_OK(aclrtMemPoolDestroy(p));
    /* maxSize 0: only the device limits the pool. */
    p = make_pool(0, 0);
    EXPECT_OK(aclrtMemPoolMallocAsync(&a, 1 * GiB, p, NULL));
    EXPECT_ERR(aclrtMemPoolMallocAsync(&b, 65 * GiB, p, NULL), ACL_ERROR_RT_MEMORY_ALLOCATION);
    EXPECT_ERR(aclrtMemPoolMallocAsync(&b, SIZE_MAX, p, NULL), ACL_ERROR_RT_MEMORY_ALLOCATION);
    EXPECT_OK(aclrtMemPoolFreeAsync(a, NULL));
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    EXPECT_OK(aclrtMemPoolDestroy(p));
}

/* ---- bad arguments ---- */

static void *make_stream_on_1(void *arg)
{
    EXPECT_OK(aclrtSetDevice(1));
    EXPECT_OK(aclrtCreateStream((aclrtStream *)arg));
    return NULL;
}

static void *destroy_stream_on_1(void *arg)
{
    EXPECT_OK(aclrtSetDevice(1));
    EXPECT_OK(aclrtDestroyStream(arg));
    EXPECT_OK(aclrtResetDevice(1));
    EXPECT_OK(aclrtResetDevice(1));
    return NULL;
}

static void test_async_bad_args(void)
{
    aclrtMemPool p = make_pool(0, 0);
    aclrtMemPool p1 = make_pool(1, 0);
    aclrtStream s = NULL, s1 = NULL, dead = NULL;
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtCreateStream(&dead));
    EXPECT_OK(aclrtDestroyStream(dead));
    run_in_thread(make_stream_on_1, &s1);
    uint64_t fake = 0;
    void *x = NULL;
    EXPECT_ERR(aclrtMemPoolMallocAsync(NULL, 64, p, s), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolMallocAsync(&x, 0, p, s), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolMallocAsync(&x, 64, NULL, s), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolMallocAsync(&x, 64, &fake, s), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolMallocAsync(&x, 64, p, dead), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_ERR(aclrtMemPoolMallocAsync(&x, 64, p, s1), ACL_ERROR_RT_STREAM_CONTEXT);
    EXPECT_ERR(aclrtMemPoolMallocAsync(&x, 64, p1, s), ACL_ERROR_RT_PARAM_INVALID);
    CHECK(x == NULL);

    void *m = NULL, *a = NULL;
    EXPECT_OK(aclrtMalloc(&m, 4096, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMemPoolMallocAsync(&a, 4096, p, s));
    EXPECT_ERR(aclrtMemPoolFreeAsync(NULL, s), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolFreeAsync(m, s), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolFreeAsync(&fake, s), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolFreeAsync((uint8_t *)a + 512, s), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolFreeAsync(a, dead), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_ERR(aclrtMemPoolFreeAsync(a, s1), ACL_ERROR_RT_STREAM_CONTEXT);
    EXPECT_ERR(aclrtFree(a), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtMemPoolFreeAsync(a, s));
    EXPECT_ERR(aclrtMemPoolFreeAsync(a, s), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtFree(m));

    EXPECT_ERR(aclrtMemPoolDestroy(NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolDestroy(&fake), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtSynchronizeStream(s));
    EXPECT_OK(aclrtMemPoolDestroy(p));
    EXPECT_ERR(aclrtMemPoolDestroy(p), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolMallocAsync(&x, 64, p, s), ACL_ERROR_RT_PARAM_INVALID);
    uint64_t v;
    EXPECT_ERR(aclrtMemPoolGetAttr(p, ACL_RT_MEM_POOL_ATTR_USED_MEM_CURRENT, &v),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemPoolSetAttr(p, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD, &v),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtMemPoolDestroy(p1));
    EXPECT_OK(aclrtDestroyStream(s));
    run_in_thread(destroy_stream_on_1, s1);
}

/* Without a context in the thread: 107002 where a stream is needed. */
static void *no_context_thread(void *arg)
{
    aclrtMemPool p = arg;
    void *x = NULL;
    uint64_t v = 0;
    EXPECT_ERR(aclrtMemPoolMallocAsync(&x, 64, p, NULL), ACL_ERROR_RT_CONTEXT_NULL);
    EXPECT_ERR(aclrtMemPoolFreeAsync(&v, NULL), ACL_ERROR_RT_CONTEXT_NULL);
    /* Pool bookkeeping needs none. */
    EXPECT_OK(aclrtMemPoolGetAttr(p, ACL_RT_MEM_POOL_ATTR_USED_MEM_CURRENT, &v));
    EXPECT_OK(aclrtMemPoolTrimTo(p, 0));
    return NULL;
}

static void test_no_context(void)
{
    aclrtMemPool p = make_pool(0, 0);
    run_in_thread(no_context_thread, p);
    EXPECT_OK(aclrtMemPoolDestroy(p));
}

/* ---- destroy, device reset ---- */

static void test_destroy_outstanding(void)
{
    aclrtStream s = NULL;
    EXPECT_OK(aclrtCreateStream(&s));
    size_t free0 = hbm_free();
    aclrtMemPool p = make_pool(0, 0);
    void *x = NULL;
    EXPECT_OK(aclrtMemPoolMallocAsync(&x, 1 * MiB, p, s));
    uint8_t *src = g_malloc(MiB), *back = g_malloc(MiB);
    fill_pattern(src, MiB, 5);
    EXPECT_OK(aclrtMemcpy(x, MiB, src, MiB, ACL_MEMCPY_HOST_TO_DEVICE));
    EXPECT_OK(aclrtMemPoolDestroy(p));
    EXPECT_ERR(aclrtMemPoolDestroy(p), ACL_ERROR_RT_PARAM_INVALID);
    uint64_t v;
    EXPECT_ERR(aclrtMemPoolGetAttr(p, ACL_RT_MEM_POOL_ATTR_USED_MEM_CURRENT, &v),
               ACL_ERROR_RT_PARAM_INVALID);
    /* The allocation outlives its pool until it is freed. */
    EXPECT_OK(aclrtMemcpy(back, MiB, x, MiB, ACL_MEMCPY_DEVICE_TO_HOST));
    CHECK(memcmp(back, src, MiB) == 0);
    CHECK(hbm_free() == free0 - 2 * MiB);
    EXPECT_OK(aclrtMemsetAsync(x, MiB, 0, MiB, s));
    EXPECT_OK(aclrtMemPoolFreeAsync(x, s));
    EXPECT_OK(aclrtSynchronizeStream(s));
    CHECK(hbm_free() == free0);
    EXPECT_ERR(aclrtMemPoolFreeAsync(x, s), ACL_ERROR_RT_PARAM_INVALID);
    g_free(src);
    g_free(back);
    EXPECT_OK(aclrtDestroyStream(s));
}

static void *reset_thread(void *arg)
{
    (void)arg;
    EXPECT_OK(aclrtSetDevice(3));
    aclrtMemPool p = make_pool(3, 0);
    void *x = NULL, *y = NULL;
    EXPECT_OK(aclrtMemPoolMallocAsync(&x, 1 * MiB, p, NULL));
    EXPECT_OK(aclrtResetDevice(3));         /* count 0: the device's memory goes */
    EXPECT_OK(aclrtSetDevice(3));
    EXPECT_ERR(aclrtMemPoolFreeAsync(x, NULL), ACL_ERROR_RT_PARAM_INVALID);
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT) == 0);
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_USED_MEM_CURRENT) == 0);
    EXPECT_OK(aclrtMemPoolMallocAsync(&y, 1 * MiB, p, NULL));
    uint8_t back[256];
    EXPECT_OK(aclrtMemsetAsync(y, MiB, 0x5a, MiB, NULL));
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    EXPECT_OK(aclrtMemcpy(back, sizeof(back), y, sizeof(back), ACL_MEMCPY_DEVICE_TO_HOST));
    CHECK(all_bytes(back, sizeof(back), 0x5a));
    EXPECT_OK(aclrtMemPoolFreeAsync(y, NULL));
    EXPECT_OK(aclrtMemPoolDestroy(p));
    EXPECT_OK(aclrtResetDevice(3));
    return NULL;
}

static void test_device_reset(void)
{
    run_in_thread(reset_thread, NULL);
}

/* ---- threads sharing a pool ---- */

typedef struct Worker {
    aclrtMemPool pool;
    uint32_t seed;
    int fails;
} Worker;

static void *worker(void *arg)
{
    Worker *w = arg;
    EXPECT_OK(aclrtSetDevice(0));
    aclrtStream s = NULL;
    EXPECT_OK(aclrtCreateStream(&s));
    const size_t max = 256 * KiB;
    uint8_t *src = pinned(max), *dst = pinned(max);
    for (int i = 0; i < 100; i++) {
        size_t n = 1 + (size_t)g_random_int_range(0, (int)max);
        void *a = NULL, *b = NULL;
        if (aclrtMemPoolMallocAsync(&a, n, w->pool, s) != ACL_SUCCESS ||
            aclrtMemPoolMallocAsync(&b, n, w->pool, s) != ACL_SUCCESS) {
            w->fails++;
            break;
        }
        fill_pattern(src, n, w->seed + (uint32_t)i);
        memset(dst, 0, n);
        aclrtMemcpyAsync(a, n, src, n, ACL_MEMCPY_HOST_TO_DEVICE, s);
        aclrtMemcpyAsync(b, n, a, n, ACL_MEMCPY_DEVICE_TO_DEVICE, s);
        aclrtMemcpyAsync(dst, n, b, n, ACL_MEMCPY_DEVICE_TO_HOST, s);
        aclrtMemPoolFreeAsync(a, s);
        aclrtMemPoolFreeAsync(b, s);
        if (aclrtSynchronizeStream(s) != ACL_SUCCESS || memcmp(src, dst, n) != 0)
            w->fails++;
    }
    EXPECT_OK(aclrtFreeHost(src));
    EXPECT_OK(aclrtFreeHost(dst));
    EXPECT_OK(aclrtDestroyStream(s));
    return NULL;
}

static void test_threads_share_pool(void)
{
    aclrtMemPool p = make_pool(0, 0);
    set64(p, ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD, 16 * MiB);
    Worker w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (Worker){ .pool = p, .seed = 1000u * (uint32_t)i };
        CU_ASSERT_FATAL(pthread_create(&t[i], NULL, worker, &w[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECKF(w[i].fails == 0, "worker %d: %d failed rounds", i, w[i].fails);
    }
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_USED_MEM_CURRENT) == 0);
    EXPECT_OK(aclrtMemPoolTrimTo(p, 0));
    CHECK(get64(p, ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT) == 0);
    EXPECT_OK(aclrtMemPoolDestroy(p));
}

/* ---- custom allocators (11-08) ---- */

static void test_allocator_desc(void)
{
    int obj;
    aclrtAllocatorDesc d = aclrtAllocatorCreateDesc();
    CHECK(d != NULL);
    EXPECT_ERR(aclrtAllocatorSetObjToDesc(NULL, &obj), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtAllocatorSetObjToDesc(d, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtAllocatorSetAllocFuncToDesc(d, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtAllocatorSetFreeFuncToDesc(d, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtAllocatorSetAllocAdviseFuncToDesc(d, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtAllocatorSetGetAddrFromBlockFuncToDesc(d, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtAllocatorSetAllocFuncToDesc((aclrtAllocatorDesc)&obj, dummy_alloc),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtAllocatorSetObjToDesc(d, &obj));
    EXPECT_OK(aclrtAllocatorDestroyDesc(d));
    EXPECT_ERR(aclrtAllocatorDestroyDesc(d), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtAllocatorSetObjToDesc(d, &obj), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtAllocatorDestroyDesc(NULL), ACL_ERROR_RT_PARAM_INVALID);
    aclrtAllocatorDesc d2 = aclrtAllocatorCreateDesc();
    CHECK(d2 != NULL && d2 != d);
    EXPECT_OK(aclrtAllocatorDestroyDesc(d2));
}

typedef struct Got {
    aclrtAllocatorDesc desc;
    aclrtAllocator obj;
    aclrtAllocatorAllocFunc alloc;
    aclrtAllocatorFreeFunc free;
    aclrtAllocatorAllocAdviseFunc advise;
    aclrtAllocatorGetAddrFromBlockFunc addr;
} Got;

static aclError get_by_stream(aclrtStream s, Got *g)
{
    memset(g, 0, sizeof(*g));
    return aclrtAllocatorGetByStream(s, &g->desc, &g->obj, &g->alloc, &g->free, &g->advise,
                                     &g->addr);
}

static void *registry_other_thread(void *arg)
{
    /* The registry is per stream, not per thread. */
    aclrtStream s = arg;
    EXPECT_OK(aclrtSetDevice(0));
    Got g;
    EXPECT_OK(get_by_stream(s, &g));
    CHECK(g.alloc == dummy_alloc);
    return NULL;
}

static void test_allocator_registry(void)
{
    int obj1, obj2;
    aclrtStream s1 = NULL, s2 = NULL, dead = NULL, other = NULL;
    EXPECT_OK(aclrtCreateStream(&s1));
    EXPECT_OK(aclrtCreateStream(&s2));
    EXPECT_OK(aclrtCreateStream(&dead));
    EXPECT_OK(aclrtDestroyStream(dead));
    run_in_thread(make_stream_on_1, &other);
    aclrtAllocatorDesc d1 = full_desc(&obj1);
    aclrtAllocatorDesc d2 = full_desc(&obj2);
    Got g;

    /* Bad registrations. */
    EXPECT_ERR(aclrtAllocatorRegister(NULL, d1), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtAllocatorRegister(s1, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtAllocatorRegister(dead, d1), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_ERR(aclrtAllocatorRegister(other, d1), ACL_ERROR_RT_STREAM_CONTEXT);
    EXPECT_ERR(aclrtAllocatorRegister(s1, (aclrtAllocatorDesc)&obj1), ACL_ERROR_RT_PARAM_INVALID);
    aclrtAllocatorDesc partial = aclrtAllocatorCreateDesc();
    EXPECT_OK(aclrtAllocatorSetObjToDesc(partial, &obj1));
    EXPECT_OK(aclrtAllocatorSetAllocFuncToDesc(partial, dummy_alloc));
    EXPECT_OK(aclrtAllocatorSetFreeFuncToDesc(partial, dummy_free));
    EXPECT_ERR(aclrtAllocatorRegister(s1, partial), ACL_ERROR_RT_PARAM_INVALID);
    /* The advise callback is optional. */
    EXPECT_OK(aclrtAllocatorSetGetAddrFromBlockFuncToDesc(partial, dummy_addr));
    EXPECT_OK(aclrtAllocatorRegister(s2, partial));
    EXPECT_OK(get_by_stream(s2, &g));
    CHECK(g.desc == partial && g.obj == &obj1 && g.advise == NULL && g.addr == dummy_addr);

    /* Nothing registered on s1 yet. */
    EXPECT_ERR(get_by_stream(s1, &g), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtAllocatorRegister(s1, d1));
    EXPECT_OK(get_by_stream(s1, &g));
    CHECK(g.desc == d1 && g.obj == &obj1 && g.alloc == dummy_alloc && g.free == dummy_free &&
          g.advise == dummy_advise && g.addr == dummy_addr);
    run_in_thread(registry_other_thread, s1);
    /* Per stream: s2 keeps its own. */
    EXPECT_OK(get_by_stream(s2, &g));
    CHECK(g.desc == partial);
    /* The last registration wins. */
    EXPECT_OK(aclrtAllocatorRegister(s1, d2));
    EXPECT_OK(get_by_stream(s1, &g));
    CHECK(g.desc == d2 && g.obj == &obj2);
    /* The registration keeps what the descriptor held: destroying it is allowed. */
    EXPECT_OK(aclrtAllocatorDestroyDesc(d2));
    EXPECT_OK(get_by_stream(s1, &g));
    CHECK(g.desc == d2 && g.obj == &obj2 && g.alloc == dummy_alloc);

    /* Query errors. */
    aclrtAllocatorDesc od;
    aclrtAllocator oa;
    aclrtAllocatorAllocFunc of;
    aclrtAllocatorFreeFunc ofr;
    aclrtAllocatorAllocAdviseFunc oad;
    aclrtAllocatorGetAddrFromBlockFunc oga;
    EXPECT_ERR(aclrtAllocatorGetByStream(NULL, &od, &oa, &of, &ofr, &oad, &oga),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtAllocatorGetByStream(s1, NULL, &oa, &of, &ofr, &oad, &oga),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtAllocatorGetByStream(s1, &od, &oa, &of, &ofr, &oad, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(get_by_stream(dead, &g), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_ERR(get_by_stream(other, &g), ACL_ERROR_RT_STREAM_CONTEXT);

    /* Unregister: then nothing; twice, unknown or NULL streams do nothing. */
    EXPECT_OK(aclrtAllocatorUnregister(s1));
    EXPECT_ERR(get_by_stream(s1, &g), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtAllocatorUnregister(s1));
    EXPECT_OK(aclrtAllocatorUnregister(dead));
    EXPECT_OK(aclrtAllocatorUnregister(&obj1));
    EXPECT_OK(aclrtAllocatorUnregister(NULL));
    EXPECT_OK(get_by_stream(s2, &g));

    /* A destroyed stream's registration is gone with it. */
    EXPECT_OK(aclrtDestroyStream(s2));
    EXPECT_ERR(get_by_stream(s2, &g), ACL_ERROR_RT_INVALID_HANDLE);

    EXPECT_OK(aclrtAllocatorDestroyDesc(d1));
    EXPECT_OK(aclrtAllocatorDestroyDesc(partial));
    EXPECT_OK(aclrtDestroyStream(s1));
    run_in_thread(destroy_stream_on_1, other);
}

/* ---- main ---- */

int main(void)
{
    static const TestCase before[] = { T(test_preinit), T(test_a3_unsupported) };
    static const TestCase pools[] = {
        T(test_create_bad), T(test_attrs), T(test_data), T(test_same_stream_reuse),
        T(test_cross_stream_waits), T(test_cross_stream_no_reuse),
        T(test_cross_stream_opportunistic), T(test_cross_stream_event_dependency),
        T(test_reuse_after_stream_destroyed),
        T(test_trim), T(test_release_threshold),
        T(test_max_size), T(test_async_bad_args), T(test_no_context),
        T(test_destroy_outstanding), T(test_device_reset), T(test_threads_share_pool),
    };
    static const TestCase allocators[] = { T(test_allocator_desc), T(test_allocator_registry) };
    static const TestProgram prog = {
        .name = "test_mempool", .emus = { EMU(&g_emu3, "a3"), EMU(&g_emu, "a2") },
        .suites = { SUITE("children", NULL, NULL, before),
                    SUITE("memory pools", NULL, NULL, pools),
                    SUITE("allocators", NULL, NULL, allocators) },
        .pre_init = 1, .devices = DEV(0), .reset = DEV(0),
    };
    return test_main(&prog);
}
