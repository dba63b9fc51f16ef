/*
 * device.c - device memory: segments, shared small blocks, their HBM pages.
 */
#include "device.h"

#include "npuemu/u64tree.h"

#include "acl/acl_base.h"
#include "acl/acl_rt.h"

#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((uint64_t)(a) - 1))

#define BLOCK_SHIFT 21
#define PAGE_SHIFT  12
#define SUB_PAGES   (HBM_PAGE_HUGE / HBM_PAGE_NORMAL)

/* ---- frames: which memory object backs each HBM page ---- */

static void frames_set(Device *d, const HbmPages *pg, MemObj *obj)
{
    for (uint32_t i = 0; i < pg->n; i++) {
        const HbmExtent *x = &pg->ext[i];
        if (pg->page_size == HBM_PAGE_NORMAL) {
            for (uint64_t o = 0; o < x->len; o += HBM_PAGE_NORMAL) {
                HbmFrame *b = &d->frames[(x->phys + o) >> BLOCK_SHIFT];
                if (!b->sub)
                    b->sub = g_new0(HbmFrame, SUB_PAGES);
                b->nsub++;
                b->sub[((x->phys + o) >> PAGE_SHIFT) % SUB_PAGES] =
                    (HbmFrame){ .obj = obj, .off = x->off + o };
            }
        } else {
            for (uint64_t o = 0; o < x->len; o += HBM_PAGE_HUGE)
                d->frames[(x->phys + o) >> BLOCK_SHIFT] =
                    (HbmFrame){ .obj = obj, .off = x->off + o };
        }
    }
}

static void frames_clear(Device *d, const HbmPages *pg)
{
    for (uint32_t i = 0; i < pg->n; i++) {
        const HbmExtent *x = &pg->ext[i];
        uint64_t step = pg->page_size == HBM_PAGE_NORMAL ? HBM_PAGE_NORMAL : HBM_PAGE_HUGE;
        for (uint64_t o = 0; o < x->len; o += step) {
            HbmFrame *b = &d->frames[(x->phys + o) >> BLOCK_SHIFT];
            if (step == HBM_PAGE_HUGE) {
                *b = (HbmFrame){ 0 };
                continue;
            }
            b->sub[((x->phys + o) >> PAGE_SHIFT) % SUB_PAGES] = (HbmFrame){ 0 };
            if (--b->nsub == 0) {
                g_free(b->sub);
                b->sub = NULL;
            }
        }
    }
}

uint8_t *device_frame(Device *d, uint64_t phys, MemObj **obj)
{
    if (phys >= d->hbm.capacity)
        return NULL;
    const HbmFrame *f = &d->frames[phys >> BLOCK_SHIFT];
    uint64_t in = phys & (HBM_PAGE_HUGE - 1);
    if (f->sub) {
        f = &f->sub[in >> PAGE_SHIFT];
        in &= HBM_PAGE_NORMAL - 1;
    }
    if (!f->obj)
        return NULL;
    *obj = f->obj;
    return f->obj->map + f->off + in;
}

/* Maps every extent of pg at va + its offset. */
static bool pages_map(Device *d, PageTable *t, uint64_t va, const HbmPages *pg, uint32_t prot)
{
    for (uint32_t i = 0; i < pg->n; i++) {
        const HbmExtent *x = &pg->ext[i];
        if (!pt_map(t, va + x->off, x->len, pg->page_size, d->tag, x->phys, prot)) {
            pt_unmap(t, va, x->off);
            return false;
        }
    }
    return true;
}

static PageTable *owner_table(Device *d, uint32_t owner)
{
    return g_hash_table_lookup(d->tables, GUINT_TO_POINTER(owner));
}

void device_usage(Device *d, uint64_t *seg, uint64_t *seg_peak, uint64_t *phys,
                  uint64_t *phys_peak)
{
    g_mutex_lock(&d->lock);
    *seg = d->seg_bytes;
    *seg_peak = d->seg_peak;
    *phys = d->phys_bytes;
    *phys_peak = d->phys_peak;
    g_mutex_unlock(&d->lock);
}

void device_attach_table(Device *d, uint32_t owner, PageTable *t)
{
    g_mutex_lock(&d->lock);
    g_hash_table_insert(d->tables, GUINT_TO_POINTER(owner), t);
    g_mutex_unlock(&d->lock);
}

void device_detach_table(Device *d, uint32_t owner)
{
    g_mutex_lock(&d->lock);
    g_hash_table_remove(d->tables, GUINT_TO_POINTER(owner));
    g_mutex_unlock(&d->lock);
}

/* ---- physical memory of aclrtMallocPhysical ---- */

/* Pages, object and frames of new physical memory (lock held); NULL when the
 * pages do not fit or no object can be made. */
static PhysMem *phys_new_locked(Device *d, uint64_t size, uint64_t page_size, bool segment,
                                const char *name)
{
    PhysMem *p = g_new0(PhysMem, 1);
    *p = (PhysMem){ .dev = d, .size = size, .refs = 1, .segment = segment };
    if (!hbm_alloc(&d->hbm, size, page_size, &p->pages)) {
        g_free(p);
        return NULL;
    }
    if (!(p->obj = memobj_new(name, size))) {
        hbm_free(&d->hbm, &p->pages);
        g_free(p);
        return NULL;
    }
    frames_set(d, &p->pages, p->obj);
    uint64_t *now = segment ? &d->seg_bytes : &d->phys_bytes;
    uint64_t *peak = segment ? &d->seg_peak : &d->phys_peak;
    *now += size;
    if (*now > *peak)
        *peak = *now;
    return p;
}

/* Drops a reference (lock held); the last one frees pages and object. */
static void phys_unref_locked(PhysMem *p)
{
    Device *d = p->dev;
    if (--p->refs > 0)
        return;
    frames_clear(d, &p->pages);
    *(p->segment ? &d->seg_bytes : &d->phys_bytes) -= p->size;
    hbm_free(&d->hbm, &p->pages);
    memobj_unref(p->obj);
    g_free(p);
}

PhysMem *device_phys_alloc(Device *d, uint64_t size, uint64_t page_size)
{
    if (size == 0 || size % page_size)
        return NULL;
    char name[48];
    g_snprintf(name, sizeof(name), "npu%d-physical", d->index);
    g_mutex_lock(&d->lock);
    PhysMem *p = phys_new_locked(d, size, page_size, false, name);
    g_mutex_unlock(&d->lock);
    return p;
}

void device_phys_ref(PhysMem *p)
{
    g_mutex_lock(&p->dev->lock);
    p->refs++;
    g_mutex_unlock(&p->dev->lock);
}

void device_phys_unref(PhysMem *p)
{
    if (!p)
        return;
    Device *d = p->dev;
    g_mutex_lock(&d->lock);
    phys_unref_locked(p);
    g_mutex_unlock(&d->lock);
}

bool device_phys_map(PhysMem *p, PageTable *t, uint64_t va, uint32_t prot)
{
    return pages_map(p->dev, t, va, &p->pages, prot);
}

bool device_phys_map_range(PhysMem *p, PageTable *t, uint64_t va, uint64_t off, uint64_t len,
                           uint32_t prot)
{
    uint64_t page = p->pages.page_size, end = off + len;
    if (len == 0 || off % page || len % page || end < off || end > p->size)
        return false;
    for (uint32_t i = 0; i < p->pages.n; i++) {
        const HbmExtent *x = &p->pages.ext[i];
        uint64_t lo = x->off > off ? x->off : off;
        uint64_t hi = x->off + x->len < end ? x->off + x->len : end;
        if (lo >= hi)
            continue;
        if (!pt_map(t, va + (lo - off), hi - lo, page, p->dev->tag, x->phys + (lo - x->off),
                    prot)) {
            pt_unmap(t, va, lo - off);
            return false;
        }
    }
    return true;
}

bool device_va_alloc(Device *d, uint64_t size, uint64_t align, uint64_t *va)
{
    g_mutex_lock(&d->lock);
    bool ok = va_range_alloc(d->heap, size, align, va);
    g_mutex_unlock(&d->lock);
    return ok;
}

void device_va_release(Device *d, uint64_t va, uint64_t size)
{
    g_mutex_lock(&d->lock);
    va_range_release(d->heap, va, size);
    g_mutex_unlock(&d->lock);
}

/* ---- the device ---- */

Device *device_new(int index, uint64_t hbm_bytes, uint64_t va_lo, uint64_t va_hi)
{
    Device *d = g_new0(Device, 1);
    d->index = index;
    d->tag = (uint32_t)index;
    g_mutex_init(&d->lock);
    hbm_init(&d->hbm, hbm_bytes);
    d->frames = g_new0(HbmFrame, (d->hbm.capacity + HBM_PAGE_HUGE - 1) >> BLOCK_SHIFT);
    d->tables = g_hash_table_new(g_direct_hash, g_direct_equal);
    d->heap = va_range_new(va_lo, va_hi);
    d->segments = emu_u64_tree_new(NULL);
    d->allocs = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
    d->blocks = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, NULL);
    return d;
}

static void segment_destroy(Device *d, Segment *s)
{
    PageTable *t = owner_table(d, s->owner);
    if (t)
        pt_unmap(t, s->va, s->size);   /* waits for engine readers of it */
    g_tree_remove(d->segments, EMU_KEY(s->va));
    va_range_release(d->heap, s->va, s->size);
    phys_unref_locked(s->mem);
    if (s->slices) {
        GList *l = g_hash_table_lookup(d->blocks, GUINT_TO_POINTER(s->owner));
        l = g_list_remove(l, s);
        if (l)
            g_hash_table_insert(d->blocks, GUINT_TO_POINTER(s->owner), l);
        else
            g_hash_table_remove(d->blocks, GUINT_TO_POINTER(s->owner));
        va_range_destroy(s->slices);
    }
    g_free(s);
}

void device_destroy(Device *d)
{
    if (!d)
        return;
    device_release_owner(d, 0, NULL);
    while (g_tree_nnodes(d->segments) > 0) {
        GTreeNode *n = g_tree_node_first(d->segments);
        segment_destroy(d, g_tree_node_value(n));
    }
    g_hash_table_destroy(d->allocs);
    g_hash_table_destroy(d->blocks);
    g_hash_table_destroy(d->tables);
    g_free(d->frames);
    g_tree_destroy(d->segments);
    va_range_destroy(d->heap);
    hbm_destroy(&d->hbm);
    g_mutex_clear(&d->lock);
    g_free(d);
}

uint64_t device_malloc_size(uint64_t size, uint64_t page_size, bool align32_only)
{
    uint64_t m = ALIGN_UP(size, 32);
    return page_size == HBM_PAGE_1G || align32_only ? m : m + 32;
}

/* The page-size part of a policy: bandwidth and read-only bits do not choose
 * the page size; any other value outside the enum stays out of range. */
static uint32_t policy_base(uint32_t policy)
{
    return policy & ~(uint32_t)(ACL_MEM_TYPE_LOW_BAND_WIDTH | ACL_MEM_TYPE_HIGH_BAND_WIDTH |
                                ACL_MEM_ACCESS_USER_SPACE_READONLY);
}

uint64_t device_policy_page(uint32_t policy, uint64_t size)
{
    switch (policy_base(policy)) {
    case ACL_MEM_MALLOC_HUGE_FIRST:
    case ACL_MEM_MALLOC_HUGE_FIRST_P2P:
        return size <= (1u << 20) ? HBM_PAGE_NORMAL : HBM_PAGE_HUGE;
    case ACL_MEM_MALLOC_HUGE_ONLY:
    case ACL_MEM_MALLOC_HUGE_ONLY_P2P:
        return HBM_PAGE_HUGE;
    case ACL_MEM_MALLOC_NORMAL_ONLY:
    case ACL_MEM_MALLOC_NORMAL_ONLY_P2P:
        return HBM_PAGE_NORMAL;
    case ACL_MEM_MALLOC_HUGE1G_ONLY:
    case ACL_MEM_MALLOC_HUGE1G_ONLY_P2P:
        return HBM_PAGE_1G;
    default:
        /* Out of range: huge pages from 2 MiB on, normal pages below. */
        return size >= HBM_PAGE_HUGE ? HBM_PAGE_HUGE : HBM_PAGE_NORMAL;
    }
}

static Segment *segment_new(Device *d, uint32_t owner, uint64_t size, uint64_t page)
{
    uint64_t va;
    if (!va_range_alloc(d->heap, size, page, &va))
        return NULL;
    char name[48];
    g_snprintf(name, sizeof(name), "npu%d-hbm-0x%" G_GINT64_MODIFIER "x", d->index, va);
    PhysMem *mem = phys_new_locked(d, size, page, true, name);
    if (!mem) {
        va_range_release(d->heap, va, size);
        return NULL;
    }
    Segment *s = g_new0(Segment, 1);
    s->va = va;
    s->size = size;
    s->mem = mem;
    s->obj = mem->obj;
    s->owner = owner;
    s->page_size = (uint32_t)page;
    s->phys = mem->pages;
    g_tree_insert(d->segments, EMU_KEY(va), s);
    PageTable *t = owner_table(d, owner);
    if (t && !pages_map(d, t, va, &s->phys, PT_RW)) {
        /* The heap hands out each VA once: only a corrupted table gets here. */
        g_warning("device %d: cannot map a new segment at 0x%" G_GINT64_MODIFIER "x",
                  d->index, va);
    }
    return s;
}

/* A slice of one of the owner's shared small blocks, or of a new one. */
static Segment *small_slice(Device *d, uint32_t owner, uint64_t size, uint64_t *va,
                            bool *fresh)
{
    GList *l = g_hash_table_lookup(d->blocks, GUINT_TO_POINTER(owner));
    for (; l; l = l->next) {
        Segment *s = l->data;
        if (va_range_alloc(s->slices, size, DEV_SMALL_ALIGN, va))
            return s;
    }
    Segment *s = segment_new(d, owner, DEV_SMALL_BLOCK, HBM_PAGE_NORMAL);
    if (!s)
        return NULL;
    s->slices = va_range_new(s->va, s->va + s->size);
    GList *head = g_hash_table_lookup(d->blocks, GUINT_TO_POINTER(owner));
    g_hash_table_insert(d->blocks, GUINT_TO_POINTER(owner), g_list_prepend(head, s));
    va_range_alloc(s->slices, size, DEV_SMALL_ALIGN, va);
    *fresh = true;
    return s;
}

int device_mem_alloc(Device *d, uint32_t owner, uint64_t size, uint32_t policy,
                     bool align32_only, DevAllocResult *out)
{
    uint64_t page = device_policy_page(policy, size);
    uint64_t m = device_malloc_size(size, page, align32_only);
    bool huge_first = policy_base(policy) == ACL_MEM_MALLOC_HUGE_FIRST ||
                      policy_base(policy) == ACL_MEM_MALLOC_HUGE_FIRST_P2P;
    Segment *s = NULL;
    bool fresh = false;
    uint64_t va = 0;

    if (size > d->hbm.capacity)
        return ACL_ERROR_RT_MEMORY_ALLOCATION;
    g_mutex_lock(&d->lock);
    if (page == HBM_PAGE_NORMAL && m < HBM_PAGE_NORMAL) {
        s = small_slice(d, owner, m, &va, &fresh);
    } else {
        s = segment_new(d, owner, ALIGN_UP(m, page), page);
        if (!s && huge_first && page == HBM_PAGE_HUGE) {
            /* No room in whole 2 MiB blocks (exhausted or fragmented). */
            page = HBM_PAGE_NORMAL;
            s = segment_new(d, owner, ALIGN_UP(m, page), page);
        }
        if (s)
            va = s->va;
        fresh = true;
    }
    if (!s) {
        g_mutex_unlock(&d->lock);
        return ACL_ERROR_RT_MEMORY_ALLOCATION;
    }
    s->nallocs++;
    DevAlloc *a = g_new(DevAlloc, 1);
    *a = (DevAlloc){ .va = va, .size = s->slices ? m : s->size, .seg = s, .owner = owner };
    g_hash_table_insert(d->allocs, EMU_KEY(va), a);
    *out = (DevAllocResult){
        .va = va, .size = a->size, .seg_va = s->va, .seg_size = s->size,
        .page_size = s->page_size, .new_obj = fresh ? memobj_ref(s->obj) : NULL,
    };
    g_mutex_unlock(&d->lock);
    return ACL_SUCCESS;
}

/* Called with the lock held; frees one allocation and maybe its segment. */
static void alloc_free_locked(Device *d, DevAlloc *a, DevFreeResult *out)
{
    Segment *s = a->seg;
    DevFreeResult r = { .size = a->size, .seg_va = s->va, .seg_size = s->size };
    if (s->slices)
        va_range_release(s->slices, a->va, a->size);
    g_hash_table_remove(d->allocs, EMU_KEY(a->va));
    if (--s->nallocs == 0) {
        segment_destroy(d, s);
        r.seg_released = true;
    }
    if (out)
        *out = r;
}

int device_mem_free(Device *d, uint32_t owner, uint64_t va, DevFreeResult *out)
{
    g_mutex_lock(&d->lock);
    DevAlloc *a = g_hash_table_lookup(d->allocs, EMU_KEY(va));
    if (!a || a->owner != owner) {
        g_mutex_unlock(&d->lock);
        return ACL_ERROR_RT_PARAM_INVALID;
    }
    alloc_free_locked(d, a, out);
    g_mutex_unlock(&d->lock);
    return ACL_SUCCESS;
}

typedef struct OwnerScan {
    uint32_t owner;
    bool all;
    GPtrArray *found;
} OwnerScan;

static void collect_owned(gpointer key, gpointer value, gpointer data)
{
    (void)key;
    OwnerScan *scan = data;
    DevAlloc *a = value;
    if (scan->all || a->owner == scan->owner)
        g_ptr_array_add(scan->found, a);
}

unsigned device_release_owner(Device *d, uint32_t owner, uint64_t *bytes)
{
    /* owner 0 is never a session: it means everyone (device teardown). */
    OwnerScan scan = { .owner = owner, .all = owner == 0, .found = g_ptr_array_new() };
    uint64_t total = 0;
    g_mutex_lock(&d->lock);
    g_hash_table_foreach(d->allocs, collect_owned, &scan);
    for (unsigned i = 0; i < scan.found->len; i++) {
        DevAlloc *a = g_ptr_array_index(scan.found, i);
        total += a->size;
        alloc_free_locked(d, a, NULL);
    }
    g_mutex_unlock(&d->lock);
    unsigned n = scan.found->len;
    g_ptr_array_free(scan.found, TRUE);
    if (bytes)
        *bytes = total;
    return n;
}

static Segment *segment_at(Device *d, uint64_t va)
{
    GTreeNode *n = emu_tree_floor(d->segments, va);
    if (!n)
        return NULL;
    Segment *s = g_tree_node_value(n);
    return va >= s->va && va - s->va < s->size ? s : NULL;
}

uint8_t *device_resolve(Device *d, uint32_t owner, uint64_t va, uint64_t len, MemObj **ref)
{
    uint8_t *p = NULL;
    g_mutex_lock(&d->lock);
    Segment *s = segment_at(d, va);
    if (s && s->owner == owner && len <= s->size - (va - s->va)) {
        *ref = memobj_ref(s->obj);
        p = s->obj->map + (va - s->va);
    }
    g_mutex_unlock(&d->lock);
    return p;
}

uint64_t device_mem_fits(Device *d, uint64_t page_size)
{
    g_mutex_lock(&d->lock);
    uint64_t fits = hbm_largest(&d->hbm, page_size);
    g_mutex_unlock(&d->lock);
    return fits;
}

void device_mem_info(Device *d, uint64_t *free_bytes, uint64_t *total)
{
    g_mutex_lock(&d->lock);
    *free_bytes = hbm_free_bytes(&d->hbm);
    *total = d->hbm.capacity;
    g_mutex_unlock(&d->lock);
}

PhysMem *device_segment_mem(Device *d, uint32_t owner, uint64_t va, uint64_t len,
                            uint64_t *off)
{
    g_mutex_lock(&d->lock);
    Segment *s = segment_at(d, va);
    PhysMem *p = NULL;
    if (s && s->owner == owner && !s->slices && len > 0 && va % s->page_size == 0 &&
        len <= s->size - (va - s->va)) {
        p = s->mem;
        p->refs++;
        *off = va - s->va;
    }
    g_mutex_unlock(&d->lock);
    return p;
}

bool device_segment_phys(Device *d, uint64_t va, uint64_t *phys)
{
    g_mutex_lock(&d->lock);
    Segment *s = segment_at(d, va);
    bool ok = s && hbm_phys(&s->phys, va - s->va, phys);
    g_mutex_unlock(&d->lock);
    return ok;
}
