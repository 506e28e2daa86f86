"""`Session(artifact)`: generate text from a compiled artifact.

::

    with Session("out/sm-w8a8", device="auto", exact=True) as s:
        for piece in s.generate("What is 2+2?", max_new_tokens=32):
            print(piece, end="", flush=True)
        s.complete("Name a colour.", temperature=0.7, top_p=0.9, seed=1, stop=["\\n"])
        s.complete_batch(["a", "b"])                     # one KV cache per prompt
        cache = s.new_cache()
        logits = s.forward([1, 2, 3], cache)             # [3, vocab]; the cache advances

Devices (:mod:`plait.runtime.devices`): ``cpu`` (float mode, or ``exact=True``: the
integers of ``plait.ir.numerics`` that the engines compute),
``cuda``, ``sim``, ``fpga``; ``device="auto"`` takes the first available of fpga,
cuda, cpu and :attr:`Session.device_note` says why the others were passed over.
Float mode on the cpu runs the fast decoder (:mod:`plait.runtime.fast`: the artifact's
low-bit weights, one C call per decoded token) where the graph is a supported decoder,
and the graph runner (:class:`plait.ir.Interpreter`, the accuracy reference) otherwise or
with ``fast=False``; :attr:`Session.runner` names the one in use and
:attr:`Session.runner_note` why.  ``act_bits=8`` runs the fast decoder's kernels on int8
activations per weight group (as llama.cpp's Q8 activation blocks; faster, within ~1 % of
float on the linears' outputs) instead of its default 16 bits.
Decoding is the one loop of :func:`plait.ir.interpreter.decode`: greedy by default,
temperature / top-k / top-p sampling with a seed (:class:`Sampling`), stop tokens (the
tokenizer's end-of-turn tokens) and stop strings, and the context length checked
before anything runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np

from plait.ir.interpreter import decode
from plait.ir.limits import LimitError, check_memory

from .artifact import WEIGHTS_FILE, Artifact, ArtifactError, load_artifact, read_manifest
from .devices import DEVICES, DeviceUnavailable, pick_device  # noqa: F401  (re-exported)


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


@dataclass(frozen=True)
class Sampling:
    """How the next token is picked: greedy (``temperature == 0``, the default), or sampled
    from ``softmax(logits / temperature)`` restricted to the ``top_k`` most likely tokens
    (0: all) and to the smallest set whose probability reaches ``top_p``; ``seed`` makes
    sampling repeatable."""
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: Optional[int] = None

    def __post_init__(self):
        if not (self.temperature >= 0.0):
            raise LimitError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise LimitError(f"top_k must be >= 0, got {self.top_k}")
        if not (0.0 < self.top_p <= 1.0):
            raise LimitError(f"top_p must be in (0, 1], got {self.top_p}")

    def picker(self):
        """A ``logits row -> token id`` function (with its own random stream)."""
        if self.temperature == 0.0:
            return lambda row: int(np.argmax(row))
        rng = np.random.default_rng(self.seed)

        def pick(row: np.ndarray) -> int:
            z = np.asarray(row, np.float64) / self.temperature
            order = np.argsort(-z, kind="stable")
            if self.top_k:
                order = order[:self.top_k]
            p = np.exp(z[order] - z[order[0]])
            p /= p.sum()
            if self.top_p < 1.0:
                keep = int(np.searchsorted(np.cumsum(p), self.top_p) + 1)
                order, p = order[:keep], p[:keep] / p[:keep].sum()
            return int(order[rng.choice(len(order), p=p)])
        return pick


class KVCache:
    """One sequence's state on a Session: its KV cache and how many positions it holds.
    Create it with :meth:`Session.new_cache`; :meth:`Session.forward` advances it."""

    def __init__(self, session: "Session"):
        self._owner = id(session)
        self._state = None
        self.length = 0

    def clear(self) -> None:
        self._state, self.length = None, 0


class Session:
    """A compiled artifact opened on a device (see the module doc)."""

    def __init__(self, artifact: Union[str, Path, Artifact], device: str = "auto", *, exact: bool = False,
                 fast: Optional[bool] = None, act_bits: Optional[int] = None):
        if act_bits is not None:
            from .fast import check_act_bits
            check_act_bits(act_bits)
            if exact or fast is False:
                other = "exact mode runs the numerics' integers" if exact else "fast=False runs the graph runner"
                raise ValueError(f"act_bits={act_bits} is an option of the fast decoder (float mode); {other}")
        choice = pick_device(device)
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
        dev = choice.device
        mapped = (self.artifact.graph.meta.get("engine_map") or {}).get("target")
        if dev.hardware and mapped and mapped != dev.hardware:
            raise ArtifactError(f"{self.artifact.path}: compiled for target {mapped!r}, but the {dev.name} "
                                f"device is built for {dev.hardware!r}; recompile with map_engines "
                                f"target = \"{dev.hardware}\"")
        self.device = dev.name
        self.device_note = choice.describe()
        self._device = dev
        self.exact = exact
        self.interp = dev.runner(self.artifact.graph, self.artifact.weights, exact=exact, fast=fast,
                                 act_bits=act_bits)
        #: ``"fast"``, ``"graph"`` or ``"exact"``: what runs the model; ``runner_note`` says why
        self.runner = "exact" if exact else getattr(self.interp, "kind", "graph")
        self.runner_note = dev.runner_note
        self._cache = self.new_cache()

    # ------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Release the device and the prepared weights; the Session cannot be used after."""
        if self._device is not None:
            self._device.close()
        self._device = None
        self.interp = None

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _live(self):
        if self.interp is None:
            raise RuntimeError("this Session is closed")
        return self.interp

    # ------------------------------------------------------------ tokens
    @property
    def tokenizer(self):
        return self.artifact.tokenizer

    @property
    def context_length(self) -> int:
        return context_length(self.artifact.graph.meta)

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

    # ------------------------------------------------------------ the model
    def new_cache(self) -> KVCache:
        """An empty sequence (KV cache) for :meth:`forward`."""
        return KVCache(self)

    def forward(self, token_ids: Sequence[int], kv_cache: Optional[KVCache] = None, *,
                last_only: bool = False) -> np.ndarray:
        """Logits ``[len(token_ids), vocab]`` of the next positions of ``kv_cache``'s sequence
        (the Session's own sequence when omitted); the cache advances by ``len(token_ids)``.
        ``last_only``: only the last position's logits, ``[1, vocab]`` (what decoding needs;
        the fast decoder then skips the LM head of the other positions)."""
        interp = self._live()
        cache = self._cache if kv_cache is None else kv_cache
        if cache._owner != id(self):
            raise ValueError("this KV cache belongs to another Session")
        ids = np.asarray(token_ids, np.int64).reshape(-1)
        if ids.size == 0:
            raise LimitError("forward() needs at least one token")
        ctx = self.context_length
        if ctx and cache.length + ids.size > ctx:
            raise LimitError(f"the sequence would reach {cache.length + ids.size} positions; the model's "
                             f"context is {ctx}")
        interp.load_cache_state(cache._state)
        if getattr(interp, "kind", "") == "fast":
            logits = interp.logits(ids[None, :], last_only=last_only)[0]
        else:
            logits = interp.logits(ids[None, :])[0]
            logits = logits[-1:] if last_only else logits
        cache._state = interp.cache_state()
        cache.length += int(ids.size)
        return logits

    def generate_ids(self, prompt_ids: Sequence[int], max_new_tokens: int = 64, *,
                     sampling: Sampling = Sampling(), stop_ids: Optional[set] = None,
                     kv_cache: Optional[KVCache] = None) -> Iterator[int]:
        """New token ids, as they are produced (prefill, then one token per step) on a fresh
        sequence (or ``kv_cache``, continued); ends at a stop token (default: the tokenizer's
        end-of-turn tokens) or after ``max_new_tokens``."""
        if max_new_tokens < 1:
            raise LimitError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        cache = kv_cache if kv_cache is not None else self.new_cache()
        ctx = self.context_length
        if ctx and cache.length + len(prompt_ids) + max_new_tokens > ctx:
            raise LimitError(f"{cache.length + len(prompt_ids)} positions with up to {max_new_tokens} new "
                             f"tokens exceed the model's context of {ctx}")
        stops = self.eos_ids() if stop_ids is None else set(stop_ids)
        return decode(lambda ids: self.forward(ids, cache, last_only=True)[-1], list(prompt_ids), max_new_tokens,
                      pick=sampling.picker(), stop_ids=stops)

    def generate(self, prompt: str, max_new_tokens: int = 64, *, chat: bool = True, truncate: bool = False,
                 temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0, seed: Optional[int] = None,
                 stop: Sequence[str] = ()) -> Iterator[str]:
        """The answer to ``prompt`` as a stream of text pieces.  Stops at an end-of-turn token,
        after ``max_new_tokens``, or before the first of the ``stop`` strings (not included).
        A prompt that does not fit the context with ``max_new_tokens`` is refused, or with
        ``truncate`` keeps its last tokens."""
        sampling = Sampling(temperature, top_k, top_p, seed)
        if max_new_tokens < 1:
            raise LimitError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if any(not s for s in stop):
            raise LimitError("a stop string is empty")
        ids = self.fit_context(self.encode_chat(prompt, chat), max_new_tokens, truncate=truncate)
        return self._stream(ids, max_new_tokens, sampling, tuple(stop))

    def _stream(self, ids, max_new_tokens, sampling, stop) -> Iterator[str]:
        tok = self.tokenizer
        out: list[int] = []
        shown = 0                      # characters of the decoded text already yielded
        hold = max((len(s) for s in stop), default=1) - 1   # a stop string may still be forming
        text = ""
        for t in self.generate_ids(ids, max_new_tokens, sampling=sampling):
            out.append(t)
            text = tok.decode(out, skip_special_tokens=True)
            cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
            if cut >= 0:
                if cut > shown:
                    yield text[shown:cut]
                return
            if text.endswith("\ufffd"):          # a multi-byte character is not complete yet
                continue
            safe = len(text) - hold
            if safe > shown:
                yield text[shown:safe]
                shown = safe
        if len(text) > shown:
            yield text[shown:]

    def complete(self, prompt: str, max_new_tokens: int = 64, **kw) -> str:
        """:meth:`generate` joined into one string."""
        return "".join(self.generate(prompt, max_new_tokens, **kw))

    def complete_batch(self, prompts: Sequence[str], max_new_tokens: int = 64, **kw) -> list[str]:
        """Answers to several prompts, each on its own KV cache (run one after another)."""
        if isinstance(prompts, str):
            raise TypeError("complete_batch takes a list of prompts; use complete() for one")
        return [self.complete(p, max_new_tokens, **kw) for p in prompts]
