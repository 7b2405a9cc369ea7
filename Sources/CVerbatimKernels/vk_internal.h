// Shared between the C files of the kernels; not part of the public API.
#ifndef VK_INTERNAL_H
#define VK_INTERNAL_H

#include "verbatim_kernels.h"
#include <string.h>

// Weights are packed in column panels of VK_NR columns; panels go in groups of
// VK_GROUP_PANELS (the unit of work of a thread). The last group is padded with
// zero columns. Inside a panel, along k:
//   F32:  (k, 16) floats                 F16/BF16: (k, 16) uint16
//   quantised types: a sequence of units of vk_unit_k values (a 32-value block;
//   K-quants a 256-value super-block), each a header for the 16 columns, then
//   per 32 k the values (vk_block_bytes):
//     Q8_0: (32, 16) int8
//     the others: (4, 16) uint32 whose dword (g, c) holds the low 4 bits of
//     q(c, 8g + j) in its nibble j (bits 4j..4j+3), j = 0..7; then, for 5-bit
//     types, (1, 16) uint32 whose bit 8g + j is bit 4 of that q; for Q6_K,
//     (2, 16) uint32 whose dword g / 2 holds bits 4..5 of q at bits
//     2 (8 (g % 2) + j)..+1.
//   Headers (16 values of each field, column order):
//     Q8_0, Q4_0, Q5_0: f16 d                Q4_1, Q5_1: f16 d, f16 m
//     Q4_K, Q5_K: f16 d, f16 dmin, then u8 sc[8][16], int8 -m[8][16] per 32-k sub-block
//     Q6_K: f16 d, then int8 sc[16][16] per 16-k sub-block
#define VK_NR 16
#define VK_GROUP_PANELS 4
#define VK_GROUP_COLS (VK_NR * VK_GROUP_PANELS)
#define VK_QBLOCK 32

static inline int vk_is_quant(int type) { return type >= VK_W_Q8_0; }
static inline int vk_is_kquant(int type) { return type >= VK_W_Q4_K; }
// k values per unit (a header and its values).
static inline int vk_unit_k(int type) { return vk_is_kquant(type) ? 256 : VK_QBLOCK; }
// k values per sub-block: the span of one block sum in the factored order.
static inline int vk_sub_k(int type) { return type == VK_W_Q6_K ? 16 : VK_QBLOCK; }
// Dwords of high bits per 32 k and column (0: the nibble holds all of q).
static inline int vk_high_dwords(int type) {
    return type == VK_W_Q6_K ? 2 : (type == VK_W_Q5_0 || type == VK_W_Q5_1 || type == VK_W_Q5_K) ? 1 : 0;
}
// Bytes of a unit header (16 columns).
static inline int64_t vk_unit_head(int type) {
    switch (type) {
    case VK_W_Q4_1: case VK_W_Q5_1: return VK_NR * 4;
    case VK_W_Q4_K: case VK_W_Q5_K: return VK_NR * 4 + 16 * VK_NR;
    case VK_W_Q6_K: return VK_NR * 2 + 16 * VK_NR;
    default: return VK_NR * 2;
    }
}
// Bytes of the values of 32 k (16 columns).
static inline int64_t vk_block_bytes(int type) {
    return type == VK_W_Q8_0 ? VK_QBLOCK * VK_NR : (4 + vk_high_dwords(type)) * VK_NR * 4;
}
static inline int64_t vk_unit_bytes(int type) {
    return vk_unit_head(type) + vk_unit_k(type) / VK_QBLOCK * vk_block_bytes(type);
}
// Header and values of the 32 k starting at 32-block b of a panel.
static inline const uint8_t *vk_unit_at(int type, const uint8_t *panel, int64_t b) {
    return panel + b / (vk_unit_k(type) / VK_QBLOCK) * vk_unit_bytes(type);
}
static inline const uint8_t *vk_values_at(int type, const uint8_t *panel, int64_t b) {
    return vk_unit_at(type, panel, b) + vk_unit_head(type) + b % (vk_unit_k(type) / VK_QBLOCK) * vk_block_bytes(type);
}

static inline int64_t vk_panel_bytes(int type, int64_t k) {
    switch (type) {
    case VK_W_F32: return k * VK_NR * 4;
    case VK_W_F16:
    case VK_W_BF16: return k * VK_NR * 2;
    default: return vk_is_quant(type) ? k / vk_unit_k(type) * vk_unit_bytes(type) : 0;
    }
}

// Exact half -> float (NaN gets its quiet bit set, as the F16C instruction does).
static inline float vk_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { // subnormal: normalise
            int e = -1;
            do { man <<= 1; e++; } while ((man & 0x400u) == 0);
            man &= 0x3ffu;
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13) | (man ? 0x00400000u : 0);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline float vk_bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t vk_load_u16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

// ---- Q4 arithmetic (profile 4) ----
// A nibble is converted in place: the dword masked to nibble j (j < 6), or
// shifted right by 8 and masked (j = 6, 7), is the integer q << bit with
// bit = vk_q4_bit(j); converted to float it is exactly q * 2^bit, a normal
// number or zero (never a subnormal: Intel cores take a microcode assist on
// every fma with a subnormal operand). The caller scales x by 2^(20 - bit)
// (at least 1, so a normal x stays normal), and the block sum, 2^20 times the
// plain one, enters the total through d * 2^-20 (d >= 2^-24 as an f16, so
// that factor is normal too): the products are the plain order's exactly.
// One `and` and one conversion per 16 weights, no shifts for j < 6.
#define VK_Q4_SUM_SCALE 0x1p-20f // d * VK_Q4_SUM_SCALE multiplies a Q4 block sum
static inline int vk_q4_bit(int j) { return j < 6 ? 4 * j : 4 * j - 8; }

// Nibble j of a packed dword as its float (see above).
static inline float vk_q4_value(uint32_t dword, int j) {
    uint32_t bits = (j < 6 ? dword : dword >> 8) & (15u << vk_q4_bit(j));
    return (float)(int32_t)bits;
}

// The high bits of q(c, 8g + j) (5-bit types: bit 4; Q6_K: bits 4..5) from the
// column's high dwords, placed above nibble j's bits as vk_q4_value leaves them:
// vk_q4_value's integer plus this one is q << bit(j). One shift and one `and`.
// The 5-bit types place value j of group g at bit r + 4 (j + 1) for j < 6, and
// values 6 and 7 at bits 28 + r and r, with r = g; Q6_K the same with r = 2 (g % 2)
// in word g / 2 (two bits each). The word rotated right by r puts every j < 6
// where it belongs (t = bit(j) + 4), and rotated by r + 8 both others, so a vector
// path rotates twice per group rather than shifting once per value.
static inline int vk_high_src(int type, int g, int j) { // bit position in the high dword
    const int r = type == VK_W_Q6_K ? 2 * (g % 2) : g;
    return j < 6 ? r + 4 * (j + 1) : j == 6 ? 28 + r : r;
}
static inline uint32_t vk_high_part(int type, uint32_t word, int g, int j) {
    const int t = vk_q4_bit(j) + 4, src = vk_high_src(type, g, j);
    const uint32_t mask = (type == VK_W_Q6_K ? 3u : 1u) << t;
    return (src >= t ? word >> (src - t) : word << (t - src)) & mask;
}

// 2^(20 - bit(j)), the factor of x for nibble j.
static inline float vk_q4_x_scale(int j) {
    uint32_t bits = (uint32_t)(127 + 20 - vk_q4_bit(j)) << 23;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// Weights of magnitude below 2^-126 (subnormal F32 and BF16 values) are packed
// as zero with their sign: a subnormal operand costs an Intel core a microcode
// assist per fma, and such a weight changes no sum of the model's sizes.
static inline uint32_t vk_flush_subnormal_f32(uint32_t bits) {
    return (bits & 0x7f800000u) == 0 ? bits & 0x80000000u : bits;
}
static inline uint16_t vk_flush_subnormal_bf16(uint16_t bits) {
    return (bits & 0x7f80u) == 0 ? bits & 0x8000u : bits;
}

// Function table of one instruction-set path.
typedef struct {
    // y (rows, ncols) for the ceil(ncols / 16) panels starting at `group` (a group
    // of VK_GROUP_PANELS or half of one, padded panels included; ncols <= 64);
    // x (rows, k) with row stride ldx; y row stride ldy.
    // Q4_0/Q4_1: x is already scaled (vk_q4_x_scale: x[k] * 2^(20 - bit(k % 8)))
    // and xsum (rows, k / 32), row stride k / 32, holds the block sums of the
    // unscaled x (vk_block_sum); NULL for other types. scratch: room for
    // k * 64 floats the call may use (quantised types), or NULL. next: the unit
    // this thread computes after this one (read ahead into the cache while this
    // one computes), or NULL.
    void (*linear_group)(const float *x, int64_t ldx, int64_t rows,
                         const uint8_t *group, int64_t panel_bytes, int type,
                         int64_t k, float *y, int64_t ldy, int64_t ncols,
                         const float *xsum, float *scratch, const uint8_t *next);
    // x prepared for the nibble types, rows r0..<r1 of x (rows, k), k a multiple of 32:
    // scaled by 2^(20 - bit) per nibble position (vk_q4_x_scale) into xs (rows, k), and
    // the sub-block sums of 32 (vk_block_sum) into xsum32 (rows, k / 32) and of 16
    // (vk_block_sum16) into xsum16 (rows, k / 16), each where not NULL.
    void (*q4_prep_rows)(const float *x, float *xs, float *xsum32, float *xsum16, int64_t k,
                         int64_t r0, int64_t r1);
    void (*rmsnorm_row)(const float *x, const float *w, float *y, int64_t dim,
                        float eps);
    void (*swiglu)(const float *gate, const float *up, float *out, int64_t n);
    void (*geglu)(const float *gate, const float *up, float *out, int64_t n);
    void (*log_softmax_row)(const float *x, float *y, int64_t n);
    int64_t (*argmax)(const float *x, int64_t n);
    void (*exp_array)(const float *x, float *y, int64_t n);
    void (*log_array)(const float *x, float *y, int64_t n);
    // Attention of n_rows rows of one sequence (at most VK_ATTN_ROWS) for the n_q query heads
    // that share KV head kv_head. Row i: queries (n_q, head_dim) at q + i * q_stride, output
    // at out + i * out_stride, keys first...positions[i] (first: positions[i] - window + 1
    // with a window, else 0). table: the sequence's block table. scratch: at least
    // vk_attention_scratch(n_rows, n_q, the largest position, head_dim) floats. prefetch
    // (one row): read the keys and values ahead (the row is its sequence's only row in the
    // batch, a decode step, whose keys likely come from DRAM). Each row's bits are those it
    // has alone.
    void (*attention_rows)(const vk_kv_layout *kv, int32_t layer, const float *q, int64_t q_stride,
                           float *out, int64_t out_stride, int32_t n_rows, int32_t n_q,
                           const int32_t *table, const int32_t *positions, int32_t window,
                           int32_t kv_head, float scale, float *scratch, int prefetch);
} vk_ops;

// The most rows of one sequence that attention_rows takes at once.
#define VK_ATTN_ROWS 16

// Floats of scratch attention_rows needs: scores of every row and head (keys rounded up to
// 16), and two transposed chunks of keys (head_dim x 16 each).
static inline int64_t vk_attention_scratch(int64_t n_rows, int64_t n_q, int64_t max_pos, int64_t head_dim) {
    return n_rows * n_q * ((max_pos + 1 + 15) / 16 * 16) + 32 * head_dim + 16;
}

extern const vk_ops vk_ops_portable;
extern const vk_ops vk_ops_avx2;
extern const vk_ops vk_ops_avx512;

// Start of layer `layer`'s K in block b (elements); V follows after
// block_size * n_kv_heads * head_dim elements.
static inline int64_t vk_kv_block_offset(const vk_kv_layout *kv, int64_t b,
                                         int32_t layer) {
    int64_t per = (int64_t)kv->block_size * kv->n_kv_heads * kv->head_dim;
    return (b * kv->n_layers + layer) * 2 * per;
}

// The sum of one quantisation block of x (32 values), in the contract's order:
// pairs x[j] + x[j + 16], then the 16 pairs fold in the tree 8, 4, 2, 1.
static inline float vk_block_sum(const float *x) {
    float l[16];
    for (int j = 0; j < 16; j++) l[j] = x[j] + x[j + 16];
    for (int w = 8; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) l[i] = l[i] + l[i + w];
    return l[0];
}

// The sum of a 16-value sub-block of x (Q6_K): the fold 8, 4, 2, 1 of the 16.
static inline float vk_block_sum16(const float *x) {
    float l[16];
    for (int j = 0; j < 16; j++) l[j] = x[j];
    for (int w = 8; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) l[i] = l[i] + l[i + w];
    return l[0];
}

// ---- floating-point environment ----
// The contract assumes IEEE defaults: round to nearest even, no flush-to-zero,
// no denormals-are-zero. A host thread that changed them gets the defaults for
// the duration of a kernel call; VK_FP_DEFAULTS at the top of an entry point
// sets them and restores the caller's control bits on return (keeping the
// caller's flags and those the call raised, except DE and UE raised inside
// pool items, which go to vk_fp_note only). Pool workers run with the defaults.
//
// The denormal-operand (DE) and underflow (UE) flags that kernel code raises
// are collected (vk_fp_note): a subnormal operand or result is what makes an
// Intel core take a microcode assist, so tests require that none is raised.
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define VK_MXCSR_DEFAULT 0x1F80u // all exceptions masked, nearest, no FTZ/DAZ
#define VK_MXCSR_FLAGS 0x3Fu
#define VK_MXCSR_SUBNORMAL_FLAGS 0x12u // DE (denormal operand) | UE (underflow)
void vk_fp_note(unsigned flags); // vk_runtime.c
static inline unsigned vk_fp_enter(void) {
    unsigned old = _mm_getcsr();
    // Defaults, and the subnormal flags cleared so that the call's own show.
    if ((old & ~VK_MXCSR_FLAGS) != VK_MXCSR_DEFAULT || (old & VK_MXCSR_SUBNORMAL_FLAGS))
        _mm_setcsr(VK_MXCSR_DEFAULT | (old & VK_MXCSR_FLAGS & ~VK_MXCSR_SUBNORMAL_FLAGS));
    return old;
}
static inline void vk_fp_restore(unsigned *old) {
    unsigned now = _mm_getcsr();
    if (now & VK_MXCSR_SUBNORMAL_FLAGS) vk_fp_note(now & VK_MXCSR_SUBNORMAL_FLAGS);
    unsigned want = (*old & ~VK_MXCSR_FLAGS) | ((now | *old) & VK_MXCSR_FLAGS);
    if (want != now) _mm_setcsr(want);
}
static inline void vk_fp_set_defaults(void) { _mm_setcsr(VK_MXCSR_DEFAULT | (_mm_getcsr() & VK_MXCSR_FLAGS)); }
// A pool worker after its items: hands on and clears its subnormal flags.
static inline void vk_fp_collect(void) {
    unsigned now = _mm_getcsr();
    if (now & VK_MXCSR_SUBNORMAL_FLAGS) {
        vk_fp_note(now & VK_MXCSR_SUBNORMAL_FLAGS);
        _mm_setcsr(now & ~VK_MXCSR_SUBNORMAL_FLAGS);
    }
}
#define VK_FP_DEFAULTS unsigned vk_fp_saved __attribute__((cleanup(vk_fp_restore), unused)) = vk_fp_enter()
#else
static inline void vk_fp_set_defaults(void) {}
static inline void vk_fp_collect(void) {}
#define VK_FP_DEFAULTS do { } while (0)
#endif

// ---- how one row of quantised weights is walked (speed only, never bits) ----
// Blocks in flight per panel (independent chains) for Q4 and Q8_0, and how many
// blocks ahead to prefetch (0: none): measured defaults in vk_runtime.c, which
// VERBATIM_ROW_BLOCKS_Q4 / _Q8 / VERBATIM_ROW_PREFETCH override.
extern int vk_row_blocks_q4, vk_row_blocks_q8, vk_row_prefetch;

// ---- thread pool (vk_pool.c) ----
typedef void (*vk_task_fn)(void *ctx, int64_t item, int tid);
/// Runs fn(ctx, i, tid) for i in 0..<n_items on the pool; the caller takes
/// items too. Returns when all items are done.
void vk_parallel(int64_t n_items, vk_task_fn fn, void *ctx);
/// Per-thread scratch of at least `floats` floats (tid from vk_parallel), or NULL
/// when that much memory cannot be had.
float *vk_scratch(int tid, int64_t floats);
const vk_ops *vk_current_ops(void);

#endif
