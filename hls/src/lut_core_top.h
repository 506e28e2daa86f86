// lut_core_top.h -- declaration of the generated LUT-core top (lut_core_top.cpp).
// The build directory provides the generated headers:
//   lut_core_pkg.h      LutCoreConfig.cpp_header() (the same object as lut_core_pkg.sv)
//   plait_hls_build.h   HLS-only build constants (PLAIT_K_MAX: on-chip activation buffer)
#ifndef PLAIT_LUT_CORE_TOP_H
#define PLAIT_LUT_CORE_TOP_H

#include "lut_core_pkg.h"
#include "plait_hls_build.h"
#include "plait_lut_core.h"

using lut_plane_word = plait::lut::PlaneWord<lut_core_pkg>;

/// One linear layer on the LUT tensor core for up to M token rows.
///   x      int8 [m_rows][k]
///   planes pack field `planes`     [tiles * k/4 * bits] words of ceil(N/2) bytes
///   zp     pack field `zp`         int8 [rows][k / group_size] (odd-grid zero points)
///   mant   pack field `mant`       uint16 [rows][k / group_size]
///   bits   weight planes (1..MAX_BITS; ternary 2), offset: zero correction + halving
///          (RTL cfg_offset: scheme sym / asym / ternary), group_size: G (cfg_group_chunks*4)
///   p      int64 [m_rows][rows]    the 48-bit P (sign-extended)
///   err    plait::lut::ERR_* mask (0: ok)
void lut_core_top(const int8_t* x, const lut_plane_word* planes, const int8_t* zp,
                  const uint16_t* mant, int bits, int offset, int m_rows, int rows, int k,
                  int group_size, int64_t* p, int* err);

#endif  // PLAIT_LUT_CORE_TOP_H
