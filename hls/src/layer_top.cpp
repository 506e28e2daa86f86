// layer_top.cpp -- Vitis HLS top of one decoder layer: the dataflow of plait_layer.h
// (RMSNorm -> q/k/v on the engines -> RoPE -> attention over the KV cache -> o ->
// residual -> RMSNorm -> gate/up -> SwiGLU -> down -> residual), rows streamed between
// the stages, weights streamed from memory in the artifact's packed format (never held
// on chip), the int8 KV cache in external memory.  One AXI master per linear stage
// (its five weight ports share it), one for the KV cache, one for the activations.
#include "layer_top.h"

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
               plait::LayerDesc desc, int* err) {
#pragma HLS INTERFACE m_axi port = x offset = slave bundle = gmem_x depth = 576
#pragma HLS INTERFACE m_axi port = y offset = slave bundle = gmem_y depth = 576
#pragma HLS INTERFACE m_axi port = gamma_in offset = slave bundle = gmem_p depth = 576
#pragma HLS INTERFACE m_axi port = gamma_post offset = slave bundle = gmem_p2 depth = 576
#pragma HLS INTERFACE m_axi port = bias offset = slave bundle = gmem_qkv depth = 1
#pragma HLS INTERFACE m_axi port = codes_qkv offset = slave bundle = gmem_qkv depth = 256
#pragma HLS INTERFACE m_axi port = idx_qkv offset = slave bundle = gmem_qkv depth = 256
#pragma HLS INTERFACE m_axi port = planes_qkv offset = slave bundle = gmem_qkv depth = 256
#pragma HLS INTERFACE m_axi port = zp_qkv offset = slave bundle = gmem_qkv depth = 256
#pragma HLS INTERFACE m_axi port = mant_qkv offset = slave bundle = gmem_qkv depth = 256
#pragma HLS INTERFACE m_axi port = codes_o offset = slave bundle = gmem_o depth = 256
#pragma HLS INTERFACE m_axi port = idx_o offset = slave bundle = gmem_o depth = 256
#pragma HLS INTERFACE m_axi port = planes_o offset = slave bundle = gmem_o depth = 256
#pragma HLS INTERFACE m_axi port = zp_o offset = slave bundle = gmem_o depth = 256
#pragma HLS INTERFACE m_axi port = mant_o offset = slave bundle = gmem_o depth = 256
#pragma HLS INTERFACE m_axi port = codes_gu offset = slave bundle = gmem_gu depth = 256
#pragma HLS INTERFACE m_axi port = idx_gu offset = slave bundle = gmem_gu depth = 256
#pragma HLS INTERFACE m_axi port = planes_gu offset = slave bundle = gmem_gu depth = 256
#pragma HLS INTERFACE m_axi port = zp_gu offset = slave bundle = gmem_gu depth = 256
#pragma HLS INTERFACE m_axi port = mant_gu offset = slave bundle = gmem_gu depth = 256
#pragma HLS INTERFACE m_axi port = codes_down offset = slave bundle = gmem_down depth = 256
#pragma HLS INTERFACE m_axi port = idx_down offset = slave bundle = gmem_down depth = 256
#pragma HLS INTERFACE m_axi port = planes_down offset = slave bundle = gmem_down depth = 256
#pragma HLS INTERFACE m_axi port = zp_down offset = slave bundle = gmem_down depth = 256
#pragma HLS INTERFACE m_axi port = mant_down offset = slave bundle = gmem_down depth = 256
#pragma HLS INTERFACE m_axi port = kc offset = slave bundle = gmem_kv depth = 256
#pragma HLS INTERFACE m_axi port = mk offset = slave bundle = gmem_kv depth = 256
#pragma HLS INTERFACE m_axi port = ek offset = slave bundle = gmem_kv depth = 256
#pragma HLS INTERFACE m_axi port = vc offset = slave bundle = gmem_kv depth = 256
#pragma HLS INTERFACE m_axi port = mv offset = slave bundle = gmem_kv depth = 256
#pragma HLS INTERFACE m_axi port = ev offset = slave bundle = gmem_kv depth = 256
#pragma HLS INTERFACE s_axilite port = S
#pragma HLS INTERFACE s_axilite port = pos0
#pragma HLS INTERFACE s_axilite port = desc
#pragma HLS INTERFACE s_axilite port = err
#pragma HLS INTERFACE s_axilite port = return
  if (S < 1 || pos0 < 0 || pos0 + S > layer_pkg::MAX_CTX || pos0 + S > PLAIT_ROPE_N_POS) {
    *err = plait::LERR_SIZE;
    return;
  }
  plait::layer_dataflow<layer_pkg, PLAIT_K_MAX>(
      x, y, S, pos0, gamma_in, gamma_post, bias, codes_qkv, idx_qkv, planes_qkv, zp_qkv, mant_qkv, codes_o,
      idx_o, planes_o, zp_o, mant_o, codes_gu, idx_gu, planes_gu, zp_gu, mant_gu, codes_down, idx_down,
      planes_down, zp_down, mant_down, kc, mk, ek, vc, mv, ev, desc, err);
}
