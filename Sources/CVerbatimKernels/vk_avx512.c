// The AVX-512 path: the kernels of vk_simd_kernels.h compiled for AVX-512
// (one zmm register per 16-lane vector). Every function in this file gets the
// target attribute below, so SwiftPM's default flags are enough.
#pragma clang fp contract(off)
#pragma STDC FP_CONTRACT OFF

#include "vk_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c"))), apply_to = function)

#define VK_SIMD_AVX512 1
// 12 rows x 2 panels = 24 zmm accumulators; small row counts take 4 panels
// so that M = 1 still has 4 independent fma chains.
// Up to 8 rows of quantised weights walk them as one row does (32 registers
// hold their chains); up to 32 rows in passes of 8 (few_rows_limit).
#define VK_FEW_ROWS 8
#define VK_TILE_MR 12
#define VK_TILE_NP(mr) ((mr) <= 4 ? 4 : 2)
// Attention scores of several rows: rows x heads accumulators per key chunk.
#define VK_SCORE_ACCS 24
// Quantised tiles of at most this many accumulators keep their running totals in
// registers (vk_small_tiles).
#define VK_REG_TOTALS 12
#define VK_OPS_NAME vk_ops_avx512
#include "vk_simd_kernels.h"

#pragma clang attribute pop
#endif
