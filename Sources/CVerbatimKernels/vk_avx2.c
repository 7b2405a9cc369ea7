// The AVX2+FMA path: the kernels of vk_simd_kernels.h compiled for AVX2 (a
// 16-lane vector is two ymm registers). Every function in this file gets the
// target attribute below, so SwiftPM's default flags are enough.
#pragma clang fp contract(off)
#pragma STDC FP_CONTRACT OFF

#include "vk_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)

#define VK_SIMD_AVX2 1
// 16 ymm registers: 6 rows x 1 panel = 12 accumulators; fewer rows take
// more panels to keep at least 8 independent fma chains.
// One row walks the weights alone: the chains of more rows would not fit in
// 16 registers.
#define VK_FEW_ROWS 1
#define VK_TILE_MR 6
#define VK_TILE_NP(mr) ((mr) <= 1 ? 4 : (mr) <= 3 ? 2 : 1)
// Attention scores of several rows: rows x heads accumulators per key chunk (2 ymm each).
#define VK_SCORE_ACCS 6
// Quantised tiles of at most this many accumulators keep their running totals in
// registers (vk_small_tiles).
#define VK_REG_TOTALS 0
#define VK_OPS_NAME vk_ops_avx2
#include "vk_simd_kernels.h"

#pragma clang attribute pop
#endif
