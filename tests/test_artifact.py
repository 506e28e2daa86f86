"""Artifact: manifest, content hashes, tamper detection, shape-only plans, CLI errors."""
import json

import numpy as np
import pytest

from plait.cli import main
from plait.ir import WeightStore
from plait.runtime import ArtifactError, DeviceUnavailable, Session, load_artifact, write_artifact
from plait.runtime.artifact import MANIFEST
from plait.tests.graphs import tiny_block


@pytest.fixture
def art(tmp_path):
    g, ws = tiny_block()
    out = tmp_path / "art"
    write_artifact(out, g, ws, model="tiny", recipe={"name": "fp32"})
    return out


def test_manifest_contents(art):
    m = json.loads((art / MANIFEST).read_text())
    assert m["schema_version"] == 1 and m["model"] == "tiny"
    assert {"graph.plait", "weights.safetensors"} <= set(m["files"])
    assert all(len(f["sha256"]) == 64 for f in m["files"].values())
    assert {"plait", "numpy", "python"} <= set(m["tools"])
    a = load_artifact(art)
    assert len(a.graph) == m["graph"]["nodes"]


def test_tampered_weights_are_refused(art):
    wf = art / "weights.safetensors"
    data = bytearray(wf.read_bytes())
    data[-5] ^= 0x01
    wf.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="weights.safetensors does not match its hash"):
        load_artifact(art)


def test_tampered_graph_and_missing_file(art):
    gf = art / "graph.plait"
    gf.write_text(gf.read_text().replace("eps", "epsilon"))
    with pytest.raises(ArtifactError, match="graph.plait does not match"):
        load_artifact(art)
    gf.unlink()
    with pytest.raises(ArtifactError, match="graph.plait listed in the manifest is missing"):
        load_artifact(art)


def test_schema_and_manifest_errors(art, tmp_path):
    mf = art / MANIFEST
    m = json.loads(mf.read_text())
    m["schema_version"] = 99
    mf.write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="schema version 99 is not supported"):
        load_artifact(art)
    mf.write_text("{not json")
    with pytest.raises(ArtifactError, match="corrupt manifest"):
        load_artifact(art)
    with pytest.raises(ArtifactError, match="not an artifact directory"):
        load_artifact(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="no manifest.json"):
        load_artifact(tmp_path / "empty")


def test_weights_that_do_not_match_the_graph_are_refused(tmp_path):
    g, ws = tiny_block()
    ws["wq"] = np.zeros((3, 3), np.float32)
    write_artifact(tmp_path / "a", g, ws, model="tiny", recipe={})
    with pytest.raises(ArtifactError, match="graph and weights do not match"):
        load_artifact(tmp_path / "a")


def test_shape_only_artifact_cannot_run(tmp_path):
    g, ws = tiny_block()
    plan = WeightStore()
    for n in ws.names():
        plan.declare(n, ws.info(n).shape)
    write_artifact(tmp_path / "p", g, plan, model="tiny", recipe={})
    a = load_artifact(tmp_path / "p")
    assert a.shape_only and not (tmp_path / "p" / "weights.safetensors").exists()
    with pytest.raises(ArtifactError, match="shape-only plan has no weights"):
        Session(a)


def test_unknown_device_is_refused(art):
    with pytest.raises(DeviceUnavailable, match="'tpu'"):
        Session(art, device="tpu")
    with pytest.raises(DeviceUnavailable, match="not available"):
        Session(art, device="fpga")


def test_cli_inspect_and_errors(art, capsys):
    assert main(["inspect", str(art)]) == 0
    out = capsys.readouterr().out
    assert "parameters" in out and "MACs per token" in out
    (art / "weights.safetensors").write_bytes(b"garbage")
    assert main(["inspect", str(art)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("plait: error:") and "weights.safetensors" in err
