/*
 * harness.h - helpers for tests that run the real npu-emu and real client
 * processes.
 *
 * Concepts: emu_start() forks and execs the npu-emu binary named by
 * $NPU_EMU_BIN (meson sets it) on a socket in a fresh temporary directory, waits
 * until the socket accepts, and exports NPU_EMU_SOCKET so that every client
 * started afterwards (forked or exec'd) talks to it.  Children are plain fork()s
 * that call aclInit themselves.  Nothing here is thread-safe; tests are
 * single-threaded around these calls.
 */
#ifndef TESTS_HARNESS_H
#define TESTS_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct TestEmu {
    pid_t pid;
    char dir[256];
    char sock[320];
    char log[320];
} TestEmu;

/* Starts npu-emu with `profile` ("a2"/"a3") and extra argv entries (NULL-terminated,
 * may be NULL). Exports NPU_EMU_SOCKET. */
bool emu_start(TestEmu *e, const char *profile, const char *const *extra);
/* True while the emulator process lives. */
bool emu_running(const TestEmu *e);
/* SIGTERM, wait, remove the directory. */
void emu_stop(TestEmu *e);
/* Whole operator log so far (g_free it). */
char *emu_log_text(const TestEmu *e);

/* Runs fn(arg) in a forked child, which _exits with its return value. */
pid_t child_run(int (*fn)(void *), void *arg);
/* Waits; returns the exit status, or 128 + signal if it was killed. */
int child_wait(pid_t pid);
/* As child_run, but the child's stderr goes to a pipe; child_collect reads it all. */
pid_t child_run_stderr(int (*fn)(void *), void *arg, int *err_fd);
char *child_collect(int fd);

/* The emulator's log line about client `pid` going away, once it is logged
 * (within 10 s); NULL if it never is.  g_free it. */
char *emu_gone_line(const TestEmu *e, pid_t pid);

/* Polls until cond(arg) is true or timeout_ms passes; returns the last result. */
bool wait_until(bool (*cond)(void *), void *arg, int timeout_ms);

#endif
