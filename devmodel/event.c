/*
 * event.c - events: record numbers, a condition variable, a device id.
 */
#include "event.h"

#include <glib.h>

#include "acl/acl_base.h"
#include "npuemu/futex.h"

#define CANCEL_SLICE_US (50 * 1000)
#define SPIN_NS (30 * 1000)     /* see notify.c */

struct Event {
    Device *dev;
    uint32_t id;            /* EVENT_NO_ID until the event holds a device event */
    EventResource res;
    int refs;
    GMutex lock;
    GCond cond;
    uint64_t queued;        /* records queued */
    GHashTable *pending;    /* records queued that have not run (or been dropped) */
    uint64_t ran;           /* the highest record that ran */
    uint64_t ts_us;         /* when it ran */
    uint64_t base;          /* reset: records up to here are forgotten */
    bool set;               /* the hardware flag: a record ran since the last reset */
};

/* One of the device's DEV_EVENT_MAX events, or EVENT_NO_ID when all are taken. */
static uint32_t take_id(Device *d)
{
    g_mutex_lock(&d->lock);
    int id = -1;
    for (unsigned w = 0; w < DEV_EVENT_MAX / 64 && id < 0; w++)
        if (~d->event_used[w])
            id = (int)(w * 64 + (unsigned)__builtin_ctzll(~d->event_used[w]));
    if (id >= 0) {
        d->event_used[id / 64] |= 1ull << (id % 64);
        d->events++;
    }
    g_mutex_unlock(&d->lock);
    return id < 0 ? EVENT_NO_ID : (uint32_t)id;
}

Event *event_new(Device *d, EventResource res)
{
    uint32_t id = EVENT_NO_ID;
    if (res == EVENT_RES_NOW && (id = take_id(d)) == EVENT_NO_ID)
        return NULL;
    Event *e = g_new0(Event, 1);
    e->dev = d;
    e->id = id;
    e->res = res;
    e->refs = 1;
    g_mutex_init(&e->lock);
    g_cond_init(&e->cond);
    e->pending = g_hash_table_new(g_direct_hash, g_direct_equal);
    return e;
}

Event *event_ref(Event *e)
{
    g_atomic_int_inc(&e->refs);
    return e;
}

void event_unref(Event *e)
{
    if (!e || !g_atomic_int_dec_and_test(&e->refs))
        return;
    Device *d = e->dev;
    if (e->id != EVENT_NO_ID) {
        g_mutex_lock(&d->lock);
        d->event_used[e->id / 64] &= ~(1ull << (e->id % 64));
        d->events--;
        g_mutex_unlock(&d->lock);
    }
    g_hash_table_destroy(e->pending);
    g_mutex_clear(&e->lock);
    g_cond_clear(&e->cond);
    g_free(e);
}

uint32_t event_id(Event *e)
{
    g_mutex_lock(&e->lock);
    uint32_t id = e->id;
    g_mutex_unlock(&e->lock);
    return id;
}

int event_acquire(Event *e, bool for_record)
{
    g_mutex_lock(&e->lock);
    bool need = e->id == EVENT_NO_ID && (!for_record || e->res == EVENT_RES_AT_RECORD);
    if (need)
        e->id = take_id(e->dev);
    bool ok = !need || e->id != EVENT_NO_ID;
    g_mutex_unlock(&e->lock);
    return ok ? ACL_SUCCESS : ACL_ERROR_RT_NO_EVENT_RESOURCE;
}

Device *event_device(const Event *e)
{
    return e->dev;
}

uint64_t event_record_queued(Event *e)
{
    g_mutex_lock(&e->lock);
    uint64_t gen = ++e->queued;
    g_hash_table_add(e->pending, GSIZE_TO_POINTER(gen));
    g_mutex_unlock(&e->lock);
    return gen;
}

void event_record_ran(Event *e, uint64_t gen, uint64_t ts_us)
{
    g_mutex_lock(&e->lock);
    g_hash_table_remove(e->pending, GSIZE_TO_POINTER(gen));
    if (gen > e->ran && gen > e->base) {
        e->ran = gen;
        e->ts_us = ts_us;
    }
    e->set = true;
    g_cond_broadcast(&e->cond);
    g_mutex_unlock(&e->lock);
}

void event_record_dropped(Event *e, uint64_t gen)
{
    g_mutex_lock(&e->lock);
    g_hash_table_remove(e->pending, GSIZE_TO_POINTER(gen));
    /* The record never was: if it is the latest, the event is as before it
     * (else a later record decides the status anyway). */
    if (gen == e->queued && gen > e->base)
        e->queued--;
    g_cond_broadcast(&e->cond);
    g_mutex_unlock(&e->lock);
}

uint64_t event_latest(Event *e)
{
    g_mutex_lock(&e->lock);
    /* After a reset with nothing recorded since, `base`: a record that was
     * reset away, which waits for the flag (wait_released). */
    uint64_t gen = e->queued;
    g_mutex_unlock(&e->lock);
    return gen;
}

/* Whether record `gen` still holds a waiter (lock held). */
static bool record_pending(Event *e, uint64_t gen)
{
    return gen > e->base && g_hash_table_contains(e->pending, GSIZE_TO_POINTER(gen));
}

/* Whether a wait for record `gen` may go on (lock held).  Nothing captured:
 * at once.  Its own record: once it ran (a later record on another stream does
 * not release it).  A record that a reset forgot since: the hardware's flag,
 * which the reset cleared, so the wait holds until a record runs again (the
 * reference warns that waits after a reset "无法成功"). */
static bool wait_released(Event *e, uint64_t gen)
{
    if (gen == 0)
        return true;
    if (gen > e->base)
        return !record_pending(e, gen);
    return e->set;
}

bool event_record_done(Event *e, uint64_t gen)
{
    g_mutex_lock(&e->lock);
    bool done = !record_pending(e, gen);
    g_mutex_unlock(&e->lock);
    return done;
}

int event_wait(Event *e, uint64_t gen, uint64_t timeout_ns, const int *cancel)
{
    /* Look for the record for a short while before sleeping: a record that
     * follows closely (a ping-pong between streams) then costs no wake-up. */
    uint64_t spin_until = emu_now_ns() + SPIN_NS;
    bool pending = true;
    do {
        g_mutex_lock(&e->lock);
        pending = !wait_released(e, gen);
        g_mutex_unlock(&e->lock);
    } while (pending && emu_poll_step(spin_until));
    gint64 deadline = timeout_ns ? g_get_monotonic_time() + (gint64)(timeout_ns / 1000) : 0;
    int err = ACL_SUCCESS;
    g_mutex_lock(&e->lock);
    while (!wait_released(e, gen)) {
        if (cancel && __atomic_load_n(cancel, __ATOMIC_ACQUIRE)) {
            err = -1;
            break;
        }
        gint64 now = g_get_monotonic_time();
        if (deadline && now >= deadline) {
            err = ACL_ERROR_RT_WAIT_TIMEOUT;
            break;
        }
        gint64 until = now + CANCEL_SLICE_US;
        if (deadline && deadline < until)
            until = deadline;
        g_cond_wait_until(&e->cond, &e->lock, until);
    }
    g_mutex_unlock(&e->lock);
    return err;
}

void event_reset(Event *e)
{
    g_mutex_lock(&e->lock);
    e->base = e->queued;
    e->ran = e->queued;
    e->ts_us = 0;
    e->set = false;
    g_cond_broadcast(&e->cond);
    g_mutex_unlock(&e->lock);
}

void event_status(Event *e, uint64_t *queued, uint64_t *ran, uint64_t *ts_us)
{
    g_mutex_lock(&e->lock);
    *queued = e->queued > e->base ? e->queued : 0;
    *ran = e->ran > e->base ? e->ran : 0;
    *ts_us = e->ts_us;
    g_mutex_unlock(&e->lock);
}

unsigned event_count(Device *d)
{
    g_mutex_lock(&d->lock);
    unsigned c = d->events;
    g_mutex_unlock(&d->lock);
    return c;
}
