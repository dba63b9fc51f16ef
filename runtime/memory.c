/*
 * memory.c - device and pinned host memory as the client sees it
 * (aclrtMalloc family with and without aclrtMallocConfig, aclrtFree and
 * aclrtFreeWithDevSync, aclrtMallocHost / aclrtFreeHost and their variants,
 * cache maintenance, aclrtGetMemInfo, aclrtCheckMemType,
 * aclrtPointerGetAttributes).
 *
 * The emulator owns the memory; the client keeps three ordered tables:
 * segments (device VA range -> host alias of the memory object), allocations
 * (device VA -> size, for attributes and fault reports) and pinned host
 * buffers.  One rwlock guards them: copies only read-lock, so they run in
 * parallel; the fault handler only try-locks.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "npuemu/u64tree.h"
#include "rt.h"

typedef struct RtSegment {
    uint64_t va;
    uint64_t size;
    uint8_t *alias;
    int32_t phys;
    int32_t user;
    uint32_t page_size;
} RtSegment;

typedef struct RtAlloc {
    uint64_t va;
    uint64_t size;
    int32_t user;
} RtAlloc;

typedef struct RtHostBuf {
    uint64_t addr;
    uint64_t size;
} RtHostBuf;

static pthread_rwlock_t mem_lock = PTHREAD_RWLOCK_INITIALIZER;
/* Serialises device allocation round trips with their table updates. */
static pthread_mutex_t alloc_lock = PTHREAD_MUTEX_INITIALIZER;
static GTree *segments;     /* va -> RtSegment * */
static GTree *allocs;       /* va -> RtAlloc * */
static GTree *hostbufs;     /* addr -> RtHostBuf * */

#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((uint64_t)(a) - 1))


/* The entry with the greatest key <= addr; every value starts with {va, size}. */
static void *range_at(GTree *t, uint64_t addr)
{
    if (!t)
        return NULL;
    GTreeNode *n = emu_tree_floor(t, addr);
    if (!n)
        return NULL;
    uint64_t *r = g_tree_node_value(n);
    return addr - r[0] < r[1] ? r : NULL;
}

void rt_memory_init(void)
{
    pthread_rwlock_wrlock(&mem_lock);
    segments = emu_u64_tree_new(NULL);
    allocs = emu_u64_tree_new(g_free);
    hostbufs = emu_u64_tree_new(g_free);
    pthread_rwlock_unlock(&mem_lock);
}

static void segment_unmap(RtSegment *s)
{
    munmap(s->alias, s->size);
    g_free(s);
}

void rt_memory_release(void)
{
    rt_hostreg_release();   /* hostreg.c: registered pages go back to their owner first */
    rt_vmm_release();
    rt_ipc_release();
    pthread_rwlock_wrlock(&mem_lock);
    while (segments && g_tree_nnodes(segments)) {
        RtSegment *s = g_tree_node_value(g_tree_node_first(segments));
        g_tree_remove(segments, EMU_KEY(s->va));
        segment_unmap(s);
    }
    while (hostbufs && g_tree_nnodes(hostbufs)) {
        RtHostBuf *h = g_tree_node_value(g_tree_node_first(hostbufs));
        munmap((void *)(uintptr_t)h->addr, h->size);
        g_tree_remove(hostbufs, EMU_KEY(h->addr));
    }
    if (segments) {
        g_tree_destroy(segments);
        g_tree_destroy(allocs);
        g_tree_destroy(hostbufs);
    }
    segments = allocs = hostbufs = NULL;
    pthread_rwlock_unlock(&mem_lock);
}

void rt_memory_forget_after_fork(void)
{
    rt_vmm_forget_after_fork();
    rt_ipc_forget_after_fork();
    pthread_rwlock_init(&mem_lock, NULL);
    pthread_mutex_init(&alloc_lock, NULL);
    segments = allocs = hostbufs = NULL;
}

bool rt_in_window(const void *ptr)
{
    uint64_t a = (uint64_t)(uintptr_t)ptr;
    return a >= EMU_VA_WINDOW_LO && a < EMU_VA_WINDOW_HI;
}

RtMemKind rt_mem_lookup(const void *ptr, uint64_t len, RtMemRef *ref)
{
    uint64_t a = (uint64_t)(uintptr_t)ptr;
    *ref = (RtMemRef){ .kind = RT_MEM_PAGEABLE, .device = -1, .host = (uint8_t *)ptr };
    /* Mapped virtual memory (vmm.c) and imports (ipc.c) have their own tables. */
    if (rt_vmm_lookup(a, len, ref) || (rt_in_window(ptr) && rt_ipc_lookup(a, len, ref)))
        return ref->kind;
    pthread_rwlock_rdlock(&mem_lock);
    if (rt_in_window(ptr) || rt_vmm_reserved(a)) {
        /* The range must lie in one live allocation: a freed slice of a block
         * that is still mapped for its neighbours is not ours to touch. */
        RtAlloc *al = range_at(allocs, a);
        RtSegment *s = al && len <= al->size - (a - al->va) ? range_at(segments, a) : NULL;
        ref->kind = RT_MEM_DEVICE_BAD;
        ref->host = NULL;
        if (s && len <= s->size - (a - s->va)) {
            ref->kind = RT_MEM_DEVICE;
            ref->device = s->user;
            ref->host = s->alias + (a - s->va);
            ref->page_size = s->page_size;
        }
    } else {
        RtHostBuf *h = range_at(hostbufs, a);
        if (h) {
            ref->kind = len <= h->size - (a - h->addr) ? RT_MEM_PINNED : RT_MEM_PAGEABLE;
            ref->page_size = 4096;
        }
    }
    pthread_rwlock_unlock(&mem_lock);
    return ref->kind;
}

bool rt_mem_block(uint64_t addr, uint64_t *base, uint64_t *size)
{
    pthread_rwlock_rdlock(&mem_lock);
    uint64_t *r = range_at(allocs, addr);
    if (!r)
        r = range_at(hostbufs, addr);
    if (r) {
        *base = r[0];
        *size = r[1];
    }
    pthread_rwlock_unlock(&mem_lock);
    return r != NULL;
}

bool rt_fault_lookup(uint64_t addr, RtFaultAlloc *out)
{
    /* Runs in the SIGSEGV handler: try-lock only, never wait. */
    if (pthread_rwlock_tryrdlock(&mem_lock) != 0)
        return false;
    RtAlloc *a = range_at(allocs, addr);
    if (a)
        *out = (RtFaultAlloc){ .device = a->user, .base = a->va, .size = a->size };
    pthread_rwlock_unlock(&mem_lock);
    return a != NULL || rt_vmm_fault_lookup(addr, out);
}

void rt_memory_drop_device(int32_t phys)
{
    pthread_rwlock_wrlock(&mem_lock);
    GPtrArray *gone = g_ptr_array_new();
    for (GTreeNode *n = segments ? g_tree_node_first(segments) : NULL; n; n = g_tree_node_next(n)) {
        RtSegment *s = g_tree_node_value(n);
        if (s->phys == phys)
            g_ptr_array_add(gone, s);
    }
    for (unsigned i = 0; i < gone->len; i++) {
        RtSegment *s = g_ptr_array_index(gone, i);
        /* Forget the allocations inside the segment too (slices of a shared
         * block need not reach its end). */
        GTreeNode *n;
        while ((n = g_tree_lower_bound(allocs, EMU_KEY(s->va))) &&
               (uint64_t)(uintptr_t)g_tree_node_key(n) < s->va + s->size)
            g_tree_remove(allocs, g_tree_node_key(n));
        g_tree_remove(segments, EMU_KEY(s->va));
        segment_unmap(s);
    }
    g_ptr_array_free(gone, TRUE);
    pthread_rwlock_unlock(&mem_lock);
}

/* ---- allocation configuration ---- */

/* Checks the attributes of an aclrtMallocConfig (NULL: none).  `host` is true
 * for aclrtMallocHostWithCfg, the only call that knows ACL_RT_MEM_ATTR_VA_FLAG.
 * The module id only labels the memory for maintenance tools; nothing here
 * reads it back, so any value is accepted. */
static aclError check_cfg(const char *api, const aclrtMallocConfig *cfg, bool host)
{
    if (!cfg)
        return ACL_SUCCESS;
    if (cfg->numAttrs && !cfg->attrs)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "cfg->attrs is NULL but numAttrs is %zu",
                       cfg->numAttrs);
    for (size_t i = 0; i < cfg->numAttrs; i++) {
        const aclrtMallocAttribute *a = &cfg->attrs[i];
        switch (a->attr) {
        case ACL_RT_MEM_ATTR_RSV:
            /* A reserved entry carries nothing, and its value must be zero. */
            for (size_t k = 0; k < sizeof(a->value.rsv); k++)
                if (a->value.rsv[k])
                    return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                                   "cfg->attrs[%zu]: a reserved attribute must have a zero value",
                                   i);
            break;
        case ACL_RT_MEM_ATTR_MODULE_ID:
            break;
        case ACL_RT_MEM_ATTR_DEVICE_ID: {
            /* Documented: it must name the device the thread computes on. */
            int32_t want = (int32_t)a->value.deviceId;
            if (!rt_device_valid(want))
                return rt_fail(ACL_ERROR_RT_INVALID_DEVICEID, api,
                               "cfg->attrs[%zu]: invalid device id %u; the valid range is "
                               "[0, %d)", i, a->value.deviceId, g_rt.ndev);
            aclError err;
            RtContext *ctx = rt_require_ctx(api, &err);
            if (!ctx)
                return err;
            if (ctx->device != want)
                return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                               "cfg->attrs[%zu]: device id %d is not the current device %d", i,
                               want, ctx->device);
            break;
        }
        case ACL_RT_MEM_ATTR_VA_FLAG:
            if (!host)
                return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                               "cfg->attrs[%zu]: ACL_RT_MEM_ATTR_VA_FLAG applies to host "
                               "memory (aclrtMallocHostWithCfg) only", i);
            if (a->value.vaFlag > 1)
                return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                               "cfg->attrs[%zu]: vaFlag %u is neither 0 nor 1", i,
                               a->value.vaFlag);
            break;
        default:
            return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                           "cfg->attrs[%zu]: %d is not an aclrtMallocAttrType", i, (int)a->attr);
        }
    }
    return ACL_SUCCESS;
}

/* ---- device memory ---- */

static aclError dev_malloc(const char *api, void **devPtr, size_t size, uint32_t policy,
                           bool align32_only, const aclrtMallocConfig *cfg)
{
    RT_CHECK_INIT();
    if (!devPtr)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "devPtr must not be NULL");
    if (size == 0)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "size must not be 0");
    aclError err;
    RtContext *ctx = rt_require_ctx(api, &err);
    if (!ctx)
        return err;
    if ((err = check_cfg(api, cfg, false)) != ACL_SUCCESS)
        return err;
    EmuReqMemAlloc q = { .device = rt_device_phys(ctx->device), .policy = policy, .size = size,
                         .flags = align32_only ? EMU_ALLOC_ALIGN32_ONLY : 0 };
    EmuRespMemAlloc r;
    int fd;
    pthread_mutex_lock(&alloc_lock);
    err = rt_call(EMU_CMD_MEM_ALLOC, &q, sizeof(q), &r, sizeof(r), &fd);
    if (err == ACL_ERROR_RT_RESOURCE_ALLOC_FAIL) {
        /* Allocated, but its fd could not reach us (fd table full): give it back. */
        EmuReqMemFree f = { .va = r.va };
        EmuRespMemFree fr;
        rt_call(EMU_CMD_MEM_FREE, &f, sizeof(f), &fr, sizeof(fr), NULL);
        err = ACL_ERROR_RT_MEMORY_ALLOCATION;
    }
    if (err != ACL_SUCCESS) {
        pthread_mutex_unlock(&alloc_lock);
        return rt_fail(err, api, "cannot allocate %zu bytes on device %d (policy 0x%x)", size,
                       ctx->device, policy);
    }
    RtSegment *seg = NULL;
    if (r.new_seg) {
        void *alias = mmap(NULL, r.seg_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (alias == MAP_FAILED) {
            EmuReqMemFree f = { .va = r.va };
            EmuRespMemFree fr;
            rt_call(EMU_CMD_MEM_FREE, &f, sizeof(f), &fr, sizeof(fr), NULL);
            pthread_mutex_unlock(&alloc_lock);
            return rt_fail(ACL_ERROR_RT_MEMORY_ALLOCATION, api, "cannot map %llu bytes",
                           (unsigned long long)r.seg_size);
        }
        /* A forked child must not keep the parent's device memory alive. */
        madvise(alias, r.seg_size, MADV_DONTFORK);
        seg = g_new(RtSegment, 1);
        *seg = (RtSegment){ .va = r.seg_va, .size = r.seg_size, .alias = alias,
                            .phys = q.device, .user = ctx->device, .page_size = r.page_size };
    } else if (fd >= 0) {
        close(fd);
    }
    RtAlloc *a = g_new(RtAlloc, 1);
    *a = (RtAlloc){ .va = r.va, .size = r.size, .user = ctx->device };
    pthread_rwlock_wrlock(&mem_lock);
    if (seg)
        g_tree_insert(segments, EMU_KEY(seg->va), seg);
    g_tree_insert(allocs, EMU_KEY(a->va), a);
    pthread_rwlock_unlock(&mem_lock);
    pthread_mutex_unlock(&alloc_lock);
    *devPtr = (void *)(uintptr_t)r.va;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtMalloc(void **devPtr, size_t size, aclrtMemMallocPolicy policy)
{
    return dev_malloc(__func__, devPtr, size, (uint32_t)policy, false, NULL);
}

RT_EXPORT aclError aclrtMallocAlign32(void **devPtr, size_t size, aclrtMemMallocPolicy policy)
{
    return dev_malloc(__func__, devPtr, size, (uint32_t)policy, true, NULL);
}

#define POLICY_BANDWIDTH (ACL_MEM_TYPE_LOW_BAND_WIDTH | ACL_MEM_TYPE_HIGH_BAND_WIDTH)
/* Sent for a base policy outside the enum: the emulator then chooses the page
 * size from the size alone, as documented for such values. */
#define POLICY_OUT_OF_RANGE 0xffu

RT_EXPORT aclError aclrtMallocWithCfg(void **devPtr, size_t size, aclrtMemMallocPolicy policy,
                                      aclrtMallocConfig *cfg)
{
    RT_CHECK_INIT();
    /* Unlike aclrtMalloc, this call takes an OR of at most one bandwidth
     * choice, READONLY and one base policy. */
    uint32_t p = (uint32_t)policy;
    if ((p & POLICY_BANDWIDTH) == POLICY_BANDWIDTH)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "policy 0x%x asks for both low and high bandwidth memory", p);
    /* A2 / A3 ignore the bandwidth bits (the system picks the memory).
     * READONLY forbids user-space writes, which only kernels could make: the
     * host cannot touch device memory at all, and copies are DMA. */
    uint32_t base = p & ~(uint32_t)(POLICY_BANDWIDTH | ACL_MEM_ACCESS_USER_SPACE_READONLY);
    if (base > ACL_MEM_MALLOC_HUGE1G_ONLY_P2P)
        base = POLICY_OUT_OF_RANGE;
    return dev_malloc(__func__, devPtr, size, base, false, cfg);
}

RT_EXPORT aclError aclrtMallocForTaskScheduler(void **devPtr, size_t size,
                                               aclrtMemMallocPolicy policy,
                                               aclrtMallocConfig *cfg)
{
    /* Every emulated device allocation is reachable by the stream engine (the
     * task scheduler), so this is an ordinary allocation. */
    return dev_malloc(__func__, devPtr, size, (uint32_t)policy, false, cfg);
}

RT_EXPORT aclError aclrtMallocCached(void **devPtr, size_t size, aclrtMemMallocPolicy policy)
{
    switch (policy) {
    case ACL_MEM_MALLOC_HUGE_FIRST:
    case ACL_MEM_MALLOC_HUGE_ONLY:
    case ACL_MEM_MALLOC_NORMAL_ONLY:
    case ACL_MEM_MALLOC_HUGE1G_ONLY:
        return dev_malloc(__func__, devPtr, size, (uint32_t)policy, false, NULL);
    default:
        RT_CHECK_INIT();
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "policy %d is not one of HUGE_FIRST, HUGE_ONLY, NORMAL_ONLY, HUGE1G_ONLY",
                       (int)policy);
    }
}

/* ACL_SUCCESS if devPtr starts a live device allocation, else the error. */
static aclError check_dev_free(const char *api, void *devPtr)
{
    if (!devPtr)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "devPtr must not be NULL");
    uint64_t va = (uint64_t)(uintptr_t)devPtr;
    pthread_rwlock_rdlock(&mem_lock);
    bool ok = g_tree_lookup(allocs, EMU_KEY(va)) != NULL;
    bool pinned = range_at(hostbufs, va) != NULL;
    pthread_rwlock_unlock(&mem_lock);
    if (ok)
        return ACL_SUCCESS;
    return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                   "%p is not the start of device memory allocated by aclrtMalloc%s", devPtr,
                   pinned ? " (it is host memory: use aclrtFreeHost)" : " (or it was freed)");
}

static aclError dev_free(const char *api, void *devPtr)
{
    uint64_t va = (uint64_t)(uintptr_t)devPtr;
    /* The emulator may hand a freed address to another thread's aclrtMalloc at
     * once: its request and table update must not interleave with ours. */
    pthread_mutex_lock(&alloc_lock);
    aclError err = check_dev_free(api, devPtr);
    if (err != ACL_SUCCESS) {
        pthread_mutex_unlock(&alloc_lock);
        return err;
    }
    EmuReqMemFree q = { .va = va };
    EmuRespMemFree r;
    err = rt_call(EMU_CMD_MEM_FREE, &q, sizeof(q), &r, sizeof(r), NULL);
    RtSegment *gone = NULL;
    if (err == ACL_SUCCESS) {
        pthread_rwlock_wrlock(&mem_lock);
        g_tree_remove(allocs, EMU_KEY(va));
        if (r.seg_released && (gone = g_tree_lookup(segments, EMU_KEY(r.seg_va))))
            g_tree_remove(segments, EMU_KEY(r.seg_va));
        pthread_rwlock_unlock(&mem_lock);
    }
    pthread_mutex_unlock(&alloc_lock);
    if (err != ACL_SUCCESS)
        return rt_fail(err, api, "the emulator refused to free %p", devPtr);
    if (gone)
        segment_unmap(gone);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtFree(void *devPtr)
{
    RT_CHECK_INIT();
    if (rt_managed_overlaps((uint64_t)(uintptr_t)devPtr, 1))
        return rt_managed_free(__func__, devPtr);   /* managed.c */
    return dev_free(__func__, devPtr);
}

/* For the *WithDevSync frees: waits for the work queued so far on every stream
 * of the process.  The runtime does not know which tasks use a buffer, and a
 * buffer can be used from any device's streams (pinned memory by all of them,
 * device memory by peer copies), so it waits for all.  A failed task's error is
 * not consumed: the free succeeds, and the stream's next synchronise reports
 * the failure as it would have without this call. */
static aclError drain_for_free(const char *api)
{
    aclError err = rt_streams_drain();
    return err == ACL_SUCCESS ? ACL_SUCCESS
                              : rt_fail(err, api, "cannot wait for the queued tasks");
}

RT_EXPORT aclError aclrtFreeWithDevSync(void *devPtr)
{
    RT_CHECK_INIT();
    aclError err = check_dev_free(__func__, devPtr);
    if (err == ACL_SUCCESS)
        err = drain_for_free(__func__);
    return err == ACL_SUCCESS ? dev_free(__func__, devPtr) : err;
}

/* Device memory is coherent with its users on A2 / A3 (CANN documents that
 * applications need no cache maintenance), so flush and invalidate only check
 * their arguments. */
static aclError cache_op(const char *api, void *devPtr, size_t size)
{
    RT_CHECK_INIT();
    if (!devPtr)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "devPtr must not be NULL");
    if (size == 0)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "size must not be 0");
    if ((uint64_t)(uintptr_t)devPtr + size < (uint64_t)(uintptr_t)devPtr)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "%p + %zu runs past the end of the address space", devPtr, size);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtMemFlush(void *devPtr, size_t size)
{
    return cache_op(__func__, devPtr, size);
}

RT_EXPORT aclError aclrtMemInvalidate(void *devPtr, size_t size)
{
    return cache_op(__func__, devPtr, size);
}

#define MEM_TYPES (ACL_RT_MEM_TYPE_DEV | ACL_RT_MEM_TYPE_DVPP | ACL_RT_MEM_TYPE_RSVD)

RT_EXPORT aclError aclrtCheckMemType(void **addrList, uint32_t size, uint32_t memType,
                                     uint32_t *checkResult, uint32_t reserve)
{
    RT_CHECK_INIT();
    if (!addrList || !checkResult)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "addrList and checkResult must not be NULL");
    if (size == 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "size (the number of addresses) must not be 0");
    if (memType == 0 || (memType & ~MEM_TYPES))
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "memType 0x%x is not an OR of ACL_RT_MEM_TYPE_DEV, _DVPP and _RSVD",
                       memType);
    if (reserve != 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "reserve must be 0, not %u", reserve);
    /* Only the aclrtMalloc family's memory exists here: there is no DVPP
     * allocator, and reserving address ranges is not supported yet.  Interior
     * addresses of an allocation are device memory too. */
    uint32_t match = 1;
    for (uint32_t i = 0; i < size && match; i++) {
        RtMemRef ref;
        uint32_t type = rt_mem_lookup(addrList[i], 1, &ref) == RT_MEM_DEVICE
                            ? ACL_RT_MEM_TYPE_DEV : 0;
        match = (type & memType) != 0;
    }
    *checkResult = match;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtGetMemInfo(aclrtMemAttr attr, size_t *free, size_t *total)
{
    RT_CHECK_INIT();
    if (!free || !total)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "free and total must not be NULL");
    aclError err;
    RtContext *ctx = rt_require_ctx(__func__, &err);
    if (!ctx)
        return err;
    /* The hardware-neutral attributes name the HBM pools of A2 / A3. */
    static const uint32_t neutral[] = {
        [ACL_MEM_NORMAL] = ACL_HBM_MEM_NORMAL, [ACL_MEM_HUGE] = ACL_HBM_MEM_HUGE,
        [ACL_MEM_HUGE1G] = ACL_HBM_MEM_HUGE1G, [ACL_MEM_P2P_NORMAL] = ACL_HBM_MEM_P2P_NORMAL,
        [ACL_MEM_P2P_HUGE] = ACL_HBM_MEM_P2P_HUGE, [ACL_MEM_P2P_HUGE1G] = ACL_HBM_MEM_P2P_HUGE1G,
    };
    uint32_t a = (uint32_t)attr;
    if (a >= ACL_MEM_NORMAL && a <= ACL_MEM_P2P_HUGE1G)
        a = neutral[a];
    EmuReqMemInfo q = { .device = rt_device_phys(ctx->device), .attr = a };
    EmuRespMemInfo r;
    err = rt_call(EMU_CMD_MEM_INFO, &q, sizeof(q), &r, sizeof(r), NULL);
    if (err != ACL_SUCCESS)
        return RT_FAIL(err, "attribute %d is not an aclrtMemAttr", (int)attr);
    *free = r.free;
    *total = r.total;
    return ACL_SUCCESS;
}

/* The emulated device's HBM users, from its pool: aclrtMalloc memory (which
 * also backs memory pools) and aclrtMallocPhysical handles, of every process
 * on the device, largest first. */
RT_EXPORT aclError aclrtGetMemUsageInfo(int32_t deviceId, aclrtMemUsageInfo *memUsageInfo,
                                        size_t inputNum, size_t *outputNum)
{
    RT_CHECK_INIT();
    if (!memUsageInfo || !outputNum || inputNum == 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "memUsageInfo and outputNum must not be NULL, inputNum not 0");
    if (!rt_device_valid(deviceId))
        return RT_FAIL(ACL_ERROR_RT_INVALID_DEVICEID, "device %d does not exist", deviceId);
    EmuReqDevice q = { .device = rt_device_phys(deviceId) };
    EmuRespMemUsage r;
    aclError err = rt_call(EMU_CMD_MEM_USAGE, &q, sizeof(q), &r, sizeof(r), NULL);
    if (err != ACL_SUCCESS)
        return RT_FAIL(err, "cannot query device %d", deviceId);
    aclrtMemUsageInfo comp[2] = {
        { .name = "aclrtMalloc", .curMemSize = r.malloc_bytes, .memPeakSize = r.malloc_peak },
        { .name = "aclrtMallocPhysical", .curMemSize = r.phys_bytes,
          .memPeakSize = r.phys_peak },
    };
    if (comp[1].curMemSize > comp[0].curMemSize) {
        aclrtMemUsageInfo t = comp[0];
        comp[0] = comp[1];
        comp[1] = t;
    }
    size_t n = inputNum < G_N_ELEMENTS(comp) ? inputNum : G_N_ELEMENTS(comp);
    memcpy(memUsageInfo, comp, n * sizeof(comp[0]));
    *outputNum = n;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtPointerGetAttributes(const void *ptr, aclrtPtrAttributes *attributes)
{
    RT_CHECK_INIT();
    if (!ptr || !attributes)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "ptr and attributes must not be NULL");
    RtMemRef ref;
    memset(attributes, 0, sizeof(*attributes));
    switch (rt_mem_lookup(ptr, 1, &ref)) {
    case RT_MEM_DEVICE:
        /* Host physical memory mapped through the VMM API has no device. */
        attributes->location.type =
            ref.device < 0 ? ACL_MEM_LOCATION_TYPE_HOST : ACL_MEM_LOCATION_TYPE_DEVICE;
        attributes->location.id = ref.device < 0 ? 0 : (uint32_t)ref.device;
        attributes->pageSize = ref.page_size;
        break;
    case RT_MEM_PINNED:
        attributes->location.type = ACL_MEM_LOCATION_TYPE_HOST;
        attributes->pageSize = ref.page_size;
        rt_managed_attributes(ptr, attributes);     /* managed.c */
        break;
    default:
        attributes->location.type = ACL_MEM_LOCATION_TYPE_UNREGISTERED;
        break;
    }
    return ACL_SUCCESS;
}

/* ---- pinned host memory ---- */

static aclError host_malloc(const char *api, void **hostPtr, uint64_t size,
                            const aclrtMallocConfig *cfg)
{
    RT_CHECK_INIT();
    if (!hostPtr)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "hostPtr must not be NULL");
    if (size == 0 || size > (1ull << 40))
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "size %" PRIu64 " is 0 or too large",
                       size);
    aclError err = check_cfg(api, cfg, true);
    if (err != ACL_SUCCESS)
        return err;
    uint64_t len = ALIGN_UP(size, 4096);
    /* Reserve the address first so the emulator can learn it in the same request. */
    void *at = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (at == MAP_FAILED)
        return rt_fail(ACL_ERROR_RT_MEMORY_ALLOCATION, api, "no address space for %" PRIu64
                       " bytes", size);
    EmuReqHostAlloc q = { .size = len, .client_addr = (uint64_t)(uintptr_t)at };
    int fd;
    err = rt_call(EMU_CMD_HOST_ALLOC, &q, sizeof(q), NULL, 0, &fd);
    if (err == ACL_ERROR_RT_RESOURCE_ALLOC_FAIL) {
        EmuReqHostFree f = { .client_addr = q.client_addr };
        rt_call(EMU_CMD_HOST_FREE, &f, sizeof(f), NULL, 0, NULL);
        err = ACL_ERROR_RT_MEMORY_ALLOCATION;
    }
    if (err != ACL_SUCCESS) {
        munmap(at, len);
        return rt_fail(err, api, "cannot allocate %" PRIu64 " bytes of pinned host memory",
                       size);
    }
    void *p = mmap(at, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        EmuReqHostFree f = { .client_addr = q.client_addr };
        rt_call(EMU_CMD_HOST_FREE, &f, sizeof(f), NULL, 0, NULL);
        munmap(at, len);
        return rt_fail(ACL_ERROR_RT_MEMORY_ALLOCATION, api, "cannot map pinned host memory");
    }
    RtHostBuf *h = g_new(RtHostBuf, 1);
    *h = (RtHostBuf){ .addr = q.client_addr, .size = len };
    pthread_rwlock_wrlock(&mem_lock);
    g_tree_insert(hostbufs, EMU_KEY(h->addr), h);
    pthread_rwlock_unlock(&mem_lock);
    rt_hostreg_note_alloc(p, cfg);                  /* hostreg.c: vaFlag */
    *hostPtr = p;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtMallocHost(void **hostPtr, size_t size)
{
    return host_malloc(__func__, hostPtr, size, NULL);
}

RT_EXPORT aclError aclrtMallocHostWithCfg(void **ptr, uint64_t size, aclrtMallocConfig *cfg)
{
    /* vaFlag = 1 only promises that aclrtHostRegister will map the buffer at
     * its host address; nothing else changes. */
    return host_malloc(__func__, ptr, size, cfg);
}

static aclError host_free_error(const char *api, void *hostPtr)
{
    if (!hostPtr)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "hostPtr must not be NULL");
    return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                   "%p is not memory allocated by aclrtMallocHost (or it was freed)", hostPtr);
}

static aclError host_free(const char *api, void *hostPtr)
{
    uint64_t addr = (uint64_t)(uintptr_t)hostPtr;
    aclError reg_err = rt_hostreg_before_free_host(api, hostPtr);  /* hostreg.c */
    if (reg_err != ACL_SUCCESS)
        return reg_err;
    pthread_rwlock_wrlock(&mem_lock);
    RtHostBuf *h = hostPtr ? g_tree_lookup(hostbufs, EMU_KEY(addr)) : NULL;
    uint64_t len = h ? h->size : 0;
    if (h)
        g_tree_remove(hostbufs, EMU_KEY(addr));
    pthread_rwlock_unlock(&mem_lock);
    if (!h)
        return host_free_error(api, hostPtr);
    EmuReqHostFree q = { .client_addr = addr };
    aclError err = rt_call(EMU_CMD_HOST_FREE, &q, sizeof(q), NULL, 0, NULL);
    munmap(hostPtr, len);
    return err == ACL_SUCCESS ? ACL_SUCCESS : rt_fail(err, api, "the emulator refused the free");
}

RT_EXPORT aclError aclrtFreeHost(void *hostPtr)
{
    RT_CHECK_INIT();
    return host_free(__func__, hostPtr);
}

RT_EXPORT aclError aclrtFreeHostWithDevSync(void *hostPtr)
{
    RT_CHECK_INIT();
    uint64_t addr = (uint64_t)(uintptr_t)hostPtr;
    pthread_rwlock_rdlock(&mem_lock);
    bool known = hostPtr && g_tree_lookup(hostbufs, EMU_KEY(addr)) != NULL;
    pthread_rwlock_unlock(&mem_lock);
    if (!known)
        return host_free_error(__func__, hostPtr);
    aclError err = drain_for_free(__func__);
    return err == ACL_SUCCESS ? host_free(__func__, hostPtr) : err;
}

/* ---- host buffer table for hostreg.c and managed.c (see rt.h) ---- */

void rt_hostbuf_insert(uint64_t addr, uint64_t size)
{
    RtHostBuf *h = g_new(RtHostBuf, 1);
    *h = (RtHostBuf){ .addr = addr, .size = size };
    pthread_rwlock_wrlock(&mem_lock);
    if (hostbufs)
        g_tree_insert(hostbufs, EMU_KEY(addr), h);
    else
        g_free(h);
    pthread_rwlock_unlock(&mem_lock);
}

bool rt_hostbuf_remove(uint64_t addr)
{
    pthread_rwlock_wrlock(&mem_lock);
    bool found = hostbufs && g_tree_remove(hostbufs, EMU_KEY(addr));
    pthread_rwlock_unlock(&mem_lock);
    return found;
}

int rt_hostbuf_find(uint64_t addr, uint64_t len, uint64_t *base, uint64_t *size)
{
    int found = 0;
    pthread_rwlock_rdlock(&mem_lock);
    RtHostBuf *h = range_at(hostbufs, addr);
    GTreeNode *next = hostbufs && !h ? g_tree_upper_bound(hostbufs, EMU_KEY(addr)) : NULL;
    if (next && EMU_KEY_U64(g_tree_node_key(next)) - addr < len)
        h = g_tree_node_value(next);
    if (h) {
        *base = h->addr;
        *size = h->size;
        found = h->addr <= addr && len <= h->size - (addr - h->addr) ? 1 : -1;
    }
    pthread_rwlock_unlock(&mem_lock);
    return found;
}
