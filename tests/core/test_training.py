"""Training: config, data source, loss on a toy task, resume, validation, MERT + LoRA, CLI.

Everything runs on the CPU with tiny models and generated audio (no external data).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from deepaq_core.errors import DeePAQError
from deepaq_core.training.config import ConfigError, from_dict, load_config, to_toml
from tests.conftest import lowpass, music_like

SR = 24000
TINY_COMPACT = {"width": 32, "layers": 1, "n_mels": 32, "heads": 2}


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory):
    """Three clean files: two 44.1 kHz stereo FLAC, one 24 kHz mono WAV in a subfolder."""
    d = tmp_path_factory.mktemp("clean")
    sf.write(d / "a.flac", music_like(5.0, 44100, channels=2, seed=1), 44100)
    sf.write(d / "b.flac", music_like(5.0, 44100, channels=2, seed=2), 44100)
    (d / "sub").mkdir()
    sf.write(d / "sub" / "c.wav", music_like(5.0, SR, channels=1, seed=3), SR, subtype="FLOAT")
    (d / "notes.txt").write_text("not audio")
    return d


def tiny_config(clean_dir, out, **sections) -> dict:
    """A config dict for a tiny, fast run; ``sections`` update its tables."""
    cfg = {
        "device": "cpu",
        "data": {"clean": [str(clean_dir)], "families": ["lowpass", "white_noise"], "excerpt_seconds": 1.0,
                 "generation_rate": 24000, "channels": "mono", "versions_per_group": 4, "groups_per_batch": 2,
                 "num_workers": 0, "seed": 3, "heldout_fraction": 0.34},
        "model": {"compact": dict(TINY_COMPACT)},
        "optim": {"steps": 6, "warmup_steps": 1, "lr": 1e-3, "log_every": 2},
        "validation": {"heldout_groups": 0, "at_start": False},
        "output": {"dir": str(out), "checkpoint_every": 100},
    }
    for name, table in sections.items():
        cfg.setdefault(name, {}).update(table)
    return cfg


def tiny_manifest(folder: Path) -> Path:
    """A reference and four degraded versions with made-up subjective values (worse = lower)."""
    folder.mkdir(parents=True, exist_ok=True)
    ref = music_like(3.0, 48000, channels=1, seed=7)
    sf.write(folder / "ref.wav", ref, 48000, subtype="FLOAT")
    rows = []
    noise = np.random.default_rng(0).normal(0, 1, ref.shape).astype(np.float32)
    versions = {
        "lp8k": (lowpass(ref, 48000, 8000), 80.0),
        "lp3k": (lowpass(ref, 48000, 3000), 55.0),
        "lp1k": (lowpass(ref, 48000, 1000), 30.0),
        "noisy": (ref + 0.3 * noise * np.sqrt(np.mean(ref**2)), 20.0),
    }
    for name, (data, mos) in versions.items():
        sf.write(folder / f"{name}.wav", data, 48000, subtype="FLOAT")
        rows.append(f"ref.wav,{name}.wav,{mos}")
    path = folder / "manifest.csv"
    path.write_text("reference,degraded,mos\n" + "\n".join(rows) + "\n")
    return path


# ------------------------------------------------------------------------------------- config


def test_config_toml_round_trip_and_yaml(tmp_path, clean_dir):
    d = tiny_config(clean_dir, tmp_path / "run", validation={
        "heldout_groups": 4, "manifests": [{"name": "toy", "path": "m/manifest.csv", "subjective": "mos"}]})
    cfg = from_dict(d, base_dir=tmp_path)
    assert cfg.validation.manifests[0].path == str(tmp_path / "m" / "manifest.csv")  # resolved against the file
    assert cfg.selection_metric == "real.spearman"
    path = tmp_path / "round.toml"
    path.write_text(to_toml(cfg))
    again = load_config(path)
    assert again == cfg and again.config_path == str(path)
    assert again.model.compact.width == 32 and again.data.families == ("lowpass", "white_noise")
    yaml = pytest.importorskip("yaml")
    ypath = tmp_path / "same.yaml"
    ypath.write_text(yaml.safe_dump(d))
    assert load_config(ypath).data == cfg.data


def test_config_errors_name_the_setting(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[data]\nclean = ["x"]\nexcerpt_secs = 4\n')
    with pytest.raises(ConfigError, match=r"'data\.excerpt_secs'"):
        load_config(bad)
    bad.write_text("[optim]\nsteps = \"many\"\n")
    with pytest.raises(ConfigError, match=r"'optim\.steps' must be an integer"):
        load_config(bad)
    bad.write_text('[loss]\nanchors = "some"\n')
    with pytest.raises(ConfigError, match=r"'loss\.anchors'"):
        load_config(bad)
    bad.write_text("[optim\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    assert isinstance(ConfigError("x"), DeePAQError)


# ------------------------------------------------------------------------------------- data


def test_data_source_is_deterministic_and_labelled(clean_dir):
    from deepaq_core.degrade import FAMILIES
    from deepaq_core.training.data import OnlineSource, make_batch_stream, plan_data, scan_audio

    files = scan_audio([clean_dir])
    assert [Path(f.path).name for f in files] == ["a.flac", "b.flac", "c.wav"]  # recursive, audio only
    cfg = from_dict(tiny_config(clean_dir, "unused", data={"versions_per_group": 5, "groups_per_batch": 3,
                                                             "label_mode": "hybrid"}))
    plan = plan_data(cfg)
    assert len(plan.train_files) == 2 and len(plan.heldout_files) == 1
    source = OnlineSource(plan.train_maker, cfg.data.groups_per_batch)
    a, b = source.batch(4), source.batch(4)
    assert a["audio"].shape == (15, SR) and a["audio"].dtype == np.float32
    np.testing.assert_array_equal(a["audio"], b["audio"])
    np.testing.assert_array_equal(a["labels"], b["labels"])
    assert not np.array_equal(a["audio"], source.batch(5)["audio"])
    other = OnlineSource(plan_data(cfg.replace(**{"data.seed": 4})).train_maker, 3).batch(4)
    assert not np.array_equal(a["audio"], other["audio"])
    # Same stream with worker processes (torch DataLoader): same batches, same order.
    with_workers = make_batch_stream(source, 4, num_workers=2, seed=0)
    for k in range(2):
        got = next(with_workers)
        want = a if k == 0 else source.batch(5)
        assert got["index"] == 4 + k
        np.testing.assert_array_equal(got["audio"], want["audio"])
    with_workers.close()

    for g in range(3):
        sel = a["groups"] == g
        labels = a["labels"][sel]
        fams = [f for f, s in zip(a["families"], sel) if s]
        assert fams[0] == "clean" and labels[0] == 0.0 and np.all(labels[1:] > 0)
        family = FAMILIES[fams[1]]
        assert set(fams[1:]) == {family.name}  # single-family groups
    # Monotone in intensity within a family (hybrid labels: isotonic in the parameter).
    for i in range(6):
        grp = plan.train_maker.make(i)
        fam = FAMILIES[grp.families[1]]
        severity = [fam.label(p) for p in grp.params[1:]]
        order = np.argsort(severity, kind="stable")
        assert np.all(np.diff(grp.labels[1:][order]) >= -1e-9)
        assert abs(float(np.sqrt(np.mean(grp.audio[0] ** 2))) - 0) > 1e-3  # the clean excerpt is not silent


def test_heldout_split_keeps_folders_together():
    from deepaq_core.training.data import SourceFile, split_heldout

    files = [SourceFile(f"/m/{folder}/{k}.flac", 48000 * 60, 48000, 2) for folder in "abcdefghij" for k in range(3)]
    train, held = split_heldout(files, 0.2, seed=0)
    held_folders = {f.path.split("/")[2] for f in held}
    assert len(held) == 6 and len(held_folders) == 2  # 20 % of the duration, whole folders
    assert not held_folders & {f.path.split("/")[2] for f in train}
    assert split_heldout(files, 0.2, seed=0) == (train, held)
    assert split_heldout(files[:1], 0.2, seed=0) == (files[:1], files[:1])


def test_param_labels_and_group_pool(tmp_path, clean_dir):
    from deepaq_core.degrade import FAMILIES
    from deepaq_core.training.data import GroupPool, PoolSource, build_pool, plan_data

    cfg = from_dict(tiny_config(clean_dir, "unused", data={"label_mode": "param", "group_mode": "mixed"}))
    maker = plan_data(cfg).train_maker
    grp = maker.make(0)
    for fam, value, label in zip(grp.families[1:], grp.params[1:], grp.labels[1:]):
        assert label == pytest.approx(FAMILIES[fam].label(value))
    pool = build_pool(maker, tmp_path / "pool", 5, fingerprint="fp", shard_size=2)
    assert len(pool) == 5 and sorted(p.name for p in (tmp_path / "pool").glob("shard-*")) == [
        "shard-00000.safetensors", "shard-00001.safetensors", "shard-00002.safetensors"]
    for i in (0, 4):
        want, got = maker.make(i), pool.group(i)
        np.testing.assert_array_equal(got.labels, want.labels)
        np.testing.assert_allclose(got.audio, want.audio, atol=2e-3, rtol=1e-3)  # stored as float16
        assert got.families == want.families
    mtime = (tmp_path / "pool" / "shard-00001.safetensors").stat().st_mtime_ns
    build_pool(maker, tmp_path / "pool", 5, fingerprint="fp", shard_size=2)  # complete: nothing regenerated
    assert (tmp_path / "pool" / "shard-00001.safetensors").stat().st_mtime_ns == mtime
    with pytest.raises(DeePAQError, match="other data settings"):
        build_pool(maker, tmp_path / "pool", 5, fingerprint="other", shard_size=2)
    src = PoolSource(GroupPool(tmp_path / "pool"), 2, seed=0, crop_seconds=0.5)
    b1, b2 = src.batch(3), src.batch(3)
    assert b1["audio"].shape == (8, SR // 2)
    np.testing.assert_array_equal(b1["audio"], b2["audio"])


# ------------------------------------------------------------------------------------- training


def _toy_batch() -> dict:
    """Fixed batch: two low-pass ladders and two noise ladders of different excerpts (param labels)."""
    from deepaq_core.degrade import FAMILIES, degrade
    from deepaq_core.training.data import Group, collate

    groups = []
    for g, (family, values) in enumerate([("lowpass", (6000, 3000, 1500)), ("white_noise", (30, 15, 0))] * 2):
        x = music_like(0.5, SR, seed=10 + g).T
        extra = {"seed": g} if family != "lowpass" else {}
        versions = [x[0]] + [degrade(x, SR, family, **{FAMILIES[family].param: v}, **extra)[0][0] for v in values]
        labels = [0.0] + [FAMILIES[family].label(v) for v in values]
        groups.append(Group(np.stack(versions).astype(np.float32), np.array(labels, np.float32),
                            ("clean",) + (family,) * 3, (None, *values), (None,) * 4, "toy", 0.0))
    return collate(groups)


def test_a_few_steps_reduce_the_loss_on_a_toy_ranking_task(tmp_path, clean_dir):
    from deepaq_core.training.trainer import Trainer

    cfg = from_dict(tiny_config(clean_dir, tmp_path / "run", optim={"steps": 30, "warmup_steps": 0, "lr": 2e-3}))
    trainer = Trainer(cfg)
    batch = _toy_batch()
    with torch.no_grad():
        before = float(trainer.loss(batch))
    losses = [trainer.train_step(batch)["loss"] for _ in range(30)]
    with torch.no_grad():
        after = float(trainer.loss(batch))
    assert losses[0] == pytest.approx(before, rel=1e-5)
    assert after < 0.8 * before, (before, after)
    assert trainer.step == 30 and trainer.lr_at(0) == pytest.approx(2e-3)


def test_resume_reproduces_an_uninterrupted_run(tmp_path, clean_dir):
    from deepaq_core.training.trainer import Trainer

    cfg = from_dict(tiny_config(clean_dir, tmp_path / "unused"))
    straight = Trainer(cfg, out_dir=tmp_path / "a")
    straight.fit()
    first = Trainer(cfg, out_dir=tmp_path / "b")
    res = first.fit(until=3)
    assert res.step == 3 and not res.finished
    assert sorted(p.name for p in (tmp_path / "b" / "last").iterdir()) == [
        "card.json", "training_state.json", "training_state.safetensors", "weights.safetensors"]
    with pytest.raises(DeePAQError, match="already holds a training run"):
        Trainer(cfg, out_dir=tmp_path / "b").fit()
    resumed = Trainer(cfg, out_dir=tmp_path / "b")
    res = resumed.fit(resume=True)
    assert res.finished and resumed.step == straight.step == 6
    assert resumed.batches_done == straight.batches_done
    for (name, p), (_, q) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0, msg=name)
    sa, sb = straight.optimizer.state_dict(), resumed.optimizer.state_dict()
    assert [g["lr"] for g in sa["param_groups"]] == [g["lr"] for g in sb["param_groups"]]
    for k in sa["state"]:
        torch.testing.assert_close(sa["state"][k]["exp_avg_sq"], sb["state"][k]["exp_avg_sq"], atol=1e-9, rtol=0)
        assert float(sa["state"][k]["step"]) == float(sb["state"][k]["step"]) == 6
    # The training log of the resumed run continues the interrupted one.
    steps = [int(line.split(",")[0]) for line in (tmp_path / "b" / "train.csv").read_text().splitlines()[1:]]
    assert steps == [2, 3, 4, 6]


def test_validation_picks_best_by_real_material(tmp_path, clean_dir):
    from deepaq_core.training.trainer import Trainer
    from deepaq_core.training.validate import fit_score_mapping

    manifest = tiny_manifest(tmp_path / "m")
    cfg = from_dict(tiny_config(clean_dir, tmp_path / "run", optim={"steps": 4}, validation={
        "every": 2, "heldout_groups": 4, "at_start": True, "fit_mapping_with_scorer": False,
        "manifests": [{"name": "toy", "path": str(manifest), "subjective": "mos"}]}))
    trainer = Trainer(cfg)
    res = trainer.fit()
    assert [h["step"] for h in res.history] == [0, 2, 4]
    for h in res.history:
        m = h["metrics"]
        for key in ("toy.pearson", "toy.spearman", "toy.kendall", "heldout.spearman", "heldout.loss"):
            assert math.isfinite(m[key]), key
        assert m["toy.n"] == 4 and m["toy.failed"] == 0
    # Step 0 (the untrained initialisation) is measured but is never the result.
    values = [h["metrics"]["real.spearman"] for h in res.history[1:]]
    assert res.best_step == res.history[1 + int(np.argmax(values))]["step"]  # first maximum wins ties
    card = json.loads((tmp_path / "run" / "best" / "card.json").read_text())
    assert card["status"] == "trained" and card["results"]["step"] == res.best_step
    assert card["results"]["untrained"] == pytest.approx(res.history[0]["metrics"]["real.spearman"])
    mapping = card["score_mapping"]
    assert mapping["d50"] > 0 and "held-out surrogate ladder" in mapping["fitted_on"]

    # Selection follows the configured real-material figure, not the loss; patience stops the run.
    trainer.cfg = trainer.cfg.replace(**{"validation.patience": 2})
    trainer.history, trainer.best, trainer.bad_validations = [], None, 0
    fake = [(10, 0.2, 0.9), (20, 0.6, 0.8), (30, 0.5, 0.1), (40, 0.55, 0.05)]  # step, real.spearman, heldout.loss
    stops = [trainer._after_validation({"step": s, "metrics": {"real.spearman": r, "heldout.loss": lo},
                                        "score_mapping": None, "seconds": 0.0}) for s, r, lo in fake]
    assert trainer.best["step"] == 20 and stops == [False, False, False, True]

    d = np.linspace(0.05, 1.0, 40)
    fit = fit_score_mapping(d, 0.5 * (d / 0.3) ** 1.5, where="test")
    assert fit["d50"] == pytest.approx(0.3, rel=0.02) and fit["power"] == pytest.approx(1.5, rel=0.02)


def test_mert_lora_trains_only_adapters_and_head_and_reloads(tmp_path):
    from transformers import HubertModel

    from deepaq_core.model.bundle import Bundle, build_model, read_card
    from deepaq_core.model.mert import mert_config_to_hubert, tiny_mert_config, write_mert_checkpoint
    from deepaq_core.training.trainer import Trainer

    torch.manual_seed(0)
    mert_dir = write_mert_checkpoint(HubertModel(mert_config_to_hubert(tiny_mert_config())), tmp_path / "mert",
                                     tiny_mert_config(), fmt="safetensors")
    cfg = from_dict({"device": "cpu",
                     "model": {"backbone": "mert", "mert": {"source": str(mert_dir), "id": "tiny/mert"},
                               "lora": {"rank": 4, "alpha": 8}},
                     "optim": {"steps": 2, "warmup_steps": 0, "lr": 1e-2},
                     "validation": {"heldout_groups": 0}, "output": {"dir": str(tmp_path / "run")}})
    trainer = Trainer(cfg)
    before = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    rng = np.random.default_rng(0)
    batch = {"audio": (0.1 * rng.standard_normal((6, SR // 2))).astype(np.float32),
             "labels": np.array([0, 0.3, 0.7] * 2, np.float32), "groups": np.array([0, 0, 0, 1, 1, 1])}
    for _ in range(2):
        trainer.train_step(batch)
    changed = {k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all("lora_" in k or k.startswith("head.") for k in changed)
    assert any("lora_A" in k for k in changed) and any("lora_B" in k for k in changed)
    assert "head.projection.weight" in changed
    assert not any("feature_extractor" in k for k in changed)

    folder = trainer.save_checkpoint(tmp_path / "ckpt")
    card = read_card(folder)
    assert card["backbone"]["type"] == "mert" and card["backbone"]["local_path"] == str(Path(mert_dir).resolve())
    assert card["lora"]["rank"] == 4
    from safetensors import safe_open

    with safe_open(str(folder / "weights.safetensors"), framework="pt") as fh:
        keys = list(fh.keys())
    assert all("lora_" in k or k.startswith("head.") for k in keys)  # MERT's own weights stay on the hub
    loaded = build_model(Bundle(card, folder))
    trainer.model.eval()
    wave = torch.from_numpy(batch["audio"][:2])
    with torch.no_grad():
        torch.testing.assert_close(loaded(wave)[0], trainer.model(wave)[0], atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------- CLI


def test_cli_make_cache_train_and_score(tmp_path, clean_dir, capsys):
    from deepaq_core.cli import main

    cfg_path = tmp_path / "tiny.toml"
    d = tiny_config(clean_dir, "run", data={"cache": "cache", "cache_groups": 6},
                    optim={"steps": 3}, validation={"heldout_groups": 3, "every": 3})
    cfg_path.write_text(to_toml(from_dict(d, base_dir=tmp_path)))
    assert main(["train", "--make-cache", str(cfg_path)]) == 0
    out = capsys.readouterr().out
    assert "6 training groups" in out and (tmp_path / "cache" / "train" / "pool.json").is_file()
    assert main(["train", str(cfg_path), "--out", str(tmp_path / "cli-run"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "finished at step 3" in out
    card = json.loads((tmp_path / "cli-run" / "best" / "card.json").read_text())
    assert card["training"]["data"]["source"].startswith("pool of 6 groups")
    assert "scoring path" in card["score_mapping"]["fitted_on"] and card["score_mapping"]["d50"] > 0

    ref = music_like(2.0, 48000, channels=2, seed=5)
    sf.write(tmp_path / "ref.wav", ref, 48000, subtype="FLOAT")
    sf.write(tmp_path / "lp.wav", lowpass(ref, 48000, 2000), 48000, subtype="FLOAT")
    code = main(["score", str(tmp_path / "ref.wav"), str(tmp_path / "ref.wav"), str(tmp_path / "lp.wav"),
                 "--model", str(tmp_path / "cli-run" / "best"), "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    scores = [float(line.split()[0]) for line in out.splitlines() if line.strip().endswith(".wav")]
    assert scores[0] == pytest.approx(100.0, abs=1e-3) and scores[1] < 100.0
    assert "deepaq-trained" in out

    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nbackbone = \"compact\"\nwidth = 3\n")
    code = main(["train", str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("deepaq: error:") == 1 and "'model.width'" in err


def test_registering_the_command_does_not_import_torch():
    code = ("import sys, argparse; import deepaq_core.training.cli as c; "
            "p = argparse.ArgumentParser(); c.register(p.add_subparsers()); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_relabel_pool_with_zimtohrli_keeps_audio_and_orders_labels(tmp_path, clean_dir):
    pytest.importorskip("zimtohrli")
    import importlib.util

    from deepaq_core.degrade import FAMILIES
    from deepaq_core.training.data import GroupPool, build_pool, plan_data

    cfg = from_dict(tiny_config(clean_dir, "unused", data={"label_mode": "hybrid", "group_mode": "single"}))
    maker = plan_data(cfg).train_maker
    build_pool(maker, tmp_path / "src" / "train", 5, fingerprint="fp", shard_size=2)  # three shards
    spec = importlib.util.spec_from_file_location("relabel_pool", Path(__file__).parents[2] / "tools" / "relabel_pool.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    argv = sys.argv
    try:
        sys.argv = ["relabel_pool.py", str(tmp_path / "src"), str(tmp_path / "dst"), "--jobs", "1"]
        assert tool.main() == 0
        assert tool.main() == 2  # the destination exists now: refused, nothing overwritten
    finally:
        sys.argv = argv
    src, dst = GroupPool(tmp_path / "src" / "train"), GroupPool(tmp_path / "dst" / "train")
    assert dst.info["relabelled"]["teacher"] == "zimtohrli" and len(dst) == 5
    for i in range(5):
        a, b = src.group(i), dst.group(i)
        np.testing.assert_array_equal(a.audio, b.audio)
        assert b.labels[0] == 0.0 and (b.labels[1:] > 0).all() and (b.labels < 1).all()
        assert all(t > 0 for t in b.teacher_db[1:])
        severity = [FAMILIES[f].label(p) for f, p in zip(b.families[1:], b.params[1:])]
        order = np.argsort(severity, kind="stable")
        assert (np.diff(b.labels[1:][order]) >= -1e-9).all()  # non-decreasing in severity
