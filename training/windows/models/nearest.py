"""Distance to stored normal windows: KMeansAD (the nearest of k-means centroids of the training
windows, as in TSB-AD) and kNN (the k nearest of a memory bank of training windows). Both are
written as reconstruction models, the reconstruction being the mean of the nearest stored
windows, so their per-step squared error says where in the window and in which channel the
distance comes from. Distances are one matrix product and a top-k, which ONNX expresses."""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray
from sklearn.cluster import KMeans
from torch import nn


class NearestPatterns(nn.Module):
    """[N, window, channels] -> the mean of its `k` nearest stored windows (Euclidean)."""

    patterns: torch.Tensor
    squared_norms: torch.Tensor

    def __init__(self, patterns: NDArray[np.floating], k: int) -> None:
        super().__init__()
        if patterns.ndim != 2:
            raise ValueError("patterns must be [n_patterns, window x channels]")
        if not 1 <= k <= patterns.shape[0]:
            raise ValueError(f"k must lie in 1..{patterns.shape[0]} (the patterns), got {k}")
        stored = torch.as_tensor(patterns, dtype=torch.float32)
        self.k = k
        self.register_buffer("patterns", stored)
        self.register_buffer("squared_norms", (stored**2).sum(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        # ||x - p||^2 without the ||x||^2 term, which does not change the ranking. The product
        # is taken as (P x^T)^T: with x @ P^T the ONNX export would store P twice (P, P^T).
        partial = self.squared_norms - 2.0 * (self.patterns @ flat.T).T
        _, nearest = torch.topk(partial, self.k, dim=1, largest=False)
        return self.patterns[nearest].mean(dim=1).reshape(x.shape)


def fit_kmeans(windows: NDArray[np.float32], n_clusters: int, seed: int) -> NearestPatterns:
    """KMeansAD: the centroids of `n_clusters` k-means clusters of the training windows."""
    flat = windows.reshape(windows.shape[0], -1)
    clusters = min(n_clusters, flat.shape[0])
    kmeans = KMeans(n_clusters=clusters, n_init=3, random_state=seed).fit(flat)
    return NearestPatterns(kmeans.cluster_centers_, k=1)


def fit_knn(windows: NDArray[np.float32], k: int, bank_size: int, seed: int) -> NearestPatterns:
    """kNN: a memory bank of at most `bank_size` training windows (drawn at random when there are
    more), the reconstruction the mean of the `k` nearest."""
    flat = windows.reshape(windows.shape[0], -1)
    if flat.shape[0] > bank_size:
        chosen = np.random.default_rng(seed).choice(flat.shape[0], bank_size, replace=False)
        flat = flat[np.sort(chosen)]
    return NearestPatterns(flat, k=min(k, flat.shape[0]))
