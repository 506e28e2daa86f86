// tb_layer.cpp -- C-simulation testbench of layer_top (layer_top.cpp, the dataflow of
// plait_layer.h): one decoder layer through a prefill and decode steps, against exact
// mode's integers (plait.ir.exact; vectors by plait.hls.layer_tb, format tb_common.h).
//
// Per case: the packed memory images of the layer's seven linears (DspPacked /
// LutPacked fields, concatenated; LinDesc offsets), the RMSNorm mantissas, the
// activation specs; per step i the input rows x<i> and the expected output exp_y<i>;
// after the last step the KV cache (exp_kc, exp_mk, exp_ek, exp_vc, exp_mv, exp_ev,
// [HKV][length][...]) and the error mask (0).
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "layer_top.h"
#include "tb_common.h"

using namespace plait;
typedef std::vector<int64_t> Arr;
typedef layer_pkg L;

template <class W>
static std::vector<W> words(const tb::Case& c, const std::string& key) {
  const Arr& b = c.a(key);
  if (b.size() % sizeof(W)) throw std::runtime_error(key + ": not a whole number of words");
  std::vector<W> out(b.size() / sizeof(W) + 1);   // +1: never an empty vector
  std::vector<uint8_t> bytes(b.begin(), b.end());
  if (!bytes.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

static const char* LIN[LIN_COUNT] = {"q", "k", "v", "o", "gate", "up", "down"};
static const char* ACT[ACT_COUNT] = {"qkv", "o", "gu", "down"};

// cache rows [HKV][cap][w] -> [HKV][len][w]
template <class T>
static Arr cache_rows(const std::vector<T>& buf, int cap, int len, int w) {
  Arr out;
  for (int h = 0; h < L::HKV; h++)
    for (int t = 0; t < len; t++)
      for (int j = 0; j < w; j++) out.push_back(buf[(size_t(h) * cap + t) * w + j]);
  return out;
}

static bool run_case(const tb::Case& c) {
  const int shape[5] = {L::D, L::H, L::HKV, L::HD, L::F};
  const char* names[5] = {"D", "H", "Hkv", "hd", "F"};
  for (int i = 0; i < 5; i++)
    if (!tb::check(c, (std::string("config.") + names[i]).c_str(), shape[i], c.i(names[i]))) return false;
  for (int i = 0; i < LIN_COUNT; i++)
    if (!tb::check(c, (std::string("config.engine_") + LIN[i]).c_str(), L::ENGINE(i), c.i(std::string("engine_") + LIN[i])))
      return false;
  LayerDesc desc;
  for (int i = 0; i < LIN_COUNT; i++) {
    const std::string p = std::string("lin_") + LIN[i] + "_";
    LinDesc& d = desc.lin[i];
    d.mode = int(c.i(p + "mode")), d.wbits = int(c.i(p + "wbits")), d.bits = int(c.i(p + "bits"));
    d.offset = int(c.i(p + "offset")), d.group_size = int(c.i(p + "group_size")), d.e_w = int(c.i(p + "e_w"));
    d.w_off = int(c.i(p + "w_off")), d.idx_off = int(c.i(p + "idx_off")), d.s_off = int(c.i(p + "s_off"));
    d.bias_off = int(c.i(p + "bias_off"));
  }
  for (int i = 0; i < ACT_COUNT; i++) {
    const std::string p = std::string("act_") + ACT[i] + "_";
    desc.act[i] = ActDesc{int(c.i(p + "dynamic")), int(c.i(p + "m", 0)), int(c.i(p + "e", 0))};
  }
  desc.e_in = int(c.i("e_in")), desc.e_post = int(c.i("e_post"));
  const std::vector<layer_code_word> codes = words<layer_code_word>(c, "mem_codes");
  const std::vector<layer_idx_word> idx = words<layer_idx_word>(c, "mem_idx");
  const std::vector<layer_plane_word> planes = words<layer_plane_word>(c, "mem_planes");
  const std::vector<int8_t> zp = c.as<int8_t>("mem_zp");
  const std::vector<uint16_t> mant = c.as<uint16_t>("mem_mant");
  Arr bias = c.a("mem_bias");
  bias.push_back(0);
  const std::vector<int32_t> g_in = c.as<int32_t>("gamma_in"), g_post = c.as<int32_t>("gamma_post");
  const int cap = L::MAX_CTX, ng = L::HD / qk_group(L::HD);
  std::vector<int8_t> kc(size_t(L::HKV) * cap * L::HD), vc(kc.size());
  std::vector<int16_t> mk(size_t(L::HKV) * cap * ng), ek(mk.size()), mv(size_t(L::HKV) * cap), ev(mv.size());
  const int n_steps = int(c.i("steps"));
  int pos = 0;
  for (int st = 0; st < n_steps; st++) {
    const std::string i = std::to_string(st);
    const Arr& x = c.a("x" + i);
    const int S = int(x.size() / L::D);
    Arr y(x.size(), 0);
    int err = -1;
    layer_top(x.data(), y.data(), S, pos, g_in.data(), g_post.data(), bias.data(),
              codes.data(), idx.data(), planes.data(), zp.data(), mant.data(),
              codes.data(), idx.data(), planes.data(), zp.data(), mant.data(),
              codes.data(), idx.data(), planes.data(), zp.data(), mant.data(),
              codes.data(), idx.data(), planes.data(), zp.data(), mant.data(),
              kc.data(), mk.data(), ek.data(), vc.data(), mv.data(), ev.data(), desc, &err);
    if (!tb::check(c, ("err" + i).c_str(), err, c.i("err_expected", 0))) return false;
    if (err) return true;                           // an expected refusal: nothing more to compare
    if (!tb::check(c, ("y" + i).c_str(), y, c.a("exp_y" + i))) return false;
    pos += S;
  }
  if (!c.has("exp_kc")) return true;
  return tb::check(c, "cache.k", cache_rows(kc, cap, pos, L::HD), c.a("exp_kc")) &&
         tb::check(c, "cache.mk", cache_rows(mk, cap, pos, ng), c.a("exp_mk")) &&
         tb::check(c, "cache.ek", cache_rows(ek, cap, pos, ng), c.a("exp_ek")) &&
         tb::check(c, "cache.v", cache_rows(vc, cap, pos, L::HD), c.a("exp_vc")) &&
         tb::check(c, "cache.mv", cache_rows(mv, cap, pos, 1), c.a("exp_mv")) &&
         tb::check(c, "cache.ev", cache_rows(ev, cap, pos, 1), c.a("exp_ev"));
}

int main(int argc, char** argv) { return tb::run_all(argc, argv, run_case); }
