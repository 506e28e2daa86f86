"""`Session(artifact)`: generate text from a compiled artifact.

Devices (DESIGN.md): ``fpga`` (XRT), ``sim`` (Verilator), ``cuda``, ``cpu``.  This
release runs on the CPU: float mode (``exact=False``, the reference interpreter in
float32 numpy, the accuracy reference) or exact mode (``exact=True``:
:class:`plait.ir.exact.ExactInterpreter`, the integers of ``plait.ir.numerics``
that the engines compute); asking for a device that is not available raises
:class:`DeviceUnavailable` naming it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Optional, Union

import numpy as np

from plait.ir import Interpreter
from plait.ir.exact import ExactInterpreter
from plait.ir.limits import LimitError, check_memory

from .artifact import WEIGHTS_FILE, Artifact, ArtifactError, load_artifact, read_manifest

DEVICES = ("cpu", "cuda", "sim", "fpga")


class DeviceUnavailable(RuntimeError):
    pass


def context_length(manifest_or_meta: dict) -> int:
    """The model's context length (``max_position_embeddings``, or its sliding window)."""
    meta = manifest_or_meta.get("graph", {}).get("meta", manifest_or_meta)
    return int(meta.get("max_position") or 0)


def estimate_run_memory(manifest: dict, tokens: int, *, exact: bool = False) -> int:
    """Bytes a run of ``tokens`` positions needs, estimated from the manifest alone:
    the weight file, the float copy the interpreter works from (float mode), the KV
    cache, and one prefill's activations (the logits and the attention scores dominate)."""
    meta = manifest["graph"]["meta"]
    wbytes = int(manifest["files"].get(WEIGHTS_FILE, {}).get("bytes", 0))
    n_params = int(meta.get("n_params", 0))
    hidden, inter = int(meta.get("hidden", 0)), int(meta.get("intermediate", 0))
    layers, heads = int(meta.get("n_layers", 0)), int(meta.get("n_heads", 0))
    kv_dim = int(meta.get("n_kv_heads", 0)) * int(meta.get("head_dim", 0))
    vocab = int(meta.get("vocab", 0))
    kv = layers * 2 * kv_dim * tokens * (1 if exact else 4)
    act = tokens * (4 * hidden + 3 * inter + vocab) * 4 + heads * tokens * tokens * 4 * 2
    return wbytes + (0 if exact else 4 * n_params) + kv + act + (256 << 20)


class Session:
    def __init__(self, artifact: Union[str, Path, Artifact], device: str = "cpu", *, exact: bool = False):
        if device not in DEVICES:
            raise DeviceUnavailable(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
        if device != "cpu":
            raise DeviceUnavailable(f"device {device!r} is not available in this build of plait; "
                                    f"use device='cpu' (the reference interpreter)")
        if not isinstance(artifact, Artifact):
            manifest = read_manifest(artifact)
            if not manifest["shape_only"]:
                check_memory(estimate_run_memory(manifest, min(context_length(manifest) or 2048, 2048),
                                                 exact=exact), f"running {artifact}")
            artifact = load_artifact(artifact)
        self.artifact = artifact
        if self.artifact.shape_only:
            raise ArtifactError(f"{self.artifact.path}: a shape-only plan has no weights and cannot run; "
                                f"compile without --shape-only")
        self.device = device
        self.exact = exact
        cls = ExactInterpreter if exact else Interpreter
        self.interp = cls(self.artifact.graph, self.artifact.weights)

    @property
    def tokenizer(self):
        return self.artifact.tokenizer

    @property
    def context_length(self) -> int:
        return context_length(self.artifact.graph.meta)

    def fit_context(self, ids: list[int], max_new_tokens: int, *, truncate: bool = False) -> list[int]:
        """``ids`` checked against the context length: a prompt that, with ``max_new_tokens``,
        does not fit is refused (:class:`LimitError`), or with ``truncate`` keeps its last tokens."""
        ctx = self.context_length
        if not ids:
            raise LimitError("the prompt encodes to no tokens; give a non-empty prompt")
        if not ctx or len(ids) + max_new_tokens <= ctx:
            return ids
        room = ctx - max_new_tokens
        if truncate and room >= 1:
            return ids[-room:]
        why = (f"the prompt is {len(ids)} tokens and up to {max_new_tokens} new tokens were asked for, "
               f"but the model's context is {ctx} tokens")
        fix = ("lower --max-new-tokens" if room < 1 else
               "shorten the prompt, lower --max-new-tokens, or pass --truncate (keeps the prompt's last "
               f"{room} tokens)")
        raise LimitError(f"{why}; {fix}")

    def encode_chat(self, prompt: str, chat: bool = True) -> list[int]:
        tok = self.tokenizer
        if chat and getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                          tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids)
        return tok.encode(prompt)

    def eos_ids(self) -> set[int]:
        tok = self.tokenizer
        ids = {tok.eos_token_id} if tok.eos_token_id is not None else set()
        for t in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
            i = tok.convert_tokens_to_ids(t)
            if isinstance(i, int) and i != tok.unk_token_id and i is not None:
                ids.add(i)
        return ids

    def generate_ids(self, prompt_ids, max_new_tokens: int = 64) -> Iterator[int]:
        """Greedy decoding; yields token ids as they are produced (prefill, then decode)."""
        self.interp.reset()
        eos = self.eos_ids()
        logits = self.interp.logits(np.asarray(prompt_ids, np.int64)[None, :])
        for _ in range(max_new_tokens):
            nxt = int(np.argmax(logits[0, -1]))
            if nxt in eos:
                return
            yield nxt
            logits = self.interp.logits(np.array([[nxt]], np.int64))

    def generate(self, prompt: str, max_new_tokens: int = 64, *, chat: bool = True,
                 on_text: Optional[Callable[[str], None]] = None, truncate: bool = False) -> str:
        """Generate an answer; ``on_text`` receives each new piece of text as it is decoded.
        A prompt that does not fit the context with ``max_new_tokens`` is refused, or with
        ``truncate`` keeps its last tokens (:meth:`fit_context`)."""
        if max_new_tokens < 1:
            raise LimitError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        tok = self.tokenizer
        out: list[int] = []
        shown = ""
        ids = self.fit_context(self.encode_chat(prompt, chat), max_new_tokens, truncate=truncate)
        for t in self.generate_ids(ids, max_new_tokens):
            out.append(t)
            text = tok.decode(out, skip_special_tokens=True)
            if on_text is not None and len(text) > len(shown) and not text.endswith("\ufffd"):
                on_text(text[len(shown):])
                shown = text
        text = tok.decode(out, skip_special_tokens=True)
        if on_text is not None and len(text) > len(shown):
            on_text(text[len(shown):])
        return text
