"""The Session API: streaming generation, sampling, stop strings, forward with KV caches,
batches, the context manager, and the devices behind one interface."""
from __future__ import annotations

import numpy as np
import pytest

from plait.cli import main
from plait.ir import generate
from plait.ir.exact import ExactInterpreter
from plait.runtime import DeviceUnavailable, Session
from plait.runtime.artifact import ArtifactError
from plait.runtime.devices import CpuDevice, FpgaDevice, SimDevice, open_device, pick_device

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def arts(tmp_path_factory):
    """The tiny model compiled twice: float (w4g128) and exact (w8a8)."""
    from plait.tests.graphs import tiny_hf_dir
    root = tmp_path_factory.mktemp("sess")
    hf = tiny_hf_dir(root / "hf")
    out = {}
    for recipe in ("w4g128", "w8a8"):
        out[recipe] = root / recipe
        assert main(["compile", str(hf), "--recipe", recipe, "-o", str(out[recipe])]) == 0
    return out


@pytest.fixture(scope="module")
def sess(arts):
    with Session(arts["w4g128"], device="cpu") as s:
        yield s


def test_generate_streams_pieces_and_complete_joins_them(sess):
    pieces = list(sess.generate(PROMPT, 12, chat=False))
    assert len(pieces) >= 2 and all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces) == sess.complete(PROMPT, 12, chat=False)


@pytest.mark.parametrize("recipe,exact", [("w4g128", False), ("w8a8", True)])
def test_one_decode_loop_session_equals_the_interpreter(arts, recipe, exact):
    """Session tokens (through forward and its KV cache) equal the interpreter's own
    greedy generation on a fresh sequence (float and exact mode)."""
    with Session(arts[recipe], device="cpu", exact=exact) as s:
        ids = s.encode_chat(PROMPT, chat=False)
        ours = list(s.generate_ids(ids, 10, stop_ids=set()))
        interp = ExactInterpreter(s.artifact.graph, s.artifact.weights) if exact else s.interp
        assert ours == generate(interp, ids, 10)
        assert len(ours) == 10


def test_exact_forward_is_the_same_in_pieces(arts):
    """Exact mode: a prefill then single steps give bit-identical logits to one prefill."""
    with Session(arts["w8a8"], device="cpu", exact=True) as s:
        ids = s.encode_chat(PROMPT, chat=False)
        whole = s.forward(ids, s.new_cache())
        c = s.new_cache()
        parts = [s.forward(ids[:3], c)] + [s.forward([t], c) for t in ids[3:]]
        assert np.array_equal(np.concatenate(parts), whole) and c.length == len(ids)


def test_kv_caches_are_independent_sequences(sess):
    a_ids, b_ids = sess.encode_chat("one two three", chat=False), sess.encode_chat("blue green", chat=False)
    alone = sess.forward(a_ids + [42], sess.new_cache())[-1]
    a, b = sess.new_cache(), sess.new_cache()
    sess.forward(a_ids, a)
    sess.forward(b_ids, b)                     # another sequence in between
    np.testing.assert_allclose(sess.forward([42], a)[-1], alone, rtol=0, atol=1e-4)
    assert (a.length, b.length) == (len(a_ids) + 1, len(b_ids))
    with Session(sess.artifact, device="cpu") as other:
        with pytest.raises(ValueError, match="another Session"):
            other.forward([1], a)


def test_sampling_is_seeded_and_top_k_1_is_greedy(sess):
    kw = dict(chat=False, temperature=1.5, top_p=0.95)
    one = sess.complete(PROMPT, 16, seed=7, **kw)
    assert one == sess.complete(PROMPT, 16, seed=7, **kw)
    others = {sess.complete(PROMPT, 16, seed=s, **kw) for s in range(1, 5)}
    assert len(others | {one}) > 1                                   # sampling does sample
    assert sess.complete(PROMPT, 16, chat=False, temperature=2.0, top_k=1, seed=3) == \
        sess.complete(PROMPT, 16, chat=False)


def test_stop_strings_end_the_text_before_them(sess):
    full = sess.complete(PROMPT, 24, chat=False)
    stop = full[6:9]
    assert len(stop) == 3 and stop in full
    got = "".join(sess.generate(PROMPT, 24, chat=False, stop=[stop, "never-appears"]))
    assert got == full[:full.find(stop)]


def test_batch_is_one_cache_per_prompt(sess):
    prompts = ["one two", "red blue green", "x"]
    assert sess.complete_batch(prompts, 6, chat=False) == [sess.complete(p, 6, chat=False) for p in prompts]
    with pytest.raises(TypeError, match="list of prompts"):
        sess.complete_batch("one", 4)


@pytest.mark.parametrize("kw,words", [
    (dict(temperature=-1.0), "temperature"), (dict(top_p=0.0), "top_p"), (dict(top_k=-2), "top_k"),
    (dict(stop=[""]), "stop string is empty"),
])
def test_bad_generation_options(sess, kw, words):
    with pytest.raises(ValueError, match=words):
        sess.complete(PROMPT, 4, **kw)


def test_context_manager_closes(arts):
    with Session(arts["w4g128"], device="cpu") as s:
        s.forward([1, 2])
    with pytest.raises(RuntimeError, match="closed"):
        s.forward([1])


def test_forward_checks_the_context(sess):
    c = sess.new_cache()
    with pytest.raises(ValueError, match="context is 256"):
        sess.forward(list(range(257)), c)
    assert c.length == 0


# ---------------------------------------------------------------- devices

def test_auto_picks_cpu_here_and_says_why(arts):
    with Session(arts["w4g128"]) as s:                    # device="auto" is the default
        assert s.device == "cpu"
        note = s.device_note
    ok_fpga, why_fpga = FpgaDevice.probe()
    if not ok_fpga:
        assert "fpga unavailable" in note and why_fpga in note and "cuda unavailable" in note


def test_cpu_device_driver_verbs():
    d = CpuDevice()
    buf = d.allocate(64)
    x = np.arange(8, dtype=np.int32)
    d.copy_in(buf, x, offset=8)
    assert np.array_equal(d.copy_out(buf, np.int32, (8,), offset=8), x)
    d.write_register("n", 5)
    assert d.read_register("n") == 5
    assert d.run(lambda a, b: a + b, 2, 3) == 5
    d.wait()
    with pytest.raises(ValueError, match="overruns"):
        d.copy_in(buf, np.zeros(20, np.int32))
    with pytest.raises(KeyError, match="never written"):
        d.read_register("m")


def test_missing_xrt_is_named():
    try:
        import pyxrt  # noqa: F401
        pytest.skip("XRT is installed here")
    except ImportError:
        pass
    with pytest.raises(DeviceUnavailable, match="XRT is not installed.*pyxrt"):
        open_device("fpga")
    with pytest.raises(DeviceUnavailable, match="unknown device 'tpu'"):
        pick_device("tpu")


def test_artifact_for_another_hardware_config_is_refused(arts, monkeypatch):
    """A device built for one target refuses an artifact mapped onto another."""
    monkeypatch.setattr(SimDevice, "probe", classmethod(lambda cls: (True, "")))
    with pytest.raises(ArtifactError, match="compiled for target 'u280'.*built for 'sim16'"):
        Session(arts["w8a8"], device="sim", exact=True)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["w8a8-sparse24-wanda", "w4a8-lut", "w2a8-lut"])
def test_smollm2_cpu_exact_tokens_equal_the_exact_interpreter(recipe, tmp_path):
    """Done-means of the runtime issue: the cpu device in exact mode generates the same
    tokens as the interpreter's exact mode, for W8A8 2:4, W4A8 and W2A8 SmolLM2."""
    from plait.frontend import load_tokenizer
    from plait.runtime.artifact import write_artifact
    from plait.tests.hls_models import compiled_smollm2
    g, w = compiled_smollm2(recipe)                 # shared with the HLS / RTL layer tests
    out = write_artifact(tmp_path / recipe, g, w, model="smollm2", recipe={"name": recipe},
                         tokenizer=load_tokenizer("smollm2"))
    with Session(out, device="cpu", exact=True) as s:
        ids = s.encode_chat("What is 2+2?")
        ours = list(s.generate_ids(ids, 6, stop_ids=set()))
        ref = generate(ExactInterpreter(s.artifact.graph, s.artifact.weights), ids, 6)
    assert ours == ref and len(ours) == 6
