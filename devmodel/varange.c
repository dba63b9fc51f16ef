/*
 * varange.c - first-fit range allocator over a GTree of free ranges
 * (key: start, value: end), coalesced on release.
 */
#include "varange.h"

#include <glib.h>

#include "npuemu/u64tree.h"

struct VaRange {
    GTree *free;        /* start -> end of each free range */
    uint64_t lo, hi;
    uint64_t free_bytes;
};



VaRange *va_range_new(uint64_t lo, uint64_t hi)
{
    VaRange *r = g_new0(VaRange, 1);
    r->free = emu_u64_tree_new(NULL);
    r->lo = lo;
    r->hi = hi;
    r->free_bytes = hi - lo;
    g_tree_insert(r->free, EMU_KEY(lo), EMU_KEY(hi));
    return r;
}

void va_range_destroy(VaRange *r)
{
    if (!r)
        return;
    g_tree_destroy(r->free);
    g_free(r);
}

typedef struct FitSearch {
    uint64_t size, align;
    uint64_t start, end, at;
    bool found;
} FitSearch;

static gboolean find_fit(gpointer key, gpointer value, gpointer data)
{
    FitSearch *s = data;
    uint64_t start = EMU_KEY_U64(key), end = EMU_KEY_U64(value);
    uint64_t at = (start + s->align - 1) & ~(s->align - 1);
    if (at < start || at > end || end - at < s->size)
        return FALSE;
    s->start = start;
    s->end = end;
    s->at = at;
    s->found = true;
    return TRUE;
}

bool va_range_alloc(VaRange *r, uint64_t size, uint64_t align, uint64_t *out)
{
    if (size == 0 || size > r->free_bytes || align == 0 || (align & (align - 1)))
        return false;
    FitSearch s = { .size = size, .align = align };
    g_tree_foreach(r->free, find_fit, &s);
    if (!s.found)
        return false;
    g_tree_remove(r->free, EMU_KEY(s.start));
    if (s.at > s.start)
        g_tree_insert(r->free, EMU_KEY(s.start), EMU_KEY(s.at));
    if (s.at + size < s.end)
        g_tree_insert(r->free, EMU_KEY(s.at + size), EMU_KEY(s.end));
    r->free_bytes -= size;
    *out = s.at;
    return true;
}

bool va_range_claim(VaRange *r, uint64_t addr, uint64_t size)
{
    uint64_t end = addr + size;
    if (size == 0 || end < addr)
        return false;
    GTreeNode *n = emu_tree_floor(r->free, addr);
    if (!n)
        return false;
    uint64_t start = EMU_KEY_U64(g_tree_node_key(n)), stop = EMU_KEY_U64(g_tree_node_value(n));
    if (end > stop)
        return false;
    g_tree_remove(r->free, EMU_KEY(start));
    if (addr > start)
        g_tree_insert(r->free, EMU_KEY(start), EMU_KEY(addr));
    if (end < stop)
        g_tree_insert(r->free, EMU_KEY(end), EMU_KEY(stop));
    r->free_bytes -= size;
    return true;
}

void va_range_release(VaRange *r, uint64_t addr, uint64_t size)
{
    uint64_t start = addr, end = addr + size;
    GTreeNode *next = g_tree_lower_bound(r->free, EMU_KEY(addr));
    GTreeNode *prev = next ? g_tree_node_previous(next) : g_tree_node_last(r->free);

    if (next && EMU_KEY_U64(g_tree_node_key(next)) == end) {
        end = EMU_KEY_U64(g_tree_node_value(next));
        g_tree_remove(r->free, EMU_KEY(addr + size));
    }
    if (prev && EMU_KEY_U64(g_tree_node_value(prev)) == start) {
        start = EMU_KEY_U64(g_tree_node_key(prev));
        g_tree_remove(r->free, EMU_KEY(start));
    }
    g_tree_insert(r->free, EMU_KEY(start), EMU_KEY(end));
    r->free_bytes += size;
}

uint64_t va_range_free_bytes(const VaRange *r)
{
    return r->free_bytes;
}

bool va_range_is_empty(const VaRange *r)
{
    return r->free_bytes == r->hi - r->lo;
}
