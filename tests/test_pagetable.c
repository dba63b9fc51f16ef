/*
 * test_pagetable.c - the device page table (devmodel/pagetable.h): map,
 * translate and unmap in every page size, overlap refusal in every direction,
 * argument checks, unmap and protect semantics, table allocation and freeing,
 * a large mapping, readers racing a writer, and a randomised run against a
 * reference model that knows every page (and from it the exact number of
 * tables the tree must hold).
 */
#include "devmodel/pagetable.h"

#include <CUnit/Basic.h>
#include "cu_run.h"
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define VA_END (1ull << PT_VA_BITS)

static const uint64_t page_sizes[3] = { 4 * KiB, 2 * MiB, 1 * GiB };

/* ---- helpers ---- */

/* va translates to exactly this. */
static void expect_hit(PageTable *t, uint64_t va, uint64_t phys, uint64_t page_size,
                       uint32_t dev, uint32_t prot)
{
    PtHit h = { 0 };
    bool ok = pt_translate(t, va, &h);
    CU_ASSERT_TRUE(ok);
    if (!ok) {
        fprintf(stderr, "  va %#llx: not mapped, expected phys %#llx\n",
                (unsigned long long)va, (unsigned long long)phys);
        return;
    }
    CU_ASSERT_EQUAL(h.phys, phys);
    CU_ASSERT_EQUAL(h.page_size, page_size);
    CU_ASSERT_EQUAL(h.page_left, page_size - va % page_size);
    CU_ASSERT_EQUAL(h.dev, dev);
    CU_ASSERT_EQUAL(h.prot, prot);
    if (h.phys != phys || h.page_size != page_size || h.dev != dev || h.prot != prot)
        fprintf(stderr, "  va %#llx: phys %#llx size %#llx dev %u prot %u, expected %#llx %#llx %u %u\n",
                (unsigned long long)va, (unsigned long long)h.phys,
                (unsigned long long)h.page_size, h.dev, h.prot, (unsigned long long)phys,
                (unsigned long long)page_size, dev, prot);
}

static void expect_miss(PageTable *t, uint64_t va)
{
    PtHit h = { 0 };
    bool ok = pt_translate(t, va, &h);
    CU_ASSERT_FALSE(ok);
    if (ok)
        fprintf(stderr, "  va %#llx: unexpectedly mapped to %#llx\n", (unsigned long long)va,
                (unsigned long long)h.phys);
}

/* Every byte-offset class of every page of a mapping: first byte, second,
 * middle, last. */
static void expect_range(PageTable *t, uint64_t va, uint64_t len, uint64_t page_size,
                         uint32_t dev, uint64_t phys, uint32_t prot)
{
    for (uint64_t p = 0; p < len; p += page_size) {
        const uint64_t offs[] = { 0, 1, page_size / 2, page_size - 1 };
        for (unsigned k = 0; k < 4; k++)
            expect_hit(t, va + p + offs[k], phys + p + offs[k], page_size, dev, prot);
    }
}

static uint64_t rng_state;

static uint64_t rnd_r(uint64_t *s)
{
    /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static uint64_t rnd(void)
{
    return rnd_r(&rng_state);
}

/* ---- basics, per page size ---- */

static void test_new_is_empty(void)
{
    PageTable *t = pt_new();
    CU_ASSERT_EQUAL(pt_leaves(t), 0);
    CU_ASSERT_EQUAL(pt_tables(t), 0);
    expect_miss(t, 0);
    expect_miss(t, 0x12345000);
    expect_miss(t, VA_END - 1);
    expect_miss(t, VA_END);
    expect_miss(t, UINT64_MAX);
    CU_ASSERT_EQUAL(pt_unmap(t, 0, VA_END), 0);
    CU_ASSERT_FALSE(pt_protect(t, 0, 4 * KiB, PT_READ));
    pt_destroy(t);
    pt_destroy(NULL); /* harmless */
}

/* Three pages of each size: every offset class, page_left, tags, rights, the
 * bytes just outside, the tables allocated, and all of it gone after unmap. */
static void test_map_translate_unmap_each_size(void)
{
    /* base addresses chosen so the three pages share their last-level table */
    const uint64_t vas[3] = { 1 * GiB + 10 * 4 * KiB, 7 * GiB + 5 * 2 * MiB, 7 * GiB };
    const uint64_t tables[3] = { 4, 3, 2 };
    const uint32_t prots[3] = { PT_READ, PT_WRITE, PT_RW };
    for (int i = 0; i < 3; i++) {
        uint64_t S = page_sizes[i], va = vas[i], len = 3 * S;
        uint64_t phys = 40 * GiB + 2 * S; /* aligned to S, not to anything bigger */
        uint32_t dev = 5 + (uint32_t)i;
        PageTable *t = pt_new();
        CU_ASSERT_TRUE_FATAL(pt_map(t, va, len, S, dev, phys, prots[i]));
        CU_ASSERT_EQUAL(pt_leaves(t), 3);
        CU_ASSERT_EQUAL(pt_tables(t), tables[i]);
        expect_range(t, va, len, S, dev, phys, prots[i]);
        expect_miss(t, va - 1);
        expect_miss(t, va + len);
        expect_miss(t, va - S);
        expect_miss(t, va + len + S - 1);

        /* pt_lookup under an explicit read lock agrees with pt_translate */
        PtHit h = { 0 };
        pt_read_lock(t);
        CU_ASSERT_TRUE(pt_lookup(t, va + S + 123, &h));
        CU_ASSERT_FALSE(pt_lookup(t, va + len, &h));
        pt_read_unlock(t);

        CU_ASSERT_EQUAL(pt_unmap(t, va, len), 3);
        CU_ASSERT_EQUAL(pt_leaves(t), 0);
        CU_ASSERT_EQUAL(pt_tables(t), 0);
        for (uint64_t p = 0; p < len; p += S) {
            expect_miss(t, va + p);
            expect_miss(t, va + p + S - 1);
        }
        /* the same range maps again after being freed */
        CU_ASSERT_TRUE(pt_map(t, va, len, S, dev, phys, prots[i]));
        expect_range(t, va, len, S, dev, phys, prots[i]);
        pt_destroy(t); /* with pages still mapped: frees everything (ASan) */
    }
}

/* Tags and rights round-trip in all their values, and the extremes of the
 * address space map. */
static void test_tags_rights_extremes(void)
{
    PageTable *t = pt_new();
    for (uint32_t p = 0; p <= PT_RW; p++)
        CU_ASSERT_TRUE(pt_map(t, 0x100000 + p * 4 * KiB, 4 * KiB, 4 * KiB, p, 0, p));
    for (uint32_t p = 0; p <= PT_RW; p++)
        expect_hit(t, 0x100000 + p * 4 * KiB + 7, 7, 4 * KiB, p, p);

    /* the largest tag, the highest physical page (entries hold physical
     * address bits 12-51) */
    const uint64_t hiphys = (1ull << 52) - 4 * KiB;
    CU_ASSERT_TRUE(pt_map(t, 0x200000, 4 * KiB, 4 * KiB, PT_MAX_DEV, hiphys, PT_RW));
    expect_hit(t, 0x200fff, hiphys + 0xfff, 4 * KiB, PT_MAX_DEV, PT_RW);

    /* VA 0 and the last page of the 48-bit space, in each size */
    CU_ASSERT_TRUE(pt_map(t, 0, 4 * KiB, 4 * KiB, 1, 0x5000, PT_READ));
    expect_hit(t, 0, 0x5000, 4 * KiB, 1, PT_READ);
    CU_ASSERT_TRUE(pt_map(t, VA_END - GiB, GiB, GiB, 2, 3 * GiB, PT_WRITE));
    expect_hit(t, VA_END - 1, 4 * GiB - 1, GiB, 2, PT_WRITE);
    expect_hit(t, VA_END - GiB, 3 * GiB, GiB, 2, PT_WRITE);
    expect_miss(t, VA_END);
    expect_miss(t, VA_END + 5);
    expect_miss(t, UINT64_MAX);
    CU_ASSERT_TRUE(pt_map(t, VA_END - 2 * GiB, 2 * MiB, 2 * MiB, 3, 0, PT_READ));
    CU_ASSERT_TRUE(pt_map(t, VA_END - GiB - 4 * KiB, 4 * KiB, 4 * KiB, 3, 0, PT_READ));
    expect_hit(t, VA_END - GiB - 1, 4 * KiB - 1, 4 * KiB, 3, PT_READ);
    CU_ASSERT_EQUAL(pt_leaves(t), 9);
    CU_ASSERT_EQUAL(pt_unmap(t, 0, VA_END), 9);
    CU_ASSERT_EQUAL(pt_tables(t), 0);
    pt_destroy(t);
}

/* A table per level is allocated only where needed and freed as soon as its
 * last entry goes, including when a mapping straddles table boundaries. */
static void test_tables_alloc_and_free(void)
{
    PageTable *t = pt_new();
    /* four 4 KiB pages straddling a 2 MiB boundary: two last-level tables */
    uint64_t va = GiB + 2 * MiB - 2 * 4 * KiB;
    CU_ASSERT_TRUE(pt_map(t, va, 4 * 4 * KiB, 4 * KiB, 0, 0x10000, PT_RW));
    CU_ASSERT_EQUAL(pt_tables(t), 5);
    CU_ASSERT_EQUAL(pt_unmap(t, va, 2 * 4 * KiB), 2);
    CU_ASSERT_EQUAL(pt_tables(t), 4);
    expect_miss(t, va);
    expect_hit(t, va + 2 * 4 * KiB, 0x12000, 4 * KiB, 0, PT_RW);
    CU_ASSERT_EQUAL(pt_unmap(t, va, 4 * 4 * KiB), 2);
    CU_ASSERT_EQUAL(pt_tables(t), 0);

    /* two 1 GiB pages straddling a 512 GiB boundary: two level-2 tables */
    va = 512 * GiB - GiB;
    CU_ASSERT_TRUE(pt_map(t, va, 2 * GiB, GiB, 0, 0, PT_RW));
    CU_ASSERT_EQUAL(pt_tables(t), 3);
    expect_hit(t, 512 * GiB - 1, GiB - 1, GiB, 0, PT_RW);
    expect_hit(t, 512 * GiB, GiB, GiB, 0, PT_RW);
    CU_ASSERT_EQUAL(pt_unmap(t, 512 * GiB, GiB), 1);
    CU_ASSERT_EQUAL(pt_tables(t), 2);
    CU_ASSERT_EQUAL(pt_unmap(t, va, GiB), 1);
    CU_ASSERT_EQUAL(pt_tables(t), 0);

    /* a 4 KiB page and a 2 MiB page in the same 1 GiB share tables above */
    CU_ASSERT_TRUE(pt_map(t, 3 * GiB, 4 * KiB, 4 * KiB, 0, 0, PT_RW));
    CU_ASSERT_TRUE(pt_map(t, 3 * GiB + 2 * MiB, 2 * MiB, 2 * MiB, 0, 0, PT_RW));
    CU_ASSERT_EQUAL(pt_tables(t), 4);
    CU_ASSERT_EQUAL(pt_unmap(t, 3 * GiB, 4 * KiB), 1);
    CU_ASSERT_EQUAL(pt_tables(t), 3);
    CU_ASSERT_EQUAL(pt_unmap(t, 3 * GiB, GiB), 1);
    CU_ASSERT_EQUAL(pt_tables(t), 0);
    pt_destroy(t);
}

/* ---- mixed sizes and overlaps ---- */

/* Layout around B (1 GiB aligned):
 *   [B-8K, B)          two 4 KiB pages   dev 1  phys P4A
 *   [B, B+1G)          one 1 GiB page    dev 2  phys P1G
 *   [B+1G, B+1G+4M)    two 2 MiB pages   dev 3  phys P2M
 *   [X, X+16K)         four 4 KiB pages  dev 4  phys P4B,  X = B+1G+4M */
#define MB_B   (8 * GiB)
#define MB_X   (MB_B + GiB + 4 * MiB)
#define MB_P4A (0x1000000000ull + 0x3000)
#define MB_P1G (0x2000000000ull)
#define MB_P2M (0x3000000000ull + 6 * MiB)
#define MB_P4B (0x4000000000ull + 0x9000)

static void mixed_layout_intact(PageTable *t)
{
    CU_ASSERT_EQUAL(pt_leaves(t), 2 + 1 + 2 + 4);
    expect_miss(t, MB_B - 8 * KiB - 1);
    expect_range(t, MB_B - 8 * KiB, 8 * KiB, 4 * KiB, 1, MB_P4A, PT_READ);
    expect_range(t, MB_B, GiB, GiB, 2, MB_P1G, PT_RW);
    expect_range(t, MB_B + GiB, 4 * MiB, 2 * MiB, 3, MB_P2M, PT_WRITE);
    expect_range(t, MB_X, 16 * KiB, 4 * KiB, 4, MB_P4B, PT_RW);
    expect_miss(t, MB_X + 16 * KiB);
    /* the boundaries between the sizes */
    expect_hit(t, MB_B - 1, MB_P4A + 8 * KiB - 1, 4 * KiB, 1, PT_READ);
    expect_hit(t, MB_B, MB_P1G, GiB, 2, PT_RW);
    expect_hit(t, MB_B + GiB - 1, MB_P1G + GiB - 1, GiB, 2, PT_RW);
    expect_hit(t, MB_B + GiB, MB_P2M, 2 * MiB, 3, PT_WRITE);
    expect_hit(t, MB_X - 1, MB_P2M + 4 * MiB - 1, 2 * MiB, 3, PT_WRITE);
    expect_hit(t, MB_X, MB_P4B, 4 * KiB, 4, PT_RW);
}

/* The map is refused and nothing changes: same tables, same translations,
 * and free_va, a page of the refused range that was free, is still free. */
static void refused(PageTable *t, uint64_t va, uint64_t len, uint64_t size, uint64_t free_va,
                    const char *what)
{
    uint64_t tables = pt_tables(t);
    bool ok = pt_map(t, va, len, size, 9, 0x7700000000ull, PT_RW);
    CU_ASSERT_FALSE(ok);
    if (ok)
        fprintf(stderr, "  overlap not refused: %s\n", what);
    CU_ASSERT_EQUAL(pt_tables(t), tables);
    if (free_va != UINT64_MAX)
        expect_miss(t, free_va);
    mixed_layout_intact(t);
}

#define NONE UINT64_MAX

static void test_mixed_sizes_and_overlaps(void)
{
    PageTable *t = pt_new();
    CU_ASSERT_TRUE_FATAL(pt_map(t, MB_B, GiB, GiB, 2, MB_P1G, PT_RW));
    CU_ASSERT_TRUE_FATAL(pt_map(t, MB_B + GiB, 4 * MiB, 2 * MiB, 3, MB_P2M, PT_WRITE));
    CU_ASSERT_TRUE_FATAL(pt_map(t, MB_X, 16 * KiB, 4 * KiB, 4, MB_P4B, PT_RW));
    CU_ASSERT_TRUE_FATAL(pt_map(t, MB_B - 8 * KiB, 8 * KiB, 4 * KiB, 1, MB_P4A, PT_READ));
    mixed_layout_intact(t);

    /* smaller inside bigger */
    refused(t, MB_B, 4 * KiB, 4 * KiB, NONE, "4K at the start of a 1G page");
    refused(t, MB_B + 5 * 4 * KiB, 4 * KiB, 4 * KiB, NONE, "4K inside a 1G page");
    refused(t, MB_B + GiB - 4 * KiB, 4 * KiB, 4 * KiB, NONE, "4K at the end of a 1G page");
    refused(t, MB_B + 300 * MiB, 2 * MiB, 2 * MiB, NONE, "2M inside a 1G page");
    refused(t, MB_B + GiB - 2 * MiB, 2 * MiB, 2 * MiB, NONE, "2M at the end of a 1G page");
    refused(t, MB_B + GiB + 3 * MiB, 4 * KiB, 4 * KiB, NONE, "4K inside a 2M page");
    refused(t, MB_B + GiB + 2 * MiB, 2 * MiB, 2 * MiB, NONE, "2M on a 2M page");
    refused(t, MB_B, GiB, GiB, NONE, "1G on a 1G page");
    refused(t, MB_X + 4 * KiB, 4 * KiB, 4 * KiB, NONE, "4K on a 4K page");
    /* bigger over smaller */
    refused(t, MB_X, 2 * MiB, 2 * MiB, MB_X + 1 * MiB, "2M over four 4K pages at its start");
    refused(t, MB_B - 2 * MiB, 2 * MiB, 2 * MiB, MB_B - 2 * MiB, "2M over two 4K pages at its end");
    refused(t, MB_B - GiB, GiB, GiB, MB_B - GiB, "1G over two 4K pages at its end");
    refused(t, MB_B + GiB, GiB, GiB, MB_B + GiB + 512 * MiB, "1G over 2M and 4K pages");
    /* partially overlapping multi-page ranges, from either side */
    refused(t, MB_X - 8 * KiB, 8 * 4 * KiB, 4 * KiB, MB_X + 16 * KiB,
            "4K run from a 2M page into 4K pages");
    refused(t, MB_X + 12 * KiB, 8 * 4 * KiB, 4 * KiB, MB_X + 20 * KiB,
            "4K run whose first page is the last mapped one");
    refused(t, MB_B - 16 * KiB, 3 * 4 * KiB, 4 * KiB, MB_B - 16 * KiB,
            "4K run whose last page is the first mapped one");
    refused(t, MB_B - 4 * KiB, 2 * 4 * KiB, 4 * KiB, NONE, "4K run from a 4K page into a 1G page");
    refused(t, MB_B - 6 * MiB, 3 * 2 * MiB, 2 * MiB, MB_B - 6 * MiB,
            "2M run whose last page holds 4K pages");
    refused(t, MB_B + GiB - 4 * MiB, 3 * 2 * MiB, 2 * MiB, NONE, "2M run from a 1G page into a 2M page");
    refused(t, MB_B + GiB + 2 * MiB, 3 * 2 * MiB, 2 * MiB, MB_B + GiB + 6 * MiB,
            "2M run from a 2M page over 4K pages");
    refused(t, MB_B - GiB, 2 * GiB, GiB, MB_B - GiB, "1G run over 4K pages and a 1G page");
    refused(t, MB_B + GiB, 2 * GiB, GiB, MB_B + 2 * GiB, "1G run over 2M and 4K pages");
    refused(t, MB_B - 2 * GiB, 4 * GiB, GiB, MB_B - 2 * GiB, "1G run over everything");

    /* the gaps right next to each mapping are still free */
    CU_ASSERT_TRUE(pt_map(t, MB_X + 16 * KiB, 4 * KiB, 4 * KiB, 5, 0, PT_RW));
    CU_ASSERT_TRUE(pt_map(t, MB_X + 2 * MiB - 4 * KiB, 4 * KiB, 4 * KiB, 5, 0, PT_RW));
    CU_ASSERT_TRUE(pt_map(t, MB_X + 2 * MiB, 2 * MiB, 2 * MiB, 6, 0, PT_RW));
    CU_ASSERT_TRUE(pt_map(t, MB_B - 12 * KiB, 4 * KiB, 4 * KiB, 5, 0, PT_RW));
    CU_ASSERT_TRUE(pt_map(t, MB_B - 4 * MiB, 2 * MiB, 2 * MiB, 6, 0, PT_RW));
    CU_ASSERT_TRUE(pt_map(t, MB_B - 2 * GiB, GiB, GiB, 7, 0, PT_RW));
    CU_ASSERT_TRUE(pt_map(t, MB_B + 2 * GiB, GiB, GiB, 7, 0, PT_RW));
    CU_ASSERT_EQUAL(pt_leaves(t), 9 + 7);
    expect_hit(t, MB_B - 12 * KiB, 0, 4 * KiB, 5, PT_RW);
    expect_hit(t, MB_B - GiB - 1, GiB - 1, GiB, 7, PT_RW);
    expect_hit(t, MB_B - 4 * MiB + 5, 5, 2 * MiB, 6, PT_RW);

    CU_ASSERT_EQUAL(pt_unmap(t, MB_B - 2 * GiB, 5 * GiB), 16);
    CU_ASSERT_EQUAL(pt_leaves(t), 0);
    CU_ASSERT_EQUAL(pt_tables(t), 0);
    pt_destroy(t);
}

/* ---- argument checks ---- */

static void bad_map(PageTable *t, uint64_t va, uint64_t len, uint64_t size, uint32_t dev,
                    uint64_t phys, uint32_t prot, const char *what)
{
    bool ok = pt_map(t, va, len, size, dev, phys, prot);
    CU_ASSERT_FALSE(ok);
    if (ok) {
        fprintf(stderr, "  bad map accepted: %s\n", what);
        pt_unmap(t, va, len);
    }
    CU_ASSERT_EQUAL(pt_leaves(t), 1);
    CU_ASSERT_EQUAL(pt_tables(t), 3);
}

static void test_map_argument_checks(void)
{
    PageTable *t = pt_new();
    /* one mapped page, so "nothing changed" has something to compare against */
    CU_ASSERT_TRUE_FATAL(pt_map(t, 64 * GiB, 2 * MiB, 2 * MiB, 1, 0, PT_RW));
    const uint64_t K4 = 4 * KiB, M2 = 2 * MiB, G1 = GiB, va = 16 * GiB;

    bad_map(t, va + 0x800, K4, K4, 0, 0, PT_RW, "va misaligned for 4K");
    bad_map(t, va + 1, K4, K4, 0, 0, PT_RW, "va odd");
    bad_map(t, va + K4, M2, M2, 0, 0, PT_RW, "va misaligned for 2M");
    bad_map(t, va + M2, G1, G1, 0, 0, PT_RW, "va misaligned for 1G");
    bad_map(t, va, K4 + 1, K4, 0, 0, PT_RW, "len not a multiple of 4K");
    bad_map(t, va, 0x1800, K4, 0, 0, PT_RW, "len 1.5 pages");
    bad_map(t, va, K4, M2, 0, 0, PT_RW, "len 4K with 2M pages");
    bad_map(t, va, 3 * M2 + K4, M2, 0, 0, PT_RW, "len not a multiple of 2M");
    bad_map(t, va, M2, G1, 0, 0, PT_RW, "len 2M with 1G pages");
    bad_map(t, va, K4, K4, 0, 0x800, PT_RW, "phys misaligned for 4K");
    bad_map(t, va, M2, M2, 0, K4, PT_RW, "phys misaligned for 2M");
    bad_map(t, va, G1, G1, 0, M2, PT_RW, "phys misaligned for 1G");
    bad_map(t, va, 0, K4, 0, 0, PT_RW, "len 0");
    bad_map(t, va, 0, G1, 0, 0, PT_RW, "len 0, 1G");
    const uint64_t bad_sizes[] = { 0, 1, 2 * KiB, 8 * KiB, 64 * KiB, 1 * MiB, 4 * MiB,
                                   2 * GiB, 512 * GiB, K4 | M2, UINT64_MAX };
    for (unsigned i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++)
        bad_map(t, 0, 1024 * GiB, bad_sizes[i], 0, 0, PT_RW, "bad page size");
    /* wrap and beyond 48 bits */
    bad_map(t, UINT64_MAX - K4 + 1, 2 * K4, K4, 0, 0, PT_RW, "va range wraps");
    bad_map(t, K4, UINT64_MAX - K4 + 1, K4, 0, 0, PT_RW, "len wraps to va 0");
    bad_map(t, VA_END - K4, 2 * K4, K4, 0, 0, PT_RW, "range crosses 2^48");
    bad_map(t, VA_END - G1, 2 * G1, G1, 0, 0, PT_RW, "1G range crosses 2^48");
    bad_map(t, VA_END, K4, K4, 0, 0, PT_RW, "va at 2^48");
    bad_map(t, VA_END + G1, G1, G1, 0, 0, PT_RW, "1G above 2^48");
    bad_map(t, 1ull << 63, K4, K4, 0, 0, PT_RW, "va 2^63");
    bad_map(t, 0xffff800000000000ull, K4, K4, 0, 0, PT_RW, "sign-extended kernel-style va");
    bad_map(t, va, 2 * K4, K4, 0, UINT64_MAX - K4 + 1, PT_RW, "phys range wraps");
    /* an entry holds 52 physical address bits: more must not be truncated */
    bad_map(t, va, K4, K4, 0, 1ull << 52, PT_RW, "phys at 2^52");
    bad_map(t, va, 2 * K4, K4, 0, (1ull << 52) - K4, PT_RW, "phys range crosses 2^52");
    bad_map(t, va, G1, G1, 0, 1ull << 62, PT_RW, "phys 2^62");
    /* tags and rights */
    bad_map(t, va, K4, K4, PT_MAX_DEV + 1, 0, PT_RW, "dev > PT_MAX_DEV");
    bad_map(t, va, K4, K4, UINT32_MAX, 0, PT_RW, "dev all ones");
    bad_map(t, va, K4, K4, 0, 0, 4, "prot bit 2");
    bad_map(t, va, K4, K4, 0, 0, PT_RW | 16, "prot RW plus bit 4");
    bad_map(t, va, K4, K4, 0, 0, 0x80000000u, "prot bit 31");
    expect_miss(t, va);
    expect_hit(t, 64 * GiB + 5, 5, 2 * MiB, 1, PT_RW);

    /* the same arguments, fixed, are accepted */
    CU_ASSERT_TRUE(pt_map(t, va, K4, K4, PT_MAX_DEV, 0, 0));
    CU_ASSERT_TRUE(pt_map(t, va + M2, M2, M2, 0, M2, PT_RW));
    CU_ASSERT_TRUE(pt_map(t, va + G1, G1, G1, 0, G1, PT_READ));
    CU_ASSERT_EQUAL(pt_leaves(t), 4);
    pt_destroy(t);
}

static void test_protect_argument_checks(void)
{
    PageTable *t = pt_new();
    CU_ASSERT_TRUE_FATAL(pt_map(t, GiB, 4 * 4 * KiB, 4 * KiB, 3, 0x8000, PT_RW));
    CU_ASSERT_FALSE(pt_protect(t, GiB, 4 * KiB, 4));
    CU_ASSERT_FALSE(pt_protect(t, GiB, 4 * KiB, PT_READ | 0x100));
    CU_ASSERT_FALSE(pt_protect(t, GiB, UINT64_MAX, PT_READ));       /* wraps */
    CU_ASSERT_FALSE(pt_protect(t, GiB + 4 * KiB, UINT64_MAX - 4095, PT_READ));
    expect_range(t, GiB, 4 * 4 * KiB, 4 * KiB, 3, 0x8000, PT_RW);
    pt_destroy(t);
}

/* ---- unmap ---- */

static void test_unmap_whole_pages_only(void)
{
    PageTable *t = pt_new();
    const uint64_t A = 20 * GiB, C = 30 * GiB, G = 40 * GiB;
    CU_ASSERT_TRUE_FATAL(pt_map(t, A, 2 * 2 * MiB, 2 * MiB, 1, 0, PT_RW));
    CU_ASSERT_TRUE_FATAL(pt_map(t, C, 4 * 4 * KiB, 4 * KiB, 2, 0, PT_RW));
    CU_ASSERT_TRUE_FATAL(pt_map(t, G, GiB, GiB, 3, 0, PT_RW));

    /* nothing starts in these: the pages they cut stay */
    CU_ASSERT_EQUAL(pt_unmap(t, A + 1, 2 * MiB - 1), 0);
    CU_ASSERT_EQUAL(pt_unmap(t, A + 4 * KiB, 4 * KiB), 0);
    CU_ASSERT_EQUAL(pt_unmap(t, A + 2 * MiB - 1, 1), 0);
    CU_ASSERT_EQUAL(pt_unmap(t, C + 1, 4 * KiB - 1), 0);
    CU_ASSERT_EQUAL(pt_unmap(t, G + 4 * KiB, GiB - 4 * KiB), 0);
    CU_ASSERT_EQUAL(pt_unmap(t, G + GiB - 4 * KiB, 8 * KiB), 0);
    CU_ASSERT_EQUAL(pt_unmap(t, G - 4 * KiB, 4 * KiB), 0);  /* ends right before */
    CU_ASSERT_EQUAL(pt_unmap(t, A, 0), 0);                  /* empty range */
    CU_ASSERT_EQUAL(pt_unmap(t, VA_END, GiB), 0);           /* beyond 48 bits */
    CU_ASSERT_EQUAL(pt_leaves(t), 2 + 4 + 1);
    expect_range(t, A, 4 * MiB, 2 * MiB, 1, 0, PT_RW);
    expect_range(t, C, 16 * KiB, 4 * KiB, 2, 0, PT_RW);
    expect_range(t, G, GiB, GiB, 3, 0, PT_RW);

    /* a range starting mid-page removes the next page only */
    CU_ASSERT_EQUAL(pt_unmap(t, A + 4 * KiB, 2 * MiB), 1);
    expect_range(t, A, 2 * MiB, 2 * MiB, 1, 0, PT_RW);
    expect_miss(t, A + 2 * MiB);
    expect_miss(t, A + 4 * MiB - 1);
    /* a one-byte range at a page start removes that page */
    CU_ASSERT_EQUAL(pt_unmap(t, C + 4 * KiB, 1), 1);
    expect_miss(t, C + 4 * KiB);
    expect_hit(t, C + 4 * KiB - 1, 4 * KiB - 1, 4 * KiB, 2, PT_RW);
    expect_hit(t, C + 8 * KiB, 8 * KiB, 4 * KiB, 2, PT_RW);
    /* a range starting mid-page over the rest: 2 pages start in it */
    CU_ASSERT_EQUAL(pt_unmap(t, C + 100, GiB), 2);
    expect_hit(t, C, 0, 4 * KiB, 2, PT_RW);
    CU_ASSERT_EQUAL(pt_leaves(t), 1 + 1 + 1);
    /* the 1 GiB page with a one-byte range */
    CU_ASSERT_EQUAL(pt_unmap(t, G, 1), 1);
    expect_miss(t, G + GiB / 2);
    CU_ASSERT_EQUAL(pt_unmap(t, 0, VA_END), 2);
    CU_ASSERT_EQUAL(pt_tables(t), 0);

    /* the return value counts pages, whatever their size */
    CU_ASSERT_TRUE(pt_map(t, A, 10 * 4 * KiB, 4 * KiB, 0, 0, PT_RW));
    CU_ASSERT_TRUE(pt_map(t, A + 2 * MiB, 2 * 2 * MiB, 2 * MiB, 0, 0, PT_RW));
    CU_ASSERT_TRUE(pt_map(t, A + GiB, 3 * GiB, GiB, 0, 0, PT_RW));
    CU_ASSERT_EQUAL(pt_leaves(t), 15);
    CU_ASSERT_EQUAL(pt_unmap(t, A, 4 * GiB), 15);
    CU_ASSERT_EQUAL(pt_unmap(t, A, 4 * GiB), 0);
    CU_ASSERT_EQUAL(pt_leaves(t), 0);
    CU_ASSERT_EQUAL(pt_tables(t), 0);
    pt_destroy(t);
}

/* Empty stretches are skipped a table at a time, not a 4 KiB page at a time
 * (256 GiB is 64 Mi small pages; the whole space, 64 Gi). */
static void test_unmap_sparse_is_fast(void)
{
    PageTable *t = pt_new();
    const uint64_t R = 512 * GiB;
    CU_ASSERT_TRUE_FATAL(pt_map(t, R + 3 * GiB + 7 * 4 * KiB, 4 * KiB, 4 * KiB, 1, 0, PT_RW));
    CU_ASSERT_TRUE_FATAL(pt_map(t, R + 100 * GiB + 9 * 2 * MiB, 2 * MiB, 2 * MiB, 1, 0, PT_RW));
    CU_ASSERT_TRUE_FATAL(pt_map(t, R + 255 * GiB, GiB, GiB, 1, 0, PT_RW));
    /* just outside, on both sides */
    CU_ASSERT_TRUE_FATAL(pt_map(t, R - 4 * KiB, 4 * KiB, 4 * KiB, 2, 0, PT_RW));
    CU_ASSERT_TRUE_FATAL(pt_map(t, R + 256 * GiB, 4 * KiB, 4 * KiB, 2, 0, PT_RW));

    gint64 t0 = g_get_monotonic_time();
    uint64_t n = pt_unmap(t, R, 256 * GiB);
    gint64 us = g_get_monotonic_time() - t0;
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_TRUE(us < 250000);
    if (us >= 250000)
        fprintf(stderr, "  unmap of a sparse 256 GiB took %lld us\n", (long long)us);
    CU_ASSERT_EQUAL(pt_leaves(t), 2);
    expect_hit(t, R - 1, 4 * KiB - 1, 4 * KiB, 2, PT_RW);
    expect_hit(t, R + 256 * GiB, 0, 4 * KiB, 2, PT_RW);
    expect_miss(t, R + 255 * GiB);

    t0 = g_get_monotonic_time();
    n = pt_unmap(t, 0, VA_END);
    us = g_get_monotonic_time() - t0;
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_TRUE(us < 250000);
    CU_ASSERT_EQUAL(pt_tables(t), 0);
    /* and on an empty table */
    t0 = g_get_monotonic_time();
    CU_ASSERT_EQUAL(pt_unmap(t, 0, VA_END), 0);
    CU_ASSERT_TRUE(g_get_monotonic_time() - t0 < 250000);
    pt_destroy(t);
}

/* ---- protect ---- */

static void test_protect(void)
{
    PageTable *t = pt_new();
    const uint64_t A = 20 * GiB, C = 30 * GiB;
    CU_ASSERT_TRUE_FATAL(pt_map(t, A, 2 * 2 * MiB, 2 * MiB, 1, 0x40000000, PT_RW));

    /* ranges cutting a page: refused, nothing changed */
    CU_ASSERT_FALSE(pt_protect(t, A, 2 * MiB + 4 * KiB, PT_READ));
    CU_ASSERT_FALSE(pt_protect(t, A + 4 * KiB, 2 * MiB - 4 * KiB, PT_READ));
    CU_ASSERT_FALSE(pt_protect(t, A + 4 * KiB, 4 * MiB - 4 * KiB, PT_READ));
    CU_ASSERT_FALSE(pt_protect(t, A, 4 * MiB - 1, PT_READ));
    CU_ASSERT_FALSE(pt_protect(t, A + 1, 4 * MiB - 1, PT_READ));
    CU_ASSERT_FALSE(pt_protect(t, A, 4 * MiB + 4 * KiB, PT_READ)); /* runs past the end */
    CU_ASSERT_FALSE(pt_protect(t, A - 4 * KiB, 4 * MiB + 4 * KiB, PT_READ));
    expect_range(t, A, 4 * MiB, 2 * MiB, 1, 0x40000000, PT_RW);

    /* whole pages: one, then both, to none and back */
    CU_ASSERT_TRUE(pt_protect(t, A + 2 * MiB, 2 * MiB, PT_READ));
    expect_range(t, A, 2 * MiB, 2 * MiB, 1, 0x40000000, PT_RW);
    expect_range(t, A + 2 * MiB, 2 * MiB, 2 * MiB, 1, 0x40200000, PT_READ);
    CU_ASSERT_TRUE(pt_protect(t, A, 4 * MiB, PT_WRITE));
    expect_range(t, A, 4 * MiB, 2 * MiB, 1, 0x40000000, PT_WRITE);
    CU_ASSERT_TRUE(pt_protect(t, A, 4 * MiB, 0));
    /* mapped but not accessible: translates, with no rights */
    expect_range(t, A, 4 * MiB, 2 * MiB, 1, 0x40000000, 0);
    CU_ASSERT_EQUAL(pt_leaves(t), 2);
    /* and a no-access page is still "mapped" for overlap purposes */
    CU_ASSERT_FALSE(pt_map(t, A, 4 * KiB, 4 * KiB, 0, 0, PT_RW));
    CU_ASSERT_TRUE(pt_protect(t, A, 4 * MiB, PT_RW));
    expect_range(t, A, 4 * MiB, 2 * MiB, 1, 0x40000000, PT_RW);

    /* a hole in the range: refused, nothing changed */
    CU_ASSERT_TRUE_FATAL(pt_map(t, C, 2 * 4 * KiB, 4 * KiB, 2, 0x9000, PT_RW));
    CU_ASSERT_TRUE_FATAL(pt_map(t, C + 3 * 4 * KiB, 4 * KiB, 4 * KiB, 2, 0xc000, PT_RW));
    CU_ASSERT_FALSE(pt_protect(t, C, 4 * 4 * KiB, PT_READ));
    CU_ASSERT_FALSE(pt_protect(t, C, 4 * 4 * KiB, 0));
    CU_ASSERT_FALSE(pt_protect(t, C + 4 * KiB, 3 * 4 * KiB, PT_READ));
    CU_ASSERT_FALSE(pt_protect(t, C + 2 * 4 * KiB, 4 * KiB, PT_READ)); /* only the hole */
    CU_ASSERT_FALSE(pt_protect(t, C - 4 * KiB, 2 * 4 * KiB, PT_READ)); /* hole first */
    expect_range(t, C, 2 * 4 * KiB, 4 * KiB, 2, 0x9000, PT_RW);
    expect_range(t, C + 3 * 4 * KiB, 4 * KiB, 4 * KiB, 2, 0xc000, PT_RW);
    /* the part without the hole */
    CU_ASSERT_TRUE(pt_protect(t, C, 2 * 4 * KiB, PT_READ));
    expect_range(t, C, 2 * 4 * KiB, 4 * KiB, 2, 0x9000, PT_READ);
    expect_range(t, C + 3 * 4 * KiB, 4 * KiB, 4 * KiB, 2, 0xc000, PT_RW);

    /* a range of mixed page sizes, whole pages each */
    const uint64_t M = 50 * GiB;
    CU_ASSERT_TRUE_FATAL(pt_map(t, M, GiB, GiB, 3, 0, PT_RW));
    CU_ASSERT_TRUE_FATAL(pt_map(t, M + GiB, 2 * MiB, 2 * MiB, 3, GiB, PT_RW));
    CU_ASSERT_TRUE_FATAL(pt_map(t, M + GiB + 2 * MiB, 3 * 4 * KiB, 4 * KiB, 3, GiB + 2 * MiB, PT_RW));
    CU_ASSERT_FALSE(pt_protect(t, M, GiB + 2 * MiB + 2 * 4 * KiB + 1, PT_READ));
    CU_ASSERT_FALSE(pt_protect(t, M, GiB + 2 * MiB + 4 * 4 * KiB, PT_READ));
    expect_range(t, M, GiB, GiB, 3, 0, PT_RW);
    expect_range(t, M + GiB, 2 * MiB, 2 * MiB, 3, GiB, PT_RW);
    expect_range(t, M + GiB + 2 * MiB, 3 * 4 * KiB, 4 * KiB, 3, GiB + 2 * MiB, PT_RW);
    CU_ASSERT_TRUE(pt_protect(t, M, GiB + 2 * MiB + 3 * 4 * KiB, PT_READ));
    expect_range(t, M, GiB, GiB, 3, 0, PT_READ);
    expect_range(t, M + GiB, 2 * MiB, 2 * MiB, 3, GiB, PT_READ);
    expect_range(t, M + GiB + 2 * MiB, 3 * 4 * KiB, 4 * KiB, 3, GiB + 2 * MiB, PT_READ);
    CU_ASSERT_FALSE(pt_protect(t, M + 2 * MiB, GiB, PT_RW)); /* starts inside the 1 GiB page */
    expect_hit(t, M + GiB + 5, GiB + 5, 2 * MiB, 3, PT_READ);

    /* nothing mapped at all */
    CU_ASSERT_FALSE(pt_protect(t, 100 * GiB, 4 * KiB, PT_READ));
    CU_ASSERT_EQUAL(pt_leaves(t), 2 + 3 + 5);
    pt_destroy(t);
}

/* Addresses from 2^48 up are never mapped, so a range reaching them cannot be
 * "all mapped": it must be refused, and above all must not change the rights
 * of the low pages whose table indices those addresses share. */
static void test_protect_beyond_48_bits(void)
{
    PageTable *t = pt_new();
    CU_ASSERT_TRUE_FATAL(pt_map(t, 0, 4 * KiB, 4 * KiB, 1, 0x5000, PT_RW));
    CU_ASSERT_TRUE_FATAL(pt_map(t, VA_END - 4 * KiB, 4 * KiB, 4 * KiB, 2, 0x6000, PT_RW));
    expect_miss(t, VA_END);

    CU_ASSERT_FALSE(pt_protect(t, VA_END, 4 * KiB, PT_READ));
    CU_ASSERT_FALSE(pt_protect(t, VA_END - 4 * KiB, 2 * 4 * KiB, PT_READ));
    CU_ASSERT_FALSE(pt_protect(t, 1ull << 63, 4 * KiB, 0));
    expect_hit(t, 0, 0x5000, 4 * KiB, 1, PT_RW);
    expect_hit(t, VA_END - 4 * KiB, 0x6000, 4 * KiB, 2, PT_RW);
    pt_destroy(t);
}

/* ---- large ---- */

static void test_large_1g_in_4k_pages(void)
{
    PageTable *t = pt_new();
    const uint64_t va = 4 * GiB, phys = 0x3000005000ull, n = GiB / (4 * KiB);
    CU_ASSERT_TRUE_FATAL(pt_map(t, va, GiB, 4 * KiB, 17, phys, PT_READ));
    CU_ASSERT_EQUAL(pt_leaves(t), n);
    CU_ASSERT_EQUAL(pt_tables(t), 1 + 1 + 1 + 512);
    for (uint64_t p = 0; p < n; p += 4099) {
        uint64_t off = (p * 7919) % (4 * KiB);
        expect_hit(t, va + p * 4 * KiB + off, phys + p * 4 * KiB + off, 4 * KiB, 17, PT_READ);
    }
    expect_hit(t, va, phys, 4 * KiB, 17, PT_READ);
    expect_hit(t, va + GiB - 1, phys + GiB - 1, 4 * KiB, 17, PT_READ);
    expect_miss(t, va - 1);
    expect_miss(t, va + GiB);
    /* a 2 MiB and a 1 GiB page on top: refused */
    CU_ASSERT_FALSE(pt_map(t, va + 6 * MiB, 2 * MiB, 2 * MiB, 0, 0, PT_RW));
    CU_ASSERT_FALSE(pt_map(t, va, GiB, GiB, 0, 0, PT_RW));
    CU_ASSERT_TRUE(pt_protect(t, va, GiB, PT_RW));
    expect_hit(t, va + 12345 * 4 * KiB, phys + 12345 * 4 * KiB, 4 * KiB, 17, PT_RW);
    CU_ASSERT_EQUAL(pt_unmap(t, va, GiB), n);
    CU_ASSERT_EQUAL(pt_leaves(t), 0);
    CU_ASSERT_EQUAL(pt_tables(t), 0);
    expect_miss(t, va);
    /* and now the same GiB as one page */
    CU_ASSERT_TRUE(pt_map(t, va, GiB, GiB, 17, 0x3000000000ull, PT_READ));
    CU_ASSERT_EQUAL(pt_tables(t), 2);
    pt_destroy(t);
}

/* ---- readers racing a writer ---- */

/* The writer cycles through CSLOTS 1 GiB slots; at iteration i it replaces the
 * mapping of slot s = i % CSLOTS by generation g = i & PT_MAX_DEV, whose tag is
 * g, so that a reader can tell from any hit which mapping it came from and
 * check every field of the answer against it. */
#define CSLOTS 4
#define CBASE  (64 * GiB)

typedef struct CMap {
    uint64_t va, len, size, phys; /* phys of va */
    uint32_t prot, alt_prot;      /* as mapped, after the writer's protect */
} CMap;

static CMap cmap_of(uint32_t g, unsigned s)
{
    CMap m;
    uint64_t slot = CBASE + s * GiB;
    m.size = page_sizes[(g + s) % 3];
    switch ((g + s) % 3) {
    case 0: m.va = slot + (g % 64) * 7 * 4 * KiB; m.len = 16 * 4 * KiB; break;
    case 1: m.va = slot + (g % 16) * 2 * MiB; m.len = 3 * 2 * MiB; break;
    default: m.va = slot; m.len = GiB; break;
    }
    m.phys = (((uint64_t)g * CSLOTS + s + 1) << 30) + (m.va - slot);
    m.prot = g & PT_RW;
    m.alt_prot = (g + 1) & PT_RW;
    return m;
}

typedef struct Reader {
    PageTable *t;
    uint64_t seed;
    gint *stop;
    gint progress;  /* lookups so far, published for the writer */
    uint64_t lookups, hits, bad;
} Reader;

static gpointer reader_main(gpointer data)
{
    Reader *r = data;
    uint64_t s = r->seed;
    while (!g_atomic_int_get(r->stop)) {
        if (r->lookups % 256 == 0)
            g_atomic_int_set(&r->progress, (gint)MIN(r->lookups, (uint64_t)G_MAXINT));
        unsigned slot = (unsigned)(rnd_r(&s) % CSLOTS);
        uint64_t x = rnd_r(&s), off;
        switch (x % 4) {
        case 0: off = (x >> 8) % (2 * MiB); break;   /* where the 4 KiB runs live */
        case 1: off = (x >> 8) % (40 * MiB); break;  /* where the 2 MiB runs live */
        default: off = (x >> 8) % GiB; break;
        }
        uint64_t va = CBASE + slot * GiB + off;
        PtHit h = { 0 }, h2 = { 0 };
        pt_read_lock(r->t);
        bool ok = pt_lookup(r->t, va, &h);
        if (r->lookups % 64 == 0)
            g_thread_yield();  /* now and then, a long hold: a writer must wait */
        bool ok2 = pt_lookup(r->t, va, &h2);
        pt_read_unlock(r->t);
        /* The lock may prefer readers (glibc's does): leave the writer gaps
         * in which neither reader holds it. */
        if (r->lookups % 16 == 0)
            g_thread_yield();
        r->lookups++;
        /* while the read lock is held the translation cannot change */
        if (ok != ok2 || (ok && (h.phys != h2.phys || h.page_size != h2.page_size ||
                                 h.page_left != h2.page_left || h.dev != h2.dev ||
                                 h.prot != h2.prot))) {
            r->bad++;
            continue;
        }
        if (!ok)
            continue;
        r->hits++;
        CMap m = cmap_of(h.dev, slot);
        if (va < m.va || va >= m.va + m.len || h.page_size != m.size ||
            h.phys != m.phys + (va - m.va) || h.page_left != m.size - va % m.size ||
            (h.prot != m.prot && h.prot != m.alt_prot)) {
            if (r->bad++ < 5)
                fprintf(stderr, "  reader: va %#llx -> phys %#llx size %#llx dev %u prot %u: "
                        "inconsistent\n", (unsigned long long)va,
                        (unsigned long long)h.phys, (unsigned long long)h.page_size, h.dev,
                        h.prot);
        }
    }
    return NULL;
}

static void test_readers_vs_writer(void)
{
    enum { NREADERS = 2, ITERS = 6000, MINLOOK = 20000 };
    PageTable *t = pt_new();
    gint stop = 0;
    Reader rd[NREADERS];
    GThread *th[NREADERS];
    for (int i = 0; i < NREADERS; i++) {
        rd[i] = (Reader){ .t = t, .seed = 0x1234567ull * (uint64_t)(i + 1), .stop = &stop };
        th[i] = g_thread_new("pt-reader", reader_main, &rd[i]);
    }

    /* The writer does ITERS iterations and goes on until each reader has done
     * MINLOOK lookups meanwhile, but stops after 3 s in any case: readers may
     * starve it on a loaded machine. */
    uint64_t wbad = 0;
    bool mapped[CSLOTS] = { false };
    CMap cur[CSLOTS];
    gint64 deadline = g_get_monotonic_time() + 3 * G_USEC_PER_SEC;
    unsigned iters = 0;
    for (unsigned i = 0; g_get_monotonic_time() < deadline; i++, iters++) {
        if (i >= ITERS) {
            int done = 0;
            for (int k = 0; k < NREADERS; k++)
                done += g_atomic_int_get(&rd[k].progress) >= MINLOOK;
            if (done == NREADERS)
                break;
        }
        unsigned s = i % CSLOTS;
        uint32_t g = i & PT_MAX_DEV;
        if (mapped[s]) {
            uint64_t slot = CBASE + s * GiB;
            if (pt_unmap(t, slot, GiB) != cur[s].len / cur[s].size)
                wbad++;
        }
        cur[s] = cmap_of(g, s);
        if (!pt_map(t, cur[s].va, cur[s].len, cur[s].size, g, cur[s].phys, cur[s].prot))
            wbad++;
        mapped[s] = true;
        if (i % 3 == 0 && !pt_protect(t, cur[s].va, cur[s].len, cur[s].alt_prot))
            wbad++;
    }
    g_atomic_int_set(&stop, 1);
    uint64_t lookups = 0, hits = 0, bad = 0;
    for (int i = 0; i < NREADERS; i++) {
        g_thread_join(th[i]);
        CU_ASSERT_TRUE(rd[i].lookups >= 1000);  /* while the writer worked */
        lookups += rd[i].lookups;
        hits += rd[i].hits;
        bad += rd[i].bad;
    }
    CU_ASSERT_EQUAL(wbad, 0);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_TRUE(iters >= 100);
    fprintf(stderr, "  %u writer iterations, %llu lookups, %llu hits\n", iters,
            (unsigned long long)lookups, (unsigned long long)hits);
    CU_ASSERT_TRUE(hits > 0);
    CU_ASSERT_TRUE(hits < lookups);
    uint64_t leaves = 0;
    for (unsigned s = 0; s < CSLOTS; s++)
        if (mapped[s])
            leaves += cur[s].len / cur[s].size;
    CU_ASSERT_EQUAL(pt_leaves(t), leaves);
    CU_ASSERT_EQUAL(pt_unmap(t, CBASE, CSLOTS * GiB), leaves);
    CU_ASSERT_EQUAL(pt_tables(t), 0);
    pt_destroy(t);
}

/* ---- randomised against a reference model ---- */

/* The model keeps every mapped page, keyed by its first address: a va is
 * mapped by the page starting at va rounded down to 4 KiB, 2 MiB or 1 GiB, if
 * any of those exists and is that big. */
typedef struct MPage {
    uint64_t va, size, phys;
    uint32_t dev, prot;
} MPage;

/* The region: 4 GiB around the 512 GiB boundary at 1 TiB, with most activity
 * in a 16 MiB window across it (so the ranges collide). */
#define RM_LO   ((1ull << 40) - 2 * GiB)
#define RM_HOT  (1ull << 40)

static MPage *model_find(GHashTable *m, uint64_t va)
{
    for (int i = 0; i < 3; i++) {
        uint64_t k = va & ~(page_sizes[i] - 1);
        MPage *p = g_hash_table_lookup(m, &k);
        if (p && va - p->va < p->size)
            return p;
    }
    return NULL;
}

static bool model_free(GHashTable *m, uint64_t va, uint64_t len)
{
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, m);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        MPage *p = v;
        if (p->va < va + len && va < p->va + p->size)
            return false;
    }
    return true;
}

static MPage *model_random_page(GHashTable *m)
{
    guint n = g_hash_table_size(m);
    if (!n)
        return NULL;
    guint k = (guint)(rnd() % n);
    GHashTableIter it;
    gpointer v = NULL;
    g_hash_table_iter_init(&it, m);
    while (g_hash_table_iter_next(&it, NULL, &v) && k--)
        ;
    return v;
}

/* The tables the tree must hold: the root, one level-2 table per 512 GiB, one
 * level-1 table per GiB holding smaller pages, one level-0 per 2 MiB holding
 * 4 KiB pages. */
static uint64_t model_tables(GHashTable *m)
{
    if (!g_hash_table_size(m))
        return 0;
    GHashTable *l2 = g_hash_table_new(g_direct_hash, g_direct_equal);
    GHashTable *l1 = g_hash_table_new(g_direct_hash, g_direct_equal);
    GHashTable *l0 = g_hash_table_new(g_direct_hash, g_direct_equal);
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, m);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        MPage *p = v;
        g_hash_table_add(l2, GSIZE_TO_POINTER((gsize)(p->va >> 39)));
        if (p->size < GiB)
            g_hash_table_add(l1, GSIZE_TO_POINTER((gsize)(p->va >> 30)));
        if (p->size < 2 * MiB)
            g_hash_table_add(l0, GSIZE_TO_POINTER((gsize)(p->va >> 21)));
    }
    uint64_t n = 1 + g_hash_table_size(l2) + g_hash_table_size(l1) + g_hash_table_size(l0);
    g_hash_table_destroy(l2);
    g_hash_table_destroy(l1);
    g_hash_table_destroy(l0);
    return n;
}

static unsigned model_mismatches;

static void probe(PageTable *t, GHashTable *m, uint64_t va, int op)
{
    PtHit h = { 0 };
    bool ok = pt_translate(t, va, &h);
    MPage *p = model_find(m, va);
    bool good = ok == (p != NULL);
    if (good && p) {
        uint64_t off = va - p->va;
        good = h.phys == p->phys + off && h.page_size == p->size &&
               h.page_left == p->size - off && h.dev == p->dev && h.prot == p->prot;
    }
    if (!good && model_mismatches++ < 5)
        fprintf(stderr, "  op %d: va %#llx: table %d phys %#llx size %#llx dev %u prot %u, "
                "model %d phys %#llx size %#llx dev %u prot %u\n", op,
                (unsigned long long)va, ok, (unsigned long long)h.phys,
                (unsigned long long)h.page_size, h.dev, h.prot, p != NULL,
                p ? (unsigned long long)(p->phys + va - p->va) : 0ull,
                p ? (unsigned long long)p->size : 0ull, p ? p->dev : 0, p ? p->prot : 0);
}

static void mismatch(int op, const char *what, uint64_t a, uint64_t b)
{
    if (model_mismatches++ < 5)
        fprintf(stderr, "  op %d: %s: table %#llx, model %#llx\n", op, what,
                (unsigned long long)a, (unsigned long long)b);
}

static uint64_t random_va(void)
{
    if (rnd() % 10 < 7)
        return RM_HOT - 8 * MiB + rnd() % (16 * MiB);
    return RM_LO + rnd() % (4 * GiB);
}

static void test_random_against_model(void)
{
    enum { OPS = 4000 };
    PageTable *t = pt_new();
    GHashTable *m = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, g_free);
    unsigned maps_ok = 0, maps_refused = 0, prot_ok = 0, prot_refused = 0;
    uint64_t unmapped = 0;
    model_mismatches = 0;
    rng_state = 0x5eedf00dcafe1234ull;

    for (int op = 0; op < OPS; op++) {
        unsigned kind = (unsigned)(rnd() % 100);
        uint64_t va, len, lo, hi;
        if (kind < 45) {
            /* map, mostly small pages */
            unsigned r = (unsigned)(rnd() % 20), si = r < 12 ? 0 : r < 19 ? 1 : 2;
            uint64_t S = page_sizes[si];
            uint64_t n = si == 0 ? 1 + rnd() % 16 : si == 1 ? 1 + rnd() % 4 : 1 + rnd() % 2;
            va = random_va() & ~(S - 1);
            len = n * S;
            if (rnd() % 20 == 0)
                va += 4 * KiB;  /* now misaligned unless S is 4 KiB */
            uint64_t phys = (rnd() % (1ull << 44)) & ~(S - 1);
            uint32_t dev = (uint32_t)(rnd() & PT_MAX_DEV), prot = (uint32_t)(rnd() & PT_RW);
            bool expect = va % S == 0 && model_free(m, va, len);
            bool ok = pt_map(t, va, len, S, dev, phys, prot);
            if (ok != expect)
                mismatch(op, "map result", ok, expect);
            if (ok) {
                maps_ok++;
                for (uint64_t a = 0; a < len; a += S) {
                    MPage *p = g_new(MPage, 1);
                    *p = (MPage){ va + a, S, phys + a, dev, prot };
                    g_hash_table_insert(m, &p->va, p);
                }
            } else {
                maps_refused++;
            }
            lo = va;
            hi = va + len;
        } else if (kind < 70) {
            /* unmap: from a page start, from anywhere, or big */
            MPage *p = model_random_page(m);
            unsigned r = (unsigned)(rnd() % 10);
            if (p && r < 4) {
                va = p->va + (rnd() % 4 == 0 ? 4 * KiB * (rnd() % 3) : 0);
                len = p->size * (1 + rnd() % 4) - (rnd() % 2) * 4 * KiB;
            } else if (r < 8) {
                va = random_va();
                len = 1 + rnd() % (4 * MiB);
            } else {
                va = RM_LO + rnd() % (4 * GiB);
                len = 1 + rnd() % (2 * GiB);
            }
            uint64_t expect = 0;
            GHashTableIter it;
            gpointer v;
            g_hash_table_iter_init(&it, m);
            while (g_hash_table_iter_next(&it, NULL, &v)) {
                MPage *q = v;
                if (q->va >= va && q->va - va < len) {
                    g_hash_table_iter_remove(&it);
                    expect++;
                }
            }
            uint64_t n = pt_unmap(t, va, len);
            if (n != expect)
                mismatch(op, "unmap count", n, expect);
            unmapped += n;
            lo = va;
            hi = va + len;
        } else if (kind < 90) {
            /* protect: whole runs of pages, cut pages, holes */
            MPage *p = model_random_page(m);
            unsigned r = (unsigned)(rnd() % 10);
            if (p && r < 7) {
                va = p->va;
                len = p->size * (1 + rnd() % 3);
                if (r == 0 && len > 4 * KiB)  /* (an empty range is not specified) */
                    len -= 4 * KiB;
                else if (r == 1)
                    va += 4 * KiB;
            } else {
                va = random_va() & ~(4 * KiB - 1);
                len = 4 * KiB * (1 + rnd() % 64);
            }
            uint32_t prot = (uint32_t)(rnd() & PT_RW);
            bool expect = true;
            for (uint64_t a = va; a < va + len;) {
                MPage *q = model_find(m, a);
                if (!q || q->va != a || q->size > va + len - a) {
                    expect = false;
                    break;
                }
                a += q->size;
            }
            if (expect)
                for (uint64_t a = va; a < va + len;) {
                    MPage *q = model_find(m, a);
                    q->prot = prot;
                    a += q->size;
                }
            bool ok = pt_protect(t, va, len, prot);
            if (ok != expect)
                mismatch(op, "protect result", ok, expect);
            if (ok)
                prot_ok++;
            else
                prot_refused++;
            lo = va;
            hi = va + len;
        } else {
            lo = hi = random_va();
        }

        /* the counts, the edges of the range just touched, random probes */
        uint64_t leaves = pt_leaves(t), tables = pt_tables(t);
        if (leaves != g_hash_table_size(m))
            mismatch(op, "leaves", leaves, g_hash_table_size(m));
        if (tables != model_tables(m))
            mismatch(op, "tables", tables, model_tables(m));
        const uint64_t edges[] = { lo - 1, lo, lo + (hi - lo) / 2, hi - 1, hi };
        for (unsigned k = 0; k < 5; k++)
            probe(t, m, edges[k], op);
        for (unsigned k = 0; k < 8; k++)
            probe(t, m, random_va(), op);
        if (op % 500 == 499) {
            GHashTableIter it;
            gpointer v;
            g_hash_table_iter_init(&it, m);
            while (g_hash_table_iter_next(&it, NULL, &v)) {
                MPage *p = v;
                probe(t, m, p->va, op);
                probe(t, m, p->va + p->size - 1, op);
                probe(t, m, p->va + p->size, op);
            }
        }
    }
    CU_ASSERT_EQUAL(model_mismatches, 0);
    /* every outcome was exercised */
    CU_ASSERT_TRUE(maps_ok > 300);
    CU_ASSERT_TRUE(maps_refused > 100);
    CU_ASSERT_TRUE(prot_ok > 100);
    CU_ASSERT_TRUE(prot_refused > 100);
    CU_ASSERT_TRUE(unmapped > 1000);
    CU_ASSERT_TRUE(g_hash_table_size(m) > 0);
    fprintf(stderr, "  model run: %u maps, %u refused, %u protects, %u refused, %llu pages "
            "unmapped, %u live\n", maps_ok, maps_refused, prot_ok, prot_refused,
            (unsigned long long)unmapped, g_hash_table_size(m));

    CU_ASSERT_EQUAL(pt_unmap(t, 0, VA_END), g_hash_table_size(m));
    CU_ASSERT_EQUAL(pt_tables(t), 0);
    g_hash_table_destroy(m);
    pt_destroy(t);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return CU_get_error();
    CU_pSuite s = CU_add_suite("pagetable", NULL, NULL);
    if (!s || !CU_add_test(s, "new table is empty", test_new_is_empty) ||
        !CU_add_test(s, "map/translate/unmap, each page size", test_map_translate_unmap_each_size) ||
        !CU_add_test(s, "tags, rights, ends of the address space", test_tags_rights_extremes) ||
        !CU_add_test(s, "tables allocated and freed", test_tables_alloc_and_free) ||
        !CU_add_test(s, "mixed sizes, overlaps refused", test_mixed_sizes_and_overlaps) ||
        !CU_add_test(s, "map argument checks", test_map_argument_checks) ||
        !CU_add_test(s, "protect argument checks", test_protect_argument_checks) ||
        !CU_add_test(s, "unmap removes pages starting in the range", test_unmap_whole_pages_only) ||
        !CU_add_test(s, "unmap skips sparse ranges quickly", test_unmap_sparse_is_fast) ||
        !CU_add_test(s, "protect", test_protect) ||
        !CU_add_test(s, "protect beyond 48 bits refused", test_protect_beyond_48_bits) ||
        !CU_add_test(s, "1 GiB in 4 KiB pages", test_large_1g_in_4k_pages) ||
        !CU_add_test(s, "readers vs a writer", test_readers_vs_writer) ||
        !CU_add_test(s, "random ops against a reference model", test_random_against_model)) {
        CU_cleanup_registry();
        return 1;
    }
    return cu_run_all();
}
