"""Model bundles are verified: card schema, weights confined to the folder, sizes, checksums, names.

A corpus of bad bundles is written in ``tmp_path`` from one small good one; each must be refused
by ``deepaq score --model PATH`` and ``deepaq models verify PATH`` with exit code 2 and exactly
one line on stderr (no traceback), before anything large is allocated.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepaq_core.cli import main
from deepaq_core.errors import ModelError
from deepaq_core.model.bundle import Bundle, build_model, read_card, save_bundle, verify_bundle
from deepaq_core.model.card_schema import check_card
from deepaq_core.model.compact import CompactConfig, build_untrained, untrained_card
from deepaq_core.model.registry import builtin_dir, list_models, load_model, resolve
from deepaq_core.scoring import Scorer

SMALL = CompactConfig(width=32, layers=1, heads=2, n_mels=32)
NOTE = "is unverified (no checksum); loaded because --allow-unverified was given."


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error(code: int, err: str) -> str:
    """The single stderr line of a refused command (exit 2, no traceback)."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("deepaq: error: ")
    return lines[0]


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    """A short reference and a slightly changed copy (1.5 s, 48 kHz mono)."""
    d = tmp_path_factory.mktemp("trust_wavs")
    rng = np.random.default_rng(0)
    t = np.arange(int(1.5 * 48000)) / 48000
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    sf.write(d / "ref.wav", x, 48000, subtype="FLOAT")
    sf.write(d / "deg.wav", (0.8 * x).astype(np.float32), 48000, subtype="FLOAT")
    return str(d / "ref.wav"), str(d / "deg.wav")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trust_good") / "good"
    card = {**untrained_card(SMALL, d50=0.3), "name": "good"}
    return save_bundle(build_untrained(seed=3, cfg=SMALL), card, folder, include_backbone=True)


def variant(good: Path, where: Path, mutate=None, *, raw: str | None = None) -> Path:
    """A copy of the good bundle at ``where`` with its card (or folder) changed."""
    shutil.copytree(good, where)
    if raw is not None:
        (where / "card.json").write_text(raw)
    elif mutate is not None:
        card = json.loads((where / "card.json").read_text())
        mutate(card, where)
        (where / "card.json").write_text(json.dumps(card))
    return where


def _link_outside(card: dict, folder: Path) -> None:
    outside = folder.parent / f"{folder.name}-outside.safetensors"
    shutil.copy(folder / "weights.safetensors", outside)
    os.remove(folder / "weights.safetensors")
    os.symlink(outside, folder / "weights.safetensors")


def _tamper(card: dict, folder: Path) -> None:
    with open(folder / "weights.safetensors", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x00\x00\x01")


def _set(path: str, value):
    def mutate(card: dict, folder: Path) -> None:
        *parents, last = path.split(".")
        d = card
        for p in parents:
            d = d[p]
        d[last] = value

    return mutate


BAD = [
    ("list-card", None, "[1, 2, 3]", "is not a JSON object"),
    ("not-json", None, "{nope", "cannot be read"),
    ("format-version-text", _set("format_version", "1"), None, "'format_version'"),
    ("format-version-zero", _set("format_version", 0), None, "'format_version'"),
    ("format-version-newer", _set("format_version", 7), None, "newer DeePAQ"),
    ("backbone-without-type", lambda c, f: c["backbone"].pop("type"), None, "'backbone.type'"),
    ("backbone-unknown-type", _set("backbone.type", "wavlm"), None, "'backbone.type'"),
    ("backbone-not-object", _set("backbone", "compact"), None, "'backbone'"),
    ("d50-text", _set("score_mapping.d50", "abc"), None, "'score_mapping.d50'"),
    ("d50-zero", _set("score_mapping.d50", 0), None, "'score_mapping.d50'"),
    ("d50-nan", _set("score_mapping.d50", math.nan), None, "'score_mapping.d50'"),
    ("power-negative", _set("score_mapping.power", -1), None, "'score_mapping.power'"),
    ("width-huge", _set("backbone.config.width", 10**7), None, "'backbone.config.width'"),
    ("heads-not-dividing", _set("backbone.config.heads", 5), None, "'backbone.config.heads'"),
    ("status-unknown", _set("status", "perfect"), None, "'status'"),
    ("name-empty", _set("name", " "), None, "'name'"),
    ("weights-absolute", _set("weights", "/etc/passwd"), None, "'weights'"),
    ("weights-dotdot", _set("weights", "../x"), None, "'weights'"),
    ("weights-subfolder", _set("weights", "sub/weights.safetensors"), None, "'weights'"),
    ("weights-symlink-outside", _link_outside, None, "outside the bundle folder"),
    ("weights-missing", lambda c, f: os.remove(f / "weights.safetensors"), None, "no weights file"),
    ("checksum-missing", lambda c, f: c.pop("weights_sha256"), None, "no weights checksum"),
    ("checksum-not-hex", _set("weights_sha256", "z" * 64), None, "'weights_sha256'"),
    ("weights-tampered", _tamper, None, "checksum differs"),
    ("weights-too-small-for-card", lambda c, f: c["backbone"]["config"].update(width=1024, layers=8, heads=8),
     None, "do not fit"),
    ("weights-other-shape", lambda c, f: c["backbone"]["config"].update(n_mels=40), None, "do not fit"),
]


@pytest.mark.parametrize("name, mutate, raw, phrase", BAD, ids=[b[0] for b in BAD])
def test_bad_bundles_exit_2_with_one_line(capsys, tmp_path, good, wavs, name, mutate, raw, phrase):
    folder = variant(good, tmp_path / name, mutate, raw=raw)
    t0 = time.perf_counter()
    line = one_error(*run(capsys, "score", *wavs, "--model", str(folder), "--device", "cpu")[::2])
    assert phrase in line
    line = one_error(*run(capsys, "models", "verify", str(folder))[::2])
    assert phrase in line
    assert time.perf_counter() - t0 < 20.0
    with pytest.raises(ModelError):
        verify_bundle(folder)


def test_huge_width_fails_in_well_under_a_second(capsys, tmp_path, good):
    folder = variant(good, tmp_path / "wide", _set("backbone.config.width", 10**7))
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match="backbone.config.width"):
        read_card(folder)
    code, _, err = run(capsys, "models", "verify", str(folder))
    assert time.perf_counter() - t0 < 0.5
    assert "backbone.config.width" in one_error(code, err)


def test_a_large_card_is_refused_against_the_file_size_without_allocating(tmp_path, good):
    # Within the schema's limits (4096 wide, 64 layers: 8.7e9 values, 17 GB in float16), but the
    # weights file holds 100 kB: refused from the file size, before anything is allocated.
    folder = variant(good, tmp_path / "large",
                     lambda c, f: c["backbone"]["config"].update(width=4096, layers=64, heads=64))
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match="do not fit its card .*bytes"):
        build_model(Bundle(read_card(folder), folder))
    assert time.perf_counter() - t0 < 10.0


def test_missing_checksum_needs_allow_unverified(capsys, tmp_path, good, wavs):
    folder = variant(good, tmp_path / "nosum", lambda c, f: c.pop("weights_sha256"))
    bundle = Bundle(read_card(folder), folder)
    assert bundle.unverified
    for load in (lambda **kw: build_model(bundle, **kw), lambda **kw: load_model(str(folder), "cpu", **kw),
                 lambda **kw: Scorer(str(folder), "cpu", **kw)):
        with pytest.raises(ModelError, match="no weights checksum"):
            load()
        assert load(allow_unverified=True) is not None

    code, out, err = run(capsys, "score", *wavs, "--model", str(folder), "--device", "cpu", "--allow-unverified")
    assert code == 0, err
    assert "Traceback" not in err
    notes = [ln for ln in err.splitlines() if NOTE in ln]
    assert notes == [f"deepaq: note: model 'good' {NOTE}"]
    assert len([ln for ln in out.splitlines() if ln.strip().endswith("deg.wav")]) == 1

    batch = tmp_path / "pairs.csv"
    batch.write_text(f"reference,degraded\n{wavs[0]},{wavs[1]}\n")
    code, out, err = run(capsys, "batch", "--batch-input-csv", str(batch), "--model", str(folder), "--device", "cpu")
    assert "no weights checksum" in one_error(code, err)
    code, out, err = run(capsys, "batch", "--batch-input-csv", str(batch), "--model", str(folder), "--device", "cpu",
                         "--allow-unverified")
    assert code == 0 and sum(NOTE in ln for ln in err.splitlines()) == 1

    # verify never accepts it: a verified bundle has a checksum
    code, _, err = run(capsys, "models", "verify", str(folder))
    assert "no weights checksum" in one_error(code, err)


def test_tampered_weights_are_refused_even_when_unverified_is_allowed(capsys, tmp_path, good, wavs):
    folder = variant(good, tmp_path / "tampered", _tamper)
    with pytest.raises(ModelError, match="checksum differs"):
        build_model(Bundle(read_card(folder), folder), allow_unverified=True)
    code, _, err = run(capsys, "score", *wavs, "--model", str(folder), "--allow-unverified")
    assert "checksum differs" in one_error(code, err)


def test_a_link_inside_the_folder_is_fine(capsys, tmp_path, good):
    def link_inside(card: dict, folder: Path) -> None:
        os.rename(folder / "weights.safetensors", folder / "w.safetensors")
        os.symlink("w.safetensors", folder / "weights.safetensors")

    folder = variant(good, tmp_path / "linked", link_inside)
    code, out, err = run(capsys, "models", "verify", str(folder))
    assert code == 0 and out.startswith("OK good ")


@pytest.mark.parametrize("name", ["compact", "compact-untrained"])
def test_shipped_bundles_verify(capsys, name):
    code, out, err = run(capsys, "models", "verify", str(builtin_dir() / name))
    card = json.loads((builtin_dir() / name / "card.json").read_text())
    assert code == 0 and err == ""
    assert out == f"OK {card['name']} {card['version']} ({card['status']}), sha256 {card['weights_sha256'][:12]}\n"
    # by name too
    code, out2, _ = run(capsys, "models", "verify", name)
    assert code == 0 and out2 == out


def test_verify_of_something_that_is_not_a_bundle(capsys, tmp_path):
    line = one_error(*run(capsys, "models", "verify", str(tmp_path))[::2])
    assert "no card.json" in line
    line = one_error(*run(capsys, "models", "verify", str(tmp_path / "missing" / "x"))[::2])
    assert "not found" in line
    line = one_error(*run(capsys, "models", "verify", "mert-95m")[::2])
    assert "not a bundle on disk" in line


def test_user_folder_named_like_a_builtin_never_replaces_it(capsys, caplog, tmp_path, good, wavs, monkeypatch):
    models = tmp_path / "models"
    variant(good, models / "compact")
    monkeypatch.setenv("DEEPAQ_MODELS", str(models))
    with caplog.at_level(logging.WARNING, logger="deepaq_core.model.registry"):
        b = resolve("compact")
    assert b.folder == builtin_dir() / "compact"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "user:compact" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    assert resolve(None).folder == builtin_dir() / "compact"

    user = resolve("user:compact")
    assert user.folder == models / "compact" and user.card["name"] == "good"

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="deepaq_core.model.registry"):
        entries = {e.name: e for e in list_models()}
    assert entries["compact"].where == "built-in"
    assert entries["user:compact"].where == str(models / "compact") and entries["user:compact"].available
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1

    code, out, err = run(capsys, "models")
    assert code == 0 and "user:compact" in out
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="deepaq_core.model.registry"):
        code, out, err = run(capsys, "score", *wavs, "--model", "compact", "--device", "cpu")
    builtin_version = json.loads((builtin_dir() / "compact" / "card.json").read_text())["version"]
    assert code == 0 and f"model: compact {builtin_version} " in out
    assert len([r for r in caplog.records if "user:compact" in r.getMessage()]) == 1
    code, out, err = run(capsys, "score", *wavs, "--model", "user:compact", "--device", "cpu")
    assert code == 0 and "model: good " in out
    code, out, err = run(capsys, "models", "verify", "user:compact")
    assert code == 0 and out.startswith("OK good ")

    line = one_error(*run(capsys, "score", *wavs, "--model", "user:nothing")[::2])
    assert "No user model 'nothing'" in line


def test_invalid_and_unverified_user_bundles_are_listed_as_such(tmp_path, good, monkeypatch):
    models = tmp_path / "models"
    variant(good, models / "broken", raw="[]")
    variant(good, models / "nosum", lambda c, f: c.pop("weights_sha256"))
    variant(good, models / "fine")
    monkeypatch.setenv("DEEPAQ_MODELS", str(models))
    entries = {e.name: e for e in list_models()}
    assert entries["broken"].status == "invalid" and not entries["broken"].available
    assert "not a JSON object" in entries["broken"].description
    assert entries["nosum"].available and entries["nosum"].description.startswith("unverified")
    assert entries["fine"].available and not entries["fine"].description.startswith("unverified")


def test_eval_takes_allow_unverified(capsys, tmp_path, good, wavs):
    folder = variant(good, tmp_path / "nosum", lambda c, f: c.pop("weights_sha256"))
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["reference", "degraded", "subjective"])
        for score in (90, 60, 30):
            w.writerow([wavs[0], wavs[1], score])
    common = [str(manifest), "--model", str(folder), "--peers", "none", "--device", "cpu", "--no-plot",
              "--bootstrap", "100"]
    code, out, err = run(capsys, "eval", *common, "--out", str(tmp_path / "o1"))
    skipped = [ln for ln in err.splitlines() if "skipping deepaq:nosum" in ln]
    assert len(skipped) == 1 and "no weights checksum" in skipped[0]
    code, out, err = run(capsys, "eval", *common, "--out", str(tmp_path / "o2"), "--allow-unverified")
    assert code == 0, err
    assert sum(NOTE in ln for ln in err.splitlines()) == 1
    assert not any("skipping deepaq" in ln for ln in err.splitlines())


def test_gui_parsers_take_allow_unverified():
    from deepaq_gui.app import build_parser

    assert build_parser().parse_args(["--allow-unverified"]).allow_unverified is True
    assert build_parser().parse_args([]).allow_unverified is False


# ------------------------------------------------------------------------------------- schema


def _shipped(name: str) -> dict:
    return json.loads((builtin_dir() / name / "card.json").read_text())


@pytest.mark.parametrize("name", ["compact", "compact-untrained"])
def test_shipped_cards_pass_the_schema(name):
    card = _shipped(name)
    assert check_card(card) is card


SCHEMA_CASES = [
    ("compact", _set("backbone.config.sample_rate", 1000), "backbone.config.sample_rate"),
    ("compact", _set("backbone.config.f_min", 30000.0), "backbone.config.f_max"),
    ("compact", _set("backbone.config.erb_step", 0.01), "backbone.config.erb_step"),
    ("compact", _set("backbone.config.n_fft", 1 << 20), "backbone.config.n_fft"),
    ("compact", _set("backbone.config.hop_length", 0), "backbone.config.hop_length"),
    ("compact", _set("backbone.config", []), "backbone.config"),
    ("compact", _set("distance.type", "cosine"), "distance.type"),
    ("compact", _set("distance.time_p", 0), "distance.time_p"),
    ("compact", _set("calibration.reference_lufs", -80), "calibration.reference_lufs"),
    ("compact", _set("calibration.reference_lufs", math.inf), "calibration.reference_lufs"),
    ("compact", _set("local_alignment.band_s", 11), "local_alignment.band_s"),
    ("compact", _set("local_alignment.penalty", -0.5), "local_alignment.penalty"),
    ("compact", _set("local_alignment.band_group", 0), "local_alignment.band_group"),
    ("compact", _set("local_alignment.band_group", 2.5), "local_alignment.band_group"),
    ("compact", _set("head.select_layer", "1"), "head.select_layer"),
    ("compact", _set("sample_rate", 48000.5), "sample_rate"),
    ("compact", _set("frame_rate", 0), "frame_rate"),
    ("compact", _set("embedding_dim", True), "embedding_dim"),
    ("compact", _set("score_mapping.type", "cubic"), "score_mapping.type"),
    ("compact", _set("score_mapping.power", 21), "score_mapping.power"),
    ("compact", _set("weights_dtype", "int8"), "weights_dtype"),
    ("compact", _set("weights", ".."), "weights"),
    ("compact", _set("version", ""), "version"),
    ("compact-untrained", _set("backbone.config.layers", 65), "backbone.config.layers"),
    ("compact-untrained", _set("backbone.config.n_mels", 513), "backbone.config.n_mels"),
    ("compact-untrained", _set("backbone.config.n_fft", 65537), "backbone.config.n_fft"),
    ("compact-untrained", _set("backbone.config.width", 4097), "backbone.config.width"),
    ("compact-untrained", _set("head.dim", 0), "head.dim"),
    ("compact-untrained", _set("lora", {"rank": 0}), "lora.rank"),
    ("compact-untrained", _set("lora", {"rank": 4, "alpha": -1}), "lora.alpha"),
    ("compact-untrained", _set("lora", {"rank": 4, "scale": 2}), "lora"),
    ("compact-untrained", lambda c, f: c.pop("score_mapping"), "score_mapping"),
    ("compact-untrained", lambda c, f: c["score_mapping"].pop("d50"), "score_mapping.d50"),
]


@pytest.mark.parametrize("name, mutate, field", SCHEMA_CASES,
                         ids=[f"{n}-{f}-{i}" for i, (n, _, f) in enumerate(SCHEMA_CASES)])
def test_schema_names_the_field_in_one_sentence(name, mutate, field):
    card = _shipped(name)
    mutate(card, None)
    with pytest.raises(ModelError) as info:
        check_card(card, "The model card 'x'")
    msg = str(info.value)
    assert f"'{field}'" in msg and "\n" not in msg and msg.endswith(".")
    assert msg.startswith("The model card 'x' ")


def test_schema_accepts_optional_fields_left_out():
    card = _shipped("compact-untrained")
    for key in ("status", "description", "head", "lora", "hop_length", "layers", "training", "results",
                "weights", "weights_dtype", "weights_sha256"):
        card.pop(key, None)
    card["backbone"].pop("config")
    card["score_mapping"].pop("power")
    assert check_card(card) is card
    mert = {**card, "backbone": {"type": "mert", "id": "m-a-p/MERT-v1-95M", "revision": None}}
    assert check_card(mert) is mert


def test_schema_distance_types_are_those_of_distance_spec():
    from deepaq_core.distance import DISTANCE_TYPES, DistanceSpec

    for kind in DISTANCE_TYPES:
        card = _shipped("compact")
        card["distance"]["type"] = kind
        check_card(card)
        DistanceSpec.from_card(card)


def test_oversized_or_deeply_nested_cards_are_refused(tmp_path):
    folder = tmp_path / "deep"
    folder.mkdir()
    (folder / "card.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(ModelError, match="cannot be read"):
        read_card(folder)
