"""The compact built-in backbone: an auditory (log-mel) front end and a small transformer.

It runs far faster than real time on a laptop CPU and keeps MERT's interface and frame rate
(24 kHz in, 75 frames/s out), so everything downstream (head, scoring, training) is shared.
"""

from __future__ import annotations

import torch
from torch import nn

from deepaq_core.audio.mel import mel_filterbank as _mel_filterbank
from deepaq_core.model.backbone import Backbone
from deepaq_core.model.compact_config import CompactConfig


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float, f_max: float) -> torch.Tensor:
    """Triangular HTK-mel filterbank as a float32 tensor, shape [n_mels, n_fft // 2 + 1].

    The filterbank itself lives in :mod:`deepaq_core.audio.mel` (numpy, no torch); this is the
    model's view of it, kept under this name for code that imports it from here.
    """
    return torch.from_numpy(_mel_filterbank(n_fft, n_mels, sample_rate, f_min, f_max)).float()


class LogMel(nn.Module):
    """Waveform [B, N] -> log-mel power [B, T, n_mels], no centring (T = (N - n_fft) // hop + 1)."""

    def __init__(self, cfg: CompactConfig) -> None:
        super().__init__()
        self.n_fft, self.hop = cfg.n_fft, cfg.hop_length
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
        fb = mel_filterbank(cfg.n_fft, cfg.n_mels, cfg.sample_rate, cfg.f_min, cfg.f_max)
        self.register_buffer("fb", fb, persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            wave.float(), self.n_fft, self.hop, window=self.window, center=False, return_complex=True
        )
        power = spec.real.square() + spec.imag.square()  # [B, F, T]
        mel = torch.einsum("mf,bft->btm", self.fb, power)
        # 1e-10 floor = -100 dB re full scale: below audibility for normalised programme material.
        return torch.log10(mel + 1e-10)


class CompactBackbone(Backbone):
    """Log-mel -> two 1-D convolutions -> transformer encoder; returns every layer's states.

    ``num_hidden_states = layers + 1`` (the convolutional projection, then each transformer
    layer), mirroring MERT's "feature projection + encoder layers" list.
    """

    def __init__(self, cfg: CompactConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or CompactConfig()
        self.config = cfg
        self.name = "compact"
        self.sample_rate = cfg.sample_rate
        self.hop_length = cfg.hop_length
        self.receptive_field = cfg.n_fft
        self.hidden_size = cfg.width
        self.num_hidden_states = cfg.layers + 1
        self.frontend = LogMel(cfg)
        pad = cfg.conv_kernel // 2
        self.conv = nn.Sequential(
            nn.Conv1d(cfg.n_mels, cfg.width, cfg.conv_kernel, padding=pad),
            nn.GELU(),
            nn.Conv1d(cfg.width, cfg.width, cfg.conv_kernel, padding=pad),
            nn.GELU(),
        )
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                cfg.width,
                cfg.heads,
                dim_feedforward=cfg.width * cfg.ff_mult,
                dropout=0.0,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(cfg.layers)
        )

    def forward(self, wave: torch.Tensor) -> list[torch.Tensor]:
        """wave [B, N] at 24 kHz -> list of ``layers + 1`` tensors [B, T, width]."""
        logmel = self.frontend(wave)
        # A fixed affine, not a per-frame norm: a norm over bands would discard level, and level
        # differences (after the pair's loudness matching) are part of what is audible.
        # log10 power of roughly -10..0 for programme material maps to about -2..2.
        x = (logmel + 5.0) / 2.5
        x = self.conv(x.transpose(1, 2)).transpose(1, 2)
        states = [x]
        for layer in self.layers:
            x = layer(x)
            states.append(x)
        return states


def untrained_card(cfg: CompactConfig, d50: float) -> dict:
    """Card of a randomly initialised compact model (the slot before a trained model exists)."""
    return {
        "name": "compact",
        "version": "0.1.0-untrained",
        "status": "untrained",
        "description": "Compact log-mel + transformer backbone, randomly initialised (seed 0), NOT trained. Its "
        "distances behave like a log-mel spectral distance (see results); no trained compact model has beaten "
        "this initialisation on real material yet (docs/TRAINING.md).",
        "backbone": {"type": "compact", "config": cfg.to_dict()},
        "sample_rate": cfg.sample_rate,
        "frame_rate": cfg.sample_rate / cfg.hop_length,
        "hop_length": cfg.hop_length,
        "layers": cfg.layers + 1,
        "embedding_dim": 256,
        "head": {"projection": True, "dim": 256},
        "lora": None,
        "score_mapping": {"type": "exp2", "d50": d50, "power": 1.0,
                          "fitted_on": "placeholder for an untrained model: the demo reference low-passed at 3.5 kHz "
                          "scores 50 (tools/make_untrained_compact.py). The surrogate-ladder fit that training uses "
                          "gives this model power 0.35, which would score alignment residuals of 0.003 at about 78."},
        "training": None,
        "results": None,
    }


def build_untrained(seed: int = 0, cfg: CompactConfig | None = None):
    """A randomly initialised compact :class:`EmbeddingModel` (deterministic for a seed)."""
    from deepaq_core.model.head import EmbeddingHead, EmbeddingModel

    torch.manual_seed(seed)
    backbone = CompactBackbone(cfg or CompactConfig())
    head = EmbeddingHead(backbone.num_hidden_states, backbone.hidden_size, dim=256)
    return EmbeddingModel(backbone, head).eval()
