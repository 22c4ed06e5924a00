"""Load a bundle folder into a checked ONNX Runtime session: the graph must match its manifest's
contract and a warm-up inference must give finite, correctly shaped outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort

from service.bundle.manifest import (
    MODEL_FILE,
    AudioManifest,
    ManifestError,
    WindowsManifest,
    read_manifest,
)

_WARMUP_BATCH = 2


class BundleError(Exception):
    """A bundle cannot be served; the message says which bundle and what was wrong."""


@dataclass(frozen=True)
class _Tensor:
    """One graph input or output of the contract: its name and shape, None for the batch axis."""

    name: str
    shape: tuple[int | None, ...]


@dataclass(frozen=True)
class LoadedBundle:
    path: Path
    manifest: AudioManifest | WindowsManifest
    session: ort.InferenceSession

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model and return the contract's outputs by name."""
        names = [tensor.name for tensor in _contract(self.manifest)[1]]
        values = self.session.run(names, inputs)
        return dict(zip(names, values, strict=True))


def _contract(
    manifest: AudioManifest | WindowsManifest,
) -> tuple[list[_Tensor], list[_Tensor]]:
    """The inputs and outputs docs/ARCHITECTURE.md promises for the manifest's kind."""
    if isinstance(manifest, AudioManifest):
        features = manifest.features
        return (
            [_Tensor("blocks", (None, features.block_size))],
            [_Tensor("score", (None,)), _Tensor("band_error", (None, features.n_mels))],
        )
    n_channels = len(manifest.channels)
    return (
        [_Tensor("windows", (None, manifest.window, n_channels))],
        [
            _Tensor("score", (None, manifest.window)),
            _Tensor("channel_error", (None, manifest.window, n_channels)),
        ],
    )


def _describe(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("N" if dim is None else str(dim) for dim in shape) + "]"


def _check_graph_side(
    side: Literal["input", "output"],
    declared: list[ort.NodeArg],
    expected: list[_Tensor],
) -> list[str]:
    """Problems with the graph's inputs or outputs; symbolic dimensions are accepted here and
    checked by the warm-up instead. Extra outputs are allowed (never fetched), extra inputs not
    (they could not be fed)."""
    problems: list[str] = []
    by_name = {arg.name: arg for arg in declared}
    for tensor in expected:
        arg = by_name.get(tensor.name)
        if arg is None:
            problems.append(f"the graph has no {side} {tensor.name!r} (it has {sorted(by_name)})")
            continue
        if arg.type != "tensor(float)":
            problems.append(f"{side} {tensor.name!r} is {arg.type}, expected tensor(float)")
        shape = list(arg.shape)
        if len(shape) != len(tensor.shape):
            problems.append(
                f"{side} {tensor.name!r} has shape {shape}, expected {_describe(tensor.shape)}"
            )
            continue
        for axis, (got, want) in enumerate(zip(shape, tensor.shape, strict=True)):
            if want is not None and isinstance(got, int) and got != want:
                problems.append(
                    f"{side} {tensor.name!r} has {got} on axis {axis}, expected {want} "
                    f"(shape {_describe(tensor.shape)})"
                )
    unexpected = sorted(set(by_name) - {tensor.name for tensor in expected})
    if side == "input" and unexpected:
        problems.append(f"the graph has unexpected inputs {unexpected}")
    return problems


def _warm_up(bundle: LoadedBundle) -> list[str]:
    """Run a small batch through the model; return what was wrong with its outputs."""
    inputs, outputs = _contract(bundle.manifest)
    # Plausible values for each kind: log-mel levels in dB, or standardised sensor readings.
    centre, spread = (-40.0, 20.0) if isinstance(bundle.manifest, AudioManifest) else (0.0, 1.0)
    rng = np.random.default_rng(0)
    feed = {}
    for tensor in inputs:
        shape = (_WARMUP_BATCH, *(dim for dim in tensor.shape[1:] if dim is not None))
        feed[tensor.name] = rng.normal(centre, spread, size=shape).astype(np.float32)
    try:
        results = bundle.run(feed)
    except Exception as exc:  # ONNX Runtime raises its own exception types, none shared
        return [f"the warm-up inference failed: {exc}"]
    problems = []
    for tensor in outputs:
        value = np.asarray(results[tensor.name])
        want = (_WARMUP_BATCH, *tensor.shape[1:])
        if value.shape != want:
            problems.append(
                f"warm-up output {tensor.name!r} has shape {list(value.shape)}, "
                f"expected {list(want)}"
            )
        elif not np.all(np.isfinite(value)):
            problems.append(f"warm-up output {tensor.name!r} has non-finite values")
    return problems


def load_bundle(path: Path, *, intra_op_threads: int = 1) -> LoadedBundle:
    """Read and validate the bundle at `path`, load its model on the CPU and warm it up."""
    path = Path(path)
    if intra_op_threads < 1:
        raise ValueError(f"intra_op_threads must be at least 1, got {intra_op_threads}")
    try:
        manifest = read_manifest(path)
    except ManifestError as exc:
        raise BundleError(f"bundle {path}: {exc}") from exc
    label = f"bundle {manifest.name!r} version {manifest.version!r} at {path}"

    model_path = path / MODEL_FILE
    if not model_path.is_file():
        raise BundleError(f"{label}: {MODEL_FILE} is missing")
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # ONNX Runtime raises its own exception types, none shared
        raise BundleError(f"{label}: ONNX Runtime cannot load {MODEL_FILE}: {exc}") from exc

    inputs, outputs = _contract(manifest)
    problems = _check_graph_side("input", session.get_inputs(), inputs)
    problems += _check_graph_side("output", session.get_outputs(), outputs)
    bundle = LoadedBundle(path=path, manifest=manifest, session=session)
    if not problems:
        problems = _warm_up(bundle)
    if problems:
        raise BundleError(
            f"{label} does not fit the {manifest.kind} contract: " + "; ".join(problems)
        )
    return bundle
