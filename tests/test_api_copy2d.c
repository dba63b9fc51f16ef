/*
 * test_api_copy2d.c - integration tests of aclrtMemcpy2d and
 * aclrtMemcpy2dAsync (chapter 11-03) against a real npu-emu: rectangles
 * between different pitches on pageable, pinned and device memory, rows that
 * end where the allocation ends, the documented width and height limits, and
 * refused arguments, which must not move a byte.
 */
#define _GNU_SOURCE
#include <CUnit/Basic.h>
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "acl/acl.h"
#include "acl_check.h"
#include "harness.h"

#define BIG BUSY_BYTES

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

API_TEST(test_memcpy2d)
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
API_TEST(test_memcpy2d_wide_rows)
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

API_TEST(test_memcpy2d_bad)
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

API_TEST(test_memcpy2d_async)
{
    enum { N = SUB_END, W = 100, H = 50 };
    BusyBufs bz;
    aclrtStream s = NULL;
    void *d = NULL, *d2 = NULL, *pin = NULL;
    uint8_t *src = g_malloc(N), *got = NULL;
    fill_pattern(src, N, 64);
    if (!busy_bufs_alloc(&bz))
        goto out;
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtMalloc(&d, SUB_ALLOC, ACL_MEM_MALLOC_NORMAL_ONLY));
    EXPECT_OK(aclrtMalloc(&d2, SUB_ALLOC, ACL_MEM_MALLOC_NORMAL_ONLY));
    EXPECT_OK(aclrtMallocHost(&pin, N));
    if (!d || !d2 || !pin)
        goto out;
    EXPECT_OK(aclrtMemcpy(d, N, src, N, ACL_MEMCPY_HOST_TO_DEVICE));
    EXPECT_OK(aclrtMemset(d2, N, 0xee, N));

    /* device to device behind a closed gate and a 256 MiB copy: queued, not
     * done, until the gate opens */
    aclrtNotify gate = NULL;
    EXPECT_OK(aclrtCreateNotify(&gate, 0));
    EXPECT_OK(aclrtWaitAndResetNotify(gate, s, 0));
    EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    EXPECT_OK(aclrtMemcpy2dAsync((uint8_t *)d2 + 3, 200, (uint8_t *)d + 9, 333, W, H,
                                 ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    CHECKF(dev_all_bytes(d2, N, 0xee), "async D2D 2D copy ran before the stream reached it");
    EXPECT_OK(aclrtRecordNotify(gate, NULL));
    EXPECT_OK(aclrtSynchronizeStream(s));
    got = dev_read(d2, N);
    CHECKF(rect_ok(got, N, 3, 200, src + 9, 333, W, H, 0xee), "async D2D 2D copy: wrong bytes");
    g_free(got);

    /* pinned memory: asynchronous both ways */
    memset(pin, 0x44, N);
    EXPECT_OK(aclrtWaitAndResetNotify(gate, s, 0));
    EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    EXPECT_OK(aclrtMemcpy2dAsync(pin, 128, d, 256, W, H, ACL_MEMCPY_DEVICE_TO_HOST, s));
    CHECKF(all_bytes(pin, N, 0x44), "async D2H 2D copy into pinned memory is not asynchronous");
    EXPECT_OK(aclrtRecordNotify(gate, NULL));
    EXPECT_OK(aclrtSynchronizeStream(s));
    EXPECT_OK(aclrtDestroyNotify(gate));
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
        busy_bufs_free(&bz);
    g_free(src);
}

/* The documented maximum height is one task: 5 Mi rows of one byte. */
API_TEST(test_memcpy2d_async_max_height)
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

API_TEST(test_memcpy2d_async_bad)
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

int main(void)
{
    static const TestCase copies[] = {
        T(test_memcpy2d), T(test_memcpy2d_wide_rows), T(test_memcpy2d_bad),
        T(test_memcpy2d_async), T(test_memcpy2d_async_max_height),
        T(test_memcpy2d_async_bad),
    };
    static const TestSuite suites[] = { SUITE("2D copies", NULL, NULL, copies) };
    return api_run("test_api_copy2d", true, suites, G_N_ELEMENTS(suites));
}
