/*
 * session.h - one client process of npu-emu.
 *
 * Concepts: a session is created per accepted connection.  Its thread does the
 * handshake (peer credentials, EmuHello, EmuWelcome + channel fd), then serves
 * the channel: one request at a time through emu_session_handle(), whose single
 * switch is the whole request dispatch.  Every resource a session creates
 * (device memory, pinned host memory, streams) is recorded under the session's
 * id, so that when the client goes away emu_session_reclaim() frees all of it
 * exactly once.  Requests are copied out of shared memory before they are
 * checked: a hostile client gets error replies, never a crash.
 */
#ifndef EMU_SESSION_H
#define EMU_SESSION_H

#include <stdbool.h>
#include <sys/types.h>

#include "server.h"

typedef struct Session Session;

/* Starts the thread that serves the client connected on `sock`. */
bool emu_session_start(EmuServer *srv, int sock);
/* Called by the accept loop when the socket closed: the thread reclaims and exits. */
void emu_session_kill(Session *s);

/* For tests: a session bound to `sock` without a thread or a handshake. */
Session *emu_session_new_detached(EmuServer *srv, int sock, pid_t pid, int server);
/* Serves one posted slot (copies the request out, replies in place). */
void emu_session_handle(Session *s, EmuSlot *slot);
EmuSlot *emu_session_slot(Session *s, unsigned i);
/* Frees everything the session owns and the session itself. */
void emu_session_reclaim(Session *s);

#endif
