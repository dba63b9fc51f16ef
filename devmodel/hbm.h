/*
 * hbm.h - a device's HBM pool: the physical page allocator.
 *
 * Concepts: the pool owns the physical HBM addresses [0, capacity) (64 GiB on
 * A2 and A3) and hands them out as pages of 4 KiB (normal), 2 MiB (huge) or
 * 1 GiB, each naturally aligned.  It is a three-level radix allocator: the
 * capacity is cut into 1 GiB chunks, a chunk is either whole (free, or one
 * 1 GiB page) or split into 512 blocks of 2 MiB, and a block is either whole
 * (free, or one huge page) or carved into 512 normal pages.  A bitmap per level
 * says what is free, and a few summary bitmaps and counters say where to look,
 * so an allocation costs O(pages taken) word operations and never a scan of the
 * pool.  A split block goes back to whole as soon as its last page is freed,
 * and a split chunk as soon as its last block is, so fragmentation is exactly
 * what the live allocations cause: a huge page fits only in a wholly free
 * aligned 2 MiB, a 1 GiB page only in a wholly free aligned 1 GiB.
 *
 * An allocation is N pages of one size; it need not be physically contiguous
 * and comes back as a short list of extents (runs of contiguous pages).  Pages
 * come first from the most fragmented level that can serve them (loose normal
 * pages of split blocks, then free blocks of split chunks, then whole chunks),
 * in address order, whole runs at a time: this keeps large pages available,
 * as Linux does by grouping small allocations, and gives one extent whenever
 * the memory is not fragmented.  We do not search for the best-fitting hole,
 * which would cost a scan.
 *
 * Backing is sparse (memory objects, see device.h): physical addresses are the
 * model's bookkeeping, the host pays only for touched pages.  Not thread-safe:
 * the device holds its lock around every call.
 */
#ifndef DEVMODEL_HBM_H
#define DEVMODEL_HBM_H

#include <stdbool.h>
#include <stdint.h>

#define HBM_PAGE_NORMAL (4ull << 10)
#define HBM_PAGE_HUGE   (2ull << 20)
#define HBM_PAGE_1G     (1ull << 30)

/* A run of physically contiguous pages: bytes [off, off + len) of the
 * allocation live at HBM addresses [phys, phys + len). */
typedef struct HbmExtent {
    uint64_t phys;
    uint64_t off;
    uint64_t len;
} HbmExtent;

/* What one allocation got, in allocation order. */
typedef struct HbmPages {
    uint64_t page_size;
    uint64_t bytes;
    uint32_t n;         /* extents */
    uint32_t cap;
    HbmExtent *ext;
} HbmPages;

typedef struct HbmChunk HbmChunk;

typedef struct HbmPool {
    uint64_t capacity;
    uint64_t used;
    uint64_t used_normal;
    uint64_t used_huge;     /* 2 MiB and 1 GiB pages */
    uint64_t used_1g;       /* the 1 GiB part of used_huge */
    uint32_t nchunks;
    uint32_t free_chunks;   /* whole and free: 1 GiB pages that fit */
    uint64_t free_blocks;   /* free 2 MiB blocks inside split chunks */
    HbmChunk **chunk;       /* split chunks; NULL for a whole one */
    uint64_t *whole_free;   /* chunk bitmap: whole and free */
    uint64_t *with_blocks;  /* chunk bitmap: split, with a free block */
    uint64_t *with_pages;   /* chunk bitmap: split, with a free normal page */
} HbmPool;

/* An empty pool of `capacity` bytes (rounded down to 4 KiB). */
void hbm_init(HbmPool *p, uint64_t capacity);
/* Frees the pool's bookkeeping; live allocations are forgotten. */
void hbm_destroy(HbmPool *p);
/* Takes `bytes` (a nonzero multiple of page_size) in pages of page_size and
 * fills *out, which hbm_free must get back; false, and nothing taken, when
 * they do not fit or the page size is not one of the three. */
bool hbm_alloc(HbmPool *p, uint64_t bytes, uint64_t page_size, HbmPages *out);
/* Returns every page of *pg to the pool and empties it. */
void hbm_free(HbmPool *p, HbmPages *pg);
/* The largest allocation of pages of page_size that fits now, in bytes. */
uint64_t hbm_largest(const HbmPool *p, uint64_t page_size);
uint64_t hbm_free_bytes(const HbmPool *p);
/* Bytes in use in pages of exactly page_size. */
uint64_t hbm_used_bytes(const HbmPool *p, uint64_t page_size);
/* The HBM address of byte `off` of an allocation; false past its end. */
bool hbm_phys(const HbmPages *pg, uint64_t off, uint64_t *phys);

#endif
