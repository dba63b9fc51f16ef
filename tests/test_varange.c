/*
 * test_varange.c - the first-fit range allocator (devmodel/varange.h).
 *
 * Besides the directed cases, a randomised run compares every allocation with
 * a byte-granular reference model: first fit over an occupancy bitmap gives
 * the exact address the allocator must return, so overlap, alignment and
 * free-bytes accounting are all checked after every operation.
 */
#include "devmodel/varange.h"

#include <CUnit/Basic.h>
#include "cu_run.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- basics ---- */

static void test_new_is_empty(void)
{
    VaRange *r = va_range_new(0x1000, 0x2000);
    CU_ASSERT_TRUE(va_range_is_empty(r));
    CU_ASSERT_EQUAL(va_range_free_bytes(r), 0x1000);
    va_range_destroy(r);
    va_range_destroy(NULL); /* must be harmless */
}

static void test_first_fit_alignment(void)
{
    VaRange *r = va_range_new(0x1010, 0x100000);
    uint64_t a = 0, b = 0, c = 0, d = 0;

    /* align 1: the very start, even though it is not aligned to anything */
    CU_ASSERT_TRUE(va_range_alloc(r, 0x10, 1, &a));
    CU_ASSERT_EQUAL(a, 0x1010);
    /* align 0x1000: the first 4 KiB boundary past 0x1020 */
    CU_ASSERT_TRUE(va_range_alloc(r, 0x100, 0x1000, &b));
    CU_ASSERT_EQUAL(b, 0x2000);
    /* the hole [0x1020, 0x2000) is still first in line for small aligned requests */
    CU_ASSERT_TRUE(va_range_alloc(r, 0x40, 0x40, &c));
    CU_ASSERT_EQUAL(c, 0x1040);
    /* too big for the hole: goes after b */
    CU_ASSERT_TRUE(va_range_alloc(r, 0x1000, 0x10, &d));
    CU_ASSERT_EQUAL(d, 0x2100);
    CU_ASSERT_EQUAL(va_range_free_bytes(r), (0x100000 - 0x1010) - 0x10 - 0x100 - 0x40 - 0x1000);
    CU_ASSERT_FALSE(va_range_is_empty(r));

    /* the leading remainder [0x1020,0x1040) is reusable */
    uint64_t e = 0;
    CU_ASSERT_TRUE(va_range_alloc(r, 0x20, 0x20, &e));
    CU_ASSERT_EQUAL(e, 0x1020);

    va_range_release(r, a, 0x10);
    va_range_release(r, b, 0x100);
    va_range_release(r, c, 0x40);
    va_range_release(r, d, 0x1000);
    va_range_release(r, e, 0x20);
    CU_ASSERT_TRUE(va_range_is_empty(r));
    va_range_destroy(r);
}

static void test_exhaustion(void)
{
    VaRange *r = va_range_new(0x10000, 0x20000);
    uint64_t a = 0, b = 0;
    CU_ASSERT_FALSE(va_range_alloc(r, 0x10001, 1, &a));
    CU_ASSERT_TRUE(va_range_alloc(r, 0x10000, 0x10000, &a));
    CU_ASSERT_EQUAL(a, 0x10000);
    CU_ASSERT_EQUAL(va_range_free_bytes(r), 0);
    CU_ASSERT_FALSE(va_range_alloc(r, 1, 1, &b));
    va_range_release(r, a, 0x10000);
    CU_ASSERT_TRUE(va_range_is_empty(r));

    /* size fits but not at the requested alignment */
    va_range_destroy(r);
    r = va_range_new(0x1001, 0x3001);
    CU_ASSERT_FALSE(va_range_alloc(r, 0x1002, 0x1000, &a));
    CU_ASSERT_TRUE(va_range_alloc(r, 0x1000, 0x1000, &a));
    CU_ASSERT_EQUAL(a, 0x2000);
    /* an alignment larger than the whole interval */
    CU_ASSERT_FALSE(va_range_alloc(r, 1, 1ull << 40, &b));
    va_range_destroy(r);
}

static void test_invalid_arguments(void)
{
    VaRange *r = va_range_new(0x1000, 0x100000);
    uint64_t a = 0xdead;
    CU_ASSERT_FALSE(va_range_alloc(r, 0, 1, &a));
    CU_ASSERT_FALSE(va_range_alloc(r, 0x100, 0, &a));
    CU_ASSERT_FALSE(va_range_alloc(r, 0x100, 3, &a));
    CU_ASSERT_FALSE(va_range_alloc(r, 0x100, 0x3000, &a));
    CU_ASSERT_FALSE(va_range_alloc(r, 0x100, (1ull << 63) | 1, &a));
    CU_ASSERT_EQUAL(a, 0xdead); /* untouched on failure */
    CU_ASSERT_TRUE(va_range_is_empty(r));
    va_range_destroy(r);
}

/* Alignment arithmetic must not wrap near the top of the address space. */
static void test_top_of_address_space(void)
{
    uint64_t lo = UINT64_MAX - 0xffff, hi = UINT64_MAX; /* [..., 2^64-1) */
    VaRange *r = va_range_new(lo, hi);
    uint64_t a = 0;
    CU_ASSERT_FALSE(va_range_alloc(r, 0x10, 1ull << 63, &a));
    CU_ASSERT_FALSE(va_range_alloc(r, 0x10, 1ull << 40, &a));
    CU_ASSERT_TRUE(va_range_alloc(r, 0x10, 0x10, &a));
    CU_ASSERT_EQUAL(a, lo);
    CU_ASSERT_TRUE(a >= lo && a + 0x10 <= hi);
    uint64_t b = 0;
    CU_ASSERT_TRUE(va_range_alloc(r, hi - (a + 0x10), 1, &b));
    CU_ASSERT_EQUAL(b, a + 0x10);
    va_range_release(r, a, 0x10);
    va_range_release(r, b, hi - (a + 0x10));
    CU_ASSERT_TRUE(va_range_is_empty(r));
    va_range_destroy(r);
}

/* ---- coalescing ---- */

/* Three adjacent ranges released in every order must merge back into one. */
static void test_release_coalesces_all_orders(void)
{
    static const int orders[6][3] = {
        { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 }, { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 },
    };
    for (int o = 0; o < 6; o++) {
        VaRange *r = va_range_new(0x100000, 0x100000 + 0x3000);
        uint64_t v[3];
        for (int i = 0; i < 3; i++) {
            CU_ASSERT_TRUE_FATAL(va_range_alloc(r, 0x1000, 0x1000, &v[i]));
            CU_ASSERT_EQUAL(v[i], 0x100000 + (uint64_t)i * 0x1000);
        }
        CU_ASSERT_EQUAL(va_range_free_bytes(r), 0);
        uint64_t freed = 0;
        for (int k = 0; k < 3; k++) {
            va_range_release(r, v[orders[o][k]], 0x1000);
            freed += 0x1000;
            CU_ASSERT_EQUAL(va_range_free_bytes(r), freed);
        }
        CU_ASSERT_TRUE(va_range_is_empty(r));
        /* only a coalesced free list can satisfy the whole interval at once */
        uint64_t all = 0;
        CU_ASSERT_TRUE(va_range_alloc(r, 0x3000, 1, &all));
        CU_ASSERT_EQUAL(all, 0x100000);
        va_range_destroy(r);
    }
}

/* Release next to the interval ends and between free neighbours. */
static void test_release_edges(void)
{
    VaRange *r = va_range_new(0, 0x10000);
    uint64_t v[16];
    for (int i = 0; i < 16; i++)
        CU_ASSERT_TRUE_FATAL(va_range_alloc(r, 0x1000, 1, &v[i]));
    va_range_release(r, v[15], 0x1000);  /* last: no right neighbour */
    va_range_release(r, v[0], 0x1000);   /* first, address 0 */
    va_range_release(r, v[14], 0x1000);  /* merges left of [15] */
    va_range_release(r, v[1], 0x1000);   /* merges right of [0] */
    uint64_t a;
    CU_ASSERT_TRUE(va_range_alloc(r, 0x2000, 1, &a));
    CU_ASSERT_EQUAL(a, 0);
    uint64_t b;
    CU_ASSERT_TRUE(va_range_alloc(r, 0x2000, 1, &b));
    CU_ASSERT_EQUAL(b, 0xe000);
    va_range_release(r, a, 0x2000);
    va_range_release(r, b, 0x2000);
    for (int i = 2; i < 14; i++)
        va_range_release(r, v[i], 0x1000);
    CU_ASSERT_TRUE(va_range_is_empty(r));
    CU_ASSERT_TRUE(va_range_alloc(r, 0x10000, 0x10000, &a));
    CU_ASSERT_EQUAL(a, 0);
    va_range_destroy(r);
}

/* ---- fragmentation ---- */

static void test_fragmentation(void)
{
    enum { N = 64 };
    const uint64_t S = 0x10000, lo = 0x40000000, hi = lo + N * S + 4 * S;
    VaRange *r = va_range_new(lo, hi);
    uint64_t v[N];
    for (int i = 0; i < N; i++) {
        CU_ASSERT_TRUE_FATAL(va_range_alloc(r, S, S, &v[i]));
        CU_ASSERT_EQUAL(v[i], lo + (uint64_t)i * S);
    }
    for (int i = 0; i < N; i += 2)
        va_range_release(r, v[i], S);
    CU_ASSERT_EQUAL(va_range_free_bytes(r), (N / 2) * S + 4 * S);

    /* the holes are S each: 2S only fits in the tail */
    uint64_t big = 0;
    CU_ASSERT_TRUE(va_range_alloc(r, 2 * S, 1, &big));
    CU_ASSERT_EQUAL(big, lo + N * S);
    uint64_t big2 = 0;
    CU_ASSERT_TRUE(va_range_alloc(r, 2 * S, 1, &big2));
    CU_ASSERT_EQUAL(big2, lo + N * S + 2 * S);
    /* now nothing bigger than S is left, although plenty of bytes are */
    uint64_t x = 0;
    CU_ASSERT_TRUE(va_range_free_bytes(r) >= 2 * S);
    CU_ASSERT_FALSE(va_range_alloc(r, S + 1, 1, &x));
    /* an S-sized request still fits, in the first hole */
    CU_ASSERT_TRUE(va_range_alloc(r, S, 1, &x));
    CU_ASSERT_EQUAL(x, lo);
    va_range_release(r, x, S);

    va_range_release(r, big, 2 * S);
    va_range_release(r, big2, 2 * S);
    for (int i = 1; i < N; i += 2)
        va_range_release(r, v[i], S);
    CU_ASSERT_TRUE(va_range_is_empty(r));
    uint64_t all = 0;
    CU_ASSERT_TRUE(va_range_alloc(r, hi - lo, 1, &all));
    CU_ASSERT_EQUAL(all, lo);
    va_range_destroy(r);
}

/* ---- randomised against a reference model ---- */

#define MODEL_BYTES 16384u
#define MODEL_LO    0x7ff00010ull /* deliberately not aligned beyond 16 */

typedef struct Live {
    uint64_t addr, size;
} Live;

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

/* Lowest address a >= lo, a % align == 0, with [a, a+size) all free. */
static bool model_first_fit(const uint8_t *used, uint64_t size, uint64_t align, uint64_t *out)
{
    uint64_t a = (MODEL_LO + align - 1) & ~(align - 1);
    for (; a + size <= MODEL_LO + MODEL_BYTES; a += align) {
        uint64_t off = a - MODEL_LO, k;
        for (k = 0; k < size && !used[off + k]; k++)
            ;
        if (k == size) {
            *out = a;
            return true;
        }
    }
    return false;
}

static void test_random_against_model(void)
{
    enum { OPS = 6000, MAXLIVE = 512 };
    uint8_t *used = calloc(MODEL_BYTES, 1);
    Live *live = calloc(MAXLIVE, sizeof(*live));
    unsigned nlive = 0, allocs = 0, fails = 0, mismatches = 0;
    uint64_t model_free = MODEL_BYTES;
    VaRange *r = va_range_new(MODEL_LO, MODEL_LO + MODEL_BYTES);
    rng_state = 0x9e3779b97f4a7c15ull;

    for (int op = 0; op < OPS; op++) {
        bool do_alloc = nlive == 0 || (nlive < MAXLIVE && rnd() % 100 < 55);
        if (do_alloc) {
            uint64_t size;
            switch (rnd() % 4) {
            case 0: size = 1 + rnd() % 16; break;
            case 1: size = 1 + rnd() % 256; break;
            case 2: size = 1 + rnd() % 2048; break;
            default: size = 1 + rnd() % MODEL_BYTES; break;
            }
            uint64_t align = 1ull << (rnd() % 11); /* 1 .. 1024 */
            uint64_t expect = 0, got = 0;
            bool model_ok = model_first_fit(used, size, align, &expect);
            bool ok = va_range_alloc(r, size, align, &got);
            CU_ASSERT_EQUAL(ok, model_ok);
            if (ok != model_ok || (ok && got != expect)) {
                if (mismatches++ < 5)
                    fprintf(stderr, "op %d: alloc(%#llx, align %#llx): got %d %#llx, model %d %#llx\n",
                            op, (unsigned long long)size, (unsigned long long)align, ok,
                            (unsigned long long)got, model_ok, (unsigned long long)expect);
            }
            if (!ok) {
                fails++;
                continue;
            }
            CU_ASSERT_EQUAL(got, expect);
            CU_ASSERT_EQUAL(got % align, 0);
            CU_ASSERT_TRUE(got >= MODEL_LO && got + size <= MODEL_LO + MODEL_BYTES);
            if (got < MODEL_LO || got + size > MODEL_LO + MODEL_BYTES)
                break;
            /* no overlap with anything live */
            bool overlap = false;
            for (uint64_t k = 0; k < size; k++) {
                overlap |= used[got - MODEL_LO + k] != 0;
                used[got - MODEL_LO + k] = 1;
            }
            CU_ASSERT_FALSE(overlap);
            live[nlive++] = (Live){ got, size };
            model_free -= size;
            allocs++;
        } else {
            unsigned i = (unsigned)(rnd() % nlive);
            Live l = live[i];
            live[i] = live[--nlive];
            va_range_release(r, l.addr, l.size);
            memset(used + (l.addr - MODEL_LO), 0, l.size);
            model_free += l.size;
        }
        CU_ASSERT_EQUAL(va_range_free_bytes(r), model_free);
        CU_ASSERT_EQUAL(va_range_is_empty(r), nlive == 0);
    }
    CU_ASSERT_EQUAL(mismatches, 0);
    /* both outcomes must have been exercised */
    CU_ASSERT_TRUE(allocs > 1000);
    CU_ASSERT_TRUE(fails > 10);

    while (nlive) {
        Live l = live[--nlive];
        va_range_release(r, l.addr, l.size);
    }
    CU_ASSERT_TRUE(va_range_is_empty(r));
    uint64_t all = 0;
    CU_ASSERT_TRUE(va_range_alloc(r, MODEL_BYTES, 1, &all));
    CU_ASSERT_EQUAL(all, MODEL_LO);
    va_range_destroy(r);
    free(live);
    free(used);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return CU_get_error();
    CU_pSuite s = CU_add_suite("varange", NULL, NULL);
    if (!s || !CU_add_test(s, "new range is empty", test_new_is_empty) ||
        !CU_add_test(s, "first fit with alignment", test_first_fit_alignment) ||
        !CU_add_test(s, "exhaustion", test_exhaustion) ||
        !CU_add_test(s, "zero size / bad alignment rejected", test_invalid_arguments) ||
        !CU_add_test(s, "no wrap at the top of the address space", test_top_of_address_space) ||
        !CU_add_test(s, "release coalesces in every order", test_release_coalesces_all_orders) ||
        !CU_add_test(s, "release at the edges", test_release_edges) ||
        !CU_add_test(s, "fragmentation", test_fragmentation) ||
        !CU_add_test(s, "random ops against a reference model", test_random_against_model)) {
        CU_cleanup_registry();
        return 1;
    }
    return cu_run_all();
}
