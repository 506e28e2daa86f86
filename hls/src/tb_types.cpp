// tb_types.cpp -- checks the portable plait::sint / plait::uint of plait_types.h against
// numerics.common.wrap (vectors from tests/test_hls_engines.py).  Per case: int `w`
// (the width), arrays `v` (values to assign), `sint_expected`, `uint_expected`,
// `add_expected` (sint<w>: v[i] + v[i+1] stored back), `shl_expected` (sint<w> <<= 3).
#include <vector>

#include "plait_types.h"
#include "tb_common.h"

namespace tb = plait::tb;

template <int W>
static bool run_w(const tb::Case& c) {
  const auto& v = c.a("v");
  std::vector<int64_t> s, u, add, shl;
  for (size_t i = 0; i < v.size(); ++i) {
    plait::sint<W> a = v[i];
    s.push_back(a);
    plait::uint<(W < 63 ? W : 63)> b = v[i];   // qualified: glibc has a ::uint typedef
    u.push_back(b);
    plait::sint<W> acc = v[i];
    acc += v[(i + 1) % v.size()];
    add.push_back(acc);
    plait::sint<W> sh = v[i];
    sh <<= 3;
    shl.push_back(sh);
  }
  bool ok = tb::check(c, "sint", s, c.a("sint_expected"));
  ok = ok && tb::check(c, "uint", u, c.a("uint_expected"));
  ok = ok && tb::check(c, "add", add, c.a("add_expected"));
  ok = ok && tb::check(c, "shl", shl, c.a("shl_expected"));
  return ok;
}

static bool run_case(const tb::Case& c) {
  switch (c.i("w")) {
    case 1: return run_w<1>(c);
    case 5: return run_w<5>(c);
    case 8: return run_w<8>(c);
    case 17: return run_w<17>(c);
    case 48: return run_w<48>(c);
    case 63: return run_w<63>(c);
    case 64: return run_w<64>(c);
    default: return false;
  }
}

int main(int argc, char** argv) { return tb::run_all(argc, argv, run_case); }
