// tb_layer.cpp -- C-simulation testbench of plait_layer.h: one decoder layer through
// prefill and decode steps, against exact mode's integers (plait.ir.exact, vectors by
// plait.hls.layer_tb; format: tb_common.h).
//
// The linears' P comes from RefLinear: the per-group integer product of the contract
// (numerics.common.linear_int: acc_g = sum_k q x, P = sum_g acc_g * mant_g) on the
// signed weights and mantissas the engines are fed.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "plait_layer.h"
#include "tb_common.h"

using namespace plait;
typedef std::vector<int64_t> Arr;

struct RefLinear {
    const int64_t *q[LIN_COUNT];       // signed weights [N][K]
    const int64_t *mant[LIN_COUNT];    // [N][K / G]
    int group[LIN_COUNT];
    void operator()(int which, const int8_t *x8, int T, int K, int N, int64_t *P) const {
        const int G = group[which], ng = K / G;
        for (int t = 0; t < T; t++)
            for (int n = 0; n < N; n++) {
                int64_t p = 0;
                for (int g = 0; g < ng; g++) {
                    int64_t acc = 0;
                    for (int j = 0; j < G; j++)
                        acc += q[which][int64_t(n) * K + g * G + j] * int64_t(x8[int64_t(t) * K + g * G + j]);
                    p += acc * mant[which][int64_t(n) * ng + g];
                }
                P[int64_t(t) * N + n] = p;
            }
    }
};

static const char *LIN_NAMES[LIN_COUNT] = {"q", "k", "v", "o", "gate", "up", "down"};

static ActQuant act(const tb::Case &c, const std::string &name) {
    return ActQuant{int(c.i("act_" + name + "_dynamic")), c.i("act_" + name + "_m", 0), c.i("act_" + name + "_e", 0)};
}

static bool run_case(const tb::Case &c) {
    const int D = int(c.i("D")), H = int(c.i("H")), Hkv = int(c.i("Hkv")), hd = int(c.i("hd")), F = int(c.i("F"));
    const int n_steps = int(c.i("steps")), cap = int(c.i("cap"));
    const std::vector<int32_t> g_in = c.as<int32_t>("g_in"), g_post = c.as<int32_t>("g_post");
    const std::vector<int32_t> cs = c.as<int32_t>("cos"), sn = c.as<int32_t>("sin");
    LayerSpec sp{};
    sp.D = D, sp.H = H, sp.Hkv = Hkv, sp.hd = hd, sp.F = F;
    sp.g_in = g_in.data(), sp.g_post = g_post.data();
    sp.e_in = int(c.i("e_in")), sp.e_post = int(c.i("e_post"));
    sp.eps_tab = c.a("eps_table").data();
    sp.rope_cos = cs.data(), sp.rope_sin = sn.data();
    sp.attn_c = c.i("C"), sp.attn_r = int(c.i("R"));
    sp.act_qkv = act(c, "qkv"), sp.act_o = act(c, "o"), sp.act_gu = act(c, "gu"), sp.act_down = act(c, "down");
    RefLinear lin{};
    for (int i = 0; i < LIN_COUNT; i++) {
        const std::string n = LIN_NAMES[i];
        lin.q[i] = c.a("w_" + n).data();
        lin.mant[i] = c.a("mant_" + n).data();
        lin.group[i] = int(c.i("group_" + n));
        sp.lin[i] = LinearSpec{int(c.i("e_w_" + n)), c.has("bias_" + n) ? c.a("bias_" + n).data() : nullptr};
    }
    const int ng = hd / qk_group(hd);
    std::vector<int8_t> kc(size_t(Hkv) * cap * hd), vc(size_t(Hkv) * cap * hd);
    std::vector<int16_t> mk(size_t(Hkv) * cap * ng), ek(size_t(Hkv) * cap * ng), mv(size_t(Hkv) * cap),
        ev(size_t(Hkv) * cap);
    KVCache kv{kc.data(), mk.data(), ek.data(), vc.data(), mv.data(), ev.data(), cap, 0};
    for (int st = 0; st < n_steps; st++) {
        const std::string i = std::to_string(st);
        const Arr &x = c.a("x" + i);
        const int S = int(x.size() / D);
        const size_t wide = size_t(S) * std::max(std::max(D, F), H * hd);
        Arr h(wide), q(size_t(S) * H * hd), k(size_t(S) * Hkv * hd), v(k.size()), qr(q.size()), kr(k.size()),
            a(q.size()), x1(size_t(S) * D), g(size_t(S) * F), u(g.size()), p(wide), m(S), e(S);
        std::vector<int8_t> x8(wide);
        LayerScratch w{h.data(), q.data(), k.data(), v.data(), qr.data(), kr.data(), a.data(), x1.data(),
                       g.data(), u.data(), p.data(), x8.data(), m.data(), e.data()};
        Arr y(size_t(S) * D);
        if (decoder_layer(x.data(), S, kv.length, sp, lin, kv, w, y.data()) != 0)
            throw std::runtime_error("decoder_layer refused the sizes");
        if (!tb::check(c, ("y" + i).c_str(), y, c.a("exp_y" + i))) return false;
    }
    return true;
}

int main(int argc, char **argv) { return tb::run_all(argc, argv, run_case); }
