/*
 * device.c - devices as the application sees them (chapter 04): visibility
 * (ASCEND_RT_VISIBLE_DEVICES), aclrtSetDevice / aclrtResetDevice reference
 * counts, queries and device-wide synchronisation.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

/* ASCEND_RT_VISIBLE_DEVICES: comma-separated ascending logical ids; reading
 * stops at the first token that is not a valid id (bad character, out of
 * range, not ascending, duplicate) and keeps what came before.  Unset or empty
 * means every device. */
static void parse_visible(const char *env, int32_t ndevices)
{
    g_rt.ndev = 0;
    if (!env || !*env) {
        for (int32_t i = 0; i < ndevices; i++)
            g_rt.dev[g_rt.ndev++].phys = i;
        return;
    }
    const char *p = env;
    int32_t last = -1;
    while (*p) {
        if (*p < '0' || *p > '9')
            break;
        char *end;
        long id = strtol(p, &end, 10);
        if (id >= ndevices || id <= last || (*end != ',' && *end != '\0'))
            break;
        g_rt.dev[g_rt.ndev++].phys = (int32_t)id;
        last = (int32_t)id;
        p = *end == ',' ? end + 1 : end;
    }
    if (*p)
        fprintf(stderr, "npu-emu: ASCEND_RT_VISIBLE_DEVICES=\"%s\": ignoring everything from "
                        "\"%s\" on (ids must be ascending, comma-separated, below %d)\n",
                env, p, ndevices);
}

void rt_devices_init(void)
{
    memset(g_rt.dev, 0, sizeof(g_rt.dev));
    parse_visible(getenv("ASCEND_RT_VISIBLE_DEVICES"), (int32_t)g_rt.conn.welcome.ndevices);
}

bool rt_device_valid(int32_t user_id)
{
    return user_id >= 0 && user_id < g_rt.ndev;
}

int32_t rt_device_phys(int32_t user_id)
{
    return g_rt.dev[user_id].phys;
}

/* Called with g_rt.lock held: opens the device and its default context. */
static aclError device_open_locked(int32_t id)
{
    RtDevice *d = &g_rt.dev[id];
    if (d->open)
        return ACL_SUCCESS;
    EmuReqDevice q = { .device = d->phys };
    aclError err = rt_call(EMU_CMD_DEVICE_OPEN, &q, sizeof(q), NULL, 0, NULL);
    if (err != ACL_SUCCESS)
        return err;
    d->default_ctx = rt_ctx_new(id, true, &err);
    if (!d->default_ctx)
        return err;
    d->open = true;
    return ACL_SUCCESS;
}

/* Called with g_rt.lock held: waits for the device's work, then frees everything
 * the process has on it, in the emulator and here. */
static void device_close_locked(int32_t id)
{
    RtDevice *d = &g_rt.dev[id];
    if (!d->open)
        return;
    EmuReqDevice q = { .device = d->phys };
    rt_stream_drop_device(id);
    rt_peer_drop_device(id);
    rt_notify_drop_device(id);
    rt_event_drop_device(id);
    rt_call(EMU_CMD_DEVICE_CLOSE, &q, sizeof(q), NULL, 0, NULL);
    rt_ctx_drop_device(id);
    rt_memory_drop_device(d->phys);
    d->open = false;
    d->default_ctx = NULL;
    d->set_count = 0;
}

/* Opens a device for aclrtCreateContext without taking a Set reference. */
aclError rt_device_open(int32_t id)
{
    pthread_mutex_lock(&g_rt.lock);
    aclError err = device_open_locked(id);
    pthread_mutex_unlock(&g_rt.lock);
    return err;
}

void rt_devices_release(void)
{
    for (int32_t i = 0; i < g_rt.ndev; i++)
        device_close_locked(i);
}

RT_EXPORT aclError aclrtSetDevice(int32_t deviceId)
{
    RT_CHECK_INIT();
    if (!rt_device_valid(deviceId))
        return RT_FAIL(ACL_ERROR_RT_INVALID_DEVICEID,
                       "invalid device id %d; the valid range is [0, %d)", deviceId, g_rt.ndev);
    pthread_mutex_lock(&g_rt.lock);
    aclError err = device_open_locked(deviceId);
    if (err == ACL_SUCCESS) {
        g_rt.dev[deviceId].set_count++;
        rt_set_current_ctx(g_rt.dev[deviceId].default_ctx);
    }
    pthread_mutex_unlock(&g_rt.lock);
    rt_stream_state_flush();    /* CREATE_POST of the device's default stream */
    return err == ACL_SUCCESS ? ACL_SUCCESS : RT_FAIL(err, "cannot open device %d", deviceId);
}

static aclError reset_device(const char *api, int32_t deviceId, bool force)
{
    RT_CHECK_INIT();
    if (!rt_device_valid(deviceId))
        return rt_fail(ACL_ERROR_RT_INVALID_DEVICEID,
                       api, "invalid device id %d; the valid range is [0, %d)", deviceId, g_rt.ndev);
    /* Documented: the device's pending work finishes first.  Wait before taking
     * the lock, so other threads (other devices) are not held up meanwhile. */
    if (g_rt.dev[deviceId].set_count == (force ? g_rt.dev[deviceId].set_count : 1) &&
        g_rt.dev[deviceId].set_count > 0) {
        rt_streams_wait(rt_stream_on_device, &deviceId, -1);
        rt_stream_state_pre_destroy(rt_stream_on_device, &deviceId);
    }
    pthread_mutex_lock(&g_rt.lock);
    RtDevice *d = &g_rt.dev[deviceId];
    if (d->set_count == 0) {
        pthread_mutex_unlock(&g_rt.lock);
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "device %d is not set (no aclrtSetDevice reference left to release)",
                       deviceId);
    }
    d->set_count = force ? 0 : d->set_count - 1;
    if (d->set_count == 0)
        device_close_locked(deviceId);
    pthread_mutex_unlock(&g_rt.lock);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtResetDevice(int32_t deviceId)
{
    return reset_device(__func__, deviceId, false);
}

RT_EXPORT aclError aclrtResetDeviceForce(int32_t deviceId)
{
    return reset_device(__func__, deviceId, true);
}

RT_EXPORT aclError aclrtGetDevice(int32_t *deviceId)
{
    RT_CHECK_INIT();
    if (!deviceId)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "deviceId must not be NULL");
    aclError err;
    RtContext *ctx = rt_require_ctx(__func__, &err);
    if (!ctx)
        return err;
    *deviceId = ctx->device;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtGetDeviceCount(uint32_t *count)
{
    RT_CHECK_INIT();
    if (!count)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "count must not be NULL");
    *count = (uint32_t)g_rt.ndev;
    return ACL_SUCCESS;
}

RT_EXPORT const char *aclrtGetSocName(void)
{
    if (rt_check_init(__func__) != ACL_SUCCESS)
        return NULL;
    return g_rt.conn.welcome.soc_name;
}

RT_EXPORT aclError aclrtGetRunMode(aclrtRunMode *runMode)
{
    RT_CHECK_INIT();
    if (!runMode)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "runMode must not be NULL");
    *runMode = ACL_HOST;    /* A2 / A3 cards are driven from the host */
    return ACL_SUCCESS;
}

static aclError sync_device(const char *api, int64_t timeout_ms)
{
    RT_CHECK_INIT();
    aclError err;
    RtContext *ctx = rt_require_ctx(api, &err);
    if (!ctx)
        return err;
    EmuReqDevice q = { .device = rt_device_phys(ctx->device) };
    EmuRespDeviceSync r;
    err = rt_call(EMU_CMD_DEVICE_SYNC, &q, sizeof(q), &r, sizeof(r), NULL);
    if (err != ACL_SUCCESS)
        return rt_fail(err, api, "device %d is not reachable", ctx->device);
    /* Other threads keep working while we wait. */
    aclError first = rt_streams_wait(rt_stream_on_device, &ctx->device, timeout_ms);
    if (first != ACL_SUCCESS)
        return rt_fail(first, api, "a task on device %d failed or did not finish in time",
                       ctx->device);
    rt_mempool_synced(NULL, ctx->device);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtSynchronizeDevice(void)
{
    return sync_device(__func__, -1);
}

RT_EXPORT aclError aclrtSynchronizeDeviceWithTimeout(int32_t timeout)
{
    if (timeout < -1 || timeout == 0) {
        RT_CHECK_INIT();
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "timeout %d: use -1 (forever) or > 0 ms",
                       timeout);
    }
    return sync_device(__func__, timeout);
}

RT_EXPORT aclError aclrtGetDeviceInfo(uint32_t deviceId, aclrtDevAttr attr, int64_t *value)
{
    RT_CHECK_INIT();
    if (!value)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "value must not be NULL");
    if (!rt_device_valid((int32_t)deviceId))
        return RT_FAIL(ACL_ERROR_RT_INVALID_DEVICEID, "invalid device id %u; the valid range "
                                                      "is [0, %d)", deviceId, g_rt.ndev);
    const EmuWelcome *w = &g_rt.conn.welcome;
    int32_t phys = rt_device_phys((int32_t)deviceId);
    bool a3 = strcmp(w->profile, "a3") == 0;
    switch (attr) {
    case ACL_DEV_ATTR_AICPU_CORE_NUM:
        *value = 6;
        break;
    case ACL_DEV_ATTR_AICORE_CORE_NUM:
    case ACL_DEV_ATTR_CUBE_CORE_NUM:
        *value = 24;
        break;
    case ACL_DEV_ATTR_VECTOR_CORE_NUM:
        *value = 48;
        break;
    case ACL_DEV_ATTR_WARP_SIZE:
    case ACL_DEV_ATTR_MAX_THREAD_PER_VECTOR_CORE:
    case ACL_DEV_ATTR_UBUF_PER_VECTOR_CORE:
    case ACL_DEV_ATTR_MAX_GRID_DIM_X:
    case ACL_DEV_ATTR_MAX_GRID_DIM_Y:
    case ACL_DEV_ATTR_MAX_GRID_DIM_Z:
    case ACL_DEV_ATTR_MAX_BLOCK_PER_GRID:
    case ACL_DEV_ATTR_MAX_THREADS_PER_BLOCK:
    case ACL_DEV_ATTR_MAX_BLOCK_DIM_X:
    case ACL_DEV_ATTR_MAX_BLOCK_DIM_Y:
    case ACL_DEV_ATTR_MAX_BLOCK_DIM_Z:
        *value = 0;     /* SIMT attributes: not an A2 / A3 feature, reported as 0 */
        break;
    case ACL_DEV_ATTR_TOTAL_GLOBAL_MEM_SIZE:
        *value = (int64_t)w->hbm_bytes;
        break;
    case ACL_DEV_ATTR_L2_CACHE_SIZE:
        *value = 192ll << 20;
        break;
    case ACL_DEV_ATTR_SMP_ID:
        *value = 0;
        break;
    case ACL_DEV_ATTR_PHY_CHIP_ID:
        *value = a3 ? phys / 2 : phys;  /* A3: two dies per chip */
        break;
    case ACL_DEV_ATTR_SUPER_POD_DEVICE_ID:
        *value = a3 ? (int64_t)w->server * w->ndevices + phys : 0;
        break;
    case ACL_DEV_ATTR_SUPER_POD_SERVER_ID:
        *value = a3 ? w->server : 0;
        break;
    case ACL_DEV_ATTR_SUPER_POD_ID:
    case ACL_DEV_ATTR_CUST_OP_PRIVILEGE:
    case ACL_DEV_ATTR_MAINBOARD_ID:
    case ACL_DEV_ATTR_IS_VIRTUAL:
        *value = 0;
        break;
    case ACL_DEV_ATTR_NPU_ARCH:
        *value = 2201;
        break;
    case ACL_DEV_ATTR_HD_CONNECT_TYPE:
    case ACL_DEV_ATTR_DEVICE_FORM_FACTOR:
        return RT_FAIL(ACL_ERROR_RT_FEATURE_NOT_SUPPORT, "attribute %d is not available on "
                                                         "Atlas A2 / A3", (int)attr);
    default:
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "attribute %d is not an aclrtDevAttr",
                       (int)attr);
    }
    return ACL_SUCCESS;
}

/* ---- id translation: user id (API) -> logical id (visible list) = physical id ---- */

static aclError map_user_to_logic(const char *api, int32_t user, int32_t *out)
{
    RT_CHECK_INIT();
    if (!out)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "output pointer must not be NULL");
    if (!rt_device_valid(user))
        return rt_fail(ACL_ERROR_RT_INVALID_DEVICEID, api, "invalid user device id %d", user);
    *out = rt_device_phys(user);
    return ACL_SUCCESS;
}

static aclError map_logic_to_user(const char *api, int32_t logic, int32_t *out)
{
    RT_CHECK_INIT();
    if (!out)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "output pointer must not be NULL");
    for (int32_t i = 0; i < g_rt.ndev; i++)
        if (g_rt.dev[i].phys == logic) {
            *out = i;
            return ACL_SUCCESS;
        }
    return rt_fail(ACL_ERROR_RT_INVALID_DEVICEID, api, "device %d is not visible", logic);
}

RT_EXPORT aclError aclrtGetLogicDevIdByUserDevId(const int32_t userDevid, int32_t *const logicDevId)
{
    return map_user_to_logic(__func__, userDevid, logicDevId);
}

RT_EXPORT aclError aclrtGetUserDevIdByLogicDevId(const int32_t logicDevId, int32_t *const userDevid)
{
    return map_logic_to_user(__func__, logicDevId, userDevid);
}

RT_EXPORT aclError aclrtGetPhyDevIdByUserDevId(const int32_t userDevId, int32_t *const phyDevId)
{
    return map_user_to_logic(__func__, userDevId, phyDevId);
}

RT_EXPORT aclError aclrtGetUserDevIdByPhyDevId(const int32_t phyDevId, int32_t *const userDevId)
{
    return map_logic_to_user(__func__, phyDevId, userDevId);
}

/* Despite their names these two take the user id (documented CANN behaviour). */
RT_EXPORT aclError aclrtGetLogicDevIdByPhyDevId(const int32_t phyDevId, int32_t *const logicDevId)
{
    return map_user_to_logic(__func__, phyDevId, logicDevId);
}

RT_EXPORT aclError aclrtGetPhyDevIdByLogicDevId(const int32_t logicDevId, int32_t *const phyDevId)
{
    return map_user_to_logic(__func__, logicDevId, phyDevId);
}

/* ---- status and capability queries ---- */

RT_EXPORT aclError aclrtQueryDeviceStatus(int32_t deviceId, aclrtDeviceStatus *deviceStatus)
{
    RT_CHECK_INIT();
    if (!deviceStatus)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "deviceStatus must not be NULL");
    if (!rt_device_valid(deviceId))
        return RT_FAIL(ACL_ERROR_RT_INVALID_DEVICEID,
                       "invalid device id %d; the valid range is [0, %d)", deviceId, g_rt.ndev);
    /* Ask the emulator rather than trust our own state: a device whose
     * emulator has gone is not usable, and only a round trip can tell.  That
     * answer is the status, not a failure of the query. */
    aclError err = rt_call(EMU_CMD_NOP, NULL, 0, NULL, 0, NULL);
    if (err != ACL_SUCCESS && err != ACL_ERROR_RT_SOCKET_CLOSE)
        return RT_FAIL(err, "cannot reach device %d", deviceId);
    *deviceStatus = err == ACL_SUCCESS ? ACL_RT_DEVICE_STATUS_NORMAL
                                       : ACL_RT_DEVICE_STATUS_ABNORMAL;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtDeviceGetStreamPriorityRange(int32_t *leastPriority,
                                                     int32_t *greatestPriority)
{
    RT_CHECK_INIT();
    if (!leastPriority || !greatestPriority)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "leastPriority and greatestPriority must not be NULL");
    /* A2 / A3 stream priorities are 0..7, a smaller number running first. */
    *leastPriority = 7;
    *greatestPriority = 0;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtGetDeviceUtilizationRate(int32_t deviceId,
                                                 aclrtUtilizationInfo *utilizationInfo)
{
    RT_CHECK_INIT();
    if (!utilizationInfo)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "utilizationInfo must not be NULL");
    if (!rt_device_valid(deviceId))
        return RT_FAIL(ACL_ERROR_RT_INVALID_DEVICEID,
                       "invalid device id %d; the valid range is [0, %d)", deviceId, g_rt.ndev);
    /* No process can run anything on the emulated Cube, Vector or AI CPU cores
     * (stream tasks are copies and memsets, which the DMA engine executes), so
     * 0 is the true figure for every process on the device.  This must become
     * a measurement once kernels execute.  Memory utilisation is documented as
     * not supported: -1.  utilizationExtend is reserved and left alone. */
    utilizationInfo->cubeUtilization = 0;
    utilizationInfo->vectorUtilization = 0;
    utilizationInfo->aicpuUtilization = 0;
    utilizationInfo->memoryUtilization = -1;
    return ACL_SUCCESS;
}
