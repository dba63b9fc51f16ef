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

#endif
