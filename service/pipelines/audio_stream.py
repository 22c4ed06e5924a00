"""An audio stream -> block verdicts: raw PCM frames in, the blocks, scores and verdicts of the
same audio scored as one clip out; each stage timed. Blocking: building one (the resampler's
filter), `push` and `finish` run in the scoring pool."""

from __future__ import annotations

from typing import Literal

import numpy as np

from service.audio.decode import MAX_FLOAT_AMPLITUDE, PCM16_FULL_SCALE
from service.audio.resample import StreamingResampler
from service.events.capture import EventSink
from service.events.stretches import AudioStretches
from service.features.logmel import (
    BlockBatch,
    LogMelExtractor,
    StreamingBlocker,
    StreamingLogMel,
)
from service.metrics import Metrics
from service.scoring.audio import AudioScorer
from service.scoring.decision import require_finite
from service.scoring.detectors import AudioDetector, BlockVerdict

Encoding = Literal["pcm_s16le", "f32le"]

_SAMPLE_TYPES: dict[str, tuple[str, float]] = {
    "pcm_s16le": ("<i2", 1.0 / PCM16_FULL_SCALE),
    "f32le": ("<f4", 1.0),
}


class StreamFrameError(ValueError):
    """A binary frame that does not hold whole, finite samples of the announced format."""


class AudioStream:
    """One stream's state: resampler, log-mel frames and block assembly carry over between
    frames, so a block split across frames scores as it would in the whole clip."""

    def __init__(
        self,
        detector: AudioDetector,
        *,
        sample_rate: int,
        encoding: Encoding,
        channels: int,
        min_rate: int,
        max_rate: int,
        max_resample_factor: int,
        metrics: Metrics,
        station: str | None = None,
        events: EventSink | None = None,
    ) -> None:
        """Raises UnsupportedRateError for a sample rate outside [min_rate, max_rate] or one
        whose ratio to the model's rate reduces to a factor above max_resample_factor."""
        features = detector.scorer.manifest.features
        self._detector = detector
        self._metrics = metrics
        self._station = station
        self._dtype, self._scale = _SAMPLE_TYPES[encoding]
        self._channels = channels
        self.sample_rate = sample_rate
        self.bytes_per_frame = np.dtype(self._dtype).itemsize * channels
        self._resampler = StreamingResampler(
            sample_rate,
            features.sample_rate,
            min_rate=min_rate,
            max_rate=max_rate,
            max_factor=max_resample_factor,
        )
        self._log_mel = StreamingLogMel(features)
        self._blocker = StreamingBlocker(features)
        self._stretches = AudioStretches(detector, events, station) if events is not None else None
        self._ended = False

    @property
    def scorer(self) -> AudioScorer:
        """The model whose blocks `blocks_of` and `final_blocks` cut."""
        return self._detector.scorer

    def samples_in(self, frame: bytes) -> int:
        """Samples per channel a binary frame holds; StreamFrameError when it is ragged."""
        if len(frame) % self.bytes_per_frame:
            raise StreamFrameError(
                f"a binary frame of {len(frame)} bytes does not hold whole samples: "
                f"expected a multiple of {self.bytes_per_frame} bytes "
                f"({self._channels} channel(s) of {np.dtype(self._dtype).itemsize} bytes)"
            )
        return len(frame) // self.bytes_per_frame

    def push(self, frame: bytes) -> list[BlockVerdict]:
        """Verdicts on the blocks this frame completes (possibly none). Raises StreamFrameError
        and NonFiniteError (features or scores out of range: no verdict)."""
        return self._verdicts(self.blocks_of(frame))

    def finish(self) -> list[BlockVerdict]:
        """Verdicts on the blocks the end of the stream completes; the stream is then over."""
        return self._verdicts(self.final_blocks())

    def blocks_of(self, frame: bytes) -> BlockBatch:
        """The blocks this frame completes, not yet scored: `push` without the model, for a
        caller that scores the blocks of many streams in one call and then calls `verdicts`.
        Raises StreamFrameError and NonFiniteError."""
        return self.blocks_of_frames(self._frames(self.windows_of(frame)))

    def final_blocks(self) -> BlockBatch:
        """The blocks the end of the stream completes, not yet scored (see `blocks_of`)."""
        return self.blocks_of_frames(self._frames(self.final_windows()))

    @property
    def extractor(self) -> LogMelExtractor:
        """What turns the windows of `windows_of` and `final_windows` into log-mel frames."""
        return self._log_mel.extractor

    def windows_of(self, frame: bytes) -> np.ndarray:
        """`blocks_of` up to the spectrum: the frame's new complete analysis windows, for a
        caller that turns the windows of many streams into log-mel frames in one call
        (`extractor.frames_of_windows`) and hands this stream's to `blocks_of_frames`."""
        with self._metrics.time_stage("decode"):
            samples = self._samples(frame)
            resampled = self._resampler.push(samples)
            if self._stretches is not None:
                self._stretches.audio(resampled)
        return self._log_mel.take_windows(resampled)

    def final_windows(self) -> np.ndarray:
        """`final_blocks` up to the spectrum (see `windows_of`)."""
        with self._metrics.time_stage("decode"):
            resampled = self._resampler.finish()
            if self._stretches is not None:
                self._stretches.audio(resampled)
            self._ended = True
        windows = self._log_mel.take_windows(resampled)
        return np.concatenate([windows, self._log_mel.finish_windows()])

    def blocks_of_frames(self, frames: np.ndarray) -> BlockBatch:
        """The blocks that the log-mel frames of this stream's next windows complete."""
        batch = self._blocker.push(frames)
        require_finite(batch.blocks, "log-mel features")
        return batch

    def _frames(self, windows: np.ndarray) -> np.ndarray:
        with self._metrics.time_stage("features"):
            return self.extractor.frames_of_windows(windows)

    def _samples(self, frame: bytes) -> np.ndarray:
        self.samples_in(frame)
        values = np.frombuffer(frame, dtype=self._dtype).astype(np.float32) * self._scale
        if not np.all(np.isfinite(values)):
            raise StreamFrameError("the frame holds NaN or infinite samples")
        loudest = float(np.abs(values).max(initial=0.0))
        if loudest > MAX_FLOAT_AMPLITUDE:
            # Refused as a clip's samples are: their spectrum would overflow.
            raise StreamFrameError(
                f"the frame holds samples of magnitude {loudest:.3g}; float audio is nominally "
                f"within [-1, 1] and samples beyond {MAX_FLOAT_AMPLITUDE:g} are refused"
            )
        if self._channels > 1:
            # The mean of the channels, as clips are mixed down when decoded.
            values = values.reshape(-1, self._channels).mean(axis=1, dtype=np.float32)
        return values

    def _verdicts(self, batch: BlockBatch) -> list[BlockVerdict]:
        if len(batch) == 0:
            # `verdicts` still runs: at the stream's end it closes an open alarmed stretch.
            return self.verdicts(batch, np.empty(0, np.float32), np.empty((0, 0), np.float32))
        with self._metrics.time_stage("model"):
            scores, band_error = self._detector.scorer.score_blocks(batch.blocks)
        return self.verdicts(batch, scores, band_error)

    def verdicts(
        self, batch: BlockBatch, scores: np.ndarray, band_error: np.ndarray
    ) -> list[BlockVerdict]:
        """Verdicts on `batch` (from `blocks_of` or `final_blocks`) given its blocks' scores and
        band errors, recorded in the metrics and, when alarmed stretches end, in the event
        store."""
        if len(batch) == 0:
            self._keep_stretches([])
            return []
        verdicts = self._detector.block_verdicts(
            int(batch.index[0]), scores, batch.start_s, batch.end_s, band_error
        )
        self._metrics.record_verdicts(
            self._detector.scorer.manifest.name,
            self._station,
            "stream",
            [v.anomaly for v in verdicts],
            [v.ratio for v in verdicts],
        )
        self._keep_stretches(verdicts)
        return verdicts

    def _keep_stretches(self, verdicts: list[BlockVerdict]) -> None:
        if self._stretches is not None:
            self._stretches.blocks(verdicts)
            if self._ended:
                self._stretches.finish()
