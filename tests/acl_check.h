/*
 * acl_check.h - checks shared by the API test programs.
 *
 * Concepts: a check works both in the CUnit process (it becomes a CUnit
 * assertion) and in a forked child (it is printed to stderr and counted in
 * g_child_fails, which the child returns as its exit status).  EXPECT_ERR checks
 * an expected failure three ways: the exact return code, the thread's last
 * error (peek twice, get once, which must clear it) and the recent error
 * message (non-NULL text once, then NULL).  EXPECT_OK checks that a success
 * leaves no last error and no message behind.
 */
#ifndef TESTS_ACL_CHECK_H
#define TESTS_ACL_CHECK_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acl/acl_base.h"

extern bool g_in_child;
extern int g_child_fails;

bool check_impl(bool ok, const char *file, int line, const char *fn, const char *fmt, ...)
    G_GNUC_PRINTF(5, 6);
bool expect_err_impl(aclError got, aclError want, const char *expr, const char *file,
                     int line, const char *fn);
bool expect_ok_impl(aclError got, const char *expr, const char *file, int line,
                    const char *fn);
/* Clears the thread's last error and message queue. */
void drain_errors(void);

#define CHECK(cond) check_impl(!!(cond), __FILE__, __LINE__, __func__, "%s", #cond)
#define CHECKF(cond, ...) check_impl(!!(cond), __FILE__, __LINE__, __func__, __VA_ARGS__)
#define EXPECT_ERR(expr, want) \
    expect_err_impl((expr), (want), #expr, __FILE__, __LINE__, __func__)
#define EXPECT_OK(expr) expect_ok_impl((expr), #expr, __FILE__, __LINE__, __func__)

/* For child_run (harness.h): runs b->fn() as a child whose checks are counted;
 * the child's exit status is its failure count (at most 100). */
typedef struct ChildBody {
    void (*fn)(void);
} ChildBody;
int child_trampoline(void *body);

/* Runs fn() in a forked child (child_trampoline) and waits for it; returns its
 * exit status (its failure count, or 128 + signal), and its pid in *pid. */
int run_checked_child(void (*fn)(void), int *pid);

/* Declares a CUnit test that runs only while alive() (the emulator lives) and
 * leaves no last error behind. */
#define EMU_TEST(name, alive)                                    \
    static void name##_body(void);                               \
    static void name(void)                                       \
    {                                                            \
        if (!(alive)()) {                                        \
            CU_FAIL("npu-emu died earlier: test not run");       \
            return;                                              \
        }                                                        \
        name##_body();                                           \
        drain_errors();                                          \
    }                                                            \
    static void name##_body(void)

/* A reproducible byte pattern, its FNV-1a checksum, and a fill check. */
void fill_pattern(void *buf, size_t n, uint32_t seed);
uint64_t checksum(const void *buf, size_t n);
bool all_bytes(const void *buf, size_t n, uint8_t v);

/* Runs fn() as run_checked_child does and checks that the child ended with no
 * failed check; `name` says which child in the message. */
void check_child(void (*fn)(void), const char *name);

/* Whether p is inside the device address window. */
bool in_dev_window(const void *p);
/* Reads n bytes of device memory at dev (synchronous copy) into a new buffer
 * (g_free it); a failed read is a failed check and leaves 0x5c bytes. */
uint8_t *dev_read(const void *dev, size_t n);
/* Whether device memory at dev holds host[0, n), or n bytes v. */
bool dev_equals(const void *dev, const void *host, size_t n);
bool dev_all_bytes(const void *dev, size_t n, uint8_t v);

#endif
