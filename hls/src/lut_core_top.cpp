// lut_core_top.cpp -- Vitis HLS top of the LUT tensor core: one linear layer, the weight
// bit-planes, zero points and mantissas streamed from memory in the artifact's packed
// format (plait.ir.numerics.pack, LutPacked), never held on chip.  Instantiated by the
// generated lut_core_pkg.h.
#include "lut_core_top.h"

void lut_core_top(const int8_t* x, const lut_plane_word* planes, const int8_t* zp,
                  const uint16_t* mant, int bits, int offset, int m_rows, int rows, int k,
                  int group_size, int64_t* p, int* err) {
#pragma HLS INTERFACE m_axi port = x offset = slave bundle = gmem_act depth = 256
#pragma HLS INTERFACE m_axi port = planes offset = slave bundle = gmem_w depth = 256
#pragma HLS INTERFACE m_axi port = zp offset = slave bundle = gmem_zp depth = 256
#pragma HLS INTERFACE m_axi port = mant offset = slave bundle = gmem_scale depth = 256
#pragma HLS INTERFACE m_axi port = p offset = slave bundle = gmem_out depth = 256
#pragma HLS INTERFACE s_axilite port = bits
#pragma HLS INTERFACE s_axilite port = offset
#pragma HLS INTERFACE s_axilite port = m_rows
#pragma HLS INTERFACE s_axilite port = rows
#pragma HLS INTERFACE s_axilite port = k
#pragma HLS INTERFACE s_axilite port = group_size
#pragma HLS INTERFACE s_axilite port = err
#pragma HLS INTERFACE s_axilite port = return
  *err = plait::lut::lut_linear<lut_core_pkg, PLAIT_K_MAX>(x, planes, zp, mant, bits, offset,
                                                           m_rows, rows, k, group_size, p);
}
