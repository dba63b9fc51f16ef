/*
 * test_fault.c - host accesses to the device window must die by SIGSEGV
 * with a precise report; other faults must reach the previous handler.
 *
 * Every fault happens in a forked child whose stderr is a pipe; the parent
 * checks the report text and how the child died.
 */
#define _GNU_SOURCE
#include "fault.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifndef TEST_ASAN
#define TEST_ASAN 0
#endif

#define WINDOW_LO 0x100000000000ULL
#define WINDOW_HI 0x180000000000ULL
/* Not WINDOW_LO itself: under ASan [0x02008fff7000, 0x10007fff7fff] is
 * shadow memory, so the first 2 GiB of the window cannot be reserved. */
#define REGION 0x100100000000ULL
#define REGION_SIZE (1ULL << 30)

/* Fake allocator state reported by the lookup. */
#define ALLOC_A_BASE (REGION + 0x200000ULL) /* device 3, 2 MiB */
#define ALLOC_A_SIZE 0x200000ULL
#define ALLOC_B_BASE (REGION + 0x1000000ULL) /* device 1, 64 KiB */
#define ALLOC_B_SIZE 0x10000ULL
#define UNALLOCATED (REGION + 0x10000000ULL)

static bool fake_lookup(uint64_t addr, RtFaultAlloc *out)
{
    if (addr >= ALLOC_A_BASE && addr < ALLOC_A_BASE + ALLOC_A_SIZE) {
        *out = (RtFaultAlloc){ .device = 3, .base = ALLOC_A_BASE, .size = ALLOC_A_SIZE };
        return true;
    }
    if (addr >= ALLOC_B_BASE && addr < ALLOC_B_BASE + ALLOC_B_SIZE) {
        *out = (RtFaultAlloc){ .device = 1, .base = ALLOC_B_BASE, .size = ALLOC_B_SIZE };
        return true;
    }
    return false;
}

static bool lookup_none(uint64_t addr, RtFaultAlloc *out)
{
    (void)addr;
    (void)out;
    return false;
}

static volatile uint64_t g_sink;
/* Whether a SEGV handler (ASan's, unless ASAN_OPTIONS=handle_segv=0) was
 * there before main: then out-of-window faults must reach its report. */
static bool g_startup_segv_handler;
/* Opaque so that gcc -O2 does not reject the deliberate bad access. */
static volatile uintptr_t g_outside_addr = 8;

/* ------------------------------------------------------------------ */
/* Child harness.                                                       */

typedef struct {
    char out[16384];
    int status;
} ChildResult;

static bool has(const ChildResult *r, const char *needle)
{
    if (strstr(r->out, needle) != NULL)
        return true;
    fprintf(stderr, "\n  expected \"%s\" in child output:\n%s\n", needle, r->out);
    return false;
}

static bool lacks(const ChildResult *r, const char *needle)
{
    if (strstr(r->out, needle) == NULL)
        return true;
    fprintf(stderr, "\n  did not expect \"%s\" in child output:\n%s\n", needle, r->out);
    return false;
}

static void reserve_region(void)
{
    void *p = mmap((void *)(uintptr_t)REGION, REGION_SIZE, PROT_NONE,
                   MAP_FIXED_NOREPLACE | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p != (void *)(uintptr_t)REGION) {
        dprintf(2, "child: cannot reserve device region: %s\n", strerror(errno));
        _exit(90);
    }
}

/* Runs fn in a child with stderr on a pipe; fn is expected not to return. */
static void run_child(void (*fn)(void), ChildResult *r)
{
    int fds[2];
    memset(r, 0, sizeof *r);
    CU_ASSERT_FATAL(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        close(fds[1]);
        alarm(20); /* a chaining loop must fail the test, not hang it */
        reserve_region();
        fn();
        _exit(77);
    }
    close(fds[1]);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fds[0], r->out + len, sizeof r->out - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof r->out - 1)
            break;
    }
    r->out[len] = '\0';
    close(fds[0]);
    while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR)
        ;
    /* UBSan keeps going after a report; the handler must not trigger one. */
    CU_ASSERT(lacks(r, "runtime error"));
}

/* Died by SIGSEGV itself, i.e. not via a sanitizer's report-and-exit. */
static bool died_by_segv(const ChildResult *r)
{
    bool ok = WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGSEGV &&
              lacks(r, "AddressSanitizer");
    if (!ok)
        fprintf(stderr, "\n  child status %#x (%s %d); output:\n%s\n", r->status,
                WIFSIGNALED(r->status) ? "signal" : "exit",
                WIFSIGNALED(r->status) ? WTERMSIG(r->status) : WEXITSTATUS(r->status),
                r->out);
    return ok;
}

static void install(void)
{
    rt_fault_install(WINDOW_LO, WINDOW_HI, fake_lookup);
}

/* ------------------------------------------------------------------ */
/* Child bodies.                                                        */

static void child_write4(void)
{
    install();
    *(volatile uint32_t *)(uintptr_t)(ALLOC_A_BASE + 0x10) = 1;
}

static void child_read8(void)
{
    install();
    g_sink = *(volatile uint64_t *)(uintptr_t)(ALLOC_A_BASE + 0x18);
}

static void child_write1(void)
{
    install();
    *(volatile uint8_t *)(uintptr_t)(ALLOC_B_BASE + 0x21) = 7;
}

static void child_no_alloc(void)
{
    install();
    *(volatile uint32_t *)(uintptr_t)UNALLOCATED = 1;
}

static void child_null_lookup(void)
{
    rt_fault_install(WINDOW_LO, WINDOW_HI, NULL);
    g_sink = *(volatile uint32_t *)(uintptr_t)(ALLOC_A_BASE + 0x40);
}

/* Second install must only swap the lookup, not chain us to ourselves. */
static void child_reinstall(void)
{
    rt_fault_install(WINDOW_LO, WINDOW_HI, lookup_none);
    rt_fault_install(WINDOW_LO, WINDOW_HI, fake_lookup);
    *(volatile uint32_t *)(uintptr_t)(ALLOC_A_BASE + 0x44) = 1;
}

static void child_outside_window(void)
{
    install();
    *(volatile int *)g_outside_addr = 1;
}

static void child_outside_window_twice_installed(void)
{
    install();
    install();
    *(volatile int *)g_outside_addr = 1;
}

static void child_uninstalled(void)
{
    install();
    rt_fault_uninstall();
    *(volatile uint32_t *)(uintptr_t)(ALLOC_A_BASE + 0x10) = 1;
}

static void prev_siginfo_handler(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    static const char msg[] = "prev-siginfo-handler\n";
    if (write(2, msg, sizeof msg - 1) < 0) { /* nothing to do */ }
    _exit(sig == SIGSEGV && si != NULL && si->si_addr == (void *)8 ? 42 : 41);
}

static void prev_plain_handler(int sig)
{
    static const char msg[] = "prev-plain-handler\n";
    if (write(2, msg, sizeof msg - 1) < 0) { /* nothing to do */ }
    _exit(sig == SIGSEGV ? 43 : 44);
}

static void child_chain_siginfo(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = prev_siginfo_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    install();
    *(volatile int *)g_outside_addr = 1;
}

/* With a user handler behind us, in-window faults must still be ours and
 * still end in SIGSEGV rather than in that handler. */
static void child_chain_siginfo_inside(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = prev_siginfo_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    install();
    *(volatile uint32_t *)(uintptr_t)(ALLOC_A_BASE + 0x10) = 1;
}

static void child_chain_plain(void)
{
    signal(SIGSEGV, prev_plain_handler);
    install();
    *(volatile int *)g_outside_addr = 1;
}

/* The kernel does not let a fault be ignored; neither may we loop on it. */
static void child_chain_ignored(void)
{
    signal(SIGSEGV, SIG_IGN);
    install();
    *(volatile int *)g_outside_addr = 1;
}

/* A sent SIGSEGV does not recur on return: it must be re-raised. */
static void child_kill_default(void)
{
    signal(SIGSEGV, SIG_DFL);
    install();
    kill(getpid(), SIGSEGV);
    sleep(5);
}

static void child_exec(void)
{
    install();
    void (*fn)(void) = (void (*)(void))(uintptr_t)(ALLOC_A_BASE + 0x100);
    fn();
}

#if defined(__x86_64__)
/* Inline asm, not intrinsics: at -O2 the compiler narrows an intrinsic
 * load whose upper half is unused to a plain 8-byte mov. */
static void child_sse_read16(void)
{
    install();
    __m128i v;
    const void *p = (const void *)(uintptr_t)(ALLOC_A_BASE + 0x40);
    __asm__ volatile("movdqu (%1), %0" : "=x"(v) : "r"(p) : "memory");
    g_sink = (uint64_t)_mm_cvtsi128_si64(v);
}

/* capstone 4 marks movups' memory destination as read; the CPU's fault
 * syndrome must correct it. */
static void child_sse_write16(void)
{
    install();
    __m128i v = _mm_set1_epi32(5);
    void *p = (void *)(uintptr_t)(ALLOC_A_BASE + 0x50);
    __asm__ volatile("movups %1, (%0)" : : "r"(p), "x"(v) : "memory");
}

static void child_rmw(void)
{
    install();
    uint32_t *p = (uint32_t *)(uintptr_t)(ALLOC_A_BASE + 0x60);
    __asm__ volatile("addl %1, (%0)" : : "r"(p), "r"(1u) : "memory", "cc");
}

static void child_cmp(void)
{
    install();
    uint32_t *p = (uint32_t *)(uintptr_t)(ALLOC_A_BASE + 0x64);
    __asm__ volatile("cmpl $1, (%0)" : : "r"(p) : "memory", "cc");
}

static void child_rep_movsb_to_device(void)
{
    install();
    char local[64] = "host data";
    void *dst = (void *)(uintptr_t)(ALLOC_A_BASE + 0x80);
    const void *src = local;
    size_t n = sizeof local;
    __asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
}

static void child_rep_movsq_from_device(void)
{
    install();
    uint64_t local[8];
    void *dst = local;
    const void *src = (const void *)(uintptr_t)(ALLOC_A_BASE + 0xc0);
    size_t n = 8;
    __asm__ volatile("rep movsq" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
    g_sink = local[0];
}

/* A real libc memcpy (not inlined: the length is opaque), i.e. whatever
 * vector code glibc picked for this CPU, or ASan's interceptor first. */
static void child_memcpy_from_device(void)
{
    install();
    char local[16];
    volatile size_t n = sizeof local;
    memcpy(local, (const void *)(uintptr_t)(ALLOC_A_BASE + 0x100), n);
    g_sink = (uint64_t)local[0];
}
#endif

/* ------------------------------------------------------------------ */
/* Tests.                                                               */

static void test_write4(void)
{
    ChildResult r;
    run_child(child_write4, &r);
    CU_ASSERT(died_by_segv(&r));
    CU_ASSERT(has(&r, "npu-emu: host write of 4 bytes at device address 0x100100200010 "
                      "(device 3, allocation 0x100100200000 size 0x200000, offset 0x10): "
                      "device memory is not host-accessible; use aclrtMemcpy\n"));
    CU_ASSERT(has(&r, "  at pc 0x"));
#if defined(__x86_64__)
    CU_ASSERT(has(&r, ": mov dword ptr ["));
#endif
}

static void test_read8(void)
{
    ChildResult r;
    run_child(child_read8, &r);
    CU_ASSERT(died_by_segv(&r));
    CU_ASSERT(has(&r, "npu-emu: host read of 8 bytes at device address 0x100100200018 "
                      "(device 3, allocation 0x100100200000 size 0x200000, offset 0x18)"));
#if defined(__x86_64__)
    CU_ASSERT(has(&r, "qword ptr ["));
#endif
}

static void test_write1(void)
{
    ChildResult r;
    run_child(child_write1, &r);
    CU_ASSERT(died_by_segv(&r));
    CU_ASSERT(has(&r, "npu-emu: host write of 1 byte at device address 0x100101000021 "
                      "(device 1, allocation 0x100101000000 size 0x10000, offset 0x21)"));
}

static void test_no_allocation(void)
{
    ChildResult r;
    run_child(child_no_alloc, &r);
    CU_ASSERT(died_by_segv(&r));
    CU_ASSERT(has(&r, "npu-emu: host write of 4 bytes at device address 0x100110000000 "
                      "(no allocation: address not mapped on any device)"));
}

static void test_null_lookup(void)
{
    ChildResult r;
    run_child(child_null_lookup, &r);
    CU_ASSERT(died_by_segv(&r));
    CU_ASSERT(has(&r, "host read of 4 bytes at device address 0x100100200040 "
                      "(no allocation: address not mapped on any device)"));
}

static void test_reinstall_updates_lookup(void)
{
    ChildResult r;
    run_child(child_reinstall, &r);
    CU_ASSERT(died_by_segv(&r));
    CU_ASSERT(has(&r, "host write of 4 bytes at device address 0x100100200044 "
                      "(device 3, allocation 0x100100200000 size 0x200000, offset 0x44)"));
}

/* Outside the window we must stay silent and let the previous handler
 * (the default action, or ASan's reporter) decide. */
static void check_outside(const ChildResult *r)
{
    CU_ASSERT(lacks(r, "npu-emu"));
    if (TEST_ASAN && g_startup_segv_handler) {
        bool segv = WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGSEGV;
        bool asan_exit = WIFEXITED(r->status) && WEXITSTATUS(r->status) != 0 &&
                         WEXITSTATUS(r->status) != 77;
        CU_ASSERT(segv || asan_exit);
        /* Proves we chained to ASan's handler instead of swallowing it. */
        CU_ASSERT(has(r, "AddressSanitizer: SEGV"));
    } else {
        CU_ASSERT(died_by_segv(r));
    }
}

static void test_outside_window(void)
{
    ChildResult r;
    run_child(child_outside_window, &r);
    check_outside(&r);
}

static void test_outside_window_twice_installed(void)
{
    ChildResult r;
    run_child(child_outside_window_twice_installed, &r);
    check_outside(&r);
}

static void test_uninstalled_is_silent(void)
{
    ChildResult r;
    run_child(child_uninstalled, &r);
    check_outside(&r);
}

static void test_chain_siginfo(void)
{
    ChildResult r;
    run_child(child_chain_siginfo, &r);
    CU_ASSERT(lacks(&r, "npu-emu"));
    CU_ASSERT(has(&r, "prev-siginfo-handler"));
    CU_ASSERT(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 42);
}

static void test_chain_siginfo_inside(void)
{
    ChildResult r;
    run_child(child_chain_siginfo_inside, &r);
    CU_ASSERT(died_by_segv(&r));
    CU_ASSERT(has(&r, "npu-emu: host write of 4 bytes"));
    CU_ASSERT(lacks(&r, "prev-siginfo-handler"));
}

static void test_chain_plain(void)
{
    ChildResult r;
    run_child(child_chain_plain, &r);
    CU_ASSERT(lacks(&r, "npu-emu"));
    CU_ASSERT(has(&r, "prev-plain-handler"));
    CU_ASSERT(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 43);
}

static void test_chain_ignored(void)
{
    ChildResult r;
    run_child(child_chain_ignored, &r);
    CU_ASSERT(lacks(&r, "npu-emu"));
    CU_ASSERT(died_by_segv(&r));
}

static void test_kill_default(void)
{
    ChildResult r;
    run_child(child_kill_default, &r);
    CU_ASSERT(lacks(&r, "npu-emu"));
    CU_ASSERT(died_by_segv(&r));
}

static void test_exec(void)
{
    ChildResult r;
    run_child(child_exec, &r);
    CU_ASSERT(died_by_segv(&r));
    CU_ASSERT(has(&r, "npu-emu: host instruction fetch at device address 0x100100200100 "
                      "(device 3, allocation 0x100100200000 size 0x200000, offset 0x100)"));
}

#if defined(__x86_64__)
static void test_sse_read16(void)
{
    ChildResult r;
    run_child(child_sse_read16, &r);
    CU_ASSERT(died_by_segv(&r));
    CU_ASSERT(has(&r, "npu-emu: host read of 16 bytes at device address 0x100100200040 "
                      "(device 3, allocation 0x100100200000 size 0x200000, offset 0x40)"));
    CU_ASSERT(has(&r, "xmmword ptr ["));
}

static void test_sse_write16(void)
{
    ChildResult r;
    run_child(child_sse_write16, &r);
    CU_ASSERT(died_by_segv(&r));
    CU_ASSERT(has(&r, "npu-emu: host write of 16 bytes at device address 0x100100200050 "));
}

static void test_rmw(void)
{
    ChildResult r;
    run_child(child_rmw, &r);
    CU_ASSERT(died_by_segv(&r));
    CU_ASSERT(has(&r, "npu-emu: host read-write of 4 bytes at device address 0x100100200060 "));
    CU_ASSERT(has(&r, ": add dword ptr ["));
}

static void test_cmp(void)
{
    ChildResult r;
    run_child(child_cmp, &r);
    CU_ASSERT(died_by_segv(&r));
    CU_ASSERT(has(&r, "npu-emu: host read of 4 bytes at device address 0x100100200064 "));
}

static void test_rep_movsb_to_device(void)
{
    ChildResult r;
    run_child(child_rep_movsb_to_device, &r);
    CU_ASSERT(died_by_segv(&r));
    CU_ASSERT(has(&r, "npu-emu: host write of 1 byte per element (rep movsb) "
                      "at device address 0x100100200080 "));
}

static void test_rep_movsq_from_device(void)
{
    ChildResult r;
    run_child(child_rep_movsq_from_device, &r);
    CU_ASSERT(died_by_segv(&r));
    CU_ASSERT(has(&r, "npu-emu: host read of 8 bytes per element (rep movsq) "
                      "at device address 0x1001002000c0 "));
}

static void test_memcpy_from_device(void)
{
    ChildResult r;
    run_child(child_memcpy_from_device, &r);
    CU_ASSERT(died_by_segv(&r));
    /* Size depends on glibc's memcpy variant; direction and address not. */
    CU_ASSERT(has(&r, "npu-emu: host read of "));
    CU_ASSERT(has(&r, " at device address 0x100100200100 (device 3, allocation "
                      "0x100100200000 size 0x200000, offset 0x100)"));
}
#endif

/* In-process: the handler chain must be restored exactly, and a second
 * install must not make uninstall restore our own handler. */
static void marker_handler(int sig)
{
    (void)sig;
}

static void test_uninstall_restores(void)
{
    struct sigaction orig_segv, orig_bus, marker, cur;
    sigaction(SIGSEGV, NULL, &orig_segv);
    sigaction(SIGBUS, NULL, &orig_bus);
    memset(&marker, 0, sizeof marker);
    marker.sa_handler = marker_handler;
    sigemptyset(&marker.sa_mask);
    sigaction(SIGSEGV, &marker, NULL);
    sigaction(SIGBUS, &marker, NULL);

    rt_fault_install(WINDOW_LO, WINDOW_HI, fake_lookup);
    rt_fault_install(WINDOW_LO, WINDOW_HI, fake_lookup);
    sigaction(SIGSEGV, NULL, &cur);
    CU_ASSERT(cur.sa_handler != marker_handler);
    CU_ASSERT((cur.sa_flags & SA_SIGINFO) != 0);
    CU_ASSERT((cur.sa_flags & SA_ONSTACK) != 0);

    rt_fault_uninstall();
    sigaction(SIGSEGV, NULL, &cur);
    CU_ASSERT(cur.sa_handler == marker_handler);
    sigaction(SIGBUS, NULL, &cur);
    CU_ASSERT(cur.sa_handler == marker_handler);

    /* Uninstall twice is harmless; install works again afterwards. */
    rt_fault_uninstall();
    rt_fault_install(WINDOW_LO, WINDOW_HI, fake_lookup);
    sigaction(SIGSEGV, NULL, &cur);
    CU_ASSERT(cur.sa_handler != marker_handler);
    rt_fault_uninstall();
    sigaction(SIGSEGV, NULL, &cur);
    CU_ASSERT(cur.sa_handler == marker_handler);

    sigaction(SIGSEGV, &orig_segv, NULL);
    sigaction(SIGBUS, &orig_bus, NULL);
}

int main(void)
{
    struct sigaction startup;
    if (sigaction(SIGSEGV, NULL, &startup) == 0)
        g_startup_segv_handler = startup.sa_handler != SIG_DFL;
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite s = CU_add_suite("fault", NULL, NULL);
    if (s == NULL)
        return 2;
    struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        { "write 4 bytes", test_write4 },
        { "read 8 bytes", test_read8 },
        { "write 1 byte", test_write1 },
        { "no allocation", test_no_allocation },
        { "null lookup", test_null_lookup },
        { "reinstall updates lookup", test_reinstall_updates_lookup },
        { "outside window chains", test_outside_window },
        { "outside window, installed twice", test_outside_window_twice_installed },
        { "uninstalled is silent", test_uninstalled_is_silent },
        { "chain to SA_SIGINFO handler", test_chain_siginfo },
        { "in-window ignores user handler", test_chain_siginfo_inside },
        { "chain to plain handler", test_chain_plain },
        { "chain to SIG_IGN still dies", test_chain_ignored },
        { "kill() with SIG_DFL re-raised", test_kill_default },
        { "instruction fetch", test_exec },
#if defined(__x86_64__)
        { "SSE read 16 bytes", test_sse_read16 },
        { "SSE write 16 bytes", test_sse_write16 },
        { "read-modify-write", test_rmw },
        { "cmp reads", test_cmp },
        { "rep movsb to device", test_rep_movsb_to_device },
        { "rep movsq from device", test_rep_movsq_from_device },
        { "libc memcpy from device", test_memcpy_from_device },
#endif
        { "uninstall restores previous", test_uninstall_restores },
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (CU_add_test(s, tests[i].name, tests[i].fn) == NULL)
            return 2;
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed == 0 ? 0 : 1;
}
