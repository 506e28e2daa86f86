// plait_dsp_chain.h -- the sparse DSP-chain matrix-vector unit in HLS C++.
//
// The integers of plait.ir.numerics.dsp (chain_beat, run_schedule, schedule_chain,
// overflow_adjust) and plait.ir.numerics.common (group_accumulate, dequant_groups,
// linear_int), bit for bit; the architecture is documented there and in
// rtl/sv/dsp_chain.sv.  C is the generated config struct `dsp_chain_pkg`
// (DspChainConfig.cpp_header(): N_DSP, CASCADE, LANE_SHIFT, ACC_W, N_GROUPS, LEVELS,
// ROWS_MAX, A_W, LANE_W, WIN_HI, MODE_MASK, MODE_* codes, WBITS_* codes, M_MAX,
// IDX_W, CODE_W, P_W and the tables MODE_N(c) / MODE_M(c) / WBITS_OF(c) of the codes).
//
// Pieces (each a function a Vitis user can reuse):
//   widen<C>           weight widening: b-bit code u -> int8 q = u - 2^(b-1)
//   chain_beat<C>      one beat: sparse MUX, packed two-lane MAC slices on the 48-bit
//                      cascade path, overflow adjust (lane extraction) per cascade group,
//                      adder tree cut at level log2(N / CASCADE) -> per-row beat sums
//   chain_engine<C>    the streaming unit: Beat stream in, one AccOut (row accumulators,
//                      ACC_W bits, wrapping) per group-last beat out
//   chain_load<C>      memory -> Beat stream: activations from an on-chip buffer and the
//                      packed weight beats of plait.ir.numerics.pack (DspPacked: `codes`
//                      one byte per slice, `idx` two 4-bit indices per byte)
//   chain_dequant<C>   AccOut stream + group mantissas -> P (48 bits) per lane and row:
//                      P = sum_g acc * mant (MixPE, once per group)
//   chain_linear<C>    the dataflow of the three: a whole linear layer for two token
//                      rows (the two packed lanes)
// Errors are reported in a bit mask (ERR_* below) instead of the golden model's
// exceptions: the hardware flags the beat and goes on.
#ifndef PLAIT_DSP_CHAIN_H
#define PLAIT_DSP_CHAIN_H

#include "plait_types.h"

namespace plait {
namespace dsp {

constexpr int ERR_CONFIG = 1;   // mode / weight width not in this build, or bad shapes
constexpr int ERR_INDEX = 2;    // a sparse index outside the mode's block [0, M)
constexpr int ERR_CODE = 4;     // a weight code outside [0, 2^bits)

/// The packed weight words of one beat as the artifact stores them (DspPacked.arrays()).
template <class C> struct CodeWord { uint8_t b[C::N_DSP]; };        // `codes` row
template <class C> struct IdxWord { uint8_t b[C::N_DSP / 2]; };     // `idx` row (nibbles)

/// One input beat of the chain: the RTL's in_act / in_w / in_idx / in_last words.
template <class C>
struct Beat {
  sint<8> act[2][C::M_MAX];             // [lane][position in the block]
  uint<C::CODE_W> code[C::N_DSP];       // bits-bit weight code per slice
  uint<C::IDX_W> idx[C::N_DSP];         // sparse index per slice (dense: ignored)
  bool last;                            // last beat of a quantization group
};

/// One output of the chain: the row accumulators of one (tile, group).
template <class C>
struct AccOut {
  sint<C::ACC_W> acc[2][C::ROWS_MAX];   // [lane][row of the tile]
};

template <class C> constexpr int tree_w() { return C::LANE_W + C::LEVELS; }

/// N (nonzeros per block) of mode code `mode`, 0 if the code is unknown.
template <class C>
inline int mode_n(int mode) { return C::MODE_N(mode); }
template <class C>
inline int mode_m(int mode) { return C::MODE_M(mode); }

/// Whether this build runs mode code `mode` with weight-width code `wbits`.
template <class C>
inline bool mode_ok(int mode, int wbits) {
  return mode >= 0 && mode < 8 && ((C::MODE_MASK >> mode) & 1) && mode_n<C>(mode) > 0 &&
         wbits >= 0 && wbits < 4;
}

/// Tree level holding the row sums of mode N: log2(N / CASCADE).
template <class C>
inline int mode_level(int mode) {
  const int n = mode_n<C>(mode);
  int lvl = 0;
  while ((C::CASCADE << lvl) < n) ++lvl;
  return lvl;
}

/// Weight widening: a bits-bit symmetric code -> int8 weight (flip top bit, sign-extend).
template <class C>
inline sint<8> widen(uint<C::CODE_W> code, int bits, int& err) {
#pragma HLS INLINE
  if (int64_t(code) >> bits) err |= ERR_CODE;
  return sint<8>(int64_t(code) - (int64_t(1) << (bits - 1)));
}

/// Reduction node (numerics.dsp.overflow_adjust): 48-bit P of a cascade group ->
/// (upper lane, lower lane), lower lane decoded in [WIN_HI - 2^S + 1, WIN_HI].
template <class C>
inline void overflow_adjust(sint<C::P_W> p, sint<C::LANE_W>& s_hi, sint<C::LANE_W>& s_lo) {
#pragma HLS INLINE
  const int64_t lo_u = int64_t(p) & ((int64_t(1) << C::LANE_SHIFT) - 1);   // P[S-1:0]
  const int64_t borrow = lo_u > int64_t(C::WIN_HI) ? 1 : 0;
  s_lo = sint<C::LANE_W>(lo_u - (borrow << C::LANE_SHIFT));
  s_hi = sint<C::LANE_W>((int64_t(p) >> C::LANE_SHIFT) + borrow);
}

/// One beat of the chain (numerics.dsp.chain_beat) up to the per-row beat sums
/// out[lane][row], rows 0 .. N_DSP / N - 1 valid.  `w` are widened weights.
template <class C>
void chain_beat(const sint<8> act[2][C::M_MAX], const sint<8> w[C::N_DSP],
                const uint<C::IDX_W> idx[C::N_DSP], int mode,
                sint<tree_w<C>()> out[2][C::ROWS_MAX], int& err) {
#pragma HLS INLINE
  const bool dense = mode == C::MODE_DENSE;
  const int m = mode_m<C>(mode);
  // sparse MUX: slice i picks its activation (dense: position i % 16)
  sint<C::A_W> a[C::N_DSP];
#pragma HLS ARRAY_PARTITION variable = a complete
  sint<8> wv[C::N_DSP];
#pragma HLS ARRAY_PARTITION variable = wv complete
  for (int i = 0; i < C::N_DSP; ++i) {
#pragma HLS UNROLL
    int sel = i % C::M_MAX;
    if (!dense) {
      sel = int(int64_t(idx[i]));
      if (sel >= m) {
        err |= ERR_INDEX;
        sel = sel % m;     // any in-block position: the beat is flagged
      }
    }
    // packed multiplier operand A = (a_hi << S) + a_lo (the DSP's pre-adder)
    a[i] = sint<C::A_W>(int64_t(act[1][sel]) * (int64_t(1) << C::LANE_SHIFT) +
                        int64_t(act[0][sel]));
    wv[i] = w[i];
  }
  // cascade groups on the 48-bit P path, then the reduction nodes
  sint<tree_w<C>()> t[2][C::N_GROUPS];
#pragma HLS ARRAY_PARTITION variable = t complete dim = 0
  for (int g = 0; g < C::N_GROUPS; ++g) {
#pragma HLS UNROLL
    sint<C::P_W> p = 0;
    for (int j = 0; j < C::CASCADE; ++j) {
#pragma HLS UNROLL
      const int i = g * C::CASCADE + j;
      p = sint<C::P_W>(int64_t(p) + int64_t(wv[i]) * int64_t(a[i]));
    }
    sint<C::LANE_W> s_hi, s_lo;
    overflow_adjust<C>(p, s_hi, s_lo);
    t[0][g] = s_lo;
    t[1][g] = s_hi;
  }
  // reconfigurable links: the adder tree up to the mode's level
  const int level = mode_level<C>(mode);
  for (int lv = 1; lv <= C::LEVELS; ++lv) {
#pragma HLS UNROLL
    if (lv <= level) {
      for (int i = 0; i < (C::N_GROUPS >> lv); ++i) {
#pragma HLS UNROLL
        for (int l = 0; l < 2; ++l) {
#pragma HLS UNROLL
          t[l][i] = sint<tree_w<C>()>(int64_t(t[l][2 * i]) + int64_t(t[l][2 * i + 1]));
        }
      }
    }
  }
  for (int l = 0; l < 2; ++l) {
#pragma HLS UNROLL
    for (int r = 0; r < C::ROWS_MAX; ++r) {
#pragma HLS UNROLL
      out[l][r] = (r < C::N_GROUPS) ? t[l][r] : sint<tree_w<C>()>(0);
    }
  }
}

/// Beats of a rows x k layer in mode code `mode`: ceil(rows / R) tiles of k / M beats.
template <class C>
inline int chain_beats(int mode, int rows, int k) {
  const int r = C::N_DSP / mode_n<C>(mode);
  return (rows + r - 1) / r * (k / mode_m<C>(mode));
}

/// The streaming chain (numerics.dsp.run_schedule): `n_beats` beats in, one AccOut per
/// beat with `last` set.  `bits` = WBITS_OF(wbits code).  *err_out: the error mask.
template <class C>
void chain_engine(stream<Beat<C>>& in, stream<AccOut<C>>& out, int mode, int wbits,
                  int n_beats, int* err_out) {
  int err = 0;
  const int bits = C::WBITS_OF(wbits);
  const int rows = C::N_DSP / mode_n<C>(mode);
  sint<C::ACC_W> acc[2][C::ROWS_MAX];
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 0
  for (int l = 0; l < 2; ++l)
    for (int r = 0; r < C::ROWS_MAX; ++r) acc[l][r] = 0;
beats:
  for (int t = 0; t < n_beats; ++t) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 65536
    const Beat<C> b = in.read();
    sint<8> w[C::N_DSP];
#pragma HLS ARRAY_PARTITION variable = w complete
    for (int i = 0; i < C::N_DSP; ++i) {
#pragma HLS UNROLL
      w[i] = widen<C>(b.code[i], bits, err);
    }
    sint<tree_w<C>()> sums[2][C::ROWS_MAX];
#pragma HLS ARRAY_PARTITION variable = sums complete dim = 0
    chain_beat<C>(b.act, w, b.idx, mode, sums, err);
    AccOut<C> o;
    for (int l = 0; l < 2; ++l) {
#pragma HLS UNROLL
      for (int r = 0; r < C::ROWS_MAX; ++r) {
#pragma HLS UNROLL
        const sint<C::ACC_W> v = (r < rows) ? sint<C::ACC_W>(int64_t(acc[l][r]) + int64_t(sums[l][r]))
                                            : sint<C::ACC_W>(0);
        o.acc[l][r] = v;
        acc[l][r] = b.last ? sint<C::ACC_W>(0) : v;
      }
    }
    if (b.last) out.write(o);
  }
  *err_out = err;
}

/// Memory -> beat stream (numerics.dsp.schedule_chain on the packed weight of
/// numerics.pack.pack_dsp).  x: two token rows [2][k] (row-major, lane 0 first);
/// codes / idx: the pack's `codes` / `idx` rows (idx unused in dense mode).
template <class C, int K_MAX>
void chain_load(const int8_t* x, const CodeWord<C>* codes, const IdxWord<C>* idx, int mode,
                int rows, int k, int group_size, stream<Beat<C>>& out) {
  sint<8> xbuf[2][K_MAX];
#pragma HLS ARRAY_PARTITION variable = xbuf cyclic factor = 16 dim = 2
#pragma HLS ARRAY_PARTITION variable = xbuf complete dim = 1
load_x:
  for (int i = 0; i < 2 * k; ++i) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 32 max = 2 * K_MAX
    xbuf[i >= k ? 1 : 0][i >= k ? i - k : i] = x[i];
  }
  const int n = mode_n<C>(mode), m = mode_m<C>(mode);
  const bool dense = mode == C::MODE_DENSE;
  const int r = C::N_DSP / n;
  const int tiles = (rows + r - 1) / r;
  const int nb = k / m;                       // beats per tile
  const int bpg = group_size / m;             // beats per quantization group
  int j = 0;                                  // block of K within the tile
  int gb = 0;                                 // beat within the group
tiles_beats:
  for (int t = 0; t < tiles * nb; ++t) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 65536
    Beat<C> b;
    for (int l = 0; l < 2; ++l) {
#pragma HLS UNROLL
      for (int p = 0; p < C::M_MAX; ++p) {
#pragma HLS UNROLL
        b.act[l][p] = (p < m) ? xbuf[l][j * m + p] : sint<8>(0);
      }
    }
    const CodeWord<C> cw = codes[t];
    IdxWord<C> iw;
    if (!dense) iw = idx[t];
    for (int i = 0; i < C::N_DSP; ++i) {
#pragma HLS UNROLL
      b.code[i] = cw.b[i];
      b.idx[i] = dense ? uint<C::IDX_W>(i % C::M_MAX)
                       : uint<C::IDX_W>((iw.b[i / 2] >> (4 * (i % 2))) & 0xF);
    }
    b.last = gb == bpg - 1;
    out.write(b);
    gb = b.last ? 0 : gb + 1;
    j = j == nb - 1 ? 0 : j + 1;
  }
}

/// Accumulator stream + group mantissas (pack `mant`, uint16 [rows][k / group_size])
/// -> P[lane][row] (48 bits, numerics.common.dequant_groups), written to p[lane*rows + row].
template <class C>
void chain_dequant(stream<AccOut<C>>& in, const uint16_t* mant, int mode, int rows, int groups,
                   int64_t* p) {
  const int r = C::N_DSP / mode_n<C>(mode);
  const int tiles = (rows + r - 1) / r;
  sint<C::P_W> acc_p[2][C::ROWS_MAX];
#pragma HLS ARRAY_PARTITION variable = acc_p complete dim = 0
  AccOut<C> o;
  int rr = 0, g = 0, row0 = 0;                // row of the tile, group, first row of the tile
rows_groups:
  for (int it = 0; it < tiles * groups * r; ++it) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 65536
    if (rr == 0) o = in.read();
    const int row = row0 + rr;
    const bool real = row < rows;
    const int64_t mv = real ? int64_t(mant[int64_t(row) * groups + g]) : 0;
    for (int l = 0; l < 2; ++l) {
#pragma HLS UNROLL
      const int64_t prev = g == 0 ? 0 : int64_t(acc_p[l][rr]);
      const sint<C::P_W> v = sint<C::P_W>(prev + int64_t(o.acc[l][rr]) * mv);
      acc_p[l][rr] = v;
      if (g == groups - 1 && real) p[int64_t(l) * rows + row] = int64_t(v);
    }
    if (rr == r - 1) {
      rr = 0;
      if (g == groups - 1) { g = 0; row0 += r; } else { ++g; }
    } else {
      ++rr;
    }
  }
}

/// Checks the run-time configuration of a linear layer; ERR_CONFIG if the build
/// cannot run it.
template <class C, int K_MAX>
inline int chain_check(int mode, int wbits, int rows, int k, int group_size) {
  if (!mode_ok<C>(mode, wbits)) return ERR_CONFIG;
  const int m = mode_m<C>(mode);
  if (rows < 1 || k < m || k > K_MAX || k % m || group_size < m || group_size % m ||
      k % group_size || mode_n<C>(mode) % C::CASCADE)
    return ERR_CONFIG;
  return 0;
}

/// Dataflow of one linear layer for two token rows: load -> chain -> dequant
/// (n_beats = chain_beats(), groups = k / group_size, computed by the caller so that the
/// region holds only declarations and process calls).
template <class C, int K_MAX>
void chain_linear_dataflow(const int8_t* x, const CodeWord<C>* codes, const IdxWord<C>* idx,
                           const uint16_t* mant, int mode, int wbits, int rows, int k,
                           int group_size, int n_beats, int groups, int64_t* p, int* err) {
#pragma HLS DATAFLOW
  stream<Beat<C>> beats("beats");
#pragma HLS STREAM variable = beats depth = 4
  stream<AccOut<C>> accs("accs");
#pragma HLS STREAM variable = accs depth = 4
  chain_load<C, K_MAX>(x, codes, idx, mode, rows, k, group_size, beats);
  chain_engine<C>(beats, accs, mode, wbits, n_beats, err);
  chain_dequant<C>(accs, mant, mode, rows, groups, p);
}

/// One linear layer (the body of the generated top): checks the configuration, then
/// runs the dataflow.  Returns the ERR_* mask.
template <class C, int K_MAX>
int chain_linear(const int8_t* x, const CodeWord<C>* codes, const IdxWord<C>* idx,
                 const uint16_t* mant, int mode, int wbits, int rows, int k, int group_size,
                 int64_t* p) {
#pragma HLS INLINE
  const int e = chain_check<C, K_MAX>(mode, wbits, rows, k, group_size);
  if (e) return e;
  int err = 0;
  chain_linear_dataflow<C, K_MAX>(x, codes, idx, mant, mode, wbits, rows, k, group_size,
                                  chain_beats<C>(mode, rows, k), k / group_size, p, &err);
  return err;
}

}  // namespace dsp
}  // namespace plait

#endif  // PLAIT_DSP_CHAIN_H
