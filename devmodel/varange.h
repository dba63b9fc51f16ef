/*
 * varange.h - a first-fit allocator of address ranges.
 *
 * Concepts: a VaRange owns the free sub-ranges of one [lo, hi) interval, kept
 * coalesced in an ordered tree.  It hands out device virtual addresses (one per
 * device heap) and slices of shared small-allocation blocks.  It stores no data
 * of its own in the ranges, so it works for address spaces that are not mapped.
 * Not thread-safe: the owner (the device) holds its lock around every call.
 */
#ifndef DEVMODEL_VARANGE_H
#define DEVMODEL_VARANGE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct VaRange VaRange;

/* Creates an allocator whose whole [lo, hi) is free. */
VaRange *va_range_new(uint64_t lo, uint64_t hi);
void va_range_destroy(VaRange *r);
/* Takes the lowest free range of `size` bytes aligned to `align` (a power of two). */
bool va_range_alloc(VaRange *r, uint64_t size, uint64_t align, uint64_t *out);
/* Takes exactly [addr, addr + size) if all of it is free; false otherwise. */
bool va_range_claim(VaRange *r, uint64_t addr, uint64_t size);
/* Gives back [addr, addr + size), which must have come from va_range_alloc. */
void va_range_release(VaRange *r, uint64_t addr, uint64_t size);
/* Bytes currently free. */
uint64_t va_range_free_bytes(const VaRange *r);
/* True when nothing is allocated. */
bool va_range_is_empty(const VaRange *r);

#endif
