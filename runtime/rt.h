/*
 * rt.h - internals of libascendcl.so shared by the runtime's API files.
 *
 * Concepts:
 *  - One process-wide RtGlobal: the connection to npu-emu (conn.c), the visible
 *    devices and their Set/Reset counts (device.c), contexts and streams
 *    (context.c, stream.c) and the client-side view of memory (memory.c).
 *  - Per-thread state (RtThread): the current context, the last error and the
 *    recent error messages (error.c).
 *  - Handles given to the application (aclrtContext, aclrtStream) are pointers to
 *    RtContext / RtStream; they are looked up in a registry before use, so a
 *    forged or stale handle is an error, not a crash.
 *  - Device pointers are device virtual addresses in the PROT_NONE window; the
 *    runtime copies through its own host alias of each segment (rt_dev_alias).
 *  - Device ids: the application uses user ids (index into ASCEND_RT_VISIBLE_DEVICES);
 *    the wire protocol uses physical ids (index within the server).
 * Locking: g_rt.lock protects the registries and device table; memory tables
 * have their own rwlock (memory.c), so copies never take g_rt.lock.
 */
#ifndef RUNTIME_RT_H
#define RUNTIME_RT_H

#include <glib.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "acl/acl.h"
#include "npuemu/proto.h"

#define RT_EXPORT __attribute__((visibility("default")))

typedef struct RtStream RtStream;

typedef struct RtContext {
    uint32_t magic;
    int32_t device;             /* user device id */
    bool is_default;
    RtStream *default_stream;
    bool stop_on_failure;       /* a stream of it was set to ACL_STOP_ON_FAILURE: all its
                                 * streams, later ones too, stop on failure (stream2.c) */
    uint32_t group;             /* names the context to the emulator: a failure in
                                 * stop mode stops every stream of the group */
} RtContext;

struct RtStream {
    uint32_t magic;
    RtContext *ctx;
    int32_t device;             /* user device id */
    uint32_t id;                /* index of its EmuStreamState */
    uint32_t submitted;         /* sequence number of the last task queued */
    bool is_default;
    uint32_t priority;          /* 0 (highest) .. 7: reported, no scheduling effect */
    uint32_t flags;             /* ACL_STREAM_* creation flags */
    bool mode_set;              /* aclrtSetStreamFailureMode was called (once only) */
    bool overflow;              /* overflow detection switch (recorded only) */
    bool cache_op_info;         /* ACL_STREAM_ATTR_CACHE_OP_INFO switch (recorded only) */
    uint32_t custom_tag;        /* ACL_STREAM_ATTR_USER_CUSTOM_TAG */
};

typedef struct RtDevice {
    int32_t phys;               /* physical id within the server */
    uint32_t set_count;         /* aclrtSetDevice references */
    bool open;                  /* opened on the emulator, default context alive */
    RtContext *default_ctx;
    uint32_t peers;             /* bit p: peer access to user device p (peer.c) */
} RtDevice;

typedef struct RtFdStash {
    uint32_t tag;
    int fd;
} RtFdStash;

typedef struct RtConn {
    int sock;
    EmuWelcome welcome;
    uint8_t *chan;
    EmuChanHeader *hdr;
    EmuSlot *slots;
    EmuStreamState *states;
    uint64_t slot_busy;         /* bit i: slot i is in use by a thread of ours */
    pthread_mutex_t fd_lock;
    RtFdStash stash[EMU_CHAN_SLOTS];
    bool broken;                /* the emulator went away */
} RtConn;

typedef struct RtGlobal {
    pthread_mutex_t lock;
    uint64_t init_count;
    bool initialized;
    RtConn conn;
    int32_t ndev;               /* visible devices */
    RtDevice dev[EMU_MAX_DEVICES];
    GHashTable *contexts;       /* RtContext * set */
    GHashTable *streams;        /* RtStream * set */
} RtGlobal;

extern RtGlobal g_rt;

/* ---- error.c ---- */
/* Records `code` as the thread's last error, queues a message for
 * aclGetRecentErrMsg, and returns code. */
aclError rt_fail(aclError code, const char *api, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
#define RT_FAIL(code, ...) rt_fail((code), __func__, __VA_ARGS__)
/* Sets the last error without a message (errors that come from the device). */
aclError rt_set_error(aclError code);

/* ---- conn.c ---- */
/* Connects (starting an emulator if none answers); returns an aclError. */
aclError rt_conn_open(RtConn *c);
void rt_conn_close(RtConn *c);
/* One request / response round trip. If the response carries a memory object,
 * *fd_out receives its fd (else -1). Returns the emulator's aclError. */
aclError rt_call(uint32_t cmd, const void *req, uint32_t req_len, void *resp,
                 uint32_t resp_len, int *fd_out);
/* Waits until stream state `id` reached `seq`. Returns ACL_SUCCESS, or
 * ACL_ERROR_RT_STREAM_SYNC_TIMEOUT after timeout_ms (< 0: forever), or
 * ACL_ERROR_RT_SOCKET_CLOSE if the emulator is gone. */
aclError rt_wait_stream(uint32_t id, uint32_t seq, int64_t timeout_ms);

/* ---- init.c ---- */
/* ACL_SUCCESS when aclInit has been called, else records and returns the error. */
aclError rt_check_init(const char *api);
#define RT_CHECK_INIT()                                  \
    do {                                                 \
        aclError e_ = rt_check_init(__func__);           \
        if (e_ != ACL_SUCCESS)                           \
            return e_;                                   \
    } while (0)

/* ---- device.c ---- */
void rt_devices_init(void);
bool rt_device_valid(int32_t user_id);
int32_t rt_device_phys(int32_t user_id);
/* Opens a device (and its default context) without an aclrtSetDevice reference. */
aclError rt_device_open(int32_t user_id);
/* Releases all device state (aclFinalize). */
void rt_devices_release(void);

/* ---- init.c ---- */
/* Keeps a destroyed handle's memory forever, so that a new context or stream
 * never gets the address of a dead one (a stale handle stays an error). */
void rt_retire_handle(void *handle);

/* ---- context.c ---- */
RtContext *rt_ctx_new(int32_t device, bool is_default, aclError *err);
void rt_ctx_free(RtContext *ctx);
bool rt_ctx_valid(RtContext *ctx);
/* The calling thread's current context, or NULL. */
RtContext *rt_current_ctx(void);
void rt_set_current_ctx(RtContext *ctx);
/* Current context, or records ACL_ERROR_RT_CONTEXT_NULL. */
RtContext *rt_require_ctx(const char *api, aclError *err);
/* Forgets every context of `device` (its resources are gone). */
void rt_ctx_drop_device(int32_t device);

/* ---- stream.c ---- */
RtStream *rt_stream_new(RtContext *ctx, bool is_default, uint32_t priority, uint32_t flags,
                        aclError *err);
bool rt_stream_valid(RtStream *s);
/* The stream an API call means: `stream`, or the current context's default stream
 * for NULL. Checks that it belongs to the current device (107003 otherwise). */
RtStream *rt_stream_resolve(aclrtStream stream, const char *api, aclError *err);
/* The same for a stream of any device (queries). */
RtStream *rt_stream_lookup_any(aclrtStream stream, const char *api, aclError *err);
/* Queues a task; returns an aclError. */
aclError rt_stream_submit(RtStream *s, const EmuTask *t);
/* The same, giving the task's number (rt_stream_mark may already show another
 * thread's later task). */
aclError rt_stream_submit_seq(RtStream *s, const EmuTask *t, uint32_t *seq);
/* The same for a task the runtime adds on its own (not the thread's last task
 * for aclrtGetThreadLastTaskId). */
aclError rt_stream_submit_internal(RtStream *s, const EmuTask *t, uint32_t *seq);
/* The same for an event task, giving the emulator's record number (a record:
 * its own; a wait: the one it waits for). */
aclError rt_stream_submit_gen(RtStream *s, const EmuTask *t, uint32_t *seq, uint64_t *gen);
/* Waits for the stream's queued work and collects its error; a stream that a
 * failure stopped (ACL_STOP_ON_FAILURE) reports that failure every time. */
aclError rt_stream_sync(RtStream *s, int64_t timeout_ms);
/* The same in two steps, for waiting without holding g_rt.lock. */
typedef struct RtStreamMark {
    uint32_t id;
    uint32_t seq;
} RtStreamMark;
uint32_t rt_stream_mark(RtStream *s);
aclError rt_stream_wait_mark(uint32_t id, uint32_t seq, int64_t timeout_ms);
/* Waits, without g_rt.lock, for the streams match() selects; first error. */
aclError rt_streams_wait(bool (*match)(RtStream *, const void *), const void *arg,
                         int64_t timeout_ms);
/* Waits, without g_rt.lock, for the work queued so far on every stream of the
 * process, leaving task errors for the streams' next synchronise to report.
 * Returns ACL_SUCCESS or ACL_ERROR_RT_SOCKET_CLOSE. */
aclError rt_streams_drain(void);
/* match() for rt_streams_wait: streams of the user device *(int32_t *)dev. */
bool rt_stream_on_device(RtStream *s, const void *dev);
/* Drops the client side of every stream of `device` (the emulator freed them). */
void rt_stream_drop_device(int32_t device);
void rt_stream_free(RtStream *s);
/* Flags of streams that take no host task (PERSISTENT, DEVICE_USE_ONLY,
 * CPU_SCHEDULE): their synchronise returns at once, as documented. */
#define RT_STREAM_NO_HOST_TASKS 0x34u

/* ---- stream2.c: stream state callbacks (aclrtRegStreamStateCallback) ----
 * Callbacks run outside g_rt.lock, so they may call the runtime.  Streams made
 * under the lock (default streams) are noted by rt_stream_new and reported by
 * rt_stream_state_flush, which every path that creates one calls after it
 * released the lock; destroy paths call rt_stream_state_pre_destroy before they
 * take it, while the handles are still live. */
void rt_stream_state_created(RtStream *s);  /* under g_rt.lock: queue CREATE_POST */
void rt_stream_state_flush(void);           /* without g_rt.lock: report them */
/* DESTROY_PRE for the live streams match() selects (NULL: every stream). */
void rt_stream_state_pre_destroy(bool (*match)(RtStream *, const void *), const void *arg);
/* DESTROY_PRE for one stream about to be destroyed. */
void rt_stream_state_destroying(RtStream *s);
/* match() for rt_stream_state_pre_destroy: the streams of a live, non-default
 * context *arg (what aclrtDestroyContext will destroy). */
bool rt_stream_in_destroyable_ctx(RtStream *s, const void *ctx);
/* Called with g_rt.lock held for a stream just created: applies its context's
 * failure mode. */
void rt_stream_apply_ctx_mode(RtStream *s);

/* ---- memory.c ---- */
typedef enum RtMemKind {
    RT_MEM_PAGEABLE = 0,        /* host memory unknown to the runtime */
    RT_MEM_PINNED,              /* aclrtMallocHost memory */
    RT_MEM_DEVICE,              /* inside a device segment of ours */
    RT_MEM_DEVICE_BAD,          /* in the device window but not mapped for us */
} RtMemKind;

typedef struct RtMemRef {
    RtMemKind kind;
    int32_t device;             /* user id, for RT_MEM_DEVICE */
    uint8_t *host;              /* where the runtime can touch [ptr, ptr + len) */
    uint32_t page_size;
    bool ipc_remote;            /* imported by IPC key from another device: copy
                                 * restrictions apply (ipc.c) */
} RtMemRef;

void rt_memory_init(void);
void rt_memory_release(void);
/* Classifies [ptr, ptr + len) and finds where the runtime can touch it. */
RtMemKind rt_mem_lookup(const void *ptr, uint64_t len, RtMemRef *ref);
/* Forgets every segment of physical device `phys` (the emulator freed them). */
void rt_memory_drop_device(int32_t phys);
bool rt_in_window(const void *ptr);
void rt_memory_forget_after_fork(void);
/* The aclrtMalloc allocation or pinned host buffer containing addr. */
bool rt_mem_block(uint64_t addr, uint64_t *base, uint64_t *size);

/* ---- ipc.c ---- */
/* As rt_mem_lookup, for [a, a + len) inside memory imported by IPC key. */
bool rt_ipc_lookup(uint64_t a, uint64_t len, RtMemRef *ref);
void rt_ipc_release(void);
void rt_ipc_forget_after_fork(void);
/* The copy rules of memory imported by key from another device: no
 * synchronous copies, no copy to or from the host, no inferred direction
 * (ACL_MEMCPY_DEFAULT); asynchronous device-to-device copies only. */
aclError rt_ipc_check_copy(const char *api, const RtMemRef *d, const RtMemRef *s, int kind,
                           bool async);
/* Parses / formats the 65-byte key of an IPC export or import. */
bool rt_ipc_key_parse(const char *key, uint8_t token[EMU_TOKEN_LEN]);
void rt_ipc_key_format(const uint8_t token[EMU_TOKEN_LEN], char *key);

/* ---- event.c ---- */
void rt_event_drop_device(int32_t device);
void rt_event_release(void);
void rt_event_forget_after_fork(void);

/* ---- callback.c ---- */
/* aclFinalize, before g_rt.lock: ends every aclrtSubscribeReport subscription
 * (the callback thread runs what the subscribers did not take) and waits for
 * the streams, so that queued callbacks run while g_rt.lock is free. */
void rt_callback_before_finalize(void);
/* aclFinalize, before the channel is closed: stops the callback thread. */
void rt_callback_release(void);
void rt_callback_forget_after_fork(void);

/* ---- notify.c ---- */
/* Forgets the notifies of user device `device` (the emulator dropped them). */
void rt_notify_drop_device(int32_t device);
void rt_notify_release(void);
void rt_notify_forget_after_fork(void);
/* Whitelists num pids of `server` (EMU_ANY_SERVER: any) for an export of ours
 * named by kind and the first tlen bytes of its token. */
aclError rt_share_allow(const char *api, uint32_t kind, const uint8_t *token, uint32_t tlen,
                        int32_t server, const int32_t *pid, size_t num);

/* ---- vmm.c ---- */
/* True when addr lies in a reservation of this process. */
bool rt_vmm_reserved(uint64_t addr);
/* As rt_mem_lookup, for [a, a + len) inside mapped, accessible VMM memory. */
bool rt_vmm_lookup(uint64_t a, uint64_t len, RtMemRef *ref);
/* The mapping containing addr. */
bool rt_vmm_block(uint64_t addr, uint64_t *base, uint64_t *size, int32_t *device);
void rt_vmm_release(void);

void rt_vmm_forget_after_fork(void);

/* Fault-handler lookup (fault.h): the allocation containing addr. */
#include "fault.h"
bool rt_fault_lookup(uint64_t addr, RtFaultAlloc *out);
/* rt_fault_lookup for mapped VMM memory (signal handler: try-lock only). */
bool rt_vmm_fault_lookup(uint64_t addr, RtFaultAlloc *out);

/* ---- memcpy.c ---- */
/* What a lookup found, for error messages ("device memory", ...). */
const char *rt_mem_side_name(RtMemKind k);

/* ---- peer.c ---- */
/* Called with g_rt.lock held when `device` closes: every pair it belongs to,
 * either way, loses its peer access, in the emulator and here. */
void rt_peer_drop_device(int32_t device);
/* A synchronous copy between memory of two devices (looked up in d and s) runs
 * on the current device, which needs peer access to each side that is not its
 * own: ACL_SUCCESS, or records 107000 (107002 without a current context). */
aclError rt_peer_check_copy(const char *api, const void *dst, const RtMemRef *d,
                            const void *src, const RtMemRef *s);

/* ---- mempool.c ---- */
/* Called after a successful synchronise of stream s, or of every stream of user
 * device `device` (s NULL): frees queued on the synchronised streams become
 * reusable by any stream, and the device's memory pools give idle memory back
 * down to their release threshold.  One atomic load when no pool exists. */
void rt_mempool_synced(RtStream *s, int32_t device);
/* Stream `waiter` waits for an event this process recorded on stream `rec_sid`
 * as its task `rec_seq`: blocks freed there up to that task become the
 * waiter's to reuse at once (REUSE_FOLLOW_EVENT_DEPENDENCIES). */
void rt_mempool_event_waited(RtStream *waiter, uint32_t rec_sid, uint32_t rec_seq);

/* ---- memory.c: the pinned host buffer table, for hostreg.c and managed.c ---- */
/* Records [addr, addr + size) as pinned memory: rt_mem_lookup says RT_MEM_PINNED. */
void rt_hostbuf_insert(uint64_t addr, uint64_t size);
/* Forgets the entry starting at addr (its mapping stays); false if none. */
bool rt_hostbuf_remove(uint64_t addr);
/* The pinned buffer overlapping [addr, addr + len): 1 and its start and size
 * if it holds the whole range, -1 (start and size too) if it holds only part
 * of it, 0 if no buffer overlaps. */
int rt_hostbuf_find(uint64_t addr, uint64_t len, uint64_t *base, uint64_t *size);

/* ---- hostreg.c ---- */
/* aclrtMallocHost[WithCfg] succeeded at p: remembers whether cfg asked for vaFlag 1. */
void rt_hostreg_note_alloc(void *p, const aclrtMallocConfig *cfg);
/* Before aclrtFreeHost frees hostPtr: refuses managed and registered pageable
 * memory (records and returns 107000), else drops the buffer's registrations. */
aclError rt_hostreg_before_free_host(const char *api, void *hostPtr);
/* aclFinalize: every registration undone, every managed allocation freed. */
void rt_hostreg_release(void);

/* ---- managed.c ---- */
/* Whether [addr, addr + len) meets the reserved UVM range (no lock needed). */
bool rt_managed_overlaps(uint64_t addr, uint64_t len);
/* aclrtFree of a pointer in the UVM range. */
aclError rt_managed_free(const char *api, void *ptr);
/* aclrtPointerGetAttributes of pinned memory: marks managed memory (A2). */
void rt_managed_attributes(const void *ptr, aclrtPtrAttributes *attributes);
void rt_managed_release(void);

#endif
