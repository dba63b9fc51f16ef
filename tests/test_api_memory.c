/*
 * test_api_memory.c - integration tests of device memory allocation and free
 * (chapter 11-01) against a real npu-emu: aclrtMalloc and its policies,
 * aclrtMallocAlign32 / Cached / WithCfg / ForTaskScheduler, aclrtFree and
 * aclrtFreeWithDevSync, aclrtGetMemInfo and aclrtGetMemUsageInfo, cache
 * maintenance and aclrtCheckMemType.
 *
 * Device use: 0 is the main thread's device; 1 holds memory of another device
 * (in an explicit context); 2 the malloc / free race; 7 the per-page-size
 * figures, which need a device nothing else has touched.
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
#include <unistd.h>

#include "acl/acl.h"
#include "acl_check.h"
#include "harness.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define HBM_BYTES (64ull * GiB)
#define BIG BUSY_BYTES
#define ALIGN_UP(x, a) ((((uint64_t)(x)) + (a) - 1) / (a) * (a))

/* ================================================================== */
/* Device memory.                                                       */

API_TEST(test_malloc_bad_args)
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

API_TEST(test_malloc_policies)
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
            CHECKF(in_dev_window(p), "policy %u size %" PRIu64 ": %p outside the device window",
                   pol, size, p);
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

API_TEST(test_malloc_small_slices)
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

API_TEST(test_malloc_align32_cached)
{
    void *p = NULL;
    uint8_t data[1000];
    fill_pattern(data, sizeof(data), 7);
    EXPECT_OK(aclrtMallocAlign32(&p, sizeof(data), ACL_MEM_MALLOC_HUGE_FIRST));
    CHECK(((uintptr_t)p & 31) == 0 && in_dev_window(p));
    EXPECT_OK(aclrtMemcpy(p, sizeof(data), data, sizeof(data), ACL_MEMCPY_HOST_TO_DEVICE));
    CHECK(dev_equals(p, data, sizeof(data)));
    EXPECT_OK(aclrtFree(p));

    static const aclrtMemMallocPolicy ok[] = { ACL_MEM_MALLOC_HUGE_FIRST, ACL_MEM_MALLOC_HUGE_ONLY,
                                               ACL_MEM_MALLOC_NORMAL_ONLY,
                                               ACL_MEM_MALLOC_HUGE1G_ONLY };
    for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
        p = NULL;
        EXPECT_OK(aclrtMallocCached(&p, sizeof(data), ok[i]));
        CHECK(((uintptr_t)p & 63) == 0 && in_dev_window(p));
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

API_TEST(test_mem_info)
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

API_TEST(test_mem_no_device)
{
    run_thread(thread_no_device_memory, NULL);
}

API_TEST(test_free_bad)
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

/* ---- aclrtMallocWithCfg, aclrtMallocForTaskScheduler ---- */

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
    CHECKF(in_dev_window(p) && ((uintptr_t)p & 63) == 0, "policy 0x%x: %p", policy, p);
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

API_TEST(test_malloc_with_cfg)
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

API_TEST(test_malloc_with_cfg_bad)
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

API_TEST(test_malloc_for_task_scheduler)
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

API_TEST(test_malloc_cfg_no_device)
{
    run_thread(thread_cfg_no_device, NULL);
}

/* ---- cache maintenance, memory types ---- */

API_TEST(test_mem_flush_invalidate)
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

API_TEST(test_check_mem_type)
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

/* aclrtGetMemUsageInfo stays unsupported (see docs/api-notes.tsv). */
/* Device-wide figures from the pool: an allocation of this process shows in
 * the aclrtMalloc component (other tests' memory may be there too). */
API_TEST(test_mem_usage_info)
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

/* ---- frees that wait for the device ---- */

API_TEST(test_free_with_dev_sync)
{
    enum { N = 4096 };
    BusyBufs bz;
    aclrtStream s = NULL, s2 = NULL;
    void *pin = NULL, *d = NULL, *d2 = NULL;
    if (!busy_bufs_alloc(&bz))
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
API_TEST(test_malloc_free_race)
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

/* Per-page-size free memory comes from the pool and shows fragmentation: one
 * small allocation splits a 1 GiB chunk into 2 MiB blocks and one block into
 * 4 KiB pages. */
API_TEST(test_mem_info_page_sizes)
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

int main(void)
{
    static const TestCase memory[] = {
        T(test_malloc_bad_args), T(test_malloc_policies), T(test_malloc_small_slices),
        T(test_malloc_align32_cached), T(test_mem_info), T(test_mem_no_device),
        T(test_free_bad), T(test_malloc_free_race), T(test_mem_info_page_sizes),
        T(test_malloc_with_cfg), T(test_malloc_with_cfg_bad),
        T(test_malloc_for_task_scheduler), T(test_malloc_cfg_no_device),
        T(test_mem_flush_invalidate), T(test_check_mem_type), T(test_mem_usage_info),
        T(test_free_with_dev_sync),
    };
    static const TestSuite suites[] = { SUITE("memory", NULL, NULL, memory) };
    return api_run("test_api_memory", true, suites, G_N_ELEMENTS(suites));
}
