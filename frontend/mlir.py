"""The torch-mlir path: ``torch_mlir.fx.export_and_import`` -> torch-dialect MLIR -> IR.

:func:`exported_to_mlir` imports an :class:`~torch.export.ExportedProgram` with
``torch_mlir.fx.export_and_import`` and returns the MLIR *text* (with debug
locations).  Two importer hooks make the text self-describing:

* weights are not frozen into ``torch.vtensor.literal`` constants (which would
  copy every array into the text and lose the names): each parameter becomes
  ``torch.operator "torch.plait.param"(%name)`` with its state-dict name as a
  ``torch.constant.str`` operand;
* each op's location is a name location ``loc("<nn.Module path> (<class>)"(...))``
  wrapping the stack-trace location torch-mlir produces.

:func:`program_from_mlir` parses the text (with torch-mlir's own parser) and
walks the ``main`` function into the same neutral :class:`~.lower.Program` the
FX path produces; :mod:`.lower` does the rest.  Custom ops arrive as
``torch.operator "torch.plait.rmsnorm"`` etc.  MLIR written by other tools is
accepted too: without name locations an op is identified by its position
(``MLIR op #k``) and file:line; frozen weight literals are refused.

The program must have at most one dynamic dimension (the sequence length ``S``).
"""
from __future__ import annotations

import re
from .capture import module_origin
from .lower import Dynamic, FrontendError, InputRecord, OpRecord, Program, Ref, UnsupportedOpError

_TYPE_RE = re.compile(r"^!torch\.vtensor<\[([^\]]*)\],(\w+)>$")
_MLIR_DTYPES = {"f32": "f32", "f16": "f16", "bf16": "bf16", "si64": "i64", "si32": "i32",
                "si16": "i16", "si8": "i8", "ui8": "u8", "i1": "bool"}
_NAMELOC_RE = re.compile(r'^loc\("((?:[^"\\]|\\.)*)"(?!:\d)')  # a name, not "file":line:col
_FILELOC_RE = re.compile(r'"([^"]+)":(\d+)')
PARAM_OP = "torch.plait.param"


class MlirUnavailable(FrontendError):
    """torch-mlir is not installed or does not work here."""


def _torch_mlir():
    try:
        from torch_mlir import ir
        from torch_mlir.dialects import torch as torch_d
        from torch_mlir.extras import fx_importer
        from torch_mlir import fx
    except ImportError as e:
        raise MlirUnavailable(f"the MLIR path needs torch-mlir (pip install torch-mlir): {e}") from None
    return ir, torch_d, fx_importer, fx


def _context():
    ir, torch_d, _, _ = _torch_mlir()
    ctx = ir.Context()
    torch_d.register_dialect(ctx)
    return ctx


# --------------------------------------------------------------------------- export -> MLIR
def _make_importer(ctx):
    ir, _, fxi, _ = _torch_mlir()

    class WeightHooks(fxi.FxImporterHooks):
        """Parameters/buffers become named ``torch.plait.param`` ops instead of literals."""

        def resolve_input(self, gni, value, info):
            name = info.input_spec.target
            s = ir.Operation.create("torch.constant.str", results=[gni._cc.torch_str_type],
                                    attributes={"value": ir.StringAttr.get(name)})
            op = ir.Operation.create("torch.operator", results=[info.ir_type], operands=[s.result],
                                     attributes={"name": ir.StringAttr.get(PARAM_OP)})
            return op.result

    class ModulePathLocations(fxi.ContextCache):
        """Locations named by the FX node's nn.Module path (and class)."""

        def get_node_location(self, node):
            loc = super().get_node_location(node)
            if node.op != "call_function":
                return loc
            path, cls = module_origin(node)
            label = f"{path} ({cls})" if cls else path
            return ir.Location.name(label, childLoc=loc or ir.Location.unknown(self._c), context=self._c)

    imp = fxi.FxImporter(context=ctx, hooks=WeightHooks())
    # FxImporter has no public option for locations; its ContextCache is the one place they are made
    imp._cc = ModulePathLocations(ctx, py_attr_tracker=imp._py_attr_tracker)
    return imp


def exported_to_mlir(ep) -> str:
    """torch-dialect MLIR text (with locations) of an exported program, via torch-mlir."""
    ir, _, _, fx = _torch_mlir()
    ctx = _context()
    imp = _make_importer(ctx)
    try:
        module = fx.export_and_import(ep, fx_importer=imp, decomposition_table={},
                                      experimental_support_mutation=True, output_type="raw",
                                      import_symbolic_shape_expressions=True)
    except Exception as e:  # noqa: BLE001 - surface torch-mlir failures with context
        raise FrontendError(f"torch-mlir failed to import the exported program: {type(e).__name__}: {e}") from e
    return module.operation.get_asm(enable_debug_info=True)


# --------------------------------------------------------------------------- MLIR -> Program
def _parse_type(t, where: str, dyn: str) -> tuple[tuple, str]:
    m = _TYPE_RE.match(str(t))
    if not m:
        raise FrontendError(f"{where}: type {t} is not a torch value tensor")
    dims = []
    for d in [d.strip() for d in m[1].split(",") if d.strip()]:
        dims.append(dyn if d == "?" else int(d))
    if m[2] not in _MLIR_DTYPES:
        raise FrontendError(f"{where}: element type {m[2]} has no IR equivalent")
    return tuple(dims), _MLIR_DTYPES[m[2]]


def _location(op, index: int) -> tuple[str, str, str]:
    """(module path, module class, position text) of an op."""
    text = str(op.location)
    m = _NAMELOC_RE.match(text)
    pos = f"MLIR op #{index}"
    f = _FILELOC_RE.search(text)
    if f:
        pos += f" at {f[1].rsplit('/', 1)[-1]}:{f[2]}"
    if not m:
        return "", "", pos
    label = m[1].encode().decode("unicode_escape")
    cm = re.fullmatch(r"(.*?) \((\w+)\)", label)
    return (cm[1], cm[2], pos) if cm else (label, "", pos)


def program_from_mlir(text: str, dim_name: str = "S") -> Program:
    """Read torch-dialect MLIR text (``func.func @main``) into a :class:`Program`."""
    ir, _, _, _ = _torch_mlir()
    ctx = _context()
    try:
        module = ir.Module.parse(text, ctx)
    except Exception as e:  # noqa: BLE001
        raise FrontendError(f"cannot parse the MLIR text: {e}") from None
    funcs = [op for op in module.body.operations if op.operation.name == "func.func"]
    if not funcs:
        raise FrontendError("the MLIR module has no func.func")
    main = next((f for f in funcs if str(f.operation.attributes["sym_name"]).strip('"') == "main"), funcs[0])
    block = main.operation.regions[0].blocks[0]
    syms = [op for op in block.operations if op.operation.name == "torch.symbolic_int"]
    if len(syms) > 1:
        raise FrontendError(f"the program has {len(syms)} dynamic dimensions; only one (the sequence length) is supported")

    prog = Program()
    names: dict = {}        # ir.Value -> program value name
    consts: dict = {}       # ir.Value -> Python constant

    def vname(v) -> str:
        if v not in names:
            names[v] = f"v{len(names)}"
        return names[v]

    scalars: dict = {}      # ir.Value -> op that computes a scalar at run time (shape asserts)

    def arg(v, where: str):
        if v in consts:
            return consts[v]
        if v in scalars:
            return Dynamic(scalars[v])
        if v not in names:
            raise FrontendError(f"{where}: operand is not defined by a supported op")
        return Ref(names[v])

    for i, a in enumerate(block.arguments):
        shape, dt = _parse_type(a.type, f"argument {i}", dim_name)
        prog.inputs.append(InputRecord(vname(a), "user", shape, dt))

    for k, op in enumerate(block.operations):
        o = op.operation
        kind = o.name
        attrs = o.attributes
        if kind in ("torch.symbolic_int", "torch.bind_symbolic_shape"):
            continue
        if kind.startswith("torch.constant."):
            r = o.results[0]
            if kind == "torch.constant.none":
                consts[r] = None
            elif kind == "torch.constant.str":
                consts[r] = ir.StringAttr(attrs["value"]).value
            elif kind == "torch.constant.bool":
                consts[r] = bool(ir.BoolAttr(attrs["value"]).value)
            elif kind == "torch.constant.int":
                consts[r] = int(ir.IntegerAttr(attrs["value"]).value)
            elif kind == "torch.constant.float":
                consts[r] = float(ir.FloatAttr(attrs["value"]).value)
            elif kind == "torch.constant.device":
                consts[r] = ir.StringAttr(attrs["value"]).value
            else:
                raise FrontendError(f"MLIR op #{k}: unsupported constant {kind}")
            continue
        if kind == "torch.prim.ListConstruct":
            consts[o.results[0]] = [arg(v, f"MLIR op #{k}") for v in o.operands]  # may hold Refs
            continue
        if kind == "func.return":
            prog.outputs = [names[v] for v in o.operands]
            continue
        if kind == "torch.vtensor.literal":
            raise FrontendError(f"MLIR op #{k}: a weight frozen into the MLIR as a literal has no name; import with "
                                f"plait.frontend.mlir.exported_to_mlir, which keeps weights as named "
                                f"'{PARAM_OP}' ops")
        if kind == "torch.operator":
            target = ir.StringAttr(attrs["name"]).value
        elif kind.startswith("torch."):
            target = kind
        else:
            path, cls, pos = _location(o, k)
            raise UnsupportedOpError(kind, path, "not a torch-dialect op", cls, pos)
        if target == PARAM_OP:
            wname = arg(o.operands[0], f"MLIR op #{k}")
            shape, dt = _parse_type(o.results[0].type, f"weight {wname}", dim_name)
            prog.inputs.append(InputRecord(vname(o.results[0]), "param", shape, dt, str(wname)))
            continue
        path, cls, pos = _location(o, k)
        target = target[len("torch."):] if target.startswith("torch.") else target
        if all(not str(r.type).startswith("!torch.vtensor") for r in o.results):
            # run-time shape checks (aten.size.int, aten.ge.int, runtime.assert ...): no data flow
            for r in o.results:
                scalars[r] = f"{target} ({pos})"
            continue
        if len(o.results) != 1:
            raise UnsupportedOpError(target, path, f"{len(o.results)} results; only single-result ops are supported",
                                     cls, pos)
        where = f"{target} at {path or pos}"
        args = [arg(v, where) for v in o.operands]
        shape, dt = _parse_type(o.results[0].type, where, dim_name)
        prog.ops.append(OpRecord(target, args, vname(o.results[0]), shape, dt, path, cls, pos))
    return prog


def mlir_text_of_module(module, example_inputs: tuple, dynamic_shapes=None) -> str:
    """Convenience: ``torch.export`` a module (no substitution) and import it with torch-mlir."""
    from .capture import export_module
    return exported_to_mlir(export_module(module, example_inputs, dynamic_shapes))

