/* plait's fast CPU decoder: one decode step of a Llama-style decoder in one call.
 *
 * Built and loaded by plait/runtime/fast.py (gcc, cached under .plait_cache/fast/);
 * the layout of every struct below is mirrored there with ctypes.
 *
 * Weights stay in low-bit form.  A linear [N, K] with per-group parameters (groups of
 * G consecutive inputs of one row) is one of
 *   PLAIT_Q4  4-bit codes u (0..15), two per byte: in each block of 32 inputs, byte j
 *             holds input j (low nibble) and input j + 16 (high nibble);
 *   PLAIT_Q8  8-bit codes u (0..255), one per byte;
 *   PLAIT_Q2  2-bit codes u (0..3), four per byte: in each block of 64 inputs, byte j
 *             (0..15) holds inputs j, j + 16, j + 32 and j + 48 in bits 0-1, 2-3, 4-5, 6-7
 *             (each shift of a block's 16 bytes is 16 consecutive inputs);
 *   PLAIT_F32 float32 weights (no groups).
 * The real weight of a code is  sc[n, g] * (u - zf[n, g])  (float32), which covers the
 * artifact's sym / asym / odd / ternary codes (fast.py computes sc and zf).  Where every
 * group has the same zero (sym, odd: 2^(b-1) or (2^b - 1) / 2) zf is NULL and z0 is that
 * zero, so a token reads 4 bytes per group less.  A row's dot
 * product with x is  sum_g sc_g * (sum_{k in g} u_k x_k  -  zf_g * sum_{k in g} x_k):
 * the integer codes are multiplied with the activations quantized per weight group:
 * to 16 bits (act_bits 16, the default: within float32 rounding of the float path), or
 * to 8 bits (act_bits 8: symmetric int8 per group, as llama.cpp's Q8 activation blocks;
 * the AVX-512 build then multiplies code bytes by activation bytes, vpdpbusd; the down
 * projection keeps 16 bits, see DOWN_ACT_BITS).
 *
 * plait_step runs one token: embedding row, per layer RMSNorm, q/k/v, RoPE, attention
 * over the float32 KV cache, o (+ residual), RMSNorm, gate/up, SwiGLU, down
 * (+ residual), then the final RMSNorm and the LM head, all in one OpenMP parallel
 * region (rows of every linear split over the threads).  plait_dequant writes float32
 * rows of a linear (prefill runs torch's GEMM on them).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <limits.h>
#include <omp.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define PLAIT_AVX2 1
#else
#define PLAIT_AVX2 0
#endif
/* AVX-512 with VNNI (fast.py adds -mavx512f/bw/vl/vnni where the CPU has them): the
 * quantized kernels' inner loops take 64 inputs per step, the 16-bit products summed in
 * pairs straight into the int32 accumulators (vpdpwssd) */
#if PLAIT_AVX2 && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
#define PLAIT_AVX512 1
#else
#define PLAIT_AVX512 0
#endif

enum { PLAIT_Q4 = 1, PLAIT_Q8 = 2, PLAIT_F32 = 3, PLAIT_Q2 = 4 };

typedef struct {
    int32_t kind, n, k, g;
    const uint8_t *w;      /* Q2: n * k / 4 bytes, Q4: n * k / 2, Q8: n * k */
    const float *sc, *zf;  /* [n, k / g] */
    const float *wf;       /* F32: [n, k] */
    const float *bias;     /* [n] or NULL */
    float z0;              /* the zero of every group where zf is NULL */
} plait_lin;

typedef struct {
    const float *norm1, *norm2;   /* RMSNorm weights [d] */
    float eps1, eps2;
    plait_lin q, k, v, o, gate, up, down;
} plait_layer;

typedef struct {
    int32_t n_layers, d, n_heads, n_kv, hd, inter, vocab, cap;
    int32_t act_bits;             /* 16 or 8: the activations' quantization (file doc) */
    float attn_scale, eps_final;
    const float *emb;             /* [vocab, d] */
    const float *norm_final;      /* [d] */
    const float *rope_cos, *rope_sin;   /* [positions, hd] (the two halves repeated) */
    const plait_layer *layers;
    plait_lin head;
} plait_model;

typedef struct {
    float *x, *h, *q, *att, *kvnew, *gbuf, *ubuf, *act;  /* [d] [d] [H*hd] [H*hd] [2*Hk*hd] [inter] x3
                                                            (h, gbuf, ubuf: unused, kept for the layout) */
    float *scores;                               /* [n_heads, cap] */
    float *kv;                                   /* [n_layers, 2, n_kv, cap, hd] */
} plait_state;

int plait_abi(void) { return 6; }

/* bytes of one row's codes */
static inline size_t row_bytes(const plait_lin *L) {
    return L->kind == PLAIT_Q2 ? (size_t)L->k / 4 : L->kind == PLAIT_Q4 ? (size_t)L->k / 2 : (size_t)L->k;
}

/* the code of input kk of row n (the portable paths) */
static inline int code_at(const plait_lin *L, int n, int kk) {
    const uint8_t *w = L->w + (size_t)n * row_bytes(L);
    if (L->kind == PLAIT_Q4) return kk % 32 < 16 ? w[kk / 32 * 16 + kk % 16] & 15 : w[kk / 32 * 16 + kk % 16] >> 4;
    if (L->kind == PLAIT_Q2) return (w[kk / 64 * 16 + kk % 16] >> (2 * (kk % 64 / 16))) & 3;
    return w[kk];
}
/* the widest kernels built in: 512 (AVX-512 VNNI), 256 (AVX2 + FMA) or 0 (portable C) */
int plait_simd(void) { return PLAIT_AVX512 ? 512 : PLAIT_AVX2 ? 256 : 0; }

/* ------------------------------------------------------------------ dot products */

static inline float hsum8(
#if PLAIT_AVX2
    __m256 v
#else
    float v
#endif
) {
#if PLAIT_AVX2
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
#else
    return v;
#endif
}

/* sums of x over each group of g inputs */
__attribute__((unused)) static void group_sums(const float *x, int k, int g, float *xs) {
    for (int j = 0; j < k / g; j++) {
        float s = 0.f;
        for (int i = 0; i < g; i++) s += x[j * g + i];
        xs[j] = s;
    }
}

/* The input of a quantized linear, as the decode kernel reads it: the activations
 * quantized per weight group, xq * xsc[g] ~ x, to int16 (act_bits 16: 15 bits below each
 * group's largest magnitude) or int8 (act_bits 8: 7 bits), so a group's dot product is an
 * exact integer scaled once; xs[g] is the group's sum of the values the kernel multiplies
 * (for the zero-point term).  Float32 linears read x itself.  With act_bits 8 the
 * AVX-512 build also keeps the int8 values in its kernel's order (xb, see prep_bytes). */
#define MAX_GROUPS 4096
#define MAX_K 16384
typedef struct {
    int c0, cs, g0, ngc;          /* first input, inputs, first group, groups of the chunk */
    uint32_t gmask;               /* (1 << ngc) - 1 */
    int32_t idx[16];              /* lane -> group - g0 */
    float sx[16];                 /* lane -> its group's activation scale (0 past cs) */
} plait_chunk;
typedef struct {
    const float *x;
    int16_t *xq;
    int act_bits;
    float xsc[MAX_GROUPS / 8], xs[MAX_GROUPS / 8];
    int8_t *xb;                   /* AVX-512, act_bits 8: the int8 values in kernel order */
    plait_chunk *ch;              /* ... and the chunks of a linear whose groups are not whole steps */
    int nch;
} plait_act;

#if PLAIT_AVX512
static void prep_bytes(const plait_lin *L, plait_act *a);
#endif

static void prep_act(const plait_lin *L, const float *x, plait_act *a, int act_bits) {
    a->x = x;
    a->act_bits = act_bits;
    if (L->kind == PLAIT_F32) return;
    const int K = L->k, G = L->g;
#if !PLAIT_AVX2
    if (act_bits != 8) {          /* the portable build multiplies float activations */
        group_sums(x, K, G, a->xs);
        return;
    }
#endif
    const int qmax = act_bits == 8 ? 127 : 32767;
    for (int gi = 0; gi < K / G; gi++) {
        const float *xg = x + gi * G;
        int16_t *qg = a->xq + gi * G;
        float mx = 0.f;
        int i = 0, sum = 0;
#if PLAIT_AVX2                    /* the same values, 8 at a time (G is a multiple of 32) */
        const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
        __m256 vm = _mm256_setzero_ps();
        for (; i < G; i += 8) vm = _mm256_max_ps(vm, _mm256_and_ps(_mm256_loadu_ps(xg + i), absmask));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vm), _mm256_extractf128_ps(vm, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        mx = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
#else
        for (; i < G; i++) { float v = fabsf(xg[i]); if (v > mx) mx = v; }
#endif
        const float sc = mx / (float)qmax, inv = mx > 0.f ? (float)qmax / mx : 0.f;
        i = 0;
#if PLAIT_AVX2                    /* cvtps rounds to nearest even, as lrintf */
        const __m256 vinv = _mm256_set1_ps(inv);
        const __m256i hi = _mm256_set1_epi32(qmax), lo = _mm256_set1_epi32(-qmax);
        __m256i vs = _mm256_setzero_si256();
        for (; i < G; i += 8) {
            __m256i q = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg + i), vinv));
            q = _mm256_min_epi32(_mm256_max_epi32(q, lo), hi);
            vs = _mm256_add_epi32(vs, q);
            _mm_storeu_si128((__m128i *)(qg + i), _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)));
        }
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(vs), _mm256_extracti128_si256(vs, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        sum = _mm_cvtsi128_si32(_mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1)));
#endif
        for (; i < G; i++) {
            int q = (int)lrintf(xg[i] * inv);
            q = q > qmax ? qmax : q < -qmax ? -qmax : q;
            qg[i] = (int16_t)q;
            sum += q;
        }
        a->xsc[gi] = sc;
        a->xs[gi] = sc * (float)sum;
    }
#if PLAIT_AVX512
    if (act_bits == 8) prep_bytes(L, a);
#endif
}

/* row n of W x by the portable code (F32 linears in every build; codes in the portable
 * build: float activations, or with act_bits 8 the int8 ones, summed exactly per group) */
static float dot_row(const plait_lin *L, int n, const plait_act *a) {
    const float *x = a->x, *xs = a->xs;
    const int K = L->k;
    float out = 0.f;
    if (L->kind == PLAIT_F32) {
        const float *w = L->wf + (size_t)n * K;
        int i = 0;
#if PLAIT_AVX2
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        for (; i + 16 <= K; i += 16) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        }
        out = hsum8(_mm256_add_ps(a0, a1));
#endif
        for (; i < K; i++) out += w[i] * x[i];
    } else {                 /* the portable build (AVX2 builds take dot4_q for codes) */
        const int G = L->g, ng = K / G;
        const float *sc = L->sc + (size_t)n * ng, *zf = L->zf ? L->zf + (size_t)n * ng : NULL;
        float corr = 0.f;
        for (int gi = 0; gi < ng; gi++) {
            float acc = 0.f;
            if (a->act_bits == 8) {
                int32_t iacc = 0;
                for (int kk = gi * G; kk < (gi + 1) * G; kk++) iacc += code_at(L, n, kk) * a->xq[kk];
                acc = (float)iacc * a->xsc[gi];
            } else {
                for (int kk = gi * G; kk < (gi + 1) * G; kk++) acc += (float)code_at(L, n, kk) * x[kk];
            }
            out += sc[gi] * acc;
            corr += sc[gi] * (zf ? zf[gi] : L->z0) * xs[gi];
        }
        out -= corr;
    }
    if (L->bias) out += L->bias[n];
    return out;
}

/* A decode step streams every weight from DRAM once (85 MB for SmolLM2 w4g128, more than
 * the L3): while computing one quad of rows, the AVX2 kernel prefetches the codes and
 * scales of the quad PF_QUADS ahead (contiguous bytes; prefetching past a thread's run or
 * the matrix's end is harmless).  The portable path does not prefetch.  4 quads ahead
 * (SmolLM2 w4g128, 2 threads, AVX-512 build, runs interleaved on this shared host):
 * 8.97 / 9.04 ms per token against 10.23 / 9.61 ms at 2 quads; 1 and 8 were no better
 * than 2. */
#define PF_QUADS 4
#if PLAIT_AVX2
#define PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)

/* a quad's rows (cnt <= 4; the missing rows of a last quad repeat the last row) and their
 * scales and zeros; the scales of the quad PF_QUADS ahead are prefetched (its codes are
 * prefetched in the kernels' loops, next to the loads of this quad's: the rows of a quad
 * are contiguous) */
static inline void quad_rows(const plait_lin *L, int n0, int cnt, int *rows, const float **sc, const float **zf) {
    const int ng = L->k / L->g;
    for (int r = 0; r < 4; r++) {
        rows[r] = n0 + (r < cnt ? r : cnt - 1);
        sc[r] = L->sc + (size_t)rows[r] * ng;
        zf[r] = L->zf ? L->zf + (size_t)rows[r] * ng : NULL;
    }
    const size_t pf_sc = (size_t)4 * PF_QUADS * ng;
    for (int r = 0; r < 4; r++) PREFETCH(sc[r] + pf_sc);
    if (zf[0]) for (int r = 0; r < 4; r++) PREFETCH(zf[r] + pf_sc);
}

/* a row's zero-point term  sum_g sc_g * zf_g * xs_g  (one zero z0 where zf is NULL) */
static inline float zero_term(const plait_lin *L, const float *sc, const float *zf, const plait_act *a, int ng) {
    float corr = 0.f;
    if (zf) for (int gi = 0; gi < ng; gi++) corr += sc[gi] * zf[gi] * a->xs[gi];
    else {
        for (int gi = 0; gi < ng; gi++) corr += sc[gi] * a->xs[gi];
        corr *= L->z0;
    }
    return corr;
}
#endif

#if PLAIT_AVX512
/* the four rows' outputs: their float sums y0..y3 less their zero-point terms (subtracted
 * lane-wise, 16 groups a vector), reduced together, plus the bias */
static inline void finish4_512(const plait_lin *L, __m512 y0, __m512 y1, __m512 y2, __m512 y3, const int *rows,
                               int cnt, const float *const *sc, const float *const *zf, const plait_act *a,
                               float *out) {
    const int ng = L->k / L->g;
    for (int g = 0; g < ng; g += 16) {
        const __mmask16 m = ng - g >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (ng - g)) - 1);
        const __m512 xs = _mm512_maskz_loadu_ps(m, a->xs + g);
#define ZT(r) (zf[0] ? _mm512_mul_ps(_mm512_maskz_loadu_ps(m, sc[r] + g), _mm512_maskz_loadu_ps(m, zf[r] + g)) \
                     : _mm512_mul_ps(_mm512_maskz_loadu_ps(m, sc[r] + g), _mm512_set1_ps(L->z0)))
        y0 = _mm512_fnmadd_ps(ZT(0), xs, y0);
        y1 = _mm512_fnmadd_ps(ZT(1), xs, y1);
        y2 = _mm512_fnmadd_ps(ZT(2), xs, y2);
        y3 = _mm512_fnmadd_ps(ZT(3), xs, y3);
#undef ZT
    }
#define HALF(v) _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(HALF(y0), HALF(y1)), _mm256_hadd_ps(HALF(y2), HALF(y3)));
#undef HALF
    float s4[4];
    _mm_storeu_ps(s4, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
    for (int r = 0; r < cnt; r++) out[r] = s4[r] + (L->bias ? L->bias[rows[r]] : 0.f);
}

/* dot4_q below with 512-bit vectors.  Q4: the 32 bytes of two 32-input blocks widen to 32
 * 16-bit words (one byte each); the low nibbles are inputs 0..15 of both blocks, the high
 * nibbles inputs 16..31, and the activations are gathered to match (once per step, for the
 * four rows).  A group's inputs go 64 at a time, a last 32 (a group of 32 or 96, ...) with
 * the 256-bit form of the same instructions.  The int32 sums are the AVX2 kernel's exactly
 * (integer adds in another order); only the float sum over groups is ordered otherwise. */
static void dot4_q512(const plait_lin *L, int n0, int cnt, const plait_act *a, float *out) {
    const int K = L->k, G = L->g, ng = K / G;
    int rows[4];
    const float *sc[4], *zf[4];
    quad_rows(L, n0, cnt, rows, sc, zf);
    __m512 y0 = _mm512_setzero_ps(), y1 = y0, y2 = y0, y3 = y0;
    const int16_t *xq = a->xq;
    const int q4 = L->kind == PLAIT_Q4, q2 = L->kind == PLAIT_Q2;
    const size_t rb = row_bytes(L), pf = 4 * PF_QUADS * rb;
    const uint8_t *w0 = L->w + (size_t)rows[0] * rb, *w1 = L->w + (size_t)rows[1] * rb;
    const uint8_t *w2 = L->w + (size_t)rows[2] * rb, *w3 = L->w + (size_t)rows[3] * rb;
    const __m512i m4 = _mm512_set1_epi16(0x0F), m2 = _mm512_set1_epi16(3);
    const __m256i m4h = _mm256_set1_epi16(0x0F), m2h = _mm256_set1_epi16(3);
#define Q4_ROW64(wr, acc)                                                                      \
    {                                                                                          \
        const __m512i v = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)((wr) + off))); \
        acc = _mm512_dpwssd_epi32(acc, _mm512_and_si512(v, m4), xl);                           \
        acc = _mm512_dpwssd_epi32(acc, _mm512_srli_epi16(v, 4), xh);                           \
    }
#define Q4_ROW32(wr, acc)                                                                      \
    {                                                                                          \
        const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)((wr) + off))); \
        acc = _mm256_dpwssd_epi32(acc, _mm256_and_si256(v, m4h), xl);                          \
        acc = _mm256_dpwssd_epi32(acc, _mm256_srli_epi16(v, 4), xh);                           \
    }
/* Q2: 128 inputs (two blocks) per step, the 32 bytes widened to words, the four shifts
 * against the activations of inputs 16 s .. 16 s + 15 of both blocks */
#define Q2_ROW128(wr, acc)                                                                     \
    {                                                                                          \
        const __m512i v = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)((wr) + off))); \
        acc = _mm512_dpwssd_epi32(acc, _mm512_and_si512(v, m2), x2[0]);                        \
        acc = _mm512_dpwssd_epi32(acc, _mm512_and_si512(_mm512_srli_epi16(v, 2), m2), x2[1]);  \
        acc = _mm512_dpwssd_epi32(acc, _mm512_and_si512(_mm512_srli_epi16(v, 4), m2), x2[2]);  \
        acc = _mm512_dpwssd_epi32(acc, _mm512_srli_epi16(v, 6), x2[3]);                        \
    }
#define Q2_ROW64(wr, acc)                                                                      \
    {                                                                                          \
        const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)((wr) + off))); \
        acc = _mm256_dpwssd_epi32(acc, _mm256_and_si256(v, m2h), x2[0]);                       \
        acc = _mm256_dpwssd_epi32(acc, _mm256_and_si256(_mm256_srli_epi16(v, 2), m2h), x2[1]); \
        acc = _mm256_dpwssd_epi32(acc, _mm256_and_si256(_mm256_srli_epi16(v, 4), m2h), x2[2]); \
        acc = _mm256_dpwssd_epi32(acc, _mm256_srli_epi16(v, 6), x2[3]);                        \
    }
#define Q8_ROW64(wr, acc)                                                                      \
    {                                                                                          \
        acc = _mm512_dpwssd_epi32(acc, _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)((wr) + b))), xl); \
        acc = _mm512_dpwssd_epi32(acc, _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)((wr) + b + 32))), xh); \
    }
#define Q8_ROW32(wr, acc)                                                                      \
    {                                                                                          \
        acc = _mm256_dpwssd_epi32(acc, _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)((wr) + b))), xl); \
        acc = _mm256_dpwssd_epi32(acc, _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)((wr) + b + 16))), xh); \
    }
    for (int gi = 0; gi < ng; gi++) {
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        const int end = (gi + 1) * G, step = q2 ? 128 : 64;
        int b = gi * G;
        for (; b + step <= end; b += step) {
            __m512i xl, xh;
            if (q2) {
                __m512i x2[4];
                for (int sh = 0; sh < 4; sh++)
                    x2[sh] = _mm512_inserti64x4(
                        _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(xq + b + 16 * sh))),
                        _mm256_loadu_si256((const __m256i *)(xq + b + 64 + 16 * sh)), 1);
                const size_t off = (size_t)b / 4;
                if (!(off & 63)) { PREFETCH(w0 + pf + off); PREFETCH(w1 + pf + off);
                                   PREFETCH(w2 + pf + off); PREFETCH(w3 + pf + off); }
                Q2_ROW128(w0, a0) Q2_ROW128(w1, a1) Q2_ROW128(w2, a2) Q2_ROW128(w3, a3)
            } else if (q4) {            /* inputs 0..15 | 32..47 and 16..31 | 48..63 */
                xl = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(xq + b))),
                                        _mm256_loadu_si256((const __m256i *)(xq + b + 32)), 1);
                xh = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(xq + b + 16))),
                                        _mm256_loadu_si256((const __m256i *)(xq + b + 48)), 1);
                const size_t off = (size_t)b / 2;
                if (!(off & 63)) { PREFETCH(w0 + pf + off); PREFETCH(w1 + pf + off);
                                   PREFETCH(w2 + pf + off); PREFETCH(w3 + pf + off); }
                Q4_ROW64(w0, a0) Q4_ROW64(w1, a1) Q4_ROW64(w2, a2) Q4_ROW64(w3, a3)
            } else {
                xl = _mm512_loadu_si512((const void *)(xq + b));
                xh = _mm512_loadu_si512((const void *)(xq + b + 32));
                PREFETCH(w0 + pf + b); PREFETCH(w1 + pf + b); PREFETCH(w2 + pf + b); PREFETCH(w3 + pf + b);
                Q8_ROW64(w0, a0) Q8_ROW64(w1, a1) Q8_ROW64(w2, a2) Q8_ROW64(w3, a3)
            }
        }
        if (b < end) {           /* the last half step of the group (32 inputs, Q2: 64) */
            __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0, xl, xh;
            if (q2) {
                __m256i x2[4];
                for (int sh = 0; sh < 4; sh++) x2[sh] = _mm256_loadu_si256((const __m256i *)(xq + b + 16 * sh));
                const size_t off = (size_t)b / 4;
                Q2_ROW64(w0, c0) Q2_ROW64(w1, c1) Q2_ROW64(w2, c2) Q2_ROW64(w3, c3)
            } else if (q4) {
                xl = _mm256_loadu_si256((const __m256i *)(xq + b));
                xh = _mm256_loadu_si256((const __m256i *)(xq + b + 16));
                const size_t off = (size_t)b / 2;
                Q4_ROW32(w0, c0) Q4_ROW32(w1, c1) Q4_ROW32(w2, c2) Q4_ROW32(w3, c3)
            } else {
                xl = _mm256_loadu_si256((const __m256i *)(xq + b));
                xh = _mm256_loadu_si256((const __m256i *)(xq + b + 16));
                Q8_ROW32(w0, c0) Q8_ROW32(w1, c1) Q8_ROW32(w2, c2) Q8_ROW32(w3, c3)
            }
            a0 = _mm512_add_epi32(a0, _mm512_castsi256_si512(c0));
            a1 = _mm512_add_epi32(a1, _mm512_castsi256_si512(c1));
            a2 = _mm512_add_epi32(a2, _mm512_castsi256_si512(c2));
            a3 = _mm512_add_epi32(a3, _mm512_castsi256_si512(c3));
        }
        const float xs = a->xsc[gi];
        y0 = _mm512_fmadd_ps(_mm512_set1_ps(sc[0][gi] * xs), _mm512_cvtepi32_ps(a0), y0);
        y1 = _mm512_fmadd_ps(_mm512_set1_ps(sc[1][gi] * xs), _mm512_cvtepi32_ps(a1), y1);
        y2 = _mm512_fmadd_ps(_mm512_set1_ps(sc[2][gi] * xs), _mm512_cvtepi32_ps(a2), y2);
        y3 = _mm512_fmadd_ps(_mm512_set1_ps(sc[3][gi] * xs), _mm512_cvtepi32_ps(a3), y3);
    }
#undef Q4_ROW64
#undef Q4_ROW32
#undef Q2_ROW128
#undef Q2_ROW64
#undef Q8_ROW64
#undef Q8_ROW32
    finish4_512(L, y0, y1, y2, y3, rows, cnt, sc, zf, a, out);
}
#endif

#if PLAIT_AVX512
/* ---- int8 activations (act_bits 8): code bytes times activation bytes, vpdpbusd
 *
 * One step of the kernel loads 64 bytes of a row's codes: 64 inputs of Q8, 128 of Q4
 * (four 32-input blocks), 256 of Q2 (four 64-input blocks).  The codes' fields (the byte;
 * the low and high nibbles; the four 2-bit fields) are multiplied, as unsigned bytes, by
 * as many "streams" of 64 activation bytes, which prep_bytes lays out so that byte j of a
 * stream is the input of byte j's field:
 *   Q8  one stream, the inputs in order;
 *   Q4  per block b (16 bytes of the stream): low stream inputs 32 b + 0..15, high stream
 *       inputs 32 b + 16..31;
 *   Q2  stream s, per block b: inputs 64 b + 16 s + 0..15.
 * vpdpbusd sums 4 products per int32 lane, so lanes 4 j .. 4 j + 3 of a step cover the
 * 16 stream bytes of block j (Q8: 16 consecutive inputs): one weight group as long as
 * groups are multiples of 32 (Q4), 64 (Q2), 16 (Q8) inputs.  A row is cut into steps of
 * S = 64 / 128 / 256 inputs, the last ones halved (256-bit forms) and quartered (128-bit)
 * where K is not a multiple of S; the activations are laid out chunk by chunk the same way.
 * Where the groups are whole steps (G % S == 0) a group's steps accumulate in int32 and
 * are scaled once; otherwise (SmolLM2's 576-wide linears: Q4 groups of 64 are half a step)
 * every chunk is scaled lane by lane (plait_chunk: each lane's group and its scales). */
static inline int step_inputs(int kind) { return kind == PLAIT_Q2 ? 256 : kind == PLAIT_Q4 ? 128 : 64; }
static inline int step_streams(int kind) { return kind == PLAIT_Q2 ? 4 : kind == PLAIT_Q4 ? 2 : 1; }
/* inputs covered by the 16 stream bytes of four lanes */
static inline int lane_block(int kind) { return kind == PLAIT_Q2 ? 64 : kind == PLAIT_Q4 ? 32 : 16; }

static void prep_bytes(const plait_lin *L, plait_act *a) {
    const int K = L->k, G = L->g, kind = L->kind, S = step_inputs(kind), ns = step_streams(kind);
    const int blk = lane_block(kind), whole = G % S == 0;
    a->nch = 0;
    for (int c0 = 0; c0 < K;) {
        int cs = S;
        while (cs > K - c0) cs /= 2;
        const int sl = cs / ns;                /* bytes per stream in this chunk */
        /* inputs i .. i + 15 of the chunk (i a multiple of 16) are 16 bytes of stream
         * (i / 16) % ns at 16 * (i / (16 ns)): Q4 block b = i / 32, half i / 16 % 2; Q2
         * block i / 64, field i / 16 % 4; Q8 in order */
        for (int i = 0; i < cs; i += 16) {
            const __m128i *q = (const __m128i *)(a->xq + c0 + i);
            _mm_storeu_si128((__m128i *)(a->xb + c0 + (i / 16 % ns) * sl + i / (16 * ns) * 16),
                             _mm_packs_epi16(_mm_loadu_si128(q), _mm_loadu_si128(q + 1)));
        }
        if (!whole) {
            plait_chunk *c = a->ch + a->nch++;
            c->c0 = c0, c->cs = cs, c->g0 = c0 / G;
            c->ngc = (c0 + cs - 1) / G - c->g0 + 1;
            c->gmask = (1u << c->ngc) - 1;
            const int lanes = sl / 4;
            for (int l = 0; l < 16; l++) {
                const int g = l < lanes ? (c0 + blk * (l / 4)) / G : c->g0;
                c->idx[l] = g - c->g0;
                c->sx[l] = l < lanes ? a->xsc[g] : 0.f;
            }
        }
        c0 += cs;
    }
}

/* the products of one step of a row: codes v, activation streams x[0..]; W the width's
 * intrinsic prefix, T its integer vector type, AND its and */
#define B_STEP(W, T, AND, v, x, acc, kind)                                                       \
    {                                                                                            \
        if (kind == PLAIT_Q8) acc = W##_dpbusd_epi32(acc, v, x[0]);                               \
        else if (kind == PLAIT_Q4) {                                                             \
            const T m = W##_set1_epi8(0x0F);                                                     \
            acc = W##_dpbusd_epi32(acc, AND(v, m), x[0]);                                        \
            acc = W##_dpbusd_epi32(acc, AND(W##_srli_epi16(v, 4), m), x[1]);                     \
        } else {                                                                                 \
            const T m = W##_set1_epi8(3);                                                        \
            acc = W##_dpbusd_epi32(acc, AND(v, m), x[0]);                                        \
            acc = W##_dpbusd_epi32(acc, AND(W##_srli_epi16(v, 2), m), x[1]);                     \
            acc = W##_dpbusd_epi32(acc, AND(W##_srli_epi16(v, 4), m), x[2]);                     \
            acc = W##_dpbusd_epi32(acc, AND(W##_srli_epi16(v, 6), m), x[3]);                     \
        }                                                                                        \
    }

static inline __attribute__((always_inline)) void dot4_b512_kind(const int kind, const plait_lin *L, int n0,
                                                                  int cnt, const plait_act *a, float *out) {
    const int K = L->k, G = L->g, ng = K / G, S = step_inputs(kind), ns = step_streams(kind);
    const int per = S / 64;                       /* inputs per code byte */
    int rows[4];
    const float *sc[4], *zf[4];
    quad_rows(L, n0, cnt, rows, sc, zf);
    const size_t rb = row_bytes(L), pf = 4 * PF_QUADS * rb;
    const uint8_t *w[4];
    for (int r = 0; r < 4; r++) w[r] = L->w + (size_t)rows[r] * rb;
    const int8_t *xb = a->xb;
    __m512 y[4];
    for (int r = 0; r < 4; r++) y[r] = _mm512_setzero_ps();
    if (G % S == 0) {                             /* whole steps per group: scaled once a group */
        for (int gi = 0; gi < ng; gi++) {
            __m512i acc[4];
            for (int r = 0; r < 4; r++) acc[r] = _mm512_setzero_si512();
            for (int c0 = gi * G; c0 < (gi + 1) * G; c0 += S) {
                __m512i x[4];
                for (int s = 0; s < ns; s++) x[s] = _mm512_loadu_si512((const void *)(xb + c0 + 64 * s));
                const size_t off = (size_t)c0 / per;
                for (int r = 0; r < 4; r++) PREFETCH(w[r] + pf + off);
                for (int r = 0; r < 4; r++) {
                    const __m512i v = _mm512_loadu_si512((const void *)(w[r] + off));
                    B_STEP(_mm512, __m512i, _mm512_and_si512, v, x, acc[r], kind)
                }
            }
            const float xs = a->xsc[gi];
            for (int r = 0; r < 4; r++)
                y[r] = _mm512_fmadd_ps(_mm512_set1_ps(sc[r][gi] * xs), _mm512_cvtepi32_ps(acc[r]), y[r]);
        }
    } else {                                      /* chunk by chunk, each lane scaled by its group */
        for (int c = 0; c < a->nch; c++) {
            const plait_chunk *ch = a->ch + c;
            const int c0 = ch->c0, cs = ch->cs, sl = cs / ns;
            const size_t off = (size_t)c0 / per;
            __m512 t[4];
            if (cs == S) {
                __m512i x[4];
                for (int s = 0; s < ns; s++) x[s] = _mm512_loadu_si512((const void *)(xb + c0 + 64 * s));
                for (int r = 0; r < 4; r++) PREFETCH(w[r] + pf + off);
                for (int r = 0; r < 4; r++) {
                    const __m512i v = _mm512_loadu_si512((const void *)(w[r] + off));
                    __m512i acc = _mm512_setzero_si512();
                    B_STEP(_mm512, __m512i, _mm512_and_si512, v, x, acc, kind)
                    t[r] = _mm512_cvtepi32_ps(acc);
                }
            } else if (cs == S / 2) {
                __m256i x[4];
                for (int s = 0; s < ns; s++) x[s] = _mm256_loadu_si256((const __m256i *)(xb + c0 + sl * s));
                for (int r = 0; r < 4; r++) {
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(w[r] + off));
                    __m256i acc = _mm256_setzero_si256();
                    B_STEP(_mm256, __m256i, _mm256_and_si256, v, x, acc, kind)
                    t[r] = _mm512_zextps256_ps512(_mm256_cvtepi32_ps(acc));
                }
            } else {
                __m128i x[4];
                for (int s = 0; s < ns; s++) x[s] = _mm_loadu_si128((const __m128i *)(xb + c0 + sl * s));
                for (int r = 0; r < 4; r++) {
                    const __m128i v = _mm_loadu_si128((const __m128i *)(w[r] + off));
                    __m128i acc = _mm_setzero_si128();
                    B_STEP(_mm, __m128i, _mm_and_si128, v, x, acc, kind)
                    t[r] = _mm512_zextps128_ps512(_mm_cvtepi32_ps(acc));
                }
            }
            const __m512i idx = _mm512_loadu_si512((const void *)ch->idx);
            const __m512 sx = _mm512_loadu_ps(ch->sx);
            const __mmask16 gm = (__mmask16)ch->gmask;
            for (int r = 0; r < 4; r++) {
                const __m512 sw = _mm512_permutexvar_ps(idx, _mm512_maskz_loadu_ps(gm, sc[r] + ch->g0));
                y[r] = _mm512_fmadd_ps(_mm512_mul_ps(t[r], sx), sw, y[r]);
            }
        }
    }
    finish4_512(L, y[0], y[1], y[2], y[3], rows, cnt, sc, zf, a, out);
}
#undef B_STEP

static void dot4_b512(const plait_lin *L, int n0, int cnt, const plait_act *a, float *out) {
    if (L->kind == PLAIT_Q4) dot4_b512_kind(PLAIT_Q4, L, n0, cnt, a, out);
    else if (L->kind == PLAIT_Q2) dot4_b512_kind(PLAIT_Q2, L, n0, cnt, a, out);
    else dot4_b512_kind(PLAIT_Q8, L, n0, cnt, a, out);
}
#endif

#if PLAIT_AVX2
/* rows n0 .. n0 + cnt - 1 (cnt <= 4; the missing rows of a last quad repeat the last row)
 * of a Q4 / Q8 linear, the activations loaded once for the four rows */
__attribute__((unused)) static void dot4_q(const plait_lin *L, int n0, int cnt, const plait_act *a, float *out) {
    const int K = L->k, G = L->g, ng = K / G;
    int rows[4];
    const float *sc[4], *zf[4];
    quad_rows(L, n0, cnt, rows, sc, zf);
    __m256 y0 = _mm256_setzero_ps(), y1 = y0, y2 = y0, y3 = y0;
    const int16_t *xq = a->xq;
    /* a group's int32 sums a0..a3, scaled by the rows' scales and the activations' scale */
#define GROUP_DONE(gi)                                                                         \
    {                                                                                          \
        const float xs = a->xsc[gi];                                                           \
        y0 = _mm256_fmadd_ps(_mm256_set1_ps(sc[0][gi] * xs), _mm256_cvtepi32_ps(a0), y0);      \
        y1 = _mm256_fmadd_ps(_mm256_set1_ps(sc[1][gi] * xs), _mm256_cvtepi32_ps(a1), y1);      \
        y2 = _mm256_fmadd_ps(_mm256_set1_ps(sc[2][gi] * xs), _mm256_cvtepi32_ps(a2), y2);      \
        y3 = _mm256_fmadd_ps(_mm256_set1_ps(sc[3][gi] * xs), _mm256_cvtepi32_ps(a3), y3);      \
    }

    if (L->kind == PLAIT_Q4) {
        const size_t rb = (size_t)K / 2, pf = 4 * PF_QUADS * rb;
        const uint8_t *w0 = L->w + (size_t)rows[0] * rb, *w1 = L->w + (size_t)rows[1] * rb;
        const uint8_t *w2 = L->w + (size_t)rows[2] * rb, *w3 = L->w + (size_t)rows[3] * rb;
        const __m128i m4 = _mm_set1_epi8(0x0F);
#define Q4_ROW(wr, acc)                                                                        \
        {                                                                                      \
            __m128i v = _mm_loadu_si128((const __m128i *)((wr) + off));                        \
            __m256i lo = _mm256_cvtepu8_epi16(_mm_and_si128(v, m4));                           \
            __m256i hi = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(v, 4), m4));        \
            acc = _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(lo, x0), _mm256_madd_epi16(hi, x1))); \
        }
        for (int gi = 0; gi < ng; gi++) {
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
            for (int b = gi * G; b < (gi + 1) * G; b += 32) {
                const __m256i x0 = _mm256_loadu_si256((const __m256i *)(xq + b));
                const __m256i x1 = _mm256_loadu_si256((const __m256i *)(xq + b + 16));
                const size_t off = (size_t)b / 2;
                if (!(off & 63)) { PREFETCH(w0 + pf + off); PREFETCH(w1 + pf + off);
                                   PREFETCH(w2 + pf + off); PREFETCH(w3 + pf + off); }
                Q4_ROW(w0, a0) Q4_ROW(w1, a1) Q4_ROW(w2, a2) Q4_ROW(w3, a3)
            }
            GROUP_DONE(gi)
        }
#undef Q4_ROW
    } else if (L->kind == PLAIT_Q2) {
        const size_t rb = row_bytes(L), pf = 4 * PF_QUADS * rb;
        const uint8_t *w0 = L->w + (size_t)rows[0] * rb, *w1 = L->w + (size_t)rows[1] * rb;
        const uint8_t *w2 = L->w + (size_t)rows[2] * rb, *w3 = L->w + (size_t)rows[3] * rb;
        const __m256i m2 = _mm256_set1_epi16(3);
#define Q2_ROW(wr, acc)                                                                        \
        {                                                                                      \
            __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)((wr) + off)));  \
            __m256i p0 = _mm256_madd_epi16(_mm256_and_si256(v, m2), x0);                       \
            __m256i p1 = _mm256_madd_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 2), m2), x1); \
            __m256i p2 = _mm256_madd_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m2), x2); \
            __m256i p3 = _mm256_madd_epi16(_mm256_srli_epi16(v, 6), x3);                       \
            acc = _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3))); \
        }
        for (int gi = 0; gi < ng; gi++) {
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
            for (int b = gi * G; b < (gi + 1) * G; b += 64) {
                const __m256i x0 = _mm256_loadu_si256((const __m256i *)(xq + b));
                const __m256i x1 = _mm256_loadu_si256((const __m256i *)(xq + b + 16));
                const __m256i x2 = _mm256_loadu_si256((const __m256i *)(xq + b + 32));
                const __m256i x3 = _mm256_loadu_si256((const __m256i *)(xq + b + 48));
                const size_t off = (size_t)b / 4;
                if (!(off & 63)) { PREFETCH(w0 + pf + off); PREFETCH(w1 + pf + off);
                                   PREFETCH(w2 + pf + off); PREFETCH(w3 + pf + off); }
                Q2_ROW(w0, a0) Q2_ROW(w1, a1) Q2_ROW(w2, a2) Q2_ROW(w3, a3)
            }
            GROUP_DONE(gi)
        }
#undef Q2_ROW
    } else {
        const size_t rb = (size_t)K, pf = 4 * PF_QUADS * rb;
        const uint8_t *w0 = L->w + (size_t)rows[0] * rb, *w1 = L->w + (size_t)rows[1] * rb;
        const uint8_t *w2 = L->w + (size_t)rows[2] * rb, *w3 = L->w + (size_t)rows[3] * rb;
#define Q8_ROW(wr, acc)                                                                        \
        {                                                                                      \
            __m256i v0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)((wr) + b)));   \
            __m256i v1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)((wr) + b + 16))); \
            acc = _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(v0, x0), _mm256_madd_epi16(v1, x1))); \
        }
        for (int gi = 0; gi < ng; gi++) {
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
            for (int b = gi * G; b < (gi + 1) * G; b += 32) {
                const __m256i x0 = _mm256_loadu_si256((const __m256i *)(xq + b));
                const __m256i x1 = _mm256_loadu_si256((const __m256i *)(xq + b + 16));
                if (!(b & 63)) { PREFETCH(w0 + pf + b); PREFETCH(w1 + pf + b);
                                 PREFETCH(w2 + pf + b); PREFETCH(w3 + pf + b); }
                Q8_ROW(w0, a0) Q8_ROW(w1, a1) Q8_ROW(w2, a2) Q8_ROW(w3, a3)
            }
            GROUP_DONE(gi)
        }
#undef Q8_ROW
    }
#undef GROUP_DONE
    const __m256 ys[4] = {y0, y1, y2, y3};
    for (int r = 0; r < cnt; r++)
        out[r] = hsum8(ys[r]) - zero_term(L, sc[r], zf[r], a, ng) + (L->bias ? L->bias[rows[r]] : 0.f);
}
#endif

/* ------------------------------------------------------------------ the barrier */

/* The threads meet after every parallel loop.  On a machine shared with other jobs a
 * thread may be descheduled: waiters spin briefly, then sleep on a futex (so the core
 * is free for the late thread) instead of spinning for a whole time slice. */
typedef struct { int count, gen, sleepers; } plait_barrier;
static plait_barrier BAR;
#define SPIN 4000

static inline void cpu_relax(void) {
#if PLAIT_AVX2
    _mm_pause();
#endif
}

static void bar_wait(int n) {
    plait_barrier *b = &BAR;
    if (n <= 1) return;
    const int gen = __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == n) {
        __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
        __atomic_add_fetch(&b->gen, 1, __ATOMIC_RELEASE);
        if (__atomic_load_n(&b->sleepers, __ATOMIC_ACQUIRE))
            syscall(SYS_futex, &b->gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
        return;
    }
    for (int i = 0; i < SPIN; i++) {
        if (__atomic_load_n(&b->gen, __ATOMIC_ACQUIRE) != gen) return;
        cpu_relax();
    }
    __atomic_add_fetch(&b->sleepers, 1, __ATOMIC_ACQ_REL);
    while (__atomic_load_n(&b->gen, __ATOMIC_ACQUIRE) == gen)
        syscall(SYS_futex, &b->gen, FUTEX_WAIT_PRIVATE, gen, NULL, NULL, 0);
    __atomic_sub_fetch(&b->sleepers, 1, __ATOMIC_ACQ_REL);
}

/* ------------------------------------------------------------------ row-parallel linears */

#define MAX_D 8192
/* Rows are shared out in quads, "guided": a thread first takes a long run of quads (half
 * of what is left, then a quarter, ...: each thread streams contiguous rows, which the
 * hardware prefetcher follows), the last quads go to whichever thread is free (on a shared
 * machine a descheduled thread leaves its share to the other).  On 2 Zen 3 cores, SmolLM2
 * w4g128, steps of builds interleaved in one run: static split + prefetch 7.7 ms (median),
 * dynamic chunks of 8 quads + prefetch 10.8 ms, dynamic without prefetch 11.9 ms; guided +
 * prefetch matched static in the next runs, and unlike static it does not wait for a
 * descheduled thread's whole half. */
#define SCHED schedule(guided, 4)
/* rows n0 .. n0 + cnt - 1 (cnt <= 4) of a linear, bias included */
static void lin_rows(const plait_lin *L, int n0, int cnt, const plait_act *a, float *out) {
#if PLAIT_AVX512
    if (L->kind != PLAIT_F32) {             /* prefetch the quad PF_QUADS ahead */
        if (a->act_bits == 8) dot4_b512(L, n0, cnt, a, out);
        else dot4_q512(L, n0, cnt, a, out);
        return;
    }
#elif PLAIT_AVX2
    if (L->kind != PLAIT_F32) {
        dot4_q(L, n0, cnt, a, out);         /* prefetches the quad PF_QUADS ahead */
        return;
    }
#endif
    for (int r = 0; r < cnt; r++) out[r] = dot_row(L, n0 + r, a);
}

/* y[r] (= or +=) row r of W x for up to three linears with the same input: their quads
 * of rows are shared out to the threads of the enclosing parallel region.  Every thread
 * prepares the activations itself (no barrier); linears with the same group size share them. */
/* two linears read the same prepared activations: both quantized, the same groups (and,
 * for the byte kernels' order, the same code format) */
static inline int same_act(const plait_lin *a, const plait_lin *b) {
    return a->kind != PLAIT_F32 && b->kind != PLAIT_F32 && a->g == b->g && a->k == b->k && a->kind == b->kind;
}

/* thread-local buffers of up to three prepared activations */
static void act_buffers(plait_act *acts, int n) {
    static __thread int16_t xqbuf[3][MAX_K];
    static __thread int8_t xbbuf[3][MAX_K];
    static __thread plait_chunk chbuf[3][MAX_K / 32];
    for (int i = 0; i < n; i++) acts[i].xq = xqbuf[i], acts[i].xb = xbbuf[i], acts[i].ch = chbuf[i];
}

static void gemv_multi(const plait_lin *const *L, float *const *y, int nl, const float *x, int accumulate,
                       int act_bits) {
    plait_act acts[3];
    act_buffers(acts, 3);
    const plait_act *ap[3] = {0, 0, 0};
    int units[3] = {0, 0, 0}, nu = 0;
    for (int i = 0; i < nl; i++) {
        int j = 0;
        while (j < i && !same_act(L[j], L[i])) j++;
        if (j < i) ap[i] = ap[j];
        else { prep_act(L[i], x, &acts[i], act_bits); ap[i] = &acts[i]; }
        units[i] = (L[i]->n + 3) / 4;
        nu += units[i];
    }
    #pragma omp for SCHED nowait
    for (int u = 0; u < nu; u++) {
        int i = 0, uu = u;
        while (uu >= units[i]) { uu -= units[i]; i++; }
        const int n0 = uu * 4, cnt = L[i]->n - n0 < 4 ? L[i]->n - n0 : 4;
        float v[4];
        lin_rows(L[i], n0, cnt, ap[i], v);
        float *yi = y[i] + n0;
        if (accumulate) for (int r = 0; r < cnt; r++) yi[r] += v[r];
        else for (int r = 0; r < cnt; r++) yi[r] = v[r];
    }
    bar_wait(omp_get_num_threads());
}

/* act = silu(gate x) * (up x), gate and up rows computed together */
static void gemv_swiglu(const plait_lin *G, const plait_lin *U, const float *x, float *act, int act_bits) {
    plait_act acts[2];
    act_buffers(acts, 2);
    prep_act(G, x, &acts[0], act_bits);
    const plait_act *pu = &acts[0];
    if (!same_act(G, U)) { prep_act(U, x, &acts[1], act_bits); pu = &acts[1]; }
    const int nu = (G->n + 3) / 4;
    #pragma omp for SCHED nowait
    for (int u = 0; u < nu; u++) {
        const int n0 = u * 4, cnt = G->n - n0 < 4 ? G->n - n0 : 4;
        float g[4], up[4];
        lin_rows(G, n0, cnt, &acts[0], g);
        lin_rows(U, n0, cnt, pu, up);
        for (int r = 0; r < cnt; r++) act[n0 + r] = g[r] / (1.f + expf(-g[r])) * up[r];
    }
    bar_wait(omp_get_num_threads());
}

/* ------------------------------------------------------------------ special functions */

static void rmsnorm(const float *x, const float *w, float eps, int d, float *out) {
    float ss = 0.f;
    for (int i = 0; i < d; i++) ss += x[i] * x[i];
    float r = 1.f / sqrtf(ss / (float)d + eps);
    for (int i = 0; i < d; i++) out[i] = x[i] * r * w[i];
}

/* half-split rotary embedding of one head in place */
static void rope_head(float *v, const float *cos, const float *sin, int hd) {
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        float a = v[i], b = v[i + half];
        v[i] = a * cos[i] - b * sin[i];
        v[i + half] = b * cos[i + half] + a * sin[i + half];
    }
}

static float dotf(const float *a, const float *b, int n) {
    int i = 0;
    float s = 0.f;
#if PLAIT_AVX2
    __m256 acc = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    s = hsum8(acc);
#endif
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ------------------------------------------------------------------ one decode step */

/* The down projection's input, the SwiGLU product, keeps 16 bits whatever act_bits says:
 * its outliers are what int8 per group loses (SmolLM2 w4g128, 512 tokens of the default
 * text through decode steps: perplexity 28.28 with 16-bit activations, 28.67 with every
 * linear on int8, 28.27 with down on 16 bits; decode speed within the host's noise). */
#define DOWN_ACT_BITS 16

int plait_step(const plait_model *m, plait_state *st, int token, int pos, float *logits, int nthreads) {
    if (token < 0 || token >= m->vocab || pos < 0 || pos >= m->cap || m->d > MAX_D ||
        (m->act_bits != 16 && m->act_bits != 8)) return -1;
    const int d = m->d, H = m->n_heads, Hk = m->n_kv, hd = m->hd, cap = m->cap;
    const int rep = H / Hk;
    const float *cos = m->rope_cos + (size_t)pos * hd, *sin = m->rope_sin + (size_t)pos * hd;
    memcpy(st->x, m->emb + (size_t)token * d, sizeof(float) * d);
    /* barriers: one after each parallel loop (q/k/v, attention, o, gate/up, down); the
     * norms are computed by every thread into its own buffer */
    #pragma omp parallel num_threads(nthreads)
    {
        float h[MAX_D];
        for (int l = 0; l < m->n_layers; l++) {
            const plait_layer *L = m->layers + l;
            float *kc = st->kv + (size_t)l * 2 * Hk * cap * hd, *vc = kc + (size_t)Hk * cap * hd;
            rmsnorm(st->x, L->norm1, L->eps1, d, h);
            {
                const plait_lin *ls[3] = {&L->q, &L->k, &L->v};
                float *ys[3] = {st->q, st->kvnew, st->kvnew + Hk * hd};
                gemv_multi(ls, ys, 3, h, 0, m->act_bits);
            }
            /* attention of one head: q and this position's k get RoPE here; the thread of
             * the first query head of a KV group writes the position's k / v to the cache
             * (the other heads of the group read only earlier positions from it) */
            #pragma omp for schedule(dynamic, 1) nowait
            for (int hh = 0; hh < H; hh++) {
                const int kh = hh / rep;
                float qh[512], kn[512];
                const float *vn = st->kvnew + (Hk + kh) * hd;
                memcpy(qh, st->q + hh * hd, sizeof(float) * hd);
                memcpy(kn, st->kvnew + kh * hd, sizeof(float) * hd);
                rope_head(qh, cos, sin, hd);
                rope_head(kn, cos, sin, hd);
                const float *kh_c = kc + (size_t)kh * cap * hd, *vh_c = vc + (size_t)kh * cap * hd;
                if (hh % rep == 0) {
                    memcpy(kc + ((size_t)kh * cap + pos) * hd, kn, sizeof(float) * hd);
                    memcpy(vc + ((size_t)kh * cap + pos) * hd, vn, sizeof(float) * hd);
                }
                float *sc = st->scores + (size_t)hh * cap, mx = -INFINITY, sum = 0.f;
                int t = 0;
#if PLAIT_AVX2
                if (hd % 8 == 0)                 /* four positions at a time: four FMA chains */
                    for (; t + 4 <= pos; t += 4) {
                        const float *k0 = kh_c + (size_t)t * hd;
                        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
                        for (int i = 0; i < hd; i += 8) {
                            const __m256 qv = _mm256_loadu_ps(qh + i);
                            a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + i), a0);
                            a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + hd + i), a1);
                            a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + 2 * hd + i), a2);
                            a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + 3 * hd + i), a3);
                        }
                        const __m256 hs = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
                        _mm_storeu_ps(sc + t, _mm_mul_ps(_mm_add_ps(_mm256_castps256_ps128(hs),
                                                                    _mm256_extractf128_ps(hs, 1)),
                                                         _mm_set1_ps(m->attn_scale)));
                    }
#endif
                for (; t <= pos; t++) sc[t] = dotf(qh, t == pos ? kn : kh_c + (size_t)t * hd, hd) * m->attn_scale;
                for (t = 0; t <= pos; t++) if (sc[t] > mx) mx = sc[t];
                for (t = 0; t <= pos; t++) { sc[t] = expf(sc[t] - mx); sum += sc[t]; }
                const float inv = 1.f / sum;
                float *o = st->att + hh * hd;
                int i = 0;
#if PLAIT_AVX2
                /* 32 outputs at a time over every position: four FMA chains in registers */
                for (; i + 32 <= hd; i += 32) {
                    __m256 o0 = _mm256_setzero_ps(), o1 = o0, o2 = o0, o3 = o0;
                    for (t = 0; t <= pos; t++) {
                        const __m256 pv = _mm256_set1_ps(sc[t]);
                        const float *vt = (t == pos ? vn : vh_c + (size_t)t * hd) + i;
                        o0 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(vt), o0);
                        o1 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(vt + 8), o1);
                        o2 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(vt + 16), o2);
                        o3 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(vt + 24), o3);
                    }
                    const __m256 iv = _mm256_set1_ps(inv);
                    _mm256_storeu_ps(o + i, _mm256_mul_ps(o0, iv));
                    _mm256_storeu_ps(o + i + 8, _mm256_mul_ps(o1, iv));
                    _mm256_storeu_ps(o + i + 16, _mm256_mul_ps(o2, iv));
                    _mm256_storeu_ps(o + i + 24, _mm256_mul_ps(o3, iv));
                }
#endif
                for (; i < hd; i++) {            /* the rest (every output in the portable build) */
                    float acc = 0.f;
                    for (t = 0; t <= pos; t++) acc += sc[t] * (t == pos ? vn : vh_c + (size_t)t * hd)[i];
                    o[i] = acc * inv;
                }
            }
            bar_wait(omp_get_num_threads());
            {
                const plait_lin *ls[1] = {&L->o};
                float *ys[1] = {st->x};
                gemv_multi(ls, ys, 1, st->att, 1, m->act_bits);            /* x += o(att) */
            }
            rmsnorm(st->x, L->norm2, L->eps2, d, h);
            gemv_swiglu(&L->gate, &L->up, h, st->act, m->act_bits);
            {
                const plait_lin *ls[1] = {&L->down};
                float *ys[1] = {st->x};
                gemv_multi(ls, ys, 1, st->act, 1, DOWN_ACT_BITS);          /* x += down(act) */
            }
        }
        rmsnorm(st->x, m->norm_final, m->eps_final, d, h);
        {
            const plait_lin *ls[1] = {&m->head};
            float *ys[1] = {logits};
            gemv_multi(ls, ys, 1, h, 0, m->act_bits);
        }
    }
    return 0;
}

/* y = W x (+ b) for one linear: the kernel alone (tests, benchmarks) */
int plait_gemv(const plait_lin *L, const float *x, float *y, int nthreads, int act_bits) {
    if (act_bits != 16 && act_bits != 8) return -1;
    if (L->kind != PLAIT_F32 && (L->g <= 0 || L->k % L->g || L->g % (L->kind == PLAIT_Q2 ? 64 : 32) ||
                                 L->k / L->g > MAX_GROUPS / 8 || L->k > MAX_K)) return -1;
    const plait_lin *ls[1] = {L};
    float *ys[1] = {y};
    #pragma omp parallel num_threads(nthreads)
    gemv_multi(ls, ys, 1, x, 0, act_bits);
    return 0;
}

/* ------------------------------------------------------------------ dequantization */

/* float32 rows [r0, r1) of a Q2 / Q4 / Q8 linear into out[(r1 - r0), k]: sc * (u - zf) */
int plait_dequant(const plait_lin *L, int r0, int r1, float *out, int nthreads) {
    if (L->kind == PLAIT_F32 || r0 < 0 || r1 > L->n || r0 > r1) return -1;
    const int K = L->k, G = L->g, ng = K / G;
    #pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int n = r0; n < r1; n++) {
        float *o = out + (size_t)(n - r0) * K;
        const float *sc = L->sc + (size_t)n * ng, *zf = L->zf ? L->zf + (size_t)n * ng : NULL;
        for (int gi = 0; gi < ng; gi++) {
            const float s = sc[gi], z = zf ? zf[gi] : L->z0;
            const uint8_t *w = L->w + (size_t)n * row_bytes(L);
            if (L->kind == PLAIT_Q2) {
                for (int b = gi * G; b < (gi + 1) * G; b += 64)
                    for (int j = 0; j < 16; j++)
                        for (int sh = 0; sh < 4; sh++)
                            o[b + 16 * sh + j] = s * ((float)((w[b / 4 + j] >> (2 * sh)) & 3) - z);
            } else if (L->kind == PLAIT_Q4) {
                for (int b = gi * G; b < (gi + 1) * G; b += 32)
                    for (int j = 0; j < 16; j++) {
                        o[b + j] = s * ((float)(w[b / 2 + j] & 15) - z);
                        o[b + 16 + j] = s * ((float)(w[b / 2 + j] >> 4) - z);
                    }
            } else {
                for (int kk = gi * G; kk < (gi + 1) * G; kk++) o[kk] = s * ((float)w[kk] - z);
            }
        }
    }
    return 0;
}
