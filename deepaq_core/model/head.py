"""The DeePAQ embedding head and the full embedding model (backbone + head)."""

from __future__ import annotations

import torch
from torch import nn


class EmbeddingHead(nn.Module):
    """Softmax-weighted sum over hidden layers -> linear projection -> L2 normalisation.

    Parameters
    ----------
    num_layers : int
        Number of hidden-state tensors the backbone returns.
    hidden_size : int
        Width of each hidden state.
    dim : int or None
        Output embedding size (256 in DeePAQ). ``None`` keeps the hidden size with no projection
        (used to read a backbone's raw hidden states, e.g. MERT without an adapter).
    select_layer : int or None
        Use this hidden state alone instead of the weighted mix (a designed front end whose last
        state is the representation).
    normalize : bool
        L2-normalise each frame (DeePAQ's embeddings); False keeps the units of the hidden state
        (the auditory front end's specific loudness).
    """

    def __init__(self, num_layers: int, hidden_size: int, dim: int | None = 256, *,
                 select_layer: int | None = None, normalize: bool = True) -> None:
        super().__init__()
        self.select_layer = select_layer
        self.normalize = normalize
        # Zero logits = a plain mean over layers until training says otherwise.
        self.layer_logits = nn.Parameter(torch.zeros(num_layers))
        self.projection = nn.Linear(hidden_size, dim) if dim is not None else None
        self.dim = dim if dim is not None else hidden_size

    def layer_weights(self) -> torch.Tensor:
        """Softmax layer weights, shape [L]."""
        return torch.softmax(self.layer_logits, dim=0)

    def forward(self, hidden_states: list[torch.Tensor]) -> torch.Tensor:
        """Per-frame embeddings.

        Parameters
        ----------
        hidden_states : list of Tensor, each [B, T, H]

        Returns
        -------
        Tensor, shape [B, T, dim], unit L2 norm along the last axis (unless ``normalize`` is off).
        """
        if self.select_layer is not None:
            chosen = hidden_states[self.select_layer].float()
            return nn.functional.normalize(chosen, dim=-1) if self.normalize else chosen
        w = self.layer_weights().to(hidden_states[0].dtype)
        mixed = torch.einsum("l,lbth->bth", w, torch.stack(list(hidden_states)))
        if self.projection is not None:
            mixed = self.projection(mixed)
        return nn.functional.normalize(mixed.float(), dim=-1) if self.normalize else mixed.float()


class EmbeddingModel(nn.Module):
    """A backbone followed by an :class:`EmbeddingHead`.

    ``forward(wave)`` returns ``(embeddings [B, T, D], hidden_states list of [B, T, H])`` so scoring
    can use both the final embedding and the per-layer states (for the layer heatmap).
    """

    def __init__(self, backbone: nn.Module, head: EmbeddingHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    @property
    def sample_rate(self) -> int:
        return self.backbone.sample_rate

    @property
    def hop_length(self) -> int:
        return self.backbone.hop_length

    @property
    def receptive_field(self) -> int:
        return self.backbone.receptive_field

    @property
    def frame_rate(self) -> float:
        return self.backbone.sample_rate / self.backbone.hop_length

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        hidden = list(self.backbone(wave))
        return self.head(hidden), hidden
