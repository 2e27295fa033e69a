"""The built-in model's numpy implementation on the CPU: same tables and values as the torch front end,
independent of thread count, loaded without torch, with the bundle checks of the torch path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from deepaq_core.errors import ModelError
from deepaq_core.model import cpu_model
from deepaq_core.model.auditory import AuditoryBackbone
from deepaq_core.model.cpu_model import AuditoryFrontEnd, CpuLoadedModel, accelerator_possible, runs_on_cpu_path
from deepaq_core.model.registry import load_model, needs_torch
from deepaq_core.model.registry import builtin_dir

REPO = Path(__file__).resolve().parents[2]
DEMO = builtin_dir().parent / "demo"


def demo_dir() -> Path:
    return DEMO


def models_dir() -> Path:
    return builtin_dir()


@pytest.fixture(scope="module")
def pair():
    return AuditoryFrontEnd(), AuditoryBackbone()


def _music(seconds: float, seed: int = 0) -> np.ndarray:
    """Harmonic tones with an envelope over quiet noise: every band from silence to loud."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 48000)) / 48000
    x = 0.003 * rng.standard_normal(t.size)
    for f in (110.0, 440.0, 1250.0, 5000.0):
        x += 0.1 * np.sin(2 * np.pi * f * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t + f))
    return x.astype(np.float32)


def test_tables_are_the_torch_front_ends(pair):
    fe, bb = pair
    assert np.array_equal(fe.window, bb.window.numpy())
    assert np.array_equal(fe.spread, bb.spread_t.numpy())
    assert np.array_equal(fe.threshold, bb.threshold.numpy())
    full = bb.weights_t.numpy()
    assert np.array_equal(fe.weights, full[fe.bins])
    outside = np.ones(full.shape[0], bool)
    outside[fe.bins] = False
    assert outside.any() and not full[outside].any()  # the bins left out add exact zeros


def test_values_agree_with_the_torch_front_end(pair):
    fe, bb = pair
    x = np.stack([_music(3.0, 0), _music(3.0, 1)[::-1].copy()])
    level, loud = fe(x)
    with torch.inference_mode():
        t_level, t_loud = (v.numpy() for v in bb(torch.from_numpy(x)))
    assert level.shape == t_level.shape and loud.shape == t_loud.shape
    assert level.dtype == np.float32 and loud.dtype == np.float32
    np.testing.assert_allclose(level, t_level, rtol=0, atol=1e-5)
    np.testing.assert_allclose(loud, t_loud, rtol=1e-4, atol=1e-5 * float(t_loud.max()))


@pytest.mark.parametrize("seconds", [0.3, 5.0, 10.27])
def test_values_do_not_depend_on_the_thread_count_or_the_blocks(pair, monkeypatch, seconds):
    fe, _ = pair
    x = _music(seconds)[None, :]
    one = fe(x, threads=1)
    for threads in (2, 3):
        other = fe(x, threads=threads)
        assert all(np.array_equal(a, b) for a, b in zip(one, other))
    monkeypatch.setattr(cpu_model, "_BLOCK_FRAMES", 10**6)  # the whole chunk in one block
    assert all(np.array_equal(a, b) for a, b in zip(one, fe(x, threads=1)))


def test_too_short_input_is_refused(pair):
    fe, _ = pair
    with pytest.raises(ValueError):
        fe(np.zeros((1, 100), np.float32))


def test_built_in_model_on_the_cpu_loads_the_numpy_implementation():
    loaded = load_model("compact", "cpu")
    assert isinstance(loaded, CpuLoadedModel)
    assert loaded.device.type == "cpu" and str(loaded.device) == "cpu"
    assert not needs_torch("compact", "cpu")
    assert needs_torch("compact-untrained", "cpu")  # a learned network needs torch
    with pytest.raises(ModelError, match="fp16"):
        load_model("compact", "cpu", precision="fp16")


def test_scores_agree_with_the_torch_implementation():
    from deepaq_core.model.bundle import build_model
    from deepaq_core.model.device import LoadedModel
    from deepaq_core.scoring import Scorer

    ref = str(demo_dir() / "demo_reference.flac")
    deg = str(demo_dir() / "demo_mp3_64k.flac")
    numpy_scorer = Scorer("compact", "cpu", workers=0)
    assert isinstance(numpy_scorer.loaded, CpuLoadedModel)
    torch_scorer = Scorer("compact", "cpu", workers=0)
    bundle = numpy_scorer.loaded.bundle
    torch_scorer.loaded = LoadedModel(model=build_model(bundle), bundle=bundle, device=torch.device("cpu"))
    a, b = numpy_scorer.score(ref, deg), torch_scorer.score(ref, deg)
    assert abs(a.score - b.score) < 0.01
    np.testing.assert_allclose(a.curve.score, b.curve.score, atol=0.05)
    assert a.time_matrix is not None and b.time_matrix is not None
    np.testing.assert_allclose(a.time_matrix.values, b.time_matrix.values, rtol=1e-3, atol=1e-5)


def _fake_torch(tmp_path: Path, monkeypatch, version_py: str | None) -> None:
    pkg = tmp_path / "torch"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    if version_py is not None:
        (pkg / "version.py").write_text(textwrap.dedent(version_py))
    spec = type("Spec", (), {"submodule_search_locations": [str(pkg)]})()
    monkeypatch.setattr(cpu_model.importlib.util, "find_spec", lambda name: spec)
    monkeypatch.setattr(cpu_model.sys, "platform", "linux")


@pytest.mark.parametrize("version_py, expected", [
    ("cuda: Optional[str] = None\nhip: Optional[str] = None\n", False),
    ("cuda: Optional[str] = '12.4'\nhip: Optional[str] = None\n", True),
    ("cuda = None\nhip = '6.0'\n", True),
    ("cuda = None\n", True),  # no hip entry: not a build this reading knows
    ("cuda = some_call()\nhip = None\n", True),
    (None, True),  # no version.py
])
def test_accelerator_possible_reads_torchs_build(tmp_path, monkeypatch, version_py, expected):
    _fake_torch(tmp_path, monkeypatch, version_py)
    assert accelerator_possible() is expected


def test_no_torch_installed_means_cpu(monkeypatch):
    monkeypatch.setattr(cpu_model.importlib.util, "find_spec", lambda name: None)
    assert accelerator_possible() is False


def _copy_builtin(tmp_path: Path, name: str) -> Path:
    dst = tmp_path / name
    shutil.copytree(models_dir() / "compact", dst)
    return dst


def test_bundle_checks_hold_on_the_numpy_path(tmp_path):
    from safetensors.numpy import save_file

    from deepaq_core.model.bundle import _sha256

    assert isinstance(load_model(str(_copy_builtin(tmp_path, "plain")), "cpu"), CpuLoadedModel)
    # A checksum that does not match is refused.
    folder = _copy_builtin(tmp_path, "changed")
    (folder / "weights.safetensors").write_bytes((folder / "weights.safetensors").read_bytes() + b" ")
    with pytest.raises(ModelError, match="checksum"):
        load_model(str(folder), "cpu")
    # Weights that do not fit the card (an extra tensor) are refused, checksum or not.
    folder = _copy_builtin(tmp_path, "extra")
    save_file({"head.layer_logits": np.zeros(2, np.float32), "extra": np.zeros(3, np.float32)},
              str(folder / "weights.safetensors"))
    card = json.loads((folder / "card.json").read_text())
    card["weights_sha256"] = _sha256(folder / "weights.safetensors")
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="do not fit"):
        load_model(str(folder), "cpu")
    # No checksum: refused unless allowed.
    folder = _copy_builtin(tmp_path, "unverified")
    del card["weights_sha256"]
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="no weights checksum"):
        load_model(str(folder), "cpu")
    assert isinstance(load_model(str(folder), "cpu", allow_unverified=True), CpuLoadedModel)


def test_a_card_with_a_projection_is_left_to_torch():
    card = json.loads((models_dir() / "compact" / "card.json").read_text())
    assert runs_on_cpu_path(card)
    card["head"] = {"projection": True, "dim": 64, "select_layer": None, "normalize": True}
    assert not runs_on_cpu_path(card)


@pytest.mark.skipif(accelerator_possible(), reason="this torch could use a GPU, so 'auto' asks torch")
def test_scoring_the_built_in_model_never_imports_torch(tmp_path):
    code = textwrap.dedent("""
        import sys
        from deepaq_core.cli import main
        from deepaq_core.model.registry import builtin_dir
        demo_dir = lambda: builtin_dir().parent / "demo"
        rc = main(["score", str(demo_dir() / "demo_reference.flac"), str(demo_dir() / "demo_mp3_64k.flac")])
        from deepaq_core.scoring import Scorer
        r = Scorer().score(str(demo_dir() / "demo_reference.flac"), str(demo_dir() / "demo_mp3_64k.flac"))
        assert r.time_matrix is not None
        print("rc", rc, "torch" in sys.modules)
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "rc 0 False"


def test_blas_threads_are_restored_after_concurrent_calls(pair):
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import ThreadpoolController

    blas = [i for i in ThreadpoolController().info() if i["user_api"] == "blas"]
    if not blas:
        pytest.skip("numpy was built without a BLAS threadpoolctl knows")
    before = [i["num_threads"] for i in blas]
    fe, _ = pair
    x = _music(2.0)[None, :]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda k: fe(x, threads=1 + k % 2), range(12)))
    after = [i["num_threads"] for i in ThreadpoolController().info() if i["user_api"] == "blas"]
    assert after == before


def test_scores_do_not_depend_on_the_scorers_threads():
    """The numpy front end's thread count is chosen chunk by chunk from whether the scorer's helper
    is busy; its values do not depend on it, so the app's one-thread scorer and the command's
    scorer give the same numbers to the last bit."""
    from deepaq_core.scoring import Scorer

    ref = str(demo_dir() / "demo_reference.flac")
    degs = [str(demo_dir() / "demo_mp3_64k.flac"), ref]
    one = Scorer("compact", "cpu", workers=0).score_many(ref, degs)
    two = Scorer("compact", "cpu", workers=2).score_many(ref, degs)
    for a, b in zip(one, two):
        assert a.score == b.score and a.channel_scores == b.channel_scores
        assert np.array_equal(a.frame_distance, b.frame_distance, equal_nan=True)
