"""Compiler passes: the pass manager, recipes and the transformations.

* :mod:`.framework`    -- errors, ``Option``, ``Pass``, the registry, ``PassContext``.
* :mod:`.runner`       -- ``PassManager`` (timing, debug verify) and its report.
* :mod:`.dump`         -- dumps of every intermediate graph (weight deltas), resume.
* :mod:`.select`       -- the linear weights a pass works on (include/exclude globs).
* :mod:`.recipe`       -- TOML recipes -> validated pipelines; ``load_recipe``,
  ``run_recipe``; bundled recipes in ``passes/recipes/``.
* :mod:`.canonicalize` -- ``dce``, ``cse``, ``fuse_swiglu``, ``fuse_linear_bias``,
  ``canonicalize``.
* :mod:`.calibrate`    -- ``calibrate``: per-feature input-activation statistics of
  every linear (runs the interpreter on calibration token ids from the context).
* :mod:`.sequential`   -- the layer-by-layer calibration engine (each group of linears
  on the outputs of the compressed layers before it) under GPTQ, SparseGPT, AWQ and
  mixed precision.
* :mod:`.obs`          -- GPTQ and SparseGPT: Optimal-Brain-Surgeon column sweeps.
* :mod:`.sparsify`     -- ``sparsify``: magnitude, Wanda or SparseGPT pruning (2:4, N:16,
  unstructured).
* :mod:`.quantize`     -- ``quantize``: per-group weight quantization, RTN or GPTQ (and a
  mixed-precision plan).
* :mod:`.awq`          -- ``awq``: activation-aware weight scales searched per layer, folded
  offline.
* :mod:`.mixed`        -- ``mixed_precision``: per-layer bits under an average-bits budget.
* :mod:`.rotate`       -- ``rotate``: QuaRot-style Hadamard rotations of the residual
  stream and the attention heads, folded offline into the weights (run it first).
* :mod:`.smooth`       -- ``smooth``: SmoothQuant migration of activation outliers into
  the weights, folded offline (needs ``calibrate``).
* :mod:`.actquant`     -- ``quantize_act``: int8 activations (per-token dynamic or
  calibrated static) at every linear's input, recorded in the IR types.
* :mod:`.mapping`      -- ``map_engines``: every linear layer to the DSP chain or the
  LUT core of a hardware target (:mod:`plait.ir.target`), with predicted cycles.
* :mod:`.pack`         -- ``pack``: every quantized linear weight in its engine's packed
  format (:mod:`plait.ir.numerics.pack`) plus the exact-mode constants (E, bias).
"""
from .framework import (  # noqa: F401
    PASSES, Option, Pass, PassContext, PassError, PassOptionError, get_pass, make_pass, register_pass,
)
from .runner import PassManager, PassResult, PipelineReport  # noqa: F401
from .select import linear_weights  # noqa: F401
from . import actquant, awq, calibrate, canonicalize, mapping, mixed, pack, quantize, rotate, smooth, sparsify  # noqa: F401  (register the passes)
from .recipe import Recipe, RecipeError, list_recipes, load_recipe, run_recipe  # noqa: F401
