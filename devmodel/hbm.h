/*
 * hbm.h - a device's HBM pool.
 *
 * Concepts: the pool has the profile's real capacity (64 GiB on A2 and A3) and
 * accounts for every page handed out, by page size (4 KiB normal, 2 MiB huge,
 * 1 GiB).  Backing is sparse (memory objects): the pool tells the truth about
 * what fits, the host pays only for touched pages.  Not thread-safe: the device
 * holds its lock around every call.
 */
#ifndef DEVMODEL_HBM_H
#define DEVMODEL_HBM_H

#include <stdbool.h>
#include <stdint.h>

#define HBM_PAGE_NORMAL (4ull << 10)
#define HBM_PAGE_HUGE   (2ull << 20)
#define HBM_PAGE_1G     (1ull << 30)

typedef struct HbmPool {
    uint64_t capacity;
    uint64_t used;
    uint64_t used_normal;
    uint64_t used_huge;     /* 2 MiB and 1 GiB pages */
} HbmPool;

void hbm_init(HbmPool *p, uint64_t capacity);
/* Takes `bytes` (a multiple of page_size) out of the pool; false when it does not fit. */
bool hbm_take(HbmPool *p, uint64_t bytes, uint64_t page_size);
/* Returns what hbm_take took. */
void hbm_give(HbmPool *p, uint64_t bytes, uint64_t page_size);
uint64_t hbm_free_bytes(const HbmPool *p);

#endif
