"""PCA reconstruction of whole windows: a window (window x channels values, flattened) is
projected onto the leading principal components of the training windows and back; what the
components cannot express is the anomaly. Fitted in closed form, then held as a torch module so it
exports like the trained models."""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray
from sklearn.decomposition import PCA
from torch import nn


class PcaReconstruction(nn.Module):
    """[N, window, channels] -> its projection onto the fitted principal subspace."""

    mean: torch.Tensor
    components: torch.Tensor

    def __init__(self, mean: NDArray[np.floating], components: NDArray[np.floating]) -> None:
        super().__init__()
        if components.ndim != 2 or components.shape[1] != mean.shape[0]:
            raise ValueError("components must be [n_components, window x channels]")
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("components", torch.as_tensor(components, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x.flatten(1) - self.mean
        # (C x^T)^T rather than x @ C^T, which the ONNX export would store as a second matrix.
        projected = (self.components @ centred.T).T @ self.components
        return (projected + self.mean).reshape(x.shape)


def fit_pca(windows: NDArray[np.float32], explained: float) -> PcaReconstruction:
    """Keep the fewest components that explain `explained` of the training windows' variance."""
    if not 0.0 < explained < 1.0:
        raise ValueError(f"the explained variance share must lie in (0, 1), got {explained}")
    flat = windows.reshape(windows.shape[0], -1).astype(np.float64)
    pca = PCA(n_components=explained, svd_solver="full").fit(flat)
    return PcaReconstruction(pca.mean_, pca.components_)
