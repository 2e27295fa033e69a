"""The training loop: AdamW, cosine schedule, accumulation, autocast, validation, checkpoints.

::

    from deepaq_core.training import Trainer, load_config
    result = Trainer(load_config("configs/compact.toml")).fit()
    print(result.best_bundle)          # a bundle folder: deepaq score --model <that folder> ...

The embedding the loss sees is the one scoring uses: frame embeddings ``[B, T, D]`` of the
:class:`~deepaq_core.model.head.EmbeddingModel` -> mean over time -> L2 normalisation (a pooled
window) -> :func:`~deepaq_core.training.losses.rnc_loss` with the groups of the batch.

Run folder (``output.dir``)::

    config.toml        the exact configuration (absolute paths)
    log.jsonl          every event: training rows, validations, checkpoints, the end
    train.csv          step, loss, lr, grad_norm, steps_per_s, items_per_s, data_wait, elapsed_s
    validation.csv     step and every validation number
    train.log          the log messages
    heldout/           the held-out validation groups (without data.cache)
    last/              bundle + training state (resume point), rewritten every checkpoint_every steps
    best/              bundle of the best validation so far (output.bundle_dtype)

Multi-GPU: started by ``torchrun --nproc_per_node=N -m deepaq_core.cli train CONFIG`` the
``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` variables are set; the model is wrapped in
:class:`torch.nn.parallel.DistributedDataParallel`, rank ``r`` trains on global batches
``b * N + r``, and rank 0 alone validates, logs and saves. A single process needs none of it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepaq_core.errors import DeePAQError
from deepaq_core.training.config import TrainConfig, save_config

log = logging.getLogger(__name__)

TRAIN_COLUMNS = ["step", "loss", "lr", "grad_norm", "steps_per_s", "items_per_s", "data_wait", "elapsed_s"]
_PLACEHOLDER_MAPPING = {"type": "exp2", "d50": 0.5, "power": 1.0,
                        "fitted_on": "placeholder: no held-out surrogate ladder was available to fit on"}


# ------------------------------------------------------------------------------------- model


def build_model(cfg: TrainConfig):
    """The model a config describes, freshly initialised (``model.init_seed``).

    Returns
    -------
    model : EmbeddingModel
        On the CPU. Compact: every parameter trainable. MERT: LoRA adapters added, every MERT
        weight (convolutional feature encoder included) frozen; the head trainable.
    backbone_card : dict
        The card's ``backbone`` entry.
    include_backbone : bool
        Whether bundles store the backbone's weights (compact) or only head + adapters (MERT).
    """
    from deepaq_core.model.head import EmbeddingHead, EmbeddingModel

    m = cfg.model
    torch.manual_seed(int(m.init_seed))
    if m.backbone == "compact":
        from deepaq_core.model.compact import CompactBackbone, CompactConfig

        ccfg = CompactConfig(**dataclasses.asdict(m.compact))
        backbone = CompactBackbone(ccfg)
        bb_card = {"type": "compact", "config": ccfg.to_dict()}
        include = True
    else:
        from deepaq_core.model.lora import LoraSettings, add_lora
        from deepaq_core.model.mert import MertBackbone

        backbone = MertBackbone.from_pretrained(m.mert.source, m.mert.revision or None)
        meta = backbone.metadata
        local = Path(m.mert.source).expanduser().is_dir()
        hub_id = m.mert.id or (Path(m.mert.source).name if local else m.mert.source)
        backbone.name = hub_id
        bb_card = {"type": "mert", "id": hub_id, "revision": meta.get("commit") or meta.get("revision")}
        if local:
            bb_card["local_path"] = str(Path(meta["folder"]).resolve())
        add_lora(backbone, LoraSettings(rank=m.lora.rank, alpha=m.lora.alpha, dropout=m.lora.dropout,
                                        target_ffn=m.lora.target_ffn))
        if m.mert.gradient_checkpointing:
            backbone.hubert.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        include = False
    head = EmbeddingHead(backbone.num_hidden_states, backbone.hidden_size, dim=m.head_dim)
    return EmbeddingModel(backbone, head), bb_card, include


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Learning-rate multiplier for optimizer step ``step`` (0-based): linear warm-up, then cosine."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ------------------------------------------------------------------------------------- results


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` leaves behind."""

    out_dir: Path
    step: int
    finished: bool
    stopped_early: bool
    best_metric: str
    best_value: float | None
    best_step: int | None
    best_bundle: Path | None
    last_bundle: Path
    seconds: float
    history: list[dict] = field(default_factory=list)


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def _dist_from_env() -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


# ------------------------------------------------------------------------------------- trainer


class Trainer:
    """Trains an embedding model with the adapted Rank-N-Contrast loss.

    Parameters
    ----------
    cfg : TrainConfig
    device : str, optional
        Overrides ``cfg.device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``).
    out_dir : path, optional
        Overrides ``cfg.output.dir``.
    """

    def __init__(self, cfg: TrainConfig, *, device: str | None = None, out_dir: str | os.PathLike | None = None):
        from deepaq_core.model.device import resolve_device

        self.cfg = cfg
        self.dist = _dist_from_env()
        if not self.dist.main:  # one progress log, from rank 0
            logging.getLogger("deepaq_core.training").setLevel(logging.WARNING)
        if self.dist.enabled and torch.cuda.is_available():
            torch.cuda.set_device(self.dist.local_rank)
            self.device = torch.device("cuda", self.dist.local_rank)
        else:
            self.device = resolve_device(device or cfg.device)
        self.out_dir = Path(out_dir or cfg.output.dir).expanduser()
        self.model, self.backbone_card, self.include_backbone = build_model(cfg)
        self.model.to(self.device).train()
        decay, no_decay = [], []
        for p in self.model.parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 else no_decay).append(p)
        self.params = decay + no_decay
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=o.lr, betas=tuple(o.betas),
        )
        cuda = self.device.type == "cuda"
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(o.precision) if cuda else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=cuda and o.precision == "fp16")
        self.train_model = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            self.train_model = DistributedDataParallel(self.model, device_ids=[self.dist.local_rank] if cuda else None)
        # Progress and validation state (all saved in checkpoints).
        self.step = 0
        self.batches_done = 0
        self.items_seen = 0
        self.skipped_steps = 0
        self.elapsed_s = 0.0
        self.history: list[dict] = []
        self.best: dict | None = None
        self.bad_validations = 0
        self.stopped_early = False
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        # Set by prepare_data().
        self.plan = None
        self.heldout = None
        self.heldout_groups: list = []
        self.source = None
        self.source_kind = ""
        self.manifest_rows: dict = {}
        self._log_handler: logging.Handler | None = None

    # -- schedule and one step ------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        o = self.cfg.optim
        return o.lr * lr_factor(step, o.steps, o.warmup_steps, o.min_lr_ratio)

    def autocast(self):
        """The forward pass's autocast context (bf16/fp16 on CUDA only)."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def embed(self, audio: torch.Tensor, model=None) -> torch.Tensor:
        """``[B, N]`` audio -> ``[B, D]`` pooled unit-norm embeddings (float32), as scoring pools windows."""
        from deepaq_core.training.validate import pooled_embedding

        with self.autocast():
            frames, _ = (model or self.train_model)(audio)
        return pooled_embedding(frames)

    def loss(self, batch: dict, model=None) -> torch.Tensor:
        """Rank-N-Contrast loss of one batch (dict from :func:`~deepaq_core.training.data.collate`), per ``cfg.loss``."""
        from deepaq_core.training.losses import batch_loss

        audio = torch.as_tensor(batch["audio"], dtype=torch.float32).to(self.device, non_blocking=True)
        labels = torch.as_tensor(batch["labels"], dtype=torch.float32).to(self.device)
        groups = torch.as_tensor(batch["groups"], dtype=torch.long).to(self.device)
        z = self.embed(audio, model)
        return batch_loss(z, labels, groups, self.cfg.loss)

    def train_step(self, batches: dict | list[dict]) -> dict:
        """One optimizer step on one batch or a list of ``grad_accum`` micro-batches.

        Returns
        -------
        dict
            ``loss`` (mean over micro-batches), ``lr`` (used for this step), ``grad_norm``
            (before clipping), ``items``.
        """
        micro = batches if isinstance(batches, list) else [batches]
        self.train_model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total, items = 0.0, 0
        for i, batch in enumerate(micro):
            sync = self.dist.enabled and i < len(micro) - 1
            with self.train_model.no_sync() if sync else nullcontext():
                loss = self.loss(batch) / len(micro)
                self.scaler.scale(loss).backward()
            total += float(loss.detach())
            items += len(batch["labels"])
        lr = self.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.scaler.unscale_(self.optimizer)
        clip = self.cfg.optim.grad_clip
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, clip if clip > 0 else float("inf"))
        if math.isfinite(total) and torch.isfinite(grad_norm):
            self.scaler.step(self.optimizer)
        else:
            self.skipped_steps += 1
            log.warning("step %d: non-finite loss or gradient (loss %s); update skipped", self.step + 1, total)
            if self.scaler.is_enabled():
                self.scaler.step(self.optimizer)  # lets the scaler see the inf and back off
        self.scaler.update()
        self.step += 1
        self.batches_done += len(micro)
        self.items_seen += items
        return {"loss": total, "lr": lr, "grad_norm": float(grad_norm), "items": items}

    # -- data -----------------------------------------------------------------------------
    def prepare_data(self, num_workers: int | None = None) -> None:
        """Scan clean audio, make or open the held-out groups and the training source."""
        from deepaq_core.training.data import (
            STREAM_TRAIN,
            OnlineSource,
            PoolSource,
            heldout_pool,
            open_pool,
            plan_data,
            pool_fingerprint,
            settings_fingerprint,
        )
        from deepaq_core.training.validate import load_manifest_rows

        cfg = self.cfg
        workers = cfg.data.num_workers if num_workers is None else num_workers
        # Manifests first: a missing file should stop the run now, not at the first validation.
        self.manifest_rows = {spec.name: load_manifest_rows(spec) for spec in cfg.validation.manifests}
        self.plan = plan_data(cfg)
        cache = Path(cfg.data.cache) if cfg.data.cache else None
        if self.dist.main:
            folder = (cache / "heldout") if cache else (self.out_dir / "heldout")
            self.heldout = heldout_pool(cfg, self.plan, folder, num_workers=workers)
        self._barrier()  # only rank 0 makes (and uses) the held-out groups
        self.heldout_groups = list(self.heldout.groups()) if self.heldout is not None else []
        if cache is not None:
            fp = pool_fingerprint(cfg, self.plan.train_files, self.plan.families, STREAM_TRAIN)
            pool = open_pool(cache / "train", fp, settings_fingerprint(cfg, self.plan.families, STREAM_TRAIN))
            self.source = PoolSource(pool, cfg.data.groups_per_batch, cfg.data.seed, cfg.data.crop_seconds)
            self.source_kind = f"pool of {len(pool)} groups ({cache / 'train'})"
        else:
            self.source = OnlineSource(self.plan.train_maker, cfg.data.groups_per_batch, cfg.data.crop_seconds)
            self.source_kind = "generated on the fly"
        log.info("data: %s; %d training files (%.2f h), %d held-out files, %d held-out groups; families %s",
                 self.source_kind, len(self.plan.train_files), self.plan.summary()["train_hours"],
                 len(self.plan.heldout_files), len(self.heldout_groups), ", ".join(self.plan.families))

    def _barrier(self) -> None:
        if self.dist.enabled:
            torch.distributed.barrier()

    # -- cards ----------------------------------------------------------------------------
    def _training_summary(self) -> dict:
        cfg = self.cfg
        d = cfg.data
        return {
            "method": "adapted Rank-N-Contrast on surrogate labels (docs/TRAINING.md)",
            "data": {
                **(self.plan.summary() if self.plan is not None else {}),
                "source": self.source_kind,
                "excerpt_s": d.excerpt_seconds,
                "crop_s": d.crop_seconds or None,
                "generation_rate": d.generation_rate,
                "channels": d.channels,
                "label_mode": d.label_mode,
                "group_mode": d.group_mode,
                "versions_per_group": d.versions_per_group,
                "groups_per_batch": d.groups_per_batch,
                "target_lufs": d.target_lufs,
                "seed": d.seed,
            },
            "loss": dataclasses.asdict(cfg.loss),
            "optimizer": {"type": "AdamW", **dataclasses.asdict(cfg.optim)},
            "steps": self.step,
            "planned_steps": cfg.optim.steps,
            "items_seen": self.items_seen,
            "skipped_steps": self.skipped_steps,
            "seconds": round(self.elapsed_s, 1),
            "device": str(self.device) + (f" x{self.dist.world}" if self.dist.enabled else ""),
            "started": self.started,
            "config_sha": {k: cfg.fingerprint(k) for k in ("data", "model", "optim", "loss")},
        }

    def card(self, score_mapping: dict | None = None, results: dict | None = None) -> dict:
        """A bundle card for the current model."""
        cfg = self.cfg
        bb = self.model.backbone
        lora = dataclasses.asdict(cfg.model.lora) if cfg.model.backbone == "mert" else None
        what = "compact log-mel + transformer backbone" if cfg.model.backbone == "compact" else \
            f"{self.backbone_card['id']} with LoRA adapters (rank {cfg.model.lora.rank})"
        return {
            "name": cfg.output.name,
            "version": cfg.output.version,
            "status": "trained",
            "description": cfg.output.description or f"DeePAQ {what}, trained with the adapted Rank-N-Contrast loss "
            f"on {cfg.data.label_mode} surrogate labels ({self.step} steps)",
            "backbone": dict(self.backbone_card),
            "sample_rate": int(bb.sample_rate),
            "frame_rate": bb.sample_rate / bb.hop_length,
            "hop_length": int(bb.hop_length),
            "layers": int(bb.num_hidden_states),
            "embedding_dim": int(self.model.head.dim),
            "head": {"projection": True, "dim": int(self.model.head.dim)},
            "lora": lora,
            "score_mapping": score_mapping or dict(_PLACEHOLDER_MAPPING),
            "training": self._training_summary(),
            "results": _clean(results),
        }

    # -- checkpoints ----------------------------------------------------------------------
    def _state(self) -> dict:
        return {
            "step": self.step,
            "batches_done": self.batches_done,
            "items_seen": self.items_seen,
            "skipped_steps": self.skipped_steps,
            "elapsed_s": self.elapsed_s,
            "history": self.history,
            "best": self.best,
            "bad_validations": self.bad_validations,
            "stopped_early": self.stopped_early,
            "started": self.started,
            "fingerprints": {k: self.cfg.fingerprint(k) for k in ("data", "model", "optim", "loss")},
            "world": self.dist.world,
        }

    def _latest_mapping(self) -> dict | None:
        for rec in reversed(self.history):
            if rec.get("score_mapping"):
                return rec["score_mapping"]
        return None

    def save_checkpoint(self, folder: str | os.PathLike | None = None) -> Path:
        """Write the resumable checkpoint (bundle + training state) to ``folder`` (default ``last/``)."""
        from deepaq_core.training.checkpoint import save_checkpoint

        target = Path(folder) if folder is not None else self.out_dir / "last"
        results = {"step": self.step, "validation": self.history[-1]["metrics"]} if self.history else None
        save_checkpoint(target, self.model, self.card(self._latest_mapping(), results),
                        include_backbone=self.include_backbone, optimizer=self.optimizer, scaler=self.scaler,
                        state=self._state(), dtype="float32")
        self._event({"event": "checkpoint", "step": self.step, "folder": str(target)})
        return target

    def load_checkpoint(self, folder: str | os.PathLike | None = None) -> None:
        """Restore model, optimizer, scaler, generators and progress from a checkpoint folder."""
        from deepaq_core.training.checkpoint import (
            load_training_state,
            load_weights,
            optimizer_from_flat,
            rng_from_flat,
        )

        src = Path(folder) if folder is not None else self.out_dir / "last"
        tensors, payload = load_training_state(src)
        state = payload["trainer"]
        fps = state.get("fingerprints", {})
        if fps.get("model") and fps["model"] != self.cfg.fingerprint("model"):
            raise DeePAQError(f"The checkpoint in '{src}' was trained with other model settings; resume with the "
                              "same [model] table or start a new run.")
        for section in ("data", "optim", "loss"):
            if fps.get(section) and fps[section] != self.cfg.fingerprint(section):
                log.warning("resuming with changed [%s] settings (the run continues with the new ones)", section)
        load_weights(self.model, src, include_backbone=self.include_backbone)
        self.optimizer.load_state_dict(optimizer_from_flat(tensors, payload["optimizer"]))
        if payload.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(payload["scaler"])
        rng_from_flat(tensors, payload.get("rng", {}))
        self.step = int(state["step"])
        self.batches_done = int(state["batches_done"])
        self.items_seen = int(state.get("items_seen", 0))
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.elapsed_s = float(state.get("elapsed_s", 0.0))
        self.history = list(state.get("history", []))
        self.best = state.get("best")
        self.bad_validations = int(state.get("bad_validations", 0))
        self.stopped_early = bool(state.get("stopped_early", False))
        self.started = state.get("started", self.started)
        if int(state.get("world", 1)) != self.dist.world:
            log.warning("resuming on %d processes after %d: the data order changes", self.dist.world,
                        state.get("world"))
        log.info("resumed from %s at step %d", src, self.step)

    # -- validation -----------------------------------------------------------------------
    def validate(self) -> dict:
        """Validation numbers for the current model (held-out groups and manifests)."""
        from deepaq_core.training.validate import (
            embed_groups,
            fit_score_mapping,
            heldout_metrics,
            heldout_records,
            manifest_metrics,
        )

        t0 = time.perf_counter()
        metrics: dict[str, Any] = {}
        mapping = None
        if self.heldout_groups:
            emb = embed_groups(self.model, self.heldout_groups, self.device, autocast=self.autocast)
            metrics.update(heldout_metrics(self.heldout_groups, emb, self.cfg.loss))
            recs = heldout_records(self.heldout_groups, emb)
            mapping = fit_score_mapping([r["distance"] for r in recs], [r["label"] for r in recs],
                                        where=f"held-out surrogate ladder at step {self.step} (pooled excerpt "
                                        "distances, provisional)")
        if self.cfg.validation.manifests:
            card = self.card(mapping)
            real, _ = manifest_metrics(self.model, card, self.cfg.validation.manifests, self.device,
                                       rows=self.manifest_rows)
            metrics.update(real)
        rec = {"step": self.step, "metrics": metrics, "score_mapping": mapping,
               "seconds": round(time.perf_counter() - t0, 2)}
        return rec

    def _after_validation(self, rec: dict) -> bool:
        """Record a validation, keep the best checkpoint, decide early stopping (True = stop)."""
        v = self.cfg.validation
        metric = self.cfg.selection_metric
        value = rec["metrics"].get(metric)
        rec["selected"] = {"metric": metric, "value": value}
        self.history.append(rec)
        shown = {k: round(val, 4) for k, val in rec["metrics"].items()
                 if _finite(val) and not k.startswith("heldout.family.") and not k.endswith((".n", ".failed"))}
        log.info("validation at step %d (%.1f s): %s", self.step, rec["seconds"],
                 ", ".join(f"{k} {val}" for k, val in shown.items()))
        self._event({"event": "validation", **rec})
        self._validation_csv(rec)
        if not metric:
            return False
        if rec["step"] == 0:
            # The untrained initialisation is the starting point to beat, never the result.
            log.info("untrained initialisation: %s = %s", metric, f"{value:.4f}" if _finite(value) else value)
            return False
        sign = -1.0 if metric.endswith(".loss") else 1.0
        improved = _finite(value) and (self.best is None or sign * (value - self.best["value"]) > v.min_delta)
        if improved:
            self.best = {"metric": metric, "value": float(value), "step": int(rec["step"])}
            self.bad_validations = 0
            self._save_best(rec)
            log.info("new best %s = %.4f at step %d", metric, value, self.step)
        else:
            self.bad_validations += 1
        if v.patience and self.bad_validations >= v.patience:
            log.info("early stopping: %s has not improved for %d validations (best %.4f at step %d)", metric,
                     self.bad_validations, self.best["value"] if self.best else float("nan"),
                     self.best["step"] if self.best else -1)
            self.stopped_early = True
            return True
        return False

    def _untrained_value(self) -> float | None:
        """The selection metric of the untrained initialisation (step-0 validation), if measured."""
        for rec in self.history:
            if rec["step"] == 0:
                value = rec["metrics"].get(self.cfg.selection_metric)
                return float(value) if _finite(value) else None
        return None

    def _save_best(self, rec: dict) -> None:
        from deepaq_core.training.checkpoint import save_checkpoint

        card = self.card(rec.get("score_mapping"), {"step": self.step, "selected_by": self.best,
                                                     "untrained": self._untrained_value(),
                                                     "validation": rec["metrics"]})
        save_checkpoint(self.out_dir / "best", self.model, card, include_backbone=self.include_backbone,
                        dtype=self.cfg.output.bundle_dtype)
        self._event({"event": "best", "step": self.step, "metric": self.best["metric"], "value": self.best["value"]})

    def _validate_and_decide(self) -> bool:
        stop = False
        if self.dist.main:
            stop = self._after_validation(self.validate())
        if self.dist.enabled:
            flag = torch.tensor([1.0 if stop else 0.0], device=self.device if self.device.type == "cuda" else "cpu")
            torch.distributed.broadcast(flag, src=0)
            stop = bool(flag.item())
        return stop

    # -- logs -----------------------------------------------------------------------------
    def _open_logs(self) -> None:
        if not self.dist.main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.out_dir / "train.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger("deepaq_core.training").addHandler(handler)
        self._log_handler = handler

    def _close_logs(self) -> None:
        if self._log_handler is not None:
            logging.getLogger("deepaq_core.training").removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None

    def _event(self, record: dict) -> None:
        if not self.dist.main or not self.out_dir.is_dir():
            return
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **record}
        with open(self.out_dir / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(_clean(record), default=_json_default) + "\n")

    def _csv_row(self, name: str, row: dict, columns: list[str]) -> None:
        if not self.dist.main:
            return
        path = self.out_dir / name
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as f:
                header = next(csv.reader(f), None) or columns
        else:
            header = columns
        with open(path, "a", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore", restval="")
            if not path.stat().st_size:
                w.writeheader()
            w.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})

    def _validation_csv(self, rec: dict) -> None:
        row = {"step": rec["step"], **rec["metrics"]}
        if rec.get("score_mapping"):
            row["d50"] = rec["score_mapping"]["d50"]
            row["power"] = rec["score_mapping"]["power"]
        self._csv_row("validation.csv", row, list(row))

    # -- the loop -------------------------------------------------------------------------
    def fit(self, until: int | None = None, *, resume: bool | None = None) -> TrainResult:
        """Train to ``optim.steps`` (or stop at step ``until``, keeping the run resumable).

        Parameters
        ----------
        until : int, optional
            Stop after this many optimizer steps in total, as an interruption would (the
            checkpoint in ``last/`` is written; the schedule still ends at ``optim.steps``).
        resume : bool, optional
            Continue from ``last/`` (default ``output.resume``). Without it an output folder that
            already holds a run is refused.
        """
        from deepaq_core.training.data import make_batch_stream

        cfg = self.cfg
        resume = cfg.output.resume if resume is None else resume
        last = self.out_dir / "last"
        if resume and (last / "training_state.json").is_file():
            self.load_checkpoint(last)
        elif resume:
            log.info("nothing to resume in %s: starting a new run", self.out_dir)
        elif last.exists() and self.step == 0:
            raise DeePAQError(f"The output folder '{self.out_dir}' already holds a training run; pass --resume to "
                              "continue it or choose another output folder.")
        self._open_logs()
        try:
            if self.dist.main:
                save_config(cfg, self.out_dir / "config.toml")
            self._event({"event": "start", "step": self.step, "device": str(self.device), "world": self.dist.world,
                         "trainable_parameters": sum(p.numel() for p in self.params)})
            if self.plan is None:
                self.prepare_data()
            total = cfg.optim.steps
            stop_at = min(total, until) if until is not None else total
            if self.step == 0 and not self.history and cfg.validation.at_start and cfg.selection_metric:
                self._validate_and_decide()
            workers = cfg.data.num_workers
            if self.source_kind.startswith("pool"):
                # Reading a pool is cheap: one worker overlaps it with training, more only take CPU
                # from the model.
                workers = min(workers, 1)
            stream = make_batch_stream(self.source, self.batches_done, num_workers=workers,
                                       rank=self.dist.rank, world=self.dist.world, seed=cfg.data.seed)
            stop = self.stopped_early
            try:
                stop = self._loop(stream, stop_at, total, stop)
            except KeyboardInterrupt:
                if self.dist.main and self.step > 0:
                    self.save_checkpoint()
                    log.warning("interrupted at step %d; the run continues from %s with --resume", self.step, last)
                raise
            finally:
                stream.close()
            finished = self.step >= total or self.stopped_early
            if finished and self.dist.main:
                self.finalize()
            self._barrier()
            best = self.out_dir / "best"
            result = TrainResult(
                out_dir=self.out_dir, step=self.step, finished=finished, stopped_early=self.stopped_early,
                best_metric=cfg.selection_metric, best_value=self.best["value"] if self.best else None,
                best_step=self.best["step"] if self.best else None,
                best_bundle=best if best.is_dir() else None, last_bundle=last, seconds=self.elapsed_s,
                history=self.history,
            )
            self._event({"event": "end", "step": self.step, "finished": finished, "stopped_early": self.stopped_early,
                         "best": self.best, "seconds": round(self.elapsed_s, 1)})
            return result
        finally:
            self._close_logs()

    def _loop(self, stream, stop_at: int, total: int, stop: bool) -> bool:
        """Optimizer steps until ``stop_at`` or early stopping; checkpoints and validations on the way."""
        cfg = self.cfg
        window = {"loss": 0.0, "n": 0, "items": 0, "wait": 0.0, "t0": time.perf_counter(), "gn": 0.0}
        last_saved = self.step
        t_mark = time.perf_counter()
        while self.step < stop_at and not stop:
            t_wait = time.perf_counter()
            micro = [next(stream) for _ in range(cfg.optim.grad_accum)]
            window["wait"] += time.perf_counter() - t_wait
            out = self.train_step(micro)
            now = time.perf_counter()
            self.elapsed_s += now - t_mark
            t_mark = now
            window["loss"] += out["loss"]
            window["gn"] += out["grad_norm"]
            window["n"] += 1
            window["items"] += out["items"]
            if self.step % cfg.optim.log_every == 0 or self.step == stop_at:
                self._log_train(window, out["lr"])
                window = {"loss": 0.0, "n": 0, "items": 0, "wait": 0.0, "t0": time.perf_counter(), "gn": 0.0}
            t_other = time.perf_counter()
            if cfg.selection_metric and (self.step % cfg.validation.every == 0 or self.step == total):
                stop = self._validate_and_decide()
            if self.dist.main and (self.step % cfg.output.checkpoint_every == 0 or self.step == stop_at or stop):
                self.save_checkpoint()
                last_saved = self.step
            # Validation and checkpoint time is neither training time nor part of steps/s.
            t_mark = time.perf_counter()
            window["t0"] += t_mark - t_other
        if self.dist.main and last_saved != self.step:
            self.save_checkpoint()
        return stop

    def _log_train(self, window: dict, lr: float) -> None:
        n = max(1, window["n"])
        dt = max(1e-9, time.perf_counter() - window["t0"])
        row = {
            "step": self.step,
            "loss": window["loss"] / n,
            "lr": lr,
            "grad_norm": window["gn"] / n,
            "steps_per_s": n / dt,
            "items_per_s": window["items"] / dt,
            "data_wait": window["wait"] / dt,
            "elapsed_s": round(self.elapsed_s, 1),
        }
        log.info("step %d/%d  loss %.4f  lr %.2e  grad %.3f  %.3f steps/s  %.1f items/s  data wait %.0f%%",
                 self.step, self.cfg.optim.steps, row["loss"], lr, row["grad_norm"], row["steps_per_s"],
                 row["items_per_s"], 100 * row["data_wait"])
        self._event({"event": "train", **row})
        self._csv_row("train.csv", row, TRAIN_COLUMNS)

    # -- the end --------------------------------------------------------------------------
    def finalize(self) -> None:
        """Fit the score mapping of ``best/`` and ``last/`` through the scoring path; finish their cards.

        ``best/`` falls back to a copy of ``last/`` when no validation ever chose one.
        """
        from deepaq_core.training.checkpoint import load_weights, save_checkpoint

        best, last = self.out_dir / "best", self.out_dir / "last"
        base = self._untrained_value()
        if self.best is not None and base is not None:
            sign = -1.0 if self.best["metric"].endswith(".loss") else 1.0
            if sign * (self.best["value"] - base) <= 0:
                log.warning("no checkpoint beat the untrained initialisation on %s (%.4f at step 0, best %.4f at "
                            "step %d)", self.best["metric"], base, self.best["value"], self.best["step"])
        if not best.is_dir():
            log.warning("no validation chose a best checkpoint; best/ is the last model")
            save_checkpoint(best, self.model, self.card(self._latest_mapping()), include_backbone=self.include_backbone,
                            dtype=self.cfg.output.bundle_dtype)
        for folder in (best, last):
            load_weights(self.model, folder, include_backbone=self.include_backbone)
            mapping = self._final_mapping(folder.name)
            if mapping is not None:
                _update_card(folder, score_mapping=mapping)
        load_weights(self.model, last, include_backbone=self.include_backbone)
        for folder in (best, last):
            _update_card(folder, training=self._training_summary())
        self._event({"event": "final_mapping", "best": _read_card(best)["score_mapping"],
                     "last": _read_card(last)["score_mapping"]})

    def _final_mapping(self, which: str) -> dict | None:
        from deepaq_core.training.validate import embed_groups, fit_score_mapping, heldout_records, scorer_distances

        if not self.heldout_groups:
            return None
        if self.cfg.validation.fit_mapping_with_scorer:
            recs = scorer_distances(self.model, self.card(), self.heldout_groups, self.device)
            where = (f"held-out surrogate ladder ({len(self.heldout_groups)} excerpts of "
                     f"{self.cfg.data.excerpt_seconds:g} s, {self.cfg.data.label_mode} labels), distances from the "
                     "scoring path")
        else:
            emb = embed_groups(self.model, self.heldout_groups, self.device, autocast=self.autocast)
            recs = heldout_records(self.heldout_groups, emb)
            where = f"held-out surrogate ladder ({self.cfg.data.label_mode} labels), pooled excerpt distances"
        mapping = fit_score_mapping([r["distance"] for r in recs], [r["label"] for r in recs], where=where)
        log.info("score mapping of %s/: %s", which, mapping)
        return mapping


def _read_card(folder: Path) -> dict:
    return json.loads((folder / "card.json").read_text(encoding="utf-8"))


def _update_card(folder: Path, **fields: Any) -> None:
    """Change card fields of a written bundle (the weights and their checksum stay)."""
    card = _read_card(folder)
    card.update(fields)
    tmp = folder / "card.json.tmp"
    tmp.write_text(json.dumps(card, indent=2, default=_json_default) + "\n", encoding="utf-8")
    os.replace(tmp, folder / "card.json")


def _clean(value: Any) -> Any:
    """Non-finite floats -> None (strict JSON), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def train(cfg: TrainConfig, *, device: str | None = None, out_dir: str | os.PathLike | None = None,
          resume: bool | None = None) -> TrainResult:
    """Build a :class:`Trainer` and run :meth:`Trainer.fit`."""
    return Trainer(cfg, device=device, out_dir=out_dir).fit(resume=resume)


__all__ = ["TrainResult", "Trainer", "build_model", "lr_factor", "train"]
