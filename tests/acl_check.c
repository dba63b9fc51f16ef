/*
 * acl_check.c - the checks shared by the API test programs (see acl_check.h).
 */
#include "acl_check.h"

#include <CUnit/Basic.h>
#include <glib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "acl/acl.h"
#include "harness.h"

bool g_in_child;
int g_child_fails;

bool check_impl(bool ok, const char *file, int line, const char *fn, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (g_in_child) {
        if (!ok) {
            fprintf(stderr, "  [child %d] FAILED %s:%d: %s\n", (int)getpid(), fn, line, buf);
            g_child_fails++;
        }
    } else {
        CU_assertImplementation(ok ? CU_TRUE : CU_FALSE, (unsigned)line, buf, file, fn,
                                CU_FALSE);
    }
    return ok;
}


/* Clears the thread's last error and message queue. */
void drain_errors(void)
{
    aclrtGetLastError(ACL_RT_THREAD_LEVEL);
    aclGetRecentErrMsg();
}

bool expect_err_impl(aclError got, aclError want, const char *expr, const char *file,
                     int line, const char *fn)
{
    bool ok = check_impl(got == want, file, line, fn, "%s returned %d, expected %d", expr, got, want);
    aclError peek1 = aclrtPeekAtLastError(ACL_RT_THREAD_LEVEL);
    aclError peek2 = aclrtPeekAtLastError(ACL_RT_THREAD_LEVEL);
    aclError get1 = aclrtGetLastError(ACL_RT_THREAD_LEVEL);
    aclError get2 = aclrtGetLastError(ACL_RT_THREAD_LEVEL);
    ok &= check_impl(peek1 == want && peek2 == want, file, line, fn,
                     "after %s: aclrtPeekAtLastError gave %d then %d, expected %d both times",
                     expr, peek1, peek2, want);
    ok &= check_impl(get1 == want, file, line, fn, "after %s: aclrtGetLastError gave %d, expected %d",
                     expr, get1, want);
    ok &= check_impl(get2 == ACL_SUCCESS, file, line, fn,
                     "after %s: a second aclrtGetLastError gave %d, expected 0 (cleared)", expr,
                     get2);
    const char *msg = aclGetRecentErrMsg();
    ok &= check_impl(msg != NULL && *msg != '\0', file, line, fn,
                     "after %s: aclGetRecentErrMsg gave %s, expected a message", expr,
                     msg ? "an empty string" : "NULL");
    const char *again = aclGetRecentErrMsg();
    ok &= check_impl(again == NULL, file, line, fn,
                     "after %s: a second aclGetRecentErrMsg gave \"%s\", expected NULL", expr,
                     again ? again : "");
    return ok;
}

bool expect_ok_impl(aclError got, const char *expr, const char *file, int line,
                    const char *fn)
{
    aclError peek = aclrtPeekAtLastError(ACL_RT_THREAD_LEVEL);
    const char *msg = aclGetRecentErrMsg();
    char *text = msg ? g_strdup(msg) : NULL;
    bool ok = check_impl(got == ACL_SUCCESS, file, line, fn, "%s returned %d, expected 0%s%s", expr,
                         got, text ? "; message: " : "", text ? text : "");
    if (ok) {
        ok &= check_impl(peek == ACL_SUCCESS, file, line, fn,
                         "%s succeeded but left last error %d", expr, peek);
        ok &= check_impl(text == NULL, file, line, fn, "%s succeeded but queued the message \"%s\"",
                         expr, text ? text : "");
    }
    g_free(text);
    aclrtGetLastError(ACL_RT_THREAD_LEVEL);
    return ok;
}


void fill_pattern(void *buf, size_t n, uint32_t seed)
{
    uint8_t *p = buf;
    uint32_t x = seed * 2654435761u + 0x9e3779b9u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

uint64_t checksum(const void *buf, size_t n)
{
    const uint8_t *p = buf;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

bool all_bytes(const void *buf, size_t n, uint8_t v)
{
    const uint8_t *p = buf;
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

int child_trampoline(void *body)
{
    const ChildBody *b = body;
    g_in_child = true;
    g_child_fails = 0;
    b->fn();
    fflush(NULL);
    return g_child_fails > 100 ? 100 : g_child_fails;
}

int run_checked_child(void (*fn)(void), int *pid)
{
    ChildBody b = { fn };
    pid_t p = child_run(child_trampoline, &b);
    if (pid)
        *pid = (int)p;
    return p > 0 ? child_wait(p) : -1;
}

void check_child(void (*fn)(void), const char *name)
{
    int st = run_checked_child(fn, NULL);
    CHECKF(st == 0, "child '%s' ended with status %d (1..100: failed checks, printed above; "
                    ">128: killed by signal %d)", name, st, st > 128 ? st - 128 : 0);
}

/* The address window of all device memory (EMU_VA_WINDOW_* in npuemu/proto.h). */
#define WINDOW_LO 0x100000000000ull
#define WINDOW_HI 0x180000000000ull

bool in_dev_window(const void *p)
{
    uint64_t a = (uint64_t)(uintptr_t)p;
    return a >= WINDOW_LO && a < WINDOW_HI;
}

uint8_t *dev_read(const void *dev, size_t n)
{
    uint8_t *h = g_malloc(n);
    memset(h, 0x5c, n);
    if (!CHECKF(in_dev_window(dev) && in_dev_window((const uint8_t *)dev + n - 1),
                "dev_read: %p is not a device pointer (an earlier allocation failed?)", dev))
        return h;
    aclError e = aclrtMemcpy(h, n, dev, n, ACL_MEMCPY_DEVICE_TO_HOST);
    CHECKF(e == ACL_SUCCESS, "aclrtMemcpy D2H of %zu bytes from %p returned %d", n, dev, e);
    drain_errors();
    return h;
}

bool dev_equals(const void *dev, const void *host, size_t n)
{
    uint8_t *h = dev_read(dev, n);
    bool eq = memcmp(h, host, n) == 0;
    g_free(h);
    return eq;
}

bool dev_all_bytes(const void *dev, size_t n, uint8_t v)
{
    uint8_t *h = dev_read(dev, n);
    bool eq = all_bytes(h, n, v);
    g_free(h);
    return eq;
}
