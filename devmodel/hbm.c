/*
 * hbm.c - HBM pool accounting.
 */
#include "hbm.h"

void hbm_init(HbmPool *p, uint64_t capacity)
{
    *p = (HbmPool){ .capacity = capacity };
}

bool hbm_take(HbmPool *p, uint64_t bytes, uint64_t page_size)
{
    if (bytes > p->capacity - p->used)
        return false;
    p->used += bytes;
    if (page_size == HBM_PAGE_NORMAL)
        p->used_normal += bytes;
    else
        p->used_huge += bytes;
    return true;
}

void hbm_give(HbmPool *p, uint64_t bytes, uint64_t page_size)
{
    p->used -= bytes;
    if (page_size == HBM_PAGE_NORMAL)
        p->used_normal -= bytes;
    else
        p->used_huge -= bytes;
}

uint64_t hbm_free_bytes(const HbmPool *p)
{
    return p->capacity - p->used;
}
