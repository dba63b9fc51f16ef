/*
 * test_stream.c - integration tests of chapter 06 (streams) beyond create /
 * destroy / synchronise, against a real npu-emu (profile a2): queries from the
 * shared stream state, ids, flags and priorities, attributes and the overflow
 * switch, the failure mode (ACL_STOP_ON_FAILURE spreading to the whole
 * context), abort, stop, persistent streams, state callbacks, and the
 * 1984-stream limit.
 *
 * Outcomes are checked on the device: a task that must not run leaves device
 * memory as it was, a task that must run changes it.  A stream is kept busy by
 * a notify wait that nobody records.  Tests that change a context's failure
 * mode use a context of their own, since the mode then holds for every stream
 * of that context.  Every expected failure is checked with its exact code,
 * last error and message (acl_check.h).
 */
#define _GNU_SOURCE
#include <CUnit/Basic.h>
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl/acl.h"
#include "acl_check.h"
#include "harness.h"

#define N 4096
#define UNMAPPED ((void *)(uintptr_t)0x150000000000ull)     /* in the window, never mapped */

static TestEmu g_emu;
static aclrtContext g_ctx;          /* device 0's default context */

static bool emu_alive(void)
{
    return emu_running(&g_emu);
}

#define TEST(name) EMU_TEST(name, emu_alive)

/* ---- helpers ---- */

static void *dev_filled(uint8_t v)
{
    void *d = NULL;
    if (EXPECT_OK(aclrtMalloc(&d, N, ACL_MEM_MALLOC_HUGE_FIRST)))
        EXPECT_OK(aclrtMemset(d, N, v, N));
    return d;
}

/* True when all N bytes at device address d are v. */
static bool dev_is(void *d, uint8_t v)
{
    uint8_t buf[N];
    if (!EXPECT_OK(aclrtMemcpy(buf, N, d, N, ACL_MEMCPY_DEVICE_TO_HOST)))
        return false;
    return all_bytes(buf, N, v);
}

/* Holds stream s at a notify wait until open_gate(): tasks queued behind it
 * are all queued before any of them runs. */
static aclrtNotify close_gate(aclrtStream s)
{
    aclrtNotify n = NULL;
    EXPECT_OK(aclrtCreateNotify(&n, 0));
    EXPECT_OK(aclrtWaitAndResetNotify(n, s, 0));
    return n;
}

static void open_gate(aclrtNotify n, aclrtStream by)
{
    EXPECT_OK(aclrtRecordNotify(n, by));
    EXPECT_OK(aclrtSynchronizeStream(by));
}

static aclrtStreamStatus query(aclrtStream s)
{
    aclrtStreamStatus st = ACL_STREAM_STATUS_RESERVED;
    EXPECT_OK(aclrtStreamQuery(s, &st));
    return st;
}

static uint64_t failure_mode(aclrtStream s)
{
    aclrtStreamAttrValue v;
    memset(&v, 0xff, sizeof(v));
    EXPECT_OK(aclrtGetStreamAttribute(s, ACL_STREAM_ATTR_FAILURE_MODE, &v));
    return v.failureMode;
}

/* ---- queries ---- */

TEST(test_query)
{
    aclrtStream s = NULL;
    aclrtNotify n = NULL;
    aclrtStreamStatus st;
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtCreateNotify(&n, 0));
    void *d = dev_filled(0x11);
    CHECK(query(s) == ACL_STREAM_STATUS_COMPLETE);          /* nothing queued yet */
    CHECK(query(NULL) == ACL_STREAM_STATUS_COMPLETE);       /* the default stream */
    /* A wait nobody answers yet: the stream has work left. */
    EXPECT_OK(aclrtWaitAndResetNotify(n, s, 0));
    EXPECT_OK(aclrtMemsetAsync(d, N, 0x22, N, s));
    CHECK(query(s) == ACL_STREAM_STATUS_NOT_READY);
    g_usleep(20000);
    CHECK(query(s) == ACL_STREAM_STATUS_NOT_READY);
    CHECKF(dev_is(d, 0x11), "a task behind the wait ran early");
    EXPECT_OK(aclrtRecordNotify(n, NULL));
    EXPECT_OK(aclrtSynchronizeStream(s));
    CHECK(query(s) == ACL_STREAM_STATUS_COMPLETE);
    CHECK(dev_is(d, 0x22));
    /* Completion without a synchronise: poll until the engine published it. */
    EXPECT_OK(aclrtMemsetAsync(d, N, 0x33, N, s));
    int polls = 0;
    while (query(s) != ACL_STREAM_STATUS_COMPLETE && polls++ < 10000)
        g_usleep(100);
    CHECK(polls < 10000);
    CHECK(dev_is(d, 0x33));
    EXPECT_ERR(aclrtStreamQuery(s, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtDestroyStream(s));
    EXPECT_ERR(aclrtStreamQuery(s, &st), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_OK(aclrtDestroyNotify(n));
    EXPECT_OK(aclrtFree(d));
}

TEST(test_id_flags_priority)
{
    aclrtStream a = NULL, b = NULL, c = NULL, def = NULL;
    int32_t ia = -1, ib = -1, idef = -1, inull = -2;
    uint32_t f = 99, p = 99;
    EXPECT_OK(aclrtCreateStream(&a));
    EXPECT_OK(aclrtCreateStreamWithConfig(&b, 3, ACL_STREAM_FAST_LAUNCH | ACL_STREAM_FAST_SYNC));
    EXPECT_OK(aclrtCtxGetCurrentDefaultStream(&def));
    EXPECT_OK(aclrtStreamGetId(a, &ia));
    EXPECT_OK(aclrtStreamGetId(b, &ib));
    EXPECT_OK(aclrtStreamGetId(def, &idef));
    EXPECT_OK(aclrtStreamGetId(NULL, &inull));
    CHECK(ia >= 0 && ib >= 0 && ia != ib && ia != idef && ib != idef);
    CHECK(inull == idef);
    /* aclrtCreateStream: no flag, the highest priority (0). */
    EXPECT_OK(aclrtStreamGetFlags(a, &f));
    EXPECT_OK(aclrtStreamGetPriority(a, &p));
    CHECK(f == 0 && p == 0);
    EXPECT_OK(aclrtStreamGetFlags(b, &f));
    EXPECT_OK(aclrtStreamGetPriority(b, &p));
    CHECK(f == (ACL_STREAM_FAST_LAUNCH | ACL_STREAM_FAST_SYNC) && p == 3);
    EXPECT_OK(aclrtStreamGetFlags(NULL, &f));
    EXPECT_OK(aclrtStreamGetPriority(NULL, &p));
    CHECK(f == 0 && p == 0);
    /* The flagged stream works like any other. */
    void *d = dev_filled(0);
    EXPECT_OK(aclrtMemsetAsync(d, N, 0x5a, N, b));
    EXPECT_OK(aclrtSynchronizeStream(b));
    CHECK(dev_is(d, 0x5a));
    EXPECT_OK(aclrtFree(d));
    /* HUGE (no effect on A2 / A3, documented) is kept and reported. */
    EXPECT_OK(aclrtCreateStreamWithConfig(&c, 7, ACL_STREAM_HUGE | ACL_STREAM_FAST_LAUNCH));
    EXPECT_OK(aclrtStreamGetFlags(c, &f));
    CHECK(f == (ACL_STREAM_HUGE | ACL_STREAM_FAST_LAUNCH));
    EXPECT_OK(aclrtDestroyStream(c));
    /* Documented: other values give the stream aclrtCreateStream gives. */
    EXPECT_OK(aclrtCreateStreamWithConfig(&c, 0, 0x40u | ACL_STREAM_FAST_SYNC));
    EXPECT_OK(aclrtStreamGetFlags(c, &f));
    CHECK(f == 0);
    EXPECT_OK(aclrtDestroyStream(c));
    /* Priorities beyond the device's range (0..7) are the lowest one. */
    EXPECT_OK(aclrtCreateStreamWithConfig(&c, 100, 0));
    EXPECT_OK(aclrtStreamGetPriority(c, &p));
    CHECK(p == 7);
    EXPECT_OK(aclrtDestroyStream(c));
    /* Flags that cannot be ORed. */
    EXPECT_ERR(aclrtCreateStreamWithConfig(&c, 0, ACL_STREAM_PERSISTENT |
                                                      ACL_STREAM_DEVICE_USE_ONLY),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtCreateStreamWithConfig(&c, 0, ACL_STREAM_CPU_SCHEDULE |
                                                      ACL_STREAM_PERSISTENT),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtStreamGetId(a, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtStreamGetFlags(a, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtStreamGetPriority(a, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtDestroyStream(a));
    EXPECT_ERR(aclrtStreamGetId(a, &ia), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_ERR(aclrtStreamGetFlags(a, &f), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_ERR(aclrtStreamGetPriority(a, &p), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_OK(aclrtDestroyStream(b));
}

TEST(test_attributes_and_overflow)
{
    aclrtStream s = NULL;
    aclrtStreamAttrValue v;
    uint32_t f = 9, p = 9;
    EXPECT_OK(aclrtCreateStream(&s));
    /* Overflow switch: off by default, per stream. */
    EXPECT_OK(aclrtGetStreamOverflowSwitch(s, &f));
    CHECK(f == 0);
    EXPECT_OK(aclrtSetStreamOverflowSwitch(s, 1));
    EXPECT_OK(aclrtGetStreamOverflowSwitch(s, &f));
    CHECK(f == 1);
    EXPECT_OK(aclrtGetStreamOverflowSwitch(NULL, &f));
    CHECK(f == 0);
    memset(&v, 0, sizeof(v));
    EXPECT_OK(aclrtGetStreamAttribute(s, ACL_STREAM_ATTR_FLOAT_OVERFLOW_CHECK, &v));
    CHECK(v.overflowSwitch == 1);
    v.overflowSwitch = 0;
    EXPECT_OK(aclrtSetStreamAttribute(s, ACL_STREAM_ATTR_FLOAT_OVERFLOW_CHECK, &v));
    EXPECT_OK(aclrtGetStreamOverflowSwitch(s, &f));
    CHECK(f == 0);
    EXPECT_ERR(aclrtSetStreamOverflowSwitch(s, 2), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtGetStreamOverflowSwitch(s, NULL), ACL_ERROR_RT_PARAM_INVALID);
    /* Priority: set dynamically, read back both ways. */
    v.streamPriority = 5;
    EXPECT_OK(aclrtSetStreamAttribute(s, ACL_STREAM_ATTR_PRIORITY, &v));
    EXPECT_OK(aclrtStreamGetPriority(s, &p));
    CHECK(p == 5);
    memset(&v, 0xff, sizeof(v));
    EXPECT_OK(aclrtGetStreamAttribute(s, ACL_STREAM_ATTR_PRIORITY, &v));
    CHECK(v.streamPriority == 5 && v.reserve[1] == 0);
    v.streamPriority = 8;
    EXPECT_ERR(aclrtSetStreamAttribute(s, ACL_STREAM_ATTR_PRIORITY, &v),
               ACL_ERROR_RT_PARAM_INVALID);
    /* Custom tag: any value. */
    v.userCustomTag = 0xfffffffeu;
    EXPECT_OK(aclrtSetStreamAttribute(s, ACL_STREAM_ATTR_USER_CUSTOM_TAG, &v));
    memset(&v, 0, sizeof(v));
    EXPECT_OK(aclrtGetStreamAttribute(s, ACL_STREAM_ATTR_USER_CUSTOM_TAG, &v));
    CHECK(v.userCustomTag == 0xfffffffeu);
    /* Op-info cache: accepted, reported on only while capturing (never here). */
    v.cacheOpInfoSwitch = 1;
    EXPECT_OK(aclrtSetStreamAttribute(s, ACL_STREAM_ATTR_CACHE_OP_INFO, &v));
    EXPECT_OK(aclrtGetStreamAttribute(s, ACL_STREAM_ATTR_CACHE_OP_INFO, &v));
    CHECK(v.cacheOpInfoSwitch == 0);
    v.cacheOpInfoSwitch = 2;
    EXPECT_ERR(aclrtSetStreamAttribute(s, ACL_STREAM_ATTR_CACHE_OP_INFO, &v),
               ACL_ERROR_RT_PARAM_INVALID);
    /* The default stream (NULL) takes attributes on A2 / A3, but not the failure mode. */
    v.streamPriority = 2;
    EXPECT_OK(aclrtSetStreamAttribute(NULL, ACL_STREAM_ATTR_PRIORITY, &v));
    EXPECT_OK(aclrtStreamGetPriority(NULL, &p));
    CHECK(p == 2);
    v.streamPriority = 0;
    EXPECT_OK(aclrtSetStreamAttribute(NULL, ACL_STREAM_ATTR_PRIORITY, &v));
    v.failureMode = ACL_STOP_ON_FAILURE;
    EXPECT_ERR(aclrtSetStreamAttribute(NULL, ACL_STREAM_ATTR_FAILURE_MODE, &v),
               ACL_ERROR_RT_PARAM_INVALID);
    CHECK(failure_mode(NULL) == ACL_CONTINUE_ON_FAILURE);
    CHECK(failure_mode(s) == ACL_CONTINUE_ON_FAILURE);
    /* Bad arguments. */
    EXPECT_ERR(aclrtSetStreamAttribute(s, (aclrtStreamAttr)6, &v), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtGetStreamAttribute(s, (aclrtStreamAttr)0, &v), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtSetStreamAttribute(s, ACL_STREAM_ATTR_PRIORITY, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtGetStreamAttribute(s, ACL_STREAM_ATTR_PRIORITY, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    v.failureMode = 2;
    EXPECT_ERR(aclrtSetStreamAttribute(s, ACL_STREAM_ATTR_FAILURE_MODE, &v),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtDestroyStream(s));
    EXPECT_ERR(aclrtSetStreamOverflowSwitch(s, 1), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_ERR(aclrtGetStreamAttribute(s, ACL_STREAM_ATTR_PRIORITY, &v),
               ACL_ERROR_RT_INVALID_HANDLE);
}

/* ---- failure mode ---- */

TEST(test_stop_on_failure)
{
    aclrtContext ctx = NULL;
    aclrtStream s1 = NULL, s2 = NULL, s3 = NULL, other = NULL;
    EXPECT_OK(aclrtCreateStream(&other));           /* in device 0's default context */
    EXPECT_OK(aclrtCreateContext(&ctx, 0));         /* current now */
    EXPECT_OK(aclrtCreateStream(&s1));
    EXPECT_OK(aclrtCreateStream(&s2));
    void *d = dev_filled(0x11), *gone = NULL;
    EXPECT_OK(aclrtMalloc(&gone, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtFree(gone));                     /* a freed address */
    CHECK(failure_mode(s2) == ACL_CONTINUE_ON_FAILURE);

    EXPECT_OK(aclrtSetStreamFailureMode(s1, ACL_STOP_ON_FAILURE));
    /* Once per stream. */
    EXPECT_ERR(aclrtSetStreamFailureMode(s1, ACL_STOP_ON_FAILURE), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtSetStreamFailureMode(s1, ACL_CONTINUE_ON_FAILURE),
               ACL_ERROR_RT_PARAM_INVALID);
    /* The whole context: the other streams, its default stream, and later ones. */
    EXPECT_OK(aclrtCreateStream(&s3));
    CHECK(failure_mode(s1) == ACL_STOP_ON_FAILURE);
    CHECK(failure_mode(s2) == ACL_STOP_ON_FAILURE);
    CHECK(failure_mode(s3) == ACL_STOP_ON_FAILURE);
    CHECK(failure_mode(NULL) == ACL_STOP_ON_FAILURE);
    CHECK(failure_mode(other) == ACL_CONTINUE_ON_FAILURE);   /* another context */
    /* Continue cannot be set on a stream of a stop-on-failure context. */
    EXPECT_ERR(aclrtSetStreamFailureMode(s2, ACL_CONTINUE_ON_FAILURE),
               ACL_ERROR_RT_PARAM_INVALID);

    /* s1: a copy from a freed address fails; the memset behind it must not run.
     * s3 waits meanwhile on a gate nobody opens, with a memset behind. */
    aclrtNotify gate = close_gate(s1), never = close_gate(s3);
    EXPECT_OK(aclrtMemsetAsync(d, N, 0x55, N, s3));
    EXPECT_OK(aclrtMemcpyAsync(d, N, gone, N, ACL_MEMCPY_DEVICE_TO_DEVICE, s1));
    EXPECT_OK(aclrtMemsetAsync(d, N, 0x22, N, s1));
    open_gate(gate, other);                         /* another context's stream */
    EXPECT_ERR(aclrtSynchronizeStream(s1), ACL_ERROR_RT_SYS_DMA);
    CHECKF(dev_is(d, 0x11), "a task after the failure ran on a stop-on-failure stream");
    CHECK(query(s1) == ACL_STREAM_STATUS_COMPLETE);
    /* Stopped: no new task, and every synchronise reports the failure. */
    EXPECT_ERR(aclrtMemsetAsync(d, N, 0x33, N, s1), ACL_ERROR_RT_SYS_DMA);
    EXPECT_ERR(aclrtSynchronizeStream(s1), ACL_ERROR_RT_SYS_DMA);
    EXPECT_ERR(aclrtSynchronizeStreamWithTimeout(s1, 1000), ACL_ERROR_RT_SYS_DMA);

    /* Every stream of the context stops with it (dev guide 03-02): s3's wait
     * is interrupted and the memset behind it dropped... */
    EXPECT_ERR(aclrtSynchronizeStreamWithTimeout(s3, 10000), ACL_ERROR_RT_SYS_DMA);
    CHECKF(dev_is(d, 0x11), "a task queued on a sibling stream ran after the failure");
    EXPECT_ERR(aclrtMemsetAsync(d, N, 0x66, N, s3), ACL_ERROR_RT_SYS_DMA);
    /* ... s2 and the default stream take no new task ... */
    EXPECT_ERR(aclrtSynchronizeStream(s2), ACL_ERROR_RT_SYS_DMA);
    EXPECT_ERR(aclrtMemsetAsync(d, N, 0x44, N, s2), ACL_ERROR_RT_SYS_DMA);
    EXPECT_ERR(aclrtMemsetAsync(d, N, 0x44, N, NULL), ACL_ERROR_RT_SYS_DMA);
    /* ... and neither does a stream created in the context afterwards. */
    aclrtStream late = NULL;
    EXPECT_OK(aclrtCreateStream(&late));
    EXPECT_ERR(aclrtMemsetAsync(d, N, 0x77, N, late), ACL_ERROR_RT_SYS_DMA);
    EXPECT_OK(aclrtDestroyStream(late));
    CHECK(dev_is(d, 0x11));
    EXPECT_OK(aclrtDestroyNotify(gate));
    EXPECT_OK(aclrtDestroyNotify(never));

    /* Another context: the mode set on a stream spreads to a stream created
     * later, whose own failure (an unmapped address) stops the first one. */
    aclrtContext ctx2 = NULL;
    aclrtStream a = NULL, b = NULL;
    EXPECT_OK(aclrtCreateContext(&ctx2, 0));
    EXPECT_OK(aclrtCreateStream(&a));
    EXPECT_OK(aclrtSetStreamFailureMode(a, ACL_STOP_ON_FAILURE));
    EXPECT_OK(aclrtCreateStream(&b));
    EXPECT_OK(aclrtMemsetAsync(d, N, 0x88, N, a));
    EXPECT_OK(aclrtSynchronizeStream(a));
    CHECK(dev_is(d, 0x88));
    EXPECT_OK(aclrtMemcpyAsync(d, N, UNMAPPED, N, ACL_MEMCPY_DEVICE_TO_DEVICE, b));
    EXPECT_ERR(aclrtSynchronizeStream(b), ACL_ERROR_RT_SYS_DMA);
    EXPECT_ERR(aclrtSynchronizeStream(a), ACL_ERROR_RT_SYS_DMA);
    EXPECT_ERR(aclrtMemsetAsync(d, N, 0x99, N, a), ACL_ERROR_RT_SYS_DMA);
    CHECK(dev_is(d, 0x88));
    EXPECT_OK(aclrtDestroyStream(a));
    EXPECT_OK(aclrtDestroyStream(b));
    EXPECT_OK(aclrtDestroyContext(ctx2));

    /* A continue-on-failure stream of another context is not affected. */
    EXPECT_OK(aclrtSetCurrentContext(g_ctx));
    EXPECT_OK(aclrtMemcpyAsync(d, N, UNMAPPED, N, ACL_MEMCPY_DEVICE_TO_DEVICE, other));
    EXPECT_OK(aclrtMemsetAsync(d, N, 0x99, N, other));
    EXPECT_ERR(aclrtSynchronizeStream(other), ACL_ERROR_RT_SYS_DMA);
    CHECK(dev_is(d, 0x99));
    EXPECT_OK(aclrtSynchronizeStream(other));
    EXPECT_OK(aclrtDestroyStream(other));

    /* A stopped stream is destroyed normally; its slot serves a fresh stream. */
    EXPECT_OK(aclrtSetCurrentContext(ctx));
    EXPECT_OK(aclrtDestroyStream(s1));
    EXPECT_OK(aclrtDestroyStream(s3));
    EXPECT_OK(aclrtSetCurrentContext(g_ctx));
    aclrtStream fresh = NULL;
    EXPECT_OK(aclrtCreateStream(&fresh));
    EXPECT_OK(aclrtMemsetAsync(d, N, 0xaa, N, fresh));
    EXPECT_OK(aclrtSynchronizeStream(fresh));
    CHECK(dev_is(d, 0xaa));
    EXPECT_OK(aclrtDestroyStream(fresh));
    EXPECT_OK(aclrtDestroyContext(ctx));
    EXPECT_OK(aclrtSetCurrentContext(g_ctx));
    EXPECT_OK(aclrtFree(d));
}

TEST(test_failure_mode_default_stream)
{
    aclrtContext ctx = NULL;
    aclrtStream s = NULL;
    EXPECT_OK(aclrtCreateContext(&ctx, 0));
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_ERR(aclrtSetStreamFailureMode(NULL, 2), ACL_ERROR_RT_PARAM_INVALID);
    /* A2 / A3: NULL names the default stream. */
    EXPECT_OK(aclrtSetStreamFailureMode(NULL, ACL_STOP_ON_FAILURE));
    EXPECT_ERR(aclrtSetStreamFailureMode(NULL, ACL_STOP_ON_FAILURE), ACL_ERROR_RT_PARAM_INVALID);
    CHECK(failure_mode(s) == ACL_STOP_ON_FAILURE);
    /* Explicit STOP on another stream of the context is its one call: fine. */
    EXPECT_OK(aclrtSetStreamFailureMode(s, ACL_STOP_ON_FAILURE));
    void *d = dev_filled(0x11);
    aclrtNotify gate = close_gate(NULL);
    EXPECT_OK(aclrtMemcpyAsync(d, N, UNMAPPED, N, ACL_MEMCPY_DEVICE_TO_DEVICE, NULL));
    EXPECT_OK(aclrtMemsetAsync(d, N, 0x22, N, NULL));
    EXPECT_OK(aclrtRecordNotify(gate, s));
    EXPECT_ERR(aclrtSynchronizeStream(NULL), ACL_ERROR_RT_SYS_DMA);
    CHECK(dev_is(d, 0x11));
    EXPECT_ERR(aclrtMemsetAsync(d, N, 0x22, N, NULL), ACL_ERROR_RT_SYS_DMA);
    EXPECT_ERR(aclrtSynchronizeStream(s), ACL_ERROR_RT_SYS_DMA);    /* the context stopped */
    EXPECT_OK(aclrtDestroyNotify(gate));
    /* Explicit CONTINUE on a first call: a stream of a context in continue mode. */
    EXPECT_OK(aclrtDestroyStream(s));
    EXPECT_OK(aclrtDestroyContext(ctx));
    EXPECT_OK(aclrtSetCurrentContext(g_ctx));
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtSetStreamFailureMode(s, ACL_CONTINUE_ON_FAILURE));
    EXPECT_ERR(aclrtSetStreamFailureMode(s, ACL_CONTINUE_ON_FAILURE), ACL_ERROR_RT_PARAM_INVALID);
    CHECK(failure_mode(s) == ACL_CONTINUE_ON_FAILURE);
    EXPECT_OK(aclrtMemcpyAsync(d, N, UNMAPPED, N, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    EXPECT_OK(aclrtMemsetAsync(d, N, 0x33, N, s));
    EXPECT_ERR(aclrtSynchronizeStream(s), ACL_ERROR_RT_SYS_DMA);
    CHECK(dev_is(d, 0x33));
    EXPECT_OK(aclrtSynchronizeStream(s));
    EXPECT_OK(aclrtDestroyStream(s));
    EXPECT_ERR(aclrtSetStreamFailureMode(s, ACL_STOP_ON_FAILURE), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_OK(aclrtFree(d));
}

/* ---- abort and stop ---- */

TEST(test_abort)
{
    aclrtStream s = NULL;
    aclrtNotify n = NULL;
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtCreateNotify(&n, 0));
    void *d = dev_filled(0x11);
    /* Abort of an idle stream: nothing to drop, nothing to report. */
    EXPECT_OK(aclrtStreamAbort(s));
    EXPECT_OK(aclrtSynchronizeStream(s));
    /* A long queue behind a wait that never comes. */
    EXPECT_OK(aclrtWaitAndResetNotify(n, s, 0));
    for (int i = 0; i < 100; i++)
        EXPECT_OK(aclrtMemsetAsync(d, N, 0x22 + i % 2, N, s));
    CHECK(query(s) == ACL_STREAM_STATUS_NOT_READY);
    EXPECT_OK(aclrtStreamAbort(s));
    /* Abort returns once the stream let go of the work. */
    CHECK(query(s) == ACL_STREAM_STATUS_COMPLETE);
    EXPECT_ERR(aclrtSynchronizeStream(s), ACL_ERROR_RT_STREAM_ABORT);
    CHECKF(dev_is(d, 0x11), "an aborted task ran");
    /* The stream works again. */
    EXPECT_OK(aclrtSynchronizeStream(s));
    EXPECT_OK(aclrtMemsetAsync(d, N, 0x33, N, s));
    EXPECT_OK(aclrtSynchronizeStream(s));
    CHECK(dev_is(d, 0x33));
    /* The default stream can be aborted too. */
    EXPECT_OK(aclrtWaitAndResetNotify(n, NULL, 0));
    EXPECT_OK(aclrtMemsetAsync(d, N, 0x44, N, NULL));
    EXPECT_OK(aclrtStreamAbort(NULL));
    EXPECT_ERR(aclrtSynchronizeStream(NULL), ACL_ERROR_RT_STREAM_ABORT);
    CHECK(dev_is(d, 0x33));
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    /* The notify was never recorded: a later record and wait pair still works. */
    EXPECT_OK(aclrtRecordNotify(n, s));
    EXPECT_OK(aclrtWaitAndResetNotify(n, s, 0));
    EXPECT_OK(aclrtSynchronizeStream(s));
    EXPECT_OK(aclrtDestroyStream(s));
    EXPECT_ERR(aclrtStreamAbort(s), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_OK(aclrtDestroyNotify(n));
    EXPECT_OK(aclrtFree(d));
}

TEST(test_stop)
{
    aclrtStream s = NULL, def = NULL;
    aclrtNotify n = NULL;
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtCreateNotify(&n, 0));
    EXPECT_OK(aclrtCtxGetCurrentDefaultStream(&def));
    EXPECT_ERR(aclrtStreamStop(NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtStreamStop(def), ACL_ERROR_RT_PARAM_INVALID);
    void *d = dev_filled(0x11);
    EXPECT_OK(aclrtWaitAndResetNotify(n, s, 0));
    EXPECT_OK(aclrtMemsetAsync(d, N, 0x22, N, s));
    /* Stop interrupts the task running now; the wait may not have started yet,
     * so stop until the stream gets past it. */
    aclError err = ACL_ERROR_RT_STREAM_SYNC_TIMEOUT;
    for (int i = 0; i < 50 && err == ACL_ERROR_RT_STREAM_SYNC_TIMEOUT; i++) {
        EXPECT_OK(aclrtStreamStop(s));
        err = aclrtSynchronizeStreamWithTimeout(s, 100);
        drain_errors();
    }
    CHECKF(err == ACL_ERROR_RT_STREAM_ABORT, "synchronise after stop: %d", err);
    /* The queued task was kept and ran. */
    CHECKF(dev_is(d, 0x22), "stop dropped a queued task");
    EXPECT_OK(aclrtSynchronizeStream(s));
    /* Stop of an idle stream changes nothing. */
    EXPECT_OK(aclrtStreamStop(s));
    EXPECT_OK(aclrtMemsetAsync(d, N, 0x33, N, s));
    EXPECT_OK(aclrtSynchronizeStream(s));
    CHECK(dev_is(d, 0x33));
    EXPECT_OK(aclrtDestroyStream(s));
    EXPECT_ERR(aclrtStreamStop(s), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_OK(aclrtDestroyNotify(n));
    EXPECT_OK(aclrtFree(d));
}

/* ---- persistent and device-only streams ---- */

TEST(test_persistent)
{
    aclrtStream p = NULL, dev_only = NULL, s = NULL;
    uint32_t f = 0;
    EXPECT_OK(aclrtCreateStreamWithConfig(&p, 0, ACL_STREAM_PERSISTENT));
    EXPECT_OK(aclrtCreateStreamWithConfig(&dev_only, 0, ACL_STREAM_DEVICE_USE_ONLY));
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtStreamGetFlags(p, &f));
    CHECK(f == ACL_STREAM_PERSISTENT);
    void *d = dev_filled(0x11);
    /* No host task: nothing here would ever run it. */
    EXPECT_ERR(aclrtMemsetAsync(d, N, 0x22, N, p), ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    EXPECT_ERR(aclrtMemsetAsync(d, N, 0x22, N, dev_only), ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    CHECK(dev_is(d, 0x11));
    /* Documented: synchronise returns success at once. */
    EXPECT_OK(aclrtSynchronizeStream(p));
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(dev_only, 10));
    CHECK(query(p) == ACL_STREAM_STATUS_COMPLETE);
    EXPECT_OK(aclrtPersistentTaskClean(p));
    EXPECT_ERR(aclrtPersistentTaskClean(s), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtPersistentTaskClean(dev_only), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtPersistentTaskClean(NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtStreamAbort(p));
    EXPECT_OK(aclrtDestroyStream(p));
    EXPECT_ERR(aclrtPersistentTaskClean(p), ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_OK(aclrtDestroyStream(dev_only));
    EXPECT_OK(aclrtDestroyStream(s));
    EXPECT_OK(aclrtFree(d));
}

/* Model-bound streams do not exist in npu-emu. */
TEST(test_model_stream_calls)
{
    aclrtStream a = NULL, b = NULL;
    EXPECT_OK(aclrtCreateStream(&a));
    EXPECT_OK(aclrtCreateStream(&b));
    EXPECT_ERR(aclrtActiveStream(a, b), ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    void *d = dev_filled(0);
    EXPECT_ERR(aclrtSwitchStream(d, ACL_RT_EQUAL, d, ACL_RT_SWITCH_INT32, a, NULL, b),
               ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    EXPECT_OK(aclrtFree(d));
    EXPECT_OK(aclrtDestroyStream(a));
    EXPECT_OK(aclrtDestroyStream(b));
}

/* ---- state callbacks ---- */

typedef struct Seen {
    aclrtStream stm;
    aclrtStreamState state;
    int32_t id;         /* aclrtStreamGetId from inside the callback */
    char who;
} Seen;

static Seen g_seen[64];
static int g_nseen;

static void record_cb(aclrtStream stm, aclrtStreamState state, void *args)
{
    if (g_nseen >= (int)G_N_ELEMENTS(g_seen))
        return;
    Seen *e = &g_seen[g_nseen++];
    e->stm = stm;
    e->state = state;
    e->who = *(const char *)args;
    e->id = -1;
    /* The handle is live in both moments, and the runtime may be called. */
    if (aclrtStreamGetId(stm, &e->id) != ACL_SUCCESS)
        e->id = -2;
}

static bool seen_is(int i, aclrtStream stm, aclrtStreamState state, char who)
{
    return i < g_nseen && g_seen[i].stm == stm && g_seen[i].state == state &&
           g_seen[i].who == who && g_seen[i].id >= 0;
}

TEST(test_state_callbacks)
{
    static const char A = 'a', B = 'b';
    aclrtStream s = NULL, def = NULL;
    aclrtContext ctx = NULL;
    g_nseen = 0;
    EXPECT_ERR(aclrtRegStreamStateCallback(NULL, record_cb, (void *)&A),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtRegStreamStateCallback("", record_cb, (void *)&A),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtRegStreamStateCallback("nobody", NULL, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtRegStreamStateCallback("first", record_cb, (void *)&A));
    EXPECT_ERR(aclrtRegStreamStateCallback("first", record_cb, (void *)&B),
               ACL_ERROR_RT_PARAM_INVALID);

    /* An explicit stream: CREATE_POST after create, DESTROY_PRE before destroy. */
    EXPECT_OK(aclrtCreateStream(&s));
    CHECK(g_nseen == 1 && seen_is(0, s, ACL_RT_STREAM_STATE_CREATE_POST, 'a'));
    int32_t id = -1;
    EXPECT_OK(aclrtStreamGetId(s, &id));
    CHECK(g_nseen == 1 && g_seen[0].id == id);
    EXPECT_OK(aclrtDestroyStream(s));
    CHECK(g_nseen == 2 && seen_is(1, s, ACL_RT_STREAM_STATE_DESTROY_PRE, 'a') &&
          g_seen[1].id == id);
    /* A refused destroy (default stream) reports nothing. */
    EXPECT_OK(aclrtCtxGetCurrentDefaultStream(&def));
    EXPECT_ERR(aclrtDestroyStream(def), ACL_ERROR_RT_PARAM_INVALID);
    CHECK(g_nseen == 2);

    /* A second registration: both, in registration order. */
    EXPECT_OK(aclrtRegStreamStateCallback("second", record_cb, (void *)&B));
    g_nseen = 0;
    EXPECT_OK(aclrtCreateStreamWithConfig(&s, 1, ACL_STREAM_FAST_LAUNCH));
    CHECK(g_nseen == 2 && seen_is(0, s, ACL_RT_STREAM_STATE_CREATE_POST, 'a') &&
          seen_is(1, s, ACL_RT_STREAM_STATE_CREATE_POST, 'b'));
    EXPECT_OK(aclrtDestroyStreamForce(s));
    CHECK(g_nseen == 4 && seen_is(2, s, ACL_RT_STREAM_STATE_DESTROY_PRE, 'a') &&
          seen_is(3, s, ACL_RT_STREAM_STATE_DESTROY_PRE, 'b'));
    EXPECT_OK(aclrtRegStreamStateCallback("second", NULL, NULL));
    EXPECT_ERR(aclrtRegStreamStateCallback("second", NULL, NULL), ACL_ERROR_RT_PARAM_INVALID);

    /* A context: its default stream is created and destroyed with it, with
     * the streams made in it. */
    g_nseen = 0;
    EXPECT_OK(aclrtCreateContext(&ctx, 0));
    EXPECT_OK(aclrtCtxGetCurrentDefaultStream(&def));
    CHECK(g_nseen == 1 && seen_is(0, def, ACL_RT_STREAM_STATE_CREATE_POST, 'a'));
    EXPECT_OK(aclrtCreateStream(&s));
    CHECK(g_nseen == 2 && seen_is(1, s, ACL_RT_STREAM_STATE_CREATE_POST, 'a'));
    EXPECT_OK(aclrtDestroyContext(ctx));
    CHECK(g_nseen == 4);
    bool def_pre = false, s_pre = false;
    for (int i = 2; i < g_nseen; i++) {
        def_pre |= seen_is(i, def, ACL_RT_STREAM_STATE_DESTROY_PRE, 'a');
        s_pre |= seen_is(i, s, ACL_RT_STREAM_STATE_DESTROY_PRE, 'a');
    }
    CHECK(def_pre && s_pre);

    /* A device: its default stream comes with aclrtSetDevice and goes with the
     * last aclrtResetDevice. */
    g_nseen = 0;
    EXPECT_OK(aclrtSetDevice(1));
    EXPECT_OK(aclrtCtxGetCurrentDefaultStream(&def));
    CHECK(g_nseen == 1 && seen_is(0, def, ACL_RT_STREAM_STATE_CREATE_POST, 'a'));
    EXPECT_OK(aclrtSetDevice(1));       /* a second reference creates nothing */
    CHECK(g_nseen == 1);
    EXPECT_OK(aclrtResetDevice(1));
    CHECK(g_nseen == 1);
    EXPECT_OK(aclrtResetDevice(1));
    CHECK(g_nseen == 2 && seen_is(1, def, ACL_RT_STREAM_STATE_DESTROY_PRE, 'a'));
    EXPECT_OK(aclrtSetCurrentContext(g_ctx));

    /* Unregistered: silence. */
    EXPECT_OK(aclrtRegStreamStateCallback("first", NULL, NULL));
    g_nseen = 0;
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtDestroyStream(s));
    CHECK(g_nseen == 0);
    /* The name is free again. */
    EXPECT_OK(aclrtRegStreamStateCallback("first", record_cb, (void *)&A));
    EXPECT_OK(aclrtRegStreamStateCallback("first", NULL, NULL));
}

/* ---- the limit ---- */

TEST(test_stream_limit)
{
    uint32_t avail = 0;
    EXPECT_OK(aclrtGetStreamAvailableNum(&avail));
    CHECK(avail > 0 && avail < 1984);
    aclrtStream *all = g_new0(aclrtStream, avail + 1);
    uint32_t made = 0;
    while (made < avail && aclrtCreateStreamWithConfig(&all[made], made % 8, 0) == ACL_SUCCESS)
        made++;
    CHECKF(made == avail, "created %u of %u streams", made, avail);
    EXPECT_ERR(aclrtCreateStream(&all[made]), ACL_ERROR_RT_NO_STREAM_RESOURCE);
    uint32_t left = 1;
    EXPECT_OK(aclrtGetStreamAvailableNum(&left));
    CHECK(left == 0);
    /* The last one works. */
    if (made > 0) {
        void *d = dev_filled(0);
        uint32_t p = 99;
        EXPECT_OK(aclrtStreamGetPriority(all[made - 1], &p));
        CHECK(p == (made - 1) % 8);
        EXPECT_OK(aclrtMemsetAsync(d, N, 0x7e, N, all[made - 1]));
        EXPECT_OK(aclrtSynchronizeStream(all[made - 1]));
        CHECK(dev_is(d, 0x7e));
        EXPECT_OK(aclrtFree(d));
    }
    for (uint32_t i = 0; i < made; i++)
        EXPECT_OK(aclrtDestroyStream(all[i]));
    EXPECT_OK(aclrtGetStreamAvailableNum(&left));
    CHECK(left == avail);
    g_free(all);
}

/* An abort or stop is asked for, not a failure: in a stop-on-failure context
 * it stops neither the stream nor its siblings. */
TEST(test_abort_in_stop_mode)
{
    aclrtContext ctx = NULL;
    aclrtStream s = NULL, sib = NULL;
    EXPECT_OK(aclrtCreateContext(&ctx, 0));
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtCreateStream(&sib));
    EXPECT_OK(aclrtSetStreamFailureMode(s, ACL_STOP_ON_FAILURE));
    void *d = dev_filled(0x11);
    aclrtNotify gate = close_gate(s);
    EXPECT_OK(aclrtMemsetAsync(d, N, 0x22, N, s));
    EXPECT_OK(aclrtStreamAbort(s));
    EXPECT_ERR(aclrtSynchronizeStream(s), ACL_ERROR_RT_STREAM_ABORT);
    CHECK(dev_is(d, 0x11));
    EXPECT_OK(aclrtWaitAndResetNotify(gate, s, 0));
    EXPECT_OK(aclrtMemsetAsync(d, N, 0x33, N, s));
    /* The wait may not have started yet: stop until the stream gets past it. */
    aclError err = ACL_ERROR_RT_STREAM_SYNC_TIMEOUT;
    for (int i = 0; i < 50 && err == ACL_ERROR_RT_STREAM_SYNC_TIMEOUT; i++) {
        EXPECT_OK(aclrtStreamStop(s));
        err = aclrtSynchronizeStreamWithTimeout(s, 100);
        drain_errors();
    }
    CHECKF(err == ACL_ERROR_RT_STREAM_ABORT, "synchronise after stop: %d", err);
    CHECK(dev_is(d, 0x33));                 /* stop interrupts only the wait */
    /* Both streams still take work. */
    EXPECT_OK(aclrtMemsetAsync(d, N, 0x44, N, s));
    EXPECT_OK(aclrtSynchronizeStream(s));
    CHECK(dev_is(d, 0x44));
    EXPECT_OK(aclrtMemsetAsync(d, N, 0x55, N, sib));
    EXPECT_OK(aclrtSynchronizeStream(sib));
    CHECK(dev_is(d, 0x55));
    EXPECT_OK(aclrtDestroyNotify(gate));
    EXPECT_OK(aclrtDestroyStream(s));
    EXPECT_OK(aclrtDestroyStream(sib));
    EXPECT_OK(aclrtDestroyContext(ctx));
    EXPECT_OK(aclrtSetCurrentContext(g_ctx));
    EXPECT_OK(aclrtFree(d));
}

/* ---- aclrtReduceAsync ---- */

TEST(test_reduce_async)
{
    aclrtStream s = NULL;
    EXPECT_OK(aclrtCreateStream(&s));
    float hd[N / 4], hs[N / 4];
    for (int i = 0; i < N / 4; i++) {
        hd[i] = (float)i;
        hs[i] = (float)(3 * i) - 100.0f;
    }
    void *d = NULL, *src = NULL;
    EXPECT_OK(aclrtMalloc(&d, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMalloc(&src, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMemcpy(d, N, hd, N, ACL_MEMCPY_HOST_TO_DEVICE));
    EXPECT_OK(aclrtMemcpy(src, N, hs, N, ACL_MEMCPY_HOST_TO_DEVICE));
    /* In stream order: a sum, then a max against what the sum left. */
    EXPECT_OK(aclrtReduceAsync(d, src, N, ACL_RT_MEMCPY_SDMA_AUTOMATIC_SUM, ACL_FLOAT, s, NULL));
    EXPECT_OK(aclrtMemsetAsync(src, N, 0, N / 2, s));       /* the first half: 0.0f */
    EXPECT_OK(aclrtReduceAsync(d, src, N, ACL_RT_MEMCPY_SDMA_AUTOMATIC_MAX, ACL_FLOAT, s, NULL));
    EXPECT_OK(aclrtSynchronizeStream(s));
    float out[N / 4];
    EXPECT_OK(aclrtMemcpy(out, N, d, N, ACL_MEMCPY_DEVICE_TO_HOST));
    int wrong = 0;
    for (int i = 0; i < N / 4; i++) {
        float sum = hd[i] + hs[i];
        float other = i < N / 8 ? 0.0f : hs[i];
        wrong += out[i] != (sum > other ? sum : other);
    }
    CHECKF(wrong == 0, "%d of %d elements wrong", wrong, N / 4);
    EXPECT_OK(aclrtReduceAsync(d, src, 0, ACL_RT_MEMCPY_SDMA_AUTOMATIC_SUM, ACL_FLOAT, s, NULL));

    /* Refused at the call. */
    void *d1 = NULL, *pinned = NULL;
    EXPECT_OK(aclrtMallocHost(&pinned, N));
    EXPECT_OK(aclrtSetDevice(1));
    EXPECT_OK(aclrtMalloc(&d1, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtSetCurrentContext(g_ctx));
    const aclrtReduceKind sum = ACL_RT_MEMCPY_SDMA_AUTOMATIC_SUM;
    EXPECT_ERR(aclrtReduceAsync(NULL, src, N, sum, ACL_FLOAT, s, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReduceAsync(d, NULL, N, sum, ACL_FLOAT, s, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReduceAsync(d, src, N, sum, ACL_FLOAT, s, d), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReduceAsync(d, src, N, (aclrtReduceKind)9, ACL_FLOAT, s, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReduceAsync(d, src, N, (aclrtReduceKind)14, ACL_FLOAT, s, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReduceAsync(d, src, N, sum, ACL_UINT32, s, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReduceAsync(d, src, 6, sum, ACL_FLOAT, s, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReduceAsync(d, pinned, N, sum, ACL_FLOAT, s, NULL),
               ACL_ERROR_RT_PARAM_INVALID);         /* host memory */
    EXPECT_ERR(aclrtReduceAsync(d, d1, N, sum, ACL_FLOAT, s, NULL),
               ACL_ERROR_RT_PARAM_INVALID);         /* another device's memory */
    EXPECT_ERR(aclrtReduceAsync(d1, src, N, sum, ACL_FLOAT, s, NULL),
               ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtReduceAsync(d, src, N, sum, ACL_FLOAT, (aclrtStream)&wrong, NULL),
               ACL_ERROR_RT_INVALID_HANDLE);
    EXPECT_OK(aclrtSynchronizeStream(s));
    EXPECT_OK(aclrtMemcpy(hd, N, d, N, ACL_MEMCPY_DEVICE_TO_HOST));
    CHECK(memcmp(hd, out, N) == 0);                 /* nothing refused ran */
    EXPECT_OK(aclrtFree(d1));
    EXPECT_OK(aclrtFreeHost(pinned));
    EXPECT_OK(aclrtResetDevice(1));
    EXPECT_OK(aclrtSetCurrentContext(g_ctx));
    EXPECT_OK(aclrtDestroyStream(s));
    EXPECT_OK(aclrtFree(d));
    EXPECT_OK(aclrtFree(src));
}

/* ---- aclrtGetThreadLastTaskId ---- */

static gpointer last_task_thread(gpointer data)
{
    aclrtStream s = data;
    uint32_t id = 1;
    if (aclrtSetCurrentContext(g_ctx) != ACL_SUCCESS ||
        aclrtGetThreadLastTaskId(&id) != ACL_SUCCESS)
        return GUINT_TO_POINTER(0xdead);
    if (id != 0)
        return GUINT_TO_POINTER(0xbad);        /* another thread's task */
    void *d = NULL;
    if (aclrtMalloc(&d, N, ACL_MEM_MALLOC_HUGE_FIRST) != ACL_SUCCESS)
        return GUINT_TO_POINTER(0xdead);
    aclError e = aclrtMemsetAsync(d, N, 1, N, s);
    e = e ? e : aclrtSynchronizeStream(s);
    e = e ? e : aclrtGetThreadLastTaskId(&id);
    aclrtFree(d);
    return GUINT_TO_POINTER(e ? 0xdead : id);
}

TEST(test_thread_last_task_id)
{
    aclrtStream s = NULL;
    uint32_t a = 0, b = 0, c = 0;
    EXPECT_ERR(aclrtGetThreadLastTaskId(NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtCreateStream(&s));
    void *d = dev_filled(0);
    EXPECT_OK(aclrtMemsetAsync(d, N, 1, N, s));
    EXPECT_OK(aclrtGetThreadLastTaskId(&a));
    EXPECT_OK(aclrtMemsetAsync(d, N, 2, N, s));
    EXPECT_OK(aclrtGetThreadLastTaskId(&b));
    CHECKF(b == a + 1, "task ids %u then %u", a, b);
    /* Only tasks on streams the user created count, not the default stream's. */
    EXPECT_OK(aclrtMemsetAsync(d, N, 3, N, NULL));
    EXPECT_OK(aclrtGetThreadLastTaskId(&c));
    CHECK(c == b);
    /* Per thread: another thread starts at 0 and sees its own task. */
    GThread *t = g_thread_new("last-task", last_task_thread, s);
    uint32_t theirs = GPOINTER_TO_UINT(g_thread_join(t));
    CHECKF(theirs == b + 1, "the other thread's task id is %#x, expected %u", theirs, b + 1);
    EXPECT_OK(aclrtGetThreadLastTaskId(&c));
    CHECK(c == b);
    EXPECT_OK(aclrtSynchronizeDevice());
    EXPECT_OK(aclrtDestroyStream(s));
    EXPECT_OK(aclrtFree(d));
}

/* ---- main ---- */

int main(void)
{
    static const TestCase tests[] = {
        T(test_query), T(test_id_flags_priority), T(test_attributes_and_overflow),
        T(test_stop_on_failure), T(test_failure_mode_default_stream), T(test_abort),
        T(test_abort_in_stop_mode),
        T(test_stop), T(test_persistent), T(test_model_stream_calls),
        T(test_state_callbacks), T(test_stream_limit), T(test_thread_last_task_id),
        T(test_reduce_async),
    };
    static const TestProgram prog = {
        .name = "test_stream", .emus = { EMU(&g_emu, "a2") },
        .suites = { SUITE("streams", NULL, NULL, tests) },
        .devices = DEV(0), .reset = DEV(0), .ctx = &g_ctx,
    };
    return test_main(&prog);
}
