/*
 * reduce.h - the element-wise reductions of the SDMA engine
 * (aclrtReduceAsync, EMU_TASK_REDUCE).
 *
 * Concepts: a reduce combines a source into a destination element by element,
 * dst = dst op src, for the operations and data types A2 / A3 list.  This
 * module only does the arithmetic on host buffers; the engine checks both
 * footprints, translates them and moves the bytes.  Pure functions,
 * thread-safe.
 */
#ifndef DEVMODEL_REDUCE_H
#define DEVMODEL_REDUCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* aclrtReduceKind values. */
#define REDUCE_SUM   10u
#define REDUCE_MAX   11u
#define REDUCE_MIN   12u
#define REDUCE_EQUAL 13u    /* dst = src */

/* Bytes per element of an aclDataType the engine reduces, or 0. */
size_t reduce_elem_size(uint32_t dtype);
bool reduce_kind_valid(uint64_t kind);
/* dst[i] = dst[i] kind src[i] for n elements of dtype (both checked). */
void reduce_apply(uint64_t kind, uint32_t dtype, uint8_t *dst, const uint8_t *src, size_t n);

#endif
