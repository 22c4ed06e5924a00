"""Real small bundles for tests: linear autoencoders written with onnx.helper (principal axes of
generated machine sound or sensor series), with Gamma thresholds fitted to their own scores."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from service.bundle.manifest import (
    MANIFEST_FILE,
    MODEL_FILE,
    AudioManifest,
    ChannelStats,
    GammaThreshold,
    LogMelSettings,
    TrainingData,
    WindowsManifest,
    write_manifest,
)
from service.features.logmel import LogMelExtractor
from training.thresholds import gamma_threshold, percentile_threshold

_OPSET = 17
_IR_VERSION = 8
# Clips of exactly 1 to 4 blocks, so every clip's last block reaches into the zero padding at
# its end: such blocks score highest, and the thresholds must cover them.
_CLIP_BLOCKS = (1, 2, 3, 4)
_N_TRAIN_CLIPS = 24
_N_HELD_OUT_CLIPS = 48
_TRAIN_BLOCK_HOP = 8  # overlapping training blocks: more rows for the principal axes
_SENSOR_STEPS = 3000


def machine_sound(
    seconds: float, *, sample_rate: int = 16000, seed: int = 0, anomalous: bool = False
) -> np.ndarray:
    """A steady machine hum (harmonics of 120 Hz, slow amplitude wobble, broadband noise) as
    float32 samples; anomalous adds a 2.6 kHz whine and knocks four times a second."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    wobble = 1.0 + 0.05 * np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 2 * np.pi))
    hum = np.zeros_like(t)
    for harmonic in range(1, 9):
        if 120.0 * harmonic < sample_rate / 2:
            phase = rng.uniform(0, 2 * np.pi)
            hum += np.sin(2 * np.pi * 120.0 * harmonic * t + phase) / harmonic
    sound = 0.1 * wobble * hum + 0.01 * rng.standard_normal(t.size)
    if anomalous:
        whine_hz = min(2600.0, 0.4 * sample_rate)
        sound += 0.05 * np.sin(2 * np.pi * whine_hz * t)
        knock_length = int(0.02 * sample_rate)
        for start in range(0, t.size - knock_length, sample_rate // 4):
            sound[start : start + knock_length] += 0.3 * rng.standard_normal(knock_length)
    return sound.astype(np.float32)


def sensor_series(
    steps: int,
    *,
    channels: int = 3,
    seed: int = 0,
    anomaly: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Float32 (steps, channels) readings that all follow one slow oscillation with their own
    gain and offset plus noise; anomaly = (start, stop, channel) shifts that channel's steps."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps, dtype=np.float64)
    latent = np.sin(2 * np.pi * t / 50.0) + 0.5 * np.sin(2 * np.pi * t / 17.0)
    gains = np.linspace(1.0, 3.0, channels) * np.where(np.arange(channels) % 2, -1.0, 1.0)
    offsets = np.arange(channels, dtype=np.float64) * 10.0
    series = (
        latent[:, None] * gains
        + offsets
        + 0.05 * np.abs(gains) * rng.standard_normal((steps, channels))
    )
    if anomaly is not None:
        start, stop, channel = anomaly
        series[start:stop, channel] += 4.0 * abs(gains[channel])
    return series.astype(np.float32)


def _finish_model(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)])
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _audio_model(
    settings: LogMelSettings,
    mean: np.ndarray,
    scale: float,
    basis: np.ndarray,
    *,
    input_name: str = "blocks",
    band_axis: int = 2,
    poison: bool = False,
) -> bytes:
    """score = mean((x - x @ W @ W.T)^2) on standardised blocks; band_error averages the squared
    residual over each band's frames (over the wrong axis or poisoned, for broken bundles)."""
    d = settings.block_size
    initializers = [
        numpy_helper.from_array(mean.astype(np.float32), "mean"),
        numpy_helper.from_array(np.array([1.0 / scale], dtype=np.float32), "inv_scale"),
        numpy_helper.from_array(basis.astype(np.float32), "basis"),
        numpy_helper.from_array(np.ascontiguousarray(basis.T).astype(np.float32), "basis_t"),
        numpy_helper.from_array(
            np.array([-1, settings.n_mels, settings.frames_per_block], dtype=np.int64), "bands"
        ),
    ]
    nodes = [
        helper.make_node("Sub", [input_name, "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "inv_scale"], ["x"]),
        helper.make_node("MatMul", ["x", "basis"], ["code"]),
        helper.make_node("MatMul", ["code", "basis_t"], ["recon"]),
        helper.make_node("Sub", ["x", "recon"], ["residual"]),
        helper.make_node("Mul", ["residual", "residual"], ["squared"]),
        helper.make_node(
            "ReduceMean", ["squared"], ["clean_score" if poison else "score"], axes=[1], keepdims=0
        ),
        helper.make_node("Reshape", ["squared", "bands"], ["per_band"]),
        helper.make_node("ReduceMean", ["per_band"], ["band_error"], axes=[band_axis], keepdims=0),
    ]
    if poison:
        initializers.append(numpy_helper.from_array(np.array([np.inf], np.float32), "poison"))
        nodes.append(helper.make_node("Mul", ["clean_score", "poison"], ["score"]))
    graph = helper.make_graph(
        nodes,
        "linear_block_autoencoder",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", d])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("band_error", TensorProto.FLOAT, ["N", None]),
        ],
        initializers,
    )
    return _finish_model(graph)


def _windows_model(basis: np.ndarray, window: int, channels: int) -> bytes:
    """Per step, channel_error = (x - x @ W @ W.T)^2 across channels and score = its mean."""
    nodes = [
        helper.make_node("MatMul", ["windows", "basis"], ["code"]),
        helper.make_node("MatMul", ["code", "basis_t"], ["recon"]),
        helper.make_node("Sub", ["windows", "recon"], ["residual"]),
        helper.make_node("Mul", ["residual", "residual"], ["channel_error"]),
        helper.make_node("ReduceMean", ["channel_error"], ["score"], axes=[2], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "linear_step_autoencoder",
        [helper.make_tensor_value_info("windows", TensorProto.FLOAT, ["N", window, channels])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", window]),
            helper.make_tensor_value_info(
                "channel_error", TensorProto.FLOAT, ["N", window, channels]
            ),
        ],
        [
            numpy_helper.from_array(basis.astype(np.float32), "basis"),
            numpy_helper.from_array(np.ascontiguousarray(basis.T).astype(np.float32), "basis_t"),
        ],
    )
    return _finish_model(graph)


def _write_bundle(directory: Path, model: bytes, manifest: AudioManifest | WindowsManifest) -> Path:
    """Write model.onnx and manifest.json into directory (created if needed); return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MODEL_FILE).write_bytes(model)
    write_manifest(directory, manifest)
    return directory


def _principal_axes(rows: np.ndarray, latent: int) -> np.ndarray:
    """The first `latent` principal axes of centred rows, as orthonormal columns."""
    _, _, vt = np.linalg.svd(rows, full_matrices=False)
    axes: np.ndarray = vt[:latent].T
    return axes


def _scores(model: bytes, input_name: str, values: np.ndarray) -> np.ndarray:
    """The model's `score` output for these inputs, from ONNX Runtime itself."""
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    (score,) = session.run(["score"], {input_name: values.astype(np.float32)})
    return np.asarray(score)


@dataclass(frozen=True)
class _AudioFit:
    mean: np.ndarray
    scale: float
    basis: np.ndarray
    model: bytes
    train_block_scores: np.ndarray
    held_out_block_scores: np.ndarray
    held_out_clip_scores: np.ndarray


@lru_cache(maxsize=16)
def _fit_audio(settings: LogMelSettings, latent: int, seed: int) -> _AudioFit:
    extractor = LogMelExtractor(settings)
    rate = settings.sample_rate

    def clips(first_seed: int, count: int, hop: int) -> list[np.ndarray]:
        block_samples = settings.frames_per_block * settings.hop_length
        lengths = [
            extractor.min_samples + (_CLIP_BLOCKS[i % len(_CLIP_BLOCKS)] - 1) * block_samples
            for i in range(count)
        ]
        return [
            extractor.clip_blocks(
                machine_sound(n / rate, sample_rate=rate, seed=first_seed + i), hop
            )
            for i, n in enumerate(lengths)
        ]

    train = np.concatenate(clips(seed * 1000, _N_TRAIN_CLIPS, _TRAIN_BLOCK_HOP))
    mean = train.mean(axis=0)
    scale = float(train.std())
    basis = _principal_axes((train - mean) / scale, min(latent, train.shape[0] - 1))
    model = _audio_model(settings, mean, scale, basis)

    held_out = clips(seed * 1000 + 500, _N_HELD_OUT_CLIPS, settings.block_hop_frames)
    scores = _scores(model, "blocks", np.concatenate([train, *held_out]))
    train_scores, held_out_scores = scores[: len(train)], scores[len(train) :]
    clip_ends = np.cumsum([len(blocks) for blocks in held_out])[:-1]
    clip_scores = np.array([part.mean() for part in np.split(held_out_scores, clip_ends)])
    return _AudioFit(
        mean=mean,
        scale=scale,
        basis=basis,
        model=model,
        train_block_scores=train_scores,
        held_out_block_scores=held_out_scores,
        held_out_clip_scores=clip_scores,
    )


def _scaled(threshold: GammaThreshold, factor: float) -> GammaThreshold:
    """The same fit with the scale (and so the threshold) multiplied by factor."""
    if factor == 1.0:
        return threshold
    return threshold.model_copy(
        update={"scale": threshold.scale * factor, "threshold": threshold.threshold * factor}
    )


def audio_settings(
    *,
    sample_rate: int = 16000,
    n_mels: int = 128,
    frames_per_block: int = 32,
    block_hop_frames: int | None = None,
    n_fft: int = 2048,
    hop_length: int = 512,
) -> LogMelSettings:
    """The LogMelSettings make_audio_bundle writes for these arguments."""
    return LogMelSettings(
        sample_rate=sample_rate,
        n_fft=n_fft,
        win_length=n_fft,
        hop_length=hop_length,
        n_mels=n_mels,
        frames_per_block=frames_per_block,
        block_hop_frames=frames_per_block if block_hop_frames is None else block_hop_frames,
    )


def make_audio_bundle(
    directory: Path,
    *,
    name: str = "test-audio",
    version: str = "1",
    sample_rate: int = 16000,
    n_mels: int = 128,
    frames_per_block: int = 32,
    block_hop_frames: int | None = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    latent: int = 8,
    r: float = 0.99,
    seed: int = 0,
    created_at: datetime | None = None,
    threshold_scale: float = 1.0,
) -> Path:
    """Write an audio bundle into `directory` (created if needed) and return it.

    The model's principal axes and thresholds come from machine_sound clips of exactly 1 to 4
    blocks (seeds from seed * 1000). As r intends, about 1 in 100 normal clips scores above the
    clip threshold; anomalous machine_sound scores tens of times above it. threshold_scale
    multiplies every threshold (e.g. 1e-6 to flag everything, 1e6 to flag nothing)."""
    settings = audio_settings(
        sample_rate=sample_rate,
        n_mels=n_mels,
        frames_per_block=frames_per_block,
        block_hop_frames=block_hop_frames,
        n_fft=n_fft,
        hop_length=hop_length,
    )
    fit = _fit_audio(settings, latent, seed)
    manifest = AudioManifest(
        name=name,
        version=version,
        created_at=created_at or datetime.now(UTC),
        description="Linear block autoencoder built by tests/bundle_factory.py.",
        training=TrainingData(
            data="tests.bundle_factory.machine_sound: generated hum, clips of 1 to 4 blocks",
            n_normal=_N_TRAIN_CLIPS,
            n_anomaly=0,
            seed=seed,
        ),
        machine_type="test-machine",
        backbone="linear_ae",
        features=settings,
        training_margin=_scaled(
            gamma_threshold(fit.train_block_scores, r, "training block scores"), threshold_scale
        ),
        clip_decision=_scaled(
            gamma_threshold(fit.held_out_clip_scores, r, "held-out normal clip scores"),
            threshold_scale,
        ),
        block_decision=_scaled(
            gamma_threshold(fit.held_out_block_scores, r, "held-out normal block scores"),
            threshold_scale,
        ),
    )
    return _write_bundle(directory, fit.model, manifest)


def standardise(series: np.ndarray, manifest: WindowsManifest) -> np.ndarray:
    """Readings (steps, channels) standardised with the manifest's channel statistics."""
    mean = np.array([c.mean for c in manifest.channels], dtype=np.float64)
    std = np.array([c.std for c in manifest.channels], dtype=np.float64)
    standardised: np.ndarray = ((series - mean) / std).astype(np.float32)
    return standardised


def make_windows_bundle(
    directory: Path,
    *,
    name: str = "test-windows",
    version: str = "1",
    channels: int = 3,
    window: int = 100,
    stride: int | None = None,
    r: float = 0.99,
    seed: int = 0,
    created_at: datetime | None = None,
    threshold_scale: float = 1.0,
) -> Path:
    """Write a windows bundle into `directory` (created if needed) and return it: a per-step
    linear autoencoder across channels fitted to sensor_series(seed=seed), stride defaulting
    to window; the step threshold comes from its scores on a held-out series."""
    if channels < 2:
        raise ValueError("a windows bundle needs at least 2 channels to have a residual")
    train = sensor_series(_SENSOR_STEPS, channels=channels, seed=seed).astype(np.float64)
    stats = [
        ChannelStats(name=f"sensor_{i}", mean=float(m), std=float(s))
        for i, (m, s) in enumerate(zip(train.mean(axis=0), train.std(axis=0), strict=True))
    ]
    basis = _principal_axes((train - train.mean(axis=0)) / train.std(axis=0), 1)
    model = _windows_model(basis, window, channels)

    def step_scores(series: np.ndarray) -> np.ndarray:
        n = series.shape[0] // window
        mean = np.array([c.mean for c in stats])
        std = np.array([c.std for c in stats])
        windows = ((series[: n * window] - mean) / std).reshape(n, window, channels)
        return _scores(model, "windows", windows).ravel()

    held_out = sensor_series(_SENSOR_STEPS, channels=channels, seed=seed + 10_000)
    step_decision = gamma_threshold(step_scores(held_out), r, "held-out normal step scores")
    manifest = WindowsManifest(
        name=name,
        version=version,
        created_at=created_at or datetime.now(UTC),
        description="Linear per-step autoencoder built by tests/bundle_factory.py.",
        training=TrainingData(
            data="tests.bundle_factory.sensor_series (generated readings)",
            n_normal=_SENSOR_STEPS,
            n_anomaly=0,
            seed=seed,
        ),
        model_type="linear_ae",
        channels=stats,
        window=window,
        stride=window if stride is None else stride,
        step_decision=_scaled(step_decision, threshold_scale),
        percentile_threshold=percentile_threshold(step_scores(train), 99.0) * threshold_scale,
    )
    return _write_bundle(directory, model, manifest)


BrokenProblem = Literal[
    "manifest_missing",
    "manifest_not_json",
    "manifest_incomplete",
    "model_missing",
    "model_not_onnx",
    "wrong_input_name",
    "wrong_output_shape",
    "non_finite_output",
]


def write_broken_bundle(
    directory: Path,
    problem: BrokenProblem,
    *,
    name: str = "test-audio",
    version: str = "1",
    created_at: datetime | None = None,
) -> Path:
    """Write an audio bundle (the smallest useful settings) that load_bundle must refuse for
    `problem`, into `directory`, and return it."""
    small = {"n_mels": 16, "frames_per_block": 8, "n_fft": 512, "hop_length": 256}
    directory = make_audio_bundle(
        directory, name=name, version=version, created_at=created_at, latent=8, seed=0, **small
    )
    manifest_path = directory / MANIFEST_FILE
    model_path = directory / MODEL_FILE
    settings = audio_settings(**small)
    fit = _fit_audio(settings, 8, 0)
    parts = (settings, fit.mean, fit.scale, fit.basis)
    if problem == "manifest_missing":
        manifest_path.unlink()
    elif problem == "manifest_not_json":
        manifest_path.write_text('{"format_version": 1, "name": ', encoding="utf-8")
    elif problem == "manifest_incomplete":
        document = json.loads(manifest_path.read_text(encoding="utf-8"))
        del document["features"]
        manifest_path.write_text(json.dumps(document), encoding="utf-8")
    elif problem == "model_missing":
        model_path.unlink()
    elif problem == "model_not_onnx":
        model_path.write_bytes(b"this is not an ONNX model\x00\xff" * 8)
    elif problem == "wrong_input_name":
        model_path.write_bytes(_audio_model(*parts, input_name="features"))
    elif problem == "wrong_output_shape":
        model_path.write_bytes(_audio_model(*parts, band_axis=1))
    elif problem == "non_finite_output":
        model_path.write_bytes(_audio_model(*parts, poison=True))
    return directory
