/*
 * vmm.c - the virtual-memory chapter (11-04) as the client sees it:
 * aclrtMemGetAllocationGranularity, aclrtMallocPhysical / aclrtFreePhysical,
 * aclrtReserveMemAddress(NoUCMemory) / aclrtReleaseMemAddress, aclrtMapMem /
 * aclrtMemMapNoAccess / aclrtUnmapMem, aclrtMemSetAccess / aclrtMemGetAccess,
 * aclrtMemRetainAllocationHandle, aclrtMemGetAllocationPropertiesFromHandle,
 * aclrtMemGetAddressRange.
 *
 * The emulator owns the truth (devmodel/aspace.h): handles, reservations,
 * mappings and the page tables, and it checks every rule that involves them.
 * The client keeps what it needs to answer locally and to copy: a handle
 * object per physical handle (the aclrtDrvMemHandle the application holds),
 * and per reservation a host alias range of the same size, PROT_NONE except
 * where something is mapped, where the handle's memory object is mapped.  A
 * synchronous copy over mapped VMM memory is one memcpy through the alias,
 * however many mappings it spans.  The device VA itself stays inaccessible to
 * the host, as on hardware.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "npuemu/u64tree.h"
#include "rt.h"
#include "rt_unsupported.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define TiB (1ull << 40)
#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((uint64_t)(a) - 1))

/* aclrtReserveMemAddressNoUCMemory's range, and where host addresses end. */
#define NOUC_LO (40 * TiB)
#define NOUC_HI (224 * TiB)
#define HOST_VA_END (128 * TiB)

#define PROT_DEV_RW 3u          /* PT_RW of devmodel/pagetable.h */

typedef struct RtPhys {
    uint64_t id;                /* the emulator's handle */
    uint64_t size;
    uint64_t page_size;
    aclrtPhysicalMemProp prop;
    uint32_t refs;              /* MallocPhysical + retains - frees */
} RtPhys;

typedef struct RtReserve {
    uint64_t va;
    uint64_t size;
    uint8_t *alias;
    bool nouc;
} RtReserve;

typedef struct RtMap {
    uint64_t va;
    uint64_t size;
    RtReserve *r;
    uint64_t handle;            /* emulator handle id */
    uint64_t page_size;
    aclrtPhysicalMemProp prop;  /* of the handle */
    int32_t device;             /* user id of the handle's device */
    uint32_t dev_rw;            /* bit d (user id): device d has read-write access */
    uint64_t host_flags;        /* set through a HOST location */
} RtMap;

static pthread_rwlock_t vmm_lock = PTHREAD_RWLOCK_INITIALIZER;
static GHashTable *handles;     /* RtPhys * -> itself: the live handles */
static GTree *reserves;         /* va -> RtReserve * */
static GTree *maps;             /* va -> RtMap * */

static void vmm_tables(void)
{
    if (!handles) {
        handles = g_hash_table_new(g_direct_hash, g_direct_equal);
        reserves = emu_u64_tree_new(NULL);
        maps = emu_u64_tree_new(g_free);
    }
}

/* The entry with the greatest key <= addr if it contains addr. */
static void *range_at(GTree *t, uint64_t addr)
{
    GTreeNode *n = t ? emu_tree_floor(t, addr) : NULL;
    if (!n)
        return NULL;
    uint64_t *r = g_tree_node_value(n);
    return addr - r[0] < r[1] ? r : NULL;
}


/* ---- properties and granularity ---- */

/* Page size of a device memAttr the reference lists for aclrtMallocPhysical
 * (0: not one of them; the HBM_MEM_P2P attributes are not listed).  The
 * HBM_MEM_NORMAL attribute is served in huge pages, as the reference says. */
static uint64_t attr_page(aclrtMemAttr a)
{
    switch (a) {
    case ACL_MEM_NORMAL:
    case ACL_MEM_P2P_NORMAL:
        return 4 * KiB;
    case ACL_HBM_MEM_NORMAL:
    case ACL_HBM_MEM_HUGE:
    case ACL_MEM_HUGE:
    case ACL_MEM_P2P_HUGE:
        return 2 * MiB;
    case ACL_HBM_MEM_HUGE1G:
    case ACL_MEM_HUGE1G:
    case ACL_MEM_P2P_HUGE1G:
        return GiB;
    default:
        return 0;
    }
}

/* The granularity query also answers for the HBM P2P attributes, which name a
 * page size even though aclrtMallocPhysical does not take them. */
static uint64_t attr_page_any(aclrtMemAttr a)
{
    switch (a) {
    case ACL_HBM_MEM_P2P_NORMAL:
        return 4 * KiB;
    case ACL_HBM_MEM_P2P_HUGE:
        return 2 * MiB;
    case ACL_HBM_MEM_P2P_HUGE1G:
        return GiB;
    default:
        return attr_page(a);
    }
}

static bool attr_is_host(aclrtMemAttr a)
{
    return a == ACL_DDR_MEM_HUGE || a == ACL_DDR_MEM_NORMAL || a == ACL_DDR_MEM_P2P_HUGE ||
           a == ACL_DDR_MEM_P2P_NORMAL;
}

/* Checks a property block; on success *page is the page size and *gran the
 * minimum granularity (a mapping is at least 2 MiB of VA). */
static aclError check_prop(const char *api, const aclrtPhysicalMemProp *prop, bool alloc,
                           uint64_t *page, uint64_t *gran)
{
    if (!prop)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "prop must not be NULL");
    if (prop->handleType != ACL_MEM_HANDLE_TYPE_NONE)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "prop->handleType %d: only ACL_MEM_HANDLE_TYPE_NONE is supported",
                       (int)prop->handleType);
    if (prop->allocationType != ACL_MEM_ALLOCATION_TYPE_PINNED)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "prop->allocationType %d: only ACL_MEM_ALLOCATION_TYPE_PINNED is supported",
                       (int)prop->allocationType);
    if (prop->location.type == ACL_MEM_LOCATION_TYPE_HOST) {
        if (!attr_is_host(prop->memAttr) && !attr_page(prop->memAttr))
            return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "prop->memAttr %d is not valid",
                           (int)prop->memAttr);
        if (attr_page(prop->memAttr) == GiB)
            return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                           "1 GiB pages exist for device memory only");
        *page = prop->memAttr == ACL_DDR_MEM_NORMAL || prop->memAttr == ACL_DDR_MEM_P2P_NORMAL ||
                        attr_page(prop->memAttr) == 4 * KiB
                    ? 4 * KiB
                    : 2 * MiB;
        *gran = 2 * MiB;        /* a mapping is at least 2 MiB of VA */
        return ACL_SUCCESS;
    }
    if (prop->location.type != ACL_MEM_LOCATION_TYPE_DEVICE)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "prop->location.type %d: only HOST or DEVICE", (int)prop->location.type);
    if (!rt_device_valid((int32_t)prop->location.id))
        return rt_fail(ACL_ERROR_RT_INVALID_DEVICEID, api, "prop->location.id %u is not a device",
                       prop->location.id);
    /* "Only some A3 interconnects support it"; Atlas A2 does not. */
    if (alloc && prop->memAttr == ACL_MEM_P2P_HUGE1G &&
        strcmp(g_rt.conn.welcome.profile, "a3") != 0)
        return rt_unsupported(api);
    *page = alloc ? attr_page(prop->memAttr) : attr_page_any(prop->memAttr);
    if (!*page)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "prop->memAttr %d is not device memory of one page size",
                       (int)prop->memAttr);
    *gran = *page < 2 * MiB ? 2 * MiB : *page;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtMemGetAllocationGranularity(aclrtPhysicalMemProp *prop,
                                                    aclrtMemGranularityOptions option,
                                                    size_t *granularity)
{
    RT_CHECK_INIT();
    if (!granularity)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "granularity must not be NULL");
    if (option != ACL_RT_MEM_ALLOC_GRANULARITY_MINIMUM &&
        option != ACL_RT_MEM_ALLOC_GRANULARITY_RECOMMENDED)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "option %d is not a granularity option",
                       (int)option);
    uint64_t page, gran;
    aclError err = check_prop(__func__, prop, false, &page, &gran);
    if (err != ACL_SUCCESS)
        return err;
    *granularity = gran;
    return ACL_SUCCESS;
}

/* ---- physical handles ---- */

/* The live handle h (read or write lock held), or NULL. */
static RtPhys *phys_live(aclrtDrvMemHandle h)
{
    return h && handles && g_hash_table_contains(handles, h) ? (RtPhys *)h : NULL;
}

static RtPhys *phys_by_id(uint64_t id)
{
    GHashTableIter it;
    gpointer key;
    if (!handles)
        return NULL;
    g_hash_table_iter_init(&it, handles);
    while (g_hash_table_iter_next(&it, &key, NULL))
        if (((RtPhys *)key)->id == id)
            return key;
    return NULL;
}

RT_EXPORT aclError aclrtMallocPhysical(aclrtDrvMemHandle *handle, size_t size,
                                       const aclrtPhysicalMemProp *prop, uint64_t flags)
{
    RT_CHECK_INIT();
    if (!handle)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "handle must not be NULL");
    uint64_t page, gran;
    aclError err = check_prop(__func__, prop, true, &page, &gran);
    if (err != ACL_SUCCESS)
        return err;
    if (flags != 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "flags must be 0, not 0x%" PRIx64, flags);
    if (size == 0 || size % gran)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "size %zu must be a nonzero multiple of the granularity (%" PRIu64 ")",
                       size, gran);
    bool host = prop->location.type == ACL_MEM_LOCATION_TYPE_HOST;
    int32_t user = host ? -1 : (int32_t)prop->location.id;
    EmuReqPhysAlloc q = { .device = host ? -1 : rt_device_phys(user),
                          .mem_attr = (uint32_t)prop->memAttr, .size = size, .page_size = page };
    EmuRespPhys r;
    err = rt_call(EMU_CMD_PHYS_ALLOC, &q, sizeof(q), &r, sizeof(r), NULL);
    if (err != ACL_SUCCESS)
        return host ? RT_FAIL(err, "cannot allocate %zu bytes of host physical memory", size)
                    : RT_FAIL(err, "cannot allocate %zu bytes of physical memory on device %d",
                              size, user);
    RtPhys *p = g_new0(RtPhys, 1);
    *p = (RtPhys){ .id = r.handle, .size = size, .page_size = page, .prop = *prop, .refs = 1 };
    pthread_rwlock_wrlock(&vmm_lock);
    vmm_tables();
    g_hash_table_add(handles, p);
    pthread_rwlock_unlock(&vmm_lock);
    *handle = p;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtFreePhysical(aclrtDrvMemHandle handle)
{
    RT_CHECK_INIT();
    pthread_rwlock_wrlock(&vmm_lock);
    RtPhys *p = phys_live(handle);
    bool last = p && --p->refs == 0;
    uint64_t id = p ? p->id : 0;
    if (last)
        g_hash_table_remove(handles, p);
    pthread_rwlock_unlock(&vmm_lock);
    if (!p)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "%p is not a physical memory handle of this process (or it was freed)",
                       handle);
    if (last)
        rt_retire_handle(p);
    EmuReqPhys q = { .handle = id };
    aclError err = rt_call(EMU_CMD_PHYS_FREE, &q, sizeof(q), NULL, 0, NULL);
    return err == ACL_SUCCESS ? ACL_SUCCESS : RT_FAIL(err, "the emulator refused the free");
}

RT_EXPORT aclError aclrtMemGetAllocationPropertiesFromHandle(aclrtDrvMemHandle handle,
                                                             aclrtPhysicalMemProp *prop)
{
    RT_CHECK_INIT();
    if (!prop)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "prop must not be NULL");
    pthread_rwlock_rdlock(&vmm_lock);
    RtPhys *p = phys_live(handle);
    if (p)
        *prop = p->prop;
    pthread_rwlock_unlock(&vmm_lock);
    if (!p)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "%p is not a physical memory handle of this process (or it was freed)",
                       handle);
    return ACL_SUCCESS;
}

/* ---- shareable handles (export / set pid / import, V1 and V2) ---- */

#define FABRIC_MAGIC 0x4650554eu    /* "NUPF" */

/* A FABRIC handle: magic, the exporter's server, the export's token. */
typedef struct FabricLayout {
    uint32_t magic;
    int32_t server;
    uint8_t token[EMU_TOKEN_LEN];
} FabricLayout;

static bool is_a3(void)
{
    return strcmp(g_rt.conn.welcome.profile, "a3") == 0;
}

/* The export a shareable handle names: kind and the token bytes it carries. */
static bool share_name(aclrtMemSharedHandleType type, const void *sh, EmuReqShareToken *t)
{
    memset(t, 0, sizeof(*t));
    if (type == ACL_MEM_SHARE_HANDLE_TYPE_DEFAULT) {
        t->kind = EMU_SHARE_DEFAULT;
        t->len = sizeof(uint64_t);
        memcpy(t->token, sh, sizeof(uint64_t));
        return true;
    }
    if (type == ACL_MEM_SHARE_HANDLE_TYPE_FABRIC) {
        FabricLayout f;
        memcpy(&f, sh, sizeof(f));
        if (f.magic != FABRIC_MAGIC)
            return false;
        t->kind = EMU_SHARE_FABRIC;
        t->len = EMU_TOKEN_LEN;
        memcpy(t->token, f.token, EMU_TOKEN_LEN);
        return true;
    }
    return false;
}

static aclError share_export(const char *api, aclrtDrvMemHandle handle, uint64_t flags,
                             aclrtMemSharedHandleType type, void *out)
{
    if (!out)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "shareableHandle must not be NULL");
    if (flags > ACL_RT_VMM_EXPORT_FLAG_DISABLE_PID_VALIDATION)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "flags 0x%" PRIx64 " is not an export flag", flags);
    if (type != ACL_MEM_SHARE_HANDLE_TYPE_DEFAULT && type != ACL_MEM_SHARE_HANDLE_TYPE_FABRIC)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "shareType %d is not a handle type",
                       (int)type);
    if (type == ACL_MEM_SHARE_HANDLE_TYPE_FABRIC && !is_a3())
        return rt_unsupported(api);
    pthread_rwlock_rdlock(&vmm_lock);
    RtPhys *p = phys_live(handle);
    uint64_t id = p ? p->id : 0;
    pthread_rwlock_unlock(&vmm_lock);
    if (!p)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "%p is not a physical memory handle of this process (or it was freed)",
                       handle);
    EmuReqShareExport q = { .handle = id,
                            .kind = type == ACL_MEM_SHARE_HANDLE_TYPE_FABRIC ? EMU_SHARE_FABRIC
                                                                             : EMU_SHARE_DEFAULT,
                            .pid_check = flags != ACL_RT_VMM_EXPORT_FLAG_DISABLE_PID_VALIDATION };
    EmuRespToken r;
    aclError err = rt_call(EMU_CMD_SHARE_EXPORT, &q, sizeof(q), &r, sizeof(r), NULL);
    if (err != ACL_SUCCESS)
        return rt_fail(err, api, "cannot export %p: only a handle of aclrtMallocPhysical with "
                       "device memory, exported once", handle);
    if (type == ACL_MEM_SHARE_HANDLE_TYPE_DEFAULT) {
        memcpy(out, r.token, sizeof(uint64_t));
    } else {
        aclrtMemFabricHandle fh;
        memset(&fh, 0, sizeof(fh));
        FabricLayout f = { .magic = FABRIC_MAGIC, .server = r.server };
        memcpy(f.token, r.token, EMU_TOKEN_LEN);
        memcpy(fh.data, &f, sizeof(f));
        memcpy(out, &fh, sizeof(fh));
    }
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtMemExportToShareableHandle(aclrtDrvMemHandle handle,
                                                   aclrtMemHandleType handleType, uint64_t flags,
                                                   uint64_t *shareableHandle)
{
    RT_CHECK_INIT();
    if (handleType != ACL_MEM_HANDLE_TYPE_NONE)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "handleType %d: only ACL_MEM_HANDLE_TYPE_NONE", (int)handleType);
    return share_export(__func__, handle, flags, ACL_MEM_SHARE_HANDLE_TYPE_DEFAULT,
                        shareableHandle);
}

RT_EXPORT aclError aclrtMemExportToShareableHandleV2(aclrtDrvMemHandle handle, uint64_t flags,
                                                     aclrtMemSharedHandleType shareType,
                                                     void *shareableHandle)
{
    RT_CHECK_INIT();
    return share_export(__func__, handle, flags, shareType, shareableHandle);
}

static aclError share_set_pid(const char *api, aclrtMemSharedHandleType type, const void *sh,
                              int32_t *pid, size_t num)
{
    if (!sh || !pid || num == 0)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "shareableHandle and pid must not be NULL and pidNum must not be 0");
    EmuReqShareToken t;
    if (!share_name(type, sh, &t))
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "not a shareable handle of type %d",
                       (int)type);
    /* A FABRIC whitelist names processes of any server of the SuperPoD. */
    int32_t server = t.kind == EMU_SHARE_FABRIC ? EMU_ANY_SERVER : g_rt.conn.welcome.server;
    return rt_share_allow(api, t.kind, t.token, t.len, server, pid, num);
}

RT_EXPORT aclError aclrtMemSetPidToShareableHandle(uint64_t shareableHandle, int32_t *pid,
                                                   size_t pidNum)
{
    RT_CHECK_INIT();
    return share_set_pid(__func__, ACL_MEM_SHARE_HANDLE_TYPE_DEFAULT, &shareableHandle, pid,
                         pidNum);
}

RT_EXPORT aclError aclrtMemSetPidToShareableHandleV2(void *shareableHandle,
                                                     aclrtMemSharedHandleType shareType,
                                                     int32_t *pid, size_t pidNum)
{
    RT_CHECK_INIT();
    if (shareType == ACL_MEM_SHARE_HANDLE_TYPE_FABRIC && !is_a3())
        return rt_unsupported(__func__);
    return share_set_pid(__func__, shareType, shareableHandle, pid, pidNum);
}

static aclError share_import(const char *api, aclrtMemSharedHandleType type, const void *sh,
                             int32_t user, aclrtDrvMemHandle *handle)
{
    EmuReqShareImport q = { .device = rt_device_phys(user) };
    if (!share_name(type, sh, &q.name))
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "not a shareable handle of type %d",
                       (int)type);
    EmuRespPhys r;
    aclError err = rt_call(EMU_CMD_SHARE_IMPORT, &q, sizeof(q), &r, sizeof(r), NULL);
    if (err == ACL_ERROR_RT_NO_PERMISSION)
        return rt_fail(err, api, "this process (pid %u) is not on the handle's whitelist",
                       g_rt.conn.welcome.client_pid);
    if (err != ACL_SUCCESS)
        return rt_fail(err, api, "cannot import the handle: unknown, released, exported by this "
                       "process, already imported here, or of another server");
    aclrtPhysicalMemProp prop = {
        .handleType = ACL_MEM_HANDLE_TYPE_NONE, .allocationType = ACL_MEM_ALLOCATION_TYPE_PINNED,
        .memAttr = r.page_size == GiB ? ACL_MEM_HUGE1G
                   : r.page_size == 2 * MiB ? ACL_MEM_HUGE : ACL_MEM_NORMAL,
        .location = { .id = (uint32_t)user, .type = ACL_MEM_LOCATION_TYPE_DEVICE },
    };
    RtPhys *p = g_new0(RtPhys, 1);
    *p = (RtPhys){ .id = r.handle, .size = r.size, .page_size = r.page_size, .prop = prop,
                   .refs = 1 };
    pthread_rwlock_wrlock(&vmm_lock);
    vmm_tables();
    g_hash_table_add(handles, p);
    pthread_rwlock_unlock(&vmm_lock);
    *handle = p;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtMemImportFromShareableHandle(uint64_t shareableHandle, int32_t deviceId,
                                                     aclrtDrvMemHandle *handle)
{
    RT_CHECK_INIT();
    if (!handle)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "handle must not be NULL");
    if (!rt_device_valid(deviceId))
        return RT_FAIL(ACL_ERROR_RT_INVALID_DEVICEID, "device %d does not exist", deviceId);
    return share_import(__func__, ACL_MEM_SHARE_HANDLE_TYPE_DEFAULT, &shareableHandle, deviceId,
                        handle);
}

RT_EXPORT aclError aclrtMemImportFromShareableHandleV2(void *shareableHandle,
                                                       aclrtMemSharedHandleType shareType,
                                                       uint64_t flags, aclrtDrvMemHandle *handle)
{
    RT_CHECK_INIT();
    if (!shareableHandle || !handle)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "shareableHandle and handle must not be NULL");
    if (flags != 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "flags is reserved and must be 0");
    if (shareType == ACL_MEM_SHARE_HANDLE_TYPE_FABRIC && !is_a3())
        return rt_unsupported(__func__);
    aclError err;
    RtContext *ctx = rt_require_ctx(__func__, &err);
    if (!ctx)
        return err;
    return share_import(__func__, shareType, shareableHandle, ctx->device, handle);
}

/* ---- reservations ---- */

static uint64_t pow2_at_least(uint64_t x)
{
    uint64_t p = 1;
    while (p < x && p < (1ull << 62))
        p <<= 1;
    return p;
}

static aclError reserve(const char *api, void **virPtr, size_t size, size_t alignment,
                        void *expectPtr, uint64_t flags, bool nouc)
{
    RT_CHECK_INIT();
    /* The reference lists aclrtReserveMemAddressNoUCMemory for Atlas A3 only. */
    if (nouc && strcmp(g_rt.conn.welcome.profile, "a3") != 0)
        return rt_unsupported(api);
    if (!virPtr)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "virPtr must not be NULL");
    if (size == 0)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "size must not be 0");
    if (alignment != 0)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "alignment is reserved and must be 0");
    if (flags > 1)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "flags 0x%" PRIx64 " is not a value this call takes (0 or 1)", flags);
    uint64_t len = ALIGN_UP((uint64_t)size, 2 * MiB);
    if (len < size)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "size %zu is too large", size);
    uint64_t expect = (uint64_t)(uintptr_t)expectPtr;
    uint64_t align = len >= GiB ? GiB : pow2_at_least(len);
    if (nouc) {
        if (size % GiB)
            return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                           "size %zu must be a nonzero multiple of 1 GiB", size);
        if (!expectPtr || expect < NOUC_LO || expect >= NOUC_HI || len > NOUC_HI - expect ||
            expect % GiB)
            return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                           "expectPtr %p must be a 1 GiB-aligned address in [40 TiB, 224 TiB)",
                           expectPtr);
    } else if (expectPtr && (expect < EMU_VA_WINDOW_LO || expect >= EMU_VA_WINDOW_HI ||
                             len > EMU_VA_WINDOW_HI - expect || expect % align)) {
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "expectPtr %p must lie in [16 TiB, 24 TiB) and be aligned to 0x%" PRIx64,
                       expectPtr, align);
    }
    uint8_t *alias = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
                          0);
    if (alias == MAP_FAILED)
        return rt_fail(ACL_ERROR_RT_MEMORY_ALLOCATION, api, "no host address space for %zu bytes",
                       size);
    madvise(alias, len, MADV_DONTFORK);
    /* The part of a NoUC range below the end of host addresses is claimed in
     * the host too, so that no host buffer can be mistaken for device memory. */
    uint64_t claim = nouc && expect < HOST_VA_END ? (HOST_VA_END - expect < len ? HOST_VA_END - expect : len) : 0;
    if (claim && mmap(expectPtr, claim, PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1,
                      0) != expectPtr) {
        munmap(alias, len);
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "expectPtr %p: the host already uses part of that range", expectPtr);
    }
    EmuReqReserve q = { .size = len, .align = align, .expect = expect };
    EmuRespReserve r;
    aclError err = rt_call(EMU_CMD_VMM_RESERVE, &q, sizeof(q), &r, sizeof(r), NULL);
    if (err != ACL_SUCCESS) {
        munmap(alias, len);
        if (claim)
            munmap(expectPtr, claim);
        return expectPtr ? rt_fail(err, api, "cannot reserve %zu bytes at %p: in use", size,
                                   expectPtr)
                         : rt_fail(err, api, "cannot reserve %zu bytes of address space", size);
    }
    RtReserve *res = g_new0(RtReserve, 1);
    *res = (RtReserve){ .va = r.va, .size = len, .alias = alias, .nouc = nouc };
    pthread_rwlock_wrlock(&vmm_lock);
    vmm_tables();
    g_tree_insert(reserves, EMU_KEY(res->va), res);
    pthread_rwlock_unlock(&vmm_lock);
    *virPtr = (void *)(uintptr_t)r.va;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtReserveMemAddress(void **virPtr, size_t size, size_t alignment,
                                          void *expectPtr, uint64_t flags)
{
    return reserve(__func__, virPtr, size, alignment, expectPtr, flags, false);
}

RT_EXPORT aclError aclrtReserveMemAddressNoUCMemory(void **virPtr, size_t size, size_t alignment,
                                                    void *expectPtr, uint64_t flags)
{
    return reserve(__func__, virPtr, size, alignment, expectPtr, flags, true);
}

static void reserve_free(RtReserve *r)
{
    munmap(r->alias, r->size);
    if (r->nouc && r->va < HOST_VA_END)
        munmap((void *)(uintptr_t)r->va,
               HOST_VA_END - r->va < r->size ? HOST_VA_END - r->va : r->size);
    g_free(r);
}

RT_EXPORT aclError aclrtReleaseMemAddress(void *virPtr)
{
    RT_CHECK_INIT();
    uint64_t va = (uint64_t)(uintptr_t)virPtr;
    pthread_rwlock_rdlock(&vmm_lock);
    bool known = reserves && g_tree_lookup(reserves, EMU_KEY(va));
    pthread_rwlock_unlock(&vmm_lock);
    if (!known)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "%p is not the start of a reservation of this process", virPtr);
    EmuReqVa q = { .va = va };
    aclError err = rt_call(EMU_CMD_VMM_RELEASE, &q, sizeof(q), NULL, 0, NULL);
    if (err != ACL_SUCCESS)
        return RT_FAIL(err, "%p still has memory mapped in it: unmap it first", virPtr);
    pthread_rwlock_wrlock(&vmm_lock);
    RtReserve *r = g_tree_lookup(reserves, EMU_KEY(va));
    g_tree_remove(reserves, EMU_KEY(va));
    pthread_rwlock_unlock(&vmm_lock);
    if (r)
        reserve_free(r);
    return ACL_SUCCESS;
}

/* ---- mappings ---- */

/* Maps the physical memory `h` describes (a copy) at virPtr, inside a
 * reservation: the part of aclrtMapMem after the handle was found. */
static aclError map_phys(const char *api, void *virPtr, size_t size, RtPhys h, bool access)
{
    pthread_rwlock_rdlock(&vmm_lock);
    RtReserve *r = range_at(reserves, (uint64_t)(uintptr_t)virPtr);
    pthread_rwlock_unlock(&vmm_lock);
    if (size != h.size)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "size %zu differs from the handle's size %" PRIu64, size, h.size);
    if (!r)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "%p is not inside a reservation of this process", virPtr);
    uint64_t va = (uint64_t)(uintptr_t)virPtr;
    EmuReqMap q = { .va = va, .size = size, .handle = h.id, .prot = access ? PROT_DEV_RW : 0 };
    EmuRespMap resp;
    int fd = -1;
    aclError err = rt_call(EMU_CMD_VMM_MAP, &q, sizeof(q), &resp, sizeof(resp), &fd);
    if (err == ACL_ERROR_RT_RESOURCE_ALLOC_FAIL) {
        EmuReqVa u = { .va = va };
        EmuRespPhys ur;
        rt_call(EMU_CMD_VMM_UNMAP, &u, sizeof(u), &ur, sizeof(ur), NULL);
        err = ACL_ERROR_RT_MEMORY_ALLOCATION;
    }
    if (err != ACL_SUCCESS)
        return rt_fail(err, api,
                       "cannot map the handle at %p: it must lie inside one reservation, not "
                       "overlap a mapping, and the reservation must not hold memory of another "
                       "device",
                       virPtr);
    uint8_t *at = r->alias + (va - r->va);
    void *m = mmap(at, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        EmuReqVa u = { .va = va };
        EmuRespPhys ur;
        rt_call(EMU_CMD_VMM_UNMAP, &u, sizeof(u), &ur, sizeof(ur), NULL);
        return rt_fail(ACL_ERROR_RT_MEMORY_ALLOCATION, api, "cannot map %zu bytes", size);
    }
    madvise(at, size, MADV_DONTFORK);
    /* Host memory is mapped for every device, device memory for its own. */
    bool host = h.prop.location.type == ACL_MEM_LOCATION_TYPE_HOST;
    int32_t user = host ? -1 : (int32_t)h.prop.location.id;
    uint32_t rw = host ? (uint32_t)((1ull << g_rt.ndev) - 1) : 1u << user;
    RtMap *mp = g_new0(RtMap, 1);
    *mp = (RtMap){ .va = va, .size = size, .r = r, .handle = h.id, .page_size = h.page_size,
                   .prop = h.prop, .device = user, .dev_rw = access ? rw : 0 };
    pthread_rwlock_wrlock(&vmm_lock);
    g_tree_insert(maps, EMU_KEY(va), mp);
    pthread_rwlock_unlock(&vmm_lock);
    return ACL_SUCCESS;
}

static aclError map_mem(const char *api, void *virPtr, size_t size, size_t offset,
                        aclrtDrvMemHandle handle, uint64_t flags, bool access)
{
    RT_CHECK_INIT();
    if (!virPtr)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "virPtr must not be NULL");
    if (offset != 0)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "offset must be 0");
    if (flags != 0)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "flags must be 0");
    pthread_rwlock_rdlock(&vmm_lock);
    RtPhys *p = phys_live(handle);
    RtPhys h = p ? *p : (RtPhys){ 0 };
    pthread_rwlock_unlock(&vmm_lock);
    if (!p)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "%p is not a physical memory handle of this process (or it was freed)",
                       handle);
    return map_phys(api, virPtr, size, h, access);
}

RT_EXPORT aclError aclrtMapMem(void *virPtr, size_t size, size_t offset, aclrtDrvMemHandle handle,
                               uint64_t flags)
{
    return map_mem(__func__, virPtr, size, offset, handle, flags, true);
}

RT_EXPORT aclError aclrtMemMapNoAccess(void *virPtr, size_t size, size_t offset,
                                       aclrtDrvMemHandle handle, uint64_t flags)
{
    return map_mem(__func__, virPtr, size, offset, handle, flags, false);
}

RT_EXPORT aclError aclrtUnmapMem(void *virPtr)
{
    RT_CHECK_INIT();
    uint64_t va = (uint64_t)(uintptr_t)virPtr;
    pthread_rwlock_rdlock(&vmm_lock);
    bool known = maps && g_tree_lookup(maps, EMU_KEY(va));
    pthread_rwlock_unlock(&vmm_lock);
    if (!known)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "%p is not the start of a mapping of this process", virPtr);
    EmuReqVa q = { .va = va };
    EmuRespPhys r;
    aclError err = rt_call(EMU_CMD_VMM_UNMAP, &q, sizeof(q), &r, sizeof(r), NULL);
    if (err != ACL_SUCCESS)
        return RT_FAIL(err, "the emulator refused to unmap %p", virPtr);
    pthread_rwlock_wrlock(&vmm_lock);
    RtMap *m = g_tree_lookup(maps, EMU_KEY(va));
    if (m) {
        mmap(m->r->alias + (va - m->r->va), m->size, PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
        madvise(m->r->alias + (va - m->r->va), m->size, MADV_DONTFORK);
        g_tree_remove(maps, EMU_KEY(va));
    }
    pthread_rwlock_unlock(&vmm_lock);
    return ACL_SUCCESS;
}

/* The mapping that starts at va (lock held), or NULL. */
static RtMap *map_at(uint64_t va)
{
    return maps ? g_tree_lookup(maps, EMU_KEY(va)) : NULL;
}

RT_EXPORT aclError aclrtMemSetAccess(void *virPtr, size_t size, aclrtMemAccessDesc *desc,
                                     size_t count)
{
    RT_CHECK_INIT();
    if (!virPtr || !desc || count == 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "virPtr and desc must not be NULL and count must not be 0");
    uint64_t va = (uint64_t)(uintptr_t)virPtr;
    pthread_rwlock_rdlock(&vmm_lock);
    RtMap *m = map_at(va);
    uint64_t msize = m ? m->size : 0;
    pthread_rwlock_unlock(&vmm_lock);
    if (!m || msize != size)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "[%p, +%zu) is not exactly one mapping (virPtr and size of one aclrtMapMem)",
                       virPtr, size);
    for (size_t i = 0; i < count; i++) {
        const aclrtMemAccessDesc *d = &desc[i];
        if (d->flags != ACL_RT_MEM_ACCESS_FLAGS_READWRITE)
            return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                           "desc[%zu].flags %d: only ACL_RT_MEM_ACCESS_FLAGS_READWRITE is supported",
                           i, (int)d->flags);
        if (d->location.type == ACL_MEM_LOCATION_TYPE_DEVICE) {
            if (!rt_device_valid((int32_t)d->location.id))
                return RT_FAIL(ACL_ERROR_RT_INVALID_DEVICEID, "desc[%zu].location.id %u is not a device",
                               i, d->location.id);
        } else if (d->location.type != ACL_MEM_LOCATION_TYPE_HOST) {
            return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                           "desc[%zu].location.type %d: only HOST or DEVICE", i,
                           (int)d->location.type);
        }
    }
    for (size_t i = 0; i < count; i++) {
        const aclrtMemAccessDesc *d = &desc[i];
        int32_t user = (int32_t)d->location.id;
        if (d->location.type == ACL_MEM_LOCATION_TYPE_DEVICE) {
            EmuReqAccess q = { .va = va, .size = size, .device = rt_device_phys(user),
                               .prot = PROT_DEV_RW };
            aclError err = rt_call(EMU_CMD_VMM_ACCESS, &q, sizeof(q), NULL, 0, NULL);
            if (err != ACL_SUCCESS)
                return RT_FAIL(err, "cannot give device %d access to %p", user, virPtr);
        }
        pthread_rwlock_wrlock(&vmm_lock);
        if ((m = map_at(va))) {
            if (d->location.type == ACL_MEM_LOCATION_TYPE_DEVICE)
                m->dev_rw |= 1u << user;
            else
                m->host_flags = d->flags;
        }
        pthread_rwlock_unlock(&vmm_lock);
    }
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtMemGetAccess(void *virPtr, aclrtMemLocation *location, uint64_t *flag)
{
    RT_CHECK_INIT();
    if (!virPtr || !location || !flag)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "virPtr, location and flag must not be NULL");
    if (location->type == ACL_MEM_LOCATION_TYPE_DEVICE) {
        if (!rt_device_valid((int32_t)location->id))
            return RT_FAIL(ACL_ERROR_RT_INVALID_DEVICEID, "location->id %u is not a device",
                           location->id);
    } else if (location->type != ACL_MEM_LOCATION_TYPE_HOST) {
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "location->type %d: only HOST or DEVICE",
                       (int)location->type);
    }
    pthread_rwlock_rdlock(&vmm_lock);
    RtMap *m = map_at((uint64_t)(uintptr_t)virPtr);
    if (m)
        *flag = location->type == ACL_MEM_LOCATION_TYPE_HOST ? m->host_flags
                : (m->dev_rw & (1u << location->id)) ? ACL_RT_MEM_ACCESS_FLAGS_READWRITE
                                                      : ACL_RT_MEM_ACCESS_FLAGS_NONE;
    pthread_rwlock_unlock(&vmm_lock);
    if (!m)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "%p is not the start of a mapping of this process", virPtr);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtMemRetainAllocationHandle(void *virPtr, aclrtDrvMemHandle *handle)
{
    RT_CHECK_INIT();
    if (!virPtr || !handle)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "virPtr and handle must not be NULL");
    uint64_t va = (uint64_t)(uintptr_t)virPtr;
    pthread_rwlock_rdlock(&vmm_lock);
    RtMap *m = map_at(va);
    RtMap copy = m ? *m : (RtMap){ 0 };
    pthread_rwlock_unlock(&vmm_lock);
    if (!m)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "%p is not the start of a mapping of this process", virPtr);
    EmuReqVa q = { .va = va };
    EmuRespPhys r;
    aclError err = rt_call(EMU_CMD_VMM_RETAIN, &q, sizeof(q), &r, sizeof(r), NULL);
    if (err != ACL_SUCCESS)
        return RT_FAIL(err, "cannot retain the handle mapped at %p", virPtr);
    pthread_rwlock_wrlock(&vmm_lock);
    RtPhys *p = phys_by_id(r.handle);
    if (p) {
        p->refs++;
    } else {
        p = g_new0(RtPhys, 1);
        *p = (RtPhys){ .id = r.handle, .size = r.size, .page_size = copy.page_size,
                       .prop = copy.prop, .refs = 1 };
        g_hash_table_add(handles, p);
    }
    pthread_rwlock_unlock(&vmm_lock);
    *handle = p;
    return ACL_SUCCESS;
}

/* A3: maps virPtrDst (the start of a reservation) to the physical memory
 * behind virPtrSrc (the start of a mapped range of the same size), piece by
 * piece, so dst holds one mapping per handle mapped under src; the link choice
 * (SIO or HCCS) changes nothing the emulator models. */
RT_EXPORT aclError aclrtMemMapSelectedLink(void *virPtrDst, size_t size, void *virPtrSrc,
                                           uint32_t linkIdx)
{
    RT_CHECK_INIT();
    if (strcmp(g_rt.conn.welcome.profile, "a3") != 0)
        return rt_unsupported(__func__);
    if (!virPtrDst || !virPtrSrc || size == 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "virPtrDst and virPtrSrc must not be NULL and size must not be 0");
    if (linkIdx != 0 && linkIdx != 1)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "linkIdx %u: ACL_RT_MEM_LINK_IDX_0 (SIO) or ACL_RT_MEM_LINK_IDX_1 (HCCS)",
                       linkIdx);
    uint64_t dst = (uint64_t)(uintptr_t)virPtrDst, src = (uint64_t)(uintptr_t)virPtrSrc;
    /* Collect src's mappings: they must cover [src, src + size) exactly. */
    GArray *pieces = g_array_new(FALSE, FALSE, sizeof(RtMap));
    pthread_rwlock_rdlock(&vmm_lock);
    RtReserve *dr = reserves ? g_tree_lookup(reserves, EMU_KEY(dst)) : NULL;
    uint64_t at = src;
    RtMap *m;
    while (at < src + size && (m = map_at(at)) != NULL) {
        g_array_append_val(pieces, *m);
        at += m->size;
    }
    pthread_rwlock_unlock(&vmm_lock);
    aclError err = ACL_SUCCESS;
    if (!dr || dr->size < size)
        err = RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                      "virPtrDst %p must be the start of a reservation of at least %zu bytes",
                      virPtrDst, size);
    else if (at != src + size)
        err = RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                      "[%p, +%zu) is not exactly covered by mappings starting at virPtrSrc",
                      virPtrSrc, size);
    for (guint i = 0; err == ACL_SUCCESS && i < pieces->len; i++) {
        RtMap *pc = &g_array_index(pieces, RtMap, i);
        /* A reference for the duration of the map, dropped once it is mapped. */
        EmuReqVa rq = { .va = pc->va };
        EmuRespPhys rr;
        err = rt_call(EMU_CMD_VMM_RETAIN, &rq, sizeof(rq), &rr, sizeof(rr), NULL);
        if (err != ACL_SUCCESS)
            break;
        RtPhys tmp = { .id = rr.handle, .size = pc->size, .page_size = pc->page_size,
                       .prop = pc->prop, .refs = 1 };
        err = map_phys(__func__, (void *)(uintptr_t)(dst + (pc->va - src)), pc->size, tmp, true);
        EmuReqPhys fq = { .handle = rr.handle };
        rt_call(EMU_CMD_PHYS_FREE, &fq, sizeof(fq), NULL, 0, NULL);
    }
    g_array_free(pieces, TRUE);
    return err;
}

/* ---- lookups for the rest of the runtime ---- */

bool rt_vmm_reserved(uint64_t addr)
{
    pthread_rwlock_rdlock(&vmm_lock);
    bool in = range_at(reserves, addr) != NULL;
    pthread_rwlock_unlock(&vmm_lock);
    return in;
}

bool rt_vmm_lookup(uint64_t a, uint64_t len, RtMemRef *ref)
{
    bool found = false;
    pthread_rwlock_rdlock(&vmm_lock);
    RtReserve *r = range_at(reserves, a);
    RtMap *m = r ? range_at(maps, a) : NULL;
    if (m && len <= r->size - (a - r->va)) {
        /* Every byte must be mapped with access for the handle's device. */
        RtMap *first = m;
        uint64_t end = a + (len ? len : 1);
        found = true;
        while (found) {
            /* Host memory is always the host's to copy. */
            found = (m->device < 0 || (m->dev_rw & (1u << m->device))) &&
                    m->device == first->device;
            if (!found || m->va + m->size >= end)
                break;
            m = map_at(m->va + m->size);
            found = m != NULL;
        }
        if (found)
            *ref = (RtMemRef){ .kind = RT_MEM_DEVICE, .device = first->device,
                               .host = r->alias + (a - r->va),
                               .page_size = (uint32_t)first->page_size };
    }
    pthread_rwlock_unlock(&vmm_lock);
    return found;
}

bool rt_vmm_block(uint64_t a, uint64_t *base, uint64_t *size, int32_t *device)
{
    pthread_rwlock_rdlock(&vmm_lock);
    RtMap *m = range_at(maps, a);
    if (m) {
        *base = m->va;
        *size = m->size;
        *device = m->device;
    }
    pthread_rwlock_unlock(&vmm_lock);
    return m != NULL;
}

bool rt_vmm_fault_lookup(uint64_t addr, RtFaultAlloc *out)
{
    if (pthread_rwlock_tryrdlock(&vmm_lock) != 0)
        return false;
    RtMap *m = range_at(maps, addr);
    if (m)
        *out = (RtFaultAlloc){ .device = m->device, .base = m->va, .size = m->size };
    pthread_rwlock_unlock(&vmm_lock);
    return m != NULL;
}

RT_EXPORT aclError aclrtMemGetAddressRange(void *ptr, void **pbase, size_t *psize)
{
    RT_CHECK_INIT();
    if (!ptr || (!pbase && !psize))
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "ptr must not be NULL, and pbase and psize not both NULL");
    uint64_t a = (uint64_t)(uintptr_t)ptr, base = 0, size = 0;
    int32_t device;
    if (!rt_mem_block(a, &base, &size) && !rt_vmm_block(a, &base, &size, &device))
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "%p is not in memory this process allocated or mapped", ptr);
    if (pbase)
        *pbase = (void *)(uintptr_t)base;
    if (psize)
        *psize = size;
    return ACL_SUCCESS;
}

void rt_vmm_release(void)
{
    pthread_rwlock_wrlock(&vmm_lock);
    if (handles) {
        GHashTableIter it;
        gpointer key;
        g_hash_table_iter_init(&it, handles);
        while (g_hash_table_iter_next(&it, &key, NULL))
            g_free(key);
        g_hash_table_destroy(handles);
        g_tree_destroy(maps);
        while (g_tree_nnodes(reserves) > 0) {
            RtReserve *r = g_tree_node_value(g_tree_node_first(reserves));
            g_tree_remove(reserves, EMU_KEY(r->va));
            reserve_free(r);
        }
        g_tree_destroy(reserves);
    }
    handles = NULL;
    reserves = maps = NULL;
    pthread_rwlock_unlock(&vmm_lock);
}

void rt_vmm_forget_after_fork(void)
{
    pthread_rwlock_init(&vmm_lock, NULL);
    handles = NULL;
    reserves = maps = NULL;
}
