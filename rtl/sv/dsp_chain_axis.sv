// dsp_chain_axis -- the sparse DSP chain (dsp_chain.sv) behind AXI4-Stream ports.
//
// Wiring only (no logic, no latency): the chain's input and output streams already
// follow the AXI4-Stream handshake (a word moves when tvalid && tready at a rising
// edge; a word offered stays offered, unchanged, until taken -- asserted in
// dsp_chain.sv), back-pressure included on both sides.
//
//   s_axis  one input beat per transfer; a packet is one quantization group (tlast on
//           its last beat).
//     tdata  {idx, w, act}: act [2*M_MAX*8] in the low bits (lane l, block position j
//            at [(l*M_MAX + j)*8 +: 8]), then the weight codes [N_DSP*CODE_W], then the
//            sparse indices [N_DSP*IDX_W] in the high bits (the layouts of in_act /
//            in_w / in_idx in dsp_chain.sv).
//     tuser  {wbits, mode}: mode [MODE_W] in the low bits, the weight width code
//            [WBITS_W] above it (per beat; a mode changes only between packets).
//   m_axis  one word per quantization group; every word is a one-transfer packet
//           (tlast = 1), as each input packet gives one.
//     tdata  the group sums (out_acc: lane l, row r at [(l*ROWS_MAX + r)*ACC_W +: ACC_W]).
//     tuser  the mode of the beats that produced it.
//   busy, err  as in dsp_chain.sv (err: a beat of a mode this build does not run).
// No tkeep/tstrb (every byte is meaningful), no tid/tdest.  Geometry: dsp_chain_pkg.
module dsp_chain_axis (
  input  logic clk,
  input  logic rst_n,
  input  logic s_axis_tvalid,
  output logic s_axis_tready,
  input  logic s_axis_tlast,
  input  logic [2*dsp_chain_pkg::M_MAX*8 + dsp_chain_pkg::N_DSP*(dsp_chain_pkg::CODE_W + dsp_chain_pkg::IDX_W)-1:0]
               s_axis_tdata,
  input  logic [dsp_chain_pkg::MODE_W + dsp_chain_pkg::WBITS_W-1:0] s_axis_tuser,
  output logic m_axis_tvalid,
  input  logic m_axis_tready,
  output logic m_axis_tlast,
  output logic [2*dsp_chain_pkg::ROWS_MAX*dsp_chain_pkg::ACC_W-1:0] m_axis_tdata,
  output logic [dsp_chain_pkg::MODE_W-1:0] m_axis_tuser,
  output logic busy,
  output logic err
);
  localparam int IN_ACT_W = 2 * dsp_chain_pkg::M_MAX * 8;
  localparam int IN_W_W   = dsp_chain_pkg::N_DSP * dsp_chain_pkg::CODE_W;
  localparam int IN_IDX_W = dsp_chain_pkg::N_DSP * dsp_chain_pkg::IDX_W;
  localparam int MODE_W = dsp_chain_pkg::MODE_W;
  dsp_chain u_chain (
    .clk, .rst_n,
    .in_valid (s_axis_tvalid),
    .in_ready (s_axis_tready),
    .in_last  (s_axis_tlast),
    .in_mode  (s_axis_tuser[0 +: MODE_W]),
    .in_wbits (s_axis_tuser[MODE_W +: dsp_chain_pkg::WBITS_W]),
    .in_act   (s_axis_tdata[0 +: IN_ACT_W]),
    .in_w     (s_axis_tdata[IN_ACT_W +: IN_W_W]),
    .in_idx   (s_axis_tdata[IN_ACT_W + IN_W_W +: IN_IDX_W]),
    .out_valid(m_axis_tvalid),
    .out_ready(m_axis_tready),
    .out_mode (m_axis_tuser),
    .out_acc  (m_axis_tdata),
    .busy, .err);
  assign m_axis_tlast = 1'b1;
endmodule
