// dsp_chain_top.h -- declaration of the generated DSP-chain top (dsp_chain_top.cpp).
// The build directory provides the generated headers:
//   dsp_chain_pkg.h     DspChainConfig.cpp_header() (the same object as dsp_chain_pkg.sv)
//   plait_hls_build.h   HLS-only build constants (PLAIT_K_MAX: on-chip activation buffer)
#ifndef PLAIT_DSP_CHAIN_TOP_H
#define PLAIT_DSP_CHAIN_TOP_H

#include "dsp_chain_pkg.h"
#include "plait_hls_build.h"
#include "plait_dsp_chain.h"

using dsp_code_word = plait::dsp::CodeWord<dsp_chain_pkg>;
using dsp_idx_word = plait::dsp::IdxWord<dsp_chain_pkg>;

/// One linear layer on the sparse DSP chain, for two token rows (the packed lanes).
///   x     int8 [2][k]              token row 0 (lane 0), then token row 1
///   codes pack field `codes`       [T] words of N_DSP bytes (bits-bit codes per slice)
///   idx   pack field `idx`         [T] words of N_DSP/2 bytes (sparse modes only)
///   mant  pack field `mant`        uint16 [rows][k / group_size]
///   mode  RTL in_mode code (dsp_chain_pkg::MODE_*), wbits the in_wbits code (WBITS_*)
///   p     int64 [2][rows]          the 48-bit P of every lane and row (sign-extended)
///   err   plait::dsp::ERR_* mask (0: ok)
void dsp_chain_top(const int8_t* x, const dsp_code_word* codes, const dsp_idx_word* idx,
                   const uint16_t* mant, int mode, int wbits, int rows, int k, int group_size,
                   int64_t* p, int* err);

#endif  // PLAIT_DSP_CHAIN_TOP_H
