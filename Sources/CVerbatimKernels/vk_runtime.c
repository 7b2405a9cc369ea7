// Run-time choices (instruction set, thread count) and the persistent worker
// pool. A decode step calls ~200 kernels, so a parallel call must cost about a
// microsecond: workers spin on an atomic for a while after each job (and then
// sleep on a condition variable so an idle process uses no CPU), and the
// calling thread takes items too.
#pragma clang fp contract(off)
#pragma STDC FP_CONTRACT OFF

#include "vk_internal.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#define VK_MAX_THREADS 256

// ---- instruction set ---------------------------------------------------------

#if defined(__x86_64__)
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

static int detect_supported(int isa) {
    if (isa == VK_ISA_PORTABLE) return 1;
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1, avx = (c >> 28) & 1;
    if (!(osxsave && fma && f16c && avx)) return 0;
    uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return 0; // xmm and ymm state
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int avx2 = (b >> 5) & 1;
    if (isa == VK_ISA_AVX2) return avx2;
    if (isa == VK_ISA_AVX512) {
        int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
        return avx2 && f && dq && bw && vl && (xcr0 & 0xe0) == 0xe0; // opmask, zmm state
    }
#endif
    return 0;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int supported[3];
static _Atomic int current_isa = VK_ISA_PORTABLE;
static int initial_threads = 1;

// Measured from DRAM, one core of an Intel Xeon (Emerald Rapids): without prefetching, Q4_1 read
// 6.7 GB/s and Q8_0 8.0 (45-55% of a plain read loop); prefetching 16 blocks ahead (5 KB of Q4_1,
// 9 KB of Q8_0) 11.6 and 13.2 (76-87%). More blocks in flight did not help there.
int vk_row_blocks_q4 = 2, vk_row_blocks_q8 = 1, vk_row_prefetch = 16;

// An integer from the environment, or `fallback` when unset, not a number or out of range.
static int env_int(const char *name, int fallback, int lo, int hi) {
    const char *v = getenv(name);
    if (!v || !*v) return fallback;
    char *end;
    long n = strtol(v, &end, 10);
    return *end != 0 || n < lo || n > hi ? fallback : (int)n;
}

static void init_runtime(void) {
    vk_row_blocks_q4 = env_int("VERBATIM_ROW_BLOCKS_Q4", vk_row_blocks_q4, 1, 4);
    vk_row_blocks_q8 = env_int("VERBATIM_ROW_BLOCKS_Q8", vk_row_blocks_q8, 1, 4);
    vk_row_prefetch = env_int("VERBATIM_ROW_PREFETCH", vk_row_prefetch, 0, 64);
    for (int i = 0; i < 3; i++) supported[i] = detect_supported(i);
    int isa = supported[VK_ISA_AVX512] ? VK_ISA_AVX512 : supported[VK_ISA_AVX2] ? VK_ISA_AVX2 : VK_ISA_PORTABLE;
    const char *env = getenv("VERBATIM_ISA");
    if (env) {
        int want = -1;
        if (!strcmp(env, "portable")) want = VK_ISA_PORTABLE;
        else if (!strcmp(env, "avx2")) want = VK_ISA_AVX2;
        else if (!strcmp(env, "avx512")) want = VK_ISA_AVX512;
        if (want >= 0 && supported[want]) isa = want;
    }
    atomic_store(&current_isa, isa);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    const char *tenv = getenv("VERBATIM_THREADS");
    if (tenv && atoi(tenv) > 0) n = atoi(tenv);
    if (n < 1) n = 1;
    if (n > VK_MAX_THREADS) n = VK_MAX_THREADS;
    initial_threads = (int)n;
}

int vk_isa_supported(int isa) {
    pthread_once(&init_once, init_runtime);
    return isa >= 0 && isa < 3 && supported[isa];
}

int vk_get_isa(void) {
    pthread_once(&init_once, init_runtime);
    return atomic_load(&current_isa);
}

int vk_set_isa(int isa) {
    if (!vk_isa_supported(isa)) return -1;
    atomic_store(&current_isa, isa);
    return 0;
}

const vk_ops *vk_current_ops(void) {
#if defined(__x86_64__)
    switch (vk_get_isa()) {
    case VK_ISA_AVX512: return &vk_ops_avx512;
    case VK_ISA_AVX2: return &vk_ops_avx2;
    default: return &vk_ops_portable;
    }
#else
    return &vk_ops_portable;
#endif
}

// ---- worker pool -------------------------------------------------------------

// One job at a time (run_lock). `ticket` packs (job id << 32 | next item):
// a worker claims an item with a compare-and-swap, so it can never take an
// item of a job other than the one whose fn/ctx it then reads.
static struct {
    pthread_mutex_t run_lock;  // serialises vk_parallel and vk_set_threads
    pthread_mutex_t sleep_lock;
    pthread_cond_t wake;
    _Atomic uint32_t job;      // id of the latest job
    _Atomic uint64_t ticket;
    _Atomic int64_t done;      // items finished in the current job
    _Atomic int sleepers;
    _Atomic int quit;
    vk_task_fn fn;             // read only after claiming an item of the job
    void *ctx;
    _Atomic int64_t n_items;   // read before claiming, so atomic
    _Atomic int active;        // threads that take items of the current job (the caller's limit)
    int n_threads; // including the caller
    int started;
    pthread_t threads[VK_MAX_THREADS];
} pool = {
    .run_lock = PTHREAD_MUTEX_INITIALIZER,
    .sleep_lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
};

static float *scratch_ptr[VK_MAX_THREADS];
static int64_t scratch_len[VK_MAX_THREADS];

void *vk_alloc_huge(size_t bytes) {
    const size_t huge = (size_t)2 << 20;
    size_t size = (bytes + huge - 1) / huge * huge;
    if (size == 0) size = huge;
    void *p = aligned_alloc(huge, size);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    // Advice: refused is fine. VERBATIM_HUGE_PAGES=0 turns it off (to measure what it gives).
    const char *env = getenv("VERBATIM_HUGE_PAGES");
    if (p && !(env && env[0] == '0')) (void)madvise(p, size, MADV_HUGEPAGE);
#endif
    return p;
}

void vk_free_huge(void *p) { free(p); }

static size_t lazy_size(size_t bytes) {
    const size_t huge = (size_t)2 << 20;
    size_t size = (bytes + huge - 1) / huge * huge;
    return size == 0 ? huge : size;
}

void *vk_alloc_lazy(size_t bytes) {
    size_t size = lazy_size(bytes);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const char *env = getenv("VERBATIM_HUGE_PAGES");
    if (!(env && env[0] == '0')) (void)madvise(p, size, MADV_HUGEPAGE);
#endif
    return p;
}

void vk_free_lazy(void *p, size_t bytes) { if (p) munmap(p, lazy_size(bytes)); }

void vk_discard(void *p, size_t bytes) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = ((uintptr_t)p + page - 1) / page * page;
    uintptr_t end = ((uintptr_t)p + bytes) / page * page;
    if (end > start) (void)madvise((void *)start, end - start, MADV_DONTNEED);
}

float *vk_scratch(int tid, int64_t floats) {
    if (scratch_len[tid] < floats) { // grows rarely: only past the largest size seen
        free(scratch_ptr[tid]);
        int64_t len = floats + 1024;
        scratch_ptr[tid] = aligned_alloc(64, (size_t)((len * 4 + 63) / 64 * 64));
        scratch_len[tid] = scratch_ptr[tid] ? len : 0; // a failed allocation is retried next time
    }
    return scratch_ptr[tid];
}

static inline void cpu_relax(void) {
#if defined(__x86_64__)
    _mm_pause();
#endif
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// The item field of a closed ticket: at least any job's item count.
#define VK_TICKET_CLOSED 0xffffffffu

static _Atomic int test_delay_ns; // vk_test_set_pool_delay

void vk_test_set_pool_delay(int ns) { atomic_store(&test_delay_ns, ns < 0 ? 0 : ns); }

#if defined(__x86_64__) || defined(__i386__)
unsigned vk_test_fp_control(void) { return _mm_getcsr(); }
void vk_test_set_fp_control(unsigned value) { _mm_setcsr(value); }
#else
unsigned vk_test_fp_control(void) { return 0; }
void vk_test_set_fp_control(unsigned value) { (void)value; }
#endif

// The subnormal flags (DE, UE) raised inside kernel calls, on any thread.
static _Atomic unsigned fp_subnormal_flags;
void vk_fp_note(unsigned flags) { atomic_fetch_or(&fp_subnormal_flags, flags); }
unsigned vk_take_subnormal_flags(void) { return atomic_exchange(&fp_subnormal_flags, 0u); }

static void test_delay(int times) {
    int ns = times * atomic_load_explicit(&test_delay_ns, memory_order_relaxed);
    if (ns == 0) return;
    double end = now_seconds() + 1e-9 * ns;
    while (now_seconds() < end) {
    }
}

// Claims and runs items of job `job_id` until none is left.
static void run_items(uint32_t job_id, int tid) {
    if (tid >= atomic_load(&pool.active)) return; // beyond the caller's limit: sit this job out
    for (;;) {
        uint64_t t = atomic_load(&pool.ticket);
        if ((uint32_t)(t >> 32) != job_id) return;
        int64_t item = (int64_t)(t & 0xffffffffu);
        test_delay(1);
        if (item >= atomic_load_explicit(&pool.n_items, memory_order_relaxed)) return;
        test_delay(1);
        if (!atomic_compare_exchange_weak(&pool.ticket, &t, t + 1)) continue;
        pool.fn(pool.ctx, item, tid);
        vk_fp_collect(); // before `done`: the caller may read the flags once it returns
        atomic_fetch_add(&pool.done, 1);
    }
}

#define VK_SPIN_SECONDS 2e-4 // after a job, spin this long before sleeping

static void *worker_main(void *arg) {
    int tid = (int)(intptr_t)arg;
    vk_fp_set_defaults();
    uint32_t seen = atomic_load(&pool.job);
    for (;;) {
        double spin_start = 0;
        uint32_t j;
        unsigned spins = 0;
        // A job beyond the caller's limit (tid >= active) is no job for this thread: it keeps
        // counting its idle time and goes to sleep as if none had come.
        while ((j = atomic_load(&pool.job)) == seen || tid >= atomic_load(&pool.active)) {
            if (atomic_load(&pool.quit)) return NULL;
            cpu_relax();
            if ((++spins & 255) == 0) {
                double t = now_seconds();
                if (spin_start == 0) spin_start = t;
                else if (t - spin_start > VK_SPIN_SECONDS) {
                    pthread_mutex_lock(&pool.sleep_lock);
                    atomic_fetch_add(&pool.sleepers, 1);
                    while ((atomic_load(&pool.job) == seen || tid >= atomic_load(&pool.active)) && !atomic_load(&pool.quit))
                        pthread_cond_wait(&pool.wake, &pool.sleep_lock);
                    atomic_fetch_sub(&pool.sleepers, 1);
                    pthread_mutex_unlock(&pool.sleep_lock);
                    spin_start = 0;
                }
            }
        }
        seen = j;
        run_items(j, tid);
    }
}

static void wake_sleepers(void) {
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.sleep_lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.sleep_lock);
    }
}

static void stop_workers(void) {
    if (!pool.started) return;
    atomic_store(&pool.quit, 1);
    wake_sleepers();
    pthread_mutex_lock(&pool.sleep_lock); // a worker may be between its check and its wait
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.sleep_lock);
    for (int i = 1; i < pool.n_threads; i++) pthread_join(pool.threads[i], NULL);
    atomic_store(&pool.quit, 0);
    pool.started = 0;
}

// Called with run_lock held.
static void start_workers(int n) {
    pool.n_threads = n;
    for (int i = 1; i < n; i++)
        pthread_create(&pool.threads[i], NULL, worker_main, (void *)(intptr_t)i);
    pool.started = 1;
}

int vk_get_threads(void) {
    pthread_once(&init_once, init_runtime);
    pthread_mutex_lock(&pool.run_lock);
    int n = pool.started ? pool.n_threads : initial_threads;
    pthread_mutex_unlock(&pool.run_lock);
    return n;
}

void vk_set_threads(int n) {
    pthread_once(&init_once, init_runtime);
    if (n < 1) n = 1;
    if (n > VK_MAX_THREADS) n = VK_MAX_THREADS;
    pthread_mutex_lock(&pool.run_lock);
    stop_workers();
    initial_threads = n;
    pthread_mutex_unlock(&pool.run_lock);
}

// The calling thread's limit on the threads of its jobs (0: the whole pool).
static _Thread_local int caller_limit = 0;

void vk_set_caller_threads(int n) { caller_limit = n < 1 ? 0 : n; }
int vk_get_caller_threads(void) { return caller_limit; }

int vk_effective_threads(void) {
    int n = vk_get_threads();
    return caller_limit > 0 && caller_limit < n ? caller_limit : n;
}

void vk_parallel(int64_t n_items, vk_task_fn fn, void *ctx) {
    if (n_items <= 0) return;
    pthread_once(&init_once, init_runtime);
    pthread_mutex_lock(&pool.run_lock);
    if (!pool.started) start_workers(initial_threads);
    int active = caller_limit > 0 && caller_limit < pool.n_threads ? caller_limit : pool.n_threads;
    if (active == 1 || n_items == 1) {
        for (int64_t i = 0; i < n_items; i++) fn(ctx, i, 0);
        pthread_mutex_unlock(&pool.run_lock);
        return;
    }
    // Close the previous job's ticket before anything of the new job is written. A worker
    // may still hold that ticket (all its items claimed). Had the worker read the new, larger
    // n_items, its compare-and-swap on the old ticket would succeed: it would run an item of
    // the new job that nobody counts, and its extra `done` would let this call return while
    // a real item was still being written.
    uint32_t job = atomic_load(&pool.job) + 1;
    atomic_store(&pool.ticket, ((uint64_t)job << 32) | VK_TICKET_CLOSED);
    pool.fn = fn;
    pool.ctx = ctx;
    atomic_store(&pool.n_items, n_items);
    atomic_store(&pool.active, active);
    test_delay(4);
    atomic_store(&pool.done, 0);
    atomic_store(&pool.ticket, (uint64_t)job << 32); // open: items from 0
    atomic_store(&pool.job, job);
    wake_sleepers();
    run_items(job, 0);
    while (atomic_load(&pool.done) < n_items) cpu_relax();
    pthread_mutex_unlock(&pool.run_lock);
}

// For tests of the caller's limit: runs `n_items` items that each take about 50 µs and
// returns the highest thread index that ran one.
static _Atomic int test_max_tid;
static void test_tid_item(void *ctx, int64_t item, int tid) {
    (void)ctx; (void)item;
    int seen = atomic_load(&test_max_tid);
    while (tid > seen && !atomic_compare_exchange_weak(&test_max_tid, &seen, tid)) {}
    double end = now_seconds() + 5e-5;
    while (now_seconds() < end) {}
}
int vk_test_max_tid(int64_t n_items) {
    atomic_store(&test_max_tid, 0);
    vk_parallel(n_items, test_tid_item, NULL);
    return atomic_load(&test_max_tid);
}

int vk_test_sleepers(void) { return atomic_load(&pool.sleepers); }
