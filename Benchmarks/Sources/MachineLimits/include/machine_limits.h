// The physical limits that the kernel benchmarks are measured against: one
// core's peak rate of f32 fused multiply-adds, and the rate at which a plain
// loop reads memory on one core or on several. The caller times them.
#ifndef MACHINE_LIMITS_H
#define MACHINE_LIMITS_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { ML_AVX2 = 1, ML_AVX512 = 2 };

/// Whether this CPU runs the given path.
int ml_supported(int path);

/// Runs `iterations` rounds of ML_FMA_CHAINS independent vector fma chains
/// (16 lanes each: one zmm, or two ymm); every round is ML_FMA_CHAINS * 16
/// fmas = 32 * ML_FMA_CHAINS flops. Returns a value that depends on all of them.
float ml_fma_rounds(int path, int64_t iterations);
#define ML_FMA_CHAINS 12

/// Reads n floats (n % 64 == 0, p 64-byte aligned) with vector loads into
/// independent sums; returns their total.
float ml_read(int path, const float *p, int64_t n);

/// The same read split over `threads` threads (1 to ML_MAX_THREADS, the caller
/// among them), each reading one contiguous share: the rate several cores get
/// from memory together.
float ml_read_parallel(int path, const float *p, int64_t n, int threads);
#define ML_MAX_THREADS 64

#ifdef __cplusplus
}
#endif
#endif
