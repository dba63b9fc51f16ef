/*
 * memobj.h - memory objects: the host backing of device and pinned memory.
 *
 * Concepts: every physical allocation (an aclrtMalloc segment, a pinned host
 * buffer, later an aclrtMallocPhysical handle) is one memfd, sealed against
 * shrinking so that no client can pull pages out from under the emulator, and
 * mapped once into npu-emu (its DMA view).  Clients map the same fd at their
 * own addresses.  Pages cost host memory only once touched, and go back to the
 * host when the last mapping and fd are gone.  Reference counting is atomic:
 * a stream engine holds a reference for the duration of a copy, so a concurrent
 * free never unmaps memory that a task is still touching.
 */
#ifndef DEVMODEL_MEMOBJ_H
#define DEVMODEL_MEMOBJ_H

#include <stdint.h>

typedef struct MemObj {
    int fd;
    uint64_t size;
    uint8_t *map;       /* the emulator's own mapping */
    int refcount;
} MemObj;

/* Creates a zero-filled object of `size` bytes (a multiple of 4 KiB); NULL on failure. */
MemObj *memobj_new(const char *name, uint64_t size);
MemObj *memobj_ref(MemObj *m);
/* Drops a reference; the last one unmaps and closes. */
void memobj_unref(MemObj *m);

#endif
