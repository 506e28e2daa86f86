// lut_core_axis -- the LUT tensor core (lut_core.sv) behind AXI4-Stream ports.
//
// Wiring only (no logic, no latency): the core's four streams already follow the
// AXI4-Stream handshake (a word moves when tvalid && tready at a rising edge; a word
// offered stays offered until taken -- asserted in lut_core.sv), with back-pressure on
// every input and on the output.
//
//   s_axis_a  activations, one chunk of 4 per transfer (tdata = a_data).
//   s_axis_w  weight bit-planes, one plane of one chunk per transfer (tdata = w_data).
//   s_axis_s  group parameters, one group per transfer: tdata = {zp, mant} (s_mant
//             [N*MANT_W] in the low bits, s_zp [N*ZP_W] above it).
//   m_axis_o  the dequantized tile, N/DQ_LANES transfers per tile (tdata = o_p: M*DQ_LANES
//             P words), tlast on the tile's last.
// The input streams carry no tlast: the tile's shape (groups, group length, width)
// comes from the run-time configuration ports cfg_* (hold them stable while a tile is
// in flight; cfg_err flags an illegal one), which in a system sit in a register bank.
// Layouts and geometry: lut_core.sv, lut_core_pkg.
module lut_core_axis (
  input  logic clk,
  input  logic rst_n,
  input  logic [2:0]                     cfg_bits,
  input  logic                           cfg_offset,
  input  logic [lut_core_pkg::GC_W-1:0]  cfg_group_chunks,
  input  logic [lut_core_pkg::CNT_W-1:0] cfg_groups,
  output logic                           cfg_err,
  input  logic s_axis_a_tvalid,
  output logic s_axis_a_tready,
  input  logic [lut_core_pkg::M*4*lut_core_pkg::ACT_W-1:0] s_axis_a_tdata,
  input  logic s_axis_w_tvalid,
  output logic s_axis_w_tready,
  input  logic [lut_core_pkg::N*lut_core_pkg::IDX_W-1:0] s_axis_w_tdata,
  input  logic s_axis_s_tvalid,
  output logic s_axis_s_tready,
  input  logic [lut_core_pkg::N*(lut_core_pkg::MANT_W + lut_core_pkg::ZP_W)-1:0] s_axis_s_tdata,
  output logic m_axis_o_tvalid,
  input  logic m_axis_o_tready,
  output logic m_axis_o_tlast,
  output logic [lut_core_pkg::M*lut_core_pkg::DQ_LANES*lut_core_pkg::P_W-1:0] m_axis_o_tdata
);
  localparam int MT_W = lut_core_pkg::N * lut_core_pkg::MANT_W;
  localparam int Z_W  = lut_core_pkg::N * lut_core_pkg::ZP_W;
  lut_core u_core (
    .clk, .rst_n,
    .cfg_bits, .cfg_offset, .cfg_group_chunks, .cfg_groups, .cfg_err,
    .a_valid(s_axis_a_tvalid), .a_ready(s_axis_a_tready), .a_data(s_axis_a_tdata),
    .w_valid(s_axis_w_tvalid), .w_ready(s_axis_w_tready), .w_data(s_axis_w_tdata),
    .s_valid(s_axis_s_tvalid), .s_ready(s_axis_s_tready),
    .s_mant(s_axis_s_tdata[0 +: MT_W]), .s_zp(s_axis_s_tdata[MT_W +: Z_W]),
    .o_valid(m_axis_o_tvalid), .o_ready(m_axis_o_tready), .o_last(m_axis_o_tlast),
    .o_p(m_axis_o_tdata));
endmodule
