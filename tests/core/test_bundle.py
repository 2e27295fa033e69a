"""Model bundles, the ladder, score mapping and device choice."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from deepaq_core.errors import ModelError
from deepaq_core.model.bundle import Bundle, build_model, read_card, save_bundle, score_from_distance
from deepaq_core.model.compact import CompactConfig, build_untrained, untrained_card
from deepaq_core.model.device import resolve_device
from deepaq_core.model.registry import builtin_dir, list_models, resolve

SMALL = CompactConfig(width=32, layers=1, heads=2, n_mels=32)


@pytest.fixture
def bundle_dir(tmp_path):
    model = build_untrained(seed=3, cfg=SMALL)
    folder = save_bundle(model, untrained_card(SMALL, d50=0.3), tmp_path / "mine", include_backbone=True)
    return folder, model


def test_bundle_round_trip_gives_identical_embeddings(bundle_dir):
    folder, model = bundle_dir
    loaded = build_model(Bundle(read_card(folder), folder))
    x = torch.randn(1, 24000)
    with torch.inference_mode():
        a, _ = model(x)
        b, _ = loaded(x)
    torch.testing.assert_close(a, b)
    card = json.loads((folder / "card.json").read_text())
    assert card["format"] == "deepaq-bundle" and card["weights_dtype"] == "float32"
    assert len(card["weights_sha256"]) == 64


def test_tampered_or_incomplete_bundles_are_refused(bundle_dir, tmp_path):
    folder, _ = bundle_dir
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    with open(bad / "weights.safetensors", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x00\x00\x01")
    with pytest.raises(ModelError, match="checksum"):
        build_model(Bundle(read_card(bad), bad))

    card = json.loads((folder / "card.json").read_text())
    for mutate, phrase in [
        (lambda c: c.pop("score_mapping"), "lacks the field 'score_mapping'"),
        (lambda c: c.update(format_version=99), "newer DeePAQ"),
        (lambda c: c.update(format="something"), "not a DeePAQ model card"),
    ]:
        c = json.loads(json.dumps(card))
        mutate(c)
        (bad / "card.json").write_text(json.dumps(c))
        with pytest.raises(ModelError, match=phrase):
            read_card(bad)
    with pytest.raises(ModelError, match="no card.json"):
        read_card(tmp_path)


def test_wrong_shape_weights_are_refused(bundle_dir, tmp_path):
    folder, _ = bundle_dir
    other = CompactConfig(width=32, layers=2, heads=2, n_mels=32)
    card = read_card(folder)
    card["backbone"]["config"] = other.to_dict()
    card.pop("weights_sha256")
    with pytest.raises(ModelError, match="no weights checksum"):
        build_model(Bundle(card, folder))
    with pytest.raises(ModelError, match="do not fit"):
        build_model(Bundle(card, folder), allow_unverified=True)


def test_user_model_dir_and_paths(bundle_dir, monkeypatch, tmp_path):
    folder, _ = bundle_dir
    monkeypatch.setenv("DEEPAQ_MODELS", str(folder.parent))
    assert resolve("mine").folder == folder
    assert resolve(str(folder)).folder == folder
    listed = {e.name: e for e in list_models()}
    assert listed["mine"].available and listed["mine"].where == str(folder)
    with pytest.raises(ModelError, match="Unknown model"):
        resolve("nonexistent")
    with pytest.raises(ModelError, match="not found"):
        resolve(str(tmp_path / "no" / "such"))


def test_builtin_model_is_labelled():
    b = resolve("compact")
    assert b.folder == builtin_dir() / "compact"
    info = b.info()
    # The built-in model is full band: it works at 48 kHz, 75 frames/s, one value per auditory band.
    from deepaq_core.model.auditory import band_count

    assert info.sample_rate == 48000 and info.frame_rate == 75.0 and info.embedding_dim == band_count()
    if info.status != "trained":
        assert info.status in info.label
    old = resolve("compact-untrained").info()
    assert old.status == "untrained" and old.sample_rate == 24000 and old.embedding_dim == 256
    assert {"compact", "compact-untrained"} <= {e.name for e in list_models() if e.available}


def test_mert_entries_listed_without_network(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("DEEPAQ_MERT_DIR", raising=False)
    entries = {e.name: e for e in list_models()}
    assert entries["mert-95m"].available is False
    b = resolve("mert-95m")
    assert b.card["backbone"]["id"] == "m-a-p/MERT-v1-95M" and b.folder is None


def test_score_mapping_is_monotone_with_fixed_points():
    m = {"type": "exp2", "d50": 0.25, "power": 1.5}
    d = np.linspace(0, 2, 201)
    s = score_from_distance(d, m)
    assert s[0] == pytest.approx(100.0)
    assert score_from_distance(0.25, m) == pytest.approx(50.0)
    assert np.all(np.diff(s) < 0) and s[-1] >= 0.0
    with pytest.raises(ModelError):
        score_from_distance(0.1, {"type": "cubic", "d50": 1})


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ModelError):
        resolve_device("tpu9")
