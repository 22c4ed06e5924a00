"""The bundle manifest: the one definition of every setting training and serving share."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
FORMAT_VERSION: Final = 1


class ManifestError(ValueError):
    """A manifest is missing, unreadable or does not describe a usable bundle."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class LogMelSettings(_Strict):
    """Log-mel features in librosa's conventions (`melspectrogram` then `power_to_db`)."""

    sample_rate: Annotated[int, Field(gt=0)]
    n_fft: Annotated[int, Field(gt=0)] = 2048
    win_length: Annotated[int, Field(gt=0)] = 2048
    hop_length: Annotated[int, Field(gt=0)] = 512
    n_mels: Annotated[int, Field(gt=0)] = 128
    fmin: Annotated[float, Field(ge=0)] = 0.0
    fmax: Annotated[float, Field(gt=0)] | None = None
    power: Annotated[float, Field(gt=0)] = 2.0
    center: bool = True
    # power_to_db: 10*log10(max(amin, S) / ref). No top_db clipping: it would make a block's
    # features depend on the loudest moment of the rest of the clip, so a stream and a clip of
    # the same audio could disagree.
    amin: Annotated[float, Field(gt=0)] = 1e-10
    ref: Annotated[float, Field(gt=0)] = 1.0
    frames_per_block: Annotated[int, Field(gt=0)] = 32
    # Frames between the starts of consecutive blocks when scoring (frames_per_block = no overlap).
    block_hop_frames: Annotated[int, Field(gt=0)] = 32

    @model_validator(mode="after")
    def _check(self) -> LogMelSettings:
        if self.win_length > self.n_fft:
            raise ValueError("win_length must not exceed n_fft")
        nyquist = self.sample_rate / 2
        if self.fmax is not None and self.fmax > nyquist:
            raise ValueError(f"fmax {self.fmax} is above the Nyquist frequency {nyquist}")
        if self.fmin >= (self.fmax if self.fmax is not None else nyquist):
            raise ValueError("fmin must be below fmax")
        return self

    @property
    def block_size(self) -> int:
        return self.n_mels * self.frames_per_block


class GammaThreshold(_Strict):
    """A Gamma(shape, scale) fitted to scores, and the threshold at its CDF value r."""

    shape: Annotated[float, Field(gt=0)]
    scale: Annotated[float, Field(gt=0)]
    r: Annotated[float, Field(gt=0, lt=1)]
    threshold: Annotated[float, Field(gt=0)]
    fitted_on: str = Field(description="which scores the Gamma was fitted to, in words")
    n_scores: Annotated[int, Field(gt=0)]


class ThresholdFit(_Strict):
    """Where the scores behind a threshold came from: scores the model did not train on, unless
    `method` says otherwise."""

    method: Literal["out_of_fold", "held_out", "training"] = Field(
        description="'out_of_fold': each normal recording scored by a model trained without it "
        "(k folds by recording); 'held_out': normal recordings or series kept out of training; "
        "'training': the training data itself (biased low, for the record only)"
    )
    folds: Annotated[int, Field(ge=2)] | None = None
    # Normal recordings (audio) or series/segments (sensors) whose scores were used.
    recordings: Annotated[int, Field(ge=0)]
    n_scores: Annotated[int, Field(gt=0)]


class FalseAlarmPrediction(_Strict):
    """The false-alarm rate a threshold is expected to give on normal data, with an interval
    that widens as the recordings behind it get fewer."""

    rate: Annotated[float, Field(ge=0)]
    low: Annotated[float, Field(ge=0)]
    high: Annotated[float, Field(ge=0)]
    confidence: Annotated[float, Field(gt=0, lt=1)] = 0.95
    per: str = Field(
        description="the unit one rate is counted in: 'clip', 'block', '1440 steps', 'hour'"
    )
    method: str = Field(description="how the rate and its interval were computed, in words")

    @model_validator(mode="after")
    def _check(self) -> FalseAlarmPrediction:
        if not self.low <= self.rate <= self.high:
            raise ValueError("the predicted rate must lie inside its interval")
        return self


OperatingRule = Literal["gamma", "false_alarm_rate", "percentile"]


class OperatingPoint(_Strict):
    """One set of thresholds the service can apply without retraining (AUSCULT_OPERATING_POINT).

    Audio bundles hold `clip` and `block` thresholds, windows bundles a `step` threshold."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    rule: OperatingRule = Field(
        description="'gamma': Gamma inverse CDF at r = target; 'false_alarm_rate': the threshold "
        "that meets target false alarms per `predicted[...].per` on normal data; 'percentile': "
        "the target percentile of normal scores"
    )
    target: float
    thresholds: dict[str, Annotated[float, Field(gt=0)]]
    fit: ThresholdFit
    predicted: dict[str, FalseAlarmPrediction] = Field(default_factory=dict)


def _check_operating_points(
    points: list[OperatingPoint], default: str | None, units: tuple[str, ...]
) -> None:
    names = [p.name for p in points]
    if len(set(names)) != len(names):
        raise ValueError("operating point names must be unique")
    for point in points:
        if sorted(point.thresholds) != sorted(units):
            raise ValueError(
                f"operating point {point.name!r} must hold thresholds for {', '.join(units)}"
            )
    if default is not None and default not in names:
        raise ValueError(f"default_operating_point {default!r} is not among the operating points")


def _resolve_operating_point(
    points: list[OperatingPoint], default: str | None, choice: str | None
) -> OperatingPoint | None:
    """`choice` is a point's name or a rule; None means the bundle's default. A bundle without
    operating points (older bundles) resolves to None: its gamma decisions are the only choice."""
    if not points:
        return None
    if choice is None:
        choice = default
    if choice is None:
        return points[0]
    for point in points:
        if point.name == choice:
            return point
    for point in points:
        if point.rule == choice:
            return point
    raise ManifestError(
        f"no operating point {choice!r}; the bundle has {', '.join(p.name for p in points)}"
    )


class TrainingData(_Strict):
    data: str = Field(description="where the training data came from, in words or as a path")
    # Examples trained on (audio: clips); labelled anomalies count where training used them.
    n_normal: Annotated[int, Field(ge=0)]
    n_anomaly: Annotated[int, Field(ge=0)]
    clip_seconds: Annotated[float, Field(gt=0)] | None = None
    seed: int | None = None
    # Audio: 'dcase' or 'folders'; the recordings behind the clip counts (the labelled anomalous
    # ones include those that only checked stage 2's early stopping); how training was run.
    layout: str | None = None
    normal_recordings: Annotated[int, Field(ge=0)] | None = None
    anomaly_recordings: Annotated[int, Field(ge=0)] | None = None
    train_hop_frames: Annotated[int, Field(gt=0)] | None = None
    stage2_loss: str | None = None
    stage1_epochs: Annotated[int, Field(ge=0)] | None = None
    stage2_epochs: Annotated[int, Field(ge=0)] | None = None
    block_score: str | None = Field(
        default=None,
        description="audio: what model.onnx's block score is, 'reconstruction' (mean squared "
        "error over all mel bands), 'quiet_bands' (the mean over the best-reconstructed half "
        "of the bands) or 'latent_knn' (distance of the latent code to its nearest codes of "
        "training normal blocks, kept in the graph); computed inside the graph, so the service "
        "only reads it",
    )


class Evaluation(_Strict):
    """Figures measured on data the model never trained on."""

    data: str
    n_normal: Annotated[int, Field(ge=0)]
    n_anomaly: Annotated[int, Field(ge=0)]
    auc: float | None = None
    pauc: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    false_alarm_rate: float | None = None
    extra: dict[str, float] = Field(default_factory=dict)


class _ManifestBase(_Strict):
    format_version: Literal[1] = FORMAT_VERSION
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    version: Annotated[str, Field(min_length=1, max_length=64)]
    created_at: datetime
    description: str = ""
    training: TrainingData
    evaluation: Evaluation | None = None


class Lineage(_Strict):
    """What `auscult retrain` fine-tuned a bundle from: the parent version, the labelled events
    it learned from, and the figures of the promotion decision that let it be served."""

    parent_version: Annotated[str, Field(min_length=1, max_length=64)]
    anomaly_events: list[str] = Field(description="ids of events labelled 'anomaly' it trained on")
    normal_events: list[str] = Field(description="ids of events labelled 'normal' it trained on")
    decision: str = Field(description="the promotion rule's verdict and its reasons, in words")
    figures: dict[str, float] = Field(
        default_factory=dict, description="challenger and champion figures the rule compared"
    )


class AudioManifest(_ManifestBase):
    """An audio bundle. model.onnx takes `blocks` [N, n_mels * frames_per_block]: each block is
    its (n_mels, frames_per_block) log-mel array in dB flattened in C order. It returns `score` [N]
    and `band_error` [N, n_mels], the block's reconstruction error per mel band."""

    kind: Literal["audio"] = "audio"
    machine_type: str | None = None
    backbone: str = Field(
        description="which network the bundle uses: 'block' (the paper's 128 x 32 log-mel "
        "blocks) or 'context' (the DCASE 2020 baseline's 64 mels x 5-frame context)"
    )
    features: LogMelSettings
    # Stage 1's Gamma on training block scores; its threshold is the stage-2 training margin `a`.
    training_margin: GammaThreshold
    # The served decisions, refitted on held-out normal data with the final model.
    clip_decision: GammaThreshold
    block_decision: GammaThreshold
    clip_aggregation: Literal["mean"] = "mean"
    # Every threshold set the service may apply (the gamma one repeats clip/block_decision).
    operating_points: list[OperatingPoint] = Field(default_factory=list)
    default_operating_point: str | None = None
    # None for a bundle trained from data; set for one fine-tuned from labelled events.
    lineage: Lineage | None = None

    @model_validator(mode="after")
    def _check_points(self) -> AudioManifest:
        _check_operating_points(
            self.operating_points, self.default_operating_point, ("block", "clip")
        )
        return self

    def operating_point(self, choice: str | None = None) -> OperatingPoint | None:
        """The operating point `choice` (name or rule; None: the bundle's default) resolves to;
        None for a bundle without operating points."""
        return _resolve_operating_point(self.operating_points, self.default_operating_point, choice)

    def thresholds(self, choice: str | None = None) -> tuple[float, float]:
        """(clip, block) thresholds of the operating point `choice` (name or rule; None: the
        bundle's default)."""
        point = _resolve_operating_point(
            self.operating_points, self.default_operating_point, choice
        )
        if point is None:
            if choice not in (None, "gamma"):
                raise ManifestError(f"no operating point {choice!r}; the bundle has only gamma")
            return self.clip_decision.threshold, self.block_decision.threshold
        return point.thresholds["clip"], point.thresholds["block"]


class ChannelStats(_Strict):
    name: str
    mean: float
    std: Annotated[float, Field(gt=0)]


class WindowsManifest(_ManifestBase):
    """A sensor-window bundle. model.onnx: input `windows` [N, window, n_channels] of standardised
    values; outputs `score` [N, window] and `channel_error` [N, window, n_channels]."""

    kind: Literal["windows"] = "windows"
    model_type: str
    channels: Annotated[list[ChannelStats], Field(min_length=1)]
    window: Annotated[int, Field(gt=1)]
    stride: Annotated[int, Field(gt=0)]
    step_decision: GammaThreshold
    # A distribution-free alternative threshold, and which percentile of the scores it is.
    percentile_threshold: float | None = None
    percentile: Annotated[float, Field(gt=0, lt=100)] | None = None
    # How `auscult evaluate windows` reads the data again: the loader's format and, for SMD,
    # the machine.
    data_format: str | None = None
    data_subset: str | None = None
    # Architecture and training settings, for the record (teacher size, distillation weight...).
    model_settings: dict[str, str | int | float | bool] = Field(default_factory=dict)
    # Seconds between steps where known (SMD: 60), so false alarms can be stated per hour.
    step_seconds: Annotated[float, Field(gt=0)] | None = None
    operating_points: list[OperatingPoint] = Field(default_factory=list)
    default_operating_point: str | None = None

    @model_validator(mode="after")
    def _check(self) -> WindowsManifest:
        if self.stride > self.window:
            raise ValueError("stride must not exceed window")
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise ValueError("channel names must be unique")
        _check_operating_points(self.operating_points, self.default_operating_point, ("step",))
        return self

    def operating_point(self, choice: str | None = None) -> OperatingPoint | None:
        """The operating point `choice` (name or rule; None: the bundle's default) resolves to;
        None for a bundle without operating points."""
        return _resolve_operating_point(self.operating_points, self.default_operating_point, choice)

    def step_threshold(self, choice: str | None = None) -> float:
        """The per-step threshold of the operating point `choice` (name or rule; None: the
        bundle's default)."""
        point = _resolve_operating_point(
            self.operating_points, self.default_operating_point, choice
        )
        if point is None:
            if choice == "percentile" and self.percentile_threshold is not None:
                return self.percentile_threshold
            if choice not in (None, "gamma"):
                raise ManifestError(f"no operating point {choice!r}; the bundle has only gamma")
            return self.step_decision.threshold
        return point.thresholds["step"]


Manifest = Annotated[AudioManifest | WindowsManifest, Field(discriminator="kind")]


class _ManifestDocument(BaseModel):
    manifest: Manifest


def parse_manifest(text: str | bytes) -> AudioManifest | WindowsManifest:
    """Parse and validate a manifest's JSON text; every problem is reported as ManifestError."""
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ManifestError("manifest must be a JSON object")
    try:
        return _ManifestDocument.model_validate({"manifest": raw}).manifest
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:]) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ManifestError(f"manifest is invalid: {problems}") from exc


def read_manifest(bundle_dir: Path) -> AudioManifest | WindowsManifest:
    path = Path(bundle_dir) / MANIFEST_FILE
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return parse_manifest(text)


def write_manifest(bundle_dir: Path, manifest: AudioManifest | WindowsManifest) -> Path:
    path = Path(bundle_dir) / MANIFEST_FILE
    path.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


HISTORY_FILE = "history.json"
REPORT_DIR = "report"


class EpochLoss(_Strict):
    epoch: Annotated[int, Field(ge=1)]
    train_loss: float
    validation_loss: float | None = None


class TrainingHistory(_Strict):
    """`history.json` beside the manifest: the loss per epoch of each training stage, in the order
    they ran (audio: 'stage1', 'stage2'; sensor models: 'teacher', 'student' or the model's name),
    and the epoch whose weights were kept."""

    stages: dict[str, list[EpochLoss]]
    best_epoch: dict[str, int] = Field(default_factory=dict)


def write_history(bundle_dir: Path, history: TrainingHistory) -> Path:
    path = Path(bundle_dir) / HISTORY_FILE
    path.write_text(history.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def read_history(bundle_dir: Path) -> TrainingHistory | None:
    """The bundle's training history, or None for bundles written before it was kept."""
    path = Path(bundle_dir) / HISTORY_FILE
    if not path.is_file():
        return None
    try:
        return TrainingHistory.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise ManifestError(f"{HISTORY_FILE} is invalid: {exc.error_count()} problem(s)") from exc
