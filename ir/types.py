"""Tensor types of the IR: shape, dtype, optional quantization and sparsity specs.

A type is immutable and hashable.  Shapes hold ints or symbolic dimension names
(``"S"`` is the sequence length of the current call, ``"B"`` the batch).

Text form (used by the printer and the parser)::

    f32[1,S,576]
    u4[576,576] quant(bits=4, group=128, scheme=sym, scales="l0.q.scales")
    i8[576,288] sparse(2:4, indices="l0.q.idx")
    f32[1,S,576] act(i8, dynamic)
    f32[1,S,576] act(i8, static, m=201, e=-14)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Optional, Union

import numpy as np

Dim = Union[int, str]

# name -> (bits per element, numpy storage dtype)
DTYPES: dict[str, tuple[int, str]] = {
    "f32": (32, "float32"), "f16": (16, "float16"), "bf16": (16, "float32"),
    "i64": (64, "int64"), "i32": (32, "int32"), "i16": (16, "int16"), "i8": (8, "int8"),
    "u8": (8, "uint8"), "u4": (4, "uint8"), "u3": (3, "uint8"), "u2": (2, "uint8"),
    "u1": (1, "uint8"), "i4": (4, "int8"), "i3": (3, "int8"), "i2": (2, "int8"),
    "ternary": (2, "uint8"), "bool": (1, "bool"),
}
FLOAT_DTYPES = {"f32", "f16", "bf16"}

_NP_TO_DTYPE = {"float32": "f32", "float16": "f16", "int64": "i64", "int32": "i32",
                "int16": "i16", "int8": "i8", "uint8": "u8", "bool": "bool"}


class IRTypeError(ValueError):
    """A malformed type or a type mismatch."""


def dtype_of_array(a: np.ndarray) -> str:
    try:
        return _NP_TO_DTYPE[str(a.dtype)]
    except KeyError:
        raise IRTypeError(f"no IR dtype for numpy dtype {a.dtype}") from None


def code_dtype(bits: int, scheme: str) -> str:
    """Storage dtype of quantized weight codes (unsigned codes, see numerics.common)."""
    return "ternary" if scheme == "ternary" else ("u8" if bits == 8 else f"u{bits}")


@dataclass(frozen=True)
class QuantSpec:
    """Per-group weight quantization (numerics.common.QuantizedWeight, by name)."""

    bits: int
    group_size: int
    scheme: str                      # sym | asym | odd | ternary
    scales: str                      # weight-store name of the float32 [N, K/G] scales
    zeros: Optional[str] = None      # weight-store name of int32 zero points (asym)

    def text(self) -> str:
        s = f'quant(bits={self.bits}, group={self.group_size}, scheme={self.scheme}, scales="{self.scales}"'
        if self.zeros:
            s += f', zeros="{self.zeros}"'
        return s + ")"


@dataclass(frozen=True)
class SparsitySpec:
    """N:M structured sparsity along the reduction (K) axis.

    ``indices`` names the compressed-index array when the weight is stored
    compressed; ``None`` means stored dense with zeros in place (mask semantics).
    """

    n: int
    m: int
    indices: Optional[str] = None

    @property
    def density(self) -> float:
        return self.n / self.m

    def text(self) -> str:
        s = f"sparse({self.n}:{self.m}"
        if self.indices:
            s += f', indices="{self.indices}"'
        return s + ")"


ACT_MODES = ("dynamic", "static")


@dataclass(frozen=True)
class ActSpec:
    """How exact mode quantizes this (float-typed) activation to int8 for the
    linears that read it (:mod:`plait.ir.numerics.act`).

    ``dynamic``: a scale per token (row) from the row's absolute maximum;
    ``static``: one per-tensor scale ``m * 2^e`` (``m`` in [128, 255]) fixed at
    compile time from calibration.
    """

    mode: str = "dynamic"
    m: Optional[int] = None
    e: Optional[int] = None

    def __post_init__(self):
        if self.mode not in ACT_MODES:
            raise IRTypeError(f"activation quantization mode must be one of {ACT_MODES}, got {self.mode!r}")
        if (self.mode == "static") != (self.m is not None and self.e is not None):
            raise IRTypeError(f"act spec {self.mode!r}: a static scale needs m and e, a dynamic one has neither")
        if self.m is not None and not 128 <= self.m <= 255:
            raise IRTypeError(f"static activation scale mantissa must be in [128, 255], got {self.m}")

    def text(self) -> str:
        if self.mode == "static":
            return f"act(i8, static, m={self.m}, e={self.e})"
        return "act(i8, dynamic)"


@dataclass(frozen=True)
class TensorType:
    shape: tuple[Dim, ...]
    dtype: str = "f32"
    quant: Optional[QuantSpec] = None
    sparsity: Optional[SparsitySpec] = None
    act: Optional[ActSpec] = None

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise IRTypeError(f"unknown dtype {self.dtype!r}; known: {', '.join(DTYPES)}")
        object.__setattr__(self, "shape", tuple(self.shape))
        for d in self.shape:
            if not (isinstance(d, (int, np.integer)) and d >= 0) and not (isinstance(d, str) and d.isidentifier()):
                raise IRTypeError(f"bad dimension {d!r} in shape {self.shape}")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def bits(self) -> int:
        return DTYPES[self.dtype][0]

    def with_(self, **kw) -> "TensorType":
        return replace(self, **kw)

    def numel(self, env: Optional[dict] = None) -> int:
        n = 1
        for d in self.shape:
            n *= resolve_dim(d, env)
        return n

    def stored_bits(self, env: Optional[dict] = None) -> int:
        """Bits this tensor takes as stored: codes at their width (only the kept N of
        every M if sparse, plus log2(M) index bits each), plus fp16 group scales and
        zero points at the code width when quantized."""
        n = self.numel(env)
        bits = n * (self.quant.bits if self.quant else self.bits)
        if self.sparsity:
            kept = n * self.sparsity.n // self.sparsity.m
            bits = bits * self.sparsity.n // self.sparsity.m + kept * (self.sparsity.m.bit_length() - 1)
        if self.quant:
            groups = n // self.quant.group_size
            bits += groups * 16 + (groups * self.quant.bits if self.quant.zeros else 0)
        return bits

    def concrete(self) -> bool:
        return all(isinstance(d, (int, np.integer)) for d in self.shape)

    def text(self) -> str:
        s = f"{self.dtype}[{','.join(str(d) for d in self.shape)}]"
        if self.quant:
            s += " " + self.quant.text()
        if self.sparsity:
            s += " " + self.sparsity.text()
        if self.act:
            s += " " + self.act.text()
        return s


def resolve_dim(d: Dim, env: Optional[dict] = None) -> int:
    if isinstance(d, str):
        if env is None or d not in env:
            raise IRTypeError(f"symbolic dimension {d!r} has no value (known: {sorted(env or {})})")
        return int(env[d])
    return int(d)


_TYPE_RE = re.compile(r"^(?P<dtype>\w+)\[(?P<shape>[^\]]*)\](?P<rest>.*)$")
_SPEC_RE = re.compile(r"(quant|sparse|act)\(([^)]*)\)")


def _kv(body: str) -> dict[str, str]:
    out = {}
    for part in [p.strip() for p in body.split(",") if p.strip()]:
        if "=" not in part:
            out["_"] = part
            continue
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip().strip('"')
    return out


def parse_type(text: str) -> TensorType:
    """Inverse of :meth:`TensorType.text`."""
    m = _TYPE_RE.match(text.strip())
    if not m:
        raise IRTypeError(f"cannot parse type {text!r}")
    dims: list[Dim] = []
    for d in [d.strip() for d in m["shape"].split(",") if d.strip()]:
        dims.append(int(d) if d.lstrip("-").isdigit() else d)
    quant = sparsity = act = None
    rest = m["rest"].strip()
    for kind, body in _SPEC_RE.findall(rest):
        kv = _kv(body)
        try:
            if kind == "quant":
                quant = QuantSpec(int(kv["bits"]), int(kv["group"]), kv["scheme"], kv["scales"], kv.get("zeros"))
            elif kind == "act":
                words = [p.strip() for p in body.split(",") if p.strip() and "=" not in p]
                if words[:1] != ["i8"] or len(words) != 2:
                    raise ValueError(f"expected act(i8, dynamic|static...), got act({body})")
                act = ActSpec(words[1], int(kv["m"]) if "m" in kv else None, int(kv["e"]) if "e" in kv else None)
            else:
                n, mm = kv["_"].split(":")
                sparsity = SparsitySpec(int(n), int(mm), kv.get("indices"))
        except (KeyError, ValueError) as e:
            raise IRTypeError(f"bad {kind}(...) spec in type {text!r}: {e}") from None
    leftover = _SPEC_RE.sub("", rest).strip()
    if leftover:
        raise IRTypeError(f"unexpected text {leftover!r} in type {text!r}")
    return TensorType(tuple(dims), m["dtype"], quant, sparsity, act)
