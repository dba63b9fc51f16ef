/*
 * server.h - the npu-emu server as a library.
 *
 * Concepts: an EmuServer owns the devices of every server of the profile, the
 * listening Unix socket and the client sessions.  emu_server_run() is the accept
 * loop (one epoll thread): it accepts clients, hands each to a session thread
 * (session.h) and notices closed sockets, so that a client's death - exit, crash
 * or kill -9 - reclaims everything it owned.  main.c only parses options and
 * calls these; tests embed a server in-process the same way.
 */
#ifndef EMU_SERVER_H
#define EMU_SERVER_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "devmodel/device.h"
#include "devmodel/share.h"
#include "devmodel/profile.h"
#include "npuemu/proto.h"

typedef struct EmuOptions {
    const char *socket_path;
    const char *profile;        /* "a2" (default) or "a3" */
    int servers;                /* SuperPoD servers (a3 only) */
    int idle_exit_sec;          /* exit after this long without clients; 0 = never */
    const char *log_path;       /* NULL: stderr */
    unsigned socket_mode;       /* permissions of the socket file */
    bool quiet;
} EmuOptions;

#define EMU_HOST_TAG(server) (EMU_MAX_SERVERS * EMU_MAX_DEVICES + (server))

typedef struct EmuServer {
    EmuOptions opt;
    const EmuProfile *profile;
    int nservers;
    Device *devices[EMU_MAX_SERVERS][EMU_MAX_DEVICES];
    Device *host[EMU_MAX_SERVERS];  /* each server's host memory (DDR) as a pool */
    ShareRegistry *shares;          /* exported memory, every server together */
    /* Every pool by its page-table device tag: server * EMU_MAX_DEVICES + device
     * for HBM, EMU_HOST_TAG(server) for a server's host memory. */
    Device *by_tag[EMU_MAX_SERVERS * EMU_MAX_DEVICES + EMU_MAX_SERVERS];
    uid_t uid;                  /* the only user allowed to connect */
    int listen_fd;
    int lock_fd;
    int epoll_fd;
    int stop_fd;                /* eventfd: emu_server_stop() */
    GMutex lock;                /* protects the session tables */
    GHashTable *sessions;       /* id -> Session * */
    GHashTable *pids;           /* pid -> Session * */
    uint32_t next_session_id;
    unsigned live;              /* accepted connections not yet reclaimed */
    gint64 idle_since;          /* monotonic us when `live` last dropped to 0 */
} EmuServer;

/* Default socket path for the calling user (NPU_EMU_SOCKET overrides it). */
char *emu_default_socket_path(void);
/* Creates a server with its devices; binds nothing yet. NULL + message on bad options. */
EmuServer *emu_server_new(const EmuOptions *opt, GError **errp);
/* Binds and listens. Returns false if another emulator owns the socket (errp says so). */
bool emu_server_listen(EmuServer *srv, GError **errp);
/* Serves until emu_server_stop() or idle exit; then ends every session. */
void emu_server_run(EmuServer *srv);
/* Async-signal-safe: makes emu_server_run() return. */
void emu_server_stop(EmuServer *srv);
void emu_server_free(EmuServer *srv);

/* Operator log: one timestamped line per event. */
void emu_log(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void emu_log_open(const char *path, bool quiet);

#endif
