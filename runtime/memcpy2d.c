/*
 * memcpy2d.c - pitched two-dimensional copies (chapter 11-03: aclrtMemcpy2d,
 * aclrtMemcpy2dAsync).
 *
 * A 2D copy moves `height` rows of `width` bytes; row i starts at
 * dst + i * dpitch and src + i * spitch.  Each side's footprint,
 * (height - 1) * pitch + width bytes, is looked up once, like one range of
 * aclrtMemcpy: device memory must lie inside one live allocation.
 *
 * Unlike aclrtMemcpy, `kind` is not reserved here: the reference lists the
 * kinds each call supports (others give ACL_ERROR_INVALID_PARAM), and the
 * pointers must agree with the kind.  The asynchronous call becomes one
 * EMU_TASK_MEMCPY2D task, whatever the height (up to 5 Mi rows), unless host
 * memory is pageable: then it waits for the stream and copies before returning.
 */
#include <string.h>

#include "rt.h"

/* aclrtMemcpy2dAsync's documented limits. */
#define MEMCPY2D_MAX_WIDTH  5000000u
#define MEMCPY2D_MAX_HEIGHT (5u * 1024 * 1024)

static bool kind_allowed(aclrtMemcpyKind kind, bool async)
{
    return kind == ACL_MEMCPY_HOST_TO_DEVICE || kind == ACL_MEMCPY_DEVICE_TO_HOST ||
           (async && kind == ACL_MEMCPY_DEVICE_TO_DEVICE);
}

static const char *kind_name(aclrtMemcpyKind kind)
{
    switch (kind) {
    case ACL_MEMCPY_HOST_TO_DEVICE:
        return "ACL_MEMCPY_HOST_TO_DEVICE";
    case ACL_MEMCPY_DEVICE_TO_HOST:
        return "ACL_MEMCPY_DEVICE_TO_HOST";
    default:
        return "ACL_MEMCPY_DEVICE_TO_DEVICE";
    }
}

static bool on_device(RtMemKind k)
{
    return k == RT_MEM_DEVICE || k == RT_MEM_DEVICE_BAD;
}

typedef struct Copy2d {
    void *dst;
    size_t dpitch;
    const void *src;
    size_t spitch;
    size_t width;
    size_t height;
    aclrtMemcpyKind kind;
    RtMemRef d, s;              /* the two footprints, looked up */
} Copy2d;

/* Checks everything the call can check by itself and looks up both footprints.
 * Returns ACL_SUCCESS or records the error. */
static aclError check_2d(const char *api, Copy2d *c, bool async)
{
    if (!kind_allowed(c->kind, async))
        return rt_fail(ACL_ERROR_INVALID_PARAM, api,
                       "kind %d is not supported: use ACL_MEMCPY_HOST_TO_DEVICE or "
                       "ACL_MEMCPY_DEVICE_TO_HOST%s", (int)c->kind,
                       async ? " or ACL_MEMCPY_DEVICE_TO_DEVICE" : "");
    if (!c->dst || !c->src)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "dst and src must not be NULL");
    if (c->width == 0 || c->height == 0)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "width %zu x height %zu copies nothing",
                       c->width, c->height);
    if (c->width > c->dpitch || c->width > c->spitch)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "width %zu must not exceed dpitch %zu or spitch %zu", c->width,
                       c->dpitch, c->spitch);
    if (async && c->width > MEMCPY2D_MAX_WIDTH)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "width %zu is above the maximum %u",
                       c->width, MEMCPY2D_MAX_WIDTH);
    if (async && c->height > MEMCPY2D_MAX_HEIGHT)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "height %zu is above the maximum %u",
                       c->height, MEMCPY2D_MAX_HEIGHT);
    uint64_t dspan, sspan;
    if (!emu_span_2d(c->width, c->height, c->dpitch, &dspan) ||
        !emu_span_2d(c->width, c->height, c->spitch, &sspan) ||
        dspan > UINTPTR_MAX - (uintptr_t)c->dst || sspan > UINTPTR_MAX - (uintptr_t)c->src)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "%zu rows of pitch %zu / %zu run past the end of the address space",
                       c->height, c->dpitch, c->spitch);
    rt_mem_lookup(c->dst, dspan, &c->d);
    rt_mem_lookup(c->src, sspan, &c->s);
    aclError err = rt_ipc_check_copy(api, &c->d, &c->s, (int)c->kind, async);
    if (err != ACL_SUCCESS)
        return err;
    bool dst_dev = c->kind != ACL_MEMCPY_DEVICE_TO_HOST;
    bool src_dev = c->kind != ACL_MEMCPY_HOST_TO_DEVICE;
    if (on_device(c->d.kind) != dst_dev || on_device(c->s.kind) != src_dev)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "%s, but dst %p is %s and src %p is %s", kind_name(c->kind), c->dst,
                       rt_mem_side_name(c->d.kind), c->src, rt_mem_side_name(c->s.kind));
    return ACL_SUCCESS;
}

/* Copies through the runtime's views; both footprints were checked. */
static void copy_rows(const Copy2d *c)
{
    if (c->dpitch == c->width && c->spitch == c->width) {
        memmove(c->d.host, c->s.host, c->width * c->height);
        return;
    }
    for (size_t row = 0; row < c->height; row++)
        memmove(c->d.host + row * c->dpitch, c->s.host + row * c->spitch, c->width);
}

static aclError bad_footprint(const char *api, const Copy2d *c)
{
    const void *p = c->d.kind == RT_MEM_DEVICE_BAD ? c->dst : c->src;
    return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                   "the %zu rows at %p do not lie inside one live device allocation", c->height,
                   p);
}

RT_EXPORT aclError aclrtMemcpy2d(void *dst, size_t dpitch, const void *src, size_t spitch,
                                 size_t width, size_t height, aclrtMemcpyKind kind)
{
    RT_CHECK_INIT();
    Copy2d c = { .dst = dst, .dpitch = dpitch, .src = src, .spitch = spitch, .width = width,
                 .height = height, .kind = kind };
    aclError err = check_2d(__func__, &c, false);
    if (err != ACL_SUCCESS)
        return err;
    if (c.d.kind == RT_MEM_DEVICE_BAD || c.s.kind == RT_MEM_DEVICE_BAD)
        return bad_footprint(__func__, &c);
    copy_rows(&c);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtMemcpy2dAsync(void *dst, size_t dpitch, const void *src, size_t spitch,
                                      size_t width, size_t height, aclrtMemcpyKind kind,
                                      aclrtStream stream)
{
    RT_CHECK_INIT();
    Copy2d c = { .dst = dst, .dpitch = dpitch, .src = src, .spitch = spitch, .width = width,
                 .height = height, .kind = kind };
    aclError err = check_2d(__func__, &c, true);
    if (err != ACL_SUCCESS)
        return err;
    RtStream *s = rt_stream_resolve(stream, __func__, &err);
    if (!s)
        return err;
    if (c.d.kind == RT_MEM_PAGEABLE || c.s.kind == RT_MEM_PAGEABLE) {
        /* Pageable host memory: the copy happens in stream order, before we return. */
        if (c.d.kind == RT_MEM_DEVICE_BAD || c.s.kind == RT_MEM_DEVICE_BAD)
            return bad_footprint(__func__, &c);
        err = rt_stream_sync(s, -1);
        if (err != ACL_SUCCESS)
            return RT_FAIL(err, "an earlier task on the stream failed");
        copy_rows(&c);
        return ACL_SUCCESS;
    }
    /* Device and pinned memory: the device checks its footprints when it runs. */
    EmuTask t = { .type = EMU_TASK_MEMCPY2D, .dst = (uint64_t)(uintptr_t)dst,
                  .src = (uint64_t)(uintptr_t)src, .size = width, .height = height,
                  .dpitch = dpitch, .spitch = spitch };
    err = rt_stream_submit(s, &t);
    return err == ACL_SUCCESS ? ACL_SUCCESS : RT_FAIL(err, "cannot queue the 2D copy");
}
