"""Packed weight formats (plait.ir.numerics.pack) and the ``pack`` pass.

Round trips are exact (integers compared with equality) for every DSP chain mode and
code width and every LUT core width/scheme; the packed arrays are the engines' own
beat streams (``schedule_chain`` codes/idx, ``stream_tile`` w_beats); the pass maps,
packs, refuses what the engines cannot run (naming the layer), and its fields survive
an artifact round trip.
"""
from __future__ import annotations

import numpy as np
import pytest

from plait.ir import Graph, TensorType, WeightStore, verify
from plait.ir.numerics import NumericsError, QuantizedWeight, encode_scales, quantize_rtn
from plait.ir.numerics.common import signed_weight
from plait.ir.numerics.dsp import MODES, WBITS_CODE, chain_weight_beats, prune_nm, schedule_chain
from plait.ir.numerics.lut import lut_weight_beats, odd_zero_point
from plait.ir.numerics.pack import (BIAS_BITS, DspPacked, LutPacked, decode_bias, encode_bias,
                                    pack_dsp, pack_lut, pack_nibbles, packed_from, read_packed,
                                    unpack_dsp, unpack_lut, unpack_nibbles)
from plait.ir.verify import VerifyError
from plait.passes import PassError, PassManager, PassOptionError, load_recipe, make_pass
from plait.passes.framework import PassContext
from plait.rtl.lut_core import LutCoreConfig, stream_tile
from plait.tests.graphs import tiny_block

RNG = np.random.default_rng(20240611)
SPARSE = {"2:4": (2, 4), "2:16": (2, 16), "4:16": (4, 16), "8:16": (8, 16)}


def _sparse_weight(n, k, mode, rng=RNG):
    w = rng.standard_normal((n, k)).astype(np.float32)
    if mode != "dense":
        w = w * prune_nm(w, *SPARSE[mode])
    return w


# ------------------------------------------------------------------ nibbles
def test_nibbles_round_trip_and_bus_word():
    v = RNG.integers(0, 16, (5, 9))
    b = pack_nibbles(v)
    assert b.dtype == np.uint8 and b.shape == (5, 5)
    assert np.array_equal(unpack_nibbles(b, 9), v)
    # a row of bytes read little-endian is the bus word: element i at bits [4i +: 4]
    for row, packed in zip(v, b):
        assert int.from_bytes(packed.tobytes(), "little") == sum(int(x) << (4 * i) for i, x in enumerate(row))
    with pytest.raises(NumericsError, match=r"\[0, 15\]"):
        pack_nibbles(np.array([3, 16]))
    bad = b.copy()
    bad[0, -1] |= 0xF0                       # unused high nibble of an odd-length row
    with pytest.raises(NumericsError, match="unused high nibble"):
        unpack_nibbles(bad, 9)


# ------------------------------------------------------------------ DSP chain
@pytest.mark.parametrize("mode", ["dense", "2:4", "2:16", "4:16", "8:16"])
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_dsp_round_trip_every_mode_and_width(mode, bits):
    n_dsp = 32
    rows, k, g = 37, 64, 16                 # 37 rows: the last tile is padded
    qw = quantize_rtn(_sparse_weight(rows, k, mode), bits, g, "sym")
    p = pack_dsp(qw, mode, n_dsp=n_dsp)
    assert p.bits == bits and p.mode == mode and p.wbits_code == WBITS_CODE[bits]
    assert p.mode_code == MODES[mode][2]
    q = signed_weight(qw)
    # the packed beats are the chain's own schedule
    s = schedule_chain(np.zeros((2, k), np.int8), q, mode, g, n_dsp=n_dsp, bits=bits)
    assert np.array_equal(p.codes, s.codes) and np.array_equal(p.idx, s.idx)
    assert p.codes.dtype == np.uint8 and p.codes.shape == (p.n_tiles * k // MODES[mode][1], n_dsp)
    # stored fields: idx two per byte, omitted when dense
    arrays = p.arrays()
    assert set(arrays) == ({"codes", "mant"} if mode == "dense" else {"codes", "idx", "mant"})
    if mode != "dense":
        assert arrays["idx"].dtype == np.uint8 and arrays["idx"].shape == (p.beats, n_dsp // 2)
        assert np.array_equal(unpack_nibbles(arrays["idx"], n_dsp), s.idx)
    assert arrays["mant"].dtype == np.uint16 and arrays["mant"].shape == (rows, k // g)
    # exact round trip, also through the stored fields
    for pk in (p, DspPacked.from_arrays(p.meta(), arrays)):
        u = unpack_dsp(pk)
        assert np.array_equal(u.q, q)
        mant, e = encode_scales(qw.scales)
        assert np.array_equal(u.mant, mant) and u.exp == e


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_dsp_pair_mode_round_trip(bits):
    """Decode lane packing: two rows' codes per slot, 2 n_dsp / 16 rows a tile, implicit
    indices (none stored); the beats are the chain's own pair-mode schedule."""
    from plait.ir.numerics.dsp import CHAIN_MODES
    n_dsp, rows, k, g = 32, 9, 64, 16                # 9 rows: a padded last tile of 4
    qw = quantize_rtn(RNG.standard_normal((rows, k)).astype(np.float32), bits, g, "sym")
    p = pack_dsp(qw, "pair", n_dsp=n_dsp)
    assert (p.mode, p.bits, p.rows_per_tile, p.n_tiles) == ("pair", bits, 4, 3)
    assert p.mode_code == CHAIN_MODES["pair"][2] and p.implicit_idx and not p.dense
    s = schedule_chain(np.zeros((1, k), np.int8), signed_weight(qw), "pair", g, n_dsp=n_dsp,
                       bits=bits)
    assert np.array_equal(p.codes, s.codes)
    assert set(p.arrays()) == {"codes", "mant"}
    for pk in (p, DspPacked.from_arrays(p.meta(), p.arrays())):
        assert np.array_equal(unpack_dsp(pk).q, signed_weight(qw))
    with pytest.raises(NumericsError, match="pair mode carries two weight codes"):
        pack_dsp(quantize_rtn(RNG.standard_normal((rows, k)).astype(np.float32), 8, g, "sym"),
                 "pair", n_dsp=n_dsp)


@pytest.mark.parametrize("scheme, bits, want", [("asym", 2, 3), ("asym", 3, 4), ("ternary", 2, 2),
                                                 ("sym", 8, 8)])
def test_dsp_other_schemes_use_the_narrowest_width(scheme, bits, want):
    qw = quantize_rtn(RNG.standard_normal((20, 32)).astype(np.float32), bits, 16, scheme)
    p = pack_dsp(qw, "dense")
    assert p.bits == want
    assert np.array_equal(unpack_dsp(p).q, signed_weight(qw))
    # a wider width than needed is allowed (the mapping may plan W8), a narrower one not
    assert np.array_equal(unpack_dsp(pack_dsp(qw, "dense", bits=8)).q, signed_weight(qw))
    if want > 2:
        with pytest.raises(NumericsError, match="cannot hold them"):
            pack_dsp(qw, "dense", bits=2)


def test_dsp_shared_layout_is_schedule_chains():
    """schedule_chain builds its weight beats with chain_weight_beats (one definition)."""
    q = signed_weight(quantize_rtn(_sparse_weight(24, 32, "4:16"), 4, 16, "sym"))
    codes, idx = chain_weight_beats(q, "4:16", n_dsp=16, bits=4)
    s = schedule_chain(np.ones((2, 32), np.int8), q, "4:16", 16, n_dsp=16, bits=4)
    assert np.array_equal(codes, s.codes) and np.array_equal(idx, s.idx)


def test_dsp_errors():
    w = RNG.standard_normal((16, 32)).astype(np.float32)
    with pytest.raises(NumericsError, match="outside int8"):
        pack_dsp(quantize_rtn(w, 8, 16, "asym"), "dense")
    with pytest.raises(NumericsError, match="more than N=2"):
        pack_dsp(quantize_rtn(w, 4, 16, "sym"), "2:4")             # not pruned
    with pytest.raises(NumericsError, match="not a multiple of mode 2:16's block M=16"):
        pack_dsp(quantize_rtn(_sparse_weight(16, 32, "2:16"), 4, 8, "sym"), "2:16")
    p = pack_dsp(quantize_rtn(_sparse_weight(16, 32, "2:4"), 4, 16, "sym"), "2:4")
    arrays = p.arrays()
    with pytest.raises(NumericsError, match=r"field 'idx' is uint16\[.*expected uint8"):
        DspPacked.from_arrays(p.meta(), {**arrays, "idx": arrays["idx"].astype(np.uint16)})
    with pytest.raises(NumericsError, match="field 'mant' is missing"):
        DspPacked.from_arrays(p.meta(), {"codes": arrays["codes"], "idx": arrays["idx"]})
    with pytest.raises(NumericsError, match="version 9"):
        DspPacked.from_arrays({**p.meta(), "version": 9}, arrays)
    # a nonzero weight in a padding row of the last tile is a corrupt stream
    d = pack_dsp(quantize_rtn(w[:9], 4, 16, "sym"), "dense", n_dsp=32)   # 2 rows per tile
    bad = d.codes.copy()
    assert bad.shape == (5 * 2, 32)         # 5 tiles x K/16 beats
    bad[8, 16] ^= 1                         # tile 4, slice 16 = row 4*2 + 1 = 9 (padding)
    with pytest.raises(NumericsError, match="padding rows"):
        unpack_dsp(DspPacked(**{**d.__dict__, "codes": bad}))


# ------------------------------------------------------------------ LUT core
LUT_FORMATS = [("odd", 1), ("odd", 2), ("odd", 3), ("odd", 4), ("sym", 2), ("sym", 3), ("sym", 4),
               ("asym", 1), ("asym", 2), ("asym", 3), ("asym", 4), ("ternary", 2)]


@pytest.mark.parametrize("scheme, bits", LUT_FORMATS, ids=[f"W{b}-{s}" for s, b in LUT_FORMATS])
@pytest.mark.parametrize("tile_n", [8, 7])
def test_lut_round_trip_every_width_and_scheme(scheme, bits, tile_n):
    rows, k, g = 19, 32, 8
    qw = quantize_rtn(RNG.standard_normal((rows, k)).astype(np.float32), bits, g, scheme)
    p = pack_lut(qw, n=tile_n)
    tiles = -(-rows // tile_n)
    assert p.n_tiles == tiles and p.offset == (scheme != "odd")
    arrays = p.arrays()
    assert arrays["planes"].dtype == np.uint8
    assert arrays["planes"].shape == (tiles * k // 4 * bits, -(-tile_n // 2))
    assert arrays["zp"].dtype == np.int8 and arrays["zp"].shape == (rows, k // g)
    assert arrays["mant"].dtype == np.uint16 and arrays["mant"].shape == (rows, k // g)
    assert np.array_equal(p.w_beats, lut_weight_beats(qw.codes, qw.bits, tile_n))
    for pk in (p, LutPacked.from_arrays(p.meta(), arrays)):
        u = unpack_lut(pk)
        assert np.array_equal(u.codes, qw.codes)
        assert np.array_equal(u.zp, odd_zero_point(qw))
        assert np.array_equal(u.q, signed_weight(qw))
        mant, e = encode_scales(qw.scales)
        assert np.array_equal(u.mant, mant) and u.exp == e


@pytest.mark.parametrize("scheme, bits", [("odd", 1), ("sym", 4), ("asym", 3), ("ternary", 2)])
def test_lut_beats_are_stream_tiles(scheme, bits):
    """Every tile's w_data words equal stream_tile's w_beats (whole-tile weights also
    their s_beats: same mantissas and zero points)."""
    cfg = LutCoreConfig(m=2, n=8, dq_lanes=2, max_group=32)
    rows, k, g = 20, 32, 8                       # 3 tiles, the last one padded
    qw = quantize_rtn(RNG.standard_normal((rows, k)).astype(np.float32), bits, g, scheme)
    p = pack_lut(qw, n=cfg.n)
    x = RNG.integers(-128, 128, (cfg.m, k))
    for t in range(p.n_tiles):
        sl = slice(t * cfg.n, (t + 1) * cfg.n)
        pad = cfg.n - qw.codes[sl].shape[0]
        codes = np.pad(qw.codes[sl], ((0, pad), (0, 0)))
        scales = np.pad(qw.scales[sl], ((0, pad), (0, 0)), constant_values=1.0)
        zeros = None if qw.zeros is None else np.pad(qw.zeros[sl], ((0, pad), (0, 0)))
        sub = QuantizedWeight(codes, scales, zeros, qw.bits, g, scheme)
        _, _, w_beats, _ = stream_tile(x, sub, cfg)
        assert p.w_words(t) == w_beats
    whole = quantize_rtn(RNG.standard_normal((cfg.n, k)).astype(np.float32), bits, g, scheme)
    pw = pack_lut(whole, n=cfg.n)
    _, _, w_beats, s_beats = stream_tile(x, whole, cfg)
    assert pw.w_words(0) == w_beats
    for gi, (mv, zv) in enumerate(s_beats):
        assert mv == sum(int(m) << (16 * c) for c, m in enumerate(pw.mant[:, gi]))
        assert zv == sum((int(z) & 31) << (5 * c) for c, z in enumerate(pw.zp[:, gi]))


def test_lut_errors():
    w = RNG.standard_normal((8, 16)).astype(np.float32)
    with pytest.raises(NumericsError, match="weight bits"):
        pack_lut(quantize_rtn(w, 8, 8, "sym"), n=8)
    p = pack_lut(quantize_rtn(w[:5], 2, 8, "sym"), n=8)
    beats = p.w_beats.copy()
    beats[0, 0, 6] = 1                            # padding column 6 of the only tile
    with pytest.raises(NumericsError, match="padding columns"):
        unpack_lut(LutPacked(**{**p.__dict__, "w_beats": beats}))
    with pytest.raises(NumericsError, match="field 'zp' is int16"):
        LutPacked.from_arrays(p.meta(), {**p.arrays(), "zp": p.zp.astype(np.int16)})
    with pytest.raises(NumericsError, match="unknown pack format"):
        packed_from({"format": "gpu"}, {})


# ------------------------------------------------------------------ SmolLM2 shapes
@pytest.mark.parametrize("n, k", [(576, 576), (1536, 576), (576, 1536)])
def test_smollm2_shapes_round_trip(n, k):
    w = RNG.standard_normal((n, k)).astype(np.float32) * 0.05
    q24 = quantize_rtn(w * prune_nm(w, 2, 4), 4, 64, "sym")
    p = pack_dsp(q24, "2:4", n_dsp=16)
    assert np.array_equal(unpack_dsp(DspPacked.from_arrays(p.meta(), p.arrays())).q, signed_weight(q24))
    assert p.arrays()["codes"].nbytes == n * k // 2                    # 2 of 4 kept, 1 byte each
    assert p.arrays()["idx"].nbytes == n * k // 4                      # one nibble per kept weight
    q8 = quantize_rtn(w, 8, 64, "sym")
    d = pack_dsp(q8, "dense", n_dsp=16)
    assert np.array_equal(unpack_dsp(d).q, signed_weight(q8)) and "idx" not in d.arrays()
    for scheme, bits, g in (("asym", 4, 32), ("odd", 2, 64), ("ternary", 2, 64)):
        qw = quantize_rtn(w, bits, g, scheme)
        lp = pack_lut(qw, n=64)
        u = unpack_lut(LutPacked.from_arrays(lp.meta(), lp.arrays()))
        assert np.array_equal(u.codes, qw.codes) and np.array_equal(u.q, signed_weight(qw))
        assert lp.planes.nbytes == n * k * lp.bits // 8                 # bits per weight, no padding


# ------------------------------------------------------------------ bias
def test_encode_bias():
    b = np.array([0.5, -1.25, 1e-3, 3.0], np.float32)
    v, e = encode_bias(b)
    assert v.dtype == np.int32 and np.array_equal(v, np.rint(b.astype(np.float64) * 2.0 ** e))
    top = 2 ** (BIAS_BITS - 1) - 1
    assert int(np.abs(v.astype(np.int64)).max()) <= top                      # fits 32 bits ...
    assert np.abs(np.rint(b.astype(np.float64) * 2.0 ** (e + 1))).max() > top  # ... and E is the largest
    assert np.abs(decode_bias(v, e) - b).max() <= 2.0 ** -(e + 1)
    assert encode_bias(np.zeros(3))[1] == 0
    with pytest.raises(NumericsError, match="finite"):
        encode_bias(np.array([np.inf]))


# ------------------------------------------------------------------ the pass
def _run(graph, weights, *passes, debug=True):
    return PassManager(list(passes), debug=debug).run(graph, weights)


def _quantize(**kw):
    return ("quantize", {"group_size": 16, "exclude": ["emb"], **kw})


def _packed_params(graph):
    return [p for p in graph.params() if "pack" in p.attrs]


def _check_packed(graph, weights):
    """Every packed param unpacks to its own quantized weight; requant exp agrees."""
    n = 0
    for p in _packed_params(graph):
        t, a = p.type, p.attrs["pack"]
        q = t.quant
        qw = QuantizedWeight(np.asarray(weights[p.attrs["weight"]]), np.asarray(weights[q.scales]),
                             np.asarray(weights[q.zeros]) if q.zeros else None, q.bits,
                             q.group_size, q.scheme)
        pk = read_packed(a, weights)
        u = unpack_dsp(pk) if a["format"] == "dsp_chain" else unpack_lut(pk)
        assert np.array_equal(u.q, signed_weight(qw))
        assert u.exp == encode_scales(qw.scales)[1] == a["exp"]
        for lin in graph.nodes("linear"):
            if lin.inputs[1] == p.name:
                assert lin.attrs["requant"]["exp"] == a["exp"]
        n += 1
    return n


def test_pass_after_mapping_dsp_and_lut():
    g, ws = tiny_block()
    g, ws, rep = _run(g, ws, ("sparsify", {"pattern": "2:4", "include": ["wq", "wk"]}),
                      _quantize(bits=4), ("map_engines", {"target": "sim16"}), "pack")
    d = rep.passes[-1].details
    assert d["target"] == "sim16" and d["mapped_by_format"] == []
    assert d["weights"] == {"dsp_chain": 2, "lut_core": 5}
    assert d["layers"]["%q"] == "dsp_chain 2:4 W4" and d["layers"]["%o"] == "lut_core 4 planes"
    assert "float weight" in d["skipped"]["lm_head (%logits)"]
    wq = g.node("wq").attrs["pack"]
    assert wq["format"] == "dsp_chain" and wq["mode"] == "2:4" and wq["n_dsp"] == 16
    assert wq["arrays"] == {"codes": "wq.pack.codes", "idx": "wq.pack.idx", "mant": "wq.pack.mant"}
    wo = g.node("wo").attrs["pack"]
    assert wo["format"] == "lut_core" and wo["tile_n"] == 64 and wo["scheme"] == "sym"
    assert set(wo["arrays"]) == {"planes", "zp", "mant"}
    assert _check_packed(g, ws) == 7
    # the packed arrays are what the engines stream
    pq = read_packed(wq, ws)
    from plait.ir.numerics.common import signed_weight as sw
    qwq = QuantizedWeight(ws["wq"], ws["wq.scales"], None, 4, 16, "sym")
    s = schedule_chain(np.zeros((2, 32), np.int8), sw(qwq), "2:4", 16, n_dsp=16, bits=4)
    assert np.array_equal(pq.codes, s.codes) and np.array_equal(pq.idx, s.idx)
    assert {"wq.pack.codes", "wo.pack.planes", "wo.pack.zp"} <= g.weight_names()
    # idempotent: a second run changes nothing
    assert make_pass("pack").run(g, ws, PassContext()) is False


def test_pass_maps_by_format_without_mapping():
    g, ws = tiny_block()
    g, ws, rep = _run(g, ws, _quantize(bits=8, include=["wq", "wk", "wv"]),
                      _quantize(bits=2, scheme="odd"), ("pack", {"n_dsp": 32, "lut_n": 16}))
    d = rep.passes[-1].details
    assert len(d["mapped_by_format"]) == 7 and d["weights"] == {"dsp_chain": 3, "lut_core": 4}
    assert g.node("wq").attrs["pack"]["n_dsp"] == 32 and g.node("wq").attrs["pack"]["bits"] == 8
    assert g.node("wo").attrs["pack"]["tile_n"] == 16
    assert _check_packed(g, ws) == 7


def test_pass_errors_name_the_layer():
    # an odd-coded weight sent to the DSP chain (a stale or hand-edited mapping)
    g, ws = tiny_block()
    g, ws, _ = _run(g, ws, _quantize(bits=3, scheme="odd"), ("map_engines", {"target": "sim16"}))
    g.node("q").attrs["engine"] = "dsp_chain"
    g.node("q").attrs["engine_mode"] = "dense W4"
    with pytest.raises(PassError, match=r"layer %q \(weight 'wq', 3-bit odd\) is on the DSP chain, "
                                        r"but odd-level weights"):
        _run(g, ws, "pack")
    # a width the build does not support: an 8-bit weight on the LUT core
    g, ws = tiny_block()
    g, ws, _ = _run(g, ws, _quantize(bits=8), ("map_engines", {"target": "sim16"}))
    g.node("o").attrs.update(engine="lut_core", engine_bits=8)
    with pytest.raises(PassError, match=r"layer %o \(weight 'wo', 8-bit sym\) is on the LUT core, "
                                        r"but 8-plane weights are not a width its build supports"):
        _run(g, ws, "pack")
    # asym 8-bit on the DSP chain: signed weights outside int8
    g, ws = tiny_block()
    g, ws, _ = _run(g, ws, _quantize(bits=8, scheme="asym", include=["wo"]))
    g.node("o").attrs.update(engine="dsp_chain", engine_mode="dense W8", engine_bits=8)
    with pytest.raises(PassError, match=r"layer %o \(weight 'wo'\) cannot be packed for the "
                                        r"dsp_chain: .*outside int8"):
        _run(g, ws, "pack")
    # option conflicts with the mapping
    g, ws = tiny_block()
    g, ws, _ = _run(g, ws, _quantize(bits=4), ("map_engines", {"target": "sim16"}))
    with pytest.raises(PassOptionError, match="mapped for target 'sim16'"):
        _run(g, ws, ("pack", {"target": "u280"}))
    with pytest.raises(PassOptionError, match="n_dsp"):
        _run(g, ws, ("pack", {"n_dsp": 32}))
    # an unrelated store entry with a packed name is never overwritten
    ws["wo.pack.planes"] = np.zeros(3, np.uint8)
    with pytest.raises(PassError, match="'wo.pack.planes' already exists"):
        _run(g, ws, "pack", debug=False)


def _bias_graph(k=32, n=24):
    rng = np.random.default_rng(3)
    g, ws = Graph("biased"), WeightStore()
    x = g.add("input", name="x", type=TensorType((1, "S", k), "f32"))
    ws["w"] = rng.standard_normal((n, k)).astype(np.float32)
    ws["b"] = rng.standard_normal(n).astype(np.float32)
    w = g.add("param", attrs={"weight": "w"}, name="w", type=TensorType((n, k), "f32"))
    b = g.add("param", attrs={"weight": "b"}, name="b", type=TensorType((n,), "f32"))
    g.outputs = [g.add("linear", [x, w, b], name="y", origin="model.proj")]
    return g, ws


def test_pass_stores_the_bias_in_fixed_point():
    g, ws = _bias_graph()
    g, ws, _ = _run(g, ws, ("quantize", {"bits": 4, "group_size": 16}), "pack")
    rq = g.node("y").attrs["requant"]
    assert rq["arrays"] == {"bias": "b.pack.bias"} and rq["exp"] == g.node("w").attrs["pack"]["exp"]
    vals, e = encode_bias(ws["b"])
    assert rq["bias_exp"] == e and ws["b.pack.bias"].dtype == np.int32
    assert np.array_equal(ws["b.pack.bias"], vals)
    assert "b.pack.bias" in g.weight_names()
    assert make_pass("pack").run(g, ws, PassContext()) is False


def test_shape_only_store_gets_declared_fields():
    g, ws = tiny_block()
    shapes = WeightStore()
    for name in ws.names():
        shapes.declare(name, ws.info(name).shape, ws.info(name).dtype)
    steps = [("sparsify", {"pattern": "2:4", "include": ["wq"]}), _quantize(bits=4),
             ("map_engines", {"target": "sim16"}), "pack"]
    g0, s0, _ = _run(g.copy(), shapes, *steps[1:], debug=False)
    g1, s1, _ = _run(g.copy(), ws.copy(), *steps[1:])
    for p in _packed_params(g0):
        a0, a1 = p.attrs["pack"], g1.node(p.name).attrs["pack"]
        assert a0["exp"] is None and {**a0, "exp": a1["exp"]} == a1
        for name in a0["arrays"].values():
            assert not s0.has_data(name) and s0.info(name) == s1.info(name)


def test_verify_and_weight_names_see_packed_arrays():
    g, ws = tiny_block()
    g, ws, _ = _run(g, ws, _quantize(bits=4), "pack")
    names = g.weight_names()
    assert {n for p in _packed_params(g) for n in p.attrs["pack"]["arrays"].values()} <= names
    ws.pop("wq.pack.planes")
    with pytest.raises(VerifyError, match=r"%wq: array 'wq.pack.planes' named by attribute "
                                          r"pack.planes is missing"):
        verify(g, ws)


def test_compile_to_artifact_and_back(tmp_path, capsys):
    from plait.cli import main
    from plait.runtime.artifact import load_artifact, write_artifact
    g, ws = tiny_block()
    g, ws, _ = _run(g, ws, ("sparsify", {"pattern": "2:4", "include": ["wg", "wu"]}),
                    _quantize(bits=4), _quantize(bits=8, include=["wd"]),
                    ("map_engines", {"target": "sim16"}), "pack")
    out = write_artifact(tmp_path / "art", g, ws, model="tiny", recipe={"name": "test"})
    art = load_artifact(out)
    assert _check_packed(art.graph, art.weights) == 7
    for p in _packed_params(g):
        for name in p.attrs["pack"]["arrays"].values():
            a, b = np.asarray(ws[name]), np.asarray(art.weights[name])
            assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert art.graph.node("wg").attrs["pack"] == g.node("wg").attrs["pack"]
    assert art.weights.info("wq.pack.mant").dtype == "uint16"
    assert main(["inspect", str(out)]) == 0
    assert "tiny" in capsys.readouterr().out


def test_bundled_quantizing_recipes_end_with_pack():
    from plait.passes import list_recipes
    quantizing = [r for r in list_recipes() if any(p.name == "quantize" for p in load_recipe(r).pipeline)]
    assert {"default", "w4g128", "w8", "w4-sparse24"} <= set(quantizing)
    for r in quantizing:
        names = [p.name for p in load_recipe(r).pipeline]
        assert names[-1] == "pack", (r, names)
        if "map_engines" in names:
            assert names.index("map_engines") < names.index("pack"), (r, names)


@pytest.mark.parametrize("path, banned", [("ir/numerics/pack.py", ("plait.rtl", "plait.passes", "plait.sim")),
                                          ("passes/pack.py", ("plait.rtl", "plait.sim"))])
def test_layer_rule(path, banned):
    """The packer sits in ir, the pass in passes; neither imports rtl (DESIGN.md, Layers)."""
    import ast
    from pathlib import Path
    tree = ast.parse((Path(__file__).resolve().parents[1] / path).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0]
    assert names and not [n for n in names if n.startswith(banned)], names
