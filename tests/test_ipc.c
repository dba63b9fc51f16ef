/*
 * test_ipc.c - integration tests of sharing device memory between processes:
 * IPC memory keys (11-07: aclrtIpcMemGetExportKey, aclrtIpcMemSetImportPid,
 * aclrtIpcMemImportPidInterServer, aclrtIpcMemSetAttr, aclrtIpcMemImportByKey,
 * aclrtIpcMemClose) and shareable handles (11-04: aclrtMemExportToShareableHandle
 * [V2], aclrtMemSetPidToShareableHandle[V2], aclrtMemImportFromShareableHandle
 * [V2]), with real processes against a real npu-emu.
 *
 * Concepts:
 *  - Two emulators: profile a2 (8 devices; this process is a client of it and
 *    reads aclrtGetMemInfo of devices 0 and 1 to see HBM come back to its
 *    baseline after every scenario) and profile a3 with two servers (--servers
 *    2; a client picks its server with NPU_EMU_SERVER before aclInit).
 *  - Every other process is an "agent" (harness.h): a forked child that calls
 *    aclInit itself and then executes commands (Msg) the parent sends it over
 *    a pipe, answering each with the return code and what it read.  A
 *    scenario is a script in the parent (DO(proc, expected code, command...)),
 *    so the order of the steps across processes is exactly the one written.
 *    The agent also checks every direct API result against the expected code
 *    the parent gives it (acl_check.h: code, last error, message); its
 *    failure count is its exit status.
 *  - Every wait is bounded: agents run under alarm() and give up when no
 *    command comes; the parent reads replies with poll() deadlines and kills an
 *    agent that does not exit.
 *  - Data is checked with checksums of reproducible patterns (fill_pattern).
 *  - IPC_ONLY=word runs only the tests whose name contains it.
 */
#define _GNU_SOURCE
#include <CUnit/Basic.h>
#include <glib.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acl/acl.h"
#include "acl_check.h"
#include "harness.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define A3_DEVS 16          /* devices per a3 server: sdid = server * 16 + device */

static const unsigned slow = TEST_SLOW;

static TestEmu g_emu;       /* a2: this process and most agents */
static TestEmu g_emu3;      /* a3, two servers */
static bool g_emu3_ok;

/* ------------------------------------------------------------------------- */
/* the command channel                                                       */
/* ------------------------------------------------------------------------- */

enum Op {
    OP_INIT = 1,        /* aclInit, aclrtSetDevice(dev); pid = aclrtDeviceGetBareTgid */
    OP_MALLOC,          /* slot = aclrtMalloc(size, policy arg), filled with pattern seed */
    OP_FREE,            /* aclrtFree(slot) */
    OP_KEY,             /* key = GetExportKey(slot + arg offset, size, len how or 65, flags) */
    OP_SETPID,          /* SetImportPid(key, {pid[, pid2]}) */
    OP_INTERSERVER,     /* ImportPidInterServer(key, {sdid arg, pid}) */
    OP_SETATTR,         /* SetAttr(key, ACCESS_LINK, arg) */
    OP_IMPORT,          /* slot = ImportByKey(key, flags) */
    OP_CLOSE,           /* IpcMemClose(key) */
    OP_READ,            /* sum of [slot, +size): how 0 sync D2H, 1 async D2D via own memory */
    OP_WRITE,           /* pattern seed into [slot, +size): how as OP_READ */
    OP_COPYRULES,       /* how 0: the copies refused on memory of another device (rc: how
                         * many were not); 1: the same copies all work (rc: how many not) */
    OP_PEER,            /* aclrtDeviceEnablePeerAccess(dev, 0) */
    OP_PHYS,            /* slot = MallocPhysical(size) on the current device, mapped, pattern seed */
    OP_EXPORT_H,        /* how 0 V1, 1 V2 DEFAULT, 2 V2 FABRIC: val / fabric */
    OP_SETPID_H,        /* SetPidToShareableHandle[V2](val / fabric, {pid[, pid2]}) */
    OP_IMPORT_H,        /* slot handle = Import (V1 onto dev, V2 onto the current device) */
    OP_MAP,             /* reserve + map slot's handle + set access for the current device */
    OP_UNMAP,           /* unmap + release slot's reservation */
    OP_FREEPHYS,        /* aclrtFreePhysical(slot's handle) */
    OP_MEMINFO,         /* val = free HBM of the current device */
    OP_FORK_IMPORT,     /* a child of this agent (after its aclInit) imports key: code arg */
    OP_HANG,            /* answer, then wait to be killed */
    OP_QUIT,            /* answer, then _exit without any cleanup */
    OP_EXIT,            /* aclFinalize, exit with the failure count */
};

typedef struct Msg {
    AGENT_MSG_HEAD;
    int32_t slot, dev, pid, pid2, how;
    uint32_t seed, pad;
    uint64_t size, flags, arg, val, sum;
    char key[96];
    aclrtMemFabricHandle fabric;
} Msg;

/* ------------------------------------------------------------------------- */
/* the agent (child side)                                                    */
/* ------------------------------------------------------------------------- */

#define NSLOT 4

static struct {
    int32_t dev;
    void *ptr[NSLOT];                       /* device address of the slot's memory */
    size_t size[NSLOT];
    aclrtDrvMemHandle h[NSLOT];             /* VMM handle, if any */
    bool reserved[NSLOT];                   /* ptr is a reservation of ours */
} A;

static uint64_t pattern_sum(size_t n, uint32_t seed)
{
    uint8_t *b = g_malloc(n);
    fill_pattern(b, n, seed);
    uint64_t s = checksum(b, n);
    g_free(b);
    return s;
}

/* A direct API result, checked against want in full (harness.h). */
#define XRC(call, want) agent_expect((call), (want), #call, __FILE__, __LINE__)

/* Where the last async copy of agent_read / agent_write failed: 1 at the
 * submission, 2 at aclrtSynchronizeStream (replied in Msg.pad). */
static uint32_t g_async_stage;

static aclError own_scratch(void **p, size_t n)
{
    return aclrtMalloc(p, n, ACL_MEM_MALLOC_HUGE_FIRST);
}

/* Sum of n device bytes at p; how 0: sync D2H, 1: async D2D into memory of the
 * current device (one new stream), then sync D2H of that. */
static aclError agent_read(void *p, size_t n, int how, uint64_t *sum)
{
    uint8_t *h = g_malloc(n);
    aclError rc;
    if (how == 0) {
        rc = aclrtMemcpy(h, n, p, n, ACL_MEMCPY_DEVICE_TO_HOST);
    } else {
        void *s = NULL;
        aclrtStream st = NULL;
        rc = own_scratch(&s, n);
        if (rc == ACL_SUCCESS)
            rc = aclrtCreateStream(&st);
        if (rc == ACL_SUCCESS)
            rc = aclrtMemcpyAsync(s, n, p, n, ACL_MEMCPY_DEVICE_TO_DEVICE, st);
        g_async_stage = rc != ACL_SUCCESS ? 1 : 0;
        if (rc == ACL_SUCCESS) {
            rc = aclrtSynchronizeStream(st);
            g_async_stage = rc != ACL_SUCCESS ? 2 : 0;
        }
        if (rc == ACL_SUCCESS)
            rc = aclrtMemcpy(h, n, s, n, ACL_MEMCPY_DEVICE_TO_HOST);
        if (st)
            aclrtDestroyStream(st);
        if (s)
            aclrtFree(s);
    }
    *sum = rc == ACL_SUCCESS ? checksum(h, n) : 0;
    g_free(h);
    return rc;
}

static aclError agent_write(void *p, size_t n, int how, uint32_t seed)
{
    uint8_t *h = g_malloc(n);
    fill_pattern(h, n, seed);
    aclError rc;
    if (how == 0) {
        rc = aclrtMemcpy(p, n, h, n, ACL_MEMCPY_HOST_TO_DEVICE);
    } else {
        void *s = NULL;
        aclrtStream st = NULL;
        rc = own_scratch(&s, n);
        if (rc == ACL_SUCCESS)
            rc = aclrtMemcpy(s, n, h, n, ACL_MEMCPY_HOST_TO_DEVICE);
        if (rc == ACL_SUCCESS)
            rc = aclrtCreateStream(&st);
        if (rc == ACL_SUCCESS)
            rc = aclrtMemcpyAsync(p, n, s, n, ACL_MEMCPY_DEVICE_TO_DEVICE, st);
        g_async_stage = rc != ACL_SUCCESS ? 1 : 0;
        if (rc == ACL_SUCCESS) {
            rc = aclrtSynchronizeStream(st);
            g_async_stage = rc != ACL_SUCCESS ? 2 : 0;
        }
        if (st)
            aclrtDestroyStream(st);
        if (s)
            aclrtFree(s);
    }
    g_free(h);
    return rc;
}

/* The reference on memory imported from another device: no copy with the
 * direction inferred, no H2D / D2H (sync or async), no synchronous D2D.
 * With `refused`, returns how many of these were NOT refused; without (memory
 * of the same device, where the reference has no such rules), how many
 * failed.  Each is named on stderr. */
static int agent_copy_rules(void *p, size_t n, bool refused)
{
    int allowed = 0;
    void *host = NULL, *own = NULL;
    aclrtStream st = NULL;
    if (!EXPECT_OK(aclrtMallocHost(&host, n)) || !EXPECT_OK(own_scratch(&own, n)) ||
        !EXPECT_OK(aclrtCreateStream(&st)))
        return 100;
#define REFUSED(name, call)                                                             \
    do {                                                                                \
        aclError e_ = (call);                                                           \
        if ((e_ == ACL_SUCCESS) == refused) {                                           \
            fprintf(stderr, "  [agent %d] %s: %s (%d)\n", (int)getpid(),                \
                    refused ? "not refused on memory of another device"                 \
                            : "refused on memory of this device",                       \
                    name, e_);                                                          \
            allowed++;                                                                  \
        }                                                                               \
        drain_errors();                                                                 \
    } while (0)
#define REFUSED_ASYNC(call)                                                             \
    REFUSED(#call " + aclrtSynchronizeStream", ({                                       \
                aclError a_ = (call);                                                   \
                aclError s_ = aclrtSynchronizeStream(st);                               \
                a_ != ACL_SUCCESS ? a_ : s_;                                            \
            }))
#define REFUSED_SYNC(call) REFUSED(#call, (call))
    REFUSED_SYNC(aclrtMemcpy(p, n, host, n, ACL_MEMCPY_HOST_TO_DEVICE));
    REFUSED_SYNC(aclrtMemcpy(host, n, p, n, ACL_MEMCPY_DEVICE_TO_HOST));
    REFUSED_SYNC(aclrtMemcpy(p, n, own, n, ACL_MEMCPY_DEVICE_TO_DEVICE));
    REFUSED_SYNC(aclrtMemcpy(own, n, p, n, ACL_MEMCPY_DEVICE_TO_DEVICE));
    REFUSED_SYNC(aclrtMemcpy(own, n, p, n, ACL_MEMCPY_DEFAULT));
    REFUSED_ASYNC(aclrtMemcpyAsync(p, n, host, n, ACL_MEMCPY_HOST_TO_DEVICE, st));
    REFUSED_ASYNC(aclrtMemcpyAsync(host, n, p, n, ACL_MEMCPY_DEVICE_TO_HOST, st));
    REFUSED_ASYNC(aclrtMemcpyAsync(own, n, p, n, ACL_MEMCPY_DEFAULT, st));
    REFUSED_ASYNC(aclrtMemcpyAsync(p, n, own, n, ACL_MEMCPY_DEFAULT, st));
#undef REFUSED_SYNC
#undef REFUSED_ASYNC
#undef REFUSED
    aclrtDestroyStream(st);
    aclrtFree(own);
    aclrtFreeHost(host);
    drain_errors();
    return allowed;
}

static aclrtMemAccessDesc rw_desc(int32_t dev)
{
    aclrtMemAccessDesc d;
    memset(&d, 0, sizeof(d));
    d.flags = ACL_RT_MEM_ACCESS_FLAGS_READWRITE;
    d.location.type = ACL_MEM_LOCATION_TYPE_DEVICE;
    d.location.id = (uint32_t)dev;
    return d;
}

/* Reserves, maps slot's handle and gives the current device read-write access. */
static aclError agent_map(int slot, size_t size)
{
    void *va = NULL;
    aclError rc = aclrtReserveMemAddress(&va, size, 0, NULL, 0);
    if (rc != ACL_SUCCESS)
        return rc;
    rc = aclrtMapMem(va, size, 0, A.h[slot], 0);
    if (rc == ACL_SUCCESS) {
        aclrtMemAccessDesc d = rw_desc(A.dev);
        rc = aclrtMemSetAccess(va, size, &d, 1);
        if (rc != ACL_SUCCESS)
            aclrtUnmapMem(va);
    }
    if (rc != ACL_SUCCESS) {
        aclrtReleaseMemAddress(va);
        return rc;
    }
    A.ptr[slot] = va;
    A.size[slot] = size;
    A.reserved[slot] = true;
    return ACL_SUCCESS;
}

static aclrtMemSharedHandleType share_type(int how)
{
    return how == 2 ? ACL_MEM_SHARE_HANDLE_TYPE_FABRIC : ACL_MEM_SHARE_HANDLE_TYPE_DEFAULT;
}

/* Where m holds the handle of kind `how`.  Not const: the API takes a void *,
 * though it only reads through it except when an export fills the reply. */
static void *share_ptr(const Msg *m)
{
    return m->how == 2 ? (void *)&m->fabric : (void *)&m->val;
}

static int agent_fork_import(const Msg *m);

static void agent_do(const void *mv, void *rv)
{
    const Msg *m = mv;
    Msg *r = rv;
    int s = m->slot >= 0 && m->slot < NSLOT ? m->slot : 0;
    aclError want = m->want;
    int32_t pids[2] = { m->pid, m->pid2 };
    size_t npids = m->pid2 ? 2 : 1;
    switch (m->op) {
    case OP_INIT:
        r->rc = XRC(aclInit(NULL), ACL_SUCCESS);
        if (r->rc == ACL_SUCCESS)
            r->rc = XRC(aclrtSetDevice(m->dev), want);
        if (r->rc == ACL_SUCCESS) {
            A.dev = m->dev;
            r->rc = XRC(aclrtDeviceGetBareTgid(&r->pid), ACL_SUCCESS);
            CHECKF(r->pid == getpid(), "aclrtDeviceGetBareTgid gave %d, the pid is %d", r->pid,
                   (int)getpid());
        }
        break;
    case OP_MALLOC:
        r->rc = XRC(aclrtMalloc(&A.ptr[s], m->size, (aclrtMemMallocPolicy)m->arg), want);
        if (r->rc == ACL_SUCCESS) {
            A.size[s] = m->size;
            A.reserved[s] = false;
            if (m->seed) {
                r->rc = XRC(agent_write(A.ptr[s], m->size, 0, m->seed), ACL_SUCCESS);
                r->sum = pattern_sum(m->size, m->seed);
            }
        }
        break;
    case OP_FREE:
        r->rc = XRC(aclrtFree(A.ptr[s]), want);
        break;
    case OP_KEY: {
        size_t len = m->how ? (size_t)m->how : 65;
        char key[96];
        memset(key, 0x7f, sizeof(key));
        r->rc = XRC(aclrtIpcMemGetExportKey((uint8_t *)A.ptr[s] + m->arg, m->size, key, len,
                                            m->flags),
                    want);
        if (r->rc == ACL_SUCCESS) {
            CHECKF(strlen(key) == 64 && key[65] == 0x7f,
                   "the key has %zu characters (64 and a NUL expected, in 65 bytes)",
                   strnlen(key, sizeof(key)));
            memcpy(r->key, key, 65);
        }
        break;
    }
    case OP_SETPID:
        r->rc = XRC(aclrtIpcMemSetImportPid(m->key, pids, npids), want);
        break;
    case OP_INTERSERVER: {
        aclrtServerPid sp;
        memset(&sp, 0, sizeof(sp));
        sp.sdid = (uint32_t)m->arg;
        sp.pid = pids;
        sp.num = npids;
        r->rc = XRC(aclrtIpcMemImportPidInterServer(m->key, &sp, 1), want);
        break;
    }
    case OP_SETATTR:
        r->rc = XRC(aclrtIpcMemSetAttr(m->key, ACL_RT_IPC_MEM_ATTR_ACCESS_LINK, m->arg), want);
        break;
    case OP_IMPORT: {
        void *p = NULL;
        r->rc = XRC(aclrtIpcMemImportByKey(&p, m->key, m->flags), want);
        if (r->rc == ACL_SUCCESS) {
            A.ptr[s] = p;
            A.size[s] = 0;
            A.reserved[s] = false;
        }
        break;
    }
    case OP_CLOSE:
        r->rc = XRC(aclrtIpcMemClose(m->key), want);
        break;
    case OP_READ:
        g_async_stage = 0;
        r->rc = agent_read(A.ptr[s], m->size, m->how, &r->sum);
        r->pad = g_async_stage;
        break;
    case OP_WRITE:
        g_async_stage = 0;
        r->rc = agent_write(A.ptr[s], m->size, m->how, m->seed);
        r->pad = g_async_stage;
        break;
    case OP_COPYRULES:
        r->rc = agent_copy_rules(A.ptr[s], m->size, m->how == 0);
        break;
    case OP_PEER:
        r->rc = XRC(aclrtDeviceEnablePeerAccess(m->dev, 0), want);
        break;
    case OP_PHYS: {
        aclrtPhysicalMemProp prop;
        memset(&prop, 0, sizeof(prop));
        prop.handleType = ACL_MEM_HANDLE_TYPE_NONE;
        prop.allocationType = ACL_MEM_ALLOCATION_TYPE_PINNED;
        prop.memAttr = ACL_MEM_HUGE;
        prop.location.type = ACL_MEM_LOCATION_TYPE_DEVICE;
        prop.location.id = (uint32_t)A.dev;
        r->rc = XRC(aclrtMallocPhysical(&A.h[s], m->size, &prop, 0), want);
        if (r->rc == ACL_SUCCESS)
            r->rc = XRC(agent_map(s, m->size), ACL_SUCCESS);
        if (r->rc == ACL_SUCCESS && m->seed) {
            r->rc = XRC(agent_write(A.ptr[s], m->size, 0, m->seed), ACL_SUCCESS);
            r->sum = pattern_sum(m->size, m->seed);
        }
        break;
    }
    case OP_EXPORT_H:
        if (m->how == 0)
            r->rc = XRC(aclrtMemExportToShareableHandle(A.h[s], ACL_MEM_HANDLE_TYPE_NONE, m->flags,
                                                        &r->val),
                        want);
        else
            r->rc = XRC(aclrtMemExportToShareableHandleV2(A.h[s], m->flags, share_type(m->how),
                                                          share_ptr(r)),
                        want);
        break;
    case OP_SETPID_H:
        if (m->how == 0)
            r->rc = XRC(aclrtMemSetPidToShareableHandle(m->val, pids, npids), want);
        else
            r->rc = XRC(aclrtMemSetPidToShareableHandleV2(share_ptr(m), share_type(m->how), pids,
                                                          npids),
                        want);
        break;
    case OP_IMPORT_H: {
        aclrtDrvMemHandle h = NULL;
        if (m->how == 0)
            r->rc = XRC(aclrtMemImportFromShareableHandle(m->val, m->dev, &h), want);
        else
            r->rc = XRC(aclrtMemImportFromShareableHandleV2(share_ptr(m), share_type(m->how), 0,
                                                            &h),
                        want);
        if (r->rc == ACL_SUCCESS)
            A.h[s] = h;
        break;
    }
    case OP_MAP:
        r->rc = XRC(agent_map(s, m->size), want);
        break;
    case OP_UNMAP:
        r->rc = XRC(aclrtUnmapMem(A.ptr[s]), want);
        if (r->rc == ACL_SUCCESS)
            r->rc = XRC(aclrtReleaseMemAddress(A.ptr[s]), ACL_SUCCESS);
        A.reserved[s] = false;
        break;
    case OP_FREEPHYS:
        r->rc = XRC(aclrtFreePhysical(A.h[s]), want);
        break;
    case OP_MEMINFO: {
        size_t f = 0, t = 0;
        r->rc = XRC(aclrtGetMemInfo(ACL_HBM_MEM, &f, &t), want);
        r->val = f;
        break;
    }
    case OP_FORK_IMPORT:
        r->rc = agent_fork_import(m);
        break;
    case OP_HANG:
    case OP_QUIT:
        break;
    default:
        r->rc = -1;
        break;
    }
}

/* A child of this (initialised, possibly whitelisted) agent: it inherits all
 * of its state, calls aclInit itself and tries the import.  Its exit status is
 * 0 when it got the code m->arg. */
static int agent_fork_import(const Msg *m)
{
    fflush(NULL);
    pid_t c = fork();
    if (c == 0) {
        alarm(30 * slow);
        g_child_fails = 0;
        void *p = NULL;
        if (EXPECT_OK(aclInit(NULL)) && EXPECT_OK(aclrtSetDevice(A.dev))) {
            int32_t pid = 0;
            EXPECT_OK(aclrtDeviceGetBareTgid(&pid));
            CHECKF(pid == getpid(), "the grandchild's bare tgid %d is not its pid %d", pid,
                   (int)getpid());
            XRC(aclrtIpcMemImportByKey(&p, m->key, m->flags), (aclError)m->arg);
            aclFinalize();
        }
        fflush(NULL);
        _exit(g_child_fails > 100 ? 100 : g_child_fails);
    }
    int st = 0;
    for (int64_t end = clock_ms() + 20000 * slow; c > 0;) {
        pid_t w = waitpid(c, &st, WNOHANG);
        if (w == c)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (clock_ms() > end) {
            kill(c, SIGKILL);
            waitpid(c, &st, 0);
            return 200;
        }
        g_usleep(5000);
    }
    return -1;
}

/* The harness's loop around agent_do answers OP_EXIT itself, parks the agent
 * after OP_HANG and ends it at once after OP_QUIT. */
static const AgentDef g_agent = {
    .size = sizeof(Msg), .run = agent_do,
    .op_init = OP_INIT, .op_exit = OP_EXIT, .op_hang = OP_HANG, .op_quit = OP_QUIT,
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

/* An agent of the a2 emulator, initialised on device dev. */
static Agent agent(const char *name, int dev)
{
    Agent p = agent_spawn(name, &g_agent, &g_emu, -1);
    Msg r = DO(p, ACL_SUCCESS, .op = OP_INIT, .dev = dev);
    CHECKF(r.pid == p.pid, "%s: aclrtDeviceGetBareTgid %d, fork gave %d", name, r.pid,
           (int)p.pid);
    return p;
}

/* An agent of the a3 emulator on server `server`, device dev. */
static Agent agent3(const char *name, int server, int dev)
{
    Agent p = agent_spawn(name, &g_agent, &g_emu3, server);
    Msg r = DO(p, ACL_SUCCESS, .op = OP_INIT, .dev = dev);
    CHECKF(r.pid == p.pid, "%s: aclrtDeviceGetBareTgid %d, fork gave %d", name, r.pid,
           (int)p.pid);
    return p;
}

static void copy_key(char *dst, const char *src)
{
    memset(dst, 0, 96);
    g_strlcpy(dst, src, 96);
}

/* Msg fields naming an IPC key: .key cannot be set from a string in an
 * initialiser, so scenarios use DOK. */
static Msg with_key(Msg m, const char *key)
{
    copy_key(m.key, key);
    return m;
}

#define DOK(p, want_, key_, ...) \
    do_op(&(p), with_key((Msg){ .want = (want_), __VA_ARGS__ }, (key_)), #__VA_ARGS__, __LINE__)

static Msg with_fabric(Msg m, const aclrtMemFabricHandle *f)
{
    m.fabric = *f;
    return m;
}

#define DOF(p, want_, fab_, ...) \
    do_op(&(p), with_fabric((Msg){ .want = (want_), __VA_ARGS__ }, (fab_)), #__VA_ARGS__, __LINE__)

/* ---- this process's view of HBM (a2, devices 0 and 1) ---- */

static size_t hbm_free_dev(int32_t dev)
{
    size_t f = 0, t = 0;
    aclrtSetDevice(dev);
    aclError rc = aclrtGetMemInfo(ACL_HBM_MEM, &f, &t);
    aclrtSetDevice(0);
    CHECKF(rc == ACL_SUCCESS, "aclrtGetMemInfo on device %d: %d", dev, rc);
    drain_errors();
    return f;
}

typedef struct Hbm {
    size_t free[2];
} Hbm;

static Hbm hbm_now(void)
{
    return (Hbm){ { hbm_free_dev(0), hbm_free_dev(1) } };
}

static bool hbm_equal(void *arg)
{
    const Hbm *b = arg;
    Hbm n = hbm_now();
    return n.free[0] == b->free[0] && n.free[1] == b->free[1];
}

static void hbm_back_at(const Hbm *b, int line)
{
    bool ok = wait_until(hbm_equal, (void *)b, 5000 * slow);
    Hbm n = hbm_now();
    check_impl(ok, __FILE__, line, "scenario",
               "HBM free (device 0, 1) is %zu, %zu; baseline %zu, %zu (leak of %lld, %lld bytes)",
               n.free[0], n.free[1], b->free[0], b->free[1],
               (long long)b->free[0] - (long long)n.free[0],
               (long long)b->free[1] - (long long)n.free[1]);
}

#define HBM_BACK(b) hbm_back_at(&(b), __LINE__)

/* Bytes of device dev's HBM in use now, relative to baseline b. */
static long long hbm_used(const Hbm *b, int dev)
{
    return (long long)b->free[dev] - (long long)hbm_free_dev(dev);
}

/* ---- a3: HBM through an observer agent on (server, device) ---- */

static size_t obs_free(Agent *o)
{
    Msg r = DO(*o, ACL_SUCCESS, .op = OP_MEMINFO);
    return (size_t)r.val;
}

static void obs_back_at(Agent *o, size_t base, int line)
{
    size_t f = 0;
    for (int64_t end = clock_ms() + 5000 * slow;;) {
        f = obs_free(o);
        if (f == base || clock_ms() > end)
            break;
        g_usleep(10000);
    }
    check_impl(f == base, __FILE__, line, "scenario",
               "a3 HBM free %zu, baseline %zu (leak of %lld bytes)", f, base,
               (long long)base - (long long)f);
}

#define OBS_BACK(o, base) obs_back_at(&(o), (base), __LINE__)

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

#define SZ (2 * MiB)
#define HALF (1 * MiB)
#define HUGE_FIRST ACL_MEM_MALLOC_HUGE_FIRST
#define NO_PID ACL_RT_IPC_MEM_EXPORT_FLAG_DISABLE_PID_VALIDATION
#define PEER_FLAG ACL_RT_IPC_MEM_IMPORT_FLAG_ENABLE_PEER_ACCESS
#define V1 0
#define V2 1
#define FABRIC 2

/* ------------------------------------------------------------------------- */
/* IPC memory keys                                                           */
/* ------------------------------------------------------------------------- */

/* The reference flow of 11-07, step by step, on one device. */
static void ipc_reference_flow(uint32_t seed)
{
    Hbm base = hbm_now();
    Agent a = agent("A", 0), b = agent("B", 0);
    Msg m = DO(a, 0, .op = OP_MALLOC, .slot = 0, .size = SZ, .arg = HUGE_FIRST, .seed = seed);
    uint64_t sum_a = m.sum;
    Msg k = DO(a, 0, .op = OP_KEY, .slot = 0, .size = SZ, .flags = 0);
    /* aclrtMalloc's padding rounds 2 MiB up to two huge pages. */
    long long used = hbm_used(&base, 0);
    CHECKF(used >= (long long)SZ && used <= (long long)(2 * SZ), "A's allocation took %lld bytes",
           used);
    /* B gets its pid with aclrtDeviceGetBareTgid (OP_INIT checked it). */
    DOK(a, 0, k.key, .op = OP_SETPID, .pid = b.pid);
    DOK(b, 0, k.key, .op = OP_IMPORT, .slot = 0);
    Msg r = DO(b, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECKF(r.sum == sum_a, "B read %016llx, A wrote %016llx", (unsigned long long)r.sum,
           (unsigned long long)sum_a);
    CHECKF(hbm_used(&base, 0) == used, "with B's import %lld bytes are used, expected only A's "
           "%lld", hbm_used(&base, 0), used);
    DO(b, 0, .op = OP_WRITE, .slot = 0, .size = SZ, .seed = seed + 1);
    r = DO(a, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECKF(r.sum == pattern_sum(SZ, seed + 1), "A does not see B's write");
    /* The importer neither frees nor re-exports what it imported. */
    DO(b, ACL_ERROR_RT_PARAM_INVALID, .op = OP_FREE, .slot = 0);
    DO(b, ACL_ERROR_RT_PARAM_INVALID, .op = OP_KEY, .slot = 0, .size = SZ, .flags = NO_PID);
    r = DO(a, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECKF(r.sum == pattern_sum(SZ, seed + 1), "A's data changed");
    /* On one device the copies refused across devices all work. */
    DO(b, 0, .op = OP_COPYRULES, .slot = 0, .size = 64 * KiB, .how = 1);
    /* And async copies on the same device, both sides. */
    DO(a, 0, .op = OP_WRITE, .slot = 0, .size = SZ, .seed = seed + 2, .how = 1);
    r = DO(b, 0, .op = OP_READ, .slot = 0, .size = SZ, .how = 1);
    CHECKF(r.sum == pattern_sum(SZ, seed + 2), "B does not see A's async write");
    DOK(b, 0, k.key, .op = OP_CLOSE);
    DOK(b, ACL_ERROR_RT_PARAM_INVALID, k.key, .op = OP_CLOSE);     /* closed already */
    /* A closed import can be imported again while the key lives. */
    DOK(b, 0, k.key, .op = OP_IMPORT, .slot = 1);
    r = DO(b, 0, .op = OP_READ, .slot = 1, .size = SZ, .how = 1);
    CHECK(r.sum == pattern_sum(SZ, seed + 2));
    DOK(b, 0, k.key, .op = OP_CLOSE);
    DOK(a, 0, k.key, .op = OP_CLOSE);
    DO(a, 0, .op = OP_FREE, .slot = 0);
    AGENT_FINISH(b);
    AGENT_FINISH(a);
    HBM_BACK(base);
}

TEST(test_ipc_reference_flow)
{
    ipc_reference_flow(100);
}

TEST(test_ipc_disable_pid_validation)
{
    Hbm base = hbm_now();
    Agent a = agent("A", 0), b = agent("B", 0), c = agent("C", 0);
    Msg m = DO(a, 0, .op = OP_MALLOC, .slot = 0, .size = SZ, .arg = HUGE_FIRST, .seed = 110);
    Msg k = DO(a, 0, .op = OP_KEY, .slot = 0, .size = SZ, .flags = NO_PID);
    /* Nobody whitelisted: any process of the server may import. */
    DOK(b, 0, k.key, .op = OP_IMPORT, .slot = 0);
    DOK(c, 0, k.key, .op = OP_IMPORT, .slot = 0);
    Msg r = DO(b, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECK(r.sum == m.sum);
    r = DO(c, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECK(r.sum == m.sum);
    DOK(c, 0, k.key, .op = OP_CLOSE);
    DOK(b, 0, k.key, .op = OP_CLOSE);
    DOK(a, 0, k.key, .op = OP_CLOSE);
    DO(a, 0, .op = OP_FREE, .slot = 0);
    AGENT_FINISH(a);
    AGENT_FINISH(b);
    AGENT_FINISH(c);
    HBM_BACK(base);
}

TEST(test_ipc_not_whitelisted)
{
    Hbm base = hbm_now();
    Agent a = agent("A", 0), b = agent("B", 0), c = agent("C", 0);
    DO(a, 0, .op = OP_MALLOC, .slot = 0, .size = SZ, .arg = HUGE_FIRST, .seed = 120);
    Msg k = DO(a, 0, .op = OP_KEY, .slot = 0, .size = SZ, .flags = 0);
    /* Pid validation on, empty whitelist. */
    DOK(b, ACL_ERROR_RT_NO_PERMISSION, k.key, .op = OP_IMPORT, .slot = 0);
    /* C whitelisted: B still refused, C admitted. */
    DOK(a, 0, k.key, .op = OP_SETPID, .pid = c.pid);
    DOK(b, ACL_ERROR_RT_NO_PERMISSION, k.key, .op = OP_IMPORT, .slot = 0);
    DOK(c, 0, k.key, .op = OP_IMPORT, .slot = 0);
    /* Only the exporter whitelists. */
    DOK(c, ACL_ERROR_RT_PARAM_INVALID, k.key, .op = OP_SETPID, .pid = b.pid);
    DOK(b, ACL_ERROR_RT_NO_PERMISSION, k.key, .op = OP_IMPORT, .slot = 0);
    DOK(c, 0, k.key, .op = OP_CLOSE);
    DOK(a, 0, k.key, .op = OP_CLOSE);
    DO(a, 0, .op = OP_FREE, .slot = 0);
    AGENT_FINISH(a);
    AGENT_FINISH(b);
    AGENT_FINISH(c);
    HBM_BACK(base);
}

/* The whitelist holds the pid the kernel reported for the importer's
 * connection: neither another process nor a child forked from the
 * whitelisted process (after its aclInit, with all its state) gets in. */
TEST(test_ipc_whitelist_kernel_pid)
{
    Hbm base = hbm_now();
    Agent a = agent("A", 0), b = agent("B", 0), c = agent("C", 0);
    Msg m = DO(a, 0, .op = OP_MALLOC, .slot = 0, .size = SZ, .arg = HUGE_FIRST, .seed = 130);
    Msg k = DO(a, 0, .op = OP_KEY, .slot = 0, .size = SZ, .flags = 0);
    DOK(a, 0, k.key, .op = OP_SETPID, .pid = b.pid);
    DOK(c, ACL_ERROR_RT_NO_PERMISSION, k.key, .op = OP_IMPORT, .slot = 0);
    /* B's child, forked after B's aclInit (status 0: it got 207006). */
    DOK(b, 0, k.key, .op = OP_FORK_IMPORT, .arg = ACL_ERROR_RT_NO_PERMISSION);
    DOK(b, 0, k.key, .op = OP_IMPORT, .slot = 0);
    Msg r = DO(b, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECK(r.sum == m.sum);
    DOK(c, ACL_ERROR_RT_NO_PERMISSION, k.key, .op = OP_IMPORT, .slot = 0);
    DOK(b, 0, k.key, .op = OP_CLOSE);
    DOK(a, 0, k.key, .op = OP_CLOSE);
    DO(a, 0, .op = OP_FREE, .slot = 0);
    AGENT_FINISH(a);
    AGENT_FINISH(b);
    AGENT_FINISH(c);
    char *log = emu_log_text(&g_emu);
    char *needle = g_strdup_printf("pid %d refused an IPC key", (int)c.pid);
    CHECKF(strstr(log, needle) != NULL, "the emulator did not log the refusal of C (%d)",
           (int)c.pid);
    g_free(needle);
    g_free(log);
    HBM_BACK(base);
}

TEST(test_ipc_bad_keys)
{
    Hbm base = hbm_now();
    Agent a = agent("A", 0), b = agent("B", 0);
    DO(a, 0, .op = OP_MALLOC, .slot = 0, .size = SZ, .arg = HUGE_FIRST, .seed = 140);
    /* len must hold 65 bytes. */
    DO(a, ACL_ERROR_RT_PARAM_INVALID, .op = OP_KEY, .slot = 0, .size = SZ, .how = 64);
    DO(a, ACL_ERROR_RT_PARAM_INVALID, .op = OP_KEY, .slot = 0, .size = SZ, .how = 1);
    Msg k = DO(a, 0, .op = OP_KEY, .slot = 0, .size = SZ, .flags = NO_PID);
    /* The exporting process cannot import its own key. */
    DOK(a, ACL_ERROR_RT_PARAM_INVALID, k.key, .op = OP_IMPORT, .slot = 1);
    /* A forged key: 64 random hex digits. */
    char forged[96];
    for (int i = 0; i < 64; i++)
        forged[i] = "0123456789abcdef"[g_random_int_range(0, 16)];
    forged[64] = '\0';
    DOK(b, ACL_ERROR_RT_PARAM_INVALID, forged, .op = OP_IMPORT, .slot = 0);
    /* The real key with one digit changed. */
    char near[96];
    copy_key(near, k.key);
    near[10] = near[10] == '0' ? '1' : '0';
    DOK(b, ACL_ERROR_RT_PARAM_INVALID, near, .op = OP_IMPORT, .slot = 0);
    /* Malformed: short, long, upper case, not hex, empty. */
    char shortk[96], longk[96], upper[96];
    copy_key(shortk, k.key);
    shortk[63] = '\0';
    copy_key(longk, k.key);
    longk[64] = 'a';
    longk[65] = '\0';
    copy_key(upper, k.key);
    for (int i = 0; i < 64; i++)
        upper[i] = (char)g_ascii_toupper(upper[i]);
    bool has_letter = strpbrk(k.key, "abcdef") != NULL;
    DOK(b, ACL_ERROR_RT_PARAM_INVALID, shortk, .op = OP_IMPORT, .slot = 0);
    DOK(b, ACL_ERROR_RT_PARAM_INVALID, longk, .op = OP_IMPORT, .slot = 0);
    if (has_letter)
        DOK(b, ACL_ERROR_RT_PARAM_INVALID, upper, .op = OP_IMPORT, .slot = 0);
    DOK(b, ACL_ERROR_RT_PARAM_INVALID, "not a key at all", .op = OP_IMPORT, .slot = 0);
    DOK(b, ACL_ERROR_RT_PARAM_INVALID, "", .op = OP_IMPORT, .slot = 0);
    DOK(b, ACL_ERROR_RT_PARAM_INVALID, forged, .op = OP_CLOSE);
    DOK(a, ACL_ERROR_RT_PARAM_INVALID, forged, .op = OP_SETPID, .pid = b.pid);
    /* The genuine key still works; then a key after its close is dead. */
    DOK(b, 0, k.key, .op = OP_IMPORT, .slot = 0);
    DOK(b, 0, k.key, .op = OP_CLOSE);
    DOK(a, 0, k.key, .op = OP_CLOSE);
    DOK(b, ACL_ERROR_RT_PARAM_INVALID, k.key, .op = OP_IMPORT, .slot = 0);
    DOK(a, ACL_ERROR_RT_PARAM_INVALID, k.key, .op = OP_SETPID, .pid = b.pid);
    /* A key of freed memory (never closed) is dead too. */
    Msg k2 = DO(a, 0, .op = OP_KEY, .slot = 0, .size = SZ, .flags = NO_PID);
    CHECKF(strcmp(k2.key, k.key) != 0, "a second export reused the key");
    DO(a, 0, .op = OP_FREE, .slot = 0);
    DOK(b, ACL_ERROR_RT_PARAM_INVALID, k2.key, .op = OP_IMPORT, .slot = 0);
    DOK(a, 0, k2.key, .op = OP_CLOSE);
    AGENT_FINISH(a);
    AGENT_FINISH(b);
    HBM_BACK(base);
}

/* FAQ ipc_page_alignment: a sub-page slice of a shared block is refused, a
 * 4 KiB HUGE_FIRST allocation and 2 MiB HUGE_ONLY are fine. */
TEST(test_ipc_page_alignment)
{
    Hbm base = hbm_now();
    Agent a = agent("A", 0), b = agent("B", 0);
    DO(a, 0, .op = OP_MALLOC, .slot = 0, .size = 1 * KiB, .arg = HUGE_FIRST, .seed = 150);
    DO(a, ACL_ERROR_RT_PARAM_INVALID, .op = OP_KEY, .slot = 0, .size = 1 * KiB, .flags = NO_PID);
    Msg m = DO(a, 0, .op = OP_MALLOC, .slot = 1, .size = 4 * KiB, .arg = HUGE_FIRST, .seed = 151);
    Msg k = DO(a, 0, .op = OP_KEY, .slot = 1, .size = 4 * KiB, .flags = NO_PID);
    DOK(b, 0, k.key, .op = OP_IMPORT, .slot = 1);
    Msg r = DO(b, 0, .op = OP_READ, .slot = 1, .size = 4 * KiB);
    CHECK(r.sum == m.sum);
    Msg m2 = DO(a, 0, .op = OP_MALLOC, .slot = 2, .size = SZ, .arg = ACL_MEM_MALLOC_HUGE_ONLY,
                .seed = 152);
    Msg k2 = DO(a, 0, .op = OP_KEY, .slot = 2, .size = SZ, .flags = NO_PID);
    /* Not on a page boundary of its allocation, or past its end. */
    DO(a, ACL_ERROR_RT_PARAM_INVALID, .op = OP_KEY, .slot = 2, .size = 4 * KiB, .arg = 1 * KiB);
    DO(a, ACL_ERROR_RT_PARAM_INVALID, .op = OP_KEY, .slot = 2, .size = 2 * SZ + 4 * KiB);
    DOK(b, 0, k2.key, .op = OP_IMPORT, .slot = 2);
    r = DO(b, 0, .op = OP_READ, .slot = 2, .size = SZ);
    CHECK(r.sum == m2.sum);
    DOK(b, 0, k.key, .op = OP_CLOSE);
    DOK(b, 0, k2.key, .op = OP_CLOSE);
    DOK(a, 0, k.key, .op = OP_CLOSE);
    DOK(a, 0, k2.key, .op = OP_CLOSE);
    DO(a, 0, .op = OP_FREE, .slot = 0);
    DO(a, 0, .op = OP_FREE, .slot = 1);
    DO(a, 0, .op = OP_FREE, .slot = 2);
    AGENT_FINISH(a);
    AGENT_FINISH(b);
    HBM_BACK(base);
}

/* A on device 0, B and C on device 1: the import works, sync copies and
 * H2D / D2H are refused, async D2D needs peer access (enabled, or the import
 * flag). */
TEST(test_ipc_other_device)
{
    Hbm base = hbm_now();
    Agent a = agent("A", 0), b = agent("B", 1), c = agent("C", 1);
    Msg m = DO(a, 0, .op = OP_MALLOC, .slot = 0, .size = SZ, .arg = HUGE_FIRST, .seed = 160);
    Msg k = DO(a, 0, .op = OP_KEY, .slot = 0, .size = SZ, .flags = 0);
    DOK(a, 0, k.key, .op = OP_SETPID, .pid = b.pid, .pid2 = c.pid);
    /* B: default flag, no peer access yet. */
    DOK(b, 0, k.key, .op = OP_IMPORT, .slot = 0, .flags = 0);
    Msg r = DO(b, ACL_ERROR_RT_SYS_DMA, .op = OP_READ, .slot = 0, .size = SZ, .how = 1);
    CHECKF(r.pad == 2, "the async read failed at %s, expected at aclrtSynchronizeStream",
           r.pad == 1 ? "aclrtMemcpyAsync" : "no async call");
    r = DO(b, ACL_ERROR_RT_SYS_DMA, .op = OP_WRITE, .slot = 0, .size = SZ, .seed = 161, .how = 1);
    CHECKF(r.pad == 2, "the async write failed at %s, expected at aclrtSynchronizeStream",
           r.pad == 1 ? "aclrtMemcpyAsync" : "no async call");
    r = DO(a, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECKF(r.sum == m.sum, "a refused async write changed A's memory");
    /* Peer access from device 1 to device 0: async D2D both ways. */
    DO(b, 0, .op = OP_PEER, .dev = 0);
    r = DO(b, 0, .op = OP_READ, .slot = 0, .size = SZ, .how = 1);
    CHECKF(r.sum == m.sum, "B (device 1, peer access) did not read A's data");
    DO(b, 0, .op = OP_WRITE, .slot = 0, .size = HALF, .seed = 162, .how = 1);
    r = DO(a, 0, .op = OP_READ, .slot = 0, .size = HALF);
    CHECKF(r.sum == pattern_sum(HALF, 162), "A does not see B's async write");
    /* C: the import flag instead of aclrtDeviceEnablePeerAccess. */
    DOK(c, 0, k.key, .op = OP_IMPORT, .slot = 0, .flags = PEER_FLAG);
    r = DO(c, 0, .op = OP_READ, .slot = 0, .size = HALF, .how = 1);
    CHECKF(r.sum == pattern_sum(HALF, 162), "C (ENABLE_PEER_ACCESS) does not see B's write");
    DO(c, 0, .op = OP_WRITE, .slot = 0, .size = SZ, .seed = 163, .how = 1);
    r = DO(b, 0, .op = OP_READ, .slot = 0, .size = SZ, .how = 1);
    CHECKF(r.sum == pattern_sum(SZ, 163), "B does not see C's write");
    r = DO(a, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECKF(r.sum == pattern_sum(SZ, 163), "A does not see C's write");
    /* The copies the reference refuses on memory of another device, even
     * with peer access (rc: how many were not refused). */
    DO(b, 0, .op = OP_COPYRULES, .slot = 0, .size = 64 * KiB);
    DO(c, 0, .op = OP_COPYRULES, .slot = 0, .size = 64 * KiB);
    DOK(c, 0, k.key, .op = OP_CLOSE);
    DOK(b, 0, k.key, .op = OP_CLOSE);
    DOK(a, 0, k.key, .op = OP_CLOSE);
    DO(a, 0, .op = OP_FREE, .slot = 0);
    AGENT_FINISH(a);
    AGENT_FINISH(b);
    AGENT_FINISH(c);
    HBM_BACK(base);
}

/* Three processes: two importers work on one export together. */
TEST(test_ipc_two_importers)
{
    Hbm base = hbm_now();
    Agent a = agent("A", 0), b = agent("B", 0), c = agent("C", 0);
    Msg m = DO(a, 0, .op = OP_MALLOC, .slot = 0, .size = 2 * SZ, .arg = HUGE_FIRST, .seed = 170);
    Msg k = DO(a, 0, .op = OP_KEY, .slot = 0, .size = 2 * SZ, .flags = 0);
    long long used = hbm_used(&base, 0);
    DOK(a, 0, k.key, .op = OP_SETPID, .pid = b.pid);
    DOK(a, 0, k.key, .op = OP_SETPID, .pid = c.pid);
    DOK(b, 0, k.key, .op = OP_IMPORT, .slot = 0);
    DOK(c, 0, k.key, .op = OP_IMPORT, .slot = 0);
    Msg r = DO(c, 0, .op = OP_READ, .slot = 0, .size = 2 * SZ);
    CHECK(r.sum == m.sum);
    DO(b, 0, .op = OP_WRITE, .slot = 0, .size = 2 * SZ, .seed = 171);
    r = DO(c, 0, .op = OP_READ, .slot = 0, .size = 2 * SZ);
    CHECKF(r.sum == pattern_sum(2 * SZ, 171), "C does not see B's write");
    DO(c, 0, .op = OP_WRITE, .slot = 0, .size = SZ, .seed = 172, .how = 1);
    r = DO(b, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECKF(r.sum == pattern_sum(SZ, 172), "B does not see C's write");
    r = DO(a, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECKF(r.sum == pattern_sum(SZ, 172), "A does not see C's write");
    CHECKF(hbm_used(&base, 0) == used, "%lld bytes used with two imports, %lld before",
           hbm_used(&base, 0), used);
    DOK(b, 0, k.key, .op = OP_CLOSE);
    r = DO(c, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECK(r.sum == pattern_sum(SZ, 172));
    DOK(c, 0, k.key, .op = OP_CLOSE);
    DOK(a, 0, k.key, .op = OP_CLOSE);
    DO(a, 0, .op = OP_FREE, .slot = 0);
    AGENT_FINISH(a);
    AGENT_FINISH(b);
    AGENT_FINISH(c);
    HBM_BACK(base);
}

/* Atlas A2: the A3-only functions are unsupported. */
TEST(test_ipc_a2_unsupported)
{
    Hbm base = hbm_now();
    Agent a = agent("A", 0), b = agent("B", 0);
    DO(a, 0, .op = OP_MALLOC, .slot = 0, .size = SZ, .arg = HUGE_FIRST, .seed = 180);
    Msg k = DO(a, 0, .op = OP_KEY, .slot = 0, .size = SZ, .flags = 0);
    DOK(a, ACL_ERROR_RT_FEATURE_NOT_SUPPORT, k.key, .op = OP_INTERSERVER, .arg = 0, .pid = b.pid);
    DOK(a, ACL_ERROR_RT_FEATURE_NOT_SUPPORT, k.key, .op = OP_SETATTR,
        .arg = ACL_RT_IPC_MEM_ATTR_ACCESS_LINK_HCCS);
    DOK(a, ACL_ERROR_RT_FEATURE_NOT_SUPPORT, k.key, .op = OP_SETATTR,
        .arg = ACL_RT_IPC_MEM_ATTR_ACCESS_LINK_SIO);
    /* Nothing was whitelisted by the refused call. */
    DOK(b, ACL_ERROR_RT_NO_PERMISSION, k.key, .op = OP_IMPORT, .slot = 0);
    DOK(a, 0, k.key, .op = OP_CLOSE);
    DO(a, 0, .op = OP_FREE, .slot = 0);
    AGENT_FINISH(a);
    AGENT_FINISH(b);
    HBM_BACK(base);
}

/* Atlas A3, two servers: SetAttr by the exporter, InterServer whitelists by
 * sdid = server * 16 + device; an IPC key crosses servers only for a pid its
 * exporter whitelisted on that server. */
TEST3(test_ipc_a3)
{
    Agent o = agent3("O", 0, 0);
    size_t f0 = obs_free(&o);
    Agent a = agent3("A", 0, 0), b = agent3("B", 1, 0), c = agent3("C", 0, 3);
    Msg m = DO(a, 0, .op = OP_MALLOC, .slot = 0, .size = SZ, .arg = HUGE_FIRST, .seed = 190);
    Msg k = DO(a, 0, .op = OP_KEY, .slot = 0, .size = SZ, .flags = 0);
    DOK(a, 0, k.key, .op = OP_SETATTR, .arg = ACL_RT_IPC_MEM_ATTR_ACCESS_LINK_HCCS);
    DOK(a, 0, k.key, .op = OP_SETATTR, .arg = ACL_RT_IPC_MEM_ATTR_ACCESS_LINK_SIO);
    DOK(a, ACL_ERROR_RT_PARAM_INVALID, k.key, .op = OP_SETATTR, .arg = 2);
    DOK(c, ACL_ERROR_RT_PARAM_INVALID, k.key, .op = OP_SETATTR,
        .arg = ACL_RT_IPC_MEM_ATTR_ACCESS_LINK_HCCS);
    /* C (server 0) whitelisted as a pid of server 1 only: refused. */
    DOK(a, 0, k.key, .op = OP_INTERSERVER, .arg = 1 * A3_DEVS + 0, .pid = c.pid);
    DOK(c, ACL_ERROR_RT_NO_PERMISSION, k.key, .op = OP_IMPORT, .slot = 0, .flags = PEER_FLAG);
    /* As a pid of server 0 (sdid 3, its own device): admitted. */
    DOK(a, 0, k.key, .op = OP_INTERSERVER, .arg = 0 * A3_DEVS + 3, .pid = c.pid);
    DOK(c, 0, k.key, .op = OP_IMPORT, .slot = 0, .flags = PEER_FLAG);
    Msg r = DO(c, 0, .op = OP_READ, .slot = 0, .size = SZ, .how = 1);
    CHECKF(r.sum == m.sum, "C did not read A's data");
    /* Across servers a key needs its exporter to whitelist exactly that
     * (server, pid): B of server 1 is refused, then admitted as a pid of
     * server 1 (sdid 16 + 5) and reads A's data. */
    DOK(b, ACL_ERROR_RT_PARAM_INVALID, k.key, .op = OP_IMPORT, .slot = 0);
    DOK(a, 0, k.key, .op = OP_INTERSERVER, .arg = 1 * A3_DEVS + 5, .pid = b.pid);
    DOK(b, 0, k.key, .op = OP_IMPORT, .slot = 0);
    Msg rb = DO(b, 0, .op = OP_READ, .slot = 0, .size = SZ, .how = 1);
    CHECKF(rb.sum == m.sum, "B (server 1) did not read A's data");
    DOK(b, 0, k.key, .op = OP_CLOSE);
    /* No server 2; only the exporter whitelists. */
    DOK(a, ACL_ERROR_RT_PARAM_INVALID, k.key, .op = OP_INTERSERVER, .arg = 2 * A3_DEVS,
        .pid = b.pid);
    DOK(c, ACL_ERROR_RT_PARAM_INVALID, k.key, .op = OP_INTERSERVER, .arg = 0, .pid = b.pid);
    /* Disabled validation does not open the key to another server either. */
    Msg k2 = DO(a, 0, .op = OP_KEY, .slot = 0, .size = SZ, .flags = NO_PID);
    DOK(b, ACL_ERROR_RT_PARAM_INVALID, k2.key, .op = OP_IMPORT, .slot = 0);
    DOK(c, 0, k.key, .op = OP_CLOSE);
    DOK(a, 0, k.key, .op = OP_CLOSE);
    DOK(a, 0, k2.key, .op = OP_CLOSE);
    DO(a, 0, .op = OP_FREE, .slot = 0);
    AGENT_FINISH(a);
    AGENT_FINISH(b);
    AGENT_FINISH(c);
    OBS_BACK(o, f0);
    AGENT_FINISH(o);
}

/* ------------------------------------------------------------------------- */
/* shareable handles                                                         */
/* ------------------------------------------------------------------------- */

/* Export of A's handle (how: V1 / V2 DEFAULT) with flags, B whitelisted when
 * validation is on, B imports, maps, and data goes both ways. */
static void handle_flow(int how, uint64_t flags, uint32_t seed)
{
    Hbm base = hbm_now();
    Agent a = agent("A", 0), b = agent("B", 0), c = agent("C", 0);
    Msg m = DO(a, 0, .op = OP_PHYS, .slot = 0, .size = SZ, .seed = seed);
    CHECKF(hbm_used(&base, 0) == (long long)SZ, "the handle took %lld bytes", hbm_used(&base, 0));
    Msg e = DO(a, 0, .op = OP_EXPORT_H, .slot = 0, .how = how, .flags = flags);
    CHECKF(e.val != 0, "shareable handle 0");
    /* One export per handle (any kind). */
    DO(a, ACL_ERROR_RT_PARAM_INVALID, .op = OP_EXPORT_H, .slot = 0, .how = how, .flags = flags);
    DO(a, ACL_ERROR_RT_PARAM_INVALID, .op = OP_EXPORT_H, .slot = 0, .how = 1 - how, .flags = 0);
    if (flags == 0) {
        DO(b, ACL_ERROR_RT_NO_PERMISSION, .op = OP_IMPORT_H, .slot = 0, .how = how, .dev = 0,
           .val = e.val);
        DO(a, 0, .op = OP_SETPID_H, .how = how, .val = e.val, .pid = b.pid);
        /* Only the exporter whitelists. */
        DO(b, ACL_ERROR_RT_PARAM_INVALID, .op = OP_SETPID_H, .how = how, .val = e.val,
           .pid = c.pid);
    }
    /* No such device. */
    if (how == V1)
        DO(b, ACL_ERROR_RT_INVALID_DEVICEID, .op = OP_IMPORT_H, .slot = 0, .how = V1, .dev = 99,
           .val = e.val);
    /* Export and import in one process: refused. */
    DO(a, ACL_ERROR_RT_PARAM_INVALID, .op = OP_IMPORT_H, .slot = 1, .how = how, .dev = 0,
       .val = e.val);
    DO(b, 0, .op = OP_IMPORT_H, .slot = 0, .how = how, .dev = 0, .val = e.val);
    /* Twice in one process: refused. */
    DO(b, ACL_ERROR_RT_PARAM_INVALID, .op = OP_IMPORT_H, .slot = 1, .how = how, .dev = 0,
       .val = e.val);
    /* Nor export what it imported. */
    DO(b, ACL_ERROR_RT_PARAM_INVALID, .op = OP_EXPORT_H, .slot = 0, .how = how, .flags = NO_PID);
    DO(b, 0, .op = OP_MAP, .slot = 0, .size = SZ);
    Msg r = DO(b, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECKF(r.sum == m.sum, "B did not read A's data through the imported handle");
    DO(b, 0, .op = OP_WRITE, .slot = 0, .size = SZ, .seed = seed + 1);
    r = DO(a, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECKF(r.sum == pattern_sum(SZ, seed + 1), "A does not see B's write");
    DO(a, 0, .op = OP_WRITE, .slot = 0, .size = SZ, .seed = seed + 2, .how = 1);
    r = DO(b, 0, .op = OP_READ, .slot = 0, .size = SZ, .how = 1);
    CHECKF(r.sum == pattern_sum(SZ, seed + 2), "B does not see A's async write");
    CHECKF(hbm_used(&base, 0) == (long long)SZ, "with B's import %lld bytes are used",
           hbm_used(&base, 0));
    /* C: refused with validation on (not whitelisted), admitted without. */
    DO(c, flags == 0 ? ACL_ERROR_RT_NO_PERMISSION : ACL_SUCCESS, .op = OP_IMPORT_H, .slot = 0,
       .how = how, .dev = 0, .val = e.val);
    if (flags != 0)
        DO(c, 0, .op = OP_FREEPHYS, .slot = 0);
    DO(b, 0, .op = OP_UNMAP, .slot = 0);
    DO(b, 0, .op = OP_FREEPHYS, .slot = 0);
    DO(a, 0, .op = OP_UNMAP, .slot = 0);
    DO(a, 0, .op = OP_FREEPHYS, .slot = 0);
    AGENT_FINISH(a);
    AGENT_FINISH(b);
    AGENT_FINISH(c);
    HBM_BACK(base);
}

TEST(test_handle_v1_pid)
{
    handle_flow(V1, 0, 200);
}

TEST(test_handle_v1_no_pid)
{
    handle_flow(V1, ACL_RT_VMM_EXPORT_FLAG_DISABLE_PID_VALIDATION, 210);
}

TEST(test_handle_v2_pid)
{
    handle_flow(V2, 0, 220);
}

TEST(test_handle_v2_no_pid)
{
    handle_flow(V2, ACL_RT_VMM_EXPORT_FLAG_DISABLE_PID_VALIDATION, 230);
}

/* V1 imports onto the device it names: device 1 here, memory of device 0
 * (cross-device VMM sharing needs peer access, 11-04). */
TEST(test_handle_v1_other_device)
{
    Hbm base = hbm_now();
    Agent a = agent("A", 0), b = agent("B", 1);
    Msg m = DO(a, 0, .op = OP_PHYS, .slot = 0, .size = SZ, .seed = 240);
    Msg e = DO(a, 0, .op = OP_EXPORT_H, .slot = 0, .how = V1, .flags = 0);
    DO(a, 0, .op = OP_SETPID_H, .how = V1, .val = e.val, .pid = b.pid);
    DO(b, 0, .op = OP_IMPORT_H, .slot = 0, .how = V1, .dev = 1, .val = e.val);
    DO(b, 0, .op = OP_MAP, .slot = 0, .size = SZ);
    Msg r = DO(b, ACL_ERROR_RT_SYS_DMA, .op = OP_READ, .slot = 0, .size = SZ, .how = 1);
    CHECKF(r.pad == 2, "the async read failed at stage %u, expected at aclrtSynchronizeStream",
           r.pad);
    DO(b, 0, .op = OP_PEER, .dev = 0);
    r = DO(b, 0, .op = OP_READ, .slot = 0, .size = SZ, .how = 1);
    CHECKF(r.sum == m.sum, "B (device 1) did not read A's data");
    DO(b, 0, .op = OP_WRITE, .slot = 0, .size = SZ, .seed = 241, .how = 1);
    r = DO(a, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECKF(r.sum == pattern_sum(SZ, 241), "A does not see B's write");
    CHECKF(hbm_used(&base, 1) == 0, "the import took %lld bytes of device 1", hbm_used(&base, 1));
    DO(b, 0, .op = OP_UNMAP, .slot = 0);
    DO(b, 0, .op = OP_FREEPHYS, .slot = 0);
    DO(a, 0, .op = OP_UNMAP, .slot = 0);
    DO(a, 0, .op = OP_FREEPHYS, .slot = 0);
    AGENT_FINISH(a);
    AGENT_FINISH(b);
    HBM_BACK(base);
}

/* FABRIC is an A3 type: 207000 on A2 (export, set pid, import). */
TEST(test_handle_fabric_a2)
{
    Hbm base = hbm_now();
    Agent a = agent("A", 0), b = agent("B", 0);
    DO(a, 0, .op = OP_PHYS, .slot = 0, .size = SZ, .seed = 250);
    DO(a, ACL_ERROR_RT_FEATURE_NOT_SUPPORT, .op = OP_EXPORT_H, .slot = 0, .how = FABRIC);
    aclrtMemFabricHandle f;
    memset(&f, 0x5a, sizeof(f));
    DOF(a, ACL_ERROR_RT_FEATURE_NOT_SUPPORT, &f, .op = OP_SETPID_H, .how = FABRIC, .pid = b.pid);
    DOF(b, ACL_ERROR_RT_FEATURE_NOT_SUPPORT, &f, .op = OP_IMPORT_H, .slot = 0, .how = FABRIC);
    /* The handle is still exportable as DEFAULT. */
    Msg e = DO(a, 0, .op = OP_EXPORT_H, .slot = 0, .how = V2, .flags = NO_PID);
    DO(b, 0, .op = OP_IMPORT_H, .slot = 0, .how = V2, .val = e.val);
    DO(b, 0, .op = OP_FREEPHYS, .slot = 0);
    DO(a, 0, .op = OP_UNMAP, .slot = 0);
    DO(a, 0, .op = OP_FREEPHYS, .slot = 0);
    AGENT_FINISH(a);
    AGENT_FINISH(b);
    HBM_BACK(base);
}

/* A3 with two servers: DEFAULT stays within a server, FABRIC crosses. */
TEST3(test_handle_a3_servers)
{
    Agent o = agent3("O", 0, 0);
    size_t f0 = obs_free(&o);
    Agent a = agent3("A", 0, 0), b = agent3("B", 1, 0), c = agent3("C", 1, 2),
         d = agent3("D", 0, 0);
    Msg m0 = DO(a, 0, .op = OP_PHYS, .slot = 0, .size = SZ, .seed = 260);
    Msg m1 = DO(a, 0, .op = OP_PHYS, .slot = 1, .size = SZ, .seed = 261);
    CHECKF(f0 - obs_free(&o) == 2 * SZ, "A's handles took %zu bytes", f0 - obs_free(&o));
    /* DEFAULT: server 0 only. */
    Msg e0 = DO(a, 0, .op = OP_EXPORT_H, .slot = 0, .how = V2, .flags = NO_PID);
    DO(b, ACL_ERROR_RT_PARAM_INVALID, .op = OP_IMPORT_H, .slot = 0, .how = V2, .val = e0.val);
    DO(b, ACL_ERROR_RT_PARAM_INVALID, .op = OP_IMPORT_H, .slot = 0, .how = V1, .dev = 0,
       .val = e0.val);
    DO(d, 0, .op = OP_IMPORT_H, .slot = 0, .how = V2, .val = e0.val);
    DO(d, 0, .op = OP_MAP, .slot = 0, .size = SZ);
    Msg r = DO(d, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECK(r.sum == m0.sum);
    /* FABRIC with pid validation: B of server 1 whitelisted, C not. */
    Msg e1 = DO(a, 0, .op = OP_EXPORT_H, .slot = 1, .how = FABRIC, .flags = 0);
    DO(a, ACL_ERROR_RT_PARAM_INVALID, .op = OP_EXPORT_H, .slot = 1, .how = FABRIC, .flags = 0);
    DOF(b, ACL_ERROR_RT_NO_PERMISSION, &e1.fabric, .op = OP_IMPORT_H, .slot = 1, .how = FABRIC);
    DOF(a, 0, &e1.fabric, .op = OP_SETPID_H, .how = FABRIC, .pid = b.pid);
    DOF(b, 0, &e1.fabric, .op = OP_IMPORT_H, .slot = 1, .how = FABRIC);
    DOF(b, ACL_ERROR_RT_PARAM_INVALID, &e1.fabric, .op = OP_IMPORT_H, .slot = 2, .how = FABRIC);
    DOF(c, ACL_ERROR_RT_NO_PERMISSION, &e1.fabric, .op = OP_IMPORT_H, .slot = 1, .how = FABRIC);
    DOF(a, ACL_ERROR_RT_PARAM_INVALID, &e1.fabric, .op = OP_IMPORT_H, .slot = 2, .how = FABRIC);
    DO(b, 0, .op = OP_MAP, .slot = 1, .size = SZ);
    r = DO(b, 0, .op = OP_READ, .slot = 1, .size = SZ);
    CHECKF(r.sum == m1.sum, "B (server 1) did not read A's data through FABRIC");
    DO(b, 0, .op = OP_WRITE, .slot = 1, .size = SZ, .seed = 262, .how = 1);
    r = DO(a, 0, .op = OP_READ, .slot = 1, .size = SZ);
    CHECKF(r.sum == pattern_sum(SZ, 262), "A does not see B's write from server 1");
    /* A forged FABRIC handle. */
    aclrtMemFabricHandle forged = e1.fabric;
    forged.data[20] ^= 0xff;
    DOF(c, ACL_ERROR_RT_PARAM_INVALID, &forged, .op = OP_IMPORT_H, .slot = 1, .how = FABRIC);
    /* An IPC key of server 0 from server 1: refused. */
    DO(a, 0, .op = OP_MALLOC, .slot = 2, .size = SZ, .arg = HUGE_FIRST, .seed = 263);
    Msg k = DO(a, 0, .op = OP_KEY, .slot = 2, .size = SZ, .flags = NO_PID);
    DOK(b, ACL_ERROR_RT_PARAM_INVALID, k.key, .op = OP_IMPORT, .slot = 2);
    DOK(a, 0, k.key, .op = OP_CLOSE);
    DO(a, 0, .op = OP_FREE, .slot = 2);
    /* The exporter frees first; B's view lives on until it frees. */
    DO(a, 0, .op = OP_UNMAP, .slot = 1);
    DO(a, 0, .op = OP_FREEPHYS, .slot = 1);
    r = DO(b, 0, .op = OP_READ, .slot = 1, .size = SZ);
    CHECKF(r.sum == pattern_sum(SZ, 262), "B's data changed after A freed its handle");
    DO(b, 0, .op = OP_UNMAP, .slot = 1);
    DO(b, 0, .op = OP_FREEPHYS, .slot = 1);
    DO(d, 0, .op = OP_UNMAP, .slot = 0);
    DO(d, 0, .op = OP_FREEPHYS, .slot = 0);
    DO(a, 0, .op = OP_UNMAP, .slot = 0);
    DO(a, 0, .op = OP_FREEPHYS, .slot = 0);
    AGENT_FINISH(a);
    AGENT_FINISH(b);
    AGENT_FINISH(c);
    AGENT_FINISH(d);
    OBS_BACK(o, f0);
    AGENT_FINISH(o);
}

/* ------------------------------------------------------------------------- */
/* lifetimes and death                                                       */
/* ------------------------------------------------------------------------- */

/* The exporter leaves after exporting (how 0: _exit without cleanup, 1:
 * SIGKILL) and before the import: the imports fail, nothing leaks. */
static void exporter_leaves(bool killed)
{
    Hbm base = hbm_now();
    Agent a = agent("A", 0), b = agent("B", 0);
    DO(a, 0, .op = OP_MALLOC, .slot = 0, .size = SZ, .arg = HUGE_FIRST, .seed = 300);
    Msg k = DO(a, 0, .op = OP_KEY, .slot = 0, .size = SZ, .flags = 0);
    DOK(a, 0, k.key, .op = OP_SETPID, .pid = b.pid);
    long long used = hbm_used(&base, 0);
    DO(a, 0, .op = OP_PHYS, .slot = 1, .size = SZ, .seed = 301);
    Msg e = DO(a, 0, .op = OP_EXPORT_H, .slot = 1, .how = V1, .flags = 0);
    DO(a, 0, .op = OP_SETPID_H, .how = V1, .val = e.val, .pid = b.pid);
    CHECKF(hbm_used(&base, 0) == used + (long long)SZ, "A took %lld bytes", hbm_used(&base, 0));
    if (killed) {
        DO(a, 0, .op = OP_HANG);
        AGENT_KILL(a, &g_emu, "2 exports");
    } else {
        DO(a, 0, .op = OP_QUIT);
        int st = agent_reap(&a);
        CHECKF(st == 0, "A's status %d", st);
        char *line = emu_gone_line(&g_emu, a.pid);
        CHECKF(line != NULL, "the emulator did not log A (%d) gone", (int)a.pid);
        if (line)
            CHECKF(strstr(line, "2 exports") != NULL, "reclaim of A: %s", line);
        g_free(line);
    }
    DOK(b, ACL_ERROR_RT_PARAM_INVALID, k.key, .op = OP_IMPORT, .slot = 0);
    DO(b, ACL_ERROR_RT_PARAM_INVALID, .op = OP_IMPORT_H, .slot = 1, .how = V1, .dev = 0,
       .val = e.val);
    AGENT_FINISH(b);
    HBM_BACK(base);
}

TEST(test_exporter_exits_before_import)
{
    exporter_leaves(false);
}

TEST(test_exporter_killed_before_import)
{
    exporter_leaves(true);
}

/* The importer is killed with both kinds of import mapped: the emulator
 * reclaims them; the exporter goes on as if nothing happened. */
TEST(test_importer_killed)
{
    Hbm base = hbm_now();
    Agent a = agent("A", 0), b = agent("B", 0);
    Msg m = DO(a, 0, .op = OP_MALLOC, .slot = 0, .size = SZ, .arg = HUGE_FIRST, .seed = 310);
    Msg k = DO(a, 0, .op = OP_KEY, .slot = 0, .size = SZ, .flags = NO_PID);
    Msg p = DO(a, 0, .op = OP_PHYS, .slot = 1, .size = SZ, .seed = 311);
    long long used = hbm_used(&base, 0);
    Msg e = DO(a, 0, .op = OP_EXPORT_H, .slot = 1, .how = V2, .flags = NO_PID);
    DOK(b, 0, k.key, .op = OP_IMPORT, .slot = 0);
    DO(b, 0, .op = OP_IMPORT_H, .slot = 1, .how = V2, .val = e.val);
    DO(b, 0, .op = OP_MAP, .slot = 1, .size = SZ);
    Msg r = DO(b, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECK(r.sum == m.sum);
    r = DO(b, 0, .op = OP_READ, .slot = 1, .size = SZ, .how = 1);
    CHECK(r.sum == p.sum);
    DO(b, 0, .op = OP_HANG);
    /* Its imported handle (2 MiB, mapped), no allocations, no exports. */
    AGENT_KILL(b, &g_emu, "0 allocations (0 bytes of HBM), 1 physical handles (2097152 bytes)");
    /* A's memory and data are untouched and usable. */
    r = DO(a, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECKF(r.sum == m.sum, "A's IPC memory changed when B died");
    r = DO(a, 0, .op = OP_READ, .slot = 1, .size = SZ, .how = 1);
    CHECKF(r.sum == p.sum, "A's handle memory changed when B died");
    DO(a, 0, .op = OP_WRITE, .slot = 0, .size = SZ, .seed = 312, .how = 1);
    r = DO(a, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECK(r.sum == pattern_sum(SZ, 312));
    CHECKF(hbm_used(&base, 0) == used, "%lld bytes used after B died, %lld before",
           hbm_used(&base, 0), used);
    /* The exports are still there for a new importer. */
    Agent c = agent("C", 0);
    DOK(c, 0, k.key, .op = OP_IMPORT, .slot = 0);
    r = DO(c, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECK(r.sum == pattern_sum(SZ, 312));
    DOK(c, 0, k.key, .op = OP_CLOSE);
    DOK(a, 0, k.key, .op = OP_CLOSE);
    DO(a, 0, .op = OP_FREE, .slot = 0);
    DO(a, 0, .op = OP_UNMAP, .slot = 1);
    DO(a, 0, .op = OP_FREEPHYS, .slot = 1);
    AGENT_FINISH(a);
    AGENT_FINISH(c);
    HBM_BACK(base);
    /* The emulator keeps serving. */
    CHECK(emu_alive());
    ipc_reference_flow(313);
}

/* The exporter frees its aclrtMalloc memory (without closing the key first)
 * while the importer uses it: the importer's data stays valid and usable until
 * it closes; then HBM comes back. */
TEST(test_ipc_exporter_frees_first)
{
    Hbm base = hbm_now();
    Agent a = agent("A", 0), b = agent("B", 0), c = agent("C", 0);
    Msg m = DO(a, 0, .op = OP_MALLOC, .slot = 0, .size = SZ, .arg = HUGE_FIRST, .seed = 320);
    Msg k = DO(a, 0, .op = OP_KEY, .slot = 0, .size = SZ, .flags = NO_PID);
    long long used = hbm_used(&base, 0);
    DOK(b, 0, k.key, .op = OP_IMPORT, .slot = 0);
    DO(a, 0, .op = OP_FREE, .slot = 0);
    CHECKF(hbm_used(&base, 0) == used, "%lld bytes in use after A's free, expected the imported "
           "%lld", hbm_used(&base, 0), used);
    /* No new import after the free. */
    DOK(c, ACL_ERROR_RT_PARAM_INVALID, k.key, .op = OP_IMPORT, .slot = 0);
    Msg r = DO(b, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECKF(r.sum == m.sum, "B's data changed when A freed the memory");
    DO(b, 0, .op = OP_WRITE, .slot = 0, .size = SZ, .seed = 321, .how = 1);
    r = DO(b, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECK(r.sum == pattern_sum(SZ, 321));
    /* A's own allocations do not reuse B's memory. */
    DO(a, 0, .op = OP_MALLOC, .slot = 1, .size = SZ, .arg = HUGE_FIRST, .seed = 322);
    r = DO(b, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECKF(r.sum == pattern_sum(SZ, 321), "A's new allocation overwrote B's import");
    DO(a, 0, .op = OP_FREE, .slot = 1);
    DOK(a, 0, k.key, .op = OP_CLOSE);     /* closing after the free is fine */
    DOK(b, 0, k.key, .op = OP_CLOSE);
    AGENT_FINISH(a);
    AGENT_FINISH(b);
    AGENT_FINISH(c);
    HBM_BACK(base);
}

/* The physical memory lives until every importer freed its handle, however
 * early the exporter freed its own. */
TEST(test_handle_exporter_frees_first)
{
    Hbm base = hbm_now();
    Agent a = agent("A", 0), b = agent("B", 0), c = agent("C", 0), d = agent("D", 0);
    Msg m = DO(a, 0, .op = OP_PHYS, .slot = 0, .size = SZ, .seed = 330);
    Msg e = DO(a, 0, .op = OP_EXPORT_H, .slot = 0, .how = V2, .flags = 0);
    DO(a, 0, .op = OP_SETPID_H, .how = V2, .val = e.val, .pid = b.pid, .pid2 = c.pid);
    DO(a, 0, .op = OP_SETPID_H, .how = V2, .val = e.val, .pid = d.pid);
    DO(b, 0, .op = OP_IMPORT_H, .slot = 0, .how = V2, .val = e.val);
    DO(c, 0, .op = OP_IMPORT_H, .slot = 0, .how = V2, .val = e.val);
    DO(b, 0, .op = OP_MAP, .slot = 0, .size = SZ);
    DO(c, 0, .op = OP_MAP, .slot = 0, .size = SZ);
    DO(a, 0, .op = OP_UNMAP, .slot = 0);
    DO(a, 0, .op = OP_FREEPHYS, .slot = 0);
    CHECKF(hbm_used(&base, 0) == (long long)SZ, "%lld bytes in use after A's free",
           hbm_used(&base, 0));
    /* The export ended with A's handle: D (whitelisted) comes too late. */
    DO(d, ACL_ERROR_RT_PARAM_INVALID, .op = OP_IMPORT_H, .slot = 0, .how = V2, .val = e.val);
    Msg r = DO(b, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECKF(r.sum == m.sum, "B's data changed when A freed its handle");
    DO(b, 0, .op = OP_WRITE, .slot = 0, .size = SZ, .seed = 331, .how = 1);
    r = DO(c, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECKF(r.sum == pattern_sum(SZ, 331), "C does not see B's write");
    DO(b, 0, .op = OP_UNMAP, .slot = 0);
    DO(b, 0, .op = OP_FREEPHYS, .slot = 0);
    CHECKF(hbm_used(&base, 0) == (long long)SZ, "%lld bytes in use while C holds the memory",
           hbm_used(&base, 0));
    r = DO(c, 0, .op = OP_READ, .slot = 0, .size = SZ, .how = 1);
    CHECKF(r.sum == pattern_sum(SZ, 331), "C's data changed when B freed its handle");
    DO(c, 0, .op = OP_WRITE, .slot = 0, .size = SZ, .seed = 332);
    r = DO(c, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECK(r.sum == pattern_sum(SZ, 332));
    /* A handle freed before unmapping stays until the unmap. */
    DO(c, 0, .op = OP_FREEPHYS, .slot = 0);
    r = DO(c, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECK(r.sum == pattern_sum(SZ, 332));
    DO(c, 0, .op = OP_UNMAP, .slot = 0);
    AGENT_FINISH(a);
    AGENT_FINISH(b);
    AGENT_FINISH(c);
    AGENT_FINISH(d);
    HBM_BACK(base);
}

/* aclrtFreePhysical destroys the exporter's handle even while it is still
 * mapped (the memory waits for the unmap): its shareable handle ends with it,
 * as "若A进程提前销毁，B进程会导入失败" says. */
TEST(test_handle_freed_while_mapped)
{
    Hbm base = hbm_now();
    Agent a = agent("A", 0), b = agent("B", 0);
    Msg m = DO(a, 0, .op = OP_PHYS, .slot = 0, .size = SZ, .seed = 350);
    Msg e = DO(a, 0, .op = OP_EXPORT_H, .slot = 0, .how = V2, .flags = NO_PID);
    DO(a, 0, .op = OP_FREEPHYS, .slot = 0);
    Msg r = DO(a, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECKF(r.sum == m.sum, "A's mapping lost its data when the handle was freed");
    DO(b, ACL_ERROR_RT_PARAM_INVALID, .op = OP_IMPORT_H, .slot = 0, .how = V2, .val = e.val);
    DO(a, 0, .op = OP_UNMAP, .slot = 0);
    DO(b, ACL_ERROR_RT_PARAM_INVALID, .op = OP_IMPORT_H, .slot = 0, .how = V2, .val = e.val);
    AGENT_FINISH(a);
    AGENT_FINISH(b);
    HBM_BACK(base);
}

/* The exporter dies while importers use the memory: they keep it. */
TEST(test_exporter_killed_while_imported)
{
    Hbm base = hbm_now();
    Agent a = agent("A", 0), b = agent("B", 0);
    Msg m = DO(a, 0, .op = OP_MALLOC, .slot = 0, .size = SZ, .arg = HUGE_FIRST, .seed = 340);
    Msg k = DO(a, 0, .op = OP_KEY, .slot = 0, .size = SZ, .flags = NO_PID);
    Msg p = DO(a, 0, .op = OP_PHYS, .slot = 1, .size = SZ, .seed = 341);
    long long used = hbm_used(&base, 0);
    Msg e = DO(a, 0, .op = OP_EXPORT_H, .slot = 1, .how = V1, .flags = NO_PID);
    DOK(b, 0, k.key, .op = OP_IMPORT, .slot = 0);
    DO(b, 0, .op = OP_IMPORT_H, .slot = 1, .how = V1, .dev = 0, .val = e.val);
    DO(b, 0, .op = OP_MAP, .slot = 1, .size = SZ);
    DO(a, 0, .op = OP_HANG);
    AGENT_KILL(a, &g_emu, "2 exports");
    CHECKF(hbm_used(&base, 0) == used, "%lld bytes in use after A died, %lld before",
           hbm_used(&base, 0), used);
    Msg r = DO(b, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECK(r.sum == m.sum);
    r = DO(b, 0, .op = OP_READ, .slot = 1, .size = SZ);
    CHECK(r.sum == p.sum);
    DO(b, 0, .op = OP_WRITE, .slot = 0, .size = SZ, .seed = 342, .how = 1);
    r = DO(b, 0, .op = OP_READ, .slot = 0, .size = SZ);
    CHECK(r.sum == pattern_sum(SZ, 342));
    DOK(b, 0, k.key, .op = OP_CLOSE);
    DO(b, 0, .op = OP_UNMAP, .slot = 1);
    DO(b, 0, .op = OP_FREEPHYS, .slot = 1);
    AGENT_FINISH(b);
    HBM_BACK(base);
}

/* ---- main ---- */

int main(void)
{
    static const TestCase tests[] = {
        T(test_ipc_reference_flow), T(test_ipc_disable_pid_validation),
        T(test_ipc_not_whitelisted), T(test_ipc_whitelist_kernel_pid), T(test_ipc_bad_keys),
        T(test_ipc_page_alignment), T(test_ipc_other_device), T(test_ipc_two_importers),
        T(test_ipc_a2_unsupported), T(test_ipc_a3),
        T(test_handle_v1_pid), T(test_handle_v1_no_pid), T(test_handle_v2_pid),
        T(test_handle_v2_no_pid), T(test_handle_v1_other_device), T(test_handle_fabric_a2),
        T(test_handle_a3_servers),
        T(test_exporter_exits_before_import), T(test_exporter_killed_before_import),
        T(test_importer_killed), T(test_ipc_exporter_frees_first),
        T(test_handle_exporter_frees_first), T(test_handle_freed_while_mapped),
        T(test_exporter_killed_while_imported),
    };
    /* Without the a3 emulator only its tests fail. */
    static const char *const servers[] = { "--servers", "2", NULL };
    static const TestProgram prog = {
        .name = "test_ipc",
        .emus = { { &g_emu3, "a3", servers, &g_emu3_ok }, EMU(&g_emu, "a2") },
        .suites = { SUITE("sharing between processes", NULL, NULL, tests) },
        .devices = DEV(1) | DEV(0), .reset = DEV(1) | DEV(0), .only_env = "IPC_ONLY",
    };
    return test_main(&prog);
}
