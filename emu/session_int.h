/*
 * session_int.h - internals of a session shared by the files that serve it.
 *
 * Concepts: one client session is served by three files, by topic.
 * session.c owns the life cycle (handshake, serving the channel, reclamation),
 * the single dispatch() switch and the device, memory, pinned host buffer and
 * stream handlers; session_sync.c the notifies, events, stream control and
 * task submission; session_share.c peer access, IPC keys, shareable handles and
 * virtual memory.  A handler gets the request already copied out of the slot,
 * checks its size with REQ, fills the response with RESP and returns an
 * aclError; dispatch() sends the one reply.  Everything runs on the session's
 * thread, except stream workers resolving addresses, which read `host` and
 * `streams` under `lock`.
 */
#ifndef EMU_SESSION_INT_H
#define EMU_SESSION_INT_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "devmodel/aspace.h"
#include "devmodel/engine.h"
#include "session.h"

typedef struct HostBuf {
    uint64_t addr;          /* where the client mapped it */
    uint64_t size;
    MemObj *obj;
} HostBuf;

struct Session {
    EmuServer *srv;
    uint32_t id;
    pid_t pid;
    int server;             /* SuperPoD server index */
    int sock;
    MemObj *chan;
    EmuChanHeader *hdr;
    EmuSlot *slots;
    EmuStreamState *states;
    int dead;
    bool counted;           /* included in srv->live */

    GMutex lock;            /* protects host and streams against stream workers */
    GTree *host;            /* client address -> HostBuf * */
    EngineStream **streams; /* EMU_CHAN_STREAMS entries */
    uint32_t streams_on[EMU_MAX_DEVICES];
    uint32_t next_tag;
    bool opened[EMU_MAX_DEVICES];
    AddrSpace *as;          /* page tables and virtual memory; NULL until registered */
    GHashTable *groups;     /* stream group (a client context) -> EngineGroup *
                             * (stop-on-failure mode, engine.h) */
    GHashTable *notifies;   /* handle (uint64) -> SessNotify *: notifies and events,
                             * created and imported */
};

/* A notify or event this session created or imported; it holds one reference. */
typedef struct SessNotify {
    uint64_t handle;
    bool event;             /* an Event; a Notify otherwise */
    void *obj;
    int device;             /* the device it belongs to (index in the server) */
    bool imported;
    bool peer;              /* imported with ACL_RT_NOTIFY_IMPORT_FLAG_ENABLE_PEER_ACCESS */
} SessNotify;

typedef struct Reply {
    void *resp;
    uint32_t resp_len;
    MemObj *fd_obj;         /* referenced; its fd goes to the client */
} Reply;

#define REQ(type, name)                                    \
    const type *name = (const type *)req;                  \
    if (len != sizeof(type))                               \
        return ACL_ERROR_RT_PARAM_INVALID
#define RESP(type, name)                                   \
    type *name = (type *)r->resp;                          \
    r->resp_len = sizeof(type)

/* Device `dev` of the session's server; NULL when there is no such device. */
Device *session_device(Session *s, int32_t dev);
/* The stream in channel slot `i`; NULL when there is none. */
EngineStream *session_stream(Session *s, uint32_t i);
/* Drops a SessNotify and its reference: the value destructor of `notifies`. */
void sess_notify_free(gpointer p);

/* ---- session_sync.c: one handler per command (proto.h EMU_CMD_*) ---- */

/* NOTIFY_CREATE: a new notify on the device. */
int handle_notify_create(Session *s, const void *req, uint32_t len, Reply *r);
/* NOTIFY_DESTROY: drops the session's notify; one it created can no longer be imported. */
int handle_notify_destroy(Session *s, const void *req, uint32_t len);
/* NOTIFY_RESET: clears a notify's record. */
int handle_notify_reset(Session *s, const void *req, uint32_t len);
/* NOTIFY_EXPORT: a key for a notify the session created. */
int handle_notify_export(Session *s, const void *req, uint32_t len, Reply *r);
/* NOTIFY_IMPORT: another process's notify by its key. */
int handle_notify_import(Session *s, const void *req, uint32_t len, Reply *r);
/* STREAM_CTL: failure mode (and group), abort or stop of a stream. */
int handle_stream_ctl(Session *s, const void *req, uint32_t len);
/* EVENT_CREATE: a new event on the device. */
int handle_event_create(Session *s, const void *req, uint32_t len, Reply *r);
/* EVENT_DESTROY: drops the session's event; one it created can no longer be imported. */
int handle_event_destroy(Session *s, const void *req, uint32_t len);
/* EVENT_QUERY: an event's records queued and run, and whether record `gen` is done. */
int handle_event_query(Session *s, const void *req, uint32_t len, Reply *r);
/* EVENT_EXPORT: a key for an event the session created. */
int handle_event_export(Session *s, const void *req, uint32_t len, Reply *r);
/* EVENT_IMPORT: another process's event by its key. */
int handle_event_import(Session *s, const void *req, uint32_t len, Reply *r);
/* EVENT_AVAIL: how many events the device still has free. */
int handle_event_avail(Session *s, const void *req, uint32_t len, Reply *r);
/* STREAM_SUBMIT: checks a task and queues it on its stream. */
int handle_stream_submit(Session *s, const void *req, uint32_t len, Reply *r);

/* ---- session_share.c: one handler per command (proto.h EMU_CMD_*) ---- */

/* PEER_ACCESS: lets a device's streams reach a peer's memory, or not. */
int handle_peer_access(Session *s, const void *req, uint32_t len);
/* IPC_EXPORT: a key for pages of one of the session's segments. */
int handle_ipc_export(Session *s, const void *req, uint32_t len, Reply *r);
/* SHARE_EXPORT: a shareable handle for a physical handle. */
int handle_share_export(Session *s, const void *req, uint32_t len, Reply *r);
/* SHARE_ALLOW: whitelists (server, pid) pairs for an export. */
int handle_share_allow(Session *s, const void *req, uint32_t len);
/* SHARE_ATTR: an IPC export's link attribute. */
int handle_share_attr(Session *s, const void *req, uint32_t len);
/* SHARE_WITHDRAW: the exporter closes an export. */
int handle_share_withdraw(Session *s, const void *req, uint32_t len);
/* IPC_IMPORT: maps another process's IPC key into the session. */
int handle_ipc_import(Session *s, const void *req, uint32_t len, Reply *r);
/* IPC_CLOSE: the importer closes what it imported at a VA. */
int handle_ipc_close(Session *s, const void *req, uint32_t len);
/* SHARE_IMPORT: a physical handle from another process's shareable handle. */
int handle_share_import(Session *s, const void *req, uint32_t len, Reply *r);
/* PHYS_ALLOC: a new physical handle. */
int handle_phys_alloc(Session *s, const void *req, uint32_t len, Reply *r);
/* PHYS_FREE: drops one reference of a physical handle. */
int handle_phys_free(Session *s, const void *req, uint32_t len);
/* VMM_RESERVE: a new VA reservation. */
int handle_vmm_reserve(Session *s, const void *req, uint32_t len, Reply *r);
/* VMM_RELEASE: frees a VA reservation. */
int handle_vmm_release(Session *s, const void *req, uint32_t len);
/* VMM_MAP: maps a physical handle in a reservation. */
int handle_vmm_map(Session *s, const void *req, uint32_t len, Reply *r);
/* VMM_UNMAP: unmaps a mapping and names its handle. */
int handle_vmm_unmap(Session *s, const void *req, uint32_t len, Reply *r);
/* VMM_ACCESS: a mapping's rights on a device. */
int handle_vmm_access(Session *s, const void *req, uint32_t len);
/* VMM_RETAIN: one more reference of the handle mapped at a VA. */
int handle_vmm_retain(Session *s, const void *req, uint32_t len, Reply *r);

#endif
