/* Element-wise reductions of the stream engine (EMU_TASK_REDUCE). */
#ifndef NPUEMU_DEVMODEL_REDUCE_H
#define NPUEMU_DEVMODEL_REDUCE_H

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
