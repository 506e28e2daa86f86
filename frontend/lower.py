"""Conversion of a captured program (ATen + ``plait::`` custom ops) into the plait IR.

Both import paths produce the same neutral form, a :class:`Program`:

* :mod:`.capture` walks a ``torch.export`` :class:`~torch.export.ExportedProgram`;
* :mod:`.mlir` walks the torch-dialect MLIR that ``torch_mlir.fx`` imports.

A :class:`Program` is a list of :class:`OpRecord` -- op name in the common
spelling (``aten.linear``, ``aten.add.Tensor``, ``plait.rmsnorm``: namespace, op
and the overload unless it is ``default``), the full positional argument list
(tensor arguments are :class:`Ref`, everything else a Python constant), the
result's shape (ints, or symbol names such as ``"S"``) and dtype, and the
``nn.Module`` path it came from.  :func:`lower_program` maps records to IR nodes
through one table, so two paths that agree on the records give the same graph.

An op that is not in the table raises :class:`UnsupportedOpError` naming the op
and the module it came from.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from plait.ir import Graph, TensorType
from plait.ir.types import IRTypeError


class FrontendError(ValueError):
    """A model or program the frontend cannot import (the message says why)."""


class UnknownModelError(FrontendError):
    """A model source that is neither a known name, a GGUF file nor an HF directory."""


class UnsupportedOpError(FrontendError):
    """An op with no IR equivalent; names the op and the nn.Module path it came from."""

    def __init__(self, op: str, origin: str = "", detail: str = "", module_type: str = "",
                 position: str = ""):
        self.op, self.origin, self.detail, self.position = op, origin, detail, position
        if origin:
            where = f"module {origin!r}" + (f" ({module_type})" if module_type else "")
        elif position:
            where = position
        else:
            where = "the top-level module" + (f" ({module_type})" if module_type else "")
        msg = f"unsupported op {op} in {where}"
        if detail:
            msg += f": {detail}"
        else:
            msg += f"; the frontend maps only: {', '.join(sorted(set(SUPPORTED_OPS)))}"
        super().__init__(msg)


# --------------------------------------------------------------------------- neutral form
@dataclass(frozen=True)
class Ref:
    """A tensor value of the captured program, by its name there."""
    name: str


@dataclass(frozen=True)
class Dynamic:
    """A scalar argument computed at run time (e.g. ``aten.size.int``): no IR form."""
    source: str


@dataclass
class InputRecord:
    ref: str
    kind: str                    # "user" | "param"
    shape: tuple
    dtype: str                   # IR dtype
    weight: str = ""             # weight (state-dict) name for params


@dataclass
class OpRecord:
    target: str
    args: list
    result: str
    shape: tuple
    dtype: str
    origin: str = ""
    module_type: str = ""
    position: str = ""           # where in the source program (MLIR op index, file:line)


@dataclass
class Program:
    inputs: list[InputRecord] = field(default_factory=list)
    ops: list[OpRecord] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


TORCH_DTYPES = {"torch.float32": "f32", "torch.float16": "f16", "torch.bfloat16": "bf16",
                "torch.int64": "i64", "torch.int32": "i32", "torch.int16": "i16", "torch.int8": "i8",
                "torch.uint8": "u8", "torch.bool": "bool"}


def ir_dtype(torch_dtype) -> str:
    try:
        return TORCH_DTYPES[str(torch_dtype)]
    except KeyError:
        raise FrontendError(f"tensor dtype {torch_dtype} has no IR equivalent") from None


# --------------------------------------------------------------------------- the op table
class _Lowering:
    """State of one lowering: value map, node names, the graph being built."""

    def __init__(self, graph: Graph, params: dict[str, InputRecord], param_dtype: str):
        self.g = graph
        self.values: dict[str, str] = {}     # program value -> IR node name
        self.params = params
        self.param_dtype = param_dtype
        self.rec: Optional[OpRecord] = None
        self._names: dict[str, int] = {}
        self.out_names: dict[str, str] = {}

    # -- helpers used by the handlers
    def fail(self, detail: str = ""):
        r = self.rec
        return UnsupportedOpError(r.target, r.origin, detail, r.module_type, r.position)

    def tensor(self, i: int) -> str:
        r = self.rec
        if i >= len(r.args) or not isinstance(r.args[i], Ref):
            raise self.fail(f"argument {i} is not a tensor")
        return self.value(r.args[i].name)

    def const(self, i: int, default=None):
        r = self.rec
        if i >= len(r.args):
            return default
        a = r.args[i]
        if isinstance(a, Ref):
            raise self.fail(f"argument {i} must be a constant, got a tensor")
        if isinstance(a, Dynamic) or (isinstance(a, list) and any(isinstance(x, Dynamic) for x in a)):
            src = a.source if isinstance(a, Dynamic) else next(x.source for x in a if isinstance(x, Dynamic))
            raise self.fail(f"argument {i} is computed at run time by {src}; run-time scalars have no IR form")
        return a

    def value(self, ref: str) -> str:
        if ref in self.values:
            return self.values[ref]
        p = self.params.get(ref)
        if p is None:
            raise FrontendError(f"value {ref!r} is used before it is defined")
        # params are created at their first use, so both import paths order them alike
        name = self.g.add("param", attrs={"weight": p.weight}, name=self.unique(p.weight),
                          type=TensorType(p.shape, self.param_dtype if p.dtype in ("f32", "f16", "bf16") else p.dtype))
        self.values[ref] = name
        return name

    def unique(self, base: str) -> str:
        base = "".join(c if (c.isalnum() or c in "._") else "_" for c in base) or "v"
        n = self._names.get(base, 0)
        name = base if n == 0 else f"{base}_{n}"
        while name in self.g:
            n += 1
            name = f"{base}_{n}"
        self._names[base] = n + 1
        return name

    def emit(self, op: str, inputs: list[str], attrs: Optional[dict] = None, name: Optional[str] = None) -> str:
        r = self.rec
        short = r.origin[len("model."):] if r.origin.startswith("model.") else r.origin
        if name is None and r.result in self.out_names:
            name = self.out_names[r.result]
        if name is None:
            name = short if (op in _NAMED_BY_MODULE and short) else (f"{short}.{op}" if short else op)
        node = self.g.add(op, inputs, attrs or {}, name=self.unique(name), origin=r.origin)
        t = self.g.node(node).type
        if tuple(t.shape) != tuple(r.shape) or t.dtype != r.dtype:
            raise FrontendError(f"{r.target} at {r.origin or 'top level'}: the IR op {op} gives "
                                f"{t.text()} but the program says {r.dtype}[{','.join(map(str, r.shape))}]")
        return node

    def alias(self) -> str:
        """The result is the first argument (a no-op in the IR)."""
        return self.tensor(0)


_NAMED_BY_MODULE = {"linear", "embedding", "rmsnorm"}
Handler = Callable[[_Lowering], str]
SUPPORTED_OPS: dict[str, Handler] = {}


def _handler(*names: str):
    def deco(fn):
        for n in names:
            SUPPORTED_OPS[n] = fn
        return fn
    return deco


@_handler("aten.embedding")
def _embedding(L: _Lowering) -> str:
    # aten.embedding(weight, indices, padding_idx, scale_grad_by_freq, sparse): the
    # last three only affect gradients.
    return L.emit("embedding", [L.tensor(0), L.tensor(1)])


@_handler("aten.linear")
def _linear(L: _Lowering) -> str:
    ins = [L.tensor(0), L.tensor(1)]
    if len(L.rec.args) > 2 and isinstance(L.rec.args[2], Ref):
        ins.append(L.tensor(2))
    return L.emit("linear", ins)


def _binary(op: str) -> Handler:
    def fn(L: _Lowering) -> str:
        if len(L.rec.args) > 2 and L.const(2, 1) != 1:
            raise L.fail(f"alpha={L.const(2)} is not supported")
        for i in (0, 1):
            if not isinstance(L.rec.args[i], Ref):
                raise L.fail(f"a scalar operand ({L.rec.args[i]!r}) has no IR form; the IR {op} takes two tensors")
        return L.emit(op, [L.tensor(0), L.tensor(1)])
    return fn


SUPPORTED_OPS["aten.add.Tensor"] = _binary("add")
SUPPORTED_OPS["aten.mul.Tensor"] = _binary("mul")


@_handler("aten.silu")
def _silu(L: _Lowering) -> str:
    return L.emit("silu", [L.tensor(0)])


@_handler("aten.clone", "aten.contiguous", "aten.alias", "aten.detach")
def _identity(L: _Lowering) -> str:
    return L.alias()


@_handler("aten.dropout")
def _dropout(L: _Lowering) -> str:
    if L.const(1, 0.0) and L.const(2, False):
        raise L.fail(f"dropout with p={L.const(1)} in training mode changes values; capture in eval mode")
    return L.alias()


@_handler("aten.to.dtype", "aten._to_copy", "aten.to.dtype_layout", "aten.type_as")
def _cast(L: _Lowering) -> str:
    src = L.g.node(L.tensor(0)).type
    if L.rec.dtype != src.dtype and not (L.rec.dtype in ("f32", "f16", "bf16") and src.dtype in ("f32", "f16", "bf16")):
        raise L.fail(f"a cast from {src.dtype} to {L.rec.dtype} has no IR form")
    return L.alias()


@_handler("plait.rmsnorm")
def _rmsnorm(L: _Lowering) -> str:
    return L.emit("rmsnorm", [L.tensor(0), L.tensor(1)], {"eps": float(L.const(2))})


@_handler("plait.rope")
def _rope(L: _Lowering) -> str:
    scaling = L.const(4, "")
    attrs = {"n_heads": int(L.const(1)), "head_dim": int(L.const(2)), "theta": float(L.const(3)),
             "scaling": json.loads(scaling) if scaling else None}
    return L.emit("rope", [L.tensor(0)], attrs)


@_handler("plait.attention")
def _attention(L: _Lowering) -> str:
    attrs = {"n_heads": int(L.const(3)), "n_kv_heads": int(L.const(4)), "head_dim": int(L.const(5)),
             "scale": float(L.const(6))}
    return L.emit("attention", [L.tensor(0), L.tensor(1), L.tensor(2)], attrs)


@_handler("plait.swiglu")
def _swiglu(L: _Lowering) -> str:
    return L.emit("swiglu", [L.tensor(0), L.tensor(1)])


# --------------------------------------------------------------------------- driver
def lower_program(prog: Program, *, name: str = "model", input_names=("tokens",),
                  output_names=("logits",), param_dtype: str = "f32",
                  meta: Optional[dict] = None) -> Graph:
    """Build an IR graph from a :class:`Program` (see the module docstring)."""
    g = Graph(name)
    if meta:
        g.meta = dict(meta)
    params = {i.ref: i for i in prog.inputs if i.kind == "param"}
    L = _Lowering(g, params, param_dtype)
    users = [i for i in prog.inputs if i.kind == "user"]
    if len(input_names) < len(users):
        input_names = tuple(input_names) + tuple(f"input{k}" for k in range(len(input_names), len(users)))
    for i, nm in zip(users, input_names):
        try:
            t = TensorType(i.shape, i.dtype)
        except IRTypeError as e:
            raise FrontendError(f"graph input {i.ref}: {e}") from None
        L.values[i.ref] = g.add("input", name=nm, type=t)
    out_name = {o: (output_names[k] if k < len(output_names) else f"output{k}")
                for k, o in enumerate(prog.outputs)}
    L.out_names = out_name
    for rec in prog.ops:
        L.rec = rec
        fn = SUPPORTED_OPS.get(rec.target)
        if fn is None:
            raise UnsupportedOpError(rec.target, rec.origin, "", rec.module_type, rec.position)
        L.values[rec.result] = fn(L)
    outs = []
    for o in prog.outputs:
        v = L.value(o)
        if v != out_name[o] and out_name[o] not in g:
            # give the output its contract name (e.g. %logits): re-add the producer under it
            node = g.node(v)
            new = g.add(node.op, node.inputs, dict(node.attrs), name=out_name[o], type=node.type,
                        origin=node.origin, infer=False)
            g.replace_uses(v, new)
            g.remove(v)
            v = new
        outs.append(v)
    g.outputs = outs
    g.dead_code()
    return g
