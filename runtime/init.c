/*
 * init.c - aclInit / aclFinalize / aclFinalizeReference and the process-wide
 * runtime state: connection, device VA window, fault handler, fork safety.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fault.h"
#include "rt.h"

RtGlobal g_rt = { .lock = PTHREAD_MUTEX_INITIALIZER, .conn = { .sock = -1 } };

static bool window_reserved;
static GPtrArray *retired;      /* destroyed handles, never reused */
static pthread_mutex_t retired_lock = PTHREAD_MUTEX_INITIALIZER;

void rt_retire_handle(void *handle)
{
    pthread_mutex_lock(&retired_lock);
    if (!retired)
        retired = g_ptr_array_new();
    g_ptr_array_add(retired, handle);
    pthread_mutex_unlock(&retired_lock);
}
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* A forked child shares the parent's session; it must start over with aclInit. */
static void child_after_fork(void)
{
    pthread_mutex_init(&g_rt.lock, NULL);
    /* The channel and segment aliases are MADV_DONTFORK: not mapped here. */
    if (g_rt.conn.sock >= 0)
        close(g_rt.conn.sock);
    for (unsigned i = 0; i < EMU_CHAN_SLOTS; i++)
        if (g_rt.conn.stash[i].tag)
            close(g_rt.conn.stash[i].fd);
    memset(&g_rt.conn, 0, sizeof(g_rt.conn));
    g_rt.conn.sock = -1;
    g_rt.initialized = false;
    g_rt.init_count = 0;
    /* The parent's tables describe the parent's session: forget them (leaked). */
    g_rt.contexts = NULL;
    g_rt.streams = NULL;
    memset(g_rt.dev, 0, sizeof(g_rt.dev));
    rt_memory_forget_after_fork();
    rt_notify_forget_after_fork();
    rt_event_forget_after_fork();
    rt_callback_forget_after_fork();
}

static void install_atfork(void)
{
    pthread_atfork(NULL, NULL, child_after_fork);
}

/* Device pointers must fault when the host touches them: keep the whole window
 * (except the part below the first device heap) mapped PROT_NONE. */
static bool reserve_window(void)
{
    if (window_reserved)
        return true;
    size_t len = EMU_VA_WINDOW_HI - EMU_VA_RESERVE_LO;
    void *p = mmap((void *)EMU_VA_RESERVE_LO, len, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED)
        return false;
    if (p != (void *)EMU_VA_RESERVE_LO) {
        munmap(p, len);     /* kernels before 4.17 ignore MAP_FIXED_NOREPLACE */
        return false;
    }
    window_reserved = true;
    return true;
}

aclError rt_check_init(const char *api)
{
    if (__atomic_load_n(&g_rt.initialized, __ATOMIC_ACQUIRE))
        return ACL_SUCCESS;
    return rt_fail(ACL_ERROR_UNINITIALIZE, api, "aclInit has not been called");
}

RT_EXPORT aclError aclInit(const char *configPath)
{
    pthread_once(&atfork_once, install_atfork);
    pthread_mutex_lock(&g_rt.lock);
    if (g_rt.initialized) {
        g_rt.init_count++;
        pthread_mutex_unlock(&g_rt.lock);
        return RT_FAIL(ACL_ERROR_REPEAT_INITIALIZE, "aclInit was already called");
    }
    if (configPath && *configPath && access(configPath, R_OK) != 0) {
        pthread_mutex_unlock(&g_rt.lock);
        return RT_FAIL(ACL_ERROR_INVALID_FILE, "cannot read config file '%s'", configPath);
    }
    if (!reserve_window()) {
        pthread_mutex_unlock(&g_rt.lock);
        return RT_FAIL(ACL_ERROR_RT_DEV_SETUP_ERROR,
                       "cannot reserve the device address window 0x%llx-0x%llx",
                       (unsigned long long)EMU_VA_RESERVE_LO, (unsigned long long)EMU_VA_WINDOW_HI);
    }
    aclError err = rt_conn_open(&g_rt.conn);
    if (err != ACL_SUCCESS) {
        pthread_mutex_unlock(&g_rt.lock);
        if (err == ACL_ERROR_RT_NO_PERMISSION)
            return RT_FAIL(err, "npu-emu refused the connection: it belongs to another user");
        return RT_FAIL(err, "cannot reach or start npu-emu (socket $NPU_EMU_SOCKET, "
                            "binary $NPU_EMU_BIN or next to libascendcl.so)");
    }
    g_rt.contexts = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_rt.streams = g_hash_table_new(g_direct_hash, g_direct_equal);
    rt_devices_init();
    rt_memory_init();
    rt_fault_install(EMU_VA_RESERVE_LO, EMU_VA_WINDOW_HI, rt_fault_lookup);
    g_rt.init_count = 1;
    __atomic_store_n(&g_rt.initialized, true, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&g_rt.lock);
    return ACL_SUCCESS;
}

static void finalize_locked(void)
{
    rt_devices_release();
    rt_memory_release();
    rt_notify_release();
    rt_event_release();
    rt_callback_release();
    g_hash_table_destroy(g_rt.contexts);
    g_hash_table_destroy(g_rt.streams);
    g_rt.contexts = g_rt.streams = NULL;
    rt_conn_close(&g_rt.conn);
    g_rt.init_count = 0;
    __atomic_store_n(&g_rt.initialized, false, __ATOMIC_RELEASE);
}

RT_EXPORT aclError aclFinalize(void)
{
    if (__atomic_load_n(&g_rt.initialized, __ATOMIC_ACQUIRE)) {
        rt_callback_before_finalize();
        rt_stream_state_pre_destroy(NULL, NULL);   /* every stream goes */
    }
    pthread_mutex_lock(&g_rt.lock);
    if (!g_rt.initialized) {
        pthread_mutex_unlock(&g_rt.lock);
        return RT_FAIL(ACL_ERROR_REPEAT_FINALIZE, "aclInit has not been called, or "
                                                  "aclFinalize already ran");
    }
    finalize_locked();
    pthread_mutex_unlock(&g_rt.lock);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclFinalizeReference(uint64_t *refCount)
{
    pthread_mutex_lock(&g_rt.lock);
    bool last = g_rt.initialized && g_rt.init_count == 1;
    pthread_mutex_unlock(&g_rt.lock);
    if (last) {
        rt_callback_before_finalize();
        rt_stream_state_pre_destroy(NULL, NULL);   /* every stream goes */
    }
    pthread_mutex_lock(&g_rt.lock);
    if (!g_rt.initialized) {
        pthread_mutex_unlock(&g_rt.lock);
        return RT_FAIL(ACL_ERROR_REPEAT_FINALIZE, "aclInit has not been called, or "
                                                  "the last reference was already released");
    }
    if (--g_rt.init_count == 0)
        finalize_locked();
    if (refCount)
        *refCount = g_rt.init_count;
    pthread_mutex_unlock(&g_rt.lock);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtGetVersion(int32_t *majorVersion, int32_t *minorVersion,
                                   int32_t *patchVersion)
{
    if (!majorVersion || !minorVersion || !patchVersion)
        return RT_FAIL(ACL_ERROR_INVALID_PARAM, "output pointers must not be NULL");
    /* The ACL API level these headers follow. */
    *majorVersion = 1;
    *minorVersion = 0;
    *patchVersion = 0;
    return ACL_SUCCESS;
}
