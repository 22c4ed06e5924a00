"""The models fitted in closed form or stored rather than trained by gradient descent: PCA
reconstruction, KMeansAD and kNN, each on the training windows alone (the held-out blocks stay
for the thresholds, as for every model)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from torch import nn

from training.windows.config import FITTED_KINDS, WindowsConfig
from training.windows.models.nearest import fit_kmeans, fit_knn
from training.windows.models.pca import fit_pca


def fit_fitted_model(
    kind: str, windows: NDArray[np.float32], config: WindowsConfig, seed: int
) -> nn.Module:
    """The fitted model of `kind` for standardised training windows [N, window, channels]."""
    if kind == "pca":
        return fit_pca(windows, config.pca_explained)
    if kind == "kmeans":
        return fit_kmeans(windows, config.kmeans_clusters, seed)
    if kind == "knn":
        return fit_knn(windows, config.knn_k, config.knn_bank, seed)
    raise ValueError(f"{kind!r} is not a fitted model; choose one of {FITTED_KINDS}")


def fitted_settings(kind: str, config: WindowsConfig, model: nn.Module) -> dict[str, int | float]:
    """What the manifest records of a fitted model: its settings and its size as fitted."""
    if kind == "pca":
        return {
            "pca_explained": config.pca_explained,
            "pca_components": int(model.get_buffer("components").shape[0]),
        }
    if kind == "kmeans":
        return {"kmeans_clusters": int(model.get_buffer("patterns").shape[0])}
    if kind == "knn":
        return {"knn_k": config.knn_k, "knn_bank": int(model.get_buffer("patterns").shape[0])}
    raise ValueError(f"{kind!r} is not a fitted model; choose one of {FITTED_KINDS}")
