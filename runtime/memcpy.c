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
