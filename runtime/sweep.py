"""``plait sweep``: many recipes on one model, each compile + evaluation a Ray task.

::

    plait sweep smollm2 --recipes w8,w4g128,sparse24 --text notes.txt -o out/sweep
    plait sweep path/to/7b --recipes w8,w4g128 --address auto      # join a Ray cluster

One **cell** is one recipe on the model: the model loaded and the recipe run as
``plait compile`` does (:func:`plait.frontend.load_model`, :func:`plait.passes.run_recipe`
with the calibration rule of :func:`plait.passes.textdata.calibration_input`), then the
perplexity of the compiled graph on every text as ``plait eval`` measures it (float mode:
a :class:`~plait.runtime.session.Session` on the cpu device, every window on a fresh KV
cache), its bits per linear weight (:func:`plait.ir.stats.summarize`, what ``plait
inspect`` prints), the compile and evaluation seconds and the peak resident memory of the
task.  Nothing is written to disk per cell but its result: no artifact.

The texts are the default text (CPython's ``pydoc_data.topics``, always first) and any
extra ones; the fp32 recipe always runs as the baseline of the sweep, and every row's
perplexity is also given as a ratio to it.

**Ray.** Each cell to compute is one Ray task (``num_cpus`` = ``cpus_per_task``, default 1;
``memory`` = the compile's estimate, so Ray never packs more cells on a node than its
memory holds).  By default a local Ray is started with ``workers x cpus_per_task`` CPUs
(and stopped at the end); ``address`` joins a running cluster instead (``"auto"`` on a
node of it; the model path and plait must then be present on every node).  A Ray already
initialized in the process is used as it is.

**Cache.** A finished cell is kept in ``OUT/cache/<key>.json``; the key is a SHA-256 of
the model's identity (the content of its small files, and the size and modification time
of files over 64 MiB), the recipe file's text, the texts' contents, the evaluation
settings, the calibration ids and the plait and torch versions.  A later sweep into the
same directory computes only the cells it lacks; a cache entry that cannot be read, or
whose key or fields are wrong, is recomputed (and overwritten), never trusted.  A cell
that failed is not cached.

**Output.** ``OUT/sweep.md`` (the table), ``OUT/sweep.json`` (the same rows, machine
readable) and ``OUT/sweep.png`` (perplexity against bits per weight, one series per
text, each point labelled by its recipe), each written atomically (a scratch file beside
it, renamed into place).  ``OUT`` must be new, empty or an earlier sweep's: a directory
holding other files is refused.  Every input (recipes, texts, the model source, the
output directory, the window against the model's context, the tokenizer, the memory
estimate) is checked before anything is written or any Ray task starts; a failing cell
is reported in its row and the other cells still finish.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

SWEEP_JSON, SWEEP_MD, SWEEP_PNG, CACHE_DIR = "sweep.json", "sweep.md", "sweep.png", "cache"
SWEEP_ENTRIES = (SWEEP_JSON, SWEEP_MD, SWEEP_PNG, CACHE_DIR)
MARKER = "plait_sweep"            # sweep.json's schema field: what makes a directory a sweep's
SCHEMA = 1
CACHE_SCHEMA = 1
BASELINE = "fp32"
DEFAULT_TEXT = "pydoc_data.topics"
BIG_FILE = 64 << 20               # model files above this are identified by size and mtime
OBJECT_STORE = 256 << 20          # a local Ray's object store: cells pass token ids, not weights
_TMP = re.compile(r"\..+\.plait-tmp-(\d+)-")
_KEY_FILE = re.compile(r"[0-9a-f]{64}\.json")


class SweepError(ValueError):
    """A bad sweep request (recipe list, text, output directory, Ray); the message names it."""


# ---------------------------------------------------------------- files

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """``path`` holds ``data`` or what it held before, never a part: a scratch file beside
    it is written, flushed and renamed over it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.plait-tmp-{os.getpid()}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_stale_scratch(directory: Path) -> None:
    """Scratch files of killed writers (``.<name>.plait-tmp-<pid>-*``, process gone)."""
    from .artifact import _pid_alive
    for p in directory.iterdir() if directory.is_dir() else ():
        m = _TMP.match(p.name)
        if m and p.is_file() and not _pid_alive(int(m.group(1))):
            p.unlink(missing_ok=True)


def _read_sweep_json(path: Path) -> dict:
    doc = json.loads(path.read_bytes().decode("utf-8"))
    if not isinstance(doc, dict) or doc.get(MARKER) != SCHEMA:
        raise ValueError(f"no {MARKER!r} field of version {SCHEMA}")
    return doc


def sweep_output_state(out) -> str:
    """``"new"`` (absent or empty) or ``"sweep"`` (an earlier sweep's directory: its table
    is replaced, its cache reused), checked before any work; a path that is a file, cannot
    be written, or holds files that are not a sweep's raises (ArtifactError / SweepError)."""
    from .artifact import check_output_dir
    out = Path(out)
    check_output_dir(out, f"-o {out}")
    if not out.exists() or not any(out.iterdir()):
        return "new"
    foreign = [n for n in sorted(os.listdir(out)) if n not in SWEEP_ENTRIES and not _TMP.match(n)]
    cache = out / CACHE_DIR
    if cache.exists() and not cache.is_dir():
        foreign.append(CACHE_DIR)
    elif cache.is_dir():
        foreign += [f"{CACHE_DIR}/{n}" for n in sorted(os.listdir(cache))
                    if not (_KEY_FILE.fullmatch(n) or _TMP.match(n))]
    damaged = ""
    if (out / SWEEP_JSON).exists():
        try:
            _read_sweep_json(out / SWEEP_JSON)
        except (OSError, UnicodeDecodeError, ValueError) as e:
            damaged = f"{SWEEP_JSON} is not a plait sweep's ({e})"
    if foreign or damaged:
        what = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        why = (f"holds files that are not part of a plait sweep: {what}" if foreign else "") + \
              ("; " if foreign and damaged else "") + damaged
        raise SweepError(f"-o {out} {why}; write the sweep to a new or empty directory")
    return "sweep"


# ---------------------------------------------------------------- identity and keys

def _file_id(p: Path) -> dict:
    st = p.stat()
    if st.st_size > BIG_FILE:
        return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
    from .artifact import sha256_file
    return {"bytes": st.st_size, "sha256": sha256_file(p)}


def model_identity(source) -> dict:
    """What a cell's result depends on in the model source (see the module doc)."""
    from plait.frontend import MODEL_CONFIGS, resolve_source
    kind, loc = resolve_source(source)
    if kind == "named":
        return {"kind": kind, "name": loc, "config": json.loads(json.dumps(MODEL_CONFIGS[loc], default=str)),
                "seed": 0}
    root = Path(loc)
    if kind == "gguf":
        files = {root.name: _file_id(root)}
    else:
        files = {p.relative_to(root).as_posix(): _file_id(p) for p in sorted(root.rglob("*"))
                 if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}
    return {"kind": kind, "path": os.path.abspath(loc), "files": files}


def cell_key(model_id: dict, recipe, texts: Sequence["Text"], settings: dict, calibration) -> str:
    import torch

    import plait
    doc = {"schema": CACHE_SCHEMA, "model": model_id,
           "recipe": recipe.text or json.dumps(recipe.to_dict(), sort_keys=True),
           "texts": [t.sha256 for t in texts], "eval": settings,
           "calibration": None if calibration is None else _sha256(json.dumps(list(map(int, calibration["ids"])))
                                                                    .encode()),
           "plait": plait.__version__, "torch": torch.__version__}
    return _sha256(json.dumps(doc, sort_keys=True).encode())


# ---------------------------------------------------------------- the plan

@dataclass
class Text:
    label: str
    text: str
    ids: list = field(default_factory=list, repr=False)

    @property
    def sha256(self) -> str:
        return _sha256(self.text.encode("utf-8"))


@dataclass
class Cell:
    given: str                      # as written in --recipes ("w8", "my/r.toml")
    recipe: object                  # plait.passes.Recipe
    baseline: bool
    calibration: Optional[dict]
    key: str = ""
    result: Optional[dict] = None
    cached: bool = False


@dataclass
class Plan:
    model: str
    out: Path
    texts: list[Text]
    cells: list[Cell]
    settings: dict                  # {"max_tokens", "window", "mode"}
    estimate: int                   # bytes one cell needs (the compile's estimate)
    workers: Optional[int]
    address: Optional[str]
    cpus_per_task: int


def _need_packages() -> None:
    import importlib.util
    missing = [m for m in ("ray", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:
        raise SweepError(f"plait sweep needs {' and '.join(missing)}: pip install -e '.[sweep]'")


def _recipe_list(recipes) -> list[str]:
    items = recipes.split(",") if isinstance(recipes, str) else list(recipes)
    names = [str(r).strip() for r in items]
    if not names or any(not n for n in names):
        raise SweepError(f"--recipes {','.join(names)!r}: expected recipe names or TOML paths separated by "
                         f"commas, with none empty")
    seen = set()
    for n in names:
        if n in seen:
            raise SweepError(f"--recipes: {n!r} is listed twice")
        seen.add(n)
    return names


def plan_sweep(model, recipes, *, texts: Sequence[tuple[str, str]] = (), out="out/sweep",
               max_tokens: int = 4096, window: Optional[int] = None, workers: Optional[int] = None,
               address: Optional[str] = None, cpus_per_task: int = 1) -> Plan:
    """Every check of a sweep, before anything is written or run (see the module doc).
    ``texts``: extra ``(label, content)`` pairs after the default text."""
    from plait.frontend import estimate_compile_memory, hf_config, load_tokenizer, resolve_source
    from plait.frontend.capture import context_of_config
    from plait.ir.limits import check_memory
    from plait.passes import load_recipe
    from plait.passes.textdata import calibration_input, default_text

    from .evaluate import eval_window
    _need_packages()
    if workers is not None and workers < 1:
        raise SweepError(f"--workers must be at least 1, got {workers}")
    if cpus_per_task < 1:
        raise SweepError(f"--cpus-per-task must be at least 1, got {cpus_per_task}")
    if max_tokens < 2:
        raise SweepError(f"--max-tokens must be at least 2, got {max_tokens}")
    loaded = [(n, load_recipe(n)) for n in _recipe_list(recipes)]            # RecipeError names the key
    base = load_recipe(BASELINE)
    if not any(r.text == base.text for _, r in loaded):
        loaded.insert(0, (BASELINE, base))
    all_texts = [Text(DEFAULT_TEXT, default_text())]
    for label, content in texts:
        if any(t.label == label for t in all_texts):
            raise SweepError(f"--text {label}: given twice")
        all_texts.append(Text(str(label), content))
    out = Path(out)
    sweep_output_state(out)
    resolve_source(model)                                                     # names an unknown model
    if address:
        _probe_address(address)
    window = eval_window(window, context_of_config(hf_config(model)))
    tok = load_tokenizer(model)
    if tok is None:
        raise SweepError(f"model {model}: no tokenizer (perplexity needs one); use a Hugging Face directory "
                         f"with tokenizer files, a GGUF file or smollm2")
    for t in all_texts:
        t.ids = [int(i) for i in tok.encode(t.text)[:max_tokens]]
        if len(t.ids) < 2:
            raise SweepError(f"--text {t.label}: only {len(t.ids)} token; perplexity needs at least 2")
    estimate = estimate_compile_memory(model)
    if address is None:
        check_memory(estimate, f"compiling {model}")
    settings = {"max_tokens": max_tokens, "window": window, "mode": "float"}
    ident = model_identity(model)
    calib_memo: dict = {}
    cells = []
    for given, r in loaded:
        cal = None
        if r.needs_calibration:                     # the one rule of plait compile, tokenized once
            if "c" not in calib_memo:
                calib_memo["c"] = calibration_input(r, tok)
            cal = calib_memo["c"]
        cell = Cell(given, r, r.text == base.text, cal)
        cell.key = cell_key(ident, r, all_texts, settings, cal)
        cells.append(cell)
    return Plan(str(model), out, all_texts, cells, settings, estimate, workers, address, cpus_per_task)


# ---------------------------------------------------------------- one cell (a Ray task)

def run_cell(model: str, recipe_spec: dict, texts: list[list[int]], calibration: Optional[dict],
             max_tokens: int, window: int, threads: int = 1) -> dict:
    """Compile ``model`` with the recipe and measure it (the module doc); returns the
    cell's result, or ``{"error": ...}`` when any step raises (the sweep goes on)."""
    try:
        return _run_cell(model, recipe_spec, texts, calibration, max_tokens, window, threads)
    except Exception as e:  # noqa: BLE001 - a failing cell is reported in its row
        msg = " ".join(str(e).split()) or type(e).__name__
        return {"error": f"{type(e).__name__}: {msg}", "traceback": traceback.format_exc()}


def _run_cell(model, recipe_spec, texts, calibration, max_tokens, window, threads) -> dict:
    import torch

    from plait.frontend import estimate_compile_memory, load_model
    from plait.ir.limits import PeakMeter, check_memory
    from plait.ir.stats import summarize
    from plait.passes import load_recipe, run_recipe

    from .artifact import Artifact
    from .evaluate import session_perplexity
    from .session import Session
    meter = PeakMeter()
    torch.set_num_threads(threads)
    recipe = load_recipe(recipe_spec)
    t0 = time.perf_counter()
    check_memory(estimate_compile_memory(model), f"compiling {model}")
    graph, weights = load_model(model, progress=False)
    graph, weights, _ = run_recipe(graph, weights, recipe, calibration=calibration, progress=False)
    t_compile = time.perf_counter() - t0
    bits = float(summarize(graph)["bits_per_linear_weight"])
    t1 = time.perf_counter()
    art = Artifact(Path(f"<sweep cell {recipe.name}>"), {"model": model, "recipe": recipe.to_dict()}, graph, weights)
    ppl, tokens = [], []
    with Session(art, device="cpu") as sess:
        for ids in texts:
            p, n = session_perplexity(sess, ids, max_tokens=max_tokens, window=window, progress=False)
            ppl.append(float(p))
            tokens.append(int(n))
    import platform
    return {"bits_per_weight": bits, "perplexity": ppl, "tokens": tokens,
            "compile_seconds": round(t_compile, 3), "eval_seconds": round(time.perf_counter() - t1, 3),
            "peak_rss_bytes": meter.peak(), "peak_rss_scope": "task" if meter.scoped else "process",
            "host": platform.node(), "pid": os.getpid()}


def _valid_result(res, n_texts: int) -> str:
    """Why ``res`` is not a cell result ('' when it is one)."""
    if not isinstance(res, dict):
        return "not an object"
    num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)  # noqa: E731
    for k in ("bits_per_weight", "compile_seconds", "eval_seconds", "peak_rss_bytes"):
        if not num(res.get(k)) or res[k] < 0:
            return f"field {k!r} is {res.get(k)!r}"
    for k in ("perplexity", "tokens"):
        v = res.get(k)
        if not (isinstance(v, list) and len(v) == n_texts and all(num(x) and x > 0 for x in v)):
            return f"field {k!r} is not {n_texts} positive numbers"
    return ""


# ---------------------------------------------------------------- the cache

def _cache_path(out: Path, key: str) -> Path:
    return out / CACHE_DIR / f"{key}.json"


def read_cached(out: Path, key: str, n_texts: int) -> tuple[Optional[dict], str]:
    """``(result, '')`` of a valid cache entry, ``(None, why)`` of a damaged one, ``(None, '')``
    when there is none."""
    p = _cache_path(out, key)
    if not p.exists():
        return None, ""
    try:
        entry = json.loads(p.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return None, f"unreadable ({type(e).__name__})"
    if not isinstance(entry, dict) or entry.get("schema") != CACHE_SCHEMA or entry.get("key") != key:
        return None, "wrong schema or key"
    why = _valid_result(entry.get("result"), n_texts)
    return (None, why) if why else (entry["result"], "")


def write_cached(out: Path, key: str, given: str, result: dict) -> None:
    entry = {"schema": CACHE_SCHEMA, "key": key, "recipe": given, "result": result}
    write_atomic(_cache_path(out, key), (json.dumps(entry, indent=1, sort_keys=True) + "\n").encode())


# ---------------------------------------------------------------- Ray

def _probe_address(address: str) -> None:
    """A ``host:port`` address that nothing answers at is refused at once (Ray itself retries
    for minutes); ``auto`` is left to Ray, which says when it finds no cluster."""
    import socket
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        host, port = hostport, "6379"
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise SweepError(f"--address {address}: no Ray cluster answers at {host}:{port} "
                         f"({e.strerror or e}); start one with `ray start --head`, or omit --address "
                         f"for a local Ray") from None


def start_ray(workers: Optional[int] = None, address: Optional[str] = None, cpus_per_task: int = 1) -> bool:
    """Connect to Ray: the one initialized in this process, else ``address`` (a cluster),
    else a new local Ray of ``workers x cpus_per_task`` CPUs.  True when this call started
    or joined it (the caller then shuts it down)."""
    import logging

    import ray
    if ray.is_initialized():
        return False
    if address:
        _probe_address(address)
    kw = dict(logging_level=logging.WARNING, include_dashboard=False, log_to_driver=True)
    try:
        if address:
            ray.init(address=address, **kw)
        else:
            n = workers or max(1, (os.cpu_count() or 1) // cpus_per_task)
            ray.init(num_cpus=n * cpus_per_task, object_store_memory=OBJECT_STORE, **kw)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"--address {address}: cannot join the Ray cluster" if address else "cannot start a local Ray"
        raise SweepError(f"{where} ({' '.join(str(e).split())[:300]})") from None
    return True


def _check_feasible(plan: Plan) -> None:
    import ray

    from plait.ir.limits import format_bytes
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if not any(r.get("CPU", 0) >= plan.cpus_per_task and r.get("memory", 0) >= plan.estimate for r in nodes):
        best = max((r.get("memory", 0) for r in nodes), default=0)
        raise SweepError(f"no Ray node can run a cell: each needs {plan.cpus_per_task} CPU and "
                         f"{format_bytes(plan.estimate)} of memory (the compile's estimate); the largest "
                         f"node offers {format_bytes(best)} (give Ray more memory, or a smaller object store)")


def _run_on_ray(plan: Plan, todo: list[Cell], note: Callable[[str], None]) -> dict:
    """Run ``todo`` as Ray tasks; each result is cached as it arrives.  Ray is joined (and
    the cluster checked) before anything is written."""
    import ray
    started = start_ray(plan.workers, plan.address, plan.cpus_per_task)
    refs: dict = {}
    try:
        _check_feasible(plan)
        plan.out.mkdir(parents=True, exist_ok=True)
        (plan.out / CACHE_DIR).mkdir(exist_ok=True)
        _remove_stale_scratch(plan.out)
        _remove_stale_scratch(plan.out / CACHE_DIR)
        cpus = int(ray.cluster_resources().get("CPU", 0))
        note(f"sweep: {len(todo)} cell{'s' * (len(todo) != 1)} to compute on Ray "
             f"({plan.address or 'local'}, {cpus} CPU{'s' * (cpus != 1)}, {plan.cpus_per_task} per cell)")
        task = ray.remote(run_cell)
        texts = ray.put([t.ids for t in plan.texts])
        cal = next((c.calibration for c in todo if c.calibration), None)
        cal = ray.put(cal) if cal is not None else None
        for c in todo:
            ref = task.options(num_cpus=plan.cpus_per_task, memory=plan.estimate, max_retries=1,
                               name=f"plait-sweep {c.given}").remote(
                plan.model, c.recipe.to_dict(), texts, cal if c.calibration else None,
                plan.settings["max_tokens"], plan.settings["window"], plan.cpus_per_task)
            refs[ref] = c
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                c = refs.pop(ref)
                try:
                    res = ray.get(ref)
                except ray.exceptions.RayError as e:      # the worker died (memory), the node left ...
                    res = {"error": f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"}
                _finish(plan, c, res, note)
        return {"address": plan.address or "local", "cpus": cpus, "cpus_per_task": plan.cpus_per_task}
    finally:
        for ref in refs:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


def _finish(plan: Plan, c: Cell, res: dict, note) -> None:
    why = "" if "error" in res else _valid_result(res, len(plan.texts))
    if why:
        res = {"error": f"internal: a malformed cell result ({why})"}
    c.result, c.cached = res, False
    if "error" in res:
        note(f"sweep: {c.given} failed: {res['error']}")
        return
    write_cached(plan.out, c.key, c.given, res)
    note(f"sweep: {c.given} done (compile {res['compile_seconds']:.1f} s, eval {res['eval_seconds']:.1f} s)")


# ---------------------------------------------------------------- the sweep

def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_sweep(plan: Plan, note: Optional[Callable[[str], None]] = None) -> dict:
    """Compute the cells the cache lacks, then write the table, the JSON and the plot;
    returns the JSON document (``rows``: one per cell, the baseline first).  ``note``
    gets one line per event (default: standard error)."""
    note = note or _stderr
    todo = []
    for c in plan.cells:
        res, why = read_cached(plan.out, c.key, len(plan.texts)) if plan.out.is_dir() else (None, "")
        if why:
            note(f"sweep: the cache entry of {c.given} is damaged ({why}); recomputing it")
        if res is None:
            todo.append(c)
        else:
            c.result, c.cached = res, True
    ray_info = None
    if todo:
        ray_info = _run_on_ray(plan, todo, note)
    else:
        note(f"sweep: all {len(plan.cells)} cells are in the cache")
    doc = sweep_document(plan, ray_info)
    write_outputs(plan.out, doc)
    return doc


def sweep(model, recipes, *, note: Optional[Callable[[str], None]] = None, **kw) -> dict:
    """:func:`plan_sweep` (keywords: its options) then :func:`run_sweep`."""
    return run_sweep(plan_sweep(model, recipes, **kw), note)


def sweep_document(plan: Plan, ray_info: Optional[dict]) -> dict:
    labels = [t.label for t in plan.texts]
    base = next((c.result for c in plan.cells if c.baseline), None)
    base = base if base and "error" not in base else None
    rows = []
    for c in plan.cells:
        r = c.result or {"error": "not run"}
        row = {"recipe": c.given, "name": c.recipe.name, "description": c.recipe.description,
               "baseline": c.baseline, "key": c.key, "cached": c.cached, "ok": "error" not in r,
               "error": r.get("error")}
        if row["ok"]:
            row.update({
                "bits_per_weight": r["bits_per_weight"],
                "perplexity": dict(zip(labels, r["perplexity"])),
                "tokens": dict(zip(labels, r["tokens"])),
                "ratio_to_fp32": {lab: (p / b if base else None)
                                  for lab, p, b in zip(labels, r["perplexity"], (base or {}).get("perplexity",
                                                                                                 [None] * len(labels)))},
                "compile_seconds": r["compile_seconds"], "eval_seconds": r["eval_seconds"],
                "peak_rss_bytes": r["peak_rss_bytes"], "peak_rss_scope": r.get("peak_rss_scope", "task"),
                "worker": {"host": r.get("host"), "pid": r.get("pid")}})
        else:
            row["traceback"] = r.get("traceback")
        rows.append(row)
    return {MARKER: SCHEMA, "model": plan.model, "settings": plan.settings,
            "texts": [{"label": t.label, "sha256": t.sha256, "tokens": len(t.ids)} for t in plan.texts],
            "baseline": BASELINE, "rows": rows, "ray": ray_info,
            "files": {"table": SWEEP_MD, "plot": SWEEP_PNG},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


# ---------------------------------------------------------------- table and plot

def _md_cell(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def format_table(doc: dict) -> str:
    from plait.ir.limits import format_bytes
    labels = [t["label"] for t in doc["texts"]]
    s = doc["settings"]
    head = ["recipe", "bits/weight"]
    for lab in labels:
        head += [f"ppl {lab}", "x fp32"]
    head += ["compile s", "eval s", "peak memory", "cached", "error"]
    out = [f"# plait sweep: {doc['model']}", "",
           f"Perplexity in {s['mode']} mode on the first {s['max_tokens']} tokens of each text "
           f"(windows of {s['window']}); `x fp32`: ratio to the fp32 row of this sweep; bits/weight: "
           f"linear layers, scales included.  Texts: "
           + ", ".join(f"{t['label']} ({t['tokens']} tokens)" for t in doc["texts"]) + ".", "",
           "| " + " | ".join(_md_cell(h) for h in head) + " |",
           "|" + "|".join(["---"] + ["---:"] * (len(head) - 3) + [":---:", "---"]) + "|"]
    for r in doc["rows"]:
        cells = [r["recipe"]]
        if r["ok"]:
            cells.append(f"{r['bits_per_weight']:.2f}")
            for lab in labels:
                ratio = r["ratio_to_fp32"][lab]
                cells += [f"{r['perplexity'][lab]:.4f}", "-" if ratio is None else f"{ratio:.4f}"]
            cells += [f"{r['compile_seconds']:.1f}", f"{r['eval_seconds']:.1f}", format_bytes(r["peak_rss_bytes"]),
                      "yes" if r["cached"] else "no", ""]
        else:
            cells += ["-"] * (1 + 2 * len(labels) + 3) + ["no", r["error"]]
        out.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return "\n".join(out) + "\n"


def plot_png(doc: dict) -> bytes:
    """Perplexity against bits per weight, one series per text, points labelled by recipe."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter
    fig = Figure(figsize=(7.5, 4.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ok = [r for r in doc["rows"] if r["ok"]]
    for t in doc["texts"]:
        pts = sorted((r["bits_per_weight"], r["perplexity"][t["label"]], r["recipe"]) for r in ok)
        if not pts:
            continue
        line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", linestyle="none", label=t["label"])
        for x, y, name in pts:
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8, color=line.get_color())
    bits = sorted({r["bits_per_weight"] for r in ok})
    if bits and bits[-1] >= 2 * bits[0]:            # 2 .. 32 bits: a log2 axis with round ticks
        ax.set_xscale("log", base=2)
        ticks = [b for b in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32) if bits[0] / 1.25 <= b <= bits[-1] * 1.25]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlim(bits[0] / 1.25, bits[-1] * 1.25)
    else:                                           # a narrow range (a float LM head dominates): linear
        ax.margins(x=0.15)
    ax.set_xlabel("bits per weight (linear layers, scales included)")
    ax.set_ylabel("perplexity")
    ax.set_title(f"plait sweep: {doc['model']}", fontsize=10)
    ax.grid(True, alpha=0.3)
    if ok:
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_outputs(out: Path, doc: dict) -> None:
    """``sweep.png``, ``sweep.md``, then ``sweep.json`` (what marks the directory), each atomically."""
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / SWEEP_PNG, plot_png(doc))
    write_atomic(out / SWEEP_MD, format_table(doc).encode())
    write_atomic(out / SWEEP_JSON, (json.dumps(doc, indent=2) + "\n").encode())
