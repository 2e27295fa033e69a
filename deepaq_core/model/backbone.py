"""The backbone interface: waveform in, per-layer hidden states out at a fixed frame rate.

Every backbone DeePAQ can use (MERT, the compact built-in model) implements :class:`Backbone`, so
the embedding head, scoring, chunking and training never need to know which one they run on.
"""

from __future__ import annotations

import abc

import torch


class Backbone(torch.nn.Module, abc.ABC):
    """Waveform -> per-layer hidden states at a fixed frame rate.

    Subclasses call ``super().__init__()`` and then set every attribute below in their own
    ``__init__``; they implement :meth:`forward`.

    Attributes
    ----------
    sample_rate : int
        Rate the input waveform must have, Hz (24000 for MERT).
    hop_length : int
        Samples per output frame at ``sample_rate`` (MERT: 320, i.e. 75 frames/s).
    receptive_field : int
        Samples needed for the first frame. A chunk of ``n`` samples gives
        ``(n - receptive_field) // hop_length + 1`` frames (MERT: 400).
    hidden_size : int
        Width of every hidden-state tensor.
    num_hidden_states : int
        Number of tensors :meth:`forward` returns (MERT-v1-95M: 13 = feature projection + 12
        transformer layers).
    name : str
        Short identifier used in logs and model cards.
    cpu_threads : int or None
        Intra-op threads for a forward pass on the CPU; None uses the process's torch setting.
        A light front end sets 1: its small operations run about twice as fast on two idle
        cores, but several times slower on two busy ones (OpenMP threads wait on each other),
        and one thread leaves a core to the scorer's helper thread, which prepares the next
        input meanwhile.
    """

    cpu_threads: int | None = None
    sample_rate: int
    hop_length: int
    receptive_field: int
    hidden_size: int
    num_hidden_states: int
    name: str

    @abc.abstractmethod
    def forward(self, wave: torch.Tensor) -> list[torch.Tensor]:
        """Compute every hidden state for a batch of waveforms.

        Parameters
        ----------
        wave : Tensor, shape [B, N], float32
            Mono audio at :attr:`sample_rate`, nominal full scale +-1; ``N >= receptive_field``.

        Returns
        -------
        list of Tensor
            ``num_hidden_states`` tensors, each [B, T, hidden_size] with
            ``T = num_frames(N)`` frames at :attr:`frame_rate`.
        """

    @property
    def frame_rate(self) -> float:
        """Output frames per second (``sample_rate / hop_length``), Hz."""
        return self.sample_rate / self.hop_length

    def num_frames(self, num_samples: int) -> int:
        """Number of frames :meth:`forward` returns for ``num_samples`` input samples.

        Parameters
        ----------
        num_samples : int
            Input length, samples at :attr:`sample_rate`.

        Returns
        -------
        int
            ``(num_samples - receptive_field) // hop_length + 1``, or 0 when the input is shorter
            than the receptive field.
        """
        if num_samples < self.receptive_field:
            return 0
        return (int(num_samples) - self.receptive_field) // self.hop_length + 1
