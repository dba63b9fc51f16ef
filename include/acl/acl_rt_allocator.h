/*
 * npu-emu: acl/acl_rt_allocator.h -- user-supplied device memory allocators.
 *
 * Concepts: a program can hand the runtime its own allocator for the memory
 * that operators / dynamic-shape models need on a given stream. It describes
 * the allocator with an aclrtAllocatorDesc (an object it creates, fills with
 * the allocator object and four callbacks, and destroys), then registers the
 * descriptor on a stream. The runtime calls the callbacks; the program keeps
 * ownership of the allocator object. Registering again on the same stream
 * replaces the previous registration.
 *
 * Included from acl/acl_rt.h, as in CANN.
 */
#ifndef NPU_EMU_ACL_ACL_RT_ALLOCATOR_H
#define NPU_EMU_ACL_ACL_RT_ALLOCATOR_H

#include <stddef.h>

#include "acl_base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque allocator descriptor. */
typedef struct aclrtAllocatorDescImpl *aclrtAllocatorDesc;

/* Return a block of at least size bytes, or NULL. */
typedef void *(*aclrtAllocatorAllocFunc)(aclrtAllocator allocator, size_t size);
/* Give a block back. */
typedef void (*aclrtAllocatorFreeFunc)(aclrtAllocator allocator, aclrtAllocatorBlock block);
/* As the alloc callback, with a suggested device address. */
typedef void *(*aclrtAllocatorAllocAdviseFunc)(aclrtAllocator allocator, size_t size, aclrtAllocatorAddr addr);
/* Device address of a block returned by one of the alloc callbacks. */
typedef void *(*aclrtAllocatorGetAddrFromBlockFunc)(aclrtAllocatorBlock block);

/* chapter 25-03 */
/* Descriptor life cycle. aclrtAllocatorCreateDesc returns NULL on failure. */
ACL_FUNC_VISIBILITY aclrtAllocatorDesc aclrtAllocatorCreateDesc(void);
ACL_FUNC_VISIBILITY aclError aclrtAllocatorDestroyDesc(aclrtAllocatorDesc allocatorDesc);
ACL_FUNC_VISIBILITY aclError aclrtAllocatorSetObjToDesc(aclrtAllocatorDesc allocatorDesc, aclrtAllocator allocator);
ACL_FUNC_VISIBILITY aclError aclrtAllocatorSetAllocFuncToDesc(aclrtAllocatorDesc allocatorDesc, aclrtAllocatorAllocFunc func);
ACL_FUNC_VISIBILITY aclError aclrtAllocatorSetAllocAdviseFuncToDesc(aclrtAllocatorDesc allocatorDesc,
                                                                    aclrtAllocatorAllocAdviseFunc func);
ACL_FUNC_VISIBILITY aclError aclrtAllocatorSetFreeFuncToDesc(aclrtAllocatorDesc allocatorDesc, aclrtAllocatorFreeFunc func);
ACL_FUNC_VISIBILITY aclError aclrtAllocatorSetGetAddrFromBlockFuncToDesc(aclrtAllocatorDesc allocatorDesc,
                                                                         aclrtAllocatorGetAddrFromBlockFunc func);

/* chapter 11-08 */
/* Use allocatorDesc for the memory needed by work on stream (stream must not be NULL). */
ACL_FUNC_VISIBILITY aclError aclrtAllocatorRegister(aclrtStream stream, aclrtAllocatorDesc allocatorDesc);
/* Read back the descriptor, allocator object and callbacks registered on stream. */
ACL_FUNC_VISIBILITY aclError aclrtAllocatorGetByStream(aclrtStream stream, aclrtAllocatorDesc *allocatorDesc,
                                                       aclrtAllocator *allocator, aclrtAllocatorAllocFunc *allocFunc,
                                                       aclrtAllocatorFreeFunc *freeFunc,
                                                       aclrtAllocatorAllocAdviseFunc *allocAdviseFunc,
                                                       aclrtAllocatorGetAddrFromBlockFunc *getAddrFromBlockFunc);
/* Remove the registration; do this before destroying the allocator. */
ACL_FUNC_VISIBILITY aclError aclrtAllocatorUnregister(aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif /* NPU_EMU_ACL_ACL_RT_ALLOCATOR_H */
