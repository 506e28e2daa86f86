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

from .artifact import Artifact, ArtifactError, load_artifact

DEVICES = ("cpu", "cuda", "sim", "fpga")


class DeviceUnavailable(RuntimeError):
    pass


class Session:
    def __init__(self, artifact: Union[str, Path, Artifact], device: str = "cpu", *, exact: bool = False):
        if device not in DEVICES:
            raise DeviceUnavailable(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
        if device != "cpu":
            raise DeviceUnavailable(f"device {device!r} is not available in this build of plait; "
                                    f"use device='cpu' (the reference interpreter)")
        self.artifact = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
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
                 on_text: Optional[Callable[[str], None]] = None) -> str:
        """Generate an answer; ``on_text`` receives each new piece of text as it is decoded."""
        tok = self.tokenizer
        out: list[int] = []
        shown = ""
        for t in self.generate_ids(self.encode_chat(prompt, chat), max_new_tokens):
            out.append(t)
            text = tok.decode(out, skip_special_tokens=True)
            if on_text is not None and len(text) > len(shown) and not text.endswith("\ufffd"):
                on_text(text[len(shown):])
                shown = text
        text = tok.decode(out, skip_special_tokens=True)
        if on_text is not None and len(text) > len(shown):
            on_text(text[len(shown):])
        return text
