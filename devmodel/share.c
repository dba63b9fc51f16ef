/*
 * share.c - the export registry: tokens, whitelists, grants.
 */
#include "share.h"

#include <glib.h>
#include <string.h>
#include <sys/random.h>

#include "acl/acl_base.h"
#include "event.h"
#include "notify.h"

typedef struct ShareExport {
    ShareKind kind;
    uint8_t token[SHARE_TOKEN_LEN];
    char *name;             /* registry key: kind and the token's significant bytes */
    uint32_t owner;
    pid_t pid;
    int server;
    PhysMem *mem;
    void *sync;             /* SHARE_NOTIFY / SHARE_EVENT instead of mem */
    uint64_t off, size;
    uint64_t id;            /* VMM handle, exported device address or notify handle */
    bool pid_check;
    GArray *allowed;        /* int64: server << 32 | (uint32_t)pid */
    uint64_t attr;
    uint64_t serial;
} ShareExport;

struct ShareRegistry {
    GMutex lock;
    GHashTable *by_name;    /* name -> ShareExport * */
    uint64_t serial;
};

/* The bytes of a token the client holds: a DEFAULT handle is its first 8. */
static size_t token_len(ShareKind kind)
{
    return kind == SHARE_DEFAULT ? 8 : SHARE_TOKEN_LEN;
}

static char *token_name(ShareKind kind, const uint8_t *token, size_t len)
{
    GString *s = g_string_new(NULL);
    g_string_append_printf(s, "%d:", (int)kind);
    for (size_t i = 0; i < len; i++)
        g_string_append_printf(s, "%02x", token[i]);
    return g_string_free(s, FALSE);
}

static void export_free(ShareExport *e)
{
    if (e->mem)
        device_phys_unref(e->mem);
    if (e->sync && e->kind == SHARE_EVENT)
        event_unref(e->sync);
    else if (e->sync)
        notify_unref(e->sync);
    g_array_free(e->allowed, TRUE);
    g_free(e->name);
    g_free(e);
}

ShareRegistry *share_registry_new(void)
{
    ShareRegistry *r = g_new0(ShareRegistry, 1);
    g_mutex_init(&r->lock);
    r->by_name = g_hash_table_new(g_str_hash, g_str_equal);
    return r;
}

void share_registry_destroy(ShareRegistry *r)
{
    if (!r)
        return;
    GHashTableIter it;
    gpointer value;
    g_hash_table_iter_init(&it, r->by_name);
    while (g_hash_table_iter_next(&it, NULL, &value))
        export_free(value);
    g_hash_table_destroy(r->by_name);
    g_mutex_clear(&r->lock);
    g_free(r);
}

static void random_bytes(uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = getrandom(buf + got, n - got, 0);
        if (k > 0) {
            got += (size_t)k;
        } else {
            /* No entropy source: GLib's generator (seeded from /dev/urandom). */
            for (; got < n; got++)
                buf[got] = (uint8_t)g_random_int();
        }
    }
}

static ShareExport *find(ShareRegistry *r, ShareKind kind, const uint8_t *token, size_t len)
{
    if (len != token_len(kind))
        return NULL;
    char *name = token_name(kind, token, len);
    ShareExport *e = g_hash_table_lookup(r->by_name, name);
    g_free(name);
    return e;
}

static bool is_sync(ShareKind kind)
{
    return kind == SHARE_NOTIFY || kind == SHARE_EVENT;
}

static void sync_unref(ShareKind kind, void *obj)
{
    if (kind == SHARE_EVENT)
        event_unref(obj);
    else
        notify_unref(obj);
}

static int export_obj(ShareRegistry *r, ShareKind kind, uint32_t owner, pid_t pid, int server,
                      PhysMem *mem, void *sync, uint64_t off, uint64_t size, uint64_t id,
                      bool pid_check, uint8_t token[SHARE_TOKEN_LEN])
{
    g_mutex_lock(&r->lock);
    if (kind != SHARE_IPC) {
        GHashTableIter it;
        gpointer value;
        g_hash_table_iter_init(&it, r->by_name);
        while (g_hash_table_iter_next(&it, NULL, &value)) {
            ShareExport *o = value;
            /* DEFAULT and FABRIC exports of one handle count as one. */
            bool same_class = o->kind != SHARE_IPC &&
                              (is_sync(o->kind) ? o->kind == kind : !is_sync(kind));
            if (same_class && o->owner == owner && o->id == id) {
                g_mutex_unlock(&r->lock);
                if (mem)
                    device_phys_unref(mem);
                if (sync)
                    sync_unref(kind, sync);
                return ACL_ERROR_RT_PARAM_INVALID;
            }
        }
    }
    ShareExport *e = g_new0(ShareExport, 1);
    *e = (ShareExport){ .kind = kind, .owner = owner, .pid = pid, .server = server, .mem = mem,
                        .sync = sync, .off = off, .size = size, .id = id,
                        .pid_check = pid_check,
                        .allowed = g_array_new(FALSE, FALSE, sizeof(int64_t)),
                        .serial = ++r->serial };
    do {
        random_bytes(e->token, sizeof(e->token));
        g_free(e->name);
        e->name = token_name(kind, e->token, token_len(kind));
    } while (g_hash_table_contains(r->by_name, e->name) ||
             (kind == SHARE_DEFAULT && memcmp(e->token, "\0\0\0\0\0\0\0\0", 8) == 0));
    g_hash_table_insert(r->by_name, e->name, e);
    memcpy(token, e->token, SHARE_TOKEN_LEN);
    g_mutex_unlock(&r->lock);
    return ACL_SUCCESS;
}

int share_export(ShareRegistry *r, ShareKind kind, uint32_t owner, pid_t pid, int server,
                 PhysMem *mem, uint64_t off, uint64_t size, uint64_t id, bool pid_check,
                 uint8_t token[SHARE_TOKEN_LEN])
{
    return export_obj(r, kind, owner, pid, server, mem, NULL, off, size, id, pid_check, token);
}

int share_export_sync(ShareRegistry *r, ShareKind kind, uint32_t owner, pid_t pid, int server,
                      void *obj, uint64_t id, bool pid_check, uint8_t token[SHARE_TOKEN_LEN])
{
    if (!is_sync(kind)) {
        sync_unref(kind, obj);
        return ACL_ERROR_RT_PARAM_INVALID;
    }
    return export_obj(r, kind, owner, pid, server, NULL, obj, 0, 0, id, pid_check, token);
}

int share_allow(ShareRegistry *r, ShareKind kind, const uint8_t *token, size_t len,
                uint32_t owner, const int32_t *servers, const int32_t *pids, size_t n)
{
    g_mutex_lock(&r->lock);
    ShareExport *e = find(r, kind, token, len);
    int err = e && e->owner == owner ? ACL_SUCCESS : ACL_ERROR_RT_PARAM_INVALID;
    for (size_t i = 0; err == ACL_SUCCESS && i < n; i++) {
        /* Shifted unsigned: SHARE_ANY_SERVER is negative. */
        uint32_t server = (uint32_t)(servers ? servers[i] : e->server);
        int64_t v = (int64_t)(((uint64_t)server << 32) | (uint32_t)pids[i]);
        g_array_append_val(e->allowed, v);
    }
    g_mutex_unlock(&r->lock);
    return err;
}

int share_set_attr(ShareRegistry *r, const uint8_t *token, size_t len, uint32_t owner,
                   uint64_t attr)
{
    g_mutex_lock(&r->lock);
    ShareExport *e = find(r, SHARE_IPC, token, len);
    int err = e && e->owner == owner ? ACL_SUCCESS : ACL_ERROR_RT_PARAM_INVALID;
    if (err == ACL_SUCCESS)
        e->attr = attr;
    g_mutex_unlock(&r->lock);
    return err;
}

/* Whether (server, pid) is on the whitelist; `exact`: by an entry naming that
 * server, not one for any server. */
static bool allowed(const ShareExport *e, pid_t pid, int server, bool exact)
{
    for (guint i = 0; i < e->allowed->len; i++) {
        int64_t v = g_array_index(e->allowed, int64_t, i);
        int32_t s = (int32_t)(v >> 32);
        if ((int32_t)(uint32_t)v == pid && (s == server || (!exact && s == SHARE_ANY_SERVER)))
            return true;
    }
    return false;
}

int share_import(ShareRegistry *r, ShareKind kind, const uint8_t *token, size_t len,
                 uint32_t owner, pid_t pid, int server, ShareGrant *out)
{
    g_mutex_lock(&r->lock);
    ShareExport *e = find(r, kind, token, len);
    int err = ACL_SUCCESS;
    /* Across servers: FABRIC handles, and IPC keys whose exporter whitelisted
     * this very (server, pid) (aclrtIpcMemImportPidInterServer); never a
     * DEFAULT handle, nor a key without pid validation. */
    bool cross = e && e->server != server;
    bool keyed = kind == SHARE_IPC || is_sync(kind);
    if (!e || e->owner == owner || (cross && kind == SHARE_DEFAULT) ||
        (cross && keyed && !(e->pid_check && allowed(e, pid, server, true))))
        err = ACL_ERROR_RT_PARAM_INVALID;
    else if (e->pid_check && !allowed(e, pid, server, false))
        err = ACL_ERROR_RT_NO_PERMISSION;
    if (err == ACL_SUCCESS) {
        if (e->mem)
            device_phys_ref(e->mem);
        void *sync = NULL;
        if (e->sync)
            sync = e->kind == SHARE_EVENT ? (void *)event_ref(e->sync)
                                          : (void *)notify_ref(e->sync);
        *out = (ShareGrant){ .mem = e->mem, .sync = sync,
                             .off = e->off, .size = e->size, .server = e->server,
                             .serial = e->serial };
    }
    g_mutex_unlock(&r->lock);
    return err;
}

int share_withdraw(ShareRegistry *r, ShareKind kind, const uint8_t *token, size_t len,
                   uint32_t owner)
{
    g_mutex_lock(&r->lock);
    ShareExport *e = find(r, kind, token, len);
    bool mine = e && e->owner == owner;
    if (mine)
        g_hash_table_remove(r->by_name, e->name);
    g_mutex_unlock(&r->lock);
    if (!mine)
        return ACL_ERROR_RT_PARAM_INVALID;
    export_free(e);
    return ACL_SUCCESS;
}

typedef struct Match {
    uint32_t owner;
    int what;               /* 0 all, 1 handle, 2 address range, 3 notify */
    uint64_t id, lo, hi;
} Match;

static unsigned withdraw_matching(ShareRegistry *r, const Match *m)
{
    GPtrArray *gone = g_ptr_array_new();
    g_mutex_lock(&r->lock);
    GHashTableIter it;
    gpointer value;
    g_hash_table_iter_init(&it, r->by_name);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        ShareExport *e = value;
        bool hit = e->owner == m->owner &&
                   (m->what == 0 ||
                    (m->what == 1 && (e->kind == SHARE_DEFAULT || e->kind == SHARE_FABRIC) &&
                     e->id == m->id) ||
                    (m->what == 3 && is_sync(e->kind) && e->id == m->id) ||
                    (m->what == 2 && e->kind == SHARE_IPC && e->id >= m->lo && e->id < m->hi));
        if (hit) {
            g_hash_table_iter_remove(&it);
            g_ptr_array_add(gone, e);
        }
    }
    g_mutex_unlock(&r->lock);
    unsigned n = gone->len;
    for (guint i = 0; i < gone->len; i++)
        export_free(g_ptr_array_index(gone, i));
    g_ptr_array_free(gone, TRUE);
    return n;
}

unsigned share_withdraw_handle(ShareRegistry *r, uint32_t owner, uint64_t handle)
{
    Match m = { .owner = owner, .what = 1, .id = handle };
    return withdraw_matching(r, &m);
}

unsigned share_withdraw_range(ShareRegistry *r, uint32_t owner, uint64_t va, uint64_t size)
{
    Match m = { .owner = owner, .what = 2, .lo = va, .hi = va + size };
    return withdraw_matching(r, &m);
}

unsigned share_withdraw_notify(ShareRegistry *r, uint32_t owner, uint64_t handle)
{
    Match m = { .owner = owner, .what = 3, .id = handle };
    return withdraw_matching(r, &m);
}

unsigned share_withdraw_owner(ShareRegistry *r, uint32_t owner)
{
    Match m = { .owner = owner, .what = 0 };
    return withdraw_matching(r, &m);
}

unsigned share_count(ShareRegistry *r)
{
    g_mutex_lock(&r->lock);
    unsigned n = g_hash_table_size(r->by_name);
    g_mutex_unlock(&r->lock);
    return n;
}
