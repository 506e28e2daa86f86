// plait HLS library: one decoder layer of exact mode (plait.ir.exact), chained from the
// special functions and the requantization of plait_sfu.h / plait_act.h:
//
//   h  = rmsnorm(x, g_in)            -> int8 rows (the q/k/v input's activation spec)
//   q, k, v = linears(h) -> FX       (linear_out_fx, fixed-point bias)
//   q, k = rope(q), rope(k)          (positions pos0 .. pos0+S-1)
//   a  = attention(q, k, v, cache)   (int8 KV cache, appended)
//   x1 = residual_add(x, o_proj(a))
//   h2 = rmsnorm(x1, g_post)         -> int8 rows (shared by gate and up)
//   y  = residual_add(x1, down(swiglu(gate(h2), up(h2))))
//
// The seven linears' integer products come from a policy `Lin` with
//     void operator()(int which, const int8_t *x8, int T, int K, int N, int64_t *P)
// that computes the engine's 48-bit P[T][N] of linear `which` (LIN_Q .. LIN_DOWN) on the
// int8 rows x8[T][K]: the DSP chain or the LUT core (plait_dsp_chain.h /
// plait_lut_core.h), or a reference product in a testbench.  The chain itself is this
// file's; a template policy (not a function pointer) keeps it synthesizable.
//
// A functional, sequential chain (the order and the integers of exact mode); the
// streaming dataflow top that overlaps the units is built from the same functions.
#ifndef PLAIT_LAYER_H
#define PLAIT_LAYER_H

#include <cstdint>

#include "plait_sfu.h"

namespace plait {

enum LinearId { LIN_Q = 0, LIN_K, LIN_V, LIN_O, LIN_GATE, LIN_UP, LIN_DOWN, LIN_COUNT };

// The activation spec of a linear's input (ir ActSpec): a scale per row, or one static
// scale m * 2^e (real units)
struct ActQuant {
    int dynamic;
    int64_t m;
    int64_t e;
};

struct LinearSpec {
    int e_w;                // the weight's shared scale exponent E
    const int64_t *bias;    // FX bias [N], or null
};

struct LayerSpec {
    int D, H, Hkv, hd, F;                 // hidden, heads, kv heads, head_dim, intermediate
    const int32_t *g_in, *g_post;         // RMSNorm weight mantissas [D]
    int e_in, e_post;                     // and their exponents
    const int64_t *eps_tab;               // sfu.rms_eps_table(eps) [34]
    const int32_t *rope_cos, *rope_sin;   // Q14 [n_pos][hd/2]
    int64_t attn_c;                       // score multiplier (sfu.attention_scale_code)
    int attn_r;
    ActQuant act_qkv, act_o, act_gu, act_down;
    LinearSpec lin[LIN_COUNT];
};

// Scratch of one call (S tokens): FX rows and int8 rows with their scales
struct LayerScratch {
    fx_t *h;        // [S][max(D, F)]
    fx_t *q;        // [S][H*hd]
    fx_t *k;        // [S][Hkv*hd]
    fx_t *v;        // [S][Hkv*hd]
    fx_t *qr;       // [S][H*hd]
    fx_t *kr;       // [S][Hkv*hd]
    fx_t *a;        // [S][H*hd]
    fx_t *x1;       // [S][D]
    fx_t *g;        // [S][F]
    fx_t *u;        // [S][F]
    int64_t *p;     // [S][max(D, F, H*hd)]
    int8_t *x8;     // [S][max(D, F, H*hd)]
    int64_t *m;     // [S]
    int64_t *e;     // [S]
};

// quantize rows v[T][K] by the spec -> x8, (m, e) per row
inline void quantize_input(const fx_t *v, int T, int K, const ActQuant &aq, int8_t *x8, int64_t *m,
                                  int64_t *e) {
    if (aq.dynamic) {
        quantize_dynamic(v, T, K, PLAIT_FX_FRAC, x8, m, e);
    } else {
        quantize_static(v, T, K, aq.m, aq.e, PLAIT_FX_FRAC, x8);
        for (int t = 0; t < T; t++) {
            m[t] = aq.m;
            e[t] = aq.e;
        }
    }
}

// one linear on already quantized rows: P from the engine, then FX
template <class Lin>
inline void linear_fx(Lin &lin, int which, const LayerSpec &sp, LayerScratch &w, int T, int K, int N,
                             fx_t *y) {
    lin(which, w.x8, T, K, N, w.p);
    linear_out_fx(w.p, T, N, sp.lin[which].e_w, w.m, w.e, sp.lin[which].bias, y);
}

// One decoder layer on x[S][D] (FX) at positions pos0..pos0+S-1 -> y[S][D] (FX).
// Returns 0, or -1 when the attention refused the sizes.
template <class Lin>
inline int decoder_layer(const fx_t *x, int S, int pos0, const LayerSpec &sp, Lin &lin, KVCache &kv,
                         LayerScratch &w, fx_t *y) {
    const int D = sp.D, F = sp.F, nq = sp.H * sp.hd, nkv = sp.Hkv * sp.hd;
    if (pos0 != kv.length) return -1;
    // attention block
    rmsnorm(x, S, D, sp.g_in, sp.e_in, sp.eps_tab, w.h);
    quantize_input(w.h, S, D, sp.act_qkv, w.x8, w.m, w.e);
    linear_fx(lin, LIN_Q, sp, w, S, D, nq, w.q);
    linear_fx(lin, LIN_K, sp, w, S, D, nkv, w.k);
    linear_fx(lin, LIN_V, sp, w, S, D, nkv, w.v);
    rope(w.q, S, sp.H, sp.hd, sp.rope_cos, sp.rope_sin, pos0, w.qr);
    rope(w.k, S, sp.Hkv, sp.hd, sp.rope_cos, sp.rope_sin, pos0, w.kr);
    if (attention(w.qr, w.kr, w.v, S, sp.H, sp.Hkv, sp.hd, sp.attn_c, sp.attn_r, kv, w.a) != 0) return -1;
    quantize_input(w.a, S, nq, sp.act_o, w.x8, w.m, w.e);
    linear_fx(lin, LIN_O, sp, w, S, nq, D, w.h);
    residual_add_vec(x, w.h, S * D, w.x1);
    // MLP block
    rmsnorm(w.x1, S, D, sp.g_post, sp.e_post, sp.eps_tab, w.h);
    quantize_input(w.h, S, D, sp.act_gu, w.x8, w.m, w.e);
    linear_fx(lin, LIN_GATE, sp, w, S, D, F, w.g);
    linear_fx(lin, LIN_UP, sp, w, S, D, F, w.u);
    swiglu_vec(w.g, w.u, S * F, w.h);
    quantize_input(w.h, S, F, sp.act_down, w.x8, w.m, w.e);
    linear_fx(lin, LIN_DOWN, sp, w, S, F, D, w.g);
    residual_add_vec(w.x1, w.g, S * D, y);
    return 0;
}

}  // namespace plait

#endif  // PLAIT_LAYER_H
