// The project's own exp and log, scalar form. The vector forms in vk_simd.h
// do exactly the same operations lane by lane, so the bits are the same.
// Only +, -, *, /, fma, integer shifts and compares: no libm.
#ifndef VK_MATH_H
#define VK_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define VK_EXP_HI 89.0f      // exp(89) overflows: the scaling gives +inf
#define VK_EXP_LO (-87.33f)  // below this exp is 0: exp(-87.3365) is the smallest normal
#define VK_LOG2E 1.44269502f // float(log2(e))
#define VK_ROUND_MAGIC 12582912.0f // 1.5 * 2^23: adding it rounds to integer
#define VK_EXP_LN2_HI 0.693147182f      // float(ln 2)
#define VK_EXP_LN2_LO (-1.90465430e-09f) // ln 2 - VK_EXP_LN2_HI
// Taylor coefficients 1/k!: |r| <= 0.35 leaves a remainder below 0.1 ulp.
#define VK_EXP_C7 1.98412698e-4f
#define VK_EXP_C6 1.38888889e-3f
#define VK_EXP_C5 8.33333333e-3f
#define VK_EXP_C4 4.16666667e-2f
#define VK_EXP_C3 1.66666667e-1f

#define VK_LOG_SQRTH_BITS 0x3f3504f3 // bits of float(sqrt(1/2))
#define VK_LOG_LN2_HI 0.693145752f     // ln 2 to 16 bits: k * hi is exact
#define VK_LOG_LN2_LO 1.42860682e-06f  // ln 2 - VK_LOG_LN2_HI
#define VK_LOG_NAN_BITS 0x7fc00000u    // log of a negative number

static inline float vk_bits_to_float(uint32_t b) {
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static inline uint32_t vk_float_to_bits(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

// exp(x) = 2^n * p(r), n = round(x / ln 2), r = x - n ln 2 (two fma steps);
// p is the degree-7 Taylor polynomial by Horner with fma; 2^n is applied as
// two exact powers of two. x < VK_EXP_LO gives +0 (profile 4): the result is
// never subnormal, so no operation here or after it (softmax sums, attention's
// weighted values) meets a subnormal operand.
static inline float vk_exp_scalar(float x) {
    if (x != x) return x + x;
    if (x < VK_EXP_LO) return 0.0f;
    float xc = x;
    if (xc > VK_EXP_HI) xc = VK_EXP_HI;
    if (xc < VK_EXP_LO) xc = VK_EXP_LO;
    float t = xc * VK_LOG2E + VK_ROUND_MAGIC;
    float n = t - VK_ROUND_MAGIC;
    float r = fmaf(-n, VK_EXP_LN2_HI, xc);
    r = fmaf(-n, VK_EXP_LN2_LO, r);
    float p = fmaf(VK_EXP_C7, r, VK_EXP_C6);
    p = fmaf(p, r, VK_EXP_C5);
    p = fmaf(p, r, VK_EXP_C4);
    p = fmaf(p, r, VK_EXP_C3);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    int32_t ni = (int32_t)n;
    int32_t n1 = ni >> 1;
    int32_t n2 = ni - n1;
    float s1 = vk_bits_to_float((uint32_t)(n1 + 127) << 23);
    float s2 = vk_bits_to_float((uint32_t)(n2 + 127) << 23);
    return (p * s1) * s2;
}

// Attention weight of a score d = s_j - max (profile 4): exp(d), or 0 for
// d < VK_ATTN_CUTOFF. A weight of at least e^-44 (about 2^-63.5) times a value
// of magnitude 2^-62 or more (every f16 value; any activation a model makes)
// stays a normal number; what is dropped is below 2^-63 of the largest weight.
#define VK_ATTN_CUTOFF (-44.0f)

// GELU, tanh form: gelu(x) = x / (1 + exp(VK_GELU_K * (x + VK_GELU_C * x^3))),
// VK_GELU_K = -2 sqrt(2 / pi) (rounded to float), x^3 = (x * x) * x.
#define VK_GELU_C 0.044715f
#define VK_GELU_K (-1.5957691216057308f)
static inline float vk_attention_weight(float d) {
    return d < VK_ATTN_CUTOFF ? 0.0f : vk_exp_scalar(d);
}

// log(x) = k ln 2 + log1p(f), x = 2^k (1 + f), 1 + f in [sqrt(1/2), sqrt(2));
// log1p(f) = f - (h - s (h + R(s^2))), s = f / (2 + f), h = f^2 / 2,
// R(z) = z (2/3 + z (2/5 + z (2/7 + z 2/9))) (the series of 2 atanh(s)).
static inline float vk_log_scalar(float x) {
    if (x != x) return x + x;
    if (x < 0.0f) return vk_bits_to_float(VK_LOG_NAN_BITS);
    if (x == 0.0f) return -INFINITY;
    if (x == INFINITY) return x;
    float xs = x;
    int32_t k = 0;
    if (xs < 0x1p-126f) { // subnormal: scale into the normal range
        xs = xs * 0x1p25f;
        k = -25;
    }
    uint32_t ix = vk_float_to_bits(xs) - (uint32_t)VK_LOG_SQRTH_BITS;
    k = k + ((int32_t)ix >> 23);
    float m = vk_bits_to_float((ix & 0x007fffffu) + (uint32_t)VK_LOG_SQRTH_BITS);
    float f = m - 1.0f;
    float s = f / (2.0f + f);
    float z = s * s;
    float rz = fmaf(0.222222224f, z, 0.285714298f);
    rz = fmaf(rz, z, 0.400000006f);
    rz = fmaf(rz, z, 0.666666687f);
    rz = rz * z;
    float h = (0.5f * f) * f;
    float kf = (float)k;
    float lp = f - (h - s * (h + rz));
    return kf * VK_LOG_LN2_HI + (lp + kf * VK_LOG_LN2_LO);
}

// RMSNorm scale from the folded sum of squares: 1 / sqrt(ss / D + eps).
static inline float vk_rms_scale(float ss, int64_t dim, float eps) {
    return 1.0f / sqrtf(ss / (float)dim + eps);
}

#endif
