// dsp_delay -- D-cycle delay line of a W-bit word (D = 0: a wire).  Used for the
// input skew of the cascade slices (slice j of a group sees its operands j cycles
// after slice 0, matching the one-cycle-per-slice PCOUT -> PCIN path).
module dsp_delay #(
  parameter int W = 8,
  parameter int D = 1
) (
  input  logic         clk,
  input  logic [W-1:0] d,
  output logic [W-1:0] q
);
  if (D == 0) begin : g_wire
    assign q = d;
    logic unused_clk;
    assign unused_clk = clk;
  end else if (D == 1) begin : g_one
    always_ff @(posedge clk) q <= d;
  end else begin : g_line
    logic [D*W-1:0] line;
    always_ff @(posedge clk) line <= {line[(D-1)*W-1:0], d};
    assign q = line[D*W-1 -: W];
  end
endmodule
