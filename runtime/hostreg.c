/*
 * hostreg.c - host memory registered for the device (chapter 11-02:
 * aclrtHostRegister, aclrtHostRegisterV2, aclrtHostGetDevicePointer,
 * aclrtHostUnregister, aclrtHostMemMapCapabilities).
 *
 * Concepts:
 *  - The device reaches host memory only through pinned buffers: memfds that
 *    npu-emu maps too, keyed by their client address (HOST_ALLOC).
 *  - aclrtMallocHost memory already is one.  Registering a range of it only
 *    gives the device a second address for the buffer (HOST_ALIAS), or none at
 *    all when the buffer was allocated with vaFlag = 1: then the device address
 *    is the host address.
 *  - Pageable memory (malloc, mmap) is swapped in: a new pinned buffer receives
 *    the current contents of the pages and is mapped MAP_FIXED over them, so the
 *    application keeps its addresses and data while npu-emu now shares the
 *    pages.  Unregistering moves private anonymous pages with the current
 *    contents back.  Writes other threads make to those pages during a swap are
 *    lost; docs/decisions.md lists this and the other limits.
 *  - Registered memory is in memory.c's host buffer table, so copies treat it
 *    as pinned memory: asynchronous copies become stream engine tasks.
 *  - The device address is a second view of the same pages in this process
 *    too.  The reference forbids copies through it; one that happens anyway
 *    still moves the right bytes (as pageable memory).
 *  - A forked child gets private copies of the registered pages and no views:
 *    registrations belong to the parent's session.
 * Locking: reg_lock serialises registrations, round trips included, and guards
 * the tables.  Copies never take it.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "npuemu/u64tree.h"
#include "rt.h"

#define PAGE 4096ull
#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((uint64_t)(a) - 1))

typedef struct HostReg {
    uint64_t addr;          /* page-aligned host address, the key */
    uint64_t size;          /* whole pages */
    uint64_t buf;           /* the pinned buffer npu-emu knows (addr when pageable) */
    uint64_t dev;           /* device address of addr; 0: not mapped for the device */
    uint64_t view;          /* our mapping at the device address (a whole buffer); 0: none */
    uint64_t view_size;
    bool pageable;          /* we swapped the pages in and swap them back */
} HostReg;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static GTree *regs;             /* addr -> HostReg * */
static GHashTable *va_same;     /* aclrtMallocHostWithCfg buffers with vaFlag = 1 */
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* ---- pages ---- */

/* Copies whole pages.  The pages may hold other objects' AddressSanitizer
 * redzones (a registration covers whole pages), which the instrumented memcpy
 * would report, so sanitised builds copy words without checks. */
#if defined(__SANITIZE_ADDRESS__)
#define HOSTREG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HOSTREG_ASAN 1
#endif
#endif
#ifdef HOSTREG_ASAN
__attribute__((no_sanitize_address)) static void page_copy(uint64_t dst, uint64_t src,
                                                           uint64_t len)
{
    volatile uint64_t *d = (volatile uint64_t *)(uintptr_t)dst;
    const volatile uint64_t *s = (const volatile uint64_t *)(uintptr_t)src;
    for (uint64_t i = 0; i < len / 8; i++)
        d[i] = s[i];
}
#else
static void page_copy(uint64_t dst, uint64_t src, uint64_t len)
{
    memcpy((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, len);
}
#endif

/* Puts private anonymous pages holding the current contents at [addr, addr + len),
 * in one mremap, so the range is never unmapped.  False if nothing changed. */
static bool make_private(uint64_t addr, uint64_t len)
{
    void *tmp = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (tmp == MAP_FAILED)
        return false;
    page_copy((uint64_t)(uintptr_t)tmp, addr, len);
    if (mremap(tmp, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)(uintptr_t)addr) ==
        MAP_FAILED) {
        munmap(tmp, len);
        return false;
    }
    return true;
}

/* ACL_SUCCESS if every page of [addr, addr + len) is mapped private and
 * read-write (what malloc, new and a default mmap give), else the error. */
static aclError check_pageable(const char *api, uint64_t addr, uint64_t len)
{
    char *maps = NULL;
    if (!g_file_get_contents("/proc/self/maps", &maps, NULL, NULL))
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "cannot read /proc/self/maps");
    uint64_t cur = addr, end = addr + len;
    aclError err = ACL_SUCCESS;
    for (char *line = maps; line && *line && cur < end && err == ACL_SUCCESS;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *p;
        uint64_t lo = strtoull(line, &p, 16);
        uint64_t hi = *p == '-' ? strtoull(p + 1, &p, 16) : 0;
        const char *perms = p + (*p == ' ');
        line = next;
        if (hi <= cur)
            continue;
        if (lo > cur)
            break;      /* a hole */
        if (strlen(perms) < 4 || perms[0] != 'r' || perms[1] != 'w')
            err = rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                          "0x%" PRIx64 " is not readable and writable host memory (%.4s)",
                          cur, perms);
        else if (perms[3] != 'p')
            err = rt_fail(ACL_ERROR_RT_FEATURE_NOT_SUPPORT, api,
                          "0x%" PRIx64 " is in a shared mapping: the emulator can pin only "
                          "private memory (malloc, new, a default mmap, aclrtMallocHost)",
                          cur);
        cur = hi;
    }
    g_free(maps);
    if (err == ACL_SUCCESS && cur < end)
        err = rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                      "0x%" PRIx64 " (in the range to register) is not mapped", cur);
    return err;
}

/* ---- tables ---- */

static void child_after_fork(void)
{
    pthread_mutex_init(&reg_lock, NULL);
    /* The child shares the parent's registered pages: give it its own copy,
     * as a fork gives of pageable memory.  Views are the parent's business. */
    for (GTreeNode *n = regs ? g_tree_node_first(regs) : NULL; n; n = g_tree_node_next(n)) {
        HostReg *r = g_tree_node_value(n);
        if (r->pageable)
            make_private(r->addr, r->size);
        if (r->view)
            munmap((void *)(uintptr_t)r->view, r->view_size);
    }
    if (regs)
        g_tree_destroy(regs);
    if (va_same)
        g_hash_table_destroy(va_same);
    regs = NULL;
    va_same = NULL;
}

static void install_atfork(void)
{
    pthread_atfork(NULL, NULL, child_after_fork);
}

/* With reg_lock held. */
static void tables_init(void)
{
    pthread_once(&fork_once, install_atfork);
    if (!regs)
        regs = emu_u64_tree_new(g_free);
    if (!va_same)
        va_same = g_hash_table_new(g_direct_hash, g_direct_equal);
}

/* The registration containing addr, or NULL (reg_lock held). */
static HostReg *reg_at(uint64_t addr)
{
    GTreeNode *n = regs ? emu_tree_floor(regs, addr) : NULL;
    HostReg *r = n ? g_tree_node_value(n) : NULL;
    return r && addr - r->addr < r->size ? r : NULL;
}

static bool reg_overlaps(uint64_t addr, uint64_t len)
{
    if (reg_at(addr))
        return true;
    GTreeNode *n = regs ? g_tree_upper_bound(regs, EMU_KEY(addr)) : NULL;
    return n && EMU_KEY_U64(g_tree_node_key(n)) - addr < len;
}

/* Drops npu-emu's buffer or alias at addr; errors only mean it is gone already. */
static void emu_host_free(uint64_t addr)
{
    EmuReqHostFree f = { .client_addr = addr };
    rt_call(EMU_CMD_HOST_FREE, &f, sizeof(f), NULL, 0, NULL);
}

/* Gives npu-emu the device address `view` for the buffer at `buf`. */
static aclError emu_host_alias(uint64_t buf, uint64_t view)
{
    EmuReqHostAlias q = { .client_addr = buf, .alias = view };
    return rt_call(EMU_CMD_HOST_ALIAS, &q, sizeof(q), NULL, 0, NULL);
}

/* ---- registering ---- */

/* A range of an aclrtMallocHost buffer [buf, buf + buf_size): already pinned. */
static aclError register_pinned(const char *api, HostReg *r, uint64_t buf, uint64_t buf_size,
                                bool mapped)
{
    r->buf = buf;
    if (!mapped)
        return ACL_SUCCESS;
    if (g_hash_table_contains(va_same, EMU_KEY(buf))) {
        r->dev = r->addr;
        return ACL_SUCCESS;
    }
    /* A second view of the whole buffer: npu-emu aliases whole buffers. */
    void *view = mremap((void *)(uintptr_t)buf, 0, buf_size, MREMAP_MAYMOVE);
    if (view == MAP_FAILED)
        return rt_fail(ACL_ERROR_RT_MEMORY_ALLOCATION, api, "no address space for the "
                       "device view of %" PRIu64 " bytes", buf_size);
    aclError err = emu_host_alias(buf, (uint64_t)(uintptr_t)view);
    if (err != ACL_SUCCESS) {
        munmap(view, buf_size);
        return rt_fail(err, api, "npu-emu cannot map the buffer at 0x%" PRIx64
                       " for the device", buf);
    }
    r->view = (uint64_t)(uintptr_t)view;
    r->view_size = buf_size;
    r->dev = r->view + (r->addr - buf);
    return ACL_SUCCESS;
}

/* Pageable memory: a pinned buffer at the same address takes over its pages. */
static aclError register_pageable(const char *api, HostReg *r, bool mapped)
{
    aclError err = check_pageable(api, r->addr, r->size);
    if (err != ACL_SUCCESS)
        return err;
    EmuReqHostAlloc q = { .size = r->size, .client_addr = r->addr };
    int fd = -1;
    err = rt_call(EMU_CMD_HOST_ALLOC, &q, sizeof(q), NULL, 0, &fd);
    if (err == ACL_ERROR_RT_RESOURCE_ALLOC_FAIL) {
        emu_host_free(r->addr);     /* allocated, but its fd could not reach us */
        err = ACL_ERROR_RT_MEMORY_ALLOCATION;
    }
    if (err != ACL_SUCCESS)
        return rt_fail(err, api, "npu-emu cannot pin %" PRIu64 " bytes at 0x%" PRIx64,
                       r->size, r->addr);
    void *view = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (view == MAP_FAILED) {
        close(fd);
        emu_host_free(r->addr);
        return rt_fail(ACL_ERROR_RT_MEMORY_ALLOCATION, api, "cannot map %" PRIu64
                       " bytes of pinned memory", r->size);
    }
    /* Writes to the pages between this copy and the mmap are lost. */
    page_copy((uint64_t)(uintptr_t)view, r->addr, r->size);
    void *at = mmap((void *)(uintptr_t)r->addr, r->size, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_FIXED, fd, 0);
    close(fd);
    if (at == MAP_FAILED) {
        /* Linux may have dropped the old pages already: put the contents back. */
        if (mmap((void *)(uintptr_t)r->addr, r->size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED)
            page_copy(r->addr, (uint64_t)(uintptr_t)view, r->size);
        munmap(view, r->size);
        emu_host_free(r->addr);
        return rt_fail(ACL_ERROR_RT_MEMORY_ALLOCATION, api, "cannot map pinned memory over "
                       "0x%" PRIx64, r->addr);
    }
    r->buf = r->addr;
    r->pageable = true;
    if (mapped && (err = emu_host_alias(r->addr, (uint64_t)(uintptr_t)view)) != ACL_SUCCESS) {
        make_private(r->addr, r->size);
        munmap(view, r->size);
        emu_host_free(r->addr);
        return rt_fail(err, api, "npu-emu cannot map 0x%" PRIx64 " for the device", r->addr);
    }
    if (mapped) {
        r->view = r->dev = (uint64_t)(uintptr_t)view;
        r->view_size = r->size;
    } else {
        munmap(view, r->size);
    }
    rt_hostbuf_insert(r->addr, r->size);
    return ACL_SUCCESS;
}

/* `mapped`: the device gets an address for the memory; `pin_flag`:
 * ACL_HOST_REG_PINNED, which only pageable memory may carry. */
static aclError host_register(const char *api, void *ptr, uint64_t size, bool mapped,
                              bool pin_flag, void **devPtr)
{
    uint64_t addr = (uint64_t)(uintptr_t)ptr;
    if (!ptr)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "ptr must not be NULL");
    if (size == 0)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "size must not be 0");
    if (addr % PAGE)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "ptr %p is not 4 KiB page-aligned", ptr);
    uint64_t len = ALIGN_UP(size, PAGE);
    if (len < size || addr + len < addr)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "%p + %" PRIu64 " runs past the end of the address space", ptr, size);
    if (addr < EMU_VA_WINDOW_HI && addr + len > EMU_VA_WINDOW_LO)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "%p + %" PRIu64 " reaches into device "
                       "memory, which is not host memory", ptr, size);
    if (rt_managed_overlaps(addr, len))
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "%p + %" PRIu64 " reaches into managed "
                       "memory, which the device reaches already", ptr, size);
    if (mapped) {
        aclError err;
        if (!rt_require_ctx(api, &err))
            return err;
    }
    pthread_mutex_lock(&reg_lock);
    tables_init();
    aclError err = ACL_SUCCESS;
    uint64_t buf = 0, buf_size = 0;
    int pinned = rt_hostbuf_find(addr, len, &buf, &buf_size);
    if (reg_overlaps(addr, len))
        err = rt_fail(ACL_ERROR_HOST_MEMORY_ALREADY_REGISTERED, api,
                      "%p + %" PRIu64 " overlaps memory that is registered already", ptr, size);
    else if (pinned < 0)
        err = rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "%p + %" PRIu64 " runs past the end of "
                      "the aclrtMallocHost buffer at 0x%" PRIx64, ptr, size, buf);
    else if (pinned > 0 && pin_flag)
        err = rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "ACL_HOST_REG_PINNED is for pageable "
                      "memory; %p is aclrtMallocHost memory, which is pinned already", ptr);
    if (err != ACL_SUCCESS) {
        pthread_mutex_unlock(&reg_lock);
        return err;
    }
    HostReg *r = g_new0(HostReg, 1);
    r->addr = addr;
    r->size = len;
    err = pinned ? register_pinned(api, r, buf, buf_size, mapped)
                 : register_pageable(api, r, mapped);
    if (err == ACL_SUCCESS) {
        g_tree_insert(regs, EMU_KEY(addr), r);
        if (devPtr)
            *devPtr = (void *)(uintptr_t)r->dev;
    } else {
        g_free(r);
    }
    pthread_mutex_unlock(&reg_lock);
    return err;
}

RT_EXPORT aclError aclrtHostRegister(void *ptr, uint64_t size, aclrtHostRegisterType type,
                                     void **devPtr)
{
    RT_CHECK_INIT();
    if (type == ACL_HOST_REGISTER_IOMEMORY || type == ACL_HOST_REGISTER_READONLY)
        return RT_FAIL(ACL_ERROR_RT_FEATURE_NOT_SUPPORT,
                       "type %d is reserved and not supported", (int)type);
    if (type != ACL_HOST_REGISTER_MAPPED)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "type %d is not an aclrtHostRegisterType",
                       (int)type);
    if (!devPtr)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "devPtr must not be NULL");
    return host_register(__func__, ptr, size, true, false, devPtr);
}

#define REG_FLAGS (ACL_HOST_REG_MAPPED | ACL_HOST_REG_IOMEMORY | ACL_HOST_REG_READONLY | \
                   ACL_HOST_REG_PINNED)

RT_EXPORT aclError aclrtHostRegisterV2(void *ptr, uint64_t size, uint32_t flag)
{
    RT_CHECK_INIT();
    if (flag == 0 || (flag & ~(uint32_t)REG_FLAGS))
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "flag 0x%x is not an OR of ACL_HOST_REG_* "
                       "values", flag);
    if (flag & (ACL_HOST_REG_IOMEMORY | ACL_HOST_REG_READONLY))
        return RT_FAIL(ACL_ERROR_RT_FEATURE_NOT_SUPPORT, "ACL_HOST_REG_IOMEMORY and "
                       "ACL_HOST_REG_READONLY are reserved and not supported (flag 0x%x)", flag);
    return host_register(__func__, ptr, size, (flag & ACL_HOST_REG_MAPPED) != 0,
                         (flag & ACL_HOST_REG_PINNED) != 0, NULL);
}

RT_EXPORT aclError aclrtHostGetDevicePointer(void *pHost, void **pDevice, uint32_t flag)
{
    RT_CHECK_INIT();
    if (!pHost || !pDevice)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "pHost and pDevice must not be NULL");
    if (flag != 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "flag is reserved and must be 0, not %u",
                       flag);
    uint64_t addr = (uint64_t)(uintptr_t)pHost;
    pthread_mutex_lock(&reg_lock);
    HostReg *r = reg_at(addr);
    uint64_t dev = r && r->dev ? r->dev + (addr - r->addr) : 0;
    pthread_mutex_unlock(&reg_lock);
    if (!r)
        return RT_FAIL(ACL_ERROR_HOST_MEMORY_NOT_REGISTERED, "%p is not registered host "
                       "memory", pHost);
    if (!dev)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "%p was registered without "
                       "ACL_HOST_REG_MAPPED: it has no device address", pHost);
    *pDevice = (void *)(uintptr_t)dev;
    return ACL_SUCCESS;
}

/* ---- unregistering ---- */

/* Undoes a registration and forgets it (reg_lock held). */
static aclError unregister_locked(const char *api, HostReg *r)
{
    if (r->pageable) {
        if (!make_private(r->addr, r->size))
            return rt_fail(ACL_ERROR_RT_MEMORY_FREE, api, "cannot give 0x%" PRIx64 " its own "
                           "pages back; it stays registered", r->addr);
        rt_hostbuf_remove(r->addr);
        emu_host_free(r->addr);
    }
    if (r->view) {
        emu_host_free(r->view);
        munmap((void *)(uintptr_t)r->view, r->view_size);
    }
    g_tree_remove(regs, EMU_KEY(r->addr));
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtHostUnregister(void *ptr)
{
    RT_CHECK_INIT();
    if (!ptr)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "ptr must not be NULL");
    pthread_mutex_lock(&reg_lock);
    HostReg *r = regs ? g_tree_lookup(regs, ptr) : NULL;
    aclError err = r ? unregister_locked(__func__, r)
                     : RT_FAIL(ACL_ERROR_HOST_MEMORY_NOT_REGISTERED, "%p is not the address of "
                               "a registration (or it was unregistered already)", ptr);
    pthread_mutex_unlock(&reg_lock);
    return err;
}

/* ---- what can reach registered memory ---- */

RT_EXPORT aclError aclrtHostMemMapCapabilities(uint32_t deviceId, aclrtHacType hacType,
                                               aclrtHostMemMapCapability *capabilities)
{
    RT_CHECK_INIT();
    if (!capabilities)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "capabilities must not be NULL");
    if (!rt_device_valid((int32_t)deviceId))
        return RT_FAIL(ACL_ERROR_RT_INVALID_DEVICEID, "invalid device id %u; the valid range "
                       "is [0, %d)", deviceId, g_rt.ndev);
    switch (hacType) {
    case ACL_RT_HAC_TYPE_STARS:
    case ACL_RT_HAC_TYPE_SDMA:
        /* The stream engine schedules and copies: it resolves registered memory. */
    case ACL_RT_HAC_TYPE_AIC:
    case ACL_RT_HAC_TYPE_AIV:
        /* The reference's use of the device address: an AI Core kernel argument. */
        *capabilities = ACL_RT_HOST_MEM_MAP_SUPPORTED;
        return ACL_SUCCESS;
    case ACL_RT_HAC_TYPE_AICPU:
    case ACL_RT_HAC_TYPE_PCIEDMA:
    case ACL_RT_HAC_TYPE_RDMA:
    case ACL_RT_HAC_TYPE_DVPP:
    case ACL_RT_HAC_TYPE_UDMA:
    case ACL_RT_HAC_TYPE_CCU:
        *capabilities = ACL_RT_HOST_MEM_MAP_NOT_SUPPORTED;
        return ACL_SUCCESS;
    default:
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "hacType %d is not an aclrtHacType",
                       (int)hacType);
    }
}

/* ---- hooks of memory.c ---- */

void rt_hostreg_note_alloc(void *p, const aclrtMallocConfig *cfg)
{
    bool same = false;
    for (size_t i = 0; cfg && i < cfg->numAttrs; i++)
        if (cfg->attrs[i].attr == ACL_RT_MEM_ATTR_VA_FLAG)
            same = cfg->attrs[i].value.vaFlag == 1;
    pthread_mutex_lock(&reg_lock);
    tables_init();
    if (same)
        g_hash_table_add(va_same, p);
    else
        g_hash_table_remove(va_same, p);
    pthread_mutex_unlock(&reg_lock);
}

typedef struct OnBuf {
    uint64_t buf;
    GPtrArray *regs;
} OnBuf;

static gboolean collect_on_buf(gpointer key, gpointer value, gpointer data)
{
    (void)key;
    HostReg *r = value;
    OnBuf *on = data;
    if (!r->pageable && r->buf == on->buf)
        g_ptr_array_add(on->regs, r);
    return FALSE;
}

aclError rt_hostreg_before_free_host(const char *api, void *hostPtr)
{
    uint64_t addr = (uint64_t)(uintptr_t)hostPtr;
    if (hostPtr && rt_managed_overlaps(addr, 1))
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "%p is managed memory: free it with "
                       "aclrtFree", hostPtr);
    pthread_mutex_lock(&reg_lock);
    HostReg *r = hostPtr && regs ? g_tree_lookup(regs, hostPtr) : NULL;
    if (r && r->pageable) {
        pthread_mutex_unlock(&reg_lock);
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "%p is registered pageable memory, not "
                       "aclrtMallocHost memory: use aclrtHostUnregister", hostPtr);
    }
    /* The buffer goes: so do its registrations and its vaFlag. */
    if (regs && hostPtr) {
        OnBuf on = { .buf = addr, .regs = g_ptr_array_new() };
        g_tree_foreach(regs, collect_on_buf, &on);
        for (unsigned i = 0; i < on.regs->len; i++)
            unregister_locked(api, g_ptr_array_index(on.regs, i));
        g_ptr_array_free(on.regs, TRUE);
    }
    if (va_same)
        g_hash_table_remove(va_same, hostPtr);
    pthread_mutex_unlock(&reg_lock);
    return ACL_SUCCESS;
}

void rt_hostreg_release(void)
{
    pthread_mutex_lock(&reg_lock);
    while (regs && g_tree_nnodes(regs)) {
        HostReg *r = g_tree_node_value(g_tree_node_first(regs));
        if (unregister_locked(__func__, r) != ACL_SUCCESS) {
            /* The pages stay shared with npu-emu's memfd, which outlives it:
             * the data is safe, only no longer registered. */
            rt_hostbuf_remove(r->addr);
            g_tree_remove(regs, EMU_KEY(r->addr));
        }
    }
    if (va_same)
        g_hash_table_remove_all(va_same);
    pthread_mutex_unlock(&reg_lock);
    rt_managed_release();
}
