/*
 * ipc.c - IPC memory sharing by key (chapter 11-07): aclrtIpcMemGetExportKey,
 * aclrtIpcMemSetImportPid, aclrtIpcMemImportPidInterServer, aclrtIpcMemSetAttr,
 * aclrtIpcMemImportByKey, aclrtIpcMemClose.
 *
 * The emulator keeps the exports and checks every import (devmodel/share.h):
 * whitelists hold kernel-verified pids, and the memory object's fd is sent only
 * after the check.  The client keeps the keys it exported (so that
 * aclrtIpcMemClose knows its role) and, per import, the device address the
 * emulator chose in the memory's device heap and a host alias of the memory
 * object for synchronous copies.  A key is the hex form of the export's 256
 * random bits: 64 characters and a NUL, 65 bytes as the reference says.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "npuemu/u64tree.h"
#include "rt.h"
#include "rt_unsupported.h"

#define KEY_LEN (2 * EMU_TOKEN_LEN + 1)

typedef struct RtImport {
    uint64_t va;
    uint64_t size;
    uint8_t *alias;             /* the host's view of the memory */
    uint8_t token[EMU_TOKEN_LEN];
    int32_t device;             /* user id of the device whose memory it is */
    int32_t importer;           /* user id of the importing context's device */
    uint32_t page_size;
} RtImport;

static pthread_rwlock_t ipc_lock = PTHREAD_RWLOCK_INITIALIZER;
static GTree *imports;          /* va -> RtImport * */
static GHashTable *exported;    /* key string -> itself: keys this process exported */

static void ipc_tables(void)
{
    if (!imports) {
        imports = emu_u64_tree_new(NULL);
        exported = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    }
}

void rt_ipc_key_format(const uint8_t token[EMU_TOKEN_LEN], char *key)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < EMU_TOKEN_LEN; i++) {
        key[2 * i] = hex[token[i] >> 4];
        key[2 * i + 1] = hex[token[i] & 15];
    }
    key[2 * EMU_TOKEN_LEN] = '\0';
}

bool rt_ipc_key_parse(const char *key, uint8_t token[EMU_TOKEN_LEN])
{
    if (!key)
        return false;
    for (int i = 0; i < 2 * EMU_TOKEN_LEN; i++) {
        char c = key[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return false;
        if (i % 2 == 0)
            token[i / 2] = (uint8_t)(v << 4);
        else
            token[i / 2] |= (uint8_t)v;
    }
    return key[2 * EMU_TOKEN_LEN] == '\0';
}

static bool profile_a3(void)
{
    return strcmp(g_rt.conn.welcome.profile, "a3") == 0;
}

static int32_t user_of_phys(int32_t phys)
{
    for (int32_t u = 0; u < g_rt.ndev; u++)
        if (g_rt.dev[u].phys == phys)
            return u;
    return -1;
}

RT_EXPORT aclError aclrtIpcMemGetExportKey(void *devPtr, size_t size, char *key, size_t len,
                                           uint64_t flags)
{
    RT_CHECK_INIT();
    if (!devPtr || !key || size == 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "devPtr and key must not be NULL and size must not be 0");
    if (len < KEY_LEN)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "len %zu: the key takes %d bytes", len,
                       KEY_LEN);
    if (flags > ACL_RT_IPC_MEM_EXPORT_FLAG_DISABLE_PID_VALIDATION)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "flags 0x%" PRIx64 " is not an export flag",
                       flags);
    RtMemRef ref;
    if (rt_mem_lookup(devPtr, size, &ref) != RT_MEM_DEVICE || ref.ipc_remote)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "[%p, +%zu) is not device memory this process allocated", devPtr, size);
    EmuReqIpcExport q = { .va = (uint64_t)(uintptr_t)devPtr, .size = size,
                          .pid_check = flags != ACL_RT_IPC_MEM_EXPORT_FLAG_DISABLE_PID_VALIDATION };
    EmuRespToken r;
    aclError err = rt_call(EMU_CMD_IPC_EXPORT, &q, sizeof(q), &r, sizeof(r), NULL);
    if (err != ACL_SUCCESS)
        return RT_FAIL(err, "cannot export %p: IPC memory must start on a page of its own "
                       "aclrtMalloc allocation (not a sub-page slice) and lie inside it",
                       devPtr);
    char k[KEY_LEN];
    rt_ipc_key_format(r.token, k);
    memcpy(key, k, KEY_LEN);
    pthread_rwlock_wrlock(&ipc_lock);
    ipc_tables();
    g_hash_table_add(exported, g_strdup(k));
    pthread_rwlock_unlock(&ipc_lock);
    return ACL_SUCCESS;
}

/* Whitelists pids of `server` (EMU_ANY_SERVER: any) for the export `token`. */
static aclError allow(const char *api, uint32_t kind, const uint8_t *token, uint32_t tlen,
                      int32_t server, const int32_t *pid, size_t num)
{
    for (size_t done = 0; done < num;) {
        EmuReqShareAllow q = { .name = { .kind = kind, .len = tlen } };
        memcpy(q.name.token, token, tlen);
        q.n = (uint32_t)(num - done < EMU_ALLOW_MAX ? num - done : EMU_ALLOW_MAX);
        for (uint32_t i = 0; i < q.n; i++) {
            q.servers[i] = server;
            q.pids[i] = pid[done + i];
        }
        aclError err = rt_call(EMU_CMD_SHARE_ALLOW, &q, sizeof(q), NULL, 0, NULL);
        if (err != ACL_SUCCESS)
            return rt_fail(err, api, "not an export of this process (or it was closed)");
        done += q.n;
    }
    return ACL_SUCCESS;
}

aclError rt_share_allow(const char *api, uint32_t kind, const uint8_t *token, uint32_t tlen,
                        int32_t server, const int32_t *pid, size_t num)
{
    return allow(api, kind, token, tlen, server, pid, num);
}

RT_EXPORT aclError aclrtIpcMemSetImportPid(const char *key, int32_t *pid, size_t num)
{
    RT_CHECK_INIT();
    uint8_t token[EMU_TOKEN_LEN];
    if (!key || !pid || num == 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "key and pid must not be NULL and num must not be 0");
    if (!rt_ipc_key_parse(key, token))
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "not an IPC memory key");
    return allow(__func__, EMU_SHARE_IPC, token, EMU_TOKEN_LEN, g_rt.conn.welcome.server, pid,
                 num);
}

RT_EXPORT aclError aclrtIpcMemImportPidInterServer(const char *key, aclrtServerPid *serverPids,
                                                   size_t num)
{
    RT_CHECK_INIT();
    if (!profile_a3())
        return rt_unsupported(__func__);
    uint8_t token[EMU_TOKEN_LEN];
    if (!key || !serverPids || num == 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "key and serverPids must not be NULL and num must not be 0");
    if (!rt_ipc_key_parse(key, token))
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "not an IPC memory key");
    uint32_t per_server = g_rt.conn.welcome.ndevices;
    for (size_t i = 0; i < num; i++) {
        uint32_t server = per_server ? serverPids[i].sdid / per_server : UINT32_MAX;
        if (!serverPids[i].pid || serverPids[i].num == 0 ||
            server >= g_rt.conn.welcome.nservers)
            return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                           "serverPids[%zu]: sdid %u is not a device of the SuperPoD, or no pids",
                           i, serverPids[i].sdid);
    }
    for (size_t i = 0; i < num; i++) {
        aclError err = allow(__func__, EMU_SHARE_IPC, token, EMU_TOKEN_LEN,
                             (int32_t)(serverPids[i].sdid / per_server), serverPids[i].pid,
                             serverPids[i].num);
        if (err != ACL_SUCCESS)
            return err;
    }
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtIpcMemSetAttr(const char *key, aclrtIpcMemAttrType type, uint64_t attr)
{
    RT_CHECK_INIT();
    if (!profile_a3())
        return rt_unsupported(__func__);
    uint8_t token[EMU_TOKEN_LEN];
    if (!key || !rt_ipc_key_parse(key, token))
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "not an IPC memory key");
    if (type != ACL_RT_IPC_MEM_ATTR_ACCESS_LINK)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "type %d is not an IPC memory attribute",
                       (int)type);
    if (attr != ACL_RT_IPC_MEM_ATTR_ACCESS_LINK_SIO && attr != ACL_RT_IPC_MEM_ATTR_ACCESS_LINK_HCCS)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "attr %" PRIu64 ": SIO (0) or HCCS (1)", attr);
    EmuReqShareToken q = { .kind = EMU_SHARE_IPC, .len = EMU_TOKEN_LEN, .value = attr };
    memcpy(q.token, token, EMU_TOKEN_LEN);
    aclError err = rt_call(EMU_CMD_SHARE_ATTR, &q, sizeof(q), NULL, 0, NULL);
    return err == ACL_SUCCESS ? ACL_SUCCESS
                              : RT_FAIL(err, "not a key this process exported (or it was closed)");
}

RT_EXPORT aclError aclrtIpcMemImportByKey(void **devPtr, const char *key, uint64_t flags)
{
    RT_CHECK_INIT();
    uint8_t token[EMU_TOKEN_LEN];
    if (!devPtr || !key)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "devPtr and key must not be NULL");
    if (flags > ACL_RT_IPC_MEM_IMPORT_FLAG_ENABLE_PEER_ACCESS)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "flags 0x%" PRIx64 " is not an import flag",
                       flags);
    if (!rt_ipc_key_parse(key, token))
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "not an IPC memory key");
    aclError err;
    RtContext *ctx = rt_require_ctx(__func__, &err);
    if (!ctx)
        return err;
    EmuReqIpcImport q = { .device = rt_device_phys(ctx->device),
                          .peer = flags == ACL_RT_IPC_MEM_IMPORT_FLAG_ENABLE_PEER_ACCESS };
    memcpy(q.token, token, EMU_TOKEN_LEN);
    EmuRespIpcImport r;
    int fd = -1;
    err = rt_call(EMU_CMD_IPC_IMPORT, &q, sizeof(q), &r, sizeof(r), &fd);
    if (err == ACL_ERROR_RT_RESOURCE_ALLOC_FAIL) {
        EmuReqVa c = { .va = r.va };
        rt_call(EMU_CMD_IPC_CLOSE, &c, sizeof(c), NULL, 0, NULL);
        err = ACL_ERROR_RT_MEMORY_ALLOCATION;
    }
    if (err == ACL_ERROR_RT_NO_PERMISSION)
        return RT_FAIL(err, "this process (pid %u) is not on the key's whitelist",
                       g_rt.conn.welcome.client_pid);
    if (err != ACL_SUCCESS)
        return RT_FAIL(err, "cannot import the key: unknown, closed, freed, exported by this "
                       "process, or of another server");
    void *alias = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)r.obj_off);
    close(fd);
    if (alias == MAP_FAILED) {
        EmuReqVa c = { .va = r.va };
        rt_call(EMU_CMD_IPC_CLOSE, &c, sizeof(c), NULL, 0, NULL);
        return RT_FAIL(ACL_ERROR_RT_MEMORY_ALLOCATION, "cannot map %" PRIu64 " bytes", r.size);
    }
    madvise(alias, r.size, MADV_DONTFORK);
    RtImport *im = g_new0(RtImport, 1);
    /* Memory of another server (device -1) counts as another device's. */
    *im = (RtImport){ .va = r.va, .size = r.size, .alias = alias,
                      .device = r.device >= 0 ? user_of_phys(r.device) : -1,
                      .importer = ctx->device, .page_size = r.page_size };
    memcpy(im->token, token, EMU_TOKEN_LEN);
    pthread_rwlock_wrlock(&ipc_lock);
    ipc_tables();
    g_tree_insert(imports, EMU_KEY(im->va), im);
    pthread_rwlock_unlock(&ipc_lock);
    *devPtr = (void *)(uintptr_t)r.va;
    return ACL_SUCCESS;
}

static void import_free(RtImport *im)
{
    munmap(im->alias, im->size);
    g_free(im);
}

/* Finds (and removes) one import of token; lock held. */
static RtImport *take_import(const uint8_t *token)
{
    for (GTreeNode *n = imports ? g_tree_node_first(imports) : NULL; n; n = g_tree_node_next(n)) {
        RtImport *im = g_tree_node_value(n);
        if (memcmp(im->token, token, EMU_TOKEN_LEN) == 0) {
            g_tree_remove(imports, EMU_KEY(im->va));
            return im;
        }
    }
    return NULL;
}

RT_EXPORT aclError aclrtIpcMemClose(const char *key)
{
    RT_CHECK_INIT();
    uint8_t token[EMU_TOKEN_LEN];
    if (!key || !rt_ipc_key_parse(key, token))
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "not an IPC memory key");
    /* The importer's role first: a process that imported the key closes its
     * import; the exporter withdraws the key. */
    pthread_rwlock_wrlock(&ipc_lock);
    RtImport *im = take_import(token);
    bool mine = !im && exported && g_hash_table_remove(exported, key);
    pthread_rwlock_unlock(&ipc_lock);
    if (im) {
        EmuReqVa q = { .va = im->va };
        aclError err = rt_call(EMU_CMD_IPC_CLOSE, &q, sizeof(q), NULL, 0, NULL);
        import_free(im);
        return err == ACL_SUCCESS ? ACL_SUCCESS : RT_FAIL(err, "the emulator refused the close");
    }
    if (!mine)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "this process neither exported nor imported the key (or closed it)");
    EmuReqShareToken q = { .kind = EMU_SHARE_IPC, .len = EMU_TOKEN_LEN };
    memcpy(q.token, token, EMU_TOKEN_LEN);
    aclError err = rt_call(EMU_CMD_SHARE_WITHDRAW, &q, sizeof(q), NULL, 0, NULL);
    /* Already withdrawn by a free of the memory: closing is still fine. */
    (void)err;
    return ACL_SUCCESS;
}

aclError rt_ipc_check_copy(const char *api, const RtMemRef *d, const RtMemRef *s, int kind,
                           bool async)
{
    if (!d->ipc_remote && !s->ipc_remote)
        return ACL_SUCCESS;
    if (!async)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "memory imported by IPC key from another device takes no synchronous "
                       "copies: use aclrtMemcpyAsync");
    if (kind == ACL_MEMCPY_DEFAULT)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "copies of memory imported by IPC key from another device need an "
                       "explicit direction");
    if (d->kind != RT_MEM_DEVICE || s->kind != RT_MEM_DEVICE)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "memory imported by IPC key from another device copies to and from "
                       "device memory only (no host-to-device or device-to-host)");
    return ACL_SUCCESS;
}

bool rt_ipc_lookup(uint64_t a, uint64_t len, RtMemRef *ref)
{
    bool found = false;
    pthread_rwlock_rdlock(&ipc_lock);
    GTreeNode *n = imports ? emu_tree_floor(imports, a) : NULL;
    RtImport *im = n ? g_tree_node_value(n) : NULL;
    if (im && a - im->va < im->size && len <= im->size - (a - im->va)) {
        *ref = (RtMemRef){ .kind = RT_MEM_DEVICE,
                           .device = im->device >= 0 ? im->device : im->importer,
                           .host = im->alias + (a - im->va), .page_size = im->page_size,
                           .ipc_remote = im->device != im->importer };
        found = true;
    }
    pthread_rwlock_unlock(&ipc_lock);
    return found;
}

void rt_ipc_release(void)
{
    pthread_rwlock_wrlock(&ipc_lock);
    while (imports && g_tree_nnodes(imports) > 0) {
        RtImport *im = g_tree_node_value(g_tree_node_first(imports));
        g_tree_remove(imports, EMU_KEY(im->va));
        import_free(im);
    }
    if (imports) {
        g_tree_destroy(imports);
        g_hash_table_destroy(exported);
    }
    imports = NULL;
    exported = NULL;
    pthread_rwlock_unlock(&ipc_lock);
}

void rt_ipc_forget_after_fork(void)
{
    pthread_rwlock_init(&ipc_lock, NULL);
    imports = NULL;
    exported = NULL;
}
