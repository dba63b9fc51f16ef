/*
 * u64tree.h - GTrees keyed by 64-bit addresses, as the emulator and the runtime
 * use them for address ranges (segments, allocations, host buffers, free VA).
 *
 * Concepts: keys are addresses stored directly in the key pointer; a range
 * lookup finds the entry with the greatest start at or below an address, and
 * the caller checks that the address lies inside it.  Thread-safety is the
 * tree owner's business.
 */
#ifndef NPUEMU_U64TREE_H
#define NPUEMU_U64TREE_H

#include <glib.h>
#include <stdint.h>

#define EMU_KEY(v) ((gpointer)(uintptr_t)(v))
#define EMU_KEY_U64(p) ((uint64_t)(uintptr_t)(p))

/* GCompareDataFunc ordering EMU_KEY keys. */
static inline gint emu_u64_cmp(gconstpointer a, gconstpointer b, gpointer unused)
{
    (void)unused;
    uint64_t x = EMU_KEY_U64(a), y = EMU_KEY_U64(b);
    return x < y ? -1 : x > y;
}

static inline GTree *emu_u64_tree_new(GDestroyNotify value_destroy)
{
    return g_tree_new_full(emu_u64_cmp, NULL, NULL, value_destroy);
}

/* The node with the greatest key <= addr, or NULL. */
static inline GTreeNode *emu_tree_floor(GTree *t, uint64_t addr)
{
    GTreeNode *n = g_tree_upper_bound(t, EMU_KEY(addr));
    return n ? g_tree_node_previous(n) : g_tree_node_last(t);
}

#endif
