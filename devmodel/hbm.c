/*
 * hbm.c - the HBM page allocator: 1 GiB chunks, split into 2 MiB blocks,
 * carved into 4 KiB pages, with a free bitmap per level (see hbm.h).
 */
#include "hbm.h"

#include <glib.h>

#define PER_LEVEL   512u                /* blocks per chunk, pages per block */
#define LEVEL_WORDS (PER_LEVEL / 64)
#define CHUNK_SHIFT 30
#define BLOCK_SHIFT 21
#define PAGE_SHIFT  12

/*
 * A split chunk.  Only the three block bitmaps are set up when a chunk is
 * split; a block's page bitmap and count are set up when that block is carved,
 * so splitting does not clear 33 KiB (2 MiB pages are the hot path).
 */
struct HbmChunk {
    uint64_t free_blocks[LEVEL_WORDS];  /* whole and free */
    uint64_t carved[LEVEL_WORDS];       /* split into normal pages */
    uint64_t loose[LEVEL_WORDS];        /* carved, with a free page */
    uint32_t nfree_blocks;
    uint16_t nfree_pages[PER_LEVEL];    /* of carved blocks */
    uint64_t page_free[PER_LEVEL][LEVEL_WORDS];
};

/* ---- bitmaps ---- */

static inline bool bm_test(const uint64_t *bm, size_t i)
{
    return bm[i / 64] >> (i % 64) & 1;
}

static inline void bm_set(uint64_t *bm, size_t i)
{
    bm[i / 64] |= 1ull << (i % 64);
}

static inline void bm_clear(uint64_t *bm, size_t i)
{
    bm[i / 64] &= ~(1ull << (i % 64));
}

/* The first index >= from in [0, n) whose bit equals `set`, or n. */
static size_t bm_next(const uint64_t *bm, size_t n, size_t from, bool set)
{
    if (from >= n)
        return n;
    size_t w = from / 64;
    uint64_t flip = set ? 0 : ~0ull;
    uint64_t x = (bm[w] ^ flip) & (~0ull << (from % 64));
    while (!x) {
        if (++w * 64 >= n)
            return n;
        x = bm[w] ^ flip;
    }
    size_t i = w * 64 + (size_t)__builtin_ctzll(x);
    return i < n ? i : n;
}

/* Sets (set) or clears bits [lo, hi). */
static void bm_fill(uint64_t *bm, size_t lo, size_t hi, bool set)
{
    while (lo < hi) {
        size_t w = lo / 64, b = lo % 64;
        size_t k = hi - lo < 64 - b ? hi - lo : 64 - b;
        uint64_t m = (k == 64 ? ~0ull : ((1ull << k) - 1)) << b;
        bm[w] = set ? bm[w] | m : bm[w] & ~m;
        lo += k;
    }
}

/* True when every bit of [lo, hi) is clear: pages given back were in use. */
static bool bm_none(const uint64_t *bm, size_t lo, size_t hi)
{
    return bm_next(bm, hi, lo, true) == hi;
}

/* ---- extents ---- */

static void emit(HbmPages *a, uint64_t phys, uint64_t len)
{
    HbmExtent *last = a->n ? &a->ext[a->n - 1] : NULL;
    if (last && last->phys + last->len == phys) {
        last->len += len;
    } else {
        if (a->n == a->cap) {
            a->cap = a->cap ? 2 * a->cap : 4;
            a->ext = g_renew(HbmExtent, a->ext, a->cap);
        }
        a->ext[a->n++] = (HbmExtent){ .phys = phys, .off = a->bytes, .len = len };
    }
    a->bytes += len;
}

static inline uint64_t addr(size_t c, size_t b, size_t i)
{
    return (uint64_t)c << CHUNK_SHIFT | (uint64_t)b << BLOCK_SHIFT | (uint64_t)i << PAGE_SHIFT;
}

/* ---- the pool ---- */

/* Makes block b of chunk c carved, with pages [lo, hi) free and the rest used. */
static void carve(HbmPool *p, size_t c, size_t b, size_t lo, size_t hi)
{
    HbmChunk *ch = p->chunk[c];
    bm_set(ch->carved, b);
    bm_fill(ch->page_free[b], 0, PER_LEVEL, false);
    bm_fill(ch->page_free[b], lo, hi, true);
    ch->nfree_pages[b] = (uint16_t)(hi - lo);
    if (hi > lo) {
        bm_set(ch->loose, b);
        bm_set(p->with_pages, c);
    }
}

static HbmChunk *split_chunk(HbmPool *p, size_t c, size_t nblocks)
{
    HbmChunk *ch = g_new(HbmChunk, 1);
    bm_fill(ch->free_blocks, 0, PER_LEVEL, false);
    bm_fill(ch->free_blocks, 0, nblocks, true);
    bm_fill(ch->carved, 0, PER_LEVEL, false);
    bm_fill(ch->loose, 0, PER_LEVEL, false);
    ch->nfree_blocks = (uint32_t)nblocks;
    p->chunk[c] = ch;
    p->free_blocks += nblocks;
    if (nblocks)
        bm_set(p->with_blocks, c);
    return ch;
}

void hbm_init(HbmPool *p, uint64_t capacity)
{
    capacity &= ~(HBM_PAGE_NORMAL - 1);
    size_t nchunks = (size_t)((capacity + HBM_PAGE_1G - 1) >> CHUNK_SHIFT);
    size_t words = (nchunks + 63) / 64;
    *p = (HbmPool){
        .capacity = capacity,
        .nchunks = (uint32_t)nchunks,
        .chunk = g_new0(HbmChunk *, nchunks),
        .whole_free = g_new0(uint64_t, words),
        .with_blocks = g_new0(uint64_t, words),
        .with_pages = g_new0(uint64_t, words),
    };
    size_t whole = (size_t)(capacity >> CHUNK_SHIFT);
    bm_fill(p->whole_free, 0, whole, true);
    p->free_chunks = (uint32_t)whole;
    /*
     * A last, partial chunk stays split for good: the blocks past the capacity
     * look used and are never freed, so it never counts as a whole 1 GiB.  The
     * same goes for a last, partial block.
     */
    uint64_t tail = capacity & (HBM_PAGE_1G - 1);
    if (tail) {
        split_chunk(p, whole, (size_t)(tail >> BLOCK_SHIFT));
        size_t pages = (size_t)((tail & (HBM_PAGE_HUGE - 1)) >> PAGE_SHIFT);
        if (pages)
            carve(p, whole, (size_t)(tail >> BLOCK_SHIFT), 0, pages);
    }
}

void hbm_destroy(HbmPool *p)
{
    for (size_t c = 0; c < p->nchunks; c++)
        g_free(p->chunk[c]);
    g_free(p->chunk);
    g_free(p->whole_free);
    g_free(p->with_blocks);
    g_free(p->with_pages);
    *p = (HbmPool){ 0 };
}

uint64_t hbm_largest(const HbmPool *p, uint64_t page_size)
{
    switch (page_size) {
    case HBM_PAGE_NORMAL:
        return p->capacity - p->used;
    case HBM_PAGE_HUGE:
        return ((uint64_t)p->free_chunks * PER_LEVEL + p->free_blocks) << BLOCK_SHIFT;
    case HBM_PAGE_1G:
        return (uint64_t)p->free_chunks << CHUNK_SHIFT;
    default:
        return 0;
    }
}

uint64_t hbm_free_bytes(const HbmPool *p)
{
    return p->capacity - p->used;
}

uint64_t hbm_used_bytes(const HbmPool *p, uint64_t page_size)
{
    switch (page_size) {
    case HBM_PAGE_NORMAL:
        return p->used_normal;
    case HBM_PAGE_HUGE:
        return p->used_huge - p->used_1g;
    case HBM_PAGE_1G:
        return p->used_1g;
    default:
        return 0;
    }
}

/* n whole chunks for 1 GiB pages, in address order. */
static void take_chunks(HbmPool *p, uint64_t n, HbmPages *a)
{
    size_t c = 0;
    while (n) {
        c = bm_next(p->whole_free, p->nchunks, c, true);
        size_t e = bm_next(p->whole_free, p->nchunks, c, false);
        size_t k = e - c < n ? e - c : (size_t)n;
        bm_fill(p->whole_free, c, c + k, false);
        p->free_chunks -= (uint32_t)k;
        emit(a, addr(c, 0, 0), (uint64_t)k << CHUNK_SHIFT);
        n -= k;
        c += k;
    }
}

/*
 * n free blocks: from split chunks first, then by splitting whole chunks, so
 * 1 GiB pages stay available.  tail_used == 0 takes them as huge pages;
 * otherwise they are carved into normal pages, all used except in the last
 * block, which uses tail_used of them (the rest become loose pages).
 */
static void take_blocks(HbmPool *p, uint64_t n, size_t tail_used, HbmPages *a)
{
    while (n) {
        size_t c = bm_next(p->with_blocks, p->nchunks, 0, true);
        if (c == p->nchunks) {
            c = bm_next(p->whole_free, p->nchunks, 0, true);
            bm_clear(p->whole_free, c);
            p->free_chunks--;
            split_chunk(p, c, PER_LEVEL);
        }
        HbmChunk *ch = p->chunk[c];
        size_t b = 0;
        while (n && ch->nfree_blocks) {
            b = bm_next(ch->free_blocks, PER_LEVEL, b, true);
            size_t e = bm_next(ch->free_blocks, PER_LEVEL, b, false);
            size_t k = e - b < n ? e - b : (size_t)n;
            bm_fill(ch->free_blocks, b, b + k, false);
            ch->nfree_blocks -= (uint32_t)k;
            p->free_blocks -= k;
            n -= k;
            uint64_t len = (uint64_t)k << BLOCK_SHIFT;
            for (size_t i = 0; tail_used && i < k; i++) {
                size_t used = n == 0 && i == k - 1 ? tail_used : PER_LEVEL;
                carve(p, c, b + i, used, PER_LEVEL);
                len -= (uint64_t)(PER_LEVEL - used) << PAGE_SHIFT;
            }
            emit(a, addr(c, b, 0), len);
            b += k;
        }
        if (!ch->nfree_blocks)
            bm_clear(p->with_blocks, c);
    }
}

/* Up to n free pages of carved blocks, in address order; returns how many. */
static uint64_t take_loose_pages(HbmPool *p, uint64_t n, HbmPages *a)
{
    uint64_t got = 0;
    size_t c = 0;
    while (got < n && (c = bm_next(p->with_pages, p->nchunks, c, true)) < p->nchunks) {
        HbmChunk *ch = p->chunk[c];
        size_t b = 0;
        while (got < n && (b = bm_next(ch->loose, PER_LEVEL, b, true)) < PER_LEVEL) {
            uint64_t *bits = ch->page_free[b];
            size_t i = 0;
            while (got < n && ch->nfree_pages[b]) {
                i = bm_next(bits, PER_LEVEL, i, true);
                size_t e = bm_next(bits, PER_LEVEL, i, false);
                size_t k = e - i < n - got ? e - i : (size_t)(n - got);
                bm_fill(bits, i, i + k, false);
                ch->nfree_pages[b] -= (uint16_t)k;
                emit(a, addr(c, b, i), (uint64_t)k << PAGE_SHIFT);
                got += k;
                i += k;
            }
            if (!ch->nfree_pages[b])
                bm_clear(ch->loose, b);
            b++;
        }
        if (bm_next(ch->loose, PER_LEVEL, 0, true) == PER_LEVEL)
            bm_clear(p->with_pages, c);
        c++;
    }
    return got;
}

static void account(HbmPool *p, uint64_t page_size, uint64_t bytes, bool take)
{
    uint64_t *by_size = page_size == HBM_PAGE_NORMAL ? &p->used_normal : &p->used_huge;
    if (take) {
        p->used += bytes;
        *by_size += bytes;
        if (page_size == HBM_PAGE_1G)
            p->used_1g += bytes;
    } else {
        p->used -= bytes;
        *by_size -= bytes;
        if (page_size == HBM_PAGE_1G)
            p->used_1g -= bytes;
    }
}

bool hbm_alloc(HbmPool *p, uint64_t bytes, uint64_t page_size, HbmPages *out)
{
    *out = (HbmPages){ .page_size = page_size };
    uint64_t largest = hbm_largest(p, page_size);
    if (largest == 0 || bytes == 0 || bytes % page_size || bytes > largest)
        return false;
    uint64_t n = bytes / page_size;
    if (page_size == HBM_PAGE_1G) {
        take_chunks(p, n, out);
    } else if (page_size == HBM_PAGE_HUGE) {
        take_blocks(p, n, 0, out);
    } else {
        uint64_t rest = n - take_loose_pages(p, n, out);
        if (rest) {
            size_t tail = (size_t)(rest % PER_LEVEL);
            take_blocks(p, (rest + PER_LEVEL - 1) / PER_LEVEL, tail ? tail : PER_LEVEL, out);
        }
    }
    account(p, page_size, bytes, true);
    return true;
}

/* Chunk c has all its blocks free again: it becomes whole. */
static void merge_chunk(HbmPool *p, size_t c)
{
    g_free(p->chunk[c]);
    p->chunk[c] = NULL;
    p->free_blocks -= PER_LEVEL;
    bm_clear(p->with_blocks, c);
    bm_clear(p->with_pages, c);
    bm_set(p->whole_free, c);
    p->free_chunks++;
}

static void give_blocks(HbmPool *p, size_t c, size_t b, size_t k)
{
    HbmChunk *ch = p->chunk[c];
    g_assert(bm_none(ch->free_blocks, b, b + k) && bm_none(ch->carved, b, b + k));
    bm_fill(ch->free_blocks, b, b + k, true);
    ch->nfree_blocks += (uint32_t)k;
    p->free_blocks += k;
    bm_set(p->with_blocks, c);
    if (ch->nfree_blocks == PER_LEVEL)
        merge_chunk(p, c);
}

/* Pages [i, i + k) of block b of chunk c; a block all free becomes whole. */
static void give_pages(HbmPool *p, size_t c, size_t b, size_t i, size_t k)
{
    HbmChunk *ch = p->chunk[c];
    g_assert(ch && bm_test(ch->carved, b) && bm_none(ch->page_free[b], i, i + k));
    bm_fill(ch->page_free[b], i, i + k, true);
    ch->nfree_pages[b] += (uint16_t)k;
    if (ch->nfree_pages[b] == PER_LEVEL) {
        bm_clear(ch->loose, b);
        bm_clear(ch->carved, b);
        bool loose_left = bm_next(ch->loose, PER_LEVEL, 0, true) < PER_LEVEL;
        if (!loose_left)
            bm_clear(p->with_pages, c);
        give_blocks(p, c, b, 1);
    } else {
        bm_set(ch->loose, b);
        bm_set(p->with_pages, c);
    }
}

void hbm_free(HbmPool *p, HbmPages *pg)
{
    for (uint32_t x = 0; x < pg->n; x++) {
        uint64_t at = pg->ext[x].phys, end = at + pg->ext[x].len;
        while (at < end) {
            size_t c = (size_t)(at >> CHUNK_SHIFT);
            size_t b = (size_t)(at >> BLOCK_SHIFT) % PER_LEVEL;
            size_t i = (size_t)(at >> PAGE_SHIFT) % PER_LEVEL;
            uint64_t step;
            if (pg->page_size == HBM_PAGE_1G) {
                g_assert(!p->chunk[c] && !bm_test(p->whole_free, c));
                bm_set(p->whole_free, c);
                p->free_chunks++;
                step = HBM_PAGE_1G;
            } else if (pg->page_size == HBM_PAGE_HUGE) {
                /* one chunk's worth of the run at a time */
                uint64_t k = MIN((end - at) >> BLOCK_SHIFT, PER_LEVEL - b);
                give_blocks(p, c, b, (size_t)k);
                step = k << BLOCK_SHIFT;
            } else {
                uint64_t k = MIN((end - at) >> PAGE_SHIFT, PER_LEVEL - i);
                give_pages(p, c, b, i, (size_t)k);
                step = k << PAGE_SHIFT;
            }
            at += step;
        }
    }
    account(p, pg->page_size, pg->bytes, false);
    g_free(pg->ext);
    *pg = (HbmPages){ 0 };
}

bool hbm_phys(const HbmPages *pg, uint64_t off, uint64_t *phys)
{
    if (off >= pg->bytes)
        return false;
    uint32_t lo = 0, hi = pg->n;    /* the extent holding off is in [lo, hi) */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (pg->ext[mid].off <= off)
            lo = mid;
        else
            hi = mid;
    }
    *phys = pg->ext[lo].phys + (off - pg->ext[lo].off);
    return true;
}
