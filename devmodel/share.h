/*
 * share.h - the registry of exported memory: IPC memory keys and shareable
 * handles (DEFAULT within a server, FABRIC across the servers of a SuperPoD).
 *
 * Concepts: an export names physical memory (a reference to a PhysMem and a
 * page-aligned range of it) with an unguessable token of 256 random bits; the
 * client sees it as a 64-character key (IPC), the token's first 8 bytes (a
 * DEFAULT handle) or a 128-byte aclrtMemFabricHandle.  An export lives until
 * its exporter withdraws it (aclrtIpcMemClose, freeing the memory or the
 * handle, or dying); an import takes its own reference to the memory, so what
 * was imported stays valid after the exporter is gone, until the importer
 * releases it.  With pid validation on, only the (server, pid) pairs the
 * exporter whitelisted may import; pids are the kernel-verified ones of the
 * importing sessions.  One registry serves every server of the emulator.
 * Thread-safe: one mutex.
 */
#ifndef DEVMODEL_SHARE_H
#define DEVMODEL_SHARE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "device.h"

typedef enum ShareKind {
    SHARE_IPC = 1,          /* aclrtIpcMemGetExportKey */
    SHARE_DEFAULT = 2,      /* aclrtMemExportToShareableHandle[V2], DEFAULT */
    SHARE_FABRIC = 3,       /* aclrtMemExportToShareableHandleV2, FABRIC */
    SHARE_NOTIFY = 4,       /* aclrtNotifyGetExportKey */
    SHARE_EVENT = 5,        /* aclrtIpcGetEventHandle */
} ShareKind;

#define SHARE_TOKEN_LEN 32
#define SHARE_ANY_SERVER (-1)

typedef struct ShareRegistry ShareRegistry;

/* What an import gets: a reference to the memory (or notify, or event) and
 * where it lives. */
typedef struct ShareGrant {
    PhysMem *mem;           /* referenced: the importer drops it */
    void *sync;             /* SHARE_NOTIFY / SHARE_EVENT: a referenced Notify / Event */
    uint64_t off, size;     /* the exported range of mem */
    int server;             /* the exporter's server */
    uint64_t serial;        /* identifies the export (one import per process) */
} ShareGrant;

ShareRegistry *share_registry_new(void);
void share_registry_destroy(ShareRegistry *r);

/* Exports [off, off + size) of mem (the registry takes over the reference the
 * caller passes) for `owner` (session id, pid, server); `id` is the exporter's
 * VMM handle (DEFAULT, FABRIC) or the exported device address (IPC).  The
 * public token goes to token[].  DEFAULT and FABRIC: one export per handle (a
 * second: 107000). */
int share_export(ShareRegistry *r, ShareKind kind, uint32_t owner, pid_t pid, int server,
                 PhysMem *mem, uint64_t off, uint64_t size, uint64_t id, bool pid_check,
                 uint8_t token[SHARE_TOKEN_LEN]);
/* Exports a Notify (SHARE_NOTIFY) or an Event (SHARE_EVENT), taking over the
 * reference the caller passes; `id` is the exporter's handle of it.  One
 * export per object. */
int share_export_sync(ShareRegistry *r, ShareKind kind, uint32_t owner, pid_t pid, int server,
                      void *obj, uint64_t id, bool pid_check, uint8_t token[SHARE_TOKEN_LEN]);
/* Adds (server, pid) pairs to the whitelist of the export named by the first
 * `len` bytes of token (the exporter only); server SHARE_ANY_SERVER matches any. */
int share_allow(ShareRegistry *r, ShareKind kind, const uint8_t *token, size_t len,
                uint32_t owner, const int32_t *servers, const int32_t *pids, size_t n);
/* A3 link attribute of an IPC export (the exporter only). */
int share_set_attr(ShareRegistry *r, const uint8_t *token, size_t len, uint32_t owner,
                   uint64_t attr);
/* Checks an import by `owner` (pid, server) and grants it: exists, not the
 * exporter's own process, whitelisted (with pid validation), and on the
 * exporter's server unless FABRIC or an IPC key that whitelists exactly this
 * (server, pid). */
int share_import(ShareRegistry *r, ShareKind kind, const uint8_t *token, size_t len,
                 uint32_t owner, pid_t pid, int server, ShareGrant *out);
/* Withdraws one export of `owner` (no new imports); 107000 if none. */
int share_withdraw(ShareRegistry *r, ShareKind kind, const uint8_t *token, size_t len,
                   uint32_t owner);
/* Withdraws owner's exports of VMM handle `handle`, its IPC exports of
 * addresses in [va, va + size), or all of them; returns how many. */
unsigned share_withdraw_handle(ShareRegistry *r, uint32_t owner, uint64_t handle);
unsigned share_withdraw_range(ShareRegistry *r, uint32_t owner, uint64_t va, uint64_t size);
/* Withdraws owner's export of its notify or event `handle`. */
unsigned share_withdraw_notify(ShareRegistry *r, uint32_t owner, uint64_t handle);
unsigned share_withdraw_owner(ShareRegistry *r, uint32_t owner);
/* Live exports (for tests and reports). */
unsigned share_count(ShareRegistry *r);

#endif
