/*
 * test_vmm.c - integration tests of the virtual-memory chapter (11-04:
 * aclrtMemGetAllocationGranularity, aclrtMallocPhysical / aclrtFreePhysical,
 * aclrtReserveMemAddress[NoUCMemory] / aclrtReleaseMemAddress, aclrtMapMem /
 * aclrtMemMapNoAccess / aclrtUnmapMem, aclrtMemSetAccess / aclrtMemGetAccess,
 * aclrtMemRetainAllocationHandle, aclrtMemGetAllocationPropertiesFromHandle,
 * aclrtMemGetAddressRange) against a real npu-emu.  The shareable-handle
 * functions (export / import / set pid) are not covered here.
 *
 * Two emulators: one with profile a2 (8 devices, 64 GiB HBM each), which this
 * process uses, and one with profile a3, which only a forked child talks to
 * (aclrtReserveMemAddressNoUCMemory is an Atlas A3 function).  Outcomes are
 * checked where they show: bytes that arrive through mappings (checksums),
 * codes (with last error and message, acl_check.h), HBM that leaves and comes
 * back in aclrtGetMemInfo, and what the emulator logs when a client dies.
 *
 * Devices: 0 is this process's (stream g_stream); 1 gives handles of another
 * device (mixing, peer access); 2 is a second peer in one aclrtMemSetAccess.
 */
#define _GNU_SOURCE
#include <CUnit/Basic.h>
#include <glib.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acl/acl.h"
#include "acl_check.h"
#include "harness.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define TiB (1ull << 40)
#define WINDOW_LO (16 * TiB)
#define WINDOW_HI (24 * TiB)
#define SPAN (512 * GiB)
/* An address in the VMM part of device 2's span of the window: valid for
 * expectPtr (in [16T, 24T), 1 GiB aligned) and used by nothing else. */
#define EXPECT_VA (WINDOW_LO + 2 * SPAN + 300 * GiB)
#define NOUC_VA (40 * TiB)

#define VA(x) ((void *)(uintptr_t)(x))
#define U(p) ((uint64_t)(uintptr_t)(p))
#define AT(p, off) ((void *)((uint8_t *)(p) + (off)))

static TestEmu g_emu;       /* a2: this process */
static TestEmu g_emu3;      /* a3: the NoUC child */
static aclrtStream g_stream;

/* ---- helpers ---- */

static bool emu_alive(void)
{
    return emu_running(&g_emu);
}

#define TEST(name) EMU_TEST(name, emu_alive)

static aclrtPhysicalMemProp prop_of(uint32_t dev, aclrtMemAttr attr)
{
    aclrtPhysicalMemProp p;
    memset(&p, 0, sizeof(p));
    p.handleType = ACL_MEM_HANDLE_TYPE_NONE;
    p.allocationType = ACL_MEM_ALLOCATION_TYPE_PINNED;
    p.memAttr = attr;
    p.location.type = ACL_MEM_LOCATION_TYPE_DEVICE;
    p.location.id = dev;
    return p;
}

static aclrtDrvMemHandle phys(size_t size, uint32_t dev, aclrtMemAttr attr)
{
    aclrtPhysicalMemProp p = prop_of(dev, attr);
    aclrtDrvMemHandle h = NULL;
    return EXPECT_OK(aclrtMallocPhysical(&h, size, &p, 0)) ? h : NULL;
}

static void *reserve(size_t size)
{
    void *v = NULL;
    return EXPECT_OK(aclrtReserveMemAddress(&v, size, 0, NULL, 0)) ? v : NULL;
}

static size_t hbm_free(void)
{
    size_t f = 0, t = 0;
    EXPECT_OK(aclrtGetMemInfo(ACL_HBM_MEM, &f, &t));
    return f;
}

static aclrtMemAccessDesc rw_desc(uint32_t dev)
{
    aclrtMemAccessDesc d;
    memset(&d, 0, sizeof(d));
    d.flags = ACL_RT_MEM_ACCESS_FLAGS_READWRITE;
    d.location.type = ACL_MEM_LOCATION_TYPE_DEVICE;
    d.location.id = dev;
    return d;
}

static bool set_rw(void *va, size_t size, uint32_t dev)
{
    aclrtMemAccessDesc d = rw_desc(dev);
    return EXPECT_OK(aclrtMemSetAccess(va, size, &d, 1));
}

/* The access flag of device `dev` on the mapping at va (0xdead if refused). */
static uint64_t access_of(void *va, uint32_t dev)
{
    aclrtMemLocation loc = { .id = dev, .type = ACL_MEM_LOCATION_TYPE_DEVICE };
    uint64_t f = 0xdead;
    EXPECT_OK(aclrtMemGetAccess(va, &loc, &f));
    return f;
}

static uint8_t *pattern(size_t n, uint32_t seed)
{
    uint8_t *b = g_malloc(n);
    fill_pattern(b, n, seed);
    return b;
}

static uint64_t pattern_sum(size_t n, uint32_t seed)
{
    uint8_t *b = pattern(n, seed);
    uint64_t s = checksum(b, n);
    g_free(b);
    return s;
}

/* Synchronous H2D of pattern `seed` to device memory. */
static bool put(void *dev, size_t n, uint32_t seed)
{
    uint8_t *b = pattern(n, seed);
    bool ok = EXPECT_OK(aclrtMemcpy(dev, n, b, n, ACL_MEMCPY_HOST_TO_DEVICE));
    g_free(b);
    return ok;
}

/* Synchronous D2H into a new buffer (0x5c where the copy did not run). */
static uint8_t *get(const void *dev, size_t n)
{
    uint8_t *b = g_malloc(n);
    memset(b, 0x5c, n);
    EXPECT_OK(aclrtMemcpy(b, n, dev, n, ACL_MEMCPY_DEVICE_TO_HOST));
    return b;
}

static uint64_t dev_sum(const void *dev, size_t n)
{
    uint8_t *b = get(dev, n);
    uint64_t s = checksum(b, n);
    g_free(b);
    return s;
}

/* Whether device memory [dev, dev + n) holds bytes [off, off + n) of pattern seed. */
static bool dev_has(const void *dev, size_t n, uint32_t seed, size_t off)
{
    uint8_t *p = pattern(off + n, seed);
    uint8_t *b = get(dev, n);
    bool eq = memcmp(b, p + off, n) == 0;
    g_free(p);
    g_free(b);
    return eq;
}

static bool dev_all(const void *dev, size_t n, uint8_t v)
{
    uint8_t *b = get(dev, n);
    bool ok = all_bytes(b, n, v);
    g_free(b);
    return ok;
}

static pid_t run_child(void (*fn)(void), int want_status, const char *name)
{
    int pid = 0;
    int st = run_checked_child(fn, &pid);
    CHECKF(st == want_status, "child '%s' ended with status %d, not %d", name, st, want_status);
    return pid;
}

static bool free_is(void *arg)
{
    return hbm_free() == *(size_t *)arg;
}

/* ---- the developer guide's sample ---- */

/* 02_memory_management.md, 虚拟内存管理, step by step; the copied bytes are
 * checked (the sample copies whatever is there: a pattern is put first). */
static void sample_flow(uint32_t seed)
{
    size_t before = hbm_free();
    aclrtPhysicalMemProp prop = {};
    prop.handleType = ACL_MEM_HANDLE_TYPE_NONE;
    prop.allocationType = ACL_MEM_ALLOCATION_TYPE_PINNED;
    prop.memAttr = ACL_HBM_MEM_NORMAL;
    prop.location.type = ACL_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = 0;
    size_t granularity = 0UL;
    EXPECT_OK(aclrtMemGetAllocationGranularity(&prop, ACL_RT_MEM_ALLOC_GRANULARITY_MINIMUM,
                                               &granularity));
    CHECKF(granularity == 2 * MiB, "ACL_HBM_MEM_NORMAL granularity %zu", granularity);
    const size_t dataSize = 1024 * sizeof(float);
    size_t alignedSize = ((dataSize + granularity - 1U) / granularity) * granularity;
    CHECK(alignedSize == 2 * MiB);

    aclrtDrvMemHandle handle = NULL;
    if (!EXPECT_OK(aclrtMallocPhysical(&handle, alignedSize, &prop, 0)))
        return;
    CHECKF(hbm_free() == before - alignedSize, "MallocPhysical took %zu bytes of HBM, not %zu",
           before - hbm_free(), alignedSize);
    void *virPtr = NULL;
    EXPECT_OK(aclrtReserveMemAddress(&virPtr, alignedSize, 0, NULL, 0));
    CHECKF(U(virPtr) >= WINDOW_LO && U(virPtr) + alignedSize <= WINDOW_HI &&
               U(virPtr) % (2 * MiB) == 0,
           "reservation at %p", virPtr);
    EXPECT_OK(aclrtMapMem(virPtr, alignedSize, 0, handle, 0));
    aclrtMemAccessDesc accessDesc = {};
    accessDesc.flags = ACL_RT_MEM_ACCESS_FLAGS_READWRITE;
    accessDesc.location.type = ACL_MEM_LOCATION_TYPE_DEVICE;
    accessDesc.location.id = 0;
    EXPECT_OK(aclrtMemSetAccess(virPtr, alignedSize, &accessDesc, 1));

    put(virPtr, alignedSize, seed);
    int *hostPtr = NULL;
    if (EXPECT_OK(aclrtMallocHost((void **)&hostPtr, alignedSize))) {
        memset(hostPtr, 0, alignedSize);
        EXPECT_OK(aclrtMemcpy(hostPtr, alignedSize, virPtr, alignedSize,
                              ACL_MEMCPY_DEVICE_TO_HOST));
        CHECKF(checksum(hostPtr, alignedSize) == pattern_sum(alignedSize, seed),
               "the sample's D2H copy did not deliver the mapped memory's bytes");
        EXPECT_OK(aclrtFreeHost(hostPtr));
    }
    EXPECT_OK(aclrtUnmapMem(virPtr));
    EXPECT_OK(aclrtReleaseMemAddress(virPtr));
    EXPECT_OK(aclrtFreePhysical(handle));
    CHECKF(hbm_free() == before, "after the sample HBM free is %zu, was %zu", hbm_free(),
           before);
}

TEST(test_sample_flow)
{
    sample_flow(1);
}

/* ---- granularity ---- */

TEST(test_granularity)
{
    static const struct {
        aclrtMemAttr attr;
        size_t gran;
    } attrs[] = {
        { ACL_MEM_NORMAL, 2 * MiB },        { ACL_MEM_HUGE, 2 * MiB },
        { ACL_MEM_HUGE1G, GiB },            { ACL_MEM_P2P_NORMAL, 2 * MiB },
        { ACL_MEM_P2P_HUGE, 2 * MiB },      { ACL_MEM_P2P_HUGE1G, GiB },
        { ACL_HBM_MEM_HUGE, 2 * MiB },      { ACL_HBM_MEM_NORMAL, 2 * MiB },
        { ACL_HBM_MEM_HUGE1G, GiB },        { ACL_HBM_MEM_P2P_HUGE, 2 * MiB },
        { ACL_HBM_MEM_P2P_NORMAL, 2 * MiB }, { ACL_HBM_MEM_P2P_HUGE1G, GiB },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(attrs); i++) {
        for (int o = 0; o < 2; o++) {
            aclrtMemGranularityOptions opt = o ? ACL_RT_MEM_ALLOC_GRANULARITY_RECOMMENDED
                                               : ACL_RT_MEM_ALLOC_GRANULARITY_MINIMUM;
            aclrtPhysicalMemProp p = prop_of(o ? 3 : 0, attrs[i].attr);
            size_t g = 0;
            EXPECT_OK(aclrtMemGetAllocationGranularity(&p, opt, &g));
            CHECKF(g == attrs[i].gran, "memAttr %d option %d: granularity %zu, expected %zu",
                   (int)attrs[i].attr, (int)opt, g, attrs[i].gran);
        }
    }
    aclrtPhysicalMemProp p = prop_of(0, ACL_MEM_HUGE);
    size_t g = 7;
    EXPECT_ERR(aclrtMemGetAllocationGranularity(&p, ACL_RT_MEM_ALLOC_GRANULARITY_UNDEF, &g),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemGetAllocationGranularity(&p, (aclrtMemGranularityOptions)2, &g),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemGetAllocationGranularity(NULL, ACL_RT_MEM_ALLOC_GRANULARITY_MINIMUM, &g),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemGetAllocationGranularity(&p, ACL_RT_MEM_ALLOC_GRANULARITY_MINIMUM, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    CHECK(g == 7);

    aclrtPhysicalMemProp bad = p;
    bad.handleType = ACL_MEM_HANDLE_TYPE_POSIX;
    EXPECT_ERR(aclrtMemGetAllocationGranularity(&bad, ACL_RT_MEM_ALLOC_GRANULARITY_MINIMUM, &g),
               ACL_ERROR_RT_PARAM_INVALID);
    bad = p;
    bad.allocationType = (aclrtMemAllocationType)1;
    EXPECT_ERR(aclrtMemGetAllocationGranularity(&bad, ACL_RT_MEM_ALLOC_GRANULARITY_MINIMUM, &g),
               ACL_ERROR_RT_PARAM_INVALID);
    static const aclrtMemLocationType bad_types[] = {
        ACL_MEM_LOCATION_TYPE_UNREGISTERED, ACL_MEM_LOCATION_TYPE_MANAGED,
        (aclrtMemLocationType)9,
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad_types); i++) {
        bad = p;
        bad.location.type = bad_types[i];
        EXPECT_ERR(aclrtMemGetAllocationGranularity(&bad, ACL_RT_MEM_ALLOC_GRANULARITY_MINIMUM,
                                                    &g),
                   ACL_ERROR_RT_PARAM_INVALID);
    }
    bad = p;
    bad.location.id = 8;
    EXPECT_ERR(aclrtMemGetAllocationGranularity(&bad, ACL_RT_MEM_ALLOC_GRANULARITY_MINIMUM, &g),
               ACL_ERROR_RT_INVALID_DEVICEID);
    /* Host-only attributes, the legacy mixed ones and garbage on a device location. */
    static const aclrtMemAttr not_device[] = {
        ACL_DDR_MEM_HUGE, ACL_DDR_MEM_NORMAL, ACL_DDR_MEM_P2P_HUGE, ACL_DDR_MEM_P2P_NORMAL,
        ACL_DDR_MEM, ACL_HBM_MEM, (aclrtMemAttr)99,
    };
    for (size_t i = 0; i < G_N_ELEMENTS(not_device); i++) {
        bad = p;
        bad.memAttr = not_device[i];
        CHECKF(EXPECT_ERR(aclrtMemGetAllocationGranularity(
                              &bad, ACL_RT_MEM_ALLOC_GRANULARITY_RECOMMENDED, &g),
                          ACL_ERROR_RT_PARAM_INVALID),
               "memAttr %d on a device location", (int)not_device[i]);
    }
    CHECK(g == 7);
}

/* ---- physical memory ---- */

TEST(test_malloc_physical_bad)
{
    aclrtPhysicalMemProp p = prop_of(0, ACL_MEM_HUGE);
    aclrtPhysicalMemProp p1g = prop_of(0, ACL_MEM_HUGE1G);
    aclrtPhysicalMemProp pn = prop_of(0, ACL_MEM_NORMAL);
    aclrtDrvMemHandle h = NULL;
    size_t before = hbm_free();
    EXPECT_ERR(aclrtMallocPhysical(&h, 0, &p, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMallocPhysical(&h, MiB, &p, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMallocPhysical(&h, 3 * MiB, &p, 0), ACL_ERROR_RT_PARAM_INVALID);
    /* The granularity of 4 KiB-page memory is 2 MiB too. */
    EXPECT_ERR(aclrtMallocPhysical(&h, 4 * KiB, &pn, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMallocPhysical(&h, 2 * MiB, &p1g, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMallocPhysical(&h, GiB + 2 * MiB, &p1g, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMallocPhysical(&h, 2 * MiB, &p, 1), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMallocPhysical(&h, 2 * MiB, &p, 1ull << 63), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMallocPhysical(NULL, 2 * MiB, &p, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMallocPhysical(&h, 2 * MiB, NULL, 0), ACL_ERROR_RT_PARAM_INVALID);
    aclrtPhysicalMemProp bad = p;
    bad.location.id = 8;
    EXPECT_ERR(aclrtMallocPhysical(&h, 2 * MiB, &bad, 0), ACL_ERROR_RT_INVALID_DEVICEID);
    bad = p;
    bad.memAttr = ACL_DDR_MEM_HUGE;
    EXPECT_ERR(aclrtMallocPhysical(&h, 2 * MiB, &bad, 0), ACL_ERROR_RT_PARAM_INVALID);
    bad = p;
    bad.handleType = ACL_MEM_HANDLE_TYPE_POSIX;
    EXPECT_ERR(aclrtMallocPhysical(&h, 2 * MiB, &bad, 0), ACL_ERROR_RT_PARAM_INVALID);
    /* 11-04 约束说明: memAttr "当前仅支持如下选项" lists ACL_MEM_*, ACL_HBM_MEM_HUGE,
     * ACL_HBM_MEM_HUGE1G, ACL_HBM_MEM_NORMAL and the DDR ones; the ACL_HBM_MEM_P2P_*
     * attributes are not among them. */
    static const aclrtMemAttr unlisted[] = { ACL_HBM_MEM_P2P_HUGE, ACL_HBM_MEM_P2P_NORMAL,
                                             ACL_HBM_MEM_P2P_HUGE1G };
    for (size_t i = 0; i < G_N_ELEMENTS(unlisted); i++) {
        bad = prop_of(0, unlisted[i]);
        h = NULL;
        size_t sz = unlisted[i] == ACL_HBM_MEM_P2P_HUGE1G ? GiB : 2 * MiB;
        if (!CHECKF(EXPECT_ERR(aclrtMallocPhysical(&h, sz, &bad, 0), ACL_ERROR_RT_PARAM_INVALID),
                    "MallocPhysical with memAttr %d (not in the supported list)",
                    (int)unlisted[i]) &&
            h)
            aclrtFreePhysical(h);
    }
    /* ACL_MEM_P2P_HUGE1G: "Atlas A2 训练系列产品/Atlas A2 推理系列产品不支持该类型". */
    bad = prop_of(0, ACL_MEM_P2P_HUGE1G);
    h = NULL;
    if (!CHECKF(EXPECT_ERR(aclrtMallocPhysical(&h, GiB, &bad, 0),
                           ACL_ERROR_RT_FEATURE_NOT_SUPPORT),
                "ACL_MEM_P2P_HUGE1G on Atlas A2") &&
        h)
        aclrtFreePhysical(h);
    drain_errors();
    /* More than the device has, in one handle. */
    h = NULL;
    EXPECT_ERR(aclrtMallocPhysical(&h, 66 * GiB, &p1g, 0), ACL_ERROR_RT_MEMORY_ALLOCATION);
    EXPECT_ERR(aclrtMallocPhysical(&h, 64 * GiB + 2 * MiB, &p, 0),
               ACL_ERROR_RT_MEMORY_ALLOCATION);
    CHECK(h == NULL);
    CHECKF(hbm_free() == before, "refused allocations changed HBM free: %zu -> %zu", before,
           hbm_free());
}

TEST(test_malloc_physical_accounting)
{
    static const struct {
        aclrtMemAttr attr;
        size_t size;
    } cases[] = {
        { ACL_MEM_HUGE, 4 * MiB },       { ACL_MEM_NORMAL, 2 * MiB },
        { ACL_HBM_MEM_NORMAL, 6 * MiB }, { ACL_MEM_HUGE1G, GiB },
        { ACL_HBM_MEM_HUGE1G, 2 * GiB }, { ACL_MEM_P2P_HUGE, 8 * MiB },
        { ACL_MEM_P2P_NORMAL, 2 * MiB },
    };
    size_t f0 = hbm_free();
    aclrtDrvMemHandle hs[G_N_ELEMENTS(cases)] = { 0 };
    size_t taken = 0;
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        hs[i] = phys(cases[i].size, 0, cases[i].attr);
        taken += hs[i] ? cases[i].size : 0;
        size_t f = hbm_free();
        CHECKF(f0 - f == taken, "after handle %zu (memAttr %d, %zu bytes) free dropped by %zu, "
                                "expected %zu",
               i, (int)cases[i].attr, cases[i].size, f0 - f, taken);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++)
        if (hs[i])
            EXPECT_OK(aclrtFreePhysical(hs[i]));
    CHECKF(hbm_free() == f0, "after the frees HBM free is %zu, was %zu", hbm_free(), f0);
    /* Handles of another device do not count on this one. */
    aclrtDrvMemHandle h1 = phys(64 * MiB, 1, ACL_MEM_HUGE);
    CHECK(hbm_free() == f0);
    if (h1)
        EXPECT_OK(aclrtFreePhysical(h1));
}

TEST(test_malloc_physical_fill_device)
{
    size_t f0 = hbm_free();
    size_t big = f0 / (2 * MiB) * (2 * MiB);
    aclrtDrvMemHandle h = phys(big, 0, ACL_MEM_HUGE), h2 = NULL;
    if (!h)
        return;
    CHECKF(hbm_free() == f0 - big, "free %zu after taking %zu of %zu", hbm_free(), big, f0);
    aclrtPhysicalMemProp p = prop_of(0, ACL_MEM_HUGE);
    EXPECT_ERR(aclrtMallocPhysical(&h2, 2 * MiB, &p, 0), ACL_ERROR_RT_MEMORY_ALLOCATION);
    /* aclrtMalloc finds nothing either. */
    void *d = NULL;
    EXPECT_ERR(aclrtMalloc(&d, 2 * MiB, ACL_MEM_MALLOC_HUGE_ONLY), ACL_ERROR_RT_MEMORY_ALLOCATION);
    /* Another device is not affected. */
    aclrtDrvMemHandle h1 = phys(2 * MiB, 1, ACL_MEM_HUGE);
    if (h1)
        EXPECT_OK(aclrtFreePhysical(h1));
    EXPECT_OK(aclrtFreePhysical(h));
    CHECK(hbm_free() == f0);
    h2 = phys(2 * MiB, 0, ACL_MEM_HUGE);
    if (h2)
        EXPECT_OK(aclrtFreePhysical(h2));
}

/* ---- reservations ---- */

static bool disjoint(uint64_t a, uint64_t an, uint64_t b, uint64_t bn)
{
    return a + an <= b || b + bn <= a;
}

/* Host physical memory (location HOST): its own granularity, mapped for every
 * device, reached by tasks and synchronous copies, no HBM spent. */
TEST(test_host_physical)
{
    aclrtPhysicalMemProp p = prop_of(0, ACL_DDR_MEM_HUGE);
    p.location.type = ACL_MEM_LOCATION_TYPE_HOST;
    size_t g = 0;
    EXPECT_OK(aclrtMemGetAllocationGranularity(&p, ACL_RT_MEM_ALLOC_GRANULARITY_MINIMUM, &g));
    CHECKF(g == 2 * MiB, "host granularity %zu", g);
    aclrtPhysicalMemProp bad = p;
    bad.memAttr = ACL_MEM_HUGE1G;       /* 1 GiB pages are device memory only */
    aclrtDrvMemHandle h = NULL, hn = NULL;
    EXPECT_ERR(aclrtMallocPhysical(&h, GiB, &bad, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMallocPhysical(&h, MiB, &p, 0), ACL_ERROR_RT_PARAM_INVALID);
    size_t before = hbm_free();
    if (!EXPECT_OK(aclrtMallocPhysical(&h, 4 * MiB, &p, 0)))
        return;
    aclrtPhysicalMemProp pn = p;
    pn.memAttr = ACL_DDR_MEM_NORMAL;
    EXPECT_OK(aclrtMallocPhysical(&hn, 2 * MiB, &pn, 0));
    CHECKF(hbm_free() == before, "host memory took %zd bytes of HBM",
           (ssize_t)(before - hbm_free()));
    aclrtPhysicalMemProp got;
    EXPECT_OK(aclrtMemGetAllocationPropertiesFromHandle(h, &got));
    CHECK(got.location.type == ACL_MEM_LOCATION_TYPE_HOST && got.memAttr == ACL_DDR_MEM_HUGE);

    void *r = NULL;
    EXPECT_OK(aclrtReserveMemAddress(&r, 8 * MiB, 0, NULL, 0));
    EXPECT_OK(aclrtMapMem(r, 4 * MiB, 0, h, 0));
    EXPECT_OK(aclrtMapMem(AT(r, 4 * MiB), 2 * MiB, 0, hn, 0));
    /* A device handle cannot join a reservation holding host memory. */
    aclrtPhysicalMemProp pd = prop_of(0, ACL_MEM_HUGE);
    aclrtDrvMemHandle hd = NULL;
    EXPECT_OK(aclrtMallocPhysical(&hd, 2 * MiB, &pd, 0));
    EXPECT_ERR(aclrtMapMem(AT(r, 6 * MiB), 2 * MiB, 0, hd, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtFreePhysical(hd));

    aclrtPtrAttributes at;
    EXPECT_OK(aclrtPointerGetAttributes(AT(r, 100), &at));
    CHECKF(at.location.type == ACL_MEM_LOCATION_TYPE_HOST, "location type %d",
           (int)at.location.type);
    /* Sync H2D over both mappings, device tasks on devices 0 and 1 read it. */
    put(r, 6 * MiB, 41);
    void *d0 = NULL;
    EXPECT_OK(aclrtMalloc(&d0, 6 * MiB, ACL_MEM_MALLOC_HUGE_ONLY));
    EXPECT_OK(aclrtMemcpyAsync(d0, 6 * MiB, r, 6 * MiB, ACL_MEMCPY_DEVICE_TO_DEVICE, g_stream));
    EXPECT_OK(aclrtSynchronizeStream(g_stream));
    CHECK(dev_sum(d0, 6 * MiB) == pattern_sum(6 * MiB, 41));
    CHECK(access_of(r, 0) == ACL_RT_MEM_ACCESS_FLAGS_READWRITE);
    CHECK(access_of(r, 1) == ACL_RT_MEM_ACCESS_FLAGS_READWRITE);
    /* A task writes it; the host reads it back through the same VA. */
    EXPECT_OK(aclrtMemsetAsync(AT(r, MiB), MiB, 0x6b, MiB, g_stream));
    EXPECT_OK(aclrtSynchronizeStream(g_stream));
    CHECK(dev_all(AT(r, MiB), MiB, 0x6b));
    EXPECT_OK(aclrtFree(d0));
    EXPECT_OK(aclrtUnmapMem(r));
    EXPECT_OK(aclrtUnmapMem(AT(r, 4 * MiB)));
    EXPECT_OK(aclrtFreePhysical(h));
    EXPECT_OK(aclrtFreePhysical(hn));
    EXPECT_OK(aclrtReleaseMemAddress(r));
}

TEST(test_reserve)
{
    void *v = VA(0x1234);
    EXPECT_ERR(aclrtReserveMemAddress(&v, 0, 0, NULL, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReserveMemAddress(&v, 2 * MiB, 4096, NULL, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReserveMemAddress(&v, 2 * MiB, 2 * MiB, NULL, 0),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReserveMemAddress(&v, 2 * MiB, 0, NULL, 2), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReserveMemAddress(&v, 2 * MiB, 0, NULL, ~0ull), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReserveMemAddress(NULL, 2 * MiB, 0, NULL, 0), ACL_ERROR_RT_PARAM_INVALID);
    /* expectPtr outside [16T, 24T), or reaching past 24T. */
    static const uint64_t outside[] = { 8 * TiB, WINDOW_LO - 2 * MiB, WINDOW_HI, 40 * TiB,
                                        0x7f0000000000ull };
    for (size_t i = 0; i < G_N_ELEMENTS(outside); i++)
        CHECKF(EXPECT_ERR(aclrtReserveMemAddress(&v, 2 * MiB, 0, VA(outside[i]), 0),
                          ACL_ERROR_RT_PARAM_INVALID),
               "expectPtr 0x%llx", (unsigned long long)outside[i]);
    EXPECT_ERR(aclrtReserveMemAddress(&v, 4 * MiB, 0, VA(WINDOW_HI - 2 * MiB), 0),
               ACL_ERROR_RT_PARAM_INVALID);
    /* Misaligned: not even 2 MiB; a 2 GiB range 1 GiB + 2 MiB into the GiB. */
    EXPECT_ERR(aclrtReserveMemAddress(&v, 2 * MiB, 0, VA(EXPECT_VA + 4 * KiB), 0),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReserveMemAddress(&v, 2 * GiB, 0, VA(EXPECT_VA + 2 * MiB), 0),
               ACL_ERROR_RT_PARAM_INVALID);
    CHECK(v == VA(0x1234));

    /* Honoured when valid; then taken. */
    if (EXPECT_OK(aclrtReserveMemAddress(&v, 4 * MiB, 0, VA(EXPECT_VA), 0))) {
        CHECKF(v == VA(EXPECT_VA), "expectPtr 0x%llx gave %p", (unsigned long long)EXPECT_VA,
               v);
        void *w = NULL;
        EXPECT_ERR(aclrtReserveMemAddress(&w, 4 * MiB, 0, VA(EXPECT_VA), 0),
                   ACL_ERROR_RT_PARAM_INVALID);
        EXPECT_ERR(aclrtReserveMemAddress(&w, 2 * MiB, 0, VA(EXPECT_VA + 2 * MiB), 0),
                   ACL_ERROR_RT_PARAM_INVALID);
        /* Right behind it is free. */
        if (EXPECT_OK(aclrtReserveMemAddress(&w, 2 * MiB, 0, VA(EXPECT_VA + 4 * MiB), 0))) {
            CHECK(w == VA(EXPECT_VA + 4 * MiB));
            EXPECT_OK(aclrtReleaseMemAddress(w));
        }
        /* The range can be mapped and used like any other. */
        aclrtDrvMemHandle h = phys(4 * MiB, 0, ACL_MEM_HUGE);
        if (h && EXPECT_OK(aclrtMapMem(v, 4 * MiB, 0, h, 0))) {
            put(v, 4 * MiB, 3);
            CHECK(dev_sum(v, 4 * MiB) == pattern_sum(4 * MiB, 3));
            EXPECT_OK(aclrtUnmapMem(v));
        }
        if (h)
            EXPECT_OK(aclrtFreePhysical(h));
        EXPECT_OK(aclrtReleaseMemAddress(v));
        /* Released: the same expectPtr works again. */
        if (EXPECT_OK(aclrtReserveMemAddress(&v, 4 * MiB, 0, VA(EXPECT_VA), 0))) {
            CHECK(v == VA(EXPECT_VA));
            EXPECT_OK(aclrtReleaseMemAddress(v));
        }
    }

    /* Automatic placement: inside the window, aligned, never overlapping each
     * other, an expectPtr reservation or aclrtMalloc memory; flags 1 is taken. */
    static const size_t sizes[] = { 2 * MiB, 1,         6 * MiB, 64 * MiB, GiB + 2 * MiB,
                                    4 * MiB, 3 * GiB,   2 * MiB, 30 * MiB, 2 * MiB };
    void *rs[G_N_ELEMENTS(sizes)] = { 0 };
    void *fixed = NULL, *m = NULL;
    EXPECT_OK(aclrtReserveMemAddress(&fixed, 8 * MiB, 0, VA(EXPECT_VA), 1));
    EXPECT_OK(aclrtMalloc(&m, 64 * MiB, ACL_MEM_MALLOC_HUGE_FIRST));
    for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++) {
        if (!EXPECT_OK(aclrtReserveMemAddress(&rs[i], sizes[i], 0, NULL, i % 2)))
            continue;
        uint64_t a = U(rs[i]);
        CHECKF(a >= WINDOW_LO && a + sizes[i] <= WINDOW_HI, "reservation %zu at %p", i, rs[i]);
        CHECKF(a % (2 * MiB) == 0, "reservation %zu at %p is not 2 MiB aligned", i, rs[i]);
        if (sizes[i] > GiB)
            CHECKF(a % GiB == 0, "reservation %zu of %zu bytes at %p is not 1 GiB aligned", i,
                   sizes[i], rs[i]);
        CHECKF(disjoint(a, sizes[i], EXPECT_VA, 8 * MiB), "reservation %zu overlaps expectPtr's",
               i);
        CHECKF(disjoint(a, sizes[i], U(m), 64 * MiB), "reservation %zu overlaps aclrtMalloc "
                                                     "memory", i);
        for (size_t j = 0; j < i; j++)
            if (rs[j])
                CHECKF(disjoint(a, sizes[i], U(rs[j]), sizes[j]),
                       "reservations %zu (%p +%zu) and %zu (%p +%zu) overlap", j, rs[j],
                       sizes[j], i, rs[i], sizes[i]);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++)
        if (rs[i])
            EXPECT_OK(aclrtReleaseMemAddress(rs[i]));
    if (fixed)
        EXPECT_OK(aclrtReleaseMemAddress(fixed));
    if (m)
        EXPECT_OK(aclrtFree(m));
}

/* aclrtReserveMemAddressNoUCMemory: 产品支持情况 lists Atlas A2 as 不支持. */
TEST(test_reserve_nouc_a2)
{
    void *v = NULL;
    aclError e = aclrtReserveMemAddressNoUCMemory(&v, GiB, 0, VA(NOUC_VA), 0);
    CHECKF(EXPECT_ERR(e, ACL_ERROR_RT_FEATURE_NOT_SUPPORT),
           "aclrtReserveMemAddressNoUCMemory on Atlas A2 (profile a2) returned %d", e);
    if (e == ACL_SUCCESS)
        aclrtReleaseMemAddress(v);
    drain_errors();
}

static void child_nouc_a3(void)
{
    setenv("NPU_EMU_SOCKET", g_emu3.sock, 1);
    if (!EXPECT_OK(aclInit(NULL)) || !EXPECT_OK(aclrtSetDevice(0)))
        return;
    void *v = VA(0x1234);
    EXPECT_ERR(aclrtReserveMemAddressNoUCMemory(&v, 0, 0, VA(NOUC_VA), 0),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReserveMemAddressNoUCMemory(&v, 2 * MiB, 0, VA(NOUC_VA), 0),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReserveMemAddressNoUCMemory(&v, GiB + 2 * MiB, 0, VA(NOUC_VA), 0),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReserveMemAddressNoUCMemory(&v, GiB, GiB, VA(NOUC_VA), 0),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReserveMemAddressNoUCMemory(&v, GiB, 0, VA(NOUC_VA), 2),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReserveMemAddressNoUCMemory(NULL, GiB, 0, VA(NOUC_VA), 0),
               ACL_ERROR_RT_PARAM_INVALID);
    /* No automatic placement; only [40T, 224T). */
    EXPECT_ERR(aclrtReserveMemAddressNoUCMemory(&v, GiB, 0, NULL, 0), ACL_ERROR_RT_PARAM_INVALID);
    static const uint64_t outside[] = { WINDOW_LO + 2 * SPAN + 300 * GiB, 39 * TiB, 224 * TiB,
                                        224 * TiB - GiB / 2 };
    for (size_t i = 0; i < G_N_ELEMENTS(outside); i++)
        CHECKF(EXPECT_ERR(aclrtReserveMemAddressNoUCMemory(&v, GiB, 0, VA(outside[i]), 0),
                          ACL_ERROR_RT_PARAM_INVALID),
               "NoUC expectPtr 0x%llx", (unsigned long long)outside[i]);
    EXPECT_ERR(aclrtReserveMemAddressNoUCMemory(&v, 2 * GiB, 0, VA(224 * TiB - GiB), 0),
               ACL_ERROR_RT_PARAM_INVALID);
    CHECK(v == VA(0x1234));

    /* Valid, below and above the end of host addresses (128T). */
    static const uint64_t at[] = { NOUC_VA, 200 * TiB };
    for (size_t i = 0; i < G_N_ELEMENTS(at); i++) {
        v = NULL;
        if (!CHECKF(EXPECT_OK(aclrtReserveMemAddressNoUCMemory(&v, 2 * GiB, 0, VA(at[i]), 0)),
                    "NoUC reservation of 2 GiB at 0x%llx", (unsigned long long)at[i]))
            continue;
        CHECKF(v == VA(at[i]), "NoUC expectPtr 0x%llx gave %p", (unsigned long long)at[i], v);
        void *w = NULL;
        EXPECT_ERR(aclrtReserveMemAddressNoUCMemory(&w, GiB, 0, VA(at[i] + GiB), 0),
                   ACL_ERROR_RT_PARAM_INVALID);
        /* Mapped memory in it carries data like any other. */
        aclrtDrvMemHandle h = phys(4 * MiB, 0, ACL_MEM_HUGE);
        if (h && EXPECT_OK(aclrtMapMem(AT(v, GiB), 4 * MiB, 0, h, 0))) {
            put(AT(v, GiB), 4 * MiB, 60 + (uint32_t)i);
            void *d = NULL;
            if (EXPECT_OK(aclrtMalloc(&d, 4 * MiB, ACL_MEM_MALLOC_HUGE_FIRST))) {
                EXPECT_OK(aclrtMemcpyAsync(d, 4 * MiB, AT(v, GiB), 4 * MiB,
                                           ACL_MEMCPY_DEVICE_TO_DEVICE, NULL));
                EXPECT_OK(aclrtSynchronizeStream(NULL));
                CHECK(dev_sum(d, 4 * MiB) == pattern_sum(4 * MiB, 60 + (uint32_t)i));
                EXPECT_OK(aclrtFree(d));
            }
            EXPECT_ERR(aclrtReleaseMemAddress(v), ACL_ERROR_RT_PARAM_INVALID);
            EXPECT_OK(aclrtUnmapMem(AT(v, GiB)));
        }
        if (h)
            EXPECT_OK(aclrtFreePhysical(h));
        EXPECT_OK(aclrtReleaseMemAddress(v));
        EXPECT_ERR(aclrtReleaseMemAddress(v), ACL_ERROR_RT_PARAM_INVALID);
    }
    EXPECT_OK(aclFinalize());
}

TEST(test_reserve_nouc_a3)
{
    run_child(child_nouc_a3, 0, "NoUC reservations on a3");
}

TEST(test_release)
{
    void *r = reserve(8 * MiB);
    aclrtDrvMemHandle h = phys(2 * MiB, 0, ACL_MEM_HUGE);
    if (!r || !h)
        return;
    EXPECT_OK(aclrtMapMem(AT(r, 2 * MiB), 2 * MiB, 0, h, 0));
    EXPECT_ERR(aclrtReleaseMemAddress(AT(r, 2 * MiB)), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReleaseMemAddress(AT(r, 4 * KiB)), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReleaseMemAddress(r), ACL_ERROR_RT_PARAM_INVALID);
    /* The refusal changed nothing: the mapping still works. */
    put(AT(r, 2 * MiB), 2 * MiB, 5);
    CHECK(dev_sum(AT(r, 2 * MiB), 2 * MiB) == pattern_sum(2 * MiB, 5));
    EXPECT_OK(aclrtUnmapMem(AT(r, 2 * MiB)));
    EXPECT_OK(aclrtReleaseMemAddress(r));
    EXPECT_ERR(aclrtReleaseMemAddress(r), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReleaseMemAddress(NULL), ACL_ERROR_RT_PARAM_INVALID);
    int local;
    EXPECT_ERR(aclrtReleaseMemAddress(&local), ACL_ERROR_RT_PARAM_INVALID);
    /* aclrtMalloc memory is not a reservation. */
    void *d = NULL;
    if (EXPECT_OK(aclrtMalloc(&d, 2 * MiB, ACL_MEM_MALLOC_HUGE_FIRST))) {
        EXPECT_ERR(aclrtReleaseMemAddress(d), ACL_ERROR_RT_PARAM_INVALID);
        EXPECT_OK(aclrtFree(d));
    }
    /* Released: mapping into it is refused. */
    EXPECT_ERR(aclrtMapMem(r, 2 * MiB, 0, h, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtFreePhysical(h));
}

/* ---- mappings ---- */

typedef aclError (*MapFn)(void *, size_t, size_t, aclrtDrvMemHandle, uint64_t);

static void map_rules(MapFn map, const char *name)
{
    void *r = reserve(16 * MiB);
    aclrtDrvMemHandle h2 = phys(2 * MiB, 0, ACL_MEM_HUGE);
    aclrtDrvMemHandle h4 = phys(4 * MiB, 0, ACL_MEM_HUGE);
    aclrtDrvMemHandle h4b = phys(4 * MiB, 0, ACL_MEM_NORMAL);
    aclrtDrvMemHandle h2b = phys(2 * MiB, 0, ACL_MEM_NORMAL);
    if (!r || !h2 || !h4 || !h4b || !h2b)
        return;
    CHECKF(EXPECT_ERR(map(r, 4 * MiB, 0, h2, 0), ACL_ERROR_RT_PARAM_INVALID), "%s", name);
    CHECKF(EXPECT_ERR(map(r, 2 * MiB, 0, h4, 0), ACL_ERROR_RT_PARAM_INVALID), "%s", name);
    CHECKF(EXPECT_ERR(map(r, 0, 0, h2, 0), ACL_ERROR_RT_PARAM_INVALID), "%s", name);
    CHECKF(EXPECT_ERR(map(r, 2 * MiB, 2 * MiB, h4, 0), ACL_ERROR_RT_PARAM_INVALID), "%s", name);
    CHECKF(EXPECT_ERR(map(r, 2 * MiB, 4096, h2, 0), ACL_ERROR_RT_PARAM_INVALID), "%s", name);
    CHECKF(EXPECT_ERR(map(r, 2 * MiB, 0, h2, 1), ACL_ERROR_RT_PARAM_INVALID), "%s", name);
    /* Outside any reservation: NULL, unreserved window, aclrtMalloc memory, host. */
    CHECKF(EXPECT_ERR(map(NULL, 2 * MiB, 0, h2, 0), ACL_ERROR_RT_PARAM_INVALID), "%s", name);
    CHECKF(EXPECT_ERR(map(VA(WINDOW_LO + 5 * SPAN + 400 * GiB), 2 * MiB, 0, h2, 0),
                      ACL_ERROR_RT_PARAM_INVALID),
           "%s", name);
    void *d = NULL;
    if (EXPECT_OK(aclrtMalloc(&d, 4 * MiB, ACL_MEM_MALLOC_HUGE_ONLY))) {
        CHECKF(EXPECT_ERR(map(d, 2 * MiB, 0, h2, 0), ACL_ERROR_RT_PARAM_INVALID), "%s", name);
        EXPECT_OK(aclrtFree(d));
    }
    void *host = g_malloc(4 * MiB);
    CHECKF(EXPECT_ERR(map(host, 2 * MiB, 0, h2, 0), ACL_ERROR_RT_PARAM_INVALID), "%s", name);
    g_free(host);
    /* Not 2 MiB aligned (4 KiB pages or not). */
    CHECKF(EXPECT_ERR(map(AT(r, 4 * KiB), 2 * MiB, 0, h2b, 0), ACL_ERROR_RT_PARAM_INVALID),
           "%s", name);
    CHECKF(EXPECT_ERR(map(AT(r, MiB), 2 * MiB, 0, h2, 0), ACL_ERROR_RT_PARAM_INVALID), "%s",
           name);
    /* Past the reservation's end. */
    CHECKF(EXPECT_ERR(map(AT(r, 14 * MiB), 4 * MiB, 0, h4, 0), ACL_ERROR_RT_PARAM_INVALID),
           "%s", name);
    CHECKF(EXPECT_ERR(map(AT(r, 16 * MiB), 2 * MiB, 0, h2, 0), ACL_ERROR_RT_PARAM_INVALID),
           "%s", name);
    /* Over a mapping: [4M, 8M) taken; the same range, inside, across each end. */
    if (CHECKF(EXPECT_OK(map(AT(r, 4 * MiB), 4 * MiB, 0, h4, 0)), "%s", name)) {
        CHECKF(EXPECT_ERR(map(AT(r, 4 * MiB), 4 * MiB, 0, h4b, 0), ACL_ERROR_RT_PARAM_INVALID),
               "%s full overlap", name);
        CHECKF(EXPECT_ERR(map(AT(r, 4 * MiB), 2 * MiB, 0, h2, 0), ACL_ERROR_RT_PARAM_INVALID),
               "%s overlap at the start", name);
        CHECKF(EXPECT_ERR(map(AT(r, 6 * MiB), 2 * MiB, 0, h2, 0), ACL_ERROR_RT_PARAM_INVALID),
               "%s overlap inside", name);
        CHECKF(EXPECT_ERR(map(AT(r, 2 * MiB), 4 * MiB, 0, h4b, 0), ACL_ERROR_RT_PARAM_INVALID),
               "%s partial overlap from below", name);
        CHECKF(EXPECT_ERR(map(AT(r, 6 * MiB), 4 * MiB, 0, h4b, 0), ACL_ERROR_RT_PARAM_INVALID),
               "%s partial overlap from above", name);
        /* Right next to it on both sides is fine. */
        CHECKF(EXPECT_OK(map(AT(r, 2 * MiB), 2 * MiB, 0, h2, 0)), "%s", name);
        CHECKF(EXPECT_OK(map(AT(r, 8 * MiB), 4 * MiB, 0, h4b, 0)), "%s", name);
        EXPECT_OK(aclrtUnmapMem(AT(r, 2 * MiB)));
        EXPECT_OK(aclrtUnmapMem(AT(r, 8 * MiB)));
        EXPECT_ERR(aclrtUnmapMem(AT(r, 5 * MiB)), ACL_ERROR_RT_PARAM_INVALID);
        EXPECT_OK(aclrtUnmapMem(AT(r, 4 * MiB)));
        EXPECT_ERR(aclrtUnmapMem(AT(r, 4 * MiB)), ACL_ERROR_RT_PARAM_INVALID);
    }
    EXPECT_ERR(aclrtUnmapMem(NULL), ACL_ERROR_RT_PARAM_INVALID);
    /* Freed and garbage handles. */
    EXPECT_OK(aclrtFreePhysical(h2));
    CHECKF(EXPECT_ERR(map(r, 2 * MiB, 0, h2, 0), ACL_ERROR_RT_PARAM_INVALID), "%s freed", name);
    CHECKF(EXPECT_ERR(map(r, 2 * MiB, 0, NULL, 0), ACL_ERROR_RT_PARAM_INVALID), "%s", name);
    CHECKF(EXPECT_ERR(map(r, 2 * MiB, 0, (aclrtDrvMemHandle)(uintptr_t)0x1234, 0),
                      ACL_ERROR_RT_PARAM_INVALID),
           "%s", name);
    uint64_t junk[8];
    memset(junk, 0xa5, sizeof(junk));
    CHECKF(EXPECT_ERR(map(r, 2 * MiB, 0, (aclrtDrvMemHandle)junk, 0), ACL_ERROR_RT_PARAM_INVALID),
           "%s", name);
    EXPECT_OK(aclrtFreePhysical(h4));
    EXPECT_OK(aclrtFreePhysical(h4b));
    EXPECT_OK(aclrtFreePhysical(h2b));
    EXPECT_OK(aclrtReleaseMemAddress(r));
}

TEST(test_map_rules)
{
    map_rules(aclrtMapMem, "aclrtMapMem");
}

TEST(test_map_no_access_rules)
{
    map_rules(aclrtMemMapNoAccess, "aclrtMemMapNoAccess");
}

TEST(test_map_mixed_devices)
{
    void *r = reserve(8 * MiB);
    aclrtDrvMemHandle h0 = phys(2 * MiB, 0, ACL_MEM_HUGE);
    aclrtDrvMemHandle h1 = phys(2 * MiB, 1, ACL_MEM_HUGE);
    aclrtDrvMemHandle h1b = phys(2 * MiB, 1, ACL_MEM_NORMAL);
    if (!r || !h0 || !h1 || !h1b)
        return;
    EXPECT_OK(aclrtMapMem(r, 2 * MiB, 0, h0, 0));
    EXPECT_ERR(aclrtMapMem(AT(r, 2 * MiB), 2 * MiB, 0, h1, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemMapNoAccess(AT(r, 6 * MiB), 2 * MiB, 0, h1, 0),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtUnmapMem(r));
    /* Empty again: device 1 may have it, and then device 0 may not. */
    EXPECT_OK(aclrtMapMem(AT(r, 2 * MiB), 2 * MiB, 0, h1, 0));
    EXPECT_OK(aclrtMemMapNoAccess(AT(r, 6 * MiB), 2 * MiB, 0, h1b, 0));
    EXPECT_ERR(aclrtMapMem(r, 2 * MiB, 0, h0, 0), ACL_ERROR_RT_PARAM_INVALID);
    /* Data through device 1's memory. */
    put(AT(r, 2 * MiB), 2 * MiB, 7);
    CHECK(dev_sum(AT(r, 2 * MiB), 2 * MiB) == pattern_sum(2 * MiB, 7));
    aclrtPtrAttributes a;
    memset(&a, 0xff, sizeof(a));
    EXPECT_OK(aclrtPointerGetAttributes(AT(r, 3 * MiB), &a));
    CHECK(a.location.type == ACL_MEM_LOCATION_TYPE_DEVICE && a.location.id == 1);
    EXPECT_OK(aclrtUnmapMem(AT(r, 2 * MiB)));
    EXPECT_ERR(aclrtMapMem(r, 2 * MiB, 0, h0, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtUnmapMem(AT(r, 6 * MiB)));
    EXPECT_OK(aclrtMapMem(r, 2 * MiB, 0, h0, 0));
    EXPECT_OK(aclrtUnmapMem(r));
    EXPECT_OK(aclrtFreePhysical(h0));
    EXPECT_OK(aclrtFreePhysical(h1));
    EXPECT_OK(aclrtFreePhysical(h1b));
    EXPECT_OK(aclrtReleaseMemAddress(r));
}

/* A physical handle of the parent, as the pointer value the child inherited. */
static aclrtDrvMemHandle g_parent_handle;

static void child_foreign_handle(void)
{
    if (!EXPECT_OK(aclInit(NULL)) || !EXPECT_OK(aclrtSetDevice(0)))
        return;
    void *r = reserve(4 * MiB);
    aclrtPhysicalMemProp p;
    if (r) {
        EXPECT_ERR(aclrtMapMem(r, 2 * MiB, 0, g_parent_handle, 0), ACL_ERROR_RT_PARAM_INVALID);
        EXPECT_ERR(aclrtMemMapNoAccess(r, 2 * MiB, 0, g_parent_handle, 0),
                   ACL_ERROR_RT_PARAM_INVALID);
        EXPECT_OK(aclrtReleaseMemAddress(r));
    }
    EXPECT_ERR(aclrtMemGetAllocationPropertiesFromHandle(g_parent_handle, &p),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtFreePhysical(g_parent_handle), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclFinalize());
}

TEST(test_map_foreign_handle)
{
    g_parent_handle = phys(2 * MiB, 0, ACL_MEM_HUGE);
    void *r = reserve(2 * MiB);
    if (!g_parent_handle || !r)
        return;
    EXPECT_OK(aclrtMapMem(r, 2 * MiB, 0, g_parent_handle, 0));
    put(r, 2 * MiB, 9);
    run_child(child_foreign_handle, 0, "maps the parent's handle");
    /* The parent's handle and mapping are untouched. */
    CHECK(dev_sum(r, 2 * MiB) == pattern_sum(2 * MiB, 9));
    EXPECT_OK(aclrtUnmapMem(r));
    EXPECT_OK(aclrtFreePhysical(g_parent_handle));
    EXPECT_OK(aclrtReleaseMemAddress(r));
}

/* ---- data ---- */

/* One reservation R of 16 MiB: A [0, 2M) 4 KiB pages, B [2M, 6M) 2 MiB pages,
 * C [6M, 8M) 4 KiB pages, a hole [8M, 10M), D [10M, 12M) 2 MiB pages. */
typedef struct Layout {
    void *r;
    aclrtDrvMemHandle h[4];
} Layout;

static bool layout_make(Layout *l)
{
    static const struct {
        size_t off, size;
        aclrtMemAttr attr;
    } parts[] = {
        { 0, 2 * MiB, ACL_MEM_NORMAL },
        { 2 * MiB, 4 * MiB, ACL_MEM_HUGE },
        { 6 * MiB, 2 * MiB, ACL_MEM_NORMAL },
        { 10 * MiB, 2 * MiB, ACL_MEM_HUGE },
    };
    memset(l, 0, sizeof(*l));
    if (!(l->r = reserve(16 * MiB)))
        return false;
    for (int i = 0; i < 4; i++) {
        l->h[i] = phys(parts[i].size, 0, parts[i].attr);
        if (!l->h[i] || !EXPECT_OK(aclrtMapMem(AT(l->r, parts[i].off), parts[i].size, 0,
                                                l->h[i], 0)))
            return false;
    }
    return true;
}

static void layout_free(Layout *l)
{
    static const size_t offs[] = { 0, 2 * MiB, 6 * MiB, 10 * MiB };
    for (int i = 0; i < 4; i++) {
        if (l->h[i]) {
            aclrtUnmapMem(AT(l->r, offs[i]));
            EXPECT_OK(aclrtFreePhysical(l->h[i]));
        }
    }
    drain_errors();
    if (l->r)
        EXPECT_OK(aclrtReleaseMemAddress(l->r));
}

TEST(test_data_sync_across_mappings)
{
    Layout l;
    if (!layout_make(&l)) {
        layout_free(&l);
        return;
    }
    void *r = l.r;
    /* One synchronous copy over A, B and C, read back whole and in pieces. */
    put(r, 8 * MiB, 11);
    CHECK(dev_sum(r, 8 * MiB) == pattern_sum(8 * MiB, 11));
    CHECK(dev_has(AT(r, 2 * MiB), 4 * MiB, 11, 2 * MiB));
    CHECK(dev_has(AT(r, 6 * MiB - 100), 200, 11, 6 * MiB - 100));
    /* Sync memset across B / C. */
    EXPECT_OK(aclrtMemset(AT(r, 5 * MiB), 2 * MiB, 0x3c, 2 * MiB));
    CHECK(dev_all(AT(r, 5 * MiB), 2 * MiB, 0x3c));
    CHECK(dev_has(r, 5 * MiB, 11, 0));
    CHECK(dev_has(AT(r, 7 * MiB), MiB, 11, 7 * MiB));

    /* Over the unmapped hole: refused, nothing moves. */
    put(AT(r, 10 * MiB), 2 * MiB, 12);
    uint8_t *buf = g_malloc(4 * MiB);
    memset(buf, 0x77, 4 * MiB);
    EXPECT_ERR(aclrtMemcpy(buf, 4 * MiB, AT(r, 7 * MiB), 2 * MiB, ACL_MEMCPY_DEVICE_TO_HOST),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy(buf, 4 * MiB, AT(r, 8 * MiB), 4096, ACL_MEMCPY_DEVICE_TO_HOST),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy(buf, 4 * MiB, AT(r, 9 * MiB), 2 * MiB, ACL_MEMCPY_DEVICE_TO_HOST),
               ACL_ERROR_RT_PARAM_INVALID);
    CHECK(all_bytes(buf, 4 * MiB, 0x77));
    EXPECT_ERR(aclrtMemcpy(AT(r, 7 * MiB), 2 * MiB, buf, 2 * MiB, ACL_MEMCPY_HOST_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy(AT(r, 9 * MiB), 2 * MiB, buf, 2 * MiB, ACL_MEMCPY_HOST_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy(AT(r, 10 * MiB), 2 * MiB, AT(r, 7 * MiB), 2 * MiB,
                           ACL_MEMCPY_DEVICE_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemset(AT(r, 7 * MiB), 2 * MiB, 0, 2 * MiB), ACL_ERROR_RT_PARAM_INVALID);
    /* Past the last mapping and past the reservation. */
    EXPECT_ERR(aclrtMemcpy(buf, 4 * MiB, AT(r, 11 * MiB), 2 * MiB, ACL_MEMCPY_DEVICE_TO_HOST),
               ACL_ERROR_RT_PARAM_INVALID);
    CHECK(all_bytes(buf, 4 * MiB, 0x77));
    CHECK(dev_has(AT(r, 7 * MiB), MiB, 11, 7 * MiB));
    CHECK(dev_sum(AT(r, 10 * MiB), 2 * MiB) == pattern_sum(2 * MiB, 12));
    g_free(buf);
    layout_free(&l);
}

TEST(test_data_async_mixed_pages)
{
    Layout l;
    if (!layout_make(&l)) {
        layout_free(&l);
        return;
    }
    void *r = l.r;
    /* Second reservation with the page sizes the other way round: E [0, 4M)
     * huge, F [4M, 8M) normal. */
    void *r2 = reserve(8 * MiB);
    aclrtDrvMemHandle he = phys(4 * MiB, 0, ACL_MEM_HUGE);
    aclrtDrvMemHandle hf = phys(4 * MiB, 0, ACL_MEM_NORMAL);
    if (!r2 || !he || !hf || !EXPECT_OK(aclrtMapMem(r2, 4 * MiB, 0, he, 0)) ||
        !EXPECT_OK(aclrtMapMem(AT(r2, 4 * MiB), 4 * MiB, 0, hf, 0)))
        goto out;
    put(r, 8 * MiB, 21);
    EXPECT_OK(aclrtMemset(r2, 8 * MiB, 0, 8 * MiB));
    /* 6 MiB from R + 1M (crosses A|B and B|C) to R2 + 1M + 4K (crosses E|F at
     * another offset). */
    EXPECT_OK(aclrtMemcpyAsync(AT(r2, MiB + 4096), 6 * MiB, AT(r, MiB), 6 * MiB,
                               ACL_MEMCPY_DEVICE_TO_DEVICE, g_stream));
    EXPECT_OK(aclrtSynchronizeStream(g_stream));
    CHECK(dev_all(r2, MiB + 4096, 0));
    CHECK(dev_has(AT(r2, MiB + 4096), 6 * MiB, 21, MiB));
    CHECK(dev_all(AT(r2, 7 * MiB + 4096), MiB - 4096, 0));

    /* Async memset across E|F, and async D2H / H2D through pinned memory. */
    EXPECT_OK(aclrtMemsetAsync(AT(r2, 3 * MiB), 2 * MiB, 0xc7, 2 * MiB, g_stream));
    uint8_t *pin = NULL;
    if (EXPECT_OK(aclrtMallocHost((void **)&pin, 8 * MiB))) {
        memset(pin, 0, 8 * MiB);
        EXPECT_OK(aclrtMemcpyAsync(pin, 8 * MiB, r2, 8 * MiB, ACL_MEMCPY_DEVICE_TO_HOST,
                                   g_stream));
        EXPECT_OK(aclrtSynchronizeStream(g_stream));
        uint8_t *want = pattern(7 * MiB, 21);
        CHECK(all_bytes(pin, MiB + 4096, 0));
        CHECK(memcmp(pin + MiB + 4096, want + MiB, 2 * MiB - 4096) == 0);
        CHECK(all_bytes(pin + 3 * MiB, 2 * MiB, 0xc7));
        CHECK(memcmp(pin + 5 * MiB, want + 5 * MiB - 4096, 2 * MiB + 4096) == 0);
        g_free(want);
        fill_pattern(pin, 8 * MiB, 22);
        EXPECT_OK(aclrtMemcpyAsync(r, 8 * MiB, pin, 8 * MiB, ACL_MEMCPY_HOST_TO_DEVICE,
                                   g_stream));
        EXPECT_OK(aclrtSynchronizeStream(g_stream));
        CHECK(dev_sum(r, 8 * MiB) == pattern_sum(8 * MiB, 22));
        EXPECT_OK(aclrtFreeHost(pin));
    }
out:
    if (r2 && he)
        aclrtUnmapMem(r2);
    if (r2 && hf)
        aclrtUnmapMem(AT(r2, 4 * MiB));
    drain_errors();
    if (he)
        EXPECT_OK(aclrtFreePhysical(he));
    if (hf)
        EXPECT_OK(aclrtFreePhysical(hf));
    if (r2)
        EXPECT_OK(aclrtReleaseMemAddress(r2));
    layout_free(&l);
}

TEST(test_data_async_hole_faults)
{
    Layout l;
    if (!layout_make(&l)) {
        layout_free(&l);
        return;
    }
    void *r = l.r;
    put(r, 8 * MiB, 31);
    put(AT(r, 10 * MiB), 2 * MiB, 32);
    /* Source reaches into the hole: the stream fails, D is untouched. */
    EXPECT_OK(aclrtMemcpyAsync(AT(r, 10 * MiB), 2 * MiB, AT(r, 7 * MiB), 2 * MiB,
                               ACL_MEMCPY_DEVICE_TO_DEVICE, g_stream));
    EXPECT_ERR(aclrtSynchronizeStream(g_stream), ACL_ERROR_RT_SYS_DMA);
    CHECK(dev_sum(AT(r, 10 * MiB), 2 * MiB) == pattern_sum(2 * MiB, 32));
    /* Destination starts in the hole and runs into D. */
    EXPECT_OK(aclrtMemcpyAsync(AT(r, 9 * MiB), 2 * MiB, r, 2 * MiB, ACL_MEMCPY_DEVICE_TO_DEVICE,
                               g_stream));
    EXPECT_ERR(aclrtSynchronizeStream(g_stream), ACL_ERROR_RT_SYS_DMA);
    CHECK(dev_sum(AT(r, 10 * MiB), 2 * MiB) == pattern_sum(2 * MiB, 32));
    /* Destination runs from C into the hole: C's end is untouched. */
    EXPECT_OK(aclrtMemcpyAsync(AT(r, 7 * MiB), 2 * MiB, AT(r, 10 * MiB), 2 * MiB,
                               ACL_MEMCPY_DEVICE_TO_DEVICE, g_stream));
    EXPECT_ERR(aclrtSynchronizeStream(g_stream), ACL_ERROR_RT_SYS_DMA);
    EXPECT_OK(aclrtMemsetAsync(AT(r, 7 * MiB), 2 * MiB, 0xee, 2 * MiB, g_stream));
    EXPECT_ERR(aclrtSynchronizeStream(g_stream), ACL_ERROR_RT_SYS_DMA);
    CHECK(dev_sum(r, 8 * MiB) == pattern_sum(8 * MiB, 31));
    /* To and from pinned host memory. */
    uint8_t *pin = NULL;
    if (EXPECT_OK(aclrtMallocHost((void **)&pin, 2 * MiB))) {
        memset(pin, 0x66, 2 * MiB);
        EXPECT_OK(aclrtMemcpyAsync(pin, 2 * MiB, AT(r, 7 * MiB), 2 * MiB,
                                   ACL_MEMCPY_DEVICE_TO_HOST, g_stream));
        EXPECT_ERR(aclrtSynchronizeStream(g_stream), ACL_ERROR_RT_SYS_DMA);
        CHECK(all_bytes(pin, 2 * MiB, 0x66));
        EXPECT_OK(aclrtMemcpyAsync(AT(r, 9 * MiB), 2 * MiB, pin, 2 * MiB,
                                   ACL_MEMCPY_HOST_TO_DEVICE, g_stream));
        EXPECT_ERR(aclrtSynchronizeStream(g_stream), ACL_ERROR_RT_SYS_DMA);
        CHECK(dev_sum(AT(r, 10 * MiB), 2 * MiB) == pattern_sum(2 * MiB, 32));
        EXPECT_OK(aclrtFreeHost(pin));
    }
    /* A whole mapping that was unmapped is a hole too. */
    EXPECT_OK(aclrtUnmapMem(AT(r, 10 * MiB)));
    EXPECT_OK(aclrtMemcpyAsync(r, 2 * MiB, AT(r, 10 * MiB), 2 * MiB, ACL_MEMCPY_DEVICE_TO_DEVICE,
                               g_stream));
    EXPECT_ERR(aclrtSynchronizeStream(g_stream), ACL_ERROR_RT_SYS_DMA);
    CHECK(dev_has(r, 2 * MiB, 31, 0));
    EXPECT_OK(aclrtMapMem(AT(r, 10 * MiB), 2 * MiB, 0, l.h[3], 0));
    CHECK(dev_sum(AT(r, 10 * MiB), 2 * MiB) == pattern_sum(2 * MiB, 32));
    /* The stream still works. */
    EXPECT_OK(aclrtMemcpyAsync(AT(r, 10 * MiB), 2 * MiB, r, 2 * MiB, ACL_MEMCPY_DEVICE_TO_DEVICE,
                               g_stream));
    EXPECT_OK(aclrtSynchronizeStream(g_stream));
    CHECK(dev_has(AT(r, 10 * MiB), 2 * MiB, 31, 0));
    layout_free(&l);
}

TEST(test_data_no_access_until_set)
{
    void *r = reserve(4 * MiB);
    aclrtDrvMemHandle h = phys(4 * MiB, 0, ACL_MEM_HUGE);
    void *d = NULL;
    uint8_t *pin = NULL;
    if (!r || !h || !EXPECT_OK(aclrtMalloc(&d, 4 * MiB, ACL_MEM_MALLOC_HUGE_FIRST)) ||
        !EXPECT_OK(aclrtMallocHost((void **)&pin, 4 * MiB)))
        return;
    put(d, 4 * MiB, 41);
    EXPECT_OK(aclrtMemMapNoAccess(r, 4 * MiB, 0, h, 0));
    CHECK(access_of(r, 0) == ACL_RT_MEM_ACCESS_FLAGS_NONE);
    CHECK(access_of(r, 1) == ACL_RT_MEM_ACCESS_FLAGS_NONE);
    /* No task and no synchronous copy touches it. */
    EXPECT_OK(aclrtMemcpyAsync(r, 4 * MiB, d, 4 * MiB, ACL_MEMCPY_DEVICE_TO_DEVICE, g_stream));
    EXPECT_ERR(aclrtSynchronizeStream(g_stream), ACL_ERROR_RT_SYS_DMA);
    EXPECT_OK(aclrtMemsetAsync(r, 4 * MiB, 0x11, 4 * MiB, g_stream));
    EXPECT_ERR(aclrtSynchronizeStream(g_stream), ACL_ERROR_RT_SYS_DMA);
    memset(pin, 0x99, 4 * MiB);
    EXPECT_OK(aclrtMemcpyAsync(pin, 4 * MiB, r, 4 * MiB, ACL_MEMCPY_DEVICE_TO_HOST, g_stream));
    EXPECT_ERR(aclrtSynchronizeStream(g_stream), ACL_ERROR_RT_SYS_DMA);
    CHECK(all_bytes(pin, 4 * MiB, 0x99));
    uint8_t *buf = g_malloc(4 * MiB);
    EXPECT_ERR(aclrtMemcpy(buf, 4 * MiB, r, 4 * MiB, ACL_MEMCPY_DEVICE_TO_HOST),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemcpy(r, 4 * MiB, buf, 4 * MiB, ACL_MEMCPY_HOST_TO_DEVICE),
               ACL_ERROR_RT_PARAM_INVALID);
    g_free(buf);
    /* Access for another device does not open it to device 0. */
    set_rw(r, 4 * MiB, 1);
    CHECK(access_of(r, 1) == ACL_RT_MEM_ACCESS_FLAGS_READWRITE);
    CHECK(access_of(r, 0) == ACL_RT_MEM_ACCESS_FLAGS_NONE);
    EXPECT_OK(aclrtMemcpyAsync(r, 4 * MiB, d, 4 * MiB, ACL_MEMCPY_DEVICE_TO_DEVICE, g_stream));
    EXPECT_ERR(aclrtSynchronizeStream(g_stream), ACL_ERROR_RT_SYS_DMA);
    /* Device 0 gets READWRITE: tasks work, and nothing had landed before. */
    set_rw(r, 4 * MiB, 0);
    CHECK(access_of(r, 0) == ACL_RT_MEM_ACCESS_FLAGS_READWRITE);
    CHECKF(dev_all(r, 4 * MiB, 0), "a refused task wrote to no-access memory");
    EXPECT_OK(aclrtMemcpyAsync(r, 4 * MiB, d, 4 * MiB, ACL_MEMCPY_DEVICE_TO_DEVICE, g_stream));
    EXPECT_OK(aclrtSynchronizeStream(g_stream));
    CHECK(dev_sum(r, 4 * MiB) == pattern_sum(4 * MiB, 41));
    EXPECT_OK(aclrtMemcpyAsync(pin, 4 * MiB, r, 4 * MiB, ACL_MEMCPY_DEVICE_TO_HOST, g_stream));
    EXPECT_OK(aclrtSynchronizeStream(g_stream));
    CHECK(checksum(pin, 4 * MiB) == pattern_sum(4 * MiB, 41));
    EXPECT_OK(aclrtUnmapMem(r));
    EXPECT_OK(aclrtFreePhysical(h));
    EXPECT_OK(aclrtReleaseMemAddress(r));
    EXPECT_OK(aclrtFree(d));
    EXPECT_OK(aclrtFreeHost(pin));
}

/* Memory of device 1 mapped with aclrtMapMem: device 0's streams reach it
 * once aclrtMemSetAccess gives device 0 READWRITE (the peer's view). */
TEST(test_data_peer_access)
{
    void *r = reserve(4 * MiB);
    aclrtDrvMemHandle h = phys(4 * MiB, 1, ACL_MEM_HUGE);
    void *d = NULL;
    if (!r || !h || !EXPECT_OK(aclrtMalloc(&d, 4 * MiB, ACL_MEM_MALLOC_HUGE_FIRST)))
        return;
    EXPECT_OK(aclrtMapMem(r, 4 * MiB, 0, h, 0));
    CHECK(access_of(r, 1) == ACL_RT_MEM_ACCESS_FLAGS_READWRITE);
    CHECK(access_of(r, 0) == ACL_RT_MEM_ACCESS_FLAGS_NONE);
    CHECK(access_of(r, 2) == ACL_RT_MEM_ACCESS_FLAGS_NONE);
    put(r, 4 * MiB, 51);
    EXPECT_OK(aclrtMemset(d, 4 * MiB, 0, 4 * MiB));
    EXPECT_OK(aclrtMemcpyAsync(d, 4 * MiB, r, 4 * MiB, ACL_MEMCPY_DEVICE_TO_DEVICE, g_stream));
    EXPECT_ERR(aclrtSynchronizeStream(g_stream), ACL_ERROR_RT_SYS_DMA);
    CHECK(dev_all(d, 4 * MiB, 0));
    /* Two devices in one call. */
    aclrtMemAccessDesc two[2] = { rw_desc(0), rw_desc(2) };
    EXPECT_OK(aclrtMemSetAccess(r, 4 * MiB, two, 2));
    CHECK(access_of(r, 0) == ACL_RT_MEM_ACCESS_FLAGS_READWRITE);
    CHECK(access_of(r, 2) == ACL_RT_MEM_ACCESS_FLAGS_READWRITE);
    CHECK(access_of(r, 1) == ACL_RT_MEM_ACCESS_FLAGS_READWRITE);
    CHECK(access_of(r, 3) == ACL_RT_MEM_ACCESS_FLAGS_NONE);
    EXPECT_OK(aclrtMemcpyAsync(d, 4 * MiB, r, 4 * MiB, ACL_MEMCPY_DEVICE_TO_DEVICE, g_stream));
    EXPECT_OK(aclrtSynchronizeStream(g_stream));
    CHECK(dev_sum(d, 4 * MiB) == pattern_sum(4 * MiB, 51));
    /* And writes: device 0 writes device 1's memory. */
    EXPECT_OK(aclrtMemsetAsync(AT(r, MiB), MiB, 0x42, MiB, g_stream));
    EXPECT_OK(aclrtSynchronizeStream(g_stream));
    CHECK(dev_all(AT(r, MiB), MiB, 0x42));
    CHECK(dev_has(r, MiB, 51, 0));
    EXPECT_OK(aclrtUnmapMem(r));
    EXPECT_OK(aclrtReleaseMemAddress(r));
    /* The same where the reservation lies in device 1's span of the window:
     * where the VA is does not give device 0 access either. */
    r = NULL;
    if (EXPECT_OK(aclrtReserveMemAddress(&r, 4 * MiB, 0, VA(WINDOW_LO + SPAN + 300 * GiB), 0)) &&
        EXPECT_OK(aclrtMapMem(r, 4 * MiB, 0, h, 0))) {
        CHECK(access_of(r, 0) == ACL_RT_MEM_ACCESS_FLAGS_NONE);
        EXPECT_OK(aclrtMemset(d, 4 * MiB, 0, 4 * MiB));
        EXPECT_OK(aclrtMemcpyAsync(d, 4 * MiB, r, 4 * MiB, ACL_MEMCPY_DEVICE_TO_DEVICE,
                                   g_stream));
        CHECKF(EXPECT_ERR(aclrtSynchronizeStream(g_stream), ACL_ERROR_RT_SYS_DMA),
               "device 0 read device 1's VMM memory (reservation in device 1's span) "
               "without aclrtMemSetAccess");
        CHECK(dev_all(d, 4 * MiB, 0));
        EXPECT_OK(aclrtMemsetAsync(r, 4 * MiB, 0x24, 4 * MiB, g_stream));
        CHECKF(EXPECT_ERR(aclrtSynchronizeStream(g_stream), ACL_ERROR_RT_SYS_DMA),
               "device 0 wrote device 1's VMM memory (reservation in device 1's span) "
               "without aclrtMemSetAccess");
        CHECK(dev_has(r, MiB, 51, 0));
        EXPECT_OK(aclrtUnmapMem(r));
    }
    if (r)
        EXPECT_OK(aclrtReleaseMemAddress(r));
    EXPECT_OK(aclrtFreePhysical(h));
    EXPECT_OK(aclrtFree(d));
}

TEST(test_remap_same_va)
{
    size_t f0 = hbm_free();
    void *r = reserve(8 * MiB);
    aclrtDrvMemHandle h = phys(4 * MiB, 0, ACL_MEM_HUGE);
    if (!r || !h)
        return;
    EXPECT_OK(aclrtMapMem(AT(r, 2 * MiB), 4 * MiB, 0, h, 0));
    put(AT(r, 2 * MiB), 4 * MiB, 61);
    EXPECT_OK(aclrtUnmapMem(AT(r, 2 * MiB)));
    EXPECT_OK(aclrtFreePhysical(h));
    CHECK(hbm_free() == f0);
    /* Let the emulator's session go to sleep between the calls. */
    g_usleep(300000);
    static const aclrtMemAttr attrs[] = { ACL_MEM_NORMAL, ACL_MEM_HUGE, ACL_HBM_MEM_NORMAL };
    for (size_t i = 0; i < G_N_ELEMENTS(attrs); i++) {
        h = phys(4 * MiB, 0, attrs[i]);
        if (!h || !EXPECT_OK(aclrtMapMem(AT(r, 2 * MiB), 4 * MiB, 0, h, 0)))
            break;
        g_usleep(200000);
        EXPECT_OK(aclrtMemsetAsync(AT(r, 2 * MiB), 4 * MiB, 0x50 + (int)i, 4 * MiB, g_stream));
        EXPECT_OK(aclrtSynchronizeStream(g_stream));
        CHECKF(dev_all(AT(r, 2 * MiB), 4 * MiB, (uint8_t)(0x50 + i)),
               "remap %zu (memAttr %d): the new memory does not hold the new data", i,
               (int)attrs[i]);
        put(AT(r, 3 * MiB), MiB, 62 + (uint32_t)i);
        CHECK(dev_has(AT(r, 3 * MiB), MiB, 62 + (uint32_t)i, 0));
        aclrtPtrAttributes a;
        memset(&a, 0xff, sizeof(a));
        EXPECT_OK(aclrtPointerGetAttributes(AT(r, 2 * MiB), &a));
        CHECKF(a.pageSize == (attrs[i] == ACL_MEM_NORMAL ? 4 * KiB : 2 * MiB),
               "remap %zu: page size %u", i, a.pageSize);
        EXPECT_OK(aclrtUnmapMem(AT(r, 2 * MiB)));
        EXPECT_OK(aclrtFreePhysical(h));
        g_usleep(200000);
    }
    EXPECT_OK(aclrtReleaseMemAddress(r));
    CHECK(hbm_free() == f0);
}

/* ---- handles: deferred free, retain ---- */

TEST(test_free_deferred)
{
    size_t f0 = hbm_free();
    void *r = reserve(64 * MiB);
    aclrtDrvMemHandle h = phys(64 * MiB, 0, ACL_MEM_HUGE);
    if (!r || !h)
        return;
    EXPECT_OK(aclrtMapMem(r, 64 * MiB, 0, h, 0));
    put(r, 64 * MiB, 71);
    CHECK(hbm_free() == f0 - 64 * MiB);
    EXPECT_OK(aclrtFreePhysical(h));
    CHECKF(hbm_free() == f0 - 64 * MiB, "FreePhysical of a mapped handle gave back %zu bytes",
           hbm_free() - (f0 - (size_t)(64 * MiB)));
    /* Still mapped: the data is there and tasks use it. */
    CHECK(dev_sum(r, 64 * MiB) == pattern_sum(64 * MiB, 71));
    EXPECT_OK(aclrtMemsetAsync(r, MiB, 0x12, MiB, g_stream));
    EXPECT_OK(aclrtSynchronizeStream(g_stream));
    CHECK(dev_all(r, MiB, 0x12));
    /* The handle itself is gone. */
    aclrtPhysicalMemProp p;
    EXPECT_ERR(aclrtFreePhysical(h), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemGetAllocationPropertiesFromHandle(h, &p), ACL_ERROR_RT_PARAM_INVALID);
    void *r2 = reserve(64 * MiB);
    if (r2) {
        EXPECT_ERR(aclrtMapMem(r2, 64 * MiB, 0, h, 0), ACL_ERROR_RT_PARAM_INVALID);
        EXPECT_OK(aclrtReleaseMemAddress(r2));
    }
    EXPECT_OK(aclrtUnmapMem(r));
    CHECKF(hbm_free() == f0, "after the unmap HBM free is %zu, baseline %zu", hbm_free(), f0);
    EXPECT_OK(aclrtReleaseMemAddress(r));
    EXPECT_ERR(aclrtFreePhysical(h), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtFreePhysical(NULL), ACL_ERROR_RT_PARAM_INVALID);
    /* Double free of a handle that was never mapped. */
    h = phys(2 * MiB, 0, ACL_MEM_HUGE);
    if (h) {
        EXPECT_OK(aclrtFreePhysical(h));
        EXPECT_ERR(aclrtFreePhysical(h), ACL_ERROR_RT_PARAM_INVALID);
    }
    CHECK(hbm_free() == f0);
}

TEST(test_retain)
{
    size_t f0 = hbm_free();
    aclrtPhysicalMemProp want = prop_of(0, ACL_MEM_HUGE);
    void *r = reserve(8 * MiB);
    aclrtDrvMemHandle h = phys(4 * MiB, 0, ACL_MEM_HUGE), a = NULL, b = NULL, c = NULL;
    if (!r || !h)
        return;
    EXPECT_OK(aclrtMapMem(AT(r, 2 * MiB), 4 * MiB, 0, h, 0));
    put(AT(r, 2 * MiB), 4 * MiB, 81);
    /* Only the start of a mapping. */
    EXPECT_ERR(aclrtMemRetainAllocationHandle(AT(r, 4 * MiB), &a), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemRetainAllocationHandle(AT(r, 2 * MiB + 4096), &a),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemRetainAllocationHandle(r, &a), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemRetainAllocationHandle(NULL, &a), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemRetainAllocationHandle(AT(r, 2 * MiB), NULL), ACL_ERROR_RT_PARAM_INVALID);
    CHECK(a == NULL);
    /* Retain twice: three frees in all, the fourth is refused. */
    EXPECT_OK(aclrtMemRetainAllocationHandle(AT(r, 2 * MiB), &a));
    EXPECT_OK(aclrtMemRetainAllocationHandle(AT(r, 2 * MiB), &b));
    CHECK(a != NULL && b != NULL);
    aclrtPhysicalMemProp got;
    memset(&got, 0xff, sizeof(got));
    EXPECT_OK(aclrtMemGetAllocationPropertiesFromHandle(a, &got));
    CHECK(memcmp(&got, &want, sizeof(got)) == 0);
    EXPECT_OK(aclrtFreePhysical(h));
    EXPECT_OK(aclrtFreePhysical(a));
    CHECKF(EXPECT_OK(aclrtFreePhysical(b)), "third free after two retains");
    EXPECT_ERR(aclrtFreePhysical(b), ACL_ERROR_RT_PARAM_INVALID);
    CHECK(hbm_free() == f0 - 4 * MiB);
    /* Every reference is gone but the mapping: retain brings one back. */
    EXPECT_OK(aclrtMemRetainAllocationHandle(AT(r, 2 * MiB), &c));
    memset(&got, 0xff, sizeof(got));
    EXPECT_OK(aclrtMemGetAllocationPropertiesFromHandle(c, &got));
    CHECK(memcmp(&got, &want, sizeof(got)) == 0);
    /* The retained handle outlives the mapping and maps the same memory again. */
    EXPECT_OK(aclrtUnmapMem(AT(r, 2 * MiB)));
    CHECKF(hbm_free() == f0 - 4 * MiB, "a retained handle lost its memory at the unmap");
    EXPECT_OK(aclrtMapMem(r, 4 * MiB, 0, c, 0));
    CHECKF(dev_sum(r, 4 * MiB) == pattern_sum(4 * MiB, 81),
           "the retained handle does not hold the data written through the first mapping");
    EXPECT_OK(aclrtFreePhysical(c));
    CHECK(hbm_free() == f0 - 4 * MiB);
    EXPECT_ERR(aclrtFreePhysical(c), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtUnmapMem(r));
    CHECKF(hbm_free() == f0, "HBM free %zu after the last unmap, baseline %zu", hbm_free(), f0);
    EXPECT_ERR(aclrtMemRetainAllocationHandle(r, &c), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtReleaseMemAddress(r));
}

/* ---- access ---- */

TEST(test_set_get_access_rules)
{
    void *r = reserve(8 * MiB);
    aclrtDrvMemHandle h = phys(4 * MiB, 0, ACL_MEM_HUGE);
    if (!r || !h || !EXPECT_OK(aclrtMapMem(AT(r, 2 * MiB), 4 * MiB, 0, h, 0)))
        return;
    void *m = AT(r, 2 * MiB);
    aclrtMemAccessDesc d = rw_desc(1);
    /* The exact mapped range only. */
    EXPECT_ERR(aclrtMemSetAccess(m, 2 * MiB, &d, 1), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemSetAccess(m, 6 * MiB, &d, 1), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemSetAccess(r, 4 * MiB, &d, 1), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemSetAccess(r, 8 * MiB, &d, 1), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemSetAccess(AT(m, 2 * MiB), 2 * MiB, &d, 1), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemSetAccess(NULL, 4 * MiB, &d, 1), ACL_ERROR_RT_PARAM_INVALID);
    /* Flags: READWRITE only. */
    static const aclrtMemAccessFlags flags[] = { ACL_RT_MEM_ACCESS_FLAGS_NONE,
                                                 ACL_RT_MEM_ACCESS_FLAGS_READ,
                                                 (aclrtMemAccessFlags)2, (aclrtMemAccessFlags)7 };
    for (size_t i = 0; i < G_N_ELEMENTS(flags); i++) {
        d = rw_desc(1);
        d.flags = flags[i];
        CHECKF(EXPECT_ERR(aclrtMemSetAccess(m, 4 * MiB, &d, 1), ACL_ERROR_RT_PARAM_INVALID),
               "flags %d", (int)flags[i]);
    }
    d = rw_desc(1);
    d.location.type = ACL_MEM_LOCATION_TYPE_UNREGISTERED;
    EXPECT_ERR(aclrtMemSetAccess(m, 4 * MiB, &d, 1), ACL_ERROR_RT_PARAM_INVALID);
    d.location.type = (aclrtMemLocationType)77;
    EXPECT_ERR(aclrtMemSetAccess(m, 4 * MiB, &d, 1), ACL_ERROR_RT_PARAM_INVALID);
    d = rw_desc(8);
    EXPECT_ERR(aclrtMemSetAccess(m, 4 * MiB, &d, 1), ACL_ERROR_RT_INVALID_DEVICEID);
    d = rw_desc(1);
    EXPECT_ERR(aclrtMemSetAccess(m, 4 * MiB, &d, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemSetAccess(m, 4 * MiB, NULL, 1), ACL_ERROR_RT_PARAM_INVALID);
    /* A bad entry after a good one: the whole call is refused, nothing set. */
    aclrtMemAccessDesc two[2] = { rw_desc(1), rw_desc(9) };
    EXPECT_ERR(aclrtMemSetAccess(m, 4 * MiB, two, 2), ACL_ERROR_RT_INVALID_DEVICEID);
    CHECKF(access_of(m, 1) == ACL_RT_MEM_ACCESS_FLAGS_NONE,
           "a refused aclrtMemSetAccess gave device 1 access");

    /* GetAccess. */
    CHECK(access_of(m, 0) == ACL_RT_MEM_ACCESS_FLAGS_READWRITE);
    aclrtMemLocation loc = { .id = 0, .type = ACL_MEM_LOCATION_TYPE_DEVICE };
    uint64_t f = 0;
    EXPECT_ERR(aclrtMemGetAccess(AT(m, 2 * MiB), &loc, &f), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemGetAccess(r, &loc, &f), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemGetAccess(NULL, &loc, &f), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemGetAccess(m, NULL, &f), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemGetAccess(m, &loc, NULL), ACL_ERROR_RT_PARAM_INVALID);
    loc.type = ACL_MEM_LOCATION_TYPE_MANAGED;
    EXPECT_ERR(aclrtMemGetAccess(m, &loc, &f), ACL_ERROR_RT_PARAM_INVALID);
    loc = (aclrtMemLocation){ .id = 8, .type = ACL_MEM_LOCATION_TYPE_DEVICE };
    EXPECT_ERR(aclrtMemGetAccess(m, &loc, &f), ACL_ERROR_RT_INVALID_DEVICEID);
    /* Setting it again (own device) is harmless; a peer shows up once set. */
    set_rw(m, 4 * MiB, 0);
    set_rw(m, 4 * MiB, 5);
    CHECK(access_of(m, 0) == ACL_RT_MEM_ACCESS_FLAGS_READWRITE);
    CHECK(access_of(m, 5) == ACL_RT_MEM_ACCESS_FLAGS_READWRITE);
    CHECK(access_of(m, 1) == ACL_RT_MEM_ACCESS_FLAGS_NONE);
    EXPECT_OK(aclrtUnmapMem(m));
    /* Gone with the mapping. */
    loc = (aclrtMemLocation){ .id = 0, .type = ACL_MEM_LOCATION_TYPE_DEVICE };
    EXPECT_ERR(aclrtMemGetAccess(m, &loc, &f), ACL_ERROR_RT_PARAM_INVALID);
    d = rw_desc(0);
    EXPECT_ERR(aclrtMemSetAccess(m, 4 * MiB, &d, 1), ACL_ERROR_RT_PARAM_INVALID);
    /* Mapped again: fresh rights, the old peer is not remembered. */
    EXPECT_OK(aclrtMemMapNoAccess(m, 4 * MiB, 0, h, 0));
    CHECK(access_of(m, 0) == ACL_RT_MEM_ACCESS_FLAGS_NONE);
    CHECK(access_of(m, 5) == ACL_RT_MEM_ACCESS_FLAGS_NONE);
    EXPECT_OK(aclrtUnmapMem(m));
    EXPECT_OK(aclrtFreePhysical(h));
    EXPECT_OK(aclrtReleaseMemAddress(r));
}

/* ---- properties, address ranges, attributes ---- */

TEST(test_properties)
{
    static const struct {
        uint32_t dev;
        aclrtMemAttr attr;
        size_t size;
    } cases[] = {
        { 0, ACL_MEM_NORMAL, 2 * MiB },     { 0, ACL_MEM_HUGE, 6 * MiB },
        { 1, ACL_MEM_HUGE1G, GiB },         { 2, ACL_HBM_MEM_NORMAL, 2 * MiB },
        { 0, ACL_HBM_MEM_HUGE, 2 * MiB },   { 7, ACL_MEM_P2P_HUGE, 4 * MiB },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        aclrtPhysicalMemProp want = prop_of(cases[i].dev, cases[i].attr);
        want.reserve = 0;
        aclrtDrvMemHandle h = phys(cases[i].size, cases[i].dev, cases[i].attr);
        if (!h)
            continue;
        aclrtPhysicalMemProp got;
        memset(&got, 0xff, sizeof(got));
        EXPECT_OK(aclrtMemGetAllocationPropertiesFromHandle(h, &got));
        CHECKF(got.handleType == want.handleType && got.allocationType == want.allocationType &&
                   got.memAttr == want.memAttr && got.location.type == want.location.type &&
                   got.location.id == want.location.id,
               "case %zu: properties {%d, %d, %d, {%u, %d}} for {%d, %d, %d, {%u, %d}}", i,
               (int)got.handleType, (int)got.allocationType, (int)got.memAttr, got.location.id,
               (int)got.location.type, (int)want.handleType, (int)want.allocationType,
               (int)want.memAttr, want.location.id, (int)want.location.type);
        EXPECT_ERR(aclrtMemGetAllocationPropertiesFromHandle(h, NULL), ACL_ERROR_RT_PARAM_INVALID);
        EXPECT_OK(aclrtFreePhysical(h));
        EXPECT_ERR(aclrtMemGetAllocationPropertiesFromHandle(h, &got),
                   ACL_ERROR_RT_PARAM_INVALID);
    }
    aclrtPhysicalMemProp got;
    EXPECT_ERR(aclrtMemGetAllocationPropertiesFromHandle(NULL, &got), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemGetAllocationPropertiesFromHandle((aclrtDrvMemHandle)&got, &got),
               ACL_ERROR_RT_PARAM_INVALID);
}

TEST(test_address_range)
{
    void *base = NULL;
    size_t size = 0;
    void *d = NULL, *hst = NULL;
    if (EXPECT_OK(aclrtMalloc(&d, 3 * MiB + 100, ACL_MEM_MALLOC_HUGE_FIRST))) {
        EXPECT_OK(aclrtMemGetAddressRange(AT(d, 3 * MiB), &base, &size));
        CHECKF(base == d && size >= 3 * MiB + 100, "aclrtMalloc block %p: base %p size %zu", d,
               base, size);
        base = NULL;
        EXPECT_OK(aclrtMemGetAddressRange(d, &base, NULL));
        CHECK(base == d);
    }
    if (EXPECT_OK(aclrtMallocHost(&hst, 100000))) {
        size = 0;
        EXPECT_OK(aclrtMemGetAddressRange(AT(hst, 99999), &base, &size));
        CHECKF(base == hst && size >= 100000, "aclrtMallocHost block %p: base %p size %zu", hst,
               base, size);
    }
    /* VMM: the mapping that holds the pointer, not the reservation. */
    void *r = reserve(16 * MiB);
    aclrtDrvMemHandle h1 = phys(2 * MiB, 0, ACL_MEM_NORMAL), h2 = phys(6 * MiB, 0, ACL_MEM_HUGE);
    if (r && h1 && h2 && EXPECT_OK(aclrtMapMem(AT(r, 2 * MiB), 2 * MiB, 0, h1, 0)) &&
        EXPECT_OK(aclrtMemMapNoAccess(AT(r, 4 * MiB), 6 * MiB, 0, h2, 0))) {
        static const struct {
            size_t at, base, size;
        } q[] = {
            { 2 * MiB, 2 * MiB, 2 * MiB },  { 4 * MiB - 1, 2 * MiB, 2 * MiB },
            { 4 * MiB, 4 * MiB, 6 * MiB },  { 7 * MiB + 5, 4 * MiB, 6 * MiB },
            { 10 * MiB - 1, 4 * MiB, 6 * MiB },
        };
        for (size_t i = 0; i < G_N_ELEMENTS(q); i++) {
            base = NULL;
            size = 0;
            EXPECT_OK(aclrtMemGetAddressRange(AT(r, q[i].at), &base, &size));
            CHECKF(base == AT(r, q[i].base) && size == q[i].size,
                   "R+0x%zx: base R+0x%llx size 0x%zx, expected R+0x%zx size 0x%zx", q[i].at,
                   (unsigned long long)(U(base) - U(r)), size, q[i].base, q[i].size);
        }
        /* Reserved but not mapped. */
        EXPECT_ERR(aclrtMemGetAddressRange(r, &base, &size), ACL_ERROR_RT_PARAM_INVALID);
        EXPECT_ERR(aclrtMemGetAddressRange(AT(r, 10 * MiB), &base, &size),
                   ACL_ERROR_RT_PARAM_INVALID);
        EXPECT_OK(aclrtUnmapMem(AT(r, 2 * MiB)));
        EXPECT_ERR(aclrtMemGetAddressRange(AT(r, 2 * MiB), &base, &size),
                   ACL_ERROR_RT_PARAM_INVALID);
        EXPECT_OK(aclrtUnmapMem(AT(r, 4 * MiB)));
    }
    drain_errors();
    int local;
    EXPECT_ERR(aclrtMemGetAddressRange(&local, &base, &size), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemGetAddressRange(VA(WINDOW_LO + 6 * SPAN + 8 * GiB), &base, &size),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMemGetAddressRange(NULL, &base, &size), ACL_ERROR_RT_PARAM_INVALID);
    if (d) {
        EXPECT_ERR(aclrtMemGetAddressRange(d, NULL, NULL), ACL_ERROR_RT_PARAM_INVALID);
        EXPECT_OK(aclrtFree(d));
        EXPECT_ERR(aclrtMemGetAddressRange(d, &base, &size), ACL_ERROR_RT_PARAM_INVALID);
    }
    if (hst)
        EXPECT_OK(aclrtFreeHost(hst));
    if (h1)
        EXPECT_OK(aclrtFreePhysical(h1));
    if (h2)
        EXPECT_OK(aclrtFreePhysical(h2));
    if (r)
        EXPECT_OK(aclrtReleaseMemAddress(r));
}

TEST(test_pointer_attributes)
{
    void *r = reserve(4 * GiB);
    aclrtDrvMemHandle hn = phys(2 * MiB, 0, ACL_MEM_NORMAL);
    aclrtDrvMemHandle hh = phys(2 * MiB, 0, ACL_HBM_MEM_NORMAL);
    aclrtDrvMemHandle hg = phys(GiB, 0, ACL_MEM_HUGE1G);
    if (!r || !hn || !hh || !hg)
        return;
    EXPECT_OK(aclrtMapMem(r, 2 * MiB, 0, hn, 0));
    EXPECT_OK(aclrtMapMem(AT(r, 2 * MiB), 2 * MiB, 0, hh, 0));
    /* 1 GiB pages need a 1 GiB-aligned address. */
    EXPECT_ERR(aclrtMapMem(AT(r, 512 * MiB), GiB, 0, hg, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtMapMem(AT(r, GiB), GiB, 0, hg, 0));
    static const struct {
        size_t at;
        uint32_t page;
    } q[] = { { 0, 4 * KiB }, { 2 * MiB - 1, 4 * KiB }, { 2 * MiB, 2 * MiB },
              { 3 * MiB, 2 * MiB }, { GiB, GiB }, { 2 * GiB - 1, GiB } };
    for (size_t i = 0; i < G_N_ELEMENTS(q); i++) {
        aclrtPtrAttributes a;
        memset(&a, 0xff, sizeof(a));
        EXPECT_OK(aclrtPointerGetAttributes(AT(r, q[i].at), &a));
        CHECKF(a.location.type == ACL_MEM_LOCATION_TYPE_DEVICE && a.location.id == 0 &&
                   a.pageSize == q[i].page,
               "R+0x%zx: location {%d, %u} page %u, expected device 0 page %u", q[i].at,
               (int)a.location.type, a.location.id, a.pageSize, q[i].page);
    }
    /* And data through the 1 GiB page. */
    put(AT(r, GiB + GiB / 2), 2 * MiB, 91);
    CHECK(dev_has(AT(r, GiB + GiB / 2), 2 * MiB, 91, 0));
    EXPECT_OK(aclrtUnmapMem(r));
    EXPECT_OK(aclrtUnmapMem(AT(r, 2 * MiB)));
    EXPECT_OK(aclrtUnmapMem(AT(r, GiB)));
    EXPECT_OK(aclrtFreePhysical(hn));
    EXPECT_OK(aclrtFreePhysical(hh));
    EXPECT_OK(aclrtFreePhysical(hg));
    EXPECT_OK(aclrtReleaseMemAddress(r));
}

/* ---- a client that dies with everything in place ---- */

static int g_pipe[2];

static void child_vmm_dies(void)
{
    close(g_pipe[0]);
    if (EXPECT_OK(aclInit(NULL)) && EXPECT_OK(aclrtSetDevice(0))) {
        /* a: mapped; b: never mapped; c: mapped and freed (deferred). */
        aclrtDrvMemHandle a = phys(256 * MiB, 0, ACL_MEM_HUGE);
        aclrtDrvMemHandle b = phys(128 * MiB, 0, ACL_MEM_HUGE);
        aclrtDrvMemHandle c = phys(64 * MiB, 0, ACL_MEM_NORMAL);
        void *r = reserve(512 * MiB);
        if (a && b && c && r) {
            EXPECT_OK(aclrtMapMem(r, 256 * MiB, 0, a, 0));
            EXPECT_OK(aclrtMemMapNoAccess(AT(r, 256 * MiB), 64 * MiB, 0, c, 0));
            set_rw(AT(r, 256 * MiB), 64 * MiB, 0);
            EXPECT_OK(aclrtMemsetAsync(r, 320 * MiB, 0x5a, 320 * MiB, NULL));
            EXPECT_OK(aclrtSynchronizeStream(NULL));
            CHECK(dev_all(AT(r, 255 * MiB), 2 * MiB, 0x5a));
            EXPECT_OK(aclrtFreePhysical(c));
        }
    }
    fflush(NULL);
    char fails = (char)(g_child_fails > 100 ? 100 : g_child_fails);
    if (write(g_pipe[1], &fails, 1) != 1)
        _exit(99);
    for (;;)
        pause();    /* the parent kills it: no unmap, no free, no aclFinalize */
}

TEST(test_child_dies_with_mappings)
{
    size_t f0 = hbm_free();
    CU_ASSERT_FATAL(pipe(g_pipe) == 0);
    ChildBody body = { child_vmm_dies };
    pid_t pid = child_run(child_trampoline, &body);
    CU_ASSERT_FATAL(pid > 0);
    close(g_pipe[1]);
    char fails = 99;
    bool got = read(g_pipe[0], &fails, 1) == 1;
    close(g_pipe[0]);
    CHECKF(got && fails == 0, "the child reported %d failed checks", got ? fails : -1);
    size_t during = hbm_free();
    CHECKF(f0 - during == 448 * MiB, "the child's handles took %zu bytes of HBM, expected %llu",
           f0 - during, 448 * MiB);
    kill(pid, SIGKILL);
    CHECK(child_wait(pid) == 128 + SIGKILL);
    char *line = emu_gone_line(&g_emu, pid);
    CHECKF(line != NULL, "the emulator did not log the dead child %d", (int)pid);
    /* a and b still had references; c went with its mapping. */
    if (line)
        CHECKF(strstr(line, "2 physical handles (402653184 bytes)") != NULL, "reclaim: %s",
               line);
    g_free(line);
    CHECKF(wait_until(free_is, &f0, 5000), "HBM free %zu after the child died, baseline %zu",
           hbm_free(), f0);
    CHECK(emu_alive());
    /* The emulator keeps serving, VMM included. */
    sample_flow(99);
}

/* ---- main ---- */

int main(void)
{
    static const TestCase before[] = { T(test_reserve_nouc_a3) };
    static const TestCase tests[] = {
        T(test_sample_flow), T(test_granularity), T(test_malloc_physical_bad),
        T(test_malloc_physical_accounting), T(test_malloc_physical_fill_device),
        T(test_host_physical),
        T(test_reserve), T(test_reserve_nouc_a2), T(test_release), T(test_map_rules),
        T(test_map_no_access_rules), T(test_map_mixed_devices), T(test_map_foreign_handle),
        T(test_data_sync_across_mappings), T(test_data_async_mixed_pages),
        T(test_data_async_hole_faults), T(test_data_no_access_until_set),
        T(test_data_peer_access), T(test_remap_same_va), T(test_free_deferred),
        T(test_retain), T(test_set_get_access_rules), T(test_properties),
        T(test_address_range), T(test_pointer_attributes), T(test_child_dies_with_mappings),
    };
    static const TestProgram prog = {
        .name = "test_vmm", .emus = { EMU(&g_emu3, "a3"), EMU(&g_emu, "a2") },
        .suites = { SUITE("children (a3)", NULL, NULL, before),
                    SUITE("virtual memory", NULL, NULL, tests) },
        .pre_init = 1, .devices = DEV(0), .reset = DEV(0), .stream = &g_stream,
    };
    return test_main(&prog);
}
