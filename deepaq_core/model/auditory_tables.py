"""The auditory front end's fixed tables and card, in numpy alone (no torch).

ERB scale, filterbank with the outer/middle-ear weighting, spread of masking and thresholds in
quiet: what both implementations of the front end (:mod:`deepaq_core.model.auditory`, torch, for
GPUs and training; :mod:`deepaq_core.model.cpu_model`, numpy, for scoring on the CPU) and the
loudness distance share. See :mod:`deepaq_core.model.auditory` for the model they describe.
"""

from __future__ import annotations

import math

import numpy as np

from deepaq_core.model.auditory_config import AuditoryConfig

__all__ = ["AuditoryConfig", "auditory_bands", "auditory_card", "band_count", "erb_rate", "erb_to_hz",
           "front_end_tables"]


def erb_rate(f_hz: np.ndarray | float) -> np.ndarray:
    """Glasberg & Moore's ERB-number scale (Cams) of a frequency in Hz."""
    return 21.4 * np.log10(1.0 + 0.00437 * np.asarray(f_hz, dtype=np.float64))


def erb_to_hz(erb: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`erb_rate`, Hz."""
    return (10.0 ** (np.asarray(erb, dtype=np.float64) / 21.4) - 1.0) / 0.00437


def auditory_bands(cfg: AuditoryConfig) -> dict[str, np.ndarray]:
    """Filterbank, ear weighting, masking spread and thresholds of the front end.

    Returns
    -------
    dict
        ``centre_hz`` [K]; ``weights`` [K, n_fft // 2 + 1] (triangular ERB bands times the
        outer/middle-ear power weighting); ``bins`` [K] (how many spectrum bins each band's power
        rests on: the sum of its triangular weights); ``spread`` [K, K] (row ``i``: how much of each band's
        energy band ``i`` receives; rows sum to 1); ``threshold`` [K] (internal noise per band,
        power re 20 uPa).
    """
    z = np.arange(erb_rate(cfg.f_min), erb_rate(cfg.f_max) + 1e-9, cfg.erb_step)
    fc = erb_to_hz(z)
    freqs = np.fft.rfftfreq(cfg.n_fft, 1.0 / cfg.sample_rate)
    zf = erb_rate(freqs)
    tri = np.clip(1.0 - np.abs(zf[None, :] - z[:, None]) / cfg.erb_step, 0.0, None)
    for i in np.flatnonzero(tri.sum(axis=1) == 0):  # a band narrower than one bin: its nearest bin
        tri[i, np.argmin(np.abs(freqs - fc[i]))] = 1.0
    khz = np.maximum(freqs, 20.0) / 1000.0
    # BS.1387 outer and middle ear (dB), applied to power.
    ear_db = -0.6 * 3.64 * khz**-0.8 + 6.5 * np.exp(-0.6 * (khz - 3.3) ** 2) - 1e-3 * khz**3.6
    ear = 10.0 ** (ear_db / 10.0)
    ear[freqs > cfg.f_max * 1.025] = 0.0
    dz = z[None, :] - z[:, None]  # masker band j minus target band i, ERB
    att = np.where(dz > 0, cfg.slope_lower_db * dz, cfg.slope_upper_db * -dz)
    spread = 10.0 ** (-att / 10.0)
    spread /= spread.sum(axis=1, keepdims=True)
    thr_db = 0.4 * 3.64 * (fc / 1000.0) ** -0.8 + cfg.threshold_offset_db  # BS.1387 internal noise
    return {"centre_hz": fc, "weights": tri * ear[None, :], "bins": tri.sum(axis=1), "spread": spread,
            "threshold": 10.0 ** (thr_db / 10.0)}


def _front_end_attributes(obj, cfg: AuditoryConfig) -> None:
    """The attributes both front ends share (the :class:`~deepaq_core.model.backbone.Backbone` interface)."""
    obj.config = cfg
    obj.name = "auditory"
    obj.sample_rate = cfg.sample_rate
    obj.hop_length = cfg.hop_length
    obj.receptive_field = cfg.n_fft
    obj.centre_hz = auditory_bands(cfg)["centre_hz"]
    obj.hidden_size = int(obj.centre_hz.size)
    obj.num_hidden_states = 2  # [excitation level, specific loudness]
    obj.needs_context = False  # frame-local: each frame depends only on its own 42.7 ms window


def front_end_tables(cfg: AuditoryConfig) -> dict[str, np.ndarray]:
    """What both implementations of the front end compute with, float32, ready for their products.

    ``window`` [n_fft] (periodic Hann); ``weights_t`` [F, K] (the filterbank times the ear
    weighting, scaled to mean-square per bin and calibrated to ``spl_full_scale_db``);
    ``spread_t`` [K, K]; ``threshold`` [K]; ``centre_hz`` [K] (float64).
    """
    bands = auditory_bands(cfg)
    n = np.arange(cfg.n_fft, dtype=np.float64)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / cfg.n_fft)  # periodic, as torch.hann_window
    # Mean-square per bin (one-sided, Parseval with the window's energy), then the calibration.
    scale = 2.0 / (cfg.n_fft * float(np.sum(window**2))) * 10.0 ** (cfg.spl_full_scale_db / 10.0)
    # Stored transposed, ready for [T, F] @ [F, K] and [T, K] @ [K, K] products.
    return {"window": window.astype(np.float32), "weights_t": (bands["weights"] * scale).T.astype(np.float32),
            "spread_t": bands["spread"].T.astype(np.float32), "threshold": bands["threshold"].astype(np.float32),
            "centre_hz": bands["centre_hz"]}


def auditory_card(cfg: AuditoryConfig, distance: dict, mapping: dict, local_alignment: dict | None) -> dict:
    """The card of an auditory-front-end model (weights hold no learned parameters)."""
    k = int(auditory_bands(cfg)["centre_hz"].size)
    return {
        "name": "compact",
        "backbone": {"type": "auditory", "config": cfg.to_dict()},
        "sample_rate": cfg.sample_rate,
        "frame_rate": cfg.sample_rate / cfg.hop_length,
        "hop_length": cfg.hop_length,
        "layers": 2,
        "embedding_dim": k,
        "head": {"projection": False, "dim": None, "select_layer": 1, "normalize": False},
        "calibration": {"reference_lufs": -23.0},
        "distance": distance,
        "local_alignment": local_alignment,
        "lora": None,
        "score_mapping": mapping,
    }


def band_count(cfg: AuditoryConfig | None = None) -> int:
    """Number of auditory bands for a configuration."""
    cfg = cfg or AuditoryConfig()
    return int(math.floor((erb_rate(cfg.f_max) - erb_rate(cfg.f_min)) / cfg.erb_step + 1e-9)) + 1
