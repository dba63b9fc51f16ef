/*
 * notify.c - notifies: a flag, a condition variable, a device id.
 */
#include "notify.h"

#include <glib.h>

#include "acl/acl_base.h"
#include "npuemu/futex.h"

#define CANCEL_SLICE_US (50 * 1000)
/* A waiter looks for the record for this long before it sleeps: a record that
 * follows closely (a ping-pong between streams) then costs no thread wake-up. */
#define SPIN_NS (30 * 1000)

struct Notify {
    Device *dev;
    uint32_t id;
    int refs;
    GMutex lock;
    GCond cond;
    bool set;
};

Notify *notify_new(Device *d)
{
    g_mutex_lock(&d->lock);
    int id = -1;
    for (unsigned w = 0; w < DEV_NOTIFY_MAX / 64 && id < 0; w++)
        if (~d->notify_used[w])
            id = (int)(w * 64 + (unsigned)__builtin_ctzll(~d->notify_used[w]));
    if (id >= 0) {
        d->notify_used[id / 64] |= 1ull << (id % 64);
        d->notifies++;
    }
    g_mutex_unlock(&d->lock);
    if (id < 0)
        return NULL;
    Notify *n = g_new0(Notify, 1);
    n->dev = d;
    n->id = (uint32_t)id;
    n->refs = 1;
    g_mutex_init(&n->lock);
    g_cond_init(&n->cond);
    return n;
}

Notify *notify_ref(Notify *n)
{
    g_atomic_int_inc(&n->refs);
    return n;
}

void notify_unref(Notify *n)
{
    if (!n || !g_atomic_int_dec_and_test(&n->refs))
        return;
    Device *d = n->dev;
    g_mutex_lock(&d->lock);
    d->notify_used[n->id / 64] &= ~(1ull << (n->id % 64));
    d->notifies--;
    g_mutex_unlock(&d->lock);
    g_mutex_clear(&n->lock);
    g_cond_clear(&n->cond);
    g_free(n);
}

uint32_t notify_id(const Notify *n)
{
    return n->id;
}

Device *notify_device(const Notify *n)
{
    return n->dev;
}

void notify_record(Notify *n)
{
    g_mutex_lock(&n->lock);
    __atomic_store_n(&n->set, true, __ATOMIC_RELEASE);
    g_cond_broadcast(&n->cond);
    g_mutex_unlock(&n->lock);
}

void notify_reset(Notify *n)
{
    g_mutex_lock(&n->lock);
    n->set = false;
    g_mutex_unlock(&n->lock);
}

int notify_wait(Notify *n, uint64_t timeout_ns, const int *cancel)
{
    uint64_t spin_until = emu_now_ns() + SPIN_NS;
    while (!__atomic_load_n(&n->set, __ATOMIC_ACQUIRE) && emu_poll_step(spin_until))
        ;
    gint64 deadline = timeout_ns ? g_get_monotonic_time() + (gint64)(timeout_ns / 1000) : 0;
    int err = ACL_SUCCESS;
    g_mutex_lock(&n->lock);
    while (!n->set) {
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
        g_cond_wait_until(&n->cond, &n->lock, until);
    }
    if (err == ACL_SUCCESS)
        n->set = false;
    g_mutex_unlock(&n->lock);
    return err;
}

unsigned notify_count(Device *d)
{
    g_mutex_lock(&d->lock);
    unsigned c = d->notifies;
    g_mutex_unlock(&d->lock);
    return c;
}
