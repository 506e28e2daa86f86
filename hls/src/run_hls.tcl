# run_hls.tcl -- Vitis HLS project of one plait engine.  GENERATED into the build
# directory by plait.hls.gen from hls/src/run_hls.tcl (placeholders @NAME@); run it from
# that directory:
#     vitis_hls -f run_hls.tcl            (C simulation, then C synthesis)
#     PLAIT_HLS_STEPS="csim csynth cosim export" vitis_hls -f run_hls.tcl
# The C simulation reads the golden vectors written by `plait hls csim` (vectors.txt).
set top        "@TOP@"
set part       "@PART@"
set clock_ns   @CLOCK_NS@
set build_dir  [file dirname [file normalize [info script]]]
set steps      [expr {[info exists ::env(PLAIT_HLS_STEPS)] ? $::env(PLAIT_HLS_STEPS) : "csim csynth"}]

open_project -reset "${build_dir}/@PROJECT@"
set_top $top
# PLAIT_USE_AP_TYPES: the C simulation uses ap_int / hls::stream too (synthesis does anyway)
set cflags "-std=c++14 -I${build_dir} -DPLAIT_USE_AP_TYPES"
foreach f {@SOURCES@} {
  add_files "${build_dir}/$f" -cflags $cflags
}
foreach f {@TB_SOURCES@} {
  add_files -tb "${build_dir}/$f" -cflags "$cflags -Wno-unknown-pragmas"
}
open_solution -reset "solution1" -flow_target vitis
set_part $part
create_clock -period $clock_ns -name default

if {[lsearch $steps csim] >= 0} {
  csim_design -argv "${build_dir}/vectors.txt"
}
if {[lsearch $steps csynth] >= 0} {
  csynth_design
}
if {[lsearch $steps cosim] >= 0} {
  cosim_design -argv "${build_dir}/vectors.txt"
}
if {[lsearch $steps export] >= 0} {
  export_design -format xo
}
exit
