/*
 * notify.c - notifies (chapter 08): create / destroy, record and
 * wait-and-reset as stream tasks, id, batch reset, and IPC notifies (export
 * key, whitelists, import).
 *
 * The emulator owns the notifies (devmodel/notify.h); the client holds an
 * RtNotify per notify it created or imported, which names the emulator's
 * per-session handle.  Only the creating process may wait on a notify;
 * importers record.  A stream of another device needs peer access to the
 * notify's device, or an import with ACL_RT_NOTIFY_IMPORT_FLAG_ENABLE_PEER_ACCESS.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <string.h>

#include "rt.h"
#include "rt_unsupported.h"

#define KEY_LEN (2 * EMU_TOKEN_LEN + 1)

typedef struct RtNotify {
    uint64_t handle;            /* the emulator's name for it in our session */
    uint32_t id;
    int32_t device;             /* user id of its device (-1: another server's) */
    bool imported;
    bool exported;
    uint8_t token[EMU_TOKEN_LEN]; /* when exported */
} RtNotify;

static pthread_mutex_t notify_lock = PTHREAD_MUTEX_INITIALIZER;
static GHashTable *live;        /* RtNotify * -> itself */

static int32_t user_of_phys(int32_t phys)
{
    for (int32_t u = 0; u < g_rt.ndev; u++)
        if (g_rt.dev[u].phys == phys)
            return u;
    return -1;
}

/* A copy of the live notify n, or false. */
static bool notify_get(aclrtNotify n, RtNotify *out)
{
    pthread_mutex_lock(&notify_lock);
    bool ok = n && live && g_hash_table_contains(live, n);
    if (ok)
        *out = *(RtNotify *)n;
    pthread_mutex_unlock(&notify_lock);
    return ok;
}

static aclError dead(const char *api, aclrtNotify n)
{
    return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                   "%p is not a notify of this process (or it was destroyed)", n);
}

static RtNotify *notify_add(const EmuRespNotify *r, bool imported)
{
    RtNotify *n = g_new0(RtNotify, 1);
    *n = (RtNotify){ .handle = r->handle, .id = r->id,
                     .device = r->device >= 0 ? user_of_phys(r->device) : -1,
                     .imported = imported };
    pthread_mutex_lock(&notify_lock);
    if (!live)
        live = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_hash_table_add(live, n);
    pthread_mutex_unlock(&notify_lock);
    return n;
}

RT_EXPORT aclError aclrtCreateNotify(aclrtNotify *notify, uint64_t flag)
{
    RT_CHECK_INIT();
    if (!notify)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "notify must not be NULL");
    if (flag & ~(uint64_t)ACL_NOTIFY_DEVICE_USE_ONLY)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "flag 0x%" PRIx64 " is not a notify flag",
                       flag);
    aclError err;
    RtContext *ctx = rt_require_ctx(__func__, &err);
    if (!ctx)
        return err;
    EmuReqDevice q = { .device = rt_device_phys(ctx->device) };
    EmuRespNotify r;
    err = rt_call(EMU_CMD_NOTIFY_CREATE, &q, sizeof(q), &r, sizeof(r), NULL);
    if (err != ACL_SUCCESS)
        return RT_FAIL(err, "device %d has no notify left (%d per device)", ctx->device,
                       8192);
    *notify = notify_add(&r, false);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtDestroyNotify(aclrtNotify notify)
{
    RT_CHECK_INIT();
    pthread_mutex_lock(&notify_lock);
    bool ok = notify && live && g_hash_table_remove(live, notify);
    pthread_mutex_unlock(&notify_lock);
    if (!ok)
        return dead(__func__, notify);
    EmuReqNotify q = { .handle = ((RtNotify *)notify)->handle };
    aclError err = rt_call(EMU_CMD_NOTIFY_DESTROY, &q, sizeof(q), NULL, 0, NULL);
    rt_retire_handle(notify);
    return err == ACL_SUCCESS ? ACL_SUCCESS : RT_FAIL(err, "the emulator refused the destroy");
}

static aclError notify_task(const char *api, aclrtNotify notify, aclrtStream stream,
                            uint32_t type, uint32_t timeout)
{
    RtNotify n;
    if (!notify_get(notify, &n))
        return dead(api, notify);
    aclError err;
    RtStream *s = rt_stream_resolve(stream, api, &err);
    if (!s)
        return err;
    EmuTask t = { .type = type, .value = n.handle, .size = timeout };
    err = rt_stream_submit(s, &t);
    if (err == ACL_ERROR_RT_PARAM_INVALID)
        return rt_fail(err, api, type == EMU_TASK_NOTIFY_WAIT && n.imported
                                     ? "an imported notify can only be recorded; the creating "
                                       "process waits on it"
                                     : "the stream's device has no peer access to the notify's "
                                       "device");
    return err == ACL_SUCCESS ? ACL_SUCCESS : rt_fail(err, api, "cannot queue the task");
}

RT_EXPORT aclError aclrtRecordNotify(aclrtNotify notify, aclrtStream stream)
{
    RT_CHECK_INIT();
    return notify_task(__func__, notify, stream, EMU_TASK_NOTIFY_RECORD, 0);
}

RT_EXPORT aclError aclrtWaitAndResetNotify(aclrtNotify notify, aclrtStream stream,
                                           uint32_t timeout)
{
    RT_CHECK_INIT();
    return notify_task(__func__, notify, stream, EMU_TASK_NOTIFY_WAIT, timeout);
}

RT_EXPORT aclError aclrtGetNotifyId(aclrtNotify notify, uint32_t *notifyId)
{
    RT_CHECK_INIT();
    RtNotify n;
    if (!notifyId)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "notifyId must not be NULL");
    if (!notify_get(notify, &n))
        return dead(__func__, notify);
    *notifyId = n.id;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtNotifyBatchReset(aclrtNotify *notifies, size_t num)
{
    RT_CHECK_INIT();
    if (!notifies || num == 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "notifies must not be NULL and num must not be 0");
    RtNotify n;
    for (size_t i = 0; i < num; i++)
        if (!notify_get(notifies[i], &n))
            return dead(__func__, notifies[i]);
    for (size_t i = 0; i < num; i++) {
        if (!notify_get(notifies[i], &n))
            return dead(__func__, notifies[i]);
        EmuReqNotify q = { .handle = n.handle };
        aclError err = rt_call(EMU_CMD_NOTIFY_RESET, &q, sizeof(q), NULL, 0, NULL);
        if (err != ACL_SUCCESS)
            return RT_FAIL(err, "cannot reset notify %zu", i);
    }
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtNotifyGetExportKey(aclrtNotify notify, char *key, size_t len,
                                           uint64_t flags)
{
    RT_CHECK_INIT();
    RtNotify n;
    if (!key)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "key must not be NULL");
    if (len < KEY_LEN)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "len %zu: the key takes at least %d bytes",
                       len, KEY_LEN);
    if (flags != ACL_RT_NOTIFY_EXPORT_FLAG_DEFAULT &&
        flags != ACL_RT_NOTIFY_EXPORT_FLAG_DISABLE_PID_VALIDATION)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "flags 0x%" PRIx64 " is not an export flag",
                       flags);
    if (!notify_get(notify, &n))
        return dead(__func__, notify);
    if (n.imported)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "an imported notify cannot be exported");
    EmuReqNotify q = { .handle = n.handle,
                       .flags = flags == ACL_RT_NOTIFY_EXPORT_FLAG_DEFAULT ? 1u : 0u };
    EmuRespToken r;
    aclError err = rt_call(EMU_CMD_NOTIFY_EXPORT, &q, sizeof(q), &r, sizeof(r), NULL);
    if (err != ACL_SUCCESS)
        return RT_FAIL(err, "cannot export the notify (once per notify)");
    pthread_mutex_lock(&notify_lock);
    if (live && g_hash_table_contains(live, notify)) {
        ((RtNotify *)notify)->exported = true;
        memcpy(((RtNotify *)notify)->token, r.token, EMU_TOKEN_LEN);
    }
    pthread_mutex_unlock(&notify_lock);
    rt_ipc_key_format(r.token, key);
    return ACL_SUCCESS;
}

static aclError exported_token(const char *api, aclrtNotify notify, uint8_t *token)
{
    RtNotify n;
    if (!notify_get(notify, &n))
        return dead(api, notify);
    if (!n.exported)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "the notify was not exported (aclrtNotifyGetExportKey)");
    memcpy(token, n.token, EMU_TOKEN_LEN);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtNotifySetImportPid(aclrtNotify notify, int32_t *pid, size_t num)
{
    RT_CHECK_INIT();
    if (!pid || num == 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "pid must not be NULL and num must not be 0");
    uint8_t token[EMU_TOKEN_LEN];
    aclError err = exported_token(__func__, notify, token);
    if (err != ACL_SUCCESS)
        return err;
    return rt_share_allow(__func__, EMU_SHARE_NOTIFY, token, EMU_TOKEN_LEN,
                          g_rt.conn.welcome.server, pid, num);
}

RT_EXPORT aclError aclrtNotifySetImportPidInterServer(aclrtNotify notify,
                                                      aclrtServerPid *serverPids, size_t num)
{
    RT_CHECK_INIT();
    if (strcmp(g_rt.conn.welcome.profile, "a3") != 0)
        return rt_unsupported(__func__);
    if (!serverPids || num == 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "serverPids must not be NULL and num must not be 0");
    uint8_t token[EMU_TOKEN_LEN];
    aclError err = exported_token(__func__, notify, token);
    if (err != ACL_SUCCESS)
        return err;
    uint32_t per_server = g_rt.conn.welcome.ndevices;
    for (size_t i = 0; i < num; i++)
        if (!serverPids[i].pid || serverPids[i].num == 0 || per_server == 0 ||
            serverPids[i].sdid / per_server >= g_rt.conn.welcome.nservers)
            return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                           "serverPids[%zu]: sdid %u is not a device of the SuperPoD, or no pids",
                           i, serverPids[i].sdid);
    for (size_t i = 0; i < num; i++) {
        err = rt_share_allow(__func__, EMU_SHARE_NOTIFY, token, EMU_TOKEN_LEN,
                             (int32_t)(serverPids[i].sdid / per_server), serverPids[i].pid,
                             serverPids[i].num);
        if (err != ACL_SUCCESS)
            return err;
    }
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtNotifyImportByKey(aclrtNotify *notify, const char *key, uint64_t flags)
{
    RT_CHECK_INIT();
    uint8_t token[EMU_TOKEN_LEN];
    if (!notify || !key)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "notify and key must not be NULL");
    if (flags != ACL_RT_NOTIFY_IMPORT_FLAG_DEFAULT &&
        flags != ACL_RT_NOTIFY_IMPORT_FLAG_ENABLE_PEER_ACCESS)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "flags 0x%" PRIx64 " is not an import flag",
                       flags);
    if (!rt_ipc_key_parse(key, token))
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "not a notify key");
    aclError err;
    RtContext *ctx = rt_require_ctx(__func__, &err);
    if (!ctx)
        return err;
    EmuReqShareImport q = { .name = { .kind = EMU_SHARE_NOTIFY, .len = EMU_TOKEN_LEN },
                            .device = rt_device_phys(ctx->device),
                            .pad = flags == ACL_RT_NOTIFY_IMPORT_FLAG_ENABLE_PEER_ACCESS };
    memcpy(q.name.token, token, EMU_TOKEN_LEN);
    EmuRespNotify r;
    err = rt_call(EMU_CMD_NOTIFY_IMPORT, &q, sizeof(q), &r, sizeof(r), NULL);
    if (err == ACL_ERROR_RT_NO_PERMISSION)
        return RT_FAIL(err, "this process (pid %u) is not on the notify's whitelist",
                       g_rt.conn.welcome.client_pid);
    if (err != ACL_SUCCESS)
        return RT_FAIL(err, "cannot import the key: unknown, destroyed, exported by this "
                       "process, or of another server");
    *notify = notify_add(&r, true);
    return ACL_SUCCESS;
}

void rt_notify_drop_device(int32_t device)
{
    pthread_mutex_lock(&notify_lock);
    if (live) {
        GHashTableIter it;
        gpointer key;
        g_hash_table_iter_init(&it, live);
        while (g_hash_table_iter_next(&it, &key, NULL)) {
            RtNotify *n = key;
            if (!n->imported && n->device == device) {
                g_hash_table_iter_remove(&it);
                rt_retire_handle(n);
            }
        }
    }
    pthread_mutex_unlock(&notify_lock);
}

void rt_notify_release(void)
{
    pthread_mutex_lock(&notify_lock);
    if (live) {
        GHashTableIter it;
        gpointer key;
        g_hash_table_iter_init(&it, live);
        while (g_hash_table_iter_next(&it, &key, NULL))
            rt_retire_handle(key);
        g_hash_table_destroy(live);
        live = NULL;
    }
    pthread_mutex_unlock(&notify_lock);
}

void rt_notify_forget_after_fork(void)
{
    pthread_mutex_init(&notify_lock, NULL);
    live = NULL;
}
