/*
 * mempool.c - stream-ordered memory pools (chapter 11-10, aclrtMemPool*).
 *
 * Concepts:
 *  - A pool holds device memory of one device in chunks.  A chunk is one
 *    aclrtMallocAlign32 allocation, a multiple of 2 MiB (huge pages), carved
 *    here into blocks of 512-byte multiples.  The first 512 bytes of a chunk are
 *    never handed out, so no pool pointer is the start of an aclrtMalloc
 *    allocation: aclrtFree of a pool pointer fails (107000) instead of tearing a
 *    chunk out from under the pool.
 *  - A block is FREE (any stream may take it), USED (an allocation) or PENDING:
 *    given back by aclrtMemPoolFreeAsync on stream S after S's task `seq`.  S
 *    itself may take a pending block at once (its later tasks run after the
 *    free), and so may a stream that waited for an event recorded on S after
 *    the free (REUSE_FOLLOW_EVENT_DEPENDENCIES, the block's `follower`).  Another stream may take it only once S has run up to `seq`, and
 *    only when the pool learns so: when S is synchronised (rt_mempool_synced),
 *    by looking at S's progress (REUSE_ALLOW_OPPORTUNISTIC), or by waiting for
 *    S (REUSE_ALLOW_INTERNAL_DEPENDENCIES, only after growing the pool failed:
 *    the taking stream gets a task that waits in the engine until S has run
 *    the free, EMU_TASK_STREAM_WAIT; the caller never waits).
 *  - Memory goes back to the device (aclrtFree of a chunk) only for a chunk
 *    whose blocks are all FREE or completed frees: aclrtMemPoolTrimTo, and each
 *    synchronise down to the release threshold.
 *  - A device reset (or aclFinalize) frees the chunks under the pool.  The pool
 *    notices because the device's default context changed (a new one each time
 *    the device opens; old handles are never reused) and forgets its chunks.
 *  - A destroyed pool with allocations left lives on until they are freed and
 *    their frees completed; its handle is dead at once.
 * Locking: pool_lock guards every pool.  It is taken before g_rt.lock and the
 * memory tables' locks (aclrtMallocAlign32 / aclrtFree run under it), and is
 * never held while waiting for a stream.
 */
#include <inttypes.h>
#include <string.h>

#include "npuemu/u64tree.h"
#include "rt.h"

#define POOL_ALIGN 512ull               /* block granularity and chunk guard */
#define POOL_CHUNK (2ull << 20)         /* chunks are whole huge pages */
#define POOL_MAX_REQUEST (1ull << 44)   /* far beyond any device; keeps sums exact */
#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((uint64_t)(a) - 1))

typedef enum { BLOCK_FREE, BLOCK_USED, BLOCK_PENDING } BlockState;

typedef struct PoolChunk PoolChunk;
typedef struct RtMemPool RtMemPool;

typedef struct PoolBlock {
    uint64_t va;
    uint64_t size;
    PoolChunk *chunk;
    struct PoolBlock *prev, *next;  /* address order within the chunk */
    BlockState state;
    /* PENDING: freed on `stream` (channel state `sid`) after its task `seq`. */
    RtStream *stream;
    uint32_t sid;
    uint32_t seq;
    RtStream *follower;     /* PENDING: a stream that waited for an event recorded
                             * on `stream` at or after `seq`, free for it too */
} PoolBlock;

struct PoolChunk {
    RtMemPool *pool;
    uint64_t va;
    uint64_t size;
    PoolBlock *first;
};

struct RtMemPool {
    int32_t device;             /* user device id */
    uint64_t max_size;          /* 0: only the device limits the pool */
    uint32_t reuse_events, reuse_opportunistic, reuse_internal;
    uint64_t release_threshold;
    uint64_t reserved, reserved_high, used, used_high;
    GPtrArray *chunks;          /* PoolChunk * */
    const void *gen;            /* the device's default context when chunks were taken */
    bool destroyed;
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static GHashTable *pools;       /* live handles: RtMemPool * set */
static GPtrArray *zombies;      /* destroyed pools with allocations left */
static GHashTable *allocs;      /* va -> USED PoolBlock *, for FreeAsync */
static int pool_count;          /* live + zombie pools; read without the lock */

/* ---- helpers ---- */

/* The reference lists the SOMA functions for Atlas A2 only. */
static aclError check_profile(const char *api)
{
    if (strcmp(g_rt.conn.welcome.profile, "a3") == 0)
        return rt_fail(ACL_ERROR_RT_FEATURE_NOT_SUPPORT, api,
                       "stream-ordered memory pools are not supported on Atlas A3 "
                       "(profile a3); the reference lists them for Atlas A2 only");
    return ACL_SUCCESS;
}

#define POOL_PROLOGUE()                                         \
    do {                                                        \
        RT_CHECK_INIT();                                        \
        aclError e2_ = check_profile(__func__);                 \
        if (e2_ != ACL_SUCCESS)                                 \
            return e2_;                                         \
    } while (0)

/* Identifies the current opening of a device (NULL when it is closed). */
static const void *device_gen(int32_t device)
{
    pthread_mutex_lock(&g_rt.lock);
    const void *gen = g_rt.dev[device].open ? (const void *)g_rt.dev[device].default_ctx : NULL;
    pthread_mutex_unlock(&g_rt.lock);
    return gen;
}

static bool seq_done(uint32_t sid, uint32_t seq)
{
    return emu_seq_reached(__atomic_load_n(&g_rt.conn.states[sid].done, __ATOMIC_ACQUIRE), seq);
}

static void chunk_forget(PoolChunk *c)
{
    for (PoolBlock *b = c->first, *next; b; b = next) {
        next = b->next;
        if (b->state == BLOCK_USED)
            g_hash_table_remove(allocs, EMU_KEY(b->va));
        g_free(b);
    }
    g_free(c);
}

/* Removes chunk i from its pool; gives its memory back if `release`. */
static void chunk_drop(RtMemPool *p, guint i, bool release)
{
    PoolChunk *c = g_ptr_array_index(p->chunks, i);
    for (PoolBlock *b = c->first; b; b = b->next)
        if (b->state == BLOCK_USED)
            p->used -= b->size;
    p->reserved -= c->size;
    g_ptr_array_remove_index(p->chunks, i);
    if (release)
        aclrtFree((void *)(uintptr_t)c->va);
    chunk_forget(c);
}

/* Forgets the chunks if the device was reset since they were allocated. */
static void pool_check_device(RtMemPool *p)
{
    if (p->chunks->len == 0 || device_gen(p->device) == p->gen)
        return;
    while (p->chunks->len)
        chunk_drop(p, p->chunks->len - 1, false);
}

/* Merges neighbouring FREE blocks, and PENDING blocks freed on one stream
 * (the merged block is complete when the later free is). */
static void chunk_coalesce(PoolChunk *c)
{
    PoolBlock *b = c->first;
    while (b && b->next) {
        PoolBlock *n = b->next;
        bool merge = (b->state == BLOCK_FREE && n->state == BLOCK_FREE) ||
                     (b->state == BLOCK_PENDING && n->state == BLOCK_PENDING &&
                      b->stream == n->stream && b->follower == n->follower);
        if (!merge) {
            b = n;
            continue;
        }
        if (b->state == BLOCK_PENDING && emu_seq_reached(n->seq, b->seq))
            b->seq = n->seq;
        b->size += n->size;
        b->next = n->next;
        if (n->next)
            n->next->prev = b;
        g_free(n);
    }
}

/* PENDING blocks whose free has completed become FREE: those freed on `s`, or
 * every stream's for s == NULL. */
static void pool_promote(RtMemPool *p, RtStream *s)
{
    for (guint i = 0; i < p->chunks->len; i++) {
        PoolChunk *c = g_ptr_array_index(p->chunks, i);
        bool any = false;
        for (PoolBlock *b = c->first; b; b = b->next)
            if (b->state == BLOCK_PENDING && (!s || b->stream == s) && seq_done(b->sid, b->seq)) {
                b->state = BLOCK_FREE;
                b->stream = NULL;
                b->follower = NULL;
                any = true;
            }
        if (any)
            chunk_coalesce(c);
    }
}

/* Stream `to` now runs after task `seq` of stream `from` (its task `to_seq`
 * waits for it): blocks `from` freed up to `seq` become frees of `to` at
 * `to_seq`, free for `to` at once and for the others once `to` passed it. */
static void pool_adopt(RtMemPool *p, RtStream *from, uint32_t seq, RtStream *to, uint32_t to_seq)
{
    for (guint i = 0; i < p->chunks->len; i++) {
        PoolChunk *c = g_ptr_array_index(p->chunks, i);
        for (PoolBlock *b = c->first; b; b = b->next)
            if (b->state == BLOCK_PENDING && b->stream == from && emu_seq_reached(seq, b->seq)) {
                b->stream = to;
                b->sid = to->id;
                b->seq = to_seq;
            }
    }
}

/* Nothing in the chunk is allocated or still in use by a stream. */
static bool chunk_idle(const PoolChunk *c)
{
    for (const PoolBlock *b = c->first; b; b = b->next)
        if (b->state == BLOCK_USED || (b->state == BLOCK_PENDING && !seq_done(b->sid, b->seq)))
            return false;
    return true;
}

/* Gives idle chunks back to the device while at least `keep` bytes stay reserved. */
static void pool_trim(RtMemPool *p, uint64_t keep)
{
    for (guint i = p->chunks->len; i-- > 0;) {
        PoolChunk *c = g_ptr_array_index(p->chunks, i);
        if (p->reserved - c->size >= keep && chunk_idle(c))
            chunk_drop(p, i, true);
    }
}

/* A destroyed pool goes once nothing of it is in use. */
static void zombie_reap(RtMemPool *p)
{
    pool_check_device(p);
    pool_trim(p, 0);
    if (p->chunks->len)
        return;
    g_ptr_array_remove_fast(zombies, p);
    g_ptr_array_free(p->chunks, TRUE);
    p->chunks = NULL;
    __atomic_sub_fetch(&pool_count, 1, __ATOMIC_RELAXED);
    rt_retire_handle(p);        /* a stale handle never aliases a new pool */
}

static void zombies_reap_all(void)
{
    for (guint i = zombies ? zombies->len : 0; i-- > 0;)
        zombie_reap(g_ptr_array_index(zombies, i));
}

/* The live pool `handle` (under pool_lock), or NULL after recording 107000. */
static RtMemPool *pool_get(const char *api, aclrtMemPool handle, aclError *err)
{
    if (!handle) {
        *err = rt_fail(ACL_ERROR_RT_PARAM_INVALID, api, "memPool must not be NULL");
        return NULL;
    }
    RtMemPool *p = pools && g_hash_table_contains(pools, handle) ? handle : NULL;
    if (!p) {
        *err = rt_fail(ACL_ERROR_RT_PARAM_INVALID, api,
                       "%p is not a memory pool (never created, or destroyed)", handle);
        return NULL;
    }
    zombies_reap_all();
    pool_check_device(p);
    return p;
}

static void note_used(RtMemPool *p, int64_t delta)
{
    p->used += (uint64_t)delta;
    if (p->used > p->used_high)
        p->used_high = p->used;
}

/* The eligible block that fits `need` most closely (lowest address on ties):
 * FREE blocks, PENDING ones freed on `s`, and with `others` also PENDING ones
 * freed on other streams (to wait for). */
static PoolBlock *best_fit(RtMemPool *p, RtStream *s, uint64_t need, bool others)
{
    PoolBlock *best = NULL;
    for (guint i = 0; i < p->chunks->len; i++) {
        PoolChunk *c = g_ptr_array_index(p->chunks, i);
        for (PoolBlock *b = c->first; b; b = b->next) {
            bool ok = others ? b->state == BLOCK_PENDING && b->stream != s && b->follower != s
                             : b->state == BLOCK_FREE ||
                                   (b->state == BLOCK_PENDING &&
                                    (b->stream == s || b->follower == s));
            if (ok && b->size >= need && (!best || b->size < best->size))
                best = b;
        }
    }
    return best;
}

/* Takes `need` bytes from the front of b as an allocation. */
static void *carve(RtMemPool *p, PoolBlock *b, uint64_t need)
{
    if (b->size > need) {
        PoolBlock *rest = g_new(PoolBlock, 1);
        *rest = *b;
        rest->va = b->va + need;
        rest->size = b->size - need;
        rest->prev = b;
        if (b->next)
            b->next->prev = rest;
        b->next = rest;
        b->size = need;
    }
    b->state = BLOCK_USED;
    b->stream = NULL;
    b->follower = NULL;
    g_hash_table_insert(allocs, EMU_KEY(b->va), b);
    note_used(p, (int64_t)need);
    return (void *)(uintptr_t)b->va;
}

/* Adds a chunk big enough for `need`; returns its free block, or NULL if the
 * pool's maximum or the device's free memory does not allow it. */
static PoolBlock *pool_grow(RtMemPool *p, uint64_t need)
{
    uint64_t room = p->max_size ? p->max_size - p->reserved : UINT64_MAX;
    uint64_t size = ALIGN_UP(need + POOL_ALIGN, POOL_CHUNK);
    aclrtMemMallocPolicy policy = ACL_MEM_MALLOC_HUGE_FIRST;
    if (size > room) {
        /* A small pool: normal pages, so that the chunk costs what it says. */
        size = ALIGN_UP(need + POOL_ALIGN, 4096);
        policy = ACL_MEM_MALLOC_NORMAL_ONLY;
        if (size > room)
            return NULL;
    }
    /* Ask first, so that a full device does not leave a failed aclrtMalloc's
     * error behind a call that then succeeds by reuse. */
    size_t free_bytes = 0, total = 0;
    if (aclrtGetMemInfo(ACL_HBM_MEM, &free_bytes, &total) != ACL_SUCCESS || free_bytes < size)
        return NULL;
    void *va = NULL;
    if (aclrtMallocAlign32(&va, size, policy) != ACL_SUCCESS)
        return NULL;
    if (p->chunks->len == 0)
        p->gen = device_gen(p->device);
    PoolChunk *c = g_new0(PoolChunk, 1);
    *c = (PoolChunk){ .pool = p, .va = (uint64_t)(uintptr_t)va, .size = size };
    PoolBlock *b = g_new0(PoolBlock, 1);
    *b = (PoolBlock){ .va = c->va + POOL_ALIGN, .size = size - POOL_ALIGN, .chunk = c,
                      .state = BLOCK_FREE };
    c->first = b;
    g_ptr_array_add(p->chunks, c);
    p->reserved += size;
    if (p->reserved > p->reserved_high)
        p->reserved_high = p->reserved;
    return b;
}

/* ---- called by the stream and device synchronise calls ---- */

void rt_mempool_synced(RtStream *s, int32_t device)
{
    if (__atomic_load_n(&pool_count, __ATOMIC_RELAXED) == 0)
        return;
    pthread_mutex_lock(&pool_lock);
    zombies_reap_all();
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init(&it, pools);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        RtMemPool *p = key;
        if (p->device != device)
            continue;
        pool_check_device(p);
        pool_promote(p, s);
        pool_trim(p, p->release_threshold);
    }
    pthread_mutex_unlock(&pool_lock);
}

void rt_mempool_event_waited(RtStream *waiter, uint32_t rec_sid, uint32_t rec_seq)
{
    if (__atomic_load_n(&pool_count, __ATOMIC_RELAXED) == 0)
        return;
    pthread_mutex_lock(&pool_lock);
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init(&it, pools);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        RtMemPool *p = key;
        if (p->device != waiter->device || !p->reuse_events)
            continue;
        for (guint i = 0; i < p->chunks->len; i++) {
            PoolChunk *c = g_ptr_array_index(p->chunks, i);
            for (PoolBlock *b = c->first; b; b = b->next)
                if (b->state == BLOCK_PENDING && b->sid == rec_sid && b->stream != waiter &&
                    emu_seq_reached(rec_seq, b->seq))
                    b->follower = waiter;
        }
    }
    pthread_mutex_unlock(&pool_lock);
}

/* ---- API ---- */

RT_EXPORT aclError aclrtMemPoolCreate(aclrtMemPool *memPool, const aclrtMemPoolProps *poolProps)
{
    POOL_PROLOGUE();
    if (!memPool || !poolProps)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "memPool and poolProps must not be NULL");
    const aclrtMemPoolProps *pp = poolProps;
    if (pp->allocType != ACL_MEM_ALLOCATION_TYPE_PINNED)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "allocType %d: only ACL_MEM_ALLOCATION_TYPE_PINNED is supported",
                       (int)pp->allocType);
    if (pp->handleType != ACL_MEM_HANDLE_TYPE_NONE && pp->handleType != ACL_MEM_HANDLE_TYPE_POSIX)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "handleType %d is not an aclrtMemHandleType",
                       (int)pp->handleType);
    if (pp->location.type != ACL_MEM_LOCATION_TYPE_DEVICE)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                       "location.type %d: a pool lives on a device "
                       "(ACL_MEM_LOCATION_TYPE_DEVICE)", (int)pp->location.type);
    if (!rt_device_valid((int32_t)pp->location.id))
        return RT_FAIL(ACL_ERROR_RT_INVALID_DEVICEID,
                       "location.id: invalid device id %u; the valid range is [0, %d)",
                       pp->location.id, g_rt.ndev);
    for (size_t i = 0; i < sizeof(pp->reserved); i++)
        if (pp->reserved[i])
            return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                           "reserved[%zu] is %u; the reserved bytes must all be 0", i,
                           pp->reserved[i]);
    RtMemPool *p = g_new0(RtMemPool, 1);
    *p = (RtMemPool){ .device = (int32_t)pp->location.id,
                      .max_size = pp->maxSize, .reuse_events = 1, .reuse_opportunistic = 1,
                      .reuse_internal = 1, .chunks = g_ptr_array_new() };
    pthread_mutex_lock(&pool_lock);
    if (!pools) {
        pools = g_hash_table_new(NULL, NULL);
        zombies = g_ptr_array_new();
        allocs = g_hash_table_new(NULL, NULL);     /* EMU_KEY(va) keys */
    }
    g_hash_table_add(pools, p);
    __atomic_add_fetch(&pool_count, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&pool_lock);
    *memPool = p;
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtMemPoolDestroy(const aclrtMemPool memPool)
{
    POOL_PROLOGUE();
    aclError err = ACL_SUCCESS;
    pthread_mutex_lock(&pool_lock);
    RtMemPool *p = pool_get(__func__, memPool, &err);
    if (p) {
        /* Outstanding allocations stay valid; the pool goes with the last of
         * them (zombie_reap). */
        g_hash_table_remove(pools, p);
        p->destroyed = true;
        g_ptr_array_add(zombies, p);
        zombie_reap(p);
    }
    pthread_mutex_unlock(&pool_lock);
    return err;
}

static aclError set_attr(RtMemPool *p, aclrtMemPoolAttr attr, const void *value)
{
    uint32_t flag = 0;
    uint64_t bytes = 0;
    switch (attr) {
    case ACL_RT_MEM_POOL_REUSE_FOLLOW_EVENT_DEPENDENCIES:
    case ACL_RT_MEM_POOL_REUSE_ALLOW_OPPORTUNISTIC:
    case ACL_RT_MEM_POOL_REUSE_ALLOW_INTERNAL_DEPENDENCIES:
        memcpy(&flag, value, sizeof(flag));
        if (flag > 1)
            return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                           "attribute %d is a uint32_t switch: 0 or 1, not %u", (int)attr, flag);
        if (attr == ACL_RT_MEM_POOL_REUSE_FOLLOW_EVENT_DEPENDENCIES)
            p->reuse_events = flag;
        else if (attr == ACL_RT_MEM_POOL_REUSE_ALLOW_OPPORTUNISTIC)
            p->reuse_opportunistic = flag;
        else
            p->reuse_internal = flag;
        return ACL_SUCCESS;
    case ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD:
        memcpy(&p->release_threshold, value, sizeof(uint64_t));
        return ACL_SUCCESS;
    case ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT:
    case ACL_RT_MEM_POOL_ATTR_USED_MEM_CURRENT:
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "attribute %d is read-only", (int)attr);
    case ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_HIGH:
    case ACL_RT_MEM_POOL_ATTR_USED_MEM_HIGH:
        memcpy(&bytes, value, sizeof(bytes));
        if (bytes != 0)
            return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                           "attribute %d can only be reset, with the value 0 (not %" PRIu64 ")",
                           (int)attr, bytes);
        /* The peak starts again from what is held now. */
        if (attr == ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_HIGH)
            p->reserved_high = p->reserved;
        else
            p->used_high = p->used;
        return ACL_SUCCESS;
    default:
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "%d is not an aclrtMemPoolAttr", (int)attr);
    }
}

RT_EXPORT aclError aclrtMemPoolSetAttr(aclrtMemPool memPool, aclrtMemPoolAttr attr, void *value)
{
    POOL_PROLOGUE();
    if (!value)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "value must not be NULL");
    aclError err;
    pthread_mutex_lock(&pool_lock);
    RtMemPool *p = pool_get(__func__, memPool, &err);
    if (p)
        err = set_attr(p, attr, value);
    pthread_mutex_unlock(&pool_lock);
    return err;
}

static aclError get_attr(RtMemPool *p, aclrtMemPoolAttr attr, void *value)
{
    uint32_t flag;
    uint64_t bytes;
    switch (attr) {
    case ACL_RT_MEM_POOL_REUSE_FOLLOW_EVENT_DEPENDENCIES:
        flag = p->reuse_events;
        break;
    case ACL_RT_MEM_POOL_REUSE_ALLOW_OPPORTUNISTIC:
        flag = p->reuse_opportunistic;
        break;
    case ACL_RT_MEM_POOL_REUSE_ALLOW_INTERNAL_DEPENDENCIES:
        flag = p->reuse_internal;
        break;
    case ACL_RT_MEM_POOL_ATTR_RELEASE_THRESHOLD:
        bytes = p->release_threshold;
        goto u64;
    case ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_CURRENT:
        bytes = p->reserved;
        goto u64;
    case ACL_RT_MEM_POOL_ATTR_RESERVED_MEM_HIGH:
        bytes = p->reserved_high;
        goto u64;
    case ACL_RT_MEM_POOL_ATTR_USED_MEM_CURRENT:
        bytes = p->used;
        goto u64;
    case ACL_RT_MEM_POOL_ATTR_USED_MEM_HIGH:
        bytes = p->used_high;
        goto u64;
    default:
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "%d is not an aclrtMemPoolAttr", (int)attr);
    }
    memcpy(value, &flag, sizeof(flag));
    return ACL_SUCCESS;
u64:
    memcpy(value, &bytes, sizeof(bytes));
    return ACL_SUCCESS;
}

RT_EXPORT aclError aclrtMemPoolGetAttr(aclrtMemPool memPool, aclrtMemPoolAttr attr, void *value)
{
    POOL_PROLOGUE();
    if (!value)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "value must not be NULL");
    aclError err;
    pthread_mutex_lock(&pool_lock);
    RtMemPool *p = pool_get(__func__, memPool, &err);
    if (p)
        err = get_attr(p, attr, value);
    pthread_mutex_unlock(&pool_lock);
    return err;
}

/* Finds or makes room for `need` bytes usable by stream s; see the Concepts for
 * the order.  Called and returns with pool_lock held, but drops it to wait. */
static aclError pool_take(const char *api, RtMemPool **pp, aclrtMemPool handle, RtStream *s,
                          uint64_t need, void **out)
{
    RtMemPool *p = *pp;
    for (;;) {
        PoolBlock *b = best_fit(p, s, need, false);
        if (!b && p->reuse_opportunistic) {
            pool_promote(p, NULL);
            b = best_fit(p, s, need, false);
        }
        if (!b)
            b = pool_grow(p, need);
        if (!b && p->chunks->len) {
            /* Idle chunks that are too small may make room for a bigger one. */
            guint before = p->chunks->len;
            pool_trim(p, 0);
            if (p->chunks->len < before)
                b = pool_grow(p, need);
        }
        if (b) {
            *out = carve(p, b, need);
            return ACL_SUCCESS;
        }
        PoolBlock *w = p->reuse_internal ? best_fit(p, s, need, true) : NULL;
        if (!w)
            return rt_fail(ACL_ERROR_RT_MEMORY_ALLOCATION, api,
                           "no room for %" PRIu64 " bytes in the pool (reserved %" PRIu64
                           ", in use %" PRIu64 ", maximum %" PRIu64 " (0: the device's "
                           "memory)), and nothing freed that this stream may reuse", need,
                           p->reserved, p->used, p->max_size);
        /* Make the dependency on the freeing stream: s waits (in the engine)
         * until that stream has run the free; the caller does not wait. */
        RtStream *ws = w->stream;
        uint32_t sid = w->sid, seq = w->seq, wait_seq = 0;
        if (seq_done(sid, seq)) {       /* it ran meanwhile (or its stream is gone) */
            pool_promote(p, ws);
            continue;
        }
        EmuTask t = { .type = EMU_TASK_STREAM_WAIT, .value = sid, .size = seq };
        pthread_mutex_unlock(&pool_lock);   /* a full queue makes the submit wait */
        aclError err = rt_stream_submit_internal(s, &t, &wait_seq), gone;
        pthread_mutex_lock(&pool_lock);
        if (!(p = *pp = pool_get(api, handle, &gone)))
            return gone;
        if (err != ACL_SUCCESS && seq_done(sid, seq))
            continue;       /* the freeing stream finished and went away meanwhile */
        if (err != ACL_SUCCESS)
            return rt_fail(err, api, "cannot queue the wait for the stream that freed the memory");
        pool_adopt(p, ws, seq, s, wait_seq);
    }
}

RT_EXPORT aclError aclrtMemPoolMallocAsync(void **ptr, size_t size, aclrtMemPool memPool,
                                           aclrtStream stream)
{
    POOL_PROLOGUE();
    if (!ptr)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "ptr must not be NULL");
    if (size == 0)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "size must not be 0");
    aclError err;
    RtStream *s = rt_stream_resolve(stream, __func__, &err);
    if (!s)
        return err;
    pthread_mutex_lock(&pool_lock);
    RtMemPool *p = pool_get(__func__, memPool, &err);
    if (!p)
        goto out;
    if (p->device != s->device) {
        err = RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                      "the pool holds memory of device %d, the stream runs on device %d",
                      p->device, s->device);
        goto out;
    }
    uint64_t need = ALIGN_UP((uint64_t)size, POOL_ALIGN);
    if (size > POOL_MAX_REQUEST || (p->max_size && need + POOL_ALIGN > p->max_size)) {
        err = RT_FAIL(ACL_ERROR_RT_MEMORY_ALLOCATION,
                      "%zu bytes do not fit a pool of at most %" PRIu64 " bytes", size,
                      p->max_size);
        goto out;
    }
    err = pool_take(__func__, &p, memPool, s, need, ptr);
out:
    pthread_mutex_unlock(&pool_lock);
    return err;
}

RT_EXPORT aclError aclrtMemPoolFreeAsync(void *ptr, aclrtStream stream)
{
    POOL_PROLOGUE();
    if (!ptr)
        return RT_FAIL(ACL_ERROR_RT_PARAM_INVALID, "ptr must not be NULL");
    aclError err;
    RtStream *s = rt_stream_resolve(stream, __func__, &err);
    if (!s)
        return err;
    uint64_t va = (uint64_t)(uintptr_t)ptr;
    pthread_mutex_lock(&pool_lock);
    PoolBlock *b = allocs ? g_hash_table_lookup(allocs, EMU_KEY(va)) : NULL;
    if (b) {
        /* A device reset since the allocation took the memory with it. */
        pool_check_device(b->chunk->pool);
        b = g_hash_table_lookup(allocs, EMU_KEY(va));
    }
    if (!b) {
        err = RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                      "%p is not memory from aclrtMemPoolMallocAsync (or it was freed, or "
                      "its device was reset)", ptr);
        goto out;
    }
    RtMemPool *p = b->chunk->pool;
    if (p->device != s->device) {
        err = RT_FAIL(ACL_ERROR_RT_PARAM_INVALID,
                      "%p is memory of device %d, the stream runs on device %d", ptr,
                      p->device, s->device);
        goto out;
    }
    g_hash_table_remove(allocs, EMU_KEY(va));
    b->state = BLOCK_PENDING;
    b->stream = s;
    b->sid = s->id;
    b->seq = rt_stream_mark(s);
    b->follower = NULL;
    note_used(p, -(int64_t)b->size);
    chunk_coalesce(b->chunk);
    if (p->destroyed)
        zombie_reap(p);
    err = ACL_SUCCESS;
out:
    pthread_mutex_unlock(&pool_lock);
    return err;
}

RT_EXPORT aclError aclrtMemPoolTrimTo(aclrtMemPool memPool, size_t minBytesToKeep)
{
    POOL_PROLOGUE();
    aclError err;
    pthread_mutex_lock(&pool_lock);
    RtMemPool *p = pool_get(__func__, memPool, &err);
    if (p)
        pool_trim(p, minBytesToKeep);
    pthread_mutex_unlock(&pool_lock);
    return p ? ACL_SUCCESS : err;
}
