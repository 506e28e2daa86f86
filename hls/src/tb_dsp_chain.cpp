// tb_dsp_chain.cpp -- C-simulation testbench of the DSP chain against golden vectors of
// plait.ir.numerics (written by plait.hls.csim).  Per case:
//   load   (if the case has `sched_*`): chain_load's beats == numerics.dsp.schedule_chain
//   engine (if `acc_expected`): chain_engine on the schedule's beats == run_schedule
//   top    dsp_chain_top on the packed memory images: err == `err_expected`, and if that
//          is 0, P == numerics.common.linear_int (both lanes)
#include <vector>

#include "dsp_chain_top.h"
#include "tb_common.h"

using C = dsp_chain_pkg;
using namespace plait;

static bool run_case(const tb::Case& c) {
  const int mode = int(c.i("mode")), wbits = int(c.i("wbits")), rows = int(c.i("rows"));
  const int k = int(c.i("k")), gs = int(c.i("group_size"));
  const std::vector<int8_t> x = c.as<int8_t>("x");
  const std::vector<uint8_t> codes_b = c.as<uint8_t>("codes");
  std::vector<uint8_t> idx_b = c.as<uint8_t>("idx");
  const std::vector<uint16_t> mant = c.as<uint16_t>("mant");
  const int n_words = int(codes_b.size() / C::N_DSP);
  std::vector<dsp_code_word> codes(n_words);
  std::vector<dsp_idx_word> idx(n_words);
  for (int t = 0; t < n_words; ++t) {
    for (int i = 0; i < C::N_DSP; ++i) codes[t].b[i] = codes_b[size_t(t) * C::N_DSP + i];
    for (int i = 0; i < C::N_DSP / 2 && !idx_b.empty(); ++i)
      idx[t].b[i] = idx_b[size_t(t) * (C::N_DSP / 2) + i];
  }
  // the pack must be for this build's geometry
  bool ok = tb::check(c, "config.n_dsp", int64_t(C::N_DSP), c.i("n_dsp", C::N_DSP));
  if (!ok) return false;
  const int cfg_err = dsp::chain_check<C, PLAIT_K_MAX>(mode, wbits, rows, k, gs);

  if (c.has("sched_act") && cfg_err == 0) {        // load stage vs schedule_chain
    stream<dsp::Beat<C>> beats("beats");
    dsp::chain_load<C, PLAIT_K_MAX>(x.data(), codes.data(), idx.data(), mode, rows, k, gs, beats);
    std::vector<int64_t> act, cd, id, last;
    while (!beats.empty()) {
      const dsp::Beat<C> b = beats.read();
      for (int l = 0; l < 2; ++l)
        for (int p = 0; p < C::M_MAX; ++p) act.push_back(b.act[l][p]);
      for (int i = 0; i < C::N_DSP; ++i) cd.push_back(b.code[i]), id.push_back(b.idx[i]);
      last.push_back(b.last);
    }
    ok = ok && tb::check(c, "load.act", act, c.a("sched_act"));
    ok = ok && tb::check(c, "load.codes", cd, c.a("sched_codes"));
    ok = ok && tb::check(c, "load.idx", id, c.a("sched_idx"));
    ok = ok && tb::check(c, "load.last", last, c.a("sched_last"));
  }

  if (c.has("acc_expected") && ok && cfg_err == 0) {              // engine on the schedule's beats
    const auto& sa = c.a("sched_act");
    const auto& sc = c.a("sched_codes");
    const auto& si = c.a("sched_idx");
    const auto& sl = c.a("sched_last");
    stream<dsp::Beat<C>> in("in");
    stream<dsp::AccOut<C>> out("out");
    for (size_t t = 0; t < sl.size(); ++t) {
      dsp::Beat<C> b;
      for (int l = 0; l < 2; ++l)
        for (int p = 0; p < C::M_MAX; ++p) b.act[l][p] = sa[(t * 2 + l) * C::M_MAX + p];
      for (int i = 0; i < C::N_DSP; ++i) {
        b.code[i] = sc[t * C::N_DSP + i];
        b.idx[i] = si[t * C::N_DSP + i];
      }
      b.last = sl[t] != 0;
      in.write(b);
    }
    int err = 0;
    dsp::chain_engine<C>(in, out, mode, wbits, int(sl.size()), &err);
    const int r = C::N_DSP / dsp::mode_n<C>(mode);
    std::vector<int64_t> acc;
    while (!out.empty()) {
      const dsp::AccOut<C> o = out.read();
      for (int l = 0; l < 2; ++l)
        for (int rr = 0; rr < r; ++rr) acc.push_back(o.acc[l][rr]);
    }
    ok = ok && tb::check(c, "engine.err", err, 0);
    ok = ok && tb::check(c, "engine.acc", acc, c.a("acc_expected"));
  }

  if (ok) {                                         // the top on the packed images
    std::vector<int64_t> p(size_t(2) * rows, 0);
    int err = 0;
    dsp_chain_top(x.data(), codes.data(), idx.data(), mant.data(), mode, wbits, rows, k, gs,
                  p.data(), &err);
    ok = ok && tb::check(c, "top.err", err, c.i("err_expected", 0));
    if (ok && c.i("err_expected", 0) == 0) ok = tb::check(c, "top.p", p, c.a("p_expected"));
  }
  return ok;
}

int main(int argc, char** argv) { return tb::run_all(argc, argv, run_case); }
