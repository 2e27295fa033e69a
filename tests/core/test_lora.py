"""LoRA adapters on a tiny MERT backbone: freezing, identity at init, save/load, merge."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from deepaq_core.errors import ModelError
from deepaq_core.model.lora import LoraSettings, add_lora, load_adapter, lora_state_dict, merge_lora, save_adapter
from deepaq_core.model.mert import MertBackbone, mert_config_to_hubert, tiny_mert_config

SR = 24000


@pytest.fixture(scope="module")
def base():
    """A tiny MertBackbone with every weight perturbed away from its default init (eval mode)."""
    from transformers import HubertModel

    torch.manual_seed(0)
    hubert = HubertModel(mert_config_to_hubert(tiny_mert_config()))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in hubert.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return MertBackbone(hubert).eval()


@pytest.fixture
def audio():
    return torch.randn(2, SR // 2, generator=torch.Generator().manual_seed(1)) * 0.3


def _fresh(base, settings=LoraSettings(rank=4, alpha=8)):
    return add_lora(copy.deepcopy(base), settings).eval()


def _perturb_lora(module, seed=2):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "lora_" in name:
                p.add_(0.2 * torch.randn(p.shape, generator=gen))


def _run(module, audio):
    with torch.no_grad():
        return module(audio)


def test_only_lora_is_trainable(base):
    model = _fresh(base)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    # 4 attention projections x 2 layers x (A, B).
    assert len(trainable) == 16
    assert all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert not any(p.requires_grad for p in model.hubert.feature_extractor.parameters())
    assert not model.hubert.feature_extractor._requires_grad  # no grad through the conv stack's input
    assert not any("intermediate_dense.lora" in n for n in trainable)
    lora_b = model.hubert.encoder.layers[0].attention.q_proj.lora_B["default"].weight
    assert lora_b.shape == (32, 4) and torch.count_nonzero(lora_b) == 0


def test_target_ffn_adds_feed_forward_adapters(base):
    model = _fresh(base, LoraSettings(rank=2, target_ffn=True))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert len(trainable) == 6 * 2 * 2
    assert any("feed_forward.intermediate_dense.lora_A" in n for n in trainable)
    assert any("feed_forward.output_dense.lora_B" in n for n in trainable)


def test_zero_init_is_identity(base, audio):
    want = _run(base, audio)
    got = _run(_fresh(base), audio)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_training_step_touches_only_lora(base, audio):
    model = _fresh(base).train()
    states = model(audio)
    assert len(states) == model.num_hidden_states  # no layerdrop in train mode
    states[-1].pow(2).mean().backward()
    for name, p in model.named_parameters():
        if "lora_" in name:
            assert p.grad is not None, name
        else:
            assert p.grad is None, name
    # With B = 0 only the B matrices receive a non-zero gradient at the first step.
    assert all(
        p.grad.abs().sum() > 0 for n, p in model.named_parameters() if ".lora_B." in n
    )


def test_save_load_round_trip(base, audio, tmp_path):
    trained = _fresh(base)
    _perturb_lora(trained)
    want = _run(trained, audio)
    assert not torch.allclose(want[-1], _run(base, audio)[-1], atol=1e-4)

    path = tmp_path / "adapter.safetensors"
    save_adapter(trained, path)

    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        keys = list(handle.keys())
        meta = handle.metadata()
    assert len(keys) == 16 and all("lora_" in k for k in keys)
    assert set(keys) == set(lora_state_dict(trained))
    assert json.loads(meta["lora_settings"]) == {"rank": 4, "alpha": 8, "dropout": 0.0, "target_ffn": False}
    full_bytes = sum(p.numel() * p.element_size() for p in base.parameters())
    assert path.stat().st_size < 0.1 * full_bytes

    restored = _fresh(base)
    load_adapter(restored, path)
    got = _run(restored, audio)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_wrong_rank_is_refused(base, tmp_path):
    trained = _fresh(base, LoraSettings(rank=4, alpha=8))
    path = tmp_path / "r4.safetensors"
    save_adapter(trained, path)
    with pytest.raises(ModelError, match="rank 4"):
        load_adapter(_fresh(base, LoraSettings(rank=8, alpha=8)), path)


def test_shape_and_key_mismatch_are_refused(base, tmp_path):
    from safetensors.torch import save_file

    trained = _fresh(base)
    meta = {"format": "pt", "deepaq_adapter": "deepaq-lora", "lora_settings": "{}"}
    sd = {k: v.clone() for k, v in lora_state_dict(trained).items()}

    # Settings unrecorded, so only the tensors can tell: one has the wrong rank.
    key = next(k for k in sd if ".lora_A." in k)
    bad = dict(sd, **{key: torch.zeros(3, 32)})
    save_file(bad, str(tmp_path / "shape.safetensors"), metadata=meta)
    with pytest.raises(ModelError, match="shape"):
        load_adapter(_fresh(base), tmp_path / "shape.safetensors")

    del sd[key]
    save_file(sd, str(tmp_path / "missing.safetensors"), metadata=meta)
    with pytest.raises(ModelError, match="lacks"):
        load_adapter(_fresh(base), tmp_path / "missing.safetensors")

    ffn_adapter = _fresh(base, LoraSettings(rank=4, alpha=8, target_ffn=True))
    save_adapter(ffn_adapter, tmp_path / "ffn.safetensors")
    with pytest.raises(ModelError, match="target_ffn"):
        load_adapter(_fresh(base), tmp_path / "ffn.safetensors")


def test_bad_adapter_files_are_refused(base, tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(ModelError, match="does not exist"):
        load_adapter(_fresh(base), tmp_path / "nope.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="cannot be read"):
        load_adapter(_fresh(base), tmp_path / "junk.safetensors")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelError, match="not a DeePAQ LoRA adapter"):
        load_adapter(_fresh(base), tmp_path / "other.safetensors")


def test_merge_keeps_outputs(base, audio):
    model = _fresh(base)
    _perturb_lora(model)
    want = _run(model, audio)
    assert merge_lora(model) == 8
    assert merge_lora(model) == 0
    got = _run(model, audio)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_settings_and_targets_are_checked(base):
    with pytest.raises(ModelError):
        LoraSettings(rank=0)
    with pytest.raises(ModelError):
        LoraSettings(dropout=1.0)
    model = _fresh(base)
    with pytest.raises(ValueError):
        add_lora(model, LoraSettings())
    with pytest.raises(ModelError, match="none of the layers"):
        add_lora(torch.nn.Sequential(torch.nn.Linear(4, 4)), LoraSettings())
    # torch's MultiheadAttention bypasses out_proj.forward, so an adapter there would be inert.
    with pytest.raises(ModelError, match="none of the layers"):
        add_lora(torch.nn.TransformerEncoderLayer(16, 2, batch_first=True), LoraSettings())
