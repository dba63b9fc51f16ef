/*
 * futex.h - cross-process futex wait / wake on 32-bit words in shared memory.
 *
 * Concepts: the channel between a client and npu-emu lives in a memfd mapped
 * by both processes, so every wait uses the non-private futex operations.
 * All functions are thread-safe and async-signal-safe (plain syscalls).
 */
#ifndef NPUEMU_FUTEX_H
#define NPUEMU_FUTEX_H

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Sleeps while *word == expected; timeout_ns < 0 waits forever.
 * Returns 0 when woken or the value changed, -ETIMEDOUT on timeout. */
static inline int emu_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
    long r = syscall(SYS_futex, word, FUTEX_WAIT, expected, tsp, NULL, 0);
    if (r < 0 && errno == ETIMEDOUT)
        return -ETIMEDOUT;
    return 0;
}

/* Wakes up to n waiters sleeping on word. */
static inline void emu_futex_wake(uint32_t *word, int n)
{
    syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
}

static inline void emu_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static inline uint64_t emu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One step of a bounded poll before a futex sleep: pause briefly, then let a
 * runnable thread on this CPU go first - when the peer shares our CPU, spinning
 * without yielding would only delay the answer we wait for.  Returns false once
 * `deadline` (emu_now_ns() based) has passed. */
static inline bool emu_poll_step(uint64_t deadline)
{
    for (int i = 0; i < 16; i++)
        emu_cpu_relax();
    sched_yield();
    return emu_now_ns() < deadline;
}

#endif
