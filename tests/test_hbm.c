/*
 * test_hbm.c - HBM pool accounting (devmodel/hbm.h).
 */
#include "devmodel/hbm.h"

#include <CUnit/Basic.h>
#include "cu_run.h"
#include <stdint.h>

#define GiB (1ull << 30)
#define MiB (1ull << 20)

static void check_pool(const HbmPool *p, uint64_t used, uint64_t normal, uint64_t huge)
{
    CU_ASSERT_EQUAL(p->used, used);
    CU_ASSERT_EQUAL(p->used_normal, normal);
    CU_ASSERT_EQUAL(p->used_huge, huge);
    CU_ASSERT_EQUAL(p->used, p->used_normal + p->used_huge);
    CU_ASSERT_EQUAL(hbm_free_bytes(p), p->capacity - used);
}

static void test_init(void)
{
    HbmPool p = { .capacity = 1, .used = 2, .used_normal = 3, .used_huge = 4 };
    hbm_init(&p, 64 * GiB);
    CU_ASSERT_EQUAL(p.capacity, 64 * GiB);
    check_pool(&p, 0, 0, 0);
    CU_ASSERT_EQUAL(hbm_free_bytes(&p), 64 * GiB);
}

static void test_take_give_by_page_size(void)
{
    HbmPool p;
    hbm_init(&p, 64 * GiB);

    CU_ASSERT_TRUE(hbm_take(&p, 16 * HBM_PAGE_NORMAL, HBM_PAGE_NORMAL));
    check_pool(&p, 64 << 10, 64 << 10, 0);
    CU_ASSERT_TRUE(hbm_take(&p, 3 * HBM_PAGE_HUGE, HBM_PAGE_HUGE));
    check_pool(&p, (64 << 10) + 6 * MiB, 64 << 10, 6 * MiB);
    /* 1 GiB pages count as huge pages */
    CU_ASSERT_TRUE(hbm_take(&p, 2 * HBM_PAGE_1G, HBM_PAGE_1G));
    check_pool(&p, (64 << 10) + 6 * MiB + 2 * GiB, 64 << 10, 6 * MiB + 2 * GiB);

    hbm_give(&p, 3 * HBM_PAGE_HUGE, HBM_PAGE_HUGE);
    check_pool(&p, (64 << 10) + 2 * GiB, 64 << 10, 2 * GiB);
    hbm_give(&p, 16 * HBM_PAGE_NORMAL, HBM_PAGE_NORMAL);
    check_pool(&p, 2 * GiB, 0, 2 * GiB);
    hbm_give(&p, 2 * HBM_PAGE_1G, HBM_PAGE_1G);
    check_pool(&p, 0, 0, 0);
}

static void test_exhaustion(void)
{
    HbmPool p;
    hbm_init(&p, 8 * MiB);
    CU_ASSERT_TRUE(hbm_take(&p, 6 * MiB, HBM_PAGE_HUGE));
    /* 4 MiB do not fit in 2 MiB: refused and nothing changes */
    CU_ASSERT_FALSE(hbm_take(&p, 4 * MiB, HBM_PAGE_HUGE));
    CU_ASSERT_FALSE(hbm_take(&p, 2 * MiB + HBM_PAGE_NORMAL, HBM_PAGE_NORMAL));
    check_pool(&p, 6 * MiB, 0, 6 * MiB);
    /* but the remaining 2 MiB do, in normal pages */
    CU_ASSERT_TRUE(hbm_take(&p, 2 * MiB, HBM_PAGE_NORMAL));
    check_pool(&p, 8 * MiB, 2 * MiB, 6 * MiB);
    CU_ASSERT_EQUAL(hbm_free_bytes(&p), 0);
    CU_ASSERT_FALSE(hbm_take(&p, HBM_PAGE_NORMAL, HBM_PAGE_NORMAL));
    CU_ASSERT_FALSE(hbm_take(&p, HBM_PAGE_HUGE, HBM_PAGE_HUGE));
    check_pool(&p, 8 * MiB, 2 * MiB, 6 * MiB);
    /* giving back one page makes exactly that page available again */
    hbm_give(&p, HBM_PAGE_NORMAL, HBM_PAGE_NORMAL);
    CU_ASSERT_FALSE(hbm_take(&p, 2 * HBM_PAGE_NORMAL, HBM_PAGE_NORMAL));
    CU_ASSERT_TRUE(hbm_take(&p, HBM_PAGE_NORMAL, HBM_PAGE_NORMAL));
    CU_ASSERT_EQUAL(hbm_free_bytes(&p), 0);
}

static void test_exact_capacity(void)
{
    HbmPool p;
    hbm_init(&p, 64 * GiB);
    CU_ASSERT_FALSE(hbm_take(&p, 64 * GiB + HBM_PAGE_NORMAL, HBM_PAGE_NORMAL));
    CU_ASSERT_FALSE(hbm_take(&p, 65 * GiB, HBM_PAGE_1G));
    CU_ASSERT_TRUE(hbm_take(&p, 64 * GiB, HBM_PAGE_1G));
    check_pool(&p, 64 * GiB, 0, 64 * GiB);
    CU_ASSERT_FALSE(hbm_take(&p, HBM_PAGE_NORMAL, HBM_PAGE_NORMAL));
    hbm_give(&p, 64 * GiB, HBM_PAGE_1G);
    check_pool(&p, 0, 0, 0);

    /* filled with 2 MiB pages, one at a time */
    unsigned n = 0;
    while (hbm_take(&p, HBM_PAGE_HUGE, HBM_PAGE_HUGE))
        n++;
    CU_ASSERT_EQUAL(n, (64 * GiB) / HBM_PAGE_HUGE);
    CU_ASSERT_EQUAL(hbm_free_bytes(&p), 0);
    for (unsigned i = 0; i < n; i++)
        hbm_give(&p, HBM_PAGE_HUGE, HBM_PAGE_HUGE);
    check_pool(&p, 0, 0, 0);
}

/* Requests that would overflow a naive used + bytes <= capacity check. */
static void test_no_overflow(void)
{
    HbmPool p;
    hbm_init(&p, 64 * GiB);
    CU_ASSERT_TRUE(hbm_take(&p, 1 * GiB, HBM_PAGE_1G));
    CU_ASSERT_FALSE(hbm_take(&p, UINT64_MAX, HBM_PAGE_NORMAL));
    CU_ASSERT_FALSE(hbm_take(&p, UINT64_MAX - 1 * GiB + 1, HBM_PAGE_NORMAL));
    CU_ASSERT_FALSE(hbm_take(&p, (UINT64_MAX & ~(HBM_PAGE_HUGE - 1)), HBM_PAGE_HUGE));
    check_pool(&p, 1 * GiB, 0, 1 * GiB);
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
        !CU_add_test(s, "no overflow", test_no_overflow)) {
        CU_cleanup_registry();
        return 1;
    }
    return cu_run_all();
}
