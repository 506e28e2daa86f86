"""The compiled artifact: a versioned directory that a Session (or `plait run`) loads.

Layout::

    OUT/
      manifest.json          schema version, model, recipe, tool versions, file hashes
      graph.plait            the IR graph (text, see plait.ir.text)
      weights.safetensors    every array the graph names (absent for shape-only plans)
      tokenizer/             the model's tokenizer (tokenizer.json, chat template ...)

Every file listed in the manifest carries a SHA-256; :func:`load_artifact`
refuses an artifact whose schema version is unknown, whose files are missing or
whose contents do not match their hashes, and says which file and why.
"""
from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from plait.ir import Graph, WeightStore, verify
from plait.ir.serialize import GRAPH_FILE, WEIGHTS_FILE, load as load_graph, save as save_graph

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
TOKENIZER_DIR = "tokenizer"


class ArtifactError(RuntimeError):
    """A missing, corrupt or mismatched artifact; the message says which file and why."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def tool_versions() -> dict[str, str]:
    import numpy
    import plait
    out = {"plait": plait.__version__, "python": platform.python_version(), "numpy": numpy.__version__}
    for mod in ("torch", "transformers", "networkx", "safetensors"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return out


@dataclass
class Artifact:
    path: Path
    manifest: dict[str, Any]
    graph: Graph
    weights: WeightStore
    shape_only: bool = False
    _tokenizer: Any = field(default=None, repr=False)

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            tdir = self.path / TOKENIZER_DIR
            if not tdir.is_dir():
                raise ArtifactError(f"{self.path}: artifact has no tokenizer/ directory")
            from transformers import AutoTokenizer
            self._tokenizer = AutoTokenizer.from_pretrained(str(tdir), local_files_only=True)
        return self._tokenizer


def write_artifact(out: Path, graph: Graph, weights: WeightStore, *, model: str, recipe: dict,
                   recipe_text: str = "", tokenizer=None, extra: Optional[dict] = None) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in (MANIFEST, WEIGHTS_FILE):
        (out / stale).unlink(missing_ok=True)
    save_graph(graph, weights, out)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(out / TOKENIZER_DIR))
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": model,
        "recipe": recipe,
        "recipe_text": recipe_text,
        "shape_only": weights.shape_only or len(weights) == 0,
        "tools": tool_versions(),
        "graph": {"name": graph.name, "nodes": len(graph), "meta": graph.meta},
        "files": {str(p.relative_to(out)): {"sha256": _sha256(p), "bytes": p.stat().st_size} for p in files},
    }
    if extra:
        manifest.update(extra)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out


def read_manifest(path: Path) -> dict:
    path = Path(path)
    mf = path / MANIFEST
    if not path.is_dir():
        raise ArtifactError(f"{path}: not an artifact directory (run `plait compile` first)")
    if not mf.exists():
        raise ArtifactError(f"{path}: no {MANIFEST}; not a plait artifact or an interrupted compile")
    try:
        manifest = json.loads(mf.read_text())
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{mf}: corrupt manifest ({e})") from None
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ArtifactError(f"{mf}: schema version {version!r} is not supported "
                            f"(this plait reads version {SCHEMA_VERSION}); recompile the model")
    return manifest


def check_files(path: Path, manifest: dict) -> None:
    for rel, info in manifest.get("files", {}).items():
        p = Path(path) / rel
        if not p.exists():
            raise ArtifactError(f"{path}: file {rel} listed in the manifest is missing")
        if p.stat().st_size != info["bytes"] or _sha256(p) != info["sha256"]:
            raise ArtifactError(f"{path}: file {rel} does not match its hash in the manifest "
                                f"(corrupt or modified after compile)")
    for required in (GRAPH_FILE,):
        if required not in manifest.get("files", {}):
            raise ArtifactError(f"{path}: manifest lists no {required}")


def load_artifact(path, *, check: bool = True) -> Artifact:
    path = Path(path)
    manifest = read_manifest(path)
    if check:
        check_files(path, manifest)
    graph, weights = load_graph(path)
    shape_only = bool(manifest.get("shape_only"))
    if not shape_only:
        try:
            verify(graph, weights)
        except ValueError as e:
            raise ArtifactError(f"{path}: graph and weights do not match: {e}") from None
    return Artifact(path, manifest, graph, weights, shape_only)
