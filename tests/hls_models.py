"""Test helper (not a test module): SmolLM2-135M compiled with a recipe, cached.

Compiling SmolLM2 takes ~40 s and ~1.5 GB; the compiled graph + weights are saved
once under ``cache_dir()/hls/models/smollm2-<recipe>-<key>`` (``plait.ir.serialize``)
and loaded from there afterwards.  The key hashes the recipe file, the calibration
length and the sources of ``plait.passes`` / ``plait.frontend`` and the weight formats of
``plait.ir.numerics`` (common, dsp, lut, pack),
so a changed compiler recompiles.  Lives in ``tests/``: ``plait.hls`` itself never imports
``plait.passes`` or ``plait.frontend`` (DESIGN.md, layers of the code).
"""
from __future__ import annotations

import fcntl
import hashlib
import shutil
from pathlib import Path

from plait.ir.serialize import load, save
from plait.ir.cache import cache_dir

ROOT = Path(__file__).resolve().parents[1]
CALIB_TOKENS = 512


def _key(recipe: str) -> str:
    from plait.passes import load_recipe
    h = hashlib.sha256(f"{recipe}\0{CALIB_TOKENS}\0".encode())
    r = load_recipe(recipe)
    h.update(repr(r).encode())
    files = [f for d in ("passes", "frontend") for f in sorted((ROOT / d).rglob("*.py"))]
    files += sorted((ROOT / "passes").rglob("*.toml"))
    files += [ROOT / "ir" / "numerics" / f"{m}.py" for m in ("common", "dsp", "lut", "pack")]
    for f in files:
        h.update(f.relative_to(ROOT).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def compiled_smollm2(recipe: str):
    """``(graph, weights)`` of SmolLM2-135M-Instruct compiled with ``recipe`` (cached)."""
    d = cache_dir() / "hls" / "models" / f"smollm2-{recipe}-{_key(recipe)}"
    if not (d / "done").exists():
        d.parent.mkdir(parents=True, exist_ok=True)
        with open(d.parent / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (d / "done").exists():
                from plait.frontend import load_model, load_tokenizer
                from plait.passes import load_recipe, run_recipe
                from plait.passes.textdata import default_text
                g, w = load_model("smollm2", progress=False)
                r = load_recipe(recipe)
                cal = None
                if r.needs_calibration:
                    cal = {"ids": load_tokenizer("smollm2").encode(default_text())[-CALIB_TOKENS:]}
                g, w, _ = run_recipe(g, w, r, calibration=cal)
                tmp = d.with_name(d.name + ".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                save(g, w, tmp)
                (tmp / "done").write_text("ok\n")
                shutil.rmtree(d, ignore_errors=True)
                tmp.replace(d)
    return load(d)
