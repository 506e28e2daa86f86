// plait_skid_buffer -- full-throughput valid/ready register slice ("skid buffer").
//
// Breaks the combinational path of both the forward (valid/data) and the backward
// (ready) signals of a stream while sustaining one transfer per cycle.  Two payload
// registers: the output register (m_data) and a skid register that catches the word
// the upstream sends in the cycle in which the downstream deasserts m_ready (the
// upstream only sees the registered s_ready one cycle later).
//
// Handshake: a word moves when valid && ready at a rising clock edge (AXI-Stream
// rules: valid must not wait for ready).  Reset: synchronous, active low (rst_n).
// Payload registers are not reset (cheaper on FPGAs); m_data is meaningful only
// while m_valid is 1.
//
// Parameter default comes from the generated package plait_skid_buffer_pkg
// (plait.rtl.units.SkidBufferConfig); referenced as pkg::NAME because yosys 0.23
// cannot parse `import`.
module plait_skid_buffer #(
  parameter int WIDTH = plait_skid_buffer_pkg::WIDTH
) (
  input  logic             clk,
  input  logic             rst_n,
  // upstream (slave) side
  input  logic             s_valid,
  output logic             s_ready,
  input  logic [WIDTH-1:0] s_data,
  // downstream (master) side
  output logic             m_valid,
  input  logic             m_ready,
  output logic [WIDTH-1:0] m_data
);
  logic             skid_valid;
  logic [WIDTH-1:0] skid_data;
  logic             out_load;   // the output register takes a new word (or empties)

  // Ready is registered: we can accept whenever the skid register is empty.
  assign s_ready  = !skid_valid;
  assign out_load = m_ready || !m_valid;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      m_valid    <= 1'b0;
      skid_valid <= 1'b0;
    end else if (out_load) begin
      // output register free: drain the skid word first, else pass the input
      m_valid    <= skid_valid || s_valid;
      skid_valid <= 1'b0;
    end else if (s_valid && s_ready) begin
      // output stalled and a word arrives: park it in the skid register
      skid_valid <= 1'b1;
    end
  end

  always_ff @(posedge clk) begin
    if (out_load) begin
      m_data <= skid_valid ? skid_data : s_data;
    end
    if (!out_load && s_valid && s_ready) begin
      skid_data <= s_data;
    end
  end
endmodule : plait_skid_buffer
