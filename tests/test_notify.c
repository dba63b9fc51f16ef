/*
 * test_notify.c - integration tests of notifies (chapter 08: aclrtCreateNotify,
 * aclrtDestroyNotify, aclrtRecordNotify, aclrtWaitAndResetNotify,
 * aclrtGetNotifyId, aclrtNotifyBatchReset, aclrtNotifyGetExportKey,
 * aclrtNotifySetImportPid, aclrtNotifySetImportPidInterServer,
 * aclrtNotifyImportByKey) against a real npu-emu, with real processes.
 *
 * Concepts:
 *  - Two emulators: a2 (8 devices; this process is its client, on device 0)
 *    and a3 with two servers (--servers 2) for the inter-server whitelist.
 *  - The single-process tests run in this process: argument checks with the
 *    exact codes (acl_check.h), ids, two streams synchronised by a notify, the
 *    reset semantics, the per-device limit, aclrtResetDevice.
 *  - Ordering is checked by data, never by the clock: a stream waits on a
 *    notify and then copies a buffer that the other side fills only after a
 *    delay, just before it records; a wait that did not block copies the old
 *    bytes.
 *  - The multi-process tests use "agents" (harness.h): forked children that
 *    call aclInit themselves and execute the commands (Msg) the parent sends
 *    over a pipe, each answered with its return code.  A scenario is a script
 *    in the parent (DO(proc, expected code, fields...)), so the order of
 *    steps across processes is exactly the one written.  Agents check every
 *    API result against the expected code (code, last error, message); the
 *    failure count is the exit status.  Every wait is bounded (alarm(),
 *    poll() deadlines, killed agents, notify waits with a timeout).
 *  - NOTIFY_ONLY=word runs only the tests whose name contains it.
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
#define A3_DEVS 16          /* devices per a3 server: sdid = server * 16 + device */
#define NOTIFY_MAX 8192     /* per device, A2 / A3 */
#define SZ (2 * MiB)

#define PARAM ACL_ERROR_RT_PARAM_INVALID
#define TIMEOUT ACL_ERROR_RT_WAIT_TIMEOUT
#define NO_PID ACL_RT_NOTIFY_EXPORT_FLAG_DISABLE_PID_VALIDATION
#define PEER_FLAG ACL_RT_NOTIFY_IMPORT_FLAG_ENABLE_PEER_ACCESS

static const unsigned slow = TEST_SLOW;

static TestEmu g_emu;       /* a2: this process and most agents */
static TestEmu g_emu3;      /* a3, two servers */
static bool g_emu3_ok;

static uint64_t pattern_sum(size_t n, uint32_t seed)
{
    uint8_t *b = g_malloc(n);
    fill_pattern(b, n, seed);
    uint64_t s = checksum(b, n);
    g_free(b);
    return s;
}

/* ------------------------------------------------------------------------- */
/* the command channel                                                       */
/* ------------------------------------------------------------------------- */

enum Op {
    OP_INIT = 1,    /* aclInit, aclrtSetDevice(dev), a stream; pid = aclrtDeviceGetBareTgid */
    OP_MALLOC,      /* mem[slot] = aclrtMalloc(size), pattern seed */
    OP_MEMKEY,      /* key2 = aclrtIpcMemGetExportKey(mem[slot], size, no pid validation) */
    OP_MEMIMPORT,   /* mem[slot] = aclrtIpcMemImportByKey(key2, flags) */
    OP_NCREATE,     /* n[ns] = aclrtCreateNotify; val = its id */
    OP_NKEY,        /* key = aclrtNotifyGetExportKey(n[ns], 65, flags) */
    OP_NSETPID,     /* aclrtNotifySetImportPid(n[ns], {pid}) */
    OP_NINTER,      /* aclrtNotifySetImportPidInterServer(n[ns], {sdid arg, {pid}}) */
    OP_NIMPORT,     /* n[ns] = aclrtNotifyImportByKey(key, flags); val = its id */
    OP_NDESTROY,    /* aclrtDestroyNotify(n[ns]) */
    OP_WAITCOPY,    /* aclrtWaitAndResetNotify(n[ns], stream, arg); then, with size,
                     * an async copy mem[1] <- mem[0] of size bytes on the stream */
    OP_RECORD,      /* aclrtRecordNotify(n[ns], stream) + aclrtSynchronizeStream */
    OP_SYNC,        /* aclrtSynchronizeStream(stream): want is the code */
    OP_READ,        /* sum = checksum of mem[slot], size bytes (sync D2H) */
    OP_WRITE,       /* after arg ms: pattern seed into mem[slot] (async D2D on the stream) */
    OP_PEER,        /* aclrtDeviceEnablePeerAccess(dev, 0) */
    OP_HANG,        /* answer, then wait to be killed */
    OP_EXIT,        /* aclFinalize, exit with the failure count */
};

typedef struct Msg {
    AGENT_MSG_HEAD;
    int32_t slot, ns, dev, pid;
    uint32_t seed;
    uint64_t size, flags, arg, val, sum;
    char key[96];           /* a notify key */
    char key2[96];          /* a memory key */
} Msg;

/* ------------------------------------------------------------------------- */
/* the agent (child side)                                                    */
/* ------------------------------------------------------------------------- */

#define NSLOT 4

static struct {
    int32_t dev;
    aclrtStream st;
    void *mem[NSLOT];
    aclrtNotify n[NSLOT];
} A;

/* A direct API result, checked against want in full (harness.h). */
#define XRC(call, want) agent_expect((call), (want), #call, __FILE__, __LINE__)

/* Pattern seed into n bytes at p: host -> own scratch (sync), then an async
 * D2D copy on the agent's stream (memory of another device, with peer access,
 * takes only that), synchronised. */
static aclError agent_write(void *p, size_t n, uint32_t seed)
{
    uint8_t *h = g_malloc(n);
    fill_pattern(h, n, seed);
    void *s = NULL;
    aclError rc = aclrtMalloc(&s, n, ACL_MEM_MALLOC_HUGE_FIRST);
    if (rc == ACL_SUCCESS)
        rc = aclrtMemcpy(s, n, h, n, ACL_MEMCPY_HOST_TO_DEVICE);
    if (rc == ACL_SUCCESS)
        rc = aclrtMemcpyAsync(p, n, s, n, ACL_MEMCPY_DEVICE_TO_DEVICE, A.st);
    if (rc == ACL_SUCCESS)
        rc = aclrtSynchronizeStream(A.st);
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
    int ns = m->ns >= 0 && m->ns < NSLOT ? m->ns : 0;
    aclError want = m->want;
    switch (m->op) {
    case OP_INIT:
        r->rc = XRC(aclInit(NULL), ACL_SUCCESS);
        if (r->rc == ACL_SUCCESS)
            r->rc = XRC(aclrtSetDevice(m->dev), want);
        if (r->rc == ACL_SUCCESS)
            r->rc = XRC(aclrtCreateStream(&A.st), ACL_SUCCESS);
        if (r->rc == ACL_SUCCESS) {
            A.dev = m->dev;
            r->rc = XRC(aclrtDeviceGetBareTgid(&r->pid), ACL_SUCCESS);
            CHECKF(r->pid == getpid(), "aclrtDeviceGetBareTgid gave %d, the pid is %d", r->pid,
                   (int)getpid());
        }
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
        r->rc = XRC(aclrtIpcMemGetExportKey(A.mem[s], m->size, key, 65,
                                            ACL_RT_IPC_MEM_EXPORT_FLAG_DISABLE_PID_VALIDATION),
                    want);
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
    case OP_NCREATE: {
        uint32_t id = 0;
        r->rc = XRC(aclrtCreateNotify(&A.n[ns], ACL_NOTIFY_DEFAULT), want);
        if (r->rc == ACL_SUCCESS)
            r->rc = XRC(aclrtGetNotifyId(A.n[ns], &id), ACL_SUCCESS);
        r->val = id;
        break;
    }
    case OP_NKEY: {
        char key[96];
        memset(key, 0x7f, sizeof(key));
        r->rc = XRC(aclrtNotifyGetExportKey(A.n[ns], key, 65, m->flags), want);
        if (r->rc == ACL_SUCCESS) {
            CHECKF(strnlen(key, 65) == 64 && key[65] == 0x7f,
                   "the notify key has %zu characters (64 and a NUL expected, in 65 bytes)",
                   strnlen(key, sizeof(key)));
            memcpy(r->key, key, 65);
        }
        break;
    }
    case OP_NSETPID: {
        int32_t pid = m->pid;
        r->rc = XRC(aclrtNotifySetImportPid(A.n[ns], &pid, 1), want);
        break;
    }
    case OP_NINTER: {
        int32_t pid = m->pid;
        aclrtServerPid sp = { .sdid = (uint32_t)m->arg, .pid = &pid, .num = 1 };
        r->rc = XRC(aclrtNotifySetImportPidInterServer(A.n[ns], &sp, 1), want);
        break;
    }
    case OP_NIMPORT: {
        aclrtNotify n = NULL;
        uint32_t id = 0;
        r->rc = XRC(aclrtNotifyImportByKey(&n, m->key, m->flags), want);
        if (r->rc == ACL_SUCCESS) {
            A.n[ns] = n;
            r->rc = XRC(aclrtGetNotifyId(n, &id), ACL_SUCCESS);
        }
        r->val = id;
        break;
    }
    case OP_NDESTROY:
        r->rc = XRC(aclrtDestroyNotify(A.n[ns]), want);
        break;
    case OP_WAITCOPY:
        r->rc = XRC(aclrtWaitAndResetNotify(A.n[ns], A.st, (uint32_t)m->arg), want);
        if (r->rc == ACL_SUCCESS && m->size)
            r->rc = XRC(aclrtMemcpyAsync(A.mem[1], m->size, A.mem[0], m->size,
                                         ACL_MEMCPY_DEVICE_TO_DEVICE, A.st),
                        ACL_SUCCESS);
        break;
    case OP_RECORD:
        r->rc = XRC(aclrtRecordNotify(A.n[ns], A.st), want);
        if (r->rc == ACL_SUCCESS)
            r->rc = XRC(aclrtSynchronizeStream(A.st), ACL_SUCCESS);
        break;
    case OP_SYNC:
        r->rc = XRC(aclrtSynchronizeStream(A.st), want);
        break;
    case OP_READ: {
        uint8_t *h = g_malloc(m->size);
        r->rc = XRC(aclrtMemcpy(h, m->size, A.mem[s], m->size, ACL_MEMCPY_DEVICE_TO_HOST), want);
        r->sum = r->rc == ACL_SUCCESS ? checksum(h, m->size) : 0;
        g_free(h);
        break;
    }
    case OP_WRITE:
        if (m->arg)
            g_usleep(m->arg * 1000);
        r->rc = XRC(agent_write(A.mem[s], m->size, m->seed), want);
        break;
    case OP_PEER:
        r->rc = XRC(aclrtDeviceEnablePeerAccess(m->dev, 0), want);
        break;
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

/* ------------------------------------------------------------------------- */
/* the parent's side                                                         */
/* ------------------------------------------------------------------------- */

/* One command to agent a, checked against its want at the scenario's line. */
static Msg do_op(Agent *a, Msg m, const char *text, int line)
{
    Msg r;
    agent_do_op(a, &m, &r, sizeof(r), text, __FILE__, line);
    return r;
}

#define DO(p, want_, ...) do_op(&(p), (Msg){ .want = (want_), __VA_ARGS__ }, #__VA_ARGS__, __LINE__)

static Msg with_keys(Msg m, const char *key, const char *key2)
{
    if (key)
        g_strlcpy(m.key, key, sizeof(m.key));
    if (key2)
        g_strlcpy(m.key2, key2, sizeof(m.key2));
    return m;
}

/* A command carrying a notify key (DOK) or a memory key (DOM). */
#define DOK(p, want_, key_, ...) \
    do_op(&(p), with_keys((Msg){ .want = (want_), __VA_ARGS__ }, (key_), NULL), #__VA_ARGS__, \
          __LINE__)
#define DOM(p, want_, key_, ...) \
    do_op(&(p), with_keys((Msg){ .want = (want_), __VA_ARGS__ }, NULL, (key_)), #__VA_ARGS__, \
          __LINE__)

static Agent agent_on(const char *name, const TestEmu *e, int server, int dev)
{
    Agent p = agent_spawn(name, &g_agent, e, server);
    Msg r = DO(p, ACL_SUCCESS, .op = OP_INIT, .dev = dev);
    CHECKF(r.pid == p.pid, "%s: aclrtDeviceGetBareTgid %d, fork gave %d", name, r.pid,
           (int)p.pid);
    return p;
}

static Agent agent(const char *name, int dev)
{
    return agent_on(name, &g_emu, -1, dev);
}

static bool emu_alive(void)
{
    return emu_running(&g_emu);
}

static bool emu3_alive(void)
{
    return g_emu3_ok && emu_running(&g_emu3) && emu_running(&g_emu);
}

#define TEST(name) EMU_TEST(name, emu_alive)
#define TEST3(name) EMU_TEST(name, emu3_alive)

/* ------------------------------------------------------------------------- */
/* one process                                                               */
/* ------------------------------------------------------------------------- */

/* A pointer that is not a notify of this process. */
static int g_not_a_notify;

TEST(test_bad_arguments)
{
    aclrtNotify n = NULL, d = NULL, imp = NULL;
    aclrtStream st = NULL;
    uint32_t id = 0;
    char key[96];
    int32_t pid = getpid();
    EXPECT_OK(aclrtCreateStream(&st));

    /* aclrtCreateNotify */
    EXPECT_ERR(aclrtCreateNotify(NULL, ACL_NOTIFY_DEFAULT), PARAM);
    EXPECT_ERR(aclrtCreateNotify(&n, 0x2), PARAM);
    EXPECT_ERR(aclrtCreateNotify(&n, 0x3), PARAM);
    EXPECT_ERR(aclrtCreateNotify(&n, UINT64_MAX), PARAM);
    EXPECT_OK(aclrtCreateNotify(&d, ACL_NOTIFY_DEVICE_USE_ONLY));
    EXPECT_OK(aclrtCreateNotify(&n, ACL_NOTIFY_DEFAULT));
    /* d: destroyed from here on */
    EXPECT_OK(aclrtDestroyNotify(d));
    aclrtNotify foreign = &g_not_a_notify;

    /* aclrtDestroyNotify */
    EXPECT_ERR(aclrtDestroyNotify(NULL), PARAM);
    EXPECT_ERR(aclrtDestroyNotify(d), PARAM);              /* double destroy */
    EXPECT_ERR(aclrtDestroyNotify(foreign), PARAM);

    /* aclrtRecordNotify / aclrtWaitAndResetNotify */
    EXPECT_ERR(aclrtRecordNotify(NULL, st), PARAM);
    EXPECT_ERR(aclrtRecordNotify(d, st), PARAM);
    EXPECT_ERR(aclrtRecordNotify(foreign, st), PARAM);
    EXPECT_ERR(aclrtWaitAndResetNotify(NULL, st, 1), PARAM);
    EXPECT_ERR(aclrtWaitAndResetNotify(d, st, 1), PARAM);
    EXPECT_ERR(aclrtWaitAndResetNotify(foreign, st, 1), PARAM);
    EXPECT_ERR(aclrtWaitAndResetNotify(d, NULL, 0), PARAM);
    /* the default stream works */
    EXPECT_OK(aclrtRecordNotify(n, NULL));
    EXPECT_OK(aclrtWaitAndResetNotify(n, NULL, 1));
    EXPECT_OK(aclrtSynchronizeStream(NULL));

    /* aclrtGetNotifyId */
    EXPECT_ERR(aclrtGetNotifyId(n, NULL), PARAM);
    EXPECT_ERR(aclrtGetNotifyId(NULL, &id), PARAM);
    EXPECT_ERR(aclrtGetNotifyId(d, &id), PARAM);
    EXPECT_ERR(aclrtGetNotifyId(foreign, &id), PARAM);
    EXPECT_OK(aclrtGetNotifyId(n, &id));
    CHECKF(id < NOTIFY_MAX, "notify id %u, expected below %d", id, NOTIFY_MAX);

    /* aclrtNotifyBatchReset */
    aclrtNotify two[2] = { n, d };
    EXPECT_ERR(aclrtNotifyBatchReset(NULL, 1), PARAM);
    EXPECT_ERR(aclrtNotifyBatchReset(two, 0), PARAM);
    EXPECT_ERR(aclrtNotifyBatchReset(two, 2), PARAM);      /* one destroyed */
    two[1] = foreign;
    EXPECT_ERR(aclrtNotifyBatchReset(two, 2), PARAM);
    EXPECT_OK(aclrtNotifyBatchReset(two, 1));

    /* aclrtNotifySetImportPid before any export */
    EXPECT_ERR(aclrtNotifySetImportPid(n, &pid, 1), PARAM);

    /* aclrtNotifyGetExportKey */
    EXPECT_ERR(aclrtNotifyGetExportKey(n, NULL, 65, 0), PARAM);
    EXPECT_ERR(aclrtNotifyGetExportKey(n, key, 64, 0), PARAM);
    EXPECT_ERR(aclrtNotifyGetExportKey(n, key, 0, 0), PARAM);
    EXPECT_ERR(aclrtNotifyGetExportKey(n, key, 65, 0x1), PARAM);
    EXPECT_ERR(aclrtNotifyGetExportKey(n, key, 65, 0x3), PARAM);
    EXPECT_ERR(aclrtNotifyGetExportKey(n, key, 65, UINT64_MAX), PARAM);
    EXPECT_ERR(aclrtNotifyGetExportKey(NULL, key, 65, 0), PARAM);
    EXPECT_ERR(aclrtNotifyGetExportKey(d, key, 65, 0), PARAM);
    EXPECT_ERR(aclrtNotifyGetExportKey(foreign, key, 65, 0), PARAM);
    memset(key, 0x7f, sizeof(key));
    EXPECT_OK(aclrtNotifyGetExportKey(n, key, 65, ACL_RT_NOTIFY_EXPORT_FLAG_DEFAULT));
    CHECKF(strnlen(key, 65) == 64 && key[65] == 0x7f, "key of %zu characters",
           strnlen(key, sizeof(key)));

    /* aclrtNotifySetImportPid */
    EXPECT_ERR(aclrtNotifySetImportPid(n, NULL, 1), PARAM);
    EXPECT_ERR(aclrtNotifySetImportPid(n, &pid, 0), PARAM);
    EXPECT_ERR(aclrtNotifySetImportPid(NULL, &pid, 1), PARAM);
    EXPECT_ERR(aclrtNotifySetImportPid(d, &pid, 1), PARAM);
    EXPECT_OK(aclrtNotifySetImportPid(n, &pid, 1));

    /* aclrtNotifySetImportPidInterServer: A3 only */
    aclrtServerPid sp = { .sdid = 0, .pid = &pid, .num = 1 };
    EXPECT_ERR(aclrtNotifySetImportPidInterServer(n, &sp, 1), ACL_ERROR_RT_FEATURE_NOT_SUPPORT);

    /* aclrtNotifyImportByKey */
    char unknown[65], forged[96];
    for (int i = 0; i < 64; i++)
        unknown[i] = "0123456789abcdef"[(i * 7 + 3) % 16];
    unknown[64] = '\0';
    EXPECT_ERR(aclrtNotifyImportByKey(NULL, key, 0), PARAM);
    EXPECT_ERR(aclrtNotifyImportByKey(&imp, NULL, 0), PARAM);
    EXPECT_ERR(aclrtNotifyImportByKey(&imp, key, 0x1), PARAM);
    EXPECT_ERR(aclrtNotifyImportByKey(&imp, key, 0x3), PARAM);
    EXPECT_ERR(aclrtNotifyImportByKey(&imp, unknown, 0), PARAM);
    EXPECT_ERR(aclrtNotifyImportByKey(&imp, "", 0), PARAM);
    EXPECT_ERR(aclrtNotifyImportByKey(&imp, "not a notify key", 0), PARAM);
    /* one hex digit off, a character too many, one too few, upper case */
    g_strlcpy(forged, key, sizeof(forged));
    forged[10] = forged[10] == '0' ? '1' : '0';
    EXPECT_ERR(aclrtNotifyImportByKey(&imp, forged, 0), PARAM);
    g_strlcpy(forged, key, sizeof(forged));
    g_strlcat(forged, "0", sizeof(forged));
    EXPECT_ERR(aclrtNotifyImportByKey(&imp, forged, 0), PARAM);
    forged[63] = '\0';
    EXPECT_ERR(aclrtNotifyImportByKey(&imp, forged, 0), PARAM);
    g_strlcpy(forged, key, sizeof(forged));
    for (int i = 0; i < 64; i++)
        if (forged[i] >= 'a' && forged[i] <= 'f') {
            forged[i] = (char)(forged[i] - 'a' + 'A');
            break;
        }
    if (strcmp(forged, key) != 0)
        EXPECT_ERR(aclrtNotifyImportByKey(&imp, forged, 0), PARAM);
    /* the exporting process itself (whitelisted) cannot import its own key */
    EXPECT_ERR(aclrtNotifyImportByKey(&imp, key, 0), PARAM);
    CHECK(imp == NULL);

    /* a destroyed notify's key is gone */
    EXPECT_OK(aclrtDestroyNotify(n));
    EXPECT_ERR(aclrtNotifyImportByKey(&imp, key, 0), PARAM);
    EXPECT_ERR(aclrtNotifySetImportPid(n, &pid, 1), PARAM);
    EXPECT_ERR(aclrtRecordNotify(n, st), PARAM);
    EXPECT_OK(aclrtSynchronizeStream(st));
    EXPECT_OK(aclrtDestroyStream(st));
}

TEST(test_ids_distinct)
{
    enum { N = 64 };
    aclrtNotify n[N];
    uint32_t id[N];
    for (int i = 0; i < N; i++) {
        EXPECT_OK(aclrtCreateNotify(&n[i], 0));
        EXPECT_OK(aclrtGetNotifyId(n[i], &id[i]));
    }
    /* destroy every other one and create again: still one id per live notify */
    for (int i = 0; i < N; i += 2)
        EXPECT_OK(aclrtDestroyNotify(n[i]));
    for (int i = 0; i < N; i += 2) {
        EXPECT_OK(aclrtCreateNotify(&n[i], 0));
        EXPECT_OK(aclrtGetNotifyId(n[i], &id[i]));
    }
    int dups = 0;
    for (int i = 0; i < N; i++) {
        CHECKF(id[i] < NOTIFY_MAX, "id %u", id[i]);
        for (int j = i + 1; j < N; j++)
            dups += id[i] == id[j];
    }
    CHECKF(dups == 0, "%d pairs of live notifies share an id", dups);
    /* the same id twice from one notify */
    uint32_t again = 0;
    EXPECT_OK(aclrtGetNotifyId(n[5], &again));
    CHECK(again == id[5]);
    /* another process's notify on the same device: an id of its own */
    Agent b = agent("B", 0);
    Msg r = DO(b, 0, .op = OP_NCREATE, .ns = 0);
    for (int i = 0; i < N; i++)
        CHECKF(r.val != id[i], "B's notify has id %u, like notify %d of this process",
               (unsigned)r.val, i);
    AGENT_FINISH(b);
    for (int i = 0; i < N; i++)
        EXPECT_OK(aclrtDestroyNotify(n[i]));
}

/* Two streams of one process, a device buffer src that stream 1 fills and
 * stream 2 copies into dst after its wait. */
typedef struct Pair {
    aclrtStream s1, s2;
    void *src, *dst, *host;
    uint8_t *pat;
    size_t n;
} Pair;

static bool pair_new(Pair *p, size_t n, uint32_t seed)
{
    memset(p, 0, sizeof(*p));
    p->n = n;
    p->pat = g_malloc(n);
    fill_pattern(p->pat, n, seed);
    bool ok = EXPECT_OK(aclrtCreateStream(&p->s1)) && EXPECT_OK(aclrtCreateStream(&p->s2)) &&
              EXPECT_OK(aclrtMalloc(&p->src, n, ACL_MEM_MALLOC_HUGE_FIRST)) &&
              EXPECT_OK(aclrtMalloc(&p->dst, n, ACL_MEM_MALLOC_HUGE_FIRST)) &&
              EXPECT_OK(aclrtMallocHost(&p->host, n));
    if (ok) {
        memcpy(p->host, p->pat, n);
        ok = EXPECT_OK(aclrtMemset(p->src, n, 0, n)) && EXPECT_OK(aclrtMemset(p->dst, n, 0xee, n));
    }
    return ok;
}

static bool pair_dst_is_pattern(Pair *p)
{
    uint8_t *h = g_malloc(p->n);
    bool ok = EXPECT_OK(aclrtMemcpy(h, p->n, p->dst, p->n, ACL_MEMCPY_DEVICE_TO_HOST)) &&
              memcmp(h, p->pat, p->n) == 0;
    g_free(h);
    return ok;
}

static void pair_free(Pair *p)
{
    if (p->s1)
        EXPECT_OK(aclrtDestroyStream(p->s1));
    if (p->s2)
        EXPECT_OK(aclrtDestroyStream(p->s2));
    if (p->src)
        EXPECT_OK(aclrtFree(p->src));
    if (p->dst)
        EXPECT_OK(aclrtFree(p->dst));
    if (p->host)
        EXPECT_OK(aclrtFreeHost(p->host));
    g_free(p->pat);
}

TEST(test_wait_then_record)
{
    Pair p;
    aclrtNotify n = NULL;
    if (!pair_new(&p, SZ, 11) || !EXPECT_OK(aclrtCreateNotify(&n, 0))) {
        pair_free(&p);
        return;
    }
    /* stream 2 waits (forever), then copies src; stream 1 fills src only
     * after a delay, then records.  A wait that did not block copies zeros. */
    EXPECT_OK(aclrtWaitAndResetNotify(n, p.s2, 0));
    EXPECT_OK(aclrtMemcpyAsync(p.dst, p.n, p.src, p.n, ACL_MEMCPY_DEVICE_TO_DEVICE, p.s2));
    g_usleep(200 * 1000);
    EXPECT_OK(aclrtMemcpyAsync(p.src, p.n, p.host, p.n, ACL_MEMCPY_HOST_TO_DEVICE, p.s1));
    EXPECT_OK(aclrtRecordNotify(n, p.s1));
    EXPECT_OK(aclrtSynchronizeStream(p.s1));
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(p.s2, 10000 * (int32_t)slow));
    CHECKF(pair_dst_is_pattern(&p), "stream 2 copied src before stream 1 filled it: the wait "
           "did not block");
    EXPECT_OK(aclrtDestroyNotify(n));
    pair_free(&p);
}

TEST(test_record_then_wait)
{
    Pair p;
    aclrtNotify n = NULL;
    if (!pair_new(&p, SZ, 12) || !EXPECT_OK(aclrtCreateNotify(&n, 0))) {
        pair_free(&p);
        return;
    }
    EXPECT_OK(aclrtMemcpyAsync(p.src, p.n, p.host, p.n, ACL_MEMCPY_HOST_TO_DEVICE, p.s1));
    EXPECT_OK(aclrtRecordNotify(n, p.s1));
    EXPECT_OK(aclrtSynchronizeStream(p.s1));
    /* recorded already: the wait passes at once (timeout 1 s is not reached) */
    EXPECT_OK(aclrtWaitAndResetNotify(n, p.s2, 1));
    EXPECT_OK(aclrtMemcpyAsync(p.dst, p.n, p.src, p.n, ACL_MEMCPY_DEVICE_TO_DEVICE, p.s2));
    EXPECT_OK(aclrtSynchronizeStream(p.s2));
    CHECK(pair_dst_is_pattern(&p));
    /* the developer guide's flow: wait queued first on stream 2, record later
     * on stream 1, round after round (a record is one bit, not a count: each
     * round ends before the next records) */
    for (int i = 0; i < 20; i++) {
        EXPECT_OK(aclrtWaitAndResetNotify(n, p.s2, 10 * slow));
        EXPECT_OK(aclrtRecordNotify(n, p.s1));
        EXPECT_OK(aclrtSynchronizeStream(p.s2));
    }
    EXPECT_OK(aclrtSynchronizeStream(p.s1));
    EXPECT_OK(aclrtDestroyNotify(n));
    pair_free(&p);
}

TEST(test_wait_resets)
{
    aclrtStream s1 = NULL, s2 = NULL;
    aclrtNotify n = NULL;
    EXPECT_OK(aclrtCreateStream(&s1));
    EXPECT_OK(aclrtCreateStream(&s2));
    EXPECT_OK(aclrtCreateNotify(&n, 0));
    EXPECT_OK(aclrtRecordNotify(n, s1));
    EXPECT_OK(aclrtSynchronizeStream(s1));
    EXPECT_OK(aclrtWaitAndResetNotify(n, s2, 1));
    EXPECT_OK(aclrtSynchronizeStream(s2));
    /* no new record: the wait reset it, the second wait times out */
    EXPECT_OK(aclrtWaitAndResetNotify(n, s2, 1));
    EXPECT_ERR(aclrtSynchronizeStream(s2), TIMEOUT);
    /* the error was reported once; the stream goes on */
    EXPECT_OK(aclrtSynchronizeStream(s2));
    /* two records are one: the second wait times out as well */
    EXPECT_OK(aclrtRecordNotify(n, s1));
    EXPECT_OK(aclrtRecordNotify(n, s1));
    EXPECT_OK(aclrtSynchronizeStream(s1));
    EXPECT_OK(aclrtWaitAndResetNotify(n, s2, 1));
    EXPECT_OK(aclrtSynchronizeStream(s2));
    EXPECT_OK(aclrtWaitAndResetNotify(n, s2, 1));
    EXPECT_ERR(aclrtSynchronizeStream(s2), TIMEOUT);
    EXPECT_OK(aclrtDestroyNotify(n));
    EXPECT_OK(aclrtDestroyStream(s1));
    EXPECT_OK(aclrtDestroyStream(s2));
}

TEST(test_batch_reset)
{
    aclrtStream s = NULL;
    aclrtNotify n[3] = { NULL, NULL, NULL };
    EXPECT_OK(aclrtCreateStream(&s));
    for (int i = 0; i < 3; i++) {
        EXPECT_OK(aclrtCreateNotify(&n[i], 0));
        EXPECT_OK(aclrtRecordNotify(n[i], s));
    }
    EXPECT_OK(aclrtSynchronizeStream(s));
    /* reset the first two: their waits time out, the third is still set */
    EXPECT_OK(aclrtNotifyBatchReset(n, 2));
    EXPECT_OK(aclrtWaitAndResetNotify(n[2], s, 1));
    EXPECT_OK(aclrtSynchronizeStream(s));
    EXPECT_OK(aclrtWaitAndResetNotify(n[0], s, 1));
    EXPECT_ERR(aclrtSynchronizeStream(s), TIMEOUT);
    EXPECT_OK(aclrtWaitAndResetNotify(n[1], s, 1));
    EXPECT_ERR(aclrtSynchronizeStream(s), TIMEOUT);
    /* resetting a notify that is not set changes nothing */
    EXPECT_OK(aclrtNotifyBatchReset(n, 3));
    EXPECT_OK(aclrtRecordNotify(n[0], s));
    EXPECT_OK(aclrtWaitAndResetNotify(n[0], s, 1));
    EXPECT_OK(aclrtSynchronizeStream(s));
    for (int i = 0; i < 3; i++)
        EXPECT_OK(aclrtDestroyNotify(n[i]));
    EXPECT_OK(aclrtDestroyStream(s));
}

TEST(test_wait_blocks_only_its_stream)
{
    Pair p;
    aclrtNotify n = NULL;
    if (!pair_new(&p, SZ, 13) || !EXPECT_OK(aclrtCreateNotify(&n, 0))) {
        pair_free(&p);
        return;
    }
    /* stream 2 waits forever; stream 1's copies complete meanwhile */
    EXPECT_OK(aclrtWaitAndResetNotify(n, p.s2, 0));
    EXPECT_OK(aclrtMemsetAsync(p.dst, p.n, 0x5a, p.n, p.s2));
    for (int i = 0; i < 8; i++)
        EXPECT_OK(aclrtMemcpyAsync(p.src, p.n, p.host, p.n, ACL_MEMCPY_HOST_TO_DEVICE, p.s1));
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(p.s1, 10000 * (int32_t)slow));
    uint8_t *h = g_malloc(p.n);
    EXPECT_OK(aclrtMemcpy(h, p.n, p.src, p.n, ACL_MEMCPY_DEVICE_TO_HOST));
    CHECKF(memcmp(h, p.pat, p.n) == 0, "stream 1's copies did not land while stream 2 waited");
    /* stream 2 is still blocked: its memset did not run */
    EXPECT_OK(aclrtMemcpy(h, p.n, p.dst, p.n, ACL_MEMCPY_DEVICE_TO_HOST));
    CHECKF(all_bytes(h, p.n, 0xee), "stream 2 ran past its wait before any record");
    /* synchronous work of the process is not blocked either */
    EXPECT_OK(aclrtMemcpy(p.dst, p.n, p.host, p.n, ACL_MEMCPY_HOST_TO_DEVICE));
    EXPECT_OK(aclrtRecordNotify(n, p.s1));
    EXPECT_OK(aclrtSynchronizeStreamWithTimeout(p.s2, 10000 * (int32_t)slow));
    EXPECT_OK(aclrtMemcpy(h, p.n, p.dst, p.n, ACL_MEMCPY_DEVICE_TO_HOST));
    CHECK(all_bytes(h, p.n, 0x5a));
    g_free(h);
    EXPECT_OK(aclrtDestroyNotify(n));
    pair_free(&p);
}

/* A stream of another device: only with peer access to the notify's device. */
TEST(test_other_device_stream)
{
    aclrtNotify n = NULL;
    aclrtStream s0 = NULL, s1 = NULL;
    EXPECT_OK(aclrtCreateNotify(&n, 0));          /* device 0 */
    EXPECT_OK(aclrtCreateStream(&s0));
    EXPECT_OK(aclrtSetDevice(1));
    EXPECT_OK(aclrtCreateStream(&s1));
    EXPECT_ERR(aclrtRecordNotify(n, s1), PARAM);
    EXPECT_ERR(aclrtWaitAndResetNotify(n, s1, 1), PARAM);
    EXPECT_OK(aclrtDeviceEnablePeerAccess(0, 0));
    EXPECT_OK(aclrtRecordNotify(n, s1));
    EXPECT_OK(aclrtSynchronizeStream(s1));
    EXPECT_OK(aclrtSetDevice(0));
    EXPECT_OK(aclrtWaitAndResetNotify(n, s0, 1));
    EXPECT_OK(aclrtSynchronizeStream(s0));
    EXPECT_OK(aclrtSetDevice(1));
    EXPECT_OK(aclrtDeviceDisablePeerAccess(0));
    EXPECT_ERR(aclrtRecordNotify(n, s1), PARAM);
    EXPECT_OK(aclrtDestroyStream(s1));
    EXPECT_OK(aclrtSetDevice(0));
    EXPECT_OK(aclrtDestroyStream(s0));
    EXPECT_OK(aclrtDestroyNotify(n));
}

/* Creates on the current device until 207009; returns how many it got. */
static int fill_device(aclrtNotify *all, int max)
{
    int got = 0;
    aclError rc = ACL_SUCCESS;
    while (got < max && (rc = aclrtCreateNotify(&all[got], 0)) == ACL_SUCCESS)
        got++;
    if (got < max)
        EXPECT_ERR(rc, ACL_ERROR_RT_NO_NOTIFY_RESOURCE);
    else
        CHECKF(false, "%d notifies created on one device, no 207009", got);
    drain_errors();
    return got;
}

TEST(test_limit_and_reset_device)
{
    /* device 3: nobody else uses it */
    const int max = NOTIFY_MAX + 8;
    aclrtNotify *all = g_new0(aclrtNotify, (size_t)max);
    EXPECT_OK(aclrtSetDevice(3));
    int got = fill_device(all, max);
    CHECKF(got == NOTIFY_MAX, "%d notifies on the device before 207009, expected %d", got,
           NOTIFY_MAX);
    EXPECT_ERR(aclrtCreateNotify(&all[got], 0), ACL_ERROR_RT_NO_NOTIFY_RESOURCE);
    /* other devices are not affected */
    aclrtNotify other = NULL;
    EXPECT_OK(aclrtSetDevice(4));
    EXPECT_OK(aclrtCreateNotify(&other, 0));
    EXPECT_OK(aclrtDestroyNotify(other));
    EXPECT_OK(aclrtSetDevice(3));
    if (got > 0) {
        uint32_t freed = 0, id = 0;
        EXPECT_OK(aclrtGetNotifyId(all[got / 2], &freed));
        EXPECT_OK(aclrtDestroyNotify(all[got / 2]));
        EXPECT_OK(aclrtCreateNotify(&all[got / 2], 0));
        EXPECT_OK(aclrtGetNotifyId(all[got / 2], &id));
        CHECKF(id == freed, "the only free id was %u, the new notify got %u", freed, id);
        EXPECT_ERR(aclrtCreateNotify(&other, 0), ACL_ERROR_RT_NO_NOTIFY_RESOURCE);
    }
    /* aclrtResetDevice drops the device's notifies: handles are dead, ids
     * free.  Device 3 was set twice: the first reset only drops a reference. */
    uint32_t id = 0;
    EXPECT_OK(aclrtResetDevice(3));
    if (got > 0)
        EXPECT_OK(aclrtGetNotifyId(all[0], &id));
    EXPECT_OK(aclrtResetDevice(3));
    EXPECT_OK(aclrtSetDevice(0));
    if (got > 0) {
        EXPECT_ERR(aclrtGetNotifyId(all[0], &id), PARAM);
        EXPECT_ERR(aclrtRecordNotify(all[0], NULL), PARAM);
        EXPECT_ERR(aclrtWaitAndResetNotify(all[got - 1], NULL, 1), PARAM);
        EXPECT_ERR(aclrtNotifyBatchReset(&all[1], 1), PARAM);
        EXPECT_ERR(aclrtDestroyNotify(all[2]), PARAM);
    }
    EXPECT_OK(aclrtSetDevice(3));
    int again = fill_device(all, max);
    CHECKF(again == NOTIFY_MAX, "after aclrtResetDevice %d notifies, expected %d", again,
           NOTIFY_MAX);
    for (int i = 0; i < again; i++)
        if (aclrtDestroyNotify(all[i]) != ACL_SUCCESS) {
            CHECKF(false, "destroy of notify %d failed", i);
            break;
        }
    drain_errors();
    EXPECT_OK(aclrtResetDevice(3));
    EXPECT_OK(aclrtSetDevice(0));
    g_free(all);
}

/* A stream blocked forever in a wait: aclrtDestroyStreamForce returns at once
 * (in a child: a hang would be its alarm, not the test program's). */
static void force_destroy_child(void)
{
    alarm(30 * slow);
    aclrtNotify n = NULL;
    aclrtStream s = NULL;
    void *d = NULL;
    if (!EXPECT_OK(aclInit(NULL)) || !EXPECT_OK(aclrtSetDevice(0)))
        return;
    EXPECT_OK(aclrtCreateNotify(&n, 0));
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtMalloc(&d, SZ, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtWaitAndResetNotify(n, s, 0));
    for (int i = 0; i < 4; i++)
        EXPECT_OK(aclrtMemsetAsync(d, SZ, 1, SZ, s));
    g_usleep(100 * 1000);
    int64_t t0 = clock_ms();
    EXPECT_OK(aclrtDestroyStreamForce(s));
    int64_t dt = clock_ms() - t0;
    CHECKF(dt < 2000 * (int64_t)slow, "aclrtDestroyStreamForce of a waiting stream took %lld ms",
           (long long)dt);
    /* the notify and the device are usable afterwards */
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtRecordNotify(n, s));
    EXPECT_OK(aclrtWaitAndResetNotify(n, s, 1));
    EXPECT_OK(aclrtSynchronizeStream(s));
    EXPECT_OK(aclrtDestroyStream(s));
    EXPECT_OK(aclrtFree(d));
    EXPECT_OK(aclrtDestroyNotify(n));
    EXPECT_OK(aclFinalize());
}

TEST(test_destroy_stream_force_while_waiting)
{
    int pid = 0;
    int st = run_checked_child(force_destroy_child, &pid);
    CHECKF(st == 0, "child %d: status %d (failed checks; 142 = alarm: a hang)", pid, st);
}

/* ------------------------------------------------------------------------- */
/* processes                                                                 */
/* ------------------------------------------------------------------------- */

/* One round of the documented flow: A waits on notify ns and then copies its
 * shared buffer mem[0] into mem[1]; B writes mem[0] (through its import) after
 * a delay and records.  A's copy must hold B's data. */
static void flow_round(Agent *a, Agent *b, int b_ns, uint32_t seed, int line)
{
    do_op(a, (Msg){ .op = OP_WAITCOPY, .ns = 0, .arg = 10 * slow, .size = SZ }, "wait + copy",
          line);
    do_op(b, (Msg){ .op = OP_WRITE, .slot = 0, .size = SZ, .seed = seed, .arg = 150 },
          "write after a delay", line);
    do_op(b, (Msg){ .op = OP_RECORD, .ns = b_ns }, "record", line);
    do_op(a, (Msg){ .op = OP_SYNC }, "sync", line);
    Msg r = do_op(a, (Msg){ .op = OP_READ, .slot = 1, .size = SZ }, "read", line);
    check_impl(r.sum == pattern_sum(SZ, seed), __FILE__, line, "scenario",
               "A's task after the wait did not see B's data (seed %u): the wait did not block "
               "until B's record", seed);
}

#define FLOW(a, b, ns, seed) flow_round(&(a), &(b), (ns), (seed), __LINE__)

/* A on device 0 with a shared buffer (exported, no pid validation), a
 * destination buffer and notify 0, exported with `flags`; key in *k. */
static Agent exporter(uint64_t flags, uint32_t seed, Msg *mk, Msg *k)
{
    Agent a = agent("A", 0);
    DO(a, 0, .op = OP_MALLOC, .slot = 0, .size = SZ, .seed = seed);
    DO(a, 0, .op = OP_MALLOC, .slot = 1, .size = SZ, .seed = seed + 1);
    *mk = DO(a, 0, .op = OP_MEMKEY, .slot = 0, .size = SZ);
    Msg c = DO(a, 0, .op = OP_NCREATE, .ns = 0);
    *k = DO(a, 0, .op = OP_NKEY, .ns = 0, .flags = flags);
    k->val = c.val;     /* the notify's id */
    return a;
}

TEST(test_two_processes_same_device)
{
    Msg mk, k;
    Agent a = exporter(0, 200, &mk, &k);
    Agent b = agent("B", 0);
    /* B's pid from aclrtDeviceGetBareTgid (OP_INIT checked it is its pid) */
    DO(a, 0, .op = OP_NSETPID, .ns = 0, .pid = b.pid);
    DOM(b, 0, mk.key2, .op = OP_MEMIMPORT, .slot = 0);
    Msg ib = DOK(b, 0, k.key, .op = OP_NIMPORT, .ns = 0);
    FLOW(a, b, 0, 201);
    FLOW(a, b, 0, 202);
    /* the importer records only; the creator waits */
    DO(b, PARAM, .op = OP_WAITCOPY, .ns = 0, .arg = 1);
    /* an imported notify cannot be exported again */
    DO(b, PARAM, .op = OP_NKEY, .ns = 0, .flags = NO_PID);
    /* the same notify: one id in both processes; A's next notify has another */
    CHECKF(ib.val == k.val, "B's import has id %u, A's notify %u", (unsigned)ib.val,
           (unsigned)k.val);
    Msg ida = DO(a, 0, .op = OP_NCREATE, .ns = 1);
    CHECKF(ida.val != ib.val, "A's second notify has the id of the first");
    /* B's destroy drops its reference only: A's notify lives on */
    DO(b, 0, .op = OP_NDESTROY, .ns = 0);
    DO(b, PARAM, .op = OP_RECORD, .ns = 0);
    DO(b, PARAM, .op = OP_NDESTROY, .ns = 0);
    DO(a, 0, .op = OP_WAITCOPY, .ns = 0, .arg = 1);
    DO(a, TIMEOUT, .op = OP_SYNC);
    /* a key imported twice gives two handles */
    DOK(b, 0, k.key, .op = OP_NIMPORT, .ns = 1);
    DOK(b, 0, k.key, .op = OP_NIMPORT, .ns = 2);
    DO(b, 0, .op = OP_RECORD, .ns = 2);
    DO(a, 0, .op = OP_WAITCOPY, .ns = 0, .arg = 5 * slow);
    DO(a, 0, .op = OP_SYNC);
    /* the creator destroys: the key is gone, B's imports stay usable */
    DO(a, 0, .op = OP_NDESTROY, .ns = 0);
    Agent c = agent("C", 0);
    DO(a, PARAM, .op = OP_NSETPID, .ns = 0, .pid = c.pid);
    DOK(c, PARAM, k.key, .op = OP_NIMPORT, .ns = 0);
    DO(b, 0, .op = OP_RECORD, .ns = 1);
    DO(b, 0, .op = OP_NDESTROY, .ns = 1);
    DO(b, 0, .op = OP_NDESTROY, .ns = 2);
    DO(a, 0, .op = OP_NDESTROY, .ns = 1);
    AGENT_FINISH(c);
    AGENT_FINISH(b);
    AGENT_FINISH(a);
}

TEST(test_two_processes_two_devices)
{
    Msg mk, k;
    Agent a = exporter(0, 210, &mk, &k);
    Agent b = agent("B", 1), c = agent("C", 1);
    DO(a, 0, .op = OP_NSETPID, .ns = 0, .pid = b.pid);
    DO(a, 0, .op = OP_NSETPID, .ns = 0, .pid = c.pid);
    /* the memory with the IPC import flag: that gives no peer access to notifies */
    DOM(b, 0, mk.key2, .op = OP_MEMIMPORT, .slot = 0,
        .flags = ACL_RT_IPC_MEM_IMPORT_FLAG_ENABLE_PEER_ACCESS);
    DOM(c, 0, mk.key2, .op = OP_MEMIMPORT, .slot = 0,
        .flags = ACL_RT_IPC_MEM_IMPORT_FLAG_ENABLE_PEER_ACCESS);
    /* B: default import flag, no peer access: its device-1 stream is refused */
    DOK(b, 0, k.key, .op = OP_NIMPORT, .ns = 0, .flags = 0);
    DO(b, PARAM, .op = OP_RECORD, .ns = 0);
    DO(a, 0, .op = OP_WAITCOPY, .ns = 0, .arg = 1);
    DO(a, TIMEOUT, .op = OP_SYNC);
    /* aclrtDeviceEnablePeerAccess: now it works */
    DO(b, 0, .op = OP_PEER, .dev = 0);
    FLOW(a, b, 0, 211);
    /* C: the import flag instead */
    DOK(c, 0, k.key, .op = OP_NIMPORT, .ns = 0, .flags = PEER_FLAG);
    FLOW(a, c, 0, 212);
    FLOW(a, b, 0, 213);
    DO(c, 0, .op = OP_NDESTROY, .ns = 0);
    DO(b, 0, .op = OP_NDESTROY, .ns = 0);
    DO(a, 0, .op = OP_NDESTROY, .ns = 0);
    AGENT_FINISH(c);
    AGENT_FINISH(b);
    AGENT_FINISH(a);
}

TEST(test_whitelists)
{
    Msg mk, k;
    Agent a = exporter(0, 220, &mk, &k);
    Agent b = agent("B", 0), c = agent("C", 0);
    /* pid validation, nobody whitelisted */
    DOK(b, ACL_ERROR_RT_NO_PERMISSION, k.key, .op = OP_NIMPORT, .ns = 0);
    /* C whitelisted (its aclrtDeviceGetBareTgid): B still refused */
    DO(a, 0, .op = OP_NSETPID, .ns = 0, .pid = c.pid);
    DOK(b, ACL_ERROR_RT_NO_PERMISSION, k.key, .op = OP_NIMPORT, .ns = 0);
    DOK(c, 0, k.key, .op = OP_NIMPORT, .ns = 0);
    DOM(c, 0, mk.key2, .op = OP_MEMIMPORT, .slot = 0);
    FLOW(a, c, 0, 221);
    /* a second notify without pid validation: anybody of the server */
    DO(a, 0, .op = OP_NCREATE, .ns = 1);
    Msg k2 = DO(a, 0, .op = OP_NKEY, .ns = 1, .flags = NO_PID);
    DOK(b, 0, k2.key, .op = OP_NIMPORT, .ns = 1);
    DO(b, 0, .op = OP_RECORD, .ns = 1);
    DO(a, 0, .op = OP_WAITCOPY, .ns = 1, .arg = 5 * slow);
    DO(a, 0, .op = OP_SYNC);
    /* each notify exports once */
    DO(a, PARAM, .op = OP_NKEY, .ns = 1, .flags = NO_PID);
    DO(a, 0, .op = OP_NDESTROY, .ns = 1);
    DO(a, 0, .op = OP_NDESTROY, .ns = 0);
    AGENT_FINISH(b);
    AGENT_FINISH(c);
    AGENT_FINISH(a);
}

/* The importer dies while the creator waits on the notify: the wait times out
 * (no hang) and the emulator reclaims the importer's notify. */
TEST(test_importer_dies_while_waited_on)
{
    Msg mk, k;
    Agent a = exporter(NO_PID, 230, &mk, &k);
    Agent b = agent("B", 0);
    DOK(b, 0, k.key, .op = OP_NIMPORT, .ns = 0);
    DO(a, 0, .op = OP_WAITCOPY, .ns = 0, .arg = 2);
    DO(b, 0, .op = OP_HANG);
    AGENT_KILL(b, &g_emu, "1 notifies");
    DO(a, TIMEOUT, .op = OP_SYNC);
    /* the notify works on */
    Agent c = agent("C", 0);
    DOK(c, 0, k.key, .op = OP_NIMPORT, .ns = 0);
    DO(c, 0, .op = OP_RECORD, .ns = 0);
    DO(a, 0, .op = OP_WAITCOPY, .ns = 0, .arg = 5 * slow);
    DO(a, 0, .op = OP_SYNC);
    /* the creator dies: the importer still records (its reference keeps it) */
    DO(a, 0, .op = OP_HANG);
    AGENT_KILL(a, &g_emu, "notifies");
    DO(c, 0, .op = OP_RECORD, .ns = 0);
    DO(c, 0, .op = OP_NDESTROY, .ns = 0);
    AGENT_FINISH(c);
}

TEST3(test_a3_inter_server)
{
    Agent a = agent_on("A", &g_emu3, 0, 0);
    Agent b = agent_on("B", &g_emu3, 1, 0);
    Agent c = agent_on("C", &g_emu3, 1, 0);
    DO(a, 0, .op = OP_NCREATE, .ns = 0);
    Msg k = DO(a, 0, .op = OP_NKEY, .ns = 0, .flags = 0);
    /* another server: refused without an inter-server whitelist entry */
    DOK(b, PARAM, k.key, .op = OP_NIMPORT, .ns = 0);
    /* the same-server whitelist does not admit a pid of server 1 */
    DO(a, 0, .op = OP_NSETPID, .ns = 0, .pid = b.pid);
    DOK(b, PARAM, k.key, .op = OP_NIMPORT, .ns = 0);
    /* bad sdid (no server 2), then B's (server 1, device 0) */
    DO(a, PARAM, .op = OP_NINTER, .ns = 0, .arg = 2 * A3_DEVS, .pid = b.pid);
    DO(a, 0, .op = OP_NINTER, .ns = 0, .arg = 1 * A3_DEVS + 0, .pid = b.pid);
    DOK(b, 0, k.key, .op = OP_NIMPORT, .ns = 0);
    DOK(c, PARAM, k.key, .op = OP_NIMPORT, .ns = 0);
    /* B records from server 1; A's wait passes (it times out otherwise) */
    DO(a, 0, .op = OP_WAITCOPY, .ns = 0, .arg = 10 * slow);
    DO(b, 0, .op = OP_RECORD, .ns = 0);
    DO(a, 0, .op = OP_SYNC);
    DO(a, 0, .op = OP_WAITCOPY, .ns = 0, .arg = 1);
    DO(a, TIMEOUT, .op = OP_SYNC);
    DO(b, 0, .op = OP_NDESTROY, .ns = 0);
    DO(a, 0, .op = OP_NDESTROY, .ns = 0);
    AGENT_FINISH(c);
    AGENT_FINISH(b);
    AGENT_FINISH(a);
}

/* ---- main ---- */

int main(void)
{
    static const TestCase tests[] = {
        T(test_bad_arguments), T(test_ids_distinct), T(test_wait_then_record),
        T(test_record_then_wait), T(test_wait_resets), T(test_batch_reset),
        T(test_wait_blocks_only_its_stream), T(test_other_device_stream),
        T(test_limit_and_reset_device), T(test_destroy_stream_force_while_waiting),
        T(test_two_processes_same_device), T(test_two_processes_two_devices),
        T(test_whitelists), T(test_importer_dies_while_waited_on), T(test_a3_inter_server),
    };
    /* Without the a3 emulator only its tests fail. */
    static const char *const servers[] = { "--servers", "2", NULL };
    static const TestProgram prog = {
        .name = "test_notify",
        .emus = { { &g_emu3, "a3", servers, &g_emu3_ok }, EMU(&g_emu, "a2") },
        .suites = { SUITE("notifies", NULL, NULL, tests) },
        .devices = DEV(0), .reset = DEV(1) | DEV(0), .only_env = "NOTIFY_ONLY",
    };
    return test_main(&prog);
}
