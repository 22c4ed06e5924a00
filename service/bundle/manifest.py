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

    @model_validator(mode="after")
    def _check(self) -> WindowsManifest:
        if self.stride > self.window:
            raise ValueError("stride must not exceed window")
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise ValueError("channel names must be unique")
        return self


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
