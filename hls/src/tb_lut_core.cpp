// tb_lut_core.cpp -- C-simulation testbench of the LUT tensor core against golden vectors
// of plait.ir.numerics (written by plait.hls.csim).  Per case:
//   tables  (if `tables_expected`): precompute of every chunk == numerics.lut.lut_precompute,
//           and lookup of all 16 indices == lut_full_table (table symmetrization)
//   groups  (if `grp_expected`): the lookup array's group integers A on the packed
//           streams == lut_trace(...).grp (== group_accumulate)
//   top     lut_core_top on the packed memory images: err == `err_expected`, and if that
//           is 0, P == lut_trace(...).p (== linear_int)
#include <vector>

#include "lut_core_top.h"
#include "tb_common.h"

using C = lut_core_pkg;
using namespace plait;

static bool run_case(const tb::Case& c) {
  const int bits = int(c.i("bits")), offset = int(c.i("offset")), m_rows = int(c.i("m_rows"));
  const int rows = int(c.i("rows")), k = int(c.i("k")), gs = int(c.i("group_size"));
  const std::vector<int8_t> x = c.as<int8_t>("x");
  const std::vector<uint8_t> planes_b = c.as<uint8_t>("planes");
  const std::vector<int8_t> zp = c.as<int8_t>("zp");
  const std::vector<uint16_t> mant = c.as<uint16_t>("mant");
  constexpr int PW = (C::N + 1) / 2;
  std::vector<lut_plane_word> planes(planes_b.size() / PW);
  for (size_t t = 0; t < planes.size(); ++t)
    for (int j = 0; j < PW; ++j) planes[t].b[j] = planes_b[t * PW + j];
  // the pack must be for this build's geometry
  bool ok = tb::check(c, "config.tile_n", int64_t(C::N), c.i("tile_n", C::N));
  if (!ok) return false;

  if (c.has("tables_expected")) {
    std::vector<int64_t> got, full;
    for (int m = 0; m < m_rows; ++m)
      for (int ch = 0; ch < k / 4; ++ch) {
        sint<C::ACT_W> xa[C::K];
        for (int j = 0; j < C::K; ++j) xa[j] = x[size_t(m) * k + ch * 4 + j];
        sint<C::TBL_W> s[8];
        lut::precompute<C>(xa, s);
        for (int j = 0; j < 8; ++j) got.push_back(s[j]);
        for (int idx = 0; idx < 16; ++idx) full.push_back(lut::lookup<C::TBL_W>(s, idx));
      }
    ok = ok && tb::check(c, "tables", got, c.a("tables_expected"));
    ok = ok && tb::check(c, "lookups", full, c.a("full_expected"));
  }

  const int cfg_err = lut::lut_check<C, PLAIT_K_MAX>(bits, m_rows, rows, k, gs);
  if (c.has("grp_expected") && ok && cfg_err == 0) {   // loads + lookup array
    const int tiles = (rows + C::N - 1) / C::N, groups = k / gs;
    stream<lut::ABeat<C>> a("a");
    stream<lut::WBeat<C>> w("w");
    stream<lut::SBeat<C>> s("s");
    stream<lut::GrpOut<C>> grp("grp");
    int ezp = 0, eodd = 0;
    lut::lut_load_a<C, PLAIT_K_MAX>(x.data(), m_rows, k, tiles, a);
    lut::lut_load_w<C>(planes.data(), tiles * (k / 4) * bits, w);
    lut::lut_load_s<C>(mant.data(), zp.data(), bits, rows, groups, tiles, s, &ezp);
    lut::lut_accumulate<C>(a, w, s, bits, offset, gs / 4, tiles * groups, grp, &eodd);
    // A[m][col][g] for the real rows / columns (lut_trace(...).grp layout)
    std::vector<int64_t> got(size_t(m_rows) * rows * groups, 0);
    for (int t = 0; t < tiles; ++t)
      for (int g = 0; g < groups; ++g) {
        const lut::GrpOut<C> o = grp.read();
        for (int m = 0; m < m_rows; ++m)
          for (int n = 0; n < C::N && t * C::N + n < rows; ++n)
            got[(size_t(m) * rows + t * C::N + n) * groups + g] = o.a[m][n];
      }
    ok = ok && tb::check(c, "groups.err", ezp | eodd, 0);
    ok = ok && tb::check(c, "groups.a", got, c.a("grp_expected"));
    ok = ok && tb::check(c, "groups.leftover", int64_t(a.size() + w.size() + s.size() + grp.size()), 0);
  }

  if (ok) {
    std::vector<int64_t> p(size_t(m_rows) * rows, 0);
    int err = 0;
    lut_core_top(x.data(), planes.data(), zp.data(), mant.data(), bits, offset, m_rows, rows, k,
                 gs, p.data(), &err);
    ok = ok && tb::check(c, "top.err", err, c.i("err_expected", 0));
    if (ok && c.i("err_expected", 0) == 0) ok = tb::check(c, "top.p", p, c.a("p_expected"));
  }
  return ok;
}

int main(int argc, char** argv) { return tb::run_all(argc, argv, run_case); }
