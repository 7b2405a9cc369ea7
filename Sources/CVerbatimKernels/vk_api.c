// The public entry points: weight packing, work splitting over the pool
// (only across independent outputs), and dispatch to the current path.
#pragma clang fp contract(off)
#pragma STDC FP_CONTRACT OFF

#include "vk_internal.h"
#include "vk_math.h"
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

// ---- weight packing -----------------------------------------------------------

int vk_block_values(int type) {
    switch (type) {
    case VK_W_F32: case VK_W_F16: case VK_W_BF16: return 1;
    case VK_W_Q4_K: case VK_W_Q5_K: case VK_W_Q6_K: return 256;
    default: return type > VK_W_BF16 && type <= VK_W_LAST ? 32 : 0;
    }
}

// Bytes of one ggml block.
static int64_t ggml_block_bytes(int type) {
    switch (type) {
    case VK_W_F32: return 4;
    case VK_W_F16: case VK_W_BF16: return 2;
    case VK_W_Q8_0: return 34; // f16 d, int8 q[32]
    case VK_W_Q4_0: return 18; // f16 d, qs[16]
    case VK_W_Q4_1: return 20; // f16 d, f16 m, qs[16]
    case VK_W_Q5_0: return 22; // f16 d, u32 qh, qs[16]
    case VK_W_Q5_1: return 24; // f16 d, f16 m, u32 qh, qs[16]
    case VK_W_Q4_K: return 144; // f16 d, f16 dmin, scales[12], qs[128]
    case VK_W_Q5_K: return 176; // f16 d, f16 dmin, scales[12], qh[32], qs[128]
    case VK_W_Q6_K: return 210; // ql[128], qh[64], int8 sc[16], f16 d
    default: return 0;
    }
}

size_t vk_row_bytes(int type, int64_t k) {
    int bv = vk_block_values(type);
    return bv ? (size_t)(k / bv * ggml_block_bytes(type)) : 0;
}

static int64_t n_groups(int64_t n) { return (n + VK_GROUP_COLS - 1) / VK_GROUP_COLS; }

size_t vk_packed_bytes(int type, int64_t k, int64_t n) {
    return (size_t)(n_groups(n) * VK_GROUP_PANELS * vk_panel_bytes(type, k));
}

// One ggml block of a quantised type as integers: q, the block's values before
// scaling (Q8_0 signed; the others unsigned, 4, 5 or 6 bits), its f16 fields d
// and m (Q4_1, Q5_1: m; Q4_K, Q5_K: dmin), and the K-quants' sub-block scales
// (Q6_K signed) and mins.
typedef struct { uint16_t d, m; int sc[16], min[8]; int q[256]; } unit_ints;

// Scale and min of sub-block j (0..7) from the 12 packed bytes of a Q4_K/Q5_K block.
static void k4_scale_min(int j, const uint8_t *s, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

static void decode_unit(int type, const uint8_t *blk, unit_ints *u) {
    switch (type) {
    case VK_W_Q8_0:
        u->d = vk_load_u16(blk);
        for (int j = 0; j < 32; j++) u->q[j] = (int8_t)blk[2 + j];
        return;
    case VK_W_Q4_0:
    case VK_W_Q4_1: { // value j < 16: low nibble of qs[j]; j + 16: its high nibble
        const int q41 = type == VK_W_Q4_1;
        u->d = vk_load_u16(blk);
        u->m = q41 ? vk_load_u16(blk + 2) : 0;
        const uint8_t *qs = blk + (q41 ? 4 : 2);
        for (int j = 0; j < 16; j++) { u->q[j] = qs[j] & 15; u->q[j + 16] = qs[j] >> 4; }
        return;
    }
    case VK_W_Q5_0:
    case VK_W_Q5_1: { // as Q4, and bit 4 of value j is bit j of qh
        const int q51 = type == VK_W_Q5_1;
        u->d = vk_load_u16(blk);
        u->m = q51 ? vk_load_u16(blk + 2) : 0;
        uint32_t qh;
        memcpy(&qh, blk + (q51 ? 4 : 2), 4);
        const uint8_t *qs = blk + (q51 ? 8 : 6);
        for (int j = 0; j < 16; j++) {
            u->q[j] = (qs[j] & 15) | (int)((qh >> j) & 1) << 4;
            u->q[j + 16] = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        }
        return;
    }
    case VK_W_Q4_K:
    case VK_W_Q5_K: { // 64 values per c: sub-block 2c the low nibbles, 2c + 1 the high ones
        const int q5 = type == VK_W_Q5_K;
        u->d = vk_load_u16(blk);
        u->m = vk_load_u16(blk + 2);
        for (int j = 0; j < 8; j++) k4_scale_min(j, blk + 4, &u->sc[j], &u->min[j]);
        const uint8_t *qh = blk + 16, *qs = blk + (q5 ? 48 : 16);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                int lo = qs[32 * c + l] & 15, hi = qs[32 * c + l] >> 4;
                if (q5) {
                    lo |= (qh[l] >> (2 * c) & 1) << 4;
                    hi |= (qh[l] >> (2 * c + 1) & 1) << 4;
                }
                u->q[64 * c + l] = lo;
                u->q[64 * c + 32 + l] = hi;
            }
        return;
    }
    default: { // Q6_K: value 128n + 32t + l (t = 0..3) from ql and 2 bits of qh; sc per 16
        const uint8_t *ql = blk, *qh = blk + 128;
        u->d = vk_load_u16(blk + 208);
        for (int i = 0; i < 16; i++) u->sc[i] = (int8_t)blk[192 + i];
        for (int n = 0; n < 2; n++)
            for (int l = 0; l < 32; l++) {
                const int h = qh[32 * n + l];
                u->q[128 * n + l] = (ql[64 * n + l] & 15) | (h & 3) << 4;
                u->q[128 * n + 32 + l] = (ql[64 * n + 32 + l] & 15) | (h >> 2 & 3) << 4;
                u->q[128 * n + 64 + l] = (ql[64 * n + l] >> 4) | (h >> 4 & 3) << 4;
                u->q[128 * n + 96 + l] = (ql[64 * n + 32 + l] >> 4) | (h >> 6 & 3) << 4;
            }
        return;
    }
    }
}

// Column c of one unit into its panel (layout: vk_internal.h).
static void pack_unit(int type, const unit_ints *u, uint8_t *o, int c) {
    memcpy(o + c * 2, &u->d, 2);
    switch (type) {
    case VK_W_Q4_1: case VK_W_Q5_1: memcpy(o + VK_NR * 2 + c * 2, &u->m, 2); break;
    case VK_W_Q4_K: case VK_W_Q5_K:
        memcpy(o + VK_NR * 2 + c * 2, &u->m, 2);
        for (int j = 0; j < 8; j++) {
            o[VK_NR * 4 + j * VK_NR + c] = (uint8_t)u->sc[j];
            o[VK_NR * 4 + 8 * VK_NR + j * VK_NR + c] = (uint8_t)(int8_t)-u->min[j];
        }
        break;
    case VK_W_Q6_K:
        for (int j = 0; j < 16; j++) o[VK_NR * 2 + j * VK_NR + c] = (uint8_t)(int8_t)u->sc[j];
        break;
    default: break;
    }
    const int nh = vk_high_dwords(type);
    for (int b = 0; b < vk_unit_k(type) / VK_QBLOCK; b++) {
        uint8_t *v = o + vk_unit_head(type) + b * vk_block_bytes(type);
        const int *q = u->q + b * VK_QBLOCK;
        if (type == VK_W_Q8_0) {
            for (int j = 0; j < VK_QBLOCK; j++) v[j * VK_NR + c] = (uint8_t)(int8_t)q[j];
            continue;
        }
        uint32_t high[2] = {0, 0};
        for (int g = 0; g < VK_QBLOCK / 8; g++) { // dword (g, c): nibble j is k = 8g + j
            uint32_t dw = 0;
            for (int j = 0; j < 8; j++) {
                dw |= (uint32_t)(q[8 * g + j] & 15) << (4 * j);
                high[nh == 2 ? g / 2 : 0] |= (uint32_t)(q[8 * g + j] >> 4) << vk_high_src(type, g, j);
            }
            memcpy(v + (g * VK_NR + c) * 4, &dw, 4);
        }
        for (int h = 0; h < nh; h++) memcpy(v + ((4 + h) * VK_NR + c) * 4, &high[h], 4);
    }
}

int vk_pack(int type, int64_t k, int64_t n, const void *src, void *dst) {
    if (type < VK_W_F32 || type > VK_W_LAST || k <= 0 || n <= 0) return -1;
    const int quant = vk_is_quant(type);
    if (k % vk_block_values(type) != 0) return -1;
    const uint8_t *s = src;
    uint8_t *d = dst;
    const int64_t pb = vk_panel_bytes(type, k);
    const int64_t panels = n_groups(n) * VK_GROUP_PANELS;
    const size_t rb = vk_row_bytes(type, k);
    memset(d, 0, (size_t)(panels * pb)); // padding columns are zero weights
    unit_ints u;
    for (int64_t p = 0; p < panels; p++) {
        uint8_t *panel = d + p * pb;
        for (int c = 0; c < VK_NR; c++) {
            int64_t col = p * VK_NR + c;
            if (col >= n) break;
            const uint8_t *row = s + (size_t)col * rb; // source row `col`: k values
            if (type == VK_W_F32) {
                for (int64_t kk = 0; kk < k; kk++) {
                    uint32_t w;
                    memcpy(&w, row + kk * 4, 4);
                    w = vk_flush_subnormal_f32(w);
                    memcpy(panel + (kk * VK_NR + c) * 4, &w, 4);
                }
                continue;
            }
            if (!quant) { // F16 (never subnormal as a float) and BF16
                for (int64_t kk = 0; kk < k; kk++) {
                    uint16_t w = vk_load_u16(row + kk * 2);
                    if (type == VK_W_BF16) w = vk_flush_subnormal_bf16(w);
                    memcpy(panel + (kk * VK_NR + c) * 2, &w, 2);
                }
                continue;
            }
            for (int64_t i = 0; i < k / vk_unit_k(type); i++) {
                decode_unit(type, row + i * ggml_block_bytes(type), &u);
                pack_unit(type, &u, panel + i * vk_unit_bytes(type), c);
            }
        }
    }
    return 0;
}

// ggml's own values, operation for operation (no fused operations in this file).
int vk_dequantize_row(int type, int64_t k, const void *src, float *out) {
    if (type < VK_W_F32 || type > VK_W_LAST || k <= 0 || k % vk_block_values(type) != 0) return -1;
    const uint8_t *s = src;
    if (!vk_is_quant(type)) {
        for (int64_t i = 0; i < k; i++) {
            switch (type) {
            case VK_W_F32: memcpy(out + i, s + i * 4, 4); break;
            case VK_W_F16: out[i] = vk_half_to_float(vk_load_u16(s + i * 2)); break;
            default: out[i] = vk_bf16_to_float(vk_load_u16(s + i * 2)); break;
            }
        }
        return 0;
    }
    const int uk = vk_unit_k(type);
    unit_ints u;
    for (int64_t i = 0; i < k / uk; i++) {
        decode_unit(type, s + i * ggml_block_bytes(type), &u);
        const float d = vk_half_to_float(u.d), m = vk_half_to_float(u.m);
        float *o = out + i * uk;
        for (int j = 0; j < uk; j++) {
            switch (type) {
            case VK_W_Q8_0: o[j] = d * (float)u.q[j]; break;
            case VK_W_Q4_0: o[j] = d * (float)(u.q[j] - 8); break;
            case VK_W_Q4_1: o[j] = fmaf(d, (float)u.q[j], m); break;
            case VK_W_Q5_0: o[j] = (float)(u.q[j] - 16) * d; break;
            case VK_W_Q5_1: o[j] = (float)u.q[j] * d + m; break;
            case VK_W_Q4_K:
            case VK_W_Q5_K: o[j] = (d * (float)u.sc[j / 32]) * (float)u.q[j] - m * (float)u.min[j / 32]; break;
            default: o[j] = d * (float)u.sc[j / 16] * (float)(u.q[j] - 32); break; // Q6_K
            }
        }
    }
    return 0;
}

// ---- splitting element-wise work over the pool ---------------------------------------

// Splits `rows` rows into items of about `min_elems` elements or more.
static int64_t rows_per_item(int64_t rows, int64_t width, int64_t min_elems) {
    int64_t r = width >= min_elems ? 1 : (min_elems + width - 1) / width;
    return r > rows ? rows : r;
}

// fn(ctx, r0, r1) over rows [0, rows) of `width` elements, in ranges of about `min_elems`
// elements on the pool (on the caller alone when one range covers them). For work whose
// every element is computed the same way wherever it runs: the split changes no bits.
typedef void (*vk_rows_fn)(void *ctx, int64_t r0, int64_t r1);
typedef struct { vk_rows_fn fn; void *ctx; int64_t rows, per; } rows_job;
static void rows_item(void *ctx, int64_t item, int tid) {
    (void)tid;
    const rows_job *j = ctx;
    int64_t r0 = item * j->per, r1 = r0 + j->per < j->rows ? r0 + j->per : j->rows;
    j->fn(j->ctx, r0, r1);
}
static void parallel_rows(int64_t rows, int64_t width, int64_t min_elems, vk_rows_fn fn, void *ctx) {
    if (rows <= 0 || width <= 0) return;
    int64_t per = rows_per_item(rows, width, min_elems);
    if (per >= rows || vk_effective_threads() == 1) { fn(ctx, 0, rows); return; }
    rows_job j = {.fn = fn, .ctx = ctx, .rows = rows, .per = per};
    vk_parallel((rows + per - 1) / per, rows_item, &j);
}

// x (n) += y (n), element by element.
typedef struct { float *x; const float *y; } add_job;
static void add_range(void *ctx, int64_t i0, int64_t i1) {
    const add_job *j = ctx;
    for (int64_t i = i0; i < i1; i++) j->x[i] = j->x[i] + j->y[i];
}
void vk_add(float *x, const float *y, int64_t n) {
    VK_FP_DEFAULTS;
    add_job j = {.x = x, .y = y};
    parallel_rows(n, 1, 16384, add_range, &j);
}

// ---- linear ---------------------------------------------------------------------

// One weight matrix of a linear job: its columns in units of `up` panels (a whole group of
// VK_GROUP_PANELS, or half of one), split into runs of `upi` units.
typedef struct {
    const uint8_t *w;
    float *y;
    const float *x;    // x, or x scaled for the nibble types
    const float *xsum; // (rows, k / vk_sub_k) for the nibble types, else NULL
    int64_t n, pb, units, upi;
    int type, up;
} linear_target;

typedef struct {
    const vk_ops *ops;
    int64_t rows, k, row_chunk, n_row_chunks;
    int count;
    linear_target t[VK_LINEAR_MAX];
    int64_t first_item[VK_LINEAR_MAX + 1]; // items of target i: first_item[i] ..< first_item[i + 1]
} linear_job;

// One item: a run of column units of one target, for one chunk of rows.
static void linear_item(void *ctx, int64_t item, int tid) {
    const linear_job *j = ctx;
    int ti = 0;
    while (item >= j->first_item[ti + 1]) ti++;
    const linear_target *t = &j->t[ti];
    const int64_t local = item - j->first_item[ti];
    int64_t ui = local / j->n_row_chunks, rc = local % j->n_row_chunks;
    int64_t r0 = rc * j->row_chunk;
    int64_t rows = j->rows - r0 < j->row_chunk ? j->rows - r0 : j->row_chunk;
    float *scratch = t->type >= VK_W_Q8_0 && rows > 1 ? vk_scratch(tid, j->k * VK_GROUP_COLS) : NULL;
    const int64_t u_end = (ui + 1) * t->upi < t->units ? (ui + 1) * t->upi : t->units;
    const int64_t unit_cols = t->up * VK_NR;
    for (int64_t u = ui * t->upi; u < u_end; u++) {
        int64_t c0 = u * unit_cols;
        const uint8_t *unit = t->w + u * t->up * t->pb;
        j->ops->linear_group(t->x + r0 * j->k, j->k, rows, unit, t->pb, t->type, j->k,
                             t->y + r0 * t->n + c0, t->n, t->n - c0 < unit_cols ? t->n - c0 : unit_cols,
                             t->xsum ? t->xsum + r0 * (j->k / vk_sub_k(t->type)) : NULL, scratch,
                             u + 1 < u_end ? unit + t->up * t->pb : NULL);
    }
}

// The busiest thread's share, in panels, of `units` units of `up` panels in `chunks` row
// chunks dealt out evenly over the threads.
static int64_t busiest_panels(int64_t units, int64_t chunks, int64_t threads, int up) {
    return (units * chunks + threads - 1) / threads * up;
}

// The scaled x and block sums of x for the nibble types, per calling thread: grows to the
// largest size seen (freed when the thread ends), so a forward step does not allocate.
static pthread_key_t q4_x_key;
static pthread_once_t q4_x_once = PTHREAD_ONCE_INIT;
typedef struct { float *p; int64_t len; } q4_x_buffer;
static void q4_x_free(void *b) { free(((q4_x_buffer *)b)->p); free(b); }
static void q4_x_key_init(void) { pthread_key_create(&q4_x_key, q4_x_free); }

static float *q4_x_scratch(int64_t floats) {
    pthread_once(&q4_x_once, q4_x_key_init);
    q4_x_buffer *b = pthread_getspecific(q4_x_key);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b) return NULL;
        pthread_setspecific(q4_x_key, b);
    }
    if (b->len < floats) {
        free(b->p);
        b->len = floats + 1024;
        b->p = malloc((size_t)b->len * 4);
        if (!b->p) { b->len = 0; return NULL; }
    }
    return b->p;
}

// The nibble types' x, prepared by the current path (ops->q4_prep_rows).
typedef struct { const vk_ops *ops; const float *x; float *xs, *xsum32, *xsum16; int64_t k; } q4_prep_job;
static void q4_prep_range(void *ctx, int64_t r0, int64_t r1) {
    const q4_prep_job *j = ctx;
    j->ops->q4_prep_rows(j->x, j->xs, j->xsum32, j->xsum16, j->k, r0, r1);
}

void vk_linear(const float *x, int64_t rows, const void *packed, int type,
               int64_t k, int64_t n, float *y) {
    const vk_linear_target t = {.packed = packed, .type = type, .n = n, .y = y};
    vk_linear_many(x, rows, k, &t, 1);
}

void vk_linear_many(const float *x, int64_t rows, int64_t k, const vk_linear_target *targets, int count) {
    VK_FP_DEFAULTS;
    if (rows <= 0 || count <= 0) return;
    if (count > VK_LINEAR_MAX) abort(); // a caller's bug: the header states the limit
    // Items are (target, run of column units, chunk of rows); the row chunk is a multiple
    // of every tile height (12 and 6) so only the last chunk has a short tile. Few column
    // groups in all (N = 192 is 3 groups): smaller row chunks so that every thread gets
    // work. Any split gives the same bits.
    // Chunks of up to 264 rows, of even size: a chunk converts each group's quantised
    // values once (linear_group_t), so longer chunks convert less often. Measured on the
    // AMD EPYC VM, 2 threads, weights in cache, % of the fma peak, 96 -> 264 rows:
    // M = 512 Q4_K 2048x640 83 -> 85-86, Q6_K 76-77 -> 78-81, Q5_0 2048x640 84 -> 88,
    // Q4_1 1536x576 85 -> 89; M = 128 Q6_K 66-68 -> 73-75, Q4_1 576x576 77-79 -> 81-83;
    // 640x2048 and f32 within the noise. Uneven halves (360 + 152) lost 5-7 points.
    int64_t chunk = 264, groups = 0;
    const int64_t n_chunks = (rows + chunk - 1) / chunk;
    chunk = ((rows + n_chunks - 1) / n_chunks + 11) / 12 * 12;
    for (int i = 0; i < count; i++) groups += n_groups(targets[i].n);
    const int64_t threads = vk_effective_threads(), want = 4 * threads;
    if (groups * ((rows + chunk - 1) / chunk) < want && rows > 12) {
        int64_t per = (groups + want - 1) / groups; // chunks wanted per group
        chunk = ((rows + per - 1) / per + 11) / 12 * 12;
    }
    linear_job j = {.ops = vk_current_ops(), .rows = rows, .k = k, .row_chunk = chunk,
                    .n_row_chunks = (rows + chunk - 1) / chunk, .count = count};
    // The nibble types (all quantised types but Q8_0): the sub-block sums of x, which the
    // offsets (Q4_1 m, Q4_0 -8d, ...) multiply, of 32 values (rows, k / 32) and for Q6_K
    // of 16 (rows, k / 16), and x scaled by 2^(20 - bit) per nibble position (rows, k),
    // which the kernels read in place of x (vk_q4_x_scale): computed once per call, here,
    // for all the targets that need them (Q, K and V share one x).
    int need32 = 0, need16 = 0;
    for (int i = 0; i < count; i++) {
        const int ty = targets[i].type;
        if (vk_is_quant(ty) && ty != VK_W_Q8_0) { if (vk_sub_k(ty) == 16) need16 = 1; else need32 = 1; }
    }
    float *xs = NULL, *xsum32 = NULL, *xsum16 = NULL;
    if (need32 || need16) {
        xs = q4_x_scratch(rows * (k + k / 32 + k / 16));
        if (!xs) abort(); // out of memory for a scratch row: nothing sensible is left to do
        if (need32) xsum32 = xs + rows * k;
        if (need16) xsum16 = xs + rows * (k + k / 32);
        q4_prep_job pj = {.ops = j.ops, .x = x, .xs = xs, .xsum32 = xsum32, .xsum16 = xsum16, .k = k};
        parallel_rows(rows, k, 16384, q4_prep_range, &pj); // rows of a prefill on every core
    }
    j.first_item[0] = 0;
    for (int i = 0; i < count; i++) {
        const int ty = targets[i].type;
        const int nibble = vk_is_quant(ty) && ty != VK_W_Q8_0;
        linear_target *t = &j.t[i];
        const int64_t groups_t = n_groups(targets[i].n), halves = (targets[i].n + 2 * VK_NR - 1) / (2 * VK_NR);
        *t = (linear_target){.w = targets[i].packed, .y = targets[i].y, .n = targets[i].n, .type = ty,
                             .pb = vk_panel_bytes(ty, k), .units = groups_t, .up = VK_GROUP_PANELS, .upi = 1,
                             .x = nibble ? xs : x, .xsum = nibble ? (vk_sub_k(ty) == 16 ? xsum16 : xsum32) : NULL};
        // Half groups where whole ones leave a thread with more (SmolLM2's 576 columns are 9
        // groups: 5 + 4 on two threads; 18 halves: 9 + 9). Any split gives the same bits.
        if (busiest_panels(halves, j.n_row_chunks, threads, 2) < busiest_panels(groups_t, j.n_row_chunks, threads, 4)) {
            t->units = halves;
            t->up = 2;
        }
        // Each item is a run of consecutive units, so that a thread reads one forward
        // stream of weights: one row streams them once (measured with two threads from DRAM:
        // Q4_1 22-23 -> 28-30 GB/s, Q8_0 28 -> 27-33), and with several rows a thread reads
        // the next unit of its run from DRAM while it computes the current one
        // (linear_group's `next`); before, a group's weights came in while nothing else ran
        // (one AMD Zen 5 core, Q4_1 576x1536 from DRAM, µs a call: M = 4 82 -> 69, M = 16
        // 182 -> 148, two cores 101 -> 84, M = 32 296 -> 264, M = 64 516 -> 494; in cache:
        // 40, 138, 250, 470). One row chunk (decode, short prompts): runs of equal length,
        // one per thread (two where there are many groups), so that the threads finish
        // together (10 groups on 2 threads: 5 + 5, where runs of 2 gave one thread 6 and the
        // other 4). Several row chunks (a prefill): shorter runs, so that the (run, chunk)
        // items still number about four per thread. Any split gives the same bits.
        if (j.n_row_chunks == 1) {
            const int64_t runs = groups_t < 8 * threads ? threads : 2 * threads;
            t->upi = (t->units + runs - 1) / runs;
        } else {
            int64_t by_threads = t->units / (2 * threads), by_items = t->units * j.n_row_chunks / (4 * threads);
            t->upi = by_threads < by_items ? by_threads : by_items;
        }
        if (t->upi < 1) t->upi = 1;
        j.first_item[i + 1] = j.first_item[i] + (t->units + t->upi - 1) / t->upi * j.n_row_chunks;
    }
    vk_parallel(j.first_item[count], linear_item, &j);
}

// ---- row-wise kernels -----------------------------------------------------------


typedef struct {
    const vk_ops *ops;
    const float *x, *w;
    float *y;
    int64_t rows, dim, per_item;
    float eps;
} row_job;

static void rmsnorm_item(void *ctx, int64_t item, int tid) {
    (void)tid;
    const row_job *j = ctx;
    for (int64_t r = item * j->per_item; r < j->rows && r < (item + 1) * j->per_item; r++)
        j->ops->rmsnorm_row(j->x + r * j->dim, j->w, j->y + r * j->dim, j->dim, j->eps);
}

void vk_rmsnorm(const float *x, const float *w, float *y, int64_t rows,
                int64_t dim, float eps) {
    VK_FP_DEFAULTS;
    if (rows <= 0) return;
    row_job j = {.ops = vk_current_ops(), .x = x, .w = w, .y = y, .rows = rows,
                 .dim = dim, .eps = eps, .per_item = rows_per_item(rows, dim, 16384)};
    vk_parallel((rows + j.per_item - 1) / j.per_item, rmsnorm_item, &j);
}

static void log_softmax_item(void *ctx, int64_t item, int tid) {
    (void)tid;
    const row_job *j = ctx;
    for (int64_t r = item * j->per_item; r < j->rows && r < (item + 1) * j->per_item; r++)
        j->ops->log_softmax_row(j->x + r * j->dim, j->y + r * j->dim, j->dim);
}

void vk_log_softmax(const float *x, float *y, int64_t rows, int64_t n) {
    VK_FP_DEFAULTS;
    if (rows <= 0) return;
    row_job j = {.ops = vk_current_ops(), .x = x, .y = y, .rows = rows, .dim = n,
                 .per_item = rows_per_item(rows, n, 16384)};
    vk_parallel((rows + j.per_item - 1) / j.per_item, log_softmax_item, &j);
}

// The gated activations (out = act(gate) * up), split over the pool in fixed spans.
typedef void (*vk_glu_fn)(const float *gate, const float *up, float *out, int64_t n);
typedef struct {
    vk_glu_fn fn;
    const float *gate, *up;
    float *out;
    int64_t count, per_item;
} glu_job;

static void glu_item(void *ctx, int64_t item, int tid) {
    (void)tid;
    const glu_job *j = ctx;
    int64_t i0 = item * j->per_item;
    int64_t c = j->count - i0 < j->per_item ? j->count - i0 : j->per_item;
    j->fn(j->gate + i0, j->up + i0, j->out + i0, c);
}

static void parallel_glu(vk_glu_fn fn, const float *gate, const float *up, float *out, int64_t count) {
    if (count <= 0) return;
    glu_job j = {.fn = fn, .gate = gate, .up = up, .out = out, .count = count, .per_item = 8192};
    vk_parallel((count + j.per_item - 1) / j.per_item, glu_item, &j);
}

void vk_swiglu(const float *gate, const float *up, float *out, int64_t count) {
    VK_FP_DEFAULTS;
    parallel_glu(vk_current_ops()->swiglu, gate, up, out, count);
}

void vk_geglu(const float *gate, const float *up, float *out, int64_t count) {
    VK_FP_DEFAULTS;
    parallel_glu(vk_current_ops()->geglu, gate, up, out, count);
}

typedef struct {
    float *x;
    int64_t heads, head_dim;
    const int32_t *positions;
    const float *cos_tab, *sin_tab;
    int mode;
} rope_job;

static void rope_rows(void *ctx, int64_t r0, int64_t r1) {
    const rope_job *j = ctx;
    const int64_t half = j->head_dim / 2;
    for (int64_t r = r0; r < r1; r++) {
        const float *c = j->cos_tab + (int64_t)j->positions[r] * half; // (half)
        const float *s = j->sin_tab + (int64_t)j->positions[r] * half; // (half)
        for (int64_t h = 0; h < j->heads; h++) {
            float *v = j->x + (r * j->heads + h) * j->head_dim; // (head_dim)
            const int64_t step = j->mode == VK_ROPE_NEOX ? 1 : 2;   // first element of pair i
            const int64_t other = j->mode == VK_ROPE_NEOX ? half : 1; // its partner, this far on
            for (int64_t i = 0; i < half; i++) {
                float x0 = v[step * i], x1 = v[step * i + other];
                v[step * i] = x0 * c[i] - x1 * s[i];
                v[step * i + other] = x0 * s[i] + x1 * c[i];
            }
        }
    }
}

void vk_rope(float *x, int64_t rows, int64_t heads, int64_t head_dim,
             const int32_t *positions, const float *cos_tab,
             const float *sin_tab, int mode) {
    VK_FP_DEFAULTS;
    // Element-wise and cheap: the same scalar code on every path, rows split over the pool.
    rope_job j = {.x = x, .heads = heads, .head_dim = head_dim, .positions = positions,
                  .cos_tab = cos_tab, .sin_tab = sin_tab, .mode = mode};
    parallel_rows(rows, heads * head_dim, 16384, rope_rows, &j);
}

int64_t vk_argmax(const float *x, int64_t n) {
    VK_FP_DEFAULTS;
    if (n <= 0) return 0;
    return vk_current_ops()->argmax(x, n);
}

void vk_exp_array(const float *x, float *y, int64_t n) {
    VK_FP_DEFAULTS;
    vk_current_ops()->exp_array(x, y, n);
}
void vk_log_array(const float *x, float *y, int64_t n) {
    VK_FP_DEFAULTS;
    vk_current_ops()->log_array(x, y, n);
}

// ---- half conversion ---------------------------------------------------------------

// float -> half, round to nearest even; NaN keeps its top payload bits and
// becomes quiet (as the F16C instruction does).
uint16_t vk_f32_to_f16(float f) {
    uint32_t x = vk_float_to_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) { // inf or NaN
        if (ax == 0x7f800000u) return sign | 0x7c00u;
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    }
    if (ax >= 0x477ff000u) return sign | 0x7c00u; // rounds to >= 65536: inf
    if (ax < 0x38800000u) { // below 2^-14: subnormal half (or zero)
        if (ax < 0x33000000u) return sign; // below half of the smallest subnormal
        uint32_t man = (ax & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(ax >> 23); // 14..24 bits of shift to the 2^-24 grid
        uint32_t q = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t e = (ax >> 23) - 112; // rebias 127 -> 15
    uint32_t man = ax & 0x7fffffu;
    uint32_t h = (e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++; // may carry into the exponent: right
    return (uint16_t)(sign | h);
}

float vk_f16_to_f32(uint16_t h) { return vk_half_to_float(h); }

// ---- paged KV memory and attention -------------------------------------------------

size_t vk_kv_bytes(const vk_kv_layout *kv) {
    size_t es = kv->kv_type == VK_KV_F16 ? 2 : 4;
    size_t per_block = (size_t)kv->n_layers * 2 * (size_t)kv->block_size *
                       (size_t)kv->n_kv_heads * (size_t)kv->head_dim * es;
    return per_block * (size_t)kv->n_blocks + 64; // 64 spare bytes; no kernel relies on them
}

typedef struct {
    const vk_kv_layout *kv;
    int32_t layer;
    const float *k, *v;
    const int32_t *block_tables, *table_offsets, *positions;
} kv_write_job;

static void kv_write_rows(void *ctx, int64_t r0, int64_t r1) {
    const kv_write_job *j = ctx;
    const vk_kv_layout *kv = j->kv;
    const int64_t bs = kv->block_size, width = (int64_t)kv->n_kv_heads * kv->head_dim;
    for (int64_t r = r0; r < r1; r++) {
        const int32_t *table = j->block_tables + j->table_offsets[r];
        int64_t p = j->positions[r];
        int64_t at = vk_kv_block_offset(kv, table[p / bs], j->layer) + (p % bs) * width;
        int64_t vat = at + bs * width;
        const float *kr = j->k + r * width, *vr = j->v + r * width; // (width)
        if (kv->kv_type == VK_KV_F16) {
            uint16_t *base = kv->base;
            for (int64_t i = 0; i < width; i++) {
                base[at + i] = vk_f32_to_f16(kr[i]);
                base[vat + i] = vk_f32_to_f16(vr[i]);
            }
        } else {
            float *base = kv->base;
            memcpy(base + at, kr, (size_t)width * 4);
            memcpy(base + vat, vr, (size_t)width * 4);
        }
    }
}

void vk_kv_write(const vk_kv_layout *kv, int32_t layer, const float *k,
                 const float *v, int64_t rows, const int32_t *block_tables,
                 const int32_t *table_offsets, const int32_t *positions) {
    VK_FP_DEFAULTS;
    kv_write_job j = {.kv = kv, .layer = layer, .k = k, .v = v, .block_tables = block_tables,
                      .table_offsets = table_offsets, .positions = positions};
    parallel_rows(rows, 2 * (int64_t)kv->n_kv_heads * kv->head_dim, 16384, kv_write_rows, &j);
}

typedef struct {
    const vk_ops *ops;
    const vk_kv_layout *kv;
    const float *q;
    float *out;
    const int32_t *block_tables, *table_offsets, *positions;
    int32_t layer, n_heads, group; // group: query heads per KV head
    int32_t window;                // 0: every earlier key; else the last `window` keys
    float scale;
    int64_t rows, tile; // tile: rows of an item
} attention_job;

// One item: one KV head, with the query heads that share it (their scores then share the
// loaded keys; each output keeps its order), for a tile of rows; the tile's rows of one
// sequence go together (their keys are transposed once for all of them).
static void attention_item(void *ctx, int64_t item, int tid) {
    const attention_job *j = ctx;
    const int32_t n_kv = j->kv->n_kv_heads;
    const int64_t g = item % n_kv, r0 = item / n_kv * j->tile;
    const int64_t r1 = r0 + j->tile < j->rows ? r0 + j->tile : j->rows;
    const int64_t hd = j->kv->head_dim, h0 = g * j->group;
    const int32_t *to = j->table_offsets;
    for (int64_t r = r0; r < r1;) {
        int64_t end = r + 1, most = j->positions[r];
        while (end < r1 && to[end] == to[r]) {
            if (j->positions[end] > most) most = j->positions[end];
            end++;
        }
        float *scratch = vk_scratch(tid, vk_attention_scratch(end - r, j->group, most, hd));
        if (!scratch) abort(); // out of memory for a row of scores: nothing sensible is left to do
        // The only row of its sequence in the batch (a decode step): its keys likely come from
        // DRAM, so they are read ahead; a prefill chunk's rows find them in the cache.
        const int alone = end - r == 1 && (r == 0 || to[r - 1] != to[r]) && (r + 1 == j->rows || to[r + 1] != to[r]);
        j->ops->attention_rows(j->kv, j->layer, j->q + (r * j->n_heads + h0) * hd, (int64_t)j->n_heads * hd,
                               j->out + (r * j->n_heads + h0) * hd, (int64_t)j->n_heads * hd, (int32_t)(end - r),
                               j->group, j->block_tables + to[r], j->positions + r, j->window, (int32_t)g,
                               j->scale, scratch, alone);
        r = end;
    }
}

void vk_attention(const vk_kv_layout *kv, int32_t layer, const float *q,
                  float *out, int64_t rows, int32_t n_heads,
                  const int32_t *block_tables, const int32_t *table_offsets,
                  const int32_t *positions, float scale, int32_t window) {
    VK_FP_DEFAULTS;
    if (rows <= 0) return;
    // Tiles of up to VK_ATTN_ROWS rows where there are enough rows for about 8 items per
    // thread (a prefill); a decode batch's rows (each of its own sequence) stay an item each
    // where there are few. Any tiling gives the same bits.
    const int64_t per = rows * kv->n_kv_heads / (8 * vk_effective_threads());
    attention_job j = {.ops = vk_current_ops(), .kv = kv, .q = q, .out = out,
                       .block_tables = block_tables, .table_offsets = table_offsets,
                       .positions = positions, .layer = layer, .n_heads = n_heads,
                       .group = n_heads / kv->n_kv_heads, .window = window, .scale = scale, .rows = rows,
                       .tile = per < 1 ? 1 : per > VK_ATTN_ROWS ? VK_ATTN_ROWS : per};
    vk_parallel((rows + j.tile - 1) / j.tile * kv->n_kv_heads, attention_item, &j);
}
