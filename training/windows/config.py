"""Every setting of a windows training run, with the defaults the CLI and the experiments use."""

from __future__ import annotations

from dataclasses import dataclass, field

from training.windows.fit import FitSettings
from training.windows.models.transformer import TransformerSize

TRAINED_KINDS = ("distilled_student", "student", "teacher", "lstm_ae", "anomaly_transformer")
# Fitted in closed form (PCA, k-means) or stored (kNN) rather than trained by gradient descent;
# pca_knn: PCA's and kNN's scores together, each in units of its spread on held-out windows.
FITTED_KINDS = ("pca", "kmeans", "knn", "pca_knn")
MODEL_KINDS = (*TRAINED_KINDS, *FITTED_KINDS)
# How a window's per-step errors become its per-step scores: kept per step, or every step given
# the window's mean (the window's distance, as KMeansAD and kNN on subsequences score).
POOLINGS = ("step", "window")
# The pooling of each pca_knn member, (PCA, kNN): the combination proposed before it was measured
# (PCA's best pooling on SMD, kNN's on MSL); docs/RESULTS.md has the others beside it.
PCA_KNN_POOLINGS = ("window", "step")
TEACHER = TransformerSize(d_model=64, n_heads=4, n_layers=3, d_ff=128)
STUDENT = TransformerSize(d_model=32, n_heads=4, n_layers=2, d_ff=64)
# Sized so that the whole experiment grid (5 models x 20 series x 3 seeds) trains in about an
# hour of one CPU core; the learning rate was chosen on validation loss (3e-3 beat 1e-3).
DEFAULT_FIT = FitSettings(max_epochs=8, batch_size=32, learning_rate=3e-3, patience=2)


@dataclass(frozen=True)
class AnomalyTransformerSize:
    d_model: int = 32
    n_heads: int = 2
    n_layers: int = 3
    d_ff: int = 32
    # The weight of the association discrepancy in the minimax losses (the reference's k).
    k: float = 3.0


@dataclass(frozen=True)
class WindowsConfig:
    # The best on MSL and the SMD mean by VUS-PR in benchmarks/windows_baselines.py
    # (docs/RESULTS.md); the distilled student of METHOD.md part 2 is `distilled_student`.
    model: str = "pca_knn"
    window: int = 100
    # Steps between training windows; the scoring stride is what the bundle serves with.
    train_stride: int = 40
    stride: int = 50
    teacher: TransformerSize = field(default_factory=lambda: TEACHER)
    student: TransformerSize = field(default_factory=lambda: STUDENT)
    lstm_hidden: int = 64
    # PCA keeps the fewest components explaining this share of the training windows' variance.
    pca_explained: float = 0.9
    # KMeansAD's clusters (TSB-AD's default), kNN's neighbours and its memory bank's size.
    kmeans_clusters: int = 20
    knn_k: int = 5
    knn_bank: int = 4096
    # None: the model's own (`pooling_for`). Window scores for every single model: on MSL and the
    # SMD mean they lift PCA's VUS-PR and leave the trained models' within about 0.01, and at the
    # default operating point they alarm more labelled segments with several times fewer false
    # alarms (docs/RESULTS.md). pca_knn's members are pooled their own way, so it pools no
    # further ('step') unless asked.
    score_pooling: str | None = None
    anomaly_transformer: AnomalyTransformerSize = field(default_factory=AnomalyTransformerSize)
    # lambda in L = L_rec + lambda * (1 - cos(O_teacher, O_student)), and the cosine's axis.
    distill_weight: float = 1.0
    cosine_axis: str = "step"
    fit: FitSettings = field(default_factory=lambda: DEFAULT_FIT)
    validation_fraction: float = 0.2
    gamma_r: float = 0.99
    percentile: float = 99.0
    # Alarm events per hour (data with a known step interval) or per 10,000 steps that the
    # false_alarm_rate operating point (the one served by default) is fitted to; None: one per
    # 1,440 steps.
    false_alarm_rate: float | None = None

    def __post_init__(self) -> None:
        if self.model not in MODEL_KINDS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {MODEL_KINDS}")
        if self.score_pooling is not None and self.score_pooling not in POOLINGS:
            raise ValueError(f"unknown score pooling {self.score_pooling!r}; choose {POOLINGS}")
        if not 0.0 < self.pca_explained < 1.0:
            raise ValueError(f"pca_explained must lie in (0, 1), got {self.pca_explained}")
        if min(self.kmeans_clusters, self.knn_k, self.knn_bank) < 1:
            raise ValueError("kmeans_clusters, knn_k and knn_bank must be positive")
        if self.window < 2:
            raise ValueError(f"window must be at least 2 steps, got {self.window}")
        if not 0.0 < self.gamma_r < 1.0:
            raise ValueError(f"r must lie strictly between 0 and 1, got {self.gamma_r}")
        if not 0.0 < self.percentile < 100.0:
            raise ValueError(
                f"percentile must lie strictly between 0 and 100, got {self.percentile}"
            )
        if self.false_alarm_rate is not None and not self.false_alarm_rate > 0:
            raise ValueError(f"the false-alarm rate must be positive, got {self.false_alarm_rate}")
        if self.distill_weight < 0:
            raise ValueError(f"the distillation weight must be >= 0, got {self.distill_weight}")
        if not 1 <= self.stride <= self.window:
            raise ValueError(f"stride must lie in 1..window ({self.window}), got {self.stride}")
        if self.train_stride < 1:
            raise ValueError(f"train_stride must be positive, got {self.train_stride}")

    def pooling_for(self, kind: str) -> str:
        """The score pooling a model of `kind` is scored with: the one set, else its own."""
        if self.score_pooling is not None:
            return self.score_pooling
        return "step" if kind == "pca_knn" else "window"
