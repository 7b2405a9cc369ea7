// The portable reference path: plain scalar loops written straight from
// docs/design/NUMERICS.md. These define the bits; the vector paths must match them.
#pragma clang fp contract(off)
#pragma STDC FP_CONTRACT OFF

#include "vk_internal.h"
#include "vk_math.h"
#include <math.h>

// ---- exp / log (shared algorithm in vk_math.h) ----------------------------

float vk_expf(float x) { return vk_exp_scalar(x); }
float vk_logf(float x) { return vk_log_scalar(x); }

static void exp_array(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = vk_exp_scalar(x[i]);
}

static void log_array(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = vk_log_scalar(x[i]);
}

// ---- linear ---------------------------------------------------------------

// Weight w(c, kk) of an unquantised panel (F32, F16, BF16): column c (0..15), k index kk.
static float panel_weight(const uint8_t *panel, int type, int64_t kk, int c) {
    switch (type) {
    case VK_W_F32: {
        float w;
        memcpy(&w, panel + (kk * VK_NR + c) * 4, 4);
        return w;
    }
    case VK_W_F16: return vk_half_to_float(vk_load_u16(panel + (kk * VK_NR + c) * 2));
    case VK_W_BF16: return vk_bf16_to_float(vk_load_u16(panel + (kk * VK_NR + c) * 2));
    default: return 0.0f;
    }
}

// The factors of sub-block sb (vk_sub_k values) of column c of a quantised
// panel: of its block sum (Q8_0: d; the others d' * 2^-20, since their sum is
// 2^20 times the plain one; d' = d, or d * sc for the K-quants) and of the block
// sum of x (Q4_0: -8d; Q5_0: -16d; Q4_1, Q5_1: m; Q4_K, Q5_K: dmin * -m;
// Q6_K: -32 d sc; Q8_0: none). Every product here is exact.
static void sub_factors(const uint8_t *panel, int type, int64_t sb, int c, float *d, float *m) {
    const int sub = vk_sub_k(type);
    const uint8_t *h = vk_unit_at(type, panel, sb * sub / VK_QBLOCK);
    const float dh = vk_half_to_float(vk_load_u16(h + c * 2));
    const int64_t isb = sb % (vk_unit_k(type) / sub); // sub-block within the unit
    switch (type) {
    case VK_W_Q8_0: *d = dh; *m = 0.0f; return;
    case VK_W_Q4_0: *d = dh * VK_Q4_SUM_SCALE; *m = -8.0f * dh; return;
    case VK_W_Q5_0: *d = dh * VK_Q4_SUM_SCALE; *m = -16.0f * dh; return;
    case VK_W_Q4_1:
    case VK_W_Q5_1:
        *d = dh * VK_Q4_SUM_SCALE;
        *m = vk_half_to_float(vk_load_u16(h + VK_NR * 2 + c * 2));
        return;
    case VK_W_Q4_K:
    case VK_W_Q5_K: {
        const float dmin = vk_half_to_float(vk_load_u16(h + VK_NR * 2 + c * 2));
        *d = (dh * (float)h[VK_NR * 4 + isb * VK_NR + c]) * VK_Q4_SUM_SCALE;
        *m = dmin * (float)(int8_t)h[VK_NR * 4 + 8 * VK_NR + isb * VK_NR + c];
        return;
    }
    default: { // Q6_K
        const float ds = dh * (float)(int8_t)h[VK_NR * 2 + isb * VK_NR + c];
        *d = ds * VK_Q4_SUM_SCALE;
        *m = -32.0f * ds;
        return;
    }
    }
}

// The values sub-block sb of column c multiplies x by: Q8_0 q as a float; the
// others q * 2^bit (vk_q4_value plus the high bits), with x pre-scaled by
// 2^(20 - bit) by the caller.
static void sub_values(const uint8_t *panel, int type, int64_t sb, int c, float *q) {
    const int sub = vk_sub_k(type);
    const int64_t b = sb * sub / VK_QBLOCK;         // the 32-block
    const int g0 = (int)(sb * sub % VK_QBLOCK) / 8; // its first group of 8
    const uint8_t *v = vk_values_at(type, panel, b);
    if (type == VK_W_Q8_0) {
        for (int j = 0; j < VK_QBLOCK; j++) q[j] = (float)(int8_t)v[j * VK_NR + c];
        return;
    }
    for (int g = g0; g < g0 + sub / 8; g++) {
        uint32_t dword, high = 0;
        memcpy(&dword, v + (g * VK_NR + c) * 4, 4);
        if (vk_high_dwords(type)) memcpy(&high, v + ((4 + (type == VK_W_Q6_K ? g / 2 : 0)) * VK_NR + c) * 4, 4);
        for (int j = 0; j < 8; j++) {
            uint32_t bits = (j < 6 ? dword : dword >> 8) & (15u << vk_q4_bit(j));
            if (vk_high_dwords(type)) bits |= vk_high_part(type, high, g, j);
            q[(g - g0) * 8 + j] = (float)(int32_t)bits;
        }
    }
}

// Unquantised: y[r][n] = sum over k in order of fma(x[r][k], w(n, k), acc), acc from 0.
// Quantised, block-factored: acc from 0; per sub-block b in order (vk_sub_k values):
// s = sum over its k in order of fma(x, q, s) from 0; acc = fma(d, s, acc); and for
// all but Q8_0 then acc = fma(m, xsum[r][b], acc), xsum being the sub-block sum of x
// (vk_block_sum, vk_block_sum16). Over a sub-block, sum x*(d*q + m) = d * sum x*q + m * sum x.
// For all but Q8_0, x and q here are the scaled forms of sub_values: their product is 2^20 x*q.
static void linear_group(const float *x, int64_t ldx, int64_t rows,
                         const uint8_t *group, int64_t panel_bytes, int type,
                         int64_t k, float *y, int64_t ldy, int64_t ncols,
                         const float *xsum, float *scratch, const uint8_t *next) {
    (void)scratch;
    (void)next;
    const int quant = vk_is_quant(type);
    const int sub = quant ? vk_sub_k(type) : 1;
    const int64_t nb = k / sub;
    for (int p = 0; p < VK_GROUP_PANELS; p++) {
        int64_t c0 = (int64_t)p * VK_NR;
        if (c0 >= ncols) break;
        int64_t nc = ncols - c0 < VK_NR ? ncols - c0 : VK_NR;
        const uint8_t *panel = group + p * panel_bytes;
        for (int64_t r = 0; r < rows; r++) {
            const float *xr = x + r * ldx; // (k)
            for (int c = 0; c < nc; c++) {
                float acc = 0.0f;
                if (!quant) {
                    for (int64_t kk = 0; kk < k; kk++)
                        acc = fmaf(xr[kk], panel_weight(panel, type, kk, c), acc);
                } else {
                    for (int64_t b = 0; b < nb; b++) {
                        float d, m, q[VK_QBLOCK];
                        sub_factors(panel, type, b, c, &d, &m);
                        sub_values(panel, type, b, c, q);
                        float s = 0.0f;
                        for (int j = 0; j < sub; j++) s = fmaf(xr[b * sub + j], q[j], s);
                        acc = fmaf(d, s, acc);
                        if (type != VK_W_Q8_0) acc = fmaf(m, xsum[r * nb + b], acc);
                    }
                }
                y[r * ldy + c0 + c] = acc;
            }
        }
    }
}

// ---- 16-lane sums ----------------------------------------------------------

// Folds 16 lanes in the fixed tree 8, 4, 2, 1.
static float fold16(float lanes[16]) {
    for (int w = 8; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) lanes[i] = lanes[i] + lanes[i + w];
    return lanes[0];
}

// ---- RMSNorm ----------------------------------------------------------------

static void rmsnorm_row(const float *x, const float *w, float *y, int64_t dim,
                        float eps) {
    float lanes[16] = {0};
    for (int64_t i = 0; i < dim; i++)
        lanes[i % 16] = fmaf(x[i], x[i], lanes[i % 16]);
    float scale = vk_rms_scale(fold16(lanes), dim, eps);
    for (int64_t i = 0; i < dim; i++) y[i] = (x[i] * scale) * w[i];
}

// ---- SwiGLU -------------------------------------------------------------------

static void swiglu(const float *gate, const float *up, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = (g / (1.0f + vk_exp_scalar(-g))) * up[i];
    }
}

// GELU's tanh form as x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3): the same value as
// 0.5 x (1 + tanh(u)), with the project's exp (exp(large) = inf gives g / inf = 0).
static void geglu(const float *gate, const float *up, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        float inner = g + VK_GELU_C * ((g * g) * g);
        out[i] = (g / (1.0f + vk_exp_scalar(VK_GELU_K * inner))) * up[i];
    }
}

// ---- max, log-softmax, argmax ---------------------------------------------

// Largest value, NaN ignored (-inf if none); -0 is made +0 so that which of
// two equal zeros won cannot matter downstream.
static float max_value(const float *x, int64_t n) {
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (x[i] > m) m = x[i];
    return m + 0.0f;
}

static void log_softmax_row(const float *x, float *y, int64_t n) {
    float m = max_value(x, n);
    float lanes[16] = {0};
    for (int64_t i = 0; i < n; i++)
        lanes[i % 16] = lanes[i % 16] + vk_exp_scalar(x[i] - m);
    float lz = vk_log_scalar(fold16(lanes));
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] - m) - lz;
}

// The lowest i with x[i] == max (NaN ignored); 0 if every value is NaN.
static int64_t argmax(const float *x, int64_t n) {
    float m = max_value(x, n);
    for (int64_t i = 0; i < n; i++)
        if (x[i] == m) return i;
    return 0;
}

static void q4_prep_rows(const float *x, float *xs, float *xsum32, float *xsum16, int64_t k,
                         int64_t r0, int64_t r1) {
    float scale[8];
    for (int j = 0; j < 8; j++) scale[j] = vk_q4_x_scale(j);
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * k;
        if (xsum32)
            for (int64_t b = 0; b < k / 32; b++) xsum32[r * (k / 32) + b] = vk_block_sum(xr + b * 32);
        if (xsum16)
            for (int64_t b = 0; b < k / 16; b++) xsum16[r * (k / 16) + b] = vk_block_sum16(xr + b * 16);
        for (int64_t i = 0; i < k; i += 8) // k is a multiple of 32: nibble j of k = i + j
            for (int j = 0; j < 8; j++) xs[r * k + i + j] = xr[i + j] * scale[j];
    }
}

// ---- attention --------------------------------------------------------------

static float kv_load(const vk_kv_layout *kv, int64_t element) {
    if (kv->kv_type == VK_KV_F16)
        return vk_half_to_float(((const uint16_t *)kv->base)[element]);
    return ((const float *)kv->base)[element];
}

static void attention_head(const vk_kv_layout *kv, int32_t layer,
                           const float *q, float *out, const int32_t *table,
                           int32_t first, int32_t pos, int32_t kv_head, float scale,
                           float *scratch) {
    const int64_t bs = kv->block_size, hd = kv->head_dim;
    const int64_t stride = (int64_t)kv->n_kv_heads * hd; // one token's K (or V)
    const int64_t v_off = bs * stride;                    // V after K in a block
    float *s = scratch; // (pos + 1) scores, then weights e_j (j from `first`)
    // s_j = dot(q, k_j) * scale, dot sequential over the head dimension
    for (int64_t j = first; j <= pos; j++) {
        int64_t k0 = vk_kv_block_offset(kv, table[j / bs], layer) +
                     (j % bs) * stride + kv_head * hd;
        float acc = 0.0f;
        for (int64_t d = 0; d < hd; d++) acc = fmaf(q[d], kv_load(kv, k0 + d), acc);
        s[j] = acc * scale;
    }
    float m = max_value(s + first, pos + 1 - first);
    float lanes[16] = {0}; // key j goes to lane j % 16
    for (int64_t j = first; j <= pos; j++) {
        s[j] = vk_attention_weight(s[j] - m);
        lanes[j % 16] = lanes[j % 16] + s[j];
    }
    float z = fold16(lanes);
    for (int64_t d = 0; d < hd; d++) out[d] = 0.0f;
    for (int64_t j = first; j <= pos; j++) {
        int64_t v0 = vk_kv_block_offset(kv, table[j / bs], layer) + v_off +
                     (j % bs) * stride + kv_head * hd;
        for (int64_t d = 0; d < hd; d++) out[d] = fmaf(s[j], kv_load(kv, v0 + d), out[d]);
    }
    for (int64_t d = 0; d < hd; d++) out[d] = out[d] / z;
}

static void attention_rows(const vk_kv_layout *kv, int32_t layer, const float *q, int64_t q_stride,
                           float *out, int64_t out_stride, int32_t n_rows, int32_t n_q,
                           const int32_t *table, const int32_t *positions, int32_t window,
                           int32_t kv_head, float scale, float *scratch, int prefetch) {
    (void)prefetch;
    const int64_t hd = kv->head_dim;
    for (int32_t i = 0; i < n_rows; i++) {
        const int32_t pos = positions[i], first = window > 0 && pos >= window ? pos - window + 1 : 0;
        for (int32_t h = 0; h < n_q; h++)
            attention_head(kv, layer, q + i * q_stride + h * hd, out + i * out_stride + h * hd, table, first, pos,
                           kv_head, scale, scratch);
    }
}

const vk_ops vk_ops_portable = {
    .linear_group = linear_group,
    .q4_prep_rows = q4_prep_rows,
    .rmsnorm_row = rmsnorm_row,
    .swiglu = swiglu,
    .geglu = geglu,
    .log_softmax_row = log_softmax_row,
    .argmax = argmax,
    .exp_array = exp_array,
    .log_array = log_array,
    .attention_rows = attention_rows,
};
