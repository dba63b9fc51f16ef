/*
 * test_hbm.c - the HBM page allocator (devmodel/hbm.h): accounting by page
 * size, page-size choice and natural alignment of the extents, exhaustion,
 * fragmentation, what still fits, and a randomised run against a reference
 * model of every 4 KiB page.
 */
#include "devmodel/hbm.h"

#include <CUnit/Basic.h>
#include "cu_run.h"
#include <stdint.h>
#include <stdlib.h>

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define N4K HBM_PAGE_NORMAL
#define N2M HBM_PAGE_HUGE
#define N1G HBM_PAGE_1G

static void check_pool(const HbmPool *p, uint64_t used, uint64_t normal, uint64_t huge)
{
    CU_ASSERT_EQUAL(p->used, used);
    CU_ASSERT_EQUAL(p->used_normal, normal);
    CU_ASSERT_EQUAL(p->used_huge, huge);
    CU_ASSERT_EQUAL(p->used, p->used_normal + p->used_huge);
    CU_ASSERT_EQUAL(hbm_free_bytes(p), p->capacity - used);
    CU_ASSERT_EQUAL(hbm_used_bytes(p, N4K), normal);
    CU_ASSERT_EQUAL(hbm_used_bytes(p, N2M) + hbm_used_bytes(p, N1G), huge);
}

/* The extents are well formed: aligned, in allocation order, inside the pool. */
static void check_extents(const HbmPool *p, const HbmPages *a, uint64_t bytes, uint64_t page)
{
    CU_ASSERT_EQUAL(a->page_size, page);
    CU_ASSERT_EQUAL(a->bytes, bytes);
    CU_ASSERT_TRUE(a->n >= 1 && a->n <= a->cap);
    uint64_t off = 0;
    for (uint32_t i = 0; i < a->n; i++) {
        const HbmExtent *e = &a->ext[i];
        CU_ASSERT_EQUAL(e->phys % page, 0);
        CU_ASSERT_EQUAL(e->len % page, 0);
        CU_ASSERT_TRUE(e->len > 0);
        CU_ASSERT_EQUAL(e->off, off);
        CU_ASSERT_TRUE(e->phys + e->len <= p->capacity);
        /* adjacent runs would have been merged */
        if (i > 0)
            CU_ASSERT_NOT_EQUAL(a->ext[i - 1].phys + a->ext[i - 1].len, e->phys);
        off += e->len;
    }
    CU_ASSERT_EQUAL(off, bytes);
}

static HbmPages must_alloc(HbmPool *p, uint64_t bytes, uint64_t page)
{
    HbmPages a;
    CU_ASSERT_TRUE_FATAL(hbm_alloc(p, bytes, page, &a));
    check_extents(p, &a, bytes, page);
    return a;
}

/* A refused allocation takes nothing and leaves *out empty. */
static void must_not_fit(HbmPool *p, uint64_t bytes, uint64_t page)
{
    HbmPool before = *p;
    HbmPages a = { .n = 7 };
    CU_ASSERT_FALSE(hbm_alloc(p, bytes, page, &a));
    CU_ASSERT_EQUAL(a.n, 0);
    CU_ASSERT_PTR_NULL(a.ext);
    CU_ASSERT_EQUAL(p->used, before.used);
    CU_ASSERT_EQUAL(p->free_chunks, before.free_chunks);
    CU_ASSERT_EQUAL(p->free_blocks, before.free_blocks);
}

static void check_largest(const HbmPool *p, uint64_t normal, uint64_t huge, uint64_t g1)
{
    CU_ASSERT_EQUAL(hbm_largest(p, N4K), normal);
    CU_ASSERT_EQUAL(hbm_largest(p, N2M), huge);
    CU_ASSERT_EQUAL(hbm_largest(p, N1G), g1);
}

/* ---- accounting ---- */

static void test_init(void)
{
    HbmPool p = { .capacity = 1, .used = 2, .used_normal = 3, .used_huge = 4 };
    hbm_init(&p, 64 * GiB);
    CU_ASSERT_EQUAL(p.capacity, 64 * GiB);
    CU_ASSERT_EQUAL(p.nchunks, 64);
    check_pool(&p, 0, 0, 0);
    CU_ASSERT_EQUAL(hbm_free_bytes(&p), 64 * GiB);
    check_largest(&p, 64 * GiB, 64 * GiB, 64 * GiB);
    CU_ASSERT_EQUAL(hbm_largest(&p, 8 * KiB), 0);
    hbm_destroy(&p);
}

static void test_take_give_by_page_size(void)
{
    HbmPool p;
    hbm_init(&p, 64 * GiB);

    HbmPages n = must_alloc(&p, 16 * HBM_PAGE_NORMAL, HBM_PAGE_NORMAL);
    check_pool(&p, 64 << 10, 64 << 10, 0);
    HbmPages h = must_alloc(&p, 3 * HBM_PAGE_HUGE, HBM_PAGE_HUGE);
    check_pool(&p, (64 << 10) + 6 * MiB, 64 << 10, 6 * MiB);
    /* 1 GiB pages count as huge pages */
    HbmPages g = must_alloc(&p, 2 * HBM_PAGE_1G, HBM_PAGE_1G);
    check_pool(&p, (64 << 10) + 6 * MiB + 2 * GiB, 64 << 10, 6 * MiB + 2 * GiB);
    CU_ASSERT_EQUAL(hbm_used_bytes(&p, N2M), 6 * MiB);
    CU_ASSERT_EQUAL(hbm_used_bytes(&p, N1G), 2 * GiB);
    CU_ASSERT_EQUAL(p.used_1g, 2 * GiB);

    hbm_free(&p, &h);
    CU_ASSERT_EQUAL(h.n, 0);
    CU_ASSERT_PTR_NULL(h.ext);
    check_pool(&p, (64 << 10) + 2 * GiB, 64 << 10, 2 * GiB);
    hbm_free(&p, &n);
    check_pool(&p, 2 * GiB, 0, 2 * GiB);
    hbm_free(&p, &g);
    check_pool(&p, 0, 0, 0);
    check_largest(&p, 64 * GiB, 64 * GiB, 64 * GiB);
    hbm_destroy(&p);
}

static void test_exhaustion(void)
{
    HbmPool p;
    hbm_init(&p, 8 * MiB);
    HbmPages six = must_alloc(&p, 6 * MiB, HBM_PAGE_HUGE);
    /* 4 MiB do not fit in 2 MiB: refused and nothing changes */
    must_not_fit(&p, 4 * MiB, HBM_PAGE_HUGE);
    must_not_fit(&p, 2 * MiB + HBM_PAGE_NORMAL, HBM_PAGE_NORMAL);
    must_not_fit(&p, GiB, HBM_PAGE_1G);
    check_pool(&p, 6 * MiB, 0, 6 * MiB);
    /* but the remaining 2 MiB do, in normal pages: 511 of them, then one */
    HbmPages most = must_alloc(&p, 2 * MiB - HBM_PAGE_NORMAL, HBM_PAGE_NORMAL);
    HbmPages last = must_alloc(&p, HBM_PAGE_NORMAL, HBM_PAGE_NORMAL);
    check_pool(&p, 8 * MiB, 2 * MiB, 6 * MiB);
    CU_ASSERT_EQUAL(hbm_free_bytes(&p), 0);
    check_largest(&p, 0, 0, 0);
    must_not_fit(&p, HBM_PAGE_NORMAL, HBM_PAGE_NORMAL);
    must_not_fit(&p, HBM_PAGE_HUGE, HBM_PAGE_HUGE);
    check_pool(&p, 8 * MiB, 2 * MiB, 6 * MiB);
    /* giving back one page makes exactly that page available again */
    uint64_t where = last.ext[0].phys;
    hbm_free(&p, &last);
    check_largest(&p, HBM_PAGE_NORMAL, 0, 0);
    must_not_fit(&p, 2 * HBM_PAGE_NORMAL, HBM_PAGE_NORMAL);
    last = must_alloc(&p, HBM_PAGE_NORMAL, HBM_PAGE_NORMAL);
    CU_ASSERT_EQUAL(last.ext[0].phys, where);
    CU_ASSERT_EQUAL(hbm_free_bytes(&p), 0);
    hbm_free(&p, &most);
    hbm_free(&p, &last);
    /* the carved block is whole again */
    check_largest(&p, 2 * MiB, 2 * MiB, 0);
    hbm_free(&p, &six);
    check_pool(&p, 0, 0, 0);
    hbm_destroy(&p);
}

static void test_exact_capacity(void)
{
    HbmPool p;
    hbm_init(&p, 64 * GiB);
    must_not_fit(&p, 64 * GiB + HBM_PAGE_NORMAL, HBM_PAGE_NORMAL);
    must_not_fit(&p, 65 * GiB, HBM_PAGE_1G);
    HbmPages all = must_alloc(&p, 64 * GiB, HBM_PAGE_1G);
    CU_ASSERT_EQUAL(all.n, 1);
    CU_ASSERT_EQUAL(all.ext[0].phys, 0);
    check_pool(&p, 64 * GiB, 0, 64 * GiB);
    must_not_fit(&p, HBM_PAGE_NORMAL, HBM_PAGE_NORMAL);
    hbm_free(&p, &all);
    check_pool(&p, 0, 0, 0);

    /* filled with 2 MiB pages, one at a time, in address order */
    const unsigned n = (64 * GiB) / HBM_PAGE_HUGE;
    HbmPages *v = calloc(n + 1, sizeof(*v));
    unsigned got = 0, misplaced = 0;
    while (got <= n && hbm_alloc(&p, HBM_PAGE_HUGE, HBM_PAGE_HUGE, &v[got])) {
        misplaced += v[got].n != 1 || v[got].ext[0].phys != got * HBM_PAGE_HUGE;
        got++;
    }
    CU_ASSERT_EQUAL(got, n);
    CU_ASSERT_EQUAL(misplaced, 0);
    CU_ASSERT_EQUAL(hbm_free_bytes(&p), 0);
    for (unsigned i = 0; i < got; i++)
        hbm_free(&p, &v[i]);
    check_pool(&p, 0, 0, 0);
    check_largest(&p, 64 * GiB, 64 * GiB, 64 * GiB);
    free(v);

    /* and with normal pages in one allocation: one extent, the whole pool */
    all = must_alloc(&p, 64 * GiB, HBM_PAGE_NORMAL);
    CU_ASSERT_EQUAL(all.n, 1);
    check_largest(&p, 0, 0, 0);
    hbm_free(&p, &all);
    check_largest(&p, 64 * GiB, 64 * GiB, 64 * GiB);
    hbm_destroy(&p);
}

/* Requests that would overflow a naive used + bytes <= capacity check. */
static void test_no_overflow(void)
{
    HbmPool p;
    hbm_init(&p, 64 * GiB);
    HbmPages g = must_alloc(&p, 1 * GiB, HBM_PAGE_1G);
    must_not_fit(&p, UINT64_MAX, HBM_PAGE_NORMAL);
    must_not_fit(&p, UINT64_MAX - 1 * GiB + 1, HBM_PAGE_NORMAL);
    must_not_fit(&p, (UINT64_MAX & ~(HBM_PAGE_HUGE - 1)), HBM_PAGE_HUGE);
    must_not_fit(&p, (UINT64_MAX & ~(HBM_PAGE_1G - 1)), HBM_PAGE_1G);
    check_pool(&p, 1 * GiB, 0, 1 * GiB);
    /* not a multiple of the page, zero, or a page size we do not have */
    must_not_fit(&p, HBM_PAGE_NORMAL + 1, HBM_PAGE_NORMAL);
    must_not_fit(&p, HBM_PAGE_NORMAL, HBM_PAGE_HUGE);
    must_not_fit(&p, 0, HBM_PAGE_NORMAL);
    must_not_fit(&p, 64 * KiB, 64 * KiB);
    must_not_fit(&p, 0, 0);
    hbm_free(&p, &g);
    hbm_destroy(&p);
}

/* ---- placement ---- */

static void test_alignment_and_contiguity(void)
{
    HbmPool p;
    hbm_init(&p, 64 * GiB);
    /* a fresh pool gives one naturally aligned run for every page size */
    HbmPages n = must_alloc(&p, 5 * N4K, N4K);
    HbmPages h = must_alloc(&p, 7 * N2M, N2M);
    HbmPages g = must_alloc(&p, 3 * N1G, N1G);
    CU_ASSERT_EQUAL(n.n, 1);
    CU_ASSERT_EQUAL(h.n, 1);
    CU_ASSERT_EQUAL(g.n, 1);
    /* normal pages carved the first block, huge pages followed it in the same
     * 1 GiB chunk, and 1 GiB pages took the next whole chunks */
    CU_ASSERT_EQUAL(n.ext[0].phys, 0);
    CU_ASSERT_EQUAL(h.ext[0].phys, N2M);
    CU_ASSERT_EQUAL(g.ext[0].phys, 1 * GiB);
    check_largest(&p, 64 * GiB - 5 * N4K - 7 * N2M - 3 * GiB,
                  64 * GiB - 8 * N2M - 3 * GiB, 60 * GiB);

    /* more normal pages use the carved block's loose pages first */
    HbmPages n2 = must_alloc(&p, N4K, N4K);
    CU_ASSERT_EQUAL(n2.ext[0].phys, 5 * N4K);
    /* 2 MiB of normal pages: the 506 loose pages, then a fresh block */
    HbmPages n3 = must_alloc(&p, 512 * N4K, N4K);
    CU_ASSERT_EQUAL_FATAL(n3.n, 2);
    CU_ASSERT_EQUAL(n3.ext[0].phys, 6 * N4K);
    CU_ASSERT_EQUAL(n3.ext[0].len, 506 * N4K);
    CU_ASSERT_EQUAL(n3.ext[1].phys, 8 * N2M);
    CU_ASSERT_EQUAL(n3.ext[1].len, 6 * N4K);
    /* huge pages stay in the split chunk while it has free blocks */
    HbmPages h2 = must_alloc(&p, N2M, N2M);
    CU_ASSERT_EQUAL(h2.ext[0].phys, 9 * N2M);

    hbm_free(&p, &n);
    hbm_free(&p, &n3);
    hbm_free(&p, &h);
    hbm_free(&p, &g);
    hbm_free(&p, &h2);
    hbm_free(&p, &n2);
    check_pool(&p, 0, 0, 0);
    check_largest(&p, 64 * GiB, 64 * GiB, 64 * GiB);
    CU_ASSERT_EQUAL(p.free_chunks, 64);
    CU_ASSERT_EQUAL(p.free_blocks, 0); /* no chunk left split */
    hbm_destroy(&p);
}

/* Filled with 4 KiB pages, every other one freed: half the pool is free, but
 * not one 2 MiB page fits, let alone a 1 GiB one. */
static void test_checkerboard(void)
{
    HbmPool p;
    hbm_init(&p, 1 * GiB);
    const unsigned n = GiB / N4K;
    HbmPages *v = calloc(n, sizeof(*v));
    unsigned misplaced = 0;
    for (unsigned i = 0; i < n; i++) {
        CU_ASSERT_TRUE_FATAL(hbm_alloc(&p, N4K, N4K, &v[i]));
        misplaced += v[i].n != 1 || v[i].ext[0].phys != i * N4K;
    }
    CU_ASSERT_EQUAL(misplaced, 0);
    check_largest(&p, 0, 0, 0);
    for (unsigned i = 0; i < n; i += 2)
        hbm_free(&p, &v[i]);
    CU_ASSERT_EQUAL(hbm_free_bytes(&p), 512 * MiB);
    check_largest(&p, 512 * MiB, 0, 0);
    must_not_fit(&p, N2M, N2M);
    must_not_fit(&p, N1G, N1G);

    /* normal pages still fit, one extent per hole */
    HbmPages m = must_alloc(&p, 1 * MiB, N4K);
    CU_ASSERT_EQUAL_FATAL(m.n, 256);
    for (unsigned i = 0; i < m.n; i++)
        CU_ASSERT_EQUAL(m.ext[i].phys, 2 * i * N4K);
    hbm_free(&p, &m);

    /* one aligned 2 MiB block freed whole makes exactly one huge page fit */
    for (unsigned i = 512 * 7 + 1; i < 512 * 8; i += 2)
        hbm_free(&p, &v[i]);
    check_largest(&p, 512 * MiB + 1 * MiB, N2M, 0);
    HbmPages h = must_alloc(&p, N2M, N2M);
    CU_ASSERT_EQUAL(h.ext[0].phys, 7 * N2M);
    must_not_fit(&p, N2M, N2M);
    hbm_free(&p, &h);

    /* everything back: one 1 GiB page again */
    for (unsigned i = 1; i < n; i += 2)
        if (i < 512 * 7 || i >= 512 * 8)
            hbm_free(&p, &v[i]);
    check_pool(&p, 0, 0, 0);
    check_largest(&p, GiB, GiB, GiB);
    HbmPages g = must_alloc(&p, GiB, N1G);
    CU_ASSERT_EQUAL(g.ext[0].phys, 0);
    hbm_free(&p, &g);
    free(v);
    hbm_destroy(&p);
}

static bool keep_2m(unsigned i)
{
    return i % 512 == (i / 512 % 2 ? 511u : 0u);
}

/* A 1 GiB page fits only where a whole, aligned 1 GiB is free. */
static void test_1g_needs_aligned_whole_chunk(void)
{
    HbmPool p;
    hbm_init(&p, 64 * GiB);
    const unsigned n = (64 * GiB) / N2M;
    HbmPages *v = calloc(n, sizeof(*v));
    for (unsigned i = 0; i < n; i++)
        CU_ASSERT_TRUE_FATAL(hbm_alloc(&p, N2M, N2M, &v[i]));
    /* keep one huge page in every 1 GiB chunk: the first block of even
     * chunks, the last of odd ones */
    for (unsigned i = 0; i < n; i++)
        if (!keep_2m(i))
            hbm_free(&p, &v[i]);
    CU_ASSERT_EQUAL(hbm_free_bytes(&p), 64 * GiB - 64 * N2M);
    check_largest(&p, 64 * GiB - 64 * N2M, 64 * GiB - 64 * N2M, 0);
    /* [2 MiB, 2 GiB - 2 MiB) is free and nearly 2 GiB long, but no aligned
     * 1 GiB in it is whole */
    must_not_fit(&p, N1G, N1G);
    /* huge and normal pages use the space */
    HbmPages big = must_alloc(&p, 60 * GiB, N2M);
    hbm_free(&p, &big);

    hbm_free(&p, &v[5 * 512 + 511]);
    check_largest(&p, 64 * GiB - 63 * N2M, 64 * GiB - 63 * N2M, GiB);
    HbmPages g = must_alloc(&p, N1G, N1G);
    CU_ASSERT_EQUAL(g.ext[0].phys, 5 * GiB);
    must_not_fit(&p, N1G, N1G);
    hbm_free(&p, &g);

    /* free returns everything: the whole pool in 1 GiB pages, one run */
    for (unsigned i = 0; i < n; i++)
        if (keep_2m(i) && i != 5 * 512 + 511)
            hbm_free(&p, &v[i]);
    check_pool(&p, 0, 0, 0);
    HbmPages all = must_alloc(&p, 64 * GiB, N1G);
    CU_ASSERT_EQUAL(all.n, 1);
    hbm_free(&p, &all);
    free(v);
    hbm_destroy(&p);
}

/* A capacity that is not a multiple of 1 GiB or 2 MiB: the tail is usable in
 * the pages it can hold, and never as a larger page. */
static void test_partial_tail(void)
{
    HbmPool p;
    const uint64_t cap = 1 * GiB + 6 * MiB + 12 * KiB;
    hbm_init(&p, cap + 100);    /* rounded down to 4 KiB */
    CU_ASSERT_EQUAL(p.capacity, cap);
    CU_ASSERT_EQUAL(p.nchunks, 2);
    check_largest(&p, cap, GiB + 6 * MiB, GiB);
    HbmPages all = must_alloc(&p, cap, N4K);
    check_largest(&p, 0, 0, 0);
    must_not_fit(&p, N4K, N4K);
    hbm_free(&p, &all);
    check_largest(&p, cap, GiB + 6 * MiB, GiB);
    HbmPages h = must_alloc(&p, GiB + 6 * MiB, N2M);
    HbmPages t = must_alloc(&p, 12 * KiB, N4K);
    CU_ASSERT_EQUAL(t.ext[0].phys, GiB + 6 * MiB);
    must_not_fit(&p, N4K, N4K);
    hbm_free(&p, &h);
    hbm_free(&p, &t);
    check_pool(&p, 0, 0, 0);
    hbm_destroy(&p);

    /* smaller than one page of each size */
    hbm_init(&p, 12 * KiB);
    check_largest(&p, 12 * KiB, 0, 0);
    must_not_fit(&p, N2M, N2M);
    t = must_alloc(&p, 12 * KiB, N4K);
    hbm_free(&p, &t);
    hbm_destroy(&p);
    hbm_init(&p, 0);
    check_largest(&p, 0, 0, 0);
    must_not_fit(&p, N4K, N4K);
    hbm_destroy(&p);
}

static void test_phys(void)
{
    HbmPages pg = { .page_size = N4K, .bytes = 5 * N4K, .n = 3, .cap = 3,
                    .ext = (HbmExtent[]){ { 40 * N4K, 0, N4K },
                                          { 10 * N4K, N4K, 3 * N4K },
                                          { 90 * N4K, 4 * N4K, N4K } } };
    uint64_t phys = 0;
    const uint64_t want[5] = { 40, 10, 11, 12, 90 };
    for (unsigned i = 0; i < 5; i++) {
        CU_ASSERT_TRUE(hbm_phys(&pg, i * N4K + 123, &phys));
        CU_ASSERT_EQUAL(phys, want[i] * N4K + 123);
    }
    CU_ASSERT_FALSE(hbm_phys(&pg, 5 * N4K, &phys));
    CU_ASSERT_FALSE(hbm_phys(&pg, UINT64_MAX, &phys));
    HbmPages empty = { 0 };
    CU_ASSERT_FALSE(hbm_phys(&empty, 0, &phys));
}

/* ---- randomised, against a reference model of every 4 KiB page ---- */

#define REF_CAP  (3 * GiB + 10 * MiB + 20 * KiB)
#define REF_OPS  20000
#define REF_LIVE 400

typedef struct Ref {
    uint32_t *owner;        /* per 4 KiB page: live allocation id + 1, or 0 */
    uint32_t *block_used;   /* per 2 MiB block: pages in use */
    uint32_t *chunk_free;   /* per 1 GiB chunk: wholly free blocks */
    uint64_t pages, blocks_free, chunks_free;
    uint64_t used[3];       /* by page size: 4 KiB, 2 MiB, 1 GiB */
} Ref;

static unsigned size_index(uint64_t page)
{
    return page == N4K ? 0 : page == N2M ? 1 : 2;
}

/* Blocks and chunks that lie wholly inside the capacity can hold a page. */
static bool full_block(uint64_t b)
{
    return (b + 1) * N2M <= REF_CAP;
}

static bool full_chunk(uint64_t c)
{
    return (c + 1) * N1G <= REF_CAP;
}

/* Marks one allocation's pages as taken by `id`, or gives them back from it;
 * returns the pages that were not in the expected state: an overlap with
 * another live allocation, or pages outside the pool. */
static uint64_t ref_mark(Ref *r, const HbmPages *a, uint32_t id, bool take)
{
    uint64_t bad = 0;
    for (uint32_t x = 0; x < a->n; x++) {
        for (uint64_t pa = a->ext[x].phys; pa < a->ext[x].phys + a->ext[x].len; pa += N4K) {
            uint64_t pg = pa / N4K, b = pa / N2M, c = pa / N1G;
            if (pg >= r->pages || r->owner[pg] != (take ? 0 : id)) {
                bad++;
                continue;
            }
            r->owner[pg] = take ? id : 0;
            if (!full_block(b))
                continue;
            if (take && r->block_used[b]++ == 0) {
                r->blocks_free--;
                if (r->chunk_free[c]-- == 512 && full_chunk(c))
                    r->chunks_free--;
            } else if (!take && --r->block_used[b] == 0) {
                r->blocks_free++;
                if (++r->chunk_free[c] == 512 && full_chunk(c))
                    r->chunks_free++;
            }
        }
    }
    return bad;
}

static bool ref_fits(const Ref *r, uint64_t bytes, uint64_t page)
{
    uint64_t used = r->used[0] + r->used[1] + r->used[2];
    switch (page) {
    case N4K:
        return bytes <= REF_CAP - used;
    case N2M:
        return bytes / N2M <= r->blocks_free;
    default:
        return bytes / N1G <= r->chunks_free;
    }
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static void random_run(uint64_t seed)
{
    HbmPool p;
    hbm_init(&p, REF_CAP);
    Ref r = { .pages = REF_CAP / N4K };
    r.owner = calloc(r.pages, sizeof(*r.owner));
    r.block_used = calloc(REF_CAP / N2M + 1, sizeof(*r.block_used));
    r.chunk_free = calloc(REF_CAP / N1G + 1, sizeof(*r.chunk_free));
    for (uint64_t b = 0; full_block(b); b++) {
        r.blocks_free++;
        r.chunk_free[b / 512]++;
    }
    for (uint64_t c = 0; full_chunk(c); c++)
        r.chunks_free++;

    HbmPages *live = calloc(REF_LIVE, sizeof(*live));
    uint32_t *ids = calloc(REF_LIVE, sizeof(*ids));
    unsigned nlive = 0, fits = 0, refusals = 0, mismatches = 0, fragmented = 0;
    unsigned refused_despite_free_bytes = 0;
    uint64_t overlaps = 0;
    uint32_t next_id = 1;
    for (int op = 0; op < REF_OPS; op++) {
        bool do_alloc = nlive == 0 || (nlive < REF_LIVE && rnd(&seed) % 100 < 55);
        if (do_alloc) {
            uint64_t page, bytes, k = rnd(&seed) % 100;
            if (k < 60) {
                page = N4K;
                bytes = (1 + rnd(&seed) % (k < 30 ? 16 : 4096)) * N4K;
            } else if (k < 95) {
                page = N2M;
                bytes = (1 + rnd(&seed) % 64) * N2M;
            } else {
                page = N1G;
                bytes = (1 + rnd(&seed) % 2) * N1G;
            }
            bool expect = ref_fits(&r, bytes, page);
            HbmPages a;
            bool ok = hbm_alloc(&p, bytes, page, &a);
            mismatches += ok != expect;
            if (!ok) {
                refusals++;
                refused_despite_free_bytes += bytes <= hbm_free_bytes(&p);
                continue;
            }
            fits++;
            check_extents(&p, &a, bytes, page);
            fragmented += a.n > 1;
            ids[nlive] = next_id++;
            overlaps += ref_mark(&r, &a, ids[nlive], true);
            r.used[size_index(page)] += bytes;
            live[nlive++] = a;
        } else {
            unsigned i = (unsigned)(rnd(&seed) % nlive);
            overlaps += ref_mark(&r, &live[i], ids[i], false);
            r.used[size_index(live[i].page_size)] -= live[i].bytes;
            hbm_free(&p, &live[i]);
            live[i] = live[--nlive];
            ids[i] = ids[nlive];
        }
        /* the pool tells the truth about what is used and what still fits */
        mismatches += p.used != r.used[0] + r.used[1] + r.used[2];
        mismatches += hbm_used_bytes(&p, N4K) != r.used[0];
        mismatches += hbm_used_bytes(&p, N2M) != r.used[1];
        mismatches += hbm_used_bytes(&p, N1G) != r.used[2];
        mismatches += hbm_largest(&p, N2M) != r.blocks_free * N2M;
        mismatches += hbm_largest(&p, N1G) != r.chunks_free * N1G;
    }
    CU_ASSERT_EQUAL(overlaps, 0);
    CU_ASSERT_EQUAL(mismatches, 0);
    /* the run did exercise exhaustion and fragmentation */
    CU_ASSERT_TRUE(fits > 1000);
    CU_ASSERT_TRUE(refusals > 100);
    CU_ASSERT_TRUE(fragmented > 100);
    CU_ASSERT_TRUE(refused_despite_free_bytes > 100);

    while (nlive > 0) {
        nlive--;
        overlaps += ref_mark(&r, &live[nlive], ids[nlive], false);
        hbm_free(&p, &live[nlive]);
    }
    CU_ASSERT_EQUAL(overlaps, 0);
    check_pool(&p, 0, 0, 0);
    check_largest(&p, REF_CAP, 3 * GiB + 10 * MiB, 3 * GiB);
    HbmPages g = must_alloc(&p, 3 * GiB, N1G);
    CU_ASSERT_EQUAL(g.n, 1);
    hbm_free(&p, &g);
    free(ids);
    free(live);
    free(r.owner);
    free(r.block_used);
    free(r.chunk_free);
    hbm_destroy(&p);
}

static void test_random_against_reference(void)
{
    random_run(0x5eed0001ull);
    random_run(0x5eed0002ull);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return CU_get_error();
    CU_pSuite s = CU_add_suite("hbm", NULL, NULL);
    if (!s || !CU_add_test(s, "init", test_init) ||
        !CU_add_test(s, "take/give by page size", test_take_give_by_page_size) ||
        !CU_add_test(s, "exhaustion", test_exhaustion) ||
        !CU_add_test(s, "exact capacity", test_exact_capacity) ||
        !CU_add_test(s, "no overflow", test_no_overflow) ||
        !CU_add_test(s, "alignment and contiguity", test_alignment_and_contiguity) ||
        !CU_add_test(s, "checkerboard of 4 KiB pages", test_checkerboard) ||
        !CU_add_test(s, "1 GiB needs a whole aligned chunk", test_1g_needs_aligned_whole_chunk) ||
        !CU_add_test(s, "partial tail", test_partial_tail) ||
        !CU_add_test(s, "phys", test_phys) ||
        !CU_add_test(s, "random against a reference", test_random_against_reference)) {
        CU_cleanup_registry();
        return 1;
    }
    return cu_run_all();
}
