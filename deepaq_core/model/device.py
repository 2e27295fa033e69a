"""Device choice and safe batched inference (autocast on GPU, out-of-memory fallback)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from deepaq_core.errors import ModelError

log = logging.getLogger(__name__)


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then CPU; otherwise the named device, checked."""
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"Device '{spec}' was requested but no CUDA GPU is available.")
    if spec == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelError("Device 'mps' was requested but Apple MPS is not available.")
    try:
        return torch.device(spec)
    except RuntimeError as exc:
        raise ModelError(f"Unknown device '{spec}'; use auto, cpu, cuda, cuda:N or mps.") from exc


@dataclass
class LoadedModel:
    """An embedding model on a device, with its bundle.

    ``batch_size`` is the number of analysis chunks run at once; it shrinks on a CUDA
    out-of-memory error, and the model moves to the CPU (with a warning) if even one chunk fails.
    """

    model: torch.nn.Module
    bundle: object
    device: torch.device
    batch_size: int = field(default=0)
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.batch_size <= 0:
            self.batch_size = 8 if self.device.type == "cuda" else 1

    @property
    def info(self):
        return self.bundle.info()

    def _autocast(self):
        if self.device.type == "cuda" and self.precision in ("auto", "bf16", "fp16"):
            dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
            return torch.autocast("cuda", dtype=dtype)
        if self.device.type == "cpu" and self.precision == "bf16":
            # Only when asked: on CPUs with AVX512-BF16 or AMX, oneDNN's bf16 matrix products make
            # a MERT-95M-sized backbone 1.6-1.9x faster; elsewhere bf16 is emulated and slower.
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    @property
    def bins_on_device(self) -> bool:
        """Whether :meth:`run` should be given ``bins`` (see there): on a GPU, where copying every
        layer's hidden states to the host and summing them there cost more than the model (a
        MERT-95M-sized model: 36 MB per 12 s chunk to copy, then 36 ms of float64 sums on a
        2-core CPU). On the CPU the hidden states are where they are summed already."""
        return self.device.type != "cpu"

    def run(self, segments: torch.Tensor, alone: bool = False, bins: list[BinPlan] | None = None
            ) -> tuple[torch.Tensor, torch.Tensor | list[np.ndarray]]:
        """Embed equal-length segments.

        Parameters
        ----------
        segments : Tensor or ndarray [S, N] float32 at the model's sample rate (on the CPU).
        alone : bool
            The caller knows that nothing else works beside this call (no helper thread is
            reading or aligning): a backbone's choice of fewer CPU threads (made for busy
            cores) is set aside and the process's thread count used.
        bins : list of BinPlan, optional
            One per segment: sum its hidden states into time bins where the model ran and
            return only the sums (see :class:`BinPlan`).

        Returns
        -------
        embeddings : Tensor [S, T, D] float32 on the CPU
        hidden : Tensor [L, S, T, H] float32 on the CPU; with ``bins``, a list of one float64
            array ``[L, plan.bins, H]`` per segment instead
        """
        if isinstance(segments, np.ndarray):
            segments = torch.from_numpy(segments)
        if bins is not None and len(bins) != segments.shape[0]:
            raise ValueError(f"{len(bins)} bin plans for {segments.shape[0]} segments")
        threads = None if alone else getattr(getattr(self.model, "backbone", None), "cpu_threads", None)
        before = torch.get_num_threads()
        if self.device.type != "cpu" or not threads or threads == before:
            return self._run(segments, bins)
        torch.set_num_threads(threads)  # the backbone's own choice, for this call only
        try:
            return self._run(segments, bins)
        finally:
            torch.set_num_threads(before)

    def _run(self, segments: torch.Tensor, bins: list[BinPlan] | None = None):
        outs_e, outs_h = [], []
        i = 0
        while i < segments.shape[0]:
            part = segments[i : i + self.batch_size]
            try:
                with torch.inference_mode(), self._autocast():
                    emb, hidden = self.model(part.to(self.device, non_blocking=True))
                    hidden = torch.stack([h.float() for h in hidden])
                    if bins is not None:
                        sums = [plan.sums(hidden[:, r]) for r, plan in enumerate(bins[i : i + part.shape[0]])]
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                if self.batch_size > 1:
                    self.batch_size = max(1, self.batch_size // 2)
                    log.warning("GPU out of memory: retrying with batch size %d", self.batch_size)
                else:
                    log.warning("GPU out of memory even for one chunk: continuing on the CPU")
                    self.device = torch.device("cpu")
                    self.model.to(self.device)
                continue
            outs_e.append(emb.float().cpu())
            if bins is not None:
                outs_h.extend(x.cpu().numpy() for x in sums)
            else:
                outs_h.append(hidden.cpu())
            i += part.shape[0]
        return torch.cat(outs_e), (outs_h if bins is not None else torch.cat(outs_h, dim=1))


@dataclass(frozen=True)
class BinPlan:
    """Which hidden states of one segment go into which time bins of the layer heatmap.

    The segment's frames ``[ctx, ctx + frames)`` are kept (its context dropped); kept frame ``j``
    is signal frame ``g0 + j``, which belongs to bin ``(g0 + j) // bin_frames``. ``lead`` is
    ``g0 % bin_frames`` (where the first kept frame sits in its bin), ``bins`` how many bins the
    kept frames touch, ``valid`` [frames] which of them count (the aligned overlap).
    """

    ctx: int
    frames: int
    lead: int
    bins: int
    bin_frames: int
    valid: np.ndarray

    def sums(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden`` [L, T, H] of the segment -> float64 sums of its valid kept frames per bin
        ``[L, bins, H]``, on ``hidden``'s device (exactly what summing them on the host gives,
        up to the order of float64 additions)."""
        n_layers, _, width = hidden.shape
        kept = hidden[:, self.ctx : self.ctx + self.frames].double()
        kept = kept * torch.from_numpy(self.valid).to(kept.device, torch.float64)[None, :, None]
        padded = kept.new_zeros((n_layers, self.bins * self.bin_frames, width))
        padded[:, self.lead : self.lead + self.frames] = kept
        return padded.view(n_layers, self.bins, self.bin_frames, width).sum(dim=2)
