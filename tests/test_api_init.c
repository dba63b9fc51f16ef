/*
 * test_api_init.c - integration tests of libascendcl.so's life cycle against a
 * real npu-emu: chapter 02 (aclInit, aclFinalize, aclFinalizeReference, the
 * calls before aclInit), the thread's last error and recent error messages
 * (chapter 13), and a client that waits while the emulator dies.
 *
 * Unlike the other test_api_* programs, which api_run (harness.h) starts
 * with aclInit done, this one starts without it: the first test runs in a
 * child before it, test_init_repeat calls aclInit (twice: one repeat) and
 * test_finalize's one aclFinalize ends it near the end.  Bad config, finalize
 * counting and re-init run in forked children, which call aclInit themselves
 * and report failed checks on stderr and in their exit status.  The very last
 * test kills the emulator under a waiting child.
 */
#define _GNU_SOURCE
#include <CUnit/Basic.h>
#include <glib.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acl/acl.h"
#include "acl_check.h"
#include "harness.h"

#define BIG BUSY_BYTES

/* ================================================================== */
/* Before aclInit (child).                                              */

static void child_preinit(void)
{
    void *p = NULL;
    uint32_t n = 0;
    char a[16] = "abc", b[16];
    aclrtStream s = NULL;
    EXPECT_ERR(aclrtSetDevice(0), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMalloc(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtGetDeviceCount(&n), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMemcpy(b, sizeof(b), a, sizeof(a), ACL_MEMCPY_HOST_TO_HOST),
               ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtCreateStream(&s), ACL_ERROR_UNINITIALIZE);
    aclrtDeviceStatus st;
    int32_t lo, hi, active;
    aclrtUtilizationInfo ui;
    uint32_t res;
    EXPECT_ERR(aclrtQueryDeviceStatus(0, &st), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtDeviceGetStreamPriorityRange(&lo, &hi), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtGetDeviceUtilizationRate(0, &ui), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtGetPrimaryCtxState(0, NULL, &active), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtGetStreamAvailableNum(&n), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMallocWithCfg(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST, NULL),
               ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMallocForTaskScheduler(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST, NULL),
               ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtFreeWithDevSync(a), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMemFlush(a, sizeof(a)), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMemInvalidate(a, sizeof(a)), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtMallocHostWithCfg(&p, 4096, NULL), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtFreeHostWithDevSync(a), ACL_ERROR_UNINITIALIZE);
    void *list[1] = { a };
    EXPECT_ERR(aclrtCheckMemType(list, 1, ACL_RT_MEM_TYPE_DEV, &res, 0), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclFinalize(), ACL_ERROR_REPEAT_FINALIZE);
    CHECK(aclrtGetSocName() == NULL);
    drain_errors();
}

API_TEST(test_preinit)
{
    check_child(child_preinit, "before aclInit");
}

/* ================================================================== */
/* aclInit / aclFinalize.                                               */

API_TEST(test_init_repeat)
{
    EXPECT_OK(aclInit(NULL));
    EXPECT_ERR(aclInit(NULL), ACL_ERROR_REPEAT_INITIALIZE);
    /* Still initialised and usable. */
    uint32_t n = 0;
    EXPECT_OK(aclrtGetDeviceCount(&n));
    CHECK(n == 8);
}

static void child_bad_config(void)
{
    EXPECT_ERR(aclInit("/nonexistent/npu-emu-test/acl.json"), ACL_ERROR_INVALID_FILE);
    /* The failed call did not initialise anything. */
    uint32_t n = 0;
    EXPECT_ERR(aclrtGetDeviceCount(&n), ACL_ERROR_UNINITIALIZE);
    EXPECT_OK(aclInit(NULL));
    EXPECT_OK(aclFinalize());
}

API_TEST(test_init_bad_config)
{
    check_child(child_bad_config, "aclInit with a missing config file");
}

static void child_finalize_reference(void)
{
    uint64_t rc = 99;
    uint32_t n = 0;
    void *p = NULL;
    EXPECT_OK(aclInit(NULL));
    EXPECT_ERR(aclInit(NULL), ACL_ERROR_REPEAT_INITIALIZE);
    EXPECT_OK(aclFinalizeReference(&rc));
    CHECKF(rc == 1, "refCount after the first aclFinalizeReference is %" PRIu64 ", expected 1",
           rc);
    /* Still usable. */
    EXPECT_OK(aclrtGetDeviceCount(&n));
    CHECK(n == 8);
    EXPECT_OK(aclrtSetDevice(0));
    EXPECT_OK(aclrtMalloc(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtFree(p));
    rc = 99;
    EXPECT_OK(aclFinalizeReference(&rc));
    CHECKF(rc == 0, "refCount after the second aclFinalizeReference is %" PRIu64
                    ", expected 0", rc);
    EXPECT_ERR(aclrtGetDeviceCount(&n), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclrtSetDevice(0), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclFinalizeReference(&rc), ACL_ERROR_REPEAT_FINALIZE);
    EXPECT_ERR(aclFinalize(), ACL_ERROR_REPEAT_FINALIZE);
}

API_TEST(test_finalize_reference)
{
    check_child(child_finalize_reference, "aclFinalizeReference counting");
}

static void child_reinit(void)
{
    /* Init -> work -> Finalize -> Init ... is the documented sequential use;
     * repeat it so a slow teardown on either side shows up. */
    for (int round = 0; round < 300; round++) {
        void *d = NULL;
        char in[256], out[256];
        fill_pattern(in, sizeof(in), (uint32_t)round);
        memset(out, 0, sizeof(out));
        if (!EXPECT_OK(aclInit(NULL))) {
            fprintf(stderr, "    (round %d)\n", round);
            return;
        }
        EXPECT_OK(aclrtSetDevice(0));
        EXPECT_OK(aclrtMalloc(&d, sizeof(in), ACL_MEM_MALLOC_HUGE_FIRST));
        EXPECT_OK(aclrtMemcpy(d, sizeof(in), in, sizeof(in), ACL_MEMCPY_HOST_TO_DEVICE));
        EXPECT_OK(aclrtMemcpy(out, sizeof(out), d, sizeof(in), ACL_MEMCPY_DEVICE_TO_HOST));
        CHECKF(memcmp(in, out, sizeof(in)) == 0, "round %d: data did not round-trip", round);
        EXPECT_OK(aclrtFree(d));
        EXPECT_OK(aclFinalize());
        uint32_t n;
        EXPECT_ERR(aclrtGetDeviceCount(&n), ACL_ERROR_UNINITIALIZE);
    }
}

API_TEST(test_reinit_after_finalize)
{
    check_child(child_reinit, "aclInit after aclFinalize");
}

/* ================================================================== */
/* Last error and error messages.                                        */

API_TEST(test_errors_newest_first)
{
    void *p = NULL;
    drain_errors();
    aclError e1 = aclrtSetDevice(-1);
    aclError e2 = aclrtMalloc(NULL, 16, ACL_MEM_MALLOC_HUGE_FIRST);
    CHECK(e1 == ACL_ERROR_RT_INVALID_DEVICEID && e2 == ACL_ERROR_RT_PARAM_INVALID);
    /* The last error is overwritten by every error... */
    CHECK(aclrtPeekAtLastError(ACL_RT_THREAD_LEVEL) == ACL_ERROR_RT_PARAM_INVALID);
    /* ...but not cleared by a success. */
    uint32_t n;
    CHECK(aclrtGetDeviceCount(&n) == ACL_SUCCESS);
    CHECK(aclrtMalloc(&p, 16, ACL_MEM_MALLOC_HUGE_FIRST) == ACL_SUCCESS);
    CHECK(aclrtFree(p) == ACL_SUCCESS);
    CHECK(aclrtPeekAtLastError(ACL_RT_THREAD_LEVEL) == ACL_ERROR_RT_PARAM_INVALID);
    CHECK(aclrtGetLastError(ACL_RT_THREAD_LEVEL) == ACL_ERROR_RT_PARAM_INVALID);
    CHECK(aclrtGetLastError(ACL_RT_THREAD_LEVEL) == ACL_SUCCESS);
    /* Both messages in one string, newest first. */
    const char *msg = aclGetRecentErrMsg();
    CHECK(msg != NULL);
    if (msg) {
        const char *m = strstr(msg, "aclrtMalloc"), *s = strstr(msg, "aclrtSetDevice");
        CHECKF(m && s && m < s, "expected the aclrtMalloc message before the aclrtSetDevice "
                                "one in:\n%s", msg);
    }
    CHECK(aclGetRecentErrMsg() == NULL);
}

static void *thread_fail_once(void *arg)
{
    (void)arg;
    aclrtSetDevice(-1);     /* left pending in this thread */
    return NULL;
}

API_TEST(test_errors_per_thread)
{
    drain_errors();
    run_thread(thread_fail_once, NULL);
    CHECK(aclrtPeekAtLastError(ACL_RT_THREAD_LEVEL) == ACL_SUCCESS);
    CHECK(aclGetRecentErrMsg() == NULL);
}

/* ================================================================== */
/* aclFinalize of this process.                                         */

API_TEST(test_finalize)
{
    uint32_t n = 0;
    /* aclInit ran twice (one repeat): one aclFinalize ends it all. */
    EXPECT_OK(aclFinalize());
    EXPECT_ERR(aclrtGetDeviceCount(&n), ACL_ERROR_UNINITIALIZE);
    EXPECT_ERR(aclFinalize(), ACL_ERROR_REPEAT_FINALIZE);
    CHECK(aclrtGetSocName() == NULL);
    drain_errors();
}

/* ================================================================== */
/* The emulator dies while a client waits (last: it ends the emulator).  */

static int g_death_pipe[2] = { -1, -1 };

static void child_wait_through_death(void)
{
    aclrtStream s = NULL;
    BusyBufs bz;
    close(g_death_pipe[0]);
    aclrtDeviceStatus st = ACL_RT_DEVICE_STATUS_END;
    if (!EXPECT_OK(aclInit(NULL)) || !EXPECT_OK(aclrtSetDevice(0)) ||
        !EXPECT_OK(aclrtCreateStream(&s)) || !busy_bufs_alloc(&bz))
        _exit(90);
    EXPECT_OK(aclrtQueryDeviceStatus(0, &st));
    CHECK(st == ACL_RT_DEVICE_STATUS_NORMAL);
    for (int i = 0; i < 8; i++)
        EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    if (write(g_death_pipe[1], "q", 1) != 1)
        _exit(91);
    double t0 = now_s();
    aclError e = aclrtSynchronizeStream(s);   /* no timeout */
    double waited = now_s() - t0;
    CHECKF(e == ACL_ERROR_RT_SOCKET_CLOSE, "aclrtSynchronizeStream returned %d when npu-emu "
                                           "died, expected 507901", e);
    CHECKF(waited < 2.0, "aclrtSynchronizeStream noticed the death after %.3f s", waited);
    drain_errors();
    /* The device is unusable now; saying so is the query's answer, not a failure. */
    st = ACL_RT_DEVICE_STATUS_END;
    EXPECT_OK(aclrtQueryDeviceStatus(0, &st));
    CHECKF(st == ACL_RT_DEVICE_STATUS_ABNORMAL, "device status %d after npu-emu died, expected "
                                                "ABNORMAL", (int)st);
}

API_TEST(test_emulator_dies_during_sync)
{
    /* docs/decisions.md: a client waiting when the emulator dies gets 507901
     * within about 100 ms. */
    CU_ASSERT_FATAL(pipe(g_death_pipe) == 0);
    ChildBody b = { child_wait_through_death };
    pid_t pid = child_run(child_trampoline, &b);
    CU_ASSERT_FATAL(pid > 0);
    close(g_death_pipe[1]);
    char c;
    bool queued = read(g_death_pipe[0], &c, 1) == 1;
    close(g_death_pipe[0]);
    CHECKF(queued, "the child did not get as far as queueing its copies");
    g_usleep(50000);    /* the child is asleep in aclrtSynchronizeStream */
    api_emu_kill();
    int st = -1;
    for (int i = 0; i < 500; i++) {     /* 5 s */
        int raw;
        pid_t r = waitpid(pid, &raw, WNOHANG);
        if (r == pid) {
            st = WIFSIGNALED(raw) ? 128 + WTERMSIG(raw) : WEXITSTATUS(raw);
            break;
        }
        g_usleep(10000);
    }
    if (st < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    CHECKF(st == 0, st < 0 ? "the child still waited in aclrtSynchronizeStream 5 s after "
                             "npu-emu was killed" :
                             "the child ended with status %d (failed checks printed above)", st);
}

int main(void)
{
    static const TestCase preinit[] = { T(test_preinit) };
    static const TestCase init[] = {
        T(test_init_repeat), T(test_init_bad_config), T(test_finalize_reference),
        T(test_reinit_after_finalize),
    };
    static const TestCase errors[] = {
        T(test_errors_newest_first), T(test_errors_per_thread),
    };
    static const TestCase fin[] = { T(test_finalize) };
    static const TestCase death[] = { T(test_emulator_dies_during_sync) };
    /* The error tests allocate: device 0 is set for them, and stays set. */
    static const TestSuite suites[] = {
        SUITE("preinit", NULL, NULL, preinit),
        SUITE("init", NULL, NULL, init),
        SUITE("errors", api_use_dev0, NULL, errors),
        SUITE("finalize", NULL, NULL, fin),
        SUITE("emulator death", NULL, NULL, death),
    };
    return api_run("test_api_init", false, suites, G_N_ELEMENTS(suites));
}
