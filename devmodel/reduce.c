/*
 * Element-wise reduction of the SDMA engine (aclrtReduceAsync): dst = dst op
 * src over int8 / int16 / int32 / fp16 / fp32 / bf16.  Half-precision values
 * are widened to float, combined and rounded back to nearest-even, which is
 * what a float unit does; integer sums wrap.  MAX / MIN propagate a NaN.
 */
#include "reduce.h"

#include <math.h>
#include <string.h>

#include "acl/acl_base.h"

size_t reduce_elem_size(uint32_t dtype)
{
    switch (dtype) {
    case ACL_INT8:
        return 1;
    case ACL_INT16:
    case ACL_FLOAT16:
    case ACL_BF16:
        return 2;
    case ACL_INT32:
    case ACL_FLOAT:
        return 4;
    default:
        return 0;
    }
}

bool reduce_kind_valid(uint64_t kind)
{
    return kind >= REDUCE_SUM && kind <= REDUCE_EQUAL;
}

static float f32_of_bits(uint32_t b)
{
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static uint32_t bits_of_f32(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static float from_half(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    int exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f)
        return f32_of_bits(sign | 0x7f800000u | man << 13);
    if (exp == 0) {     /* zero or subnormal: man * 2^-24 */
        float v = ldexpf((float)man, -24);
        return sign ? -v : v;
    }
    return f32_of_bits(sign | (uint32_t)(exp - 15 + 127) << 23 | man << 13);
}

static uint16_t to_half(float f)
{
    uint32_t b = bits_of_f32(f);
    uint16_t sign = (uint16_t)((b >> 16) & 0x8000);
    uint32_t abs = b & 0x7fffffffu;
    if (abs > 0x7f800000u)
        return sign | 0x7e00;                           /* NaN */
    if (abs >= 0x477ff000u)                             /* rounds to >= 65520: inf */
        return sign | 0x7c00;
    if (abs < 0x38800000u) {                            /* below 2^-14: subnormal */
        float v = ldexpf(f32_of_bits(abs), 24);         /* in units of 2^-24 */
        return sign | (uint16_t)lrintf(v);              /* nearest-even by default */
    }
    uint32_t man = abs & 0x7fffff;
    uint32_t exp = (abs >> 23) - 127 + 15;
    uint32_t h = exp << 10 | man >> 13;
    uint32_t rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
        h++;                                            /* may carry into the exponent */
    return sign | (uint16_t)h;
}

static float from_bf16(uint16_t v)
{
    return f32_of_bits((uint32_t)v << 16);
}

static uint16_t to_bf16(float f)
{
    uint32_t b = bits_of_f32(f);
    if ((b & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)(b >> 16) | 0x40;              /* keep it a NaN */
    b += 0x7fff + ((b >> 16) & 1);
    return (uint16_t)(b >> 16);
}

static float combine_f(uint64_t kind, float a, float b)
{
    if (kind == REDUCE_SUM)
        return a + b;
    if (isnan(a) || isnan(b))
        return NAN;
    if (kind == REDUCE_MAX)
        return a > b ? a : b;
    return a < b ? a : b;
}

static int64_t combine_i(uint64_t kind, int64_t a, int64_t b)
{
    if (kind == REDUCE_SUM)
        return a + b;
    if (kind == REDUCE_MAX)
        return a > b ? a : b;
    return a < b ? a : b;
}

/* One signed integer of es bytes (the host is little-endian, as the device). */
static void combine_int(uint64_t kind, uint8_t *d, const uint8_t *s, size_t es)
{
    int64_t a, b;
    if (es == 1) {
        a = (int8_t)*d;
        b = (int8_t)*s;
    } else if (es == 2) {
        int16_t x, y;
        memcpy(&x, d, 2);
        memcpy(&y, s, 2);
        a = x;
        b = y;
    } else {
        int32_t x, y;
        memcpy(&x, d, 4);
        memcpy(&y, s, 4);
        a = x;
        b = y;
    }
    uint64_t r = (uint64_t)combine_i(kind, a, b);     /* wraps to es bytes below */
    memcpy(d, &r, es);
}

void reduce_apply(uint64_t kind, uint32_t dtype, uint8_t *dst, const uint8_t *src, size_t n)
{
    size_t es = reduce_elem_size(dtype);
    if (kind == REDUCE_EQUAL) {
        memmove(dst, src, n * es);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t *d = dst + i * es;
        const uint8_t *s = src + i * es;
        switch (dtype) {
        case ACL_INT8:
        case ACL_INT16:
        case ACL_INT32:
            combine_int(kind, d, s, es);
            break;
        case ACL_FLOAT: {
            float a, b;
            memcpy(&a, d, 4);
            memcpy(&b, s, 4);
            float r = combine_f(kind, a, b);
            memcpy(d, &r, 4);
            break;
        }
        default: {     /* ACL_FLOAT16, ACL_BF16 */
            uint16_t a, b;
            memcpy(&a, d, 2);
            memcpy(&b, s, 2);
            bool half = dtype == ACL_FLOAT16;
            float r = combine_f(kind, half ? from_half(a) : from_bf16(a),
                                half ? from_half(b) : from_bf16(b));
            uint16_t out = half ? to_half(r) : to_bf16(r);
            memcpy(d, &out, 2);
            break;
        }
        }
    }
}
