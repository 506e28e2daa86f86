"""Pass dumps and resume: every intermediate graph, with its weights as deltas.

A dump directory written by :class:`plait.passes.runner.PassManager` holds

* ``pipeline.json`` -- the recipe name and the pass specs;
* ``00-input/graph.plait`` -- the input graph;
* ``NN-<pass>/graph.plait`` -- the graph after pass NN, ``changes.json`` (changed?,
  seconds, details, which weight-store entries were replaced, added or removed)
  and ``weights.safetensors`` holding only those entries (a *delta*, so an N-pass
  dump costs N deltas, not N models).

:func:`resume` checks that the input graph and the pipeline prefix are the ones
that were dumped and rebuilds the graph and weights at a step (original weights
+ deltas).  :func:`store_state` / :func:`store_diff` find the entries a pass
touched without copying any array.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Optional

from plait.ir import Graph, WeightStore, parse_graph, print_graph

from .framework import PassError

PIPELINE_FILE = "pipeline.json"
CHANGES_FILE = "changes.json"
DELTA_FILE = "weights.safetensors"
GRAPH_FILE = "graph.plait"
INPUT_STEP = "00-input"


def step_dir(index: int, name: str) -> str:
    return f"{index:02d}-{name}"


# --------------------------------------------------------------------------- weight deltas

def store_state(weights: WeightStore) -> dict:
    """Cheap identity snapshot of a store: name -> (info, where the data lives).

    Keeps references to the arrays so identities cannot be recycled while the
    snapshot lives.  Reading a lazily-loaded entry does not count as a change.
    """
    arrays = getattr(weights, "_arrays", {})
    lazy = getattr(weights, "_lazy", {})
    state = {}
    for n in weights.names():
        if n in lazy:
            where = ("lazy", lazy[n])
        elif n in arrays:
            where = ("array", arrays[n])
        else:
            where = ("declared", None)
        state[n] = (weights.info(n), where)
    return state


def _same(a, b) -> bool:
    (ia, (ka, va)), (ib, (kb, vb)) = a, b
    return ia == ib and ka == kb and (va is vb if ka == "array" else va == vb)


def store_diff(before: dict, after: dict) -> dict:
    """``{"replaced", "added", "removed"}``: sorted entry names between two snapshots."""
    return {
        "replaced": sorted(n for n in after if n in before and not _same(before[n], after[n])),
        "added": sorted(n for n in after if n not in before),
        "removed": sorted(n for n in before if n not in after),
    }


# --------------------------------------------------------------------------- writing

def dump_start(d: Path, graph: Graph, start: int, *, recipe: str, specs: list, dump_weights: bool,
               resumed_from: Optional[Path] = None) -> None:
    """Prepare dump directory ``d`` for a run that starts after step ``start``."""
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("[0-9][0-9]-*"):
        # steps this run will (re)write, and stale steps of an older, longer run
        if old.is_dir() and (start == 0 or int(old.name[:2]) > start):
            shutil.rmtree(old)
    if start == 0:
        (d / INPUT_STEP).mkdir()
        (d / INPUT_STEP / GRAPH_FILE).write_text(print_graph(graph))
    elif resumed_from is not None and resumed_from.resolve() != d.resolve():
        # resuming into a new dump: bring the steps we start from
        for sd in [resumed_from / INPUT_STEP] + sorted(resumed_from.glob("[0-9][0-9]-*")):
            if sd.is_dir() and (sd.name == INPUT_STEP or int(sd.name[:2]) <= start):
                shutil.copytree(sd, d / sd.name, dirs_exist_ok=True)
    (d / PIPELINE_FILE).write_text(json.dumps(
        {"recipe": recipe, "passes": specs, "dump_weights": dump_weights}, indent=2) + "\n")


def dump_step(d: Path, graph: Graph, weights: WeightStore, res, dump_weights: bool) -> None:
    """Write step ``res`` (a :class:`~plait.passes.runner.PassResult`) of a run."""
    sd = d / step_dir(res.index, res.name)
    sd.mkdir(parents=True, exist_ok=True)
    (sd / GRAPH_FILE).write_text(print_graph(graph))
    delta = WeightStore()
    declared = {}
    for n in res.weights["replaced"] + res.weights["added"]:
        if weights.has_data(n):
            delta[n] = weights[n]
        else:
            info = weights.info(n)
            declared[n] = [list(info.shape), info.dtype]
    saved = False
    if dump_weights and len(delta):
        delta.save(sd / DELTA_FILE)
        saved = True
    (sd / CHANGES_FILE).write_text(json.dumps({
        "index": res.index, "pass": res.spec, "changed": res.changed, "seconds": res.seconds,
        "weights": res.weights, "declared": declared, "weights_saved": saved or not len(delta),
        "details": res.details}, indent=2, default=str) + "\n")


# --------------------------------------------------------------------------- resume

def resume(src: Path, graph: Optional[Graph], weights: WeightStore, specs: list):
    """Rebuild a run from dump ``src`` (a dump directory, or one ``NN-<pass>`` step in it).

    Returns ``(root, graph, weights, upto, steps)``: the dump root, the graph and a
    copy of ``weights`` with the deltas of steps ``1..upto`` applied, and the
    ``changes.json`` contents of those steps.  ``specs`` are the pipeline's pass
    specs; the dumped prefix must equal them.
    """
    if (src / GRAPH_FILE).exists() and re.fullmatch(r"\d\d-.+", src.name):
        root, upto = src.parent, int(src.name[:2])
    else:
        root, upto = src, None
    pf = root / PIPELINE_FILE
    if not pf.exists():
        raise PassError(f"resume_from {src}: not a pass dump (no {PIPELINE_FILE} in {root})")
    dumped = json.loads(pf.read_text())["passes"]
    steps = sorted((int(p.name[:2]), p) for p in root.glob("[0-9][0-9]-*")
                   if p.is_dir() and p.name != INPUT_STEP and (p / CHANGES_FILE).exists())
    if upto is None:
        upto = steps[-1][0] if steps else 0
    have = [i for i, _ in steps]
    if have[:upto] != list(range(1, upto + 1)):
        raise PassError(f"resume_from {src}: the dump lacks steps {sorted(set(range(1, upto + 1)) - set(have))}")
    if upto > len(specs):
        raise PassError(f"resume_from {src}: the dump has {upto} passes but this pipeline only {len(specs)}")
    for i in range(upto):
        if dumped[i] != specs[i]:
            raise PassError(f"resume_from {src}: pass {i + 1} differs: dumped {dumped[i]} but the "
                            f"pipeline has {specs[i]}")
    if graph is not None:
        ref = (root / INPUT_STEP / GRAPH_FILE).read_text()
        if print_graph(graph) != ref:
            raise PassError(f"resume_from {src}: the dump was made from a different input graph "
                            f"(compare with {root / INPUT_STEP / GRAPH_FILE})")
    weights = weights.copy()
    done = []
    for i, sd in steps[:upto]:
        ch = json.loads((sd / CHANGES_FILE).read_text())
        if not ch.get("weights_saved", False):
            raise PassError(f"resume_from {src}: step {sd.name} was dumped without its weights "
                            f"(dump_weights=False); cannot rebuild the weight store")
        for n in ch["weights"]["removed"]:
            weights.pop(n)
        if (sd / DELTA_FILE).exists():
            delta = WeightStore.load(sd / DELTA_FILE, lazy=False)
            for n in delta.names():
                weights[n] = delta[n]
        for n, (shape, dtype) in ch.get("declared", {}).items():
            weights.declare(n, shape, dtype)
        ch["index"] = i
        done.append(ch)
    last = steps[upto - 1][1] if upto else root / INPUT_STEP
    graph = parse_graph((last / GRAPH_FILE).read_text())
    return root, graph, weights, upto, done
