/*
 * notify.h - notifies: one-bit device signals that a stream records and
 * another stream waits on (chapter 08).
 *
 * Concepts: a notify belongs to a device, which has DEV_NOTIFY_MAX of them
 * (8192 on A2 / A3) shared by every process, each with an id.  Recording sets
 * it; a wait blocks its stream's worker until it is set, then clears it
 * (wait-and-reset).  A record wakes the waiter at once (a condition variable,
 * no polling), whichever process or device recorded it.  Reference counted:
 * the creating process, every importer and every queued task that names it
 * hold references; the id goes back to the device with the last one.
 * Thread-safe.
 */
#ifndef DEVMODEL_NOTIFY_H
#define DEVMODEL_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "device.h"

typedef struct Notify Notify;

/* A new notify on d; NULL when the device has DEV_NOTIFY_MAX already. */
Notify *notify_new(Device *d);
Notify *notify_ref(Notify *n);
void notify_unref(Notify *n);
uint32_t notify_id(const Notify *n);
Device *notify_device(const Notify *n);

void notify_record(Notify *n);
void notify_reset(Notify *n);
/* Waits until n is set, then clears it: ACL_SUCCESS; ACL_ERROR_RT_WAIT_TIMEOUT
 * after timeout_ns (0: forever); -1 as soon as *cancel is nonzero (checked at
 * least every 50 ms: a stream being torn down). */
int notify_wait(Notify *n, uint64_t timeout_ns, const int *cancel);
/* Live notifies of d (for tests and reports). */
unsigned notify_count(Device *d);

#endif
