/*
 * test_multiprocess.c - integration tests with real processes: the npu-emu
 * device process and several client processes using libascendcl.so.
 *
 * Concepts:
 *  - One shared emulator (profile a2) serves most tests; the tests of the
 *    embedded default (no emulator: the runtime starts one) and of the uid check
 *    start their own.
 *  - Clients are forked children that call aclInit themselves, or this same
 *    binary re-executed in a helper mode (argv[1] == "--child-churn") when a
 *    pristine process is wanted.  A child reports through its exit code (0 =
 *    ok, a distinct nonzero code per failure point) and explains failures on its
 *    stderr, which the parent collects and prints.  Children synchronise with the
 *    parent over close-on-exec pipes.
 *  - The parent is a client too (after the first test that needs it): it reads
 *    aclrtGetMemInfo to check that memory comes back to its baseline.
 *  - Every wait is bounded: children run under alarm(), the parent polls with
 *    deadlines, so no test can hang.  If a test kills the shared emulator (a
 *    failure it reports), the next test starts a new one.
 *  - Debugging: MP_ONLY=word runs the tests whose name contains it, MP_SEED=n
 *    replays the channel fuzzer, MP_VERBOSE=1 prints every child's stderr,
 *    MP_KEEP=1 keeps the emulators' logs.
 */
#define _GNU_SOURCE
#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acl/acl.h"
#include "harness.h"
#include "npuemu/futex.h"
#include "npuemu/proto.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)

#define NDEV 8                      /* a2: 8 x Ascend 910B */
#define HBM_TOTAL (64ull * GiB)

static const unsigned slow = TEST_SLOW;

static TestEmu g_emu;               /* the shared emulator */
static bool g_emu_ok;
static bool g_parent_client;        /* the parent called aclInit on g_emu */

/* ------------------------------------------------------------------------- */
/* data patterns and checksums                                               */
/* ------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* A pattern that differs for every seed and every 8-byte word. */
static void fill_pattern(void *p, size_t n, uint64_t seed)
{
    uint8_t *b = p;
    size_t i = 0;
    seed = mix64(seed * 0x9e3779b97f4a7c15ull + 1);
    for (; i + 8 <= n; i += 8) {
        uint64_t v = mix64(seed + i);
        memcpy(b + i, &v, 8);
    }
    if (i < n) {
        uint64_t v = mix64(seed + i);
        memcpy(b + i, &v, n - i);
    }
}

/* 64-bit FNV-1a over 8-byte words (then the tail bytes), finished with a mix. */
static uint64_t checksum(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, b + i, 8);
        h ^= v;
        h *= 0x100000001b3ull;
    }
    for (; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return mix64(h ^ n);
}

/* Offset of the first byte != value, or n. */
static size_t first_not(const void *p, size_t n, uint8_t value)
{
    const uint8_t *b = p;
    uint64_t w = 0x0101010101010101ull * value;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, b + i, 8);
        if (v != w)
            break;
    }
    for (; i < n; i++)
        if (b[i] != value)
            return i;
    return n;
}

static void sleep_ms(int ms)
{
    g_usleep((gulong)ms * 1000);
}

/* ------------------------------------------------------------------------- */
/* child side: failure reporting                                             */
/* ------------------------------------------------------------------------- */

/* Prints where and why a child failed; returns its exit code (1..120, derived
 * from the line, so each failure point has its own code). */
static int child_fail(const char *fn, int line, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static int child_fail(const char *fn, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "  child %d: %s:%d: ", (int)getpid(), fn, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    return line % 120 + 1;
}

#define CFAIL(...) child_fail(__func__, __LINE__, __VA_ARGS__)
/* An acl call that must succeed. */
#define CACL(call)                                                                   \
    do {                                                                             \
        aclError e_ = (call);                                                        \
        if (e_ != ACL_SUCCESS) {                                                     \
            const char *m_ = aclGetRecentErrMsg();                                   \
            return CFAIL("%s -> %d (%s)", #call, (int)e_, m_ ? m_ : "no message");   \
        }                                                                            \
    } while (0)
#define CCHECK(cond)                                                                 \
    do {                                                                             \
        if (!(cond))                                                                 \
            return CFAIL("check failed: %s", #cond);                                 \
    } while (0)
#define CCHECKF(cond, fmt, ...)                                                      \
    do {                                                                             \
        if (!(cond))                                                                 \
            return CFAIL("check failed: %s: " fmt, #cond, __VA_ARGS__);              \
    } while (0)
#define CTRY(x)                                                                      \
    do {                                                                             \
        int r_ = (x);                                                                \
        if (r_)                                                                      \
            return r_;                                                               \
    } while (0)

/* ------------------------------------------------------------------------- */
/* parent side: children, pipes, logs                                        */
/* ------------------------------------------------------------------------- */

typedef struct Kid {
    const char *name;
    pid_t pid;
    int errfd;
} Kid;

typedef struct Tramp {
    int (*fn)(void *);
    void *arg;
    unsigned alarm_s;
} Tramp;

/* Pipe ends only the parent may hold (the write end of a barrier, ...): a child
 * closes them first, or it would keep its own barrier from opening. */
static int parent_only[16];
static unsigned n_parent_only;

static void parent_hold(int fd)
{
    g_assert(n_parent_only < G_N_ELEMENTS(parent_only));
    parent_only[n_parent_only++] = fd;
}

/* Closes a parent-only fd in the parent. */
static void parent_close(int fd)
{
    for (unsigned i = 0; i < n_parent_only; i++)
        if (parent_only[i] == fd) {
            parent_only[i] = parent_only[--n_parent_only];
            break;
        }
    close(fd);
}

static int tramp(void *p)
{
    Tramp *t = p;
    for (unsigned i = 0; i < n_parent_only; i++)
        close(parent_only[i]);
    alarm(t->alarm_s * slow);   /* safety net: a stuck child dies by SIGALRM */
    return t->fn(t->arg);
}

/* Forks a child running fn(arg) under alarm(alarm_s), stderr to a pipe. */
static Kid kid_start(const char *name, int (*fn)(void *), void *arg, unsigned alarm_s)
{
    Tramp t = { .fn = fn, .arg = arg, .alarm_s = alarm_s };
    Kid k = { .name = name, .errfd = -1 };
    k.pid = child_run_stderr(tramp, &t, &k.errfd);
    return k;
}

/* Waits for the child (bounded by its alarm), prints its stderr unless it ended
 * as expected; returns the exit status (128 + signal if killed). */
static int kid_finish_expect(Kid *k, int expected)
{
    if (k->pid <= 0)
        return -1;
    char *err = child_collect(k->errfd);
    int st = child_wait(k->pid);
    if (st != expected || (getenv("MP_VERBOSE") && *err))
        fprintf(stderr, "\n    [%s, pid %d: exit status %d]\n%s", k->name, (int)k->pid, st,
                err);
    g_free(err);
    k->pid = 0;
    return st;
}

static int kid_finish(Kid *k)
{
    return kid_finish_expect(k, 0);
}

/* Runs one child to completion. */
static int kid_run(const char *name, int (*fn)(void *), void *arg, unsigned alarm_s)
{
    Kid k = kid_start(name, fn, arg, alarm_s);
    return kid_finish(&k);
}

static bool make_pipe(int p[2])
{
    return pipe2(p, O_CLOEXEC) == 0;
}

/* Reads one byte within timeout_ms; returns it, or -1 (timeout / EOF / error). */
static int read_byte(int fd, int timeout_ms)
{
    int64_t deadline = clock_ms() + timeout_ms;
    for (;;) {
        int left = (int)(deadline - clock_ms());
        if (left < 0)
            return -1;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        uint8_t b;
        ssize_t n = read(fd, &b, 1);
        if (n < 0 && errno == EINTR)
            continue;
        return n == 1 ? b : -1;
    }
}

static void write_byte(int fd, uint8_t b)
{
    ssize_t n;
    do
        n = write(fd, &b, 1);
    while (n < 0 && errno == EINTR);
}

/* Child side of a start barrier: blocks until the parent closes the pipe. */
static void barrier_wait(int fd)
{
    char b;
    while (read(fd, &b, 1) < 0 && errno == EINTR)
        ;
}

static char *log_text_of(const char *path)
{
    char *text = NULL;
    if (!g_file_get_contents(path, &text, NULL, NULL))
        return g_strdup("");
    return text;
}

static unsigned count_substr(const char *hay, const char *needle)
{
    unsigned n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static bool emu_alive(void);

/* Waits until the log at `path` contains the formatted text; gives up early if
 * it is the shared emulator's log and that emulator died. */
static bool wait_log(const char *path, int timeout_ms, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static bool wait_log(const char *path, int timeout_ms, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *needle = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    int64_t deadline = clock_ms() + timeout_ms;
    bool ok = false, shared = strcmp(path, g_emu.log) == 0;
    for (;;) {
        char *t = log_text_of(path);
        ok = strstr(t, needle) != NULL;
        g_free(t);
        if (ok || clock_ms() > deadline || (shared && !emu_alive()))
            break;
        sleep_ms(5);
    }
    if (!ok)
        fprintf(stderr, "\n    log %s never showed \"%s\"\n", path, needle);
    g_free(needle);
    return ok;
}

/* The shared emulator is still running (if it died, says how, once). */
static bool emu_alive(void)
{
    if (g_emu.pid <= 0)
        return false;
    int st;
    pid_t r = waitpid(g_emu.pid, &st, WNOHANG);
    if (r == g_emu.pid) {
        if (WIFSIGNALED(st))
            fprintf(stderr, "\n    the shared npu-emu (pid %d) died by signal %d (%s)\n",
                    (int)g_emu.pid, WTERMSIG(st), strsignal(WTERMSIG(st)));
        else
            fprintf(stderr, "\n    the shared npu-emu (pid %d) exited with status %d\n",
                    (int)g_emu.pid, WEXITSTATUS(st));
        g_emu.pid = -1;     /* reaped: emu_stop must not signal a recycled pid */
        return false;
    }
    return kill(g_emu.pid, 0) == 0;
}

/* Tests that use the shared emulator start with this: if an earlier test
 * killed it (a failure already reported there), a new one is started so that
 * the following tests still mean something. */
static void need_shared_emu(void)
{
    if (g_emu_ok && emu_alive())
        return;
    fprintf(stderr, "\n    note: the shared emulator is gone: starting a new one\n");
    if (g_parent_client) {
        aclFinalize();
        g_parent_client = false;
    }
    emu_stop(&g_emu);
    g_emu_ok = emu_start(&g_emu, "a2", NULL);
}

#define NEED_SHARED_EMU()                                                            \
    do {                                                                             \
        need_shared_emu();                                                           \
        CU_ASSERT_EQUAL_FATAL(g_emu_ok, true);                                       \
    } while (0)

static bool can_connect(const char *path)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    g_strlcpy(a.sun_path, path, sizeof(a.sun_path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* ---- the parent as a client of the shared emulator ---- */

static bool parent_client(void)
{
    if (g_parent_client)
        return true;
    aclError e = aclInit(NULL);
    if (e != ACL_SUCCESS) {
        fprintf(stderr, "\n    parent aclInit -> %d\n", (int)e);
        return false;
    }
    g_parent_client = true;
    return true;
}

/* Free and total HBM of a device of the shared emulator, as the parent sees it. */
static bool dev_mem(int dev, uint64_t *free_b, uint64_t *total_b)
{
    if (!parent_client() || aclrtSetDevice(dev) != ACL_SUCCESS)
        return false;
    size_t f = 0, t = 0;
    if (aclrtGetMemInfo(ACL_HBM_MEM, &f, &t) != ACL_SUCCESS)
        return false;
    *free_b = f;
    if (total_b)
        *total_b = t;
    return true;
}

/* Waits until device `dev` has exactly `want` bytes free; gives up at once if
 * the emulator does not answer. */
static bool wait_free(int dev, uint64_t want, int timeout_ms)
{
    int64_t deadline = clock_ms() + timeout_ms;
    uint64_t last = 0;
    for (;;) {
        if (!dev_mem(dev, &last, NULL)) {
            fprintf(stderr, "\n    device %d: aclrtGetMemInfo failed (emulator gone?)\n", dev);
            return false;
        }
        if (last == want)
            return true;
        if (clock_ms() > deadline)
            break;
        sleep_ms(5);
    }
    fprintf(stderr, "\n    device %d: free %" G_GUINT64_FORMAT " bytes, expected %"
            G_GUINT64_FORMAT " (%+" G_GINT64_FORMAT ")\n", dev, last, want,
            (gint64)(last - want));
    return false;
}

/* Every device of the shared emulator has all its HBM free (nobody holds any),
 * within one overall deadline. */
static bool wait_all_idle(int timeout_ms)
{
    int64_t deadline = clock_ms() + timeout_ms;
    for (int d = 0; d < NDEV; d++) {
        int left = (int)(deadline - clock_ms());
        if (!wait_free(d, HBM_TOTAL, left > 0 ? left : 0))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------------- */
/* client building blocks                                                    */
/* ------------------------------------------------------------------------- */

/* On device `dev`: H2D a pattern, D2D to a second buffer, D2H, verify. */
static int device_roundtrip(int dev, size_t size, uint64_t seed)
{
    CACL(aclrtSetDevice(dev));
    int32_t cur = -1;
    CACL(aclrtGetDevice(&cur));
    CCHECKF(cur == dev, "current device %d", cur);
    void *a = NULL, *b = NULL;
    CACL(aclrtMalloc(&a, size, ACL_MEM_MALLOC_HUGE_FIRST));
    CACL(aclrtMalloc(&b, size, ACL_MEM_MALLOC_HUGE_FIRST));
    uint64_t lo = EMU_VA_WINDOW_LO + (uint64_t)dev * EMU_VA_DEVICE_SPAN;
    uint64_t va = (uint64_t)(uintptr_t)a;
    CCHECKF(va >= lo && va < lo + EMU_VA_DEVICE_SPAN, "device %d pointer %p outside its span",
            dev, a);
    aclrtPtrAttributes attr;
    CACL(aclrtPointerGetAttributes(b, &attr));
    CCHECKF(attr.location.type == ACL_MEM_LOCATION_TYPE_DEVICE && attr.location.id == (uint32_t)dev,
            "attributes say type %d id %u", (int)attr.location.type, attr.location.id);
    uint8_t *src = malloc(size), *dst = malloc(size);
    CCHECK(src && dst);
    fill_pattern(src, size, seed);
    memset(dst, 0, size);
    CACL(aclrtMemcpy(a, size, src, size, ACL_MEMCPY_HOST_TO_DEVICE));
    CACL(aclrtMemcpy(b, size, a, size, ACL_MEMCPY_DEVICE_TO_DEVICE));
    CACL(aclrtMemcpy(dst, size, b, size, ACL_MEMCPY_DEVICE_TO_HOST));
    CCHECKF(checksum(dst, size) == checksum(src, size), "device %d data differs", dev);
    free(src);
    free(dst);
    CACL(aclrtFree(a));
    CACL(aclrtFree(b));
    return 0;
}

/* A short self-contained workload of a healthy client: sync and async copies. */
static int healthy_client_work(int dev)
{
    CTRY(device_roundtrip(dev, 5 * MiB + 17, 77));
    const size_t n = 8 * MiB + 3;
    void *a = NULL, *b = NULL, *h = NULL;
    aclrtStream s = NULL;
    CACL(aclrtMalloc(&a, n, ACL_MEM_MALLOC_HUGE_FIRST));
    CACL(aclrtMalloc(&b, n, ACL_MEM_MALLOC_HUGE_FIRST));
    CACL(aclrtMallocHost(&h, n));
    CACL(aclrtCreateStream(&s));
    fill_pattern(h, n, 4242);
    uint64_t want = checksum(h, n);
    CACL(aclrtMemcpyAsync(a, n, h, n, ACL_MEMCPY_HOST_TO_DEVICE, s));
    CACL(aclrtMemcpyAsync(b, n, a, n, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    CACL(aclrtMemsetAsync(h, n, 0, n, s));
    CACL(aclrtMemcpyAsync(h, n, b, n, ACL_MEMCPY_DEVICE_TO_HOST, s));
    CACL(aclrtSynchronizeStream(s));
    CCHECK(checksum(h, n) == want);
    CACL(aclrtDestroyStream(s));
    CACL(aclrtFreeHost(h));
    CACL(aclrtFree(a));
    CACL(aclrtFree(b));
    return 0;
}

static int child_healthy(void *arg)
{
    int dev = (int)(intptr_t)arg;
    CACL(aclInit(NULL));
    CTRY(healthy_client_work(dev));
    CACL(aclFinalize());
    return 0;
}

/* ========================================================================= */
/* 1. every device of the a2 profile                                         */
/* ========================================================================= */

static int child_all_devices(void *unused)
{
    (void)unused;
    CACL(aclInit(NULL));
    uint32_t count = 0;
    CACL(aclrtGetDeviceCount(&count));
    CCHECKF(count == NDEV, "%u devices", count);
    for (int d = 0; d < NDEV; d++) {
        CTRY(device_roundtrip(d, 3 * MiB + 123, (uint64_t)d + 1));
        CACL(aclrtResetDevice(d));
    }
    CACL(aclFinalize());
    return 0;
}

typedef struct DevSetArg {
    int first, step, iters;
    int barrier;
} DevSetArg;

static int child_device_set(void *p)
{
    DevSetArg *a = p;
    barrier_wait(a->barrier);
    CACL(aclInit(NULL));
    for (int it = 0; it < a->iters; it++)
        for (int d = a->first; d < NDEV; d += a->step)
            CTRY(device_roundtrip(d, 1 * MiB + 333 * (size_t)it + 1,
                                  (uint64_t)(it * 100 + d + 1000 * a->first)));
    CACL(aclFinalize());
    return 0;
}

static void test_every_device(void)
{
    NEED_SHARED_EMU();
    CU_ASSERT_EQUAL(kid_run("all-devices", child_all_devices, NULL, 60), 0);

    /* Two clients at once, on disjoint devices (even / odd). */
    int bar[2];
    CU_ASSERT_FATAL(make_pipe(bar));
    parent_hold(bar[1]);
    DevSetArg even = { .first = 0, .step = 2, .iters = 6, .barrier = bar[0] };
    DevSetArg odd = { .first = 1, .step = 2, .iters = 6, .barrier = bar[0] };
    Kid a = kid_start("even-devices", child_device_set, &even, 60);
    Kid b = kid_start("odd-devices", child_device_set, &odd, 60);
    close(bar[0]);
    parent_close(bar[1]);      /* both start now */
    CU_ASSERT_EQUAL(kid_finish(&a), 0);
    CU_ASSERT_EQUAL(kid_finish(&b), 0);
    CU_ASSERT(wait_all_idle(5000 * (int)slow));
}

/* ========================================================================= */
/* 2. copy round trips with checksums, every direction                       */
/* ========================================================================= */

static int copy_matrix(size_t n)
{
    const uint64_t seed = n * 31 + 7;
    CACL(aclInit(NULL));
    void *d1 = NULL, *d0a = NULL, *d0b = NULL;
    CACL(aclrtSetDevice(1));
    CACL(aclrtMalloc(&d1, n, ACL_MEM_MALLOC_HUGE_FIRST));
    CACL(aclrtSetDevice(0));
    /* Device 0 makes every copy below, both ways between devices 0 and 1: it
     * needs peer access to device 1 (device 1 needs none). */
    CACL(aclrtDeviceEnablePeerAccess(1, 0));
    CACL(aclrtMalloc(&d0a, n, ACL_MEM_MALLOC_HUGE_FIRST));
    CACL(aclrtMalloc(&d0b, n, ACL_MEM_MALLOC_HUGE_FIRST));

    uint8_t *src = malloc(n), *dst = malloc(n);
    CCHECK(src && dst);
    fill_pattern(src, n, seed);
    const uint64_t want = checksum(src, n);

#define CHECK_DEV(ptr, what)                                                          \
    do {                                                                              \
        memset(dst, 0, n);                                                            \
        CACL(aclrtMemcpy(dst, n, (ptr), n, ACL_MEMCPY_DEVICE_TO_HOST));               \
        CCHECKF(checksum(dst, n) == want, "%s, %zu bytes: checksum differs", what, n); \
    } while (0)

    /* H2D, then D2H back. */
    CACL(aclrtMemcpy(d0a, n, src, n, ACL_MEMCPY_HOST_TO_DEVICE));
    CHECK_DEV(d0a, "H2D + D2H");
    /* D2D on one device. */
    CACL(aclrtMemcpy(d0b, n, d0a, n, ACL_MEMCPY_DEVICE_TO_DEVICE));
    CHECK_DEV(d0b, "D2D device 0 -> 0");
    /* D2D across devices, both ways. */
    CACL(aclrtMemcpy(d1, n, d0b, n, ACL_MEMCPY_DEVICE_TO_DEVICE));
    CHECK_DEV(d1, "D2D device 0 -> 1");
    CACL(aclrtMemset(d0a, n, 0, n));
    CACL(aclrtMemcpy(d0a, n, d1, n, ACL_MEMCPY_DEVICE_TO_DEVICE));
    CHECK_DEV(d0a, "D2D device 1 -> 0");
    /* H2H through aclrtMemcpy. */
    memset(dst, 0, n);
    CACL(aclrtMemcpy(dst, n, src, n, ACL_MEMCPY_HOST_TO_HOST));
    CCHECKF(checksum(dst, n) == want, "H2H, %zu bytes", n);
    free(src);

    /* Async with pinned host memory: H2D, D2D 0->0, D2D 0->1, D2D 1->0, D2H on one stream. */
    void *hs = NULL, *hd = NULL;
    aclrtStream s = NULL;
    CACL(aclrtMallocHost(&hs, n));
    CACL(aclrtMallocHost(&hd, n));
    fill_pattern(hs, n, seed + 1);
    const uint64_t want2 = checksum(hs, n);
    memset(hd, 0, n);
    CACL(aclrtMemset(d0a, n, 0, n));
    CACL(aclrtMemset(d0b, n, 0, n));
    CACL(aclrtMemset(d1, n, 0, n));
    CACL(aclrtCreateStream(&s));
    CACL(aclrtMemcpyAsync(d0a, n, hs, n, ACL_MEMCPY_HOST_TO_DEVICE, s));
    CACL(aclrtMemcpyAsync(d0b, n, d0a, n, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    CACL(aclrtMemcpyAsync(d1, n, d0b, n, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    CACL(aclrtMemsetAsync(d0a, n, 0, n, s));
    CACL(aclrtMemcpyAsync(d0a, n, d1, n, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    CACL(aclrtMemcpyAsync(hd, n, d0a, n, ACL_MEMCPY_DEVICE_TO_HOST, s));
    CACL(aclrtSynchronizeStream(s));
    CCHECKF(checksum(hd, n) == want2, "async chain H2D/D2D/D2D/D2D/D2H, %zu bytes", n);
    /* Every intermediate buffer holds the data too. */
    memset(dst, 0, n);
    CACL(aclrtMemcpy(dst, n, d0b, n, ACL_MEMCPY_DEVICE_TO_HOST));
    CCHECKF(checksum(dst, n) == want2, "async D2D 0 -> 0, %zu bytes", n);
    memset(dst, 0, n);
    CACL(aclrtMemcpy(dst, n, d1, n, ACL_MEMCPY_DEVICE_TO_HOST));
    CCHECKF(checksum(dst, n) == want2, "async D2D 0 -> 1, %zu bytes", n);
#undef CHECK_DEV

    CACL(aclrtDestroyStream(s));
    CACL(aclrtFreeHost(hs));
    CACL(aclrtFreeHost(hd));
    free(dst);
    CACL(aclrtFree(d0a));
    CACL(aclrtFree(d0b));
    CACL(aclrtSetDevice(1));
    CACL(aclrtFree(d1));
    CACL(aclFinalize());
    return 0;
}

static int child_copy_matrix(void *arg)
{
    return copy_matrix(*(size_t *)arg);
}

static void test_copy_roundtrips(void)
{
    NEED_SHARED_EMU();
    static const size_t sizes[] = {
        1, 31, 32, 33, 4095, 4096, 4097, MiB - 1, 2 * MiB + 1, 64 * MiB, 256 * MiB,
    };
    for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++) {
        size_t n = sizes[i];
        char name[64];
        snprintf(name, sizeof(name), "copy-matrix %zu bytes", n);
        int st = kid_run(name, child_copy_matrix, &n, 120);
        if (st != 0)
            fprintf(stderr, "    copy round trip of %zu bytes failed (status %d)\n", n, st);
        CU_ASSERT_EQUAL(st, 0);
    }
    CU_ASSERT(wait_all_idle(5000 * (int)slow));
}

/* ========================================================================= */
/* 3. streams: concurrency and in-order execution                            */
/* ========================================================================= */

#define NSTREAMS 4
#define CHAIN 5             /* buffers A..E: four chained copies */

static int child_streams_concurrent(void *unused)
{
    (void)unused;
    const size_t n = 64 * MiB;
    CACL(aclInit(NULL));
    CACL(aclrtSetDevice(0));
    aclrtStream st[NSTREAMS];
    void *buf[NSTREAMS][CHAIN];
    uint64_t want[NSTREAMS];
    uint8_t *h = malloc(n);
    CCHECK(h);
    for (int k = 0; k < NSTREAMS; k++) {
        CACL(aclrtCreateStream(&st[k]));
        for (int j = 0; j < CHAIN; j++)
            CACL(aclrtMalloc(&buf[k][j], n, ACL_MEM_MALLOC_HUGE_FIRST));
        fill_pattern(h, n, 1000 + (uint64_t)k);
        want[k] = checksum(h, n);
        CACL(aclrtMemcpy(buf[k][0], n, h, n, ACL_MEMCPY_HOST_TO_DEVICE));
    }
    /* Interleave the submissions so the four streams run side by side. */
    for (int j = 0; j + 1 < CHAIN; j++)
        for (int k = 0; k < NSTREAMS; k++)
            CACL(aclrtMemcpyAsync(buf[k][j + 1], n, buf[k][j], n, ACL_MEMCPY_DEVICE_TO_DEVICE,
                                  st[k]));
    for (int k = 0; k < NSTREAMS; k++)
        CACL(aclrtSynchronizeStream(st[k]));
    for (int k = 0; k < NSTREAMS; k++)
        for (int j = 1; j < CHAIN; j++) {
            memset(h, 0, n);
            CACL(aclrtMemcpy(h, n, buf[k][j], n, ACL_MEMCPY_DEVICE_TO_HOST));
            CCHECKF(checksum(h, n) == want[k], "stream %d buffer %d differs", k, j);
        }
    for (int k = 0; k < NSTREAMS; k++) {
        CACL(aclrtDestroyStream(st[k]));
        for (int j = 0; j < CHAIN; j++)
            CACL(aclrtFree(buf[k][j]));
    }
    free(h);
    CACL(aclFinalize());
    return 0;
}

static int child_stream_order(void *unused)
{
    (void)unused;
    const size_t n = 64 * MiB;
    const size_t off = MiB + 3, len = 5 * MiB + 7;
    CACL(aclInit(NULL));
    CACL(aclrtSetDevice(0));
    void *x = NULL, *y = NULL, *h = NULL;
    aclrtStream s = NULL;
    CACL(aclrtMalloc(&x, n, ACL_MEM_MALLOC_HUGE_FIRST));
    CACL(aclrtMalloc(&y, n, ACL_MEM_MALLOC_HUGE_FIRST));
    CACL(aclrtMallocHost(&h, n));
    CACL(aclrtCreateStream(&s));
    for (int round = 0; round < 3; round++) {
        CACL(aclrtMemset(x, n, 0x00, n));
        CACL(aclrtMemset(y, n, 0x11, n));
        memset(h, 0x22, n);
        /* memset 0xAA, copy, memset part: only in this order is the result right. */
        CACL(aclrtMemsetAsync(x, n, 0xAA, n, s));
        CACL(aclrtMemcpyAsync(y, n, x, n, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
        CACL(aclrtMemsetAsync((uint8_t *)y + off, n - off, 0x55, len, s));
        CACL(aclrtMemcpyAsync(h, n, y, n, ACL_MEMCPY_DEVICE_TO_HOST, s));
        CACL(aclrtSynchronizeStream(s));
        uint8_t *b = h;
        size_t at = first_not(b, off, 0xAA);
        CCHECKF(at == off, "round %d: byte %zu is 0x%02x, not 0xAA", round, at, b[at]);
        at = first_not(b + off, len, 0x55);
        CCHECKF(at == len, "round %d: byte %zu is 0x%02x, not 0x55", round, off + at,
                b[off + at]);
        at = first_not(b + off + len, n - off - len, 0xAA);
        CCHECKF(at == n - off - len, "round %d: byte %zu is 0x%02x, not 0xAA", round,
                off + len + at, b[off + len + at]);
    }
    /* The source of the copy is untouched by the partial memset. */
    memset(h, 0, n);
    CACL(aclrtMemcpy(h, n, x, n, ACL_MEMCPY_DEVICE_TO_HOST));
    CCHECK(first_not(h, n, 0xAA) == n);
    CACL(aclrtDestroyStream(s));
    CACL(aclrtFreeHost(h));
    CACL(aclrtFree(x));
    CACL(aclrtFree(y));
    CACL(aclFinalize());
    return 0;
}

static void test_streams(void)
{
    NEED_SHARED_EMU();
    CU_ASSERT_EQUAL(kid_run("streams-concurrent", child_streams_concurrent, NULL, 120), 0);
    CU_ASSERT_EQUAL(kid_run("stream-order", child_stream_order, NULL, 60), 0);
    CU_ASSERT(wait_all_idle(5000 * (int)slow));
}

/* ========================================================================= */
/* 4. aclrtGetMemInfo accounting back to baseline                            */
/* ========================================================================= */

static int meminfo(uint64_t *free_b)
{
    size_t f = 0, t = 0;
    CACL(aclrtGetMemInfo(ACL_HBM_MEM, &f, &t));
    CCHECKF(t == HBM_TOTAL, "total %zu", t);
    *free_b = f;
    return 0;
}

static int child_meminfo(void *unused)
{
    (void)unused;
    CACL(aclInit(NULL));
    CACL(aclrtSetDevice(0));
    static const struct {
        size_t size;
        aclrtMemMallocPolicy policy;
        uint64_t cost;          /* expected drop of free HBM */
    } allocs[] = {
        /* below a page with the extra 32 bytes: a slice of a new shared 2 MiB block */
        { 100, ACL_MEM_MALLOC_HUGE_FIRST, 2 * MiB },
        /* more small ones share that block */
        { 200, ACL_MEM_MALLOC_HUGE_FIRST, 0 },
        { 1000, ACL_MEM_MALLOC_NORMAL_ONLY, 0 },
        /* 4096 + 32 bytes: a segment of its own, two 4 KiB pages */
        { 4 * KiB, ACL_MEM_MALLOC_HUGE_FIRST, 8 * KiB },
        /* above 1 MiB huge pages: 1 MiB + 1 (+32) -> one 2 MiB page */
        { MiB + 1, ACL_MEM_MALLOC_HUGE_FIRST, 2 * MiB },
        /* 3 MiB + 32 -> two 2 MiB pages */
        { 3 * MiB, ACL_MEM_MALLOC_HUGE_FIRST, 4 * MiB },
        /* 1 GiB pages take no extra 32 bytes */
        { GiB, ACL_MEM_MALLOC_HUGE1G_ONLY, GiB },
    };
    void *p[G_N_ELEMENTS(allocs)];
    uint64_t base, prev, cur;
    CTRY(meminfo(&base));
    prev = base;
    for (size_t i = 0; i < G_N_ELEMENTS(allocs); i++) {
        CACL(aclrtMalloc(&p[i], allocs[i].size, allocs[i].policy));
        CTRY(meminfo(&cur));
        CCHECKF(prev - cur == allocs[i].cost,
                "aclrtMalloc(%zu, policy %d) cost %" G_GINT64_FORMAT " bytes, expected %"
                G_GUINT64_FORMAT, allocs[i].size, (int)allocs[i].policy, (gint64)(prev - cur),
                allocs[i].cost);
        prev = cur;
    }
    uint64_t total_cost = 0;
    for (size_t i = 0; i < G_N_ELEMENTS(allocs); i++)
        total_cost += allocs[i].cost;
    CCHECK(base - cur == total_cost);
    /* Free in a different order than allocated; free only grows, up to baseline. */
    for (size_t i = G_N_ELEMENTS(allocs); i-- > 0;) {
        size_t j = (i * 3) % G_N_ELEMENTS(allocs);
        CACL(aclrtFree(p[j]));
        CTRY(meminfo(&cur));
        CCHECKF(cur >= prev && cur <= base, "free went from %" G_GUINT64_FORMAT " to %"
                G_GUINT64_FORMAT " (baseline %" G_GUINT64_FORMAT ")", prev, cur, base);
        prev = cur;
    }
    CCHECKF(cur == base, "after freeing everything: %+" G_GINT64_FORMAT " bytes off baseline",
            (gint64)(cur - base));
    CACL(aclFinalize());
    return 0;
}

static void test_meminfo_accounting(void)
{
    NEED_SHARED_EMU();
    CU_ASSERT_FATAL(wait_all_idle(5000 * (int)slow));
    CU_ASSERT_EQUAL(kid_run("meminfo", child_meminfo, NULL, 60), 0);
    CU_ASSERT(wait_free(0, HBM_TOTAL, 5000 * (int)slow));
}

/* ========================================================================= */
/* 5. clients killed with SIGKILL                                            */
/* ========================================================================= */

typedef struct HogArg {
    int ready;              /* write end: one byte once everything is allocated */
} HogArg;

static int child_hog(void *p)
{
    HogArg *a = p;
    CACL(aclInit(NULL));
    CACL(aclrtSetDevice(0));
    for (int i = 0; i < 6; i++) {
        void *d = NULL;
        CACL(aclrtMalloc(&d, GiB, ACL_MEM_MALLOC_HUGE_FIRST));
        CACL(aclrtMemset(d, GiB, 0x5a + i, 4 * MiB));
    }
    CACL(aclrtSetDevice(3));
    void *d = NULL;
    CACL(aclrtMalloc(&d, 2 * GiB, ACL_MEM_MALLOC_HUGE_FIRST));
    CACL(aclrtMemset(d, 2 * GiB, 0x33, 4 * MiB));
    CACL(aclrtMemset((uint8_t *)d + GiB, GiB, 0x44, 4 * MiB));
    write_byte(a->ready, 'r');
    for (;;)
        pause();            /* until SIGKILL (or the alarm) */
}

static void test_kill_holder(void)
{
    NEED_SHARED_EMU();
    CU_ASSERT_FATAL(wait_all_idle(5000 * (int)slow));
    int rp[2];
    CU_ASSERT_FATAL(make_pipe(rp));
    parent_hold(rp[0]);
    HogArg arg = { .ready = rp[1] };
    Kid k = kid_start("hog", child_hog, &arg, 60);
    close(rp[1]);
    int r = read_byte(rp[0], 30000 * (int)slow);
    parent_close(rp[0]);
    CU_ASSERT_EQUAL(r, 'r');
    uint64_t f0 = 0, f3 = 0;
    CU_ASSERT(dev_mem(0, &f0, NULL));
    CU_ASSERT(dev_mem(3, &f3, NULL));
    CU_ASSERT(f0 <= HBM_TOTAL - 6 * GiB);
    CU_ASSERT(f3 <= HBM_TOTAL - 2 * GiB);
    pid_t pid = k.pid;
    kill(pid, SIGKILL);
    CU_ASSERT_EQUAL(kid_finish_expect(&k, 128 + SIGKILL), 128 + SIGKILL);
    /* The emulator notices the closed socket and reclaims everything. */
    int64_t t0 = clock_ms();
    CU_ASSERT(wait_free(0, HBM_TOTAL, 5000 * (int)slow));
    CU_ASSERT(wait_free(3, HBM_TOTAL, 5000 * (int)slow));
    printf(" [reclaimed in %" G_GINT64_FORMAT " ms]", clock_ms() - t0);
    CU_ASSERT(wait_log(g_emu.log, 5000 * (int)slow, "client pid %d gone: reclaimed 7 allocations",
                       (int)pid));
    CU_ASSERT(emu_alive());
}

#define INFLIGHT_STREAMS 3
#define INFLIGHT_COPIES 40

static int child_inflight(void *p)
{
    HogArg *a = p;
    const size_t n = 64 * MiB;
    CACL(aclInit(NULL));
    CACL(aclrtSetDevice(0));
    aclrtStream s[INFLIGHT_STREAMS];
    void *x[INFLIGHT_STREAMS], *y[INFLIGHT_STREAMS];
    for (int k = 0; k < INFLIGHT_STREAMS; k++) {
        CACL(aclrtCreateStream(&s[k]));
        CACL(aclrtMalloc(&x[k], n, ACL_MEM_MALLOC_HUGE_FIRST));
        CACL(aclrtMalloc(&y[k], n, ACL_MEM_MALLOC_HUGE_FIRST));
        CACL(aclrtMemset(x[k], n, 0x10 + k, n));
        CACL(aclrtMemset(y[k], n, 0x20 + k, n));
    }
    for (int i = 0; i < INFLIGHT_COPIES; i++)
        for (int k = 0; k < INFLIGHT_STREAMS; k++) {
            void *d = i % 2 ? x[k] : y[k], *sr = i % 2 ? y[k] : x[k];
            CACL(aclrtMemcpyAsync(d, n, sr, n, ACL_MEMCPY_DEVICE_TO_DEVICE, s[k]));
        }
    write_byte(a->ready, 'r');
    for (;;)
        pause();
}

static void test_kill_inflight(void)
{
    NEED_SHARED_EMU();
    CU_ASSERT_FATAL(wait_all_idle(5000 * (int)slow));
    int rp[2];
    CU_ASSERT_FATAL(make_pipe(rp));
    parent_hold(rp[0]);
    HogArg arg = { .ready = rp[1] };
    Kid k = kid_start("inflight", child_inflight, &arg, 60);
    close(rp[1]);
    int r = read_byte(rp[0], 30000 * (int)slow);
    parent_close(rp[0]);
    CU_ASSERT_EQUAL(r, 'r');
    sleep_ms(30);           /* let the engines get going */
    pid_t pid = k.pid;
    kill(pid, SIGKILL);
    CU_ASSERT_EQUAL(kid_finish_expect(&k, 128 + SIGKILL), 128 + SIGKILL);
    CU_ASSERT(wait_free(0, HBM_TOTAL, 10000 * (int)slow));
    CU_ASSERT(wait_log(g_emu.log, 5000 * (int)slow, "client pid %d gone: reclaimed 6 allocations",
                       (int)pid));
    CU_ASSERT(emu_alive());
    /* Other clients are still served. */
    CU_ASSERT_EQUAL(kid_run("after-inflight", child_healthy, (void *)(intptr_t)0, 60), 0);
    CU_ASSERT_EQUAL(kid_run("after-inflight-dev5", child_healthy, (void *)(intptr_t)5, 60), 0);
    CU_ASSERT(emu_alive());
    CU_ASSERT(wait_all_idle(5000 * (int)slow));
}

/* ========================================================================= */
/* 6. two processes churning at once (exec'd helper mode)                    */
/* ========================================================================= */

/* `test_multiprocess --child-churn DEV ITERS`: a pristine process (no fork of a
 * client) doing malloc/free pairs with copies on one device. */
static int churn_main(int dev, int iters)
{
    CACL(aclInit(NULL));
    CACL(aclrtSetDevice(dev));
    uint64_t f0, f1;
    CTRY(meminfo(&f0));
    static const size_t sizes[] = { 1, 100, 4096, 65536, MiB + 1, 3 * MiB, 33, 2 * MiB };
    const size_t chunk = 64 * KiB;
    uint8_t *src = malloc(chunk), *dst = malloc(chunk);
    CCHECK(src && dst);
    for (int i = 0; i < iters; i++) {
        size_t size = sizes[i % G_N_ELEMENTS(sizes)];
        size_t n = size < chunk ? size : chunk;
        void *p = NULL;
        CACL(aclrtMalloc(&p, size, ACL_MEM_MALLOC_HUGE_FIRST));
        fill_pattern(src, n, (uint64_t)i * 8 + (uint64_t)dev);
        CACL(aclrtMemcpy(p, size, src, n, ACL_MEMCPY_HOST_TO_DEVICE));
        memset(dst, 0, n);
        CACL(aclrtMemcpy(dst, n, p, n, ACL_MEMCPY_DEVICE_TO_HOST));
        CCHECKF(memcmp(src, dst, n) == 0, "iteration %d, %zu bytes", i, size);
        CACL(aclrtFree(p));
    }
    free(src);
    free(dst);
    CTRY(meminfo(&f1));
    CCHECKF(f1 == f0, "device %d: %+" G_GINT64_FORMAT " bytes after the churn", dev,
            (gint64)(f1 - f0));
    CACL(aclFinalize());
    return 0;
}

typedef struct ExecArg {
    const char *const *argv;
} ExecArg;

static int child_exec(void *p)
{
    ExecArg *a = p;
    execv("/proc/self/exe", (char *const *)a->argv);
    return CFAIL("execv: %s", strerror(errno));
}

static void test_two_processes(void)
{
    NEED_SHARED_EMU();
    const char *argv_a[] = { "test_multiprocess", "--child-churn", "1", "2000", NULL };
    const char *argv_b[] = { "test_multiprocess", "--child-churn", "2", "2000", NULL };
    ExecArg ea = { argv_a }, eb = { argv_b };
    Kid a = kid_start("churn dev 1", child_exec, &ea, 120);
    Kid b = kid_start("churn dev 2", child_exec, &eb, 120);
    pid_t pa = a.pid, pb = b.pid;
    CU_ASSERT_EQUAL(kid_finish(&a), 0);
    CU_ASSERT_EQUAL(kid_finish(&b), 0);
    char *log = emu_log_text(&g_emu);
    char *na = g_strdup_printf("client pid %d connected", (int)pa);
    char *nb = g_strdup_printf("client pid %d connected", (int)pb);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, na));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, nb));
    g_free(na);
    g_free(nb);
    g_free(log);
    CU_ASSERT_EQUAL(kill(g_emu.pid, 0), 0);
    CU_ASSERT(emu_alive());
    CU_ASSERT(wait_all_idle(5000 * (int)slow));
}

/* ========================================================================= */
/* 7. the embedded default: no emulator, the runtime starts one              */
/* ========================================================================= */

typedef struct Fresh {
    char dir[256];
    char sock[320];
    char log[340];
    char *old_sock;
    char *old_idle;
} Fresh;

/* A fresh socket path with no emulator behind it; the environment points there. */
static bool fresh_begin(Fresh *f, const char *idle)
{
    memset(f, 0, sizeof(*f));
    g_strlcpy(f->dir, "/tmp/npu-emu-embedded-XXXXXX", sizeof(f->dir));
    if (!mkdtemp(f->dir))
        return false;
    snprintf(f->sock, sizeof(f->sock), "%s/emu.sock", f->dir);
    snprintf(f->log, sizeof(f->log), "%s.log", f->sock);
    f->old_sock = g_strdup(getenv("NPU_EMU_SOCKET"));
    f->old_idle = g_strdup(getenv("NPU_EMU_IDLE_EXIT"));
    setenv("NPU_EMU_SOCKET", f->sock, 1);
    setenv("NPU_EMU_IDLE_EXIT", idle, 1);
    return true;
}

static bool sock_gone(void *arg)
{
    const char *path = arg;
    return access(path, F_OK) != 0 && !can_connect(path);
}

/* Waits for the embedded emulator to exit by itself, restores the environment. */
static bool fresh_end(Fresh *f, int timeout_ms)
{
    bool gone = wait_until(sock_gone, f->sock, timeout_ms);
    if (!gone)
        fprintf(stderr, "\n    the embedded emulator at %s did not exit within %d ms\n",
                f->sock, timeout_ms);
    if (f->old_sock)
        setenv("NPU_EMU_SOCKET", f->old_sock, 1);
    else
        unsetenv("NPU_EMU_SOCKET");
    if (f->old_idle)
        setenv("NPU_EMU_IDLE_EXIT", f->old_idle, 1);
    else
        unsetenv("NPU_EMU_IDLE_EXIT");
    g_free(f->old_sock);
    g_free(f->old_idle);
    if (getenv("MP_KEEP")) {
        fprintf(stderr, "\n    kept %s\n", f->dir);
    } else if (gone) {
        char *cmd = g_strdup_printf("rm -rf '%s'", f->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", f->dir);
        g_free(cmd);
    }
    return gone;
}

typedef struct HolderArg {
    int ready;              /* write: 'i' after aclInit, 'm' after the 8 GiB */
    int release;            /* read: EOF means exit */
} HolderArg;

static int child_embedded_holder(void *p)
{
    HolderArg *a = p;
    CACL(aclInit(NULL));
    write_byte(a->ready, 'i');
    CACL(aclrtSetDevice(0));
    void *d = NULL;
    CACL(aclrtMalloc(&d, 8 * GiB, ACL_MEM_MALLOC_HUGE1G_ONLY));
    CACL(aclrtMemset(d, 8 * GiB, 0x7e, 2 * MiB));
    write_byte(a->ready, 'm');
    barrier_wait(a->release);
    return 0;               /* exit without aclFinalize: the emulator reclaims */
}

static int child_embedded_observer(void *unused)
{
    (void)unused;
    CACL(aclInit(NULL));
    CACL(aclrtSetDevice(0));
    size_t f = 0, t = 0;
    CACL(aclrtGetMemInfo(ACL_HBM_MEM, &f, &t));
    CCHECKF(t == HBM_TOTAL && t - f == 8 * GiB,
            "device 0 of the shared emulator: %zu of %zu bytes free, expected 8 GiB in use", f, t);
    CTRY(healthy_client_work(1));
    CACL(aclFinalize());
    return 0;
}

typedef struct RaceArg {
    int barrier;
    int ready;
    int release;
} RaceArg;

static int child_race_start(void *p)
{
    RaceArg *a = p;
    barrier_wait(a->barrier);
    CACL(aclInit(NULL));
    CACL(aclrtSetDevice(0));
    void *d = NULL;
    CACL(aclrtMalloc(&d, MiB, ACL_MEM_MALLOC_HUGE_FIRST));
    write_byte(a->ready, 'r');
    barrier_wait(a->release);
    CACL(aclrtFree(d));
    CACL(aclFinalize());
    return 0;
}

static void test_embedded_default(void)
{
    Fresh f;
    CU_ASSERT_FATAL(fresh_begin(&f, "1"));
    CU_ASSERT(access(f.sock, F_OK) != 0);

    int rp[2], rel[2];
    CU_ASSERT_FATAL(make_pipe(rp));
    parent_hold(rp[0]);
    CU_ASSERT_FATAL(make_pipe(rel));
    parent_hold(rel[1]);
    HolderArg ha = { .ready = rp[1], .release = rel[0] };
    Kid a = kid_start("embedded holder", child_embedded_holder, &ha, 60);
    pid_t holder = a.pid;
    close(rp[1]);
    close(rel[0]);
    CU_ASSERT_EQUAL(read_byte(rp[0], 15000 * (int)slow), 'i');
    /* The runtime started an emulator: the socket and its log are there. */
    struct stat st;
    CU_ASSERT(stat(f.sock, &st) == 0 && S_ISSOCK(st.st_mode));
    CU_ASSERT(access(f.log, F_OK) == 0);
    CU_ASSERT_EQUAL(read_byte(rp[0], 15000 * (int)slow), 'm');
    /* Idle longer than --idle-exit, but with a client connected: it stays. */
    sleep_ms(2500);
    CU_ASSERT(can_connect(f.sock));
    /* A second client shares it: it sees the first one's 8 GiB gone. */
    CU_ASSERT_EQUAL(kid_run("embedded observer", child_embedded_observer, NULL, 60), 0);
    parent_close(rel[1]);
    CU_ASSERT_EQUAL(kid_finish(&a), 0);
    parent_close(rp[0]);
    char *log = log_text_of(f.log);
    CU_ASSERT_EQUAL(count_substr(log, "serving profile"), 1);
    CU_ASSERT_EQUAL(count_substr(log, "connected: session"), 2);
    g_free(log);
    CU_ASSERT(wait_log(f.log, 5000, "client pid %d gone: reclaimed 1 allocations (8589934592 bytes",
                       (int)holder));
    /* With nobody left it exits by itself (--idle-exit 1). */
    CU_ASSERT(fresh_end(&f, 8000 * (int)slow));
    /* fresh_end removed the directory only if it exited; check the last words. */

    /* Two clients starting at the same moment with no emulator: one emulator. */
    CU_ASSERT_FATAL(fresh_begin(&f, "1"));
    int bar[2];
    CU_ASSERT_FATAL(make_pipe(bar));
    parent_hold(bar[1]);
    CU_ASSERT_FATAL(make_pipe(rp));
    parent_hold(rp[0]);
    CU_ASSERT_FATAL(make_pipe(rel));
    parent_hold(rel[1]);
    RaceArg ra = { .barrier = bar[0], .ready = rp[1], .release = rel[0] };
    Kid c1 = kid_start("simultaneous 1", child_race_start, &ra, 60);
    Kid c2 = kid_start("simultaneous 2", child_race_start, &ra, 60);
    close(bar[0]);
    close(rp[1]);
    close(rel[0]);
    parent_close(bar[1]);          /* go */
    CU_ASSERT_EQUAL(read_byte(rp[0], 20000 * (int)slow), 'r');
    CU_ASSERT_EQUAL(read_byte(rp[0], 20000 * (int)slow), 'r');
    log = log_text_of(f.log);
    CU_ASSERT_EQUAL(count_substr(log, "serving profile"), 1);
    CU_ASSERT_EQUAL(count_substr(log, "connected: session"), 2);
    g_free(log);
    parent_close(rel[1]);
    CU_ASSERT_EQUAL(kid_finish(&c1), 0);
    CU_ASSERT_EQUAL(kid_finish(&c2), 0);
    parent_close(rp[0]);
    log = log_text_of(f.log);
    CU_ASSERT_EQUAL(count_substr(log, "serving profile"), 1);
    g_free(log);
    CU_ASSERT(fresh_end(&f, 8000 * (int)slow));
}

/* A client that arrives just as an idle emulator decides to exit must still get
 * a working session (from that emulator or from a new one). */
static int child_late_client(void *unused)
{
    (void)unused;
    CACL(aclInit(NULL));
    CTRY(device_roundtrip(0, 64 * KiB + 5, 99));
    CACL(aclFinalize());
    return 0;
}

static int child_init_exit(void *unused)
{
    (void)unused;
    CACL(aclInit(NULL));
    CACL(aclrtSetDevice(0));
    return 0;
}

static int raw_connect(void);

static void test_embedded_idle_exit_race(void)
{
    Fresh f;
    CU_ASSERT_FATAL(fresh_begin(&f, "1"));
    /* Each round: a client comes and goes (the emulator becomes idle, with a
     * 1 s limit that its 500 ms poll notices on a tick).  A connection that
     * sends nothing, 250 ms later, shifts the ticks so the limit passes between
     * two of them; then a real client arrives just after the limit. */
    static const int offsets_ms[] = { 1040, 1080, 1120, 1160, 1200 };
    int failures = 0;
    for (size_t i = 0; i < G_N_ELEMENTS(offsets_ms); i++) {
        int st = kid_run("idle-race first", child_init_exit, NULL, 30);
        CU_ASSERT_EQUAL(st, 0);
        int64_t t0 = clock_ms();
        sleep_ms(250);
        int poke = raw_connect();
        if (poke >= 0)
            close(poke);
        int left = (int)(t0 + offsets_ms[i] - clock_ms());
        if (left > 0)
            sleep_ms(left);
        /* Five at once: more chances to be caught in the emulator's exit. */
        Kid late[5];
        for (int j = 0; j < 5; j++)
            late[j] = kid_start("idle-race late", child_late_client, NULL, 30);
        for (int j = 0; j < 5; j++) {
            st = kid_finish(&late[j]);
            if (st != 0) {
                failures++;
                fprintf(stderr, "    late client %d ms after the last one left: status %d\n",
                        offsets_ms[i], st);
            }
        }
    }
    CU_ASSERT_EQUAL(failures, 0);
    CU_ASSERT(fresh_end(&f, 8000 * (int)slow));
}

/* ========================================================================= */
/* 8. another user is refused                                                */
/* ========================================================================= */

static int child_other_user(void *unused)
{
    (void)unused;
    if (setgroups(0, NULL) < 0 && errno != EPERM)
        return CFAIL("setgroups: %s", strerror(errno));
    if (setgid(65534) < 0 || setuid(65534) < 0)
        return CFAIL("cannot become nobody: %s", strerror(errno));
    aclError e = aclInit(NULL);
    CCHECKF(e == ACL_ERROR_RT_NO_PERMISSION, "aclInit as uid 65534 -> %d, expected %d", (int)e,
            ACL_ERROR_RT_NO_PERMISSION);
    return 0;
}

static int child_other_user_private(void *unused)
{
    (void)unused;
    if (setgid(65534) < 0 || setuid(65534) < 0)
        return CFAIL("cannot become nobody: %s", strerror(errno));
    /* connect() fails with EACCES: the emulator is there but belongs to another
     * user, which is exactly what ACL_ERROR_RT_NO_PERMISSION reports (not
     * "cannot reach or start npu-emu"). */
    aclError e = aclInit(NULL);
    CCHECKF(e == ACL_ERROR_RT_NO_PERMISSION,
            "aclInit as uid 65534 on another user's 0600 socket -> %d, expected %d", (int)e,
            ACL_ERROR_RT_NO_PERMISSION);
    return 0;
}

static void test_other_user_refused(void)
{
    if (geteuid() != 0) {
        printf("\n    note: not running as root: the uid check could not be exercised\n");
        CU_PASS("not root: uid check not exercised");
        return;
    }
    TestEmu e;
    char *old = g_strdup(getenv("NPU_EMU_SOCKET"));
    const char *extra[] = { "--socket-mode", "0666", NULL };
    bool ok = emu_start(&e, "a2", extra);
    CU_ASSERT(ok);
    if (ok) {
        Kid k = kid_start("nobody", child_other_user, NULL, 30);
        pid_t pid = k.pid;
        CU_ASSERT_EQUAL(kid_finish(&k), 0);
        CU_ASSERT(wait_log(e.log, 5000 * (int)slow, "refused pid %d", (int)pid));
        /* Root clients are still served. */
        CU_ASSERT_EQUAL(kid_run("root after refusal", child_healthy, (void *)(intptr_t)2, 60), 0);
        CU_ASSERT(kill(e.pid, 0) == 0);
    }
    emu_stop(&e);
    /* With the default 0600 socket the other user cannot even connect: refused too. */
    if (g_emu_ok) {
        setenv("NPU_EMU_SOCKET", g_emu.sock, 1);
        chmod(g_emu.dir, 0755);
        CU_ASSERT_EQUAL(kid_run("nobody 0600", child_other_user_private, NULL, 30), 0);
    }
    if (old)
        setenv("NPU_EMU_SOCKET", old, 1);
    g_free(old);
}

/* ========================================================================= */
/* 9. the emulator survives garbage                                          */
/* ========================================================================= */

static int raw_connect(void)
{
    const char *path = getenv("NPU_EMU_SOCKET");
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    g_strlcpy(a.sun_path, path, sizeof(a.sun_path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const void *buf, size_t len)
{
    const uint8_t *b = buf;
    while (len) {
        ssize_t n = send(fd, b, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        b += n;
        len -= (size_t)n;
    }
    return true;
}

/* Receives one message (and at most one fd) within timeout_ms; returns bytes. */
static ssize_t recv_msg_fd(int sock, void *buf, size_t len, int *fd, int timeout_ms)
{
    *fd = -1;
    struct pollfd p = { .fd = sock, .events = POLLIN };
    if (poll(&p, 1, timeout_ms) <= 0)
        return -1;
    union {
        char b[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
                          .msg_controllen = sizeof(u.b) };
    ssize_t n = recvmsg(sock, &msg, MSG_WAITALL | MSG_CMSG_CLOEXEC);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (n > 0 && c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
        memcpy(fd, CMSG_DATA(c), sizeof(int));
    return n;
}

/* Closes every fd the emulator sent (memory objects) without blocking. */
static void drain_fds(int sock)
{
    for (;;) {
        union {
            char b[CMSG_SPACE(sizeof(int) * 4)];
            struct cmsghdr align;
        } u;
        char buf[256];
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
                              .msg_controllen = sizeof(u.b) };
        ssize_t n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n <= 0)
            return;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                int nfd = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                for (int i = 0; i < nfd; i++) {
                    int fd;
                    memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                    close(fd);
                }
            }
    }
}

static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void rnd_bytes(void *p, size_t n)
{
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)rnd();
}

static int child_garbage_hello(void *unused)
{
    (void)unused;
    int fd = raw_connect();
    CCHECK(fd >= 0);
    uint8_t junk[4096];
    rnd_bytes(junk, sizeof(junk));
    junk[0] = 0x12;         /* certainly not the magic */
    send_all(fd, junk, sizeof(junk));
    EmuWelcome w;
    int cfd;
    ssize_t n = recv_msg_fd(fd, &w, sizeof(w), &cfd, 5000);
    CCHECKF(cfd < 0, "got a channel fd for garbage (%zd bytes)", n);
    if (n == (ssize_t)sizeof(w))
        CCHECKF(w.status != ACL_SUCCESS, "status %d", w.status);
    close(fd);
    return 0;
}

static int child_half_hello(void *unused)
{
    (void)unused;
    int fd = raw_connect();
    CCHECK(fd >= 0);
    EmuHello h = { .magic = EMU_PROTO_MAGIC, .version = EMU_PROTO_VERSION };
    send_all(fd, &h, 7);
    close(fd);
    return 0;
}

static int child_bad_server(void *unused)
{
    (void)unused;
    int fd = raw_connect();
    CCHECK(fd >= 0);
    EmuHello h = { .magic = EMU_PROTO_MAGIC, .version = EMU_PROTO_VERSION, .server = 5 };
    CCHECK(send_all(fd, &h, sizeof(h)));
    EmuWelcome w;
    int cfd;
    ssize_t n = recv_msg_fd(fd, &w, sizeof(w), &cfd, 5000);
    CCHECKF(n == (ssize_t)sizeof(w), "%zd bytes", n);
    CCHECKF(cfd < 0 && w.status == ACL_ERROR_RT_INVALID_DEVICEID, "status %d fd %d", w.status,
            cfd);
    close(fd);
    /* Wrong protocol version. */
    fd = raw_connect();
    CCHECK(fd >= 0);
    h = (EmuHello){ .magic = EMU_PROTO_MAGIC, .version = EMU_PROTO_VERSION + 7 };
    CCHECK(send_all(fd, &h, sizeof(h)));
    n = recv_msg_fd(fd, &w, sizeof(w), &cfd, 5000);
    CCHECKF(n == (ssize_t)sizeof(w) && cfd < 0 && w.status != ACL_SUCCESS,
            "%zd bytes, status %d, fd %d", n, w.status, cfd);
    close(fd);
    return 0;
}

/* Posts one request on slot i and waits (bounded) for the answer. Returns the
 * status, or INT32_MIN if no answer came. */
static int32_t post(EmuChanHeader *hdr, EmuSlot *slots, int sock, unsigned i, uint32_t cmd,
                    const void *req, uint32_t len, void *resp, uint32_t resp_len)
{
    EmuSlot *s = &slots[i];
    s->cmd = cmd;
    s->req_len = len;
    if (req)
        memcpy(s->req, req, len < EMU_SLOT_PAYLOAD ? len : EMU_SLOT_PAYLOAD);
    s->client_waiting = 0;
    __atomic_store_n(&s->state, EMU_SLOT_POSTED, __ATOMIC_SEQ_CST);
    __atomic_or_fetch(&hdr->posted, 1ull << i, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&hdr->doorbell, 1, __ATOMIC_SEQ_CST);
    emu_futex_wake(&hdr->doorbell, 1);
    int64_t deadline = clock_ms() + 300;
    while (__atomic_load_n(&s->state, __ATOMIC_SEQ_CST) != EMU_SLOT_DONE) {
        if (clock_ms() > deadline) {
            drain_fds(sock);
            return INT32_MIN;
        }
        s->client_waiting = 1;
        emu_futex_wait(&s->state, EMU_SLOT_POSTED, 5000000);
    }
    int32_t st = s->status;
    if (resp && st == ACL_SUCCESS && s->resp_len == resp_len)
        memcpy(resp, s->resp, resp_len);
    __atomic_store_n(&s->state, EMU_SLOT_FREE, __ATOMIC_SEQ_CST);
    drain_fds(sock);
    return st;
}

#define MAX_KNOWN 64

static int child_channel_fuzz(void *arg)
{
    rng_state = *(uint64_t *)arg;
    int sock = raw_connect();
    CCHECK(sock >= 0);
    EmuHello h = { .magic = EMU_PROTO_MAGIC, .version = EMU_PROTO_VERSION };
    CCHECK(send_all(sock, &h, sizeof(h)));
    EmuWelcome w;
    int cfd;
    ssize_t n = recv_msg_fd(sock, &w, sizeof(w), &cfd, 5000);
    CCHECKF(n == (ssize_t)sizeof(w) && w.status == ACL_SUCCESS && cfd >= 0,
            "welcome: %zd bytes, status %d, fd %d", n, w.status, cfd);
    CCHECK(w.client_pid == (uint32_t)getpid());
    CCHECK(w.chan_size == EMU_CHAN_SIZE && w.ndevices == NDEV);
    uint8_t *chan = mmap(NULL, EMU_CHAN_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
    CCHECK(chan != MAP_FAILED);
    close(cfd);
    EmuChanHeader *hdr = (EmuChanHeader *)chan;
    EmuSlot *slots = (EmuSlot *)(chan + EMU_CHAN_SLOTS_OFF);

    /* A valid request works. */
    CCHECK(post(hdr, slots, sock, 0, EMU_CMD_NOP, NULL, 0, NULL, 0) == ACL_SUCCESS);

    /* Phase 1: plausible requests with random fields. */
    uint64_t known[MAX_KNOWN] = { 0 };
    unsigned nknown = 0, streams = 0;
    uint8_t req[EMU_SLOT_PAYLOAD];
    for (int it = 0; it < 1500; it++) {
        uint32_t cmd = (uint32_t)(rnd() % (EMU_CMD_COUNT + 2));
        uint32_t len = 0;
        rnd_bytes(req, 64);
        bool plausible = rnd() % 4 != 0;
        switch (cmd) {
        case EMU_CMD_DEVICE_OPEN:
        case EMU_CMD_DEVICE_CLOSE:
        case EMU_CMD_DEVICE_SYNC: {
            EmuReqDevice *q = (EmuReqDevice *)req;
            if (plausible)
                q->device = (int32_t)(rnd() % 12) - 2;
            len = sizeof(*q);
            break;
        }
        case EMU_CMD_MEM_ALLOC: {
            EmuReqMemAlloc *q = (EmuReqMemAlloc *)req;
            if (plausible) {
                q->device = (int32_t)(rnd() % 10) - 1;
                q->policy = (uint32_t)(rnd() % 12);
                q->size = rnd() % 4 == 0 ? rnd() : rnd() % (8 * MiB);
                q->flags = (uint32_t)(rnd() % 3);
            }
            len = sizeof(*q);
            break;
        }
        case EMU_CMD_MEM_FREE: {
            EmuReqMemFree *q = (EmuReqMemFree *)req;
            if (plausible && nknown)
                q->va = known[rnd() % nknown] + (rnd() % 3 == 0 ? rnd() % 128 : 0);
            len = sizeof(*q);
            break;
        }
        case EMU_CMD_MEM_INFO: {
            EmuReqMemInfo *q = (EmuReqMemInfo *)req;
            if (plausible) {
                q->device = (int32_t)(rnd() % 10) - 1;
                q->attr = (uint32_t)(rnd() % 24);
            }
            len = sizeof(*q);
            break;
        }
        case EMU_CMD_HOST_ALLOC: {
            EmuReqHostAlloc *q = (EmuReqHostAlloc *)req;
            if (plausible) {
                q->size = (rnd() % 64 + 1) * 4096;
                q->client_addr = 0x500000000000ull + (rnd() % 4096) * MiB;
            }
            len = sizeof(*q);
            break;
        }
        case EMU_CMD_HOST_FREE: {
            EmuReqHostFree *q = (EmuReqHostFree *)req;
            if (plausible)
                q->client_addr = 0x500000000000ull + (rnd() % 4096) * MiB;
            len = sizeof(*q);
            break;
        }
        case EMU_CMD_STREAM_CREATE: {
            EmuReqStreamCreate *q = (EmuReqStreamCreate *)req;
            if (streams >= 24)
                q->device = -5;     /* keep the number of stream threads bounded */
            else if (plausible)
                q->device = (int32_t)(rnd() % 10) - 1;
            len = sizeof(*q);
            break;
        }
        case EMU_CMD_STREAM_DESTROY: {
            EmuReqStreamDestroy *q = (EmuReqStreamDestroy *)req;
            if (plausible) {
                q->stream = (uint32_t)(rnd() % 40);
                q->force = (uint32_t)(rnd() % 2);
            }
            len = sizeof(*q);
            break;
        }
        case EMU_CMD_STREAM_SUBMIT: {
            EmuReqSubmit *q = (EmuReqSubmit *)req;
            if (plausible) {
                q->stream = (uint32_t)(rnd() % 40);
                q->task.type = (uint32_t)(rnd() % 5);
                uint64_t base_d = nknown ? known[rnd() % nknown] : rnd();
                uint64_t base_s = nknown ? known[rnd() % nknown] : rnd();
                q->task.dst = base_d + rnd() % 4096;
                q->task.src = rnd() % 8 == 0 ? 0x500000000000ull + (rnd() % 4096) * MiB
                                             : base_s + rnd() % 4096;
                q->task.size = rnd() % 8 == 0 ? rnd() : rnd() % (1 * MiB);
            }
            len = sizeof(*q);
            break;
        }
        default:
            len = (uint32_t)(rnd() % 64);
            break;
        }
        if (rnd() % 10 == 0)
            len = (uint32_t)(rnd() % 8 == 0 ? rnd() : rnd() % (EMU_SLOT_PAYLOAD + 1));
        uint8_t resp[EMU_SLOT_PAYLOAD];
        uint32_t resp_len = cmd == EMU_CMD_MEM_ALLOC ? sizeof(EmuRespMemAlloc)
                          : cmd == EMU_CMD_STREAM_CREATE ? sizeof(EmuRespStreamCreate) : 0;
        int32_t st = post(hdr, slots, sock, (unsigned)(rnd() % EMU_CHAN_SLOTS), cmd, req, len,
                          resp, resp_len);
        if (st == ACL_SUCCESS && cmd == EMU_CMD_MEM_ALLOC && nknown < MAX_KNOWN)
            known[nknown++] = ((EmuRespMemAlloc *)resp)->va;
        if (st == ACL_SUCCESS && cmd == EMU_CMD_STREAM_CREATE)
            streams++;
    }
    /* Still answering after all that. */
    CCHECK(post(hdr, slots, sock, 1, EMU_CMD_NOP, NULL, 0, NULL, 0) == ACL_SUCCESS);

    /* Phase 2: scribble over the header and the slots, post random slots with
     * random commands and lengths, ring the doorbell. */
    for (int round = 0; round < 200; round++) {
        rnd_bytes(chan, 256);                                   /* the header */
        unsigned first = (unsigned)(rnd() % EMU_CHAN_SLOTS);
        unsigned count = (unsigned)(rnd() % 4 + 1);
        for (unsigned i = first; i < first + count && i < EMU_CHAN_SLOTS; i++) {
            rnd_bytes(&slots[i], sizeof(EmuSlot));
            if (rnd() % 2) {
                slots[i].cmd = (uint32_t)(rnd() % (EMU_CMD_COUNT + 2));
                slots[i].req_len = (uint32_t)(rnd() % 80);
            }
            __atomic_store_n(&slots[i].state, EMU_SLOT_POSTED, __ATOMIC_SEQ_CST);
        }
        /* random stream completion words too */
        rnd_bytes(chan + EMU_CHAN_STREAMS_OFF + (rnd() % 64) * sizeof(EmuStreamState), 64);
        __atomic_store_n(&hdr->posted, rnd(), __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&hdr->doorbell, 1, __ATOMIC_SEQ_CST);
        emu_futex_wake(&hdr->doorbell, 1);
        if (round % 16 == 0)
            sleep_ms(2);
        drain_fds(sock);
    }
    sleep_ms(50);
    drain_fds(sock);
    /* Exit without any cleanup: the emulator must reclaim whatever we got. */
    return 0;
}

/* Many short-lived connections that the emulator refuses or drops at once:
 * garbage, a wrong version, nothing at all.  Each one's session thread ends
 * within microseconds of being started. */
static int child_storm(void *arg)
{
    int count = *(int *)arg;
    rng_state = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull | 1;
    for (int i = 0; i < count; i++) {
        int fd = raw_connect();
        CCHECKF(fd >= 0, "connection %d refused: %s", i, strerror(errno));
        EmuHello h = { .magic = EMU_PROTO_MAGIC, .version = EMU_PROTO_VERSION };
        switch (i % 3) {
        case 0:
            rnd_bytes(&h, sizeof(h));
            h.magic = 0;
            break;
        case 1:
            h.version = EMU_PROTO_VERSION + 1;
            break;
        default:
            close(fd);
            continue;
        }
        send_all(fd, &h, sizeof(h));
        close(fd);
    }
    return 0;
}

/* A client that sends nothing at all keeps its connection open meanwhile. */
static void test_garbage(void)
{
    NEED_SHARED_EMU();
    CU_ASSERT_FATAL(wait_all_idle(5000 * (int)slow));
    int silent = raw_connect();
    CU_ASSERT(silent >= 0);

    Kid k = kid_start("garbage hello", child_garbage_hello, NULL, 30);
    pid_t pid = k.pid;
    CU_ASSERT_EQUAL(kid_finish(&k), 0);
    CU_ASSERT(wait_log(g_emu.log, 5000, "refused pid %d: protocol version", (int)pid));

    k = kid_start("half hello", child_half_hello, NULL, 30);
    pid = k.pid;
    CU_ASSERT_EQUAL(kid_finish(&k), 0);
    CU_ASSERT(wait_log(g_emu.log, 5000, "pid %d: no greeting, dropped", (int)pid));

    CU_ASSERT_EQUAL(kid_run("bad server / version", child_bad_server, NULL, 30), 0);
    CU_ASSERT(emu_alive());

    int storm = 400;
    Kid s1 = kid_start("connection storm 1", child_storm, &storm, 60);
    Kid s2 = kid_start("connection storm 2", child_storm, &storm, 60);
    CU_ASSERT_EQUAL(kid_finish(&s1), 0);
    CU_ASSERT_EQUAL(kid_finish(&s2), 0);
    sleep_ms(100);
    CU_ASSERT_FATAL(emu_alive());

    /* A healthy client works while the silent one is still connected. */
    CU_ASSERT_EQUAL(kid_run("healthy during silence", child_healthy, (void *)(intptr_t)4, 60), 0);

    /* MP_SEED=n replays a run; the seeds in use are printed. */
    const char *seed_env = getenv("MP_SEED");
    uint64_t seed = seed_env ? g_ascii_strtoull(seed_env, NULL, 0)
                             : ((uint64_t)g_get_real_time() ^ 0x5deece66dull) | 1;
    for (int round = 0; round < 3; round++) {
        uint64_t s = seed + (uint64_t)round * 0x9e3779b97f4a7c15ull;
        printf(" [fuzz seed 0x%" G_GINT64_MODIFIER "x]", s);
        k = kid_start("channel fuzz", child_channel_fuzz, &s, 60);
        pid = k.pid;
        CU_ASSERT_EQUAL(kid_finish(&k), 0);
        CU_ASSERT(wait_log(g_emu.log, 10000 * (int)slow, "client pid %d gone: reclaimed",
                           (int)pid));
        CU_ASSERT_FATAL(emu_alive());
    }
    if (silent >= 0)
        close(silent);
    /* Everything the fuzzers got is back, and a normal client still works. */
    CU_ASSERT(wait_all_idle(10000 * (int)slow));
    CU_ASSERT_EQUAL(kid_run("healthy after fuzz", child_healthy, (void *)(intptr_t)0, 60), 0);
    CU_ASSERT_EQUAL(kid_run("healthy after fuzz (all devices)", child_all_devices, NULL, 60), 0);
    CU_ASSERT(emu_alive());
    CU_ASSERT(wait_all_idle(5000 * (int)slow));
}

/* A process holding two connections: the second is refused. */
static int child_two_connections(void *unused)
{
    (void)unused;
    int a = raw_connect(), b = raw_connect();
    CCHECK(a >= 0 && b >= 0);
    EmuHello h = { .magic = EMU_PROTO_MAGIC, .version = EMU_PROTO_VERSION };
    CCHECK(send_all(a, &h, sizeof(h)));
    EmuWelcome w;
    int cfd;
    ssize_t n = recv_msg_fd(a, &w, sizeof(w), &cfd, 5000);
    CCHECKF(n == (ssize_t)sizeof(w) && w.status == ACL_SUCCESS && cfd >= 0, "first: status %d",
            w.status);
    close(cfd);
    CCHECK(send_all(b, &h, sizeof(h)));
    /* The emulator gives a previous session of the pid a moment to go away
     * (aclFinalize + aclInit) before it calls this a second connection. */
    n = recv_msg_fd(b, &w, sizeof(w), &cfd, 10000 * (int)slow);
    CCHECKF(n == (ssize_t)sizeof(w) && cfd < 0 && w.status == ACL_ERROR_REPEAT_INITIALIZE,
            "second: %zd bytes, status %d, fd %d", n, w.status, cfd);
    close(b);
    close(a);
    return 0;
}

static void test_duplicate_session(void)
{
    NEED_SHARED_EMU();
    CU_ASSERT_EQUAL(kid_run("two connections", child_two_connections, NULL, 30), 0);
    CU_ASSERT(emu_alive());
}

/* ========================================================================= */
/* 10. aclFinalize then aclInit again in the same process                    */
/* ========================================================================= */

#define REINIT_CYCLES 20

static int child_reinit(void *unused)
{
    (void)unused;
    for (int cycle = 0; cycle < REINIT_CYCLES; cycle++) {
        aclError e = aclInit(NULL);
        if (e != ACL_SUCCESS) {
            const char *m = aclGetRecentErrMsg();
            return CFAIL("cycle %d: aclInit after aclFinalize -> %d (%s)", cycle, (int)e,
                         m ? m : "");
        }
        CCHECK(aclInit(NULL) == ACL_ERROR_REPEAT_INITIALIZE);
        CACL(aclrtSetDevice(0));
        size_t f = 0, t = 0;
        CACL(aclrtGetMemInfo(ACL_HBM_MEM, &f, &t));
        CCHECKF(f == t, "cycle %d: %zu of %zu bytes free at the start", cycle, f, t);
        void *keep = NULL;
        CACL(aclrtMalloc(&keep, 16 * MiB, ACL_MEM_MALLOC_HUGE_FIRST));
        if (cycle % 5 == 0)
            CTRY(healthy_client_work(cycle % NDEV));
        /* Left for aclFinalize to release (the emulator's reclaim frees them). */
        for (int i = 0; i < 64; i++) {
            void *h = NULL;
            CACL(aclrtMallocHost(&h, 64 * KiB));
        }
        CACL(aclFinalize());
        CCHECK(aclFinalize() == ACL_ERROR_REPEAT_FINALIZE);
        void *p = NULL;
        CCHECK(aclrtMalloc(&p, 64, ACL_MEM_MALLOC_HUGE_FIRST) == ACL_ERROR_UNINITIALIZE);
    }
    return 0;
}

static int child_spin(void *unused)
{
    (void)unused;
    volatile uint64_t x = 0;
    for (;;)
        x++;            /* until SIGKILL (or the alarm) */
    return 0;
}

static void test_reinit(void)
{
    NEED_SHARED_EMU();
    /* Busy CPUs, as on a loaded machine: the emulator's threads get scheduled late. */
    Kid spin[2];
    for (int i = 0; i < 2; i++)
        spin[i] = kid_start("cpu spinner", child_spin, NULL, 60);
    Kid k = kid_start("reinit", child_reinit, NULL, 60);
    pid_t pid = k.pid;
    int st = kid_finish(&k);
    for (int i = 0; i < 2; i++) {
        kill(spin[i].pid, SIGKILL);
        char *e = child_collect(spin[i].errfd);
        child_wait(spin[i].pid);
        g_free(e);
    }
    CU_ASSERT_EQUAL(st, 0);
    char *log = emu_log_text(&g_emu);
    char *needle = g_strdup_printf("client pid %d connected", (int)pid);
    unsigned sessions = count_substr(log, needle);
    CU_ASSERT_EQUAL(sessions, REINIT_CYCLES);
    g_free(needle);
    g_free(log);
    CU_ASSERT(emu_alive());
    CU_ASSERT(wait_all_idle(5000 * (int)slow));
}

/* ========================================================================= */

static int suite_init(void)
{
    g_emu_ok = emu_start(&g_emu, "a2", NULL);
    if (!g_emu_ok)
        fprintf(stderr, "cannot start the shared npu-emu\n");
    return 0;
}

static int suite_clean(void)
{
    if (g_parent_client) {
        aclFinalize();
        g_parent_client = false;
    }
    if (getenv("MP_KEEP") && g_emu_ok) {
        char *log = emu_log_text(&g_emu);
        g_file_set_contents("/tmp/npu-emu-multiprocess.log", log, -1, NULL);
        fprintf(stderr, "shared emulator log kept in /tmp/npu-emu-multiprocess.log\n");
        g_free(log);
    }
    emu_stop(&g_emu);
    return 0;
}

/* Each test reports how long it took. */
/* ========================================================================= */
/* 12. virtual memory: an expandable-segments allocator, sleep / wake, faults */
/* ========================================================================= */

#define CHUNK (2 * MiB)

static aclrtPhysicalMemProp vmm_prop(int dev, aclrtMemAttr attr)
{
    aclrtPhysicalMemProp p = { .handleType = ACL_MEM_HANDLE_TYPE_NONE,
                               .allocationType = ACL_MEM_ALLOCATION_TYPE_PINNED,
                               .memAttr = attr,
                               .location = { .id = (uint32_t)dev,
                                             .type = ACL_MEM_LOCATION_TYPE_DEVICE } };
    return p;
}

/* Maps chunk i of a reservation at base (4 KiB pages for odd i, 2 MiB for even). */
static int vmm_map_chunk(uint8_t *base, size_t i, aclrtDrvMemHandle *h)
{
    aclrtPhysicalMemProp p = vmm_prop(0, i % 2 ? ACL_MEM_NORMAL : ACL_MEM_HUGE);
    CACL(aclrtMallocPhysical(&h[i], CHUNK, &p, 0));
    CACL(aclrtMapMem(base + i * CHUNK, CHUNK, 0, h[i], 0));
    return 0;
}

static int vmm_unmap_chunk(uint8_t *base, size_t i, aclrtDrvMemHandle *h)
{
    CACL(aclrtUnmapMem(base + i * CHUNK));
    CACL(aclrtFreePhysical(h[i]));
    h[i] = NULL;
    return 0;
}

/* A PyTorch-style expandable segment: one large reservation, 2 MiB chunks
 * mapped on demand, copies that cross chunk (and page-size) boundaries, the
 * tail given back and grown again. */
static int child_vmm_allocator(void *unused)
{
    (void)unused;
    enum { NCHUNK = 96, RES_CHUNKS = 2048 };    /* 192 MiB used of a 4 GiB range */
    const size_t span = 64 * CHUNK;             /* 128 MiB */
    CACL(aclInit(NULL));
    CACL(aclrtSetDevice(0));
    uint64_t base_free, cur;
    CTRY(meminfo(&base_free));
    void *res = NULL;
    CACL(aclrtReserveMemAddress(&res, (size_t)RES_CHUNKS * CHUNK, 0, NULL, 1));
    uint8_t *base = res;
    aclrtDrvMemHandle h[NCHUNK] = { 0 };
    for (size_t i = 0; i < 64; i++)
        CTRY(vmm_map_chunk(base, i, h));
    CTRY(meminfo(&cur));
    CCHECKF(base_free - cur == 64 * CHUNK, "64 chunks cost %" G_GINT64_FORMAT " bytes",
            (gint64)(base_free - cur));
    /* The pool's usage report sees them as physical handles. */
    aclrtMemUsageInfo use[4];
    size_t nuse = 0;
    CACL(aclrtGetMemUsageInfo(0, use, 4, &nuse));
    CCHECKF(nuse == 2, "%zu components", nuse);
    CCHECKF(strcmp(use[0].name, "aclrtMallocPhysical") == 0 && use[0].curMemSize == 64 * CHUNK &&
                use[0].memPeakSize >= 64 * CHUNK && use[0].curMemSize >= use[1].curMemSize,
            "usage: %s %" G_GUINT64_FORMAT " (peak %" G_GUINT64_FORMAT "), %s %" G_GUINT64_FORMAT,
            use[0].name, (guint64)use[0].curMemSize, (guint64)use[0].memPeakSize, use[1].name,
            (guint64)use[1].curMemSize);

    uint8_t *host = malloc(span), *back = malloc(span);
    CCHECK(host && back);
    fill_pattern(host, span, 12);
    /* One synchronous copy over all 64 mappings. */
    CACL(aclrtMemcpy(base, span, host, span, ACL_MEMCPY_HOST_TO_DEVICE));
    aclrtStream s1, s2;
    CACL(aclrtCreateStream(&s1));
    CACL(aclrtCreateStream(&s2));
    /* Grow to 96 chunks, then copy 50 MiB at odd offsets from the first half
     * into the grown part on one stream while the other sets a region. */
    for (size_t i = 64; i < NCHUNK; i++)
        CTRY(vmm_map_chunk(base, i, h));
    const size_t n = 50 * MiB, soff = 4097, doff = 64 * CHUNK + 12345;
    CACL(aclrtMemcpyAsync(base + doff, n, base + soff, n, ACL_MEMCPY_DEVICE_TO_DEVICE, s1));
    CACL(aclrtMemsetAsync(base + 40 * CHUNK + 100, 3 * CHUNK, 0xa5, 3 * CHUNK, s2));
    CACL(aclrtSynchronizeStream(s1));
    CACL(aclrtSynchronizeStream(s2));
    CACL(aclrtMemcpy(back, n, base + doff, n, ACL_MEMCPY_DEVICE_TO_HOST));
    CCHECKF(checksum(back, n) == checksum(host + soff, n), "%s", "D2D across chunks differs");
    CACL(aclrtMemcpy(back, 3 * CHUNK, base + 40 * CHUNK + 100, 3 * CHUNK,
                     ACL_MEMCPY_DEVICE_TO_HOST));
    CCHECKF(first_not(back, 3 * CHUNK, 0xa5) == 3 * CHUNK, "%s", "memset across chunks");

    /* Give the tail back (chunks 32..95): exactly that memory returns, the
     * head keeps its data. */
    uint64_t before;
    CTRY(meminfo(&before));
    for (size_t i = 32; i < NCHUNK; i++)
        CTRY(vmm_unmap_chunk(base, i, h));
    CTRY(meminfo(&cur));
    CCHECKF(cur - before == (NCHUNK - 32) * CHUNK, "shrinking returned %" G_GINT64_FORMAT
            " bytes", (gint64)(cur - before));
    CACL(aclrtMemcpy(back, 32 * CHUNK, base, 32 * CHUNK, ACL_MEMCPY_DEVICE_TO_HOST));
    CCHECKF(checksum(back, 32 * CHUNK) == checksum(host, 32 * CHUNK), "%s",
            "head changed after the tail was unmapped");
    /* A copy into the unmapped tail fails on the device, leaves the head alone. */
    CACL(aclrtMemcpyAsync(base + 31 * CHUNK, 2 * CHUNK, base, 2 * CHUNK,
                          ACL_MEMCPY_DEVICE_TO_DEVICE, s1));
    aclError e = aclrtSynchronizeStream(s1);
    CCHECKF(e == ACL_ERROR_RT_SYS_DMA, "copy into the unmapped tail: %d", e);
    CACL(aclrtMemcpy(back, CHUNK, base + 31 * CHUNK, CHUNK, ACL_MEMCPY_DEVICE_TO_HOST));
    CCHECKF(checksum(back, CHUNK) == checksum(host + 31 * CHUNK, CHUNK), "%s",
            "a failed copy wrote into mapped memory");
    /* Grow again and use it. */
    for (size_t i = 32; i < 48; i++)
        CTRY(vmm_map_chunk(base, i, h));
    CACL(aclrtMemcpyAsync(base + 32 * CHUNK, 16 * CHUNK, base, 16 * CHUNK,
                          ACL_MEMCPY_DEVICE_TO_DEVICE, s2));
    CACL(aclrtSynchronizeStream(s2));
    CACL(aclrtMemcpy(back, 16 * CHUNK, base + 32 * CHUNK, 16 * CHUNK,
                     ACL_MEMCPY_DEVICE_TO_HOST));
    CCHECKF(checksum(back, 16 * CHUNK) == checksum(host, 16 * CHUNK), "%s",
            "regrown chunks hold the wrong data");

    for (size_t i = 0; i < 48; i++)
        CTRY(vmm_unmap_chunk(base, i, h));
    CACL(aclrtReleaseMemAddress(res));
    CACL(aclrtDestroyStream(s1));
    CACL(aclrtDestroyStream(s2));
    CTRY(meminfo(&cur));
    CCHECKF(cur == base_free, "%+" G_GINT64_FORMAT " bytes off baseline at the end",
            (gint64)(cur - base_free));
    free(host);
    free(back);
    CACL(aclFinalize());
    return 0;
}

/* Sleep / wake as RL frameworks do it: back the data up to the host, unmap and
 * free all physical memory, let something else use the device, then allocate
 * new physical memory (chunked differently), map it at the same addresses and
 * restore: the old device pointers are valid again and hold the data. */
static int child_vmm_sleep_wake(void *unused)
{
    (void)unused;
    const size_t n = 256 * MiB;
    CACL(aclInit(NULL));
    CACL(aclrtSetDevice(0));
    uint64_t base_free, cur;
    CTRY(meminfo(&base_free));
    void *res = NULL;
    CACL(aclrtReserveMemAddress(&res, n, 0, NULL, 0));
    uint8_t *w = res;
    aclrtDrvMemHandle h[4];
    aclrtPhysicalMemProp p = vmm_prop(0, ACL_MEM_HUGE);
    for (int i = 0; i < 4; i++) {
        CACL(aclrtMallocPhysical(&h[i], n / 4, &p, 0));
        CACL(aclrtMapMem(w + i * (n / 4), n / 4, 0, h[i], 0));
    }
    void *pin = NULL;
    CACL(aclrtMallocHost(&pin, n));
    fill_pattern(pin, n, 77);
    const uint64_t want = checksum(pin, n);
    aclrtStream s;
    CACL(aclrtCreateStream(&s));
    CACL(aclrtMemcpyAsync(w, n, pin, n, ACL_MEMCPY_HOST_TO_DEVICE, s));
    CACL(aclrtSynchronizeStream(s));

    /* Sleep. */
    memset(pin, 0, n);
    CACL(aclrtMemcpyAsync(pin, n, w, n, ACL_MEMCPY_DEVICE_TO_HOST, s));
    CACL(aclrtSynchronizeStream(s));
    CCHECKF(checksum(pin, n) == want, "%s", "backup differs");
    for (int i = 0; i < 4; i++) {
        CACL(aclrtUnmapMem(w + i * (n / 4)));
        CACL(aclrtFreePhysical(h[i]));
    }
    CTRY(meminfo(&cur));
    CCHECKF(cur == base_free, "asleep: %+" G_GINT64_FORMAT " bytes off baseline",
            (gint64)(cur - base_free));
    /* Someone else uses the HBM meanwhile (and dirties it). */
    void *other = NULL;
    CACL(aclrtMalloc(&other, n, ACL_MEM_MALLOC_HUGE_ONLY));
    CACL(aclrtMemset(other, n, 0xee, n));
    CACL(aclrtFree(other));

    /* Wake: new physical memory, two handles this time, at the same VA. */
    aclrtDrvMemHandle g[2];
    for (int i = 0; i < 2; i++) {
        CACL(aclrtMallocPhysical(&g[i], n / 2, &p, 0));
        CACL(aclrtMapMem(w + i * (n / 2), n / 2, 0, g[i], 0));
    }
    CACL(aclrtMemcpyAsync(w, n, pin, n, ACL_MEMCPY_HOST_TO_DEVICE, s));
    CACL(aclrtSynchronizeStream(s));
    /* Read back through the device: D2D into aclrtMalloc memory, then D2H. */
    void *d = NULL;
    CACL(aclrtMalloc(&d, n, ACL_MEM_MALLOC_HUGE_FIRST));
    memset(pin, 0, n);
    CACL(aclrtMemcpyAsync(d, n, w, n, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    CACL(aclrtMemcpyAsync(pin, n, d, n, ACL_MEMCPY_DEVICE_TO_HOST, s));
    CACL(aclrtSynchronizeStream(s));
    CCHECKF(checksum(pin, n) == want, "%s", "data after wake differs");
    CACL(aclrtFree(d));
    for (int i = 0; i < 2; i++) {
        CACL(aclrtUnmapMem(w + i * (n / 2)));
        CACL(aclrtFreePhysical(g[i]));
    }
    CACL(aclrtReleaseMemAddress(res));
    CACL(aclrtDestroyStream(s));
    CACL(aclrtFreeHost(pin));
    CTRY(meminfo(&cur));
    CCHECKF(cur == base_free, "%+" G_GINT64_FORMAT " bytes off baseline at the end",
            (gint64)(cur - base_free));
    CACL(aclFinalize());
    return 0;
}

/* A task that reaches an unmapped page fails its stream (507013 on the next
 * synchronise, destination untouched) while another stream's work, queued
 * around it, completes with the right data; the failing stream works again
 * afterwards. */
static int child_vmm_fault(void *unused)
{
    (void)unused;
    const size_t n = 16 * CHUNK;
    CACL(aclInit(NULL));
    CACL(aclrtSetDevice(0));
    void *res = NULL;
    CACL(aclrtReserveMemAddress(&res, n, 0, NULL, 0));
    uint8_t *v = res;
    aclrtDrvMemHandle h[16] = { 0 };
    for (size_t i = 0; i < 16; i++)
        CTRY(vmm_map_chunk(v, i, h));
    CTRY(vmm_unmap_chunk(v, 7, h));         /* the hole */
    void *a = NULL, *b = NULL, *pin = NULL;
    CACL(aclrtMalloc(&a, n, ACL_MEM_MALLOC_HUGE_FIRST));
    CACL(aclrtMalloc(&b, n, ACL_MEM_MALLOC_HUGE_FIRST));
    CACL(aclrtMallocHost(&pin, n));
    fill_pattern(pin, n, 5);
    const uint64_t want = checksum(pin, n);
    CACL(aclrtMemcpy(a, n, pin, n, ACL_MEMCPY_HOST_TO_DEVICE));
    CACL(aclrtMemset(b, n, 0x11, n));
    aclrtStream bad, good;
    CACL(aclrtCreateStream(&bad));
    CACL(aclrtCreateStream(&good));
    for (int round = 0; round < 8; round++) {
        /* From the mapped head across the hole into b: fails, b unchanged. */
        CACL(aclrtMemcpyAsync(b, 4 * CHUNK, v + 5 * CHUNK, 4 * CHUNK,
                              ACL_MEMCPY_DEVICE_TO_DEVICE, bad));
        /* Into the hole: fails too. */
        CACL(aclrtMemsetAsync(v + 6 * CHUNK, 2 * CHUNK, 0, 2 * CHUNK, bad));
        CACL(aclrtMemcpyAsync(v, n / 4, a, n / 4, ACL_MEMCPY_DEVICE_TO_DEVICE, good));
        CACL(aclrtMemcpyAsync(v + 8 * CHUNK, n / 2, a, n / 2, ACL_MEMCPY_DEVICE_TO_DEVICE,
                              good));
    }
    aclError e = aclrtSynchronizeStream(bad);
    CCHECKF(e == ACL_ERROR_RT_SYS_DMA, "the stream with the fault: %d, expected 507013", e);
    CACL(aclrtSynchronizeStream(good));
    uint8_t *back = malloc(n);
    CCHECK(back);
    CACL(aclrtMemcpy(back, n / 2, v + 8 * CHUNK, n / 2, ACL_MEMCPY_DEVICE_TO_HOST));
    CCHECKF(checksum(back, n / 2) == checksum(pin, n / 2), "%s", "the good stream's data");
    CACL(aclrtMemcpy(back, n, b, n, ACL_MEMCPY_DEVICE_TO_HOST));
    CCHECKF(first_not(back, n, 0x11) == n, "%s", "a failed copy wrote into b");
    /* The error was reported once; the stream runs new work. */
    CACL(aclrtMemcpyAsync(b, n, a, n, ACL_MEMCPY_DEVICE_TO_DEVICE, bad));
    CACL(aclrtSynchronizeStream(bad));
    CACL(aclrtMemcpy(back, n, b, n, ACL_MEMCPY_DEVICE_TO_HOST));
    CCHECKF(checksum(back, n) == want, "%s", "the stream after its fault");
    free(back);
    CACL(aclFinalize());        /* leaves the mappings to the emulator's reclaim */
    return 0;
}

static void test_vmm_flows(void)
{
    NEED_SHARED_EMU();
    CU_ASSERT_FATAL(wait_all_idle(5000 * (int)slow));
    CU_ASSERT_EQUAL(kid_run("vmm allocator", child_vmm_allocator, NULL, 120), 0);
    CU_ASSERT_EQUAL(kid_run("vmm sleep/wake", child_vmm_sleep_wake, NULL, 120), 0);
    CU_ASSERT_EQUAL(kid_run("vmm fault", child_vmm_fault, NULL, 120), 0);
    CU_ASSERT(wait_free(0, HBM_TOTAL, 5000 * (int)slow));
    CU_ASSERT_EQUAL(kid_run("healthy after vmm", child_healthy, (void *)(intptr_t)0, 60), 0);
}

#define TIMED(fn)                                                                    \
    static void fn##_timed(void)                                                     \
    {                                                                                \
        int64_t t0_ = clock_ms();                                                      \
        fn();                                                                        \
        printf(" (%.1f s) ", (double)(clock_ms() - t0_) / 1000.0);            \
    }
TIMED(test_every_device)
TIMED(test_copy_roundtrips)
TIMED(test_streams)
TIMED(test_meminfo_accounting)
TIMED(test_kill_holder)
TIMED(test_kill_inflight)
TIMED(test_two_processes)
TIMED(test_embedded_default)
TIMED(test_embedded_idle_exit_race)
TIMED(test_other_user_refused)
TIMED(test_garbage)
TIMED(test_duplicate_session)
TIMED(test_reinit)
TIMED(test_vmm_flows)

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--child-churn") == 0)
        return churn_main(atoi(argv[2]), atoi(argv[3]));
    static const TestCase tests[] = {
        { "every device of a2, alone and two clients at once", test_every_device_timed },
        { "copy round trips with checksums, every direction", test_copy_roundtrips_timed },
        { "streams run concurrently and in order", test_streams_timed },
        { "meminfo accounting back to baseline", test_meminfo_accounting_timed },
        { "SIGKILLed client holding 8 GiB is reclaimed", test_kill_holder_timed },
        { "SIGKILLed client with tasks in flight", test_kill_inflight_timed },
        { "two processes churning at once", test_two_processes_timed },
        { "embedded default emulator, shared and started once", test_embedded_default_timed },
        { "embedded emulator: client arriving at idle exit", test_embedded_idle_exit_race_timed },
        { "another user is refused", test_other_user_refused_timed },
        { "the emulator survives garbage", test_garbage_timed },
        { "a second connection of one process is refused", test_duplicate_session_timed },
        { "aclFinalize then aclInit again", test_reinit_timed },
        { "vmm: expandable segments, sleep/wake, a fault in one stream", test_vmm_flows_timed },
    };
    /* The suite starts and stops the shared emulator itself.  MP_ONLY=word runs
     * only the tests whose name contains it (for debugging). */
    static const TestProgram prog = {
        .name = "test_multiprocess",
        .suites = { SUITE("multiprocess", suite_init, suite_clean, tests) },
        .only_env = "MP_ONLY",
    };
    return test_main(&prog);
}
