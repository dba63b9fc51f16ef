/*
 * test_api_host.c - integration tests of host memory (chapter 11-02) against a
 * real npu-emu: aclrtMallocHost and aclrtMallocHostWithCfg, aclrtFreeHost and
 * aclrtFreeHostWithDevSync, aclrtPointerGetAttributes on every kind of memory,
 * and what a host access to device memory does: the process dies of SIGSEGV
 * with npu-emu's report on stderr (in forked children, which call aclInit
 * themselves; device 5 is the one a child resets).
 */
#define _GNU_SOURCE
#include <CUnit/Basic.h>
#include <glib.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl/acl.h"
#include "acl_check.h"
#include "harness.h"

#define MiB (1ull << 20)
#define BIG BUSY_BYTES

API_TEST(test_host_memory)
{
    void *h = NULL, *d = NULL;
    EXPECT_ERR(aclrtMallocHost(NULL, 4096), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMallocHost(&h, 0), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtMallocHost(&h, MiB + 5));
    CHECK(h != NULL && ((uintptr_t)h & 63) == 0 && !in_dev_window(h));
    if (h) {
        memset(h, 0xa7, MiB + 5);
        CHECK(all_bytes(h, MiB + 5, 0xa7));
    }
    EXPECT_OK(aclrtFreeHost(h));
    EXPECT_ERR(aclrtFreeHost(h), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtFreeHost(NULL), ACL_ERROR_RT_PARAM_INVALID);
    void *m = malloc(4096);
    EXPECT_ERR(aclrtFreeHost(m), ACL_ERROR_RT_PARAM_INVALID);
    free(m);
    EXPECT_OK(aclrtMalloc(&d, 4096, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_ERR(aclrtFreeHost(d), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_OK(aclrtFree(d));
}

API_TEST(test_pointer_attributes)
{
    void *d = NULL, *d1 = NULL, *h = NULL;
    aclrtPtrAttributes at;
    aclrtContext c1 = NULL;
    int on_stack = 0;

    EXPECT_OK(aclrtMalloc(&d, 3 * MiB, ACL_MEM_MALLOC_HUGE_FIRST));
    memset(&at, 0xff, sizeof(at));
    EXPECT_OK(aclrtPointerGetAttributes(d, &at));
    CHECK(at.location.type == ACL_MEM_LOCATION_TYPE_DEVICE && at.location.id == 0);
    CHECK(at.pageSize == 2 * MiB);
    memset(&at, 0xff, sizeof(at));
    EXPECT_OK(aclrtPointerGetAttributes((uint8_t *)d + MiB, &at));   /* interior */
    CHECK(at.location.type == ACL_MEM_LOCATION_TYPE_DEVICE && at.location.id == 0);

    EXPECT_OK(aclrtCreateContext(&c1, 1));
    EXPECT_OK(aclrtMalloc(&d1, 4096, ACL_MEM_MALLOC_NORMAL_ONLY));
    use_dev0();
    memset(&at, 0xff, sizeof(at));
    EXPECT_OK(aclrtPointerGetAttributes(d1, &at));
    CHECKF(at.location.type == ACL_MEM_LOCATION_TYPE_DEVICE && at.location.id == 1,
           "device 1 memory: type %d id %u", (int)at.location.type, at.location.id);
    CHECK(at.pageSize == 4096);

    EXPECT_OK(aclrtMallocHost(&h, 4096));
    memset(&at, 0xff, sizeof(at));
    EXPECT_OK(aclrtPointerGetAttributes(h, &at));
    CHECK(at.location.type == ACL_MEM_LOCATION_TYPE_HOST);

    void *m = malloc(64);
    memset(&at, 0xff, sizeof(at));
    EXPECT_OK(aclrtPointerGetAttributes(m, &at));
    CHECK(at.location.type == ACL_MEM_LOCATION_TYPE_UNREGISTERED);
    free(m);
    memset(&at, 0xff, sizeof(at));
    EXPECT_OK(aclrtPointerGetAttributes(&on_stack, &at));
    CHECK(at.location.type == ACL_MEM_LOCATION_TYPE_UNREGISTERED);

    EXPECT_ERR(aclrtPointerGetAttributes(NULL, &at), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtPointerGetAttributes(d, NULL), ACL_ERROR_RT_PARAM_INVALID);

    EXPECT_OK(aclrtFreeHost(h));
    EXPECT_OK(aclrtFree(d1));
    EXPECT_OK(aclrtFree(d));
    EXPECT_OK(aclrtSetCurrentContext(c1));
    EXPECT_OK(aclrtDestroyContext(c1));
    use_dev0();
}

/* ---- pinned host memory with a configuration ---- */

API_TEST(test_host_with_cfg)
{
    enum { N = 64 * 1024 };
    void *h = NULL, *d = NULL;
    uint8_t data[N];
    aclrtPtrAttributes at;
    fill_pattern(data, N, 88);
    EXPECT_OK(aclrtMalloc(&d, N, ACL_MEM_MALLOC_HUGE_FIRST));
    aclrtMallocAttribute attrs[4] = {
        attr_of(ACL_RT_MEM_ATTR_MODULE_ID, 33), attr_of(ACL_RT_MEM_ATTR_DEVICE_ID, 0),
        attr_of(ACL_RT_MEM_ATTR_VA_FLAG, 1), attr_of(ACL_RT_MEM_ATTR_RSV, 0),
    };
    aclrtMallocConfig full = { attrs, 4 };
    aclrtMallocAttribute va0 = attr_of(ACL_RT_MEM_ATTR_VA_FLAG, 0);
    aclrtMallocConfig off = { &va0, 1 };
    aclrtMallocConfig *cfgs[] = { NULL, &full, &off };
    for (size_t i = 0; i < G_N_ELEMENTS(cfgs); i++) {
        h = NULL;
        if (!EXPECT_OK(aclrtMallocHostWithCfg(&h, N, cfgs[i])))
            continue;
        CHECK(h != NULL && ((uintptr_t)h & 63) == 0 && !in_dev_window(h));
        memset(&at, 0, sizeof(at));
        EXPECT_OK(aclrtPointerGetAttributes(h, &at));
        CHECK(at.location.type == ACL_MEM_LOCATION_TYPE_HOST);
        /* Pinned: a truly asynchronous copy reads it from the stream. */
        memcpy(h, data, N);
        EXPECT_OK(aclrtMemcpyAsync(d, N, h, N, ACL_MEMCPY_HOST_TO_DEVICE, NULL));
        EXPECT_OK(aclrtSynchronizeStream(NULL));
        CHECKF(dev_equals(d, data, N), "cfg %zu: the copy from pinned memory lost data", i);
        EXPECT_OK(aclrtMemset(d, N, 0, N));
        EXPECT_OK(aclrtFreeHost(h));
    }

    void *p = (void *)0x1234;
    aclrtMallocAttribute a;
    aclrtMallocConfig one = { &a, 1 };
    EXPECT_ERR(aclrtMallocHostWithCfg(NULL, N, NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtMallocHostWithCfg(&p, 0, NULL), ACL_ERROR_RT_PARAM_INVALID);
    aclrtMallocConfig no_attrs = { NULL, 2 };
    EXPECT_ERR(aclrtMallocHostWithCfg(&p, N, &no_attrs), ACL_ERROR_RT_PARAM_INVALID);
    a = attr_of(ACL_RT_MEM_ATTR_VA_FLAG, 2);
    EXPECT_ERR(aclrtMallocHostWithCfg(&p, N, &one), ACL_ERROR_RT_PARAM_INVALID);
    a = attr_of(ACL_RT_MEM_ATTR_DEVICE_ID, 1);
    EXPECT_ERR(aclrtMallocHostWithCfg(&p, N, &one), ACL_ERROR_RT_PARAM_INVALID);
    a = attr_of(ACL_RT_MEM_ATTR_DEVICE_ID, 9);
    EXPECT_ERR(aclrtMallocHostWithCfg(&p, N, &one), ACL_ERROR_RT_INVALID_DEVICEID);
    a = attr_of((aclrtMallocAttrType)77, 0);
    EXPECT_ERR(aclrtMallocHostWithCfg(&p, N, &one), ACL_ERROR_RT_PARAM_INVALID);
    CHECKF(p == (void *)0x1234, "a failed call wrote *ptr = %p", p);
    EXPECT_OK(aclrtFree(d));
}

API_TEST(test_free_host_with_dev_sync)
{
    enum { N = 64 * 1024 };
    BusyBufs bz;
    aclrtStream s = NULL;
    void *pin = NULL, *d = NULL, *cfg_pin = NULL;
    uint8_t data[N];
    fill_pattern(data, N, 93);
    if (!busy_bufs_alloc(&bz))
        return;
    EXPECT_OK(aclrtCreateStream(&s));
    EXPECT_OK(aclrtMalloc(&d, N, ACL_MEM_MALLOC_HUGE_FIRST));
    EXPECT_OK(aclrtMemset(d, N, 0, N));
    if (!EXPECT_OK(aclrtMallocHost(&pin, N)))
        return;
    memcpy(pin, data, N);
    /* The copy out of the pinned buffer waits behind long copies. */
    for (int i = 0; i < 3; i++)
        EXPECT_OK(aclrtMemcpyAsync(bz.b, BIG, bz.a, BIG, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    EXPECT_OK(aclrtMemcpyAsync(d, N, pin, N, ACL_MEMCPY_HOST_TO_DEVICE, s));
    EXPECT_OK(aclrtFreeHostWithDevSync(pin));
    CHECKF(dev_equals(d, data, N), "aclrtFreeHostWithDevSync returned before the queued copy "
                                   "out of the buffer ran");
    EXPECT_OK(aclrtSynchronizeStream(s));
    EXPECT_ERR(aclrtFreeHost(pin), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtFreeHostWithDevSync(pin), ACL_ERROR_RT_PARAM_INVALID);

    /* Memory from aclrtMallocHostWithCfg, nothing queued. */
    EXPECT_OK(aclrtMallocHostWithCfg(&cfg_pin, N, NULL));
    EXPECT_OK(aclrtFreeHostWithDevSync(cfg_pin));

    void *m = malloc(64);
    EXPECT_ERR(aclrtFreeHostWithDevSync(NULL), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtFreeHostWithDevSync(d), ACL_ERROR_RT_PARAM_INVALID);
    EXPECT_ERR(aclrtFreeHostWithDevSync(m), ACL_ERROR_RT_PARAM_INVALID);
    free(m);
    EXPECT_OK(aclrtFree(d));
    EXPECT_OK(aclrtDestroyStream(s));
    busy_bufs_free(&bz);
}

/* ================================================================== */
/* Host access to device memory (children that die).                  */

typedef struct FaultCase {
    bool write;
    uint64_t offset;
    int device;
    bool after_reset;
} FaultCase;
static const FaultCase *g_fault;

static void child_fault(void)
{
    const FaultCase *c = g_fault;
    void *p = NULL;
    if (aclInit(NULL) != ACL_SUCCESS || aclrtSetDevice(c->device) != ACL_SUCCESS) {
        fprintf(stderr, "TESTINFO setup failed\n");
        _exit(90);
    }
    if (c->after_reset) {
        /* Small allocations share a block; the device is reset; a new
         * allocation lands where the block was. */
        void *a = NULL, *b = NULL;
        if (aclrtMalloc(&a, 100, ACL_MEM_MALLOC_HUGE_FIRST) != ACL_SUCCESS ||
            aclrtMalloc(&b, 100, ACL_MEM_MALLOC_HUGE_FIRST) != ACL_SUCCESS ||
            aclrtResetDevice(c->device) != ACL_SUCCESS ||
            aclrtSetDevice(c->device) != ACL_SUCCESS)
            _exit(91);
    }
    if (aclrtMalloc(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST) != ACL_SUCCESS)
        _exit(92);
    volatile int *at = (volatile int *)((uint8_t *)p + c->offset);
    fprintf(stderr, "TESTINFO base=0x%llx addr=0x%llx\n", (unsigned long long)(uintptr_t)p,
            (unsigned long long)(uintptr_t)at);
    fflush(stderr);
    if (c->write) {
        *at = 1;
    } else {
        int v = *at;
        fprintf(stderr, "read %d\n", v);
    }
    _exit(93);  /* not reached */
}

static void run_fault_case(const FaultCase *c)
{
    g_fault = c;
    int fd = -1;
    ChildBody b = { child_fault };
    pid_t pid = child_run_stderr(child_trampoline, &b, &fd);
    CU_ASSERT_FATAL(pid > 0);
    char *err = child_collect(fd);
    int st = child_wait(pid);
    CHECKF(st == 128 + SIGSEGV, "the child ended with status %d, expected death by SIGSEGV (%d)",
           st, 128 + SIGSEGV);
    unsigned long long base = 0, addr = 0;
    const char *info = strstr(err, "TESTINFO base=");
    CHECKF(info && sscanf(info, "TESTINFO base=0x%llx addr=0x%llx", &base, &addr) == 2,
           "the child did not get as far as the access; stderr:\n%s", err);
    if (info) {
        const char *msg = strstr(info, "npu-emu:");
        char *want_addr = g_strdup_printf("0x%llx", addr);
        char *want_dev = g_strdup_printf("device %d", c->device);
        char *want_base = g_strdup_printf("allocation 0x%llx", base);
        /* The size as asked for, as rounded by the ACL rule, or as reserved. */
        bool size_ok = msg && (strstr(msg, "size 0x1000") || strstr(msg, "size 0x1020") ||
                               strstr(msg, "size 0x2000"));
        CHECKF(msg != NULL, "no npu-emu fault message; stderr:\n%s", err);
        if (msg) {
            CHECKF(strstr(msg, c->write ? "write" : "read") != NULL, "no '%s' in:\n%s",
                   c->write ? "write" : "read", msg);
            if (!c->write)
                CHECKF(strstr(msg, "write") == NULL, "a read reported as a write:\n%s", msg);
            CHECKF(strstr(msg, "4 bytes") != NULL, "no '4 bytes' in:\n%s", msg);
            CHECKF(strstr(msg, want_addr) != NULL, "no address %s in:\n%s", want_addr, msg);
            CHECKF(strstr(msg, want_dev) != NULL, "no '%s' in:\n%s", want_dev, msg);
            CHECKF(strstr(msg, want_base) != NULL, "no '%s' in:\n%s", want_base, msg);
            CHECKF(size_ok, "no allocation size (0x1000, 0x1020 or 0x2000) in:\n%s", msg);
        }
        g_free(want_addr);
        g_free(want_dev);
        g_free(want_base);
    }
    g_free(err);
}

API_TEST(test_fault_write)
{
    static const FaultCase c = { .write = true, .offset = 0, .device = 0 };
    run_fault_case(&c);
}

API_TEST(test_fault_read)
{
    static const FaultCase c = { .write = false, .offset = 0x40, .device = 0 };
    run_fault_case(&c);
}

API_TEST(test_fault_after_reset)
{
    /* The report must name the live allocation, not one forgotten by a reset. */
    static const FaultCase c = { .write = false, .offset = 0xc8, .device = 5,
                                 .after_reset = true };
    run_fault_case(&c);
}

int main(void)
{
    static const TestCase memory[] = {
        T(test_host_memory), T(test_pointer_attributes), T(test_host_with_cfg),
        T(test_free_host_with_dev_sync),
    };
    static const TestCase faults[] = {
        T(test_fault_write), T(test_fault_read), T(test_fault_after_reset),
    };
    static const TestSuite suites[] = {
        SUITE("host memory", NULL, NULL, memory),
        SUITE("faults", NULL, NULL, faults),
    };
    return api_run("test_api_host", true, suites, G_N_ELEMENTS(suites));
}
