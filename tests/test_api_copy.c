/*
 * test_api_copy.c - integration tests of memory copy and set (chapter 11-03)
 * against a real npu-emu: aclrtMemcpy of every kind, aclrtMemset and
 * aclrtMemsetD32, and their asynchronous forms on pinned and pageable memory,
 * on the default stream, with a stream of another device, and with a DMA error
 * that the next synchronise reports.
 */
#define _GNU_SOURCE
#include <CUnit/Basic.h>
#include <glib.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "acl/acl.h"
#include "acl_check.h"
#include "harness.h"

#define MiB (1ull << 20)
#define BIG BUSY_BYTES

/* ================================================================== */
/* Copies and memsets.                                                  */

API_TEST(test_memcpy_all_kinds)
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

API_TEST(test_memcpy_bad_args)
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

API_TEST(test_memcpy_freed)
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

API_TEST(test_memcpy_freed_small)
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

API_TEST(test_memcpy_past_segment)
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

API_TEST(test_memset)
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

API_TEST(test_memset_d32)
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

API_TEST(test_memcpy_async_pinned)
{
    enum { N = 64 * 1024 };
    BusyBufs bz;
    aclrtStream s = NULL;
    void *pin = NULL, *pin2 = NULL, *d = NULL, *d2 = NULL;
    uint8_t data[N], data2[N];
    fill_pattern(data, N, 21);
    fill_pattern(data2, N, 22);
    if (!busy_bufs_alloc(&bz))
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

    /* Behind a closed gate (and a 256 MiB copy) nothing has happened yet when
     * the calls return. */
    aclrtNotify gate = NULL;
    EXPECT_OK(aclrtCreateNotify(&gate, 0));
    EXPECT_OK(aclrtWaitAndResetNotify(gate, s, 0));
    EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    EXPECT_OK(aclrtMemcpyAsync(pin, N, d, N, ACL_MEMCPY_DEVICE_TO_HOST, s));
    EXPECT_OK(aclrtMemcpyAsync(d2, N, pin2, N, ACL_MEMCPY_HOST_TO_DEVICE, s));
    CHECKF(all_bytes(pin, N, 0xee), "D2H into pinned memory is not asynchronous");
    CHECKF(dev_all_bytes(d2, N, 0x77), "H2D from pinned memory is not asynchronous");
    EXPECT_OK(aclrtRecordNotify(gate, NULL));
    EXPECT_OK(aclrtSynchronizeStream(s));
    EXPECT_OK(aclrtDestroyNotify(gate));
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
    busy_bufs_free(&bz);
}

API_TEST(test_memcpy_async_pageable)
{
    enum { N = 64 * 1024 };
    BusyBufs bz;
    aclrtStream s = NULL;
    void *d = NULL;
    uint8_t *data = g_malloc(N), *back = g_malloc(N);
    fill_pattern(data, N, 31);
    memset(back, 0, N);
    if (!busy_bufs_alloc(&bz))
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
    busy_bufs_free(&bz);
    g_free(data);
    g_free(back);
}

API_TEST(test_memcpy_async_bad)
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

API_TEST(test_memcpy_async_default_stream)
{
    enum { N = 64 * 1024 };
    BusyBufs bz;
    aclrtStream def = NULL;
    void *pin = NULL, *d = NULL;
    uint8_t data[N];
    fill_pattern(data, N, 41);
    if (!busy_bufs_alloc(&bz))
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
    busy_bufs_free(&bz);
}

API_TEST(test_async_other_device_stream)
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

API_TEST(test_memset_async)
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

API_TEST(test_async_dma_error)
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

int main(void)
{
    static const TestCase copies[] = {
        T(test_memcpy_all_kinds), T(test_memcpy_bad_args), T(test_memcpy_freed),
        T(test_memcpy_freed_small), T(test_memcpy_past_segment), T(test_memset),
        T(test_memset_d32), T(test_memcpy_async_pinned), T(test_memcpy_async_pageable),
        T(test_memcpy_async_bad), T(test_memcpy_async_default_stream),
        T(test_async_other_device_stream), T(test_memset_async),
        T(test_async_dma_error),
    };
    static const TestSuite suites[] = { SUITE("copies", NULL, NULL, copies) };
    return api_run("test_api_copy", true, suites, G_N_ELEMENTS(suites));
}
