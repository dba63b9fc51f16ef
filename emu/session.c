/*
 * session.c - handshake, request dispatch and reclamation of one client.
 */
#define _GNU_SOURCE
#include "session_int.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acl/acl_base.h"
#include "acl/acl_rt.h"
#include "npuemu/futex.h"
#include "npuemu/u64tree.h"

Device *session_device(Session *s, int32_t dev)
{
    if (dev < 0 || dev >= s->srv->profile->devices_per_server)
        return NULL;
    return s->srv->devices[s->server][dev];
}

/* ---- address resolution for the stream engine ---- */

static HostBuf *host_at(Session *s, uint64_t addr)
{
    GTreeNode *n = emu_tree_floor(s->host, addr);
    if (!n)
        return NULL;
    HostBuf *h = g_tree_node_value(n);
    return addr - h->addr < h->size ? h : NULL;
}

static uint8_t *session_resolve(void *opaque, int device, uint64_t addr, uint64_t *len,
                                uint32_t access, MemObj **ref)
{
    Session *s = opaque;
    if (addr >= EMU_VA_WINDOW_LO && addr < EMU_VA_WINDOW_HI)
        return s->as ? aspace_resolve(s->as, device, addr, len, access, ref) : NULL;
    uint8_t *p = NULL;
    g_mutex_lock(&s->lock);
    HostBuf *h = host_at(s, addr);
    if (h) {
        uint64_t left = h->size - (addr - h->addr);
        if (*len > left)
            *len = left;
        *ref = memobj_ref(h->obj);
        p = h->obj->map + (addr - h->addr);
    }
    g_mutex_unlock(&s->lock);
    /* Not host memory: perhaps a NoUC reservation, which lies outside the
     * window (its part below 128 TiB is claimed in the client, so no pinned
     * buffer can overlap it). */
    if (!h && s->as)
        p = aspace_resolve(s->as, device, addr, len, access, ref);
    return p;
}

/* ---- request handlers: each returns an aclError ---- */

static int handle_device_open(Session *s, const void *req, uint32_t len)
{
    REQ(EmuReqDevice, q);
    if (!session_device(s, q->device))
        return ACL_ERROR_RT_INVALID_DEVICEID;
    if (!s->opened[q->device])
        emu_log("pid %d opened device %d (server %d)", (int)s->pid, q->device, s->server);
    s->opened[q->device] = true;
    return ACL_SUCCESS;
}

static void streams_release(Session *s, int32_t device, bool force, unsigned *count)
{
    for (uint32_t i = 0; i < EMU_CHAN_STREAMS; i++) {
        EngineStream *st = s->streams[i];
        if (!st || (device >= 0 && engine_stream_device(st) != device))
            continue;
        g_mutex_lock(&s->lock);
        s->streams[i] = NULL;
        s->streams_on[engine_stream_device(st)]--;
        g_mutex_unlock(&s->lock);
        engine_stream_destroy(st, force);
        if (count)
            (*count)++;
    }
}

static int handle_device_close(Session *s, const void *req, uint32_t len)
{
    REQ(EmuReqDevice, q);
    Device *d = session_device(s, q->device);
    if (!d)
        return ACL_ERROR_RT_INVALID_DEVICEID;
    unsigned streams = 0;
    uint64_t bytes = 0;
    streams_release(s, q->device, q->force != 0, &streams);
    share_withdraw_range(s->srv->shares, s->id,
                         EMU_VA_WINDOW_LO + (uint64_t)q->device * EMU_VA_DEVICE_SPAN,
                         EMU_VA_DEVICE_SPAN);
    /* The device's notifies go with it (imported ones stay the exporter's). */
    GHashTableIter it;
    gpointer value;
    g_hash_table_iter_init(&it, s->notifies);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        SessNotify *sn = value;
        if (!sn->imported && sn->device == q->device) {
            share_withdraw_notify(s->srv->shares, s->id, sn->handle);
            g_hash_table_iter_remove(&it);
        }
    }
    unsigned n = device_release_owner(d, s->id, &bytes);
    if (s->opened[q->device] || n || streams)
        emu_log("pid %d reset device %d: released %u allocations (%" G_GUINT64_FORMAT
                " bytes), %u streams", (int)s->pid, q->device, n, bytes, streams);
    s->opened[q->device] = false;
    return ACL_SUCCESS;
}

static int handle_device_sync(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqDevice, q);
    if (!session_device(s, q->device))
        return ACL_ERROR_RT_INVALID_DEVICEID;
    RESP(EmuRespDeviceSync, p);
    p->nstreams = s->streams_on[q->device];
    return ACL_SUCCESS;
}

static int handle_mem_alloc(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqMemAlloc, q);
    Device *d = session_device(s, q->device);
    if (!d)
        return ACL_ERROR_RT_INVALID_DEVICEID;
    if (q->size == 0)
        return ACL_ERROR_RT_PARAM_INVALID;
    DevAllocResult a;
    if (q->flags & ~EMU_ALLOC_ALIGN32_ONLY)
        return ACL_ERROR_RT_PARAM_INVALID;
    int err = device_mem_alloc(d, s->id, q->size, q->policy,
                               (q->flags & EMU_ALLOC_ALIGN32_ONLY) != 0, &a);
    if (err != ACL_SUCCESS)
        return err;
    RESP(EmuRespMemAlloc, p);
    *p = (EmuRespMemAlloc){
        .va = a.va, .size = a.size, .seg_va = a.seg_va, .seg_size = a.seg_size,
        .new_seg = a.new_obj != NULL, .page_size = a.page_size,
    };
    r->fd_obj = a.new_obj;
    return ACL_SUCCESS;
}

static int handle_mem_free(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqMemFree, q);
    if (q->va < EMU_VA_WINDOW_LO || q->va >= EMU_VA_WINDOW_HI)
        return ACL_ERROR_RT_PARAM_INVALID;
    int32_t dev = (int32_t)((q->va - EMU_VA_WINDOW_LO) / EMU_VA_DEVICE_SPAN);
    Device *d = session_device(s, dev);
    if (!d)
        return ACL_ERROR_RT_PARAM_INVALID;
    DevFreeResult f;
    int err = device_mem_free(d, s->id, q->va, &f);
    if (err != ACL_SUCCESS)
        return err;
    /* Freed memory can no longer be imported by key (imports live on). */
    if (f.seg_released)
        share_withdraw_range(s->srv->shares, s->id, f.seg_va, f.seg_size);
    RESP(EmuRespMemFree, p);
    *p = (EmuRespMemFree){
        .device = dev, .seg_released = f.seg_released, .seg_va = f.seg_va,
        .seg_size = f.seg_size, .size = f.size,
    };
    return ACL_SUCCESS;
}

static int handle_mem_info(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqMemInfo, q);
    Device *d = session_device(s, q->device);
    if (!d)
        return ACL_ERROR_RT_INVALID_DEVICEID;
    RESP(EmuRespMemInfo, p);
    switch (q->attr) {
    case ACL_DDR_MEM:
    case ACL_DDR_MEM_HUGE:
    case ACL_DDR_MEM_NORMAL:
    case ACL_DDR_MEM_P2P_HUGE:
    case ACL_DDR_MEM_P2P_NORMAL:
        /* A2 / A3 devices carry HBM only. */
        *p = (EmuRespMemInfo){ 0, 0 };
        return ACL_SUCCESS;
    case ACL_HBM_MEM:
        device_mem_info(d, &p->free, &p->total);
        return ACL_SUCCESS;
    case ACL_HBM_MEM_NORMAL:
    case ACL_HBM_MEM_P2P_NORMAL:
        device_mem_info(d, &p->free, &p->total);
        p->free = device_mem_fits(d, HBM_PAGE_NORMAL);
        return ACL_SUCCESS;
    case ACL_HBM_MEM_HUGE:
    case ACL_HBM_MEM_P2P_HUGE:
        /* What huge pages still fit: fragmentation by normal pages shows. */
        device_mem_info(d, &p->free, &p->total);
        p->free = device_mem_fits(d, HBM_PAGE_HUGE);
        return ACL_SUCCESS;
    case ACL_HBM_MEM_HUGE1G:
    case ACL_HBM_MEM_P2P_HUGE1G:
        device_mem_info(d, &p->free, &p->total);
        p->free = device_mem_fits(d, HBM_PAGE_1G);
        return ACL_SUCCESS;
    default:
        r->resp_len = 0;
        return ACL_ERROR_RT_PARAM_INVALID;
    }
}

static int handle_mem_usage(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqDevice, q);
    Device *d = session_device(s, q->device);
    if (!d)
        return ACL_ERROR_RT_INVALID_DEVICEID;
    RESP(EmuRespMemUsage, p);
    device_usage(d, &p->malloc_bytes, &p->malloc_peak, &p->phys_bytes, &p->phys_peak);
    return ACL_SUCCESS;
}

static int handle_host_alloc(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqHostAlloc, q);
    uint64_t end = q->client_addr + q->size;
    if (q->size == 0 || q->size % HBM_PAGE_NORMAL || q->size > (1ull << 40) ||
        q->client_addr % HBM_PAGE_NORMAL || end < q->client_addr ||
        (q->client_addr < EMU_VA_WINDOW_HI && end > EMU_VA_WINDOW_LO))
        return ACL_ERROR_RT_PARAM_INVALID;
    g_mutex_lock(&s->lock);
    /* Overlap: a buffer containing the start, or one starting inside the range. */
    GTreeNode *next = g_tree_lower_bound(s->host, EMU_KEY(q->client_addr));
    bool overlaps = host_at(s, q->client_addr) ||
                    (next && (uint64_t)(uintptr_t)g_tree_node_key(next) < end);
    g_mutex_unlock(&s->lock);
    if (overlaps)
        return ACL_ERROR_RT_PARAM_INVALID;
    MemObj *obj = memobj_new("npu-emu-host", q->size);
    if (!obj)
        return ACL_ERROR_RT_MEMORY_ALLOCATION;
    HostBuf *h = g_new(HostBuf, 1);
    *h = (HostBuf){ .addr = q->client_addr, .size = q->size, .obj = obj };
    g_mutex_lock(&s->lock);
    g_tree_insert(s->host, EMU_KEY(h->addr), h);
    g_mutex_unlock(&s->lock);
    r->fd_obj = memobj_ref(obj);
    return ACL_SUCCESS;
}

static int handle_host_alias(Session *s, const void *req, uint32_t len)
{
    REQ(EmuReqHostAlias, q);
    g_mutex_lock(&s->lock);
    HostBuf *h = g_tree_lookup(s->host, EMU_KEY(q->client_addr));
    uint64_t end = q->alias + (h ? h->size : 0);
    GTreeNode *next = g_tree_lower_bound(s->host, EMU_KEY(q->alias));
    int err = ACL_SUCCESS;
    if (!h || q->alias % HBM_PAGE_NORMAL || end < q->alias ||
        (q->alias < EMU_VA_WINDOW_HI && end > EMU_VA_WINDOW_LO) || host_at(s, q->alias) ||
        (next && (uint64_t)(uintptr_t)g_tree_node_key(next) < end)) {
        err = ACL_ERROR_RT_PARAM_INVALID;
    } else {
        HostBuf *a = g_new(HostBuf, 1);
        *a = (HostBuf){ .addr = q->alias, .size = h->size, .obj = memobj_ref(h->obj) };
        g_tree_insert(s->host, EMU_KEY(a->addr), a);
    }
    g_mutex_unlock(&s->lock);
    return err;
}

static int handle_host_free(Session *s, const void *req, uint32_t len)
{
    REQ(EmuReqHostFree, q);
    g_mutex_lock(&s->lock);
    HostBuf *h = g_tree_lookup(s->host, EMU_KEY(q->client_addr));
    if (h)
        g_tree_remove(s->host, EMU_KEY(q->client_addr));
    g_mutex_unlock(&s->lock);
    if (!h)
        return ACL_ERROR_RT_PARAM_INVALID;
    memobj_unref(h->obj);
    g_free(h);
    return ACL_SUCCESS;
}

static int handle_stream_create(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqStreamCreate, q);
    if (!session_device(s, q->device))
        return ACL_ERROR_RT_INVALID_DEVICEID;
    if (s->streams_on[q->device] >= EMU_STREAMS_PER_DEVICE)
        return ACL_ERROR_RT_NO_STREAM_RESOURCE;
    uint32_t i;
    for (i = 0; i < EMU_CHAN_STREAMS && s->streams[i]; i++)
        ;
    if (i == EMU_CHAN_STREAMS)
        return ACL_ERROR_RT_RESOURCE_ALLOC_FAIL;
    EmuStreamState *st = &s->states[i];
    __atomic_store_n(&st->error, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&st->error_seq, 0, __ATOMIC_RELAXED);
    /* A slot is reused: the stream that had it may have been stopped. */
    __atomic_store_n(&st->stopped, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&st->cb_seq, 0, __ATOMIC_RELAXED);
    EngineStream *es = engine_stream_new(q->device, st, &s->hdr->cb_doorbell, session_resolve, s);
    if (!es)
        return ACL_ERROR_RT_RESOURCE_ALLOC_FAIL;
    g_mutex_lock(&s->lock);
    s->streams[i] = es;
    s->streams_on[q->device]++;
    g_mutex_unlock(&s->lock);
    RESP(EmuRespStreamCreate, p);
    p->stream = i;
    return ACL_SUCCESS;
}

EngineStream *session_stream(Session *s, uint32_t i)
{
    return i < EMU_CHAN_STREAMS ? s->streams[i] : NULL;
}

static int handle_stream_destroy(Session *s, const void *req, uint32_t len)
{
    REQ(EmuReqStreamDestroy, q);
    EngineStream *st = session_stream(s, q->stream);
    if (!st)
        return ACL_ERROR_RT_PARAM_INVALID;
    g_mutex_lock(&s->lock);
    s->streams[q->stream] = NULL;
    s->streams_on[engine_stream_device(st)]--;
    g_mutex_unlock(&s->lock);
    engine_stream_destroy(st, q->force != 0);
    return ACL_SUCCESS;
}

/* The whole protocol in one place. */
static int dispatch(Session *s, uint32_t cmd, const void *req, uint32_t len, Reply *r)
{
    switch (cmd) {
    case EMU_CMD_NOP:
        return ACL_SUCCESS;
    case EMU_CMD_DEVICE_OPEN:
        return handle_device_open(s, req, len);
    case EMU_CMD_DEVICE_CLOSE:
        return handle_device_close(s, req, len);
    case EMU_CMD_DEVICE_SYNC:
        return handle_device_sync(s, req, len, r);
    case EMU_CMD_MEM_ALLOC:
        return handle_mem_alloc(s, req, len, r);
    case EMU_CMD_MEM_FREE:
        return handle_mem_free(s, req, len, r);
    case EMU_CMD_MEM_INFO:
        return handle_mem_info(s, req, len, r);
    case EMU_CMD_HOST_ALLOC:
        return handle_host_alloc(s, req, len, r);
    case EMU_CMD_HOST_ALIAS:
        return handle_host_alias(s, req, len);
    case EMU_CMD_PHYS_ALLOC:
        return handle_phys_alloc(s, req, len, r);
    case EMU_CMD_PHYS_FREE:
        return handle_phys_free(s, req, len);
    case EMU_CMD_VMM_RESERVE:
        return handle_vmm_reserve(s, req, len, r);
    case EMU_CMD_VMM_RELEASE:
        return handle_vmm_release(s, req, len);
    case EMU_CMD_VMM_MAP:
        return handle_vmm_map(s, req, len, r);
    case EMU_CMD_VMM_UNMAP:
        return handle_vmm_unmap(s, req, len, r);
    case EMU_CMD_VMM_ACCESS:
        return handle_vmm_access(s, req, len);
    case EMU_CMD_VMM_RETAIN:
        return handle_vmm_retain(s, req, len, r);
    case EMU_CMD_MEM_USAGE:
        return handle_mem_usage(s, req, len, r);
    case EMU_CMD_PEER_ACCESS:
        return handle_peer_access(s, req, len);
    case EMU_CMD_IPC_EXPORT:
        return handle_ipc_export(s, req, len, r);
    case EMU_CMD_SHARE_EXPORT:
        return handle_share_export(s, req, len, r);
    case EMU_CMD_SHARE_ALLOW:
        return handle_share_allow(s, req, len);
    case EMU_CMD_SHARE_ATTR:
        return handle_share_attr(s, req, len);
    case EMU_CMD_SHARE_WITHDRAW:
        return handle_share_withdraw(s, req, len);
    case EMU_CMD_IPC_IMPORT:
        return handle_ipc_import(s, req, len, r);
    case EMU_CMD_IPC_CLOSE:
        return handle_ipc_close(s, req, len);
    case EMU_CMD_SHARE_IMPORT:
        return handle_share_import(s, req, len, r);
    case EMU_CMD_NOTIFY_CREATE:
        return handle_notify_create(s, req, len, r);
    case EMU_CMD_NOTIFY_DESTROY:
        return handle_notify_destroy(s, req, len);
    case EMU_CMD_NOTIFY_RESET:
        return handle_notify_reset(s, req, len);
    case EMU_CMD_NOTIFY_EXPORT:
        return handle_notify_export(s, req, len, r);
    case EMU_CMD_NOTIFY_IMPORT:
        return handle_notify_import(s, req, len, r);
    case EMU_CMD_EVENT_CREATE:
        return handle_event_create(s, req, len, r);
    case EMU_CMD_EVENT_DESTROY:
        return handle_event_destroy(s, req, len);
    case EMU_CMD_EVENT_QUERY:
        return handle_event_query(s, req, len, r);
    case EMU_CMD_EVENT_EXPORT:
        return handle_event_export(s, req, len, r);
    case EMU_CMD_EVENT_IMPORT:
        return handle_event_import(s, req, len, r);
    case EMU_CMD_EVENT_AVAIL:
        return handle_event_avail(s, req, len, r);
    case EMU_CMD_STREAM_CTL:
        return handle_stream_ctl(s, req, len);
    case EMU_CMD_HOST_FREE:
        return handle_host_free(s, req, len);
    case EMU_CMD_STREAM_CREATE:
        return handle_stream_create(s, req, len, r);
    case EMU_CMD_STREAM_DESTROY:
        return handle_stream_destroy(s, req, len);
    case EMU_CMD_STREAM_SUBMIT:
        return handle_stream_submit(s, req, len, r);
    default:
        return ACL_ERROR_RT_PARAM_INVALID;
    }
}

/* A message of `len` bytes carrying `fd` (if >= 0) as SCM_RIGHTS. */
typedef struct FdMessage {
    struct msghdr msg;
    struct iovec iov;
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
} FdMessage;

static struct msghdr *fd_message(FdMessage *m, void *data, size_t len, int fd)
{
    memset(m, 0, sizeof(*m));
    m->iov = (struct iovec){ .iov_base = data, .iov_len = len };
    m->msg.msg_iov = &m->iov;
    m->msg.msg_iovlen = 1;
    if (fd >= 0) {
        m->msg.msg_control = m->u.buf;
        m->msg.msg_controllen = sizeof(m->u.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m->msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    return &m->msg;
}

static bool send_fd(Session *s, int fd, uint32_t tag)
{
    EmuFdMsg m = { .magic = EMU_PROTO_MAGIC, .tag = tag };
    FdMessage fm;
    struct msghdr *msg = fd_message(&fm, &m, sizeof(m), fd);
    /* A client that stops reading its socket must not hold this thread forever:
     * wait at most ~5 s for room, then treat it as gone. */
    for (int tries = 0; tries < 50 && !__atomic_load_n(&s->dead, __ATOMIC_ACQUIRE); tries++) {
        ssize_t n = sendmsg(s->sock, msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n == (ssize_t)sizeof(m))
            return true;
        if (n >= 0 || (errno != EAGAIN && errno != EINTR))
            break;
        struct pollfd p = { .fd = s->sock, .events = POLLOUT };
        poll(&p, 1, 100);
    }
    emu_log("pid %d does not take its memory objects off the socket: ending its session",
            (int)s->pid);
    __atomic_store_n(&s->dead, 1, __ATOMIC_RELEASE);
    return false;
}

void emu_session_handle(Session *s, EmuSlot *slot)
{
    /* Copy everything out first: the client can rewrite the slot at any time. */
    uint32_t cmd = __atomic_load_n(&slot->cmd, __ATOMIC_RELAXED);
    uint32_t len = __atomic_load_n(&slot->req_len, __ATOMIC_RELAXED);
    uint64_t req[EMU_SLOT_PAYLOAD / 8], resp[EMU_SLOT_PAYLOAD / 8];
    Reply r = { .resp = resp };
    int status;

    if (len > EMU_SLOT_PAYLOAD) {
        status = ACL_ERROR_RT_PARAM_INVALID;
    } else {
        memcpy(req, slot->req, len);
        status = dispatch(s, cmd, req, len, &r);
    }
    if (status != ACL_SUCCESS)
        r.resp_len = 0;
    uint32_t tag = 0;
    if (r.fd_obj) {
        tag = ++s->next_tag ? s->next_tag : ++s->next_tag;
        if (!send_fd(s, r.fd_obj->fd, tag))
            tag = 0;    /* the client is gone; its reclaim frees the object */
        memobj_unref(r.fd_obj);
    }
    memcpy(slot->resp, resp, r.resp_len);
    slot->resp_len = r.resp_len;
    slot->status = status;
    slot->fd_tag = tag;
    __atomic_store_n(&slot->state, EMU_SLOT_DONE, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&slot->client_waiting, __ATOMIC_SEQ_CST))
        emu_futex_wake(&slot->state, 1);
}

EmuSlot *emu_session_slot(Session *s, unsigned i)
{
    return i < EMU_CHAN_SLOTS ? &s->slots[i] : NULL;
}

/* ---- life cycle ---- */

static Session *session_alloc(EmuServer *srv, int sock)
{
    Session *s = g_new0(Session, 1);
    s->srv = srv;
    s->sock = sock;
    g_mutex_init(&s->lock);
    s->host = emu_u64_tree_new(NULL);
    s->streams = g_new0(EngineStream *, EMU_CHAN_STREAMS);
    s->notifies = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, sess_notify_free);
    s->groups = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                      (GDestroyNotify)engine_group_unref);
    return s;
}

static bool session_channel(Session *s)
{
    s->chan = memobj_new("npu-emu-channel", EMU_CHAN_SIZE);
    if (!s->chan)
        return false;
    s->hdr = (EmuChanHeader *)s->chan->map;
    *s->hdr = (EmuChanHeader){
        .magic = EMU_PROTO_MAGIC, .version = EMU_PROTO_VERSION,
        .nslots = EMU_CHAN_SLOTS, .nstreams = EMU_CHAN_STREAMS,
        .slots_off = EMU_CHAN_SLOTS_OFF, .streams_off = EMU_CHAN_STREAMS_OFF,
    };
    s->slots = (EmuSlot *)(s->chan->map + EMU_CHAN_SLOTS_OFF);
    s->states = (EmuStreamState *)(s->chan->map + EMU_CHAN_STREAMS_OFF);
    return true;
}

static void session_register(Session *s)
{
    EmuServer *srv = s->srv;
    g_mutex_lock(&srv->lock);
    /* 0 is never a session id: device_release_owner(0) means "everyone". */
    if (++srv->next_session_id == 0)
        ++srv->next_session_id;
    s->id = srv->next_session_id;
    g_hash_table_insert(srv->sessions, GUINT_TO_POINTER(s->id), s);
    g_hash_table_insert(srv->pids, GINT_TO_POINTER(s->pid), s);
    g_mutex_unlock(&srv->lock);
    s->as = aspace_new(s->id, srv->by_tag, G_N_ELEMENTS(srv->by_tag),
                       (uint32_t)(s->server * EMU_MAX_DEVICES), srv->profile->devices_per_server,
                       srv->host[s->server]);
}

Session *emu_session_new_detached(EmuServer *srv, int sock, pid_t pid, int server)
{
    Session *s = session_alloc(srv, sock);
    s->pid = pid;
    s->server = server;
    if (!session_channel(s)) {
        emu_session_reclaim(s);
        return NULL;
    }
    session_register(s);
    return s;
}

static int recv_full(int fd, void *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    while (got < len) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, timeout_ms) <= 0)
            return -1;
        ssize_t n = recv(fd, (char *)buf + got, len - got, 0);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

static void send_welcome(Session *s, EmuWelcome *w, int fd)
{
    FdMessage fm;
    struct msghdr *msg = fd_message(&fm, w, sizeof(*w), fd);
    while (sendmsg(s->sock, msg, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
}

/* Returns the status to put in the welcome; ACL_SUCCESS admits the client. */
static int handshake(Session *s)
{
    EmuServer *srv = s->srv;
    struct ucred cred;
    socklen_t cl = sizeof(cred);
    EmuHello hello;

    if (getsockopt(s->sock, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0)
        return ACL_ERROR_RT_INTERNAL_ERROR;
    s->pid = cred.pid;
    if (cred.uid != srv->uid) {
        emu_log("refused pid %d: uid %u is not the emulator's user (uid %u)",
                (int)cred.pid, (unsigned)cred.uid, (unsigned)srv->uid);
        return ACL_ERROR_RT_NO_PERMISSION;
    }
    if (recv_full(s->sock, &hello, sizeof(hello), 5000) < 0) {
        emu_log("pid %d: no greeting, dropped", (int)cred.pid);
        return -1;
    }
    if (hello.magic != EMU_PROTO_MAGIC || hello.version != EMU_PROTO_VERSION) {
        emu_log("refused pid %d: protocol version %u, expected %u", (int)cred.pid,
                hello.version, EMU_PROTO_VERSION);
        return ACL_ERROR_RT_DRV_INTERNAL_ERROR;
    }
    if (hello.server < 0 || hello.server >= srv->nservers) {
        emu_log("refused pid %d: no server %d (SuperPoD has %d)", (int)cred.pid,
                hello.server, srv->nservers);
        return ACL_ERROR_RT_INVALID_DEVICEID;
    }
    s->server = hello.server;
    /* aclFinalize + aclInit reconnects at once: give the old session of this pid
     * up to 2 s to be reclaimed before calling this a second connection. */
    bool dup = true;
    for (int i = 0; i < 200 && dup; i++) {
        g_mutex_lock(&srv->lock);
        dup = g_hash_table_contains(srv->pids, GINT_TO_POINTER(cred.pid));
        g_mutex_unlock(&srv->lock);
        if (dup)
            g_usleep(10000);
    }
    if (dup) {
        emu_log("refused pid %d: it already has a session", (int)cred.pid);
        return ACL_ERROR_REPEAT_INITIALIZE;
    }
    if (!session_channel(s))
        return ACL_ERROR_RT_MEMORY_ALLOCATION;
    return ACL_SUCCESS;
}

/* After answering, a client often sends its next request within microseconds
 * (malloc then map then free, submit then submit): poll that long before
 * paying for a futex sleep and wake-up.  Idle sessions sleep at once. */
#define SERVE_POLL_NS 50000

static void serve(Session *s)
{
    EmuChanHeader *h = s->hdr;
    uint64_t poll_until = 0;
    while (!__atomic_load_n(&s->dead, __ATOMIC_ACQUIRE)) {
        uint32_t bell = __atomic_load_n(&h->doorbell, __ATOMIC_SEQ_CST);
        uint64_t posted = __atomic_exchange_n(&h->posted, 0, __ATOMIC_SEQ_CST);
        if (posted) {
            for (unsigned i = 0; i < EMU_CHAN_SLOTS; i++) {
                if (!(posted & (1ull << i)))
                    continue;
                EmuSlot *slot = &s->slots[i];
                if (__atomic_load_n(&slot->state, __ATOMIC_ACQUIRE) == EMU_SLOT_POSTED)
                    emu_session_handle(s, slot);
            }
            poll_until = emu_now_ns() + SERVE_POLL_NS;
            continue;
        }
        if (poll_until && emu_poll_step(poll_until))
            continue;
        poll_until = 0;
        __atomic_store_n(&h->server_sleeping, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&h->posted, __ATOMIC_SEQ_CST) == 0 &&
            !__atomic_load_n(&s->dead, __ATOMIC_SEQ_CST))
            emu_futex_wait(&h->doorbell, bell, 1000000000);
        __atomic_store_n(&h->server_sleeping, 0, __ATOMIC_SEQ_CST);
    }
}

static gpointer session_thread(gpointer data)
{
    Session *s = data;
    int status = handshake(s);
    if (status != ACL_SUCCESS) {
        if (status > 0) {
            EmuWelcome w = { .magic = EMU_PROTO_MAGIC, .version = EMU_PROTO_VERSION,
                             .status = status };
            send_welcome(s, &w, -1);
        }
        emu_session_reclaim(s);
        return NULL;
    }
    session_register(s);
    EmuServer *srv = s->srv;
    EmuWelcome w = {
        .magic = EMU_PROTO_MAGIC, .version = EMU_PROTO_VERSION, .status = ACL_SUCCESS,
        .session_id = s->id, .ndevices = (uint32_t)srv->profile->devices_per_server,
        .nservers = (uint32_t)srv->nservers, .server = s->server,
        .client_pid = (uint32_t)s->pid, .hbm_bytes = srv->profile->hbm_bytes,
        .chan_size = EMU_CHAN_SIZE,
    };
    g_strlcpy(w.profile, srv->profile->name, sizeof(w.profile));
    g_strlcpy(w.soc_name, srv->profile->soc_name, sizeof(w.soc_name));
    send_welcome(s, &w, s->chan->fd);
    emu_log("client pid %d connected: session %u on server %d", (int)s->pid, s->id, s->server);

    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, .data.u64 = s->id };
    if (epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, s->sock, &ev) == 0)
        serve(s);
    epoll_ctl(srv->epoll_fd, EPOLL_CTL_DEL, s->sock, NULL);
    emu_session_reclaim(s);
    return NULL;
}

bool emu_session_start(EmuServer *srv, int sock)
{
    Session *s = session_alloc(srv, sock);
    /* Counted from accept on, so that idle exit never races a handshake. */
    g_mutex_lock(&srv->lock);
    srv->live++;
    s->counted = true;
    g_mutex_unlock(&srv->lock);
    GError *err = NULL;
    /* From here on the thread owns s and may free it at any moment (a refused
     * client is gone in microseconds): only the local handle may be touched. */
    GThread *t = g_thread_try_new("npu-session", session_thread, s, &err);
    if (!t) {
        emu_log("cannot start a session thread: %s", err->message);
        g_error_free(err);
        emu_session_reclaim(s);
        return false;
    }
    g_thread_unref(t);
    return true;
}

void emu_session_kill(Session *s)
{
    __atomic_store_n(&s->dead, 1, __ATOMIC_SEQ_CST);
    if (s->hdr) {
        __atomic_add_fetch(&s->hdr->doorbell, 1, __ATOMIC_SEQ_CST);
        emu_futex_wake(&s->hdr->doorbell, 1);
    }
}

void emu_session_reclaim(Session *s)
{
    EmuServer *srv = s->srv;
    unsigned streams = 0, allocs = 0, hosts = 0;
    uint64_t bytes = 0;

    g_mutex_lock(&srv->lock);
    if (s->id) {
        g_hash_table_remove(srv->sessions, GUINT_TO_POINTER(s->id));
        if (g_hash_table_lookup(srv->pids, GINT_TO_POINTER(s->pid)) == s)
            g_hash_table_remove(srv->pids, GINT_TO_POINTER(s->pid));
    }
    g_mutex_unlock(&srv->lock);
    /* Streams first: their workers write into the channel and touch memory. */
    streams_release(s, -1, true, &streams);
    if (s->id) {
        for (int d = 0; d < srv->profile->devices_per_server; d++) {
            uint64_t b = 0;
            allocs += device_release_owner(srv->devices[s->server][d], s->id, &b);
            bytes += b;
        }
    }
    unsigned exports = s->id ? share_withdraw_owner(srv->shares, s->id) : 0;
    unsigned notifies = g_hash_table_size(s->notifies);
    g_hash_table_remove_all(s->notifies);
    unsigned handles = 0;
    uint64_t handle_bytes = 0;
    aspace_destroy(s->as, &handles, &handle_bytes);
    s->as = NULL;
    while (g_tree_nnodes(s->host) > 0) {
        HostBuf *h = g_tree_node_value(g_tree_node_first(s->host));
        g_tree_remove(s->host, EMU_KEY(h->addr));
        memobj_unref(h->obj);
        g_free(h);
        hosts++;
    }
    if (s->id)
        emu_log("client pid %d gone: reclaimed %u allocations (%" G_GUINT64_FORMAT
                " bytes of HBM), %u physical handles (%" G_GUINT64_FORMAT " bytes), %u streams,"
                " %u pinned host buffers, %u exports, %u notifies",
                (int)s->pid, allocs, bytes, handles, handle_bytes, streams, hosts, exports,
                notifies);
    if (s->hdr)
        __atomic_store_n(&s->hdr->dead, 1, __ATOMIC_RELEASE);
    memobj_unref(s->chan);
    if (s->sock >= 0)
        close(s->sock);
    g_tree_destroy(s->host);
    g_hash_table_destroy(s->notifies);
    g_hash_table_destroy(s->groups);   /* every stream is gone by now */
    g_free(s->streams);
    g_mutex_clear(&s->lock);
    bool counted = s->counted;
    g_free(s);
    /* Last: a stopping server waits for `live` to reach 0, then frees the
     * devices and the registry this reclaim has just used. */
    g_mutex_lock(&srv->lock);
    if (counted && --srv->live == 0)
        srv->idle_since = g_get_monotonic_time();
    g_mutex_unlock(&srv->lock);
}
