/*
 * test_share.c - the registry of exported memory (devmodel/share.h) and the
 * sharing calls of a client's address space (devmodel/aspace.h), over real
 * devices and physical memory, without sockets.
 *
 * Registry: tokens (32 random bytes; a DEFAULT handle is named by its first 8,
 * never 0), the import rules (not the exporter's own session, the exporter's
 * server unless FABRIC, the whitelist of (server, pid) pairs when pid
 * validation is on), owner-only calls, one DEFAULT / FABRIC export per handle,
 * the PhysMem reference a grant carries (HBM accounting), the withdraw calls
 * and their counts, destroy, and concurrent exports / imports / withdrawals.
 *
 * Address space: IPC imports at a VA of the memory's device heap (the right
 * tables, the right bytes, close), imported handles (one per export serial,
 * PT_PEER mappings that need peer access when the memory is another device's
 * of the server).
 *
 * Devices: two servers of three devices, 4 GiB of HBM each (sparse backing:
 * the tests touch a few pages).
 */
#include "devmodel/share.h"
#include "devmodel/aspace.h"

#include <CUnit/Basic.h>
#include "cu_run.h"
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "acl/acl_base.h"
#include "acl/acl_rt.h"
#include "npuemu/proto.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define CAP (4 * GiB)
#define NDEV 3              /* per server */
#define NSRV 2

/* by_tag[s * EMU_MAX_DEVICES + i]: device i of server s (tags as in the emulator). */
static Device *by_tag[NSRV * EMU_MAX_DEVICES];

static Device *dev(int server, int i)
{
    return by_tag[server * EMU_MAX_DEVICES + i];
}

static uint64_t span_of(int d)
{
    return EMU_VA_WINDOW_LO + (uint64_t)d * EMU_VA_DEVICE_SPAN;
}

static uint64_t heap_lo(int d)
{
    return span_of(d) + EMU_VA_HEAP_OFFSET;
}

static int suite_init(void)
{
    for (int s = 0; s < NSRV; s++)
        for (int i = 0; i < NDEV; i++) {
            Device *d = device_new(i, CAP, heap_lo(i), heap_lo(i) + EMU_VA_MALLOC_SPAN);
            if (!d)
                return -1;
            d->tag = (uint32_t)(s * EMU_MAX_DEVICES + i);
            by_tag[s * EMU_MAX_DEVICES + i] = d;
        }
    return 0;
}

static int suite_clean(void)
{
    for (unsigned t = 0; t < G_N_ELEMENTS(by_tag); t++) {
        device_destroy(by_tag[t]);
        by_tag[t] = NULL;
    }
    return 0;
}

static uint64_t free_of(Device *d)
{
    uint64_t f = 0, t = 0;
    device_mem_info(d, &f, &t);
    CU_ASSERT_EQUAL(t, CAP);
    CU_ASSERT_EQUAL(f, hbm_free_bytes(&d->hbm));
    return f;
}

static bool all_free(void)
{
    bool ok = true;
    for (int s = 0; s < NSRV; s++)
        for (int i = 0; i < NDEV; i++) {
            uint64_t f = free_of(dev(s, i));
            if (f != CAP || !va_range_is_empty(dev(s, i)->heap)) {
                fprintf(stderr, "server %d device %d: %llu of %llu bytes free%s\n", s, i,
                        (unsigned long long)f, (unsigned long long)CAP,
                        va_range_is_empty(dev(s, i)->heap) ? "" : ", heap VA in use");
                ok = false;
            }
        }
    return ok;
}

static uint32_t refs_of(PhysMem *m)
{
    g_mutex_lock(&m->dev->lock);
    uint32_t r = m->refs;
    g_mutex_unlock(&m->dev->lock);
    return r;
}

static PhysMem *must_phys(Device *d, uint64_t size, uint64_t page)
{
    PhysMem *m = device_phys_alloc(d, size, page);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    return m;
}

/* share_export with a new reference to m (the caller keeps its own). */
static int export_ref(ShareRegistry *r, ShareKind kind, uint32_t owner, pid_t pid, int server,
                      PhysMem *m, uint64_t off, uint64_t size, uint64_t id, bool pid_check,
                      uint8_t token[SHARE_TOKEN_LEN])
{
    device_phys_ref(m);
    return share_export(r, kind, owner, pid, server, m, off, size, id, pid_check, token);
}

static size_t tlen(ShareKind kind)
{
    return kind == SHARE_DEFAULT ? 8 : SHARE_TOKEN_LEN;
}

/* share_import; drops the grant's reference; returns the status. */
static int try_import(ShareRegistry *r, ShareKind kind, const uint8_t *token, uint32_t owner,
                      pid_t pid, int server)
{
    ShareGrant g;
    memset(&g, 0, sizeof(g));
    int err = share_import(r, kind, token, tlen(kind), owner, pid, server, &g);
    if (err == ACL_SUCCESS) {
        CU_ASSERT_PTR_NOT_NULL(g.mem);
        device_phys_unref(g.mem);
    } else {
        CU_ASSERT_PTR_NULL(g.mem);
    }
    return err;
}

/* ---- tokens ---- */

#define NTOK 256

static void test_tokens(void)
{
    ShareRegistry *r = share_registry_new();
    PhysMem *m = must_phys(dev(0, 0), 2 * MiB, 2 * MiB);
    static uint8_t tok[3][NTOK][SHARE_TOKEN_LEN];
    const ShareKind kinds[3] = { SHARE_IPC, SHARE_DEFAULT, SHARE_FABRIC };
    GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    GHashTable *seen8 = g_hash_table_new(g_int64_hash, g_int64_equal);
    static uint64_t first8[NTOK];
    for (int k = 0; k < 3; k++) {
        for (unsigned i = 0; i < NTOK; i++) {
            memset(tok[k][i], 0, SHARE_TOKEN_LEN);
            /* ids are handles (DEFAULT / FABRIC: one export per handle) or addresses */
            uint64_t id = (uint64_t)k << 32 | (i + 1);
            CU_ASSERT_EQUAL_FATAL(export_ref(r, kinds[k], 1, 100, 0, m, 0, 2 * MiB, id, false,
                                             tok[k][i]),
                                  ACL_SUCCESS);
            GString *s = g_string_new(NULL);
            for (int b = 0; b < SHARE_TOKEN_LEN; b++)
                g_string_append_printf(s, "%02x", tok[k][i][b]);
            CU_ASSERT_FALSE(g_hash_table_contains(seen, s->str));
            g_hash_table_add(seen, g_string_free(s, FALSE));
            if (kinds[k] == SHARE_DEFAULT) {
                memcpy(&first8[i], tok[k][i], 8);
                /* never 0, and the 8 bytes alone name it: distinct */
                CU_ASSERT_NOT_EQUAL(first8[i], 0);
                CU_ASSERT_FALSE(g_hash_table_contains(seen8, &first8[i]));
                g_hash_table_add(seen8, &first8[i]);
            }
        }
        /* every one of the 32 bytes varies across the exports */
        for (int b = 0; b < SHARE_TOKEN_LEN; b++) {
            bool varies = false;
            for (unsigned i = 1; i < NTOK && !varies; i++)
                varies = tok[k][i][b] != tok[k][0][b];
            CU_ASSERT_TRUE(varies);
            if (!varies)
                fprintf(stderr, "kind %d: byte %d of the token is constant\n", kinds[k], b);
        }
    }
    CU_ASSERT_EQUAL(share_count(r), 3 * NTOK);
    CU_ASSERT_EQUAL(refs_of(m), 1 + 3 * NTOK);

    /* an IPC key and a FABRIC handle are named by all 32 bytes, a DEFAULT
     * handle by its first 8 (the rest does not matter) */
    uint8_t t[SHARE_TOKEN_LEN];
    for (int k = 0; k < 3; k++) {
        ShareGrant g;
        memcpy(t, tok[k][7], SHARE_TOKEN_LEN);
        CU_ASSERT_EQUAL(share_import(r, kinds[k], t, tlen(kinds[k]), 2, 200, 0, &g),
                        ACL_SUCCESS);
        device_phys_unref(g.mem);
        /* the wrong length names nothing */
        CU_ASSERT_EQUAL(share_import(r, kinds[k], t, kinds[k] == SHARE_DEFAULT ? 32 : 8, 2, 200,
                                     0, &g),
                        ACL_ERROR_RT_PARAM_INVALID);
        CU_ASSERT_EQUAL(share_import(r, kinds[k], t, 0, 2, 200, 0, &g),
                        ACL_ERROR_RT_PARAM_INVALID);
        t[31] ^= 0x5a;
        CU_ASSERT_EQUAL(share_import(r, kinds[k], t, tlen(kinds[k]), 2, 200, 0, &g),
                        kinds[k] == SHARE_DEFAULT ? ACL_SUCCESS : ACL_ERROR_RT_PARAM_INVALID);
        if (kinds[k] == SHARE_DEFAULT)
            device_phys_unref(g.mem);
        memcpy(t, tok[k][7], SHARE_TOKEN_LEN);
        t[0] ^= 0x5a;
        CU_ASSERT_EQUAL(share_import(r, kinds[k], t, tlen(kinds[k]), 2, 200, 0, &g),
                        ACL_ERROR_RT_PARAM_INVALID);
        /* a token of one kind names nothing of another */
        ShareKind other = kinds[(k + 1) % 3];
        CU_ASSERT_EQUAL(share_import(r, other, tok[k][7], tlen(other), 2, 200, 0, &g),
                        ACL_ERROR_RT_PARAM_INVALID);
    }
    /* the zero DEFAULT handle names nothing */
    memset(t, 0, sizeof(t));
    CU_ASSERT_EQUAL(try_import(r, SHARE_DEFAULT, t, 2, 200, 0), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(share_withdraw(r, SHARE_DEFAULT, t, 8, 1), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(refs_of(m), 1 + 3 * NTOK);

    CU_ASSERT_EQUAL(share_withdraw_owner(r, 1), 3 * NTOK);
    CU_ASSERT_EQUAL(share_count(r), 0);
    CU_ASSERT_EQUAL(refs_of(m), 1);
    g_hash_table_destroy(seen);
    g_hash_table_destroy(seen8);
    share_registry_destroy(r);
    device_phys_unref(m);
    CU_ASSERT_TRUE(all_free());
}

/* ---- import rules ---- */

static void test_import_rules(void)
{
    ShareRegistry *r = share_registry_new();
    PhysMem *m = must_phys(dev(0, 1), 4 * MiB, 2 * MiB);
    uint8_t ipc[SHARE_TOKEN_LEN], def[SHARE_TOKEN_LEN], fab[SHARE_TOKEN_LEN];
    /* exporter: owner 1, pid 100, server 0 */
    CU_ASSERT_EQUAL_FATAL(export_ref(r, SHARE_IPC, 1, 100, 0, m, 2 * MiB, 2 * MiB,
                                     heap_lo(1) + 2 * MiB, false, ipc),
                          ACL_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(export_ref(r, SHARE_DEFAULT, 1, 100, 0, m, 0, 4 * MiB, 0x77, false, def),
                          ACL_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(export_ref(r, SHARE_FABRIC, 1, 100, 0, m, 0, 4 * MiB, 0x78, false, fab),
                          ACL_SUCCESS);

    /* the exporter's own session: refused, whatever pid and server it claims */
    CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, ipc, 1, 100, 0), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_import(r, SHARE_DEFAULT, def, 1, 100, 0), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_import(r, SHARE_FABRIC, fab, 1, 100, 0), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_import(r, SHARE_FABRIC, fab, 1, 101, 1), ACL_ERROR_RT_PARAM_INVALID);

    /* another session of the server: every kind */
    ShareGrant g;
    CU_ASSERT_EQUAL(share_import(r, SHARE_IPC, ipc, 32, 2, 200, 0, &g), ACL_SUCCESS);
    CU_ASSERT_PTR_EQUAL(g.mem, m);
    CU_ASSERT_EQUAL(g.off, 2 * MiB);
    CU_ASSERT_EQUAL(g.size, 2 * MiB);
    CU_ASSERT_EQUAL(g.server, 0);
    uint64_t ipc_serial = g.serial;
    CU_ASSERT_NOT_EQUAL(ipc_serial, 0);
    device_phys_unref(g.mem);
    CU_ASSERT_EQUAL(share_import(r, SHARE_IPC, ipc, 32, 3, 300, 0, &g), ACL_SUCCESS);
    CU_ASSERT_EQUAL(g.serial, ipc_serial);  /* the same export */
    device_phys_unref(g.mem);
    CU_ASSERT_EQUAL(share_import(r, SHARE_DEFAULT, def, 8, 2, 200, 0, &g), ACL_SUCCESS);
    CU_ASSERT_EQUAL(g.off, 0);
    CU_ASSERT_EQUAL(g.size, 4 * MiB);
    CU_ASSERT_NOT_EQUAL(g.serial, ipc_serial);
    uint64_t def_serial = g.serial;
    device_phys_unref(g.mem);
    CU_ASSERT_EQUAL(share_import(r, SHARE_FABRIC, fab, 32, 2, 200, 0, &g), ACL_SUCCESS);
    CU_ASSERT_NOT_EQUAL(g.serial, ipc_serial);
    CU_ASSERT_NOT_EQUAL(g.serial, def_serial);
    device_phys_unref(g.mem);

    /* another server: IPC and DEFAULT refused, FABRIC allowed from any */
    for (int s = 1; s < EMU_MAX_SERVERS; s++) {
        CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, ipc, 2, 200, s), ACL_ERROR_RT_PARAM_INVALID);
        CU_ASSERT_EQUAL(try_import(r, SHARE_DEFAULT, def, 2, 200, s), ACL_ERROR_RT_PARAM_INVALID);
        CU_ASSERT_EQUAL(share_import(r, SHARE_FABRIC, fab, 32, 2, 200, s, &g), ACL_SUCCESS);
        CU_ASSERT_EQUAL(g.server, 0);   /* where the memory lives */
        device_phys_unref(g.mem);
    }
    CU_ASSERT_EQUAL(refs_of(m), 4);
    share_registry_destroy(r);
    CU_ASSERT_EQUAL(refs_of(m), 1);
    device_phys_unref(m);
    CU_ASSERT_TRUE(all_free());
}

/* ---- pid validation ---- */

static void test_pid_validation(void)
{
    ShareRegistry *r = share_registry_new();
    PhysMem *m = must_phys(dev(0, 0), 2 * MiB, 2 * MiB);
    uint8_t ipc[SHARE_TOKEN_LEN], def[SHARE_TOKEN_LEN], fab[SHARE_TOKEN_LEN];
    uint8_t open_ipc[SHARE_TOKEN_LEN];
    CU_ASSERT_EQUAL_FATAL(export_ref(r, SHARE_IPC, 1, 100, 0, m, 0, 2 * MiB, heap_lo(0), true,
                                     ipc),
                          ACL_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(export_ref(r, SHARE_IPC, 1, 100, 0, m, 0, 2 * MiB, heap_lo(0), false,
                                     open_ipc),
                          ACL_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(export_ref(r, SHARE_DEFAULT, 1, 100, 0, m, 0, 2 * MiB, 0x10, true, def),
                          ACL_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(export_ref(r, SHARE_FABRIC, 1, 100, 0, m, 0, 2 * MiB, 0x11, true, fab),
                          ACL_SUCCESS);

    /* without validation: any session of the server */
    CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, open_ipc, 2, 200, 0), ACL_SUCCESS);
    CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, open_ipc, 9, 999, 0), ACL_SUCCESS);

    /* with it: nobody until whitelisted */
    CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, ipc, 2, 200, 0), ACL_ERROR_RT_NO_PERMISSION);
    CU_ASSERT_EQUAL(try_import(r, SHARE_DEFAULT, def, 2, 200, 0), ACL_ERROR_RT_NO_PERMISSION);
    CU_ASSERT_EQUAL(try_import(r, SHARE_FABRIC, fab, 2, 200, 0), ACL_ERROR_RT_NO_PERMISSION);
    CU_ASSERT_EQUAL(try_import(r, SHARE_FABRIC, fab, 2, 200, 1), ACL_ERROR_RT_NO_PERMISSION);
    /* the other rules come first: the exporter and other servers stay refused */
    CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, ipc, 1, 100, 0), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, ipc, 2, 200, 1), ACL_ERROR_RT_PARAM_INVALID);

    /* only the exporter whitelists */
    const int32_t s0[] = { 0 }, p200[] = { 200 };
    CU_ASSERT_EQUAL(share_allow(r, SHARE_IPC, ipc, 32, 2, s0, p200, 1),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(share_allow(r, SHARE_DEFAULT, def, 8, 2, s0, p200, 1),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(share_allow(r, SHARE_FABRIC, fab, 32, 2, s0, p200, 1),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, ipc, 2, 200, 0), ACL_ERROR_RT_NO_PERMISSION);
    /* nor a token that names nothing (wrong kind, wrong length) */
    CU_ASSERT_EQUAL(share_allow(r, SHARE_FABRIC, ipc, 32, 1, s0, p200, 1),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(share_allow(r, SHARE_DEFAULT, def, 32, 1, s0, p200, 1),
                    ACL_ERROR_RT_PARAM_INVALID);

    /* (server 0, pid 200): that pid on that server, nobody else */
    CU_ASSERT_EQUAL(share_allow(r, SHARE_IPC, ipc, 32, 1, s0, p200, 1), ACL_SUCCESS);
    CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, ipc, 2, 200, 0), ACL_SUCCESS);
    CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, ipc, 5, 200, 0), ACL_SUCCESS); /* a new session */
    CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, ipc, 3, 201, 0), ACL_ERROR_RT_NO_PERMISSION);
    CU_ASSERT_EQUAL(try_import(r, SHARE_DEFAULT, def, 2, 200, 0), ACL_ERROR_RT_NO_PERMISSION);

    /* several pairs at once; NULL servers: the exporter's */
    const int32_t p_def[] = { 200, 201, 202 };
    CU_ASSERT_EQUAL(share_allow(r, SHARE_DEFAULT, def, 8, 1, NULL, p_def, 3), ACL_SUCCESS);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(try_import(r, SHARE_DEFAULT, def, 2 + (uint32_t)i, p_def[i], 0),
                        ACL_SUCCESS);
    CU_ASSERT_EQUAL(try_import(r, SHARE_DEFAULT, def, 6, 203, 0), ACL_ERROR_RT_NO_PERMISSION);
    /* n = 0 adds nothing */
    CU_ASSERT_EQUAL(share_allow(r, SHARE_DEFAULT, def, 8, 1, NULL, NULL, 0), ACL_SUCCESS);
    CU_ASSERT_EQUAL(try_import(r, SHARE_DEFAULT, def, 6, 203, 0), ACL_ERROR_RT_NO_PERMISSION);

    /* FABRIC: (server 1, pid 300) is not pid 300 on server 2 nor on server 0;
     * SHARE_ANY_SERVER matches pid 400 anywhere, and no other pid */
    const int32_t s_fab[] = { 1, SHARE_ANY_SERVER }, p_fab[] = { 300, 400 };
    CU_ASSERT_EQUAL(share_allow(r, SHARE_FABRIC, fab, 32, 1, s_fab, p_fab, 2), ACL_SUCCESS);
    CU_ASSERT_EQUAL(try_import(r, SHARE_FABRIC, fab, 2, 300, 1), ACL_SUCCESS);
    CU_ASSERT_EQUAL(try_import(r, SHARE_FABRIC, fab, 2, 300, 2), ACL_ERROR_RT_NO_PERMISSION);
    CU_ASSERT_EQUAL(try_import(r, SHARE_FABRIC, fab, 2, 300, 0), ACL_ERROR_RT_NO_PERMISSION);
    for (int s = 0; s < EMU_MAX_SERVERS; s++) {
        CU_ASSERT_EQUAL(try_import(r, SHARE_FABRIC, fab, 7, 400, s), ACL_SUCCESS);
        CU_ASSERT_EQUAL(try_import(r, SHARE_FABRIC, fab, 7, 401, s), ACL_ERROR_RT_NO_PERMISSION);
        CU_ASSERT_EQUAL(try_import(r, SHARE_FABRIC, fab, 7, -400, s), ACL_ERROR_RT_NO_PERMISSION);
    }
    /* an IPC key whitelisted for any server is still imported on its own only */
    const int32_t s_any[] = { SHARE_ANY_SERVER }, p500[] = { 500 };
    CU_ASSERT_EQUAL(share_allow(r, SHARE_IPC, ipc, 32, 1, s_any, p500, 1), ACL_SUCCESS);
    CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, ipc, 8, 500, 0), ACL_SUCCESS);
    CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, ipc, 8, 500, 1), ACL_ERROR_RT_PARAM_INVALID);

    /* the link attribute: IPC keys, their exporter only */
    CU_ASSERT_EQUAL(share_set_attr(r, ipc, 32, 2, 1), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(share_set_attr(r, ipc, 32, 1, 1), ACL_SUCCESS);
    CU_ASSERT_EQUAL(share_set_attr(r, ipc, 8, 1, 1), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(share_set_attr(r, fab, 32, 1, 1), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(share_set_attr(r, def, 8, 1, 1), ACL_ERROR_RT_PARAM_INVALID);

    /* a withdrawn export: nothing to allow, import or withdraw any more */
    CU_ASSERT_EQUAL(share_withdraw(r, SHARE_IPC, ipc, 32, 2), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(share_withdraw(r, SHARE_IPC, ipc, 32, 1), ACL_SUCCESS);
    CU_ASSERT_EQUAL(share_withdraw(r, SHARE_IPC, ipc, 32, 1), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, ipc, 2, 200, 0), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(share_allow(r, SHARE_IPC, ipc, 32, 1, s0, p200, 1),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(share_set_attr(r, ipc, 32, 1, 0), ACL_ERROR_RT_PARAM_INVALID);

    CU_ASSERT_EQUAL(share_count(r), 3);
    share_registry_destroy(r);
    CU_ASSERT_EQUAL(refs_of(m), 1);
    device_phys_unref(m);
    CU_ASSERT_TRUE(all_free());
}

/* ---- one DEFAULT / FABRIC export per (owner, handle) ---- */

static void test_one_export_per_handle(void)
{
    ShareRegistry *r = share_registry_new();
    PhysMem *m = must_phys(dev(0, 0), 2 * MiB, 2 * MiB);
    uint8_t t1[SHARE_TOKEN_LEN], t2[SHARE_TOKEN_LEN];
    CU_ASSERT_EQUAL(export_ref(r, SHARE_DEFAULT, 1, 100, 0, m, 0, 2 * MiB, 0xabc, false, t1),
                    ACL_SUCCESS);
    /* a second export of the handle, of either kind: refused, and the
     * reference passed with it is dropped */
    memset(t2, 0xee, sizeof(t2));
    CU_ASSERT_EQUAL(export_ref(r, SHARE_DEFAULT, 1, 100, 0, m, 0, 2 * MiB, 0xabc, false, t2),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(export_ref(r, SHARE_FABRIC, 1, 100, 0, m, 0, 2 * MiB, 0xabc, false, t2),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(t2[0], 0xee);   /* no token handed out */
    CU_ASSERT_EQUAL(share_count(r), 1);
    CU_ASSERT_EQUAL(refs_of(m), 2);
    /* another handle of the owner, the same handle value of another owner,
     * and IPC keys of an address equal to the handle: all fine */
    CU_ASSERT_EQUAL(export_ref(r, SHARE_FABRIC, 1, 100, 0, m, 0, 2 * MiB, 0xabd, false, t2),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(export_ref(r, SHARE_DEFAULT, 2, 200, 0, m, 0, 2 * MiB, 0xabc, false, t2),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(export_ref(r, SHARE_IPC, 1, 100, 0, m, 0, 2 * MiB, 0xabc, false, t2),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(export_ref(r, SHARE_IPC, 1, 100, 0, m, 0, 2 * MiB, 0xabc, false, t2),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(share_count(r), 5);
    /* withdrawn, the handle can be exported again */
    CU_ASSERT_EQUAL(share_withdraw(r, SHARE_DEFAULT, t1, 8, 1), ACL_SUCCESS);
    CU_ASSERT_EQUAL(export_ref(r, SHARE_FABRIC, 1, 100, 0, m, 0, 2 * MiB, 0xabc, false, t1),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(share_count(r), 5);
    CU_ASSERT_EQUAL(refs_of(m), 6);
    share_registry_destroy(r);
    CU_ASSERT_EQUAL(refs_of(m), 1);
    device_phys_unref(m);
    CU_ASSERT_TRUE(all_free());
}

/* ---- grants hold the memory ---- */

static void test_grant_reference(void)
{
    Device *d = dev(0, 2);
    ShareRegistry *r = share_registry_new();
    uint64_t base = free_of(d);
    uint64_t usage[4];
    PhysMem *m = must_phys(d, 6 * MiB, 2 * MiB);
    CU_ASSERT_EQUAL(base - free_of(d), 6 * MiB);
    memset(m->obj->map + 4 * MiB, 0x3c, 4096);

    /* the exporter passes its reference to the registry for an IPC key, keeps
     * one for a DEFAULT handle */
    uint8_t ipc[SHARE_TOKEN_LEN], def[SHARE_TOKEN_LEN];
    device_phys_ref(m);
    CU_ASSERT_EQUAL_FATAL(share_export(r, SHARE_IPC, 1, 100, 0, m, 4 * MiB, 2 * MiB,
                                       heap_lo(2), false, ipc),
                          ACL_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(export_ref(r, SHARE_DEFAULT, 1, 100, 0, m, 0, 6 * MiB, 0x99, false, def),
                          ACL_SUCCESS);
    CU_ASSERT_EQUAL(refs_of(m), 3);
    ShareGrant a, b;
    CU_ASSERT_EQUAL_FATAL(share_import(r, SHARE_IPC, ipc, 32, 2, 200, 0, &a), ACL_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(share_import(r, SHARE_DEFAULT, def, 8, 3, 300, 0, &b), ACL_SUCCESS);
    CU_ASSERT_EQUAL(refs_of(m), 5);

    /* the exporter withdraws both and drops its own reference: the grants
     * keep the pages (and their bytes) */
    CU_ASSERT_EQUAL(share_withdraw(r, SHARE_IPC, ipc, 32, 1), ACL_SUCCESS);
    CU_ASSERT_EQUAL(share_withdraw(r, SHARE_DEFAULT, def, 8, 1), ACL_SUCCESS);
    CU_ASSERT_EQUAL(share_count(r), 0);
    device_phys_unref(m);
    CU_ASSERT_EQUAL(refs_of(a.mem), 2);
    CU_ASSERT_EQUAL(base - free_of(d), 6 * MiB);
    device_usage(d, &usage[0], &usage[1], &usage[2], &usage[3]);
    CU_ASSERT_EQUAL(usage[2], 6 * MiB);
    CU_ASSERT_EQUAL(a.mem->obj->map[a.off], 0x3c);
    CU_ASSERT_EQUAL(a.mem->obj->map[a.off + 4095], 0x3c);
    /* no new import */
    CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, ipc, 4, 400, 0), ACL_ERROR_RT_PARAM_INVALID);

    device_phys_unref(a.mem);
    CU_ASSERT_EQUAL(base - free_of(d), 6 * MiB);
    CU_ASSERT_EQUAL(b.mem->obj->map[4 * MiB], 0x3c);
    device_phys_unref(b.mem);
    CU_ASSERT_EQUAL(free_of(d), base);
    device_usage(d, &usage[0], &usage[1], &usage[2], &usage[3]);
    CU_ASSERT_EQUAL(usage[2], 0);

    /* an aclrtMalloc segment's memory likewise outlives its free */
    DevAllocResult al;
    CU_ASSERT_EQUAL_FATAL(device_mem_alloc(d, 1, 4 * MiB, ACL_MEM_MALLOC_HUGE_ONLY, false, &al),
                          ACL_SUCCESS);
    uint64_t off = 0;
    PhysMem *sm = device_segment_mem(d, 1, al.va, 4 * MiB, &off);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sm);
    CU_ASSERT_EQUAL(off, 0);
    CU_ASSERT_EQUAL_FATAL(share_export(r, SHARE_IPC, 1, 100, 0, sm, 0, 4 * MiB, al.va, false, ipc),
                          ACL_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(share_import(r, SHARE_IPC, ipc, 32, 2, 200, 0, &a), ACL_SUCCESS);
    al.new_obj->map[77] = 0x5e;
    DevFreeResult fr;
    CU_ASSERT_EQUAL(device_mem_free(d, 1, al.va, &fr), ACL_SUCCESS);
    CU_ASSERT_TRUE(fr.seg_released);
    CU_ASSERT_EQUAL(share_withdraw_range(r, 1, fr.seg_va, fr.seg_size), 1);
    CU_ASSERT_EQUAL(base - free_of(d), al.seg_size);
    CU_ASSERT_EQUAL(a.mem->obj->map[77], 0x5e);
    memobj_unref(al.new_obj);
    device_phys_unref(a.mem);
    CU_ASSERT_EQUAL(free_of(d), base);

    share_registry_destroy(r);
    CU_ASSERT_TRUE(all_free());
}

/* ---- withdrawals ---- */

static void test_withdraw_matching(void)
{
    ShareRegistry *r = share_registry_new();
    PhysMem *m = must_phys(dev(0, 0), 2 * MiB, 2 * MiB);
    const uint64_t lo = heap_lo(0);
    uint8_t tok[16][SHARE_TOKEN_LEN];
    /* owner 1: IPC keys at lo - 1, lo, lo + 1 MiB, lo + 4 MiB - 1, lo + 4 MiB;
     * handles 0x10 (DEFAULT), 0x11 (FABRIC), 0x12 (DEFAULT); an IPC key whose
     * address equals handle 0x10 */
    const uint64_t ipc_at[] = { lo - 1, lo, lo + MiB, lo + 4 * MiB - 1, lo + 4 * MiB, 0x10 };
    unsigned n = 0;
    for (unsigned i = 0; i < G_N_ELEMENTS(ipc_at); i++)
        CU_ASSERT_EQUAL(export_ref(r, SHARE_IPC, 1, 100, 0, m, 0, 2 * MiB, ipc_at[i], false,
                                   tok[n++]),
                        ACL_SUCCESS);
    unsigned h10 = n;
    CU_ASSERT_EQUAL(export_ref(r, SHARE_DEFAULT, 1, 100, 0, m, 0, 2 * MiB, 0x10, false, tok[n++]),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(export_ref(r, SHARE_FABRIC, 1, 100, 0, m, 0, 2 * MiB, 0x11, false, tok[n++]),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(export_ref(r, SHARE_DEFAULT, 1, 100, 0, m, 0, 2 * MiB, 0x12, false, tok[n++]),
                    ACL_SUCCESS);
    /* owner 2: the same addresses and handles */
    unsigned o2 = n;
    CU_ASSERT_EQUAL(export_ref(r, SHARE_IPC, 2, 200, 0, m, 0, 2 * MiB, lo, false, tok[n++]),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(export_ref(r, SHARE_IPC, 2, 200, 0, m, 0, 2 * MiB, lo + MiB, false, tok[n++]),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(export_ref(r, SHARE_DEFAULT, 2, 200, 0, m, 0, 2 * MiB, 0x10, false, tok[n++]),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(export_ref(r, SHARE_FABRIC, 2, 200, 0, m, 0, 2 * MiB, 0x11, false, tok[n++]),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(share_count(r), n);
    CU_ASSERT_EQUAL(refs_of(m), 1 + n);

    /* by handle: the handle's export only, not the IPC key at that address */
    CU_ASSERT_EQUAL(share_withdraw_handle(r, 1, 0x10), 1);
    CU_ASSERT_EQUAL(share_withdraw_handle(r, 1, 0x10), 0);
    CU_ASSERT_EQUAL(share_withdraw_handle(r, 1, 0x13), 0);
    CU_ASSERT_EQUAL(share_withdraw_handle(r, 3, 0x11), 0);
    CU_ASSERT_EQUAL(try_import(r, SHARE_DEFAULT, tok[h10], 5, 500, 0),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, tok[5], 5, 500, 0), ACL_SUCCESS);
    CU_ASSERT_EQUAL(try_import(r, SHARE_DEFAULT, tok[o2 + 2], 5, 500, 0), ACL_SUCCESS);
    CU_ASSERT_EQUAL(share_withdraw_handle(r, 1, 0x11), 1);   /* FABRIC too */
    CU_ASSERT_EQUAL(share_count(r), n - 2);

    /* by range [lo, lo + 4 MiB): IPC keys only, half-open */
    CU_ASSERT_EQUAL(share_withdraw_range(r, 1, lo, 4 * MiB), 3);
    CU_ASSERT_EQUAL(share_withdraw_range(r, 1, lo, 4 * MiB), 0);
    CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, tok[0], 5, 500, 0), ACL_SUCCESS);  /* lo - 1 */
    CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, tok[1], 5, 500, 0), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, tok[3], 5, 500, 0), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, tok[4], 5, 500, 0), ACL_SUCCESS);  /* lo + 4 MiB */
    CU_ASSERT_EQUAL(try_import(r, SHARE_IPC, tok[o2], 5, 500, 0), ACL_SUCCESS); /* owner 2's */
    /* a range over the handle values withdraws no handle */
    CU_ASSERT_EQUAL(share_withdraw_range(r, 1, 0, 0x100), 1);  /* the key at 0x10 */
    CU_ASSERT_EQUAL(try_import(r, SHARE_DEFAULT, tok[h10 + 2], 5, 500, 0), ACL_SUCCESS);
    CU_ASSERT_EQUAL(share_count(r), n - 6);

    /* by owner: everything of owner 1 (lo - 1, lo + 4 MiB, handle 0x12) */
    CU_ASSERT_EQUAL(share_withdraw_owner(r, 1), 3);
    CU_ASSERT_EQUAL(share_withdraw_owner(r, 1), 0);
    CU_ASSERT_EQUAL(share_withdraw_owner(r, 7), 0);
    CU_ASSERT_EQUAL(share_count(r), 4);
    CU_ASSERT_EQUAL(refs_of(m), 1 + 4);
    for (unsigned i = o2; i < n; i++) {
        ShareKind k = i < o2 + 2 ? SHARE_IPC : i == o2 + 2 ? SHARE_DEFAULT : SHARE_FABRIC;
        CU_ASSERT_EQUAL(try_import(r, k, tok[i], 5, 500, 0), ACL_SUCCESS);
    }
    /* one export of another owner: not withdrawn by anyone else */
    CU_ASSERT_EQUAL(share_withdraw(r, SHARE_FABRIC, tok[o2 + 3], 32, 1),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(share_withdraw(r, SHARE_DEFAULT, tok[o2 + 3], 8, 2),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(share_withdraw(r, SHARE_FABRIC, tok[o2 + 3], 32, 2), ACL_SUCCESS);
    CU_ASSERT_EQUAL(share_withdraw_owner(r, 2), 3);
    CU_ASSERT_EQUAL(share_count(r), 0);
    CU_ASSERT_EQUAL(refs_of(m), 1);
    share_registry_destroy(r);
    device_phys_unref(m);
    CU_ASSERT_TRUE(all_free());
}

/* ---- destroy ---- */

static void test_destroy_drops(void)
{
    ShareRegistry *r = share_registry_new();
    uint64_t base = free_of(dev(0, 1));
    uint8_t t[SHARE_TOKEN_LEN];
    for (unsigned i = 0; i < 8; i++) {
        PhysMem *m = must_phys(dev(0, 1), 2 * MiB, i % 2 ? 2 * MiB : 4 * KiB);
        /* the registry's reference is the only one */
        CU_ASSERT_EQUAL(share_export(r, i % 3 == 0 ? SHARE_IPC : i % 3 == 1 ? SHARE_DEFAULT
                                                                             : SHARE_FABRIC,
                                     1 + i % 2, 100, 0, m, 0, 2 * MiB, i, i % 2, t),
                        ACL_SUCCESS);
        if (i % 2) {
            const int32_t p[] = { 1, 2, 3 };
            CU_ASSERT_EQUAL(share_allow(r, i % 3 == 0 ? SHARE_IPC : i % 3 == 1 ? SHARE_DEFAULT
                                                                                : SHARE_FABRIC,
                                        t, i % 3 == 1 ? 8 : 32, 1 + i % 2, NULL, p, 3),
                            ACL_SUCCESS);
        }
    }
    CU_ASSERT_EQUAL(base - free_of(dev(0, 1)), 16 * MiB);
    share_registry_destroy(r);
    CU_ASSERT_EQUAL(free_of(dev(0, 1)), base);
    share_registry_destroy(NULL);
    /* an empty one */
    share_registry_destroy(share_registry_new());
    CU_ASSERT_TRUE(all_free());
}

/* ---- concurrency ---- */

#define RACE_THREADS 8
#define RACE_ITERS   3000
#define RACE_BOARD   64

typedef struct Posted {
    ShareKind kind;
    uint8_t token[SHARE_TOKEN_LEN];
    bool valid;
} Posted;

typedef struct Race {
    ShareRegistry *r;
    PhysMem *mems[RACE_THREADS];
    GMutex board_lock;
    Posted board[RACE_BOARD];
    unsigned imports, refusals, bad;
} Race;

typedef struct RaceThread {
    Race *race;
    unsigned index;
} RaceThread;

static gpointer race_main(gpointer data)
{
    RaceThread *rt = data;
    Race *race = rt->race;
    uint32_t owner = 1 + rt->index;
    pid_t pid = (pid_t)(1000 + rt->index);
    GRand *rng = g_rand_new_with_seed(0x5a5a + rt->index);
    uint8_t mine[32][SHARE_TOKEN_LEN];
    ShareKind mine_kind[32];
    unsigned nmine = 0, imports = 0, refusals = 0, bad = 0;
    uint64_t next_handle = 1;
    for (unsigned it = 0; it < RACE_ITERS; it++) {
        PhysMem *m = race->mems[g_rand_int_range(rng, 0, RACE_THREADS)];
        switch (g_rand_int_range(rng, 0, 8)) {
        case 0:
        case 1: {
            if (nmine == G_N_ELEMENTS(mine))
                break;
            ShareKind k = (ShareKind)g_rand_int_range(rng, SHARE_IPC, SHARE_FABRIC + 1);
            bool check = g_rand_boolean(rng);
            uint64_t id = k == SHARE_IPC ? heap_lo(0) + (uint64_t)g_rand_int_range(rng, 0, 64) * MiB
                                         : next_handle++;
            if (export_ref(race->r, k, owner, pid, 0, m, 0, 2 * MiB, id, check, mine[nmine]) !=
                ACL_SUCCESS) {
                bad++;
                break;
            }
            mine_kind[nmine] = k;
            if (check) {
                const int32_t s[] = { SHARE_ANY_SERVER, 0 };
                const int32_t p[] = { (int32_t)(1000 + g_rand_int_range(rng, 0, RACE_THREADS)),
                                      (int32_t)(1000 + g_rand_int_range(rng, 0, RACE_THREADS)) };
                if (share_allow(race->r, k, mine[nmine], tlen(k), owner, s, p, 2) != ACL_SUCCESS)
                    bad++;
            }
            g_mutex_lock(&race->board_lock);
            Posted *slot = &race->board[g_rand_int_range(rng, 0, RACE_BOARD)];
            slot->kind = k;
            memcpy(slot->token, mine[nmine], SHARE_TOKEN_LEN);
            slot->valid = true;
            g_mutex_unlock(&race->board_lock);
            nmine++;
            break;
        }
        case 2:
        case 3:
        case 4: {
            Posted p;
            g_mutex_lock(&race->board_lock);
            p = race->board[g_rand_int_range(rng, 0, RACE_BOARD)];
            g_mutex_unlock(&race->board_lock);
            if (!p.valid)
                break;
            ShareGrant g;
            int err = share_import(race->r, p.kind, p.token, tlen(p.kind), owner, pid,
                                   g_rand_int_range(rng, 0, 2), &g);
            if (err == ACL_SUCCESS) {
                bool known = false;
                for (unsigned i = 0; i < RACE_THREADS; i++)
                    known |= g.mem == race->mems[i];
                bad += !known || g.size != 2 * MiB;
                /* the memory is there while the grant lives */
                volatile uint8_t x = g.mem->obj->map[g.off];
                (void)x;
                device_phys_unref(g.mem);
                imports++;
            } else if (err == ACL_ERROR_RT_PARAM_INVALID || err == ACL_ERROR_RT_NO_PERMISSION) {
                refusals++;
            } else {
                bad++;
            }
            break;
        }
        case 5:
        case 6: {
            if (!nmine)
                break;
            unsigned i = (unsigned)g_rand_int_range(rng, 0, (gint32)nmine);
            if (share_withdraw(race->r, mine_kind[i], mine[i], tlen(mine_kind[i]), owner) !=
                ACL_SUCCESS)
                bad++;
            nmine--;
            memcpy(mine[i], mine[nmine], SHARE_TOKEN_LEN);
            mine_kind[i] = mine_kind[nmine];
            break;
        }
        default:
            switch (g_rand_int_range(rng, 0, 4)) {
            case 0:
                share_withdraw_owner(race->r, owner);
                nmine = 0;
                break;
            case 1:
                (void)share_count(race->r);
                break;
            default:
                /* another owner's: never withdrawn by us */
                if (share_withdraw_owner(race->r, 100 + owner) != 0)
                    bad++;
                break;
            }
            break;
        }
    }
    share_withdraw_owner(race->r, owner);
    g_rand_free(rng);
    g_mutex_lock(&race->board_lock);
    race->imports += imports;
    race->refusals += refusals;
    race->bad += bad;
    g_mutex_unlock(&race->board_lock);
    return NULL;
}

static void test_concurrency(void)
{
    Race *race = g_new0(Race, 1);
    race->r = share_registry_new();
    g_mutex_init(&race->board_lock);
    for (unsigned i = 0; i < RACE_THREADS; i++)
        race->mems[i] = must_phys(dev(0, i % NDEV), 2 * MiB, 2 * MiB);
    GThread *th[RACE_THREADS];
    RaceThread args[RACE_THREADS];
    for (unsigned i = 0; i < RACE_THREADS; i++) {
        args[i] = (RaceThread){ race, i };
        th[i] = g_thread_new("share-race", race_main, &args[i]);
    }
    for (unsigned i = 0; i < RACE_THREADS; i++)
        g_thread_join(th[i]);
    CU_ASSERT_EQUAL(race->bad, 0);
    CU_ASSERT_TRUE(race->imports > 0);
    CU_ASSERT_TRUE(race->refusals > 0);
    CU_ASSERT_EQUAL(share_count(race->r), 0);
    for (unsigned i = 0; i < RACE_THREADS; i++) {
        CU_ASSERT_EQUAL(refs_of(race->mems[i]), 1);
        device_phys_unref(race->mems[i]);
    }
    share_registry_destroy(race->r);
    g_mutex_clear(&race->board_lock);
    g_free(race);
    CU_ASSERT_TRUE(all_free());
}

/* ---- the address space: IPC imports ---- */

/* An address space of server `s` (its devices by tag, as in the emulator). */
static AddrSpace *new_as(uint32_t owner, int s)
{
    return aspace_new(owner, by_tag, G_N_ELEMENTS(by_tag), (uint32_t)(s * EMU_MAX_DEVICES), NDEV,
                      NULL);
}

/* The host address dev's streams reach at va for `access`, NULL if none. */
static uint8_t *reach(AddrSpace *as, int d, uint64_t va, uint64_t *len, uint32_t access)
{
    MemObj *ref = NULL;
    uint8_t *p = aspace_resolve(as, d, va, len, access, &ref);
    CU_ASSERT_TRUE((p != NULL) == (ref != NULL));
    memobj_unref(ref);
    return p;
}

static bool can(AddrSpace *as, int d, uint64_t va, uint32_t access)
{
    uint64_t len = 1;
    return reach(as, d, va, &len, access) != NULL;
}

static void test_ipc_import(void)
{
    Device *d1 = dev(0, 1);
    uint64_t base = free_of(d1);
    PhysMem *m = must_phys(d1, 6 * MiB, 2 * MiB);
    for (unsigned i = 0; i < 3; i++)
        memset(m->obj->map + i * 2 * MiB, 0xa0 + i, 4096);
    AddrSpace *as = new_as(7, 0);

    /* [2 MiB, 6 MiB) of device 1's memory, imported for a stream of device 0
     * without the peer flag: at a VA of device 1's heap, in device 1's table */
    uint64_t va = 0, page = 0;
    int mem_dev = -1;
    device_phys_ref(m);
    CU_ASSERT_EQUAL_FATAL(aspace_ipc_import(as, m, 2 * MiB, 4 * MiB, 0, false, &va, &mem_dev,
                                            &page),
                          ACL_SUCCESS);
    CU_ASSERT_EQUAL(mem_dev, 1);
    CU_ASSERT_EQUAL(page, 2 * MiB);
    CU_ASSERT_EQUAL(emu_va_device(va), 1);
    CU_ASSERT_TRUE(va >= heap_lo(1) && va + 4 * MiB <= heap_lo(1) + EMU_VA_MALLOC_SPAN);
    CU_ASSERT_EQUAL(va % (2 * MiB), 0);
    CU_ASSERT_EQUAL(refs_of(m), 2);
    CU_ASSERT_FALSE(va_range_is_empty(d1->heap));
    CU_ASSERT_EQUAL(pt_leaves(aspace_table(as, 0)), 0);
    CU_ASSERT_NOT_EQUAL(pt_leaves(aspace_table(as, 1)), 0);
    CU_ASSERT_EQUAL(pt_leaves(aspace_table(as, 2)), 0);
    uint64_t len = 4 * MiB;
    uint8_t *p = reach(as, 1, va, &len, PT_RW);
    CU_ASSERT_PTR_EQUAL(p, m->obj->map + 2 * MiB);
    CU_ASSERT_EQUAL(len, 4 * MiB);
    CU_ASSERT_EQUAL(p[0], 0xa1);
    len = 16;
    p = reach(as, 1, va + 2 * MiB, &len, PT_READ);
    CU_ASSERT_PTR_EQUAL(p, m->obj->map + 4 * MiB);
    CU_ASSERT_EQUAL(p ? p[0] : 0, 0xa2);
    CU_ASSERT_FALSE(can(as, 1, va + 4 * MiB, PT_READ));
    CU_ASSERT_FALSE(can(as, 1, va - 1, PT_READ));
    /* device 0 reaches it with peer access to device 1 only */
    CU_ASSERT_FALSE(can(as, 0, va, PT_READ));
    CU_ASSERT_EQUAL(aspace_set_peer(as, 0, 1, true), ACL_SUCCESS);
    len = 8;
    CU_ASSERT_PTR_EQUAL(reach(as, 0, va, &len, PT_WRITE), m->obj->map + 2 * MiB);
    CU_ASSERT_FALSE(can(as, 2, va, PT_READ));
    CU_ASSERT_EQUAL(aspace_set_peer(as, 0, 1, false), ACL_SUCCESS);
    CU_ASSERT_FALSE(can(as, 0, va, PT_READ));
    /* another client's address space sees nothing there */
    AddrSpace *other = new_as(8, 0);
    CU_ASSERT_FALSE(can(other, 1, va, PT_READ));

    /* with the peer flag: in device 0's table too, reachable without peer access */
    uint64_t va2 = 0;
    device_phys_ref(m);
    CU_ASSERT_EQUAL_FATAL(aspace_ipc_import(as, m, 0, 2 * MiB, 0, true, &va2, &mem_dev, &page),
                          ACL_SUCCESS);
    CU_ASSERT_EQUAL(mem_dev, 1);
    CU_ASSERT_EQUAL(emu_va_device(va2), 1);
    CU_ASSERT_TRUE(va2 + 2 * MiB <= va || va2 >= va + 4 * MiB);
    CU_ASSERT_NOT_EQUAL(pt_leaves(aspace_table(as, 0)), 0);
    len = 2 * MiB;
    p = reach(as, 0, va2, &len, PT_RW);
    CU_ASSERT_PTR_EQUAL(p, m->obj->map);
    CU_ASSERT_EQUAL(p ? p[0] : 0, 0xa0);
    CU_ASSERT_PTR_EQUAL(reach(as, 1, va2, &len, PT_RW), m->obj->map);
    CU_ASSERT_FALSE(can(as, 2, va2, PT_READ));
    CU_ASSERT_EQUAL(refs_of(m), 3);

    /* the heap VA is the device's: an aclrtMalloc of another client avoids it */
    DevAllocResult al;
    CU_ASSERT_EQUAL_FATAL(device_mem_alloc(d1, 8, 2 * MiB, ACL_MEM_MALLOC_HUGE_ONLY, false, &al),
                          ACL_SUCCESS);
    CU_ASSERT_TRUE(al.seg_va + al.seg_size <= va || al.seg_va >= va + 4 * MiB);
    CU_ASSERT_TRUE(al.seg_va + al.seg_size <= va2 || al.seg_va >= va2 + 2 * MiB);
    memobj_unref(al.new_obj);
    CU_ASSERT_EQUAL(device_release_owner(d1, 8, NULL), 1);

    /* close: unmapped everywhere, VA and reference given back */
    CU_ASSERT_EQUAL(aspace_ipc_close(as, va2), ACL_SUCCESS);
    CU_ASSERT_EQUAL(pt_leaves(aspace_table(as, 0)), 0);
    CU_ASSERT_FALSE(can(as, 0, va2, PT_READ));
    CU_ASSERT_FALSE(can(as, 1, va2, PT_READ));
    CU_ASSERT_EQUAL(refs_of(m), 2);
    CU_ASSERT_EQUAL(aspace_ipc_close(as, va2), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_ipc_close(as, va + 2 * MiB), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_ipc_close(other, va), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_ipc_close(as, 0), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(aspace_ipc_close(as, va), ACL_SUCCESS);
    CU_ASSERT_EQUAL(pt_leaves(aspace_table(as, 1)), 0);
    CU_ASSERT_FALSE(can(as, 1, va, PT_READ));
    CU_ASSERT_EQUAL(refs_of(m), 1);
    CU_ASSERT_TRUE(va_range_is_empty(d1->heap));

    /* refused: a range that is not whole pages of the memory, a bad device,
     * memory of another server; each drops the reference passed */
    const uint64_t bad[][2] = { { 0, 0 }, { 0, 3 * MiB }, { 4096, 2 * MiB }, { 4 * MiB, 4 * MiB },
                                { 0, 8 * MiB }, { UINT64_MAX & ~(2 * MiB - 1), 4 * MiB } };
    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
        device_phys_ref(m);
        CU_ASSERT_NOT_EQUAL(aspace_ipc_import(as, m, bad[i][0], bad[i][1], 0, true, &va,
                                              &mem_dev, &page),
                            ACL_SUCCESS);
        CU_ASSERT_EQUAL(refs_of(m), 1);
    }
    device_phys_ref(m);
    CU_ASSERT_EQUAL(aspace_ipc_import(as, m, 0, 2 * MiB, NDEV, false, &va, &mem_dev, &page),
                    ACL_ERROR_RT_PARAM_INVALID);
    device_phys_ref(m);
    CU_ASSERT_EQUAL(aspace_ipc_import(as, m, 0, 2 * MiB, -1, false, &va, &mem_dev, &page),
                    ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(refs_of(m), 1);
    /* Another server's memory (an IPC key whitelisted across servers): a VA
     * of the importer's VMM space, in the importing device's table only. */
    AddrSpace *remote = new_as(9, 1);
    device_phys_ref(m);
    uint64_t rva = 0;
    CU_ASSERT_EQUAL(aspace_ipc_import(remote, m, 0, 2 * MiB, 2, false, &rva, &mem_dev, &page),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(mem_dev, -1);
    CU_ASSERT_EQUAL(refs_of(m), 2);
    CU_ASSERT_TRUE(va_range_is_empty(d1->heap));
    CU_ASSERT_TRUE((rva - EMU_VA_WINDOW_LO) % EMU_VA_DEVICE_SPAN >= EMU_VA_VMM_OFFSET);
    CU_ASSERT_EQUAL(pt_leaves(aspace_table(remote, 2)), 1);
    CU_ASSERT_EQUAL(pt_leaves(aspace_table(remote, 1)), 0);
    CU_ASSERT_EQUAL(aspace_ipc_close(remote, rva), ACL_SUCCESS);
    CU_ASSERT_EQUAL(refs_of(m), 1);
    for (int d = 0; d < NDEV; d++)
        CU_ASSERT_EQUAL(pt_leaves(aspace_table(as, d)), 0);
    aspace_destroy(remote, NULL, NULL);

    /* destroy with live imports: they are closed */
    device_phys_ref(m);
    CU_ASSERT_EQUAL(aspace_ipc_import(as, m, 0, 6 * MiB, 2, true, &va, &mem_dev, &page),
                    ACL_SUCCESS);
    device_phys_ref(m);
    CU_ASSERT_EQUAL(aspace_ipc_import(as, m, 4 * MiB, 2 * MiB, 1, true, &va, &mem_dev, &page),
                    ACL_SUCCESS);
    CU_ASSERT_EQUAL(refs_of(m), 3);
    aspace_destroy(as, NULL, NULL);
    aspace_destroy(other, NULL, NULL);
    CU_ASSERT_EQUAL(refs_of(m), 1);
    CU_ASSERT_TRUE(va_range_is_empty(d1->heap));
    device_phys_unref(m);
    CU_ASSERT_EQUAL(free_of(d1), base);
    CU_ASSERT_TRUE(all_free());
}

/* ---- the address space: imported handles ---- */

static uint64_t must_import(AddrSpace *as, PhysMem *m, uint64_t serial, int d)
{
    uint64_t h = 0;
    device_phys_ref(m);
    CU_ASSERT_EQUAL(aspace_import_handle(as, m, serial, d, &h), ACL_SUCCESS);
    CU_ASSERT_NOT_EQUAL(h, 0);
    return h;
}

/* Reserves size bytes and maps handle there. */
static uint64_t map_at(AddrSpace *as, uint64_t size, uint64_t handle, uint32_t prot)
{
    uint64_t va = 0, rva = 0, page = 0;
    int d = -1;
    MemObj *obj = NULL;
    CU_ASSERT_EQUAL_FATAL(aspace_reserve(as, size, 2 * MiB, 0, &va), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_map(as, va, size, handle, prot, &obj, &rva, &d, &page), ACL_SUCCESS);
    memobj_unref(obj);
    return va;
}

static void unmap_release(AddrSpace *as, uint64_t va)
{
    uint64_t h = 0, size = 0;
    CU_ASSERT_EQUAL(aspace_unmap(as, va, &h, &size), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_release(as, va), ACL_SUCCESS);
}

static void test_import_handle(void)
{
    PhysMem *m1 = must_phys(dev(0, 1), 4 * MiB, 2 * MiB);  /* device 1 of server 0 */
    PhysMem *m0 = must_phys(dev(0, 0), 2 * MiB, 2 * MiB);  /* device 0 of server 0 */
    PhysMem *mr = must_phys(dev(1, 1), 2 * MiB, 2 * MiB);  /* device 1 of server 1 */
    memset(m1->obj->map, 0x11, 4096);
    memset(m0->obj->map, 0x22, 4096);
    memset(mr->obj->map, 0x33, 4096);
    AddrSpace *as = new_as(7, 0);

    /* one import per export serial while it lives */
    uint64_t h1 = must_import(as, m1, 41, 0);
    uint64_t h = 0;
    device_phys_ref(m1);
    CU_ASSERT_EQUAL(aspace_import_handle(as, m1, 41, 0, &h), ACL_ERROR_RT_PARAM_INVALID);
    device_phys_ref(m1);
    CU_ASSERT_EQUAL(aspace_import_handle(as, m1, 41, 2, &h), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_EQUAL(refs_of(m1), 2);
    /* a bad device: refused, reference dropped */
    device_phys_ref(m1);
    CU_ASSERT_EQUAL(aspace_import_handle(as, m1, 42, NDEV, &h), ACL_ERROR_RT_INVALID_DEVICEID);
    CU_ASSERT_EQUAL(refs_of(m1), 2);
    /* another export of the same memory is another serial; another process
     * imports the same serial */
    uint64_t h1b = must_import(as, m1, 43, 2);
    CU_ASSERT_NOT_EQUAL(h1b, h1);
    AddrSpace *other = new_as(8, 0);
    uint64_t ho = must_import(other, m1, 41, 0);
    CU_ASSERT_EQUAL(refs_of(m1), 4);
    /* an imported handle is not exported again */
    PhysMem *got = NULL;
    CU_ASSERT_EQUAL(aspace_handle_mem(as, h1, &got), ACL_ERROR_RT_PARAM_INVALID);
    CU_ASSERT_PTR_NULL(got);
    uint64_t own = 0;
    CU_ASSERT_EQUAL(aspace_phys_alloc(as, 0, 2 * MiB, 2 * MiB, 0, &own), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_handle_mem(as, own, &got), ACL_SUCCESS);
    CU_ASSERT_PTR_NOT_NULL(got);
    CU_ASSERT_EQUAL(got ? refs_of(got) : 0, 2);
    device_phys_unref(got);
    CU_ASSERT_EQUAL(aspace_phys_free(as, own, NULL), ACL_SUCCESS);

    /* device 1's memory mapped for device 0: PT_PEER, reached from device 0
     * once it has peer access to device 1 */
    uint64_t va = map_at(as, 4 * MiB, h1, PT_RW);
    PtHit hit;
    CU_ASSERT_TRUE(pt_translate(aspace_table(as, 0), va, &hit));
    CU_ASSERT_TRUE(hit.prot & PT_PEER);
    CU_ASSERT_EQUAL(hit.dev, dev(0, 1)->tag);
    CU_ASSERT_EQUAL(pt_leaves(aspace_table(as, 1)), 0);
    CU_ASSERT_FALSE(can(as, 0, va, PT_READ));
    CU_ASSERT_FALSE(can(as, 1, va, PT_READ));
    CU_ASSERT_EQUAL(aspace_set_peer(as, 0, 2, true), ACL_SUCCESS);  /* the wrong peer */
    CU_ASSERT_FALSE(can(as, 0, va, PT_READ));
    CU_ASSERT_EQUAL(aspace_set_peer(as, 1, 0, true), ACL_SUCCESS);  /* the wrong direction */
    CU_ASSERT_FALSE(can(as, 0, va, PT_READ));
    CU_ASSERT_EQUAL(aspace_set_peer(as, 0, 1, true), ACL_SUCCESS);
    uint64_t len = 4 * MiB;
    uint8_t *p = reach(as, 0, va, &len, PT_RW);
    CU_ASSERT_PTR_EQUAL(p, m1->obj->map);
    CU_ASSERT_EQUAL(len, 4 * MiB);
    CU_ASSERT_EQUAL(p ? p[0] : 0, 0x11);
    CU_ASSERT_EQUAL(aspace_set_peer(as, 0, 1, false), ACL_SUCCESS);
    CU_ASSERT_FALSE(can(as, 0, va, PT_READ));
    /* peer access is the address space's: another client's is its own */
    CU_ASSERT_EQUAL(aspace_set_peer(other, 0, 1, true), ACL_SUCCESS);
    CU_ASSERT_FALSE(can(as, 0, va, PT_READ));
    CU_ASSERT_EQUAL(aspace_set_peer(as, 0, 1, true), ACL_SUCCESS);
    CU_ASSERT_TRUE(can(as, 0, va, PT_WRITE));

    /* device 0's own memory imported for device 0: no PT_PEER */
    uint64_t h0 = must_import(as, m0, 50, 0);
    uint64_t va0 = map_at(as, 2 * MiB, h0, PT_RW);
    CU_ASSERT_TRUE(pt_translate(aspace_table(as, 0), va0, &hit));
    CU_ASSERT_FALSE(hit.prot & PT_PEER);
    len = 16;
    p = reach(as, 0, va0, &len, PT_RW);
    CU_ASSERT_PTR_EQUAL(p, m0->obj->map);
    CU_ASSERT_EQUAL(aspace_set_peer(as, 0, 1, false), ACL_SUCCESS);
    CU_ASSERT_TRUE(can(as, 0, va0, PT_RW));
    CU_ASSERT_FALSE(can(as, 0, va, PT_READ));

    /* memory of another server (FABRIC): no peer access to give, no PT_PEER */
    uint64_t hr = must_import(as, mr, 60, 2);
    uint64_t var = map_at(as, 2 * MiB, hr, PT_RW);
    CU_ASSERT_TRUE(pt_translate(aspace_table(as, 2), var, &hit));
    CU_ASSERT_FALSE(hit.prot & PT_PEER);
    CU_ASSERT_EQUAL(hit.dev, dev(1, 1)->tag);
    len = 16;
    p = reach(as, 2, var, &len, PT_RW);
    CU_ASSERT_PTR_EQUAL(p, mr->obj->map);
    CU_ASSERT_EQUAL(p ? p[0] : 0, 0x33);

    /* unmapped and freed, the serial can be imported again */
    unmap_release(as, va);
    CU_ASSERT_EQUAL(aspace_phys_free(as, h1, NULL), ACL_SUCCESS);
    CU_ASSERT_EQUAL(refs_of(m1), 3);
    uint64_t h1c = must_import(as, m1, 41, 1);
    /* now for device 1, its own memory: no PT_PEER */
    uint64_t va1 = map_at(as, 4 * MiB, h1c, PT_RW);
    CU_ASSERT_TRUE(pt_translate(aspace_table(as, 1), va1, &hit));
    CU_ASSERT_FALSE(hit.prot & PT_PEER);
    CU_ASSERT_TRUE(can(as, 1, va1, PT_RW));
    CU_ASSERT_FALSE(can(as, 0, va1, PT_READ));

    /* teardown with everything live gives every reference back */
    unsigned handles = 0;
    aspace_destroy(as, &handles, NULL);
    CU_ASSERT_EQUAL(handles, 4);    /* h1b, h0, hr, h1c */
    CU_ASSERT_EQUAL(aspace_phys_free(other, ho, NULL), ACL_SUCCESS);
    aspace_destroy(other, NULL, NULL);
    CU_ASSERT_EQUAL(refs_of(m1), 1);
    CU_ASSERT_EQUAL(refs_of(m0), 1);
    CU_ASSERT_EQUAL(refs_of(mr), 1);
    device_phys_unref(m1);
    device_phys_unref(m0);
    device_phys_unref(mr);
    CU_ASSERT_TRUE(all_free());
}

/*
 * Changing the rights of an imported mapping of another device's memory, or
 * giving a third device access to it (aclrtMemSetAccess), keeps it behind
 * peer access: the entries keep PT_PEER.
 */
static void test_import_handle_set_access(void)
{
    PhysMem *m1 = must_phys(dev(0, 1), 2 * MiB, 2 * MiB);
    AddrSpace *as = new_as(7, 0);
    uint64_t h = must_import(as, m1, 77, 0);
    /* mapped with no access, then read-write for device 0, as the runtime's
     * aclrtMapMem + aclrtMemSetAccess do */
    uint64_t va = map_at(as, 2 * MiB, h, 0);
    CU_ASSERT_FALSE(can(as, 0, va, PT_READ));
    CU_ASSERT_EQUAL(aspace_set_access(as, va, 2 * MiB, 0, PT_RW), ACL_SUCCESS);
    PtHit hit;
    CU_ASSERT_TRUE(pt_translate(aspace_table(as, 0), va, &hit));
    CU_ASSERT_TRUE(hit.prot & PT_PEER);
    CU_ASSERT_FALSE(can(as, 0, va, PT_READ));
    /* device 2 given access: still needs peer access to device 1 */
    CU_ASSERT_EQUAL(aspace_set_access(as, va, 2 * MiB, 2, PT_RW), ACL_SUCCESS);
    CU_ASSERT_TRUE(pt_translate(aspace_table(as, 2), va, &hit));
    CU_ASSERT_TRUE(hit.prot & PT_PEER);
    CU_ASSERT_FALSE(can(as, 2, va, PT_READ));
    /* device 1, whose memory it is: no peer access needed */
    CU_ASSERT_EQUAL(aspace_set_access(as, va, 2 * MiB, 1, PT_READ), ACL_SUCCESS);
    CU_ASSERT_TRUE(pt_translate(aspace_table(as, 1), va, &hit));
    CU_ASSERT_FALSE(hit.prot & PT_PEER);
    CU_ASSERT_TRUE(can(as, 1, va, PT_READ));
    CU_ASSERT_FALSE(can(as, 1, va, PT_WRITE));
    CU_ASSERT_EQUAL(aspace_set_peer(as, 0, 1, true), ACL_SUCCESS);
    CU_ASSERT_EQUAL(aspace_set_peer(as, 2, 1, true), ACL_SUCCESS);
    CU_ASSERT_TRUE(can(as, 0, va, PT_RW));
    CU_ASSERT_TRUE(can(as, 2, va, PT_RW));
    /* and back to read-only for device 0: still PT_PEER */
    CU_ASSERT_EQUAL(aspace_set_access(as, va, 2 * MiB, 0, PT_READ), ACL_SUCCESS);
    CU_ASSERT_TRUE(can(as, 0, va, PT_READ));
    CU_ASSERT_FALSE(can(as, 0, va, PT_WRITE));
    CU_ASSERT_EQUAL(aspace_set_peer(as, 0, 1, false), ACL_SUCCESS);
    CU_ASSERT_FALSE(can(as, 0, va, PT_READ));
    aspace_destroy(as, NULL, NULL);
    CU_ASSERT_EQUAL(refs_of(m1), 1);
    device_phys_unref(m1);
    CU_ASSERT_TRUE(all_free());
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return CU_get_error();
    CU_pSuite s = CU_add_suite("share", suite_init, suite_clean);
    if (!s || !CU_add_test(s, "tokens: 32 random bytes, DEFAULT by its first 8", test_tokens) ||
        !CU_add_test(s, "import rules: owner, server, kind", test_import_rules) ||
        !CU_add_test(s, "pid validation and whitelists", test_pid_validation) ||
        !CU_add_test(s, "one DEFAULT / FABRIC export per handle", test_one_export_per_handle) ||
        !CU_add_test(s, "grants hold a reference to the memory", test_grant_reference) ||
        !CU_add_test(s, "withdraw: handle, range, owner", test_withdraw_matching) ||
        !CU_add_test(s, "destroy drops every reference", test_destroy_drops) ||
        !CU_add_test(s, "exports, imports, withdrawals from threads", test_concurrency) ||
        !CU_add_test(s, "aspace: IPC import and close", test_ipc_import) ||
        !CU_add_test(s, "aspace: imported handles, PT_PEER", test_import_handle) ||
        !CU_add_test(s, "aspace: set_access keeps imported mappings behind peer access",
                     test_import_handle_set_access)) {
        CU_cleanup_registry();
        return 1;
    }
    return cu_run_all();
}
