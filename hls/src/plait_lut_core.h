// plait_lut_core.h -- the LUT tensor core in HLS C++.
//
// The integers of plait.ir.numerics.lut (lut_precompute, lut_lookup, plane_indices,
// lut_trace, lut_linear) bit for bit, every register at the width the RTL gives it;
// the arithmetic is documented there and in rtl/sv/lut_core.sv.  C is the generated
// config struct `lut_core_pkg` (LutCoreConfig.cpp_header(): M, N, K, MAX_GROUP,
// DQ_LANES, CNT_W, MAX_BITS, ACT_W, TBL_W, LK_W, WB_MAX, ACC_W, XS_W, CORR_W, GRP_W,
// PROD_W, P_W, MANT_W, ZP_W, IDX_W, MAX_CHUNKS, GC_W, DQ_STEPS, DQS_W).
//
// Streams between the stages are the RTL's (rtl/sv/lut_core.sv):
//   a  ABeat   one chunk of 4 activations of each of the M rows (a_data)
//   w  WBeat   one bit-plane of one chunk: the 4-bit table index of each of the N
//              columns (w_data); planes LSB first, chunk-major
//              (numerics.lut.lut_weight_beats = pack field `planes`)
//   s  SBeat   the group's mantissas and odd-grid zero points (s_mant, s_zp)
// Pieces:
//   precompute<C>    8 symmetrized entries S[j] = T[8 + j] of the 16 signed sums of 4
//                    activations (TBL_W = 10 bits)
//   lookup<C>        L(idx) = idx[3] ? S[idx & 7] : -S[~idx & 7]
//   lut_accumulate<C> bit-serial planes: the table register doubles after each plane
//                    (so L << plane costs no shifter per column), column accumulators
//                    A' (ACC_W), group activation sums X (XS_W); at each group end the
//                    zero correction A = (A' - z' X) >> 1 (offset mode) or A = A'
//   lut_dequant<C>   P += A * mant once per group (MixPE), P of the tile out (P_W = 48)
//   lut_load_a / lut_load_w / lut_load_s   memory -> streams (activations from an on-chip
//                    buffer; weights, mantissas, zero points streamed from memory in the
//                    artifact's packed format, numerics.pack.LutPacked)
//   lut_linear_dataflow<C>  the dataflow of all of them: a whole linear layer
#ifndef PLAIT_LUT_CORE_H
#define PLAIT_LUT_CORE_H

#include "plait_types.h"

namespace plait {
namespace lut {

constexpr int ERR_CONFIG = 1;   // bits / group size / shapes the build cannot run
constexpr int ERR_ZP = 2;       // a zero point outside ZP_W bits
constexpr int ERR_ODD = 4;      // a zero-corrected sum is odd (zero point not on the odd grid)

template <class C> constexpr int sh_w() { return C::TBL_W + C::MAX_BITS - 1; }  // shifted table
template <class C> constexpr int shl_w() { return sh_w<C>() + 1; }              // shifted lookup

template <class C> struct ABeat { sint<C::ACT_W> x[C::M][C::K]; };
template <class C> struct WBeat { uint<C::IDX_W> idx[C::N]; };
template <class C> struct SBeat {
  uint<C::MANT_W> mant[C::N];
  sint<C::ZP_W> zp[C::N];
};
/// One group's result of the lookup array, with its mantissas (to the dequantizer).
template <class C> struct GrpOut {
  sint<C::GRP_W> a[C::M][C::N];
  uint<C::MANT_W> mant[C::N];
};
/// Pack field `planes`: one w beat, two 4-bit column indices per byte.
template <class C> struct PlaneWord { uint8_t b[(C::N + 1) / 2]; };

/// The 8 stored entries of the table of one chunk (numerics.lut.lut_precompute).
template <class C>
inline void precompute(const sint<C::ACT_W> x[C::K], sint<C::TBL_W> s[8]) {
#pragma HLS INLINE
  for (int j = 0; j < 8; ++j) {
#pragma HLS UNROLL
    int64_t v = int64_t(x[3]);
    for (int kk = 0; kk < 3; ++kk) {
#pragma HLS UNROLL
      v += ((j >> kk) & 1) ? int64_t(x[kk]) : -int64_t(x[kk]);
    }
    s[j] = sint<C::TBL_W>(v);
  }
}

/// Symmetric lookup (numerics.lut.lut_lookup) in a table of W-bit entries.
template <int W>
inline int64_t lookup(const sint<W> s[8], int64_t idx) {
#pragma HLS INLINE
  const bool top = (idx >> 3) & 1;
  const int low = int(top ? (idx & 7) : (~idx & 7));
  const int64_t v = int64_t(s[low]);
  return top ? v : -v;
}

/// The lookup array over the beats of `n_groups` groups (all tiles of a layer).
/// *err_out: ERR_ODD if a zero-corrected sum was odd.
template <class C>
void lut_accumulate(stream<ABeat<C>>& a, stream<WBeat<C>>& w, stream<SBeat<C>>& s, int bits,
                    int offset, int group_chunks, int n_groups, stream<GrpOut<C>>& out,
                    int* err_out) {
  sint<sh_w<C>()> tbl[C::M][8];               // the table register, doubled per plane
#pragma HLS ARRAY_PARTITION variable = tbl complete dim = 0
  sint<C::ACC_W> acc[C::M][C::N];             // A' per row and column
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 0
  sint<C::XS_W> xs[C::M];                     // X per row
#pragma HLS ARRAY_PARTITION variable = xs complete
  for (int m = 0; m < C::M; ++m) {
    xs[m] = 0;
    for (int n = 0; n < C::N; ++n) acc[m][n] = 0;
  }
  int err = 0;
  int plane = 0, chunk = 0;
  const int total = n_groups * group_chunks * bits;
planes:
  for (int it = 0; it < total; ++it) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 65536
    sint<C::XS_W> xs_n[C::M];
#pragma HLS ARRAY_PARTITION variable = xs_n complete
    if (plane == 0) {                         // table stage: a new chunk
      const ABeat<C> ab = a.read();
      for (int m = 0; m < C::M; ++m) {
#pragma HLS UNROLL
        sint<C::TBL_W> t[8];
        precompute<C>(ab.x[m], t);
        for (int j = 0; j < 8; ++j) {
#pragma HLS UNROLL
          tbl[m][j] = t[j];
        }
        xs_n[m] = sint<C::XS_W>(int64_t(xs[m]) + int64_t(t[7]));
      }
    } else {                                  // next plane: every entry doubles
      for (int m = 0; m < C::M; ++m) {
#pragma HLS UNROLL
        for (int j = 0; j < 8; ++j) {
#pragma HLS UNROLL
          tbl[m][j] = sint<sh_w<C>()>(int64_t(tbl[m][j]) * 2);
        }
        xs_n[m] = xs[m];
      }
    }
    const WBeat<C> wb = w.read();
    const bool group_end = plane == bits - 1 && chunk == group_chunks - 1;
    SBeat<C> sb;
    if (group_end) sb = s.read();
    GrpOut<C> o;
    for (int m = 0; m < C::M; ++m) {
#pragma HLS UNROLL
      for (int n = 0; n < C::N; ++n) {
#pragma HLS UNROLL
        const sint<C::ACC_W> acc_n =
            sint<C::ACC_W>(int64_t(acc[m][n]) + lookup<sh_w<C>()>(tbl[m], int64_t(wb.idx[n])));
        if (group_end) {
          sint<C::GRP_W> g;
          if (offset) {
            const sint<C::CORR_W> corr =
                sint<C::CORR_W>(int64_t(acc_n) - int64_t(sb.zp[n]) * int64_t(xs_n[m]));
            if (int64_t(corr) & 1) err |= ERR_ODD;
            g = sint<C::GRP_W>(int64_t(corr) >> 1);
          } else {
            g = sint<C::GRP_W>(int64_t(acc_n));
          }
          o.a[m][n] = g;
          acc[m][n] = 0;
        } else {
          acc[m][n] = acc_n;
        }
      }
      xs[m] = group_end ? sint<C::XS_W>(0) : xs_n[m];
    }
    if (group_end) {
      for (int n = 0; n < C::N; ++n) {
#pragma HLS UNROLL
        o.mant[n] = sb.mant[n];
      }
      out.write(o);
    }
    if (plane == bits - 1) {
      plane = 0;
      chunk = chunk == group_chunks - 1 ? 0 : chunk + 1;
    } else {
      ++plane;
    }
  }
  *err_out = err;
}

/// The group dequantizer: P[m][n] = sum_g A[m][n][g] * mant[n][g] per tile, written to
/// p[m * rows + tile * N + n] for the m_rows real rows and the real columns (< rows).
/// DQ_LANES columns per cycle, N / DQ_LANES cycles per group (as the RTL).
template <class C>
void lut_dequant(stream<GrpOut<C>>& in, int m_rows, int rows, int groups, int tiles, int64_t* p) {
  sint<C::P_W> acc_p[C::M][C::N];
#pragma HLS ARRAY_PARTITION variable = acc_p complete dim = 1
#pragma HLS ARRAY_PARTITION variable = acc_p cyclic factor = C::DQ_LANES dim = 2
  GrpOut<C> o;
  int step = 0, g = 0, col0 = 0;
groups_steps:
  for (int it = 0; it < tiles * groups * C::DQ_STEPS; ++it) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 65536
    if (step == 0) o = in.read();
    for (int ln = 0; ln < C::DQ_LANES; ++ln) {
#pragma HLS UNROLL
      const int n = step * C::DQ_LANES + ln;
      for (int m = 0; m < C::M; ++m) {
#pragma HLS UNROLL
        const int64_t prev = g == 0 ? 0 : int64_t(acc_p[m][n]);
        const sint<C::P_W> v =
            sint<C::P_W>(prev + int64_t(o.a[m][n]) * int64_t(o.mant[n]));
        acc_p[m][n] = v;
        if (g == groups - 1 && m < m_rows && col0 + n < rows)
          p[int64_t(m) * rows + col0 + n] = int64_t(v);
      }
    }
    if (step == C::DQ_STEPS - 1) {
      step = 0;
      if (g == groups - 1) { g = 0; col0 += C::N; } else { ++g; }
    } else {
      ++step;
    }
  }
}

/// Activations [m_rows][k] -> on-chip buffer -> one ABeat per chunk, per tile (rows
/// m_rows .. M-1 of a beat are zero).
template <class C, int K_MAX>
void lut_load_a(const int8_t* x, int m_rows, int k, int tiles, stream<ABeat<C>>& a) {
  sint<C::ACT_W> xbuf[C::M][K_MAX];
#pragma HLS ARRAY_PARTITION variable = xbuf complete dim = 1
#pragma HLS ARRAY_PARTITION variable = xbuf cyclic factor = 4 dim = 2
  int m = 0, kk = 0;
load_x:
  for (int i = 0; i < C::M * k; ++i) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 4 max = K_MAX
    xbuf[m][kk] = m < m_rows ? sint<C::ACT_W>(x[int64_t(m) * k + kk]) : sint<C::ACT_W>(0);
    if (kk == k - 1) { kk = 0; ++m; } else { ++kk; }
  }
  int c = 0;
chunks:
  for (int it = 0; it < tiles * (k / C::K); ++it) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 65536
    ABeat<C> b;
    for (int mm = 0; mm < C::M; ++mm) {
#pragma HLS UNROLL
      for (int j = 0; j < C::K; ++j) {
#pragma HLS UNROLL
        b.x[mm][j] = xbuf[mm][c * C::K + j];
      }
    }
    a.write(b);
    c = c == k / C::K - 1 ? 0 : c + 1;
  }
}

/// Pack field `planes` -> w beats (n_beats = tiles * k/4 * bits).
template <class C>
void lut_load_w(const PlaneWord<C>* planes, int n_beats, stream<WBeat<C>>& w) {
beats:
  for (int t = 0; t < n_beats; ++t) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 65536
    const PlaneWord<C> pw = planes[t];
    WBeat<C> b;
    for (int n = 0; n < C::N; ++n) {
#pragma HLS UNROLL
      b.idx[n] = uint<C::IDX_W>((pw.b[n / 2] >> (4 * (n % 2))) & 0xF);
    }
    w.write(b);
  }
}

/// Pack fields `mant` / `zp` ([rows][groups]) -> one s beat per (tile, group).  Padding
/// columns of the last tile (code 0) get mantissa 0 and the zero point of code 0,
/// z' = 1 - 2^bits, so that their group integer is exactly 0 in offset mode too.
/// *err_out: ERR_ZP for a zero point outside ZP_W bits.
template <class C>
void lut_load_s(const uint16_t* mant, const int8_t* zp, int bits, int rows, int groups,
                int tiles, stream<SBeat<C>>& s, int* err_out) {
  int err = 0;
  SBeat<C> b;
  int n = 0, g = 0, col0 = 0;
  const int64_t zlo = -(int64_t(1) << (C::ZP_W - 1)), zhi = (int64_t(1) << (C::ZP_W - 1)) - 1;
cols:
  for (int it = 0; it < tiles * groups * C::N; ++it) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 65536
    const int col = col0 + n;
    const bool real = col < rows;
    const int64_t at = int64_t(col) * groups + g;
    const int64_t z = real ? int64_t(zp[at]) : 1 - (int64_t(1) << bits);
    if (z < zlo || z > zhi) err |= ERR_ZP;
    b.mant[n] = real ? uint<C::MANT_W>(int64_t(mant[at])) : uint<C::MANT_W>(0);
    b.zp[n] = sint<C::ZP_W>(z);
    if (n == C::N - 1) {
      s.write(b);
      n = 0;
      if (g == groups - 1) { g = 0; col0 += C::N; } else { ++g; }
    } else {
      ++n;
    }
  }
  *err_out = err;
}

/// Checks the run-time configuration of a linear layer; ERR_CONFIG if the build
/// cannot run it.
template <class C, int K_MAX>
inline int lut_check(int bits, int m_rows, int rows, int k, int group_size) {
  if (bits < 1 || bits > C::MAX_BITS || m_rows < 1 || m_rows > C::M || rows < 1 ||
      group_size < C::K || group_size % C::K || group_size > C::MAX_GROUP || k < group_size ||
      k % group_size || k > K_MAX || (k / group_size) >= (1 << C::CNT_W))
    return ERR_CONFIG;
  return 0;
}

/// Dataflow of one linear layer: loads -> lookup array -> dequantizer -> memory.
///   x [m_rows][k] int8; planes / zp / mant: the LutPacked fields; p [m_rows][rows];
///   tiles = ceil(rows / N), groups = k / group_size (computed by the caller, so that the
///   region holds only declarations and process calls).
template <class C, int K_MAX>
void lut_linear_dataflow(const int8_t* x, const PlaneWord<C>* planes, const int8_t* zp,
                         const uint16_t* mant, int bits, int offset, int m_rows, int rows,
                         int k, int group_chunks, int tiles, int groups, int n_wbeats,
                         int64_t* p, int* err_zp, int* err_odd) {
#pragma HLS DATAFLOW
  stream<ABeat<C>> a("a");
#pragma HLS STREAM variable = a depth = 4
  stream<WBeat<C>> w("w");
#pragma HLS STREAM variable = w depth = 4
  stream<SBeat<C>> s("s");
#pragma HLS STREAM variable = s depth = 2
  stream<GrpOut<C>> grp("grp");
#pragma HLS STREAM variable = grp depth = 2
  lut_load_a<C, K_MAX>(x, m_rows, k, tiles, a);
  lut_load_w<C>(planes, n_wbeats, w);
  lut_load_s<C>(mant, zp, bits, rows, groups, tiles, s, err_zp);
  lut_accumulate<C>(a, w, s, bits, offset, group_chunks, tiles * groups, grp, err_odd);
  lut_dequant<C>(grp, m_rows, rows, groups, tiles, p);
}

/// One linear layer (the body of the generated top): checks the configuration, then
/// runs the dataflow.  Returns the ERR_* mask.
template <class C, int K_MAX>
int lut_linear(const int8_t* x, const PlaneWord<C>* planes, const int8_t* zp,
               const uint16_t* mant, int bits, int offset, int m_rows, int rows, int k,
               int group_size, int64_t* p) {
#pragma HLS INLINE
  const int e = lut_check<C, K_MAX>(bits, m_rows, rows, k, group_size);
  if (e) return e;
  const int tiles = (rows + C::N - 1) / C::N;
  const int groups = k / group_size;
  int err_zp = 0, err_odd = 0;
  lut_linear_dataflow<C, K_MAX>(x, planes, zp, mant, bits, offset, m_rows, rows, k,
                                group_size / C::K, tiles, groups, tiles * (k / C::K) * bits, p,
                                &err_zp, &err_odd);
  return err_zp | err_odd;
}

}  // namespace lut
}  // namespace plait

#endif  // PLAIT_LUT_CORE_H
