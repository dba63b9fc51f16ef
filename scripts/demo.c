/*
 * demo.c - npu-demo: several real processes share one emulated Atlas A2 server.
 *
 * Written against the public CANN API only (acl/acl.h), as any application
 * would be.  The parent starts worker processes; each takes a group of devices,
 * moves a buffer through them (host -> device -> device ... -> host) with
 * synchronous and stream copies, and checks every byte that comes back.  A
 * worker grabs several GiB and is killed with SIGKILL, to show the emulator
 * taking the memory back.  Last, the documented two-process flow: one process
 * exports memory and a notify to a whitelisted pid and lets its stream wait;
 * the other, on another device, imports both, writes and records.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "acl/acl.h"

#define MiB ((size_t)1 << 20)

#define CHECK(call)                                                                   \
    do {                                                                              \
        aclError e_ = (call);                                                         \
        if (e_ != ACL_SUCCESS) {                                                      \
            const char *m_ = aclGetRecentErrMsg();                                    \
            fprintf(stderr, "[pid %d] %s failed: %d %s", (int)getpid(), #call, e_,    \
                    m_ ? m_ : "\n");                                                  \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static uint64_t checksum(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Moves `size` bytes through devices [first, first + count) and back. */
static int worker(int first, int count, size_t size)
{
    CHECK(aclInit(NULL));
    uint8_t *src, *back;
    CHECK(aclrtMallocHost((void **)&src, size));
    CHECK(aclrtMallocHost((void **)&back, size));
    srand((unsigned)getpid());
    for (size_t i = 0; i < size; i++)
        src[i] = (uint8_t)rand();
    uint64_t want = checksum(src, size);
    printf("[pid %d] devices %d-%d: %zu MiB pattern, checksum %016llx\n", (int)getpid(), first,
           first + count - 1, size / MiB, (unsigned long long)want);

    void *buf[8];
    double t0 = now_s();
    for (int i = 0; i < count; i++) {
        CHECK(aclrtSetDevice(first + i));
        CHECK(aclrtMalloc(&buf[i], size, ACL_MEM_MALLOC_HUGE_FIRST));
    }
    /* Host -> first device, synchronously. */
    CHECK(aclrtSetDevice(first));
    CHECK(aclrtMemcpy(buf[0], size, src, size, ACL_MEMCPY_HOST_TO_DEVICE));
    /* Device -> next device, on each device's own stream; a stream reaches
     * another device's memory only with peer access, as on hardware. */
    for (int i = 1; i < count; i++) {
        aclrtStream s;
        CHECK(aclrtSetDevice(first + i));
        CHECK(aclrtDeviceEnablePeerAccess(first + i - 1, 0));
        CHECK(aclrtCreateStream(&s));
        CHECK(aclrtMemcpyAsync(buf[i], size, buf[i - 1], size, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
        CHECK(aclrtSynchronizeStream(s));
        CHECK(aclrtDestroyStream(s));
        printf("[pid %d]   device %d -> device %d done (stream copy)\n", (int)getpid(),
               first + i - 1, first + i);
    }
    /* Last device -> host, asynchronously into pinned memory. */
    CHECK(aclrtMemcpyAsync(back, size, buf[count - 1], size, ACL_MEMCPY_DEVICE_TO_HOST, NULL));
    CHECK(aclrtSynchronizeStream(NULL));
    uint64_t got = checksum(back, size);
    double dt = now_s() - t0;
    printf("[pid %d] back on the host: checksum %016llx %s (%.0f MiB/s through %d devices)\n",
           (int)getpid(), (unsigned long long)got, got == want ? "MATCH" : "MISMATCH",
           (double)size * (count + 1) / MiB / dt, count);

    size_t free_b, total;
    CHECK(aclrtGetMemInfo(ACL_HBM_MEM, &free_b, &total));
    printf("[pid %d] device %d HBM: %zu MiB free of %zu MiB\n", (int)getpid(), first + count - 1,
           free_b / MiB, total / MiB);
    for (int i = 0; i < count; i++)
        CHECK(aclrtFree(buf[i]));
    for (int i = 0; i < count; i++)
        CHECK(aclrtResetDevice(first + i));
    CHECK(aclrtFreeHost(src));
    CHECK(aclrtFreeHost(back));
    CHECK(aclFinalize());
    return got == want ? 0 : 2;
}

/* Holds 6 GiB on device 5 until killed. */
static int hog(int ready_fd)
{
    CHECK(aclInit(NULL));
    CHECK(aclrtSetDevice(5));
    void *p[6];
    for (int i = 0; i < 6; i++) {
        CHECK(aclrtMalloc(&p[i], 1ull << 30, ACL_MEM_MALLOC_HUGE_ONLY));
        CHECK(aclrtMemset(p[i], 1ull << 30, 0x5a, 4 * MiB));
    }
    printf("[pid %d] holding 6 GiB on device 5\n", (int)getpid());
    fflush(stdout);
    if (write(ready_fd, "r", 1) != 1)
        return 1;
    pause();
    return 0;
}

#define IPC_SIZE (64 * MiB)

static void fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 7 + i / 4096);
}

/* B: imports A's buffer and notify (device 0) from device 1 with peer access,
 * waits a moment, writes the buffer from its own stream and records. */
static int producer(int key_fd)
{
    char keys[2][65];
    if (read(key_fd, keys, sizeof(keys)) != (ssize_t)sizeof(keys))
        return 1;
    CHECK(aclInit(NULL));
    CHECK(aclrtSetDevice(1));
    CHECK(aclrtDeviceEnablePeerAccess(0, 0));
    void *theirs = NULL, *own = NULL;
    aclrtNotify n = NULL;
    aclrtStream s = NULL;
    CHECK(aclrtIpcMemImportByKey(&theirs, keys[0], ACL_RT_IPC_MEM_IMPORT_FLAG_ENABLE_PEER_ACCESS));
    CHECK(aclrtNotifyImportByKey(&n, keys[1], ACL_RT_NOTIFY_IMPORT_FLAG_ENABLE_PEER_ACCESS));
    CHECK(aclrtMalloc(&own, IPC_SIZE, ACL_MEM_MALLOC_HUGE_FIRST));
    uint8_t *h = malloc(IPC_SIZE);
    fill(h, IPC_SIZE);
    CHECK(aclrtMemcpy(own, IPC_SIZE, h, IPC_SIZE, ACL_MEMCPY_HOST_TO_DEVICE));
    free(h);
    CHECK(aclrtCreateStream(&s));
    printf("[pid %d] B: imported A's buffer and notify on device 1; writing in 200 ms\n",
           (int)getpid());
    usleep(200000);
    CHECK(aclrtMemcpyAsync(theirs, IPC_SIZE, own, IPC_SIZE, ACL_MEMCPY_DEVICE_TO_DEVICE, s));
    CHECK(aclrtRecordNotify(n, s));
    CHECK(aclrtSynchronizeStream(s));
    CHECK(aclrtDestroyStream(s));
    CHECK(aclrtDestroyNotify(n));
    CHECK(aclrtIpcMemClose(keys[0]));
    CHECK(aclrtFree(own));
    CHECK(aclrtResetDevice(1));
    CHECK(aclFinalize());
    return 0;
}

/* A: exports a buffer and a notify to B's pid only; its stream waits for the
 * notify, then copies the buffer out.  True when B's bytes arrived. */
static bool ipc_flow(void)
{
    printf("\nnpu-demo: two processes, IPC memory and an IPC notify, devices 0 and 1\n");
    CHECK(aclrtSetDevice(0));
    void *buf = NULL, *out = NULL;
    aclrtNotify n = NULL;
    aclrtStream s = NULL;
    CHECK(aclrtMalloc(&buf, IPC_SIZE, ACL_MEM_MALLOC_HUGE_FIRST));
    CHECK(aclrtMemset(buf, IPC_SIZE, 0, IPC_SIZE));
    CHECK(aclrtMallocHost(&out, IPC_SIZE));
    CHECK(aclrtCreateNotify(&n, 0));
    CHECK(aclrtCreateStream(&s));
    int kp[2];
    if (pipe(kp) < 0)
        return false;
    pid_t b = fork();
    if (b == 0) {
        close(kp[1]);
        _exit(producer(kp[0]));
    }
    close(kp[0]);
    char keys[2][65];
    int32_t pid = b;
    CHECK(aclrtIpcMemGetExportKey(buf, IPC_SIZE, keys[0], sizeof(keys[0]),
                                  ACL_RT_IPC_MEM_EXPORT_FLAG_DEFAULT));
    CHECK(aclrtIpcMemSetImportPid(keys[0], &pid, 1));
    CHECK(aclrtNotifyGetExportKey(n, keys[1], sizeof(keys[1]), ACL_RT_NOTIFY_EXPORT_FLAG_DEFAULT));
    CHECK(aclrtNotifySetImportPid(n, &pid, 1));
    CHECK(aclrtWaitAndResetNotify(n, s, 0));
    CHECK(aclrtMemcpyAsync(out, IPC_SIZE, buf, IPC_SIZE, ACL_MEMCPY_DEVICE_TO_HOST, s));
    printf("[pid %d] A: exported 64 MiB and a notify to pid %d; my stream waits\n",
           (int)getpid(), (int)b);
    if (write(kp[1], keys, sizeof(keys)) != (ssize_t)sizeof(keys))
        return false;
    close(kp[1]);
    double t0 = now_s();
    CHECK(aclrtSynchronizeStreamWithTimeout(s, 60000));    /* B may have failed */
    double waited = now_s() - t0;
    uint8_t *want = malloc(IPC_SIZE);
    fill(want, IPC_SIZE);
    bool ok = checksum(out, IPC_SIZE) == checksum(want, IPC_SIZE) &&
              memcmp(out, want, IPC_SIZE) == 0;
    free(want);
    int st;
    waitpid(b, &st, 0);
    ok = ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    printf("[pid %d] A: my stream waited %.0f ms for B's record; B's 64 MiB %s\n",
           (int)getpid(), waited * 1e3, ok ? "arrived intact" : "DID NOT ARRIVE");
    CHECK(aclrtDestroyStream(s));
    CHECK(aclrtDestroyNotify(n));
    CHECK(aclrtFreeHost(out));
    CHECK(aclrtFree(buf));
    CHECK(aclrtResetDevice(0));
    return ok;
}

static size_t device5_free(void)
{
    size_t free_b, total;
    CHECK(aclrtSetDevice(5));
    CHECK(aclrtGetMemInfo(ACL_HBM_MEM, &free_b, &total));
    return free_b;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("npu-demo: two processes, four devices each, one emulated Atlas A2 server\n");
    pid_t w[2];
    for (int i = 0; i < 2; i++) {
        w[i] = fork();
        if (w[i] == 0)
            _exit(worker(i * 4, 4, 256 * MiB));
    }
    int failed = 0;
    for (int i = 0; i < 2; i++) {
        int st;
        waitpid(w[i], &st, 0);
        failed |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }

    printf("\nnpu-demo: a process holding 6 GiB is killed with SIGKILL\n");
    CHECK(aclInit(NULL));
    size_t before = device5_free();
    int p[2];
    if (pipe(p) < 0)
        return 1;
    pid_t h = fork();
    if (h == 0)
        _exit(hog(p[1]));
    char c;
    if (read(p[0], &c, 1) != 1)
        return 1;
    printf("[parent] device 5 free while it runs: %zu MiB (was %zu MiB)\n",
           device5_free() / MiB, before / MiB);
    kill(h, SIGKILL);
    waitpid(h, NULL, 0);
    size_t after = 0;
    for (int i = 0; i < 500 && (after = device5_free()) != before; i++)
        usleep(10000);
    printf("[parent] after kill -9: %zu MiB free (%s)\n", after / MiB,
           after == before ? "all of it came back" : "LEAKED");
    failed |= after != before;
    CHECK(aclrtResetDevice(5));
    failed |= !ipc_flow();
    CHECK(aclFinalize());
    printf("\nnpu-demo: %s\n", failed ? "FAILED" : "all data verified, all memory reclaimed");
    return failed;
}
