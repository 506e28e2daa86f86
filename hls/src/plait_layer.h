// plait_layer.h -- one decoder layer of exact mode (plait.ir.exact) as a streaming
// dataflow of the HLS library's units: the special functions and requantization of
// plait_sfu.h / plait_act.h and the two engines (plait_dsp_chain.h, plait_lut_core.h).
//
//   read_x      memory -> x rows (FX)
//   norm_quant  h = rmsnorm(x, g_in) -> int8 rows + scale (the q/k/v input's ActSpec);
//               x forwarded to the residual stream
//   qkv_stage   q, k, v = linear(h) on the engine each is mapped to -> FX (+ FX bias)
//   rope_stage  q, k = rope(q), rope(k) at positions pos0 ..
//   attn_stage  a = attention(q, k, v, cache): K/V quantized and appended to the int8
//               KV cache in external memory, the row attends causally
//   quant_stage a -> int8 rows + scale (o's input spec)
//   o_stage     o = linear(a)
//   add_norm    x1 = residual_add(x, o); h2 = rmsnorm(x1, g_post) -> int8 (gate/up spec)
//   gu_stage    g, u = linear(h2); s = swiglu(g, u) -> int8 rows + scale (down's spec)
//   down_stage  d = linear(s)
//   add_write   y = residual_add(x1, d) -> memory; the error masks of the stages
//
// Stages exchange rows element by element through plait::stream (hls::stream under
// Vitis); every element loop is PIPELINE II=1.  A linear stage collects two rows
// (the DSP chain's two packed lanes; the LUT core takes up to its M rows per pass),
// streams the weight from its m_axi ports in the artifact's packed layout
// (numerics.pack: DspPacked / LutPacked fields, all linears of the layer concatenated,
// offsets in LinDesc) and never holds a weight matrix on chip.  Rows leave a stage in
// the order they entered, so a prefill of S tokens flows through the whole layer
// token by token; causal attention needs only the keys up to its own token, which
// attn_stage appended before it.
//
// L is the generated layer config struct (plait_layer_pkg.h, plait.hls.gen): D, H,
// HKV, HD, F, NQ, NKV, N_MAX, MAX_CTX, ENGINE(i) (ENG_DSP / ENG_LUT per LinearId),
// and the engine configs L::DSP (dsp_chain_pkg), L::LUT (lut_core_pkg).  Model tables
// (RMSNorm eps, RoPE, the attention multiplier) come from plait_tables.h.
#ifndef PLAIT_LAYER_H
#define PLAIT_LAYER_H

#include <cstdint>

#include "plait_dsp_chain.h"
#include "plait_lut_core.h"
#include "plait_sfu.h"
#include "plait_types.h"

#ifndef PLAIT_HAS_MODEL_TABLES
#error "plait_layer.h needs plait_tables.h generated for a model (plait.hls.tables.ModelTables)"
#endif

namespace plait {

enum LinearId { LIN_Q = 0, LIN_K, LIN_V, LIN_O, LIN_GATE, LIN_UP, LIN_DOWN, LIN_COUNT };
enum EngineId { ENG_DSP = 0, ENG_LUT = 1 };
enum ActId { ACT_QKV = 0, ACT_O, ACT_GU, ACT_DOWN, ACT_COUNT };

// error mask of layer_top: each linear stage's engine mask (plait::dsp / plait::lut
// ERR_*) in its own 4-bit field, attention's refusal, and bad sizes
constexpr int LERR_SHIFT_QKV = 0, LERR_SHIFT_O = 4, LERR_SHIFT_GU = 8, LERR_SHIFT_DOWN = 12;
constexpr int LERR_ATTENTION = 1 << 16;   // KV cache / local buffers too small
constexpr int LERR_SIZE = 1 << 17;        // S < 1 or pos0 + S beyond MAX_CTX / the RoPE table

typedef sint<PLAIT_FX_BITS> fx_word;      // an FX value on a stream (48 bits)

// The activation spec of a linear's input (ir ActSpec): a scale per row (dynamic), or
// one static scale m * 2^e (real units)
struct ActDesc {
    int dynamic;
    int m;
    int e;
};

// One linear of the layer in its engine's packed format (offsets into the memory
// images of the m_axi ports; rows and K follow from the layer's shape)
struct LinDesc {
    int mode, wbits;          // DSP chain: the RTL codes (MODES[mode][2], WBITS_CODE[bits])
    int bits, offset;         // LUT core: planes, zero-correction mode (scheme != odd)
    int group_size;
    int e_w;                  // the weight's shared scale exponent E
    int w_off;                // first beat in codes (DSP) / planes (LUT)
    int idx_off;              // first beat in idx (DSP sparse modes)
    int s_off;                // first element in mant / zp ([rows][K / G] of this linear)
    int bias_off;             // first element in bias (FX), -1: no bias
};

struct LayerDesc {
    LinDesc lin[LIN_COUNT];
    ActDesc act[ACT_COUNT];
    int e_in, e_post;         // exponents of the RMSNorm weight mantissas
};

struct RowScale {
    int64_t m;
    int64_t e;
};

// the weight ports of one linear stage (pointers into the packed memory images):
// codes / idx (DSP chain), planes / zp (LUT core), mant (both)
#define PLAIT_WPORTS_DECL(L)                                                                    \
    const dsp::CodeWord<typename L::DSP>*codes, const dsp::IdxWord<typename L::DSP>*idx,         \
        const lut::PlaneWord<typename L::LUT>*planes, const int8_t *zp, const uint16_t *mant
#define PLAIT_WPORTS codes, idx, planes, zp, mant

// ---------------------------------------------------------------- helpers
// quantize one FX row v[n] by the spec -> q8[n], (m, e)
inline void quantize_row(const fx_t* v, int n, const ActDesc& aq, int8_t* q8, int64_t& m, int64_t& e) {
#pragma HLS INLINE
    if (aq.dynamic) {
        quantize_row_dynamic(v, n, PLAIT_FX_FRAC, q8, m, e);
    } else {
        quantize_static(v, 1, n, aq.m, aq.e, PLAIT_FX_FRAC, q8);
        m = aq.m;
        e = aq.e;
    }
}

// write a quantized row to the streams
inline void emit_q8(const int8_t* q8, int n, int64_t m, int64_t e, stream<int8_t>& q, stream<RowScale>& sc) {
EMIT_Q8:
    for (int i = 0; i < n; i++) {
#pragma HLS PIPELINE II=1
        q.write(q8[i]);
    }
    RowScale s;
    s.m = m;
    s.e = e;
    sc.write(s);
}

// read up to two int8 rows of K (row `nrows` .. 1 zero) and their scales
inline void read_rows2(stream<int8_t>& q, stream<RowScale>& sc, int nrows, int K, int8_t* x8, int64_t* m,
                       int64_t* e) {
READ_ROWS:
    for (int r = 0; r < 2; r++) {
    READ_COLS:
        for (int i = 0; i < K; i++) {
#pragma HLS PIPELINE II=1
            x8[r * K + i] = r < nrows ? q.read() : (int8_t)0;
        }
        if (r < nrows) {
            const RowScale s = sc.read();
            m[r] = s.m;
            e[r] = s.e;
        } else {
            m[r] = PLAIT_A_MANT_MIN;
            e[r] = 0;
        }
    }
}

// One linear on two int8 rows x8[2][K] on the engine the layer config maps it to:
// the 48-bit P[2][N] (row 1 of a single row is the zero row).  Returns the engine's
// ERR_* mask.
template <class L, int K_MAX>
inline int run_linear(int which, const int8_t* x8, int nrows, int K, int N, const LinDesc& d,
                      PLAIT_WPORTS_DECL(L), int64_t* p) {
    if (L::ENGINE(which) == ENG_DSP) {
        return dsp::chain_linear<typename L::DSP, K_MAX>(x8, codes + d.w_off, idx + d.idx_off, mant + d.s_off,
                                                         d.mode, d.wbits, N, K, d.group_size, p);
    }
    int err = 0;
    typedef typename L::LUT LC;
LUT_PASSES:
    for (int r0 = 0; r0 < nrows; r0 += LC::M) {
        const int m = nrows - r0 < LC::M ? nrows - r0 : LC::M;
        err |= lut::lut_linear<LC, K_MAX>(x8 + r0 * K, planes + d.w_off, zp + d.s_off, mant + d.s_off,
                                          d.bits, d.offset, m, N, K, d.group_size, p + (int64_t)r0 * N);
    }
    return err;
}

// P of `nrows` rows -> FX rows (linear_out_fx, + bias) into a row buffer y[2][N]
inline void out_rows(const int64_t* p, int nrows, int N, const LinDesc& d, const int64_t* m, const int64_t* e,
                     const fx_t* bias, fx_t* y) {
OUT_ROWS:
    for (int r = 0; r < nrows; r++) {
    OUT_COLS:
        for (int n = 0; n < N; n++) {
#pragma HLS PIPELINE II=1
            const bool hb = d.bias_off >= 0;
            y[r * N + n] = linear_out_elem(p[(int64_t)r * N + n], d.e_w, m[r], e[r], hb,
                                           hb ? (int64_t)bias[d.bias_off + n] : 0);
        }
    }
}

inline void write_row(const fx_t* y, int N, stream<fx_word>& out) {
WRITE_ROW:
    for (int n = 0; n < N; n++) {
#pragma HLS PIPELINE II=1
        out.write(fx_word(y[n]));
    }
}

inline void read_row(stream<fx_word>& in, int N, fx_t* y) {
READ_ROW:
    for (int n = 0; n < N; n++) {
#pragma HLS PIPELINE II=1
        y[n] = (int64_t)in.read();
    }
}

// ---------------------------------------------------------------- stages
template <class L>
void read_x(const fx_t* x, int S, stream<fx_word>& xs) {
READ_X:
    for (int i = 0; i < S * L::D; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min = L::D max = L::D * L::MAX_CTX
        xs.write(fx_word(x[i]));
    }
}

template <class L>
void norm_quant(stream<fx_word>& xs, const int32_t* gamma, int e_g, ActDesc act, int S, stream<fx_word>& xres,
                stream<int8_t>& q8s, stream<RowScale>& scs) {
    int32_t g[L::D];
    fx_t xr[L::D], h[L::D];
    int8_t q8[L::D];
NQ_GAMMA:
    for (int i = 0; i < L::D; i++) {
#pragma HLS PIPELINE II=1
        g[i] = gamma[i];
    }
NQ_ROWS:
    for (int t = 0; t < S; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = L::MAX_CTX
    NQ_READ:
        for (int i = 0; i < L::D; i++) {
#pragma HLS PIPELINE II=1
            const fx_word v = xs.read();
            xr[i] = (int64_t)v;
            xres.write(v);
        }
        rmsnorm(xr, 1, L::D, g, e_g, PLAIT_RMS_EPS, h);
        int64_t m, e;
        quantize_row(h, L::D, act, q8, m, e);
        emit_q8(q8, L::D, m, e, q8s, scs);
    }
}

// one linear of a stage on the rows x8 -> FX rows on `out`
template <class L, int K_MAX>
inline int linear_rows(int which, const int8_t* x8, int nr, int K, int N, const LayerDesc& desc,
                       PLAIT_WPORTS_DECL(L), const fx_t* bias, const int64_t* m, const int64_t* e, int64_t* p,
                       fx_t* y, stream<fx_word>& out) {
    const int err = run_linear<L, K_MAX>(which, x8, nr, K, N, desc.lin[which], PLAIT_WPORTS, p);
    out_rows(p, nr, N, desc.lin[which], m, e, bias, y);
    for (int r = 0; r < nr; r++) write_row(y + r * N, N, out);
    return err;
}

template <class L, int K_MAX>
void qkv_stage(stream<int8_t>& h8, stream<RowScale>& hsc, int S, PLAIT_WPORTS_DECL(L), const fx_t* bias,
               LayerDesc desc, stream<fx_word>& qs, stream<fx_word>& ks, stream<fx_word>& vs,
               stream<int>& err_out) {
    int8_t x8[2 * L::D];
    int64_t m[2], e[2];
    int64_t p[2 * L::N_MAX];
    fx_t y[2 * L::N_MAX];
    int err = 0;
QKV_PAIRS:
    for (int t = 0; t < S; t += 2) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = L::MAX_CTX / 2
        const int nr = S - t < 2 ? S - t : 2;
        read_rows2(h8, hsc, nr, L::D, x8, m, e);
        err |= linear_rows<L, K_MAX>(LIN_Q, x8, nr, L::D, L::NQ, desc, PLAIT_WPORTS, bias, m, e, p, y, qs);
        err |= linear_rows<L, K_MAX>(LIN_K, x8, nr, L::D, L::NKV, desc, PLAIT_WPORTS, bias, m, e, p, y, ks);
        err |= linear_rows<L, K_MAX>(LIN_V, x8, nr, L::D, L::NKV, desc, PLAIT_WPORTS, bias, m, e, p, y, vs);
    }
    err_out.write(err);
}

template <class L>
void rope_stage(stream<fx_word>& qs, stream<fx_word>& ks, int S, int pos0, stream<fx_word>& qr,
                stream<fx_word>& kr) {
    fx_t a[L::NQ], b[L::NQ];
ROPE_ROWS:
    for (int t = 0; t < S; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = L::MAX_CTX
        read_row(qs, L::NQ, a);
        rope(a, 1, L::H, L::HD, &PLAIT_ROPE_COS[0][0], &PLAIT_ROPE_SIN[0][0], pos0 + t, b);
        write_row(b, L::NQ, qr);
        read_row(ks, L::NKV, a);
        rope(a, 1, L::HKV, L::HD, &PLAIT_ROPE_COS[0][0], &PLAIT_ROPE_SIN[0][0], pos0 + t, b);
        write_row(b, L::NKV, kr);
    }
}

template <class L>
void attn_stage(stream<fx_word>& qr, stream<fx_word>& kr, stream<fx_word>& vs, int S, int pos0, int8_t* kc,
                int16_t* mk, int16_t* ek, int8_t* vc, int16_t* mv, int16_t* ev, stream<fx_word>& as,
                stream<int>& err_out) {
    fx_t q[L::NQ], k[L::NKV], v[L::NKV], o[L::NQ];
    int err = 0;
ATT_ROWS:
    for (int t = 0; t < S; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = L::MAX_CTX
        read_row(qr, L::NQ, q);
        read_row(kr, L::NKV, k);
        read_row(vs, L::NKV, v);
        KVCache kv{kc, mk, ek, vc, mv, ev, L::MAX_CTX, pos0 + t};
        if (attention(q, k, v, 1, L::H, L::HKV, L::HD, PLAIT_ATTN_C, PLAIT_ATTN_R, kv, o) != 0) {
            err |= LERR_ATTENTION;
        ATT_ZERO:
            for (int i = 0; i < L::NQ; i++) {
#pragma HLS PIPELINE II=1
                o[i] = 0;
            }
        }
        write_row(o, L::NQ, as);
    }
    err_out.write(err);
}

template <class L, int N>
void quant_stage(stream<fx_word>& in, ActDesc act, int S, stream<int8_t>& q8s, stream<RowScale>& scs) {
    fx_t v[N];
    int8_t q8[N];
QS_ROWS:
    for (int t = 0; t < S; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = L::MAX_CTX
        read_row(in, N, v);
        int64_t m, e;
        quantize_row(v, N, act, q8, m, e);
        emit_q8(q8, N, m, e, q8s, scs);
    }
}

// one linear (o, down): int8 rows of K -> FX rows of N
template <class L, int K_MAX, int WHICH, int K, int N>
void linear_stage(stream<int8_t>& in8, stream<RowScale>& insc, int S, PLAIT_WPORTS_DECL(L), LayerDesc desc,
                  stream<fx_word>& out, stream<int>& err_out) {
    int8_t x8[2 * K];
    int64_t m[2], e[2];
    int64_t p[2 * N];
    fx_t y[2 * N];
    int err = 0;
LIN_PAIRS:
    for (int t = 0; t < S; t += 2) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = L::MAX_CTX / 2
        const int nr = S - t < 2 ? S - t : 2;
        read_rows2(in8, insc, nr, K, x8, m, e);
        err |= linear_rows<L, K_MAX>(WHICH, x8, nr, K, N, desc, PLAIT_WPORTS, 0, m, e, p, y, out);
    }
    err_out.write(err);
}

template <class L>
void add_norm(stream<fx_word>& xres, stream<fx_word>& os, const int32_t* gamma, int e_g, ActDesc act, int S,
              stream<fx_word>& x1s, stream<int8_t>& q8s, stream<RowScale>& scs) {
    int32_t g[L::D];
    fx_t x1[L::D], h[L::D];
    int8_t q8[L::D];
AN_GAMMA:
    for (int i = 0; i < L::D; i++) {
#pragma HLS PIPELINE II=1
        g[i] = gamma[i];
    }
AN_ROWS:
    for (int t = 0; t < S; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = L::MAX_CTX
    AN_ADD:
        for (int i = 0; i < L::D; i++) {
#pragma HLS PIPELINE II=1
            const fx_t v = residual_add((int64_t)xres.read(), (int64_t)os.read());
            x1[i] = v;
            x1s.write(fx_word(v));
        }
        rmsnorm(x1, 1, L::D, g, e_g, PLAIT_RMS_EPS, h);
        int64_t m, e;
        quantize_row(h, L::D, act, q8, m, e);
        emit_q8(q8, L::D, m, e, q8s, scs);
    }
}

// gate and up on the same rows, SwiGLU, then down's input quantization
template <class L, int K_MAX>
void gu_stage(stream<int8_t>& h8, stream<RowScale>& hsc, int S, PLAIT_WPORTS_DECL(L), LayerDesc desc,
              stream<int8_t>& q8s, stream<RowScale>& scs, stream<int>& err_out) {
    int8_t x8[2 * L::D];
    int64_t m[2], e[2];
    int64_t p[2 * L::F];
    fx_t gt[2 * L::F], up[2 * L::F], s[L::F];
    int8_t q8[L::F];
    int err = 0;
GU_PAIRS:
    for (int t = 0; t < S; t += 2) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = L::MAX_CTX / 2
        const int nr = S - t < 2 ? S - t : 2;
        read_rows2(h8, hsc, nr, L::D, x8, m, e);
        err |= run_linear<L, K_MAX>(LIN_GATE, x8, nr, L::D, L::F, desc.lin[LIN_GATE], PLAIT_WPORTS, p);
        out_rows(p, nr, L::F, desc.lin[LIN_GATE], m, e, 0, gt);
        err |= run_linear<L, K_MAX>(LIN_UP, x8, nr, L::D, L::F, desc.lin[LIN_UP], PLAIT_WPORTS, p);
        out_rows(p, nr, L::F, desc.lin[LIN_UP], m, e, 0, up);
        for (int r = 0; r < nr; r++) {
            swiglu_vec(gt + r * L::F, up + r * L::F, L::F, s);
            int64_t mm, ee;
            quantize_row(s, L::F, desc.act[ACT_DOWN], q8, mm, ee);
            emit_q8(q8, L::F, mm, ee, q8s, scs);
        }
    }
    err_out.write(err);
}

template <class L>
void add_write(stream<fx_word>& x1s, stream<fx_word>& ds, int S, fx_t* y, stream<int>& e_qkv,
               stream<int>& e_att, stream<int>& e_o, stream<int>& e_gu, stream<int>& e_down, int* err) {
ADD_WRITE:
    for (int i = 0; i < S * L::D; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min = L::D max = L::D * L::MAX_CTX
        y[i] = residual_add((int64_t)x1s.read(), (int64_t)ds.read());
    }
    *err = (e_qkv.read() << LERR_SHIFT_QKV) | e_att.read() | (e_o.read() << LERR_SHIFT_O) |
           (e_gu.read() << LERR_SHIFT_GU) | (e_down.read() << LERR_SHIFT_DOWN);
}

// The layer's dataflow region: only stream declarations and process calls.  Weight
// ports per linear stage (qkv, o, gu, down): codes, idx, planes, zp, mant.
#define PLAIT_STAGE_PORTS(s)                                                                     \
    const dsp::CodeWord<typename L::DSP>*codes_##s, const dsp::IdxWord<typename L::DSP>*idx_##s, \
        const lut::PlaneWord<typename L::LUT>*planes_##s, const int8_t *zp_##s, const uint16_t *mant_##s
#define PLAIT_STAGE_ARGS(s) codes_##s, idx_##s, planes_##s, zp_##s, mant_##s
template <class L, int K_MAX>
void layer_dataflow(const fx_t* x, fx_t* y, int S, int pos0, const int32_t* gamma_in, const int32_t* gamma_post,
                    const fx_t* bias, PLAIT_STAGE_PORTS(qkv), PLAIT_STAGE_PORTS(o), PLAIT_STAGE_PORTS(gu),
                    PLAIT_STAGE_PORTS(down), int8_t* kc, int16_t* mk, int16_t* ek, int8_t* vc, int16_t* mv,
                    int16_t* ev, LayerDesc desc, int* err) {
#pragma HLS DATAFLOW
    stream<fx_word> xs("xs"), xres("xres"), qs("qs"), ks("ks"), vs("vs"), qr("qr"), kr("kr"), as("as"),
        os("os"), x1s("x1s"), ds("ds");
    stream<int8_t> h8("h8"), a8("a8"), g8("g8"), d8("d8");
    stream<RowScale> hsc("hsc"), asc("asc"), gsc("gsc"), dsc("dsc");
    stream<int> e_qkv("e_qkv"), e_att("e_att"), e_o("e_o"), e_gu("e_gu"), e_down("e_down");
    // a row ahead per stream; the residual bypasses hold the rows in flight through
    // attention / the MLP (two-row batches of the linears)
#pragma HLS STREAM variable = xs depth = L::D
#pragma HLS STREAM variable = xres depth = 4 * L::D
#pragma HLS STREAM variable = x1s depth = 4 * L::D
#pragma HLS STREAM variable = qs depth = 2 * L::NQ
#pragma HLS STREAM variable = ks depth = 2 * L::NKV
#pragma HLS STREAM variable = vs depth = 2 * L::NKV
#pragma HLS STREAM variable = qr depth = L::NQ
#pragma HLS STREAM variable = kr depth = L::NKV
#pragma HLS STREAM variable = as depth = L::NQ
#pragma HLS STREAM variable = os depth = 2 * L::D
#pragma HLS STREAM variable = ds depth = 2 * L::D
#pragma HLS STREAM variable = h8 depth = 2 * L::D
#pragma HLS STREAM variable = a8 depth = 2 * L::NQ
#pragma HLS STREAM variable = g8 depth = 2 * L::D
#pragma HLS STREAM variable = d8 depth = 2 * L::F
    read_x<L>(x, S, xs);
    norm_quant<L>(xs, gamma_in, desc.e_in, desc.act[ACT_QKV], S, xres, h8, hsc);
    qkv_stage<L, K_MAX>(h8, hsc, S, PLAIT_STAGE_ARGS(qkv), bias, desc, qs, ks, vs, e_qkv);
    rope_stage<L>(qs, ks, S, pos0, qr, kr);
    attn_stage<L>(qr, kr, vs, S, pos0, kc, mk, ek, vc, mv, ev, as, e_att);
    quant_stage<L, L::NQ>(as, desc.act[ACT_O], S, a8, asc);
    linear_stage<L, K_MAX, LIN_O, L::NQ, L::D>(a8, asc, S, PLAIT_STAGE_ARGS(o), desc, os, e_o);
    add_norm<L>(xres, os, gamma_post, desc.e_post, desc.act[ACT_GU], S, x1s, g8, gsc);
    gu_stage<L, K_MAX>(g8, gsc, S, PLAIT_STAGE_ARGS(gu), desc, d8, dsc, e_gu);
    linear_stage<L, K_MAX, LIN_DOWN, L::F, L::D>(d8, dsc, S, PLAIT_STAGE_ARGS(down), desc, ds, e_down);
    add_write<L>(x1s, ds, S, y, e_qkv, e_att, e_o, e_gu, e_down, err);
}

}  // namespace plait

#endif  // PLAIT_LAYER_H
