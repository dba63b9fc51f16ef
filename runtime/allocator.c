/*
 * allocator.c - user-supplied allocators (chapter 11-08, and the descriptor
 * functions of chapter 25-03).
 *
 * Concepts:
 *  - A descriptor is a runtime object the program fills with its allocator
 *    object and callbacks.  Registering copies them into a per-stream registry,
 *    so the descriptor may be destroyed afterwards; aclrtAllocatorGetByStream
 *    still returns the callbacks, and the descriptor pointer as registered.
 *  - The registry is keyed by the RtStream; a destroyed stream's entry can never
 *    be found again (stream handles are never reused) and is pruned at the next
 *    registration.
 *  - Nothing in the runtime calls the callbacks yet: they serve single-operator
 *    and dynamic-shape model execution (aclopExecuteV2, aclmdlExecuteAsync),
 *    which npu-emu does not run.  This file is the bookkeeping those will read.
 * Locking: reg_lock guards both tables; it is taken before g_rt.lock.
 */
#include "rt.h"

struct aclrtAllocatorDescImpl {
    aclrtAllocator obj;
    aclrtAllocatorAllocFunc alloc;
    aclrtAllocatorFreeFunc free;
    aclrtAllocatorAllocAdviseFunc advise;
    aclrtAllocatorGetAddrFromBlockFunc addr;
};

typedef struct RtAllocatorReg {
    aclrtAllocatorDesc desc;                /* as registered; may be destroyed since */
    struct aclrtAllocatorDescImpl fns;      /* its contents at registration */
} RtAllocatorReg;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static GHashTable *descs;       /* live descriptors */
static GHashTable *regs;        /* RtStream * -> RtAllocatorReg * */

static void tables_init(void)
{
    if (!descs) {
        descs = g_hash_table_new(NULL, NULL);
        regs = g_hash_table_new_full(NULL, NULL, NULL, g_free);
    }
}

/* ---- descriptors ---- */

RT_EXPORT aclrtAllocatorDesc aclrtAllocatorCreateDesc(void)
{
    if (rt_check_init(__func__) != ACL_SUCCESS)
        return NULL;
    aclrtAllocatorDesc d = g_new0(struct aclrtAllocatorDescImpl, 1);
    pthread_mutex_lock(&reg_lock);
    tables_init();
    g_hash_table_add(descs, d);
    pthread_mutex_unlock(&reg_lock);
    return d;
}

/* Checks a descriptor call's arguments; the caller then holds reg_lock. */
static aclError desc_begin(const char *api, aclrtAllocatorDesc d, const void *arg,
                           const char *arg_name)
{
    aclError err = rt_check_init(api);
    if (err != ACL_SUCCESS)
        return err;
    if (!d)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "allocatorDesc must not be NULL");
    if (arg_name && !arg)
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "%s must not be NULL", arg_name);
    pthread_mutex_lock(&reg_lock);
    if (!descs || !g_hash_table_contains(descs, d)) {
        pthread_mutex_unlock(&reg_lock);
        return rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "%p is not an allocator descriptor (never created, or destroyed)",
                       (void *)d);
    }
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtAllocatorDestroyDesc(aclrtAllocatorDesc allocatorDesc)
{
    aclError err = desc_begin(__func__, allocatorDesc, NULL, NULL);
    if (err != ACL_SUCCESS)
        return err;
    g_hash_table_remove(descs, allocatorDesc);
    pthread_mutex_unlock(&reg_lock);
    /* Kept, not freed: a stale descriptor stays an error and never aliases a new one. */
    rt_retire_handle(allocatorDesc);
    return ACL_SUCCESS;
}

/* Sets one field of a descriptor (value must not be NULL). */
#define DESC_SET(d, member, value)                                          \
    do {                                                                    \
        aclError e_ = desc_begin(__func__, (d), (const void *)(value), #value); \
        if (e_ != ACL_SUCCESS)                                              \
            return e_;                                                      \
        (d)->member = (value);                                              \
        pthread_mutex_unlock(&reg_lock);                                    \
        return ACL_SUCCESS;                                                 \
    } while (0)

RT_EXPORT aclError aclrtAllocatorSetObjToDesc(aclrtAllocatorDesc allocatorDesc,
                                              aclrtAllocator allocator)
{
    DESC_SET(allocatorDesc, obj, allocator);
}

RT_EXPORT aclError aclrtAllocatorSetAllocFuncToDesc(aclrtAllocatorDesc allocatorDesc,
                                                    aclrtAllocatorAllocFunc func)
{
    DESC_SET(allocatorDesc, alloc, func);
}

RT_EXPORT aclError aclrtAllocatorSetAllocAdviseFuncToDesc(aclrtAllocatorDesc allocatorDesc,
                                                          aclrtAllocatorAllocAdviseFunc func)
{
    DESC_SET(allocatorDesc, advise, func);
}

RT_EXPORT aclError aclrtAllocatorSetFreeFuncToDesc(aclrtAllocatorDesc allocatorDesc,
                                                   aclrtAllocatorFreeFunc func)
{
    DESC_SET(allocatorDesc, free, func);
}

RT_EXPORT aclError aclrtAllocatorSetGetAddrFromBlockFuncToDesc(
    aclrtAllocatorDesc allocatorDesc, aclrtAllocatorGetAddrFromBlockFunc func)
{
    DESC_SET(allocatorDesc, addr, func);
}

/* ---- registry ---- */

/* Called with reg_lock held. */
static void prune_dead_streams(void)
{
    GHashTableIter it;
    gpointer key;
    pthread_mutex_lock(&g_rt.lock);
    g_hash_table_iter_init(&it, regs);
    while (g_hash_table_iter_next(&it, &key, NULL))
        if (!rt_stream_valid(key))
            g_hash_table_iter_remove(&it);
    pthread_mutex_unlock(&g_rt.lock);
}

RT_EXPORT aclError aclrtAllocatorRegister(aclrtStream stream, aclrtAllocatorDesc allocatorDesc)
{
    RT_CHECK_INIT();
    /* Documented: the stream must be given (NULL does not mean the default stream). */
    if (!stream)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "stream must not be NULL");
    if (!allocatorDesc)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "allocatorDesc must not be NULL");
    aclError err;
    RtStream *s = rt_stream_resolve(stream, __func__, &err);
    if (!s)
        return err;
    if ((err = desc_begin(__func__, allocatorDesc, NULL, NULL)) != ACL_SUCCESS)
        return err;
    const struct aclrtAllocatorDescImpl *d = allocatorDesc;
    const char *missing = !d->obj     ? "allocator object (aclrtAllocatorSetObjToDesc)"
                          : !d->alloc ? "alloc callback (aclrtAllocatorSetAllocFuncToDesc)"
                          : !d->free  ? "free callback (aclrtAllocatorSetFreeFuncToDesc)"
                          : !d->addr  ? "block address callback "
                                        "(aclrtAllocatorSetGetAddrFromBlockFuncToDesc)"
                                      : NULL;
    if (missing) {
        pthread_mutex_unlock(&reg_lock);
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "the descriptor has no %s", missing);
    }
    prune_dead_streams();
    RtAllocatorReg *r = g_new(RtAllocatorReg, 1);
    *r = (RtAllocatorReg){ .desc = allocatorDesc, .fns = *d };
    g_hash_table_insert(regs, s, r);        /* the last registration wins */
    pthread_mutex_unlock(&reg_lock);
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtAllocatorGetByStream(aclrtStream stream, aclrtAllocatorDesc *allocatorDesc,
                                             aclrtAllocator *allocator,
                                             aclrtAllocatorAllocFunc *allocFunc,
                                             aclrtAllocatorFreeFunc *freeFunc,
                                             aclrtAllocatorAllocAdviseFunc *allocAdviseFunc,
                                             aclrtAllocatorGetAddrFromBlockFunc *getAddrFromBlockFunc)
{
    RT_CHECK_INIT();
    if (!stream)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "stream must not be NULL (allocators are registered on explicit streams)");
    if (!allocatorDesc || !allocator || !allocFunc || !freeFunc || !allocAdviseFunc ||
        !getAddrFromBlockFunc)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "no output pointer may be NULL");
    aclError err;
    RtStream *s = rt_stream_resolve(stream, __func__, &err);
    if (!s)
        return err;
    pthread_mutex_lock(&reg_lock);
    RtAllocatorReg *r = regs ? g_hash_table_lookup(regs, s) : NULL;
    RtAllocatorReg copy = r ? *r : (RtAllocatorReg){ 0 };
    pthread_mutex_unlock(&reg_lock);
    if (!r)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "no allocator is registered on stream %p", stream);
    *allocatorDesc = copy.desc;
    *allocator = copy.fns.obj;
    *allocFunc = copy.fns.alloc;
    *freeFunc = copy.fns.free;
    *allocAdviseFunc = copy.fns.advise;
    *getAddrFromBlockFunc = copy.fns.addr;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtAllocatorUnregister(aclrtStream stream)
{
    RT_CHECK_INIT();
    /* Documented: an unknown stream, or a second call, does nothing and succeeds. */
    pthread_mutex_lock(&reg_lock);
    if (regs && stream)
        g_hash_table_remove(regs, stream);
    pthread_mutex_unlock(&reg_lock);
    return ACL_SUCCESS;
}
