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
