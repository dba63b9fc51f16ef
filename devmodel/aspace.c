/*
 * aspace.c - page tables and virtual-memory objects of one client.
 */
#include "aspace.h"

#include <glib.h>

#include "npuemu/proto.h"
#include "npuemu/u64tree.h"

#include "acl/acl_base.h"

#define RESERVE_GRAIN HBM_PAGE_HUGE
/* aclrtReserveMemAddressNoUCMemory's range: only expected addresses, never
 * handed out on its own. */
#define NOUC_LO (40ull << 40)
#define NOUC_HI (224ull << 40)

typedef struct VmmHandle {
    uint64_t id;
    PhysMem *mem;
    int dev;            /* the device whose table gets its mappings */
    uint32_t attr;
    uint32_t refs;      /* the client's references */
    uint32_t maps;      /* mappings of it */
    bool imported;      /* from another process's shareable handle */
    bool peer;          /* another device's memory of this server: needs peer access */
    uint64_t serial;    /* imported: the export it came from */
} VmmHandle;

/* Memory imported by IPC key, at a VA of its device's heap (or, from another
 * server, of this client's VMM space). */
typedef struct IpcImport {
    uint64_t va;
    uint64_t size;
    PhysMem *mem;
    uint32_t tables;    /* bit d: mapped in device d's table */
    bool remote;        /* another server's memory: the VA is from as->space */
} IpcImport;

typedef struct VmmReserve {
    uint64_t va;
    uint64_t size;
    int dev;            /* the device of what is mapped in it; -1 while empty */
    bool imported;      /* what is mapped in it came from imports */
    uint32_t maps;
} VmmReserve;

typedef struct VmmMap {
    uint64_t va;
    uint64_t size;
    VmmHandle *h;
    VmmReserve *r;
    uint32_t tables;    /* bit d: mapped in device d's page table */
} VmmMap;

struct AddrSpace {
    uint32_t owner;
    int ndev;
    uint32_t first_tag;
    uint32_t ntags;
    Device *const *by_tag;
    Device *host;       /* the server's host memory pool; may be NULL */
    PageTable *pt[EMU_MAX_DEVICES];
    uint32_t peers[EMU_MAX_DEVICES]; /* bit p of peers[d]: d has peer access to p */
    VaRange *space;     /* free VA of the VMM parts of the window */
    VaRange *nouc;      /* free VA of [NOUC_LO, NOUC_HI) */
    GTree *reserves;    /* va -> VmmReserve * */
    GTree *maps;        /* va -> VmmMap * */
    GHashTable *handles; /* id -> VmmHandle * (those with client references) */
    GTree *imports;     /* va -> IpcImport * */
};

/* Handles of host memory carry this device index. */
#define HOST_DEV EMU_MAX_DEVICES

static Device *dev_of(AddrSpace *as, int d)
{
    return d >= 0 && d < as->ndev ? as->by_tag[as->first_tag + (uint32_t)d] : NULL;
}

/* The pool of a handle's memory: a device's HBM, or (HOST_DEV) host memory. */
static Device *pool_of(AddrSpace *as, int d)
{
    return d == HOST_DEV ? as->host : dev_of(as, d);
}

AddrSpace *aspace_new(uint32_t owner, Device *const *by_tag, uint32_t ntags, uint32_t first_tag,
                      int ndev, Device *host)
{
    AddrSpace *as = g_new0(AddrSpace, 1);
    as->owner = owner;
    as->host = host;
    as->by_tag = by_tag;
    as->ntags = ntags;
    as->first_tag = first_tag;
    as->ndev = ndev < EMU_MAX_DEVICES ? ndev : EMU_MAX_DEVICES;
    for (int d = 0; d < as->ndev; d++) {
        as->pt[d] = pt_new();
        device_attach_table(dev_of(as, d), owner, as->pt[d]);
    }
    /* The VMM part of every span of the window, whether or not a device has it. */
    as->space = va_range_new(EMU_VA_WINDOW_LO, EMU_VA_WINDOW_HI);
    for (uint64_t span = EMU_VA_WINDOW_LO; span < EMU_VA_WINDOW_HI; span += EMU_VA_DEVICE_SPAN)
        va_range_claim(as->space, span, EMU_VA_VMM_OFFSET);
    as->nouc = va_range_new(NOUC_LO, NOUC_HI);
    as->reserves = emu_u64_tree_new(g_free);
    as->maps = emu_u64_tree_new(g_free);
    as->handles = g_hash_table_new(g_int64_hash, g_int64_equal);
    as->imports = emu_u64_tree_new(NULL);
    return as;
}

static void handle_put(AddrSpace *as, VmmHandle *h)
{
    if (h->refs == 0)
        g_hash_table_remove(as->handles, &h->id);
    if (h->refs == 0 && h->maps == 0) {
        device_phys_unref(h->mem);
        g_free(h);
    }
}

static void map_remove(AddrSpace *as, VmmMap *m)
{
    for (int d = 0; d < as->ndev; d++)
        if (m->tables & (1u << d))
            pt_unmap(as->pt[d], m->va, m->size);
    m->r->maps--;
    if (m->r->maps == 0)
        m->r->dev = -1;
    VmmHandle *h = m->h;
    h->maps--;
    g_tree_remove(as->maps, EMU_KEY(m->va));
    handle_put(as, h);
}

void aspace_destroy(AddrSpace *as, unsigned *handles, uint64_t *bytes)
{
    if (!as)
        return;
    while (g_tree_nnodes(as->maps) > 0)
        map_remove(as, g_tree_node_value(g_tree_node_first(as->maps)));
    while (g_tree_nnodes(as->imports) > 0) {
        IpcImport *im = g_tree_node_value(g_tree_node_first(as->imports));
        aspace_ipc_close(as, im->va);
    }
    unsigned n = 0;
    uint64_t b = 0;
    GHashTableIter it;
    gpointer value;
    g_hash_table_iter_init(&it, as->handles);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        VmmHandle *h = value;
        n++;
        b += h->mem->size;
        g_hash_table_iter_steal(&it);
        device_phys_unref(h->mem);
        g_free(h);
    }
    if (handles)
        *handles = n;
    if (bytes)
        *bytes = b;
    for (int d = 0; d < as->ndev; d++) {
        device_detach_table(dev_of(as, d), as->owner);
        pt_destroy(as->pt[d]);
    }
    g_hash_table_destroy(as->handles);
    g_tree_destroy(as->imports);
    g_tree_destroy(as->maps);
    g_tree_destroy(as->reserves);
    va_range_destroy(as->space);
    va_range_destroy(as->nouc);
    g_free(as);
}

int aspace_set_peer(AddrSpace *as, int dev, int peer, bool enable)
{
    if (!dev_of(as, dev) || !dev_of(as, peer))
        return ACL_ERROR_RT_INVALID_DEVICEID;
    if (dev == peer)
        return ACL_ERROR_RT_PARAM_INVALID;
    __atomic_fetch_and(&as->peers[dev], ~(1u << peer), __ATOMIC_RELAXED);
    if (enable)
        __atomic_fetch_or(&as->peers[dev], 1u << peer, __ATOMIC_RELAXED);
    return ACL_SUCCESS;
}

bool aspace_has_peer(AddrSpace *as, int dev, int peer)
{
    return dev_of(as, dev) && dev_of(as, peer) &&
           (__atomic_load_n(&as->peers[dev], __ATOMIC_RELAXED) & (1u << peer));
}

PageTable *aspace_table(AddrSpace *as, int dev)
{
    return dev >= 0 && dev < as->ndev ? as->pt[dev] : NULL;
}

/* ---- translation for the stream engine ---- */

/* Host address of va in table t, if mapped with `access`; *left: bytes to the
 * end of its page. */
static uint8_t *translate(AddrSpace *as, int dev, PageTable *t, uint64_t va, uint32_t access,
                          MemObj **obj, uint64_t *left)
{
    PtHit hit;
    if (!pt_lookup(t, va, &hit) || (hit.prot & access) != access || hit.dev >= as->ntags ||
        !as->by_tag[hit.dev])
        return NULL;
    if (hit.prot & PT_PEER) {
        /* Another device's memory of this server, imported: dev needs peer access. */
        uint32_t p = hit.dev - as->first_tag;
        if (p >= (uint32_t)as->ndev ||
            !(__atomic_load_n(&as->peers[dev], __ATOMIC_RELAXED) & (1u << p)))
            return NULL;
    }
    *left = hit.page_left;
    return device_frame(as->by_tag[hit.dev], hit.phys, obj);
}

/* Walks pages from va while they continue the same memory object. */
static uint8_t *resolve_in(AddrSpace *as, int dev, PageTable *t, uint64_t va, uint64_t *len,
                           uint32_t access, MemObj **ref)
{
    MemObj *obj = NULL;
    uint64_t left = 0;
    pt_read_lock(t);
    uint8_t *p = translate(as, dev, t, va, access, &obj, &left);
    if (p) {
        uint64_t have = left;
        while (have < *len) {
            MemObj *next_obj = NULL;
            uint64_t next_left = 0;
            uint8_t *q = translate(as, dev, t, va + have, access, &next_obj, &next_left);
            if (q != p + have || next_obj != obj)
                break;
            have += next_left;
        }
        if (have < *len)
            *len = have;
        *ref = memobj_ref(obj);
    }
    pt_read_unlock(t);
    return p;
}

uint8_t *aspace_resolve(AddrSpace *as, int dev, uint64_t va, uint64_t *len, uint32_t access,
                        MemObj **ref)
{
    PageTable *t = aspace_table(as, dev);
    if (!t || *len == 0)
        return NULL;
    uint8_t *p = resolve_in(as, dev, t, va, len, access, ref);
    if (p)
        return p;
    /* Peer access: a stream of dev reaches another device's aclrtMalloc
     * memory (and what was imported into that device's heap) through that
     * device's table, once dev has peer access to it.  A VMM mapping (in the
     * VMM part of a span) is reached only through dev's own table, as
     * aclrtMemSetAccess set it. */
    int w = emu_va_device(va);
    if (w < 0 || w == dev || w >= as->ndev ||
        !(__atomic_load_n(&as->peers[dev], __ATOMIC_RELAXED) & (1u << w)) ||
        (va - EMU_VA_WINDOW_LO) % EMU_VA_DEVICE_SPAN >= EMU_VA_VMM_OFFSET)
        return NULL;
    MemObj *obj = NULL;
    uint64_t left = 0;
    pt_read_lock(as->pt[w]);
    PtHit hit;
    bool own = pt_lookup(as->pt[w], va, &hit) && hit.dev == dev_of(as, w)->tag &&
               translate(as, w, as->pt[w], va, access, &obj, &left);
    pt_read_unlock(as->pt[w]);
    return own ? resolve_in(as, w, as->pt[w], va, len, access, ref) : NULL;
}

/* ---- physical handles ---- */

static uint64_t new_handle_id(AddrSpace *as)
{
    uint64_t id;
    do {
        id = ((uint64_t)g_random_int() << 32) | g_random_int();
    } while (id == 0 || g_hash_table_contains(as->handles, &id));
    return id;
}

int aspace_phys_alloc(AddrSpace *as, int dev, uint64_t size, uint64_t page_size, uint32_t attr,
                      uint64_t *handle)
{
    if (dev == ASPACE_HOST)
        dev = HOST_DEV;
    Device *d = pool_of(as, dev);
    if (!d)
        return ACL_ERROR_RT_INVALID_DEVICEID;
    if (dev == HOST_DEV && page_size == HBM_PAGE_1G)
        return ACL_ERROR_RT_PARAM_INVALID;
    if (page_size != HBM_PAGE_NORMAL && page_size != HBM_PAGE_HUGE && page_size != HBM_PAGE_1G)
        return ACL_ERROR_RT_PARAM_INVALID;
    if (size == 0 || size % page_size || size % RESERVE_GRAIN)
        return ACL_ERROR_RT_PARAM_INVALID;
    if (size > d->hbm.capacity)
        return ACL_ERROR_RT_MEMORY_ALLOCATION;
    PhysMem *mem = device_phys_alloc(d, size, page_size);
    if (!mem)
        return ACL_ERROR_RT_MEMORY_ALLOCATION;
    VmmHandle *h = g_new0(VmmHandle, 1);
    *h = (VmmHandle){ .id = new_handle_id(as), .mem = mem, .dev = dev, .attr = attr, .refs = 1 };
    g_hash_table_insert(as->handles, &h->id, h);
    *handle = h->id;
    return ACL_SUCCESS;
}

int aspace_phys_free(AddrSpace *as, uint64_t handle, bool *released)
{
    VmmHandle *h = g_hash_table_lookup(as->handles, &handle);
    if (!h)
        return ACL_ERROR_RT_PARAM_INVALID;
    if (released)
        *released = h->refs == 1;
    h->refs--;
    handle_put(as, h);
    return ACL_SUCCESS;
}

int aspace_handle_mem(AddrSpace *as, uint64_t handle, PhysMem **mem)
{
    VmmHandle *h = g_hash_table_lookup(as->handles, &handle);
    if (!h || h->imported || h->dev == HOST_DEV)
        return ACL_ERROR_RT_PARAM_INVALID;
    device_phys_ref(h->mem);
    *mem = h->mem;
    return ACL_SUCCESS;
}

/* The index of a pool's device in this server, or -1. */
static int local_index(AddrSpace *as, const Device *d)
{
    uint32_t i = d->tag - as->first_tag;
    return d->tag >= as->first_tag && i < (uint32_t)as->ndev && dev_of(as, (int)i) == d
               ? (int)i
               : -1;
}

int aspace_import_handle(AddrSpace *as, PhysMem *mem, uint64_t serial, int dev,
                         uint64_t *handle)
{
    if (!dev_of(as, dev)) {
        device_phys_unref(mem);
        return ACL_ERROR_RT_INVALID_DEVICEID;
    }
    GHashTableIter it;
    gpointer value;
    g_hash_table_iter_init(&it, as->handles);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        if (((VmmHandle *)value)->imported && ((VmmHandle *)value)->serial == serial) {
            device_phys_unref(mem);
            return ACL_ERROR_RT_PARAM_INVALID;   /* one import per process */
        }
    }
    int own = local_index(as, mem->dev);
    VmmHandle *h = g_new0(VmmHandle, 1);
    *h = (VmmHandle){ .id = new_handle_id(as), .mem = mem, .dev = dev, .refs = 1,
                      .imported = true, .peer = own >= 0 && own != dev, .serial = serial };
    g_hash_table_insert(as->handles, &h->id, h);
    *handle = h->id;
    return ACL_SUCCESS;
}

/* ---- memory imported by IPC key ---- */

int aspace_ipc_import(AddrSpace *as, PhysMem *mem, uint64_t off, uint64_t size, int dev,
                      bool peer, uint64_t *va, int *mem_dev, uint64_t *page)
{
    int own = local_index(as, mem->dev);
    bool remote = own < 0;
    uint64_t pg = mem->pages.page_size, at = 0;
    int err = ACL_SUCCESS;
    /* Memory of another server has no place in this server's heaps: it goes to
     * the client's VMM space and enters the importing device's table. */
    if (!dev_of(as, dev) || mem->dev == as->host)
        err = ACL_ERROR_RT_PARAM_INVALID;
    else if (remote ? !va_range_alloc(as->space, (size + RESERVE_GRAIN - 1) & ~(RESERVE_GRAIN - 1),
                                      RESERVE_GRAIN > pg ? RESERVE_GRAIN : pg, &at)
                    : !device_va_alloc(mem->dev, size, pg, &at))
        err = ACL_ERROR_RT_MEMORY_ALLOCATION;
    if (err != ACL_SUCCESS) {
        device_phys_unref(mem);
        return err;
    }
    uint32_t tables = remote ? 1u << dev : 1u << own;
    if (peer)
        tables |= 1u << dev;
    for (int d = 0; d < as->ndev; d++) {
        if ((tables & (1u << d)) && !device_phys_map_range(mem, as->pt[d], at, off, size, PT_RW)) {
            while (d-- > 0)
                if (tables & (1u << d))
                    pt_unmap(as->pt[d], at, size);
            if (remote)
                va_range_release(as->space, at, (size + RESERVE_GRAIN - 1) & ~(RESERVE_GRAIN - 1));
            else
                device_va_release(mem->dev, at, size);
            device_phys_unref(mem);
            return ACL_ERROR_RT_PARAM_INVALID;
        }
    }
    IpcImport *im = g_new0(IpcImport, 1);
    *im = (IpcImport){ .va = at, .size = size, .mem = mem, .tables = tables, .remote = remote };
    g_tree_insert(as->imports, EMU_KEY(at), im);
    *va = at;
    *mem_dev = remote ? -1 : own;
    *page = pg;
    return ACL_SUCCESS;
}

int aspace_ipc_close(AddrSpace *as, uint64_t va)
{
    IpcImport *im = g_tree_lookup(as->imports, EMU_KEY(va));
    if (!im)
        return ACL_ERROR_RT_PARAM_INVALID;
    for (int d = 0; d < as->ndev; d++)
        if (im->tables & (1u << d))
            pt_unmap(as->pt[d], im->va, im->size);
    g_tree_remove(as->imports, EMU_KEY(va));
    if (im->remote)
        va_range_release(as->space, im->va, (im->size + RESERVE_GRAIN - 1) & ~(RESERVE_GRAIN - 1));
    else
        device_va_release(im->mem->dev, im->va, im->size);
    device_phys_unref(im->mem);
    g_free(im);
    return ACL_SUCCESS;
}

/* ---- reservations ---- */

static VmmReserve *reserve_at(AddrSpace *as, uint64_t va)
{
    GTreeNode *n = emu_tree_floor(as->reserves, va);
    if (!n)
        return NULL;
    VmmReserve *r = g_tree_node_value(n);
    return va - r->va < r->size ? r : NULL;
}

int aspace_reserve(AddrSpace *as, uint64_t size, uint64_t align, uint64_t expect,
                   uint64_t *va)
{
    if (size == 0 || size % RESERVE_GRAIN || align == 0 || (align & (align - 1)))
        return ACL_ERROR_RT_PARAM_INVALID;
    uint64_t at = expect;
    if (expect) {
        /* Inside the window or the NoUC range, and on the 2 MiB grain whatever
         * the alignment asked: mappings start there. */
        bool nouc = expect >= NOUC_LO && expect < NOUC_HI;
        if (expect % align || expect % RESERVE_GRAIN ||
            (!nouc && (expect < EMU_VA_WINDOW_LO || expect >= EMU_VA_WINDOW_HI)) ||
            !va_range_claim(nouc ? as->nouc : as->space, expect, size))
            return ACL_ERROR_RT_PARAM_INVALID;
    } else if (!va_range_alloc(as->space, size, align, &at)) {
        return ACL_ERROR_RT_MEMORY_ALLOCATION;
    }
    VmmReserve *r = g_new0(VmmReserve, 1);
    *r = (VmmReserve){ .va = at, .size = size, .dev = -1 };
    g_tree_insert(as->reserves, EMU_KEY(at), r);
    *va = at;
    return ACL_SUCCESS;
}

int aspace_release(AddrSpace *as, uint64_t va)
{
    VmmReserve *r = g_tree_lookup(as->reserves, EMU_KEY(va));
    if (!r || r->maps > 0)
        return ACL_ERROR_RT_PARAM_INVALID;
    va_range_release(r->va >= NOUC_LO ? as->nouc : as->space, r->va, r->size);
    g_tree_remove(as->reserves, EMU_KEY(va));
    return ACL_SUCCESS;
}

/* ---- mappings ---- */

/* True when [va, va + size) meets no mapping. */
static bool range_unmapped(AddrSpace *as, uint64_t va, uint64_t size)
{
    GTreeNode *n = emu_tree_floor(as->maps, va + size - 1);
    if (!n)
        return true;
    VmmMap *m = g_tree_node_value(n);
    return m->va + m->size <= va;
}

int aspace_map(AddrSpace *as, uint64_t va, uint64_t size, uint64_t handle, uint32_t prot,
               MemObj **obj, uint64_t *reserve_va, int *dev, uint64_t *page)
{
    VmmHandle *h = g_hash_table_lookup(as->handles, &handle);
    VmmReserve *r = reserve_at(as, va);
    if (!h || !r || size != h->mem->size || (prot & ~PT_RW))
        return ACL_ERROR_RT_PARAM_INVALID;
    uint64_t pg = h->mem->pages.page_size;
    if (va % RESERVE_GRAIN || va % pg || size > r->size - (va - r->va) ||
        (r->dev >= 0 && (r->dev != h->dev || r->imported != h->imported)) ||
        !range_unmapped(as, va, size))
        return ACL_ERROR_RT_PARAM_INVALID;
    if (h->peer)
        prot |= PT_PEER;
    /* Device memory enters its device's table; host memory every device's. */
    uint32_t tables = h->dev == HOST_DEV ? (1u << as->ndev) - 1 : 1u << h->dev;
    for (int d = 0; d < as->ndev; d++) {
        if ((tables & (1u << d)) && !device_phys_map(h->mem, as->pt[d], va, prot)) {
            while (d-- > 0)
                if (tables & (1u << d))
                    pt_unmap(as->pt[d], va, size);
            return ACL_ERROR_RT_PARAM_INVALID;
        }
    }
    VmmMap *m = g_new0(VmmMap, 1);
    *m = (VmmMap){ .va = va, .size = size, .h = h, .r = r, .tables = tables };
    g_tree_insert(as->maps, EMU_KEY(va), m);
    h->maps++;
    r->maps++;
    r->dev = h->dev;
    r->imported = h->imported;
    *obj = memobj_ref(h->mem->obj);
    *reserve_va = r->va;
    *dev = h->dev == HOST_DEV ? ASPACE_HOST : h->dev;
    *page = pg;
    return ACL_SUCCESS;
}

int aspace_unmap(AddrSpace *as, uint64_t va, uint64_t *handle, uint64_t *size)
{
    VmmMap *m = g_tree_lookup(as->maps, EMU_KEY(va));
    if (!m)
        return ACL_ERROR_RT_PARAM_INVALID;
    *handle = m->h->id;
    *size = m->size;
    map_remove(as, m);
    return ACL_SUCCESS;
}

int aspace_set_access(AddrSpace *as, uint64_t va, uint64_t size, int dev, uint32_t prot)
{
    VmmMap *m = g_tree_lookup(as->maps, EMU_KEY(va));
    if (!m || m->size != size || (prot & ~PT_RW))
        return ACL_ERROR_RT_PARAM_INVALID;
    if (!dev_of(as, dev))
        return ACL_ERROR_RT_INVALID_DEVICEID;
    /* Imported memory of another device of this server stays behind peer
     * access in every table but its own device's, whatever the rights. */
    int own = m->h->imported ? local_index(as, m->h->mem->dev) : -1;
    if (own >= 0 && own != dev)
        prot |= PT_PEER;
    if (m->tables & (1u << dev))
        return pt_protect(as->pt[dev], va, size, prot) ? ACL_SUCCESS
                                                       : ACL_ERROR_RT_PARAM_INVALID;
    if (!device_phys_map(m->h->mem, as->pt[dev], va, prot))
        return ACL_ERROR_RT_PARAM_INVALID;
    m->tables |= 1u << dev;
    return ACL_SUCCESS;
}

int aspace_retain(AddrSpace *as, uint64_t va, uint64_t *handle, uint64_t *size, int *dev,
                  uint64_t *page)
{
    VmmMap *m = g_tree_lookup(as->maps, EMU_KEY(va));
    if (!m)
        return ACL_ERROR_RT_PARAM_INVALID;
    VmmHandle *h = m->h;
    if (h->refs++ == 0)
        g_hash_table_insert(as->handles, &h->id, h);
    *handle = h->id;
    *size = h->mem->size;
    *dev = h->dev == HOST_DEV ? ASPACE_HOST : h->dev;
    *page = h->mem->pages.page_size;
    return ACL_SUCCESS;
}

unsigned aspace_handles(AddrSpace *as)
{
    return g_hash_table_size(as->handles);
}

unsigned aspace_mappings(AddrSpace *as)
{
    return (unsigned)g_tree_nnodes(as->maps);
}

unsigned aspace_reservations(AddrSpace *as)
{
    return (unsigned)g_tree_nnodes(as->reserves);
}
