/*
 * memobj.c - memfd-backed memory objects.
 */
#define _GNU_SOURCE
#include "memobj.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

MemObj *memobj_new(const char *name, uint64_t size)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return NULL;
    if (ftruncate(fd, (off_t)size) < 0)
        goto fail;
    /* A client holding the fd must not be able to shrink it: that would turn the
     * emulator's next access into SIGBUS. */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
        goto fail;
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (map == MAP_FAILED)
        goto fail;
    MemObj *m = calloc(1, sizeof(*m));
    if (!m) {
        munmap(map, size);
        goto fail;
    }
    m->fd = fd;
    m->size = size;
    m->map = map;
    m->refcount = 1;
    return m;
fail:
    close(fd);
    return NULL;
}

MemObj *memobj_ref(MemObj *m)
{
    __atomic_add_fetch(&m->refcount, 1, __ATOMIC_RELAXED);
    return m;
}

void memobj_unref(MemObj *m)
{
    if (!m || __atomic_sub_fetch(&m->refcount, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    munmap(m->map, m->size);
    close(m->fd);
    free(m);
}
