// plait_mac -- pipelined signed multiply-accumulate (library block + synthesis probe).
//
//   stage 1: a_r, b_r   <- a, b              (input registers)
//   stage 2: m_r        <- a_r * b_r          (product register)
//   stage 3: acc        <- (clr ? 0 : acc) + m_r
//
// `in_valid` marks a product entering stage 1; `clr` travels with it and makes that
// product restart the accumulation.  `acc` is the running sum (ACC_W bits, wraps).
// Written so that yosys maps the product to a DSP slice (tests/test_synth.py uses it
// to prove the synth_xilinx flow reports DSP48E2 cells).
module plait_mac #(
  parameter int A_W   = 8,
  parameter int B_W   = 8,
  parameter int ACC_W = 32
) (
  input  logic                    clk,
  input  logic                    rst_n,
  input  logic                    in_valid,
  input  logic                    clr,
  input  logic signed [A_W-1:0]   a,
  input  logic signed [B_W-1:0]   b,
  output logic                    out_valid,
  output logic signed [ACC_W-1:0] acc
);
  logic signed [A_W-1:0]     a_r;
  logic signed [B_W-1:0]     b_r;
  logic signed [A_W+B_W-1:0] m_r;
  logic [1:0]                v_r;
  logic [1:0]                c_r;

  always_ff @(posedge clk) begin
    a_r <= a;
    b_r <= b;
    m_r <= a_r * b_r;
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      v_r       <= '0;
      c_r       <= '0;
      out_valid <= 1'b0;
      acc       <= '0;
    end else begin
      v_r       <= {v_r[0], in_valid};
      c_r       <= {c_r[0], clr};
      out_valid <= v_r[1];
      if (v_r[1]) begin
        acc <= (c_r[1] ? '0 : acc) + ACC_W'(m_r);
      end
    end
  end
endmodule : plait_mac
