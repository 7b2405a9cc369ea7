// Peak fma rate and plain read rate of one core, and the read rate of several
// (see machine_limits.h).
#include "machine_limits.h"
#include <pthread.h>

#if defined(__x86_64__)
#include <immintrin.h>

int ml_supported(int path) {
    __builtin_cpu_init();
    if (path == ML_AVX512) return __builtin_cpu_supports("avx512f");
    if (path == ML_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return 0;
}

// Twelve chains: more than fma latency x fma ports on current cores, so the
// rate is the issue rate, not the latency.
__attribute__((target("avx512f"))) static float fma_avx512(int64_t iterations) {
    __m512 a[ML_FMA_CHAINS];
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < ML_FMA_CHAINS; i++) a[i] = _mm512_set1_ps((float)i);
    for (int64_t it = 0; it < iterations; it++)
        for (int i = 0; i < ML_FMA_CHAINS; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
    __m512 s = a[0];
    for (int i = 1; i < ML_FMA_CHAINS; i++) s = _mm512_add_ps(s, a[i]);
    return _mm512_reduce_add_ps(s);
}

// AVX2 has 16 ymm registers: 12 chains of 8 lanes, run twice per round so a
// round is the same ML_FMA_CHAINS * 16 fmas.
__attribute__((target("avx2,fma"))) static float fma_avx2(int64_t iterations) {
    __m256 a[ML_FMA_CHAINS];
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < ML_FMA_CHAINS; i++) a[i] = _mm256_set1_ps((float)i);
    for (int64_t it = 0; it < 2 * iterations; it++)
        for (int i = 0; i < ML_FMA_CHAINS; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
    __m256 s = a[0];
    for (int i = 1; i < ML_FMA_CHAINS; i++) s = _mm256_add_ps(s, a[i]);
    float l[8];
    _mm256_storeu_ps(l, s);
    return l[0] + l[1] + l[2] + l[3] + l[4] + l[5] + l[6] + l[7];
}

float ml_fma_rounds(int path, int64_t iterations) {
    return path == ML_AVX512 ? fma_avx512(iterations) : fma_avx2(iterations);
}

__attribute__((target("avx512f"))) static float read_avx512(const float *p, int64_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t i = 0; i < n; i += 64) {
        s0 = _mm512_add_ps(s0, _mm512_load_ps(p + i));
        s1 = _mm512_add_ps(s1, _mm512_load_ps(p + i + 16));
        s2 = _mm512_add_ps(s2, _mm512_load_ps(p + i + 32));
        s3 = _mm512_add_ps(s3, _mm512_load_ps(p + i + 48));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

__attribute__((target("avx2"))) static float read_avx2(const float *p, int64_t n) {
    __m256 s[8];
    for (int j = 0; j < 8; j++) s[j] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 64)
        for (int j = 0; j < 8; j++) s[j] = _mm256_add_ps(s[j], _mm256_load_ps(p + i + 8 * j));
    for (int j = 1; j < 8; j++) s[0] = _mm256_add_ps(s[0], s[j]);
    float l[8];
    _mm256_storeu_ps(l, s[0]);
    return l[0] + l[1] + l[2] + l[3] + l[4] + l[5] + l[6] + l[7];
}

float ml_read(int path, const float *p, int64_t n) {
    return path == ML_AVX512 ? read_avx512(p, n) : read_avx2(p, n);
}

typedef struct { int path; const float *p; int64_t n; float sum; } read_part;

static void *read_part_main(void *arg) {
    read_part *r = arg;
    r->sum = ml_read(r->path, r->p, r->n);
    return NULL;
}

float ml_read_parallel(int path, const float *p, int64_t n, int threads) {
    if (threads < 1) threads = 1;
    if (threads > ML_MAX_THREADS) threads = ML_MAX_THREADS;
    read_part parts[ML_MAX_THREADS];
    pthread_t ids[ML_MAX_THREADS];
    int started[ML_MAX_THREADS] = {0};
    const int64_t share = n / threads / 64 * 64; // whole 64-float rows; the caller takes the rest
    for (int t = 0; t < threads; t++) {
        parts[t] = (read_part){path, p + t * share, t == threads - 1 ? n - t * share : share, 0};
        if (t < threads - 1) started[t] = pthread_create(&ids[t], NULL, read_part_main, &parts[t]) == 0;
    }
    read_part_main(&parts[threads - 1]);
    float total = parts[threads - 1].sum;
    for (int t = 0; t < threads - 1; t++) {
        if (started[t]) pthread_join(ids[t], NULL);
        else read_part_main(&parts[t]); // no thread to be had: read it here (the rate will show it)
        total += parts[t].sum;
    }
    return total;
}

#else
int ml_supported(int path) { (void)path; return 0; }
float ml_fma_rounds(int path, int64_t iterations) { (void)path; (void)iterations; return 0; }
float ml_read(int path, const float *p, int64_t n) { (void)path; (void)p; (void)n; return 0; }
float ml_read_parallel(int path, const float *p, int64_t n, int threads) { (void)path; (void)p; (void)n; (void)threads; return 0; }
#endif
