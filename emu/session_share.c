/*
 * session_share.c - a session's peer access, IPC keys, shareable handles and
 * virtual memory.
 */
#include "session_int.h"

#include <string.h>

#include "acl/acl_base.h"

int handle_peer_access(Session *s, const void *req, uint32_t len)
{
    REQ(EmuReqPeer, q);
    return aspace_set_peer(s->as, q->device, q->peer, q->enable != 0);
}

/* ---- sharing: IPC keys and shareable handles (devmodel/share.h) ---- */

static bool is_a3(Session *s)
{
    return strcmp(s->srv->profile->name, "a3") == 0;
}

int handle_ipc_export(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqIpcExport, q);
    int dev = emu_va_device(q->va);
    Device *d = session_device(s, dev);
    uint64_t off = 0;
    /* Page-aligned memory of one segment of ours only: a sub-page slice of a
     * shared block would expose its neighbours. */
    PhysMem *mem = d ? device_segment_mem(d, s->id, q->va, q->size, &off) : NULL;
    if (!mem)
        return ACL_ERROR_RT_PARAM_INVALID;
    uint64_t page = mem->pages.page_size;
    uint64_t size = (q->size + page - 1) / page * page;
    if (size > mem->size - off) {
        device_phys_unref(mem);
        return ACL_ERROR_RT_PARAM_INVALID;
    }
    RESP(EmuRespToken, p);
    p->server = s->server;
    return share_export(s->srv->shares, SHARE_IPC, s->id, s->pid, s->server, mem, off, size,
                        q->va, q->pid_check != 0, p->token);
}

int handle_share_export(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqShareExport, q);
    if (q->kind != EMU_SHARE_DEFAULT && q->kind != EMU_SHARE_FABRIC)
        return ACL_ERROR_RT_PARAM_INVALID;
    if (q->kind == EMU_SHARE_FABRIC && !is_a3(s))
        return ACL_ERROR_RT_FEATURE_NOT_SUPPORT;
    PhysMem *mem = NULL;
    int err = aspace_handle_mem(s->as, q->handle, &mem);
    if (err != ACL_SUCCESS)
        return err;
    RESP(EmuRespToken, p);
    p->server = s->server;
    return share_export(s->srv->shares, (ShareKind)q->kind, s->id, s->pid, s->server, mem, 0,
                        mem->size, q->handle, q->pid_check != 0, p->token);
}

static bool token_ok(const EmuReqShareToken *t)
{
    return t->kind >= EMU_SHARE_IPC && t->kind <= EMU_SHARE_FABRIC &&
           t->len <= EMU_TOKEN_LEN;
}

/* A whitelist names an IPC key, a shareable handle or a notify key. */
static bool allow_token_ok(const EmuReqShareToken *t)
{
    return token_ok(t) || (t->kind == EMU_SHARE_NOTIFY && t->len <= EMU_TOKEN_LEN);
}

int handle_share_allow(Session *s, const void *req, uint32_t len)
{
    REQ(EmuReqShareAllow, q);
    if (!allow_token_ok(&q->name) || q->n > EMU_ALLOW_MAX)
        return ACL_ERROR_RT_PARAM_INVALID;
    for (uint32_t i = 0; i < q->n; i++)
        if (q->servers[i] != EMU_ANY_SERVER &&
            (q->servers[i] < 0 || q->servers[i] >= s->srv->nservers))
            return ACL_ERROR_RT_PARAM_INVALID;
    return share_allow(s->srv->shares, (ShareKind)q->name.kind, q->name.token, q->name.len,
                       s->id, q->servers, q->pids, q->n);
}

int handle_share_attr(Session *s, const void *req, uint32_t len)
{
    REQ(EmuReqShareToken, q);
    if (q->kind != EMU_SHARE_IPC || q->value > 1)
        return ACL_ERROR_RT_PARAM_INVALID;
    return share_set_attr(s->srv->shares, q->token, q->len, s->id, q->value);
}

int handle_share_withdraw(Session *s, const void *req, uint32_t len)
{
    REQ(EmuReqShareToken, q);
    if (!token_ok(q))
        return ACL_ERROR_RT_PARAM_INVALID;
    return share_withdraw(s->srv->shares, (ShareKind)q->kind, q->token, q->len, s->id);
}

int handle_ipc_import(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqIpcImport, q);
    if (!session_device(s, q->device))
        return ACL_ERROR_RT_INVALID_DEVICEID;
    ShareGrant g;
    int err = share_import(s->srv->shares, SHARE_IPC, q->token, EMU_TOKEN_LEN, s->id, s->pid,
                           s->server, &g);
    if (err != ACL_SUCCESS) {
        if (err == ACL_ERROR_RT_NO_PERMISSION)
            emu_log("pid %d refused an IPC key it is not whitelisted for", (int)s->pid);
        return err;
    }
    RESP(EmuRespIpcImport, p);
    MemObj *obj = memobj_ref(g.mem->obj);
    int dev = -1;
    uint64_t page = 0;
    err = aspace_ipc_import(s->as, g.mem, g.off, g.size, q->device, q->peer != 0, &p->va, &dev,
                            &page);
    if (err != ACL_SUCCESS) {
        memobj_unref(obj);
        return err;
    }
    p->size = g.size;
    p->obj_off = g.off;
    p->device = dev;
    p->page_size = (uint32_t)page;
    r->fd_obj = obj;
    return ACL_SUCCESS;
}

int handle_ipc_close(Session *s, const void *req, uint32_t len)
{
    REQ(EmuReqVa, q);
    return aspace_ipc_close(s->as, q->va);
}

int handle_share_import(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqShareImport, q);
    if (!token_ok(&q->name) || q->name.kind == EMU_SHARE_IPC)
        return ACL_ERROR_RT_PARAM_INVALID;
    if (q->name.kind == EMU_SHARE_FABRIC && !is_a3(s))
        return ACL_ERROR_RT_FEATURE_NOT_SUPPORT;
    if (!session_device(s, q->device))
        return ACL_ERROR_RT_INVALID_DEVICEID;
    ShareGrant g;
    int err = share_import(s->srv->shares, (ShareKind)q->name.kind, q->name.token, q->name.len,
                           s->id, s->pid, s->server, &g);
    if (err != ACL_SUCCESS) {
        if (err == ACL_ERROR_RT_NO_PERMISSION)
            emu_log("pid %d refused a shareable handle it is not whitelisted for", (int)s->pid);
        return err;
    }
    RESP(EmuRespPhys, p);
    uint64_t size = g.mem->size, page = g.mem->pages.page_size;
    err = aspace_import_handle(s->as, g.mem, g.serial, q->device, &p->handle);
    p->size = size;
    p->device = q->device;
    p->page_size = (uint32_t)page;
    return err;
}

/* ---- virtual memory: thin wrappers of the address space (aspace.h) ---- */

int handle_phys_alloc(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqPhysAlloc, q);
    RESP(EmuRespPhys, p);
    uint64_t handle = 0;
    int err = aspace_phys_alloc(s->as, q->device, q->size, q->page_size, q->mem_attr, &handle);
    *p = (EmuRespPhys){ .handle = handle, .size = q->size, .device = q->device,
                        .page_size = (uint32_t)q->page_size };
    return err;
}

int handle_phys_free(Session *s, const void *req, uint32_t len)
{
    REQ(EmuReqPhys, q);
    bool released = false;
    int err = aspace_phys_free(s->as, q->handle, &released);
    /* The exporter's last reference ends its shareable handle (imports live on). */
    if (released)
        share_withdraw_handle(s->srv->shares, s->id, q->handle);
    return err;
}

int handle_vmm_reserve(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqReserve, q);
    RESP(EmuRespReserve, p);
    return aspace_reserve(s->as, q->size, q->align, q->expect, &p->va);
}

int handle_vmm_release(Session *s, const void *req, uint32_t len)
{
    REQ(EmuReqVa, q);
    return aspace_release(s->as, q->va);
}

int handle_vmm_map(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqMap, q);
    RESP(EmuRespMap, p);
    int dev = -1;
    uint64_t page = 0;
    int err = aspace_map(s->as, q->va, q->size, q->handle, q->prot, &r->fd_obj, &p->reserve_va,
                         &dev, &page);
    p->device = dev;
    p->page_size = (uint32_t)page;
    return err;
}

int handle_vmm_unmap(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqVa, q);
    RESP(EmuRespPhys, p);
    return aspace_unmap(s->as, q->va, &p->handle, &p->size);
}

int handle_vmm_access(Session *s, const void *req, uint32_t len)
{
    REQ(EmuReqAccess, q);
    return aspace_set_access(s->as, q->va, q->size, q->device, q->prot);
}

int handle_vmm_retain(Session *s, const void *req, uint32_t len, Reply *r)
{
    REQ(EmuReqVa, q);
    RESP(EmuRespPhys, p);
    int dev = -1;
    uint64_t page = 0;
    int err = aspace_retain(s->as, q->va, &p->handle, &p->size, &dev, &page);
    p->device = dev;
    p->page_size = (uint32_t)page;
    return err;
}
