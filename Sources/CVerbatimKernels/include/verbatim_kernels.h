// Verbatim kernels: the C layer under the VerbatimKernels Swift module.
//
// Every kernel has a portable reference path (plain scalar loops written from
// docs/design/NUMERICS.md) and optimised AVX2+FMA / AVX-512 paths that give the same
// bits. The path is chosen at run time (CPUID, then VERBATIM_ISA, then
// vk_set_isa). Work is split across threads only over independent outputs.
//
// Shapes are written as (rows, cols), row-major, rows contiguous.
#ifndef VERBATIM_KERNELS_H
#define VERBATIM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- configuration -------------------------------------------------------

enum { VK_ISA_PORTABLE = 0, VK_ISA_AVX2 = 1, VK_ISA_AVX512 = 2 };

/// 1 if this CPU (and OS) can run the given path.
int vk_isa_supported(int isa);
/// The path in use now.
int vk_get_isa(void);
/// Selects a path; returns 0, or -1 (and changes nothing) if unsupported.
int vk_set_isa(int isa);
/// Threads used by the kernels (the caller counts as one).
int vk_get_threads(void);
/// Sets the thread count (>= 1); restarts the worker pool.
void vk_set_threads(int n);
/// Limits the jobs the calling thread starts to its first `n` pool threads (the caller
/// included); 0 lifts the limit. Per thread: an engine thread sets its engine's count.
void vk_set_caller_threads(int n);
/// The calling thread's limit (0: none).
int vk_get_caller_threads(void);
/// Threads the calling thread's jobs use: the pool's, or fewer under its limit.
int vk_effective_threads(void);

// For tests of the caller's limit: the highest thread index that ran an item of a job
// of `n_items` slow items.
int vk_test_max_tid(int64_t n_items);
// For tests of the caller's limit: pool threads asleep now.
int vk_test_sleepers(void);

// For tests of the pool: stretch the moments between a worker's reads of a job
// and its claim, and between the caller's writes of a new job, by `ns` busy
// nanoseconds each (0: off, the default), so that races show at once.
void vk_test_set_pool_delay(int ns);

// For tests of the floating-point environment guard: the calling thread's x86
// MXCSR (0 elsewhere), read and written as a host application would.
unsigned vk_test_fp_control(void);
void vk_test_set_fp_control(unsigned value);

// x86 MXCSR flags raised inside kernel calls since the last call, on any
// thread, then cleared: 0x02 (DE, an operand was subnormal) and 0x10 (UE, a
// result underflowed). Either means an Intel core took a microcode assist
// (about 100x slower per instruction); the kernels keep them at 0 whatever
// the weights. Always 0 on other architectures.
unsigned vk_take_subnormal_flags(void);

// ---- weights --------------------------------------------------------------

enum {
    VK_W_F32 = 0, VK_W_F16 = 1, VK_W_BF16 = 2,
    VK_W_Q8_0 = 3, VK_W_Q4_0 = 4, VK_W_Q4_1 = 5,
    VK_W_Q5_0 = 6, VK_W_Q5_1 = 7, VK_W_Q4_K = 8, VK_W_Q5_K = 9, VK_W_Q6_K = 10,
};
#define VK_W_LAST VK_W_Q6_K

/// Values per ggml block of a type (1, 32, or 256 for the K-quants).
int vk_block_values(int type);
/// Bytes of one source row of k values in ggml layout (k a multiple of
/// vk_block_values; 0 for an unknown type).
size_t vk_row_bytes(int type, int64_t k);
/// Bytes of the packed (panel) form of a k x n weight.
size_t vk_packed_bytes(int type, int64_t k, int64_t n);
/// Repacks n source rows of k values (ggml layout, row n contiguous) into
/// column panels. `dst` must hold vk_packed_bytes bytes. Returns 0, or -1 for
/// an unsupported type or a k that is not a multiple of the block size.
int vk_pack(int type, int64_t k, int64_t n, const void *src, void *dst);

/// Allocates `bytes` (rounded up to 2 MiB, 2 MiB aligned) and asks the OS for
/// transparent huge pages over it (advice only). NULL if out of memory.
/// Release with vk_free_huge.
void *vk_alloc_huge(size_t bytes);
void vk_free_huge(void *p);

/// Zero-filled memory committed only as it is touched (an anonymous mapping, on huge pages
/// where allowed): KV memory reserved up front costs resident memory only once it is used.
/// Release with vk_free_lazy(p, bytes).
void *vk_alloc_lazy(size_t bytes);
void vk_free_lazy(void *p, size_t bytes);
/// Gives the whole pages inside [p, p + bytes) back to the OS; they read as zeros afterwards.
void vk_discard(void *p, size_t bytes);

/// Decodes one source row of k values (ggml layout) to floats with the same
/// dequantisation as the linear kernels (e.g. for an embedding lookup).
int vk_dequantize_row(int type, int64_t k, const void *src, float *out);

/// y (rows, n) = x (rows, k) . W^T, W packed by vk_pack.
void vk_linear(const float *x, int64_t rows, const void *packed, int type,
               int64_t k, int64_t n, float *y);

/// One weight matrix of vk_linear_many: W (n, k) packed by vk_pack, and its output y (rows, n).
typedef struct {
    const void *packed;
    int type;
    int64_t n;
    float *y;
} vk_linear_target;
#define VK_LINEAR_MAX 4
/// y_i = x . W_i^T for `count` (1 to VK_LINEAR_MAX) matrices of the same k, as one job over
/// the threads (x prepared once): each y_i has the bits vk_linear gives it alone.
void vk_linear_many(const float *x, int64_t rows, int64_t k, const vk_linear_target *targets, int count);

// ---- element-wise and row kernels ----------------------------------------

/// y (rows, dim) = rmsnorm(x (rows, dim)) * w (dim).
void vk_rmsnorm(const float *x, const float *w, float *y, int64_t rows,
                int64_t dim, float eps);
enum { VK_ROPE_ADJACENT = 0, VK_ROPE_NEOX = 1 };
/// Rotates pairs of each head of x (rows, heads * head_dim) in place: pair i is
/// (2i, 2i + 1) (VK_ROPE_ADJACENT) or (i, i + head_dim / 2) (VK_ROPE_NEOX).
/// cos_tab, sin_tab: (max_pos, head_dim / 2); positions: (rows).
void vk_rope(float *x, int64_t rows, int64_t heads, int64_t head_dim,
             const int32_t *positions, const float *cos_tab,
             const float *sin_tab, int mode);
/// out (count) = silu(gate) * up, silu(g) = g / (1 + exp(-g)).
void vk_swiglu(const float *gate, const float *up, float *out, int64_t count);
/// out (count) = gelu(gate) * up with GELU's tanh form, computed as
/// g / (1 + exp(-1.5957691f * (g + 0.044715f * ((g * g) * g)))).
void vk_geglu(const float *gate, const float *up, float *out, int64_t count);
/// y (rows, n) = (x - max) - log(sum exp(x - max)), per row.
void vk_log_softmax(const float *x, float *y, int64_t rows, int64_t n);
/// x (n) += y (n), element by element (the residual connection).
void vk_add(float *x, const float *y, int64_t n);
/// Index of the largest value (NaN ignored), lowest index on ties; 0 if none.
int64_t vk_argmax(const float *x, int64_t n);

/// The project's exp and log (portable scalar; the vector paths give the same bits).
float vk_expf(float x);
float vk_logf(float x);
/// y (n) = exp(x) / log(x) with the current path (tests compare the paths).
void vk_exp_array(const float *x, float *y, int64_t n);
void vk_log_array(const float *x, float *y, int64_t n);

/// float <-> IEEE half (round to nearest even), as used by the KV memory.
uint16_t vk_f32_to_f16(float x);
float vk_f16_to_f32(uint16_t h);

// ---- paged KV memory and attention ----------------------------------------

enum { VK_KV_F32 = 0, VK_KV_F16 = 1 };

/// One physical block holds, for every layer l, K then V, each
/// (block_size, n_kv_heads, head_dim): block b, layer l starts at element
/// (b * n_layers + l) * 2 * block_size * n_kv_heads * head_dim.
typedef struct {
    void *base;          // storage: vk_kv_bytes bytes
    int32_t kv_type;     // VK_KV_F32 or VK_KV_F16
    int32_t block_size;  // tokens per block
    int32_t n_layers;
    int32_t n_kv_heads;
    int32_t head_dim;
    int64_t n_blocks;
} vk_kv_layout;

/// Bytes of storage for a layout (including the slack).
size_t vk_kv_bytes(const vk_kv_layout *kv);

/// Writes K and V of a flat batch into the paged memory.
/// k, v: (rows, n_kv_heads * head_dim). Row i belongs to the sequence whose
/// block table starts at block_tables + table_offsets[i]; it is written at
/// absolute position positions[i].
void vk_kv_write(const vk_kv_layout *kv, int32_t layer, const float *k,
                 const float *v, int64_t rows, const int32_t *block_tables,
                 const int32_t *table_offsets, const int32_t *positions);

/// Causal grouped-query attention for a flat batch: row i attends to the keys
/// 0...positions[i] of its own sequence, or with window > 0 to the last `window`
/// of them (positions[i] - window + 1 ... positions[i]). q, out: (rows, n_heads * head_dim).
void vk_attention(const vk_kv_layout *kv, int32_t layer, const float *q,
                  float *out, int64_t rows, int32_t n_heads,
                  const int32_t *block_tables, const int32_t *table_offsets,
                  const int32_t *positions, float scale, int32_t window);

#ifdef __cplusplus
}
#endif
#endif
