"""The result messages the bridge publishes (JSON, QoS 1), built from the pipelines' verdicts.

Every message names the model, its version, the device, the operating point and the threshold
applied, so a consumer needs no other state to act on it."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from service.api.schemas import AnomalyRunOut, ChannelShareOut
from service.scoring.detectors import BlockVerdict, StepVerdicts

EndReason = Literal["end", "idle"]
# Bands an audio alarm names: as many as the sensor alarms' channels (TOP_CHANNELS).
TOP_BANDS = 3


class ResultHead(BaseModel):
    model: str
    version: str
    device: str
    operating_point: str = Field(description="the operating point whose threshold is applied")
    threshold: float


class StepsResult(ResultHead):
    """Sensor verdicts: the steps whose scores became final with one input message."""

    type: Literal["steps"] = "steps"
    first_step: int = Field(description="the stream step of scores[0] (0 = the first row)")
    steps_received: int
    scores: list[float]
    ratios: list[float] = Field(description="score / threshold")
    anomalies: list[bool]
    runs: list[AnomalyRunOut] = Field(
        description="runs of anomalous steps in this message (a run may continue in the next)"
    )


class BlockOut(BaseModel):
    index: int = Field(description="the block's index from the start of the stream")
    start_s: float
    end_s: float
    score: float
    ratio: float
    anomaly: bool


class BlocksResult(ResultHead):
    """Audio verdicts: the blocks one input message completed."""

    type: Literal["blocks"] = "blocks"
    blocks: list[BlockOut]


class BandOut(BaseModel):
    band: int = Field(description="mel band index, 0 = the lowest")
    hz: float = Field(description="the band's centre frequency in Hz")
    error: float = Field(description="the peak block's reconstruction error in this band")


class AlarmResult(ResultHead):
    """A run of anomalous steps (sensor) or blocks (audio) within one verdicts message."""

    type: Literal["alarm"] = "alarm"
    unit: Literal["step", "block"]
    start: int = Field(description="first anomalous step or block")
    end: int = Field(description="the step or block after the last anomalous one")
    start_s: float | None = Field(None, description="audio: start of the first block, seconds")
    end_s: float | None = Field(None, description="audio: end of the last block, seconds")
    score: float = Field(description="the run's peak score")
    ratio: float = Field(description="the peak score / threshold")
    channels: list[ChannelShareOut] = Field(
        default_factory=list, description="sensor: the channels contributing most"
    )
    bands: list[BandOut] = Field(
        default_factory=list, description="audio: the peak block's worst mel bands, worst first"
    )


class EndResult(ResultHead):
    """The stream ended (an end message, or idle for AUSCULT_MQTT_STREAM_IDLE_SECONDS)."""

    type: Literal["end"] = "end"
    reason: EndReason
    verdicts: int = Field(description="steps or blocks judged in the stream")
    anomalies: int


class ErrorResult(BaseModel):
    """Refused input, on <output_prefix>/errors; the bridge carries on."""

    type: Literal["error"] = "error"
    topic: str = Field(description="the input topic")
    code: str = Field(
        description="bad_topic | bad_payload | too_large | too_many_streams | unknown_model | "
        "wrong_kind | bad_rate | non_finite | internal"
    )
    message: str


def steps_messages(
    head: ResultHead, verdicts: StepVerdicts, steps_received: int
) -> tuple[StepsResult, list[AlarmResult]]:
    runs = AnomalyRunOut.from_runs(verdicts.runs, head.threshold)
    steps = StepsResult(
        **head.model_dump(),
        first_step=verdicts.first_step,
        steps_received=steps_received,
        scores=verdicts.scores.tolist(),
        ratios=verdicts.ratios.tolist(),
        anomalies=verdicts.anomalies.tolist(),
        runs=runs,
    )
    alarms = [
        AlarmResult(
            **head.model_dump(),
            unit="step",
            start=run.start,
            end=run.end,
            score=run.peak_score,
            ratio=run.peak_ratio,
            channels=run.channels,
        )
        for run in runs
    ]
    return steps, alarms


def blocks_messages(
    head: ResultHead, verdicts: list[BlockVerdict], band_hz: np.ndarray
) -> tuple[BlocksResult, list[AlarmResult]]:
    """`band_hz`: the centre frequency of each of the model's mel bands."""
    blocks = BlocksResult(
        **head.model_dump(),
        blocks=[
            BlockOut(
                index=v.index,
                start_s=v.start_s,
                end_s=v.end_s,
                score=v.score,
                ratio=v.ratio,
                anomaly=v.anomaly,
            )
            for v in verdicts
        ],
    )
    return blocks, [_block_alarm(head, run, band_hz) for run in _anomalous_runs(verdicts)]


def _anomalous_runs(verdicts: list[BlockVerdict]) -> list[list[BlockVerdict]]:
    runs: list[list[BlockVerdict]] = []
    for verdict in verdicts:
        if not verdict.anomaly:
            continue
        if runs and runs[-1][-1].index == verdict.index - 1:
            runs[-1].append(verdict)
        else:
            runs.append([verdict])
    return runs


def _worst_bands(band_error: np.ndarray | None, band_hz: np.ndarray) -> list[BandOut]:
    if band_error is None:
        return []
    worst = np.argsort(band_error)[::-1][:TOP_BANDS]
    return [BandOut(band=int(b), hz=float(band_hz[b]), error=float(band_error[b])) for b in worst]


def _block_alarm(head: ResultHead, run: list[BlockVerdict], band_hz: np.ndarray) -> AlarmResult:
    peak = max(run, key=lambda v: v.score)
    return AlarmResult(
        **head.model_dump(),
        unit="block",
        start=run[0].index,
        end=run[-1].index + 1,
        start_s=run[0].start_s,
        end_s=run[-1].end_s,
        score=peak.score,
        ratio=peak.ratio,
        bands=_worst_bands(peak.band_error, band_hz),
    )
