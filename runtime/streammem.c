/*
 * streammem.c - stream memory operations (chapter 11-09): aclrtValueWrite and
 * aclrtValueWait, as stream-engine tasks on a 64-bit word of device memory.
 *
 * The engine translates the word through the page tables like any other
 * access (memory imported from another process included).  A wait is woken by
 * the engine's own writes (value writes, copies, memsets, of any process) and
 * looks again after short growing pauses, because a synchronous aclrtMemcpy
 * writes through the client's own mapping without telling the device.
 */
#include <inttypes.h>

#include "rt.h"

static aclError value_task(const char *api, void *devAddr, uint64_t value, uint32_t flag,
                           aclrtStream stream, uint32_t type)
{
    if (!devAddr)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "devAddr must not be NULL");
    if ((uintptr_t)devAddr % 8)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "devAddr %p is not 8-byte aligned",
                       devAddr);
    if (type == EMU_TASK_VALUE_WRITE && flag != 0)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "flag is reserved and must be 0");
    if (type == EMU_TASK_VALUE_WAIT && flag > ACL_STREAM_WAIT_VALUE_NOR)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "flag %u is not a comparison (GEQ, EQ, AND, NOR)", flag);
    RtMemRef ref;
    if (rt_mem_lookup(devAddr, 8, &ref) != RT_MEM_DEVICE)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "%p is not device memory of ours",
                       devAddr);
    aclError err;
    RtStream *s = rt_stream_resolve(stream, api, &err);
    if (!s)
        return err;
    EmuTask t = { .type = type, .dst = (uint64_t)(uintptr_t)devAddr, .value = value,
                  .flags = type == EMU_TASK_VALUE_WAIT ? flag : 0 };
    err = rt_stream_submit(s, &t);
    return err == ACL_SUCCESS ? ACL_SUCCESS : rt_fail(err, api, "cannot queue the task");
}

RT_EXPORT aclError aclrtValueWrite(void *devAddr, uint64_t value, uint32_t flag,
                                   aclrtStream stream)
{
    RT_CHECK_INIT();
    return value_task(__func__, devAddr, value, flag, stream, EMU_TASK_VALUE_WRITE);
}

RT_EXPORT aclError aclrtValueWait(void *devAddr, uint64_t value, uint32_t flag,
                                  aclrtStream stream)
{
    RT_CHECK_INIT();
    return value_task(__func__, devAddr, value, flag, stream, EMU_TASK_VALUE_WAIT);
}

/* ---- aclrtReduceAsync (chapter 12): an SDMA reduce task ---- */

static bool reduce_type_ok(aclDataType type)
{
    /* A2 / A3: int8, int16, int32, fp16, fp32, bf16. */
    return type == ACL_INT8 || type == ACL_INT16 || type == ACL_INT32 || type == ACL_FLOAT16 ||
           type == ACL_FLOAT || type == ACL_BF16;
}

static size_t reduce_elem(aclDataType type)
{
    return type == ACL_INT8 ? 1 : type == ACL_INT32 || type == ACL_FLOAT ? 4 : 2;
}

RT_EXPORT aclError aclrtReduceAsync(void *dst, const void *src, uint64_t count,
                                    aclrtReduceKind kind, aclDataType type, aclrtStream stream,
                                    void *reserve)
{
    RT_CHECK_INIT();
    if (!dst || !src)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "dst and src must not be NULL");
    if (reserve)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "reserve must be NULL");
    if (kind < ACL_RT_MEMCPY_SDMA_AUTOMATIC_SUM || kind > ACL_RT_MEMCPY_SDMA_AUTOMATIC_EQUAL)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "kind %d is not an aclrtReduceKind",
                       (int)kind);
    if (!reduce_type_ok(type))
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "data type %d: A2 / A3 reduce int8, int16, int32, fp16, fp32 and bf16",
                       (int)type);
    if (count % reduce_elem(type))
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "count %" PRIu64 " bytes is not a whole number of %zu-byte elements",
                       count, reduce_elem(type));
    aclError err;
    RtStream *s = rt_stream_resolve(stream, __func__, &err);
    if (!s)
        return err;
    if (count == 0)
        return ACL_SUCCESS;
    /* Documented: dst and src are memory of the stream's device. */
    const void *ends[2] = { dst, src };
    for (int i = 0; i < 2; i++) {
        RtMemRef ref;
        if (rt_mem_lookup(ends[i], count, &ref) != RT_MEM_DEVICE || ref.device != s->device ||
            ref.ipc_remote)
            return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                           "%s %p (+%" PRIu64 " bytes) is not memory of device %d, the "
                           "stream's device", i ? "src" : "dst", ends[i], count, s->device);
    }
    EmuTask t = { .type = EMU_TASK_REDUCE, .dst = (uint64_t)(uintptr_t)dst,
                  .src = (uint64_t)(uintptr_t)src, .size = count, .value = (uint64_t)kind,
                  .flags = (uint32_t)type };
    err = rt_stream_submit(s, &t);
    return err == ACL_SUCCESS ? ACL_SUCCESS : RT_FAIL(err, "cannot queue the reduce task");
}
