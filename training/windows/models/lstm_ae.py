"""LSTM autoencoder baseline: an LSTM encodes the window into its last hidden state, which is
repeated over the window and decoded by a second LSTM (the repeat-vector form of Malhotra et al.,
2016, "LSTM-based encoder-decoder for multi-sensor anomaly detection")."""

from __future__ import annotations

import torch
from torch import nn


class LstmAutoencoder(nn.Module):
    def __init__(self, n_channels: int, hidden: int) -> None:
        super().__init__()
        self.encoder = nn.LSTM(n_channels, hidden, batch_first=True)
        self.decoder = nn.LSTM(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (state, _) = self.encoder(x)
        code = state[-1].unsqueeze(1).expand(-1, x.shape[1], -1)
        decoded, _ = self.decoder(code)
        reconstruction: torch.Tensor = self.head(decoded)
        return reconstruction
