/*
 * memcpy.c - copies and memsets (chapter 11-03), synchronous and on streams.
 *
 * Synchronous calls never reach the emulator: the runtime copies with one
 * memcpy through its own aliases of the memory objects.  Asynchronous calls
 * become tasks of the device's stream engine when both sides are device or
 * pinned memory; with pageable host memory they wait for the stream and copy
 * before returning, as documented.  As on hardware the copy direction comes from
 * the pointers; `kind` only has to be a valid aclrtMemcpyKind.
 *
 * Batches (aclrtMemcpyBatch*) are checked as a whole before anything moves:
 * each copy's memory against its attribute entry, and one direction for all.
 * aclrtMemcpyAsyncWithOffset copies between bases that the device may read from
 * memory when the task runs.  2D copies are in memcpy2d.c.
 */
#include <inttypes.h>
#include <string.h>

#include "rt.h"

static bool kind_valid(aclrtMemcpyKind kind)
{
    return (unsigned)kind <= ACL_MEMCPY_INTER_DEVICE_TO_DEVICE;
}

const char *rt_mem_side_name(RtMemKind k)
{
    switch (k) {
    case RT_MEM_DEVICE:
        return "device memory";
    case RT_MEM_PINNED:
        return "pinned host memory";
    case RT_MEM_DEVICE_BAD:
        return "an address in the device window that is not allocated (or was freed)";
    default:
        return "host memory";
    }
}

/* Checks the common arguments of every copy; returns ACL_SUCCESS or records the error. */
static aclError check_copy(const char *api, void *dst, size_t destMax, const void *src,
                           size_t count, aclrtMemcpyKind kind)
{
    if (!dst || !src)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "dst and src must not be NULL");
    if (!kind_valid(kind))
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "kind %d is not an aclrtMemcpyKind",
                       (int)kind);
    if (count > destMax)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "count %zu is larger than destMax %zu", count, destMax);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtMemcpy(void *dst, size_t destMax, const void *src, size_t count,
                               aclrtMemcpyKind kind)
{
    RT_CHECK_INIT();
    aclError err = check_copy(__func__, dst, destMax, src, count, kind);
    if (err != ACL_SUCCESS || count == 0)
        return err;
    RtMemRef d, s;
    rt_mem_lookup(dst, count, &d);
    rt_mem_lookup(src, count, &s);
    if (d.kind == RT_MEM_DEVICE_BAD || s.kind == RT_MEM_DEVICE_BAD)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "cannot copy %zu bytes from %s at %p to %s "
                       "at %p", count, rt_mem_side_name(s.kind), src, rt_mem_side_name(d.kind),
                       dst);
    err = rt_ipc_check_copy(__func__, &d, &s, kind, false);
    if (err == ACL_SUCCESS)
        err = rt_peer_check_copy(__func__, dst, &d, src, &s);
    if (err != ACL_SUCCESS)
        return err;
    memmove(d.host, s.host, count);
    return ACL_SUCCESS;
}

/* Fills through the runtime's view; `width` 1 (bytes) or 4 (32-bit words). */
static void fill(uint8_t *p, size_t bytes, uint32_t value, int width)
{
    if (width == 1) {
        memset(p, (int)(value & 0xff), bytes);
        return;
    }
    for (size_t i = 0; i + 4 <= bytes; i += 4)
        memcpy(p + i, &value, 4);
}

static aclError set_sync(const char *api, void *ptr, size_t max, uint32_t value, size_t bytes,
                         int width)
{
    RT_CHECK_INIT();
    if (!ptr)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "the pointer must not be NULL");
    if (bytes > max)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "%zu bytes to set exceed the buffer's %zu bytes", bytes, max);
    if (bytes == 0)
        return ACL_SUCCESS;
    RtMemRef r;
    if (rt_mem_lookup(ptr, bytes, &r) == RT_MEM_DEVICE_BAD)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "%p: %s", ptr,
                       rt_mem_side_name(r.kind));
    fill(r.host, bytes, value, width);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtMemset(void *devPtr, size_t maxCount, int32_t value, size_t count)
{
    return set_sync(__func__, devPtr, maxCount, (uint32_t)value, count, 1);
}

RT_EXPORT aclError aclrtMemsetD32(void *ptr, size_t memSize, uint32_t value, size_t N)
{
    if (N > SIZE_MAX / 4) {
        RT_CHECK_INIT();
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "N %zu is too large", N);
    }
    return set_sync(__func__, ptr, memSize, value, N * 4, 4);
}

RT_EXPORT aclError aclrtMemcpyAsync(void *dst, size_t destMax, const void *src, size_t count,
                                    aclrtMemcpyKind kind, aclrtStream stream)
{
    RT_CHECK_INIT();
    aclError err = check_copy(__func__, dst, destMax, src, count, kind);
    if (err != ACL_SUCCESS)
        return err;
    if (kind == ACL_MEMCPY_HOST_TO_HOST)
        return RT_FAIL(ACL_ERROR_RT_FEATURE_NOT_SUPPORT,
                       "host-to-host copies cannot be queued on a stream on Atlas A2 / A3");
    RtStream *s = rt_stream_resolve(stream, __func__, &err);
    if (!s)
        return err;
    if (count == 0)
        return ACL_SUCCESS;
    RtMemRef d, sr;
    rt_mem_lookup(dst, count, &d);
    rt_mem_lookup(src, count, &sr);
    if ((err = rt_ipc_check_copy(__func__, &d, &sr, kind, true)) != ACL_SUCCESS)
        return err;
    if (d.kind == RT_MEM_PAGEABLE || sr.kind == RT_MEM_PAGEABLE) {
        /* Pageable host memory: the copy happens in stream order, before we return. */
        if (d.kind == RT_MEM_DEVICE_BAD || sr.kind == RT_MEM_DEVICE_BAD)
            return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "cannot copy from %s to %s",
                           rt_mem_side_name(sr.kind), rt_mem_side_name(d.kind));
        err = rt_stream_sync(s, -1);
        if (err != ACL_SUCCESS)
            return RT_FAIL(err, "an earlier task on the stream failed");
        memmove(d.host, sr.host, count);
        return ACL_SUCCESS;
    }
    EmuTask t = { .type = EMU_TASK_MEMCPY, .dst = (uint64_t)(uintptr_t)dst,
                  .src = (uint64_t)(uintptr_t)src, .size = count };
    err = rt_stream_submit(s, &t);
    return err == ACL_SUCCESS ? ACL_SUCCESS : RT_FAIL(err, "cannot queue the copy");
}

static aclError set_async(const char *api, void *ptr, size_t max, uint32_t value, size_t bytes,
                          int width, aclrtStream stream)
{
    RT_CHECK_INIT();
    if (!ptr)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "the pointer must not be NULL");
    if (bytes > max)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "%zu bytes to set exceed the buffer's %zu bytes", bytes, max);
    aclError err;
    RtStream *s = rt_stream_resolve(stream, api, &err);
    if (!s)
        return err;
    if (bytes == 0)
        return ACL_SUCCESS;
    RtMemRef r;
    if (rt_mem_lookup(ptr, bytes, &r) == RT_MEM_PAGEABLE) {
        err = rt_stream_sync(s, -1);
        if (err != ACL_SUCCESS)
            return rt_fail(err, api, "an earlier task on the stream failed");
        fill(r.host, bytes, value, width);
        return ACL_SUCCESS;
    }
    EmuTask t = { .type = width == 1 ? EMU_TASK_MEMSET : EMU_TASK_MEMSET32,
                  .dst = (uint64_t)(uintptr_t)ptr, .size = bytes, .value = value };
    err = rt_stream_submit(s, &t);
    return err == ACL_SUCCESS ? ACL_SUCCESS : rt_fail(err, api, "cannot queue the memset");
}

RT_EXPORT aclError aclrtMemsetAsync(void *devPtr, size_t maxCount, int32_t value, size_t count,
                                    aclrtStream stream)
{
    return set_async(__func__, devPtr, maxCount, (uint32_t)value, count, 1, stream);
}

RT_EXPORT aclError aclrtMemsetD32Async(void *ptr, size_t memSize, uint32_t value, size_t N,
                                       aclrtStream stream)
{
    if (N > SIZE_MAX / 4) {
        RT_CHECK_INIT();
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "N %zu is too large", N);
    }
    return set_async(__func__, ptr, memSize, value, N * 4, 4, stream);
}

/* ---- aclrtMemcpyAsyncWithOffset ---- */

/* One side of aclrtMemcpyAsyncWithOffset: `slot` holds the side's base address.
 * The device reads a slot in device or pinned memory itself, when the task runs,
 * so the base may still change after the call; pageable memory only the host
 * can read, so such a base is taken now. */
static void offset_side(const void *const *slot, uint64_t *addr, uint32_t *flags,
                        uint32_t indirect)
{
    RtMemRef r;
    if (rt_mem_lookup(slot, sizeof(*slot), &r) == RT_MEM_PAGEABLE) {
        *addr = (uint64_t)(uintptr_t)*slot;
        return;
    }
    *addr = (uint64_t)(uintptr_t)slot;
    *flags |= indirect;
}

RT_EXPORT aclError aclrtMemcpyAsyncWithOffset(void **dst, size_t destMax, size_t dstDataOffset,
                                              const void **src, size_t count,
                                              size_t srcDataOffset, aclrtMemcpyKind kind,
                                              aclrtStream stream)
{
    RT_CHECK_INIT();
    if (!dst || !src)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "dst and src must not be NULL");
    if (kind != ACL_MEMCPY_INNER_DEVICE_TO_DEVICE)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "kind %d: only ACL_MEMCPY_INNER_DEVICE_TO_DEVICE is supported", (int)kind);
    if (count > destMax)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "count %zu is larger than destMax %zu", count,
                       destMax);
    aclError err;
    RtStream *s = rt_stream_resolve(stream, __func__, &err);
    if (!s)
        return err;
    if (count == 0)
        return ACL_SUCCESS;
    EmuTask t = { .type = EMU_TASK_MEMCPY_PTR, .size = count, .doff = dstDataOffset,
                  .soff = srcDataOffset };
    offset_side((const void *const *)dst, &t.dst, &t.flags, EMU_TASK_DST_INDIRECT);
    offset_side(src, &t.src, &t.flags, EMU_TASK_SRC_INDIRECT);
    /* Bases known now are checked now; the device checks those it reads. */
    bool dnow = !(t.flags & EMU_TASK_DST_INDIRECT), snow = !(t.flags & EMU_TASK_SRC_INDIRECT);
    uint64_t dend = t.dst + t.doff, send = t.src + t.soff;
    bool dbad = dnow && emu_va_device(dend) < 0, sbad = snow && emu_va_device(send) < 0;
    if (dbad || sbad)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "%s base + offset = 0x%" PRIx64 " is not device memory, which "
                       "ACL_MEMCPY_INNER_DEVICE_TO_DEVICE copies", dbad ? "dst" : "src",
                       dbad ? dend : send);
    if (dnow && snow && emu_va_device(dend) != emu_va_device(send))
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "ACL_MEMCPY_INNER_DEVICE_TO_DEVICE: dst 0x%" PRIx64 " and src 0x%" PRIx64
                       " are on different devices", dend, send);
    err = rt_stream_submit(s, &t);
    return err == ACL_SUCCESS ? ACL_SUCCESS : RT_FAIL(err, "cannot queue the copy");
}

/* ---- batches (aclrtMemcpyBatch family) ---- */

typedef struct Batch {
    void **dsts;
    size_t *destMaxs;
    void **srcs;
    size_t *sizes;
    size_t n;
    aclrtMemcpyBatchAttr *attrs;
    size_t *attrsIndexes;
    size_t numAttrs;
    RtMemRef *refs;             /* dst, src of each copy, once checked */
    bool pageable;              /* some copy touches pageable host memory */
} Batch;

/* Whether an attribute's location describes the memory a lookup found. */
static bool location_matches(const aclrtMemLocation *loc, const RtMemRef *r)
{
    switch (loc->type) {
    case ACL_MEM_LOCATION_TYPE_HOST:
        return r->kind == RT_MEM_PINNED;
    case ACL_MEM_LOCATION_TYPE_DEVICE:
        return r->kind == RT_MEM_DEVICE && (uint32_t)r->device == loc->id;
    case ACL_MEM_LOCATION_TYPE_UNREGISTERED:
        return r->kind == RT_MEM_PAGEABLE;
    default:
        /* No managed memory and no NUMA-placed host memory exist here. */
        return false;
    }
}

static aclError check_attrs(const char *api, const Batch *b)
{
    if (b->numAttrs == 0 || b->numAttrs > b->n)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "numAttrs %zu must be at least 1 and at most numBatches %zu", b->numAttrs,
                       b->n);
    for (size_t k = 0; k < b->numAttrs; k++) {
        size_t at = b->attrsIndexes[k];
        if (k == 0 ? at != 0 : at <= b->attrsIndexes[k - 1])
            return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                           "attrsIndexes[%zu] = %zu: the first entry must be 0 and each must "
                           "be greater than the one before", k, at);
        if (at >= b->n)
            return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                           "attrsIndexes[%zu] = %zu is not below numBatches %zu", k, at, b->n);
        const aclrtMemcpyBatchAttr *a = &b->attrs[k];
        if ((unsigned)a->dstLoc.type > ACL_MEM_LOCATION_TYPE_HOST_NUMA ||
            (unsigned)a->srcLoc.type > ACL_MEM_LOCATION_TYPE_HOST_NUMA)
            return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                           "attrs[%zu]: location types %d / %d are not aclrtMemLocationType "
                           "values", k, (int)a->dstLoc.type, (int)a->srcLoc.type);
        for (size_t r = 0; r < sizeof(a->rsv); r++)
            if (a->rsv[r])
                return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                               "attrs[%zu].rsv is reserved and must be 0", k);
    }
    return ACL_SUCCESS;
}

/* Copy i's direction: 1 host to device, 2 device to host, 0 anything else. */
static int direction(const RtMemRef *d, const RtMemRef *s)
{
    if (d->kind == RT_MEM_DEVICE && s->kind != RT_MEM_DEVICE)
        return 1;
    if (d->kind != RT_MEM_DEVICE && s->kind == RT_MEM_DEVICE)
        return 2;
    return 0;
}

/* Checks a batch and looks up its memory (b->refs, to be freed on success).
 * As documented, *fail names a copy only when its memory does not match its
 * attributes or its direction is not the batch's; otherwise it stays SIZE_MAX. */
static aclError check_batch(const char *api, Batch *b, size_t *fail)
{
    *fail = SIZE_MAX;
    if (!b->dsts || !b->destMaxs || !b->srcs || !b->sizes || !b->attrs || !b->attrsIndexes)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "dsts, destMaxs, srcs, sizes, attrs and attrsIndexes must not be NULL");
    if (b->n == 0)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "numBatches must not be 0");
    aclError err = check_attrs(api, b);
    if (err != ACL_SUCCESS)
        return err;
    for (size_t i = 0; i < b->n; i++) {
        if (!b->dsts[i] || !b->srcs[i])
            return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "copy %zu: %s is NULL", i,
                           b->dsts[i] ? "srcs[i]" : "dsts[i]");
        if (b->sizes[i] > b->destMaxs[i])
            return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                           "copy %zu: size %zu is larger than destMax %zu", i, b->sizes[i],
                           b->destMaxs[i]);
    }
    b->refs = b->n <= SIZE_MAX / 2 ? g_try_new(RtMemRef, b->n * 2) : NULL;
    if (!b->refs)
        return rt_fail(ACL_ERROR_RT_MEMORY_ALLOCATION, api, "no host memory for %zu copies",
                       b->n);
    static const char *const dir_name[] = { "neither host to device nor device to host",
                                            "host to device", "device to host" };
    int dir = 0;
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        while (k + 1 < b->numAttrs && b->attrsIndexes[k + 1] <= i)
            k++;
        RtMemRef *d = &b->refs[2 * i], *s = d + 1;
        rt_mem_lookup(b->dsts[i], b->sizes[i], d);
        rt_mem_lookup(b->srcs[i], b->sizes[i], s);
        const aclrtMemcpyBatchAttr *a = &b->attrs[k];
        if (!location_matches(&a->dstLoc, d) || !location_matches(&a->srcLoc, s)) {
            err = rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                          "copy %zu: dst %p is %s and src %p is %s, which attrs[%zu] (dst "
                          "type %d id %u, src type %d id %u) does not describe", i,
                          b->dsts[i], rt_mem_side_name(d->kind), b->srcs[i],
                          rt_mem_side_name(s->kind), k, (int)a->dstLoc.type, a->dstLoc.id,
                          (int)a->srcLoc.type, a->srcLoc.id);
        } else if (direction(d, s) == 0 || (dir && direction(d, s) != dir)) {
            err = rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                          "copy %zu goes %s; all copies of a batch must go either host to "
                          "device or device to host%s%s", i, dir_name[direction(d, s)],
                          dir ? ", like copy 0: " : "", dir ? dir_name[dir] : "");
        }
        if (err != ACL_SUCCESS) {
            *fail = i;
            g_free(b->refs);
            return err;
        }
        dir = direction(d, s);
        b->pageable |= d->kind == RT_MEM_PAGEABLE || s->kind == RT_MEM_PAGEABLE;
    }
    return ACL_SUCCESS;
}

static void batch_copy_now(const Batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->sizes[i])
            memmove(b->refs[2 * i].host, b->refs[2 * i + 1].host, b->sizes[i]);
}

/* What every batch call does first: aclInit, then the whole batch is checked
 * (failIndex may be NULL for the V2 calls, which have none). */
static aclError batch_begin(const char *api, Batch *b, size_t *fail)
{
    aclError err = rt_check_init(api);
    if (err != ACL_SUCCESS)
        return err;
    size_t ignored;
    return check_batch(api, b, fail ? fail : &ignored);
}

static aclError batch_sync(const char *api, Batch *b, size_t *fail)
{
    aclError err = batch_begin(api, b, fail);
    if (err != ACL_SUCCESS)
        return err;
    batch_copy_now(b);
    g_free(b->refs);
    return ACL_SUCCESS;
}

/* One task per copy; with pageable host memory anywhere in the batch, the whole
 * batch is copied in stream order before returning, as documented. */
static aclError batch_async(const char *api, Batch *b, size_t *fail, aclrtStream stream)
{
    aclError err = batch_begin(api, b, fail);
    if (err != ACL_SUCCESS)
        return err;
    RtStream *s = rt_stream_resolve(stream, api, &err);
    if (s && b->pageable) {
        err = rt_stream_sync(s, -1);
        if (err == ACL_SUCCESS)
            batch_copy_now(b);
        else
            rt_fail(err, api, "an earlier task on the stream failed");
    }
    for (size_t i = 0; s && !b->pageable && err == ACL_SUCCESS && i < b->n; i++) {
        if (b->sizes[i] == 0)
            continue;
        EmuTask t = { .type = EMU_TASK_MEMCPY, .dst = (uint64_t)(uintptr_t)b->dsts[i],
                      .src = (uint64_t)(uintptr_t)b->srcs[i], .size = b->sizes[i] };
        err = rt_stream_submit(s, &t);
        if (err != ACL_SUCCESS)
            rt_fail(err, api, "cannot queue copy %zu of %zu", i, b->n);
    }
    g_free(b->refs);
    return err;
}

/* The Batch of an aclrtMemcpyBatch* call's arguments. */
#define BATCH_ARGS() \
    ((Batch){ dsts, destMaxs, srcs, sizes, numBatches, attrs, attrsIndexes, numAttrs, NULL, false })

RT_EXPORT aclError aclrtMemcpyBatch(void **dsts, size_t *destMaxs, void **srcs, size_t *sizes,
                                    size_t numBatches, aclrtMemcpyBatchAttr *attrs,
                                    size_t *attrsIndexes, size_t numAttrs, size_t *failIndex)
{
    if (!failIndex) {
        RT_CHECK_INIT();
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "failIndex must not be NULL");
    }
    Batch b = BATCH_ARGS();
    return batch_sync(__func__, &b, failIndex);
}

RT_EXPORT aclError aclrtMemcpyBatchV2(void **dsts, size_t *destMaxs, void **srcs, size_t *sizes,
                                      size_t numBatches, aclrtMemcpyBatchAttr *attrs,
                                      size_t *attrsIndexes, size_t numAttrs)
{
    Batch b = BATCH_ARGS();
    return batch_sync(__func__, &b, NULL);
}

RT_EXPORT aclError aclrtMemcpyBatchAsync(void **dsts, size_t *destMaxs, void **srcs,
                                         size_t *sizes, size_t numBatches,
                                         aclrtMemcpyBatchAttr *attrs, size_t *attrsIndexes,
                                         size_t numAttrs, size_t *failIndex, aclrtStream stream)
{
    if (!failIndex) {
        RT_CHECK_INIT();
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "failIndex must not be NULL");
    }
    Batch b = BATCH_ARGS();
    return batch_async(__func__, &b, failIndex, stream);
}

RT_EXPORT aclError aclrtMemcpyBatchAsyncV2(void **dsts, size_t *destMaxs, void **srcs,
                                           size_t *sizes, size_t numBatches,
                                           aclrtMemcpyBatchAttr *attrs, size_t *attrsIndexes,
                                           size_t numAttrs, aclrtStream stream)
{
    Batch b = BATCH_ARGS();
    return batch_async(__func__, &b, NULL, stream);
}
