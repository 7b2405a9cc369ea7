// A 16-lane float vector for the optimised paths: one zmm register with
// AVX-512, two ymm registers with AVX2. The kernels in vk_simd_kernels.h are
// written once against this and compiled twice (vk_avx512.c, vk_avx2.c).
// Every operation is one IEEE operation per lane, so a lane computes exactly
// what the scalar code computes for that element.
#ifndef VK_SIMD_H
#define VK_SIMD_H

#include <immintrin.h>
#include <stdint.h>

#define VKI static inline __attribute__((always_inline))

#if defined(VK_SIMD_AVX512)

typedef __m512 vf;    // 16 floats
typedef __m512i vi;   // 16 int32
typedef __mmask16 vm; // 16 lane flags

VKI vf v_zero(void) { return _mm512_setzero_ps(); }
VKI vf v_set1(float a) { return _mm512_set1_ps(a); }
VKI vf v_load(const float *p) { return _mm512_loadu_ps(p); }
VKI void v_store(float *p, vf a) { _mm512_storeu_ps(p, a); }
VKI vm v_first(int64_t n) { // lanes 0..<n (n in 0...16)
    return (vm)(n >= 16 ? 0xffff : ((1u << n) - 1));
}
VKI vf v_loadn(const float *p, int64_t n) { return _mm512_maskz_loadu_ps(v_first(n), p); }
VKI void v_storen(float *p, vf a, int64_t n) { _mm512_mask_storeu_ps(p, v_first(n), a); }
VKI vf v_add(vf a, vf b) { return _mm512_add_ps(a, b); }
VKI vf v_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
VKI vf v_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
VKI vf v_div(vf a, vf b) { return _mm512_div_ps(a, b); }
VKI vf v_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
VKI vf v_neg(vf a) {
    return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32((int)0x80000000u)));
}
// (a > b) ? a : b and (a < b) ? a : b, lane by lane (the instructions return b on NaN).
VKI vf v_max(vf a, vf b) { return _mm512_max_ps(a, b); }
VKI vf v_min(vf a, vf b) { return _mm512_min_ps(a, b); }
VKI vm v_gt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
VKI vm v_lt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
VKI vm v_eq(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
VKI vm v_isnan(vf a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
VKI vf v_select(vm m, vf if_false, vf if_true) { return _mm512_mask_blend_ps(m, if_false, if_true); }
VKI vf v_zero_unless(vm m, vf a) { return _mm512_maskz_mov_ps(m, a); }
VKI vm v_and_mask(vm a, vm b) { return (vm)(a & b); }
VKI int v_mask_bits(vm m) { return (int)m; }

VKI vi vi_set1(int32_t a) { return _mm512_set1_epi32(a); }
VKI vi vi_add(vi a, vi b) { return _mm512_add_epi32(a, b); }
VKI vi vi_sub(vi a, vi b) { return _mm512_sub_epi32(a, b); }
VKI vi vi_and(vi a, vi b) { return _mm512_and_si512(a, b); }
VKI vi vi_or(vi a, vi b) { return _mm512_or_si512(a, b); }
VKI vi vi_rotr(vi a, const int s) { return _mm512_rorv_epi32(a, _mm512_set1_epi32(s)); }
VKI vi vi_srai(vi a, int s) { return _mm512_srai_epi32(a, (unsigned)s); }
VKI vi vi_srli(vi a, int s) { return _mm512_srli_epi32(a, (unsigned)s); }
VKI vi vi_slli(vi a, int s) { return _mm512_slli_epi32(a, (unsigned)s); }
VKI vi vi_select(vm m, vi if_false, vi if_true) { return _mm512_mask_blend_epi32(m, if_false, if_true); }
VKI vf v_from_int(vi a) { return _mm512_cvtepi32_ps(a); }
VKI vi vi_trunc(vf a) { return _mm512_cvttps_epi32(a); }
VKI vf v_as_float(vi a) { return _mm512_castsi512_ps(a); }
VKI vi vi_as_int(vf a) { return _mm512_castps_si512(a); }
VKI vi vi_iota(void) { return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
VKI vi vi_mul(vi a, vi b) { return _mm512_mullo_epi32(a, b); }

// 16 halves / bfloat16 / int8 / nibbles -> floats (exact).
VKI vf v_load_f16(const void *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
VKI vf v_load_bf16(const void *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
VKI vi vi_load_i8(const void *p) { return _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)); }
VKI vi vi_load(const void *p) { return _mm512_loadu_si512(p); }

// In-place 16x16 transpose: r[i] lane j -> r[j] lane i (moves bits only).
VKI void v_transpose16(vf r[16]) {
    vf t[16], u[16];
    for (int i = 0; i < 8; i++) { // pairs of rows, per 128-bit lane
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { // quads of rows: u[4i + c] lane L = rows 4i..4i+3 at column 4L + c
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        u[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int c = 0; c < 4; c++) { // 4x4 transpose of 128-bit lanes
        vf v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44), v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xee);
        vf v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44), v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xee);
        r[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(v0, v2, 0xdd);
        r[8 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xdd);
    }
}

// The lanes' sum in the contract's tree: l[i] + l[i + 8], then 4, 2, 1 (the order of
// vk_block_sum16 and of the scalar folds).
VKI float v_fold16(vf v) {
    const __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    const __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    return _mm_cvtss_f32(_mm_add_ss(c, _mm_shuffle_ps(c, c, 1)));
}
// v_fold16 of 16 vectors at once, out[i] = v_fold16(v[i]): every level of the tree adds
// the same two lanes as v_fold16, for two vectors per instruction at the first level,
// four at the second, eight at the third and sixteen at the last (15 adds and 31
// shuffles in place of 16 x 4 adds and 16 x 4 extracts).
VKI void v_fold16_many(const vf v[16], float out[16]) {
    vf s[8], t[4], u[2];
    for (int i = 0; i < 8; i++) // lanes 0-7: v[2i]'s l[j] + l[j + 8]; lanes 8-15: v[2i + 1]'s
        s[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
    for (int i = 0; i < 4; i++) // 128-bit chunk c: v[4i + c]'s s[j] + s[j + 4], j < 4
        t[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s[2 * i], s[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(s[2 * i], s[2 * i + 1], 0xDD));
    for (int i = 0; i < 2; i++) // chunk c: t[j] + t[j + 2], j < 2, of v[8i + c], then of v[8i + 4 + c]
        u[i] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    // chunk c: u[0] + u[1] of v[c], v[4 + c], v[8 + c], v[12 + c]; lane 4c + j holds v[4j + c]'s.
    const vf r = _mm512_add_ps(_mm512_shuffle_ps(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)),
                               _mm512_shuffle_ps(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    _mm512_storeu_ps(out, _mm512_permutexvar_ps(order, r));
}

#elif defined(VK_SIMD_AVX2)

typedef struct { __m256 lo, hi; } vf;
typedef struct { __m256i lo, hi; } vi;
typedef struct { __m256 lo, hi; } vm; // all-ones / all-zeros lanes

VKI vf vf2(__m256 lo, __m256 hi) { vf r = {lo, hi}; return r; }
VKI vi vi2(__m256i lo, __m256i hi) { vi r = {lo, hi}; return r; }
VKI vf v_zero(void) { return vf2(_mm256_setzero_ps(), _mm256_setzero_ps()); }
VKI vf v_set1(float a) { __m256 b = _mm256_set1_ps(a); return vf2(b, b); }
VKI vf v_load(const float *p) { return vf2(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)); }
VKI void v_store(float *p, vf a) { _mm256_storeu_ps(p, a.lo); _mm256_storeu_ps(p + 8, a.hi); }
// The lanes' sum in the contract's tree: l[i] + l[i + 8], then 4, 2, 1.
VKI float v_fold16(vf v) {
    const __m256 a = _mm256_add_ps(v.lo, v.hi);
    const __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    return _mm_cvtss_f32(_mm_add_ss(c, _mm_shuffle_ps(c, c, 1)));
}
VKI void v_fold16_many(const vf v[16], float out[16]) {
    for (int i = 0; i < 16; i++) out[i] = v_fold16(v[i]);
}
VKI vi vi_iota(void) {
    return vi2(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15));
}
VKI vm v_first(int64_t n) {
    vi io = vi_iota();
    __m256i nn = _mm256_set1_epi32((int)n);
    vm m = {_mm256_castsi256_ps(_mm256_cmpgt_epi32(nn, io.lo)), _mm256_castsi256_ps(_mm256_cmpgt_epi32(nn, io.hi))};
    return m;
}
VKI vf v_loadn(const float *p, int64_t n) {
    vm m = v_first(n);
    return vf2(_mm256_maskload_ps(p, _mm256_castps_si256(m.lo)), _mm256_maskload_ps(p + 8, _mm256_castps_si256(m.hi)));
}
VKI void v_storen(float *p, vf a, int64_t n) {
    vm m = v_first(n);
    _mm256_maskstore_ps(p, _mm256_castps_si256(m.lo), a.lo);
    _mm256_maskstore_ps(p + 8, _mm256_castps_si256(m.hi), a.hi);
}
VKI vf v_add(vf a, vf b) { return vf2(_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)); }
VKI vf v_sub(vf a, vf b) { return vf2(_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)); }
VKI vf v_mul(vf a, vf b) { return vf2(_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)); }
VKI vf v_div(vf a, vf b) { return vf2(_mm256_div_ps(a.lo, b.lo), _mm256_div_ps(a.hi, b.hi)); }
VKI vf v_fma(vf a, vf b, vf c) { return vf2(_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)); }
VKI vf v_neg(vf a) {
    __m256 s = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    return vf2(_mm256_xor_ps(a.lo, s), _mm256_xor_ps(a.hi, s));
}
VKI vf v_max(vf a, vf b) { return vf2(_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)); }
VKI vf v_min(vf a, vf b) { return vf2(_mm256_min_ps(a.lo, b.lo), _mm256_min_ps(a.hi, b.hi)); }
VKI vm vm2(__m256 lo, __m256 hi) { vm r = {lo, hi}; return r; }
VKI vm v_gt(vf a, vf b) { return vm2(_mm256_cmp_ps(a.lo, b.lo, _CMP_GT_OQ), _mm256_cmp_ps(a.hi, b.hi, _CMP_GT_OQ)); }
VKI vm v_lt(vf a, vf b) { return vm2(_mm256_cmp_ps(a.lo, b.lo, _CMP_LT_OQ), _mm256_cmp_ps(a.hi, b.hi, _CMP_LT_OQ)); }
VKI vm v_eq(vf a, vf b) { return vm2(_mm256_cmp_ps(a.lo, b.lo, _CMP_EQ_OQ), _mm256_cmp_ps(a.hi, b.hi, _CMP_EQ_OQ)); }
VKI vm v_isnan(vf a) { return vm2(_mm256_cmp_ps(a.lo, a.lo, _CMP_UNORD_Q), _mm256_cmp_ps(a.hi, a.hi, _CMP_UNORD_Q)); }
VKI vf v_select(vm m, vf if_false, vf if_true) {
    return vf2(_mm256_blendv_ps(if_false.lo, if_true.lo, m.lo), _mm256_blendv_ps(if_false.hi, if_true.hi, m.hi));
}
VKI vf v_zero_unless(vm m, vf a) { return vf2(_mm256_and_ps(m.lo, a.lo), _mm256_and_ps(m.hi, a.hi)); }
VKI vm v_and_mask(vm a, vm b) { return vm2(_mm256_and_ps(a.lo, b.lo), _mm256_and_ps(a.hi, b.hi)); }
VKI int v_mask_bits(vm m) { return _mm256_movemask_ps(m.lo) | (_mm256_movemask_ps(m.hi) << 8); }

VKI vi vi_set1(int32_t a) { __m256i b = _mm256_set1_epi32(a); return vi2(b, b); }
VKI vi vi_add(vi a, vi b) { return vi2(_mm256_add_epi32(a.lo, b.lo), _mm256_add_epi32(a.hi, b.hi)); }
VKI vi vi_sub(vi a, vi b) { return vi2(_mm256_sub_epi32(a.lo, b.lo), _mm256_sub_epi32(a.hi, b.hi)); }
VKI vi vi_and(vi a, vi b) { return vi2(_mm256_and_si256(a.lo, b.lo), _mm256_and_si256(a.hi, b.hi)); }
VKI vi vi_or(vi a, vi b) { return vi2(_mm256_or_si256(a.lo, b.lo), _mm256_or_si256(a.hi, b.hi)); }
VKI vi vi_srai(vi a, int s) { return vi2(_mm256_srai_epi32(a.lo, s), _mm256_srai_epi32(a.hi, s)); }
VKI vi vi_srli(vi a, int s) { return vi2(_mm256_srli_epi32(a.lo, s), _mm256_srli_epi32(a.hi, s)); }
VKI vi vi_slli(vi a, int s) { return vi2(_mm256_slli_epi32(a.lo, s), _mm256_slli_epi32(a.hi, s)); }
VKI vi vi_rotr(vi a, const int s) { return vi_or(vi_srli(a, s), vi_slli(a, 32 - s)); }
VKI vi vi_select(vm m, vi if_false, vi if_true) {
    return vi2(_mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(if_false.lo), _mm256_castsi256_ps(if_true.lo), m.lo)),
               _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(if_false.hi), _mm256_castsi256_ps(if_true.hi), m.hi)));
}
VKI vf v_from_int(vi a) { return vf2(_mm256_cvtepi32_ps(a.lo), _mm256_cvtepi32_ps(a.hi)); }
VKI vi vi_trunc(vf a) { return vi2(_mm256_cvttps_epi32(a.lo), _mm256_cvttps_epi32(a.hi)); }
VKI vf v_as_float(vi a) { return vf2(_mm256_castsi256_ps(a.lo), _mm256_castsi256_ps(a.hi)); }
VKI vi vi_as_int(vf a) { return vi2(_mm256_castps_si256(a.lo), _mm256_castps_si256(a.hi)); }
VKI vi vi_mul(vi a, vi b) { return vi2(_mm256_mullo_epi32(a.lo, b.lo), _mm256_mullo_epi32(a.hi, b.hi)); }

VKI vf v_load_f16(const void *p) {
    return vf2(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)),
               _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p + 1)));
}
VKI vf v_load_bf16(const void *p) {
    __m256i lo = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    __m256i hi = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p + 1));
    return vf2(_mm256_castsi256_ps(_mm256_slli_epi32(lo, 16)), _mm256_castsi256_ps(_mm256_slli_epi32(hi, 16)));
}
VKI vi vi_load_i8(const void *p) {
    __m128i b = _mm_loadu_si128((const __m128i *)p);
    return vi2(_mm256_cvtepi8_epi32(b), _mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)));
}
VKI vi vi_load(const void *p) {
    return vi2(_mm256_loadu_si256((const __m256i *)p), _mm256_loadu_si256((const __m256i *)p + 1));
}
// 8x8 transpose of a[0..7] into o[0..7].
VKI void vk_transpose8(const __m256 a[8], __m256 o[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(a[2 * i], a[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(a[2 * i], a[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) { // u[4i + c] lane L = rows 4i..4i+3 at column 4L + c
        __m256d p = _mm256_castps_pd(t[4 * i]), q = _mm256_castps_pd(t[4 * i + 1]);
        __m256d r = _mm256_castps_pd(t[4 * i + 2]), s = _mm256_castps_pd(t[4 * i + 3]);
        u[4 * i + 0] = _mm256_castpd_ps(_mm256_unpacklo_pd(p, r));
        u[4 * i + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(p, r));
        u[4 * i + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(q, s));
        u[4 * i + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(q, s));
    }
    for (int c = 0; c < 4; c++) {
        o[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
        o[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
}

// In-place 16x16 transpose as four 8x8 blocks: r[i] lane j -> r[j] lane i.
VKI void v_transpose16(vf r[16]) {
    __m256 a[8], o[8];
    for (int i = 0; i < 8; i++) a[i] = r[i].lo; // keys 0-7, columns 0-7
    vk_transpose8(a, o);
    __m256 c00[8];
    for (int i = 0; i < 8; i++) c00[i] = o[i];
    for (int i = 0; i < 8; i++) a[i] = r[8 + i].lo; // keys 8-15, columns 0-7
    vk_transpose8(a, o);
    __m256 c10[8];
    for (int i = 0; i < 8; i++) c10[i] = o[i];
    for (int i = 0; i < 8; i++) a[i] = r[i].hi; // keys 0-7, columns 8-15
    vk_transpose8(a, o);
    __m256 c01[8];
    for (int i = 0; i < 8; i++) c01[i] = o[i];
    for (int i = 0; i < 8; i++) a[i] = r[8 + i].hi; // keys 8-15, columns 8-15
    vk_transpose8(a, o);
    for (int i = 0; i < 8; i++) {
        r[i].lo = c00[i];
        r[i].hi = c10[i];
        r[8 + i].lo = c01[i];
        r[8 + i].hi = o[i];
    }
}

#else
#error "define VK_SIMD_AVX512 or VK_SIMD_AVX2"
#endif

// ---- exp / log, lane by lane the same operations as vk_math.h -------------

VKI vf v_exp(vf x) {
    vm nan = v_isnan(x);
    vf xc = v_max(v_min(x, v_set1(VK_EXP_HI)), v_set1(VK_EXP_LO));
    vf t = v_add(v_mul(xc, v_set1(VK_LOG2E)), v_set1(VK_ROUND_MAGIC));
    vf n = v_sub(t, v_set1(VK_ROUND_MAGIC));
    vf nn = v_neg(n);
    vf r = v_fma(nn, v_set1(VK_EXP_LN2_HI), xc);
    r = v_fma(nn, v_set1(VK_EXP_LN2_LO), r);
    vf p = v_fma(v_set1(VK_EXP_C7), r, v_set1(VK_EXP_C6));
    p = v_fma(p, r, v_set1(VK_EXP_C5));
    p = v_fma(p, r, v_set1(VK_EXP_C4));
    p = v_fma(p, r, v_set1(VK_EXP_C3));
    p = v_fma(p, r, v_set1(0.5f));
    p = v_fma(p, r, v_set1(1.0f));
    p = v_fma(p, r, v_set1(1.0f));
    vi ni = vi_trunc(n);
    vi n1 = vi_srai(ni, 1);
    vi n2 = vi_sub(ni, n1);
    vf s1 = v_as_float(vi_slli(vi_add(n1, vi_set1(127)), 23));
    vf s2 = v_as_float(vi_slli(vi_add(n2, vi_set1(127)), 23));
    vf res = v_select(v_lt(x, v_set1(VK_EXP_LO)), v_mul(v_mul(p, s1), s2), v_zero());
    return v_select(nan, res, v_add(x, x));
}

VKI vf v_log(vf x) {
    vm sub = v_lt(x, v_set1(0x1p-126f));
    vf xs = v_select(sub, x, v_mul(x, v_set1(0x1p25f)));
    vi k0 = vi_select(sub, vi_set1(0), vi_set1(-25));
    vi ix = vi_sub(vi_as_int(xs), vi_set1(VK_LOG_SQRTH_BITS));
    vi k = vi_add(k0, vi_srai(ix, 23));
    vf m = v_as_float(vi_add(vi_and(ix, vi_set1(0x007fffff)), vi_set1(VK_LOG_SQRTH_BITS)));
    vf f = v_sub(m, v_set1(1.0f));
    vf s = v_div(f, v_add(v_set1(2.0f), f));
    vf z = v_mul(s, s);
    vf rz = v_fma(v_set1(0.222222224f), z, v_set1(0.285714298f));
    rz = v_fma(rz, z, v_set1(0.400000006f));
    rz = v_fma(rz, z, v_set1(0.666666687f));
    rz = v_mul(rz, z);
    vf h = v_mul(v_mul(v_set1(0.5f), f), f);
    vf kf = v_from_int(k);
    vf lp = v_sub(f, v_sub(h, v_mul(s, v_add(h, rz))));
    vf res = v_add(v_mul(kf, v_set1(VK_LOG_LN2_HI)), v_add(lp, v_mul(kf, v_set1(VK_LOG_LN2_LO))));
    res = v_select(v_eq(x, v_set1(INFINITY)), res, x);
    res = v_select(v_eq(x, v_zero()), res, v_set1(-INFINITY));
    res = v_select(v_lt(x, v_zero()), res, v_as_float(vi_set1((int32_t)VK_LOG_NAN_BITS)));
    return v_select(v_isnan(x), res, v_add(x, x));
}

#endif
