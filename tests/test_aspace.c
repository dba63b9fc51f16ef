/*
 * test_aspace.c - a client's address space (devmodel/aspace.h) over real
 * devices, without sockets: physical handles and their HBM accounting,
 * reservations in the VMM parts of the window, the rules of mapping, the
 * translation the stream engine uses (aspace_resolve) with rights and peer
 * views, deferred frees, retain counting, teardown with everything live, and
 * resolution racing map / unmap / free.
 *
 * Backing is sparse: the devices have 4 GiB of HBM each and the tests touch a
 * few pages of what they allocate.
 */
#include "devmodel/aspace.h"

#include <CUnit/Basic.h>
#include "cu_run.h"
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "acl/acl_base.h"
#include "acl/acl_rt.h"
#include "npuemu/proto.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define CAP (4 * GiB)
#define NDEV 3
#define OWNER 7u

static Device *by_tag[EMU_MAX_DEVICES];

/* The start of device d's span, its aclrtMalloc heap and its VMM part. */
static uint64_t span_of(int d)
{
    return EMU_VA_WINDOW_LO + (uint64_t)d * EMU_VA_DEVICE_SPAN;
}

static uint64_t vmm_of(int d)
{
    return span_of(d) + EMU_VA_VMM_OFFSET;
}

static int suite_init(void)
{
    for (int i = 0; i < NDEV; i++) {
        uint64_t heap = span_of(i) + EMU_VA_HEAP_OFFSET;
        by_tag[i] = device_new(i, CAP, heap, heap + EMU_VA_MALLOC_SPAN);
        if (!by_tag[i])
            return -1;
        by_tag[i]->tag = (uint32_t)i;
    }
    return 0;
}

static int suite_clean(void)
{
    for (int i = 0; i < NDEV; i++) {
        device_destroy(by_tag[i]);
        by_tag[i] = NULL;
    }
    return 0;
}

static AddrSpace *new_as(uint32_t owner)
{
    return aspace_new(owner, by_tag, EMU_MAX_DEVICES, 0, NDEV, NULL);
}

static uint64_t dev_free(int d)
{
    uint64_t f = 0, t = 0;
    device_mem_info(by_tag[d], &f, &t);
    CU_ASSERT_EQUAL(t, CAP);
    return f;
}

static bool all_free(void)
{
    bool ok = true;
    for (int d = 0; d < NDEV; d++) {
        uint64_t f = dev_free(d);
        if (f != CAP) {
            fprintf(stderr, "device %d: %llu of %llu bytes free\n", d, (unsigned long long)f,
                    (unsigned long long)CAP);
            ok = false;
        }
    }
    return ok;
}

static uint64_t must_phys(AddrSpace *as, int dev, uint64_t size, uint64_t page)
{
    uint64_t h = 0;
    CU_ASSERT_EQUAL(aspace_phys_alloc(as, dev, size, page, 0, &h), ACL_SUCCESS);
    CU_ASSERT_NOT_EQUAL(h, 0);
    return h;
}

static uint64_t must_reserve(AddrSpace *as, uint64_t size, uint64_t expect)
{
    uint64_t va = 0;
    CU_ASSERT_EQUAL(aspace_reserve(as, size, 2 * MiB, expect, &va), ACL_SUCCESS);
    if (expect)
        CU_ASSERT_EQUAL(va, expect);
    return va;
}

/* Maps handle (size bytes) at va; returns the memory object (referenced) or NULL. */
static MemObj *map_h(AddrSpace *as, uint64_t va, uint64_t size, uint64_t handle, uint32_t prot,
                     int *err)
{
    MemObj *obj = NULL;
    uint64_t rva = 0, page = 0;
    int dev = -1;
    int e = aspace_map(as, va, size, handle, prot, &obj, &rva, &dev, &page);
    if (err)
        *err = e;
    return e == ACL_SUCCESS ? obj : NULL;
}

static MemObj *must_map(AddrSpace *as, uint64_t va, uint64_t size, uint64_t handle, uint32_t prot)
{
    int err = -1;
    MemObj *obj = map_h(as, va, size, handle, prot, &err);
    CU_ASSERT_EQUAL(err, ACL_SUCCESS);
    CU_ASSERT_PTR_NOT_NULL(obj);
    return obj;
}

static int try_map(AddrSpace *as, uint64_t va, uint64_t size, uint64_t handle, uint32_t prot)
{
    int err = -1;
    MemObj *obj = map_h(as, va, size, handle, prot, &err);
    memobj_unref(obj);
    return err;
}

static void must_unmap(AddrSpace *as, uint64_t va)
{
    uint64_t h = 0, size = 0;
    CU_ASSERT_EQUAL(aspace_unmap(as, va, &h, &size), ACL_SUCCESS);
}

/* aspace_resolve; drops the reference; returns the host address and *len. */
static uint8_t *resolve(AddrSpace *as, int dev, uint64_t va, uint64_t *len, uint32_t access,
                        MemObj **obj_out)
{
    MemObj *ref = NULL;
    uint8_t *p = aspace_resolve(as, dev, va, len, access, &ref);
    if (p) {
        CU_ASSERT_PTR_NOT_NULL(ref);
        if (ref) {
            CU_ASSERT_TRUE(p >= ref->map && p < ref->map + ref->size);
            CU_ASSERT_TRUE(*len <= ref->size - (uint64_t)(p - ref->map));
        }
    }
    if (obj_out)
        *obj_out = ref;
    memobj_unref(ref);
    return p;
}

static bool can(AddrSpace *as, int dev, uint64_t va, uint32_t access)
{
    uint64_t len = 1;
    return resolve(as, dev, va, &len, access, NULL) != NULL;
}

/* ---- physical handles ---- */

static void test_phys_alloc_args(void)
{
    AddrSpace *as = new_as(OWNER);
    uint64_t h = 0;
    CU_ASSERT_EQUAL(aspace_phys_alloc(as, -1, 2 * MiB, 2 * MiB, 0, &h),
                    ACL_ERROR_RT_INVALID_DEVICEID);
    CU_ASSERT_EQUAL(aspace_phys_alloc(as, NDEV, 2 * MiB, 2 * MiB, 0, &h),
                    ACL_ERROR_RT_INVALID_DEVICEID);
    CU_ASSERT_EQUAL(aspace_phys_alloc(as, EMU_MAX_DEVICES, 2 * MiB, 2 * MiB, 0, &h),
                    ACL_ERROR_RT_INVALID_DEVICEID);
    /* page sizes other than the three */
    const uint64_t bad_pages[] = { 0, 1, 8 * KiB, 64 * KiB, 1 * MiB, 4 * MiB, 2 * GiB };
    for (unsigned i = 0; i < sizeof(bad_pages) / sizeof(bad_pages[0]); i++)
        CU_ASSERT_EQUAL(aspace_phys_alloc(as, 0, 4 * MiB, bad_pages[i], 0, &h),
                        ACL_ERROR_RT_PARAM_INVALID);
    /* sizes: zero, not a multiple of the page, not a multiple of 2 MiB */
    CU_ASSERT_EQUAL(aspace_phys_alloc(as, 0, 0, 2 * MiB, 0, &h), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_phys_alloc(as, 0, 3 * MiB, 2 * MiB, 0, &h),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_phys_alloc(as, 0, 4 * KiB, 4 * KiB, 0, &h),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_phys_alloc(as, 0, 2 * MiB + 4 * KiB, 4 * KiB, 0, &h),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_phys_alloc(as, 0, 2 * MiB, 1 * GiB, 0, &h),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_phys_alloc(as, 0, 1 * GiB + 2 * MiB, 1 * GiB, 0, &h),
                    ACL_ERROR_RT_PARAM_INVALID);
    /* more than the device has, now or ever */
    CU_ASSERT_EQUAL(aspace_phys_alloc(as, 0, CAP + 2 * MiB, 2 * MiB, 0, &h),
                    ACL_ERROR_RT_MEMORY_ALLOCATION);
    CU_ASSERT_EQUAL(aspace_phys_alloc(as, 0, 1ull << 62, 2 * MiB, 0, &h),
                    ACL_ERROR_RT_MEMORY_ALLOCATION);
    CU_ASSERT_EQUAL(aspace_handles(as), 0);
    CU_ASSERT_TRUE(all_free());

    /* freeing what is not a handle */
    CU_ASSERT_EQUAL(aspace_phys_free(as, 0, NULL), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_phys_free(as, 0x1234, NULL), ACL_ERROR_RT_PARAM_INVALID);
    aspace_destroy(as, NULL, NULL);
}

static void test_phys_accounting(void)
{
    AddrSpace *as = new_as(OWNER);
    uint64_t base0 = dev_free(0), base1 = dev_free(1);
    uint64_t a = must_phys(as, 0, 6 * MiB, 2 * MiB);
    CU_ASSERT_EQUAL(dev_free(0), base0 - 6 * MiB);
    uint64_t b = must_phys(as, 0, 2 * MiB, 4 * KiB);
    CU_ASSERT_EQUAL(dev_free(0), base0 - 8 * MiB);
    uint64_t c = must_phys(as, 1, 1 * GiB, 1 * GiB);
    CU_ASSERT_EQUAL(dev_free(1), base1 - 1 * GiB);
    CU_ASSERT_EQUAL(dev_free(2), CAP);
    CU_ASSERT_EQUAL(aspace_handles(as), 3);
    CU_ASSERT_TRUE(a != b && b != c && a != c);
    /* 1 GiB pages: only whole free chunks count; the 4 GiB device has 3 left */
    CU_ASSERT_EQUAL(device_mem_fits(by_tag[1], 1 * GiB), 3 * GiB);

    /* exhaustion: the rest of device 2 in one handle, then nothing more */
    uint64_t all = must_phys(as, 2, CAP, 2 * MiB);
    CU_ASSERT_EQUAL(dev_free(2), 0);
    uint64_t h = 0;
    CU_ASSERT_EQUAL(aspace_phys_alloc(as, 2, 2 * MiB, 2 * MiB, 0, &h),
                    ACL_ERROR_RT_MEMORY_ALLOCATION);
    CU_ASSERT_EQUAL(aspace_handles(as), 4);
    CU_ASSERT_EQUAL(aspace_phys_free(as, all, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(dev_free(2), CAP);

    CU_ASSERT_EQUAL(aspace_phys_free(as, b, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(dev_free(0), base0 - 6 * MiB);
    CU_ASSERT_EQUAL(aspace_phys_free(as, b, NULL), ACL_ERROR_RT_PARAM_INVALID); /* double free */
    CU_ASSERT_EQUAL(aspace_phys_free(as, a, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_phys_free(as, c, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(dev_free(0), base0);
    CU_ASSERT_EQUAL(dev_free(1), base1);
    CU_ASSERT_EQUAL(aspace_handles(as), 0);
    CU_ASSERT_TRUE(all_free());

    /* handles are per address space */
    AddrSpace *other = new_as(OWNER + 1);
    uint64_t mine = must_phys(as, 0, 2 * MiB, 2 * MiB);
    CU_ASSERT_EQUAL(aspace_phys_free(other, mine, NULL), ACL_ERROR_RT_PARAM_INVALID);
    uint64_t rva = must_reserve(other, 2 * MiB, 0);
    CU_ASSERT_EQUAL(try_map(other, rva, 2 * MiB, mine, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_phys_free(as, mine, NULL), ACL_SUCCESS);
    aspace_destroy(other, NULL, NULL);
    aspace_destroy(as, NULL, NULL);
    CU_ASSERT_TRUE(all_free());
}

/* ---- reservations ---- */

static bool in_vmm_part(uint64_t va, uint64_t size)
{
    if (va < EMU_VA_WINDOW_LO || va >= EMU_VA_WINDOW_HI)
        return false;
    uint64_t span = EMU_VA_WINDOW_LO + (va - EMU_VA_WINDOW_LO) / EMU_VA_DEVICE_SPAN *
                                           EMU_VA_DEVICE_SPAN;
    return va >= span + EMU_VA_VMM_OFFSET && size <= span + EMU_VA_DEVICE_SPAN - va;
}

static void test_reserve(void)
{
    AddrSpace *as = new_as(OWNER);
    uint64_t va = 0;
    /* sizes and alignments */
    CU_ASSERT_EQUAL(aspace_reserve(as, 0, 2 * MiB, 0, &va), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_reserve(as, 4 * KiB, 2 * MiB, 0, &va), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_reserve(as, 3 * MiB, 2 * MiB, 0, &va), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_reserve(as, 2 * MiB + 1, 2 * MiB, 0, &va),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_reserve(as, 2 * MiB, 0, 0, &va), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_reserve(as, 2 * MiB, 3 * MiB, 0, &va), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_reserve(as, 2 * MiB, 6 * MiB, 0, &va), ACL_ERROR_RT_PARAM_INVALID);
    /* larger than any VMM part */
    CU_ASSERT_EQUAL(aspace_reserve(as, EMU_VA_DEVICE_SPAN, 2 * MiB, 0, &va),
                    ACL_ERROR_RT_MEMORY_ALLOCATION);
    CU_ASSERT_EQUAL(aspace_reservations(as), 0);

    /* automatic placement: only in VMM parts, aligned, never overlapping */
    uint64_t got[24], sz[24];
    for (unsigned i = 0; i < 24; i++) {
        sz[i] = (1 + i % 5) * 2 * MiB;
        uint64_t align = i % 3 == 0 ? 2 * MiB : i % 3 == 1 ? 64 * MiB : 1 * GiB;
        CU_ASSERT_EQUAL_FATAL(aspace_reserve(as, sz[i], align, 0, &got[i]), ACL_SUCCESS);
        CU_ASSERT_EQUAL(got[i] % align, 0);
        CU_ASSERT_TRUE(in_vmm_part(got[i], sz[i]));
        for (unsigned j = 0; j < i; j++)
            CU_ASSERT_TRUE(got[i] + sz[i] <= got[j] || got[j] + sz[j] <= got[i]);
    }
    /* a whole VMM part (256 GiB) fits, and lands in one */
    uint64_t big = 0;
    uint64_t vmm_len = EMU_VA_DEVICE_SPAN - EMU_VA_VMM_OFFSET;
    CU_ASSERT_EQUAL(aspace_reserve(as, vmm_len, 2 * MiB, 0, &big), ACL_SUCCESS);
    CU_ASSERT_TRUE(in_vmm_part(big, vmm_len));
    CU_ASSERT_EQUAL(big % EMU_VA_DEVICE_SPAN, (EMU_VA_WINDOW_LO + EMU_VA_VMM_OFFSET) %
                                                 EMU_VA_DEVICE_SPAN);
    CU_ASSERT_EQUAL(aspace_reservations(as), 25);

    /* expect: honoured inside a VMM part of any span */
    uint64_t want = vmm_of(5) + 64 * MiB;
    CU_ASSERT_EQUAL(aspace_reserve(as, 8 * MiB, 2 * MiB, want, &va), ACL_SUCCESS);
    CU_ASSERT_EQUAL(va, want);
    /* ... refused when occupied, in whole or in part */
    CU_ASSERT_EQUAL(aspace_reserve(as, 8 * MiB, 2 * MiB, want, &va), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_reserve(as, 2 * MiB, 2 * MiB, want + 6 * MiB, &va),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_reserve(as, 4 * MiB, 2 * MiB, want - 2 * MiB, &va),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_reserve(as, 2 * MiB, 2 * MiB, got[0], &va),
                    ACL_ERROR_RT_PARAM_INVALID);
    /* ... refused when misaligned (to align, or to the 2 MiB grain) */
    CU_ASSERT_EQUAL(aspace_reserve(as, 2 * MiB, 4 * MiB, want + 10 * MiB, &va),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_reserve(as, 2 * MiB, 2 * MiB, want + 8 * MiB + 4 * KiB, &va),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_reserve(as, 2 * MiB, 4 * KiB, want + 8 * MiB + 4 * KiB, &va),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_reserve(as, 2 * MiB, 1, want + 8 * MiB + 1, &va),
                    ACL_ERROR_RT_PARAM_INVALID);
    /* ... refused outside the VMM parts: aclrtMalloc heaps, span heads, outside the window */
    CU_ASSERT_EQUAL(aspace_reserve(as, 2 * MiB, 2 * MiB, span_of(5) + EMU_VA_HEAP_OFFSET, &va),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_reserve(as, 2 * MiB, 2 * MiB, vmm_of(5) - 2 * MiB, &va),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_reserve(as, 2 * MiB, 2 * MiB, span_of(5), &va),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_reserve(as, 2 * MiB, 2 * MiB, EMU_VA_WINDOW_LO - 2 * MiB, &va),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_reserve(as, 2 * MiB, 2 * MiB, EMU_VA_WINDOW_HI, &va),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_reserve(as, 2 * MiB, 2 * MiB, 32ull << 40, &va),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_reserve(as, 2 * MiB, 2 * MiB, UINT64_MAX & ~(2 * MiB - 1), &va),
                    ACL_ERROR_RT_PARAM_INVALID);
    /* ... and when it would run past its VMM part into the next span or the window's end */
    CU_ASSERT_EQUAL(aspace_reserve(as, 4 * MiB, 2 * MiB, span_of(6) - 2 * MiB, &va),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_reserve(as, 4 * MiB, 2 * MiB, EMU_VA_WINDOW_HI - 2 * MiB, &va),
                    ACL_ERROR_RT_PARAM_INVALID);
    /* the last 2 MiB of a VMM part and of the window are fine */
    CU_ASSERT_EQUAL(aspace_reserve(as, 2 * MiB, 2 * MiB, span_of(6) - 2 * MiB, &va),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_reserve(as, 2 * MiB, 2 * MiB, EMU_VA_WINDOW_HI - 2 * MiB, &va),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_reservations(as), 28);

    /* release: only by the start of a reservation */
    CU_ASSERT_EQUAL(aspace_release(as, want + 2 * MiB), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_release(as, want - 2 * MiB), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_release(as, 0), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_release(as, want), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_release(as, want), ACL_ERROR_RT_PARAM_INVALID);
    /* the range is free again */
    CU_ASSERT_EQUAL(aspace_reserve(as, 8 * MiB, 2 * MiB, want, &va), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_release(as, want), ACL_SUCCESS);
    for (unsigned i = 0; i < 24; i++)
        CU_ASSERT_EQUAL(aspace_release(as, got[i]), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_release(as, big), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_reservations(as), 2);

    /* reservations are private: another space may take the same range */
    AddrSpace *other = new_as(OWNER + 1);
    CU_ASSERT_EQUAL(aspace_reserve(other, 8 * MiB, 2 * MiB, want, &va), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_reserve(as, 8 * MiB, 2 * MiB, want, &va), ACL_SUCCESS);
    aspace_destroy(other, NULL, NULL);
    aspace_destroy(as, NULL, NULL);
    CU_ASSERT_TRUE(all_free());
}

/* ---- mappings ---- */

static void test_map_rules(void)
{
    AddrSpace *as = new_as(OWNER);
    uint64_t base0 = dev_free(0);
    uint64_t h4 = must_phys(as, 0, 4 * MiB, 2 * MiB);
    uint64_t h4b = must_phys(as, 0, 4 * MiB, 4 * KiB);
    uint64_t h2 = must_phys(as, 0, 2 * MiB, 2 * MiB);
    uint64_t h1 = must_phys(as, 1, 2 * MiB, 2 * MiB);
    uint64_t hg = must_phys(as, 2, 1 * GiB, 1 * GiB);
    uint64_t r = must_reserve(as, 16 * MiB, 0);
    uint64_t r2 = must_reserve(as, 16 * MiB, r + 16 * MiB); /* right after r */
    uint64_t rg = 0;
    CU_ASSERT_EQUAL(aspace_reserve(as, 4 * GiB, 1 * GiB, 0, &rg), ACL_SUCCESS);

    /* size must be the handle's */
    CU_ASSERT_EQUAL(try_map(as, r, 2 * MiB, h4, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_map(as, r, 6 * MiB, h4, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_map(as, r, 0, h4, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    /* a handle of this space */
    CU_ASSERT_EQUAL(try_map(as, r, 4 * MiB, 0, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_map(as, r, 4 * MiB, h4 ^ 1, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    /* inside one reservation */
    CU_ASSERT_EQUAL(try_map(as, vmm_of(7), 4 * MiB, h4, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_map(as, r - 2 * MiB, 4 * MiB, h4, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_map(as, r + 14 * MiB, 4 * MiB, h4, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_map(as, span_of(0) + EMU_VA_HEAP_OFFSET, 4 * MiB, h4, PT_RW),
                    ACL_ERROR_RT_PARAM_INVALID);
    /* 2 MiB alignment, and the handle's page alignment */
    CU_ASSERT_EQUAL(try_map(as, r + 4 * KiB, 4 * MiB, h4b, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_map(as, r + 1 * MiB, 4 * MiB, h4, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_map(as, rg + 2 * MiB, 1 * GiB, hg, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    /* rights: read-write or none */
    CU_ASSERT_EQUAL(try_map(as, r, 4 * MiB, h4, 4), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_map(as, r, 4 * MiB, h4, 0xffffffffu), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_mappings(as), 0);

    /* good mappings report the reservation, device and page size */
    MemObj *obj = NULL;
    uint64_t rva = 0, page = 0;
    int dev = -1;
    CU_ASSERT_EQUAL(aspace_map(as, r + 2 * MiB, 4 * MiB, h4, PT_RW, &obj, &rva, &dev, &page),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(rva, r);
    CU_ASSERT_EQUAL(dev, 0);
    CU_ASSERT_EQUAL(page, 2 * MiB);
    CU_ASSERT_PTR_NOT_NULL_FATAL(obj);
    CU_ASSERT_EQUAL(obj->size, 4 * MiB);
    memobj_unref(obj);
    obj = NULL;
    CU_ASSERT_EQUAL(aspace_map(as, r + 6 * MiB, 4 * MiB, h4b, 0, &obj, &rva, &dev, &page),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(rva, r);
    CU_ASSERT_EQUAL(page, 4 * KiB);
    memobj_unref(obj);
    obj = NULL;
    CU_ASSERT_EQUAL(aspace_map(as, rg + 1 * GiB, 1 * GiB, hg, PT_RW, &obj, &rva, &dev, &page),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(rva, rg);
    CU_ASSERT_EQUAL(dev, 2);
    CU_ASSERT_EQUAL(page, 1 * GiB);
    memobj_unref(obj);
    CU_ASSERT_EQUAL(aspace_mappings(as), 3);

    /* no overlap with what is mapped: from below, inside, from above */
    CU_ASSERT_EQUAL(try_map(as, r, 4 * MiB, h4, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_map(as, r + 2 * MiB, 2 * MiB, h2, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_map(as, r + 8 * MiB, 2 * MiB, h2, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_map(as, r + 4 * MiB, 4 * MiB, h4, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    /* one device per reservation while anything is mapped in it */
    CU_ASSERT_EQUAL(try_map(as, r + 12 * MiB, 2 * MiB, h1, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_map(as, r2, 2 * MiB, h1, PT_RW), ACL_SUCCESS);   /* its own reservation */
    /* back to back with the neighbours is fine */
    CU_ASSERT_EQUAL(try_map(as, r, 2 * MiB, h2, PT_RW), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_mappings(as), 5);

    /* unmap: only at the start of a mapping */
    uint64_t hh = 0, sz = 0;
    CU_ASSERT_EQUAL(aspace_unmap(as, r + 4 * MiB, &hh, &sz), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_unmap(as, r + 14 * MiB, &hh, &sz), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_unmap(as, r + 2 * MiB, &hh, &sz), ACL_SUCCESS);
    CU_ASSERT_EQUAL(hh, h4);
    CU_ASSERT_EQUAL(sz, 4 * MiB);
    CU_ASSERT_EQUAL(aspace_unmap(as, r + 2 * MiB, &hh, &sz), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_unmap(as, r + 6 * MiB, &hh, &sz), ACL_SUCCESS);
    CU_ASSERT_EQUAL(hh, h4b);
    /* device 0 still has h2 in r: device 1 still refused */
    CU_ASSERT_EQUAL(try_map(as, r + 12 * MiB, 2 * MiB, h1, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    must_unmap(as, r);
    /* r is empty: it takes the device of whatever comes first */
    CU_ASSERT_EQUAL(aspace_unmap(as, r2, &hh, &sz), ACL_SUCCESS);
    CU_ASSERT_EQUAL(hh, h1);
    CU_ASSERT_EQUAL(try_map(as, r + 12 * MiB, 2 * MiB, h1, PT_RW), ACL_SUCCESS);
    CU_ASSERT_EQUAL(try_map(as, r, 4 * MiB, h4, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    /* the same handle may be mapped at a second address */
    CU_ASSERT_EQUAL(try_map(as, r2 + 4 * MiB, 2 * MiB, h1, PT_RW), ACL_SUCCESS);
    must_unmap(as, r2 + 4 * MiB);
    must_unmap(as, r + 12 * MiB);
    must_unmap(as, rg + 1 * GiB);
    CU_ASSERT_EQUAL(aspace_mappings(as), 0);
    /* nothing mapped leaves no page-table entries */
    for (int d = 0; d < NDEV; d++)
        CU_ASSERT_EQUAL(pt_leaves(aspace_table(as, d)), 0);
    CU_ASSERT_PTR_NULL(aspace_table(as, NDEV));
    CU_ASSERT_PTR_NULL(aspace_table(as, -1));

    CU_ASSERT_EQUAL(aspace_phys_free(as, h4, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_phys_free(as, h4b, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_phys_free(as, h2, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_phys_free(as, h1, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_phys_free(as, hg, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(dev_free(0), base0);
    CU_ASSERT_EQUAL(aspace_release(as, r), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_release(as, r2), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_release(as, rg), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_reservations(as), 0);
    aspace_destroy(as, NULL, NULL);
    CU_ASSERT_TRUE(all_free());
}

/* ---- translation ---- */

static void test_resolve_bytes(void)
{
    AddrSpace *as = new_as(OWNER);
    uint64_t ha = must_phys(as, 0, 4 * MiB, 2 * MiB);
    uint64_t hb = must_phys(as, 0, 4 * MiB, 4 * KiB);
    uint64_t r = must_reserve(as, 16 * MiB, 0);
    MemObj *oa = must_map(as, r, 4 * MiB, ha, PT_RW);
    MemObj *ob = must_map(as, r + 4 * MiB, 4 * MiB, hb, PT_RW);
    CU_ASSERT_PTR_NOT_NULL_FATAL(oa);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ob);
    CU_ASSERT_PTR_NOT_EQUAL(oa, ob);

    /* the bytes of the handle's memory object, both ways */
    uint64_t len = 100;
    MemObj *got = NULL;
    uint8_t *p = resolve(as, 0, r + 12345, &len, PT_WRITE, &got);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(len, 100);
    CU_ASSERT_PTR_EQUAL(got, oa);
    CU_ASSERT_PTR_EQUAL(p, oa->map + 12345);
    memcpy(p, "through the table", 17);
    CU_ASSERT_EQUAL(memcmp(oa->map + 12345, "through the table", 17), 0);
    oa->map[3 * MiB + 7] = 0x5a;
    len = 1;
    p = resolve(as, 0, r + 3 * MiB + 7, &len, PT_READ, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(*p, 0x5a);

    /* contiguous pages of one object merge: 2 MiB pages, and 4 KiB pages */
    len = 4 * MiB;
    p = resolve(as, 0, r, &len, PT_RW, &got);
    CU_ASSERT_PTR_EQUAL(p, oa->map);
    CU_ASSERT_EQUAL(len, 4 * MiB);
    len = 4 * MiB - 100;
    p = resolve(as, 0, r + 4 * MiB + 100, &len, PT_RW, &got);
    CU_ASSERT_PTR_EQUAL(p, ob->map + 100);
    CU_ASSERT_EQUAL(len, 4 * MiB - 100);
    CU_ASSERT_PTR_EQUAL(got, ob);
    /* ... and stop at an object boundary: two handles back to back are two pieces */
    len = 8 * MiB;
    p = resolve(as, 0, r, &len, PT_RW, &got);
    CU_ASSERT_PTR_EQUAL(p, oa->map);
    CU_ASSERT_EQUAL(len, 4 * MiB);
    CU_ASSERT_PTR_EQUAL(got, oa);
    len = 8 * MiB;
    p = resolve(as, 0, r + 4 * MiB - 10, &len, PT_RW, &got);
    CU_ASSERT_PTR_EQUAL(p, oa->map + 4 * MiB - 10);
    CU_ASSERT_EQUAL(len, 10);
    len = 8 * MiB;
    p = resolve(as, 0, r + 4 * MiB, &len, PT_RW, &got);
    CU_ASSERT_PTR_EQUAL(p, ob->map);
    CU_ASSERT_EQUAL(len, 4 * MiB);
    CU_ASSERT_PTR_EQUAL(got, ob);
    /* ... and at the end of what is mapped */
    len = 100 * MiB;
    p = resolve(as, 0, r + 5 * MiB, &len, PT_RW, NULL);
    CU_ASSERT_EQUAL(len, 3 * MiB);

    /* unmapped: inside the reservation, outside it, outside the window; len 0 */
    CU_ASSERT_FALSE(can(as, 0, r + 8 * MiB, PT_READ));
    CU_ASSERT_FALSE(can(as, 0, r + 16 * MiB, PT_READ));
    CU_ASSERT_FALSE(can(as, 0, r - 1, PT_READ));
    CU_ASSERT_FALSE(can(as, 0, 0x1000, PT_READ));
    CU_ASSERT_FALSE(can(as, 0, UINT64_MAX, PT_READ));
    len = 0;
    CU_ASSERT_PTR_NULL(resolve(as, 0, r, &len, PT_READ, NULL));
    /* devices that do not exist */
    CU_ASSERT_FALSE(can(as, -1, r, PT_READ));
    CU_ASSERT_FALSE(can(as, NDEV, r, PT_READ));

    memobj_unref(oa);
    memobj_unref(ob);
    /* after unmap, gone */
    must_unmap(as, r);
    CU_ASSERT_FALSE(can(as, 0, r, PT_READ));
    CU_ASSERT_TRUE(can(as, 0, r + 4 * MiB, PT_READ));
    aspace_destroy(as, NULL, NULL);
    CU_ASSERT_TRUE(all_free());
}

static void test_resolve_rights(void)
{
    AddrSpace *as = new_as(OWNER);
    uint64_t h = must_phys(as, 0, 4 * MiB, 2 * MiB);
    uint64_t r = must_reserve(as, 8 * MiB, 0);
    /* aclrtMemMapNoAccess: mapped, no rights */
    MemObj *obj = must_map(as, r, 4 * MiB, h, 0);
    CU_ASSERT_EQUAL(pt_leaves(aspace_table(as, 0)), 2);
    CU_ASSERT_FALSE(can(as, 0, r, PT_READ));
    CU_ASSERT_FALSE(can(as, 0, r, PT_WRITE));
    CU_ASSERT_FALSE(can(as, 0, r + 3 * MiB, PT_RW));

    /* set_access: argument checks */
    CU_ASSERT_EQUAL(aspace_set_access(as, r, 2 * MiB, 0, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_set_access(as, r, 8 * MiB, 0, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_set_access(as, r + 2 * MiB, 2 * MiB, 0, PT_RW),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_set_access(as, r + 4 * MiB, 4 * MiB, 0, PT_RW),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_set_access(as, r, 4 * MiB, 0, 4), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_set_access(as, r, 4 * MiB, -1, PT_RW), ACL_ERROR_RT_INVALID_DEVICEID);
    CU_ASSERT_EQUAL(aspace_set_access(as, r, 4 * MiB, NDEV, PT_RW),
                    ACL_ERROR_RT_INVALID_DEVICEID);
    CU_ASSERT_FALSE(can(as, 0, r, PT_READ));

    /* read only, then read-write, then none again */
    CU_ASSERT_EQUAL(aspace_set_access(as, r, 4 * MiB, 0, PT_READ), ACL_SUCCESS);
    CU_ASSERT_TRUE(can(as, 0, r, PT_READ));
    CU_ASSERT_TRUE(can(as, 0, r + 4 * MiB - 1, PT_READ));
    CU_ASSERT_FALSE(can(as, 0, r, PT_WRITE));
    CU_ASSERT_FALSE(can(as, 0, r, PT_RW));
    CU_ASSERT_EQUAL(aspace_set_access(as, r, 4 * MiB, 0, PT_RW), ACL_SUCCESS);
    CU_ASSERT_TRUE(can(as, 0, r, PT_RW));
    uint64_t len = 4 * MiB;
    uint8_t *p = resolve(as, 0, r, &len, PT_WRITE, NULL);
    CU_ASSERT_PTR_EQUAL(p, obj->map);
    CU_ASSERT_EQUAL(len, 4 * MiB);
    CU_ASSERT_EQUAL(aspace_set_access(as, r, 4 * MiB, 0, 0), ACL_SUCCESS);
    CU_ASSERT_FALSE(can(as, 0, r, PT_READ));
    CU_ASSERT_EQUAL(aspace_set_access(as, r, 4 * MiB, 0, PT_RW), ACL_SUCCESS);

    /* peer view: device 1 has nothing until set_access puts it in its table */
    CU_ASSERT_FALSE(can(as, 1, r, PT_READ));
    CU_ASSERT_EQUAL(pt_leaves(aspace_table(as, 1)), 0);
    CU_ASSERT_EQUAL(aspace_set_access(as, r, 4 * MiB, 1, PT_READ), ACL_SUCCESS);
    CU_ASSERT_EQUAL(pt_leaves(aspace_table(as, 1)), 2);
    len = 4 * MiB;
    MemObj *got = NULL;
    p = resolve(as, 1, r, &len, PT_READ, &got);
    CU_ASSERT_PTR_EQUAL(p, obj->map);     /* the same HBM: device 0's memory object */
    CU_ASSERT_PTR_EQUAL(got, obj);
    CU_ASSERT_EQUAL(len, 4 * MiB);
    PtHit hit;
    CU_ASSERT_TRUE(pt_translate(aspace_table(as, 1), r, &hit));
    CU_ASSERT_EQUAL(hit.dev, by_tag[0]->tag);
    CU_ASSERT_FALSE(can(as, 1, r, PT_WRITE));
    CU_ASSERT_EQUAL(aspace_set_access(as, r, 4 * MiB, 1, PT_RW), ACL_SUCCESS);
    CU_ASSERT_TRUE(can(as, 1, r, PT_WRITE));
    CU_ASSERT_FALSE(can(as, 2, r, PT_READ));
    /* device 0's own rights are its own */
    CU_ASSERT_EQUAL(aspace_set_access(as, r, 4 * MiB, 0, 0), ACL_SUCCESS);
    CU_ASSERT_FALSE(can(as, 0, r, PT_READ));
    CU_ASSERT_TRUE(can(as, 1, r, PT_READ));

    /* unmap takes it out of every table */
    must_unmap(as, r);
    CU_ASSERT_FALSE(can(as, 1, r, PT_READ));
    CU_ASSERT_EQUAL(pt_leaves(aspace_table(as, 0)), 0);
    CU_ASSERT_EQUAL(pt_leaves(aspace_table(as, 1)), 0);
    memobj_unref(obj);
    CU_ASSERT_EQUAL(aspace_phys_free(as, h, NULL), ACL_SUCCESS);
    aspace_destroy(as, NULL, NULL);
    CU_ASSERT_TRUE(all_free());
}

/*
 * A VMM mapping reaches a device only through that device's table: a
 * reservation in the span of the handle's own device, read from another
 * device, is no exception (only aclrtMalloc memory is reachable from peers
 * without set_access).
 */
static void test_resolve_peer_own_span(void)
{
    AddrSpace *as = new_as(OWNER);
    uint64_t h0 = must_phys(as, 0, 2 * MiB, 2 * MiB);
    uint64_t h1 = must_phys(as, 1, 2 * MiB, 2 * MiB);
    uint64_t r0 = must_reserve(as, 2 * MiB, vmm_of(0));
    uint64_t r1 = must_reserve(as, 2 * MiB, vmm_of(1));
    MemObj *o0 = must_map(as, r0, 2 * MiB, h0, PT_RW);
    MemObj *o1 = must_map(as, r1, 2 * MiB, h1, PT_RW);
    CU_ASSERT_TRUE(can(as, 0, r0, PT_READ));
    CU_ASSERT_TRUE(can(as, 1, r1, PT_READ));
    CU_ASSERT_FALSE(can(as, 1, r0, PT_READ));
    CU_ASSERT_FALSE(can(as, 2, r0, PT_READ));
    CU_ASSERT_FALSE(can(as, 0, r1, PT_READ));
    CU_ASSERT_FALSE(can(as, 2, r1, PT_READ));
    CU_ASSERT_EQUAL(aspace_set_access(as, r1, 2 * MiB, 0, PT_RW), ACL_SUCCESS);
    CU_ASSERT_TRUE(can(as, 0, r1, PT_READ));
    memobj_unref(o0);
    memobj_unref(o1);
    aspace_destroy(as, NULL, NULL);
    CU_ASSERT_TRUE(all_free());
}

/* aclrtMalloc segments enter the owner's table of their device. */
static void test_resolve_malloc(void)
{
    AddrSpace *as = new_as(OWNER);
    AddrSpace *other = new_as(OWNER + 1);
    DevAllocResult big, small, other_a;
    memset(&big, 0, sizeof(big));
    CU_ASSERT_EQUAL_FATAL(device_mem_alloc(by_tag[1], OWNER, 3 * MiB, ACL_MEM_MALLOC_HUGE_ONLY,
                                           false, &big), ACL_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(device_mem_alloc(by_tag[1], OWNER, 100, ACL_MEM_MALLOC_HUGE_FIRST,
                                           false, &small), ACL_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(device_mem_alloc(by_tag[1], OWNER + 1, 64 * KiB,
                                           ACL_MEM_MALLOC_NORMAL_ONLY, false, &other_a),
                          ACL_SUCCESS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big.new_obj);
    CU_ASSERT_PTR_NOT_NULL_FATAL(small.new_obj);
    CU_ASSERT_EQUAL(emu_va_device(big.va), 1);

    uint64_t len = big.seg_size;
    MemObj *got = NULL;
    uint8_t *p = resolve(as, 1, big.va, &len, PT_RW, &got);
    CU_ASSERT_PTR_EQUAL(p, big.new_obj->map);
    CU_ASSERT_EQUAL(len, big.seg_size);
    CU_ASSERT_PTR_EQUAL(got, big.new_obj);
    p[5] = 0x42;
    CU_ASSERT_EQUAL(big.new_obj->map[5], 0x42);
    len = 100;
    p = resolve(as, 1, small.va, &len, PT_RW, &got);
    CU_ASSERT_PTR_EQUAL(p, small.new_obj->map + (small.va - small.seg_va));
    CU_ASSERT_EQUAL(len, 100);
    /* not past the segments, nor before them */
    uint64_t end = big.seg_va + big.seg_size > small.seg_va + small.seg_size
                       ? big.seg_va + big.seg_size
                       : small.seg_va + small.seg_size;
    if (other_a.seg_va + other_a.seg_size > end)
        end = other_a.seg_va + other_a.seg_size;
    CU_ASSERT_FALSE(can(as, 1, end, PT_READ));
    CU_ASSERT_FALSE(can(as, 1, span_of(1) + EMU_VA_HEAP_OFFSET - 1, PT_READ));
    /* not another owner's */
    CU_ASSERT_FALSE(can(as, 1, other_a.va, PT_READ));
    CU_ASSERT_FALSE(can(other, 1, big.va, PT_READ));
    CU_ASSERT_TRUE(can(other, 1, other_a.va, PT_READ));
    /* a peer device reaches it through device 1's table once it has peer
     * access to device 1, and only then; peer access is one-directional */
    CU_ASSERT_FALSE(can(as, 0, big.va, PT_READ));
    CU_ASSERT_EQUAL(aspace_set_peer(as, 0, 1, true), ACL_SUCCESS);
    len = 16;
    p = resolve(as, 0, big.va, &len, PT_READ, NULL);
    CU_ASSERT_PTR_EQUAL(p, big.new_obj->map);
    CU_ASSERT_EQUAL(aspace_set_peer(as, 0, 0, true), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_set_peer(as, 0, NDEV, true), ACL_ERROR_RT_INVALID_DEVICEID);
    CU_ASSERT_EQUAL(aspace_set_peer(as, 0, 1, false), ACL_SUCCESS);
    CU_ASSERT_FALSE(can(as, 0, big.va, PT_READ));

    /* freed: gone from the table */
    DevFreeResult fr;
    CU_ASSERT_EQUAL(device_mem_free(by_tag[1], OWNER, big.va, &fr), ACL_SUCCESS);
    CU_ASSERT_TRUE(fr.seg_released);
    CU_ASSERT_FALSE(can(as, 1, big.va, PT_READ));
    CU_ASSERT_TRUE(can(as, 1, small.va, PT_READ));
    memobj_unref(big.new_obj);
    memobj_unref(small.new_obj);
    memobj_unref(other_a.new_obj);
    CU_ASSERT_EQUAL(device_release_owner(by_tag[1], OWNER, NULL), 1);
    CU_ASSERT_EQUAL(device_release_owner(by_tag[1], OWNER + 1, NULL), 1);
    CU_ASSERT_EQUAL(pt_leaves(aspace_table(as, 1)), 0);
    aspace_destroy(other, NULL, NULL);
    aspace_destroy(as, NULL, NULL);
    /* tables detached: a new segment of that owner has no table to enter */
    CU_ASSERT_EQUAL(g_hash_table_size(by_tag[1]->tables), 0);
    CU_ASSERT_TRUE(all_free());
}

/* ---- life of a handle ---- */

static void test_deferred_free(void)
{
    AddrSpace *as = new_as(OWNER);
    uint64_t base = dev_free(0);
    uint64_t h = must_phys(as, 0, 4 * MiB, 2 * MiB);
    uint64_t r = must_reserve(as, 4 * MiB, 0);
    MemObj *obj = must_map(as, r, 4 * MiB, h, PT_RW);
    CU_ASSERT_PTR_NOT_NULL_FATAL(obj);
    obj->map[1000] = 0x77;
    /* freeing the handle while mapped: the handle is gone, the memory is not */
    CU_ASSERT_EQUAL(aspace_phys_free(as, h, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_handles(as), 0);
    CU_ASSERT_EQUAL(aspace_phys_free(as, h, NULL), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(dev_free(0), base - 4 * MiB);
    uint64_t len = 1;
    uint8_t *p = resolve(as, 0, r + 1000, &len, PT_READ, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(*p, 0x77);
    /* it cannot be mapped again by its (dead) handle */
    uint64_t r2 = must_reserve(as, 4 * MiB, 0);
    CU_ASSERT_EQUAL(try_map(as, r2, 4 * MiB, h, PT_RW), ACL_ERROR_RT_PARAM_INVALID);
    /* unmap frees it */
    uint64_t hh = 0, sz = 0;
    CU_ASSERT_EQUAL(aspace_unmap(as, r, &hh, &sz), ACL_SUCCESS);
    CU_ASSERT_EQUAL(hh, h);
    CU_ASSERT_EQUAL(sz, 4 * MiB);
    CU_ASSERT_EQUAL(dev_free(0), base);
    CU_ASSERT_FALSE(can(as, 0, r, PT_READ));
    /* the object the client mapped stays valid until it lets go */
    CU_ASSERT_EQUAL(obj->map[1000], 0x77);
    memobj_unref(obj);

    /* two mappings of one handle: the memory lives until the last goes */
    h = must_phys(as, 0, 4 * MiB, 2 * MiB);
    MemObj *o1 = must_map(as, r, 4 * MiB, h, PT_RW);
    MemObj *o2 = must_map(as, r2, 4 * MiB, h, PT_RW);
    CU_ASSERT_PTR_EQUAL(o1, o2);
    memobj_unref(o1);
    memobj_unref(o2);
    CU_ASSERT_EQUAL(aspace_phys_free(as, h, NULL), ACL_SUCCESS);
    must_unmap(as, r);
    CU_ASSERT_EQUAL(dev_free(0), base - 4 * MiB);
    CU_ASSERT_TRUE(can(as, 0, r2, PT_READ));
    must_unmap(as, r2);
    CU_ASSERT_EQUAL(dev_free(0), base);
    aspace_destroy(as, NULL, NULL);
    CU_ASSERT_TRUE(all_free());
}

static void test_retain(void)
{
    AddrSpace *as = new_as(OWNER);
    uint64_t base = dev_free(1);
    uint64_t h = must_phys(as, 1, 4 * MiB, 4 * KiB);
    uint64_t r = must_reserve(as, 8 * MiB, 0);
    uint64_t hh = 0, sz = 0, page = 0;
    int dev = -1;
    /* nothing mapped there */
    CU_ASSERT_EQUAL(aspace_retain(as, r, &hh, &sz, &dev, &page), ACL_ERROR_RT_PARAM_INVALID);
    MemObj *obj = must_map(as, r + 2 * MiB, 4 * MiB, h, PT_RW);
    memobj_unref(obj);
    /* only at the start of a mapping */
    CU_ASSERT_EQUAL(aspace_retain(as, r, &hh, &sz, &dev, &page), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_retain(as, r + 4 * MiB, &hh, &sz, &dev, &page),
                    ACL_ERROR_RT_PARAM_INVALID);
    for (int i = 0; i < 2; i++) {
        hh = sz = page = 0;
        dev = -1;
        CU_ASSERT_EQUAL(aspace_retain(as, r + 2 * MiB, &hh, &sz, &dev, &page), ACL_SUCCESS);
        CU_ASSERT_EQUAL(hh, h);
        CU_ASSERT_EQUAL(sz, 4 * MiB);
        CU_ASSERT_EQUAL(dev, 1);
        CU_ASSERT_EQUAL(page, 4 * KiB);
    }
    CU_ASSERT_EQUAL(aspace_handles(as), 1);
    /* three references: three frees; the memory stays while mapped */
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(aspace_phys_free(as, h, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_phys_free(as, h, NULL), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_handles(as), 0);
    CU_ASSERT_EQUAL(dev_free(1), base - 4 * MiB);
    /* retain brings a freed-but-mapped handle back */
    CU_ASSERT_EQUAL(aspace_retain(as, r + 2 * MiB, &hh, &sz, &dev, &page), ACL_SUCCESS);
    CU_ASSERT_EQUAL(hh, h);
    CU_ASSERT_EQUAL(aspace_handles(as), 1);
    must_unmap(as, r + 2 * MiB);
    CU_ASSERT_EQUAL(dev_free(1), base - 4 * MiB);  /* a reference remains */
    CU_ASSERT_EQUAL(try_map(as, r, 4 * MiB, h, PT_RW), ACL_SUCCESS);
    must_unmap(as, r);
    CU_ASSERT_EQUAL(aspace_phys_free(as, h, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(dev_free(1), base);
    CU_ASSERT_EQUAL(aspace_handles(as), 0);
    aspace_destroy(as, NULL, NULL);
    CU_ASSERT_TRUE(all_free());
}

static void test_release_while_mapped(void)
{
    AddrSpace *as = new_as(OWNER);
    uint64_t h = must_phys(as, 0, 2 * MiB, 2 * MiB);
    uint64_t r = must_reserve(as, 8 * MiB, 0);
    MemObj *obj = must_map(as, r + 6 * MiB, 2 * MiB, h, PT_RW);
    memobj_unref(obj);
    CU_ASSERT_EQUAL(aspace_release(as, r), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_reservations(as), 1);
    CU_ASSERT_TRUE(can(as, 0, r + 6 * MiB, PT_READ));
    /* freeing the handle does not unmap either */
    CU_ASSERT_EQUAL(aspace_phys_free(as, h, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_release(as, r), ACL_ERROR_RT_PARAM_INVALID);
    must_unmap(as, r + 6 * MiB);
    CU_ASSERT_EQUAL(aspace_release(as, r), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_reservations(as), 0);
    aspace_destroy(as, NULL, NULL);
    CU_ASSERT_TRUE(all_free());
}

static void test_destroy_live(void)
{
    uint64_t base[NDEV];
    for (int d = 0; d < NDEV; d++)
        base[d] = dev_free(d);
    AddrSpace *as = new_as(OWNER);
    /* unmapped handles */
    uint64_t h_a = must_phys(as, 0, 6 * MiB, 2 * MiB);
    uint64_t h_b = must_phys(as, 2, 1 * GiB, 1 * GiB);
    (void)h_a;
    (void)h_b;
    /* mapped handles, one with a peer view, one retained */
    uint64_t h_c = must_phys(as, 1, 4 * MiB, 4 * KiB);
    uint64_t h_d = must_phys(as, 0, 2 * MiB, 2 * MiB);
    uint64_t r = must_reserve(as, 64 * MiB, 0);
    uint64_t r2 = must_reserve(as, 64 * MiB, 0);
    must_reserve(as, 2 * MiB, 0);
    memobj_unref(must_map(as, r, 4 * MiB, h_c, PT_RW));
    memobj_unref(must_map(as, r + 8 * MiB, 4 * MiB, h_c, 0));
    CU_ASSERT_EQUAL(aspace_set_access(as, r, 4 * MiB, 0, PT_RW), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_set_access(as, r, 4 * MiB, 2, PT_READ), ACL_SUCCESS);
    memobj_unref(must_map(as, r2, 2 * MiB, h_d, PT_RW));
    uint64_t hh, sz, page;
    int dev;
    CU_ASSERT_EQUAL(aspace_retain(as, r2, &hh, &sz, &dev, &page), ACL_SUCCESS);
    /* freed while mapped: no handle, but memory */
    uint64_t h_e = must_phys(as, 0, 2 * MiB, 4 * KiB);
    memobj_unref(must_map(as, r2 + 2 * MiB, 2 * MiB, h_e, PT_RW));
    CU_ASSERT_EQUAL(aspace_phys_free(as, h_e, NULL), ACL_SUCCESS);
    /* aclrtMalloc memory in the same tables, released before as the contract says */
    DevAllocResult a;
    CU_ASSERT_EQUAL(device_mem_alloc(by_tag[0], OWNER, 5 * MiB, ACL_MEM_MALLOC_HUGE_ONLY, false,
                                     &a), ACL_SUCCESS);
    memobj_unref(a.new_obj);
    CU_ASSERT_TRUE(can(as, 0, a.va, PT_RW));
    CU_ASSERT_EQUAL(dev_free(0), base[0] - 6 * MiB - 2 * MiB - 2 * MiB - 6 * MiB);
    CU_ASSERT_EQUAL(dev_free(1), base[1] - 4 * MiB);
    CU_ASSERT_EQUAL(dev_free(2), base[2] - 1 * GiB);
    CU_ASSERT_EQUAL(aspace_handles(as), 4);
    CU_ASSERT_EQUAL(aspace_mappings(as), 4);

    uint64_t bytes = 0;
    CU_ASSERT_EQUAL(device_release_owner(by_tag[0], OWNER, &bytes), 1);
    unsigned handles = 0;
    bytes = 0;
    aspace_destroy(as, &handles, &bytes);
    /* the handles with client references: a, b, c and the retained d */
    CU_ASSERT_EQUAL(handles, 4);
    CU_ASSERT_EQUAL(bytes, 6 * MiB + 1 * GiB + 4 * MiB + 2 * MiB);
    for (int d = 0; d < NDEV; d++) {
        CU_ASSERT_EQUAL(dev_free(d), base[d]);
        CU_ASSERT_EQUAL(g_hash_table_size(by_tag[d]->tables), 0);
    }
    CU_ASSERT_TRUE(all_free());

    /* an empty space reports nothing */
    as = new_as(OWNER);
    handles = 99;
    bytes = 99;
    aspace_destroy(as, &handles, &bytes);
    CU_ASSERT_EQUAL(handles, 0);
    CU_ASSERT_EQUAL(bytes, 0);
    aspace_destroy(NULL, NULL, NULL);
}

/* ---- resolution racing the session thread ---- */

#define RACE_SLOTS 6
#define RACE_SIZE  (4 * MiB)

typedef struct Race {
    AddrSpace *as;
    uint64_t base;
    int dev;
    int stop;
    unsigned hits, misses, bad;
} Race;

/* The byte a handle mapped at slot k holds at offset off. */
static uint8_t race_byte(unsigned k, uint64_t off)
{
    return (uint8_t)(k * 37 + off / 4096 + 1);
}

static gpointer race_reader(gpointer data)
{
    Race *rc = data;
    uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)rc->dev;
    while (!__atomic_load_n(&rc->stop, __ATOMIC_ACQUIRE)) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        uint64_t v = x * 0x2545F4914F6CDD1Dull;
        uint64_t off = v % (RACE_SLOTS * RACE_SIZE);
        uint64_t len = 1 + (v >> 40) % (3 * RACE_SIZE);
        uint64_t va = rc->base + off;
        /* readers that never pause starve the writer of the page-table lock */
        if ((v & 255) == 0)
            g_usleep(20);
        MemObj *ref = NULL;
        uint8_t *p = aspace_resolve(rc->as, rc->dev, va, &len, PT_READ, &ref);
        if (!p) {
            rc->misses++;
            continue;
        }
        rc->hits++;
        unsigned k = (unsigned)(off / RACE_SIZE);
        uint64_t in = off % RACE_SIZE;
        /* never past the handle, and the right bytes at both ends and a page between */
        if (len == 0 || len > RACE_SIZE - in || !ref) {
            rc->bad++;
        } else {
            uint64_t mid = in + len / 2;
            if (p[0] != race_byte(k, in) || p[len - 1] != race_byte(k, in + len - 1) ||
                p[len / 2] != race_byte(k, mid))
                rc->bad++;
        }
        memobj_unref(ref);
    }
    return NULL;
}

static void test_resolve_race(void)
{
    AddrSpace *as = new_as(OWNER);
    Race rc[2] = { { .as = as, .dev = 0 }, { .as = as, .dev = 1 } };
    uint64_t r = must_reserve(as, RACE_SLOTS * RACE_SIZE, 0);
    rc[0].base = rc[1].base = r;
    uint64_t handle[RACE_SLOTS] = { 0 };
    bool freed[RACE_SLOTS] = { false };
    GThread *th[2] = { g_thread_new("race0", race_reader, &rc[0]),
                       g_thread_new("race1", race_reader, &rc[1]) };
    uint64_t x = 0x0123456789abcdefull;
    unsigned maps = 0;
    gint64 until = g_get_monotonic_time() + 1500 * 1000;
    while (g_get_monotonic_time() < until) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        uint64_t v = x * 0x2545F4914F6CDD1Dull;
        unsigned k = (unsigned)(v % RACE_SLOTS);
        uint64_t va = r + k * RACE_SIZE;
        if (!handle[k]) {
            /* new memory, filled while mapped without rights, then opened */
            handle[k] = must_phys(as, 0, RACE_SIZE, (v >> 8) & 1 ? 2 * MiB : 4 * KiB);
            MemObj *obj = must_map(as, va, RACE_SIZE, handle[k], 0);
            if (!obj)
                break;
            for (uint64_t o = 0; o < RACE_SIZE; o += 4096)
                memset(obj->map + o, race_byte(k, o), 4096);
            memobj_unref(obj);
            CU_ASSERT_EQUAL(aspace_set_access(as, va, RACE_SIZE, 0, PT_RW), ACL_SUCCESS);
            if ((v >> 9) & 1)
                CU_ASSERT_EQUAL(aspace_set_access(as, va, RACE_SIZE, 1, PT_READ), ACL_SUCCESS);
            freed[k] = false;
            maps++;
            continue;
        }
        switch ((v >> 16) % 4) {
        case 0:
            /* free while mapped, once */
            if (!freed[k]) {
                CU_ASSERT_EQUAL(aspace_phys_free(as, handle[k], NULL), ACL_SUCCESS);
                freed[k] = true;
            }
            break;
        case 1:
            CU_ASSERT_EQUAL(aspace_set_access(as, va, RACE_SIZE, (int)((v >> 20) & 1),
                                              (v >> 21) & 1 ? PT_RW : 0),
                            ACL_SUCCESS);
            break;
        default: {
            uint64_t hh = 0, sz = 0;
            CU_ASSERT_EQUAL(aspace_unmap(as, va, &hh, &sz), ACL_SUCCESS);
            CU_ASSERT_EQUAL(hh, handle[k]);
            if (!freed[k])
                CU_ASSERT_EQUAL(aspace_phys_free(as, handle[k], NULL), ACL_SUCCESS);
            handle[k] = 0;
            break;
        }
        }
    }
    /* a window where all of it is mapped and readable from device 0 */
    __atomic_store_n(&rc[0].stop, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&rc[1].stop, 1, __ATOMIC_RELEASE);
    g_thread_join(th[0]);
    g_thread_join(th[1]);
    fprintf(stderr, "\n    race: %u maps; device 0: %u hits, %u misses; device 1: %u hits, "
            "%u misses\n", maps, rc[0].hits, rc[0].misses, rc[1].hits, rc[1].misses);
    CU_ASSERT_EQUAL(rc[0].bad, 0);
    CU_ASSERT_EQUAL(rc[1].bad, 0);
    CU_ASSERT_TRUE(rc[0].hits > 0);
    CU_ASSERT_TRUE(rc[1].hits > 0);
    CU_ASSERT_TRUE(maps > 10);
    unsigned handles = 0;
    uint64_t bytes = 0;
    aspace_destroy(as, &handles, &bytes);
    CU_ASSERT_TRUE(all_free());
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return CU_get_error();
    CU_pSuite s = CU_add_suite("aspace", suite_init, suite_clean);
    if (!s || !CU_add_test(s, "phys_alloc arguments", test_phys_alloc_args) ||
        !CU_add_test(s, "phys_alloc / phys_free accounting", test_phys_accounting) ||
        !CU_add_test(s, "reserve / release", test_reserve) ||
        !CU_add_test(s, "map rules", test_map_rules) ||
        !CU_add_test(s, "resolve: bytes, pieces, unmapped", test_resolve_bytes) ||
        !CU_add_test(s, "resolve: rights, set_access, peer view", test_resolve_rights) ||
        !CU_add_test(s, "resolve: no peer view without set_access in the owner's span",
                     test_resolve_peer_own_span) ||
        !CU_add_test(s, "resolve: aclrtMalloc segments", test_resolve_malloc) ||
        !CU_add_test(s, "phys_free while mapped", test_deferred_free) ||
        !CU_add_test(s, "retain counting", test_retain) ||
        !CU_add_test(s, "release refused while mapped", test_release_while_mapped) ||
        !CU_add_test(s, "destroy with everything live", test_destroy_live) ||
        !CU_add_test(s, "resolve races map / unmap / free", test_resolve_race)) {
        CU_cleanup_registry();
        return 1;
    }
    return cu_run_all();
}
