/*
 * pagetable.c - four-level radix page tables.
 *
 * An entry is one 64-bit word.  Zero: nothing.  A table entry is the address of
 * the next-level node with bit 0 set.  A leaf has bits 0 and 1 set, the rights
 * and flags (PT_FLAGS) in bits 2-5, the physical page number in bits 12-51 and
 * the device tag in bits 52-62.
 */
#include "pagetable.h"

#include <glib.h>

#define E_VALID     1ull
#define E_LEAF      2ull
#define E_PROT_SHIFT 2
#define E_PHYS_MASK 0x000ffffffffff000ull
#define E_DEV_SHIFT 52

#define LEVELS      4
#define FANOUT      512

typedef struct PtNode {
    uint64_t e[FANOUT];
    uint32_t used;
} PtNode;

struct PageTable {
    GRWLock lock;
    PtNode *root;
    uint64_t leaves;
    uint64_t tables;
};

static unsigned shift_of(int level)
{
    return 12 + 9 * (unsigned)level;
}

static unsigned index_of(uint64_t va, int level)
{
    return (unsigned)(va >> shift_of(level)) & (FANOUT - 1);
}

static int level_of_page(uint64_t page_size)
{
    switch (page_size) {
    case 4ull << 10: return 0;
    case 2ull << 20: return 1;
    case 1ull << 30: return 2;
    default: return -1;
    }
}

static PtNode *node_of(uint64_t e)
{
    return (PtNode *)(uintptr_t)(e & ~0xfull);
}

static bool is_leaf(uint64_t e)
{
    return (e & (E_VALID | E_LEAF)) == (E_VALID | E_LEAF);
}

PageTable *pt_new(void)
{
    PageTable *t = g_new0(PageTable, 1);
    g_rw_lock_init(&t->lock);
    return t;
}

static void node_free(PtNode *n, int level)
{
    if (!n)
        return;
    for (unsigned i = 0; level > 0 && i < FANOUT; i++)
        if ((n->e[i] & E_VALID) && !(n->e[i] & E_LEAF))
            node_free(node_of(n->e[i]), level - 1);
    g_free(n);
}

void pt_destroy(PageTable *t)
{
    if (!t)
        return;
    node_free(t->root, LEVELS - 1);
    g_rw_lock_clear(&t->lock);
    g_free(t);
}

/* The walk down to `va`: nodes[l] is the node of level l on the path (NULL
 * below where the path ends).  Returns the level whose entry ends the walk (a
 * leaf, an empty entry, or `stop` reached), with its entry in *entry. */
static int walk(PageTable *t, uint64_t va, int stop, PtNode *nodes[LEVELS], uint64_t *entry)
{
    for (int l = 0; l < LEVELS; l++)
        nodes[l] = NULL;
    PtNode *n = t->root;
    *entry = 0;
    if (!n)
        return LEVELS - 1;
    for (int l = LEVELS - 1;; l--) {
        nodes[l] = n;
        uint64_t e = n->e[index_of(va, l)];
        *entry = e;
        if (l == stop || !(e & E_VALID) || (e & E_LEAF))
            return l;
        n = node_of(e);
    }
}

/* True when the page of `level` at va (aligned) can be mapped: nothing on the
 * way down is a leaf and nothing is mapped at or below it. */
static bool page_free(PageTable *t, uint64_t va, int level)
{
    PtNode *nodes[LEVELS];
    uint64_t e;
    walk(t, va, level, nodes, &e);
    return !(e & E_VALID);
}

/* The node of `level` on the path to va, creating tables on the way. */
static PtNode *node_create(PageTable *t, uint64_t va, int level)
{
    if (!t->root) {
        t->root = g_new0(PtNode, 1);
        t->tables++;
    }
    PtNode *n = t->root;
    for (int l = LEVELS - 1; l > level; l--) {
        uint64_t *e = &n->e[index_of(va, l)];
        if (!(*e & E_VALID)) {
            PtNode *child = g_new0(PtNode, 1);
            t->tables++;
            *e = (uint64_t)(uintptr_t)child | E_VALID;
            n->used++;
        }
        n = node_of(*e);
    }
    return n;
}

static uint64_t make_leaf(uint64_t phys, uint32_t dev, uint32_t prot)
{
    return E_VALID | E_LEAF | ((uint64_t)(prot & PT_FLAGS) << E_PROT_SHIFT) |
           (phys & E_PHYS_MASK) | ((uint64_t)dev << E_DEV_SHIFT);
}

bool pt_map(PageTable *t, uint64_t va, uint64_t len, uint64_t page_size, uint32_t dev,
            uint64_t phys, uint32_t prot)
{
    int level = level_of_page(page_size);
    uint64_t end = va + len;
    if (level < 0 || len == 0 || va % page_size || len % page_size || phys % page_size ||
        end < va || end > (1ull << PT_VA_BITS) || phys + len < phys ||
        phys + len > (E_PHYS_MASK | 0xfff) + 1 || dev > PT_MAX_DEV || (prot & ~PT_FLAGS))
        return false;
    g_rw_lock_writer_lock(&t->lock);
    for (uint64_t a = va; a < end; a += page_size) {
        if (!page_free(t, a, level)) {
            g_rw_lock_writer_unlock(&t->lock);
            return false;
        }
    }
    for (uint64_t a = va; a < end; a += page_size) {
        PtNode *n = node_create(t, a, level);
        n->e[index_of(a, level)] = make_leaf(phys + (a - va), dev, prot);
        n->used++;
        t->leaves++;
    }
    g_rw_lock_writer_unlock(&t->lock);
    return true;
}

/* Clears the entry of `level` at va and frees the tables it leaves empty. */
static void clear_entry(PageTable *t, uint64_t va, int level, PtNode *nodes[LEVELS])
{
    for (int l = level; l < LEVELS; l++) {
        PtNode *n = nodes[l];
        n->e[index_of(va, l)] = 0;
        if (--n->used > 0)
            return;
        g_free(n);
        t->tables--;
        if (l == LEVELS - 1)
            t->root = NULL;
    }
}

uint64_t pt_unmap(PageTable *t, uint64_t va, uint64_t len)
{
    uint64_t end = va + len < va ? UINT64_MAX : va + len;
    uint64_t removed = 0;
    g_rw_lock_writer_lock(&t->lock);
    uint64_t a = va;
    while (a < end && a < (1ull << PT_VA_BITS)) {
        PtNode *nodes[LEVELS];
        uint64_t e;
        int l = walk(t, a, 0, nodes, &e);
        uint64_t span = 1ull << shift_of(l);
        uint64_t start = a & ~(span - 1);
        if (is_leaf(e) && start == a) {
            clear_entry(t, a, l, nodes);
            t->leaves--;
            removed++;
        }
        if (start + span < start)
            break;
        a = start + span;
    }
    g_rw_lock_writer_unlock(&t->lock);
    return removed;
}

bool pt_protect(PageTable *t, uint64_t va, uint64_t len, uint32_t prot)
{
    uint64_t end = va + len;
    if ((prot & ~PT_FLAGS) || len == 0 || end < va || end > (1ull << PT_VA_BITS))
        return false;
    g_rw_lock_writer_lock(&t->lock);
    bool ok = true;
    for (int pass = 0; pass < 2 && ok; pass++) {
        for (uint64_t a = va; a < end && ok;) {
            PtNode *nodes[LEVELS];
            uint64_t e;
            int l = walk(t, a, 0, nodes, &e);
            uint64_t span = 1ull << shift_of(l);
            ok = is_leaf(e) && (a & (span - 1)) == 0 && a + span <= end;
            if (ok && pass == 1) {
                uint64_t *slot = &nodes[l]->e[index_of(a, l)];
                *slot = (e & ~((uint64_t)PT_FLAGS << E_PROT_SHIFT)) |
                        ((uint64_t)prot << E_PROT_SHIFT);
            }
            a += span;
        }
    }
    g_rw_lock_writer_unlock(&t->lock);
    return ok;
}

void pt_read_lock(PageTable *t)
{
    g_rw_lock_reader_lock(&t->lock);
}

void pt_read_unlock(PageTable *t)
{
    g_rw_lock_reader_unlock(&t->lock);
}

bool pt_lookup(PageTable *t, uint64_t va, PtHit *out)
{
    if (va >= (1ull << PT_VA_BITS))
        return false;
    PtNode *n = t->root;
    for (int l = LEVELS - 1; n; l--) {
        uint64_t e = n->e[index_of(va, l)];
        if (!(e & E_VALID))
            return false;
        if (e & E_LEAF) {
            uint64_t size = 1ull << shift_of(l);
            uint64_t off = va & (size - 1);
            *out = (PtHit){
                .phys = (e & E_PHYS_MASK) + off,
                .page_size = size,
                .page_left = size - off,
                .dev = (uint32_t)(e >> E_DEV_SHIFT) & PT_MAX_DEV,
                .prot = (uint32_t)(e >> E_PROT_SHIFT) & PT_FLAGS,
            };
            return true;
        }
        if (l == 0)
            return false;
        n = node_of(e);
    }
    return false;
}

bool pt_translate(PageTable *t, uint64_t va, PtHit *out)
{
    pt_read_lock(t);
    bool ok = pt_lookup(t, va, out);
    pt_read_unlock(t);
    return ok;
}

uint64_t pt_leaves(PageTable *t)
{
    g_rw_lock_reader_lock(&t->lock);
    uint64_t n = t->leaves;
    g_rw_lock_reader_unlock(&t->lock);
    return n;
}

uint64_t pt_tables(PageTable *t)
{
    g_rw_lock_reader_lock(&t->lock);
    uint64_t n = t->tables;
    g_rw_lock_reader_unlock(&t->lock);
    return n;
}
