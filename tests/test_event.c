/*
 * test_event.c - integration tests of events (chapter 07: aclrtCreateEvent,
 * aclrtCreateEventWithFlag, aclrtCreateEventExWithFlag, aclrtDestroyEvent,
 * aclrtRecordEvent, aclrtRecordEventWithFlag, aclrtResetEvent,
 * aclrtQueryEvent, aclrtQueryEventStatus, aclrtQueryEventWaitStatus,
 * aclrtSynchronizeEvent, aclrtSynchronizeEventWithTimeout,
 * aclrtEventElapsedTime, aclrtEventGetTimestamp, aclrtStreamWaitEvent,
 * aclrtStreamWaitEventWithTimeout, aclrtStreamWaitEventWithFlag,
 * aclrtSetOpWaitTimeout, aclrtGetEventId, aclrtGetEventAvailNum,
 * aclrtIpcGetEventHandle, aclrtIpcOpenEventHandle) against a real npu-emu
 * (a2, 8 devices), with real processes for the IPC events.
 *
 * Concepts:
 *  - Ordering is checked by data, never by the clock alone: a stream waits
 *    on an event and then copies the last bytes of a buffer that the
 *    recording stream fills (a long memset) before its record; a wait that
 *    did not block copies the old bytes.  Where a stream must stay busy for
 *    as long as the test likes, it waits on a notify first ("gate") that the
 *    test records when it wants the stream to go on.
 *  - The multi-process tests use agents (harness.h) as test_notify.c does:
 *    forked children that call aclInit themselves and run the commands (Msg)
 *    the parent sends over a pipe, each answered with its return code,
 *    checked against the expected code in the agent (code, last error,
 *    message).  Every wait is bounded (alarm(), poll() deadlines, killed
 *    agents).
 *  - EVENT_ONLY=word runs only the tests whose name contains it.
 */
#define _GNU_SOURCE
#include <CUnit/Basic.h>
#include <glib.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl/acl.h"
#include "acl_check.h"
#include "harness.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define EVENT_MAX 65536     /* per device, A2 */
#define BIG (256 * MiB)     /* a memset that takes a while */
#define TAIL (64 * KiB)     /* the last bytes of it that the waiting stream copies */

#define PARAM ACL_ERROR_RT_PARAM_INVALID
#define TIMEOUT ACL_ERROR_RT_WAIT_TIMEOUT
#define NOT_COMPLETE ACL_ERROR_RT_EVENT_NOT_COMPLETE
#define SYNC_TIMEOUT ACL_ERROR_RT_EVENT_SYNC_TIMEOUT

static const unsigned slow = TEST_SLOW;

static TestEmu g_emu;

static bool emu_alive(void)
{
    return emu_running(&g_emu);
}

#define TEST(name) EMU_TEST(name, emu_alive)

/* ------------------------------------------------------------------------- */
/* helpers of one process                                                    */
/* ------------------------------------------------------------------------- */

/* A big device buffer (zeroed) that a stream fills, and small destinations. */
typedef struct Work {
    void *big;
    void *dst[4];
    uint8_t *h;
} Work;

static bool work_reset(Work *w);

static bool work_new(Work *w)
{
    memset(w, 0, sizeof(*w));
    w->h = g_malloc(TAIL);
    bool ok = EXPECT_OK(aclrtMalloc(&w->big, BIG, ACL_MEM_MALLOC_HUGE_FIRST));
    for (int i = 0; ok && i < 4; i++)
        ok = EXPECT_OK(aclrtMalloc(&w->dst[i], TAIL, ACL_MEM_MALLOC_HUGE_FIRST));
    return ok && work_reset(w);
}

static bool work_reset(Work *w)
{
    bool ok = EXPECT_OK(aclrtMemset(w->big, BIG, 0, BIG));
    for (int i = 0; ok && i < 4; i++)
        ok = EXPECT_OK(aclrtMemset(w->dst[i], TAIL, 0xee, TAIL));
    return ok;
}

static void work_free(Work *w)
{
    if (w->big)
        EXPECT_OK(aclrtFree(w->big));
    for (int i = 0; i < 4; i++)
        if (w->dst[i])
            EXPECT_OK(aclrtFree(w->dst[i]));
    g_free(w->h);
}

static void *tail_of(Work *w)
{
    return (uint8_t *)w->big + BIG - TAIL;
}

/* Queues the long memset of the whole big buffer to v on s. */
static bool fill_async(Work *w, aclrtStream s, uint8_t v)
{
    return EXPECT_OK(aclrtMemsetAsync(w->big, BIG, v, BIG, s));
}

/* Queues on s: a copy of the big buffer's tail into dst[i]. */
static bool copy_tail_async(Work *w, int i, aclrtStream s)
{
    return EXPECT_OK(aclrtMemcpyAsync(w->dst[i], TAIL, tail_of(w), TAIL,
                                      ACL_MEMCPY_DEVICE_TO_DEVICE, s));
}

/* Whether dst[i] holds v (read synchronously). */
static bool dst_is(Work *w, int i, uint8_t v)
{
    return EXPECT_OK(aclrtMemcpy(w->h, TAIL, w->dst[i], TAIL, ACL_MEMCPY_DEVICE_TO_HOST)) &&
           all_bytes(w->h, TAIL, v);
}

static bool tail_is(Work *w, uint8_t v)
{
    return EXPECT_OK(aclrtMemcpy(w->h, TAIL, tail_of(w), TAIL, ACL_MEMCPY_DEVICE_TO_HOST)) &&
           all_bytes(w->h, TAIL, v);
}

/* A gate: a stream that waits on a notify until open_gate() records it. */
typedef struct Gate {
    aclrtNotify n;
    aclrtStream opener;
} Gate;

static void gate_new(Gate *g)
{
    EXPECT_OK(aclrtCreateNotify(&g->n, ACL_NOTIFY_DEFAULT));
    EXPECT_OK(aclrtCreateStream(&g->opener));
}

/* Blocks s (forever) until the gate opens. */
static void gate_block(Gate *g, aclrtStream s)
{
    EXPECT_OK(aclrtWaitAndResetNotify(g->n, s, 0));
}

static void gate_open(Gate *g)
{
    EXPECT_OK(aclrtRecordNotify(g->n, g->opener));
    EXPECT_OK(aclrtSynchronizeStream(g->opener));
}

static void gate_free(Gate *g)
{
    EXPECT_OK(aclrtDestroyStream(g->opener));
    EXPECT_OK(aclrtDestroyNotify(g->n));
}

static void streams_new(aclrtStream *s, int n)
{
    for (int i = 0; i < n; i++)
        EXPECT_OK(aclrtCreateStream(&s[i]));
}

static void streams_free(aclrtStream *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i])
            EXPECT_OK(aclrtDestroyStream(s[i]));
}

static aclrtEventRecordedStatus recorded_status(aclrtEvent e)
{
    aclrtEventRecordedStatus st = (aclrtEventRecordedStatus)77;
    EXPECT_OK(aclrtQueryEventStatus(e, &st));
    return st;
}

static aclrtEventWaitStatus wait_status(aclrtEvent e)
{
    aclrtEventWaitStatus st = (aclrtEventWaitStatus)77;
    EXPECT_OK(aclrtQueryEventWaitStatus(e, &st));
    return st;
}

/* ------------------------------------------------------------------------- */
/* arguments                                                                 */
/* ------------------------------------------------------------------------- */

static int g_not_an_event;

TEST(test_create_flags)
{
    aclrtEvent e = NULL;
    /* NULL pointers */
    EXPECT_ERR(aclrtCreateEvent(NULL), PARAM);
    EXPECT_ERR(aclrtCreateEventWithFlag(NULL, ACL_EVENT_SYNC), PARAM);
    EXPECT_ERR(aclrtCreateEventExWithFlag(NULL, ACL_EVENT_SYNC), PARAM);
    /* aclrtCreateEventWithFlag: TIME_LINE, SYNC, CAPTURE_STREAM_PROGRESS,
     * DEVICE_USE_ONLY or-able; EXTERNAL alone; IPC is not its flag */
    static const uint32_t bad_with[] = {
        0, 0x4, 0x80, 0x100, 0x80000000u, UINT32_MAX, ACL_EVENT_IPC,
        ACL_EVENT_IPC | ACL_EVENT_SYNC, ACL_EVENT_EXTERNAL | ACL_EVENT_SYNC,
        ACL_EVENT_EXTERNAL | ACL_EVENT_TIME_LINE, ACL_EVENT_EXTERNAL | ACL_EVENT_DEVICE_USE_ONLY,
        ACL_EVENT_SYNC | 0x4,
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad_with); i++) {
        e = NULL;
        if (!EXPECT_ERR(aclrtCreateEventWithFlag(&e, bad_with[i]), PARAM))
            fprintf(stderr, "  aclrtCreateEventWithFlag flag 0x%x\n", bad_with[i]);
        CHECK(e == NULL);
    }
    static const uint32_t good_with[] = {
        ACL_EVENT_SYNC, ACL_EVENT_TIME_LINE, ACL_EVENT_CAPTURE_STREAM_PROGRESS,
        ACL_EVENT_DEVICE_USE_ONLY, ACL_EVENT_EXTERNAL,
        ACL_EVENT_SYNC | ACL_EVENT_TIME_LINE | ACL_EVENT_CAPTURE_STREAM_PROGRESS,
        ACL_EVENT_SYNC | ACL_EVENT_DEVICE_USE_ONLY,
    };
    for (size_t i = 0; i < G_N_ELEMENTS(good_with); i++) {
        e = NULL;
        if (!EXPECT_OK(aclrtCreateEventWithFlag(&e, good_with[i])))
            fprintf(stderr, "  aclrtCreateEventWithFlag flag 0x%x\n", good_with[i]);
        if (e)
            EXPECT_OK(aclrtDestroyEvent(e));
    }
    /* aclrtCreateEventExWithFlag: TIME_LINE, SYNC, CAPTURE_STREAM_PROGRESS
     * or-able; IPC alone; no EXTERNAL, no DEVICE_USE_ONLY */
    static const uint32_t bad_ex[] = {
        0, 0x4, 0x80, 0x80000000u, UINT32_MAX, ACL_EVENT_EXTERNAL, ACL_EVENT_DEVICE_USE_ONLY,
        ACL_EVENT_IPC | ACL_EVENT_SYNC, ACL_EVENT_IPC | ACL_EVENT_TIME_LINE,
        ACL_EVENT_IPC | ACL_EVENT_CAPTURE_STREAM_PROGRESS, ACL_EVENT_SYNC | ACL_EVENT_EXTERNAL,
        ACL_EVENT_SYNC | ACL_EVENT_DEVICE_USE_ONLY,
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad_ex); i++) {
        e = NULL;
        if (!EXPECT_ERR(aclrtCreateEventExWithFlag(&e, bad_ex[i]), PARAM))
            fprintf(stderr, "  aclrtCreateEventExWithFlag flag 0x%x\n", bad_ex[i]);
        CHECK(e == NULL);
    }
    static const uint32_t good_ex[] = {
        ACL_EVENT_SYNC, ACL_EVENT_TIME_LINE, ACL_EVENT_CAPTURE_STREAM_PROGRESS, ACL_EVENT_IPC,
        ACL_EVENT_SYNC | ACL_EVENT_TIME_LINE | ACL_EVENT_CAPTURE_STREAM_PROGRESS,
    };
    for (size_t i = 0; i < G_N_ELEMENTS(good_ex); i++) {
        e = NULL;
        if (!EXPECT_OK(aclrtCreateEventExWithFlag(&e, good_ex[i])))
            fprintf(stderr, "  aclrtCreateEventExWithFlag flag 0x%x\n", good_ex[i]);
        if (e)
            EXPECT_OK(aclrtDestroyEvent(e));
    }
    EXPECT_OK(aclrtCreateEvent(&e));
    EXPECT_OK(aclrtDestroyEvent(e));
}

TEST(test_bad_arguments)
{
    aclrtStream st = NULL;
    aclrtEvent e = NULL, d = NULL, ex = NULL, t = NULL;
    aclrtEvent foreign = &g_not_an_event;
    EXPECT_OK(aclrtCreateStream(&st));
    EXPECT_OK(aclrtCreateEvent(&e));
    EXPECT_OK(aclrtCreateEventExWithFlag(&ex, ACL_EVENT_SYNC | ACL_EVENT_TIME_LINE));
    EXPECT_OK(aclrtCreateEventWithFlag(&t, ACL_EVENT_TIME_LINE));
    EXPECT_OK(aclrtCreateEventWithFlag(&d, ACL_EVENT_SYNC));
    EXPECT_OK(aclrtDestroyEvent(d));        /* d: destroyed from here on */
    aclrtEvent dead[] = { NULL, d, foreign };
    aclrtEventStatus es;
    aclrtEventRecordedStatus rs;
    aclrtEventWaitStatus ws;
    float ms = 0;
    uint64_t ts = 0;
    uint32_t id = 0, n = 0;
    aclrtIpcEventHandle h;
    memset(&h, 0, sizeof(h));

    /* e recorded: an elapsed time fails for the dead event, not for e */
    EXPECT_OK(aclrtRecordEvent(e, st));
    EXPECT_OK(aclrtSynchronizeStream(st));
    for (size_t i = 0; i < G_N_ELEMENTS(dead); i++) {
        aclrtEvent x = dead[i];
        EXPECT_ERR(aclrtDestroyEvent(x), PARAM);
        EXPECT_ERR(aclrtRecordEvent(x, st), PARAM);
        EXPECT_ERR(aclrtRecordEventWithFlag(x, st, ACL_EVENT_RECORD_DEFAULT), PARAM);
        EXPECT_ERR(aclrtResetEvent(x, st), PARAM);
        EXPECT_ERR(aclrtQueryEvent(x, &es), PARAM);
        EXPECT_ERR(aclrtQueryEventStatus(x, &rs), PARAM);
        EXPECT_ERR(aclrtQueryEventWaitStatus(x, &ws), PARAM);
        EXPECT_ERR(aclrtSynchronizeEvent(x), PARAM);
        EXPECT_ERR(aclrtSynchronizeEventWithTimeout(x, 100), PARAM);
        EXPECT_ERR(aclrtEventElapsedTime(&ms, x, e), PARAM);
        EXPECT_ERR(aclrtEventElapsedTime(&ms, e, x), PARAM);
        EXPECT_ERR(aclrtEventGetTimestamp(x, &ts), PARAM);
        EXPECT_ERR(aclrtStreamWaitEvent(st, x), PARAM);
        EXPECT_ERR(aclrtStreamWaitEventWithTimeout(st, x, 1), PARAM);
        EXPECT_ERR(aclrtStreamWaitEventWithFlag(st, x, 1, ACL_EVENT_WAIT_DEFAULT), PARAM);
        EXPECT_ERR(aclrtGetEventId(x, &id), PARAM);
        EXPECT_ERR(aclrtIpcGetEventHandle(x, &h), PARAM);
    }
    /* NULL outputs */
    EXPECT_ERR(aclrtQueryEvent(e, NULL), PARAM);
    EXPECT_ERR(aclrtQueryEventStatus(e, NULL), PARAM);
    EXPECT_ERR(aclrtQueryEventWaitStatus(e, NULL), PARAM);
    EXPECT_ERR(aclrtEventElapsedTime(NULL, e, e), PARAM);
    EXPECT_ERR(aclrtEventGetTimestamp(e, NULL), PARAM);
    EXPECT_ERR(aclrtGetEventId(e, NULL), PARAM);
    EXPECT_ERR(aclrtGetEventAvailNum(NULL), PARAM);
    EXPECT_ERR(aclrtIpcGetEventHandle(e, NULL), PARAM);
    EXPECT_ERR(aclrtIpcOpenEventHandle(h, NULL), PARAM);

    /* graph-capture flags outside a capture, unknown flags */
    EXPECT_ERR(aclrtRecordEventWithFlag(e, st, ACL_EVENT_RECORD_EXTERNAL), PARAM);
    EXPECT_ERR(aclrtRecordEventWithFlag(ex, st, ACL_EVENT_RECORD_EXTERNAL), PARAM);
    EXPECT_ERR(aclrtRecordEventWithFlag(e, st, 0x2), PARAM);
    EXPECT_ERR(aclrtRecordEventWithFlag(e, st, UINT32_MAX), PARAM);
    EXPECT_ERR(aclrtStreamWaitEventWithFlag(st, e, 0, ACL_EVENT_WAIT_EXTERNAL), PARAM);
    EXPECT_ERR(aclrtStreamWaitEventWithFlag(st, ex, 0, ACL_EVENT_WAIT_EXTERNAL), PARAM);
    EXPECT_ERR(aclrtStreamWaitEventWithFlag(st, e, 1, 0x2), PARAM);
    EXPECT_ERR(aclrtStreamWaitEventWithFlag(st, e, 1, UINT32_MAX), PARAM);
    /* timeouts */
    EXPECT_ERR(aclrtStreamWaitEventWithTimeout(st, e, -1), PARAM);
    EXPECT_ERR(aclrtStreamWaitEventWithTimeout(st, e, INT32_MIN), PARAM);
    EXPECT_ERR(aclrtSynchronizeEventWithTimeout(e, 0), PARAM);
    EXPECT_ERR(aclrtSynchronizeEventWithTimeout(e, -2), PARAM);
    EXPECT_ERR(aclrtSynchronizeEventWithTimeout(e, INT32_MIN), PARAM);

    /* reset: only aclrtCreateEventWithFlag with ACL_EVENT_SYNC */
    aclrtEvent sync_flag = NULL, sync_tl = NULL, ex_sync = NULL, cap = NULL;
    EXPECT_OK(aclrtCreateEventWithFlag(&sync_flag, ACL_EVENT_SYNC));
    EXPECT_OK(aclrtCreateEventWithFlag(&sync_tl, ACL_EVENT_SYNC | ACL_EVENT_TIME_LINE));
    EXPECT_OK(aclrtCreateEventExWithFlag(&ex_sync, ACL_EVENT_SYNC));
    EXPECT_OK(aclrtCreateEventWithFlag(&cap, ACL_EVENT_CAPTURE_STREAM_PROGRESS));
    EXPECT_ERR(aclrtResetEvent(e, st), PARAM);              /* aclrtCreateEvent */
    EXPECT_ERR(aclrtResetEvent(t, st), PARAM);              /* WithFlag(TIME_LINE) */
    EXPECT_ERR(aclrtResetEvent(cap, st), PARAM);
    EXPECT_ERR(aclrtResetEvent(ex_sync, st), PARAM);        /* Ex, even with SYNC */
    EXPECT_ERR(aclrtResetEvent(ex, st), PARAM);
    EXPECT_OK(aclrtResetEvent(sync_flag, st));
    EXPECT_OK(aclrtResetEvent(sync_tl, st));

    /* stream waits: events of a flag function need ACL_EVENT_SYNC */
    EXPECT_ERR(aclrtStreamWaitEvent(st, t), PARAM);
    EXPECT_ERR(aclrtStreamWaitEventWithTimeout(st, t, 1), PARAM);
    EXPECT_ERR(aclrtStreamWaitEventWithFlag(st, t, 1, ACL_EVENT_WAIT_DEFAULT), PARAM);
    EXPECT_ERR(aclrtStreamWaitEvent(st, cap), PARAM);
    aclrtEvent ex_tl = NULL;
    EXPECT_OK(aclrtCreateEventExWithFlag(&ex_tl, ACL_EVENT_TIME_LINE));
    EXPECT_ERR(aclrtStreamWaitEvent(st, ex_tl), PARAM);
    EXPECT_OK(aclrtStreamWaitEvent(st, e));                 /* aclrtCreateEvent: fine */
    EXPECT_OK(aclrtStreamWaitEvent(st, sync_flag));
    EXPECT_OK(aclrtStreamWaitEventWithTimeout(st, ex_sync, 1));
    EXPECT_OK(aclrtStreamWaitEventWithFlag(st, ex, 1, ACL_EVENT_WAIT_DEFAULT));
    /* records of every kind */
    EXPECT_OK(aclrtRecordEvent(t, st));
    EXPECT_OK(aclrtRecordEvent(cap, st));
    EXPECT_OK(aclrtRecordEventWithFlag(ex_tl, st, ACL_EVENT_RECORD_DEFAULT));

    /* queries: aclrtQueryEvent and the wait status not for Ex events */
    EXPECT_ERR(aclrtQueryEvent(ex, &es), PARAM);
    EXPECT_ERR(aclrtQueryEvent(ex_sync, &es), PARAM);
    EXPECT_ERR(aclrtQueryEventWaitStatus(ex, &ws), PARAM);
    EXPECT_ERR(aclrtQueryEventWaitStatus(ex_tl, &ws), PARAM);
    EXPECT_OK(aclrtQueryEventStatus(ex, &rs));
    EXPECT_OK(aclrtQueryEvent(e, &es));
    EXPECT_OK(aclrtQueryEventWaitStatus(sync_flag, &ws));
    EXPECT_OK(aclrtSynchronizeStream(st));

    /* timestamps need ACL_EVENT_TIME_LINE (aclrtCreateEvent has it) */
    EXPECT_ERR(aclrtEventGetTimestamp(sync_flag, &ts), PARAM);
    EXPECT_ERR(aclrtEventGetTimestamp(cap, &ts), PARAM);
    EXPECT_OK(aclrtEventGetTimestamp(t, &ts));
    EXPECT_OK(aclrtEventGetTimestamp(ex_tl, &ts));
    EXPECT_ERR(aclrtEventElapsedTime(&ms, t, cap), PARAM);
    /* never recorded: 507006 */
    EXPECT_ERR(aclrtEventGetTimestamp(sync_tl, &ts), NOT_COMPLETE);
    EXPECT_ERR(aclrtEventElapsedTime(&ms, t, sync_tl), NOT_COMPLETE);
    EXPECT_ERR(aclrtEventElapsedTime(&ms, sync_tl, t), NOT_COMPLETE);

    /* a non-IPC event has no IPC handle */
    EXPECT_ERR(aclrtIpcGetEventHandle(e, &h), PARAM);
    EXPECT_ERR(aclrtIpcGetEventHandle(ex_sync, &h), PARAM);
    EXPECT_ERR(aclrtIpcGetEventHandle(sync_flag, &h), PARAM);
    EXPECT_OK(aclrtGetEventAvailNum(&n));

    /* a destroyed stream: refused */
    aclrtStream gone = NULL;
    EXPECT_OK(aclrtCreateStream(&gone));
    EXPECT_OK(aclrtDestroyStream(gone));
    CHECK(aclrtRecordEvent(e, gone) != ACL_SUCCESS);
    CHECK(aclrtStreamWaitEvent(gone, e) != ACL_SUCCESS);
    drain_errors();
    /* the default stream works */
    EXPECT_OK(aclrtRecordEvent(e, NULL));
    EXPECT_OK(aclrtStreamWaitEvent(NULL, e));
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    EXPECT_OK(aclrtSynchronizeEvent(e));

    aclrtEvent all[] = { e, ex, t, sync_flag, sync_tl, ex_sync, cap, ex_tl };
    for (size_t i = 0; i < G_N_ELEMENTS(all); i++)
        EXPECT_OK(aclrtDestroyEvent(all[i]));
    EXPECT_ERR(aclrtDestroyEvent(e), PARAM);                /* double destroy */
    EXPECT_ERR(aclrtRecordEvent(ex, st), PARAM);
    EXPECT_OK(aclrtDestroyStream(st));
}

TEST(test_ids_and_avail)
{
    enum { N = 32 };
    aclrtEvent ev[N];
    uint32_t id[N], before = 0, n = 0;
    EXPECT_OK(aclrtGetEventAvailNum(&before));
    CHECKF(before <= EVENT_MAX && before > EVENT_MAX - 64, "%u events available", before);
    for (int i = 0; i < N; i++) {
        /* A WithFlag(SYNC) event takes one of the device's events when created;
         * the others when first recorded, or (here) when their id is asked for. */
        aclError rc = i % 3 == 0   ? aclrtCreateEvent(&ev[i])
                      : i % 3 == 1 ? aclrtCreateEventWithFlag(&ev[i], ACL_EVENT_SYNC)
                                   : aclrtCreateEventExWithFlag(&ev[i], ACL_EVENT_SYNC);
        EXPECT_OK(rc);
        uint32_t want = before - (uint32_t)i - (i % 3 == 1 ? 1 : 0);
        EXPECT_OK(aclrtGetEventAvailNum(&n));
        CHECKF(n == want, "after %d creates %u available, expected %u", i + 1, n, want);
        EXPECT_OK(aclrtGetEventId(ev[i], &id[i]));
        CHECKF(id[i] < EVENT_MAX, "event id %u", id[i]);
        EXPECT_OK(aclrtGetEventAvailNum(&n));
        CHECKF(n == before - (uint32_t)i - 1, "after %d ids %u available, expected %u",
               i + 1, n, before - (uint32_t)i - 1);
    }
    int dups = 0;
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            dups += id[i] == id[j];
    CHECKF(dups == 0, "%d pairs of live events share an id", dups);
    uint32_t again = 0;
    EXPECT_OK(aclrtGetEventId(ev[3], &again));
    CHECK(again == id[3]);
    /* the count is the device's: another device is untouched */
    EXPECT_OK(aclrtSetDevice(2));
    EXPECT_OK(aclrtGetEventAvailNum(&n));
    CHECKF(n == EVENT_MAX, "device 2: %u available", n);
    EXPECT_OK(aclrtSetDevice(0));
    for (int i = 0; i < N; i++) {
        EXPECT_OK(aclrtDestroyEvent(ev[i]));
        EXPECT_OK(aclrtGetEventAvailNum(&n));
        CHECKF(n == before - (uint32_t)N + (uint32_t)i + 1, "after %d destroys %u available",
               i + 1, n);
    }
    CHECK(n == before);
}

/* ------------------------------------------------------------------------- */
/* ordering                                                                  */
/* ------------------------------------------------------------------------- */

/* Stream 2 waits on an event that stream 1 records after a long memset, then
 * copies the memset's last bytes: every kind of event that can be waited on. */
TEST(test_wait_blocks)
{
    Work w;
    aclrtStream s[2] = { NULL, NULL };
    if (!work_new(&w)) {
        work_free(&w);
        return;
    }
    streams_new(s, 2);
    for (int kind = 0; kind < 5; kind++) {
        aclrtEvent e = NULL;
        const char *what = "";
        switch (kind) {
        case 0:
            what = "aclrtCreateEvent";
            EXPECT_OK(aclrtCreateEvent(&e));
            break;
        case 1:
            what = "WithFlag(SYNC)";
            EXPECT_OK(aclrtCreateEventWithFlag(&e, ACL_EVENT_SYNC));
            break;
        case 2:
            what = "WithFlag(SYNC | TIME_LINE)";
            EXPECT_OK(aclrtCreateEventWithFlag(&e, ACL_EVENT_SYNC | ACL_EVENT_TIME_LINE));
            break;
        case 3:
            what = "ExWithFlag(SYNC)";
            EXPECT_OK(aclrtCreateEventExWithFlag(&e, ACL_EVENT_SYNC));
            break;
        default:
            what = "ExWithFlag(IPC), in its own process";
            EXPECT_OK(aclrtCreateEventExWithFlag(&e, ACL_EVENT_IPC));
            break;
        }
        uint8_t v = (uint8_t)(0x30 + kind);
        int64_t t0 = clock_ms();
        fill_async(&w, s[0], v);
        EXPECT_OK(aclrtRecordEvent(e, s[0]));
        if (kind % 2)
            EXPECT_OK(aclrtStreamWaitEvent(s[1], e));
        else
            EXPECT_OK(aclrtStreamWaitEventWithTimeout(s[1], e, 60 * (int32_t)slow));
        copy_tail_async(&w, 0, s[1]);
        EXPECT_OK(aclrtSynchronizeStream(s[1]));
        int64_t dt = clock_ms() - t0;
        CHECKF(dst_is(&w, 0, v), "%s: stream 2 copied the tail before stream 1's memset "
               "wrote it (%lld ms): the wait did not block", what, (long long)dt);
        EXPECT_OK(aclrtSynchronizeStream(s[0]));
        EXPECT_OK(aclrtDestroyEvent(e));
        if (kind == 0)
            printf("\n    256 MiB memset + record + wait + copy: %lld ms ", (long long)dt);
    }
    streams_free(s, 2);
    work_free(&w);
}

/* Three streams wait on one record (the multi-wait of the developer guide). */
TEST(test_many_waiters)
{
    Work w;
    aclrtStream s[4] = { NULL, NULL, NULL, NULL };
    aclrtEvent e = NULL;
    if (!work_new(&w)) {
        work_free(&w);
        return;
    }
    streams_new(s, 4);
    EXPECT_OK(aclrtCreateEventWithFlag(&e, ACL_EVENT_SYNC));
    fill_async(&w, s[0], 0x5c);
    EXPECT_OK(aclrtRecordEvent(e, s[0]));
    for (int i = 1; i < 4; i++) {
        EXPECT_OK(aclrtStreamWaitEvent(s[i], e));
        copy_tail_async(&w, i, s[i]);
    }
    for (int i = 1; i < 4; i++) {
        EXPECT_OK(aclrtSynchronizeStream(s[i]));
        CHECKF(dst_is(&w, i, 0x5c), "waiter %d ran before the record", i);
    }
    EXPECT_OK(aclrtSynchronizeStream(s[0]));
    EXPECT_OK(aclrtDestroyEvent(e));
    streams_free(s, 4);
    work_free(&w);
}

/* A wait on an event never recorded (or reset) does not block. */
TEST(test_wait_unrecorded)
{
    Work w;
    aclrtStream s = NULL;
    aclrtEvent e[3] = { NULL, NULL, NULL };
    if (!work_new(&w)) {
        work_free(&w);
        return;
    }
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtCreateEvent(&e[0]));
    EXPECT_OK(aclrtCreateEventWithFlag(&e[1], ACL_EVENT_SYNC));
    EXPECT_OK(aclrtCreateEventExWithFlag(&e[2], ACL_EVENT_SYNC));
    for (int i = 0; i < 3; i++) {
        EXPECT_OK(aclrtStreamWaitEvent(s, e[i]));       /* forever, if it blocked */
        EXPECT_OK(aclrtMemsetAsync(w.dst[i], TAIL, 0x40 + i, TAIL, s));
    }
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(s, 5000 * (int32_t)slow));
    for (int i = 0; i < 3; i++)
        CHECKF(dst_is(&w, i, (uint8_t)(0x40 + i)), "the task after a wait on unrecorded event "
               "%d did not run", i);
    /* a never recorded event is complete, and synchronising on it returns */
    CHECK(recorded_status(e[2]) == ACL_EVENT_RECORDED_STATUS_COMPLETE);
    EXPECT_OK(aclrtSynchronizeEvent(e[1]));
    EXPECT_OK(aclrtSynchronizeEventWithTimeout(e[0], 100));
    for (int i = 0; i < 3; i++)
        EXPECT_OK(aclrtDestroyEvent(e[i]));
    EXPECT_OK(aclrtDestroyStream(s));
    work_free(&w);
}

/* Re-records: a wait captures the record current when it is queued. */
TEST(test_rerecord)
{
    Work w;
    Gate g;
    aclrtStream s[4] = { NULL, NULL, NULL, NULL };
    aclrtEvent e = NULL;
    if (!work_new(&w)) {
        work_free(&w);
        return;
    }
    streams_new(s, 4);
    gate_new(&g);
    EXPECT_OK(aclrtCreateEventExWithFlag(&e, ACL_EVENT_SYNC));

    /* (1) a later record does not extend a wait: record 1 ran; s1 waits on it;
     * record 2 sits on s2 behind a closed gate; s1 goes on */
    EXPECT_OK(aclrtRecordEvent(e, s[0]));
    EXPECT_OK(aclrtSynchronizeStream(s[0]));
    EXPECT_OK(aclrtStreamWaitEvent(s[1], e));
    gate_block(&g, s[2]);
    EXPECT_OK(aclrtRecordEvent(e, s[2]));
    EXPECT_OK(aclrtMemsetAsync(w.dst[0], TAIL, 0x61, TAIL, s[1]));
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(s[1], 5000 * (int32_t)slow));
    CHECKF(dst_is(&w, 0, 0x61), "a wait queued before a record waited for it");
    CHECK(recorded_status(e) == ACL_EVENT_RECORDED_STATUS_NOT_READY);
    /* a wait queued now takes record 2: it blocks until the gate opens */
    EXPECT_OK(aclrtStreamWaitEvent(s[3], e));
    EXPECT_OK(aclrtMemsetAsync(w.dst[1], TAIL, 0x62, TAIL, s[3]));
    g_usleep(200 * 1000);
    CHECKF(dst_is(&w, 1, 0xee), "a wait on a record behind a closed gate did not block");
    gate_open(&g);
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(s[3], 5000 * (int32_t)slow));
    CHECK(dst_is(&w, 1, 0x62));
    EXPECT_OK(aclrtSynchronizeStream(s[2]));
    CHECK(recorded_status(e) == ACL_EVENT_RECORDED_STATUS_COMPLETE);

    /* (2) a later record that runs first does not release a wait on an
     * earlier one: record 3 on s0 behind the gate and a memset; s1 waits on
     * it and copies the memset's tail; record 4 on the idle s2 runs at once */
    work_reset(&w);
    gate_block(&g, s[0]);
    fill_async(&w, s[0], 0x63);
    EXPECT_OK(aclrtRecordEvent(e, s[0]));
    EXPECT_OK(aclrtStreamWaitEvent(s[1], e));
    copy_tail_async(&w, 2, s[1]);
    EXPECT_OK(aclrtRecordEvent(e, s[2]));
    EXPECT_OK(aclrtSynchronizeStream(s[2]));
    g_usleep(200 * 1000);
    CHECKF(dst_is(&w, 2, 0xee), "the wait on record 3 was released by the later record 4, "
           "which ran first: a wait must keep the record current when it was queued");
    gate_open(&g);
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(s[1], 10000 * (int32_t)slow));
    CHECKF(dst_is(&w, 2, 0x63), "the wait did not wait for stream 1's memset");
    EXPECT_OK(aclrtSynchronizeStream(s[0]));

    EXPECT_OK(aclrtDestroyEvent(e));
    gate_free(&g);
    streams_free(s, 4);
    work_free(&w);
}

/* aclrtResetEvent: the event forgets its records. */
TEST(test_reset)
{
    Work w;
    Gate g;
    aclrtStream s[3] = { NULL, NULL, NULL };
    aclrtEvent e = NULL;
    if (!work_new(&w)) {
        work_free(&w);
        return;
    }
    streams_new(s, 3);
    gate_new(&g);
    EXPECT_OK(aclrtCreateEventWithFlag(&e, ACL_EVENT_SYNC | ACL_EVENT_TIME_LINE));
    uint64_t ts = 0;
    /* recorded, then reset (on another stream, the documented use) */
    EXPECT_OK(aclrtRecordEvent(e, s[0]));
    EXPECT_OK(aclrtSynchronizeStream(s[0]));
    EXPECT_OK(aclrtEventGetTimestamp(e, &ts));
    EXPECT_OK(aclrtStreamWaitEvent(s[1], e));
    EXPECT_OK(aclrtResetEvent(e, s[1]));
    EXPECT_OK(aclrtSynchronizeStream(s[1]));
    CHECK(recorded_status(e) == ACL_EVENT_RECORDED_STATUS_COMPLETE);
    aclrtEventStatus es = ACL_EVENT_STATUS_RESERVED;
    EXPECT_OK(aclrtQueryEvent(e, &es));
    CHECK(es == ACL_EVENT_STATUS_COMPLETE);
    /* no record any more: no timestamp */
    EXPECT_ERR(aclrtEventGetTimestamp(e, &ts), NOT_COMPLETE);
    /* A wait queued after the reset holds its stream until the event is
     * recorded again: the reset cleared the flag (the reference warns that
     * another stream's wait after a reset "无法成功"). */
    EXPECT_OK(aclrtStreamWaitEvent(s[2], e));
    EXPECT_OK(aclrtMemsetAsync(w.dst[0], TAIL, 0x71, TAIL, s[2]));
    EXPECT_ERR(aclrtSynchronizeStreamWithTimeout(s[2], 200), ACL_ERROR_RT_STREAM_SYNC_TIMEOUT);
    CHECKF(dst_is(&w, 0, 0xee), "a wait after a reset did not wait for a new record");
    /* Recording again releases it once the record runs (behind the gate). */
    gate_block(&g, s[0]);
    fill_async(&w, s[0], 0x72);
    EXPECT_OK(aclrtRecordEvent(e, s[0]));
    EXPECT_OK(aclrtStreamWaitEvent(s[2], e));
    copy_tail_async(&w, 1, s[2]);
    g_usleep(100 * 1000);
    CHECK(dst_is(&w, 0, 0xee));
    CHECK(dst_is(&w, 1, 0xee));
    gate_open(&g);
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(s[2], 10000 * (int32_t)slow));
    CHECK(dst_is(&w, 0, 0x71));
    CHECK(dst_is(&w, 1, 0x72));
    EXPECT_OK(aclrtSynchronizeStream(s[0]));
    EXPECT_OK(aclrtEventGetTimestamp(e, &ts));
    /* a reset queued behind a closed gate changes nothing until it runs */
    gate_block(&g, s[1]);
    EXPECT_OK(aclrtResetEvent(e, s[1]));
    EXPECT_OK(aclrtEventGetTimestamp(e, &ts));
    gate_open(&g);
    EXPECT_OK(aclrtSynchronizeStream(s[1]));
    EXPECT_ERR(aclrtEventGetTimestamp(e, &ts), NOT_COMPLETE);
    EXPECT_OK(aclrtDestroyEvent(e));
    gate_free(&g);
    streams_free(s, 3);
    work_free(&w);
}

/* Status queries while the record's stream is busy, and after. */
TEST(test_query_status)
{
    Gate g;
    aclrtStream s[2] = { NULL, NULL };
    aclrtEvent e = NULL, x = NULL;
    streams_new(s, 2);
    gate_new(&g);
    EXPECT_OK(aclrtCreateEvent(&e));
    EXPECT_OK(aclrtCreateEventExWithFlag(&x, ACL_EVENT_SYNC));
    aclrtEventStatus es = ACL_EVENT_STATUS_RESERVED;
    /* nothing recorded, nothing waited */
    EXPECT_OK(aclrtQueryEvent(e, &es));
    CHECK(es == ACL_EVENT_STATUS_COMPLETE);
    CHECK(recorded_status(e) == ACL_EVENT_RECORDED_STATUS_COMPLETE);
    CHECK(recorded_status(x) == ACL_EVENT_RECORDED_STATUS_COMPLETE);
    CHECK(wait_status(e) == ACL_EVENT_WAIT_STATUS_COMPLETE);
    /* recorded behind a closed gate */
    gate_block(&g, s[0]);
    EXPECT_OK(aclrtRecordEvent(e, s[0]));
    EXPECT_OK(aclrtRecordEvent(x, s[0]));
    EXPECT_OK(aclrtStreamWaitEvent(s[1], e));
    g_usleep(50 * 1000);
    EXPECT_OK(aclrtQueryEvent(e, &es));
    CHECK(es == ACL_EVENT_STATUS_NOT_READY);
    CHECK(recorded_status(e) == ACL_EVENT_RECORDED_STATUS_NOT_READY);
    CHECK(recorded_status(x) == ACL_EVENT_RECORDED_STATUS_NOT_READY);
    CHECK(wait_status(e) == ACL_EVENT_WAIT_STATUS_NOT_READY);
    EXPECT_ERR(aclrtSynchronizeEventWithTimeout(e, 50), SYNC_TIMEOUT);
    EXPECT_ERR(aclrtSynchronizeEventWithTimeout(x, 1), SYNC_TIMEOUT);
    gate_open(&g);
    EXPECT_OK(aclrtSynchronizeEventWithTimeout(x, 5000 * (int32_t)slow));
    EXPECT_OK(aclrtSynchronizeStream(s[1]));
    EXPECT_OK(aclrtQueryEvent(e, &es));
    CHECK(es == ACL_EVENT_STATUS_COMPLETE);
    CHECK(recorded_status(e) == ACL_EVENT_RECORDED_STATUS_COMPLETE);
    CHECK(recorded_status(x) == ACL_EVENT_RECORDED_STATUS_COMPLETE);
    CHECK(wait_status(e) == ACL_EVENT_WAIT_STATUS_COMPLETE);
    EXPECT_OK(aclrtDestroyEvent(e));
    EXPECT_OK(aclrtDestroyEvent(x));
    gate_free(&g);
    streams_free(s, 2);
}

/* The wait status covers every wait queued on the event, not only the last. */
TEST(test_wait_status_all_waits)
{
    Gate g;
    aclrtStream s[3] = { NULL, NULL, NULL };
    aclrtEvent e = NULL;
    streams_new(s, 3);
    gate_new(&g);
    EXPECT_OK(aclrtCreateEventWithFlag(&e, ACL_EVENT_SYNC));
    EXPECT_OK(aclrtRecordEvent(e, s[0]));
    EXPECT_OK(aclrtSynchronizeStream(s[0]));
    /* s[1]'s wait sits behind a closed gate; s[2]'s, queued later, runs at once. */
    gate_block(&g, s[1]);
    EXPECT_OK(aclrtStreamWaitEvent(s[1], e));
    EXPECT_OK(aclrtStreamWaitEvent(s[2], e));
    EXPECT_OK(aclrtSynchronizeStream(s[2]));
    CHECKF(wait_status(e) == ACL_EVENT_WAIT_STATUS_NOT_READY,
           "a wait still queued behind the gate was reported done");
    gate_open(&g);
    EXPECT_OK(aclrtSynchronizeStream(s[1]));
    CHECK(wait_status(e) == ACL_EVENT_WAIT_STATUS_COMPLETE);
    EXPECT_OK(aclrtDestroyEvent(e));
    gate_free(&g);
    streams_free(s, 3);
}

/* Host synchronisation: returns once the record ran (checked by data), or
 * 507047 on a short timeout. */
TEST(test_synchronize_event)
{
    Work w;
    Gate g;
    aclrtStream s = NULL;
    aclrtEvent e = NULL;
    if (!work_new(&w)) {
        work_free(&w);
        return;
    }
    EXPECT_OK(aclrtCreateStream(&s));
    gate_new(&g);
    EXPECT_OK(aclrtCreateEventWithFlag(&e, ACL_EVENT_SYNC));
    fill_async(&w, s, 0x81);
    EXPECT_OK(aclrtRecordEvent(e, s));
    EXPECT_OK(aclrtSynchronizeEvent(e));
    CHECKF(tail_is(&w, 0x81), "aclrtSynchronizeEvent returned before the memset ended");
    fill_async(&w, s, 0x82);
    EXPECT_OK(aclrtRecordEvent(e, s));
    EXPECT_OK(aclrtSynchronizeEventWithTimeout(e, -1));
    CHECK(tail_is(&w, 0x82));
    fill_async(&w, s, 0x83);
    EXPECT_OK(aclrtRecordEvent(e, s));
    EXPECT_OK(aclrtSynchronizeEventWithTimeout(e, 20000 * (int32_t)slow));
    CHECK(tail_is(&w, 0x83));
    /* a short timeout on a busy stream */
    gate_block(&g, s);
    EXPECT_OK(aclrtRecordEvent(e, s));
    int64_t t0 = clock_ms();
    EXPECT_ERR(aclrtSynchronizeEventWithTimeout(e, 100), SYNC_TIMEOUT);
    int64_t dt = clock_ms() - t0;
    CHECKF(dt >= 90 && dt < 3000 * (int64_t)slow, "a 100 ms timeout took %lld ms",
           (long long)dt);
    /* the stream itself has no error from it */
    gate_open(&g);
    EXPECT_OK(aclrtSynchronizeEvent(e));
    EXPECT_OK(aclrtSynchronizeStream(s));
    EXPECT_OK(aclrtDestroyEvent(e));
    gate_free(&g);
    EXPECT_OK(aclrtDestroyStream(s));
    work_free(&w);
}

/* A cross-stream deadlock that a stream wait's timeout breaks: stream 1
 * waits on a notify that stream 2 records only after its wait on the event
 * that stream 1 records after its notify wait. */
TEST(test_wait_timeout_breaks_deadlock)
{
    Work w;
    aclrtStream s[2] = { NULL, NULL };
    aclrtNotify n = NULL;
    aclrtEvent e = NULL;
    if (!work_new(&w)) {
        work_free(&w);
        return;
    }
    streams_new(s, 2);
    EXPECT_OK(aclrtCreateNotify(&n, ACL_NOTIFY_DEFAULT));
    EXPECT_OK(aclrtCreateEventWithFlag(&e, ACL_EVENT_SYNC));
    EXPECT_OK(aclrtWaitAndResetNotify(n, s[0], 0));
    EXPECT_OK(aclrtRecordEvent(e, s[0]));
    EXPECT_OK(aclrtMemsetAsync(w.dst[0], TAIL, 0x91, TAIL, s[0]));
    int64_t t0 = clock_ms();
    EXPECT_OK(aclrtStreamWaitEventWithTimeout(s[1], e, 1));
    EXPECT_OK(aclrtRecordNotify(n, s[1]));
    EXPECT_OK(aclrtMemsetAsync(w.dst[1], TAIL, 0x92, TAIL, s[1]));
    EXPECT_ERR(aclrtSynchronizeStream(s[1]), TIMEOUT);
    int64_t dt = clock_ms() - t0;
    CHECKF(dt >= 900 && dt < 5000 * (int64_t)slow, "the 1 s wait timed out after %lld ms",
           (long long)dt);
    /* the error is reported once, the stream went on: its notify freed s0 */
    EXPECT_OK(aclrtSynchronizeStream(s[1]));
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(s[0], 5000 * (int32_t)slow));
    CHECK(dst_is(&w, 0, 0x91));
    CHECK(dst_is(&w, 1, 0x92));
    CHECK(recorded_status(e) == ACL_EVENT_RECORDED_STATUS_COMPLETE);
    /* aclrtStreamWaitEventWithFlag with a timeout does the same */
    Gate g;
    gate_new(&g);
    gate_block(&g, s[0]);
    EXPECT_OK(aclrtRecordEvent(e, s[0]));
    EXPECT_OK(aclrtStreamWaitEventWithFlag(s[1], e, 1, ACL_EVENT_WAIT_DEFAULT));
    EXPECT_ERR(aclrtSynchronizeStream(s[1]), TIMEOUT);
    gate_open(&g);
    EXPECT_OK(aclrtSynchronizeStream(s[0]));
    gate_free(&g);
    EXPECT_OK(aclrtDestroyEvent(e));
    EXPECT_OK(aclrtDestroyNotify(n));
    streams_free(s, 2);
    work_free(&w);
}

/* aclrtSetOpWaitTimeout applies to the aclrtStreamWaitEvent calls after it. */
TEST(test_op_wait_timeout)
{
    Work w;
    Gate g;
    aclrtStream s[2] = { NULL, NULL };
    aclrtEvent e = NULL;
    if (!work_new(&w)) {
        work_free(&w);
        return;
    }
    streams_new(s, 2);
    gate_new(&g);
    EXPECT_OK(aclrtCreateEventWithFlag(&e, ACL_EVENT_SYNC));
    /* a wait queued before the setting waits forever */
    gate_block(&g, s[0]);
    EXPECT_OK(aclrtRecordEvent(e, s[0]));
    EXPECT_OK(aclrtStreamWaitEvent(s[1], e));
    EXPECT_OK(aclrtMemsetAsync(w.dst[0], TAIL, 0xa1, TAIL, s[1]));
    EXPECT_OK(aclrtSetOpWaitTimeout(1));
    EXPECT_OK(aclrtStreamWaitEvent(s[1], e));
    EXPECT_OK(aclrtMemsetAsync(w.dst[1], TAIL, 0xa2, TAIL, s[1]));
    g_usleep(1500 * 1000);
    CHECKF(dst_is(&w, 0, 0xee), "a wait queued before aclrtSetOpWaitTimeout(1) timed out");
    gate_open(&g);
    EXPECT_OK(aclrtSynchronizeStream(s[1]));
    CHECK(dst_is(&w, 0, 0xa1) && dst_is(&w, 1, 0xa2));
    /* now a wait times out after 1 s */
    gate_block(&g, s[0]);
    EXPECT_OK(aclrtRecordEvent(e, s[0]));
    int64_t t0 = clock_ms();
    EXPECT_OK(aclrtStreamWaitEvent(s[1], e));
    EXPECT_ERR(aclrtSynchronizeStream(s[1]), TIMEOUT);
    int64_t dt = clock_ms() - t0;
    CHECKF(dt >= 900 && dt < 5000 * (int64_t)slow, "timed out after %lld ms", (long long)dt);
    /* aclrtStreamWaitEventWithTimeout keeps its own timeout (0: forever) */
    EXPECT_OK(aclrtStreamWaitEventWithTimeout(s[1], e, 0));
    EXPECT_OK(aclrtMemsetAsync(w.dst[2], TAIL, 0xa3, TAIL, s[1]));
    g_usleep(1500 * 1000);
    CHECKF(dst_is(&w, 2, 0xee), "aclrtStreamWaitEventWithTimeout(0) used the op timeout");
    gate_open(&g);
    EXPECT_OK(aclrtSynchronizeStream(s[1]));
    CHECK(dst_is(&w, 2, 0xa3));
    /* back to no timeout */
    EXPECT_OK(aclrtSetOpWaitTimeout(0));
    gate_block(&g, s[0]);
    EXPECT_OK(aclrtRecordEvent(e, s[0]));
    EXPECT_OK(aclrtStreamWaitEvent(s[1], e));
    EXPECT_OK(aclrtMemsetAsync(w.dst[3], TAIL, 0xa4, TAIL, s[1]));
    g_usleep(1500 * 1000);
    CHECK(dst_is(&w, 3, 0xee));
    gate_open(&g);
    EXPECT_OK(aclrtSynchronizeStream(s[1]));
    CHECK(dst_is(&w, 3, 0xa4));
    EXPECT_OK(aclrtSynchronizeStream(s[0]));
    EXPECT_OK(aclrtDestroyEvent(e));
    gate_free(&g);
    streams_free(s, 2);
    work_free(&w);
}

/* Elapsed time and timestamps. */
TEST(test_elapsed_and_timestamps)
{
    Work w;
    aclrtStream s = NULL;
    aclrtEvent a = NULL, b = NULL, c = NULL, x = NULL;
    if (!work_new(&w)) {
        work_free(&w);
        return;
    }
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtCreateEvent(&a));
    EXPECT_OK(aclrtCreateEventWithFlag(&b, ACL_EVENT_TIME_LINE));
    EXPECT_OK(aclrtCreateEventExWithFlag(&c, ACL_EVENT_TIME_LINE | ACL_EVENT_SYNC));
    EXPECT_OK(aclrtCreateEventWithFlag(&x, ACL_EVENT_SYNC | ACL_EVENT_TIME_LINE));
    EXPECT_OK(aclrtRecordEvent(a, s));
    fill_async(&w, s, 0xb1);
    EXPECT_OK(aclrtRecordEvent(b, s));
    fill_async(&w, s, 0xb2);
    EXPECT_OK(aclrtRecordEvent(c, s));
    EXPECT_OK(aclrtSynchronizeStream(s));
    float ab = -1, bc = -1, ac = -1, ba = 1, aa = -1;
    EXPECT_OK(aclrtEventElapsedTime(&ab, a, b));
    EXPECT_OK(aclrtEventElapsedTime(&bc, b, c));
    EXPECT_OK(aclrtEventElapsedTime(&ac, a, c));
    EXPECT_OK(aclrtEventElapsedTime(&aa, a, a));
    printf("\n    256 MiB memset: %.3f ms, %.3f ms ", (double)ab, (double)bc);
    CHECKF(ab > 0 && ab < 5000.0f * (float)slow, "a 256 MiB memset took %f ms", (double)ab);
    CHECKF(bc > 0 && bc < 5000.0f * (float)slow, "a 256 MiB memset took %f ms", (double)bc);
    CHECKF(ac >= ab + bc - 0.01f && ac <= ab + bc + 0.01f, "a->c %f, a->b + b->c %f",
           (double)ac, (double)(ab + bc));
    CHECK(aa == 0.0f);
    /* end before start: ACL_ERROR_RT_EVENT_TIMESTAMP_REVERSAL, the code the
     * reference lists for it (ab > 0: the records are apart) */
    ba = 12345.0f;
    if (ab > 0.0f)
        EXPECT_ERR(aclrtEventElapsedTime(&ba, b, a), ACL_ERROR_RT_EVENT_TIMESTAMP_REVERSAL);
    CHECK(ba == 12345.0f);
    /* timestamps: microseconds of the device clock, in record order */
    uint64_t ta = 0, tb = 0, tc = 0;
    EXPECT_OK(aclrtEventGetTimestamp(a, &ta));
    EXPECT_OK(aclrtEventGetTimestamp(b, &tb));
    EXPECT_OK(aclrtEventGetTimestamp(c, &tc));
    CHECKF(ta > 0 && ta <= tb && tb <= tc, "timestamps %llu %llu %llu", (unsigned long long)ta,
           (unsigned long long)tb, (unsigned long long)tc);
    CHECKF((double)(tb - ta) / 1000.0 >= (double)ab - 0.002 &&
           (double)(tb - ta) / 1000.0 <= (double)ab + 0.002,
           "timestamps %llu us apart, elapsed time %f ms", (unsigned long long)(tb - ta),
           (double)ab);
    /* re-recording moves the timestamp forward, record by record */
    uint64_t prev = tc;
    for (int i = 0; i < 5; i++) {
        EXPECT_OK(aclrtMemsetAsync(w.dst[0], TAIL, i, TAIL, s));
        EXPECT_OK(aclrtRecordEvent(x, s));
        EXPECT_OK(aclrtSynchronizeStream(s));
        uint64_t t = 0;
        EXPECT_OK(aclrtEventGetTimestamp(x, &t));
        CHECKF(t >= prev, "record %d: timestamp %llu after %llu", i, (unsigned long long)t,
               (unsigned long long)prev);
        prev = t;
    }
    /* and a record that has not run yet: 507006 */
    Gate g;
    gate_new(&g);
    gate_block(&g, s);
    EXPECT_OK(aclrtRecordEvent(b, s));
    float ms = 0;
    uint64_t t = 0;
    EXPECT_ERR(aclrtEventElapsedTime(&ms, a, b), NOT_COMPLETE);
    EXPECT_ERR(aclrtEventElapsedTime(&ms, b, a), NOT_COMPLETE);
    EXPECT_ERR(aclrtEventGetTimestamp(b, &t), NOT_COMPLETE);
    gate_open(&g);
    EXPECT_OK(aclrtSynchronizeStream(s));
    EXPECT_OK(aclrtEventGetTimestamp(b, &t));
    CHECK(t >= prev);
    EXPECT_OK(aclrtEventElapsedTime(&ms, a, b));
    CHECK(ms > ab);
    gate_free(&g);
    EXPECT_OK(aclrtDestroyEvent(a));
    EXPECT_OK(aclrtDestroyEvent(b));
    EXPECT_OK(aclrtDestroyEvent(c));
    EXPECT_OK(aclrtDestroyEvent(x));
    EXPECT_OK(aclrtDestroyStream(s));
    work_free(&w);
}

/* Destroy while a record (and a wait) is queued: no blocking; the work still
 * completes, the wait still waits for the record. */
TEST(test_destroy_while_queued)
{
    Work w;
    Gate g;
    aclrtStream s[2] = { NULL, NULL };
    aclrtEvent e = NULL;
    uint32_t before = 0, n = 0;
    if (!work_new(&w)) {
        work_free(&w);
        return;
    }
    streams_new(s, 2);
    gate_new(&g);
    EXPECT_OK(aclrtGetEventAvailNum(&before));
    EXPECT_OK(aclrtCreateEventWithFlag(&e, ACL_EVENT_SYNC));
    gate_block(&g, s[0]);
    fill_async(&w, s[0], 0xc1);
    EXPECT_OK(aclrtRecordEvent(e, s[0]));
    EXPECT_OK(aclrtMemsetAsync(w.dst[0], TAIL, 0xc2, TAIL, s[0]));
    EXPECT_OK(aclrtStreamWaitEvent(s[1], e));
    copy_tail_async(&w, 1, s[1]);
    int64_t t0 = clock_ms();
    EXPECT_OK(aclrtDestroyEvent(e));
    int64_t dt = clock_ms() - t0;
    CHECKF(dt < 500 * (int64_t)slow, "aclrtDestroyEvent with a queued record took %lld ms",
           (long long)dt);
    EXPECT_ERR(aclrtRecordEvent(e, s[0]), PARAM);
    /* the queued tasks hold the event: not yet back in the pool */
    EXPECT_OK(aclrtGetEventAvailNum(&n));
    CHECKF(n == before - 1, "%u available while the destroyed event is queued (%u before)", n,
           before);
    g_usleep(100 * 1000);
    CHECK(dst_is(&w, 1, 0xee));
    gate_open(&g);
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(s[1], 10000 * (int32_t)slow));
    EXPECT_OK(aclrtSynchronizeStream(s[0]));
    CHECKF(dst_is(&w, 1, 0xc1), "the wait on a destroyed event's record did not wait for it");
    CHECK(dst_is(&w, 0, 0xc2));
    EXPECT_OK(aclrtGetEventAvailNum(&n));
    CHECKF(n == before, "%u available after the queued tasks ran, %u before", n, before);
    gate_free(&g);
    streams_free(s, 2);
    work_free(&w);
}

/* The stream of the last record (and of the last wait) is destroyed, and
 * another stream takes its place, busy: the event's queries and host
 * synchronisation are about the record that ran, not about the new stream. */
TEST(test_record_stream_destroyed)
{
    Gate g[2];
    aclrtEvent e = NULL;
    aclrtStream s = NULL, w = NULL, others[2] = { NULL, NULL };
    EXPECT_OK(aclrtCreateEventWithFlag(&e, ACL_EVENT_SYNC));
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtCreateStream(&w));
    EXPECT_OK(aclrtRecordEvent(e, s));
    EXPECT_OK(aclrtStreamWaitEvent(w, e));
    EXPECT_OK(aclrtDestroyStream(s));
    EXPECT_OK(aclrtDestroyStream(w));
    for (int i = 0; i < 2; i++) {
        gate_new(&g[i]);
        EXPECT_OK(aclrtCreateStream(&others[i]));
        gate_block(&g[i], others[i]);
    }
    CHECK(recorded_status(e) == ACL_EVENT_RECORDED_STATUS_COMPLETE);
    CHECK(wait_status(e) == ACL_EVENT_WAIT_STATUS_COMPLETE);
    EXPECT_OK(aclrtSynchronizeEventWithTimeout(e, 1000 * (int32_t)slow));
    for (int i = 0; i < 2; i++) {
        gate_open(&g[i]);
        gate_free(&g[i]);
    }
    streams_free(others, 2);
    EXPECT_OK(aclrtDestroyEvent(e));
}

/* 65536 events per device, then 207007; all come back. */
/* Records the event on the default stream (a thread: it may wait for a
 * device event to come free). */
static int g_recorded;
static aclrtContext g_record_ctx;

static gpointer record_lazy(gpointer e)
{
    if (aclrtSetCurrentContext(g_record_ctx) != ACL_SUCCESS)
        return GINT_TO_POINTER(-1);
    aclError rc = aclrtRecordEvent(e, NULL);
    __atomic_store_n(&g_recorded, 1, __ATOMIC_RELEASE);
    return GINT_TO_POINTER(rc);
}

TEST(test_limit)
{
    const int max = EVENT_MAX + 4;
    aclrtEvent *all = g_new0(aclrtEvent, (size_t)max);
    uint32_t n = 0;
    EXPECT_OK(aclrtSetDevice(5));
    int64_t t0 = clock_ms();
    int got = 0;
    aclError rc = ACL_SUCCESS;
    /* WithFlag(SYNC) events are limited when created. */
    while (got < max) {
        rc = got % 2 ? aclrtCreateEventWithFlag(&all[got], ACL_EVENT_SYNC | ACL_EVENT_TIME_LINE)
                     : aclrtCreateEventWithFlag(&all[got], ACL_EVENT_SYNC);
        if (rc != ACL_SUCCESS)
            break;
        got++;
    }
    EXPECT_ERR(rc, ACL_ERROR_RT_NO_EVENT_RESOURCE);
    CHECKF(got == EVENT_MAX, "%d events before 207007, expected %d", got, EVENT_MAX);
    EXPECT_OK(aclrtGetEventAvailNum(&n));
    CHECK(n == 0);
    /* Events that take theirs at the first record, or never, are still created;
     * the record waits for a free one ("可能会出现线程阻塞，等待Event资源的释放"). */
    aclrtEvent lazy = NULL, ex = NULL, timing = NULL;
    EXPECT_OK(aclrtCreateEvent(&lazy));
    EXPECT_OK(aclrtCreateEventExWithFlag(&ex, ACL_EVENT_SYNC));
    EXPECT_OK(aclrtCreateEventWithFlag(&timing, ACL_EVENT_TIME_LINE));
    EXPECT_OK(aclrtRecordEvent(timing, NULL));             /* never limited */
    EXPECT_OK(aclrtSynchronizeEvent(timing));
    EXPECT_OK(aclrtGetCurrentContext(&g_record_ctx));
    GThread *rec = g_thread_new("record", record_lazy, lazy);
    g_usleep(100 * 1000);
    CHECKF(!__atomic_load_n(&g_recorded, __ATOMIC_ACQUIRE),
           "a record returned while the device had no event left");
    EXPECT_OK(aclrtDestroyEvent(all[--got]));               /* one comes free */
    CHECK(GPOINTER_TO_INT(g_thread_join(rec)) == ACL_SUCCESS);
    CHECK(__atomic_load_n(&g_recorded, __ATOMIC_ACQUIRE));
    EXPECT_OK(aclrtSynchronizeEvent(lazy));
    EXPECT_OK(aclrtGetEventAvailNum(&n));
    CHECK(n == 0);
    uint32_t lazy_id = 0;
    EXPECT_OK(aclrtGetEventId(lazy, &lazy_id));
    CHECK(lazy_id < EVENT_MAX);
    EXPECT_ERR(aclrtGetEventId(ex, &lazy_id), ACL_ERROR_RT_NO_EVENT_RESOURCE);
    EXPECT_OK(aclrtDestroyEvent(lazy));
    EXPECT_OK(aclrtDestroyEvent(ex));
    EXPECT_OK(aclrtDestroyEvent(timing));
    /* other devices are not affected */
    aclrtEvent other = NULL;
    EXPECT_OK(aclrtSetDevice(6));
    EXPECT_OK(aclrtCreateEvent(&other));
    EXPECT_OK(aclrtDestroyEvent(other));
    EXPECT_OK(aclrtSetDevice(5));
    /* one freed, one created: it gets the freed id */
    if (got > 10) {
        uint32_t freed = 0, id = 0;
        EXPECT_OK(aclrtGetEventId(all[7], &freed));
        EXPECT_OK(aclrtDestroyEvent(all[7]));
        EXPECT_OK(aclrtCreateEvent(&all[7]));
        EXPECT_OK(aclrtGetEventId(all[7], &id));
        CHECKF(id == freed, "the only free id was %u, the new event got %u", freed, id);
    }
    for (int i = 0; i < got; i++)
        if (aclrtDestroyEvent(all[i]) != ACL_SUCCESS) {
            CHECKF(false, "destroy of event %d failed", i);
            break;
        }
    drain_errors();
    int64_t dt = clock_ms() - t0;
    printf("\n    %d creates and destroys: %lld ms ", got, (long long)dt);
    EXPECT_OK(aclrtGetEventAvailNum(&n));
    CHECKF(n == EVENT_MAX, "%u available after destroying all", n);
    /* closing the device drops its events (forced: set twice above) */
    aclrtEvent few[3] = { NULL, NULL, NULL };
    for (int i = 0; i < 3; i++)
        EXPECT_OK(aclrtCreateEvent(&few[i]));
    EXPECT_OK(aclrtResetDeviceForce(5));
    EXPECT_OK(aclrtSetDevice(0));
    uint32_t id = 0;
    EXPECT_ERR(aclrtGetEventId(few[0], &id), PARAM);
    EXPECT_ERR(aclrtRecordEvent(few[1], NULL), PARAM);
    EXPECT_ERR(aclrtDestroyEvent(few[2]), PARAM);
    EXPECT_OK(aclrtSetDevice(5));
    EXPECT_OK(aclrtGetEventAvailNum(&n));
    CHECKF(n == EVENT_MAX, "%u available after aclrtResetDevice", n);
    EXPECT_OK(aclrtResetDevice(5));
    EXPECT_OK(aclrtSetDevice(0));
    g_free(all);
}

/* ------------------------------------------------------------------------- */
/* processes: IPC events                                                     */
/* ------------------------------------------------------------------------- */

enum Op {
    OP_INIT = 1,    /* aclInit, aclrtSetDevice(dev), a stream */
    OP_MALLOC,      /* mem[slot] = aclrtMalloc(size), zeroed */
    OP_MEMKEY,      /* key = aclrtIpcMemGetExportKey(mem[slot], size, no pid validation) */
    OP_MEMIMPORT,   /* mem[slot] = aclrtIpcMemImportByKey(key, flags) */
    OP_CREATE,      /* ev[es] = aclrtCreateEventExWithFlag(flags) */
    OP_HANDLE,      /* handle = aclrtIpcGetEventHandle(ev[es]) */
    OP_OPEN,        /* ev[es] = aclrtIpcOpenEventHandle(handle) */
    OP_DESTROY,     /* aclrtDestroyEvent(ev[es]) */
    OP_FILL_RECORD, /* memset mem[slot] (size bytes) to val on the stream, record ev[es];
                     * no synchronisation */
    OP_RECORD,      /* aclrtRecordEvent(ev[es], stream) */
    OP_WAITCOPY,    /* aclrtStreamWaitEvent(stream, ev[es]) (arg: with that timeout, s),
                     * then a copy of mem[0]'s last TAIL bytes (size: its size) into
                     * mem[1] on the stream */
    OP_SYNC,        /* aclrtSynchronizeStream: want is the code */
    OP_ESYNC,       /* aclrtSynchronizeEvent(ev[es]) (arg: with that timeout, ms) */
    OP_STATUS,      /* val = aclrtQueryEventStatus(ev[es]) */
    OP_CHECK,       /* val = whether mem[slot]'s first TAIL bytes all hold `val` */
    OP_CHECKTAIL,   /* val = whether the last TAIL of mem[slot] (size bytes) hold `val`,
                     * read synchronously */
    OP_REFUSED,     /* every API refused for IPC events gives 107000 on ev[es] */
    OP_EXIT,
};

typedef struct Msg {
    AGENT_MSG_HEAD;
    int32_t slot, es, dev;
    uint64_t size, flags, arg, val;
    char key[96];
    aclrtIpcEventHandle handle;
} Msg;

#define NSLOT 4

static struct {
    aclrtStream st;
    void *mem[NSLOT];
    aclrtEvent ev[NSLOT];
} A;

/* A direct API result, checked against want in full (harness.h). */
#define XRC(call, want) agent_expect((call), (want), #call, __FILE__, __LINE__)

static void agent_do(const void *mv, void *rv)
{
    const Msg *m = mv;
    Msg *r = rv;
    int s = m->slot >= 0 && m->slot < NSLOT ? m->slot : 0;
    int es = m->es >= 0 && m->es < NSLOT ? m->es : 0;
    aclError want = m->want;
    switch (m->op) {
    case OP_INIT:
        r->rc = XRC(aclInit(NULL), ACL_SUCCESS);
        if (r->rc == ACL_SUCCESS)
            r->rc = XRC(aclrtSetDevice(m->dev), want);
        if (r->rc == ACL_SUCCESS)
            r->rc = XRC(aclrtCreateStream(&A.st), ACL_SUCCESS);
        break;
    case OP_MALLOC:
        r->rc = XRC(aclrtMalloc(&A.mem[s], m->size, ACL_MEM_MALLOC_HUGE_FIRST), want);
        if (r->rc == ACL_SUCCESS)
            r->rc = XRC(aclrtMemset(A.mem[s], m->size, 0, m->size), ACL_SUCCESS);
        break;
    case OP_MEMKEY: {
        char key[96] = { 0 };
        r->rc = XRC(aclrtIpcMemGetExportKey(A.mem[s], m->size, key, 65,
                                            ACL_RT_IPC_MEM_EXPORT_FLAG_DISABLE_PID_VALIDATION),
                    want);
        memcpy(r->key, key, sizeof(key));
        break;
    }
    case OP_MEMIMPORT: {
        void *p = NULL;
        r->rc = XRC(aclrtIpcMemImportByKey(&p, m->key, m->flags), want);
        if (r->rc == ACL_SUCCESS)
            A.mem[s] = p;
        break;
    }
    case OP_CREATE:
        r->rc = XRC(aclrtCreateEventExWithFlag(&A.ev[es], (uint32_t)m->flags), want);
        break;
    case OP_HANDLE:
        memset(&r->handle, 0x5a, sizeof(r->handle));
        r->rc = XRC(aclrtIpcGetEventHandle(A.ev[es], &r->handle), want);
        break;
    case OP_OPEN: {
        aclrtEvent e = NULL;
        r->rc = XRC(aclrtIpcOpenEventHandle(m->handle, &e), want);
        if (r->rc == ACL_SUCCESS)
            A.ev[es] = e;
        else
            CHECKF(e == NULL, "a failed open gave an event");
        break;
    }
    case OP_DESTROY:
        r->rc = XRC(aclrtDestroyEvent(A.ev[es]), want);
        break;
    case OP_FILL_RECORD:
        r->rc = XRC(aclrtMemsetAsync(A.mem[s], m->size, (int32_t)m->val, m->size, A.st),
                    ACL_SUCCESS);
        if (r->rc == ACL_SUCCESS)
            r->rc = XRC(aclrtRecordEvent(A.ev[es], A.st), want);
        break;
    case OP_RECORD:
        r->rc = XRC(aclrtRecordEvent(A.ev[es], A.st), want);
        break;
    case OP_WAITCOPY:
        r->rc = m->arg ? XRC(aclrtStreamWaitEventWithTimeout(A.st, A.ev[es], (int32_t)m->arg),
                             want)
                       : XRC(aclrtStreamWaitEvent(A.st, A.ev[es]), want);
        if (r->rc == ACL_SUCCESS && m->size)
            r->rc = XRC(aclrtMemcpyAsync(A.mem[1], TAIL, (uint8_t *)A.mem[0] + m->size - TAIL,
                                         TAIL, ACL_MEMCPY_DEVICE_TO_DEVICE, A.st),
                        ACL_SUCCESS);
        break;
    case OP_SYNC:
        r->rc = XRC(aclrtSynchronizeStream(A.st), want);
        break;
    case OP_ESYNC:
        r->rc = m->arg ? XRC(aclrtSynchronizeEventWithTimeout(A.ev[es], (int32_t)m->arg), want)
                       : XRC(aclrtSynchronizeEvent(A.ev[es]), want);
        break;
    case OP_STATUS: {
        aclrtEventRecordedStatus st = (aclrtEventRecordedStatus)77;
        r->rc = XRC(aclrtQueryEventStatus(A.ev[es], &st), want);
        r->val = (uint64_t)st;
        break;
    }
    case OP_CHECK:
    case OP_CHECKTAIL: {
        uint8_t *h = g_malloc(TAIL);
        const uint8_t *p = A.mem[s];
        if (m->op == OP_CHECKTAIL)
            p += m->size - TAIL;
        r->rc = XRC(aclrtMemcpy(h, TAIL, p, TAIL, ACL_MEMCPY_DEVICE_TO_HOST), want);
        r->val = r->rc == ACL_SUCCESS && all_bytes(h, TAIL, (uint8_t)m->val);
        g_free(h);
        break;
    }
    case OP_REFUSED: {
        aclrtEvent e = A.ev[es], other = NULL;
        aclrtEventStatus es1;
        aclrtEventWaitStatus ws;
        float ms;
        uint64_t ts;
        uint32_t id;
        XRC(aclrtCreateEvent(&other), ACL_SUCCESS);
        XRC(aclrtRecordEvent(other, A.st), ACL_SUCCESS);
        XRC(aclrtSynchronizeStream(A.st), ACL_SUCCESS);
        XRC(aclrtResetEvent(e, A.st), PARAM);
        XRC(aclrtQueryEvent(e, &es1), PARAM);
        XRC(aclrtQueryEventWaitStatus(e, &ws), PARAM);
        XRC(aclrtEventElapsedTime(&ms, e, other), PARAM);
        XRC(aclrtEventElapsedTime(&ms, other, e), PARAM);
        XRC(aclrtEventGetTimestamp(e, &ts), PARAM);
        XRC(aclrtGetEventId(e, &id), PARAM);
        XRC(aclrtDestroyEvent(other), ACL_SUCCESS);
        r->rc = 0;
        break;
    }
    default:
        r->rc = -1;
        break;
    }
}

/* The harness's loop around agent_do answers OP_EXIT itself. */
static const AgentDef g_agent = {
    .size = sizeof(Msg), .run = agent_do, .op_init = OP_INIT, .op_exit = OP_EXIT,
};

/* One command to agent a, checked against its want at the scenario's line. */
static Msg do_op(Agent *a, Msg m, const char *text, int line)
{
    Msg r;
    agent_do_op(a, &m, &r, sizeof(r), text, __FILE__, line);
    return r;
}

#define DO(p, want_, ...) do_op(&(p), (Msg){ .want = (want_), __VA_ARGS__ }, #__VA_ARGS__, __LINE__)

static Msg with_handle(Msg m, const aclrtIpcEventHandle *h, const char *key)
{
    if (h)
        m.handle = *h;
    if (key)
        g_strlcpy(m.key, key, sizeof(m.key));
    return m;
}

/* A command carrying an event handle (DOH) or a memory key (DOK). */
#define DOH(p, want_, h_, ...) \
    do_op(&(p), with_handle((Msg){ .want = (want_), __VA_ARGS__ }, &(h_), NULL), \
          #__VA_ARGS__, __LINE__)
#define DOK(p, want_, key_, ...) \
    do_op(&(p), with_handle((Msg){ .want = (want_), __VA_ARGS__ }, NULL, (key_)), \
          #__VA_ARGS__, __LINE__)

/* An agent on device dev of g_emu, which NPU_EMU_SOCKET already names. */
static Agent agent(const char *name, int dev)
{
    Agent p = agent_spawn(name, &g_agent, NULL, -1);
    DO(p, ACL_SUCCESS, .op = OP_INIT, .dev = dev);
    return p;
}

/* The exporter A on device 0: a big buffer (mem 0, exported without pid
 * validation, key in *mk) and IPC event 0 (its handle in *h). */
static Agent exporter(Msg *mk, aclrtIpcEventHandle *h)
{
    Agent a = agent("A", 0);
    DO(a, 0, .op = OP_MALLOC, .slot = 0, .size = BIG);
    *mk = DO(a, 0, .op = OP_MEMKEY, .slot = 0, .size = BIG);
    DO(a, 0, .op = OP_CREATE, .es = 0, .flags = ACL_EVENT_IPC);
    Msg r = DO(a, 0, .op = OP_HANDLE, .es = 0);
    *h = r.handle;
    return a;
}

/* B on `dev` with A's buffer imported (mem 0), its own destination (mem 1)
 * and A's event opened (event 0). */
static Agent importer(const char *name, int dev, const Msg *mk, const aclrtIpcEventHandle *h)
{
    Agent b = agent(name, dev);
    DOK(b, 0, mk->key, .op = OP_MEMIMPORT, .slot = 0,
        .flags = dev ? ACL_RT_IPC_MEM_IMPORT_FLAG_ENABLE_PEER_ACCESS : 0);
    DO(b, 0, .op = OP_MALLOC, .slot = 1, .size = TAIL);
    DOH(b, 0, *h, .op = OP_OPEN, .es = 0);
    return b;
}

/* One round: A fills its buffer with v behind a long memset and records; B
 * waits on the event and copies the tail: B must see v. */
static void ipc_round(Agent *a, Agent *b, uint8_t v, int line)
{
    do_op(a, (Msg){ .op = OP_FILL_RECORD, .slot = 0, .size = BIG, .val = v, .es = 0 },
          "fill + record", line);
    do_op(b, (Msg){ .op = OP_WAITCOPY, .es = 0, .size = BIG }, "wait + copy", line);
    do_op(b, (Msg){ .op = OP_SYNC }, "sync", line);
    Msg r = do_op(b, (Msg){ .op = OP_CHECK, .slot = 1, .val = v }, "check", line);
    check_impl(r.val == 1, __FILE__, line, "scenario",
               "%s's task after its wait did not see A's data (0x%x): the wait did not block "
               "until A's record", b->name, v);
    do_op(a, (Msg){ .op = OP_SYNC }, "A sync", line);
}

#define ROUND(a, b, v) ipc_round(&(a), &(b), (v), __LINE__)

static void ipc_scenario(int bdev)
{
    Msg mk;
    aclrtIpcEventHandle h;
    Agent a = exporter(&mk, &h);
    Agent b = importer("B", bdev, &mk, &h);
    ROUND(a, b, 0x11);
    ROUND(a, b, 0x12);
    /* B's event synchronisation and status follow A's record */
    DO(a, 0, .op = OP_FILL_RECORD, .slot = 0, .size = BIG, .val = 0x13, .es = 0);
    DO(b, 0, .op = OP_ESYNC, .es = 0);
    Msg r = DO(a, 0, .op = OP_CHECKTAIL, .slot = 0, .size = BIG, .val = 0x13);
    CHECKF(r.val == 1, "aclrtSynchronizeEvent in B returned before A's memset ended");
    r = DO(b, 0, .op = OP_STATUS, .es = 0);
    CHECK(r.val == ACL_EVENT_RECORDED_STATUS_COMPLETE);
    DO(a, 0, .op = OP_SYNC);
    /* the refused APIs, in both processes */
    DO(a, 0, .op = OP_REFUSED, .es = 0);
    DO(b, 0, .op = OP_REFUSED, .es = 0);
    /* an opened event is not exported again; the exporter cannot open its own */
    DO(b, PARAM, .op = OP_HANDLE, .es = 0);
    DOH(a, PARAM, h, .op = OP_OPEN, .es = 1);
    /* B records too: A waits on B's record */
    DO(b, 0, .op = OP_FILL_RECORD, .slot = 1, .size = TAIL, .val = 0x14, .es = 0);
    DO(a, 0, .op = OP_WAITCOPY, .es = 0, .arg = 10 * slow);
    DO(a, 0, .op = OP_SYNC);
    DO(b, 0, .op = OP_SYNC);
    /* a second open gives a second handle; B destroys one, the other works */
    DOH(b, 0, h, .op = OP_OPEN, .es = 1);
    DO(b, 0, .op = OP_DESTROY, .es = 1);
    DO(b, PARAM, .op = OP_DESTROY, .es = 1);
    DO(b, PARAM, .op = OP_WAITCOPY, .es = 1);
    ROUND(a, b, 0x15);
    /* A destroys after B queued its wait, while its record is still queued
     * behind the long memset: B's wait still waits for it */
    DO(a, 0, .op = OP_FILL_RECORD, .slot = 0, .size = BIG, .val = 0x16, .es = 0);
    DO(b, 0, .op = OP_WAITCOPY, .es = 0, .size = BIG);
    DO(a, 0, .op = OP_DESTROY, .es = 0);
    DO(b, 0, .op = OP_SYNC);
    r = DO(b, 0, .op = OP_CHECK, .slot = 1, .val = 0x16);
    CHECKF(r.val == 1, "B's wait did not wait for the record of the event A destroyed");
    DO(a, 0, .op = OP_SYNC);
    /* B's handle still works after A's destroy (its own records, waits);
     * nobody can open the handle any more */
    DO(b, 0, .op = OP_RECORD, .es = 0);
    DO(b, 0, .op = OP_WAITCOPY, .es = 0, .arg = 5 * slow);
    DO(b, 0, .op = OP_SYNC);
    Agent c = agent("C", 0);
    DOH(c, PARAM, h, .op = OP_OPEN, .es = 0);
    DO(b, 0, .op = OP_DESTROY, .es = 0);
    AGENT_FINISH(c);
    AGENT_FINISH(b);
    AGENT_FINISH(a);
}

TEST(test_ipc_same_device)
{
    ipc_scenario(0);
}

TEST(test_ipc_two_devices)
{
    ipc_scenario(1);
}

/* Several importers wait on one record; forged handles are refused. */
TEST(test_ipc_open_refused)
{
    Msg mk;
    aclrtIpcEventHandle h, forged;
    Agent a = exporter(&mk, &h);
    Agent b = importer("B", 0, &mk, &h);
    Agent c = importer("C", 2, &mk, &h);
    DO(a, 0, .op = OP_FILL_RECORD, .slot = 0, .size = BIG, .val = 0x21, .es = 0);
    DO(b, 0, .op = OP_WAITCOPY, .es = 0, .size = BIG);
    DO(c, 0, .op = OP_WAITCOPY, .es = 0, .size = BIG);
    DO(b, 0, .op = OP_SYNC);
    DO(c, 0, .op = OP_SYNC);
    Msg r = DO(b, 0, .op = OP_CHECK, .slot = 1, .val = 0x21);
    CHECK(r.val == 1);
    r = DO(c, 0, .op = OP_CHECK, .slot = 1, .val = 0x21);
    CHECK(r.val == 1);
    /* forged handles: all zero, all ones, one byte of the token changed, and
     * the handle of this process's own IPC event in another process's hands */
    memset(&forged, 0, sizeof(forged));
    DOH(b, PARAM, forged, .op = OP_OPEN, .es = 1);
    memset(&forged, 0xff, sizeof(forged));
    DOH(b, PARAM, forged, .op = OP_OPEN, .es = 1);
    for (int i = 8; i < 24; i += 5) {
        forged = h;
        forged.reserved[i] ^= 0x01;
        DOH(b, PARAM, forged, .op = OP_OPEN, .es = 1);
    }
    /* the exporting process: refused */
    DOH(a, PARAM, h, .op = OP_OPEN, .es = 1);
    /* this process, a third one: no whitelist is needed */
    aclrtEvent e = NULL;
    EXPECT_OK(aclrtIpcOpenEventHandle(h, &e));
    if (e) {
        aclrtEventRecordedStatus st = (aclrtEventRecordedStatus)77;
        EXPECT_OK(aclrtSynchronizeEventWithTimeout(e, 10000 * (int32_t)slow));
        EXPECT_OK(aclrtQueryEventStatus(e, &st));
        CHECK(st == ACL_EVENT_RECORDED_STATUS_COMPLETE);
        EXPECT_OK(aclrtDestroyEvent(e));
    }
    e = NULL;
    memset(&forged, 0, sizeof(forged));
    EXPECT_ERR(aclrtIpcOpenEventHandle(forged, &e), PARAM);
    CHECK(e == NULL);
    /* a handle exported once: exporting again is refused */
    DO(a, PARAM, .op = OP_HANDLE, .es = 0);
    DO(a, 0, .op = OP_SYNC);
    DO(c, 0, .op = OP_DESTROY, .es = 0);
    DO(b, 0, .op = OP_DESTROY, .es = 0);
    DO(a, 0, .op = OP_DESTROY, .es = 0);
    AGENT_FINISH(c);
    AGENT_FINISH(b);
    AGENT_FINISH(a);
}

/* ---- main ---- */

int main(void)
{
    static const TestCase tests[] = {
        T(test_create_flags), T(test_bad_arguments), T(test_ids_and_avail),
        T(test_wait_blocks), T(test_many_waiters), T(test_wait_unrecorded),
        T(test_rerecord), T(test_reset), T(test_query_status), T(test_wait_status_all_waits),
        T(test_synchronize_event),
        T(test_wait_timeout_breaks_deadlock), T(test_op_wait_timeout),
        T(test_elapsed_and_timestamps), T(test_destroy_while_queued),
        T(test_record_stream_destroyed), T(test_limit),
        T(test_ipc_same_device), T(test_ipc_two_devices), T(test_ipc_open_refused),
    };
    static const TestProgram prog = {
        .name = "test_event", .emus = { EMU(&g_emu, "a2") },
        .suites = { SUITE("events", NULL, NULL, tests) },
        .devices = DEV(0), .reset = DEV(6) | DEV(2) | DEV(0), .only_env = "EVENT_ONLY",
    };
    return test_main(&prog);
}
