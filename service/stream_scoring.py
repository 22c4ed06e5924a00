"""Score an audio stream: raw PCM frames in, block verdicts out, the same blocks, scores and
verdicts as scoring the whole audio as one clip. Blocking: push and finish run in the pool."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from service.audio.resample import StreamingResampler
from service.features.logmel import BlockBatch, StreamingBlocker, StreamingLogMel
from service.metrics import Metrics
from service.scoring.audio import AudioScorer
from service.scoring.decision import Decision

Encoding = Literal["pcm_s16le", "f32le"]

_SAMPLE_TYPES: dict[str, tuple[str, float]] = {
    "pcm_s16le": ("<i2", 1.0 / 32768.0),
    "f32le": ("<f4", 1.0),
}


class StreamFrameError(ValueError):
    """A binary frame that does not hold whole samples of the announced format."""


@dataclass(frozen=True)
class BlockVerdict:
    index: int
    start_s: float
    end_s: float
    score: float
    ratio: float
    anomaly: bool


class AudioStreamScorer:
    """One stream's state: resampler, log-mel frames and block assembly carry over between
    frames, so a block split across frames scores as it would in the whole clip."""

    def __init__(
        self,
        scorer: AudioScorer,
        *,
        sample_rate: int,
        encoding: Encoding,
        channels: int,
        metrics: Metrics,
    ) -> None:
        features = scorer.manifest.features
        self._scorer = scorer
        self._metrics = metrics
        self._dtype, self._scale = _SAMPLE_TYPES[encoding]
        self._channels = channels
        self.sample_rate = sample_rate
        self.bytes_per_frame = np.dtype(self._dtype).itemsize * channels
        self._resampler = StreamingResampler(sample_rate, features.sample_rate)
        self._log_mel = StreamingLogMel(features)
        self._blocker = StreamingBlocker(features)
        self._decision = Decision(scorer.manifest.block_decision.threshold)

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
        """Verdicts on the blocks this frame completes (possibly none)."""
        with self._metrics.time_stage("decode"):
            samples = self._samples(frame)
            resampled = self._resampler.push(samples)
        with self._metrics.time_stage("features"):
            batch = self._blocker.push(self._log_mel.push(resampled))
        return self._score(batch)

    def finish(self) -> list[BlockVerdict]:
        """Verdicts on the blocks the end of the stream completes; the stream is then over."""
        with self._metrics.time_stage("decode"):
            resampled = self._resampler.finish()
        with self._metrics.time_stage("features"):
            frames = self._log_mel.push(resampled)
            batch = self._blocker.push(np.concatenate([frames, self._log_mel.finish()], axis=1))
        return self._score(batch)

    def _samples(self, frame: bytes) -> np.ndarray:
        self.samples_in(frame)
        values = np.frombuffer(frame, dtype=self._dtype).astype(np.float32) * self._scale
        if not np.all(np.isfinite(values)):
            raise StreamFrameError("the frame holds NaN or infinite samples")
        if self._channels > 1:
            # The mean of the channels, as clips are mixed down when decoded.
            values = values.reshape(-1, self._channels).mean(axis=1, dtype=np.float32)
        return values

    def _score(self, batch: BlockBatch) -> list[BlockVerdict]:
        if len(batch) == 0:
            return []
        with self._metrics.time_stage("model"):
            scores, _ = self._scorer.score_blocks(batch.blocks)
        verdicts = []
        for i, score in enumerate(scores):
            verdict = self._decision(float(score))
            verdicts.append(
                BlockVerdict(
                    index=int(batch.index[i]),
                    start_s=float(batch.start_s[i]),
                    end_s=float(batch.end_s[i]),
                    score=float(score),
                    ratio=verdict.ratio,
                    anomaly=verdict.anomaly,
                )
            )
        return verdicts
