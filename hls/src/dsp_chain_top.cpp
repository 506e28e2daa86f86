// dsp_chain_top.cpp -- Vitis HLS top of the sparse DSP chain: one linear layer, the
// weights streamed from memory in the artifact's packed format (plait.ir.numerics.pack,
// DspPacked), never held on chip.  Instantiated by the generated dsp_chain_pkg.h.
#include "dsp_chain_top.h"

void dsp_chain_top(const int8_t* x, const dsp_code_word* codes, const dsp_idx_word* idx,
                   const uint16_t* mant, int mode, int wbits, int rows, int k, int group_size,
                   int64_t* p, int* err) {
#pragma HLS INTERFACE m_axi port = x offset = slave bundle = gmem_act depth = 256
#pragma HLS INTERFACE m_axi port = codes offset = slave bundle = gmem_w depth = 256
#pragma HLS INTERFACE m_axi port = idx offset = slave bundle = gmem_idx depth = 256
#pragma HLS INTERFACE m_axi port = mant offset = slave bundle = gmem_scale depth = 256
#pragma HLS INTERFACE m_axi port = p offset = slave bundle = gmem_out depth = 256
#pragma HLS INTERFACE s_axilite port = mode
#pragma HLS INTERFACE s_axilite port = wbits
#pragma HLS INTERFACE s_axilite port = rows
#pragma HLS INTERFACE s_axilite port = k
#pragma HLS INTERFACE s_axilite port = group_size
#pragma HLS INTERFACE s_axilite port = err
#pragma HLS INTERFACE s_axilite port = return
  *err = plait::dsp::chain_linear<dsp_chain_pkg, PLAIT_K_MAX>(x, codes, idx, mant, mode, wbits,
                                                               rows, k, group_size, p);
}
