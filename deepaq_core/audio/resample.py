"""Sample-rate conversion with libsoxr (whole arrays and block streams)."""

from __future__ import annotations

import numpy as np
import soxr

# soxr's "HQ" is a 20-bit-accurate linear-phase filter: transparent for a quality metric at a
# fraction of "VHQ"'s cost.
QUALITY = "HQ"


def resample(samples: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample a whole signal with soxr (quality ``'HQ'``, linear phase).

    Parameters
    ----------
    samples : numpy.ndarray
        Shape ``[C, N]`` (or ``[N]``), any float dtype, at ``sr_in`` Hz.
    sr_in : int
        Input sample rate, Hz.
    sr_out : int
        Output sample rate, Hz.

    Returns
    -------
    numpy.ndarray
        float32, shape ``[C, M]`` (``[M]`` for 1-D input) at ``sr_out`` Hz, with
        ``M ≈ N * sr_out / sr_in``. When the rates are equal the input is returned as float32
        (without a copy if it already is float32).
    """
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim not in (1, 2):
        raise ValueError(f"samples must have shape [C, N] or [N], got {x.shape}")
    if int(sr_in) == int(sr_out):
        return x
    if x.ndim == 1:
        return soxr.resample(x, sr_in, sr_out, quality=QUALITY).astype(np.float32, copy=False)
    # soxr wants frames-major [N, C] memory.
    y = soxr.resample(np.ascontiguousarray(x.T), sr_in, sr_out, quality=QUALITY)
    return np.ascontiguousarray(y.T, dtype=np.float32)


def downmix_frames(block: np.ndarray) -> np.ndarray:
    """Mean over the channels of a frames-major ``[n, C]`` block (C >= 2), float32 ``[n]``.

    Bit-identical to ``block.mean(axis=1, dtype=np.float32)``, about 5x faster for up to 7
    channels: numpy reduces a short axis row by row (adding a row's values in order, then
    dividing by C), this adds whole columns in the same order. From 8 channels on numpy sums a
    row in another order, so its mean is used as it is.
    """
    if block.shape[1] >= 8:
        return block.mean(axis=1, dtype=np.float32)
    out = np.add(block[:, 0], block[:, 1], dtype=np.float32)
    for c in range(2, block.shape[1]):
        out += block[:, c]
    out /= np.float32(block.shape[1])
    return out


class BlockResampler:
    """Downmix and resample a stream of ``[n, C]`` blocks into one ``[C_out, M]`` array.

    Used by the file readers so that a long multichannel file is converted block by block and
    never exists as a float64 (or even a full multichannel float32) copy when mono is requested.

    Parameters
    ----------
    sr_in : int
        Rate of the incoming blocks, Hz.
    sr_out : int
        Output rate, Hz (equal to ``sr_in`` for no resampling).
    channels_in : int
        Channels in each incoming block.
    mono : bool
        Average the channels into one before resampling.
    expected_frames : int
        Estimated input frames per channel, used to size the output up front (0 if unknown).
    tap : callable, optional
        Called with each stretch of output as it is written: a ``[C_out, n]`` view of the
        output, in order (a consumer may read it later; it is never written again).
    """

    def __init__(self, sr_in: int, sr_out: int, channels_in: int, mono: bool, expected_frames: int = 0,
                 tap=None):
        self.mono = mono
        self._tap = tap
        self.channels_out = 1 if mono else channels_in
        self._stream = (
            soxr.ResampleStream(sr_in, sr_out, self.channels_out, dtype="float32", quality=QUALITY)
            if sr_in != sr_out
            else None
        )
        capacity = int(np.ceil(max(expected_frames, 0) * sr_out / sr_in)) + 1024
        self._out = np.empty((self.channels_out, capacity), dtype=np.float32)
        self._used = 0
        self.frames_in = 0

    def push(self, block: np.ndarray, last: bool = False) -> None:
        """Add one block.

        Parameters
        ----------
        block : numpy.ndarray
            float32, shape ``[n, channels_in]`` (n may be 0).
        last : bool
            True for the final block, so the resampler flushes its filter tail.
        """
        self.frames_in += block.shape[0]
        if self.mono and block.shape[1] > 1:
            block = downmix_frames(block)[:, np.newaxis]
        if self._stream is not None:
            block = self._stream.resample_chunk(np.ascontiguousarray(block, dtype=np.float32), last=last)
            if block.ndim == 1:
                block = block[:, np.newaxis]
        self._append(block)

    def _append(self, block: np.ndarray) -> None:
        n = block.shape[0]
        if n == 0:
            return
        if self._used + n > self._out.shape[1]:
            # Only when the frame estimate was low (ffmpeg containers): grow geometrically.
            grown = np.empty((self.channels_out, max(2 * self._out.shape[1], self._used + n)), dtype=np.float32)
            grown[:, : self._used] = self._out[:, : self._used]
            self._out = grown
        self._out[:, self._used : self._used + n] = block.T
        if self._tap is not None:
            self._tap(self._out[:, self._used : self._used + n])
        self._used += n

    def result(self) -> np.ndarray:
        """Return the converted samples, float32 ``[C_out, M]``."""
        out = self._out[:, : self._used]
        if self._used < 0.9 * self._out.shape[1]:
            out = out.copy()  # don't keep a much larger buffer alive through a view
        return out
