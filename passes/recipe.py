"""Recipes: pipelines of passes declared in a small TOML file.

::

    # passes/recipes/w4-sparse24.toml
    [recipe]
    name = "w4-sparse24"
    description = "2:4 magnitude pruning, then 4-bit RTN (g128), lm_head kept in float"

    [[passes]]
    pass = "canonicalize"

    [[passes]]
    pass = "sparsify"
    pattern = "2:4"
    exclude = ["lm_head*"]

    [[passes]]
    pass = "quantize"
    bits = 4
    group_size = 128
    fallback_group_sizes = [64, 32, 16]
    exclude = ["lm_head*"]

Top-level keys: ``[recipe]`` (``name``, ``description``; the name defaults to the
file's stem; both may also be written at the top level) and ``[[passes]]``, one table per pass in order: ``pass`` names a
registered pass (:data:`plait.passes.framework.PASSES`) and the other keys are that
pass's options.  Every error (TOML syntax, unknown key, unknown pass, bad value)
raises :class:`RecipeError` naming the file and the key, e.g.
``recipe w4.toml: passes[3].bits (pass 'quantize'): scheme 'sym' supports 2, 3, 4, 8 bits, got 5``
(``passes[i]`` counts the ``[[passes]]`` tables from 1).

Layer selection: passes that act on linear weights take ``include`` and
``exclude`` lists of globs (``fnmatch``: ``*`` also matches dots) matched against
the weight's name (``model.layers.3.mlp.up_proj.weight``) and the module path
of the linear that uses it (``lm_head``).  ``include = ["*.mlp.*"]`` quantizes only
the MLPs; two quantize passes make mixed precision (the first one that quantizes
a weight wins).

:func:`load_recipe` takes a path or the name of a bundled recipe
(``passes/recipes/<name>.toml``; :func:`list_recipes`).  :func:`run_recipe` runs
one on a graph and returns ``(graph, weights, report)`` without touching its inputs.
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from .framework import PASSES, Pass, PassError, PassOptionError, get_pass
from .runner import PassManager

RECIPE_DIR = Path(__file__).resolve().parent / "recipes"
TOP_KEYS = ("recipe", "name", "description", "passes")
META_KEYS = ("name", "description")


class RecipeError(PassError):
    """A recipe that cannot be loaded; the message names the file and the key."""


@dataclass
class Recipe:
    name: str
    passes: list[dict]                  # [{"pass": name, option: value, ...}, ...] as written
    description: str = ""
    source: str = "<dict>"              # file the recipe came from
    text: str = ""                      # its TOML text (recorded in artifacts)
    pipeline: list[Pass] = field(default_factory=list, repr=False)   # validated pass instances

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>", text: str = "",
                  default_name: str = "recipe") -> "Recipe":
        def err(key: str, msg: str) -> RecipeError:
            return RecipeError(f"recipe {source}: {key}: {msg}")

        if not isinstance(data, dict):
            raise err("<top>", f"expected a table, got {type(data).__name__}")
        for k in data:
            if k not in TOP_KEYS:
                raise err(k, f"unknown top-level key (allowed: {', '.join(TOP_KEYS)})")
        meta = data.get("recipe", {})
        if not isinstance(meta, dict):
            raise err("recipe", "must be a table ([recipe])")
        for k in META_KEYS:  # flat form (what to_dict writes): name/description at the top
            if k in data:
                if k in meta:
                    raise err(k, f"given twice (top level and recipe.{k})")
                meta = {**meta, k: data[k]}
        for k, v in meta.items():
            if k not in META_KEYS:
                raise err(f"recipe.{k}", f"unknown key (allowed: {', '.join(META_KEYS)})")
            if not isinstance(v, str):
                raise err(k if k in data else f"recipe.{k}", f"must be a string, got {type(v).__name__}")
        if "passes" not in data:
            raise err("passes", "missing: declare the pipeline with [[passes]] tables "
                                "(an empty pipeline is `passes = []`)")
        passes = data["passes"]
        if not isinstance(passes, list):
            raise err("passes", "must be an array of tables ([[passes]])")
        specs, pipeline = [], []
        for i, entry in enumerate(passes, start=1):
            key = f"passes[{i}]"
            if not isinstance(entry, dict):
                raise err(key, f"must be a table, got {type(entry).__name__}")
            if "pass" not in entry:
                raise err(f"{key}.pass", "missing: name the pass (registered: "
                                         f"{', '.join(sorted(PASSES))})")
            name = entry["pass"]
            if not isinstance(name, str) or name not in PASSES:
                raise err(f"{key}.pass", f"unknown pass {name!r} (registered: {', '.join(sorted(PASSES))})")
            opts = {k: v for k, v in entry.items() if k != "pass"}
            try:
                pipeline.append(get_pass(name)(**opts))
            except PassOptionError as e:
                raise err(f"{key}.{e.key}" if e.key else key, f"(pass {name!r}) {e.msg}") from None
            specs.append(dict(entry))
        return cls(meta.get("name", default_name), specs, meta.get("description", ""), source, text, pipeline)

    @classmethod
    def from_file(cls, path) -> "Recipe":
        path = Path(path)
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as e:
            raise RecipeError(f"recipe {path}: cannot read it ({e.strerror or e})") from None
        except UnicodeDecodeError as e:
            raise RecipeError(f"recipe {path}: not a TOML text file (byte {e.start} is not UTF-8)") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise RecipeError(f"recipe {path}: not valid TOML: {e}") from None
        return cls.from_dict(data, str(path), text, default_name=path.stem)

    def to_dict(self) -> dict:
        """Flat JSON form ``{"name", "description", "passes"}`` (recorded in artifact
        manifests); :func:`load_recipe` accepts it back."""
        d = {"name": self.name, "description": self.description, "passes": [dict(p) for p in self.passes]}
        return json.loads(json.dumps(d))

    @property
    def needs_calibration(self) -> bool:
        """True if a pass of this recipe runs the model on calibration tokens
        (the caller must hand ``calibration={"ids": ...}`` to :func:`run_recipe`)."""
        return any(getattr(p, "NEEDS_CALIBRATION", False) for p in self.pipeline)

    def build(self) -> list[Pass]:
        """Fresh pass instances of this recipe's pipeline."""
        return [type(p)(**p.options) for p in self.pipeline]

    def manager(self, **kw) -> PassManager:
        return PassManager(self.build(), recipe_name=self.name, **kw)


def list_recipes() -> list[str]:
    """Names of the bundled recipes."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.toml"))


def load_recipe(path_or_name: Union[str, Path, Recipe, dict]) -> Recipe:
    """A recipe from a TOML path, a bundled recipe name (``"default"``, ``"w4g128"`` ...),
    a dict (same layout as the TOML) or a :class:`Recipe` (returned as is)."""
    if isinstance(path_or_name, Recipe):
        return path_or_name
    if isinstance(path_or_name, dict):
        return Recipe.from_dict(path_or_name)
    p = Path(path_or_name)
    if p.is_file():
        return Recipe.from_file(p)
    s = str(path_or_name)
    looks_like_path = s.endswith(".toml") or "/" in s or "\\" in s
    if not looks_like_path:
        bundled = RECIPE_DIR / f"{s}.toml"
        if bundled.is_file():
            return Recipe.from_file(bundled)
        raise RecipeError(f"recipe {s!r}: no such file and no bundled recipe of that name "
                          f"(bundled: {', '.join(list_recipes())})")
    if p.is_dir():
        raise RecipeError(f"recipe {s}: is a directory, expected a TOML file")
    raise RecipeError(f"recipe {s}: no such file")


def run_recipe(graph, weights, recipe, dump_dir=None, *, resume_from=None, debug: Optional[bool] = None,
               progress: Optional[bool] = None, print_ir: bool = False, dump_weights: bool = True,
               calibration: Optional[dict] = None) -> tuple:
    """Run ``recipe`` (anything :func:`load_recipe` takes) on copies of ``graph``
    and ``weights`` (structural copies; no array is copied) and return
    ``(graph, weights, report)``; the report lists every pass, whether it changed
    the graph and its time (:class:`~plait.passes.runner.PipelineReport`).
    ``calibration`` (``{"ids": token ids}``) is handed to passes that run the
    model (``calibrate``); see :attr:`Recipe.needs_calibration`."""
    r = load_recipe(recipe)
    pm = r.manager(dump_dir=dump_dir, resume_from=resume_from, debug=debug, progress=progress,
                   print_ir=print_ir, dump_weights=dump_weights, calibration=calibration)
    g, w = graph.copy(), weights.copy()
    return pm.run(g, w)
