"""The models fitted in closed form or stored rather than trained by gradient descent: PCA
reconstruction, KMeansAD, kNN, and PCA with kNN scored together, each on the training windows
alone (the held-out blocks stay for the thresholds, as for every model, and give the ensemble
its members' scales)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from torch import nn

from training.windows.config import FITTED_KINDS, PCA_KNN_POOLINGS, WindowsConfig
from training.windows.models.ensemble import ScaledEnsemble, fit_scaled_ensemble
from training.windows.models.nearest import fit_kmeans, fit_knn
from training.windows.models.pca import fit_pca


def fit_fitted_model(
    kind: str,
    windows: NDArray[np.float32],
    config: WindowsConfig,
    seed: int,
    held_out: NDArray[np.float32] | None = None,
) -> nn.Module:
    """The fitted model of `kind` for standardised training windows [N, window, channels];
    pca_knn also needs held-out normal windows, which scale its members' scores."""
    if kind == "pca":
        return fit_pca(windows, config.pca_explained)
    if kind == "kmeans":
        return fit_kmeans(windows, config.kmeans_clusters, seed)
    if kind == "knn":
        return fit_knn(windows, config.knn_k, config.knn_bank, seed)
    if kind == "pca_knn":
        if held_out is None:
            raise ValueError("pca_knn scales its members on held-out windows: pass them")
        members = [
            fit_pca(windows, config.pca_explained),
            fit_knn(windows, config.knn_k, config.knn_bank, seed),
        ]
        return fit_scaled_ensemble(members, PCA_KNN_POOLINGS, held_out)
    raise ValueError(f"{kind!r} is not a fitted model; choose one of {FITTED_KINDS}")


def fitted_settings(
    kind: str, config: WindowsConfig, model: nn.Module
) -> dict[str, str | int | float]:
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
    if kind == "pca_knn" and isinstance(model, ScaledEnsemble):
        pca, knn = model.members
        pca_pooling, knn_pooling = model.poolings
        pca_scale, knn_scale = model.scales.tolist()
        return {
            **fitted_settings("pca", config, pca),
            **fitted_settings("knn", config, knn),
            "pca_pooling": pca_pooling,
            "knn_pooling": knn_pooling,
            "pca_scale": pca_scale,
            "knn_scale": knn_scale,
        }
    raise ValueError(f"{kind!r} is not a fitted model; choose one of {FITTED_KINDS}")
