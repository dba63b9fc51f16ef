/*
 * device.h - one NPU device: its HBM pool, its virtual address heap and the
 * memory segments allocated on it.
 *
 * Concepts: an allocation lives in a segment; a segment is one memory object
 * mapped at one device virtual address range, on physical HBM pages of one size
 * taken from the pool (hbm.h).  The pages need not be contiguous: the segment
 * keeps the pool's extents, in VA order, so every VA of the segment translates
 * to its HBM address (device_segment_phys).  The memory object is the data; the
 * physical pages are the model's bookkeeping.  Allocations of at least a page
 * get a segment of their own, rounded to their page size (4 KiB, 2 MiB, 1 GiB)
 * and aligned to it.  Smaller ones are 64-byte aligned slices of a shared 2 MiB
 * block of normal pages that belongs to one owner (a client session), which is
 * why such pointers are not page-aligned, as on hardware.  Every segment has an
 * owner; a lookup on behalf of another owner finds nothing.  All functions are
 * thread-safe (one lock per device); returned segments stay valid until freed
 * by their owner, and device_resolve hands out a memory-object reference that
 * outlives a concurrent free.
 */
#ifndef DEVMODEL_DEVICE_H
#define DEVMODEL_DEVICE_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "hbm.h"
#include "memobj.h"
#include "pagetable.h"
#include "varange.h"

#define DEV_SMALL_BLOCK   (2ull << 20)  /* shared block for sub-page allocations */
#define DEV_SMALL_ALIGN   64ull
#define DEV_NOTIFY_MAX    8192          /* notifies per device on A2 / A3 */
#define DEV_EVENT_MAX     65536         /* events per device on A2 / A3 */

struct PhysMem;

typedef struct Segment {
    uint64_t va;
    uint64_t size;
    MemObj *obj;        /* mem->obj */
    uint32_t owner;
    uint32_t page_size;
    uint32_t nallocs;
    VaRange *slices;    /* shared small block: its free slices; NULL otherwise */
    HbmPages phys;      /* mem->pages: its HBM pages, in VA order */
    struct PhysMem *mem; /* the segment holds one reference; an IPC export may
                          * hold more, so the pages can outlive the segment */
} Segment;

typedef struct DevAlloc {
    uint64_t va;
    uint64_t size;
    Segment *seg;
    uint32_t owner;
} DevAlloc;

/* What backs one HBM page: bytes [off, off + page) of a memory object.  A
 * 2 MiB block holds one frame for the block, or (carved into normal pages) a
 * table of 512. */
typedef struct HbmFrame {
    MemObj *obj;
    uint64_t off;
    struct HbmFrame *sub;
    uint32_t nsub;      /* normal pages of the block in use */
} HbmFrame;

typedef struct Device {
    int index;
    uint32_t tag;       /* device tag in page-table entries (server-wide number) */
    GMutex lock;
    HbmPool hbm;
    HbmFrame *frames;   /* one per 2 MiB block of the pool */
    VaRange *heap;
    GTree *segments;    /* va -> Segment *, for containment lookups */
    GHashTable *allocs; /* va -> DevAlloc * */
    GHashTable *blocks; /* owner -> GList of shared small blocks */
    GHashTable *tables; /* owner -> its PageTable for this device */
    uint64_t seg_bytes, seg_peak;   /* HBM in aclrtMalloc segments, now and at most */
    uint64_t phys_bytes, phys_peak; /* HBM in aclrtMallocPhysical handles */
    uint64_t notify_used[DEV_NOTIFY_MAX / 64]; /* notify ids in use (notify.c) */
    uint32_t notifies;
    uint64_t event_used[DEV_EVENT_MAX / 64];   /* event ids in use (event.c) */
    uint32_t events;
} Device;

/* Physical memory of aclrtMallocPhysical: pages of one size and the memory
 * object behind them, owned by nobody's address space.  `refs` counts handles
 * and mappings (under the device lock); the last device_phys_unref gives the
 * pages back. */
typedef struct PhysMem {
    Device *dev;
    MemObj *obj;
    HbmPages pages;
    uint64_t size;
    uint32_t refs;
    bool segment;       /* counted as aclrtMalloc memory, not as a VMM handle */
} PhysMem;

typedef struct DevAllocResult {
    uint64_t va;
    uint64_t size;
    uint64_t seg_va;
    uint64_t seg_size;
    uint32_t page_size;
    MemObj *new_obj;    /* referenced: the segment is new, the owner must map it */
} DevAllocResult;

typedef struct DevFreeResult {
    uint64_t size;
    uint64_t seg_va;
    uint64_t seg_size;
    bool seg_released;  /* the owner must unmap the segment */
} DevFreeResult;

/* Creates device `index` with `hbm_bytes` of HBM and VA heap [va_lo, va_hi). */
Device *device_new(int index, uint64_t hbm_bytes, uint64_t va_lo, uint64_t va_hi);
void device_destroy(Device *d);

/* The size aclrtMalloc really reserves for a request of `size` bytes on pages of
 * page_size: rounded up to 32 bytes plus 32, except on 1 GiB pages (no extra 32). */
uint64_t device_malloc_size(uint64_t size, uint64_t page_size, bool align32_only);
/* The page size aclrtMalloc uses for `policy` and `size` (before any fallback). */
uint64_t device_policy_page(uint32_t policy, uint64_t size);

/* aclrtMalloc on this device for `owner`; returns an aclError. */
int device_mem_alloc(Device *d, uint32_t owner, uint64_t size, uint32_t policy,
                     bool align32_only, DevAllocResult *out);
/* aclrtFree of `va`, which must be the start of an allocation of `owner`. */
int device_mem_free(Device *d, uint32_t owner, uint64_t va, DevFreeResult *out);
/* Frees everything `owner` has on the device; returns the number of allocations. */
unsigned device_release_owner(Device *d, uint32_t owner, uint64_t *bytes);
/* Host address of [va, va + len) in the emulator's view if it lies inside one
 * segment of `owner`; *ref receives a memory-object reference to drop after use. */
uint8_t *device_resolve(Device *d, uint32_t owner, uint64_t va, uint64_t len, MemObj **ref);
/* Free and total HBM bytes. */
void device_mem_info(Device *d, uint64_t *free_bytes, uint64_t *total);
/* Bytes that pages of page_size could still be allocated in (fragmentation
 * counted: a split 1 GiB chunk holds no 1 GiB page). */
uint64_t device_mem_fits(Device *d, uint64_t page_size);
/* The HBM address behind `va` if it lies in a segment (of any owner); false
 * otherwise.  Pages of the segment's page size are physically contiguous. */
bool device_segment_phys(Device *d, uint64_t va, uint64_t *phys);

/* HBM held by aclrtMalloc segments and by physical handles, now and at peak
 * (every client of the device together). */
void device_usage(Device *d, uint64_t *seg, uint64_t *seg_peak, uint64_t *phys,
                  uint64_t *phys_peak);

/* Gives `owner` a page table on this device: from now on its segments are
 * mapped there (read-write) while they live.  Detach before destroying it. */
void device_attach_table(Device *d, uint32_t owner, PageTable *t);
void device_detach_table(Device *d, uint32_t owner);

/* The host address of HBM address `phys` and, in *obj (not referenced), the
 * memory object it belongs to; NULL for a page nobody holds.  Lock-free: call
 * it only for pages a page-table mapping held under its read lock keeps alive. */
uint8_t *device_frame(Device *d, uint64_t phys, MemObj **obj);

/* aclrtMallocPhysical: `size` bytes (a multiple of page_size) in pages of
 * page_size, with one reference; NULL when they do not fit. */
PhysMem *device_phys_alloc(Device *d, uint64_t size, uint64_t page_size);
void device_phys_ref(PhysMem *p);
void device_phys_unref(PhysMem *p);
/* Maps all of p at va in t with rights prot; false (nothing mapped) on overlap. */
bool device_phys_map(PhysMem *p, PageTable *t, uint64_t va, uint32_t prot);
/* Maps bytes [off, off + len) of p (whole pages) at va; false, nothing mapped,
 * on overlap or a range that is not whole pages of p. */
bool device_phys_map_range(PhysMem *p, PageTable *t, uint64_t va, uint64_t off, uint64_t len,
                           uint32_t prot);

/* The physical memory behind [va, va + len) of owner's segment, page-aligned
 * and inside one segment: a new reference and the offset of va in it; NULL
 * otherwise (a sub-page slice, another owner's memory, a range past the end). */
PhysMem *device_segment_mem(Device *d, uint32_t owner, uint64_t va, uint64_t len,
                            uint64_t *off);
/* VA from the device's heap for imported memory (every process sees the
 * device's memory at distinct addresses); release gives it back. */
bool device_va_alloc(Device *d, uint64_t size, uint64_t align, uint64_t *va);
void device_va_release(Device *d, uint64_t va, uint64_t size);

#endif
