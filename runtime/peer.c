/*
 * peer.c - devices reaching each other (chapter 04): peer access between
 * devices of one process (aclrtDeviceCanAccessPeer, aclrtDeviceEnablePeerAccess,
 * aclrtDeviceDisablePeerAccess, aclrtDevicePeerAccessStatus), the links between
 * devices (aclrtGetDevicesTopo) and the process id the driver knows
 * (aclrtDeviceGetBareTgid).
 *
 * Peer access is one-directional and device-level: enabling peer P from the
 * current device D lets D's copy engines reach P's aclrtMalloc memory, not the
 * other way round.  The emulator enforces it for stream tasks (a task of a
 * stream of D touching P's memory without it fails with 507013); the runtime
 * keeps the same state (RtDevice.peers, bit P of device D, user ids) for the
 * status query and for synchronous copies, which never reach the emulator
 * (rt_peer_check_copy).  Resetting either device of a pair drops the pair.
 *
 * Topology model, by profile:
 *  - a2: 8 x Ascend 910B, every pair on HCCS (a full mesh).
 *  - a3: 16 dies per server; dies 2k and 2k+1 are the two dies of one chip
 *    (SIO), the chips are connected through HCCS switches (HCCS_SW).
 * Every two distinct devices of the server can reach each other.
 *
 * Locking: RtDevice.peers is written under g_rt.lock, with atomic stores, and
 * read with atomic loads by copies, which never take g_rt.lock.
 */
#include <string.h>

#include "rt.h"

static uint32_t peers_of(int32_t dev)
{
    return __atomic_load_n(&g_rt.dev[dev].peers, __ATOMIC_RELAXED);
}

/* Called with g_rt.lock held: tells the emulator, then records, dev -> peer. */
static aclError set_peer_locked(int32_t dev, int32_t peer, bool enable)
{
    EmuReqPeer q = { .device = rt_device_phys(dev), .peer = rt_device_phys(peer),
                     .enable = enable };
    aclError err = rt_call(EMU_CMD_PEER_ACCESS, &q, sizeof(q), NULL, 0, NULL);
    if (err != ACL_SUCCESS)
        return err;
    uint32_t bit = 1u << peer;
    if (enable)
        __atomic_fetch_or(&g_rt.dev[dev].peers, bit, __ATOMIC_RELAXED);
    else
        __atomic_fetch_and(&g_rt.dev[dev].peers, ~bit, __ATOMIC_RELAXED);
    return ACL_SUCCESS;
}

void rt_peer_drop_device(int32_t dev)
{
    for (int32_t p = 0; p < g_rt.ndev; p++) {
        if (peers_of(dev) & (1u << p))
            set_peer_locked(dev, p, false);
        if (peers_of(p) & (1u << dev))
            set_peer_locked(p, dev, false);
    }
}

/* The two ids of a pair query: both valid (107001) and distinct (107000). */
static aclError check_pair(const char *api, int32_t dev, int32_t peer)
{
    if (!rt_device_valid(dev) || !rt_device_valid(peer))
        return rt_fail(ACL_ERROR_RT_INVALID_DEVICEID, api,
                       "invalid device id %d; the valid range is [0, %d)",
                       rt_device_valid(dev) ? peer : dev, g_rt.ndev);
    if (dev == peer)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "device %d and its peer must be two different devices", dev);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtDeviceCanAccessPeer(int32_t *canAccessPeer, int32_t deviceId,
                                            int32_t peerDeviceId)
{
    RT_CHECK_INIT();
    if (!canAccessPeer)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "canAccessPeer must not be NULL");
    aclError err = check_pair(__func__, deviceId, peerDeviceId);
    if (err != ACL_SUCCESS)
        return err;
    /* A2's HCCS mesh and A3's SIO / HCCS switches join every pair of a server. */
    *canAccessPeer = 1;
    return ACL_SUCCESS;
}

/* Enable / Disable: from the current context's device to peerDeviceId. */
static aclError change_peer(const char *api, int32_t peerDeviceId, bool enable)
{
    aclError err;
    RtContext *ctx = rt_require_ctx(api, &err);
    if (!ctx)
        return err;
    err = check_pair(api, ctx->device, peerDeviceId);
    if (err != ACL_SUCCESS)
        return err;
    /* A switch, not a count: enabling twice or disabling what is off is a
     * success that changes nothing (docs/decisions.md). */
    pthread_mutex_lock(&g_rt.lock);
    err = set_peer_locked(ctx->device, peerDeviceId, enable);
    pthread_mutex_unlock(&g_rt.lock);
    if (err != ACL_SUCCESS)
        return rt_fail(err, api, "cannot %s peer access from device %d to device %d",
                       enable ? "enable" : "disable", ctx->device, peerDeviceId);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtDeviceEnablePeerAccess(int32_t peerDeviceId, uint32_t flags)
{
    RT_CHECK_INIT();
    if (flags != 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "flags %u: reserved, must be 0", flags);
    return change_peer(__func__, peerDeviceId, true);
}

RT_EXPORT aclError aclrtDeviceDisablePeerAccess(int32_t peerDeviceId)
{
    RT_CHECK_INIT();
    return change_peer(__func__, peerDeviceId, false);
}

RT_EXPORT aclError aclrtDevicePeerAccessStatus(int32_t deviceId, int32_t peerDeviceId,
                                               int32_t *status)
{
    RT_CHECK_INIT();
    if (!status)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "status must not be NULL");
    aclError err = check_pair(__func__, deviceId, peerDeviceId);
    if (err != ACL_SUCCESS)
        return err;
    *status = (peers_of(deviceId) >> peerDeviceId) & 1;
    return ACL_SUCCESS;
}

/* The link between two distinct physical devices of the client's server. */
static uint64_t topology(int32_t a, int32_t b)
{
    if (strcmp(g_rt.conn.welcome.profile, "a3") == 0)
        return a / 2 == b / 2 ? ACL_RT_DEVS_TOPOLOGY_SIO : ACL_RT_DEVS_TOPOLOGY_HCCS_SW;
    return ACL_RT_DEVS_TOPOLOGY_HCCS;
}

RT_EXPORT aclError aclrtGetDevicesTopo(uint32_t deviceId, uint32_t otherDeviceId,
                                       uint64_t *value)
{
    RT_CHECK_INIT();
    if (!value)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "value must not be NULL");
    /* Ids above INT32_MAX become negative, hence invalid. */
    aclError err = check_pair(__func__, (int32_t)deviceId, (int32_t)otherDeviceId);
    if (err != ACL_SUCCESS)
        return err;
    *value = topology(rt_device_phys((int32_t)deviceId), rt_device_phys((int32_t)otherDeviceId));
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtDeviceGetBareTgid(int32_t *pid)
{
    RT_CHECK_INIT();
    if (!pid)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "pid must not be NULL");
    /* The pid the kernel gave npu-emu for our socket (SO_PEERCRED): the one
     * every other process's request naming us will be checked against. */
    *pid = (int32_t)g_rt.conn.welcome.client_pid;
    return ACL_SUCCESS;
}

/* ---- synchronous copies between two devices ---- */

/* aclrtMalloc memory (or memory imported into a device's heap), which peer
 * access governs; VMM mappings are governed by aclrtMemSetAccess instead. */
static bool heap_memory(const void *p, const RtMemRef *r)
{
    uint64_t a = (uint64_t)(uintptr_t)p;
    return r->kind == RT_MEM_DEVICE && r->device >= 0 && emu_va_device(a) >= 0 &&
           (a - EMU_VA_WINDOW_LO) % EMU_VA_DEVICE_SPAN < EMU_VA_VMM_OFFSET;
}

aclError rt_peer_check_copy(const char *api, const void *dst, const RtMemRef *d,
                            const void *src, const RtMemRef *s)
{
    if (d->kind != RT_MEM_DEVICE || s->kind != RT_MEM_DEVICE || d->device < 0 ||
        s->device < 0 || d->device == s->device)
        return ACL_SUCCESS;
    bool dh = heap_memory(dst, d), sh = heap_memory(src, s);
    if (!dh && !sh)
        return ACL_SUCCESS;
    /* The current device copies: it must reach each side that is not its own. */
    RtContext *ctx = rt_current_ctx();
    if (!ctx)
        return rt_fail(ACL_ERROR_RT_CONTEXT_NULL, api,
                       "a copy between memory of device %d and device %d runs on the current "
                       "device, and there is none: call aclrtSetDevice first", s->device,
                       d->device);
    uint32_t peers = peers_of(ctx->device);
    const RtMemRef *need[2] = { sh ? s : NULL, dh ? d : NULL };
    for (int i = 0; i < 2; i++) {
        const RtMemRef *r = need[i];
        if (r && r->device != ctx->device && !(peers & (1u << r->device)))
            return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                           "copy from device %d memory %p to device %d memory %p: the current "
                           "device %d has no peer access to device %d (call "
                           "aclrtDeviceEnablePeerAccess(%d, 0) on device %d first)", s->device,
                           src, d->device, dst, ctx->device, r->device, r->device,
                           ctx->device);
    }
    return ACL_SUCCESS;
}
