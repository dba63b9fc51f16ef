/*
 * pagetable.h - a device page table: one client's view of device memory as
 * seen from one device.
 *
 * Concepts: a four-level radix tree over 48-bit device virtual addresses, 9 bits
 * per level as on an SMMU: level 3 entries cover 512 GiB, level 2 1 GiB, level 1
 * 2 MiB and level 0 4 KiB.  A leaf sits at level 2 (a 1 GiB page), level 1
 * (2 MiB) or level 0 (4 KiB) and holds the page's physical HBM address, the
 * device whose HBM it is (a small tag: the emulator uses a server-wide device
 * number) and the access rights.  A leaf may carry no rights at all: the page
 * is mapped but not accessible (aclrtMemMapNoAccess).  Tables are allocated on
 * first use and freed when their last entry goes.
 *
 * Mapping never replaces: a range that overlaps anything mapped is refused and
 * nothing changes.  Unmapping and changing rights apply to whole pages only.
 *
 * Locking: mutators take the table's write lock themselves.  Lookups do not:
 * a reader (a stream-engine worker) holds pt_read_lock around its lookups and
 * around whatever it derives from them, so an unmap waits until no reader can
 * still be using the translation.
 */
#ifndef DEVMODEL_PAGETABLE_H
#define DEVMODEL_PAGETABLE_H

#include <stdbool.h>
#include <stdint.h>

#define PT_READ   1u
#define PT_WRITE  2u
#define PT_RW     (PT_READ | PT_WRITE)
/* The page is another device's memory reached through this table only while
 * the table's device has peer access to that device (memory imported from a
 * process on another device); the checker is the table's user. */
#define PT_PEER   8u
#define PT_FLAGS  (PT_RW | PT_PEER)

#define PT_VA_BITS 48
#define PT_MAX_DEV 0x7ffu       /* largest device tag */

typedef struct PageTable PageTable;

/* One translation. */
typedef struct PtHit {
    uint64_t phys;          /* HBM address of the looked-up byte */
    uint64_t page_size;
    uint64_t page_left;     /* bytes from it to the end of its page */
    uint32_t dev;           /* device tag */
    uint32_t prot;          /* PT_READ / PT_WRITE / PT_PEER */
} PtHit;

PageTable *pt_new(void);
void pt_destroy(PageTable *t);

/* Maps [va, va + len) to the physically contiguous [phys, phys + len) of device
 * `dev` in pages of page_size (4 KiB, 2 MiB or 1 GiB); va, len and phys must be
 * multiples of it.  False, and nothing mapped, on bad arguments or when any
 * page of the range is already mapped. */
bool pt_map(PageTable *t, uint64_t va, uint64_t len, uint64_t page_size, uint32_t dev,
            uint64_t phys, uint32_t prot);
/* Unmaps every page that starts in [va, va + len); returns the pages removed. */
uint64_t pt_unmap(PageTable *t, uint64_t va, uint64_t len);
/* Sets the rights of every page of [va, va + len), which must all be mapped
 * and not cut by the range's ends; false, and nothing changed, otherwise. */
bool pt_protect(PageTable *t, uint64_t va, uint64_t len, uint32_t prot);

void pt_read_lock(PageTable *t);
void pt_read_unlock(PageTable *t);
/* Translates va (caller holds the read lock); false when it is not mapped. */
bool pt_lookup(PageTable *t, uint64_t va, PtHit *out);
/* As pt_lookup, taking the read lock itself. */
bool pt_translate(PageTable *t, uint64_t va, PtHit *out);

/* Leaf entries and tables currently allocated (for tests and reports). */
uint64_t pt_leaves(PageTable *t);
uint64_t pt_tables(PageTable *t);

#endif
