/*
 * aspace.h - a client's device address space on one server: its page tables
 * (one per device) and its virtual-memory objects (physical handles,
 * reservations, mappings).
 *
 * Concepts: every device access of the stream engine on behalf of a client is
 * translated through the page table of the device that runs the stream
 * (aspace_resolve): VA -> (device tag, HBM address, rights) -> the memory
 * object that backs that HBM page (device_frame).  aclrtMalloc segments enter a
 * client's table of their device when they are made (device_attach_table); the
 * virtual-memory API enters mappings explicitly:
 *  - a physical handle is HBM pages of one device and size (device_phys_alloc)
 *    with a count of the client's references (aclrtMallocPhysical gives one,
 *    each aclrtMemRetainAllocationHandle one more, each aclrtFreePhysical takes
 *    one); its pages live while it has references or mappings;
 *  - a reservation is a range of the VMM parts of the window (proto.h
 *    EMU_VA_VMM_OFFSET), private to the client; once something is mapped in it,
 *    it belongs to that handle's device;
 *  - a mapping puts a whole handle at a VA inside one reservation, into the
 *    page table of the handle's device, read-write or with no rights
 *    (aclrtMemMapNoAccess); aclrtMemSetAccess adds it to other devices' tables
 *    (a peer's view of the same HBM) or changes the rights.
 * Nothing here talks to the client: the session turns requests into calls and
 * results into replies.  Calls other than aspace_resolve come from one thread
 * (the session's); aspace_resolve may run concurrently from stream workers.
 */
#ifndef DEVMODEL_ASPACE_H
#define DEVMODEL_ASPACE_H

#include <stdbool.h>
#include <stdint.h>

#include "device.h"
#include "memobj.h"
#include "pagetable.h"

typedef struct AddrSpace AddrSpace;

/* The device index of host memory in aspace_phys_alloc and in results. */
#define ASPACE_HOST (-1)

/* A client's address space over devices[0 .. ndev), which are also
 * by_tag[first_tag ...]; by_tag (ntags entries, NULL where no pool) resolves
 * the device tags found in page-table entries.  `host` (may be NULL) is the
 * pool of host memory for handles of device ASPACE_HOST; its mappings enter
 * every device's table. */
AddrSpace *aspace_new(uint32_t owner, Device *const *by_tag, uint32_t ntags, uint32_t first_tag,
                      int ndev, Device *host);
/* Drops every mapping, reservation and handle, detaches and frees the page
 * tables.  The client's aclrtMalloc segments must have been released first
 * (device_release_owner) and no stream may still resolve through it. */
void aspace_destroy(AddrSpace *as, unsigned *handles, uint64_t *bytes);

/* The host address of [va, va + *len) as device `dev` sees it, if every byte
 * of the first page is mapped there with the rights in `access` (PT_READ,
 * PT_WRITE); *len is cut to the bytes that follow contiguously in one memory
 * object with those rights, and *ref gets a reference to that object.  NULL
 * when va is not accessible. */
uint8_t *aspace_resolve(AddrSpace *as, int dev, uint64_t va, uint64_t *len, uint32_t access,
                        MemObj **ref);
PageTable *aspace_table(AddrSpace *as, int dev);
/* Peer access of streams on `dev` to the aclrtMalloc memory of `peer`
 * (aclrtDeviceEnablePeerAccess / Disable): an aclError. */
int aspace_set_peer(AddrSpace *as, int dev, int peer, bool enable);
bool aspace_has_peer(AddrSpace *as, int dev, int peer);

/* The virtual-memory calls; each returns an aclError. */
int aspace_phys_alloc(AddrSpace *as, int dev, uint64_t size, uint64_t page_size, uint32_t attr,
                      uint64_t *handle);
/* *released (may be NULL): the client's last reference went. */
int aspace_phys_free(AddrSpace *as, uint64_t handle, bool *released);
/* A new reference to the memory of a handle made by aclrtMallocPhysical here
 * (for an export); imported and host handles are refused. */
int aspace_handle_mem(AddrSpace *as, uint64_t handle, PhysMem **mem);
/* A handle for memory imported from another process (the reference to mem is
 * taken over), whose mappings go into device dev's table; `serial` names the
 * export: a second import of it while the first lives is refused. */
int aspace_import_handle(AddrSpace *as, PhysMem *mem, uint64_t serial, int dev,
                         uint64_t *handle);
/* Maps [off, off + size) of mem (reference taken over), imported by IPC key,
 * at a new VA of its device's heap, into that device's table and, with
 * `peer`, into dev's; memory of another server goes to a VA of the client's
 * VMM space and into dev's table.  *mem_dev (-1: another server's) and *page
 * say where it lives. */
int aspace_ipc_import(AddrSpace *as, PhysMem *mem, uint64_t off, uint64_t size, int dev,
                      bool peer, uint64_t *va, int *mem_dev, uint64_t *page);
int aspace_ipc_close(AddrSpace *as, uint64_t va);
int aspace_reserve(AddrSpace *as, uint64_t size, uint64_t align, uint64_t expect,
                   uint64_t *va);
int aspace_release(AddrSpace *as, uint64_t va);
/* Maps handle at va; *obj gets a reference to the memory object (for the
 * client to map), *reserve_va the reservation, *dev and *page its device and
 * page size. */
int aspace_map(AddrSpace *as, uint64_t va, uint64_t size, uint64_t handle, uint32_t prot,
               MemObj **obj, uint64_t *reserve_va, int *dev, uint64_t *page);
int aspace_unmap(AddrSpace *as, uint64_t va, uint64_t *handle, uint64_t *size);
int aspace_set_access(AddrSpace *as, uint64_t va, uint64_t size, int dev, uint32_t prot);
/* One more reference to the handle mapped at va (which must start a mapping). */
int aspace_retain(AddrSpace *as, uint64_t va, uint64_t *handle, uint64_t *size, int *dev,
                  uint64_t *page);

/* Counts, for tests and reports. */
unsigned aspace_handles(AddrSpace *as);
unsigned aspace_mappings(AddrSpace *as);
unsigned aspace_reservations(AddrSpace *as);

#endif
