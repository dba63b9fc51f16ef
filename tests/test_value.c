/*
 * test_value.c - integration tests of stream memory operations (chapter 11-09:
 * aclrtValueWrite, aclrtValueWait; developer guide 03-07, memory semantic
 * synchronisation) against a real npu-emu, with real threads and processes.
 *
 * Concepts:
 *  - One a2 emulator (8 devices); this process is its client on device 0.
 *  - Argument checks with the exact codes (acl_check.h: code, last error,
 *    message): NULL, unaligned, host memory (pageable and pinned), freed device
 *    memory, an unmapped page of a reserved range, reserved flags, comparisons
 *    past NOR, dead / foreign / other-device streams.
 *  - Outcomes are checked by data, never by the clock: a stream waits on a word
 *    and then copies a buffer; while the condition is false the copy must not
 *    have run (the destination still holds its old bytes and the stream is not
 *    complete, looked at after a pause far longer than the waiter's 2 ms
 *    re-check), and once another stream's aclrtValueWrite makes it true the copy
 *    holds the source bytes.  Writes that leave the condition false come first,
 *    so each comparison is checked on both sides (GEQ with the signed
 *    difference of the reference: value 5 against 0xFFFF...FF blocks).
 *  - Every host wait is bounded: aclrtSynchronizeStreamWithTimeout in this
 *    process, alarm() and poll() deadlines in children; a stream left waiting by
 *    a failed check is aborted so that later tests start clean.
 *  - The multi-process tests use "agents" (harness.h): forked children that
 *    call aclInit themselves and execute the commands the parent sends over a
 *    pipe, each answered with its return code, so the order of steps across
 *    processes is exactly the one written.  The exporter A waits on a word of
 *    its own memory (exported by key, no pid validation); the importer B (same
 *    device) or C (device 1, import flag ENABLE_PEER_ACCESS) fills the data with
 *    a copy and then writes the word on the same stream, without a synchronise
 *    in between; A's copy after the wait must hold B's data.
 *  - Also: memory of another device (507013 without peer access), memory freed
 *    or unmapped under a queued task (507013 at synchronise, no hang),
 *    aclrtStreamStop / aclrtStreamAbort / aclrtDestroyStreamForce of a waiting
 *    stream, a waiting process killed.  aclFinalize with a wait that never ends
 *    is not tested: a reset waits for the device's tasks, as the reference says.
 *  - VALUE_ONLY=word runs only the tests whose name contains it.
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
#define N (64 * KiB)        /* the buffer a waiting stream copies */
#define SZ (2 * MiB)        /* shared memory of the process tests */
#define HALF (SZ / 2)       /* data in [0, HALF), the word at HALF */

#define PARAM ACL_ERROR_RT_PARAM_INVALID
#define GEQ ACL_STREAM_WAIT_VALUE_GEQ
#define EQ ACL_STREAM_WAIT_VALUE_EQ
#define AND ACL_STREAM_WAIT_VALUE_AND
#define NOR ACL_STREAM_WAIT_VALUE_NOR
#define NO_PID ACL_RT_IPC_MEM_EXPORT_FLAG_DISABLE_PID_VALIDATION
#define PEER_FLAG ACL_RT_IPC_MEM_IMPORT_FLAG_ENABLE_PEER_ACCESS

static const unsigned slow = TEST_SLOW;

/* How long a blocked wait is watched before it is believed blocked: many times
 * the waiter's longest pause between looks (2 ms). */
#define HOLD_MS (40 * slow)
/* A bound on synchronising a stream whose wait should be satisfied. */
#define SYNC_MS (int32_t)(10000 * slow)

static TestEmu g_emu;
static aclrtContext g_ctx;

static uint64_t pattern_sum(size_t n, uint32_t seed)
{
    uint8_t *b = g_malloc(n);
    fill_pattern(b, n, seed);
    uint64_t s = checksum(b, n);
    g_free(b);
    return s;
}

static const char *cmp_name(uint32_t cmp)
{
    static const char *const names[] = { "GEQ", "EQ", "AND", "NOR" };
    return cmp < 4 ? names[cmp] : "?";
}

/* ------------------------------------------------------------------------- */
/* device memory helpers                                                     */
/* ------------------------------------------------------------------------- */

static void *dev_alloc(size_t n)
{
    void *d = NULL;
    EXPECT_OK(aclrtMalloc(&d, n, ACL_MEM_MALLOC_HUGE_FIRST));
    return d;
}

static void word_set(void *w, uint64_t v)
{
    EXPECT_OK(aclrtMemcpy(w, 8, &v, 8, ACL_MEMCPY_HOST_TO_DEVICE));
}

static uint64_t word_get(void *w)
{
    uint64_t v = 0xdeadbeefdeadbeefull;
    EXPECT_OK(aclrtMemcpy(&v, 8, w, 8, ACL_MEMCPY_DEVICE_TO_HOST));
    return v;
}

/* True when all n bytes at device address d are v. */
static bool dev_is(void *d, size_t n, uint8_t v)
{
    uint8_t *buf = g_malloc(n);
    bool ok = EXPECT_OK(aclrtMemcpy(buf, n, d, n, ACL_MEMCPY_DEVICE_TO_HOST)) &&
              all_bytes(buf, n, v);
    g_free(buf);
    return ok;
}

static aclrtStreamStatus query(aclrtStream s)
{
    aclrtStreamStatus st = ACL_STREAM_STATUS_RESERVED;
    EXPECT_OK(aclrtStreamQuery(s, &st));
    return st;
}

static aclrtStream new_stream(void)
{
    aclrtStream s = NULL;
    EXPECT_OK(aclrtCreateStream(&s));
    return s;
}

/* A stream that should have been released: synchronise it within SYNC_MS; if
 * it is still waiting, abort it so that later tests start clean. */
static bool sync_released(aclrtStream s, const char *what, int line)
{
    aclError rc = aclrtSynchronizeStreamWithTimeout(s, SYNC_MS);
    if (rc == ACL_SUCCESS)
        return true;
    check_impl(false, __FILE__, line, "sync_released",
               "%s: the waiting stream did not finish (synchronise returned %d)", what, rc);
    drain_errors();
    aclrtStreamAbort(s);
    aclrtSynchronizeStreamWithTimeout(s, SYNC_MS);
    drain_errors();
    return false;
}

/* ---- the fixture of the comparison tests ---- */

typedef struct Fix {
    aclrtStream sw, sr;     /* the waiting stream, the releasing one */
    void *word, *src, *dst;
    uint8_t old, fresh;     /* dst's bytes before / after the copy */
} Fix;

static Fix fix_new(void)
{
    Fix f = { .old = 0x00, .fresh = 0x5a };
    f.sw = new_stream();
    f.sr = new_stream();
    f.word = dev_alloc(4096);
    f.src = dev_alloc(N);
    f.dst = dev_alloc(N);
    return f;
}

static void fix_free(Fix *f)
{
    EXPECT_OK(aclrtDestroyStream(f->sw));
    EXPECT_OK(aclrtDestroyStream(f->sr));
    EXPECT_OK(aclrtFree(f->word));
    EXPECT_OK(aclrtFree(f->src));
    EXPECT_OK(aclrtFree(f->dst));
}

/* Word = init, dst = old, src = fresh (a new byte per round); then the wait and
 * the copy dst <- src behind it on sw. */
static void fix_queue(Fix *f, uint64_t init, uint64_t value, uint32_t cmp)
{
    f->fresh = (uint8_t)(f->fresh * 7 + 13);
    if (f->fresh == f->old)
        f->fresh++;
    word_set(f->word, init);
    EXPECT_OK(aclrtMemset(f->dst, N, f->old, N));
    EXPECT_OK(aclrtMemset(f->src, N, f->fresh, N));
    EXPECT_OK(aclrtValueWait(f->word, value, cmp, f->sw));
    EXPECT_OK(aclrtMemcpyAsync(f->dst, N, f->src, N, ACL_MEMCPY_DEVICE_TO_DEVICE, f->sw));
}

/* After a pause, the copy behind the wait has not run. */
static bool fix_still_blocked(Fix *f, const char *what, int line)
{
    g_usleep(HOLD_MS * 1000);
    bool not_ready = query(f->sw) == ACL_STREAM_STATUS_NOT_READY;
    bool untouched = dev_is(f->dst, N, f->old);
    check_impl(not_ready && untouched, __FILE__, line, "blocked", "%s: %s", what,
               untouched ? "the stream reports complete" :
                           "the copy queued behind the wait ran while the condition was false");
    return not_ready && untouched;
}

/* The wait has let the copy through: dst holds src. */
static void fix_check_copied(Fix *f, const char *what, int line)
{
    if (sync_released(f->sw, what, line))
        check_impl(dev_is(f->dst, N, f->fresh), __FILE__, line, "released",
                   "%s: the copy behind the wait did not deliver its bytes", what);
}

/* ------------------------------------------------------------------------- */
/* the command channel of the process tests                                  */
/* ------------------------------------------------------------------------- */

enum Op {
    OP_INIT = 1,    /* aclInit, aclrtSetDevice(dev), a stream */
    OP_MALLOC,      /* mem[slot] = aclrtMalloc(size), pattern seed */
    OP_MEMKEY,      /* key2 = aclrtIpcMemGetExportKey(mem[slot], size, no pid validation) */
    OP_MEMIMPORT,   /* mem[slot] = aclrtIpcMemImportByKey(key2, flags) */
    OP_WORD,        /* *(mem[slot] + arg) = val (synchronous H2D) */
    OP_WAITCOPY,    /* aclrtValueWait(mem[0] + arg, val, flags); copy mem[1] <- mem[0], size */
    OP_STATUS,      /* val = aclrtStreamQuery; sum = checksum of mem[1], size (sync D2H) */
    OP_VWRITE,      /* aclrtValueWrite(mem[slot] + arg, val) + synchronise */
    OP_WRITEV,      /* after `seed`-patterned data into mem[slot] (size bytes, async D2D),
                     * aclrtValueWrite(mem[slot] + arg, val) on the same stream; then sync */
    OP_SYNC,        /* aclrtSynchronizeStreamWithTimeout(stream, SYNC_MS): want is the code */
    OP_READ,        /* sum = checksum of mem[slot], size bytes (sync D2H) */
    OP_HANG,        /* answer, then wait to be killed */
    OP_EXIT,        /* aclFinalize, exit with the failure count */
};

typedef struct Msg {
    AGENT_MSG_HEAD;
    int32_t slot, dev, pid;
    uint32_t seed;
    uint64_t size, flags, arg, val, sum;
    char key2[96];          /* a memory key */
} Msg;

/* ---- the agent (child side) ---- */

#define NSLOT 4

static struct {
    int32_t dev;
    aclrtStream st;
    void *mem[NSLOT];
} A;

/* A direct API result, checked against want in full (harness.h). */
#define XRC(call, want) agent_expect((call), (want), #call, __FILE__, __LINE__)

/* Pattern seed into n bytes at p with an async D2D copy on the agent's stream
 * from a scratch buffer of its own device, then the word: no synchronise in
 * between, so only the stream's order puts the data before the word. */
static aclError agent_write_then_value(void *p, size_t n, uint32_t seed, void *word,
                                       uint64_t val, aclError want)
{
    if (n == 0) {       /* the word only */
        aclError rc = XRC(aclrtValueWrite(word, val, 0, A.st), ACL_SUCCESS);
        return rc == ACL_SUCCESS ? XRC(aclrtSynchronizeStreamWithTimeout(A.st, SYNC_MS), want)
                                 : rc;
    }
    uint8_t *h = g_malloc(n);
    fill_pattern(h, n, seed);
    void *s = NULL;
    aclError rc = XRC(aclrtMalloc(&s, n, ACL_MEM_MALLOC_HUGE_FIRST), ACL_SUCCESS);
    if (rc == ACL_SUCCESS)
        rc = XRC(aclrtMemcpy(s, n, h, n, ACL_MEMCPY_HOST_TO_DEVICE), ACL_SUCCESS);
    if (rc == ACL_SUCCESS)
        rc = XRC(aclrtMemcpyAsync(p, n, s, n, ACL_MEMCPY_DEVICE_TO_DEVICE, A.st), ACL_SUCCESS);
    if (rc == ACL_SUCCESS)
        rc = XRC(aclrtValueWrite(word, val, 0, A.st), ACL_SUCCESS);
    if (rc == ACL_SUCCESS)
        rc = XRC(aclrtSynchronizeStreamWithTimeout(A.st, SYNC_MS), want);
    if (s)
        aclrtFree(s);
    g_free(h);
    return rc;
}

static void agent_do(const void *mv, void *rv)
{
    const Msg *m = mv;
    Msg *r = rv;
    int s = m->slot >= 0 && m->slot < NSLOT ? m->slot : 0;
    aclError want = m->want;
    switch (m->op) {
    case OP_INIT:
        r->rc = XRC(aclInit(NULL), ACL_SUCCESS);
        if (r->rc == ACL_SUCCESS)
            r->rc = XRC(aclrtSetDevice(m->dev), want);
        if (r->rc == ACL_SUCCESS)
            r->rc = XRC(aclrtCreateStream(&A.st), ACL_SUCCESS);
        A.dev = m->dev;
        r->pid = getpid();
        break;
    case OP_MALLOC:
        r->rc = XRC(aclrtMalloc(&A.mem[s], m->size, ACL_MEM_MALLOC_HUGE_FIRST), want);
        if (r->rc == ACL_SUCCESS) {
            uint8_t *h = g_malloc(m->size);
            fill_pattern(h, m->size, m->seed);
            r->rc = XRC(aclrtMemcpy(A.mem[s], m->size, h, m->size, ACL_MEMCPY_HOST_TO_DEVICE),
                        ACL_SUCCESS);
            g_free(h);
        }
        break;
    case OP_MEMKEY: {
        char key[96] = { 0 };
        r->rc = XRC(aclrtIpcMemGetExportKey(A.mem[s], m->size, key, 65, NO_PID), want);
        memcpy(r->key2, key, sizeof(key));
        break;
    }
    case OP_MEMIMPORT: {
        void *p = NULL;
        r->rc = XRC(aclrtIpcMemImportByKey(&p, m->key2, m->flags), want);
        if (r->rc == ACL_SUCCESS)
            A.mem[s] = p;
        break;
    }
    case OP_WORD: {
        uint64_t v = m->val;
        r->rc = XRC(aclrtMemcpy((uint8_t *)A.mem[s] + m->arg, 8, &v, 8,
                                ACL_MEMCPY_HOST_TO_DEVICE), want);
        break;
    }
    case OP_WAITCOPY:
        r->rc = XRC(aclrtValueWait((uint8_t *)A.mem[0] + m->arg, m->val, (uint32_t)m->flags,
                                   A.st), want);
        if (r->rc == ACL_SUCCESS && m->size)
            r->rc = XRC(aclrtMemcpyAsync(A.mem[1], m->size, A.mem[0], m->size,
                                         ACL_MEMCPY_DEVICE_TO_DEVICE, A.st),
                        ACL_SUCCESS);
        break;
    case OP_STATUS: {
        aclrtStreamStatus st = ACL_STREAM_STATUS_RESERVED;
        r->rc = XRC(aclrtStreamQuery(A.st, &st), want);
        r->val = st;
        uint8_t *h = g_malloc(m->size);
        if (XRC(aclrtMemcpy(h, m->size, A.mem[1], m->size, ACL_MEMCPY_DEVICE_TO_HOST),
                ACL_SUCCESS) == ACL_SUCCESS)
            r->sum = checksum(h, m->size);
        g_free(h);
        break;
    }
    case OP_VWRITE:
        r->rc = XRC(aclrtValueWrite((uint8_t *)A.mem[s] + m->arg, m->val, 0, A.st), want);
        if (r->rc == ACL_SUCCESS)
            r->rc = XRC(aclrtSynchronizeStreamWithTimeout(A.st, SYNC_MS), ACL_SUCCESS);
        break;
    case OP_WRITEV:
        r->rc = agent_write_then_value(A.mem[s], m->size, m->seed,
                                       (uint8_t *)A.mem[s] + m->arg, m->val, want);
        break;
    case OP_SYNC:
        r->rc = XRC(aclrtSynchronizeStreamWithTimeout(A.st, SYNC_MS), want);
        break;
    case OP_READ: {
        uint8_t *h = g_malloc(m->size);
        r->rc = XRC(aclrtMemcpy(h, m->size, A.mem[s], m->size, ACL_MEMCPY_DEVICE_TO_HOST), want);
        r->sum = r->rc == ACL_SUCCESS ? checksum(h, m->size) : 0;
        g_free(h);
        break;
    }
    case OP_HANG:
        break;
    default:
        r->rc = -1;
        break;
    }
}

/* The harness's loop around agent_do answers OP_EXIT itself and parks the
 * agent after OP_HANG. */
static const AgentDef g_agent = {
    .size = sizeof(Msg), .run = agent_do,
    .op_init = OP_INIT, .op_exit = OP_EXIT, .op_hang = OP_HANG,
};

/* ---- the parent's side ---- */

/* One command to agent a, checked against its want at the scenario's line. */
static Msg do_op(Agent *a, Msg m, const char *text, int line)
{
    Msg r;
    agent_do_op(a, &m, &r, sizeof(r), text, __FILE__, line);
    return r;
}

#define DO(p, want_, ...) do_op(&(p), (Msg){ .want = (want_), __VA_ARGS__ }, #__VA_ARGS__, __LINE__)

static Msg with_key(Msg m, const char *key2)
{
    g_strlcpy(m.key2, key2, sizeof(m.key2));
    return m;
}

#define DOM(p, want_, key_, ...) \
    do_op(&(p), with_key((Msg){ .want = (want_), __VA_ARGS__ }, (key_)), #__VA_ARGS__, __LINE__)

static Agent agent(const char *name, int dev)
{
    Agent p = agent_spawn(name, &g_agent, &g_emu, -1);
    DO(p, ACL_SUCCESS, .op = OP_INIT, .dev = dev);
    return p;
}

static bool emu_alive(void)
{
    return emu_running(&g_emu);
}

#define TEST(name) EMU_TEST(name, emu_alive)

/* ------------------------------------------------------------------------- */
/* arguments                                                                 */
/* ------------------------------------------------------------------------- */

static int g_not_a_stream;

TEST(test_bad_arguments)
{
    aclrtStream st = new_stream();
    aclrtStream dead = new_stream();
    EXPECT_OK(aclrtDestroyStream(dead));
    void *d = dev_alloc(4096);
    void *gone = dev_alloc(4096);
    EXPECT_OK(aclrtFree(gone));
    uint64_t *pageable = g_malloc0(64);
    void *pinned = NULL;
    EXPECT_OK(aclrtMallocHost(&pinned, 4096));
    word_set(d, 0);
    uint8_t *b = d;

    for (int wait = 0; wait < 2; wait++) {
        aclError (*fn)(void *, uint64_t, uint32_t, aclrtStream) =
            wait ? aclrtValueWait : aclrtValueWrite;
        /* NULL */
        EXPECT_ERR(fn(NULL, 0, 0, st), PARAM);
        EXPECT_ERR(fn(NULL, 0, 0, NULL), PARAM);
        /* not 8-byte aligned */
        EXPECT_ERR(fn(b + 1, 0, 0, st), PARAM);
        EXPECT_ERR(fn(b + 4, 0, 0, st), PARAM);
        EXPECT_ERR(fn(b + 7, 0, 0, NULL), PARAM);
        /* host memory: pageable, pinned */
        EXPECT_ERR(fn(pageable, 0, 0, st), PARAM);
        EXPECT_ERR(fn(&pageable[1], 0, 0, NULL), PARAM);
        if (pinned) {
            EXPECT_ERR(fn(pinned, 0, 0, st), PARAM);
            EXPECT_ERR(fn((uint8_t *)pinned + 8, 0, 0, NULL), PARAM);
        }
        /* freed device memory */
        EXPECT_ERR(fn(gone, 0, 0, st), PARAM);
        EXPECT_ERR(fn((uint8_t *)gone + 8, 0, 0, NULL), PARAM);
        /* bad streams: destroyed, not a stream at all */
        EXPECT_ERR(fn(d, 0, 0, dead), ACL_ERROR_RT_INVALID_HANDLE);
        EXPECT_ERR(fn(d, 0, 0, (aclrtStream)&g_not_a_stream), ACL_ERROR_RT_INVALID_HANDLE);
    }
    /* registered host memory (the host pages and their device address) and
     * managed memory are not device memory either */
    void *page = NULL, *reg = NULL, *managed = NULL;
    if (posix_memalign(&page, 4096, 4096) == 0 &&
        EXPECT_OK(aclrtHostRegister(page, 4096, ACL_HOST_REGISTER_MAPPED, &reg))) {
        for (int wait = 0; wait < 2; wait++) {
            EXPECT_ERR((wait ? aclrtValueWait : aclrtValueWrite)(page, 0, 0, st), PARAM);
            EXPECT_ERR((wait ? aclrtValueWait : aclrtValueWrite)(reg, 0, 0, st), PARAM);
        }
        EXPECT_OK(aclrtHostUnregister(page));
    }
    free(page);
    if (EXPECT_OK(aclrtMemAllocManaged(&managed, 2 * MiB, ACL_RT_MEM_ATTACH_GLOBAL))) {
        EXPECT_ERR(aclrtValueWrite(managed, 0, 0, st), PARAM);
        EXPECT_ERR(aclrtValueWait(managed, 0, GEQ, st), PARAM);
        EXPECT_OK(aclrtFree(managed));
    }
    /* flag: reserved for the write, a comparison for the wait */
    EXPECT_ERR(aclrtValueWrite(d, 1, 1, st), PARAM);
    EXPECT_ERR(aclrtValueWrite(d, 1, 2, st), PARAM);
    EXPECT_ERR(aclrtValueWrite(d, 1, 0x80000000u, NULL), PARAM);
    EXPECT_ERR(aclrtValueWrite(d, 1, UINT32_MAX, st), PARAM);
    EXPECT_ERR(aclrtValueWait(d, 1, 4, st), PARAM);
    EXPECT_ERR(aclrtValueWait(d, 1, 0x100, st), PARAM);
    EXPECT_ERR(aclrtValueWait(d, 1, UINT32_MAX, NULL), PARAM);
    EXPECT_OK(aclrtSynchronizeStream(st));
    /* Nothing refused reached the device: the word is still 0. */
    CHECKF(word_get(d) == 0, "a refused aclrtValueWrite wrote the word");
    /* The good calls on the same word and streams (NULL: the default stream). */
    EXPECT_OK(aclrtValueWrite(d, 9, 0, st));
    EXPECT_OK(aclrtValueWait(d, 9, EQ, st));
    EXPECT_OK(aclrtValueWrite(b + 8, 10, 0, NULL));
    EXPECT_OK(aclrtValueWait(b + 8, 10, EQ, NULL));
    EXPECT_OK(aclrtValueWait(b + 4088, 0, GEQ, NULL));  /* the last word of the block */
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(st, SYNC_MS));
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(NULL, SYNC_MS));
    CHECK(word_get(d) == 9);
    CHECK(word_get(b + 8) == 10);

    /* A stream of another device: the context's device does not match. */
    aclrtContext c1 = NULL;
    aclrtStream s1 = NULL;
    if (EXPECT_OK(aclrtCreateContext(&c1, 1))) {
        EXPECT_OK(aclrtCreateStream(&s1));
        EXPECT_OK(aclrtSetCurrentContext(g_ctx));
        EXPECT_ERR(aclrtValueWrite(d, 11, 0, s1), ACL_ERROR_RT_STREAM_CONTEXT);
        EXPECT_ERR(aclrtValueWait(d, 11, EQ, s1), ACL_ERROR_RT_STREAM_CONTEXT);
        EXPECT_OK(aclrtSetCurrentContext(c1));
        EXPECT_OK(aclrtDestroyStream(s1));
        EXPECT_OK(aclrtSetCurrentContext(g_ctx));
        EXPECT_OK(aclrtDestroyContext(c1));
    }
    CHECK(word_get(d) == 9);

    if (pinned)
        EXPECT_OK(aclrtFreeHost(pinned));
    g_free(pageable);
    EXPECT_OK(aclrtFree(d));
    EXPECT_OK(aclrtDestroyStream(st));
}

/* Before aclInit (a forked child, whose runtime starts uninitialised): both
 * calls fail with the code every other function gives then (aclrtMalloc's). */
static void uninit_child(void)
{
    alarm(30 * slow);
    uint64_t w = 0;
    void *d = NULL;
    aclError want = aclrtMalloc(&d, 8, ACL_MEM_MALLOC_HUGE_FIRST);
    CHECKF(want != ACL_SUCCESS, "aclrtMalloc worked before aclInit");
    drain_errors();
    CHECKF(aclrtValueWrite(&w, 1, 0, NULL) == want,
           "aclrtValueWrite before aclInit: not the code of aclrtMalloc (%d)", want);
    CHECKF(aclrtValueWait(&w, 1, 0, NULL) == want,
           "aclrtValueWait before aclInit: not the code of aclrtMalloc (%d)", want);
    drain_errors();
}

TEST(test_before_init)
{
    int pid = 0;
    int st = run_checked_child(uninit_child, &pid);
    CHECKF(st == 0, "child %d: status %d", pid, st);
}

/* ------------------------------------------------------------------------- */
/* the comparisons                                                           */
/* ------------------------------------------------------------------------- */

/* A wait that must block: the word holds `init`; the writes in `keep` (on
 * another stream) leave the condition false; `release` makes it true. */
typedef struct BlockCase {
    uint32_t cmp;
    uint64_t value, init;
    uint64_t keep[3];
    int nkeep;
    uint64_t release;
} BlockCase;

/* A wait whose condition already holds. */
typedef struct PassCase {
    uint32_t cmp;
    uint64_t value, word;
} PassCase;

static void run_block_case(Fix *f, const BlockCase *c)
{
    char what[160];
    snprintf(what, sizeof(what), "%s value 0x%" G_GINT64_MODIFIER "x, word 0x%"
             G_GINT64_MODIFIER "x", cmp_name(c->cmp), c->value, c->init);
    fix_queue(f, c->init, c->value, c->cmp);
    bool blocked = fix_still_blocked(f, what, __LINE__);
    for (int i = 0; blocked && i < c->nkeep; i++) {
        EXPECT_OK(aclrtValueWrite(f->word, c->keep[i], 0, f->sr));
        EXPECT_OK(aclrtSynchronizeStreamWithTimeout(f->sr, SYNC_MS));
        CHECKF(word_get(f->word) == c->keep[i], "%s: the value write did not land", what);
        char w2[220];
        snprintf(w2, sizeof(w2), "%s, after a write of 0x%" G_GINT64_MODIFIER "x", what,
                 c->keep[i]);
        blocked = fix_still_blocked(f, w2, __LINE__);
    }
    EXPECT_OK(aclrtValueWrite(f->word, c->release, 0, f->sr));
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(f->sr, SYNC_MS));
    char w3[220];
    snprintf(w3, sizeof(w3), "%s, released by 0x%" G_GINT64_MODIFIER "x", what, c->release);
    fix_check_copied(f, w3, __LINE__);
    /* The wait reads, it does not consume. */
    CHECKF(word_get(f->word) == c->release, "%s: the word changed after the wait", w3);
}

static void run_pass_case(Fix *f, const PassCase *c)
{
    char what[160];
    snprintf(what, sizeof(what), "%s value 0x%" G_GINT64_MODIFIER "x, word 0x%"
             G_GINT64_MODIFIER "x (already true)", cmp_name(c->cmp), c->value, c->word);
    fix_queue(f, c->word, c->value, c->cmp);
    fix_check_copied(f, what, __LINE__);
    CHECKF(word_get(f->word) == c->word, "%s: the word changed", what);
}

static void run_cases(const BlockCase *b, size_t nb, const PassCase *p, size_t np)
{
    Fix f = fix_new();
    for (size_t i = 0; i < nb; i++)
        run_block_case(&f, &b[i]);
    for (size_t i = 0; i < np; i++)
        run_pass_case(&f, &p[i]);
    fix_free(&f);
}

#define M1 UINT64_MAX
#define TOP 0x8000000000000000ull

/* (int64_t)(*devAddr - value) >= 0: a signed difference, which wraps. */
TEST(test_geq)
{
    static const BlockCase b[] = {
        { GEQ, 5, 0, { 4, 1 }, 2, 5 },
        /* 0xFF..FF - 5 = -6: below, although it is the largest unsigned word */
        { GEQ, 5, M1, { 0, 4, TOP + 5 }, 3, 6 },
        /* TOP - 1 - TOP = -1; 0 - TOP = TOP (negative) */
        { GEQ, TOP, TOP - 1, { 0, 1 }, 2, TOP },
        /* value 0xFF..F0 (-16): 0xFF..EF is below, 0 is above */
        { GEQ, M1 - 15, M1 - 16, { TOP, TOP + 1 }, 2, 0 },
    };
    static const PassCase p[] = {
        { GEQ, 5, 10 }, { GEQ, 5, 5 }, { GEQ, 0, 0 }, { GEQ, M1, M1 },
        { GEQ, M1 - 15, 3 },            /* 3 - (-16) = 19, though 3 < 0xFF..F0 unsigned */
        { GEQ, TOP + 1, 0 },            /* 0 - (TOP + 1) = TOP - 1 */
        { GEQ, 5, TOP + 4 },            /* TOP - 1 */
        { GEQ, M1, 0 },                 /* 0 - (-1) = 1 */
        { GEQ, M1, 1 },                 /* 1 satisfies GEQ 0xFF..FF */
    };
    run_cases(b, G_N_ELEMENTS(b), p, G_N_ELEMENTS(p));
}

TEST(test_eq)
{
    static const BlockCase b[] = {
        { EQ, 7, 0, { 6, 8, 7 | (1ull << 32) }, 3, 7 },
        { EQ, M1, 0, { M1 - 1, TOP }, 2, M1 },
        { EQ, 0, 1, { TOP, M1 }, 2, 0 },
    };
    static const PassCase p[] = {
        { EQ, 7, 7 }, { EQ, 0, 0 }, { EQ, M1, M1 }, { EQ, TOP, TOP },
    };
    run_cases(b, G_N_ELEMENTS(b), p, G_N_ELEMENTS(p));
}

TEST(test_and)
{
    static const BlockCase b[] = {
        { AND, 0x0f, 0xf0, { 0x10, M1 - 0x0f }, 2, 0x08 },
        { AND, TOP | 1, 0, { TOP - 2, 2 }, 2, TOP },
        /* value 0: (word & 0) is never != 0 ... */
        { AND, M1, 0, { 0 }, 1, 1ull << 40 },
    };
    static const PassCase p[] = {
        { AND, 1, TOP | 1 }, { AND, 2, 3 }, { AND, M1, TOP }, { AND, TOP, M1 },
    };
    run_cases(b, G_N_ELEMENTS(b), p, G_N_ELEMENTS(p));
}

/* ~(*devAddr | value) != 0: some bit clear in both. */
TEST(test_nor)
{
    static const BlockCase b[] = {
        { NOR, 0xffff0000ffff0000ull, 0x0000ffff0000ffffull, { M1, 0x0000ffff0000ffffull }, 2,
          0x0000ffff0000fffeull },
        { NOR, 0, M1, { M1 }, 1, M1 - TOP },
        { NOR, M1 - 1, 1, { 3, M1 }, 2, 0 },
    };
    static const PassCase p[] = {
        { NOR, 0, 0 }, { NOR, M1 - 1, M1 - 1 }, { NOR, TOP, TOP - 1 - 2 }, { NOR, M1 - TOP, 0 },
    };
    run_cases(b, G_N_ELEMENTS(b), p, G_N_ELEMENTS(p));
}

/* Several streams wait on one word with different conditions; each write
 * releases exactly the ones it makes true. */
TEST(test_several_waiters)
{
    enum { W = 3 };
    aclrtStream s[W], wr = new_stream();
    void *dst[W];
    void *word = dev_alloc(4096), *src = dev_alloc(N);
    static const uint32_t cmp[W] = { GEQ, EQ, AND };
    static const uint64_t val[W] = { 2, 3, 4 };
    word_set(word, 0);
    EXPECT_OK(aclrtMemset(src, N, 0x6b, N));
    for (int i = 0; i < W; i++) {
        s[i] = new_stream();
        dst[i] = dev_alloc(N);
        EXPECT_OK(aclrtMemset(dst[i], N, 0, N));
        EXPECT_OK(aclrtValueWait(word, val[i], cmp[i], s[i]));
        EXPECT_OK(aclrtMemcpyAsync(dst[i], N, src, N, ACL_MEMCPY_DEVICE_TO_DEVICE, s[i]));
    }
    /* 2 releases GEQ 2 only; 3 releases EQ 3 (GEQ still true); 4 releases AND 4 */
    for (int step = 0; step < W; step++) {
        EXPECT_OK(aclrtValueWrite(word, 2 + (uint64_t)step, 0, wr));
        EXPECT_OK(aclrtSynchronizeStreamWithTimeout(wr, SYNC_MS));
        if (sync_released(s[step], "one of several waiters", __LINE__))
            CHECKF(dev_is(dst[step], N, 0x6b), "waiter %d: its copy did not run", step);
        g_usleep(HOLD_MS * 1000);
        for (int j = step + 1; j < W; j++)
            CHECKF(query(s[j]) == ACL_STREAM_STATUS_NOT_READY && dev_is(dst[j], N, 0),
                   "waiter %d (%s %d) went on at word %d", j, cmp_name(cmp[j]), (int)val[j],
                   2 + step);
    }
    for (int i = 0; i < W; i++) {
        sync_released(s[i], "several waiters, end", __LINE__);
        EXPECT_OK(aclrtDestroyStream(s[i]));
        EXPECT_OK(aclrtFree(dst[i]));
    }
    EXPECT_OK(aclrtDestroyStream(wr));
    EXPECT_OK(aclrtFree(word));
    EXPECT_OK(aclrtFree(src));
}

/* Same stream: a write followed by a wait for it passes; the data a stream
 * writes before its value write is what the waiter's next task reads. */
TEST(test_ordering_by_data)
{
    const size_t big = 32 * MiB;
    aclrtStream sw = new_stream(), sr = new_stream();
    void *word = dev_alloc(4096), *data = dev_alloc(big), *copy = dev_alloc(big);
    word_set(word, 0);
    EXPECT_OK(aclrtMemset(data, big, 0x11, big));
    EXPECT_OK(aclrtMemset(copy, big, 0x00, big));
    /* the same stream */
    EXPECT_OK(aclrtValueWrite(word, 41, 0, sw));
    EXPECT_OK(aclrtValueWait(word, 41, EQ, sw));
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(sw, SYNC_MS));
    /* across streams: sr fills data (a large memset) and only then writes 42 */
    EXPECT_OK(aclrtValueWait(word, 42, EQ, sw));
    EXPECT_OK(aclrtMemcpyAsync(copy, big, data, big, ACL_MEMCPY_DEVICE_TO_DEVICE, sw));
    EXPECT_OK(aclrtMemsetAsync(data, big, 0x77, big, sr));
    EXPECT_OK(aclrtValueWrite(word, 42, 0, sr));
    if (sync_released(sw, "ordering", __LINE__))
        CHECKF(dev_is(copy, big, 0x77),
               "the copy after the wait did not see all of the memset queued before the write");
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(sr, SYNC_MS));
    EXPECT_OK(aclrtDestroyStream(sw));
    EXPECT_OK(aclrtDestroyStream(sr));
    EXPECT_OK(aclrtFree(word));
    EXPECT_OK(aclrtFree(data));
    EXPECT_OK(aclrtFree(copy));
}

/* ------------------------------------------------------------------------- */
/* other writers                                                             */
/* ------------------------------------------------------------------------- */

/* Released by the host: a synchronous aclrtMemcpy H2D of the word writes
 * through this process's mapping and tells nobody (the waiter's re-check finds
 * it); likewise a synchronous aclrtMemset.  And by engine tasks other than a
 * value write: aclrtMemsetAsync, aclrtMemcpyAsync. */
TEST(test_released_by_host_and_other_tasks)
{
    Fix f = fix_new();
    aclrtStream s3 = new_stream();
    void *eight = dev_alloc(4096);

    /* host copy H2D: first a value that leaves EQ 1234 false, then 1234 */
    fix_queue(&f, 0, 1234, EQ);
    fix_still_blocked(&f, "host copy", __LINE__);
    word_set(f.word, 1233);
    fix_still_blocked(&f, "host copy of 1233", __LINE__);
    word_set(f.word, 1234);
    fix_check_copied(&f, "released by aclrtMemcpy H2D", __LINE__);

    /* host memset: AND 0x80 released by bytes of 0x80 */
    fix_queue(&f, 0, 0x80, AND);
    fix_still_blocked(&f, "host memset", __LINE__);
    EXPECT_OK(aclrtMemset(f.word, 8, 0x7f, 8));
    fix_still_blocked(&f, "host memset of 0x7f", __LINE__);
    EXPECT_OK(aclrtMemset(f.word, 8, 0x80, 8));
    fix_check_copied(&f, "released by aclrtMemset", __LINE__);

    /* async memset on a third stream: EQ 0x0101010101010101 */
    fix_queue(&f, 0, 0x0101010101010101ull, EQ);
    fix_still_blocked(&f, "async memset", __LINE__);
    EXPECT_OK(aclrtMemsetAsync(f.word, 8, 0x01, 8, s3));
    fix_check_copied(&f, "released by aclrtMemsetAsync", __LINE__);
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(s3, SYNC_MS));

    /* async D2D copy of a word on a third stream: GEQ 100 */
    word_set(eight, 100);
    fix_queue(&f, 99, 100, GEQ);
    fix_still_blocked(&f, "async copy", __LINE__);
    EXPECT_OK(aclrtMemcpyAsync(f.word, 8, eight, 8, ACL_MEMCPY_DEVICE_TO_DEVICE, s3));
    fix_check_copied(&f, "released by aclrtMemcpyAsync D2D", __LINE__);
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(s3, SYNC_MS));

    /* the host clears the word for the next use (the developer guide's note) */
    EXPECT_OK(aclrtMemset(f.word, 8, 0, 8));
    CHECK(word_get(f.word) == 0);

    EXPECT_OK(aclrtFree(eight));
    EXPECT_OK(aclrtDestroyStream(s3));
    fix_free(&f);
}

/* ---- threads ---- */

typedef struct ThreadRun {
    void *word, *src, *dst;
    GAsyncQueue *queued;        /* A -> B: the wait is queued */
    /* results, checked by the main thread (CUnit is not thread-safe) */
    aclError a_err, a_sync, b_err;
    bool a_copied, b_saw_old, b_saw_incomplete;
    aclrtStream a_stream;
} ThreadRun;

static gpointer thread_a(gpointer arg)
{
    ThreadRun *t = arg;
    aclrtStream s = NULL;
    t->a_err = aclrtSetCurrentContext(g_ctx);
    if (t->a_err == ACL_SUCCESS)
        t->a_err = aclrtCreateStream(&s);
    t->a_stream = s;
    if (t->a_err == ACL_SUCCESS)
        t->a_err = aclrtValueWait(t->word, 77, EQ, s);
    if (t->a_err == ACL_SUCCESS)
        t->a_err = aclrtMemcpyAsync(t->dst, N, t->src, N, ACL_MEMCPY_DEVICE_TO_DEVICE, s);
    g_async_queue_push(t->queued, GINT_TO_POINTER(1));
    if (t->a_err != ACL_SUCCESS)
        return NULL;
    t->a_sync = aclrtSynchronizeStreamWithTimeout(s, SYNC_MS);
    if (t->a_sync != ACL_SUCCESS) {
        aclrtStreamAbort(s);
        aclrtSynchronizeStreamWithTimeout(s, SYNC_MS);
    }
    uint8_t *h = g_malloc(N);
    t->a_copied = aclrtMemcpy(h, N, t->dst, N, ACL_MEMCPY_DEVICE_TO_HOST) == ACL_SUCCESS &&
                  all_bytes(h, N, 0x3c);
    g_free(h);
    aclrtDestroyStream(s);
    drain_errors();
    return NULL;
}

static gpointer thread_b(gpointer arg)
{
    ThreadRun *t = arg;
    aclrtStream s = NULL;
    g_async_queue_timeout_pop(t->queued, 30 * G_USEC_PER_SEC);
    t->b_err = aclrtSetCurrentContext(g_ctx);
    if (t->b_err == ACL_SUCCESS)
        t->b_err = aclrtCreateStream(&s);
    g_usleep(HOLD_MS * 1000);
    uint8_t *h = g_malloc(N);
    t->b_saw_old = aclrtMemcpy(h, N, t->dst, N, ACL_MEMCPY_DEVICE_TO_HOST) == ACL_SUCCESS &&
                   all_bytes(h, N, 0);
    g_free(h);
    aclrtStreamStatus st = ACL_STREAM_STATUS_RESERVED;
    t->b_saw_incomplete = t->a_stream && aclrtStreamQuery(t->a_stream, &st) == ACL_SUCCESS &&
                          st == ACL_STREAM_STATUS_NOT_READY;
    /* first a value that leaves the condition false, then the one */
    if (t->b_err == ACL_SUCCESS)
        t->b_err = aclrtValueWrite(t->word, 76, 0, s);
    if (t->b_err == ACL_SUCCESS)
        t->b_err = aclrtValueWrite(t->word, 77, 0, s);
    if (t->b_err == ACL_SUCCESS)
        t->b_err = aclrtSynchronizeStreamWithTimeout(s, SYNC_MS);
    if (s)
        aclrtDestroyStream(s);
    drain_errors();
    return NULL;
}

TEST(test_across_threads)
{
    for (int round = 0; round < 3; round++) {
        ThreadRun t = { 0 };
        t.word = dev_alloc(4096);
        t.src = dev_alloc(N);
        t.dst = dev_alloc(N);
        t.queued = g_async_queue_new();
        word_set(t.word, 0);
        EXPECT_OK(aclrtMemset(t.src, N, 0x3c, N));
        EXPECT_OK(aclrtMemset(t.dst, N, 0, N));
        GThread *b = g_thread_new("value-b", thread_b, &t);
        GThread *a = g_thread_new("value-a", thread_a, &t);
        g_thread_join(a);
        g_thread_join(b);
        CHECKF(t.a_err == ACL_SUCCESS, "thread A: %d", t.a_err);
        CHECKF(t.b_err == ACL_SUCCESS, "thread B: %d", t.b_err);
        CHECKF(t.b_saw_old && t.b_saw_incomplete,
               "round %d: thread A's copy ran before thread B wrote the word", round);
        CHECKF(t.a_sync == ACL_SUCCESS, "round %d: thread A's synchronise: %d", round, t.a_sync);
        CHECKF(t.a_copied, "round %d: thread A's copy after the wait did not deliver", round);
        CHECK(word_get(t.word) == 77);
        g_async_queue_unref(t.queued);
        EXPECT_OK(aclrtFree(t.word));
        EXPECT_OK(aclrtFree(t.src));
        EXPECT_OK(aclrtFree(t.dst));
    }
}

/* Memory of another device: without peer access the submission is accepted
 * and the task fails with ACL_ERROR_RT_SYS_DMA at synchronise (as an async
 * copy does), the wait included (it does not hang); with peer access both
 * work. */
TEST(test_other_device_memory)
{
    aclrtContext c1 = NULL;
    void *w1 = NULL;
    if (!EXPECT_OK(aclrtCreateContext(&c1, 1)))
        return;
    EXPECT_OK(aclrtMalloc(&w1, 4096, ACL_MEM_MALLOC_HUGE_FIRST));
    word_set(w1, 3);
    EXPECT_OK(aclrtSetCurrentContext(g_ctx));
    Fix f = fix_new();
    EXPECT_OK(aclrtValueWrite(w1, 4, 0, f.sr));
    EXPECT_ERR(aclrtSynchronizeStreamWithTimeout(f.sr, SYNC_MS), ACL_ERROR_RT_SYS_DMA);
    EXPECT_OK(aclrtValueWait(w1, 4, EQ, f.sw));
    EXPECT_OK(aclrtMemsetAsync(f.dst, N, 0x31, N, f.sw));
    EXPECT_ERR(aclrtSynchronizeStreamWithTimeout(f.sw, SYNC_MS), ACL_ERROR_RT_SYS_DMA);
    CHECKF(dev_is(f.dst, N, 0x31), "the task after the failed wait did not run");
    EXPECT_OK(aclrtSetCurrentContext(c1));
    CHECKF(word_get(w1) == 3, "a value write without peer access changed the word");
    EXPECT_OK(aclrtSetCurrentContext(g_ctx));
    /* with peer access 0 -> 1 */
    EXPECT_OK(aclrtDeviceEnablePeerAccess(1, 0));
    void *keep = f.word;
    f.word = w1;
    fix_queue(&f, 3, 4, EQ);
    fix_still_blocked(&f, "a word of device 1", __LINE__);
    EXPECT_OK(aclrtValueWrite(w1, 4, 0, f.sr));
    fix_check_copied(&f, "a word of device 1, released", __LINE__);
    f.word = keep;
    EXPECT_OK(aclrtDeviceDisablePeerAccess(1));
    fix_free(&f);
    EXPECT_OK(aclrtSetCurrentContext(c1));
    EXPECT_OK(aclrtFree(w1));
    EXPECT_OK(aclrtSetCurrentContext(g_ctx));
    EXPECT_OK(aclrtDestroyContext(c1));
}

/* ------------------------------------------------------------------------- */
/* virtual memory                                                            */
/* ------------------------------------------------------------------------- */

TEST(test_vmm)
{
    aclrtPhysicalMemProp prop;
    memset(&prop, 0, sizeof(prop));
    prop.handleType = ACL_MEM_HANDLE_TYPE_NONE;
    prop.allocationType = ACL_MEM_ALLOCATION_TYPE_PINNED;
    prop.memAttr = ACL_HBM_MEM_HUGE;
    prop.location.type = ACL_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = 0;
    aclrtDrvMemHandle h = NULL;
    void *va = NULL;
    if (!EXPECT_OK(aclrtMallocPhysical(&h, 2 * MiB, &prop, 0)))
        return;
    /* 4 MiB reserved, the first 2 MiB mapped */
    EXPECT_OK(aclrtReserveMemAddress(&va, 4 * MiB, 0, NULL, 0));
    EXPECT_OK(aclrtMapMem(va, 2 * MiB, 0, h, 0));
    uint8_t *v = va;
    void *w = v + 2 * MiB - 8;          /* the last word of the mapping */

    /* A wait on mapped memory, released by a value write on another stream. */
    Fix f = fix_new();
    void *fword = f.word;
    f.word = w;
    fix_queue(&f, 0, 3, GEQ);
    fix_still_blocked(&f, "VMM word", __LINE__);
    EXPECT_OK(aclrtValueWrite(w, 2, 0, f.sr));
    fix_still_blocked(&f, "VMM word after 2", __LINE__);
    EXPECT_OK(aclrtValueWrite(w, 3, 0, f.sr));
    fix_check_copied(&f, "VMM word, released", __LINE__);
    CHECK(word_get(w) == 3);
    /* the host writes through the same mapping */
    fix_queue(&f, 0, 5, EQ);
    fix_still_blocked(&f, "VMM word, host", __LINE__);
    word_set(w, 5);
    fix_check_copied(&f, "VMM word, released by the host", __LINE__);

    /* The unmapped page of the reservation is refused at submission. */
    EXPECT_ERR(aclrtValueWrite(v + 2 * MiB, 1, 0, f.sr), PARAM);
    EXPECT_ERR(aclrtValueWait(v + 2 * MiB, 1, GEQ, f.sr), PARAM);
    EXPECT_ERR(aclrtValueWait(v + 4 * MiB - 8, 1, GEQ, NULL), PARAM);

    /* Queued while mapped, run after aclrtUnmapMem: the device finds the page
     * gone and the task fails with ACL_ERROR_RT_SYS_DMA at synchronise.  The
     * wait is blocked when the page goes; the write waits behind a gate. */
    word_set(w, 0);
    word_set(fword, 0);
    EXPECT_OK(aclrtMemset(f.dst, N, 0, N));
    EXPECT_OK(aclrtValueWait(w, 1, EQ, f.sw));
    EXPECT_OK(aclrtMemsetAsync(f.dst, N, 0x21, N, f.sw));
    EXPECT_OK(aclrtValueWait(fword, 1, EQ, f.sr));      /* the gate */
    EXPECT_OK(aclrtValueWrite(w, 1, 0, f.sr));
    EXPECT_OK(aclrtMemsetAsync(f.src, N, 0x22, N, f.sr));
    g_usleep(HOLD_MS * 1000);
    CHECK(query(f.sw) == ACL_STREAM_STATUS_NOT_READY);
    EXPECT_OK(aclrtUnmapMem(va));
    EXPECT_ERR(aclrtSynchronizeStreamWithTimeout(f.sw, SYNC_MS), ACL_ERROR_RT_SYS_DMA);
    drain_errors();
    /* continue on failure: the task after the failed wait ran */
    CHECKF(dev_is(f.dst, N, 0x21), "the task after the failed wait did not run");
    word_set(fword, 1);
    EXPECT_ERR(aclrtSynchronizeStreamWithTimeout(f.sr, SYNC_MS), ACL_ERROR_RT_SYS_DMA);
    drain_errors();
    CHECKF(dev_is(f.src, N, 0x22), "the task after the failed write did not run");
    /* the errors were consumed; the streams work */
    EXPECT_OK(aclrtSynchronizeStream(f.sw));
    EXPECT_OK(aclrtSynchronizeStream(f.sr));
    EXPECT_ERR(aclrtValueWrite(w, 1, 0, f.sr), PARAM);

    /* mapped again: the old contents are the handle's */
    EXPECT_OK(aclrtMapMem(va, 2 * MiB, 0, h, 0));
    CHECKF(word_get(w) == 0, "the word of the handle is %" G_GINT64_MODIFIER "x after remapping "
                             "(the failed write must not have landed)",
           word_get(w));
    EXPECT_OK(aclrtValueWrite(w, 6, 0, f.sr));
    EXPECT_OK(aclrtValueWait(w, 6, EQ, f.sw));
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(f.sr, SYNC_MS));
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(f.sw, SYNC_MS));
    EXPECT_OK(aclrtUnmapMem(va));

    f.word = fword;
    fix_free(&f);
    EXPECT_OK(aclrtReleaseMemAddress(va));
    EXPECT_OK(aclrtFreePhysical(h));
}

/* ------------------------------------------------------------------------- */
/* waits that never end                                                      */
/* ------------------------------------------------------------------------- */

/* NOR with value 0xFF..FF can never be true: ~(x | 0xFF..FF) == 0. */
TEST(test_never_satisfied_blocks_only_its_stream)
{
    Fix f = fix_new();
    aclrtStream other = new_stream();
    void *w2 = dev_alloc(4096), *d2 = dev_alloc(N);
    fix_queue(&f, 0, M1, NOR);
    /* other streams run on: copies, value writes, waits already true */
    word_set(w2, 0);
    for (int i = 0; i < 20; i++) {
        EXPECT_OK(aclrtMemsetAsync(d2, N, (uint8_t)i, N, other));
        EXPECT_OK(aclrtValueWrite(w2, (uint64_t)i, 0, other));
        EXPECT_OK(aclrtValueWait(w2, (uint64_t)i, EQ, other));
        EXPECT_OK(aclrtValueWrite(f.word, M1 - (uint64_t)i * 0x10000, 0, f.sr));
    }
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(other, SYNC_MS));
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(f.sr, SYNC_MS));
    CHECK(dev_is(d2, N, 19));
    CHECK(word_get(w2) == 19);
    /* the default stream too */
    EXPECT_OK(aclrtMemsetAsync(d2, N, 0x44, N, NULL));
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(NULL, SYNC_MS));
    CHECK(dev_is(d2, N, 0x44));
    /* every write left it false */
    fix_still_blocked(&f, "NOR 0xFF..FF", __LINE__);
    EXPECT_ERR(aclrtSynchronizeStreamWithTimeout(f.sw, 50), ACL_ERROR_RT_STREAM_SYNC_TIMEOUT);
    /* abort: the wait and the copy behind it go, once reported */
    int64_t t0 = clock_ms();
    EXPECT_OK(aclrtStreamAbort(f.sw));
    int64_t dt = clock_ms() - t0;
    CHECKF(dt < 2000 * (int64_t)slow, "aclrtStreamAbort of a waiting stream took %lld ms",
           (long long)dt);
    CHECK(query(f.sw) == ACL_STREAM_STATUS_COMPLETE);
    EXPECT_ERR(aclrtSynchronizeStreamWithTimeout(f.sw, SYNC_MS), ACL_ERROR_RT_STREAM_ABORT);
    CHECKF(dev_is(f.dst, N, f.old), "the copy behind the aborted wait ran");
    EXPECT_OK(aclrtSynchronizeStream(f.sw));
    /* the stream works again, the same word included */
    fix_queue(&f, 0, 0, NOR);
    fix_check_copied(&f, "after the abort", __LINE__);
    EXPECT_OK(aclrtDestroyStream(other));
    EXPECT_OK(aclrtFree(w2));
    EXPECT_OK(aclrtFree(d2));
    fix_free(&f);
}

/* Memory freed while a wait is blocked on it: the device finds the word gone,
 * the task fails with ACL_ERROR_RT_SYS_DMA (no hang), the next task runs. */
TEST(test_freed_while_waited_on)
{
    Fix f = fix_new();
    void *w = dev_alloc(4096);
    word_set(w, 0);
    EXPECT_OK(aclrtMemset(f.dst, N, 0, N));
    EXPECT_OK(aclrtValueWait(w, 1, EQ, f.sw));
    EXPECT_OK(aclrtMemsetAsync(f.dst, N, 0x41, N, f.sw));
    g_usleep(HOLD_MS * 1000);
    CHECK(query(f.sw) == ACL_STREAM_STATUS_NOT_READY && dev_is(f.dst, N, 0));
    EXPECT_OK(aclrtFree(w));
    EXPECT_ERR(aclrtSynchronizeStreamWithTimeout(f.sw, SYNC_MS), ACL_ERROR_RT_SYS_DMA);
    CHECKF(dev_is(f.dst, N, 0x41), "the task after the failed wait did not run");
    EXPECT_OK(aclrtSynchronizeStream(f.sw));
    EXPECT_ERR(aclrtValueWait(w, 1, EQ, f.sw), PARAM);
    fix_free(&f);
}

/* aclrtStreamStop interrupts the waiting task only: it fails with 107023 at
 * the next synchronise, the tasks queued behind it run. */
TEST(test_stop_while_waiting)
{
    Fix f = fix_new();
    fix_queue(&f, 0, 1, EQ);
    fix_still_blocked(&f, "before aclrtStreamStop", __LINE__);
    EXPECT_OK(aclrtStreamStop(f.sw));
    EXPECT_ERR(aclrtSynchronizeStreamWithTimeout(f.sw, SYNC_MS), ACL_ERROR_RT_STREAM_ABORT);
    CHECKF(dev_is(f.dst, N, f.fresh), "the copy behind the stopped wait did not run");
    CHECK(word_get(f.word) == 0);
    EXPECT_OK(aclrtSynchronizeStream(f.sw));
    /* the next wait on the stream blocks as any */
    fix_queue(&f, 0, 1, EQ);
    fix_still_blocked(&f, "after aclrtStreamStop", __LINE__);
    EXPECT_OK(aclrtValueWrite(f.word, 1, 0, f.sr));
    fix_check_copied(&f, "after aclrtStreamStop, released", __LINE__);
    fix_free(&f);
}

/* In children: a hang is the child's alarm, not the test program's. */
static void force_destroy_child(void)
{
    alarm(30 * slow);
    if (!EXPECT_OK(aclInit(NULL)) || !EXPECT_OK(aclrtSetDevice(0)))
        return;
    aclrtStream s = NULL, s2 = NULL;
    void *w = NULL, *d = NULL;
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtMalloc(&w, 4096, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMalloc(&d, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMemset(w, 8, 0, 8));
    EXPECT_OK(aclrtMemset(d, N, 0, N));
    EXPECT_OK(aclrtValueWait(w, 1, EQ, s));
    for (int i = 0; i < 4; i++)
        EXPECT_OK(aclrtMemsetAsync(d, N, 1, N, s));
    g_usleep(HOLD_MS * 1000);
    int64_t t0 = clock_ms();
    EXPECT_OK(aclrtDestroyStreamForce(s));
    int64_t dt = clock_ms() - t0;
    CHECKF(dt < 2000 * (int64_t)slow, "aclrtDestroyStreamForce of a waiting stream took %lld ms",
           (long long)dt);
    uint8_t *h = g_malloc(N);
    EXPECT_OK(aclrtMemcpy(h, N, d, N, ACL_MEMCPY_DEVICE_TO_HOST));
    CHECKF(all_bytes(h, N, 0), "a task behind the forcibly destroyed wait ran");
    g_free(h);
    /* the word and the device work on */
    EXPECT_OK(aclrtCreateStream(&s2));
    EXPECT_OK(aclrtValueWrite(w, 1, 0, s2));
    EXPECT_OK(aclrtValueWait(w, 1, EQ, s2));
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(s2, SYNC_MS));
    /* once more with nothing queued behind the wait.  (Not left to aclFinalize:
     * a reset waits for the device's tasks, as the reference says, so a wait
     * that never ends would hold it as a notify wait would.) */
    EXPECT_OK(aclrtValueWait(w, 2, EQ, s2));
    g_usleep(HOLD_MS * 1000);
    t0 = clock_ms();
    EXPECT_OK(aclrtDestroyStreamForce(s2));
    dt = clock_ms() - t0;
    CHECKF(dt < 2000 * (int64_t)slow, "aclrtDestroyStreamForce of a waiting stream took %lld ms",
           (long long)dt);
    EXPECT_OK(aclrtFree(w));
    EXPECT_OK(aclrtFree(d));
    EXPECT_OK(aclFinalize());
}

TEST(test_destroy_stream_force_while_waiting)
{
    int pid = 0;
    int st = run_checked_child(force_destroy_child, &pid);
    CHECKF(st == 0, "child %d: status %d (failed checks; 142 = alarm: a hang)", pid, st);
}

static void abort_child(void)
{
    alarm(30 * slow);
    if (!EXPECT_OK(aclInit(NULL)) || !EXPECT_OK(aclrtSetDevice(0)))
        return;
    void *w = NULL, *d = NULL;
    EXPECT_OK(aclrtMalloc(&w, 4096, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMalloc(&d, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMemset(w, 8, 0, 8));
    EXPECT_OK(aclrtMemset(d, N, 0, N));
    /* the default stream, waiting for ever */
    EXPECT_OK(aclrtValueWait(w, 1, GEQ, NULL));
    EXPECT_OK(aclrtMemsetAsync(d, N, 9, N, NULL));
    g_usleep(HOLD_MS * 1000);
    int64_t t0 = clock_ms();
    EXPECT_OK(aclrtStreamAbort(NULL));
    int64_t dt = clock_ms() - t0;
    CHECKF(dt < 2000 * (int64_t)slow, "aclrtStreamAbort of a waiting stream took %lld ms",
           (long long)dt);
    EXPECT_ERR(aclrtSynchronizeStream(NULL), ACL_ERROR_RT_STREAM_ABORT);
    uint8_t *h = g_malloc(N);
    EXPECT_OK(aclrtMemcpy(h, N, d, N, ACL_MEMCPY_DEVICE_TO_HOST));
    CHECKF(all_bytes(h, N, 0), "a task behind the aborted wait ran");
    g_free(h);
    EXPECT_OK(aclrtSynchronizeStream(NULL));
    EXPECT_OK(aclrtFree(w));
    EXPECT_OK(aclrtFree(d));
    EXPECT_OK(aclFinalize());
}

TEST(test_abort_while_waiting)
{
    int pid = 0;
    int st = run_checked_child(abort_child, &pid);
    CHECKF(st == 0, "child %d: status %d (failed checks; 142 = alarm: a hang)", pid, st);
}

/* ------------------------------------------------------------------------- */
/* processes                                                                 */
/* ------------------------------------------------------------------------- */

/* One round: A waits (cmp, val) on the word at HALF of its shared buffer and
 * then copies the data half into mem[1]; the copy has not run while the
 * condition is false (also after a write of `keep` by the importer); then the
 * importer fills the data half with `seed` and writes `val` behind it on the
 * same stream.  A's copy must hold the importer's data. */
static void flow_round(Agent *a, Agent *b, uint32_t cmp, uint64_t val, uint64_t keep, uint32_t seed,
                       int line)
{
    Msg before = do_op(a, (Msg){ .op = OP_READ, .slot = 1, .size = HALF }, "read before", line);
    do_op(a, (Msg){ .op = OP_WAITCOPY, .arg = HALF, .val = val, .flags = cmp, .size = HALF },
          "wait + copy", line);
    for (int i = 0; i < 2; i++) {
        if (i == 1)
            do_op(b, (Msg){ .op = OP_VWRITE, .slot = 0, .arg = HALF, .val = keep },
                  "a write that leaves the condition false", line);
        g_usleep(HOLD_MS * 1000);
        Msg st = do_op(a, (Msg){ .op = OP_STATUS, .size = HALF }, "status", line);
        check_impl(st.val == ACL_STREAM_STATUS_NOT_READY && st.sum == before.sum, __FILE__, line,
                   "scenario", "A's copy behind the wait ran before the importer's write (%s)",
                   i ? "after a write that keeps the condition false" : "nothing written");
    }
    do_op(b, (Msg){ .op = OP_WRITEV, .slot = 0, .size = HALF, .seed = seed, .arg = HALF,
                    .val = val }, "data, then the word", line);
    do_op(a, (Msg){ .op = OP_SYNC }, "sync", line);
    Msg r = do_op(a, (Msg){ .op = OP_READ, .slot = 1, .size = HALF }, "read", line);
    check_impl(r.sum == pattern_sum(HALF, seed), __FILE__, line, "scenario",
               "A's task after the wait did not see the importer's data (seed %u)", seed);
}

#define FLOW(a, b, cmp, val, keep, seed) \
    flow_round(&(a), &(b), (cmp), (val), (keep), (seed), __LINE__)

/* A on device 0: mem[0] shared (exported by key, no pid validation), the word
 * at HALF = 0; mem[1] its own. */
static Agent exporter(uint32_t seed, Msg *mk)
{
    Agent a = agent("A", 0);
    DO(a, 0, .op = OP_MALLOC, .slot = 0, .size = SZ, .seed = seed);
    DO(a, 0, .op = OP_MALLOC, .slot = 1, .size = SZ, .seed = seed + 1);
    DO(a, 0, .op = OP_WORD, .slot = 0, .arg = HALF, .val = 0);
    *mk = DO(a, 0, .op = OP_MEMKEY, .slot = 0, .size = SZ);
    return a;
}

TEST(test_two_processes_same_device)
{
    Msg mk;
    Agent a = exporter(300, &mk);
    Agent b = agent("B", 0);
    DOM(b, 0, mk.key2, .op = OP_MEMIMPORT, .slot = 0);
    FLOW(a, b, GEQ, 1, 0, 301);            /* a sequence counter: 0 -> 1 */
    FLOW(a, b, GEQ, 2, 1, 302);
    FLOW(a, b, EQ, 0x1234, 0x1235, 303);
    FLOW(a, b, AND, 0x100, 0xff, 304);
    FLOW(a, b, NOR, M1 - 0x100, M1, 305);  /* released by M1 - 0x100 (bit 8 clear in both) */
    /* the importer's write is seen by the exporter's host reads too */
    DO(b, 0, .op = OP_VWRITE, .slot = 0, .arg = HALF, .val = 0xabcdef);
    DO(a, 0, .op = OP_WAITCOPY, .arg = HALF, .val = 0xabcdef, .flags = EQ, .size = HALF);
    DO(a, 0, .op = OP_SYNC);
    /* the importer's checks: the exporter's buffer, unaligned, flags */
    DO(b, PARAM, .op = OP_VWRITE, .slot = 0, .arg = HALF + 4, .val = 1);
    AGENT_FINISH(b);
    AGENT_FINISH(a);
}

TEST(test_two_processes_two_devices)
{
    Msg mk;
    Agent a = exporter(310, &mk);
    Agent c = agent("C", 1);
    /* device 1 without the import flag: no peer access, the write fails on
     * the device and the word keeps its value */
    Agent d = agent("D", 1);
    DOM(d, 0, mk.key2, .op = OP_MEMIMPORT, .slot = 0, .flags = 0);
    DO(a, 0, .op = OP_WORD, .slot = 0, .arg = HALF, .val = 6);
    DO(d, ACL_ERROR_RT_SYS_DMA, .op = OP_WRITEV, .slot = 0, .size = 0, .arg = HALF, .val = 99);
    DO(a, 0, .op = OP_WAITCOPY, .arg = HALF, .val = 6, .flags = EQ, .size = HALF);
    DO(a, 0, .op = OP_SYNC);
    AGENT_FINISH(d);
    /* device 1, the import flag that gives the peer access */
    DOM(c, 0, mk.key2, .op = OP_MEMIMPORT, .slot = 0, .flags = PEER_FLAG);
    FLOW(a, c, GEQ, 7, 6, 311);
    FLOW(a, c, EQ, 8, 9, 312);
    /* a same-device importer too, alternating with C */
    Agent b = agent("B", 0);
    DOM(b, 0, mk.key2, .op = OP_MEMIMPORT, .slot = 0);
    FLOW(a, b, GEQ, 10, 9, 313);
    FLOW(a, c, GEQ, 11, 10, 314);
    AGENT_FINISH(b);
    AGENT_FINISH(c);
    AGENT_FINISH(a);
}

/* The waiting process dies with its stream blocked: the emulator reclaims it
 * (the wait does not keep the stream's worker for ever) and the importer's
 * writes go on. */
TEST(test_waiter_dies)
{
    Msg mk;
    Agent a = exporter(320, &mk);
    Agent b = agent("B", 0);
    DOM(b, 0, mk.key2, .op = OP_MEMIMPORT, .slot = 0);
    DO(a, 0, .op = OP_WAITCOPY, .arg = HALF, .val = M1, .flags = NOR, .size = HALF);
    DO(a, 0, .op = OP_HANG);
    AGENT_KILL(a, &g_emu, NULL);
    DO(b, 0, .op = OP_VWRITE, .slot = 0, .arg = HALF, .val = 5);
    AGENT_FINISH(b);
}

/* ---- main ---- */

int main(void)
{
    static const TestCase tests[] = {
        T(test_bad_arguments), T(test_before_init), T(test_geq), T(test_eq), T(test_and),
        T(test_nor), T(test_several_waiters), T(test_ordering_by_data),
        T(test_released_by_host_and_other_tasks), T(test_across_threads), T(test_other_device_memory), T(test_vmm),
        T(test_never_satisfied_blocks_only_its_stream), T(test_freed_while_waited_on),
        T(test_stop_while_waiting), T(test_destroy_stream_force_while_waiting),
        T(test_abort_while_waiting), T(test_two_processes_same_device),
        T(test_two_processes_two_devices), T(test_waiter_dies),
    };
    static const TestProgram prog = {
        .name = "test_value", .emus = { EMU(&g_emu, "a2") },
        .suites = { SUITE("stream memory operations", NULL, NULL, tests) },
        .devices = DEV(0), .reset = DEV(1) | DEV(0), .ctx = &g_ctx, .only_env = "VALUE_ONLY",
    };
    return test_main(&prog);
}
