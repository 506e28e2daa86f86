// layer_top.h -- declaration of the generated decoder-layer top (layer_top.cpp).
// The build directory provides the generated headers:
//   plait_layer_pkg.h   the layer config (shape, engine per linear, MAX_CTX; plait.hls.gen)
//   dsp_chain_pkg.h     DspChainConfig.cpp_header() of the target (same object as the SV package)
//   lut_core_pkg.h      LutCoreConfig.cpp_header() of the target
//   plait_hls_build.h   PLAIT_K_MAX (the engines' on-chip activation buffer)
//   plait_tables.h      the special functions' tables + the model's (plait.hls.tables)
#ifndef PLAIT_LAYER_TOP_H
#define PLAIT_LAYER_TOP_H

#include "plait_hls_build.h"
#include "plait_tables.h"
#include "plait_layer_pkg.h"
#include "plait_layer.h"

using layer_code_word = plait::dsp::CodeWord<layer_pkg::DSP>;
using layer_idx_word = plait::dsp::IdxWord<layer_pkg::DSP>;
using layer_plane_word = plait::lut::PlaneWord<layer_pkg::LUT>;

/// One decoder layer for S tokens at positions pos0 .. pos0+S-1 (a prefill chunk or a
/// decode step).
///   x, y        FX int64 [S][D]               the layer's input / output rows
///   gamma_in    int32 [D], gamma_post int32 [D]  RMSNorm weight mantissas (exponents in desc)
///   bias        FX int64                       q/k/v biases (LinDesc.bias_off; -1: none)
///   codes_*, idx_*, planes_*, zp_*, mant_*     packed weights of the stage's linears
///                                              (qkv: q, k, v; o; gu: gate, up; down), the
///                                              artifact's DspPacked / LutPacked fields
///   kc, vc      int8 [HKV][MAX_CTX][HD]        the layer's KV cache (external memory)
///   mk, ek      int16 [HKV][MAX_CTX][HD/QK_GROUP], mv, ev int16 [HKV][MAX_CTX]
///   desc        per-linear formats + offsets, activation specs, RMSNorm exponents
///   err         plait::LERR_* mask (0: ok)
void layer_top(const plait::fx_t* x, plait::fx_t* y, int S, int pos0, const int32_t* gamma_in,
               const int32_t* gamma_post, const plait::fx_t* bias,
               const layer_code_word* codes_qkv, const layer_idx_word* idx_qkv,
               const layer_plane_word* planes_qkv, const int8_t* zp_qkv, const uint16_t* mant_qkv,
               const layer_code_word* codes_o, const layer_idx_word* idx_o,
               const layer_plane_word* planes_o, const int8_t* zp_o, const uint16_t* mant_o,
               const layer_code_word* codes_gu, const layer_idx_word* idx_gu,
               const layer_plane_word* planes_gu, const int8_t* zp_gu, const uint16_t* mant_gu,
               const layer_code_word* codes_down, const layer_idx_word* idx_down,
               const layer_plane_word* planes_down, const int8_t* zp_down, const uint16_t* mant_down,
               int8_t* kc, int16_t* mk, int16_t* ek, int8_t* vc, int16_t* mv, int16_t* ev,
               plait::LayerDesc desc, int* err);

#endif  // PLAIT_LAYER_TOP_H
