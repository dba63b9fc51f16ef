/*
 * bench.c - npu-bench: performance figures of npu-emu in one run.
 *
 * Measures two floors of the machine, then the runtime against them:
 *  - plain memcpy bandwidth on 64 MiB buffers, and a futex ping-pong round trip
 *    between two processes (the cost of one cross-process wake-up each way);
 *  - synchronous aclrtMemcpy bandwidth (H2D, D2H, D2D), target >= 0.8 x memcpy;
 *  - aclrtMalloc + aclrtFree pairs: 1 KiB (a slice of a shared block) and 2 MiB
 *    huge (its own memory object: memfd over the socket + mmap), target <= 6 x
 *    the futex round trip;
 *  - an empty request (aclrtSynchronizeDevice on an idle device, back to back),
 *    target <= 2 x the futex round trip;
 *  - virtual memory: the device page table's translation cost (ns per page of
 *    4 KiB and 2 MiB, as a fraction of the time memcpy takes to copy that page),
 *    an aclrtMallocPhysical + aclrtMapMem + aclrtUnmapMem + aclrtFreePhysical
 *    cycle of 2 MiB (ratio to the futex round trip), and an async D2D copy of
 *    256 MiB between two reservations each mapped as 128 separate 2 MiB handles,
 *    target >= 0.7 x memcpy;
 *  - sharing, with a second process that exports: the time from
 *    aclrtIpcMemImportByKey's call to a usable pointer, and a V1 / V2
 *    shareable-handle import plus aclrtMapMem, each as a ratio to the futex
 *    round trip (target <= 10x), and an async D2D copy of 64 MiB from memory
 *    imported by key (target >= 0.7 x memcpy);
 *  - synchronisation across processes: a notify hop (a record in one process
 *    releasing a wait in another, both queued ahead behind a gate) and an IPC
 *    event hop the same way, as ratios to the futex round trip (target <= 3x),
 *    and the rate of 1-byte async memsets on one stream against the rate of
 *    empty requests;
 *  - informational: aclrtMemcpyAsync D2D + aclrtSynchronizeStream bandwidth, the
 *    same empty request when the emulator had time to fall asleep, a tiny async
 *    copy round trip, and a lone 1 KiB malloc + free (no other slice keeps its
 *    block alive, so the block is created and destroyed every time).
 *
 * Every figure is the median of its samples, taken after a warm-up, with
 * CLOCK_MONOTONIC; nothing is pinned.  The 64 MiB copies run in interleaved
 * rounds (memcpy, H2D, D2H, D2D, async D2D, memcpy, ...) so that a slow phase of
 * the machine hits the floor and the runtime alike.  The futex floor pools the
 * round trips of several forked children: where the scheduler puts the two
 * processes (one CPU or two) changes a round trip several-fold on some machines
 * (virtual machines whose idle vCPUs halt), so the run also reports how often
 * both were on one CPU and the typical round trip of each case.
 *
 * Unless $NPU_EMU_SOCKET is set, the program starts its own emulator (the
 * runtime's embedded default) on a fresh temporary socket with
 * NPU_EMU_IDLE_EXIT=2, so a user's emulator is never disturbed.  Exit status: 0
 * whether or not targets are met (this is a measurement), 1 if an API call or
 * the measurement machinery fails, 2 on a usage error.
 *
 * Usage: npu-bench [--quick] [--json FILE]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <glib.h>
#include <linux/futex.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "acl/acl.h"
#include "devmodel/pagetable.h"

#define MiB (1024ull * 1024ull)
#define BUF_SIZE (64 * MiB)

/* ---- configuration ---- */

typedef struct Iters {
    int bw_warm, bw_runs;   /* untimed / timed copies per bandwidth figure */
    int futex_forks;        /* ping-pong children; each does warm + n round trips */
    int futex_warm, futex_n;
    int small_warm, small_n;
    int huge_warm, huge_n;
    int sync_warm, sync_n;
    int sleepy_n;           /* empty requests after a pause */
    int lone_warm, lone_n;
    int tiny_warm, tiny_n;
    int pt_rounds;          /* translation passes over 1 GiB of mappings */
    int vmm_warm, vmm_n;    /* physical + map + unmap + free cycles */
    int vmm_bw_runs;        /* 256 MiB copies through VMM */
    int share_warm, share_n; /* imports of each kind */
    int hops;               /* ping-pong rounds of the notify / event hops */
    int tasks;              /* 1-byte memsets for the task rate */
} Iters;

static const Iters ITERS_FULL = {
    .bw_warm = 2, .bw_runs = 10,
    .futex_forks = 4, .futex_warm = 500, .futex_n = 5000,
    .small_warm = 1000, .small_n = 20000,
    .huge_warm = 200, .huge_n = 5000,
    .sync_warm = 1000, .sync_n = 20000,
    .sleepy_n = 2000,
    .lone_warm = 100, .lone_n = 2000,
    .tiny_warm = 500, .tiny_n = 10000,
    .pt_rounds = 9,
    .vmm_warm = 100, .vmm_n = 2000,
    .vmm_bw_runs = 7,
    .share_warm = 50, .share_n = 1000,
    .hops = 1000, .tasks = 20000,
};

static const Iters ITERS_QUICK = {
    .bw_warm = 1, .bw_runs = 3,
    .futex_forks = 2, .futex_warm = 100, .futex_n = 1000,
    .small_warm = 100, .small_n = 2000,
    .huge_warm = 20, .huge_n = 300,
    .sync_warm = 100, .sync_n = 2000,
    .sleepy_n = 200,
    .lone_warm = 10, .lone_n = 200,
    .tiny_warm = 50, .tiny_n = 1000,
    .pt_rounds = 3,
    .vmm_warm = 10, .vmm_n = 200,
    .vmm_bw_runs = 3,
    .share_warm = 5, .share_n = 100,
    .hops = 100, .tasks = 2000,
};

#define SLEEPY_PAUSE_US 200 /* long enough for the session thread to go to sleep */

/* ---- results ---- */

typedef enum Kind {
    KIND_FLOOR,         /* a reference figure: no ratio */
    KIND_PAGE_4K,       /* ns per 4 KiB page: ratio to memcpy's time for 4 KiB */
    KIND_PAGE_2M,       /* ns per 2 MiB page: ratio to memcpy's time for 2 MiB */
    KIND_RATE,          /* thousands per second: ratio to the empty-request rate */
    KIND_BW,            /* bandwidth: ratio to memcpy, higher is better */
    KIND_LAT,           /* latency: ratio to the futex round trip, lower is better */
} Kind;

/* Table order. */
typedef enum ResultId {
    R_MEMCPY,
    R_FUTEX,
    R_H2D,
    R_D2H,
    R_D2D,
    R_ALLOC_SMALL,
    R_ALLOC_HUGE,
    R_EMPTY,
    R_ASYNC_D2D,
    R_EMPTY_SLEEPY,
    R_ASYNC_TINY,
    R_ALLOC_LONE,
    R_PT_4K,
    R_PT_2M,
    R_VMM_CYCLE,
    R_VMM_D2D,
    R_IPC_IMPORT,
    R_SHARE_V1,
    R_SHARE_V2,
    R_IPC_D2D,
    R_NOTIFY_HOP,
    R_EVENT_HOP,
    R_TASK_RATE,
    R_COUNT
} ResultId;

typedef struct Result {
    bool set;
    const char *key;    /* JSON name */
    const char *name;   /* table name */
    Kind kind;
    const char *unit;
    double value;       /* median */
    double best;        /* best sample (max bandwidth, min latency) */
    double p10, p90;    /* percentiles of the samples (in the value's unit) */
    int samples;
    double ratio;       /* NAN for floors */
    double target;      /* NAN: informational */
} Result;

static Result results[R_COUNT];

/* Futex floor diagnostics: round trips with both processes on one CPU. */
static double futex_same_frac = NAN, futex_same_med = NAN, futex_cross_med = NAN;

/* ---- environment ---- */

static char *tmp_dir;       /* our emulator's directory, NULL when the user's is used */
static char *sock_path;
static bool keep_tmp;       /* something failed: leave the emulator log behind */

static void cleanup_tmp(void)
{
    if (!tmp_dir || keep_tmp)
        return;
    /* Our emulator exits by itself when idle; its socket, lock and log go now.
     * Its last log lines then land in an unlinked file, which is harmless. */
    const char *suffix[] = { "", ".lock", ".log" };
    for (size_t i = 0; i < G_N_ELEMENTS(suffix); i++) {
        char *p = g_strconcat(sock_path, suffix[i], NULL);
        unlink(p);
        g_free(p);
    }
    rmdir(tmp_dir);
}

static G_NORETURN void die(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fputs("npu-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (tmp_dir) {
        char *log = g_strconcat(sock_path, ".log", NULL);
        if (access(log, F_OK) == 0) {
            keep_tmp = true;    /* cleanup_tmp leaves the directory alone */
            fprintf(stderr, "npu-bench: emulator log: %s\n", log);
        }
        g_free(log);
    }
    exit(1);
}

#define CHECK(call)                                                                   \
    do {                                                                              \
        aclError e_ = (call);                                                         \
        if (e_ != ACL_SUCCESS) {                                                      \
            const char *r_ = aclGetRecentErrMsg();                                    \
            char *m_ = r_ ? g_strchomp(g_strdup(r_)) : NULL;                          \
            die("%s failed with error %d%s%s", #call, (int)e_, m_ && *m_ ? ": " : "", \
                m_ && *m_ ? m_ : "");                                                 \
        }                                                                             \
    } while (0)

/* Points the runtime at a fresh emulator of our own unless the user chose one. */
static void setup_emulator_env(void)
{
    const char *user = getenv("NPU_EMU_SOCKET");
    if (user && *user) {
        sock_path = g_strdup(user);
        /* If the runtime has to start one there, let it go soon after us. */
        setenv("NPU_EMU_IDLE_EXIT", "2", 0);
        return;
    }
    GError *err = NULL;
    tmp_dir = g_dir_make_tmp("npu-bench-XXXXXX", &err);
    struct sockaddr_un sun;
    if (tmp_dir && strlen(tmp_dir) + sizeof("/emu.sock.lock") > sizeof(sun.sun_path)) {
        rmdir(tmp_dir);     /* $TMPDIR is too deep for a socket path */
        g_free(tmp_dir);
        tmp_dir = NULL;
    }
    if (!tmp_dir) {
        g_clear_error(&err);
        char tmpl[] = "/tmp/npu-bench-XXXXXX";
        if (!mkdtemp(tmpl))
            die("cannot create a temporary directory: %s", g_strerror(errno));
        tmp_dir = g_strdup(tmpl);
    }
    sock_path = g_build_filename(tmp_dir, "emu.sock", NULL);
    setenv("NPU_EMU_SOCKET", sock_path, 1);
    setenv("NPU_EMU_IDLE_EXIT", "2", 1);
    atexit(cleanup_tmp);
}

/* ---- measurement helpers ---- */

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline double us_since(uint64_t t0, uint64_t t1)
{
    return (double)(t1 - t0) / 1000.0;
}

static double gbps(uint64_t bytes, uint64_t ns)
{
    return ns ? (double)bytes / (double)ns : 0.0; /* bytes per ns == GB/s */
}

/* Keeps the compiler from dropping or reordering work on p. */
static inline void escape(void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of sorted v, linearly interpolated. */
static double quantile_sorted(const double *v, int n, double q)
{
    if (n <= 0)
        return NAN;
    double pos = q * (n - 1);
    int i = (int)pos;
    if (i >= n - 1)
        return v[n - 1];
    return v[i] + (pos - i) * (v[i + 1] - v[i]);
}

static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return quantile_sorted(v, n, 0.5);
}

/* Records result `id` from raw samples (already in `unit`); sorts them. */
static void add_result(ResultId id, const char *key, const char *name, Kind kind,
                       const char *unit, double *samples, int n, double target)
{
    qsort(samples, (size_t)n, sizeof(double), cmp_double);
    bool higher_better = strcmp(unit, "GB/s") == 0;
    results[id] = (Result){
        .set = true, .key = key, .name = name, .kind = kind, .unit = unit,
        .value = quantile_sorted(samples, n, 0.5),
        .best = higher_better ? samples[n - 1] : samples[0],
        .p10 = quantile_sorted(samples, n, 0.1),
        .p90 = quantile_sorted(samples, n, 0.9),
        .samples = n, .ratio = NAN, .target = target,
    };
}

static bool result_met(const Result *r)
{
    if (isnan(r->target) || isnan(r->ratio))
        return false;
    return r->kind == KIND_BW ? r->ratio >= r->target : r->ratio <= r->target;
}

/* ---- futex floor ---- */

static long futex_op(uint32_t *word, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, word, op, val, ts, NULL, 0);
}

#define PING_STOP UINT32_MAX

typedef struct PingPage {
    uint32_t ping;          /* parent -> child: sequence number */
    uint32_t pong;          /* child -> parent: the same number back */
    int32_t child_cpu;      /* where the child answered (diagnostics only) */
} PingPage;

/* The child: answers every new ping value with the same pong value. */
static G_NORETURN void futex_child(PingPage *pg, pid_t parent)
{
    /* Never outlive the parent, even if it is killed mid-measurement. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(3);
    uint32_t last = 0;
    for (;;) {
        uint32_t v;
        while ((v = __atomic_load_n(&pg->ping, __ATOMIC_ACQUIRE)) == last) {
            struct timespec ts = { .tv_sec = 1 };
            futex_op(&pg->ping, FUTEX_WAIT, last, &ts);
            if (getppid() != parent)
                _exit(4);
        }
        if (v == PING_STOP)
            _exit(0);
        last = v;
        __atomic_store_n(&pg->child_cpu, sched_getcpu(), __ATOMIC_RELAXED);
        __atomic_store_n(&pg->pong, v, __ATOMIC_RELEASE);
        futex_op(&pg->pong, FUTEX_WAKE, 1, NULL);
    }
}

/* One child: warm + n round trips; stores n samples (us) and same-CPU flags. */
static void futex_round(const Iters *it, double *out, bool *same)
{
    /* A shared anonymous page; non-private futex operations, as between a
     * client and npu-emu. */
    PingPage *pg = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (pg == MAP_FAILED)
        die("cannot map the futex page: %s", g_strerror(errno));
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", g_strerror(errno));
    if (pid == 0)
        futex_child(pg, parent);

    int total = it->futex_warm + it->futex_n;
    for (int i = 1; i <= total; i++) {
        uint32_t seq = (uint32_t)i;
        uint64_t t0 = now_ns();
        __atomic_store_n(&pg->ping, seq, __ATOMIC_RELEASE);
        futex_op(&pg->ping, FUTEX_WAKE, 1, NULL);
        uint32_t v;
        while ((v = __atomic_load_n(&pg->pong, __ATOMIC_ACQUIRE)) != seq) {
            struct timespec ts = { .tv_sec = 5 };
            if (futex_op(&pg->pong, FUTEX_WAIT, v, &ts) < 0 && errno == ETIMEDOUT) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                die("futex ping-pong: the child did not answer within 5 s");
            }
        }
        uint64_t t1 = now_ns();
        if (i > it->futex_warm) {
            out[i - it->futex_warm - 1] = us_since(t0, t1);
            same[i - it->futex_warm - 1] =
                sched_getcpu() == __atomic_load_n(&pg->child_cpu, __ATOMIC_RELAXED);
        }
    }
    __atomic_store_n(&pg->ping, PING_STOP, __ATOMIC_RELEASE);
    futex_op(&pg->ping, FUTEX_WAKE, 1, NULL);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            die("waitpid: %s", g_strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("futex ping-pong child ended badly (status 0x%x)", status);
    munmap(pg, 4096);
}

static void bench_futex(const Iters *it)
{
    int n = it->futex_forks * it->futex_n;
    double *s = g_new(double, n);
    bool *same = g_new(bool, n);
    for (int f = 0; f < it->futex_forks; f++)
        futex_round(it, s + f * it->futex_n, same + f * it->futex_n);

    /* Split by placement before add_result sorts the samples. */
    double *a = g_new(double, n), *b = g_new(double, n);
    int na = 0, nb = 0;
    for (int i = 0; i < n; i++) {
        if (same[i])
            a[na++] = s[i];
        else
            b[nb++] = s[i];
    }
    futex_same_frac = (double)na / n;
    futex_same_med = na ? median_of(a, na) : NAN;
    futex_cross_med = nb ? median_of(b, nb) : NAN;
    g_free(a);
    g_free(b);
    add_result(R_FUTEX, "futex_rt", "futex ping-pong round trip (floor)", KIND_FLOOR, "us", s,
               n, NAN);
    g_free(same);
    g_free(s);
}

/* ---- bandwidth: interleaved rounds ---- */

static void *map_buffer(size_t size, int fill)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("cannot map %zu bytes: %s", size, g_strerror(errno));
    memset(p, fill, size);      /* pre-touch */
    return p;
}

enum { BW_MEMCPY, BW_H2D, BW_D2H, BW_D2D, BW_ASYNC, BW_COUNT };

/* One 64 MiB copy of kind k; returns GB/s. */
static double copy_once(int k, void *hdst, const void *hsrc, void *d0, void *d1, aclrtStream st)
{
    uint64_t t0 = now_ns();
    switch (k) {
    case BW_MEMCPY:
        memcpy(hdst, hsrc, BUF_SIZE);
        escape(hdst);
        break;
    case BW_H2D:
        CHECK(aclrtMemcpy(d0, BUF_SIZE, hsrc, BUF_SIZE, ACL_MEMCPY_HOST_TO_DEVICE));
        break;
    case BW_D2H:
        CHECK(aclrtMemcpy(hdst, BUF_SIZE, d0, BUF_SIZE, ACL_MEMCPY_DEVICE_TO_HOST));
        break;
    case BW_D2D:
        CHECK(aclrtMemcpy(d1, BUF_SIZE, d0, BUF_SIZE, ACL_MEMCPY_DEVICE_TO_DEVICE));
        break;
    case BW_ASYNC:
        CHECK(aclrtMemcpyAsync(d1, BUF_SIZE, d0, BUF_SIZE, ACL_MEMCPY_DEVICE_TO_DEVICE, st));
        CHECK(aclrtSynchronizeStream(st));
        break;
    }
    return gbps(BUF_SIZE, now_ns() - t0);
}

static void bench_bandwidth(const Iters *it, void *hdst, const void *hsrc, void *d0, void *d1,
                            aclrtStream st)
{
    double *s[BW_COUNT];
    for (int k = 0; k < BW_COUNT; k++)
        s[k] = g_new(double, it->bw_runs);
    for (int r = 0; r < it->bw_warm; r++)
        for (int k = 0; k < BW_COUNT; k++)
            copy_once(k, hdst, hsrc, d0, d1, st);
    for (int r = 0; r < it->bw_runs; r++)
        for (int k = 0; k < BW_COUNT; k++)
            s[k][r] = copy_once(k, hdst, hsrc, d0, d1, st);
    add_result(R_MEMCPY, "memcpy_bw", "memcpy 64 MiB (floor)", KIND_FLOOR, "GB/s", s[BW_MEMCPY],
               it->bw_runs, NAN);
    add_result(R_H2D, "h2d_bw", "aclrtMemcpy H2D 64 MiB", KIND_BW, "GB/s", s[BW_H2D],
               it->bw_runs, 0.8);
    add_result(R_D2H, "d2h_bw", "aclrtMemcpy D2H 64 MiB", KIND_BW, "GB/s", s[BW_D2H],
               it->bw_runs, 0.8);
    add_result(R_D2D, "d2d_bw", "aclrtMemcpy D2D 64 MiB (same device)", KIND_BW, "GB/s",
               s[BW_D2D], it->bw_runs, 0.8);
    add_result(R_ASYNC_D2D, "async_d2d_bw", "aclrtMemcpyAsync D2D 64 MiB + sync stream",
               KIND_BW, "GB/s", s[BW_ASYNC], it->bw_runs, NAN);
    for (int k = 0; k < BW_COUNT; k++)
        g_free(s[k]);
}

/* ---- latencies ---- */

static void bench_alloc(ResultId id, const char *key, const char *name, size_t size,
                        aclrtMemMallocPolicy policy, int warm, int n, double target)
{
    double *s = g_new(double, n);
    for (int i = 0; i < warm + n; i++) {
        void *p = NULL;
        uint64_t t0 = now_ns();
        CHECK(aclrtMalloc(&p, size, policy));
        CHECK(aclrtFree(p));
        uint64_t t1 = now_ns();
        if (i >= warm)
            s[i - warm] = us_since(t0, t1);
    }
    add_result(id, key, name, KIND_LAT, "us", s, n, target);
    g_free(s);
}

/* Back to back: the measure of the request path itself. */
static void bench_empty_request(const Iters *it)
{
    double *s = g_new(double, it->sync_n);
    for (int i = 0; i < it->sync_warm + it->sync_n; i++) {
        uint64_t t0 = now_ns();
        CHECK(aclrtSynchronizeDevice());
        uint64_t t1 = now_ns();
        if (i >= it->sync_warm)
            s[i - it->sync_warm] = us_since(t0, t1);
    }
    add_result(R_EMPTY, "empty_request", "aclrtSynchronizeDevice, idle (empty request)",
               KIND_LAT, "us", s, it->sync_n, 2.0);
    g_free(s);
}

/* After a pause, as for a program that calls the runtime now and then: the
 * emulator's session thread has gone to sleep and must be woken. */
static void bench_empty_request_sleepy(const Iters *it)
{
    double *s = g_new(double, it->sleepy_n);
    for (int i = 0; i < it->sleepy_n; i++) {
        g_usleep(SLEEPY_PAUSE_US);
        uint64_t t0 = now_ns();
        CHECK(aclrtSynchronizeDevice());
        s[i] = us_since(t0, now_ns());
    }
    add_result(R_EMPTY_SLEEPY, "empty_request_after_pause",
               "  same, after a 0.2 ms pause (emulator asleep)", KIND_LAT, "us", s,
               it->sleepy_n, NAN);
    g_free(s);
}

/* A small copy on a stream and its synchronisation: submit request + stream
 * worker wake-up + completion wake-up. */
static void bench_async_tiny(const Iters *it, aclrtStream st, void *dst, const void *src)
{
    double *s = g_new(double, it->tiny_n);
    for (int i = 0; i < it->tiny_warm + it->tiny_n; i++) {
        uint64_t t0 = now_ns();
        CHECK(aclrtMemcpyAsync(dst, 64, src, 64, ACL_MEMCPY_DEVICE_TO_DEVICE, st));
        CHECK(aclrtSynchronizeStream(st));
        uint64_t t1 = now_ns();
        if (i >= it->tiny_warm)
            s[i - it->tiny_warm] = us_since(t0, t1);
    }
    add_result(R_ASYNC_TINY, "async_tiny_rt", "aclrtMemcpyAsync 64 B D2D + sync stream",
               KIND_LAT, "us", s, it->tiny_n, NAN);
    g_free(s);
}

/* ---- virtual memory ---- */

/* Translation through a device page table as the stream engine does it (read
 * lock held, one lookup per page), over 1 GiB mapped in pages of page_size. */
static void bench_translate(const Iters *it, ResultId id, const char *key, const char *name,
                            uint64_t page_size, Kind kind)
{
    const uint64_t va = 0x104000000000ull, span = 1ull << 30;
    PageTable *t = pt_new();
    if (!pt_map(t, va, span, page_size, 0, 0, PT_RW))
        die("cannot map the page table for the translation benchmark");
    uint64_t pages = span / page_size;
    int reps = page_size == 4096 ? 1 : 512;     /* about as many lookups for both */
    double *s = g_new(double, it->pt_rounds);
    uint64_t sink = 0;
    for (int r = 0; r < it->pt_rounds; r++) {
        uint64_t t0 = now_ns();
        pt_read_lock(t);
        for (int k = 0; k < reps; k++)
            for (uint64_t i = 0; i < pages; i++) {
                PtHit hit;
                if (!pt_lookup(t, va + i * page_size, &hit))
                    die("translation failed");
                sink += hit.phys;
            }
        pt_read_unlock(t);
        s[r] = (double)(now_ns() - t0) / (double)(pages * (uint64_t)reps);
    }
    escape(&sink);
    add_result(id, key, name, kind, "ns", s, it->pt_rounds, NAN);
    g_free(s);
    pt_destroy(t);
}

static aclrtPhysicalMemProp bench_prop(void)
{
    aclrtPhysicalMemProp p = { .handleType = ACL_MEM_HANDLE_TYPE_NONE,
                               .allocationType = ACL_MEM_ALLOCATION_TYPE_PINNED,
                               .memAttr = ACL_MEM_HUGE,
                               .location = { .id = 0, .type = ACL_MEM_LOCATION_TYPE_DEVICE } };
    return p;
}

static void bench_vmm_cycle(const Iters *it)
{
    aclrtPhysicalMemProp p = bench_prop();
    void *va = NULL;
    CHECK(aclrtReserveMemAddress(&va, 2 * MiB, 0, NULL, 0));
    double *s = g_new(double, it->vmm_n);
    for (int i = 0; i < it->vmm_warm + it->vmm_n; i++) {
        aclrtDrvMemHandle h = NULL;
        uint64_t t0 = now_ns();
        CHECK(aclrtMallocPhysical(&h, 2 * MiB, &p, 0));
        CHECK(aclrtMapMem(va, 2 * MiB, 0, h, 0));
        CHECK(aclrtUnmapMem(va));
        CHECK(aclrtFreePhysical(h));
        uint64_t t1 = now_ns();
        if (i >= it->vmm_warm)
            s[i - it->vmm_warm] = us_since(t0, t1);
    }
    CHECK(aclrtReleaseMemAddress(va));
    add_result(R_VMM_CYCLE, "vmm_cycle_2m",
               "MallocPhysical+MapMem+UnmapMem+FreePhysical 2 MiB", KIND_LAT, "us", s,
               it->vmm_n, NAN);
    g_free(s);
}

/* 256 MiB from one reservation to another, each 128 handles of 2 MiB: the
 * engine crosses a memory-object boundary every 2 MiB on both sides. */
static void bench_vmm_copy(const Iters *it, aclrtStream st)
{
    enum { N = 128 };
    const size_t size = N * 2 * MiB;
    aclrtPhysicalMemProp p = bench_prop();
    void *va[2];
    aclrtDrvMemHandle h[2][N];
    for (int k = 0; k < 2; k++) {
        CHECK(aclrtReserveMemAddress(&va[k], size, 0, NULL, 0));
        for (int i = 0; i < N; i++) {
            CHECK(aclrtMallocPhysical(&h[k][i], 2 * MiB, &p, 0));
            CHECK(aclrtMapMem((uint8_t *)va[k] + (size_t)i * 2 * MiB, 2 * MiB, 0, h[k][i], 0));
        }
        CHECK(aclrtMemset(va[k], size, 0x30 + k, size));   /* pre-touch */
    }
    double *s = g_new(double, it->vmm_bw_runs);
    for (int r = -1; r < it->vmm_bw_runs; r++) {
        uint64_t t0 = now_ns();
        CHECK(aclrtMemcpyAsync(va[1], size, va[0], size, ACL_MEMCPY_DEVICE_TO_DEVICE, st));
        CHECK(aclrtSynchronizeStream(st));
        if (r >= 0)
            s[r] = gbps(size, now_ns() - t0);
    }
    add_result(R_VMM_D2D, "vmm_async_d2d_bw", "aclrtMemcpyAsync D2D 256 MiB, VMM 2 MiB handles",
               KIND_BW, "GB/s", s, it->vmm_bw_runs, 0.7);
    g_free(s);
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < N; i++) {
            CHECK(aclrtUnmapMem((uint8_t *)va[k] + (size_t)i * 2 * MiB));
            CHECK(aclrtFreePhysical(h[k][i]));
        }
        CHECK(aclrtReleaseMemAddress(va[k]));
    }
}

/* ---- sharing: a second process exports, this one imports ---- */

typedef struct Exported {
    char key[65];           /* IPC key of 64 MiB of aclrtMalloc memory */
    uint64_t v1;            /* DEFAULT handle (V1) of 2 MiB */
    uint64_t v2;            /* DEFAULT handle (V2) of 2 MiB */
} Exported;

/* The exporter: exports everything without pid validation, sends the names,
 * keeps them alive until the pipe closes. */
static G_NORETURN void exporter_child(int out, int done)
{
    Exported e;
    memset(&e, 0, sizeof(e));
    void *d = NULL;
    aclrtDrvMemHandle h1 = NULL, h2 = NULL;
    aclrtPhysicalMemProp p = bench_prop();
    bool ok = aclInit(NULL) == ACL_SUCCESS && aclrtSetDevice(0) == ACL_SUCCESS &&
              aclrtMalloc(&d, BUF_SIZE, ACL_MEM_MALLOC_HUGE_ONLY) == ACL_SUCCESS &&
              aclrtMemset(d, BUF_SIZE, 0x77, BUF_SIZE) == ACL_SUCCESS &&
              aclrtIpcMemGetExportKey(d, BUF_SIZE, e.key, sizeof(e.key),
                                      ACL_RT_IPC_MEM_EXPORT_FLAG_DISABLE_PID_VALIDATION) ==
                  ACL_SUCCESS &&
              aclrtMallocPhysical(&h1, 2 * MiB, &p, 0) == ACL_SUCCESS &&
              aclrtMallocPhysical(&h2, 2 * MiB, &p, 0) == ACL_SUCCESS &&
              aclrtMemExportToShareableHandle(h1, ACL_MEM_HANDLE_TYPE_NONE,
                                              ACL_RT_VMM_EXPORT_FLAG_DISABLE_PID_VALIDATION,
                                              &e.v1) == ACL_SUCCESS &&
              aclrtMemExportToShareableHandleV2(h2, ACL_RT_VMM_EXPORT_FLAG_DISABLE_PID_VALIDATION,
                                                ACL_MEM_SHARE_HANDLE_TYPE_DEFAULT, &e.v2) ==
                  ACL_SUCCESS;
    if (!ok)
        memset(&e, 0, sizeof(e));
    if (write(out, &e, sizeof(e)) != (ssize_t)sizeof(e))
        _exit(1);
    char b;
    while (read(done, &b, 1) < 0 && errno == EINTR)
        ;
    aclFinalize();
    _exit(ok ? 0 : 1);
}

static void bench_sharing(const Iters *it, aclrtStream st, void *dst)
{
    int to_parent[2], to_child[2];
    if (pipe(to_parent) || pipe(to_child))
        die("pipe: %s", g_strerror(errno));
    pid_t kid = fork();
    if (kid < 0)
        die("fork: %s", g_strerror(errno));
    if (kid == 0) {
        close(to_parent[0]);
        close(to_child[1]);
        exporter_child(to_parent[1], to_child[0]);
    }
    close(to_parent[1]);
    close(to_child[0]);
    Exported e;
    if (read(to_parent[0], &e, sizeof(e)) != (ssize_t)sizeof(e) || !e.key[0])
        die("the exporting process failed");

    double *s = g_new(double, it->share_n);
    for (int i = 0; i < it->share_warm + it->share_n; i++) {
        void *p = NULL;
        uint64_t t0 = now_ns();
        CHECK(aclrtIpcMemImportByKey(&p, e.key, 0));
        uint64_t t1 = now_ns();
        CHECK(aclrtIpcMemClose(e.key));
        if (i >= it->share_warm)
            s[i - it->share_warm] = us_since(t0, t1);
    }
    add_result(R_IPC_IMPORT, "ipc_import", "aclrtIpcMemImportByKey, 64 MiB", KIND_LAT, "us", s,
               it->share_n, 10.0);

    void *va = NULL;
    CHECK(aclrtReserveMemAddress(&va, 2 * MiB, 0, NULL, 0));
    for (int v = 1; v <= 2; v++) {
        for (int i = 0; i < it->share_warm + it->share_n; i++) {
            aclrtDrvMemHandle h = NULL;
            uint64_t t0 = now_ns();
            if (v == 1)
                CHECK(aclrtMemImportFromShareableHandle(e.v1, 0, &h));
            else
                CHECK(aclrtMemImportFromShareableHandleV2(&e.v2, ACL_MEM_SHARE_HANDLE_TYPE_DEFAULT,
                                                          0, &h));
            CHECK(aclrtMapMem(va, 2 * MiB, 0, h, 0));
            uint64_t t1 = now_ns();
            CHECK(aclrtUnmapMem(va));
            CHECK(aclrtFreePhysical(h));
            if (i >= it->share_warm)
                s[i - it->share_warm] = us_since(t0, t1);
        }
        if (v == 1)
            add_result(R_SHARE_V1, "share_v1_import_map",
                       "aclrtMemImportFromShareableHandle + MapMem 2 MiB", KIND_LAT, "us", s,
                       it->share_n, 10.0);
        else
            add_result(R_SHARE_V2, "share_v2_import_map",
                       "  same, V2 (DEFAULT)", KIND_LAT, "us", s, it->share_n, 10.0);
    }
    CHECK(aclrtReleaseMemAddress(va));
    g_free(s);

    /* Bandwidth from imported memory, on the exporter's device. */
    void *src = NULL;
    CHECK(aclrtIpcMemImportByKey(&src, e.key, 0));
    double *bw = g_new(double, it->bw_runs);
    for (int r = -1; r < it->bw_runs; r++) {
        uint64_t t0 = now_ns();
        CHECK(aclrtMemcpyAsync(dst, BUF_SIZE, src, BUF_SIZE, ACL_MEMCPY_DEVICE_TO_DEVICE, st));
        CHECK(aclrtSynchronizeStream(st));
        if (r >= 0)
            bw[r] = gbps(BUF_SIZE, now_ns() - t0);
    }
    add_result(R_IPC_D2D, "ipc_async_d2d_bw", "aclrtMemcpyAsync D2D 64 MiB from an IPC import",
               KIND_BW, "GB/s", bw, it->bw_runs, 0.7);
    g_free(bw);
    CHECK(aclrtIpcMemClose(e.key));
    close(to_child[1]);
    close(to_parent[0]);
    int status = 0;
    waitpid(kid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("the exporting process ended badly (status 0x%x)", status);
}

/* ---- synchronisation across processes ---- */

/* The peer process of the hop benchmarks: talks over two pipes. */
typedef struct Peer {
    pid_t pid;
    int to, from;
} Peer;

static void peer_send(int fd, const void *p, size_t n)
{
    if (write(fd, p, n) != (ssize_t)n)
        _exit(3);
}

static void peer_recv(int fd, void *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, (char *)p + got, n - got);
        if (k <= 0) {
            if (k < 0 && errno == EINTR)
                continue;
            _exit(4);
        }
        got += (size_t)k;
    }
}

#define PEER_OK(call) do { if ((call) != ACL_SUCCESS) _exit(5); } while (0)

/* B: a notify of its own for A to record, A's notify to record; an IPC event
 * of its own; then the rounds A asks for. */
static G_NORETURN void hop_peer(int in, int out, int hops)
{
    PEER_OK(aclInit(NULL));
    PEER_OK(aclrtSetDevice(0));
    aclrtNotify mine = NULL, theirs = NULL;
    aclrtEvent emine = NULL, etheirs = NULL;
    aclrtStream s = NULL;
    char key[65];
    aclrtIpcEventHandle h;
    PEER_OK(aclrtCreateStream(&s));
    PEER_OK(aclrtCreateNotify(&mine, 0));
    PEER_OK(aclrtNotifyGetExportKey(mine, key, sizeof(key),
                                    ACL_RT_NOTIFY_EXPORT_FLAG_DISABLE_PID_VALIDATION));
    peer_send(out, key, sizeof(key));
    PEER_OK(aclrtCreateEventExWithFlag(&emine, ACL_EVENT_IPC));
    PEER_OK(aclrtIpcGetEventHandle(emine, &h));
    peer_send(out, &h, sizeof(h));
    peer_recv(in, key, sizeof(key));
    PEER_OK(aclrtNotifyImportByKey(&theirs, key, 0));
    peer_recv(in, &h, sizeof(h));
    PEER_OK(aclrtIpcOpenEventHandle(h, &etheirs));
    /* Notify rounds, all queued at once: wait for A, record A's. */
    char b;
    peer_recv(in, &b, 1);
    for (int i = 0; i < hops; i++) {
        PEER_OK(aclrtWaitAndResetNotify(mine, s, 0));
        PEER_OK(aclrtRecordNotify(theirs, s));
    }
    peer_send(out, "q", 1);
    PEER_OK(aclrtSynchronizeStream(s));
    /* Event rounds, queued in lockstep (a wait takes the record queued before it). */
    for (int i = 0; i < hops; i++) {
        peer_recv(in, &b, 1);
        PEER_OK(aclrtStreamWaitEvent(s, etheirs));
        PEER_OK(aclrtRecordEvent(emine, s));
        peer_send(out, "e", 1);
    }
    PEER_OK(aclrtSynchronizeStream(s));
    peer_send(out, "z", 1);
    peer_recv(in, &b, 1);
    aclFinalize();
    _exit(0);
}

static void bench_hops(const Iters *it)
{
    int a2b[2], b2a[2];
    if (pipe(a2b) || pipe(b2a))
        die("pipe: %s", g_strerror(errno));
    pid_t kid = fork();
    if (kid < 0)
        die("fork: %s", g_strerror(errno));
    if (kid == 0) {
        close(a2b[1]);
        close(b2a[0]);
        hop_peer(a2b[0], b2a[1], it->hops);
    }
    close(a2b[0]);
    close(b2a[1]);
    int to = a2b[1], from = b2a[0];
    aclrtNotify mine = NULL, theirs = NULL, gate = NULL;
    aclrtEvent emine = NULL, etheirs = NULL;
    aclrtStream s = NULL, g = NULL;
    char key[65], b;
    aclrtIpcEventHandle h;
    CHECK(aclrtCreateStream(&s));
    CHECK(aclrtCreateStream(&g));
    peer_recv(from, key, sizeof(key));
    CHECK(aclrtNotifyImportByKey(&theirs, key, 0));
    peer_recv(from, &h, sizeof(h));
    CHECK(aclrtIpcOpenEventHandle(h, &etheirs));
    CHECK(aclrtCreateNotify(&mine, 0));
    CHECK(aclrtCreateNotify(&gate, 0));
    CHECK(aclrtNotifyGetExportKey(mine, key, sizeof(key),
                                  ACL_RT_NOTIFY_EXPORT_FLAG_DISABLE_PID_VALIDATION));
    peer_send(to, key, sizeof(key));
    CHECK(aclrtCreateEventExWithFlag(&emine, ACL_EVENT_IPC));
    CHECK(aclrtIpcGetEventHandle(emine, &h));
    peer_send(to, &h, sizeof(h));

    /* Notifies: A's stream waits at a gate, then records B's and waits for B's
     * answer, hops times; everything is queued before the gate opens. */
    CHECK(aclrtWaitAndResetNotify(gate, s, 0));
    for (int i = 0; i < it->hops; i++) {
        CHECK(aclrtRecordNotify(theirs, s));
        CHECK(aclrtWaitAndResetNotify(mine, s, 0));
    }
    peer_send(to, "n", 1);
    peer_recv(from, &b, 1);
    uint64_t t0 = now_ns();
    CHECK(aclrtRecordNotify(gate, g));
    CHECK(aclrtSynchronizeStream(s));
    double hop_us = us_since(t0, now_ns()) / (2.0 * it->hops);
    add_result(R_NOTIFY_HOP, "notify_hop", "IPC notify: record in B -> A's stream runs",
               KIND_LAT, "us", &hop_us, 1, 3.0);

    /* Events, in lockstep: A records (gated), B waits for that record and
     * records its own, A waits for B's. */
    CHECK(aclrtWaitAndResetNotify(gate, s, 0));
    for (int i = 0; i < it->hops; i++) {
        CHECK(aclrtRecordEvent(emine, s));
        peer_send(to, "r", 1);
        peer_recv(from, &b, 1);
        CHECK(aclrtStreamWaitEvent(s, etheirs));
    }
    t0 = now_ns();
    CHECK(aclrtRecordNotify(gate, g));
    CHECK(aclrtSynchronizeStream(s));
    hop_us = us_since(t0, now_ns()) / (2.0 * it->hops);
    add_result(R_EVENT_HOP, "ipc_event_hop", "IPC event: record in A -> B's stream runs",
               KIND_LAT, "us", &hop_us, 1, 3.0);
    peer_recv(from, &b, 1);
    peer_send(to, "x", 1);
    int status = 0;
    waitpid(kid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("the peer process ended badly (status 0x%x)", status);
    CHECK(aclrtDestroyEvent(emine));
    CHECK(aclrtDestroyEvent(etheirs));
    CHECK(aclrtDestroyNotify(mine));
    CHECK(aclrtDestroyNotify(theirs));
    CHECK(aclrtDestroyNotify(gate));
    CHECK(aclrtDestroyStream(s));
    CHECK(aclrtDestroyStream(g));
    close(to);
    close(from);
}

/* Small tasks on one stream: 1-byte memsets queued back to back. */
static void bench_task_rate(const Iters *it, aclrtStream st, void *dst)
{
    double rate[3];
    for (int r = 0; r < 3; r++) {
        uint64_t t0 = now_ns();
        for (int i = 0; i < it->tasks; i++)
            CHECK(aclrtMemsetAsync(dst, 1, i & 0xff, 1, st));
        CHECK(aclrtSynchronizeStream(st));
        rate[r] = (double)it->tasks / ((double)(now_ns() - t0) / 1e9) / 1e3;
    }
    add_result(R_TASK_RATE, "task_rate", "1-byte aclrtMemsetAsync, one stream", KIND_RATE,
               "k/s", rate, 3, NAN);
}

/* ---- output ---- */

static void fill_ratios(void)
{
    const Result *mc = &results[R_MEMCPY], *fx = &results[R_FUTEX];
    for (int i = 0; i < R_COUNT; i++) {
        Result *r = &results[i];
        if (!r->set)
            continue;
        if (r->kind == KIND_BW && mc->set && mc->value > 0)
            r->ratio = r->value / mc->value;
        else if (r->kind == KIND_LAT && fx->set && fx->value > 0)
            r->ratio = r->value / fx->value;
        else if (r->kind == KIND_RATE && results[R_EMPTY].set && results[R_EMPTY].value > 0)
            r->ratio = r->value / (1e3 / results[R_EMPTY].value);
        else if ((r->kind == KIND_PAGE_4K || r->kind == KIND_PAGE_2M) && mc->set && mc->value > 0)
            /* memcpy moves value GB/s = value bytes per ns */
            r->ratio = r->value / ((r->kind == KIND_PAGE_4K ? 4096.0 : 2.0 * MiB) / mc->value);
    }
}

static void print_table(FILE *f)
{
    const char *fmt_h = "%-46s %9s %-5s %6s %7s %4s  %s\n";
    fprintf(f, fmt_h, "name", "value", "unit", "ratio", "target", "met", "p10 .. p90");
    fprintf(f, fmt_h, "----------------------------------------------", "---------", "-----",
            "------", "-------", "----", "-----------------");
    for (int i = 0; i < R_COUNT; i++) {
        const Result *r = &results[i];
        if (!r->set)
            continue;
        char ratio[32] = "-", target[32] = "-", met[8] = "-";
        if (!isnan(r->ratio))
            g_snprintf(ratio, sizeof(ratio), "%.2f", r->ratio);
        if (!isnan(r->target)) {
            g_snprintf(target, sizeof(target), "%s%.1f", r->kind == KIND_BW ? ">=" : "<=",
                       r->target);
            g_strlcpy(met, result_met(r) ? "yes" : "no", sizeof(met));
        } else if (r->kind != KIND_FLOOR) {
            g_strlcpy(target, "info", sizeof(target));
        }
        fprintf(f, "%-46s %9.2f %-5s %6s %7s %4s  %.2f .. %.2f\n", r->name, r->value, r->unit,
                ratio, target, met, r->p10, r->p90);
    }
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static void json_number(FILE *f, double v)
{
    if (isnan(v) || isinf(v))
        fputs("null", f);
    else
        fprintf(f, "%.6g", v);
}

static void write_json(const char *path, bool quick, int missed)
{
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (!f)
        die("cannot write %s: %s", path, g_strerror(errno));
    fprintf(f, "{\n  \"version\": 1,\n  \"quick\": %s,\n  \"buffer_bytes\": %llu,\n",
            quick ? "true" : "false", (unsigned long long)BUF_SIZE);
    fprintf(f, "  \"cpus\": %ld,\n  \"statistic\": \"median\",\n  \"targets_missed\": %d,\n",
            sysconf(_SC_NPROCESSORS_ONLN), missed);
    fputs("  \"futex_placement\": {\"same_cpu_fraction\": ", f);
    json_number(f, futex_same_frac);
    fputs(", \"same_cpu_median_us\": ", f);
    json_number(f, futex_same_med);
    fputs(", \"cross_cpu_median_us\": ", f);
    json_number(f, futex_cross_med);
    fputs("},\n  \"results\": [\n", f);
    bool first = true;
    for (int i = 0; i < R_COUNT; i++) {
        const Result *r = &results[i];
        if (!r->set)
            continue;
        fprintf(f, "%s    {\"key\": ", first ? "" : ",\n");
        first = false;
        json_string(f, r->key);
        fputs(", \"name\": ", f);
        json_string(f, r->name + strspn(r->name, " "));
        fputs(", \"unit\": ", f);
        json_string(f, r->unit);
        fputs(", \"value\": ", f);
        json_number(f, r->value);
        fputs(", \"best\": ", f);
        json_number(f, r->best);
        fputs(", \"p10\": ", f);
        json_number(f, r->p10);
        fputs(", \"p90\": ", f);
        json_number(f, r->p90);
        fprintf(f, ", \"samples\": %d, \"relative_to\": ", r->samples);
        if (r->kind == KIND_BW)
            json_string(f, "memcpy_bw");
        else if (r->kind == KIND_LAT)
            json_string(f, "futex_rt");
        else
            fputs("null", f);
        fputs(", \"ratio\": ", f);
        json_number(f, r->ratio);
        fputs(", \"target\": ", f);
        if (isnan(r->target)) {
            fputs("null, \"met\": null}", f);
        } else {
            fprintf(f, "{\"op\": \"%s\", \"value\": ", r->kind == KIND_BW ? ">=" : "<=");
            json_number(f, r->target);
            fprintf(f, "}, \"met\": %s}", result_met(r) ? "true" : "false");
        }
    }
    fputs("\n  ]\n}\n", f);
    if (f == stdout)
        fflush(f);
    else if (fclose(f) != 0)
        die("cannot write %s: %s", path, g_strerror(errno));
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fputs("usage: npu-bench [--quick] [--json FILE]\n"
          "  --quick      fewer iterations (CI smoke run, a few seconds)\n"
          "  --json FILE  also write the figures as JSON to FILE ('-': stdout)\n"
          "Starts its own npu-emu on a temporary socket unless $NPU_EMU_SOCKET is set.\n"
          "Exits 0 whether or not targets are met; 1 if an API call fails.\n",
          f);
}

int main(int argc, char **argv)
{
    bool quick = false;
    const char *json = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            json = argv[++i];
        } else if (strncmp(argv[i], "--json=", 7) == 0 && argv[i][7]) {
            json = argv[i] + 7;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "npu-bench: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    const Iters *it = quick ? &ITERS_QUICK : &ITERS_FULL;
    uint64_t start = now_ns();

    setup_emulator_env();

    /* The futex floor first, before the runtime exists: the forks then copy a
     * plain single-threaded process, and no emulator competes for the CPUs. */
    uint8_t *hsrc = map_buffer(BUF_SIZE, 0x5a);
    uint8_t *hdst = map_buffer(BUF_SIZE, 0xa5);
    bench_futex(it);

    CHECK(aclInit(NULL));
    CHECK(aclrtSetDevice(0));

    /* Empty requests on an idle device (no stream of ours has work). */
    bench_empty_request(it);
    bench_empty_request_sleepy(it);

    /* Copies: memcpy floor, synchronous and asynchronous copies interleaved. */
    void *d0 = NULL, *d1 = NULL;
    CHECK(aclrtMalloc(&d0, BUF_SIZE, ACL_MEM_MALLOC_HUGE_FIRST));
    CHECK(aclrtMalloc(&d1, BUF_SIZE, ACL_MEM_MALLOC_HUGE_FIRST));
    CHECK(aclrtMemset(d0, BUF_SIZE, 0x11, BUF_SIZE));   /* pre-touch */
    CHECK(aclrtMemset(d1, BUF_SIZE, 0x22, BUF_SIZE));
    aclrtStream st = NULL;
    CHECK(aclrtCreateStream(&st));
    bench_bandwidth(it, hdst, hsrc, d0, d1, st);
    bench_async_tiny(it, st, d1, d0);
    bench_vmm_copy(it, st);
    bench_sharing(it, st, d1);
    bench_task_rate(it, st, d1);
    CHECK(aclrtDestroyStream(st));
    CHECK(aclrtFree(d0));
    CHECK(aclrtFree(d1));

    /* Allocation pairs.  The 1 KiB figure is the slice path: another small
     * allocation keeps the shared block alive, as in any real program. */
    void *anchor = NULL;
    CHECK(aclrtMalloc(&anchor, 1024, ACL_MEM_MALLOC_HUGE_FIRST));
    bench_alloc(R_ALLOC_SMALL, "malloc_free_1k", "aclrtMalloc+aclrtFree 1 KiB (slice)", 1024,
                ACL_MEM_MALLOC_HUGE_FIRST, it->small_warm, it->small_n, 6.0);
    bench_alloc(R_ALLOC_HUGE, "malloc_free_2m_huge", "aclrtMalloc+aclrtFree 2 MiB huge (memfd)",
                2 * MiB, ACL_MEM_MALLOC_HUGE_ONLY, it->huge_warm, it->huge_n, 6.0);
    CHECK(aclrtFree(anchor));
    /* With no other slice, every free releases the block and every malloc
     * creates one. */
    bench_alloc(R_ALLOC_LONE, "malloc_free_1k_lone", "aclrtMalloc+aclrtFree 1 KiB, lone block",
                1024, ACL_MEM_MALLOC_HUGE_FIRST, it->lone_warm, it->lone_n, NAN);

    bench_hops(it);
    bench_vmm_cycle(it);
    bench_translate(it, R_PT_4K, "pt_translate_4k", "page-table translation, 4 KiB pages", 4096,
                    KIND_PAGE_4K);
    bench_translate(it, R_PT_2M, "pt_translate_2m", "page-table translation, 2 MiB pages",
                    2 * MiB, KIND_PAGE_2M);

    CHECK(aclrtResetDevice(0));
    CHECK(aclFinalize());
    munmap(hsrc, BUF_SIZE);
    munmap(hdst, BUF_SIZE);

    fill_ratios();
    int missed = 0;
    for (int i = 0; i < R_COUNT; i++)
        if (results[i].set && !isnan(results[i].target) && !result_met(&results[i]))
            missed++;

    printf("npu-bench%s: %ld CPUs; 64 MiB copies: median of %d interleaved rounds; latencies: "
           "median after warm-up\n", quick ? " --quick" : "", sysconf(_SC_NPROCESSORS_ONLN),
           it->bw_runs);
    printf("emulator: %s (%s)\n\n", sock_path,
           tmp_dir ? "started for this run, exits when idle" : "from $NPU_EMU_SOCKET");
    print_table(stdout);
    printf("\nratio: bandwidth / memcpy, latency / futex round trip, translation / memcpy of "
           "one page, task rate / empty-request rate.  %d target(s) missed.  "
           "%.1f s.\n", missed, (double)(now_ns() - start) / 1e9);
    printf("futex floor: %.0f%% of round trips had both processes on one CPU",
           100.0 * futex_same_frac);
    if (!isnan(futex_same_med))
        printf(" (median %.2f us)", futex_same_med);
    if (!isnan(futex_cross_med))
        printf("; across CPUs median %.2f us", futex_cross_med);
    printf(".\n");
    if (!isnan(futex_same_med) && !isnan(futex_cross_med) && futex_same_frac > 0.05 &&
        futex_same_frac < 0.95 &&
        (futex_same_med > 2.0 * futex_cross_med || futex_cross_med > 2.0 * futex_same_med))
        printf("note: the floor depends on where the scheduler placed the two processes, so "
               "latency ratios vary between runs.\n");
    if (json)
        write_json(json, quick, missed);
    return 0;
}
