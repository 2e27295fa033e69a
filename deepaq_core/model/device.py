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

    def run(self, segments: torch.Tensor, alone: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed equal-length segments.

        Parameters
        ----------
        segments : Tensor or ndarray [S, N] float32 at the model's sample rate (on the CPU).
        alone : bool
            The caller knows that nothing else works beside this call (no helper thread is
            reading or aligning): a backbone's choice of fewer CPU threads (made for busy
            cores) is set aside and the process's thread count used.

        Returns
        -------
        embeddings : Tensor [S, T, D] float32 on the CPU
        hidden : Tensor [L, S, T, H] float32 on the CPU
        """
        if isinstance(segments, np.ndarray):
            segments = torch.from_numpy(segments)
        threads = None if alone else getattr(getattr(self.model, "backbone", None), "cpu_threads", None)
        before = torch.get_num_threads()
        if self.device.type != "cpu" or not threads or threads == before:
            return self._run(segments)
        torch.set_num_threads(threads)  # the backbone's own choice, for this call only
        try:
            return self._run(segments)
        finally:
            torch.set_num_threads(before)

    def _run(self, segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs_e, outs_h = [], []
        i = 0
        while i < segments.shape[0]:
            part = segments[i : i + self.batch_size]
            try:
                with torch.inference_mode(), self._autocast():
                    emb, hidden = self.model(part.to(self.device, non_blocking=True))
                    hidden = torch.stack([h.float() for h in hidden])
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
            outs_h.append(hidden.cpu())
            i += part.shape[0]
        return torch.cat(outs_e), torch.cat(outs_h, dim=1)
