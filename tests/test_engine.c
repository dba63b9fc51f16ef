/*
 * test_engine.c - the stream engine (devmodel/engine.h).
 *
 * The resolve callback maps a few fake device address ranges onto memory
 * objects made with memobj_new.  One of them is a "gate": resolving it blocks
 * until the test opens the gate, which is how a test holds a task in flight to
 * observe concurrency, waiter wake-ups and forced destruction.
 */
#include "devmodel/engine.h"
#include "devmodel/reduce.h"

#include <CUnit/Basic.h>
#include "cu_run.h"
#include <glib.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acl/acl_base.h"
#include "npuemu/futex.h"
#include "npuemu/proto.h"

#define NBUF      4
#define BUF_SIZE  (64u << 10)
#define BUF_BASE  0x500000000000ull
#define BUF_STEP  0x10000000ull
#define GATE_ADDR (BUF_BASE + 0x7f000000ull) /* resolves to buffer 0, after the gate opens */
#define BAD_ADDR  0x6000000000ull
/* The buffers also appear in the device window, as memory of devices 0 and 1
 * (for tasks that insist on device memory of one device). */
#define WIN0_BASE (EMU_VA_WINDOW_LO + EMU_VA_HEAP_OFFSET)
#define WIN1_BASE (WIN0_BASE + EMU_VA_DEVICE_SPAN)

/* Queues a task, waiting for room as the runtime does; returns its number.
 * (Safe from any thread: no CUnit assertion here.) */
static uint32_t submit(EngineStream *s, const EmuTask *t)
{
    uint32_t seq = 0;
    while (!engine_stream_submit(s, t, NULL, &seq))
        g_usleep(50);
    return seq;
}

static MemObj *bufs[NBUF];
static int resolve_calls;

static GMutex gate_lock;
static GCond gate_cond;
static bool gate_open = true;
static int gate_waiting; /* tasks currently blocked at the gate */

static uint64_t addr_of(int buf, uint64_t off)
{
    return BUF_BASE + (uint64_t)buf * BUF_STEP + off;
}

static uint8_t *resolve_cb(void *opaque, int device, uint64_t addr, uint64_t *lenp,
                          uint32_t access, MemObj **ref)
{
    (void)opaque;
    (void)device;
    (void)access;
    uint64_t len = *lenp;
    __atomic_add_fetch(&resolve_calls, 1, __ATOMIC_SEQ_CST);
    if (addr == GATE_ADDR) {
        g_mutex_lock(&gate_lock);
        gate_waiting++;
        g_cond_broadcast(&gate_cond);
        while (!gate_open)
            g_cond_wait(&gate_cond, &gate_lock);
        gate_waiting--;
        g_mutex_unlock(&gate_lock);
        addr = addr_of(0, 0);
    }
    if (addr >= WIN0_BASE && addr - WIN0_BASE < NBUF * BUF_STEP)
        addr = BUF_BASE + (addr - WIN0_BASE);
    else if (addr >= WIN1_BASE && addr - WIN1_BASE < NBUF * BUF_STEP)
        addr = BUF_BASE + (addr - WIN1_BASE);
    if (addr < BUF_BASE)
        return NULL;
    uint64_t i = (addr - BUF_BASE) / BUF_STEP, off = (addr - BUF_BASE) % BUF_STEP;
    if (i >= NBUF || off >= BUF_SIZE || len > BUF_SIZE - off)
        return NULL;
    *ref = memobj_ref(bufs[i]);
    return bufs[i]->map + off;
}

static void gate_close(void)
{
    g_mutex_lock(&gate_lock);
    gate_open = false;
    g_mutex_unlock(&gate_lock);
}

static void gate_release(void)
{
    g_mutex_lock(&gate_lock);
    gate_open = true;
    g_cond_broadcast(&gate_cond);
    g_mutex_unlock(&gate_lock);
}

/* Waits until n tasks are blocked at the gate (bounded). */
static bool gate_wait_blocked(int n)
{
    gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    bool ok = true;
    g_mutex_lock(&gate_lock);
    while (gate_waiting < n && ok)
        ok = g_cond_wait_until(&gate_cond, &gate_lock, end);
    ok = gate_waiting >= n;
    g_mutex_unlock(&gate_lock);
    return ok;
}

static int setup(void)
{
    for (int i = 0; i < NBUF; i++)
        if (!(bufs[i] = memobj_new("test-engine", BUF_SIZE)))
            return -1;
    return 0;
}

static int teardown(void)
{
    for (int i = 0; i < NBUF; i++)
        memobj_unref(bufs[i]);
    return 0;
}

static void clear_bufs(void)
{
    for (int i = 0; i < NBUF; i++)
        memset(bufs[i]->map, 0, BUF_SIZE);
}

static void check_refs(void)
{
    for (int i = 0; i < NBUF; i++)
        CU_ASSERT_EQUAL(__atomic_load_n(&bufs[i]->refcount, __ATOMIC_SEQ_CST), 1);
}

static bool all_bytes(const uint8_t *p, uint64_t n, uint8_t v)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

/* Waits (bounded) until the stream's done reaches seq. */
static bool wait_done(EmuStreamState *st, uint32_t seq)
{
    for (int i = 0; i < 10000; i++) {
        if (emu_seq_reached(__atomic_load_n(&st->done, __ATOMIC_ACQUIRE), seq))
            return true;
        g_usleep(1000);
    }
    return false;
}

static EmuTask t_memset(uint64_t dst, uint64_t size, uint64_t v)
{
    return (EmuTask){ .type = EMU_TASK_MEMSET, .dst = dst, .size = size, .value = v };
}

static EmuTask t_memset32(uint64_t dst, uint64_t size, uint64_t v)
{
    return (EmuTask){ .type = EMU_TASK_MEMSET32, .dst = dst, .size = size, .value = v };
}

static EmuTask t_memcpy(uint64_t dst, uint64_t src, uint64_t size)
{
    return (EmuTask){ .type = EMU_TASK_MEMCPY, .dst = dst, .src = src, .size = size };
}

/* ---- EMU_TASK_REDUCE (aclrtReduceAsync) ---- */

static EmuTask t_reduce(uint64_t dst, uint64_t src, uint64_t size, uint64_t kind, uint32_t dtype)
{
    return (EmuTask){ .type = EMU_TASK_REDUCE, .dst = dst, .src = src, .size = size,
                      .value = kind, .flags = dtype };
}

/* dst = dst op src on n 16-bit values; returns dst[0]. */
static uint16_t reduce16(uint64_t kind, uint32_t dtype, uint16_t a, uint16_t b)
{
    uint8_t d[2], s[2];
    memcpy(d, &a, 2);
    memcpy(s, &b, 2);
    reduce_apply(kind, dtype, d, s, 1);
    uint16_t r;
    memcpy(&r, d, 2);
    return r;
}

static void test_run_reduce(void)
{
    clear_bufs();
    /* fp32 over a whole buffer (more than one chunk's worth of elements). */
    float *d = (float *)(void *)bufs[0]->map, *s = (float *)(void *)bufs[1]->map;
    size_t n = BUF_SIZE / 4;
    for (size_t i = 0; i < n; i++) {
        d[i] = (float)i;
        s[i] = 0.5f * (float)(n - i);
    }
    EmuTask t = t_reduce(addr_of(0, 0), addr_of(1, 0), BUF_SIZE, REDUCE_SUM, ACL_FLOAT);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    bool ok = true;
    for (size_t i = 0; i < n; i++)
        ok = ok && d[i] == (float)i + 0.5f * (float)(n - i);
    CU_ASSERT_TRUE(ok);
    d[0] = 1.0f, d[1] = -3.0f, d[2] = NAN;
    s[0] = 2.0f, s[1] = -4.0f, s[2] = 7.0f;
    t = t_reduce(addr_of(0, 0), addr_of(1, 0), 12, REDUCE_MAX, ACL_FLOAT);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    CU_ASSERT(d[0] == 2.0f && d[1] == -3.0f && isnan(d[2]));    /* NaN propagates */
    t.value = REDUCE_MIN;
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    CU_ASSERT(d[0] == 2.0f && d[1] == -4.0f && isnan(d[2]));
    t.value = REDUCE_EQUAL;
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    CU_ASSERT(d[0] == 2.0f && d[1] == -4.0f && d[2] == 7.0f);
    /* Integers: sums wrap, signed comparisons. */
    int8_t *d8 = (int8_t *)bufs[2]->map, *s8 = (int8_t *)bufs[3]->map;
    d8[0] = 127, s8[0] = 1, d8[1] = -5, s8[1] = 3;
    t = t_reduce(addr_of(2, 0), addr_of(3, 0), 2, REDUCE_SUM, ACL_INT8);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    CU_ASSERT(d8[0] == -128 && d8[1] == -2);
    int32_t a32[2] = { -7, 9 }, b32[2] = { 3, -11 };
    memcpy(bufs[2]->map + 64, a32, 8);
    memcpy(bufs[3]->map + 64, b32, 8);
    t = t_reduce(addr_of(2, 64), addr_of(3, 64), 8, REDUCE_MIN, ACL_INT32);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    memcpy(a32, bufs[2]->map + 64, 8);
    CU_ASSERT(a32[0] == -7 && a32[1] == -11);
    CU_ASSERT_EQUAL(reduce16(REDUCE_MAX, ACL_INT16, 0xfffe, 0x0001), 0x0001);   /* -2 vs 1 */
    CU_ASSERT_EQUAL(reduce16(REDUCE_SUM, ACL_INT16, 0x7fff, 0x0001), 0x8000);
    /* Refused before anything is touched: size not whole elements, unknown
     * type or kind; a footprint that faults leaves dst as it was. */
    memset(bufs[2]->map, 0x5a, 256);
    const EmuTask bad[] = {
        t_reduce(addr_of(2, 0), addr_of(3, 0), 6, REDUCE_SUM, ACL_FLOAT),
        t_reduce(addr_of(2, 0), addr_of(3, 0), 8, REDUCE_SUM, ACL_UINT32),
        t_reduce(addr_of(2, 0), addr_of(3, 0), 8, REDUCE_SUM, ACL_DOUBLE),
        t_reduce(addr_of(2, 0), addr_of(3, 0), 8, 9, ACL_FLOAT),
        t_reduce(addr_of(2, 0), addr_of(3, 0), 8, 14, ACL_FLOAT),
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++)
        CU_ASSERT_EQUAL(engine_run_task(&bad[i], 0, resolve_cb, NULL), ACL_ERROR_RT_PARAM_INVALID);
    t = t_reduce(addr_of(2, 0), addr_of(3, BUF_SIZE - 128), 256, REDUCE_SUM, ACL_INT8);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_ERROR_RT_SYS_DMA);
    t = t_reduce(addr_of(2, 0), BAD_ADDR, 256, REDUCE_SUM, ACL_INT8);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_ERROR_RT_SYS_DMA);
    CU_ASSERT_TRUE(all_bytes(bufs[2]->map, 256, 0x5a));
    check_refs();
}

/* Half precision: every value survives the widening and the rounding back,
 * and sums round to nearest-even, overflow to infinity, reach subnormals. */
static void test_reduce_half_rounding(void)
{
    unsigned bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (!nan && reduce16(REDUCE_MAX, ACL_FLOAT16, (uint16_t)h, (uint16_t)h) != h)
            bad++;
        if (nan && (reduce16(REDUCE_MAX, ACL_FLOAT16, (uint16_t)h, 0x3c00) & 0x7fff) <= 0x7c00)
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(reduce16(REDUCE_SUM, ACL_FLOAT16, 0x3c00, 0x4000), 0x4200);  /* 1 + 2 = 3 */
    CU_ASSERT_EQUAL(reduce16(REDUCE_SUM, ACL_FLOAT16, 0x6800, 0x3c00), 0x6800);  /* 2048 + 1 */
    CU_ASSERT_EQUAL(reduce16(REDUCE_SUM, ACL_FLOAT16, 0x6801, 0x3c00), 0x6802);  /* 2050 + 1 */
    CU_ASSERT_EQUAL(reduce16(REDUCE_SUM, ACL_FLOAT16, 0x7bff, 0x4b80), 0x7bff);  /* 65504 + 15 */
    CU_ASSERT_EQUAL(reduce16(REDUCE_SUM, ACL_FLOAT16, 0x7bff, 0x4c00), 0x7c00);  /* 65504 + 16 */
    CU_ASSERT_EQUAL(reduce16(REDUCE_SUM, ACL_FLOAT16, 0x0001, 0x0001), 0x0002);  /* 2^-24 * 2 */
    CU_ASSERT_EQUAL(reduce16(REDUCE_SUM, ACL_FLOAT16, 0x03ff, 0x0001), 0x0400);  /* to normal */
    CU_ASSERT_EQUAL(reduce16(REDUCE_MIN, ACL_FLOAT16, 0xbc00, 0x3c00), 0xbc00);  /* -1, 1 */
    /* bf16: 7 stored mantissa bits */
    CU_ASSERT_EQUAL(reduce16(REDUCE_SUM, ACL_BF16, 0x3f80, 0x3f80), 0x4000);     /* 1 + 1 */
    CU_ASSERT_EQUAL(reduce16(REDUCE_SUM, ACL_BF16, 0x3f80, 0x3b80), 0x3f80);     /* 1 + 2^-8 */
    CU_ASSERT_EQUAL(reduce16(REDUCE_SUM, ACL_BF16, 0x3f81, 0x3b80), 0x3f82);
    CU_ASSERT_EQUAL(reduce16(REDUCE_MAX, ACL_BF16, 0x7fc0, 0x3f80) & 0x7fc0, 0x7fc0);
}

/* ---- engine_run_task ---- */

static void test_run_memset(void)
{
    clear_bufs();
    EmuTask t = t_memset(addr_of(1, 100), 1000, 0x1ab); /* only the low byte counts */
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    uint8_t *p = bufs[1]->map;
    CU_ASSERT_TRUE(all_bytes(p, 100, 0));
    CU_ASSERT_TRUE(all_bytes(p + 100, 1000, 0xab));
    CU_ASSERT_TRUE(all_bytes(p + 1100, BUF_SIZE - 1100, 0));
    /* the whole buffer, up to its last byte */
    t = t_memset(addr_of(1, 0), BUF_SIZE, 0xff);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    CU_ASSERT_TRUE(all_bytes(p, BUF_SIZE, 0xff));
    check_refs();
}

static void test_run_memset32(void)
{
    clear_bufs();
    EmuTask t = t_memset32(addr_of(2, 8), 16, 0xffffffffdeadbeefull);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    const uint8_t want[4] = { 0xef, 0xbe, 0xad, 0xde }; /* little endian */
    uint8_t *p = bufs[2]->map;
    CU_ASSERT_TRUE(all_bytes(p, 8, 0));
    for (int i = 0; i < 16; i++)
        CU_ASSERT_EQUAL(p[8 + i], want[i % 4]);
    CU_ASSERT_TRUE(all_bytes(p + 24, 64, 0));
    /* unaligned destination */
    t = t_memset32(addr_of(2, 1001), 8, 0x04030201);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    const uint8_t want2[8] = { 1, 2, 3, 4, 1, 2, 3, 4 };
    CU_ASSERT_EQUAL(memcmp(p + 1001, want2, 8), 0);
    CU_ASSERT_EQUAL(p[1000], 0);
    CU_ASSERT_EQUAL(p[1009], 0);
    /* a size that is not a multiple of 4 never writes past size */
    t = t_memset32(addr_of(2, BUF_SIZE - 6), 6, 0x11223344);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(p[BUF_SIZE - 7], 0);
    CU_ASSERT_EQUAL(p[BUF_SIZE - 6], 0x44);
    CU_ASSERT_EQUAL(p[BUF_SIZE - 3], 0x11);
    check_refs();
}

static void test_run_memcpy(void)
{
    clear_bufs();
    uint8_t *a = bufs[0]->map, *b = bufs[1]->map;
    for (unsigned i = 0; i < BUF_SIZE; i++)
        a[i] = (uint8_t)(i * 7 + 3);
    EmuTask t = t_memcpy(addr_of(1, 10), addr_of(0, 20), 5000);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(memcmp(b + 10, a + 20, 5000), 0);
    CU_ASSERT_TRUE(all_bytes(b, 10, 0));
    CU_ASSERT_TRUE(all_bytes(b + 5010, 100, 0));

    /* overlapping copies within one buffer behave like memmove */
    uint8_t *ref = malloc(BUF_SIZE);
    if (!ref) {
        CU_FAIL("out of memory");
        return;
    }
    memcpy(ref, a, BUF_SIZE);
    memmove(ref + 100, ref, 4000);
    t = t_memcpy(addr_of(0, 100), addr_of(0, 0), 4000);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(memcmp(a, ref, BUF_SIZE), 0);
    memmove(ref, ref + 300, 4000);
    t = t_memcpy(addr_of(0, 0), addr_of(0, 300), 4000);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(memcmp(a, ref, BUF_SIZE), 0);
    free(ref);
    check_refs();
}

static void test_run_size_zero(void)
{
    int before = __atomic_load_n(&resolve_calls, __ATOMIC_SEQ_CST);
    EmuTask tasks[] = {
        t_memset(BAD_ADDR, 0, 1),
        t_memset32(BAD_ADDR, 0, 1),
        t_memcpy(BAD_ADDR, BAD_ADDR + 1, 0),
        t_memcpy(addr_of(0, 0), BAD_ADDR, 0),
    };
    for (unsigned i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(engine_run_task(&tasks[i], 0, resolve_cb, NULL), ACL_SUCCESS);
    /* nothing to touch: no address is resolved */
    CU_ASSERT_EQUAL(__atomic_load_n(&resolve_calls, __ATOMIC_SEQ_CST), before);
    check_refs();
}

static void test_run_errors(void)
{
    clear_bufs();
    /* unresolvable destination / source / range crossing the end */
    EmuTask t = t_memset(BAD_ADDR, 16, 1);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_ERROR_RT_SYS_DMA);
    t = t_memset(addr_of(0, BUF_SIZE - 8), 9, 1);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_ERROR_RT_SYS_DMA);
    CU_ASSERT_TRUE(all_bytes(bufs[0]->map, BUF_SIZE, 0));
    t = t_memcpy(addr_of(1, 0), BAD_ADDR, 16);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_ERROR_RT_SYS_DMA);
    t = t_memcpy(BAD_ADDR, addr_of(1, 0), 16);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_ERROR_RT_SYS_DMA);
    t = t_memcpy(addr_of(1, 0), addr_of(0, BUF_SIZE - 8), 16);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_ERROR_RT_SYS_DMA);
    t = t_memset32(addr_of(3, 0), UINT64_MAX - 3, 1);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_ERROR_RT_SYS_DMA);
    CU_ASSERT_TRUE(all_bytes(bufs[1]->map, BUF_SIZE, 0));
    /* unknown task types */
    const uint32_t bad_types[] = { 0, 6, 0xffffffffu };
    for (unsigned i = 0; i < 3; i++) {
        t = (EmuTask){ .type = bad_types[i], .dst = addr_of(2, 0), .src = addr_of(3, 0),
                       .size = 64, .value = 0x55 };
        CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_ERROR_RT_PARAM_INVALID);
    }
    CU_ASSERT_TRUE(all_bytes(bufs[2]->map, BUF_SIZE, 0));
    /* every reference taken by a failed task was dropped */
    check_refs();
}

static EmuTask t_memcpy2d(uint64_t dst, uint64_t dpitch, uint64_t src, uint64_t spitch,
                          uint64_t width, uint64_t height)
{
    return (EmuTask){ .type = EMU_TASK_MEMCPY2D, .dst = dst, .src = src, .size = width,
                      .height = height, .dpitch = dpitch, .spitch = spitch };
}

/* A sub-rectangle between differently pitched buffers: exactly its bytes move. */
static void test_run_memcpy2d(void)
{
    clear_bufs();
    uint8_t *a = bufs[0]->map, *b = bufs[1]->map;
    for (unsigned i = 0; i < BUF_SIZE; i++)
        a[i] = (uint8_t)(i * 13 + 5);
    enum { W = 100, H = 300, SP = 200, DP = 150, SOFF = 37, DOFF = 11 };
    EmuTask t = t_memcpy2d(addr_of(1, DOFF), DP, addr_of(0, SOFF), SP, W, H);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    bool ok = true;
    for (unsigned i = 0; i < BUF_SIZE; i++) {
        unsigned rel = i - DOFF, row = rel / DP, col = rel % DP;
        bool inside = i >= DOFF && row < H && col < W;
        ok &= b[i] == (inside ? a[SOFF + row * SP + col] : 0);
    }
    CU_ASSERT_TRUE(ok);
    /* pitches equal to the width: one contiguous block */
    t = t_memcpy2d(addr_of(2, 0), 64, addr_of(0, 0), 64, 64, 1000);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(memcmp(bufs[2]->map, a, 64000), 0);
    CU_ASSERT_TRUE(all_bytes(bufs[2]->map + 64000, BUF_SIZE - 64000, 0));
    /* many short rows: 16384 rows of 3 bytes out of every 4 */
    memset(b, 0, BUF_SIZE);
    t = t_memcpy2d(addr_of(1, 0), 4, addr_of(0, 0), 4, 3, BUF_SIZE / 4);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    ok = true;
    for (unsigned i = 0; i < BUF_SIZE; i++)
        ok &= b[i] == (i % 4 == 3 ? 0 : a[i]);
    CU_ASSERT_TRUE(ok);
    /* the last row may end exactly at the end of the buffer */
    t = t_memcpy2d(addr_of(3, BUF_SIZE - 10 - 2 * 1000), 1000, addr_of(0, 0), 10, 10, 3);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(memcmp(bufs[3]->map + BUF_SIZE - 10, a + 20, 10), 0);
    check_refs();
}

static void test_run_memcpy2d_errors(void)
{
    clear_bufs();
    memset(bufs[0]->map, 0x77, BUF_SIZE);
    int before = __atomic_load_n(&resolve_calls, __ATOMIC_SEQ_CST);
    /* nothing to copy: success without touching memory */
    EmuTask t = t_memcpy2d(BAD_ADDR, 10, BAD_ADDR, 10, 0, 5);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    t = t_memcpy2d(BAD_ADDR, 10, BAD_ADDR, 10, 5, 0);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    /* malformed: rows wider than a pitch, or a footprint past 2^64 */
    t = t_memcpy2d(addr_of(1, 0), 10, addr_of(0, 0), 20, 11, 2);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_ERROR_RT_PARAM_INVALID);
    t = t_memcpy2d(addr_of(1, 0), 20, addr_of(0, 0), 10, 11, 1);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_ERROR_RT_PARAM_INVALID);
    t = t_memcpy2d(addr_of(1, 0), 1ull << 40, addr_of(0, 0), 16, 16, 1ull << 25);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(__atomic_load_n(&resolve_calls, __ATOMIC_SEQ_CST), before);
    /* a footprint whose last row crosses the end of its buffer moves nothing */
    t = t_memcpy2d(addr_of(1, 0), 1000, addr_of(0, 0), 100, 100, BUF_SIZE / 1000 + 2);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_ERROR_RT_SYS_DMA);
    t = t_memcpy2d(addr_of(1, 0), 100, addr_of(0, 0), 1000, 100, BUF_SIZE / 1000 + 2);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_ERROR_RT_SYS_DMA);
    t = t_memcpy2d(addr_of(1, 0), 100, BAD_ADDR, 100, 100, 2);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_ERROR_RT_SYS_DMA);
    CU_ASSERT_TRUE(all_bytes(bufs[1]->map, BUF_SIZE, 0));
    check_refs();
}

static EmuTask t_memcpy_ptr(uint64_t dst, uint64_t doff, uint64_t src, uint64_t soff,
                            uint64_t size, uint32_t flags)
{
    return (EmuTask){ .type = EMU_TASK_MEMCPY_PTR, .flags = flags, .dst = dst, .src = src,
                      .size = size, .doff = doff, .soff = soff };
}

static void put_base(int buf, uint64_t off, uint64_t base)
{
    memcpy(bufs[buf]->map + off, &base, sizeof(base));
}

/* Bases read from memory when the task runs, plus offsets. */
static void test_run_memcpy_ptr(void)
{
    clear_bufs();
    uint8_t *a = bufs[0]->map, *b = bufs[1]->map;
    for (unsigned i = 0; i < 8192; i++)
        a[i] = (uint8_t)(i * 3 + 1);
    /* slots in buffer 3 hold device-0 window addresses of buffers 0 and 1 */
    put_base(3, 0, WIN0_BASE + BUF_STEP);          /* buffer 1 */
    put_base(3, 8, WIN0_BASE);                     /* buffer 0 */
    const uint32_t both = EMU_TASK_DST_INDIRECT | EMU_TASK_SRC_INDIRECT;
    EmuTask t = t_memcpy_ptr(addr_of(3, 0), 100, addr_of(3, 8), 200, 1000, both);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(memcmp(b + 100, a + 200, 1000), 0);
    CU_ASSERT_TRUE(all_bytes(b, 100, 0));
    CU_ASSERT_TRUE(all_bytes(b + 1100, 100, 0));
    /* the base is read at run time: change it, run again */
    put_base(3, 0, WIN0_BASE + BUF_STEP + 4000);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(memcmp(b + 4100, a + 200, 1000), 0);
    /* one side direct, the other indirect */
    t = t_memcpy_ptr(WIN0_BASE + 2 * BUF_STEP, 8, addr_of(3, 8), 0, 500, EMU_TASK_SRC_INDIRECT);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(memcmp(bufs[2]->map + 8, a, 500), 0);
    t = t_memcpy_ptr(addr_of(3, 0), 0, WIN0_BASE + 16, 0, 64, EMU_TASK_DST_INDIRECT);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(memcmp(b + 4000, a + 16, 64), 0);
    /* both direct: a plain copy with offsets */
    t = t_memcpy_ptr(WIN0_BASE + 2 * BUF_STEP, 6000, WIN0_BASE, 7000, 100, 0);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(memcmp(bufs[2]->map + 6000, a + 7000, 100), 0);
    check_refs();
}

static void test_run_memcpy_ptr_errors(void)
{
    clear_bufs();
    const uint32_t both = EMU_TASK_DST_INDIRECT | EMU_TASK_SRC_INDIRECT;
    memset(bufs[0]->map, 0x42, BUF_SIZE);
    put_base(3, 0, WIN0_BASE + BUF_STEP);          /* device 0, buffer 1 */
    put_base(3, 8, WIN1_BASE);                     /* device 1, buffer 0 */
    put_base(3, 16, addr_of(0, 0));                /* not device memory */
    put_base(3, 24, WIN0_BASE + BUF_STEP + BUF_SIZE - 8);
    put_base(3, 32, WIN0_BASE);                    /* device 0, buffer 0 */
    struct {
        EmuTask t;
        int want;
    } cases[] = {
        /* a slot that does not resolve */
        { t_memcpy_ptr(BAD_ADDR, 0, addr_of(3, 32), 0, 16, both), ACL_ERROR_RT_SYS_DMA },
        { t_memcpy_ptr(addr_of(3, 0), 0, BAD_ADDR, 0, 16, both), ACL_ERROR_RT_SYS_DMA },
        { t_memcpy_ptr(addr_of(3, BUF_SIZE - 4), 0, addr_of(3, 32), 0, 16, both),
          ACL_ERROR_RT_SYS_DMA },
        /* ends on two devices, or outside the device window */
        { t_memcpy_ptr(addr_of(3, 0), 0, addr_of(3, 8), 0, 16, both), ACL_ERROR_RT_SYS_DMA },
        { t_memcpy_ptr(addr_of(3, 0), 0, addr_of(3, 16), 0, 16, both), ACL_ERROR_RT_SYS_DMA },
        { t_memcpy_ptr(addr_of(1, 0), 0, WIN0_BASE, 0, 16, 0), ACL_ERROR_RT_SYS_DMA },
        /* base + offset + size past the end of the memory */
        { t_memcpy_ptr(addr_of(3, 24), 0, addr_of(3, 32), 0, 16, both), ACL_ERROR_RT_SYS_DMA },
        { t_memcpy_ptr(addr_of(3, 0), BUF_SIZE, addr_of(3, 32), 0, 16, both),
          ACL_ERROR_RT_SYS_DMA },
        /* unknown flags */
        { t_memcpy_ptr(addr_of(3, 0), 0, addr_of(3, 32), 0, 16, both | 4),
          ACL_ERROR_RT_PARAM_INVALID },
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++)
        CU_ASSERT_EQUAL(engine_run_task(&cases[i].t, 0, resolve_cb, NULL), cases[i].want);
    CU_ASSERT_TRUE(all_bytes(bufs[1]->map, BUF_SIZE, 0));
    /* size 0 reads no slot */
    int before = __atomic_load_n(&resolve_calls, __ATOMIC_SEQ_CST);
    EmuTask t = t_memcpy_ptr(BAD_ADDR, 0, BAD_ADDR, 0, 0, both);
    CU_ASSERT_EQUAL(engine_run_task(&t, 0, resolve_cb, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(__atomic_load_n(&resolve_calls, __ATOMIC_SEQ_CST), before);
    check_refs();
}

/* ---- streams ---- */

/* 2D and pointer copies on a stream, in order with plain tasks. */
static void test_stream_2d_and_ptr(void)
{
    clear_bufs();
    EmuStreamState st = { 0 };
    EngineStream *s = engine_stream_new(0, &st, NULL, resolve_cb, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    EmuTask t = t_memset(addr_of(0, 0), BUF_SIZE, 0x3c);
    submit(s, &t);
    t = t_memcpy2d(addr_of(1, 0), 256, addr_of(0, 0), 300, 128, 200);
    submit(s, &t);
    put_base(3, 0, WIN0_BASE + 2 * BUF_STEP);
    t = t_memcpy_ptr(addr_of(3, 0), 10, WIN0_BASE + BUF_STEP, 0, 256 * 200,
                     EMU_TASK_DST_INDIRECT);
    uint32_t last = submit(s, &t);
    CU_ASSERT_TRUE_FATAL(wait_done(&st, last));
    CU_ASSERT_EQUAL(st.error, ACL_SUCCESS);
    bool ok = true;
    for (unsigned i = 0; i < 256 * 200; i++)
        ok &= bufs[2]->map[10 + i] == (i % 256 < 128 ? 0x3c : 0);
    CU_ASSERT_TRUE(ok);
    engine_stream_destroy(s, false);
    check_refs();
}


static void test_stream_in_order(void)
{
    clear_bufs();
    EmuStreamState st = { 0 };
    EngineStream *s = engine_stream_new(3, &st, NULL, resolve_cb, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(engine_stream_device(s), 3);
    CU_ASSERT_EQUAL(engine_stream_last(s), 0);

    EmuTask t1 = t_memset(addr_of(0, 0), 4096, 0x11);
    EmuTask t2 = t_memcpy(addr_of(1, 0), addr_of(0, 0), 4096);
    EmuTask t3 = t_memset32(addr_of(0, 0), 2048, 0xcafebabe);
    EmuTask t4 = t_memcpy(addr_of(1, 2048), addr_of(0, 0), 1024);
    CU_ASSERT_EQUAL(submit(s, &t1), 1);
    CU_ASSERT_EQUAL(submit(s, &t2), 2);
    CU_ASSERT_EQUAL(submit(s, &t3), 3);
    uint32_t last = submit(s, &t4);
    CU_ASSERT_EQUAL(last, 4);
    CU_ASSERT_EQUAL(engine_stream_last(s), 4);
    CU_ASSERT_TRUE_FATAL(wait_done(&st, last));
    CU_ASSERT_EQUAL(st.done, 4);
    CU_ASSERT_EQUAL(st.error, ACL_SUCCESS);

    const uint8_t pat[4] = { 0xbe, 0xba, 0xfe, 0xca };
    uint8_t *a = bufs[0]->map, *b = bufs[1]->map;
    bool ok = true;
    for (int i = 0; i < 2048; i++)
        ok &= a[i] == pat[i % 4];
    CU_ASSERT_TRUE(ok);
    CU_ASSERT_TRUE(all_bytes(a + 2048, 2048, 0x11));
    CU_ASSERT_TRUE(all_bytes(b, 2048, 0x11));
    ok = true;
    for (int i = 0; i < 1024; i++)
        ok &= b[2048 + i] == pat[i % 4];
    CU_ASSERT_TRUE(ok);
    CU_ASSERT_TRUE(all_bytes(b + 3072, 1024, 0x11));
    CU_ASSERT_TRUE(all_bytes(b + 4096, BUF_SIZE - 4096, 0));

    /* a long dependency chain: each copy reads what the previous one wrote */
    const int chain = 2000;
    uint64_t seed = 0x0123456789abcdefull;
    memcpy(bufs[2]->map, &seed, 8);
    uint32_t seq = 0;
    for (int i = 0; i < chain; i++) {
        EmuTask t = t_memcpy(addr_of(2, (uint64_t)(i + 1) * 8), addr_of(2, (uint64_t)i * 8), 8);
        seq = submit(s, &t);
    }
    CU_ASSERT_EQUAL(seq, 4u + chain);
    CU_ASSERT_TRUE_FATAL(wait_done(&st, seq));
    unsigned bad = 0;
    for (int i = 0; i <= chain; i++)
        bad += memcmp(bufs[2]->map + i * 8, &seed, 8) != 0;
    CU_ASSERT_EQUAL(bad, 0);
    engine_stream_destroy(s, false);
    CU_ASSERT_EQUAL(st.done, seq);
    check_refs();
    engine_stream_destroy(NULL, false);
}

/* Sequence numbers continue from the state's done and survive wrap-around. */
static void test_stream_seq_wrap(void)
{
    EmuStreamState st = { .done = UINT32_MAX - 1 };
    EngineStream *s = engine_stream_new(0, &st, NULL, resolve_cb, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(engine_stream_last(s), UINT32_MAX - 1);
    EmuTask t = t_memset(addr_of(3, 0), 16, 7);
    CU_ASSERT_EQUAL(submit(s, &t), UINT32_MAX);
    CU_ASSERT_EQUAL(submit(s, &t), 0);
    CU_ASSERT_EQUAL(submit(s, &t), 1);
    CU_ASSERT_TRUE(wait_done(&st, 1));
    CU_ASSERT_TRUE(emu_seq_reached(st.done, UINT32_MAX));
    CU_ASSERT_TRUE(emu_seq_reached(st.done, 0));
    CU_ASSERT_EQUAL(st.done, 1);
    engine_stream_destroy(s, false);
    check_refs();
}

static void test_stream_continue_on_failure(void)
{
    clear_bufs();
    EmuStreamState st = { 0 };
    EngineStream *s = engine_stream_new(0, &st, NULL, resolve_cb, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    EmuTask ok1 = t_memset(addr_of(0, 0), 64, 1);
    EmuTask bad1 = t_memset(BAD_ADDR, 64, 2);
    EmuTask bad2 = t_memcpy(addr_of(0, 0), BAD_ADDR, 64);
    EmuTask bad3 = { .type = 99, .dst = addr_of(0, 0), .size = 64 };
    EmuTask ok2 = t_memset(addr_of(1, 0), 64, 3);
    uint32_t s1 = submit(s, &ok1);
    uint32_t s2 = submit(s, &bad1);
    submit(s, &bad2);
    submit(s, &bad3);
    uint32_t s5 = submit(s, &ok2);
    CU_ASSERT_TRUE_FATAL(wait_done(&st, s5));
    CU_ASSERT_EQUAL(s1 + 1, s2);
    /* the first error wins; later tasks still ran */
    CU_ASSERT_EQUAL(st.error, ACL_ERROR_RT_SYS_DMA);
    CU_ASSERT_EQUAL(st.error_seq, s2);
    CU_ASSERT_TRUE(all_bytes(bufs[0]->map, 64, 1));
    CU_ASSERT_TRUE(all_bytes(bufs[1]->map, 64, 3));

    /* once the client clears the error (synchronise), the next failure is recorded */
    __atomic_store_n(&st.error, ACL_SUCCESS, __ATOMIC_SEQ_CST);
    uint32_t s6 = submit(s, &bad3);
    uint32_t s7 = submit(s, &ok1);
    CU_ASSERT_TRUE_FATAL(wait_done(&st, s7));
    CU_ASSERT_EQUAL(st.error, ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(st.error_seq, s6);
    engine_stream_destroy(s, false);
    check_refs();
}

typedef struct Waiter {
    EmuStreamState *st;
    uint32_t seq;
    gint64 waited_us;
    bool reached;
} Waiter;

/* Sleeps on done like a client synchronising the stream. */
static gpointer waiter_main(gpointer data)
{
    Waiter *w = data;
    gint64 t0 = g_get_monotonic_time();
    __atomic_add_fetch(&w->st->waiters, 1, __ATOMIC_SEQ_CST);
    for (;;) {
        uint32_t d = __atomic_load_n(&w->st->done, __ATOMIC_SEQ_CST);
        if (emu_seq_reached(d, w->seq)) {
            w->reached = true;
            break;
        }
        if (g_get_monotonic_time() - t0 > 20 * G_USEC_PER_SEC)
            break;
        emu_futex_wait(&w->st->done, d, 10ll * 1000000000);
    }
    __atomic_sub_fetch(&w->st->waiters, 1, __ATOMIC_SEQ_CST);
    w->waited_us = g_get_monotonic_time() - t0;
    return NULL;
}

/* A client sleeping on done is woken by the engine, not by a timeout. */
static void test_stream_wakes_waiters(void)
{
    EmuStreamState st = { 0 };
    EngineStream *s = engine_stream_new(0, &st, NULL, resolve_cb, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    gate_close();
    EmuTask g = t_memset(GATE_ADDR, 16, 9);
    uint32_t seq = submit(s, &g);
    CU_ASSERT_TRUE(gate_wait_blocked(1));
    Waiter w = { .st = &st, .seq = seq };
    GThread *th = g_thread_new("waiter", waiter_main, &w);
    g_usleep(100000); /* let it fall asleep */
    CU_ASSERT_EQUAL(__atomic_load_n(&st.done, __ATOMIC_SEQ_CST), 0);
    gate_release();
    g_thread_join(th);
    CU_ASSERT_TRUE(w.reached);
    CU_ASSERT_TRUE(w.waited_us < 5 * G_USEC_PER_SEC);
    engine_stream_destroy(s, false);
    check_refs();
}

/* One blocked stream does not hold up another. */
static void test_streams_concurrent(void)
{
    clear_bufs();
    EmuStreamState sa = { 0 }, sb = { .done = 1000 };
    EngineStream *a = engine_stream_new(0, &sa, NULL, resolve_cb, NULL);
    EngineStream *b = engine_stream_new(1, &sb, NULL, resolve_cb, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);

    gate_close();
    EmuTask g = t_memset(GATE_ADDR, 16, 0x77);
    EmuTask after = t_memset(addr_of(0, 16), 16, 0x78);
    submit(a, &g);
    uint32_t alast = submit(a, &after);
    CU_ASSERT_TRUE(gate_wait_blocked(1));

    uint32_t blast = 0;
    for (int i = 0; i < 100; i++) {
        EmuTask t = t_memset(addr_of(1, (uint64_t)i * 8), 8, (uint64_t)i + 1);
        blast = submit(b, &t);
    }
    EmuTask bad = t_memset(BAD_ADDR, 8, 0);
    blast = submit(b, &bad);
    CU_ASSERT_EQUAL(blast, 1101);
    CU_ASSERT_TRUE(wait_done(&sb, blast));
    bool ok = true;
    for (int i = 0; i < 100; i++)
        ok &= all_bytes(bufs[1]->map + i * 8, 8, (uint8_t)(i + 1));
    CU_ASSERT_TRUE(ok);
    CU_ASSERT_EQUAL(sb.error, ACL_ERROR_RT_SYS_DMA);
    /* stream a is still stuck in its first task, and saw no error */
    CU_ASSERT_EQUAL(__atomic_load_n(&sa.done, __ATOMIC_SEQ_CST), 0);
    CU_ASSERT_EQUAL(sa.error, ACL_SUCCESS);
    CU_ASSERT_TRUE(all_bytes(bufs[0]->map, 32, 0));

    gate_release();
    CU_ASSERT_TRUE(wait_done(&sa, alast));
    CU_ASSERT_TRUE(all_bytes(bufs[0]->map, 16, 0x77));
    CU_ASSERT_TRUE(all_bytes(bufs[0]->map + 16, 16, 0x78));
    CU_ASSERT_EQUAL(sa.error, ACL_SUCCESS);
    engine_stream_destroy(a, false);
    engine_stream_destroy(b, false);
    check_refs();
}

/* destroy without force runs what is queued. */
static void test_destroy_drains(void)
{
    clear_bufs();
    EmuStreamState st = { .done = 41 };
    EngineStream *s = engine_stream_new(0, &st, NULL, resolve_cb, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    gate_close();
    EmuTask g = t_memset(GATE_ADDR, 1, 0xaa);
    submit(s, &g);
    uint32_t last = 0;
    for (int i = 0; i < 256; i++) {
        EmuTask t = t_memset(addr_of(2, (uint64_t)i * 16), 16, 0x33);
        last = submit(s, &t);
    }
    CU_ASSERT_EQUAL(last, 41 + 257);
    CU_ASSERT_TRUE(gate_wait_blocked(1));
    gate_release();
    engine_stream_destroy(s, false);
    CU_ASSERT_EQUAL(st.done, last);
    CU_ASSERT_TRUE(all_bytes(bufs[2]->map, 256 * 16, 0x33));
    CU_ASSERT_EQUAL(bufs[0]->map[0], 0xaa);

    /* an idle stream leaves done alone */
    EmuStreamState idle = { .done = 5 };
    s = engine_stream_new(0, &idle, NULL, resolve_cb, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    engine_stream_destroy(s, true);
    CU_ASSERT_EQUAL(idle.done, 5);
    check_refs();
}

/* A stream holds at most ENGINE_QUEUE_DEPTH waiting tasks; the next submit is
 * refused without queueing anything, and room comes back as tasks run. */
static void test_queue_depth(void)
{
    clear_bufs();
    EmuStreamState st = { 0 };
    EngineStream *s = engine_stream_new(0, &st, NULL, resolve_cb, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    gate_close();
    EmuTask g = t_memset(GATE_ADDR, 1, 0xaa);
    submit(s, &g);
    CU_ASSERT_TRUE(gate_wait_blocked(1));   /* in flight: no longer queued */
    EmuTask t = t_memset(addr_of(1, 0), 16, 0x11);
    uint32_t seq = 0;
    for (int i = 0; i < ENGINE_QUEUE_DEPTH; i++)
        CU_ASSERT_TRUE(engine_stream_submit(s, &t, NULL, &seq));
    CU_ASSERT_EQUAL(seq, 1 + ENGINE_QUEUE_DEPTH);
    uint32_t refused = 7;
    CU_ASSERT_FALSE(engine_stream_submit(s, &t, NULL, &refused));
    CU_ASSERT_EQUAL(refused, 7);
    CU_ASSERT_EQUAL(engine_stream_last(s), 1 + ENGINE_QUEUE_DEPTH);
    gate_release();
    engine_stream_destroy(s, false);
    CU_ASSERT_EQUAL(st.done, 1 + ENGINE_QUEUE_DEPTH);
    check_refs();
}

typedef struct DestroyArgs {
    EngineStream *s;
    bool force;
    int started;
} DestroyArgs;

static gpointer destroy_main(gpointer data)
{
    DestroyArgs *a = data;
    __atomic_store_n(&a->started, 1, __ATOMIC_SEQ_CST);
    engine_stream_destroy(a->s, a->force);
    return NULL;
}

/* destroy with force drops the queued tasks but still publishes the last seq. */
static void test_destroy_force_drops(void)
{
    clear_bufs();
    EmuStreamState st = { 0 };
    EngineStream *s = engine_stream_new(0, &st, NULL, resolve_cb, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    gate_close();
    EmuTask g = t_memset(GATE_ADDR, 1, 0xaa); /* in flight: finishes normally */
    uint32_t first = submit(s, &g);
    CU_ASSERT_TRUE(gate_wait_blocked(1));
    uint32_t last = 0;
    for (int i = 0; i < 100; i++) {
        EmuTask t = t_memset(addr_of(3, (uint64_t)i * 16), 16, 0x44);
        last = submit(s, &t);
    }
    EmuTask bad = t_memset(BAD_ADDR, 1, 0);
    last = submit(s, &bad);
    CU_ASSERT_EQUAL(last, first + 101);

    DestroyArgs da = { .s = s, .force = true };
    GThread *th = g_thread_new("destroy", destroy_main, &da);
    while (!__atomic_load_n(&da.started, __ATOMIC_SEQ_CST))
        g_usleep(1000);
    g_usleep(200000); /* destroy has marked the stream by now; it waits for the worker */
    CU_ASSERT_EQUAL(__atomic_load_n(&st.done, __ATOMIC_SEQ_CST), 0);
    gate_release();
    g_thread_join(th);

    CU_ASSERT_EQUAL(st.done, last);
    CU_ASSERT_EQUAL(bufs[0]->map[0], 0xaa);
    CU_ASSERT_TRUE(all_bytes(bufs[3]->map, BUF_SIZE, 0)); /* dropped, never ran */
    CU_ASSERT_EQUAL(st.error, ACL_SUCCESS);                /* the bad task was dropped too */
    check_refs();
}

/* Several streams submitting from several threads at once. */
typedef struct Feeder {
    int buf;
    EngineStream *s;
    EmuStreamState st;
    uint32_t last;
} Feeder;

static gpointer feeder_main(gpointer data)
{
    Feeder *f = data;
    for (int i = 0; i < 1000; i++) {
        EmuTask t = t_memset32(addr_of(f->buf, (uint64_t)(i % 256) * 64), 64,
                               (uint64_t)(f->buf << 16 | i));
        f->last = submit(f->s, &t);
    }
    return NULL;
}

static void test_many_streams_many_threads(void)
{
    clear_bufs();
    Feeder f[NBUF];
    GThread *th[NBUF];
    for (int i = 0; i < NBUF; i++) {
        f[i] = (Feeder){ .buf = i };
        f[i].s = engine_stream_new(i, &f[i].st, NULL, resolve_cb, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(f[i].s);
    }
    for (int i = 0; i < NBUF; i++)
        th[i] = g_thread_new("feeder", feeder_main, &f[i]);
    for (int i = 0; i < NBUF; i++)
        g_thread_join(th[i]);
    for (int i = 0; i < NBUF; i++) {
        CU_ASSERT_EQUAL(f[i].last, 1000);
        CU_ASSERT_TRUE(wait_done(&f[i].st, f[i].last));
        CU_ASSERT_EQUAL(f[i].st.error, ACL_SUCCESS);
        /* task k writes block k % 256, so the last writer of a block is the
         * largest such k below 1000: only in-order execution leaves it there */
        bool ok = true;
        for (int blk = 0; blk < 256; blk++) {
            uint32_t want = (uint32_t)(i << 16 | (blk + 768 <= 999 ? blk + 768 : blk + 512));
            for (int w = 0; w < 16; w++) {
                uint32_t v;
                memcpy(&v, bufs[i]->map + blk * 64 + w * 4, 4);
                ok &= v == want;
            }
        }
        CU_ASSERT_TRUE(ok);
        engine_stream_destroy(f[i].s, false);
    }
    check_refs();
}

/*
 * engine_stream_submit must return the number of the task it queued even when
 * the worker runs and retires that task at once: submit tasks that cost
 * nothing (size 0) as fast as possible on a few streams at a time, so that the
 * worker constantly contends for the queue lock with the submitter.
 */
typedef struct Racer {
    EngineStream *s;
    EmuStreamState st;
    uint32_t bad, last;
} Racer;

static gpointer racer_main(gpointer data)
{
    Racer *r = data;
    EmuTask t = t_memset(BAD_ADDR, 0, 0);
    uint32_t prev = engine_stream_last(r->s);
    for (int i = 0; i < 50000; i++) {
        uint32_t seq = submit(r->s, &t);
        r->bad += seq != prev + 1;
        prev = seq;
    }
    r->last = prev;
    return NULL;
}

static void test_submit_races_worker(void)
{
    enum { R = 2 };
    Racer r[R];
    GThread *th[R];
    for (int i = 0; i < R; i++) {
        r[i] = (Racer){ .st = { .done = (uint32_t)i * 1000000u } };
        r[i].s = engine_stream_new(i, &r[i].st, NULL, resolve_cb, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r[i].s);
    }
    for (int i = 0; i < R; i++)
        th[i] = g_thread_new("racer", racer_main, &r[i]);
    for (int i = 0; i < R; i++) {
        g_thread_join(th[i]);
        CU_ASSERT_EQUAL(r[i].bad, 0);
        CU_ASSERT_EQUAL(r[i].last, (uint32_t)i * 1000000u + 50000u);
        CU_ASSERT_TRUE(wait_done(&r[i].st, r[i].last));
        CU_ASSERT_EQUAL(r[i].st.error, ACL_SUCCESS);
        engine_stream_destroy(r[i].s, false);
    }
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return CU_get_error();
    CU_pSuite s = CU_add_suite("engine", setup, teardown);
    if (!s || !CU_add_test(s, "run: memset", test_run_memset) ||
        !CU_add_test(s, "run: memset32", test_run_memset32) ||
        !CU_add_test(s, "run: memcpy", test_run_memcpy) ||
        !CU_add_test(s, "run: size 0", test_run_size_zero) ||
        !CU_add_test(s, "run: errors", test_run_errors) ||
        !CU_add_test(s, "run: memcpy2d", test_run_memcpy2d) ||
        !CU_add_test(s, "run: memcpy2d errors", test_run_memcpy2d_errors) ||
        !CU_add_test(s, "run: memcpy through stored bases", test_run_memcpy_ptr) ||
        !CU_add_test(s, "run: memcpy through stored bases, errors", test_run_memcpy_ptr_errors) ||
        !CU_add_test(s, "run: reduce", test_run_reduce) ||
        !CU_add_test(s, "reduce: half precision rounding", test_reduce_half_rounding) ||
        !CU_add_test(s, "stream: 2D and stored-base copies in order", test_stream_2d_and_ptr) ||
        !CU_add_test(s, "stream: tasks run in order", test_stream_in_order) ||
        !CU_add_test(s, "stream: seq wrap-around", test_stream_seq_wrap) ||
        !CU_add_test(s, "stream: continue on failure", test_stream_continue_on_failure) ||
        !CU_add_test(s, "stream: waiters are woken", test_stream_wakes_waiters) ||
        !CU_add_test(s, "streams run concurrently", test_streams_concurrent) ||
        !CU_add_test(s, "destroy runs queued tasks", test_destroy_drains) ||
        !CU_add_test(s, "destroy with force drops queued tasks", test_destroy_force_drops) ||
        !CU_add_test(s, "many streams, many threads", test_many_streams_many_threads) ||
        !CU_add_test(s, "submit returns its seq while the worker races", test_submit_races_worker) ||
        !CU_add_test(s, "queue depth is bounded", test_queue_depth)) {
        CU_cleanup_registry();
        return 1;
    }
    return cu_run_all();
}
