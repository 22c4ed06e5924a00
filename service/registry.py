"""The model registry: loads every bundle in the models folder, serves the newest version of each
model name, and swaps in new or changed bundles atomically while requests are in flight."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from service.bundle.loader import LoadedBundle, load_bundle
from service.bundle.manifest import MANIFEST_FILE, MODEL_FILE, AudioManifest, WindowsManifest
from service.config import Settings
from service.gc_freeze import freeze_held_objects
from service.metrics import Metrics
from service.scoring.audio import AudioScorer
from service.scoring.detectors import AudioDetector, OperatingPointChoice, WindowsDetector
from service.scoring.windows import WindowsScorer

logger = logging.getLogger(__name__)

# (mtime_ns, size, inode) of the manifest and of the model: any rewrite or replacement changes it.
Fingerprint = tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class ServedModel:
    """One loaded, warmed bundle. A request keeps the instance it started with, so a swap never
    changes the model under it."""

    bundle: LoadedBundle
    fingerprint: Fingerprint
    loaded_at: datetime
    # The scorer paired with the decisions of the operating point the settings chose.
    detector: AudioDetector | WindowsDetector

    @property
    def audio(self) -> AudioDetector | None:
        return self.detector if isinstance(self.detector, AudioDetector) else None

    @property
    def windows(self) -> WindowsDetector | None:
        return self.detector if isinstance(self.detector, WindowsDetector) else None

    @property
    def audio_scorer(self) -> AudioScorer | None:
        return self.audio.scorer if self.audio is not None else None

    @property
    def windows_scorer(self) -> WindowsScorer | None:
        return self.windows.scorer if self.windows is not None else None

    @property
    def operating_point(self) -> str:
        """The name of the operating point whose thresholds the verdicts use."""
        return self.detector.operating_point

    @property
    def threshold(self) -> float:
        """The applied clip threshold (audio) or step threshold (windows)."""
        if isinstance(self.detector, AudioDetector):
            return self.detector.clip.threshold
        return self.detector.step.threshold

    @property
    def manifest(self) -> AudioManifest | WindowsManifest:
        return self.bundle.manifest

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def kind(self) -> str:
        return self.manifest.kind

    @property
    def path(self) -> Path:
        return self.bundle.path


@dataclass(frozen=True)
class RefusedBundle:
    """A bundle that failed to load; it is retried once its files change."""

    path: Path
    fingerprint: Fingerprint
    error: str
    at: datetime


@dataclass(frozen=True)
class RefreshReport:
    loaded: list[ServedModel] = field(default_factory=list)
    refused: list[RefusedBundle] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)


def version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Numeric-aware ordering: '1.10' after '1.9', 'v10' after 'v2'."""
    parts = re.findall(r"\d+|\D+", version)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts)


def _oldest_first(models: Iterable[ServedModel]) -> list[ServedModel]:
    """Ordered by version, then created_at, then folder name: the last of a name is served."""
    return sorted(
        models, key=lambda m: (version_key(m.version), m.manifest.created_at, m.path.name)
    )


def _newest(models: Iterable[ServedModel]) -> dict[str, ServedModel]:
    """The model each name serves: highest version, then latest created_at, then folder name."""
    return {model.name: model for model in _oldest_first(models)}


def _fingerprint(folder: Path) -> Fingerprint | None:
    stats = []
    for name in (MANIFEST_FILE, MODEL_FILE):
        try:
            stat = (folder / name).stat()
        except OSError:
            if name == MANIFEST_FILE:
                return None  # not a bundle (yet)
            stats.append((0, -1, 0))  # a missing model file is the loader's error to report
            continue
        stats.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
    return tuple(stats)


class ModelRegistry:
    """Bundles under `models_dir` (one folder each; folders starting with '.' are ignored, so a
    bundle can be written there and renamed into place)."""

    def __init__(
        self,
        models_dir: Path,
        metrics: Metrics,
        *,
        onnx_threads: int = 1,
        operating_points: OperatingPointChoice | None = None,
        after_change: Callable[[], None] | None = None,
    ) -> None:
        """`after_change` is called, in the refreshing thread, after the first refresh and
        after every one that loaded or removed a bundle."""
        self.models_dir = Path(models_dir)
        self._metrics = metrics
        self._onnx_threads = onnx_threads
        self._operating_points = operating_points or OperatingPointChoice()
        self._after_change = after_change
        self._lock = threading.Lock()
        self._loaded: dict[Path, ServedModel] = {}
        self._refused: dict[Path, RefusedBundle] = {}
        # Replaced as a whole, never mutated: readers see the old or the new mapping.
        self._served: dict[str, ServedModel] = {}
        self._refreshed = False
        self._folder_error: str | None = None

    @classmethod
    def configured(cls, settings: Settings, metrics: Metrics) -> ModelRegistry:
        """The registry of settings.models_dir with the settings' ONNX threads and operating
        points, freezing what the process holds once its models change (service/gc_freeze.py)
        unless AUSCULT_GC_FREEZE is off: what the service and the MQTT bridge serve."""
        return cls(
            settings.models_dir,
            metrics,
            onnx_threads=settings.onnx_threads,
            operating_points=OperatingPointChoice(
                settings.operating_point, settings.model_operating_points
            ),
            after_change=freeze_held_objects if settings.gc_freeze else None,
        )

    @property
    def refreshed(self) -> bool:
        """Whether the models folder has been read at least once."""
        return self._refreshed

    @property
    def folder_error(self) -> str | None:
        """Why the models folder could not be read at the last refresh, if it could not."""
        return self._folder_error

    def get(self, name: str) -> ServedModel | None:
        return self._served.get(name)

    def served(self) -> list[ServedModel]:
        return sorted(self._served.values(), key=lambda m: m.name)

    def versions(self, name: str) -> dict[str, ServedModel]:
        """Every loaded version of `name`, oldest first, each the bundle `get` would serve if it
        were the newest: older versions stay addressable (OIP v2) while their bundles exist."""
        return {
            model.version: model
            for model in _oldest_first(self._loaded.values())
            if model.name == name
        }

    def refused(self) -> list[RefusedBundle]:
        return sorted(self._refused.values(), key=lambda r: r.path)

    def refresh(self) -> RefreshReport:
        """Load new and changed bundles, drop removed ones, then swap the served set at once.
        Blocking: call it from a worker thread."""
        with self._lock:
            found = self._scan()
            if found is None:
                self._refreshed = True
                return RefreshReport()
            report = RefreshReport()
            loaded = dict(self._loaded)
            for folder, fingerprint in sorted(found.items()):
                current = loaded.get(folder)
                refused = self._refused.get(folder)
                if (current is not None and current.fingerprint == fingerprint) or (
                    refused is not None and refused.fingerprint == fingerprint
                ):
                    continue
                try:
                    model = self._load(folder, fingerprint)
                except Exception as exc:  # any failure refuses this bundle, never the reload
                    if _fingerprint(folder) != fingerprint:
                        continue  # still being written: try again when it settles
                    error = self._without_paths(str(exc), folder)
                    refusal = RefusedBundle(folder, fingerprint, error, datetime.now(UTC))
                    self._refused[folder] = refusal
                    report.refused.append(refusal)
                    self._metrics.model_reloads.labels("failure").inc()
                    logger.error("refused bundle %s: %s", folder, exc)
                    continue
                if _fingerprint(folder) != fingerprint:
                    continue  # changed while loading: what was read may be half old, half new
                loaded[folder] = model
                self._refused.pop(folder, None)
                report.loaded.append(model)
                self._metrics.model_reloads.labels("success").inc()
                logger.info("loaded %s %s from %s", model.name, model.version, folder)
            for folder in sorted(set(loaded) - set(found)):
                del loaded[folder]
                report.removed.append(folder)
                logger.info("bundle %s was removed", folder)
            for folder in set(self._refused) - set(found):
                del self._refused[folder]
            self._loaded = loaded
            self._swap(_newest(loaded.values()))
            # Before the first refresh counts as done: /readyz waits for what this costs.
            if self._after_change is not None and (
                not self._refreshed or report.loaded or report.removed
            ):
                self._after_change()
            self._refreshed = True
            return report

    def _scan(self) -> dict[Path, Fingerprint] | None:
        """Every bundle folder and its fingerprint; None when the folder cannot be read, so that
        an unmounted volume does not unload every model."""
        try:
            children = [p for p in self.models_dir.iterdir() if not p.name.startswith(".")]
        except OSError as exc:
            self._folder_error = f"cannot read the models folder {self.models_dir}: {exc}"
            logger.error(self._folder_error)
            return None
        self._folder_error = None
        found = {}
        for child in children:
            if child.is_dir():
                fingerprint = _fingerprint(child)
                if fingerprint is not None:
                    found[child] = fingerprint
        return found

    def _without_paths(self, message: str, folder: Path) -> str:
        """The message with the bundle's path shortened to its folder name: refusals are shown
        to API clients, which need not learn where the models live (the log keeps the path)."""
        spellings = {str(folder), str(folder.absolute()), str(folder.resolve())}
        for spelling in sorted(spellings, key=len, reverse=True):
            message = message.replace(spelling, folder.name)
        folders = {str(self.models_dir.absolute()), str(self.models_dir.resolve())}
        for spelling in sorted(folders, key=len, reverse=True):
            message = message.replace(spelling, "<models>")
        return message

    def _load(self, folder: Path, fingerprint: Fingerprint) -> ServedModel:
        bundle = load_bundle(folder, intra_op_threads=self._onnx_threads)
        manifest = bundle.manifest
        if isinstance(manifest, AudioManifest):
            audio = AudioDetector.at(AudioScorer(bundle), self._operating_points)
            # Warm the whole clip path (features as well as the model) on one block of silence.
            audio.scorer.score_samples(
                np.zeros(audio.scorer.extractor.min_samples, dtype=np.float32)
            )
            return ServedModel(bundle, fingerprint, datetime.now(UTC), audio)
        windows = WindowsDetector.at(WindowsScorer(bundle), self._operating_points)
        # The same for a series one window long, at the channels' means.
        means = [channel.mean for channel in manifest.channels]
        windows.scorer.score(np.tile(np.asarray(means, dtype=np.float32), (manifest.window, 1)))
        return ServedModel(bundle, fingerprint, datetime.now(UTC), windows)

    def _swap(self, served: dict[str, ServedModel]) -> None:
        previous = self._served
        self._served = served
        for name, old in previous.items():
            new = served.get(name)
            if new is None or new is not old:
                self._metrics.model_info.labels(old.name, old.version, old.kind).set(0)
        for model in served.values():
            self._metrics.model_info.labels(model.name, model.version, model.kind).set(1)
