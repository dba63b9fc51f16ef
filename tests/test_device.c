/*
 * test_device.c - device memory (devmodel/device.h): aclrtMalloc sizing and page
 * policy, segments and shared small blocks, HBM accounting and physical pages,
 * ownership checks, address resolution and owner release.
 *
 * Backing is sparse, so the devices have their real 64 GiB; the tests touch at
 * most a few pages of what they allocate.
 */
#include "devmodel/device.h"

#include <CUnit/Basic.h>
#include "cu_run.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acl/acl_base.h"
#include "acl/acl_rt.h"
#include "npuemu/proto.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define CAP (64 * GiB)
#define LO  EMU_VA_RESERVE_LO
#define HI  (EMU_VA_RESERVE_LO + EMU_VA_MALLOC_SPAN)

static Device *new_dev(void)
{
    return device_new(0, CAP, LO, HI);
}

static uint64_t dev_free(Device *d)
{
    uint64_t f = 0, t = 0;
    device_mem_info(d, &f, &t);
    CU_ASSERT_EQUAL(t, CAP);
    return f;
}

/* device_mem_alloc that must succeed; drops the new_obj reference. */
static DevAllocResult must_alloc(Device *d, uint32_t owner, uint64_t size, uint32_t policy,
                                 bool align32_only, bool *was_new)
{
    DevAllocResult r;
    memset(&r, 0, sizeof(r));
    int err = device_mem_alloc(d, owner, size, policy, align32_only, &r);
    CU_ASSERT_EQUAL(err, ACL_SUCCESS);
    if (was_new)
        *was_new = r.new_obj != NULL;
    if (r.new_obj) {
        CU_ASSERT_EQUAL(r.new_obj->size, r.seg_size);
        memobj_unref(r.new_obj);
        r.new_obj = NULL;
    }
    return r;
}

static void must_free(Device *d, uint32_t owner, uint64_t va)
{
    DevFreeResult f;
    CU_ASSERT_EQUAL(device_mem_free(d, owner, va, &f), ACL_SUCCESS);
}

/* ---- sizing and policy ---- */

static void test_malloc_size(void)
{
    const uint64_t pages[] = { HBM_PAGE_NORMAL, HBM_PAGE_HUGE };
    for (int i = 0; i < 2; i++) {
        uint64_t pg = pages[i];
        CU_ASSERT_EQUAL(device_malloc_size(1, pg, false), 64);
        CU_ASSERT_EQUAL(device_malloc_size(31, pg, false), 64);
        CU_ASSERT_EQUAL(device_malloc_size(32, pg, false), 64);
        CU_ASSERT_EQUAL(device_malloc_size(33, pg, false), 96);
        CU_ASSERT_EQUAL(device_malloc_size(4096, pg, false), 4128);
        CU_ASSERT_EQUAL(device_malloc_size(2 * MiB, pg, false), 2 * MiB + 32);
        /* aclrtMallocAlign32: no extra 32 */
        CU_ASSERT_EQUAL(device_malloc_size(1, pg, true), 32);
        CU_ASSERT_EQUAL(device_malloc_size(32, pg, true), 32);
        CU_ASSERT_EQUAL(device_malloc_size(33, pg, true), 64);
        CU_ASSERT_EQUAL(device_malloc_size(2 * MiB, pg, true), 2 * MiB);
    }
    /* 1 GiB pages: no extra 32 either way */
    CU_ASSERT_EQUAL(device_malloc_size(1, HBM_PAGE_1G, false), 32);
    CU_ASSERT_EQUAL(device_malloc_size(33, HBM_PAGE_1G, false), 64);
    CU_ASSERT_EQUAL(device_malloc_size(GiB, HBM_PAGE_1G, false), GiB);
    CU_ASSERT_EQUAL(device_malloc_size(GiB, HBM_PAGE_1G, true), GiB);
    CU_ASSERT_EQUAL(device_malloc_size(GiB + 1, HBM_PAGE_1G, false), GiB + 32);
}

static void test_policy_page(void)
{
    const uint64_t N = HBM_PAGE_NORMAL, H = HBM_PAGE_HUGE, G = HBM_PAGE_1G;
    const uint64_t sizes[] = { 1, 4 * KiB, MiB, MiB + 1, 2 * MiB - 1, 2 * MiB, 3 * GiB };
    const uint32_t extra_bits[] = { 0, ACL_MEM_TYPE_LOW_BAND_WIDTH, ACL_MEM_TYPE_HIGH_BAND_WIDTH,
                                    ACL_MEM_TYPE_LOW_BAND_WIDTH | ACL_MEM_TYPE_HIGH_BAND_WIDTH };
    for (unsigned b = 0; b < sizeof(extra_bits) / sizeof(extra_bits[0]); b++) {
        uint32_t x = extra_bits[b];
        for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            uint64_t sz = sizes[i];
            uint64_t hf = sz <= MiB ? N : H;
            CU_ASSERT_EQUAL(device_policy_page(ACL_MEM_MALLOC_HUGE_FIRST | x, sz), hf);
            CU_ASSERT_EQUAL(device_policy_page(ACL_MEM_MALLOC_HUGE_FIRST_P2P | x, sz), hf);
            CU_ASSERT_EQUAL(device_policy_page(ACL_MEM_MALLOC_HUGE_ONLY | x, sz), H);
            CU_ASSERT_EQUAL(device_policy_page(ACL_MEM_MALLOC_HUGE_ONLY_P2P | x, sz), H);
            CU_ASSERT_EQUAL(device_policy_page(ACL_MEM_MALLOC_NORMAL_ONLY | x, sz), N);
            CU_ASSERT_EQUAL(device_policy_page(ACL_MEM_MALLOC_NORMAL_ONLY_P2P | x, sz), N);
            CU_ASSERT_EQUAL(device_policy_page(ACL_MEM_MALLOC_HUGE1G_ONLY | x, sz), G);
            CU_ASSERT_EQUAL(device_policy_page(ACL_MEM_MALLOC_HUGE1G_ONLY_P2P | x, sz), G);
            /* out of range: huge pages from 2 MiB on */
            uint64_t oor = sz >= 2 * MiB ? H : N;
            CU_ASSERT_EQUAL(device_policy_page(ACL_MEM_MALLOC_HUGE1G_ONLY_P2P + 1 + x, sz), oor);
            CU_ASSERT_EQUAL(device_policy_page(0x7f | x, sz), oor);
            CU_ASSERT_EQUAL(device_policy_page(0xff | x, sz), oor);
            /* undocumented high bits are out of range too, not HUGE_FIRST */
            CU_ASSERT_EQUAL(device_policy_page(0x200 | x, sz), oor);
            CU_ASSERT_EQUAL(device_policy_page(0x10000 | x, sz), oor);
        }
    }
    /* the read-only access bit does not choose the page size either */
    CU_ASSERT_EQUAL(device_policy_page(ACL_MEM_MALLOC_NORMAL_ONLY |
                                       ACL_MEM_ACCESS_USER_SPACE_READONLY, 8 * MiB), N);
    CU_ASSERT_EQUAL(device_policy_page(ACL_MEM_MALLOC_HUGE_ONLY |
                                       ACL_MEM_ACCESS_USER_SPACE_READONLY, 1), H);
}

/* ---- allocation ---- */

typedef struct BigCase {
    uint32_t policy;
    uint64_t size;
    bool align32;
    uint64_t page, seg_size;
} BigCase;

static void test_alloc_big_segments(void)
{
    const BigCase cases[] = {
        { ACL_MEM_MALLOC_NORMAL_ONLY, 5000, false, 4 * KiB, 8 * KiB },
        { ACL_MEM_MALLOC_NORMAL_ONLY, 8192 - 32, false, 4 * KiB, 8 * KiB },
        { ACL_MEM_MALLOC_NORMAL_ONLY, 8192 - 31, false, 4 * KiB, 12 * KiB },
        { ACL_MEM_MALLOC_NORMAL_ONLY, 8192, true, 4 * KiB, 8 * KiB },
        { ACL_MEM_MALLOC_NORMAL_ONLY, 4033, false, 4 * KiB, 4 * KiB },
        { ACL_MEM_MALLOC_NORMAL_ONLY, 4065, true, 4 * KiB, 4 * KiB },
        { ACL_MEM_MALLOC_NORMAL_ONLY, 4097, true, 4 * KiB, 8 * KiB },
        { ACL_MEM_MALLOC_HUGE_FIRST, MiB, false, 4 * KiB, MiB + 4 * KiB },
        { ACL_MEM_MALLOC_HUGE_FIRST, MiB + 1, false, 2 * MiB, 2 * MiB },
        { ACL_MEM_MALLOC_HUGE_FIRST_P2P, 3 * MiB, false, 2 * MiB, 4 * MiB },
        { ACL_MEM_MALLOC_HUGE_ONLY, 1, false, 2 * MiB, 2 * MiB },
        { ACL_MEM_MALLOC_HUGE_ONLY, 2 * MiB, false, 2 * MiB, 4 * MiB },
        { ACL_MEM_MALLOC_HUGE_ONLY, 2 * MiB, true, 2 * MiB, 2 * MiB },
        { ACL_MEM_MALLOC_HUGE_ONLY_P2P | ACL_MEM_TYPE_HIGH_BAND_WIDTH, 100, false, 2 * MiB, 2 * MiB },
        { ACL_MEM_MALLOC_HUGE1G_ONLY, 1, false, GiB, GiB },
        { ACL_MEM_MALLOC_HUGE1G_ONLY, GiB, false, GiB, GiB },
        { ACL_MEM_MALLOC_HUGE1G_ONLY_P2P, GiB + 1, false, GiB, 2 * GiB },
        { 42, 2 * MiB, false, 2 * MiB, 4 * MiB },
        { 42, 8 * KiB, false, 4 * KiB, 12 * KiB },
    };
    Device *d = new_dev();
    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const BigCase *c = &cases[i];
        uint64_t before = dev_free(d);
        DevAllocResult r;
        memset(&r, 0, sizeof(r));
        int err = device_mem_alloc(d, 7, c->size, c->policy, c->align32, &r);
        CU_ASSERT_EQUAL_FATAL(err, ACL_SUCCESS);
        CU_ASSERT_PTR_NOT_NULL(r.new_obj);
        CU_ASSERT_EQUAL(r.page_size, c->page);
        CU_ASSERT_EQUAL(r.seg_size, c->seg_size);
        CU_ASSERT_EQUAL(r.size, c->seg_size);
        CU_ASSERT_EQUAL(r.va, r.seg_va);
        CU_ASSERT_EQUAL(r.va % c->page, 0);
        CU_ASSERT_TRUE(r.va >= LO && r.va + r.seg_size <= HI);
        CU_ASSERT_EQUAL(before - dev_free(d), c->seg_size);
        if (r.page_size != c->page || r.seg_size != c->seg_size)
            fprintf(stderr, "case %u: policy %#x size %#llx -> page %#x seg %#llx\n", i,
                    c->policy, (unsigned long long)c->size, r.page_size,
                    (unsigned long long)r.seg_size);
        if (r.new_obj) {
            CU_ASSERT_EQUAL(r.new_obj->size, r.seg_size);
            CU_ASSERT_EQUAL(r.new_obj->refcount, 2); /* the segment's and ours */
            memobj_unref(r.new_obj);
        }
        DevFreeResult f;
        CU_ASSERT_EQUAL(device_mem_free(d, 7, r.va, &f), ACL_SUCCESS);
        CU_ASSERT_TRUE(f.seg_released);
        CU_ASSERT_EQUAL(f.seg_va, r.seg_va);
        CU_ASSERT_EQUAL(f.seg_size, r.seg_size);
        CU_ASSERT_EQUAL(f.size, r.size);
        CU_ASSERT_EQUAL(dev_free(d), CAP);
    }
    device_destroy(d);
}

static void test_alloc_small_shared_block(void)
{
    Device *d = new_dev();
    bool fresh = false;

    DevAllocResult a = must_alloc(d, 1, 100, ACL_MEM_MALLOC_HUGE_FIRST, false, &fresh);
    CU_ASSERT_TRUE(fresh);
    CU_ASSERT_EQUAL(a.seg_size, DEV_SMALL_BLOCK);
    CU_ASSERT_EQUAL(a.page_size, HBM_PAGE_NORMAL);
    CU_ASSERT_EQUAL(a.size, 160); /* ALIGN_UP(100, 32) + 32 */
    CU_ASSERT_EQUAL(a.va % DEV_SMALL_ALIGN, 0);
    CU_ASSERT_TRUE(a.va >= a.seg_va && a.va + a.size <= a.seg_va + a.seg_size);
    CU_ASSERT_EQUAL(dev_free(d), CAP - DEV_SMALL_BLOCK);

    /* more small allocations of the same owner share the block */
    DevAllocResult b = must_alloc(d, 1, 1, ACL_MEM_MALLOC_NORMAL_ONLY, false, &fresh);
    CU_ASSERT_FALSE(fresh);
    CU_ASSERT_EQUAL(b.seg_va, a.seg_va);
    CU_ASSERT_EQUAL(b.size, 64);
    CU_ASSERT_EQUAL(b.va % DEV_SMALL_ALIGN, 0);
    CU_ASSERT_TRUE(b.va >= a.va + a.size || b.va + b.size <= a.va);
    /* the largest sub-page sizes: 4032 (+32 = 4064), and 4064 with Align32 */
    DevAllocResult c = must_alloc(d, 1, 4032, ACL_MEM_MALLOC_HUGE_FIRST, false, &fresh);
    CU_ASSERT_FALSE(fresh);
    CU_ASSERT_EQUAL(c.seg_va, a.seg_va);
    CU_ASSERT_EQUAL(c.size, 4064);
    DevAllocResult e = must_alloc(d, 1, 4064, ACL_MEM_MALLOC_HUGE_FIRST, true, &fresh);
    CU_ASSERT_FALSE(fresh);
    CU_ASSERT_EQUAL(e.seg_va, a.seg_va);
    CU_ASSERT_EQUAL(e.size, 4064);
    /* an out-of-range policy below 2 MiB uses normal pages, hence the block too */
    DevAllocResult g = must_alloc(d, 1, 10, 99, false, &fresh);
    CU_ASSERT_FALSE(fresh);
    CU_ASSERT_EQUAL(g.seg_va, a.seg_va);
    CU_ASSERT_EQUAL(dev_free(d), CAP - DEV_SMALL_BLOCK);
    /* small requests with huge-page policies get a segment of their own */
    DevAllocResult h = must_alloc(d, 1, 10, ACL_MEM_MALLOC_HUGE_ONLY, false, &fresh);
    CU_ASSERT_TRUE(fresh);
    CU_ASSERT_EQUAL(h.va, h.seg_va);
    CU_ASSERT_EQUAL(h.seg_size, 2 * MiB);

    /* another owner gets a block of its own */
    DevAllocResult o = must_alloc(d, 2, 100, ACL_MEM_MALLOC_HUGE_FIRST, false, &fresh);
    CU_ASSERT_TRUE(fresh);
    CU_ASSERT_NOT_EQUAL(o.seg_va, a.seg_va);
    CU_ASSERT_EQUAL(dev_free(d), CAP - 3 * DEV_SMALL_BLOCK);

    /* slices are distinct: write through the device view and read back */
    const DevAllocResult *all[] = { &a, &b, &c, &e, &g };
    for (unsigned i = 0; i < 5; i++) {
        MemObj *ref = NULL;
        uint8_t *p = device_resolve(d, 1, all[i]->va, all[i]->size, &ref);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memset(p, 0x10 + (int)i, all[i]->size);
        memobj_unref(ref);
    }
    for (unsigned i = 0; i < 5; i++) {
        MemObj *ref = NULL;
        uint8_t *p = device_resolve(d, 1, all[i]->va, all[i]->size, &ref);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        bool same = true;
        for (uint64_t k = 0; k < all[i]->size; k++)
            same &= p[k] == 0x10 + i;
        CU_ASSERT_TRUE(same);
        memobj_unref(ref);
    }

    /* freeing slices keeps the block until the last one goes */
    DevFreeResult f;
    CU_ASSERT_EQUAL(device_mem_free(d, 1, b.va, &f), ACL_SUCCESS);
    CU_ASSERT_FALSE(f.seg_released);
    CU_ASSERT_EQUAL(f.size, 64);
    CU_ASSERT_EQUAL(f.seg_va, a.seg_va);
    /* the freed slice is reused */
    DevAllocResult b2 = must_alloc(d, 1, 1, ACL_MEM_MALLOC_NORMAL_ONLY, false, &fresh);
    CU_ASSERT_FALSE(fresh);
    CU_ASSERT_EQUAL(b2.va, b.va);
    must_free(d, 1, b2.va);
    must_free(d, 1, c.va);
    must_free(d, 1, e.va);
    must_free(d, 1, g.va);
    CU_ASSERT_EQUAL(device_mem_free(d, 1, a.va, &f), ACL_SUCCESS);
    CU_ASSERT_TRUE(f.seg_released);
    CU_ASSERT_EQUAL(f.seg_size, DEV_SMALL_BLOCK);
    CU_ASSERT_EQUAL(dev_free(d), CAP - 2 * MiB - DEV_SMALL_BLOCK);
    /* a new small allocation needs a new block */
    DevAllocResult n = must_alloc(d, 1, 1, ACL_MEM_MALLOC_NORMAL_ONLY, false, &fresh);
    CU_ASSERT_TRUE(fresh);
    must_free(d, 1, n.va);
    must_free(d, 1, h.va);
    must_free(d, 2, o.va);
    CU_ASSERT_EQUAL(dev_free(d), CAP);
    device_destroy(d);
}

/* A full block makes room for a second one. */
static void test_small_block_overflow(void)
{
    Device *d = new_dev();
    const unsigned per_block = DEV_SMALL_BLOCK / 4096; /* 4064-byte slices, 64-aligned */
    uint64_t *va = calloc(per_block + 1, sizeof(*va));
    uint64_t first_seg = 0;
    unsigned news = 0;
    for (unsigned i = 0; i <= per_block; i++) {
        bool fresh;
        DevAllocResult r = must_alloc(d, 3, 4032, ACL_MEM_MALLOC_NORMAL_ONLY, false, &fresh);
        va[i] = r.va;
        news += fresh;
        if (i == 0) {
            first_seg = r.seg_va;
        } else if (i < per_block) {
            CU_ASSERT_EQUAL(r.seg_va, first_seg);
        } else {
            CU_ASSERT_NOT_EQUAL(r.seg_va, first_seg);
        }
    }
    CU_ASSERT_EQUAL(news, 2);
    CU_ASSERT_EQUAL(dev_free(d), CAP - 2 * DEV_SMALL_BLOCK);
    for (unsigned i = 0; i <= per_block; i++)
        must_free(d, 3, va[i]);
    CU_ASSERT_EQUAL(dev_free(d), CAP);
    free(va);
    device_destroy(d);
}

static void test_hbm_accounting(void)
{
    Device *d = new_dev();
    CU_ASSERT_EQUAL(dev_free(d), CAP);
    DevAllocResult r[4];
    r[0] = must_alloc(d, 1, 10 * MiB, ACL_MEM_MALLOC_HUGE_FIRST, false, NULL);
    CU_ASSERT_EQUAL(dev_free(d), CAP - r[0].seg_size);
    r[1] = must_alloc(d, 1, 100 * KiB, ACL_MEM_MALLOC_NORMAL_ONLY, false, NULL);
    CU_ASSERT_EQUAL(dev_free(d), CAP - r[0].seg_size - r[1].seg_size);
    r[2] = must_alloc(d, 1, 3 * GiB, ACL_MEM_MALLOC_HUGE1G_ONLY, false, NULL);
    CU_ASSERT_EQUAL(r[2].seg_size, 3 * GiB);
    CU_ASSERT_EQUAL(dev_free(d), CAP - r[0].seg_size - r[1].seg_size - 3 * GiB);
    r[3] = must_alloc(d, 1, 10, ACL_MEM_MALLOC_HUGE_FIRST, false, NULL);
    uint64_t used = r[0].seg_size + r[1].seg_size + r[2].seg_size + DEV_SMALL_BLOCK;
    CU_ASSERT_EQUAL(dev_free(d), CAP - used);
    CU_ASSERT_EQUAL(d->hbm.used_normal, r[1].seg_size + DEV_SMALL_BLOCK);
    CU_ASSERT_EQUAL(d->hbm.used_huge, r[0].seg_size + r[2].seg_size);
    for (int i = 0; i < 4; i++) {
        must_free(d, 1, r[i].va);
        used -= r[i].seg_size;
        CU_ASSERT_EQUAL(dev_free(d), CAP - used);
    }
    CU_ASSERT_EQUAL(dev_free(d), CAP);
    CU_ASSERT_TRUE(va_range_is_empty(d->heap));
    device_destroy(d);
}

static void test_exhaustion(void)
{
    Device *d = new_dev();
    DevAllocResult r;
    memset(&r, 0, sizeof(r));
    CU_ASSERT_EQUAL(device_mem_alloc(d, 1, 65 * GiB, ACL_MEM_MALLOC_HUGE_FIRST, false, &r),
                    ACL_ERROR_RT_MEMORY_ALLOCATION);
    CU_ASSERT_EQUAL(device_mem_alloc(d, 1, UINT64_MAX, ACL_MEM_MALLOC_HUGE_FIRST, false, &r),
                    ACL_ERROR_RT_MEMORY_ALLOCATION);
    CU_ASSERT_EQUAL(device_mem_alloc(d, 1, UINT64_MAX - 16, ACL_MEM_MALLOC_HUGE1G_ONLY, true, &r),
                    ACL_ERROR_RT_MEMORY_ALLOCATION);
    CU_ASSERT_EQUAL(dev_free(d), CAP);

    DevAllocResult big = must_alloc(d, 1, 60 * GiB, ACL_MEM_MALLOC_HUGE_FIRST, false, NULL);
    for (uint32_t pol = ACL_MEM_MALLOC_HUGE_FIRST; pol <= ACL_MEM_MALLOC_HUGE1G_ONLY_P2P; pol++)
        CU_ASSERT_EQUAL(device_mem_alloc(d, 1, 8 * GiB, pol, false, &r),
                        ACL_ERROR_RT_MEMORY_ALLOCATION);
    CU_ASSERT_EQUAL(dev_free(d), CAP - big.seg_size);
    /* what is left still serves smaller requests */
    DevAllocResult rest = must_alloc(d, 1, 3 * GiB, ACL_MEM_MALLOC_HUGE1G_ONLY, false, NULL);
    must_free(d, 1, rest.va);
    must_free(d, 1, big.va);
    CU_ASSERT_EQUAL(dev_free(d), CAP);

    /* exactly the capacity: only 1 GiB pages avoid the extra 32 bytes */
    CU_ASSERT_EQUAL(device_mem_alloc(d, 1, CAP, ACL_MEM_MALLOC_HUGE_ONLY, false, &r),
                    ACL_ERROR_RT_MEMORY_ALLOCATION);
    CU_ASSERT_EQUAL(device_mem_alloc(d, 1, CAP, ACL_MEM_MALLOC_NORMAL_ONLY, false, &r),
                    ACL_ERROR_RT_MEMORY_ALLOCATION);
    DevAllocResult all = must_alloc(d, 1, CAP, ACL_MEM_MALLOC_HUGE1G_ONLY, false, NULL);
    CU_ASSERT_EQUAL(all.seg_size, CAP);
    CU_ASSERT_EQUAL(dev_free(d), 0);
    CU_ASSERT_EQUAL(device_mem_alloc(d, 1, 1, ACL_MEM_MALLOC_HUGE_FIRST, false, &r),
                    ACL_ERROR_RT_MEMORY_ALLOCATION);
    must_free(d, 1, all.va);
    /* Align32 with normal pages fits exactly too */
    all = must_alloc(d, 1, CAP, ACL_MEM_MALLOC_NORMAL_ONLY, true, NULL);
    CU_ASSERT_EQUAL(dev_free(d), 0);
    must_free(d, 1, all.va);
    CU_ASSERT_EQUAL(dev_free(d), CAP);
    device_destroy(d);
}

/* HUGE_FIRST falls back to normal pages when 2 MiB pages do not fit. */
static void test_huge_first_fallback(void)
{
    Device *d = new_dev();
    /* leave exactly 1.5 MiB of HBM */
    DevAllocResult fill = must_alloc(d, 1, CAP - 3 * MiB / 2 - 32, ACL_MEM_MALLOC_NORMAL_ONLY,
                                     false, NULL);
    CU_ASSERT_EQUAL(dev_free(d), 3 * MiB / 2);
    DevAllocResult r;
    memset(&r, 0, sizeof(r));
    CU_ASSERT_EQUAL(device_mem_alloc(d, 1, MiB + 1, ACL_MEM_MALLOC_HUGE_ONLY, false, &r),
                    ACL_ERROR_RT_MEMORY_ALLOCATION);
    DevAllocResult fb = must_alloc(d, 1, MiB + 1, ACL_MEM_MALLOC_HUGE_FIRST, false, NULL);
    CU_ASSERT_EQUAL(fb.page_size, HBM_PAGE_NORMAL);
    CU_ASSERT_EQUAL(fb.seg_size, MiB + 4 * KiB);
    CU_ASSERT_EQUAL(fb.va % HBM_PAGE_NORMAL, 0);
    CU_ASSERT_EQUAL(dev_free(d), MiB / 2 - 4 * KiB);
    must_free(d, 1, fb.va);
    fb = must_alloc(d, 1, MiB + 1, ACL_MEM_MALLOC_HUGE_FIRST_P2P, false, NULL);
    CU_ASSERT_EQUAL(fb.page_size, HBM_PAGE_NORMAL);
    must_free(d, 1, fb.va);
    must_free(d, 1, fill.va);
    CU_ASSERT_EQUAL(dev_free(d), CAP);
    device_destroy(d);
}

static uint64_t phys_of(Device *d, uint64_t va)
{
    uint64_t phys = UINT64_MAX;
    CU_ASSERT_TRUE(device_segment_phys(d, va, &phys));
    return phys;
}

/* HUGE_FIRST falls back to normal pages when fragmentation, not exhaustion,
 * leaves no whole 2 MiB block. */
static void test_huge_first_fallback_fragmented(void)
{
    Device *d = device_new(0, 64 * MiB, LO, HI);
    DevAllocResult half[64], r;
    uint64_t f = 0, t = 0;
    /* 1 MiB segments of normal pages fill the HBM in address order; freeing
     * every other one leaves 32 MiB free, all in half blocks */
    for (unsigned i = 0; i < 64; i++) {
        half[i] = must_alloc(d, 1, MiB - 32, ACL_MEM_MALLOC_NORMAL_ONLY, false, NULL);
        CU_ASSERT_EQUAL(phys_of(d, half[i].va), i * MiB);
    }
    for (unsigned i = 1; i < 64; i += 2)
        must_free(d, 1, half[i].va);
    device_mem_info(d, &f, &t);
    CU_ASSERT_EQUAL(f, 32 * MiB);
    CU_ASSERT_EQUAL(hbm_largest(&d->hbm, HBM_PAGE_HUGE), 0);
    CU_ASSERT_EQUAL(device_mem_alloc(d, 1, 1, ACL_MEM_MALLOC_HUGE_ONLY, false, &r),
                    ACL_ERROR_RT_MEMORY_ALLOCATION);

    /* 3 MiB HUGE_FIRST: normal pages, in the freed halves, page by page */
    DevAllocResult fb = must_alloc(d, 1, 3 * MiB, ACL_MEM_MALLOC_HUGE_FIRST, false, NULL);
    CU_ASSERT_EQUAL(fb.page_size, HBM_PAGE_NORMAL);
    CU_ASSERT_EQUAL(fb.seg_size, 3 * MiB + 4 * KiB);
    unsigned outside = 0;
    for (uint64_t off = 0, prev = 0; off < fb.seg_size; off += HBM_PAGE_NORMAL) {
        uint64_t ph = phys_of(d, fb.va + off);
        outside += ph % HBM_PAGE_NORMAL || ph / MiB % 2 != 1 || (off && ph <= prev) ||
                   phys_of(d, fb.va + off + 100) != ph + 100;
        prev = ph;
    }
    CU_ASSERT_EQUAL(outside, 0);
    CU_ASSERT_EQUAL(phys_of(d, fb.va + MiB), 3 * MiB);  /* the second hole */
    must_free(d, 1, fb.va);

    /* a whole block freed: a huge page fits again, exactly there */
    must_free(d, 1, half[10].va);
    DevAllocResult h = must_alloc(d, 1, MiB + 1, ACL_MEM_MALLOC_HUGE_FIRST, false, NULL);
    CU_ASSERT_EQUAL(h.page_size, HBM_PAGE_HUGE);
    CU_ASSERT_EQUAL(phys_of(d, h.va), 10 * MiB);
    must_free(d, 1, h.va);
    for (unsigned i = 0; i < 64; i += 2)
        if (i != 10)
            must_free(d, 1, half[i].va);
    CU_ASSERT_EQUAL(hbm_largest(&d->hbm, HBM_PAGE_HUGE), 64 * MiB);
    device_destroy(d);
}

/* Every VA of a segment translates to its HBM address; segments never share
 * physical pages. */
static void test_segment_phys(void)
{
    Device *d = new_dev();
    DevAllocResult r[5];
    r[0] = must_alloc(d, 1, 1, ACL_MEM_MALLOC_HUGE1G_ONLY, false, NULL);
    r[1] = must_alloc(d, 2, 3 * MiB, ACL_MEM_MALLOC_HUGE_ONLY, false, NULL);
    r[2] = must_alloc(d, 1, 100 * KiB, ACL_MEM_MALLOC_NORMAL_ONLY, false, NULL);
    r[3] = must_alloc(d, 1, 100, ACL_MEM_MALLOC_HUGE_FIRST, false, NULL);
    r[4] = must_alloc(d, 1, 100, ACL_MEM_MALLOC_HUGE_FIRST, false, NULL);
    uint64_t lo[4], hi[4], ph = 0;
    for (unsigned i = 0; i < 4; i++) {
        /* a fresh device gives each segment one aligned physical run */
        lo[i] = phys_of(d, r[i].seg_va);
        hi[i] = lo[i] + r[i].seg_size;
        CU_ASSERT_EQUAL(lo[i] % r[i].page_size, 0);
        for (uint64_t off = 0; off < r[i].seg_size; off += r[i].seg_size / 8 + 4 * KiB + 8)
            CU_ASSERT_EQUAL(phys_of(d, r[i].seg_va + off), lo[i] + off);
        CU_ASSERT_EQUAL(phys_of(d, r[i].seg_va + r[i].seg_size - 1), hi[i] - 1);
        for (unsigned k = 0; k < i; k++)
            CU_ASSERT_TRUE(hi[i] <= lo[k] || hi[k] <= lo[i]);
    }
    /* slices of a shared block are where the block is */
    CU_ASSERT_EQUAL(r[4].seg_va, r[3].seg_va);
    CU_ASSERT_EQUAL(phys_of(d, r[4].va), lo[3] + (r[4].va - r[3].seg_va));
    /* outside every segment, and after a free */
    CU_ASSERT_FALSE(device_segment_phys(d, 0, &ph));
    CU_ASSERT_FALSE(device_segment_phys(d, LO - 1, &ph));
    CU_ASSERT_FALSE(device_segment_phys(d, r[0].va + 6 * GiB, &ph));
    must_free(d, 2, r[1].va);
    CU_ASSERT_FALSE(device_segment_phys(d, r[1].va, &ph));
    CU_ASSERT_FALSE(device_segment_phys(d, r[1].va + r[1].seg_size - 1, &ph));
    for (unsigned i = 0; i < 5; i++)
        if (i != 1)
            must_free(d, 1, r[i].va);
    CU_ASSERT_FALSE(device_segment_phys(d, r[4].va, &ph));
    CU_ASSERT_EQUAL(dev_free(d), CAP);
    device_destroy(d);
}

/* A VA heap too small for the request: the HBM taken must be given back. */
static void test_va_heap_exhaustion(void)
{
    Device *d = device_new(1, CAP, LO, LO + 8 * MiB);
    DevAllocResult v[4], r;
    for (int i = 0; i < 4; i++) {
        v[i] = must_alloc(d, 1, 1, ACL_MEM_MALLOC_HUGE_ONLY, false, NULL);
        CU_ASSERT_EQUAL(v[i].va, LO + (uint64_t)i * 2 * MiB);
    }
    CU_ASSERT_EQUAL(device_mem_alloc(d, 1, 1, ACL_MEM_MALLOC_HUGE_ONLY, false, &r),
                    ACL_ERROR_RT_MEMORY_ALLOCATION);
    CU_ASSERT_EQUAL(device_mem_alloc(d, 1, 1, ACL_MEM_MALLOC_HUGE_FIRST, false, &r),
                    ACL_ERROR_RT_MEMORY_ALLOCATION);
    CU_ASSERT_EQUAL(dev_free(d), CAP - 8 * MiB);
    must_free(d, 1, v[2].va);
    DevAllocResult again = must_alloc(d, 1, 1, ACL_MEM_MALLOC_HUGE_ONLY, false, NULL);
    CU_ASSERT_EQUAL(again.va, v[2].va);
    must_free(d, 1, again.va);
    for (int i = 0; i < 4; i++)
        if (i != 2)
            must_free(d, 1, v[i].va);
    CU_ASSERT_EQUAL(dev_free(d), CAP);
    device_destroy(d);
}

/* ---- free ---- */

static void test_free_errors(void)
{
    Device *d = new_dev();
    DevAllocResult big = must_alloc(d, 1, 3 * MiB, ACL_MEM_MALLOC_HUGE_FIRST, false, NULL);
    DevAllocResult small = must_alloc(d, 1, 100, ACL_MEM_MALLOC_HUGE_FIRST, false, NULL);
    DevAllocResult small2 = must_alloc(d, 1, 100, ACL_MEM_MALLOC_HUGE_FIRST, false, NULL);
    DevFreeResult f;
    uint64_t before = dev_free(d);

    CU_ASSERT_EQUAL(device_mem_free(d, 1, 0, &f), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(device_mem_free(d, 1, LO - 4096, &f), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(device_mem_free(d, 1, HI + 4096, &f), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(device_mem_free(d, 1, big.va + 64, &f), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(device_mem_free(d, 1, small.va + 64, &f), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(device_mem_free(d, 1, big.va + big.seg_size - 64, &f), ACL_ERROR_RT_PARAM_INVALID);
    /* another owner, and the "everyone" owner 0 */
    CU_ASSERT_EQUAL(device_mem_free(d, 2, big.va, &f), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(device_mem_free(d, 2, small.va, &f), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(device_mem_free(d, 0, big.va, &f), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(dev_free(d), before);

    /* the real owner still can, once */
    CU_ASSERT_EQUAL(device_mem_free(d, 1, big.va, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(device_mem_free(d, 1, big.va, &f), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(device_mem_free(d, 1, small.va, &f), ACL_SUCCESS);
    CU_ASSERT_FALSE(f.seg_released);
    CU_ASSERT_EQUAL(device_mem_free(d, 1, small.va, &f), ACL_ERROR_RT_PARAM_INVALID);
    /* a double free of a slice must not have released the block under small2 */
    MemObj *ref = NULL;
    uint8_t *p = device_resolve(d, 1, small2.va, small2.size, &ref);
    CU_ASSERT_PTR_NOT_NULL(p);
    if (p) {
        memset(p, 1, small2.size);
        memobj_unref(ref);
    }
    CU_ASSERT_EQUAL(device_mem_free(d, 1, small2.va, &f), ACL_SUCCESS);
    CU_ASSERT_TRUE(f.seg_released);
    CU_ASSERT_EQUAL(device_mem_free(d, 1, small2.va, &f), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(dev_free(d), CAP);
    device_destroy(d);
}

/* ---- resolve ---- */

static void test_resolve(void)
{
    Device *d = new_dev();
    DevAllocResult r;
    memset(&r, 0, sizeof(r));
    CU_ASSERT_EQUAL_FATAL(device_mem_alloc(d, 1, 3 * MiB, ACL_MEM_MALLOC_HUGE_ONLY, false, &r),
                          ACL_SUCCESS);
    MemObj *obj = r.new_obj;
    CU_ASSERT_EQUAL(r.seg_size, 4 * MiB);
    DevAllocResult other = must_alloc(d, 2, 2 * MiB, ACL_MEM_MALLOC_HUGE_ONLY, true, NULL);
    MemObj *ref = NULL;

    /* inside the own segment: the same memory as the object the owner maps */
    uint8_t *p = device_resolve(d, 1, r.va + 4096, 100, &ref);
    CU_ASSERT_PTR_EQUAL(p, obj->map + 4096);
    CU_ASSERT_PTR_EQUAL(ref, obj);
    CU_ASSERT_EQUAL(obj->refcount, 3);
    if (p) {
        memcpy(p, "hello", 6);
        CU_ASSERT_STRING_EQUAL((char *)obj->map + 4096, "hello");
        memobj_unref(ref);
    }
    CU_ASSERT_EQUAL(obj->refcount, 2);
    /* the whole segment, and its last byte */
    ref = NULL;
    CU_ASSERT_PTR_EQUAL(device_resolve(d, 1, r.va, r.seg_size, &ref), obj->map);
    memobj_unref(ref);
    ref = NULL;
    CU_ASSERT_PTR_EQUAL(device_resolve(d, 1, r.va + r.seg_size - 1, 1, &ref),
                        obj->map + r.seg_size - 1);
    memobj_unref(ref);

    /* crossing the end, past the end, before the start, someone else's */
    ref = NULL;
    CU_ASSERT_PTR_NULL(device_resolve(d, 1, r.va + r.seg_size - 1, 2, &ref));
    CU_ASSERT_PTR_NULL(device_resolve(d, 1, r.va, r.seg_size + 1, &ref));
    CU_ASSERT_PTR_NULL(device_resolve(d, 1, r.va + 4096, UINT64_MAX, &ref));
    CU_ASSERT_PTR_NULL(device_resolve(d, 1, r.va + r.seg_size, 1, &ref));
    CU_ASSERT_PTR_NULL(device_resolve(d, 1, r.va - 1, 1, &ref));
    CU_ASSERT_PTR_NULL(device_resolve(d, 1, LO - 4096, 1, &ref));
    CU_ASSERT_PTR_NULL(device_resolve(d, 1, HI + (1ull << 30), 1, &ref));
    CU_ASSERT_PTR_NULL(device_resolve(d, 1, 0, 1, &ref));
    CU_ASSERT_PTR_NULL(device_resolve(d, 1, other.va, 1, &ref));
    CU_ASSERT_PTR_NULL(device_resolve(d, 2, r.va, 1, &ref));
    CU_ASSERT_PTR_NULL(ref);
    CU_ASSERT_EQUAL(obj->refcount, 2);
    ref = NULL;
    p = device_resolve(d, 2, other.va + 10, 10, &ref);
    CU_ASSERT_PTR_NOT_NULL(p);
    memobj_unref(ref);

    /* a resolved reference outlives a concurrent free */
    ref = NULL;
    p = device_resolve(d, 1, r.va, 4096, &ref);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    memobj_unref(obj); /* the owner's reference from the allocation */
    must_free(d, 1, r.va);
    MemObj *ref2 = NULL;
    CU_ASSERT_PTR_NULL(device_resolve(d, 1, r.va, 1, &ref2));
    CU_ASSERT_EQUAL(ref->refcount, 1);
    memset(p, 0x5a, 4096); /* still mapped */
    CU_ASSERT_EQUAL(p[4095], 0x5a);
    memobj_unref(ref);
    must_free(d, 2, other.va);
    CU_ASSERT_EQUAL(dev_free(d), CAP);
    device_destroy(d);
}

/* ---- release_owner ---- */

static void test_release_owner(void)
{
    Device *d = new_dev();
    uint64_t bytes1 = 0;
    DevAllocResult mine[5], theirs[2];
    mine[0] = must_alloc(d, 1, 3 * MiB, ACL_MEM_MALLOC_HUGE_FIRST, false, NULL);
    mine[1] = must_alloc(d, 1, 100 * KiB, ACL_MEM_MALLOC_NORMAL_ONLY, false, NULL);
    mine[2] = must_alloc(d, 1, GiB, ACL_MEM_MALLOC_HUGE1G_ONLY, false, NULL);
    mine[3] = must_alloc(d, 1, 10, ACL_MEM_MALLOC_HUGE_FIRST, false, NULL);
    mine[4] = must_alloc(d, 1, 200, ACL_MEM_MALLOC_HUGE_FIRST, false, NULL);
    theirs[0] = must_alloc(d, 2, 5 * MiB, ACL_MEM_MALLOC_HUGE_FIRST, false, NULL);
    theirs[1] = must_alloc(d, 2, 10, ACL_MEM_MALLOC_HUGE_FIRST, false, NULL);
    for (int i = 0; i < 5; i++)
        bytes1 += mine[i].size;
    uint64_t theirs_hbm = theirs[0].seg_size + DEV_SMALL_BLOCK;

    CU_ASSERT_EQUAL(device_release_owner(d, 3, NULL), 0); /* owns nothing */
    uint64_t bytes = 0;
    CU_ASSERT_EQUAL(device_release_owner(d, 1, &bytes), 5);
    CU_ASSERT_EQUAL(bytes, bytes1);
    CU_ASSERT_EQUAL(dev_free(d), CAP - theirs_hbm);
    DevFreeResult f;
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(device_mem_free(d, 1, mine[i].va, &f), ACL_ERROR_RT_PARAM_INVALID);
    MemObj *ref = NULL;
    CU_ASSERT_PTR_NULL(device_resolve(d, 1, mine[0].va, 1, &ref));
    /* the other owner is untouched */
    uint8_t *p = device_resolve(d, 2, theirs[1].va, theirs[1].size, &ref);
    CU_ASSERT_PTR_NOT_NULL(p);
    if (p)
        memobj_unref(ref);
    CU_ASSERT_EQUAL(device_release_owner(d, 1, &bytes), 0);
    CU_ASSERT_EQUAL(bytes, 0);
    /* owner 1 starts afresh, and its small allocations get a new block */
    bool fresh = false;
    DevAllocResult again = must_alloc(d, 1, 10, ACL_MEM_MALLOC_HUGE_FIRST, false, &fresh);
    CU_ASSERT_TRUE(fresh);
    CU_ASSERT_EQUAL(device_release_owner(d, 1, NULL), 1);
    (void)again;
    must_free(d, 2, theirs[0].va);
    must_free(d, 2, theirs[1].va);
    CU_ASSERT_EQUAL(dev_free(d), CAP);
    CU_ASSERT_TRUE(va_range_is_empty(d->heap));

    /* device_destroy releases what is still allocated (checked by LeakSanitizer) */
    must_alloc(d, 4, 10, ACL_MEM_MALLOC_HUGE_FIRST, false, NULL);
    must_alloc(d, 5, 10 * MiB, ACL_MEM_MALLOC_HUGE_FIRST, false, NULL);
    device_destroy(d);
}

/* ---- concurrency ---- */

#define THREADS 4
#define THREAD_OPS 1500
#define THREAD_LIVE 64

typedef struct Worker {
    Device *d;
    uint32_t owner;
    uint64_t seed;
    DevAllocResult live[THREAD_LIVE];
    unsigned nlive;
    unsigned errors;
} Worker;

static uint64_t wrnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static gpointer worker_main(gpointer data)
{
    Worker *w = data;
    static const uint64_t sizes[] = { 1, 100, 4000, 5000, 64 * KiB, MiB + 1, 3 * MiB };
    for (int op = 0; op < THREAD_OPS; op++) {
        if (w->nlive < THREAD_LIVE && (w->nlive == 0 || wrnd(&w->seed) % 2)) {
            DevAllocResult r;
            uint64_t sz = sizes[wrnd(&w->seed) % 7];
            uint32_t pol = (uint32_t)(wrnd(&w->seed) % 4);
            if (device_mem_alloc(w->d, w->owner, sz, pol, false, &r) != ACL_SUCCESS) {
                w->errors++;
                continue;
            }
            memobj_unref(r.new_obj);
            /* touch one word and check nobody else does */
            MemObj *ref = NULL;
            uint8_t *p = device_resolve(w->d, w->owner, r.va, 8, &ref);
            if (!p) {
                w->errors++;
                continue;
            }
            uint64_t tag = ((uint64_t)w->owner << 32) | (uint32_t)op;
            memcpy(p, &tag, 8);
            memobj_unref(ref);
            r.new_obj = (MemObj *)(uintptr_t)tag; /* remember the tag */
            w->live[w->nlive++] = r;
        } else {
            unsigned i = (unsigned)(wrnd(&w->seed) % w->nlive);
            DevAllocResult r = w->live[i];
            MemObj *ref = NULL;
            uint8_t *p = device_resolve(w->d, w->owner, r.va, 8, &ref);
            uint64_t tag = 0;
            if (p) {
                memcpy(&tag, p, 8);
                memobj_unref(ref);
            }
            if (tag != (uint64_t)(uintptr_t)r.new_obj)
                w->errors++;
            if (device_mem_free(w->d, w->owner, r.va, NULL) != ACL_SUCCESS)
                w->errors++;
            w->live[i] = w->live[--w->nlive];
        }
    }
    return NULL;
}

static int cmp_alloc(const void *a, const void *b)
{
    const DevAllocResult *x = a, *y = b;
    return x->va < y->va ? -1 : x->va > y->va;
}

static void test_concurrent_owners(void)
{
    Device *d = new_dev();
    Worker *w = calloc(THREADS, sizeof(*w));
    GThread *t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (Worker){ .d = d, .owner = 10 + (uint32_t)i, .seed = 0x1234567ull * (i + 1) };
        t[i] = g_thread_new("alloc", worker_main, &w[i]);
    }
    for (int i = 0; i < THREADS; i++)
        g_thread_join(t[i]);
    DevAllocResult *all = calloc(THREADS * THREAD_LIVE, sizeof(*all));
    unsigned n = 0;
    for (int i = 0; i < THREADS; i++) {
        CU_ASSERT_EQUAL(w[i].errors, 0);
        for (unsigned k = 0; k < w[i].nlive; k++)
            all[n++] = w[i].live[k];
    }
    qsort(all, n, sizeof(*all), cmp_alloc);
    for (unsigned k = 1; k < n; k++)
        CU_ASSERT_TRUE(all[k - 1].va + all[k - 1].size <= all[k].va);
    for (int i = 0; i < THREADS; i++)
        CU_ASSERT_EQUAL(device_release_owner(d, w[i].owner, NULL), w[i].nlive);
    CU_ASSERT_EQUAL(dev_free(d), CAP);
    CU_ASSERT_TRUE(va_range_is_empty(d->heap));
    /* every page came back: the whole HBM fits in 1 GiB pages again */
    DevAllocResult whole = must_alloc(d, 1, CAP, ACL_MEM_MALLOC_HUGE1G_ONLY, false, NULL);
    CU_ASSERT_EQUAL(phys_of(d, whole.va), 0);
    CU_ASSERT_EQUAL(phys_of(d, whole.va + CAP - 1), CAP - 1);
    must_free(d, 1, whole.va);
    free(all);
    free(w);
    device_destroy(d);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return CU_get_error();
    CU_pSuite s = CU_add_suite("device", NULL, NULL);
    if (!s || !CU_add_test(s, "device_malloc_size", test_malloc_size) ||
        !CU_add_test(s, "device_policy_page", test_policy_page) ||
        !CU_add_test(s, "segments: page size, rounding, alignment", test_alloc_big_segments) ||
        !CU_add_test(s, "small allocations share a block", test_alloc_small_shared_block) ||
        !CU_add_test(s, "a full small block makes a new one", test_small_block_overflow) ||
        !CU_add_test(s, "HBM accounting", test_hbm_accounting) ||
        !CU_add_test(s, "exhaustion and exact capacity", test_exhaustion) ||
        !CU_add_test(s, "HUGE_FIRST falls back to normal pages", test_huge_first_fallback) ||
        !CU_add_test(s, "HUGE_FIRST falls back when HBM is fragmented",
                     test_huge_first_fallback_fragmented) ||
        !CU_add_test(s, "segment VA to physical HBM", test_segment_phys) ||
        !CU_add_test(s, "VA heap exhaustion gives HBM back", test_va_heap_exhaustion) ||
        !CU_add_test(s, "free errors", test_free_errors) ||
        !CU_add_test(s, "resolve", test_resolve) ||
        !CU_add_test(s, "release_owner", test_release_owner) ||
        !CU_add_test(s, "concurrent owners", test_concurrent_owners)) {
        CU_cleanup_registry();
        return 1;
    }
    return cu_run_all();
}
