// tb_sfu.cpp -- C-simulation testbench of plait_act.h / plait_sfu.h against golden
// vectors of plait.ir.numerics (written by plait.hls.sfu_tb; format: tb_common.h).
//
// A case is named "<function>/<n>"; its ints are the sizes and scalar parameters,
// its arrays the inputs and the numpy-expected outputs ("exp_*").  Every integer is
// compared; the first mismatch of a case is printed as
//     MISMATCH case=<function>/<n> array=<output> index=<i> got=<g> expected=<e>
#include <cstdint>
#include <string>
#include <vector>

#include "plait_sfu.h"
#include "tb_common.h"

using namespace plait;
typedef std::vector<int64_t> Arr;

template <class T>
static Arr widen(const std::vector<T> &v) {
    return Arr(v.begin(), v.end());
}

template <class T>
static Arr widen(const T *p, size_t n) {
    return Arr(p, p + n);
}

static bool run_case(const tb::Case &c) {
    const std::string fn = c.name.substr(0, c.name.find('/'));
    if (fn == "shift_round") {
        const Arr &x = c.a("x"), &s = c.a("s");
        Arr y(x.size());
        for (size_t i = 0; i < y.size(); i++) y[i] = shift_round(x[i], s[i]);
        return tb::check(c, "y", y, c.a("exp_y"));
    }
    if (fn == "rshift_round") {
        const Arr &x = c.a("x");
        const int r = int(c.i("r"));
        Arr y(x.size());
        for (size_t i = 0; i < y.size(); i++) y[i] = rshift_round(x[i], r);
        return tb::check(c, "y", y, c.a("exp_y"));
    }
    if (fn == "bitlen") {
        const Arr &x = c.a("x");
        Arr y(x.size());
        for (size_t i = 0; i < y.size(); i++) y[i] = bitlen(x[i]);
        return tb::check(c, "y", y, c.a("exp_y"));
    }
    if (fn == "isqrt") {
        const Arr &x = c.a("x");
        Arr y(x.size());
        for (size_t i = 0; i < y.size(); i++) y[i] = isqrt(x[i]);
        return tb::check(c, "y", y, c.a("exp_y"));
    }
    if (fn == "scale_from_amax") {
        const Arr &a = c.a("amax");
        Arr m(a.size()), e(a.size());
        for (size_t i = 0; i < a.size(); i++) scale_from_amax(a[i], m[i], e[i]);
        return tb::check(c, "m", m, c.a("exp_m")) && tb::check(c, "e", e, c.a("exp_e"));
    }
    if (fn == "quantize_rows") {
        const int T = int(c.i("T")), D = int(c.i("D"));
        std::vector<int8_t> q(size_t(T) * D);
        quantize_rows(c.a("v").data(), c.a("m").data(), c.a("e").data(), T, D, q.data());
        return tb::check(c, "q", widen(q), c.a("exp_q"));
    }
    if (fn == "quantize_dynamic") {
        const int T = int(c.i("T")), D = int(c.i("D")), frac = int(c.i("frac"));
        std::vector<int8_t> q(size_t(T) * D);
        Arr m(T), e(T);
        quantize_dynamic(c.a("v").data(), T, D, frac, q.data(), m.data(), e.data());
        return tb::check(c, "q", widen(q), c.a("exp_q")) && tb::check(c, "m", m, c.a("exp_m")) &&
               tb::check(c, "e", e, c.a("exp_e"));
    }
    if (fn == "quantize_static") {
        const int T = int(c.i("T")), D = int(c.i("D"));
        std::vector<int8_t> q(size_t(T) * D);
        quantize_static(c.a("v").data(), T, D, c.i("m"), c.i("e"), int(c.i("frac")), q.data());
        return tb::check(c, "q", widen(q), c.a("exp_q"));
    }
    if (fn == "linear_out_fx") {
        const int T = int(c.i("T")), N = int(c.i("N"));
        Arr y(size_t(T) * N);
        linear_out_fx(c.a("p").data(), T, N, int(c.i("e_w")), c.a("m").data(), c.a("e").data(),
                      c.has("bias") ? c.a("bias").data() : nullptr, y.data());
        return tb::check(c, "y", y, c.a("exp_y"));
    }
    if (fn == "rmsnorm") {
        const int T = int(c.i("T")), D = int(c.i("D"));
        const std::vector<int32_t> gq = c.as<int32_t>("gq");
        Arr y(size_t(T) * D);
        if (c.has("eps_table")) {
            rmsnorm(c.a("x").data(), T, D, gq.data(), int(c.i("e_g")), c.a("eps_table").data(), y.data());
        } else {
#ifdef PLAIT_HAS_MODEL_TABLES
            static const Arr eps = widen(PLAIT_RMS_EPS, PLAIT_RMS_EPS_ENTRIES);   // the header's table
            rmsnorm(c.a("x").data(), T, D, gq.data(), int(c.i("e_g")), eps.data(), y.data());
#else
            throw std::runtime_error("no eps_table and plait_tables.h has no model tables");
#endif
        }
        return tb::check(c, "y", y, c.a("exp_y"));
    }
    if (fn == "rope") {
        const int S = int(c.i("S")), H = int(c.i("H")), hd = int(c.i("hd")), pos0 = int(c.i("pos0"));
        Arr y(size_t(S) * H * hd);
        if (c.has("cos")) {
            const std::vector<int32_t> cs = c.as<int32_t>("cos"), sn = c.as<int32_t>("sin");
            rope(c.a("x").data(), S, H, hd, cs.data(), sn.data(), pos0, y.data());
        } else {
#ifdef PLAIT_HAS_MODEL_TABLES
            if (hd != 2 * PLAIT_ROPE_HALF || pos0 + S > PLAIT_ROPE_N_POS)
                throw std::runtime_error("rope case outside the header's RoPE tables");
            rope(c.a("x").data(), S, H, hd, &PLAIT_ROPE_COS[0][0], &PLAIT_ROPE_SIN[0][0], pos0, y.data());
#else
            throw std::runtime_error("no cos/sin and plait_tables.h has no model tables");
#endif
        }
        return tb::check(c, "y", y, c.a("exp_y"));
    }
    if (fn == "sigmoid" || fn == "silu") {
        const Arr &x = c.a("x");
        Arr y(x.size());
        if (fn == "sigmoid") sigmoid_vec(x.data(), int(x.size()), y.data());
        else silu_vec(x.data(), int(x.size()), y.data());
        return tb::check(c, "y", y, c.a("exp_y"));
    }
    if (fn == "mul_fx" || fn == "swiglu" || fn == "residual_add") {
        const Arr &a = c.a("a"), &b = c.a("b");
        Arr y(a.size());
        if (fn == "mul_fx") mul_fx_vec(a.data(), b.data(), int(a.size()), y.data());
        else if (fn == "swiglu") swiglu_vec(a.data(), b.data(), int(a.size()), y.data());
        else residual_add_vec(a.data(), b.data(), int(a.size()), y.data());
        return tb::check(c, "y", y, c.a("exp_y"));
    }
    if (fn == "attention") {
        // steps of S_i tokens through one cache: q<i>, k<i>, v<i> in, exp_out<i>; then the
        // final cache contents exp_cache_{k,mk,ek,v,mv,ev} ([Hkv][T][...])
        const int H = int(c.i("H")), Hkv = int(c.i("Hkv")), hd = int(c.i("hd")), cap = int(c.i("cap"));
        const int R = int(c.i("R")), n_steps = int(c.i("steps"));
        const int64_t C = c.i("C");
        const int ng = hd / qk_group(hd);
        std::vector<int8_t> kc(size_t(Hkv) * cap * hd), vc(size_t(Hkv) * cap * hd);
        std::vector<int16_t> mk(size_t(Hkv) * cap * ng), ek(size_t(Hkv) * cap * ng), mv(size_t(Hkv) * cap),
            ev(size_t(Hkv) * cap);
        KVCache kv{kc.data(), mk.data(), ek.data(), vc.data(), mv.data(), ev.data(), cap, 0};
        for (int st = 0; st < n_steps; st++) {
            const std::string i = std::to_string(st);
            const Arr &q = c.a("q" + i), &k = c.a("k" + i), &v = c.a("v" + i);
            const int S = int(q.size() / (size_t(H) * hd));
            Arr out(size_t(S) * H * hd);
            if (attention(q.data(), k.data(), v.data(), S, H, Hkv, hd, C, R, kv, out.data()) != 0)
                throw std::runtime_error("attention refused the sizes (cache capacity or PLAIT_MAX_*)");
            if (!tb::check(c, ("out" + i).c_str(), out, c.a("exp_out" + i))) return false;
        }
        const int T = kv.length;
        Arr got[6];
        for (int h = 0; h < Hkv; h++)
            for (int t = 0; t < T; t++) {
                const size_t slot = size_t(h) * cap + t;
                for (int j = 0; j < hd; j++) got[0].push_back(kc[slot * hd + j]), got[3].push_back(vc[slot * hd + j]);
                for (int j = 0; j < ng; j++) got[1].push_back(mk[slot * ng + j]), got[2].push_back(ek[slot * ng + j]);
                got[4].push_back(mv[slot]);
                got[5].push_back(ev[slot]);
            }
        const char *names[6] = {"cache_k", "cache_mk", "cache_ek", "cache_v", "cache_mv", "cache_ev"};
        for (int f = 0; f < 6; f++)
            if (!tb::check(c, names[f], got[f], c.a(std::string("exp_") + names[f]))) return false;
        return true;
    }
    if (fn == "tables") {                     // the header the testbench was built with
        bool ok = tb::check(c, "EXP2", widen(PLAIT_EXP2, PLAIT_EXP2_ENTRIES), c.a("exp_EXP2")) &&
                  tb::check(c, "SIG", widen(PLAIT_SIG, PLAIT_SIG_ENTRIES), c.a("exp_SIG")) &&
                  tb::check(c, "RECIP", widen(PLAIT_RECIP, PLAIT_A_MANT_MAX - PLAIT_A_MANT_MIN + 1),
                            c.a("exp_RECIP"));
        if (ok && c.has("exp_RMS_EPS")) {
#ifdef PLAIT_HAS_MODEL_TABLES
            const size_t nr = size_t(PLAIT_ROPE_N_POS) * PLAIT_ROPE_HALF;
            ok = tb::check(c, "RMS_EPS", widen(PLAIT_RMS_EPS, PLAIT_RMS_EPS_ENTRIES), c.a("exp_RMS_EPS")) &&
                 tb::check(c, "ROPE_COS", widen(&PLAIT_ROPE_COS[0][0], nr), c.a("exp_ROPE_COS")) &&
                 tb::check(c, "ROPE_SIN", widen(&PLAIT_ROPE_SIN[0][0], nr), c.a("exp_ROPE_SIN")) &&
                 tb::check(c, "ATTN_C", PLAIT_ATTN_C, c.i("exp_C")) && tb::check(c, "ATTN_R", PLAIT_ATTN_R, c.i("exp_R"));
#else
            throw std::runtime_error("plait_tables.h has no model tables");
#endif
        }
        return ok;
    }
    throw std::runtime_error("unknown function '" + fn + "'");
}

int main(int argc, char **argv) { return tb::run_all(argc, argv, run_case); }
