/*
 * test_api_copy_batch.c - integration tests of the batch copies (chapter
 * 11-03: aclrtMemcpyBatch, aclrtMemcpyBatchAsync and their V2 forms), of
 * aclrtMemcpyAsyncWithOffset (copies through base addresses stored in memory),
 * and of every copy call of the chapter given a stream of another device,
 * against a real npu-emu.
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

#define GiB (1ull << 30)
#define BIG BUSY_BYTES
#define WINDOW_LO 0x100000000000ull
#define ALIGN_UP(x, a) ((((uint64_t)(x)) + (a) - 1) / (a) * (a))

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

API_TEST(test_memcpy_batch)
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
API_TEST(test_memcpy_batch_fail_index)
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
API_TEST(test_memcpy_batch_bad_args)
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

API_TEST(test_memcpy_batch_async)
{
    BatchFix f;
    BusyBufs bz;
    aclrtStream s = NULL;
    aclrtNotify gate = NULL;
    size_t fail = 0;
    bz.a = NULL;
    if (!batch_fix_new(&f) || !busy_bufs_alloc(&bz))
        goto out;
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtCreateNotify(&gate, 0));
    for (int h2d = 1; h2d >= 0; h2d--) {
        /* pinned memory only: copies queued behind a closed gate are not done
         * when the call returns ... */
        batch_fix_setup(&f, h2d);
        for (size_t i = 0; i < NB / 2; i++)
            (h2d ? f.srcs : f.dsts)[i] = (uint8_t *)f.pin + i * SLOT;
        f.attrs[0] = f.attrs[1];
        EXPECT_OK(aclrtWaitAndResetNotify(gate, s, 0));
        EXPECT_OK(aclrtMemcpyBatchAsync(f.dsts, f.destMaxs, f.srcs, f.sizes, 4, f.attrs, f.idx,
                                        1, &fail, s));
        CHECKF(h2d ? dev_all_bytes(f.dev, NB * SLOT, 0xee)
                   : all_bytes(f.pin, NB * SLOT, 0xee),
               "a batch on pinned memory is not asynchronous");
        EXPECT_OK(aclrtRecordNotify(gate, NULL));
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
    if (gate)
        EXPECT_OK(aclrtDestroyNotify(gate));
    if (s)
        EXPECT_OK(aclrtDestroyStream(s));
    if (bz.a)
        busy_bufs_free(&bz);
    batch_fix_free(&f);
}

/* More copies than a stream's queue holds: the call waits for room. */
API_TEST(test_memcpy_batch_async_many)
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

API_TEST(test_memcpy_async_with_offset)
{
    enum { N = 64 * 1024 };
    BusyBufs bz;
    void *a = NULL, *b = NULL, *slots = NULL, *pin = NULL;
    uint8_t *data = g_malloc(N);
    fill_pattern(data, N, 81);
    bz.a = NULL;
    if (!busy_bufs_alloc(&bz))
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
    /* a base changed after the call, before the task runs (the stream is held
     * at a gate), is the one used */
    aclrtNotify gate = NULL;
    aclrtStream opener = NULL;
    EXPECT_OK(aclrtCreateNotify(&gate, 0));
    EXPECT_OK(aclrtCreateStream(&opener));
    EXPECT_OK(aclrtWaitAndResetNotify(gate, NULL, 0));
    EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, NULL));
    EXPECT_OK(aclrtMemcpyAsyncWithOffset(dslot, 500, 0, (const void **)sslot, 500, 0,
                                         ACL_MEMCPY_INNER_DEVICE_TO_DEVICE, NULL));
    void *later = (uint8_t *)b + 8192;
    EXPECT_OK(aclrtMemcpy(dslot, 8, &later, 8, ACL_MEMCPY_HOST_TO_DEVICE));
    EXPECT_OK(aclrtRecordNotify(gate, opener));
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    EXPECT_OK(aclrtDestroyStream(opener));
    EXPECT_OK(aclrtDestroyNotify(gate));
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
        busy_bufs_free(&bz);
    g_free(data);
}

/* Every copy call of this chapter refuses a stream of another device (107003). */
API_TEST(test_copy_ext_other_device_stream)
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

int main(void)
{
    static const TestCase copies[] = {
        T(test_memcpy_batch), T(test_memcpy_batch_fail_index),
        T(test_memcpy_batch_bad_args), T(test_memcpy_batch_async),
        T(test_memcpy_batch_async_many), T(test_memcpy_async_with_offset),
        T(test_copy_ext_other_device_stream),
    };
    static const TestSuite suites[] = { SUITE("batch copies", NULL, NULL, copies) };
    return api_run("test_api_copy_batch", true, suites, G_N_ELEMENTS(suites));
}
