/*
 * managed.c - managed (unified, UVM) memory of chapter 11-05:
 * aclrtMemAllocManaged, aclrtMemManagedAdvise, aclrtMemManagedGetAttr[s],
 * aclrtMemManagedPrefetchAsync and aclrtMemManagedPrefetchBatchAsync.  aclrtFree
 * gives the memory back (through rt_managed_free).
 *
 * Concepts:
 *  - The reference puts UVM at [0x90000000000, + 3 TiB).  The first allocation
 *    reserves that range PROT_NONE (or 3 TiB elsewhere when something occupies
 *    it, such as AddressSanitizer's shadow) and allocations take 2 MiB-aligned
 *    ranges of it, first fit.
 *  - An allocation is a pinned host buffer (HOST_ALLOC) mapped at its UVM
 *    address: the host dereferences it, copies treat it as pinned memory and the
 *    stream engine reaches it.  There is one physical copy, coherent for every
 *    accessor, so no data ever migrates.  What the calls change is where pages
 *    are resident (advice that maps memory, and prefetches, populate the pages)
 *    and the attributes of each 2 MiB page, which the GetAttr calls report.
 *  - A forked child loses the parent's managed memory, like its device memory.
 * Locking: man_lock guards the window and the table; populating runs without it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "npuemu/u64tree.h"
#include "rt.h"

#define UVM_BASE ((uint64_t)0x90000000000)
#define UVM_SIZE ((uint64_t)3 << 40)
#define UVM_PAGE ((uint64_t)2 << 20)
#define HOST_BUF_MAX ((uint64_t)1 << 40)  /* npu-emu's largest pinned buffer */
#define MAX_NUMA 64
#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((uint64_t)(a) - 1))

/* A location as recorded: type DEVICE (user id), HOST, HOST_NUMA (node), or
 * INVALID for "none". */
typedef struct ManLoc {
    int32_t type;
    int32_t id;
} ManLoc;

typedef struct ManPage {
    bool read_mostly;
    bool by_host;           /* ACCESSED_BY the host */
    uint32_t by_dev;        /* ACCESSED_BY devices, one bit per user id */
    uint64_t by_numa;       /* ACCESSED_BY host NUMA nodes */
    ManLoc preferred;
    ManLoc prefetched;      /* the last prefetch's target */
} ManPage;

typedef struct Managed {
    uint64_t addr;
    uint64_t size;          /* a multiple of UVM_PAGE */
    ManPage *pages;         /* size / UVM_PAGE entries, NULL until first advised */
} Managed;

static pthread_mutex_t man_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t uvm_lo, uvm_hi;     /* the reserved window; 0 before the first allocation */
static GTree *mans;                 /* addr -> Managed * */
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void managed_destroy(gpointer p)
{
    Managed *m = p;
    g_free(m->pages);
    g_free(m);
}

static void child_after_fork(void)
{
    pthread_mutex_init(&man_lock, NULL);
    if (uvm_lo)
        munmap((void *)(uintptr_t)uvm_lo, uvm_hi - uvm_lo);
    uvm_lo = uvm_hi = 0;
    if (mans)
        g_tree_destroy(mans);
    mans = NULL;
}

static void install_atfork(void)
{
    pthread_atfork(NULL, NULL, child_after_fork);
}

static bool reserve(uint64_t at, uint64_t len, int extra)
{
    return mmap((void *)(uintptr_t)at, len, PROT_NONE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED | extra, -1, 0) !=
           MAP_FAILED;
}

/* Reserves the UVM window once (man_lock held). */
static bool window_reserve(void)
{
    pthread_once(&fork_once, install_atfork);
    if (!mans)
        mans = emu_u64_tree_new(managed_destroy);
    if (uvm_lo)
        return true;
    void *p = mmap((void *)UVM_BASE, UVM_SIZE, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    uint64_t lo = UVM_BASE;
    if (p != (void *)UVM_BASE) {
        if (p != MAP_FAILED)
            munmap(p, UVM_SIZE);    /* kernels before 4.17 ignore MAP_FIXED_NOREPLACE */
        /* Taken (AddressSanitizer's shadow is there): 3 TiB elsewhere, 2 MiB-aligned. */
        p = mmap(NULL, UVM_SIZE + UVM_PAGE, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return false;
        uint64_t a = (uint64_t)(uintptr_t)p;
        lo = ALIGN_UP(a, UVM_PAGE);
        if (lo > a)
            munmap(p, lo - a);
        if (a + UVM_PAGE > lo)
            munmap((void *)(uintptr_t)(lo + UVM_SIZE), a + UVM_PAGE - lo);
    }
    uvm_hi = lo + UVM_SIZE;
    __atomic_store_n(&uvm_lo, lo, __ATOMIC_RELEASE);    /* rt_managed_overlaps reads it unlocked */
    return true;
}

/* First fit: the lowest free 2 MiB-aligned range of len bytes, or 0. */
static uint64_t window_find(uint64_t len)
{
    uint64_t at = uvm_lo;
    for (GTreeNode *n = g_tree_node_first(mans); n; n = g_tree_node_next(n)) {
        Managed *m = g_tree_node_value(n);
        if (m->addr - at >= len)
            break;
        at = m->addr + m->size;
    }
    return uvm_hi - at >= len ? at : 0;
}

bool rt_managed_overlaps(uint64_t addr, uint64_t len)
{
    uint64_t lo = __atomic_load_n(&uvm_lo, __ATOMIC_ACQUIRE);
    return lo && addr < lo + UVM_SIZE && addr + len > lo;
}

/* Where the UVM range is (before the first allocation: where it should be). */
static uint64_t window_lo(void)
{
    return uvm_lo ? uvm_lo : (uint64_t)UVM_BASE;
}

/* The allocation containing addr, or NULL (man_lock held). */
static Managed *man_at(uint64_t addr)
{
    GTreeNode *n = mans ? emu_tree_floor(mans, addr) : NULL;
    Managed *m = n ? g_tree_node_value(n) : NULL;
    return m && addr - m->addr < m->size ? m : NULL;
}

/* ---- allocation ---- */

RT_EXPORT aclError aclrtMemAllocManaged(void **ptr, uint64_t size, uint32_t flag)
{
    RT_CHECK_INIT();
    if (!ptr)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "ptr must not be NULL");
    if (size == 0 || size > UVM_SIZE)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "size %" PRIu64 " is not in (0, 3 TiB]",
                       size);
    if (flag != ACL_RT_MEM_ATTACH_GLOBAL)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "flag must be ACL_RT_MEM_ATTACH_GLOBAL, "
                       "not 0x%x", flag);
    uint64_t len = ALIGN_UP(size, UVM_PAGE);
    if (len > HOST_BUF_MAX)
        return RT_FAIL(ACL_ERROR_RT_MEMORY_ALLOCATION, "%" PRIu64 " bytes: the emulator "
                       "backs one managed allocation with at most 1 TiB of host memory", size);
    pthread_mutex_lock(&man_lock);
    if (!window_reserve()) {
        pthread_mutex_unlock(&man_lock);
        return RT_FAIL(ACL_ERROR_RT_MEMORY_ALLOCATION, "cannot reserve the 3 TiB UVM range");
    }
    uint64_t at = window_find(len);
    if (!at) {
        pthread_mutex_unlock(&man_lock);
        return RT_FAIL(ACL_ERROR_RT_MEMORY_ALLOCATION, "%" PRIu64 " more bytes of managed "
                       "memory do not fit in the process's 3 TiB", len);
    }
    EmuReqHostAlloc q = { .size = len, .client_addr = at };
    int fd = -1;
    aclError err = rt_call(EMU_CMD_HOST_ALLOC, &q, sizeof(q), NULL, 0, &fd);
    EmuReqHostFree f = { .client_addr = at };
    if (err == ACL_ERROR_RT_RESOURCE_ALLOC_FAIL) {
        rt_call(EMU_CMD_HOST_FREE, &f, sizeof(f), NULL, 0, NULL);
        err = ACL_ERROR_RT_MEMORY_ALLOCATION;
    }
    if (err == ACL_SUCCESS) {
        void *p = mmap((void *)(uintptr_t)at, len, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_FIXED, fd, 0);
        close(fd);
        if (p == MAP_FAILED) {
            rt_call(EMU_CMD_HOST_FREE, &f, sizeof(f), NULL, 0, NULL);
            reserve(at, len, 0);
            err = ACL_ERROR_RT_MEMORY_ALLOCATION;
        }
    }
    if (err != ACL_SUCCESS) {
        pthread_mutex_unlock(&man_lock);
        return RT_FAIL(err, "cannot allocate %" PRIu64 " bytes of managed memory", size);
    }
    Managed *m = g_new0(Managed, 1);
    *m = (Managed){ .addr = at, .size = len };
    g_tree_insert(mans, EMU_KEY(at), m);
    rt_hostbuf_insert(at, len);
    pthread_mutex_unlock(&man_lock);
    *ptr = (void *)(uintptr_t)at;
    return ACL_SUCCESS;
}

/* Gives one allocation back (man_lock held). */
static void man_drop(Managed *m)
{
    rt_hostbuf_remove(m->addr);
    EmuReqHostFree f = { .client_addr = m->addr };
    rt_call(EMU_CMD_HOST_FREE, &f, sizeof(f), NULL, 0, NULL);
    reserve(m->addr, m->size, 0);  /* back to PROT_NONE, still reserved */
    g_tree_remove(mans, EMU_KEY(m->addr));
}

aclError rt_managed_free(const char *api, void *ptr)
{
    pthread_mutex_lock(&man_lock);
    Managed *m = mans ? g_tree_lookup(mans, ptr) : NULL;
    if (m)
        man_drop(m);
    pthread_mutex_unlock(&man_lock);
    if (!m)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "%p is not the start of managed memory "
                       "allocated by aclrtMemAllocManaged (or it was freed)", ptr);
    return ACL_SUCCESS;
}

void rt_managed_release(void)
{
    pthread_mutex_lock(&man_lock);
    while (mans && g_tree_nnodes(mans))
        man_drop(g_tree_node_value(g_tree_node_first(mans)));
    pthread_mutex_unlock(&man_lock);
}

void rt_managed_attributes(const void *ptr, aclrtPtrAttributes *attributes)
{
    pthread_mutex_lock(&man_lock);
    bool managed = man_at((uint64_t)(uintptr_t)ptr) != NULL;
    pthread_mutex_unlock(&man_lock);
    /* The MANAGED location type exists on A2 only; on A3 managed memory is host
     * memory that the runtime knows. */
    if (managed && strcmp(g_rt.conn.welcome.profile, "a2") == 0)
        attributes->location.type = ACL_MEM_LOCATION_TYPE_MANAGED;
}

/* ---- ranges and locations ---- */

/* The allocation holding [p, p + size); `*first` and `*end` delimit its 2 MiB
 * pages that the range touches.  `aligned`: advice and prefetches work on whole
 * 2 MiB pages.  NULL after recording 107000 (man_lock held). */
static Managed *range_check(const char *api, const void *p, uint64_t size, bool aligned,
                            size_t *first, size_t *end, aclError *err)
{
    uint64_t a = (uint64_t)(uintptr_t)p;
    Managed *m = NULL;
    *err = ACL_ERROR_RT_PARAM_INVALID;
    if (!p)
        rt_fail(*err, api, "ptr must not be NULL");
    else if (size == 0 || size > UVM_SIZE)
        rt_fail(*err, api, "size %" PRIu64 " is not in (0, 3 TiB]", size);
    else if (aligned && (size % UVM_PAGE || a % UVM_PAGE))
        rt_fail(*err, api, "%p + %" PRIu64 " is not whole 2 MiB pages (ptr and size must be "
                "2 MiB-aligned)", p, size);
    else if (!rt_managed_overlaps(a, 1))
        rt_fail(*err, api, "%p is outside the UVM range [0x%" PRIx64 ", 0x%" PRIx64 ")", p,
                window_lo(), window_lo() + UVM_SIZE);
    else if (!(m = man_at(a)))
        rt_fail(*err, api, "%p is not managed memory allocated by aclrtMemAllocManaged", p);
    else if (size > m->size - (a - m->addr))
        rt_fail(*err, api, "%p + %" PRIu64 " runs past the end of its managed allocation "
                "(0x%" PRIx64 ", %" PRIu64 " bytes)", p, size, m->addr, m->size);
    else
        *err = ACL_SUCCESS;
    if (*err != ACL_SUCCESS)
        return NULL;
    *first = (a - m->addr) / UVM_PAGE;
    *end = (a - m->addr + size + UVM_PAGE - 1) / UVM_PAGE;
    return m;
}

static ManPage *pages_of(Managed *m)
{
    if (!m->pages)
        m->pages = g_new0(ManPage, m->size / UVM_PAGE);
    return m->pages;
}

static bool numa_node_exists(int id)
{
    if (id < 0 || id >= MAX_NUMA)
        return false;
    char path[64];
    snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", id);
    /* Without the NUMA directory the host has one node, 0. */
    return access(path, F_OK) == 0 || (id == 0 && access("/sys/devices/system/node", F_OK) != 0);
}

/* Checks `in` and resolves HOST_NUMA_CURRENT; `what` names it in messages.
 * INVALID is accepted when `invalid_ok`. */
static aclError loc_check(const char *api, const char *what, aclrtMemManagedLocation in,
                          bool invalid_ok, ManLoc *out)
{
    *out = (ManLoc){ .type = (int32_t)in.type, .id = 0 };
    switch (in.type) {
    case ACL_MEM_LOCATIONTYPE_DEVICE:
        if (!rt_device_valid(in.id))
            return rt_fail(ACL_ERROR_RT_INVALID_DEVICEID, api, "%s: invalid device id %d; the "
                           "valid range is [0, %d)", what, in.id, g_rt.ndev);
        out->id = in.id;
        return ACL_SUCCESS;
    case ACL_MEM_LOCATIONTYPE_HOST:
        return ACL_SUCCESS;
    case ACL_MEM_LOCATIONTYPE_HOST_NUMA:
        if (!numa_node_exists(in.id))
            return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "%s: host NUMA node %d does not "
                           "exist", what, in.id);
        out->id = in.id;
        return ACL_SUCCESS;
    case ACL_MEM_LOCATIONTYPE_HOST_NUMA_CURRENT: {
        unsigned cpu, node = 0;
        if (getcpu(&cpu, &node) != 0 || node >= MAX_NUMA)
            node = 0;
        *out = (ManLoc){ .type = ACL_MEM_LOCATIONTYPE_HOST_NUMA, .id = (int32_t)node };
        return ACL_SUCCESS;
    }
    case ACL_MEM_LOCATIONTYPE_INVALID:
        if (invalid_ok)
            return ACL_SUCCESS;
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "%s: ACL_MEM_LOCATIONTYPE_INVALID is "
                       "not a place", what);
    default:
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "%s: type %d is not an "
                       "aclrtMemManagedLocationType", what, (int)in.type);
    }
}

static bool loc_equal(ManLoc a, ManLoc b)
{
    return a.type == b.type && a.id == b.id;
}

/* Makes [addr, addr + len) resident: physical pages now, as the driver maps
 * them when advice or a prefetch places memory.  The one copy serves host and
 * device alike, so where does not matter.  Never more than half the free host
 * memory: on a real device, too, a prefetch is only a hint. */
static void populate(uint64_t addr, uint64_t len)
{
    struct sysinfo si;
    if (len == 0 || (sysinfo(&si) == 0 && len > (uint64_t)si.freeram * si.mem_unit / 2))
        return;
    if (madvise((void *)(uintptr_t)addr, len, MADV_POPULATE_WRITE) == 0 || errno != EINVAL)
        return;
    /* Before Linux 5.14: a read fault allocates a shared memory page. */
    for (uint64_t off = 0; off < len; off += 4096)
        (void)*(volatile uint8_t *)(uintptr_t)(addr + off);
}

/* ---- advice ---- */

typedef struct Span {
    uint64_t addr;
    uint64_t len;
} Span;

RT_EXPORT aclError aclrtMemManagedAdvise(const void *const ptr, uint64_t size,
                                         aclrtMemManagedAdviseType advise,
                                         aclrtMemManagedLocation location)
{
    RT_CHECK_INIT();
    size_t first, end;
    aclError err;
    ManLoc loc = { ACL_MEM_LOCATIONTYPE_INVALID, 0 };
    pthread_mutex_lock(&man_lock);
    Managed *m = range_check(__func__, ptr, size, true, &first, &end, &err);
    if (m) {
        switch (advise) {
        case ACL_MEM_ADVISE_SET_READ_MOSTLY:        /* location: documented as ignored */
        case ACL_MEM_ADVISE_UNSET_PREFERRED_LOCATION: /* nothing to place */
            break;
        case ACL_MEM_ADVISE_UNSET_READ_MOSTLY:      /* INVALID: keep the host copy */
            err = loc_check(__func__, "location", location, true, &loc);
            break;
        case ACL_MEM_ADVISE_SET_PREFERRED_LOCATION:
        case ACL_MEM_ADVISE_SET_ACCESSED_BY:
        case ACL_MEM_ADVISE_UNSET_ACCESSED_BY:
            err = loc_check(__func__, "location", location, false, &loc);
            break;
        default:
            err = RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "advise %d is not an "
                          "aclrtMemManagedAdviseType", (int)advise);
        }
    }
    if (err != ACL_SUCCESS) {
        pthread_mutex_unlock(&man_lock);
        return err;
    }
    ManPage *pg = pages_of(m);
    /* The runs of pages that the advice maps somewhere, populated after unlocking. */
    GArray *place = g_array_new(FALSE, FALSE, sizeof(Span));
    for (size_t i = first; i < end; i++) {
        ManPage *p = &pg[i];
        bool map = false;
        switch (advise) {
        case ACL_MEM_ADVISE_SET_READ_MOSTLY:
            p->read_mostly = map = true;    /* a read-only copy on the host */
            break;
        case ACL_MEM_ADVISE_UNSET_READ_MOSTLY:
            p->read_mostly = false;
            break;
        case ACL_MEM_ADVISE_SET_PREFERRED_LOCATION:
            p->preferred = loc;
            map = true;
            break;
        case ACL_MEM_ADVISE_UNSET_PREFERRED_LOCATION:
            p->preferred = (ManLoc){ ACL_MEM_LOCATIONTYPE_INVALID, 0 };
            break;
        case ACL_MEM_ADVISE_SET_ACCESSED_BY:
        case ACL_MEM_ADVISE_UNSET_ACCESSED_BY: {
            bool set = advise == ACL_MEM_ADVISE_SET_ACCESSED_BY;
            if (loc.type == ACL_MEM_LOCATIONTYPE_HOST)
                p->by_host = set;
            else if (loc.type == ACL_MEM_LOCATIONTYPE_DEVICE)
                p->by_dev = set ? p->by_dev | 1u << loc.id : p->by_dev & ~(1u << loc.id);
            else
                p->by_numa = set ? p->by_numa | 1ull << loc.id : p->by_numa & ~(1ull << loc.id);
            /* With the preferred location, accessed-by maps the memory ahead. */
            map = set && loc_equal(p->preferred, loc);
            break;
        }
        }
        uint64_t at = m->addr + i * UVM_PAGE;
        Span *last = place->len ? &g_array_index(place, Span, place->len - 1) : NULL;
        if (map && last && last->addr + last->len == at)
            last->len += UVM_PAGE;
        else if (map)
            g_array_append_val(place, ((Span){ at, UVM_PAGE }));
    }
    pthread_mutex_unlock(&man_lock);
    for (unsigned i = 0; i < place->len; i++)
        populate(g_array_index(place, Span, i).addr, g_array_index(place, Span, i).len);
    g_array_free(place, TRUE);
    return ACL_SUCCESS;
}

/* ---- attributes ---- */

static aclError attr_check(const char *api, aclrtMemManagedRangeAttribute attribute, void *data,
                           size_t dataSize)
{
    if (!data)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "data must not be NULL");
    switch (attribute) {
    case ACL_MEM_RANGE_ATTRIBUTE_ACCESSED_BY:
        if (dataSize == 0 || dataSize % 4)
            return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "ACCESSED_BY needs a dataSize that "
                           "is a non-zero multiple of 4, not %zu", dataSize);
        return ACL_SUCCESS;
    case ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_TYPE:
    case ACL_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION_TYPE:
        if (dataSize != sizeof(aclrtMemManagedLocationType))
            return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "attribute %d needs dataSize "
                           "sizeof(aclrtMemManagedLocationType) = %zu, not %zu",
                           (int)attribute, sizeof(aclrtMemManagedLocationType), dataSize);
        return ACL_SUCCESS;
    case ACL_MEM_RANGE_ATTRIBUTE_READ_MOSTLY:
    case ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION:
    case ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_ID:
    case ACL_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION:
    case ACL_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION_ID:
        if (dataSize != 4)
            return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "attribute %d is an integer: "
                           "dataSize must be 4, not %zu", (int)attribute, dataSize);
        return ACL_SUCCESS;
    default:
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "attribute %d is not an "
                       "aclrtMemManagedRangeAttribute", (int)attribute);
    }
}

/* The location every page of [first, end) shares (INVALID if they differ). */
static ManLoc loc_common(const ManPage *pg, size_t first, size_t end, bool prefetched)
{
    static const ManLoc none = { ACL_MEM_LOCATIONTYPE_INVALID, 0 };
    if (!pg)
        return none;
    ManLoc l = prefetched ? pg[first].prefetched : pg[first].preferred;
    for (size_t i = first + 1; i < end; i++)
        if (!loc_equal(l, prefetched ? pg[i].prefetched : pg[i].preferred))
            return none;
    return l;
}

/* PREFERRED_LOCATION / LAST_PREFETCH_LOCATION: the id, -1 for the host, -2 when
 * unset or not the same for the whole range; *_ID: the id of a device or NUMA
 * node, else -2. */
static int32_t loc_value(ManLoc l, bool id_only)
{
    if (l.type == ACL_MEM_LOCATIONTYPE_DEVICE || l.type == ACL_MEM_LOCATIONTYPE_HOST_NUMA)
        return l.id;
    return l.type == ACL_MEM_LOCATIONTYPE_HOST && !id_only ? -1 : -2;
}

static void attr_fill(const Managed *m, size_t first, size_t end,
                      aclrtMemManagedRangeAttribute attribute, void *data, size_t dataSize)
{
    const ManPage *pg = m->pages;
    int32_t v = 0;
    switch (attribute) {
    case ACL_MEM_RANGE_ATTRIBUTE_READ_MOSTLY:
        v = pg != NULL;
        for (size_t i = first; pg && i < end; i++)
            v &= pg[i].read_mostly;
        break;
    case ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION:
    case ACL_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION:
        v = loc_value(loc_common(pg, first, end,
                                 attribute == ACL_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION),
                      false);
        break;
    case ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_ID:
    case ACL_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION_ID:
        v = loc_value(loc_common(pg, first, end,
                                 attribute == ACL_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION_ID),
                      true);
        break;
    case ACL_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_TYPE:
    case ACL_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION_TYPE: {
        aclrtMemManagedLocationType t = (aclrtMemManagedLocationType)loc_common(
            pg, first, end, attribute == ACL_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION_TYPE).type;
        memcpy(data, &t, sizeof(t));
        return;
    }
    case ACL_MEM_RANGE_ATTRIBUTE_ACCESSED_BY: {
        /* Who is set for the whole range: the host (-1), devices, NUMA nodes;
         * the entries left over are -2. */
        bool host = pg != NULL;
        uint32_t dev = pg ? ~0u : 0;
        uint64_t numa = pg ? ~0ull : 0;
        for (size_t i = first; pg && i < end; i++) {
            host &= pg[i].by_host;
            dev &= pg[i].by_dev;
            numa &= pg[i].by_numa;
        }
        int32_t *out = data;
        size_t n = dataSize / 4, k = 0;
        if (host && k < n)
            out[k++] = -1;
        for (int32_t d = 0; d < 32 && k < n; d++)
            if (dev & 1u << d)
                out[k++] = d;
        for (int32_t d = 0; d < MAX_NUMA && k < n; d++)
            if (numa & 1ull << d)
                out[k++] = d;
        while (k < n)
            out[k++] = -2;
        return;
    }
    default:
        return;
    }
    memcpy(data, &v, sizeof(v));
}

RT_EXPORT aclError aclrtMemManagedGetAttr(aclrtMemManagedRangeAttribute attribute,
                                          const void *ptr, size_t size, void *data,
                                          size_t dataSize)
{
    RT_CHECK_INIT();
    size_t first, end;
    aclError err = attr_check(__func__, attribute, data, dataSize);
    if (err != ACL_SUCCESS)
        return err;
    pthread_mutex_lock(&man_lock);
    Managed *m = range_check(__func__, ptr, size, false, &first, &end, &err);
    if (m)
        attr_fill(m, first, end, attribute, data, dataSize);
    pthread_mutex_unlock(&man_lock);
    return err;
}

RT_EXPORT aclError aclrtMemManagedGetAttrs(aclrtMemManagedRangeAttribute *attributes,
                                           size_t numAttributes, const void *ptr, size_t size,
                                           void **data, size_t *dataSizes)
{
    RT_CHECK_INIT();
    if (!attributes || !data || !dataSizes)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "attributes, data and dataSizes must not be NULL");
    if (numAttributes == 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "numAttributes must not be 0");
    /* All or nothing: every entry is checked before any is written. */
    for (size_t i = 0; i < numAttributes; i++) {
        aclError err = attr_check(__func__, attributes[i], data[i], dataSizes[i]);
        if (err != ACL_SUCCESS)
            return err;
    }
    size_t first, end;
    aclError err;
    pthread_mutex_lock(&man_lock);
    Managed *m = range_check(__func__, ptr, size, false, &first, &end, &err);
    for (size_t i = 0; m && i < numAttributes; i++)
        attr_fill(m, first, end, attributes[i], data[i], dataSizes[i]);
    pthread_mutex_unlock(&man_lock);
    return err;
}

/* ---- prefetch ---- */

/* Records the prefetches, populates their memory, and queues one task on the
 * stream: the prefetch takes its place in stream order, and a synchronise
 * after it returns when the work queued before it is done.  Nothing moves, so
 * the task has no bytes to copy. */
static aclError prefetch(const char *api, const void *const *ptrs, const size_t *sizes,
                         size_t count, const ManLoc *locs, const size_t *loc_idx,
                         size_t nlocs, aclrtStream stream)
{
    aclError err;
    RtStream *s = rt_stream_resolve(stream, api, &err);
    if (!s)
        return err;
    pthread_mutex_lock(&man_lock);
    for (size_t i = 0; i < count; i++) {
        size_t first, end;
        if (!range_check(api, ptrs[i], sizes[i], true, &first, &end, &err)) {
            pthread_mutex_unlock(&man_lock);
            return err;
        }
    }
    for (size_t k = 0; k < nlocs; k++) {
        size_t stop = k + 1 < nlocs ? loc_idx[k + 1] : count;
        for (size_t i = loc_idx[k]; i < stop; i++) {
            size_t first, end;
            Managed *m = range_check(api, ptrs[i], sizes[i], true, &first, &end, &err);
            ManPage *pg = pages_of(m);
            for (size_t j = first; j < end; j++)
                pg[j].prefetched = locs[k];
        }
    }
    pthread_mutex_unlock(&man_lock);
    for (size_t i = 0; i < count; i++)
        populate((uint64_t)(uintptr_t)ptrs[i], sizes[i]);
    EmuTask t = { .type = EMU_TASK_MEMCPY, .dst = (uint64_t)(uintptr_t)ptrs[0],
                  .src = (uint64_t)(uintptr_t)ptrs[0], .size = 0 };
    err = rt_stream_submit(s, &t);
    return err == ACL_SUCCESS ? ACL_SUCCESS : rt_fail(err, api, "cannot queue the prefetch");
}

RT_EXPORT aclError aclrtMemManagedPrefetchAsync(const void *ptr, size_t size,
                                                aclrtMemManagedLocation location,
                                                uint32_t flags, aclrtStream stream)
{
    RT_CHECK_INIT();
    if (flags != 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "flags is reserved and must be 0, not %u",
                       flags);
    ManLoc loc;
    aclError err = loc_check(__func__, "location", location, false, &loc);
    if (err != ACL_SUCCESS)
        return err;
    size_t idx = 0;
    return prefetch(__func__, &ptr, &size, 1, &loc, &idx, 1, stream);
}

RT_EXPORT aclError aclrtMemManagedPrefetchBatchAsync(const void **ptrs, size_t *sizes,
                                                     size_t count,
                                                     aclrtMemManagedLocation *prefetchLocs,
                                                     size_t *prefetchLocIdxs,
                                                     size_t numPrefetchLocs, uint64_t flags,
                                                     aclrtStream stream)
{
    RT_CHECK_INIT();
    if (!ptrs || !sizes || !prefetchLocs || !prefetchLocIdxs)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "ptrs, sizes, prefetchLocs and prefetchLocIdxs must not be NULL");
    if (count == 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "count must not be 0");
    if (numPrefetchLocs == 0 || numPrefetchLocs > count)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "numPrefetchLocs %zu is not in [1, count = "
                       "%zu]", numPrefetchLocs, count);
    if (flags != 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "flags is reserved and must be 0, not %"
                       PRIu64, flags);
    if (prefetchLocIdxs[0] != 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "prefetchLocIdxs[0] must be 0, not %zu",
                       prefetchLocIdxs[0]);
    for (size_t k = 1; k < numPrefetchLocs; k++)
        if (prefetchLocIdxs[k] <= prefetchLocIdxs[k - 1] || prefetchLocIdxs[k] >= count)
            return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "prefetchLocIdxs[%zu] = %zu: the "
                           "entries must increase and stay below count (%zu)", k,
                           prefetchLocIdxs[k], count);
    ManLoc *locs = g_new(ManLoc, numPrefetchLocs);
    aclError err = ACL_SUCCESS;
    for (size_t k = 0; k < numPrefetchLocs && err == ACL_SUCCESS; k++) {
        char what[48];
        snprintf(what, sizeof(what), "prefetchLocs[%zu]", k);
        err = loc_check(__func__, what, prefetchLocs[k], false, &locs[k]);
    }
    if (err == ACL_SUCCESS)
        err = prefetch(__func__, (const void *const *)ptrs, sizes, count, locs,
                       prefetchLocIdxs, numPrefetchLocs, stream);
    g_free(locs);
    return err;
}
