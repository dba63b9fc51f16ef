/*
 * test_session.c - request dispatch of emu/session.c, driven in-process.
 *
 * A detached session (no thread, no handshake) is bound to one end of a
 * socketpair; the test plays the client: it fills a channel slot, calls
 * emu_session_handle() and reads the reply in place, and receives the memory
 * object fds that replies announce with fd_tag from the other end.  Stream
 * completion words are found through the channel layout of proto.h.
 *
 * The fuzz test sends a few hundred thousand random requests, half of them
 * garbage and half well-formed with random field values, and checks that
 * every reply is complete and carries a documented status, and that
 * reclaiming the session gives every byte of HBM back.
 */
#define _GNU_SOURCE
#include "emu/session.h"

#include <CUnit/Basic.h>
#include "cu_run.h"
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acl/acl_base.h"
#include "acl/acl_rt.h"
#include "devmodel/event.h"
#include "devmodel/notify.h"
#include "emu/server.h"
#include "npuemu/proto.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)


static EmuServer *srv;
static int ndev;

typedef struct Client {
    Session *s;
    int peer;               /* our end of the session's socket */
    uint32_t fds_received;
} Client;

/* ---- plumbing ---- */

static int open_fd_count(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static EmuServer *make_server(const char *profile, int servers)
{
    EmuOptions opt = {
        .socket_path = "/nonexistent/npu-emu-test.sock",
        .profile = profile,
        .servers = servers,
        .quiet = true,
    };
    GError *err = NULL;
    EmuServer *s = emu_server_new(&opt, &err);
    if (!s) {
        fprintf(stderr, "emu_server_new: %s\n", err ? err->message : "?");
        g_clear_error(&err);
    }
    return s;
}

static bool client_open_on(EmuServer *server, Client *c, pid_t pid, int server_index)
{
    int sv[2];
    memset(c, 0, sizeof(*c));
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return false;
    c->peer = sv[1];
    c->s = emu_session_new_detached(server, sv[0], pid, server_index);
    if (!c->s) {
        close(sv[0]);
        close(sv[1]);
        return false;
    }
    return true;
}

static bool client_open(Client *c, pid_t pid)
{
    return client_open_on(srv, c, pid, 0);
}

static void client_close(Client *c)
{
    if (c->s)
        emu_session_reclaim(c->s); /* closes the session's end */
    c->s = NULL;
    if (c->peer >= 0)
        close(c->peer);
    c->peer = -1;
}

static EmuChanHeader *chan_header(Client *c)
{
    return (EmuChanHeader *)((uint8_t *)emu_session_slot(c->s, 0) - EMU_CHAN_SLOTS_OFF);
}

static EmuStreamState *stream_state(Client *c, uint32_t i)
{
    return (EmuStreamState *)((uint8_t *)chan_header(c) + EMU_CHAN_STREAMS_OFF) + i;
}

/* Receives the EmuFdMsg announced by fd_tag; returns the fd or -1. */
static int recv_fd(Client *c, uint32_t tag)
{
    struct pollfd p = { .fd = c->peer, .events = POLLIN };
    if (poll(&p, 1, 2000) <= 0)
        return -1;
    EmuFdMsg m = { 0 };
    struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf),
    };
    ssize_t n;
    do
        n = recvmsg(c->peer, &msg, MSG_WAITALL | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(m))
        return -1;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    int fd = -1;
    if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
        memcpy(&fd, CMSG_DATA(cm), sizeof(int));
    if (m.magic != EMU_PROTO_MAGIC || m.tag != tag) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    c->fds_received++;
    return fd;
}

static bool socket_empty(Client *c)
{
    struct pollfd p = { .fd = c->peer, .events = POLLIN };
    return poll(&p, 1, 0) == 0;
}

/*
 * Posts a request in slot `slot_index` and serves it.  The reply is copied to
 * resp (resp_cap bytes at most); *fd_out receives the announced fd, if any
 * (closed here when fd_out is NULL).  Returns the status.
 */
static int call_slot(Client *c, unsigned slot_index, uint32_t cmd, const void *req, uint32_t len,
                     void *resp, uint32_t resp_cap, uint32_t *resp_len, int *fd_out)
{
    EmuSlot *slot = emu_session_slot(c->s, slot_index);
    slot->cmd = cmd;
    slot->req_len = len;
    if (req && len)
        memcpy(slot->req, req, len <= EMU_SLOT_PAYLOAD ? len : EMU_SLOT_PAYLOAD);
    slot->status = 0x7eadbeef;
    slot->fd_tag = 0xffffffffu;
    slot->resp_len = 0xffffffffu;
    __atomic_store_n(&slot->state, EMU_SLOT_POSTED, __ATOMIC_SEQ_CST);
    emu_session_handle(c->s, slot);
    CU_ASSERT_EQUAL(__atomic_load_n(&slot->state, __ATOMIC_SEQ_CST), EMU_SLOT_DONE);
    CU_ASSERT_TRUE(slot->resp_len <= EMU_SLOT_PAYLOAD);
    if (slot->status != ACL_SUCCESS)
        CU_ASSERT_EQUAL(slot->resp_len, 0);
    if (resp_len)
        *resp_len = slot->resp_len;
    if (resp && slot->resp_len <= EMU_SLOT_PAYLOAD)
        memcpy(resp, slot->resp, slot->resp_len < resp_cap ? slot->resp_len : resp_cap);
    int fd = -1;
    if (slot->fd_tag) {
        fd = recv_fd(c, slot->fd_tag);
        CU_ASSERT_TRUE(fd >= 0);
    }
    if (fd_out)
        *fd_out = fd;
    else if (fd >= 0)
        close(fd);
    return slot->status;
}

static int call(Client *c, uint32_t cmd, const void *req, uint32_t len, void *resp,
                uint32_t resp_cap, int *fd_out)
{
    return call_slot(c, 0, cmd, req, len, resp, resp_cap, NULL, fd_out);
}

static void hbm_info(EmuServer *server, int sv, int d, uint64_t *free_bytes, uint64_t *total)
{
    device_mem_info(server->devices[sv][d], free_bytes, total);
}

static bool all_hbm_free(EmuServer *server)
{
    bool ok = true;
    for (int sv = 0; sv < server->nservers; sv++)
        for (int d = 0; d < server->profile->devices_per_server; d++) {
            uint64_t f, t;
            hbm_info(server, sv, d, &f, &t);
            if (f != t) {
                fprintf(stderr, "server %d device %d: %llu of %llu bytes free\n", sv, d,
                        (unsigned long long)f, (unsigned long long)t);
                ok = false;
            }
        }
    return ok;
}

static bool wait_done(EmuStreamState *st, uint32_t seq)
{
    for (int i = 0; i < 10000; i++) {
        if (emu_seq_reached(__atomic_load_n(&st->done, __ATOMIC_ACQUIRE), seq))
            return true;
        g_usleep(1000);
    }
    return false;
}

/* Typed wrappers for the directed tests. */
static int mem_alloc(Client *c, int32_t dev, uint64_t size, uint32_t policy, uint32_t flags,
                     EmuRespMemAlloc *out, int *fd_out)
{
    EmuReqMemAlloc q = { .device = dev, .policy = policy, .size = size, .flags = flags };
    memset(out, 0, sizeof(*out));
    return call(c, EMU_CMD_MEM_ALLOC, &q, sizeof(q), out, sizeof(*out), fd_out);
}

static int mem_free(Client *c, uint64_t va, EmuRespMemFree *out)
{
    EmuReqMemFree q = { .va = va };
    EmuRespMemFree dummy;
    return call(c, EMU_CMD_MEM_FREE, &q, sizeof(q), out ? out : &dummy, sizeof(dummy), NULL);
}

static int stream_create(Client *c, int32_t dev, uint32_t *id)
{
    EmuReqStreamCreate q = { .device = dev };
    EmuRespStreamCreate r = { .stream = 0xffffffffu };
    int err = call(c, EMU_CMD_STREAM_CREATE, &q, sizeof(q), &r, sizeof(r), NULL);
    *id = r.stream;
    return err;
}

static int stream_destroy(Client *c, uint32_t id, uint32_t force)
{
    EmuReqStreamDestroy q = { .stream = id, .force = force };
    return call(c, EMU_CMD_STREAM_DESTROY, &q, sizeof(q), NULL, 0, NULL);
}

static int submit(Client *c, uint32_t stream, EmuTask t, uint32_t *seq)
{
    EmuReqSubmit q = { .stream = stream, .task = t };
    EmuRespSubmit r = { 0 };
    int err = call(c, EMU_CMD_STREAM_SUBMIT, &q, sizeof(q), &r, sizeof(r), NULL);
    if (seq)
        *seq = r.seq;
    return err;
}

static int device_cmd(Client *c, uint32_t cmd, int32_t dev, uint32_t force, void *resp,
                      uint32_t resp_cap)
{
    EmuReqDevice q = { .device = dev, .force = force };
    return call(c, cmd, &q, sizeof(q), resp, resp_cap, NULL);
}

static int host_alloc(Client *c, uint64_t addr, uint64_t size, int *fd_out)
{
    EmuReqHostAlloc q = { .size = size, .client_addr = addr };
    return call(c, EMU_CMD_HOST_ALLOC, &q, sizeof(q), NULL, 0, fd_out);
}

static int host_free(Client *c, uint64_t addr)
{
    EmuReqHostFree q = { .client_addr = addr };
    return call(c, EMU_CMD_HOST_FREE, &q, sizeof(q), NULL, 0, NULL);
}

static uint64_t fd_size(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Sharing: the requests of devmodel/share.h's exports and imports. */
static EmuReqShareToken share_name(uint32_t kind, const uint8_t *token)
{
    EmuReqShareToken n = { .kind = kind, .len = kind == EMU_SHARE_DEFAULT ? 8 : EMU_TOKEN_LEN };
    memcpy(n.token, token, EMU_TOKEN_LEN);
    return n;
}

static int req_ipc_export(Client *c, uint64_t va, uint64_t size, uint32_t pid_check,
                          EmuRespToken *out)
{
    EmuReqIpcExport q = { .va = va, .size = size, .pid_check = pid_check };
    memset(out, 0, sizeof(*out));
    return call(c, EMU_CMD_IPC_EXPORT, &q, sizeof(q), out, sizeof(*out), NULL);
}

static int req_share_export(Client *c, uint64_t handle, uint32_t kind, uint32_t pid_check,
                            EmuRespToken *out)
{
    EmuReqShareExport q = { .handle = handle, .kind = kind, .pid_check = pid_check };
    memset(out, 0, sizeof(*out));
    return call(c, EMU_CMD_SHARE_EXPORT, &q, sizeof(q), out, sizeof(*out), NULL);
}

/* Whitelists one (server, pid) pair. */
static int req_share_allow(Client *c, uint32_t kind, const uint8_t *token, int32_t server,
                           int32_t pid)
{
    EmuReqShareAllow q;
    memset(&q, 0, sizeof(q));
    q.name = share_name(kind, token);
    q.n = 1;
    q.servers[0] = server;
    q.pids[0] = pid;
    return call(c, EMU_CMD_SHARE_ALLOW, &q, sizeof(q), NULL, 0, NULL);
}

static int req_share_withdraw(Client *c, uint32_t kind, const uint8_t *token)
{
    EmuReqShareToken q = share_name(kind, token);
    return call(c, EMU_CMD_SHARE_WITHDRAW, &q, sizeof(q), NULL, 0, NULL);
}

static int req_ipc_import(Client *c, const uint8_t *token, int32_t dev, uint32_t peer,
                          EmuRespIpcImport *out, int *fd_out)
{
    EmuReqIpcImport q = { .device = dev, .peer = peer };
    memcpy(q.token, token, EMU_TOKEN_LEN);
    memset(out, 0, sizeof(*out));
    return call(c, EMU_CMD_IPC_IMPORT, &q, sizeof(q), out, sizeof(*out), fd_out);
}

static int req_share_import(Client *c, uint32_t kind, const uint8_t *token, int32_t dev,
                            EmuRespPhys *out)
{
    EmuReqShareImport q = { .name = share_name(kind, token), .device = dev };
    memset(out, 0, sizeof(*out));
    return call(c, EMU_CMD_SHARE_IMPORT, &q, sizeof(q), out, sizeof(*out), NULL);
}

static int req_notify_create(Client *c, int32_t dev, EmuRespNotify *out)
{
    EmuReqDevice q = { .device = dev };
    memset(out, 0, sizeof(*out));
    return call(c, EMU_CMD_NOTIFY_CREATE, &q, sizeof(q), out, sizeof(*out), NULL);
}

static int req_notify_export(Client *c, uint64_t handle, uint32_t pid_check, EmuRespToken *out)
{
    EmuReqNotify q = { .handle = handle, .flags = pid_check };
    memset(out, 0, sizeof(*out));
    return call(c, EMU_CMD_NOTIFY_EXPORT, &q, sizeof(q), out, sizeof(*out), NULL);
}

static int req_event_create(Client *c, int32_t dev, EmuRespNotify *out)
{
    EmuReqEventCreate q = { .device = dev, .resource = EMU_EVENT_RES_NOW };
    memset(out, 0, sizeof(*out));
    return call(c, EMU_CMD_EVENT_CREATE, &q, sizeof(q), out, sizeof(*out), NULL);
}

static int req_event_export(Client *c, uint64_t handle, EmuRespToken *out)
{
    EmuReqNotify q = { .handle = handle };
    memset(out, 0, sizeof(*out));
    return call(c, EMU_CMD_EVENT_EXPORT, &q, sizeof(q), out, sizeof(*out), NULL);
}

static int req_event_import(Client *c, const uint8_t *token, int32_t dev, EmuRespNotify *out)
{
    EmuReqShareImport q = { .name = share_name(EMU_SHARE_EVENT, token), .device = dev };
    memset(out, 0, sizeof(*out));
    return call(c, EMU_CMD_EVENT_IMPORT, &q, sizeof(q), out, sizeof(*out), NULL);
}

static int req_notify_import(Client *c, const uint8_t *token, int32_t dev, uint32_t peer,
                             EmuRespNotify *out)
{
    EmuReqShareImport q = { .name = share_name(EMU_SHARE_NOTIFY, token), .device = dev,
                            .pad = peer };
    memset(out, 0, sizeof(*out));
    return call(c, EMU_CMD_NOTIFY_IMPORT, &q, sizeof(q), out, sizeof(*out), NULL);
}

static int req_phys_alloc(Client *c, int32_t dev, uint64_t size, uint64_t page, EmuRespPhys *out)
{
    EmuReqPhysAlloc q = { .device = dev, .size = size, .page_size = page };
    memset(out, 0, sizeof(*out));
    return call(c, EMU_CMD_PHYS_ALLOC, &q, sizeof(q), out, sizeof(*out), NULL);
}

static int req_peer_access(Client *c, int32_t dev, int32_t peer, uint32_t enable)
{
    EmuReqPeer q = { .device = dev, .peer = peer, .enable = enable };
    return call(c, EMU_CMD_PEER_ACCESS, &q, sizeof(q), NULL, 0, NULL);
}

/* Reserves size bytes and maps handle there; *map_out: the client's view (fd mapped). */
static uint64_t reserve_map(Client *c, uint64_t handle, uint64_t size, uint8_t **map_out)
{
    EmuReqReserve qr = { .size = size, .align = 2 * MiB };
    EmuRespReserve rr = { 0 };
    CU_ASSERT_EQUAL(call(c, EMU_CMD_VMM_RESERVE, &qr, sizeof(qr), &rr, sizeof(rr), NULL),
                    ACL_SUCCESS);
    EmuReqMap qm = { .va = rr.va, .size = size, .handle = handle, .prot = PT_RW };
    EmuRespMap rm = { 0 };
    int fd = -1;
    CU_ASSERT_EQUAL(call(c, EMU_CMD_VMM_MAP, &qm, sizeof(qm), &rm, sizeof(rm), &fd),
                    ACL_SUCCESS);
    *map_out = NULL;
    if (fd >= 0) {
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        *map_out = p == MAP_FAILED ? NULL : p;
    }
    return rr.va;
}

/* ---- suite ---- */

static int suite_init(void)
{
    emu_log_open(NULL, true);
    srv = make_server("a2", 0);
    if (!srv)
        return -1;
    ndev = srv->profile->devices_per_server;
    return 0;
}

static int suite_clean(void)
{
    emu_server_free(srv);
    srv = NULL;
    return 0;
}

/* ---- directed tests ---- */

static void test_channel_layout(void)
{
    Client c;
    CU_ASSERT_TRUE_FATAL(client_open(&c, 1000));
    EmuChanHeader *h = chan_header(&c);
    CU_ASSERT_EQUAL(h->magic, EMU_PROTO_MAGIC);
    CU_ASSERT_EQUAL(h->version, EMU_PROTO_VERSION);
    CU_ASSERT_EQUAL(h->nslots, EMU_CHAN_SLOTS);
    CU_ASSERT_EQUAL(h->nstreams, EMU_CHAN_STREAMS);
    CU_ASSERT_EQUAL(h->slots_off, EMU_CHAN_SLOTS_OFF);
    CU_ASSERT_EQUAL(h->streams_off, EMU_CHAN_STREAMS_OFF);
    CU_ASSERT_EQUAL(h->dead, 0);
    CU_ASSERT_PTR_EQUAL(emu_session_slot(c.s, 1), emu_session_slot(c.s, 0) + 1);
    CU_ASSERT_PTR_NOT_NULL(emu_session_slot(c.s, EMU_CHAN_SLOTS - 1));
    CU_ASSERT_PTR_NULL(emu_session_slot(c.s, EMU_CHAN_SLOTS));
    CU_ASSERT_PTR_NULL(emu_session_slot(c.s, UINT32_MAX));
    /* every slot serves requests */
    for (unsigned i = 0; i < EMU_CHAN_SLOTS; i++)
        CU_ASSERT_EQUAL(call_slot(&c, i, EMU_CMD_NOP, NULL, 0, NULL, 0, NULL, NULL), ACL_SUCCESS);
    client_close(&c);
}

static void test_nop_and_device_cmds(void)
{
    Client c;
    CU_ASSERT_TRUE_FATAL(client_open(&c, 1001));
    uint32_t rl = 99;
    CU_ASSERT_EQUAL(call_slot(&c, 5, EMU_CMD_NOP, NULL, 0, NULL, 0, &rl, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(rl, 0);
    for (int d = 0; d < ndev; d++) {
        CU_ASSERT_EQUAL(device_cmd(&c, EMU_CMD_DEVICE_OPEN, d, 0, NULL, 0), ACL_SUCCESS);
        CU_ASSERT_EQUAL(device_cmd(&c, EMU_CMD_DEVICE_OPEN, d, 0, NULL, 0), ACL_SUCCESS);
        EmuRespDeviceSync r = { .nstreams = 77 };
        CU_ASSERT_EQUAL(device_cmd(&c, EMU_CMD_DEVICE_SYNC, d, 0, &r, sizeof(r)), ACL_SUCCESS);
        CU_ASSERT_EQUAL(r.nstreams, 0);
        CU_ASSERT_EQUAL(device_cmd(&c, EMU_CMD_DEVICE_CLOSE, d, 0, NULL, 0), ACL_SUCCESS);
        /* closing a device that is not open is harmless */
        CU_ASSERT_EQUAL(device_cmd(&c, EMU_CMD_DEVICE_CLOSE, d, 1, NULL, 0), ACL_SUCCESS);
    }
    CU_ASSERT_TRUE(socket_empty(&c));
    client_close(&c);
}

static void test_mem_alloc_free(void)
{
    Client c;
    CU_ASSERT_TRUE_FATAL(client_open(&c, 1002));
    const int dev = 3;
    uint64_t f0, total;
    hbm_info(srv, 0, dev, &f0, &total);
    CU_ASSERT_EQUAL(total, srv->profile->hbm_bytes);

    EmuRespMemAlloc a;
    int fd = -1;
    CU_ASSERT_EQUAL_FATAL(mem_alloc(&c, dev, 3 * MiB, ACL_MEM_MALLOC_HUGE_FIRST, 0, &a, &fd),
                          ACL_SUCCESS);
    CU_ASSERT_EQUAL(a.new_seg, 1);
    CU_ASSERT_EQUAL(a.page_size, HBM_PAGE_HUGE);
    CU_ASSERT_EQUAL(a.seg_size, 4 * MiB);
    CU_ASSERT_EQUAL(a.va, a.seg_va);
    CU_ASSERT_EQUAL(a.va % (2 * MiB), 0);
    CU_ASSERT_TRUE(a.va >= EMU_VA_WINDOW_LO + dev * EMU_VA_DEVICE_SPAN + EMU_VA_HEAP_OFFSET);
    CU_ASSERT_EQUAL((a.va - EMU_VA_WINDOW_LO) / EMU_VA_DEVICE_SPAN, (uint64_t)dev);
    CU_ASSERT_TRUE_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(fd_size(fd), a.seg_size);
    uint64_t f1;
    hbm_info(srv, 0, dev, &f1, &total);
    CU_ASSERT_EQUAL(f0 - f1, a.seg_size);
    /* the client's mapping is the device memory */
    uint8_t *map = mmap(NULL, a.seg_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CU_ASSERT_NOT_EQUAL_FATAL(map, MAP_FAILED);
    map[0] = 0x42;
    map[a.seg_size - 1] = 0x43;
    munmap(map, a.seg_size);
    close(fd);

    /* small allocations: one shared block, a single fd */
    EmuRespMemAlloc s1, s2;
    CU_ASSERT_EQUAL(mem_alloc(&c, dev, 100, ACL_MEM_MALLOC_HUGE_FIRST, 0, &s1, &fd), ACL_SUCCESS);
    CU_ASSERT_EQUAL(s1.new_seg, 1);
    CU_ASSERT_TRUE(fd >= 0);
    if (fd >= 0)
        close(fd);
    CU_ASSERT_EQUAL(mem_alloc(&c, dev, 100, ACL_MEM_MALLOC_HUGE_FIRST, EMU_ALLOC_ALIGN32_ONLY,
                              &s2, &fd), ACL_SUCCESS);
    CU_ASSERT_EQUAL(s2.new_seg, 0);
    CU_ASSERT_EQUAL(fd, -1);
    CU_ASSERT_EQUAL(s2.seg_va, s1.seg_va);
    CU_ASSERT_EQUAL(s1.size, 160);
    CU_ASSERT_EQUAL(s2.size, 128);
    CU_ASSERT_EQUAL(s1.va % 64, 0);
    CU_ASSERT_EQUAL(s2.va % 64, 0);
    CU_ASSERT_TRUE(socket_empty(&c));

    /* bad requests */
    EmuRespMemAlloc x;
    CU_ASSERT_EQUAL(mem_alloc(&c, dev, 0, 0, 0, &x, NULL), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(mem_alloc(&c, dev, 64, 0, 2, &x, NULL), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(mem_alloc(&c, dev, 64, 0, 0x80000001u, &x, NULL), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(mem_alloc(&c, dev, 65 * GiB, 0, 0, &x, NULL), ACL_ERROR_RT_MEMORY_ALLOCATION);
    CU_ASSERT_EQUAL(mem_alloc(&c, dev, UINT64_MAX, 0, 0, &x, NULL), ACL_ERROR_RT_MEMORY_ALLOCATION);

    /* MEM_INFO */
    EmuReqMemInfo qi = { .device = dev, .attr = ACL_HBM_MEM };
    EmuRespMemInfo ri = { 0 };
    CU_ASSERT_EQUAL(call(&c, EMU_CMD_MEM_INFO, &qi, sizeof(qi), &ri, sizeof(ri), NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(ri.total, srv->profile->hbm_bytes);
    CU_ASSERT_EQUAL(ri.free, ri.total - 4 * MiB - DEV_SMALL_BLOCK);

    /* MEM_FREE */
    EmuRespMemFree rf;
    memset(&rf, 0, sizeof(rf));
    CU_ASSERT_EQUAL(mem_free(&c, s1.va, &rf), ACL_SUCCESS);
    CU_ASSERT_EQUAL(rf.device, dev);
    CU_ASSERT_EQUAL(rf.seg_released, 0);
    CU_ASSERT_EQUAL(rf.size, 160);
    CU_ASSERT_EQUAL(mem_free(&c, s1.va, &rf), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(mem_free(&c, s2.va, &rf), ACL_SUCCESS);
    CU_ASSERT_EQUAL(rf.seg_released, 1);
    CU_ASSERT_EQUAL(rf.seg_va, s1.seg_va);
    CU_ASSERT_EQUAL(rf.seg_size, DEV_SMALL_BLOCK);
    CU_ASSERT_EQUAL(mem_free(&c, a.va + 64, &rf), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(mem_free(&c, 0, &rf), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(mem_free(&c, EMU_VA_WINDOW_LO - 4096, &rf), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(mem_free(&c, EMU_VA_WINDOW_HI, &rf), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(mem_free(&c, UINT64_MAX, &rf), ACL_ERROR_RT_PARAM_INVALID);
    /* in the window, but on a device the a2 server does not have */
    CU_ASSERT_EQUAL(mem_free(&c, EMU_VA_WINDOW_LO + 12 * EMU_VA_DEVICE_SPAN + EMU_VA_HEAP_OFFSET,
                             &rf), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(mem_free(&c, a.va, &rf), ACL_SUCCESS);
    CU_ASSERT_EQUAL(rf.seg_released, 1);
    CU_ASSERT_EQUAL(rf.size, 4 * MiB);
    hbm_info(srv, 0, dev, &f1, &total);
    CU_ASSERT_EQUAL(f1, f0);
    client_close(&c);
    CU_ASSERT_TRUE(all_hbm_free(srv));
}

static void test_mem_info_attrs(void)
{
    Client c;
    CU_ASSERT_TRUE_FATAL(client_open(&c, 1003));
    const uint32_t hbm[] = { ACL_HBM_MEM, ACL_HBM_MEM_HUGE, ACL_HBM_MEM_NORMAL,
                             ACL_HBM_MEM_P2P_HUGE, ACL_HBM_MEM_P2P_NORMAL, ACL_HBM_MEM_HUGE1G,
                             ACL_HBM_MEM_P2P_HUGE1G };
    const uint32_t ddr[] = { ACL_DDR_MEM, ACL_DDR_MEM_HUGE, ACL_DDR_MEM_NORMAL,
                             ACL_DDR_MEM_P2P_HUGE, ACL_DDR_MEM_P2P_NORMAL };
    for (unsigned i = 0; i < sizeof(hbm) / sizeof(hbm[0]); i++) {
        EmuReqMemInfo q = { .device = ndev - 1, .attr = hbm[i] };
        EmuRespMemInfo r = { 0 };
        uint32_t rl = 0;
        CU_ASSERT_EQUAL(call_slot(&c, 1, EMU_CMD_MEM_INFO, &q, sizeof(q), &r, sizeof(r), &rl,
                                  NULL), ACL_SUCCESS);
        CU_ASSERT_EQUAL(rl, sizeof(r));
        CU_ASSERT_EQUAL(r.total, srv->profile->hbm_bytes);
        CU_ASSERT_EQUAL(r.free, r.total);
    }
    for (unsigned i = 0; i < sizeof(ddr) / sizeof(ddr[0]); i++) {
        EmuReqMemInfo q = { .device = 0, .attr = ddr[i] };
        EmuRespMemInfo r = { 1, 1 };
        CU_ASSERT_EQUAL(call(&c, EMU_CMD_MEM_INFO, &q, sizeof(q), &r, sizeof(r), NULL),
                        ACL_SUCCESS);
        CU_ASSERT_EQUAL(r.total, 0);
        CU_ASSERT_EQUAL(r.free, 0);
    }
    const uint32_t bad[] = { ACL_HBM_MEM_P2P_HUGE1G + 1, 100, 0x80000000u, UINT32_MAX };
    for (unsigned i = 0; i < 4; i++) {
        EmuReqMemInfo q = { .device = 0, .attr = bad[i] };
        CU_ASSERT_EQUAL(call(&c, EMU_CMD_MEM_INFO, &q, sizeof(q), NULL, 0, NULL),
                        ACL_ERROR_RT_PARAM_INVALID);
    }
    client_close(&c);
}

#define HOST_BASE 0x7e0000000000ull

static void test_host_alloc_free(void)
{
    Client c;
    CU_ASSERT_TRUE_FATAL(client_open(&c, 1004));
    int fd = -1;
    CU_ASSERT_EQUAL(host_alloc(&c, HOST_BASE, 64 * KiB, &fd), ACL_SUCCESS);
    CU_ASSERT_TRUE(fd >= 0);
    CU_ASSERT_EQUAL(fd_size(fd), 64 * KiB);
    if (fd >= 0)
        close(fd);
    /* overlaps: same start, starting inside, ending inside */
    CU_ASSERT_EQUAL(host_alloc(&c, HOST_BASE, 4 * KiB, NULL), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(host_alloc(&c, HOST_BASE + 60 * KiB, 8 * KiB, NULL),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(host_alloc(&c, HOST_BASE - 4 * KiB, 8 * KiB, NULL),
                    ACL_ERROR_RT_PARAM_INVALID);
    /* neighbours on both sides are fine */
    CU_ASSERT_EQUAL(host_alloc(&c, HOST_BASE + 64 * KiB, 4 * KiB, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(host_alloc(&c, HOST_BASE - 4 * KiB, 4 * KiB, NULL), ACL_SUCCESS);
    /* malformed */
    CU_ASSERT_EQUAL(host_alloc(&c, HOST_BASE + MiB, 0, NULL), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(host_alloc(&c, HOST_BASE + MiB, 100, NULL), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(host_alloc(&c, HOST_BASE + MiB + 8, 4 * KiB, NULL),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(host_alloc(&c, HOST_BASE + MiB, (1ull << 40) + 4096, NULL),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(host_alloc(&c, UINT64_MAX - 4095, 8 * KiB, NULL), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(host_alloc(&c, UINT64_MAX - 4095, 4 * KiB, NULL), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(host_alloc(&c, HOST_BASE + MiB, UINT64_MAX & ~4095ull, NULL),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_TRUE(socket_empty(&c));
    /* HOST_FREE takes the exact start */
    CU_ASSERT_EQUAL(host_free(&c, HOST_BASE + 4 * KiB), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(host_free(&c, 0), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(host_free(&c, HOST_BASE), ACL_SUCCESS);
    CU_ASSERT_EQUAL(host_free(&c, HOST_BASE), ACL_ERROR_RT_PARAM_INVALID);
    /* the freed range can be taken again */
    CU_ASSERT_EQUAL(host_alloc(&c, HOST_BASE + 8 * KiB, 8 * KiB, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(host_free(&c, HOST_BASE + 64 * KiB), ACL_SUCCESS);
    /* the others are reclaimed with the session */
    client_close(&c);
}

/*
 * A new pinned buffer that strictly contains an existing one overlaps it too:
 * neither its first nor its last byte lies inside the old buffer, so a check
 * of the two ends alone lets it through.
 */
static void test_host_alloc_rejects_containing_range(void)
{
    Client c;
    CU_ASSERT_TRUE_FATAL(client_open(&c, 1005));
    CU_ASSERT_EQUAL(host_alloc(&c, HOST_BASE + 16 * KiB, 4 * KiB, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(host_alloc(&c, HOST_BASE, 64 * KiB, NULL), ACL_ERROR_RT_PARAM_INVALID);
    client_close(&c);
}

static void test_streams_end_to_end(void)
{
    Client c;
    CU_ASSERT_TRUE_FATAL(client_open(&c, 1006));
    const int dev = 1;
    EmuRespMemAlloc a;
    int dfd = -1, hfd = -1;
    CU_ASSERT_EQUAL_FATAL(mem_alloc(&c, dev, 256 * KiB, ACL_MEM_MALLOC_NORMAL_ONLY, 0, &a, &dfd),
                          ACL_SUCCESS);
    CU_ASSERT_TRUE_FATAL(dfd >= 0);
    uint8_t *dmap = mmap(NULL, a.seg_size, PROT_READ | PROT_WRITE, MAP_SHARED, dfd, 0);
    close(dfd);
    CU_ASSERT_NOT_EQUAL_FATAL(dmap, MAP_FAILED);
    CU_ASSERT_EQUAL_FATAL(host_alloc(&c, HOST_BASE, 64 * KiB, &hfd), ACL_SUCCESS);
    CU_ASSERT_TRUE_FATAL(hfd >= 0);
    uint8_t *hmap = mmap(NULL, 64 * KiB, PROT_READ | PROT_WRITE, MAP_SHARED, hfd, 0);
    close(hfd);
    CU_ASSERT_NOT_EQUAL_FATAL(hmap, MAP_FAILED);
    for (unsigned i = 0; i < 64 * KiB; i++)
        hmap[i] = (uint8_t)(i * 13 + 1);

    uint32_t sid = 0, sid2 = 0;
    CU_ASSERT_EQUAL_FATAL(stream_create(&c, dev, &sid), ACL_SUCCESS);
    CU_ASSERT_TRUE_FATAL(sid < EMU_CHAN_STREAMS);
    CU_ASSERT_EQUAL_FATAL(stream_create(&c, dev, &sid2), ACL_SUCCESS);
    CU_ASSERT_NOT_EQUAL(sid, sid2);
    EmuRespDeviceSync ds = { 0 };
    CU_ASSERT_EQUAL(device_cmd(&c, EMU_CMD_DEVICE_SYNC, dev, 0, &ds, sizeof(ds)), ACL_SUCCESS);
    CU_ASSERT_EQUAL(ds.nstreams, 2);
    CU_ASSERT_EQUAL(device_cmd(&c, EMU_CMD_DEVICE_SYNC, 0, 0, &ds, sizeof(ds)), ACL_SUCCESS);
    CU_ASSERT_EQUAL(ds.nstreams, 0);

    EmuStreamState *st = stream_state(&c, sid);
    uint32_t seq1 = 0, seq2 = 0, seq3 = 0, seq4 = 0;
    /* host -> device, device memset, device -> host, memset32 */
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = EMU_TASK_MEMCPY, .dst = a.va + 4096,
                                               .src = HOST_BASE, .size = 64 * KiB }, &seq1),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = EMU_TASK_MEMSET, .dst = a.va,
                                               .size = 4096, .value = 0xab }, &seq2),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = EMU_TASK_MEMCPY, .dst = HOST_BASE,
                                               .src = a.va, .size = 16 }, &seq3),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = EMU_TASK_MEMSET32,
                                               .dst = a.va + 128 * KiB, .size = 8,
                                               .value = 0x01020304 }, &seq4),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(seq2, seq1 + 1);
    CU_ASSERT_EQUAL(seq4, seq1 + 3);
    CU_ASSERT_TRUE_FATAL(wait_done(st, seq4));
    CU_ASSERT_EQUAL(st->error, ACL_SUCCESS);
    bool ok = true;
    for (unsigned i = 0; i < 4096; i++)
        ok &= dmap[i] == 0xab;
    for (unsigned i = 16; i < 64 * KiB; i++)
        ok &= dmap[4096 + i] == (uint8_t)(i * 13 + 1);
    CU_ASSERT_TRUE(ok);
    for (unsigned i = 0; i < 16; i++)
        CU_ASSERT_EQUAL(hmap[i], 0xab);
    const uint8_t pat[8] = { 4, 3, 2, 1, 4, 3, 2, 1 };
    CU_ASSERT_EQUAL(memcmp(dmap + 128 * KiB, pat, 8), 0);

    /* a 2D copy from pinned host memory, and a copy through a base stored in
     * device memory (read when the task runs) */
    uint32_t seq5 = 0, seq6 = 0;
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = EMU_TASK_MEMCPY2D,
                                               .dst = a.va + 192 * KiB, .src = HOST_BASE + 3,
                                               .size = 100, .height = 50, .dpitch = 128,
                                               .spitch = 1000 }, &seq5),
                    ACL_SUCCESS);
    uint64_t base = a.va + 200 * KiB;
    memcpy(dmap + 160 * KiB, &base, sizeof(base));
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = EMU_TASK_MEMCPY_PTR,
                                               .flags = EMU_TASK_DST_INDIRECT,
                                               .dst = a.va + 160 * KiB, .src = a.va + 4096,
                                               .size = 1000, .doff = 24, .soff = 16 }, &seq6),
                    ACL_SUCCESS);
    CU_ASSERT_TRUE_FATAL(wait_done(st, seq6));
    CU_ASSERT_EQUAL(st->error, ACL_SUCCESS);
    ok = true;
    for (unsigned i = 0; i < 49 * 128 + 100; i++)
        ok &= dmap[192 * KiB + i] == (i % 128 < 100 ? hmap[3 + i / 128 * 1000 + i % 128] : 0);
    CU_ASSERT_TRUE(ok);
    CU_ASSERT_EQUAL(memcmp(dmap + 200 * KiB + 24, dmap + 4096 + 16, 1000), 0);
    CU_ASSERT_NOT_EQUAL(seq5, 0);

    /* a task on memory the session does not own fails on the stream, not the call */
    uint32_t bad = 0;
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = EMU_TASK_MEMSET, .dst = a.va + a.seg_size,
                                               .size = 1 }, &bad), ACL_SUCCESS);
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = EMU_TASK_MEMCPY, .dst = a.va,
                                               .src = HOST_BASE + 60 * KiB, .size = 8 * KiB },
                           NULL), ACL_SUCCESS);
    uint32_t after = 0;
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = EMU_TASK_MEMSET, .dst = a.va,
                                               .size = 1, .value = 0x5c }, &after), ACL_SUCCESS);
    CU_ASSERT_TRUE_FATAL(wait_done(st, after));
    CU_ASSERT_EQUAL(st->error, ACL_ERROR_RT_SYS_DMA);
    CU_ASSERT_EQUAL(st->error_seq, bad);
    CU_ASSERT_EQUAL(dmap[0], 0x5c);
    CU_ASSERT_EQUAL(stream_state(&c, sid2)->error, ACL_SUCCESS);

    /* rejected submissions */
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = EMU_TASK_MEMSET32, .dst = a.va,
                                               .size = 6 }, NULL), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = 0, .dst = a.va, .size = 4 }, NULL),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = 6, .dst = a.va, .size = 4 }, NULL),
                    ACL_ERROR_RT_PARAM_INVALID);
    /* 2D copies whose rows overlap or whose footprint passes 2^64; unknown flags */
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = EMU_TASK_MEMCPY2D, .dst = a.va,
                                               .src = HOST_BASE, .size = 65, .height = 2,
                                               .dpitch = 64, .spitch = 128 }, NULL),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = EMU_TASK_MEMCPY2D, .dst = a.va,
                                               .src = HOST_BASE, .size = 65, .height = 2,
                                               .dpitch = 128, .spitch = 64 }, NULL),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = EMU_TASK_MEMCPY2D, .dst = a.va,
                                               .src = HOST_BASE, .size = 8, .height = 1ull << 40,
                                               .dpitch = 1ull << 30, .spitch = 8 }, NULL),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = EMU_TASK_MEMCPY_PTR, .flags = 4,
                                               .dst = a.va, .src = a.va, .size = 8 }, NULL),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(submit(&c, sid + 100, (EmuTask){ .type = EMU_TASK_MEMSET, .dst = a.va,
                                                     .size = 4 }, NULL),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(submit(&c, EMU_CHAN_STREAMS, (EmuTask){ .type = EMU_TASK_MEMSET }, NULL),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(submit(&c, UINT32_MAX, (EmuTask){ .type = EMU_TASK_MEMSET }, NULL),
                    ACL_ERROR_RT_PARAM_INVALID);

    /* a wait for another live stream of the session, never for itself */
    uint32_t m = 0;
    CU_ASSERT_EQUAL(submit(&c, sid2, (EmuTask){ .type = EMU_TASK_MEMSET, .dst = a.va,
                                                .size = 64, .value = 0x98 }, &m),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = EMU_TASK_STREAM_WAIT, .value = sid2,
                                               .size = m }, NULL),
                    ACL_SUCCESS);
    const EmuTask bad_waits[] = {
        { .type = EMU_TASK_STREAM_WAIT, .value = sid, .size = 0 },
        { .type = EMU_TASK_STREAM_WAIT, .value = sid + 100, .size = 0 },
        { .type = EMU_TASK_STREAM_WAIT, .value = EMU_CHAN_STREAMS, .size = 0 },
        { .type = EMU_TASK_STREAM_WAIT, .value = sid2, .size = 0, .flags = 1 },
        { .type = EMU_TASK_STREAM_WAIT, .value = sid2, .size = 1ull << 32 },
        { .type = EMU_TASK_STREAM_WAIT, .value = sid2, .size = m + 1 },    /* not queued */
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(bad_waits); i++)
        CU_ASSERT_EQUAL(submit(&c, sid, bad_waits[i], NULL), ACL_ERROR_RT_PARAM_INVALID);

    /* destroy runs what is queued and publishes the last seq */
    uint32_t last = 0;
    for (int i = 0; i < 64; i++)
        CU_ASSERT_EQUAL(submit(&c, sid2, (EmuTask){ .type = EMU_TASK_MEMSET,
                                                    .dst = a.va + 192 * KiB + (uint64_t)i * 64,
                                                    .size = 64, .value = 0x99 }, &last),
                        ACL_SUCCESS);
    CU_ASSERT_EQUAL(stream_destroy(&c, sid2, 0), ACL_SUCCESS);
    CU_ASSERT_EQUAL(stream_state(&c, sid2)->done, last);
    ok = true;
    for (unsigned i = 0; i < 64 * 64; i++)
        ok &= dmap[192 * KiB + i] == 0x99;
    CU_ASSERT_TRUE(ok);
    CU_ASSERT_EQUAL(stream_destroy(&c, sid2, 0), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(stream_destroy(&c, EMU_CHAN_STREAMS + 5, 0), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(device_cmd(&c, EMU_CMD_DEVICE_SYNC, dev, 0, &ds, sizeof(ds)), ACL_SUCCESS);
    CU_ASSERT_EQUAL(ds.nstreams, 1);
    /* a new stream in a reused slot continues its sequence and starts without error */
    uint32_t sid3 = 0;
    CU_ASSERT_EQUAL(stream_create(&c, dev, &sid3), ACL_SUCCESS);
    CU_ASSERT_EQUAL(sid3, sid2);
    uint32_t s3 = 0;
    CU_ASSERT_EQUAL(submit(&c, sid3, (EmuTask){ .type = EMU_TASK_MEMSET, .dst = a.va,
                                                .size = 1, .value = 1 }, &s3), ACL_SUCCESS);
    CU_ASSERT_EQUAL(s3, last + 1);
    CU_ASSERT_TRUE(wait_done(stream_state(&c, sid3), s3));
    CU_ASSERT_EQUAL(stream_state(&c, sid3)->error, ACL_SUCCESS);

    CU_ASSERT_EQUAL(stream_destroy(&c, sid, 1), ACL_SUCCESS);
    CU_ASSERT_EQUAL(stream_destroy(&c, sid3, 0), ACL_SUCCESS);
    CU_ASSERT_EQUAL(mem_free(&c, a.va, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(host_free(&c, HOST_BASE), ACL_SUCCESS);
    munmap(dmap, a.seg_size);
    munmap(hmap, 64 * KiB);
    client_close(&c);
    CU_ASSERT_TRUE(all_hbm_free(srv));
}

/*
 * Virtual memory end to end: a physical handle mapped in a reservation is
 * device memory for streams of its device (and of a peer once VMM_ACCESS put
 * it in the peer's table), and the fd of the mapping shows the same bytes.
 */
static void test_vmm_end_to_end(void)
{
    Client c;
    CU_ASSERT_TRUE_FATAL(client_open(&c, 1016));
    /* device 0: the reservation lands in device 0's span, where the peer
     * (device 1) must still be refused until VMM_ACCESS */
    const int dev = 0, peer = 1;
    uint64_t f0, t0;
    hbm_info(srv, 0, dev, &f0, &t0);

    EmuReqPhysAlloc qa = { .device = dev, .size = 4 * MiB, .page_size = 2 * MiB };
    EmuRespPhys ph = { 0 };
    CU_ASSERT_EQUAL_FATAL(call(&c, EMU_CMD_PHYS_ALLOC, &qa, sizeof(qa), &ph, sizeof(ph), NULL),
                          ACL_SUCCESS);
    CU_ASSERT_NOT_EQUAL(ph.handle, 0);
    CU_ASSERT_EQUAL(ph.size, 4 * MiB);
    CU_ASSERT_EQUAL(ph.device, dev);
    CU_ASSERT_EQUAL(ph.page_size, 2 * MiB);
    uint64_t f1, t1;
    hbm_info(srv, 0, dev, &f1, &t1);
    CU_ASSERT_EQUAL(f0 - f1, 4 * MiB);

    EmuReqReserve qr = { .size = 8 * MiB, .align = 2 * MiB };
    EmuRespReserve rr = { 0 };
    CU_ASSERT_EQUAL_FATAL(call(&c, EMU_CMD_VMM_RESERVE, &qr, sizeof(qr), &rr, sizeof(rr), NULL),
                          ACL_SUCCESS);
    CU_ASSERT_EQUAL(rr.va % (2 * MiB), 0);
    CU_ASSERT_TRUE(rr.va >= EMU_VA_WINDOW_LO && rr.va < EMU_VA_WINDOW_HI);
    const uint64_t va = rr.va + 2 * MiB;

    EmuReqMap qm = { .va = va, .size = 4 * MiB, .handle = ph.handle, .prot = PT_RW };
    EmuRespMap rm = { 0 };
    int fd = -1;
    CU_ASSERT_EQUAL_FATAL(call(&c, EMU_CMD_VMM_MAP, &qm, sizeof(qm), &rm, sizeof(rm), &fd),
                          ACL_SUCCESS);
    CU_ASSERT_EQUAL(rm.reserve_va, rr.va);
    CU_ASSERT_EQUAL(rm.device, dev);
    CU_ASSERT_EQUAL(rm.page_size, 2 * MiB);
    CU_ASSERT_TRUE_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(fd_size(fd), 4 * MiB);
    uint8_t *dmap = mmap(NULL, 4 * MiB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    CU_ASSERT_NOT_EQUAL_FATAL(dmap, MAP_FAILED);
    /* the same handle again at an overlapping address: refused, no fd */
    qm.va = va + 2 * MiB;
    CU_ASSERT_EQUAL(call(&c, EMU_CMD_VMM_MAP, &qm, sizeof(qm), &rm, sizeof(rm), NULL),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_TRUE(socket_empty(&c));

    int hfd = -1;
    CU_ASSERT_EQUAL_FATAL(host_alloc(&c, HOST_BASE, 64 * KiB, &hfd), ACL_SUCCESS);
    uint8_t *hmap = mmap(NULL, 64 * KiB, PROT_READ | PROT_WRITE, MAP_SHARED, hfd, 0);
    close(hfd);
    CU_ASSERT_NOT_EQUAL_FATAL(hmap, MAP_FAILED);
    for (unsigned i = 0; i < 64 * KiB; i++)
        hmap[i] = (uint8_t)(i * 7 + 3);

    /* host -> mapping across its 2 MiB page boundary, then mapping -> mapping */
    uint32_t sid = 0, seq = 0;
    CU_ASSERT_EQUAL_FATAL(stream_create(&c, dev, &sid), ACL_SUCCESS);
    const uint64_t at = 2 * MiB - 16 * KiB;
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = EMU_TASK_MEMCPY, .dst = va + at,
                                               .src = HOST_BASE, .size = 64 * KiB }, NULL),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = EMU_TASK_MEMCPY, .dst = va + 3 * MiB,
                                               .src = va + at, .size = 64 * KiB }, &seq),
                    ACL_SUCCESS);
    EmuStreamState *st = stream_state(&c, sid);
    CU_ASSERT_TRUE_FATAL(wait_done(st, seq));
    CU_ASSERT_EQUAL(st->error, ACL_SUCCESS);
    CU_ASSERT_EQUAL(memcmp(dmap + at, hmap, 64 * KiB), 0);
    CU_ASSERT_EQUAL(memcmp(dmap + 3 * MiB, hmap, 64 * KiB), 0);
    /* and back to the host */
    memset(dmap, 0x6b, 4096);
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = EMU_TASK_MEMCPY, .dst = HOST_BASE,
                                               .src = va, .size = 4096 }, &seq), ACL_SUCCESS);
    CU_ASSERT_TRUE_FATAL(wait_done(st, seq));
    CU_ASSERT_EQUAL(st->error, ACL_SUCCESS);
    CU_ASSERT_EQUAL(hmap[0], 0x6b);
    CU_ASSERT_EQUAL(hmap[4095], 0x6b);

    /* a stream of another device reaches it only after VMM_ACCESS */
    uint32_t sid0 = 0;
    CU_ASSERT_EQUAL(emu_va_device(va), dev);
    CU_ASSERT_EQUAL_FATAL(stream_create(&c, peer, &sid0), ACL_SUCCESS);
    EmuStreamState *st0 = stream_state(&c, sid0);
    CU_ASSERT_EQUAL(submit(&c, sid0, (EmuTask){ .type = EMU_TASK_MEMSET, .dst = va,
                                                .size = 16, .value = 0x11 }, &seq), ACL_SUCCESS);
    CU_ASSERT_TRUE_FATAL(wait_done(st0, seq));
    CU_ASSERT_EQUAL(st0->error, ACL_ERROR_RT_SYS_DMA);
    CU_ASSERT_EQUAL(dmap[0], 0x6b);
    EmuReqAccess qx = { .va = va, .size = 4 * MiB, .device = peer, .prot = PT_READ };
    CU_ASSERT_EQUAL(call(&c, EMU_CMD_VMM_ACCESS, &qx, sizeof(qx), NULL, 0, NULL), ACL_SUCCESS);
    /* read-only for the peer: its writes still fail */
    CU_ASSERT_EQUAL(submit(&c, sid0, (EmuTask){ .type = EMU_TASK_MEMSET, .dst = va,
                                                .size = 16, .value = 0x11 }, &seq), ACL_SUCCESS);
    CU_ASSERT_TRUE_FATAL(wait_done(st0, seq));
    CU_ASSERT_EQUAL(dmap[0], 0x6b);
    qx.prot = PT_RW;
    CU_ASSERT_EQUAL(call(&c, EMU_CMD_VMM_ACCESS, &qx, sizeof(qx), NULL, 0, NULL), ACL_SUCCESS);
    qx.size = 2 * MiB;
    CU_ASSERT_EQUAL(call(&c, EMU_CMD_VMM_ACCESS, &qx, sizeof(qx), NULL, 0, NULL),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(submit(&c, sid0, (EmuTask){ .type = EMU_TASK_MEMSET, .dst = va,
                                                .size = 16, .value = 0x22 }, &seq), ACL_SUCCESS);
    CU_ASSERT_TRUE_FATAL(wait_done(st0, seq));
    CU_ASSERT_EQUAL(dmap[0], 0x22);
    CU_ASSERT_EQUAL(dmap[15], 0x22);
    CU_ASSERT_EQUAL(dmap[16], 0x6b);

    /* RETAIN: one more reference, which PHYS_FREE drops */
    EmuReqVa qv = { .va = va };
    EmuRespPhys rp = { 0 };
    CU_ASSERT_EQUAL(call(&c, EMU_CMD_VMM_RETAIN, &qv, sizeof(qv), &rp, sizeof(rp), NULL),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(rp.handle, ph.handle);
    CU_ASSERT_EQUAL(rp.size, 4 * MiB);
    CU_ASSERT_EQUAL(rp.device, dev);
    CU_ASSERT_EQUAL(rp.page_size, 2 * MiB);
    EmuReqPhys qf = { .handle = ph.handle };
    CU_ASSERT_EQUAL(call(&c, EMU_CMD_PHYS_FREE, &qf, sizeof(qf), NULL, 0, NULL), ACL_SUCCESS);

    /* the reservation cannot go while mapped */
    EmuReqVa qrel = { .va = rr.va };
    CU_ASSERT_EQUAL(call(&c, EMU_CMD_VMM_RELEASE, &qrel, sizeof(qrel), NULL, 0, NULL),
                    ACL_ERROR_RT_PARAM_INVALID);
    /* unmap reports the handle; the memory stays while the handle lives */
    memset(&rp, 0, sizeof(rp));
    CU_ASSERT_EQUAL(call(&c, EMU_CMD_VMM_UNMAP, &qv, sizeof(qv), &rp, sizeof(rp), NULL),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(rp.handle, ph.handle);
    CU_ASSERT_EQUAL(rp.size, 4 * MiB);
    CU_ASSERT_EQUAL(call(&c, EMU_CMD_VMM_UNMAP, &qv, sizeof(qv), &rp, sizeof(rp), NULL),
                    ACL_ERROR_RT_PARAM_INVALID);
    hbm_info(srv, 0, dev, &f1, &t1);
    CU_ASSERT_EQUAL(f0 - f1, 4 * MiB);
    /* tasks on the unmapped range fail on the stream */
    CU_ASSERT_EQUAL(submit(&c, sid, (EmuTask){ .type = EMU_TASK_MEMSET, .dst = va + 100,
                                               .size = 16, .value = 0x33 }, &seq), ACL_SUCCESS);
    CU_ASSERT_TRUE_FATAL(wait_done(st, seq));
    CU_ASSERT_EQUAL(st->error, ACL_ERROR_RT_SYS_DMA);
    CU_ASSERT_EQUAL(dmap[100], 0x6b);

    CU_ASSERT_EQUAL(call(&c, EMU_CMD_PHYS_FREE, &qf, sizeof(qf), NULL, 0, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(call(&c, EMU_CMD_PHYS_FREE, &qf, sizeof(qf), NULL, 0, NULL),
                    ACL_ERROR_RT_PARAM_INVALID);
    hbm_info(srv, 0, dev, &f1, &t1);
    CU_ASSERT_EQUAL(f1, f0);
    CU_ASSERT_EQUAL(call(&c, EMU_CMD_VMM_RELEASE, &qrel, sizeof(qrel), NULL, 0, NULL),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(call(&c, EMU_CMD_VMM_RELEASE, &qrel, sizeof(qrel), NULL, 0, NULL),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_TRUE(socket_empty(&c));

    CU_ASSERT_EQUAL(stream_destroy(&c, sid, 0), ACL_SUCCESS);
    CU_ASSERT_EQUAL(stream_destroy(&c, sid0, 0), ACL_SUCCESS);
    CU_ASSERT_EQUAL(host_free(&c, HOST_BASE), ACL_SUCCESS);
    munmap(dmap, 4 * MiB);
    munmap(hmap, 64 * KiB);
    client_close(&c);
    CU_ASSERT_TRUE(all_hbm_free(srv));
}

/* Reclaiming a session gives back the HBM of its handles, mapped or not. */
static void test_vmm_reclaim(void)
{
    Client c;
    CU_ASSERT_TRUE_FATAL(client_open(&c, 1017));
    EmuReqPhysAlloc qa = { .device = 0, .size = 6 * MiB, .page_size = 4 * KiB };
    EmuRespPhys a = { 0 }, b = { 0 };
    CU_ASSERT_EQUAL_FATAL(call(&c, EMU_CMD_PHYS_ALLOC, &qa, sizeof(qa), &a, sizeof(a), NULL),
                          ACL_SUCCESS);
    qa.device = 1;
    qa.page_size = 2 * MiB;
    CU_ASSERT_EQUAL_FATAL(call(&c, EMU_CMD_PHYS_ALLOC, &qa, sizeof(qa), &b, sizeof(b), NULL),
                          ACL_SUCCESS);
    EmuReqReserve qr = { .size = 6 * MiB, .align = 2 * MiB };
    EmuRespReserve rr = { 0 };
    CU_ASSERT_EQUAL_FATAL(call(&c, EMU_CMD_VMM_RESERVE, &qr, sizeof(qr), &rr, sizeof(rr), NULL),
                          ACL_SUCCESS);
    EmuReqMap qm = { .va = rr.va, .size = 6 * MiB, .handle = a.handle, .prot = 0 };
    EmuRespMap rm;
    CU_ASSERT_EQUAL(call(&c, EMU_CMD_VMM_MAP, &qm, sizeof(qm), &rm, sizeof(rm), NULL),
                    ACL_SUCCESS);
    uint64_t f, t;
    hbm_info(srv, 0, 0, &f, &t);
    CU_ASSERT_EQUAL(t - f, 6 * MiB);
    hbm_info(srv, 0, 1, &f, &t);
    CU_ASSERT_EQUAL(t - f, 6 * MiB);
    client_close(&c);
    CU_ASSERT_TRUE(all_hbm_free(srv));
}

typedef struct CmdLen {
    uint32_t cmd;
    uint32_t len;
} CmdLen;

static const CmdLen cmd_lens[] = {
    { EMU_CMD_DEVICE_OPEN, sizeof(EmuReqDevice) },
    { EMU_CMD_DEVICE_CLOSE, sizeof(EmuReqDevice) },
    { EMU_CMD_DEVICE_SYNC, sizeof(EmuReqDevice) },
    { EMU_CMD_MEM_ALLOC, sizeof(EmuReqMemAlloc) },
    { EMU_CMD_MEM_FREE, sizeof(EmuReqMemFree) },
    { EMU_CMD_MEM_INFO, sizeof(EmuReqMemInfo) },
    { EMU_CMD_HOST_ALLOC, sizeof(EmuReqHostAlloc) },
    { EMU_CMD_HOST_FREE, sizeof(EmuReqHostFree) },
    { EMU_CMD_STREAM_CREATE, sizeof(EmuReqStreamCreate) },
    { EMU_CMD_STREAM_DESTROY, sizeof(EmuReqStreamDestroy) },
    { EMU_CMD_STREAM_SUBMIT, sizeof(EmuReqSubmit) },
    { EMU_CMD_HOST_ALIAS, sizeof(EmuReqHostAlias) },
    { EMU_CMD_PHYS_ALLOC, sizeof(EmuReqPhysAlloc) },
    { EMU_CMD_PHYS_FREE, sizeof(EmuReqPhys) },
    { EMU_CMD_VMM_RESERVE, sizeof(EmuReqReserve) },
    { EMU_CMD_VMM_RELEASE, sizeof(EmuReqVa) },
    { EMU_CMD_VMM_MAP, sizeof(EmuReqMap) },
    { EMU_CMD_VMM_UNMAP, sizeof(EmuReqVa) },
    { EMU_CMD_VMM_ACCESS, sizeof(EmuReqAccess) },
    { EMU_CMD_VMM_RETAIN, sizeof(EmuReqVa) },
    { EMU_CMD_MEM_USAGE, sizeof(EmuReqDevice) },
    { EMU_CMD_PEER_ACCESS, sizeof(EmuReqPeer) },
    { EMU_CMD_IPC_EXPORT, sizeof(EmuReqIpcExport) },
    { EMU_CMD_SHARE_EXPORT, sizeof(EmuReqShareExport) },
    { EMU_CMD_SHARE_ALLOW, sizeof(EmuReqShareAllow) },
    { EMU_CMD_SHARE_ATTR, sizeof(EmuReqShareToken) },
    { EMU_CMD_SHARE_WITHDRAW, sizeof(EmuReqShareToken) },
    { EMU_CMD_IPC_IMPORT, sizeof(EmuReqIpcImport) },
    { EMU_CMD_IPC_CLOSE, sizeof(EmuReqVa) },
    { EMU_CMD_SHARE_IMPORT, sizeof(EmuReqShareImport) },
    { EMU_CMD_NOTIFY_CREATE, sizeof(EmuReqDevice) },
    { EMU_CMD_NOTIFY_DESTROY, sizeof(EmuReqNotify) },
    { EMU_CMD_NOTIFY_RESET, sizeof(EmuReqNotify) },
    { EMU_CMD_NOTIFY_EXPORT, sizeof(EmuReqNotify) },
    { EMU_CMD_NOTIFY_IMPORT, sizeof(EmuReqShareImport) },
    { EMU_CMD_EVENT_CREATE, sizeof(EmuReqEventCreate) },
    { EMU_CMD_EVENT_DESTROY, sizeof(EmuReqNotify) },
    { EMU_CMD_EVENT_QUERY, sizeof(EmuReqEventQuery) },
    { EMU_CMD_EVENT_EXPORT, sizeof(EmuReqNotify) },
    { EMU_CMD_EVENT_IMPORT, sizeof(EmuReqShareImport) },
    { EMU_CMD_EVENT_AVAIL, sizeof(EmuReqDevice) },
    { EMU_CMD_STREAM_CTL, sizeof(EmuReqStreamCtl) },
};
#define NCMDLEN (sizeof(cmd_lens) / sizeof(cmd_lens[0]))

/* Events that hold no device event are not limited by the device, but one
 * session cannot hold more than EMU_SESSION_SYNC_MAX handles. */
static void test_event_handle_cap(void)
{
    Client c;
    CU_ASSERT_TRUE_FATAL(client_open(&c, 1011));
    CU_ASSERT_EQUAL_FATAL(device_cmd(&c, EMU_CMD_DEVICE_OPEN, 0, 0, NULL, 0), ACL_SUCCESS);
    EmuReqEventCreate q = { .device = 0, .resource = EMU_EVENT_RES_NONE };
    EmuRespNotify r;
    unsigned made = 0;
    int rc = ACL_SUCCESS;
    while (made <= EMU_SESSION_SYNC_MAX &&
           (rc = call(&c, EMU_CMD_EVENT_CREATE, &q, sizeof(q), &r, sizeof(r), NULL)) ==
               ACL_SUCCESS)
        made++;
    CU_ASSERT_EQUAL(rc, ACL_ERROR_RT_NO_EVENT_RESOURCE);
    CU_ASSERT_EQUAL(made, EMU_SESSION_SYNC_MAX);
    /* none of them took a device event */
    EmuRespEvent avail;
    CU_ASSERT_EQUAL(device_cmd(&c, EMU_CMD_EVENT_AVAIL, 0, 0, &avail, sizeof(avail)), ACL_SUCCESS);
    CU_ASSERT_EQUAL(avail.queued, DEV_EVENT_MAX);
    client_close(&c);
}

static void test_wrong_req_len(void)
{
    Client c;
    CU_ASSERT_TRUE_FATAL(client_open(&c, 1007));
    /* requests that would succeed with the right length */
    EmuRespMemAlloc live;
    CU_ASSERT_EQUAL_FATAL(mem_alloc(&c, 0, 3 * MiB, 0, 0, &live, NULL), ACL_SUCCESS);
    uint32_t sid = 0;
    CU_ASSERT_EQUAL_FATAL(stream_create(&c, 0, &sid), ACL_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(host_alloc(&c, HOST_BASE, 4096, NULL), ACL_SUCCESS);
    uint8_t req[EMU_SLOT_PAYLOAD];
    for (unsigned i = 0; i < NCMDLEN; i++) {
        memset(req, 0, sizeof(req));
        switch (cmd_lens[i].cmd) {
        case EMU_CMD_MEM_ALLOC:
            *(EmuReqMemAlloc *)(void *)req = (EmuReqMemAlloc){ .size = 64 };
            break;
        case EMU_CMD_MEM_FREE:
            *(EmuReqMemFree *)(void *)req = (EmuReqMemFree){ .va = live.va };
            break;
        case EMU_CMD_HOST_ALLOC:
            *(EmuReqHostAlloc *)(void *)req =
                (EmuReqHostAlloc){ .size = 4096, .client_addr = HOST_BASE + MiB };
            break;
        case EMU_CMD_HOST_FREE:
            *(EmuReqHostFree *)(void *)req = (EmuReqHostFree){ .client_addr = HOST_BASE };
            break;
        case EMU_CMD_STREAM_DESTROY:
        case EMU_CMD_STREAM_SUBMIT:
            *(EmuReqSubmit *)(void *)req = (EmuReqSubmit){
                .stream = sid, .task = { .type = EMU_TASK_MEMSET, .dst = live.va, .size = 1 } };
            break;
        default:
            break;
        }
        const uint32_t l = cmd_lens[i].len;
        const uint32_t wrong[] = { 0, 1, l - 1, l + 1, l + 8, 2 * l, EMU_SLOT_PAYLOAD };
        for (unsigned k = 0; k < sizeof(wrong) / sizeof(wrong[0]); k++) {
            uint32_t rl = 1;
            int st = call_slot(&c, 3, cmd_lens[i].cmd, req, wrong[k], NULL, 0, &rl, NULL);
            CU_ASSERT_EQUAL(st, ACL_ERROR_RT_PARAM_INVALID);
            if (st != ACL_ERROR_RT_PARAM_INVALID)
                fprintf(stderr, "cmd %u len %u -> %d\n", cmd_lens[i].cmd, wrong[k], st);
            CU_ASSERT_EQUAL(rl, 0);
        }
    }
    CU_ASSERT_TRUE(socket_empty(&c));
    /* nothing happened: the allocation, the stream and the buffer are still there */
    uint64_t f, t;
    hbm_info(srv, 0, 0, &f, &t);
    CU_ASSERT_EQUAL(t - f, live.seg_size);
    CU_ASSERT_EQUAL(stream_destroy(&c, sid, 0), ACL_SUCCESS);
    CU_ASSERT_EQUAL(host_free(&c, HOST_BASE), ACL_SUCCESS);
    CU_ASSERT_EQUAL(mem_free(&c, live.va, NULL), ACL_SUCCESS);
    client_close(&c);
}

static void test_unknown_cmd_and_oversized(void)
{
    Client c;
    CU_ASSERT_TRUE_FATAL(client_open(&c, 1008));
    const uint32_t cmds[] = { 0, EMU_CMD_COUNT, EMU_CMD_COUNT + 1, 0x100, 0x80000000u, UINT32_MAX };
    uint8_t req[EMU_SLOT_PAYLOAD] = { 0 };
    for (unsigned i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        CU_ASSERT_EQUAL(call(&c, cmds[i], req, 0, NULL, 0, NULL), ACL_ERROR_RT_PARAM_INVALID);
        CU_ASSERT_EQUAL(call(&c, cmds[i], req, 8, NULL, 0, NULL), ACL_ERROR_RT_PARAM_INVALID);
    }
    const uint32_t lens[] = { EMU_SLOT_PAYLOAD + 1, EMU_SLOT_PAYLOAD + 8, 1u << 20, UINT32_MAX };
    for (unsigned k = 0; k < 4; k++) {
        CU_ASSERT_EQUAL(call(&c, EMU_CMD_NOP, req, lens[k], NULL, 0, NULL),
                        ACL_ERROR_RT_PARAM_INVALID);
        for (unsigned i = 0; i < NCMDLEN; i++)
            CU_ASSERT_EQUAL(call(&c, cmd_lens[i].cmd, req, lens[k], NULL, 0, NULL),
                            ACL_ERROR_RT_PARAM_INVALID);
    }
    /* NOP ignores its payload */
    CU_ASSERT_EQUAL(call(&c, EMU_CMD_NOP, req, EMU_SLOT_PAYLOAD, NULL, 0, NULL), ACL_SUCCESS);
    client_close(&c);
}

static void test_bad_device(void)
{
    Client c;
    CU_ASSERT_TRUE_FATAL(client_open(&c, 1009));
    const int32_t bad[] = { -1, ndev, EMU_MAX_DEVICES, EMU_MAX_DEVICES + 1, 1000, INT32_MAX,
                            INT32_MIN };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int32_t d = bad[i];
        CU_ASSERT_EQUAL(device_cmd(&c, EMU_CMD_DEVICE_OPEN, d, 0, NULL, 0),
                        ACL_ERROR_RT_INVALID_DEVICEID);
        CU_ASSERT_EQUAL(device_cmd(&c, EMU_CMD_DEVICE_CLOSE, d, 0, NULL, 0),
                        ACL_ERROR_RT_INVALID_DEVICEID);
        CU_ASSERT_EQUAL(device_cmd(&c, EMU_CMD_DEVICE_SYNC, d, 0, NULL, 0),
                        ACL_ERROR_RT_INVALID_DEVICEID);
        EmuRespMemAlloc a;
        CU_ASSERT_EQUAL(mem_alloc(&c, d, 64, 0, 0, &a, NULL), ACL_ERROR_RT_INVALID_DEVICEID);
        EmuReqMemInfo qi = { .device = d, .attr = ACL_HBM_MEM };
        CU_ASSERT_EQUAL(call(&c, EMU_CMD_MEM_INFO, &qi, sizeof(qi), NULL, 0, NULL),
                        ACL_ERROR_RT_INVALID_DEVICEID);
        uint32_t sid;
        CU_ASSERT_EQUAL(stream_create(&c, d, &sid), ACL_ERROR_RT_INVALID_DEVICEID);
    }
    client_close(&c);
}

/* A3: 16 devices per server; a session allocates on its own server's devices. */
static void test_a3_servers(void)
{
    EmuServer *a3 = make_server("a3", 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a3);
    Client c;
    CU_ASSERT_TRUE_FATAL(client_open_on(a3, &c, 2000, 1));
    EmuRespMemAlloc a;
    CU_ASSERT_EQUAL(mem_alloc(&c, 15, 3 * MiB, 0, 0, &a, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL((a.va - EMU_VA_WINDOW_LO) / EMU_VA_DEVICE_SPAN, 15);
    uint64_t f, t;
    hbm_info(a3, 1, 15, &f, &t);
    CU_ASSERT_EQUAL(t - f, a.seg_size);
    hbm_info(a3, 0, 15, &f, &t);
    CU_ASSERT_EQUAL(f, t);
    CU_ASSERT_EQUAL(mem_alloc(&c, 16, 64, 0, 0, &a, NULL), ACL_ERROR_RT_INVALID_DEVICEID);
    uint32_t sid;
    CU_ASSERT_EQUAL(stream_create(&c, 15, &sid), ACL_SUCCESS);
    client_close(&c);
    CU_ASSERT_TRUE(all_hbm_free(a3));
    emu_server_free(a3);
}

static void test_cross_session(void)
{
    Client a, b;
    CU_ASSERT_TRUE_FATAL(client_open(&a, 1010));
    CU_ASSERT_TRUE_FATAL(client_open(&b, 1011));
    EmuRespMemAlloc big, small;
    CU_ASSERT_EQUAL_FATAL(mem_alloc(&a, 2, 3 * MiB, 0, 0, &big, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(mem_alloc(&a, 2, 100, 0, 0, &small, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(host_alloc(&a, HOST_BASE, 4096, NULL), ACL_SUCCESS);
    uint32_t asid = 0, bsid = 0;
    CU_ASSERT_EQUAL_FATAL(stream_create(&a, 2, &asid), ACL_SUCCESS);

    /* b can neither free a's memory nor its pinned buffers nor its streams */
    CU_ASSERT_EQUAL(mem_free(&b, big.va, NULL), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(mem_free(&b, small.va, NULL), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(host_free(&b, HOST_BASE), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(stream_destroy(&b, asid, 1), ACL_ERROR_RT_PARAM_INVALID);
    /* b's small allocations do not land in a's block */
    EmuRespMemAlloc bs;
    CU_ASSERT_EQUAL(mem_alloc(&b, 2, 100, 0, 0, &bs, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(bs.new_seg, 1);
    CU_ASSERT_NOT_EQUAL(bs.seg_va, small.seg_va);
    /* nor can b's tasks touch a's memory */
    CU_ASSERT_EQUAL_FATAL(stream_create(&b, 2, &bsid), ACL_SUCCESS);
    uint32_t s1 = 0, s2 = 0, s3 = 0;
    CU_ASSERT_EQUAL(submit(&b, bsid, (EmuTask){ .type = EMU_TASK_MEMSET, .dst = big.va,
                                                .size = 16 }, &s1), ACL_SUCCESS);
    CU_ASSERT_EQUAL(submit(&b, bsid, (EmuTask){ .type = EMU_TASK_MEMCPY, .dst = bs.va,
                                                .src = small.va, .size = 16 }, &s2), ACL_SUCCESS);
    CU_ASSERT_EQUAL(submit(&b, bsid, (EmuTask){ .type = EMU_TASK_MEMCPY, .dst = bs.va,
                                                .src = HOST_BASE, .size = 16 }, &s3), ACL_SUCCESS);
    CU_ASSERT_TRUE(wait_done(stream_state(&b, bsid), s3));
    CU_ASSERT_EQUAL(stream_state(&b, bsid)->error, ACL_ERROR_RT_SYS_DMA);
    CU_ASSERT_EQUAL(stream_state(&b, bsid)->error_seq, s1);
    /* closing the device in b leaves a's resources alone */
    CU_ASSERT_EQUAL(device_cmd(&b, EMU_CMD_DEVICE_CLOSE, 2, 0, NULL, 0), ACL_SUCCESS);
    uint64_t f, t;
    hbm_info(srv, 0, 2, &f, &t);
    CU_ASSERT_EQUAL(t - f, big.seg_size + DEV_SMALL_BLOCK);
    /* b's reclaim neither */
    client_close(&b);
    hbm_info(srv, 0, 2, &f, &t);
    CU_ASSERT_EQUAL(t - f, big.seg_size + DEV_SMALL_BLOCK);
    uint32_t sa = 0;
    CU_ASSERT_EQUAL(submit(&a, asid, (EmuTask){ .type = EMU_TASK_MEMCPY, .dst = big.va,
                                                .src = HOST_BASE, .size = 4096 }, &sa),
                    ACL_SUCCESS);
    CU_ASSERT_TRUE(wait_done(stream_state(&a, asid), sa));
    CU_ASSERT_EQUAL(stream_state(&a, asid)->error, ACL_SUCCESS);
    CU_ASSERT_EQUAL(mem_free(&a, big.va, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(mem_free(&a, small.va, NULL), ACL_SUCCESS);
    client_close(&a);
    CU_ASSERT_TRUE(all_hbm_free(srv));
}

static void test_device_close_releases(void)
{
    Client c;
    CU_ASSERT_TRUE_FATAL(client_open(&c, 1012));
    EmuRespMemAlloc a0, a0s, a1;
    CU_ASSERT_EQUAL_FATAL(mem_alloc(&c, 0, 5 * MiB, 0, 0, &a0, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(mem_alloc(&c, 0, 10, 0, 0, &a0s, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(mem_alloc(&c, 1, 5 * MiB, 0, 0, &a1, NULL), ACL_SUCCESS);
    uint32_t s0 = 0, s1 = 0;
    CU_ASSERT_EQUAL_FATAL(stream_create(&c, 0, &s0), ACL_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(stream_create(&c, 1, &s1), ACL_SUCCESS);
    uint32_t last = 0;
    for (int i = 0; i < 32; i++)
        submit(&c, s0, (EmuTask){ .type = EMU_TASK_MEMSET, .dst = a0.va + (uint64_t)i * 4096,
                                  .size = 4096, .value = 1 }, &last);
    CU_ASSERT_EQUAL(device_cmd(&c, EMU_CMD_DEVICE_OPEN, 0, 0, NULL, 0), ACL_SUCCESS);
    CU_ASSERT_EQUAL(device_cmd(&c, EMU_CMD_DEVICE_CLOSE, 0, 1, NULL, 0), ACL_SUCCESS);
    /* the stream is gone, its last seq published */
    CU_ASSERT_EQUAL(stream_state(&c, s0)->done, last);
    EmuRespDeviceSync ds = { .nstreams = 9 };
    CU_ASSERT_EQUAL(device_cmd(&c, EMU_CMD_DEVICE_SYNC, 0, 0, &ds, sizeof(ds)), ACL_SUCCESS);
    CU_ASSERT_EQUAL(ds.nstreams, 0);
    CU_ASSERT_EQUAL(submit(&c, s0, (EmuTask){ .type = EMU_TASK_MEMSET, .dst = a0.va, .size = 1 },
                           NULL), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(mem_free(&c, a0.va, NULL), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(mem_free(&c, a0s.va, NULL), ACL_ERROR_RT_PARAM_INVALID);
    uint64_t f, t;
    hbm_info(srv, 0, 0, &f, &t);
    CU_ASSERT_EQUAL(f, t);
    /* device 1 untouched */
    hbm_info(srv, 0, 1, &f, &t);
    CU_ASSERT_EQUAL(t - f, a1.seg_size);
    CU_ASSERT_EQUAL(device_cmd(&c, EMU_CMD_DEVICE_SYNC, 1, 0, &ds, sizeof(ds)), ACL_SUCCESS);
    CU_ASSERT_EQUAL(ds.nstreams, 1);
    CU_ASSERT_EQUAL(mem_free(&c, a1.va, NULL), ACL_SUCCESS);
    /* the device can be used again */
    CU_ASSERT_EQUAL(mem_alloc(&c, 0, 5 * MiB, 0, 0, &a0, NULL), ACL_SUCCESS);
    client_close(&c);
    CU_ASSERT_TRUE(all_hbm_free(srv));
}

static void test_stream_limit(void)
{
    Client c;
    CU_ASSERT_TRUE_FATAL(client_open(&c, 1013));
    uint32_t sid = 0, first = 0, err_at = 0;
    int err = ACL_SUCCESS;
    for (uint32_t i = 0; i < EMU_STREAMS_PER_DEVICE; i++) {
        err = stream_create(&c, 0, &sid);
        if (err != ACL_SUCCESS) {
            err_at = i;
            break;
        }
        if (i == 0)
            first = sid;
    }
    CU_ASSERT_EQUAL_FATAL(err, ACL_SUCCESS);
    if (err != ACL_SUCCESS)
        fprintf(stderr, "stream %u: %d\n", err_at, err);
    EmuRespDeviceSync ds = { 0 };
    CU_ASSERT_EQUAL(device_cmd(&c, EMU_CMD_DEVICE_SYNC, 0, 0, &ds, sizeof(ds)), ACL_SUCCESS);
    CU_ASSERT_EQUAL(ds.nstreams, EMU_STREAMS_PER_DEVICE);
    CU_ASSERT_EQUAL(stream_create(&c, 0, &sid), ACL_ERROR_RT_NO_STREAM_RESOURCE);
    CU_ASSERT_EQUAL(ACL_ERROR_RT_NO_STREAM_RESOURCE, 207008);
    CU_ASSERT_EQUAL(stream_create(&c, 0, &sid), ACL_ERROR_RT_NO_STREAM_RESOURCE);
    /* the limit is per device */
    uint32_t other = 0;
    CU_ASSERT_EQUAL(stream_create(&c, 1, &other), ACL_SUCCESS);
    /* one destroyed, one more allowed */
    CU_ASSERT_EQUAL(stream_destroy(&c, first, 0), ACL_SUCCESS);
    CU_ASSERT_EQUAL(stream_create(&c, 0, &sid), ACL_SUCCESS);
    CU_ASSERT_EQUAL(sid, first);
    CU_ASSERT_EQUAL(stream_create(&c, 0, &sid), ACL_ERROR_RT_NO_STREAM_RESOURCE);
    /* closing the device releases them all */
    CU_ASSERT_EQUAL(device_cmd(&c, EMU_CMD_DEVICE_CLOSE, 0, 1, NULL, 0), ACL_SUCCESS);
    CU_ASSERT_EQUAL(device_cmd(&c, EMU_CMD_DEVICE_SYNC, 0, 0, &ds, sizeof(ds)), ACL_SUCCESS);
    CU_ASSERT_EQUAL(ds.nstreams, 0);
    CU_ASSERT_EQUAL(stream_create(&c, 0, &sid), ACL_SUCCESS);
    client_close(&c); /* reclaims the rest */
}

/* A client that went away before its fd arrived: no SIGPIPE, no fd_tag. */
static void test_peer_gone(void)
{
    Client c;
    CU_ASSERT_TRUE_FATAL(client_open(&c, 1014));
    close(c.peer);
    c.peer = -1;
    EmuRespMemAlloc a;
    int fd = -1;
    CU_ASSERT_EQUAL(mem_alloc(&c, 0, 3 * MiB, 0, 0, &a, &fd), ACL_SUCCESS);
    CU_ASSERT_EQUAL(emu_session_slot(c.s, 0)->fd_tag, 0);
    CU_ASSERT_EQUAL(fd, -1);
    CU_ASSERT_EQUAL(host_alloc(&c, HOST_BASE, 4096, &fd), ACL_SUCCESS);
    CU_ASSERT_EQUAL(emu_session_slot(c.s, 0)->fd_tag, 0);
    client_close(&c);
    CU_ASSERT_TRUE(all_hbm_free(srv));
}

/*
 * Sharing between two sessions of a server: A exports an IPC key of an
 * aclrtMalloc segment (device 0) and a DEFAULT handle of a physical handle
 * (device 1), both with pid validation; B's imports are refused until A
 * whitelists B's pid; B's stream on device 0 copies through the IPC import at
 * once and through the handle (device 1's memory: PT_PEER) once B has peer
 * access to device 1; A withdraws both and frees the memory, B still reads
 * and writes it; reclaiming both sessions gives all the HBM back.
 */
static void test_share_end_to_end(void)
{
    Client a, b;
    const pid_t apid = 1030, bpid = 1031;
    CU_ASSERT_TRUE_FATAL(client_open(&a, apid));
    CU_ASSERT_TRUE_FATAL(client_open(&b, bpid));
    uint64_t f0, t0, f1, t1;

    /* A: a 4 MiB segment on device 0 and a 2 MiB handle on device 1, both
     * filled through A's own views */
    EmuRespMemAlloc seg;
    int fd = -1;
    CU_ASSERT_EQUAL_FATAL(mem_alloc(&a, 0, 4 * MiB, ACL_MEM_MALLOC_HUGE_ONLY, 0, &seg, &fd),
                          ACL_SUCCESS);
    CU_ASSERT_TRUE_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(seg.va, seg.seg_va);
    uint8_t *amem = mmap(NULL, seg.seg_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    CU_ASSERT_NOT_EQUAL_FATAL(amem, MAP_FAILED);
    for (unsigned i = 0; i < 64 * KiB; i++)
        amem[MiB + i] = (uint8_t)(i * 13 + 1);
    EmuRespPhys ph;
    CU_ASSERT_EQUAL_FATAL(req_phys_alloc(&a, 1, 2 * MiB, 2 * MiB, &ph), ACL_SUCCESS);
    uint8_t *ahandle = NULL;
    uint64_t ava = reserve_map(&a, ph.handle, 2 * MiB, &ahandle);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ahandle);
    for (unsigned i = 0; i < 64 * KiB; i++)
        ahandle[i] = (uint8_t)(i * 7 + 5);

    EmuRespToken key, hdl;
    CU_ASSERT_EQUAL_FATAL(req_ipc_export(&a, seg.va, 4 * MiB, 1, &key), ACL_SUCCESS);
    CU_ASSERT_EQUAL(key.server, 0);
    CU_ASSERT_EQUAL_FATAL(req_share_export(&a, ph.handle, EMU_SHARE_DEFAULT, 1, &hdl),
                          ACL_SUCCESS);
    uint64_t hdl8 = 0;
    memcpy(&hdl8, hdl.token, 8);
    CU_ASSERT_NOT_EQUAL(hdl8, 0);
    /* one DEFAULT export per handle; FABRIC is an A3 feature */
    EmuRespToken again;
    CU_ASSERT_EQUAL(req_share_export(&a, ph.handle, EMU_SHARE_DEFAULT, 0, &again),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(req_share_export(&a, ph.handle, EMU_SHARE_FABRIC, 0, &again),
                    ACL_ERROR_RT_FEATURE_NOT_SUPPORT);
    /* a sub-page slice is not exported */
    EmuRespMemAlloc small;
    CU_ASSERT_EQUAL_FATAL(mem_alloc(&a, 0, 100, 0, 0, &small, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(req_ipc_export(&a, small.va, 100, 0, &again), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_TRUE(socket_empty(&a));

    /* B: refused until whitelisted; only A whitelists; A never imports its own */
    EmuRespIpcImport ri;
    EmuRespPhys rh;
    CU_ASSERT_EQUAL(req_ipc_import(&b, key.token, 0, 0, &ri, NULL), ACL_ERROR_RT_NO_PERMISSION);
    CU_ASSERT_EQUAL(req_share_import(&b, EMU_SHARE_DEFAULT, hdl.token, 0, &rh),
                    ACL_ERROR_RT_NO_PERMISSION);
    CU_ASSERT_EQUAL(req_share_allow(&b, EMU_SHARE_IPC, key.token, 0, bpid),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(req_share_allow(&a, EMU_SHARE_IPC, key.token, 0, bpid + 1), ACL_SUCCESS);
    CU_ASSERT_EQUAL(req_ipc_import(&b, key.token, 0, 0, &ri, NULL), ACL_ERROR_RT_NO_PERMISSION);
    CU_ASSERT_EQUAL(req_share_allow(&a, EMU_SHARE_IPC, key.token, 0, bpid), ACL_SUCCESS);
    CU_ASSERT_EQUAL(req_share_allow(&a, EMU_SHARE_DEFAULT, hdl.token, EMU_ANY_SERVER, bpid),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(req_ipc_import(&a, key.token, 0, 0, &ri, NULL), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(req_share_import(&a, EMU_SHARE_DEFAULT, hdl.token, 0, &rh),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_TRUE(socket_empty(&b));

    /* B imports the key: at a new VA of device 0's heap, with the segment's fd */
    fd = -1;
    CU_ASSERT_EQUAL_FATAL(req_ipc_import(&b, key.token, 0, 0, &ri, &fd), ACL_SUCCESS);
    CU_ASSERT_TRUE_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(fd_size(fd), seg.seg_size);
    close(fd);
    CU_ASSERT_EQUAL(ri.size, 4 * MiB);
    CU_ASSERT_EQUAL(ri.obj_off, 0);
    CU_ASSERT_EQUAL(ri.device, 0);
    CU_ASSERT_EQUAL(ri.page_size, 2 * MiB);
    CU_ASSERT_EQUAL(emu_va_device(ri.va), 0);
    CU_ASSERT_TRUE(ri.va + ri.size <= seg.va || ri.va >= seg.va + seg.seg_size);
    /* and the handle, for device 0: one import of it at a time */
    CU_ASSERT_EQUAL_FATAL(req_share_import(&b, EMU_SHARE_DEFAULT, hdl.token, 0, &rh),
                          ACL_SUCCESS);
    CU_ASSERT_NOT_EQUAL(rh.handle, 0);
    CU_ASSERT_EQUAL(rh.size, 2 * MiB);
    CU_ASSERT_EQUAL(rh.device, 0);
    CU_ASSERT_EQUAL(rh.page_size, 2 * MiB);
    EmuRespPhys rh2;
    CU_ASSERT_EQUAL(req_share_import(&b, EMU_SHARE_DEFAULT, hdl.token, 0, &rh2),
                    ACL_ERROR_RT_PARAM_INVALID);
    /* an imported handle is not exported again */
    CU_ASSERT_EQUAL(req_share_export(&b, rh.handle, EMU_SHARE_DEFAULT, 0, &again),
                    ACL_ERROR_RT_PARAM_INVALID);
    uint8_t *bhandle = NULL;
    uint64_t bva = reserve_map(&b, rh.handle, 2 * MiB, &bhandle);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bhandle);
    CU_ASSERT_EQUAL(bhandle[1], ahandle[1]);

    int hfd = -1;
    CU_ASSERT_EQUAL_FATAL(host_alloc(&b, HOST_BASE, 256 * KiB, &hfd), ACL_SUCCESS);
    uint8_t *host = mmap(NULL, 256 * KiB, PROT_READ | PROT_WRITE, MAP_SHARED, hfd, 0);
    close(hfd);
    CU_ASSERT_NOT_EQUAL_FATAL(host, MAP_FAILED);

    /* B's stream on device 0 reads A's segment through the import, and writes it */
    uint32_t sid = 0, seq = 0;
    CU_ASSERT_EQUAL_FATAL(stream_create(&b, 0, &sid), ACL_SUCCESS);
    EmuStreamState *st = stream_state(&b, sid);
    CU_ASSERT_EQUAL(submit(&b, sid, (EmuTask){ .type = EMU_TASK_MEMCPY, .dst = HOST_BASE,
                                               .src = ri.va + MiB, .size = 64 * KiB }, NULL),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(submit(&b, sid, (EmuTask){ .type = EMU_TASK_MEMSET, .dst = ri.va + 3 * MiB,
                                               .size = 4096, .value = 0x4d }, &seq),
                    ACL_SUCCESS);
    CU_ASSERT_TRUE_FATAL(wait_done(st, seq));
    CU_ASSERT_EQUAL(st->error, ACL_SUCCESS);
    CU_ASSERT_EQUAL(memcmp(host, amem + MiB, 64 * KiB), 0);
    CU_ASSERT_EQUAL(amem[3 * MiB], 0x4d);
    CU_ASSERT_EQUAL(amem[3 * MiB + 4095], 0x4d);

    /* the handle is device 1's memory: device 0 reaches it with peer access only */
    uint32_t sid_np = 0;
    CU_ASSERT_EQUAL_FATAL(stream_create(&b, 0, &sid_np), ACL_SUCCESS);
    EmuStreamState *st_np = stream_state(&b, sid_np);
    CU_ASSERT_EQUAL(submit(&b, sid_np, (EmuTask){ .type = EMU_TASK_MEMCPY,
                                                  .dst = HOST_BASE + 64 * KiB, .src = bva,
                                                  .size = 64 * KiB }, &seq),
                    ACL_SUCCESS);
    CU_ASSERT_TRUE_FATAL(wait_done(st_np, seq));
    CU_ASSERT_EQUAL(st_np->error, ACL_ERROR_RT_SYS_DMA);
    CU_ASSERT_EQUAL(host[64 * KiB], 0);
    CU_ASSERT_EQUAL(req_peer_access(&b, 0, 0, 1), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(req_peer_access(&b, 0, ndev, 1), ACL_ERROR_RT_INVALID_DEVICEID);
    CU_ASSERT_EQUAL(req_peer_access(&b, 0, 1, 1), ACL_SUCCESS);
    CU_ASSERT_EQUAL(submit(&b, sid, (EmuTask){ .type = EMU_TASK_MEMCPY,
                                               .dst = HOST_BASE + 64 * KiB, .src = bva,
                                               .size = 64 * KiB }, &seq),
                    ACL_SUCCESS);
    CU_ASSERT_TRUE_FATAL(wait_done(st, seq));
    CU_ASSERT_EQUAL(st->error, ACL_SUCCESS);
    CU_ASSERT_EQUAL(memcmp(host + 64 * KiB, ahandle, 64 * KiB), 0);

    /* A withdraws both exports and frees the memory: no new imports, but B's
     * imports keep the memory, and B still reads and writes it */
    CU_ASSERT_EQUAL(req_share_withdraw(&b, EMU_SHARE_IPC, key.token), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(req_share_withdraw(&a, EMU_SHARE_IPC, key.token), ACL_SUCCESS);
    CU_ASSERT_EQUAL(req_share_withdraw(&a, EMU_SHARE_DEFAULT, hdl.token), ACL_SUCCESS);
    CU_ASSERT_EQUAL(req_share_withdraw(&a, EMU_SHARE_DEFAULT, hdl.token),
                    ACL_ERROR_RT_PARAM_INVALID);
    EmuRespIpcImport ri2;
    CU_ASSERT_EQUAL(req_ipc_import(&b, key.token, 0, 0, &ri2, NULL), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(req_share_import(&b, EMU_SHARE_DEFAULT, hdl.token, 1, &rh2),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(mem_free(&a, seg.va, NULL), ACL_SUCCESS);
    EmuReqVa qv = { .va = ava };
    EmuRespPhys rp;
    CU_ASSERT_EQUAL(call(&a, EMU_CMD_VMM_UNMAP, &qv, sizeof(qv), &rp, sizeof(rp), NULL),
                    ACL_SUCCESS);
    EmuReqPhys qf = { .handle = ph.handle };
    CU_ASSERT_EQUAL(call(&a, EMU_CMD_PHYS_FREE, &qf, sizeof(qf), NULL, 0, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(mem_free(&a, small.va, NULL), ACL_SUCCESS);
    hbm_info(srv, 0, 0, &f0, &t0);
    hbm_info(srv, 0, 1, &f1, &t1);
    CU_ASSERT_EQUAL(t0 - f0, seg.seg_size);
    CU_ASSERT_EQUAL(t1 - f1, 2 * MiB);
    memset(host, 0, 256 * KiB);
    CU_ASSERT_EQUAL(submit(&b, sid, (EmuTask){ .type = EMU_TASK_MEMSET, .dst = bva + 8,
                                               .size = 8, .value = 0x99 }, NULL),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(submit(&b, sid, (EmuTask){ .type = EMU_TASK_MEMCPY, .dst = HOST_BASE,
                                               .src = ri.va + MiB, .size = 64 * KiB }, NULL),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(submit(&b, sid, (EmuTask){ .type = EMU_TASK_MEMCPY,
                                               .dst = HOST_BASE + 64 * KiB, .src = bva,
                                               .size = 64 * KiB }, &seq),
                    ACL_SUCCESS);
    CU_ASSERT_TRUE_FATAL(wait_done(st, seq));
    CU_ASSERT_EQUAL(st->error, ACL_SUCCESS);
    CU_ASSERT_EQUAL(memcmp(host, amem + MiB, 64 * KiB), 0);     /* A's view: the same pages */
    CU_ASSERT_EQUAL(memcmp(host + 64 * KiB, ahandle, 64 * KiB), 0);
    CU_ASSERT_EQUAL(host[64 * KiB + 8], 0x99);
    CU_ASSERT_EQUAL(ahandle[8], 0x99);
    CU_ASSERT_EQUAL(bhandle[15], 0x99);

    /* reclaim A: nothing changes for B; reclaim B: all the HBM is back */
    client_close(&a);
    hbm_info(srv, 0, 0, &f0, &t0);
    hbm_info(srv, 0, 1, &f1, &t1);
    CU_ASSERT_EQUAL(t0 - f0, seg.seg_size);
    CU_ASSERT_EQUAL(t1 - f1, 2 * MiB);
    CU_ASSERT_EQUAL(submit(&b, sid, (EmuTask){ .type = EMU_TASK_MEMCPY, .dst = HOST_BASE,
                                               .src = ri.va + 3 * MiB, .size = 16 }, &seq),
                    ACL_SUCCESS);
    CU_ASSERT_TRUE_FATAL(wait_done(st, seq));
    CU_ASSERT_EQUAL(st->error, ACL_SUCCESS);
    CU_ASSERT_EQUAL(host[0], 0x4d);
    CU_ASSERT_EQUAL(host[15], 0x4d);
    /* closing the IPC import gives back its VA; B's reclaim does the rest */
    EmuReqVa qc = { .va = ri.va };
    CU_ASSERT_EQUAL(call(&b, EMU_CMD_IPC_CLOSE, &qc, sizeof(qc), NULL, 0, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(call(&b, EMU_CMD_IPC_CLOSE, &qc, sizeof(qc), NULL, 0, NULL),
                    ACL_ERROR_RT_PARAM_INVALID);
    hbm_info(srv, 0, 0, &f0, &t0);
    CU_ASSERT_EQUAL(f0, t0);
    CU_ASSERT_TRUE(socket_empty(&b));
    client_close(&b);
    munmap(amem, seg.seg_size);
    munmap(ahandle, 2 * MiB);
    munmap(bhandle, 2 * MiB);
    munmap(host, 256 * KiB);
    CU_ASSERT_TRUE(all_hbm_free(srv));
    for (int d = 0; d < ndev; d++)
        CU_ASSERT_TRUE(va_range_is_empty(srv->devices[0][d]->heap));
}

/* ---- fuzz ---- */

static uint64_t rng;

static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}

static uint64_t rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

#define FZ_MAX_ALLOCS  256
#define FZ_MAX_HOSTS   64
#define FZ_MAX_STREAMS 48
#define FZ_MAX_PHYS    24
#define FZ_MAX_RES     16
#define FZ_MAX_MAPS    24
#define FZ_MAX_EXPORTS 32
#define FZ_MAX_IPCS    16
#define FZ_PEER_PID    4343    /* the second session, whose exports the fuzz imports */
#define FZ_PEER_IMPORTS 64
#define FZ_MAX_NOTIFIES 32
#define FZ_WILD_WAITS  3       /* waits (1 s) on a notify nobody recorded: they time out */
#define FZ_MAX_EVENTS  32
#define FZ_WILD_EVENT_WAITS 3  /* waits (1 s) on a record of another stream: may time out */

typedef struct FzAlloc {
    uint64_t va, size;
    int dev;
} FzAlloc;

typedef struct FzHost {
    uint64_t addr, size;
} FzHost;

typedef struct FzStream {
    uint32_t id, last;
    int dev;
    bool has_last;
} FzStream;

/* A physical handle with the client references the fuzz holds on it. */
typedef struct FzPhys {
    uint64_t handle, size;
    int dev;
    unsigned refs;
} FzPhys;

typedef struct FzRes {
    uint64_t va, size;
} FzRes;

typedef struct FzMap {
    uint64_t va, size, handle;
    int dev;
} FzMap;

/* An export: the fuzz session's own or the peer session's. */
typedef struct FzExport {
    uint32_t kind;
    uint8_t token[EMU_TOKEN_LEN];
    uint64_t id;            /* IPC: the exported address; DEFAULT: the handle */
} FzExport;

/* A notify the fuzz session created or imported.  `set_on`: the stream whose
 * record of it is the last notify task on it (1 + stream id; 0: none), so a
 * wait queued behind it on that stream passes at once. */
typedef struct FzNotify {
    uint64_t handle;
    int dev;
    bool imported;
    uint32_t set_on;
} FzNotify;

/* An event the fuzz session created or imported.  `rec_on`: the stream of
 * its last record (1 + stream id; 0: none or gone), so that a wait queued
 * behind it on that stream passes at once; `recorded`: a record was queued
 * through this handle (a wait elsewhere may then have to wait). */
typedef struct FzEvent {
    uint64_t handle;
    int dev;
    bool imported, recorded;
    uint32_t rec_on;
} FzEvent;

/* Memory the fuzz session imported by IPC key. */
typedef struct FzIpc {
    uint64_t va, size;
    int dev;
} FzIpc;

typedef struct Fuzz {
    Client c;
    Client peer;            /* exports for c to import; imports c's exports */
    FzExport exports[FZ_MAX_EXPORTS];
    unsigned nexports;
    FzExport theirs[16];
    unsigned ntheirs;
    FzIpc ipcs[FZ_MAX_IPCS];
    unsigned nipcs;
    unsigned peer_tries, peer_ok;
    FzAlloc allocs[FZ_MAX_ALLOCS];
    unsigned nallocs;
    FzHost hosts[FZ_MAX_HOSTS];
    unsigned nhosts;
    FzStream streams[FZ_MAX_STREAMS];
    unsigned nstreams;
    FzPhys phys[FZ_MAX_PHYS];
    unsigned nphys;
    FzRes res[FZ_MAX_RES];
    unsigned nres;
    FzMap maps[FZ_MAX_MAPS];
    unsigned nmaps;
    FzNotify notifies[FZ_MAX_NOTIFIES];
    unsigned nnotifies;
    uint64_t gone_notifies[8];  /* handles destroyed: used again now and then */
    unsigned wild_waits, notify_records, notify_waits;
    FzEvent events[FZ_MAX_EVENTS];
    unsigned nevents;
    uint64_t gone_events[8];    /* handles destroyed: used again now and then */
    unsigned wild_event_waits, event_records, event_waits, event_resets, event_queries;
    unsigned stream_ctls;
    unsigned by_status[9];
    unsigned ok_by_cmd[EMU_CMD_COUNT + 4];
    unsigned bad_status, bad_resp_len, bad_fd;
} Fuzz;

static int32_t fz_device(void)
{
    switch (rnd_below(16)) {
    case 0: return (int32_t)rnd();
    case 1: return -1;
    case 2: return ndev;
    default: return (int32_t)rnd_below((uint64_t)ndev);
    }
}

static uint64_t fz_size(void)
{
    switch (rnd_below(8)) {
    case 0: return 0;
    case 1: return rnd();
    case 2: return rnd_below(5000);
    case 3: return 1 + rnd_below(64);
    default: return 1 + (rnd() & ((1ull << rnd_below(38)) - 1)); /* log-uniform to 256 GiB */
    }
}

/* A device or host address: usually inside something the session owns. */
static uint64_t fz_addr(Fuzz *f, uint64_t len)
{
    uint64_t r = rnd_below(10);
    if (r == 4 && f->nmaps) {
        FzMap *m = &f->maps[rnd_below(f->nmaps)];
        uint64_t room = m->size > len ? m->size - len : 0;
        return m->va + (rnd_below(4) ? rnd_below(room + 1) : rnd_below(m->size + 64));
    }
    if (r < 5 && f->nallocs) {
        FzAlloc *a = &f->allocs[rnd_below(f->nallocs)];
        uint64_t room = a->size > len ? a->size - len : 0;
        return a->va + (rnd_below(4) ? rnd_below(room + 1) : rnd_below(a->size + 64));
    }
    if (r < 8 && f->nhosts) {
        FzHost *h = &f->hosts[rnd_below(f->nhosts)];
        uint64_t room = h->size > len ? h->size - len : 0;
        return h->addr + (rnd_below(4) ? rnd_below(room + 1) : rnd_below(h->size + 64));
    }
    if (r == 8)
        return EMU_VA_WINDOW_LO + rnd_below(EMU_VA_WINDOW_HI - EMU_VA_WINDOW_LO);
    if (f->nipcs && rnd_below(2)) {
        FzIpc *m = &f->ipcs[rnd_below(f->nipcs)];
        uint64_t room = m->size > len ? m->size - len : 0;
        return m->va + rnd_below(room + 1);
    }
    return rnd();
}

/* The start of the VMM part of a random device's span (proto.h). */
static uint64_t fz_vmm_base(void)
{
    return EMU_VA_WINDOW_LO + rnd_below((uint64_t)ndev + 1) * EMU_VA_DEVICE_SPAN +
           EMU_VA_VMM_OFFSET;
}

static uint64_t fz_handle(Fuzz *f)
{
    if (f->nphys && rnd_below(8))
        return f->phys[rnd_below(f->nphys)].handle;
    if (f->nmaps && rnd_below(2))
        return f->maps[rnd_below(f->nmaps)].handle; /* maybe freed already */
    return rnd_below(2) ? rnd() : rnd_below(4);
}

/* A VA that usually starts a mapping, else a reservation, else anything. */
static uint64_t fz_vmm_va(Fuzz *f)
{
    uint64_t r = rnd_below(16);
    if (r < 11 && f->nmaps)
        return f->maps[rnd_below(f->nmaps)].va;
    if (r < 14 && f->nres)
        return f->res[rnd_below(f->nres)].va + rnd_below(4) * 2 * MiB;
    return r == 14 ? fz_vmm_base() + rnd_below(64) * 2 * MiB : fz_addr(f, 1);
}

static uint32_t fz_stream(Fuzz *f)
{
    if (f->nstreams && rnd_below(8))
        return f->streams[rnd_below(f->nstreams)].id;
    return rnd_below(2) ? (uint32_t)rnd_below(64) : (uint32_t)rnd();
}

/* A notify handle: usually a live one, now and then a destroyed one or noise. */
static uint64_t fz_notify_handle(Fuzz *f)
{
    uint64_t r = rnd_below(16);
    if (r < 13 && f->nnotifies)
        return f->notifies[rnd_below(f->nnotifies)].handle;
    if (r < 15)
        return f->gone_notifies[rnd_below(8)];
    return rnd_below(2) ? rnd() : rnd_below(4);
}

static FzNotify *fz_notify_of(Fuzz *f, uint64_t handle)
{
    for (unsigned i = 0; i < f->nnotifies; i++)
        if (f->notifies[i].handle == handle)
            return &f->notifies[i];
    return NULL;
}

/* A record or wait task on a notify.  Waits take 1 s at most and only follow a
 * record of the notify on the same stream, except for FZ_WILD_WAITS of them,
 * which time out: the fuzz does not slow down. */
static bool fz_notify_task(Fuzz *f, EmuReqSubmit *q)
{
    if (!f->nnotifies)
        return false;
    FzNotify *n = &f->notifies[rnd_below(f->nnotifies)];
    /* half the time, a notify with a record to wait for, if there is one */
    unsigned start = (unsigned)rnd_below(f->nnotifies);
    for (unsigned i = 0; i < f->nnotifies && rnd_below(2); i++) {
        FzNotify *m = &f->notifies[(start + i) % f->nnotifies];
        if (!m->imported && m->set_on) {
            n = m;
            break;
        }
    }
    q->task = (EmuTask){ .type = EMU_TASK_NOTIFY_RECORD, .value = n->handle };
    if (!n->imported && n->set_on && rnd_below(2)) {
        q->stream = n->set_on - 1;
        q->task.type = EMU_TASK_NOTIFY_WAIT;
        q->task.size = 1;
    } else if (!n->imported && f->wild_waits < FZ_WILD_WAITS && rnd_below(64) == 0) {
        q->task.type = EMU_TASK_NOTIFY_WAIT;
        q->task.size = 1;
    }
    /* now and then a task the session refuses */
    switch (rnd_below(32)) {
    case 0:
        q->task.flags = 1 + (uint32_t)rnd_below(8);
        break;
    case 1:
        if (q->task.type == EMU_TASK_NOTIFY_RECORD)
            q->task.size = 1 + rnd_below(4);
        break;
    case 2:
        /* a wait on an imported notify, or on an unknown handle */
        q->task.type = EMU_TASK_NOTIFY_WAIT;
        q->task.size = 1;
        if (!n->imported)
            q->task.value = rnd();
        break;
    default:
        break;
    }
    return true;
}

/* An event handle: usually a live one, now and then a destroyed one, a
 * notify's, or noise. */
static uint64_t fz_event_handle(Fuzz *f)
{
    uint64_t r = rnd_below(16);
    if (r < 12 && f->nevents)
        return f->events[rnd_below(f->nevents)].handle;
    if (r < 14)
        return f->gone_events[rnd_below(8)];
    if (r == 14 && f->nnotifies)
        return f->notifies[rnd_below(f->nnotifies)].handle;
    return rnd_below(2) ? rnd() : rnd_below(4);
}

static FzEvent *fz_event_of(Fuzz *f, uint64_t handle)
{
    for (unsigned i = 0; i < f->nevents; i++)
        if (f->events[i].handle == handle)
            return &f->events[i];
    return NULL;
}

/* A record, wait or reset task on an event.  A wait waits forever only on
 * the stream of the event's last record, behind it (it passes at once);
 * elsewhere for 1 s at most, and on an event recorded elsewhere only
 * FZ_WILD_EVENT_WAITS times in all: the fuzz does not slow down. */
static bool fz_event_task(Fuzz *f, EmuReqSubmit *q)
{
    if (!f->nevents)
        return false;
    FzEvent *e = &f->events[rnd_below(f->nevents)];
    q->task = (EmuTask){ .type = EMU_TASK_EVENT_RECORD, .value = e->handle };
    switch (rnd_below(8)) {
    case 0:
    case 1:
    case 2:
        q->task.type = EMU_TASK_EVENT_WAIT;
        if (e->rec_on && rnd_below(4)) {
            q->stream = e->rec_on - 1;
            q->task.height = (uint32_t)rnd_below(2);
        } else if (!e->recorded || f->wild_event_waits < FZ_WILD_EVENT_WAITS) {
            q->task.height = 1;
        } else {
            q->task.type = EMU_TASK_EVENT_RECORD;
        }
        break;
    case 3:
        if (!e->imported)
            q->task.type = EMU_TASK_EVENT_RESET;
        break;
    default:
        break;
    }
    /* now and then a task the session refuses */
    switch (rnd_below(32)) {
    case 0:
        q->task.flags = 1 + (uint32_t)rnd_below(8);
        break;
    case 1:
        q->task.value = rnd_below(2) ? rnd() : f->gone_events[rnd_below(8)];
        if (!q->task.value)
            q->task.value = 1;
        break;
    case 2:
        /* a notify's handle for an event task */
        if (f->nnotifies)
            q->task.value = f->notifies[rnd_below(f->nnotifies)].handle;
        break;
    case 3:
        /* a reset of an imported event */
        if (e->imported)
            q->task.type = EMU_TASK_EVENT_RESET;
        break;
    default:
        break;
    }
    return true;
}

/* An export of `kind` (0: any), the peer's when `theirs`, else the fuzz
 * session's own; NULL if none. */
static const FzExport *fz_export(Fuzz *f, uint32_t kind, bool theirs)
{
    const FzExport *list = theirs ? f->theirs : f->exports;
    unsigned n = theirs ? f->ntheirs : f->nexports;
    if (!n)
        return NULL;
    unsigned start = (unsigned)rnd_below(n);
    for (unsigned i = 0; i < n; i++) {
        const FzExport *e = &list[(start + i) % n];
        if (!kind || e->kind == kind)
            return e;
    }
    return NULL;
}

/* A token: usually an export of the kind wanted (the peer's with
 * `theirs`), now and then the other side's, another kind or random bytes. */
static void fz_token(Fuzz *f, uint32_t kind, bool theirs, uint32_t *kind_out, uint8_t *token,
                     uint32_t *len_out)
{
    uint64_t r = rnd_below(16);
    const FzExport *e = r < 11 ? fz_export(f, kind, theirs)
                        : r < 13 ? fz_export(f, 0, !theirs)
                        : r < 14 ? fz_export(f, 0, theirs) : NULL;
    if (e) {
        *kind_out = e->kind;
        memcpy(token, e->token, EMU_TOKEN_LEN);
    } else {
        *kind_out = rnd_below(4) ? 1 + (uint32_t)rnd_below(3) : (uint32_t)rnd();
        for (unsigned i = 0; i < EMU_TOKEN_LEN; i += 8) {
            uint64_t v = rnd_below(4) ? rnd() : 0;
            memcpy(token + i, &v, 8);
        }
        const FzExport *near = rnd_below(2) ? fz_export(f, 0, rnd_below(2)) : NULL;
        if (near) {
            /* a near miss: one bit off a live token, of its kind */
            *kind_out = near->kind;
            memcpy(token, near->token, EMU_TOKEN_LEN);
            token[rnd_below(near->kind == EMU_SHARE_DEFAULT ? 8 : EMU_TOKEN_LEN)] ^=
                (uint8_t)(1u << rnd_below(8));
        }
    }
    if (len_out) {
        *len_out = *kind_out == EMU_SHARE_DEFAULT ? 8 : EMU_TOKEN_LEN;
        if (rnd_below(16) == 0)
            *len_out = rnd_below(2) ? (uint32_t)rnd_below(EMU_TOKEN_LEN + 1) : (uint32_t)rnd();
    }
}

/* A well-formed request of a random command with random field values. */
static uint32_t fz_valid(Fuzz *f, uint8_t *req, uint32_t *len)
{
    uint32_t cmd = 1 + (uint32_t)rnd_below(EMU_CMD_COUNT - 1);
    if (cmd == EMU_CMD_DEVICE_CLOSE && rnd_below(20))
        cmd = EMU_CMD_MEM_ALLOC; /* rare: it drops everything on the device */
    if (cmd == EMU_CMD_STREAM_CREATE && f->nstreams >= FZ_MAX_STREAMS)
        cmd = EMU_CMD_STREAM_DESTROY;
    if (cmd == EMU_CMD_MEM_ALLOC && f->nallocs >= FZ_MAX_ALLOCS)
        cmd = EMU_CMD_MEM_FREE;
    if (cmd == EMU_CMD_HOST_ALLOC && f->nhosts >= FZ_MAX_HOSTS)
        cmd = EMU_CMD_HOST_FREE;
    if (cmd == EMU_CMD_PHYS_ALLOC && f->nphys >= FZ_MAX_PHYS)
        cmd = EMU_CMD_PHYS_FREE;
    if (cmd == EMU_CMD_VMM_RESERVE && f->nres >= FZ_MAX_RES)
        cmd = EMU_CMD_VMM_RELEASE;
    if (cmd == EMU_CMD_VMM_MAP && f->nmaps >= FZ_MAX_MAPS)
        cmd = EMU_CMD_VMM_UNMAP;
    if (cmd == EMU_CMD_IPC_IMPORT && f->nipcs >= FZ_MAX_IPCS)
        cmd = EMU_CMD_IPC_CLOSE;
    if ((cmd == EMU_CMD_NOTIFY_CREATE || cmd == EMU_CMD_NOTIFY_IMPORT) &&
        f->nnotifies >= FZ_MAX_NOTIFIES)
        cmd = EMU_CMD_NOTIFY_DESTROY;
    if (cmd == EMU_CMD_NOTIFY_IMPORT && f->nnotifies >= FZ_MAX_NOTIFIES / 2)
        cmd = EMU_CMD_NOTIFY_CREATE;    /* imports take half the table at most */
    if ((cmd == EMU_CMD_EVENT_CREATE || cmd == EMU_CMD_EVENT_IMPORT) &&
        f->nevents >= FZ_MAX_EVENTS)
        cmd = EMU_CMD_EVENT_DESTROY;
    if (cmd == EMU_CMD_EVENT_IMPORT && f->nevents >= FZ_MAX_EVENTS / 2)
        cmd = EMU_CMD_EVENT_CREATE;
    switch (cmd) {
    case EMU_CMD_NOP:
        *len = (uint32_t)rnd_below(EMU_SLOT_PAYLOAD + 1);
        break;
    case EMU_CMD_DEVICE_OPEN:
    case EMU_CMD_DEVICE_CLOSE:
    case EMU_CMD_DEVICE_SYNC:
    case EMU_CMD_MEM_USAGE:
    case EMU_CMD_EVENT_CREATE: {
        EmuReqEventCreate q = { .device = fz_device(),
                                .resource = rnd_below(8) ? (uint32_t)rnd_below(3)
                                                         : (uint32_t)rnd() };
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_NOTIFY_CREATE:
    case EMU_CMD_EVENT_AVAIL: {
        EmuReqDevice q = { .device = fz_device(), .force = (uint32_t)rnd_below(3) };
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_MEM_ALLOC: {
        EmuReqMemAlloc q = { .device = fz_device(), .size = fz_size() };
        switch (rnd_below(4)) {
        case 0: q.policy = (uint32_t)rnd(); break;
        case 1: q.policy = (uint32_t)rnd_below(12) | ACL_MEM_TYPE_HIGH_BAND_WIDTH; break;
        default: q.policy = (uint32_t)rnd_below(8); break;
        }
        q.flags = rnd_below(8) ? (uint32_t)rnd_below(2) : (uint32_t)rnd();
        q.pad = (uint32_t)rnd();
        /* Segments cost page-table and frame entries per page: gigabytes of
         * 4 KiB pages that fit the device are kept rare to keep the run short. */
        if (device_policy_page(q.policy, q.size) == HBM_PAGE_NORMAL && q.size > 64 * MiB &&
            q.size <= srv->profile->hbm_bytes && rnd_below(16))
            q.size = 1 + rnd_below(64 * MiB);
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_MEM_FREE: {
        EmuReqMemFree q = { .va = f->nallocs && rnd_below(4) ? f->allocs[rnd_below(f->nallocs)].va
                                                             : fz_addr(f, 1) };
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_MEM_INFO: {
        EmuReqMemInfo q = { .device = fz_device(),
                            .attr = rnd_below(8) ? (uint32_t)rnd_below(14) : (uint32_t)rnd() };
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_HOST_ALLOC: {
        EmuReqHostAlloc q;
        if (rnd_below(8)) {
            q.size = (1 + rnd_below(16)) * 4096;
            q.client_addr = HOST_BASE + rnd_below(4096) * 4096;
        } else {
            q.size = rnd_below(2) ? rnd() & ~4095ull : fz_size();
            q.client_addr = rnd_below(2) ? rnd() & ~4095ull : rnd();
        }
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_HOST_FREE: {
        EmuReqHostFree q = { .client_addr = f->nhosts && rnd_below(4)
                                                ? f->hosts[rnd_below(f->nhosts)].addr
                                                : fz_addr(f, 1) };
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_STREAM_CREATE: {
        EmuReqStreamCreate q = { .device = fz_device(), .priority = (uint32_t)rnd(),
                                 .flags = (uint32_t)rnd(), .pad = (uint32_t)rnd() };
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_STREAM_DESTROY: {
        EmuReqStreamDestroy q = { .stream = fz_stream(f), .force = (uint32_t)rnd_below(3) };
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_STREAM_SUBMIT: {
        EmuReqSubmit q = { .stream = fz_stream(f), .pad = (uint32_t)rnd() };
        q.task.type = rnd_below(8) ? 1 + (uint32_t)rnd_below(3) : (uint32_t)rnd_below(6);
        q.task.flags = (uint32_t)rnd();
        /* keep what the engine really touches small: sizes up to 16 KiB on owned memory */
        uint64_t r = rnd_below(16);
        q.task.size = r == 0   ? 0
                      : r == 1 ? rnd() | (1ull << 41) /* larger than anything that resolves */
                               : 1 + rnd_below(16 * KiB);
        if (q.task.type == EMU_TASK_MEMSET32 && rnd_below(4))
            q.task.size &= ~3ull;
        uint64_t touch = q.task.size <= 16 * KiB ? q.task.size : 1;
        q.task.dst = fz_addr(f, touch);
        q.task.src = fz_addr(f, touch);
        q.task.value = rnd();
        if (rnd_below(16) == 0) {   /* a wait for another stream: already reached, or refused */
            q.task.type = EMU_TASK_STREAM_WAIT;
            q.task.flags = rnd_below(8) ? 0 : (uint32_t)rnd();
            q.task.value = rnd_below(8) ? fz_stream(f) : rnd();
            q.task.size = rnd_below(4) ? 0 : rnd() | (1ull << 32);
        } else if (rnd_below(8) == 0) {    /* a reduce: mostly valid kinds and types */
            static const uint32_t types[] = { 0, 1, 2, 3, 6, 27, 8, 11 };
            q.task.type = EMU_TASK_REDUCE;
            q.task.flags = rnd_below(8) ? types[rnd_below(G_N_ELEMENTS(types))] : (uint32_t)rnd();
            q.task.value = rnd_below(8) ? 10 + rnd_below(4) : rnd();
            if (rnd_below(4))
                q.task.size &= ~3ull;
        }
        if (rnd_below(6) == 0)
            fz_notify_task(f, &q);
        else if (rnd_below(5) == 0)
            fz_event_task(f, &q);
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_HOST_ALIAS: {
        EmuReqHostAlias q = { .client_addr = f->nhosts && rnd_below(4)
                                                 ? f->hosts[rnd_below(f->nhosts)].addr
                                                 : fz_addr(f, 1),
                              .alias = HOST_BASE + rnd_below(1 << 20) * 4096 };
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_PHYS_ALLOC: {
        /* small handles (a few 2 MiB) on 2 MiB or 4 KiB pages, now and then a
         * 1 GiB page or nonsense */
        EmuReqPhysAlloc q = { .device = fz_device(), .mem_attr = (uint32_t)rnd() };
        uint64_t r = rnd_below(64);
        if (r < 56) {
            q.size = (1 + rnd_below(4)) * 2 * MiB;
            q.page_size = rnd_below(3) ? 2 * MiB : 4 * KiB;
        } else if (r < 57) {
            q.size = GiB;
            q.page_size = GiB;
        } else {
            const uint64_t pages[] = { 0, 1, 4 * KiB, 2 * MiB, GiB, 8 * KiB, 3 * MiB };
            const uint64_t sizes[] = { 0, 4 * KiB, 3 * MiB, 2 * MiB + 4 * KiB, 256 * GiB,
                                       1ull << 63, UINT64_MAX & ~(2 * MiB - 1) };
            q.page_size = rnd_below(4) ? pages[rnd_below(7)] : rnd();
            q.size = rnd_below(4) ? sizes[rnd_below(7)] : fz_size();
        }
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_PHYS_FREE: {
        EmuReqPhys q = { .handle = fz_handle(f) };
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_VMM_RESERVE: {
        EmuReqReserve q = { .size = (1 + rnd_below(8)) * 2 * MiB, .align = 2 * MiB << rnd_below(3) };
        uint64_t r = rnd_below(16);
        if (r < 10) {
            q.expect = 0;
        } else if (r < 13) {
            q.expect = fz_vmm_base() + rnd_below(256) * 2 * MiB; /* maybe taken */
        } else if (r < 14) {
            q.expect = fz_addr(f, 1);
        } else {
            q.size = rnd_below(2) ? fz_size() : q.size;
            q.align = rnd_below(2) ? rnd() : 1ull << rnd_below(64);
            q.expect = rnd_below(2) ? 0 : fz_vmm_base() + rnd_below(1 << 20) * 4 * KiB;
        }
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_VMM_RELEASE:
    case EMU_CMD_VMM_UNMAP:
    case EMU_CMD_VMM_RETAIN: {
        EmuReqVa q = { .va = fz_vmm_va(f) };
        if (cmd == EMU_CMD_VMM_RELEASE && f->nres && rnd_below(2))
            q.va = f->res[rnd_below(f->nres)].va;
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_VMM_MAP: {
        EmuReqMap q = { .handle = fz_handle(f), .prot = PT_RW, .pad = (uint32_t)rnd() };
        q.size = 2 * MiB * (1 + rnd_below(4));
        for (unsigned i = 0; i < f->nphys; i++)
            if (f->phys[i].handle == q.handle)
                q.size = f->phys[i].size;
        if (f->nres && rnd_below(8)) {
            FzRes *r = &f->res[rnd_below(f->nres)];
            uint64_t room = r->size > q.size ? (r->size - q.size) / (2 * MiB) : 0;
            q.va = r->va + rnd_below(room + 1) * 2 * MiB;
        } else {
            q.va = fz_vmm_va(f);
        }
        switch (rnd_below(16)) {
        case 0: q.prot = 0; break;
        case 1: q.prot = (uint32_t)rnd_below(8); break;
        case 2: q.size = fz_size(); break;
        case 3: q.va += 4 * KiB * rnd_below(512); break;
        default: break;
        }
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_VMM_ACCESS: {
        EmuReqAccess q = { .va = fz_vmm_va(f), .device = fz_device(),
                           .prot = rnd_below(8) ? (uint32_t)rnd_below(4) : (uint32_t)rnd() };
        q.size = 2 * MiB * (1 + rnd_below(4));
        for (unsigned i = 0; i < f->nmaps; i++)
            if (f->maps[i].va == q.va && rnd_below(8))
                q.size = f->maps[i].size;
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_PEER_ACCESS: {
        EmuReqPeer q = { .device = fz_device(), .peer = fz_device(),
                         .enable = rnd_below(8) ? (uint32_t)rnd_below(2) : (uint32_t)rnd(),
                         .pad = (uint32_t)rnd() };
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_IPC_EXPORT: {
        /* usually the start of an allocation (page-aligned when it has a
         * segment of its own), a small size inside it */
        EmuReqIpcExport q = { .pid_check = rnd_below(8) ? (uint32_t)rnd_below(2)
                                                        : (uint32_t)rnd(),
                              .pad = (uint32_t)rnd() };
        if (f->nallocs && rnd_below(8)) {
            FzAlloc *a = &f->allocs[rnd_below(f->nallocs)];
            q.va = rnd_below(4) ? a->va : a->va + rnd_below(a->size) / (4 * KiB) * (4 * KiB);
            q.size = rnd_below(8) ? 1 + rnd_below(a->size < 4 * MiB ? a->size : 4 * MiB)
                                  : fz_size();
        } else {
            q.va = fz_addr(f, 1);
            q.size = fz_size();
        }
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_SHARE_EXPORT: {
        EmuReqShareExport q = { .handle = fz_handle(f), .kind = EMU_SHARE_DEFAULT,
                                .pid_check = rnd_below(8) ? (uint32_t)rnd_below(2)
                                                          : (uint32_t)rnd() };
        switch (rnd_below(8)) {
        case 0: q.kind = EMU_SHARE_FABRIC; break;     /* A3 only */
        case 1: q.kind = rnd_below(2) ? EMU_SHARE_IPC : (uint32_t)rnd(); break;
        default: break;
        }
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_SHARE_ALLOW: {
        EmuReqShareAllow q;
        memset(&q, 0, sizeof(q));
        fz_token(f, 0, false, &q.name.kind, q.name.token, &q.name.len);
        q.name.value = rnd();
        q.n = rnd_below(8) ? (uint32_t)rnd_below(5)
                           : rnd_below(2) ? EMU_ALLOW_MAX + (uint32_t)rnd_below(2) : (uint32_t)rnd();
        for (unsigned i = 0; i < EMU_ALLOW_MAX; i++) {
            switch (rnd_below(8)) {
            case 0: q.servers[i] = (int32_t)rnd(); break;
            case 1: q.servers[i] = 1; break;
            case 2:
            case 3: q.servers[i] = EMU_ANY_SERVER; break;
            default: q.servers[i] = 0; break;
            }
            q.pids[i] = rnd_below(4) ? FZ_PEER_PID : rnd_below(2) ? 4242 : (int32_t)rnd();
        }
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_SHARE_ATTR:
    case EMU_CMD_SHARE_WITHDRAW: {
        EmuReqShareToken q = { .value = rnd_below(8) ? rnd_below(2) : rnd() };
        fz_token(f, cmd == EMU_CMD_SHARE_ATTR ? EMU_SHARE_IPC : 0, false, &q.kind, q.token,
                 &q.len);
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_IPC_IMPORT: {
        EmuReqIpcImport q = { .device = fz_device(),
                              .peer = rnd_below(8) ? (uint32_t)rnd_below(2) : (uint32_t)rnd() };
        uint32_t kind = 0;
        fz_token(f, EMU_SHARE_IPC, true, &kind, q.token, NULL);
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_IPC_CLOSE: {
        EmuReqVa q = { .va = f->nipcs && rnd_below(4) ? f->ipcs[rnd_below(f->nipcs)].va
                                                      : fz_addr(f, 1) };
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_SHARE_IMPORT: {
        EmuReqShareImport q = { .device = fz_device(), .pad = (uint32_t)rnd() };
        fz_token(f, EMU_SHARE_DEFAULT, true, &q.name.kind, q.name.token, &q.name.len);
        if (rnd_below(16) == 0)
            q.name.kind = EMU_SHARE_FABRIC;         /* A3 only */
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_NOTIFY_DESTROY:
    case EMU_CMD_NOTIFY_RESET:
    case EMU_CMD_NOTIFY_EXPORT: {
        EmuReqNotify q = { .handle = fz_notify_handle(f), .pad = (uint32_t)rnd() };
        q.flags = cmd != EMU_CMD_NOTIFY_EXPORT ? (rnd_below(8) ? 0 : (uint32_t)rnd())
                  : rnd_below(8)               ? (uint32_t)rnd_below(2)
                                               : (uint32_t)rnd();
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_NOTIFY_IMPORT: {
        EmuReqShareImport q = { .device = fz_device(),
                                .pad = rnd_below(8) ? (uint32_t)rnd_below(2) : (uint32_t)rnd() };
        fz_token(f, EMU_SHARE_NOTIFY, true, &q.name.kind, q.name.token, &q.name.len);
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_EVENT_QUERY: {
        EmuReqEventQuery q = { .handle = fz_event_handle(f), .gen = rnd_below(4) ? 0 : rnd(),
                               .take_id = rnd_below(8) ? (uint32_t)rnd_below(2)
                                                       : (uint32_t)rnd(),
                               .pad = (uint32_t)rnd() };
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_EVENT_DESTROY:
    case EMU_CMD_EVENT_EXPORT: {
        EmuReqNotify q = { .handle = fz_event_handle(f), .pad = (uint32_t)rnd() };
        q.flags = rnd_below(8) ? 0 : (uint32_t)rnd();
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_EVENT_IMPORT: {
        EmuReqShareImport q = { .device = fz_device(),
                                .pad = rnd_below(8) ? 0 : (uint32_t)rnd() };
        fz_token(f, EMU_SHARE_EVENT, true, &q.name.kind, q.name.token, &q.name.len);
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    case EMU_CMD_STREAM_CTL: {
        /* set the failure mode often, in one of a few groups (contexts) so
         * that failures spread; abort and stop rarely (they drop work) */
        EmuReqStreamCtl q = { .stream = fz_stream(f), .op = EMU_STREAM_SET_MODE,
                              .value = rnd_below(8) ? rnd_below(2) | rnd_below(4) << 32
                                                    : rnd() };
        switch (rnd_below(16)) {
        case 0: q.op = EMU_STREAM_ABORT; break;
        case 1: q.op = EMU_STREAM_STOP; break;
        case 2: q.op = (uint32_t)rnd(); break;
        default: break;
        }
        memcpy(req, &q, sizeof(q));
        *len = sizeof(q);
        break;
    }
    default: {
        /* Every other command: 8-byte words that are often addresses the
         * session knows, small numbers or sizes, at a size that is often right. */
        uint32_t words = 1 + (uint32_t)rnd_below(12);
        for (uint32_t i = 0; i < words; i++) {
            uint64_t v = 0;
            switch (rnd_below(4)) {
            case 0: v = fz_addr(f, 1); break;
            case 1: v = rnd_below(4); break;
            case 2: v = fz_size(); break;
            default: v = rnd(); break;
            }
            memcpy(req + 8 * i, &v, 8);
        }
        *len = 8 * words;
        break;
    }
    }
    return cmd;
}

static uint32_t expected_resp_len(uint32_t cmd)
{
    switch (cmd) {
    case EMU_CMD_DEVICE_SYNC: return sizeof(EmuRespDeviceSync);
    case EMU_CMD_MEM_ALLOC: return sizeof(EmuRespMemAlloc);
    case EMU_CMD_MEM_FREE: return sizeof(EmuRespMemFree);
    case EMU_CMD_MEM_INFO: return sizeof(EmuRespMemInfo);
    case EMU_CMD_STREAM_CREATE: return sizeof(EmuRespStreamCreate);
    case EMU_CMD_STREAM_SUBMIT: return sizeof(EmuRespSubmit);
    case EMU_CMD_PHYS_ALLOC: return sizeof(EmuRespPhys);
    case EMU_CMD_VMM_RESERVE: return sizeof(EmuRespReserve);
    case EMU_CMD_VMM_MAP: return sizeof(EmuRespMap);
    case EMU_CMD_VMM_UNMAP: return sizeof(EmuRespPhys);
    case EMU_CMD_VMM_RETAIN: return sizeof(EmuRespPhys);
    case EMU_CMD_MEM_USAGE: return sizeof(EmuRespMemUsage);
    case EMU_CMD_IPC_EXPORT: return sizeof(EmuRespToken);
    case EMU_CMD_SHARE_EXPORT: return sizeof(EmuRespToken);
    case EMU_CMD_IPC_IMPORT: return sizeof(EmuRespIpcImport);
    case EMU_CMD_SHARE_IMPORT: return sizeof(EmuRespPhys);
    case EMU_CMD_NOTIFY_CREATE: return sizeof(EmuRespNotify);
    case EMU_CMD_NOTIFY_EXPORT: return sizeof(EmuRespToken);
    case EMU_CMD_NOTIFY_IMPORT: return sizeof(EmuRespNotify);
    case EMU_CMD_EVENT_CREATE: return sizeof(EmuRespNotify);
    case EMU_CMD_EVENT_QUERY: return sizeof(EmuRespEvent);
    case EMU_CMD_EVENT_EXPORT: return sizeof(EmuRespToken);
    case EMU_CMD_EVENT_IMPORT: return sizeof(EmuRespNotify);
    case EMU_CMD_EVENT_AVAIL: return sizeof(EmuRespEvent);
    default: return 0;
    }
}

static int status_index(int st)
{
    switch (st) {
    case ACL_SUCCESS: return 0;
    case ACL_ERROR_RT_PARAM_INVALID: return 1;
    case ACL_ERROR_RT_INVALID_DEVICEID: return 2;
    case ACL_ERROR_RT_MEMORY_ALLOCATION: return 3;
    case ACL_ERROR_RT_NO_STREAM_RESOURCE: return 4;
    case ACL_ERROR_RT_RESOURCE_ALLOC_FAIL: return 5;
    case ACL_ERROR_RT_NO_PERMISSION: return 6;
    case ACL_ERROR_RT_FEATURE_NOT_SUPPORT: return 7;
    /* a submit to a stream that a failure stopped (STREAM_CTL stop-on-failure
     * mode): the failure's own code */
    case ACL_ERROR_RT_SYS_DMA:
    case ACL_ERROR_RT_WAIT_TIMEOUT:
    case ACL_ERROR_RT_STREAM_ABORT: return 8;
    default: return -1;
    }
}

static FzPhys *fz_phys_of(Fuzz *f, uint64_t handle)
{
    for (unsigned i = 0; i < f->nphys; i++)
        if (f->phys[i].handle == handle)
            return &f->phys[i];
    return NULL;
}

/* Direct calls for what the model has no room for (garbage that succeeded). */
static void fz_undo(Fuzz *f, uint32_t cmd, uint64_t arg)
{
    EmuReqPhys qp = { .handle = arg };
    EmuReqVa qv = { .va = arg };
    EmuRespPhys rp;
    switch (cmd) {
    case EMU_CMD_PHYS_FREE:
        CU_ASSERT_EQUAL(call(&f->c, cmd, &qp, sizeof(qp), NULL, 0, NULL), ACL_SUCCESS);
        break;
    case EMU_CMD_VMM_UNMAP:
        CU_ASSERT_EQUAL(call(&f->c, cmd, &qv, sizeof(qv), &rp, sizeof(rp), NULL), ACL_SUCCESS);
        break;
    default:
        CU_ASSERT_EQUAL(call(&f->c, cmd, &qv, sizeof(qv), NULL, 0, NULL), ACL_SUCCESS);
        break;
    }
}

/* Forgets the fuzz session's exports that match (they were withdrawn). */
static void fz_exports_drop(Fuzz *f, uint32_t kind, uint64_t lo, uint64_t hi)
{
    for (unsigned i = 0; i < f->nexports;)
        if (f->exports[i].kind == kind && f->exports[i].id >= lo && f->exports[i].id < hi)
            f->exports[i] = f->exports[--f->nexports];
        else
            i++;
}

static void fz_export_add(Fuzz *f, uint32_t kind, uint64_t id, const EmuSlot *slot)
{
    EmuRespToken r;
    memcpy(&r, slot->resp, sizeof(r));
    CU_ASSERT_EQUAL(r.server, 0);
    uint64_t first8 = 0;
    memcpy(&first8, r.token, 8);
    if (kind == EMU_SHARE_DEFAULT)
        CU_ASSERT_NOT_EQUAL(first8, 0);
    /* no room: forget one (the session withdraws it when reclaimed) */
    unsigned i = f->nexports < FZ_MAX_EXPORTS ? f->nexports++ : (unsigned)rnd_below(FZ_MAX_EXPORTS);
    f->exports[i].kind = kind;
    f->exports[i].id = id;
    memcpy(f->exports[i].token, r.token, EMU_TOKEN_LEN);
}

/* The peer session imports one of the fuzz session's exports (and keeps it
 * until it is reclaimed, after the fuzz session). */
static void fz_peer_import(Fuzz *f)
{
    const FzExport *e = fz_export(f, 0, false);
    if (!e || f->peer_tries >= FZ_PEER_IMPORTS)
        return;
    f->peer_tries++;
    int st;
    if (e->kind == EMU_SHARE_NOTIFY) {
        EmuRespNotify r;
        st = req_notify_import(&f->peer, e->token, (int32_t)rnd_below((uint64_t)ndev),
                               (uint32_t)rnd_below(2), &r);
    } else if (e->kind == EMU_SHARE_EVENT) {
        EmuRespNotify r;
        st = req_event_import(&f->peer, e->token, (int32_t)rnd_below((uint64_t)ndev), &r);
    } else if (e->kind == EMU_SHARE_IPC) {
        EmuRespIpcImport r;
        int fd = -1;
        st = req_ipc_import(&f->peer, e->token, (int32_t)rnd_below((uint64_t)ndev),
                            (uint32_t)rnd_below(2), &r, &fd);
        if (fd >= 0)
            close(fd);
    } else {
        EmuRespPhys r;
        st = req_share_import(&f->peer, e->kind, e->token, (int32_t)rnd_below((uint64_t)ndev),
                              &r);
    }
    CU_ASSERT_TRUE(st == ACL_SUCCESS || st == ACL_ERROR_RT_PARAM_INVALID ||
                   st == ACL_ERROR_RT_NO_PERMISSION);
    f->peer_ok += st == ACL_SUCCESS;
}

/* The peer session's exports: IPC keys of 2 MiB segments and DEFAULT handles
 * of 2 MiB physical handles, open to everyone, whitelisted for the fuzz
 * session's pid, or whitelisted for somebody else. */
static void fz_peer_setup(Fuzz *f, pid_t fuzz_pid)
{
    for (int i = 0; i < 3; i++) {
        int32_t dev = i % ndev;
        EmuRespMemAlloc a;
        EmuRespToken t;
        CU_ASSERT_EQUAL_FATAL(mem_alloc(&f->peer, dev, 2 * MiB, ACL_MEM_MALLOC_HUGE_ONLY, 0, &a,
                                        NULL),
                              ACL_SUCCESS);
        CU_ASSERT_EQUAL_FATAL(req_ipc_export(&f->peer, a.va, 2 * MiB, i > 0, &t), ACL_SUCCESS);
        if (i > 0)
            CU_ASSERT_EQUAL(req_share_allow(&f->peer, EMU_SHARE_IPC, t.token, 0,
                                            i == 1 ? fuzz_pid : fuzz_pid + 1),
                            ACL_SUCCESS);
        f->theirs[f->ntheirs].kind = EMU_SHARE_IPC;
        f->theirs[f->ntheirs].id = a.va;
        memcpy(f->theirs[f->ntheirs++].token, t.token, EMU_TOKEN_LEN);

        EmuRespPhys ph;
        CU_ASSERT_EQUAL_FATAL(req_phys_alloc(&f->peer, dev, 2 * MiB, 2 * MiB, &ph), ACL_SUCCESS);
        CU_ASSERT_EQUAL_FATAL(req_share_export(&f->peer, ph.handle, EMU_SHARE_DEFAULT, i > 0, &t),
                              ACL_SUCCESS);
        if (i > 0)
            CU_ASSERT_EQUAL(req_share_allow(&f->peer, EMU_SHARE_DEFAULT, t.token,
                                            EMU_ANY_SERVER, i == 1 ? fuzz_pid : fuzz_pid + 1),
                            ACL_SUCCESS);
        f->theirs[f->ntheirs].kind = EMU_SHARE_DEFAULT;
        f->theirs[f->ntheirs].id = ph.handle;
        memcpy(f->theirs[f->ntheirs++].token, t.token, EMU_TOKEN_LEN);

        EmuRespNotify nr;
        CU_ASSERT_EQUAL_FATAL(req_notify_create(&f->peer, dev, &nr), ACL_SUCCESS);
        CU_ASSERT_EQUAL_FATAL(req_notify_export(&f->peer, nr.handle, i > 0, &t), ACL_SUCCESS);
        if (i > 0)
            CU_ASSERT_EQUAL(req_share_allow(&f->peer, EMU_SHARE_NOTIFY, t.token, 0,
                                            i == 1 ? fuzz_pid : fuzz_pid + 1),
                            ACL_SUCCESS);
        f->theirs[f->ntheirs].kind = EMU_SHARE_NOTIFY;
        f->theirs[f->ntheirs].id = nr.handle;
        memcpy(f->theirs[f->ntheirs++].token, t.token, EMU_TOKEN_LEN);

        /* IPC events: no whitelist */
        CU_ASSERT_EQUAL_FATAL(req_event_create(&f->peer, dev, &nr), ACL_SUCCESS);
        CU_ASSERT_EQUAL_FATAL(req_event_export(&f->peer, nr.handle, &t), ACL_SUCCESS);
        f->theirs[f->ntheirs].kind = EMU_SHARE_EVENT;
        f->theirs[f->ntheirs].id = nr.handle;
        memcpy(f->theirs[f->ntheirs++].token, t.token, EMU_TOKEN_LEN);
    }
}

static void fz_notify_add(Fuzz *f, const EmuRespNotify *r, bool imported)
{
    CU_ASSERT_NOT_EQUAL(r->handle, 0);
    CU_ASSERT_TRUE(r->id < DEV_NOTIFY_MAX);
    CU_ASSERT_TRUE(r->device >= 0 && r->device < ndev);
    CU_ASSERT_PTR_NULL(fz_notify_of(f, r->handle));
    if (f->nnotifies < FZ_MAX_NOTIFIES) {
        f->notifies[f->nnotifies++] = (FzNotify){ .handle = r->handle, .dev = r->device,
                                                  .imported = imported };
    } else {
        EmuReqNotify q = { .handle = r->handle };
        CU_ASSERT_EQUAL(call(&f->c, EMU_CMD_NOTIFY_DESTROY, &q, sizeof(q), NULL, 0, NULL),
                        ACL_SUCCESS);
    }
}

static void fz_notify_gone(Fuzz *f, unsigned i)
{
    uint64_t h = f->notifies[i].handle;
    f->gone_notifies[rnd_below(8)] = h;
    fz_exports_drop(f, EMU_SHARE_NOTIFY, h, h + 1);
    f->notifies[i] = f->notifies[--f->nnotifies];
}

static void fz_event_add(Fuzz *f, const EmuRespNotify *r, bool imported)
{
    CU_ASSERT_NOT_EQUAL(r->handle, 0);
    CU_ASSERT_TRUE(r->id < DEV_EVENT_MAX || r->id == EVENT_NO_ID);
    CU_ASSERT_TRUE(r->device >= 0 && r->device < ndev);
    CU_ASSERT_PTR_NULL(fz_event_of(f, r->handle));
    CU_ASSERT_PTR_NULL(fz_notify_of(f, r->handle));
    if (f->nevents < FZ_MAX_EVENTS) {
        f->events[f->nevents++] = (FzEvent){ .handle = r->handle, .dev = r->device,
                                             .imported = imported };
    } else {
        EmuReqNotify q = { .handle = r->handle };
        CU_ASSERT_EQUAL(call(&f->c, EMU_CMD_EVENT_DESTROY, &q, sizeof(q), NULL, 0, NULL),
                        ACL_SUCCESS);
    }
}

static void fz_event_gone(Fuzz *f, unsigned i)
{
    uint64_t h = f->events[i].handle;
    f->gone_events[rnd_below(8)] = h;
    fz_exports_drop(f, EMU_SHARE_EVENT, h, h + 1);
    f->events[i] = f->events[--f->nevents];
}

/* Keeps the model of what the session owns in step with a successful reply. */
static void fz_track(Fuzz *f, uint32_t cmd, const uint8_t *req, const EmuSlot *slot)
{
    switch (cmd) {
    case EMU_CMD_PHYS_ALLOC: {
        EmuReqPhysAlloc q;
        EmuRespPhys r;
        memcpy(&q, req, sizeof(q));
        memcpy(&r, slot->resp, sizeof(r));
        CU_ASSERT_NOT_EQUAL(r.handle, 0);
        CU_ASSERT_EQUAL(r.size, q.size);
        CU_ASSERT_EQUAL(r.device, q.device);
        if (f->nphys < FZ_MAX_PHYS && !fz_phys_of(f, r.handle))
            f->phys[f->nphys++] = (FzPhys){ r.handle, r.size, r.device, 1 };
        else
            fz_undo(f, EMU_CMD_PHYS_FREE, r.handle);
        break;
    }
    case EMU_CMD_PHYS_FREE: {
        EmuReqPhys q;
        memcpy(&q, req, sizeof(q));
        FzPhys *p = fz_phys_of(f, q.handle);
        CU_ASSERT_PTR_NOT_NULL(p);  /* the session knows no other handles */
        if (p && --p->refs == 0) {
            *p = f->phys[--f->nphys];
            fz_exports_drop(f, EMU_SHARE_DEFAULT, q.handle, q.handle + 1);
        }
        break;
    }
    case EMU_CMD_VMM_RETAIN: {
        EmuRespPhys r;
        memcpy(&r, slot->resp, sizeof(r));
        FzPhys *p = fz_phys_of(f, r.handle);
        if (p)
            p->refs++;
        else if (f->nphys < FZ_MAX_PHYS)
            f->phys[f->nphys++] = (FzPhys){ r.handle, r.size, r.device, 1 };
        else
            fz_undo(f, EMU_CMD_PHYS_FREE, r.handle);
        break;
    }
    case EMU_CMD_VMM_RESERVE: {
        EmuReqReserve q;
        EmuRespReserve r;
        memcpy(&q, req, sizeof(q));
        memcpy(&r, slot->resp, sizeof(r));
        CU_ASSERT_EQUAL(r.va % (2 * MiB), 0);
        if (f->nres < FZ_MAX_RES)
            f->res[f->nres++] = (FzRes){ r.va, q.size };
        else
            fz_undo(f, EMU_CMD_VMM_RELEASE, r.va);
        break;
    }
    case EMU_CMD_VMM_RELEASE: {
        EmuReqVa q;
        memcpy(&q, req, sizeof(q));
        for (unsigned i = 0; i < f->nres; i++)
            if (f->res[i].va == q.va) {
                f->res[i] = f->res[--f->nres];
                break;
            }
        break;
    }
    case EMU_CMD_VMM_MAP: {
        EmuReqMap q;
        EmuRespMap r;
        memcpy(&q, req, sizeof(q));
        memcpy(&r, slot->resp, sizeof(r));
        if (f->nmaps < FZ_MAX_MAPS)
            f->maps[f->nmaps++] = (FzMap){ q.va, q.size, q.handle, r.device };
        else
            fz_undo(f, EMU_CMD_VMM_UNMAP, q.va);
        break;
    }
    case EMU_CMD_VMM_UNMAP: {
        EmuReqVa q;
        EmuRespPhys r;
        memcpy(&q, req, sizeof(q));
        memcpy(&r, slot->resp, sizeof(r));
        for (unsigned i = 0; i < f->nmaps; i++)
            if (f->maps[i].va == q.va) {
                CU_ASSERT_EQUAL(r.handle, f->maps[i].handle);
                CU_ASSERT_EQUAL(r.size, f->maps[i].size);
                f->maps[i] = f->maps[--f->nmaps];
                break;
            }
        break;
    }
    case EMU_CMD_MEM_ALLOC: {
        EmuReqMemAlloc q;
        EmuRespMemAlloc r;
        memcpy(&q, req, sizeof(q));
        memcpy(&r, slot->resp, sizeof(r));
        if (f->nallocs < FZ_MAX_ALLOCS)
            f->allocs[f->nallocs++] = (FzAlloc){ r.va, r.size, q.device };
        else
            mem_free(&f->c, r.va, NULL); /* garbage that happened to succeed */
        break;
    }
    case EMU_CMD_MEM_FREE: {
        EmuReqMemFree q;
        EmuRespMemFree r;
        memcpy(&q, req, sizeof(q));
        memcpy(&r, slot->resp, sizeof(r));
        for (unsigned i = 0; i < f->nallocs; i++)
            if (f->allocs[i].va == q.va) {
                f->allocs[i] = f->allocs[--f->nallocs];
                break;
            }
        if (r.seg_released)
            fz_exports_drop(f, EMU_SHARE_IPC, r.seg_va, r.seg_va + r.seg_size);
        break;
    }
    case EMU_CMD_IPC_EXPORT: {
        EmuReqIpcExport q;
        memcpy(&q, req, sizeof(q));
        fz_export_add(f, EMU_SHARE_IPC, q.va, slot);
        break;
    }
    case EMU_CMD_SHARE_EXPORT: {
        EmuReqShareExport q;
        memcpy(&q, req, sizeof(q));
        CU_ASSERT_EQUAL(q.kind, EMU_SHARE_DEFAULT);     /* no FABRIC on A2 */
        fz_export_add(f, q.kind, q.handle, slot);
        break;
    }
    case EMU_CMD_SHARE_WITHDRAW: {
        EmuReqShareToken q;
        memcpy(&q, req, sizeof(q));
        for (unsigned i = 0; i < f->nexports; i++)
            if (f->exports[i].kind == q.kind && memcmp(f->exports[i].token, q.token, q.len) == 0) {
                f->exports[i] = f->exports[--f->nexports];
                break;
            }
        break;
    }
    case EMU_CMD_IPC_IMPORT: {
        EmuReqIpcImport q;
        EmuRespIpcImport r;
        memcpy(&q, req, sizeof(q));
        memcpy(&r, slot->resp, sizeof(r));
        CU_ASSERT_EQUAL(r.size, 2 * MiB);   /* only the peer's exports are importable */
        CU_ASSERT_EQUAL(emu_va_device(r.va), r.device);
        if (f->nipcs < FZ_MAX_IPCS)
            f->ipcs[f->nipcs++] = (FzIpc){ r.va, r.size, r.device };
        else
            fz_undo(f, EMU_CMD_IPC_CLOSE, r.va);
        break;
    }
    case EMU_CMD_IPC_CLOSE: {
        EmuReqVa q;
        memcpy(&q, req, sizeof(q));
        bool known = false;
        for (unsigned i = 0; i < f->nipcs && !known; i++)
            if (f->ipcs[i].va == q.va) {
                f->ipcs[i] = f->ipcs[--f->nipcs];
                known = true;
            }
        CU_ASSERT_TRUE(known);
        break;
    }
    case EMU_CMD_SHARE_IMPORT: {
        EmuReqShareImport q;
        EmuRespPhys r;
        memcpy(&q, req, sizeof(q));
        memcpy(&r, slot->resp, sizeof(r));
        CU_ASSERT_NOT_EQUAL(r.handle, 0);
        CU_ASSERT_EQUAL(r.size, 2 * MiB);
        CU_ASSERT_EQUAL(r.device, q.device);
        if (f->nphys < FZ_MAX_PHYS && !fz_phys_of(f, r.handle))
            f->phys[f->nphys++] = (FzPhys){ r.handle, r.size, r.device, 1 };
        else
            fz_undo(f, EMU_CMD_PHYS_FREE, r.handle);
        break;
    }
    case EMU_CMD_HOST_ALLOC: {
        EmuReqHostAlloc q;
        memcpy(&q, req, sizeof(q));
        if (f->nhosts < FZ_MAX_HOSTS)
            f->hosts[f->nhosts++] = (FzHost){ q.client_addr, q.size };
        else
            host_free(&f->c, q.client_addr);
        break;
    }
    case EMU_CMD_HOST_FREE: {
        EmuReqHostFree q;
        memcpy(&q, req, sizeof(q));
        for (unsigned i = 0; i < f->nhosts; i++)
            if (f->hosts[i].addr == q.client_addr) {
                f->hosts[i] = f->hosts[--f->nhosts];
                break;
            }
        break;
    }
    case EMU_CMD_STREAM_CREATE: {
        EmuReqStreamCreate q;
        EmuRespStreamCreate r;
        memcpy(&q, req, sizeof(q));
        memcpy(&r, slot->resp, sizeof(r));
        if (f->nstreams < FZ_MAX_STREAMS)
            f->streams[f->nstreams++] = (FzStream){ .id = r.stream, .dev = q.device };
        else
            stream_destroy(&f->c, r.stream, 1);
        break;
    }
    case EMU_CMD_STREAM_DESTROY: {
        EmuReqStreamDestroy q;
        memcpy(&q, req, sizeof(q));
        for (unsigned i = 0; i < f->nnotifies; i++)
            if (f->notifies[i].set_on == q.stream + 1)
                f->notifies[i].set_on = 0;
        for (unsigned i = 0; i < f->nevents; i++)
            if (f->events[i].rec_on == q.stream + 1)
                f->events[i].rec_on = 0;
        for (unsigned i = 0; i < f->nstreams; i++)
            if (f->streams[i].id == q.stream) {
                f->streams[i] = f->streams[--f->nstreams];
                break;
            }
        break;
    }
    case EMU_CMD_NOTIFY_CREATE: {
        EmuReqDevice q;
        EmuRespNotify r;
        memcpy(&q, req, sizeof(q));
        memcpy(&r, slot->resp, sizeof(r));
        CU_ASSERT_EQUAL(r.device, q.device);
        fz_notify_add(f, &r, false);
        break;
    }
    case EMU_CMD_NOTIFY_IMPORT: {
        EmuRespNotify r;
        memcpy(&r, slot->resp, sizeof(r));
        fz_notify_add(f, &r, true);
        break;
    }
    case EMU_CMD_NOTIFY_DESTROY: {
        EmuReqNotify q;
        memcpy(&q, req, sizeof(q));
        FzNotify *n = fz_notify_of(f, q.handle);
        CU_ASSERT_PTR_NOT_NULL(n);  /* the session knows no other notifies */
        if (n)
            fz_notify_gone(f, (unsigned)(n - f->notifies));
        break;
    }
    case EMU_CMD_NOTIFY_RESET: {
        EmuReqNotify q;
        memcpy(&q, req, sizeof(q));
        FzNotify *n = fz_notify_of(f, q.handle);
        CU_ASSERT_PTR_NOT_NULL(n);
        if (n)
            n->set_on = 0;
        break;
    }
    case EMU_CMD_NOTIFY_EXPORT: {
        EmuReqNotify q;
        memcpy(&q, req, sizeof(q));
        FzNotify *n = fz_notify_of(f, q.handle);
        CU_ASSERT_TRUE(n && !n->imported);
        fz_export_add(f, EMU_SHARE_NOTIFY, q.handle, slot);
        break;
    }
    case EMU_CMD_EVENT_CREATE: {
        EmuReqEventCreate q;
        EmuRespNotify r;
        memcpy(&q, req, sizeof(q));
        memcpy(&r, slot->resp, sizeof(r));
        CU_ASSERT_EQUAL(r.device, q.device);
        /* a device event at once, or none until a record or an id query */
        CU_ASSERT_TRUE(q.resource == EMU_EVENT_RES_NOW ? r.id < DEV_EVENT_MAX
                                                       : r.id == EVENT_NO_ID);
        fz_event_add(f, &r, false);
        break;
    }
    case EMU_CMD_EVENT_IMPORT: {
        EmuRespNotify r;
        memcpy(&r, slot->resp, sizeof(r));
        fz_event_add(f, &r, true);
        break;
    }
    case EMU_CMD_EVENT_DESTROY: {
        EmuReqNotify q;
        memcpy(&q, req, sizeof(q));
        FzEvent *e = fz_event_of(f, q.handle);
        CU_ASSERT_PTR_NOT_NULL(e);  /* the session knows no other events */
        if (e)
            fz_event_gone(f, (unsigned)(e - f->events));
        break;
    }
    case EMU_CMD_EVENT_QUERY: {
        EmuReqEventQuery q;
        EmuRespEvent r;
        memcpy(&q, req, sizeof(q));
        memcpy(&r, slot->resp, sizeof(r));
        FzEvent *e = fz_event_of(f, q.handle);
        CU_ASSERT_PTR_NOT_NULL(e);
        CU_ASSERT_TRUE(r.ran <= r.queued);
        if (q.take_id)
            CU_ASSERT_TRUE(r.id < DEV_EVENT_MAX);
        if (e && !e->recorded && !e->imported)
            CU_ASSERT_TRUE(r.queued == 0 && r.ran == 0);
        f->event_queries++;
        break;
    }
    case EMU_CMD_EVENT_EXPORT: {
        EmuReqNotify q;
        memcpy(&q, req, sizeof(q));
        FzEvent *e = fz_event_of(f, q.handle);
        CU_ASSERT_TRUE(e && !e->imported);
        CU_ASSERT_EQUAL(q.flags, 0);
        fz_export_add(f, EMU_SHARE_EVENT, q.handle, slot);
        break;
    }
    case EMU_CMD_EVENT_AVAIL: {
        EmuRespEvent r;
        memcpy(&r, slot->resp, sizeof(r));
        CU_ASSERT_TRUE(r.queued > DEV_EVENT_MAX - 256 && r.queued <= DEV_EVENT_MAX);
        break;
    }
    case EMU_CMD_STREAM_CTL:
        f->stream_ctls++;
        break;
    case EMU_CMD_STREAM_SUBMIT: {
        EmuReqSubmit q;
        EmuRespSubmit r;
        memcpy(&q, req, sizeof(q));
        memcpy(&r, slot->resp, sizeof(r));
        if (q.task.type == EMU_TASK_EVENT_RECORD || q.task.type == EMU_TASK_EVENT_WAIT ||
            q.task.type == EMU_TASK_EVENT_RESET) {
            FzEvent *e = fz_event_of(f, q.task.value);
            CU_ASSERT_PTR_NOT_NULL(e);
            CU_ASSERT_EQUAL(q.task.flags, 0);
            if (q.task.type == EMU_TASK_EVENT_RECORD) {
                f->event_records++;
                if (e) {
                    e->recorded = true;
                    e->rec_on = q.stream + 1;
                }
            } else if (q.task.type == EMU_TASK_EVENT_WAIT) {
                f->event_waits++;
                CU_ASSERT_TRUE(q.task.height <= 1);   /* the fuzz never waits longer */
                if (e && e->recorded && e->rec_on != q.stream + 1)
                    f->wild_event_waits++;
                if (e && e->rec_on != q.stream + 1)
                    CU_ASSERT_EQUAL(q.task.height, 1);
            } else {
                f->event_resets++;
                CU_ASSERT_TRUE(e && !e->imported);
            }
        }
        if (q.task.type == EMU_TASK_NOTIFY_RECORD || q.task.type == EMU_TASK_NOTIFY_WAIT) {
            FzNotify *n = fz_notify_of(f, q.task.value);
            CU_ASSERT_PTR_NOT_NULL(n);
            CU_ASSERT_EQUAL(q.task.flags, 0);
            if (q.task.type == EMU_TASK_NOTIFY_RECORD) {
                f->notify_records++;
                if (n)
                    n->set_on = q.stream + 1;
                /* half the time the creator's wait follows at once, behind the
                 * record on the same stream: it passes without waiting */
                uint32_t seq = 0;
                if (n && !n->imported && rnd_below(2)) {
                    EmuTask w = { .type = EMU_TASK_NOTIFY_WAIT, .value = n->handle, .size = 1 };
                    int st = submit(&f->c, q.stream, w, &seq);
                    CU_ASSERT_EQUAL(st, ACL_SUCCESS);
                    if (st == ACL_SUCCESS) {
                        r.seq = seq;
                        n->set_on = 0;
                        f->notify_waits++;
                    }
                }
            } else {
                f->notify_waits++;
                CU_ASSERT_TRUE(n && !n->imported);
                CU_ASSERT_TRUE(q.task.size == 1);  /* the fuzz never waits longer */
                if (n && n->set_on != q.stream + 1)
                    f->wild_waits++;
                if (n)
                    n->set_on = 0;
            }
        }
        for (unsigned i = 0; i < f->nstreams; i++)
            if (f->streams[i].id == q.stream) {
                f->streams[i].last = r.seq;
                f->streams[i].has_last = true;
            }
        break;
    }
    case EMU_CMD_DEVICE_CLOSE: {
        EmuReqDevice q;
        memcpy(&q, req, sizeof(q));
        fz_exports_drop(f, EMU_SHARE_IPC, EMU_VA_WINDOW_LO + (uint64_t)q.device * EMU_VA_DEVICE_SPAN,
                        EMU_VA_WINDOW_LO + (uint64_t)(q.device + 1) * EMU_VA_DEVICE_SPAN);
        for (unsigned i = 0; i < f->nallocs;)
            if (f->allocs[i].dev == q.device)
                f->allocs[i] = f->allocs[--f->nallocs];
            else
                i++;
        for (unsigned i = 0; i < f->nstreams;)
            if (f->streams[i].dev == q.device)
                f->streams[i] = f->streams[--f->nstreams];
            else
                i++;
        /* the device's notifies go (imported ones stay); queued records may
         * have been dropped with the streams */
        for (unsigned i = 0; i < f->nnotifies;)
            if (!f->notifies[i].imported && f->notifies[i].dev == q.device)
                fz_notify_gone(f, i);
            else
                i++;
        for (unsigned i = 0; i < f->nnotifies; i++)
            f->notifies[i].set_on = 0;
        for (unsigned i = 0; i < f->nevents;)
            if (!f->events[i].imported && f->events[i].dev == q.device)
                fz_event_gone(f, i);
            else
                i++;
        for (unsigned i = 0; i < f->nevents; i++)
            f->events[i].rec_on = 0;
        break;
    }
    default:
        break;
    }
}

static void test_fuzz(void)
{
    const unsigned N = 200000;
    Fuzz *f = calloc(1, sizeof(*f));
    int fds_before = open_fd_count();
    CU_ASSERT_TRUE_FATAL(client_open(&f->c, 4242));
    CU_ASSERT_TRUE_FATAL(client_open(&f->peer, FZ_PEER_PID));
    fz_peer_setup(f, 4242);
    rng = 0x5eed5eed12345678ull;
    uint8_t req[EMU_SLOT_PAYLOAD];
    gint64 t0 = g_get_monotonic_time();

    for (unsigned n = 0; n < N; n++) {
        uint32_t cmd, len;
        if (rnd_below(2)) {
            /* garbage: any command, any length, random bytes */
            cmd = (uint32_t)rnd_below(EMU_CMD_COUNT + 4);
            switch (rnd_below(4)) {
            case 0: len = cmd_lens[rnd_below(NCMDLEN)].len; break;
            case 1: len = (uint32_t)rnd_below(64); break;
            case 2: len = (uint32_t)rnd_below(EMU_SLOT_PAYLOAD + 1); break;
            default: len = rnd_below(2) ? (uint32_t)rnd() : EMU_SLOT_PAYLOAD + 1; break;
            }
            if (rnd_below(64) == 0)
                cmd = (uint32_t)rnd();
            uint32_t fill = len < EMU_SLOT_PAYLOAD ? len : EMU_SLOT_PAYLOAD;
            for (uint32_t i = 0; i < fill; i += 8) {
                uint64_t v = rnd();
                memcpy(req + i, &v, fill - i < 8 ? fill - i : 8);
            }
        } else {
            cmd = fz_valid(f, req, &len);
        }

        EmuSlot *slot = emu_session_slot(f->c.s, (unsigned)rnd_below(EMU_CHAN_SLOTS));
        slot->cmd = cmd;
        slot->req_len = len;
        memcpy(slot->req, req, len <= EMU_SLOT_PAYLOAD ? len : EMU_SLOT_PAYLOAD);
        slot->status = 0x7eadbeef;
        slot->fd_tag = 0xffffffffu;
        slot->resp_len = 0xffffffffu;
        __atomic_store_n(&slot->state, EMU_SLOT_POSTED, __ATOMIC_SEQ_CST);
        emu_session_handle(f->c.s, slot);

        if (__atomic_load_n(&slot->state, __ATOMIC_SEQ_CST) != EMU_SLOT_DONE) {
            CU_FAIL("slot not DONE");
            break;
        }
        int si = status_index(slot->status);
        if (si < 0) {
            if (f->bad_status++ < 5)
                fprintf(stderr, "fuzz %u: cmd %u len %u -> undocumented status %d\n", n, cmd,
                        len, slot->status);
            continue;
        }
        f->by_status[si]++;
        if (si == 8 && cmd != EMU_CMD_STREAM_SUBMIT && f->bad_status++ < 5)
            fprintf(stderr, "fuzz %u: cmd %u len %u -> status %d (a task's)\n", n, cmd, len,
                    slot->status);
        bool ok = slot->status == ACL_SUCCESS;
        uint32_t want_len = ok ? expected_resp_len(cmd) : 0;
        if (slot->resp_len != want_len && f->bad_resp_len++ < 5)
            fprintf(stderr, "fuzz %u: cmd %u status %d resp_len %u, expected %u\n", n, cmd,
                    slot->status, slot->resp_len, want_len);
        bool want_fd = false;
        if (ok && cmd == EMU_CMD_MEM_ALLOC) {
            EmuRespMemAlloc r;
            memcpy(&r, slot->resp, sizeof(r));
            want_fd = r.new_seg != 0;
        } else if (ok && (cmd == EMU_CMD_HOST_ALLOC || cmd == EMU_CMD_VMM_MAP ||
                          cmd == EMU_CMD_IPC_IMPORT)) {
            want_fd = true;
        }
        if (want_fd != (slot->fd_tag != 0)) {
            if (f->bad_fd++ < 5)
                fprintf(stderr, "fuzz %u: cmd %u status %d fd_tag %u\n", n, cmd, slot->status,
                        slot->fd_tag);
        }
        if (slot->fd_tag) {
            int fd = recv_fd(&f->c, slot->fd_tag);
            if (fd < 0) {
                CU_FAIL("announced fd not received");
                break;
            }
            close(fd);
        }
        if (ok) {
            if (cmd < EMU_CMD_COUNT + 4)
                f->ok_by_cmd[cmd]++;
            fz_track(f, cmd, req, slot);
        }
        if (rnd_below(1024) == 0)
            fz_peer_import(f);
    }
    gint64 t1 = g_get_monotonic_time();

    CU_ASSERT_EQUAL(f->bad_status, 0);
    CU_ASSERT_EQUAL(f->bad_resp_len, 0);
    CU_ASSERT_EQUAL(f->bad_fd, 0);
    CU_ASSERT_TRUE(socket_empty(&f->c));
    /* the mix must reach past argument checking for every command */
    for (uint32_t cmd = 1; cmd < EMU_CMD_COUNT; cmd++) {
        CU_ASSERT_TRUE(f->ok_by_cmd[cmd] > 0);
        if (!f->ok_by_cmd[cmd])
            fprintf(stderr, "fuzz: command %u never succeeded\n", cmd);
    }
    fprintf(stderr, "\n    fuzz: %u requests in %.1f s: ok %u, PARAM_INVALID %u, "
            "INVALID_DEVICEID %u, MEMORY_ALLOCATION %u, NO_STREAM %u, RESOURCE_ALLOC %u, "
            "NO_PERMISSION %u, FEATURE_NOT_SUPPORT %u, stopped stream %u; "
            "%u fds; live %u allocs, %u host bufs, %u streams, %u handles, %u reservations, "
            "%u mappings, %u exports, %u IPC imports; peer imports %u of %u\n    ok by cmd:",
            N, (double)(t1 - t0) / 1e6, f->by_status[0], f->by_status[1], f->by_status[2],
            f->by_status[3], f->by_status[4], f->by_status[5], f->by_status[6], f->by_status[7], f->by_status[8],
            f->c.fds_received, f->nallocs, f->nhosts, f->nstreams, f->nphys, f->nres, f->nmaps,
            f->nexports, f->nipcs, f->peer_ok, f->peer_tries);
    for (uint32_t cmd = 1; cmd < EMU_CMD_COUNT; cmd++)
        fprintf(stderr, " %u", f->ok_by_cmd[cmd]);
    fprintf(stderr, "\n");

    /* live streams finish their work; task failures are only DMA errors */
    for (unsigned i = 0; i < f->nstreams; i++) {
        EmuStreamState *st = stream_state(&f->c, f->streams[i].id);
        if (f->streams[i].has_last)
            CU_ASSERT_TRUE(wait_done(st, f->streams[i].last));
        int e = __atomic_load_n(&st->error, __ATOMIC_ACQUIRE);
        /* a wild notify or event wait (or one whose record it raced with)
         * times out; an abort (STREAM_CTL) reports itself */
        CU_ASSERT_TRUE(e == ACL_SUCCESS || e == ACL_ERROR_RT_SYS_DMA ||
                       e == ACL_ERROR_RT_WAIT_TIMEOUT || e == ACL_ERROR_RT_STREAM_ABORT);
        if (!(e == ACL_SUCCESS || e == ACL_ERROR_RT_SYS_DMA || e == ACL_ERROR_RT_WAIT_TIMEOUT ||
              e == ACL_ERROR_RT_STREAM_ABORT))
            fprintf(stderr, "fuzz: stream %u ended with error %d\n", f->streams[i].id, e);
    }
    /* notify tasks were queued, within the budget of waits that time out */
    CU_ASSERT_TRUE(f->notify_records > 0 && f->notify_waits > 0);
    CU_ASSERT_TRUE(f->wild_waits <= FZ_WILD_WAITS);
    fprintf(stderr, "    notifies: %u live, %u records, %u waits (%u wild)\n", f->nnotifies,
            f->notify_records, f->notify_waits, f->wild_waits);
    /* event tasks too, within the budget of waits on another stream's record */
    CU_ASSERT_TRUE(f->event_records > 0 && f->event_waits > 0 && f->event_resets > 0);
    CU_ASSERT_TRUE(f->event_queries > 0);
    CU_ASSERT_TRUE(f->wild_event_waits <= FZ_WILD_EVENT_WAITS);
    fprintf(stderr, "    events: %u live, %u records, %u waits (%u on another stream), "
            "%u resets, %u queries; %u stream controls\n", f->nevents, f->event_records,
            f->event_waits, f->wild_event_waits, f->event_resets, f->event_queries,
            f->stream_ctls);

    /* the sharing statuses were seen, and the peer imported some exports */
    CU_ASSERT_TRUE(f->by_status[6] > 0);
    CU_ASSERT_TRUE(f->by_status[7] > 0);
    CU_ASSERT_TRUE(f->peer_ok > 0);

    client_close(&f->c);
    /* the peer's imports of the fuzz session's exports outlive it */
    CU_ASSERT_TRUE(socket_empty(&f->peer));
    client_close(&f->peer);
    CU_ASSERT_TRUE(all_hbm_free(srv));
    for (int d = 0; d < ndev; d++)
        CU_ASSERT_TRUE(va_range_is_empty(srv->devices[0][d]->heap));
    CU_ASSERT_EQUAL(share_count(srv->shares), 0);
    for (int d = 0; d < ndev; d++) {
        CU_ASSERT_EQUAL(notify_count(srv->devices[0][d]), 0);
        CU_ASSERT_EQUAL(event_count(srv->devices[0][d]), 0);
    }
    /* every memory object fd the session held is closed */
    CU_ASSERT_EQUAL(open_fd_count(), fds_before);
    free(f);
}

/*
 * A hostile client rewrites its slots while the emulator serves them: the
 * session copies each request out once, so it must still answer every slot
 * with a documented status and never crash.
 */
typedef struct Scribbler {
    Session *s;
    int stop;
    uint64_t seed;
} Scribbler;

static gpointer scribbler_main(gpointer data)
{
    Scribbler *sc = data;
    uint64_t x = sc->seed;
    while (!__atomic_load_n(&sc->stop, __ATOMIC_ACQUIRE)) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        uint64_t v = x * 0x2545F4914F6CDD1Dull;
        EmuSlot *slot = emu_session_slot(sc->s, 32 + (unsigned)(v % 32));
        switch ((v >> 8) % 4) {
        case 0:
            __atomic_store_n(&slot->cmd, (uint32_t)(v >> 16) % (EMU_CMD_COUNT + 2),
                             __ATOMIC_RELAXED);
            break;
        case 1:
            __atomic_store_n(&slot->req_len, (uint32_t)(v >> 20) % (EMU_SLOT_PAYLOAD + 64),
                             __ATOMIC_RELAXED);
            break;
        default: {
            unsigned off = (unsigned)(v >> 24) % (EMU_SLOT_PAYLOAD / 8);
            __atomic_store_n((uint64_t *)(void *)slot->req + off, v, __ATOMIC_RELAXED);
            break;
        }
        }
    }
    return NULL;
}

static void test_scribbled_slots(void)
{
    Client c;
    CU_ASSERT_TRUE_FATAL(client_open(&c, 1015));
    Scribbler sc = { .s = c.s, .seed = 0xfeedfacecafebeefull };
    GThread *th = g_thread_new("scribbler", scribbler_main, &sc);
    rng = 0xabcdef0123456789ull;
    unsigned bad = 0;
    for (int n = 0; n < 20000; n++) {
        EmuSlot *slot = emu_session_slot(c.s, 32 + (unsigned)rnd_below(32));
        /* a valid-looking request the scribbler will likely corrupt */
        EmuReqMemAlloc q = { .device = (int32_t)rnd_below(8), .size = 1 + rnd_below(8192) };
        slot->cmd = rnd_below(2) ? EMU_CMD_MEM_ALLOC : (uint32_t)rnd_below(EMU_CMD_COUNT + 1);
        slot->req_len = sizeof(q);
        memcpy(slot->req, &q, sizeof(q));
        __atomic_store_n(&slot->state, EMU_SLOT_POSTED, __ATOMIC_SEQ_CST);
        emu_session_handle(c.s, slot);
        bad += __atomic_load_n(&slot->state, __ATOMIC_SEQ_CST) != EMU_SLOT_DONE;
        bad += status_index(slot->status) < 0;
        bad += slot->resp_len > EMU_SLOT_PAYLOAD;
        if (slot->fd_tag) {
            int fd = recv_fd(&c, slot->fd_tag);
            bad += fd < 0;
            if (fd >= 0)
                close(fd);
        }
    }
    __atomic_store_n(&sc.stop, 1, __ATOMIC_RELEASE);
    g_thread_join(th);
    CU_ASSERT_EQUAL(bad, 0);
    client_close(&c);
    CU_ASSERT_TRUE(all_hbm_free(srv));
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return CU_get_error();
    CU_pSuite s = CU_add_suite("session", suite_init, suite_clean);
    if (!s || !CU_add_test(s, "channel layout", test_channel_layout) ||
        !CU_add_test(s, "NOP and device commands", test_nop_and_device_cmds) ||
        !CU_add_test(s, "MEM_ALLOC / MEM_FREE / MEM_INFO", test_mem_alloc_free) ||
        !CU_add_test(s, "MEM_INFO attributes", test_mem_info_attrs) ||
        !CU_add_test(s, "HOST_ALLOC / HOST_FREE", test_host_alloc_free) ||
        !CU_add_test(s, "HOST_ALLOC rejects a range containing a buffer",
                     test_host_alloc_rejects_containing_range) ||
        !CU_add_test(s, "streams end to end", test_streams_end_to_end) ||
        !CU_add_test(s, "virtual memory end to end", test_vmm_end_to_end) ||
        !CU_add_test(s, "reclaim returns physical handles", test_vmm_reclaim) ||
        !CU_add_test(s, "wrong req_len", test_wrong_req_len) ||
        !CU_add_test(s, "unknown cmd, oversized req_len", test_unknown_cmd_and_oversized) ||
        !CU_add_test(s, "device out of range", test_bad_device) ||
        !CU_add_test(s, "event handles per session are bounded", test_event_handle_cap) ||
        !CU_add_test(s, "a3: devices of the session's server", test_a3_servers) ||
        !CU_add_test(s, "sessions are isolated", test_cross_session) ||
        !CU_add_test(s, "DEVICE_CLOSE releases the device", test_device_close_releases) ||
        !CU_add_test(s, "1984 streams per device", test_stream_limit) ||
        !CU_add_test(s, "client gone before its fd", test_peer_gone) ||
        !CU_add_test(s, "sharing between two sessions", test_share_end_to_end) ||
        !CU_add_test(s, "fuzz", test_fuzz) ||
        !CU_add_test(s, "slots rewritten while served", test_scribbled_slots)) {
        CU_cleanup_registry();
        return 1;
    }
    return cu_run_all();
}
