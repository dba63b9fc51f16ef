/*
 * proto.h - the wire protocol between libascendcl.so (runtime/) and npu-emu (emu/).
 *
 * Concepts:
 *  - Bootstrap: the client connects to the emulator's Unix stream socket and sends
 *    an EmuHello.  The emulator identifies the peer with SO_PEERCRED (never a pid
 *    the client claims), refuses other users, and answers with an EmuWelcome that
 *    carries the channel memfd (SCM_RIGHTS).  After that the socket only carries
 *    EmuFdMsg messages (emulator -> client, one memory-object fd each) and its
 *    closure, which tells the emulator the client is gone.
 *  - Work: the channel is a shared memory file: EmuChanHeader, EMU_CHAN_SLOTS
 *    request slots and EMU_CHAN_STREAMS stream completion words.  A client thread
 *    owns a slot while its call is in flight: it writes the request, marks the slot
 *    POSTED, sets its bit in `posted`, bumps `doorbell` and wakes the emulator's
 *    session thread if it sleeps.  The emulator copies the request out of shared
 *    memory before looking at it (the client may scribble on it at any time),
 *    writes the response, sends an fd first if the response carries one, then marks
 *    the slot DONE and wakes the client.
 *  - Streams: each stream owns one EmuStreamState; the device's stream engine
 *    advances `done` after every task, so synchronising a stream is a futex wait in
 *    the client, with no request to the emulator.
 *  - Every struct is fixed-size with explicit padding; the same layout is used by
 *    both sides of one build, and `version` guards against mixing builds.
 */
#ifndef NPUEMU_PROTO_H
#define NPUEMU_PROTO_H

#include <stdint.h>

#define EMU_PROTO_MAGIC   0x4e505545u /* "NPUE" */
#define EMU_PROTO_VERSION 6u

/* Device virtual-address window: real device pointers look like 0x12c041200000. */
#define EMU_VA_WINDOW_LO    0x100000000000ull /* 16 TiB */
#define EMU_VA_WINDOW_HI    0x180000000000ull /* 24 TiB */
#define EMU_VA_DEVICE_SPAN  0x8000000000ull   /* 512 GiB of VA per device */
/* Each device's aclrtMalloc heap starts 4 GiB into its span and is 256 GiB long.
 * The gap keeps device 0 clear of AddressSanitizer's shadow, which on x86-64
 * reaches just past 16 TiB, so sanitizer builds can reserve the window too. */
#define EMU_VA_HEAP_OFFSET  0x100000000ull
#define EMU_VA_MALLOC_SPAN  0x4000000000ull
#define EMU_VA_RESERVE_LO   (EMU_VA_WINDOW_LO + EMU_VA_HEAP_OFFSET)
#define EMU_MAX_DEVICES     16                /* per server */
#define EMU_MAX_SERVERS     8

#define EMU_CHAN_SLOTS        64
#define EMU_SLOT_PAYLOAD      1536
#define EMU_CHAN_STREAMS      32768
/* Notify and event handles one session may hold (events without a device event
 * are otherwise unlimited). */
#define EMU_SESSION_SYNC_MAX  (1u << 18)
#define EMU_STREAMS_PER_DEVICE 1984 /* A2 / A3 limit per device and process */

typedef enum EmuSlotState {
    EMU_SLOT_FREE = 0,
    EMU_SLOT_POSTED = 1,
    EMU_SLOT_DONE = 2,
} EmuSlotState;

typedef enum EmuCmd {
    EMU_CMD_NOP = 1,        /* -: one round trip, used to measure the floor */
    EMU_CMD_DEVICE_OPEN,    /* EmuReqDevice */
    EMU_CMD_DEVICE_CLOSE,   /* EmuReqDevice: releases the session's resources on it */
    EMU_CMD_DEVICE_SYNC,    /* EmuReqDevice -> EmuRespDeviceSync */
    EMU_CMD_MEM_ALLOC,      /* EmuReqMemAlloc -> EmuRespMemAlloc (+fd if new_seg) */
    EMU_CMD_MEM_FREE,       /* EmuReqMemFree -> EmuRespMemFree */
    EMU_CMD_MEM_INFO,       /* EmuReqMemInfo -> EmuRespMemInfo */
    EMU_CMD_HOST_ALLOC,     /* EmuReqHostAlloc -> - (+fd) */
    EMU_CMD_HOST_FREE,      /* EmuReqHostFree */
    EMU_CMD_STREAM_CREATE,  /* EmuReqStreamCreate -> EmuRespStreamCreate */
    EMU_CMD_STREAM_DESTROY, /* EmuReqStreamDestroy */
    EMU_CMD_STREAM_SUBMIT,  /* EmuReqSubmit -> EmuRespSubmit */
    EMU_CMD_HOST_ALIAS,     /* EmuReqHostAlias: a second client address for a pinned buffer */
    EMU_CMD_PHYS_ALLOC,     /* EmuReqPhysAlloc -> EmuRespPhys */
    EMU_CMD_PHYS_FREE,      /* EmuReqPhys: drops one reference of the handle */
    EMU_CMD_VMM_RESERVE,    /* EmuReqReserve -> EmuRespReserve */
    EMU_CMD_VMM_RELEASE,    /* EmuReqVa */
    EMU_CMD_VMM_MAP,        /* EmuReqMap -> EmuRespMap (+fd) */
    EMU_CMD_VMM_UNMAP,      /* EmuReqVa -> EmuRespPhys (the handle it was mapped to) */
    EMU_CMD_VMM_ACCESS,     /* EmuReqAccess */
    EMU_CMD_VMM_RETAIN,     /* EmuReqVa -> EmuRespPhys (one more reference) */
    EMU_CMD_MEM_USAGE,      /* EmuReqDevice -> EmuRespMemUsage */
    EMU_CMD_PEER_ACCESS,    /* EmuReqPeer: streams of device reach peer's memory, or not */
    EMU_CMD_IPC_EXPORT,     /* EmuReqIpcExport -> EmuRespToken */
    EMU_CMD_SHARE_EXPORT,   /* EmuReqShareExport -> EmuRespToken */
    EMU_CMD_SHARE_ALLOW,    /* EmuReqShareAllow: whitelist (server, pid) pairs */
    EMU_CMD_SHARE_ATTR,     /* EmuReqShareToken: an IPC export's link attribute */
    EMU_CMD_SHARE_WITHDRAW, /* EmuReqShareToken: the exporter closes an export */
    EMU_CMD_IPC_IMPORT,     /* EmuReqIpcImport -> EmuRespIpcImport (+fd) */
    EMU_CMD_IPC_CLOSE,      /* EmuReqVa: the importer closes what it imported at va */
    EMU_CMD_SHARE_IMPORT,   /* EmuReqShareImport -> EmuRespPhys */
    EMU_CMD_NOTIFY_CREATE,  /* EmuReqDevice -> EmuRespNotify */
    EMU_CMD_NOTIFY_DESTROY, /* EmuReqNotify: this process's reference goes */
    EMU_CMD_NOTIFY_RESET,   /* EmuReqNotify */
    EMU_CMD_NOTIFY_EXPORT,  /* EmuReqNotify{pid_check in `flags`} -> EmuRespToken */
    EMU_CMD_NOTIFY_IMPORT,  /* EmuReqShareImport (name.kind EMU_SHARE_NOTIFY) -> EmuRespNotify */
    EMU_CMD_EVENT_CREATE,   /* EmuReqDevice -> EmuRespNotify (handle, id, device) */
    EMU_CMD_EVENT_DESTROY,  /* EmuReqNotify (an event handle) */
    EMU_CMD_EVENT_QUERY,    /* EmuReqEventQuery -> EmuRespEvent */
    EMU_CMD_EVENT_EXPORT,   /* EmuReqNotify -> EmuRespToken (no whitelist: IPC events) */
    EMU_CMD_EVENT_IMPORT,   /* EmuReqShareImport (name.kind EMU_SHARE_EVENT) -> EmuRespNotify */
    EMU_CMD_EVENT_AVAIL,    /* EmuReqDevice -> EmuRespEvent (queued: events still free) */
    EMU_CMD_STREAM_CTL,     /* EmuReqStreamCtl */
    EMU_CMD_COUNT
} EmuCmd;

/* ---- socket messages ---- */

typedef struct EmuHello {
    uint32_t magic;
    uint32_t version;
    int32_t server;     /* SuperPoD server index the client belongs to */
    uint32_t flags;
} EmuHello;

typedef struct EmuWelcome {
    uint32_t magic;
    uint32_t version;
    int32_t status;     /* ACL_SUCCESS or the reason the session was refused */
    uint32_t session_id;
    char profile[16];
    char soc_name[32];
    uint32_t ndevices;  /* devices of the client's server */
    uint32_t nservers;
    int32_t server;
    uint32_t client_pid; /* as the kernel reported it (SO_PEERCRED) */
    uint64_t hbm_bytes; /* per device */
    uint64_t chan_size;
} EmuWelcome;

typedef struct EmuFdMsg {
    uint32_t magic;
    uint32_t tag;
} EmuFdMsg;

/* ---- channel ---- */

typedef struct EmuChanHeader {
    uint32_t magic;
    uint32_t version;
    uint32_t doorbell;        /* futex: bumped by a client after posting */
    uint32_t server_sleeping; /* 1 while the session thread waits on doorbell */
    uint64_t posted;          /* bit i set: slot i was posted */
    uint32_t nslots;
    uint32_t nstreams;
    uint64_t slots_off;
    uint64_t streams_off;
    uint32_t dead;            /* set by the emulator when the session ends */
    uint32_t cb_doorbell;     /* futex: bumped when a stream waits for a host callback */
} EmuChanHeader;

typedef struct EmuSlot {
    uint32_t state;           /* EmuSlotState; futex word */
    uint32_t client_waiting;  /* 1 while the client sleeps on state */
    uint32_t cmd;
    uint32_t req_len;
    int32_t status;           /* aclError of the call */
    uint32_t fd_tag;          /* nonzero: an EmuFdMsg with this tag precedes DONE */
    uint32_t resp_len;
    uint32_t pad;
    uint8_t req[EMU_SLOT_PAYLOAD];
    uint8_t resp[EMU_SLOT_PAYLOAD];
} EmuSlot;

typedef struct EmuStreamState {
    uint32_t done;            /* futex: sequence number of the last finished task */
    uint32_t waiters;         /* client threads sleeping on done */
    int32_t error;            /* first task error since the last synchronise */
    uint32_t error_seq;       /* sequence number of the failed task */
    int32_t stopped;          /* a failure stopped the stream (ACL_STOP_ON_FAILURE): its
                               * error; the stream takes no new task */
    uint32_t cb_seq;          /* a HOST_FUNC task waiting for the client (0: none) */
    uint32_t cb_done;         /* futex: the client stores cb_seq here once it ran it */
    uint32_t pad;
} EmuStreamState;

#define EMU_CHAN_SLOTS_OFF   4096ull
#define EMU_CHAN_STREAMS_OFF (EMU_CHAN_SLOTS_OFF + EMU_CHAN_SLOTS * sizeof(EmuSlot))
#define EMU_CHAN_SIZE \
    ((EMU_CHAN_STREAMS_OFF + EMU_CHAN_STREAMS * sizeof(EmuStreamState) + 4095) & ~4095ull)

/* ---- requests and responses ---- */

typedef struct EmuReqDevice {
    int32_t device;           /* physical device index within the server */
    uint32_t force;
} EmuReqDevice;

typedef struct EmuRespDeviceSync {
    uint32_t nstreams;        /* streams of this session on the device */
    uint32_t pad;
} EmuRespDeviceSync;

typedef struct EmuReqMemAlloc {
    int32_t device;
    uint32_t policy;          /* aclrtMemMallocPolicy */
    uint64_t size;            /* bytes the caller asked for, already checked > 0 */
    uint32_t flags;           /* EMU_ALLOC_* */
    uint32_t pad;
} EmuReqMemAlloc;

#define EMU_ALLOC_ALIGN32_ONLY 1u /* aclrtMallocAlign32: no extra 32 bytes */

typedef struct EmuRespMemAlloc {
    uint64_t va;
    uint64_t size;            /* bytes reserved for this allocation */
    uint64_t seg_va;          /* the memory object (segment) the slice lives in */
    uint64_t seg_size;
    uint32_t new_seg;         /* 1: the segment's fd follows; map it */
    uint32_t page_size;
} EmuRespMemAlloc;

typedef struct EmuReqMemFree {
    uint64_t va;
} EmuReqMemFree;

typedef struct EmuRespMemFree {
    int32_t device;
    uint32_t seg_released;    /* 1: the segment is gone; unmap it */
    uint64_t seg_va;
    uint64_t seg_size;
    uint64_t size;
} EmuRespMemFree;

/* ---- sharing: IPC keys and shareable handles (devmodel/share.h) ---- */

#define EMU_SHARE_IPC      1u    /* ShareKind values */
#define EMU_SHARE_DEFAULT  2u
#define EMU_SHARE_FABRIC   3u
#define EMU_SHARE_NOTIFY   4u
#define EMU_SHARE_EVENT    5u
#define EMU_TOKEN_LEN      32
#define EMU_ALLOW_MAX      64    /* pids per EMU_CMD_SHARE_ALLOW */
#define EMU_ANY_SERVER     (-1)

typedef struct EmuReqIpcExport {
    uint64_t va;
    uint64_t size;
    uint32_t pid_check;
    uint32_t pad;
} EmuReqIpcExport;

typedef struct EmuReqShareExport {
    uint64_t handle;          /* the exporter's physical handle */
    uint32_t kind;            /* EMU_SHARE_DEFAULT / EMU_SHARE_FABRIC */
    uint32_t pid_check;
} EmuReqShareExport;

typedef struct EmuRespToken {
    uint8_t token[EMU_TOKEN_LEN];
    int32_t server;           /* the exporter's */
    uint32_t pad;
} EmuRespToken;

/* An export named by kind and the first `len` bytes of its token (8 for a
 * DEFAULT handle, 32 otherwise). */
typedef struct EmuReqShareToken {
    uint32_t kind;
    uint32_t len;
    uint8_t token[EMU_TOKEN_LEN];
    uint64_t value;           /* SHARE_ATTR: the attribute */
} EmuReqShareToken;

typedef struct EmuReqShareAllow {
    EmuReqShareToken name;
    uint32_t n;
    uint32_t pad;
    int32_t servers[EMU_ALLOW_MAX];   /* EMU_ANY_SERVER matches every server */
    int32_t pids[EMU_ALLOW_MAX];
} EmuReqShareAllow;

typedef struct EmuReqIpcImport {
    uint8_t token[EMU_TOKEN_LEN];
    int32_t device;           /* the importer's current device */
    uint32_t peer;            /* ACL_RT_IPC_MEM_IMPORT_FLAG_ENABLE_PEER_ACCESS */
} EmuReqIpcImport;

typedef struct EmuRespIpcImport {
    uint64_t va;
    uint64_t size;
    uint64_t obj_off;         /* where the range starts in the memory object (fd) */
    int32_t device;           /* the device whose memory it is */
    uint32_t page_size;
} EmuRespIpcImport;

typedef struct EmuReqShareImport {
    EmuReqShareToken name;
    int32_t device;           /* the device whose table its mappings enter */
    uint32_t pad;
} EmuReqShareImport;

/* ---- notifies (devmodel/notify.h) ---- */

typedef struct EmuReqNotify {
    uint64_t handle;          /* the session's name for the notify */
    uint32_t flags;
    uint32_t pad;
} EmuReqNotify;

typedef struct EmuRespNotify {
    uint64_t handle;
    uint32_t id;              /* aclrtGetNotifyId: the device's notify number */
    int32_t device;           /* the device it belongs to */
} EmuRespNotify;

/* EmuReqEventCreate.resource: when the event takes one of the device's events */
#define EMU_EVENT_RES_NOW       0u  /* at creation (no event left: 207007) */
#define EMU_EVENT_RES_AT_RECORD 1u  /* at its first record (none left: that submit 207007) */
#define EMU_EVENT_RES_NONE      2u  /* never counted (only EVENT_QUERY with take_id takes one) */

typedef struct EmuReqEventCreate {
    int32_t device;
    uint32_t resource;        /* EMU_EVENT_RES_* */
} EmuReqEventCreate;

typedef struct EmuReqEventQuery {
    uint64_t handle;
    uint64_t gen;             /* a record number to ask about (0: none) */
    uint32_t take_id;         /* 1: take a device event if it holds none (its id) */
    uint32_t pad;
} EmuReqEventQuery;

typedef struct EmuRespEvent {
    uint64_t queued;          /* records queued since the last reset */
    uint64_t ran;             /* the highest of them that ran */
    uint64_t ts_us;           /* device clock when it ran (microseconds since boot) */
    uint64_t gen_done;        /* 1: record `gen` of the request ran (or was dropped) */
    uint32_t id;              /* its device event, or UINT32_MAX while it holds none */
    uint32_t pad;
} EmuRespEvent;

/* EmuReqStreamCtl.op */
#define EMU_STREAM_SET_MODE 1u  /* value bit 0: 1 stop on failure, 0 continue; bits 32-63:
                                 * a group (the context): in stop mode the first failure
                                 * of any stream of the group stops them all */
#define EMU_STREAM_ABORT    2u  /* drop the queued tasks, interrupt a waiting one */
#define EMU_STREAM_STOP     3u  /* interrupt the task running now (if it waits) */

typedef struct EmuReqStreamCtl {
    uint32_t stream;
    uint32_t op;
    uint64_t value;
} EmuReqStreamCtl;

typedef struct EmuReqPeer {
    int32_t device;
    int32_t peer;
    uint32_t enable;
    uint32_t pad;
} EmuReqPeer;

/* HBM of a device by user, every client together: now and at peak. */
typedef struct EmuRespMemUsage {
    uint64_t malloc_bytes, malloc_peak;   /* aclrtMalloc segments */
    uint64_t phys_bytes, phys_peak;       /* aclrtMallocPhysical handles */
} EmuRespMemUsage;

typedef struct EmuReqMemInfo {
    int32_t device;
    uint32_t attr;            /* aclrtMemAttr */
} EmuReqMemInfo;

typedef struct EmuRespMemInfo {
    uint64_t free;
    uint64_t total;
} EmuRespMemInfo;

typedef struct EmuReqHostAlloc {
    uint64_t size;            /* page-rounded */
    uint64_t client_addr;     /* where the client will map it */
} EmuReqHostAlloc;

typedef struct EmuReqHostFree {
    uint64_t client_addr;
} EmuReqHostFree;

/* The pinned buffer at `client_addr` is also mapped at `alias` (the same
 * memory object, e.g. the device-side address of registered host memory);
 * EMU_CMD_HOST_FREE of `alias` drops the alias only. */
typedef struct EmuReqHostAlias {
    uint64_t client_addr;
    uint64_t alias;
} EmuReqHostAlias;

typedef struct EmuReqStreamCreate {
    int32_t device;
    uint32_t priority;
    uint32_t flags;
    uint32_t pad;
} EmuReqStreamCreate;

typedef struct EmuRespStreamCreate {
    uint32_t stream;          /* index of its EmuStreamState in the channel */
    uint32_t pad;
} EmuRespStreamCreate;

typedef struct EmuReqStreamDestroy {
    uint32_t stream;
    uint32_t force;           /* 1: drop queued tasks instead of running them */
} EmuReqStreamDestroy;

/* ---- virtual memory (aclrtMallocPhysical, aclrtReserveMemAddress, aclrtMapMem...) ---- */

/* The VMM part of each device's span: after its malloc heap, to the span's end.
 * Reservations of every process come from these parts only, so they never
 * meet an aclrtMalloc segment. */
#define EMU_VA_VMM_OFFSET  (EMU_VA_HEAP_OFFSET + EMU_VA_MALLOC_SPAN)

typedef struct EmuReqPhysAlloc {
    int32_t device;
    uint32_t mem_attr;        /* aclrtMemAttr, for the record */
    uint64_t size;            /* a multiple of page_size */
    uint64_t page_size;       /* 4 KiB, 2 MiB or 1 GiB */
} EmuReqPhysAlloc;

typedef struct EmuReqPhys {
    uint64_t handle;
} EmuReqPhys;

typedef struct EmuRespPhys {
    uint64_t handle;          /* unguessable, nonzero */
    uint64_t size;
    int32_t device;
    uint32_t page_size;
} EmuRespPhys;

typedef struct EmuReqReserve {
    uint64_t size;            /* a nonzero multiple of 2 MiB */
    uint64_t align;           /* power of two */
    uint64_t expect;          /* 0, or the address wanted */
} EmuReqReserve;

typedef struct EmuRespReserve {
    uint64_t va;
} EmuRespReserve;

typedef struct EmuReqVa {
    uint64_t va;
} EmuReqVa;

typedef struct EmuReqMap {
    uint64_t va;
    uint64_t size;
    uint64_t handle;
    uint32_t prot;            /* PT_* rights on the handle's device: 3, or 0 (no access) */
    uint32_t pad;
} EmuReqMap;

typedef struct EmuRespMap {
    uint64_t reserve_va;      /* the reservation the mapping lies in */
    int32_t device;
    uint32_t page_size;
} EmuRespMap;

typedef struct EmuReqAccess {
    uint64_t va;              /* exactly one mapping */
    uint64_t size;
    int32_t device;           /* whose page table gets the rights */
    uint32_t prot;            /* PT_* */
} EmuReqAccess;

typedef enum EmuTaskType {
    EMU_TASK_MEMCPY = 1,      /* dst, src: device VAs or pinned host addresses */
    EMU_TASK_MEMSET = 2,      /* dst, size, value (byte) */
    EMU_TASK_MEMSET32 = 3,    /* dst, size bytes, value (32-bit pattern) */
    EMU_TASK_MEMCPY2D = 4,    /* height rows of size bytes; rows dpitch / spitch apart */
    EMU_TASK_NOTIFY_RECORD = 6, /* value: the session's notify handle */
    EMU_TASK_NOTIFY_WAIT = 7, /* value: notify handle; size: timeout in s (0: forever);
                               * waits until recorded, then resets it */
    EMU_TASK_EVENT_RECORD = 8, /* value: event handle (the emulator numbers the record) */
    EMU_TASK_EVENT_WAIT = 9,  /* value: event handle; height: timeout in s (0: forever);
                               * waits for the event's latest record when queued */
    EMU_TASK_EVENT_RESET = 10, /* value: event handle */
    EMU_TASK_VALUE_WRITE = 11, /* the 64-bit word at dst (8-aligned) = value */
    EMU_TASK_VALUE_WAIT = 12, /* until the word at dst compares with value as flags says
                               * (ACL_STREAM_WAIT_VALUE_GEQ / EQ / AND / NOR) */
    EMU_TASK_HOST_FUNC = 13,  /* a host callback: the stream publishes cb_seq, bumps the
                               * channel's cb_doorbell and waits until cb_done == its seq
                               * (the client runs the function it keeps for that seq) */
    EMU_TASK_STREAM_WAIT = 15, /* until stream `value` of the session (not this one) has
                               * run task `size`: a dependency the runtime makes (a
                               * stream-ordered pool's reuse) */
    EMU_TASK_REDUCE = 14,     /* dst = dst op src over size bytes: value the op
                               * (aclrtReduceKind), flags the aclDataType */
    EMU_TASK_MEMCPY_PTR = 5,  /* MEMCPY to dst + doff from src + soff, where a side
                               * flagged INDIRECT holds the 8-byte base address, read
                               * when the task runs; both ends on one device */
} EmuTaskType;

/* EmuTask.flags of EMU_TASK_MEMCPY_PTR. */
#define EMU_TASK_DST_INDIRECT 0x1u
#define EMU_TASK_SRC_INDIRECT 0x2u

typedef struct EmuTask {
    uint32_t type;            /* EmuTaskType */
    uint32_t flags;
    uint64_t dst;
    uint64_t src;
    uint64_t size;            /* bytes; MEMCPY2D: bytes per row */
    uint64_t value;
    uint64_t height;          /* MEMCPY2D */
    uint64_t dpitch;          /* MEMCPY2D */
    uint64_t spitch;          /* MEMCPY2D */
    uint64_t doff;            /* MEMCPY_PTR */
    uint64_t soff;            /* MEMCPY_PTR */
} EmuTask;

/* Bytes a 2D copy touches from its first row: (height - 1) * pitch + width, or 0
 * when width or height is 0.  False if that overflows or width exceeds pitch
 * (rows would overlap). */
static inline int emu_span_2d(uint64_t width, uint64_t height, uint64_t pitch, uint64_t *span)
{
    *span = 0;
    if (width == 0 || height == 0)
        return 1;
    if (width > pitch || (height - 1) > (UINT64_MAX - width) / pitch)
        return 0;
    *span = (height - 1) * pitch + width;
    return 1;
}

/* The device whose span of the window holds addr (a physical id), or -1. */
static inline int emu_va_device(uint64_t addr)
{
    if (addr < EMU_VA_WINDOW_LO || addr >= EMU_VA_WINDOW_HI)
        return -1;
    return (int)((addr - EMU_VA_WINDOW_LO) / EMU_VA_DEVICE_SPAN);
}

typedef struct EmuReqSubmit {
    uint32_t stream;
    uint32_t pad;
    EmuTask task;
} EmuReqSubmit;

typedef struct EmuRespSubmit {
    uint32_t seq;             /* the stream is past this task when done reaches seq */
    uint32_t pad;
    uint64_t gen;             /* EVENT_RECORD: the record's number; EVENT_WAIT: the record
                               * it waits for (0: none); other tasks 0 */
} EmuRespSubmit;

/* The socket npu-emu serves and clients look for when NPU_EMU_SOCKET is unset. */
#define EMU_DEFAULT_SOCKET_FMT "/tmp/npu-emu-%u.sock" /* uid */

/* True when sequence a is at or past b, tolerant of 32-bit wrap-around. */
static inline int emu_seq_reached(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) >= 0;
}

#endif
