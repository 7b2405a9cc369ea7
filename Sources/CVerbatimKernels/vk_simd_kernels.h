// The optimised kernels, written once against vk_simd.h and included by
// vk_avx512.c and vk_avx2.c (each compiles them for its own instruction set).
// Each output element is reduced in exactly the order of vk_portable.c; only
// independent outputs run side by side (SIMD lanes = columns or keys, register
// blocks = rows).
//
// The including file defines:
//   VK_FEW_ROWS      the most rows (1 or 8) that walk the weights together as one row does
//   VK_TILE_MR       rows of the big register tile
//   VK_TILE_NP(mr)   panels (of 16 columns) per tile for a tile of mr rows
//   VK_OPS_NAME      name of the vk_ops table to define
#include "vk_internal.h"
#include "vk_math.h"
#include "vk_simd.h"

#define VK_MAX_NP 4

// ---- linear -------------------------------------------------------------

// Loads one k's 16 weights of one panel, dequantised (F32/F16/BF16 only).
VKI vf load_w_plain(const int type, const uint8_t *panel, int64_t kk) {
    if (type == VK_W_F32) return v_load((const float *)panel + kk * VK_NR);
    if (type == VK_W_F16) return v_load_f16(panel + kk * VK_NR * 2);
    return v_load_bf16(panel + kk * VK_NR * 2);
}

// acc[r][p] += x[r][kk] * w[p] for the tile's rows and panels, in that order.
#define TILE_FMA(KK, W)                                                            \
    do {                                                                           \
        _Pragma("clang loop unroll(full)") for (int r = 0; r < mr; r++) {          \
            vf xb = v_set1(x[r * ldx + (KK)]);                                     \
            _Pragma("clang loop unroll(full)") for (int p = 0; p < np; p++)        \
                acc[r][p] = v_fma(xb, (W)[p], acc[r][p]);                          \
        }                                                                          \
    } while (0)

// The factors of sub-block isb (of its unit, header `h`) for one panel, as
// vk_portable.c's sub_factors: of its block sum (Q8_0: d; the others d' * 2^-20
// with d' = d, or d * sc for the K-quants) and of the block sum of x (Q4_0: -8d;
// Q5_0: -16d; Q4_1, Q5_1: m; Q4_K, Q5_K: dmin * -m; Q6_K: -32 d sc). All exact.
VKI vf sub_d(const int type, const uint8_t *h, int64_t isb) {
    vf d = v_load_f16(h);
    switch (type) {
    case VK_W_Q8_0: return d;
    case VK_W_Q4_K:
    case VK_W_Q5_K: return v_mul(v_mul(d, v_from_int(vi_load_i8(h + VK_NR * 4 + isb * VK_NR))), v_set1(VK_Q4_SUM_SCALE));
    case VK_W_Q6_K: return v_mul(v_mul(d, v_from_int(vi_load_i8(h + VK_NR * 2 + isb * VK_NR))), v_set1(VK_Q4_SUM_SCALE));
    default: return v_mul(d, v_set1(VK_Q4_SUM_SCALE));
    }
}
VKI vf sub_m(const int type, const uint8_t *h, int64_t isb) {
    switch (type) {
    case VK_W_Q4_1:
    case VK_W_Q5_1: return v_load_f16(h + VK_NR * 2);
    case VK_W_Q4_K:
    case VK_W_Q5_K: return v_mul(v_load_f16(h + VK_NR * 2), v_from_int(vi_load_i8(h + VK_NR * 4 + 8 * VK_NR + isb * VK_NR)));
    case VK_W_Q6_K: return v_mul(v_mul(v_load_f16(h), v_from_int(vi_load_i8(h + VK_NR * 2 + isb * VK_NR))), v_set1(-32.0f));
    case VK_W_Q5_0: return v_mul(v_load_f16(h), v_set1(-16.0f));
    default: return v_mul(v_load_f16(h), v_set1(-8.0f));
    }
}

// Value j of group g of a 32-block (k = 8g + j) for 16 columns, from the packed
// nibble dwords v (v8: v shifted right by 8) and the high dwords hv of the
// block (5-bit types: hv[0]; Q6_K: hv[g / 2]): q * 2^bit (never subnormal), as
// vk_portable.c's sub_values.
VKI vf q_values(const int type, vi v, vi v8, const vi *hv, const int g, const int j) {
    vi q = vi_and(j < 6 ? v : v8, vi_set1(15 << vk_q4_bit(j)));
    if (vk_high_dwords(type)) { // one rotation per group for j < 6, one for j = 6, 7
        const int t = vk_q4_bit(j) + 4, src = vk_high_src(type, g, j);
        const vi w = hv[type == VK_W_Q6_K ? g / 2 : 0];
        const vi hs = src == t ? w : vi_rotr(w, (src - t) & 31);
        q = vi_or(q, vi_and(hs, vi_set1((type == VK_W_Q6_K ? 3 : 1) << t))); // disjoint bits
    }
    return v_from_int(q);
}

// Loads group g's nibble dwords of the 32-block at `vals` (and the high dwords).
VKI void load_group(const int type, const uint8_t *vals, const int g, vi *v, vi *v8, vi hv[2]) {
    *v = vi_load(vals + g * VK_NR * 4);
    *v8 = vi_srli(*v, 8);
    if (vk_high_dwords(type) == 1) hv[0] = vi_load(vals + 4 * VK_NR * 4);
    if (vk_high_dwords(type) == 2) hv[g / 2] = vi_load(vals + (4 + g / 2) * VK_NR * 4);
}

// nbk (1 to 4) consecutive 32-blocks of mr rows (1 to 8; row r at x + r * ldx), from
// 32-block b0, against np panels (panel p at w + p * pb): the sub-block sums s are
// independent fma chains (one per row, sub-block and panel), each weight converted once
// for all the rows; each sum then enters its row and panel's running total in sub-block
// order. x: for the nibble types pre-scaled by 2^(20 - bit) (vk_q4_x_scale), at the first
// block's k; xsum: the rows' sub-block sums from the first block's (row stride xs_ld).
VKI void rows_blocks(const int type, const int mr, const int np, const int nbk, const float *x,
                    int64_t ldx, const uint8_t *w, int64_t pb, int64_t b0,
                    vf total[8][VK_MAX_NP], const float *xsum, int64_t xs_ld) {
    const int sub = vk_sub_k(type), nh = VK_QBLOCK / sub, spu = vk_unit_k(type) / sub;
    vf s[8][8][VK_MAX_NP]; // (rows, blocks in flight x sub-blocks of a block, panels)
    _Pragma("clang loop unroll(full)") for (int r = 0; r < mr; r++)
        _Pragma("clang loop unroll(full)") for (int i = 0; i < nbk * nh; i++)
            _Pragma("clang loop unroll(full)") for (int p = 0; p < np; p++) s[r][i][p] = v_zero();
    if (type == VK_W_Q8_0) {
        for (int j = 0; j < VK_QBLOCK; j++)
            _Pragma("clang loop unroll(full)") for (int i = 0; i < nbk; i++)
                _Pragma("clang loop unroll(full)") for (int p = 0; p < np; p++) {
                    const vf q = v_from_int(vi_load_i8(vk_values_at(type, w + p * pb, b0 + i) + j * VK_NR));
                    _Pragma("clang loop unroll(full)") for (int r = 0; r < mr; r++)
                        s[r][i][p] = v_fma(v_set1(x[r * ldx + i * VK_QBLOCK + j]), q, s[r][i][p]);
                }
    } else {
        _Pragma("clang loop unroll(full)") for (int g = 0; g < VK_QBLOCK / 8; g++) {
            vi v[4][VK_MAX_NP], v8[4][VK_MAX_NP], hv[4][VK_MAX_NP][2];
            _Pragma("clang loop unroll(full)") for (int i = 0; i < nbk; i++)
                _Pragma("clang loop unroll(full)") for (int p = 0; p < np; p++)
                    load_group(type, vk_values_at(type, w + p * pb, b0 + i), g, &v[i][p], &v8[i][p], hv[i][p]);
            _Pragma("clang loop unroll(full)") for (int j = 0; j < 8; j++)
                _Pragma("clang loop unroll(full)") for (int i = 0; i < nbk; i++) {
                    const int si = i * nh + 8 * g / sub;
                    _Pragma("clang loop unroll(full)") for (int p = 0; p < np; p++) {
                        const vf q = q_values(type, v[i][p], v8[i][p], hv[i][p], g, j);
                        _Pragma("clang loop unroll(full)") for (int r = 0; r < mr; r++)
                            s[r][si][p] = v_fma(v_set1(x[r * ldx + i * VK_QBLOCK + 8 * g + j]), q, s[r][si][p]);
                    }
                }
        }
    }
    _Pragma("clang loop unroll(full)") for (int i = 0; i < nbk; i++)
        _Pragma("clang loop unroll(full)") for (int h = 0; h < nh; h++)
            _Pragma("clang loop unroll(full)") for (int p = 0; p < np; p++) {
                const uint8_t *hdr = vk_unit_at(type, w + p * pb, b0 + i);
                const int64_t isb = ((b0 + i) * nh + h) % spu;
                const vf d = sub_d(type, hdr, isb);
                const vf m = type == VK_W_Q8_0 ? v_zero() : sub_m(type, hdr, isb);
                _Pragma("clang loop unroll(full)") for (int r = 0; r < mr; r++) {
                    total[r][p] = v_fma(d, s[r][i * nh + h][p], total[r][p]);
                    if (type != VK_W_Q8_0) total[r][p] = v_fma(m, v_set1(xsum[r * xs_ld + i * nh + h]), total[r][p]);
                }
            }
}

// mr rows (1 to 8) of x against np panels of quantised weights, rb 32-blocks at a time
// (mr * np * rb * sub-blocks independent chains). Same bits as vk_portable.c: only the
// order in which independent chains advance differs.
VKI void rows_tile(const int type, const int mr, const int np, const int rb, const float *x,
                        int64_t ldx, const uint8_t *w, int64_t pb, int64_t k, float *y, int64_t ldy,
                        int64_t ncols, const float *xsum) {
    const int nh = VK_QBLOCK / vk_sub_k(type);
    const int64_t bpb = vk_unit_bytes(type) * VK_QBLOCK / vk_unit_k(type); // bytes per 32-block
    const int64_t nb = k / VK_QBLOCK, xs_ld = k / vk_sub_k(type);
    vf total[8][VK_MAX_NP];
    _Pragma("clang loop unroll(full)") for (int r = 0; r < mr; r++)
        _Pragma("clang loop unroll(full)") for (int p = 0; p < np; p++) total[r][p] = v_zero();
    int64_t b = 0;
    // Prefetch the panel's stream a few KB ahead: Intel cores do not keep enough
    // reads in flight by themselves here (vk_row_prefetch).
    const int64_t ahead = vk_row_prefetch * bpb; // bytes
    for (; b + rb <= nb; b += rb) {
        if (ahead)
            for (int64_t line = 0; line < rb * bpb; line += 64) __builtin_prefetch(w + b * bpb + ahead + line);
        rows_blocks(type, mr, np, rb, x + b * VK_QBLOCK, ldx, w, pb, b, total, xsum ? xsum + b * nh : xsum, xs_ld);
    }
    for (; b < nb; b++)
        rows_blocks(type, mr, np, 1, x + b * VK_QBLOCK, ldx, w, pb, b, total, xsum ? xsum + b * nh : xsum, xs_ld);
    _Pragma("clang loop unroll(full)") for (int r = 0; r < mr; r++)
        _Pragma("clang loop unroll(full)") for (int p = 0; p < np; p++) {
            int64_t left = ncols - p * VK_NR;
            if (left >= VK_NR) v_store(y + r * ldy + p * VK_NR, total[r][p]);
            else if (left > 0) v_storen(y + r * ldy + p * VK_NR, total[r][p], left);
        }
}

// The 32 values of one quantised 32-block of one panel (`vals`: its values) as
// the floats the block sums multiply x by (Q8_0: q; the others: q_values):
// row j (16 columns) at out + j * ostride.
VKI void convert_block(const int type, const uint8_t *vals, float *out, int64_t ostride) {
    if (type == VK_W_Q8_0) {
        for (int j = 0; j < VK_QBLOCK; j++) v_store(out + j * ostride, v_from_int(vi_load_i8(vals + j * VK_NR)));
        return;
    }
    _Pragma("clang loop unroll(full)") for (int g = 0; g < VK_QBLOCK / 8; g++) {
        vi v, v8, hv[2];
        load_group(type, vals, g, &v, &v8, hv);
        _Pragma("clang loop unroll(full)") for (int j = 0; j < 8; j++)
            v_store(out + (8 * g + j) * ostride, q_values(type, v, v8, hv, g, j));
    }
}

// One register tile: rows 0..<mr of x, panels 0..<np from `w` (panel stride pb),
// all of k. ncols: valid columns from the tile's first column (may exceed np*16).
// xsum: block sums of the tile's rows (row stride k / 32), Q4 only.
// qfp (quantised types, may be NULL): the same panels' values already in the
// form convert_block gives, (k, 16) per panel, panel stride k * 16.
// pf, pf_lines (quantised types, several rows): cache lines of the thread's next
// group to read ahead, spread over this tile's blocks, so that its DRAM reads
// overlap this tile's arithmetic (0 lines: none).
VKI void tile(const int type, const int mr, const int np, const float *x,
              int64_t ldx, const uint8_t *w, int64_t pb, int64_t k, float *y,
              int64_t ldy, int64_t ncols, const float *xsum, const float *qfp,
              const uint8_t *pf, int64_t pf_lines) {
    vf acc[VK_TILE_MR][VK_MAX_NP];
    _Pragma("clang loop unroll(full)") for (int r = 0; r < mr; r++)
        _Pragma("clang loop unroll(full)") for (int p = 0; p < np; p++)
            acc[r][p] = v_zero();

    if (mr == 1 && vk_is_quant(type)) {
        rows_tile(type, 1, np, 1, x, ldx, w, pb, k, y, ldy, ncols, xsum); // the panels side by side
        return;
    }
    if (type == VK_W_F32 || type == VK_W_F16 || type == VK_W_BF16) {
        for (int64_t kk = 0; kk < k; kk++) {
            vf wv[VK_MAX_NP];
            _Pragma("clang loop unroll(full)") for (int p = 0; p < np; p++)
                wv[p] = load_w_plain(type, w + p * pb, kk);
            TILE_FMA(kk, wv);
        }
    } else {
        // Quantised, block-factored (vk_portable.c): the registers hold the
        // sub-block sums s (acc); the running totals live in `total`, in memory
        // behind an opaque pointer so they never compete for registers:
        // they are touched once per sub-block. Small tiles (mr * np <=
        // VK_REG_TOTALS) keep them in registers instead (treg).
        float total_storage[VK_TILE_MR * VK_MAX_NP * 16] __attribute__((aligned(64)));
        float *total = total_storage;
        __asm__("" : "+r"(total));
        vf treg[VK_TILE_MR][VK_MAX_NP];
        _Pragma("clang loop unroll(full)") for (int r = 0; r < mr; r++)
            _Pragma("clang loop unroll(full)") for (int p = 0; p < np; p++) {
                if (mr * np <= VK_REG_TOTALS) treg[r][p] = v_zero();
                else v_store(total + (r * VK_MAX_NP + p) * 16, v_zero());
            }
        const int q8 = type == VK_W_Q8_0;
        const int sub = vk_sub_k(type), nh = VK_QBLOCK / sub, spu = vk_unit_k(type) / sub;
        const int64_t nb = k / VK_QBLOCK, nbs = k / sub;
        for (int64_t b = 0; b < nb; b++) {
            for (int64_t line = b * pf_lines / nb; line < (b + 1) * pf_lines / nb; line++)
                __builtin_prefetch(pf + line * 64, 0, 2);
            // Several rows (one row takes rows_tile) and no converted group:
            // convert the block's integers once into an L1 buffer (32 k, np panels),
            // then run the plain loop over it.
            float qf[VK_QBLOCK * VK_MAX_NP * 16] __attribute__((aligned(64)));
            if (!qfp)
                _Pragma("clang loop unroll(full)") for (int p = 0; p < np; p++)
                    convert_block(type, vk_values_at(type, w + p * pb, b), qf + p * 16, VK_MAX_NP * 16);
            _Pragma("clang loop unroll(full)") for (int h = 0; h < nh; h++) {
                if (qfp) {
                    for (int j = h * sub; j < (h + 1) * sub; j++) {
                        vf wv[VK_MAX_NP];
                        _Pragma("clang loop unroll(full)") for (int p = 0; p < np; p++)
                            wv[p] = v_load(qfp + p * k * VK_NR + (b * VK_QBLOCK + j) * VK_NR);
                        TILE_FMA(b * VK_QBLOCK + j, wv);
                    }
                } else {
                    for (int j = h * sub; j < (h + 1) * sub; j++) {
                        vf wv[VK_MAX_NP];
                        _Pragma("clang loop unroll(full)") for (int p = 0; p < np; p++)
                            wv[p] = v_load(qf + (j * VK_MAX_NP + p) * 16);
                        TILE_FMA(b * VK_QBLOCK + j, wv);
                    }
                }
                // Row by row, so that one broadcast of the row's sub-block sum is live at a time.
                const int64_t isb = (b * nh + h) % spu;
                vf d[VK_MAX_NP], m[VK_MAX_NP];
                _Pragma("clang loop unroll(full)") for (int p = 0; p < np; p++) {
                    const uint8_t *hdr = vk_unit_at(type, w + p * pb, b);
                    d[p] = sub_d(type, hdr, isb);
                    m[p] = q8 ? v_zero() : sub_m(type, hdr, isb);
                }
                _Pragma("clang loop unroll(full)") for (int r = 0; r < mr; r++) {
                    vf xs = q8 ? v_zero() : v_set1(xsum[r * nbs + b * nh + h]);
                    _Pragma("clang loop unroll(full)") for (int p = 0; p < np; p++) {
                        if (mr * np <= VK_REG_TOTALS) {
                            treg[r][p] = v_fma(d[p], acc[r][p], treg[r][p]);
                            if (!q8) treg[r][p] = v_fma(m[p], xs, treg[r][p]);
                        } else {
                            float *tot = total + (r * VK_MAX_NP + p) * 16;
                            vf a = v_fma(d[p], acc[r][p], v_load(tot));
                            if (!q8) a = v_fma(m[p], xs, a);
                            v_store(tot, a);
                        }
                        acc[r][p] = v_zero();
                    }
                }
            }
        }
        _Pragma("clang loop unroll(full)") for (int r = 0; r < mr; r++)
            _Pragma("clang loop unroll(full)") for (int p = 0; p < np; p++)
                acc[r][p] = mr * np <= VK_REG_TOTALS ? treg[r][p] : v_load(total + (r * VK_MAX_NP + p) * 16);
    }

    _Pragma("clang loop unroll(full)") for (int r = 0; r < mr; r++)
        _Pragma("clang loop unroll(full)") for (int p = 0; p < np; p++) {
            int64_t left = ncols - p * VK_NR;
            if (left >= VK_NR) v_store(y + r * ldy + p * VK_NR, acc[r][p]);
            else if (left > 0) v_storen(y + r * ldy + p * VK_NR, acc[r][p], left);
        }
}

// Rows r..r+MR of a unit, walking its panels NP at a time. The first tile of
// each row tile reads ahead the row tile's share of the next unit's lines.
#define GROUP_ROWS_NP(MR, NP)                                                      \
    for (int q = 0; q < VK_GROUP_PANELS; q += (NP)) {                             \
        if ((int64_t)q * VK_NR >= ncols) break;                                    \
        const int64_t rt = r / tile_rows, l0 = rt * pf_lines / row_tiles;            \
        tile(type, MR, NP, x + r * ldx, ldx, group + q * pb, pb, k,                \
             y + r * ldy + q * VK_NR, ldy, ncols - (int64_t)q * VK_NR,              \
             xsum ? xsum + r * (k / vk_sub_k(type)) : xsum,                         \
             qf_all ? qf_all + q * k * VK_NR : qf_all, next + l0 * 64,              \
             q == 0 ? (rt + 1) * pf_lines / row_tiles - l0 : 0);                    \
    }
// A unit of half a group (2 panels) takes tiles of at most 2 panels, which read no
// panel past it.
#define GROUP_ROWS(MR)                                                             \
    if (VK_TILE_NP(MR) > 2 && ncols <= 2 * VK_NR) { GROUP_ROWS_NP(MR, 2) }         \
    else { GROUP_ROWS_NP(MR, VK_TILE_NP(MR)) }

// The integers of a group's panels as floats, (k, 16) per panel: one pass,
// so that every row tile of the call reads them instead of converting again.
VKI void convert_group(const int type, const uint8_t *group, int64_t pb, int64_t k,
                       int64_t ncols, float *out) {
    for (int p = 0; p < VK_GROUP_PANELS && p * VK_NR < ncols; p++)
        for (int64_t b = 0; b < k / VK_QBLOCK; b++)
            convert_block(type, vk_values_at(type, group + p * pb, b), out + p * k * VK_NR + b * VK_QBLOCK * VK_NR, VK_NR);
}

// Quantised weights take tiles of 6 rows x 2 panels whose running totals stay in
// registers (12 sums and 12 totals; AVX-512 only: AVX2's 16 registers hold no more than
// the sums), where the 12-row tiles kept them in memory. Measured on the AMD EPYC VM (C
// harness, weights in cache, % of the fma peak, 12-row tiles -> 6-row tiles): Q8_0, whose
// per-block update is one fma that the memory round trip outweighed, 576x1536 M = 512 one
// core 90 -> 98, two cores 86 -> 92-93, M = 64 84 -> 89, 2048x640 85 -> 94; Q6_K (16-value
// sub-blocks: twice the updates) 2048x640 two cores 75-81 -> 82, one core 79-85 -> 80-87;
// Q5_0 640x2048 and 640x1024, Q4_K 1024x640, Q5_K 3584x2048, two cores, three alternations:
// 0-3 points better each time; Q4_1 within the noise.
VKI int vk_small_tiles(const int type) {
    return VK_REG_TOTALS > 0 && vk_is_quant(type);
}

VKI void linear_group_t(const int type, const float *x, int64_t ldx,
                        int64_t rows, const uint8_t *group, int64_t pb,
                        int64_t k, float *y, int64_t ldy, int64_t ncols,
                        const float *xsum, float *scratch, const uint8_t *next) {
    // The next unit's lines (quantised types; as many panels as this one): each row tile
    // reads ahead its share.
    const int64_t panels = (ncols + VK_NR - 1) / VK_NR;
    const int64_t pf_lines = next && vk_is_quant(type) ? (panels < VK_GROUP_PANELS ? panels : VK_GROUP_PANELS) * pb / 64 : 0;
    const int small = vk_small_tiles(type);
    const int tile_rows = small ? 6 : VK_TILE_MR;
    const int64_t row_tiles = (rows + tile_rows - 1) / tile_rows;
    // Quantised weights and more than one row tile: convert the group once
    // (k * 64 floats, in L2) rather than once per row tile. Same values, so
    // the same bits.
    const float *qf_all = NULL;
    if (vk_is_quant(type) && scratch && rows > tile_rows) {
        convert_group(type, group, pb, k, ncols, scratch);
        qf_all = scratch;
    }
    int64_t r = 0;
    if (small) { // tiles of 6 rows x 2 panels
        for (; r + 6 <= rows; r += 6) { GROUP_ROWS_NP(6, 2) }
        switch (rows - r) {
        case 1: GROUP_ROWS_NP(1, 2) break;
        case 2: GROUP_ROWS_NP(2, 2) break;
        case 3: GROUP_ROWS_NP(3, 2) break;
        case 4: GROUP_ROWS_NP(4, 2) break;
        case 5: GROUP_ROWS_NP(5, 2) break;
        default: break;
        }
        return;
    }
    for (; r + VK_TILE_MR <= rows; r += VK_TILE_MR) { GROUP_ROWS(VK_TILE_MR) }
    switch (rows - r) {
    case 1: GROUP_ROWS(1) break;
    case 2: GROUP_ROWS(2) break;
    case 3: GROUP_ROWS(3) break;
    case 4: GROUP_ROWS(4) break;
    case 5: GROUP_ROWS(5) break;
#if VK_TILE_MR > 6
    case 6: GROUP_ROWS(6) break;
    case 7: GROUP_ROWS(7) break;
    case 8: GROUP_ROWS(8) break;
    case 9: GROUP_ROWS(9) break;
    case 10: GROUP_ROWS(10) break;
    case 11: GROUP_ROWS(11) break;
#endif
    default: break;
    }
}

// WALK(T) for the quantised type `type`, T a constant in each case (so that each
// type gets its own specialised copy).
#define QUANT_TYPE_SWITCH(WALK)                                                          \
    switch (type) {                                                                      \
    case VK_W_Q8_0: WALK(VK_W_Q8_0) break;                                               \
    case VK_W_Q4_0: WALK(VK_W_Q4_0) break;                                               \
    case VK_W_Q4_1: WALK(VK_W_Q4_1) break;                                               \
    case VK_W_Q5_0: WALK(VK_W_Q5_0) break;                                               \
    case VK_W_Q5_1: WALK(VK_W_Q5_1) break;                                               \
    case VK_W_Q4_K: WALK(VK_W_Q4_K) break;                                               \
    case VK_W_Q5_K: WALK(VK_W_Q5_K) break;                                               \
    default: WALK(VK_W_Q6_K) break;                                                      \
    }

// One row of quantised weights (decode): out of line, so that its loops keep their
// place in the code whatever else linear_group holds (its speed from DRAM moved 8%
// with the placement).
__attribute__((noinline)) static void one_row_group(const float *x, const uint8_t *group, int64_t pb,
                                                    int type, int64_t k, float *y, int64_t ncols,
                                                    const float *xsum) {
    // One row of quantised weights: one panel at a time, its blocks in
    // address order, so that the weights are one forward stream through
    // memory (the group's 4 panels side by side were 4 streams). Q4 keeps
    // 2 blocks in flight; for Q8_0 out-of-order execution already overlaps
    // the blocks (each starts a new chain), and 2 in flight were slower
    // (vk_row_blocks_q4/q8; the stream is prefetched, vk_row_prefetch).
    // Measured from DRAM on an AMD Zen 4, one thread: Q4_1 11-12 -> 13-16,
    // Q4_0 9.5 -> 12, Q8_0 17 -> 26 GB/s; two threads (with vk_linear's
    // runs of groups): Q4_1 22 -> 29, Q8_0 32 -> 46. Same bits: only
    // independent chains interleave differently.
    for (int p = 0; p < VK_GROUP_PANELS && p * VK_NR < ncols; p++) {
        const uint8_t *panel = group + p * pb;
        float *yp = y + p * VK_NR;
        const int64_t left = ncols - p * VK_NR;
        const int rb = type == VK_W_Q8_0 ? vk_row_blocks_q8 : vk_row_blocks_q4;
#define ROW_WALK(T)                                                                     \
    switch (rb) { /* each a copy specialised for its type and blocks in flight */       \
    case 1: rows_tile(T, 1, 1, 1, x, 0, panel, pb, k, yp, 0, left, xsum); break;            \
    case 3: rows_tile(T, 1, 1, 3, x, 0, panel, pb, k, yp, 0, left, xsum); break;            \
    case 4: rows_tile(T, 1, 1, 4, x, 0, panel, pb, k, yp, 0, left, xsum); break;            \
    default: rows_tile(T, 1, 1, 2, x, 0, panel, pb, k, yp, 0, left, xsum); break;           \
    }
        QUANT_TYPE_SWITCH(ROW_WALK)
#undef ROW_WALK
    }
}

#if VK_FEW_ROWS > 1
// 2 to 8 rows of quantised weights (a decode batch, a short prompt), out of line like the
// one-row walk. With both inlined, one-row decode of SmolLM2 measured 6-13% slower;
// out of line 2-4% (within the noise), a matter of code placement, not of this code.
__attribute__((noinline)) static void few_rows_group(const float *x, int64_t ldx, int64_t rows,
                                                     const uint8_t *group, int64_t pb, int type, int64_t k,
                                                     float *y, int64_t ldy, int64_t ncols, const float *xsum) {
    // A few rows walk the weights as one row does, each weight converted once in
    // registers for all of them, 2 blocks in flight (Q6_K, with two sub-blocks a block:
    // one past 4 rows, so that the chains fit in the registers): the tiles below convert
    // a block into memory and read it back, which cost more than the fmas of so few rows
    // (Q4_1 576x1536 from DRAM, one AMD Zen 5 core, µs a call: M = 2 36 -> 23, M = 3
    // 57-60 -> 28-30, M = 4 58-64 -> 34; a SmolLM2 decode step of 4 sequences on one
    // core 13.6-14.2 -> 6.5-7.1 ms).
    for (int p = 0; p < VK_GROUP_PANELS && p * VK_NR < ncols; p++) {
        const uint8_t *panel = group + p * pb;
        float *yp = y + p * VK_NR;
        const int64_t left = ncols - p * VK_NR;
#define WALK(T)                                                                                    \
    switch (rows) { /* each a copy specialised for its type and rows */                            \
    case 2: rows_tile(T, 2, 1, 2, x, ldx, panel, pb, k, yp, ldy, left, xsum); break;             \
    case 3: rows_tile(T, 3, 1, 2, x, ldx, panel, pb, k, yp, ldy, left, xsum); break;             \
    case 4: rows_tile(T, 4, 1, 2, x, ldx, panel, pb, k, yp, ldy, left, xsum); break;             \
    case 5: rows_tile(T, 5, 1, (T) == VK_W_Q6_K ? 1 : 2, x, ldx, panel, pb, k, yp, ldy, left, xsum); break; \
    case 6: rows_tile(T, 6, 1, (T) == VK_W_Q6_K ? 1 : 2, x, ldx, panel, pb, k, yp, ldy, left, xsum); break; \
    case 7: rows_tile(T, 7, 1, (T) == VK_W_Q6_K ? 1 : 2, x, ldx, panel, pb, k, yp, ldy, left, xsum); break; \
    default: rows_tile(T, 8, 1, (T) == VK_W_Q6_K ? 1 : 2, x, ldx, panel, pb, k, yp, ldy, left, xsum); break; \
    }
        QUANT_TYPE_SWITCH(WALK)
#undef WALK
    }
}

// The most rows of a quantised type that take the few-rows walk, in passes of 4 to 8
// rows (the weights then come from the cache after the first pass); more take the tiles.
// Measured on one AMD Zen 5 core, weights in cache, % of the fma peak, tiles -> passes:
// Q4_1 M = 8 68 -> 80, M = 16 66 -> 80, M = 32 74 -> 82, M = 48 78 -> 81; Q4_K and Q8_0
// alike; Q6_K M = 16 60 -> 68; the 5-bit types gain to M = 16 (Q5_0 70 -> 76) and lose
// from M = 32 (79 -> 76).
VKI int64_t few_rows_limit(const int type) {
    return type == VK_W_Q5_0 || type == VK_W_Q5_1 || type == VK_W_Q5_K ? 16 : 32;
}
#endif

static void linear_group(const float *x, int64_t ldx, int64_t rows,
                         const uint8_t *group, int64_t pb, int type, int64_t k,
                         float *y, int64_t ldy, int64_t ncols, const float *xsum,
                         float *scratch, const uint8_t *next) {
    if (rows == 1 && vk_is_quant(type)) {
        one_row_group(x, group, pb, type, k, y, ncols, xsum);
        return;
    }
#if VK_FEW_ROWS > 1
    if (vk_is_quant(type) && rows <= few_rows_limit(type)) {
        // Passes of 8 rows, the last two balanced so that none has fewer than 4 (9: 5 + 4).
        const int64_t xs_ld = xsum ? k / vk_sub_k(type) : 0;
        for (int64_t r0 = 0; r0 < rows;) {
            const int64_t left = rows - r0, take = left > 12 ? 8 : left > 8 ? left - 4 : left;
            few_rows_group(x + r0 * ldx, ldx, take, group, pb, type, k, y + r0 * ldy, ldy, ncols,
                           xsum ? xsum + r0 * xs_ld : xsum);
            r0 += take;
        }
        return;
    }
#endif
    switch (type) {
    case VK_W_F32: linear_group_t(VK_W_F32, x, ldx, rows, group, pb, k, y, ldy, ncols, xsum, scratch, next); break;
    case VK_W_F16: linear_group_t(VK_W_F16, x, ldx, rows, group, pb, k, y, ldy, ncols, xsum, scratch, next); break;
    case VK_W_BF16: linear_group_t(VK_W_BF16, x, ldx, rows, group, pb, k, y, ldy, ncols, xsum, scratch, next); break;
    case VK_W_Q8_0: linear_group_t(VK_W_Q8_0, x, ldx, rows, group, pb, k, y, ldy, ncols, xsum, scratch, next); break;
    case VK_W_Q4_0: linear_group_t(VK_W_Q4_0, x, ldx, rows, group, pb, k, y, ldy, ncols, xsum, scratch, next); break;
    case VK_W_Q4_1: linear_group_t(VK_W_Q4_1, x, ldx, rows, group, pb, k, y, ldy, ncols, xsum, scratch, next); break;
    case VK_W_Q5_0: linear_group_t(VK_W_Q5_0, x, ldx, rows, group, pb, k, y, ldy, ncols, xsum, scratch, next); break;
    case VK_W_Q5_1: linear_group_t(VK_W_Q5_1, x, ldx, rows, group, pb, k, y, ldy, ncols, xsum, scratch, next); break;
    case VK_W_Q4_K: linear_group_t(VK_W_Q4_K, x, ldx, rows, group, pb, k, y, ldy, ncols, xsum, scratch, next); break;
    case VK_W_Q5_K: linear_group_t(VK_W_Q5_K, x, ldx, rows, group, pb, k, y, ldy, ncols, xsum, scratch, next); break;
    case VK_W_Q6_K: linear_group_t(VK_W_Q6_K, x, ldx, rows, group, pb, k, y, ldy, ncols, xsum, scratch, next); break;
    default: break;
    }
}

// ---- 16-lane sums: lane i % 16 gets element i; the fold is the scalar one ---

static float fold16(vf lanes) { return v_fold16(lanes); }

// x prepared for the nibble types, rows r0..<r1 (see vk_internal.h's q4_prep_rows).
static void q4_prep_rows(const float *x, float *xs, float *xsum32, float *xsum16, int64_t k,
                         int64_t r0, int64_t r1) {
    float sc[16];
    for (int j = 0; j < 16; j++) sc[j] = vk_q4_x_scale(j % 8);
    const vf scale = v_load(sc);
    const int64_t nb = k / 32;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * k;
        // The block sums 16 folds at a time (v_fold16_many), then one by one.
        int64_t b = 0;
        if (xsum32) { // vk_block_sum
            for (vf v[16]; b + 16 <= nb; b += 16) {
                for (int i = 0; i < 16; i++) v[i] = v_add(v_load(xr + (b + i) * 32), v_load(xr + (b + i) * 32 + 16));
                v_fold16_many(v, xsum32 + r * nb + b);
            }
            for (; b < nb; b++) xsum32[r * nb + b] = v_fold16(v_add(v_load(xr + b * 32), v_load(xr + b * 32 + 16)));
        }
        b = 0;
        if (xsum16) { // vk_block_sum16: each half of a 32-block
            for (vf v[16]; b + 8 <= nb; b += 8) {
                for (int i = 0; i < 16; i++) v[i] = v_load(xr + b * 32 + i * 16);
                v_fold16_many(v, xsum16 + r * 2 * nb + 2 * b);
            }
            for (; b < nb; b++) {
                xsum16[r * 2 * nb + 2 * b] = v_fold16(v_load(xr + b * 32));
                xsum16[r * 2 * nb + 2 * b + 1] = v_fold16(v_load(xr + b * 32 + 16));
            }
        }
        for (b = 0; b < nb; b++) {
            const vf lo = v_load(xr + b * 32), hi = v_load(xr + b * 32 + 16);
            v_store(xs + r * k + b * 32, v_mul(lo, scale));
            v_store(xs + r * k + b * 32 + 16, v_mul(hi, scale));
        }
    }
}

static void rmsnorm_row(const float *x, const float *w, float *y, int64_t dim,
                        float eps) {
    vf ss = v_zero();
    int64_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        vf xv = v_load(x + i);
        ss = v_fma(xv, xv, ss);
    }
    if (i < dim) { // missing lanes read 0: fma(0, 0, lane) keeps the lane (>= +0)
        vf xv = v_loadn(x + i, dim - i);
        ss = v_fma(xv, xv, ss);
    }
    vf scale = v_set1(vk_rms_scale(fold16(ss), dim, eps));
    for (i = 0; i + 16 <= dim; i += 16)
        v_store(y + i, v_mul(v_mul(v_load(x + i), scale), v_load(w + i)));
    if (i < dim)
        v_storen(y + i, v_mul(v_mul(v_loadn(x + i, dim - i), scale), v_loadn(w + i, dim - i)), dim - i);
}

static void swiglu(const float *gate, const float *up, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        int64_t c = n - i < 16 ? n - i : 16;
        vf g = v_loadn(gate + i, c);
        vf s = v_div(g, v_add(v_set1(1.0f), v_exp(v_neg(g))));
        v_storen(out + i, v_mul(s, v_loadn(up + i, c)), c);
    }
}

static void geglu(const float *gate, const float *up, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        int64_t c = n - i < 16 ? n - i : 16;
        vf g = v_loadn(gate + i, c);
        vf inner = v_add(g, v_mul(v_set1(VK_GELU_C), v_mul(v_mul(g, g), g)));
        vf s = v_div(g, v_add(v_set1(1.0f), v_exp(v_mul(v_set1(VK_GELU_K), inner))));
        v_storen(out + i, v_mul(s, v_loadn(up + i, c)), c);
    }
}

// Max with NaN ignored, then +0 for a zero (as max_value in vk_portable.c):
// lane maxima, then the lanes in order; equal non-zero values have equal bits.
static float max_value(const float *x, int64_t n) {
    vf m = v_set1(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) m = v_max(v_load(x + i), m);
    if (i < n) m = v_max(v_select(v_first(n - i), v_set1(-INFINITY), v_loadn(x + i, n - i)), m);
    float l[16];
    v_store(l, m);
    float r = -INFINITY;
    for (int j = 0; j < 16; j++)
        if (l[j] > r) r = l[j];
    return r + 0.0f;
}

static void log_softmax_row(const float *x, float *y, int64_t n) {
    vf m = v_set1(max_value(x, n));
    vf z = v_zero();
    for (int64_t i = 0; i < n; i += 16) {
        int64_t c = n - i < 16 ? n - i : 16;
        vf e = v_exp(v_sub(v_loadn(x + i, c), m));
        z = v_add(z, v_zero_unless(v_first(c), e));
    }
    vf lz = v_set1(vk_log_scalar(fold16(z)));
    for (int64_t i = 0; i < n; i += 16) {
        int64_t c = n - i < 16 ? n - i : 16;
        v_storen(y + i, v_sub(v_sub(v_loadn(x + i, c), m), lz), c);
    }
}

static int64_t argmax(const float *x, int64_t n) {
    vf m = v_set1(max_value(x, n));
    for (int64_t i = 0; i < n; i += 16) {
        int64_t c = n - i < 16 ? n - i : 16;
        int bits = v_mask_bits(v_and_mask(v_first(c), v_eq(v_loadn(x + i, c), m)));
        if (bits) return i + __builtin_ctz((unsigned)bits);
    }
    return 0;
}

static void exp_array(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        int64_t c = n - i < 16 ? n - i : 16;
        v_storen(y + i, v_exp(v_loadn(x + i, c)), c);
    }
}

static void log_array(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        int64_t c = n - i < 16 ? n - i : 16;
        v_storen(y + i, v_log(v_loadn(x + i, c)), c);
    }
}

// ---- attention ------------------------------------------------------------

// For nq heads h: out_h (nv * 16) = (sum over j = first..nkeys-1 in order of
// fma(e_h,j, v_j, acc)) / z_h. e_h at e + h * e_stride (indexed by key). Each V
// row is loaded once for all nq heads.
VKI void attention_values(const vk_kv_layout *kv, int32_t layer,
                          const float *e, int64_t e_stride, float *out,
                          const int32_t *table, int64_t first, int64_t nkeys, int32_t kv_head,
                          const float *z, const int nq, const int nv) {
    const int64_t bs = kv->block_size, hd = kv->head_dim;
    const int64_t stride = (int64_t)kv->n_kv_heads * hd;
    vf o[3][16]; // (nq <= 3, nv <= 16)
    for (int h = 0; h < nq; h++)
        for (int c = 0; c < nv; c++) o[h][c] = v_zero();
    for (int64_t j0 = first; j0 < nkeys;) { // the keys of one block at a time
        int64_t v0 = vk_kv_block_offset(kv, table[j0 / bs], layer) + bs * stride + kv_head * hd + (j0 % bs) * stride;
        int64_t end = (j0 / bs + 1) * bs < nkeys ? (j0 / bs + 1) * bs : nkeys;
        int64_t cnt = end - j0;
        for (int64_t s = 0; s < cnt; s++) {
            int64_t at = v0 + s * stride;
            for (int c = 0; c < nv; c++) {
                vf vv = kv->kv_type == VK_KV_F16 ? v_load_f16((const uint16_t *)kv->base + at + c * 16)
                                                 : v_load((const float *)kv->base + at + c * 16);
                for (int h = 0; h < nq; h++) o[h][c] = v_fma(v_set1(e[h * e_stride + j0 + s]), vv, o[h][c]);
            }
        }
        j0 = end;
    }
    for (int h = 0; h < nq; h++) {
        vf zv = v_set1(z[h]);
        for (int c = 0; c < nv; c++) v_store(out + h * hd + c * 16, v_div(o[h][c], zv));
    }
}

// All nq query heads of a KV head at once: out_h = (sum over j = first..nkeys-1 in order of
// fma(e_h,j, v_j, acc)) / z_h for h < nq, the head's columns in chunks of cw vectors. Each V
// row is read once for all nq heads (per chunk), where attention_values would read it once
// per head. The same chains as attention_values: only independent outputs are grouped.
VKI void attention_values_heads(const vk_kv_layout *kv, int32_t layer, const float *e, int64_t e_stride,
                                float *out, const int32_t *table, int64_t first, int64_t nkeys,
                                int32_t kv_head, const float *z, const int nq, const int cw) {
    const int64_t bs = kv->block_size, hd = kv->head_dim;
    const int64_t stride = (int64_t)kv->n_kv_heads * hd;
    for (int64_t c0 = 0; c0 < hd / 16; c0 += cw) {
        vf o[4][8]; // (nq <= 4, cw <= 8)
        for (int h = 0; h < nq; h++)
            for (int c = 0; c < cw; c++) o[h][c] = v_zero();
        for (int64_t j0 = first; j0 < nkeys;) { // the keys of one block at a time
            int64_t v0 = vk_kv_block_offset(kv, table[j0 / bs], layer) + bs * stride + kv_head * hd + (j0 % bs) * stride + c0 * 16;
            int64_t end = (j0 / bs + 1) * bs < nkeys ? (j0 / bs + 1) * bs : nkeys;
            for (int64_t j = j0; j < end; j++) {
                int64_t at = v0 + (j - j0) * stride;
                vf eb[4];
                for (int h = 0; h < nq; h++) eb[h] = v_set1(e[h * e_stride + j]);
                for (int c = 0; c < cw; c++) {
                    vf vv = kv->kv_type == VK_KV_F16 ? v_load_f16((const uint16_t *)kv->base + at + c * 16)
                                                     : v_load((const float *)kv->base + at + c * 16);
                    for (int h = 0; h < nq; h++) o[h][c] = v_fma(eb[h], vv, o[h][c]);
                }
            }
            j0 = end;
        }
        for (int h = 0; h < nq; h++) {
            vf zv = v_set1(z[h]);
            for (int c = 0; c < cw; c++) v_store(out + h * hd + (c0 + c) * 16, v_div(o[h][c], zv));
        }
    }
}

#define VK_MAX_GROUP 8

// Reads ahead the rows of KV head kv_head for keys j0..<j1 (K, or V with `values`) into the
// cache: a decode batch's keys come from DRAM, and the loops below read 16 strided rows at a
// time, which the hardware does not fetch early enough by itself.
VKI void prefetch_kv_rows(const vk_kv_layout *kv, int32_t layer, const int32_t *table, int32_t kv_head,
                          int64_t j0, int64_t j1, int values) {
    const int64_t bs = kv->block_size, hd = kv->head_dim, esize = kv->kv_type == VK_KV_F16 ? 2 : 4;
    const int64_t stride = (int64_t)kv->n_kv_heads * hd;
    for (int64_t j = j0; j < j1; j++) {
        const int64_t at = vk_kv_block_offset(kv, table[j / bs], layer) + (values ? bs * stride : 0)
                         + (j % bs) * stride + kv_head * hd;
        const char *row = (const char *)kv->base + at * esize;
        for (int64_t b = 0; b < hd * esize; b += 64) __builtin_prefetch(row + b, 0, 3);
    }
}

// Dimensions d..d+15 of 16 consecutive keys (the first at element `at`, one key every
// `stride` elements) as col[d'] = dimension d + d' of the 16 keys (lane i: key i).
VKI void key_columns(const vk_kv_layout *kv, int64_t at, int64_t stride, vf col[16]) {
    if (kv->kv_type == VK_KV_F16) {
        const uint16_t *kp = (const uint16_t *)kv->base + at;
        for (int i = 0; i < 16; i++) col[i] = v_load_f16(kp + i * stride);
    } else {
        const float *kp = (const float *)kv->base + at;
        for (int i = 0; i < 16; i++) col[i] = v_load(kp + i * stride);
    }
    v_transpose16(col); // (16 keys, 16 dims) -> (16 dims, 16 keys)
}

// s_j = dot(q_h, k_j) * scale for the nq heads h of a group (scratch + h * sl, from
// j_start). 16 keys are loaded as rows and transposed 16 dimensions at a time, so lane i
// holds key j0+i; one transposed column feeds one fma per head, d in order. nq is a
// constant in each copy (a run-time count cost a compare and branch per fma).
VKI void score_keys(const vk_kv_layout *kv, int32_t layer, const float *q, const int32_t *table,
                    int32_t kv_head, int64_t first, int64_t j_start, int64_t nkeys, float scale,
                    float *scratch, int64_t sl, const int nq, const int prefetch) {
    const int64_t bs = kv->block_size, hd = kv->head_dim;
    const int64_t stride = (int64_t)kv->n_kv_heads * hd;
    for (int64_t j0 = j_start; j0 < nkeys; j0 += 16) {
        if (prefetch) { // the next 16 keys, and the values of these 16 (read after the softmax)
            prefetch_kv_rows(kv, layer, table, kv_head, j0 + 16, j0 + 32 < nkeys ? j0 + 32 : nkeys, 0);
            prefetch_kv_rows(kv, layer, table, kv_head, j0 > first ? j0 : first, j0 + 16 < nkeys ? j0 + 16 : nkeys, 1);
        }
        int64_t k0 = vk_kv_block_offset(kv, table[j0 / bs], layer) + (j0 % bs) * stride + kv_head * hd;
        vf acc[VK_MAX_GROUP];
        _Pragma("clang loop unroll(full)") for (int h = 0; h < nq; h++) acc[h] = v_zero();
        for (int64_t dc = 0; dc < hd; dc += 16) {
            vf col[16];
            key_columns(kv, k0 + dc, stride, col);
            _Pragma("clang loop unroll(full)") for (int d = 0; d < 16; d++)
                _Pragma("clang loop unroll(full)") for (int h = 0; h < nq; h++)
                    acc[h] = v_fma(v_set1(q[h * hd + dc + d]), col[d], acc[h]);
        }
        _Pragma("clang loop unroll(full)") for (int h = 0; h < nq; h++)
            v_store(scratch + h * sl + j0, v_mul(acc[h], v_set1(scale)));
    }
}

// Scores of nc (1 or 2) consecutive 16-key chunks for rb rows and nq heads: kt + c * hd * 16
// + d * 16 holds dimension d of chunk c's keys (lane i: key j0 + 16 c + i); row i's queries
// at qr[i], its scores at sr[i] + h * sl + j0. Per (row, head, key) the chain is
// score_keys's: from zero, d in order, then times scale; only the chunks' transposes are
// shared. Two chunks let each broadcast of q feed two fmas.
VKI void score_chunks(const float *kt, const int64_t hd, const float *const *qr, float *const *sr,
                      const int rb, const int nq, const int nc, float scale, int64_t sl, int64_t j0) {
    vf acc[8][VK_MAX_GROUP][2];
    _Pragma("clang loop unroll(full)") for (int r = 0; r < rb; r++)
        _Pragma("clang loop unroll(full)") for (int h = 0; h < nq; h++)
            _Pragma("clang loop unroll(full)") for (int c = 0; c < nc; c++) acc[r][h][c] = v_zero();
    for (int64_t d = 0; d < hd; d++) {
        vf kd[2];
        _Pragma("clang loop unroll(full)") for (int c = 0; c < nc; c++) kd[c] = v_load(kt + c * hd * 16 + d * 16);
        _Pragma("clang loop unroll(full)") for (int r = 0; r < rb; r++)
            _Pragma("clang loop unroll(full)") for (int h = 0; h < nq; h++) {
                const vf qb = v_set1(qr[r][h * hd + d]);
                _Pragma("clang loop unroll(full)") for (int c = 0; c < nc; c++) acc[r][h][c] = v_fma(qb, kd[c], acc[r][h][c]);
            }
    }
    _Pragma("clang loop unroll(full)") for (int r = 0; r < rb; r++)
        _Pragma("clang loop unroll(full)") for (int h = 0; h < nq; h++)
            _Pragma("clang loop unroll(full)") for (int c = 0; c < nc; c++)
                v_store(sr[r] + h * sl + j0 + 16 * c, v_mul(acc[r][h][c], v_set1(scale)));
}

// Rows scored together per pass over nc chunks: their accumulators (rows x heads x chunks)
// fill the registers.
#define VK_SCORE_ROWS(nq, nc) (VK_SCORE_ACCS / ((nq) * (nc)) >= 8 ? 8 : VK_SCORE_ACCS / ((nq) * (nc)) < 1 ? 1 : VK_SCORE_ACCS / ((nq) * (nc)))

// Loads and transposes the 16-key chunk at j0 into kt (hd x 16).
VKI void transpose_chunk(const vk_kv_layout *kv, int32_t layer, const int32_t *table, int32_t kv_head,
                         int64_t j0, float *kt) {
    const int64_t bs = kv->block_size, hd = kv->head_dim;
    const int64_t stride = (int64_t)kv->n_kv_heads * hd;
    const int64_t k0 = vk_kv_block_offset(kv, table[j0 / bs], layer) + (j0 % bs) * stride + kv_head * hd;
    for (int64_t dc = 0; dc < hd; dc += 16) {
        vf col[16];
        key_columns(kv, k0 + dc, stride, col);
        for (int d = 0; d < 16; d++) v_store(kt + (dc + d) * 16, col[d]);
    }
}

// score_chunks for the rows of `qr`/`sr` (na of them): rb at a time, then one by one.
VKI void score_group(const float *kt, const int64_t hd, const float *const *qr, float *const *sr, int na,
                     const int nq, const int nc, float scale, int64_t sl, int64_t j0) {
    const int rb = VK_SCORE_ROWS(nq, nc);
    int i = 0;
    for (; i + rb <= na; i += rb) score_chunks(kt, hd, qr + i, sr + i, rb, nq, nc, scale, sl, j0);
    for (; i < na; i++) score_chunks(kt, hd, qr + i, sr + i, 1, nq, nc, scale, sl, j0);
}

// score_keys for nr rows of one sequence at once: row i's queries at q + i * q_stride, its keys
// j_start[i] ..< nkeys[i], its scores at scratch + (i * nq + h) * sl. Keys go 32 at a time:
// each 16-key chunk is loaded and transposed once (into kt, hd * 16 floats each) for every row
// that reads it, where row by row it was transposed once per row (in a prefill the transposes
// cost more than the fmas they feed); rows that read both chunks score them together.
VKI void score_rows(const vk_kv_layout *kv, int32_t layer, const float *q, int64_t q_stride,
                    const int32_t *table, int32_t kv_head, const int64_t *j_start, const int64_t *nkeys,
                    const int nr, float scale, float *scratch, int64_t sl, float *kt, const int nq) {
    const int64_t hd = kv->head_dim;
    int64_t lo = j_start[0], hi = nkeys[0];
    for (int i = 1; i < nr; i++) {
        if (j_start[i] < lo) lo = j_start[i];
        if (nkeys[i] > hi) hi = nkeys[i];
    }
    // Two chunks at a time where the accumulators allow 3 and more heads (AVX-512); with
    // 1 or 2 heads, or 6 accumulators (AVX2), two were slower than one.
    const int pairs = VK_SCORE_ACCS >= 24 && nq >= 3;
    for (int64_t j0 = lo; j0 < hi; j0 += pairs ? 32 : 16) {
        const int second = pairs && j0 + 16 < hi; // the chunk at j0 + 16 exists for some row
        transpose_chunk(kv, layer, table, kv_head, j0, kt);
        if (second) transpose_chunk(kv, layer, table, kv_head, j0 + 16, kt + hd * 16);
        // The rows that read both chunks, only the first, only the second.
        const float *q2[VK_ATTN_ROWS], *qa[VK_ATTN_ROWS], *qb[VK_ATTN_ROWS];
        float *s2[VK_ATTN_ROWS], *sa[VK_ATTN_ROWS], *sb[VK_ATTN_ROWS];
        int n2 = 0, na = 0, nb = 0;
        for (int i = 0; i < nr; i++) {
            const int a = j_start[i] <= j0 && j0 < nkeys[i];
            const int b = second && j_start[i] <= j0 + 16 && j0 + 16 < nkeys[i];
            const float *qi = q + i * q_stride;
            float *si = scratch + i * nq * sl;
            if (a && b) { q2[n2] = qi; s2[n2++] = si; }
            else if (a) { qa[na] = qi; sa[na++] = si; }
            else if (b) { qb[nb] = qi; sb[nb++] = si; }
        }
        score_group(kt, hd, q2, s2, n2, nq, 2, scale, sl, j0);
        score_group(kt, hd, qa, sa, na, nq, 1, scale, sl, j0);
        score_group(kt + hd * 16, hd, qb, sb, nb, nq, 1, scale, sl, j0 + 16);
    }
}

// The softmax and the values of one row for its nq heads, from its scores (scratch + h * sl,
// from j_start = first rounded down to 16): out_h = (sum over j = first..nkeys-1 in order of
// fma(e_h,j, v_j, acc)) / z_h.
VKI void attention_finish(const vk_kv_layout *kv, int32_t layer, float *out, int32_t n_q,
                          const int32_t *table, int64_t first, int64_t nkeys, int32_t kv_head,
                          float *scratch, int64_t sl) {
    const int64_t hd = kv->head_dim;
    const int64_t j_start = first & ~(int64_t)15;
    float z[VK_MAX_GROUP];
    for (int h = 0; h < n_q; h++) {
        float *s = scratch + h * sl;
        vf m = v_set1(max_value(s + first, nkeys - first));
        vf zl = v_zero();
        for (int64_t j0 = j_start; j0 < nkeys; j0 += 16) {
            vf d = v_sub(v_load(s + j0), m); // vk_attention_weight, 16 keys at once
            vf e = v_select(v_lt(d, v_set1(VK_ATTN_CUTOFF)), v_exp(d), v_zero());
            if (j0 < first) e = v_select(v_first(first - j0), e, v_zero()); // keys before the window
            v_store(s + j0, e);
            zl = v_add(zl, v_zero_unless(v_first(nkeys - j0), e));
        }
        z[h] = fold16(zl);
    }
#if defined(VK_SIMD_AVX512)
    // 3 heads x 4 vectors = 12 zmm accumulators: share the V loads.
    if (n_q == 3 && hd == 64) {
        attention_values(kv, layer, scratch, sl, out, table, first, nkeys, kv_head, z, 3, 4);
        return;
    }
    // 4 heads (Gemma 3: one KV head of width 256), 4 x 4 zmm accumulators; 2 heads, 2 x 8.
    if (n_q == 4 && hd % 64 == 0) {
        attention_values_heads(kv, layer, scratch, sl, out, table, first, nkeys, kv_head, z, 4, 4);
        return;
    }
    if (n_q == 2 && hd % 128 == 0) {
        attention_values_heads(kv, layer, scratch, sl, out, table, first, nkeys, kv_head, z, 2, 8);
        return;
    }
#else
    // AVX2 (two registers a vector): 4 heads x 2 vectors, 2 heads x 4.
    if (n_q == 4 && hd % 32 == 0) {
        attention_values_heads(kv, layer, scratch, sl, out, table, first, nkeys, kv_head, z, 4, 2);
        return;
    }
    if (n_q == 2 && hd % 64 == 0) {
        attention_values_heads(kv, layer, scratch, sl, out, table, first, nkeys, kv_head, z, 2, 4);
        return;
    }
#endif
    for (int h = 0; h < n_q; h++) {
        if (hd == 64) attention_values(kv, layer, scratch + h * sl, sl, out + h * hd, table, first, nkeys, kv_head, z + h, 1, 4);
        else attention_values(kv, layer, scratch + h * sl, sl, out + h * hd, table, first, nkeys, kv_head, z + h, 1, (int)(hd / 16));
    }
}

static void attention_rows(const vk_kv_layout *kv, int32_t layer, const float *q, int64_t q_stride,
                           float *out, int64_t out_stride, int32_t n_rows, int32_t n_q,
                           const int32_t *table, const int32_t *positions, int32_t window,
                           int32_t kv_head, float scale, float *scratch, int prefetch) {
    const int64_t bs = kv->block_size, hd = kv->head_dim;
    // Lanes hold 16 consecutive keys of one block: needs block_size % 16 == 0.
    if (bs % 16 != 0 || hd % 16 != 0 || hd > 256 || n_q > VK_MAX_GROUP || n_rows > VK_ATTN_ROWS) {
        vk_ops_portable.attention_rows(kv, layer, q, q_stride, out, out_stride, n_rows, n_q, table, positions,
                                       window, kv_head, scale, scratch, prefetch);
        return;
    }
    // Keys are scored 16 at a time from a multiple of 16 (lane i holds key j0 + i, so key
    // j always sits in lane j % 16, as in the portable sum); keys before `first` get weight 0.
    int64_t first[VK_ATTN_ROWS], j_start[VK_ATTN_ROWS], nkeys[VK_ATTN_ROWS], most = 0;
    for (int i = 0; i < n_rows; i++) {
        const int64_t pos = positions[i];
        first[i] = window > 0 && pos >= window ? pos - window + 1 : 0;
        j_start[i] = first[i] & ~(int64_t)15;
        nkeys[i] = pos + 1;
        if (nkeys[i] > most) most = nkeys[i];
    }
    const int64_t sl = (most + 15) / 16 * 16; // scratch per row and head: scores, then e_j
    float *kt = scratch + n_rows * n_q * sl;  // one transposed chunk (hd, 16)
    // SCORE(NQ) for the head count n_q, NQ a constant in each case (each its own copy).
#define HEAD_COUNT_SWITCH(SCORE)                                                          \
    switch (n_q) {                                                                        \
    case 1: SCORE(1); break;                                                              \
    case 2: SCORE(2); break;                                                              \
    case 3: SCORE(3); break;                                                              \
    case 4: SCORE(4); break;                                                              \
    case 5: SCORE(5); break;                                                              \
    case 6: SCORE(6); break;                                                              \
    case 7: SCORE(7); break;                                                              \
    default: SCORE(8); break;                                                             \
    }
#define ONE_ROW(NQ) score_keys(kv, layer, q, table, kv_head, first[0], j_start[0], nkeys[0], scale, scratch, sl, NQ, prefetch)
#define ROWS(NQ) score_rows(kv, layer, q, q_stride, table, kv_head, j_start, nkeys, n_rows, scale, scratch, sl, kt, NQ)
    if (n_rows == 1) HEAD_COUNT_SWITCH(ONE_ROW)
    else HEAD_COUNT_SWITCH(ROWS)
#undef ONE_ROW
#undef ROWS
#undef HEAD_COUNT_SWITCH
    for (int i = 0; i < n_rows; i++)
        attention_finish(kv, layer, out + i * out_stride, n_q, table, first[i], nkeys[i], kv_head,
                         scratch + i * n_q * sl, sl);
}

const vk_ops VK_OPS_NAME = {
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
