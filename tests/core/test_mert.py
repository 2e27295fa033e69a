"""MERT on transformers' HubertModel: config translation, MERT-format checkpoints, hub loading."""

from __future__ import annotations

import fnmatch
import json
import logging
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from deepaq_core.errors import ModelError
from deepaq_core.model import mert
from deepaq_core.model.mert import (
    MERT_REVISIONS,
    MertBackbone,
    conv_receptive_field,
    convert_mert_state_dict,
    load_mert_hubert,
    mert_95m_config,
    mert_config_to_hubert,
    tiny_mert_config,
    write_mert_checkpoint,
)

SR = 24000
MERT_ID = "m-a-p/MERT-v1-95M"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Perturb every parameter so a mis-mapped weight cannot hide behind a default init (ones, zeros)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))


def _tiny_hubert(seed: int = 0, **overrides):
    from transformers import HubertModel

    torch.manual_seed(seed)
    model = HubertModel(mert_config_to_hubert(tiny_mert_config(**overrides)))
    _randomise(model, seed)
    return model.eval()


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if (folder / "model.safetensors").is_file():
        return load_file(str(folder / "model.safetensors"))
    return torch.load(folder / "pytorch_model.bin", weights_only=True)


@pytest.fixture(scope="module")
def tiny_hubert():
    return _tiny_hubert()


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory, tiny_hubert):
    folder = tmp_path_factory.mktemp("mert-tiny")
    write_mert_checkpoint(tiny_hubert, folder, tiny_mert_config(), fmt="bin")
    return folder


@pytest.fixture
def audio():
    return torch.randn(2, SR, generator=torch.Generator().manual_seed(1)) * 0.3


# ---------------------------------------------------------------------------------------------
# Round trip through MERT's own on-disk format
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_mert_format_round_trip(tmp_path, tiny_hubert, audio, fmt):
    folder = write_mert_checkpoint(tiny_hubert, tmp_path / "m", tiny_mert_config(), fmt=fmt)

    # The folder really is in MERT's format: MERT config fields, old weight-norm names, no code.
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["model_type"] == "mert_model"
    assert cfg["architectures"] == ["MERTModel"]
    assert cfg["auto_map"]["AutoModel"] == "modeling_MERT.MERTModel"
    assert cfg["feature_extractor_cqt"] is False and cfg["deepnorm"] is False
    pre = json.loads((folder / "preprocessor_config.json").read_text())
    assert pre["do_normalize"] is True and pre["sampling_rate"] == SR
    keys = set(_weights(folder))
    assert "encoder.pos_conv_embed.conv.weight_g" in keys
    assert "encoder.pos_conv_embed.conv.weight_v" in keys
    assert not any("parametrizations" in k for k in keys)
    assert "feature_extractor.conv_layers.0.layer_norm.weight" in keys  # MERT's GroupNorm
    assert "masked_spec_embed" in keys
    assert not list(folder.glob("*.py"))

    # Code next to the weights must never run: plant MERT's module names as booby traps.
    marker = tmp_path / "executed"
    for name in ("modeling_MERT.py", "configuration_MERT.py"):
        (folder / name).write_text(f"open({str(marker)!r}, 'w').write('x')\nraise RuntimeError('executed')\n")

    model, meta = load_mert_hubert(folder)
    assert not marker.exists()
    assert not any("MERT" in name for name in sys.modules)
    assert not model.training
    assert meta["sample_rate"] == SR and meta["do_normalize"] is True
    assert meta["revision"] is None and meta["commit"] is None
    assert Path(meta["weights_file"]).name == ("pytorch_model.bin" if fmt == "bin" else "model.safetensors")
    assert meta["config"]["model_type"] == "mert_model"

    with torch.no_grad():
        want = tiny_hubert(audio, output_hidden_states=True).hidden_states
        got = model(audio, output_hidden_states=True).hidden_states
    assert len(got) == len(want) == 3
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_weight_g_v_rename_matches_old_weight_norm(tiny_folder):
    """weight_g/weight_v mean the same as under the old torch weight_norm(dim=2) MERT was saved with."""
    sd = _weights(tiny_folder)
    g = sd["encoder.pos_conv_embed.conv.weight_g"]  # [1, 1, K]
    v = sd["encoder.pos_conv_embed.conv.weight_v"]  # [H, H / groups, K]
    assert g.shape == (1, 1, v.shape[-1])
    # Old weight_norm(dim=2): w = g * v / ||v||, the norm over every axis except 2.
    expected = g * v / v.norm(dim=(0, 1), keepdim=True)
    model, _ = load_mert_hubert(tiny_folder)
    torch.testing.assert_close(model.encoder.pos_conv_embed.conv.weight, expected, atol=1e-6, rtol=1e-6)
    own = model.state_dict()
    assert "encoder.pos_conv_embed.conv.parametrizations.weight.original0" in own
    assert "encoder.pos_conv_embed.conv.parametrizations.weight.original1" in own


@pytest.mark.parametrize("prefix", ["mert_model.", "hubert."])
def test_single_known_prefix_is_stripped(tmp_path, tiny_folder, tiny_hubert, audio, prefix):
    folder = tmp_path / "prefixed"
    shutil.copytree(tiny_folder, folder)
    sd = _weights(tiny_folder)
    torch.save({prefix + k: v for k, v in sd.items()}, folder / "pytorch_model.bin")
    model, _ = load_mert_hubert(folder)
    with torch.no_grad():
        torch.testing.assert_close(model(audio).last_hidden_state, tiny_hubert(audio).last_hidden_state)


def test_stable_layer_norm_variant(tmp_path, audio):
    """MERT-v1-330M's layout (pre-LN, layer-normed convolutions with bias) round-trips too."""
    over = dict(do_stable_layer_norm=True, feat_extract_norm="layer", conv_bias=True)
    hub = _tiny_hubert(seed=3, **over)
    folder = write_mert_checkpoint(hub, tmp_path / "m330", tiny_mert_config(**over), fmt="safetensors")
    backbone = MertBackbone.from_pretrained(folder)
    with torch.no_grad():
        states = backbone(audio)
        var = audio.var(-1, keepdim=True, unbiased=False)
        normalised = (audio - audio.mean(-1, keepdim=True)) / torch.sqrt(var + 1e-7)
        ref = hub(normalised)
    assert len(states) == backbone.num_hidden_states == 3
    # As in MERT's own code, the last hidden state is the final layer-normed output.
    torch.testing.assert_close(states[-1], ref.last_hidden_state, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# Strictness
# ---------------------------------------------------------------------------------------------


def test_extra_key_is_refused(tmp_path, tiny_folder):
    folder = tmp_path / "extra"
    shutil.copytree(tiny_folder, folder)
    sd = _weights(tiny_folder)
    sd["encoder.layers.0.attention.rotary.weight"] = torch.zeros(3)
    torch.save(sd, folder / "pytorch_model.bin")
    with pytest.raises(ModelError, match="encoder.layers.0.attention.rotary.weight"):
        load_mert_hubert(folder)


def test_missing_key_is_refused(tmp_path, tiny_folder):
    from safetensors.torch import save_file

    folder = tmp_path / "missing"
    shutil.copytree(tiny_folder, folder)
    (folder / "pytorch_model.bin").unlink()
    sd = _weights(tiny_folder)
    del sd["encoder.layers.1.feed_forward.output_dense.bias"]
    save_file(sd, str(folder / "model.safetensors"))
    with pytest.raises(ModelError, match=r"missing.*encoder\.layers\.1\.feed_forward\.output_dense\.bias"):
        load_mert_hubert(folder)


def test_wrong_shape_is_refused(tmp_path, tiny_folder):
    folder = tmp_path / "shape"
    shutil.copytree(tiny_folder, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["intermediate_size"] = 48
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="intermediate_dense"):
        load_mert_hubert(folder)


@pytest.mark.parametrize(
    "override, word",
    [
        ({"feature_extractor_cqt": True}, "CQT"),
        ({"deepnorm": True}, "DeepNorm"),
        ({"attention_relax": 32.0}, "attention relaxation"),
        ({"model_type": "bert"}, "model_type"),
        ({"num_feat_extract_layers": 6}, "inconsistent"),
        ({"hidden_act": 3}, "invalid"),
    ],
)
def test_unsupported_configs_are_refused(override, word):
    with pytest.raises(ModelError, match=word):
        mert_config_to_hubert(tiny_mert_config(**override))


def test_unsupported_config_in_folder_is_refused(tmp_path, tiny_folder):
    folder = tmp_path / "cqt"
    shutil.copytree(tiny_folder, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["feature_extractor_cqt"] = True
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="CQT"):
        load_mert_hubert(folder)


def test_config_translation_forces_inference_settings():
    hub = mert_config_to_hubert(mert_95m_config())
    assert hub.output_hidden_states is True
    assert hub.layerdrop == 0.0 and hub.apply_spec_augment is False
    assert hub.feat_proj_layer_norm is True and hub.do_stable_layer_norm is False
    sizes = (hub.hidden_size, hub.num_hidden_layers, hub.num_attention_heads, hub.intermediate_size)
    assert sizes == (768, 12, 12, 3072)
    assert list(hub.conv_stride) == [5, 2, 2, 2, 2, 2, 2] and list(hub.conv_kernel) == [10, 3, 3, 3, 3, 2, 2]
    assert conv_receptive_field(hub.conv_kernel, hub.conv_stride) == (400, 320)
    # HuBERT configs are accepted as well.
    assert mert_config_to_hubert(dict(tiny_mert_config(), model_type="hubert")).hidden_size == 32


def test_masked_spec_embed_is_reconciled(tiny_hubert):
    no_mask = _tiny_hubert(seed=1, mask_time_prob=0.0)
    assert "masked_spec_embed" not in no_mask.state_dict()
    sd = convert_mert_state_dict(tiny_hubert.state_dict(), no_mask)
    assert "masked_spec_embed" not in sd
    no_mask.load_state_dict(sd, strict=True)
    back = convert_mert_state_dict(no_mask.state_dict(), tiny_hubert)
    assert torch.equal(back["masked_spec_embed"], torch.zeros(32))


def test_sample_rate_mismatch_is_refused(tmp_path, tiny_folder):
    folder = tmp_path / "rate"
    shutil.copytree(tiny_folder, folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True, "sampling_rate": 16000}))
    with pytest.raises(ModelError, match="16000"):
        load_mert_hubert(folder)


def test_missing_sources_are_refused(tmp_path, tiny_folder):
    with pytest.raises(ModelError, match="does not exist"):
        load_mert_hubert(tmp_path / "no" / "such" / "folder")
    with pytest.raises(ModelError, match="is a file"):
        load_mert_hubert(tiny_folder / "config.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="config.json"):
        load_mert_hubert(empty)
    (empty / "config.json").write_text(json.dumps(tiny_mert_config()))
    with pytest.raises(ModelError, match="no weights file"):
        load_mert_hubert(empty)


# ---------------------------------------------------------------------------------------------
# .bin files are loaded with weights_only=True
# ---------------------------------------------------------------------------------------------


def _leave_mark(path):  # pragma: no cover - must never run
    Path(path).write_text("unpickled")
    return 0


class _Payload:
    """Unpickling this calls _leave_mark: what a malicious checkpoint would do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (_leave_mark, (self.path,))


def test_bin_with_pickled_object_is_refused(tmp_path, tiny_folder):
    folder = tmp_path / "evil"
    shutil.copytree(tiny_folder, folder)
    marker = tmp_path / "mark"
    sd = dict(_weights(tiny_folder))
    sd["payload"] = _Payload(marker)
    torch.save(sd, folder / "pytorch_model.bin")
    with pytest.raises(ModelError, match="refused"):
        load_mert_hubert(folder)
    assert not marker.exists()


def test_bin_without_tensors_is_refused(tmp_path, tiny_folder):
    folder = tmp_path / "ints"
    shutil.copytree(tiny_folder, folder)
    torch.save({"a": 1, "b": [2, 3]}, folder / "pytorch_model.bin")
    with pytest.raises(ModelError, match="not a flat dictionary of tensors"):
        load_mert_hubert(folder)


# ---------------------------------------------------------------------------------------------
# Backbone: frames, normalisation
# ---------------------------------------------------------------------------------------------


def test_frame_rule(tiny_hubert):
    backbone = MertBackbone(tiny_hubert)
    assert (backbone.sample_rate, backbone.hop_length, backbone.receptive_field) == (SR, 320, 400)
    assert backbone.frame_rate == 75.0
    assert backbone.hidden_size == 32 and backbone.num_hidden_states == 3
    lengths = [400, 401, 719, 720, 1000, SR, SR + 319, SR + 320]
    with torch.no_grad():
        for n in lengths:
            states = backbone(torch.randn(1, n))
            expected = (n - backbone.receptive_field) // backbone.hop_length + 1
            assert backbone.num_frames(n) == expected
            assert all(s.shape == (1, expected, 32) for s in states), n
    assert backbone.num_frames(SR) == 74  # 1 s at 24 kHz: 75 frames/s minus the 400-sample edge
    assert backbone.num_frames(399) == 0
    with pytest.raises(ValueError):
        backbone(torch.randn(1, 399))


def test_per_item_normalisation(tiny_hubert, audio):
    backbone = MertBackbone(tiny_hubert, do_normalize=True)
    scaled = audio * torch.tensor([[4.0], [0.1]]) + torch.tensor([[0.2], [-0.3]])
    with torch.no_grad():
        a, b = backbone(audio), backbone(scaled)
        # Item 0 alone gives the same as in a batch: statistics are per item, not per batch.
        single = backbone(audio[:1])
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=1e-4, rtol=0)
    for x, y in zip(a, single):
        torch.testing.assert_close(x[:1], y, atol=1e-5, rtol=0)
    raw = MertBackbone(tiny_hubert, do_normalize=False)
    with torch.no_grad():
        assert not torch.allclose(raw(scaled)[-1], a[-1], atol=1e-3)


def test_do_normalize_read_from_preprocessor(tmp_path, tiny_hubert):
    folder = write_mert_checkpoint(tiny_hubert, tmp_path / "nonorm", tiny_mert_config(), do_normalize=False)
    backbone = MertBackbone.from_pretrained(folder)
    assert backbone.do_normalize is False and backbone.metadata["do_normalize"] is False
    (folder / "preprocessor_config.json").unlink()
    _, meta = load_mert_hubert(folder)
    assert meta["do_normalize"] is True and meta["sample_rate"] == SR


def test_freeze_feature_encoder(tiny_hubert):
    backbone = MertBackbone(_tiny_hubert(seed=2))
    backbone.freeze_feature_encoder()
    assert not any(p.requires_grad for p in backbone.hubert.feature_extractor.parameters())
    assert all(p.requires_grad for p in backbone.hubert.encoder.parameters())


# ---------------------------------------------------------------------------------------------
# Hub
# ---------------------------------------------------------------------------------------------


def _fake_hub(monkeypatch, source: Path, snapshots: Path):
    """Replace huggingface_hub.snapshot_download by a copy from ``source`` honouring allow_patterns."""
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append(dict(kwargs, repo_id=repo_id))
        snap = snapshots / COMMIT
        snap.mkdir(parents=True, exist_ok=True)
        for f in source.iterdir():
            if any(fnmatch.fnmatch(f.name, p) for p in kwargs["allow_patterns"]):
                shutil.copy(f, snap / f.name)
        return str(snap)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    return calls


def _assert_no_code(patterns):
    for code_file in ("modeling_MERT.py", "configuration_MERT.py", "x.py"):
        assert not any(fnmatch.fnmatch(code_file, p) for p in patterns), patterns


def test_hub_download_is_pinned_and_fetches_no_code(tmp_path, tiny_folder, audio, tiny_hubert, monkeypatch, caplog):
    source = tmp_path / "repo"
    shutil.copytree(tiny_folder, source)
    for name in ("modeling_MERT.py", "configuration_MERT.py"):
        (source / name).write_text("raise RuntimeError('executed')\n")
    calls = _fake_hub(monkeypatch, source, tmp_path / "cache")

    with caplog.at_level(logging.WARNING, logger="deepaq_core.model.mert"):
        model, meta = load_mert_hubert(MERT_ID, cache_dir=tmp_path / "hf", local_files_only=True)
    # The repo has no safetensors, so a second call fetches the .bin from the commit just resolved.
    assert len(calls) == 2
    assert calls[0]["revision"] == MERT_REVISIONS[MERT_ID]
    assert calls[1]["revision"] == COMMIT
    for call in calls:
        assert call["repo_id"] == MERT_ID
        assert call["cache_dir"] == tmp_path / "hf" and call["local_files_only"] is True
        _assert_no_code(call["allow_patterns"])
    assert "config.json" in calls[0]["allow_patterns"]
    assert "pytorch_model.bin" in calls[1]["allow_patterns"]
    assert not list((tmp_path / "cache" / COMMIT).glob("*.py"))
    assert meta["commit"] == COMMIT and meta["revision"] == MERT_REVISIONS[MERT_ID]
    if MERT_REVISIONS[MERT_ID] == "main":
        assert "unpinned" in caplog.text
    with torch.no_grad():
        torch.testing.assert_close(model(audio).last_hidden_state, tiny_hubert(audio).last_hidden_state)


def test_hub_pinned_revision_single_call_for_safetensors(tmp_path, tiny_hubert, monkeypatch, caplog):
    source = write_mert_checkpoint(tiny_hubert, tmp_path / "repo", tiny_mert_config(), fmt="safetensors")
    torch.save({}, source / "pytorch_model.bin")  # must not be fetched when safetensors exist
    calls = _fake_hub(monkeypatch, source, tmp_path / "cache")
    with caplog.at_level(logging.WARNING, logger="deepaq_core.model.mert"):
        _, meta = load_mert_hubert("someone/mert-finetune", revision=COMMIT)
    assert len(calls) == 1 and calls[0]["revision"] == COMMIT
    _assert_no_code(calls[0]["allow_patterns"])
    assert not (tmp_path / "cache" / COMMIT / "pytorch_model.bin").exists()
    assert Path(meta["weights_file"]).name == "model.safetensors"
    assert "unpinned" not in caplog.text


def test_hub_unreachable_is_one_sentence(tmp_path):
    # The real snapshot_download, cache-only, on an empty cache: nothing can be found.
    with pytest.raises(ModelError) as info:
        load_mert_hubert(MERT_ID, cache_dir=tmp_path / "empty-cache", local_files_only=True)
    msg = str(info.value)
    assert msg == (
        "MERT weights for 'm-a-p/MERT-v1-95M' are not available: the hub cannot be reached and no local "
        "copy was found; pass a local folder."
    )
    assert "\n" not in msg and msg.count(". ") == 0


def test_hub_errors_map_to_model_error(monkeypatch):
    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    # Stand-in for the HTTP response the error carries (only headers/request are read).
    response = SimpleNamespace(headers={}, request=None)

    def not_found(repo_id, **kwargs):
        raise hf_errors.RepositoryNotFoundError("404", response=response)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", not_found)
    with pytest.raises(ModelError, match="does not exist on the hub"):
        load_mert_hubert("nobody/nothing")


def test_module_import_is_cheap():
    """The package import must not pull in transformers (mert.py imports it lazily)."""
    import subprocess

    code = "import deepaq_core, deepaq_core.model.mert, sys; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert mert.DEFAULT_MERT_ID == MERT_ID
