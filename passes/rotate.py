"""The ``rotate`` pass: orthogonal (Hadamard) rotations fused offline into the weights.

Why
---
Low-bit RTN and int8 activations lose accuracy where a few channels are much larger
than the rest: one outlier input column sets the scale of a whole weight group, one
outlier feature the scale of a whole token's int8 row.  Multiplying a vector by an
orthogonal matrix ``Q`` whose entries are all about ``1/sqrt(n)`` (a scaled Hadamard
matrix) spreads every outlier over all ``n`` coordinates, so the max-to-rms ratio
(and the kurtosis) of weights and activations drops and the same bits cover them
better.  This is QuaRot (Ashkboos et al., 2024) / SpinQuant (Liu et al., 2024) with
fixed (not learned) rotations.

Computational invariance: the float model is unchanged
------------------------------------------------------
A linear computes ``y = x W^T``.  Feeding it ``x Q`` and giving it ``W Q`` gives
``x Q Q^T W^T = y``; a linear whose *output* should come out rotated gets
``Q^T W`` (rows; a bias ``b`` becomes ``b Q``).  So the rotations are folded into the
weights offline and no op is added to the graph: the engines run unchanged, only the
numbers in the weight store move.  The pass does, in order:

1. **Fold the RMSNorm weights** (``residual = true``).  ``rmsnorm(x, g) W^T`` equals
   ``rmsnorm(x, 1) (W diag(g))^T``: every linear reading a norm's output (q/k/v after
   the attention norm, gate/up after the MLP norm, the LM head after the final norm)
   gets its columns scaled by ``g`` and the norm weight becomes ones.  This is needed
   because ``rmsnorm(x Q, g) != rmsnorm(x, g) Q`` for a general ``g``, while a
   weight-free RMSNorm commutes with ``Q``: ``Q`` preserves ``mean(x^2)``.
   **Tied embeddings** (SmolLM2 ties the LM head to the embedding table): the head's
   weight becomes ``E diag(g) Q`` while the table becomes ``E Q``, so the pass unties
   them -- a new weight-store entry (``lm_head.weight`` when that name is free) and a
   new param for the head; the embedding keeps its own.  The model grows by one
   ``[vocab, hidden]`` matrix (``graph.meta["n_params"]``, ``tie_embeddings`` updated;
   ``details["untied"]`` names both).
2. **R1, the residual stream** (``residual = true``): every value of the residual
   stream (the embedding output and the residual adds) is rotated by one ``Q``
   ``[D, D]``: the embedding table ``E -> E Q`` (rows are what the stream starts
   from), every linear reading the stream (directly or through a folded, weight-free
   RMSNorm) ``W -> W Q``, every linear writing into it (o_proj, down_proj) ``W -> Q^T W``
   and its bias ``b -> b Q``.  The final norm's output is rotated too and the LM head
   (a reader) undoes it, so the logits are the same.
3. **R2, per attention head** (``heads = true``): attention output head ``i`` is
   ``softmax(q_i k_j^T) v_j`` with ``j = i // (n_heads / n_kv_heads)`` (grouped-query
   attention), linear in ``v_j``.  Rotating the v projection's rows of kv head ``j`` by
   ``R_j^T`` (``hd x hd``, a Hadamard of ``head_dim``; bias ``b_j -> b_j R_j``) and the
   o projection's input columns of every query head sharing kv head ``j`` by ``R_j``
   leaves o_proj's output unchanged and flattens v (and the int8 V cache) and o_proj's
   input.  Each kv head of each layer gets its own random signs, so the grouping is
   really exercised.
4. **R3 / R4 are not done.**  QuaRot's other two rotations cannot be folded into any
   weight: R3 turns Q and K *after* RoPE (for the int8 K cache), and RoPE, applied
   between the projection and the cache, does not commute with a rotation of the whole
   head; R4 turns down_proj's input, the SwiGLU output, and SwiGLU is not linear in its
   inputs.  Both need an *online* Hadamard op at run time; the IR has none and adding
   one would change the engines and the special-function unit, so this pass applies
   online rotations only where they fuse (R1, R2) and leaves the rest for later.

The rotation matrices
---------------------
``kind = "hadamard"`` (default): ``Q = diag(s) H / sqrt(n)``, ``H`` a Hadamard matrix
(entries +-1, ``H H^T = n I``), ``s`` a random +-1 vector from ``seed`` (QuaRot's
randomized Hadamard).  :func:`hadamard` builds ``H`` as a Kronecker product of

* Sylvester matrices for ``2^k`` (``H_2k = [[H, H], [H, -H]]``);
* Paley construction I for ``q + 1``, ``q`` a prime with ``q = 3 mod 4`` (12, 20, 24,
  32, 44, 48, ...): ``I + [[0, 1^T], [-1, J]]`` with ``J[a, b] = chi(b - a)`` (the
  Legendre symbol mod ``q``, the Jacobsthal matrix);
* Paley construction II for ``2 (q + 1)``, ``q`` a prime with ``q = 1 mod 4`` (28, 36,
  60, ...): ``C (x) [[1, 1], [1, -1]] + I (x) [[1, -1], [-1, -1]]`` with ``C`` the
  symmetric conference matrix ``[[0, 1^T], [1, J]]``;

taking the smallest non-power-of-two factor first: SmolLM2's ``D = 576`` is
``H_12 (x) H_12 (x) H_4``, its ``head_dim = 64`` is Sylvester.  An order
no product of these reaches (any ``n = 2 mod 4`` above 2, where no Hadamard matrix
exists, or e.g. 92) is a :class:`PassError` naming the size and the layer; there is
no silent fallback: ``kind = "random"`` asks for seeded Haar-random orthogonal
matrices (QR of a Gaussian matrix) for every rotation instead -- also exact, but
dense, and they spread outliers less evenly than a Hadamard.

What it does on SmolLM2 (measured with ``benchmarks/perplexity.py``)
---------------------------------------------------------------------
With GPTQ weights, rotation helps the way QuaRot promises: on 2048 tokens the
transformers model scores 15.26, ``w4g128-gptq`` 17.17 and ``w4g128-gptq-rotate`` 16.36.
It also makes the *activations* int8-friendly: the exact-mode (int8 per-token) penalty
over float mode falls from x1.078 (W4A8 unrotated) to x1.023 (``w4a8-rotate``).  But with
plain RTN weights it *hurts*: 4096 tokens, fp32 14.70, ``w4g128`` 23.30,
``w4g128-rotate`` 32.51.  The fold is why: SmolLM2's residual stream has massive
channels (dim 507 reaches ~2e4 and carries about half of a typical token's normalized
energy), which the model silences with RMSNorm weights near 0 (exactly 0 in some
layers).  Unrotated, RTN's rounding errors in those columns are multiplied by
``n_m * g_m ~ 0``; folded and rotated, that energy is spread over every channel and
multiplies every rounding error (1024 tokens, RTN W4: no rotation 22.2, fold alone
35.8, fold + R1 29.3, R2 alone 23.6, all 28.0).  GPTQ compensates the rounding against
the rotated activations, so it gets the gain without the loss.  The tests show the
effect on weights with outlier columns, where rotation does what it promises.

Where it runs, and what it refuses
----------------------------------
Run it first, right after ``canonicalize``: before ``calibrate`` (the statistics
would describe the unrotated inputs), ``smooth``, ``sparsify``, ``quantize`` and
``quantize_act``.  A :class:`PassError` naming the weight or op, with nothing
changed, for: a weight that is already quantized, sparse, not float, or carries
calibration statistics; an activation spec (``quantize_act`` ran); a shape-only store
(the rotation needs the numbers); a weight shared by two ops (other than the tied
head, which is untied); and any structure the pass does not recognise -- the
residual stream read by an op other than ``rmsnorm``/``linear``/``add`` or being a
graph output, an RMSNorm feeding something other than linears, something other than
a linear's output added to the stream, an attention whose v is not a linear or whose
output is not read by exactly one linear.  There are no include/exclude globs: R1 is
all or nothing (every reader and writer of the stream must move together).

``ctx.details``: the kind and seed, the constructions used, the folded norms (norm
weight -> the linear weights it went into), the untied head, the rotated embedding
tables, readers, writers and biases of R1, the (v, o) pairs of R2, and a note on R3/R4.
The products run in float32 (relative error ~1e-6) and the weights are stored back in
their stored dtype (float32 normally; a float16 store is re-rounded).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import numpy as np

from plait.ir import TensorType
from plait.ir.types import FLOAT_DTYPES

from .calibrate import ABSMAX, SQSUM, TOKENS
from .framework import Option, Pass, PassError, PassOptionError, register_pass

ONLINE_NOTE = ("R3 (K after RoPE) and R4 (down_proj input) are not applied: they need an online "
               "Hadamard op, which the IR and the engines do not have")


# --------------------------------------------------------------------------- Hadamard matrices

def _is_prime(q: int) -> bool:
    if q < 2:
        return False
    if q % 2 == 0:
        return q == 2
    f = 3
    while f * f <= q:
        if q % f == 0:
            return False
        f += 2
    return True


def _pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def _jacobsthal(q: int) -> np.ndarray:
    """``J[a, b] = chi(b - a)``: the quadratic character mod the prime ``q`` (0 on the diagonal)."""
    chi = np.full(q, -1, np.int64)
    chi[0] = 0
    chi[(np.arange(1, q) ** 2) % q] = 1
    idx = (np.arange(q)[None, :] - np.arange(q)[:, None]) % q
    return chi[idx]


def _sylvester(n: int) -> np.ndarray:
    h = np.ones((1, 1), np.int64)
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h


def _paley1(q: int) -> np.ndarray:
    """Order ``q + 1`` (``q`` prime, ``q = 3 mod 4``): ``I + S``, ``S`` skew with ``S S^T = q I``."""
    s = np.zeros((q + 1, q + 1), np.int64)
    s[0, 1:] = 1
    s[1:, 0] = -1
    s[1:, 1:] = _jacobsthal(q)
    return np.eye(q + 1, dtype=np.int64) + s


def _paley2(q: int) -> np.ndarray:
    """Order ``2 (q + 1)`` (``q`` prime, ``q = 1 mod 4``) from the symmetric conference matrix."""
    c = np.zeros((q + 1, q + 1), np.int64)
    c[0, 1:] = 1
    c[1:, 0] = 1
    c[1:, 1:] = _jacobsthal(q)
    return (np.kron(c, np.array([[1, 1], [1, -1]], np.int64))
            + np.kron(np.eye(q + 1, dtype=np.int64), np.array([[1, -1], [-1, -1]], np.int64)))


def _factor_candidates(n: int):
    """Non-power-of-two orders ``m | n`` with a Paley construction, smallest first."""
    for m in range(12, n + 1, 4):
        if n % m or _pow2(m):
            continue
        if _is_prime(m - 1) and (m - 1) % 4 == 3:
            yield ("paley1", m - 1)
        elif _is_prime(m // 2 - 1) and (m // 2 - 1) % 4 == 1:
            yield ("paley2", m // 2 - 1)


@lru_cache(maxsize=None)
def hadamard_plan(n: int) -> Optional[tuple]:
    """The Kronecker factors of the Hadamard matrix of order ``n`` this module builds,
    as ``(("paley1", q) | ("paley2", q) | ("sylvester", 2^k), ...)``; ``None`` if it
    builds none (``()`` for ``n = 1``)."""
    if n < 1:
        return None
    if _pow2(n):
        return () if n == 1 else (("sylvester", n),)
    if n % 4:
        return None
    for c in _factor_candidates(n):
        m = c[1] + 1 if c[0] == "paley1" else 2 * (c[1] + 1)
        rest = hadamard_plan(n // m)
        if rest is not None:
            return (c,) + rest
    return None


def _factor_matrix(c) -> np.ndarray:
    kind, v = c
    return {"sylvester": _sylvester, "paley1": _paley1, "paley2": _paley2}[kind](v)


def _plan_text(plan) -> str:
    if not plan:
        return "H1"
    names = {"sylvester": lambda v: f"H{v} (Sylvester)", "paley1": lambda v: f"H{v + 1} (Paley I, q={v})",
             "paley2": lambda v: f"H{2 * (v + 1)} (Paley II, q={v})"}
    return " x ".join(names[k](v) for k, v in plan)


def _no_hadamard(n: int, what: str) -> PassError:
    why = ("no Hadamard matrix of that order exists (orders are 1, 2 or multiples of 4)"
           if n > 2 and n % 4 else
           "it is not a product of 2^k and Paley orders (q+1, q prime = 3 mod 4; 2(q+1), q prime = 1 mod 4)")
    return PassError(f"rotate: no Hadamard matrix of order {n} ({what}) can be built: {why}; "
                     f"use kind = \"random\" for a seeded random orthogonal rotation")


def hadamard(n: int, what: str = "requested size") -> np.ndarray:
    """The ``n x n`` Hadamard matrix (int64, entries +-1, ``H H^T = n I``) of :func:`hadamard_plan`;
    a :class:`PassError` naming ``n`` (and ``what`` it is for) if there is none."""
    plan = hadamard_plan(n)
    if plan is None:
        raise _no_hadamard(n, what)
    h = np.ones((1, 1), np.int64)
    for c in plan:
        h = np.kron(h, _factor_matrix(c))
    return h


# --------------------------------------------------------------------------- rotations

@dataclass
class Rotation:
    """An orthogonal ``Q`` of order ``n`` (built in float64), kept dense: at SmolLM2's
    sizes one BLAS product ``x @ Q`` is several times faster than applying the small
    Kronecker factors of a Hadamard one at a time.  The products run in float32 (twice
    as fast as float64 on the CPU; relative error ~1e-6, far below any quantization)."""

    n: int
    q: np.ndarray            # [n, n] float64
    construction: str

    def __post_init__(self):
        self.q32 = self.q.astype(np.float32)

    @classmethod
    def randomized_hadamard(cls, n: int, rng: np.random.Generator, what: str) -> "Rotation":
        signs = (rng.integers(0, 2, n) * 2 - 1).astype(np.float64)
        h = hadamard(n, what).astype(np.float64)
        return cls(n, signs[:, None] * h / np.sqrt(n),
                   "diag(+-1) " + _plan_text(hadamard_plan(n)) + f" / sqrt({n})")

    @classmethod
    def random_orthogonal(cls, n: int, rng: np.random.Generator) -> "Rotation":
        a = rng.standard_normal((n, n))
        q, r = np.linalg.qr(a)
        q = q * np.where(np.diag(r) < 0, -1.0, 1.0)[None, :]       # Haar-distributed
        return cls(n, q, f"random orthogonal {n}x{n} (QR of a Gaussian matrix)")

    def right(self, x: np.ndarray) -> np.ndarray:
        """``x @ Q`` along the last axis (float32)."""
        return np.asarray(x, np.float32) @ self.q32

    def left_t(self, w: np.ndarray) -> np.ndarray:
        """``Q^T @ w`` along the first axis (for a vector, ``w @ Q``; float32)."""
        w = np.asarray(w, np.float32)
        return w @ self.q32 if w.ndim == 1 else self.q32.T @ w


# --------------------------------------------------------------------------- the pass

def _kv_rows(w: np.ndarray, rots: list, hd: int) -> np.ndarray:
    """v projection rows (or bias) of kv head ``j`` -> ``R_j^T`` times them."""
    out = np.array(w, np.float32)
    for j, r in enumerate(rots):
        out[j * hd:(j + 1) * hd] = r.left_t(out[j * hd:(j + 1) * hd])
    return out


def _head_cols(w: np.ndarray, rots: list, hd: int, rep: int) -> np.ndarray:
    """o projection input columns of query head ``i`` -> times ``R_{i // rep}``."""
    out = np.array(w, np.float32)
    for i in range(out.shape[1] // hd):
        out[:, i * hd:(i + 1) * hd] = rots[i // rep].right(out[:, i * hd:(i + 1) * hd])
    return out


@register_pass
class Rotate(Pass):
    """QuaRot-style rotations (R1 residual stream, R2 attention heads) folded offline into the weights."""

    name = "rotate"
    OPTIONS = {
        "kind": Option("str", "hadamard", "hadamard (randomized Hadamard) | random (seeded random orthogonal)",
                       choices=("hadamard", "random")),
        "seed": Option("int", 0, "seed of the random signs (hadamard) or matrices (random)"),
        "residual": Option("bool", True, "R1: fold the RMSNorm weights and rotate the residual stream"),
        "heads": Option("bool", True, "R2: rotate each attention head's v projection / o projection"),
    }

    @classmethod
    def check_options(cls, options):
        if not options["residual"] and not options["heads"]:
            raise PassOptionError(cls.name, "residual", "residual = false and heads = false rotate nothing")

    def run(self, graph, weights, ctx):
        return _Rotator(graph, weights, self.options).run(ctx)


class _Rotator:
    """One run of the pass: plans every change (checking everything first), then makes them."""

    def __init__(self, graph, weights, options: dict):
        self._g, self._w, self.options = graph, weights, options
        self._ops: dict[str, list] = {}         # weight -> transforms, applied in order
        self._untie: list = []                  # (head linear, table weight, new weight name)
        self._params_of: dict[str, list] = {}   # weight -> the params naming it
        for p in graph.params():
            self._params_of.setdefault(p.attrs["weight"], []).append(p)

    def run(self, ctx) -> bool:
        graph = self._g
        rng = np.random.default_rng(self.options["seed"])
        det: dict = {"kind": self.options["kind"], "seed": self.options["seed"]}
        for node in graph.nodes():
            if node.type is not None and node.type.act is not None:
                raise PassError(f"rotate: %{node.name} has an activation spec ({node.type.act.text()}); "
                                f"rotate must run before quantize_act")
        if self.options["residual"]:
            det.update(self._plan_residual(rng))
        if self.options["heads"]:
            det["heads"] = self._plan_heads(rng)
        det["online"] = ONLINE_NOTE
        # everything is checked: now change the graph and the weights
        for lin, table, new in self._untie:
            self._do_untie(lin, table, new)
        for name, ops in self._ops.items():
            self._apply(name, ops)
        ctx.details.update(det)
        ctx.log(f"rotate: {len(self._ops)} weights rotated ({self.options['kind']})")
        return bool(self._ops)

    # ------------------------------------------------------------------ checks
    def _owned(self, param: str, user: str, role: str, moving: frozenset = frozenset()) -> str:
        """The weight of param ``param``, checked: used only by ``user`` (ignoring the
        linears in ``moving``, which are being untied), float, uncompressed, with data."""
        g = self._g
        p = g.node(param)
        if p.op != "param":
            raise PassError(f"rotate: the {role} of %{user} is %{param} ({p.op}), not a param")
        w = p.attrs["weight"]
        for q in self._params_of[w]:
            others = [u for u in g.users(q.name) if u != user and u not in moving]
            if others:
                raise PassError(f"rotate: weight {w!r} ({role} of %{user}) is also used by %{others[0]} "
                                f"({g.node(others[0]).op}); rotate needs each op to own its weights")
            if q.name != param and user in g.users(q.name):
                raise PassError(f"rotate: %{user} reads weight {w!r} through two params")
        self._check_weight(p, w)
        return w

    def _check_weight(self, p, w: str) -> None:
        t = p.type
        if t.quant is not None or t.dtype not in FLOAT_DTYPES or "pack" in p.attrs:
            raise PassError(f"rotate: weight {w!r} is already quantized ({t.text()}); "
                            f"rotate must run before quantize")
        if t.sparsity is not None:
            raise PassError(f"rotate: weight {w!r} is already sparse ({t.text()}); rotate must run before sparsify")
        stats = [k for k in (SQSUM, ABSMAX, TOKENS) if k in p.attrs]
        if stats:
            raise PassError(f"rotate: weight {w!r} carries calibration statistics ({stats[0]}) that a rotation "
                            f"would invalidate; rotate must run before calibrate")
        if not self._w.has_data(w):
            raise PassError(f"rotate: weight {w!r} has no data (shape-only store): rotating needs the weights")

    def _add(self, weight: str, op: tuple) -> None:
        self._ops.setdefault(weight, []).append(op)

    # ------------------------------------------------------------------ R1 (and the norm fold)
    def _stream(self):
        """Walk the residual stream from the embeddings through the residual adds:
        (embedding nodes, RMSNorms reading it, linears reading it directly, linears writing it)."""
        g = self._g
        embs = list(g.nodes("embedding"))
        if not embs:
            raise PassError("rotate: the graph has no embedding op; the residual rotation starts at the "
                            "token embedding (set residual = false to rotate only the attention heads)")
        stream, queue = set(), []
        for e in embs:
            stream.add(e.name)
            queue.append(e.name)
        norms, readers, adds = [], [], []
        while queue:
            v = queue.pop(0)
            if v in g.outputs:
                raise PassError(f"rotate: residual-stream value %{v} is a graph output; rotating the stream "
                                f"would change it")
            for u in g.users(v):
                un = g.node(u)
                slots = [i for i, x in enumerate(un.inputs) if x == v]
                if un.op == "add":
                    if u not in stream:
                        stream.add(u)
                        queue.append(u)
                        adds.append(un)
                elif un.op == "rmsnorm" and slots == [0]:
                    if all(n.name != u for n in norms):
                        norms.append(un)
                elif un.op == "linear" and slots == [0]:
                    if all(n.name != u for n in readers):
                        readers.append(un)
                else:
                    raise PassError(f"rotate: %{u} ({un.op}) reads the residual stream %{v}; rotate recognises "
                                    f"only rmsnorm, linear and add there")
        writers = []
        for a in adds:
            for x in a.inputs:
                if x in stream:
                    continue
                xn = g.node(x)
                if xn.op != "linear":
                    raise PassError(f"rotate: %{a.name} adds %{x} ({xn.op}) to the residual stream; rotate "
                                    f"recognises only linear outputs there")
                leaks = [u for u in g.users(x) if u not in stream] + ([x] if x in g.outputs else [])
                if leaks:
                    raise PassError(f"rotate: %{x} writes into the residual stream but is also read by "
                                    f"%{leaks[0]}")
                if all(n.name != x for n in writers):
                    writers.append(xn)
        return embs, norms, readers, writers

    def _plan_residual(self, rng) -> dict:
        g, w = self._g, self._w
        embs, norms, direct, writers = self._stream()
        d = int(embs[0].type.shape[-1])
        if self.options["kind"] == "hadamard":
            q = Rotation.randomized_hadamard(d, rng, "the residual stream width")
        else:
            q = Rotation.random_orthogonal(d, rng)
        tables = {}
        for e in embs:
            tp = g.node(e.inputs[0])
            if tp.op != "param":
                raise PassError(f"rotate: the table of %{e.name} is %{tp.name} ({tp.op}), not a param")
            tables[tp.attrs["weight"]] = (e, tp)
        # readers: through a norm (folded) or directly
        readers = [(lin, None) for lin in direct]
        folded = {}
        for n in norms:
            if n.name in g.outputs:
                raise PassError(f"rotate: RMSNorm %{n.name} is a graph output; its weight cannot be folded")
            users = g.users(n.name)
            for u in users:
                un = g.node(u)
                if un.op != "linear" or [i for i, x in enumerate(un.inputs) if x == n.name] != [0]:
                    raise PassError(f"rotate: RMSNorm %{n.name} feeds %{u} ({un.op}), not only linears; its "
                                    f"weight cannot be folded")
            gw = self._owned(n.inputs[1], n.name, "RMSNorm weight")
            gamma = np.asarray(w[gw], np.float64)
            readers += [(g.node(u), gamma) for u in users]
            folded[gw] = [n.name, users]
            self._add(gw, ("ones",))
        # the tied head(s): a reader whose weight is an embedding table
        untied, moving = {}, frozenset(lin.name for lin, _ in readers
                                       if g.node(lin.inputs[1]).op == "param"
                                       and g.node(lin.inputs[1]).attrs["weight"] in tables)
        names_taken = set(w.names()) | set(g.nx.nodes)
        reader_w, rows = [], {}
        for lin, gamma in readers:
            p = g.node(lin.inputs[1])
            if lin.name in moving:
                table = p.attrs["weight"]
                self._check_weight(p, table)
                new = "lm_head.weight" if lin.origin == "lm_head" else f"{lin.origin or lin.name}.weight"
                base, i = new, 1
                while new in names_taken:
                    new, i = f"{base}.untied{'' if i == 1 else i}", i + 1
                names_taken.add(new)
                self._untie.append((lin, table, new))
                untied[new] = table
                wname = new
            else:
                wname = self._owned(lin.inputs[1], lin.name, "weight")
            k = p.type.shape[1]
            if k != d:
                raise PassError(f"rotate: %{lin.name} reads the residual stream (width {d}) with weight "
                                f"{wname!r} of K={k}")
            if gamma is not None:
                self._add(wname, ("cols", gamma))
                folded_by = next(f for f, (nn, us) in folded.items() if lin.name in us)
                rows.setdefault(folded_by, []).append(wname)
            self._add(wname, ("right", q))
            reader_w.append(wname)
        for e, tp in tables.values():
            tw = self._owned(tp.name, e.name, "embedding table", moving)
            if tp.type.shape[-1] != d:
                raise PassError(f"rotate: embedding table {tw!r} has width {tp.type.shape[-1]}, the residual "
                                f"stream {d}")
            self._add(tw, ("right", q))
        writer_w, biases = [], []
        for lin in writers:
            ww = self._owned(lin.inputs[1], lin.name, "weight")
            if g.node(lin.inputs[1]).type.shape[0] != d:
                raise PassError(f"rotate: %{lin.name} writes into the residual stream (width {d}) with weight "
                                f"{ww!r} of N={g.node(lin.inputs[1]).type.shape[0]}")
            self._add(ww, ("left", q))
            writer_w.append(ww)
            if len(lin.inputs) == 3:
                bw = self._owned(lin.inputs[2], lin.name, "bias")
                self._add(bw, ("left", q))
                biases.append(bw)
        return {"residual": {"dim": d, "construction": q.construction, "embedding": list(tables),
                             "readers": reader_w, "writers": writer_w, "biases": biases},
                "folded_norms": rows, "untied": untied}

    # ------------------------------------------------------------------ R2
    def _plan_heads(self, rng) -> dict:
        g = self._g
        pairs, constructions = [], set()
        for att in list(g.nodes("attention")):
            a = att.attrs
            h, hkv, hd = int(a["n_heads"]), int(a["n_kv_heads"]), int(a["head_dim"])
            v = g.node(att.inputs[2])
            if v.op != "linear":
                raise PassError(f"rotate: the v input of %{att.name} is %{v.name} ({v.op}), not a linear")
            if g.users(v.name) != [att.name] or att.inputs.count(v.name) != 1 or v.name in g.outputs:
                raise PassError(f"rotate: the v projection %{v.name} of %{att.name} is also read elsewhere")
            users = g.users(att.name)
            o = g.node(users[0]) if len(users) == 1 else None
            if o is None or o.op != "linear" or o.inputs[0] != att.name or att.name in o.inputs[1:] \
                    or att.name in g.outputs:
                raise PassError(f"rotate: the output of %{att.name} is read by "
                                f"{', '.join('%' + u for u in users) or 'nothing'}"
                                f"{' (and is a graph output)' if att.name in g.outputs else ''}; "
                                f"rotate needs exactly one linear (the o projection)")
            vw = self._owned(v.inputs[1], v.name, "weight")
            ow = self._owned(o.inputs[1], o.name, "weight")
            if g.node(v.inputs[1]).type.shape[0] != hkv * hd or g.node(o.inputs[1]).type.shape[1] != h * hd:
                raise PassError(f"rotate: %{v.name} / %{o.name} do not have {hkv} / {h} heads of {hd}")
            if self.options["kind"] == "hadamard":
                rots = [Rotation.randomized_hadamard(hd, rng, f"head_dim of %{att.name}") for _ in range(hkv)]
            else:
                rots = [Rotation.random_orthogonal(hd, rng) for _ in range(hkv)]
            constructions.add(rots[0].construction.replace("diag(+-1) ", ""))
            self._add(vw, ("kv_rows", rots, hd))
            if len(v.inputs) == 3:
                self._add(self._owned(v.inputs[2], v.name, "bias"), ("kv_rows", rots, hd))
            self._add(ow, ("head_cols", rots, hd, h // hkv))
            pairs.append([vw, ow])
        return {"construction": sorted(constructions), "rotated": pairs}

    # ------------------------------------------------------------------ changes
    def _do_untie(self, lin, table: str, new: str) -> None:
        g, w = self._g, self._w
        old = g.node(lin.inputs[1])
        w[new] = w[table]                        # the same array: the transforms make new ones
        pname = g.add("param", attrs={"weight": new}, type=TensorType(old.type.shape, old.type.dtype),
                      name=new if new not in g else g.fresh_name(new), origin=lin.origin)
        g.set_inputs(lin.name, [lin.inputs[0], pname] + list(lin.inputs[2:]))
        if not g.users(old.name) and old.name not in g.outputs:
            g.remove(old.name)
        g.meta["tie_embeddings"] = False
        if "n_params" in g.meta:
            g.meta["n_params"] = int(g.meta["n_params"]) + int(np.prod(old.type.shape))

    def _apply(self, name: str, ops: list) -> None:
        w = self._w
        dtype = np.dtype(w.info(name).dtype)
        arr = np.asarray(w[name], np.float32)
        for op in ops:
            kind = op[0]
            if kind == "ones":
                arr = np.ones_like(arr)
            elif kind == "cols":
                arr = arr * op[1][None, :].astype(np.float32)
            elif kind == "right":
                arr = op[1].right(arr)
            elif kind == "left":
                arr = op[1].left_t(arr)
            elif kind == "kv_rows":
                arr = _kv_rows(arr, op[1], op[2])
            elif kind == "head_cols":
                arr = _head_cols(arr, op[1], op[2], op[3])
            else:  # pragma: no cover
                raise AssertionError(kind)
        w[name] = arr.astype(dtype if dtype.kind == "f" else np.float32)
